/* The passthrough's inside: what its files (fs/pt_*.c, fs/passthrough.c)
 * share. Nothing outside the passthrough includes this; the rest of the
 * daemon sees fs/passthrough.h.
 *
 * The passthrough is split by family of operation:
 *   pt_common.c    the caller's identity (credentials) and the lock rule
 *   pt_control.c   the router: every request enters there, and the control
 *                  file's requests go to control.c, so no handler below
 *                  ever meets the control file
 *   pt_entry.c     entries replied to the kernel, forget, getattr
 *   pt_open.c      open and create, waiting for their mandatory lock
 *   pt_handle.c    open file handles: FLUSH, RELEASE, and data I/O on them
 *   pt_barrier.c   unlink, rename, setattr: the operations that wait like an
 *                  open for a regular file's lock
 *   pt_names.c     lookup, mknod, mkdir, symlink, link, rmdir, readlink
 *   pt_dir.c       directory handles and listings
 *   pt_attr.c      statfs, extended attributes, access
 *   pt_advisory.c  flock() and fcntl() locks, forwarded to the source
 *   passthrough.c  the session: init, destroy, setting up and tearing down
 *
 * Every request is carried out on the source directory through the O_PATH
 * descriptors of the inode table (inode.h), so nothing is resolved by path
 * from the daemon's root and the mount may sit on top of its own source.
 * Files are reopened through /proc/self/fd/N, which reaches the inode itself
 * whatever its names have become.
 *
 * Each operation is a function returning 0 or -errno, and each request gets
 * exactly one reply. Most handlers reply before they return. Those that may
 * wait for a mandatory lock (open, create, unlink, rename, setattr) park a
 * record in fs/locking.c and reply from its resume callback, which may run on
 * any thread, before or after the handler returns; such records carry
 * everything the operation needs, including the caller's credentials.
 * Blocking advisory locks reply from a thread of their own (pt_advisory.c).
 *
 * Locks between threads: the inode table has its own mutex; open handles
 * are listed under pt->handles_mu (only so that destroy can close them);
 * each handle's state flags are atomics; a directory handle's stream is
 * under its own mutex; the control has its own. Credentials are per thread
 * and need none. */
#ifndef LOCKFS_PT_H
#define LOCKFS_PT_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include "passthrough.h"
#include "inode.h"
#include "list.h"
#include "locking.h"
#include "policy.h"

#define INLINE_GROUPS 32

#define container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

struct passthrough {
	const struct lockfs_config *cfg;    /* read-only */
	struct locking *locking;
	struct fuse_session *se;            /* set before the session loop */
	struct inode_table *inodes;         /* its own mutex */
	/* /proc/self/fd, opened at init: main.c daemonizes (forks) after
	 * passthrough_new(), and "self" must be the daemon itself. */
	int proc_fd;
	bool dont_mask;                     /* set at init, read-only after */
	/* The mount's device, set before the session loop, read-only after;
	 * 0 when unknown (a MOUNTPOINT given as /dev/fd/N): descriptors are
	 * then matched by inode number alone, which errs on holding. */
	dev_t mnt_dev;
	/* What FLUSH reads of closing processes, kept open (procscan.h); its
	 * own mutex. NULL when it could not be made: FLUSH then reads /proc
	 * afresh. */
	struct procscan_probes *probes;

	/* The daemon's identity, to go back to after acting as a caller.
	 * Read-only after passthrough_new(). */
	bool switch_creds;
	bool multi_user;                    /* switch_creds under allow_other */
	uid_t uid;
	gid_t gid;
	int ngroups;
	gid_t *groups;

	pthread_mutex_t handles_mu;         /* protects the handles list */
	struct list handles;                /* of struct handle, by node */

	struct control *control;            /* its own locks */
	struct timespec control_time;       /* the control file's times: when
	                                       the mount was set up; read-only */
};

static inline struct passthrough *pt_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* Logs (rate-limited) a failure that says the source or the daemon is in
 * trouble rather than that the caller asked for something impossible. */
