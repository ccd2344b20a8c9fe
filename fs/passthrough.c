/* The passthrough (see passthrough.h).
 *
 * Every request is carried out on the source directory through the O_PATH
 * descriptors of the inode table (inode.h), so nothing is resolved by path
 * from the daemon's root and the mount may sit on top of its own source.
 * Files are reopened through /proc/self/fd/N, which reaches the inode itself
 * whatever its names have become.
 *
 * Each operation is a function returning 0 or -errno; the FUSE callback
 * replies once, at its end. Operations that may wait for a mandatory lock
 * (open, create, unlink, rename, setattr) park a record in fs/locking.c and
 * finish in its resume callback, which may run on any thread: such records
 * carry everything the operation needs, including the caller's credentials.
 *
 * Credentials: when the daemon runs as root, a request from another user is
 * carried out with that user's fsuid, fsgid and supplementary groups, set on
 * the working thread only (setfsuid/setfsgid are per thread; setgroups is
 * made through the raw system call because glibc's wrapper changes every
 * thread of the process). The source file system then makes every
 * permission decision and gives new files their owner. The thread goes back
 * to the daemon's identity after the operation.
 *
 * The control file (control.h) answers to CONTROL_NAME at the root, under
 * the node id INODE_CONTROL_ID, which the inode table never hands out. It
 * has no entry in the table and no lock: every operation checks for that id
 * (or name) first and hands the control file's requests to control.c, whose
 * handles are then in fi->fh instead of a struct handle.
 *
 * Locks between threads: the inode table has its own mutex; open handles
 * are listed under pt->handles_mu (only so that destroy can close them);
 * each handle's state flags are atomics; a directory handle's stream is
 * under its own mutex; the control has its own. */
#include "passthrough.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "config.h"
#include "control.h"
#include "inode.h"
#include "locking.h"
#include "log.h"
#include "owner.h"
#include "openclass.h"
#include "policy.h"
#include "procscan.h"

/* Interrupts a thread blocked in F_OFD_SETLKW or flock(). */
#define BLOCKING_LOCK_SIGNAL SIGUSR2

#define INLINE_GROUPS 32

#define container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

struct handle;

struct passthrough {
	const struct lockfs_config *cfg;    /* read-only */
	struct locking *locking;
	struct fuse_session *se;            /* set before the session loop */
	struct inode_table *inodes;         /* its own mutex */
	/* /proc/self/fd, opened at init: main.c daemonizes (forks) after
	 * passthrough_new(), and "self" must be the daemon itself. */
	int proc_fd;
	bool dont_mask;                     /* set at init, read-only after */
	/* The mount's device, set before the session loop, read-only after;
	 * 0 when unknown (a MOUNTPOINT given as /dev/fd/N): descriptors are
	 * then matched by inode number alone, which errs on holding. */
	dev_t mnt_dev;

	/* The daemon's identity, to go back to after acting as a caller.
	 * Read-only after passthrough_new(). */
	bool switch_creds;
	bool multi_user;                    /* switch_creds under allow_other */
	uid_t uid;
	gid_t gid;
	int ngroups;
	gid_t *groups;

	pthread_mutex_t handles_mu;         /* protects the handles list */
	struct handle *handles;

	struct control *control;            /* its own locks */
	struct timespec control_time;       /* the control file's times: when
	                                       the mount was set up; read-only */
};

/* ---- credentials -------------------------------------------------------- */

struct creds {
	bool active;            /* false: act as the daemon */
	uid_t uid;
	gid_t gid;
	int ngroups;
	gid_t *groups;          /* inline_groups or malloc'ed */
	gid_t inline_groups[INLINE_GROUPS];
};

/* The identity this thread currently acts with (NULL: the daemon's). Only
 * this thread reads or writes it. Switching is nestable because a resume
 * callback may run inside another request's operation on the same thread. */
static __thread const struct creds *thread_creds;
/* Whether this thread has its own umask (unshare(CLONE_FS)), and its value. */
static __thread bool thread_fs_private;
static __thread mode_t thread_umask;

static void creds_capture(struct passthrough *pt, fuse_req_t req, struct creds *c)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	int n;

	c->active = false;
	c->ngroups = 0;
	c->groups = c->inline_groups;
	if (!pt->switch_creds || (ctx->uid == pt->uid && ctx->gid == pt->gid))
		return;
	c->active = true;
	c->uid = ctx->uid;
	c->gid = ctx->gid;
	n = fuse_req_getgroups(req, INLINE_GROUPS, c->inline_groups);
	if (n > INLINE_GROUPS) {
		gid_t *g = malloc((size_t)n * sizeof(*g));

		if (g) {
			int m = fuse_req_getgroups(req, n, g);

			if (m >= 0 && m <= n) {
				c->groups = g;
				n = m;
			} else {
				free(g);
				n = INLINE_GROUPS;
			}
		} else {
			n = INLINE_GROUPS;
		}
	}
	/* The caller vanished or /proc is unreadable: its primary group
	 * still applies, supplementary groups are left out. */
	c->ngroups = n < 0 ? 0 : n;
}

static void creds_release(struct creds *c)
{
	if (c->groups != c->inline_groups)
		free(c->groups);
	c->groups = c->inline_groups;
}

static void creds_apply(struct passthrough *pt, const struct creds *c)
{
	if (c) {
		/* Groups first: setfsuid to a non-root user drops the
		 * privileges the other calls need. */
		if (syscall(SYS_setgroups, (size_t)c->ngroups, c->groups) < 0)
			log_warn("setgroups: %s", strerror(errno));
		setfsgid(c->gid);
		setfsuid(c->uid);
	} else {
		setfsuid(pt->uid);
		setfsgid(pt->gid);
		if (syscall(SYS_setgroups, (size_t)pt->ngroups, pt->groups) < 0)
			log_warn("setgroups: %s", strerror(errno));
	}
}

static const struct creds *creds_enter(struct passthrough *pt, const struct creds *c)
{
	const struct creds *prev = thread_creds;

	if (c && !c->active)
		c = NULL;
	if (c != prev) {
		creds_apply(pt, c);
		thread_creds = c;
	}
	return prev;
}

static void creds_leave(struct passthrough *pt, const struct creds *prev)
{
	if (thread_creds != prev) {
		creds_apply(pt, prev);
		thread_creds = prev;
	}
}

/* The mode to create a node with, after giving this thread the caller's
 * umask. The source file system applies it (or the parent's default ACL
 * instead, which is why the kernel was asked not to mask: FUSE_CAP_DONT_MASK).
 * A thread that cannot have its own umask masks by hand. */
static mode_t create_mode(struct passthrough *pt, fuse_req_t req, mode_t mode)
{
	mode_t want = pt->dont_mask ? fuse_req_ctx(req)->umask & 0777 : 0;

	if (!thread_fs_private) {
		if (unshare(CLONE_FS) == 0) {
			thread_fs_private = true;
			umask(0);
			thread_umask = 0;
		} else {
			return mode & ~want;
		}
	}
	if (thread_umask != want) {
		umask(want);
		thread_umask = want;
	}
	return mode;
}

/* ---- small helpers ------------------------------------------------------ */

static struct passthrough *pt_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* The name of descriptor fd in /proc/self/fd. */
struct fdname {
	char s[16];
};

static struct fdname fdname(int fd)
{
	struct fdname n;

	snprintf(n.s, sizeof(n.s), "%d", fd);
	return n;
}

/* A full path to descriptor fd, for calls that take no directory fd. */
struct fdpath {
	char s[32];
};

static struct fdpath fdpath(int fd)
{
	struct fdpath p;

	snprintf(p.s, sizeof(p.s), "/proc/self/fd/%d", fd);
	return p;
}

static void reply_status(fuse_req_t req, int rc)
{
	fuse_reply_err(req, -rc);
}

static int rc_errno(int r)
{
	return r < 0 ? -errno : 0;
}

/* ---- lock parameters ---------------------------------------------------- */

struct lock_params {
	enum policy_mode mode;
	uint64_t lease_ns;
	uint64_t timeout_ns;    /* 0: wait for ever */
};

/* The rule for `in` (or, with name set, for `name` in directory `in`). The
 * path is built only when a policy file is in use. */
static void lock_params(struct passthrough *pt, struct inode *in, const char *name,
			struct lock_params *lp)
{
	const struct lockfs_config *cfg = pt->cfg;
	uint64_t lease_ms = cfg->lease_ms, timeout_ms = cfg->lock_timeout_ms;

	lp->mode = POLICY_EXCLUSIVE;
	if (cfg->policy) {
		char path[PATH_MAX];
		int rc = name ? inode_child_path(pt->inodes, in, name, path, sizeof(path))
			      : inode_path(pt->inodes, in, path, sizeof(path));

		if (rc == 0) {
			const struct policy_rule *r = policy_match(cfg->policy, path);

			if (r) {
				lp->mode = r->mode;
				if (r->lease_ms >= 0)
					lease_ms = (uint64_t)r->lease_ms;
				if (r->timeout_ms >= 0)
					timeout_ms = (uint64_t)r->timeout_ms;
			}
			log_debug("policy: %s -> %s (rule at line %u)", path,
				  policy_mode_name(lp->mode), r ? r->line : 0);
		} else {
			log_debug("policy: path of inode %" PRIu64 " unknown (%s), defaults apply",
				  in->nodeid, strerror(-rc));
		}
	}
	lp->lease_ns = lease_ms * 1000000ull;
	lp->timeout_ns = timeout_ms * 1000000ull;
}

static uint64_t deadline_for(const struct lock_params *lp)
{
	return lp->timeout_ns ? locking_now() + lp->timeout_ns : 0;
}

/* ---- entries ------------------------------------------------------------ */

/* How long the kernel may cache a name in `dir`. Under allow_other, with
 * the daemon acting as each caller, the kernel checks no directory search
 * permission itself (unless mounted with default_permissions): a cached name
 * is reached by any user without asking the daemon. Names in a directory
 * that not everyone may search are therefore not cached, so that every walk
 * through it looks them up again as the walking user. */
static double entry_timeout_in(struct passthrough *pt, struct inode *dir)
{
	struct stat st;

	if (pt->multi_user && dir && (fstat(dir->fd, &st) < 0 || !(st.st_mode & S_IXOTH)))
		return 0;
	return pt->cfg->entry_timeout;
}

