/* lockfs: the daemon's command line, mount and lifetime.
 *
 *   lockfs SOURCE MOUNTPOINT [-f] [-d] [-s] [-o opt,...]
 *
 * Options lockfs knows are taken out of the argument list; every other -o
 * option is left for libfuse's mount and session parsers, which refuse the
 * ones they do not know either. Because mount.fuse3 (and so /etc/fstab with
 * type fuse.lockfs) calls `lockfs SOURCE MOUNTPOINT -o OPTS`, the same
 * parser serves the command line and fstab.
 *
 * Mount point rules:
 *   - SOURCE == MOUNTPOINT (in place) is supported: SOURCE is opened before
 *     mounting, so the daemon keeps reaching the directory underneath.
 *   - A MOUNTPOINT that is already the root of a mount is refused, because
 *     mounting over it would hide that file system (usually a second mount
 *     by mistake). The exception is an in-place mount: mounting lockfs over
 *     the root of a plain file system (`lockfs /srv/data /srv/data` where
 *     /srv/data is a disk) is exactly what in-place mode is for. Only a
 *     lockfs already mounted there is refused, since stacking lockfs on
 *     lockfs in place is always a repeated mount.
 *   - A MOUNTPOINT strictly inside SOURCE is refused: the daemon would find
 *     its own mount while walking SOURCE and call into itself.
 *   - MOUNTPOINT may be /dev/fd/N, the form mount.fuse3 uses with
 *     -o drop_privileges (the device is already open and mounted).
 *
 * Exit status: 0 after a clean unmount (fusermount3 -u, umount, or SIGINT,
 * SIGTERM, SIGHUP), 1 for every error; each error is one line on stderr. */
#include "cluster.h"
#include "config.h"
#include "inode.h"
#include "locking.h"
#include "log.h"
#include "passthrough.h"
#include "policy.h"
#include "workers.h"

#include <fuse_opt.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* Everything the command line decides; main() owns it, single-threaded until
 * the session starts, read-only afterwards. */
struct cmdline {
	struct lockfs_config cfg;
	bool show_help;
	bool show_version;
	bool fuse_debug;
	bool have_fsname;
	bool have_subtype;
	bool have_fd_cache;
	unsigned nonopts;       /* positional arguments seen */
};

enum {
	KEY_HELP,
	KEY_VERSION,
	KEY_FOREGROUND,
	KEY_DEBUG,
	KEY_SINGLE,
	KEY_FUSE_DEBUG,
	KEY_ALLOW_OTHER,
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

/* Writes one "lockfs: ..." line to stderr. Used before logging could go to
 * syslog, i.e. for everything the user must see at the terminal. */
static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	log_err("%s", line);
}

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
	fail("invalid value for option -o %.*s: '%s' (%s, expected %s)",
	     opt_name_len(arg), arg, opt_value(arg),
	     err == -ERANGE ? "out of range" :
	     err == -EDOM ? "negative" : "not a number", expect);
	return -1;
}

