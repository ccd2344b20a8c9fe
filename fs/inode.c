/* The inode table (see inode.h): entries, their two indexes, their
 * lifetime and stamps. Names and paths are in inode_names.c, reaching the
 * source (descriptors, lookups that stat and open) in inode_source.c; what
 * the three share is inode_impl.h.
 *
 * Two hash tables (hashtab.h) index the same entries, one by (st_dev,
 * st_ino) for lookups coming from the source (hashed on the lock key of that
 * pair, so that a lock key finds its entry too), one by node id for
 * requests coming from the kernel, so a lookup stays O(1) on average however
 * many files the kernel caches. Each doubles at load 1: 8 to 16 bytes of
 * bucket per entry and index. */
#include "inode_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "list.h"
#include "log.h"

#define INITIAL_BUCKETS 1024
#define MIN_FD_CACHE 8

_Static_assert(FH_MAX_MOUNTS <= UINT8_MAX, "inode.mnt holds a mount index");
_Static_assert(FH_MAX <= UINT8_MAX, "inode.handle_len holds a handle's length");

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

static uint64_t key_hash(const struct hlink *l)
{
	return hash_mix64(list_entry(l, struct inode, hk)->key);
}

static uint64_t id_hash(const struct hlink *l)
{
	return hash_mix64(list_entry(l, struct inode, hi)->nodeid);
}

static void hash_add(struct inode_table *t, struct inode *in)
{
	ht_insert(&t->by_key, &in->hk, hash_mix64(in->key));
	ht_insert(&t->by_id, &in->hi, hash_mix64(in->nodeid));
}

static void hash_del(struct inode_table *t, struct inode *in)
{
	if (!in->stale)
		ht_remove(&t->by_key, &in->hk, hash_mix64(in->key));
	ht_remove(&t->by_id, &in->hi, hash_mix64(in->nodeid));
}

/* The entry for (dev, ino) that is not stale (there is at most one). */
static struct inode *find_key_locked(struct inode_table *t, dev_t dev, ino_t ino)
{
	lt_file_t key = inode_lock_key(dev, ino);

	for (struct hlink *l = ht_first(&t->by_key, hash_mix64(key)); l; l = l->next) {
		struct inode *in = list_entry(l, struct inode, hk);

		if (in->ino == ino && in->dev == dev)
			return in;
	}
	return NULL;
}

/* The first entry with lock key `key`. Keys of different devices may
 * collide; the lock table cannot tell such files apart either. */
struct inode *inode_find_lock_key_locked(struct inode_table *t, lt_file_t key)
{
	for (struct hlink *l = ht_first(&t->by_key, hash_mix64(key)); l; l = l->next) {
		struct inode *in = list_entry(l, struct inode, hk);

		if (in->key == key)
			return in;
	}
	return NULL;
}

static struct inode *find_id_locked(struct inode_table *t, uint64_t id)
{
	for (struct hlink *l = ht_first(&t->by_id, hash_mix64(id)); l; l = l->next) {
		struct inode *in = list_entry(l, struct inode, hi);

		if (in->nodeid == id)
			return in;
	}
	return NULL;
}

/* An entry with room for a handle of hlen bytes and, inline, `name`. */
static struct inode *entry_alloc(unsigned hlen, const char *name)
{
	size_t nlen = name ? strlen(name) + 1 : 0;
	struct inode *in;

	if (nlen > UINT8_MAX)
		nlen = 0;
	in = calloc(1, sizeof(*in) + hlen + nlen);
	if (!in)
		return NULL;
	in->handle_len = (uint8_t)hlen;
	in->name_cap = (uint8_t)nlen;
	in->slot = -1;
	in->fd = -1;
	return in;
}

static void free_entry(struct inode *in)
{
	if (in->fd >= 0)
		close(in->fd);
	if (in->name != inode_inline_name(in))
		free(in->name);
	free(in);
}

