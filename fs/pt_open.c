/* Open and create: each waits for its mandatory lock (openclass.h says
 * which) before the source file is opened for good (see pt.h). */
#include "pt.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "openclass.h"
#include "owner.h"

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
	if (op->lock)
		locking_fence(op->pt->locking, h->key, &h->fence);
	*out = h;
	return 0;
}

/* Gives the open descriptor op->fd to a new handle and replies to the open
 * or create; -errno (op->fd still op's) when no handle could be made. */
static int reply_handle(struct open_op *op, const struct stat *st)
{
	struct passthrough *pt = op->pt;
	struct handle *h;
	int rc = new_handle(op, op->fd, st, &h);

	if (rc < 0)
		return rc;
	op->fd = -1;
	op->fi.fh = (uintptr_t)h;
	/* Handles that hold a lock need the FLUSH at close (see pt_flush);
	 * the others spare the kernel that round trip. */
	op->fi.noflush = !h->locked;
	handles_add(pt, h);
	rc = replied(op->create ? fuse_reply_create(op->w.req, &op->e, &op->fi)
				: fuse_reply_open(op->w.req, &op->fi));
	if (rc == -ENOENT) {
		/* The request was aborted: nobody will ever release it. */
		handle_close(pt, h, true);
		if (op->create)
			inode_unlookup(pt->inodes, op->inode, 1);
	}
	open_op_free(op);
	return 0;
}

/* Refuses an open or create with rc, giving back the lock that `status`
 * granted it (and, for a create, the lookup its reply would have given). */
static void open_fail(struct open_op *op, int status, int rc)
{
	struct passthrough *pt = op->pt;

	if (op->fd >= 0)
		close(op->fd);
	if (status >= 0 && op->lock)
		locking_release(pt->locking, op->inode->key, op->w.lt.owner, op->write);
	if (op->create)
		inode_unlookup(pt->inodes, op->inode, 1);
	log_debug("%s of inode %" PRIu64 " failed: %s", op->create ? "create" : "open",
		  op->inode->nodeid, strerror(-rc));
	reply_status(op->w.req, rc);
	open_op_free(op);
}

/* A non-blocking read let in beside readers (LT_PEEK) has no hold to keep
 * or give back. */
static int granted(struct open_op *op, int status)
{
	if (status == LT_PEEK) {
		op->lock = false;
		return 0;
	}
	return status;
}

/* The open, after its lock was granted (or with no lock): opens the
 * source file, with O_TRUNC only now, and replies. */
