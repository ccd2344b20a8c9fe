/* Unit tests for fs/policy.c: the glob matcher, the policy file parser and
 * its error messages, rule order and policy_load(). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "policy.h"

/* ---- glob matching ---------------------------------------------------- */

struct glob_case {
	const char *glob;
	const char *path;
	bool match;
};

static void check_cases(const struct glob_case *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		bool got = policy_glob_match(c[i].glob, c[i].path);

		if (got != c[i].match)
			fail_msg("glob '%s' vs path '%s': expected %s, got %s", c[i].glob,
				 c[i].path, c[i].match ? "match" : "no match",
				 got ? "match" : "no match");
	}
}

#define CHECK_CASES(arr) check_cases(arr, sizeof(arr) / sizeof(arr[0]))

static void test_glob_literal_and_basename(void **state)
{
	static const struct glob_case c[] = {
		{ "counter", "counter", true },
		{ "counter", "a/b/counter", true },   /* no '/': base name anywhere */
		{ "counter", "counter2", false },
		{ "counter", "xcounter", false },
		{ "counter", "counter/x", false },
		{ "a/counter", "a/counter", true },
		{ "a/counter", "b/a/counter", false }, /* with '/': anchored */
		{ "/counter", "counter", true },        /* leading '/': root only */
		{ "/counter", "a/counter", false },
		{ "/a/b", "a/b", true },
		{ "", "", true },
		{ "x", "", false },
	};
	(void)state;
	CHECK_CASES(c);
}

static void test_glob_star_question(void **state)
{
	static const struct glob_case c[] = {
		{ "*.db", "x.db", true },
		{ "*.db", "deep/er/x.db", true },
		{ "*.db", "x.db-journal", false },
		{ "*.db", ".db", true },
		{ "*", "anything", true },
		{ "*", "a/b", true },                  /* base name mode */
		{ "dir/*", "dir/a", true },
		{ "dir/*", "dir/a/b", false },         /* '*' does not cross '/' */
		{ "dir/*", "dir", false },
		{ "*/x", "a/x", true },
		{ "*/x", "a/b/x", false },
		{ "?", "a", true },
		{ "?", "ab", false },
		{ "?", "", false },
		{ "a?c", "abc", true },
		{ "a?c", "a/c", false },               /* '?' does not match '/' */
		{ "dir/a?c", "dir/a/c", false },
		{ "a*b*c", "abc", true },
		{ "a*b*c", "aXbYc", true },
		{ "a*b*c", "aXbY", false },
		{ "a*b*c", "acb", false },
		{ "*a*a*b", "aaaaab", true },
		{ "*a*a*b", "aaaaa", false },
		{ "***", "abc", true },
		{ "a**b", "aXXb", true },              /* not a whole component: a star */
		{ "a**b", "a/b", false },
		{ "*?", "", false },
		{ "*?", "x", true },
		{ "?*?", "x", false },
		{ "?*?", "xy", true },
	};
	(void)state;
	CHECK_CASES(c);
}

static void test_glob_double_star(void **state)
{
	static const struct glob_case c[] = {
		/* at the start */
		{ "**/x", "x", true },
		{ "**/x", "a/x", true },
		{ "**/x", "a/b/c/x", true },
		{ "**/x", "a/b/c/xx", false },
		{ "**/x", "x/a", false },
		{ "**/*.c", "src/lib/a.c", true },
		{ "**/*.c", "a.c", true },
		{ "**/*.c", "a.c/b", false },
		/* in the middle */
		{ "a/**/b", "a/b", true },
		{ "a/**/b", "a/x/b", true },
		{ "a/**/b", "a/x/y/z/b", true },
		{ "a/**/b", "a/x/y/z/c", false },
		{ "a/**/b", "x/a/b", false },
		{ "a/**/b", "a/b/c", false },
		{ "a/**/b/**/c", "a/b/c", true },
		{ "a/**/b/**/c", "a/1/b/2/3/c", true },
		{ "a/**/b/**/c", "a/1/b/2/3/d", false },
		{ "a/**/b/c", "a/b/x/b/c", true },     /* needs backtracking */
		{ "a/**/**/b", "a/b", true },
		{ "a/**/**/b", "a/1/2/b", true },
		/* at the end */
		{ "a/**", "a", true },
		{ "a/**", "a/x", true },
		{ "a/**", "a/x/y/z", true },
		{ "a/**", "b/x", false },
		{ "a/**", "ab/x", false },
		{ "**", "", true },
		{ "**", "x", true },
		{ "**", "a/b/c", true },
		{ "/**", "a/b/c", true },
		/* mixed with other wildcards */
		{ "src/**/test_*.c", "src/test_a.c", true },
		{ "src/**/test_*.c", "src/x/y/test_b.c", true },
		{ "src/**/test_*.c", "src/x/y/test_b.h", false },
		{ "src/**/test_*.c", "lib/src/test_b.c", false },
		{ "**/cache/*", "home/u/.cache/x", false },
		{ "**/.cache/*", "home/u/.cache/x", true },
		{ "**/.cache/*", "home/u/.cache/x/y", false },
	};
	(void)state;
	CHECK_CASES(c);
}

