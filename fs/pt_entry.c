/* The entries replied to the kernel (lookups of names into the inode
 * table), forget and getattr (see pt.h). */
#include "pt.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

/* How long the kernel may cache a name. Under allow_other, with the daemon
 * acting as each caller, the kernel checks no directory search permission
 * itself unless mounted with default_permissions: a cached name is reached
 * by any user without asking the daemon, for as long as it is cached.
 * Caching only the names in directories everyone may search is not enough:
 * a directory's mode, owner or ACL may change while its names stay cached
 * (chmod 0700 dir, and dir/file was still reached by others: pjdfstest
 * open/05.t, link/06.t, chmod/05.t). So without default_permissions no name
 * is cached in that mode: every walk looks each name up again as the walking
 * user, which the source then checks. The price is one LOOKUP per path
 * component per walk (docs/conformance.md). */
double entry_timeout(struct passthrough *pt)
{
	if (pt->multi_user && !pt->cfg->default_permissions)
		return 0;
	return pt->cfg->entry_timeout;
}

void entry_init(struct passthrough *pt, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->attr_timeout = pt->cfg->attr_timeout;
	e->entry_timeout = entry_timeout(pt);
}

/* Looks `name` up in `dir` for the kernel: one more lookup on the result,
 * and a reference for the caller (*out). Runs with the caller's
 * credentials: searching a directory is a permission check. */
int do_lookup(struct passthrough *pt, struct inode *dir, const char *name,
	      struct fuse_entry_param *e, struct inode **out)
{
	struct inode *in;
	struct stat st;
	int fd, rc;

	entry_init(pt, e);
	fd = inode_fd_get(pt->inodes, dir);
	if (fd < 0)
		return fd;
	/* Only an NFS export asks for . and .. (to decode file handles); the
	 * root's parent is outside the mount. */
	if (strcmp(name, ".") == 0 || (strcmp(name, "..") == 0 && dir == inode_root(pt->inodes)))
		rc = inode_lookup_fd(pt->inodes, NULL, NULL, fd, &st, &in);
	else if (strcmp(name, "..") == 0)
		rc = inode_lookup_at(pt->inodes, NULL, fd, "..", &st, &in);
	else
		rc = inode_lookup_at(pt->inodes, dir, fd, name, &st, &in);
	inode_fd_put(pt->inodes, dir, fd);
	if (rc < 0)
		return rc;
	e->ino = in->nodeid;
	e->attr = st;
	*out = in;
	return 0;
}

/* Replies with an entry; if the kernel did not take it (the request was
 * aborted), the lookup it would have counted is undone. */
void reply_entry(struct passthrough *pt, fuse_req_t req, int rc,
		 struct fuse_entry_param *e, struct inode *in)
{
	if (rc < 0) {
		reply_status(req, rc);
	} else if (replied(fuse_reply_entry(req, e)) == -ENOENT) {
		inode_unlookup(pt->inodes, in, 1);
	}
	inode_put(pt->inodes, in);
}

/* The inode table frees an entry (or finds it stale): its source inode may
 * now be freed and its number reused for a new file, which must inherit
 * neither the old file's marks in the lock table (replaced, gone) nor its
 * statistics. A stale entry's number names another file already; a kept
 * descriptor still pins the inode, so no link left means the same. An
 * entry known by handle only, freed while its file still had a name, keeps
 * its statistics: the file may well come back under the same number. */
void forget_key(void *arg, struct inode *in)
{
	struct passthrough *pt = arg;
	struct stat st;

	if (!S_ISREG(in->type))
		return;
	if (in->stale || (in->fd >= 0 && fstat(in->fd, &st) == 0 && st.st_nlink == 0))
		locking_forget_dead(pt->locking, in->key);
	else
		locking_forget(pt->locking, in->key);
}

void pt_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	inode_forget(pt_of(req)->inodes, ino, nlookup);
	fuse_reply_none(req);
}

void pt_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct passthrough *pt = pt_of(req);

	for (size_t i = 0; i < count; i++)
		inode_forget(pt->inodes, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

void pt_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct passthrough *pt = pt_of(req);
	struct inode *in = inode_get(pt->inodes, ino);
	struct stat st;
	int rc;

	if (!in)
		rc = -ESTALE;
	else if (fi && S_ISREG(in->type))
		/* fstat() of an open file: its own descriptor reaches it even
		 * when a file system cannot reopen an unlinked file by handle. */
		rc = rc_errno(fstat(handle_of(fi)->fd, &st));
	else
		rc = inode_stat(pt, in, &st);
	inode_put(pt->inodes, in);
	if (rc < 0)
		reply_status(req, rc);
	else
		replied(fuse_reply_attr(req, &st, pt->cfg->attr_timeout));
}
