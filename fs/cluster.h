/* Cluster mode: lockfs daemons on several hosts share one lock table through
 * ZooKeeper (docs/cluster.md is the user-facing description).
 *
 * The unit of sharing is the *host-level cluster lock* of a file, as in the
 * DLM under GFS2/OCFS2 or an NFSv4 delegation: a daemon that got a file's
 * cluster lock keeps it while it is idle, so programs on its host take and
 * release the file's lock in the local table (fs/locktable.c) without any
 * ZooKeeper traffic until another daemon asks for the file. Only then does
 * the holder hand the lock over, after the local critical section in
 * progress (leases included) and after the requests already queued before
 * the other host's: the local queue is FIFO, and the remote request takes
 * its place in it, which bounds the local batch.
 *
 * ZooKeeper layout under PATH (from -o cluster=SERVERS/PATH):
 *   PATH/locks/<file name>/          container node, one per file
 *   PATH/locks/<file name>/lock-NNN  ephemeral sequential, one per daemon
 *                                    that holds or wants the file; data:
 *                                    "<host name> <daemon pid>"
 * The lowest sequence number holds the file (the ZooKeeper lock recipe):
 * FIFO across hosts, and the lock goes when its owner's session dies. Every
 * daemon watches the children of the directories of the files it holds or
 * waits for: a waiter learns it is first, a holder learns that somebody
 * queued behind it (the recall).
 *
 * File names: what every host sees the same for the same file. st_dev is
 * host-local (an NFS mount gets a different device number on each client)
 * and is left out; st_ino is the shared file system's own inode number,
 * the same on every NFS or CephFS client. The name is st_ino in hex,
 * optionally followed by the file handle of name_to_handle_at (the server's
 * handle on NFS) for callers that have one: all daemons of one cluster must
 * name files the same way. The lock belongs to the inode, not to a name: a
 * renamed file keeps its lock, and a file renamed over another one is
 * another lock.
 *
 * Fencing token: the czxid of the daemon's lock znode (ZooKeeper's zxid of
 * its creation), larger for every later grant of the same file.
 *
 * Session loss: the module does not wait for ZooKeeper to say the session
 * expired. It tracks when it last heard from the server (the send time of
 * the latest request that was answered; a cheap read is sent every third
 * of the session timeout when nothing else is) and, once the session
 * timeout may have passed since then, declares every lock it holds lost
 * (ops->lost): the server may already have given them to someone else.
 *
 * Threads: the ZooKeeper client's completion thread runs every callback, and
 * one watchdog thread of this module checks the clock and reconnects after
 * an expired session. ops callbacks are never called with the module's mutex
 * held, so they may call back into it. */
#ifndef LOCKFS_CLUSTER_H
#define LOCKFS_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLUSTER_DEFAULT_TIMEOUT_MS 10000
#define CLUSTER_NAME_MAX 160

/* -o cluster=SPEC, parsed. */
struct cluster_spec {
	char servers[512];      /* ZooKeeper's form: "h1:p1,h2:p2" */
	char path[256];         /* "/a/b": absolute, no trailing slash */
};

/* Parses "HOST:PORT[+HOST:PORT...]/PATH". 0, or -EINVAL with a sentence
 * for the user in err. Pure. */
int cluster_parse_spec(const char *spec, struct cluster_spec *out, char *err, size_t errlen);
/* Parses -o cluster_timeout=SECS (decimal, > 0, at most one hour) into ms.
 * 0 or -EINVAL. Pure. */
int cluster_parse_timeout(const char *s, unsigned *ms);
/* The file's name in the cluster: st_ino in hex, then "-" and the handle in
 * hex when hlen > 0. 0, or -ENAMETOOLONG. Pure. */
int cluster_file_name(uint64_t ino, const unsigned char *handle, size_t hlen,
		      char *buf, size_t size);
/* The sequence number of a lock znode's name ("lock-0000000042" -> 42),
 * -1 if it is not one of ours. Pure. */
long long cluster_seq(const char *child);

/* The state of one file's cluster lock on this daemon. Pure state machine,
 * driven by events; each step returns the actions (enum cl_action bits) the
 * runtime must carry out. */
