/* The mount's configuration: filled by main.c from the command line, read-only
 * once the session starts. */
#ifndef LOCKFS_CONFIG_H
#define LOCKFS_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

struct policy;

struct lockfs_config {
	char *source;           /* as given on the command line */
	char *mountpoint;       /* absolute */
	int source_fd;          /* O_PATH|O_DIRECTORY, opened before mounting so
	                           that SOURCE == MOUNTPOINT works */
	bool foreground;        /* -f */
	bool debug;             /* -d: debug log, implies -f */
	bool single_thread;     /* -s */
	bool allow_other;       /* multi-user: act with the caller's credentials */
	bool default_permissions; /* the kernel checks permissions itself */
	double entry_timeout;   /* -o entry_timeout=SECS (default 1.0) */
	double attr_timeout;    /* -o attr_timeout=SECS (default 1.0) */
	unsigned lease_ms;      /* -o lease=MS (default LOCKFS_DEFAULT_LEASE_MS) */
	unsigned lock_timeout_ms; /* -o lock_timeout=SECS, 0 = wait forever */
	char *policy_file;      /* -o policy=FILE */
	struct policy *policy;  /* parsed policy_file, NULL if none */
	unsigned threads;       /* -o threads=N (default 8) */
	unsigned long_read_ms;  /* -o long_read=MS: an update-intent read held
	                           open this long shares; 0 = never */
	unsigned reader_wait_ms;/* -o reader_wait=SECS: a writer waits at most
	                           this for holders that only read; 0 = forever */
	unsigned calm_after_ms; /* -o calm_after=MS: learn calm files not
	                           written for this long; 0 = never */
	unsigned fd_cache;      /* -o fd_cache=N: descriptors the inode table
	                           keeps open (inode.h); main.c caps it at a
	                           quarter of RLIMIT_NOFILE */
	int log_level;          /* -o log_level= (enum log_level), -d: debug */
	char *cluster;          /* -o cluster=SERVERS/PATH (fs/cluster.h), NULL = off */
	unsigned cluster_timeout_ms; /* -o cluster_timeout=SECS */
};

#define LOCKFS_DEFAULT_LEASE_MS 250
#define LOCKFS_DEFAULT_LONG_READ_MS 1000
#define LOCKFS_DEFAULT_READER_WAIT_MS 5000
#define LOCKFS_DEFAULT_CALM_AFTER_MS 2000
/* How many times a due lease gets its length again while the machine has
 * more runnable tasks than CPUs and the holder's program is active (it may
 * not have had the CPU to write yet): with the default lease, at most 5 s
 * more, as long as a writer waits for readers (reader_wait). */
#define LOCKFS_LEASE_STRETCH_MAX 20

#endif
