/* The inode table (see inode.h).
 *
 * Two chained hash tables index the same entries, one by (st_dev, st_ino)
 * for lookups coming from the source (hashed on the lock key of that pair,
 * so that a lock key finds its entry too), one by node id for requests
 * coming from the kernel. Both have the same number of buckets (a power of
 * two) and double together when the entries outnumber the buckets, so a
 * lookup stays O(1) on average however many files the kernel caches. */
#include "inode.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define INITIAL_BUCKETS 1024
/* A deeper chain of parents than this is taken to be a corrupted (cyclic)
 * record rather than a real path. */
#define MAX_DEPTH 4096

struct inode_table {
	pthread_mutex_t mu;     /* protects everything below, and the mutable
	                           fields of every entry */
	struct inode **by_key;
	struct inode **by_id;
	size_t nbuckets;        /* power of two */
	size_t count;
	uint64_t next_id;
	struct inode *root;     /* immutable after creation */
	bool track_names;       /* immutable after creation */
	inode_free_fn on_free;  /* set before use, then immutable */
	void *on_free_arg;
};

static uint64_t mix64(uint64_t x)
{
	/* A bijective finalizer: every input bit affects every output bit, so
	 * sequential node ids and inode numbers spread over the buckets. */
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

lt_file_t inode_lock_key(dev_t dev, ino_t ino)
{
	uint64_t d = (uint64_t)dev * 0x9E3779B97F4A7C15ull;
	uint64_t k = (uint64_t)ino ^ d;

	/* XOR with a per-device constant is a bijection of st_ino, so keys on
	 * one device collide only if the inodes are equal. k is zero only for
	 * ino == d; that key is replaced by the one inode number 0 would get,
	 * and inode number 0 never names a file. On device 0 that is 0 again;
	 * 1 is then used, which only collides with inode 1 of device 0, a
	 * device number no file system gets. */
	if (k == 0)
		k = d ? d : 1;
	return k;
}

static size_t lock_key_bucket(const struct inode_table *t, lt_file_t key)
{
	return (size_t)(mix64(key) & (t->nbuckets - 1));
}

static size_t key_bucket(const struct inode_table *t, dev_t dev, ino_t ino)
{
	return lock_key_bucket(t, inode_lock_key(dev, ino));
}

static size_t id_bucket(const struct inode_table *t, uint64_t id)
{
	return (size_t)(mix64(id) & (t->nbuckets - 1));
}

static void hash_add(struct inode_table *t, struct inode *in)
{
	size_t kb = key_bucket(t, in->dev, in->ino), ib = id_bucket(t, in->nodeid);

	in->next_key = t->by_key[kb];
	t->by_key[kb] = in;
	in->next_id = t->by_id[ib];
	t->by_id[ib] = in;
	t->count++;
}

static void hash_del(struct inode_table *t, struct inode *in)
{
	struct inode **p;

	for (p = &t->by_key[key_bucket(t, in->dev, in->ino)]; *p; p = &(*p)->next_key) {
		if (*p == in) {
			*p = in->next_key;
			break;
		}
	}
	for (p = &t->by_id[id_bucket(t, in->nodeid)]; *p; p = &(*p)->next_id) {
		if (*p == in) {
			*p = in->next_id;
			break;
		}
	}
	t->count--;
}

/* Doubles both tables. Failure to grow is harmless (chains get longer). */
static void maybe_grow(struct inode_table *t)
{
	size_t n = t->nbuckets * 2;
	struct inode **bk, **bi;

	if (t->count < t->nbuckets)
		return;
	bk = calloc(n, sizeof(*bk));
	bi = calloc(n, sizeof(*bi));
	if (!bk || !bi) {
		free(bk);
		free(bi);
		return;
	}
	for (size_t b = 0; b < t->nbuckets; b++) {
		struct inode *in, *next;

		for (in = t->by_key[b]; in; in = next) {
			size_t nb = (size_t)(mix64(inode_lock_key(in->dev, in->ino)) & (n - 1));

			next = in->next_key;
			in->next_key = bk[nb];
			bk[nb] = in;
		}
		for (in = t->by_id[b]; in; in = next) {
			size_t nb = (size_t)(mix64(in->nodeid) & (n - 1));

			next = in->next_id;
			in->next_id = bi[nb];
			bi[nb] = in;
		}
	}
	free(t->by_key);
	free(t->by_id);
	t->by_key = bk;
	t->by_id = bi;
	t->nbuckets = n;
}

static struct inode *find_key_locked(struct inode_table *t, dev_t dev, ino_t ino)
{
	struct inode *in;

	for (in = t->by_key[key_bucket(t, dev, ino)]; in; in = in->next_key)
		if (in->ino == ino && in->dev == dev)
			return in;
	return NULL;
}

/* The first entry with lock key `key`. Keys of different devices may
 * collide; the lock table cannot tell such files apart either. */
static struct inode *find_lock_key_locked(struct inode_table *t, lt_file_t key)
{
	struct inode *in;

	for (in = t->by_key[lock_key_bucket(t, key)]; in; in = in->next_key)
		if (in->key == key)
			return in;
	return NULL;
}

static struct inode *find_id_locked(struct inode_table *t, uint64_t id)
{
	struct inode *in;

	for (in = t->by_id[id_bucket(t, id)]; in; in = in->next_id)
		if (in->nodeid == id)
			return in;
	return NULL;
}

static void free_entry(struct inode *in)
{
	if (in->fd >= 0)
		close(in->fd);
	free(in->name);
	free(in);
}

/* Takes `in` out of the table if nothing holds it any more, then its parent
 * if that was the parent's last reference, and so on up. The entries go on
 * *dead (chained through next_key) for bury() to free once the mutex is
 * released: closing descriptors and telling the hook need no lock. */
static void release_locked(struct inode_table *t, struct inode *in, struct inode **dead)
{
	while (in && in != t->root && in->nlookup == 0 && in->refs == 0) {
		struct inode *parent = in->parent;

		hash_del(t, in);
		in->next_key = *dead;
		*dead = in;
		if (parent)
			parent->refs--;
		in = parent;
	}
}

/* The hook hears of each entry while its descriptor still pins the source
 * inode, so its number cannot have been reused yet. */
static void bury(struct inode_table *t, struct inode *dead)
{
	while (dead) {
		struct inode *next = dead->next_key;

		if (t->on_free)
			t->on_free(t->on_free_arg, dead);
		free_entry(dead);
		dead = next;
	}
}

void inode_table_set_free_hook(struct inode_table *t, inode_free_fn fn, void *arg)
{
	t->on_free = fn;
	t->on_free_arg = arg;
}

int inode_table_new(struct inode_table **out, int root_fd, bool track_names)
{
	struct inode_table *t = calloc(1, sizeof(*t));
	struct inode *root = calloc(1, sizeof(*root));
	struct stat st;
	int rc;

	if (!t || !root) {
		rc = -ENOMEM;
		goto fail;
	}
	t->nbuckets = INITIAL_BUCKETS;
	t->by_key = calloc(t->nbuckets, sizeof(*t->by_key));
	t->by_id = calloc(t->nbuckets, sizeof(*t->by_id));
	if (!t->by_key || !t->by_id) {
		rc = -ENOMEM;
		goto fail;
	}
	if (fstat(root_fd, &st) < 0) {
		rc = -errno;
		goto fail;
	}
	root->fd = fcntl(root_fd, F_DUPFD_CLOEXEC, 3);
	if (root->fd < 0) {
		rc = -errno;
		goto fail;
	}
	root->nodeid = INODE_ROOT_ID;
	root->dev = st.st_dev;
	root->ino = st.st_ino;
	root->type = st.st_mode & S_IFMT;
	root->key = inode_lock_key(st.st_dev, st.st_ino);
	root->refs = 1; /* the table's own: the root outlives every request */
	inode_stamp_from_stat(&root->stamp, &st);
	root->stamp_valid = true;
	t->root = root;
	t->next_id = INODE_ROOT_ID + 1;
	t->track_names = track_names;
	pthread_mutex_init(&t->mu, NULL);
	hash_add(t, root);
	*out = t;
	return 0;
fail:
	if (t) {
		free(t->by_key);
		free(t->by_id);
	}
	free(t);
	free(root);
	return rc;
}

void inode_table_free(struct inode_table *t)
{
	if (!t)
		return;
	for (size_t b = 0; b < t->nbuckets; b++) {
		struct inode *in, *next;

		for (in = t->by_id[b]; in; in = next) {
			next = in->next_id;
			free_entry(in);
		}
	}
	free(t->by_key);
	free(t->by_id);
	pthread_mutex_destroy(&t->mu);
	free(t);
}

struct inode *inode_root(struct inode_table *t)
{
	return t->root;
}

bool inode_tracks_names(const struct inode_table *t)
{
	return t->track_names;
}

struct inode *inode_get(struct inode_table *t, uint64_t nodeid)
{
	struct inode *in;

	pthread_mutex_lock(&t->mu);
	in = find_id_locked(t, nodeid);
	if (in)
		in->refs++;
	pthread_mutex_unlock(&t->mu);
	return in;
}

struct inode *inode_find(struct inode_table *t, dev_t dev, ino_t ino)
{
	struct inode *in;

	pthread_mutex_lock(&t->mu);
	in = find_key_locked(t, dev, ino);
	if (in)
		in->refs++;
	pthread_mutex_unlock(&t->mu);
	return in;
}

void inode_ref(struct inode_table *t, struct inode *in)
{
	pthread_mutex_lock(&t->mu);
	in->refs++;
	pthread_mutex_unlock(&t->mu);
}

struct inode *inode_parent(struct inode_table *t, struct inode *in)
{
	struct inode *p;

	pthread_mutex_lock(&t->mu);
	p = in->parent;
	if (p)
		p->refs++;
	pthread_mutex_unlock(&t->mu);
	return p;
}

void inode_put(struct inode_table *t, struct inode *in)
{
	struct inode *dead = NULL;

	if (!in)
		return;
	pthread_mutex_lock(&t->mu);
	in->refs--;
	release_locked(t, in, &dead);
	pthread_mutex_unlock(&t->mu);
	bury(t, dead);
}

/* True if `anc` is `in` or one of its recorded ancestors. */
static bool is_ancestor_locked(const struct inode *anc, const struct inode *in)
{
	for (unsigned depth = 0; in && depth < MAX_DEPTH; depth++, in = in->parent)
		if (in == anc)
			return true;
	return false;
}

static int set_name_locked(struct inode_table *t, struct inode *in,
			   struct inode *parent, const char *name, struct inode **dead)
{
	struct inode *old_parent;
	char *copy;

	if (!t->track_names || !parent || !name || in == t->root)
		return 0;
	/* A stale record (directories moved behind the mount's back) could
	 * otherwise make an inode its own ancestor. */
	if (is_ancestor_locked(in, parent))
		return 0;
	if (in->parent == parent && in->name && strcmp(in->name, name) == 0)
		return 0;
	copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	free(in->name);
	in->name = copy;
	old_parent = in->parent;
	if (old_parent != parent) {
		parent->refs++;
		in->parent = parent;
		if (old_parent) {
			old_parent->refs--;
			release_locked(t, old_parent, dead);
		}
	}
	return 0;
}

int inode_lookup(struct inode_table *t, struct inode *parent, const char *name,
		 const struct stat *st, int fd, struct inode **out)
{
	struct inode *in, *fresh = NULL, *dead = NULL;

	/* Allocated outside the lock; wasted only when two lookups of a new
	 * inode race. */
	if (fd >= 0 || fd == INODE_NO_FD) {
		fresh = calloc(1, sizeof(*fresh));
		if (!fresh) {
			if (fd >= 0)
				close(fd);
			return -ENOMEM;
		}
	}
	pthread_mutex_lock(&t->mu);
	in = find_key_locked(t, st->st_dev, st->st_ino);
	if (!in) {
		if (!fresh) {
			pthread_mutex_unlock(&t->mu);
			return -ENOENT;
		}
		in = fresh;
		fresh = NULL;
		in->fd = fd;
		fd = -1;
		in->nodeid = t->next_id++;
		in->dev = st->st_dev;
		in->ino = st->st_ino;
		in->type = st->st_mode & S_IFMT;
		in->key = inode_lock_key(st->st_dev, st->st_ino);
		inode_stamp_from_stat(&in->stamp, st);
		in->stamp_valid = true;
		hash_add(t, in);
		maybe_grow(t);
	}
	in->nlookup++;
	in->refs++;
	/* A name that cannot be recorded only costs policy accuracy. */
	(void)set_name_locked(t, in, parent, name, &dead);
	pthread_mutex_unlock(&t->mu);
	bury(t, dead);
	if (fd >= 0)
		close(fd);
	free(fresh);
	*out = in;
	return 0;
}

void inode_unlookup(struct inode_table *t, struct inode *in, uint64_t n)
{
	struct inode *dead = NULL;

	pthread_mutex_lock(&t->mu);
	in->nlookup = n > in->nlookup ? 0 : in->nlookup - n;
	release_locked(t, in, &dead);
	pthread_mutex_unlock(&t->mu);
	bury(t, dead);
}

void inode_forget(struct inode_table *t, uint64_t nodeid, uint64_t n)
{
	struct inode *in, *dead = NULL;

	pthread_mutex_lock(&t->mu);
	in = find_id_locked(t, nodeid);
	if (in) {
		in->nlookup = n > in->nlookup ? 0 : in->nlookup - n;
		release_locked(t, in, &dead);
	}
	pthread_mutex_unlock(&t->mu);
	bury(t, dead);
}

int inode_set_name(struct inode_table *t, struct inode *in,
		   struct inode *parent, const char *name)
{
	struct inode *dead = NULL;
	int rc;

	if (!t->track_names)
		return 0;
	pthread_mutex_lock(&t->mu);
	rc = set_name_locked(t, in, parent, name, &dead);
	pthread_mutex_unlock(&t->mu);
	bury(t, dead);
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
	in = find_lock_key_locked(t, key);
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
	bool r;

	pthread_mutex_lock(&t->mu);
	r = in->unlinked;
	pthread_mutex_unlock(&t->mu);
	return r;
}

void inode_stamp_from_stat(struct inode_stamp *s, const struct stat *st)
{
	s->mtime = st->st_mtim;
	s->ctime = st->st_ctim;
	s->size = st->st_size;
}

static bool stamp_equal(const struct inode_stamp *a, const struct inode_stamp *b)
{
	return a->size == b->size &&
	       a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
	       a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

bool inode_stamp_update(struct inode_table *t, struct inode *in, const struct stat *st)
{
	struct inode_stamp now;
	bool same;

	inode_stamp_from_stat(&now, st);
	pthread_mutex_lock(&t->mu);
	same = in->stamp_valid && stamp_equal(&in->stamp, &now);
	in->stamp = now;
	in->stamp_valid = true;
	pthread_mutex_unlock(&t->mu);
	return same;
}

void inode_stamp_set(struct inode_table *t, struct inode *in, const struct stat *st)
{
	(void)inode_stamp_update(t, in, st);
}

size_t inode_count(struct inode_table *t)
{
	size_t n;

	pthread_mutex_lock(&t->mu);
	n = t->count;
	pthread_mutex_unlock(&t->mu);
	return n;
}

size_t inode_buckets(struct inode_table *t)
{
	size_t n;

	pthread_mutex_lock(&t->mu);
	n = t->nbuckets;
	pthread_mutex_unlock(&t->mu);
	return n;
}

uint64_t inode_nlookup(struct inode_table *t, struct inode *in)
{
	uint64_t n;

	pthread_mutex_lock(&t->mu);
	n = in->nlookup;
	pthread_mutex_unlock(&t->mu);
	return n;
}

uint64_t inode_refs(struct inode_table *t, struct inode *in)
{
	uint64_t n;

	pthread_mutex_lock(&t->mu);
	n = in->refs;
	pthread_mutex_unlock(&t->mu);
	return n;
}
