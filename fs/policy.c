/* Policies per path: the policy file parser and the glob matcher.
 *
 * Matching cost. A glob is matched without recursion and with at most one
 * backtracking point per level, so no pattern can make it exponential:
 *   - within one path component, `*` is matched greedily and only the most
 *     recent `*` is remembered; when a later part fails, that `*` absorbs one
 *     more character and the scan resumes. An earlier `*` never needs to be
 *     revisited, because everything between two stars matches a fixed number
 *     of characters. Cost: O(|pattern component| * |name|).
 *   - across components, `**` plays the same role with whole components as
 *     its units: only the most recent `**` is remembered and it absorbs one
 *     more component on failure.
 * Summing the component costs over the restarts bounds one match by
 * O(|glob| * |path|) character steps. A glob is at most POLICY_LINE_MAX
 * bytes, so `*a*a*a*a*a*a*b` against a long name stays linear in practice.
 */
#include "policy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define POLICY_LINE_MAX   4096           /* bytes per line, newline excluded */
#define POLICY_RULES_MAX  10000
#define POLICY_FILE_MAX   (1024 * 1024)  /* a policy is a config file, not data */
#define POLICY_VALUE_MAX_MS (7LL * 24 * 3600 * 1000) /* a week: keeps ns math far from overflow */

struct rule {
	struct policy_rule pub;
	const char *pattern;  /* pub.glob without its anchoring '/' */
	bool basename;        /* no '/' in the glob: matches the last component */
};

/* Immutable once policy_parse() returns, so readers need no lock. */
struct policy {
	struct rule *rules;
	size_t count;
	size_t cap;
};

/* ---- glob matching ---------------------------------------------------- */

/* Decodes one UTF-8 character so that `?` and classes consume whole
 * characters, not bytes. A byte that does not start a valid sequence stands
 * for itself, mapped into the surrogate range (which valid UTF-8 never
 * produces) so it cannot collide with a real character. */
static size_t utf8_next(const char *s, size_t len, unsigned *cp)
{
	const unsigned char *u = (const unsigned char *)s;
	unsigned c = u[0];
	size_t n;
	unsigned v, min;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if ((c & 0xe0) == 0xc0) {
		n = 2; v = c & 0x1f; min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		n = 3; v = c & 0x0f; min = 0x800;
	} else if ((c & 0xf8) == 0xf0) {
		n = 4; v = c & 0x07; min = 0x10000;
	} else {
		goto invalid;
	}
	if (n > len)
		goto invalid;
	for (size_t i = 1; i < n; i++) {
		if ((u[i] & 0xc0) != 0x80)
			goto invalid;
		v = (v << 6) | (u[i] & 0x3f);
	}
	if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		goto invalid;
	*cp = v;
	return n;
invalid:
	*cp = 0xdc00 + c;
	return 1;
}

/* One class member: `\x` is x, anything else is itself. */
static size_t class_char(const char *p, size_t plen, unsigned *cp)
{
	if (p[0] == '\\' && plen > 1)
		return 1 + utf8_next(p + 1, plen - 1, cp);
	return utf8_next(p, plen, cp);
}

/* Matches character `c` against the class starting at p[0] == '['. Returns
 * the class length, or 0 when there is no closing ']' (the caller then takes
 * the '[' literally). *reversed is set when a range such as z-a was seen. */
static size_t class_match(const char *p, size_t plen, unsigned c, bool *matched,
			  bool *reversed)
{
	size_t q = 1;
	bool negate = false, hit = false;

	*reversed = false;
	if (q < plen && (p[q] == '!' || p[q] == '^')) {
		negate = true;
		q++;
	}
	/* A ']' right after the opening (and negation) is a member. */
	for (bool first = true; q < plen; first = false) {
		unsigned lo, hi;

		if (p[q] == ']' && !first) {
			*matched = hit != negate;
			return q + 1;
		}
		q += class_char(p + q, plen - q, &lo);
		hi = lo;
		if (q + 1 < plen && p[q] == '-' && p[q + 1] != ']') {
			q++;
			q += class_char(p + q, plen - q, &hi);
			if (hi < lo)
				*reversed = true;
		}
		if (c >= lo && c <= hi)
			hit = true;
	}
	return 0;
}

