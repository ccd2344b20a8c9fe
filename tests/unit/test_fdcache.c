/* Unit tests for the descriptor cache (fs/fdcache.h): slots, pins, LRU
 * order, eviction and what owners are told, with real descriptors so that
 * what is handed back to close and what fdc_free closes can be checked. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <unistd.h>
#include <cmocka.h>

#include "fdcache.h"

static int new_fd(void)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	return fd;
}

static bool fd_is_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

/* Fills a cache of n slots with unpinned descriptors, fds[i] owned by
 * owner[i], inserted in order (so 0 is the least recently used). */
static void fill(struct fdcache *c, unsigned n, int *fds, int32_t *owner)
{
	int close_fd;

	assert_int_equal(fdc_init(c, n), 0);
	for (unsigned i = 0; i < n; i++) {
		fds[i] = new_fd();
		owner[i] = -1;
		assert_true(fdc_insert(c, fds[i], 0, &owner[i], &close_fd));
		assert_int_equal(close_fd, -1);
		assert_true(owner[i] >= 0);
		assert_int_equal(fdc_fd(c, owner[i]), fds[i]);
	}
	assert_int_equal(c->cached, n);
	assert_int_equal(c->pinned, 0);
}

static void test_pin_unpin(void **state)
{
	struct fdcache c;
	int fds[4];
	int32_t owner[4];

	(void)state;
	fill(&c, 4, fds, owner);
	assert_int_equal(fdc_pin(&c, owner[1]), fds[1]);
	assert_int_equal(fdc_pin(&c, owner[1]), fds[1]);
	assert_int_equal(c.pinned, 1);
	assert_int_equal(fdc_pins(&c, owner[1]), 2);
	assert_false(fdc_unpin(&c, owner[1]));
	assert_int_equal(c.pinned, 1);
	assert_true(fdc_unpin(&c, owner[1]));
	assert_int_equal(c.pinned, 0);
	assert_int_equal(c.cached, 4);
	fdc_free(&c);
	for (int i = 0; i < 4; i++)
		assert_false(fd_is_open(fds[i]));
}

/* A full cache evicts the least recently unpinned slot and tells its
 * owner; using a descriptor makes it the most recent. */
static void test_lru_eviction(void **state)
{
	struct fdcache c;
	int fds[4], close_fd, extra;
	int32_t owner[4], owner_extra = -1;

	(void)state;
	fill(&c, 4, fds, owner);
	(void)fdc_pin(&c, owner[0]);
	assert_true(fdc_unpin(&c, owner[0]));
	extra = new_fd();
	assert_true(fdc_insert(&c, extra, 0, &owner_extra, &close_fd));
	/* 0 was used last: 1 goes. */
	assert_int_equal(close_fd, fds[1]);
	assert_int_equal(owner[1], -1);
	assert_true(owner[0] >= 0);
	assert_int_equal(fdc_fd(&c, owner_extra), extra);
	assert_int_equal(c.evictions, 1);
	assert_int_equal(c.cached, 4);
	close(close_fd);
	fdc_free(&c);
	assert_false(fd_is_open(extra));
	assert_false(fd_is_open(fds[0]));
}

/* Pinned slots are never taken: with all of them pinned an insert fails
 * and leaves the descriptor and the owner alone. */
static void test_all_pinned(void **state)
{
	struct fdcache c;
	int fds[2], close_fd, extra = new_fd();
	int32_t owner[2], owner_extra = -1;

	(void)state;
	fill(&c, 2, fds, owner);
	(void)fdc_pin(&c, owner[0]);
	(void)fdc_pin(&c, owner[1]);
	assert_false(fdc_insert(&c, extra, 1, &owner_extra, &close_fd));
	assert_int_equal(close_fd, -1);
	assert_int_equal(owner_extra, -1);
	assert_int_equal(c.evictions, 0);
	assert_true(fd_is_open(fds[0]) && fd_is_open(fds[1]));
	/* One unpinned: that one makes room. */
	assert_true(fdc_unpin(&c, owner[1]));
	assert_true(fdc_insert(&c, extra, 1, &owner_extra, &close_fd));
	assert_int_equal(close_fd, fds[1]);
	assert_int_equal(owner[1], -1);
	assert_int_equal(c.pinned, 2);
	close(close_fd);
	fdc_free(&c);
	assert_false(fd_is_open(extra));
}

/* Eviction in bulk (out of descriptors) takes only unpinned slots, least
 * recent first, and the freed slots are used again. */
static void test_evict_some(void **state)
{
	struct fdcache c;
	int fds[5], got[8], close_fd;
	int32_t owner[5];
	unsigned n;

	(void)state;
	fill(&c, 5, fds, owner);
	(void)fdc_pin(&c, owner[1]);
	n = fdc_evict(&c, got, 3);
	assert_int_equal(n, 3);
	assert_int_equal(got[0], fds[0]);
	assert_int_equal(got[1], fds[2]);
	assert_int_equal(got[2], fds[3]);
	assert_int_equal(owner[0], -1);
	assert_true(owner[1] >= 0);
	assert_int_equal(owner[2], -1);
	assert_true(owner[4] >= 0);
	n = fdc_evict(&c, got + 3, 8 - 3);
	assert_int_equal(n, 1);
	assert_int_equal(got[3], fds[4]);
	assert_int_equal(c.cached, 1);
	assert_int_equal(c.evictions, 4);
	for (int i = 0; i < 4; i++) {
		owner[0] = -1;
		assert_true(fdc_insert(&c, got[i], 0, &owner[0], &close_fd));
		assert_int_equal(close_fd, -1);
	}
	assert_int_equal(c.cached, 5);
	fdc_free(&c);
	for (int i = 0; i < 5; i++)
		assert_false(fd_is_open(fds[i]));
}

/* Release hands the descriptor back and clears the owner; a disowned
 * pinned slot keeps its descriptor (closed by fdc_free) and stays out of
 * eviction. */
static void test_release_and_disown(void **state)
{
	struct fdcache c;
	int fds[3], got[3];
	int32_t owner[3];

	(void)state;
	fill(&c, 3, fds, owner);
	assert_int_equal(fdc_release(&c, owner[2]), fds[2]);
	assert_int_equal(owner[2], -1);
	assert_int_equal(c.cached, 2);
	assert_int_equal(c.evictions, 0);
	close(fds[2]);
	(void)fdc_pin(&c, owner[0]);
	fdc_disown(&c, owner[0]);
	assert_int_equal(owner[0], -1);
	assert_int_equal(fdc_evict(&c, got, 3), 1);
	assert_int_equal(got[0], fds[1]);
	close(got[0]);
	assert_int_equal(c.cached, 1);
	assert_int_equal(c.pinned, 1);
	assert_true(fd_is_open(fds[0]));
	fdc_free(&c);
	assert_false(fd_is_open(fds[0]));
}

static void test_no_slots(void **state)
{
	struct fdcache c;
	int fd = new_fd(), close_fd, got;
	int32_t owner = -1;

	(void)state;
	assert_int_equal(fdc_init(&c, 0), 0);
	assert_false(fdc_insert(&c, fd, 0, &owner, &close_fd));
	assert_int_equal(owner, -1);
	assert_int_equal(fdc_evict(&c, &got, 1), 0);
	fdc_free(&c);
	assert_true(fd_is_open(fd));
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pin_unpin),
		cmocka_unit_test(test_lru_eviction),
		cmocka_unit_test(test_all_pinned),
		cmocka_unit_test(test_evict_some),
		cmocka_unit_test(test_release_and_disown),
		cmocka_unit_test(test_no_slots),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
