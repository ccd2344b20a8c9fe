/* Owner tracking: one pidfd per calling thread, exits delivered through one
 * epoll set, heirs chosen by identity rather than by pid number.
 *
 * Identity. A pid number can be recycled at any time after its task is
 * reaped, so every decision that names a task by number is checked against
 * an identity taken while the task was known to be the right one:
 *   - with pidfs (Linux >= 6.9) the identity is the pidfd's inode number,
 *     unique for the whole boot and shared by the thread-group leader's thread
 *     pidfd and its process pidfd;
 *   - before that, it is the start time from /proc/PID/stat (clock ticks since
 *     boot). Two tasks with the same number and the same start tick would be
 *     confused; that needs the whole pid space to wrap within one tick.
 *
 * Exit detection. With PIDFD_THREAD (Linux >= 6.9) each owner's pidfd is the
 * thread's own and becomes readable when that thread exits (for a group
 * leader: when the whole process is gone, as the kernel keeps a leader whose
 * other threads still run). Without it, pidfds can only name processes: a
 * thread owner then holds a pidfd on its process and its own exit is noticed
 * when the process exits, or earlier when a lookup of the same tid finds a
 * different thread (start time changed). Such an owner is moved to `dead` and
 * reported through an eventfd in the same epoll set.
 *
 * What bounds the pidfds. An owner, and its pidfd, lives from the first lock
 * request of its thread until that thread's exit is reaped, so the daemon
 * holds one pidfd per live thread that has used the mount (plus exits not
 * yet reaped, which the event thread reaps at once). With thread pidfds that
 * is the whole bound. With process pidfds an exited thread of a live process
 * gives no event, so a long-lived process that runs many short threads would
 * leave one pidfd behind per thread: every time the owners outnumber
 * twice what they were at the last sweep, each such owner is checked (its
 * start time) and the vanished ones are reaped, which keeps the count within
 * twice the live threads at amortized O(1) per new owner. Owners of live
 * threads that hold and wait for nothing are not dropped: only the lock
 * table knows that (see owner.h).
 *
 * Heirs. When an owner is created we record who its heir would be (the main
 * thread for a thread, the parent for a process's main thread) and that
 * heir's identity, verified while both were alive: the parent's identity is
 * taken between two reads of the child's PPid that agree, so the process that
 * had that pid at that moment was the parent (a child can only be moved to an
 * ancestor that outlived its parent, never back to a process that now holds
 * the parent's old number). At exit the heir is the live owner for that pid
 * whose identity matches. Guarantee: locks are never handed to a process that
 * merely reuses the parent's pid; the price is that a child reparented to a
 * subreaper or init has no heir.
 *
 * Failing closed. Only a task that is really gone is reported as -ESRCH: a
 * request from a caller that exited meanwhile has nobody left to protect and
 * may go on without a lock. Anything else that keeps the daemon from telling
 * who a caller is (no descriptor left for its pidfd or for a /proc read, a
 * full epoll set, /proc unreadable) is an error of its own, and
 * owner_of_caller() turns it into a refusal of the request: an open that
 * proceeded without its lock would be the very lost update lockfs exists to
 * prevent, and nobody would ever see why.
 */
#include "owner.h"

#include "hashtab.h"
#include "list.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/types.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

/* Kernel UAPI facts that Debian 12's headers (Linux 6.1) predate. */
#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL
#endif
#define LOCKFS_PIDFS_MAGIC 0x50494446u
/* struct pidfd_info at its first published size (64 bytes, Linux 6.13);
 * Linux 6.15 turned the last spare field into exit_code. The ioctl number
 * encodes the size, and the kernel accepts any size from 64 bytes up. */
struct lockfs_pidfd_info {
	__u64 mask;
	__u64 cgroupid;
	__u32 pid, tgid, ppid;
	__u32 ruid, rgid, euid, egid, suid, sgid, fsuid, fsgid;
	__s32 exit_code;
};
_Static_assert(sizeof(struct lockfs_pidfd_info) == 64, "pidfd_info VER0 is 64 bytes");
#define LOCKFS_PIDFD_GET_INFO _IOWR(0xFF, 11, struct lockfs_pidfd_info)
#define LOCKFS_PIDFD_INFO_EXIT (1ull << 3)
#define LOCKFS_PF_SIGNALED 0x400  /* task flag: killed by a signal */

