/* Unit tests for the control-file protocol: the daemon's request parser and
 * reply builder (fs/control.c, driven through a real lock table and real
 * owners, no FUSE) and lockstat's reply parser (tools/ctlproto.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "config.h"
#include "control.h"
#include "ctlproto.h"
#include "locking.h"
#include "owner.h"

/* ---- control_parse_request ---------------------------------------------- */

static int req(const char *s)
{
	return control_parse_request(s, strlen(s));
}

static void test_request_words(void **state)
{
	(void)state;
	assert_int_equal(req("snapshot\n"), CONTROL_SNAPSHOT);
	assert_int_equal(req("snapshot"), CONTROL_SNAPSHOT);
	assert_int_equal(req("stats\n"), CONTROL_STATS);
	assert_int_equal(req("stats"), CONTROL_STATS);
	assert_int_equal(req("reset\n"), CONTROL_RESET);
	assert_int_equal(req("reset"), CONTROL_RESET);
}

static void test_request_malformed(void **state)
{
	static const char *bad[] = {
		"", "\n", "stats\n\n", "Stats\n", "stats \n", " stats", "stat\n",
		"statsx", "snapshot\nstats\n", "reset\r\n", "reset\r", "\nreset",
		"stats\t", "resets\n",
	};
	char big[4096];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(req(bad[i]), -EINVAL);
	/* An embedded NUL is not a shorter word. */
	assert_int_equal(control_parse_request("stats\0\n", 7), -EINVAL);
	assert_int_equal(control_parse_request("sta\0ts", 6), -EINVAL);
	assert_int_equal(control_parse_request(NULL, 5), -EINVAL);
	/* A valid word followed by a lot: bounded, refused. */
	memset(big, ' ', sizeof(big));
	memcpy(big, "stats", 5);
	assert_int_equal(control_parse_request(big, sizeof(big)), -EINVAL);
	assert_int_equal(control_parse_request("stats", 5), CONTROL_STATS);
}

/* ---- escaping ------------------------------------------------------------ */

static void test_escape_roundtrip_every_byte(void **state)
{
	char in[2] = { 0, 0 };

	(void)state;
	for (int c = 1; c < 256; c++) {
		char *e, *d = NULL;

		in[0] = (char)c;
		e = ctl_escape(in);
		assert_non_null(e);
		/* The escaped form never contains what separates fields or
		 * records. */
		assert_null(strchr(e, '\t'));
		assert_null(strchr(e, '\n'));
		assert_int_equal(ctl_unescape(e, strlen(e), &d), 0);
		assert_string_equal(d, in);
		free(e);
		free(d);
	}
}

static void test_escape_roundtrip_random(void **state)
{
	unsigned seed = 12345;

	(void)state;
	for (int round = 0; round < 2000; round++) {
		char in[64], *e, *d = NULL;
		size_t n = (size_t)(seed % 63);

		for (size_t i = 0; i < n; i++) {
			seed = seed * 1103515245u + 12345u;
			in[i] = (char)(1 + (seed >> 16) % 255);
		}
		in[n] = '\0';
		seed = seed * 1103515245u + 12345u;
		e = ctl_escape(in);
		assert_non_null(e);
		assert_int_equal(ctl_unescape(e, strlen(e), &d), 0);
		assert_memory_equal(d, in, n + 1);
		free(e);
		free(d);
	}
}

static void test_unescape_rejects(void **state)
{
	static const char *bad[] = {
		"\\", "a\\", "\\q", "\\x", "\\x4", "\\x00", "\\xg1", "\\x1g", "a\tb", "a\nb",
	};
	char *d = NULL;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(ctl_unescape(bad[i], strlen(bad[i]), &d), -EINVAL);
		assert_null(d);
	}
	assert_int_equal(ctl_unescape("a\\x41\\\\\\t", 9, &d), 0);
	assert_string_equal(d, "aA\\\t");
	free(d);
}

/* ---- ctl_parse_reply on canned replies ----------------------------------- */

/* A reply as an older daemon sent it, without the fields version 1 gained
 * later (new_reply has them, and unknown fields after them). */
static const char good_reply[] =
	"lockfs-control 1\n"
	"mount\t/mnt/a b\t/src/x\\ty\t4242\t250\t-\n"
	"lock\t/dir/c\\nd.txt\texclusive\tlease\t100\t101\tpython3\t1000\t5000000\t2000\t3\t0\n"
	"lock\t?00000000deadbeef\tshared\theld\t-\t-\t\t-\t7\t-\t0\t2\n"
	"wait\t/dir/c\\nd.txt\texclusive\twrite\t200\t202\tsh\t0\t1500\t100\n"
	"future\tignored\trecord\n"
	"stat\t/dir/c\\nd.txt\t4\t3\t3\t10\t20\t64\t40\t60\t2\t30\t50\t1\t2\t3\t4\n"
	"end\t2\t1\t1\n";

