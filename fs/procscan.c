/* What other processes have open or mapped, read from /proc.
 *
 * Descriptors are matched by mount, not by path. A descriptor's readlink()
 * is the path as seen from the reading process's root, through whichever
 * bind mount it was opened: a prefix test against the mount point misses
 * bind mounts of the lockfs mount, a MOUNTPOINT given as /dev/fd/N and
 * processes in other mount namespaces. /proc/PID/fdinfo/N names the
 * descriptor's mount (mnt_id) and inode (ino); /proc/PID/mountinfo maps a
 * mnt_id to the device of its file system, which all bind mounts of one
 * FUSE mount share. Mount ids are unique on the system, and the process's
 * own table is the one that lists the mounts its descriptors came from.
 *
 * Nothing here stat()s or opens the files themselves: that would send
 * requests to the file systems they live on, lockfs included, and the
 * daemon calls this from a request thread. */
#include "procscan.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* stdio reads /proc files a page at a time by default; mount tables of
 * containers and maps of large programs run to hundreds of kilobytes. */
#define PROC_READ_BUF (16 * 1024)

/* ---- mountinfo ------------------------------------------------------------ */

/* Decodes the \ooo escapes the kernel writes for space, tab, newline and
 * backslash, in place. */
static void unescape_octal(char *s)
{
	char *o = s;

	for (char *p = s; *p; p++) {
		if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' &&
		    p[3] >= '0' && p[3] <= '7') {
			*o++ = (char)((p[1] - '0') << 6 | (p[2] - '0') << 3 | (p[3] - '0'));
			p += 3;
		} else {
			*o++ = *p;
		}
	}
	*o = '\0';
}

/* The next space-separated field of *p, cut off in place; NULL at the end.
 * The kernel separates fields with exactly one space and escapes spaces
 * inside them, so an empty field means a malformed line. */
static char *next_field(char **p)
{
	char *start = *p, *end;

	if (!start || !*start || *start == ' ' || *start == '\n')
		return NULL;
	end = start + strcspn(start, " \n");
	if (*end) {
		*end = '\0';
		*p = end + 1;
	} else {
		*p = end;
	}
	return start;
}

static int parse_ull(const char *s, int base, unsigned long long *out)
{
	char *end;

	/* strtoull() would also take blanks and a sign. */
	if (!(base == 16 ? isxdigit((unsigned char)*s) : isdigit((unsigned char)*s)))
		return -EINVAL;
	errno = 0;
	*out = strtoull(s, &end, base);
	if (errno || *end)
		return -EINVAL;
	return 0;
}

/* "major:minor" in the given base (mountinfo: 10, maps: 16). */
static int parse_dev(char *s, int base, dev_t *out)
{
	char *colon = strchr(s, ':');
	unsigned long long maj, min;

	if (!colon)
		return -EINVAL;
	*colon = '\0';
	if (parse_ull(s, base, &maj) != 0 || parse_ull(colon + 1, base, &min) != 0 ||
	    maj > UINT32_MAX || min > UINT32_MAX)
		return -EINVAL;
	*out = makedev((unsigned)maj, (unsigned)min);
	return 0;
}

/* id parent major:minor root mount-point options [optional...] - type source super-options */
int procscan_parse_mountinfo_line(char *line, struct procscan_mount *m)
{
	char *sep = strstr(line, " - "), *p = line, *f[5], *type;

	/* Escapes keep " - " out of every field, so the first one is the
	 * separator, whatever the optional fields are. */
	if (!sep)
		return -EINVAL;
	*sep = '\0';
	for (int i = 0; i < 5; i++)
		if (!(f[i] = next_field(&p)))
			return -EINVAL;
	p = sep + 3;
	if (!(type = next_field(&p)))
		return -EINVAL;
	if (parse_ull(f[0], 10, &m->id) != 0 || parse_dev(f[2], 10, &m->dev) != 0)
		return -EINVAL;
	unescape_octal(f[4]);
	unescape_octal(type);
	m->point = f[4];
	m->fstype = type;
	return 0;
}