void note_failure(int rc);
/* What a fuse_reply_* call returned: -ENOENT means the request was
 * interrupted and its reply is not wanted, which is normal; anything else
 * (the connection gone, a reply the kernel refused) is logged, rate
 * limited. Returns r. */
int replied(int r);

static inline void reply_status(fuse_req_t req, int rc)
{
	if (rc == -EIO || rc == -ENOSPC || rc == -EDQUOT || rc == -EMFILE || rc == -ENFILE ||
	    rc == -ENOMEM)
		note_failure(rc);
	replied(fuse_reply_err(req, -rc));
}

static inline int rc_errno(int r)
{
	return r < 0 ? -errno : 0;
}

/* A full path to descriptor fd, for calls that take no directory fd. */
struct fdpath {
	char s[32];
};

#define FDPATH_DIR "/proc/self/fd/"

static inline struct fdpath fdpath(int fd)
{
	struct fdpath p;

	snprintf(p.s, sizeof(p.s), FDPATH_DIR "%d", fd);
	return p;
}

/* The name of descriptor fd relative to pt->proc_fd. Valid until the end
 * of the full expression that uses it (a temporary's array). */
#define fdname(fd) (fdpath(fd).s + sizeof(FDPATH_DIR) - 1)

/* ---- credentials (pt_common.c) ------------------------------------------ */

/* A caller's identity, captured from its request. */
struct creds {
	bool active;            /* false: act as the daemon */
	uid_t uid;
	gid_t gid;
	int ngroups;
	gid_t *groups;          /* inline_groups or malloc'ed */
	gid_t inline_groups[INLINE_GROUPS];
};

void creds_capture(struct passthrough *pt, fuse_req_t req, struct creds *c);
void creds_release(struct creds *c);
/* Makes this thread act as c (NULL or inactive: as the daemon); *prev is
 * the identity to go back to with creds_leave. Nestable: a resume callback
 * may run inside another request's operation on the same thread. 0, or
 * -EPERM when the identity could not be taken: the thread is back to *prev
 * (no creds_leave) and the operation must not run. */
int creds_enter(struct passthrough *pt, const struct creds *c, const struct creds **prev);
void creds_leave(struct passthrough *pt, const struct creds *prev);

/* Acting as a request's caller for the span of one operation: capture and
 * enter, then leave and release. caller_enter fails like creds_enter (and
 * then needs no caller_leave). */
struct caller {
	struct creds creds;
	const struct creds *prev;
};

int caller_enter(struct passthrough *pt, fuse_req_t req, struct caller *c);
void caller_leave(struct passthrough *pt, struct caller *c);

/* The mode to create a node with, after giving this thread the caller's
 * umask (see pt_common.c). */
mode_t create_mode(struct passthrough *pt, fuse_req_t req, mode_t mode);

/* Opens the source inode of `in` anew with flags, through /proc/self/fd
 * (which reaches the inode whatever its names have become), as the thread's
 * identity. Out of descriptors, the inode table makes room and the open is
 * tried once more. The descriptor, or -errno. */
int reopen_inode(struct passthrough *pt, struct inode *in, int flags);

/* The source's stat of an inode, through a descriptor pinned for the call:
 * 0, or -errno (-ESTALE: its file is gone). */
int inode_stat(struct passthrough *pt, struct inode *in, struct stat *st);

/* ---- the lock rule (pt_common.c) ---------------------------------------- */

struct lock_params {
	enum policy_mode mode;
	uint64_t lease_ns;
	uint64_t timeout_ns;    /* 0: wait for ever */
};

/* The rule for `in` (or, with name set, for `name` in directory `in`). */
void lock_params(struct passthrough *pt, struct inode *in, const char *name,
		 struct lock_params *lp);
/* When a wait under lp ends in ENOLCK; 0 for never. */
uint64_t deadline_for(const struct lock_params *lp);

/* ---- entries (pt_entry.c) ----------------------------------------------- */

