/* Unit tests for the lock table, driven by a fake clock. */
#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <cmocka.h>

#include "locktable.h"

#define FA 0x1001
#define FB 0x1002
#define FC 0x1003

#define OA 11
#define OB 12
#define OC 13
#define OD 14
#define OP 20 /* a parent: the heir */
#define OG 21 /* a grandparent */

struct fx {
	struct lock_table *t;
	uint64_t now;
};

static int setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));

	if (!x)
		return -1;
	x->t = lt_new();
	if (!x->t) {
		free(x);
		return -1;
	}
	x->now = 1000;
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;

	lt_free(x->t);
	free(x);
	return 0;
}

static void mk(struct lt_request *r, lt_file_t f, lt_owner_t o, enum lt_class cls,
	       unsigned flags, uint64_t lease, uint64_t deadline)
{
	memset(r, 0, sizeof(*r));
	r->file = f;
	r->owner = o;
	r->cls = cls;
	r->flags = flags;
	r->lease_ns = lease;
	r->deadline = deadline;
	r->status = 12345; /* must be overwritten */
}

static int acq(struct fx *x, struct lt_request *r)
{
	return lt_acquire(x->t, r, x->now);
}

/* An exclusive write open: ends its section on close. */
static int wr(struct fx *x, struct lt_request *r, lt_file_t f, lt_owner_t o)
{
	mk(r, f, o, LT_EXCL, LT_F_WRITE, 0, 0);
	return acq(x, r);
}

/* An exclusive read-only open with a lease. */
static int rd(struct fx *x, struct lt_request *r, lt_file_t f, lt_owner_t o,
	      uint64_t lease)
{
	mk(r, f, o, LT_EXCL, 0, lease, 0);
	return acq(x, r);
}

static int rel(struct fx *x, lt_file_t f, lt_owner_t o, bool write)
{
	return lt_release(x->t, f, o, write, x->now);
}

static void expect_decided(struct fx *x, struct lt_request *r, int status)
{
	struct lt_request *d = lt_take_decided(x->t);

	assert_non_null(d);
	assert_ptr_equal(d, r);
	assert_int_equal(d->status, status);
	assert_int_equal(d->state, LT_REQ_DONE);
}

static void expect_none(struct fx *x)
{
	assert_null(lt_take_decided(x->t));
}

static size_t nwait(struct fx *x, lt_file_t f)
{
	return lt_waiters(x->t, f, NULL, 0);
}

static size_t nhold(struct fx *x, lt_file_t f)
{
	return lt_holders(x->t, f, NULL, 0);
}

/* The single holder of f. */
static struct lt_holder_view holder(struct fx *x, lt_file_t f)
{
	struct lt_holder_view v[2];

	memset(v, 0, sizeof(v));
	assert_int_equal(lt_holders(x->t, f, v, 2), 1);
	return v[0];
}

static struct lt_stats stats(struct fx *x, lt_file_t f)
{
	struct lt_stats s;

	assert_int_equal(lt_stats_get(x->t, f, &s), 0);
	return s;
}

/* ---------------------------------------------------------------- basics */

static void test_immediate_grant(void **state)
{
	struct fx *x = *state;
	struct lt_request r;
	struct lt_holder_view v;

	assert_int_equal(lt_file_count(x->t), 0);
	assert_int_equal(wr(x, &r, FA, OA), 0);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.state, LT_REQ_DONE);
	assert_int_equal(r.granted_file, FA);
	assert_int_equal(r.enqueued_at, x->now);
	expect_none(x); /* synchronous decisions are not on the decided list */
	assert_int_equal(lt_file_count(x->t), 1);
	v = holder(x, FA);
	assert_int_equal(v.owner, OA);
	assert_int_equal(v.cls, LT_EXCL);
	assert_int_equal(v.handles, 1);
	assert_int_equal(v.since, 1000);
	x->now = 1500;
	assert_int_equal(rel(x, FA, OA, true), 0);
	assert_int_equal(lt_file_count(x->t), 0);
	assert_int_equal(nhold(x, FA), 0);
	/* Releasing what is not held is refused. */
	assert_int_equal(rel(x, FA, OA, true), -ENOENT);
	assert_int_equal(rel(x, FB, OA, true), -ENOENT);
	assert_int_equal(lt_next_deadline(x->t), UINT64_MAX);
}

static void test_invalid(void **state)
{
	struct fx *x = *state;
	struct lt_request r;

	mk(&r, 0, OA, LT_EXCL, 0, 0, 0);
	assert_int_equal(acq(x, &r), -EINVAL);
	assert_int_equal(r.status, -EINVAL);
	mk(&r, FA, 0, LT_EXCL, 0, 0, 0);
	assert_int_equal(acq(x, &r), -EINVAL);
	assert_int_equal(lt_file_count(x->t), 0);
	assert_int_equal(lt_cancel(x->t, &r, x->now), -ENOENT);
}

static void test_reentry(void **state)
{
	struct fx *x = *state;
	struct lt_request a1, a2, a3, b;

	assert_int_equal(wr(x, &a1, FA, OA), 0);
	assert_int_equal(wr(x, &b, FA, OB), -EINPROGRESS);
	assert_int_equal(b.state, LT_REQ_WAITING);
	/* A holder is let in again even though B queues. */
	assert_int_equal(rd(x, &a2, FA, OA, 0), 0);
	mk(&a3, FA, OA, LT_SHARED, 0, 0, 0);
	assert_int_equal(acq(x, &a3), 0);
	assert_int_equal(holder(x, FA).handles, 3);
	assert_int_equal(holder(x, FA).cls, LT_EXCL);
	assert_int_equal(rel(x, FA, OA, true), 0);
	assert_int_equal(rel(x, FA, OA, false), 0);
	expect_none(x);
	assert_int_equal(nwait(x, FA), 1);
	assert_int_equal(rel(x, FA, OA, false), 0);
	expect_decided(x, &b, 0);
	assert_int_equal(b.granted_file, FA);
	assert_int_equal(holder(x, FA).owner, OB);
	assert_int_equal(stats(x, FA).acquisitions, 4);
}

static void test_fifo_order(void **state)
{
	struct fx *x = *state;
	struct lt_request a, w[4];
	const struct lt_request *q[8];
	lt_owner_t owners[4] = { OB, OC, OD, OP };

	assert_int_equal(wr(x, &a, FA, OA), 0);
	for (int i = 0; i < 4; i++) {
		x->now += 10;
		assert_int_equal(wr(x, &w[i], FA, owners[i]), -EINPROGRESS);
		assert_int_equal(w[i].enqueued_at, x->now);
	}
	assert_int_equal(lt_waiters(x->t, FA, q, 8), 4);
	for (int i = 0; i < 4; i++)
		assert_ptr_equal(q[i], &w[i]);
	/* A short buffer still gets the head and the true total. */
	assert_int_equal(lt_waiters(x->t, FA, q, 2), 4);
	assert_ptr_equal(q[0], &w[0]);
	assert_ptr_equal(q[1], &w[1]);

	lt_owner_t prev = OA;
	for (int i = 0; i < 4; i++) {
		x->now += 100;
		expect_none(x);
		assert_int_equal(rel(x, FA, prev, true), 0);
		expect_decided(x, &w[i], 0);
		expect_none(x);
		assert_int_equal(holder(x, FA).owner, owners[i]);
		assert_int_equal(nwait(x, FA), 3 - i);
		prev = owners[i];
	}
	assert_int_equal(rel(x, FA, prev, true), 0);
	assert_int_equal(lt_file_count(x->t), 0);
}

static void test_shared_batch_and_writer_fairness(void **state)
{
	struct fx *x = *state;
	struct lt_request r1, r2, w1, r3, r4, w2, r5;

	mk(&r1, FA, OA, LT_SHARED, 0, 0, 0);
	mk(&r2, FA, OB, LT_SHARED, 0, 0, 0);
	assert_int_equal(acq(x, &r1), 0);
	assert_int_equal(acq(x, &r2), 0);
	assert_int_equal(nhold(x, FA), 2);
	assert_int_equal(wr(x, &w1, FA, OC), -EINPROGRESS);
	/* A reader arriving while a writer waits queues behind the writer. */
	mk(&r3, FA, OD, LT_SHARED, 0, 0, 0);
	assert_int_equal(acq(x, &r3), -EINPROGRESS);
	mk(&r4, FA, OP, LT_SHARED, 0, 0, 0);
	assert_int_equal(acq(x, &r4), -EINPROGRESS);
	assert_int_equal(wr(x, &w2, FA, OG), -EINPROGRESS);
	mk(&r5, FA, 30, LT_SHARED, 0, 0, 0);
	assert_int_equal(acq(x, &r5), -EINPROGRESS);

	assert_int_equal(rel(x, FA, OA, false), 0);
	expect_none(x);
	assert_int_equal(rel(x, FA, OB, false), 0);
	expect_decided(x, &w1, 0);
	expect_none(x);
	/* The writer leaves: the run of readers goes in together, up to the
	 * next writer; the reader behind that writer keeps waiting. */
	assert_int_equal(rel(x, FA, OC, true), 0);
	expect_decided(x, &r3, 0);
	expect_decided(x, &r4, 0);
	expect_none(x);
	assert_int_equal(nhold(x, FA), 2);
	assert_int_equal(nwait(x, FA), 2);
	assert_int_equal(rel(x, FA, OD, false), 0);
	expect_none(x);
	assert_int_equal(rel(x, FA, OP, false), 0);
	expect_decided(x, &w2, 0);
	assert_int_equal(rel(x, FA, OG, true), 0);
	expect_decided(x, &r5, 0);
	assert_int_equal(rel(x, FA, 30, false), 0);
	assert_int_equal(lt_file_count(x->t), 0);
}

static void test_upgrade(void **state)
{
	struct fx *x = *state;
	struct lt_request a, b, c, au, r;
	const struct lt_request *q[4];

	mk(&a, FA, OA, LT_SHARED, 0, 0, 0);
	mk(&b, FA, OB, LT_SHARED, 0, 0, 0);
	assert_int_equal(acq(x, &a), 0);
	assert_int_equal(acq(x, &b), 0);
	assert_int_equal(wr(x, &c, FA, OC), -EINPROGRESS);
	/* A's upgrade must wait for B, ahead of the queued writer. */
	assert_int_equal(wr(x, &au, FA, OA), -EINPROGRESS);
	assert_int_equal(lt_waiters(x->t, FA, q, 4), 2);
	assert_ptr_equal(q[0], &au);
	assert_ptr_equal(q[1], &c);
	assert_int_equal(rel(x, FA, OB, false), 0);
	expect_decided(x, &au, 0);
	expect_none(x);
	assert_int_equal(holder(x, FA).owner, OA);
	assert_int_equal(holder(x, FA).cls, LT_EXCL);
	assert_int_equal(holder(x, FA).handles, 2);
	/* Being exclusive now, A also keeps new readers out. */
	mk(&r, FA, OD, LT_SHARED, 0, 0, 0);
	assert_int_equal(acq(x, &r), -EINPROGRESS);
	assert_int_equal(rel(x, FA, OA, true), 0);
	expect_none(x);
	assert_int_equal(rel(x, FA, OA, false), 0);
	expect_decided(x, &c, 0);
	assert_int_equal(rel(x, FA, OC, true), 0);
	expect_decided(x, &r, 0);
}

static void test_upgrade_alone_is_immediate(void **state)
{
	struct fx *x = *state;
	struct lt_request a, c, au;

	mk(&a, FA, OA, LT_SHARED, 0, 0, 0);
	assert_int_equal(acq(x, &a), 0);
	assert_int_equal(wr(x, &c, FA, OC), -EINPROGRESS);
	/* The sole holder upgrades at once: the writer waits for it anyway. */
	assert_int_equal(wr(x, &au, FA, OA), 0);
	assert_int_equal(holder(x, FA).cls, LT_EXCL);
	assert_int_equal(rel(x, FA, OA, false), 0);
	assert_int_equal(rel(x, FA, OA, true), 0);
	expect_decided(x, &c, 0);
}

/* ----------------------------------------------------------------- leases */

static void test_lease_start_and_expiry(void **state)
{
	struct fx *x = *state;
	struct lt_request a, b;
	struct lt_holder_view v;
	struct lt_stats s;

	assert_int_equal(rd(x, &a, FA, OA, 100), 0);
	x->now = 1050;
	assert_int_equal(rel(x, FA, OA, false), 0);
	v = holder(x, FA);
	assert_int_equal(v.owner, OA);
	assert_int_equal(v.handles, 0);
	assert_int_equal(v.lease_until, 1150);
	assert_int_equal(v.since, 1000);
	assert_int_equal(lt_next_deadline(x->t), 1150);
	assert_int_equal(lt_file_count(x->t), 1);

	x->now = 1060;
	assert_int_equal(wr(x, &b, FA, OB), -EINPROGRESS);
	lt_tick(x->t, 1149);
	expect_none(x);
	assert_int_equal(holder(x, FA).owner, OA);
	x->now = 1150;
	lt_tick(x->t, x->now);
	expect_decided(x, &b, 0);
	assert_int_equal(holder(x, FA).owner, OB);
	assert_int_equal(lt_next_deadline(x->t), UINT64_MAX);
	s = stats(x, FA);
	assert_int_equal(s.holds, 1);
	assert_int_equal(s.hold_total_ns, 150); /* lease time included */
	assert_int_equal(s.waits, 1);
	assert_int_equal(s.wait_min_ns, 90);
	assert_int_equal(rel(x, FA, OB, true), 0);
	assert_int_equal(lt_file_count(x->t), 0);
}

static void test_lease_expires_alone(void **state)
{
	struct fx *x = *state;
	struct lt_request a;

	assert_int_equal(rd(x, &a, FA, OA, 100), 0);
	assert_int_equal(rel(x, FA, OA, false), 0);
	assert_int_equal(lt_next_deadline(x->t), 1100);
	lt_tick(x->t, 1100);
	assert_int_equal(lt_file_count(x->t), 0);
	assert_int_equal(lt_next_deadline(x->t), UINT64_MAX);
	/* A lease is not a handle. */
	assert_int_equal(rel(x, FA, OA, false), -ENOENT);
}

static void test_no_lease_without_lease_ns_or_shared(void **state)
{
	struct fx *x = *state;
	struct lt_request a, s;

	assert_int_equal(rd(x, &a, FA, OA, 0), 0);
	assert_int_equal(rel(x, FA, OA, false), 0);
	assert_int_equal(lt_file_count(x->t), 0);
	/* Shared holds end with their last handle, lease or not. */
	mk(&s, FA, OA, LT_SHARED, 0, 100, 0);
	assert_int_equal(acq(x, &s), 0);
	assert_int_equal(rel(x, FA, OA, false), 0);
	assert_int_equal(lt_file_count(x->t), 0);
	assert_int_equal(lt_next_deadline(x->t), UINT64_MAX);
	/* Nor does a shared request that was the last into an exclusive hold. */
	assert_int_equal(rd(x, &a, FA, OA, 100), 0);
	mk(&s, FA, OA, LT_SHARED, 0, 100, 0);
	assert_int_equal(acq(x, &s), 0);
	assert_int_equal(holder(x, FA).cls, LT_EXCL);
	assert_int_equal(rel(x, FA, OA, false), 0);
	assert_int_equal(rel(x, FA, OA, false), 0);
	assert_int_equal(lt_file_count(x->t), 0);
}

static void test_lease_ended_by_read_elsewhere(void **state)
{
	struct fx *x = *state;
	struct lt_request a, b, a2, w, a3;

	assert_int_equal(rd(x, &a, FA, OA, 100), 0);
	assert_int_equal(rel(x, FA, OA, false), 0);
	assert_int_equal(wr(x, &b, FA, OB), -EINPROGRESS);
	/* A write elsewhere keeps the lease (write tmp, rename over FA). */
	assert_int_equal(wr(x, &w, FB, OA), 0);
	expect_none(x);
	assert_int_equal(holder(x, FA).owner, OA);
	assert_int_equal(rel(x, FB, OA, true), 0);
	/* A read of another file: A has moved on. */
	x->now = 1010;
	assert_int_equal(rd(x, &a2, FC, OA, 100), 0);
	expect_decided(x, &b, 0);
	assert_int_equal(holder(x, FA).owner, OB);
	assert_int_equal(stats(x, FA).holds, 1);
	assert_int_equal(stats(x, FA).hold_total_ns, 10);
	/* A read re-entering the same file does not end its own lease. */
	assert_int_equal(rel(x, FC, OA, false), 0);
	assert_int_equal(rd(x, &a3, FC, OA, 100), 0);
	assert_int_equal(holder(x, FC).handles, 1);
}

static void test_lease_ended_by_queued_read(void **state)
{
	struct fx *x = *state;
	struct lt_request a, b, c, a2;

	assert_int_equal(rd(x, &a, FA, OA, 100), 0);
	assert_int_equal(rel(x, FA, OA, false), 0);
	assert_int_equal(wr(x, &b, FA, OB), -EINPROGRESS);
	assert_int_equal(wr(x, &c, FB, OC), 0);
	/* A's read of FB has to wait, but it ends the lease all the same. */
	assert_int_equal(rd(x, &a2, FB, OA, 100), -EINPROGRESS);
	expect_decided(x, &b, 0);
	assert_int_equal(holder(x, FA).owner, OB);
	assert_int_equal(lt_next_deadline(x->t), UINT64_MAX);
	/* A refused non-blocking read leaves a lease alone. */
	assert_int_equal(rel(x, FA, OB, true), 0);
	assert_int_equal(rel(x, FB, OC, true), 0);
	expect_decided(x, &a2, 0);
	assert_int_equal(rel(x, FB, OA, false), 0); /* A: lease on FB */
	struct lt_request d, an;
	assert_int_equal(wr(x, &d, FC, OD), 0);
	mk(&an, FC, OA, LT_EXCL, LT_F_NONBLOCK, 100, 0);
	assert_int_equal(acq(x, &an), -EAGAIN);
	assert_int_equal(holder(x, FB).owner, OA);
	assert_int_equal(holder(x, FB).handles, 0);
}

static void test_lease_continued_by_own_write(void **state)
{
	struct fx *x = *state;
	struct lt_request a, b, aw;

	assert_int_equal(rd(x, &a, FA, OA, 100), 0);
	assert_int_equal(rel(x, FA, OA, false), 0);
	assert_int_equal(wr(x, &b, FA, OB), -EINPROGRESS);
	x->now = 1050;
	/* The read-modify-write: A's write open re-enters its lease. */
	assert_int_equal(wr(x, &aw, FA, OA), 0);
	assert_int_equal(holder(x, FA).handles, 1);
	assert_int_equal(lt_next_deadline(x->t), UINT64_MAX);
	/* The old lease end passes without effect. */
	lt_tick(x->t, 5000);
	expect_none(x);
	assert_int_equal(holder(x, FA).owner, OA);
	/* Closing the write ends the section: no lease, next waiter in. */
	x->now = 6000;
	assert_int_equal(rel(x, FA, OA, true), 0);
	expect_decided(x, &b, 0);
	assert_int_equal(stats(x, FA).hold_total_ns, 5000);
}

static void test_write_close_hands_over(void **state)
{
	struct fx *x = *state;
	struct lt_request a, b, c;

	/* lease_ns on a write open does not matter: closing it ends it. */
	mk(&a, FA, OA, LT_EXCL, LT_F_WRITE, 100, 0);
	assert_int_equal(acq(x, &a), 0);
	assert_int_equal(wr(x, &b, FA, OB), -EINPROGRESS);
	assert_int_equal(wr(x, &c, FA, OC), -EINPROGRESS);
	assert_int_equal(rel(x, FA, OA, true), 0);
	expect_decided(x, &b, 0);
	expect_none(x);
	assert_int_equal(holder(x, FA).owner, OB);
	assert_int_equal(lt_next_deadline(x->t), UINT64_MAX);
}

static void overlap(struct fx *x, bool read_last, bool release_write_first)
{
	struct lt_request r, w;

	if (read_last) {
		mk(&w, FA, OA, LT_EXCL, LT_F_WRITE, 100, 0);
		assert_int_equal(acq(x, &w), 0);
		assert_int_equal(rd(x, &r, FA, OA, 100), 0);
	} else {
		assert_int_equal(rd(x, &r, FA, OA, 100), 0);
		mk(&w, FA, OA, LT_EXCL, LT_F_WRITE, 100, 0);
		assert_int_equal(acq(x, &w), 0);
	}
	assert_int_equal(rel(x, FA, OA, release_write_first), 0);
	assert_int_equal(holder(x, FA).handles, 1);
	assert_int_equal(rel(x, FA, OA, !release_write_first), 0);
	if (read_last) {
		assert_int_equal(holder(x, FA).handles, 0);
		assert_int_equal(holder(x, FA).lease_until, x->now + 100);
		lt_tick(x->t, x->now + 100);
	}
	assert_int_equal(lt_file_count(x->t), 0);
}

static void test_overlapping_handles(void **state)
{
	struct fx *x = *state;

	/* The most recently granted request decides, not the last closed. */
	overlap(x, true, true);
	x->now += 1000;
	overlap(x, true, false);
	x->now += 1000;
	overlap(x, false, true);
	x->now += 1000;
	overlap(x, false, false);
}

static void test_one_lease_per_owner(void **state)
{
	struct fx *x = *state;
	struct lt_request r1, r2;

	/* Two read handles open at once, closed in turn: the second lease
	 * replaces the first. */
	assert_int_equal(rd(x, &r1, FA, OA, 100), 0);
	assert_int_equal(rd(x, &r2, FB, OA, 100), 0);
	assert_int_equal(rel(x, FB, OA, false), 0);
	assert_int_equal(holder(x, FB).handles, 0);
	assert_int_equal(rel(x, FA, OA, false), 0);
	assert_int_equal(holder(x, FA).handles, 0);
	assert_int_equal(nhold(x, FB), 0);
	assert_int_equal(lt_file_count(x->t), 1);
}

/* ------------------------------------------------------- refusals, cycles */

static void test_nonblock(void **state)
{
	struct fx *x = *state;
	struct lt_request a, b, w, r;
	struct lt_stats s;

	assert_int_equal(wr(x, &a, FA, OA), 0);
	mk(&b, FA, OB, LT_EXCL, LT_F_WRITE | LT_F_NONBLOCK, 0, 0);
	assert_int_equal(acq(x, &b), -EAGAIN);
	assert_int_equal(b.status, -EAGAIN);
	assert_int_equal(b.state, LT_REQ_DONE);
	assert_int_equal(nwait(x, FA), 0);
	expect_none(x);
	s = stats(x, FA);
	assert_int_equal(s.fail_eagain, 1);
	assert_int_equal(s.contentions, 0);
	assert_int_equal(s.acquisitions, 1);
	assert_int_equal(rel(x, FA, OA, true), 0);

	/* A reader that fits the holders but would queue behind a writer
	 * peeks: a queue does not matter to what takes nothing. */
	mk(&a, FB, OA, LT_SHARED, 0, 0, 0);
	assert_int_equal(acq(x, &a), 0);
	assert_int_equal(wr(x, &w, FB, OB), -EINPROGRESS);
	mk(&r, FB, OC, LT_SHARED, LT_F_NONBLOCK, 0, 0);
	assert_int_equal(acq(x, &r), LT_PEEK);
	assert_int_equal(nhold(x, FB), 1);
	assert_int_equal(nwait(x, FB), 1);
	/* A non-blocking writer in the same place is refused. */
	mk(&r, FB, OC, LT_EXCL, LT_F_WRITE | LT_F_NONBLOCK, 0, 0);
	assert_int_equal(acq(x, &r), -EAGAIN);
	assert_int_equal(stats(x, FB).fail_eagain, 1);
	assert_int_equal(stats(x, FB).peeks, 1);
	/* The holder itself is never refused, and gets a real grant. */
	mk(&r, FB, OA, LT_SHARED, LT_F_NONBLOCK, 0, 0);
	assert_int_equal(acq(x, &r), 0);
	assert_int_equal(holder(x, FB).handles, 2);
}