#define REAP_BATCH 64
#define EVFD_KEY 0  /* epoll key of the eventfd; owner ids start at 1 */

struct owner {
	struct owner_info info;
	int pidfd;
	bool thread_pidfd;      /* pidfd names the thread, not its process */
	uint64_t ident;         /* see "Identity" above */
	uint64_t heir_ident;    /* identity the heir must have; 0: no heir */
	bool in_tid_table;      /* the current owner for its tid */
	bool in_epoll;
	struct hlink tid_hl, id_hl; /* owners.by_tid, owners.by_id */
	struct owner *dead_next;
};

struct owners {
	pthread_mutex_t owners_lock;  /* protects everything below but the
	                                 fields marked fixed */
	struct htab by_tid;           /* live owners by tid */
	struct htab by_id;            /* every owner not yet reaped, by id */
	unsigned sweep_at;            /* count that triggers the next sweep */
	uint64_t next_id;
	struct owner *dead;           /* found gone by a lookup, see above */

	int epfd;                     /* fixed */
	int evfd;                     /* fixed */
	bool thread_pidfds;           /* fixed: PIDFD_THREAD works */
	bool ino_ident;               /* fixed: identities are pidfs inodes */
	/* "fixed": set by owners_new() (or owners_use_process_pidfds()
	 * before any other call), then only read, without the lock. */
};

static int sys_pidfd_open(pid_t pid, unsigned flags)
{
	return (int)syscall(SYS_pidfd_open, pid, flags);
}

