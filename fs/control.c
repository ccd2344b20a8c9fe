/* The control file (see control.h for what it is and who calls it).
 *
 * Reply format, version 1. One record per line, fields separated by one tab,
 * every line ending in '\n':
 *
 *   lockfs-control 1
 *   mount  MOUNTPOINT SOURCE DAEMON_PID LEASE_MS LOCK_TIMEOUT_MS
 *          LONG_READ_MS READER_WAIT_MS CALM_AFTER_MS CLUSTER
 *   lock   PATH MODE STATE PID TID COMM UID HELD_NS LEASE_LEFT_NS WAITERS HANDLES
 *          CLASS HOLD ORIGIN
 *   wait   PATH MODE WANTS PID TID COMM UID WAITED_NS BLOCKER_PID CLASS
 *   file   PATH FLAGS WRITTEN_NS
 *   stat   PATH ACQUISITIONS CONTENTIONS WAITS WAIT_MIN_NS WAIT_MEAN_NS
 *          WAIT_P99_NS WAIT_MAX_NS WAIT_TOTAL_NS HOLDS HOLD_MEAN_NS
 *          HOLD_MAX_NS EAGAIN EDEADLK TIMEOUT EINTR
 *          JOINS BROKEN CALM_LEARNED ADVISORY_PASSES
 *   cluster PATH STATE TOKEN REMOTE_WAITERS HOST DAEMON_PID
 *   clusterstat REQUESTS GRANTS RECALLS LOSSES FENCED_WRITES
 *   error  MESSAGE
 *   end    NLOCK NWAIT NSTAT NFILE NCLUSTER
 *
 * The closing `end` line repeats the record counts, so a reader can tell a
 * complete reply from a cut one. Strings are escaped: backslash, tab,
 * newline and carriage return as \\ \t \n \r, any other byte below 0x20 and
 * 0x7f as \xHH; other bytes pass unchanged. A PATH is "/" followed by the
 * path relative to the mount root, or "?" and the file key in 16 hex digits
 * when the file has no name any more. A number that is not known (the owner
 * was already forgotten, a lease time on an open hold) is "-".
 * MODE is exclusive|shared, STATE held|lease, WANTS read|write|barrier.
 *
 * Added to version 1 after its first release (the fields on the last line
 * of mount, lock and stat above, CLASS of wait, the file record and NFILE;
 * a reader of the first release ignores them all, and a reader must accept
 * a reply without them, from an older daemon):
 *   LONG_READ_MS READER_WAIT_MS CALM_AFTER_MS  the mount's -o long_read,
 *           reader_wait and calm_after in ms, 0 = never.
 *   CLASS   exclusive|shared|update: the lock class. For a holder it is the
 *           class the hold acts as now (update intent on a calm file, or
 *           held long, acts as shared); for a waiter the class asked for.
 *           MODE says the same in the first version's words: update is
 *           "exclusive" there.
 *   HOLD    normal|long|broken: long, an update-intent read held open past
 *           long_read that now shares with other readers; broken, a reader
 *           that a writer stopped waiting for after reader_wait.
 *   ORIGIN  "-", or a comma-separated list of inherited (passed on by an
 *           exited thread or child process) and joined (granted by joining
 *           a hold of the owner's own program), each at most once.
 *   file    what the lock table learned of a file. FLAGS is "-" or a
 *           comma-separated list of calm (readers share until the next
 *           write) and advisory (programs lock it with flock or fcntl, the
 *           mandatory lock steps aside), each at most once; WRITTEN_NS how
 *           long ago a write was last granted on it, "-" if never. Sent for
 *           each calm or advisory file among those with holders or waiters
 *           or, in a stats reply, among all files with statistics.
 *   JOINS BROKEN CALM_LEARNED ADVISORY_PASSES  the lt_stats counters joins,
 *           broken, calm_learned and advisory_passes.
 *   NFILE   the number of file records.
 * Added for cluster mode (fs/cluster.h), sent only in it:
 *   CLUSTER the mount's -o cluster= value, "-" when not in cluster mode.
 *   cluster a file's cluster lock as this daemon knows it, without asking
 *           ZooKeeper. Sent for each file with holders or waiters that
 *           this daemon asked the cluster for, and for each file whose
 *           cluster lock it holds, waits for or is giving up. STATE is
 *           remote (another daemon has it, as last seen), acquiring,
 *           cached (held, nobody here uses it), held (in use here),
 *           recalled (another daemon asked; finishing here), handing-over
 *           or lost (the session may be gone; not trusted). HOST and
 *           DAEMON_PID name the daemon that holds it (this one in the
 *           states cached to lost), as last seen: "" and "-" when not
 *           known. TOKEN is that hold's fencing token, "-" when not known.
 *           REMOTE_WAITERS counts the daemons queued behind the holder
 *           (this one not included), "-" when this daemon no longer
 *           follows the file.
 *   clusterstat the daemon's cluster counters (cluster_stats), in a stats
 *           reply: ZooKeeper requests sent, grants, recalls, losses and
 *           writes refused because their lock was lost.
 *   NCLUSTER the number of cluster records.
 * Readers ignore line kinds and trailing fields they do not know, which is
 * how version 1 can grow; they refuse keywords they do not know in the
 * fields they understand, so a new keyword value goes into a new field.
 *
 * Concurrency: a struct control is fixed after control_new(), except for
 * its list of open handles (under control.mu, which nothing else is taken
 * under). Each handle has its own mutex (FUSE may run two requests on one
 * handle at once). Building a reply takes the lock table's mutex only inside
 * locking_snapshot() / locking_stats_reset(); owners and paths are resolved
 * afterwards with no lock of ours held. */