static void test_deadlock_two_cycle(void **state)
{
	struct fx *x = *state;
	struct lt_request a, b, ab, ba;

	assert_int_equal(wr(x, &a, FA, OA), 0);
	assert_int_equal(wr(x, &b, FB, OB), 0);
	assert_int_equal(wr(x, &ab, FB, OA), -EINPROGRESS);
	assert_int_equal(wr(x, &ba, FA, OB), -EDEADLK);
	assert_int_equal(ba.status, -EDEADLK);
	assert_int_equal(ba.state, LT_REQ_DONE);
	assert_int_equal(nwait(x, FA), 0);
	assert_int_equal(stats(x, FA).fail_edeadlk, 1);
	assert_int_equal(stats(x, FA).contentions, 0);
	/* B backs off: A gets FB. */
	assert_int_equal(rel(x, FB, OB, true), 0);
	expect_decided(x, &ab, 0);
}

static void test_deadlock_three_cycle_and_chain(void **state)
{
	struct fx *x = *state;
	struct lt_request a, b, c, ab, bc, ca;

	assert_int_equal(wr(x, &a, FA, OA), 0);
	assert_int_equal(wr(x, &b, FB, OB), 0);
	assert_int_equal(wr(x, &c, FC, OC), 0);
	assert_int_equal(wr(x, &ab, FB, OA), -EINPROGRESS);
	assert_int_equal(wr(x, &bc, FC, OB), -EINPROGRESS);
	/* A waits for B, B for C: a chain, and D joining it is no cycle. */
	struct lt_request d;
	assert_int_equal(wr(x, &d, FA, OD), -EINPROGRESS);
	assert_int_equal(wr(x, &ca, FA, OC), -EDEADLK);
	assert_int_equal(nwait(x, FA), 1);
	assert_int_equal(rel(x, FC, OC, true), 0);
	expect_decided(x, &bc, 0);
	assert_int_equal(rel(x, FC, OB, true), 0);
	assert_int_equal(rel(x, FB, OB, true), 0);
	expect_decided(x, &ab, 0);
	assert_int_equal(rel(x, FB, OA, true), 0);
	assert_int_equal(rel(x, FA, OA, true), 0);
	expect_decided(x, &d, 0);
}

static void test_deadlock_through_lease(void **state)
{
	struct fx *x = *state;
	struct lt_request a, aw, b, ba;

	/* A's lease on FA counts as a hold; A's write wait on FB keeps it. */
	assert_int_equal(rd(x, &a, FA, OA, 1000), 0);
	assert_int_equal(rel(x, FA, OA, false), 0);
	assert_int_equal(wr(x, &b, FB, OB), 0);
	assert_int_equal(wr(x, &aw, FB, OA), -EINPROGRESS);
	assert_int_equal(wr(x, &ba, FA, OB), -EDEADLK);
}

static void test_deadlock_through_queue_order(void **state)
{
	struct fx *x = *state;
	struct lt_request a, w, b, bf, ag;

	/* A reads FA (shared); W queues for FA; B holds FB and asks to read FA:
	 * it fits A but waits behind W. If A now waits for FB, nobody moves. */
	mk(&a, FA, OA, LT_SHARED, 0, 0, 0);
	assert_int_equal(acq(x, &a), 0);
	assert_int_equal(wr(x, &w, FA, OC), -EINPROGRESS);
	assert_int_equal(wr(x, &b, FB, OB), 0);
	mk(&bf, FA, OB, LT_SHARED, 0, 0, 0);
	assert_int_equal(acq(x, &bf), -EINPROGRESS);
	assert_int_equal(wr(x, &ag, FB, OA), -EDEADLK);
}

static void test_deadlock_double_upgrade(void **state)
{
	struct fx *x = *state;
	struct lt_request a, b, au, bu;

	mk(&a, FA, OA, LT_SHARED, 0, 0, 0);
	mk(&b, FA, OB, LT_SHARED, 0, 0, 0);
	assert_int_equal(acq(x, &a), 0);
	assert_int_equal(acq(x, &b), 0);
	assert_int_equal(wr(x, &au, FA, OA), -EINPROGRESS);
	assert_int_equal(wr(x, &bu, FA, OB), -EDEADLK);
	assert_int_equal(rel(x, FA, OB, false), 0);
	expect_decided(x, &au, 0);
}

static void test_deadlock_walk_is_bounded(void **state)
{
	struct fx *x = *state;
	enum { N = 3000 };
	struct lt_request *hold = calloc(N, sizeof(*hold));
	struct lt_request *wait = calloc(N, sizeof(*wait));
	struct lt_request close;

	assert_non_null(hold);
	assert_non_null(wait);
	/* owner i holds file i and waits for file i+1 */
	for (int i = 0; i < N; i++)
		assert_int_equal(wr(x, &hold[i], 100 + i, 1000 + i), 0);
	for (int i = 0; i < N - 1; i++)
		assert_int_equal(wr(x, &wait[i], 100 + i + 1, 1000 + i), -EINPROGRESS);
	/* Closing a cycle this long is beyond the walk: it parks. */
	assert_int_equal(wr(x, &close, 100, 1000 + N - 1), -EINPROGRESS);
	assert_int_equal(lt_cancel(x->t, &close, x->now), 0);
	expect_decided(x, &close, -EINTR);
	/* A short cycle in the same table is still found. */
	assert_int_equal(wr(x, &close, 100 + N - 10, 1000 + N - 1), -EDEADLK);
	free(hold);
	free(wait);
}

/* ------------------------------------------------------ cancel, timeouts */

static void test_cancel(void **state)
{
	struct fx *x = *state;
	struct lt_request a, b, c;

	assert_int_equal(wr(x, &a, FA, OA), 0);
	assert_int_equal(wr(x, &b, FA, OB), -EINPROGRESS);
	assert_int_equal(wr(x, &c, FA, OC), -EINPROGRESS);
	x->now = 1070;
	assert_int_equal(lt_cancel(x->t, &b, x->now), 0);
	expect_decided(x, &b, -EINTR);
	assert_int_equal(lt_cancel(x->t, &b, x->now), -ENOENT);
	assert_int_equal(nwait(x, FA), 1);
	assert_int_equal(stats(x, FA).fail_intr, 1);
	assert_int_equal(stats(x, FA).wait_max_ns, 70);
	assert_int_equal(rel(x, FA, OA, true), 0);
	expect_decided(x, &c, 0);
	/* Decided but not taken yet: too late to cancel. */
	struct lt_request d;
	assert_int_equal(wr(x, &d, FA, OD), -EINPROGRESS);
	assert_int_equal(rel(x, FA, OC, true), 0);
	assert_int_equal(lt_cancel(x->t, &d, x->now), -ENOENT);
	expect_decided(x, &d, 0);
}

