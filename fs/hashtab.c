/* The shared hash table (see hashtab.h). */
#include "hashtab.h"

#include <errno.h>
#include <stdlib.h>

int ht_init(struct htab *h, size_t buckets, ht_hash_fn hash)
{
	h->b = calloc(buckets, sizeof(*h->b));
	if (!h->b)
		return -ENOMEM;
	h->mask = buckets - 1;
	h->n = 0;
	h->hash = hash;
	return 0;
}

void ht_free(struct htab *h)
{
	free(h->b);
	h->b = NULL;
	h->mask = 0;
	h->n = 0;
}

static void ht_grow(struct htab *h)
{
	size_t nb = (h->mask + 1) * 2;
	struct hlink **b = calloc(nb, sizeof(*b));

	if (!b)
		return;
	for (size_t i = 0; i <= h->mask; i++) {
		struct hlink *l = h->b[i], *next;

		for (; l; l = next) {
			size_t j = h->hash(l) & (nb - 1);

			next = l->next;
			l->next = b[j];
			b[j] = l;
		}
	}
	free(h->b);
	h->b = b;
	h->mask = nb - 1;
}

void ht_insert(struct htab *h, struct hlink *l, uint64_t hash)
{
	struct hlink **slot;

	if (h->n > h->mask)
		ht_grow(h);
	slot = &h->b[hash & h->mask];
	l->next = *slot;
	*slot = l;
	h->n++;
}

void ht_remove(struct htab *h, struct hlink *l, uint64_t hash)
{
	struct hlink **p = &h->b[hash & h->mask];

	while (*p && *p != l)
		p = &(*p)->next;
	if (*p) {
		*p = l->next;
		h->n--;
	}
}

void ht_each(const struct htab *h, void (*fn)(struct hlink *l, void *arg), void *arg)
{
	for (size_t i = 0; i <= h->mask; i++) {
		struct hlink *l = h->b[i], *next;

		for (; l; l = next) {
			next = l->next;
			fn(l, arg);
		}
	}
}
