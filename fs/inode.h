/* The inode table: every source inode the kernel knows through the mount.
 *
 * Each entry is keyed by the source's (st_dev, st_ino). How an entry reaches
 * its source inode depends on the table's mode:
 *
 *   - Handles (inode_table_use_handles(), what the daemon uses): each entry
 *     stores the inode's file handle (name_to_handle_at), inline and
 *     compactly (8 bytes for ext4, 12 to 40 for most others), and no
 *     descriptor. An operation that needs one pins it (inode_fd_get, then
 *     inode_fd_put): it comes from a bounded LRU cache of O_PATH descriptors,
 *     reopened by handle (open_by_handle_at, which needs
 *     CAP_DAC_READ_SEARCH: the daemon runs as root) when not cached. Eviction
 *     only closes descriptors nobody has pinned. So the daemon holds at most
 *     fd_cache descriptors for inodes (plus those pinned at the moment, one
 *     or two per request in progress, and the fallbacks below) however many
 *     the kernel knows, and an idle entry costs 150 bytes or so (see
 *     struct inode below).
 *   - Kept descriptors (the default of inode_table_new(), and the fallback
 *     per entry): the entry holds an O_PATH descriptor for life, as lockfs
 *     always did. This is what an inode of a file system without file
 *     handles (name_to_handle_at fails with EOPNOTSUPP: some FUSE and
 *     pseudo file systems) or on a 256th mount below the source gets: such
 *     inodes cost one descriptor each for as long as the kernel knows them,
 *     and with very many of them the daemon can still run out (each lookup
 *     then fails alone with EMFILE, rate-limited in the log; nothing else).
 *     inode_fd_get returns that descriptor; put is a no-op for it.
 *
 * Identity. A kept descriptor pins the source inode, so its number cannot be
 * recycled while the entry lives. A handle does not pin: the file may be
 * removed behind the mount's back and its number given to a new file. The
 * handle tells them apart (it carries the inode's generation): a lookup that
 * finds (st_dev, st_ino) with a different handle makes a new entry and the
 * old one stale. A stale entry stays reachable by its node id (the kernel
 * may still use it) but every inode_fd_get on it fails with -ESTALE, as does
 * opening a handle whose file is gone (open_by_handle_at's ESTALE marks the
 * entry stale too). The kernel then looks the name up again: a removed file
 * gives ENOENT, a recreated one its new inode. A file renamed behind the
 * mount's back keeps its handle, so the entry keeps serving the right file
 * whatever its name became (its recorded name is stale until the next
 * lookup, as before). Hard links share one inode and one handle: one entry.
 *
 * The kernel addresses inodes by node id. Node ids are handed out from a
 * counter and never reused, so a stale id (an NFS file handle, a late
 * request) finds nothing instead of a different file. The root is
 * INODE_ROOT_ID (FUSE_ROOT_ID) and always keeps its descriptor.
 * INODE_CONTROL_ID is never handed out (the counter cannot get there): the
 * passthrough gives it to the control file (control.h), which is not in the
 * source and not in the table.
 *
 * Lifetime: an entry counts the kernel's lookups (nlookup: +1 for each entry
 * reply, -n for each forget) and internal references (refs: an operation in
 * progress, an open handle, a child naming it as parent). It is freed when
 * both are zero. The root is never freed before the table. A pinned
 * descriptor must be put back before the reference that pinned it.
 *
 * Names: when the table tracks names (the passthrough always asks for it:
 * policy rules match paths, lockstat shows them), each entry remembers its
 * parent and its last known name (stored inline in the entry when it is
 * created with one), so that the path relative to the mount root can be
 * rebuilt (inode_path, inode_key_path). Names are recorded when an entry is
 * looked up, created, linked or renamed through the mount; a lookup under an
 * unchanged name costs one string comparison. A child holds a reference on
 * its parent.
 *
 * Running out: when opening a descriptor fails with EMFILE or ENFILE, the
 * cache closes unpinned descriptors and tries once more; a request that
 * still gets no descriptor fails alone with that error (logged at most a few
 * times a second) and the next ones work as soon as descriptors are free.
 *
 * Thread safety: all functions may be called from any thread. One mutex
 * inside the table (inode_table.mu, inode_impl.h) protects the two indexes
 * (hashtab.h), the counts, the names, the flags, the cache stamps and the
 * descriptor cache (fdcache.h, which has no lock of its own and writes
 * inode.slot). The table of mounts that open handles (fhandle.h) has its
 * own mutex, taken only when a mount is met for the first time. The fields
 * marked "immutable" below may be read without a lock. No system call is
 * made under the table's mutex: descriptors are opened before it is taken
 * and closed after it is released.
 *
 * The table is three files: inode.c (entries, indexes, lifetime, stamps),
 * inode_names.c (names, paths) and inode_source.c (descriptors, lookups in
 * the source). */
