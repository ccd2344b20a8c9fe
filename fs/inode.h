/* The inode table: every source inode the kernel knows through the mount.
 *
 * Each entry is keyed by the source's (st_dev, st_ino) and holds an O_PATH
 * descriptor on that inode. The descriptor pins the source inode, so its
 * number cannot be recycled by the source file system while the entry lives:
 * (st_dev, st_ino) stays a faithful identity for as long as we use it.
 *
 * The kernel addresses inodes by node id. Node ids are handed out from a
 * counter and never reused, so a stale id (an NFS file handle, a late
 * request) finds nothing instead of a different file. The root is
 * INODE_ROOT_ID (FUSE_ROOT_ID). INODE_CONTROL_ID is never handed out (the
 * counter cannot get there): the passthrough gives it to the control file
 * (control.h), which is not in the source and not in the table.
 *
 * Lifetime: an entry counts the kernel's lookups (nlookup: +1 for each entry
 * reply, -n for each forget) and internal references (refs: an operation in
 * progress, an open handle, a child naming it as parent). It is freed when
 * both are zero. The root is never freed before the table.
 *
 * Names: when the table tracks names (the passthrough always asks for it:
 * policy rules match paths, lockstat shows them), each entry remembers its
 * parent and its last known name, so that the path relative to the mount
 * root can be rebuilt (inode_path, inode_key_path). Names are recorded when
 * an entry is looked up, created, linked or renamed through the mount; a
 * lookup under an unchanged name costs one string comparison. A child holds
 * a reference on its parent.
 *
 * Thread safety: all functions may be called from any thread. One mutex
 * inside the table (inode_table.mu) protects the hash tables, the counts, the
 * names, the flags and the cache stamps of every entry. The fields marked
 * "immutable" below may be read without it. */
#ifndef LOCKFS_INODE_H
#define LOCKFS_INODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include "locktable.h"

#define INODE_ROOT_ID 1
#define INODE_CONTROL_ID UINT64_MAX
#define INODE_NO_FD (-2)

/* What the mount last saw of a file's contents, to tell whether somebody
 * changed it behind the mount's back. */
struct inode_stamp {
	struct timespec mtime;
	struct timespec ctime;
	off_t size;
};

/* One per inode the kernel knows, so its size is most of what a file that
 * is only looked up costs: type and fd share a word (136 bytes, a 144-byte
 * malloc chunk, where 144 bytes took 160). */
struct inode {
	/* Immutable after creation. */
	uint64_t nodeid;
	dev_t dev;
	ino_t ino;
	mode_t type;            /* st_mode & S_IFMT */
	int fd;                 /* O_PATH, closed when the entry is freed */
	lt_file_t key;          /* inode_lock_key(dev, ino) */

	/* Protected by the table's mutex; use the functions below. */
	uint64_t nlookup;
	uint64_t refs;
	struct inode *parent;   /* holds a ref; NULL for the root or unknown */
	char *name;             /* last known name in parent, NULL if unknown */
	bool unlinked;          /* unlinked or renamed over through the mount */
	bool stamp_valid;
	struct inode_stamp stamp;
	struct inode *next_key; /* hash chain by (dev, ino) */
	struct inode *next_id;  /* hash chain by nodeid */
};

struct inode_table;

/* Called once for each entry the table frees (not at inode_table_free()),
 * outside the table's mutex, before its descriptor is closed: the source
 * inode is still pinned, so its (st_dev, st_ino) still names it alone. */
typedef void (*inode_free_fn)(void *arg, struct inode *in);

/* The table with its root: root_fd is duplicated (the caller keeps its own).
 * track_names enables parent/name tracking for inode_path(). 0 or -errno. */
int inode_table_new(struct inode_table **out, int root_fd, bool track_names);
/* Frees every entry, closing their descriptors. */
void inode_table_free(struct inode_table *t);
/* Sets the hook before the table is used by more than one thread. */
void inode_table_set_free_hook(struct inode_table *t, inode_free_fn fn, void *arg);

struct inode *inode_root(struct inode_table *t);
bool inode_tracks_names(const struct inode_table *t);

/* The entry for a node id with one more reference, or NULL if unknown. */
struct inode *inode_get(struct inode_table *t, uint64_t nodeid);
/* The entry for (dev, ino) with one more reference, or NULL if unknown. */
struct inode *inode_find(struct inode_table *t, dev_t dev, ino_t ino);
/* Takes one more reference on an entry the caller already references. */
void inode_ref(struct inode_table *t, struct inode *in);
/* The directory `in` was last known in, with one more reference; NULL
 * for the root or when unknown. */
struct inode *inode_parent(struct inode_table *t, struct inode *in);
/* Drops a reference; may free the entry (and parents it kept alive). */
void inode_put(struct inode_table *t, struct inode *in);

/* The kernel learns about the inode described by st, found as `name` in
 * `parent` (both may be NULL when unknown). Finds or creates the entry,
 * adds one lookup and one reference (drop it with inode_put), and records
 * the name. fd is an O_PATH descriptor on the inode, or -1:
 *   - entry found: fd (if any) is closed; 0.
 *   - not found, fd >= 0: a new entry takes fd; 0. Its cache stamp is
 *     taken from st: the kernel's new inode starts with these attributes.
 *   - not found, fd == -1: -ENOENT; the caller opens the inode and calls
 *     again (this saves an open and a close for inodes already known).
 *   - not found, fd == INODE_NO_FD: a new entry without a descriptor (the
 *     unit tests create 100k entries without 100k open files).
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
/* Stores st as the stamp. */
void inode_stamp_set(struct inode_table *t, struct inode *in, const struct stat *st);
void inode_stamp_from_stat(struct inode_stamp *s, const struct stat *st);

/* The lock-table key of a source inode: st_ino mixed with st_dev so that on
 * one device two keys differ exactly when the inodes differ. Never zero. */
lt_file_t inode_lock_key(dev_t dev, ino_t ino);

/* For tests and statistics. */
size_t inode_count(struct inode_table *t);
size_t inode_buckets(struct inode_table *t);
uint64_t inode_nlookup(struct inode_table *t, struct inode *in);
uint64_t inode_refs(struct inode_table *t, struct inode *in);

#endif
