/* The passthrough (see passthrough.h): the session's setup and teardown.
 * The operations themselves are in fs/pt_*.c; fs/pt.h tells which family
 * lives where and what they share. */
#include "pt.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "control.h"
#include "log.h"
#include "procscan.h"

void pt_init(void *userdata, struct fuse_conn_info *conn)
{
	struct passthrough *pt = userdata;
	unsigned want_caps[] = {
		FUSE_CAP_ATOMIC_O_TRUNC,  /* O_TRUNC inside the locked open */
		FUSE_CAP_POSIX_LOCKS,
		FUSE_CAP_FLOCK_LOCKS,
		FUSE_CAP_EXPORT_SUPPORT,
		FUSE_CAP_DONT_MASK,       /* the source applies umask or ACL */
		FUSE_CAP_READDIRPLUS,
		FUSE_CAP_READDIRPLUS_AUTO,
		FUSE_CAP_HANDLE_KILLPRIV, /* the source clears setuid itself */
		FUSE_CAP_CACHE_SYMLINKS,  /* a symlink's text never changes */
		FUSE_CAP_ASYNC_READ,
		FUSE_CAP_PARALLEL_DIROPS,
		FUSE_CAP_SPLICE_WRITE,    /* read replies spliced from the */
		FUSE_CAP_SPLICE_MOVE,     /* file: twice the throughput */
	};

	pt->proc_fd = open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (pt->proc_fd < 0)
		log_err("cannot open /proc/self/fd: %s; files cannot be opened", strerror(errno));
	if (!(conn->capable & FUSE_CAP_ATOMIC_O_TRUNC))
		log_err("the kernel cannot pass O_TRUNC with open: truncations are not locked");
	for (size_t i = 0; i < sizeof(want_caps) / sizeof(want_caps[0]); i++)
		if (conn->capable & want_caps[i])
			conn->want |= want_caps[i];
	/* Writeback caching would hide writes from the source until the
	 * kernel flushes them, after the lock was handed on. Splicing the
	 * requests in would cost two more system calls per request. */
	conn->want &= ~(FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_SPLICE_READ);
	pt->dont_mask = conn->want & FUSE_CAP_DONT_MASK;
	log_debug("init: capable 0x%x, want 0x%x", conn->capable, conn->want);
}

void pt_destroy(void *userdata)
{
	struct passthrough *pt = userdata;

	log_debug("destroy: %zu inodes known", inode_count(pt->inodes));
	close_all_handles(pt);
}

int passthrough_new(struct passthrough **out, const struct lockfs_config *cfg,
		    struct locking *locking)
{
	struct passthrough *pt = calloc(1, sizeof(*pt));
	int rc, n;

	if (!pt)
		return -ENOMEM;
	pt->cfg = cfg;
	pt->locking = locking;
	pt->proc_fd = -1;
	pt->uid = geteuid();
	pt->gid = getegid();
	pt->switch_creds = pt->uid == 0;
	pt->multi_user = pt->switch_creds && cfg->allow_other;
	n = getgroups(0, NULL);
	if (n > 0) {
		pt->groups = calloc((size_t)n, sizeof(*pt->groups));
		if (!pt->groups) {
			free(pt);
			return -ENOMEM;
		}
		n = getgroups(n, pt->groups);
	}
	pt->ngroups = n < 0 ? 0 : n;
	pthread_mutex_init(&pt->handles_mu, NULL);
	list_init(&pt->handles);
	clock_gettime(CLOCK_REALTIME, &pt->control_time);
	/* Names always: policy rules match paths, and lockstat shows them. */
	rc = inode_table_new(&pt->inodes, cfg->source_fd, true);
	if (rc == 0) {
		rc = control_new(&pt->control, locking, control_path, pt, cfg);
		if (rc < 0)
			inode_table_free(pt->inodes);
	}
	if (rc < 0) {
		pthread_mutex_destroy(&pt->handles_mu);
		free(pt->groups);
		free(pt);
		return rc;
	}
	inode_table_set_free_hook(pt->inodes, forget_key, pt);
	/* File handles and a bounded descriptor cache (inode.h); without
	 * them every known inode keeps a descriptor, as before. */
	rc = inode_table_use_handles(pt->inodes, cfg->fd_cache);
	if (rc < 0)
		log_warn("no file handles on the source (%s): each file the kernel knows keeps a descriptor open",
			 strerror(-rc));
	/* Half the inode table's budget, at most 64 (the default): enough for
	 * the descriptors of the two programs that closed files last when
	 * they are small (tar, cp, a script); with fd_cache=32 the daemon's
	 * descriptors in all stay under 64. */
	if (procscan_probes_new(&pt->probes, cfg->fd_cache / 2 < 64 ? cfg->fd_cache / 2 : 64) < 0)
		pt->probes = NULL;
	advisory_init();
	*out = pt;
	return 0;
}

void passthrough_set_session(struct passthrough *pt, struct fuse_session *se)
{
	pt->se = se;
}

void passthrough_mounted(struct passthrough *pt)
{
	int rc = procscan_mount_dev(pt->cfg->mountpoint, &pt->mnt_dev);

	if (rc < 0) {
		pt->mnt_dev = 0;
		log_debug("device of the mount on %s unknown (%s): closing processes' "
			  "descriptors are matched by inode number only",
			  pt->cfg->mountpoint, strerror(-rc));
	}
}

void passthrough_free(struct passthrough *pt)
{
	if (!pt)
		return;
	close_all_handles(pt);
	control_free(pt->control);
	inode_table_free(pt->inodes);
	procscan_probes_free(pt->probes);
	if (pt->proc_fd >= 0)
		close(pt->proc_fd);
	pthread_mutex_destroy(&pt->handles_mu);
	free(pt->groups);
	free(pt);
}

int passthrough_sync_file(struct passthrough *pt, dev_t dev, ino_t ino)
{
	struct inode *in = inode_find(pt->inodes, dev, ino);
	int fd, rc;

	if (!in)
		return -ENOENT;
	/* As the daemon: the sync is the daemon's own business. */
	fd = reopen_inode(pt, in, O_RDONLY | O_CLOEXEC);
	if (fd == -EACCES)
		fd = reopen_inode(pt, in, O_WRONLY | O_CLOEXEC);
	inode_put(pt->inodes, in);
	if (fd < 0)
		return fd;
	rc = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return rc;
}