#include "control.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster.h"
#include "config.h"
#include "list.h"
#include "locking.h"
#include "log.h"
#include "owner.h"

#define CONTROL_VERSION 1

struct control {
	/* All fixed by control_new(). */
	struct locking *l;
	control_path_fn path_of;
	void *path_arg;
	char *mountpoint;
	char *source;
	unsigned lease_ms;
	unsigned lock_timeout_ms;
	unsigned long_read_ms;
	unsigned reader_wait_ms;
	unsigned calm_after_ms;
	char *cluster_spec;     /* -o cluster=, NULL when off */
	uid_t owner_uid;        /* the daemon's user, who may reset (and root) */

	pthread_mutex_t mu;     /* protects handles and every handle's node */
	struct list handles;    /* open, for control_free() */
};

struct control_handle {
	struct control *c;      /* immutable */
	struct list_node node;  /* in c->handles, under c->mu */

	pthread_mutex_t mu;     /* protects everything below */
	char *reply;
	size_t len;
	bool ready;             /* reply holds an answer (else built on read) */
};

/* ---- a growing text buffer ---------------------------------------------- */

struct sbuf {
	char *p;
	size_t len, cap;
	bool oom;               /* an allocation failed: the text is incomplete */
};

static void sb_reserve(struct sbuf *b, size_t more)
{
	size_t cap;
	char *p;

	if (b->oom || b->len + more <= b->cap)
		return;
	cap = b->cap ? b->cap : 1024;
	while (cap < b->len + more)
		cap *= 2;
	p = realloc(b->p, cap);
	if (!p) {
		b->oom = true;
		return;
	}
	b->p = p;
	b->cap = cap;
}

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
	sb_reserve(b, n);
	if (b->oom)
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static void sb_puts(struct sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

static void sb_printf(struct sbuf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	/* Only ever used for numbers and keywords, which fit. */
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		b->oom = true;
		return;
	}
	sb_add(b, tmp, (size_t)n);
}

/* A tab, then the escaped string. */
static void sb_field(struct sbuf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	sb_add(b, "\t", 1);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		char e[4] = { '\\', 0, 0, 0 };
		size_t n = 2;

		switch (*p) {
		case '\\': e[1] = '\\'; break;
		case '\t': e[1] = 't'; break;
		case '\n': e[1] = 'n'; break;
		case '\r': e[1] = 'r'; break;
		default:
			if (*p >= 0x20 && *p != 0x7f) {
				sb_add(b, (const char *)p, 1);
				continue;
			}
			e[1] = 'x';
			e[2] = hex[*p >> 4];
			e[3] = hex[*p & 15];
			n = 4;
		}
		sb_add(b, e, n);
	}
}

