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
	int dfd, r;

	if (kind != NODE_LOOKUP) {
		dfd = inode_fd_get(pt->inodes, dir);
		if (dfd < 0)
			return dfd;
		if (kind == NODE_MKDIR)
			r = mkdirat(dfd, name, create_mode(pt, req, mode));
		else if (kind == NODE_SYMLINK)
			r = symlinkat(link, dfd, name);
		else
			r = mknodat(dfd, name, create_mode(pt, req, mode), rdev);
		r = rc_errno(r);
		inode_fd_put(pt->inodes, dir, dfd);
		if (r < 0)
			return r;
	}
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
		rc = caller_enter(pt, req, &c);
		if (rc == 0) {
			rc = make_node(pt, req, dir, name, kind, mode, rdev, link, &e, &in);
			caller_leave(pt, &c);
		}
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
	int ifd = inode_fd_get(pt->inodes, in), dfd = inode_fd_get(pt->inodes, dir);
	struct stat st;
	int rc;

	/* Through /proc: linkat(AT_EMPTY_PATH) would need CAP_DAC_READ_SEARCH,
	 * which the caller's identity does not carry. */
	rc = ifd < 0 ? ifd : dfd < 0 ? dfd
		: rc_errno(linkat(pt->proc_fd, fdname(ifd), dfd, name, AT_SYMLINK_FOLLOW));
	if (rc == 0) {
		entry_init(pt, e);
		rc = inode_lookup_fd(pt->inodes, dir, name, ifd, &st, out);
	}
	inode_fd_put(pt->inodes, dir, dfd);
	inode_fd_put(pt->inodes, in, ifd);
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
		rc = caller_enter(pt, req, &c);
		if (rc == 0) {
			rc = do_link(pt, in, dir, newname, &e, &out);
			caller_leave(pt, &c);
		}
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
		int dfd = inode_fd_get(pt->inodes, dir);

		rc = dfd < 0 ? dfd : caller_enter(pt, req, &c);
		if (rc == 0) {
			rc = rc_errno(unlinkat(dfd, name, AT_REMOVEDIR));
			caller_leave(pt, &c);
		}
		inode_fd_put(pt->inodes, dir, dfd);
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
		int fd = inode_fd_get(pt->inodes, in);

		n = fd < 0 ? fd : readlinkat(fd, "", buf, sizeof(buf));
		if (fd >= 0 && n < 0)
			n = -errno;
		else if ((size_t)n == sizeof(buf))
			n = -ENAMETOOLONG;
		inode_fd_put(pt->inodes, in, fd);
		inode_put(pt->inodes, in);
	}
	if (n < 0) {
		reply_status(req, (int)n);
		return;
	}
	buf[n] = '\0';
	fuse_reply_readlink(req, buf);
}
