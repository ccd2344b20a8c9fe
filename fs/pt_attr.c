/* statfs, extended attributes and access (see pt.h). */
#include "pt.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

void pt_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct passthrough *pt = pt_of(req);
	struct inode *in = inode_get(pt->inodes, ino);
	struct statvfs sv;
	int rc = -ESTALE;

	if (in) {
		int fd = inode_fd_get(pt->inodes, in);

		rc = fd < 0 ? fd : rc_errno(fstatvfs(fd, &sv));
		inode_fd_put(pt->inodes, in, fd);
		inode_put(pt->inodes, in);
	}
	if (rc < 0)
		reply_status(req, rc);
	else
		fuse_reply_statfs(req, &sv);
}

enum xattr_op { XA_SET, XA_GET, XA_LIST, XA_REMOVE };

static ssize_t xattr_call(enum xattr_op op, const char *path, const char *name,
			  const char *value, char *buf, size_t size, int flags)
{
	ssize_t n;

	switch (op) {
	case XA_SET:
		n = setxattr(path, name, value, size, flags);
		break;
	case XA_GET:
		n = getxattr(path, name, buf, size);
		break;
	case XA_LIST:
		n = listxattr(path, buf, size);
		break;
	default:
		n = removexattr(path, name);
		break;
	}
	return n < 0 ? -errno : n;
}

/* Extended attributes go through the /proc path of the O_PATH descriptor:
 * the *xattr calls take no O_PATH descriptor. size 0 asks for the size. */
static void xattr_op(fuse_req_t req, fuse_ino_t ino, enum xattr_op op, const char *name,
		     const char *value, size_t size, int flags)
{
	struct passthrough *pt = pt_of(req);
	struct inode *in;
	char *buf = NULL;
	ssize_t n = -ESTALE;
	struct caller c;

	in = inode_get(pt->inodes, ino);
	if (in) {
		int fd = inode_fd_get(pt->inodes, in);
		struct fdpath p = fdpath(fd);

		if (fd < 0 || ((op == XA_GET || op == XA_LIST) && size > 0 && !(buf = malloc(size)))) {
			inode_fd_put(pt->inodes, in, fd);
			inode_put(pt->inodes, in);
			reply_status(req, fd < 0 ? fd : -ENOMEM);
			return;
		}
		n = caller_enter(pt, req, &c);
		if (n == 0) {
			n = xattr_call(op, p.s, name, value, buf, size, flags);
			caller_leave(pt, &c);
		}
		inode_fd_put(pt->inodes, in, fd);
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

void pt_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			const char *value, size_t size, int flags)
{
	xattr_op(req, ino, XA_SET, name, value, size, flags);
}

void pt_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	xattr_op(req, ino, XA_GET, name, NULL, size, 0);
}

void pt_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	xattr_op(req, ino, XA_LIST, NULL, NULL, size, 0);
}

void pt_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	xattr_op(req, ino, XA_REMOVE, name, NULL, 0, 0);
}

void pt_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	struct passthrough *pt = pt_of(req);
	struct inode *in;
	struct caller c;
	int rc = -ESTALE;

	in = inode_get(pt->inodes, ino);
	if (in) {
		int fd = inode_fd_get(pt->inodes, in);

		rc = fd < 0 ? fd : caller_enter(pt, req, &c);
		if (rc == 0) {
			/* AT_EACCESS: check as the fsuid/fsgid just set, not
			 * as the daemon's real uid. */
			rc = rc_errno(faccessat(pt->proc_fd, fdname(fd), mask, AT_EACCESS));
			caller_leave(pt, &c);
		}
		inode_fd_put(pt->inodes, in, fd);
		inode_put(pt->inodes, in);
	}
	reply_status(req, rc);
}
