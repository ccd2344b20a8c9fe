/* The lock table. The rules are in locktable.h; this file is about making
 * them cheap.
 *
 * Layout
 *   - Every file that ever saw a request has a small record (struct frec)
 *     holding its statistics, in a chained hash keyed by file id. Only files
 *     with holds or parked requests carry a struct fstate (holders, queue);
 *     it is freed as soon as the file is idle, so an idle file costs its
 *     record (88 bytes) plus a hash slot. The record keeps only the
 *     counters that grants, hold ends and contentions move, and what was
 *     learned of the file (calm, advisory); those of waits,
 *     peeks and failures, with the wait histogram, live in one block
 *     (struct fstats_rare) allocated the first time one of them moves,
 *     which most files never see.
 *   - Owners (struct owner) live in a hash keyed by owner id, only while they
 *     hold something, wait, or are needed for an inheritance (a dead owner
 *     whose handles are still open, or the live heir it names).
 *   - Holds are in three places at once: the file's holder list, the owner's
 *     hold list, and a hash keyed by (file, owner) so that re-entry and
 *     release find them in O(1) however many files an owner holds or however
 *     many readers share a file.
 *   - Parked requests get a struct waiter (the caller's lt_request has no
 *     room for our links): it sits in the file's FIFO queue, the owner's
 *     list of parked requests and a hash keyed by the request's address
 *     (for lt_cancel). The decided list threads the lt_requests themselves
 *     through q_next.
 *   - Marks (forwarding and "gone", see locktable.h) live in their own hash
 *     keyed by file id, apart from struct frec: only replaced or removed
 *     files pay for them, and resetting statistics cannot lose one.
 *   - Lease ends and wait deadlines share one binary min-heap (struct dl is
 *     embedded in holds and waiters and knows its heap slot), so
 *     lt_next_deadline is O(1) and every insertion or removal O(log n). The
 *     heap's capacity is reserved when a hold or waiter is created, so that
 *     starting a lease later can never fail.
 *
 * Every change that can unblock a queue, or leave a file or owner with no
 * state, only marks it dirty; the public entry points finish by granting
 * what the dirty queues allow (which may dirty other files: a granted read
 * ends its owner's lease elsewhere) and then freeing what became empty. That
 * keeps the cascades iterative and means no record is freed while a caller
 * up the stack still points at it.
 *
 * The table is not thread-safe: fs/locking.c serializes every call
 * (its mutex is the lock that protects all state below). */
#include "locktable.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hashtab.h"

#define container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* ------------------------------------------------------------------ lists */

struct dlist {
	struct dlist *next, *prev;
};

static void dl_init(struct dlist *l)
{
	l->next = l->prev = l;
}

static bool dl_empty(const struct dlist *l)
{
	return l->next == l;
}

static void dl_insert(struct dlist *n, struct dlist *prev, struct dlist *next)
{
	n->prev = prev;
	n->next = next;
	prev->next = n;
	next->prev = n;
}

static void dl_add_tail(struct dlist *l, struct dlist *n)
{
	dl_insert(n, l->prev, l);
}

static void dl_add_head(struct dlist *l, struct dlist *n)
{
	dl_insert(n, l, l->next);
}

static void dl_del(struct dlist *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	dl_init(n);
}

/* --------------------------------------------------------------- records */

enum dl_kind {
	DL_LEASE, /* sorts first at equal times: a lease ending at the instant a
	             waiter times out hands the file over instead of failing it */
	DL_LONG,  /* an update-intent read held open turns long (shares) */
	DL_WAIT,  /* a waiter's lock timeout, or its time to break readers */
};
/* Heap slots are 32-bit so that struct dl fits in 16 bytes (every hold and
 * waiter embeds one). heap_reserve keeps the number of holds and waiters
 * below DL_NONE, which also bounds the 32-bit counts in struct fstate. */
#define DL_NONE UINT32_MAX

/* An entry of the deadline heap, embedded in a hold or a waiter. */
struct dl {
	uint64_t when;
	uint32_t idx;           /* slot in the heap, DL_NONE when not in it */
	unsigned char kind;
};

/* What a file with holds or parked requests needs beyond its statistics.
 * The counts are 32-bit: they count holds and waiters, of which there are
 * fewer than DL_NONE (see heap_reserve). The small fields come last so that
 * they share one word. */
struct fstate {
	struct dlist holds;     /* struct hold.f_link, in grant order */
	struct dlist queue;     /* struct waiter.q_link, FIFO */
	struct dlist active;    /* in lock_table.active */
	struct frec *f;         /* the record this belongs to */
	struct frec *dirty_next;
	uint64_t walk_epoch;
	/* Holds that are not broken, by class (leases included); long
	 * update-intent holds count as shared (see count_hold). */
	uint32_t n_excl;
	uint32_t n_shared;
	uint32_t n_update;
	uint32_t n_wait;
	bool dirty;
	unsigned char walk_level; /* deadlock walk memo, valid for walk_epoch */
};

/* The counters every grant and every hold end moves, kept in the record.
 * Contentions would belong with the rare ones, but the record has room for
 * them within its malloc chunk, and here an allocation failure cannot lose
 * one. */
struct fstats {
	uint64_t acquisitions, contentions;
	uint64_t holds, hold_total, hold_max;
};

/* The counters only waits, peeks and failures move. Most files never need
 * them, so they live apart, allocated by file_rare() on first use; a file
 * without this block reports zeros for all of them. */
struct fstats_rare {
	uint64_t waits;
	uint64_t wait_total, wait_min, wait_max;
	uint64_t fail_eagain, fail_edeadlk, fail_timeout, fail_intr;
	uint64_t peeks;
	uint64_t joins, broken, calm_learned, advisory_passes;
	uint32_t hist[LT_HIST_BUCKETS];
};

struct frec {
	struct hlink hl;        /* lock_table.files */
	lt_file_t id;
	struct fstate *st;      /* NULL while the file is idle */
	struct fstats_rare *rare; /* NULL until one of its counters moves */
	struct fstats s;
	uint64_t last_write;    /* last write or barrier granted; 0: never */
	bool calm;              /* learned: readers share (locktable.h) */
	bool advisory;          /* programs lock it themselves */
};

struct owner {
	struct hlink hl;        /* lock_table.owners */
	lt_owner_t id;
	struct dlist holds;     /* struct hold.o_link */
	struct dlist waits;     /* struct waiter.o_link */
	struct hold *lease;     /* its one lease, if any */
	/* A dead owner whose handles are still open remembers who inherits
	 * them; the heir lists such owners so that its own exit can pass them
	 * on to its heir in turn. */
	struct owner *heir;
	struct dlist heir_link; /* in heir->bequests */
	struct dlist bequests;
	bool dead;
	bool dirty;
	/* Its last request was answered -ESTALE by a mark or a move: the next
	 * one is the kernel's retry, which no mark may refuse again if it asks
	 * for one of these two files (retry_to is 0 for "gone"). Keeps the
	 * record alive until then. */
	bool retry_armed;
	lt_file_t retry_from, retry_to;
	struct owner *dirty_next;
	uint64_t walk_epoch;
	/* Its process, then that process's ancestors, as its last request
	 * named them (or as lt_owner_exit2 named an heir's process). */
	lt_proc_t family[LT_FAMILY_MAX];
};

struct hold {
	struct hlink hl;        /* lock_table.holds, keyed by (file, owner) */
	struct frec *f;
	struct owner *o;
	struct dlist f_link, o_link;
	struct dl dl;           /* in the heap while this is a lease */
	uint64_t since;
	uint64_t last_lease_ns; /* of the most recently granted request */
	unsigned last_flags;    /* of the most recently granted request */
	unsigned handles;       /* 0: a lease */
	unsigned wr_handles;    /* of them, writes and barriers (for peeks) */
	enum lt_class cls;
	/* Granted by joining a hold of its program whose section ends then
	 * (the joined lease's end); 0: not bounded. */
	uint64_t section_end;
	bool inherited;         /* passed on by an exited owner */
	bool joined;            /* granted by joining its program's hold */
	bool long_;             /* an update-intent read held long: shares */
	bool broken;            /* a waiting writer stopped waiting for it */
	unsigned char stretched;/* times its lease was stretched (busy hook) */
};

struct waiter {
	struct hlink hl;        /* lock_table.waiters, keyed by req's address */
	struct lt_request *req;
	struct frec *f;         /* the queue it is in (moves on lt_replace) */
	struct owner *o;
	struct dlist q_link, o_link;
	struct dl dl;           /* in the heap when req->deadline != 0 */
	enum lt_class cls;      /* as asked, but barriers are exclusive */
	bool stale;             /* moved here by lt_replace or a mark */
	bool broke;             /* it broke the readers in its way already */
	uint64_t break_at;      /* when it breaks them; 0: never */
};

/* A marked file (replaced or removed, see "marks" in locktable.h), or a
 * current file that marks lead to. The back links let lt_forget splice a
 * forgotten file out of the chains that run through it. */
struct mark {
	struct hlink hl;        /* lock_table.marks */
	lt_file_t id;
	struct mark *to;        /* the replacement; NULL when current or gone */
	struct dlist in;        /* struct mark.in_link of those leading here */
	struct dlist in_link;   /* in to->in */
	bool gone;
};
_Static_assert(sizeof(struct mark) == LT_MARK_BYTES, "LT_MARK_BYTES is stale");

/* Each record is one malloc chunk; these keep a held file's three records
 * (frec, fstate, hold) in chunks of 96, 112 and 128 bytes on 64-bit glibc,
 * whose chunk is the request plus 8, rounded up to 16. */