static void test_cancel_head_lets_readers_in(void **state)
{
	struct fx *x = *state;
	struct lt_request a, b, au, r;

	mk(&a, FA, OA, LT_SHARED, 0, 0, 0);
	mk(&b, FA, OB, LT_SHARED, 0, 0, 0);
	assert_int_equal(acq(x, &a), 0);
	assert_int_equal(acq(x, &b), 0);
	assert_int_equal(wr(x, &au, FA, OA), -EINPROGRESS);
	mk(&r, FA, OC, LT_SHARED, 0, 0, 0);
	assert_int_equal(acq(x, &r), -EINPROGRESS);
	assert_int_equal(lt_cancel(x->t, &au, x->now), 0);
	expect_decided(x, &au, -EINTR);
	expect_decided(x, &r, 0);
	assert_int_equal(nhold(x, FA), 3);
	/* The cancelled upgrade left A a reader. */
	struct lt_holder_view v[3];
	assert_int_equal(lt_holders(x->t, FA, v, 3), 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(v[i].cls, LT_SHARED);
}

static void test_timeout(void **state)
{
	struct fx *x = *state;
	struct lt_request a, b, c, d;

	assert_int_equal(wr(x, &a, FA, OA), 0);
	mk(&b, FA, OB, LT_EXCL, LT_F_WRITE, 0, 1300);
	assert_int_equal(acq(x, &b), -EINPROGRESS);
	mk(&c, FA, OC, LT_EXCL, LT_F_WRITE, 0, 1200);
	assert_int_equal(acq(x, &c), -EINPROGRESS);
	mk(&d, FA, OD, LT_EXCL, LT_F_WRITE, 0, 0);
	assert_int_equal(acq(x, &d), -EINPROGRESS);
	assert_int_equal(lt_next_deadline(x->t), 1200);
	lt_tick(x->t, 1199);
	expect_none(x);
	lt_tick(x->t, 1200);
	expect_decided(x, &c, -ETIMEDOUT);
	expect_none(x);
	assert_int_equal(lt_next_deadline(x->t), 1300);
	lt_tick(x->t, 1400);
	expect_decided(x, &b, -ETIMEDOUT);
	assert_int_equal(lt_next_deadline(x->t), UINT64_MAX);
	assert_int_equal(nwait(x, FA), 1);
	struct lt_stats s = stats(x, FA);
	assert_int_equal(s.fail_timeout, 2);
	assert_int_equal(s.waits, 2);
	assert_int_equal(s.wait_min_ns, 200);
	assert_int_equal(s.wait_max_ns, 400);
	x->now = 1500;
	assert_int_equal(rel(x, FA, OA, true), 0);
	expect_decided(x, &d, 0);
}

static void test_timeout_of_head_lets_readers_in(void **state)
{
	struct fx *x = *state;
	struct lt_request a, w, r;

	mk(&a, FA, OA, LT_SHARED, 0, 0, 0);
	assert_int_equal(acq(x, &a), 0);
	mk(&w, FA, OB, LT_EXCL, LT_F_WRITE, 0, 1100);
	assert_int_equal(acq(x, &w), -EINPROGRESS);
	mk(&r, FA, OC, LT_SHARED, 0, 0, 0);
	assert_int_equal(acq(x, &r), -EINPROGRESS);
	lt_tick(x->t, 1100);
	expect_decided(x, &w, -ETIMEDOUT);
	expect_decided(x, &r, 0);
}

static void test_lease_end_beats_timeout_at_same_instant(void **state)
{
	struct fx *x = *state;
	struct lt_request a, b;

	assert_int_equal(rd(x, &a, FA, OA, 100), 0);
	assert_int_equal(rel(x, FA, OA, false), 0);
	mk(&b, FA, OB, LT_EXCL, LT_F_WRITE, 0, 1100);
	assert_int_equal(acq(x, &b), -EINPROGRESS);
	lt_tick(x->t, 1100);
	expect_decided(x, &b, 0);
}

static void test_lease_end_beats_timeout_deadline_first(void **state)
{
	struct fx *x = *state;
	struct lt_request a, ar, b;

	/* The wait deadline is scheduled before the lease it races with. */
	assert_int_equal(wr(x, &a, FA, OA), 0);
	mk(&b, FA, OB, LT_EXCL, LT_F_WRITE, 0, 1100);
	assert_int_equal(acq(x, &b), -EINPROGRESS);
	assert_int_equal(rd(x, &ar, FA, OA, 100), 0);
	assert_int_equal(rel(x, FA, OA, true), 0);
	assert_int_equal(rel(x, FA, OA, false), 0);
	assert_int_equal(holder(x, FA).lease_until, 1100);
	lt_tick(x->t, 1100);
	expect_decided(x, &b, 0);
}

static void test_next_deadline_mixes_leases_and_waits(void **state)
{
	struct fx *x = *state;
	struct lt_request a, c, b, d;

	assert_int_equal(rd(x, &a, FA, OA, 500), 0);
	assert_int_equal(rel(x, FA, OA, false), 0); /* lease to 1500 */
	assert_int_equal(rd(x, &c, FB, OC, 300), 0);
	assert_int_equal(rel(x, FB, OC, false), 0); /* lease to 1300 */
	mk(&b, FA, OB, LT_EXCL, LT_F_WRITE, 0, 1400);
	assert_int_equal(acq(x, &b), -EINPROGRESS);
	mk(&d, FB, OD, LT_EXCL, LT_F_WRITE, 0, 1200);
	assert_int_equal(acq(x, &d), -EINPROGRESS);
	assert_int_equal(lt_next_deadline(x->t), 1200);
	lt_tick(x->t, lt_next_deadline(x->t));
	expect_decided(x, &d, -ETIMEDOUT);
	assert_int_equal(lt_next_deadline(x->t), 1300);
	lt_tick(x->t, lt_next_deadline(x->t));
	assert_int_equal(nhold(x, FB), 0);
	assert_int_equal(lt_next_deadline(x->t), 1400);
	lt_tick(x->t, lt_next_deadline(x->t));
	expect_decided(x, &b, -ETIMEDOUT);
	assert_int_equal(lt_next_deadline(x->t), 1500);
	lt_tick(x->t, lt_next_deadline(x->t));
	assert_int_equal(lt_next_deadline(x->t), UINT64_MAX);
	assert_int_equal(lt_file_count(x->t), 0);
}

/* ------------------------------------------------------------ owner exits */

static void test_exit_with_heir_passes_lease(void **state)
{
	struct fx *x = *state;
	struct lt_request a, b, p, p2;
	struct lt_holder_view v;

	assert_int_equal(rd(x, &a, FA, OA, 100), 0);
	assert_int_equal(rel(x, FA, OA, false), 0); /* lease to 1100 */
	assert_int_equal(wr(x, &b, FA, OB), -EINPROGRESS);
	x->now = 1020;
	lt_owner_exit(x->t, OA, OP, x->now);
	expect_none(x);
	v = holder(x, FA);
	assert_int_equal(v.owner, OP);
	assert_int_equal(v.handles, 0);
	assert_int_equal(v.lease_until, 1100);
	assert_int_equal(v.since, 1000);
	assert_int_equal(lt_next_deadline(x->t), 1100);
	/* The heir's write re-enters (n=$(cat c); echo ... > c). */
	assert_int_equal(wr(x, &p, FA, OP), 0);
	assert_int_equal(holder(x, FA).handles, 1);
	assert_int_equal(rel(x, FA, OP, true), 0);
	expect_decided(x, &b, 0);
	assert_int_equal(rel(x, FA, OB, true), 0);

	/* Again, and this time the heir exits without heir: the lease ends. */
	assert_int_equal(rd(x, &a, FA, OC, 100), 0);
	assert_int_equal(rel(x, FA, OC, false), 0);
	assert_int_equal(wr(x, &b, FA, OB), -EINPROGRESS);
	lt_owner_exit(x->t, OC, OP, x->now);
	assert_int_equal(holder(x, FA).owner, OP);
	lt_owner_exit(x->t, OP, 0, x->now);
	expect_decided(x, &b, 0);
	assert_int_equal(rel(x, FA, OB, true), 0);

	/* An heir exiting with an heir passes it on, same deadline. */
	assert_int_equal(rd(x, &a, FA, OD, 100), 0);
	assert_int_equal(rel(x, FA, OD, false), 0);
	lt_owner_exit(x->t, OD, 40, x->now);
	lt_owner_exit(x->t, 40, 41, x->now + 5);
	v = holder(x, FA);
	assert_int_equal(v.owner, 41);
	assert_int_equal(v.lease_until, x->now + 100);
	mk(&p2, FA, 41, LT_EXCL, LT_F_WRITE, 0, 0);
	assert_int_equal(acq(x, &p2), 0);
}

static void test_exit_without_heir(void **state)
{
	struct fx *x = *state;
	struct lt_request a, b, c, aw;

	assert_int_equal(rd(x, &a, FA, OA, 100), 0);
	assert_int_equal(rel(x, FA, OA, false), 0);
	assert_int_equal(wr(x, &b, FA, OB), -EINPROGRESS);
	/* A also waits for FB: that wait fails with the exit. */
	assert_int_equal(wr(x, &c, FB, OC), 0);
	assert_int_equal(wr(x, &aw, FB, OA), -EINPROGRESS);
	x->now = 1010;
	lt_owner_exit(x->t, OA, 0, x->now);
	expect_decided(x, &aw, -EINTR);
	expect_decided(x, &b, 0);
	expect_none(x);
	assert_int_equal(stats(x, FB).fail_intr, 1);
	assert_int_equal(nwait(x, FB), 0);
	assert_int_equal(lt_next_deadline(x->t), UINT64_MAX);
	/* Exiting twice, or an unknown owner, changes nothing. */
	lt_owner_exit(x->t, OA, 0, x->now);
	lt_owner_exit(x->t, 999, 0, x->now);
	expect_none(x);
	assert_int_equal(holder(x, FA).owner, OB);
}

static void test_exit_with_handles_open(void **state)
{
	struct fx *x = *state;
	struct lt_request a, b;
	struct lt_holder_view v;

	/* FUSE may report the exit before the release of the open file. */
	assert_int_equal(rd(x, &a, FA, OA, 100), 0);
	assert_int_equal(wr(x, &b, FA, OB), -EINPROGRESS);
	lt_owner_exit(x->t, OA, OP, x->now);
	v = holder(x, FA);
	assert_int_equal(v.owner, OA);
	assert_int_equal(v.handles, 1);
	/* A dead owner asks for nothing more. */
	struct lt_request late;
	assert_int_equal(rd(x, &late, FB, OA, 100), -EINTR);
	x->now = 1200;
	assert_int_equal(rel(x, FA, OA, false), 0);
	v = holder(x, FA);
	assert_int_equal(v.owner, OP);
	assert_int_equal(v.handles, 0);
	assert_int_equal(v.lease_until, 1300);
	expect_none(x);
	lt_tick(x->t, 1300);
	expect_decided(x, &b, 0);
	assert_int_equal(rel(x, FA, OB, true), 0);
	assert_int_equal(lt_file_count(x->t), 0);
}

static void test_exit_with_handles_open_no_heir(void **state)
{
	struct fx *x = *state;
	struct lt_request a, b;

	/* An exited owner never gets a lease itself. */
	assert_int_equal(rd(x, &a, FA, OA, 100), 0);
	assert_int_equal(wr(x, &b, FA, OB), -EINPROGRESS);
	lt_owner_exit(x->t, OA, 0, x->now);
	expect_none(x);
	assert_int_equal(rel(x, FA, OA, false), 0);
	expect_decided(x, &b, 0);
}

static void test_exit_with_handles_heir_gone_meanwhile(void **state)
{
	struct fx *x = *state;
	struct lt_request a, b, c;

	assert_int_equal(rd(x, &a, FA, OA, 100), 0);
	assert_int_equal(wr(x, &b, FA, OB), -EINPROGRESS);
	lt_owner_exit(x->t, OA, OP, x->now);
	lt_owner_exit(x->t, OP, 0, x->now);
	assert_int_equal(rel(x, FA, OA, false), 0);
	expect_decided(x, &b, 0);
	assert_int_equal(rel(x, FA, OB, true), 0);

	/* The heir went, naming its own heir: the lease travels on. */
	assert_int_equal(rd(x, &a, FA, OC, 100), 0);
	assert_int_equal(wr(x, &b, FA, OB), -EINPROGRESS);
	lt_owner_exit(x->t, OC, OP + 100, x->now);
	lt_owner_exit(x->t, OP + 100, OG, x->now);
	assert_int_equal(rel(x, FA, OC, false), 0);
	assert_int_equal(holder(x, FA).owner, OG);
	assert_int_equal(holder(x, FA).handles, 0);
	mk(&c, FA, OG, LT_EXCL, LT_F_WRITE, 0, 0);
	assert_int_equal(acq(x, &c), 0);
	assert_int_equal(rel(x, FA, OG, true), 0);
	expect_decided(x, &b, 0);
}

static void test_heir_waiting_gets_in(void **state)
{
	struct fx *x = *state;
	struct lt_request a, b, p;

	/* The parent already waits for the file its child has open. */
	assert_int_equal(rd(x, &a, FA, OA, 100), 0);
	assert_int_equal(wr(x, &b, FA, OB), -EINPROGRESS);
	assert_int_equal(wr(x, &p, FA, OP), -EINPROGRESS);
	lt_owner_exit(x->t, OA, OP, x->now);
	assert_int_equal(rel(x, FA, OA, false), 0);
	expect_decided(x, &p, 0);
	expect_none(x);
	assert_int_equal(holder(x, FA).owner, OP);
	assert_int_equal(holder(x, FA).handles, 1);
	assert_int_equal(nwait(x, FA), 1);
	assert_int_equal(rel(x, FA, OP, true), 0);
	expect_decided(x, &b, 0);
}

static void test_inherited_lease_replaces_heirs_own(void **state)
{
	struct fx *x = *state;
	struct lt_request a, p;

	assert_int_equal(rd(x, &p, FB, OP, 100), 0);
	assert_int_equal(rel(x, FB, OP, false), 0);
	assert_int_equal(rd(x, &a, FA, OA, 100), 0);
	assert_int_equal(rel(x, FA, OA, false), 0);
	lt_owner_exit(x->t, OA, OP, x->now);
	assert_int_equal(holder(x, FA).owner, OP);
	assert_int_equal(nhold(x, FB), 0);
}

static void test_new_owner_same_pid_gets_nothing(void **state)
{
	struct fx *x = *state;
	struct lt_request a, a2;

	/* Owner 50 and then owner 51 were both "pid 1234". */
	assert_int_equal(wr(x, &a, FA, 50), 0);
	lt_owner_exit(x->t, 50, 0, x->now);
	assert_int_equal(wr(x, &a2, FA, 51), -EINPROGRESS);
	assert_int_equal(rel(x, FA, 51, true), -ENOENT);
	assert_int_equal(holder(x, FA).owner, 50);
	assert_int_equal(rel(x, FA, 50, true), 0);
	expect_decided(x, &a2, 0);
	assert_int_equal(holder(x, FA).owner, 51);
}

/* ------------------------------------------------------ renames, unlinks */

static void test_replace(void **state)
{
	struct fx *x = *state;
	struct lt_request a, b, c, b2;
	const struct lt_request *q[4];
	struct lt_holder_view v;

	assert_int_equal(wr(x, &a, FA, OA), 0);
	assert_int_equal(rd(x, &b, FA, OB, 100), -EINPROGRESS);
	assert_int_equal(wr(x, &c, FA, OC), -EINPROGRESS);
	x->now = 1100;
	/* FB is renamed over FA's name: the waiters follow the name. */
	lt_replace(x->t, FA, FB, x->now);
	expect_decided(x, &b, -ESTALE);
	assert_int_equal(b.granted_file, FB);
	expect_none(x);
	assert_int_equal(nwait(x, FA), 0);
	assert_int_equal(lt_waiters(x->t, FB, q, 4), 1);
	assert_ptr_equal(q[0], &c);
	v = holder(x, FB);
	assert_int_equal(v.owner, OB);
	assert_int_equal(v.handles, 0);
	assert_int_equal(v.lease_until, 1100 + LT_RETRY_LEASE_NS);
	/* Holds on the old file are untouched. */
	assert_int_equal(holder(x, FA).owner, OA);
	/* The retried open re-enters the lease at once. */
	assert_int_equal(rd(x, &b2, FB, OB, 100), 0);
	assert_int_equal(rel(x, FB, OB, false), 0); /* lease of 100 */
	assert_int_equal(holder(x, FB).lease_until, 1200);
	lt_tick(x->t, 1200);
	expect_decided(x, &c, -ESTALE);
	assert_int_equal(c.granted_file, FB);
	assert_int_equal(holder(x, FB).owner, OC);
	/* Contention and waits stay with the file that was asked for. */
	struct lt_stats sa = stats(x, FA), sb = stats(x, FB);
	assert_int_equal(sa.contentions, 2);
	assert_int_equal(sa.waits, 2);
	assert_int_equal(sa.wait_min_ns, 100);
	assert_int_equal(sa.wait_max_ns, 200);
	assert_int_equal(sb.contentions, 0);
	assert_int_equal(sb.acquisitions, 3);
}

static void test_replace_long_lease_and_shared(void **state)
{
	struct fx *x = *state;
	struct lt_request a, b, r, h;

	uint64_t long_lease = 2 * LT_RETRY_LEASE_NS;
	assert_int_equal(wr(x, &a, FA, OA), 0);
	assert_int_equal(rd(x, &b, FA, OB, long_lease), -EINPROGRESS);
	mk(&r, FA, OC, LT_SHARED, 0, 0, 0);
	assert_int_equal(acq(x, &r), -EINPROGRESS);
	assert_int_equal(wr(x, &h, FB, OD), 0);
	lt_replace(x->t, FA, FB, x->now);
	expect_none(x);
	assert_int_equal(nwait(x, FB), 2);
	assert_int_equal(rel(x, FB, OD, true), 0);
	expect_decided(x, &b, -ESTALE);
	assert_int_equal(holder(x, FB).lease_until, x->now + long_lease);
	lt_tick(x->t, x->now + long_lease);
	/* A shared waiter gets no lease, only the retry. */
	expect_decided(x, &r, -ESTALE);
	assert_int_equal(nhold(x, FB), 0);
}

static void test_gone(void **state)
{
	struct fx *x = *state;
	struct lt_request a, b, c;

	assert_int_equal(wr(x, &a, FA, OA), 0);
	assert_int_equal(wr(x, &b, FA, OB), -EINPROGRESS);
	mk(&c, FA, OC, LT_EXCL, LT_F_WRITE, 0, 5000);
	assert_int_equal(acq(x, &c), -EINPROGRESS);
	lt_gone(x->t, FA, x->now);
	expect_decided(x, &b, -ESTALE);
	expect_decided(x, &c, -ESTALE);
	assert_int_equal(b.granted_file, 0);
	assert_int_equal(nwait(x, FA), 0);
	assert_int_equal(lt_next_deadline(x->t), UINT64_MAX);
	assert_int_equal(holder(x, FA).owner, OA);
	assert_int_equal(rel(x, FA, OA, true), 0);
	expect_none(x);
	assert_int_equal(lt_file_count(x->t), 0);
}

static void test_replace_onto_own_lease(void **state)
{
	struct fx *x = *state;
	struct lt_request b, a, bw, c;
	const struct lt_request *q[2];

	/* B reads FB (lease) and C queues for FB; B then waits to write FA,
	 * and FB is renamed over FA. */
	assert_int_equal(rd(x, &b, FB, OB, 100), 0);
	assert_int_equal(rel(x, FB, OB, false), 0);
	assert_int_equal(wr(x, &c, FB, OC), -EINPROGRESS);
	assert_int_equal(wr(x, &a, FA, OA), 0);
	assert_int_equal(wr(x, &bw, FA, OB), -EINPROGRESS);
	x->now = 1050;
	lt_replace(x->t, FA, FB, x->now);
	/* B holds the new file already: its retry re-enters at once, ahead of
	 * C, with the lease stretched for it. */
	expect_decided(x, &bw, -ESTALE);
	expect_none(x);
	assert_int_equal(bw.granted_file, FB);
	assert_int_equal(holder(x, FB).owner, OB);
	assert_int_equal(holder(x, FB).lease_until, 1050 + LT_RETRY_LEASE_NS);
	assert_int_equal(lt_next_deadline(x->t), 1050 + LT_RETRY_LEASE_NS);
	assert_int_equal(lt_waiters(x->t, FB, q, 2), 1);
	assert_ptr_equal(q[0], &c);
	assert_int_equal(lt_cancel(x->t, &c, x->now), 0);
	expect_decided(x, &c, -EINTR);
	/* Replacing a file nobody waits for moves nobody, but still marks it;
	 * replacing a file by itself (or by nothing) does nothing at all. */
	assert_int_equal(lt_mark_count(x->t), 1); /* FA -> FB */
	lt_replace(x->t, FA, FC, x->now);
	lt_replace(x->t, FB, FB, x->now);
	lt_replace(x->t, FB, 0, x->now);
	expect_none(x);
	assert_int_equal(lt_file_count(x->t), 2);
	assert_int_equal(lt_mark_count(x->t), 1); /* FA -> FC now */
	struct lt_request d;
	assert_int_equal(rd(x, &d, FA, OD, 100), -ESTALE);
	assert_int_equal(d.granted_file, FC);
}

static void test_exit_naming_dead_heir(void **state)
{
	struct fx *x = *state;
	struct lt_request a, p, c;

	/* P exits with a file still open; its own heir is G. */
	assert_int_equal(rd(x, &a, FA, OA, 100), 0);
	lt_owner_exit(x->t, OA, OP, x->now);
	assert_int_equal(wr(x, &p, FB, OP), 0);
	lt_owner_exit(x->t, OP, OG, x->now);
	/* C's exit is reported naming P, gone already: G inherits. */
	assert_int_equal(rd(x, &c, FC, OC, 100), 0);
	assert_int_equal(rel(x, FC, OC, false), 0);
	lt_owner_exit(x->t, OC, OP, x->now);
	assert_int_equal(holder(x, FC).owner, OG);
	/* And A's bequest travelled from P to G as well. */
	assert_int_equal(rel(x, FA, OA, false), 0);
	assert_int_equal(holder(x, FA).owner, OG);
	assert_int_equal(nhold(x, FC), 0); /* G keeps one lease, the newest */
	assert_int_equal(rel(x, FB, OP, true), 0);
	assert_int_equal(nhold(x, FB), 0);
}

/* ------------------------------------------------- marks: late opens */

static void test_forward_late_open_free(void **state)
{
	struct fx *x = *state;
	struct lt_request b, b2, c;
	struct lt_holder_view v;

	/* FA was read and renamed over long ago; nobody waits for anything. */
	assert_int_equal(rd(x, &b, FA, OA, 100), 0);
	assert_int_equal(rel(x, FA, OA, false), 0);
	lt_tick(x->t, 1100);
	lt_replace(x->t, FA, FB, x->now);
	assert_int_equal(lt_mark_count(x->t), 1);
	assert_int_equal(lt_file_count(x->t), 0);
	/* B's open of FA arrives late: it is an open of FB. */
	x->now = 2000;
	assert_int_equal(rd(x, &b, FA, OB, 100), -ESTALE);
	assert_int_equal(b.status, -ESTALE);
	assert_int_equal(b.state, LT_REQ_DONE);
	assert_int_equal(b.granted_file, FB);
	expect_none(x);
	assert_int_equal(nhold(x, FA), 0);
	v = holder(x, FB);
	assert_int_equal(v.owner, OB);
	assert_int_equal(v.handles, 0);
	assert_int_equal(v.lease_until, 2000 + LT_RETRY_LEASE_NS);
	/* The kernel's retry opens FB and re-enters at once, ahead of C. */
	assert_int_equal(wr(x, &c, FB, OC), -EINPROGRESS);
	x->now = 2010;
	assert_int_equal(rd(x, &b2, FB, OB, 100), 0);
	assert_int_equal(b2.granted_file, FB);
	assert_int_equal(holder(x, FB).handles, 1);
	assert_int_equal(rel(x, FB, OB, false), 0);
	assert_int_equal(holder(x, FB).lease_until, 2110);
	lt_tick(x->t, 2110);
	expect_decided(x, &c, 0);
	/* The grant counted for FB, not for FA; the retry is a second one. */
	assert_int_equal(stats(x, FA).acquisitions, 1);
	assert_int_equal(stats(x, FB).acquisitions, 3);
	assert_int_equal(stats(x, FA).contentions, 0);
	/* A late write is forwarded the same way. */
	struct lt_request d;
	assert_int_equal(wr(x, &d, FA, OD), -EINPROGRESS);
	assert_int_equal(nwait(x, FA), 0);
	assert_int_equal(nwait(x, FB), 1);
	assert_int_equal(stats(x, FA).contentions, 1);
	assert_int_equal(rel(x, FB, OC, true), 0);
	expect_decided(x, &d, -ESTALE);
	assert_int_equal(d.granted_file, FB);
	assert_int_equal(holder(x, FB).owner, OD);
	assert_int_equal(holder(x, FB).handles, 0);
	assert_int_equal(stats(x, FA).waits, 1);
}

static void test_forward_parks_behind_holder(void **state)
{
	struct fx *x = *state;
	struct lt_request a, b, b2, c, n, bs;
	const struct lt_request *q[4];

	/* A holds FB, which has replaced FA; B's open of FA arrives late. */
	assert_int_equal(wr(x, &a, FB, OA), 0);
	lt_replace(x->t, FA, FB, x->now);
	assert_int_equal(rd(x, &b, FA, OB, 100), -EINPROGRESS);
	assert_int_equal(b.state, LT_REQ_WAITING);
	assert_int_equal(nwait(x, FA), 0);
	assert_int_equal(lt_waiters(x->t, FB, q, 4), 1);
	assert_ptr_equal(q[0], &b);
	/* FIFO holds on the new file: C, arriving later, queues behind B. */
	assert_int_equal(wr(x, &c, FB, OC), -EINPROGRESS);
	/* A non-blocking late write fails; so does a late non-blocking read
	 * while A writes, and A's handle is no lease. */
	mk(&n, FA, OD, LT_EXCL, LT_F_WRITE | LT_F_NONBLOCK, 0, 0);
	assert_int_equal(acq(x, &n), -EAGAIN);
	mk(&n, FA, OD, LT_EXCL, LT_F_NONBLOCK, 100, 0);
	assert_int_equal(acq(x, &n), -EAGAIN);
	assert_int_equal(n.granted_file, 0);
	assert_int_equal(stats(x, FA).fail_eagain, 2);
	assert_int_equal(stats(x, FB).fail_eagain, 0);
	expect_none(x);
	x->now = 1300;
	assert_int_equal(rel(x, FB, OA, true), 0);
	expect_decided(x, &b, -ESTALE);
	expect_none(x);
	assert_int_equal(b.granted_file, FB);
	assert_int_equal(holder(x, FB).owner, OB);
	assert_int_equal(holder(x, FB).lease_until, 1300 + LT_RETRY_LEASE_NS);
	assert_int_equal(stats(x, FA).contentions, 1);
	assert_int_equal(stats(x, FA).wait_max_ns, 300);
	/* The retry re-enters at once although C still waits. */
	assert_int_equal(rd(x, &b2, FB, OB, 100), 0);
	assert_int_equal(nwait(x, FB), 1);
	assert_int_equal(rel(x, FB, OB, false), 0);
	lt_tick(x->t, 1400);
	expect_decided(x, &c, 0);
	/* A shared late open gets the retry but no lease. */
	assert_int_equal(rel(x, FB, OC, true), 0);
	mk(&bs, FA, OD, LT_SHARED, 0, 100, 0);
	assert_int_equal(acq(x, &bs), -ESTALE);
	assert_int_equal(bs.granted_file, FB);
	assert_int_equal(nhold(x, FB), 0);
}

static void test_forward_chain(void **state)
{
	struct fx *x = *state;
	struct lt_request b, b2, c;

	/* Two renames over the name before the late open arrives. */
	lt_replace(x->t, FA, FB, x->now);
	lt_replace(x->t, FB, FC, x->now);
	assert_int_equal(lt_mark_count(x->t), 2);
	assert_int_equal(rd(x, &b, FA, OB, 100), -ESTALE);
	assert_int_equal(b.granted_file, FC);
	assert_int_equal(holder(x, FC).owner, OB);
	assert_int_equal(nhold(x, FB), 0);
	assert_int_equal(rd(x, &b2, FC, OB, 100), 0);
	/* From the middle of the chain, too, while B holds the end. */
	assert_int_equal(wr(x, &c, FB, OC), -EINPROGRESS);
	assert_int_equal(nwait(x, FC), 1);
	assert_int_equal(rel(x, FC, OB, false), 0);
	expect_none(x);
	lt_tick(x->t, x->now + 100);
	expect_decided(x, &c, -ESTALE);
	assert_int_equal(c.granted_file, FC);
	/* A file renamed back over the name is current again: no loop. */
	lt_replace(x->t, FC, FA, x->now);
	assert_int_equal(lt_mark_count(x->t), 2); /* FB -> FC -> FA */
	struct lt_request d, e;
	assert_int_equal(wr(x, &d, FA, OD), 0);
	assert_int_equal(d.granted_file, FA);
	assert_int_equal(wr(x, &e, FB, 30), -EINPROGRESS);
	assert_int_equal(nwait(x, FA), 1);
}

static void test_forward_long_chain_is_bounded(void **state)
{
	struct fx *x = *state;
	enum { N = LT_FORWARD_MAX + 10 };
	struct lt_request r;

	for (lt_file_t i = 0; i < N; i++)
		lt_replace(x->t, 0x500 + i, 0x500 + i + 1, x->now);
	assert_int_equal(lt_mark_count(x->t), N);
	/* The walk stops after LT_FORWARD_MAX hops and uses that file. */
	assert_int_equal(rd(x, &r, 0x500, OA, 0), -ESTALE);
	assert_int_equal(r.granted_file, 0x500 + LT_FORWARD_MAX);
	assert_int_equal(rd(x, &r, 0x500 + 20, OB, 0), -ESTALE);
	assert_int_equal(r.granted_file, 0x500 + N);
}

static void test_gone_mark(void **state)
{
	struct fx *x = *state;
	struct lt_request a, b, b2, c, d;

	assert_int_equal(rd(x, &a, FA, OA, 100), 0);
	assert_int_equal(rel(x, FA, OA, false), 0);
	lt_tick(x->t, 1100);
	lt_gone(x->t, FA, x->now);
	assert_int_equal(lt_mark_count(x->t), 1);
	/* A late open of the removed file: retry by name, no lease. */
	assert_int_equal(rd(x, &b, FA, OB, 100), -ESTALE);
	assert_int_equal(b.granted_file, 0);
	assert_int_equal(lt_file_count(x->t), 0);
	assert_int_equal(wr(x, &c, FA, OC), -ESTALE);
	assert_int_equal(lt_file_count(x->t), 0);
	/* B's retry reached the file again (through /proc/PID/fd): it is
	 * not refused twice, it opens the file itself. */
	assert_int_equal(rd(x, &b2, FA, OB, 100), 0);
	assert_int_equal(b2.granted_file, FA);
	assert_int_equal(rel(x, FA, OB, false), 0);
	/* Only that one request: B's next open of FA is refused again. */
	assert_int_equal(holder(x, FA).owner, OB);
	lt_tick(x->t, x->now + 100);
	assert_int_equal(rd(x, &b2, FA, OB, 100), -ESTALE);
	/* A barrier (unlink, rename over it...) proceeds as ever. */
	mk(&d, FA, OD, LT_EXCL, LT_F_WRITE | LT_F_BARRIER, 0, 0);
	assert_int_equal(acq(x, &d), 0);
	assert_int_equal(d.granted_file, FA);
	assert_int_equal(lt_barrier_done(x->t, FA, OD, x->now), 0);
	/* A chain ending in a removed file is removed too. */
	lt_replace(x->t, FB, FC, x->now);
	lt_gone(x->t, FC, x->now);
	assert_int_equal(rd(x, &d, FB, OD, 100), -ESTALE);
	assert_int_equal(d.granted_file, 0);
	assert_int_equal(nhold(x, FC), 0);
	assert_int_equal(stats(x, FB).acquisitions, 0);
}

static void test_forget_clears_mark(void **state)
{
	struct fx *x = *state;
	struct lt_request a, b, c;

	/* A still has FA open when FB replaces it, then the daemon forgets
	 * FA's inode and the id comes back for a brand-new file. */
	assert_int_equal(rd(x, &a, FA, OA, 100), 0);
	lt_replace(x->t, FA, FB, x->now);
	lt_gone(x->t, FC, x->now);
	assert_int_equal(lt_mark_count(x->t), 2);
	assert_int_equal(rd(x, &b, FA, OB, 100), -ESTALE);
	lt_forget(x->t, FA);
	assert_int_equal(lt_mark_count(x->t), 1);
	/* Only the mark went: A's hold, B's lease and FA's statistics stay. */
	assert_int_equal(holder(x, FA).owner, OA);
	assert_int_equal(holder(x, FA).handles, 1);
	assert_int_equal(holder(x, FB).owner, OB);
	assert_int_equal(stats(x, FA).acquisitions, 1);
	/* An open of the id is ordinary now: it waits for A on FA. */
	assert_int_equal(wr(x, &c, FA, OC), -EINPROGRESS);
	assert_int_equal(nwait(x, FA), 1);
	assert_int_equal(nwait(x, FB), 0);
	assert_int_equal(rel(x, FA, OA, false), 0);
	lt_tick(x->t, x->now + 100);
	expect_decided(x, &c, 0);
	assert_int_equal(c.granted_file, FA);
	lt_forget(x->t, FC);
	lt_forget(x->t, FC); /* forgetting an unmarked file is harmless */
	assert_int_equal(lt_mark_count(x->t), 0);
	assert_int_equal(wr(x, &c, FC, OC), 0);
}

static void test_forget_splices_chain(void **state)
{
	struct fx *x = *state;
	struct lt_request r;
	enum { F1 = 0x701, F2, F3, F4, F5, F6 };

	/* F1 -> F2 -> F3: the daemon forgets F2 while a late open of F1 is
	 * still on its way. It must still reach F3. */
	lt_replace(x->t, F1, F2, x->now);
	lt_replace(x->t, F2, F3, x->now);
	lt_forget(x->t, F2);
	assert_int_equal(lt_mark_count(x->t), 1);
	assert_int_equal(rd(x, &r, F1, OA, 0), -ESTALE);
	assert_int_equal(r.granted_file, F3);
	/* F2's id now comes back as a brand-new file: an ordinary open. */
	assert_int_equal(wr(x, &r, F2, OB), 0);
	assert_int_equal(r.granted_file, F2);
	/* Forgetting the current file changes nothing: it keeps its name. */
	lt_forget(x->t, F3);
	assert_int_equal(rd(x, &r, F1, OC, 0), -EINPROGRESS);
	assert_int_equal(nwait(x, F3), 1);
	assert_int_equal(lt_cancel(x->t, &r, x->now), 0);
	expect_decided(x, &r, -EINTR);

	/* F4 -> F5, F5 removed, F5 forgotten: F4 is removed too. */
	lt_replace(x->t, F4, F5, x->now);
	lt_gone(x->t, F5, x->now);
	lt_forget(x->t, F5);
	assert_int_equal(rd(x, &r, F4, OD, 0), -ESTALE);
	assert_int_equal(r.granted_file, 0);
	assert_int_equal(wr(x, &r, F5, OD), 0);

	/* The chains' records all go once their files are forgotten. */
	lt_forget(x->t, F1);
	lt_forget(x->t, F4);
	assert_int_equal(lt_mark_count(x->t), 0);
	/* And a file renamed back over its own successor does not loop. */
	lt_replace(x->t, F6, F1, x->now);
	lt_replace(x->t, F1, F6, x->now);
	assert_int_equal(lt_mark_count(x->t), 1);
	assert_int_equal(rd(x, &r, F1, 30, 0), -ESTALE);
	assert_int_equal(r.granted_file, F6);
	assert_int_equal(rd(x, &r, F6, 30, 0), 0); /* the retry re-enters */
	assert_int_equal(holder(x, F6).handles, 1);
}

static void test_barrier_not_forwarded(void **state)
{
	struct fx *x = *state;
	struct lt_request a, o, b, b2;

	/* A holds the old file, O the new one. */
	assert_int_equal(wr(x, &a, FA, OA), 0);
	assert_int_equal(wr(x, &o, FB, OB), 0);
	lt_replace(x->t, FA, FB, x->now);
	/* A barrier on FA concerns FA: it waits for A there, not for B. */
	mk(&b, FA, OC, LT_EXCL, LT_F_WRITE | LT_F_BARRIER, 0, 0);
	assert_int_equal(acq(x, &b), -EINPROGRESS);
	assert_int_equal(nwait(x, FA), 1);
	assert_int_equal(nwait(x, FB), 0);
	assert_int_equal(rel(x, FA, OA, true), 0);
	expect_decided(x, &b, 0);
	assert_int_equal(b.granted_file, FA);
	assert_int_equal(holder(x, FA).owner, OC);
	assert_int_equal(lt_barrier_done(x->t, FA, OC, x->now), 0);
	/* And on a free old file it is granted there at once. */
	mk(&b2, FA, OD, LT_EXCL, LT_F_WRITE | LT_F_BARRIER, 0, 0);
	assert_int_equal(acq(x, &b2), 0);
	assert_int_equal(b2.granted_file, FA);
	assert_int_equal(holder(x, FA).owner, OD);
	assert_int_equal(holder(x, FB).owner, OB);
	assert_int_equal(holder(x, FB).handles, 1);
}

static void test_forward_exceptions(void **state)
{
	struct fx *x = *state;
	struct lt_request a, a2, b, b2, d, dr;

	/* A keeps FA open and renames FB over it: A re-enters FA (say through
	 * /proc/self/fd), nothing forwards it. */
	assert_int_equal(rd(x, &a, FA, OA, 100), 0);
	lt_replace(x->t, FA, FB, x->now);
	assert_int_equal(rd(x, &a2, FA, OA, 100), 0);
	assert_int_equal(a2.granted_file, FA);
	assert_int_equal(holder(x, FA).handles, 2);
	assert_int_equal(nhold(x, FB), 0);

	/* B's write is forwarded and its retry reaches FA again (another name
	 * of the same file): served on FA, and the lease the forward made on
	 * FB is not kept from others. */
	assert_int_equal(rel(x, FA, OA, false), 0);
	assert_int_equal(rel(x, FA, OA, false), 0);
	lt_tick(x->t, x->now + 100);
	assert_int_equal(wr(x, &b, FA, OB), -ESTALE);
	assert_int_equal(holder(x, FB).owner, OB);
	struct lt_request c;
	assert_int_equal(wr(x, &c, FB, OC), -EINPROGRESS);
	assert_int_equal(wr(x, &b2, FA, OB), 0);
	assert_int_equal(b2.granted_file, FA);
	expect_decided(x, &c, 0);
	assert_int_equal(holder(x, FB).owner, OC);
	assert_int_equal(rel(x, FB, OC, true), 0);
	assert_int_equal(rel(x, FA, OB, true), 0);
	assert_int_equal(lt_file_count(x->t), 0);

	/* D's lease on FB ran out before its retry, and FB was replaced by FC
	 * meanwhile: the retry still gets FB rather than a second -ESTALE. */
	x->now += 1000;
	assert_int_equal(rd(x, &d, FA, OD, 100), -ESTALE);
	assert_int_equal(d.granted_file, FB);
	x->now += LT_RETRY_LEASE_NS;
	lt_tick(x->t, x->now);
	assert_int_equal(nhold(x, FB), 0);
	lt_replace(x->t, FB, FC, x->now);
	assert_int_equal(rd(x, &dr, FB, OD, 100), 0);
	assert_int_equal(dr.granted_file, FB);
	/* An owner that exits while armed leaves nothing behind. */
	assert_int_equal(rel(x, FB, OD, false), 0);
	lt_tick(x->t, x->now + 100);
	assert_int_equal(rd(x, &d, FA, 40, 0), -ESTALE);
	assert_int_equal(d.granted_file, FC);
	assert_int_equal(holder(x, FC).owner, 40); /* lease_ns 0 still gets one */
	lt_owner_exit(x->t, 40, 0, x->now);
	assert_int_equal(lt_file_count(x->t), 0);
}

static void test_forward_onto_own_hold(void **state)
{
	struct fx *x = *state;
	struct lt_request b, bl, c;

	/* B holds FB open already when its late open of FA arrives: the
	 * open is answered at once, ahead of C, and no lease is made. */
	assert_int_equal(rd(x, &b, FB, OB, 100), 0);
	assert_int_equal(wr(x, &c, FB, OC), -EINPROGRESS);
	lt_replace(x->t, FA, FB, x->now);
	assert_int_equal(rd(x, &bl, FA, OB, 100), -ESTALE);
	assert_int_equal(bl.granted_file, FB);
	assert_int_equal(holder(x, FB).handles, 1);
	expect_none(x);
	assert_int_equal(stats(x, FB).acquisitions, 2);
	assert_int_equal(rd(x, &bl, FB, OB, 100), 0); /* the retry */
	assert_int_equal(holder(x, FB).handles, 2);
	/* And with its lease there, the lease is stretched for the retry. */
	assert_int_equal(rel(x, FB, OB, false), 0);
	assert_int_equal(rel(x, FB, OB, false), 0);
	assert_int_equal(holder(x, FB).lease_until, x->now + 100);
	x->now += 50;
	assert_int_equal(rd(x, &bl, FA, OB, 100), -ESTALE);
	assert_int_equal(holder(x, FB).lease_until, x->now + LT_RETRY_LEASE_NS);
	assert_int_equal(nwait(x, FB), 1);
}

/* ------------------------------------------------------------------ peeks */

static void test_peek_beside_readers(void **state)
{
	struct fx *x = *state;
	struct lt_request a, b, p, w;
	struct lt_stats s;

	/* A read FA and holds a lease: B's non-blocking read peeks. */
	assert_int_equal(rd(x, &a, FA, OA, 100), 0);
	assert_int_equal(rel(x, FA, OA, false), 0);
	assert_int_equal(rd(x, &b, FB, OB, 100), 0);
	assert_int_equal(rel(x, FB, OB, false), 0); /* B's own lease on FB */
	mk(&p, FA, OB, LT_EXCL, LT_F_NONBLOCK, 100, 0);
	assert_int_equal(acq(x, &p), LT_PEEK);
	assert_int_equal(p.status, LT_PEEK);
	assert_int_equal(p.state, LT_REQ_DONE);
	assert_int_equal(p.granted_file, 0);
	expect_none(x);
	/* Nothing recorded: A still alone with its lease, B's lease kept, and
	 * nothing for B to release. */
	assert_int_equal(holder(x, FA).owner, OA);
	assert_int_equal(holder(x, FA).handles, 0);
	assert_int_equal(holder(x, FB).owner, OB);
	assert_int_equal(rel(x, FA, OB, false), -ENOENT);
	s = stats(x, FA);
	assert_int_equal(s.peeks, 1);
	assert_int_equal(s.acquisitions, 1);
	assert_int_equal(s.fail_eagain, 0);
	assert_int_equal(s.contentions, 0);

	/* A reader with its handle open, and a writer waiting behind it: the
	 * queue does not matter. */
	assert_int_equal(rd(x, &a, FA, OA, 100), 0);
	assert_int_equal(wr(x, &w, FA, OC), -EINPROGRESS);
	assert_int_equal(acq(x, &p), LT_PEEK);
	assert_int_equal(nwait(x, FA), 1);
	assert_int_equal(holder(x, FA).handles, 1);
	/* Readers-writer mode: shared readers and a queued writer. */
	struct lt_request s1, s2, ps, pe;
	mk(&s1, FC, OA, LT_SHARED, 0, 0, 0);
	mk(&s2, FC, OB, LT_SHARED, 0, 0, 0);
	assert_int_equal(acq(x, &s1), 0);
	assert_int_equal(acq(x, &s2), 0);
	assert_int_equal(wr(x, &w, FC, OD), -EINPROGRESS);
	mk(&ps, FC, 30, LT_SHARED, LT_F_NONBLOCK, 0, 0);
	assert_int_equal(acq(x, &ps), LT_PEEK);
	mk(&pe, FC, 30, LT_EXCL, LT_F_NONBLOCK, 100, 0);
	assert_int_equal(acq(x, &pe), LT_PEEK);
	assert_int_equal(nhold(x, FC), 2);
	assert_int_equal(stats(x, FC).peeks, 2);
	/* A peek that could be granted is simply granted. */
	struct lt_request g;
	mk(&g, FB, OB, LT_EXCL, LT_F_NONBLOCK, 100, 0);
	assert_int_equal(acq(x, &g), 0);
	assert_int_equal(holder(x, FB).handles, 1);
}

static void test_peek_refused_beside_writer(void **state)
{
	struct fx *x = *state;
	struct lt_request a, ar, p, bw, bb;

	/* A writes FA: a non-blocking read fails as ever. */
	assert_int_equal(wr(x, &a, FA, OA), 0);
	mk(&p, FA, OB, LT_EXCL, LT_F_NONBLOCK, 100, 0);
	assert_int_equal(acq(x, &p), -EAGAIN);
	mk(&p, FA, OB, LT_SHARED, LT_F_NONBLOCK, 0, 0);
	assert_int_equal(acq(x, &p), -EAGAIN);
	assert_int_equal(p.granted_file, 0);
	/* A reads too: its write handle is still open, still writing. */
	assert_int_equal(rd(x, &ar, FA, OA, 100), 0);
	mk(&p, FA, OB, LT_EXCL, LT_F_NONBLOCK, 100, 0);
	assert_int_equal(acq(x, &p), -EAGAIN);
	/* Its write closed, only the read is left: peeks may look. */
	assert_int_equal(rel(x, FA, OA, true), 0);
	assert_int_equal(acq(x, &p), LT_PEEK);
	/* Non-blocking writes and barriers never peek. */
	mk(&bw, FA, OB, LT_EXCL, LT_F_WRITE | LT_F_NONBLOCK, 0, 0);
	assert_int_equal(acq(x, &bw), -EAGAIN);
	mk(&bb, FA, OB, LT_EXCL, LT_F_BARRIER | LT_F_NONBLOCK, 0, 0);
	assert_int_equal(acq(x, &bb), -EAGAIN);
	assert_int_equal(rel(x, FA, OA, false), 0); /* now a lease */
	assert_int_equal(acq(x, &bw), -EAGAIN);
	assert_int_equal(acq(x, &bb), -EAGAIN);
	assert_int_equal(acq(x, &p), LT_PEEK);
	/* A barrier in progress (a rename over it) is a modification. */
	struct lt_request b;
	mk(&b, FA, OA, LT_EXCL, LT_F_WRITE | LT_F_BARRIER, 0, 0);
	assert_int_equal(acq(x, &b), 0);
	assert_int_equal(acq(x, &p), -EAGAIN);
	assert_int_equal(lt_barrier_done(x->t, FA, OA, x->now), 0);
	assert_int_equal(nhold(x, FA), 0);
	struct lt_stats s = stats(x, FA);
	assert_int_equal(s.peeks, 2);
	assert_int_equal(s.fail_eagain, 8);
	/* A write whose most recent grant is a write, even with a read handle
	 * opened before it and the write handle reported closed first. */
	assert_int_equal(rd(x, &ar, FB, OA, 100), 0);
	assert_int_equal(wr(x, &a, FB, OA), 0);
	assert_int_equal(rel(x, FB, OA, true), 0);
	mk(&p, FB, OB, LT_EXCL, LT_F_NONBLOCK, 100, 0);
	assert_int_equal(acq(x, &p), -EAGAIN);
}

static void test_peek_forwarded(void **state)
{
	struct fx *x = *state;
	struct lt_request a, p, p2;

	/* A reads FB, which replaced FA; B's late non-blocking read of FA
	 * cannot look at FB through FA: its retry will. */
	assert_int_equal(rd(x, &a, FB, OA, 100), 0);
	lt_replace(x->t, FA, FB, x->now);
	mk(&p, FA, OB, LT_EXCL, LT_F_NONBLOCK, 100, 0);
	assert_int_equal(acq(x, &p), -ESTALE);
	assert_int_equal(p.granted_file, 0);
	assert_int_equal(holder(x, FB).owner, OA);
	mk(&p2, FB, OB, LT_EXCL, LT_F_NONBLOCK, 100, 0);
	assert_int_equal(acq(x, &p2), LT_PEEK);
	assert_int_equal(stats(x, FB).peeks, 1);
	assert_int_equal(stats(x, FA).peeks, 0);
}

/* ------------------------------------------ simulation: rename-based RMW */

/* Ten processes each run, over and over:
 *     n = int(open("counter").read())
 *     open("counter.tmp.PID", "w").write(str(n + 1))
 *     os.rename("counter.tmp.PID", "counter")
 * with the kernel's name lookup and the open it leads to as separate steps,
 * so that opens arrive late for files that a rename has just replaced. The
 * daemon forgets replaced files once nothing refers to them, and reuses
 * their ids for new temporary files. */

enum { SIM_P = 10, SIM_ROUNDS = 25, SIM_IDS = 4096 };

enum sim_state {
	S_LOOKUP,       /* resolve "counter" */
	S_OPEN,         /* the open of what the lookup found */
	S_WAIT,         /* parked */
	S_CLOSE,        /* read done: close */
	S_TMP,          /* create, write and close the temporary */
	S_BARRIER,      /* the rename's barrier on what "counter" is now */
	S_RENAME,       /* rename, tell the table, lift the barrier */
	S_DONE,
};

struct sim_proc {
	lt_owner_t owner;
	enum sim_state st;
	lt_file_t looked;
	bool retrying;          /* this open is the kernel's retry */
	lt_file_t read_file;
	long value;
	lt_file_t tmp;
	int rounds;
	struct lt_request req;
};

struct sim {
	struct fx *x;
	uint64_t rng;
	struct sim_proc p[SIM_P];
	lt_file_t cur;          /* what "counter" names */
	long val[SIM_IDS];      /* content per file id */
	lt_file_t next_id;
	lt_file_t retired[SIM_IDS], free_ids[SIM_IDS];
	size_t nretired, nfree;
	unsigned late, stale, parked, forgotten, reused;
};

static uint64_t sim_rnd(struct sim *s, uint64_t n)
{
	s->rng = s->rng * 6364136223846793005ull + 1442695040888963407ull;
	return (s->rng >> 33) % n;
}

/* The read open of p was answered. */
static void sim_answered(struct sim *s, struct sim_proc *p, int status)
{
	if (status == -ESTALE) {
		/* At most one -ESTALE per open: the kernel retries once. */
		assert_false(p->retrying);
		p->retrying = true;
		s->stale++;
		p->st = S_LOOKUP;
		return;
	}
	assert_int_equal(status, 0);
	/* Granted only ever on what the name points to now. */
	assert_int_equal(p->req.granted_file, s->cur);
	p->read_file = s->cur;
	p->value = s->val[s->cur];
	p->retrying = false;
	p->st = S_CLOSE;
}

static void sim_drain(struct sim *s)
{
	struct lt_request *r;

	while ((r = lt_take_decided(s->x->t))) {
		struct sim_proc *p = NULL;

		for (int i = 0; i < SIM_P; i++)
			if (&s->p[i].req == r)
				p = &s->p[i];
		assert_non_null(p);
		assert_int_equal(p->st, S_WAIT);
		sim_answered(s, p, r->status);
	}
}

static lt_file_t sim_new_id(struct sim *s)
{
	if (s->nfree && sim_rnd(s, 2)) {
		size_t i = sim_rnd(s, s->nfree);
		lt_file_t id = s->free_ids[i];

		s->free_ids[i] = s->free_ids[--s->nfree];
		s->reused++;
		return id;
	}
	assert_true(s->next_id < SIM_IDS);
	return s->next_id++;
}

/* Forgets replaced files nobody can reach any more. */
static void sim_forget(struct sim *s)
{
	for (size_t i = 0; i < s->nretired;) {
		lt_file_t f = s->retired[i];
		bool busy = nhold(s->x, f) || nwait(s->x, f);

		/* The kernel keeps an inode while an open of it is on its
		 * way, parked or not. */
		for (int j = 0; j < SIM_P; j++)
			busy |= (s->p[j].st == S_OPEN && s->p[j].looked == f) ||
				(s->p[j].st == S_WAIT && s->p[j].req.file == f);
		if (busy || sim_rnd(s, 3)) {
			i++;
			continue;
		}
		lt_forget(s->x->t, f);
		s->forgotten++;
		/* The kernel may forget the current file too: it keeps its
		 * name, and the chains leading to it stay. */
		if (sim_rnd(s, 4) == 0)
			lt_forget(s->x->t, s->cur);
		s->retired[i] = s->retired[--s->nretired];
		s->free_ids[s->nfree++] = f;
	}
}

static void sim_step(struct sim *s, struct sim_proc *p)
{
	struct fx *x = s->x;
	int rc;

	switch (p->st) {
	case S_LOOKUP:
		p->looked = s->cur;
		p->st = S_OPEN;
		break;
	case S_OPEN:
		if (p->looked != s->cur)
			s->late++;
		rc = rd(x, &p->req, p->looked, p->owner, 250 * 1000 * 1000);
		if (rc == -EINPROGRESS) {
			/* The kernel's retry lands on the lease: no waiting. */
			assert_false(p->retrying);
			s->parked++;
			p->st = S_WAIT;
			break;
		}
		if (p->retrying)
			assert_int_equal(rc, 0);
		sim_answered(s, p, rc);
		break;
	case S_CLOSE:
		assert_int_equal(rel(x, p->read_file, p->owner, false), 0);
		p->st = S_TMP;
		break;
	case S_TMP: {
		struct lt_request w;

		p->tmp = sim_new_id(s);
		/* A brand-new file: a reused id must not inherit a mark. */
		assert_int_equal(wr(x, &w, p->tmp, p->owner), 0);
		assert_int_equal(w.granted_file, p->tmp);
		s->val[p->tmp] = p->value + 1;
		assert_int_equal(rel(x, p->tmp, p->owner, true), 0);
		p->st = S_BARRIER;
		break;
	}
	case S_BARRIER:
		/* Still the file this process read, and its lease still holds
		 * it: nobody else has been in between. */
		assert_int_equal(s->cur, p->read_file);
		mk(&p->req, s->cur, p->owner, LT_EXCL, LT_F_WRITE | LT_F_BARRIER, 0, 0);
		assert_int_equal(acq(x, &p->req), 0);
		p->st = S_RENAME;
		break;
	case S_RENAME: {
		lt_file_t old = s->cur;

		assert_int_equal(s->val[old], p->value);
		s->cur = p->tmp;
		lt_replace(x->t, old, p->tmp, x->now);
		assert_int_equal(lt_barrier_done(x->t, old, p->owner, x->now), 0);
		s->retired[s->nretired++] = old;
		p->st = ++p->rounds == SIM_ROUNDS ? S_DONE : S_LOOKUP;
		break;
	}
	case S_WAIT:
	case S_DONE:
		break;
	}
}

/* At most one process is between its read of the counter's current
 * incarnation and its rename: the critical section is exclusive. */
static void sim_check(struct sim *s)
{
	int in = 0;

	for (int i = 0; i < SIM_P; i++) {
		enum sim_state st = s->p[i].st;

		if ((st == S_CLOSE || st == S_TMP || st == S_BARRIER || st == S_RENAME) &&
		    s->p[i].read_file == s->cur)
			in++;
	}
	assert_true(in <= 1);
	assert_true(nhold(s->x, s->cur) <= 1);
}

static void run_rename_sim(struct fx *x, uint64_t seed, struct sim *s)
{
	memset(s, 0, sizeof(*s));
	s->x = x;
	s->rng = seed;
	s->next_id = 0x10;
	s->cur = sim_new_id(s);
	s->val[s->cur] = 0;
	for (int i = 0; i < SIM_P; i++)
		s->p[i].owner = 500 + i;
	for (int steps = 0;; steps++) {
		struct sim_proc *ready[SIM_P];
		int n = 0;

		for (int i = 0; i < SIM_P; i++)
			if (s->p[i].st != S_WAIT && s->p[i].st != S_DONE)
				ready[n++] = &s->p[i];
		if (n == 0)
			break;
		assert_true(steps < 100000);
		x->now += 1 + sim_rnd(s, 5000); /* far below the leases */
		sim_step(s, ready[sim_rnd(s, n)]);
		lt_tick(x->t, x->now);
		sim_drain(s);
		sim_check(s);
		sim_forget(s);
	}
	for (int i = 0; i < SIM_P; i++)
		assert_int_equal(s->p[i].st, S_DONE);
	/* No update lost. */
	assert_int_equal(s->val[s->cur], SIM_P * SIM_ROUNDS);
}

static void test_rename_rmw_simulation(void **state)
{
	struct fx *x = *state;
	struct sim *s = calloc(1, sizeof(*s));
	unsigned late = 0, stale = 0, parked = 0, forgotten = 0, reused = 0;

	assert_non_null(s);
	for (uint64_t seed = 1; seed <= 20; seed++) {
		run_rename_sim(x, seed * 0x9e3779b97f4a7c15ull, s);
		late += s->late;
		stale += s->stale;
		parked += s->parked;
		forgotten += s->forgotten;
		reused += s->reused;
		/* Everything ends: leases run out, the table is empty. */
		x->now += 2 * LT_RETRY_LEASE_NS;
		lt_tick(x->t, x->now);
		assert_int_equal(lt_file_count(x->t), 0);
		for (size_t i = 0; i < s->nretired; i++)
			lt_forget(x->t, s->retired[i]);
		assert_int_equal(lt_mark_count(x->t), 0);
		lt_stats_reset(x->t);
	}
	print_message("    %u late opens, %u -ESTALE, %u parked, %u forgotten, %u reused\n",
		      late, stale, parked, forgotten, reused);
	/* The interesting paths were taken, often. */
	assert_true(late > 100);
	assert_true(stale > 100);
	assert_true(parked > 100);
	assert_true(reused > 100);
	free(s);
}

static int stop_stats(void *arg, lt_file_t file, const struct lt_stats *s)
{
	(void)s;
	*(lt_file_t *)arg = file;
	return -3;
}

static void test_foreach_stops_early(void **state)
{
	struct fx *x = *state;
	struct lt_request a, b;
	lt_file_t seen = 0;
	struct lt_stats s;

	assert_int_equal(wr(x, &a, FA, OA), 0);
	assert_int_equal(wr(x, &b, FB, OA), 0);
	assert_int_equal(lt_foreach_stats(x->t, stop_stats, &seen), -3);
	assert_true(seen == FA || seen == FB);
	s = stats(x, FA);
	assert_int_equal(lt_stats_wait_percentile(&s, 0), 0);
	s.wait_hist[3] = 4;
	s.wait_hist[6] = 1;
	s.waits = 5;
	s.wait_min_ns = 9;
	s.wait_max_ns = 100;
	assert_int_equal(lt_stats_wait_percentile(&s, 0), 15);
	assert_int_equal(lt_stats_wait_percentile(&s, 80), 15);
	/* The top bucket reads the longest wait, not its bound (127). */
	assert_int_equal(lt_stats_wait_percentile(&s, 81), 100);
	assert_int_equal(lt_stats_wait_percentile(&s, 1000), 100);
	/* A histogram that disagrees with min and max (made by hand) still
	 * reads inside them. */
	s.wait_min_ns = 50;
	assert_int_equal(lt_stats_wait_percentile(&s, 50), 50);
}

/* --------------------------------------------------------------- barriers */

static void test_barrier_by_non_holder_waits(void **state)
{
	struct fx *x = *state;
	struct lt_request a, b, c;

	mk(&a, FA, OA, LT_SHARED, 0, 0, 0);
	assert_int_equal(acq(x, &a), 0);
	/* Exclusive whatever class it says. */
	mk(&b, FA, OB, LT_SHARED, LT_F_BARRIER, 0, 0);
	assert_int_equal(acq(x, &b), -EINPROGRESS);
	mk(&c, FA, OC, LT_SHARED, 0, 0, 0);
	assert_int_equal(acq(x, &c), -EINPROGRESS);
	assert_int_equal(rel(x, FA, OA, false), 0);
	expect_decided(x, &b, 0);
	expect_none(x);
	assert_int_equal(holder(x, FA).cls, LT_EXCL);
	assert_int_equal(holder(x, FA).handles, 1);
	assert_int_equal(lt_barrier_done(x->t, FA, OB, x->now), 0);
	expect_decided(x, &c, 0);
	assert_int_equal(lt_barrier_done(x->t, FA, OB, x->now), -ENOENT);
}

static void test_barrier_by_lease_holder(void **state)
{
	struct fx *x = *state;
	struct lt_request a, b, br;

	assert_int_equal(rd(x, &a, FA, OA, 100), 0);
	assert_int_equal(rel(x, FA, OA, false), 0);
	assert_int_equal(wr(x, &b, FA, OB), -EINPROGRESS);
	/* The lease holder renames over its file: it passes, and that ends
	 * the lease. */
	mk(&br, FA, OA, LT_EXCL, LT_F_BARRIER, 0, 0);
	assert_int_equal(acq(x, &br), 0);
	expect_none(x);
	assert_int_equal(holder(x, FA).handles, 1);
	assert_int_equal(lt_barrier_done(x->t, FA, OA, x->now), 0);
	expect_decided(x, &b, 0);
	/* A barrier is no read: it does not end a lease elsewhere. */
	struct lt_request c, cb;
	assert_int_equal(rd(x, &c, FC, OC, 100), 0);
	assert_int_equal(rel(x, FC, OC, false), 0);
	mk(&cb, FB, OC, LT_EXCL, LT_F_BARRIER, 0, 0);
	assert_int_equal(acq(x, &cb), 0);
	assert_int_equal(holder(x, FC).owner, OC);
}

/* ------------------------------------------------------------ statistics */

static void test_stats_scripted(void **state)
{
	struct fx *x = *state;
	struct lt_request a, b, c, d, e;
	struct lt_stats s;

	x->now = 1000;
	assert_int_equal(wr(x, &a, FA, OA), 0);
	assert_int_equal(wr(x, &b, FA, OB), -EINPROGRESS);
	x->now = 1100;
	assert_int_equal(wr(x, &c, FA, OC), -EINPROGRESS);
	x->now = 1300;
	assert_int_equal(rel(x, FA, OA, true), 0); /* B waited 300 */
	expect_decided(x, &b, 0);
	x->now = 1800;
	assert_int_equal(rel(x, FA, OB, true), 0); /* C waited 700 */
	expect_decided(x, &c, 0);
	mk(&d, FA, OD, LT_EXCL, LT_F_WRITE | LT_F_NONBLOCK, 0, 0);
	assert_int_equal(acq(x, &d), -EAGAIN);
	x->now = 2000;
	mk(&e, FA, OP, LT_EXCL, LT_F_WRITE, 0, 2500);
	assert_int_equal(acq(x, &e), -EINPROGRESS);
	lt_tick(x->t, 2500); /* E waited 500 */
	expect_decided(x, &e, -ETIMEDOUT);
	x->now = 3000;
	assert_int_equal(rel(x, FA, OC, true), 0);

	s = stats(x, FA);
	assert_int_equal(s.acquisitions, 3);
	assert_int_equal(s.contentions, 3);
	assert_int_equal(s.waits, 3);
	assert_int_equal(s.wait_total_ns, 1500);
	assert_int_equal(s.wait_min_ns, 300);
	assert_int_equal(s.wait_max_ns, 700);
	assert_int_equal(s.holds, 3);
	assert_int_equal(s.hold_total_ns, 300 + 500 + 1200);
	assert_int_equal(s.hold_max_ns, 1200);
	assert_int_equal(s.fail_eagain, 1);
	assert_int_equal(s.fail_timeout, 1);
	assert_int_equal(s.fail_edeadlk, 0);
	assert_int_equal(s.fail_intr, 0);
	/* 300 and 500 fall in [256, 512), 700 in [512, 1024). */
	assert_int_equal(s.wait_hist[8], 2);
	assert_int_equal(s.wait_hist[9], 1);
	uint32_t sum = 0;
	for (int i = 0; i < LT_HIST_BUCKETS; i++)
		sum += s.wait_hist[i];
	assert_int_equal(sum, 3);
	/* The top of the bucket, [256, 512) or [512, 1024), but never above
	 * the longest wait: 700 is in the second bucket. */
	assert_int_equal(lt_stats_wait_percentile(&s, 50), 511);
	assert_int_equal(lt_stats_wait_percentile(&s, 66), 511);
	assert_int_equal(lt_stats_wait_percentile(&s, 67), 700);
	assert_int_equal(lt_stats_wait_percentile(&s, 99), 700);
	assert_int_equal(lt_stats_wait_percentile(&s, 100), 700);

	struct lt_stats none;
	memset(&none, 0, sizeof(none));
	assert_int_equal(lt_stats_wait_percentile(&none, 99), 0);
	/* A file that never saw contention reports zeros, min included. */
	struct lt_request f;
	assert_int_equal(wr(x, &f, FB, OA), 0);
	s = stats(x, FB);
	assert_int_equal(s.acquisitions, 1);
	assert_int_equal(s.waits, 0);
	assert_int_equal(s.wait_min_ns, 0);
	assert_int_equal(lt_stats_get(x->t, FC, &s), -ENOENT);
}

static void test_stats_hist_extremes(void **state)
{
	struct fx *x = *state;
	struct lt_request a, b, c;
	struct lt_stats s;

	/* A zero wait lands in bucket 0; a huge one in the last bucket. */
	assert_int_equal(wr(x, &a, FA, OA), 0);
	assert_int_equal(wr(x, &b, FA, OB), -EINPROGRESS);
	assert_int_equal(lt_cancel(x->t, &b, x->now), 0);
	assert_int_equal(wr(x, &c, FA, OC), -EINPROGRESS);
	x->now += 1ull << 60;
	assert_int_equal(lt_cancel(x->t, &c, x->now), 0);
	s = stats(x, FA);
	assert_int_equal(s.wait_hist[0], 1);
	assert_int_equal(s.wait_hist[LT_HIST_BUCKETS - 1], 1);
	assert_int_equal(s.wait_min_ns, 0);
	assert_int_equal(s.wait_max_ns, 1ull << 60);
	assert_int_equal(s.fail_intr, 2);
	assert_int_equal(lt_stats_wait_percentile(&s, 50), 1);
	/* The last bucket has no bound: it reads the longest wait. */
	assert_int_equal(lt_stats_wait_percentile(&s, 99), 1ull << 60);
}

/* The true pct-th percentile of sorted waits, nearest rank. */
static uint64_t true_percentile(const uint64_t *w, size_t n, double pct)
{
	size_t rank = (size_t)(pct * (double)n / 100.0);

	if ((double)rank < pct * (double)n / 100.0)
		rank++;
	if (rank == 0)
		rank = 1;
	if (rank > n)
		rank = n;
	return w[rank - 1];
}

/* lockstat prints the 99th percentile beside the longest wait: it must
 * never read above it (nor below the shortest), and it stays an upper
 * estimate within a factor of two. Waits just above a power of two are the
 * case that failed: their bucket's bound is nearly twice the longest. */
static void test_stats_percentile_within_min_max(void **state)
{
	struct fx *x = *state;
	static const uint64_t waits[][4] = {
		{ 129, 130, 131, 132 },
		{ 255712480, 255712480, 255712480, 255712480 },
		{ 3, 5, 1000, 1025 },
		{ 1, 1, 1, 1 },
		{ 2, 4, 8, 16 },
	};

	for (size_t k = 0; k < sizeof(waits) / sizeof(waits[0]); k++) {
		lt_file_t f = FA + 100 + k;
		struct lt_request a, b;
		struct lt_stats s;

		for (size_t i = 0; i < 4; i++) {
			assert_int_equal(wr(x, &a, f, OA), 0);
			assert_int_equal(wr(x, &b, f, OB), -EINPROGRESS);
			x->now += waits[k][i];
			assert_int_equal(rel(x, f, OA, true), 0);
			expect_decided(x, &b, 0);
			assert_int_equal(rel(x, f, OB, true), 0);
		}
		s = stats(x, f);
		assert_int_equal(s.waits, 4);
		for (double pct = 0; pct <= 100; pct += 0.5) {
			uint64_t p = lt_stats_wait_percentile(&s, pct);
			uint64_t t = true_percentile(waits[k], 4, pct);

			assert_true(p <= s.wait_max_ns);
			assert_true(p >= s.wait_min_ns);
			assert_true(p >= t);
			assert_true(p < 2 * t);
		}
		assert_int_equal(lt_stats_wait_percentile(&s, 99), waits[k][3]);
	}
}

static int count_stats(void *arg, lt_file_t file, const struct lt_stats *s)
{
	size_t *n = arg;

	(void)file;
	if (s->acquisitions)
		(*n)++;
	return 0;
}

static int count_files(void *arg, lt_file_t file)
{
	size_t *n = arg;

	(void)file;
	(*n)++;
	return 0;
}

static int stop_at_first(void *arg, lt_file_t file)
{
	*(lt_file_t *)arg = file;
	return 7;
}

static void test_stats_reset(void **state)
{
	struct fx *x = *state;
	struct lt_request a, b, c;
	struct lt_stats s;
	size_t n = 0;

	assert_int_equal(wr(x, &a, FA, OA), 0);
	assert_int_equal(wr(x, &b, FA, OB), -EINPROGRESS);
	assert_int_equal(wr(x, &c, FB, OC), 0);
	assert_int_equal(rel(x, FB, OC, true), 0);
	assert_int_equal(lt_foreach_stats(x->t, count_stats, &n), 0);
	assert_int_equal(n, 2);
	lt_stats_reset(x->t);
	/* Idle files go; busy ones keep a zeroed record. */
	assert_int_equal(lt_stats_get(x->t, FB, &s), -ENOENT);
	s = stats(x, FA);
	assert_int_equal(s.acquisitions, 0);
	assert_int_equal(s.contentions, 0);
	n = 0;
	assert_int_equal(lt_foreach_stats(x->t, count_stats, &n), 0);
	assert_int_equal(n, 0);
	/* The table itself is untouched. */
	assert_int_equal(lt_file_count(x->t), 1);
	x->now = 1040;
	assert_int_equal(rel(x, FA, OA, true), 0);
	expect_decided(x, &b, 0);
	s = stats(x, FA);
	assert_int_equal(s.acquisitions, 1);
	assert_int_equal(s.waits, 1);
	assert_int_equal(s.wait_min_ns, 40);
	assert_int_equal(s.wait_hist[5], 1);
	assert_int_equal(s.holds, 1);

	n = 0;
	assert_int_equal(lt_foreach_file(x->t, count_files, &n), 0);
	assert_int_equal(n, 1);
	lt_file_t first = 0;
	assert_int_equal(lt_foreach_file(x->t, stop_at_first, &first), 7);
	assert_int_equal(first, FA);
}

/* Statistics of a file that never waited, peeked or failed need no more
 * than the file's record; the rest appears with the first such event. The
 * memory checks read glibc's count of bytes in use, over many files so that
 * allocator caches do not blur them; ASan has its own allocator. */
#if defined(__SANITIZE_ADDRESS__)
#define MEM_CHECKS 0
#else
#define MEM_CHECKS 1
#endif

static size_t heap_in_use(void)
{
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
}

/* What a file's statistics must read when only grants and hold ends of
 * known lengths happened. */
static void expect_plain_stats(struct fx *x, lt_file_t f, uint64_t acquisitions,
			       uint64_t holds, uint64_t hold_total,
			       uint64_t hold_max)
{
	struct lt_stats s = stats(x, f), want;

	memset(&want, 0, sizeof(want));
	want.acquisitions = acquisitions;
	want.holds = holds;
	want.hold_total_ns = hold_total;
	want.hold_max_ns = hold_max;
	assert_memory_equal(&s, &want, sizeof(s));
}

static void test_stats_uncontended_without_block(void **state)
{
	struct fx *x = *state;
	enum { N = 2000 };
	struct lt_request r;
	size_t before = 0, after;

	/* Round 0 creates the records; rounds 1 and 2 must add nothing. */
	for (int round = 0; round < 3; round++) {
		if (round == 1)
			before = heap_in_use();
		for (uint64_t i = 0; i < N; i++) {
			uint64_t len = 10 + i + 1000 * (uint64_t)round;

			if (i % 2)
				assert_int_equal(wr(x, &r, 0x300000 + i, OA + i % 3), 0);
			else
				assert_int_equal(rd(x, &r, 0x300000 + i, OA + i % 3, 0), 0);
			x->now += len;
			assert_int_equal(rel(x, 0x300000 + i, OA + i % 3, i % 2), 0);
		}
	}
	after = heap_in_use();
	for (uint64_t i = 0; i < N; i++)
		expect_plain_stats(x, 0x300000 + i, 3, 3,
				   3 * (10 + i) + 1000 + 2000, 10 + i + 2000);
	if (MEM_CHECKS) {
		print_message("    %zd bytes in use per file over two rounds\n",
			      ((ssize_t)after - (ssize_t)before) / N);
		assert_true(after <= before + (size_t)N * 8);
	}
	(void)before;
	(void)after;
}

/* The kinds of event that move the rarer counters. */
enum rare_event { EV_PEEK, EV_EAGAIN, EV_EDEADLK, EV_WAIT };

#define RARE_BASE 0x400000
#define RARE_G 0x3fffff /* the file the deadlock partner holds */

/* Causes one event of `kind` on each of files RARE_BASE .. +n, which OA
 * holds (open, read-only for the peek, written otherwise); `round` counts
 * the earlier calls. */
static void rare_round(struct fx *x, enum rare_event kind, size_t n,
		       unsigned round)
{
	struct lt_request r;

	for (uint64_t i = 0; i < n; i++) {
		lt_file_t f = RARE_BASE + i;

		switch (kind) {
		case EV_PEEK:
			mk(&r, f, OB, LT_EXCL, LT_F_NONBLOCK, 0, 0);
			assert_int_equal(acq(x, &r), LT_PEEK);
			break;
		case EV_EAGAIN:
			mk(&r, f, OB, LT_EXCL, LT_F_WRITE | LT_F_NONBLOCK, 0, 0);
			assert_int_equal(acq(x, &r), -EAGAIN);
			break;
		case EV_EDEADLK:
			/* OB holds RARE_G, which OA waits for. */
			assert_int_equal(wr(x, &r, f, OB), -EDEADLK);
			break;
		case EV_WAIT:
			assert_int_equal(wr(x, &r, f, OB), -EINPROGRESS);
			/* Counted at once; its wait only when decided. */
			assert_int_equal(stats(x, f).contentions, round + 1);
			assert_int_equal(stats(x, f).waits, round);
			x->now += 100 + i;
			assert_int_equal(lt_cancel(x->t, &r, x->now), 0);
			expect_decided(x, &r, -EINTR);
			break;
		}
	}
}

static void test_stats_block_on_first_rare_event(void **state)
{
	struct fx *x = *state;
	enum { N = 1000 };
	const enum rare_event kinds[] = { EV_PEEK, EV_EAGAIN, EV_EDEADLK, EV_WAIT };

	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		enum rare_event kind = kinds[k];
		struct lt_request r, g, ga;
		size_t m0, m1, m2;

		lt_free(x->t);
		x->t = lt_new();
		assert_non_null(x->t);
		for (uint64_t i = 0; i < N; i++) {
			if (kind == EV_PEEK)
				assert_int_equal(rd(x, &r, RARE_BASE + i, OA, 0), 0);
			else
				assert_int_equal(wr(x, &r, RARE_BASE + i, OA), 0);
		}
		if (kind == EV_EDEADLK) {
			assert_int_equal(wr(x, &g, RARE_G, OB), 0);
			assert_int_equal(wr(x, &ga, RARE_G, OA), -EINPROGRESS);
		}
		/* Holding and waiting alone moved none of the rarer counters. */
		for (uint64_t i = 0; i < N; i++)
			expect_plain_stats(x, RARE_BASE + i, 1, 0, 0, 0);

		m0 = heap_in_use();
		rare_round(x, kind, N, 0);
		m1 = heap_in_use();
		rare_round(x, kind, N, 1);
		m2 = heap_in_use();

		for (uint64_t i = 0; i < N; i++) {
			struct lt_stats s = stats(x, RARE_BASE + i), want;

			memset(&want, 0, sizeof(want));
			want.acquisitions = 1;
			switch (kind) {
			case EV_PEEK:
				want.peeks = 2;
				break;
			case EV_EAGAIN:
				want.fail_eagain = 2;
				break;
			case EV_EDEADLK:
				want.fail_edeadlk = 2;
				break;
			case EV_WAIT: {
				/* Waits of 100 + i ns in both rounds. */
				uint64_t d = 100 + i;
				unsigned b = 63 - (unsigned)__builtin_clzll(d);

				want.contentions = 2;
				want.waits = 2;
				want.wait_total_ns = 2 * d;
				want.wait_min_ns = d;
				want.wait_max_ns = d;
				want.fail_intr = 2;
				want.wait_hist[b] = 2;
				break;
			}
			}
			assert_memory_equal(&s, &want, sizeof(s));
		}
		if (kind == EV_EDEADLK) {
			/* RARE_G's waiter is still parked: a contention, no
			 * decided wait yet. */
			struct lt_stats s = stats(x, RARE_G);

			assert_int_equal(s.contentions, 1);
			assert_int_equal(s.waits, 0);
			assert_int_equal(s.wait_min_ns, 0);
		}
		if (MEM_CHECKS) {
			/* The first event of a file allocates its block, with
			 * the histogram; the second allocates nothing. */
			size_t first = (m1 - m0) / N;

			print_message("    kind %d: %zu bytes for the first event, "
				      "%zd for the second, per file\n", (int)kind,
				      first, ((ssize_t)m2 - (ssize_t)m1) / N);
			assert_true(m1 > m0);
			assert_true(first >= LT_HIST_BUCKETS * sizeof(uint32_t) +
				    8 * sizeof(uint64_t));
			assert_true(m2 <= m1 + (size_t)N * 8);
		}
		(void)m0;
		(void)m1;
		(void)m2;
	}
}

