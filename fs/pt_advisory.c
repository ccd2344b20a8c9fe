/* Advisory locks (see pt.h).
 *
 * flock() and fcntl() locks taken in the mount are forwarded to the source
 * file as open-file-description locks on the handle's own descriptor, so
 * that they also exclude programs on the source directly or on other
 * mounts. This differs from POSIX process-owned record locks:
 *   - a handle is one open() in the mount; every process sharing it (fork,
 *     SCM_RIGHTS) shares its locks, where POSIX gives the child none;
 *   - two handles opened by the same process conflict with each other,
 *     where POSIX would merge their locks (one owner per process);
 *   - POSIX drops a process's locks at its first close() of any descriptor
 *     of the file. Handles holding a mandatory lock get that for the locks
 *     taken through them (pt_flush unlocks for the closing process's lock
 *     owner). Handles without one (appenders, executables, policy none)
 *     are opened with noflush to spare a round trip per close, so their
 *     locks go when the handle is released: right after the last close, but
 *     asynchronously: another process that tries the lock at once may
 *     still find it taken for a moment;
 *   - F_GETLK reports the conflicting lock; its l_pid is that of a process
 *     outside the mount when the lock was taken there, and unknown (the
 *     kernel shows 0) when it is another handle's.
 * Blocking requests (F_SETLKW, flock without LOCK_NB) wait in a short-lived
 * thread of their own, never in a FUSE worker; a FUSE interrupt (the
 * caller's signal) wakes that thread with BLOCKING_LOCK_SIGNAL, whose
 * handler does nothing and is installed without SA_RESTART, so the wait
 * fails with EINTR and the request is answered EINTR. */
#include "pt.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

/* Interrupts a thread blocked in F_OFD_SETLKW or flock(). */
#define BLOCKING_LOCK_SIGNAL SIGUSR2

void pt_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		     struct flock *lock)
{
	struct flock fl = *lock;

	(void)ino;
	fl.l_pid = 0; /* required by F_OFD_* */
	if (fcntl(handle_of(fi)->fd, F_OFD_GETLK, &fl) < 0) {
		reply_status(req, -errno);
		return;
	}
	if (fl.l_pid < 0)
		fl.l_pid = 0;
	fuse_reply_lock(req, &fl);
}

struct blocking_lock {
	struct passthrough *pt;
	fuse_req_t req;
	struct handle *h;
	bool is_flock;
	int flock_op;
	struct flock fl;
	uint64_t lock_owner;
	pthread_mutex_t mu;     /* protects the fields below */
	pthread_t thread;
	bool started, done, interrupted;
};

static void no_op_handler(int sig)
{
	(void)sig;
}

static void install_signal_handler(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = no_op_handler;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: the blocked call must fail EINTR */
	sigaction(BLOCKING_LOCK_SIGNAL, &sa, NULL);
}

static void blocking_interrupt(fuse_req_t req, void *data)
{
	struct blocking_lock *bl = data;

	(void)req;
	pthread_mutex_lock(&bl->mu);
	bl->interrupted = true;
	/* The signal can land just before the thread enters the system call
	 * and be lost; it is repeated until the thread is out (it checks the
	 * flag before each call). The thread finishes without needing this
	 * callback to return first. */
	for (unsigned i = 0; bl->started && !bl->done && i < 200; i++) {
		pthread_kill(bl->thread, BLOCKING_LOCK_SIGNAL);
		pthread_mutex_unlock(&bl->mu);
		usleep(i < 10 ? 100 : 5000);
		pthread_mutex_lock(&bl->mu);
	}
	pthread_mutex_unlock(&bl->mu);
}

static void *blocking_thread(void *arg)
{
	struct blocking_lock *bl = arg;
	sigset_t set;
	int rc;

	sigemptyset(&set);
	sigaddset(&set, BLOCKING_LOCK_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	for (;;) {
		int r;

		pthread_mutex_lock(&bl->mu);
		if (bl->interrupted) {
			pthread_mutex_unlock(&bl->mu);
			rc = -EINTR;
			break;
		}
		pthread_mutex_unlock(&bl->mu);
		r = bl->is_flock ? flock(bl->h->fd, bl->flock_op)
				 : fcntl(bl->h->fd, F_OFD_SETLKW, &bl->fl);
		if (r == 0) {
			rc = 0;
			break;
		}
		if (errno != EINTR) {
			rc = -errno;
			break;
		}
	}
	if (rc == 0 && !bl->is_flock)
		__atomic_store_n(&bl->h->posix_owner, bl->lock_owner, __ATOMIC_RELEASE);
	pthread_mutex_lock(&bl->mu);
	bl->done = true;
	pthread_mutex_unlock(&bl->mu);
	/* Waits for a running interrupt callback, and keeps later ones away,
	 * before the request and this record go. */
	fuse_req_interrupt_func(bl->req, NULL, NULL);
	reply_status(bl->req, rc);
	pthread_mutex_destroy(&bl->mu);
	free(bl);
	return NULL;
}

static void start_blocking(fuse_req_t req, struct handle *h, bool is_flock, int op,
			   const struct flock *fl, uint64_t lock_owner)
{
	struct blocking_lock *bl = calloc(1, sizeof(*bl));
	pthread_attr_t attr;
	int rc;

	if (!bl) {
		reply_status(req, -ENOLCK);
		return;
	}
	bl->pt = pt_of(req);
	bl->req = req;
	bl->h = h;
	bl->is_flock = is_flock;
	bl->flock_op = op;
	if (fl) {
		bl->fl = *fl;
		bl->fl.l_pid = 0;
	}
	bl->lock_owner = lock_owner;
	pthread_mutex_init(&bl->mu, NULL);
	/* Registered first: the thread may answer (and free the request) at
	 * any time once started. An interrupt already pending is recorded
	 * here and seen by the thread before it blocks. */
	fuse_req_interrupt_func(req, blocking_interrupt, bl);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	pthread_mutex_lock(&bl->mu);
	rc = pthread_create(&bl->thread, &attr, blocking_thread, bl);
	bl->started = rc == 0;
	pthread_mutex_unlock(&bl->mu);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		fuse_req_interrupt_func(req, NULL, NULL);
		pthread_mutex_destroy(&bl->mu);
		free(bl);
		reply_status(req, -rc);
	}
}

void pt_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		     struct flock *lock, int sleep)
{
	struct handle *h = handle_of(fi);
	struct flock fl = *lock;

	(void)ino;
	fl.l_pid = 0;
	if (fl.l_type != F_UNLCK)
		locking_advisory(pt_of(req)->locking, h->key);
	if (sleep && fl.l_type != F_UNLCK) {
		start_blocking(req, h, false, 0, &fl, fi->lock_owner);
		return;
	}
	if (fcntl(h->fd, F_OFD_SETLK, &fl) < 0) {
		reply_status(req, -errno);
		return;
	}
	if (fl.l_type != F_UNLCK)
		__atomic_store_n(&h->posix_owner, fi->lock_owner, __ATOMIC_RELEASE);
	reply_status(req, 0);
}

void pt_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int op)
{
	struct handle *h = handle_of(fi);

	(void)ino;
	if (!(op & LOCK_UN))
		locking_advisory(pt_of(req)->locking, h->key);
	if (!(op & LOCK_NB) && !(op & LOCK_UN)) {
		start_blocking(req, h, true, op, NULL, 0);
		return;
	}
	reply_status(req, rc_errno(flock(h->fd, op)));
}

/* The signal's handler, once for the process. */
void advisory_init(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, install_signal_handler);
}