static void test_parse_good(void **state)
{
	struct ctl_reply r;
	char err[256];

	(void)state;
	assert_int_equal(ctl_parse_reply(good_reply, strlen(good_reply), &r, err, sizeof(err)), 0);
	assert_int_equal(r.version, 1);
	assert_string_equal(r.mountpoint, "/mnt/a b");
	assert_string_equal(r.source, "/src/x\ty");
	assert_int_equal(r.daemon_pid, 4242);
	assert_int_equal(r.lease_ms, 250);
	assert_int_equal(r.lock_timeout_ms, CTL_UNKNOWN);
	assert_null(r.error);

	assert_int_equal(r.nlocks, 2);
	assert_string_equal(r.locks[0].file.path, "dir/c\nd.txt");
	assert_int_equal(r.locks[0].mode, CTL_EXCLUSIVE);
	assert_int_equal(r.locks[0].state, CTL_LEASE);
	assert_int_equal(r.locks[0].owner.pid, 100);
	assert_int_equal(r.locks[0].owner.tid, 101);
	assert_string_equal(r.locks[0].owner.comm, "python3");
	assert_int_equal(r.locks[0].owner.uid, 1000);
	assert_int_equal(r.locks[0].held_ns, 5000000);
	assert_int_equal(r.locks[0].lease_left_ns, 2000);
	assert_int_equal(r.locks[0].waiters, 3);
	assert_int_equal(r.locks[0].handles, 0);

	assert_null(r.locks[1].file.path);
	assert_true(r.locks[1].file.key == 0xdeadbeefull);
	assert_int_equal(r.locks[1].mode, CTL_SHARED);
	assert_int_equal(r.locks[1].state, CTL_HELD);
	assert_int_equal(r.locks[1].owner.pid, CTL_UNKNOWN);
	assert_string_equal(r.locks[1].owner.comm, "");
	assert_int_equal(r.locks[1].handles, 2);

	assert_int_equal(r.nwaits, 1);
	assert_string_equal(r.waits[0].file.path, "dir/c\nd.txt");
	assert_int_equal(r.waits[0].want, CTL_WANT_WRITE);
	assert_int_equal(r.waits[0].owner.pid, 200);
	assert_int_equal(r.waits[0].owner.tid, 202);
	assert_int_equal(r.waits[0].waited_ns, 1500);
	assert_int_equal(r.waits[0].blocker, 100);

	assert_int_equal(r.nstats, 1);
	assert_int_equal(r.stats[0].acquisitions, 4);
	assert_int_equal(r.stats[0].contentions, 3);
	assert_int_equal(r.stats[0].waits, 3);
	assert_int_equal(r.stats[0].wait_min_ns, 10);
	assert_int_equal(r.stats[0].wait_mean_ns, 20);
	/* An older daemon's bucket bound above the longest wait reads as
	 * the longest wait. */
	assert_int_equal(r.stats[0].wait_p99_ns, 40);
	assert_int_equal(r.stats[0].wait_max_ns, 40);
	assert_int_equal(r.stats[0].wait_total_ns, 60);
	assert_int_equal(r.stats[0].holds, 2);
	assert_int_equal(r.stats[0].hold_mean_ns, 30);
	assert_int_equal(r.stats[0].hold_max_ns, 50);
	assert_int_equal(r.stats[0].eagain, 1);
	assert_int_equal(r.stats[0].edeadlk, 2);
	assert_int_equal(r.stats[0].timeouts, 3);
	assert_int_equal(r.stats[0].eintr, 4);

	/* A reply without the fields version 1 gained later (an older
	 * daemon's): they take their defaults. */
	assert_int_equal(r.long_read_ms, CTL_UNKNOWN);
	assert_int_equal(r.reader_wait_ms, CTL_UNKNOWN);
	assert_int_equal(r.calm_after_ms, CTL_UNKNOWN);
	for (size_t i = 0; i < r.nlocks; i++) {
		assert_int_equal(r.locks[i].hold, CTL_HOLD_NORMAL);
		assert_false(r.locks[i].inherited);
		assert_false(r.locks[i].joined);
	}
	assert_int_equal(r.waits[0].mode, CTL_EXCLUSIVE);
	assert_int_equal(r.stats[0].joins, CTL_UNKNOWN);
	assert_int_equal(r.stats[0].broken, CTL_UNKNOWN);
	assert_int_equal(r.stats[0].calm_learned, CTL_UNKNOWN);
	assert_int_equal(r.stats[0].advisory_passes, CTL_UNKNOWN);
	assert_int_equal(r.nfileinfos, 0);
	assert_null(r.fileinfos);
	assert_null(r.cluster);
	assert_int_equal(r.nclusters, 0);
	assert_false(r.have_cluster_stats);
	ctl_reply_free(&r);
}

/* The fields and records version 1 gained with the lock table's update
 * intent, program joins, long and broken reads, calm and advisory files. */
static const char new_reply[] =
	"lockfs-control 1\n"
	"mount\t/m\t/s\t7\t250\t0\t300\t5000\t2000\t-\tfuture\n"
	"lock\t/u\texclusive\theld\t1\t1\tcat\t0\t5\t-\t0\t1\tupdate\tnormal\t-\n"
	"lock\t/u\tshared\theld\t2\t2\ttail\t0\t5\t-\t0\t1\tshared\tlong\t-\tfuture\n"
	"lock\t/r\texclusive\tlease\t3\t3\tsh\t0\t5\t100\t1\t0\tupdate\tbroken\tinherited\n"
	"lock\t/r\texclusive\theld\t4\t5\tsed\t0\t5\t-\t1\t1\texclusive\tnormal\tjoined,inherited\n"
	"lock\t/r\texclusive\theld\t8\t8\tawk\t0\t5\t-\t1\t1\tupdate\n"
	"wait\t/r\texclusive\tread\t6\t6\tcat\t0\t9\t3\tupdate\n"
	"wait\t/r\tshared\tread\t9\t9\tless\t0\t9\t3\tshared\n"
	"file\t/u\tcalm\t-\n"
	"file\t?00000000000000ab\tadvisory,calm\t42\tfuture\n"
	"file\t/r\t-\t7\n"
	"stat\t/u\t1\t2\t3\t4\t5\t6\t7\t8\t9\t10\t11\t12\t13\t14\t15\t16\t17\t18\t19\tfuture\n"
	"stat\t/r\t1\t2\t3\t4\t5\t6\t7\t8\t9\t10\t11\t12\t13\t14\t15\t16\n"
	"end\t5\t2\t2\t3\t0\tfuture\n";

static void test_parse_new_fields(void **state)
{
	struct ctl_reply r;
	char err[256];

	(void)state;
	if (ctl_parse_reply(new_reply, strlen(new_reply), &r, err, sizeof(err)) != 0)
		fail_msg("does not parse: %s", err);
	assert_int_equal(r.lease_ms, 250);
	assert_int_equal(r.long_read_ms, 300);
	assert_int_equal(r.reader_wait_ms, 5000);
	assert_int_equal(r.calm_after_ms, 2000);
	/* CLUSTER "-": not in cluster mode. */
	assert_null(r.cluster);
	assert_int_equal(r.nclusters, 0);
	assert_false(r.have_cluster_stats);

	assert_int_equal(r.nlocks, 5);
	/* MODE says exclusive, CLASS update: update wins. */
	assert_int_equal(r.locks[0].mode, CTL_UPDATE);
	assert_int_equal(r.locks[0].state, CTL_HELD);
	assert_int_equal(r.locks[0].hold, CTL_HOLD_NORMAL);
	assert_false(r.locks[0].inherited);
	assert_false(r.locks[0].joined);
	assert_int_equal(r.locks[1].mode, CTL_SHARED);
	assert_int_equal(r.locks[1].hold, CTL_HOLD_LONG);
	assert_int_equal(r.locks[2].mode, CTL_UPDATE);
	assert_int_equal(r.locks[2].state, CTL_LEASE);
	assert_int_equal(r.locks[2].hold, CTL_HOLD_BROKEN);
	assert_true(r.locks[2].inherited);
	assert_false(r.locks[2].joined);
	assert_int_equal(r.locks[2].lease_left_ns, 100);
	assert_int_equal(r.locks[3].mode, CTL_EXCLUSIVE);
	assert_true(r.locks[3].inherited);
	assert_true(r.locks[3].joined);
	assert_int_equal(r.locks[3].owner.tid, 5);
	/* Only some of the new fields: the others keep their defaults. */
	assert_int_equal(r.locks[4].mode, CTL_UPDATE);
	assert_int_equal(r.locks[4].hold, CTL_HOLD_NORMAL);
	assert_false(r.locks[4].inherited || r.locks[4].joined);

	assert_int_equal(r.nwaits, 2);
	assert_int_equal(r.waits[0].mode, CTL_UPDATE);
	assert_int_equal(r.waits[0].blocker, 3);
	assert_int_equal(r.waits[1].mode, CTL_SHARED);

	assert_int_equal(r.nfileinfos, 3);
	assert_string_equal(r.fileinfos[0].file.path, "u");
	assert_true(r.fileinfos[0].calm);
	assert_false(r.fileinfos[0].advisory);
	assert_int_equal(r.fileinfos[0].written_ns, CTL_UNKNOWN);
	assert_null(r.fileinfos[1].file.path);
	assert_true(r.fileinfos[1].file.key == 0xab);
	assert_true(r.fileinfos[1].calm);
	assert_true(r.fileinfos[1].advisory);
	assert_int_equal(r.fileinfos[1].written_ns, 42);
	assert_false(r.fileinfos[2].calm || r.fileinfos[2].advisory);
	assert_int_equal(r.fileinfos[2].written_ns, 7);

	assert_int_equal(r.nstats, 2);
	assert_int_equal(r.stats[0].eintr, 15);
	assert_int_equal(r.stats[0].joins, 16);
	assert_int_equal(r.stats[0].broken, 17);
	assert_int_equal(r.stats[0].calm_learned, 18);
	assert_int_equal(r.stats[0].advisory_passes, 19);
	assert_int_equal(r.stats[1].joins, 16);
	assert_int_equal(r.stats[1].broken, CTL_UNKNOWN);
	assert_int_equal(r.stats[1].advisory_passes, CTL_UNKNOWN);
	ctl_reply_free(&r);
}