enum cl_state {
	CL_REMOTE,       /* not ours: the local table holds the file for "elsewhere" */
	CL_ACQUIRING,    /* our znode is queued, or being created */
	CL_HELD,         /* ours, cached while idle */
	CL_RECALLED,     /* another daemon queued behind us: finishing locally */
	CL_HANDING_OVER, /* local side idle: deleting our znode */
	CL_LOST,         /* session may be gone: not trusted, finishing locally */
};
enum cl_event {
	CE_WANT,         /* a local request needs the file */
	CE_FIRST,        /* our znode is the lowest */
	CE_BEHIND,       /* another daemon's znode queued after ours while held */
	CE_IDLE,         /* the local side finished (after CA_RECALL or CA_LOST) */
	CE_DELETED,      /* our znode is gone (deleted, or the session died) */
	CE_SUSPECT,      /* the session timeout may have passed since last contact */
	CE_FAILED,       /* creating our znode failed (the runtime retries wanted ones) */
};
enum cl_action {
	CA_CREATE = 1,   /* create our znode and watch the children */
	CA_GRANT = 2,    /* tell the local side it holds the file */
	CA_RECALL = 4,   /* tell the local side to finish; it answers CE_IDLE */
	CA_DELETE = 8,   /* make the file durable, then delete our znode */
	CA_LOST = 16,    /* tell the local side the lock is lost; it answers CE_IDLE */
};
struct cl_fsm {
	enum cl_state st;
	bool want;       /* a local request waits: acquire again after handing over */
};
unsigned cl_fsm_step(struct cl_fsm *f, enum cl_event e);
const char *cl_state_name(enum cl_state s);

/* The runtime. */
struct cluster;

struct cluster_ops {
	/* This daemon now holds `key`'s cluster lock. */
	void (*granted)(void *arg, uint64_t key);
	/* Another daemon waits: let the local holders and earlier waiters
	 * finish, then call cluster_idle(key). */
	void (*recall)(void *arg, uint64_t key);
	/* The lock can not be trusted any more; call cluster_idle(key) once
	 * the local side let go. */
	void (*lost)(void *arg, uint64_t key);
	/* Before the znode goes: the file's writes must be durable on the
	 * shared file system. May be NULL. */
	void (*flush)(void *arg, uint64_t key);
};

struct cluster_config {
	struct cluster_spec spec;
	unsigned timeout_ms;    /* session timeout */
};

/* Connects (waits at most the session timeout for the first connection) and
 * makes PATH/locks. 0 or -errno, with a message logged. */
int cluster_new(struct cluster **out, const struct cluster_config *cfg,
		const struct cluster_ops *ops, void *arg);
/* Closes the session: every znode of this daemon goes at once. */
void cluster_free(struct cluster *c);

/* A local request needs `key` (named `name`, see cluster_file_name): asks
 * for it unless held or asked for already. Never blocks on the network:
 * ops->granted follows from the completion thread. */
void cluster_acquire(struct cluster *c, uint64_t key, const char *name);
/* The local side finished after ops->recall or ops->lost: hands over. */
void cluster_idle(struct cluster *c, uint64_t key);

/* What lockstat shows of one file's cluster lock. Read from the module's
 * own records: asking costs no ZooKeeper request. The holder is learned
 * from the children listings this daemon makes anyway (while it holds or
 * waits for the file) and one read of the holder's znode data per change
 * of holder; while this daemon neither holds nor wants the file nobody
 * follows it, so the holder is the one last seen. */
#define CLUSTER_IDENT_MAX 300
struct cluster_lock_info {
	enum cl_state st;
	int64_t token;          /* fencing token (czxid) while held, else 0 */
	unsigned waiters;       /* other daemons queued, as last seen */
	/* The daemon that holds the file, as last seen: "<host> <pid>" (its
	 * znode's data), "" when not known; this daemon's own while it holds
	 * the file (held, recalled, lost, handing over). */
	char holder[CLUSTER_IDENT_MAX];
	int64_t holder_token;   /* the holder's fencing token, 0 if not known */
	/* Daemons queued behind the holder (this one excepted when it waits),
	 * -1 when not known (this daemon no longer follows the file). */
	int remote_waiters;
};
/* 0, or -ENOENT if this daemon never asked for `key`. */
int cluster_lock_info(struct cluster *c, uint64_t key, struct cluster_lock_info *out);
/* The keys of the files whose cluster lock this daemon holds, waits for or
 * is giving up (every state but remote), at most `max` of them into keys
 * (which may be NULL when max is 0). Returns how many there are, which may
 * be more than max. */
size_t cluster_active_keys(struct cluster *c, uint64_t *keys, size_t max);
/* "<host> <pid>": what this daemon writes into its znodes. */
const char *cluster_ident(const struct cluster *c);

struct cluster_stats {
	uint64_t requests;      /* ZooKeeper requests sent */
	uint64_t grants, recalls, losses;
	uint64_t fenced_writes; /* writes refused: their lock was lost */
};
void cluster_get_stats(struct cluster *c, struct cluster_stats *out);
/* Zeroes the statistics (lockstat --reset). */
void cluster_reset_stats(struct cluster *c);

/* Whether the locks this daemon holds may still be trusted by its own
 * clock: false once the session timeout (less the watchdog's margin) may
 * have passed since ZooKeeper last answered, or once they were declared
 * lost, until the session answers again. Cheap: the write path asks it. */
bool cluster_trusted(struct cluster *c);
/* A write was refused because its lock was lost (the statistics). */
void cluster_count_fenced(struct cluster *c);

#endif