static int replace_string(char **dst, const char *src)
{
	char *copy = strdup(src);

	if (!copy) {
		fail("out of memory");
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
		fail("unexpected extra argument '%s' (usage: lockfs SOURCE MOUNTPOINT [options])", arg);
		return -1;
	case FUSE_OPT_KEY_OPT:
		/* -o options lockfs does not know go on to libfuse; a dash
		 * option nobody knows is refused here, with a clearer message
		 * than libfuse's. */
		if (arg[0] == '-') {
			fail("unknown option '%s' (see lockfs --help)", arg);
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
			fail("option -o policy needs a file name");
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
			fail("%s", msg);
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
			fail("invalid value for option -o log_level: '%s' (expected error, warn, info or debug)",
			     opt_value(arg));
			return -1;
		}
		cfg->log_level = (int)lvl;
		return 0;
	}
	case KEY_NEEDS_VALUE:
		fail("option -o %s needs a value (-o %s=VALUE, see lockfs --help)", arg, arg);
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

static void print_help(void)
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
"    -o entry_timeout=SECS  how long the kernel caches names (default: %.1f)\n"
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

static void print_version(void)
{
	printf("lockfs version %s\n", LOCKFS_VERSION);
	printf("libfuse version %s\n", fuse_pkgversion());
}

/* libfuse writes its messages in pieces ("unknown option(s): `", then each
 * option, then "'\n"), so they are gathered per thread into whole lines and
 * passed on through log.h, with the "fuse: " prefix replaced by ours. */
static __thread char fuse_line[1024];
static __thread size_t fuse_line_len;
/* Counts libfuse's error lines so that main() does not add a second line
 * about the same failure. Atomic because libfuse may log from any worker
 * thread; main() only reads it before the session loop starts. */
static atomic_uint fuse_errors_seen;

static void emit_fuse_line(enum fuse_log_level level)
{
	const char *s = fuse_line;
	const char *unknown = "unknown option(s): ";
	enum log_level lvl;

	if (strncmp(s, "fuse: ", 6) == 0)
		s += 6;
	if (!*s)
		return;
	if (level <= FUSE_LOG_ERR) {
		lvl = LOG_LVL_ERROR;
		fuse_errors_seen++;
	} else if (level == FUSE_LOG_WARNING) {
		lvl = LOG_LVL_WARN;
	} else if (level <= FUSE_LOG_INFO) {
		lvl = LOG_LVL_INFO;
	} else {
		lvl = LOG_LVL_DEBUG;
	}
	if (strncmp(s, unknown, strlen(unknown)) == 0) {
		/* libfuse quotes what is left as `-o a,b' */
		const char *list = s + strlen(unknown);
		size_t n;

		if (*list == '`')
			list++;
		if (strncmp(list, "-o ", 3) == 0)
			list += 3;
		n = strlen(list);
		if (n && list[n - 1] == '\'')
			n--;
		log_msg(lvl, "unknown option(s): %.*s (neither lockfs nor FUSE knows them, see lockfs --help)",
			(int)n, list);
	} else
		log_msg(lvl, "%s", s);
}

static void fuse_log_relay(enum fuse_log_level level, const char *fmt, va_list ap)
{
	char piece[1024];
	int n = vsnprintf(piece, sizeof(piece), fmt, ap);

	if (n < 0)
		return;
	for (const char *p = piece; *p; p++) {
		if (*p == '\n' || fuse_line_len == sizeof(fuse_line) - 1) {
			fuse_line[fuse_line_len] = '\0';
			emit_fuse_line(level);
			fuse_line_len = 0;
			if (*p == '\n')
				continue;
		}
		fuse_line[fuse_line_len++] = *p;
	}
}

static bool is_dev_fd_path(const char *path)
{
	const char *p = path;

	if (strncmp(p, "/dev/fd/", 8) != 0)
		return false;
	p += 8;
	if (!*p)
		return false;
	for (; *p; p++)
		if (*p < '0' || *p > '9')
			return false;
	return true;
}

/* The file system type of the mount whose root `path` is (e.g.
 * "fuse.lockfs"), "" when not found. */
static void mount_type_of(const char *path, char *type, size_t size)
{
	struct statx stx;
	char line[8192];
	FILE *f;

	type[0] = '\0';
	if (statx(AT_FDCWD, path, AT_NO_AUTOMOUNT, STATX_MNT_ID, &stx) != 0 ||
	    !(stx.stx_mask & STATX_MNT_ID))
		return;
	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long id;
		const char *sep;

		if (sscanf(line, "%llu", &id) != 1 || id != stx.stx_mnt_id)
			continue;
		sep = strstr(line, " - ");
		if (sep) {
			size_t n = strcspn(sep + 3, " \n");

			if (n >= size)
				n = size - 1;
			memcpy(type, sep + 3, n);
			type[n] = '\0';
		}
		break;
	}
	fclose(f);
}

