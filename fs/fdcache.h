/* A bounded cache of descriptors with pinning and LRU eviction.
 *
 * The cache holds at most `cap` descriptors, each in a slot. Something that
 * owns a descriptor in the cache (an inode table entry) names its slot by
 * index in an int32_t field of its own, -1 meaning "none", and gives the
 * cache that field's address: whenever the cache lets go of the slot
 * (eviction, release) it writes -1 there. That is all the cache knows of its
 * owners.
 *
 * A slot in use is pinned while someone uses its descriptor (fdc_pin, then
 * fdc_unpin): a pinned descriptor is never evicted or closed. The unpinned
 * ones form an LRU list, the least recently unpinned first; making room
 * evicts from there.
 *
 * Locking: the cache has no lock of its own. Its owner names the mutex that
 * protects it, and every function but fdc_init and fdc_free is called under
 * that mutex, which must also protect the owners' slot fields (the cache
 * writes them). No function here makes a system call: a descriptor the
 * cache lets go of is handed back for the caller to close once the mutex is
 * released (the inode table's mutex protects its cache: inode.h). */
#ifndef LOCKFS_FDCACHE_H
#define LOCKFS_FDCACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "list.h"

struct fdc_slot {
	int32_t *owner;         /* the owner's slot field; NULL: free or disowned */
	int fd;                 /* -1: free */
	uint32_t pins;
	struct list_node node;  /* in the LRU list (in use, unpinned), the free
	                           list (free), or none (pinned) */
};

struct fdcache {
	struct fdc_slot *slots; /* cap of them */
	unsigned cap;
	unsigned cached;        /* slots in use */
	unsigned pinned;        /* of those, pinned */
	uint64_t evictions;
	struct list lru;        /* least recently unpinned first */
	struct list free;
};

/* cap slots (0 gives a cache that holds nothing). 0 or -ENOMEM. */
int fdc_init(struct fdcache *c, unsigned cap);
/* Closes every descriptor still in the cache and frees the slots. */
void fdc_free(struct fdcache *c);

/* Puts fd into a free slot pinned `pins` times and writes the slot's index
 * to *owner. With no free slot, the least recently used unpinned one is
 * evicted first (its owner told) and its descriptor goes to *close_fd
 * (else -1). False when every slot is pinned: the cache did not take fd. */
bool fdc_insert(struct fdcache *c, int fd, uint32_t pins, int32_t *owner, int *close_fd);

/* Slot i (an owner's field, >= 0): its descriptor, pinned once more. */
int fdc_pin(struct fdcache *c, int32_t i);
/* Drops a pin of slot i; true when that was the last one (the slot is
 * then the most recently used). */
bool fdc_unpin(struct fdcache *c, int32_t i);

static inline int fdc_fd(const struct fdcache *c, int32_t i)
{
	return c->slots[i].fd;
}

static inline uint32_t fdc_pins(const struct fdcache *c, int32_t i)
{
	return c->slots[i].pins;
}

/* Frees slot i (in use, unpinned), tells its owner and returns its descriptor. */
int fdc_release(struct fdcache *c, int32_t i);
/* Evicts up to n unpinned descriptors, least recently used first, into
 * fds; returns how many. */
unsigned fdc_evict(struct fdcache *c, int *fds, unsigned n);
/* The owner of pinned slot i goes away: the slot forgets it and stays
 * pinned (its descriptor is closed by fdc_free). A misuse that must not
 * crash: whoever pinned it may still use the descriptor. */
void fdc_disown(struct fdcache *c, int32_t i);

#endif
