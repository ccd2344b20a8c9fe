/* Unit tests for the open classifier: every row of "What an open takes" in
 * docs/semantics.md. */
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "openclass.h"

#define LEASE 250000000ull

static void test_kinds(void **state)
{
	(void)state;
	assert_int_equal(openclass_kind(O_RDONLY, false, S_IFREG), OPEN_READ);
	assert_int_equal(openclass_kind(O_RDONLY | O_NONBLOCK, false, S_IFREG), OPEN_READ);
	/* A truncation is a write whatever the access mode. */
	assert_int_equal(openclass_kind(O_RDONLY | O_TRUNC, false, S_IFREG), OPEN_WRITE);
	assert_int_equal(openclass_kind(O_WRONLY, false, S_IFREG), OPEN_WRITE);
	assert_int_equal(openclass_kind(O_RDWR, false, S_IFREG), OPEN_WRITE);
	/* A CREATE request is a write: the file may be new. */
	assert_int_equal(openclass_kind(O_RDONLY, true, S_IFREG), OPEN_WRITE);
	assert_int_equal(openclass_kind(O_WRONLY | O_APPEND, false, S_IFREG), OPEN_NOLOCK);
	assert_int_equal(openclass_kind(O_WRONLY | O_APPEND | O_TRUNC, false, S_IFREG), OPEN_WRITE);
	/* O_RDWR|O_APPEND can read back what it appends to: a write. */
	assert_int_equal(openclass_kind(O_RDWR | O_APPEND, false, S_IFREG), OPEN_WRITE);
	assert_int_equal(openclass_kind(O_RDONLY | OPENCLASS_FMODE_EXEC, false, S_IFREG),
			 OPEN_NOLOCK);
	assert_int_equal(openclass_kind(O_RDONLY, false, S_IFDIR), OPEN_NOLOCK);
	assert_int_equal(openclass_kind(O_WRONLY, false, S_IFIFO), OPEN_NOLOCK);
	assert_int_equal(openclass_kind(O_RDWR, false, S_IFCHR), OPEN_NOLOCK);
}

static void test_reads(void **state)
{
	struct open_lock l;

	(void)state;
	l = openclass_lock(OPEN_READ, O_RDONLY, POLICY_EXCLUSIVE, true, LEASE);
	assert_true(l.lock);
	assert_int_equal(l.cls, LT_UPDATE);
	assert_int_equal(l.flags, 0);
	assert_int_equal(l.lease_ns, LEASE);

	/* A caller that cannot modify the file only reads. */
	l = openclass_lock(OPEN_READ, O_RDONLY, POLICY_EXCLUSIVE, false, LEASE);
	assert_true(l.lock);
	assert_int_equal(l.cls, LT_SHARED);
	assert_int_equal(l.lease_ns, 0);

	l = openclass_lock(OPEN_READ, O_RDONLY | O_NONBLOCK, POLICY_READERS_WRITER, true, LEASE);
	assert_true(l.lock);
	assert_int_equal(l.cls, LT_SHARED);
	assert_int_equal(l.flags, LT_F_NONBLOCK);
	assert_int_equal(l.lease_ns, 0);

	l = openclass_lock(OPEN_READ, O_RDONLY, POLICY_NONE, true, LEASE);
	assert_false(l.lock);

	assert_true(openclass_needs_modify_check(OPEN_READ, POLICY_EXCLUSIVE));
	assert_false(openclass_needs_modify_check(OPEN_READ, POLICY_READERS_WRITER));
	assert_false(openclass_needs_modify_check(OPEN_WRITE, POLICY_EXCLUSIVE));
}

static void test_writes(void **state)
{
	struct open_lock l;

	(void)state;
	for (int m = POLICY_EXCLUSIVE; m <= POLICY_READERS_WRITER; m++) {
		l = openclass_lock(OPEN_WRITE, O_WRONLY | O_NONBLOCK, (enum policy_mode)m,
				   false, LEASE);
		assert_true(l.lock);
		assert_int_equal(l.cls, LT_EXCL);
		assert_int_equal(l.flags, LT_F_WRITE | LT_F_NONBLOCK);
		assert_int_equal(l.lease_ns, 0);
	}
	assert_false(openclass_lock(OPEN_WRITE, O_WRONLY, POLICY_NONE, true, LEASE).lock);
	assert_false(openclass_lock(OPEN_NOLOCK, O_WRONLY, POLICY_EXCLUSIVE, true, LEASE).lock);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kinds),
		cmocka_unit_test(test_reads),
		cmocka_unit_test(test_writes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