/* 1 if `path` is the root of a mount, 0 if not, -errno. */
static int is_mount_root(const char *path)
{
	struct statx stx;
	struct stat st, parent;
	char up[PATH_MAX + 4];

	if (statx(AT_FDCWD, path, AT_NO_AUTOMOUNT, STATX_BASIC_STATS, &stx) != 0)
		return -errno;
	if (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT)
		return !!(stx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
	/* Kernels before 5.8 do not say; a change of device is the classic
	 * sign (it misses bind mounts within one file system). */
	snprintf(up, sizeof(up), "%s/..", path);
	if (stat(path, &st) != 0 || stat(up, &parent) != 0)
		return -errno;
	return st.st_dev != parent.st_dev || st.st_ino == parent.st_ino;
}

/* Checks SOURCE and MOUNTPOINT and fills cfg->source_fd and the absolute
 * cfg->mountpoint. *fsname gets the absolute SOURCE path. */
static int check_paths(struct lockfs_config *cfg, char **fsname)
{
	struct stat src_st, mnt_st;
	char *abs_src, *abs_mnt;
	bool in_place;
	int fd, r;

	fd = open(cfg->source, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOTDIR)
			fail("source '%s' is not a directory", cfg->source);
		else
			fail("source '%s': %s", cfg->source, strerror(errno));
		return -1;
	}
	cfg->source_fd = fd;
	abs_src = realpath(cfg->source, NULL);
	if (!abs_src || fstat(fd, &src_st) != 0) {
		fail("source '%s': %s", cfg->source, strerror(errno));
		free(abs_src);
		return -1;
	}
	*fsname = abs_src;

	if (is_dev_fd_path(cfg->mountpoint))
		return 0;

	abs_mnt = realpath(cfg->mountpoint, NULL);
	if (!abs_mnt) {
		if (errno == ENOTDIR)
			fail("mountpoint '%s' is not a directory", cfg->mountpoint);
		else
			fail("mountpoint '%s': %s", cfg->mountpoint, strerror(errno));
		return -1;
	}
	if (stat(abs_mnt, &mnt_st) != 0) {
		fail("mountpoint '%s': %s", cfg->mountpoint, strerror(errno));
		free(abs_mnt);
		return -1;
	}
	if (!S_ISDIR(mnt_st.st_mode)) {
		fail("mountpoint '%s' is not a directory", cfg->mountpoint);
		free(abs_mnt);
		return -1;
	}
	in_place = src_st.st_dev == mnt_st.st_dev && src_st.st_ino == mnt_st.st_ino;

	r = is_mount_root(abs_mnt);
	if (r < 0) {
		fail("mountpoint '%s': %s", cfg->mountpoint, strerror(-r));
		free(abs_mnt);
		return -1;
	}
	if (r > 0) {
		char type[128];

		mount_type_of(abs_mnt, type, sizeof(type));
		if (!in_place) {
			fail("mountpoint '%s' is already a mount point%s%s%s (mount elsewhere, or in place with SOURCE == MOUNTPOINT)",
			     cfg->mountpoint, type[0] ? " (type " : "", type,
			     type[0] ? ")" : "");
			free(abs_mnt);
			return -1;
		}
		if (strcmp(type, "fuse.lockfs") == 0) {
			fail("mountpoint '%s' is already mounted by lockfs", cfg->mountpoint);
			free(abs_mnt);
			return -1;
		}
	}
	if (!in_place) {
		size_t n = strlen(abs_src);

		if (strncmp(abs_mnt, abs_src, n) == 0 &&
		    (abs_mnt[n] == '/' || n == 1)) {
			fail("mountpoint '%s' is inside source '%s' (lockfs would see its own mount)",
			     cfg->mountpoint, cfg->source);
			free(abs_mnt);
			return -1;
		}
	}
	free(cfg->mountpoint);
	cfg->mountpoint = abs_mnt;
	return 0;
}

/* libfuse would fall back to fusermount3 and print several lines of its own;
 * one line saying what is wrong is more useful. */
static int check_dev_fuse(void)
{
	int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		if (errno == ENOENT || errno == ENODEV || errno == ENXIO)
			fail("cannot open /dev/fuse: %s (is the fuse module loaded?)", strerror(errno));
		else
			fail("cannot open /dev/fuse: %s", strerror(errno));
		return -1;
	}
	close(fd);
	return 0;
}

/* Adds the options lockfs always wants unless the user chose otherwise. */
static int add_fuse_args(struct fuse_args *args, const struct cmdline *cl,
			 const char *fsname)
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

static int run_loop(struct fuse_session *se, const struct lockfs_config *cfg)
{
	if (cfg->single_thread)
		return fuse_session_loop(se);
	return workers_run(se, cfg->threads);
}