static void test_stats_block_freed(void **state)
{
	struct fx *x = *state;
	enum { N = 1000 };
	struct lt_request a, b, p, c;
	struct lt_stats s;
	size_t m0, m1;

	/* Idle files with blocks: each refused once while OA held it. */
	for (uint64_t i = 0; i < N; i++) {
		assert_int_equal(wr(x, &a, RARE_BASE + i, OA), 0);
		mk(&b, RARE_BASE + i, OB, LT_EXCL, LT_F_WRITE | LT_F_NONBLOCK, 0, 0);
		assert_int_equal(acq(x, &b), -EAGAIN);
		assert_int_equal(rel(x, RARE_BASE + i, OA, true), 0);
	}
	assert_int_equal(stats(x, RARE_BASE + 5).fail_eagain, 1);
	/* A busy file with a block: a peek beside a reader. */
	assert_int_equal(rd(x, &a, FA, OA, 0), 0);
	mk(&p, FA, OB, LT_EXCL, LT_F_NONBLOCK, 0, 0);
	assert_int_equal(acq(x, &p), LT_PEEK);
	/* A removed file that the daemon then forgets: its record and block
	 * go at once (see lt_forget); LeakSanitizer would see them leak. */
	assert_int_equal(wr(x, &c, FC, OC), 0);
	mk(&b, FC, OB, LT_EXCL, LT_F_WRITE | LT_F_NONBLOCK, 0, 0);
	assert_int_equal(acq(x, &b), -EAGAIN);
	assert_int_equal(rel(x, FC, OC, true), 0);
	lt_gone(x->t, FC, x->now);
	lt_forget(x->t, FC);
	assert_int_equal(lt_mark_count(x->t), 0);
	assert_int_equal(lt_stats_get(x->t, FC, &s), -ENOENT);
	/* FB keeps its block until lt_free (teardown): LeakSanitizer checks
	 * that lt_free releases it. */
	assert_int_equal(wr(x, &c, FB, OC), 0);
	mk(&b, FB, OB, LT_EXCL, LT_F_WRITE | LT_F_NONBLOCK, 0, 0);
	assert_int_equal(acq(x, &b), -EAGAIN);

	m0 = heap_in_use();
	lt_stats_reset(x->t);
	m1 = heap_in_use();
	for (uint64_t i = 0; i < N; i++)
		assert_int_equal(lt_stats_get(x->t, RARE_BASE + i, &s), -ENOENT);
	assert_int_equal(lt_stats_get(x->t, FC, &s), -ENOENT);
	/* The busy files keep a record, all zeros. */
	s = stats(x, FA);
	struct lt_stats zero;
	memset(&zero, 0, sizeof(zero));
	assert_memory_equal(&s, &zero, sizeof(s));
	if (MEM_CHECKS) {
		/* Each idle file gave back its record and its block. */
		print_message("    %zd bytes freed per idle file\n",
			      ((ssize_t)m0 - (ssize_t)m1) / N);
		assert_true(m0 > m1);
		assert_true((m0 - m1) / N >= LT_HIST_BUCKETS * sizeof(uint32_t) +
			    8 * sizeof(uint64_t));
	}
	(void)m0;
	(void)m1;
	/* A new block starts from zero: one peek is one peek. */
	assert_int_equal(acq(x, &p), LT_PEEK);
	s = stats(x, FA);
	assert_int_equal(s.peeks, 1);
	assert_int_equal(s.acquisitions, 0);
	assert_int_equal(rel(x, FA, OA, false), 0);
	s = stats(x, FA);
	assert_int_equal(s.holds, 1);
	assert_int_equal(s.peeks, 1);
	assert_int_equal(s.fail_eagain, 0);
	/* And the busy FB, with a fresh block after the reset. */
	assert_int_equal(acq(x, &b), -EAGAIN);
	assert_int_equal(stats(x, FB).fail_eagain, 1);
}

