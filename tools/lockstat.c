/* lockstat: who holds each lockfs lock, who waits for it, and where the
 * contention is.
 *
 * It reads the hidden control file at the root of each mount (see
 * fs/control.h): writes one request line, reads the reply back, parses it
 * with ctlproto.c and renders a table or JSON. Nothing here talks to the
 * daemon any other way, so lockstat works for every user who can use the
 * mount. */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "ctlproto.h"

#ifndef LOCKFS_VERSION
#define LOCKFS_VERSION "unknown"
#endif

#define EXIT_USAGE 2
/* A reply this large means something is wrong on the other side; refuse it
 * rather than eat memory. */
#define MAX_REPLY (512u << 20)
#define DEFAULT_TOP 10

static const char *prog = "lockstat";

/* ---- columns ------------------------------------------------------------- */

enum col {
	/* the lock table */
	C_MOUNT, C_PATH, C_MODE, C_STATE, C_PID, C_TID, C_COMMAND, C_USER, C_UID,
	C_HELD, C_LEASE, C_HANDLES, C_WAITERS, C_WANTS, C_WAITED, C_BLOCKER,
	C_ORIGIN, C_FLAGS,
	/* --stats */
	S_MOUNT, S_PATH, S_ACQUISITIONS, S_CONTENTIONS, S_WAITS, S_WAIT_MIN,
	S_WAIT_AVG, S_WAIT_P99, S_WAIT_MAX, S_WAIT_TOTAL, S_HOLD_AVG, S_HOLD_MAX,
	S_EAGAIN, S_EDEADLK, S_TIMEOUT, S_EINTR, S_JOINS, S_BROKEN, S_CALM_LEARNED,
	S_ADVISORY_PASSES, S_FLAGS,
	/* --cluster */
	K_MOUNT, K_PATH, K_STATE, K_HOST, K_DAEMON, K_TOKEN, K_RWAITERS,
	/* the cluster counters under --stats (fixed) */
	Z_MOUNT, Z_REQUESTS, Z_GRANTS, Z_RECALLS, Z_LOSSES, Z_FENCED,
	NCOLS
};

/* Which table a column belongs to. */
enum view { V_LOCKS, V_STATS, V_CLUSTER, V_COUNTERS };

struct column {
	const char *name;
	enum view view;
	bool right;             /* right-aligned (numbers) */
	const char *help;
};

static const struct column columns[NCOLS] = {
	[C_MOUNT]   = { "MOUNT", V_LOCKS, false, "the lockfs mount point" },
	[C_PATH]    = { "PATH", V_LOCKS, false, "the file, relative to the mount" },
	[C_MODE]    = { "MODE", V_LOCKS, false, "exclusive, shared or update (held, or asked for by a waiter)" },
	[C_STATE]   = { "STATE", V_LOCKS, false, "held (open), lease (kept after a read), long, broken or "
		       "waiting; * when inherited or joined" },
	[C_PID]     = { "PID", V_LOCKS, true, "process id of the holder or waiter" },
	[C_TID]     = { "TID", V_LOCKS, true, "thread id (the lock owner is a thread)" },
	[C_COMMAND] = { "COMMAND", V_LOCKS, false, "the thread's command name" },
	[C_USER]    = { "USER", V_LOCKS, false, "the owner's user name" },
	[C_UID]     = { "UID", V_LOCKS, true, "the owner's user id" },
	[C_HELD]    = { "HELD", V_LOCKS, true, "how long the lock has been held" },
	[C_LEASE]   = { "LEASE", V_LOCKS, true, "time left on a lease" },
	[C_HANDLES] = { "HANDLES", V_LOCKS, true, "open handles behind the hold (0 for a lease)" },
	[C_WAITERS] = { "WAITERS", V_LOCKS, true, "how many opens wait for the file" },
	[C_WANTS]   = { "WANTS", V_LOCKS, false, "what a waiter asked for: read, write or barrier" },
	[C_WAITED]  = { "WAITED", V_LOCKS, true, "how long a waiter has waited" },
	[C_BLOCKER] = { "BLOCKER", V_LOCKS, true, "pid of the process a waiter waits for" },
	[C_ORIGIN]  = { "ORIGIN", V_LOCKS, false, "own, inherited (from an exited thread or child) "
		       "or joined (its program's hold)" },
	[C_FLAGS]   = { "FLAGS", V_LOCKS, false, "what lockfs learned of the file: calm, advisory" },

	[S_MOUNT]        = { "MOUNT", V_STATS, false, "the lockfs mount point" },
	[S_PATH]         = { "PATH", V_STATS, false, "the file, relative to the mount" },
	[S_ACQUISITIONS] = { "ACQUISITIONS", V_STATS, true, "locks granted, at once or after waiting" },
	[S_CONTENTIONS]  = { "CONTENTIONS", V_STATS, true, "opens that had to wait" },
	[S_WAITS]        = { "WAITS", V_STATS, true, "waits that ended (granted or failed)" },
	[S_WAIT_MIN]     = { "WAIT-MIN", V_STATS, true, "shortest wait" },
	[S_WAIT_AVG]     = { "WAIT-AVG", V_STATS, true, "mean wait" },
	[S_WAIT_P99]     = { "WAIT-P99", true, true, "99th percentile of waits (upper bound within 2x, at most WAIT-MAX)" },
	[S_WAIT_MAX]     = { "WAIT-MAX", V_STATS, true, "longest wait" },
	[S_WAIT_TOTAL]   = { "WAIT-TOTAL", V_STATS, true, "all waits added up" },
	[S_HOLD_AVG]     = { "HOLD-AVG", V_STATS, true, "mean time a lock was held (leases included)" },
	[S_HOLD_MAX]     = { "HOLD-MAX", V_STATS, true, "longest time a lock was held" },
	[S_EAGAIN]       = { "EAGAIN", V_STATS, true, "non-blocking opens refused" },
	[S_EDEADLK]      = { "EDEADLK", V_STATS, true, "opens refused because they would deadlock" },
	[S_TIMEOUT]      = { "TIMEOUT", V_STATS, true, "opens that gave up after lock_timeout" },
	[S_EINTR]        = { "EINTR", V_STATS, true, "waits ended by a signal or the waiter's exit" },
	[S_JOINS]        = { "JOINS", V_STATS, true, "opens granted by joining their program's hold" },
	[S_BROKEN]       = { "BROKEN", V_STATS, true, "reader holds a writer stopped waiting for" },
	[S_CALM_LEARNED] = { "CALM-LEARNED", V_STATS, true, "times the file was learned to be calm" },
	[S_ADVISORY_PASSES] = { "ADVISORY-PASSES", V_STATS, true,
				"opens let through because the file is advisory" },
	[S_FLAGS]        = { "FLAGS", V_STATS, false, "what lockfs learned of the file: calm, advisory" },

	[K_MOUNT]   = { "MOUNT", V_CLUSTER, false, "the lockfs mount point" },
	[K_PATH]    = { "PATH", V_CLUSTER, false, "the file, relative to the mount" },
	[K_STATE]   = { "STATE", V_CLUSTER, false, "the file's cluster lock on this daemon: cached (held, "
		       "unused here), held (in use here), recalled (another daemon asked; finishing "
		       "here), handing-over, lost (not trusted), acquiring, remote (another daemon's)" },
	[K_HOST]    = { "HOST", V_CLUSTER, false, "the host of the daemon that holds it (last seen)" },
	[K_DAEMON]  = { "DAEMON", V_CLUSTER, true, "pid of the lockfs daemon that holds it, on HOST" },
	[K_TOKEN]   = { "TOKEN", V_CLUSTER, true, "fencing token of that hold (ZooKeeper's czxid)" },
	[K_RWAITERS] = { "REMOTE-WAITERS", V_CLUSTER, true,
			 "other daemons queued behind the holder (this one not counted)" },

	[Z_MOUNT]     = { "MOUNT", V_COUNTERS, false, "the lockfs mount point" },
	[Z_REQUESTS]  = { "ZK-REQUESTS", V_COUNTERS, true, "requests sent to ZooKeeper" },
	[Z_GRANTS]    = { "GRANTS", V_COUNTERS, true, "cluster locks this daemon got" },
	[Z_RECALLS]   = { "RECALLS", V_COUNTERS, true, "cluster locks another daemon asked back" },
	[Z_LOSSES]    = { "LOSSES", V_COUNTERS, true, "cluster locks lost with the session" },
	[Z_FENCED]    = { "FENCED-WRITES", V_COUNTERS, true, "writes refused (EIO): their lock was lost" },
};

