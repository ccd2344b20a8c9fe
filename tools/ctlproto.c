/* Parser for control-file replies (see ctlproto.h; the format is described
 * at the top of fs/control.c). */
#include "ctlproto.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* More fields than any version-1 record has; later ones are ignored. */
#define MAX_FIELDS 32

struct field {
	const char *p;
	size_t n;
};

struct parser {
	struct ctl_reply *r;
	size_t lineno;
	char *err;
	size_t errlen;
	size_t cap_locks, cap_waits, cap_stats, cap_fileinfos, cap_clusters;
};

static int fail(struct parser *ps, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int fail(struct parser *ps, const char *fmt, ...)
{
	va_list ap;
	int n = 0;

	if (ps->errlen == 0)
		return -EINVAL;
	if (ps->lineno)
		n = snprintf(ps->err, ps->errlen, "line %zu: ", ps->lineno);
	if (n < 0 || (size_t)n >= ps->errlen)
		n = 0;
	va_start(ap, fmt);
	vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int ctl_unescape(const char *in, size_t n, char **out)
{
	char *s = malloc(n + 1), *o = s;

	*out = NULL;
	if (!s)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		char c = in[i];

		if (c == '\t' || c == '\n' || c == '\0')
			goto bad;
		if (c != '\\') {
			*o++ = c;
			continue;
		}
		if (++i >= n)
			goto bad;
		switch (in[i]) {
		case '\\': *o++ = '\\'; break;
		case 't': *o++ = '\t'; break;
		case 'n': *o++ = '\n'; break;
		case 'r': *o++ = '\r'; break;
		case 'x': {
			int hi, lo;

			if (i + 2 >= n)
				goto bad;
			hi = hexval(in[i + 1]);
			lo = hexval(in[i + 2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				goto bad;
			*o++ = (char)(hi << 4 | lo);
			i += 2;
			break;
		}
		default:
			goto bad;
		}
	}
	*o = '\0';
	*out = s;
	return 0;
bad:
	free(s);
	return -EINVAL;
}

char *ctl_escape(const char *s)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = strlen(s);
	char *out, *o;

	if (n > (SIZE_MAX - 1) / 4)
		return NULL;
	out = malloc(4 * n + 1);
	if (!out)
		return NULL;
	o = out;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '\\': *o++ = '\\'; *o++ = '\\'; break;
		case '\t': *o++ = '\\'; *o++ = 't'; break;
		case '\n': *o++ = '\\'; *o++ = 'n'; break;
		case '\r': *o++ = '\\'; *o++ = 'r'; break;
		default:
			if (*p < 0x20 || *p == 0x7f) {
				*o++ = '\\';
				*o++ = 'x';
				*o++ = hex[*p >> 4];
				*o++ = hex[*p & 15];
			} else {
				*o++ = (char)*p;
			}
		}
	}
	*o = '\0';
	return out;
}

static bool is(const struct field *f, const char *word)
{
	size_t n = strlen(word);

	return f->n == n && memcmp(f->p, word, n) == 0;
}