static bool handle_equal(const struct inode *in, const struct fhandle *fh)
{
	return in->handle_len == fh->len && in->handle_type == fh->type &&
	       memcmp(in->handle, fh->bytes, fh->len) == 0;
}

static uint64_t stamp_hash(const struct stat *st)
{
	uint64_t h = hash_mix64((uint64_t)st->st_size ^ 0x5851f42d4c957f2dull);

	h = hash_mix64(h ^ (uint64_t)st->st_mtim.tv_sec);
	h = hash_mix64(h ^ (uint64_t)st->st_mtim.tv_nsec);
	h = hash_mix64(h ^ (uint64_t)st->st_ctim.tv_sec);
	h = hash_mix64(h ^ (uint64_t)st->st_ctim.tv_nsec);
	return h ? h : 1;  /* 0 means no stamp */
}

/* Takes `in` out of the table if nothing holds it any more, then its parent
 * if that was the parent's last reference, and so on up. The entries go on
 * *dead (chained through their hk link, out of the index) for inode_bury() to
 * free once the mutex is
 * released: closing descriptors and telling the hook need no lock. A cached
 * descriptor becomes the dead entry's fd, to be closed with it. */
void inode_release_locked(struct inode_table *t, struct inode *in, struct inode **dead)
{
	while (in && in != t->root && in->nlookup == 0 && in->refs == 0) {
		struct inode *parent = in->parent;

		hash_del(t, in);
		if (in->slot >= 0 && fdc_pins(&t->cache, in->slot)) {
			/* Put back after the last reference: a misuse; the
			 * descriptor stays with the slot. */
			log_err("inode %llu freed with a pinned descriptor",
				(unsigned long long)in->nodeid);
			fdc_disown(&t->cache, in->slot);
		} else if (in->slot >= 0) {
			in->fd = fdc_release(&t->cache, in->slot);
		} else if (in->fd >= 0) {
			t->kept--;
		}
		in->hk.next = *dead ? &(*dead)->hk : NULL;
		*dead = in;
		if (parent)
			parent->refs--;
		in = parent;
	}
}

/* The hook hears of each entry before its descriptor is closed (it was told
 * already of an entry that went stale). */
void inode_bury(struct inode_table *t, struct inode *dead)
{
	while (dead) {
		struct inode *next = dead->hk.next ? list_entry(dead->hk.next, struct inode, hk) : NULL;

		if (t->on_free && !dead->stale)
			t->on_free(t->on_free_arg, dead);
		free_entry(dead);
		dead = next;
	}
}

/* The file of `in` is gone (its handle no longer opens, or its inode number
 * names another file now). Returns a descriptor to close, or -1. */
int inode_mark_stale_locked(struct inode_table *t, struct inode *in)
{
	if (in->stale)
		return -1;
	ht_remove(&t->by_key, &in->hk, hash_mix64(in->key));
	in->stale = true;
	t->stale++;
	if (in->slot >= 0 && fdc_pins(&t->cache, in->slot) == 0)
		return fdc_release(&t->cache, in->slot);
	return -1;
}

/* Tells the hook about an entry that went stale (held by a reference the
 * caller took under the mutex), then drops that reference. */
void inode_stale_done(struct inode_table *t, struct inode *in, int close_fd)
{
	if (close_fd >= 0)
		close(close_fd);
	if (!in)
		return;
	if (t->on_free)
		t->on_free(t->on_free_arg, in);
	inode_put(t, in);
}

void inode_table_set_free_hook(struct inode_table *t, inode_free_fn fn, void *arg)
{
	t->on_free = fn;
	t->on_free_arg = arg;
}