#if UINTPTR_MAX == UINT64_MAX
_Static_assert(sizeof(struct frec) <= 88, "struct frec outgrew its chunk");
_Static_assert(sizeof(struct fstate) <= 104, "struct fstate outgrew its chunk");
_Static_assert(sizeof(struct hold) <= 120, "struct hold outgrew its chunk");
_Static_assert(sizeof(struct waiter) <= 104, "struct waiter outgrew its chunk");
#endif
_Static_assert(sizeof(((struct fstats_rare *)0)->hist) ==
	       sizeof(((struct lt_stats *)0)->wait_hist), "histogram sizes differ");

struct lock_table {
	struct htab files, owners, holds, waiters, marks;
	size_t n_marked;        /* marks with `to` or `gone` set */
	struct dlist active;    /* struct fstate.active */
	size_t n_active;
	struct dl **heap;
	size_t heap_n, heap_cap;
	struct lt_request *dec_head, *dec_tail;
	struct frec *dirty_files;
	struct owner *dirty_owners;
	uint64_t epoch;         /* of the current deadlock walk */
	struct waiter **walk_stack;
	size_t walk_n;
	struct lt_config cfg;
	lt_busy_fn busy;
	void *busy_arg;
};

static uint64_t frec_hash(const struct hlink *l)
{
	return hash_mix64(container_of(l, struct frec, hl)->id);
}

static uint64_t owner_hash(const struct hlink *l)
{
	return hash_mix64(container_of(l, struct owner, hl)->id);
}

static uint64_t hold_key(lt_file_t f, lt_owner_t o)
{
	return hash_mix64(f ^ hash_mix64(o));
}

static uint64_t hold_hash(const struct hlink *l)
{
	const struct hold *h = container_of(l, struct hold, hl);

	return hold_key(h->f->id, h->o->id);
}

static uint64_t mark_hash(const struct hlink *l)
{
	return hash_mix64(container_of(l, struct mark, hl)->id);
}

static uint64_t req_key(const struct lt_request *req)
{
	return hash_mix64((uint64_t)(uintptr_t)req);
}

static uint64_t waiter_hash(const struct hlink *l)
{
	return req_key(container_of(l, struct waiter, hl)->req);
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* A read is what ends a lease elsewhere; barriers modify like writes. */
static bool is_read(unsigned flags)
{
	return !(flags & (LT_F_WRITE | LT_F_BARRIER));
}

static bool req_is_read(const struct lt_request *req)
{
	return is_read(req->flags);
}

/* ------------------------------------------------------------------ heap */

static bool dl_before(const struct dl *a, const struct dl *b)
{
	return a->when < b->when || (a->when == b->when && a->kind < b->kind);
}

static void heap_set(struct lock_table *t, size_t i, struct dl *d)
{
	t->heap[i] = d;
	d->idx = (uint32_t)i;
}

static void heap_up(struct lock_table *t, size_t i)
{
	struct dl *d = t->heap[i];

	while (i > 0) {
		size_t p = (i - 1) / 2;

		if (!dl_before(d, t->heap[p]))
			break;
		heap_set(t, i, t->heap[p]);
		i = p;
	}
	heap_set(t, i, d);
}

static void heap_down(struct lock_table *t, size_t i)
{
	struct dl *d = t->heap[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= t->heap_n)
			break;
		if (c + 1 < t->heap_n && dl_before(t->heap[c + 1], t->heap[c]))
			c++;
		if (!dl_before(t->heap[c], d))
			break;
		heap_set(t, i, t->heap[c]);
		i = c;
	}
	heap_set(t, i, d);
}

/* Keeps room for one entry per hold and waiter, the most there can be.
 * Every hold and waiter is created after this succeeds, so refusing here
 * is what keeps their number, and so every heap slot, below DL_NONE. */
static int heap_reserve(struct lock_table *t)
{
	size_t need = t->holds.n + t->waiters.n + 1;
	size_t cap;
	struct dl **h;

	if (need >= DL_NONE)
		return -ENOMEM;
	if (t->heap_cap >= need)
		return 0;
	cap = t->heap_cap ? t->heap_cap * 2 : 64;
	while (cap < need)
		cap *= 2;
	h = realloc(t->heap, cap * sizeof(*h));
	if (!h)
		return -ENOMEM;
	t->heap = h;
	t->heap_cap = cap;
	return 0;
}

static void heap_push(struct lock_table *t, struct dl *d)
{
	heap_set(t, t->heap_n++, d);
	heap_up(t, d->idx);
}

static void heap_remove(struct lock_table *t, struct dl *d)
{
	size_t i = d->idx;
	struct dl *last;

	if (i == DL_NONE)
		return;
	last = t->heap[--t->heap_n];
	if (last != d) {
		heap_set(t, i, last);
		heap_up(t, i);
		heap_down(t, last->idx);
	}
	d->idx = DL_NONE;
}

static void heap_update(struct lock_table *t, struct dl *d, uint64_t when)
{
	d->when = when;
	heap_up(t, d->idx);
	heap_down(t, d->idx);
}

/* ----------------------------------------------------------------- files */

static struct frec *file_find(const struct lock_table *t, lt_file_t id)
{
	struct hlink *l = ht_first(&t->files, hash_mix64(id));

	for (; l; l = l->next) {
		struct frec *f = container_of(l, struct frec, hl);

		if (f->id == id)
			return f;
	}
	return NULL;
}

static struct frec *file_get(struct lock_table *t, lt_file_t id)
{
	struct frec *f = file_find(t, id);

	if (f)
		return f;
	f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->id = id;
	ht_insert(&t->files, &f->hl, hash_mix64(id));
	return f;
}

static struct fstate *file_state(struct lock_table *t, struct frec *f)
{
	struct fstate *st = f->st;

	if (st)
		return st;
	st = calloc(1, sizeof(*st));
	if (!st)
		return NULL;
	dl_init(&st->holds);
	dl_init(&st->queue);
	dl_add_tail(&t->active, &st->active);
	t->n_active++;
	st->f = f;
	f->st = st;
	return st;
}

static void file_dirty(struct lock_table *t, struct frec *f)
{
	if (!f->st || f->st->dirty)
		return;
	f->st->dirty = true;
	f->st->dirty_next = t->dirty_files;
	t->dirty_files = f;
}

static void file_settle(struct lock_table *t, struct frec *f)
{
	struct fstate *st = f->st;

	if (!st || st->dirty || !dl_empty(&st->holds) || !dl_empty(&st->queue))
		return;
	dl_del(&st->active);
	t->n_active--;
	free(st);
	f->st = NULL;
}

/* Without memory the event goes uncounted (it is tried again at the next
 * one); whatever decision is being made goes on regardless. */
static struct fstats_rare *file_rare(struct frec *f)
{
	if (!f->rare)
		f->rare = calloc(1, sizeof(*f->rare));
	return f->rare;
}

static void stats_wait(struct frec *f, uint64_t d, int status)
{
	struct fstats_rare *s = file_rare(f);
	unsigned b = 0;

	if (!s)
		return;
	s->waits++;
	s->wait_total += d;
	if (s->waits == 1 || d < s->wait_min)
		s->wait_min = d;
	if (d > s->wait_max)
		s->wait_max = d;
	if (status == -ETIMEDOUT)
		s->fail_timeout++;
	else if (status == -EINTR)
		s->fail_intr++;
	if (d > 1)
		b = 63 - (unsigned)__builtin_clzll(d);
	if (b >= LT_HIST_BUCKETS)
		b = LT_HIST_BUCKETS - 1;
	s->hist[b]++;
}

/* Zeroes a file's statistics, and frees its record when nothing else is
 * kept in it. What was learned of the file is no statistic: dropping it
 * would change what later requests get. The time of the last write decides
 * whether an unused lease may teach that the file is calm, so it stays while
 * calm files are learned at all (without learning it is only shown). */
static void file_clear_stats(struct lock_table *t, struct frec *f)
{
	memset(&f->s, 0, sizeof(f->s));
	free(f->rare);
	f->rare = NULL;
	if (f->st || f->calm || f->advisory || (f->last_write && t->cfg.calm_after_ns))
		return;
	ht_remove(&t->files, &f->hl, hash_mix64(f->id));
	free(f);
}

/* The counters below live in the rare block; see file_rare(). */
static void stats_peek(struct frec *f)
{
	struct fstats_rare *s = file_rare(f);

	if (s)
		s->peeks++;
}

static void stats_refusal(struct frec *f, int status)
{
	struct fstats_rare *s = file_rare(f);

	if (!s)
		return;
	if (status == -EAGAIN)
		s->fail_eagain++;
	else if (status == -EDEADLK)
		s->fail_edeadlk++;
}

/* ----------------------------------------------------------------- marks */

static bool mark_is_set(const struct mark *m)
{
	return m->to || m->gone;
}

static struct mark *mark_find(const struct lock_table *t, lt_file_t id)
{
	struct hlink *l;

	if (t->marks.n == 0)
		return NULL;
	for (l = ht_first(&t->marks, hash_mix64(id)); l; l = l->next) {
		struct mark *m = container_of(l, struct mark, hl);

		if (m->id == id)
			return m;
	}
	return NULL;
}

static struct mark *mark_get(struct lock_table *t, lt_file_t id)
{
	struct mark *m = mark_find(t, id);

	if (m)
		return m;
	m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->id = id;
	dl_init(&m->in);
	dl_init(&m->in_link);
	ht_insert(&t->marks, &m->hl, hash_mix64(id));
	return m;
}

/* Frees a record that is neither marked nor led to. */
static void mark_put(struct lock_table *t, struct mark *m)
{
	if (mark_is_set(m) || !dl_empty(&m->in))
		return;
	ht_remove(&t->marks, &m->hl, hash_mix64(m->id));
	free(m);
}