/* One path component against one pattern component (neither holds '/'). */
static bool component_match(const char *p, size_t plen, const char *s, size_t slen)
{
	size_t pi = 0, si = 0;
	size_t star_p = 0, star_s = 0;
	bool have_star = false;

	while (si < slen) {
		if (pi < plen) {
			unsigned pc, sc;
			size_t sn = utf8_next(s + si, slen - si, &sc);
			size_t pn;

			switch (p[pi]) {
			case '*':
				while (pi < plen && p[pi] == '*')
					pi++;
				have_star = true;
				star_p = pi;
				star_s = si;
				continue;
			case '?':
				pi++;
				si += sn;
				continue;
			case '[': {
				bool matched, reversed;
				size_t cl = class_match(p + pi, plen - pi, sc,
							&matched, &reversed);
				if (cl) {
					if (!matched)
						goto mismatch;
					pi += cl;
					si += sn;
					continue;
				}
				pn = 1;
				pc = '[';
				break;
			}
			default:
				/* A lone trailing '\' stands for itself. */
				if (p[pi] == '\\' && pi + 1 < plen)
					pn = 1 + utf8_next(p + pi + 1, plen - pi - 1, &pc);
				else
					pn = utf8_next(p + pi, plen - pi, &pc);
				break;
			}
			if (pc == sc) {
				pi += pn;
				si += sn;
				continue;
			}
		}
mismatch:
		if (!have_star)
			return false;
		/* The last star takes one more character; earlier ones never
		 * need to (see the top of this file). */
		{
			unsigned dummy;
			star_s += utf8_next(s + star_s, slen - star_s, &dummy);
		}
		si = star_s;
		pi = star_p;
	}
	while (pi < plen && p[pi] == '*')
		pi++;
	return pi == plen;
}

/* Length of the pattern component at p: up to the next '/' not escaped. */
static size_t pattern_component(const char *p)
{
	size_t i = 0;

	while (p[i] && p[i] != '/') {
		if (p[i] == '\\' && p[i + 1])
			i++;
		i++;
	}
	return i;
}

static size_t path_component(const char *s)
{
	const char *slash = strchr(s, '/');

	return slash ? (size_t)(slash - s) : strlen(s);
}

static const char *skip_component(const char *p, size_t len)
{
	return p[len] == '/' ? p + len + 1 : p + len;
}

/* `pattern` holds '/'-separated components and is matched against the whole
 * path. `**` as a whole component matches zero or more path components. */
static bool path_match(const char *pattern, const char *path)
{
	const char *p = pattern, *s = path;
	const char *star_p = NULL, *star_s = NULL;

	for (;;) {
		if (!*p) {
			if (!*s)
				return true;
			goto backtrack;
		}
		size_t plen = pattern_component(p);
		if (plen == 2 && p[0] == '*' && p[1] == '*') {
			p = skip_component(p, plen);
			if (!*p)
				return true;  /* a trailing ** takes the rest, even nothing */
			star_p = p;
			star_s = s;
			continue;
		}
		if (!*s)
			goto backtrack;
		size_t slen = path_component(s);
		if (component_match(p, plen, s, slen)) {
			p = skip_component(p, plen);
			s = skip_component(s, slen);
			continue;
		}
backtrack:
		if (!star_p || !*star_s)
			return false;
		star_s = skip_component(star_s, path_component(star_s));
		s = star_s;
		p = star_p;
	}
}

static bool has_separator(const char *glob)
{
	return glob[pattern_component(glob)] == '/';
}

static bool rule_match(const char *pattern, bool basename, const char *path)
{
	while (*path == '/')
		path++;
	if (basename) {
		const char *base = strrchr(path, '/');

		base = base ? base + 1 : path;
		return component_match(pattern, strlen(pattern), base, strlen(base));
	}
	return path_match(pattern, path);
}

bool policy_glob_match(const char *glob, const char *path)
{
	if (!glob || !path)
		return false;
	if (*glob == '/')
		return rule_match(glob + 1, false, path);
	return rule_match(glob, !has_separator(glob), path);
}

/* ---- parsing ---------------------------------------------------------- */

struct parser {
	const char *name;
	unsigned line;
	char *err;
	size_t errlen;
};

