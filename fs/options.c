/* The daemon's command line (see options.h). */
#include "options.h"

#include <fuse_opt.h>

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cluster.h"
#include "inode.h"
#include "log.h"
#include "policy.h"
#include "workers.h"

#ifndef LOCKFS_VERSION
#define LOCKFS_VERSION "unknown"
#endif

#define DEFAULT_CACHE_TIMEOUT 1.0
#define DEFAULT_THREADS 8u
/* Limits that keep every value representable where it ends up: lock
 * timeouts become unsigned milliseconds, cache timeouts kernel seconds. */
#define MAX_TIMEOUT_SECS 4294967.0
#define MAX_CACHE_SECS 1e9
#define MIN_FD_CACHE 8u
#define MAX_FD_CACHE 1048576u

enum {
	KEY_HELP,
	KEY_VERSION,
	KEY_FOREGROUND,
	KEY_DEBUG,
	KEY_SINGLE,
	KEY_FUSE_DEBUG,
	KEY_ALLOW_OTHER,
	KEY_DEFAULT_PERMISSIONS,
	KEY_LEASE,
	KEY_LOCK_TIMEOUT,
	KEY_POLICY,
	KEY_ENTRY_TIMEOUT,
	KEY_ATTR_TIMEOUT,
	KEY_THREADS,
	KEY_LONG_READ,
	KEY_READER_WAIT,
	KEY_CALM_AFTER,
	KEY_FD_CACHE,
	KEY_LOG_LEVEL,
	KEY_CLUSTER,
	KEY_CLUSTER_TIMEOUT,
	KEY_NEEDS_VALUE,
	KEY_FSNAME,
	KEY_SUBTYPE,
	KEY_IGNORED,
};

static const struct fuse_opt lockfs_opts[] = {
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_KEY("-f", KEY_FOREGROUND),
	FUSE_OPT_KEY("-d", KEY_DEBUG),
	FUSE_OPT_KEY("--debug", KEY_DEBUG),
	FUSE_OPT_KEY("-s", KEY_SINGLE),
	FUSE_OPT_KEY("fuse_debug", KEY_FUSE_DEBUG),
	FUSE_OPT_KEY("debug", KEY_FUSE_DEBUG),
	FUSE_OPT_KEY("allow_other", KEY_ALLOW_OTHER),
	FUSE_OPT_KEY("default_permissions", KEY_DEFAULT_PERMISSIONS),
	FUSE_OPT_KEY("lease=", KEY_LEASE),
	FUSE_OPT_KEY("lock_timeout=", KEY_LOCK_TIMEOUT),
	FUSE_OPT_KEY("policy=", KEY_POLICY),
	FUSE_OPT_KEY("entry_timeout=", KEY_ENTRY_TIMEOUT),
	FUSE_OPT_KEY("attr_timeout=", KEY_ATTR_TIMEOUT),
	FUSE_OPT_KEY("threads=", KEY_THREADS),
	FUSE_OPT_KEY("long_read=", KEY_LONG_READ),
	FUSE_OPT_KEY("reader_wait=", KEY_READER_WAIT),
	FUSE_OPT_KEY("calm_after=", KEY_CALM_AFTER),
	FUSE_OPT_KEY("fd_cache=", KEY_FD_CACHE),
	FUSE_OPT_KEY("log_level=", KEY_LOG_LEVEL),
	FUSE_OPT_KEY("cluster=", KEY_CLUSTER),
	FUSE_OPT_KEY("cluster_timeout=", KEY_CLUSTER_TIMEOUT),
	/* Without "=VALUE" these would reach libfuse and be reported as
	 * unknown, which hides what is really wrong. */
	FUSE_OPT_KEY("lease", KEY_NEEDS_VALUE),
	FUSE_OPT_KEY("lock_timeout", KEY_NEEDS_VALUE),
	FUSE_OPT_KEY("policy", KEY_NEEDS_VALUE),
	FUSE_OPT_KEY("entry_timeout", KEY_NEEDS_VALUE),
	FUSE_OPT_KEY("attr_timeout", KEY_NEEDS_VALUE),
	FUSE_OPT_KEY("threads", KEY_NEEDS_VALUE),
	FUSE_OPT_KEY("long_read", KEY_NEEDS_VALUE),
	FUSE_OPT_KEY("reader_wait", KEY_NEEDS_VALUE),
	FUSE_OPT_KEY("calm_after", KEY_NEEDS_VALUE),
	FUSE_OPT_KEY("fd_cache", KEY_NEEDS_VALUE),
	FUSE_OPT_KEY("log_level", KEY_NEEDS_VALUE),
	FUSE_OPT_KEY("cluster", KEY_NEEDS_VALUE),
	FUSE_OPT_KEY("cluster_timeout", KEY_NEEDS_VALUE),
	FUSE_OPT_KEY("fsname=", KEY_FSNAME),
	FUSE_OPT_KEY("subtype=", KEY_SUBTYPE),
	/* Options that only mean something to mount(8), systemd or
	 * mount.fuse3 and may reach us from /etc/fstab. */
	FUSE_OPT_KEY("defaults", KEY_IGNORED),
	FUSE_OPT_KEY("auto", KEY_IGNORED),
	FUSE_OPT_KEY("noauto", KEY_IGNORED),
	FUSE_OPT_KEY("user", KEY_IGNORED),
	FUSE_OPT_KEY("nouser", KEY_IGNORED),
	FUSE_OPT_KEY("users", KEY_IGNORED),
	FUSE_OPT_KEY("_netdev", KEY_IGNORED),
	FUSE_OPT_KEY("nofail", KEY_IGNORED),
	FUSE_OPT_KEY("comment=", KEY_IGNORED),
	FUSE_OPT_END
};


