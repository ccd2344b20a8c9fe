/* The router and the control file (see pt.h).
 *
 * Every request enters the passthrough here. The control file (control.h)
 * answers to CONTROL_NAME at the root, under the node id INODE_CONTROL_ID,
 * which the inode table never hands out. It has no entry in the table and
 * no lock; its handles (in fi->fh) are control.c's, not struct handle. The
 * router sends its requests to the ctl_* functions below and everything else
 * to the source handlers, which therefore never meet it. FORGET needs no
 * routing: the table ignores a node id it does not have.
 *
 * A source file of the same name at the root is shadowed: the router answers
 * for the name, and listings leave it out (pt_dir.c). */
#include "pt.h"

#include <stdlib.h>
#include <string.h>
#include <sys/file.h>

#include "config.h"
#include "control.h"

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
static void ctl_attr(struct passthrough *pt, struct stat *st)
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

static void ctl_lookup(struct passthrough *pt, fuse_req_t req)
{
	struct fuse_entry_param e;

	memset(&e, 0, sizeof(e));
	e.ino = INODE_CONTROL_ID;
	e.attr_timeout = pt->cfg->attr_timeout;
	e.entry_timeout = entry_timeout(pt);
	ctl_attr(pt, &e.attr);
	/* Lookups of the control file are not counted: it is never freed. */
	fuse_reply_entry(req, &e);
}

/* Size changes (an O_TRUNC open without atomic truncation, `: > file`)
 * and times are accepted and forgotten, so that shells can write requests;
 * the owner and mode are fixed. */
static void ctl_setattr(struct passthrough *pt, fuse_req_t req, int valid)
{
	struct stat st;

	if (valid & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		reply_status(req, -EPERM);
		return;
	}
	ctl_attr(pt, &st);
	fuse_reply_attr(req, &st, pt->cfg->attr_timeout);
}

static void ctl_open(struct passthrough *pt, fuse_req_t req,
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

static void ctl_read(struct passthrough *pt, fuse_req_t req, size_t size,
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
static void ctl_write(struct passthrough *pt, fuse_req_t req,
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
int control_path(void *arg, lt_file_t file, char *buf, size_t len)
{
	struct passthrough *pt = arg;

	return inode_key_path(pt->inodes, file, buf, len);
}

/* ---- the router --------------------------------------------------------- */

static bool is_ctl(fuse_ino_t ino)
{
	return ino == INODE_CONTROL_ID;
}

static void route_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	if (is_control_name(parent, name))
		ctl_lookup(pt_of(req), req);
	else
		pt_lookup(req, parent, name);
}

static void route_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;

	if (!is_ctl(ino)) {
		pt_getattr(req, ino, fi);
		return;
	}
	ctl_attr(pt_of(req), &st);
	fuse_reply_attr(req, &st, pt_of(req)->cfg->attr_timeout);
}

static void route_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int valid,
			  struct fuse_file_info *fi)
{
	if (is_ctl(ino))
		ctl_setattr(pt_of(req), req, valid);
	else
		pt_setattr(req, ino, attr, valid, fi);
}

static void route_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (is_ctl(ino))
		ctl_open(pt_of(req), req, fi);
	else
		pt_open(req, ino, fi);
}

static void route_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	if (is_ctl(ino))
		ctl_read(pt_of(req), req, size, off, fi);
	else
		pt_read(req, ino, size, off, fi);
}

static void route_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in_buf,
			    off_t off, struct fuse_file_info *fi)
{
	if (is_ctl(ino))
		ctl_write(pt_of(req), req, in_buf, fi);
	else
		pt_write_buf(req, ino, in_buf, off, fi);
}

static void route_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (is_ctl(ino))
		reply_status(req, 0);
	else
		pt_flush(req, ino, fi);
}

static void route_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (!is_ctl(ino)) {
		pt_release(req, ino, fi);
		return;
	}
	control_release(control_handle_of(fi));
	reply_status(req, 0);
}

/* Nothing of the control file is ever stored. */
static void route_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	if (is_ctl(ino))
		reply_status(req, 0);
	else
		pt_fsync(req, ino, datasync, fi);
}

static void route_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
			    off_t length, struct fuse_file_info *fi)
{
	if (is_ctl(ino))
		reply_status(req, -EOPNOTSUPP);
	else
		pt_fallocate(req, ino, mode, offset, length, fi);
}

/* The kernel copies the control file through read and write instead. */
static void route_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
				  struct fuse_file_info *fi_in, fuse_ino_t ino_out,
				  off_t off_out, struct fuse_file_info *fi_out,
				  size_t len, int flags)
{
	if (is_ctl(ino_in) || is_ctl(ino_out))
		reply_status(req, -EOPNOTSUPP);
	else
		pt_copy_file_range(req, ino_in, off_in, fi_in, ino_out, off_out, fi_out,
				   len, flags);
}

/* Only SEEK_DATA and SEEK_HOLE come here: the control file is empty to
 * stat, so there is no data to find. */
static void route_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
			struct fuse_file_info *fi)
{
	if (is_ctl(ino))
		reply_status(req, -ENXIO);
	else
		pt_lseek(req, ino, off, whence, fi);
}

/* Creating, making or linking a node under the control file's name finds
 * it there; like a mount point, it can be neither removed nor renamed. */
