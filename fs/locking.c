/* Mandatory locks for FUSE requests (see locking.h).
 *
 * Concurrency design
 *   l->mu protects the lock table, the parked list and armed_deadline. It is
 *   never held while replying to the kernel or while calling into libfuse's
 *   interrupt registration, because libfuse may call our interrupt callback
 *   from inside fuse_req_interrupt_func() (request already interrupted), and
 *   that callback takes l->mu.
 *
 *   Every change to the table goes through the same three steps: change it
 *   under l->mu, collect the requests it decided ("drain"), and after
 *   unlocking resume each of them, which replies to its FUSE request. A
 *   request is therefore answered exactly once, by whichever thread decided
 *   it, never under l->mu.
 *
 *   Under l->mu the table makes no system call of its own, with one
 *   exception, on purpose: when a lease falls due on a machine that has
 *   more runnable tasks than CPUs, the busy hook (machine_busy) reads a few
 *   small /proc files to learn whether the holder's program is still at
 *   work. That is rare (an unused lease on a loaded machine), and bounded.
 *
 *   The one subtle window: after parking a request, the thread that parked it
 *   still has to register the interrupt callback, and until it has done so it
 *   must be the one to reply (fuse_req_t may be freed by the reply). While
 *   w->registering is set a decision is only recorded in w->pending*, and the
 *   parking thread resumes the request itself once registration is done.
 *
 * The event thread waits on three descriptors: the owners' exit notifier
 * (pidfds, owner.c), a timerfd armed at the table's next deadline (lease ends
 * and lock timeouts), and an eventfd used to stop it. */
#include "locking.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "cluster.h"
#include "config.h"
#include "hashtab.h"
#include "list.h"
#include "log.h"
#include "owner.h"
#include "procscan.h"

struct locking {
	const struct lockfs_config *cfg;
	struct owners *owners;

	pthread_mutex_t mu;         /* protects everything below */
	struct lock_table *lt;
	struct list parked;         /* of lk_wait by p_node: requests waiting or
	                               pending */
	uint64_t armed_deadline;    /* what timer_fd is set to, UINT64_MAX = off */

	long ncpus;                 /* online CPUs at start; read-only */
	int timer_fd;               /* CLOCK_MONOTONIC, absolute */
	int stop_fd;                /* eventfd */
	int epoll_fd;
	pthread_t thread;
	bool started;

	/* Cluster mode (NULL: off). Set before the session; the table of
	 * remote holds is under mu. */
	struct cluster *cluster;
	lk_cluster_name_fn cluster_name;
	void *cluster_name_arg;
	struct htab remotes;        /* of struct lk_remote, by file */
	uint64_t next_remote;
	uint64_t next_grant;
	lk_cluster_sync_fn cluster_sync;
};

/* The other hosts' claim on one file, as a pseudo-owner of the local table.
 * Kept for the life of the daemon (one per file used in cluster mode). */
struct lk_remote {
	struct hlink link;
	lt_file_t file;
	lt_owner_t owner;
	struct lk_wait w;           /* its request */
	bool holds;                 /* holds the file in the local table */
	bool queued;                /* w is parked, after a recall */
	bool dirty;                 /* written here since the cluster grant */
	/* Which grant of the cluster lock this host is in, 0 while it does
	 * not hold the lock or no longer trusts it. Written under mu, read
	 * without it by the write path (locking_fence_check): an atomic. */
	uint64_t grant;
};

uint64_t locking_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The lock table's busy hook: more runnable tasks than CPUs (the running
 * count of /proc/loadavg, which includes this thread), and the lease's
 * program is active (procscan_program_active): a holder asleep on something else,
 * with nothing of its own running (a reader that went on to wait for
 * input), has had its chance, and its lease ends on time. A few small
 * reads, only when a lease falls due on a busy machine. */
static bool machine_busy(void *arg, lt_owner_t owner)
{
	const struct locking *l = arg;
	struct owner_info info;

	if (procscan_running_tasks() <= l->ncpus)
		return false;
	return owner_info(l->owners, owner, &info) == 0 &&
	       procscan_program_active(info.pid, info.tid);
}