/* Makes `m` lead to `to` (NULL: nowhere), or be gone. The record it led to
 * before may go; `m` itself stays for the caller to put. */
static void mark_point(struct lock_table *t, struct mark *m, struct mark *to,
		       bool gone)
{
	struct mark *old = m->to;

	if (mark_is_set(m))
		t->n_marked--;
	if (old)
		dl_del(&m->in_link);
	m->to = to;
	m->gone = gone;
	if (to)
		dl_add_tail(&to->in, &m->in_link);
	if (mark_is_set(m))
		t->n_marked++;
	if (old && old != to)
		mark_put(t, old);
}

/* The current incarnation of marked file `m`: 0 when the chain ends in a
 * removed file. lt_replace keeps the chains free of loops; the hop limit
 * bounds the cost of a long chain of files the daemon still knows. */
static lt_file_t mark_follow(const struct mark *m)
{
	for (unsigned hops = 0;; hops++) {
		if (m->gone)
			return 0;
		if (!m->to || hops == LT_FORWARD_MAX)
			return m->id;
		m = m->to;
	}
}

/* ---------------------------------------------------------------- owners */

static struct owner *owner_find(const struct lock_table *t, lt_owner_t id)
{
	struct hlink *l = ht_first(&t->owners, hash_mix64(id));

	for (; l; l = l->next) {
		struct owner *o = container_of(l, struct owner, hl);

		if (o->id == id)
			return o;
	}
	return NULL;
}

static void owner_dirty(struct lock_table *t, struct owner *o)
{
	if (o->dirty)
		return;
	o->dirty = true;
	o->dirty_next = t->dirty_owners;
	t->dirty_owners = o;
}

/* `o` was just told -ESTALE for `from` by a mark or a move (see retry_armed). */
static void owner_arm_retry(struct lock_table *t, struct owner *o, lt_file_t from,
			    lt_file_t to)
{
	if (o->dead)
		return;
	o->retry_armed = true;
	o->retry_from = from;
	o->retry_to = to;
	owner_dirty(t, o);
}

static void hold_end(struct lock_table *t, struct hold *h, uint64_t now);

/* Consumes the arming: true when this request is the retry it was for. A
 * retry that came back to the old file (another name of it, /proc/PID/fd)
 * does not want the new one: the lease the forward made there ends. */
static bool owner_take_retry(struct lock_table *t, struct owner *o, lt_file_t file,
			     uint64_t now)
{
	bool hit = o->retry_armed && (file == o->retry_from || file == o->retry_to);

	if (!o->retry_armed)
		return false;
	o->retry_armed = false;
	owner_dirty(t, o);
	if (hit && file == o->retry_from && o->retry_to && file != o->retry_to &&
	    o->lease && o->lease->f->id == o->retry_to)
		hold_end(t, o->lease, now);
	return hit;
}

/* A new record starts dirty so that it goes away again if nothing sticks. */
static struct owner *owner_get(struct lock_table *t, lt_owner_t id)
{
	struct owner *o = owner_find(t, id);

	if (o)
		return o;
	o = calloc(1, sizeof(*o));
	if (!o)
		return NULL;
	o->id = id;
	dl_init(&o->holds);
	dl_init(&o->waits);
	dl_init(&o->heir_link);
	dl_init(&o->bequests);
	ht_insert(&t->owners, &o->hl, hash_mix64(id));
	owner_dirty(t, o);
	return o;
}

static void settle_owners(struct lock_table *t)
{
	while (t->dirty_owners) {
		struct owner *o = t->dirty_owners;

		t->dirty_owners = o->dirty_next;
		o->dirty = false;
		if (!dl_empty(&o->holds) || !dl_empty(&o->waits) ||
		    !dl_empty(&o->bequests) || (o->retry_armed && !o->dead))
			continue;
		if (o->heir) {
			dl_del(&o->heir_link);
			owner_dirty(t, o->heir);
		}
		ht_remove(&t->owners, &o->hl, hash_mix64(o->id));
		free(o);
	}
}

/* ----------------------------------------------------------------- holds */

static struct hold *hold_find(const struct lock_table *t, lt_file_t f, lt_owner_t o)
{
	struct hlink *l = ht_first(&t->holds, hold_key(f, o));

	for (; l; l = l->next) {
		struct hold *h = container_of(l, struct hold, hl);

		if (h->f->id == f && h->o->id == o)
			return h;
	}
	return NULL;
}

/* Which counter of its file a hold is in: none when broken; long
 * update-intent holds share. */
static uint32_t *hold_counter(struct fstate *st, const struct hold *h)
{
	if (h->broken)
		return NULL;
	if (h->cls == LT_EXCL)
		return &st->n_excl;
	if (h->cls == LT_UPDATE && !h->long_)
		return &st->n_update;
	return &st->n_shared;
}

/* Call with add = false before changing cls, long_ or broken, and with add
 * = true after. */
static void count_hold(struct fstate *st, const struct hold *h, bool add)
{
	uint32_t *n = hold_counter(st, h);

	if (!n)
		return;
	if (add)
		(*n)++;
	else
		(*n)--;
}

/* ---------------------------------------------------------------- programs */

/* What a hold acts as now: update intent shares on a calm file and once
 * held long. Broken holds act as nothing (callers check first). */
static enum lt_class hold_class(const struct hold *h)
{
	if (h->cls == LT_UPDATE && (h->long_ || h->f->calm))
		return LT_SHARED;
	return h->cls;
}

/* What a request acts as on `f`: barriers are exclusive, and update intent
 * is shared on a calm file. */
static enum lt_class req_class(const struct frec *f, enum lt_class cls, unsigned flags)
{
	if (flags & LT_F_BARRIER)
		return LT_EXCL;
	if (cls == LT_UPDATE && f->calm)
		return LT_SHARED;
	return cls;
}

static bool classes_conflict(enum lt_class held, enum lt_class asked)
{
	if (held == LT_EXCL || asked == LT_EXCL)
		return true;
	return held == LT_UPDATE && asked == LT_UPDATE;
}

/* Whether process p is one of o's ancestors (not o's own process). */
static bool is_ancestor(const struct owner *o, lt_proc_t p)
{
	if (!p)
		return false;
	for (unsigned i = 1; i < LT_FAMILY_MAX && o->family[i]; i++)
		if (o->family[i] == p)
			return true;
	return false;
}

/* Whether a request by `o` (a read unless `flags` say otherwise) may join
 * hold `h` of another owner: see "Programs" in locktable.h. */
static bool joinable(const struct hold *h, const struct owner *o, unsigned flags)
{
	lt_proc_t hp = h->o->family[0];

	if (!hp || !o->family[0] || h->o == o)
		return false;
	if (is_ancestor(o, hp))
		return true;
	if (hp == o->family[0])
		return !is_read(flags) || h->inherited;
	return false;
}

/* Does `h` stand in the way of a request by `o` of class `cls` (as it acts
 * on the file) with `flags`? */
static bool blocks(const struct hold *h, const struct owner *o, enum lt_class cls,
		   unsigned flags)
{
	if (h->o == o || h->broken || h->f->advisory)
		return false;
	if (!classes_conflict(hold_class(h), cls))
		return false;
	return !joinable(h, o, flags);
}

/* Could `o` hold `f` in class `cls` (as it acts there) next to the current
 * holders? The counters answer the common cases without a walk. */
static bool compatible(const struct lock_table *t, const struct frec *f,
		       const struct owner *o, enum lt_class cls, unsigned flags)
{
	const struct fstate *st = f->st;
	const struct dlist *n;

	(void)t;
	if (!st || f->advisory)
		return true;
	if (st->n_excl == 0) {
		if (cls == LT_SHARED)
			return true;
		if (cls == LT_UPDATE && (st->n_update == 0 || f->calm))
			return true;
		if (st->n_update == 0 && st->n_shared == 0)
			return true;
	}
	for (n = st->holds.next; n != &st->holds; n = n->next)
		if (blocks(container_of(n, struct hold, f_link), o, cls, flags))
			return false;
	return true;
}

/* A hold of o's program on f that o's request would join (a lease first:
 * it bounds the section), or NULL. */
static struct hold *family_hold(const struct frec *f, const struct owner *o,
				unsigned flags)
{
	struct hold *found = NULL;
	const struct dlist *n;

	if (!f->st || !o->family[0])
		return NULL;
	for (n = f->st->holds.next; n != &f->st->holds; n = n->next) {
		struct hold *h = container_of(n, struct hold, f_link);

		if (h->broken || !joinable(h, o, flags))
			continue;
		if (h->handles == 0)
			return h;
		if (!found)
			found = h;
	}
	return found;
}

/* The file was written (or is about to be): it is hot again. */
static void file_written(struct lock_table *t, struct frec *f, uint64_t now)
{
	f->last_write = now ? now : 1;
	if (f->calm) {
		f->calm = false;
		file_dirty(t, f);
	}
}

/* A lease of `h` is ending unused (expired, its owner moved on or died
 * without heir). When readers wait for it, on a file not written lately,
 * the file is learned calm. */
static void learn_calm(struct lock_table *t, struct hold *h, uint64_t now)
{
	struct frec *f = h->f;
	const struct dlist *n;
	struct fstats_rare *r;

	/* A lease that had to be stretched belonged to a program that was still
	 * at work on a busy machine: no evidence of a pure reader. */
	if (!t->cfg.calm_after_ns || h->cls != LT_UPDATE || f->calm || !f->st ||
	    h->handles != 0 || h->stretched)
		return;
	if (f->last_write && now - f->last_write < t->cfg.calm_after_ns)
		return;
	for (n = f->st->queue.next; n != &f->st->queue; n = n->next) {
		const struct waiter *w = container_of(n, struct waiter, q_link);

		if (w->cls == LT_UPDATE && is_read(w->req->flags))
			break;
	}
	if (n == &f->st->queue)
		return;
	f->calm = true;
	r = file_rare(f);
	if (r)
		r->calm_learned++;
	file_dirty(t, f);
}

