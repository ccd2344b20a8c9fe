/* Name operations that take no lock: lookup, mknod, mkdir, symlink, link,
 * rmdir, and readlink (see pt.h). */
#include "pt.h"

#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

enum node_kind { NODE_LOOKUP, NODE_MKNOD, NODE_MKDIR, NODE_SYMLINK };

static int make_node(struct passthrough *pt, fuse_req_t req, struct inode *dir,
		     const char *name, enum node_kind kind, mode_t mode, dev_t rdev,
		     const char *link, struct fuse_entry_param *e, struct inode **out)
{
	int r;

	switch (kind) {
	case NODE_LOOKUP:
		r = 0;
		break;
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
	struct caller c;
	int rc = -ESTALE;

	dir = inode_get(pt->inodes, parent);
	if (dir) {
		caller_enter(pt, req, &c);
		rc = make_node(pt, req, dir, name, kind, mode, rdev, link, &e, &in);
		caller_leave(pt, &c);
		inode_put(pt->inodes, dir);
	}
	reply_entry(pt, req, rc, &e, in);
}

/* A negative answer is an error reply, which the kernel does not cache:
 * files created behind the mount's back show up at once. */
void pt_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	node_op(req, parent, name, NODE_LOOKUP, 0, 0, NULL);
}

void pt_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, dev_t rdev)
{
	node_op(req, parent, name, NODE_MKNOD, mode, rdev, NULL);
}

void pt_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	node_op(req, parent, name, NODE_MKDIR, mode, 0, NULL);
}

void pt_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
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
	if (linkat(pt->proc_fd, fdname(in->fd), dir->fd, name, AT_SYMLINK_FOLLOW) < 0)
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

void pt_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct passthrough *pt = pt_of(req);
	struct inode *in, *dir, *out = NULL;
	struct fuse_entry_param e;
	struct caller c;
	int rc = -ESTALE;

	in = inode_get(pt->inodes, ino);
	dir = inode_get(pt->inodes, newparent);
	if (in && dir) {
		caller_enter(pt, req, &c);
		rc = do_link(pt, in, dir, newname, &e, &out);
		caller_leave(pt, &c);
	}
	inode_put(pt->inodes, in);
	inode_put(pt->inodes, dir);
	reply_entry(pt, req, rc, &e, out);
}

void pt_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct passthrough *pt = pt_of(req);
	struct inode *dir;
	struct caller c;
	int rc = -ESTALE;

	dir = inode_get(pt->inodes, parent);
	if (dir) {
		caller_enter(pt, req, &c);
		rc = rc_errno(unlinkat(dir->fd, name, AT_REMOVEDIR));
		caller_leave(pt, &c);
		inode_put(pt->inodes, dir);
	}
	reply_status(req, rc);
}

void pt_readlink(fuse_req_t req, fuse_ino_t ino)
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
