/* The caller's identity and the lock rule, which every family of the
 * passthrough uses (see pt.h).
 *
 * Credentials: when the daemon runs as root, a request from another user is
 * carried out with that user's fsuid, fsgid and supplementary groups, set on
 * the working thread only (setfsuid/setfsgid are per thread; setgroups is
 * made through the raw system call because glibc's wrapper changes every
 * thread of the process). The source file system then makes every
 * permission decision and gives new files their owner. The thread goes back
 * to the daemon's identity after the operation. */
#include "pt.h"

#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

/* The identity this thread currently acts with (NULL: the daemon's). Only
 * this thread reads or writes it. Switching is nestable because a resume
 * callback may run inside another request's operation on the same thread. */
static __thread const struct creds *thread_creds;
/* Whether this thread has its own umask (unshare(CLONE_FS)), and its value. */
static __thread bool thread_fs_private;
static __thread mode_t thread_umask;

void creds_capture(struct passthrough *pt, fuse_req_t req, struct creds *c)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	int n;

	c->active = false;
	c->ngroups = 0;
	c->groups = c->inline_groups;
	if (!pt->switch_creds || (ctx->uid == pt->uid && ctx->gid == pt->gid))
		return;
	c->active = true;
	c->uid = ctx->uid;
	c->gid = ctx->gid;
	n = fuse_req_getgroups(req, INLINE_GROUPS, c->inline_groups);
	if (n > INLINE_GROUPS) {
		gid_t *g = malloc((size_t)n * sizeof(*g));

		if (g) {
			int m = fuse_req_getgroups(req, n, g);

			if (m >= 0 && m <= n) {
				c->groups = g;
				n = m;
			} else {
				free(g);
				n = INLINE_GROUPS;
			}
		} else {
			n = INLINE_GROUPS;
		}
	}
	/* The caller vanished or /proc is unreadable: its primary group
	 * still applies, supplementary groups are left out. */
	c->ngroups = n < 0 ? 0 : n;
}

void creds_release(struct creds *c)
{
	if (c->groups != c->inline_groups)
		free(c->groups);
	c->groups = c->inline_groups;
}

/* 0, or -EPERM when the thread could not take identity c entirely (it may
 * then hold part of it, and must go back). setfsuid and setfsgid report no
 * error: asking again with -1, which changes nothing, tells whether the
 * change took. That is asked only on the way to a caller's identity: the
 * way back, to the daemon's own uid and gid, needs no privilege. */
static int creds_apply(struct passthrough *pt, const struct creds *c)
{
	uid_t uid = c ? c->uid : pt->uid;
	gid_t gid = c ? c->gid : pt->gid;
	const char *what = NULL;
	int e = 0;

	if (c) {
		/* Groups first: setfsuid to a non-root user drops the
		 * privileges the other calls need. */
		if (syscall(SYS_setgroups, (size_t)c->ngroups, c->groups) < 0) {
			e = errno;
			what = "setgroups";
		}
		setfsgid(gid);
		setfsuid(uid);
	} else {
		setfsuid(uid);
		setfsgid(gid);
		if (syscall(SYS_setgroups, (size_t)pt->ngroups, pt->groups) < 0) {
			e = errno;
			what = "setgroups";
		}
	}
	if (c && !what && (uid_t)setfsuid((uid_t)-1) != uid)
		what = "setfsuid";
	if (c && !what && (gid_t)setfsgid((gid_t)-1) != gid)
		what = "setfsgid";
	if (!what)
		return 0;
	log_limited(LOG_LVL_WARN, "refusing a request with EPERM: cannot act as uid %u gid %u: %s%s%s",
		    (unsigned)uid, (unsigned)gid, what, e ? ": " : " did not take",
		    e ? strerror(e) : "");
	return -EPERM;
}

int creds_enter(struct passthrough *pt, const struct creds *c, const struct creds **prev)
{
	*prev = thread_creds;
	if (c && !c->active)
		c = NULL;
	if (c == *prev)
		return 0;
	if (creds_apply(pt, c) < 0) {
		/* With the daemon's groups, say, the operation could reach
		 * what the caller may not: it must not run at all. */
		creds_apply(pt, *prev);
		return -EPERM;
	}
	thread_creds = c;
	return 0;
}

void creds_leave(struct passthrough *pt, const struct creds *prev)
{
	if (thread_creds != prev) {
		creds_apply(pt, prev);
		thread_creds = prev;
	}
}

