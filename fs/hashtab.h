/* One intrusive chained hash table for every module.
 *
 * An element embeds a struct hlink per table it is in and is found back with
 * list_entry() (list.h). The table stores no keys: callers hash their key
 * with hash_mix64() (or their own well-mixed 64-bit hash), walk the chain
 * from ht_first() and compare keys themselves. Growth rehashes each element
 * through the table's hash function, given at ht_init.
 *
 * The table doubles when its load reaches 1; a growth that cannot allocate
 * is not an error, chains just get longer. Insertion and removal never fail.
 * A table has no lock of its own: the module that owns it names the mutex
 * beside it, and may call these functions under that mutex (growth is the
 * only allocation, and it is optional). */
#ifndef LOCKFS_HASHTAB_H
#define LOCKFS_HASHTAB_H

#include <stddef.h>
#include <stdint.h>

struct hlink {
	struct hlink *next;
};

typedef uint64_t (*ht_hash_fn)(const struct hlink *l);

struct htab {
	struct hlink **b;
	size_t mask;            /* buckets - 1; buckets a power of two */
	size_t n;               /* elements */
	ht_hash_fn hash;
};

/* A bijective 64-bit finalizer: every input bit affects every output bit,
 * so sequential ids and inode numbers spread over the buckets, and distinct
 * keys never share a hash. */
static inline uint64_t hash_mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

/* buckets: a power of two. 0 or -ENOMEM. */
int ht_init(struct htab *h, size_t buckets, ht_hash_fn hash);
/* Frees the buckets, not the elements. */
void ht_free(struct htab *h);

static inline struct hlink *ht_first(const struct htab *h, uint64_t hash)
{
	return h->b[hash & h->mask];
}

/* hash must be what h->hash gives for l. */
void ht_insert(struct htab *h, struct hlink *l, uint64_t hash);
/* Removes l if it is in the table under hash. */
void ht_remove(struct htab *h, struct hlink *l, uint64_t hash);

static inline size_t ht_count(const struct htab *h)
{
	return h->n;
}

static inline size_t ht_buckets(const struct htab *h)
{
	return h->mask + 1;
}

/* Visits every element; fn may not change the table. */
void ht_each(const struct htab *h, void (*fn)(struct hlink *l, void *arg), void *arg);

#endif