/* ----------------------------------------------------------------- holds */

/* A new hold with no handle yet; the caller adds one or makes it a lease. */
static struct hold *hold_new(struct lock_table *t, struct frec *f, struct owner *o,
			     enum lt_class cls, uint64_t now)
{
	struct fstate *st;
	struct hold *h;

	if (heap_reserve(t) < 0)
		return NULL;
	st = file_state(t, f);
	if (!st)
		return NULL;
	h = calloc(1, sizeof(*h));
	if (!h) {
		file_dirty(t, f);
		return NULL;
	}
	h->f = f;
	h->o = o;
	h->cls = cls;
	h->since = now;
	h->dl.idx = DL_NONE;
	h->dl.kind = DL_LEASE;
	dl_add_tail(&st->holds, &h->f_link);
	dl_add_tail(&o->holds, &h->o_link);
	count_hold(st, h, true);
	ht_insert(&t->holds, &h->hl, hold_key(f->id, o->id));
	return h;
}

static void hold_end(struct lock_table *t, struct hold *h, uint64_t now)
{
	struct frec *f = h->f;
	struct owner *o = h->o;
	uint64_t d = now > h->since ? now - h->since : 0;

	f->s.holds++;
	f->s.hold_total += d;
	if (d > f->s.hold_max)
		f->s.hold_max = d;
	heap_remove(t, &h->dl);
	if (o->lease == h)
		o->lease = NULL;
	dl_del(&h->f_link);
	dl_del(&h->o_link);
	count_hold(f->st, h, false);
	ht_remove(&t->holds, &h->hl, hold_key(f->id, o->id));
	free(h);
	file_dirty(t, f);
	owner_dirty(t, o);
}

/* A due lease gets its own length once more when the machine was too busy
 * for its holder to run (see lt_set_busy_hook), a bounded number of times,
 * never past the section it joined. Returns whether it did. */
static bool lease_stretch(struct lock_table *t, struct hold *h, uint64_t now)
{
	uint64_t until;

	if (!t->busy || h->stretched >= t->cfg.lease_stretch_max || !h->last_lease_ns ||
	    (h->section_end && h->section_end <= now) || !t->busy(t->busy_arg, h->o->id))
		return false;
	h->stretched++;
	until = sat_add(now, h->last_lease_ns);
	if (h->section_end && until > h->section_end)
		until = h->section_end;
	heap_update(t, &h->dl, until);
	return true;
}

/* A lease ends without having been used for a write. */
static void lease_lapse(struct lock_table *t, struct hold *h, uint64_t now)
{
	learn_calm(t, h, now);
	hold_end(t, h, now);
}

/* The owner has moved on to another file: its lease there is over. */
static void end_other_lease(struct lock_table *t, struct owner *o,
			    const struct frec *f, uint64_t now)
{
	if (o->lease && o->lease->f != f)
		lease_lapse(t, o->lease, now);
}

/* Makes a handle-less hold a lease. The newest lease wins: an owner keeps
 * at most one, and the one it just got is the one it is working on. A
 * lease made by joining ends with the section it joined. */
static void lease_start(struct lock_table *t, struct hold *h, uint64_t until,
			uint64_t now)
{
	struct owner *o = h->o;

	if (h->section_end && until > h->section_end)
		until = h->section_end;
	heap_remove(t, &h->dl);
	if (o->lease && o->lease != h)
		lease_lapse(t, o->lease, now);
	o->lease = h;
	h->dl.when = until;
	h->dl.kind = DL_LEASE;
	heap_push(t, &h->dl);
}

static void lease_stop(struct lock_table *t, struct hold *h)
{
	heap_remove(t, &h->dl);
	if (h->o->lease == h)
		h->o->lease = NULL;
}

/* Sets a hold's long_ or broken flag, keeping the counters right. */
static void hold_set_long(struct hold *h, bool v)
{
	count_hold(h->f->st, h, false);
	h->long_ = v;
	count_hold(h->f->st, h, true);
}

static void hold_set_class(struct hold *h, enum lt_class cls)
{
	count_hold(h->f->st, h, false);
	h->cls = cls;
	count_hold(h->f->st, h, true);
}

/* In the middle of a modification: a write or barrier handle is open, or
 * the most recent grant was one and handles are open. A lease never is. */
static bool hold_writing(const struct hold *h)
{
	return h->handles > 0 && (h->wr_handles > 0 || !is_read(h->last_flags));
}

/* May a non-blocking read by `o` of class `cls` look at `f` without a hold,
 * i.e. is none of the holders it conflicts with writing? A shared read
 * conflicts with exclusive holds only, and an exclusive hold is alone, so
 * this is cheap however many readers share the file. */
static bool peekable(const struct frec *f, const struct owner *o,
		     enum lt_class cls)
{
	const struct dlist *n;

	if (!f->st || (cls == LT_SHARED && f->st->n_excl == 0))
		return true;
	for (n = f->st->holds.next; n != &f->st->holds; n = n->next) {
		const struct hold *h = container_of(n, struct hold, f_link);

		if (!blocks(h, o, cls, 0))
			continue;
		if (hold_writing(h))
			return false;
	}
	return true;
}

/* The long-read clock of an update-intent hold runs while it has handles
 * open for reading only. A read opened beside a write handle still open
 * (an LT_UPDATE request with LT_F_WRITE) starts no clock: the hold is
 * writing, and a long hold would let other update reads in beside that
 * write ("without a write", locktable.h). A write grant already stops a
 * running clock. */
static void long_timer(struct lock_table *t, struct hold *h, uint64_t now)
{
	if (!t->cfg.long_read_ns || h->cls != LT_UPDATE || h->long_ ||
	    h->dl.idx != DL_NONE || hold_writing(h))
		return;
	h->dl.kind = DL_LONG;
	h->dl.when = sat_add(now, t->cfg.long_read_ns);
	heap_push(t, &h->dl);
}

/* One more handle for `o` on `f`; the request becomes "the most recently
 * granted" one of the hold. `cls` is the class it acts as on f. */
static int grant_hold(struct lock_table *t, struct frec *f, struct owner *o,
		      enum lt_class cls, unsigned flags, uint64_t lease_ns,
		      uint64_t now)
{
	struct hold *h = hold_find(t, f->id, o->id);
	/* A hold that stops writing (its most recent grant becomes a read)
	 * may let in a writer that broke the readers in its way (see
	 * only_readers_block): that is a change, its queue must be pumped. */
	bool was_writing = h && hold_writing(h);

	if (!h) {
		struct hold *j = family_hold(f, o, flags);

		h = hold_new(t, f, o, cls, now);
		if (!h)
			return -ENOMEM;
		if (j) {
			struct fstats_rare *r = file_rare(f);

			h->joined = true;
			h->section_end = j->handles == 0 ? j->dl.when : j->section_end;
			if (r)
				r->joins++;
		}
	} else {
		if (h->handles == 0)
			lease_stop(t, h);
		if (h->broken) {
			/* Asked anew: it counts again, as the class it was just
			 * let in as. Its old class was checked against no hold
			 * granted since the break: keeping it (an exclusive read
			 * re-asked as a shared one) would leave an LT_EXCL hold
			 * beside other owners' holds (locktable.h). */
			h->broken = false;
			h->cls = cls;
			count_hold(f->st, h, true);
		}
		if (cls == LT_EXCL && h->cls != LT_EXCL)
			hold_set_class(h, LT_EXCL);
		else if (cls == LT_UPDATE && h->cls == LT_SHARED)
			hold_set_class(h, LT_UPDATE);
	}
	if (!is_read(flags)) {
		if (h->dl.kind == DL_LONG)
			heap_remove(t, &h->dl);
		if (h->long_)
			hold_set_long(h, false);
		file_written(t, f, now);
	}
	h->handles++;
	if (!is_read(flags))
		h->wr_handles++;
	h->last_flags = flags;
	/* A shared-class request never leaves a lease behind, even when it
	 * re-entered an exclusive hold. */
	h->last_lease_ns = cls == LT_SHARED ? 0 : lease_ns;
	f->s.acquisitions++;
	if (was_writing && !hold_writing(h))
		file_dirty(t, f);
	if (is_read(flags)) {
		long_timer(t, h, now);
		end_other_lease(t, o, f, now);
	}
	return 0;
}

/* ------------------------------------------------------------- decisions */

static void decide(struct lock_table *t, struct lt_request *req, int status)
{
	req->status = status;
	req->state = LT_REQ_DECIDED;
	req->q_next = NULL;
	req->q_prev = NULL;
	if (t->dec_tail)
		t->dec_tail->q_next = req;
	else
		t->dec_head = req;
	t->dec_tail = req;
}

static void waiter_free(struct lock_table *t, struct waiter *w)
{
	dl_del(&w->q_link);
	w->f->st->n_wait--;
	dl_del(&w->o_link);
	heap_remove(t, &w->dl);
	ht_remove(&t->waiters, &w->hl, req_key(w->req));
	file_dirty(t, w->f);
	owner_dirty(t, w->o);
	free(w);
}

/* Wait statistics go to the file the request asked for, where its
 * contention was counted, even when lt_replace moved it elsewhere. */
static void record_wait(struct lock_table *t, const struct lt_request *req,
			struct frec *queue_file, int status, uint64_t now)
{
	struct frec *f = queue_file->id == req->file ? queue_file
						       : file_find(t, req->file);