static void test_glob_classes(void **state)
{
	static const struct glob_case c[] = {
		{ "[abc]", "a", true },
		{ "[abc]", "c", true },
		{ "[abc]", "d", false },
		{ "[abc]", "ab", false },
		{ "[a-c]x", "bx", true },
		{ "[a-c]x", "dx", false },
		{ "[!a-c]x", "dx", true },
		{ "[!a-c]x", "bx", false },
		{ "[^a-c]x", "dx", true },
		{ "[]]", "]", true },                  /* ']' first is a member */
		{ "[]]", "x", false },
		{ "[!]]", "x", true },
		{ "[!]]", "]", false },
		{ "[a-]", "-", true },                 /* '-' last is a member */
		{ "[-a]", "-", true },
		{ "[a\\]b]", "]", true },              /* escaped ']' inside */
		{ "[a\\]b]", "b", true },
		{ "[a\\]b]", "c", false },
		{ "[0-9][0-9]", "42", true },
		{ "[0-9][0-9]", "4x", false },
		{ "file[0-9].log", "d/file7.log", true },
		{ "d/[!.]*", "d/.hidden", false },
		{ "d/[!.]*", "d/shown", true },
		{ "[é]", "é", true },                  /* classes take whole UTF-8 chars */
		{ "[à-ï]", "é", true },
		{ "?", "é", true },
		{ "??", "é", false },
		{ "[", "[", true },                    /* no ']': a literal '[' */
		{ "a[b", "a[b", true },
	};
	(void)state;
	CHECK_CASES(c);
}

static void test_glob_escapes(void **state)
{
	static const struct glob_case c[] = {
		{ "\\*", "*", true },
		{ "\\*", "x", false },
		{ "\\?", "?", true },
		{ "\\?", "x", false },
		{ "\\[a]", "[a]", true },
		{ "\\[a]", "a", false },
		{ "a\\\\b", "a\\b", true },
		{ "\\a", "a", true },
		{ "my\\ file", "my file", true },
		{ "\\**", "*abc", true },
		{ "\\**", "abc", false },
		{ "a\\/b", "a/b", false },             /* an escaped '/' never matches */
		{ "x\\", "x\\", true },                /* a lone trailing '\' is itself */
	};
	(void)state;
	CHECK_CASES(c);
}

static void test_glob_dotfiles(void **state)
{
	/* Dots are ordinary characters: a lock policy must not skip
	 * .hidden files the way a shell does. */
	static const struct glob_case c[] = {
		{ "*", ".bashrc", true },
		{ "*.db", ".hidden.db", true },
		{ "?bashrc", ".bashrc", true },
		{ "**/x", ".git/x", true },
		{ "**/x", "a/.b/.c/x", true },
		{ ".*", ".profile", true },
		{ ".*", "profile", false },
		{ "home/*/.config/**", "home/u/.config/app/rc", true },
		{ "home/*/.config/**", "home/u/config/app/rc", false },
	};
	(void)state;
	CHECK_CASES(c);
}

/* ---- cross-checks against simple references -------------------------- */

/* A deliberately naive recursive matcher with the documented semantics,
 * exponential in the worst case but fine for the short random inputs used
 * here. It checks the iterative matcher's single-backtrack shortcuts. */
static bool ref_comp(const char *p, const char *pe, const char *s, const char *se)
{
	if (p == pe)
		return s == se;
	if (*p == '*')
		return ref_comp(p + 1, pe, s, se) || (s < se && ref_comp(p, pe, s + 1, se));
	if (s == se)
		return false;
	if (*p == '?')
		return ref_comp(p + 1, pe, s + 1, se);
	if (*p == '[') {
		/* the generator only emits [xy] and [!xy] */
		bool neg = p[1] == '!';
		const char *m = p + 1 + neg;
		const char *end = strchr(m, ']');
		bool in = memchr(m, *s, (size_t)(end - m)) != NULL;

		return in != neg && ref_comp(end + 1, pe, s + 1, se);
	}
	return *p == *s && ref_comp(p + 1, pe, s + 1, se);
}