int inode_stat(struct passthrough *pt, struct inode *in, struct stat *st)
{
	int fd = inode_fd_get(pt->inodes, in);
	int rc = fd < 0 ? fd : rc_errno(fstat(fd, st));

	inode_fd_put(pt->inodes, in, fd);
	return rc;
}

int caller_enter(struct passthrough *pt, fuse_req_t req, struct caller *c)
{
	int rc;

	creds_capture(pt, req, &c->creds);
	rc = creds_enter(pt, &c->creds, &c->prev);
	if (rc < 0)
		creds_release(&c->creds);
	return rc;
}

void caller_leave(struct passthrough *pt, struct caller *c)
{
	creds_leave(pt, c->prev);
	creds_release(&c->creds);
}

/* The mode to create a node with, after giving this thread the caller's
 * umask. The source file system applies it (or the parent's default ACL
 * instead, which is why the kernel was asked not to mask: FUSE_CAP_DONT_MASK).
 * A thread that cannot have its own umask masks by hand. */
mode_t create_mode(struct passthrough *pt, fuse_req_t req, mode_t mode)
{
	mode_t want = pt->dont_mask ? fuse_req_ctx(req)->umask & 0777 : 0;

	if (!thread_fs_private) {
		if (unshare(CLONE_FS) == 0) {
			thread_fs_private = true;
			umask(0);
			thread_umask = 0;
		} else {
			return mode & ~want;
		}
	}
	if (thread_umask != want) {
		umask(want);
		thread_umask = want;
	}
	return mode;
}
/* The rule for `in` (or, with name set, for `name` in directory `in`). The
 * path is built only when a policy file is in use. */
void lock_params(struct passthrough *pt, struct inode *in, const char *name,
			struct lock_params *lp)
{
	const struct lockfs_config *cfg = pt->cfg;
	uint64_t lease_ms = cfg->lease_ms, timeout_ms = cfg->lock_timeout_ms;

	lp->mode = POLICY_EXCLUSIVE;
	if (cfg->policy) {
		char path[PATH_MAX];
		int rc = name ? inode_child_path(pt->inodes, in, name, path, sizeof(path))
			      : inode_path(pt->inodes, in, path, sizeof(path));

		if (rc == 0) {
			const struct policy_rule *r = policy_match(cfg->policy, path);

			if (r) {
				lp->mode = r->mode;
				if (r->lease_ms >= 0)
					lease_ms = (uint64_t)r->lease_ms;
				if (r->timeout_ms >= 0)
					timeout_ms = (uint64_t)r->timeout_ms;
			}
			log_debug("policy: %s -> %s (rule at line %u)", path,
				  policy_mode_name(lp->mode), r ? r->line : 0);
		} else {
			log_debug("policy: path of inode %" PRIu64 " unknown (%s), defaults apply",
				  in->nodeid, strerror(-rc));
		}
	}
	lp->lease_ns = lease_ms * 1000000ull;
	lp->timeout_ns = timeout_ms * 1000000ull;
}

uint64_t deadline_for(const struct lock_params *lp)
{
	return lp->timeout_ns ? locking_now() + lp->timeout_ns : 0;
}

/* ---- reopening source inodes -------------------------------------------- */

int reopen_inode(struct passthrough *pt, struct inode *in, int flags)
{
	int ipath = inode_fd_get(pt->inodes, in), fd, err;

	if (ipath < 0)
		return ipath;
	fd = openat(pt->proc_fd, fdname(ipath), flags);
	err = errno;
	if (fd < 0 && inode_make_room(pt->inodes, err)) {
		fd = openat(pt->proc_fd, fdname(ipath), flags);
		err = errno;
	}
	inode_fd_put(pt->inodes, in, ipath);
	if (fd >= 0)
		return fd;
	if (err == EMFILE || err == ENFILE)
		log_limited(LOG_LVL_WARN, "cannot open inode %" PRIu64 ": %s", in->nodeid,
			    strerror(err));
	return -err;
}

void note_failure(int rc)
{
	log_limited(LOG_LVL_WARN, "a request failed: %s", strerror(-rc));
}

int replied(int r)
{
	if (r < 0 && r != -ENOENT)
		log_limited(LOG_LVL_WARN, "a reply could not be sent to the kernel: %s",
			    strerror(-r));
	return r;
}
