/* File handles and mounts (see fhandle.h). */
#include "fhandle.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/fsuid.h>
#include <unistd.h>

union fh_buf {
	struct file_handle fh;
	char space[sizeof(struct file_handle) + FH_MAX];
};

int fh_get(int dirfd, const char *name, int flags, struct fhandle *out, int *mnt_id)
{
	union fh_buf b;

	b.fh.handle_bytes = FH_MAX;
	if (name_to_handle_at(dirfd, name, &b.fh, mnt_id, flags) < 0) {
		out->len = 0;
		/* Too big to store is the same as none. */
		return errno == EOVERFLOW ? -EOPNOTSUPP : -errno;
	}
	out->type = b.fh.handle_type;
	out->len = b.fh.handle_bytes;
	memcpy(out->bytes, b.fh.f_handle, out->len);
	return 0;
}

/* open_by_handle_at needs CAP_DAC_READ_SEARCH, which a thread acting with a
 * caller's fsuid has dropped (setfsuid to non-zero clears it): such a thread
 * gets it back for the one call by going to fsuid 0 and back. The open is
 * O_PATH, which checks no permission on the file itself; what the caller
 * may do with it is checked later, as the caller. */
int fh_open(int mfd, int type, const unsigned char *bytes, unsigned len)
{
	union fh_buf b;
	int fd;

	b.fh.handle_bytes = len;
	b.fh.handle_type = type;
	memcpy(b.fh.f_handle, bytes, len);
	fd = open_by_handle_at(mfd, &b.fh, O_PATH | O_CLOEXEC);
	if (fd < 0 && errno == EPERM && geteuid() == 0) {
		int prev = setfsuid(0);

		if (prev != 0) {
			fd = open_by_handle_at(mfd, &b.fh, O_PATH | O_CLOEXEC);
			int err = errno;

			setfsuid((uid_t)prev);
			errno = err;
		} else {
			errno = EPERM;
		}
	}
	return fd;
}

/* open_by_handle_at takes no O_PATH descriptor for the mount: a directory
 * descriptor it accepts, on the directory open as fd; -1 if it is not one. */
static int open_dir_of(int fd)
{
	char proc[32];

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	return open(proc, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

int fh_mounts_init(struct fh_mounts *m, int root_fd)
{
	struct fhandle fh;
	int mnt_id, fd, rc;

	rc = fh_get(root_fd, "", AT_EMPTY_PATH, &fh, &mnt_id);
	if (rc < 0)
		return rc;
	m->root_fd = open_dir_of(root_fd);
	if (m->root_fd < 0)
		return -errno;
	fd = fh_open(m->root_fd, fh.type, fh.bytes, fh.len);
	if (fd < 0) {
		rc = -errno;
		close(m->root_fd);
		m->root_fd = -1;
		return rc;
	}
	close(fd);
	m->root_id = mnt_id;
	m->n = 0;
	pthread_mutex_init(&m->mu, NULL);
	return 0;
}

void fh_mounts_free(struct fh_mounts *m)
{
	for (unsigned i = 0; i < m->n; i++)
		close(m->fds[i]);
	close(m->root_fd);
	m->root_fd = -1;
	pthread_mutex_destroy(&m->mu);
}

static int find_mount(const struct fh_mounts *m, unsigned n, int mnt_id)
{
	for (unsigned i = 0; i < n; i++)
		if (m->ids[i] == mnt_id)
			return (int)i + 1;
	return -1;
}

int fh_mount_index(struct fh_mounts *m, int mnt_id, int fd)
{
	unsigned n;
	int dup_fd, idx;

	if (mnt_id == m->root_id)
		return 0;
	n = __atomic_load_n(&m->n, __ATOMIC_ACQUIRE);
	idx = find_mount(m, n, mnt_id);
	if (idx >= 0 || n == FH_MAX_MOUNTS)
		return idx;
	/* The first inode met on a mount is its root, a directory (the
	 * lookup went through it); anything else keeps its descriptor. */
	dup_fd = open_dir_of(fd);
	if (dup_fd < 0)
		return -1;
	pthread_mutex_lock(&m->mu);
	n = m->n;
	idx = find_mount(m, n, mnt_id);
	if (idx < 0 && n < FH_MAX_MOUNTS) {
		m->ids[n] = mnt_id;
		m->fds[n] = dup_fd;
		dup_fd = -1;
		__atomic_store_n(&m->n, n + 1, __ATOMIC_RELEASE);
		idx = (int)n + 1;
	}
	pthread_mutex_unlock(&m->mu);
	if (dup_fd >= 0)
		close(dup_fd);
	return idx;
}