/* Cluster mode: the mount's CLUSTER, cluster records (the other hosts'
 * pseudo-owner holds /c locally: its lock record has no pid) and the
 * clusterstat record, each with a field from a later daemon. */
static const char cluster_reply[] =
	"lockfs-control 1\n"
	"mount\t/m\t/s\t7\t250\t0\t300\t5000\t2000\tzk1:2181+zk2:2181/lockfs\\x01\tfuture\n"
	"lock\t/c\texclusive\theld\t-\t-\t\t-\t5\t-\t0\t1\texclusive\tnormal\t-\n"
	"cluster\t/c\tremote\t4294967312\t-\thost\\tb\t4242\tfuture\n"
	"cluster\t/h\theld\t17\t2\thost-a\t77\n"
	"cluster\t?00000000000000ab\tcached\t9\t0\thost-a\t77\n"
	"cluster\t/q\tacquiring\t-\t0\t\t-\n"
	"cluster\t/r\trecalled\t1\t1\th\t1\n"
	"cluster\t/o\thanding-over\t1\t1\th\t1\n"
	"cluster\t/l\tlost\t1\t1\th\t1\n"
	"clusterstat\t100\t5\t4\t1\t2\tfuture\n"
	"end\t1\t0\t0\t0\t7\tfuture\n";

static void test_parse_cluster(void **state)
{
	static const enum ctl_cluster_state states[] = {
		CTL_CL_REMOTE, CTL_CL_HELD, CTL_CL_CACHED, CTL_CL_ACQUIRING, CTL_CL_RECALLED,
		CTL_CL_HANDING_OVER, CTL_CL_LOST,
	};
	struct ctl_reply r;
	char err[256];

	(void)state;
	if (ctl_parse_reply(cluster_reply, strlen(cluster_reply), &r, err, sizeof(err)) != 0)
		fail_msg("does not parse: %s", err);
	assert_string_equal(r.cluster, "zk1:2181+zk2:2181/lockfs\x01");
	assert_int_equal(r.nlocks, 1);
	assert_int_equal(r.locks[0].owner.pid, CTL_UNKNOWN);
	assert_int_equal(r.nclusters, 7);
	for (size_t i = 0; i < 7; i++)
		assert_int_equal(r.clusters[i].state, states[i]);
	assert_string_equal(r.clusters[0].file.path, "c");
	/* A token past 32 bits (a czxid carries the epoch in its top half). */
	assert_true(r.clusters[0].token == 4294967312ll);
	assert_int_equal(r.clusters[0].remote_waiters, CTL_UNKNOWN);
	assert_string_equal(r.clusters[0].host, "host\tb");
	assert_int_equal(r.clusters[0].daemon_pid, 4242);
	assert_int_equal(r.clusters[1].token, 17);
	assert_int_equal(r.clusters[1].remote_waiters, 2);
	assert_string_equal(r.clusters[1].host, "host-a");
	assert_int_equal(r.clusters[1].daemon_pid, 77);
	assert_null(r.clusters[2].file.path);
	assert_true(r.clusters[2].file.key == 0xab);
	/* Holder not known yet. */
	assert_int_equal(r.clusters[3].token, CTL_UNKNOWN);
	assert_string_equal(r.clusters[3].host, "");
	assert_int_equal(r.clusters[3].daemon_pid, CTL_UNKNOWN);
	assert_true(r.have_cluster_stats);
	assert_int_equal(r.cluster_stats.requests, 100);
	assert_int_equal(r.cluster_stats.grants, 5);
	assert_int_equal(r.cluster_stats.recalls, 4);
	assert_int_equal(r.cluster_stats.losses, 1);
	assert_int_equal(r.cluster_stats.fenced_writes, 2);
	ctl_reply_free(&r);
}

/* Every proper prefix of a reply is detected as cut short. */
static void test_parse_every_prefix_fails(void **state)
{
	const char *replies[] = { good_reply, new_reply, cluster_reply };

	(void)state;
	for (size_t k = 0; k < 3; k++) {
		size_t n = strlen(replies[k]);

		for (size_t len = 0; len < n; len++) {
			struct ctl_reply r;
			char err[256];

			assert_int_equal(ctl_parse_reply(replies[k], len, &r, err, sizeof(err)),
					 -EINVAL);
			assert_true(err[0] != '\0');
			assert_int_equal(r.nlocks, 0);
			assert_int_equal(r.nfileinfos, 0);
			assert_int_equal(r.long_read_ms, CTL_UNKNOWN);
			assert_int_equal(r.nclusters, 0);
			assert_null(r.cluster);
			assert_false(r.have_cluster_stats);
			ctl_reply_free(&r);
		}
	}
}

static void expect_bad(const char *text, const char *msg_part)
{
	struct ctl_reply r;
	char err[256];

	assert_int_equal(ctl_parse_reply(text, strlen(text), &r, err, sizeof(err)), -EINVAL);
	if (!strstr(err, msg_part))
		fail_msg("error '%s' does not mention '%s' for:\n%s", err, msg_part, text);
	ctl_reply_free(&r);
}

#define HDR "lockfs-control 1\nmount\t/m\t/s\t1\t250\t0\n"
#define LOCK "lock\t/f\texclusive\theld\t1\t1\tc\t0\t5\t-\t0\t1\n"