static void free_config(struct lockfs_config *cfg)
{
	if (cfg->source_fd >= 0)
		close(cfg->source_fd);
	policy_free(cfg->policy);
	free(cfg->policy_file);
	free(cfg->source);
	free(cfg->mountpoint);
	free(cfg->cluster);
}

/* The source's device, for cluster_name; set before the session. */
static dev_t source_dev;

/* A file's name in the cluster, from its lock key. The key is st_ino mixed
 * with st_dev (inode_lock_key), a bijection of st_ino on one device, so the
 * inode number comes back for every file on the source's own device. The
 * handle is left out: every daemon of a cluster must name files alike, and
 * the key is all the lock table has. */
static int cluster_name(void *arg, lt_file_t file, char *buf, size_t size)
{
	uint64_t d = inode_lock_key(source_dev, 0), ino = file ^ d;

	/* inode_lock_key maps inode number d to key d (key 0 is never used). */
	if (ino == 0)
		ino = d;
	return cluster_file_name(ino, NULL, 0, buf, size);
}

/* Connects to the cluster. After daemonizing: the client's threads would
 * not survive the fork. */
static int cluster_start(struct lockfs_config *cfg, struct locking *locking,
			 struct cluster **out)
{
	struct cluster_config cc = { .timeout_ms = cfg->cluster_timeout_ms };
	char msg[600];
	struct stat st;
	int r;

	if (cluster_parse_spec(cfg->cluster, &cc.spec, msg, sizeof(msg)) < 0) {
		log_err("%s", msg);
		return -EINVAL;
	}
	if (fstat(cfg->source_fd, &st) < 0)
		return -errno;
	source_dev = st.st_dev;
	r = cluster_new(out, &cc, &locking_cluster_ops, locking);
	if (r < 0)
		return r;
	locking_set_cluster(locking, *out, cluster_name, NULL);
	log_debug("cluster %s: session timeout %u ms", cfg->cluster, cfg->cluster_timeout_ms);
	return 0;
}

/* Every inode the kernel knows, every open file and every tracked caller may
 * need a descriptor: the soft limit goes up to the hard one, and the inode
 * table's cache takes at most a quarter of it, so that open files and
 * pidfds have the rest (inode.h). */
