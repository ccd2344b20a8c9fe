/* Open file handles: their list, FLUSH and RELEASE, and the data operations
 * on them (see pt.h). */
#include "pt.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "procscan.h"

void handles_add(struct passthrough *pt, struct handle *h)
{
	pthread_mutex_lock(&pt->handles_mu);
	list_add_head(&pt->handles, &h->node);
	pthread_mutex_unlock(&pt->handles_mu);
}

/* Closes a handle: refreshes the cache stamp if it wrote (the kernel's page
 * cache holds what was written, so the next open may keep it), closes the
 * descriptor (dropping its advisory locks), then gives up the mandatory
 * lock, in that order so that the next holder finds both done. */
void handle_close(struct passthrough *pt, struct handle *h, bool listed)
{
	struct stat st;

	if (listed) {
		pthread_mutex_lock(&pt->handles_mu);
		list_remove(&h->node);
		pthread_mutex_unlock(&pt->handles_mu);
	}
	if (__atomic_load_n(&h->wrote, __ATOMIC_ACQUIRE) && fstat(h->fd, &st) == 0)
		inode_stamp_set(pt->inodes, h->inode, &st);
	close(h->fd);
	if (__atomic_exchange_n(&h->locked, false, __ATOMIC_ACQ_REL))
		locking_release(pt->locking, h->key, h->owner, h->write);
	inode_put(pt->inodes, h->inode);
	free(h);
}

/* Closes the handles the kernel never released (the connection went away
 * with files open). */
void close_all_handles(struct passthrough *pt)
{
	struct list_node *n;

	for (;;) {
		pthread_mutex_lock(&pt->handles_mu);
		n = list_pop(&pt->handles);
		pthread_mutex_unlock(&pt->handles_mu);
		if (!n)
			break;
		handle_close(pt, list_entry(n, struct handle, node), false);
	}
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
void pt_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct passthrough *pt = pt_of(req);
	struct handle *h = handle_of(fi);
	uint64_t po;

	(void)ino;
	if (__atomic_load_n(&h->locked, __ATOMIC_ACQUIRE) &&
	    same_process(h, fuse_req_ctx(req)->pid) &&
	    !procscan_probe_has_fd_on(pt->probes, h->tgid, pt->mnt_dev, h->inode->ino,
				      FD_SCAN_MAX) &&
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

void pt_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	handle_close(pt_of(req), handle_of(fi), true);
	reply_status(req, 0);
}
void pt_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);

	(void)ino;
	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = handle_of(fi)->fd;
	buf.buf[0].pos = off;
	/* Replies with the data or the read's error. */
	replied(fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE));
}

void mark_wrote(struct handle *h)
{
	if (!__atomic_load_n(&h->wrote, __ATOMIC_RELAXED))
		__atomic_store_n(&h->wrote, true, __ATOMIC_RELEASE);
}

void pt_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in_buf,
			 off_t off, struct fuse_file_info *fi)
{
	struct passthrough *pt = pt_of(req);
	struct handle *h = handle_of(fi);
	struct fuse_bufvec out = FUSE_BUFVEC_INIT(fuse_buf_size(in_buf));
	struct caller c;
	ssize_t n;

	(void)ino;
	out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	out.buf[0].fd = h->fd;
	out.buf[0].pos = off;
	n = locking_fence_check(pt->locking, &h->fence);
	if (n < 0) {
		reply_status(req, (int)n);
		return;
	}
	/* Only a write by an unprivileged caller clears setuid/setgid bits;
	 * for every other file the identity does not matter. */
	n = h->kill_priv ? caller_enter(pt, req, &c) : 0;
	if (n == 0) {
		n = fuse_buf_copy(&out, in_buf, 0);
		if (h->kill_priv)
			caller_leave(pt, &c);
	}
	if (n >= 0)
		mark_wrote(h);
	if (n < 0)
		reply_status(req, (int)n);
	else
		replied(fuse_reply_write(req, (size_t)n));
}

void pt_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	int fd = handle_of(fi)->fd;

	(void)ino;
	reply_status(req, rc_errno(datasync ? fdatasync(fd) : fsync(fd)));
}

void pt_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
			 off_t length, struct fuse_file_info *fi)
{
	struct handle *h = handle_of(fi);
	int rc;

	(void)ino;
	rc = locking_fence_check(pt_of(req)->locking, &h->fence);
	if (rc == 0)
		rc = rc_errno(fallocate(h->fd, mode, offset, length));
	if (rc == 0)
		mark_wrote(h);
	reply_status(req, rc);
}

void pt_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			       struct fuse_file_info *fi_in, fuse_ino_t ino_out,
			       off_t off_out, struct fuse_file_info *fi_out,
			       size_t len, int flags)
{
	struct handle *hi = handle_of(fi_in), *ho = handle_of(fi_out);
	ssize_t n;

	(void)ino_in;
	(void)ino_out;
	n = locking_fence_check(pt_of(req)->locking, &ho->fence);
	if (n < 0) {
		reply_status(req, (int)n);
		return;
	}
	n = copy_file_range(hi->fd, &off_in, ho->fd, &off_out, len, (unsigned)flags);
	if (n < 0) {
		reply_status(req, -errno);
		return;
	}
	mark_wrote(ho);
	replied(fuse_reply_write(req, (size_t)n));
}

void pt_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		     struct fuse_file_info *fi)
{
	off_t r;

	(void)ino;
	r = lseek(handle_of(fi)->fd, off, whence);
	if (r < 0)
		reply_status(req, -errno);
	else
		fuse_reply_lseek(req, r);
}