static void entry_init(struct passthrough *pt, struct fuse_entry_param *e, struct inode *dir)
{
	memset(e, 0, sizeof(*e));
	e->attr_timeout = pt->cfg->attr_timeout;
	e->entry_timeout = entry_timeout_in(pt, dir);
}

/* Looks `name` up in `dir` for the kernel: one more lookup on the result,
 * and a reference for the caller (*out). Runs with the caller's
 * credentials: searching a directory is a permission check. */
static int do_lookup(struct passthrough *pt, struct inode *dir, const char *name,
		     struct fuse_entry_param *e, struct inode **out)
{
	struct inode *in;
	struct stat st;
	int fd, rc;

	entry_init(pt, e, dir);
	if (strcmp(name, ".") == 0 || (strcmp(name, "..") == 0 && dir == inode_root(pt->inodes))) {
		/* Only an NFS export asks for these (to decode file handles);
		 * the root's parent is outside the mount. */
		struct inode *self = strcmp(name, ".") == 0 ? dir : inode_root(pt->inodes);

		if (fstat(self->fd, &st) < 0)
			return -errno;
		rc = inode_lookup(pt->inodes, NULL, NULL, &st, -1, &in);
	} else if (strcmp(name, "..") == 0) {
		fd = openat(dir->fd, "..", O_PATH | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		if (fstat(fd, &st) < 0) {
			rc = -errno;
			close(fd);
			return rc;
		}
		rc = inode_lookup(pt->inodes, NULL, NULL, &st, fd, &in);
	} else {
		/* Stat first: a known inode needs no new descriptor. */
		if (fstatat(dir->fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
		rc = inode_lookup(pt->inodes, dir, name, &st, -1, &in);
		if (rc == -ENOENT) {
			fd = openat(dir->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
			if (fd < 0)
				return -errno;
			/* The name may have changed hands since the stat: the
			 * descriptor is the truth. */
			if (fstat(fd, &st) < 0) {
				rc = -errno;
				close(fd);
				return rc;
			}
			rc = inode_lookup(pt->inodes, dir, name, &st, fd, &in);
		}
	}
	if (rc < 0)
		return rc;
	e->ino = in->nodeid;
	e->attr = st;
	*out = in;
	return 0;
}

/* Replies with an entry; if the kernel did not take it (the request was
 * aborted), the lookup it would have counted is undone. */
static void reply_entry(struct passthrough *pt, fuse_req_t req, int rc,
			struct fuse_entry_param *e, struct inode *in)
{
	if (rc < 0) {
		reply_status(req, rc);
	} else if (fuse_reply_entry(req, e) == -ENOENT) {
		inode_unlookup(pt->inodes, in, 1);
	}
	inode_put(pt->inodes, in);
}

/* ---- the control file --------------------------------------------------- */

static bool is_control_name(fuse_ino_t parent, const char *name)
{
	return parent == INODE_ROOT_ID && strcmp(name, CONTROL_NAME) == 0;
}

static struct control_handle *control_handle_of(struct fuse_file_info *fi)
{
	return (struct control_handle *)(uintptr_t)fi->fh;
}

/* Fixed attributes: the file is owned by the mount's owner (who alone may
 * reset the statistics) and is empty to stat; its contents are made at
 * each read, which direct_io sends here whatever the size says. */
static void control_attr(struct passthrough *pt, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = INODE_CONTROL_ID;
	st->st_mode = S_IFREG | 0666;
	st->st_nlink = 1;
	st->st_uid = pt->uid;
	st->st_gid = pt->gid;
	st->st_blksize = 4096;
	st->st_atim = st->st_mtim = st->st_ctim = pt->control_time;
}

static void control_reply_entry(struct passthrough *pt, fuse_req_t req)
{
	struct fuse_entry_param e;

	memset(&e, 0, sizeof(e));
	e.ino = INODE_CONTROL_ID;
	e.attr_timeout = pt->cfg->attr_timeout;
	e.entry_timeout = pt->cfg->entry_timeout;
	control_attr(pt, &e.attr);
	/* Lookups of the control file are not counted: it is never freed. */
	fuse_reply_entry(req, &e);
}

/* Size changes (an O_TRUNC open without atomic truncation, `: > file`)
 * and times are accepted and forgotten, so that shells can write requests;
 * the owner and mode are fixed. */
static void control_setattr(struct passthrough *pt, fuse_req_t req, int valid)
{
	struct stat st;

	if (valid & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		reply_status(req, -EPERM);
		return;
	}
	control_attr(pt, &st);
	fuse_reply_attr(req, &st, pt->cfg->attr_timeout);
}

static void control_open_reply(struct passthrough *pt, fuse_req_t req,
			       struct fuse_file_info *fi)
{
	struct control_handle *h;
	int rc = control_open(pt->control, &h);

	if (rc < 0) {
		reply_status(req, rc);
		return;
	}
	fi->fh = (uintptr_t)h;
	/* Every read must reach control_read(): nothing may be cached. */
	fi->direct_io = 1;
	fi->keep_cache = 0;
	fi->noflush = 1;
	if (fuse_reply_open(req, fi) == -ENOENT)
		control_release(h);
}

static void control_read_reply(struct passthrough *pt, fuse_req_t req, size_t size,
			       off_t off, struct fuse_file_info *fi)
{
	char *buf = malloc(size ? size : 1);
	ssize_t n;

	if (!buf) {
		reply_status(req, -ENOMEM);
		return;
	}
	n = control_read(pt->control, control_handle_of(fi), buf, size, off);
	if (n < 0)
		reply_status(req, (int)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

/* Each write is one request, at whatever offset. Only the first
 * CONTROL_MAX_REQUEST + 1 bytes are copied in: more than that is refused
 * anyway. A request taken is acknowledged in full. */
static void control_write_reply(struct passthrough *pt, fuse_req_t req,
				struct fuse_bufvec *in_buf, struct fuse_file_info *fi)
{
	size_t total = fuse_buf_size(in_buf);
	char buf[CONTROL_MAX_REQUEST + 1];
	struct fuse_bufvec mem = FUSE_BUFVEC_INIT(total < sizeof(buf) ? total : sizeof(buf));
	ssize_t n;
	int rc;

	if (total == 0) {
		fuse_reply_write(req, 0);
		return;
	}
	mem.buf[0].mem = buf;
	n = fuse_buf_copy(&mem, in_buf, 0);
	if (n < 0) {
		reply_status(req, (int)n);
		return;
	}
	rc = control_write(pt->control, control_handle_of(fi), buf, (size_t)n,
			   fuse_req_ctx(req)->uid);
	if (rc < 0)
		reply_status(req, rc);
	else
		fuse_reply_write(req, total);
}

/* The lock table's keys back to paths, for the control's replies. */
static int control_path(void *arg, lt_file_t file, char *buf, size_t len)
{
	struct passthrough *pt = arg;

	return inode_key_path(pt->inodes, file, buf, len);
}

/* ---- lookup, forget, getattr -------------------------------------------- */

/* The inode table frees an entry: its source inode may now be freed and its
 * number reused for a new file, which must not inherit the old file's
 * marks in the lock table (replaced, gone). */
static void forget_key(void *arg, struct inode *in)
{
	struct passthrough *pt = arg;

	if (S_ISREG(in->type))
		locking_forget(pt->locking, in->key);
}

static void pt_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct passthrough *pt = pt_of(req);
	struct inode *dir, *in = NULL;
	struct fuse_entry_param e;
	struct creds c;
	int rc = -ESTALE;

	if (is_control_name(parent, name)) {
		control_reply_entry(pt, req);
		return;
	}
	dir = inode_get(pt->inodes, parent);
	if (dir) {
		const struct creds *prev;

		creds_capture(pt, req, &c);
		prev = creds_enter(pt, &c);
		rc = do_lookup(pt, dir, name, &e, &in);
		creds_leave(pt, prev);
		creds_release(&c);
		inode_put(pt->inodes, dir);
	}
	/* A negative answer is an error reply, which the kernel does not
	 * cache: files created behind the mount's back show up at once. */
	reply_entry(pt, req, rc, &e, in);
}

static void pt_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	if (ino != INODE_CONTROL_ID)
		inode_forget(pt_of(req)->inodes, ino, nlookup);
	fuse_reply_none(req);
}

static void pt_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct passthrough *pt = pt_of(req);

	for (size_t i = 0; i < count; i++)
		if (forgets[i].ino != INODE_CONTROL_ID)
			inode_forget(pt->inodes, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void pt_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct passthrough *pt = pt_of(req);
	struct inode *in;
	struct stat st;
	int rc = -ESTALE;

	(void)fi;
	if (ino == INODE_CONTROL_ID) {
		control_attr(pt, &st);
		fuse_reply_attr(req, &st, pt->cfg->attr_timeout);
		return;
	}
	in = inode_get(pt->inodes, ino);
	if (in) {
		rc = rc_errno(fstat(in->fd, &st));
		inode_put(pt->inodes, in);
	}
	if (rc < 0)
		reply_status(req, rc);
	else
		fuse_reply_attr(req, &st, pt->cfg->attr_timeout);
}

/* ---- handles ------------------------------------------------------------ */

struct handle {
	int fd;
	struct inode *inode;    /* referenced */
	lt_file_t key;
	lt_owner_t owner;       /* the opening thread's lock owner */
	pid_t tid, tgid;        /* the opening thread and its process */
	bool write;             /* the lock was asked with LT_F_WRITE */
	bool rdwr;              /* opened O_RDWR: the only mode that can be
	                           mapped shared and writable */
	bool kill_priv;         /* setuid/setgid at open: writes as the caller */
	/* Atomics: flush, release and writes may run on different threads. */
	bool locked;            /* the handle still holds its mandatory lock */
	bool wrote;             /* something was written through it */
	uint64_t posix_owner;   /* lock_owner of fcntl locks taken through it */
	struct handle *prev, *next; /* pt->handles, under pt->handles_mu */
};

static struct handle *handle_of(struct fuse_file_info *fi)
{
	return (struct handle *)(uintptr_t)fi->fh;
}

static void handle_link(struct passthrough *pt, struct handle *h)
{
	pthread_mutex_lock(&pt->handles_mu);
	h->prev = NULL;
	h->next = pt->handles;
	if (h->next)
		h->next->prev = h;
	pt->handles = h;
	pthread_mutex_unlock(&pt->handles_mu);
}

static void handle_unlink(struct passthrough *pt, struct handle *h)
{
	pthread_mutex_lock(&pt->handles_mu);
	if (h->prev)
		h->prev->next = h->next;
	else
		pt->handles = h->next;
	if (h->next)
		h->next->prev = h->prev;
	pthread_mutex_unlock(&pt->handles_mu);
}

/* Closes a handle: refreshes the cache stamp if it wrote (the kernel's page
 * cache holds what was written, so the next open may keep it), closes the
 * descriptor (dropping its advisory locks), then gives up the mandatory
 * lock, in that order so that the next holder finds both done. */
static void handle_close(struct passthrough *pt, struct handle *h, bool linked)
{
	struct stat st;

	if (linked)
		handle_unlink(pt, h);
	if (__atomic_load_n(&h->wrote, __ATOMIC_ACQUIRE) && fstat(h->fd, &st) == 0)
		inode_stamp_set(pt->inodes, h->inode, &st);
	close(h->fd);
	if (__atomic_exchange_n(&h->locked, false, __ATOMIC_ACQ_REL))
		locking_release(pt->locking, h->key, h->owner, h->write);
	inode_put(pt->inodes, h->inode);
	free(h);
}

/* ---- open and create ---------------------------------------------------- */

/* The flags to reopen the source file with. O_NOFOLLOW would refuse the
 * /proc magic link; creation flags were handled by the kernel or by
 * create; O_DIRECT would impose alignment on the mount's page-cache I/O;
 * O_ASYNC signals are not forwarded. */
static int reopen_flags(int flags)
{
	flags &= ~(O_CREAT | O_EXCL | O_NOCTTY | O_NOFOLLOW | O_DIRECT | O_ASYNC |
		   OPENCLASS_FMODE_EXEC);
	return flags | O_CLOEXEC;
}

struct open_op {
	struct lk_wait w;
	struct passthrough *pt;
	struct inode *inode;        /* referenced */
	struct fuse_file_info fi;   /* copied: the request's copy is gone
	                               when the resume runs elsewhere */
	struct creds creds;
	bool lock;                  /* a lock was asked for */
	bool write;
	pid_t tid, tgid;
	/* create only */
	bool create;
	bool created;               /* the file did not exist before */
	int fd;                     /* the created (or existing) file */
	struct fuse_entry_param e;
};

static void open_op_free(struct open_op *op)
{
	creds_release(&op->creds);
	inode_put(op->pt->inodes, op->inode);
	free(op);
}

static int new_handle(struct open_op *op, int fd, const struct stat *st, struct handle **out)
{
	struct handle *h = calloc(1, sizeof(*h));

	if (!h)
		return -ENOMEM;
	h->fd = fd;
	h->inode = op->inode;
	inode_ref(op->pt->inodes, op->inode);
	h->key = op->inode->key;
	h->owner = op->w.lt.owner;
	h->tid = op->tid;
	h->tgid = op->tgid;
	h->write = op->write;
	h->rdwr = (op->fi.flags & O_ACCMODE) == O_RDWR;
	h->kill_priv = op->creds.active && (st->st_mode & (S_ISUID | S_ISGID));
	h->locked = op->lock;
	*out = h;
	return 0;
}

/* Handles that hold a lock need the FLUSH at close (see pt_flush); the
 * others spare the kernel that round trip. */
static void set_open_flags(struct fuse_file_info *fi, const struct handle *h)
{
	fi->fh = (uintptr_t)h;
	fi->noflush = !h->locked;
}

/* The open, after its lock was granted (or with no lock): opens the
 * source file, with O_TRUNC only now, and replies. */
static void open_finish(struct open_op *op, int status)
{
	struct passthrough *pt = op->pt;
	fuse_req_t req = op->w.req;
	int flags = op->fi.flags, fd = -1, rc = status;
	struct handle *h = NULL;
	struct stat st;

	if (rc < 0)
		goto fail;
	if (rc == LT_PEEK) {
		/* A non-blocking read let in beside readers: no hold to keep
		 * or give back. */
		op->lock = false;
		rc = 0;
	}
	if (S_ISREG(op->inode->type) && (flags & O_TRUNC)) {
		/* Truncating a file that was replaced behind the mount's back
		 * would hit somebody else's data: check before opening. */
		if (fstat(op->inode->fd, &st) < 0) {
			rc = -errno;
			goto fail;
		}
		if (st.st_nlink == 0 && !inode_is_unlinked(pt->inodes, op->inode)) {
			rc = -ESTALE;
			goto fail;
		}
	}
	const struct creds *prev = creds_enter(pt, &op->creds);
	fd = openat(pt->proc_fd, fdname(op->inode->fd).s, reopen_flags(flags));
	rc = fd < 0 ? -errno : 0;
	creds_leave(pt, prev);
	if (rc < 0)
		goto fail;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto fail;
	}
	if (S_ISREG(op->inode->type)) {
		if (flags & O_TRUNC) {
			/* The kernel empties its cache of a file opened with
			 * O_TRUNC by itself. */
			inode_stamp_set(pt->inodes, op->inode, &st);
			op->fi.keep_cache = 0;
		} else if (st.st_nlink == 0 && !inode_is_unlinked(pt->inodes, op->inode)) {
			/* Replaced behind the mount's back while the kernel
			 * still caches the old name: make it look again. */
			rc = -ESTALE;
			goto fail;
		} else if (inode_stamp_update(pt->inodes, op->inode, &st)) {
			op->fi.keep_cache = 1;
		} else {
			/* Changed behind the mount's back: the cached pages go
			 * (keep_cache = 0) and so must the cached size and
			 * times, before the reply lets anyone read. Somebody
			 * writes it: readers no longer share it freely. */
			op->fi.keep_cache = 0;
			locking_written(pt->locking, op->inode->key);
			if (pt->se)
				fuse_lowlevel_notify_inval_inode(pt->se, op->inode->nodeid, -1, 0);
		}
	}
	rc = new_handle(op, fd, &st, &h);
	if (rc < 0)
		goto fail;
	set_open_flags(&op->fi, h);
	handle_link(pt, h);
	if (fuse_reply_open(req, &op->fi) == -ENOENT) {
		/* Nobody will ever release it. */
		handle_close(pt, h, true);
	}
	open_op_free(op);
	return;
fail:
	if (fd >= 0)
		close(fd);
	if (status >= 0 && op->lock)
		locking_release(pt->locking, op->inode->key, op->w.lt.owner, op->write);
	log_debug("open of inode %" PRIu64 " failed: %s", op->inode->nodeid, strerror(-rc));
	reply_status(req, rc);
	open_op_free(op);
}

static void open_resume(struct lk_wait *w, int status)
{
	open_finish(container_of(w, struct open_op, w), status);
}

/* Whether the caller of `op` could modify the file: write it, or replace it
 * by a rename in its directory. A program that can do neither can only
 * read, so its reads never need update intent (and so can never keep a
 * writer out for longer than reader_wait). Asked of the source file system
 * as the caller (ACLs included), and only when the caller is not the
 * daemon's own user: one access check, two with the directory. */
static bool caller_can_modify(struct passthrough *pt, struct open_op *op)
{
	const struct creds *prev;
	struct inode *dir;
	bool can;

	if (!op->creds.active || op->creds.uid == 0)
		return true;
	prev = creds_enter(pt, &op->creds);
	can = faccessat(pt->proc_fd, fdname(op->inode->fd).s, W_OK, AT_EACCESS) == 0;
	if (!can) {
		dir = inode_parent(pt->inodes, op->inode);
		/* Unknown directory: assume it could. */
		can = !dir || faccessat(pt->proc_fd, fdname(dir->fd).s, W_OK | X_OK,
					AT_EACCESS) == 0;
		inode_put(pt->inodes, dir);
	}
	creds_leave(pt, prev);
	return can;
}

/* Fills the lock request of an open or create; false when no lock is to
 * be taken after all (openclass.h decides, and the kernel's own requests
 * carry no caller). */
static bool prepare_lock(struct open_op *op, fuse_req_t req, const struct lock_params *lp,
			 enum open_kind kind, int flags)
{
	struct passthrough *pt = op->pt;
	struct owner_info info;
	struct open_lock ol;
	lt_owner_t owner;
	int rc;

	ol = openclass_lock(kind, flags, lp->mode,
			    !openclass_needs_modify_check(kind, lp->mode) ||
			    caller_can_modify(pt, op), lp->lease_ns);
	if (!ol.lock)
		return false;
	rc = locking_owner(pt->locking, req, &owner);
	if (rc < 0) {
		log_debug("open of inode %" PRIu64 " without a lock: no owner (%s)",
			  op->inode->nodeid, strerror(-rc));
		return false;
	}
	op->tgid = op->tid;
	memset(info.family, 0, sizeof(info.family));
	if (owner_info(locking_owners(pt->locking), owner, &info) == 0)
		op->tgid = info.pid;
	op->lock = true;
	op->write = kind == OPEN_WRITE;
	op->w.req = req;
	op->w.lt.file = op->inode->key;
	op->w.lt.owner = owner;
	memcpy(op->w.lt.family, info.family, sizeof(op->w.lt.family));
	op->w.lt.cls = ol.cls;
	op->w.lt.flags = ol.flags;
	op->w.lt.lease_ns = ol.lease_ns;
	op->w.lt.deadline = deadline_for(lp);
	return true;
}

static void pt_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct passthrough *pt = pt_of(req);
	struct inode *in;
	struct open_op *op;
	enum open_kind kind;
	struct lock_params lp;

	if (ino == INODE_CONTROL_ID) {
		control_open_reply(pt, req, fi);
		return;
	}
	in = inode_get(pt->inodes, ino);
	if (!in) {
		reply_status(req, -ESTALE);
		return;
	}
	op = calloc(1, sizeof(*op));
	if (!op) {
		inode_put(pt->inodes, in);
		reply_status(req, -ENOMEM);
		return;
	}
	op->pt = pt;
	op->inode = in;
	op->fi = *fi;
	op->fd = -1;
	op->tid = fuse_req_ctx(req)->pid;
	op->w.req = req;
	op->w.resume = open_resume;
	creds_capture(pt, req, &op->creds);

	kind = openclass_kind(fi->flags, false, in->type);
	log_debug("open inode %" PRIu64 " flags 0%o by %d: %s", in->nodeid,
		  (unsigned)fi->flags, (int)op->tid,
		  kind == OPEN_NOLOCK ? "no lock" : kind == OPEN_READ ? "read" : "write");
	if (kind != OPEN_NOLOCK) {
		lock_params(pt, in, NULL, &lp);
		if (prepare_lock(op, req, &lp, kind, fi->flags)) {
			locking_acquire(pt->locking, &op->w);
			return;
		}
	}
	open_finish(op, 0);
}

/* Opens `name` in dir, creating it if needed, and tells whether it was
 * created: O_TRUNC on a file that existed must truncate it (and update its
 * times) once the lock is held, and on a new one must not. The kernel sends
 * CREATE only for names it just found missing, so the first try usually
 * succeeds. Returns the descriptor or -errno. */
static int open_or_create(int dir, const char *name, int flags, bool excl,
			  mode_t mode, bool *created)
{
	for (int tries = 0; tries < 8; tries++) {
		int fd = openat(dir, name, flags | O_CREAT | O_EXCL, mode);

		if (fd >= 0 || errno != EEXIST || excl) {
			*created = fd >= 0;
			return fd >= 0 ? fd : -errno;
		}
		fd = openat(dir, name, flags);
		if (fd >= 0 || errno != ENOENT) {
			*created = false;
			return fd >= 0 ? fd : -errno;
		}
		/* Removed in between, or a dangling symlink (which
		 * O_CREAT without O_EXCL creates the target of). */
		fd = openat(dir, name, flags | O_CREAT, mode);
		if (fd >= 0 || errno != ENOENT) {
			*created = false;
			return fd >= 0 ? fd : -errno;
		}
	}
	return -EAGAIN;
}

/* The create, after its lock was granted: the file exists already (it was
 * created or found before locking), only O_TRUNC is left to do. */
static void create_finish(struct open_op *op, int status)
{
	struct passthrough *pt = op->pt;
	fuse_req_t req = op->w.req;
	struct handle *h = NULL;
	bool same;
	int rc = status;

	if (rc < 0)
		goto fail;
	if ((op->fi.flags & O_TRUNC) && !op->created) {
		const struct creds *prev = creds_enter(pt, &op->creds);

		if ((op->fi.flags & O_ACCMODE) != O_RDONLY)
			rc = rc_errno(ftruncate(op->fd, 0));
		else
			rc = rc_errno(truncate(fdpath(op->fd).s, 0));
		creds_leave(pt, prev);
		if (rc < 0)
			goto fail;
	}
	if (fstat(op->fd, &op->e.attr) < 0) {
		rc = -errno;
		goto fail;
	}
	/* The reply carries fresh attributes; only the pages of a file that
	 * existed and changed behind the mount's back need to go. */
	same = inode_stamp_update(pt->inodes, op->inode, &op->e.attr);
	op->fi.keep_cache = same && !(op->fi.flags & O_TRUNC);
	rc = new_handle(op, op->fd, &op->e.attr, &h);
	if (rc < 0)
		goto fail;
	op->fd = -1;
	set_open_flags(&op->fi, h);
	handle_link(pt, h);
	if (fuse_reply_create(req, &op->e, &op->fi) == -ENOENT) {
		handle_close(pt, h, true);
		inode_unlookup(pt->inodes, op->inode, 1);
	}
	open_op_free(op);
	return;
fail:
	if (status == 0 && op->lock)
		locking_release(pt->locking, op->inode->key, op->w.lt.owner, op->write);
	close(op->fd);
	inode_unlookup(pt->inodes, op->inode, 1);
	reply_status(req, rc);
	open_op_free(op);
}

static void create_resume(struct lk_wait *w, int status)
{
	create_finish(container_of(w, struct open_op, w), status);
}

static void pt_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	struct passthrough *pt = pt_of(req);
	struct inode *dir, *in = NULL;
	const struct creds *prev;
	struct open_op *op = NULL;
	struct lock_params lp;
	enum open_kind kind;
	struct stat st;
	int fd = -1, rc, flags;

	if (is_control_name(parent, name)) {
		reply_status(req, -EEXIST);
		return;
	}
	dir = inode_get(pt->inodes, parent);
	if (!dir) {
		reply_status(req, -ESTALE);
		return;
	}
	op = calloc(1, sizeof(*op));
	if (!op) {
		inode_put(pt->inodes, dir);
		reply_status(req, -ENOMEM);
		return;
	}
	op->pt = pt;
	op->fi = *fi;
	op->create = true;
	op->fd = -1;
	op->tid = fuse_req_ctx(req)->pid;
	op->w.req = req;
	op->w.resume = create_resume;
	creds_capture(pt, req, &op->creds);

	/* Created (or found) without O_TRUNC: truncation waits for the lock. */
	flags = reopen_flags(fi->flags) & ~O_TRUNC;
	prev = creds_enter(pt, &op->creds);
	fd = open_or_create(dir->fd, name, flags, fi->flags & O_EXCL,
			    create_mode(pt, req, mode), &op->created);
	rc = fd < 0 ? fd : 0;
	if (rc == 0)
		rc = rc_errno(fstat(fd, &st));
	if (rc == 0) {
		rc = inode_lookup(pt->inodes, dir, name, &st, -1, &in);
		if (rc == -ENOENT) {
			int pfd = openat(pt->proc_fd, fdname(fd).s, O_PATH | O_CLOEXEC);

			rc = pfd < 0 ? -errno : inode_lookup(pt->inodes, dir, name, &st, pfd, &in);
		}
	}
	creds_leave(pt, prev);
	if (rc < 0) {
		if (fd >= 0)
			close(fd);
		inode_put(pt->inodes, dir);
		creds_release(&op->creds);
		free(op);
		reply_status(req, rc);
		return;
	}
	op->inode = in;
	op->fd = fd;
	entry_init(pt, &op->e, dir);
	op->e.ino = in->nodeid;
	op->e.attr = st;

	kind = openclass_kind(fi->flags, true, st.st_mode & S_IFMT);
	log_debug("create %s in inode %" PRIu64 " flags 0%o by %d: %s", name, dir->nodeid,
		  (unsigned)fi->flags, (int)op->tid, kind == OPEN_NOLOCK ? "no lock" : "write");
	if (kind != OPEN_NOLOCK) {
		lock_params(pt, dir, name, &lp);
		if (prepare_lock(op, req, &lp, kind, fi->flags)) {
			inode_put(pt->inodes, dir);
			locking_acquire(pt->locking, &op->w);
			return;
		}
	}
	inode_put(pt->inodes, dir);
	create_finish(op, 0);
}

/* Whether thread `tid` belongs to the process that opened the handle. */
static bool same_process(const struct handle *h, pid_t tid)
{
	char path[64];

	if (tid == h->tid || tid == h->tgid)
		return true;
	snprintf(path, sizeof(path), "/proc/%d/task/%d", (int)h->tgid, (int)tid);
	return access(path, F_OK) == 0;
}

static void unlock_posix(struct handle *h)
{
	struct flock fl = { .l_type = F_UNLCK, .l_whence = SEEK_SET };

	if (fcntl(h->fd, F_OFD_SETLK, &fl) < 0)
		log_debug("fcntl(F_OFD_SETLK, F_UNLCK): %s", strerror(errno));
}

/* Closing processes with more descriptors than this are not searched (see
 * pt_flush): their handles are released at RELEASE. */
#define FD_SCAN_MAX 256

/* FLUSH comes at every close() of a handle that holds a lock (the others
 * are opened with noflush). When the opening process closes its last
 * descriptor of the file, its critical section is over: the lock goes now,
 * before close() returns, so that whatever the program does next (open
 * another file, tell another process to go on) finds it free. Waiting for
 * RELEASE instead would leave the lock held for an unpredictable moment
 * after close(), because the kernel sends RELEASE asynchronously, and only
 * when the last reference goes: a program that mapped a file (the dynamic
 * loader and its libraries) keeps one until it exits. A write handle whose
 * file the process still maps shared and writable keeps its lock until
 * RELEASE, since writes through the mapping go on (mmap() wants O_RDWR for
 * that, so only such handles pay for reading the process's maps). A child
 * that inherited the descriptor closing its copy does not count. Another
 * descriptor counts when it is on this file of this mount's device (bind
 * mounts of the mount included, see procscan.h), whatever path it was
 * opened by.
 *
 * POSIX record locks belong to the process and go at its first close of any
 * descriptor of the file; the kernel passes that process's lock owner here,
 * so the locks it took through this handle are dropped (see pt_setlk). */
static void pt_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct passthrough *pt = pt_of(req);
	struct handle *h = handle_of(fi);
	uint64_t po;