/* Calls fn on each line of the mountinfo file at `path` until it returns
 * nonzero. 0, or -errno when the file cannot be opened (ENOENT: the process
 * is gone). */
static int each_mount(const char *path, int (*fn)(const struct procscan_mount *, void *), void *arg)
{
	char *line = NULL;
	size_t cap = 0;
	FILE *f = fopen(path, "re");

	if (!f)
		return -errno;
	setvbuf(f, NULL, _IOFBF, PROC_READ_BUF);
	while (getline(&line, &cap, f) > 0) {
		struct procscan_mount m;

		if (procscan_parse_mountinfo_line(line, &m) == 0 && fn(&m, arg))
			break;
	}
	free(line);
	fclose(f);
	return 0;
}

struct find_point {
	const char *point;
	dev_t dev;
	bool found;
};

static int match_point(const struct procscan_mount *m, void *arg)
{
	struct find_point *fp = arg;

	/* "fuse", "fuse.<subtype>" and "fuseblk". The last one wins: a mount
	 * made on top of another at the same point is listed after it. */
	if (strncmp(m->fstype, "fuse", 4) == 0 && strcmp(m->point, fp->point) == 0) {
		fp->dev = m->dev;
		fp->found = true;
	}
	return 0;
}

int procscan_mount_dev(const char *mountpoint, dev_t *out)
{
	struct find_point fp = { .point = mountpoint };
	int r;

	if (!mountpoint || mountpoint[0] != '/')
		return -EINVAL;
	r = each_mount("/proc/self/mountinfo", match_point, &fp);
	if (r < 0)
		return r;
	if (!fp.found)
		return -ENOENT;
	*out = fp.dev;
	return 0;
}

/* The mount table of one process, as (mnt_id, device) pairs, read on first
 * need and at most once per scan. */
struct mount_devs {
	struct mount_dev {
		unsigned long long id;
		dev_t dev;
	} *v;
	size_t n, cap;
	int state;              /* 1: not read yet, 0: read, -errno: failed */
};

static int add_mount(const struct procscan_mount *m, void *arg)
{
	struct mount_devs *t = arg;

	if (t->n == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 64;
		struct mount_dev *v = realloc(t->v, cap * sizeof(*v));

		if (!v) {
			t->state = -ENOMEM;
			return 1;
		}
		t->v = v;
		t->cap = cap;
	}
	t->v[t->n].id = m->id;
	t->v[t->n].dev = m->dev;
	t->n++;
	return 0;
}

/* Whether mount `id` of process tgid has device dev: 1 yes, 0 no, -ENOENT
 * when the process is gone. A mount that its table does not list (the
 * descriptor was opened before the process changed namespace, came in
 * over a socket, or belongs to a lazily unmounted tree) and a table that
 * cannot be read count as yes. */
static int mount_on_dev(pid_t tgid, struct mount_devs *t, unsigned long long id, dev_t dev)
{
	if (t->state > 0) {
		char path[48];
		int r;

		t->state = 0;
		snprintf(path, sizeof(path), "/proc/%d/mountinfo", (int)tgid);
		r = each_mount(path, add_mount, t);
		if (r < 0)
			t->state = r;
	}
	if (t->state == -ENOENT)
		return -ENOENT;
	if (t->state < 0)
		return 1;
	for (size_t i = 0; i < t->n; i++)
		if (t->v[i].id == id)
			return t->v[i].dev == dev;
	return 1;
}

/* ---- descriptors ----------------------------------------------------------- */

struct fdinfo {
	unsigned long long mnt_id, ino;
	bool has_mnt_id, has_ino;
};

