/* How the inode table reaches the source (see inode.h, "Handles" and
 * "Running out"): pinned descriptors, from the descriptor cache (fdcache.h)
 * or reopened by handle (fhandle.h), and lookups that stat, take the handle
 * of and, for a new inode, open a source file. No system call here is made
 * under the table's mutex. */
#include "inode_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* Unpinned descriptors closed at once when the process is out of them. */
#define EMFILE_EVICT 16

bool inode_make_room(struct inode_table *t, int err)
{
	int fds[EMFILE_EVICT];
	unsigned k;

	if ((err != EMFILE && err != ENFILE) || !t->handles)
		return false;
	pthread_mutex_lock(&t->mu);
	k = fdc_evict(&t->cache, fds, EMFILE_EVICT);
	pthread_mutex_unlock(&t->mu);
	while (k > 0)
		close(fds[--k]);
	return true;
}

static void fd_failed(struct inode_table *t, struct inode *in, int err)
{
	pthread_mutex_lock(&t->mu);
	t->open_failures++;
	pthread_mutex_unlock(&t->mu);
	log_limited(LOG_LVL_WARN, "cannot open inode %llu of the source: %s",
		    (unsigned long long)in->nodeid, strerror(err));
}

int inode_fd_get(struct inode_table *t, struct inode *in)
{
	struct inode *went_stale = NULL;
	int fd, mfd, close_fd = -1, err;

	if (in->fd >= 0)
		return in->fd;
	if (!in->handle_len)
		return -EBADF;  /* made with INODE_NO_FD */
	pthread_mutex_lock(&t->mu);
	if (in->stale) {
		pthread_mutex_unlock(&t->mu);
		return -ESTALE;
	}
	if (in->slot >= 0) {
		t->hits++;
		fd = fdc_pin(&t->cache, in->slot);
		pthread_mutex_unlock(&t->mu);
		return fd;
	}
	pthread_mutex_unlock(&t->mu);

	/* The mount was registered before the entry that uses it was
	 * published under the mutex, which the caller's reference went
	 * through. */
	mfd = fh_mount_fd(&t->mounts, in->mnt);
	fd = fh_open(mfd, in->handle_type, in->handle, in->handle_len);
	if (fd < 0 && inode_make_room(t, errno))
		fd = fh_open(mfd, in->handle_type, in->handle, in->handle_len);
	/* ENOMEM here is, in practice, a file being created under the inode
	 * number of ours, which is gone: the kernel's inode cache answers
	 * "being created" as no inode at all, which ext4 reports as ENOMEM.
	 * A moment later the number names the new file (ESTALE by its
	 * generation). Tried again a few times, then answered as ESTALE
	 * without marking the entry: the caller looks the name up again. */
	for (int i = 0; fd < 0 && errno == ENOMEM && i < 3; i++) {
		sched_yield();
		fd = fh_open(mfd, in->handle_type, in->handle, in->handle_len);
	}
	if (fd < 0 && errno == ENOMEM) {
		log_debug("inode %llu: its number is being reused, answered as stale",
			  (unsigned long long)in->nodeid);
		return -ESTALE;
	}
	if (fd < 0) {
		err = errno;
		if (err != ESTALE) {
			fd_failed(t, in, err);
			return -err;
		}
		pthread_mutex_lock(&t->mu);
		if (!in->stale) {
			close_fd = inode_mark_stale_locked(t, in);
			in->refs++;
			went_stale = in;
		}
		pthread_mutex_unlock(&t->mu);
		inode_stale_done(t, went_stale, close_fd);
		return -ESTALE;
	}

	pthread_mutex_lock(&t->mu);
	t->opens++;
	if (in->stale) {
		pthread_mutex_unlock(&t->mu);
		close(fd);
		return -ESTALE;
	}
	if (in->slot >= 0) {
		/* Opened by another thread meanwhile: share that one. */
		close_fd = fd;
		fd = fdc_pin(&t->cache, in->slot);
	} else {
		/* Every slot pinned: the caller gets its own descriptor, which
		 * inode_fd_put closes. */
		(void)fdc_insert(&t->cache, fd, 1, &in->slot, &close_fd);
	}
	pthread_mutex_unlock(&t->mu);
	if (close_fd >= 0)
		close(close_fd);
	return fd;
}