/* One contended write: OA holds, OB waits 50 ns. */
static void contend(struct fx *x, lt_file_t f)
{
	struct lt_request a, b;

	assert_int_equal(wr(x, &a, f, OA), 0);
	assert_int_equal(wr(x, &b, f, OB), -EINPROGRESS);
	x->now += 50;
	assert_int_equal(rel(x, f, OA, true), 0);
	expect_decided(x, &b, 0);
	assert_int_equal(rel(x, f, OB, true), 0);
}

/* File ids are inode numbers: once a removed file is forgotten, a new file
 * may get its id, and must not show the old one's figures. */
static void test_forget_removed_starts_clean(void **state)
{
	struct fx *x = *state;
	const lt_file_t lf = FC + 1;
	struct lt_request a, r;
	struct lt_stats s;

	contend(x, FA);
	/* Forgotten with its name: the same file when it comes back. */
	lt_forget(x->t, FA);
	assert_int_equal(stats(x, FA).acquisitions, 2);
	/* Removed, then forgotten: the next FA is another file. */
	lt_gone(x->t, FA, x->now);
	assert_int_equal(stats(x, FA).acquisitions, 2);
	lt_forget(x->t, FA);
	assert_int_equal(lt_stats_get(x->t, FA, &s), -ENOENT);
	assert_int_equal(wr(x, &a, FA, OC), 0);
	assert_int_equal(rel(x, FA, OC, true), 0);
	s = stats(x, FA);
	assert_int_equal(s.acquisitions + s.holds, 2);
	assert_int_equal(s.contentions + s.waits + s.wait_max_ns, 0);

	/* Replaced by a rename: it may live on under another link, so only
	 * the daemon, which sees its link count, says it is dead. */
	contend(x, FB);
	lt_replace(x->t, FB, FC, x->now);
	lt_forget(x->t, FB);
	assert_int_equal(stats(x, FB).acquisitions, 2);
	lt_forget_dead(x->t, FB);
	assert_int_equal(lt_stats_get(x->t, FB, &s), -ENOENT);
	/* Removed behind the daemon's back: no mark at all. */
	contend(x, FC);
	lt_forget_dead(x->t, FC);
	assert_int_equal(lt_stats_get(x->t, FC, &s), -ENOENT);
	lt_forget_dead(x->t, FC); /* an unknown file: harmless */

	/* A lease outlives its file: the lock is untouched, its end counts
	 * as the record's one hold. */
	contend(x, lf);
	assert_int_equal(rd(x, &r, lf, OA, 100), 0);
	assert_int_equal(rel(x, lf, OA, false), 0);
	lt_gone(x->t, lf, x->now);
	lt_forget(x->t, lf);
	s = stats(x, lf);
	assert_int_equal(s.acquisitions, 0);
	assert_int_equal(s.holds, 0);
	assert_int_equal(holder(x, lf).owner, OA);
	lt_tick(x->t, x->now + 100);
	assert_int_equal(lt_holders(x->t, lf, NULL, 0), 0);
	assert_int_equal(stats(x, lf).holds, 1);
}

/* What a held file costs the table: its record, its state and the hold, plus
 * hash slots and a heap slot. */
static void test_held_file_cost(void **state)
{
	struct fx *x = *state;
	enum { N = 20000 };
	struct lt_request r;
	size_t before = heap_in_use(), after;

	for (uint64_t i = 0; i < N; i++) {
		mk(&r, 0x500000 + i, 1 + i % 4, LT_EXCL, LT_F_WRITE, 0, 0);
		assert_int_equal(acq(x, &r), 0);
	}
	after = heap_in_use();
	assert_int_equal(lt_file_count(x->t), N);
	for (uint64_t i = 0; i < N; i += 997)
		assert_int_equal(holder(x, 0x500000 + i).owner, 1 + i % 4);
	if (MEM_CHECKS) {
		size_t per_file = (after - before) / N;

		print_message("    %zu bytes per held file\n", per_file);
		/* 96 + 112 + 128 bytes of chunks, and at most 16 bytes for
		 * each of the file, hold and heap slots. */
		assert_true(per_file <= 96 + 112 + 128 + 3 * 16);
	}
	for (uint64_t i = 0; i < N; i++)
		assert_int_equal(rel(x, 0x500000 + i, 1 + i % 4, true), 0);
	assert_int_equal(lt_file_count(x->t), 0);
}