static const enum col default_lock_cols[] = {
	C_PATH, C_MODE, C_STATE, C_PID, C_TID, C_COMMAND, C_USER, C_HELD, C_WAITERS,
};
static const enum col default_waiter_cols[] = {
	C_PATH, C_MODE, C_STATE, C_PID, C_TID, C_COMMAND, C_USER, C_HELD, C_WAITERS,
	C_WANTS, C_WAITED, C_BLOCKER, C_ORIGIN, C_FLAGS,
};
static const enum col default_stat_cols[] = {
	S_PATH, S_ACQUISITIONS, S_CONTENTIONS, S_WAIT_MIN, S_WAIT_AVG, S_WAIT_P99,
	S_WAIT_MAX, S_WAIT_TOTAL, S_HOLD_AVG, S_HOLD_MAX, S_EAGAIN, S_EDEADLK, S_TIMEOUT,
	S_JOINS, S_BROKEN, S_FLAGS,
};
static const enum col default_cluster_cols[] = {
	K_PATH, K_STATE, K_HOST, K_DAEMON, K_TOKEN, K_RWAITERS,
};
static const enum col counter_cols[] = {
	Z_REQUESTS, Z_GRANTS, Z_RECALLS, Z_LOSSES, Z_FENCED,
};

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- options ------------------------------------------------------------- */

enum sort_key { SORT_CONTENTIONS, SORT_WAIT, SORT_ACQUISITIONS };

struct options {
	bool waiters, json, raw, noheadings, stats, cluster, reset, list_columns;
	double watch;           /* seconds between frames; 0 = once */
	long long *pids;
	size_t npids;
	char **globs;
	size_t nglobs;
	long top;               /* 0 = all */
	bool top_given, sort_given;
	enum sort_key sort;
	const char *output;     /* -o as given */
	enum col cols[NCOLS * 2];
	size_t ncols;
	bool mount_col;         /* add MOUNT in front (several mounts, no -o) */
	char **paths;
	size_t npaths;
};

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '%s --help' for more information.\n", prog);
	exit(EXIT_USAGE);
}

static void die_oom(void) __attribute__((noreturn));
static void die_oom(void)
{
	fprintf(stderr, "%s: out of memory\n", prog);
	exit(1);
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		die_oom();
	return p;
}

static char *xstrdup(const char *s)
{
	char *d = strdup(s);

	if (!d)
		die_oom();
	return d;
}

/* One line on stderr: "lockstat: WHAT: message". */
static void errline(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void errline(const char *what, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: %s: ", prog, what);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void print_help(void)
{
	printf(
"Usage: %s [options] [MOUNTPOINT...]\n"
"\n"
"Show who holds each lockfs lock, who waits for it, and where the contention\n"
"is. Without MOUNTPOINT, every lockfs mount of the system is shown.\n"
"\n"
"Options:\n"
"  -w, --waiters          one row for each waiting open too, and the ORIGIN\n"
"                         and FLAGS columns\n"
"  -o, --output COLS      columns to show, comma-separated (+COLS adds to the\n"
"                         default set)\n"
"      --list-columns     list the columns and exit\n"
"  -J, --json             JSON output (schema in lockstat(1))\n"
"  -r, --raw              unaligned output, one space between columns\n"
"  -n, --noheadings       no header line\n"
"  -p, --pid PID[,PID..]  only rows of these processes (may be repeated)\n"
"      --path GLOB        only files whose path matches GLOB (fnmatch, '*'\n"
"                         also matches '/'; may be repeated)\n"
"      --watch[=SECS]     redraw every SECS seconds (default 1) until Ctrl-C\n"
"  -c, --cluster          cluster mode: each file's cluster lock, the daemon\n"
"                         holding it, its fencing token, remote waiters\n"
"  -s, --stats            contention statistics per file (and, in cluster\n"
"                         mode, the daemon's cluster counters)\n"
"      --top N            with --stats: the N busiest files (default %d, 0 = all)\n"
"      --sort KEY         with --stats: order by contentions (default), wait\n"
"                         (total wait time) or acquisitions\n"
"      --reset            zero the statistics (mount owner or root)\n"
"  -h, --help             show this help and exit\n"
"  -V, --version          show the version and exit\n"
"\n"
"Exit status: 0 on success, 1 when a mount could not be read, 2 for usage\n"
"errors. See lockstat(1).\n", prog, DEFAULT_TOP);
}

static void list_view(enum view v)
{
	for (int i = 0; i < NCOLS; i++)
		if (columns[i].view == v)
			printf("  %-15s %s\n", columns[i].name, columns[i].help);
}

static void list_columns(void)
{
	printf("Lock table columns (default: PATH MODE STATE PID TID COMMAND USER HELD WAITERS;\n"
	       "-w adds WANTS WAITED BLOCKER ORIGIN FLAGS):\n");
	list_view(V_LOCKS);
	printf("\nStatistics columns (--stats; default: all but MOUNT WAITS EINTR CALM-LEARNED\n"
	       "ADVISORY-PASSES):\n");
	list_view(V_STATS);
	printf("\nCluster columns (--cluster; default: all but MOUNT):\n");
	list_view(V_CLUSTER);
	printf("\nCluster counters (shown by --stats in cluster mode, below the statistics):\n");
	list_view(V_COUNTERS);
}

static enum view view_of(const struct options *o)
{
	return o->stats ? V_STATS : o->cluster ? V_CLUSTER : V_LOCKS;
}

static const char *view_option(enum view v)
{
	switch (v) {
	case V_STATS: return "with --stats";
	case V_CLUSTER: return "with --cluster";
	case V_COUNTERS: return "as --stats's cluster counters, which are not chosen with -o";
	default: return "without --stats or --cluster";
	}
}

static bool parse_ll(const char *s, long long min, long long max, long long *out)
{
	char *end;
	long long v;

	errno = 0;
	if (!*s || *s == ' ' || *s == '+')
		return false;
	v = strtoll(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

static void add_pids(struct options *o, const char *arg)
{
	char *copy = xstrdup(arg), *save = NULL;

	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		long long v;

		if (!parse_ll(tok, 1, INT_MAX, &v))
			usage_error("invalid pid '%s'", tok);
		o->pids = xrealloc(o->pids, (o->npids + 1) * sizeof(*o->pids));
		o->pids[o->npids++] = v;
	}
	if (o->npids == 0)
		usage_error("invalid pid list '%s'", arg);
	free(copy);
}

static void add_col(struct options *o, enum col c)
{
	if (o->ncols < ARRAY_LEN(o->cols))
		o->cols[o->ncols++] = c;
}

static void set_columns(struct options *o)
{
	const enum col *def;
	size_t ndef;
	const char *spec = o->output;

	if (o->stats) {
		def = default_stat_cols;
		ndef = ARRAY_LEN(default_stat_cols);
	} else if (o->cluster) {
		def = default_cluster_cols;
		ndef = ARRAY_LEN(default_cluster_cols);
	} else if (o->waiters) {
		def = default_waiter_cols;
		ndef = ARRAY_LEN(default_waiter_cols);
	} else {
		def = default_lock_cols;
		ndef = ARRAY_LEN(default_lock_cols);
	}
	o->ncols = 0;
	if (!spec || spec[0] == '+') {
		for (size_t i = 0; i < ndef; i++)
			add_col(o, def[i]);
		if (spec)
			spec++;
	}
	if (!spec)
		return;

	char *copy = xstrdup(spec), *save = NULL;
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int found = -1;

		for (int i = 0; i < NCOLS; i++)
			if (columns[i].view == view_of(o) && strcasecmp(tok, columns[i].name) == 0)
				found = i;
		if (found < 0) {
			for (int i = 0; i < NCOLS; i++)
				if (strcasecmp(tok, columns[i].name) == 0)
					usage_error("column '%s' is only shown %s", tok,
						    view_option(columns[i].view));
			usage_error("unknown column '%s' (see --list-columns)", tok);
		}
		add_col(o, (enum col)found);
	}
	free(copy);
	if (o->ncols == 0)
		usage_error("no columns in '%s'", o->output);
}

static void parse_options(int argc, char **argv, struct options *o)
{
	enum {
		OPT_LIST = 256, OPT_WATCH, OPT_TOP, OPT_SORT, OPT_RESET, OPT_PATH,
	};
	static const struct option longopts[] = {
		{ "waiters", no_argument, NULL, 'w' },
		{ "output", required_argument, NULL, 'o' },
		{ "list-columns", no_argument, NULL, OPT_LIST },
		{ "json", no_argument, NULL, 'J' },
		{ "raw", no_argument, NULL, 'r' },
		{ "noheadings", no_argument, NULL, 'n' },
		{ "pid", required_argument, NULL, 'p' },
		{ "path", required_argument, NULL, OPT_PATH },
		{ "watch", optional_argument, NULL, OPT_WATCH },
		{ "stats", no_argument, NULL, 's' },
		{ "cluster", no_argument, NULL, 'c' },
		{ "top", required_argument, NULL, OPT_TOP },
		{ "sort", required_argument, NULL, OPT_SORT },
		{ "reset", no_argument, NULL, OPT_RESET },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memset(o, 0, sizeof(*o));
	o->top = DEFAULT_TOP;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":wo:Jrnp:schV", longopts, NULL)) != -1) {
		switch (c) {
		case 'w': o->waiters = true; break;
		case 'o': o->output = optarg; break;
		case OPT_LIST: o->list_columns = true; break;
		case 'J': o->json = true; break;
		case 'r': o->raw = true; break;
		case 'n': o->noheadings = true; break;
		case 'p': add_pids(o, optarg); break;
		case OPT_PATH:
			o->globs = xrealloc(o->globs, (o->nglobs + 1) * sizeof(*o->globs));
			o->globs[o->nglobs++] = optarg;
			break;
		case OPT_WATCH: {
			char *end;

			o->watch = 1.0;
			if (optarg) {
				errno = 0;
				o->watch = strtod(optarg, &end);
				if (errno || end == optarg || *end || !(o->watch >= 0.05) ||
				    o->watch > 86400)
					usage_error("invalid --watch interval '%s' (seconds, at least 0.05)",
						    optarg);
			}
			break;
		}
		case 's': o->stats = true; break;
		case 'c': o->cluster = true; break;
		case OPT_TOP: {
			long long v;

			if (!parse_ll(optarg, 0, INT_MAX, &v))
				usage_error("invalid --top '%s'", optarg);
			o->top = (long)v;
			o->top_given = true;
			break;
		}
		case OPT_SORT:
			if (strcmp(optarg, "contentions") == 0)
				o->sort = SORT_CONTENTIONS;
			else if (strcmp(optarg, "wait") == 0)
				o->sort = SORT_WAIT;
			else if (strcmp(optarg, "acquisitions") == 0)
				o->sort = SORT_ACQUISITIONS;
			else
				usage_error("invalid --sort '%s' (contentions, wait or acquisitions)",
					    optarg);
			o->sort_given = true;
			break;
		case OPT_RESET: o->reset = true; break;
		case 'h':
			print_help();
			exit(0);
		case 'V':
			printf("lockstat (lockfs) %s\n", LOCKFS_VERSION);
			exit(0);
		case ':':
			usage_error("option '%s' needs an argument", argv[optind - 1]);
		default:
			if (optopt && optopt < 256)
				usage_error("invalid option -- '%c'", optopt);
			usage_error("unrecognized option '%s'", argv[optind - 1]);
		}
	}
	o->paths = argv + optind;
	o->npaths = (size_t)(argc - optind);

	if (o->list_columns) {
		list_columns();
		exit(0);
	}
	if (o->json && o->raw)
		usage_error("--json and --raw cannot be combined");
	if ((o->top_given || o->sort_given) && !o->stats)
		usage_error("--top and --sort go with --stats");
	if (o->reset && o->watch > 0)
		usage_error("--reset cannot be combined with --watch");
	if (o->stats && o->waiters)
		usage_error("--waiters does not apply to --stats");
	if (o->cluster && (o->stats || o->waiters))
		usage_error("--cluster is a view of its own: not with --%s (--stats shows the "
			    "cluster counters)", o->stats ? "stats" : "waiters");
	set_columns(o);
}

