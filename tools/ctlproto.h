/* The reader's side of the control-file protocol (fs/control.c writes it and
 * documents the format; lockstat(1) documents it for users).
 *
 * ctl_parse_reply() turns one complete reply into plain structures. It is
 * strict about everything it understands (numbers, keywords, escapes, the
 * closing `end` line and its counts) and ignores line kinds and trailing
 * fields it does not know, so that later daemons can add to version 1.
 * Fields that version 1 gained later (CLASS, HOLD, ORIGIN, file records,
 * cluster records...) are optional: a reply from an older daemon parses with
 * their defaults. */
#ifndef LOCKFS_CTLPROTO_H
#define LOCKFS_CTLPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CTL_VERSION 1
#define CTL_CONTROL_NAME ".lockfs-control"
/* A number the daemon did not know ("-" on the wire). */
#define CTL_UNKNOWN (-1LL)

/* The lock class: CLASS on the wire, or MODE from a daemon without CLASS
 * (which never says update). */
enum ctl_mode { CTL_EXCLUSIVE, CTL_SHARED, CTL_UPDATE };
enum ctl_state { CTL_HELD, CTL_LEASE };
/* HOLD: normal from a daemon that does not say. */
enum ctl_hold { CTL_HOLD_NORMAL, CTL_HOLD_LONG, CTL_HOLD_BROKEN };
enum ctl_want { CTL_WANT_READ, CTL_WANT_WRITE, CTL_WANT_BARRIER };

/* A file: its path relative to the mount root, or (path NULL) the key of a
 * file that has no name any more. */
struct ctl_file {
	char *path;
	uint64_t key;
};

struct ctl_owner {
	long long pid, tid, uid;        /* CTL_UNKNOWN when forgotten */
	char *comm;                     /* never NULL, may be "" */
};

struct ctl_lock {
	struct ctl_file file;
	enum ctl_mode mode;
	enum ctl_state state;           /* held (handles open) or lease */
	enum ctl_hold hold;
	bool inherited, joined;         /* ORIGIN */
	struct ctl_owner owner;
	long long held_ns;
	long long lease_left_ns;        /* CTL_UNKNOWN unless a lease */
	long long waiters;
	long long handles;
};

struct ctl_wait {
	struct ctl_file file;
	enum ctl_mode mode;
	enum ctl_want want;
	struct ctl_owner owner;
	long long waited_ns;
	long long blocker;              /* pid, CTL_UNKNOWN when none known */
};

/* A `file` record: what the daemon learned of a file. */
struct ctl_fileinfo {
	struct ctl_file file;
	bool calm, advisory;
	long long written_ns;           /* since the last write; CTL_UNKNOWN: never */
};

struct ctl_stat {
	struct ctl_file file;
	long long acquisitions, contentions, waits;
	/* wait_p99_ns is never above wait_max_ns (see rec_stat). */
	long long wait_min_ns, wait_mean_ns, wait_p99_ns, wait_max_ns, wait_total_ns;
	long long holds, hold_mean_ns, hold_max_ns;
	long long eagain, edeadlk, timeouts, eintr;
	/* CTL_UNKNOWN from a daemon that does not count them. */
	long long joins, broken, calm_learned, advisory_passes;
};

/* A `cluster` record: one file's cluster lock (cluster mode). */
enum ctl_cluster_state {
	CTL_CL_REMOTE, CTL_CL_ACQUIRING, CTL_CL_CACHED, CTL_CL_HELD, CTL_CL_RECALLED,
	CTL_CL_HANDING_OVER, CTL_CL_LOST,
};
struct ctl_cluster {
	struct ctl_file file;
	enum ctl_cluster_state state;
	long long token;                /* the holder's; CTL_UNKNOWN when not known */
	long long remote_waiters;       /* CTL_UNKNOWN when not followed */
	char *host;                     /* the holder's; never NULL, "" when not known */
	long long daemon_pid;           /* the holder's; CTL_UNKNOWN when not known */
};

/* The `clusterstat` record. */
struct ctl_cluster_stats {
	long long requests, grants, recalls, losses, fenced_writes;
};

struct ctl_reply {
	int version;
	bool have_mount;
	char *mountpoint, *source;      /* as the daemon sees them */
	long long daemon_pid, lease_ms, lock_timeout_ms;
	/* CTL_UNKNOWN from a daemon that does not say; 0 = never. */
	long long long_read_ms, reader_wait_ms, calm_after_ms;
	/* The mount's -o cluster=; NULL when not in cluster mode, or from a
	 * daemon that does not say. */
	char *cluster;
	struct ctl_lock *locks;
	struct ctl_wait *waits;
	struct ctl_stat *stats;
	struct ctl_fileinfo *fileinfos;
	struct ctl_cluster *clusters;
	size_t nlocks, nwaits, nstats, nfileinfos, nclusters;
	bool have_cluster_stats;
	struct ctl_cluster_stats cluster_stats;
	char *error;                    /* an `error` line, NULL if none */
};

/* 0 and *out filled (free with ctl_reply_free), or -EINVAL with a one-line
 * reason in err (always NUL-terminated when errlen > 0); -ENOMEM. On failure
 * *out is left empty (safe to free). */
int ctl_parse_reply(const char *buf, size_t len, struct ctl_reply *out,
		    char *err, size_t errlen);
void ctl_reply_free(struct ctl_reply *r);

/* Decodes one escaped field of n bytes into a new NUL-terminated string.
 * 0, -EINVAL (bad escape, an escaped NUL, a raw tab or newline) or -ENOMEM. */
int ctl_unescape(const char *in, size_t n, char **out);

/* Encodes s the way the daemon does; the result is malloc'd, NULL when out
 * of memory. (For tests and tools that write replies.) */
char *ctl_escape(const char *s);

#endif