static void sb_num(struct sbuf *b, uint64_t v)
{
	sb_printf(b, "\t%" PRIu64, v);
}

/* Fields of a record in protocol order, written as one list so that the
 * order is read in one place. */
static void sb_nums(struct sbuf *b, const uint64_t *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sb_num(b, v[i]);
}

#define SB_NUMS(b, ...) \
	sb_nums(b, (const uint64_t[]){ __VA_ARGS__ }, \
		sizeof((const uint64_t[]){ __VA_ARGS__ }) / sizeof(uint64_t))

static void sb_unknown(struct sbuf *b)
{
	sb_add(b, "\t-", 2);
}

/* ---- requests ------------------------------------------------------------ */

int control_parse_request(const char *buf, size_t len)
{
	static const struct {
		const char *word;
		enum control_request kind;
	} words[] = {
		{ "snapshot", CONTROL_SNAPSHOT },
		{ "stats", CONTROL_STATS },
		{ "reset", CONTROL_RESET },
	};

	if (!buf || len == 0 || len > CONTROL_MAX_REQUEST)
		return -EINVAL;
	/* One line: the newline is optional (echo -n works too), nothing may
	 * follow it. */
	if (buf[len - 1] == '\n')
		len--;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		size_t n = strlen(words[i].word);

		if (len == n && memcmp(buf, words[i].word, n) == 0)
			return words[i].kind;
	}
	return -EINVAL;
}

/* ---- building replies ---------------------------------------------------- */

static void put_header(struct control *c, struct sbuf *b)
{
	sb_printf(b, "lockfs-control %d\n", CONTROL_VERSION);
	sb_puts(b, "mount");
	sb_field(b, c->mountpoint);
	sb_field(b, c->source);
	/* getpid() now, not at control_new(): the daemon may fork into the
	 * background after setting up. */
	SB_NUMS(b, (uint64_t)getpid(), c->lease_ms, c->lock_timeout_ms, c->long_read_ms,
		c->reader_wait_ms, c->calm_after_ms);
	if (c->cluster_spec)
		sb_field(b, c->cluster_spec);
	else
		sb_unknown(b);
	sb_puts(b, "\n");
}

static void put_path(struct control *c, struct sbuf *b, lt_file_t file)
{
	char path[PATH_MAX + 1];

	path[0] = '/';
	if (c->path_of && c->path_of(c->path_arg, file, path + 1, sizeof(path) - 1) == 0) {
		path[sizeof(path) - 1] = '\0';
		sb_field(b, path);
		return;
	}
	sb_printf(b, "\t?%016" PRIx64, file);
}

/* PID TID COMM UID of an owner, "-" for what is no longer known. */
static void put_owner(struct control *c, struct sbuf *b, lt_owner_t owner)
{
	struct owner_info oi;

	if (owner_info(locking_owners(c->l), owner, &oi) != 0) {
		sb_unknown(b);
		sb_unknown(b);
		sb_field(b, "");
		sb_unknown(b);
		return;
	}
	oi.comm[sizeof(oi.comm) - 1] = '\0';
	sb_num(b, (uint64_t)oi.pid);
	sb_num(b, (uint64_t)oi.tid);
	sb_field(b, oi.comm);
	sb_num(b, (uint64_t)oi.uid);
}

static uint64_t since(uint64_t now, uint64_t t)
{
	return now > t ? now - t : 0;
}

/* MODE: the first version's two words (update intent excludes writers). */
static const char *mode_name(enum lt_class cls)
{
	return cls == LT_SHARED ? "shared" : "exclusive";
}

/* CLASS. */
static const char *class_name(enum lt_class cls)
{
	switch (cls) {
	case LT_SHARED: return "shared";
	case LT_UPDATE: return "update";
	default: return "exclusive";
	}
}