/* Parses what fdinfo printed (NUL-terminated). */
static void parse_fdinfo(char *buf, struct fdinfo *fi)
{
	*fi = (struct fdinfo){ 0 };
	for (char *p = buf; p; p = strchr(p, '\n')) {
		if (*p == '\n')
			p++;
		if (strncmp(p, "mnt_id:", 7) == 0) {
			fi->mnt_id = strtoull(p + 7, NULL, 10);
			fi->has_mnt_id = true;
		} else if (strncmp(p, "ino:", 4) == 0) {
			fi->ino = strtoull(p + 4, NULL, 10);
			fi->has_ino = true;
			break;
		}
	}
}

/* "pos", "flags", "mnt_id" and "ino" come first and take well under 128
 * bytes; the kernel hands the whole text to one read(). */
#define FDINFO_BUF 256

/* Opens /proc/PID/fdinfo/<name>, reached from the fd directory fd_dir. */
static int open_fdinfo(int fd_dir, const char *name)
{
	char path[300];

	snprintf(path, sizeof(path), "../fdinfo/%s", name);
	return openat(fd_dir, path, O_RDONLY | O_CLOEXEC);
}

/* Reads an open fdinfo from its start: 1 when read, 0 when the descriptor
 * it names is closed (meanwhile, or the process is gone), -errno when it
 * cannot be read. */
static int pread_fdinfo(int fd, struct fdinfo *fi)
{
	char buf[FDINFO_BUF];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	*fi = (struct fdinfo){ 0 };
	if (n < 0)
		return errno == ENOENT || errno == ESRCH ? 0 : -errno;
	if (n == 0)
		return 0;
	buf[n] = '\0';
	parse_fdinfo(buf, fi);
	return 1;
}

/* Reads /proc/PID/fdinfo/<name> once: one openat(), one read(), one
 * close(). What pread_fdinfo returns. */
static int read_fdinfo(int fd_dir, const char *name, struct fdinfo *fi)
{
	int fd = open_fdinfo(fd_dir, name), r;

	*fi = (struct fdinfo){ 0 };
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	r = pread_fdinfo(fd, fi);
	close(fd);
	return r;
}

/* Whether a descriptor whose fdinfo said fi is on (dev, ino): 1 yes, 0 no,
 * -ENOENT when the process is gone. */
static int fdinfo_on(pid_t tgid, struct mount_devs *mounts, const struct fdinfo *fi,
		     dev_t dev, ino_t ino)
{
	if (fi->has_ino && fi->ino != (unsigned long long)ino)
		return 0;
	if (dev == 0 || !fi->has_mnt_id)
		return 1;
	return mount_on_dev(tgid, mounts, fi->mnt_id, dev);
}

/* Directory entries of /proc/PID/fd read per getdents64(): each takes 24
 * bytes for descriptor numbers below 100000, so one call lists more than
 * FD_SCAN_MAX-sized tables (the caller's limit) whole. */
#define FD_LIST_BUF 8192

/* Cost. Per call: open() and fstat() of /proc/PID/fd, one getdents64() per
 * FD_LIST_BUF of entries (a second, empty one only when the kernel gives no
 * count, before 6.2, or the table grew meanwhile), the close(); and one read
 * of /proc/PID/mountinfo (open, a read per 16 KiB, close) only if some
 * descriptor has the inode number and dev is known. Per descriptor: one
 * readlinkat() for sockets, pipes, anonymous inodes and the other pseudo
 * files (their link text does not start with '/'), and four for the rest
 * (readlinkat, then openat, read and close of its fdinfo, reached from the
 * fd directory as ../fdinfo/N so that no second directory is opened).
 * Without the readlinkat() every descriptor would cost three; it pays off
 * when most of them are not files, as in servers, and costs one extra for
 * files.
 *
 * Kernels before 5.14 print no "ino:" in fdinfo: any descriptor of the
 * mount then counts as the file (all of them when dev is 0), so a lock
 * waits for RELEASE rather than go too early. */
