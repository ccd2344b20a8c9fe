/* The inode table (see inode.h).
 *
 * Two chained hash tables index the same entries, one by (st_dev, st_ino)
 * for lookups coming from the source (hashed on the lock key of that pair,
 * so that a lock key finds its entry too), one by node id for requests
 * coming from the kernel. Both have the same number of buckets (a power of
 * two) and double together when the entries outnumber twice the buckets, so
 * a lookup stays O(1) on average however many files the kernel caches, for
 * 8 to 16 bytes of bucket per entry.
 *
 * The descriptor cache is an array of slots. A slot holds an entry's O_PATH
 * descriptor and a pin count; the unpinned slots in use form an LRU list
 * (most recently put at the head), the unused ones a free list. An entry
 * names its slot (inode.slot), so a cached descriptor is found without a
 * search. */
#include "inode.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <unistd.h>

#include "log.h"

#define INITIAL_BUCKETS 1024
/* A deeper chain of parents than this is taken to be a corrupted (cyclic)
 * record rather than a real path. */
#define MAX_DEPTH 4096
/* Mounts below the source whose handles the table can open (mnt is 8 bits,
 * 0 being the root's mount). */
#define MAX_MOUNTS 255
#define MIN_FD_CACHE 8
/* Unpinned descriptors closed at once when the process is out of them. */
#define EMFILE_EVICT 16

struct fd_slot {
	struct inode *in;       /* NULL: free */
	int fd;
	uint32_t pins;
	int32_t prev, next;     /* LRU list (in use, unpinned) or free list */
};

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

	/* Set by inode_table_use_handles() before use, then immutable. */
	bool handles;
	int root_mnt_id;        /* the source root's mount */
	/* open_by_handle_at takes no O_PATH descriptor for the mount: these
	 * are directories opened O_RDONLY, the root's and one for each mount
	 * below the source (ids and descriptors appended under mu, never
	 * removed). */
	int root_mfd;
	int mnt_ids[MAX_MOUNTS];
	int mnt_fds[MAX_MOUNTS];
	unsigned nmounts;

	struct fd_slot *slots;  /* cap of them */
	unsigned cap;
	int32_t lru_head, lru_tail, free_head;
	unsigned cached, pinned, kept;
	uint64_t hits, opens, evictions, open_failures, stale;
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

/* Takes `in` out of the (dev, ino) index only: a stale entry. */
static void key_hash_del(struct inode_table *t, struct inode *in)
{
	struct inode **p;

	for (p = &t->by_key[key_bucket(t, in->dev, in->ino)]; *p; p = &(*p)->next_key) {
		if (*p == in) {
			*p = in->next_key;
			break;
		}
	}
	in->next_key = NULL;
}

static void hash_del(struct inode_table *t, struct inode *in)
{
	struct inode **p;

	if (!in->stale)
		key_hash_del(t, in);
	for (p = &t->by_id[id_bucket(t, in->nodeid)]; *p; p = &(*p)->next_id) {
		if (*p == in) {
			*p = in->next_id;
			break;
		}
	}
	t->count--;
}

/* Doubles both tables once the entries outnumber twice the buckets.
 * Failure to grow is harmless (chains get longer). */
