#include "workers.h"

#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Shared by the pool's threads; workers_run() owns it, on its stack. */
struct pool {
	struct fuse_session *se;
	sem_t stopped;          /* posted by each worker as it ends */
	atomic_int error;       /* the first read error, -errno; 0 if none */
};

/* One per thread. The buffer is reused for every request the thread reads
 * and freed by workers_run() after the join, so a cancelled thread needs no
 * cleanup handler. */
struct worker {
	pthread_t thread;
	struct pool *pool;
	struct fuse_buf buf;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct pool *p = w->pool;

	/* Cancellation (how workers_run() stops threads blocked in read when
	 * a signal ends the session) is allowed only while waiting for a
	 * request, never in a handler that holds locks or owes a reply. */
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
	while (!fuse_session_exited(p->se)) {
		int r;

		pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
		r = fuse_session_receive_buf(p->se, &w->buf);
		pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
		if (r == -EINTR || r == -EAGAIN)
			continue;
		if (r <= 0) {
			/* 0: unmounted; libfuse has already ended the
			 * session. */
			if (r < 0) {
				int none = 0;

				atomic_compare_exchange_strong(&p->error, &none, r);
				fuse_session_exit(p->se);
			}
			break;
		}
		fuse_session_process_buf(p->se, &w->buf);
	}
	sem_post(&p->stopped);
	return NULL;
}

/* Blocks until some worker ends or the session is marked ended. A signal
 * whose handler ends the session just after the check and before sem_wait
 * would otherwise go unnoticed until the next request; the one-second
 * timeout bounds that rare delay without a wake-up channel of our own. */
static void wait_for_end(struct pool *p)
{
	while (!fuse_session_exited(p->se)) {
		struct timespec t;

		clock_gettime(CLOCK_REALTIME, &t);
		t.tv_sec += 1;
		if (sem_timedwait(&p->stopped, &t) == 0)
			break;
	}
}

int workers_run(struct fuse_session *se, unsigned nthreads)
{
	struct pool p = { .se = se };
	struct worker *w;
	sigset_t block, old;
	unsigned started = 0;
	int rc = 0;

	if (nthreads == 0 || nthreads > WORKERS_MAX)
		return -EINVAL;
	w = calloc(nthreads, sizeof(*w));
	if (!w)
		return -ENOMEM;
	if (sem_init(&p.stopped, 0, 0) != 0) {
		rc = -errno;
		free(w);
		return rc;
	}
	atomic_init(&p.error, 0);

	/* Threads inherit the mask: the stop signals are left to this
	 * thread, which is only waiting. */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	for (; started < nthreads; started++) {
		w[started].pool = &p;
		rc = pthread_create(&w[started].thread, NULL, worker_main, &w[started]);
		if (rc) {
			rc = -rc;
			break;
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	if (started == 0) {
		log_err("cannot start a request thread: %s", strerror(-rc));
	} else {
		if (started < nthreads)
			log_warn("started %u of %u request threads: %s", started,
				 nthreads, strerror(-rc));
		log_debug("serving requests with %u threads", started);
		wait_for_end(&p);
		/* Whoever is still reading waits for a request that may never
		 * come (a signal ended the session, the mount is still there
		 * until main unmounts it). */
		fuse_session_exit(se);
		for (unsigned i = 0; i < started; i++)
			pthread_cancel(w[i].thread);
		for (unsigned i = 0; i < started; i++)
			pthread_join(w[i].thread, NULL);
		rc = atomic_load(&p.error);
	}
	for (unsigned i = 0; i < started; i++)
		free(w[i].buf.mem);
	sem_destroy(&p.stopped);
	free(w);
	return rc;
}