#ifndef LOCKFS_INODE_H
#define LOCKFS_INODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include "hashtab.h"
#include "locktable.h"

#define INODE_ROOT_ID 1
#define INODE_CONTROL_ID UINT64_MAX
#define INODE_NO_FD (-2)
/* The descriptor cache's default size, and the share of RLIMIT_NOFILE it
 * may take at most (the rest is for open files, pidfds, the session). */
#define INODE_FD_CACHE_DEFAULT 512
#define INODE_FD_CACHE_RLIMIT_SHARE 4

/* One per inode the kernel knows, so its size is most of what a file that
 * is only looked up costs. The fields are ordered so that the fixed part is
 * 102 bytes (sizeof 104, asserted below); the handle and the name follow it
 * in the same allocation: an ext4 file "f12345" (8-byte handle, 7-byte
 * name) makes a 119-byte calloc, a 128-byte glibc malloc chunk. With the
 * two indexes' buckets (8 bytes each, at a load between 1/2 and 1: 16 to
 * 32 bytes an entry) such an idle entry costs 144 to 160 bytes of daemon
 * memory, under the 200 aimed at; a 40-byte handle and a 20-byte name
 * cost 32 more. */
struct inode {
	/* Immutable after creation. */
	uint64_t nodeid;
	dev_t dev;
	ino_t ino;
	lt_file_t key;          /* inode_lock_key(dev, ino) */

	/* Protected by the table's mutex; use the functions below. */
	uint64_t nlookup;
	struct inode *parent;   /* holds a ref; NULL for the root or unknown */
	char *name;             /* last known name in parent, NULL if unknown;
	                           inline after the handle, or malloc'ed */
	struct hlink hk;        /* in the index by (dev, ino) */
	struct hlink hi;        /* in the index by node id */
	uint64_t stamp;         /* hash of the cache stamp, 0: none */
	uint32_t refs;
	int32_t slot;           /* descriptor cache slot, -1 if none */

	/* Immutable after creation. */
	int fd;                 /* O_PATH kept for life, or -1 (by handle) */
	int32_t handle_type;
	uint16_t type;          /* st_mode & S_IFMT */
	uint8_t handle_len;     /* 0: no handle (fd >= 0) */
	uint8_t mnt;            /* which mount fd opens the handle */

	/* Protected by the table's mutex. */
	uint8_t name_cap;       /* bytes of inline name space */
	bool unlinked : 1;      /* unlinked or renamed over through the mount */
	bool stale : 1;         /* its file is gone: see "Identity" above;
	                           then it is out of the (dev, ino) index */

	unsigned char handle[]; /* handle_len bytes, then name_cap bytes */
};
_Static_assert(sizeof(struct inode) <= 104, "an idle inode costs under 200 bytes");

/* What the descriptor cache did, for lockstat and the tests. */
struct inode_fd_stats {
	unsigned cap;           /* slots */
	unsigned cached;        /* descriptors in the cache */
	unsigned pinned;        /* of those, pinned now */
	unsigned kept;          /* entries keeping a descriptor for life */
	uint64_t hits, opens, evictions, open_failures, stale;
};

