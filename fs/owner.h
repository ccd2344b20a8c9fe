/* Owner tracking: who is calling, and when they are gone.
 *
 * A lock owner is one calling thread, identified by the tid the kernel puts
 * in every FUSE request. Each owner gets a 64-bit id that is never reused and
 * a pidfd, so the daemon learns at once when the thread exits, and a recycled
 * tid can never be mistaken for the dead owner: owner_lookup() checks the
 * pidfd before returning a cached id.
 *
 * Exits are delivered through one epoll descriptor (owners_fd()) that the
 * locking module's event thread waits on, then owners_reap() reports each
 * exited owner with its heir:
 *   - a thread that is not its process's main thread: heir = the main thread;
 *   - a process's main thread: heir = the parent process's main thread;
 *   - when that heir has already exited, the nearest ancestor still alive
 *     (a lease passes up through `timeout cat f` to the shell even when
 *     timeout is gone before cat's exit is noticed), matched by its
 *     process key;
 *   - no heir when the owner was killed by a signal (kill -9 releases at
 *     once), when no ancestor is left, or when the heir is pid 1 or the
 *     daemon itself. The heir is matched by identity, not by pid number
 *     (owner.c explains how): a process that reuses the parent's pid never
 *     inherits, and a child that was reparented has no heir.
 * All functions are thread-safe (one mutex inside, owners_lock). */
#ifndef LOCKFS_OWNER_H
#define LOCKFS_OWNER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct owners;

/* How many processes an owner's family names: its own, then ancestors. */
#define OWNER_FAMILY_MAX 8

/* A process key: unique for the boot (its start time and pid), so a
 * recycled pid never matches. 0 means none. */
uint64_t owner_proc_key(pid_t pid, unsigned long long starttime);

struct owner_info {
	uint64_t id;
	pid_t tid;
	pid_t pid;      /* thread group id */
	pid_t ppid;     /* parent process at first sight */
	uid_t uid;      /* effective uid at first sight */
	char comm[16];  /* thread name, as in /proc/TID/comm */
	/* family[0] its process's key, family[1] the parent's, ... up to pid 1
	 * (excluded), as they were at first sight; 0 ends the list. */
	uint64_t family[OWNER_FAMILY_MAX];
};

/* 0 or -errno. */
int owners_new(struct owners **out);
void owners_free(struct owners *o);

/* The live owner for thread `tid`, created on first sight. Returns 0 and sets
 * *id, or -ESRCH if the thread no longer exists (or tid <= 0: FUSE sends 0
 * for a caller outside the daemon's pid namespace), or another -errno
 * (-EMFILE when out of descriptors for pidfds). */
int owner_lookup(struct owners *o, pid_t tid, uint64_t *id);

/* The owner for the caller of a request, thread `tid` as FUSE reports it:
 * owner_lookup(), with every failure but one turned into a refusal (see
 * "Failing closed" in owner.c). Returns
 *   0        *id set;
 *   -ESRCH   the caller is gone (its thread exited): the request may run
 *            without a lock, nobody is left to protect;
 *   -ENOLCK  the daemon cannot tell who the caller is (out of descriptors,
 *            /proc unreadable, tid 0 for a caller outside the daemon's pid
 *            namespace): the request must fail with it. Logged as a
 *            warning, at most once per 10 s per cause. */
int owner_of_caller(struct owners *o, pid_t tid, uint64_t *id);

/* Copies what is known of owner `id`; -ENOENT if it is unknown or reaped. */
int owner_info(struct owners *o, uint64_t id, struct owner_info *out);

/* Readable (EPOLLIN) when at least one owner has exited. */
int owners_fd(struct owners *o);

/* Reports every exited owner once through on_exit, then forgets it. Returns
 * the number reported. on_exit is called without owners_lock held;
 * heir_proc is the heir's process key (0 with no heir). */
typedef void (*owner_exit_fn)(void *arg, uint64_t id, uint64_t heir, uint64_t heir_proc);
int owners_reap(struct owners *o, owner_exit_fn on_exit, void *arg);

/* How many owners are tracked now (for tests and lockstat). */
unsigned owners_count(struct owners *o);

/* For the unit tests: behave as on a kernel before Linux 6.9 (no
 * PIDFD_THREAD, no pidfs), where a thread's exit is only noticed when its
 * process exits or its tid is seen again on a new thread. Call right after
 * owners_new(), before any other call. */
void owners_use_process_pidfds(struct owners *o);

#endif
