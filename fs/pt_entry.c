/* The entries replied to the kernel (lookups of names into the inode
 * table), forget and getattr (see pt.h). */
#include "pt.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

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

void entry_init(struct passthrough *pt, struct fuse_entry_param *e, struct inode *dir)
{
	memset(e, 0, sizeof(*e));
	e->attr_timeout = pt->cfg->attr_timeout;
	e->entry_timeout = entry_timeout_in(pt, dir);
}

/* Opens `name` in dir and stats what it opened: the descriptor, or -errno
 * (nothing left open). */
static int open_path(int dir, const char *name, int flags, struct stat *st)
{
	int fd = openat(dir, name, flags);
	int rc;

	if (fd < 0)
		return -errno;
	if (fstat(fd, st) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

/* Looks `name` up in `dir` for the kernel: one more lookup on the result,
 * and a reference for the caller (*out). Runs with the caller's
 * credentials: searching a directory is a permission check. */
int do_lookup(struct passthrough *pt, struct inode *dir, const char *name,
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
		fd = open_path(dir->fd, "..", O_PATH | O_CLOEXEC, &st);
		if (fd < 0)
			return fd;
		rc = inode_lookup(pt->inodes, NULL, NULL, &st, fd, &in);
	} else {
		/* Stat first: a known inode needs no new descriptor. */
		if (fstatat(dir->fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
		rc = inode_lookup(pt->inodes, dir, name, &st, -1, &in);
		if (rc == -ENOENT) {
			/* The name may have changed hands since the stat: the
			 * descriptor is the truth. */
			fd = open_path(dir->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC, &st);
			if (fd < 0)
				return fd;
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
void reply_entry(struct passthrough *pt, fuse_req_t req, int rc,
		 struct fuse_entry_param *e, struct inode *in)
{
	if (rc < 0) {
		reply_status(req, rc);
	} else if (fuse_reply_entry(req, e) == -ENOENT) {
		inode_unlookup(pt->inodes, in, 1);
	}
	inode_put(pt->inodes, in);
}
/* The inode table frees an entry: its source inode may now be freed and its
 * number reused for a new file, which must not inherit the old file's
 * marks in the lock table (replaced, gone). */
void forget_key(void *arg, struct inode *in)
{
	struct passthrough *pt = arg;

	if (S_ISREG(in->type))
		locking_forget(pt->locking, in->key);
}

void pt_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	inode_forget(pt_of(req)->inodes, ino, nlookup);
	fuse_reply_none(req);
}

void pt_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct passthrough *pt = pt_of(req);

	for (size_t i = 0; i < count; i++)
		inode_forget(pt->inodes, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

void pt_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct passthrough *pt = pt_of(req);
	struct inode *in;
	struct stat st;
	int rc = -ESTALE;

	(void)fi;
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