	if (f)
		stats_wait(f, now > req->enqueued_at ? now - req->enqueued_at : 0,
			   status);
}

static void waiter_fail(struct lock_table *t, struct waiter *w, int status,
			uint64_t now)
{
	struct lt_request *req = w->req;
	struct frec *f = w->f;

	if (status == -ESTALE)
		owner_arm_retry(t, w->o, req->file, 0);
	waiter_free(t, w);
	record_wait(t, req, f, status, now);
	req->granted_file = 0;
	decide(t, req, status);
}

/* Grants a request that followed a rename to `f` (moved by lt_replace or
 * forwarded by a mark). Its caller will look the name up again; a lease
 * keeps the file for the retried open. Shared holds never lease, and a
 * retried read will find the other readers let in anyway. Without memory
 * for the hold the retry simply asks again. Returns the status: -ESTALE. */
static int grant_moved(struct lock_table *t, struct frec *f, struct owner *o,
		       enum lt_class cls, const struct lt_request *req, uint64_t now)
{
	f->s.acquisitions++;
	if (cls != LT_SHARED) {
		uint64_t len = req->lease_ns > LT_RETRY_LEASE_NS ?
			       req->lease_ns : LT_RETRY_LEASE_NS;
		uint64_t until = sat_add(now, len);
		struct hold *h = hold_find(t, f->id, o->id);

		if (!req_is_read(req))
			file_written(t, f, now);
		if (!h) {
			h = hold_new(t, f, o, cls, now);
			if (h) {
				h->last_flags = req->flags;
				h->last_lease_ns = len;
				lease_start(t, h, until, now);
			}
		} else if (h->handles == 0 && h->dl.when < until) {
			heap_update(t, &h->dl, until);
		}
	}
	owner_arm_retry(t, o, req->file, f->id);
	return -ESTALE;
}

static void grant_waiter(struct lock_table *t, struct waiter *w, uint64_t now)
{
	struct lt_request *req = w->req;
	struct frec *f = w->f;
	struct owner *o = w->o;
	enum lt_class cls = req_class(f, w->cls, req->flags);
	bool stale = w->stale;
	int status;

	waiter_free(t, w);
	if (stale)
		status = grant_moved(t, f, o, cls, req, now);
	else
		status = grant_hold(t, f, o, cls, req->flags, req->lease_ns, now);
	record_wait(t, req, f, status, now);
	req->granted_file = status == -ENOMEM ? 0 : f->id;
	decide(t, req, status);
}

/* Whether only holds that are not writing stand in the way of w: a waiter
 * that broke the readers once is not held back by readers granted since
 * (readers that were queued ahead of it), so its wait stays bounded. */
static bool only_readers_block(const struct waiter *w)
{
	const struct dlist *n;
	enum lt_class cls = req_class(w->f, w->cls, w->req->flags);

	for (n = w->f->st->holds.next; n != &w->f->st->holds; n = n->next) {
		const struct hold *h = container_of(n, struct hold, f_link);

		if (blocks(h, w->o, cls, w->req->flags) && hold_writing(h))
			return false;
	}
	return true;
}

/* Whether only holds that are not writing stand in the way of a request by
 * o of class cls with flags on f. */
static bool readers_only_in_way(const struct frec *f, const struct owner *o,
				enum lt_class cls, unsigned flags)
{
	const struct dlist *n;

	if (!f->st)
		return false;
	for (n = f->st->holds.next; n != &f->st->holds; n = n->next) {
		const struct hold *h = container_of(n, struct hold, f_link);

		if (blocks(h, o, cls, flags) && hold_writing(h))
			return false;
	}
	return true;
}

/* Grants the queue head, then the next, while they fit. */
static void pump(struct lock_table *t, struct frec *f, uint64_t now)
{
	while (f->st && !dl_empty(&f->st->queue)) {
		struct waiter *w = container_of(f->st->queue.next, struct waiter, q_link);

		if (!compatible(t, f, w->o, req_class(f, w->cls, w->req->flags),
				w->req->flags) &&
		    !(w->broke && only_readers_block(w)))
			break;
		grant_waiter(t, w, now);
	}
}

static void run_pumps(struct lock_table *t, uint64_t now)
{
	while (t->dirty_files) {
		struct frec *f = t->dirty_files;

		t->dirty_files = f->st->dirty_next;
		f->st->dirty = false;
		pump(t, f, now);
		file_settle(t, f);
	}
}

static void finish(struct lock_table *t, uint64_t now)
{
	run_pumps(t, now);
	settle_owners(t);
}

/* Requests parked by `o` on `f` while `o` just came to hold it are
 * re-entries now (an heir waiting for the file its child held). */
static void grant_reentries(struct lock_table *t, struct frec *f,
			    struct owner *o, uint64_t now)
{
	struct dlist *n, *next;

	for (n = o->waits.next; n != &o->waits; n = next) {
		struct waiter *w = container_of(n, struct waiter, o_link);

		next = n->next;
		if (w->f == f && compatible(t, f, o, req_class(f, w->cls, w->req->flags),
					    w->req->flags))
			grant_waiter(t, w, now);
	}
}

/* Hands a dead owner's handle-less hold to its heir as a lease ending at
 * `until`; the hold keeps its start time, it is the same critical section. */
static void hold_give(struct lock_table *t, struct hold *h, struct owner *heir,
		      uint64_t until, uint64_t now)
{
	struct owner *old = h->o;
	struct frec *f = h->f;
	struct hold *h2 = hold_find(t, f->id, heir->id);

	if (h2) {
		/* The heir holds the file already (it was the joined parent, or
		 * it shares it): never keep two. The section it holds may only
		 * grow as far as its own bound allows. */
		hold_end(t, h, now);
		if (h2->section_end && until > h2->section_end)
			until = h2->section_end;
		if (h2->handles == 0 && h2->dl.idx != DL_NONE && h2->dl.when < until)
			heap_update(t, &h2->dl, until);
		return;
	}
	lease_stop(t, h);
	h->inherited = true;
	ht_remove(&t->holds, &h->hl, hold_key(f->id, old->id));
	dl_del(&h->o_link);
	owner_dirty(t, old);
	h->o = heir;
	dl_add_tail(&heir->holds, &h->o_link);
	ht_insert(&t->holds, &h->hl, hold_key(f->id, heir->id));
	lease_start(t, h, until, now);
	grant_reentries(t, f, heir, now);
	file_dirty(t, f);
}

/* A write of `o` on `f` has closed: the leases its program holds there
 * (its process's threads, its ancestors) were that write's critical
 * section, and it is over. */
static void end_program_leases(struct lock_table *t, struct frec *f,
			       const struct owner *o, uint64_t now)
{
	struct dlist *n, *next;

	if (!f->st || !o->family[0])
		return;
	for (n = f->st->holds.next; n != &f->st->holds; n = next) {
		struct hold *h = container_of(n, struct hold, f_link);
		lt_proc_t hp = h->o->family[0];

		next = n->next;
		if (h->handles == 0 && h->o != o &&
		    (hp == o->family[0] || is_ancestor(o, hp)))
			hold_end(t, h, now);
	}
}

/* The last handle of `h` was closed. */
static void hold_zero(struct lock_table *t, struct hold *h, uint64_t now)
{
	struct owner *o = h->o;
	struct frec *f = h->f;
	uint64_t until;

	if (h->dl.kind == DL_LONG)
		heap_remove(t, &h->dl);
	if (!is_read(h->last_flags)) {
		end_program_leases(t, f, o, now);
		hold_end(t, h, now);
		return;
	}
	if (h->broken || hold_class(h) == LT_SHARED || h->last_lease_ns == 0) {
		hold_end(t, h, now);
		return;
	}
	until = sat_add(now, h->last_lease_ns);
	if (h->section_end && until > h->section_end)
		until = h->section_end;
	if (until <= now) {
		hold_end(t, h, now);
		return;
	}
	/* A new lease, whoever ends up holding it, may be stretched anew. */
	h->stretched = 0;
	if (o->dead) {
		if (o->heir)
			hold_give(t, h, o->heir, until, now);
		else
			lease_lapse(t, h, now);
		return;
	}
	lease_start(t, h, until, now);
	file_dirty(t, f);
}

/* An exclusive request parked since w->req->enqueued_at has waited
 * reader_wait_ns: the holds in its way that only read stop counting. */
static void break_readers(struct lock_table *t, struct waiter *w, uint64_t now)
{
	struct frec *f = w->f;
	enum lt_class cls = req_class(f, w->cls, w->req->flags);
	struct dlist *n, *next;

	if (!f->st)
		return;
	for (n = f->st->holds.next; n != &f->st->holds; n = next) {
		struct hold *h = container_of(n, struct hold, f_link);
		struct fstats_rare *r;

		next = n->next;
		if (!blocks(h, w->o, cls, w->req->flags) || hold_writing(h))
			continue;
		r = file_rare(f);
		if (r)
			r->broken++;
		if (h->handles == 0) {
			hold_end(t, h, now);
			continue;
		}
		if (h->dl.kind == DL_LONG)
			heap_remove(t, &h->dl);
		count_hold(f->st, h, false);
		h->broken = true;
		file_dirty(t, f);
	}
}

/* --------------------------------------------------------- deadlock walk */

/* The wait-for graph: a parked request waits for the holders of its file
 * that conflict with it; a holder that is itself parked continues the walk
 * through all its parked requests. Because queues are FIFO, a request with
 * anything queued before it also waits for every holder of the file (what
 * is ahead of it conflicts with them, and it cannot pass), whatever the
 * classes. So the walk expands each file at most four times (at the
 * levels below) and each owner once, whatever the queue lengths.
 *
 * Joins are not looked at: a hold that a waiter could join still counts as
 * an edge. That can only add edges (never miss a cycle), and a request that
 * can join is granted, not parked, so such edges are rare.
 *
 * Returns 1 on reaching `o0`, -1 when the edge budget is spent, 0 when this
 * file adds nothing more. */