static const char *comp_end(const char *c)
{
	const char *e = strchr(c, '/');

	return e ? e : c + strlen(c);
}

static bool ref_path(const char *p, const char *s)
{
	const char *pe, *se;

	if (!*p)
		return !*s;
	pe = comp_end(p);
	if (pe - p == 2 && p[0] == '*' && p[1] == '*') {
		const char *rest = *pe ? pe + 1 : pe;

		if (!*rest)
			return true;
		if (ref_path(rest, s))
			return true;
		if (!*s)
			return false;
		se = comp_end(s);
		return ref_path(p, *se ? se + 1 : se);
	}
	if (!*s)
		return false;
	se = comp_end(s);
	if (!ref_comp(p, pe, s, se))
		return false;
	return ref_path(*pe ? pe + 1 : pe, *se ? se + 1 : se);
}

static unsigned rnd_state = 12345;

static unsigned rnd(unsigned n)
{
	rnd_state = rnd_state * 1103515245u + 12345u;
	return (rnd_state >> 16) % n;
}

static void random_component(char *out, bool allow_wild)
{
	static const char *const pieces[] = { "a", "b", "*", "?", "[ab]", "[!a]", "a" };
	size_t n = 1 + rnd(4);

	out[0] = '\0';
	for (size_t i = 0; i < n; i++)
		strcat(out, allow_wild ? pieces[rnd(7)] : (rnd(2) ? "a" : "b"));
}

static void test_glob_random_vs_fnmatch(void **state)
{
	/* Anchored patterns without '**' mean exactly what fnmatch() with
	 * FNM_PATHNAME means, so glibc serves as an independent oracle. */
	char glob[128], path[128], comp[32];
	unsigned checked = 0, matched = 0;

	(void)state;
	for (int i = 0; i < 20000; i++) {
		size_t pc = 1 + rnd(3);
		/* Mostly as many components as the glob, or few would match. */
		size_t sc = rnd(4) ? pc : 1 + rnd(3);

		strcpy(glob, "/");
		for (size_t k = 0; k < pc; k++) {
			random_component(comp, true);
			/* A whole "**" component is lockfs's own extension. */
			if (strcmp(comp, "**") == 0)
				comp[1] = '\0';
			if (k)
				strcat(glob, "/");
			strcat(glob, comp);
		}
		path[0] = '\0';
		for (size_t k = 0; k < sc; k++) {
			random_component(comp, false);
			if (k)
				strcat(path, "/");
			strcat(path, comp);
		}
		bool want = fnmatch(glob + 1, path, FNM_PATHNAME) == 0;
		bool got = policy_glob_match(glob, path);
		if (want != got)
			fail_msg("glob '%s' path '%s': fnmatch says %d, lockfs says %d",
				 glob, path, want, got);
		checked++;
		matched += got;
	}
	/* The generator must produce both outcomes or it proves nothing. */
	print_message("%u of %u matched\n", matched, checked);
	assert_int_equal(checked, 20000);
	assert_true(matched > 1000);
	assert_true(matched < 19000);
}