static const char *hold_name(enum lt_hold_state st)
{
	switch (st) {
	case LT_HS_LONG: return "long";
	case LT_HS_BROKEN: return "broken";
	default: return "normal";
	}
}

/* A comma-separated list of the words whose flag is set, "-" for none. */
static void put_flags(struct sbuf *b, const char *const *words, const bool *set, size_t n)
{
	bool any = false;

	for (size_t i = 0; i < n; i++) {
		if (!set[i])
			continue;
		sb_puts(b, any ? "," : "\t");
		sb_puts(b, words[i]);
		any = true;
	}
	if (!any)
		sb_unknown(b);
}

static void put_origin(struct sbuf *b, const struct lk_holder *h)
{
	static const char *const words[] = { "inherited", "joined" };
	const bool set[] = { h->inherited, h->joined };

	put_flags(b, words, set, 2);
}

static bool file_flagged(const struct lt_file_info *fi)
{
	return fi->calm || fi->advisory;
}

static void put_file_info(struct control *c, struct sbuf *b, uint64_t now,
			  lt_file_t file, const struct lt_file_info *fi)
{
	static const char *const words[] = { "calm", "advisory" };
	const bool set[] = { fi->calm, fi->advisory };

	sb_puts(b, "file");
	put_path(c, b, file);
	put_flags(b, words, set, 2);
	if (fi->last_write)
		sb_num(b, since(now, fi->last_write));
	else
		sb_unknown(b);
	sb_puts(b, "\n");
}

static const char *want_name(unsigned flags)
{
	if (flags & LT_F_BARRIER)
		return "barrier";
	return (flags & LT_F_WRITE) ? "write" : "read";
}

/* Who a waiter waits for, as lslocks shows it: the first holder, else the
 * waiter queued before it (the queue is FIFO). 0 when unknown. */
static pid_t blocker_of(struct control *c, const struct lk_file_snap *f, size_t wi)
{
	struct owner_info oi;
	lt_owner_t who;

	if (f->nholders)
		who = f->holders[0].owner;
	else if (wi > 0)
		who = f->waiters[wi - 1].owner;
	else
		return 0;
	if (owner_info(locking_owners(c->l), who, &oi) != 0)
		return 0;
	return oi.pid;
}

static void put_file(struct control *c, struct sbuf *b, const struct lk_snapshot *s,
		     const struct lk_file_snap *f, size_t *nlock, size_t *nwait)
{
	for (size_t i = 0; i < f->nholders; i++) {
		const struct lk_holder *h = &f->holders[i];

		sb_puts(b, "lock");
		put_path(c, b, f->file);
		sb_printf(b, "\t%s\t%s", mode_name(h->cls), h->handles ? "held" : "lease");
		put_owner(c, b, h->owner);
		sb_num(b, since(s->now, h->since));
		if (h->handles)
			sb_unknown(b);
		else
			sb_num(b, h->lease_until > s->now ? h->lease_until - s->now : 0);
		sb_num(b, f->nwaiters);
		sb_num(b, h->handles);
		sb_printf(b, "\t%s\t%s", class_name(h->cls), hold_name(h->state));
		put_origin(b, h);
		sb_puts(b, "\n");
		(*nlock)++;
	}
	for (size_t i = 0; i < f->nwaiters; i++) {
		const struct lk_waiter *w = &f->waiters[i];
		pid_t blocker = blocker_of(c, f, i);

		sb_puts(b, "wait");
		put_path(c, b, f->file);
		sb_printf(b, "\t%s\t%s", mode_name(w->cls), want_name(w->flags));
		put_owner(c, b, w->owner);
		sb_num(b, since(s->now, w->since));
		if (blocker > 0)
			sb_num(b, (uint64_t)blocker);
		else
			sb_unknown(b);
		sb_printf(b, "\t%s", class_name(w->cls));
		sb_puts(b, "\n");
		(*nwait)++;
	}
}

