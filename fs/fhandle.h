/* File handles of source inodes, and the mounts they are opened through.
 *
 * A handle (name_to_handle_at) names an inode without holding it open;
 * open_by_handle_at turns it back into a descriptor, given a descriptor on
 * the mount it belongs to. The inode table stores handles instead of
 * descriptors (inode.h); this module knows nothing of the table.
 *
 * The source root's mount and each mount below it that a handle came from
 * get an index (0 for the root's, then 1 to FH_MAX_MOUNTS): 8 bits per
 * stored handle say which mount descriptor opens it.
 *
 * Locking: struct fh_mounts has its own mutex, taken only to register a
 * mount on first sight. Registered mounts are never removed, and their
 * count is published with release/acquire ordering after the descriptor is
 * stored, so fh_mount_index and fh_mount_fd read without a lock. The other
 * functions have no state. */
#ifndef LOCKFS_FHANDLE_H
#define LOCKFS_FHANDLE_H

#include <pthread.h>

/* The largest handle stored (MAX_HANDLE_SZ); a longer one means none. */
#define FH_MAX 128
/* Mounts below the source root whose handles can be opened. */
#define FH_MAX_MOUNTS 255

struct fhandle {
	int type;
	unsigned len;           /* 0: none */
	unsigned char bytes[FH_MAX];
};

/* The handle of `name` in dirfd (or of dirfd itself, with name "" and
 * AT_EMPTY_PATH in flags) and its mount id. -EOPNOTSUPP when there is none
 * to be had (also when it is longer than FH_MAX), other -errno. */
int fh_get(int dirfd, const char *name, int flags, struct fhandle *out, int *mnt_id);

/* An O_PATH descriptor of the inode with that handle, opened through mount
 * descriptor mfd; -1 with errno (ESTALE: the file is gone). Needs
 * CAP_DAC_READ_SEARCH; a thread acting with a caller's fsuid gets it back
 * for the call (root only). */
int fh_open(int mfd, int type, const unsigned char *bytes, unsigned len);

struct fh_mounts {
	pthread_mutex_t mu;     /* serializes registration */
	int root_id;            /* immutable after fh_mounts_init */
	int root_fd;            /* immutable after fh_mounts_init */
	unsigned n;             /* registered below the root (atomic) */
	int ids[FH_MAX_MOUNTS]; /* [i] immutable once i < n */
	int fds[FH_MAX_MOUNTS];
};

/* For the source root open as root_fd (any descriptor on a directory):
 * takes its handle and opens it once, which proves the capability before
 * anything relies on it. -EOPNOTSUPP when the source has no handles, -EPERM
 * without CAP_DAC_READ_SEARCH, other -errno; nothing to free then. */
int fh_mounts_init(struct fh_mounts *m, int root_fd);
void fh_mounts_free(struct fh_mounts *m);

/* The index of mount mnt_id for an inode open as O_PATH descriptor fd,
 * registering the mount on first sight (fd must then be its root
 * directory, as the first inode met on a mount is). -1 when it cannot be
 * registered (no room, or fd is not a directory). */
int fh_mount_index(struct fh_mounts *m, int mnt_id, int fd);

/* The descriptor that opens handles of mount index idx. */
static inline int fh_mount_fd(const struct fh_mounts *m, unsigned idx)
{
	return idx ? m->fds[idx - 1] : m->root_fd;
}

#endif