	if (ino == INODE_CONTROL_ID) {
		reply_status(req, 0);
		return;
	}
	if (__atomic_load_n(&h->locked, __ATOMIC_ACQUIRE) &&
	    same_process(h, fuse_req_ctx(req)->pid) &&
	    !procscan_has_fd_on(h->tgid, pt->mnt_dev, h->inode->ino, FD_SCAN_MAX) &&
	    !(h->rdwr && procscan_mapped_writable(h->tgid, pt->mnt_dev, h->inode->ino)) &&
	    __atomic_exchange_n(&h->locked, false, __ATOMIC_ACQ_REL)) {
		log_debug("flush: %s lock on %016" PRIx64 " released by its process",
			  h->write ? "write" : "read", (uint64_t)h->key);
		if (__atomic_load_n(&h->wrote, __ATOMIC_ACQUIRE)) {
			struct stat st;

			if (fstat(h->fd, &st) == 0)
				inode_stamp_set(pt->inodes, h->inode, &st);
		}
		locking_release(pt->locking, h->key, h->owner, h->write);
	}
	po = __atomic_load_n(&h->posix_owner, __ATOMIC_ACQUIRE);
	if (po && po == fi->lock_owner &&
	    __atomic_compare_exchange_n(&h->posix_owner, &po, 0, false,
					__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		unlock_posix(h);
	reply_status(req, 0);
}

static void pt_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (ino == INODE_CONTROL_ID)
		control_release(control_handle_of(fi));
	else
		handle_close(pt_of(req), handle_of(fi), true);
	reply_status(req, 0);
}

/* ---- data --------------------------------------------------------------- */

static void pt_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);

	if (ino == INODE_CONTROL_ID) {
		control_read_reply(pt_of(req), req, size, off, fi);
		return;
	}
	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = handle_of(fi)->fd;
	buf.buf[0].pos = off;
	/* Replies with the data or the read's error. */
	fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