static void size_descriptors(struct cmdline *cl)
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

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct cmdline cl = {
		.cfg = {
			.source_fd = -1,
			.entry_timeout = DEFAULT_CACHE_TIMEOUT,
			.attr_timeout = DEFAULT_CACHE_TIMEOUT,
			.lease_ms = LOCKFS_DEFAULT_LEASE_MS,
			.lock_timeout_ms = 0,
			.threads = DEFAULT_THREADS,
			.long_read_ms = LOCKFS_DEFAULT_LONG_READ_MS,
			.reader_wait_ms = LOCKFS_DEFAULT_READER_WAIT_MS,
			.calm_after_ms = LOCKFS_DEFAULT_CALM_AFTER_MS,
			.fd_cache = INODE_FD_CACHE_DEFAULT,
			.log_level = LOG_LVL_WARN,
			.cluster_timeout_ms = CLUSTER_DEFAULT_TIMEOUT_MS,
		},
	};
	struct lockfs_config *cfg = &cl.cfg;
	struct locking *locking = NULL;
	struct cluster *cluster = NULL;
	struct passthrough *pt = NULL;
	struct fuse_session *se = NULL;
	char *fsname = NULL;
	bool handlers = false, mounted = false, started = false;
	int status = 1, r;

	log_init("lockfs", LOG_LVL_WARN, false);
	fuse_set_log_func(fuse_log_relay);

	if (fuse_opt_parse(&args, &cl, lockfs_opts, opt_proc) != 0)
		goto out;
	if (cl.show_help) {
		print_help();
		status = 0;
		goto out;
	}
	if (cl.show_version) {
		print_version();
		status = 0;
		goto out;
	}
	if (cfg->debug || cl.fuse_debug)
		cfg->log_level = LOG_LVL_DEBUG;
	log_init("lockfs", (enum log_level)cfg->log_level, false);
	if (!cfg->source) {
		fail("missing SOURCE argument (usage: lockfs SOURCE MOUNTPOINT [options], see --help)");
		goto out;
	}
	if (!cfg->mountpoint) {
		fail("missing MOUNTPOINT argument (usage: lockfs SOURCE MOUNTPOINT [options], see --help)");
		goto out;
	}
	if (check_paths(cfg, &fsname) != 0)
		goto out;
	if (cfg->policy_file) {
		char err[512];

		if (policy_load(cfg->policy_file, &cfg->policy, err, sizeof(err)) != 0) {
			fail("bad policy: %s", err);
			goto out;
		}
	}
	if (check_dev_fuse() != 0)
		goto out;
	if (add_fuse_args(&args, &cl, fsname) != 0) {
		fail("out of memory");
		goto out;
	}

	size_descriptors(&cl);

	r = locking_new(&locking, cfg);
	if (r) {
		fail("cannot set up locking: %s", strerror(-r));
		goto out;
	}
	r = passthrough_new(&pt, cfg, locking);
	if (r) {
		fail("cannot set up the passthrough: %s", strerror(-r));
		goto out;
	}
	se = fuse_session_new(&args, &passthrough_ops, sizeof(passthrough_ops), pt);
	if (!se) {
		if (!fuse_errors_seen)
			fail("cannot create the FUSE session");
		goto out;
	}
	passthrough_set_session(pt, se);
	if (fuse_set_signal_handlers(se) != 0) {
		fail("cannot install signal handlers");
		goto out;
	}
	handlers = true;
	if (fuse_session_mount(se, cfg->mountpoint) != 0) {
		if (!fuse_errors_seen)
			fail("cannot mount on '%s'", cfg->mountpoint);
		goto out;
	}
	mounted = true;
	passthrough_mounted(pt);
	log_debug("mounted %s on %s (lease %u ms, lock timeout %u ms, %s)",
		  fsname, cfg->mountpoint, cfg->lease_ms, cfg->lock_timeout_ms,
		  cfg->single_thread ? "single-threaded" : "multi-threaded");

	/* Only now: mount errors above still reach the terminal, and
	 * threads do not survive the fork, so locking_start() comes after. */
	if (fuse_daemonize(cfg->foreground) != 0) {
		fail("cannot detach from the terminal");
		goto out;
	}
	if (!cfg->foreground)
		log_set_syslog(true);
	/* Keeps the daemon from pinning whatever directory it was started
	 * in; nothing is resolved relative to it any more. */
	if (chdir("/") != 0)
		log_warn("chdir /: %s", strerror(errno));

	if (cfg->cluster) {
		r = cluster_start(cfg, locking, &cluster);
		if (r) {
			log_err("cannot join the cluster %s: %s", cfg->cluster, strerror(-r));
			goto out;
		}
	}
	r = locking_start(locking);
	if (r) {
		log_err("cannot start locking: %s", strerror(-r));
		goto out;
	}
	started = true;

	r = run_loop(se, cfg);
	if (r < 0)
		log_err("session ended with an error: %s", strerror(-r));
	else if (r > 0)
		log_debug("signal %d: unmounting", r);
	else
		log_debug("session ended (unmounted, or stopped by a signal)");
	status = r < 0 ? 1 : 0;

out:
	/* Unmount first so no new request arrives, then fail the parked ones,
	 * then let the session call the passthrough's destroy (which closes
	 * its files) before the passthrough and locking go away. Writes went
	 * straight to SOURCE, so nothing is left to flush. */
	if (mounted)
		fuse_session_unmount(se);
	if (handlers)
		fuse_remove_signal_handlers(se);
	if (started)
		locking_stop(locking);
	/* Closing the ZooKeeper session drops this daemon's znodes at once.
	 * Its threads call into locking until cluster_free() returns; the
	 * handles the session's destroy closes below must not reach it. */
	if (cluster) {
		cluster_free(cluster);
		locking_set_cluster(locking, NULL, NULL, NULL);
	}
	if (se)
		fuse_session_destroy(se);
	if (pt)
		passthrough_free(pt);
	if (locking)
		locking_free(locking);
	free(fsname);
	free_config(cfg);
	fuse_opt_free_args(&args);
	return status;
}
