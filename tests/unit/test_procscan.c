/* Unit tests for fs/procscan.c: the parsers on literal lines, the scans on
 * this very process and its children, with real files, mappings and (where
 * a private mount namespace can be had) bind mounts and FUSE mounts. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <stdbool.h>
#include <unistd.h>

#include "procscan.h"

#define MAX_FDS 256

struct fixture {
	char dir[64];
	char file[96];
	struct stat st;         /* of file */
};

/* tmpfs when there is one: its st_dev is the one mountinfo and maps show
 * (not so on btrfs subvolumes or overlayfs, see fs_dev_consistent). */
static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	int fd;

	assert_non_null(f);
	strcpy(f->dir, "/dev/shm/lockfs-procscan-XXXXXX");
	if (!mkdtemp(f->dir)) {
		strcpy(f->dir, "/tmp/lockfs-procscan-XXXXXX");
		assert_non_null(mkdtemp(f->dir));
	}
	snprintf(f->file, sizeof(f->file), "%s/file", f->dir);
	fd = open(f->file, O_CREAT | O_RDWR | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 4096), 0);
	assert_int_equal(fstat(fd, &f->st), 0);
	close(fd);
	*state = f;
	return 0;
}

/* The tests leave only plain files and empty directories (their mounts
 * lived in children's namespaces). No system("rm"): under valgrind
 * --trace-children the shell's own allocations would count. */
static int teardown(void **state)
{
	struct fixture *f = *state;
	struct dirent *de;
	DIR *d = opendir(f->dir);

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) != 0)
			assert_int_equal(unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR), 0);
	}
	closedir(d);
	assert_int_equal(rmdir(f->dir), 0);
	free(f);
	return 0;
}

/* The device mountinfo gives for the mount `path` lies on, 0 if unknown. */
static dev_t mountinfo_dev_of(const char *path)
{
	struct statx stx;
	char *line = NULL;
	size_t cap = 0;
	dev_t dev = 0;
	FILE *mi;

	if (statx(AT_FDCWD, path, 0, STATX_MNT_ID, &stx) != 0 || !(stx.stx_mask & STATX_MNT_ID))
		return 0;
	mi = fopen("/proc/self/mountinfo", "re");
	assert_non_null(mi);
	while (getline(&line, &cap, mi) > 0) {
		struct procscan_mount m;

		if (procscan_parse_mountinfo_line(line, &m) == 0 && m.id == stx.stx_mnt_id)
			dev = m.dev;
	}
	free(line);
	fclose(mi);
	return dev;
}

/* The scans compare the caller's st_dev with what /proc shows; on file
 * systems where stat() reports another device than the super block's, the
 * test file cannot serve. */
static void require_consistent_dev(const struct fixture *f)
{
	if (mountinfo_dev_of(f->file) != f->st.st_dev) {
		print_message("skipped: %s: st_dev differs from mountinfo's device\n", f->dir);
		skip();
	}
}

/* Whether this process has a descriptor on another file with inode number
 * ino (small inode numbers repeat across file systems): dev 0 would match
 * it too. */
static bool ino_elsewhere(const struct stat *file)
{
	struct dirent *de;
	bool found = false;
	DIR *d = opendir("/proc/self/fd");

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		struct stat st;

		if (de->d_name[0] != '.' && fstatat(dirfd(d), de->d_name, &st, 0) == 0 &&
		    st.st_ino == file->st_ino && st.st_dev != file->st_dev)
			found = true;
	}
	closedir(d);
	return found;
}

static dev_t other_dev(dev_t dev)
{
	return makedev(major(dev) + 1, minor(dev) + 7);
}

/* ---- parsers ----------------------------------------------------------------- */

