/* Policies per path: which files get which kind of locking.
 *
 * A policy file (-o policy=FILE) holds one rule per line, first match wins:
 *
 *     # comment
 *     GLOB  MODE  [lease=MS] [timeout=SECS]
 *
 * MODE is `exclusive` (every open is exclusive; reads keep a lease),
 * `readers-writer` (readers share, writers are exclusive, no lease) or `none`
 * (plain passthrough, no lock). GLOB is matched against the path relative to
 * the mount root, without a leading '/': `*` and `?` do not cross '/', `**`
 * matches any number of whole path components (including none), `[...]` is a
 * character class (`[!...]` or `[^...]` negated; `]` first is a member,
 * `a-z` a range) and `\` escapes the next character.
 * A pattern that contains no '/' matches the base name in any directory; a
 * leading '/' anchors a pattern at the mount root. A trailing `**` may match
 * no component at all, so the pattern for everything under a directory also
 * matches the directory's own name.
 * Dots are ordinary characters (`*` matches `.bashrc`), and `?` and classes
 * take one UTF-8 character. Files that no rule matches get the defaults
 * (exclusive, the -o lease and -o lock_timeout values).
 *
 * Lines hold at most 4096 bytes; blank lines and words starting with '#'
 * (at the start of a line or after whitespace) to the end of the line are
 * comments, so a glob starting with '#' is written `\#...`, and a space in
 * a glob `\ `. lease=MS is whole milliseconds (0 = no lease) and only
 * applies to exclusive rules; timeout=SECS may have a fraction and is
 * rounded up to whole milliseconds (0 = wait forever); both at most one
 * week. At most 10,000 rules. A glob that can never match is an error (an
 * unterminated `[`, a reversed range, an empty component, a trailing '/' or
 * '\', an escaped '/', `**` that is not a whole component).
 *
 * Matching one path costs O(|glob| * |path|) at worst, whatever the pattern
 * (policy.c explains why).
 *
 * Pure logic apart from policy_load() reading the file. */
#ifndef LOCKFS_POLICY_H
#define LOCKFS_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum policy_mode {
	POLICY_EXCLUSIVE,
	POLICY_READERS_WRITER,
	POLICY_NONE,
};

struct policy_rule {
	char *glob;          /* as written in the file */
	enum policy_mode mode;
	int64_t lease_ms;    /* -1: the mount's default */
	int64_t timeout_ms;  /* -1: the mount's default; 0: wait forever */
	unsigned line;       /* in the policy file; 0 for the default rule */
};

struct policy;

/* Parses `text`; `name` is used in error messages. On error returns -EINVAL
 * and writes "NAME:LINE: reason" into err. */
int policy_parse(const char *text, const char *name, struct policy **out,
		 char *err, size_t errlen);
/* Reads and parses a file; errors as above, or "NAME: reason" when it
 * cannot be used: -errno from open/read ("NAME: strerror"), -EINVAL when it
 * is not a regular file, -EFBIG above 1 MiB. */
int policy_load(const char *path, struct policy **out, char *err, size_t errlen);
void policy_free(struct policy *p);

/* The first rule matching `relpath` (no leading '/'), or NULL when none does
 * (the caller then applies the defaults). A NULL policy matches nothing. */
const struct policy_rule *policy_match(const struct policy *p, const char *relpath);
size_t policy_rule_count(const struct policy *p);
const char *policy_mode_name(enum policy_mode m);

/* Exposed for the unit tests: glob matching as described above. Malformed
 * globs (which policy_parse refuses) still match something defined: a '['
 * without ']' and a lone trailing '\' stand for themselves, and `**` inside
 * a component acts as `*`. */
bool policy_glob_match(const char *glob, const char *path);

#endif