static void put_stat(struct control *c, struct sbuf *b, const struct lk_stat_snap *ss)
{
	const struct lt_stats *st = &ss->st;

	sb_puts(b, "stat");
	put_path(c, b, ss->file);
	SB_NUMS(b, st->acquisitions, st->contentions, st->waits,
		st->waits ? st->wait_min_ns : 0,
		st->waits ? st->wait_total_ns / st->waits : 0,
		lt_stats_wait_percentile(st, 99.0), st->wait_max_ns, st->wait_total_ns,
		st->holds, st->holds ? st->hold_total_ns / st->holds : 0, st->hold_max_ns,
		st->fail_eagain, st->fail_edeadlk, st->fail_timeout, st->fail_intr,
		st->joins, st->broken, st->calm_learned, st->advisory_passes);
	sb_puts(b, "\n");
}

/* ---- cluster mode ------------------------------------------------------- */

static const char *cluster_state_word(enum cl_state st, bool used_here)
{
	switch (st) {
	case CL_ACQUIRING: return "acquiring";
	case CL_HELD: return used_here ? "held" : "cached";
	case CL_RECALLED: return "recalled";
	case CL_HANDING_OVER: return "handing-over";
	case CL_LOST: return "lost";
	default: return "remote";
	}
}

/* Whether a program here holds the file (the other hosts' pseudo-owner
 * does not count). */
static bool used_here(const struct lk_file_snap *f)
{
	for (size_t i = 0; f && i < f->nholders; i++)
		if (!(f->holders[i].owner & LK_REMOTE_OWNER))
			return true;
	return false;
}

/* A `cluster` record of `file`, if this daemon ever asked for it. The
 * holder's identity is its znode's data, "<host> <pid>". */
static bool put_cluster(struct control *c, struct sbuf *b, struct cluster *cl, lt_file_t file,
			const struct lk_file_snap *f)
{
	struct cluster_lock_info in;
	char *sp;
	long long pid = -1;

	if (cluster_lock_info(cl, file, &in) != 0)
		return false;
	sb_puts(b, "cluster");
	put_path(c, b, file);
	sb_printf(b, "\t%s", cluster_state_word(in.st, used_here(f)));
	if (in.holder_token > 0)
		sb_num(b, (uint64_t)in.holder_token);
	else
		sb_unknown(b);
	if (in.remote_waiters >= 0)
		sb_num(b, (uint64_t)in.remote_waiters);
	else
		sb_unknown(b);
	sp = strrchr(in.holder, ' ');
	if (sp && sp[1] && strspn(sp + 1, "0123456789") == strlen(sp + 1) && strlen(sp + 1) < 10) {
		pid = atoll(sp + 1);
		*sp = '\0';
	}
	sb_field(b, in.holder);
	if (pid > 0)
		sb_num(b, (uint64_t)pid);
	else
		sb_unknown(b);
	sb_puts(b, "\n");
	return true;
}