bool procscan_has_fd_on(pid_t tgid, dev_t dev, ino_t ino, unsigned max_fds)
{
	struct mount_devs mounts = { .state = 1 };
	char path[48], buf[FD_LIST_BUF] __attribute__((aligned(8)));
	unsigned long long count = 0;
	struct stat st;
	unsigned seen = 0;
	bool found = false, done = false;
	int dfd;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)tgid);
	dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return errno != ENOENT; /* gone: nothing left open */
	/* The kernel gives the descriptor count as the directory's size
	 * (Linux >= 6.2; 0 before, where the count below takes over). */
	if (fstat(dfd, &st) == 0) {
		count = (unsigned long long)st.st_size;
		if (count > max_fds) {
			close(dfd);
			return true;
		}
	}
	while (!found && !done) {
		ssize_t n = getdents64(dfd, buf, sizeof(buf));

		if (n < 0) {
			found = errno != ENOENT;
			break;
		}
		if (n == 0)
			break;
		for (ssize_t off = 0; off < n && !found;) {
			struct dirent64 *de = (struct dirent64 *)(buf + off);
			struct fdinfo fi;
			char link[16];
			ssize_t k;
			int r;

			off += de->d_reclen;
			if (de->d_name[0] == '.')
				continue;
			if (++seen > max_fds) {
				found = true;
				break;
			}
			/* Only the first byte matters: files print an absolute
			 * path, "socket:[N]", "pipe:[N]", "anon_inode:[...]",
			 * "net:[N]" and the like do not. A short buffer
			 * truncates, it does not fail. */
			k = readlinkat(dfd, de->d_name, link, sizeof(link));
			if (k > 0 && link[0] != '/')
				continue;
			if (k < 0 && errno == ENOENT)
				continue; /* closed meanwhile */
			r = read_fdinfo(dfd, de->d_name, &fi);
			if (r == 0)
				continue;
			if (r < 0) {
				found = true;
				break;
			}
			r = fdinfo_on(tgid, &mounts, &fi, dev, ino);
			if (r < 0) {
				done = true; /* gone */
				break;
			}
			found = r > 0;
		}
		/* Every descriptor the count announced was listed: the call
		 * that would return nothing is spared. */
		if (count > 0 && seen >= count)
			done = true;
	}
	close(dfd);
	free(mounts.v);
	return found;
}

/* ---- probes kept between calls -------------------------------------------- */

/* Processes whose probes are kept, and processes remembered as asked about
 * once (a process that closes one file, like cat, never gets probes). */
#define PROBE_PROCS 2
#define PROBE_SEEN 8

struct probe_slot {
	int num;                /* the descriptor number in the process */
	int fd;                 /* its /proc/PID/fdinfo/N */
	unsigned listed;        /* the scan that last listed num */
};

struct probe_proc {
	pid_t tgid;             /* 0: unused */
	bool busy;              /* a scan has it (outside the mutex) */
	int dir;                /* /proc/PID/fd, -1 until opened */
	unsigned nslots, scan;
	uint64_t used;          /* for least-recently-used reuse */
	struct probe_slot *slots;   /* cap of them */
};

struct procscan_probes {
	pthread_mutex_t mu;     /* protects everything below */
	unsigned cap;           /* slots per process; 0: keeping is off */
	uint64_t clock;
	pid_t seen[PROBE_SEEN];
	unsigned seen_next;
	struct probe_proc procs[PROBE_PROCS];
};

int procscan_probes_new(struct procscan_probes **out, unsigned max_probe_fds)
{
	struct procscan_probes *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	pthread_mutex_init(&p->mu, NULL);
	/* Each process kept also holds its fd directory. */
	p->cap = max_probe_fds >= 16 ? max_probe_fds / PROBE_PROCS - 1 : 0;
	for (unsigned i = 0; i < PROBE_PROCS && p->cap; i++) {
		p->procs[i].dir = -1;
		p->procs[i].slots = calloc(p->cap, sizeof(struct probe_slot));
		if (!p->procs[i].slots) {
			procscan_probes_free(p);
			return -ENOMEM;
		}
	}
	*out = p;
	return 0;
}