static int errno_for(int lt_status)
{
	/* A lock timeout is reported as ENOLCK ("No locks available"): the open
	 * could not get its lock in time. ETIMEDOUT would read "Connection timed
	 * out", which misleads on a file. */
	return lt_status == -ETIMEDOUT ? -ENOLCK : lt_status;
}

/* Moves what the table decided from the parked list to `todo`, in the
 * order decided, to resume after unlocking. Called with l->mu held. */
static void drain(struct locking *l, struct list *todo)
{
	struct lt_request *r;

	list_init(todo);
	while ((r = lt_take_decided(l->lt)) != NULL) {
		struct lk_wait *w = (struct lk_wait *)((char *)r - offsetof(struct lk_wait, lt));

		list_remove(&w->p_node);
		w->pending_status = w->cluster_bounded && r->status == -ETIMEDOUT
					    ? -EAGAIN : errno_for(r->status);
		if (w->registering)
			w->pending = true;
		else
			list_add_tail(todo, &w->p_node);
	}
}

/* Keeps the timer at the table's earliest deadline. Called with l->mu held. */
static void rearm(struct locking *l)
{
	uint64_t next = lt_next_deadline(l->lt);
	struct itimerspec its = { 0 };

	if (next == l->armed_deadline)
		return;
	l->armed_deadline = next;
	if (next != UINT64_MAX) {
		/* 0 would disarm; a deadline already in the past fires at once. */
		if (next == 0)
			next = 1;
		its.it_value.tv_sec = (time_t)(next / 1000000000ull);
		its.it_value.tv_nsec = (long)(next % 1000000000ull);
	}
	if (timerfd_settime(l->timer_fd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
		log_err("timerfd_settime: %s", strerror(errno));
}

/* Unlocks and answers everything that was decided. */
static void unlock_and_resume(struct locking *l)
{
	struct list todo;
	struct list_node *n;

	drain(l, &todo);
	rearm(l);
	pthread_mutex_unlock(&l->mu);
	/* Taken off before the resume, which may free the request. */
	while ((n = list_pop(&todo)) != NULL) {
		struct lk_wait *w = list_entry(n, struct lk_wait, p_node);

		w->resume(w, w->pending_status);
	}
}

static void on_interrupt(fuse_req_t req, void *data)
{
	struct locking *l = data;
	struct list_node *n, *tmp;

	pthread_mutex_lock(&l->mu);
	/* Look the request up rather than trusting a pointer in `data`: the
	 * waiter may have been answered and freed already, but `req` itself is
	 * kept alive by libfuse for the duration of this callback. */
	list_for_each(&l->parked, n, tmp) {
		struct lk_wait *w = list_entry(n, struct lk_wait, p_node);

		if (w->req == req) {
			if (w->lt.state == LT_REQ_WAITING) {
				log_debug("interrupt: open of %016llx by owner %llu cancelled",
					  (unsigned long long)w->lt.file,
					  (unsigned long long)w->lt.owner);
				lt_cancel(l->lt, &w->lt, locking_now());
			}
			break;
		}
	}
	unlock_and_resume(l);
}


static uint64_t remote_hash(const struct hlink *h)
{
	return hash_mix64(list_entry(h, struct lk_remote, link)->file);
}

/* Called with l->mu held. */
static struct lk_remote *remote_find(struct locking *l, lt_file_t file)
{
	for (struct hlink *h = ht_first(&l->remotes, hash_mix64(file)); h; h = h->next) {
		struct lk_remote *r = list_entry(h, struct lk_remote, link);

		if (r->file == file)
			return r;
	}
	return NULL;
}

static bool remote_holds(struct locking *l, lt_file_t file)
{
	struct lk_remote *r = remote_find(l, file);

	return r && r->holds;
}

static void remote_resume(struct lk_wait *w, int status);

/* Queues the other hosts' request on r's file. True when it was granted at
 * once: the local side is idle. Called with l->mu held. */
static bool remote_enqueue(struct locking *l, struct lk_remote *r)
{
	int rc;

	if (r->holds || r->queued)
		return false;
	memset(&r->w, 0, sizeof(r->w));
	r->w.lt.file = r->file;
	r->w.lt.owner = r->owner;
	r->w.lt.cookie = l;
	/* A barrier: counts as writing (no peeks, no reader_wait breaking it)
	 * and is never forwarded by rename marks: the lock is the inode's. */
	r->w.lt.cls = LT_EXCL;
	r->w.lt.flags = LT_F_WRITE | LT_F_BARRIER;
	r->w.resume = remote_resume;
	rc = lt_acquire(l->lt, &r->w.lt, locking_now());
	if (rc == 0) {
		r->holds = true;
		__atomic_store_n(&r->grant, 0, __ATOMIC_RELEASE);
		return true;
	}
	if (rc == -EINPROGRESS) {
		list_add_head(&l->parked, &r->w.p_node);
		r->queued = true;
	} else {
		log_err("cluster: the local table refused the other hosts' request on %016llx: %s",
			(unsigned long long)r->file, strerror(-rc));
	}
	return false;
}

/* The first request on a file in cluster mode: until the cluster grants
 * it, the other hosts hold it. Called with l->mu held. */
static void remote_first_touch(struct locking *l, lt_file_t file)
{
	struct lk_remote *r;

	if (remote_find(l, file))
		return;
	r = calloc(1, sizeof(*r));
	if (!r) {
		log_err("cluster: out of memory");
		return;
	}
	r->file = file;
	r->owner = LK_REMOTE_OWNER | ++l->next_remote;
	ht_insert(&l->remotes, &r->link, hash_mix64(file));
	remote_enqueue(l, r);
}

static void ask_cluster(struct locking *l, lt_file_t file)
{
	char name[CLUSTER_NAME_MAX];
	int rc = l->cluster_name(l->cluster_name_arg, file, name, sizeof(name));

	if (rc < 0) {
		log_err("cluster: no cluster name for %016llx: %s", (unsigned long long)file,
			strerror(-rc));
		return;
	}
	cluster_acquire(l->cluster, file, name);
}

/* The other hosts' request was granted: nobody here holds the file any
 * more, the cluster lock may go. Local requests that queued meanwhile ask
 * for it again (behind the host that recalled it). */
static void remote_resume(struct lk_wait *w, int status)
{
	struct lk_remote *r = list_entry(w, struct lk_remote, w);
	struct locking *l = w->lt.cookie;
	bool again;

	pthread_mutex_lock(&l->mu);
	r->queued = false;
	r->holds = status == 0;
	if (r->holds)
		__atomic_store_n(&r->grant, 0, __ATOMIC_RELEASE);
	/* Moved to another file by a rename over this one (lt_replace), and
	 * answered there: the recall is still for this inode, queue again. */
	if (status != 0 && status != -EINTR && remote_enqueue(l, r))
		status = 0;
	again = r->holds && lt_waiters(l->lt, r->file, NULL, 0) > 0;
	unlock_and_resume(l);
	/* No cluster any more: the daemon is shutting down. */
	if (status != 0 || !l->cluster)
		return;
	cluster_idle(l->cluster, r->file);
	if (again)
		ask_cluster(l, r->file);
}

static void cluster_granted(void *arg, uint64_t file)
{
	struct locking *l = arg;
	struct lk_remote *r;

	pthread_mutex_lock(&l->mu);
	r = remote_find(l, file);
	if (r && r->holds) {
		lt_barrier_done(l->lt, file, r->owner, locking_now());
		r->holds = false;
	}
	if (r)
		__atomic_store_n(&r->grant, ++l->next_grant, __ATOMIC_RELEASE);
	unlock_and_resume(l);
}

/* Recalled or lost: the other hosts queue behind what is here, so the
 * local critical section in progress ends first. A lost lock also fences
 * the handles opened under it at once: their writes fail from now on
 * (locking_fence_check), since another host may already hold the file. */
static void cluster_recall_or_lose(struct locking *l, uint64_t file, bool lost)
{
	struct lk_remote *r;
	bool idle = false;

	pthread_mutex_lock(&l->mu);
	r = remote_find(l, file);
	if (r) {
		if (lost)
			__atomic_store_n(&r->grant, 0, __ATOMIC_RELEASE);
		idle = remote_enqueue(l, r);
	}
	unlock_and_resume(l);
	if (idle)
		cluster_idle(l->cluster, file);
}

static void cluster_recall(void *arg, uint64_t file)
{
	cluster_recall_or_lose(arg, file, false);
}

static void cluster_lost(void *arg, uint64_t file)
{
	cluster_recall_or_lose(arg, file, true);
}

/* Before the cluster lock goes to another host: what this host wrote under
 * it must be durable on the shared file system (NFS close-to-open needs the
 * close, which the handover waits for; the fsync makes it survive a crash
 * of this host or the server). */
static void cluster_flush(void *arg, uint64_t file)
{
	struct locking *l = arg;
	struct lk_remote *r;
	bool dirty = false;
	int rc;

	pthread_mutex_lock(&l->mu);
	r = remote_find(l, file);
	if (r) {
		dirty = r->dirty;
		r->dirty = false;
	}
	pthread_mutex_unlock(&l->mu);
	if (!dirty || !l->cluster_sync)
		return;
	rc = l->cluster_sync(l->cluster_name_arg, file);
	if (rc < 0 && rc != -ENOENT)
		log_limited(LOG_LVL_ERROR, "cluster: syncing %016llx before handing it over: %s",
			    (unsigned long long)file, strerror(-rc));
}

const struct cluster_ops locking_cluster_ops = {
	.granted = cluster_granted,
	.recall = cluster_recall,
	.lost = cluster_lost,
	.flush = cluster_flush,
};

void locking_set_cluster(struct locking *l, struct cluster *c, lk_cluster_name_fn name,
			 lk_cluster_sync_fn sync, void *arg)
{
	l->cluster = c;
	l->cluster_name = name;
	l->cluster_sync = sync;
	l->cluster_name_arg = arg;
}

void locking_fence(struct locking *l, lt_file_t file, struct lk_fence *out)
{
	struct lk_remote *r;

	out->remote = NULL;
	out->grant = 0;
	if (!l->cluster)
		return;
	pthread_mutex_lock(&l->mu);
	r = remote_find(l, file);
	if (r) {
		out->remote = r;
		out->grant = __atomic_load_n(&r->grant, __ATOMIC_ACQUIRE);
	}
	pthread_mutex_unlock(&l->mu);
}

int locking_fence_check(struct locking *l, const struct lk_fence *f)
{
	const struct lk_remote *r = f->remote;
	struct cluster *c = l->cluster;

	if (!r)
		return 0;
	/* Lost, or handed over and granted anew since the handle was opened;
	 * or this daemon's own clock says the session may be gone, which it
	 * says before the watchdog declares the locks lost. */
	if (!f->grant || __atomic_load_n(&r->grant, __ATOMIC_ACQUIRE) != f->grant ||
	    (c && !cluster_trusted(c))) {
		if (c)
			cluster_count_fenced(c);
		log_limited(LOG_LVL_ERROR, "cluster: write to %016llx refused: this host's cluster lock of it was lost",
			    (unsigned long long)r->file);
		return -EIO;
	}
	return 0;
}

static void on_owner_exit(void *arg, uint64_t id, uint64_t heir, uint64_t heir_proc);

void locking_acquire(struct locking *l, struct lk_wait *w)
{
	struct owner_info info;
	bool need_cluster;
	int rc;

	/* Exits already noticed by the kernel go first: in
	 * `n=$(cat f); echo $((n+1)) > f` the shell opens f right after cat
	 * exited, and cat's lease must reach the shell now, not after the
	 * event thread wakes up (one epoll_wait when nobody exited). */
	owners_reap(l->owners, on_owner_exit, l);
	/* The program the owner belongs to: what it may join (locktable.h). */
	if (!w->lt.family[0] && owner_info(l->owners, w->lt.owner, &info) == 0) {
		_Static_assert(OWNER_FAMILY_MAX == LT_FAMILY_MAX, "family sizes differ");
		memcpy(w->lt.family, info.family, sizeof(w->lt.family));
	}

	w->registering = true;
	w->pending = false;
	list_node_init(&w->p_node);

	w->cluster_bounded = false;

	pthread_mutex_lock(&l->mu);
	if (l->cluster) {
		remote_first_touch(l, w->lt.file);
		/* A non-blocking open of a file the other hosts hold waits for
		 * the cluster's answer, at most LK_CLUSTER_NONBLOCK_NS, and is
		 * refused with EAGAIN only past that: a file another host
		 * merely caches comes back in the time of a recall, and
		 * programs that pass O_NONBLOCK only to be safe from fifos
		 * (grep -r) must not be refused every file of a cold mount. */
		if ((w->lt.flags & LT_F_NONBLOCK) && remote_holds(l, w->lt.file)) {
			uint64_t bound = locking_now() + LK_CLUSTER_NONBLOCK_NS;

			w->lt.flags &= ~(unsigned)LT_F_NONBLOCK;
			if (!w->lt.deadline || w->lt.deadline > bound)
				w->lt.deadline = bound;
			w->cluster_bounded = true;
		}
	}
	rc = lt_acquire(l->lt, &w->lt, locking_now());
	if (rc == -EINPROGRESS) {
		list_add_head(&l->parked, &w->p_node);
		log_debug("owner %llu waits for %016llx",
			  (unsigned long long)w->lt.owner, (unsigned long long)w->lt.file);
	}
	/* Waiting (or refused) while the other hosts hold it: ask the cluster.
	 * A refused non-blocking open asks too, so that a retry may succeed. */
	need_cluster = l->cluster && (rc == -EINPROGRESS || rc == -EAGAIN) &&
		       remote_holds(l, w->lt.file);
	unlock_and_resume(l);
	if (need_cluster)
		ask_cluster(l, w->lt.file);

	if (rc != -EINPROGRESS) {
		w->resume(w, errno_for(rc));
		return;
	}

	/* Parked: register for interrupts, then see whether the request was
	 * decided meanwhile (by another thread, or by the interrupt callback
	 * running right inside the registration). */
	fuse_req_interrupt_func(w->req, on_interrupt, l);
	pthread_mutex_lock(&l->mu);
	w->registering = false;
	if (w->pending) {
		int status = w->pending_status;

		pthread_mutex_unlock(&l->mu);
		w->resume(w, status);
		return;
	}
	pthread_mutex_unlock(&l->mu);
}

void locking_release(struct locking *l, lt_file_t file, lt_owner_t owner, bool write)
{
	pthread_mutex_lock(&l->mu);
	if (write && l->cluster) {
		struct lk_remote *r = remote_find(l, file);

		if (r)
			r->dirty = true;
	}
	lt_release(l->lt, file, owner, write, locking_now());
	unlock_and_resume(l);
}

void locking_advisory(struct locking *l, lt_file_t file)
{
	pthread_mutex_lock(&l->mu);
	lt_advisory(l->lt, file, locking_now());
	unlock_and_resume(l);
}

void locking_written(struct locking *l, lt_file_t file)
{
	pthread_mutex_lock(&l->mu);
	lt_file_written(l->lt, file, locking_now());
	unlock_and_resume(l);
}

void locking_barrier_done(struct locking *l, lt_file_t file, lt_owner_t owner)
{
	pthread_mutex_lock(&l->mu);
	lt_barrier_done(l->lt, file, owner, locking_now());
	unlock_and_resume(l);
}

void locking_replaced(struct locking *l, lt_file_t old_file, lt_file_t new_file)
{
	pthread_mutex_lock(&l->mu);
	lt_replace(l->lt, old_file, new_file, locking_now());
	unlock_and_resume(l);
}

void locking_gone(struct locking *l, lt_file_t file)
{
	pthread_mutex_lock(&l->mu);
	lt_gone(l->lt, file, locking_now());
	unlock_and_resume(l);
}

int locking_owner(struct locking *l, fuse_req_t req, lt_owner_t *owner)
{
	return owner_of_caller(l->owners, fuse_req_ctx(req)->pid, owner);
}

struct owners *locking_owners(struct locking *l)
{
	return l->owners;
}

struct cluster *locking_cluster(struct locking *l)
{
	return l->cluster;
}

static void on_owner_exit(void *arg, uint64_t id, uint64_t heir, uint64_t heir_proc)
{
	struct locking *l = arg;

	log_debug("owner %llu exited, heir %llu", (unsigned long long)id,
		  (unsigned long long)heir);
	pthread_mutex_lock(&l->mu);
	lt_owner_exit2(l->lt, id, heir, heir_proc, locking_now());
	unlock_and_resume(l);
}

static void *event_thread(void *arg)
{
	struct locking *l = arg;

	for (;;) {
		struct epoll_event evs[8];
		int n = epoll_wait(l->epoll_fd, evs, 8, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_err("epoll_wait: %s", strerror(errno));
			return NULL;
		}
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;

			if (fd == l->stop_fd)
				return NULL;
			if (fd == l->timer_fd) {
				uint64_t ticks;

				if (read(l->timer_fd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
					log_err("timerfd read: %s", strerror(errno));
				pthread_mutex_lock(&l->mu);
				/* The timer may have fired for a deadline that has
				 * since moved; re-arming below sets the right one. */
				l->armed_deadline = UINT64_MAX - 1;
				pthread_mutex_unlock(&l->mu);
				/* Exits first: a lease whose holder has exited
				 * goes to its heir rather than expiring. */
				owners_reap(l->owners, on_owner_exit, l);
				pthread_mutex_lock(&l->mu);
				lt_tick(l->lt, locking_now());
				unlock_and_resume(l);
			} else {
				owners_reap(l->owners, on_owner_exit, l);
			}
		}
	}
}

int locking_new(struct locking **out, const struct lockfs_config *cfg)
{
	struct locking *l = calloc(1, sizeof(*l));
	struct epoll_event ev = { .events = EPOLLIN };
	int rc;

	if (!l)
		return -ENOMEM;
	l->cfg = cfg;
	list_init(&l->parked);
	l->armed_deadline = UINT64_MAX;
	l->timer_fd = l->stop_fd = l->epoll_fd = -1;
	pthread_mutex_init(&l->mu, NULL);

	rc = ht_init(&l->remotes, 16, remote_hash);
	if (rc < 0)
		goto fail;
	l->lt = lt_new();
	if (!l->lt) {
		rc = -ENOMEM;
		goto fail;
	}
	struct lt_config ltc = {
		.calm_after_ns = cfg->calm_after_ms * 1000000ull,
		.long_read_ns = cfg->long_read_ms * 1000000ull,
		.reader_wait_ns = cfg->reader_wait_ms * 1000000ull,
		.lease_stretch_max = LOCKFS_LEASE_STRETCH_MAX,
	};
	lt_configure(l->lt, &ltc);
	l->ncpus = sysconf(_SC_NPROCESSORS_ONLN);
	if (l->ncpus < 1)
		l->ncpus = 1;
	lt_set_busy_hook(l->lt, machine_busy, l);
	rc = owners_new(&l->owners);
	if (rc < 0)
		goto fail;
	l->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	l->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	l->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (l->timer_fd < 0 || l->stop_fd < 0 || l->epoll_fd < 0) {
		rc = -errno;
		goto fail;
	}
	int fds[] = { l->timer_fd, l->stop_fd, owners_fd(l->owners) };
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		ev.data.fd = fds[i];
		if (epoll_ctl(l->epoll_fd, EPOLL_CTL_ADD, fds[i], &ev) < 0) {
			rc = -errno;
			goto fail;
		}
	}
	*out = l;
	return 0;
fail:
	locking_free(l);
	return rc;
}

int locking_start(struct locking *l)
{
	int rc = pthread_create(&l->thread, NULL, event_thread, l);

	if (rc)
		return -rc;
	l->started = true;
	return 0;
}

void locking_stop(struct locking *l)
{
	struct list_node *n, *tmp;
	uint64_t one = 1;

	if (l->started) {
		if (write(l->stop_fd, &one, sizeof(one)) < 0)
			log_err("eventfd write: %s", strerror(errno));
		pthread_join(l->thread, NULL);
		l->started = false;
	}
	/* Whoever still waits will not be served by this daemon any more. */
	pthread_mutex_lock(&l->mu);
	list_for_each(&l->parked, n, tmp) {
		struct lk_wait *w = list_entry(n, struct lk_wait, p_node);

		if (w->lt.state == LT_REQ_WAITING)
			lt_cancel(l->lt, &w->lt, locking_now());
	}
	unlock_and_resume(l);
}

static void remote_free(struct hlink *h, void *arg)
{
	free(list_entry(h, struct lk_remote, link));
}

void locking_free(struct locking *l)
{
	if (!l)
		return;
	if (l->lt)
		lt_free(l->lt);
	if (l->remotes.b) {
		ht_each(&l->remotes, remote_free, NULL);
		ht_free(&l->remotes);
	}
	if (l->owners)
		owners_free(l->owners);
	if (l->timer_fd >= 0)
		close(l->timer_fd);
	if (l->stop_fd >= 0)
		close(l->stop_fd);
	if (l->epoll_fd >= 0)
		close(l->epoll_fd);
	pthread_mutex_destroy(&l->mu);
	free(l);
}

/* How much a snapshot needs, read under l->mu, and how much one has. */
struct snap_sizes {
	size_t files, holds, waiters, stats;
};

/* The snapshot being filled under l->mu: only what was allocated before. */
struct snap_ctx {
	struct locking *l;
	struct lk_snapshot *s;
	struct snap_sizes cap, used;
	struct lt_holder_view *hv;      /* scratch, cap.holds of them */
	const struct lt_request **rq;   /* scratch, cap.waiters of them */
};

static int count_stat(void *arg, lt_file_t file, const struct lt_stats *st)
{
	(void)file;
	(void)st;
	(*(size_t *)arg)++;
	return 0;
}

static void snap_measure(struct locking *l, bool with_stats, struct snap_sizes *z)
{
	z->files = lt_file_count(l->lt);
	z->holds = lt_hold_count(l->lt);
	z->waiters = lt_waiter_count(l->lt);
	z->stats = 0;
	if (with_stats)
		lt_foreach_stats(l->lt, count_stat, &z->stats);
}

static bool snap_fits(const struct snap_sizes *need, const struct snap_sizes *cap)
{
	return need->files <= cap->files && need->holds <= cap->holds &&
	       need->waiters <= cap->waiters && need->stats <= cap->stats;
}

static void snap_release(struct snap_ctx *c)
{
	free(c->hv);
	free(c->rq);
	c->hv = NULL;
	c->rq = NULL;
	locking_snapshot_free(c->s);
}

/* Allocates for `need` and some room to grow: the table may change while
 * the mutex is released. 0 or -ENOMEM. */
static int snap_alloc(struct snap_ctx *c, const struct snap_sizes *need)
{
	struct lk_snapshot *s = c->s;
	struct snap_sizes z = {
		need->files + need->files / 8 + 8, need->holds + need->holds / 8 + 8,
		need->waiters + need->waiters / 8 + 8, need->stats + need->stats / 8 + 8,
	};

	snap_release(c);
	s->files = calloc(z.files, sizeof(*s->files));
	s->holder_pool = calloc(z.holds, sizeof(*s->holder_pool));
	s->waiter_pool = calloc(z.waiters, sizeof(*s->waiter_pool));
	s->stats = calloc(z.stats, sizeof(*s->stats));
	c->hv = calloc(z.holds, sizeof(*c->hv));
	c->rq = calloc(z.waiters, sizeof(*c->rq));
	if (!s->files || !s->holder_pool || !s->waiter_pool || !s->stats || !c->hv || !c->rq) {
		snap_release(c);
		return -ENOMEM;
	}
	c->cap = z;
	return 0;
}

static int snap_file(void *arg, lt_file_t file)
{
	struct snap_ctx *c = arg;
	struct lk_snapshot *s = c->s;
	struct lk_file_snap *f;
	size_t nh, nw;

	if (s->nfiles == c->cap.files)
		return 1;       /* cannot happen: sized under the same mutex */
	f = &s->files[s->nfiles++];
	f->file = file;
	/* What the table learned of the file, in the same pass. */
	if (lt_file_info(c->l->lt, file, &f->info) != 0)
		memset(&f->info, 0, sizeof(f->info));

	nh = lt_holders(c->l->lt, file, c->hv, c->cap.holds - c->used.holds);
	nh = nh < c->cap.holds - c->used.holds ? nh : c->cap.holds - c->used.holds;
	f->holders = s->holder_pool + c->used.holds;
	for (size_t i = 0; i < nh; i++)
		f->holders[i] = (struct lk_holder){
			.owner = c->hv[i].owner,
			.cls = c->hv[i].cls,
			.handles = c->hv[i].handles,
			.since = c->hv[i].since,
			.lease_until = c->hv[i].lease_until,
			.state = c->hv[i].state,
			.inherited = c->hv[i].inherited,
			.joined = c->hv[i].joined,
		};
	f->nholders = nh;
	c->used.holds += nh;

	nw = lt_waiters(c->l->lt, file, c->rq, c->cap.waiters - c->used.waiters);
	nw = nw < c->cap.waiters - c->used.waiters ? nw : c->cap.waiters - c->used.waiters;
	f->waiters = s->waiter_pool + c->used.waiters;
	for (size_t i = 0; i < nw; i++)
		f->waiters[i] = (struct lk_waiter){ c->rq[i]->owner, c->rq[i]->cls,
			c->rq[i]->flags, c->rq[i]->enqueued_at };
	f->nwaiters = nw;
	c->used.waiters += nw;
	return 0;
}

static int snap_stat(void *arg, lt_file_t file, const struct lt_stats *st)
{
	struct snap_ctx *c = arg;
	struct lk_snapshot *s = c->s;
	struct lk_stat_snap *ss;

	if (s->nstats == c->cap.stats)
		return 1;
	ss = &s->stats[s->nstats++];
	ss->file = file;
	ss->st = *st;
	if (lt_file_info(c->l->lt, file, &ss->info) != 0)
		memset(&ss->info, 0, sizeof(ss->info));
	return 0;
}

/* Sizes, allocates with l->mu released, then copies under it: if the table
 * outgrew the copy meanwhile, again with more room (a table that grows
 * faster than it can be copied four times over gets -EAGAIN). */
int locking_snapshot(struct locking *l, bool with_stats, struct lk_snapshot *out)
{
	struct snap_ctx c = { .l = l, .s = out };
	struct snap_sizes need;
	int rc;

	memset(out, 0, sizeof(*out));
	for (int tries = 0;; tries++) {
		pthread_mutex_lock(&l->mu);
		snap_measure(l, with_stats, &need);
		if (tries > 0 && snap_fits(&need, &c.cap))
			break;
		pthread_mutex_unlock(&l->mu);
		if (tries == 4) {
			snap_release(&c);
			return -EAGAIN;
		}
		rc = snap_alloc(&c, &need);
		if (rc < 0)
			return rc;
	}
	out->now = locking_now();
	lt_foreach_file(l->lt, snap_file, &c);
	if (with_stats)
		lt_foreach_stats(l->lt, snap_stat, &c);
	pthread_mutex_unlock(&l->mu);
	free(c.hv);
	free(c.rq);
	return 0;
}

void locking_snapshot_free(struct lk_snapshot *s)
{
	free(s->files);
	free(s->holder_pool);
	free(s->waiter_pool);
	free(s->stats);
	memset(s, 0, sizeof(*s));
}

void locking_stats_reset(struct locking *l)
{
	pthread_mutex_lock(&l->mu);
	lt_stats_reset(l->lt);
	pthread_mutex_unlock(&l->mu);
}

void locking_forget(struct locking *l, lt_file_t file)
{
	pthread_mutex_lock(&l->mu);
	lt_forget(l->lt, file);
	unlock_and_resume(l);
}

void locking_forget_dead(struct locking *l, lt_file_t file)
{
	pthread_mutex_lock(&l->mu);
	lt_forget_dead(l->lt, file);
	unlock_and_resume(l);
}
