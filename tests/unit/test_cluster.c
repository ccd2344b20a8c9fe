/* Unit tests for the pure parts of fs/cluster.c: the option parsers, the
 * names of files and znodes, and the state machine of one cluster lock
 * driven by fake events. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cluster.h"

static void test_spec_good(void **state)
{
	struct cluster_spec s;
	char err[600] = "";

	assert_int_equal(cluster_parse_spec("127.0.0.1:2181/lockfs", &s, err, sizeof(err)), 0);
	assert_string_equal(s.servers, "127.0.0.1:2181");
	assert_string_equal(s.path, "/lockfs");
	/* '+' joins servers (a comma would end the -o option); ZooKeeper
	 * wants commas. */
	assert_int_equal(cluster_parse_spec("zk1:2181+zk2.example.org:2182+[::1]:3/a/b-c_d",
					    &s, err, sizeof(err)), 0);
	assert_string_equal(s.servers, "zk1:2181,zk2.example.org:2182,[::1]:3");
	assert_string_equal(s.path, "/a/b-c_d");
}

static void test_spec_bad(void **state)
{
	static const char *const bad[] = {
		"", "/lockfs", "zk1:2181", "zk1:2181/", "zk1/lockfs", "zk1:/lockfs",
		":2181/lockfs", "zk1:0/x", "zk1:65536/x", "zk1:21a/x", "zk1:-1/x",
		"zk1:2181+/x", "+zk1:2181/x", "zk1:2181++zk2:1/x", "zk1:2181/a//b",
		"zk1:2181/a/", "zk1:2181/a/./b", "zk1:2181/..", "zk1:2181/a b",
		"zk 1:2181/a", "zk1:2181/a\tb",
	};
	struct cluster_spec s;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char err[600] = "";

		if (cluster_parse_spec(bad[i], &s, err, sizeof(err)) != -EINVAL)
			fail_msg("accepted '%s'", bad[i]);
		/* Every refusal says something, and names the option. */
		assert_non_null(strstr(err, "cluster"));
	}
	assert_int_equal(cluster_parse_spec(NULL, &s, (char[80]){0}, 80), -EINVAL);

	/* Too long for the buffers: refused, never truncated. */
	char big[2000];
	char err[600];

	memset(big, 'a', sizeof(big));
	memcpy(big, "zk:1/", 5);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(cluster_parse_spec(big, &s, err, sizeof(err)), -EINVAL);
	for (size_t i = 0; i + 8 < sizeof(big); i += 8)
		memcpy(big + i, "zk:2181+", 8);
	strcpy(big + sizeof(big) - 4, "/x");
	assert_int_equal(cluster_parse_spec(big, &s, err, sizeof(err)), -EINVAL);
}

static void test_timeout(void **state)
{
	unsigned ms = 0;

	assert_int_equal(cluster_parse_timeout("4", &ms), 0);
	assert_int_equal(ms, 4000);
	assert_int_equal(cluster_parse_timeout("0.5", &ms), 0);
	assert_int_equal(ms, 500);
	assert_int_equal(cluster_parse_timeout("3600", &ms), 0);
	assert_int_equal(ms, 3600000);
	ms = 7;
	static const char *const bad[] = { "", "0", "-1", "abc", "4s", " 4", "3601", "nan",
					   "inf", "0.0001", NULL };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (cluster_parse_timeout(bad[i], &ms) != -EINVAL)
			fail_msg("accepted '%s'", bad[i] ? bad[i] : "(null)");
}