/* Closes what a record holds and empties it. */
static void probe_proc_clear(struct probe_proc *pp)
{
	for (unsigned i = 0; i < pp->nslots; i++)
		close(pp->slots[i].fd);
	if (pp->dir >= 0)
		close(pp->dir);
	pp->dir = -1;
	pp->nslots = 0;
	pp->tgid = 0;
}

void procscan_probes_free(struct procscan_probes *p)
{
	if (!p)
		return;
	for (unsigned i = 0; i < PROBE_PROCS; i++) {
		if (p->procs[i].slots)
			probe_proc_clear(&p->procs[i]);
		free(p->procs[i].slots);
	}
	pthread_mutex_destroy(&p->mu);
	free(p);
}

/* The record for tgid, taken (busy) for the caller; NULL when the process
 * was not asked about before, or its record is in use. A record reused for
 * another process is emptied after the mutex is dropped: taken (busy), it
 * belongs to the caller alone. */
static struct probe_proc *probe_take(struct procscan_probes *p, pid_t tgid)
{
	struct probe_proc *pp = NULL, *victim = NULL;
	bool seen = false;

	pthread_mutex_lock(&p->mu);
	for (unsigned i = 0; i < PROBE_PROCS; i++) {
		struct probe_proc *c = &p->procs[i];

		if (c->tgid == tgid) {
			pp = c->busy ? NULL : c;
			if (pp)
				pp->busy = true;
			pthread_mutex_unlock(&p->mu);
			return pp;
		}
		if (!c->busy && (!victim || c->used < victim->used))
			victim = c;
	}
	for (unsigned i = 0; i < PROBE_SEEN; i++)
		seen |= p->seen[i] == tgid;
	if (!seen) {
		p->seen[p->seen_next++ % PROBE_SEEN] = tgid;
		victim = NULL;
	}
	if (victim) {
		victim->busy = true;
		victim->used = ++p->clock;
	}
	pthread_mutex_unlock(&p->mu);
	if (victim) {
		/* Busy: nobody else touches it while it is emptied. */
		probe_proc_clear(victim);
		victim->tgid = tgid;
	}
	return victim;
}

static void probe_give_back(struct procscan_probes *p, struct probe_proc *pp, bool drop)
{
	if (drop)
		probe_proc_clear(pp);
	pthread_mutex_lock(&p->mu);
	pp->busy = false;
	pp->used = ++p->clock;
	pthread_mutex_unlock(&p->mu);
}

/* The slot kept for descriptor num, made when there is room (taking that of
 * a descriptor no longer listed); NULL when there is none or its fdinfo
 * cannot be opened (*err then says why, 0 for "closed meanwhile"). */
static struct probe_slot *probe_slot(struct probe_proc *pp, unsigned cap, int num,
				     const char *name, int *err)
{
	struct probe_slot *sl = NULL;
	int fd;

	*err = 0;
	for (unsigned i = 0; i < pp->nslots; i++) {
		if (pp->slots[i].num == num) {
			pp->slots[i].listed = pp->scan;
			return &pp->slots[i];
		}
		/* A number listed by the last scan may come further on in
		 * this one: only older ones give up their slot. */
		if (!sl && pp->slots[i].listed + 1 < pp->scan)
			sl = &pp->slots[i];
	}
	if (pp->nslots < cap)
		sl = &pp->slots[pp->nslots];
	if (!sl) {
		*err = -ENOSPC;
		return NULL;
	}
	fd = open_fdinfo(pp->dir, name);
	if (fd < 0) {
		*err = errno == ENOENT ? 0 : -errno;
		return NULL;
	}
	if (sl == &pp->slots[pp->nslots])
		pp->nslots++;
	else
		close(sl->fd);
	sl->num = num;
	sl->fd = fd;
	sl->listed = pp->scan;
	return sl;
}