static void open_finish(struct open_op *op, int status)
{
	struct passthrough *pt = op->pt;
	int flags = op->fi.flags, rc = granted(op, status);
	struct stat st;

	if (rc < 0)
		goto fail;
	if (S_ISREG(op->inode->type) && (flags & O_TRUNC)) {
		/* Truncating a file that was replaced behind the mount's back
		 * would hit somebody else's data: check before opening. */
		rc = inode_stat(pt, op->inode, &st);
		if (rc < 0)
			goto fail;
		if (st.st_nlink == 0 && !inode_is_unlinked(pt->inodes, op->inode)) {
			rc = -ESTALE;
			goto fail;
		}
	}
	const struct creds *prev;

	rc = creds_enter(pt, &op->creds, &prev);
	if (rc < 0)
		goto fail;
	op->fd = reopen_inode(pt, op->inode, reopen_flags(flags));
	rc = op->fd < 0 ? op->fd : 0;
	creds_leave(pt, prev);
	if (rc < 0)
		goto fail;
	if (fstat(op->fd, &st) < 0) {
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
	rc = reply_handle(op, &st);
	if (rc == 0)
		return;
fail:
	open_fail(op, status, rc);
}

static void open_resume(struct lk_wait *w, int status)
{
	open_finish(container_of(w, struct open_op, w), status);
}

/* Whether the thread's identity has access `mask` to `in`; an inode that
 * cannot be reached counts as accessible (the stricter lock follows). */
static bool may_access(struct passthrough *pt, struct inode *in, int mask)
{
	int fd = inode_fd_get(pt->inodes, in);
	bool ok = fd < 0 || faccessat(pt->proc_fd, fdname(fd), mask, AT_EACCESS) == 0;

	inode_fd_put(pt->inodes, in, fd);
	return ok;
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
	/* Unknown: assume it could (its reads then exclude writers). */
	if (creds_enter(pt, &op->creds, &prev) < 0)
		return true;
	can = may_access(pt, op->inode, W_OK);
	if (!can) {
		dir = inode_parent(pt->inodes, op->inode);
		/* Unknown directory: assume it could. */
		can = !dir || may_access(pt, dir, W_OK | X_OK);
		inode_put(pt->inodes, dir);
	}
	creds_leave(pt, prev);
	return can;
}

/* Fills the lock request of an open or create: 1; 0 when no lock is to be
 * taken after all (openclass.h decides, or the caller is gone already); or
 * -ENOLCK when the caller cannot be told (see locking_owner): the request
 * fails rather than run unlocked. */
static int prepare_lock(struct open_op *op, fuse_req_t req, const struct lock_params *lp,
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
		return 0;
	rc = locking_owner(pt->locking, req, &owner);
	if (rc == -ESRCH) {
		log_debug("open of inode %" PRIu64 " without a lock: its caller is gone",
			  op->inode->nodeid);
		return 0;
	}
	if (rc < 0)
		return rc;
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

static void create_resume(struct lk_wait *w, int status);

/* The record of an open (of node ino) or create (in directory ino), with a
 * reference on that inode in *in; NULL once it replied with an error. */
static struct open_op *open_op_new(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
				   bool create, struct inode **in)
{
	struct passthrough *pt = pt_of(req);
	struct open_op *op;

	*in = inode_get(pt->inodes, ino);
	if (!*in) {
		reply_status(req, -ESTALE);
		return NULL;
	}
	op = calloc(1, sizeof(*op));
	if (!op) {
		inode_put(pt->inodes, *in);
		reply_status(req, -ENOMEM);
		return NULL;
	}
	op->pt = pt;
	op->fi = *fi;
	op->create = create;
	op->fd = -1;
	op->tid = fuse_req_ctx(req)->pid;
	op->w.req = req;
	op->w.resume = create ? create_resume : open_resume;
	creds_capture(pt, req, &op->creds);
	return op;
}

void pt_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct passthrough *pt = pt_of(req);
	struct inode *in;
	struct open_op *op;
	enum open_kind kind;
	struct lock_params lp;
	int rc = 0;

	op = open_op_new(req, ino, fi, false, &in);
	if (!op)
		return;
	op->inode = in;

	kind = openclass_kind(fi->flags, false, in->type);
	log_debug("open inode %" PRIu64 " flags 0%o by %d: %s", in->nodeid,
		  (unsigned)fi->flags, (int)op->tid,
		  kind == OPEN_NOLOCK ? "no lock" : kind == OPEN_READ ? "read" : "write");
	if (kind != OPEN_NOLOCK) {
		lock_params(pt, in, NULL, &lp);
		rc = prepare_lock(op, req, &lp, kind, fi->flags);
		if (rc > 0) {
			locking_acquire(pt->locking, &op->w);
			return;
		}
	}
	open_finish(op, rc);
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
	bool same;
	int rc = granted(op, status);

	if (rc < 0)
		goto fail;
	if ((op->fi.flags & O_TRUNC) && !op->created) {
		const struct creds *prev;

		rc = creds_enter(pt, &op->creds, &prev);
		if (rc < 0)
			goto fail;
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
	rc = reply_handle(op, &op->e.attr);
	if (rc == 0)
		return;
fail:
	open_fail(op, status, rc);
}

static void create_resume(struct lk_wait *w, int status)
{
	create_finish(container_of(w, struct open_op, w), status);
}

void pt_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	struct passthrough *pt = pt_of(req);
	struct inode *dir, *in = NULL;
	const struct creds *prev;
	struct open_op *op = NULL;
	struct lock_params lp;
	enum open_kind kind;
	struct stat st;
	int fd = -1, dfd, rc, flags;

	op = open_op_new(req, parent, fi, true, &dir);
	if (!op)
		return;

	/* Created (or found) without O_TRUNC: truncation waits for the lock. */
	flags = reopen_flags(fi->flags) & ~O_TRUNC;
	dfd = inode_fd_get(pt->inodes, dir);
	rc = dfd < 0 ? dfd : creds_enter(pt, &op->creds, &prev);
	if (rc == 0) {
		for (int tries = 0; tries < 2; tries++) {
			fd = open_or_create(dfd, name, flags, fi->flags & O_EXCL,
					    create_mode(pt, req, mode), &op->created);
			if (fd >= 0 || !inode_make_room(pt->inodes, -fd))
				break;
		}
		rc = fd < 0 ? fd : inode_lookup_fd(pt->inodes, dir, name, fd, &st, &in);
		creds_leave(pt, prev);
	}
	inode_fd_put(pt->inodes, dir, dfd);
	if (rc < 0) {
		if (fd >= 0)
			close(fd);
		inode_put(pt->inodes, dir);
		creds_release(&op->creds);
		free(op);
		reply_status(req, rc);
		return;
	}
	/* A file this create made (O_EXCL succeeded) is new, whatever its
	 * inode number named before. A removed file's "gone" mark on that
	 * number lasts until the kernel forgets the removed inode, which may
	 * come after the source gave the number to this file: the lock table
	 * would answer the create -ESTALE, and the kernel's retry of an
	 * O_EXCL open finds the file and fails with EEXIST. The mark, and
	 * what the table learned of the dead file, go now, as when the inode
	 * table sees a number reused (forget_key). */
	if (op->created && S_ISREG(st.st_mode))
		locking_forget_dead(pt->locking, in->key);
	op->inode = in;
	op->fd = fd;
	entry_init(pt, &op->e);
	op->e.ino = in->nodeid;
	op->e.attr = st;

	kind = openclass_kind(fi->flags, true, st.st_mode & S_IFMT);
	log_debug("create %s in inode %" PRIu64 " flags 0%o by %d: %s", name, dir->nodeid,
		  (unsigned)fi->flags, (int)op->tid, kind == OPEN_NOLOCK ? "no lock" : "write");
	if (kind != OPEN_NOLOCK) {
		lock_params(pt, dir, name, &lp);
		rc = prepare_lock(op, req, &lp, kind, fi->flags);
		if (rc > 0) {
			inode_put(pt->inodes, dir);
			locking_acquire(pt->locking, &op->w);
			return;
		}
	}
	inode_put(pt->inodes, dir);
	create_finish(op, rc);
}