enum walk_level {
	WALK_SHARED = 1,  /* a shared waiter: exclusive holders */
	WALK_UPDATE,      /* update intent: exclusive and update holders */
	WALK_EXCL,        /* exclusive: every holder */
	WALK_ALL,         /* anything queued ahead: every holder */
};

static enum walk_level level_of(enum lt_class cls)
{
	return cls == LT_SHARED ? WALK_SHARED : cls == LT_UPDATE ? WALK_UPDATE : WALK_EXCL;
}

static bool level_waits_for(enum walk_level level, const struct hold *h)
{
	if (h->broken || h->f->advisory)
		return false;
	if (level >= WALK_EXCL)
		return true;
	return classes_conflict(hold_class(h),
				level == WALK_SHARED ? LT_SHARED : LT_UPDATE);
}

static int walk_holders(struct lock_table *t, const struct frec *f,
			const struct owner *skip, enum walk_level level,
			const struct owner *o0, size_t *edges)
{
	const struct dlist *n;

	if (!f->st)
		return 0;
	for (n = f->st->holds.next; n != &f->st->holds; n = n->next) {
		struct hold *h = container_of(n, struct hold, f_link);
		struct dlist *m;

		if (++*edges > LT_DEADLOCK_WALK_MAX)
			return -1;
		if (h->o == skip || !level_waits_for(level, h))
			continue;
		if (h->o == o0)
			return 1;
		if (h->o->walk_epoch == t->epoch)
			continue;
		h->o->walk_epoch = t->epoch;
		for (m = h->o->waits.next; m != &h->o->waits; m = m->next) {
			if (++*edges > LT_DEADLOCK_WALK_MAX)
				return -1;
			t->walk_stack[t->walk_n++] = container_of(m, struct waiter, o_link);
		}
	}
	return 0;
}

static bool would_deadlock(struct lock_table *t, const struct frec *f,
			   struct owner *o0, enum lt_class cls, bool queued_ahead)
{
	enum walk_level level0 = queued_ahead ? WALK_ALL : level_of(cls);
	size_t edges = 0;
	int r;

	/* Every push counts an edge, so the budget bounds the stack. */
	if (!t->walk_stack) {
		t->walk_stack = malloc((LT_DEADLOCK_WALK_MAX + 1) * sizeof(*t->walk_stack));
		if (!t->walk_stack)
			return false;
	}
	t->epoch++;
	t->walk_n = 0;
	o0->walk_epoch = t->epoch;
	/* The requester's own hold (an upgrade) is no edge; the file is not
	 * memoized, so reaching it again from another waiter finds o0 there. */
	r = walk_holders(t, f, o0, level0, o0, &edges);
	while (r == 0 && t->walk_n) {
		struct waiter *w = t->walk_stack[--t->walk_n];
		struct fstate *st = w->f->st;
		enum walk_level level = w->q_link.prev != &st->queue ? WALK_ALL :
			level_of(req_class(w->f, w->cls, w->req->flags));

		if (st->walk_epoch == t->epoch && st->walk_level >= level)
			continue;
		st->walk_epoch = t->epoch;
		st->walk_level = (unsigned char)level;
		r = walk_holders(t, w->f, NULL, level, o0, &edges);
	}
	return r == 1;
}

/* ------------------------------------------------------------ public API */

struct lock_table *lt_new(void)
{
	struct lock_table *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	if (ht_init(&t->files, 64, frec_hash) < 0 || ht_init(&t->owners, 16, owner_hash) < 0 ||
	    ht_init(&t->holds, 16, hold_hash) < 0 || ht_init(&t->waiters, 16, waiter_hash) < 0 ||
	    ht_init(&t->marks, 16, mark_hash) < 0) {
		ht_free(&t->files);
		ht_free(&t->owners);
		ht_free(&t->holds);
		ht_free(&t->waiters);
		ht_free(&t->marks);
		free(t);
		return NULL;
	}
	dl_init(&t->active);
	return t;
}

static void free_all(struct htab *h, size_t off, void (*extra)(void *))
{
	for (size_t i = 0; i <= h->mask; i++) {
		struct hlink *l = h->b[i], *next;

		for (; l; l = next) {
			next = l->next;
			if (extra)
				extra((char *)l - off);
			free((char *)l - off);
		}
	}
	ht_free(h);
}

static void frec_extra(void *p)
{
	struct frec *f = p;

	free(f->st);
	free(f->rare);
}

void lt_free(struct lock_table *t)
{
	if (!t)
		return;
	free_all(&t->waiters, offsetof(struct waiter, hl), NULL);
	free_all(&t->holds, offsetof(struct hold, hl), NULL);
	free_all(&t->owners, offsetof(struct owner, hl), NULL);
	free_all(&t->files, offsetof(struct frec, hl), frec_extra);
	free_all(&t->marks, offsetof(struct mark, hl), NULL);
	free(t->heap);
	free(t->walk_stack);
	free(t);
}

/* Parks `req` in f's queue; its contention counts for `asked` (the file it
 * asked for: not f when a mark forwarded it). */
static int park(struct lock_table *t, struct lt_request *req, struct frec *f,
		struct frec *asked, struct owner *o, enum lt_class cls,
		bool at_head, bool moved, uint64_t now)
{
	struct fstate *st;
	struct waiter *w;

	if (heap_reserve(t) < 0)
		return -ENOMEM;
	st = file_state(t, f);
	if (!st)
		return -ENOMEM;
	w = calloc(1, sizeof(*w));
	if (!w) {
		file_dirty(t, f);
		return -ENOMEM;
	}
	w->req = req;
	w->f = f;
	w->o = o;
	w->cls = cls;
	w->stale = moved;
	w->dl.idx = DL_NONE;
	w->dl.kind = DL_WAIT;
	if (t->cfg.reader_wait_ns && !is_read(req->flags))
		w->break_at = sat_add(now, t->cfg.reader_wait_ns);
	if (at_head)
		dl_add_head(&st->queue, &w->q_link);
	else
		dl_add_tail(&st->queue, &w->q_link);
	st->n_wait++;
	dl_add_tail(&o->waits, &w->o_link);
	ht_insert(&t->waiters, &w->hl, req_key(req));
	if (req->deadline || w->break_at) {
		w->dl.when = req->deadline ? req->deadline : UINT64_MAX;
		if (w->break_at && w->break_at < w->dl.when)
			w->dl.when = w->break_at;
		heap_push(t, &w->dl);
	}
	req->status = -EINPROGRESS;
	req->state = LT_REQ_WAITING;
	asked->s.contentions++;
	return 0;
}

int lt_acquire(struct lock_table *t, struct lt_request *req, uint64_t now)
{
	unsigned flags = req->flags;
	enum lt_class cls = (flags & LT_F_BARRIER) ? LT_EXCL : req->cls;
	struct frec *asked, *f;
	struct owner *o;
	struct hold *h;
	bool upgrade, join, moved = false;
	int rc;

	req->granted_file = 0;
	req->enqueued_at = now;
	req->q_next = req->q_prev = NULL;
	if (!req->file || !req->owner) {
		rc = -EINVAL;
		goto out;
	}
	asked = file_get(t, req->file);
	o = asked ? owner_get(t, req->owner) : NULL;
	if (!o) {
		rc = -ENOMEM;
		goto out;
	}
	if (o->dead) {
		/* Its exit failed its parked requests with -EINTR already. */
		rc = -EINTR;
		goto out;
	}
	if (req->family[0])
		memcpy(o->family, req->family, sizeof(o->family));
	f = asked;
	if (!owner_take_retry(t, o, asked->id, now) && !(flags & LT_F_BARRIER)) {
		struct mark *m = mark_find(t, asked->id);

		/* A holder of the old file re-enters it: it has no late open
		 * in flight (it is the one that renamed or removed it), only
		 * another way in such as /proc/PID/fd. */
		if (m && mark_is_set(m) && !hold_find(t, asked->id, o->id)) {
			lt_file_t cur = mark_follow(m);

			if (!cur) {
				owner_arm_retry(t, o, asked->id, 0);
				rc = -ESTALE;
				goto out;
			}
			if (cur != asked->id) {
				f = file_get(t, cur);
				if (!f) {
					rc = -ENOMEM;
					goto out;
				}
				moved = true;
			}
		}
	}
	if (moved && f->advisory && !asked->advisory) {
		/* A late open of a replaced file that leads to an advisory
		 * one: stepping aside here would let it open the replaced
		 * inode. It looks the name up again, like a forwarded peek
		 * (no lease), and its retry passes on the advisory file. */
		owner_arm_retry(t, o, asked->id, f->id);
		rc = -ESTALE;
		goto out;
	}
	if (f->advisory || asked->advisory) {
		/* Programs coordinate this file themselves. */
		struct fstats_rare *r = file_rare(asked);

		if (r)
			r->advisory_passes++;
		rc = LT_PEEK;
		goto out;
	}
	for (;;) {
		enum lt_class eff = req_class(f, cls, flags);

		h = hold_find(t, f->id, o->id);
		if (h && h->broken)
			h = NULL;
		upgrade = h && eff != LT_SHARED && hold_class(h) != LT_EXCL &&
			  (eff == LT_EXCL || hold_class(h) == LT_SHARED);
		if (compatible(t, f, o, eff, flags) &&
		    (h || !f->st || dl_empty(&f->st->queue) || family_hold(f, o, flags))) {
			cls = eff;
			if (moved) {
				rc = grant_moved(t, f, o, cls, req, now);
				req->granted_file = f->id;
			} else {
				rc = grant_hold(t, f, o, cls, flags, req->lease_ns, now);
				if (rc == 0)
					req->granted_file = f->id;
			}
			goto out;
		}
		if (flags & LT_F_NONBLOCK) {
			if (is_read(flags) && peekable(f, o, eff)) {
				/* A forwarded peek cannot look at the new file
				 * through the old one: its retry will. */
				if (moved) {
					owner_arm_retry(t, o, asked->id, f->id);
					rc = -ESTALE;
				} else {
					stats_peek(asked);
					rc = LT_PEEK;
				}
				goto out;
			}
			/* A non-blocking write in the way of readers only waits
			 * like a blocking one, at most reader_wait: programs
			 * pass O_NONBLOCK on regular files only to be safe from
			 * fifos (coreutils truncate), and a reader must not
			 * turn that into a refusal for as long as it reads. */
			if (!is_read(flags) && t->cfg.reader_wait_ns && !moved &&
			    dl_empty(&f->st->queue) && readers_only_in_way(f, o, eff, flags))
				break;
			rc = -EAGAIN;
			stats_refusal(asked, rc);
			goto out;
		}
		/* A read that waits ends the lease first: the lease may be
		 * what the holders here wait for, and once it is gone the
		 * file may even be free. */
		if (is_read(flags) && o->lease && o->lease->f != f) {
			lease_lapse(t, o->lease, now);
			run_pumps(t, now);
			continue;
		}
		break;
	}
	/* A request that would join its program's hold, but must wait for
	 * someone else (a pure reader beside the program), waits at the head
	 * of the queue like an upgrade: joining goes ahead of the queue
	 * (locktable.h), and the waiters queued before it may be waiting for
	 * the very hold it joins (`while read l; do sed -i ... f; done < f`:
	 * the script waits for sed, which would wait behind them forever). */
	join = !h && family_hold(f, o, flags);
	if (would_deadlock(t, f, o, req_class(f, cls, flags),
			   !upgrade && !join && f->st && !dl_empty(&f->st->queue))) {
		rc = -EDEADLK;
		stats_refusal(asked, rc);
		goto out;
	}
	rc = park(t, req, f, asked, o, cls, upgrade || join, moved, now);
	if (rc == 0) {
		finish(t, now);
		return -EINPROGRESS;
	}
out:
	req->status = rc;
	req->state = LT_REQ_DONE;
	finish(t, now);
	return rc;
}