static void test_glob_random_double_star(void **state)
{
	char glob[160], path[128], comp[32];
	unsigned matched = 0;

	(void)state;
	for (int i = 0; i < 20000; i++) {
		size_t pc = 1 + rnd(5), sc = rnd(6);

		glob[0] = '\0';
		for (size_t k = 0; k < pc; k++) {
			if (k)
				strcat(glob, "/");
			if (rnd(3) == 0) {
				strcat(glob, "**");
			} else {
				random_component(comp, true);
				strcat(glob, comp);
			}
		}
		path[0] = '\0';
		for (size_t k = 0; k < sc; k++) {
			random_component(comp, false);
			if (k)
				strcat(path, "/");
			strcat(path, comp);
		}
		/* Compare anchored semantics: prefix '/' so that a pattern
		 * without '/' is not taken as a base-name rule. */
		char anchored[170];
		snprintf(anchored, sizeof(anchored), "/%s", glob);
		bool want = ref_path(glob, path);
		bool got = policy_glob_match(anchored, path);
		if (want != got)
			fail_msg("glob '%s' path '%s': reference says %d, lockfs says %d",
				 anchored, path, want, got);
		matched += got;
	}
	print_message("%u of 20000 matched\n", matched);
	assert_true(matched > 1000);
	assert_true(matched < 19000);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void test_glob_hostile_patterns_are_fast(void **state)
{
	/* Backtracking matchers take exponential time on these; the
	 * matcher must stay polynomial (see the top of policy.c). */
	char name[256], deep[4096], pat[4096];
	double t0, t;

	(void)state;
	memset(name, 'a', 255);
	name[255] = '\0';
	t0 = now_ms();
	for (int i = 0; i < 100; i++) {
		assert_false(policy_glob_match("*a*a*a*a*a*a*a*a*a*a*a*a*b", name));
		assert_true(policy_glob_match("*a*a*a*a*a*a*a*a*a*a*a*a*", name));
	}
	t = now_ms() - t0;
	assert_true(t < 2000);

	/* a/a/.../a (2000 components) against 30 times "** then a", then b */
	size_t n = 0;
	for (int i = 0; i < 2000; i++) {
		deep[n++] = 'a';
		deep[n++] = '/';
	}
	deep[n - 1] = '\0';
	n = 0;
	for (int i = 0; i < 30; i++) {
		memcpy(pat + n, "**/a/", 5);
		n += 5;
	}
	memcpy(pat + n, "b", 2);
	t0 = now_ms();
	assert_false(policy_glob_match(pat, deep));
	pat[n] = 'a';
	assert_true(policy_glob_match(pat, deep));
	t = now_ms() - t0;
	assert_true(t < 2000);
}

/* ---- parsing ---------------------------------------------------------- */

static struct policy *parse_ok(const char *text)
{
	struct policy *p = NULL;
	char err[512];
	int rc = policy_parse(text, "test.policy", &p, err, sizeof(err));

	if (rc != 0)
		fail_msg("policy_parse failed (%d): %s", rc, err);
	assert_non_null(p);
	return p;
}

static void test_parse_rules_and_options(void **state)
{
	struct policy *p = parse_ok(
		"# a comment line\n"
		"\n"
		"   \t\n"
		"  *.db   exclusive   lease=100 timeout=2.5   # trailing comment\n"
		"logs/**  readers-writer timeout=0\n"
		"tmp/*    none\n"
		"\t/root.lock exclusive lease=0 timeout=0.0001\r\n"
		"my\\ file exclusive timeout=3\n"
		"a#b exclusive\n"
		"last exclusive timeout=.5");
	const struct policy_rule *r;

	(void)state;
	assert_int_equal(policy_rule_count(p), 7);

	r = policy_match(p, "data/x.db");
	assert_non_null(r);
	assert_string_equal(r->glob, "*.db");
	assert_int_equal(r->mode, POLICY_EXCLUSIVE);
	assert_int_equal(r->lease_ms, 100);
	assert_int_equal(r->timeout_ms, 2500);
	assert_int_equal(r->line, 4);

	r = policy_match(p, "logs/a/b.txt");
	assert_non_null(r);
	assert_int_equal(r->mode, POLICY_READERS_WRITER);
	assert_int_equal(r->lease_ms, -1);
	assert_int_equal(r->timeout_ms, 0);
	assert_int_equal(r->line, 5);

	r = policy_match(p, "tmp/scratch");
	assert_non_null(r);
	assert_int_equal(r->mode, POLICY_NONE);
	assert_int_equal(r->lease_ms, -1);
	assert_int_equal(r->timeout_ms, -1);

	r = policy_match(p, "root.lock");
	assert_non_null(r);
	assert_int_equal(r->lease_ms, 0);
	assert_int_equal(r->timeout_ms, 1);  /* rounded up, never 0 = forever */
	assert_int_equal(r->line, 7);
	assert_null(policy_match(p, "sub/root.lock"));

	r = policy_match(p, "dir/my file");
	assert_non_null(r);
	assert_string_equal(r->glob, "my\\ file");
	assert_int_equal(r->timeout_ms, 3000);

	r = policy_match(p, "a#b");
	assert_non_null(r);
	assert_int_equal(r->line, 9);

	r = policy_match(p, "last");
	assert_non_null(r);
	assert_int_equal(r->timeout_ms, 500);

	assert_null(policy_match(p, "unmatched.txt"));
	policy_free(p);
}

static void test_parse_first_match_wins(void **state)
{
	struct policy *p = parse_ok(
		"special.db none\n"
		"*.db readers-writer\n"
		"**  exclusive lease=7\n");
	const struct policy_rule *r;

	(void)state;
	r = policy_match(p, "x/special.db");
	assert_non_null(r);
	assert_int_equal(r->mode, POLICY_NONE);
	assert_int_equal(r->line, 1);
	r = policy_match(p, "x/other.db");
	assert_non_null(r);
	assert_int_equal(r->mode, POLICY_READERS_WRITER);
	assert_int_equal(r->line, 2);
	r = policy_match(p, "x/other.txt");
	assert_non_null(r);
	assert_int_equal(r->mode, POLICY_EXCLUSIVE);
	assert_int_equal(r->lease_ms, 7);
	assert_int_equal(r->line, 3);
	policy_free(p);

	/* The same rules in the other order: the catch-all shadows the rest. */
	p = parse_ok("**  exclusive lease=7\nspecial.db none\n");
	r = policy_match(p, "special.db");
	assert_non_null(r);
	assert_int_equal(r->mode, POLICY_EXCLUSIVE);
	policy_free(p);
}

static void test_parse_defaults_and_empty(void **state)
{
	struct policy *p = parse_ok("");

	(void)state;
	assert_int_equal(policy_rule_count(p), 0);
	assert_null(policy_match(p, "anything"));
	policy_free(p);

	p = parse_ok("# only comments\n\n   # indented comment\n");
	assert_int_equal(policy_rule_count(p), 0);
	policy_free(p);

	/* A NULL policy matches nothing: the caller applies the defaults. */
	assert_null(policy_match(NULL, "x"));
	assert_int_equal(policy_rule_count(NULL), 0);
	policy_free(NULL);

	assert_string_equal(policy_mode_name(POLICY_EXCLUSIVE), "exclusive");
	assert_string_equal(policy_mode_name(POLICY_READERS_WRITER), "readers-writer");
	assert_string_equal(policy_mode_name(POLICY_NONE), "none");
}

struct err_case {
	const char *text;
	const char *message;
};

static void test_parse_errors(void **state)
{
	static const struct err_case c[] = {
		{ "*.db exclusiv\n", "p.conf:1: unknown mode 'exclusiv' (expected exclusive, readers-writer or none)" },
		{ "# c\n\n*.db\n", "p.conf:3: missing mode after '*.db' (expected exclusive, readers-writer or none)" },
		{ "a none\nb exclusive lease=5 lease=6\n", "p.conf:2: duplicate option 'lease'" },
		{ "b exclusive timeout=1 timeout=2\n", "p.conf:1: duplicate option 'timeout'" },
		{ "b exclusive colour=red\n", "p.conf:1: unknown option 'colour' (expected lease=MS or timeout=SECS)" },
		{ "b exclusive junk\n", "p.conf:1: unexpected 'junk' (expected lease=MS or timeout=SECS)" },
		{ "b exclusive lease\n", "p.conf:1: option 'lease' needs a value (lease=MS)" },
		{ "b exclusive timeout\n", "p.conf:1: option 'timeout' needs a value (timeout=SECS)" },
		{ "b exclusive lease=\n", "p.conf:1: option 'lease' needs a value" },
		{ "b exclusive lease=-5\n", "p.conf:1: lease must not be negative" },
		{ "b exclusive lease=5ms\n", "p.conf:1: bad lease '5ms': expected whole milliseconds" },
		{ "b exclusive lease=1.5\n", "p.conf:1: bad lease '1.5': expected whole milliseconds" },
		{ "b exclusive lease=99999999999999999999999\n", "p.conf:1: lease '99999999999999999999999' is too large (max 604800000 ms)" },
		{ "b exclusive timeout=-1\n", "p.conf:1: timeout must not be negative" },
		{ "b exclusive timeout=abc\n", "p.conf:1: bad timeout 'abc': expected seconds such as 5 or 0.5" },
		{ "b exclusive timeout=1e3\n", "p.conf:1: bad timeout '1e3': expected seconds such as 5 or 0.5" },
		{ "b exclusive timeout=inf\n", "p.conf:1: bad timeout 'inf': expected seconds such as 5 or 0.5" },
		{ "b exclusive timeout=.\n", "p.conf:1: bad timeout '.': expected seconds such as 5 or 0.5" },
		{ "b exclusive timeout=1.2.3\n", "p.conf:1: bad timeout '1.2.3': expected seconds such as 5 or 0.5" },
		{ "b exclusive timeout=604801\n", "p.conf:1: timeout '604801' is too large (max 604800 s)" },
		{ "b exclusive timeout=18446744073709551617\n", "p.conf:1: timeout '18446744073709551617' is too large (max 604800 s)" },
		{ "b none lease=5\n", "p.conf:1: lease only applies to exclusive (this rule is none)" },
		{ "b readers-writer lease=5\n", "p.conf:1: lease only applies to exclusive (this rule is readers-writer)" },
		{ "/ exclusive\n", "p.conf:1: empty glob" },
		{ "a//b exclusive\n", "p.conf:1: empty path component in glob 'a//b'" },
		{ "//a exclusive\n", "p.conf:1: empty path component in glob '//a'" },
		{ "a/ exclusive\n", "p.conf:1: glob 'a/' ends with '/'" },
		{ "a[bc exclusive\n", "p.conf:1: unterminated '[' in glob 'a[bc'" },
		{ "a[b/c] exclusive\n", "p.conf:1: unterminated '[' in glob 'a[b/c]'" },
		{ "[z-a] exclusive\n", "p.conf:1: reversed range in '[...]' of glob '[z-a]'" },
		{ "a\\/b exclusive\n", "p.conf:1: escaped '/' in glob 'a\\/b' can never match" },
		{ "ab\\\n", "p.conf:1: glob 'ab\\' ends with a lone '\\'" },
		{ "src/**.c exclusive\n", "p.conf:1: '**' must be a whole path component in glob 'src/**.c'" },
		{ "x exclusive a b c d e f g\n", "p.conf:1: too many words (expected GLOB MODE [lease=MS] [timeout=SECS])" },
		{ "ok none\nok2 none\n\n  bad mode\n", "p.conf:4: unknown mode 'mode' (expected exclusive, readers-writer or none)" },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		struct policy *p = (struct policy *)&p;  /* must be reset to NULL */
		char err[512] = "untouched";
		int rc = policy_parse(c[i].text, "p.conf", &p, err, sizeof(err));

		if (rc != -EINVAL)
			fail_msg("case %zu ('%s'): rc %d, expected -EINVAL", i, c[i].text, rc);
		assert_null(p);
		if (strcmp(err, c[i].message) != 0)
			fail_msg("case %zu: got\n  %s\nexpected\n  %s", i, err, c[i].message);
	}
}

static void test_parse_long_line(void **state)
{
	static char text[9000];
	char err[256];
	struct policy *p;

	(void)state;
	/* 4096 bytes of glob + mode is too long; the limit is 4096 per line. */
	strcpy(text, "ok none\n");
	size_t n = strlen(text);
	memset(text + n, 'x', 4096);
	strcpy(text + n + 4096, " none\n");
	assert_int_equal(policy_parse(text, "long", &p, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "long:2: line too long (max 4096 bytes)");

	/* Exactly at the limit is fine. */
	memset(text, 'y', 4091);
	strcpy(text + 4091, " none");
	assert_int_equal(strlen(text), 4096);
	assert_int_equal(policy_parse(text, "long", &p, err, sizeof(err)), 0);
	assert_int_equal(policy_rule_count(p), 1);
	policy_free(p);
}

static void test_parse_rule_limit(void **state)
{
	size_t cap = 10001 * 16;
	char *text = malloc(cap);
	char err[256];
	struct policy *p;
	size_t n = 0;

	(void)state;
	assert_non_null(text);
	for (int i = 0; i < 10000; i++)
		n += (size_t)snprintf(text + n, cap - n, "f%d none\n", i);
	assert_int_equal(policy_parse(text, "many", &p, err, sizeof(err)), 0);
	assert_int_equal(policy_rule_count(p), 10000);
	const struct policy_rule *r = policy_match(p, "d/f9999");
	assert_non_null(r);
	assert_int_equal(r->line, 10000);
	policy_free(p);

	snprintf(text + n, cap - n, "one-too-many none\n");
	assert_int_equal(policy_parse(text, "many", &p, err, sizeof(err)), -EINVAL);
	assert_null(p);
	assert_string_equal(err, "many:10001: too many rules (max 10000)");
	free(text);
}

static void test_parse_small_error_buffer(void **state)
{
	char err[8];
	struct policy *p;

	(void)state;
	assert_int_equal(policy_parse("x bad", "name", &p, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "name:1:");
	assert_int_equal(policy_parse("x bad", "name", &p, NULL, 0), -EINVAL);
}

/* ---- policy_load ------------------------------------------------------ */

static char tmpdir[64];

static int make_tmpdir(void **state)
{
	(void)state;
	strcpy(tmpdir, "/tmp/lockfs-policy-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_tmpdir(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void test_load(void **state)
{
	char path[128], err[512], want[256];
	struct policy *p;

	(void)state;
	snprintf(path, sizeof(path), "%s/good", tmpdir);
	write_file(path, "*.db exclusive lease=5\n", 23);
	assert_int_equal(policy_load(path, &p, err, sizeof(err)), 0);
	assert_int_equal(policy_rule_count(p), 1);
	assert_int_equal(policy_match(p, "a.db")->lease_ms, 5);
	policy_free(p);

	/* Parse errors name the file. */
	snprintf(path, sizeof(path), "%s/bad", tmpdir);
	write_file(path, "a none\nb nothing\n", 17);
	assert_int_equal(policy_load(path, &p, err, sizeof(err)), -EINVAL);
	assert_null(p);
	snprintf(want, sizeof(want), "%s:2: unknown mode 'nothing' (expected exclusive, readers-writer or none)", path);
	assert_string_equal(err, want);

	snprintf(path, sizeof(path), "%s/missing", tmpdir);
	assert_int_equal(policy_load(path, &p, err, sizeof(err)), -ENOENT);
	assert_null(p);
	snprintf(want, sizeof(want), "%s: %s", path, strerror(ENOENT));
	assert_string_equal(err, want);

	assert_int_equal(policy_load(tmpdir, &p, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "%s: not a regular file", tmpdir);
	assert_string_equal(err, want);

	/* A FIFO must be refused, not block the start-up. */
	snprintf(path, sizeof(path), "%s/fifo", tmpdir);
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(policy_load(path, &p, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "%s: not a regular file", path);
	assert_string_equal(err, want);

	snprintf(path, sizeof(path), "%s/nul", tmpdir);
	write_file(path, "a none\nb no\0ne\n", 15);
	assert_int_equal(policy_load(path, &p, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "%s:2: NUL byte in policy file", path);
	assert_string_equal(err, want);
}

static void test_load_size_limit(void **state)
{
	char path[128], err[512], want[256];
	struct policy *p;
	size_t max = 1024 * 1024;
	char *big = malloc(max + 1);

	(void)state;
	assert_non_null(big);
	/* Exactly 1 MiB of comment lines is accepted. */
	memset(big, '#', max + 1);
	for (size_t i = 99; i < max + 1; i += 100)
		big[i] = '\n';
	snprintf(path, sizeof(path), "%s/big", tmpdir);
	write_file(path, big, max);
	assert_int_equal(policy_load(path, &p, err, sizeof(err)), 0);
	assert_int_equal(policy_rule_count(p), 0);
	policy_free(p);

	write_file(path, big, max + 1);
	assert_int_equal(policy_load(path, &p, err, sizeof(err)), -EFBIG);
	assert_null(p);
	snprintf(want, sizeof(want), "%s: file too large (max 1048576 bytes)", path);
	assert_string_equal(err, want);
	free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_glob_literal_and_basename),
		cmocka_unit_test(test_glob_star_question),
		cmocka_unit_test(test_glob_double_star),
		cmocka_unit_test(test_glob_classes),
		cmocka_unit_test(test_glob_escapes),
		cmocka_unit_test(test_glob_dotfiles),
		cmocka_unit_test(test_glob_random_vs_fnmatch),
		cmocka_unit_test(test_glob_random_double_star),
		cmocka_unit_test(test_glob_hostile_patterns_are_fast),
		cmocka_unit_test(test_parse_rules_and_options),
		cmocka_unit_test(test_parse_first_match_wins),
		cmocka_unit_test(test_parse_defaults_and_empty),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_parse_long_line),
		cmocka_unit_test(test_parse_rule_limit),
		cmocka_unit_test(test_parse_small_error_buffer),
		cmocka_unit_test_setup_teardown(test_load, make_tmpdir, remove_tmpdir),
		cmocka_unit_test_setup_teardown(test_load_size_limit, make_tmpdir, remove_tmpdir),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