static const char *opt_value(const char *arg)
{
	const char *eq = strchr(arg, '=');

	return eq ? eq + 1 : "";
}

/* The option's name, for messages: "lease" out of "lease=12x". */
static int opt_name_len(const char *arg)
{
	const char *eq = strchr(arg, '=');

	return eq ? (int)(eq - arg) : (int)strlen(arg);
}

/* Whole decimal numbers only: no sign, no spaces, no hex, no exponent. */
static int parse_uint(const char *arg, unsigned long long max, unsigned long long *out)
{
	const char *s = opt_value(arg);
	unsigned long long v = 0;

	if (!*s)
		return -EINVAL;
	if (*s == '-')
		return -EDOM;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		if (v > (max - (unsigned)(*s - '0')) / 10)
			return -ERANGE;
		v = v * 10 + (unsigned)(*s - '0');
	}
	*out = v;
	return 0;
}

/* DIGITS[.DIGITS] or .DIGITS; strtod alone would also take "inf", "nan",
 * hex floats, exponents, signs and leading spaces. */
static int parse_secs(const char *arg, double max, double *out)
{
	const char *s = opt_value(arg);
	bool digits = false, dot = false;
	double v;

	if (*s == '-')
		return -EDOM;
	for (const char *p = s; *p; p++) {
		if (*p >= '0' && *p <= '9')
			digits = true;
		else if (*p == '.' && !dot)
			dot = true;
		else
			return -EINVAL;
	}
	if (!digits)
		return -EINVAL;
	errno = 0;
	v = strtod(s, NULL);
	if (errno == ERANGE || !isfinite(v) || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

static int bad_value(const char *arg, int err, const char *expect)
{
	log_err("invalid value for option -o %.*s: '%s' (%s, expected %s)",
	     opt_name_len(arg), arg, opt_value(arg),
	     err == -ERANGE ? "out of range" :
	     err == -EDOM ? "negative" : "not a number", expect);
	return -1;
}

static int replace_string(char **dst, const char *src)
{
	char *copy = strdup(src);

	if (!copy) {
		log_err("out of memory");
		return -1;
	}
	free(*dst);
	*dst = copy;
	return 0;
}

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct cmdline *cl = data;
	struct lockfs_config *cfg = &cl->cfg;
	unsigned long long u;
	double d;
	int err;

	(void)outargs;
	switch (key) {
	case FUSE_OPT_KEY_NONOPT:
		cl->nonopts++;
		if (cl->nonopts == 1)
			return replace_string(&cfg->source, arg);
		if (cl->nonopts == 2)
			return replace_string(&cfg->mountpoint, arg);
		log_err("unexpected extra argument '%s' (usage: lockfs SOURCE MOUNTPOINT [options])", arg);
		return -1;
	case FUSE_OPT_KEY_OPT:
		/* -o options lockfs does not know go on to libfuse; a dash
		 * option nobody knows is refused here, with a clearer message
		 * than libfuse's. */
		if (arg[0] == '-') {
			log_err("unknown option '%s' (see lockfs --help)", arg);
			return -1;
		}
		/* x-* options are notes for mount(8) and systemd (fuse_opt
		 * templates cannot match a bare prefix). */
		if (strncmp(arg, "x-", 2) == 0)
			return 0;
		return 1;
	case KEY_HELP:
		cl->show_help = true;
		return 0;
	case KEY_VERSION:
		cl->show_version = true;
		return 0;
	case KEY_FOREGROUND:
		cfg->foreground = true;
		return 0;
	case KEY_DEBUG:
		cfg->debug = true;
		cfg->foreground = true;
		return 0;
	case KEY_SINGLE:
		cfg->single_thread = true;
		return 0;
	case KEY_FUSE_DEBUG:
		cl->fuse_debug = true;
		cfg->foreground = true;
		return 0;
	case KEY_ALLOW_OTHER:
		cfg->allow_other = true;
		return 1;       /* the kernel needs it too */
	case KEY_DEFAULT_PERMISSIONS:
		cfg->default_permissions = true;
		return 1;       /* it is the kernel's option */
	case KEY_LEASE:
		err = parse_uint(arg, UINT_MAX, &u);
		if (err)
			return bad_value(arg, err, "milliseconds, a whole number from 0 to 4294967295");
		cfg->lease_ms = (unsigned)u;
		return 0;
	case KEY_LOCK_TIMEOUT:
		err = parse_secs(arg, MAX_TIMEOUT_SECS, &d);
		if (err)
			return bad_value(arg, err, "seconds from 0 to 4294967, fractions allowed, 0 = wait forever");
		/* Rounded up so that a tiny positive timeout never turns into
		 * 0, which means waiting forever. */
		cfg->lock_timeout_ms = (unsigned)ceil(d * 1000.0);
		return 0;
	case KEY_POLICY:
		if (!*opt_value(arg)) {
			log_err("option -o policy needs a file name");
			return -1;
		}
		return replace_string(&cfg->policy_file, opt_value(arg));
	case KEY_ENTRY_TIMEOUT:
	case KEY_ATTR_TIMEOUT:
		err = parse_secs(arg, MAX_CACHE_SECS, &d);
		if (err)
			return bad_value(arg, err, "seconds from 0 to 1000000000, fractions allowed");
		if (key == KEY_ENTRY_TIMEOUT)
			cfg->entry_timeout = d;
		else
			cfg->attr_timeout = d;
		return 0;
	case KEY_THREADS:
		err = parse_uint(arg, WORKERS_MAX, &u);
		if (!err && u == 0)
			err = -ERANGE;
		if (err)
			return bad_value(arg, err, "a whole number from 1 to 1024");
		cfg->threads = (unsigned)u;
		return 0;
	case KEY_LONG_READ:
	case KEY_CALM_AFTER:
		err = parse_uint(arg, 4294967000ull, &u);
		if (err)
			return bad_value(arg, err, "milliseconds, a whole number from 0 to 4294967000, 0 = never");
		if (key == KEY_LONG_READ)
			cfg->long_read_ms = (unsigned)u;
		else
			cfg->calm_after_ms = (unsigned)u;
		return 0;
	case KEY_CLUSTER: {
		struct cluster_spec spec;
		char msg[600];

		if (cluster_parse_spec(opt_value(arg), &spec, msg, sizeof(msg)) < 0) {
			log_err("%s", msg);
			return -1;
		}
		return replace_string(&cfg->cluster, opt_value(arg));
	}
	case KEY_CLUSTER_TIMEOUT:
		if (cluster_parse_timeout(opt_value(arg), &cfg->cluster_timeout_ms) < 0)
			return bad_value(arg, -EINVAL, "seconds, more than 0 and at most 3600, fractions allowed");
		return 0;
	case KEY_READER_WAIT:
		err = parse_secs(arg, MAX_TIMEOUT_SECS, &d);
		if (err)
			return bad_value(arg, err, "seconds from 0 to 4294967, fractions allowed, 0 = wait forever");
		cfg->reader_wait_ms = (unsigned)ceil(d * 1000.0);
		return 0;
	case KEY_FD_CACHE:
		err = parse_uint(arg, MAX_FD_CACHE, &u);
		if (!err && u < MIN_FD_CACHE)
			err = -ERANGE;
		if (err)
			return bad_value(arg, err, "a whole number from 8 to 1048576");
		cfg->fd_cache = (unsigned)u;
		cl->have_fd_cache = true;
		return 0;
	case KEY_LOG_LEVEL: {
		enum log_level lvl;

		if (log_level_parse(opt_value(arg), &lvl) != 0) {
			log_err("invalid value for option -o log_level: '%s' (expected error, warn, info or debug)",
			     opt_value(arg));
			return -1;
		}
		cfg->log_level = (int)lvl;
		return 0;
	}
	case KEY_NEEDS_VALUE:
		log_err("option -o %s needs a value (-o %s=VALUE, see lockfs --help)", arg, arg);
		return -1;
	case KEY_FSNAME:
		cl->have_fsname = true;
		return 1;
	case KEY_SUBTYPE:
		cl->have_subtype = true;
		return 1;
	case KEY_IGNORED:
		return 0;
	}
	return 1;
}

static void usage(FILE *out)
{
	fprintf(out, "usage: lockfs SOURCE MOUNTPOINT [options]\n");
}

void cmdline_init(struct cmdline *cl)
{
	memset(cl, 0, sizeof(*cl));
	cl->cfg.source_fd = -1;
	cl->cfg.entry_timeout = DEFAULT_CACHE_TIMEOUT;
	cl->cfg.attr_timeout = DEFAULT_CACHE_TIMEOUT;
	cl->cfg.lease_ms = LOCKFS_DEFAULT_LEASE_MS;
	cl->cfg.lock_timeout_ms = 0;
	cl->cfg.threads = DEFAULT_THREADS;
	cl->cfg.long_read_ms = LOCKFS_DEFAULT_LONG_READ_MS;
	cl->cfg.reader_wait_ms = LOCKFS_DEFAULT_READER_WAIT_MS;
	cl->cfg.calm_after_ms = LOCKFS_DEFAULT_CALM_AFTER_MS;
	cl->cfg.fd_cache = INODE_FD_CACHE_DEFAULT;
	cl->cfg.log_level = LOG_LVL_WARN;
	cl->cfg.cluster_timeout_ms = CLUSTER_DEFAULT_TIMEOUT_MS;
}

int cmdline_parse(struct fuse_args *args, struct cmdline *cl)
{
	return fuse_opt_parse(args, cl, lockfs_opts, opt_proc) == 0 ? 0 : -1;
}

void cmdline_print_help(void)
{
	usage(stdout);
	printf(
"\n"
"Mounts the directory SOURCE at MOUNTPOINT (they may be the same directory)\n"
"and passes every operation through, making each open for writing and each\n"
"read-modify-write wait for a lock held by lockfs.\n"
"\n"
"General options:\n"
"    -h, --help             print this help and exit\n"
"    -V, --version          print the version and exit\n"
"    -f                     stay in the foreground (default: detach after mounting)\n"
"    -d, --debug            debug log on stderr, implies -f (default: warnings only)\n"
"    -s                     single-threaded (default: multi-threaded)\n"
"    -o OPT[,OPT...]        mount options, below\n"
"\n"
"lockfs options:\n"
"    -o lease=MS            keep a reader's lock for MS milliseconds after it\n"
"                           closes, so a read-then-write is one critical section\n"
"                           (default: %u)\n"
"    -o long_read=MS        a read held open this long stops excluding other\n"
"                           readers (tail -f, less); 0 = never (default: %u)\n"
"    -o reader_wait=SECS    a writer waits at most SECS for programs that only\n"
"                           read the file, then goes ahead; 0 = wait forever\n"
"                           (default: %g)\n"
"    -o calm_after=MS       a file not written for MS milliseconds whose readers\n"
"                           were seen waiting on an unused lease lets readers\n"
"                           share until its next write; 0 = never (default: %u)\n"
"    -o lock_timeout=SECS   fail an open with ENOLCK after waiting SECS seconds\n"
"                           for its lock; fractions allowed (default: 0 = wait forever)\n"
"    -o policy=FILE         per-path locking rules, see the documentation\n"
"                           (default: none, every file is locked exclusively)\n"
"    -o entry_timeout=SECS  how long the kernel caches names; 0 under allow_other\n"
"                           without default_permissions (default: %.1f)\n"
"    -o attr_timeout=SECS   how long the kernel caches attributes (default: %.1f)\n"
"    -o cluster=HOST:PORT[+HOST:PORT...]/PATH\n"
"                           share one lock table with every lockfs given the\n"
"                           same ZooKeeper ensemble and PATH (hosts mounting one\n"
"                           shared file system); see docs/cluster.md (default: off)\n"
"    -o cluster_timeout=SECS  ZooKeeper session timeout: a dead daemon's locks go\n"
"                           after it, and a cut-off daemon stops trusting its own\n"
"                           (default: %g)\n"
"    -o threads=N           request threads, all started at mount; waiting opens\n"
"                           use none (default: %u)\n"
"    -o fd_cache=N          descriptors kept open for the files the kernel knows,\n"
"                           which are reopened by file handle when needed; at\n"
"                           most a quarter of the open file limit (default: %u)\n"
"    -o log_level=LEVEL     error, warn, info or debug; to stderr with -f, to\n"
"                           syslog otherwise (default: warn; -d means debug)\n"
"    -o fuse_debug          libfuse's request trace on stderr, implies -f\n"
"                           (default: off; -o debug is the same)\n"
"\n"
"FUSE mount options (handled by libfuse and the kernel):\n"
"    -o fsname=NAME         the source shown by mount and df\n"
"                           (default: the absolute SOURCE path)\n"
"    -o subtype=NAME        type shown as fuse.NAME (default: lockfs)\n"
"    -o default_permissions let the kernel check permissions (default: off;\n"
"                           lockfs itself acts with each caller's credentials\n"
"                           under allow_other)\n"
"    -o ro, -o rw           read-only or read-write mount (default: rw)\n"
"    -o nosuid, -o nodev, -o noexec, -o noatime, -o sync, ...\n"
"                           the usual mount flags (default: nosuid,nodev)\n"
"    -o max_read=N          largest read request in bytes (default: kernel's)\n"
"The following libfuse options are all off by default:\n",
	       LOCKFS_DEFAULT_LEASE_MS, LOCKFS_DEFAULT_LONG_READ_MS,
	       LOCKFS_DEFAULT_READER_WAIT_MS / 1000.0, LOCKFS_DEFAULT_CALM_AFTER_MS,
	       DEFAULT_CACHE_TIMEOUT, DEFAULT_CACHE_TIMEOUT,
	       CLUSTER_DEFAULT_TIMEOUT_MS / 1000.0, DEFAULT_THREADS, INODE_FD_CACHE_DEFAULT);
	fflush(stdout);
	fuse_lowlevel_help();
	printf(
"\n"
"fstab: SOURCE MOUNTPOINT fuse.lockfs OPTIONS 0 0 (mount.fuse3 runs lockfs)\n");
}

void cmdline_print_version(void)
{
	printf("lockfs version %s\n", LOCKFS_VERSION);
	printf("libfuse version %s\n", fuse_pkgversion());
}

int cmdline_fuse_args(struct fuse_args *args, const struct cmdline *cl, const char *fsname)
{
	char *opts = NULL;
	int r = 0;

	if (!cl->have_subtype)
		r |= fuse_opt_add_opt(&opts, "subtype=lockfs");
	if (!cl->have_fsname) {
		size_t n = strlen(fsname) + sizeof("fsname=");
		char *o = malloc(n);

		if (!o) {
			free(opts);
			return -1;
		}
		snprintf(o, n, "fsname=%s", fsname);
		r |= fuse_opt_add_opt_escaped(&opts, o);
		free(o);
	}
	if (cl->fuse_debug)
		r |= fuse_opt_add_opt(&opts, "debug");
	if (!r && opts) {
		r |= fuse_opt_add_arg(args, "-o");
		r |= fuse_opt_add_arg(args, opts);
	}
	free(opts);
	return r ? -1 : 0;
}

/* Every inode the kernel knows, every open file and every tracked caller may
 * need a descriptor: the soft limit goes up to the hard one, and the inode
 * table's cache takes at most a quarter of it, so that open files and
 * pidfds have the rest (inode.h). */
void cmdline_size_descriptors(struct cmdline *cl)
{
	struct lockfs_config *cfg = &cl->cfg;
	struct rlimit rl;
	unsigned long long share;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		struct rlimit up = { rl.rlim_max, rl.rlim_max };

		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			rl = up;
		else
			log_warn("cannot raise the open file limit to %llu: %s",
				 (unsigned long long)rl.rlim_max, strerror(errno));
	}
	share = rl.rlim_cur == RLIM_INFINITY ? MAX_FD_CACHE
		: (unsigned long long)rl.rlim_cur / INODE_FD_CACHE_RLIMIT_SHARE;
	if (share < MIN_FD_CACHE)
		share = MIN_FD_CACHE;
	if (cfg->fd_cache > share) {
		if (cl->have_fd_cache)
			log_warn("fd_cache=%u is more than a quarter of the open file limit (%llu): using %llu",
				 cfg->fd_cache, (unsigned long long)rl.rlim_cur, share);
		cfg->fd_cache = (unsigned)share;
	}
	log_debug("open file limit %llu, descriptor cache %u",
		  (unsigned long long)rl.rlim_cur, cfg->fd_cache);
}