/* ------------------------------------------------- programs (version 2) */

/* Processes, as the daemon keys them. */
#define PR_G  0x7001 /* a grandparent (a login shell) */
#define PR_P  0x7002 /* its child (a script) */
#define PR_C  0x7003 /* the script's child (cat, sed) */
#define PR_C2 0x7004 /* another child of the script */
#define PR_U  0x7009 /* unrelated to all of them */
#define PR_U2 0x700a

static void fam(struct lt_request *r, lt_proc_t p0, lt_proc_t p1, lt_proc_t p2)
{
	r->family[0] = p0;
	r->family[1] = p1;
	r->family[2] = p2;
}

/* A read with update intent, by an owner of process p0 (child of p1). */
static int upd(struct fx *x, struct lt_request *r, lt_file_t f, lt_owner_t o,
	       uint64_t lease, lt_proc_t p0, lt_proc_t p1)
{
	mk(r, f, o, LT_UPDATE, 0, lease, 0);
	fam(r, p0, p1, 0);
	return acq(x, r);
}

static void configure(struct fx *x, uint64_t calm_after, uint64_t long_read,
		      uint64_t reader_wait)
{
	struct lt_config c = {
		.calm_after_ns = calm_after,
		.long_read_ns = long_read,
		.reader_wait_ns = reader_wait,
	};

	lt_configure(x->t, &c);
}

static struct lt_file_info info(struct fx *x, lt_file_t f)
{
	struct lt_file_info i;

	memset(&i, 0xff, sizeof(i)); /* must be overwritten */
	assert_int_equal(lt_file_info(x->t, f, &i), 0);
	return i;
}

/* The holders of f, which must be exactly n. */
static void holders_n(struct fx *x, lt_file_t f, struct lt_holder_view *v, size_t n)
{
	memset(v, 0, n * sizeof(*v));
	assert_int_equal(lt_holders(x->t, f, v, n), n);
}

/* The hold of owner o on f; fails the test when there is none. */
static struct lt_holder_view hold_of(struct fx *x, lt_file_t f, lt_owner_t o)
{
	struct lt_holder_view v[16];
	size_t n = lt_holders(x->t, f, v, 16);

	assert_true(n <= 16);
	for (size_t i = 0; i < n; i++)
		if (v[i].owner == o)
			return v[i];
	fail_msg("owner %llu holds nothing", (unsigned long long)o);
	return v[0];
}

static void test_update_excludes_update(void **state)
{
	struct fx *x = *state;
	struct lt_request a, s, b, bw, w;
	const struct lt_request *q[4];
	struct lt_holder_view v[2];

	mk(&a, FA, OA, LT_UPDATE, 0, 100, 0);
	assert_int_equal(acq(x, &a), 0);
	assert_int_equal(holder(x, FA).cls, LT_UPDATE);
	/* A pure reader cannot lose an update: it comes in at once. */
	mk(&s, FA, OC, LT_SHARED, 0, 0, 0);
	assert_int_equal(acq(x, &s), 0);
	assert_int_equal(nhold(x, FA), 2);
	/* Two reads that may each write back would lose one update. */
	mk(&b, FA, OB, LT_UPDATE, 0, 100, 0);
	assert_int_equal(acq(x, &b), -EINPROGRESS);
	assert_int_equal(wr(x, &w, FA, OD), -EINPROGRESS);
	assert_int_equal(lt_waiters(x->t, FA, q, 4), 2);
	assert_ptr_equal(q[0], &b);
	assert_ptr_equal(q[1], &w);

	/* The update read's lease keeps the next one out until it ends. */
	x->now = 1050;
	assert_int_equal(rel(x, FA, OA, false), 0);
	expect_none(x);
	holders_n(x, FA, v, 2);
	assert_int_equal(v[0].owner, OA);
	assert_int_equal(v[0].handles, 0);
	assert_int_equal(v[0].lease_until, 1150);
	lt_tick(x->t, 1149);
	expect_none(x);
	lt_tick(x->t, 1150);
	expect_decided(x, &b, 0);
	expect_none(x);

	/* The writer waits for both kinds of reader. */
	x->now = 1200;
	assert_int_equal(rel(x, FA, OC, false), 0);
	expect_none(x);
	assert_int_equal(holder(x, FA).owner, OB);
	mk(&bw, FA, OB, LT_EXCL, LT_F_WRITE, 0, 0);
	assert_int_equal(acq(x, &bw), 0); /* B writes what it read */
	assert_int_equal(rel(x, FA, OB, true), 0);
	assert_int_equal(rel(x, FA, OB, false), 0);
	expect_decided(x, &w, 0);
	assert_int_equal(holder(x, FA).owner, OD);
	assert_int_equal(rel(x, FA, OD, true), 0);
	assert_int_equal(lt_file_count(x->t), 0);
}

static void test_family_child_joins_parent(void **state)
{
	struct fx *x = *state;
	struct lt_request a, u, c, cw, d, e, b2;
	struct lt_holder_view v[3];

	/* `while read l; do sed -i ... f; done < f`: the script holds f. */
	assert_int_equal(upd(x, &a, FA, OA, 100, PR_P, PR_G), 0);
	assert_int_equal(upd(x, &u, FA, OB, 100, PR_U, 0), -EINPROGRESS);
	/* Its child reads and writes f at once, ahead of the unrelated
	 * waiter that the script's hold keeps out. */
	assert_int_equal(upd(x, &c, FA, OC, 100, PR_C, PR_P), 0);
	mk(&cw, FA, OC, LT_EXCL, LT_F_WRITE, 0, 0);
	fam(&cw, PR_C, PR_P, PR_G);
	assert_int_equal(acq(x, &cw), 0);
	/* A grandchild's first request is a write: it joins as well. */
	mk(&d, FA, OD, LT_EXCL, LT_F_WRITE, 0, 0);
	fam(&d, 0x7777, PR_C, PR_P);
	assert_int_equal(acq(x, &d), 0);
	expect_none(x);
	assert_int_equal(stats(x, FA).joins, 2);
	assert_int_equal(stats(x, FA).contentions, 1);
	holders_n(x, FA, v, 3);
	assert_int_equal(v[0].owner, OA);
	assert_false(v[0].joined);
	assert_int_equal(v[1].owner, OC);
	assert_true(v[1].joined);
	assert_int_equal(v[1].cls, LT_EXCL);
	assert_int_equal(v[1].handles, 2);
	assert_int_equal(v[2].owner, OD);
	assert_true(v[2].joined);

	/* The shell that started the script is no part of what it runs. */
	mk(&e, FA, OG, LT_SHARED, 0, 0, 0);
	fam(&e, PR_G, 0, 0);
	assert_int_equal(acq(x, &e), -EINPROGRESS);
	assert_int_equal(nwait(x, FA), 2);

	/* The script stops reading; the grandchild's write closing ends the
	 * script's lease: the section was that write's. */
	assert_int_equal(rel(x, FA, OA, false), 0);
	assert_int_equal(nhold(x, FA), 3);
	assert_int_equal(rel(x, FA, OD, true), 0);
	holders_n(x, FA, v, 1);
	assert_int_equal(v[0].owner, OC);
	expect_none(x);
	assert_int_equal(rel(x, FA, OC, false), 0);
	expect_none(x);
	assert_int_equal(rel(x, FA, OC, true), 0);
	expect_decided(x, &u, 0);
	expect_decided(x, &e, 0);
	expect_none(x);
	assert_int_equal(rel(x, FA, OB, false), 0);
	assert_int_equal(rel(x, FA, OG, false), 0);
	lt_tick(x->t, x->now + 100);
	assert_int_equal(lt_file_count(x->t), 0);

	/* Joining goes down the tree only: a script waits for its child. */
	assert_int_equal(upd(x, &c, FB, OC, 100, PR_C, PR_P), 0);
	assert_int_equal(upd(x, &b2, FB, OA, 100, PR_P, PR_G), -EINPROGRESS);
	assert_int_equal(lt_cancel(x->t, &b2, x->now), 0);
	expect_decided(x, &b2, -EINTR);
	assert_int_equal(stats(x, FB).joins, 0);
}

static void test_family_join_waits_at_head(void **state)
{
	struct fx *x = *state;
	struct lt_request a, s, u, c, d;
	const struct lt_request *q[3];

	/* The script reads f; a pure reader (who may not write f) reads it
	 * too; an unrelated update read waits for the script. */
	assert_int_equal(upd(x, &a, FA, OA, 100, PR_P, PR_G), 0);
	mk(&s, FA, OB, LT_SHARED, 0, 0, 0);
	fam(&s, PR_U, 0, 0);
	assert_int_equal(acq(x, &s), 0);
	assert_int_equal(upd(x, &u, FA, OD, 100, PR_U2, 0), -EINPROGRESS);
	/* A child's update read fits beside the pure reader. */
	assert_int_equal(upd(x, &c, FA, OC, 100, PR_C, PR_P), 0);
	assert_true(hold_of(x, FA, OC).joined);
	/* The child's own child writes: it must wait for the pure reader,
	 * but not for the unrelated waiter, which waits for the script while
	 * the script waits for its children. */
	mk(&d, FA, OP, LT_EXCL, LT_F_WRITE, 0, 0);
	fam(&d, 0x7300, PR_C, PR_P);
	assert_int_equal(acq(x, &d), -EINPROGRESS);
	assert_int_equal(lt_waiters(x->t, FA, q, 3), 2);
	assert_ptr_equal(q[0], &d);
	assert_ptr_equal(q[1], &u);
	x->now = 1100;
	assert_int_equal(rel(x, FA, OB, false), 0);
	expect_decided(x, &d, 0);
	expect_none(x);
	assert_true(hold_of(x, FA, OP).joined);
	assert_int_equal(stats(x, FA).joins, 2);
	/* Its close ends the script's section; the unrelated reader then
	 * waits only for the first child's read. */
	assert_int_equal(rel(x, FA, OA, false), 0);
	assert_int_equal(rel(x, FA, OP, true), 0);
	expect_none(x);
	assert_int_equal(rel(x, FA, OC, false), 0);
	assert_int_equal(hold_of(x, FA, OC).lease_until, 1200);
	lt_tick(x->t, 1200);
	expect_decided(x, &u, 0);
}

static void test_family_sibling_threads(void **state)
{
	struct fx *x = *state;
	struct lt_request t1, t2, t3, u, bar;
	struct lt_holder_view v[2];

	/* OA, OB and OC are threads of one process. */
	assert_int_equal(upd(x, &t1, FA, OA, 1000, PR_P, PR_G), 0);
	/* Two threads racing a read-modify-write are still serialized. */
	assert_int_equal(upd(x, &t2, FA, OB, 1000, PR_P, PR_G), -EINPROGRESS);
	assert_int_equal(lt_cancel(x->t, &t2, x->now), 0);
	expect_decided(x, &t2, -EINTR);
	assert_int_equal(rel(x, FA, OA, false), 0);
	assert_int_equal(holder(x, FA).lease_until, 2000);
	x->now = 1010;
	assert_int_equal(upd(x, &t2, FA, OB, 1000, PR_P, PR_G), -EINPROGRESS);
	assert_int_equal(lt_cancel(x->t, &t2, x->now), 0);
	expect_decided(x, &t2, -EINTR);

	assert_int_equal(upd(x, &u, FA, OD, 1000, PR_U, 0), -EINPROGRESS);
	/* A pool thread writes what another one read: one flow of work. */
	x->now = 1020;
	mk(&t3, FA, OC, LT_EXCL, LT_F_WRITE, 0, 0);
	fam(&t3, PR_P, PR_G, 0);
	assert_int_equal(acq(x, &t3), 0);
	expect_none(x);
	holders_n(x, FA, v, 2);
	assert_int_equal(v[0].owner, OA);
	assert_int_equal(v[0].handles, 0);
	assert_int_equal(v[1].owner, OC);
	assert_true(v[1].joined);
	assert_int_equal(stats(x, FA).joins, 1);
	/* Its close ends the section, the first thread's lease with it. */
	x->now = 1030;
	assert_int_equal(rel(x, FA, OC, true), 0);
	expect_decided(x, &u, 0);
	assert_int_equal(holder(x, FA).owner, OD);
	assert_int_equal(lt_next_deadline(x->t), UINT64_MAX);
	assert_int_equal(rel(x, FA, OD, false), 0);
	assert_int_equal(holder(x, FA).lease_until, 2030);
	lt_tick(x->t, 2030);
	assert_int_equal(lt_file_count(x->t), 0);

	/* A barrier (the rename of a temporary over the file) is a write. */
	assert_int_equal(upd(x, &t1, FB, OA, 1000, PR_P, PR_G), 0);
	assert_int_equal(rel(x, FB, OA, false), 0);
	assert_int_equal(upd(x, &u, FB, OD, 1000, PR_U, 0), -EINPROGRESS);
	mk(&bar, FB, OB, LT_EXCL, LT_F_WRITE | LT_F_BARRIER, 0, 0);
	fam(&bar, PR_P, PR_G, 0);
	assert_int_equal(acq(x, &bar), 0);
	expect_none(x);
	assert_int_equal(lt_barrier_done(x->t, FB, OB, x->now), 0);
	expect_decided(x, &u, 0);
	assert_int_equal(holder(x, FB).owner, OD);
}