static void mark_wrote(struct handle *h)
{
	if (!__atomic_load_n(&h->wrote, __ATOMIC_RELAXED))
		__atomic_store_n(&h->wrote, true, __ATOMIC_RELEASE);
}

static void pt_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in_buf,
			 off_t off, struct fuse_file_info *fi)
{
	struct passthrough *pt = pt_of(req);
	struct handle *h = handle_of(fi);
	struct fuse_bufvec out = FUSE_BUFVEC_INIT(fuse_buf_size(in_buf));
	const struct creds *prev = NULL;
	struct creds c;
	ssize_t n;

	if (ino == INODE_CONTROL_ID) {
		control_write_reply(pt, req, in_buf, fi);
		return;
	}
	out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	out.buf[0].fd = h->fd;
	out.buf[0].pos = off;
	/* Only a write by an unprivileged caller clears setuid/setgid bits;
	 * for every other file the identity does not matter. */
	if (h->kill_priv) {
		creds_capture(pt, req, &c);
		prev = creds_enter(pt, &c);
	}
	n = fuse_buf_copy(&out, in_buf, 0);
	if (h->kill_priv) {
		creds_leave(pt, prev);
		creds_release(&c);
	}
	if (n >= 0)
		mark_wrote(h);
	if (n < 0)
		reply_status(req, (int)n);
	else
		fuse_reply_write(req, (size_t)n);
}