static void test_parse_rejects(void **state)
{
	(void)state;
	expect_bad("lockfs-control 2\nend\t0\t0\t0\n", "unsupported protocol version 2");
	expect_bad("hello\nend\t0\t0\t0\n", "not a lockfs control reply");
	expect_bad("lockfs-control x\nend\t0\t0\t0\n", "version");
	expect_bad(HDR LOCK "end\t0\t0\t0\n", "do not match");
	expect_bad(HDR "end\t1\t0\t0\n", "do not match");
	expect_bad(HDR LOCK, "no end record");
	expect_bad(HDR "end\t0\t0\t0\nlock\n", "after the end");
	expect_bad("lockfs-control 1\nend\t0\t0\t0\n", "no mount record");
	expect_bad(HDR "mount\t/m\t/s\t1\t250\t0\nend\t0\t0\t0\n", "second mount");
	expect_bad(HDR "lock\t/f\texclusive\theld\t1\t1\tc\t0\t5\t-\t0\nend\t1\t0\t0\n", "short");
	expect_bad(HDR "lock\tf\texclusive\theld\t1\t1\tc\t0\t5\t-\t0\t1\nend\t1\t0\t0\n", "path");
	expect_bad(HDR "lock\t/\texclusive\theld\t1\t1\tc\t0\t5\t-\t0\t1\nend\t1\t0\t0\n", "path");
	expect_bad(HDR "lock\t?123\texclusive\theld\t1\t1\tc\t0\t5\t-\t0\t1\nend\t1\t0\t0\n", "path");
	expect_bad(HDR "lock\t/f\tsole\theld\t1\t1\tc\t0\t5\t-\t0\t1\nend\t1\t0\t0\n", "mode");
	expect_bad(HDR "lock\t/f\texclusive\tkept\t1\t1\tc\t0\t5\t-\t0\t1\nend\t1\t0\t0\n", "state");
	expect_bad(HDR "lock\t/f\texclusive\theld\t+1\t1\tc\t0\t5\t-\t0\t1\nend\t1\t0\t0\n", "owner");
	expect_bad(HDR "lock\t/f\texclusive\theld\t1\t1\tc\t0\t-\t-\t0\t1\nend\t1\t0\t0\n", "number");
	expect_bad(HDR "lock\t/f\texclusive\theld\t1\t1\tc\t0\t99999999999999999999\t-\t0\t1\nend\t1\t0\t0\n",
		   "number");
	expect_bad(HDR "lock\t/f\\q\texclusive\theld\t1\t1\tc\t0\t5\t-\t0\t1\nend\t1\t0\t0\n", "escape");
	expect_bad(HDR "wait\t/f\texclusive\tall\t1\t1\tc\t0\t5\t-\nend\t0\t1\t0\n", "wanted");
	expect_bad(HDR "stat\t/f\t1\t2\nend\t0\t0\t1\n", "short");
	expect_bad(HDR "end\t0\t0\n", "bad end");
	expect_bad("lockfs-control 1\nmount\t/m\t/s\t-\t250\t0\nend\t0\t0\t0\n", "mount");
	expect_bad("", "empty");

	/* The fields version 1 gained later are as strict as the others. */
#define LOCK12 "lock\t/f\texclusive\theld\t1\t1\tc\t0\t5\t-\t0\t1"
#define SLOCK12 "lock\t/f\tshared\theld\t1\t1\tc\t0\t5\t-\t0\t1"
	expect_bad(HDR LOCK12 "\tupgrade\tnormal\t-\nend\t1\t0\t0\n", "lock class");
	expect_bad(HDR LOCK12 "\t\tnormal\t-\nend\t1\t0\t0\n", "lock class");
	expect_bad(HDR LOCK12 "\tUpdate\nend\t1\t0\t0\n", "lock class");
	/* CLASS must agree with MODE: update is "exclusive" there. */
	expect_bad(HDR SLOCK12 "\tupdate\tnormal\t-\nend\t1\t0\t0\n", "lock class");
	expect_bad(HDR SLOCK12 "\texclusive\tnormal\t-\nend\t1\t0\t0\n", "lock class");
	expect_bad(HDR LOCK12 "\tshared\tnormal\t-\nend\t1\t0\t0\n", "lock class");
	expect_bad(HDR LOCK12 "\tupdate\tlonger\t-\nend\t1\t0\t0\n", "hold state");
	expect_bad(HDR LOCK12 "\tupdate\tlease\t-\nend\t1\t0\t0\n", "hold state");
	expect_bad(HDR LOCK12 "\tupdate\tnormal\town\nend\t1\t0\t0\n", "hold origin");
	expect_bad(HDR LOCK12 "\tupdate\tnormal\t\nend\t1\t0\t0\n", "hold origin");
	expect_bad(HDR LOCK12 "\tupdate\tnormal\tjoined,\nend\t1\t0\t0\n", "hold origin");
	expect_bad(HDR LOCK12 "\tupdate\tnormal\t,joined\nend\t1\t0\t0\n", "hold origin");
	expect_bad(HDR LOCK12 "\tupdate\tnormal\tjoined,joined\nend\t1\t0\t0\n", "hold origin");
	expect_bad(HDR LOCK12 "\tupdate\tnormal\t-,joined\nend\t1\t0\t0\n", "hold origin");
	expect_bad(HDR LOCK12 "\tupdate\tnormal\tjoined inherited\nend\t1\t0\t0\n", "hold origin");
	expect_bad(HDR "wait\t/f\texclusive\tread\t1\t1\tc\t0\t5\t-\tupdated\nend\t0\t1\t0\n",
		   "wait class");
	expect_bad(HDR "wait\t/f\tshared\tread\t1\t1\tc\t0\t5\t-\tupdate\nend\t0\t1\t0\n",
		   "wait class");
	expect_bad(HDR "file\t/f\tcalm\nend\t0\t0\t0\t1\n", "short file");
	expect_bad(HDR "file\t/f\tcold\t-\nend\t0\t0\t0\t1\n", "file flags");
	expect_bad(HDR "file\t/f\tcalm,calm\t-\nend\t0\t0\t0\t1\n", "file flags");
	expect_bad(HDR "file\t/f\t\t-\nend\t0\t0\t0\t1\n", "file flags");
	expect_bad(HDR "file\t/f\tcalm\t1x\nend\t0\t0\t0\t1\n", "number in file");
	expect_bad(HDR "file\tf\tcalm\t-\nend\t0\t0\t0\t1\n", "path");
	expect_bad(HDR "file\t/f\tcalm\t-\nend\t0\t0\t0\t0\n", "do not match");
	expect_bad(HDR "file\t/f\tcalm\t-\nend\t0\t0\t0\t2\n", "do not match");
	/* File records, but an end record that does not count them. */
	expect_bad(HDR "file\t/f\tcalm\t-\nend\t0\t0\t0\n", "do not match");
	expect_bad(HDR "end\t0\t0\t0\t-\n", "bad end");
	expect_bad("lockfs-control 1\nmount\t/m\t/s\t1\t250\t0\tx\nend\t0\t0\t0\n", "mount");
	expect_bad("lockfs-control 1\nmount\t/m\t/s\t1\t250\t0\t1\t2\t+3\nend\t0\t0\t0\n",
		   "mount");
	expect_bad(HDR "stat\t/f\t1\t2\t3\t4\t5\t6\t7\t8\t9\t10\t11\t12\t13\t14\t15\t-\n"
		   "end\t0\t0\t1\n", "number in stat");
	expect_bad(HDR "stat\t/f\t1\t2\t3\t4\t5\t6\t7\t8\t9\t10\t11\t12\t13\t14\t15\t1\t2\t3\tx\n"
		   "end\t0\t0\t1\n", "number in stat");
	/* Cluster records and counters: as strict. */
#define CL "cluster\t/f\theld\t5\t0\th\t1"
	expect_bad(HDR CL "\nend\t0\t0\t0\t0\t0\n", "do not match");
	expect_bad(HDR CL "\nend\t0\t0\t0\t0\t2\n", "do not match");
	/* Cluster records, but an end record that does not count them. */
	expect_bad(HDR CL "\nend\t0\t0\t0\t0\n", "do not match");
	expect_bad(HDR CL "\nend\t0\t0\t0\n", "do not match");
	expect_bad(HDR "end\t0\t0\t0\t0\t-\n", "bad end");
	expect_bad(HDR "cluster\t/f\theld\t5\t0\th\nend\t0\t0\t0\t0\t1\n", "short cluster");
	expect_bad(HDR "cluster\t/f\tcaching\t5\t0\th\t1\nend\t0\t0\t0\t0\t1\n",
		   "cluster state");
	expect_bad(HDR "cluster\t/f\tHeld\t5\t0\th\t1\nend\t0\t0\t0\t0\t1\n", "cluster state");
	expect_bad(HDR "cluster\t/f\t\t5\t0\th\t1\nend\t0\t0\t0\t0\t1\n", "cluster state");
	expect_bad(HDR "cluster\t/f\theld\t-5\t0\th\t1\nend\t0\t0\t0\t0\t1\n",
		   "number in cluster");
	expect_bad(HDR "cluster\t/f\theld\t5\tx\th\t1\nend\t0\t0\t0\t0\t1\n",
		   "number in cluster");
	expect_bad(HDR "cluster\t/f\theld\t5\t0\th\t\nend\t0\t0\t0\t0\t1\n",
		   "number in cluster");
	expect_bad(HDR "cluster\t/f\theld\t5\t0\th\\q\t1\nend\t0\t0\t0\t0\t1\n", "escape");
	expect_bad(HDR "cluster\tf\theld\t5\t0\th\t1\nend\t0\t0\t0\t0\t1\n", "path");
	expect_bad(HDR "clusterstat\t1\t2\t3\t4\nend\t0\t0\t0\n", "short clusterstat");
	expect_bad(HDR "clusterstat\t1\t2\t3\t4\t-\nend\t0\t0\t0\n", "number in clusterstat");
	expect_bad(HDR "clusterstat\t1\t2\t3\t4\t5\nclusterstat\t1\t2\t3\t4\t5\n"
		   "end\t0\t0\t0\n", "second clusterstat");
	expect_bad("lockfs-control 1\nmount\t/m\t/s\t1\t250\t0\t1\t2\t3\tzk\\q\nend\t0\t0\t0\n",
		   "escape");
#undef CL
#undef LOCK12
#undef SLOCK12
	{
		/* A NUL inside the reply. */
		static const char nul[] = "lockfs-control 1\nmount\t/m\0\t/s\t1\t-\t-\nend\t0\t0\t0\n";
		struct ctl_reply r;
		char err[128];

		assert_int_equal(ctl_parse_reply(nul, sizeof(nul) - 1, &r, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "NUL"));
	}
}