void inode_fd_put(struct inode_table *t, struct inode *in, int fd)
{
	int close_fd = fd;

	if (fd < 0 || fd == in->fd)
		return;
	pthread_mutex_lock(&t->mu);
	if (in->slot >= 0 && fdc_fd(&t->cache, in->slot) == fd) {
		close_fd = -1;
		if (fdc_unpin(&t->cache, in->slot) && in->stale)
			close_fd = fdc_release(&t->cache, in->slot);
	}
	pthread_mutex_unlock(&t->mu);
	if (close_fd >= 0)
		close(close_fd);
}

int inode_lookup(struct inode_table *t, struct inode *parent, const char *name,
		 const struct stat *st, int fd, struct inode **out)
{
	struct fhandle fh = { .len = 0 };
	int mnt_id, mnt = -1;

	if (fd >= 0 && t->handles && fh_get(fd, "", AT_EMPTY_PATH, &fh, &mnt_id) == 0)
		mnt = fh_mount_index(&t->mounts, mnt_id, fd);
	return inode_lookup_common(t, parent, name, st, fh.len ? &fh : NULL, mnt, fd, out);
}

/* An O_PATH open of `name` in dirfd (or of fd itself when name is NULL),
 * trying once more after making room when out of descriptors. */
static int open_path(struct inode_table *t, int dirfd, const char *name)
{
	char proc[32];
	int fd;

	if (!name) {
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", dirfd);
		dirfd = AT_FDCWD;
		name = proc;
	}
	for (int tries = 0; tries < 2; tries++) {
		fd = openat(dirfd, name, O_PATH | O_CLOEXEC | (name == proc ? 0 : O_NOFOLLOW));
		if (fd >= 0 || !inode_make_room(t, errno))
			break;
	}
	if (fd < 0 && (errno == EMFILE || errno == ENFILE))
		log_limited(LOG_LVL_WARN, "cannot open a source file: %s", strerror(errno));
	return fd < 0 ? -errno : fd;
}

/* What inode_lookup_at and inode_lookup_fd share once st and (for a table
 * of handles) the handle are known: a known entry costs nothing more; a new
 * one gets an O_PATH descriptor. Opened by name, its identity is read again
 * from that descriptor (the name may have changed hands since); opened
 * from the descriptor fd itself (open_name NULL), it is the same file, and
 * the st and handle in hand are its own. */
static int lookup_known_or_open(struct inode_table *t, struct inode *parent, const char *name,
				int dirfd, const char *open_name, struct stat *st,
				const struct fhandle *fh, int mnt_id, struct inode **out)
{
	struct inode *in, *dead = NULL, *went_stale = NULL;
	int fd, close_fd = -1, mnt = -1;

	pthread_mutex_lock(&t->mu);
	in = inode_known_locked(t, parent, name, st, fh, &dead, &went_stale, &close_fd);
	pthread_mutex_unlock(&t->mu);
	inode_bury(t, dead);
	inode_stale_done(t, went_stale, close_fd);
	if (in) {
		*out = in;
		return 0;
	}
	fd = open_path(t, dirfd, open_name);
	if (fd < 0)
		return fd;
	if (!open_name) {
		if (fh->len)
			mnt = fh_mount_index(&t->mounts, mnt_id, fd);
		return inode_lookup_common(t, parent, name, st, fh->len ? fh : NULL, mnt, fd, out);
	}
	if (fstat(fd, st) < 0) {
		int rc = -errno;

		close(fd);
		return rc;
	}
	return inode_lookup(t, parent, name, st, fd, out);
}

int inode_lookup_at(struct inode_table *t, struct inode *parent, int dirfd,
		    const char *name, struct stat *st, struct inode **out)
{
	struct fhandle fh = { .len = 0 };
	int mnt_id = -1, rc;

	if (fstatat(dirfd, name, st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (t->handles) {
		rc = fh_get(dirfd, name, 0, &fh, &mnt_id);
		if (rc < 0 && rc != -EOPNOTSUPP)
			return rc;
	}
	return lookup_known_or_open(t, parent, name, dirfd, name, st, &fh, mnt_id, out);
}

int inode_lookup_fd(struct inode_table *t, struct inode *parent, const char *name,
		    int fd, struct stat *st, struct inode **out)
{
	struct fhandle fh = { .len = 0 };
	int mnt_id = -1, rc;

	if (fstat(fd, st) < 0)
		return -errno;
	if (t->handles) {
		rc = fh_get(fd, "", AT_EMPTY_PATH, &fh, &mnt_id);
		if (rc < 0 && rc != -EOPNOTSUPP)
			return rc;
	}
	return lookup_known_or_open(t, parent, name, fd, NULL, st, &fh, mnt_id, out);
}