/* ---- finding mounts ------------------------------------------------------ */

struct mnt {
	unsigned maj, min;
	char *root;             /* field 4: the mount's root inside its fs */
	char *point;            /* mount point */
	char *fstype;
};

static void unescape_octal(char *s)
{
	char *o = s;

	for (char *p = s; *p; p++) {
		if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' &&
		    p[3] >= '0' && p[3] <= '7') {
			*o++ = (char)((p[1] - '0') << 6 | (p[2] - '0') << 3 | (p[3] - '0'));
			p += 3;
		} else {
			*o++ = *p;
		}
	}
	*o = '\0';
}

/* The mount table of this process. Returns the count, or -errno. */
static int read_mounts(struct mnt **out)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;
	struct mnt *m = NULL;
	int n = 0;

	if (!f)
		return -errno;
	while (getline(&line, &cap, f) > 0) {
		char *save = NULL, *fields[10] = { 0 };
		int nf = 0;
		char *sep = strstr(line, " - ");
		unsigned maj, min;

		if (!sep)
			continue;
		*sep = '\0';
		for (char *t = strtok_r(line, " \n", &save); t && nf < 6; t = strtok_r(NULL, " \n", &save))
			fields[nf++] = t;
		char *fstype = strtok_r(sep + 3, " \n", &save);
		if (nf < 5 || !fstype || sscanf(fields[2], "%u:%u", &maj, &min) != 2)
			continue;
		m = xrealloc(m, (size_t)(n + 1) * sizeof(*m));
		m[n].maj = maj;
		m[n].min = min;
		m[n].root = xstrdup(fields[3]);
		m[n].point = xstrdup(fields[4]);
		m[n].fstype = xstrdup(fstype);
		unescape_octal(m[n].root);
		unescape_octal(m[n].point);
		n++;
	}
	free(line);
	fclose(f);
	*out = m;
	return n;
}

static void free_mounts(struct mnt *m, int n)
{
	for (int i = 0; i < n; i++) {
		free(m[i].root);
		free(m[i].point);
		free(m[i].fstype);
	}
	free(m);
}

static bool is_lockfs_type(const char *fstype)
{
	return strcmp(fstype, "fuse.lockfs") == 0;
}

static bool is_fuse_type(const char *fstype)
{
	return strcmp(fstype, "fuse") == 0 || strncmp(fstype, "fuse.", 5) == 0;
}

/* What a run looks at: one lockfs mount. */
struct target {
	char *name;             /* for messages: the argument, or the mount point */
	char *root;             /* where the control file is */
	bool discovered;        /* found in the mount table, not named */
	bool ok;
	struct ctl_reply r;
};

static bool under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	if (strcmp(dir, "/") == 0)
		return true;
	return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

static const char *gone_msg =
	"the lockfs daemon has gone away (transport endpoint is not connected); "
	"unmount it with fusermount3 -u";

/* Finds the lockfs mount `arg` is in. 0 and t->root set, or -1 after
 * printing why not. */
static int resolve(const char *arg, struct mnt *m, int nm, struct target *t)
{
	struct stat st;
	char *real;
	int best = -1;
	size_t bestlen = 0;

	if (stat(arg, &st) != 0) {
		if (errno == ENOTCONN)
			errline(arg, "%s", gone_msg);
		else
			errline(arg, "%s", strerror(errno));
		return -1;
	}
	real = realpath(arg, NULL);
	for (int i = 0; i < nm; i++) {
		size_t len = strlen(m[i].point);

		if (makedev(m[i].maj, m[i].min) != st.st_dev || !is_fuse_type(m[i].fstype))
			continue;
		if (best < 0 || (real && under(real, m[i].point) && len > bestlen)) {
			best = i;
			bestlen = real && under(real, m[i].point) ? len : 0;
		}
	}
	free(real);
	if (best < 0) {
		errline(arg, "not a lockfs mount");
		return -1;
	}
	t->root = xstrdup(m[best].point);
	return 0;
}

