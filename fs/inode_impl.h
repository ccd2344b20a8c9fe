/* What the inode table's own files share; every other module uses inode.h.
 *
 *   inode.c         entries, the two indexes, lifetime (references,
 *                   lookups, forgets, staleness), stamps, statistics;
 *   inode_names.c   parents, names and the paths rebuilt from them;
 *   inode_source.c  reaching the source: pinned descriptors (the cache,
 *                   handles) and lookups that stat and open source files.
 *
 * Functions named *_locked run under the table's mutex (t->mu). */
#ifndef LOCKFS_INODE_IMPL_H
#define LOCKFS_INODE_IMPL_H

#include <pthread.h>

#include "fdcache.h"
#include "fhandle.h"
#include "hashtab.h"
#include "inode.h"

struct inode_table {
	pthread_mutex_t mu;     /* protects everything below but what says
	                           otherwise, and the mutable fields of every
	                           entry */
	struct htab by_key;     /* inode.hk, entries that are not stale */
	struct htab by_id;      /* inode.hi, every entry */
	uint64_t next_id;
	struct inode *root;     /* immutable after creation */
	bool track_names;       /* immutable after creation */
	inode_free_fn on_free;  /* set before use, then immutable */
	void *on_free_arg;

	/* Set by inode_table_use_handles() before use, then immutable. */
	bool handles;
	struct fh_mounts mounts; /* its own lock for registration: fhandle.h */

	struct fdcache cache;   /* no slots until inode_table_use_handles();
	                           it writes inode.slot, also under mu */
	unsigned kept;          /* entries keeping a descriptor for life */
	uint64_t hits, opens, open_failures, stale;
};

/* Reads an expression under the table's mutex. */
#define LOCKED_READ(t, expr) ({ \
	__typeof__((expr) + 0) v_; \
	pthread_mutex_lock(&(t)->mu); \
	v_ = (expr); \
	pthread_mutex_unlock(&(t)->mu); \
	v_; \
})

/* Where an entry's inline name space starts (name_cap bytes). */
static inline char *inode_inline_name(struct inode *in)
{
	return (char *)in->handle + in->handle_len;
}

/* inode.c */
struct inode *inode_find_lock_key_locked(struct inode_table *t, lt_file_t key);
void inode_release_locked(struct inode_table *t, struct inode *in, struct inode **dead);
void inode_bury(struct inode_table *t, struct inode *dead);
int inode_mark_stale_locked(struct inode_table *t, struct inode *in);
void inode_stale_done(struct inode_table *t, struct inode *in, int close_fd);
struct inode *inode_known_locked(struct inode_table *t, struct inode *parent, const char *name,
				 const struct stat *st, const struct fhandle *fh,
				 struct inode **dead, struct inode **went_stale, int *close_fd);
int inode_lookup_common(struct inode_table *t, struct inode *parent, const char *name,
			const struct stat *st, const struct fhandle *fh, int mnt,
			int fd, struct inode **out);

/* inode_names.c */
int inode_set_name_locked(struct inode_table *t, struct inode *in,
			  struct inode *parent, const char *name, struct inode **dead);

#endif