static int sys_pidfd_send_signal(int pidfd, int sig)
{
	return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

/* ---- /proc -------------------------------------------------------------- */

/* Reads /proc/TID/WHAT whole. A vanished task is -ESRCH whatever the
 * errno /proc picked for it. */
static int proc_read(pid_t tid, const char *what, char *buf, size_t size)
{
	char path[64];
	size_t len = 0;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)tid, what);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	while (len + 1 < size) {
		ssize_t n = read(fd, buf + len, size - 1 - len);

		if (n < 0) {
			int e = errno;

			if (e == EINTR)
				continue;
			close(fd);
			return e == ENOENT ? -ESRCH : -e;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	return (int)len;
}

struct proc_status {
	pid_t tgid, ppid;
	uid_t euid;
};

static int read_status(pid_t tid, struct proc_status *st)
{
	char buf[4096];
	const char *l;
	unsigned long ruid, euid;
	int n = proc_read(tid, "status", buf, sizeof(buf));

	if (n < 0)
		return n;
	l = strstr(buf, "\nTgid:");
	if (!l || sscanf(l + 6, "%d", &st->tgid) != 1)
		return -EIO;
	l = strstr(buf, "\nPPid:");
	if (!l || sscanf(l + 6, "%d", &st->ppid) != 1)
		return -EIO;
	l = strstr(buf, "\nUid:");
	if (!l || sscanf(l + 5, "%lu %lu", &ruid, &euid) != 2)
		return -EIO;
	st->euid = (uid_t)euid;
	return 0;
}

struct proc_stat {
	pid_t ppid;
	unsigned long flags;
	unsigned long long starttime;
	int exit_code;
	bool have_exit_code;
};

static int read_stat(pid_t tid, struct proc_stat *st)
{
	char buf[1024];
	char *c, *save = NULL;
	int n = proc_read(tid, "stat", buf, sizeof(buf));

	if (n < 0)
		return n;
	/* The name in parentheses may hold anything, spaces and ')' too. */
	c = strrchr(buf, ')');
	if (!c)
		return -EIO;
	memset(st, 0, sizeof(*st));
	/* Fields counted from 1 as in proc(5); field 3 follows the ')'. */
	int field = 3;
	for (char *tok = strtok_r(c + 1, " \n", &save); tok;
	     tok = strtok_r(NULL, " \n", &save), field++) {
		if (field == 4)
			st->ppid = (pid_t)strtol(tok, NULL, 10);
		else if (field == 9)
			st->flags = strtoul(tok, NULL, 10);
		else if (field == 22)
			st->starttime = strtoull(tok, NULL, 10);
		else if (field == 52) {
			st->exit_code = (int)strtol(tok, NULL, 10);
			st->have_exit_code = true;
		}
	}
	return field > 22 ? 0 : -EIO;
}

static void read_comm(pid_t tid, char comm[16])
{
	char buf[64];
	int n = proc_read(tid, "comm", buf, sizeof(buf));

	if (n < 0) {
		strcpy(comm, "?");
		return;
	}
	buf[strcspn(buf, "\n")] = '\0';
	buf[15] = '\0';  /* the kernel's limit too */
	memcpy(comm, buf, strlen(buf) + 1);
}

/* ---- identities and exits ---------------------------------------------- */

/* pid_max is at most 2^22 (PID_MAX_LIMIT on 64-bit), so the pid fits below
 * the start time. A process cannot start after its child, and a pid can only
 * come back after its process is gone, so a key names one process. */
#define PROC_KEY_PID_BITS 22

uint64_t owner_proc_key(pid_t pid, unsigned long long starttime)
{
	if (pid <= 0)
		return 0;
	return ((uint64_t)(starttime + 1) << PROC_KEY_PID_BITS) |
	       ((uint64_t)pid & ((1u << PROC_KEY_PID_BITS) - 1));
}

static pid_t proc_key_pid(uint64_t key)
{
	return (pid_t)(key & ((1u << PROC_KEY_PID_BITS) - 1));
}

/* The keys of process pid and its ancestors, one /proc/PID/stat read each.
 * A link whose parent started after its child is a recycled pid: the chain
 * stops there. So does pid 1 and the daemon (never anyone's heir). */
static void read_family(pid_t pid, uint64_t family[OWNER_FAMILY_MAX])
{
	unsigned long long prev = ~0ull;
	struct proc_stat st;

	memset(family, 0, OWNER_FAMILY_MAX * sizeof(family[0]));
	for (unsigned i = 0; i < OWNER_FAMILY_MAX; i++) {
		if (pid <= 0 || (i > 0 && (pid == 1 || pid == getpid())))
			break;
		if (read_stat(pid, &st) != 0 || st.starttime > prev)
			break;
		family[i] = owner_proc_key(pid, st.starttime);
		prev = st.starttime;
		pid = st.ppid;
	}
}

static bool pidfd_exited(int pidfd)
{
	struct pollfd p = { .fd = pidfd, .events = POLLIN };

	return poll(&p, 1, 0) > 0;
}

/* Start time + 1, so that 0 can mean "none", in *ident; 0 or -errno.
 * Only -ESRCH says the task is gone: running out of descriptors for the
 * /proc read must not pass for an exit (see "Failing closed"). */
static int start_ident(pid_t tid, uint64_t *ident)
{
	struct proc_stat st;
	int rc = read_stat(tid, &st);

	*ident = rc == 0 ? st.starttime + 1 : 0;
	return rc;
}

static uint64_t fd_ino(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 ? (uint64_t)st.st_ino : 0;
}

/* The identity of process `pid` as it is now in *ident; 0, or -ESRCH when
 * it is gone (*ident = 0), or another -errno when it cannot be had. */
static int process_ident(const struct owners *o, pid_t pid, uint64_t *ident)
{
	int fd;

	*ident = 0;
	if (!o->ino_ident)
		return start_ident(pid, ident);
	fd = sys_pidfd_open(pid, 0);
	if (fd < 0)
		return errno == EINVAL || errno == ESRCH ? -ESRCH : -errno;
	*ident = fd_ino(fd);
	close(fd);
	return *ident ? 0 : -EIO;
}

/* Linux >= 6.15 publishes a task's wait status on its pidfd once the task is
 * reaped: at once for a thread, only after the parent's wait() for a
 * process (checked on 6.18: a zombie reports no PIDFD_INFO_EXIT). */
static bool pidfd_exit_code(int pidfd, int *code)
{
	struct lockfs_pidfd_info info;

	memset(&info, 0, sizeof(info));
	info.mask = LOCKFS_PIDFD_INFO_EXIT;
	if (ioctl(pidfd, LOCKFS_PIDFD_GET_INFO, &info) < 0)
		return false;
	if (!(info.mask & LOCKFS_PIDFD_INFO_EXIT))
		return false;
	*code = info.exit_code;
	return true;
}

/* Whether the pidfd's task still exists (running or zombie). Signal 0 is a
 * pure existence check; EPERM means it exists but is not ours to signal. */
static bool pidfd_task_exists(int pidfd)
{
	return sys_pidfd_send_signal(pidfd, 0) == 0 || errno == EPERM;
}

/* Whether an exited owner was killed by a signal. When nothing can be
 * learned the exit counts as normal. */
static bool owner_killed(const struct owner *w)
{
	pid_t who = w->thread_pidfd ? w->info.tid : w->info.pid;
	struct proc_stat st;
	int code;

	if (pidfd_exit_code(w->pidfd, &code))
		return WIFSIGNALED(code);
	/* A zombie not yet reaped (or a kernel before 6.15): /proc still
	 * shows it. The pidfd's task must still exist after the read, or
	 * the pid may already name someone else. */
	if (read_stat(who, &st) == 0 && pidfd_task_exists(w->pidfd)) {
		if (st.have_exit_code && WIFSIGNALED(st.exit_code))
			return true;
		return (st.flags & LOCKFS_PF_SIGNALED) != 0;
	}
	/* Reaped in between: the kernel may have published it by now. */
	if (pidfd_exit_code(w->pidfd, &code))
		return WIFSIGNALED(code);
	return false;
}

/* ---- tables (owners_lock held) ------------------------------------------ */

static uint64_t tid_hash(const struct hlink *l)
{
	return hash_mix64((uint64_t)list_entry(l, struct owner, tid_hl)->info.tid);
}

static uint64_t id_hash(const struct hlink *l)
{
	return hash_mix64(list_entry(l, struct owner, id_hl)->info.id);
}

static struct owner *tid_find(const struct owners *o, pid_t tid)
{
	for (struct hlink *l = ht_first(&o->by_tid, hash_mix64((uint64_t)tid)); l; l = l->next) {
		struct owner *w = list_entry(l, struct owner, tid_hl);

		if (w->info.tid == tid)
			return w;
	}
	return NULL;
}

static struct owner *id_find(const struct owners *o, uint64_t id)
{
	for (struct hlink *l = ht_first(&o->by_id, hash_mix64(id)); l; l = l->next) {
		struct owner *w = list_entry(l, struct owner, id_hl);

		if (w->info.id == id)
			return w;
	}
	return NULL;
}

static void tid_unlink(struct owners *o, struct owner *w)
{
	if (!w->in_tid_table)
		return;
	ht_remove(&o->by_tid, &w->tid_hl, tid_hash(&w->tid_hl));
	w->in_tid_table = false;
}

static void id_unlink(struct owners *o, struct owner *w)
{
	ht_remove(&o->by_id, &w->id_hl, id_hash(&w->id_hl));
}

static void epoll_remove(struct owners *o, struct owner *w)
{
	if (w->in_epoll) {
		epoll_ctl(o->epfd, EPOLL_CTL_DEL, w->pidfd, NULL);
		w->in_epoll = false;
	}
}

enum liveness { OWNER_ALIVE, OWNER_EXITED, OWNER_VANISHED };

static enum liveness check_alive(const struct owners *o, const struct owner *w);
static void forget_tid(struct owners *o, struct owner *w, enum liveness how);

/* Reaps thread owners whose thread vanished without an event (process
 * pidfds only; see "What bounds the pidfds"). One /proc read per thread
 * owner, once per doubling of the count. */
struct sweep {
	struct owners *o;
	unsigned found;
};

static void sweep_one(struct hlink *l, void *arg)
{
	struct sweep *sw = arg;
	struct owner *w = list_entry(l, struct owner, tid_hl);
	enum liveness how;

	if (w->thread_pidfd || w->info.tid == w->info.pid)
		return;
	how = check_alive(sw->o, w);
	if (how != OWNER_ALIVE) {
		forget_tid(sw->o, w, how);
		sw->found++;
	}
}

static void sweep_vanished(struct owners *o)
{
	struct sweep sw = { .o = o };
	size_t count = ht_count(&o->by_id);

	if (count < o->sweep_at)
		return;
	ht_each(&o->by_tid, sweep_one, &sw);
	o->sweep_at = 2 * (count - sw.found > 32 ? count - sw.found : 32);
	if (sw.found)
		log_debug("owners: %u exited threads found by a sweep", sw.found);
}

static int insert(struct owners *o, struct owner *w)
{
	struct epoll_event ev = { .events = EPOLLIN };

	w->info.id = o->next_id;
	ev.data.u64 = w->info.id;
	if (epoll_ctl(o->epfd, EPOLL_CTL_ADD, w->pidfd, &ev) < 0)
		return -errno;
	o->next_id++;
	w->in_epoll = true;
	if (!o->thread_pidfds)
		sweep_vanished(o);
	ht_insert(&o->by_id, &w->id_hl, id_hash(&w->id_hl));
	ht_insert(&o->by_tid, &w->tid_hl, tid_hash(&w->tid_hl));
	w->in_tid_table = true;
	return 0;
}

static enum liveness check_alive(const struct owners *o, const struct owner *w)
{
	uint64_t start;
	int rc;

	if (pidfd_exited(w->pidfd))
		return OWNER_EXITED;
	/* A process pidfd says nothing about one of its other threads: only
	 * the start time can (one small /proc read under owners_lock, and
	 * only on kernels before 6.9). A read that fails for another reason
	 * than the thread's absence proves nothing: the owner keeps its
	 * locks. */
	if (!w->thread_pidfd && w->info.tid != w->info.pid) {
		rc = start_ident(w->info.tid, &start);
		if (rc == -ESRCH || (rc == 0 && start != w->ident))
			return OWNER_VANISHED;
	}
	return OWNER_ALIVE;
}

/* The owner is dead but stays known (owner_info) until reaped. */
static void forget_tid(struct owners *o, struct owner *w, enum liveness how)
{
	static const uint64_t one = 1;

	tid_unlink(o, w);
	if (how == OWNER_VANISHED) {
		/* Its pidfd will not fire until the whole process exits. */
		epoll_remove(o, w);
		w->dead_next = o->dead;
		o->dead = w;
		if (write(o->evfd, &one, sizeof(one)) < 0)
			log_debug("owners: eventfd write: %s", strerror(errno));
	}
}

/* ---- creating owners ----------------------------------------------------- */

static void owner_destroy(struct owner *w)
{
	if (!w)
		return;
	if (w->pidfd >= 0)
		close(w->pidfd);
	free(w);
}

/* Builds an owner for `tid` outside the lock. Everything read from /proc is
 * read after the pidfd was opened, and the pidfd is checked once more at the
 * end: if the thread is still alive then, the tid named it all along. */
static int owner_build(const struct owners *o, pid_t tid, struct owner **out)
{
	struct owner *w = calloc(1, sizeof(*w));
	struct proc_status st, st2;
	uint64_t start = 0, again = 0;
	pid_t heir_pid;
	int rc;

	*out = NULL;
	if (!w)
		return -ENOMEM;
	w->pidfd = -1;
	w->info.tid = tid;
	if (o->thread_pidfds) {
		w->pidfd = sys_pidfd_open(tid, PIDFD_THREAD);
		if (w->pidfd < 0) {
			rc = errno == EINVAL ? -ESRCH : -errno;
			goto fail;
		}
		w->thread_pidfd = true;
		rc = read_status(tid, &st);
		if (rc)
			goto fail;
	} else {
		/* The pidfd can only name the process: learn which first,
		 * and pin the thread's identity by its start time. */
		rc = start_ident(tid, &start);
		if (!rc)
			rc = read_status(tid, &st);
		if (rc)
			goto fail;
		w->pidfd = sys_pidfd_open(st.tgid, 0);
		if (w->pidfd < 0) {
			rc = errno == EINVAL ? -ESRCH : -errno;
			goto fail;
		}
	}
	if (!o->ino_ident && !start) {
		rc = start_ident(tid, &start);
		if (rc)
			goto fail;
	}
	w->info.pid = st.tgid;
	w->info.ppid = st.ppid;
	w->info.uid = st.euid;
	read_comm(tid, w->info.comm);
	read_family(st.tgid, w->info.family);
	w->ident = o->ino_ident ? fd_ino(w->pidfd) : start;

	/* Record the heir's identity. A thread's main thread keeps its pid
	 * while this thread lives; a parent is confirmed by reading PPid
	 * again after taking its identity. */
	heir_pid = tid != st.tgid ? st.tgid : st.ppid;
	if (heir_pid > 1 && st.tgid != getpid() && heir_pid != getpid()) {
		/* A parent already gone has no identity and leaves no heir;
		 * one that cannot be checked fails the lookup, or a lease
		 * would silently stop passing up. */
		rc = process_ident(o, heir_pid, &w->heir_ident);
		if (rc && rc != -ESRCH)
			goto fail;
		if (tid == st.tgid) {
			rc = read_status(tid, &st2);
			if (rc)
				goto fail;
			if (st2.ppid != st.ppid) {
				/* Reparented while we looked: the parent is gone. */
				w->info.ppid = st2.ppid;
				w->heir_ident = 0;
			}
		}
	}

	if (!o->thread_pidfds) {
		rc = start_ident(tid, &again);
		if (rc)
			goto fail;
	}
	if (pidfd_exited(w->pidfd) || (!o->thread_pidfds && again != start)) {
		rc = -ESRCH;
		goto fail;
	}
	*out = w;
	return 0;
fail:
	owner_destroy(w);
	return rc;
}

/* The live owner for `tid`, created if needed. With want_ident != 0 only an
 * owner of that identity will do (-ESRCH otherwise), and none is created for
 * a task that merely reuses the number. */
static int owner_get(struct owners *o, pid_t tid, uint64_t want_ident, uint64_t *id)
{
	struct owner *fresh = NULL;
	int rc;

	if (tid <= 0)
		return -ESRCH;
	for (;;) {
		pthread_mutex_lock(&o->owners_lock);
		struct owner *w = tid_find(o, tid);

		if (w) {
			enum liveness l = check_alive(o, w);

			if (l != OWNER_ALIVE) {
				forget_tid(o, w, l);
				w = NULL;
			}
		}
		if (w) {
			/* Someone else created it meanwhile, or it was cached. */
			rc = want_ident && w->ident != want_ident ? -ESRCH : 0;
			if (!rc)
				*id = w->info.id;
			pthread_mutex_unlock(&o->owners_lock);
			owner_destroy(fresh);
			return rc;
		}
		if (fresh) {
			rc = insert(o, fresh);
			if (!rc) {
				*id = fresh->info.id;
				log_debug("owner %llu: tid %d pid %d ppid %d (%s)",
					  (unsigned long long)fresh->info.id,
					  (int)tid, (int)fresh->info.pid,
					  (int)fresh->info.ppid, fresh->info.comm);
			}
			pthread_mutex_unlock(&o->owners_lock);
			if (rc)
				owner_destroy(fresh);
			return rc;
		}
		pthread_mutex_unlock(&o->owners_lock);

		/* System calls and /proc reads stay outside the lock. */
		rc = owner_build(o, tid, &fresh);
		if (rc)
			return rc;
		if (want_ident && fresh->ident != want_ident) {
			owner_destroy(fresh);
			return -ESRCH;
		}
	}
}

int owner_lookup(struct owners *o, pid_t tid, uint64_t *id)
{
	return owner_get(o, tid, 0, id);
}

int owner_of_caller(struct owners *o, pid_t tid, uint64_t *id)
{
	int rc;

	if (tid <= 0) {
		log_limited(LOG_LVL_WARN,
			    "refusing a request with ENOLCK: its caller has no pid in the "
			    "daemon's pid namespace, so it cannot own a lock");
		return -ENOLCK;
	}
	rc = owner_get(o, tid, 0, id);
	if (rc == 0 || rc == -ESRCH)
		return rc;
	log_limited(LOG_LVL_WARN,
		    "refusing a request of thread %d with ENOLCK: cannot track it as a "
		    "lock owner: %s%s", (int)tid, strerror(-rc),
		    rc == -EMFILE || rc == -ENFILE ? " (raise the daemon's open file limit)" : "");
	return -ENOLCK;
}

/* ---- reaping ------------------------------------------------------------- */

/* The live owner for the main thread of the process with key `key`, 0 when
 * that process is gone (its pid may name another process by now). */
static uint64_t owner_of_proc(struct owners *o, uint64_t key)
{
	pid_t pid = proc_key_pid(key);
	struct owner_info info;
	uint64_t id;

	if (pid <= 1 || pid == getpid() || owner_get(o, pid, 0, &id) != 0)
		return 0;
	if (owner_info(o, id, &info) != 0 || info.family[0] != key)
		return 0;
	return id;
}

/* The heir of an exited owner (see owner.h), and its process key. */
static uint64_t find_heir(struct owners *o, const struct owner *w, uint64_t *heir_proc)
{
	bool thread = w->info.tid != w->info.pid;
	pid_t heir_pid = thread ? w->info.pid : w->info.ppid;
	uint64_t heir;

	*heir_proc = 0;
	if (w->heir_ident && heir_pid > 1 && heir_pid != getpid() &&
	    owner_get(o, heir_pid, w->heir_ident, &heir) == 0) {
		*heir_proc = w->info.family[thread ? 0 : 1];
		return heir;
	}
	/* Gone already: the nearest ancestor still alive inherits. */
	for (unsigned i = thread ? 1 : 2; i < OWNER_FAMILY_MAX && w->info.family[i]; i++) {
		heir = owner_of_proc(o, w->info.family[i]);
		if (heir) {
			*heir_proc = w->info.family[i];
			return heir;
		}
	}
	return 0;
}

static void detach(struct owners *o, struct owner *w, struct owner **batch)
{
	tid_unlink(o, w);
	epoll_remove(o, w);
	id_unlink(o, w);
	w->dead_next = *batch;
	*batch = w;
}

int owners_reap(struct owners *o, owner_exit_fn on_exit, void *arg)
{
	int reported = 0;
	int n;

	do {
		struct epoll_event ev[REAP_BATCH];
		struct owner *batch = NULL;

		pthread_mutex_lock(&o->owners_lock);
		n = epoll_wait(o->epfd, ev, REAP_BATCH, 0);
		for (int i = 0; i < n; i++) {
			if (ev[i].data.u64 == EVFD_KEY) {
				uint64_t v;

				if (read(o->evfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
					log_debug("owners: eventfd read: %s", strerror(errno));
				while (o->dead) {
					struct owner *w = o->dead;

					o->dead = w->dead_next;
					detach(o, w, &batch);
				}
				continue;
			}
			struct owner *w = id_find(o, ev[i].data.u64);

			if (w)
				detach(o, w, &batch);
		}
		pthread_mutex_unlock(&o->owners_lock);

		/* Heirs and callbacks without the lock: find_heir takes it
		 * itself, and on_exit may call back into this module. */
		while (batch) {
			struct owner *w = batch;
			bool killed = owner_killed(w);
			uint64_t heir_proc = 0;
			uint64_t heir = killed ? 0 : find_heir(o, w, &heir_proc);

			batch = w->dead_next;
			log_debug("owner %llu exited%s, heir %llu",
				  (unsigned long long)w->info.id,
				  killed ? " (signal)" : "", (unsigned long long)heir);
			if (on_exit)
				on_exit(arg, w->info.id, heir, heir_proc);
			owner_destroy(w);
			reported++;
		}
	} while (n == REAP_BATCH);
	return reported;
}

/* ---- the rest of the interface ------------------------------------------ */

static void raise_nofile_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		log_warn("cannot raise the open file limit: %s", strerror(errno));
}

int owners_new(struct owners **out)
{
	struct owners *o;
	struct statfs sfs;
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = EVFD_KEY };
	int fd, rc;

	*out = NULL;
	o = calloc(1, sizeof(*o));
	if (!o)
		return -ENOMEM;
	o->next_id = 1;
	o->sweep_at = 64;
	o->epfd = o->evfd = -1;
	if (ht_init(&o->by_tid, 64, tid_hash) < 0 || ht_init(&o->by_id, 64, id_hash) < 0) {
		rc = -ENOMEM;
		goto fail;
	}

	fd = sys_pidfd_open(gettid(), PIDFD_THREAD);
	if (fd >= 0) {
		o->thread_pidfds = true;
		o->ino_ident = fstatfs(fd, &sfs) == 0 && sfs.f_type == LOCKFS_PIDFS_MAGIC;
		close(fd);
	} else if (errno == EINVAL) {
		/* Before Linux 6.9: see "Exit detection" above. */
		fd = sys_pidfd_open(getpid(), 0);
		if (fd < 0) {
			rc = -errno;
			goto fail;
		}
		close(fd);
	} else {
		rc = -errno;
		goto fail;
	}
	log_debug("owners: %s pidfds, identities by %s",
		  o->thread_pidfds ? "thread" : "process",
		  o->ino_ident ? "pidfs inode" : "start time");

	/* A thousand waiting processes need a thousand pidfds. */
	raise_nofile_limit();

	o->epfd = epoll_create1(EPOLL_CLOEXEC);
	o->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (o->epfd < 0 || o->evfd < 0 ||
	    epoll_ctl(o->epfd, EPOLL_CTL_ADD, o->evfd, &ev) < 0) {
		rc = -errno;
		goto fail;
	}
	rc = pthread_mutex_init(&o->owners_lock, NULL);
	if (rc) {
		rc = -rc;
		goto fail;
	}
	*out = o;
	return 0;
fail:
	if (o->epfd >= 0)
		close(o->epfd);
	if (o->evfd >= 0)
		close(o->evfd);
	ht_free(&o->by_tid);
	ht_free(&o->by_id);
	free(o);
	return rc;
}

static void destroy_one(struct hlink *l, void *arg)
{
	(void)arg;
	owner_destroy(list_entry(l, struct owner, id_hl));
}

void owners_free(struct owners *o)
{
	if (!o)
		return;
	ht_each(&o->by_id, destroy_one, NULL);
	ht_free(&o->by_tid);
	ht_free(&o->by_id);
	close(o->epfd);
	close(o->evfd);
	pthread_mutex_destroy(&o->owners_lock);
	free(o);
}

void owners_use_process_pidfds(struct owners *o)
{
	o->thread_pidfds = false;
	o->ino_ident = false;
}

int owner_info(struct owners *o, uint64_t id, struct owner_info *out)
{
	struct owner *w;
	int rc = -ENOENT;

	pthread_mutex_lock(&o->owners_lock);
	w = id_find(o, id);
	if (w) {
		*out = w->info;
		rc = 0;
	}
	pthread_mutex_unlock(&o->owners_lock);
	return rc;
}

int owners_fd(struct owners *o)
{
	return o->epfd;
}

unsigned owners_count(struct owners *o)
{
	unsigned n;

	pthread_mutex_lock(&o->owners_lock);
	n = (unsigned)ht_count(&o->by_id);
	pthread_mutex_unlock(&o->owners_lock);
	return n;
}