/* ---- talking to the daemon ----------------------------------------------- */

static int cmp_file(const struct ctl_file *a, const struct ctl_file *b);

static int cmp_fileinfo(const void *a, const void *b)
{
	return cmp_file(&((const struct ctl_fileinfo *)a)->file,
			&((const struct ctl_fileinfo *)b)->file);
}

/* What the daemon learned of file f (calm, advisory), NULL if nothing.
 * t->r.fileinfos is sorted by query(). */
static const struct ctl_fileinfo *file_info(const struct target *t, const struct ctl_file *f)
{
	struct ctl_fileinfo key = { .file = *f };

	if (!t->r.nfileinfos)
		return NULL;
	return bsearch(&key, t->r.fileinfos, t->r.nfileinfos, sizeof(key), cmp_fileinfo);
}

/* Sends `request` (NULL: plain read) and parses the reply into t->r.
 * 0, or -1 after printing why not. */
static int query(struct target *t, const char *request)
{
	size_t plen = strlen(t->root) + sizeof(CTL_CONTROL_NAME) + 2;
	char *path = xrealloc(NULL, plen);
	char *buf = NULL, err[256];
	size_t len = 0, cap = 0;
	int fd, rc = -1;

	snprintf(path, plen, "%s%s%s", t->root,
		 t->root[strlen(t->root) - 1] == '/' ? "" : "/", CTL_CONTROL_NAME);
	fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && (errno == EACCES || errno == EPERM || errno == EROFS) &&
	    (!request || strcmp(request, "snapshot\n") == 0)) {
		/* Reading alone yields the same snapshot. */
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		request = NULL;
	}
	if (fd < 0) {
		if ((errno == ENOENT || errno == ELOOP) && t->discovered)
			errline(t->name, "the daemon has no %s (an older lockfs?)", CTL_CONTROL_NAME);
		else if (errno == ENOENT || errno == ELOOP)
			errline(t->name, "not a lockfs mount");
		else if (errno == ENOTCONN)
			errline(t->name, "%s", gone_msg);
		else
			errline(t->name, "cannot open %s: %s", path, strerror(errno));
		goto out;
	}
	if (request) {
		ssize_t w = write(fd, request, strlen(request));

		if (w < 0) {
			if (errno == EPERM || errno == EACCES)
				errline(t->name, "permission denied: only the mount's owner or "
					"root can reset the statistics");
			else if (errno == ENOTCONN)
				errline(t->name, "%s", gone_msg);
			else
				errline(t->name, "request refused: %s", strerror(errno));
			goto out;
		}
	}
	for (;;) {
		ssize_t n;

		if (cap - len < 65536) {
			if (cap >= MAX_REPLY) {
				errline(t->name, "reply from the daemon is too large");
				goto out;
			}
			cap = cap ? cap * 2 : 65536;
			buf = xrealloc(buf, cap);
		}
		n = pread(fd, buf + len, cap - len, (off_t)len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			errline(t->name, "%s", errno == ENOTCONN ? gone_msg : strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (ctl_parse_reply(buf, len, &t->r, err, sizeof(err)) != 0) {
		errline(t->name, "bad reply from the daemon: %s", err);
		goto out;
	}
	if (t->r.error) {
		errline(t->name, "the daemon says: %s", t->r.error);
		goto out;
	}
	if (t->r.nfileinfos)
		qsort(t->r.fileinfos, t->r.nfileinfos, sizeof(*t->r.fileinfos), cmp_fileinfo);
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	free(path);
	return rc;
}

/* ---- cell text ----------------------------------------------------------- */

static void fmt_dur(long long ns, char *b, size_t n)
{
	double v = (double)ns;

	if (ns < 0)
		snprintf(b, n, "-");
	else if (ns < 1000)
		snprintf(b, n, "%lldns", ns);
	else if (v < 999.5e3)
		snprintf(b, n, "%.*fus", v < 9.95e3 ? 1 : 0, v / 1e3);
	else if (v < 999.5e6)
		snprintf(b, n, "%.*fms", v < 9.95e6 ? 1 : 0, v / 1e6);
	else if (v < 59.995e9)
		snprintf(b, n, "%.*fs", v < 9.995e9 ? 2 : 1, v / 1e9);
	else {
		long long s = (ns + 500000000) / 1000000000;

		if (s < 3600)
			snprintf(b, n, "%lldm%02llds", s / 60, s % 60);
		else if (s < 86400)
			snprintf(b, n, "%lldh%02lldm", s / 3600, s % 3600 / 60);
		else
			snprintf(b, n, "%lldd%02lldh", s / 86400, s % 86400 / 3600);
	}
}

static void fmt_num(long long v, char *b, size_t n)
{
	if (v == CTL_UNKNOWN)
		snprintf(b, n, "-");
	else
		snprintf(b, n, "%lld", v);
}

static const char *user_name(long long uid, char *b, size_t n)
{
	struct passwd *pw;

	if (uid == CTL_UNKNOWN)
		return "-";
	pw = getpwuid((uid_t)uid);
	if (pw && pw->pw_name)
		return pw->pw_name;
	snprintf(b, n, "%lld", uid);
	return b;
}

static const char *file_text(const struct ctl_file *f, char *b, size_t n)
{
	if (f->path)
		return f->path;
	snprintf(b, n, "(unknown:%016llx)", (unsigned long long)f->key);
	return b;
}

static const char *mode_text(enum ctl_mode m)
{
	switch (m) {
	case CTL_SHARED: return "shared";
	case CTL_UPDATE: return "update";
	default: return "exclusive";
	}
}

static const char *hold_text(enum ctl_hold h)
{
	switch (h) {
	case CTL_HOLD_LONG: return "long";
	case CTL_HOLD_BROKEN: return "broken";
	default: return "normal";
	}
}

/* STATE of a holder: broken and long say more than held or lease; a star
 * marks a hold that was inherited or joined (ORIGIN says which). */
static const char *state_text(const struct ctl_lock *l, char *b, size_t n)
{
	const char *st = l->hold == CTL_HOLD_BROKEN ? "broken" :
			 l->hold == CTL_HOLD_LONG ? "long" :
			 l->state == CTL_LEASE ? "lease" : "held";

	snprintf(b, n, "%s%s", st, l->inherited || l->joined ? "*" : "");
	return b;
}

static const char *origin_text(const struct ctl_lock *l)
{
	if (l->inherited && l->joined)
		return "inherited,joined";
	if (l->inherited)
		return "inherited";
	return l->joined ? "joined" : "own";
}

static const char *flags_text(const struct ctl_fileinfo *fi)
{
	if (!fi || (!fi->calm && !fi->advisory))
		return "-";
	if (fi->calm && fi->advisory)
		return "calm,advisory";
	return fi->calm ? "calm" : "advisory";
}

static const char *want_text(enum ctl_want w)
{
	return w == CTL_WANT_WRITE ? "write" : w == CTL_WANT_BARRIER ? "barrier" : "read";
}

/* A row of the lock table: a holder or a waiter. */
struct row {
	const struct target *t;
	size_t ti;              /* target index, for ordering */
	const struct ctl_lock *lk;
	const struct ctl_wait *w;
	size_t idx;             /* position in the reply, for ordering */
};

static const char *lock_cell(enum col c, const struct row *r, char *b, size_t n)
{
	const struct ctl_owner *ow = r->lk ? &r->lk->owner : &r->w->owner;
	const struct ctl_file *f = r->lk ? &r->lk->file : &r->w->file;

	switch (c) {
	case C_MOUNT: return r->t->root;
	case C_PATH: return file_text(f, b, n);
	case C_MODE: return mode_text(r->lk ? r->lk->mode : r->w->mode);
	case C_STATE:
		if (!r->lk)
			return "waiting";
		return state_text(r->lk, b, n);
	case C_PID: fmt_num(ow->pid, b, n); return b;
	case C_TID: fmt_num(ow->tid, b, n); return b;
	case C_COMMAND: return ow->comm[0] ? ow->comm : "-";
	case C_USER: return user_name(ow->uid, b, n);
	case C_UID: fmt_num(ow->uid, b, n); return b;
	case C_HELD:
		if (!r->lk)
			return "-";
		fmt_dur(r->lk->held_ns, b, n);
		return b;
	case C_LEASE:
		if (!r->lk || r->lk->state != CTL_LEASE)
			return "-";
		fmt_dur(r->lk->lease_left_ns, b, n);
		return b;
	case C_HANDLES:
		if (!r->lk)
			return "-";
		fmt_num(r->lk->handles, b, n);
		return b;
	case C_WAITERS:
		if (!r->lk)
			return "-";
		fmt_num(r->lk->waiters, b, n);
		return b;
	case C_WANTS: return r->w ? want_text(r->w->want) : "-";
	case C_WAITED:
		if (!r->w)
			return "-";
		fmt_dur(r->w->waited_ns, b, n);
		return b;
	case C_BLOCKER:
		if (!r->w)
			return "-";
		fmt_num(r->w->blocker, b, n);
		return b;
	case C_ORIGIN: return r->lk ? origin_text(r->lk) : "-";
	case C_FLAGS: return flags_text(file_info(r->t, f));
	default:
		return "?";
	}
}

struct srow {
	const struct target *t;
	const struct ctl_stat *s;
};

static const char *stat_cell(enum col c, const struct srow *r, char *b, size_t n)
{
	const struct ctl_stat *s = r->s;

	switch (c) {
	case S_MOUNT: return r->t->root;
	case S_PATH: return file_text(&s->file, b, n);
	case S_ACQUISITIONS: fmt_num(s->acquisitions, b, n); return b;
	case S_CONTENTIONS: fmt_num(s->contentions, b, n); return b;
	case S_WAITS: fmt_num(s->waits, b, n); return b;
	case S_WAIT_MIN: fmt_dur(s->wait_min_ns, b, n); return b;
	case S_WAIT_AVG: fmt_dur(s->wait_mean_ns, b, n); return b;
	case S_WAIT_P99: fmt_dur(s->wait_p99_ns, b, n); return b;
	case S_WAIT_MAX: fmt_dur(s->wait_max_ns, b, n); return b;
	case S_WAIT_TOTAL: fmt_dur(s->wait_total_ns, b, n); return b;
	case S_HOLD_AVG: fmt_dur(s->hold_mean_ns, b, n); return b;
	case S_HOLD_MAX: fmt_dur(s->hold_max_ns, b, n); return b;
	case S_EAGAIN: fmt_num(s->eagain, b, n); return b;
	case S_EDEADLK: fmt_num(s->edeadlk, b, n); return b;
	case S_TIMEOUT: fmt_num(s->timeouts, b, n); return b;
	case S_EINTR: fmt_num(s->eintr, b, n); return b;
	case S_JOINS: fmt_num(s->joins, b, n); return b;
	case S_BROKEN: fmt_num(s->broken, b, n); return b;
	case S_CALM_LEARNED: fmt_num(s->calm_learned, b, n); return b;
	case S_ADVISORY_PASSES: fmt_num(s->advisory_passes, b, n); return b;
	case S_FLAGS: return flags_text(file_info(r->t, &s->file));
	default: return "?";
	}
}

static const char *cluster_state_text(enum ctl_cluster_state st)
{
	switch (st) {
	case CTL_CL_ACQUIRING: return "acquiring";
	case CTL_CL_CACHED: return "cached";
	case CTL_CL_HELD: return "held";
	case CTL_CL_RECALLED: return "recalled";
	case CTL_CL_HANDING_OVER: return "handing-over";
	case CTL_CL_LOST: return "lost";
	default: return "remote";
	}
}

/* A row of the --cluster table. */
struct krow {
	const struct target *t;
	size_t ti;
	const struct ctl_cluster *k;
};

static const char *cluster_cell(enum col c, const struct krow *r, char *b, size_t n)
{
	const struct ctl_cluster *k = r->k;

	switch (c) {
	case K_MOUNT: return r->t->root;
	case K_PATH: return file_text(&k->file, b, n);
	case K_STATE: return cluster_state_text(k->state);
	case K_HOST: return k->host[0] ? k->host : "-";
	case K_DAEMON: fmt_num(k->daemon_pid, b, n); return b;
	case K_TOKEN: fmt_num(k->token, b, n); return b;
	case K_RWAITERS: fmt_num(k->remote_waiters, b, n); return b;
	default: return "?";
	}
}

static const char *counter_cell(enum col c, const struct target *t, char *b, size_t n)
{
	const struct ctl_cluster_stats *st = &t->r.cluster_stats;

	switch (c) {
	case Z_MOUNT: return t->root;
	case Z_REQUESTS: fmt_num(st->requests, b, n); return b;
	case Z_GRANTS: fmt_num(st->grants, b, n); return b;
	case Z_RECALLS: fmt_num(st->recalls, b, n); return b;
	case Z_LOSSES: fmt_num(st->losses, b, n); return b;
	case Z_FENCED: fmt_num(st->fenced_writes, b, n); return b;
	default: return "?";
	}
}

/* Makes a cell safe for a terminal: control bytes (and in raw mode also
 * spaces and backslashes, which separate and escape there) become \xHH. */
static char *cell_escape(const char *s, bool raw)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = strlen(s);
	char *out = xrealloc(NULL, 4 * n + 1), *o = out;

	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p < 0x20 || *p == 0x7f || (raw && (*p == ' ' || *p == '\\'))) {
			*o++ = '\\';
			*o++ = 'x';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 15];
		} else {
			*o++ = (char)*p;
		}
	}
	*o = '\0';
	return out;
}