static void test_file_name(void **state)
{
	char buf[CLUSTER_NAME_MAX];
	const unsigned char h[] = { 0x01, 0xab, 0xff };

	assert_int_equal(cluster_file_name(0x1234, NULL, 0, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "0000000000001234");
	assert_int_equal(cluster_file_name(UINT64_MAX, h, sizeof(h), buf, sizeof(buf)), 0);
	assert_string_equal(buf, "ffffffffffffffff-01abff");
	assert_int_equal(cluster_file_name(1, h, sizeof(h), buf, 20), -ENAMETOOLONG);
	assert_int_equal(cluster_file_name(1, NULL, 0, buf, 16), -ENAMETOOLONG);
	unsigned char big[128] = { 0 };
	assert_int_equal(cluster_file_name(1, big, sizeof(big), buf, sizeof(buf)), -ENAMETOOLONG);
}

static void test_seq(void **state)
{
	assert_int_equal(cluster_seq("lock-00000000000abcde-0000000042"), 42);
	assert_int_equal(cluster_seq("lock-x-2147483648"), 2147483648ll);
	assert_int_equal(cluster_seq("lock-x-000000042"), -1);      /* 9 digits */
	assert_int_equal(cluster_seq("lock-x-00000000a2"), -1);
	assert_int_equal(cluster_seq("other-x-0000000042"), -1);
	assert_int_equal(cluster_seq("lock-0000000042"), 42);
	assert_int_equal(cluster_seq("lock"), -1);
}

/* One step, checking the actions and the state it leads to. */
static void expect(struct cl_fsm *f, enum cl_event e, unsigned actions, enum cl_state st)
{
	unsigned a = cl_fsm_step(f, e);

	if (a != actions || f->st != st)
		fail_msg("event %d: actions %#x state %s, expected %#x %s", (int)e, a,
			 cl_state_name(f->st), actions, cl_state_name(st));
}

static void test_fsm_cycle(void **state)
{
	struct cl_fsm f = { CL_REMOTE, false };

	expect(&f, CE_WANT, CA_CREATE, CL_ACQUIRING);
	expect(&f, CE_WANT, 0, CL_ACQUIRING);          /* asked once */
	expect(&f, CE_BEHIND, 0, CL_ACQUIRING);        /* not ours yet */
	expect(&f, CE_IDLE, 0, CL_ACQUIRING);
	expect(&f, CE_FIRST, CA_GRANT, CL_HELD);
	expect(&f, CE_FIRST, 0, CL_HELD);              /* granted once */
	expect(&f, CE_WANT, 0, CL_HELD);               /* cached: no traffic */
	expect(&f, CE_BEHIND, CA_RECALL, CL_RECALLED);
	expect(&f, CE_BEHIND, 0, CL_RECALLED);         /* recalled once */
	expect(&f, CE_IDLE, CA_DELETE, CL_HANDING_OVER);
	expect(&f, CE_DELETED, 0, CL_REMOTE);
	assert_false(f.want);
}

static void test_fsm_want_during_handover(void **state)
{
	struct cl_fsm f = { CL_HELD, false };

	expect(&f, CE_BEHIND, CA_RECALL, CL_RECALLED);
	expect(&f, CE_WANT, 0, CL_RECALLED);
	expect(&f, CE_IDLE, CA_DELETE, CL_HANDING_OVER);
	expect(&f, CE_WANT, 0, CL_HANDING_OVER);
	/* Gone: queue again at once, behind the host that recalled it. */
	expect(&f, CE_DELETED, CA_CREATE, CL_ACQUIRING);
	assert_false(f.want);
}

static void test_fsm_loss(void **state)
{
	struct cl_fsm f = { CL_HELD, false };

	expect(&f, CE_SUSPECT, CA_LOST, CL_LOST);
	expect(&f, CE_SUSPECT, 0, CL_LOST);            /* said once */
	expect(&f, CE_FIRST, 0, CL_LOST);              /* never granted again */
	expect(&f, CE_BEHIND, 0, CL_LOST);
	expect(&f, CE_WANT, 0, CL_LOST);
	expect(&f, CE_IDLE, CA_DELETE, CL_HANDING_OVER);
	expect(&f, CE_DELETED, CA_CREATE, CL_ACQUIRING);

	/* Recalled and then lost: still lost (its writes are not to be
	 * trusted), then handed over once idle. */
	f = (struct cl_fsm){ CL_RECALLED, false };
	expect(&f, CE_SUSPECT, CA_LOST, CL_LOST);
	expect(&f, CE_IDLE, CA_DELETE, CL_HANDING_OVER);
	expect(&f, CE_DELETED, 0, CL_REMOTE);

	/* Our znode vanished under a held lock (the server dropped the
	 * session): lost. */
	f = (struct cl_fsm){ CL_HELD, false };
	expect(&f, CE_DELETED, CA_LOST, CL_LOST);

	/* Neither held nor wanted: nothing to lose. */
	f = (struct cl_fsm){ CL_REMOTE, false };
	expect(&f, CE_SUSPECT, 0, CL_REMOTE);
	f = (struct cl_fsm){ CL_HANDING_OVER, false };
	expect(&f, CE_SUSPECT, 0, CL_HANDING_OVER);
}

static void test_fsm_acquire_failures(void **state)
{
	struct cl_fsm f = { CL_REMOTE, false };

	expect(&f, CE_WANT, CA_CREATE, CL_ACQUIRING);
	expect(&f, CE_FAILED, 0, CL_REMOTE);           /* the runtime retries */
	expect(&f, CE_WANT, CA_CREATE, CL_ACQUIRING);
	/* Queued znode dropped with the session: ask again. */
	expect(&f, CE_DELETED, CA_CREATE, CL_ACQUIRING);
	expect(&f, CE_SUSPECT, 0, CL_ACQUIRING);
	expect(&f, CE_FIRST, CA_GRANT, CL_HELD);
	/* Failures and stray events change nothing once held. */
	expect(&f, CE_FAILED, 0, CL_HELD);
	expect(&f, CE_IDLE, 0, CL_HELD);
}

static void test_state_names(void **state)
{
	assert_string_equal(cl_state_name(CL_REMOTE), "remote");
	assert_string_equal(cl_state_name(CL_LOST), "lost");
	assert_string_equal(cl_state_name((enum cl_state)99), "?");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spec_good),
		cmocka_unit_test(test_spec_bad),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_file_name),
		cmocka_unit_test(test_seq),
		cmocka_unit_test(test_fsm_cycle),
		cmocka_unit_test(test_fsm_want_during_handover),
		cmocka_unit_test(test_fsm_loss),
		cmocka_unit_test(test_fsm_acquire_failures),
		cmocka_unit_test(test_state_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