static int cmp_key(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The cluster records: the files of the snapshot, then the cluster locks
 * this daemon holds or wants that no program here holds or waits for (a
 * cached lock). All from the cluster module's records: no ZooKeeper
 * request. Returns how many. */
static size_t put_clusters(struct control *c, struct sbuf *b, struct cluster *cl,
			   const struct lk_snapshot *s)
{
	uint64_t *seen = calloc(s->nfiles ? s->nfiles : 1, sizeof(*seen));
	uint64_t *active = NULL;
	size_t n = 0, na, nactive = 0;

	if (!seen) {
		b->oom = true;
		return 0;
	}
	for (size_t i = 0; i < s->nfiles && !b->oom; i++) {
		seen[i] = s->files[i].file;
		n += put_cluster(c, b, cl, s->files[i].file, &s->files[i]);
	}
	qsort(seen, s->nfiles, sizeof(*seen), cmp_key);
	/* Sized first, filled after: it may grow in between. */
	for (na = cluster_active_keys(cl, NULL, 0); !b->oom; na = nactive) {
		uint64_t *v = realloc(active, (na ? na : 1) * sizeof(*v));

		if (!v) {
			b->oom = true;
			break;
		}
		active = v;
		nactive = cluster_active_keys(cl, active, na);
		if (nactive <= na)
			break;
	}
	for (size_t i = 0; i < nactive && !b->oom; i++)
		if (!bsearch(&active[i], seen, s->nfiles, sizeof(*seen), cmp_key))
			n += put_cluster(c, b, cl, active[i], NULL);
	free(active);
	free(seen);
	return n;
}

static void put_cluster_stats(struct sbuf *b, struct cluster *cl)
{
	struct cluster_stats st;

	cluster_get_stats(cl, &st);
	sb_puts(b, "clusterstat");
	SB_NUMS(b, st.requests, st.grants, st.recalls, st.losses, st.fenced_writes);
	sb_puts(b, "\n");
}

static void put_error(struct sbuf *b, const char *msg)
{
	sb_printf(b, "lockfs-control %d\nerror", CONTROL_VERSION);
	sb_field(b, msg);
	sb_puts(b, "\nend\t0\t0\t0\t0\n");
}

/* The reply to a request, in *b. 0, or -errno when no reply can be built
 * (b is then released). */
static int build_reply(struct control *c, enum control_request kind, struct sbuf *b)
{
	struct lk_snapshot s;
	/* Off, or not joined yet: no cluster records. */
	struct cluster *cl = c->cluster_spec ? locking_cluster(c->l) : NULL;
	size_t nlock = 0, nwait = 0, nfile = 0, ncluster = 0;
	int rc;

	memset(b, 0, sizeof(*b));
	if (kind == CONTROL_RESET) {
		locking_stats_reset(c->l);
		if (cl)
			cluster_reset_stats(cl);
		put_header(c, b);
		sb_puts(b, "end\t0\t0\t0\t0\n");
		goto done;
	}

	rc = locking_snapshot(c->l, kind == CONTROL_STATS, &s);
	if (rc < 0)
		return rc;
	put_header(c, b);
	for (size_t i = 0; i < s.nfiles && !b->oom; i++)
		put_file(c, b, &s, &s.files[i], &nlock, &nwait);
	/* Calm and advisory files: in a stats reply, of every file the table
	 * knows (the statistics walk visits them all, locked ones included);
	 * else of the files with holders or waiters. */
	if (kind == CONTROL_STATS) {
		for (size_t i = 0; i < s.nstats && !b->oom; i++) {
			if (!file_flagged(&s.stats[i].info))
				continue;
			put_file_info(c, b, s.now, s.stats[i].file, &s.stats[i].info);
			nfile++;
		}
	} else {
		for (size_t i = 0; i < s.nfiles && !b->oom; i++) {
			if (!file_flagged(&s.files[i].info))
				continue;
			put_file_info(c, b, s.now, s.files[i].file, &s.files[i].info);
			nfile++;
		}
	}
	if (cl)
		ncluster = put_clusters(c, b, cl, &s);
	for (size_t i = 0; i < s.nstats && !b->oom; i++)
		put_stat(c, b, &s.stats[i]);
	if (cl && kind == CONTROL_STATS)
		put_cluster_stats(b, cl);
	sb_printf(b, "end\t%zu\t%zu\t%zu\t%zu\t%zu\n", nlock, nwait, s.nstats, nfile, ncluster);
	locking_snapshot_free(&s);
done:
	if (b->oom) {
		free(b->p);
		memset(b, 0, sizeof(*b));
		return -ENOMEM;
	}
	return 0;
}

/* Replaces the handle's reply. Called with h->mu held. */
static void set_reply(struct control_handle *h, struct sbuf *b)
{
	free(h->reply);
	h->reply = b->p;
	h->len = b->len;
	h->ready = true;
}

/* ---- the entry points ---------------------------------------------------- */

int control_new(struct control **out, struct locking *l, control_path_fn path_of,
		void *path_arg, const struct lockfs_config *cfg)
{
	struct control *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->l = l;
	c->path_of = path_of;
	c->path_arg = path_arg;
	c->mountpoint = strdup(cfg->mountpoint ? cfg->mountpoint : "");
	c->source = strdup(cfg->source ? cfg->source : "");
	c->lease_ms = cfg->lease_ms;
	c->lock_timeout_ms = cfg->lock_timeout_ms;
	c->long_read_ms = cfg->long_read_ms;
	c->reader_wait_ms = cfg->reader_wait_ms;
	c->calm_after_ms = cfg->calm_after_ms;
	c->cluster_spec = cfg->cluster ? strdup(cfg->cluster) : NULL;
	c->owner_uid = getuid();
	pthread_mutex_init(&c->mu, NULL);
	list_init(&c->handles);
	if (!c->mountpoint || !c->source || (cfg->cluster && !c->cluster_spec)) {
		control_free(c);
		return -ENOMEM;
	}
	*out = c;
	return 0;
}

static void handle_free(struct control_handle *h)
{
	pthread_mutex_destroy(&h->mu);
	free(h->reply);
	free(h);
}

void control_free(struct control *c)
{
	struct list_node *n;

	if (!c)
		return;
	/* Nobody else runs now: the session is over. */
	while ((n = list_pop(&c->handles)) != NULL)
		handle_free(list_entry(n, struct control_handle, node));
	pthread_mutex_destroy(&c->mu);
	free(c->mountpoint);
	free(c->source);
	free(c->cluster_spec);
	free(c);
}

int control_open(struct control *c, struct control_handle **out)
{
	struct control_handle *h = calloc(1, sizeof(*h));

	if (!h)
		return -ENOMEM;
	h->c = c;
	pthread_mutex_init(&h->mu, NULL);
	pthread_mutex_lock(&c->mu);
	list_add_head(&c->handles, &h->node);
	pthread_mutex_unlock(&c->mu);
	*out = h;
	return 0;
}

int control_write(struct control *c, struct control_handle *h, const char *buf,
		  size_t len, uid_t caller)
{
	struct sbuf b = { 0 };
	int kind = control_parse_request(buf, len);
	int rc = 0;

	if (kind < 0) {
		log_debug("control: malformed request of %zu bytes from uid %u", len,
			  (unsigned)caller);
		put_error(&b, "malformed request (expected snapshot, stats or reset)");
		rc = -EINVAL;
	} else if (kind == CONTROL_RESET && caller != 0 && caller != c->owner_uid) {
		put_error(&b, "permission denied: only the mount's owner or root may reset");
		rc = -EPERM;
	} else {
		rc = build_reply(c, (enum control_request)kind, &b);
		if (rc < 0)
			return rc;
		if (kind == CONTROL_RESET)
			log_debug("control: statistics reset by uid %u", (unsigned)caller);
	}
	if (b.oom) {
		free(b.p);
		return -ENOMEM;
	}
	pthread_mutex_lock(&h->mu);
	set_reply(h, &b);
	pthread_mutex_unlock(&h->mu);
	return rc;
}

ssize_t control_read(struct control *c, struct control_handle *h, char *buf,
		     size_t size, off_t off)
{
	ssize_t n = 0;

	if (off < 0)
		return -EINVAL;
	pthread_mutex_lock(&h->mu);
	/* Built at the first read rather than at open, so that a reader that
	 * opens to write a request does not pay for a snapshot it never
	 * reads. For a plain reader it is the same: one snapshot per handle. */
	if (!h->ready) {
		struct sbuf b;
		int rc = build_reply(c, CONTROL_SNAPSHOT, &b);

		if (rc < 0) {
			pthread_mutex_unlock(&h->mu);
			return rc;
		}
		set_reply(h, &b);
	}
	if ((uint64_t)off < h->len) {
		size_t m = h->len - (size_t)off;

		if (m > size)
			m = size;
		if (m > SSIZE_MAX)
			m = SSIZE_MAX;
		memcpy(buf, h->reply + off, m);
		n = (ssize_t)m;
	}
	pthread_mutex_unlock(&h->mu);
	return n;
}

void control_release(struct control_handle *h)
{
	struct control *c;

	if (!h)
		return;
	c = h->c;
	pthread_mutex_lock(&c->mu);
	list_remove(&h->node);
	pthread_mutex_unlock(&c->mu);
	handle_free(h);
}