int lt_release(struct lock_table *t, lt_file_t file, lt_owner_t owner,
	       bool write, uint64_t now)
{
	struct hold *h = hold_find(t, file, owner);
	bool was_writing;

	/* The lease decision uses the last grant, not the handle; `write`
	 * only keeps the count of open modifications for peeks. */
	if (!h || h->handles == 0)
		return -ENOENT;
	was_writing = hold_writing(h);
	if (write && h->wr_handles > 0)
		h->wr_handles--;
	if (--h->handles == 0) {
		h->wr_handles = 0;
		hold_zero(t, h, now);
	} else if (was_writing && !hold_writing(h)) {
		/* It stopped writing: see grant_hold. */
		file_dirty(t, h->f);
	}
	finish(t, now);
	return 0;
}

int lt_barrier_done(struct lock_table *t, lt_file_t file, lt_owner_t owner,
		    uint64_t now)
{
	return lt_release(t, file, owner, true, now);
}

int lt_cancel(struct lock_table *t, struct lt_request *req, uint64_t now)
{
	struct hlink *l = ht_first(&t->waiters, req_key(req));

	for (; l; l = l->next) {
		struct waiter *w = container_of(l, struct waiter, hl);

		if (w->req == req) {
			waiter_fail(t, w, -EINTR, now);
			finish(t, now);
			return 0;
		}
	}
	return -ENOENT;
}

void lt_owner_exit(struct lock_table *t, lt_owner_t owner, lt_owner_t heir,
		   uint64_t now)
{
	lt_owner_exit2(t, owner, heir, 0, now);
}

void lt_owner_exit2(struct lock_table *t, lt_owner_t owner, lt_owner_t heir,
		    lt_proc_t heir_proc, uint64_t now)
{
	struct owner *o = owner_find(t, owner);
	struct owner *hr = NULL;
	struct dlist *n, *next;

	if (!o || o->dead)
		return;
	o->dead = true;
	o->retry_armed = false;
	owner_dirty(t, o);
	while (!dl_empty(&o->waits))
		waiter_fail(t, container_of(o->waits.next, struct waiter, o_link),
			    -EINTR, now);

	if (heir && heir != owner) {
		hr = owner_find(t, heir);
		/* A caller that names an heir that has gone already gets the
		 * heir's own heir, the way the bequest would have travelled. */
		while (hr && hr->dead)
			hr = hr->heir;
		if (!hr && !owner_find(t, heir))
			hr = owner_get(t, heir);
		if (hr == o)
			hr = NULL;
		/* heir_proc names the heir itself, not whom a dead heir's
		 * bequests went to. */
		if (hr && hr->id == heir && heir_proc && !hr->family[0])
			hr->family[0] = heir_proc;
	}

	/* What was bequeathed to `o` travels on to its heir. */
	while (!dl_empty(&o->bequests)) {
		struct owner *d = container_of(o->bequests.next, struct owner, heir_link);

		dl_del(&d->heir_link);
		d->heir = hr;
		if (hr)
			dl_add_tail(&hr->bequests, &d->heir_link);
		owner_dirty(t, d);
	}

	for (n = o->holds.next; n != &o->holds; n = next) {
		struct hold *h = container_of(n, struct hold, o_link);

		next = n->next;
		if (h->handles)
			continue;
		if (hr)
			hold_give(t, h, hr, h->dl.when, now);
		else
			lease_lapse(t, h, now);
	}
	if (!dl_empty(&o->holds) && hr) {
		o->heir = hr;
		dl_add_tail(&hr->bequests, &o->heir_link);
	}
	finish(t, now);
}

static void fail_parked(struct lock_table *t, struct frec *f, int status,
			uint64_t now)
{
	while (f->st && !dl_empty(&f->st->queue))
		waiter_fail(t, container_of(f->st->queue.next, struct waiter, q_link),
			    status, now);
}

void lt_replace(struct lock_table *t, lt_file_t old_file, lt_file_t new_file,
		uint64_t now)
{
	struct frec *fo, *fn;
	struct fstate *sn;
	struct dlist *first, *n, *next;
	struct mark *mn, *mo;

	if (!old_file || !new_file || old_file == new_file)
		return;
	/* The new file has a name now: whatever it was marked, it is current.
	 * Clearing its mark before pointing to it keeps the chains free of
	 * loops. Without memory, old_file just stays unmarked (late opens
	 * then reach it as they did before marks existed). */
	mn = mark_find(t, new_file);
	if (mn)
		mark_point(t, mn, NULL, false);
	else
		mn = mark_get(t, new_file);
	mo = mn ? mark_get(t, old_file) : NULL;
	if (mo)
		mark_point(t, mo, mn, false);
	else if (mn)
		mark_put(t, mn);
	fo = file_find(t, old_file);
	if (!fo || !fo->st || dl_empty(&fo->st->queue))
		return;
	fn = file_get(t, new_file);
	sn = fn ? file_state(t, fn) : NULL;
	if (!sn) {
		/* Cannot follow the name: let the retried opens find it. */
		fail_parked(t, fo, -ESTALE, now);
		finish(t, now);
		return;
	}
	first = NULL;
	while (!dl_empty(&fo->st->queue)) {
		struct waiter *w = container_of(fo->st->queue.next, struct waiter, q_link);

		dl_del(&w->q_link);
		fo->st->n_wait--;
		w->f = fn;
		w->stale = true;
		dl_add_tail(&sn->queue, &w->q_link);
		sn->n_wait++;
		if (!first)
			first = &w->q_link;
	}
	file_dirty(t, fo);
	file_dirty(t, fn);
	/* A moved owner that holds the new file already is re-entering it. */
	for (n = first; n != &sn->queue; n = next) {
		struct waiter *w = container_of(n, struct waiter, q_link);

		next = n->next;
		if (hold_find(t, fn->id, w->o->id) &&
		    compatible(t, fn, w->o, req_class(fn, w->cls, w->req->flags), w->req->flags))
			grant_waiter(t, w, now);
	}
	finish(t, now);
}

void lt_gone(struct lock_table *t, lt_file_t file, uint64_t now)
{
	struct frec *f;
	struct mark *m;

	if (!file)
		return;
	m = mark_get(t, file);
	if (m)
		mark_point(t, m, NULL, true);
	f = file_find(t, file);
	if (!f)
		return;
	fail_parked(t, f, -ESTALE, now);
	finish(t, now);
}

static void forget(struct lock_table *t, lt_file_t file, bool dead)
{
	struct mark *m = mark_find(t, file);
	struct frec *f = file_find(t, file);

	/* The id may name a new file from now on: it learns afresh. */
	if (f && !f->st) {
		f->calm = false;
		f->advisory = false;
		f->last_write = 0;
	}
	/* The daemon pins a file while it knows it, so its id cannot name
	 * another file before this call; a file that has no name left will
	 * never be seen again, and the next file with its id must not show its
	 * figures. A "gone" mark says so (the daemon only reports a removal
	 * that left no link); a file replaced by a rename may keep another
	 * link, so only the daemon can tell (lt_forget_dead). A lease that
	 * outlives the file still ends on this record and counts its hold. */
	if (f && (dead || (m && m->gone)))
		file_clear_stats(t, f);

	/* A current file that marks lead to keeps its name, and so its id:
	 * nothing to drop. */
	if (!m || !mark_is_set(m))
		return;
	/* Files replaced by this one are now replaced by what replaced it. */
	while (!dl_empty(&m->in))
		mark_point(t, container_of(m->in.next, struct mark, in_link),
			   m->to, m->gone);
	mark_point(t, m, NULL, false);
	mark_put(t, m);
}

