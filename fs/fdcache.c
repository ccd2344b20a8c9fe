/* The descriptor cache (see fdcache.h). A slot's index is its place in the
 * array, so an owner finds its descriptor without a search and the lists
 * need no allocation. */
#include "fdcache.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

static int32_t slot_index(const struct fdcache *c, const struct list_node *n)
{
	return (int32_t)(list_entry(n, struct fdc_slot, node) - c->slots);
}

int fdc_init(struct fdcache *c, unsigned cap)
{
	c->slots = cap ? calloc(cap, sizeof(*c->slots)) : NULL;
	if (cap && !c->slots)
		return -ENOMEM;
	c->cap = cap;
	c->cached = c->pinned = 0;
	c->evictions = 0;
	list_init(&c->lru);
	list_init(&c->free);
	for (unsigned i = 0; i < cap; i++) {
		c->slots[i].fd = -1;
		list_add_tail(&c->free, &c->slots[i].node);
	}
	return 0;
}

void fdc_free(struct fdcache *c)
{
	for (unsigned i = 0; i < c->cap; i++)
		if (c->slots[i].fd >= 0)
			close(c->slots[i].fd);
	free(c->slots);
	c->slots = NULL;
	c->cap = c->cached = c->pinned = 0;
}

int fdc_release(struct fdcache *c, int32_t i)
{
	struct fdc_slot *s = &c->slots[i];
	int fd = s->fd;

	list_remove(&s->node);
	if (s->owner)
		*s->owner = -1;
	s->owner = NULL;
	s->fd = -1;
	list_add_head(&c->free, &s->node);
	c->cached--;
	return fd;
}

unsigned fdc_evict(struct fdcache *c, int *fds, unsigned n)
{
	unsigned k = 0;

	while (k < n && !list_empty(&c->lru)) {
		fds[k++] = fdc_release(c, slot_index(c, list_first(&c->lru)));
		c->evictions++;
	}
	return k;
}

bool fdc_insert(struct fdcache *c, int fd, uint32_t pins, int32_t *owner, int *close_fd)
{
	struct list_node *n;
	struct fdc_slot *s;

	*close_fd = -1;
	if (list_empty(&c->free))
		(void)fdc_evict(c, close_fd, 1);
	n = list_pop(&c->free);
	if (!n)
		return false;
	s = list_entry(n, struct fdc_slot, node);
	s->owner = owner;
	s->fd = fd;
	s->pins = pins;
	*owner = slot_index(c, n);
	c->cached++;
	if (pins)
		c->pinned++;
	else
		list_add_tail(&c->lru, &s->node);
	return true;
}

int fdc_pin(struct fdcache *c, int32_t i)
{
	struct fdc_slot *s = &c->slots[i];

	if (s->pins++ == 0) {
		list_remove(&s->node);
		c->pinned++;
	}
	return s->fd;
}

bool fdc_unpin(struct fdcache *c, int32_t i)
{
	struct fdc_slot *s = &c->slots[i];

	if (--s->pins > 0)
		return false;
	c->pinned--;
	list_add_tail(&c->lru, &s->node);
	return true;
}

void fdc_disown(struct fdcache *c, int32_t i)
{
	struct fdc_slot *s = &c->slots[i];

	if (s->owner)
		*s->owner = -1;
	s->owner = NULL;
}
