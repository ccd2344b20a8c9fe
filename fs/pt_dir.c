/* Directory handles and listings (see pt.h). */
#include "pt.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control.h"

struct dir_handle {
	pthread_mutex_t mu;     /* protects the stream and the fields below */
	DIR *dp;
	off_t offset;           /* where the stream stands */
	struct dirent *entry;   /* read but not yet sent (did not fit) */
};

static struct dir_handle *dir_handle_of(struct fuse_file_info *fi)
{
	return (struct dir_handle *)(uintptr_t)fi->fh;
}

static int do_opendir(struct passthrough *pt, struct inode *in, struct dir_handle **out)
{
	struct dir_handle *d = calloc(1, sizeof(*d));
	int fd, rc;

	if (!d)
		return -ENOMEM;
	fd = reopen_inode(pt, in, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		free(d);
		return fd;
	}
	d->dp = fdopendir(fd);
	if (!d->dp) {
		rc = -errno;
		close(fd);
		free(d);
		return rc;
	}
	pthread_mutex_init(&d->mu, NULL);
	*out = d;
	return 0;
}

void pt_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct passthrough *pt = pt_of(req);
	struct inode *in = inode_get(pt->inodes, ino);
	struct dir_handle *d = NULL;
	struct caller c;
	int rc = -ESTALE;

	if (in) {
		rc = caller_enter(pt, req, &c);
		if (rc == 0) {
			rc = do_opendir(pt, in, &d);
			caller_leave(pt, &c);
		}
		inode_put(pt->inodes, in);
	}
	if (rc < 0) {
		reply_status(req, rc);
		return;
	}
	fi->fh = (uintptr_t)d;
	if (replied(fuse_reply_open(req, fi)) == -ENOENT) {
		closedir(d->dp);
		pthread_mutex_destroy(&d->mu);
		free(d);
	}
}

static bool is_dot(const char *n)
{
	return n[0] == '.' && (n[1] == '\0' || (n[1] == '.' && n[2] == '\0'));
}

/* The lookups a readdirplus reply hands to the kernel, to undo them if the
 * reply cannot be delivered. */
struct plus_list {
	struct inode **v;
	size_t n, cap;
};

static int plus_add(struct plus_list *l, struct inode *in)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 32;
		struct inode **v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = in;
	return 0;
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, bool plus)
{
	struct passthrough *pt = pt_of(req);
	struct dir_handle *d = dir_handle_of(fi);
	struct inode *dir = NULL;
	struct plus_list looked = { 0 };
	struct caller c;
	char *buf = malloc(size);
	size_t used = 0;
	int rc = 0;

	if (!buf) {
		reply_status(req, -ENOMEM);
		return;
	}
	if (plus) {
		dir = inode_get(pt->inodes, ino);
		rc = dir ? caller_enter(pt, req, &c) : -ESTALE;
		if (rc < 0) {
			inode_put(pt->inodes, dir);
			free(buf);
			reply_status(req, rc);
			return;
		}
	}
	pthread_mutex_lock(&d->mu);
	if (off != d->offset) {
		seekdir(d->dp, off);
		d->entry = NULL;
		d->offset = off;
	}
	for (;;) {
		struct dirent *de;
		size_t need;

		if (!d->entry) {
			errno = 0;
			d->entry = readdir(d->dp);
			if (!d->entry) {
				/* An error after some entries: send those;
				 * the next call reports it. */
				if (errno && used == 0)
					rc = -errno;
				break;
			}
		}
		de = d->entry;
		/* A source file of that name is shadowed by the control file,
		 * which no listing shows (a readdirplus entry would even
		 * replace it in the kernel's cache). */
		if (ino == INODE_ROOT_ID && strcmp(de->d_name, CONTROL_NAME) == 0) {
			d->offset = de->d_off;
			d->entry = NULL;
			continue;
		}
		if (plus) {
			struct fuse_entry_param e;
			struct inode *in = NULL;

			need = fuse_add_direntry_plus(req, NULL, 0, de->d_name, NULL, 0);
			if (need > size - used)
				break;
			/* . and .. (and names that vanished or cannot be
			 * looked up) go without attributes: node id 0 tells
			 * the kernel not to count a lookup. */
			if (is_dot(de->d_name) || do_lookup(pt, dir, de->d_name, &e, &in) < 0) {
				memset(&e, 0, sizeof(e));
				e.attr.st_ino = de->d_ino;
				e.attr.st_mode = (mode_t)DTTOIF(de->d_type);
				in = NULL;
			}
			if (in && plus_add(&looked, in) < 0) {
				inode_unlookup(pt->inodes, in, 1);
				inode_put(pt->inodes, in);
				if (used == 0)
					rc = -ENOMEM;
				break;
			}
			fuse_add_direntry_plus(req, buf + used, size - used, de->d_name, &e,
					       de->d_off);
		} else {
			struct stat st = {
				.st_ino = de->d_ino,
				.st_mode = (mode_t)DTTOIF(de->d_type),
			};

			need = fuse_add_direntry(req, NULL, 0, de->d_name, NULL, 0);
			if (need > size - used)
				break;
			fuse_add_direntry(req, buf + used, size - used, de->d_name, &st, de->d_off);
		}
		used += need;
		d->offset = de->d_off;
		d->entry = NULL;
	}
	pthread_mutex_unlock(&d->mu);
	if (plus)
		caller_leave(pt, &c);

	if (rc < 0) {
		reply_status(req, rc);
	} else if (replied(fuse_reply_buf(req, buf, used)) == -ENOENT) {
		for (size_t i = 0; i < looked.n; i++)
			inode_unlookup(pt->inodes, looked.v[i], 1);
	}
	for (size_t i = 0; i < looked.n; i++)
		inode_put(pt->inodes, looked.v[i]);
	free(looked.v);
	inode_put(pt->inodes, dir);
	free(buf);
}

void pt_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, false);
}

void pt_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, true);
}

void pt_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dir_handle *d = dir_handle_of(fi);

	(void)ino;
	closedir(d->dp);
	pthread_mutex_destroy(&d->mu);
	free(d);
	reply_status(req, 0);
}

void pt_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
			struct fuse_file_info *fi)
{
	int fd = dirfd(dir_handle_of(fi)->dp);

	(void)ino;
	reply_status(req, rc_errno(datasync ? fdatasync(fd) : fsync(fd)));
}