/* How long the kernel may cache a name (see pt_entry.c). */
double entry_timeout(struct passthrough *pt);
void entry_init(struct passthrough *pt, struct fuse_entry_param *e);
/* Looks `name` up in `dir` for the kernel: one more lookup on the result,
 * and a reference for the caller (*out). */
int do_lookup(struct passthrough *pt, struct inode *dir, const char *name,
	      struct fuse_entry_param *e, struct inode **out);
/* Replies with an entry (or rc < 0); drops the reference on `in`. */
void reply_entry(struct passthrough *pt, fuse_req_t req, int rc,
		 struct fuse_entry_param *e, struct inode *in);
/* The inode table's free hook. */
void forget_key(void *arg, struct inode *in);

/* ---- open file handles (pt_handle.c) ------------------------------------ */

struct handle {
	int fd;
	struct inode *inode;    /* referenced */
	lt_file_t key;
	lt_owner_t owner;       /* the opening thread's lock owner */
	pid_t tid, tgid;        /* the opening thread and its process */
	bool write;             /* the lock was asked with LT_F_WRITE */
	bool rdwr;              /* opened O_RDWR: the only mode that can be
	                           mapped shared and writable */
	bool kill_priv;         /* setuid/setgid at open: writes as the caller */
	/* Atomics: flush, release and writes may run on different threads. */
	bool locked;            /* the handle still holds its mandatory lock */
	bool wrote;             /* something was written through it */
	uint64_t posix_owner;   /* lock_owner of fcntl locks taken through it */
	struct lk_fence fence;  /* cluster mode: the grant its lock came under */
	struct list_node node;  /* in pt->handles, under pt->handles_mu */
};

static inline struct handle *handle_of(struct fuse_file_info *fi)
{
	return (struct handle *)(uintptr_t)fi->fh;
}

void handles_add(struct passthrough *pt, struct handle *h);
/* Closes a handle (listed: also takes it off pt->handles). */
void handle_close(struct passthrough *pt, struct handle *h, bool listed);
void close_all_handles(struct passthrough *pt);
void mark_wrote(struct handle *h);

/* ---- the FUSE handlers, by family --------------------------------------- */

/* The control file (pt_control.c); the router's table is passthrough_ops. */
int control_path(void *arg, lt_file_t file, char *buf, size_t len);

void pt_init(void *userdata, struct fuse_conn_info *conn);
void pt_destroy(void *userdata);

void pt_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void pt_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup);
void pt_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets);
void pt_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);

void pt_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void pt_create(fuse_req_t req, fuse_ino_t parent, const char *name,
	       mode_t mode, struct fuse_file_info *fi);

void pt_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void pt_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void pt_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
	     struct fuse_file_info *fi);
void pt_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in_buf,
		  off_t off, struct fuse_file_info *fi);
void pt_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
void pt_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
		  off_t length, struct fuse_file_info *fi);
void pt_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			struct fuse_file_info *fi_in, fuse_ino_t ino_out,
			off_t off_out, struct fuse_file_info *fi_out,
			size_t len, int flags);
void pt_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
	      struct fuse_file_info *fi);

void pt_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void pt_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
	       fuse_ino_t newparent, const char *newname, unsigned int flags);
void pt_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int valid,
		struct fuse_file_info *fi);

void pt_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev);
void pt_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode);
void pt_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name);
void pt_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname);
void pt_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void pt_readlink(fuse_req_t req, fuse_ino_t ino);

void pt_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void pt_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi);
void pt_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi);
void pt_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void pt_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);

void pt_statfs(fuse_req_t req, fuse_ino_t ino);
void pt_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		 const char *value, size_t size, int flags);
void pt_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void pt_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void pt_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);
void pt_access(fuse_req_t req, fuse_ino_t ino, int mask);

void advisory_init(void);
void pt_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *lock);
void pt_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
	      struct flock *lock, int sleep);
void pt_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int op);

#endif