static int __attribute__((format(printf, 2, 3)))
parse_error(struct parser *ps, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!ps->err || !ps->errlen)
		return -EINVAL;
	n = snprintf(ps->err, ps->errlen, "%s:%u: ", ps->name, ps->line);
	if (n >= 0 && (size_t)n < ps->errlen) {
		va_start(ap, fmt);
		vsnprintf(ps->err + n, ps->errlen - n, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static int oom_error(struct parser *ps)
{
	if (ps->err && ps->errlen)
		snprintf(ps->err, ps->errlen, "%s: out of memory", ps->name);
	return -ENOMEM;
}

/* Checks what the matcher would otherwise take silently: a rule that can
 * never match is almost certainly a typo in a file that decides locking. */
static int check_glob(struct parser *ps, const char *glob)
{
	const char *g = glob;

	if (*g == '/')
		g++;
	if (!*g)
		return parse_error(ps, "empty glob");
	for (;;) {
		size_t len = pattern_component(g);

		if (len == 0)
			return parse_error(ps, "empty path component in glob '%s'", glob);
		for (size_t i = 0; i < len; i++) {
			if (g[i] == '\\') {
				if (i + 1 >= len)
					return parse_error(ps, "glob '%s' ends with a lone '\\'", glob);
				if (g[i + 1] == '/')
					return parse_error(ps, "escaped '/' in glob '%s' can never match", glob);
				i++;
			} else if (g[i] == '[') {
				unsigned dummy = 0;
				bool matched, reversed;
				size_t cl = class_match(g + i, len - i, dummy, &matched, &reversed);

				if (!cl)
					return parse_error(ps, "unterminated '[' in glob '%s'", glob);
				if (reversed)
					return parse_error(ps, "reversed range in '[...]' of glob '%s'", glob);
				i += cl - 1;
			} else if (g[i] == '*' && i + 1 < len && g[i + 1] == '*' &&
				   len != 2) {
				return parse_error(ps, "'**' must be a whole path component in glob '%s'", glob);
			}
		}
		if (!g[len])
			return 0;
		g += len + 1;
		if (!*g)
			return parse_error(ps, "glob '%s' ends with '/'", glob);
	}
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* Whole milliseconds: digits only. */
static int parse_ms(struct parser *ps, const char *key, const char *v, int64_t *out)
{
	int64_t n = 0;

	if (*v == '-')
		return parse_error(ps, "%s must not be negative", key);
	if (!*v)
		return parse_error(ps, "option '%s' needs a value", key);
	for (const char *c = v; *c; c++) {
		if (*c < '0' || *c > '9')
			return parse_error(ps, "bad %s '%s': expected whole milliseconds", key, v);
		n = n * 10 + (*c - '0');
		if (n > POLICY_VALUE_MAX_MS)
			return parse_error(ps, "%s '%s' is too large (max %lld ms)", key, v,
					   (long long)POLICY_VALUE_MAX_MS);
	}
	*out = n;
	return 0;
}

/* Seconds with an optional fraction, stored as ms rounded up: a tiny
 * non-zero timeout must never turn into 0, which means wait forever. No
 * strtod: it would accept "inf", "1e3", hex and depend on the locale. */
static int parse_secs(struct parser *ps, const char *key, const char *v, int64_t *out)
{
	int64_t whole = 0, frac_ms = 0;
	bool digits = false, round_up = false;
	const char *c = v;

	if (*v == '-')
		return parse_error(ps, "%s must not be negative", key);
	if (!*v)
		return parse_error(ps, "option '%s' needs a value", key);
	for (; *c >= '0' && *c <= '9'; c++) {
		digits = true;
		whole = whole * 10 + (*c - '0');
		if (whole > POLICY_VALUE_MAX_MS / 1000)
			goto too_large;
	}
	if (*c == '.') {
		int place = 0;

		for (c++; *c >= '0' && *c <= '9'; c++, place++) {
			digits = true;
			if (place < 3)
				frac_ms = frac_ms * 10 + (*c - '0');
			else if (*c != '0')
				round_up = true;
		}
		for (; place < 3; place++)
			frac_ms *= 10;
	}
	if (*c || !digits)
		return parse_error(ps, "bad %s '%s': expected seconds such as 5 or 0.5", key, v);
	*out = whole * 1000 + frac_ms + (round_up ? 1 : 0);
	if (*out > POLICY_VALUE_MAX_MS)
		goto too_large;
	return 0;
too_large:
	return parse_error(ps, "%s '%s' is too large (max %lld s)", key, v,
			   (long long)(POLICY_VALUE_MAX_MS / 1000));
}

static int parse_mode(struct parser *ps, const char *word, enum policy_mode *mode)
{
	static const enum policy_mode modes[] = {
		POLICY_EXCLUSIVE, POLICY_READERS_WRITER, POLICY_NONE,
	};

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		if (strcmp(word, policy_mode_name(modes[i])) == 0) {
			*mode = modes[i];
			return 0;
		}
	}
	return parse_error(ps, "unknown mode '%s' (expected exclusive, readers-writer or none)", word);
}

static int parse_option(struct parser *ps, const char *tok, struct policy_rule *r,
			bool *seen_lease, bool *seen_timeout)
{
	const char *eq = strchr(tok, '=');
	size_t klen = eq ? (size_t)(eq - tok) : strlen(tok);
	int rc;

	if (klen == 5 && strncmp(tok, "lease", 5) == 0) {
		if (!eq)
			return parse_error(ps, "option 'lease' needs a value (lease=MS)");
		if (*seen_lease)
			return parse_error(ps, "duplicate option 'lease'");
		*seen_lease = true;
		if (r->mode != POLICY_EXCLUSIVE)
			return parse_error(ps, "lease only applies to exclusive (this rule is %s)",
					   policy_mode_name(r->mode));
		rc = parse_ms(ps, "lease", eq + 1, &r->lease_ms);
		return rc;
	}
	if (klen == 7 && strncmp(tok, "timeout", 7) == 0) {
		if (!eq)
			return parse_error(ps, "option 'timeout' needs a value (timeout=SECS)");
		if (*seen_timeout)
			return parse_error(ps, "duplicate option 'timeout'");
		*seen_timeout = true;
		return parse_secs(ps, "timeout", eq + 1, &r->timeout_ms);
	}
	if (eq)
		return parse_error(ps, "unknown option '%.*s' (expected lease=MS or timeout=SECS)",
				   (int)klen, tok);
	return parse_error(ps, "unexpected '%s' (expected lease=MS or timeout=SECS)", tok);
}

/* Splits a line into words in place. The first word (the glob) may hold
 * `\`-escaped characters, spaces included; a word starting with '#' starts
 * a comment. Returns the number of words, or -1 when there are too many. */
#define LINE_WORDS_MAX 8
static int split_words(char *line, char **words)
{
	int n = 0;
	char *c = line;

	for (;;) {
		while (is_space(*c))
			c++;
		if (!*c || *c == '#')
			return n;
		if (n == LINE_WORDS_MAX)
			return -1;
		words[n] = c;
		while (*c && !is_space(*c)) {
			if (n == 0 && *c == '\\' && c[1])
				c++;
			c++;
		}
		n++;
		if (*c)
			*c++ = '\0';
	}
}

static int add_rule(struct parser *ps, struct policy *p, const struct rule *r)
{
	if (p->count == POLICY_RULES_MAX)
		return parse_error(ps, "too many rules (max %d)", POLICY_RULES_MAX);
	if (p->count == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 16;
		struct rule *nr = realloc(p->rules, cap * sizeof(*nr));

		if (!nr)
			return oom_error(ps);
		p->rules = nr;
		p->cap = cap;
	}
	p->rules[p->count++] = *r;
	return 0;
}

static int parse_line(struct parser *ps, struct policy *p, char *line)
{
	char *w[LINE_WORDS_MAX];
	int n = split_words(line, w);
	struct rule r = { .pub = { .lease_ms = -1, .timeout_ms = -1, .line = ps->line } };
	bool seen_lease = false, seen_timeout = false;
	int rc;

	if (n == 0)
		return 0;
	if (n < 0)
		return parse_error(ps, "too many words (expected GLOB MODE [lease=MS] [timeout=SECS])");
	rc = check_glob(ps, w[0]);
	if (rc)
		return rc;
	if (n < 2)
		return parse_error(ps, "missing mode after '%s' (expected exclusive, readers-writer or none)", w[0]);
	rc = parse_mode(ps, w[1], &r.pub.mode);
	if (rc)
		return rc;
	for (int i = 2; i < n; i++) {
		rc = parse_option(ps, w[i], &r.pub, &seen_lease, &seen_timeout);
		if (rc)
			return rc;
	}
	r.pub.glob = strdup(w[0]);
	if (!r.pub.glob)
		return oom_error(ps);
	r.pattern = r.pub.glob[0] == '/' ? r.pub.glob + 1 : r.pub.glob;
	r.basename = r.pub.glob[0] != '/' && !has_separator(r.pub.glob);
	rc = add_rule(ps, p, &r);
	if (rc)
		free(r.pub.glob);
	return rc;
}

int policy_parse(const char *text, const char *name, struct policy **out,
		 char *err, size_t errlen)
{
	struct parser ps = { .name = name ? name : "policy", .err = err, .errlen = errlen };
	struct policy *p;
	char buf[POLICY_LINE_MAX + 1];
	const char *c = text;
	int rc = 0;

	if (err && errlen)
		err[0] = '\0';
	*out = NULL;
	if (!text)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return oom_error(&ps);
	while (*c) {
		const char *nl = strchr(c, '\n');
		size_t len = nl ? (size_t)(nl - c) : strlen(c);

		ps.line++;
		if (len > POLICY_LINE_MAX) {
			rc = parse_error(&ps, "line too long (max %d bytes)", POLICY_LINE_MAX);
			break;
		}
		memcpy(buf, c, len);
		buf[len] = '\0';
		rc = parse_line(&ps, p, buf);
		if (rc)
			break;
		c += len + (nl ? 1 : 0);
	}
	if (rc) {
		policy_free(p);
		return rc;
	}
	*out = p;
	return 0;
}

int policy_load(const char *path, struct policy **out, char *err, size_t errlen)
{
	struct stat st;
	char *text = NULL;
	size_t len = 0;
	int fd, rc;

	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	/* O_NONBLOCK so that a FIFO given by mistake cannot hang the start. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		rc = -errno;
		goto fail_errno;
	}
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto fail_errno;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		if (err && errlen)
			snprintf(err, errlen, "%s: not a regular file", path);
		goto out;
	}
	if (st.st_size > POLICY_FILE_MAX)
		goto too_big;
	text = malloc(POLICY_FILE_MAX + 2);
	if (!text) {
		rc = -ENOMEM;
		goto fail_errno;
	}
	/* Read up to one byte past the limit: the file may grow after fstat. */
	while (len <= POLICY_FILE_MAX) {
		ssize_t n = read(fd, text + len, POLICY_FILE_MAX + 1 - len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			goto fail_errno;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > POLICY_FILE_MAX)
		goto too_big;
	text[len] = '\0';
	if (memchr(text, '\0', len)) {
		struct parser ps = { .name = path, .line = 1, .err = err, .errlen = errlen };

		for (const char *c = text; *c; c++)
			ps.line += *c == '\n';
		rc = parse_error(&ps, "NUL byte in policy file");
		goto out;
	}
	rc = policy_parse(text, path, out, err, errlen);
	goto out;

too_big:
	rc = -EFBIG;
	if (err && errlen)
		snprintf(err, errlen, "%s: file too large (max %d bytes)", path, POLICY_FILE_MAX);
	goto out;
fail_errno:
	if (err && errlen)
		snprintf(err, errlen, "%s: %s", path, strerror(-rc));
out:
	free(text);
	if (fd >= 0)
		close(fd);
	return rc;
}

void policy_free(struct policy *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->count; i++)
		free(p->rules[i].pub.glob);
	free(p->rules);
	free(p);
}

const struct policy_rule *policy_match(const struct policy *p, const char *relpath)
{
	if (!p || !relpath)
		return NULL;
	for (size_t i = 0; i < p->count; i++) {
		const struct rule *r = &p->rules[i];

		if (rule_match(r->pattern, r->basename, relpath))
			return &r->pub;
	}
	return NULL;
}

size_t policy_rule_count(const struct policy *p)
{
	return p ? p->count : 0;
}

const char *policy_mode_name(enum policy_mode m)
{
	switch (m) {
	case POLICY_EXCLUSIVE:
		return "exclusive";
	case POLICY_READERS_WRITER:
		return "readers-writer";
	case POLICY_NONE:
		return "none";
	}
	return "unknown";
}