static void pt_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	int fd;

	/* Nothing of the control file is ever stored. */
	if (ino == INODE_CONTROL_ID) {
		reply_status(req, 0);
		return;
	}
	fd = handle_of(fi)->fd;
	reply_status(req, rc_errno(datasync ? fdatasync(fd) : fsync(fd)));
}

static void pt_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
			 off_t length, struct fuse_file_info *fi)
{
	struct handle *h = handle_of(fi);
	int rc;

	if (ino == INODE_CONTROL_ID) {
		reply_status(req, -EOPNOTSUPP);
		return;
	}
	rc = rc_errno(fallocate(h->fd, mode, offset, length));
	if (rc == 0)
		mark_wrote(h);
	reply_status(req, rc);
}

static void pt_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			       struct fuse_file_info *fi_in, fuse_ino_t ino_out,
			       off_t off_out, struct fuse_file_info *fi_out,
			       size_t len, int flags)
{
	struct handle *hi = handle_of(fi_in), *ho = handle_of(fi_out);
	ssize_t n;

	/* The kernel copies through read and write instead. */
	if (ino_in == INODE_CONTROL_ID || ino_out == INODE_CONTROL_ID) {
		reply_status(req, -EOPNOTSUPP);
		return;
	}
	n = copy_file_range(hi->fd, &off_in, ho->fd, &off_out, len, (unsigned)flags);
	if (n < 0) {
		reply_status(req, -errno);
		return;
	}
	mark_wrote(ho);
	fuse_reply_write(req, (size_t)n);
}

static void pt_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		     struct fuse_file_info *fi)
{
	off_t r;

	/* Only SEEK_DATA and SEEK_HOLE come here: the control file is empty
	 * to stat, so there is no data to find. */
	if (ino == INODE_CONTROL_ID) {
		reply_status(req, -ENXIO);
		return;
	}
	r = lseek(handle_of(fi)->fd, off, whence);
	if (r < 0)
		reply_status(req, -errno);
	else
		fuse_reply_lseek(req, r);
}

/* ---- barriers: unlink, rename, setattr ---------------------------------- */

/* Removing, replacing or changing a regular file "waits like an open for
 * everyone but the lock's holder": the operation first takes a barrier on
 * the file's lock (two, one after the other, for an exchange), runs once
 * granted, and then lets the next waiter in. */

enum barrier_kind { BAR_UNLINK, BAR_RENAME, BAR_SETATTR };

struct barrier_op {
	struct lk_wait w;
	struct passthrough *pt;
	fuse_req_t req;
	enum barrier_kind kind;
	struct creds creds;
	lt_owner_t owner;
	lt_file_t keys[2];
	uint64_t deadlines[2];
	int nkeys, granted;

	/* unlink, rename: directories referenced, names copied */
	struct inode *dir, *newdir;
	char *name, *newname;
	unsigned flags;
	struct stat src_st, dst_st;     /* before the operation */
	bool have_src, have_dst;
	bool dst_barrier;               /* the target's key is among keys */

	/* setattr: inode referenced */
	struct inode *inode;
	struct stat attr;
	int valid;
	struct handle *h;
};

static void barrier_free(struct barrier_op *b)
{
	struct inode_table *t = b->pt->inodes;

	creds_release(&b->creds);
	inode_put(t, b->dir);
	inode_put(t, b->newdir);
	inode_put(t, b->inode);
	free(b->name);
	free(b->newname);
	free(b);
}

static void barrier_add_key(struct barrier_op *b, lt_file_t key, const struct lock_params *lp)
{
	for (int i = 0; i < b->nkeys; i++)
		if (b->keys[i] == key)
			return;
	b->keys[b->nkeys] = key;
	b->deadlines[b->nkeys] = deadline_for(lp);
	b->nkeys++;
	/* A fixed order: two exchanges of the same pair cannot each hold one
	 * file and wait for the other. */
	if (b->nkeys == 2 && b->keys[0] > b->keys[1]) {
		lt_file_t k = b->keys[0];
		uint64_t d = b->deadlines[0];

		b->keys[0] = b->keys[1];
		b->deadlines[0] = b->deadlines[1];
		b->keys[1] = k;
		b->deadlines[1] = d;
	}
}

/* Adds a barrier on a regular file described by st, named `name` in `dir`,
 * unless its policy is none. Returns whether it did. */
static bool barrier_want(struct barrier_op *b, struct inode *dir_or_inode,
			 const char *name, const struct stat *st)
{
	struct lock_params lp;

	if (!S_ISREG(st->st_mode))
		return false;
	lock_params(b->pt, dir_or_inode, name, &lp);
	if (lp.mode == POLICY_NONE)
		return false;
	barrier_add_key(b, inode_lock_key(st->st_dev, st->st_ino), &lp);
	return true;
}

