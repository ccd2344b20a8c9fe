/* Unlink, rename and setattr (see pt.h).
 *
 * Removing, replacing or changing a regular file "waits like an open for
 * everyone but the lock's holder": the operation first takes a barrier on
 * the file's lock (two, one after the other, for an exchange), runs once
 * granted, and then lets the next waiter in. */
#include "pt.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

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

/* ipath is the inode's pinned O_PATH descriptor, for what goes without an
 * open handle. */
/* The kernel clears the set-user-ID and set-group-ID bits of a regular file
 * written, truncated or chowned by a caller without CAP_FSETID by sending a
 * mode change ahead of the operation, as that caller: libfuse 3.14 never
 * passes FUSE_CAP_HANDLE_KILLPRIV on to the kernel (3.17.1 does), so the
 * kernel does not leave the clearing to us. The caller need not own the
 * file and the source refuses the chmod (EPERM), where the source's own
 * write would have cleared the bits. So a mode change refused with EPERM
 * that removes only these bits, as the kernel computes them (set-user-ID;
 * set-group-ID when group-executable), asked by a caller who may write the
 * file, is made with the daemon's identity: that caller could have the
 * source clear the bits anyway by writing a byte. Runs with the caller's
 * credentials. 0, or -1 with errno set (EPERM when not such a change). */
static int clear_setid_bits(struct passthrough *pt, int ipath, mode_t mode)
{
	const struct creds *prev;
	mode_t have, kill;
	struct stat st;
	int r, err;

	if (fstat(ipath, &st) < 0)
		return -1;
	have = st.st_mode & 07777;
	kill = have & S_ISUID;
	if ((have & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP))
		kill |= S_ISGID;
	mode &= 07777;
	if (!S_ISREG(st.st_mode) || mode == have || (mode & ~have) || ((have & ~mode) & ~kill) ||
	    faccessat(pt->proc_fd, fdname(ipath), W_OK, AT_EACCESS) < 0) {
		errno = EPERM;
		return -1;
	}
	if (creds_enter(pt, NULL, &prev) < 0) {
		errno = EPERM;
		return -1;
	}
	r = fchmodat(pt->proc_fd, fdname(ipath), mode, 0);
	err = errno;
	creds_leave(pt, prev);
	errno = err;
	return r;
}

static int setattr_with(struct passthrough *pt, int ipath, const struct stat *attr,
			int valid, struct handle *h, struct stat *out)
{
	int fd = h ? h->fd : -1;

	if (valid & FUSE_SET_ATTR_MODE) {
		if ((fd >= 0 ? fchmod(fd, attr->st_mode) < 0
			     : fchmodat(pt->proc_fd, fdname(ipath), attr->st_mode, 0) < 0) &&
		    (errno != EPERM || clear_setid_bits(pt, ipath, attr->st_mode) < 0))
			return -errno;
	}
	if (valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		uid_t uid = (valid & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
		gid_t gid = (valid & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;

		if (fchownat(ipath, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
	}
	if (valid & FUSE_SET_ATTR_SIZE) {
		if (fd >= 0 ? ftruncate(fd, attr->st_size) < 0
			    : truncate(fdpath(ipath).s, attr->st_size) < 0)
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
			    : utimensat(ipath, "", tv, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
	}
	return rc_errno(fstat(ipath, out));
}

static int setattr_run(struct passthrough *pt, struct inode *in, const struct stat *attr,
		       int valid, struct handle *h, struct stat *out)
{
	int ipath = inode_fd_get(pt->inodes, in);
	int rc = ipath < 0 ? ipath : setattr_with(pt, ipath, attr, valid, h, out);

	inode_fd_put(pt->inodes, in, ipath);
	return rc;
}

static int unlink_run(struct barrier_op *b)
{
	struct inode_table *t = b->pt->inodes;
	int dfd = inode_fd_get(t, b->dir);
	int rc = dfd < 0 ? dfd : rc_errno(unlinkat(dfd, b->name, 0));

	inode_fd_put(t, b->dir, dfd);
	return rc;
}

static int rename_run(struct barrier_op *b)
{
	struct inode_table *t = b->pt->inodes;
	int dfd = inode_fd_get(t, b->dir), nfd = inode_fd_get(t, b->newdir);
	int rc = dfd < 0 ? dfd : nfd < 0 ? nfd
		: rc_errno(renameat2(dfd, b->name, nfd, b->newname, b->flags));

	inode_fd_put(t, b->newdir, nfd);
	inode_fd_put(t, b->dir, dfd);
	return rc;
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
		if (by && S_ISREG(by->st_mode)) {
			locking_replaced(pt->locking, in->key, inode_lock_key(by->st_dev, by->st_ino));
		} else {
			/* A handle that no longer opens is a file without a
			 * name that nobody has open. */
			int rc = inode_stat(pt, in, &now);

			if (rc == -ESTALE || (rc == 0 && now.st_nlink == 0))
				locking_gone(pt->locking, in->key);
		}
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

	rc = creds_enter(pt, &b->creds, &prev);
	if (rc == 0) {
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
	}

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
		replied(fuse_reply_attr(b->req, &st, pt->cfg->attr_timeout));
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

/* Starts a barrier operation: without barriers (or when its caller is gone
 * already) it runs at once; a caller that cannot be told fails it (see
 * locking_owner). */
static void barrier_start(struct barrier_op *b)
{
	int rc = b->nkeys > 0 ? locking_owner(b->pt->locking, b->req, &b->owner) : 0;

	if (rc == -ESRCH) {
		b->nkeys = 0;
	} else if (rc < 0) {
		reply_status(b->req, rc);
		barrier_free(b);
		return;
	}
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
	int dfd = inode_fd_get(b->pt->inodes, dir);
	const struct creds *prev;
	bool ok = false;

	if (dfd >= 0 && creds_enter(b->pt, &b->creds, &prev) == 0) {
		ok = fstatat(dfd, name, st, AT_SYMLINK_NOFOLLOW) == 0;
		creds_leave(b->pt, prev);
	}
	inode_fd_put(b->pt->inodes, dir, dfd);
	return ok;
}

void pt_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct passthrough *pt = pt_of(req);
	struct barrier_op *b;

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

void pt_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	struct passthrough *pt = pt_of(req);
	struct barrier_op *b;
	bool exchange = flags & RENAME_EXCHANGE;

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

void pt_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int valid,
		       struct fuse_file_info *fi)
{
	struct passthrough *pt = pt_of(req);
	struct barrier_op *b;
	struct lock_params lp;

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
	} else if (b->h && (valid & FUSE_SET_ATTR_SIZE)) {
		/* ftruncate under the holder's own lock: fenced like a write. */
		int rc = locking_fence_check(pt->locking, &b->h->fence);

		if (rc < 0) {
			reply_status(req, rc);
			barrier_free(b);
			return;
		}
	}
	barrier_start(b);
}