static void test_parse_mountinfo(void **state)
{
	struct procscan_mount m;
	char l1[] = "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n";
	char l2[] = "812 29 0:1048575 / /home/u/my\\040mount\\011tab\\134x rw,nosuid shared:7 "
		    "propagate_from:3 - fuse.lockfs /src\\040dir rw,user_id=0,group_id=0\n";
	char l3[] = "25 1 0:22 / /dev/shm rw - tmpfs tmpfs rw";
	char l4[] = "25 1 0:22 / /a\\0401 rw - fuseblk /dev/sdb1 rw\n";

	assert_int_equal(procscan_parse_mountinfo_line(l1, &m), 0);
	assert_true(m.id == 36);
	assert_true(m.dev == makedev(98, 0));
	assert_string_equal(m.point, "/mnt2");
	assert_string_equal(m.fstype, "ext3");

	assert_int_equal(procscan_parse_mountinfo_line(l2, &m), 0);
	assert_true(m.id == 812);
	assert_true(m.dev == makedev(0, 1048575));
	assert_string_equal(m.point, "/home/u/my mount\ttab\\x");
	assert_string_equal(m.fstype, "fuse.lockfs");

	/* No optional fields, no trailing newline. */
	assert_int_equal(procscan_parse_mountinfo_line(l3, &m), 0);
	assert_true(m.dev == makedev(0, 22));
	assert_string_equal(m.point, "/dev/shm");
	assert_string_equal(m.fstype, "tmpfs");

	/* An escape followed by a digit decodes exactly three digits. */
	assert_int_equal(procscan_parse_mountinfo_line(l4, &m), 0);
	assert_string_equal(m.point, "/a 1");
	assert_string_equal(m.fstype, "fuseblk");
}

static void test_parse_mountinfo_bad(void **state)
{
	struct procscan_mount m;
	char no_sep[] = "36 35 98:0 /mnt1 /mnt2 rw,noatime ext3 /dev/root rw\n";
	char short_line[] = "36 35 98:0 / - ext3 /dev/root rw\n";
	char bad_dev[] = "36 35 98-0 / /mnt rw - ext3 /dev/root rw\n";
	char neg_dev[] = "36 35 -1:0 / /mnt rw - ext3 /dev/root rw\n";
	char bad_id[] = "x36 35 98:0 / /mnt rw - ext3 /dev/root rw\n";
	char no_type[] = "36 35 98:0 / /mnt rw - \n";
	char empty[] = "";

	assert_int_equal(procscan_parse_mountinfo_line(no_sep, &m), -EINVAL);
	assert_int_equal(procscan_parse_mountinfo_line(short_line, &m), -EINVAL);
	assert_int_equal(procscan_parse_mountinfo_line(bad_dev, &m), -EINVAL);
	assert_int_equal(procscan_parse_mountinfo_line(neg_dev, &m), -EINVAL);
	assert_int_equal(procscan_parse_mountinfo_line(bad_id, &m), -EINVAL);
	assert_int_equal(procscan_parse_mountinfo_line(no_type, &m), -EINVAL);
	assert_int_equal(procscan_parse_mountinfo_line(empty, &m), -EINVAL);
}

static void test_maps_line(void **state)
{
	const char *shared = "7f1c2a000000-7f1c2a001000 rw-s 00000000 00:2a 1234   /dev/shm/x\n";
	const char *big = "7f1c2a000000-7f1c2a001000 rw-s 00001000 fd:10000 99 /m/y (deleted)\n";
	const char *hex = "7f1c2a000000-7f1c2a001000 rw-s 00000000 00:10 7 /x\n";
	const char *priv = "7f1c2a000000-7f1c2a001000 rw-p 00000000 00:2a 1234 /dev/shm/x\n";
	const char *ro = "7f1c2a000000-7f1c2a001000 r--s 00000000 00:2a 1234 /dev/shm/x\n";

	assert_true(procscan_maps_line_matches(shared, makedev(0, 0x2a), 1234));
	assert_true(procscan_maps_line_matches(shared, 0, 1234));
	assert_false(procscan_maps_line_matches(shared, makedev(0, 0x2b), 1234));
	assert_false(procscan_maps_line_matches(shared, makedev(1, 0x2a), 1234));
	/* The device is hex: "00:10" is minor 16, not 10. */
	assert_true(procscan_maps_line_matches(hex, makedev(0, 16), 7));
	assert_false(procscan_maps_line_matches(hex, makedev(0, 10), 7));
	assert_false(procscan_maps_line_matches(shared, makedev(0, 0x2a), 123));
	assert_true(procscan_maps_line_matches(big, makedev(0xfd, 0x10000), 99));
	assert_false(procscan_maps_line_matches(big, makedev(0xfd, 0x1000), 99));
	assert_false(procscan_maps_line_matches(priv, 0, 1234));
	assert_false(procscan_maps_line_matches(ro, 0, 1234));
	assert_false(procscan_maps_line_matches("garbage\n", 0, 0));
	assert_false(procscan_maps_line_matches("", 0, 0));
}

