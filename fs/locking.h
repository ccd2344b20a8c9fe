/* Mandatory locks for FUSE requests: turns requests into lock-table events
 * and lock-table decisions into replies.
 *
 * An operation that needs a lock embeds a struct lk_wait, fills w->lt (file,
 * class, flags, lease, deadline; the owner is filled by locking_acquire from
 * the request's caller) and w->resume, and calls locking_acquire(). Exactly
 * one call of w->resume(w, status) follows, either before locking_acquire
 * returns (granted or refused at once) or later from another thread: the
 * worker thread that received the request is never held while it waits, so a
 * thousand waiters need no thousand threads. resume replies to the request
 * and may free w. status is 0 (granted) or a negative errno to reply with
 * (-EAGAIN, -EDEADLK, -EINTR, -ENOLCK for a timeout, -ESTALE to make the
 * kernel look the name up again), or LT_PEEK: open without a lock.
 *
 * While parked, a FUSE interrupt (Ctrl-C in the caller) fails the wait with
 * -EINTR, and the owner's exit, a lease's end or a lock timeout are noticed
 * by one event thread that owns the timer and the owners' pidfds. */
#ifndef LOCKFS_LOCKING_H
#define LOCKFS_LOCKING_H

#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>
#include <stdbool.h>

#include "list.h"
#include "locktable.h"

struct locking;
struct lockfs_config;
struct cluster;
struct owners;
struct lk_wait;
struct lk_remote;

typedef void (*lk_resume_fn)(struct lk_wait *w, int status);

struct lk_wait {
	struct lt_request lt;
	fuse_req_t req;
	lk_resume_fn resume;
	/* Private to locking.c. */
	bool registering;       /* the parking thread still uses req */
	int pending_status;     /* decided while registering */
	bool pending;
	bool cluster_bounded;   /* a non-blocking open waiting for the cluster */
	struct list_node p_node;   /* in the parked list, for interrupts; then
	                              in the list of decided requests */
};

int locking_new(struct locking **out, const struct lockfs_config *cfg);
/* Starts the event thread. */
int locking_start(struct locking *l);
/* Stops the event thread and fails every parked request with -EINTR. */
void locking_stop(struct locking *l);
void locking_free(struct locking *l);

/* The lock owner for the request's caller (its thread): 0 and *owner set;
 * -ESRCH when the caller is gone (go on without a lock); -ENOLCK when the
 * daemon cannot tell who it is (fail the request with it: never run it
 * unlocked). See owner_of_caller(). */
int locking_owner(struct locking *l, fuse_req_t req, lt_owner_t *owner);

/* See the top of this file. w->lt.owner must be set (locking_owner). */
void locking_acquire(struct locking *l, struct lk_wait *w);

/* A handle granted through locking_acquire() is closed. */
void locking_release(struct locking *l, lt_file_t file, lt_owner_t owner, bool write);
/* Programs lock `file` with flock or fcntl themselves: the mandatory lock
 * steps aside on it (lt_advisory). */
void locking_advisory(struct locking *l, lt_file_t file);
/* `file` changed on the source behind the mount's back (lt_file_written). */
void locking_written(struct locking *l, lt_file_t file);
/* A barrier operation granted through locking_acquire() has finished. */
void locking_barrier_done(struct locking *l, lt_file_t file, lt_owner_t owner);
/* Renamed over / last name removed: see lt_replace() and lt_gone(). */
void locking_replaced(struct locking *l, lt_file_t old_file, lt_file_t new_file);
void locking_gone(struct locking *l, lt_file_t file);
/* The daemon no longer knows `file` (its inode was freed, so the file system
 * may reuse the id): drops the replaced/gone marks, see lt_forget(). */
void locking_forget(struct locking *l, lt_file_t file);
/* The same, for an inode the daemon frees with no link left (st_nlink 0 on
 * its pinned descriptor): its number goes to the next new file, which must
 * not show this one's statistics (lt_forget_dead). */
void locking_forget_dead(struct locking *l, lt_file_t file);

/* A consistent copy of the lock table for lockstat, taken under the table's
 * mutex in one pass and then handed to the caller, who resolves owners and
 * paths without holding anything. The copy's memory is sized and allocated
 * before that pass, with the mutex released, so that opens never wait for
 * lockstat's allocations however large the table. Every
 * file in it carries what the table learned of it (lt_file_info: calm,
 * advisory), read in that same pass. */