/* Display width, counting UTF-8 sequences as one column each. */
static size_t width(const char *s)
{
	size_t w = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

/* ---- table output -------------------------------------------------------- */

struct table {
	size_t ncols, nrows;
	const enum col *cols;
	char **cells;           /* nrows * ncols */
};

static void table_print(FILE *out, const struct table *t, const struct options *o)
{
	size_t w[NCOLS * 2 + 1] = { 0 };

	if (!o->raw) {
		for (size_t c = 0; c < t->ncols; c++) {
			w[c] = o->noheadings ? 0 : width(columns[t->cols[c]].name);
			for (size_t r = 0; r < t->nrows; r++) {
				size_t x = width(t->cells[r * t->ncols + c]);

				if (x > w[c])
					w[c] = x;
			}
		}
	}
	for (size_t r = o->noheadings ? 1 : 0; r <= t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			const char *s = r == 0 ? columns[t->cols[c]].name : t->cells[(r - 1) * t->ncols + c];
			bool last = c + 1 == t->ncols;
			size_t pad = o->raw ? 0 : w[c] - width(s);

			if (c)
				fputc(' ', out);
			if (columns[t->cols[c]].right)
				fprintf(out, "%*s%s", (int)pad, "", s);
			else
				fprintf(out, "%s%*s", s, last ? 0 : (int)pad, "");
		}
		fputc('\n', out);
	}
}

static void table_free(struct table *t)
{
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
}

/* ---- filters and ordering ------------------------------------------------ */

static bool pid_ok(const struct options *o, long long pid)
{
	if (o->npids == 0)
		return true;
	for (size_t i = 0; i < o->npids; i++)
		if (o->pids[i] == pid)
			return true;
	return false;
}

static bool path_ok(const struct options *o, const struct ctl_file *f)
{
	if (o->nglobs == 0)
		return true;
	if (!f->path)
		return false;
	for (size_t i = 0; i < o->nglobs; i++)
		if (fnmatch(o->globs[i], f->path, 0) == 0)
			return true;
	return false;
}

static int cmp_file(const struct ctl_file *a, const struct ctl_file *b)
{
	if (a->path && b->path)
		return strcmp(a->path, b->path);
	if (a->path || b->path)
		return a->path ? -1 : 1;
	return a->key < b->key ? -1 : a->key > b->key;
}