static void test_family_inherited_lease(void **state)
{
	struct fx *x = *state;
	struct lt_request c, u, pk, t2, c2, g2;
	struct lt_holder_view v[4];

	/* cat (OA, in PR_C) read f under timeout (PR_P) under a shell (PR_G). */
	assert_int_equal(upd(x, &c, FA, OA, 1000, PR_C, PR_P), 0);
	assert_int_equal(rel(x, FA, OA, false), 0);
	assert_int_equal(upd(x, &u, FA, OD, 1000, PR_U, 0), -EINPROGRESS);
	/* Before the exit the script's other threads are not cat's program. */
	mk(&pk, FA, OB, LT_UPDATE, LT_F_NONBLOCK, 1000, 0);
	fam(&pk, PR_P, PR_G, 0);
	assert_int_equal(acq(x, &pk), LT_PEEK);

	x->now = 1100;
	lt_owner_exit2(x->t, OA, OP, PR_P, x->now);
	holders_n(x, FA, v, 1);
	assert_int_equal(v[0].owner, OP);
	assert_true(v[0].inherited);
	assert_int_equal(v[0].lease_until, 2000);
	expect_none(x);
	/* Now it is the script's: another of its threads reads it at once,
	 * and so does its other child, both bounded by the inherited lease. */
	mk(&t2, FA, OB, LT_UPDATE, 0, 1000, 0);
	fam(&t2, PR_P, PR_G, 0);
	assert_int_equal(acq(x, &t2), 0);
	assert_int_equal(upd(x, &c2, FA, OC, 1000, PR_C2, PR_P), 0);
	assert_int_equal(stats(x, FA).joins, 2);
	x->now = 1200;
	assert_int_equal(rel(x, FA, OB, false), 0);
	assert_int_equal(rel(x, FA, OC, false), 0);
	holders_n(x, FA, v, 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(v[i].lease_until, 2000);

	/* They exit in turn: what they held goes back into the script's. */
	x->now = 1250;
	lt_owner_exit2(x->t, OB, OP, PR_P, x->now);
	lt_owner_exit2(x->t, OC, OP, PR_P, x->now);
	holders_n(x, FA, v, 1);
	assert_int_equal(v[0].owner, OP);
	assert_int_equal(v[0].lease_until, 2000);

	/* timeout exits normally: the lease passes on to the shell. */
	x->now = 1300;
	lt_owner_exit2(x->t, OP, OG, PR_G, x->now);
	holders_n(x, FA, v, 1);
	assert_int_equal(v[0].owner, OG);
	assert_true(v[0].inherited);
	assert_int_equal(v[0].handles, 0);
	assert_int_equal(v[0].lease_until, 2000);
	/* The shell's other threads, and its other children, join what it
	 * inherited. */
	mk(&g2, FA, OG + 100, LT_UPDATE, 0, 1000, 0);
	fam(&g2, PR_G, 0, 0);
	assert_int_equal(acq(x, &g2), 0);
	assert_int_equal(upd(x, &c2, FA, OG + 101, 1000, 0x7200, PR_G), 0);
	assert_int_equal(rel(x, FA, OG + 100, false), 0);
	assert_int_equal(rel(x, FA, OG + 101, false), 0);
	holders_n(x, FA, v, 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(v[i].lease_until, 2000);
	assert_int_equal(stats(x, FA).joins, 4);
	expect_none(x);
	assert_int_equal(lt_next_deadline(x->t), 2000);

	/* All of it ends when cat's lease would have ended. */
	lt_tick(x->t, 1999);
	expect_none(x);
	assert_int_equal(nwait(x, FA), 1);
	x->now = 2000;
	lt_tick(x->t, x->now);
	expect_decided(x, &u, 0);
	expect_none(x);
	assert_int_equal(holder(x, FA).owner, OD);
}

static void test_join_never_extends_section(void **state)
{
	struct fx *x = *state;
	struct lt_request p, u, c, c2;
	struct lt_holder_view v[2];

	assert_int_equal(upd(x, &p, FA, OP, 1000, PR_P, PR_G), 0);
	assert_int_equal(rel(x, FA, OP, false), 0); /* T = 2000 */
	x->now = 1100;
	assert_int_equal(upd(x, &u, FA, OD, 1000, PR_U, 0), -EINPROGRESS);
	/* A child joins, closes and exits: its lease comes back to the
	 * parent, no longer than the parent's. */
	x->now = 1500;
	assert_int_equal(upd(x, &c, FA, OC, 1000, PR_C, PR_P), 0);
	x->now = 1600;
	assert_int_equal(rel(x, FA, OC, false), 0);
	holders_n(x, FA, v, 2);
	assert_int_equal(v[1].owner, OC);
	assert_true(v[1].joined);
	assert_int_equal(v[1].lease_until, 2000);
	x->now = 1700;
	lt_owner_exit2(x->t, OC, OP, PR_P, x->now);
	holders_n(x, FA, v, 1);
	assert_int_equal(v[0].owner, OP);
	assert_int_equal(v[0].lease_until, 2000);
	/* The next child of the loop re-reads, twice, with a long lease. */
	x->now = 1800;
	assert_int_equal(upd(x, &c2, FA, OA, 5000, PR_C2, PR_P), 0);
	assert_int_equal(rel(x, FA, OA, false), 0);
	x->now = 1900;
	assert_int_equal(upd(x, &c2, FA, OA, 5000, PR_C2, PR_P), 0);
	assert_int_equal(rel(x, FA, OA, false), 0);
	holders_n(x, FA, v, 2);
	assert_int_equal(v[0].lease_until, 2000);
	assert_int_equal(v[1].lease_until, 2000);
	lt_owner_exit2(x->t, OA, OP, PR_P, x->now);
	assert_int_equal(holder(x, FA).lease_until, 2000);
	assert_int_equal(lt_next_deadline(x->t), 2000);

	lt_tick(x->t, 1999);
	expect_none(x);
	assert_int_equal(holder(x, FA).owner, OP);
	lt_tick(x->t, 2000);
	expect_decided(x, &u, 0);
	assert_int_equal(holder(x, FA).owner, OD);
	assert_int_equal(u.granted_file, FA);
}

static void test_calm_learned(void **state)
{
	struct fx *x = *state;
	struct lt_request a, b, c, d, e, f;
	struct lt_holder_view v[2];
	struct lt_file_info i;

	configure(x, 500, 0, 0);
	assert_int_equal(upd(x, &a, FA, OA, 100, PR_U, 0), 0);
	assert_int_equal(rel(x, FA, OA, false), 0);
	assert_false(info(x, FA).calm);
	assert_int_equal(upd(x, &b, FA, OB, 100, PR_U2, 0), -EINPROGRESS);
	lt_tick(x->t, 1099);
	expect_none(x);
	assert_false(info(x, FA).calm);
	/* The lease ran out unused while a reader waited: the reads of this
	 * file do not write it. */
	x->now = 1100;
	lt_tick(x->t, x->now);
	expect_decided(x, &b, 0);
	i = info(x, FA);
	assert_true(i.calm);
	assert_false(i.advisory);
	assert_int_equal(i.last_write, 0);
	assert_int_equal(stats(x, FA).calm_learned, 1);
	/* From now on update reads share and leave no lease. */
	assert_int_equal(upd(x, &c, FA, OC, 100, 0x7100, 0), 0);
	holders_n(x, FA, v, 2);
	assert_int_equal(v[0].cls, LT_SHARED);
	assert_int_equal(v[1].cls, LT_SHARED);
	assert_int_equal(rel(x, FA, OC, false), 0);
	assert_int_equal(holder(x, FA).owner, OB);

	/* A write still waits for the readers, and makes the file hot. */
	x->now = 1200;
	assert_int_equal(wr(x, &d, FA, OD), -EINPROGRESS);
	x->now = 1300;
	assert_int_equal(rel(x, FA, OB, false), 0);
	expect_decided(x, &d, 0);
	i = info(x, FA);
	assert_false(i.calm);
	assert_int_equal(i.last_write, 1300);
	assert_int_equal(rel(x, FA, OD, true), 0);
	assert_int_equal(upd(x, &e, FA, OA, 100, PR_U, 0), 0);
	assert_int_equal(upd(x, &f, FA, OB, 100, PR_U2, 0), -EINPROGRESS);
	assert_int_equal(holder(x, FA).cls, LT_UPDATE);
	assert_int_equal(stats(x, FA).calm_learned, 1);
}

static void test_calm_other_ends_and_written(void **state)
{
	struct fx *x = *state;
	struct lt_request a, b, c, e, g;

	configure(x, 500, 0, 0);
	assert_int_equal(lt_file_info(x->t, FA, &(struct lt_file_info){ 0 }), -ENOENT);
	/* A change on the source of a file never opened: nothing to keep. */
	lt_file_written(x->t, FA, x->now);
	assert_int_equal(lt_file_info(x->t, FA, &(struct lt_file_info){ 0 }), -ENOENT);
	/* An owner moving on to another file also leaves its lease unused. */
	assert_int_equal(upd(x, &a, FA, OA, 100, PR_U, 0), 0);
	assert_int_equal(rel(x, FA, OA, false), 0);
	assert_int_equal(upd(x, &b, FA, OB, 100, PR_U2, 0), -EINPROGRESS);
	x->now = 1050;
	assert_int_equal(upd(x, &c, FB, OA, 100, PR_U, 0), 0);
	expect_decided(x, &b, 0);
	assert_true(info(x, FA).calm);
	assert_int_equal(rel(x, FA, OB, false), 0);
	assert_int_equal(nhold(x, FA), 0); /* no lease on a calm file */
	/* Changed on the source: hot again. */
	x->now = 1060;
	lt_file_written(x->t, FA, x->now);
	assert_false(info(x, FA).calm);
	assert_int_equal(info(x, FA).last_write, 1060);
	assert_int_equal(upd(x, &a, FA, OC, 100, 0x7100, 0), 0);
	assert_int_equal(upd(x, &b, FA, OD, 100, 0x7101, 0), -EINPROGRESS);
	assert_int_equal(stats(x, FA).calm_learned, 1);

	/* So does an exit that leaves the lease to nobody. */
	assert_int_equal(upd(x, &e, FC, OP, 100, PR_P, 0), 0);
	assert_int_equal(rel(x, FC, OP, false), 0);
	assert_int_equal(upd(x, &g, FC, OG, 100, PR_G, 0), -EINPROGRESS);
	assert_false(info(x, FC).calm);
	lt_owner_exit(x->t, OP, 0, x->now);
	expect_decided(x, &g, 0);
	assert_true(info(x, FC).calm);
	assert_int_equal(stats(x, FC).calm_learned, 1);
}

static void test_calm_applies_to_live_holds(void **state)
{
	struct fx *x = *state;
	struct lt_request p, c, u, w;

	configure(x, 500, 0, 0);
	/* The script's lease runs out while its child still reads f. */
	assert_int_equal(upd(x, &p, FA, OP, 100, PR_P, PR_G), 0);
	assert_int_equal(rel(x, FA, OP, false), 0);
	assert_int_equal(upd(x, &c, FA, OC, 100, PR_C, PR_P), 0);
	assert_int_equal(upd(x, &u, FA, OD, 100, PR_U, 0), -EINPROGRESS);
	lt_tick(x->t, 1100);
	expect_decided(x, &u, 0);
	assert_true(info(x, FA).calm);
	/* The child's hold, granted before, is shared now as well... */
	assert_int_equal(hold_of(x, FA, OC).cls, LT_SHARED);
	/* ...and leaves no lease for a writer to wait out. */
	x->now = 1150;
	assert_int_equal(rel(x, FA, OC, false), 0);
	assert_int_equal(nhold(x, FA), 1);
	assert_int_equal(wr(x, &w, FA, OA), -EINPROGRESS);
	assert_int_equal(rel(x, FA, OD, false), 0);
	expect_decided(x, &w, 0);
}

static void test_calm_not_without_waiter(void **state)
{
	struct fx *x = *state;
	struct lt_request a, b, c;

	configure(x, 500, 0, 0);
	assert_int_equal(upd(x, &a, FA, OA, 100, PR_U, 0), 0);
	assert_int_equal(rel(x, FA, OA, false), 0);
	lt_tick(x->t, 1100);
	assert_int_equal(lt_file_count(x->t), 0);
	assert_false(info(x, FA).calm);
	assert_int_equal(stats(x, FA).calm_learned, 0);
	/* Nor does an exclusive read's lease teach anything. */
	x->now = 1100;
	assert_int_equal(rd(x, &a, FA, OA, 100), 0);
	assert_int_equal(rel(x, FA, OA, false), 0);
	assert_int_equal(upd(x, &b, FA, OB, 100, PR_U2, 0), -EINPROGRESS);
	lt_tick(x->t, 1200);
	expect_decided(x, &b, 0);
	assert_false(info(x, FA).calm);
	assert_int_equal(upd(x, &c, FA, OC, 100, 0x7100, 0), -EINPROGRESS);
}

static void calm_not_when_written_lately(struct fx *x, bool reset)
{
	struct lt_request w, a, b, c, d;

	configure(x, 500, 0, 0);
	assert_int_equal(wr(x, &w, FA, OD), 0); /* last write: 1000 */
	x->now = 1010;
	assert_int_equal(rel(x, FA, OD, true), 0);
	if (reset) {
		lt_stats_reset(x->t);
		assert_int_equal(info(x, FA).last_write, 1000);
	}
	x->now = 1100;
	assert_int_equal(upd(x, &a, FA, OA, 100, PR_U, 0), 0);
	assert_int_equal(rel(x, FA, OA, false), 0);
	assert_int_equal(upd(x, &b, FA, OB, 100, PR_U2, 0), -EINPROGRESS);
	x->now = 1200;
	lt_tick(x->t, x->now);
	expect_decided(x, &b, 0);
	assert_false(info(x, FA).calm);
	assert_int_equal(upd(x, &c, FA, OC, 100, 0x7100, 0), -EINPROGRESS);
	x->now = 1300;
	assert_int_equal(rel(x, FA, OB, false), 0);
	lt_tick(x->t, 1400); /* 400 after the write */
	expect_decided(x, &c, 0);
	assert_false(info(x, FA).calm);
	x->now = 1400;
	assert_int_equal(upd(x, &d, FA, OA, 100, PR_U, 0), -EINPROGRESS);
	assert_int_equal(rel(x, FA, OC, false), 0);
	/* Exactly calm_after_ns after the write is long enough. */
	lt_tick(x->t, 1500);
	expect_decided(x, &d, 0);
	assert_true(info(x, FA).calm);
	assert_int_equal(stats(x, FA).calm_learned, 1);
}

static void test_calm_not_when_written_lately(void **state)
{
	calm_not_when_written_lately(*state, false);
}

/* Resetting the statistics changes no answer: the time of the last write
 * is what learning needs, not a statistic. */
static void test_calm_not_when_written_lately_reset(void **state)
{
	struct fx *x = *state;
	struct lt_file_info i;

	calm_not_when_written_lately(x, true);
	/* Without learning the time of a write decides nothing: an idle file
	 * that learned nothing loses its record with its statistics. */
	configure(x, 0, 0, 0);
	assert_int_equal(rel(x, FA, OA, false), 0);
	lt_tick(x->t, 10000);
	lt_file_written(x->t, FA, x->now);
	lt_stats_reset(x->t);
	assert_int_equal(lt_file_info(x->t, FA, &i), -ENOENT);
}

static void test_calm_not_when_lease_wrote(void **state)
{
	struct fx *x = *state;
	struct lt_request a, aw, b, c;

	/* So short that only how the lease ended can matter. */
	configure(x, 1, 0, 0);
	assert_int_equal(upd(x, &a, FA, OA, 100, PR_U, 0), 0);
	assert_int_equal(rel(x, FA, OA, false), 0);
	x->now = 1010;
	assert_int_equal(upd(x, &b, FA, OB, 100, PR_U2, 0), -EINPROGRESS);
	x->now = 1020;
	mk(&aw, FA, OA, LT_EXCL, LT_F_WRITE, 0, 0);
	fam(&aw, PR_U, 0, 0);
	assert_int_equal(acq(x, &aw), 0);
	x->now = 1030;
	assert_int_equal(rel(x, FA, OA, true), 0);
	expect_decided(x, &b, 0);
	assert_false(info(x, FA).calm);
	assert_int_equal(stats(x, FA).calm_learned, 0);
	assert_int_equal(upd(x, &c, FA, OC, 100, 0x7100, 0), -EINPROGRESS);
}

static void test_advisory(void **state)
{
	struct fx *x = *state;
	struct lt_request a, b, c, d, e, f, g;
	struct lt_file_info i;

	assert_int_equal(wr(x, &a, FA, OA), 0);
	assert_int_equal(wr(x, &b, FA, OB), -EINPROGRESS);
	assert_int_equal(upd(x, &c, FA, OC, 100, PR_U, 0), -EINPROGRESS);
	assert_false(info(x, FA).advisory);
	/* A program took an flock on it: the table steps aside. */
	lt_advisory(x->t, FA, x->now);
	expect_decided(x, &b, 0);
	expect_decided(x, &c, 0);
	expect_none(x);
	assert_int_equal(nhold(x, FA), 3);
	assert_true(info(x, FA).advisory);
	assert_int_equal(wr(x, &d, FA, OD), LT_PEEK);
	assert_int_equal(d.granted_file, 0);
	assert_int_equal(upd(x, &e, FA, OA, 100, PR_U, 0), LT_PEEK);
	assert_int_equal(nhold(x, FA), 3);
	assert_int_equal(hold_of(x, FA, OA).handles, 1);
	struct lt_stats s = stats(x, FA);
	assert_int_equal(s.advisory_passes, 2);
	assert_int_equal(s.acquisitions, 3);
	assert_int_equal(s.peeks, 0);
	lt_advisory(x->t, FA, x->now);
	expect_none(x);

	/* A file nobody asked for yet can be advisory as well. */
	lt_advisory(x->t, FC, x->now);
	assert_true(info(x, FC).advisory);
	assert_int_equal(wr(x, &f, FC, OA), LT_PEEK);
	assert_int_equal(stats(x, FC).advisory_passes, 1);

	/* Forgetting a held file keeps what it learned: same inode still. */
	lt_forget(x->t, FA);
	assert_true(info(x, FA).advisory);
	assert_int_equal(rel(x, FA, OA, true), 0);
	assert_int_equal(rel(x, FA, OB, true), 0);
	assert_int_equal(rel(x, FA, OC, false), 0);
	lt_tick(x->t, x->now + 100);
	assert_int_equal(lt_file_count(x->t), 0);
	/* Forgotten when idle, the id may be a new file: it locks again. */
	lt_forget(x->t, FA);
	i = info(x, FA);
	assert_false(i.advisory);
	assert_int_equal(wr(x, &f, FA, OA), 0);
	assert_int_equal(wr(x, &g, FA, OB), -EINPROGRESS);
}

static void test_advisory_behind_mark(void **state)
{
	struct fx *x = *state;
	struct lt_request a, a2, b, b2;

	/* FB was renamed over FA's name, and programs flock FB. */
	lt_replace(x->t, FA, FB, x->now);
	lt_advisory(x->t, FB, x->now);
	/* A late open of FA must not pass: it would open the replaced file.
	 * It looks the name up again and reaches FB, where it passes. */
	assert_int_equal(wr(x, &a, FA, OA), -ESTALE);
	assert_int_equal(a.granted_file, 0);
	assert_int_equal(nhold(x, FB), 0);
	assert_int_equal(wr(x, &a2, FB, OA), LT_PEEK);
	assert_int_equal(stats(x, FB).advisory_passes, 1);
	/* A retry that comes back by the old file's other name is served on
	 * the old file, which programs do not lock themselves. */
	assert_int_equal(upd(x, &b, FA, OB, 100, PR_U, 0), -ESTALE);
	assert_int_equal(upd(x, &b2, FA, OB, 100, PR_U, 0), 0);
	assert_int_equal(holder(x, FA).owner, OB);
	assert_int_equal(stats(x, FA).advisory_passes, 0);
}

static void test_long_read(void **state)
{
	struct fx *x = *state;
	struct lt_request a, a2, b, c, d, dw, e;

	configure(x, 0, 500, 0);
	assert_int_equal(upd(x, &a, FA, OA, 100, PR_U, 0), 0);
	assert_int_equal(lt_next_deadline(x->t), 1500);
	x->now = 1100;
	assert_int_equal(upd(x, &b, FA, OB, 100, PR_U2, 0), -EINPROGRESS);
	/* Opening it again is the same long read: its clock runs on. */
	x->now = 1200;
	assert_int_equal(upd(x, &a2, FA, OA, 100, PR_U, 0), 0);
	lt_tick(x->t, 1499);
	expect_none(x);
	assert_int_equal(hold_of(x, FA, OA).state, LT_HS_NORMAL);
	assert_int_equal(hold_of(x, FA, OA).cls, LT_UPDATE);
	/* A reader that long (tail -f, a pager) holds back no other. */
	x->now = 1500;
	lt_tick(x->t, x->now);
	expect_decided(x, &b, 0);
	assert_int_equal(hold_of(x, FA, OA).state, LT_HS_LONG);
	assert_int_equal(hold_of(x, FA, OA).cls, LT_SHARED);
	assert_int_equal(hold_of(x, FA, OA).handles, 2);
	assert_int_equal(hold_of(x, FA, OB).state, LT_HS_NORMAL);
	assert_int_equal(hold_of(x, FA, OB).cls, LT_UPDATE);
	assert_int_equal(lt_next_deadline(x->t), 2000);
	/* It leaves no lease behind. */
	x->now = 1550;
	assert_int_equal(rel(x, FA, OA, false), 0);
	assert_int_equal(rel(x, FA, OA, false), 0);
	assert_int_equal(nhold(x, FA), 1);
	assert_int_equal(upd(x, &c, FA, OC, 100, 0x7100, 0), -EINPROGRESS);
	lt_tick(x->t, 2000);
	expect_decided(x, &c, 0);

	/* A write stops the clock: a hold that writes never shares. */
	x->now = 2000;
	assert_int_equal(upd(x, &d, FB, OA, 100, PR_U, 0), 0);
	x->now = 2100;
	mk(&dw, FB, OA, LT_EXCL, LT_F_WRITE, 0, 0);
	assert_int_equal(acq(x, &dw), 0);
	assert_int_equal(upd(x, &e, FB, OD, 100, 0x7101, 0), -EINPROGRESS);
	lt_tick(x->t, 3000);
	assert_int_equal(hold_of(x, FB, OA).state, LT_HS_NORMAL);
	assert_int_equal(hold_of(x, FB, OA).cls, LT_EXCL);
	assert_int_equal(nwait(x, FB), 1);
}

static void test_long_read_not_while_writing(void **state)
{
	struct fx *x = *state;
	struct lt_request aw, a2, b;

	configure(x, 0, 500, 0);
	/* An update hold with a write handle open: a read opened beside it
	 * must not start the clock that would let other update reads in. */
	mk(&aw, FA, OA, LT_UPDATE, LT_F_WRITE, 100, 0);
	assert_int_equal(acq(x, &aw), 0);
	x->now = 1010;
	assert_int_equal(upd(x, &a2, FA, OA, 100, PR_U, 0), 0);
	assert_int_equal(lt_next_deadline(x->t), UINT64_MAX);
	x->now = 2000;
	lt_tick(x->t, x->now);
	assert_int_equal(holder(x, FA).state, LT_HS_NORMAL);
	assert_int_equal(holder(x, FA).cls, LT_UPDATE);
	assert_int_equal(upd(x, &b, FA, OB, 100, PR_U2, 0), -EINPROGRESS);
	assert_int_equal(rel(x, FA, OA, true), 0);
	assert_int_equal(rel(x, FA, OA, false), 0);
	expect_none(x); /* the read was the last grant: a lease */
	lt_tick(x->t, 2100);
	expect_decided(x, &b, 0);
}

static void test_writer_breaks_readers(void **state)
{
	struct fx *x = *state;
	struct lt_request r1, r2, w, r1b, l, w2;
	struct lt_holder_view v[3];

	configure(x, 0, 0, 300);
	mk(&r1, FA, OA, LT_SHARED, 0, 0, 0);
	assert_int_equal(acq(x, &r1), 0);
	assert_int_equal(upd(x, &r2, FA, OB, 100, PR_U, 0), 0);
	x->now = 1100;
	assert_int_equal(wr(x, &w, FA, OC), -EINPROGRESS);
	assert_int_equal(lt_next_deadline(x->t), 1400);
	lt_tick(x->t, 1399);
	expect_none(x);
	/* Readers that never leave cannot starve the writer. */
	x->now = 1400;
	lt_tick(x->t, x->now);
	expect_decided(x, &w, 0);
	expect_none(x);
	assert_int_equal(stats(x, FA).broken, 2);
	assert_int_equal(stats(x, FA).wait_max_ns, 300);
	holders_n(x, FA, v, 3);
	assert_int_equal(v[0].owner, OA);
	assert_int_equal(v[0].state, LT_HS_BROKEN);
	assert_int_equal(v[1].owner, OB);
	assert_int_equal(v[1].state, LT_HS_BROKEN);
	assert_int_equal(v[2].owner, OC);
	assert_int_equal(v[2].state, LT_HS_NORMAL);
	assert_int_equal(v[2].cls, LT_EXCL);
	/* Asking anew, a broken reader waits for the writer like anyone. */
	x->now = 1450;
	mk(&r1b, FA, OA, LT_SHARED, 0, 0, 0);
	assert_int_equal(acq(x, &r1b), -EINPROGRESS);
	/* A broken update read leaves no lease. */
	assert_int_equal(rel(x, FA, OB, false), 0);
	assert_int_equal(nhold(x, FA), 2);
	assert_int_equal(rel(x, FA, OC, true), 0);
	expect_decided(x, &r1b, 0);
	assert_int_equal(hold_of(x, FA, OA).state, LT_HS_NORMAL);
	assert_int_equal(hold_of(x, FA, OA).handles, 2);
	assert_int_equal(rel(x, FA, OA, false), 0);
	assert_int_equal(rel(x, FA, OA, false), 0);
	assert_int_equal(lt_file_count(x->t), 0);

	/* A lease in a writer's way is broken too: it just ends. */
	x->now = 2000;
	assert_int_equal(upd(x, &l, FB, OB, 10000, PR_U, 0), 0);
	assert_int_equal(rel(x, FB, OB, false), 0);
	assert_int_equal(wr(x, &w2, FB, OC), -EINPROGRESS);
	lt_tick(x->t, 2299);
	expect_none(x);
	lt_tick(x->t, 2300);
	expect_decided(x, &w2, 0);
	assert_int_equal(holder(x, FB).owner, OC);
	assert_int_equal(stats(x, FB).broken, 1);
}

static bool fake_busy(void *arg, lt_owner_t owner)
{
	(void)owner;
	return *(const bool *)arg;
}

static void test_lease_stretches_when_busy(void **state)
{
	struct fx *x = *state;
	struct lt_config c = { .lease_stretch_max = 2 };
	struct lt_request a, b, b2;
	bool busy = true;

	lt_configure(x->t, &c);
	lt_set_busy_hook(x->t, fake_busy, &busy);
	assert_int_equal(upd(x, &a, FA, OA, 100, PR_U, 0), 0);
	assert_int_equal(rel(x, FA, OA, false), 0);
	assert_int_equal(upd(x, &b, FA, OB, 100, 0, 0), -EINPROGRESS);
	/* Due at 1100 on a busy machine: its holder may not have run yet. */
	lt_tick(x->t, 1100);
	expect_none(x);
	assert_int_equal(lt_next_deadline(x->t), 1200);
	lt_tick(x->t, 1200);
	expect_none(x);
	/* At most lease_stretch_max times. */
	lt_tick(x->t, 1300);
	expect_decided(x, &b, 0);
	assert_int_equal(rel(x, FA, OB, false), 0);

	/* On a machine that is not busy a due lease ends. */
	busy = false;
	x->now = 2000;
	assert_int_equal(upd(x, &a, FB, OA, 100, PR_U, 0), 0);
	assert_int_equal(rel(x, FB, OA, false), 0);
	assert_int_equal(upd(x, &b2, FB, OB, 100, 0, 0), -EINPROGRESS);
	lt_tick(x->t, 2100);
	expect_decided(x, &b2, 0);
	/* A new lease may be stretched again. */
	busy = true;
	x->now = 2200;
	assert_int_equal(rel(x, FB, OB, false), 0);
	assert_int_equal(lt_next_deadline(x->t), 2300);
	lt_tick(x->t, 2300);
	assert_int_equal(lt_next_deadline(x->t), 2400);
	lt_set_busy_hook(x->t, NULL, NULL);
	lt_tick(x->t, 2400);
	assert_int_equal(lt_file_count(x->t), 0);
}

static void test_nonblock_writer_waits_for_readers(void **state)
{
	struct fx *x = *state;
	struct lt_request r, w, w2, wb;

	configure(x, 0, 0, 300);
	mk(&r, FA, OA, LT_SHARED, 0, 0, 0);
	assert_int_equal(acq(x, &r), 0);
	/* coreutils truncate opens O_NONBLOCK: beside a reader it waits like
	 * any writer, at most reader_wait, instead of being refused. */
	mk(&w, FA, OB, LT_EXCL, LT_F_WRITE | LT_F_NONBLOCK, 0, 0);
	assert_int_equal(acq(x, &w), -EINPROGRESS);
	lt_tick(x->t, 1299);
	expect_none(x);
	lt_tick(x->t, 1300);
	expect_decided(x, &w, 0);
	/* Beside a writer it is refused at once, as before. */
	mk(&w2, FA, OC, LT_EXCL, LT_F_WRITE | LT_F_NONBLOCK, 0, 0);
	assert_int_equal(acq(x, &w2), -EAGAIN);
	assert_int_equal(rel(x, FA, OB, true), 0);
	assert_int_equal(rel(x, FA, OA, false), 0);
	/* With something queued it could wait behind a writer without
	 * bound: refused. */
	mk(&r, FB, OA, LT_SHARED, 0, 0, 0);
	assert_int_equal(acq(x, &r), 0);
	assert_int_equal(wr(x, &wb, FB, OB), -EINPROGRESS);
	mk(&w2, FB, OC, LT_EXCL, LT_F_WRITE | LT_F_NONBLOCK, 0, 0);
	assert_int_equal(acq(x, &w2), -EAGAIN);
	assert_int_equal(rel(x, FB, OA, false), 0);
	expect_decided(x, &wb, 0);
	assert_int_equal(rel(x, FB, OB, true), 0);
}

static void test_writer_behind_writer_not_broken(void **state)
{
	struct fx *x = *state;
	struct lt_request a, w, w0, p, c, w2;

	configure(x, 0, 0, 300);
	assert_int_equal(wr(x, &a, FA, OA), 0);
	/* A lock timeout before the break simply fires. */
	mk(&w0, FA, OD, LT_EXCL, LT_F_WRITE, 0, 1100);
	assert_int_equal(acq(x, &w0), -EINPROGRESS);
	mk(&w, FA, OB, LT_EXCL, LT_F_WRITE, 0, 1500);
	assert_int_equal(acq(x, &w), -EINPROGRESS);
	assert_int_equal(lt_next_deadline(x->t), 1100);
	lt_tick(x->t, 1100);
	expect_decided(x, &w0, -ETIMEDOUT);
	lt_tick(x->t, 1299);
	expect_none(x);
	/* A writer is not a reader: nothing breaks, the timeout stays. */
	lt_tick(x->t, 1300);
	expect_none(x);
	assert_int_equal(stats(x, FA).broken, 0);
	assert_int_equal(hold_of(x, FA, OA).state, LT_HS_NORMAL);
	assert_int_equal(lt_next_deadline(x->t), 1500);
	lt_tick(x->t, 1499);
	expect_none(x);
	lt_tick(x->t, 1500);
	expect_decided(x, &w, -ETIMEDOUT);
	assert_int_equal(stats(x, FA).fail_timeout, 2);
	assert_int_equal(holder(x, FA).owner, OA);

	/* A script writes FB while its child reads it: the break takes the
	 * reader, the writer still holds the waiter back until its timeout. */
	x->now = 2000;
	mk(&p, FB, OP, LT_EXCL, LT_F_WRITE, 0, 0);
	fam(&p, PR_P, PR_G, 0);
	assert_int_equal(acq(x, &p), 0);
	assert_int_equal(upd(x, &c, FB, OC, 100, PR_C, PR_P), 0);
	mk(&w2, FB, OD, LT_EXCL, LT_F_WRITE, 0, 2500);
	fam(&w2, PR_U, 0, 0);
	assert_int_equal(acq(x, &w2), -EINPROGRESS);
	lt_tick(x->t, 2300);
	expect_none(x);
	assert_int_equal(stats(x, FB).broken, 1);
	assert_int_equal(hold_of(x, FB, OC).state, LT_HS_BROKEN);
	assert_int_equal(hold_of(x, FB, OP).state, LT_HS_NORMAL);
	lt_tick(x->t, 2499);
	expect_none(x);
	lt_tick(x->t, 2500);
	expect_decided(x, &w2, -ETIMEDOUT);
	assert_int_equal(nhold(x, FB), 2);
}

static void test_deadlock_update(void **state)
{
	struct fx *x = *state;
	struct lt_request a, b, a2, b2, b3;

	assert_int_equal(upd(x, &a, FA, OA, 100, PR_U, 0), 0);
	assert_int_equal(upd(x, &b, FB, OB, 100, PR_U2, 0), 0);
	assert_int_equal(upd(x, &a2, FB, OA, 100, PR_U, 0), -EINPROGRESS);
	assert_int_equal(upd(x, &b2, FA, OB, 100, PR_U2, 0), -EDEADLK);
	assert_int_equal(b2.status, -EDEADLK);
	assert_int_equal(stats(x, FA).fail_edeadlk, 1);
	assert_int_equal(nwait(x, FA), 0);
	/* A pure reader closes no cycle through an update read. */
	mk(&b3, FA, OB, LT_SHARED, 0, 0, 0);
	assert_int_equal(acq(x, &b3), 0);
	assert_int_equal(nhold(x, FA), 2);
	assert_int_equal(rel(x, FB, OB, false), 0);
	expect_none(x); /* B's lease on FB */
	lt_tick(x->t, 1100);
	expect_decided(x, &a2, 0);
}

static void test_v2_off_by_default(void **state)
{
	struct fx *x = *state;
	struct lt_request a, b, c, d, e, f;
	struct lt_stats s;

	/* No lt_configure, no family: no long reads, no breaks, no joins,
	 * nothing learned. */
	assert_int_equal(upd(x, &a, FA, OA, 100, 0, 0), 0);
	assert_int_equal(lt_next_deadline(x->t), UINT64_MAX);
	assert_int_equal(wr(x, &b, FA, OB), -EINPROGRESS);
	assert_int_equal(lt_next_deadline(x->t), UINT64_MAX);
	x->now = 1000000000;
	lt_tick(x->t, x->now);
	expect_none(x);
	assert_int_equal(holder(x, FA).state, LT_HS_NORMAL);
	assert_int_equal(holder(x, FA).cls, LT_UPDATE);
	assert_int_equal(upd(x, &c, FA, OC, 100, 0, 0), -EINPROGRESS);
	assert_int_equal(rel(x, FA, OA, false), 0);
	lt_tick(x->t, x->now + 100);
	expect_decided(x, &b, 0);
	x->now += 100;
	assert_int_equal(rel(x, FA, OB, true), 0);
	expect_decided(x, &c, 0);
	assert_int_equal(rel(x, FA, OC, false), 0);
	/* An update lease running out with a reader waiting teaches nothing
	 * (calm_after_ns is 0). */
	assert_int_equal(upd(x, &d, FA, OD, 100, 0, 0), -EINPROGRESS);
	lt_tick(x->t, x->now + 100);
	expect_decided(x, &d, 0);
	assert_false(info(x, FA).calm);

	/* A holder without family is joined by nobody, and a requester
	 * without family joins nobody. */
	x->now += 100;
	mk(&e, FA, OP, LT_EXCL, LT_F_WRITE, 0, 0);
	fam(&e, PR_C, PR_P, 0);
	assert_int_equal(acq(x, &e), -EINPROGRESS);
	assert_int_equal(lt_cancel(x->t, &e, x->now), 0);
	expect_decided(x, &e, -EINTR);
	assert_int_equal(upd(x, &f, FB, OP, 100, PR_P, 0), 0);
	assert_int_equal(wr(x, &e, FB, OG), -EINPROGRESS);
	s = stats(x, FA);
	assert_int_equal(s.joins + s.broken + s.calm_learned + s.advisory_passes, 0);
	s = stats(x, FB);
	assert_int_equal(s.joins + s.broken + s.calm_learned + s.advisory_passes, 0);
	assert_false(info(x, FA).advisory);
}

/* ------------------------------------------------------------------ scale */

static void test_thousand_waiters_fifo(void **state)
{
	struct fx *x = *state;
	enum { N = 1000 };
	struct lt_request a, *w = calloc(N, sizeof(*w));
	const struct lt_request **q = calloc(N, sizeof(*q));

	assert_non_null(w);
	assert_non_null(q);
	assert_int_equal(wr(x, &a, FA, 1), 0);
	for (int i = 0; i < N; i++) {
		x->now++;
		assert_int_equal(wr(x, &w[i], FA, 100 + i), -EINPROGRESS);
	}
	assert_int_equal(lt_waiters(x->t, FA, q, N), N);
	for (int i = 0; i < N; i++)
		assert_ptr_equal(q[i], &w[i]);
	/* Cancel every tenth from the middle of the queue. */
	for (int i = 5; i < N; i += 10) {
		assert_int_equal(lt_cancel(x->t, &w[i], x->now), 0);
		expect_decided(x, &w[i], -EINTR);
	}
	lt_owner_t prev = 1;
	for (int i = 0; i < N; i++) {
		if (i % 10 == 5)
			continue;
		x->now += 10;
		assert_int_equal(rel(x, FA, prev, true), 0);
		expect_decided(x, &w[i], 0);
		expect_none(x);
		prev = 100 + i;
	}
	assert_int_equal(rel(x, FA, prev, true), 0);
	assert_int_equal(lt_file_count(x->t), 0);
	struct lt_stats s = stats(x, FA);
	assert_int_equal(s.contentions, N);
	assert_int_equal(s.waits, N);
	assert_int_equal(s.acquisitions, N - N / 10 + 1);
	free(w);
	free(q);
}

static void test_hundred_thousand_files(void **state)
{
	struct fx *x = *state;
	enum { N = 100000 };
	struct lt_request r;
	size_t n = 0;
	struct mallinfo2 before = mallinfo2(), after;

	for (uint64_t i = 0; i < N; i++) {
		mk(&r, 0x100000 + i, 1 + i % 7, LT_EXCL, i % 2 ? LT_F_WRITE : 0, 0, 0);
		assert_int_equal(acq(x, &r), 0);
		assert_int_equal(rel(x, 0x100000 + i, 1 + i % 7, i % 2), 0);
	}
	assert_int_equal(lt_file_count(x->t), 0);
	after = mallinfo2();
	assert_int_equal(lt_foreach_stats(x->t, count_stats, &n), 0);
	assert_int_equal(n, N);
	struct lt_stats s = stats(x, 0x100000 + 777);
	assert_int_equal(s.acquisitions, 1);
	assert_int_equal(s.holds, 1);

	/* Idle files cost their statistics record only. */
#if defined(__SANITIZE_ADDRESS__)
	(void)before;
	(void)after;
#else
	if (after.uordblks > before.uordblks) {
		size_t per_file = (after.uordblks - before.uordblks) / N;

		print_message("    %zu bytes per idle file\n", per_file);
		/* Its 88-byte record is one 96-byte chunk. */
		assert_true(per_file < 112);
	}
#endif
	lt_stats_reset(x->t);
	assert_int_equal(lt_stats_get(x->t, 0x100000 + 777, &s), -ENOENT);
	/* Still a working table after growth. */
	struct lt_request a, b;
	assert_int_equal(wr(x, &a, FA, OA), 0);
	assert_int_equal(wr(x, &b, FA, OB), -EINPROGRESS);
	assert_int_equal(rel(x, FA, OA, true), 0);
	expect_decided(x, &b, 0);
}

static void test_many_holds_per_owner(void **state)
{
	struct fx *x = *state;
	enum { N = 20000 };
	struct lt_request r;

	/* One owner with many files open, and many readers on one file. */
	for (uint64_t i = 0; i < N; i++) {
		mk(&r, 0x200000 + i, OA, LT_EXCL, LT_F_WRITE, 0, 0);
		assert_int_equal(acq(x, &r), 0);
		mk(&r, FA, 1000 + i, LT_SHARED, 0, 0, 0);
		assert_int_equal(acq(x, &r), 0);
	}
	assert_int_equal(lt_file_count(x->t), N + 1);
	assert_int_equal(nhold(x, FA), N);
	for (uint64_t i = 0; i < N; i++) {
		assert_int_equal(rel(x, 0x200000 + (N - 1 - i), OA, true), 0);
		assert_int_equal(rel(x, FA, 1000 + i, false), 0);
	}
	assert_int_equal(lt_file_count(x->t), 0);
}

/* ------------------------------------------------------------ random model */

/* Random operations, checking after each one what must always hold: a
 * queue head never fits (else it should have been granted), exclusive
 * holders are alone, handle counts match what was granted, an owner has at
 * most one lease, and lt_next_deadline is the minimum of what is pending. */

#define RF 6      /* files 1..RF, plus replacements */
#define RO 12     /* live owners at a time */

struct grant {
	lt_file_t file;
	lt_owner_t owner;
	bool barrier;
	bool write;             /* LT_F_WRITE or a barrier */
};

struct model {
	struct fx *x;
	uint64_t rng;
	lt_owner_t live[RO];
	lt_owner_t next_owner;
	struct lt_request *waiting[4096];
	size_t nwaiting;
	struct grant grants[4096];
	size_t ngrants;
	lt_file_t files[256];
	size_t nfiles;
	unsigned decided, parked, peeks, stale;
};

static uint64_t rnd(struct model *m, uint64_t n)
{
	m->rng = m->rng * 6364136223846793005ull + 1442695040888963407ull;
	return (m->rng >> 33) % n;
}

static bool owner_waiting(const struct model *m, lt_owner_t o)
{
	for (size_t i = 0; i < m->nwaiting; i++)
		if (m->waiting[i]->owner == o)
			return true;
	return false;
}

static void add_grant(struct model *m, lt_file_t f, lt_owner_t o, unsigned flags)
{
	assert_true(m->ngrants < 4096);
	m->grants[m->ngrants++] = (struct grant){
		f, o, flags & LT_F_BARRIER, flags & (LT_F_WRITE | LT_F_BARRIER)
	};
}

/* A peek must never be let in next to an open modification by a holder it
 * conflicts with. */
static void check_peek(const struct model *m, const struct lt_request *r)
{
	struct lt_holder_view v[64];
	size_t nh = lt_holders(m->x->t, r->file, v, 64);

	for (size_t i = 0; i < m->ngrants; i++) {
		const struct grant *g = &m->grants[i];

		if (g->file != r->file || g->owner == r->owner || !g->write)
			continue;
		for (size_t j = 0; j < nh && j < 64; j++)
			if (v[j].owner == g->owner)
				assert_true(r->cls == LT_SHARED && v[j].cls == LT_SHARED);
	}
}

static void drain(struct model *m)
{
	struct lt_request *r;

	while ((r = lt_take_decided(m->x->t))) {
		size_t i;

		for (i = 0; i < m->nwaiting && m->waiting[i] != r; i++)
			;
		assert_true(i < m->nwaiting); /* decided exactly once */
		m->waiting[i] = m->waiting[--m->nwaiting];
		assert_true(r->status == 0 || r->status == -ETIMEDOUT ||
			    r->status == -EINTR || r->status == -ESTALE);
		if (r->status == 0) {
			assert_int_equal(r->granted_file, r->file);
			add_grant(m, r->file, r->owner, r->flags);
		}
		if (r->status == -ESTALE)
			m->stale++;
		m->decided++;
		free(r);
	}
}

static unsigned handles_of(const struct model *m, lt_file_t f, lt_owner_t o)
{
	unsigned n = 0;

	for (size_t i = 0; i < m->ngrants; i++)
		n += m->grants[i].file == f && m->grants[i].owner == o;
	return n;
}

static void check(struct model *m)
{
	struct lock_table *t = m->x->t;
	uint64_t next = UINT64_MAX;
	size_t active = 0;
	lt_owner_t leased[64];
	size_t nleased = 0;

	for (size_t fi = 0; fi < m->nfiles; fi++) {
		lt_file_t f = m->files[fi];
		struct lt_holder_view v[64];
		const struct lt_request *q[256];
		size_t nh = lt_holders(t, f, v, 64);
		size_t nq = lt_waiters(t, f, q, 256);
		size_t excl = 0;

		assert_true(nh <= 64 && nq <= 256);
		if (nh || nq)
			active++;
		for (size_t i = 0; i < nh; i++) {
			excl += v[i].cls == LT_EXCL;
			assert_int_equal(v[i].handles, handles_of(m, f, v[i].owner));
			if (v[i].handles == 0) {
				assert_int_equal(v[i].cls, LT_EXCL);
				for (size_t j = 0; j < nleased; j++)
					assert_true(leased[j] != v[i].owner);
				leased[nleased++] = v[i].owner;
				if (v[i].lease_until < next)
					next = v[i].lease_until;
			}
		}
		assert_true(excl == 0 || nh == 1);
		for (size_t i = 0; i < nq; i++)
			if (q[i]->deadline && q[i]->deadline < next)
				next = q[i]->deadline;
		if (nq) {
			const struct lt_request *h = q[0];
			enum lt_class cls = (h->flags & LT_F_BARRIER) ? LT_EXCL : h->cls;
			bool conflict = false;

			for (size_t i = 0; i < nh; i++)
				if (v[i].owner != h->owner &&
				    (cls == LT_EXCL || v[i].cls == LT_EXCL))
					conflict = true;
			assert_true(conflict);
		}
	}
	/* Every granted handle shows up as a hold. */
	for (size_t i = 0; i < m->ngrants; i++) {
		struct lt_holder_view v[64];
		size_t nh = lt_holders(t, m->grants[i].file, v, 64);
		bool found = false;

		for (size_t j = 0; j < nh; j++)
			found |= v[j].owner == m->grants[i].owner;
		assert_true(found);
	}
	assert_int_equal(lt_file_count(t), active);
	assert_int_equal(lt_next_deadline(t), next);
}

static void model_acquire(struct model *m)
{
	struct fx *x = m->x;
	lt_owner_t o = m->live[rnd(m, RO)];
	struct lt_request *r;
	unsigned flags = 0;
	int rc;

	if (owner_waiting(m, o))
		return;
	r = calloc(1, sizeof(*r));
	assert_non_null(r);
	if (rnd(m, 2))
		flags |= LT_F_WRITE;
	if (rnd(m, 10) == 0)
		flags |= LT_F_NONBLOCK;
	if (rnd(m, 20) == 0)
		flags |= LT_F_BARRIER;
	mk(r, m->files[rnd(m, RF)], o, rnd(m, 3) ? LT_EXCL : LT_SHARED, flags,
	   rnd(m, 2) ? 50 : 0, rnd(m, 3) ? 0 : x->now + 1 + rnd(m, 200));
	rc = acq(x, r);
	if (rc == -EINPROGRESS) {
		assert_int_equal(r->state, LT_REQ_WAITING);
		assert_true(m->nwaiting < 4096);
		m->waiting[m->nwaiting++] = r;
		m->parked++;
		return;
	}
	assert_int_equal(r->status, rc);
	assert_true(rc == 0 || rc == -EAGAIN || rc == -EDEADLK ||
		    rc == -ESTALE || rc == LT_PEEK);
	if (rc == -EAGAIN)
		assert_true(flags & LT_F_NONBLOCK);
	if (rc == LT_PEEK) {
		assert_true(flags & LT_F_NONBLOCK);
		assert_false(flags & (LT_F_WRITE | LT_F_BARRIER));
		assert_int_equal(r->granted_file, 0);
		check_peek(m, r);
		m->peeks++;
	}
	if (rc == -ESTALE) {
		/* Only marks answer this at once, and never to a barrier. */
		assert_false(flags & LT_F_BARRIER);
		m->stale++;
	}
	if (rc == 0) {
		assert_int_equal(r->granted_file, r->file);
		add_grant(m, r->file, o, flags);
	}
	free(r);
}

static void model_release(struct model *m)
{
	size_t i;
	struct grant g;

	if (!m->ngrants)
		return;
	i = rnd(m, m->ngrants);
	g = m->grants[i];
	m->grants[i] = m->grants[--m->ngrants];
	if (g.barrier)
		assert_int_equal(lt_barrier_done(m->x->t, g.file, g.owner, m->x->now), 0);
	else
		assert_int_equal(rel(m->x, g.file, g.owner, g.write), 0);
}

static void model_step(struct model *m)
{
	struct fx *x = m->x;
	unsigned op = rnd(m, 100);

	if (op < 45) {
		model_acquire(m);
	} else if (op < 80) {
		model_release(m);
	} else if (op < 88) {
		x->now += rnd(m, 60);
		lt_tick(x->t, x->now);
	} else if (op < 92) {
		if (m->nwaiting) {
			struct lt_request *r = m->waiting[rnd(m, m->nwaiting)];

			assert_int_equal(lt_cancel(x->t, r, x->now), 0);
		}
	} else if (op < 97) {
		size_t i = rnd(m, RO);
		lt_owner_t heir = rnd(m, 3) ? m->live[rnd(m, RO)] : 0;

		if (heir == m->live[i])
			heir = 0;
		lt_owner_exit(x->t, m->live[i], heir, x->now);
		m->live[i] = m->next_owner++;
	} else if (op < 99) {
		/* A rename over a file: the name now has a fresh file. */
		size_t i = rnd(m, RF);
		lt_file_t nf = 1000 + m->nfiles;

		if (m->nfiles == 256 || rnd(m, 4))
			goto out;
		lt_replace(x->t, m->files[i], nf, x->now);
		m->files[m->nfiles++] = nf;
		/* Keep the old file checked; use the new one from now on. */
		lt_file_t old = m->files[i];
		m->files[i] = nf;
		m->files[m->nfiles - 1] = old;
	} else if (rnd(m, 2)) {
		lt_gone(x->t, m->files[rnd(m, RF)], x->now);
	} else {
		/* The daemon forgets a file; its id comes back as a new one. */
		lt_forget(x->t, m->files[rnd(m, m->nfiles)]);
	}
out:
	drain(m);
	check(m);
}

static void run_model(struct fx *x, uint64_t seed)
{
	struct model *m = calloc(1, sizeof(*m));

	assert_non_null(m);
	m->x = x;
	m->rng = seed;
	for (size_t i = 0; i < RO; i++)
		m->live[i] = 100 + i;
	m->next_owner = 1000;
	for (size_t i = 0; i < RF; i++)
		m->files[m->nfiles++] = 1 + i;
	for (int step = 0; step < 30000; step++)
		model_step(m);
	/* Everything comes to an end. Each release or expiry may grant a
	 * waiter, whose grant must be collected (drain) and released in turn. */
	for (;;) {
		drain(m);
		while (m->ngrants) {
			model_release(m);
			drain(m);
		}
		if (m->nwaiting) {
			assert_int_equal(lt_cancel(x->t, m->waiting[0], x->now), 0);
			continue;
		}
		lt_tick(x->t, UINT64_MAX - 1);
		drain(m);
		if (!m->ngrants && !m->nwaiting)
			break;
	}
	check(m);
	assert_int_equal(lt_file_count(x->t), 0);
	assert_int_equal(lt_next_deadline(x->t), UINT64_MAX);
	print_message("    %u parked, %u decided, %u peeks, %u stale\n", m->parked,
		      m->decided, m->peeks, m->stale);
	assert_true(m->parked > 1000);
	assert_true(m->peeks > 10);
	assert_true(m->stale > 10);
	assert_int_equal(m->parked, m->decided);
	free(m);
}

static void test_random_model(void **state)
{
	struct fx *x = *state;
	static const uint64_t seeds[] = { 0x5eed, 0xa11ce, 0xb0b, 0xfeed5eed };

	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		/* A fresh table each time: marks must not carry over. */
		lt_free(x->t);
		x->t = lt_new();
		assert_non_null(x->t);
		run_model(x, seeds[i]);
	}
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_immediate_grant),
		T(test_invalid),
		T(test_reentry),
		T(test_fifo_order),
		T(test_shared_batch_and_writer_fairness),
		T(test_upgrade),
		T(test_upgrade_alone_is_immediate),
		T(test_lease_start_and_expiry),
		T(test_lease_expires_alone),
		T(test_no_lease_without_lease_ns_or_shared),
		T(test_lease_ended_by_read_elsewhere),
		T(test_lease_ended_by_queued_read),
		T(test_lease_continued_by_own_write),
		T(test_write_close_hands_over),
		T(test_overlapping_handles),
		T(test_one_lease_per_owner),
		T(test_nonblock),
		T(test_deadlock_two_cycle),
		T(test_deadlock_three_cycle_and_chain),
		T(test_deadlock_through_lease),
		T(test_deadlock_through_queue_order),
		T(test_deadlock_double_upgrade),
		T(test_deadlock_walk_is_bounded),
		T(test_cancel),
		T(test_cancel_head_lets_readers_in),
		T(test_timeout),
		T(test_timeout_of_head_lets_readers_in),
		T(test_lease_end_beats_timeout_at_same_instant),
		T(test_lease_end_beats_timeout_deadline_first),
		T(test_next_deadline_mixes_leases_and_waits),
		T(test_exit_with_heir_passes_lease),
		T(test_exit_without_heir),
		T(test_exit_with_handles_open),
		T(test_exit_with_handles_open_no_heir),
		T(test_exit_with_handles_heir_gone_meanwhile),
		T(test_heir_waiting_gets_in),
		T(test_inherited_lease_replaces_heirs_own),
		T(test_new_owner_same_pid_gets_nothing),
		T(test_replace),
		T(test_replace_long_lease_and_shared),
		T(test_gone),
		T(test_replace_onto_own_lease),
		T(test_exit_naming_dead_heir),
		T(test_forward_late_open_free),
		T(test_forward_parks_behind_holder),
		T(test_forward_chain),
		T(test_forward_long_chain_is_bounded),
		T(test_gone_mark),
		T(test_forget_clears_mark),
		T(test_forget_splices_chain),
		T(test_barrier_not_forwarded),
		T(test_forward_exceptions),
		T(test_forward_onto_own_hold),
		T(test_peek_beside_readers),
		T(test_peek_refused_beside_writer),
		T(test_peek_forwarded),
		T(test_rename_rmw_simulation),
		T(test_foreach_stops_early),
		T(test_barrier_by_non_holder_waits),
		T(test_barrier_by_lease_holder),
		T(test_stats_scripted),
		T(test_stats_hist_extremes),
		T(test_stats_percentile_within_min_max),
		T(test_forget_removed_starts_clean),
		T(test_stats_reset),
		T(test_stats_uncontended_without_block),
		T(test_stats_block_on_first_rare_event),
		T(test_stats_block_freed),
		T(test_held_file_cost),
		T(test_update_excludes_update),
		T(test_family_child_joins_parent),
		T(test_family_join_waits_at_head),
		T(test_family_sibling_threads),
		T(test_family_inherited_lease),
		T(test_join_never_extends_section),
		T(test_calm_learned),
		T(test_calm_other_ends_and_written),
		T(test_calm_applies_to_live_holds),
		T(test_calm_not_without_waiter),
		T(test_calm_not_when_written_lately),
		T(test_calm_not_when_written_lately_reset),
		T(test_calm_not_when_lease_wrote),
		T(test_advisory),
		T(test_advisory_behind_mark),
		T(test_long_read),
		T(test_long_read_not_while_writing),
		T(test_writer_breaks_readers),
		T(test_nonblock_writer_waits_for_readers),
		T(test_lease_stretches_when_busy),
		T(test_writer_behind_writer_not_broken),
		T(test_deadlock_update),
		T(test_v2_off_by_default),
		T(test_thousand_waiters_fifo),
		T(test_hundred_thousand_files),
		T(test_many_holds_per_owner),
		T(test_random_model),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
