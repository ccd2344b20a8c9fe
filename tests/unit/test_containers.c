/* Unit tests for the containers every module shares: the hash table
 * (fs/hashtab.h) and the list (fs/list.h). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <setjmp.h>
#include <cmocka.h>

#include "hashtab.h"
#include "list.h"

struct item {
	uint64_t key;
	struct hlink hl;
	struct list_node node;
};

static uint64_t item_hash(const struct hlink *l)
{
	return hash_mix64(list_entry(l, struct item, hl)->key);
}

static struct item *find(const struct htab *h, uint64_t key)
{
	for (struct hlink *l = ht_first(h, hash_mix64(key)); l; l = l->next) {
		struct item *it = list_entry(l, struct item, hl);

		if (it->key == key)
			return it;
	}
	return NULL;
}

static void count_one(struct hlink *l, void *arg)
{
	(void)l;
	(*(size_t *)arg)++;
}

/* Elements stay findable across many doublings, and removal takes out
 * exactly the element asked for. */
static void test_hash_grows_and_finds(void **state)
{
	enum { N = 5000 };
	struct item *items = calloc(N, sizeof(*items));
	struct htab h;
	size_t visited = 0;

	(void)state;
	assert_non_null(items);
	assert_int_equal(ht_init(&h, 4, item_hash), 0);
	for (size_t i = 0; i < N; i++) {
		items[i].key = i * 7919;
		ht_insert(&h, &items[i].hl, hash_mix64(items[i].key));
	}
	assert_int_equal(ht_count(&h), N);
	/* Doubled at load 1: never fewer buckets than elements, minus one. */
	assert_true(ht_buckets(&h) >= N / 2 && ht_buckets(&h) <= 2 * N);
	for (size_t i = 0; i < N; i++)
		assert_ptr_equal(find(&h, i * 7919), &items[i]);
	assert_null(find(&h, 1));
	for (size_t i = 0; i < N; i += 2)
		ht_remove(&h, &items[i].hl, hash_mix64(items[i].key));
	assert_int_equal(ht_count(&h), N / 2);
	for (size_t i = 0; i < N; i++)
		assert_ptr_equal(find(&h, i * 7919), i % 2 ? &items[i] : NULL);
	/* Removing what is not there changes nothing. */
	ht_remove(&h, &items[0].hl, hash_mix64(items[0].key));
	assert_int_equal(ht_count(&h), N / 2);
	ht_each(&h, count_one, &visited);
	assert_int_equal(visited, N / 2);
	ht_free(&h);
	free(items);
}

/* The mixer is a bijection on what matters here: sequential keys land in
 * different low bits, so a small table spreads them. */
static void test_mix_spreads_sequential_keys(void **state)
{
	unsigned used[64] = { 0 };
	size_t distinct = 0;

	(void)state;
	for (uint64_t k = 0; k < 64; k++)
		used[hash_mix64(k) & 63]++;
	for (size_t i = 0; i < 64; i++)
		distinct += used[i] > 0;
	/* 64 random draws into 64 buckets fill about 40 of them. */
	assert_true(distinct >= 30);
	assert_true(hash_mix64(1) != hash_mix64(2));
}

static void test_list_order_and_removal(void **state)
{
	struct item it[4];
	struct list l;
	struct list_node *n, *tmp;
	uint64_t seen[4];
	size_t k = 0;

	(void)state;
	list_init(&l);
	assert_true(list_empty(&l));
	assert_null(list_pop(&l));
	for (int i = 0; i < 4; i++) {
		it[i].key = (uint64_t)i;
		list_node_init(&it[i].node);
		assert_false(list_linked(&it[i].node));
	}
	list_add_tail(&l, &it[1].node);
	list_add_tail(&l, &it[2].node);
	list_add_head(&l, &it[0].node);
	list_add_tail(&l, &it[3].node);
	assert_true(list_linked(&it[2].node));
	/* Removal of the current element while iterating. */
	list_for_each(&l, n, tmp) {
		struct item *x = list_entry(n, struct item, node);

		seen[k++] = x->key;
		if (x->key == 2)
			list_remove(n);
	}
	assert_int_equal(k, 4);
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(seen[i], i);
	assert_false(list_linked(&it[2].node));
	assert_ptr_equal(list_first(&l), &it[0].node);
	assert_ptr_equal(list_next(&l, &it[1].node), &it[3].node);
	assert_null(list_next(&l, &it[3].node));
	assert_ptr_equal(list_pop(&l), &it[0].node);
	assert_ptr_equal(list_pop(&l), &it[1].node);
	assert_ptr_equal(list_pop(&l), &it[3].node);
	assert_true(list_empty(&l));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash_grows_and_finds),
		cmocka_unit_test(test_mix_spreads_sequential_keys),
		cmocka_unit_test(test_list_order_and_removal),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