static int setattr_run(struct passthrough *pt, struct inode *in, const struct stat *attr,
		       int valid, struct handle *h, struct stat *out)
{
	int fd = h ? h->fd : -1;

	if (valid & FUSE_SET_ATTR_MODE) {
		if (fd >= 0 ? fchmod(fd, attr->st_mode) < 0
			    : fchmodat(pt->proc_fd, fdname(in->fd).s, attr->st_mode, 0) < 0)
			return -errno;
	}
	if (valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		uid_t uid = (valid & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
		gid_t gid = (valid & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;

		if (fchownat(in->fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
	}
	if (valid & FUSE_SET_ATTR_SIZE) {
		if (fd >= 0 ? ftruncate(fd, attr->st_size) < 0
			    : truncate(fdpath(in->fd).s, attr->st_size) < 0)
			return -errno;
		if (h)
			mark_wrote(h);
	}
	if (valid & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
		struct timespec tv[2] = {
			{ .tv_nsec = UTIME_OMIT }, { .tv_nsec = UTIME_OMIT },
		};

		if (valid & FUSE_SET_ATTR_ATIME_NOW)
			tv[0].tv_nsec = UTIME_NOW;
		else if (valid & FUSE_SET_ATTR_ATIME)
			tv[0] = attr->st_atim;
		if (valid & FUSE_SET_ATTR_MTIME_NOW)
			tv[1].tv_nsec = UTIME_NOW;
		else if (valid & FUSE_SET_ATTR_MTIME)
			tv[1] = attr->st_mtim;
		if (fd >= 0 ? futimens(fd, tv) < 0
			    : utimensat(in->fd, "", tv, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
	}
	return rc_errno(fstat(in->fd, out));
}

static int unlink_run(struct barrier_op *b)
{
	return rc_errno(unlinkat(b->dir->fd, b->name, 0));
}

static int rename_run(struct barrier_op *b)
{
	return rc_errno(renameat2(b->dir->fd, b->name, b->newdir->fd, b->newname, b->flags));
}

/* The file described by st was unlinked, or renamed over by the file `by`
 * (NULL for an unlink), through the mount. Marks its inode (see
 * open_finish's -ESTALE rule) and, when it was under a barrier, tells the
 * lock table: replaced by `by` if that is a regular file, else gone if no
 * name is left. A file the kernel does not know is not reported: nobody
 * can wait for it (a parked open references its inode) and no open can
 * name it later, so a mark on it would only outlive it (the table drops a
 * file's marks when it frees the inode, see forget_key). The entry is
 * referenced until the lock table has heard, for the same reason. */
static void note_removed(struct passthrough *pt, const struct stat *st, bool barrier,
			 const struct stat *by)
{
	struct inode *in = inode_find(pt->inodes, st->st_dev, st->st_ino);
	struct stat now;

	if (!in)
		return;
	inode_mark_unlinked(pt->inodes, in);
	if (barrier) {
		if (by && S_ISREG(by->st_mode))
			locking_replaced(pt->locking, in->key, inode_lock_key(by->st_dev, by->st_ino));
		else if (fstat(in->fd, &now) == 0 && now.st_nlink == 0)
			locking_gone(pt->locking, in->key);
	}
	inode_put(pt->inodes, in);
}

static void rename_names(struct passthrough *pt, struct barrier_op *b)
{
	struct inode *in;

	if (!inode_tracks_names(pt->inodes))
		return;
	if (b->have_src && (in = inode_find(pt->inodes, b->src_st.st_dev, b->src_st.st_ino))) {
		inode_set_name(pt->inodes, in, b->newdir, b->newname);
		inode_put(pt->inodes, in);
	}
	if ((b->flags & RENAME_EXCHANGE) && b->have_dst &&
	    (in = inode_find(pt->inodes, b->dst_st.st_dev, b->dst_st.st_ino))) {
		inode_set_name(pt->inodes, in, b->dir, b->name);
		inode_put(pt->inodes, in);
	}
}

/* Runs the operation once every barrier is held, tells the lock table what
 * happened to the files, lifts the barriers and replies. */
static void barrier_run(struct barrier_op *b)
{
	struct passthrough *pt = b->pt;
	const struct creds *prev;
	struct stat st;
	int rc;

	prev = creds_enter(pt, &b->creds);
	switch (b->kind) {
	case BAR_UNLINK:
		rc = unlink_run(b);
		break;
	case BAR_RENAME:
		rc = rename_run(b);
		break;
	default:
		rc = setattr_run(pt, b->inode, &b->attr, b->valid, b->h, &st);
		break;
	}
	creds_leave(pt, prev);

	if (rc == 0 && b->kind == BAR_UNLINK && b->have_dst && S_ISREG(b->dst_st.st_mode)) {
		/* Before the barrier is lifted: opens parked on a file that
		 * lost its last name must retry by name, not get it. */
		note_removed(pt, &b->dst_st, b->dst_barrier, NULL);
	}
	if (rc == 0 && b->kind == BAR_RENAME) {
		rename_names(pt, b);
		if (!(b->flags & RENAME_EXCHANGE) && b->have_dst &&
		    !(b->have_src && b->src_st.st_dev == b->dst_st.st_dev &&
		      b->src_st.st_ino == b->dst_st.st_ino))
			note_removed(pt, &b->dst_st, b->dst_barrier,
				     b->have_src ? &b->src_st : NULL);
	}
	for (int i = 0; i < b->granted; i++)
		locking_barrier_done(pt->locking, b->keys[i], b->owner);

	if (rc == 0 && b->kind == BAR_SETATTR)
		fuse_reply_attr(b->req, &st, pt->cfg->attr_timeout);
	else
		reply_status(b->req, rc);
	barrier_free(b);
}

static void barrier_resume(struct lk_wait *w, int status);

static void barrier_next(struct barrier_op *b)
{
	if (b->granted == b->nkeys) {
		barrier_run(b);
		return;
	}
	memset(&b->w.lt, 0, sizeof(b->w.lt));
	b->w.req = b->req;
	b->w.resume = barrier_resume;
	b->w.lt.file = b->keys[b->granted];
	b->w.lt.owner = b->owner;
	b->w.lt.cls = LT_EXCL;
	b->w.lt.flags = LT_F_WRITE | LT_F_BARRIER;
	b->w.lt.deadline = b->deadlines[b->granted];
	locking_acquire(b->pt->locking, &b->w);
}

static void barrier_resume(struct lk_wait *w, int status)
{
	struct barrier_op *b = container_of(w, struct barrier_op, w);

	if (status < 0) {
		for (int i = 0; i < b->granted; i++)
			locking_barrier_done(b->pt->locking, b->keys[i], b->owner);
		reply_status(b->req, status);
		barrier_free(b);
		return;
	}
	b->granted++;
	barrier_next(b);
}

/* Starts a barrier operation: without barriers (or without a caller to own
 * them) it runs at once. */
static void barrier_start(struct barrier_op *b)
{
	if (b->nkeys > 0 && locking_owner(b->pt->locking, b->req, &b->owner) < 0)
		b->nkeys = 0;
	barrier_next(b);
}

static struct barrier_op *barrier_new(struct passthrough *pt, fuse_req_t req,
				      enum barrier_kind kind)
{
	struct barrier_op *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	b->pt = pt;
	b->req = req;
	b->kind = kind;
	creds_capture(pt, req, &b->creds);
	return b;
}

/* The stat of `name` in `dir` as the caller sees it; false if it does not
 * exist or cannot be seen (the operation itself then reports why). */
static bool stat_name(struct barrier_op *b, struct inode *dir, const char *name, struct stat *st)
{
	const struct creds *prev = creds_enter(b->pt, &b->creds);
	bool ok = fstatat(dir->fd, name, st, AT_SYMLINK_NOFOLLOW) == 0;

	creds_leave(b->pt, prev);
	return ok;
}

static void pt_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct passthrough *pt = pt_of(req);
	struct barrier_op *b;

	/* Like a mount point: in use by the system, not removable. */
	if (is_control_name(parent, name)) {
		reply_status(req, -EBUSY);
		return;
	}
	b = barrier_new(pt, req, BAR_UNLINK);
	if (!b) {
		reply_status(req, -ENOMEM);
		return;
	}
	b->dir = inode_get(pt->inodes, parent);
	b->name = strdup(name);
	if (!b->dir || !b->name) {
		reply_status(req, b->dir ? -ENOMEM : -ESTALE);
		barrier_free(b);
		return;
	}
	b->have_dst = stat_name(b, b->dir, name, &b->dst_st);
	if (b->have_dst)
		b->dst_barrier = barrier_want(b, b->dir, name, &b->dst_st);
	barrier_start(b);
}

static void pt_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	struct passthrough *pt = pt_of(req);
	struct barrier_op *b;
	bool exchange = flags & RENAME_EXCHANGE;

	if (is_control_name(parent, name) || is_control_name(newparent, newname)) {
		reply_status(req, -EBUSY);
		return;
	}
	b = barrier_new(pt, req, BAR_RENAME);
	if (!b) {
		reply_status(req, -ENOMEM);
		return;
	}
	b->flags = flags;
	b->dir = inode_get(pt->inodes, parent);
	b->newdir = inode_get(pt->inodes, newparent);
	b->name = strdup(name);
	b->newname = strdup(newname);
	if (!b->dir || !b->newdir || !b->name || !b->newname) {
		reply_status(req, (!b->dir || !b->newdir) ? -ESTALE : -ENOMEM);
		barrier_free(b);
		return;
	}
	if (!(flags & RENAME_NOREPLACE))
		b->have_dst = stat_name(b, b->newdir, newname, &b->dst_st);
	/* The moved file matters for names, for an exchange, and to tell the
	 * lock table which file replaced the target. */
	if (exchange || inode_tracks_names(pt->inodes) ||
	    (b->have_dst && S_ISREG(b->dst_st.st_mode)))
		b->have_src = stat_name(b, b->dir, name, &b->src_st);
	if (b->have_dst && !(b->have_src && b->src_st.st_dev == b->dst_st.st_dev &&
			     b->src_st.st_ino == b->dst_st.st_ino))
		b->dst_barrier = barrier_want(b, b->newdir, newname, &b->dst_st);
	if (exchange && b->have_src)
		barrier_want(b, b->dir, name, &b->src_st);
	barrier_start(b);
}

static void pt_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int valid,
		       struct fuse_file_info *fi)
{
	struct passthrough *pt = pt_of(req);
	struct barrier_op *b;
	struct lock_params lp;

	if (ino == INODE_CONTROL_ID) {
		control_setattr(pt, req, valid);
		return;
	}
	b = barrier_new(pt, req, BAR_SETATTR);
	if (!b) {
		reply_status(req, -ENOMEM);
		return;
	}
	b->inode = inode_get(pt->inodes, ino);
	if (!b->inode) {
		reply_status(req, -ESTALE);
		barrier_free(b);
		return;
	}
	b->attr = *attr;
	b->valid = valid;
	b->h = fi ? handle_of(fi) : NULL;
	/* Through a handle that holds the file's write lock the change is part
	 * of the holder's own critical section. */
	if (S_ISREG(b->inode->type) &&
	    (valid & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID |
		      FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) &&
	    !(b->h && b->h->write && __atomic_load_n(&b->h->locked, __ATOMIC_ACQUIRE))) {
		lock_params(pt, b->inode, NULL, &lp);
		if (lp.mode != POLICY_NONE)
			barrier_add_key(b, b->inode->key, &lp);
	}
	barrier_start(b);
}

/* ---- other name operations ---------------------------------------------- */

enum node_kind { NODE_MKNOD, NODE_MKDIR, NODE_SYMLINK };

static int make_node(struct passthrough *pt, fuse_req_t req, struct inode *dir,
		     const char *name, enum node_kind kind, mode_t mode, dev_t rdev,
		     const char *link, struct fuse_entry_param *e, struct inode **out)
{
	int r;

	switch (kind) {
	case NODE_MKDIR:
		r = mkdirat(dir->fd, name, create_mode(pt, req, mode));
		break;
	case NODE_SYMLINK:
		r = symlinkat(link, dir->fd, name);
		break;
	default:
		r = mknodat(dir->fd, name, create_mode(pt, req, mode), rdev);
		break;
	}
	if (r < 0)
		return -errno;
	return do_lookup(pt, dir, name, e, out);
}

static void node_op(fuse_req_t req, fuse_ino_t parent, const char *name,
		    enum node_kind kind, mode_t mode, dev_t rdev, const char *link)
{
	struct passthrough *pt = pt_of(req);
	struct inode *dir, *in = NULL;
	struct fuse_entry_param e;
	struct creds c;
	int rc = -ESTALE;

	if (is_control_name(parent, name)) {
		reply_status(req, -EEXIST);
		return;
	}
	dir = inode_get(pt->inodes, parent);
	if (dir) {
		const struct creds *prev;

		creds_capture(pt, req, &c);
		prev = creds_enter(pt, &c);
		rc = make_node(pt, req, dir, name, kind, mode, rdev, link, &e, &in);
		creds_leave(pt, prev);
		creds_release(&c);
		inode_put(pt->inodes, dir);
	}
	reply_entry(pt, req, rc, &e, in);
}

static void pt_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, dev_t rdev)
{
	node_op(req, parent, name, NODE_MKNOD, mode, rdev, NULL);
}

static void pt_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	node_op(req, parent, name, NODE_MKDIR, mode, 0, NULL);
}

static void pt_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		       const char *name)
{
	node_op(req, parent, name, NODE_SYMLINK, 0, 0, link);
}

static int do_link(struct passthrough *pt, struct inode *in, struct inode *dir,
		   const char *name, struct fuse_entry_param *e, struct inode **out)
{
	struct stat st;
	int rc;

	/* Through /proc: linkat(AT_EMPTY_PATH) would need CAP_DAC_READ_SEARCH,
	 * which the caller's identity does not carry. */
	if (linkat(pt->proc_fd, fdname(in->fd).s, dir->fd, name, AT_SYMLINK_FOLLOW) < 0)
		return -errno;
	if (fstat(in->fd, &st) < 0)
		return -errno;
	entry_init(pt, e, dir);
	rc = inode_lookup(pt->inodes, dir, name, &st, -1, out);
	if (rc < 0)
		return rc;
	e->ino = (*out)->nodeid;
	e->attr = st;
	return 0;
}