/* A decimal number that fits a long long; "-" (CTL_UNKNOWN) when allowed. */
static bool num(const struct field *f, bool unknown_ok, long long *out)
{
	long long v = 0;

	if (unknown_ok && f->n == 1 && f->p[0] == '-') {
		*out = CTL_UNKNOWN;
		return true;
	}
	if (f->n == 0 || f->n > 19)
		return false;
	for (size_t i = 0; i < f->n; i++) {
		int d = f->p[i] - '0';

		if (d < 0 || d > 9 || v > (LLONG_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

static int text(struct parser *ps, const struct field *f, char **out, const char *what)
{
	int rc = ctl_unescape(f->p, f->n, out);

	if (rc == -EINVAL)
		return fail(ps, "bad escape in %s", what);
	return rc;
}

static int file(struct parser *ps, const struct field *f, struct ctl_file *out)
{
	out->path = NULL;
	out->key = 0;
	if (f->n >= 2 && f->p[0] == '/')
		return text(ps, &(struct field){ f->p + 1, f->n - 1 }, &out->path, "path");
	if (f->n == 17 && f->p[0] == '?') {
		for (size_t i = 1; i < 17; i++) {
			int d = hexval(f->p[i]);

			if (d < 0)
				return fail(ps, "bad file key");
			out->key = out->key << 4 | (uint64_t)d;
		}
		return 0;
	}
	return fail(ps, "bad path field");
}

static int owner(struct parser *ps, const struct field *f, struct ctl_owner *o)
{
	if (!num(&f[0], true, &o->pid) || !num(&f[1], true, &o->tid) ||
	    !num(&f[3], true, &o->uid))
		return fail(ps, "bad owner");
	return text(ps, &f[2], &o->comm, "command");
}

/* MODE: the two words of the first version of the format. */
static bool mode(const struct field *f, enum ctl_mode *m)
{
	if (is(f, "exclusive"))
		*m = CTL_EXCLUSIVE;
	else if (is(f, "shared"))
		*m = CTL_SHARED;
	else
		return false;
	return true;
}

/* CLASS, which must agree with MODE (*m, as parsed): update is "exclusive"
 * in MODE. Replaces *m. */
static bool lock_class(const struct field *f, enum ctl_mode *m)
{
	enum ctl_mode c;

	if (is(f, "update"))
		c = CTL_UPDATE;
	else if (!mode(f, &c))
		return false;
	if ((c == CTL_UPDATE ? CTL_EXCLUSIVE : c) != *m)
		return false;
	*m = c;
	return true;
}

static bool hold(const struct field *f, enum ctl_hold *h)
{
	if (is(f, "normal"))
		*h = CTL_HOLD_NORMAL;
	else if (is(f, "long"))
		*h = CTL_HOLD_LONG;
	else if (is(f, "broken"))
		*h = CTL_HOLD_BROKEN;
	else
		return false;
	return true;
}

/* A set of flags: "-" for none, else words[i] separated by commas, each
 * known and at most once. */
static bool flag_set(const struct field *f, const char *const *words, bool *set, size_t n)
{
	const char *p = f->p, *end = f->p + f->n;

	for (size_t i = 0; i < n; i++)
		set[i] = false;
	if (f->n == 1 && f->p[0] == '-')
		return true;
	for (;;) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		struct field w = { p, (size_t)((comma ? comma : end) - p) };
		size_t i;

		for (i = 0; i < n && !is(&w, words[i]); i++)
			;
		if (i == n || set[i])
			return false;
		set[i] = true;
		if (!comma)
			return true;
		p = comma + 1;
	}
}

/* Makes room for one more element of `size` bytes in *arr. */
static int grow(void **arr, size_t n, size_t *cap, size_t size)
{
	void *p;
	size_t c;

	if (n < *cap)
		return 0;
	c = *cap ? *cap * 2 : 16;
	if (c > SIZE_MAX / size)
		return -ENOMEM;
	p = realloc(*arr, c * size);
	if (!p)
		return -ENOMEM;
	memset((char *)p + n * size, 0, (c - n) * size);
	*arr = p;
	*cap = c;
	return 0;
}

static int rec_mount(struct parser *ps, const struct field *f, size_t nf)
{
	struct ctl_reply *r = ps->r;
	int rc;

	if (r->have_mount)
		return fail(ps, "second mount record");
	if (nf < 6)
		return fail(ps, "short mount record");
	if (!num(&f[3], false, &r->daemon_pid) || !num(&f[4], true, &r->lease_ms) ||
	    !num(&f[5], true, &r->lock_timeout_ms) ||
	    (nf > 6 && !num(&f[6], true, &r->long_read_ms)) ||
	    (nf > 7 && !num(&f[7], true, &r->reader_wait_ms)) ||
	    (nf > 8 && !num(&f[8], true, &r->calm_after_ms)))
		return fail(ps, "bad number in mount record");
	if ((rc = text(ps, &f[1], &r->mountpoint, "mount point")) < 0 ||
	    (rc = text(ps, &f[2], &r->source, "source")) < 0)
		return rc;
	/* CLUSTER: "-" when off (a cluster spec never is "-"). */
	if (nf > 9 && !is(&f[9], "-") && (rc = text(ps, &f[9], &r->cluster, "cluster")) < 0)
		return rc;
	r->have_mount = true;
	return 0;
}

static int rec_lock(struct parser *ps, const struct field *f, size_t nf)
{
	struct ctl_reply *r = ps->r;
	struct ctl_lock *l;
	int rc;

	if (nf < 12)
		return fail(ps, "short lock record");
	if ((rc = grow((void **)&r->locks, r->nlocks, &ps->cap_locks, sizeof(*l))) < 0)
		return rc;
	l = &r->locks[r->nlocks++];
	if ((rc = file(ps, &f[1], &l->file)) < 0)
		return rc;
	if (!mode(&f[2], &l->mode))
		return fail(ps, "bad lock mode");
	if (is(&f[3], "held"))
		l->state = CTL_HELD;
	else if (is(&f[3], "lease"))
		l->state = CTL_LEASE;
	else
		return fail(ps, "bad lock state");
	if ((rc = owner(ps, &f[4], &l->owner)) < 0)
		return rc;
	if (!num(&f[8], false, &l->held_ns) || !num(&f[9], true, &l->lease_left_ns) ||
	    !num(&f[10], false, &l->waiters) || !num(&f[11], false, &l->handles))
		return fail(ps, "bad number in lock record");
	/* Added later: CLASS HOLD ORIGIN. */
	if (nf > 12 && !lock_class(&f[12], &l->mode))
		return fail(ps, "bad lock class");
	if (nf > 13 && !hold(&f[13], &l->hold))
		return fail(ps, "bad hold state");
	if (nf > 14) {
		static const char *const words[] = { "inherited", "joined" };
		bool set[2];

		if (!flag_set(&f[14], words, set, 2))
			return fail(ps, "bad hold origin");
		l->inherited = set[0];
		l->joined = set[1];
	}
	return 0;
}

static int rec_wait(struct parser *ps, const struct field *f, size_t nf)
{
	struct ctl_reply *r = ps->r;
	struct ctl_wait *w;
	int rc;

	if (nf < 10)
		return fail(ps, "short wait record");
	if ((rc = grow((void **)&r->waits, r->nwaits, &ps->cap_waits, sizeof(*w))) < 0)
		return rc;
	w = &r->waits[r->nwaits++];
	if ((rc = file(ps, &f[1], &w->file)) < 0)
		return rc;
	if (!mode(&f[2], &w->mode))
		return fail(ps, "bad wait mode");
	if (is(&f[3], "read"))
		w->want = CTL_WANT_READ;
	else if (is(&f[3], "write"))
		w->want = CTL_WANT_WRITE;
	else if (is(&f[3], "barrier"))
		w->want = CTL_WANT_BARRIER;
	else
		return fail(ps, "bad wanted access");
	if ((rc = owner(ps, &f[4], &w->owner)) < 0)
		return rc;
	if (!num(&f[8], false, &w->waited_ns) || !num(&f[9], true, &w->blocker))
		return fail(ps, "bad number in wait record");
	if (nf > 10 && !lock_class(&f[10], &w->mode))
		return fail(ps, "bad wait class");
	return 0;
}

static int rec_file(struct parser *ps, const struct field *f, size_t nf)
{
	static const char *const words[] = { "calm", "advisory" };
	struct ctl_reply *r = ps->r;
	struct ctl_fileinfo *fi;
	bool set[2];
	int rc;

	if (nf < 4)
		return fail(ps, "short file record");
	if ((rc = grow((void **)&r->fileinfos, r->nfileinfos, &ps->cap_fileinfos,
		       sizeof(*fi))) < 0)
		return rc;
	fi = &r->fileinfos[r->nfileinfos++];
	if ((rc = file(ps, &f[1], &fi->file)) < 0)
		return rc;
	if (!flag_set(&f[2], words, set, 2))
		return fail(ps, "bad file flags");
	fi->calm = set[0];
	fi->advisory = set[1];
	if (!num(&f[3], true, &fi->written_ns))
		return fail(ps, "bad number in file record");
	return 0;
}

static bool cluster_state(const struct field *f, enum ctl_cluster_state *st)
{
	static const char *const words[] = {
		[CTL_CL_REMOTE] = "remote", [CTL_CL_ACQUIRING] = "acquiring",
		[CTL_CL_CACHED] = "cached", [CTL_CL_HELD] = "held",
		[CTL_CL_RECALLED] = "recalled", [CTL_CL_HANDING_OVER] = "handing-over",
		[CTL_CL_LOST] = "lost",
	};

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		if (is(f, words[i])) {
			*st = (enum ctl_cluster_state)i;
			return true;
		}
	}
	return false;
}

static int rec_cluster(struct parser *ps, const struct field *f, size_t nf)
{
	struct ctl_reply *r = ps->r;
	struct ctl_cluster *cl;
	int rc;

	if (nf < 7)
		return fail(ps, "short cluster record");
	if ((rc = grow((void **)&r->clusters, r->nclusters, &ps->cap_clusters, sizeof(*cl))) < 0)
		return rc;
	cl = &r->clusters[r->nclusters++];
	if ((rc = file(ps, &f[1], &cl->file)) < 0)
		return rc;
	if (!cluster_state(&f[2], &cl->state))
		return fail(ps, "bad cluster state");
	if (!num(&f[3], true, &cl->token) || !num(&f[4], true, &cl->remote_waiters) ||
	    !num(&f[6], true, &cl->daemon_pid))
		return fail(ps, "bad number in cluster record");
	return text(ps, &f[5], &cl->host, "host");
}

static int rec_clusterstat(struct parser *ps, const struct field *f, size_t nf)
{
	struct ctl_reply *r = ps->r;
	struct ctl_cluster_stats *st = &r->cluster_stats;
	long long *dst[] = { &st->requests, &st->grants, &st->recalls, &st->losses,
			     &st->fenced_writes };

	if (r->have_cluster_stats)
		return fail(ps, "second clusterstat record");
	if (nf < 1 + sizeof(dst) / sizeof(dst[0]))
		return fail(ps, "short clusterstat record");
	for (size_t i = 0; i < sizeof(dst) / sizeof(dst[0]); i++)
		if (!num(&f[1 + i], false, dst[i]))
			return fail(ps, "bad number in clusterstat record");
	r->have_cluster_stats = true;
	return 0;
}

static int rec_stat(struct parser *ps, const struct field *f, size_t nf)
{
	struct ctl_reply *r = ps->r;
	struct ctl_stat *s;
	int rc;

	if (nf < 17)
		return fail(ps, "short stat record");
	if ((rc = grow((void **)&r->stats, r->nstats, &ps->cap_stats, sizeof(*s))) < 0)
		return rc;
	s = &r->stats[r->nstats++];
	if ((rc = file(ps, &f[1], &s->file)) < 0)
		return rc;
	long long *dst[] = {
		&s->acquisitions, &s->contentions, &s->waits, &s->wait_min_ns,
		&s->wait_mean_ns, &s->wait_p99_ns, &s->wait_max_ns, &s->wait_total_ns,
		&s->holds, &s->hold_mean_ns, &s->hold_max_ns, &s->eagain, &s->edeadlk,
		&s->timeouts, &s->eintr,
		/* Added later: optional. */
		&s->joins, &s->broken, &s->calm_learned, &s->advisory_passes,
	};
	s->joins = s->broken = s->calm_learned = s->advisory_passes = CTL_UNKNOWN;
	for (size_t i = 0; i < sizeof(dst) / sizeof(dst[0]) && 2 + i < nf; i++)
		if (!num(&f[2 + i], false, dst[i]))
			return fail(ps, "bad number in stat record");
	/* Older daemons sent the top of the percentile's histogram bucket,
	 * which can be nearly twice the longest wait they sent beside it.
	 * Every wait is at most the longest, so the longest is the better
	 * upper estimate, and the figures never contradict each other. */
	if (s->wait_p99_ns > s->wait_max_ns)
		s->wait_p99_ns = s->wait_max_ns;
	return 0;
}

static int rec_end(struct parser *ps, const struct field *f, size_t nf)
{
	struct ctl_reply *r = ps->r;
	long long nl, nw, ns, nfi = -1, ncl = -1;

	if (nf < 4 || !num(&f[1], false, &nl) || !num(&f[2], false, &nw) ||
	    !num(&f[3], false, &ns) || (nf > 4 && !num(&f[4], false, &nfi)) ||
	    (nf > 5 && !num(&f[5], false, &ncl)))
		return fail(ps, "bad end record");
	if ((size_t)nl != r->nlocks || (size_t)nw != r->nwaits || (size_t)ns != r->nstats)
		return fail(ps, "record counts do not match the end record "
			    "(%zu/%zu/%zu lock/wait/stat lines, end says %lld/%lld/%lld)",
			    r->nlocks, r->nwaits, r->nstats, nl, nw, ns);
	/* A daemon that sends file records counts them (NFILE). */
	if (nfi < 0 && r->nfileinfos)
		return fail(ps, "record counts do not match the end record "
			    "(%zu file lines, end does not count them)", r->nfileinfos);
	if (nfi >= 0 && (size_t)nfi != r->nfileinfos)
		return fail(ps, "record counts do not match the end record "
			    "(%zu file lines, end says %lld)", r->nfileinfos, nfi);
	/* Likewise for cluster records (NCLUSTER). */
	if (ncl < 0 && r->nclusters)
		return fail(ps, "record counts do not match the end record "
			    "(%zu cluster lines, end does not count them)", r->nclusters);
	if (ncl >= 0 && (size_t)ncl != r->nclusters)
		return fail(ps, "record counts do not match the end record "
			    "(%zu cluster lines, end says %lld)", r->nclusters, ncl);
	if (!r->have_mount && !r->error)
		return fail(ps, "no mount record");
	return 0;
}

static void free_owner(struct ctl_owner *o)
{
	free(o->comm);
}

void ctl_reply_free(struct ctl_reply *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nlocks; i++) {
		free(r->locks[i].file.path);
		free_owner(&r->locks[i].owner);
	}
	for (size_t i = 0; i < r->nwaits; i++) {
		free(r->waits[i].file.path);
		free_owner(&r->waits[i].owner);
	}
	for (size_t i = 0; i < r->nstats; i++)
		free(r->stats[i].file.path);
	for (size_t i = 0; i < r->nfileinfos; i++)
		free(r->fileinfos[i].file.path);
	for (size_t i = 0; i < r->nclusters; i++) {
		free(r->clusters[i].file.path);
		free(r->clusters[i].host);
	}
	free(r->locks);
	free(r->clusters);
	free(r->cluster);
	free(r->waits);
	free(r->stats);
	free(r->fileinfos);
	free(r->mountpoint);
	free(r->source);
	free(r->error);
	memset(r, 0, sizeof(*r));
}

static void unknown_mount(struct ctl_reply *r)
{
	r->daemon_pid = r->lease_ms = r->lock_timeout_ms = CTL_UNKNOWN;
	r->long_read_ms = r->reader_wait_ms = r->calm_after_ms = CTL_UNKNOWN;
}

int ctl_parse_reply(const char *buf, size_t len, struct ctl_reply *out,
		    char *err, size_t errlen)
{
	struct parser ps = { .r = out, .err = err, .errlen = errlen };
	size_t pos = 0;
	bool ended = false;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	unknown_mount(out);
	if (errlen)
		err[0] = '\0';

	while (pos < len && rc == 0) {
		const char *line = buf + pos;
		const char *nl = memchr(line, '\n', len - pos);
		struct field f[MAX_FIELDS];
		size_t n, nf = 0;

		if (ended) {
			rc = fail(&ps, "data after the end record");
			break;
		}
		ps.lineno++;
		if (!nl) {
			rc = fail(&ps, "truncated reply (last line has no newline)");
			break;
		}
		n = (size_t)(nl - line);
		pos += n + 1;
		if (memchr(line, '\0', n)) {
			rc = fail(&ps, "NUL byte in reply");
			break;
		}

		if (ps.lineno == 1) {
			static const char magic[] = "lockfs-control ";
			const size_t m = sizeof(magic) - 1;
			long long ver;

			if (n < m || memcmp(line, magic, m) != 0) {
				rc = fail(&ps, "not a lockfs control reply");
				break;
			}
			if (!num(&(struct field){ line + m, n - m }, false, &ver)) {
				rc = fail(&ps, "bad protocol version");
				break;
			}
			if (ver != CTL_VERSION) {
				rc = fail(&ps, "unsupported protocol version %lld (this lockstat speaks %d)",
					  ver, CTL_VERSION);
				break;
			}
			out->version = (int)ver;
			continue;
		}

		for (const char *p = line, *end = line + n;; ) {
			const char *tab = memchr(p, '\t', (size_t)(end - p));
			const char *stop = tab ? tab : end;

			if (nf < MAX_FIELDS)
				f[nf++] = (struct field){ p, (size_t)(stop - p) };
			if (!tab)
				break;
			p = tab + 1;
		}

		if (is(&f[0], "mount"))
			rc = rec_mount(&ps, f, nf);
		else if (is(&f[0], "lock"))
			rc = rec_lock(&ps, f, nf);
		else if (is(&f[0], "wait"))
			rc = rec_wait(&ps, f, nf);
		else if (is(&f[0], "stat"))
			rc = rec_stat(&ps, f, nf);
		else if (is(&f[0], "file"))
			rc = rec_file(&ps, f, nf);
		else if (is(&f[0], "cluster"))
			rc = rec_cluster(&ps, f, nf);
		else if (is(&f[0], "clusterstat"))
			rc = rec_clusterstat(&ps, f, nf);
		else if (is(&f[0], "error")) {
			if (out->error)
				rc = fail(&ps, "second error record");
			else if (nf < 2)
				rc = fail(&ps, "short error record");
			else
				rc = text(&ps, &f[1], &out->error, "error message");
		} else if (is(&f[0], "end")) {
			rc = rec_end(&ps, f, nf);
			ended = true;
		}
		/* Any other record kind is from a newer daemon: skipped. */
	}
	if (rc == 0 && ps.lineno == 0)
		rc = fail(&ps, "empty reply");
	else if (rc == 0 && !ended)
		rc = fail(&ps, "truncated reply (no end record)");
	if (rc < 0) {
		if (rc == -ENOMEM && errlen)
			snprintf(err, errlen, "out of memory");
		ctl_reply_free(out);
		unknown_mount(out);
	}
	return rc;
}
