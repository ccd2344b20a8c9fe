/* Unit tests for the inode table (fs/inode.c): no FUSE, real files in a
 * temporary directory where descriptors matter. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "inode.h"

struct fixture {
	char dir[64];
	int dir_fd;
	struct inode_table *t;
	bool skip;
};

static int setup(void **state, bool names)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	strcpy(f->dir, "/tmp/lockfs-inode-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->dir_fd = open(f->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	assert_true(f->dir_fd >= 0);
	assert_int_equal(inode_table_new(&f->t, f->dir_fd, names), 0);
	*state = f;
	return 0;
}

static int setup_plain(void **state) { return setup(state, false); }
static int setup_names(void **state) { return setup(state, true); }

#define SMALL_CACHE 8

/* Handles and a cache of SMALL_CACHE descriptors; needs
 * CAP_DAC_READ_SEARCH and a source with file handles. */
static int setup_handles(void **state)
{
	struct fixture *f;
	int rc;

	setup(state, true);
	f = *state;
	rc = inode_table_use_handles(f->t, SMALL_CACHE);
	if (rc == -EPERM || rc == -EOPNOTSUPP) {
		fprintf(stderr, "no file handles here (%s): handle tests skipped\n", strerror(-rc));
		f->skip = true;
		return 0;
	}
	assert_int_equal(rc, 0);
	assert_true(inode_table_has_handles(f->t));
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	inode_table_free(f->t);
	close(f->dir_fd);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* Creates a file in the fixture directory; returns an O_PATH fd on it. */
static int make_file(struct fixture *f, const char *name, struct stat *st)
{
	int fd = openat(f->dir_fd, name, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	close(fd);
	fd = openat(f->dir_fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, st), 0);
	return fd;
}

static bool fd_is_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

static void test_root(void **state)
{
	struct fixture *f = *state;
	struct inode *root = inode_root(f->t);
	struct stat st;

	assert_int_equal(fstat(f->dir_fd, &st), 0);
	assert_int_equal(root->nodeid, INODE_ROOT_ID);
	assert_int_equal(root->ino, st.st_ino);
	assert_int_equal(root->dev, st.st_dev);
	assert_true(S_ISDIR(root->type));
	/* The table works on its own copy of the descriptor. */
	assert_int_not_equal(root->fd, f->dir_fd);
	assert_ptr_equal(inode_get(f->t, INODE_ROOT_ID), root);
	inode_put(f->t, root);
	/* Forgetting the root more often than it was looked up keeps it. */
	inode_forget(f->t, INODE_ROOT_ID, 5);
	assert_ptr_equal(inode_get(f->t, INODE_ROOT_ID), root);
	inode_put(f->t, root);
	assert_int_equal(inode_count(f->t), 1);
}

static void test_insert_find_forget(void **state)
{
	struct fixture *f = *state;
	struct inode *root = inode_root(f->t), *a, *a2, *b, *got;
	struct stat sa, sb;
	int fa = make_file(f, "a", &sa), fb = make_file(f, "b", &sb);
	int fa2;

	/* Unknown and no descriptor: the caller must open it. */
	assert_int_equal(inode_lookup(f->t, root, "a", &sa, -1, &a), -ENOENT);
	assert_int_equal(inode_count(f->t), 1);

	assert_int_equal(inode_lookup(f->t, root, "a", &sa, fa, &a), 0);
	assert_int_equal(inode_lookup(f->t, root, "b", &sb, fb, &b), 0);
	assert_int_equal(inode_count(f->t), 3);
	assert_int_equal(a->fd, fa);
	assert_int_not_equal(a->nodeid, b->nodeid);
	assert_int_not_equal(a->nodeid, INODE_ROOT_ID);
	assert_int_equal(a->key, inode_lock_key(sa.st_dev, sa.st_ino));
	assert_true(S_ISREG(a->type));
	assert_int_equal(inode_nlookup(f->t, a), 1);
	assert_int_equal(inode_refs(f->t, a), 1);

	/* Known: found without a descriptor, and a redundant one is closed. */
	assert_int_equal(inode_lookup(f->t, root, "a", &sa, -1, &a2), 0);
	assert_ptr_equal(a2, a);
	fa2 = openat(f->dir_fd, "a", O_PATH | O_CLOEXEC);
	assert_true(fa2 >= 0);
	assert_int_equal(inode_lookup(f->t, root, "a", &sa, fa2, &a2), 0);
	assert_ptr_equal(a2, a);
	assert_false(fd_is_open(fa2));
	assert_true(fd_is_open(fa));
	assert_int_equal(inode_nlookup(f->t, a), 3);
	assert_int_equal(inode_refs(f->t, a), 3);
	inode_put(f->t, a);
	inode_put(f->t, a);
	inode_put(f->t, a);
	assert_int_equal(inode_refs(f->t, a), 0);

	got = inode_get(f->t, a->nodeid);
	assert_ptr_equal(got, a);
	got = inode_find(f->t, sa.st_dev, sa.st_ino);
	assert_ptr_equal(got, a);
	assert_null(inode_find(f->t, sa.st_dev, sa.st_ino + 1000000));
	assert_null(inode_get(f->t, 987654321));
	assert_int_equal(inode_refs(f->t, a), 2);

	/* The kernel forgets every lookup while references remain: the entry
	 * stays until the last reference goes. */
	uint64_t id = a->nodeid;
	inode_forget(f->t, id, 3);
	assert_ptr_equal(inode_get(f->t, id), a);
	inode_put(f->t, a);
	inode_put(f->t, a);
	assert_true(fd_is_open(fa));
	inode_put(f->t, a);
	assert_null(inode_get(f->t, id));
	assert_null(inode_find(f->t, sa.st_dev, sa.st_ino));
	assert_false(fd_is_open(fa));
	assert_int_equal(inode_count(f->t), 2);

	/* References gone first, then lookups. */
	inode_put(f->t, b);
	assert_true(fd_is_open(fb));
	inode_forget(f->t, b->nodeid, 1);
	assert_false(fd_is_open(fb));
	assert_int_equal(inode_count(f->t), 1);

	/* A forgotten inode comes back under a new node id: ids are never
	 * reused, so a stale id cannot reach another file. */
	fa = openat(f->dir_fd, "a", O_PATH | O_CLOEXEC);
	assert_int_equal(inode_lookup(f->t, root, "a", &sa, fa, &a2), 0);
	assert_int_not_equal(a2->nodeid, id);
	assert_null(inode_get(f->t, id));
	inode_put(f->t, a2);
	inode_unlookup(f->t, a2, 1);
	assert_int_equal(inode_count(f->t), 1);
}

static void test_unlinked_and_stamps(void **state)
{
	struct fixture *f = *state;
	struct inode *a;
	struct stat st, st2;
	int fd = make_file(f, "s", &st), wfd;

	assert_int_equal(inode_lookup(f->t, inode_root(f->t), "s", &st, fd, &a), 0);
	assert_false(inode_is_unlinked(f->t, a));
	inode_mark_unlinked(f->t, a);
	assert_true(inode_is_unlinked(f->t, a));

	/* The stamp starts as the attributes the entry was created with. */
	assert_true(inode_stamp_update(f->t, a, &st));
	assert_true(inode_stamp_update(f->t, a, &st));

	/* A change of size is noticed once, then becomes the new stamp. */
	wfd = openat(f->dir_fd, "s", O_WRONLY | O_APPEND | O_CLOEXEC);
	assert_true(wfd >= 0);
	assert_int_equal(write(wfd, "xyz", 3), 3);
	close(wfd);
	assert_int_equal(fstat(a->fd, &st2), 0);
	assert_int_equal(st2.st_size, 3);
	assert_false(inode_stamp_update(f->t, a, &st2));
	assert_true(inode_stamp_update(f->t, a, &st2));

	/* Same size, different times. */
	st2.st_mtim.tv_nsec ^= 1;
	assert_false(inode_stamp_update(f->t, a, &st2));
	st2.st_ctim.tv_sec += 1;
	assert_false(inode_stamp_update(f->t, a, &st2));
	inode_stamp_set(f->t, a, &st);
	assert_true(inode_stamp_update(f->t, a, &st));

	inode_put(f->t, a);
	inode_forget(f->t, a->nodeid, 1);
}

static struct stat fake_stat(dev_t dev, ino_t ino, mode_t type)
{
	struct stat st;

	memset(&st, 0, sizeof(st));
	st.st_dev = dev;
	st.st_ino = ino;
	st.st_mode = type | 0644;
	return st;
}

static void test_growth(void **state)
{
	struct fixture *f = *state;
	const size_t n = 100000;
	struct inode **ins = calloc(n, sizeof(*ins));
	size_t buckets0 = inode_buckets(f->t);

	assert_non_null(ins);
	for (size_t i = 0; i < n; i++) {
		/* Two devices with overlapping inode numbers. */
		struct stat st = fake_stat(7 + (i & 1), 1000 + i / 2, S_IFREG);

		assert_int_equal(inode_lookup(f->t, NULL, NULL, &st, INODE_NO_FD, &ins[i]), 0);
	}
	assert_int_equal(inode_count(f->t), n + 1);
	/* The tables grew with the entries: chains stay short (at most two
	 * entries per bucket on average). */
	assert_true(inode_buckets(f->t) * 2 >= n);
	assert_true(inode_buckets(f->t) > buckets0);
	for (size_t i = 0; i < n; i++) {
		struct inode *in = inode_find(f->t, 7 + (i & 1), 1000 + i / 2);

		assert_ptr_equal(in, ins[i]);
		assert_ptr_equal(inode_get(f->t, ins[i]->nodeid), ins[i]);
		assert_int_equal(in->ino, 1000 + i / 2);
		inode_put(f->t, in);
		inode_put(f->t, in);
	}
	/* Every node id is distinct. */
	for (size_t i = 1; i < n; i++)
		assert_true(ins[i]->nodeid > ins[i - 1]->nodeid);
	/* Half of them go away; the others are still found. */
	for (size_t i = 0; i < n; i += 2) {
		inode_put(f->t, ins[i]);
		inode_forget(f->t, ins[i]->nodeid, 1);
	}
	assert_int_equal(inode_count(f->t), n / 2 + 1);
	for (size_t i = 0; i < n; i++) {
		struct inode *in = inode_find(f->t, 7 + (i & 1), 1000 + i / 2);

		if (i % 2 == 0) {
			assert_null(in);
		} else {
			assert_ptr_equal(in, ins[i]);
			inode_put(f->t, in);
			inode_put(f->t, in);
			inode_forget(f->t, ins[i]->nodeid, 1);
		}
	}
	assert_int_equal(inode_count(f->t), 1);
	free(ins);
}

/* Builds a fake tree and returns entries by name. */
static struct inode *add(struct fixture *f, struct inode *parent, const char *name,
			 ino_t ino, mode_t type)
{
	struct stat st = fake_stat(99, ino, type);
	struct inode *in;

	assert_int_equal(inode_lookup(f->t, parent, name, &st, INODE_NO_FD, &in), 0);
	inode_put(f->t, in);
	return in;
}

static void assert_path(struct fixture *f, struct inode *in, const char *want)
{
	char buf[256];

	assert_int_equal(inode_path(f->t, in, buf, sizeof(buf)), 0);
	assert_string_equal(buf, want);
}

static void test_paths(void **state)
{
	struct fixture *f = *state;
	struct inode *root = inode_root(f->t);
	struct inode *d1 = add(f, root, "d1", 10, S_IFDIR);
	struct inode *d2 = add(f, d1, "d2", 11, S_IFDIR);
	struct inode *x = add(f, d2, "x.txt", 12, S_IFREG);
	struct inode *e = add(f, root, "e", 13, S_IFDIR);
	char buf[256];

	assert_path(f, root, "");
	assert_path(f, d1, "d1");
	assert_path(f, x, "d1/d2/x.txt");
	assert_int_equal(inode_child_path(f->t, d2, "new", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "d1/d2/new");
	assert_int_equal(inode_child_path(f->t, root, "top", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "top");

	/* Too small a buffer. */
	assert_int_equal(inode_path(f->t, x, buf, strlen("d1/d2/x.txt")), -ENAMETOOLONG);
	assert_int_equal(inode_path(f->t, x, buf, strlen("d1/d2/x.txt") + 1), 0);

	/* Rename the file, then a directory above it. */
	assert_int_equal(inode_set_name(f->t, x, d2, "y.txt"), 0);
	assert_path(f, x, "d1/d2/y.txt");
	assert_int_equal(inode_set_name(f->t, d2, e, "moved"), 0);
	assert_path(f, x, "e/moved/y.txt");
	assert_path(f, d2, "e/moved");

	/* A lookup under another name (a hard link) records the latest. */
	add(f, d1, "link", 12, S_IFREG);
	assert_path(f, x, "d1/link");

	/* d2 moved away from d1 and dropped its reference; x now keeps d1
	 * (its parent through the link), d2 keeps e. */
	assert_int_equal(inode_refs(f->t, d1), 1);
	assert_int_equal(inode_refs(f->t, e), 1);

	/* A record that would make a directory its own ancestor is refused. */
	assert_int_equal(inode_set_name(f->t, e, d2, "loop"), 0);
	assert_path(f, e, "e");
	assert_path(f, x, "d1/link");

	/* Parents are kept alive by their children and freed after them. */
	uint64_t d1_id = d1->nodeid, x_id = x->nodeid;
	inode_forget(f->t, d1_id, 1);
	assert_ptr_equal(inode_get(f->t, d1_id), d1);
	inode_put(f->t, d1);
	inode_forget(f->t, x_id, 2);
	assert_null(inode_get(f->t, x_id));
	assert_null(inode_get(f->t, d1_id));
	inode_forget(f->t, d2->nodeid, 1);
	inode_forget(f->t, e->nodeid, 1);
	assert_int_equal(inode_count(f->t), 1);
}

static void test_paths_untracked(void **state)
{
	struct fixture *f = *state;
	struct inode *d = add(f, inode_root(f->t), "d", 20, S_IFDIR);
	char buf[64];

	/* Without a policy nothing is recorded, and no parent is pinned. */
	assert_int_equal(inode_path(f->t, d, buf, sizeof(buf)), -ENOENT);
	assert_null(d->name);
	assert_null(d->parent);
	assert_int_equal(inode_refs(f->t, inode_root(f->t)), 1);
	inode_forget(f->t, d->nodeid, 1);
	assert_int_equal(inode_count(f->t), 1);
}

static void test_unknown_name(void **state)
{
	struct fixture *f = *state;
	struct inode *orphan = add(f, NULL, NULL, 30, S_IFREG);
	char buf[64];

	assert_int_equal(inode_path(f->t, orphan, buf, sizeof(buf)), -ENOENT);
	inode_forget(f->t, orphan->nodeid, 1);
}

static void test_lock_key(void **state)
{
	const uint64_t golden = 0x9E3779B97F4A7C15ull;
	(void)state;

	/* Within one device, different inodes give different keys. */
	for (dev_t dev = 0; dev < 4; dev++) {
		lt_file_t prev = 0;

		for (ino_t ino = 1; ino < 20000; ino++) {
			lt_file_t k = inode_lock_key(dev, ino);

			assert_int_not_equal(k, 0);
			assert_int_not_equal(k, prev);
			assert_int_equal(k, inode_lock_key(dev, ino));
			prev = k;
		}
	}
	/* Injective on a sample of one device, checked exhaustively. */
	{
		enum { N = 4096 };
		lt_file_t *keys = calloc(N, sizeof(*keys));

		assert_non_null(keys);
		for (int i = 0; i < N; i++)
			keys[i] = inode_lock_key(0x803, (ino_t)i * 7919 + 1);
		for (int i = 0; i < N; i++)
			for (int j = i + 1; j < N; j++)
				assert_int_not_equal(keys[i], keys[j]);
		free(keys);
	}
	/* The inode whose number cancels the device mix still gets a
	 * non-zero key, distinct from its neighbours. */
	for (dev_t dev = 1; dev < 100; dev++) {
		ino_t ino = (ino_t)(dev * golden);
		lt_file_t k = inode_lock_key(dev, ino);

		assert_int_not_equal(k, 0);
		assert_int_not_equal(k, inode_lock_key(dev, ino + 1));
		assert_int_not_equal(k, inode_lock_key(dev, ino - 1));
		assert_int_not_equal(k, inode_lock_key(dev, 1));
	}
	/* The device matters: the same inode number on two devices. */
	assert_int_not_equal(inode_lock_key(1, 42), inode_lock_key(2, 42));
	assert_int_not_equal(inode_lock_key(0x801, 2), inode_lock_key(0x802, 2));
}

struct hook_log {
	int calls;
	lt_file_t keys[8];
	bool fd_open[8];
};

static void record_free(void *arg, struct inode *in)
{
	struct hook_log *log = arg;

	if (log->calls < 8) {
		log->keys[log->calls] = in->key;
		log->fd_open[log->calls] = fd_is_open(in->fd);
	}
	log->calls++;
}

static void test_free_hook(void **state)
{
	struct fixture *f = *state;
	struct hook_log log = { 0 };
	struct inode *root = inode_root(f->t), *a, *d, *x;
	struct stat sa, sd, sx;
	int fa = make_file(f, "h", &sa), fd, fx;

	inode_table_set_free_hook(f->t, record_free, &log);
	assert_int_equal(inode_lookup(f->t, root, "h", &sa, fa, &a), 0);
	inode_put(f->t, a);
	/* Still looked up: nothing is freed. */
	assert_int_equal(log.calls, 0);
	inode_forget(f->t, a->nodeid, 1);
	/* Told once, while the descriptor still pinned the inode. */
	assert_int_equal(log.calls, 1);
	assert_int_equal(log.keys[0], inode_lock_key(sa.st_dev, sa.st_ino));
	assert_true(log.fd_open[0]);
	assert_false(fd_is_open(fa));

	/* A cascade: the parent goes with its last child, each told once. */
	assert_int_equal(mkdirat(f->dir_fd, "hd", 0755), 0);
	fd = openat(f->dir_fd, "hd", O_PATH | O_CLOEXEC);
	assert_int_equal(fstat(fd, &sd), 0);
	fx = openat(f->dir_fd, "h", O_PATH | O_CLOEXEC);
	assert_int_equal(fstat(fx, &sx), 0);
	assert_int_equal(inode_lookup(f->t, root, "hd", &sd, fd, &d), 0);
	inode_put(f->t, d);
	assert_int_equal(inode_lookup(f->t, d, "h", &sx, fx, &x), 0);
	inode_put(f->t, x);
	inode_forget(f->t, d->nodeid, 1);
	if (inode_tracks_names(f->t)) {
		/* x names d as its parent: d stays until x goes. */
		assert_int_equal(log.calls, 1);
		inode_forget(f->t, x->nodeid, 1);
		assert_int_equal(log.calls, 3);
		lt_file_t kx = inode_lock_key(sx.st_dev, sx.st_ino);
		lt_file_t kd = inode_lock_key(sd.st_dev, sd.st_ino);
		assert_true((log.keys[1] == kx && log.keys[2] == kd) ||
			    (log.keys[1] == kd && log.keys[2] == kx));
		assert_true(log.fd_open[1] && log.fd_open[2]);
	} else {
		assert_int_equal(log.calls, 2);
		assert_int_equal(log.keys[1], inode_lock_key(sd.st_dev, sd.st_ino));
		inode_forget(f->t, x->nodeid, 1);
		assert_int_equal(log.calls, 3);
		assert_int_equal(log.keys[2], inode_lock_key(sx.st_dev, sx.st_ino));
	}
	assert_int_equal(inode_count(f->t), 1);
}

struct race_arg {
	struct inode_table *t;
	int id;
};

static void *racer(void *p)
{
	struct race_arg *a = p;

	for (int round = 0; round < 2000; round++) {
		for (int i = 0; i < 16; i++) {
			struct stat st = fake_stat(5, 100 + i, S_IFREG);
			struct inode *in;

			if (inode_lookup(a->t, NULL, NULL, &st, INODE_NO_FD, &in) != 0)
				return (void *)1;
			inode_put(a->t, in);
			inode_forget(a->t, in->nodeid, 1);
		}
	}
	return NULL;
}

static void test_concurrent(void **state)
{
	struct fixture *f = *state;
	pthread_t th[4];
	struct race_arg args[4];

	for (int i = 0; i < 4; i++) {
		args[i] = (struct race_arg){ f->t, i };
		assert_int_equal(pthread_create(&th[i], NULL, racer, &args[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		void *rv;

		assert_int_equal(pthread_join(th[i], &rv), 0);
		assert_null(rv);
	}
	/* Every lookup was forgotten: only the root is left. */
	assert_int_equal(inode_count(f->t), 1);
}

/* ---- handles and the descriptor cache ----------------------------------- */

static unsigned open_fds(void)
{
	unsigned n = 0;

	for (int fd = 0; fd < 4096; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			n++;
	return n;
}

static void touch(struct fixture *f, const char *name, const char *content)
{
	int fd = openat(f->dir_fd, name, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	close(fd);
}

/* What the pinned descriptor of `in` reads, through a reopen as the
 * passthrough does it. */
static void read_through(struct fixture *f, struct inode *in, char *buf, size_t size)
{
	char path[64];
	int fd = inode_fd_get(f->t, in), rfd;
	ssize_t n;

	assert_true(fd >= 0);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	rfd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(rfd >= 0);
	n = read(rfd, buf, size - 1);
	assert_true(n >= 0);
	buf[n] = '\0';
	close(rfd);
	inode_fd_put(f->t, in, fd);
}

/* Many entries, a few descriptors: each entry still reaches its own inode. */
static void test_handles_bounded(void **state)
{
	struct fixture *f = *state;
	struct inode *root = inode_root(f->t), *ins[64];
	struct inode_fd_stats fs;
	unsigned before;
	char name[16];

	if (f->skip)
		skip();
	before = open_fds();
	for (int i = 0; i < 64; i++) {
		struct stat st;

		snprintf(name, sizeof(name), "f%d", i);
		touch(f, name, name);
		assert_int_equal(inode_lookup_at(f->t, root, f->dir_fd, name, &st, &ins[i]), 0);
		assert_int_equal(ins[i]->ino, st.st_ino);
		assert_int_equal(ins[i]->fd, -1);
		assert_true(ins[i]->handle_len > 0);
		/* The name is stored inline, after the handle. */
		assert_ptr_equal(ins[i]->name, (char *)ins[i]->handle + ins[i]->handle_len);
		assert_string_equal(ins[i]->name, name);
	}
	inode_fd_stats(f->t, &fs);
	assert_int_equal(fs.cap, SMALL_CACHE);
	assert_true(fs.cached <= SMALL_CACHE);
	assert_int_equal(fs.kept, 0);
	assert_true(open_fds() <= before + SMALL_CACHE);
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 64; i++) {
			char buf[32];

			snprintf(name, sizeof(name), "f%d", i);
			read_through(f, ins[i], buf, sizeof(buf));
			assert_string_equal(buf, name);
		}
	}
	assert_true(open_fds() <= before + SMALL_CACHE);
	inode_fd_stats(f->t, &fs);
	assert_true(fs.evictions > 0);
	assert_int_equal(fs.pinned, 0);
	/* A lookup of a known name finds the same entry. */
	for (int i = 0; i < 64; i++) {
		struct inode *again;
		struct stat st;

		snprintf(name, sizeof(name), "f%d", i);
		assert_int_equal(inode_lookup_at(f->t, root, f->dir_fd, name, &st, &again), 0);
		assert_ptr_equal(again, ins[i]);
		inode_put(f->t, again);
		inode_forget(f->t, again->nodeid, 1);
	}
	for (int i = 0; i < 64; i++) {
		inode_put(f->t, ins[i]);
		inode_forget(f->t, ins[i]->nodeid, 1);
	}
	assert_int_equal(inode_count(f->t), 1);
	inode_fd_stats(f->t, &fs);
	assert_int_equal(fs.cached, 0);
	assert_int_equal(open_fds(), before);
}

/* A pinned descriptor survives any amount of eviction; an entry pinned
 * twice shares one descriptor. */
static void test_pinned_not_evicted(void **state)
{
	struct fixture *f = *state;
	struct inode *root = inode_root(f->t), *a, *o;
	struct stat st, now;
	char name[16];
	int fa, fa2;

	if (f->skip)
		skip();
	touch(f, "pin", "p");
	assert_int_equal(inode_lookup_at(f->t, root, f->dir_fd, "pin", &st, &a), 0);
	fa = inode_fd_get(f->t, a);
	assert_true(fa >= 0);
	fa2 = inode_fd_get(f->t, a);
	assert_int_equal(fa2, fa);
	for (int i = 0; i < 4 * SMALL_CACHE; i++) {
		snprintf(name, sizeof(name), "o%d", i);
		touch(f, name, "");
		assert_int_equal(inode_lookup_at(f->t, root, f->dir_fd, name, &now, &o), 0);
		int fd = inode_fd_get(f->t, o);
		assert_true(fd >= 0);
		assert_int_not_equal(fd, fa);
		inode_fd_put(f->t, o, fd);
		inode_put(f->t, o);
	}
	assert_int_equal(fstat(fa, &now), 0);
	assert_int_equal(now.st_ino, st.st_ino);
	inode_fd_put(f->t, a, fa2);
	assert_true(fd_is_open(fa));
	inode_fd_put(f->t, a, fa);
	inode_put(f->t, a);
}

/* With every slot pinned a caller still gets a descriptor of its own,
 * closed when it is put back. */
static void test_all_pinned(void **state)
{
	struct fixture *f = *state;
	struct inode *root = inode_root(f->t), *ins[SMALL_CACHE + 1];
	int fds[SMALL_CACHE + 1];
	char name[16];
	struct stat st;

	if (f->skip)
		skip();
	for (int i = 0; i <= SMALL_CACHE; i++) {
		snprintf(name, sizeof(name), "p%d", i);
		touch(f, name, "");
		assert_int_equal(inode_lookup_at(f->t, root, f->dir_fd, name, &st, &ins[i]), 0);
		fds[i] = inode_fd_get(f->t, ins[i]);
		assert_true(fds[i] >= 0);
		assert_int_equal(fstat(fds[i], &st), 0);
		assert_int_equal(st.st_ino, ins[i]->ino);
	}
	for (int i = 0; i <= SMALL_CACHE; i++) {
		inode_fd_put(f->t, ins[i], fds[i]);
		inode_put(f->t, ins[i]);
	}
	/* One of them was not cached and is closed now. */
	struct inode_fd_stats fs;
	inode_fd_stats(f->t, &fs);
	assert_int_equal(fs.cached, SMALL_CACHE);
	assert_int_equal(fs.pinned, 0);
}

/* Looks up 2 * SMALL_CACHE new files (prefix0, prefix1...), which stay
 * known, so that every descriptor cached before is evicted. */
static void push_out(struct fixture *f, const char *prefix, struct inode **out)
{
	char name[16];
	struct stat st;

	for (int i = 0; i < 2 * SMALL_CACHE; i++) {
		snprintf(name, sizeof(name), "%s%d", prefix, i);
		touch(f, name, "");
		assert_int_equal(inode_lookup_at(f->t, inode_root(f->t), f->dir_fd, name,
						 &st, &out[i]), 0);
		inode_put(f->t, out[i]);
	}
}

static void forget_all(struct fixture *f, struct inode **ins)
{
	for (int i = 0; i < 2 * SMALL_CACHE; i++)
		inode_forget(f->t, ins[i]->nodeid, 1);
}

static void record_stale(void *arg, struct inode *in)
{
	(*(int *)arg)++;
	(void)in;
}

/* Removed behind the mount's back: the handle no longer opens, the entry
 * turns stale (once), and the same name later finds a new entry. */
static void test_removed_is_stale(void **state)
{
	struct fixture *f = *state;
	struct inode *root = inode_root(f->t), *a, *b, *others[2 * SMALL_CACHE];
	int hook_calls = 0;
	struct stat st;

	if (f->skip)
		skip();
	inode_table_set_free_hook(f->t, record_stale, &hook_calls);
	touch(f, "gone", "old");
	assert_int_equal(inode_lookup_at(f->t, root, f->dir_fd, "gone", &st, &a), 0);
	assert_int_equal(unlinkat(f->dir_fd, "gone", 0), 0);
	/* Push its descriptor out of the cache (which would keep the inode)
	 * with entries that stay known. One of them may well get the freed
	 * inode number, which also makes the entry stale. */
	push_out(f, "q", others);
	assert_int_equal(inode_fd_get(f->t, a), -ESTALE);
	assert_true(inode_is_stale(f->t, a));
	assert_int_equal(hook_calls, 1);
	assert_int_equal(inode_fd_get(f->t, a), -ESTALE);
	/* (dev, ino) no longer finds it (but may find the file that reuses
	 * the number). */
	struct inode *same = inode_find(f->t, a->dev, a->ino);
	assert_ptr_not_equal(same, a);
	inode_put(f->t, same);
	/* Still there for the kernel, by node id. */
	assert_ptr_equal(inode_get(f->t, a->nodeid), a);
	inode_put(f->t, a);
	/* Recreated under the same name: a new entry, whatever its number. */
	touch(f, "gone", "new");
	assert_int_equal(inode_lookup_at(f->t, root, f->dir_fd, "gone", &st, &b), 0);
	assert_ptr_not_equal(b, a);
	char buf[16];
	read_through(f, b, buf, sizeof(buf));
	assert_string_equal(buf, "new");
	/* The stale entry was told about already: freeing it is silent. */
	hook_calls = 0;
	inode_put(f->t, a);
	inode_forget(f->t, a->nodeid, 1);
	assert_int_equal(hook_calls, 0);
	inode_put(f->t, b);
	inode_forget(f->t, b->nodeid, 1);
	assert_int_equal(hook_calls, 1);
	forget_all(f, others);
	assert_int_equal(inode_count(f->t), 1);
}

/* An inode number reused for a new file: the same (dev, ino) with another
 * handle is another entry, and the old one is stale. The reuse is staged:
 * the attributes of one file with the descriptor of another. */
static void test_recycled_number(void **state)
{
	struct fixture *f = *state;
	struct inode *root = inode_root(f->t), *a, *b;
	struct stat sa, sb;
	int fb;

	if (f->skip)
		skip();
	touch(f, "ra", "a");
	touch(f, "rb", "b");
	assert_int_equal(inode_lookup_at(f->t, root, f->dir_fd, "ra", &sa, &a), 0);
	fb = openat(f->dir_fd, "rb", O_PATH | O_CLOEXEC);
	assert_true(fb >= 0);
	assert_int_equal(fstat(fb, &sb), 0);
	assert_int_equal(inode_lookup(f->t, root, "ra", &sa, fb, &b), 0);
	assert_ptr_not_equal(a, b);
	assert_true(inode_is_stale(f->t, a));
	assert_false(inode_is_stale(f->t, b));
	assert_ptr_equal(inode_find(f->t, sa.st_dev, sa.st_ino), b);
	inode_put(f->t, b);
	assert_int_equal(inode_fd_get(f->t, a), -ESTALE);
	char buf[8];
	read_through(f, b, buf, sizeof(buf));
	assert_string_equal(buf, "b");
	inode_put(f->t, a);
	inode_put(f->t, b);
}

/* Renamed behind the mount's back: the handle follows the file. Hard links
 * share one entry. */
static void test_renamed_and_links(void **state)
{
	struct fixture *f = *state;
	struct inode *root = inode_root(f->t), *a, *l, *others[2 * SMALL_CACHE];
	struct stat st;
	char buf[16];

	if (f->skip)
		skip();
	touch(f, "mv", "moved");
	assert_int_equal(inode_lookup_at(f->t, root, f->dir_fd, "mv", &st, &a), 0);
	assert_int_equal(renameat(f->dir_fd, "mv", f->dir_fd, "mv2"), 0);
	touch(f, "mv", "impostor");
	push_out(f, "z", others);
	read_through(f, a, buf, sizeof(buf));
	assert_string_equal(buf, "moved");
	assert_int_equal(linkat(f->dir_fd, "mv2", f->dir_fd, "hl", 0), 0);
	assert_int_equal(inode_lookup_at(f->t, root, f->dir_fd, "hl", &st, &l), 0);
	assert_ptr_equal(l, a);
	assert_false(inode_is_stale(f->t, a));
	inode_put(f->t, l);
	inode_put(f->t, a);
	forget_all(f, others);
}

/* Out of descriptors: the cache makes room and the open is tried again. */
static void test_emfile_recovers(void **state)
{
	struct fixture *f = *state;
	struct inode *root = inode_root(f->t), *ins[3 * SMALL_CACHE];
	struct rlimit old, low;
	unsigned base;
	char name[16];
	struct stat st;

	if (f->skip)
		skip();
	for (int i = 0; i < 3 * SMALL_CACHE; i++) {
		snprintf(name, sizeof(name), "e%d", i);
		touch(f, name, name);
		assert_int_equal(inode_lookup_at(f->t, root, f->dir_fd, name, &st, &ins[i]), 0);
	}
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	/* Fewer descriptors than the cache has slots: opens hit EMFILE. */
	base = 0;
	for (int fd = 0; fd < 4096; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			base = (unsigned)fd + 1;
	low = old;
	low.rlim_cur = base + 3;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 3 * SMALL_CACHE; i++) {
			int fd = inode_fd_get(f->t, ins[i]);

			assert_true(fd >= 0);
			assert_int_equal(fstat(fd, &st), 0);
			assert_int_equal(st.st_ino, ins[i]->ino);
			inode_fd_put(f->t, ins[i], fd);
		}
	}
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	for (int i = 0; i < 3 * SMALL_CACHE; i++)
		inode_put(f->t, ins[i]);
}

struct pin_arg {
	struct fixture *f;
	struct inode **ins;
	int n;
	unsigned seed;
};

static void *pinner(void *p)
{
	struct pin_arg *a = p;

	for (int k = 0; k < 20000; k++) {
		struct inode *in = a->ins[rand_r(&a->seed) % a->n];
		struct stat st;
		int fd = inode_fd_get(a->f->t, in);

		if (fd < 0 || fstat(fd, &st) < 0 || st.st_ino != in->ino)
			return (void *)1;
		inode_fd_put(a->f->t, in, fd);
	}
	return NULL;
}

/* Threads pinning and putting back entries at random through a cache much
 * smaller than the set: every descriptor they get is the right inode's. */
static void test_concurrent_pins(void **state)
{
	struct fixture *f = *state;
	struct inode *root = inode_root(f->t), *ins[48];
	struct pin_arg args[4];
	pthread_t th[4];
	char name[16];
	struct stat st;

	if (f->skip)
		skip();
	for (int i = 0; i < 48; i++) {
		snprintf(name, sizeof(name), "c%d", i);
		touch(f, name, "");
		assert_int_equal(inode_lookup_at(f->t, root, f->dir_fd, name, &st, &ins[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		args[i] = (struct pin_arg){ f, ins, 48, (unsigned)i + 1 };
		assert_int_equal(pthread_create(&th[i], NULL, pinner, &args[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		void *rv;

		assert_int_equal(pthread_join(th[i], &rv), 0);
		assert_null(rv);
	}
	struct inode_fd_stats fs;
	inode_fd_stats(f->t, &fs);
	assert_int_equal(fs.pinned, 0);
	assert_true(fs.cached <= SMALL_CACHE);
	for (int i = 0; i < 48; i++)
		inode_put(f->t, ins[i]);
}

/* What an idle entry costs: the fixed part, then an ext4-sized handle and a
 * short name in the same allocation, well under 200 bytes with the hash
 * buckets. */
static void test_entry_size(void **state)
{
	(void)state;
	assert_true(offsetof(struct inode, handle) <= 104);
	assert_true(offsetof(struct inode, handle) + 8 + sizeof("f12345") <= 120);
}


int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_root, setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_insert_find_forget, setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_unlinked_and_stamps, setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_growth, setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_paths, setup_names, teardown),
		cmocka_unit_test_setup_teardown(test_paths_untracked, setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_name, setup_names, teardown),
		cmocka_unit_test_setup_teardown(test_free_hook, setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_free_hook, setup_names, teardown),
		cmocka_unit_test(test_lock_key),
		cmocka_unit_test_setup_teardown(test_concurrent, setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_handles_bounded, setup_handles, teardown),
		cmocka_unit_test_setup_teardown(test_pinned_not_evicted, setup_handles, teardown),
		cmocka_unit_test_setup_teardown(test_all_pinned, setup_handles, teardown),
		cmocka_unit_test_setup_teardown(test_removed_is_stale, setup_handles, teardown),
		cmocka_unit_test_setup_teardown(test_recycled_number, setup_handles, teardown),
		cmocka_unit_test_setup_teardown(test_renamed_and_links, setup_handles, teardown),
		cmocka_unit_test_setup_teardown(test_emfile_recovers, setup_handles, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_pins, setup_handles, teardown),
		cmocka_unit_test(test_entry_size),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
