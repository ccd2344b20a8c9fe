/* The inode table's names and paths (see inode.h, "Names"). An entry
 * records its parent (holding a reference on it) and its last known name,
 * inline in the entry when it fits the space it was created with. */
#include "inode_impl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* A deeper chain of parents than this is taken to be a corrupted (cyclic)
 * record rather than a real path. */
#define MAX_DEPTH 4096

/* True if `anc` is `in` or one of its recorded ancestors. */
static bool is_ancestor_locked(const struct inode *anc, const struct inode *in)
{
	for (unsigned depth = 0; in && depth < MAX_DEPTH; depth++, in = in->parent)
		if (in == anc)
			return true;
	return false;
}

int inode_set_name_locked(struct inode_table *t, struct inode *in,
			  struct inode *parent, const char *name, struct inode **dead)
{
	struct inode *old_parent;
	size_t len;

	if (!t->track_names || !parent || !name || in == t->root)
		return 0;
	/* A stale record (directories moved behind the mount's back) could
	 * otherwise make an inode its own ancestor. */
	if (is_ancestor_locked(in, parent))
		return 0;
	if (in->parent == parent && in->name && strcmp(in->name, name) == 0)
		return 0;
	len = strlen(name) + 1;
	if (len <= in->name_cap) {
		/* Readers of the name hold the mutex too. */
		if (in->name != inode_inline_name(in))
			free(in->name);
		in->name = memcpy(inode_inline_name(in), name, len);
	} else {
		char *copy = strdup(name);

		if (!copy)
			return -ENOMEM;
		if (in->name != inode_inline_name(in))
			free(in->name);
		in->name = copy;
	}
	old_parent = in->parent;
	if (old_parent != parent) {
		parent->refs++;
		in->parent = parent;
		if (old_parent) {
			old_parent->refs--;
			inode_release_locked(t, old_parent, dead);
		}
	}
	return 0;
}

int inode_set_name(struct inode_table *t, struct inode *in,
		   struct inode *parent, const char *name)
{
	struct inode *dead = NULL;
	int rc;

	if (!t->track_names)
		return 0;
	pthread_mutex_lock(&t->mu);
	rc = inode_set_name_locked(t, in, parent, name, &dead);
	pthread_mutex_unlock(&t->mu);
	inode_bury(t, dead);
	return rc;
}

/* Writes the path of `in` (plus "/extra" when extra is set) into buf. */
static int path_locked(struct inode_table *t, struct inode *in, const char *extra,
		       char *buf, size_t size)
{
	const char *parts[64];
	const char **names = parts;
	size_t cap = sizeof(parts) / sizeof(parts[0]), n = 0, len = 0, pos;
	int rc = 0;

	if (!t->track_names)
		return -ENOENT;
	if (extra) {
		names[n++] = extra;
		len += strlen(extra);
	}
	for (; in != t->root; in = in->parent) {
		if (!in || !in->name) {
			rc = -ENOENT;
			goto out;
		}
		if (n == MAX_DEPTH) {
			rc = -ENAMETOOLONG;
			goto out;
		}
		if (n == cap) {
			const char **bigger = malloc(2 * cap * sizeof(*bigger));

			if (!bigger) {
				rc = -ENOMEM;
				goto out;
			}
			memcpy(bigger, names, n * sizeof(*names));
			if (names != parts)
				free(names);
			names = bigger;
			cap *= 2;
		}
		names[n++] = in->name;
		len += strlen(in->name);
	}
	/* Components joined by '/', plus the terminating NUL. */
	if (len + (n ? n - 1 : 0) + 1 > size) {
		rc = -ENAMETOOLONG;
		goto out;
	}
	pos = 0;
	while (n > 0) {
		size_t l = strlen(names[--n]);

		memcpy(buf + pos, names[n], l);
		pos += l;
		if (n > 0)
			buf[pos++] = '/';
	}
	buf[pos] = '\0';
out:
	if (names != parts)
		free(names);
	return rc;
}

int inode_path(struct inode_table *t, struct inode *in, char *buf, size_t size)
{
	int rc;

	pthread_mutex_lock(&t->mu);
	rc = path_locked(t, in, NULL, buf, size);
	pthread_mutex_unlock(&t->mu);
	return rc;
}

int inode_child_path(struct inode_table *t, struct inode *dir, const char *name,
		     char *buf, size_t size)
{
	int rc;

	pthread_mutex_lock(&t->mu);
	rc = path_locked(t, dir, name, buf, size);
	pthread_mutex_unlock(&t->mu);
	return rc;
}

int inode_key_path(struct inode_table *t, lt_file_t key, char *buf, size_t size)
{
	struct inode *in;
	int rc = -ENOENT;

	pthread_mutex_lock(&t->mu);
	in = inode_find_lock_key_locked(t, key);
	if (in && !in->unlinked)
		rc = path_locked(t, in, NULL, buf, size);
	pthread_mutex_unlock(&t->mu);
	return rc;
}

void inode_mark_unlinked(struct inode_table *t, struct inode *in)
{
	pthread_mutex_lock(&t->mu);
	in->unlinked = true;
	pthread_mutex_unlock(&t->mu);
}

bool inode_is_unlinked(struct inode_table *t, struct inode *in)
{
	return LOCKED_READ(t, in->unlinked);
}