enum probe_result { PROBE_NO, PROBE_YES, PROBE_GONE, PROBE_ASK_AGAIN };

/* procscan_has_fd_on with the record's descriptors. Every descriptor is
 * read through its fdinfo, without the readlinkat() that sorts out pseudo
 * files first: fdinfo prints their inode number too, and only one that
 * matches (a pipe or socket numbered like the file) is looked at again. */
static enum probe_result probe_scan(struct probe_proc *pp, unsigned cap, pid_t tgid,
				    dev_t dev, ino_t ino, unsigned max_fds)
{
	struct mount_devs mounts = { .state = 1 };
	char buf[FD_LIST_BUF] __attribute__((aligned(8)));
	enum probe_result res = PROBE_NO;
	unsigned long long count = 0;
	unsigned seen = 0;
	struct stat st;
	bool done = false;

	if (pp->dir < 0) {
		char path[48];

		snprintf(path, sizeof(path), "/proc/%d/fd", (int)tgid);
		pp->dir = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (pp->dir < 0)
			return errno == ENOENT ? PROBE_GONE : PROBE_ASK_AGAIN;
	} else if (lseek(pp->dir, 0, SEEK_SET) < 0) {
		return PROBE_ASK_AGAIN;
	}
	pp->scan++;
	if (fstat(pp->dir, &st) < 0)
		return errno == ENOENT || errno == ESRCH ? PROBE_GONE : PROBE_ASK_AGAIN;
	count = (unsigned long long)st.st_size;
	if (count > max_fds)
		return PROBE_YES;
	while (res == PROBE_NO && !done) {
		ssize_t n = getdents64(pp->dir, buf, sizeof(buf));

		if (n < 0) {
			res = errno == ENOENT || errno == ESRCH ? PROBE_GONE : PROBE_ASK_AGAIN;
			break;
		}
		if (n == 0)
			break;
		for (ssize_t off = 0; off < n && res == PROBE_NO;) {
			struct dirent64 *de = (struct dirent64 *)(buf + off);
			struct probe_slot *sl;
			struct fdinfo fi;
			char link[16];
			int r, err;

			off += de->d_reclen;
			if (de->d_name[0] == '.')
				continue;
			if (++seen > max_fds) {
				res = PROBE_YES;
				break;
			}
			sl = probe_slot(pp, cap, atoi(de->d_name), de->d_name, &err);
			if (sl)
				r = pread_fdinfo(sl->fd, &fi);
			else if (err == -ENOSPC)
				r = read_fdinfo(pp->dir, de->d_name, &fi);
			else
				r = err;
			if (r == 0)
				continue; /* closed meanwhile */
			if (r < 0 || !fi.has_ino) {
				/* No descriptors left, or a kernel before 5.14:
				 * the full scan decides. */
				res = PROBE_ASK_AGAIN;
				break;
			}
			if (fi.ino != (unsigned long long)ino)
				continue;
			if (readlinkat(pp->dir, de->d_name, link, sizeof(link)) > 0 &&
			    link[0] != '/')
				continue;
			r = fdinfo_on(tgid, &mounts, &fi, dev, ino);
			res = r < 0 ? PROBE_GONE : r > 0 ? PROBE_YES : PROBE_NO;
		}
		if (count > 0 && seen >= count)
			done = true;
	}
	free(mounts.v);
	return res;
}