static void test_parse_error_reply(void **state)
{
	static const char text[] = "lockfs-control 1\nerror\tmalformed request\\tx\nend\t0\t0\t0\n";
	struct ctl_reply r;
	char err[64];

	(void)state;
	assert_int_equal(ctl_parse_reply(text, strlen(text), &r, err, sizeof(err)), 0);
	assert_string_equal(r.error, "malformed request\tx");
	ctl_reply_free(&r);
}

/* ---- the daemon's replies, end to end ------------------------------------ */

#define KEY_NAMED 0x1111
#define KEY_GONE 0x2222
/* A name with every character that needs escaping. */
#define NAMED_PATH "sub dir/we\tird\\na\nme.txt"

static int resolve(void *arg, lt_file_t file, char *buf, size_t len)
{
	int *calls = arg;

	(*calls)++;
	if (file != KEY_NAMED)
		return -ENOENT;
	snprintf(buf, len, "%s", NAMED_PATH);
	return 0;
}

struct dfx {
	struct lockfs_config cfg;
	struct locking *l;
	struct control *c;
	int resolver_calls;
};

static int dsetup(void **state)
{
	struct dfx *x = calloc(1, sizeof(*x));

	if (!x)
		return -1;
	x->cfg.lease_ms = 250;
	x->cfg.lock_timeout_ms = 7500;
	x->cfg.mountpoint = "/mnt/point";
	x->cfg.source = "/the/source";
	if (locking_new(&x->l, &x->cfg) != 0)
		return -1;
	if (control_new(&x->c, x->l, resolve, &x->resolver_calls, &x->cfg) != 0)
		return -1;
	*state = x;
	return 0;
}

static int dteardown(void **state)
{
	struct dfx *x = *state;

	control_free(x->c);
	locking_free(x->l);
	free(x);
	return 0;
}

struct grant {
	struct lk_wait w;
	int status;
	int resumed;
};

static void on_resume(struct lk_wait *w, int status)
{
	struct grant *g = (struct grant *)w;

	g->status = status;
	g->resumed++;
}

static int locking_owner_lookup_self(struct locking *l, lt_owner_t *id)
{
	return owner_lookup(locking_owners(l), gettid(), id);
}

/* Asks for `file` in class `cls` as the calling thread; returns the
 * immediate outcome (a request that would park is not possible here: no
 * FUSE request). */
static int take_cls(struct locking *l, lt_file_t file, enum lt_class cls, unsigned flags,
		    uint64_t lease_ns)
{
	struct grant g = { 0 };

	if (locking_owner_lookup_self(l, &g.w.lt.owner) != 0)
		return -ESRCH;
	g.w.lt.file = file;
	g.w.lt.cls = cls;
	g.w.lt.flags = flags;
	g.w.lt.lease_ns = lease_ns;
	g.w.resume = on_resume;
	locking_acquire(l, &g.w);
	assert_int_equal(g.resumed, 1);
	return g.status;
}