static void test_mount_dev_inputs(void **state)
{
	struct stat st;
	dev_t dev = 12345;
	int r;

	assert_int_equal(procscan_mount_dev("relative/path", &dev), -EINVAL);
	assert_int_equal(procscan_mount_dev("", &dev), -EINVAL);
	/* Not paths in mountinfo. */
	assert_int_equal(procscan_mount_dev("/dev/fd/3", &dev), -ENOENT);
	assert_int_equal(procscan_mount_dev("/no/such/mount/point", &dev), -ENOENT);
	/* /proc is procfs, never FUSE: the type filter must reject it. */
	assert_int_equal(procscan_mount_dev("/proc", &dev), -ENOENT);
	assert_true(dev == 12345);
	/* "/" is FUSE only in unusual sandboxes; then it must be its device. */
	r = procscan_mount_dev("/", &dev);
	assert_int_equal(stat("/", &st), 0);
	assert_true(r == -ENOENT || (r == 0 && dev == st.st_dev));
}

/* ---- descriptors ------------------------------------------------------------- */

static void test_has_fd_own(void **state)
{
	struct fixture *f = *state;
	dev_t dev = f->st.st_dev;
	ino_t ino = f->st.st_ino;
	int a, b;

	require_consistent_dev(f);
	assert_false(procscan_has_fd_on(getpid(), dev, ino, MAX_FDS));
	/* The device is what tells a file with the same inode number apart. */
	assert_true(procscan_has_fd_on(getpid(), 0, ino, MAX_FDS) == ino_elsewhere(&f->st));

	a = open(f->file, O_RDONLY | O_CLOEXEC);
	b = open(f->file, O_WRONLY | O_CLOEXEC);
	assert_true(a >= 0 && b >= 0);
	assert_true(procscan_has_fd_on(getpid(), dev, ino, MAX_FDS));
	assert_true(procscan_has_fd_on(getpid(), 0, ino, MAX_FDS));
	assert_false(procscan_has_fd_on(getpid(), other_dev(dev), ino, MAX_FDS));
	assert_false(procscan_has_fd_on(getpid(), dev, ino + 1000003, MAX_FDS));

	close(a);
	assert_true(procscan_has_fd_on(getpid(), dev, ino, MAX_FDS));
	close(b);
	assert_false(procscan_has_fd_on(getpid(), dev, ino, MAX_FDS));
	assert_true(procscan_has_fd_on(getpid(), 0, ino, MAX_FDS) == ino_elsewhere(&f->st));
}

/* Sockets and pipes are skipped by their link text; a descriptor on the
 * directory holding the file is a file, but another inode. */
static void test_has_fd_other_kinds(void **state)
{
	struct fixture *f = *state;
	int p[2], d;

	require_consistent_dev(f);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	d = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(d >= 0);
	assert_false(procscan_has_fd_on(getpid(), f->st.st_dev, f->st.st_ino, MAX_FDS));
	close(p[0]);
	close(p[1]);
	close(d);
}

static void test_has_fd_max(void **state)
{
	struct fixture *f = *state;
	int fds[3];

	for (int i = 0; i < 3; i++) {
		fds[i] = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		assert_true(fds[i] >= 0);
	}
	/* No descriptor on ino + 1000003: only the limit can say "holds". */
	assert_false(procscan_has_fd_on(getpid(), f->st.st_dev, f->st.st_ino + 1000003, MAX_FDS));
	assert_true(procscan_has_fd_on(getpid(), f->st.st_dev, f->st.st_ino + 1000003, 2));
	for (int i = 0; i < 3; i++)
		close(fds[i]);
}