struct inode_table;

/* Called once for each entry the table frees (not at inode_table_free()),
 * outside the table's mutex: the lock table drops what it knows about the
 * file, whose number the source may now give to a new file. For an entry
 * that turns stale it is called then instead (its number names another file
 * already). With kept descriptors it runs before the descriptor is closed. */
typedef void (*inode_free_fn)(void *arg, struct inode *in);

/* The table with its root: root_fd is duplicated (the caller keeps its own).
 * track_names enables parent/name tracking for inode_path(). Entries keep
 * their descriptors until inode_table_use_handles(). 0 or -errno. */
int inode_table_new(struct inode_table **out, int root_fd, bool track_names);
/* Switches to handles with a cache of fd_cache descriptors (at least 8),
 * before any entry but the root exists. -EOPNOTSUPP when the source has no
 * file handles, -EPERM without CAP_DAC_READ_SEARCH: the table then keeps
 * descriptors, as before the call. */
int inode_table_use_handles(struct inode_table *t, unsigned fd_cache);
bool inode_table_has_handles(const struct inode_table *t);
/* Frees every entry, closing their descriptors. */
void inode_table_free(struct inode_table *t);
/* Sets the hook before the table is used by more than one thread. */
void inode_table_set_free_hook(struct inode_table *t, inode_free_fn fn, void *arg);

struct inode *inode_root(struct inode_table *t);
bool inode_tracks_names(const struct inode_table *t);

/* The entry for a node id with one more reference, or NULL if unknown. */
struct inode *inode_get(struct inode_table *t, uint64_t nodeid);
/* The entry for (dev, ino) with one more reference, or NULL if unknown
 * (stale entries are not found). */
struct inode *inode_find(struct inode_table *t, dev_t dev, ino_t ino);
/* Takes one more reference on an entry the caller already references. */
void inode_ref(struct inode_table *t, struct inode *in);
/* The directory `in` was last known in, with one more reference; NULL
 * for the root or when unknown. */
struct inode *inode_parent(struct inode_table *t, struct inode *in);
/* Drops a reference; may free the entry (and parents it kept alive). */
void inode_put(struct inode_table *t, struct inode *in);

/* A descriptor on the source inode (O_PATH, or the root's), pinned: it stays
 * open until inode_fd_put(t, in, fd), which the caller must call while it
 * still references `in`. -ESTALE when the file is gone (the entry is then
 * stale), -EMFILE/-ENFILE when no descriptor can be had even after closing
 * unpinned ones, other -errno from open_by_handle_at. Safe with the
 * caller's file system identity (setfsuid) in place. */
int inode_fd_get(struct inode_table *t, struct inode *in);
void inode_fd_put(struct inode_table *t, struct inode *in, int fd);

/* After a call failed with errno err: when err is EMFILE or ENFILE, closes
 * some unpinned cached descriptors and returns true (worth one more try);
 * false otherwise. For any open the daemon makes, not only the table's. */
bool inode_make_room(struct inode_table *t, int err);

/* The kernel learns about `name` in the directory open as dirfd (`parent`'s
 * descriptor; parent may be NULL when unknown, as with ".."): stats it
 * without following a symlink, finds or creates its entry, adds one lookup
 * and one reference (drop it with inode_put) and records the name. *st gets
 * the attributes. A known inode costs a stat and a name_to_handle_at; a new
 * one an O_PATH open too, whose descriptor goes into the cache. Runs with
 * the caller's identity: searching dirfd is its permission check. */
int inode_lookup_at(struct inode_table *t, struct inode *parent, int dirfd,
		    const char *name, struct stat *st, struct inode **out);
/* The same for the inode open as fd (any access mode; not consumed): a
 * known inode costs an fstat and a name_to_handle_at, a new one the O_PATH
 * open of fd's own file too (the same file, so nothing is read twice). */