static int cmp_row(const void *pa, const void *pb)
{
	const struct row *a = pa, *b = pb;
	int c;

	if (a->ti != b->ti)
		return a->ti < b->ti ? -1 : 1;
	c = cmp_file(a->lk ? &a->lk->file : &a->w->file, b->lk ? &b->lk->file : &b->w->file);
	if (c)
		return c;
	if (!a->lk != !b->lk)
		return a->lk ? -1 : 1;
	return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static enum sort_key sort_key;

static int cmp_ll_desc(long long a, long long b)
{
	return a > b ? -1 : a < b;
}

static int cmp_stat(const void *pa, const void *pb)
{
	const struct ctl_stat *a = *(const struct ctl_stat *const *)pa;
	const struct ctl_stat *b = *(const struct ctl_stat *const *)pb;
	long long ka[3], kb[3];

	switch (sort_key) {
	case SORT_WAIT:
		ka[0] = a->wait_total_ns; kb[0] = b->wait_total_ns;
		ka[1] = a->contentions; kb[1] = b->contentions;
		break;
	case SORT_ACQUISITIONS:
		ka[0] = a->acquisitions; kb[0] = b->acquisitions;
		ka[1] = a->contentions; kb[1] = b->contentions;
		break;
	default:
		ka[0] = a->contentions; kb[0] = b->contentions;
		ka[1] = a->wait_total_ns; kb[1] = b->wait_total_ns;
	}
	ka[2] = a->acquisitions;
	kb[2] = b->acquisitions;
	for (int i = 0; i < 3; i++) {
		int c = cmp_ll_desc(ka[i], kb[i]);

		if (c)
			return c;
	}
	return cmp_file(&a->file, &b->file);
}

/* The statistics of one target to show, in order: filtered, sorted, cut to
 * --top. Returns the count; *out is malloc'd. */
static size_t pick_stats(const struct options *o, const struct target *t,
			 const struct ctl_stat ***out)
{
	const struct ctl_stat **v = xrealloc(NULL, t->r.nstats * sizeof(*v));
	size_t n = 0;

	for (size_t i = 0; i < t->r.nstats; i++) {
		const struct ctl_stat *s = &t->r.stats[i];

		/* A file still locked at a reset (or calm or advisory) keeps
		 * an all-zero record until something happens to it. (The
		 * counters a daemon does not send are CTL_UNKNOWN.) */
		if (!s->acquisitions && !s->contentions && !s->waits && !s->holds &&
		    !s->eagain && !s->edeadlk && !s->timeouts && !s->eintr &&
		    s->joins <= 0 && s->broken <= 0 && s->calm_learned <= 0 &&
		    s->advisory_passes <= 0)
			continue;
		if (path_ok(o, &s->file))
			v[n++] = s;
	}
	sort_key = o->sort;
	qsort(v, n, sizeof(*v), cmp_stat);
	if (o->top > 0 && n > (size_t)o->top)
		n = (size_t)o->top;
	*out = v;
	return n;
}

/* The lock-table rows of all targets, in display order. */
static size_t pick_rows(const struct options *o, const struct target *ts, size_t nt,
			bool waiters, struct row **out)
{
	struct row *rows = NULL;
	size_t n = 0;

	for (size_t ti = 0; ti < nt; ti++) {
		const struct ctl_reply *r = &ts[ti].r;

		if (!ts[ti].ok)
			continue;
		for (size_t i = 0; i < r->nlocks; i++) {
			if (!pid_ok(o, r->locks[i].owner.pid) || !path_ok(o, &r->locks[i].file))
				continue;
			rows = xrealloc(rows, (n + 1) * sizeof(*rows));
			rows[n++] = (struct row){ &ts[ti], ti, &r->locks[i], NULL, i };
		}
		for (size_t i = 0; waiters && i < r->nwaits; i++) {
			if (!pid_ok(o, r->waits[i].owner.pid) || !path_ok(o, &r->waits[i].file))
				continue;
			rows = xrealloc(rows, (n + 1) * sizeof(*rows));
			rows[n++] = (struct row){ &ts[ti], ti, NULL, &r->waits[i], i };
		}
	}
	if (n)
		qsort(rows, n, sizeof(*rows), cmp_row);
	*out = rows;
	return n;
}

static int cmp_krow(const void *pa, const void *pb)
{
	const struct krow *a = pa, *b = pb;

	if (a->ti != b->ti)
		return a->ti < b->ti ? -1 : 1;
	return cmp_file(&a->k->file, &b->k->file);
}

/* The --cluster rows of all targets, in display order. */
static size_t pick_cluster(const struct options *o, const struct target *ts, size_t nt,
			   struct krow **out)
{
	struct krow *rows = NULL;
	size_t n = 0;

	for (size_t ti = 0; ti < nt; ti++) {
		const struct ctl_reply *r = &ts[ti].r;

		if (!ts[ti].ok)
			continue;
		for (size_t i = 0; i < r->nclusters; i++) {
			const struct ctl_cluster *k = &r->clusters[i];

			if (!pid_ok(o, k->daemon_pid) || !path_ok(o, &k->file))
				continue;
			rows = xrealloc(rows, (n + 1) * sizeof(*rows));
			rows[n++] = (struct krow){ &ts[ti], ti, k };
		}
	}
	if (n)
		qsort(rows, n, sizeof(*rows), cmp_krow);
	*out = rows;
	return n;
}

/* Below --stats's table: the cluster counters of each daemon in cluster
 * mode, a small table of its own (nothing without cluster mode). */
static void render_counters(FILE *out, const struct options *o, const struct target *ts,
			    size_t nt)
{
	enum col cols[ARRAY_LEN(counter_cols) + 1];
	struct table tb = { 0 };
	size_t nc = 0;
	char buf[64];

	if (o->mount_col)
		cols[nc++] = Z_MOUNT;
	for (size_t i = 0; i < ARRAY_LEN(counter_cols); i++)
		cols[nc++] = counter_cols[i];
	tb.cols = cols;
	tb.ncols = nc;
	for (size_t ti = 0; ti < nt; ti++) {
		if (!ts[ti].ok || !ts[ti].r.have_cluster_stats)
			continue;
		tb.cells = xrealloc(tb.cells, (tb.nrows + 1) * nc * sizeof(char *));
		for (size_t c = 0; c < nc; c++)
			tb.cells[tb.nrows * nc + c] =
				cell_escape(counter_cell(cols[c], &ts[ti], buf, sizeof(buf)), o->raw);
		tb.nrows++;
	}
	if (tb.nrows) {
		fputc('\n', out);
		table_print(out, &tb, o);
	}
	table_free(&tb);
}

static void render_table(FILE *out, const struct options *o, const struct target *ts, size_t nt)
{
	enum col cols[NCOLS * 2 + 1];
	struct table tb = { 0 };
	size_t nc = 0;
	char buf[64];

	if (o->mount_col)
		cols[nc++] = o->stats ? S_MOUNT : o->cluster ? K_MOUNT : C_MOUNT;
	for (size_t i = 0; i < o->ncols; i++)
		cols[nc++] = o->cols[i];
	tb.cols = cols;
	tb.ncols = nc;

	if (o->stats) {
		for (size_t ti = 0; ti < nt; ti++) {
			const struct ctl_stat **v;
			size_t n;

			if (!ts[ti].ok)
				continue;
			n = pick_stats(o, &ts[ti], &v);
			tb.cells = xrealloc(tb.cells, (tb.nrows + n) * nc * sizeof(char *));
			for (size_t i = 0; i < n; i++, tb.nrows++) {
				struct srow sr = { &ts[ti], v[i] };

				for (size_t c = 0; c < nc; c++)
					tb.cells[tb.nrows * nc + c] =
						cell_escape(stat_cell(cols[c], &sr, buf, sizeof(buf)), o->raw);
			}
			free(v);
		}
	} else if (o->cluster) {
		struct krow *rows;
		size_t n = pick_cluster(o, ts, nt, &rows);

		tb.cells = xrealloc(NULL, n * nc * sizeof(char *));
		for (size_t i = 0; i < n; i++, tb.nrows++)
			for (size_t c = 0; c < nc; c++)
				tb.cells[i * nc + c] =
					cell_escape(cluster_cell(cols[c], &rows[i], buf, sizeof(buf)), o->raw);
		free(rows);
	} else {
		struct row *rows;
		size_t n = pick_rows(o, ts, nt, o->waiters, &rows);

		tb.cells = xrealloc(NULL, n * nc * sizeof(char *));
		for (size_t i = 0; i < n; i++, tb.nrows++)
			for (size_t c = 0; c < nc; c++)
				tb.cells[i * nc + c] =
					cell_escape(lock_cell(cols[c], &rows[i], buf, sizeof(buf)), o->raw);
		free(rows);
	}
	table_print(out, &tb, o);
	table_free(&tb);
	if (o->stats)
		render_counters(out, o, ts, nt);
}

/* ---- JSON output --------------------------------------------------------- */

/* Writes s as a JSON string. Bytes that are not valid UTF-8 (file names
 * may be anything) become U+FFFD so the document always parses. */
static void jstr(FILE *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	if (!s) {
		fputs("null", out);
		return;
	}
	fputc('"', out);
	while (*p) {
		unsigned char c = *p;
		size_t len = 0;

		if (c == '"' || c == '\\') {
			fputc('\\', out);
			fputc(c, out);
			p++;
			continue;
		}
		if (c < 0x20 || c == 0x7f) {
			fprintf(out, "\\u%04x", c);
			p++;
			continue;
		}
		if (c < 0x80) {
			fputc(c, out);
			p++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			len = 2;
		else if (c >= 0xe0 && c <= 0xef)
			len = 3;
		else if (c >= 0xf0 && c <= 0xf4)
			len = 4;
		bool valid = len > 0;
		for (size_t i = 1; valid && i < len; i++)
			if ((p[i] & 0xc0) != 0x80)
				valid = false;
		if (valid && len == 3 && ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f)))
			valid = false;
		if (valid && len == 4 && ((c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] > 0x8f)))
			valid = false;
		if (!valid) {
			fputs("\\ufffd", out);
			p++;
			continue;
		}
		fwrite(p, 1, len, out);
		p += len;
	}
	fputc('"', out);
}

