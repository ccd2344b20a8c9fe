/* One intrusive doubly linked list for every module.
 *
 * A struct list is a circular list's head; a struct list_node sits inside
 * each element, which is found back with list_entry(). Insertion and removal
 * are O(1) and allocate nothing, so they may run under any mutex. A list
 * has no lock of its own: the module that owns it names the mutex beside it.
 *
 * A node that is in no list has NULL links (list_node_init, or zeroed
 * memory), so list_linked() tells whether it was added. */
#ifndef LOCKFS_LIST_H
#define LOCKFS_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct list_node {
	struct list_node *prev, *next;
};

struct list {
	struct list_node head;
};

#define list_entry(node, type, member) \
	((type *)(void *)((char *)(node) - offsetof(type, member)))

static inline void list_init(struct list *l)
{
	l->head.prev = l->head.next = &l->head;
}

static inline void list_node_init(struct list_node *n)
{
	n->prev = n->next = NULL;
}

static inline bool list_empty(const struct list *l)
{
	return l->head.next == &l->head;
}

static inline bool list_linked(const struct list_node *n)
{
	return n->next != NULL;
}

static inline void list_add_head(struct list *l, struct list_node *n)
{
	n->prev = &l->head;
	n->next = l->head.next;
	l->head.next->prev = n;
	l->head.next = n;
}

static inline void list_add_tail(struct list *l, struct list_node *n)
{
	n->next = &l->head;
	n->prev = l->head.prev;
	l->head.prev->next = n;
	l->head.prev = n;
}

static inline void list_remove(struct list_node *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->prev = n->next = NULL;
}

/* The first node, or NULL when empty. */
static inline struct list_node *list_first(const struct list *l)
{
	return list_empty(l) ? NULL : l->head.next;
}

/* Takes the first node off the list; NULL when empty. */
static inline struct list_node *list_pop(struct list *l)
{
	struct list_node *n = list_first(l);

	if (n)
		list_remove(n);
	return n;
}

/* The node after n, or NULL at the end. */
static inline struct list_node *list_next(const struct list *l, const struct list_node *n)
{
	return n->next == &l->head ? NULL : n->next;
}

/* Iterates over the nodes; the body may remove `it` (not others). */
#define list_for_each(l, it, tmp) \
	for ((it) = (l)->head.next, (tmp) = (it)->next; (it) != &(l)->head; \
	     (it) = (tmp), (tmp) = (it)->next)

#endif