int inode_lookup_fd(struct inode_table *t, struct inode *parent, const char *name,
		    int fd, struct stat *st, struct inode **out);

/* The lower level, by (dev, ino) alone, as inode_lookup_at uses it: finds or
 * creates the entry for the inode described by st, adds one lookup and one
 * reference, and records the name. fd is an O_PATH descriptor on the inode
 * (taken over), or -1:
 *   - entry found: fd (if any) is closed, or cached; 0. With handles, an
 *     entry is only found by a descriptor whose handle matches.
 *   - not found, fd >= 0: a new entry takes fd; 0. Its cache stamp is
 *     taken from st: the kernel's new inode starts with these attributes.
 *   - not found, fd == -1: -ENOENT; the caller opens the inode and calls
 *     again (this saves an open and a close for inodes already known).
 *   - not found, fd == INODE_NO_FD: a new entry without a descriptor or
 *     handle (the unit tests create 100k entries without 100k open files).
 * -ENOMEM (fd closed) on allocation failure. */
int inode_lookup(struct inode_table *t, struct inode *parent, const char *name,
		 const struct stat *st, int fd, struct inode **out);
/* Undoes n lookups (forget, or an entry reply that could not be sent). */
void inode_forget(struct inode_table *t, uint64_t nodeid, uint64_t n);
void inode_unlookup(struct inode_table *t, struct inode *in, uint64_t n);

/* Records that `in` is now called `name` in `parent` (rename, link). No-op
 * unless the table tracks names. -ENOMEM leaves the old name. */
int inode_set_name(struct inode_table *t, struct inode *in,
		   struct inode *parent, const char *name);
/* Rebuilds the path of `in` relative to the root, without a leading '/'
 * ("" for the root). -ENOENT if a name on the way is unknown (names not
 * tracked, or an inode reached without a name), -ENAMETOOLONG if it does
 * not fit. */
int inode_path(struct inode_table *t, struct inode *in, char *buf, size_t size);
/* The path of `name` in directory `dir`, as above. */
int inode_child_path(struct inode_table *t, struct inode *dir, const char *name,
		     char *buf, size_t size);
/* The path, as above, of the entry whose lock key (inode_lock_key) is `key`:
 * found through the (dev, ino) index, which is hashed on that key, so it
 * costs what a lookup does. -ENOENT also when no entry has that key, or when
 * it was unlinked or renamed over through the mount (its name is stale). */
int inode_key_path(struct inode_table *t, lt_file_t key, char *buf, size_t size);

void inode_mark_unlinked(struct inode_table *t, struct inode *in);
bool inode_is_unlinked(struct inode_table *t, struct inode *in);

/* Compares st with the entry's stamp, then stores st as the new stamp.
 * Returns true if a valid stamp matched (the kernel's cached data and
 * attributes are still those of the source). */
bool inode_stamp_update(struct inode_table *t, struct inode *in, const struct stat *st);
/* Stores st as the stamp. The stamp is what the mount last saw of a file's
 * contents (mtime, ctime, size), kept as a 64-bit hash: only equality is
 * ever asked, and a false match is a 2^-64 chance. */
void inode_stamp_set(struct inode_table *t, struct inode *in, const struct stat *st);

/* The lock-table key of a source inode: st_ino mixed with st_dev so that on
 * one device two keys differ exactly when the inodes differ. Never zero. */
lt_file_t inode_lock_key(dev_t dev, ino_t ino);

/* For tests and statistics. */
size_t inode_count(struct inode_table *t);
size_t inode_buckets(struct inode_table *t);
uint64_t inode_nlookup(struct inode_table *t, struct inode *in);
uint64_t inode_refs(struct inode_table *t, struct inode *in);
bool inode_is_stale(struct inode_table *t, struct inode *in);
void inode_fd_stats(struct inode_table *t, struct inode_fd_stats *out);

#endif