static int take(struct locking *l, lt_file_t file, unsigned flags, uint64_t lease_ns)
{
	return take_cls(l, file, LT_EXCL, flags, lease_ns);
}

/* Reads a whole reply through `h`, `chunk` bytes at a time. */
static char *read_all(struct control *c, struct control_handle *h, size_t chunk, size_t *len)
{
	char *buf = NULL;
	size_t n = 0;

	for (;;) {
		ssize_t r;

		buf = realloc(buf, n + chunk + 1);
		assert_non_null(buf);
		r = control_read(c, h, buf + n, chunk, (off_t)n);
		assert_true(r >= 0);
		if (r == 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

/* The reply to `request` (NULL: a plain read), parsed into r; with `raw`,
 * its text too (the caller frees it). */
static void ask_raw(struct dfx *x, const char *request, struct ctl_reply *r, char **raw)
{
	struct control_handle *h;
	char err[256], *text;
	size_t len;

	assert_int_equal(control_open(x->c, &h), 0);
	if (request)
		assert_int_equal(control_write(x->c, h, request, strlen(request), getuid()), 0);
	text = read_all(x->c, h, 4096, &len);
	if (ctl_parse_reply(text, len, r, err, sizeof(err)) != 0)
		fail_msg("daemon reply does not parse: %s\n%s", err, text);
	if (raw)
		*raw = text;
	else
		free(text);
	control_release(h);
}

static void ask(struct dfx *x, const char *request, struct ctl_reply *r)
{
	ask_raw(x, request, r, NULL);
}

static void test_daemon_holder_roundtrip(void **state)
{
	struct dfx *x = *state;
	struct ctl_reply r;
	char comm[16] = { 0 };

	assert_int_equal(prctl(PR_SET_NAME, "ctl-holder"), 0);
	prctl(PR_GET_NAME, comm);
	assert_int_equal(take(x->l, KEY_NAMED, 0, 1000000000ull), 0);
	assert_int_equal(take(x->l, KEY_GONE, LT_F_WRITE, 0), 0);

	ask(x, NULL, &r);
	assert_null(r.error);
	assert_string_equal(r.mountpoint, "/mnt/point");
	assert_string_equal(r.source, "/the/source");
	assert_int_equal(r.daemon_pid, getpid());
	assert_int_equal(r.lease_ms, 250);
	assert_int_equal(r.lock_timeout_ms, 7500);
	assert_int_equal(r.nlocks, 2);
	assert_int_equal(r.nwaits, 0);
	assert_int_equal(r.nstats, 0);
	for (size_t i = 0; i < r.nlocks; i++) {
		const struct ctl_lock *l = &r.locks[i];

		if (l->file.path) {
			assert_string_equal(l->file.path, NAMED_PATH);
		} else {
			assert_true(l->file.key == KEY_GONE);
		}
		assert_int_equal(l->mode, CTL_EXCLUSIVE);
		assert_int_equal(l->state, CTL_HELD);
		assert_int_equal(l->owner.pid, getpid());
		assert_int_equal(l->owner.tid, gettid());
		assert_string_equal(l->owner.comm, comm);
		assert_int_equal(l->owner.uid, geteuid());
		assert_int_equal(l->handles, 1);
		assert_int_equal(l->waiters, 0);
		assert_int_equal(l->lease_left_ns, CTL_UNKNOWN);
		assert_true(l->held_ns >= 0 && l->held_ns < 10 * 1000000000ll);
	}
	assert_true(r.locks[0].file.path != NULL || r.locks[1].file.path != NULL);
	assert_true(x->resolver_calls >= 2);
	ctl_reply_free(&r);

	/* A read-only close leaves a lease with time left. */
	{
		lt_owner_t me;

		assert_int_equal(locking_owner_lookup_self(x->l, &me), 0);
		locking_release(x->l, KEY_NAMED, me, false);
		locking_release(x->l, KEY_GONE, me, true);
	}
	ask(x, "snapshot\n", &r);
	assert_int_equal(r.nlocks, 1);
	assert_string_equal(r.locks[0].file.path, NAMED_PATH);
	assert_int_equal(r.locks[0].state, CTL_LEASE);
	assert_int_equal(r.locks[0].handles, 0);
	assert_true(r.locks[0].lease_left_ns > 0 && r.locks[0].lease_left_ns <= 1000000000ll);
	ctl_reply_free(&r);
}

struct other {
	struct locking *l;
	int status;
};

static void *other_thread(void *arg)
{
	struct other *o = arg;

	/* A read: a sibling thread's write would join the holder's hold
	 * (one program, see locktable.h) instead of failing. */
	o->status = take(o->l, KEY_NAMED, LT_F_NONBLOCK, 0);
	return NULL;
}

static void test_daemon_stats_and_reset(void **state)
{
	struct dfx *x = *state;
	struct other o = { .l = x->l, .status = 1 };
	struct control_handle *h;
	struct ctl_reply r;
	pthread_t th;
	lt_owner_t me;
	bool found = false;

	assert_int_equal(take(x->l, KEY_NAMED, LT_F_WRITE, 0), 0);
	assert_int_equal(pthread_create(&th, NULL, other_thread, &o), 0);
	pthread_join(th, NULL);
	assert_int_equal(o.status, -EAGAIN);

	ask(x, "stats\n", &r);
	assert_int_equal(r.nlocks, 1);
	for (size_t i = 0; i < r.nstats; i++) {
		const struct ctl_stat *s = &r.stats[i];

		if (!s->file.path)
			continue;
		assert_string_equal(s->file.path, NAMED_PATH);
		assert_int_equal(s->acquisitions, 1);
		assert_int_equal(s->contentions, 0);
		assert_int_equal(s->eagain, 1);
		assert_int_equal(s->edeadlk, 0);
		assert_int_equal(s->timeouts, 0);
		found = true;
	}
	assert_true(found);
	ctl_reply_free(&r);

	/* Somebody else may not reset; the handle then reads an error. */
	assert_int_equal(control_open(x->c, &h), 0);
	assert_int_equal(control_write(x->c, h, "reset\n", 6, getuid() + 1), -EPERM);
	{
		size_t len;
		char *text = read_all(x->c, h, 3, &len), err[128];

		assert_int_equal(ctl_parse_reply(text, len, &r, err, sizeof(err)), 0);
		assert_non_null(r.error);
		assert_non_null(strstr(r.error, "permission"));
		ctl_reply_free(&r);
		free(text);
	}
	control_release(h);
	ask(x, "stats\n", &r);
	found = false;
	for (size_t i = 0; i < r.nstats; i++)
		if (r.stats[i].eagain == 1)
			found = true;
	assert_true(found);
	ctl_reply_free(&r);

	/* The owner may. */
	ask(x, "reset\n", &r);
	assert_int_equal(r.nlocks, 0);
	ctl_reply_free(&r);
	ask(x, "stats\n", &r);
	assert_int_equal(r.nlocks, 1);
	for (size_t i = 0; i < r.nstats; i++) {
		assert_int_equal(r.stats[i].acquisitions, 0);
		assert_int_equal(r.stats[i].eagain, 0);
	}
	ctl_reply_free(&r);

	assert_int_equal(locking_owner_lookup_self(x->l, &me), 0);
	locking_release(x->l, KEY_NAMED, me, true);
}

static void test_daemon_paging_and_garbage(void **state)
{
	struct dfx *x = *state;
	struct control_handle *h;
	char *whole, *paged, err[128], junk[70000];
	size_t lw, lp;
	struct ctl_reply r;
	lt_owner_t me;

	assert_int_equal(take(x->l, KEY_NAMED, LT_F_WRITE, 0), 0);

	/* One handle pages through one snapshot, whatever the read size. */
	assert_int_equal(control_open(x->c, &h), 0);
	whole = read_all(x->c, h, 1 << 16, &lw);
	paged = read_all(x->c, h, 7, &lp);
	assert_int_equal(lw, lp);
	assert_memory_equal(whole, paged, lw);
	{
		char b[8];

		assert_int_equal(control_read(x->c, h, b, sizeof(b), (off_t)lw), 0);
		assert_int_equal(control_read(x->c, h, b, sizeof(b), (off_t)lw + 100000), 0);
		assert_int_equal(control_read(x->c, h, b, sizeof(b), -1), -EINVAL);
	}
	free(paged);

	/* Garbage: refused, and the handle answers with an error reply. */
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (char)(i * 7 + 3);
	assert_int_equal(control_write(x->c, h, junk, sizeof(junk), 0), -EINVAL);
	assert_int_equal(control_write(x->c, h, junk, 1, 0), -EINVAL);
	paged = read_all(x->c, h, 100, &lp);
	assert_int_equal(ctl_parse_reply(paged, lp, &r, err, sizeof(err)), 0);
	assert_non_null(r.error);
	ctl_reply_free(&r);
	free(paged);

	/* And still serves a good request afterwards. */
	assert_int_equal(control_write(x->c, h, "snapshot", 8, 0), 0);
	paged = read_all(x->c, h, 100, &lp);
	assert_int_equal(ctl_parse_reply(paged, lp, &r, err, sizeof(err)), 0);
	assert_null(r.error);
	assert_int_equal(r.nlocks, 1);
	ctl_reply_free(&r);
	free(paged);
	free(whole);
	control_release(h);

	assert_int_equal(locking_owner_lookup_self(x->l, &me), 0);
	locking_release(x->l, KEY_NAMED, me, true);
}

/* ---- version 2 of the lock table, through the control file -------------- */

#define KEY_IDLE 0x3333

static int dsetup_v2(void **state)
{
	struct dfx *x;

	if (dsetup(state) != 0)
		return -1;
	x = *state;
	/* The lock table was configured from cfg by locking_new(): make a
	 * new one with version 2 turned on. */
	control_free(x->c);
	locking_free(x->l);
	x->cfg.long_read_ms = 50;
	x->cfg.reader_wait_ms = 7000;
	x->cfg.calm_after_ms = 3000;
	if (locking_new(&x->l, &x->cfg) != 0 ||
	    control_new(&x->c, x->l, resolve, &x->resolver_calls, &x->cfg) != 0)
		return -1;
	return 0;
}

/* The mount's CLUSTER field, from -o cluster=, before the daemon joined
 * (and without cluster mode: "-"). No cluster records, no clusterstat:
 * those come from the cluster module, tested with a real ZooKeeper in
 * tests/integration/test_cluster.py. */
static void test_daemon_cluster_field(void **state)
{
	struct dfx *x = *state;
	struct ctl_reply r;
	char *raw;

	ask_raw(x, "stats\n", &r, &raw);
	assert_null(r.cluster);
	assert_non_null(strstr(raw, "\t-\nend\t0\t0\t0\t0\t0\n"));
	assert_null(strstr(raw, "cluster"));
	free(raw);
	ctl_reply_free(&r);

	control_free(x->c);
	x->cfg.cluster = "zk1:2181+zk2:2181/lock\tfs";
	assert_int_equal(control_new(&x->c, x->l, resolve, &x->resolver_calls, &x->cfg), 0);
	assert_int_equal(take(x->l, KEY_NAMED, 0, 0), 0);
	ask_raw(x, "stats\n", &r, &raw);
	assert_string_equal(r.cluster, "zk1:2181+zk2:2181/lock\tfs");
	assert_non_null(strstr(raw, "\tzk1:2181+zk2:2181/lock\\tfs\n"));
	assert_int_equal(r.nlocks, 1);
	assert_int_equal(r.nclusters, 0);
	assert_false(r.have_cluster_stats);
	free(raw);
	ctl_reply_free(&r);
	x->cfg.cluster = NULL;
}

struct joiner {
	struct locking *l;
	int status;
	lt_owner_t owner;
	pid_t tid;
};

static void *joiner_thread(void *arg)
{
	struct joiner *j = arg;

	j->tid = gettid();
	assert_int_equal(locking_owner_lookup_self(j->l, &j->owner), 0);
	/* A write by a sibling thread joins the hold of its program. */
	j->status = take(j->l, KEY_GONE, LT_F_NONBLOCK | LT_F_WRITE, 0);
	return NULL;
}

static const struct ctl_lock *lock_of(const struct ctl_reply *r, bool named, pid_t tid)
{
	for (size_t i = 0; i < r->nlocks; i++)
		if ((r->locks[i].file.path != NULL) == named && r->locks[i].owner.tid == tid)
			return &r->locks[i];
	fail_msg("no lock on the %s file by tid %d", named ? "named" : "unnamed", (int)tid);
	return NULL;
}

static void test_daemon_v2_roundtrip(void **state)
{
	struct dfx *x = *state;
	struct joiner j = { .l = x->l, .status = 1 };
	const struct ctl_lock *lk;
	struct ctl_reply r;
	pthread_t th;
	lt_owner_t me;
	char *raw;
	bool found;

	assert_int_equal(locking_owner_lookup_self(x->l, &me), 0);
	/* A read with update intent, a write, and a sibling thread joining
	 * the write. */
	assert_int_equal(take_cls(x->l, KEY_NAMED, LT_UPDATE, 0, 1000000000ull), 0);
	assert_int_equal(take(x->l, KEY_GONE, LT_F_WRITE, 0), 0);
	assert_int_equal(pthread_create(&th, NULL, joiner_thread, &j), 0);
	pthread_join(th, NULL);
	assert_int_equal(j.status, 0);
	/* Programs lock one file themselves; another is advisory and idle. */
	locking_advisory(x->l, KEY_GONE);
	locking_advisory(x->l, KEY_IDLE);

	ask_raw(x, "snapshot\n", &r, &raw);
	assert_int_equal(r.long_read_ms, 50);
	assert_int_equal(r.reader_wait_ms, 7000);
	assert_int_equal(r.calm_after_ms, 3000);
	assert_int_equal(r.nlocks, 3);
	lk = lock_of(&r, true, gettid());
	assert_int_equal(lk->mode, CTL_UPDATE);
	assert_int_equal(lk->state, CTL_HELD);
	assert_int_equal(lk->hold, CTL_HOLD_NORMAL);
	assert_false(lk->inherited || lk->joined);
	lk = lock_of(&r, false, gettid());
	assert_int_equal(lk->mode, CTL_EXCLUSIVE);
	assert_false(lk->inherited || lk->joined);
	lk = lock_of(&r, false, j.tid);
	assert_int_equal(lk->mode, CTL_EXCLUSIVE);
	assert_int_equal(lk->owner.pid, getpid());
	assert_true(lk->joined);
	assert_false(lk->inherited);
	/* Update intent is "exclusive" in MODE, for readers of the first
	 * version of the format, and "update" in CLASS. */
	assert_non_null(strstr(raw, "\texclusive\theld\t"));
	assert_non_null(strstr(raw, "\tupdate\tnormal\t-\n"));
	assert_non_null(strstr(raw, "\texclusive\tnormal\tjoined\n"));
	free(raw);
	/* Only the advisory file that is in the lock table: a snapshot does
	 * not walk every file the daemon knows. */
	assert_int_equal(r.nfileinfos, 1);
	assert_null(r.fileinfos[0].file.path);
	assert_true(r.fileinfos[0].file.key == KEY_GONE);
	assert_true(r.fileinfos[0].advisory);
	assert_false(r.fileinfos[0].calm);
	/* It was written (the write above): how long ago. */
	assert_true(r.fileinfos[0].written_ns >= 0 &&
		    r.fileinfos[0].written_ns < 60 * 1000000000ll);
	ctl_reply_free(&r);

	/* Statistics: the join counts, and every advisory file is listed. */
	ask(x, "stats\n", &r);
	found = false;
	for (size_t i = 0; i < r.nstats; i++) {
		const struct ctl_stat *s = &r.stats[i];

		if (s->file.path || s->file.key != KEY_GONE)
			continue;
		assert_int_equal(s->acquisitions, 2);
		assert_int_equal(s->joins, 1);
		assert_int_equal(s->broken, 0);
		assert_int_equal(s->calm_learned, 0);
		assert_true(s->advisory_passes >= 0);
		found = true;
	}
	assert_true(found);
	assert_int_equal(r.nfileinfos, 2);
	for (size_t i = 0; i < r.nfileinfos; i++) {
		assert_null(r.fileinfos[i].file.path);
		assert_true(r.fileinfos[i].file.key == KEY_GONE ||
			    r.fileinfos[i].file.key == KEY_IDLE);
		assert_true(r.fileinfos[i].advisory);
		if (r.fileinfos[i].file.key == KEY_IDLE)
			assert_int_equal(r.fileinfos[i].written_ns, CTL_UNKNOWN);
	}
	ctl_reply_free(&r);
	locking_release(x->l, KEY_GONE, j.owner, true);
	locking_release(x->l, KEY_GONE, me, true);

	/* The update-intent read stays open past long_read (50 ms, measured
	 * by the event thread's timer): it now shares, and says so. */
	assert_int_equal(locking_start(x->l), 0);
	for (int tries = 0;; tries++) {
		ask(x, NULL, &r);
		assert_int_equal(r.nlocks, 1);
		if (r.locks[0].hold == CTL_HOLD_LONG)
			break;
		assert_int_equal(r.locks[0].hold, CTL_HOLD_NORMAL);
		assert_true(tries < 500);
		ctl_reply_free(&r);
		usleep(10000);
	}
	assert_string_equal(r.locks[0].file.path, NAMED_PATH);
	assert_int_equal(r.locks[0].mode, CTL_SHARED);
	assert_int_equal(r.locks[0].state, CTL_HELD);
	assert_true(r.locks[0].held_ns >= 50 * 1000000ll);
	ctl_reply_free(&r);
	locking_stop(x->l);
	locking_release(x->l, KEY_NAMED, me, false);
}

/* Handles close in any order, and those the kernel never released are
 * freed with the control (the ASan build reports any that are not). */
static void test_daemon_handles_left_open(void **state)
{
	struct dfx *x = *state;
	struct control_handle *h[4];
	struct ctl_reply r;
	char *text, err[128];
	size_t len;

	for (size_t i = 0; i < 4; i++)
		assert_int_equal(control_open(x->c, &h[i]), 0);
	assert_int_equal(control_write(x->c, h[1], "stats\n", 6, getuid()), 0);
	assert_int_equal(control_write(x->c, h[2], "bogus\n", 6, getuid()), -EINVAL);
	control_release(h[1]);
	control_release(h[3]);
	/* The survivors still answer, each with its own reply. */
	text = read_all(x->c, h[2], 64, &len);
	assert_int_equal(ctl_parse_reply(text, len, &r, err, sizeof(err)), 0);
	assert_non_null(r.error);
	ctl_reply_free(&r);
	free(text);
	text = read_all(x->c, h[0], 64, &len);
	assert_int_equal(ctl_parse_reply(text, len, &r, err, sizeof(err)), 0);
	assert_null(r.error);
	assert_int_equal(r.lease_ms, 250);
	ctl_reply_free(&r);
	free(text);
	/* h[0] and h[2] stay open: dteardown's control_free() takes them. */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_words),
		cmocka_unit_test(test_request_malformed),
		cmocka_unit_test(test_escape_roundtrip_every_byte),
		cmocka_unit_test(test_escape_roundtrip_random),
		cmocka_unit_test(test_unescape_rejects),
		cmocka_unit_test(test_parse_good),
		cmocka_unit_test(test_parse_new_fields),
		cmocka_unit_test(test_parse_cluster),
		cmocka_unit_test(test_parse_every_prefix_fails),
		cmocka_unit_test(test_parse_rejects),
		cmocka_unit_test(test_parse_error_reply),
		cmocka_unit_test_setup_teardown(test_daemon_holder_roundtrip, dsetup, dteardown),
		cmocka_unit_test_setup_teardown(test_daemon_stats_and_reset, dsetup, dteardown),
		cmocka_unit_test_setup_teardown(test_daemon_paging_and_garbage, dsetup, dteardown),
		cmocka_unit_test_setup_teardown(test_daemon_handles_left_open, dsetup, dteardown),
		cmocka_unit_test_setup_teardown(test_daemon_v2_roundtrip, dsetup_v2, dteardown),
		cmocka_unit_test_setup_teardown(test_daemon_cluster_field, dsetup, dteardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
