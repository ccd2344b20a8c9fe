/* Many processes waiting for one file, served in order.
 *
 *   waiters [-p DAEMON_PID] [-T PARK_TIMEOUT_SECS] [-S SETTLE_US] MOUNT N
 *
 * A holder process opens MOUNT/queue.dat for writing and keeps it open.
 * Then N waiter processes are started one at a time; each opens the same
 * file for writing (and so blocks in open), and the next is started only
 * once the daemon lists the previous one as waiting (the lockfs control file
 * MOUNT/.lockfs-control shows one "wait" line per parked open), so arrival
 * order is known. Without a control file (a daemon that has none yet) the
 * next waiter starts once the previous one sleeps in the kernel waiting for
 * the daemon's answer (/proc/PID/wchan is request_wait_answer), no thread
 * of the daemon (-p) is running, and a settling delay (-S MICROSECONDS,
 * default 1000) has passed: the daemon has then taken the request in. When all N wait, the holder closes. Each waiter, once its
 * open returns, appends its index to the file and closes it, so the file ends
 * up listing the order in which the waiters were served.
 *
 * With -p the daemon's thread count and resident memory are read from
 * /proc/PID/status with the holder alone, with 1 waiter and with all N.
 *
 * Output, one line of key=value pairs:
 *   waiters= parked= park_timeouts= served= in_order= out_of_order=
 *   threads_0= threads_1= threads_n= threads_max= rss_kb_0= rss_kb_1=
 *   rss_kb_n= spawn_secs= drain_secs= parked_by=control|wchan
 *   mismatches=POS:INDEX,... (the first few waiters served out of turn, "-")
 * (daemon figures are -1 without -p). Exit status 0 when the run completed
 * (whatever the order), 1 on a failure to run it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct dstat {
	long threads;
	long rss_kb;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct dstat daemon_stat(pid_t pid)
{
	struct dstat d = { -1, -1 };
	char path[64], line[256];
	FILE *f;

	if (pid <= 0)
		return d;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return d;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "Threads:", 8) == 0)
			d.threads = atol(line + 8);
		else if (strncmp(line, "VmRSS:", 6) == 0)
			d.rss_kb = atol(line + 6);
	}
	fclose(f);
	return d;
}

/* How many opens the daemon has parked, from its control file; -errno. */
static long parked_count(const char *control)
{
	static char *buf;
	static size_t cap;
	size_t len = 0;
	long waits = 0;
	int fd = open(control, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t n;

		if (cap - len < 65536) {
			char *p = realloc(buf, cap + 262144);

			if (!p) {
				close(fd);
				return -ENOMEM;
			}
			buf = p;
			cap += 262144;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0) {
			int e = errno;

			close(fd);
			return -e;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	for (size_t i = 0; i < len; i++) {
		if ((i == 0 || buf[i - 1] == '\n') && len - i >= 5 &&
		    memcmp(buf + i, "wait\t", 5) == 0)
			waits++;
	}
	return waits;
}

/* 1 when no thread of the daemon is running or in uninterruptible sleep,
 * i.e. it has taken in every request the kernel queued for it. */
static int daemon_quiet(pid_t pid)
{
	char path[64], buf[512];
	struct dirent *e;
	int busy = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return 1;
	while (!busy && (e = readdir(d))) {
		char stat_path[400], *close_paren;
		ssize_t n;
		int fd;

		if (e->d_name[0] == '.')
			continue;
		snprintf(stat_path, sizeof(stat_path), "%s/%s/stat", path, e->d_name);
		fd = open(stat_path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		close_paren = strrchr(buf, ')');
		if (close_paren && close_paren[1] == ' ' &&
		    (close_paren[2] == 'R' || close_paren[2] == 'D'))
			busy = 1;
	}
	closedir(d);
	return !busy;
}

/* 1 when the process sleeps waiting for a FUSE reply, 0 if not, -errno. */
static int in_fuse_wait(pid_t pid)
{
	char path[64], buf[128];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/wchan", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return -EIO;
	buf[n] = '\0';
	return strcmp(buf, "request_wait_answer") == 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: waiters [-p DAEMON_PID] [-T PARK_TIMEOUT_SECS] [-S SETTLE_US] MOUNT N\n");
	exit(1);
}

int main(int argc, char **argv)
{
	char path[4096], control[4096];
	double park_timeout = 10.0, t0, spawn_secs, drain_secs;
	struct dstat d0, d1 = { -1, -1 }, dn;
	long threads_max = -1, parked = 0, park_timeouts = 0;
	long served = 0, in_order = 0, out_of_order = 0;
	int ready[2], release[2], opt, fd, n;
	bool by_control;
	char mismatch[256] = "-";
	size_t mlen = 0;
	long settle_us = 1000;
	pid_t daemon = 0, holder, *pids;
	struct rlimit rl;
	char c = 'x';
	FILE *f;

	while ((opt = getopt(argc, argv, "p:T:S:")) != -1) {
		if (opt == 'p')
			daemon = (pid_t)atol(optarg);
		else if (opt == 'T')
			park_timeout = atof(optarg);
		else if (opt == 'S')
			settle_us = atol(optarg);
		else
			usage();
	}
	if (argc - optind != 2)
		usage();
	n = atoi(argv[optind + 1]);
	if (n <= 0)
		usage();
	snprintf(path, sizeof(path), "%s/queue.dat", argv[optind]);
	snprintf(control, sizeof(control), "%s/.lockfs-control", argv[optind]);
	if (getrlimit(RLIMIT_NPROC, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < (rlim_t)n + 64) {
		fprintf(stderr, "waiters: RLIMIT_NPROC %lu is too low for %d waiters\n",
			(unsigned long)rl.rlim_cur, n);
		return 1;
	}
	pids = calloc((size_t)n, sizeof(*pids));
	if (!pids)
		return 1;

	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, "waiters: create %s: %s\n", path, strerror(errno));
		return 1;
	}
	close(fd);
	if (pipe2(ready, O_CLOEXEC) != 0 || pipe2(release, O_CLOEXEC) != 0) {
		perror("waiters: pipe");
		return 1;
	}

	holder = fork();
	if (holder < 0) {
		perror("waiters: fork");
		return 1;
	}
	if (holder == 0) {
		close(ready[0]);
		close(release[1]);
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0) {
			fprintf(stderr, "waiters: holder open: %s\n", strerror(errno));
			_exit(1);
		}
		if (write(ready[1], &c, 1) != 1 || read(release[0], &c, 1) != 1)
			_exit(1);
		close(fd);
		_exit(0);
	}
	close(ready[1]);
	close(release[0]);
	if (read(ready[0], &c, 1) != 1) {
		fprintf(stderr, "waiters: holder failed\n");
		return 1;
	}
	by_control = parked_count(control) >= 0;
	d0 = daemon_stat(daemon);
	threads_max = d0.threads;

	t0 = now_s();
	for (int i = 0; i < n; i++) {
		double deadline;
		long got;

		pids[i] = fork();
		if (pids[i] < 0) {
			perror("waiters: fork");
			kill(holder, SIGKILL);
			for (int j = 0; j < i; j++)
				kill(pids[j], SIGKILL);
			return 1;
		}
		if (pids[i] == 0) {
			char line[32];
			int len;

			close(ready[0]);
			close(release[1]);
			fd = open(path, O_RDWR | O_CLOEXEC);
			if (fd < 0)
				_exit(2);
			len = snprintf(line, sizeof(line), "%d\n", i);
			if (lseek(fd, 0, SEEK_END) < 0 || write(fd, line, (size_t)len) != len)
				_exit(3);
			_exit(close(fd) ? 4 : 0);
		}
		deadline = now_s() + park_timeout;
		for (;;) {
			got = by_control ? parked_count(control) : in_fuse_wait(pids[i]) ? i + 1 : 0;
			if (got < 0) {
				fprintf(stderr, "waiters: %s: %s\n", control, strerror((int)-got));
				kill(holder, SIGKILL);
				for (int j = 0; j <= i; j++)
					kill(pids[j], SIGKILL);
				return 1;
			}
			if (got >= i + 1 || now_s() > deadline)
				break;
			usleep(200);
		}
		if (!by_control && got >= i + 1) {
			/* Twice in a row, so that a thread caught between
			 * taking the request and parking it is not missed. */
			for (int quiet = 0; quiet < 2 && daemon > 0 && now_s() < deadline;) {
				quiet = daemon_quiet(daemon) ? quiet + 1 : 0;
				usleep(100);
			}
			usleep((useconds_t)settle_us);
		}
		if (got >= i + 1)
			parked++;
		else
			park_timeouts++;
		if (daemon > 0) {
			struct dstat d = daemon_stat(daemon);

			if (d.threads > threads_max)
				threads_max = d.threads;
			if (i == 0)
				d1 = d;
		}
	}
	spawn_secs = now_s() - t0;
	dn = daemon_stat(daemon);
	if (dn.threads > threads_max)
		threads_max = dn.threads;

	t0 = now_s();
	if (write(release[1], &c, 1) != 1) {
		perror("waiters: release");
		return 1;
	}
	for (int i = 0; i < n; i++) {
		int status;

		if (waitpid(pids[i], &status, 0) == pids[i] && WIFEXITED(status) &&
		    WEXITSTATUS(status) == 0)
			served++;
	}
	drain_secs = now_s() - t0;
	waitpid(holder, NULL, 0);

	f = fopen(path, "re");
	if (!f) {
		fprintf(stderr, "waiters: read back %s: %s\n", path, strerror(errno));
		return 1;
	}
	for (long pos = 0;; pos++) {
		long idx;

		if (fscanf(f, "%ld", &idx) != 1)
			break;
		if (idx == pos) {
			in_order++;
		} else {
			if (out_of_order < 8)
				mlen += snprintf(mismatch + mlen, sizeof(mismatch) - mlen,
						 "%s%ld:%ld", mlen ? "," : "", pos, idx);
			out_of_order++;
		}
	}
	fclose(f);

	printf("waiters=%d parked=%ld park_timeouts=%ld served=%ld in_order=%ld out_of_order=%ld"
	       " threads_0=%ld threads_1=%ld threads_n=%ld threads_max=%ld"
	       " rss_kb_0=%ld rss_kb_1=%ld rss_kb_n=%ld spawn_secs=%.3f drain_secs=%.3f parked_by=%s mismatches=%s\n",
	       n, parked, park_timeouts, served, in_order, out_of_order,
	       d0.threads, d1.threads, dn.threads, threads_max,
	       d0.rss_kb, d1.rss_kb, dn.rss_kb, spawn_secs, drain_secs,
	       by_control ? "control" : "wchan", mismatch);
	free(pids);
	return 0;
}