bool procscan_probe_has_fd_on(struct procscan_probes *p, pid_t tgid, dev_t dev, ino_t ino,
			      unsigned max_fds)
{
	struct probe_proc *pp = p && p->cap ? probe_take(p, tgid) : NULL;
	enum probe_result res;

	if (!pp)
		return procscan_has_fd_on(tgid, dev, ino, max_fds);
	res = probe_scan(pp, p->cap, tgid, dev, ino, max_fds);
	probe_give_back(p, pp, res == PROBE_GONE || res == PROBE_ASK_AGAIN);
	if (res == PROBE_ASK_AGAIN)
		return procscan_has_fd_on(tgid, dev, ino, max_fds);
	return res == PROBE_YES;
}

/* ---- mappings -------------------------------------------------------------- */

/* start-end perms offset dev inode [path]; dev is hex "major:minor". */
bool procscan_maps_line_matches(const char *line, dev_t dev, ino_t ino)
{
	const char *perms = strchr(line, ' ');
	char devs[32];
	unsigned long long inode;
	dev_t d;

	/* Most mappings are private: look at the permissions before parsing. */
	if (!perms || strlen(perms) < 5 || perms[2] != 'w' || perms[4] != 's')
		return false;
	if (sscanf(perms, " %*s %*s %31s %llu", devs, &inode) != 2 ||
	    inode != (unsigned long long)ino)
		return false;
	if (dev == 0)
		return true;
	return parse_dev(devs, 16, &d) == 0 && d == dev;
}

bool procscan_mapped_writable(pid_t tgid, dev_t dev, ino_t ino)
{
	char path[32], *line = NULL;
	size_t cap = 0;
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)tgid);
	f = fopen(path, "re");
	if (!f)
		return false;
	setvbuf(f, NULL, _IOFBF, PROC_READ_BUF);
	while (!found && getline(&line, &cap, f) > 0)
		found = procscan_maps_line_matches(line, dev, ino);
	free(line);
	fclose(f);
	return found;
}

/* ---- whether a program is at work --------------------------------------- */

/* Reads a small /proc file whole into buf (NUL-terminated); its length, or
 * -1 when it cannot be read. */
static ssize_t read_small(const char *path, char *buf, size_t size)
{
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return n;
}

long procscan_running_tasks(void)
{
	char buf[128];
	const char *p = buf;
	long running = 0;

	if (read_small("/proc/loadavg", buf, sizeof(buf)) <= 0)
		return 0;
	/* "0.52 0.58 0.59 3/412 12345": the fourth field is running/total. */
	for (int i = 0; i < 3 && p; i++) {
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	if (!p || sscanf(p, "%ld/", &running) != 1)
		return 0;
	return running;
}

/* State R or D in /proc/TID/stat. */
static bool task_active(pid_t tid)
{
	char path[64], buf[512];
	const char *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)tid);
	if (read_small(path, buf, sizeof(buf)) <= 0)
		return false;
	/* The name in parentheses may hold anything: the state follows the
	 * last ')'. */
	p = strrchr(buf, ')');
	return p && p[1] == ' ' && (p[2] == 'R' || p[2] == 'D');
}

bool procscan_program_active(pid_t pid, pid_t tid)
{
	char path[96], buf[1024];
	unsigned looked = 0;
	struct dirent *de;
	DIR *d;

	if (task_active(tid))
		return true;
	/* A runtime may have handed the flow to another thread. */
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (d) {
		while ((de = readdir(d)) != NULL && looked < 64) {
			pid_t t = (pid_t)atoi(de->d_name);

			if (t <= 0 || t == tid)
				continue;
			looked++;
			if (task_active(t)) {
				closedir(d);
				return true;
			}
		}
		closedir(d);
	}
	/* The shell of `n=$(timeout 60 cat f)` sleeps in read() while timeout,
	 * which holds the lease's next hop, still has to run. */
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid, (int)tid);
	if (read_small(path, buf, sizeof(buf)) <= 0)
		return false;
	for (char *p = buf, *end; *p && looked < 64; p = end) {
		long c = strtol(p, &end, 10);

		if (end == p)
			break;
		looked++;
		if (c > 0 && task_active((pid_t)c))
			return true;
	}
	return false;
}