/* Forks a child that keeps descriptor fd (inherited) open until its end of
 * the returned pipe is closed. */
static pid_t child_holding(int *ctl)
{
	int p[2];
	pid_t pid;

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char c;

		close(p[1]);
		while (read(p[0], &c, 1) > 0)
			;
		_exit(0);
	}
	close(p[0]);
	*ctl = p[1];
	return pid;
}

static void test_has_fd_child(void **state)
{
	struct fixture *f = *state;
	dev_t dev = f->st.st_dev;
	ino_t ino = f->st.st_ino;
	siginfo_t si;
	int fd, ctl, status;
	pid_t pid;

	require_consistent_dev(f);
	fd = open(f->file, O_RDWR);     /* inherited by the child */
	assert_true(fd >= 0);
	pid = child_holding(&ctl);
	close(fd);
	assert_false(procscan_has_fd_on(getpid(), dev, ino, MAX_FDS));
	assert_true(procscan_has_fd_on(pid, dev, ino, MAX_FDS));
	assert_false(procscan_has_fd_on(pid, other_dev(dev), ino, MAX_FDS));

	/* Exited but not reaped: a zombie holds no descriptors. */
	close(ctl);
	memset(&si, 0, sizeof(si));
	assert_int_equal(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
	assert_false(procscan_has_fd_on(pid, dev, ino, MAX_FDS));
	assert_false(procscan_has_fd_on(pid, 0, ino, MAX_FDS));

	/* Reaped: /proc/PID is gone (ENOENT), which means "not holding". */
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_false(procscan_has_fd_on(pid, dev, ino, MAX_FDS));
	assert_false(procscan_has_fd_on(pid, 0, ino, MAX_FDS));
	assert_false(procscan_mapped_writable(pid, 0, ino));
}

/* The kept probes give the answers of the full scan, call after call, while
 * the process opens, closes and reuses descriptor numbers, and forget a
 * process that is gone. */
static void test_probes_follow_changes(void **state)
{
	struct fixture *f = *state;
	struct procscan_probes *p;
	dev_t dev = f->st.st_dev;
	ino_t ino = f->st.st_ino;
	char other[128];
	int a, b, o, ctl, status, fd;
	pid_t pid;

	require_consistent_dev(f);
	snprintf(other, sizeof(other), "%s/other", f->dir);
	o = open(other, O_CREAT | O_RDWR | O_CLOEXEC, 0644);
	assert_true(o >= 0);
	assert_int_equal(procscan_probes_new(&p, 64), 0);
	/* The first call of a process reads /proc afresh, later ones keep. */
	for (int round = 0; round < 3; round++) {
		assert_false(procscan_probe_has_fd_on(p, getpid(), dev, ino, MAX_FDS));
		a = open(f->file, O_RDONLY | O_CLOEXEC);
		assert_true(a >= 0);
		assert_true(procscan_probe_has_fd_on(p, getpid(), dev, ino, MAX_FDS));
		assert_false(procscan_probe_has_fd_on(p, getpid(), other_dev(dev), ino, MAX_FDS));
		assert_false(procscan_probe_has_fd_on(p, getpid(), dev, ino + 1000003, MAX_FDS));
		/* The same number now names another file: a kept probe
		 * reads what the number is now, not what it was. */
		assert_int_equal(dup3(o, a, O_CLOEXEC), a);
		assert_false(procscan_probe_has_fd_on(p, getpid(), dev, ino, MAX_FDS));
		b = open(f->file, O_RDONLY | O_CLOEXEC);
		assert_true(b >= 0);
		assert_int_equal(dup3(b, a, O_CLOEXEC), a);
		close(b);
		assert_true(procscan_probe_has_fd_on(p, getpid(), dev, ino, MAX_FDS));
		close(a);
		assert_false(procscan_probe_has_fd_on(p, getpid(), dev, ino, MAX_FDS));
	}

	/* A child asked about twice gets probes; once it is gone (zombie,
	 * then reaped) it holds nothing, and its record is dropped. */
	fd = open(f->file, O_RDWR);     /* inherited by the child */
	assert_true(fd >= 0);
	pid = child_holding(&ctl);
	close(fd);
	assert_true(procscan_probe_has_fd_on(p, pid, dev, ino, MAX_FDS));
	assert_true(procscan_probe_has_fd_on(p, pid, dev, ino, MAX_FDS));
	assert_false(procscan_probe_has_fd_on(p, pid, other_dev(dev), ino, MAX_FDS));
	close(ctl);
	{
		siginfo_t si;

		memset(&si, 0, sizeof(si));
		assert_int_equal(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
	}
	assert_false(procscan_probe_has_fd_on(p, pid, dev, ino, MAX_FDS));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_false(procscan_probe_has_fd_on(p, pid, dev, ino, MAX_FDS));
	/* A budget too small keeps nothing and still answers. */
	procscan_probes_free(p);
	assert_int_equal(procscan_probes_new(&p, 4), 0);
	assert_false(procscan_probe_has_fd_on(p, getpid(), dev, ino, MAX_FDS));
	procscan_probes_free(p);
	assert_false(procscan_probe_has_fd_on(NULL, getpid(), dev, ino, MAX_FDS));
	close(o);
	unlink(other);
}

/* ---- in a private mount namespace -------------------------------------------- */

#define CHILD_SKIP 77

/* Inside a forked child: failures print and exit 1. */
#define CHECK(cond)                                                              \
	do {                                                                     \
		if (!(cond)) {                                                   \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
				#cond);                                          \
			_exit(1);                                                \
		}                                                                \
	} while (0)

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd >= 0) {
		if (write(fd, text, strlen(text)) < 0)
			fprintf(stderr, "%s: %s\n", path, strerror(errno));
		close(fd);
	}
}