static void pt_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct passthrough *pt = pt_of(req);
	struct inode *in, *dir, *out = NULL;
	struct fuse_entry_param e;
	struct creds c;
	int rc = -ESTALE;

	/* The control file exists only under its own name. */
	if (ino == INODE_CONTROL_ID || is_control_name(newparent, newname)) {
		reply_status(req, ino == INODE_CONTROL_ID ? -EPERM : -EEXIST);
		return;
	}
	in = inode_get(pt->inodes, ino);
	dir = inode_get(pt->inodes, newparent);
	if (in && dir) {
		const struct creds *prev;

		creds_capture(pt, req, &c);
		prev = creds_enter(pt, &c);
		rc = do_link(pt, in, dir, newname, &e, &out);
		creds_leave(pt, prev);
		creds_release(&c);
	}
	inode_put(pt->inodes, in);
	inode_put(pt->inodes, dir);
	reply_entry(pt, req, rc, &e, out);
}

static void pt_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct passthrough *pt = pt_of(req);
	struct inode *dir;
	struct creds c;
	int rc = -ESTALE;

	if (is_control_name(parent, name)) {
		reply_status(req, -ENOTDIR);
		return;
	}
	dir = inode_get(pt->inodes, parent);
	if (dir) {
		const struct creds *prev;

		creds_capture(pt, req, &c);
		prev = creds_enter(pt, &c);
		rc = rc_errno(unlinkat(dir->fd, name, AT_REMOVEDIR));
		creds_leave(pt, prev);
		creds_release(&c);
		inode_put(pt->inodes, dir);
	}
	reply_status(req, rc);
}

static void pt_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct passthrough *pt = pt_of(req);
	struct inode *in = inode_get(pt->inodes, ino);
	char buf[PATH_MAX + 1];
	ssize_t n = -ESTALE;

	if (in) {
		n = readlinkat(in->fd, "", buf, sizeof(buf));
		if (n < 0)
			n = -errno;
		else if ((size_t)n == sizeof(buf))
			n = -ENAMETOOLONG;
		inode_put(pt->inodes, in);
	}
	if (n < 0) {
		reply_status(req, (int)n);
		return;
	}
	buf[n] = '\0';
	fuse_reply_readlink(req, buf);
}

/* ---- directories -------------------------------------------------------- */

struct dir_handle {
	pthread_mutex_t mu;     /* protects the stream and the fields below */
	DIR *dp;
	off_t offset;           /* where the stream stands */
	struct dirent *entry;   /* read but not yet sent (did not fit) */
};

static struct dir_handle *dir_handle_of(struct fuse_file_info *fi)
{
	return (struct dir_handle *)(uintptr_t)fi->fh;
}

static int do_opendir(struct passthrough *pt, struct inode *in, struct dir_handle **out)
{
	struct dir_handle *d = calloc(1, sizeof(*d));
	int fd, rc;

	if (!d)
		return -ENOMEM;
	fd = openat(pt->proc_fd, fdname(in->fd).s, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		free(d);
		return rc;
	}
	d->dp = fdopendir(fd);
	if (!d->dp) {
		rc = -errno;
		close(fd);
		free(d);
		return rc;
	}
	pthread_mutex_init(&d->mu, NULL);
	*out = d;
	return 0;
}

static void pt_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct passthrough *pt = pt_of(req);
	struct inode *in = inode_get(pt->inodes, ino);
	struct dir_handle *d = NULL;
	struct creds c;
	int rc = -ESTALE;

	if (in) {
		const struct creds *prev;

		creds_capture(pt, req, &c);
		prev = creds_enter(pt, &c);
		rc = do_opendir(pt, in, &d);
		creds_leave(pt, prev);
		creds_release(&c);
		inode_put(pt->inodes, in);
	}
	if (rc < 0) {
		reply_status(req, rc);
		return;
	}
	fi->fh = (uintptr_t)d;
	if (fuse_reply_open(req, fi) == -ENOENT) {
		closedir(d->dp);
		pthread_mutex_destroy(&d->mu);
		free(d);
	}
}

static bool is_dot(const char *n)
{
	return n[0] == '.' && (n[1] == '\0' || (n[1] == '.' && n[2] == '\0'));
}

/* The lookups a readdirplus reply hands to the kernel, to undo them if the
 * reply cannot be delivered. */
struct plus_list {
	struct inode **v;
	size_t n, cap;
};

static int plus_add(struct plus_list *l, struct inode *in)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 32;
		struct inode **v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = in;
	return 0;
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, bool plus)
{
	struct passthrough *pt = pt_of(req);
	struct dir_handle *d = dir_handle_of(fi);
	struct inode *dir = NULL;
	struct plus_list looked = { 0 };
	const struct creds *prev = NULL;
	struct creds c;
	char *buf = malloc(size);
	size_t used = 0;
	int rc = 0;

	if (!buf) {
		reply_status(req, -ENOMEM);
		return;
	}
	if (plus) {
		dir = inode_get(pt->inodes, ino);
		if (!dir) {
			free(buf);
			reply_status(req, -ESTALE);
			return;
		}
		creds_capture(pt, req, &c);
		prev = creds_enter(pt, &c);
	}
	pthread_mutex_lock(&d->mu);
	if (off != d->offset) {
		seekdir(d->dp, off);
		d->entry = NULL;
		d->offset = off;
	}
	for (;;) {
		struct dirent *de;
		size_t need;

		if (!d->entry) {
			errno = 0;
			d->entry = readdir(d->dp);
			if (!d->entry) {
				/* An error after some entries: send those;
				 * the next call reports it. */
				if (errno && used == 0)
					rc = -errno;
				break;
			}
		}
		de = d->entry;
		/* A source file of that name is shadowed by the control file,
		 * which no listing shows (a readdirplus entry would even
		 * replace it in the kernel's cache). */
		if (ino == INODE_ROOT_ID && strcmp(de->d_name, CONTROL_NAME) == 0) {
			d->offset = de->d_off;
			d->entry = NULL;
			continue;
		}
		if (plus) {
			struct fuse_entry_param e;
			struct inode *in = NULL;

			need = fuse_add_direntry_plus(req, NULL, 0, de->d_name, NULL, 0);
			if (need > size - used)
				break;
			/* . and .. (and names that vanished or cannot be
			 * looked up) go without attributes: node id 0 tells
			 * the kernel not to count a lookup. */
			if (is_dot(de->d_name) || do_lookup(pt, dir, de->d_name, &e, &in) < 0) {
				memset(&e, 0, sizeof(e));
				e.attr.st_ino = de->d_ino;
				e.attr.st_mode = (mode_t)DTTOIF(de->d_type);
				in = NULL;
			}
			if (in && plus_add(&looked, in) < 0) {
				inode_unlookup(pt->inodes, in, 1);
				inode_put(pt->inodes, in);
				if (used == 0)
					rc = -ENOMEM;
				break;
			}
			fuse_add_direntry_plus(req, buf + used, size - used, de->d_name, &e,
					       de->d_off);
		} else {
			struct stat st = {
				.st_ino = de->d_ino,
				.st_mode = (mode_t)DTTOIF(de->d_type),
			};

			need = fuse_add_direntry(req, NULL, 0, de->d_name, NULL, 0);
			if (need > size - used)
				break;
			fuse_add_direntry(req, buf + used, size - used, de->d_name, &st, de->d_off);
		}
		used += need;
		d->offset = de->d_off;
		d->entry = NULL;
	}
	pthread_mutex_unlock(&d->mu);
	if (plus) {
		creds_leave(pt, prev);
		creds_release(&c);
	}

	if (rc < 0) {
		reply_status(req, rc);
	} else if (fuse_reply_buf(req, buf, used) == -ENOENT) {
		for (size_t i = 0; i < looked.n; i++)
			inode_unlookup(pt->inodes, looked.v[i], 1);
	}
	for (size_t i = 0; i < looked.n; i++)
		inode_put(pt->inodes, looked.v[i]);
	free(looked.v);
	inode_put(pt->inodes, dir);
	free(buf);
}

static void pt_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, false);
}

static void pt_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, true);
}

static void pt_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dir_handle *d = dir_handle_of(fi);

	(void)ino;
	closedir(d->dp);
	pthread_mutex_destroy(&d->mu);
	free(d);
	reply_status(req, 0);
}

static void pt_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
			struct fuse_file_info *fi)
{
	int fd = dirfd(dir_handle_of(fi)->dp);

	(void)ino;
	reply_status(req, rc_errno(datasync ? fdatasync(fd) : fsync(fd)));
}

/* ---- file system, attributes, permissions ------------------------------- */

static void pt_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct passthrough *pt = pt_of(req);
	/* The control file lives on the mount's file system, the root's. */
	struct inode *in = inode_get(pt->inodes, ino == INODE_CONTROL_ID ? INODE_ROOT_ID : ino);
	struct statvfs sv;
	int rc = -ESTALE;

	if (in) {
		rc = rc_errno(fstatvfs(in->fd, &sv));
		inode_put(pt->inodes, in);
	}
	if (rc < 0)
		reply_status(req, rc);
	else
		fuse_reply_statfs(req, &sv);
}

enum xattr_op { XA_SET, XA_GET, XA_LIST, XA_REMOVE };

/* Extended attributes go through the /proc path of the O_PATH descriptor:
 * the *xattr calls take no O_PATH descriptor. size 0 asks for the size. */
static void xattr_op(fuse_req_t req, fuse_ino_t ino, enum xattr_op op, const char *name,
		     const char *value, size_t size, int flags)
{
	struct passthrough *pt = pt_of(req);
	struct inode *in;
	char *buf = NULL;
	ssize_t n = -ESTALE;
	struct creds c;

	/* The control file has no extended attributes and takes none. Not
	 * ENOSYS: the kernel would stop asking for every file. */
	if (ino == INODE_CONTROL_ID) {
		if (op == XA_LIST && size == 0)
			fuse_reply_xattr(req, 0);
		else if (op == XA_LIST)
			fuse_reply_buf(req, NULL, 0);
		else
			reply_status(req, op == XA_SET ? -ENOTSUP : -ENODATA);
		return;
	}
	in = inode_get(pt->inodes, ino);
	if (in) {
		struct fdpath p = fdpath(in->fd);
		const struct creds *prev;

		if ((op == XA_GET || op == XA_LIST) && size > 0) {
			buf = malloc(size);
			if (!buf) {
				inode_put(pt->inodes, in);
				reply_status(req, -ENOMEM);
				return;
			}
		}
		creds_capture(pt, req, &c);
		prev = creds_enter(pt, &c);
		switch (op) {
		case XA_SET:
			n = setxattr(p.s, name, value, size, flags);
			break;
		case XA_GET:
			n = getxattr(p.s, name, buf, size);
			break;
		case XA_LIST:
			n = listxattr(p.s, buf, size);
			break;
		default:
			n = removexattr(p.s, name);
			break;
		}
		if (n < 0)
			n = -errno;
		creds_leave(pt, prev);
		creds_release(&c);
		inode_put(pt->inodes, in);
	}
	if (n < 0)
		reply_status(req, (int)n);
	else if (op == XA_SET || op == XA_REMOVE)
		reply_status(req, 0);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

static void pt_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			const char *value, size_t size, int flags)
{
	xattr_op(req, ino, XA_SET, name, value, size, flags);
}

