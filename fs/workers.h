/* The request threads: a fixed pool that reads /dev/fuse and runs each
 * request's handler.
 *
 * A fixed pool rather than libfuse's growing one because waiting opens are
 * parked in the lock table, not in a thread: no request handler blocks for
 * a lock, so a few threads serve any number of waiters, and the daemon's
 * thread count is the same with one waiter or a thousand. libfuse's loop
 * starts a thread whenever a request arrives while every thread is busy and
 * never ends it, so a burst of opens (even ones that will only be parked)
 * would leave the count at its high-water mark. */
#ifndef LOCKFS_WORKERS_H
#define LOCKFS_WORKERS_H

#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>

#define WORKERS_MAX 1024u

/* Starts nthreads (1..WORKERS_MAX) threads serving se and returns when the
 * session ends: unmounted (0), stopped by a signal handler through
 * fuse_session_exit (0), or failed reading the device (-errno). The calling
 * thread only waits; SIGINT, SIGTERM and SIGHUP are blocked in the workers,
 * so a stop signal lands on a thread that serves no request (usually the
 * caller), whose handler (fuse_set_signal_handlers) ends the session.
 * Returns -errno without serving anything if no thread starts. */
int workers_run(struct fuse_session *se, unsigned nthreads);

#endif