int inode_table_new(struct inode_table **out, int root_fd, bool track_names)
{
	struct inode_table *t = calloc(1, sizeof(*t));
	struct inode *root = entry_alloc(0, NULL);
	struct stat st;
	int rc = -ENOMEM;

	if (!t || !root)
		goto fail;
	if (ht_init(&t->by_key, INITIAL_BUCKETS, key_hash) < 0)
		goto fail;
	if (ht_init(&t->by_id, INITIAL_BUCKETS, id_hash) < 0)
		goto fail;
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
	root->type = (uint16_t)(st.st_mode & S_IFMT);
	root->key = inode_lock_key(st.st_dev, st.st_ino);
	root->refs = 1; /* the table's own: the root outlives every request */
	t->root = root;
	t->next_id = INODE_ROOT_ID + 1;
	t->track_names = track_names;
	(void)fdc_init(&t->cache, 0);
	pthread_mutex_init(&t->mu, NULL);
	hash_add(t, root);
	inode_stamp_set(t, root, &st);
	*out = t;
	return 0;
fail:
	if (t) {
		ht_free(&t->by_key);
		ht_free(&t->by_id);
	}
	free(t);
	free(root);
	return rc;
}

int inode_table_use_handles(struct inode_table *t, unsigned fd_cache)
{
	int rc;

	if (ht_count(&t->by_id) > 1 || t->handles)
		return -EBUSY;
	rc = fh_mounts_init(&t->mounts, t->root->fd);
	if (rc < 0)
		return rc;
	rc = fdc_init(&t->cache, fd_cache < MIN_FD_CACHE ? MIN_FD_CACHE : fd_cache);
	if (rc < 0) {
		fh_mounts_free(&t->mounts);
		return rc;
	}
	t->handles = true;
	return 0;
}

bool inode_table_has_handles(const struct inode_table *t)
{
	return t->handles;
}

static void free_one(struct hlink *l, void *arg)
{
	(void)arg;
	free_entry(list_entry(l, struct inode, hi));
}

void inode_table_free(struct inode_table *t)
{
	if (!t)
		return;
	ht_each(&t->by_id, free_one, NULL);
	fdc_free(&t->cache);
	if (t->handles)
		fh_mounts_free(&t->mounts);
	ht_free(&t->by_key);
	ht_free(&t->by_id);
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
	inode_release_locked(t, in, &dead);
	pthread_mutex_unlock(&t->mu);
	inode_bury(t, dead);
}

/* The entry for (st, fh) if known, with one more lookup and reference and
 * the name recorded; NULL if unknown. An entry of the same (dev, ino) whose
 * handle differs turns stale (*went_stale, referenced, *close_fd). With no
 * handle to compare (fh NULL or empty) the entry is taken on (dev, ino). */
struct inode *inode_known_locked(struct inode_table *t, struct inode *parent, const char *name,
				 const struct stat *st, const struct fhandle *fh,
				  struct inode **dead, struct inode **went_stale, int *close_fd)
{
	struct inode *in = find_key_locked(t, st->st_dev, st->st_ino);

	if (!in)
		return NULL;
	if (in->handle_len && fh && fh->len && !handle_equal(in, fh)) {
		*close_fd = inode_mark_stale_locked(t, in);
		in->refs++;
		*went_stale = in;
		return NULL;
	}
	in->nlookup++;
	in->refs++;
	/* A name that cannot be recorded only costs policy accuracy. */
	(void)inode_set_name_locked(t, in, parent, name, dead);
	return in;
}

/* Finds the entry for (st, fh), or creates one that stores the handle (when
 * fh has one and its mount has an index) or keeps fd. fd (>= 0, O_PATH, or
 * INODE_NO_FD, or -1 to only find) is taken over: kept, cached or closed. */