static void jnum(FILE *out, long long v)
{
	if (v == CTL_UNKNOWN)
		fputs("null", out);
	else
		fprintf(out, "%lld", v);
}

static void jbool(FILE *out, bool v)
{
	fputs(v ? "true" : "false", out);
}

static void jkey(FILE *out, const char *k, bool first)
{
	fprintf(out, "%s\"%s\": ", first ? "" : ", ", k);
}

static void jowner(FILE *out, const struct ctl_owner *ow)
{
	char b[32];
	const char *user = user_name(ow->uid, b, sizeof(b));

	jkey(out, "pid", false); jnum(out, ow->pid);
	jkey(out, "tid", false); jnum(out, ow->tid);
	jkey(out, "command", false); jstr(out, ow->comm);
	jkey(out, "uid", false); jnum(out, ow->uid);
	jkey(out, "user", false); jstr(out, ow->uid == CTL_UNKNOWN ? NULL : user);
}

/* The "cluster" object of a target in cluster mode (absent otherwise). */
static void json_cluster(FILE *out, const struct options *o, const struct target *t)
{
	const struct ctl_cluster_stats *st = &t->r.cluster_stats;
	struct krow *rows;
	size_t n = pick_cluster(o, t, 1, &rows);

	fputs(",\n   \"cluster\": {", out);
	jkey(out, "spec", true); jstr(out, t->r.cluster);
	fputs(", \"locks\": [", out);
	for (size_t i = 0; i < n; i++) {
		const struct ctl_cluster *k = rows[i].k;

		fprintf(out, "%s\n     {", i ? "," : "");
		jkey(out, "path", true); jstr(out, k->file.path);
		jkey(out, "state", false); jstr(out, cluster_state_text(k->state));
		jkey(out, "host", false); jstr(out, k->host[0] ? k->host : NULL);
		jkey(out, "daemon_pid", false); jnum(out, k->daemon_pid);
		jkey(out, "token", false); jnum(out, k->token);
		jkey(out, "remote_waiters", false); jnum(out, k->remote_waiters);
		fputc('}', out);
	}
	fputs(n ? "\n   ]" : "]", out);
	free(rows);
	if (o->stats && t->r.have_cluster_stats) {
		fputs(", \"stats\": {", out);
		jkey(out, "requests", true); jnum(out, st->requests);
		jkey(out, "grants", false); jnum(out, st->grants);
		jkey(out, "recalls", false); jnum(out, st->recalls);
		jkey(out, "losses", false); jnum(out, st->losses);
		jkey(out, "fenced_writes", false); jnum(out, st->fenced_writes);
		fputc('}', out);
	}
	fputc('}', out);
}

static void render_json(FILE *out, const struct options *o, const struct target *ts, size_t nt)
{
	bool first_t = true;

	fputs("{\"lockfs\": [", out);
	for (size_t ti = 0; ti < nt; ti++) {
		const struct target *t = &ts[ti];
		const struct ctl_reply *r = &t->r;
		struct row *rows;
		size_t n;
		bool first;

		if (!t->ok)
			continue;
		fprintf(out, "%s\n  {", first_t ? "" : ",");
		first_t = false;
		jkey(out, "mount", true); jstr(out, t->root);
		jkey(out, "source", false); jstr(out, r->source);
		jkey(out, "daemon_pid", false); jnum(out, r->daemon_pid);
		jkey(out, "lease_ms", false); jnum(out, r->lease_ms);
		jkey(out, "lock_timeout_ms", false); jnum(out, r->lock_timeout_ms);
		jkey(out, "long_read_ms", false); jnum(out, r->long_read_ms);
		jkey(out, "reader_wait_ms", false); jnum(out, r->reader_wait_ms);
		jkey(out, "calm_after_ms", false); jnum(out, r->calm_after_ms);

		n = pick_rows(o, t, 1, true, &rows);
		fputs(",\n   \"locks\": [", out);
		first = true;
		for (size_t i = 0; i < n; i++) {
			const struct ctl_lock *l = rows[i].lk;

			if (!l)
				continue;
			fprintf(out, "%s\n     {", first ? "" : ",");
			first = false;
			jkey(out, "path", true); jstr(out, l->file.path);
			jkey(out, "mode", false); jstr(out, mode_text(l->mode));
			jkey(out, "state", false); jstr(out, l->state == CTL_LEASE ? "lease" : "held");
			jkey(out, "hold", false); jstr(out, hold_text(l->hold));
			jkey(out, "inherited", false); jbool(out, l->inherited);
			jkey(out, "joined", false); jbool(out, l->joined);
			jowner(out, &l->owner);
			jkey(out, "held_ns", false); jnum(out, l->held_ns);
			jkey(out, "lease_left_ns", false); jnum(out, l->lease_left_ns);
			jkey(out, "handles", false); jnum(out, l->handles);
			jkey(out, "waiters", false); jnum(out, l->waiters);
			fputc('}', out);
		}
		fputs(first ? "]" : "\n   ]", out);
		fputs(",\n   \"waiters\": [", out);
		first = true;
		for (size_t i = 0; i < n; i++) {
			const struct ctl_wait *w = rows[i].w;

			if (!w)
				continue;
			fprintf(out, "%s\n     {", first ? "" : ",");
			first = false;
			jkey(out, "path", true); jstr(out, w->file.path);
			jkey(out, "mode", false); jstr(out, mode_text(w->mode));
			jkey(out, "wants", false); jstr(out, want_text(w->want));
			jowner(out, &w->owner);
			jkey(out, "waited_ns", false); jnum(out, w->waited_ns);
			jkey(out, "blocker", false); jnum(out, w->blocker);
			fputc('}', out);
		}
		fputs(first ? "]" : "\n   ]", out);
		free(rows);

		/* Calm and advisory files (sorted by query()). */
		fputs(",\n   \"files\": [", out);
		first = true;
		for (size_t i = 0; i < r->nfileinfos; i++) {
			const struct ctl_fileinfo *fi = &r->fileinfos[i];

			if (!path_ok(o, &fi->file))
				continue;
			fprintf(out, "%s\n     {", first ? "" : ",");
			first = false;
			jkey(out, "path", true); jstr(out, fi->file.path);
			jkey(out, "calm", false); jbool(out, fi->calm);
			jkey(out, "advisory", false); jbool(out, fi->advisory);
			jkey(out, "written_ns", false); jnum(out, fi->written_ns);
			fputc('}', out);
		}
		fputs(first ? "]" : "\n   ]", out);
		if (r->cluster)
			json_cluster(out, o, t);

		if (o->stats) {
			const struct ctl_stat **v;
			size_t ns = pick_stats(o, t, &v);

			fputs(",\n   \"stats\": [", out);
			for (size_t i = 0; i < ns; i++) {
				const struct ctl_stat *s = v[i];

				fprintf(out, "%s\n     {", i ? "," : "");
				jkey(out, "path", true); jstr(out, s->file.path);
				jkey(out, "acquisitions", false); jnum(out, s->acquisitions);
				jkey(out, "contentions", false); jnum(out, s->contentions);
				jkey(out, "waits", false); jnum(out, s->waits);
				jkey(out, "wait_min_ns", false); jnum(out, s->wait_min_ns);
				jkey(out, "wait_mean_ns", false); jnum(out, s->wait_mean_ns);
				jkey(out, "wait_p99_ns", false); jnum(out, s->wait_p99_ns);
				jkey(out, "wait_max_ns", false); jnum(out, s->wait_max_ns);
				jkey(out, "wait_total_ns", false); jnum(out, s->wait_total_ns);
				jkey(out, "holds", false); jnum(out, s->holds);
				jkey(out, "hold_mean_ns", false); jnum(out, s->hold_mean_ns);
				jkey(out, "hold_max_ns", false); jnum(out, s->hold_max_ns);
				jkey(out, "eagain", false); jnum(out, s->eagain);
				jkey(out, "edeadlk", false); jnum(out, s->edeadlk);
				jkey(out, "timeouts", false); jnum(out, s->timeouts);
				jkey(out, "eintr", false); jnum(out, s->eintr);
				jkey(out, "joins", false); jnum(out, s->joins);
				jkey(out, "broken", false); jnum(out, s->broken);
				jkey(out, "calm_learned", false); jnum(out, s->calm_learned);
				jkey(out, "advisory_passes", false); jnum(out, s->advisory_passes);
				fputc('}', out);
			}
			fputs(ns ? "\n   ]" : "]", out);
			free(v);
		}
		fputs("}", out);
	}
	fputs(first_t ? "]}\n" : "\n]}\n", out);
}