static void route_create(fuse_req_t req, fuse_ino_t parent, const char *name,
			 mode_t mode, struct fuse_file_info *fi)
{
	if (is_control_name(parent, name))
		reply_status(req, -EEXIST);
	else
		pt_create(req, parent, name, mode, fi);
}

static void route_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
			mode_t mode, dev_t rdev)
{
	if (is_control_name(parent, name))
		reply_status(req, -EEXIST);
	else
		pt_mknod(req, parent, name, mode, rdev);
}

static void route_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	if (is_control_name(parent, name))
		reply_status(req, -EEXIST);
	else
		pt_mkdir(req, parent, name, mode);
}

static void route_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
			  const char *name)
{
	if (is_control_name(parent, name))
		reply_status(req, -EEXIST);
	else
		pt_symlink(req, link, parent, name);
}

/* The control file exists only under its own name. */
static void route_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		       const char *newname)
{
	if (is_ctl(ino))
		reply_status(req, -EPERM);
	else if (is_control_name(newparent, newname))
		reply_status(req, -EEXIST);
	else
		pt_link(req, ino, newparent, newname);
}

static void route_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	if (is_control_name(parent, name))
		reply_status(req, -EBUSY);
	else
		pt_unlink(req, parent, name);
}

static void route_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	if (is_control_name(parent, name))
		reply_status(req, -ENOTDIR);
	else
		pt_rmdir(req, parent, name);
}

static void route_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
			 fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	if (is_control_name(parent, name) || is_control_name(newparent, newname))
		reply_status(req, -EBUSY);
	else
		pt_rename(req, parent, name, newparent, newname, flags);
}

/* The control file lives on the mount's file system, the root's. */
static void route_statfs(fuse_req_t req, fuse_ino_t ino)
{
	pt_statfs(req, is_ctl(ino) ? INODE_ROOT_ID : ino);
}

/* The control file has no extended attributes and takes none. Not ENOSYS:
 * the kernel would stop asking for every file. */
static void route_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			   const char *value, size_t size, int flags)
{
	if (is_ctl(ino))
		reply_status(req, -ENOTSUP);
	else
		pt_setxattr(req, ino, name, value, size, flags);
}

static void route_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	if (is_ctl(ino))
		reply_status(req, -ENODATA);
	else
		pt_getxattr(req, ino, name, size);
}

static void route_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	if (!is_ctl(ino))
		pt_listxattr(req, ino, size);
	else if (size == 0)
		fuse_reply_xattr(req, 0);
	else
		fuse_reply_buf(req, NULL, 0);
}

static void route_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	if (is_ctl(ino))
		reply_status(req, -ENODATA);
	else
		pt_removexattr(req, ino, name);
}

static void route_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	if (is_ctl(ino))
		reply_status(req, (mask & X_OK) ? -EACCES : 0);
	else
		pt_access(req, ino, mask);
}

/* Locking the control file would serialize nothing: each handle has its own
 * reply. Unlocks (sent at close) succeed; no lock is ever there to find. */
static void route_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
			struct flock *lock)
{
	struct flock fl = *lock;

	if (!is_ctl(ino)) {
		pt_getlk(req, ino, fi, lock);
		return;
	}
	fl.l_type = F_UNLCK;
	fuse_reply_lock(req, &fl);
}

static void route_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
			struct flock *lock, int sleep)
{
	if (is_ctl(ino))
		reply_status(req, lock->l_type == F_UNLCK ? 0 : -ENOLCK);
	else
		pt_setlk(req, ino, fi, lock, sleep);
}

static void route_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int op)
{
	if (is_ctl(ino))
		reply_status(req, (op & LOCK_UN) ? 0 : -ENOLCK);
	else
		pt_flock(req, ino, fi, op);
}

/* Operations on directories, symlinks and forgets never name the control
 * file: they go straight to the source handlers. */
const struct fuse_lowlevel_ops passthrough_ops = {
	.init = pt_init,
	.destroy = pt_destroy,
	.lookup = route_lookup,
	.forget = pt_forget,
	.forget_multi = pt_forget_multi,
	.getattr = route_getattr,
	.setattr = route_setattr,
	.readlink = pt_readlink,
	.mknod = route_mknod,
	.mkdir = route_mkdir,
	.unlink = route_unlink,
	.rmdir = route_rmdir,
	.symlink = route_symlink,
	.rename = route_rename,
	.link = route_link,
	.open = route_open,
	.create = route_create,
	.read = route_read,
	.write_buf = route_write_buf,
	.flush = route_flush,
	.release = route_release,
	.fsync = route_fsync,
	.opendir = pt_opendir,
	.readdir = pt_readdir,
	.readdirplus = pt_readdirplus,
	.releasedir = pt_releasedir,
	.fsyncdir = pt_fsyncdir,
	.statfs = route_statfs,
	.setxattr = route_setxattr,
	.getxattr = route_getxattr,
	.listxattr = route_listxattr,
	.removexattr = route_removexattr,
	.access = route_access,
	.getlk = route_getlk,
	.setlk = route_setlk,
	.flock = route_flock,
	.fallocate = route_fallocate,
	.copy_file_range = route_copy_file_range,
	.lseek = route_lseek,
};