static void maybe_grow(struct inode_table *t)
{
	size_t n = t->nbuckets * 2;
	struct inode **bk, **bi;

	if (t->count < 2 * t->nbuckets)
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

/* The entry for (dev, ino) that is not stale (there is at most one). */
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

static char *inline_name(struct inode *in)
{
	return (char *)in->handle + in->handle_len;
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
	if (in->name != inline_name(in))
		free(in->name);
	free(in);
}

/* ---- the descriptor cache (all _locked functions under t->mu) ------------ */

static void lru_unlink(struct inode_table *t, int32_t i)
{
	struct fd_slot *s = &t->slots[i];

	if (s->prev >= 0)
		t->slots[s->prev].next = s->next;
	else
		t->lru_head = s->next;
	if (s->next >= 0)
		t->slots[s->next].prev = s->prev;
	else
		t->lru_tail = s->prev;
	s->prev = s->next = -1;
}

static void lru_push(struct inode_table *t, int32_t i)
{
	struct fd_slot *s = &t->slots[i];

	s->prev = -1;
	s->next = t->lru_head;
	if (t->lru_head >= 0)
		t->slots[t->lru_head].prev = i;
	else
		t->lru_tail = i;
	t->lru_head = i;
}

/* Frees an unpinned slot; returns its descriptor for the caller to close
 * once the mutex is released. */
static int slot_release_locked(struct inode_table *t, int32_t i)
{
	struct fd_slot *s = &t->slots[i];
	int fd = s->fd;

	lru_unlink(t, i);
	s->in->slot = -1;
	s->in = NULL;
	s->fd = -1;
	s->next = t->free_head;
	t->free_head = i;
	t->cached--;
	return fd;
}

/* Closes up to n descriptors, the least recently used first. */
static void evict_some(struct inode_table *t, unsigned n)
{
	int fds[EMFILE_EVICT];
	unsigned k = 0;

	if (n > EMFILE_EVICT)
		n = EMFILE_EVICT;
	pthread_mutex_lock(&t->mu);
	while (k < n && t->lru_tail >= 0) {
		fds[k++] = slot_release_locked(t, t->lru_tail);
		t->evictions++;
	}
	pthread_mutex_unlock(&t->mu);
	while (k > 0)
		close(fds[--k]);
}

/* Puts fd into the cache for `in`, pinned `pins` times; *close_fd gets a
 * descriptor evicted to make room (or -1). False when every slot is pinned:
 * the caller keeps fd for itself. */
static bool cache_insert_locked(struct inode_table *t, struct inode *in, int fd,
				uint32_t pins, int *close_fd)
{
	int32_t i = t->free_head;
	struct fd_slot *s;

	*close_fd = -1;
	if (i < 0 && t->lru_tail >= 0) {
		*close_fd = slot_release_locked(t, t->lru_tail);
		t->evictions++;
		i = t->free_head;
	}
	if (i < 0)
		return false;
	s = &t->slots[i];
	t->free_head = s->next;
	s->in = in;
	s->fd = fd;
	s->pins = pins;
	s->prev = s->next = -1;
	in->slot = i;
	t->cached++;
	if (pins)
		t->pinned++;
	else
		lru_push(t, i);
	return true;
}

/* ---- handles -------------------------------------------------------------- */

union fh_buf {
	struct file_handle fh;
	char space[sizeof(struct file_handle) + INODE_HANDLE_MAX];
};

/* The handle of `name` in dirfd (or of dirfd itself with AT_EMPTY_PATH).
 * -EOPNOTSUPP when there is none to be had. */
static int handle_at(int dirfd, const char *name, int flags, struct inode_fh *out, int *mnt_id)
{
	union fh_buf b;

	b.fh.handle_bytes = INODE_HANDLE_MAX;
	if (name_to_handle_at(dirfd, name, &b.fh, mnt_id, flags) < 0) {
		out->len = 0;
		/* Too big to store is the same as none. */
		return errno == EOVERFLOW ? -EOPNOTSUPP : -errno;
	}
	out->type = b.fh.handle_type;
	out->len = b.fh.handle_bytes;
	memcpy(out->bytes, b.fh.f_handle, out->len);
	return 0;
}

static bool handle_equal(const struct inode *in, const struct inode_fh *fh)
{
	return in->handle_len == fh->len && in->handle_type == fh->type &&
	       memcmp(in->handle, fh->bytes, fh->len) == 0;
}

/* open_by_handle_at needs CAP_DAC_READ_SEARCH, which a thread acting with a
 * caller's fsuid has dropped (setfsuid to non-zero clears it): such a thread
 * gets it back for the one call by going to fsuid 0 and back. The open is
 * O_PATH, which checks no permission on the file itself; what the caller
 * may do with it is checked later, as the caller. */
static int open_handle(int mfd, struct file_handle *fh)
{
	int fd = open_by_handle_at(mfd, fh, O_PATH | O_CLOEXEC);

	if (fd < 0 && errno == EPERM && geteuid() == 0) {
		int prev = setfsuid(0);

		if (prev != 0) {
			fd = open_by_handle_at(mfd, fh, O_PATH | O_CLOEXEC);
			int err = errno;

			setfsuid((uid_t)prev);
			errno = err;
		} else {
			errno = EPERM;
		}
	}
	return fd;
}

bool inode_make_room(struct inode_table *t, int err)
{
	if ((err != EMFILE && err != ENFILE) || !t->handles)
		return false;
	evict_some(t, EMFILE_EVICT);
	return true;
}

static void fd_failed(struct inode_table *t, struct inode *in, int err)
{
	pthread_mutex_lock(&t->mu);
	t->open_failures++;
	pthread_mutex_unlock(&t->mu);
	log_limited(LOG_LVL_WARN, "cannot open inode %llu of the source: %s",
		    (unsigned long long)in->nodeid, strerror(err));
}

/* A directory descriptor open_by_handle_at accepts, on the directory open
 * as O_PATH descriptor fd; -1 if it is not a directory. */
static int open_dir_of(int fd)
{
	char proc[32];

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	return open(proc, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* The mount index of mount `mnt_id` for a new entry whose O_PATH descriptor
 * is fd; registers the mount on first sight. -1 when there is no room. */
static int mount_index(struct inode_table *t, int mnt_id, int fd)
{
	unsigned n;
	int dup_fd, idx = -1;

	if (mnt_id == t->root_mnt_id)
		return 0;
	n = __atomic_load_n(&t->nmounts, __ATOMIC_ACQUIRE);
	for (unsigned i = 0; i < n; i++)
		if (t->mnt_ids[i] == mnt_id)
			return (int)i + 1;
	if (n == MAX_MOUNTS)
		return -1;
	/* The first inode met on a mount is its root, a directory (the
	 * lookup went through it); anything else keeps its descriptor. */
	dup_fd = open_dir_of(fd);
	if (dup_fd < 0)
		return -1;
	pthread_mutex_lock(&t->mu);
	n = t->nmounts;
	for (unsigned i = 0; i < n; i++)
		if (t->mnt_ids[i] == mnt_id)
			idx = (int)i + 1;
	if (idx < 0 && n < MAX_MOUNTS) {
		t->mnt_ids[n] = mnt_id;
		t->mnt_fds[n] = dup_fd;
		dup_fd = -1;
		__atomic_store_n(&t->nmounts, n + 1, __ATOMIC_RELEASE);
		idx = (int)n + 1;
	}
	pthread_mutex_unlock(&t->mu);
	if (dup_fd >= 0)
		close(dup_fd);
	return idx;
}

/* ---- lifetime ------------------------------------------------------------- */

/* Takes `in` out of the table if nothing holds it any more, then its parent
 * if that was the parent's last reference, and so on up. The entries go on
 * *dead (chained through next_key) for bury() to free once the mutex is
 * released: closing descriptors and telling the hook need no lock. A cached
 * descriptor becomes the dead entry's fd, to be closed with it. */
static void release_locked(struct inode_table *t, struct inode *in, struct inode **dead)
{
	while (in && in != t->root && in->nlookup == 0 && in->refs == 0) {
		struct inode *parent = in->parent;

		hash_del(t, in);
		if (in->slot >= 0) {
			struct fd_slot *s = &t->slots[in->slot];

			if (s->pins) {
				/* Put back after the last reference: a misuse;
				 * the descriptor stays with the slot. */
				log_err("inode %llu freed with a pinned descriptor",
					(unsigned long long)in->nodeid);
				s->in = NULL;
				in->slot = -1;
			} else {
				in->fd = slot_release_locked(t, in->slot);
			}
		} else if (in->fd >= 0) {
			t->kept--;
		}
		in->next_key = *dead;
		*dead = in;
		if (parent)
			parent->refs--;
		in = parent;
	}
}

/* The hook hears of each entry before its descriptor is closed (it was told
 * already of an entry that went stale). */
static void bury(struct inode_table *t, struct inode *dead)
{
	while (dead) {
		struct inode *next = dead->next_key;

		if (t->on_free && !dead->stale)
			t->on_free(t->on_free_arg, dead);
		free_entry(dead);
		dead = next;
	}
}

/* The file of `in` is gone (its handle no longer opens, or its inode number
 * names another file now). Returns a descriptor to close, or -1. */
static int mark_stale_locked(struct inode_table *t, struct inode *in)
{
	if (in->stale)
		return -1;
	key_hash_del(t, in);
	in->stale = true;
	t->stale++;
	if (in->slot >= 0 && t->slots[in->slot].pins == 0)
		return slot_release_locked(t, in->slot);
	return -1;
}

/* Tells the hook about an entry that went stale (held by a reference the
 * caller took under the mutex), then drops that reference. */
static void stale_done(struct inode_table *t, struct inode *in, int close_fd)
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
	root->type = (uint16_t)(st.st_mode & S_IFMT);
	root->key = inode_lock_key(st.st_dev, st.st_ino);
	root->refs = 1; /* the table's own: the root outlives every request */
	t->root = root;
	t->next_id = INODE_ROOT_ID + 1;
	t->track_names = track_names;
	t->lru_head = t->lru_tail = t->free_head = -1;
	t->root_mfd = -1;
	pthread_mutex_init(&t->mu, NULL);
	hash_add(t, root);
	inode_stamp_set(t, root, &st);
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

int inode_table_use_handles(struct inode_table *t, unsigned fd_cache)
{
	union fh_buf b;
	struct inode_fh fh;
	int mnt_id, fd, rc;

	if (t->count > 1 || t->handles)
		return -EBUSY;
	rc = handle_at(t->root->fd, "", AT_EMPTY_PATH, &fh, &mnt_id);
	if (rc < 0)
		return rc;
	/* One open proves the capability before any entry relies on it. */
	b.fh.handle_bytes = fh.len;
	b.fh.handle_type = fh.type;
	memcpy(b.fh.f_handle, fh.bytes, fh.len);
	t->root_mfd = open_dir_of(t->root->fd);
	if (t->root_mfd < 0)
		return -errno;
	fd = open_handle(t->root_mfd, &b.fh);
	if (fd < 0) {
		rc = -errno;
		close(t->root_mfd);
		t->root_mfd = -1;
		return rc;
	}
	close(fd);
	if (fd_cache < MIN_FD_CACHE)
		fd_cache = MIN_FD_CACHE;
	t->slots = calloc(fd_cache, sizeof(*t->slots));
	if (!t->slots)
		return -ENOMEM;
	for (unsigned i = 0; i < fd_cache; i++) {
		t->slots[i].fd = -1;
		t->slots[i].prev = -1;
		t->slots[i].next = i + 1 < fd_cache ? (int32_t)i + 1 : -1;
	}
	t->cap = fd_cache;
	t->free_head = 0;
	t->root_mnt_id = mnt_id;
	t->handles = true;
	return 0;
}

bool inode_table_has_handles(const struct inode_table *t)
{
	return t->handles;
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
	for (unsigned i = 0; i < t->cap; i++)
		if (t->slots[i].fd >= 0)
			close(t->slots[i].fd);
	for (unsigned i = 0; i < t->nmounts; i++)
		close(t->mnt_fds[i]);
	if (t->root_mfd >= 0)
		close(t->root_mfd);
	free(t->slots);
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

/* ---- descriptors ---------------------------------------------------------- */

int inode_fd_get(struct inode_table *t, struct inode *in)
{
	union fh_buf b;
	struct inode *went_stale = NULL;
	int fd, close_fd = -1, err;

	if (in->fd >= 0)
		return in->fd;
	if (!in->handle_len)
		return -EBADF;  /* made with INODE_NO_FD */
	pthread_mutex_lock(&t->mu);
	if (in->stale) {
		pthread_mutex_unlock(&t->mu);
		return -ESTALE;
	}
	if (in->slot >= 0) {
		struct fd_slot *s = &t->slots[in->slot];

		if (s->pins++ == 0) {
			lru_unlink(t, in->slot);
			t->pinned++;
		}
		t->hits++;
		fd = s->fd;
		pthread_mutex_unlock(&t->mu);
		return fd;
	}
	pthread_mutex_unlock(&t->mu);

	b.fh.handle_bytes = in->handle_len;
	b.fh.handle_type = in->handle_type;
	memcpy(b.fh.f_handle, in->handle, in->handle_len);
	/* mnt_fds[i] was stored before the entry that uses it was published
	 * under the mutex, which the caller's reference went through. */
	int mfd = in->mnt ? t->mnt_fds[in->mnt - 1] : t->root_mfd;

	fd = open_handle(mfd, &b.fh);
	if (fd < 0 && inode_make_room(t, errno))
		fd = open_handle(mfd, &b.fh);
	if (fd < 0) {
		err = errno;
		if (err != ESTALE) {
			fd_failed(t, in, err);
			return -err;
		}
		pthread_mutex_lock(&t->mu);
		if (!in->stale) {
			close_fd = mark_stale_locked(t, in);
			in->refs++;
			went_stale = in;
		}
		pthread_mutex_unlock(&t->mu);
		stale_done(t, went_stale, close_fd);
		return -ESTALE;
	}

	pthread_mutex_lock(&t->mu);
	t->opens++;
	if (in->stale) {
		pthread_mutex_unlock(&t->mu);
		close(fd);
		return -ESTALE;
	}
	if (in->slot >= 0) {
		/* Opened by another thread meanwhile: share that one. */
		struct fd_slot *s = &t->slots[in->slot];

		close_fd = fd;
		if (s->pins++ == 0) {
			lru_unlink(t, in->slot);
			t->pinned++;
		}
		fd = s->fd;
	} else {
		/* Every slot pinned: the caller gets its own descriptor, which
		 * inode_fd_put closes. */
		(void)cache_insert_locked(t, in, fd, 1, &close_fd);
	}
	pthread_mutex_unlock(&t->mu);
	if (close_fd >= 0)
		close(close_fd);
	return fd;
}

void inode_fd_put(struct inode_table *t, struct inode *in, int fd)
{
	int close_fd = fd;

	if (fd < 0 || fd == in->fd)
		return;
	pthread_mutex_lock(&t->mu);
	if (in->slot >= 0 && t->slots[in->slot].fd == fd) {
		struct fd_slot *s = &t->slots[in->slot];

		close_fd = -1;
		if (--s->pins == 0) {
			t->pinned--;
			lru_push(t, in->slot);
			if (in->stale)
				close_fd = slot_release_locked(t, in->slot);
		}
	}
	pthread_mutex_unlock(&t->mu);
	if (close_fd >= 0)
		close(close_fd);
}

/* ---- lookups -------------------------------------------------------------- */

static int set_name_locked(struct inode_table *t, struct inode *in,
			   struct inode *parent, const char *name, struct inode **dead);
static uint64_t stamp_hash(const struct stat *st);

/* The entry for (st, fh) if known, with one more lookup and reference and
 * the name recorded; NULL if unknown. An entry of the same (dev, ino) whose
 * handle differs turns stale (*went_stale, referenced, *close_fd). With no
 * handle to compare (fh NULL or empty) the entry is taken on (dev, ino). */
static struct inode *known_locked(struct inode_table *t, struct inode *parent, const char *name,
				  const struct stat *st, const struct inode_fh *fh,
				  struct inode **dead, struct inode **went_stale, int *close_fd)
{
	struct inode *in = find_key_locked(t, st->st_dev, st->st_ino);

	if (!in)
		return NULL;
	if (in->handle_len && fh && fh->len && !handle_equal(in, fh)) {
		*close_fd = mark_stale_locked(t, in);
		in->refs++;
		*went_stale = in;
		return NULL;
	}
	in->nlookup++;
	in->refs++;
	/* A name that cannot be recorded only costs policy accuracy. */
	(void)set_name_locked(t, in, parent, name, dead);
	return in;
}

/* Finds the entry for (st, fh), or creates one that stores the handle (when
 * fh has one and its mount has an index) or keeps fd. fd (>= 0, O_PATH, or
 * INODE_NO_FD, or -1 to only find) is taken over: kept, cached or closed. */
static int lookup_common(struct inode_table *t, struct inode *parent, const char *name,
			 const struct stat *st, const struct inode_fh *fh, int mnt,
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
	in = known_locked(t, parent, name, st, fh, &dead, &went_stale, &close_fd);
	if (in) {
		/* A descriptor in hand spares the next operation an open. */
		if (fd >= 0 && in->fd < 0 && in->slot < 0 && t->handles &&
		    cache_insert_locked(t, in, fd, 0, &evicted))
			fd = -1;
	} else if (!fresh) {
		pthread_mutex_unlock(&t->mu);
		stale_done(t, went_stale, close_fd);
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
			if (fd >= 0 && cache_insert_locked(t, in, fd, 0, &evicted))
				fd = -1;
		} else if (fd >= 0) {
			in->fd = fd;
			fd = -1;
			t->kept++;
		}
		in->stamp = stamp_hash(st);
		hash_add(t, in);
		maybe_grow(t);
		in->nlookup = 1;
		in->refs = 1;
		(void)set_name_locked(t, in, parent, name, &dead);
	}
	pthread_mutex_unlock(&t->mu);
	bury(t, dead);
	stale_done(t, went_stale, close_fd);
	if (evicted >= 0)
		close(evicted);
	if (fd >= 0)
		close(fd);
	free(fresh);
	*out = in;
	return 0;
}
int inode_lookup(struct inode_table *t, struct inode *parent, const char *name,
		 const struct stat *st, int fd, struct inode **out)
{
	struct inode_fh fh = { .len = 0 };
	int mnt_id, mnt = -1;

	if (fd >= 0 && t->handles && handle_at(fd, "", AT_EMPTY_PATH, &fh, &mnt_id) == 0)
		mnt = mount_index(t, mnt_id, fd);
	return lookup_common(t, parent, name, st, fh.len ? &fh : NULL, mnt, fd, out);
}

/* An O_PATH open of `name` in dirfd (or of fd itself when name is NULL),
 * trying once more after making room when out of descriptors. */
static int open_path(struct inode_table *t, int dirfd, const char *name)
{
	char proc[32];
	int fd;

	if (!name) {
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", dirfd);
		dirfd = AT_FDCWD;
		name = proc;
	}
	for (int tries = 0; tries < 2; tries++) {
		fd = openat(dirfd, name, O_PATH | O_CLOEXEC | (name == proc ? 0 : O_NOFOLLOW));
		if (fd >= 0 || !inode_make_room(t, errno))
			break;
	}
	if (fd < 0 && (errno == EMFILE || errno == ENFILE))
		log_limited(LOG_LVL_WARN, "cannot open a source file: %s", strerror(errno));
	return fd < 0 ? -errno : fd;
}

/* What inode_lookup_at and inode_lookup_fd share once st and (for a table
 * of handles) the handle are known: a known entry costs nothing more; a new
 * one gets an O_PATH descriptor, and its identity is read again from that
 * descriptor (the name may have changed hands since). */
static int lookup_known_or_open(struct inode_table *t, struct inode *parent, const char *name,
				int dirfd, const char *open_name, struct stat *st,
				const struct inode_fh *fh, struct inode **out)
{
	struct inode *in, *dead = NULL, *went_stale = NULL;
	int fd, close_fd = -1;

	pthread_mutex_lock(&t->mu);
	in = known_locked(t, parent, name, st, fh, &dead, &went_stale, &close_fd);
	pthread_mutex_unlock(&t->mu);
	bury(t, dead);
	stale_done(t, went_stale, close_fd);
	if (in) {
		*out = in;
		return 0;
	}
	fd = open_path(t, dirfd, open_name);
	if (fd < 0)
		return fd;
	if (fstat(fd, st) < 0) {
		int rc = -errno;

		close(fd);
		return rc;
	}
	return inode_lookup(t, parent, name, st, fd, out);
}

int inode_lookup_at(struct inode_table *t, struct inode *parent, int dirfd,
		    const char *name, struct stat *st, struct inode **out)
{
	struct inode_fh fh = { .len = 0 };
	int mnt_id, rc;

	if (fstatat(dirfd, name, st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (t->handles) {
		rc = handle_at(dirfd, name, 0, &fh, &mnt_id);
		if (rc < 0 && rc != -EOPNOTSUPP)
			return rc;
	}
	return lookup_known_or_open(t, parent, name, dirfd, name, st, &fh, out);
}

int inode_lookup_fd(struct inode_table *t, struct inode *parent, const char *name,
		    int fd, struct stat *st, struct inode **out)
{
	struct inode_fh fh = { .len = 0 };
	int mnt_id, rc;

	if (fstat(fd, st) < 0)
		return -errno;
	if (t->handles) {
		rc = handle_at(fd, "", AT_EMPTY_PATH, &fh, &mnt_id);
		if (rc < 0 && rc != -EOPNOTSUPP)
			return rc;
	}
	return lookup_known_or_open(t, parent, name, fd, NULL, st, &fh, out);
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

/* ---- names ---------------------------------------------------------------- */

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
		if (in->name != inline_name(in))
			free(in->name);
		in->name = memcpy(inline_name(in), name, len);
	} else {
		char *copy = strdup(name);

		if (!copy)
			return -ENOMEM;
		if (in->name != inline_name(in))
			free(in->name);
		in->name = copy;
	}
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

static uint64_t stamp_hash(const struct stat *st)
{
	uint64_t h = mix64((uint64_t)st->st_size ^ 0x5851f42d4c957f2dull);

	h = mix64(h ^ (uint64_t)st->st_mtim.tv_sec);
	h = mix64(h ^ (uint64_t)st->st_mtim.tv_nsec);
	h = mix64(h ^ (uint64_t)st->st_ctim.tv_sec);
	h = mix64(h ^ (uint64_t)st->st_ctim.tv_nsec);
	return h ? h : 1;  /* 0 means no stamp */
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

bool inode_is_stale(struct inode_table *t, struct inode *in)
{
	bool r;

	pthread_mutex_lock(&t->mu);
	r = in->stale;
	pthread_mutex_unlock(&t->mu);
	return r;
}

void inode_fd_stats(struct inode_table *t, struct inode_fd_stats *out)
{
	pthread_mutex_lock(&t->mu);
	out->cap = t->cap;
	out->cached = t->cached;
	out->pinned = t->pinned;
	out->kept = t->kept;
	out->hits = t->hits;
	out->opens = t->opens;
	out->evictions = t->evictions;
	out->open_failures = t->open_failures;
	out->stale = t->stale;
	pthread_mutex_unlock(&t->mu);
}