/* A mount namespace of our own whose mounts do not propagate back: as root
 * directly, otherwise inside a user namespace. false when neither works. */
static bool private_mount_ns(void)
{
	uid_t uid = getuid();
	gid_t gid = getgid();
	char map[64];

	if (unshare(CLONE_NEWNS) != 0) {
		if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0)
			return false;
		write_file("/proc/self/setgroups", "deny");
		snprintf(map, sizeof(map), "0 %u 1", (unsigned)uid);
		write_file("/proc/self/uid_map", map);
		snprintf(map, sizeof(map), "0 %u 1", (unsigned)gid);
		write_file("/proc/self/gid_map", map);
	}
	/* The kernel ignores the type here; valgrind objects to NULL. */
	return mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) == 0;
}

/* Runs fn in a child; skips the test when it exits with CHILD_SKIP. */
static void run_in_child(void (*fn)(struct fixture *), struct fixture *f)
{
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		alarm(30); /* a FUSE mount nobody serves must not hang the suite */
		fn(f);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFEXITED(status) && WEXITSTATUS(status) == CHILD_SKIP) {
		print_message("skipped: no private mount namespace\n");
		skip();
	}
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* The case the path test missed: the file opened through a bind mount of
 * its file system, whose path does not start with the original one. */
static void bind_mount_child(struct fixture *f)
{
	char src[128], bind[128], via_bind[160], link[256], self[64];
	struct statx a, b;
	ssize_t n;
	int early, fd;

	/* Opened before the namespace changes: its mount is not in the new
	 * table, which must count as holding whatever the device. */
	early = open(f->file, O_RDONLY | O_CLOEXEC);
	CHECK(early >= 0);
	snprintf(src, sizeof(src), "%s", f->dir);
	snprintf(bind, sizeof(bind), "%s/bind", f->dir);
	CHECK(mkdir(bind, 0755) == 0);
	if (!private_mount_ns())
		_exit(CHILD_SKIP);
	CHECK(procscan_has_fd_on(getpid(), f->st.st_dev, f->st.st_ino, MAX_FDS));
	CHECK(procscan_has_fd_on(getpid(), other_dev(f->st.st_dev), f->st.st_ino, MAX_FDS));
	close(early);
	CHECK(!procscan_has_fd_on(getpid(), f->st.st_dev, f->st.st_ino, MAX_FDS));

	CHECK(mount(src, bind, "none", MS_BIND, NULL) == 0);
	snprintf(via_bind, sizeof(via_bind), "%s/file", bind);
	fd = open(via_bind, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	/* Another mount, another path, the same device and inode. */
	CHECK(statx(AT_FDCWD, f->file, 0, STATX_MNT_ID | STATX_INO, &a) == 0);
	CHECK(statx(fd, "", AT_EMPTY_PATH, STATX_MNT_ID | STATX_INO, &b) == 0);
	CHECK(a.stx_mnt_id != b.stx_mnt_id);
	CHECK(a.stx_ino == b.stx_ino);
	snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
	n = readlink(self, link, sizeof(link) - 1);
	CHECK(n > 0);
	link[n] = '\0';
	CHECK(strncmp(link, bind, strlen(bind)) == 0);

	CHECK(procscan_has_fd_on(getpid(), f->st.st_dev, f->st.st_ino, MAX_FDS));
	CHECK(!procscan_has_fd_on(getpid(), other_dev(f->st.st_dev), f->st.st_ino, MAX_FDS));
	close(fd);
	CHECK(!procscan_has_fd_on(getpid(), f->st.st_dev, f->st.st_ino, MAX_FDS));
	umount2(bind, MNT_DETACH);
}

static void test_has_fd_bind_mount(void **state)
{
	struct fixture *f = *state;

	require_consistent_dev(f);
	run_in_child(bind_mount_child, f);
}

/* Mounts an unserved FUSE file system on dir; returns its /dev/fuse fd. */
static int mount_fuse(const char *dir, const char *subtype)
{
	char opts[128], type[64];
	int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return -1;
	snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=%u,group_id=%u", fd,
		 (unsigned)getuid(), (unsigned)getgid());
	snprintf(type, sizeof(type), "fuse.%s", subtype);
	if (mount("test", dir, type, MS_NOSUID | MS_NODEV, opts) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* The root's device without asking the (unserved) file system anything:
 * FUSE answers AT_STATX_DONT_SYNC from its cache. */
static dev_t cached_dev(const char *dir)
{
	struct statx stx;

	CHECK(statx(AT_FDCWD, dir, AT_STATX_DONT_SYNC | AT_NO_AUTOMOUNT, STATX_TYPE, &stx) == 0);
	return makedev(stx.stx_dev_major, stx.stx_dev_minor);
}

static void fuse_mount_child(struct fixture *f)
{
	char plain[128], spaced[128];
	dev_t d1, d2, d3, got = 0;
	int fd1, fd2, fd3;

	snprintf(plain, sizeof(plain), "%s/mnt", f->dir);
	snprintf(spaced, sizeof(spaced), "%s/a dir\\x", f->dir);
	CHECK(mkdir(plain, 0755) == 0);
	CHECK(mkdir(spaced, 0755) == 0);
	if (!private_mount_ns())
		_exit(CHILD_SKIP);

	/* A mount point, but not FUSE. */
	CHECK(mount("tmpfs", plain, "tmpfs", 0, "size=64k") == 0);
	CHECK(procscan_mount_dev(plain, &got) == -ENOENT);

	fd1 = mount_fuse(plain, "first");
	if (fd1 < 0) {
		fprintf(stderr, "cannot mount FUSE: %s\n", strerror(errno));
		_exit(CHILD_SKIP);
	}
	d1 = cached_dev(plain);
	CHECK(procscan_mount_dev(plain, &got) == 0);
	CHECK(got == d1);

	/* Stacked on the same point: the one on top is listed last. */
	fd2 = mount_fuse(plain, "second");
	CHECK(fd2 >= 0);
	d2 = cached_dev(plain);
	CHECK(d2 != d1);
	CHECK(procscan_mount_dev(plain, &got) == 0);
	CHECK(got == d2);

	/* Space and backslash come escaped in mountinfo. */
	fd3 = mount_fuse(spaced, "third");
	CHECK(fd3 >= 0);
	d3 = cached_dev(spaced);
	CHECK(procscan_mount_dev(spaced, &got) == 0);
	CHECK(got == d3);

	/* A trailing slash is not the same string. */
	strcat(plain, "/");
	CHECK(procscan_mount_dev(plain, &got) == -ENOENT);
	/* Closing the descriptors aborts the connections; the namespace and
	 * its mounts go with the child. */
	close(fd1);
	close(fd2);
	close(fd3);
}

static void test_mount_dev_fuse(void **state)
{
	run_in_child(fuse_mount_child, *state);
}

/* ---- mappings ---------------------------------------------------------------- */

static void test_mapped_writable(void **state)
{
	struct fixture *f = *state;
	dev_t dev = f->st.st_dev;
	ino_t ino = f->st.st_ino;
	void *shared, *priv, *ro;
	int fd;

	require_consistent_dev(f);
	fd = open(f->file, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_false(procscan_mapped_writable(getpid(), dev, ino));

	priv = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	ro = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
	assert_true(priv != MAP_FAILED && ro != MAP_FAILED);
	assert_false(procscan_mapped_writable(getpid(), dev, ino));

	shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(shared != MAP_FAILED);
	close(fd); /* the mapping outlives the descriptor */
	assert_true(procscan_mapped_writable(getpid(), dev, ino));
	assert_true(procscan_mapped_writable(getpid(), 0, ino));
	assert_false(procscan_mapped_writable(getpid(), other_dev(dev), ino));
	assert_false(procscan_mapped_writable(getpid(), dev, ino + 1000003));

	assert_int_equal(munmap(shared, 4096), 0);
	assert_false(procscan_mapped_writable(getpid(), dev, ino));
	munmap(priv, 4096);
	munmap(ro, 4096);
}

/* A forked child that sleeps (S) or spins (R) until killed; with
 * `grandchild` it sleeps in wait() while a child of its own spins. */
static pid_t spawn(bool spin, bool grandchild)
{
	pid_t p = fork();

	assert_true(p >= 0);
	if (p == 0) {
		if (grandchild && fork() == 0) {
			for (;;)
				;
		}
		if (grandchild)
			wait(NULL);
		for (;;) {
			if (!spin)
				pause();
		}
	}
	return p;
}

static void reap(pid_t p)
{
	kill(p, SIGKILL);
	waitpid(p, NULL, 0);
}

static void test_program_active(void **state)
{
	pid_t sleeper, spinner, parent;
	bool asleep = true;

	(void)state;
	/* This thread is running while it asks. */
	assert_true(procscan_running_tasks() >= 1);
	assert_true(procscan_program_active(getpid(), gettid()));

	sleeper = spawn(false, false);
	spinner = spawn(true, false);
	parent = spawn(false, true);
	/* Give them time to settle into pause() and wait(). */
	for (int i = 0; i < 50 && (asleep = procscan_program_active(sleeper, sleeper)); i++)
		usleep(20000);
	assert_false(asleep);
	assert_true(procscan_program_active(spinner, spinner));
	/* Asleep itself, but its child runs. */
	assert_true(procscan_program_active(parent, parent));
	/* Gone: nothing to ask. */
	reap(sleeper);
	assert_false(procscan_program_active(sleeper, sleeper));
	reap(spinner);
	{
		char path[64], buf[256];
		FILE *f;

		/* The grandchild is not ours to wait for: kill it through the
		 * parent's children list before the parent goes. */
		snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)parent, (int)parent);
		f = fopen(path, "r");
		if (f) {
			if (fgets(buf, sizeof(buf), f))
				kill((pid_t)atoi(buf), SIGKILL);
			fclose(f);
		}
	}
	reap(parent);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_mountinfo),
		cmocka_unit_test(test_parse_mountinfo_bad),
		cmocka_unit_test(test_maps_line),
		cmocka_unit_test(test_mount_dev_inputs),
		cmocka_unit_test_setup_teardown(test_has_fd_own, setup, teardown),
		cmocka_unit_test_setup_teardown(test_has_fd_other_kinds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_has_fd_max, setup, teardown),
		cmocka_unit_test_setup_teardown(test_has_fd_child, setup, teardown),
		cmocka_unit_test_setup_teardown(test_probes_follow_changes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_has_fd_bind_mount, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mount_dev_fuse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mapped_writable, setup, teardown),
		cmocka_unit_test(test_program_active),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