/* ---- one run ------------------------------------------------------------- */

/* The targets named on the command line, or every lockfs mount. Prints an
 * error line for each argument that is not usable (marked !ok, root NULL). */
static size_t find_targets(const struct options *o, struct target **out, int *status)
{
	struct mnt *m = NULL;
	int nm = read_mounts(&m);
	struct target *ts = NULL;
	size_t n = 0;

	if (nm < 0) {
		fprintf(stderr, "%s: /proc/self/mountinfo: %s\n", prog, strerror(-nm));
		*status = 1;
		*out = NULL;
		return 0;
	}
	if (o->npaths == 0) {
		for (int i = 0; i < nm; i++) {
			bool dup = false;

			if (!is_lockfs_type(m[i].fstype))
				continue;
			/* A bind mount of the same lockfs: one daemon, shown once. */
			for (int j = 0; j < i; j++)
				if (is_lockfs_type(m[j].fstype) && m[j].maj == m[i].maj &&
				    m[j].min == m[i].min)
					dup = true;
			if (dup)
				continue;
			ts = xrealloc(ts, (n + 1) * sizeof(*ts));
			memset(&ts[n], 0, sizeof(ts[n]));
			ts[n].name = xstrdup(m[i].point);
			ts[n].root = xstrdup(m[i].point);
			ts[n].discovered = true;
			n++;
		}
	} else {
		for (size_t i = 0; i < o->npaths; i++) {
			ts = xrealloc(ts, (n + 1) * sizeof(*ts));
			memset(&ts[n], 0, sizeof(ts[n]));
			ts[n].name = xstrdup(o->paths[i]);
			if (resolve(o->paths[i], m, nm, &ts[n]) != 0) {
				*status = 1;
			} else {
				/* The same mount named twice is shown once. */
				for (size_t j = 0; j < n; j++) {
					if (ts[j].root && strcmp(ts[j].root, ts[n].root) == 0) {
						free(ts[n].root);
						ts[n].root = NULL;
						break;
					}
				}
			}
			n++;
		}
	}
	free_mounts(m, nm);
	*out = ts;
	return n;
}

static void free_targets(struct target *ts, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(ts[i].name);
		free(ts[i].root);
		ctl_reply_free(&ts[i].r);
	}
	free(ts);
}

/* Queries every target and renders the result into out. Returns the exit
 * status: 0, or 1 when any target failed. */
static int run_once(struct options *o, FILE *out)
{
	struct target *ts;
	int status = 0;
	size_t nt = find_targets(o, &ts, &status), nok = 0;
	const char *request = o->stats ? "stats\n" : "snapshot\n";
	/* --reset alone shows nothing; with --stats or --json it shows the
	 * figures first and then zeroes them. */
	bool reset_only = o->reset && !o->stats && !o->json;

	for (size_t i = 0; i < nt; i++) {
		if (!ts[i].root)
			continue;
		if (query(&ts[i], reset_only ? "reset\n" : request) != 0) {
			status = 1;
			continue;
		}
		ts[i].ok = true;
		nok++;
	}
	if (reset_only) {
		free_targets(ts, nt);
		return status;
	}
	if (o->reset) {
		for (size_t i = 0; i < nt; i++) {
			struct target rt = { .name = ts[i].name, .root = ts[i].root,
					     .discovered = ts[i].discovered };

			if (!ts[i].ok)
				continue;
			if (query(&rt, "reset\n") != 0)
				status = 1;
			ctl_reply_free(&rt.r);
		}
	}
	o->mount_col = !o->output && nok > 1;
	if (o->json)
		render_json(out, o, ts, nt);
	else if (nok > 0 || status == 0)
		/* A header over nothing would only hide the error lines. */
		render_table(out, o, ts, nt);
	free_targets(ts, nt);
	return status;
}

/* ---- --watch ------------------------------------------------------------- */

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static int watch(struct options *o)
{
	struct sigaction sa = { .sa_handler = on_signal };
	bool tty = isatty(STDOUT_FILENO);
	int status = 0;

	/* No SA_RESTART: the sleep between frames must end at Ctrl-C. */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	while (!stop_requested) {
		char *frame = NULL;
		size_t len = 0;
		FILE *mem = open_memstream(&frame, &len);
		struct timespec ts;

		if (!mem)
			die_oom();
		if (tty) {
			time_t now = time(NULL);
			struct tm tm;
			char when[32];

			localtime_r(&now, &tm);
			strftime(when, sizeof(when), "%H:%M:%S", &tm);
			/* Home and clear, so the table redraws in place. */
			fprintf(mem, "\033[H\033[2J%s: every %gs, %s (Ctrl-C to quit)\n\n",
				prog, o->watch, when);
		}
		status = run_once(o, mem);
		if (!tty)
			fputc('\n', mem);
		fclose(mem);
		fwrite(frame, 1, len, stdout);
		fflush(stdout);
		free(frame);

		ts.tv_sec = (time_t)o->watch;
		ts.tv_nsec = (long)((o->watch - (double)ts.tv_sec) * 1e9);
		while (!stop_requested && nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
	}
	return status;
}

int main(int argc, char **argv)
{
	struct options o;
	int status;

	parse_options(argc, argv, &o);
	if (o.watch > 0)
		status = watch(&o);
	else
		status = run_once(&o, stdout);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "%s: write error: %s\n", prog, strerror(errno));
		status = 1;
	}
	free(o.pids);
	free(o.globs);
	return status;
}