struct lk_holder {
	lt_owner_t owner;
	enum lt_class cls;      /* effective (see lt_holder_view) */
	unsigned handles;       /* 0 = lease */
	uint64_t since;
	uint64_t lease_until;
	enum lt_hold_state state;
	bool inherited;         /* passed on by an exited thread or child */
	bool joined;            /* granted by joining its program's hold */
};
struct lk_waiter {
	lt_owner_t owner;
	enum lt_class cls;
	unsigned flags;         /* enum lt_flags */
	uint64_t since;
};
struct lk_file_snap {
	lt_file_t file;
	size_t nholders, nwaiters;
	struct lk_holder *holders;
	struct lk_waiter *waiters; /* queue order */
	struct lt_file_info info;  /* calm, advisory (all 0 if not known) */
};
struct lk_stat_snap {
	lt_file_t file;
	struct lt_stats st;
	struct lt_file_info info;  /* likewise, for every file with statistics */
};
struct lk_snapshot {
	uint64_t now;           /* locking_now() when taken */
	size_t nfiles, nstats;
	struct lk_file_snap *files;
	struct lk_stat_snap *stats; /* only when asked for */
	/* Private: the arrays every file's holders and waiters point into. */
	struct lk_holder *holder_pool;
	struct lk_waiter *waiter_pool;
};
int locking_snapshot(struct locking *l, bool with_stats, struct lk_snapshot *out);
void locking_snapshot_free(struct lk_snapshot *s);
void locking_stats_reset(struct locking *l);

/* Cluster mode (fs/cluster.h): a file is granted locally only while this
 * host holds its cluster lock. Until then, and again once another host
 * recalled it, the local table holds the file for "the other hosts" (one
 * pseudo-owner per file, whose barrier hold counts as a write), so local
 * requests queue behind it in FIFO order with every local rule kept:
 * lock_timeout, interrupts, O_NONBLOCK's -EAGAIN, deadlock detection. A
 * recall queues that pseudo-owner's request at the tail of the file's
 * queue, so the local batch ends with the requests queued before it.
 * `name` gives a file's name in the cluster (cluster_file_name); the
 * cluster must have been made with locking_cluster_ops and this locking as
 * its argument. Call before the session starts; at the end, after
 * cluster_free(), call it with NULL before the passthrough closes its files. */
typedef int (*lk_cluster_name_fn)(void *arg, lt_file_t file, char *buf, size_t size);
/* Makes what this host wrote to `file` durable on the shared file system
 * (fsync), before its cluster lock goes to another host. 0 or -errno
 * (-ENOENT: the daemon no longer knows the file). */
typedef int (*lk_cluster_sync_fn)(void *arg, lt_file_t file);
void locking_set_cluster(struct locking *l, struct cluster *c, lk_cluster_name_fn name,
			 lk_cluster_sync_fn sync, void *arg);

/* Fencing: a handle opened under a hold of its file records which grant of
 * the file's cluster lock that hold was under (locking_fence, right after
 * the grant). A write through it asks locking_fence_check first: -EIO
 * once that cluster lock was lost (the session may have expired, so
 * another host may hold the file now), or handed over since; 0 otherwise,
 * and always 0 outside cluster mode. The check is lock-free. */
struct lk_fence {
	const struct lk_remote *remote;     /* NULL: nothing to check */
	uint64_t grant;
};
void locking_fence(struct locking *l, lt_file_t file, struct lk_fence *out);
int locking_fence_check(struct locking *l, const struct lk_fence *f);
extern const struct cluster_ops locking_cluster_ops;
/* How long a non-blocking open waits for the cluster to grant a file the
 * other hosts hold before it is refused with EAGAIN. */
#define LK_CLUSTER_NONBLOCK_NS 1000000000ull
/* Owners with this bit stand for the other hosts (never made by owner.c). */
#define LK_REMOTE_OWNER (1ull << 63)

/* The monotonic clock the lock table runs on, in ns. */
uint64_t locking_now(void);
struct owners *locking_owners(struct locking *l);
/* The cluster set by locking_set_cluster, NULL when off (for lockstat,
 * which reads it during the session only). */
struct cluster *locking_cluster(struct locking *l);

#endif