int inode_lookup_common(struct inode_table *t, struct inode *parent, const char *name,
			const struct stat *st, const struct fhandle *fh, int mnt,
			int fd, struct inode **out)
{
	struct inode *in, *fresh = NULL, *dead = NULL, *went_stale = NULL;
	bool by_handle = fh && fh->len && mnt >= 0;
	int close_fd = -1, evicted = -1;

	/* Allocated outside the lock; wasted only when two lookups of a new
	 * inode race. */
	if (fd >= 0 || fd == INODE_NO_FD) {
		fresh = entry_alloc(by_handle ? fh->len : 0, t->track_names ? name : NULL);
		if (!fresh) {
			if (fd >= 0)
				close(fd);
			return -ENOMEM;
		}
	}
	pthread_mutex_lock(&t->mu);
	in = inode_known_locked(t, parent, name, st, fh, &dead, &went_stale, &close_fd);
	if (in) {
		/* A descriptor in hand spares the next operation an open. */
		if (fd >= 0 && in->fd < 0 && in->slot < 0 && t->handles &&
		    fdc_insert(&t->cache, fd, 0, &in->slot, &evicted))
			fd = -1;
	} else if (!fresh) {
		pthread_mutex_unlock(&t->mu);
		inode_stale_done(t, went_stale, close_fd);
		return -ENOENT;
	} else {
		in = fresh;
		fresh = NULL;
		in->nodeid = t->next_id++;
		in->dev = st->st_dev;
		in->ino = st->st_ino;
		in->type = (uint16_t)(st->st_mode & S_IFMT);
		in->key = inode_lock_key(st->st_dev, st->st_ino);
		if (by_handle) {
			in->handle_type = fh->type;
			memcpy(in->handle, fh->bytes, fh->len);
			in->mnt = (uint8_t)mnt;
			if (fd >= 0 && fdc_insert(&t->cache, fd, 0, &in->slot, &evicted))
				fd = -1;
		} else if (fd >= 0) {
			in->fd = fd;
			fd = -1;
			t->kept++;
		}
		in->stamp = stamp_hash(st);
		hash_add(t, in);
		in->nlookup = 1;
		in->refs = 1;
		(void)inode_set_name_locked(t, in, parent, name, &dead);
	}
	pthread_mutex_unlock(&t->mu);
	inode_bury(t, dead);
	inode_stale_done(t, went_stale, close_fd);
	if (evicted >= 0)
		close(evicted);
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
	inode_release_locked(t, in, &dead);
	pthread_mutex_unlock(&t->mu);
	inode_bury(t, dead);
}

void inode_forget(struct inode_table *t, uint64_t nodeid, uint64_t n)
{
	struct inode *in, *dead = NULL;

	pthread_mutex_lock(&t->mu);
	in = find_id_locked(t, nodeid);
	if (in) {
		in->nlookup = n > in->nlookup ? 0 : in->nlookup - n;
		inode_release_locked(t, in, &dead);
	}
	pthread_mutex_unlock(&t->mu);
	inode_bury(t, dead);
}

bool inode_stamp_update(struct inode_table *t, struct inode *in, const struct stat *st)
{
	uint64_t now = stamp_hash(st);
	bool same;

	pthread_mutex_lock(&t->mu);
	same = in->stamp == now;
	in->stamp = now;
	pthread_mutex_unlock(&t->mu);
	return same;
}

void inode_stamp_set(struct inode_table *t, struct inode *in, const struct stat *st)
{
	(void)inode_stamp_update(t, in, st);
}

size_t inode_count(struct inode_table *t)
{
	return LOCKED_READ(t, ht_count(&t->by_id));
}

size_t inode_buckets(struct inode_table *t)
{
	return LOCKED_READ(t, ht_buckets(&t->by_id));
}

uint64_t inode_nlookup(struct inode_table *t, struct inode *in)
{
	return LOCKED_READ(t, in->nlookup);
}

uint64_t inode_refs(struct inode_table *t, struct inode *in)
{
	return LOCKED_READ(t, in->refs);
}

bool inode_is_stale(struct inode_table *t, struct inode *in)
{
	return LOCKED_READ(t, in->stale);
}

void inode_fd_stats(struct inode_table *t, struct inode_fd_stats *out)
{
	pthread_mutex_lock(&t->mu);
	out->cap = t->cache.cap;
	out->cached = t->cache.cached;
	out->pinned = t->cache.pinned;
	out->kept = t->kept;
	out->hits = t->hits;
	out->opens = t->opens;
	out->evictions = t->cache.evictions;
	out->open_failures = t->open_failures;
	out->stale = t->stale;
	pthread_mutex_unlock(&t->mu);
}