void lt_forget(struct lock_table *t, lt_file_t file)
{
	forget(t, file, false);
}

void lt_forget_dead(struct lock_table *t, lt_file_t file)
{
	forget(t, file, true);
}

void lt_tick(struct lock_table *t, uint64_t now)
{
	/* One at a time, pumping in between, so that what an expiry frees is
	 * granted before a deadline at the same instant fails its waiter. */
	while (t->heap_n && t->heap[0]->when <= now) {
		struct dl *d = t->heap[0];

		if (d->kind == DL_LEASE) {
			struct hold *h = container_of(d, struct hold, dl);

			if (lease_stretch(t, h, now))
				continue;
			lease_lapse(t, h, now);
		} else if (d->kind == DL_LONG) {
			struct hold *h = container_of(d, struct hold, dl);

			heap_remove(t, d);
			hold_set_long(h, true);
			file_dirty(t, h->f);
		} else {
			struct waiter *w = container_of(d, struct waiter, dl);

			/* The break only when it is the event due (d->when is
			 * the earlier of break_at and the deadline): a tick
			 * late past both must not break and grant a request
			 * whose deadline came first (it fails -ETIMEDOUT,
			 * locktable.h). */
			if (w->break_at && !w->broke && w->break_at <= d->when) {
				w->broke = true;
				heap_remove(t, d);
				if (w->req->deadline) {
					d->when = w->req->deadline;
					heap_push(t, d);
				}
				break_readers(t, w, now);
			} else {
				waiter_fail(t, w, -ETIMEDOUT, now);
			}
		}
		run_pumps(t, now);
	}
	settle_owners(t);
}

uint64_t lt_next_deadline(const struct lock_table *t)
{
	return t->heap_n ? t->heap[0]->when : UINT64_MAX;
}

struct lt_request *lt_take_decided(struct lock_table *t)
{
	struct lt_request *req = t->dec_head;

	if (!req)
		return NULL;
	t->dec_head = req->q_next;
	if (!t->dec_head)
		t->dec_tail = NULL;
	req->q_next = NULL;
	req->state = LT_REQ_DONE;
	return req;
}

/* ------------------------------------------------------------ statistics */

static void stats_fill(const struct frec *f, struct lt_stats *out)
{
	const struct fstats_rare *r = f->rare;

	memset(out, 0, sizeof(*out));
	out->acquisitions = f->s.acquisitions;
	out->contentions = f->s.contentions;
	out->holds = f->s.holds;
	out->hold_total_ns = f->s.hold_total;
	out->hold_max_ns = f->s.hold_max;
	if (!r)
		return;
	out->waits = r->waits;
	out->wait_total_ns = r->wait_total;
	out->wait_min_ns = r->waits ? r->wait_min : 0;
	out->wait_max_ns = r->wait_max;
	out->fail_eagain = r->fail_eagain;
	out->fail_edeadlk = r->fail_edeadlk;
	out->fail_timeout = r->fail_timeout;
	out->fail_intr = r->fail_intr;
	out->peeks = r->peeks;
	out->joins = r->joins;
	out->broken = r->broken;
	out->calm_learned = r->calm_learned;
	out->advisory_passes = r->advisory_passes;
	memcpy(out->wait_hist, r->hist, sizeof(out->wait_hist));
}

int lt_stats_get(const struct lock_table *t, lt_file_t file, struct lt_stats *out)
{
	const struct frec *f = file_find(t, file);

	if (!f)
		return -ENOENT;
	stats_fill(f, out);
	return 0;
}

int lt_foreach_stats(const struct lock_table *t,
		     int (*fn)(void *arg, lt_file_t file, const struct lt_stats *s),
		     void *arg)
{
	struct lt_stats s;

	for (size_t i = 0; i <= t->files.mask; i++) {
		const struct hlink *l;

		for (l = t->files.b[i]; l; l = l->next) {
			const struct frec *f = container_of(l, struct frec, hl);
			int rc;

			stats_fill(f, &s);
			rc = fn(arg, f->id, &s);
			if (rc)
				return rc;
		}
	}
	return 0;
}

void lt_stats_reset(struct lock_table *t)
{
	for (size_t i = 0; i <= t->files.mask; i++) {
		struct hlink *l = t->files.b[i], *next;

		for (; l; l = next) {
			next = l->next;
			file_clear_stats(t, container_of(l, struct frec, hl));
		}
	}
}

/* The largest wait bucket i can hold that was actually seen. The bucket's
 * own bound alone overshoots: a percentile in the bucket of the longest wait
 * would read up to twice that wait, above the maximum lockstat prints beside
 * it. Every wait in the bucket is at most both bounds, so the smaller one is
 * still an upper estimate of the percentile, and still below twice it (the
 * bucket's floor is at most the percentile). The last bucket has no bound of
 * its own. The floor at the minimum only matters for a histogram that does
 * not match min and max (one filled by hand); the table never makes one. */
static uint64_t bucket_top(const struct lt_stats *s, unsigned i)
{
	uint64_t top = i + 1 < LT_HIST_BUCKETS ? (2ull << i) - 1 : UINT64_MAX;

	if (top > s->wait_max_ns)
		top = s->wait_max_ns;
	if (top < s->wait_min_ns)
		top = s->wait_min_ns;
	return top;
}

uint64_t lt_stats_wait_percentile(const struct lt_stats *s, double pct)
{
	uint64_t total = 0, cum = 0, want;

	for (unsigned i = 0; i < LT_HIST_BUCKETS; i++)
		total += s->wait_hist[i];
	if (total == 0)
		return 0;
	if (!(pct > 0))
		want = 1;
	else if (pct >= 100)
		want = total;
	else {
		double x = pct * (double)total / 100.0;

		want = (uint64_t)x;
		if ((double)want < x)
			want++;
		if (want == 0)
			want = 1;
	}
	for (unsigned i = 0; i < LT_HIST_BUCKETS; i++) {
		cum += s->wait_hist[i];
		if (cum >= want)
			return bucket_top(s, i);
	}
	return bucket_top(s, LT_HIST_BUCKETS - 1);
}

/* ------------------------------------------------------------ inspection */

size_t lt_file_count(const struct lock_table *t)
{
	return t->n_active;
}

size_t lt_hold_count(const struct lock_table *t)
{
	return ht_count(&t->holds);
}

size_t lt_waiter_count(const struct lock_table *t)
{
	return ht_count(&t->waiters);
}

size_t lt_mark_count(const struct lock_table *t)
{
	return t->n_marked;
}

size_t lt_holders(const struct lock_table *t, lt_file_t file,
		  struct lt_holder_view *out, size_t max)
{
	const struct frec *f = file_find(t, file);
	const struct dlist *n;
	size_t i = 0;

	if (!f || !f->st)
		return 0;
	for (n = f->st->holds.next; n != &f->st->holds; n = n->next, i++) {
		const struct hold *h = container_of(n, struct hold, f_link);

		if (i >= max)
			continue;
		out[i].owner = h->o->id;
		out[i].cls = hold_class(h);
		out[i].handles = h->handles;
		out[i].since = h->since;
		out[i].lease_until = h->handles ? 0 : h->dl.when;
		out[i].state = h->broken ? LT_HS_BROKEN : h->long_ ? LT_HS_LONG : LT_HS_NORMAL;
		out[i].inherited = h->inherited;
		out[i].joined = h->joined;
	}
	return i;
}

size_t lt_waiters(const struct lock_table *t, lt_file_t file,
		  const struct lt_request **out, size_t max)
{
	const struct frec *f = file_find(t, file);
	const struct dlist *n;
	size_t i = 0;

	if (!f || !f->st)
		return 0;
	for (n = f->st->queue.next; n != &f->st->queue && i < max; n = n->next)
		out[i++] = container_of(n, struct waiter, q_link)->req;
	return f->st->n_wait;
}

int lt_foreach_file(const struct lock_table *t,
		    int (*fn)(void *arg, lt_file_t file), void *arg)
{
	const struct dlist *n, *next;

	for (n = t->active.next; n != &t->active; n = next) {
		int rc;

		next = n->next;
		rc = fn(arg, container_of(n, struct fstate, active)->f->id);
		if (rc)
			return rc;
	}
	return 0;
}

/* ------------------------------------------------------------ version 2 */

void lt_configure(struct lock_table *t, const struct lt_config *cfg)
{
	t->cfg = *cfg;
}

void lt_set_busy_hook(struct lock_table *t, lt_busy_fn fn, void *arg)
{
	t->busy = fn;
	t->busy_arg = arg;
}

void lt_advisory(struct lock_table *t, lt_file_t file, uint64_t now)
{
	struct frec *f;

	if (!file)
		return;
	f = file_get(t, file);
	if (!f || f->advisory)
		return;
	/* Its holds stop counting: what waits for them goes now. */
	f->advisory = true;
	file_dirty(t, f);
	finish(t, now);
}

void lt_file_written(struct lock_table *t, lt_file_t file, uint64_t now)
{
	struct frec *f = file ? file_find(t, file) : NULL;

	if (!f)
		return;
	file_written(t, f, now);
	finish(t, now);
}

int lt_file_info(const struct lock_table *t, lt_file_t file, struct lt_file_info *out)
{
	const struct frec *f = file_find(t, file);

	if (!f)
		return -ENOENT;
	out->calm = f->calm;
	out->advisory = f->advisory;
	out->last_write = f->last_write;
	return 0;
}