static void pt_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	xattr_op(req, ino, XA_GET, name, NULL, size, 0);
}

static void pt_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	xattr_op(req, ino, XA_LIST, NULL, NULL, size, 0);
}

static void pt_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	xattr_op(req, ino, XA_REMOVE, name, NULL, 0, 0);
}

static void pt_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	struct passthrough *pt = pt_of(req);
	struct inode *in;
	struct creds c;
	int rc = -ESTALE;

	if (ino == INODE_CONTROL_ID) {
		reply_status(req, (mask & X_OK) ? -EACCES : 0);
		return;
	}
	in = inode_get(pt->inodes, ino);
	if (in) {
		const struct creds *prev;

		creds_capture(pt, req, &c);
		prev = creds_enter(pt, &c);
		/* AT_EACCESS: check as the fsuid/fsgid just set, not as the
		 * daemon's real uid. */
		rc = rc_errno(faccessat(pt->proc_fd, fdname(in->fd).s, mask, AT_EACCESS));
		creds_leave(pt, prev);
		creds_release(&c);
		inode_put(pt->inodes, in);
	}
	reply_status(req, rc);
}

/* ---- advisory locks ----------------------------------------------------- */

/* flock() and fcntl() locks taken in the mount are forwarded to the source
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
 *     asynchronously (no lost lock was seen in 300 close-then-lock rounds
 *     between two processes);
 *   - F_GETLK reports the conflicting lock; its l_pid is that of a process
 *     outside the mount when the lock was taken there, and unknown (the
 *     kernel shows 0) when it is another handle's.
 * Blocking requests (F_SETLKW, flock without LOCK_NB) wait in a short-lived
 * thread of their own, never in a FUSE worker; a FUSE interrupt (the
 * caller's signal) wakes that thread with BLOCKING_LOCK_SIGNAL, whose
 * handler does nothing and is installed without SA_RESTART, so the wait
 * fails with EINTR and the request is answered EINTR. */

static void pt_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		     struct flock *lock)
{
	struct flock fl = *lock;

	if (ino == INODE_CONTROL_ID) {
		/* No lock is ever taken on it (see pt_setlk). */
		fl.l_type = F_UNLCK;
		fuse_reply_lock(req, &fl);
		return;
	}
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

static void pt_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		     struct flock *lock, int sleep)
{
	struct handle *h = handle_of(fi);
	struct flock fl = *lock;

	/* Locking the control file would serialize nothing: each handle has
	 * its own reply. Unlocks (sent at close) succeed. */
	if (ino == INODE_CONTROL_ID) {
		reply_status(req, fl.l_type == F_UNLCK ? 0 : -ENOLCK);
		return;
	}
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

static void pt_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int op)
{
	struct handle *h = handle_of(fi);

	if (ino == INODE_CONTROL_ID) {
		reply_status(req, (op & LOCK_UN) ? 0 : -ENOLCK);
		return;
	}
	if (!(op & LOCK_UN))
		locking_advisory(pt_of(req)->locking, h->key);
	if (!(op & LOCK_NB) && !(op & LOCK_UN)) {
		start_blocking(req, h, true, op, NULL, 0);
		return;
	}
	reply_status(req, rc_errno(flock(h->fd, op)));
}

/* ---- session ------------------------------------------------------------ */

static void pt_init(void *userdata, struct fuse_conn_info *conn)
{
	struct passthrough *pt = userdata;
	unsigned want_caps[] = {
		FUSE_CAP_ATOMIC_O_TRUNC,  /* O_TRUNC inside the locked open */
		FUSE_CAP_POSIX_LOCKS,
		FUSE_CAP_FLOCK_LOCKS,
		FUSE_CAP_EXPORT_SUPPORT,
		FUSE_CAP_DONT_MASK,       /* the source applies umask or ACL */
		FUSE_CAP_READDIRPLUS,
		FUSE_CAP_READDIRPLUS_AUTO,
		FUSE_CAP_HANDLE_KILLPRIV, /* the source clears setuid itself */
		FUSE_CAP_CACHE_SYMLINKS,  /* a symlink's text never changes */
		FUSE_CAP_ASYNC_READ,
		FUSE_CAP_PARALLEL_DIROPS,
		FUSE_CAP_SPLICE_WRITE,    /* read replies spliced from the */
		FUSE_CAP_SPLICE_MOVE,     /* file: twice the throughput */
	};

	pt->proc_fd = open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (pt->proc_fd < 0)
		log_err("cannot open /proc/self/fd: %s; files cannot be opened", strerror(errno));
	if (!(conn->capable & FUSE_CAP_ATOMIC_O_TRUNC))
		log_err("the kernel cannot pass O_TRUNC with open: truncations are not locked");
	for (size_t i = 0; i < sizeof(want_caps) / sizeof(want_caps[0]); i++)
		if (conn->capable & want_caps[i])
			conn->want |= want_caps[i];
	/* Writeback caching would hide writes from the source until the
	 * kernel flushes them, after the lock was handed on. Splicing the
	 * requests in costs two system calls per request and measured no
	 * faster for large writes. */
	conn->want &= ~(FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_SPLICE_READ);
	pt->dont_mask = conn->want & FUSE_CAP_DONT_MASK;
	log_debug("init: capable 0x%x, want 0x%x", conn->capable, conn->want);
}

/* Closes the handles the kernel never released (the connection went away
 * with files open). */
static void close_all_handles(struct passthrough *pt)
{
	struct handle *h;

	for (;;) {
		pthread_mutex_lock(&pt->handles_mu);
		h = pt->handles;
		if (h) {
			pt->handles = h->next;
			if (pt->handles)
				pt->handles->prev = NULL;
		}
		pthread_mutex_unlock(&pt->handles_mu);
		if (!h)
			break;
		handle_close(pt, h, false);
	}
}

static void pt_destroy(void *userdata)
{
	struct passthrough *pt = userdata;

	log_debug("destroy: %zu inodes known", inode_count(pt->inodes));
	close_all_handles(pt);
}

const struct fuse_lowlevel_ops passthrough_ops = {
	.init = pt_init,
	.destroy = pt_destroy,
	.lookup = pt_lookup,
	.forget = pt_forget,
	.forget_multi = pt_forget_multi,
	.getattr = pt_getattr,
	.setattr = pt_setattr,
	.readlink = pt_readlink,
	.mknod = pt_mknod,
	.mkdir = pt_mkdir,
	.unlink = pt_unlink,
	.rmdir = pt_rmdir,
	.symlink = pt_symlink,
	.rename = pt_rename,
	.link = pt_link,
	.open = pt_open,
	.create = pt_create,
	.read = pt_read,
	.write_buf = pt_write_buf,
	.flush = pt_flush,
	.release = pt_release,
	.fsync = pt_fsync,
	.opendir = pt_opendir,
	.readdir = pt_readdir,
	.readdirplus = pt_readdirplus,
	.releasedir = pt_releasedir,
	.fsyncdir = pt_fsyncdir,
	.statfs = pt_statfs,
	.setxattr = pt_setxattr,
	.getxattr = pt_getxattr,
	.listxattr = pt_listxattr,
	.removexattr = pt_removexattr,
	.access = pt_access,
	.getlk = pt_getlk,
	.setlk = pt_setlk,
	.flock = pt_flock,
	.fallocate = pt_fallocate,
	.copy_file_range = pt_copy_file_range,
	.lseek = pt_lseek,
};

int passthrough_new(struct passthrough **out, const struct lockfs_config *cfg,
		    struct locking *locking)
{
	struct passthrough *pt = calloc(1, sizeof(*pt));
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	int rc, n;

	if (!pt)
		return -ENOMEM;
	pt->cfg = cfg;
	pt->locking = locking;
	pt->proc_fd = -1;
	pt->uid = geteuid();
	pt->gid = getegid();
	pt->switch_creds = pt->uid == 0;
	pt->multi_user = pt->switch_creds && cfg->allow_other;
	n = getgroups(0, NULL);
	if (n > 0) {
		pt->groups = calloc((size_t)n, sizeof(*pt->groups));
		if (!pt->groups) {
			free(pt);
			return -ENOMEM;
		}
		n = getgroups(n, pt->groups);
	}
	pt->ngroups = n < 0 ? 0 : n;
	pthread_mutex_init(&pt->handles_mu, NULL);
	clock_gettime(CLOCK_REALTIME, &pt->control_time);
	/* Names always: policy rules match paths, and lockstat shows them. */
	rc = inode_table_new(&pt->inodes, cfg->source_fd, true);
	if (rc == 0) {
		rc = control_new(&pt->control, locking, control_path, pt, cfg);
		if (rc < 0)
			inode_table_free(pt->inodes);
	}
	if (rc < 0) {
		pthread_mutex_destroy(&pt->handles_mu);
		free(pt->groups);
		free(pt);
		return rc;
	}
	inode_table_set_free_hook(pt->inodes, forget_key, pt);
	pthread_once(&once, install_signal_handler);
	*out = pt;
	return 0;
}

void passthrough_set_session(struct passthrough *pt, struct fuse_session *se)
{
	pt->se = se;
}

void passthrough_mounted(struct passthrough *pt)
{
	int rc = procscan_mount_dev(pt->cfg->mountpoint, &pt->mnt_dev);

	if (rc < 0) {
		pt->mnt_dev = 0;
		log_debug("device of the mount on %s unknown (%s): closing processes' "
			  "descriptors are matched by inode number only",
			  pt->cfg->mountpoint, strerror(-rc));
	}
}

void passthrough_free(struct passthrough *pt)
{
	if (!pt)
		return;
	close_all_handles(pt);
	control_free(pt->control);
	inode_table_free(pt->inodes);
	if (pt->proc_fd >= 0)
		close(pt->proc_fd);
	pthread_mutex_destroy(&pt->handles_mu);
	free(pt->groups);
	free(pt);
}
