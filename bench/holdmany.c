/* Holds many distinct files open (and so locked) at once.
 *
 *   holdmany [-c SOURCE] [-r] DIR COUNT
 *
 * The files are DIR/dNNN/fNNNNNN, 1000 to a directory. With -c they are
 * first created (empty) under SOURCE, directly and not through the mount, so
 * that creating them is not what gets measured. Then, in steps, each step
 * ending with one line on stdout and a wait for one line on stdin (the driver
 * reads the daemon's memory use in between):
 *
 *   ready                  files exist, RLIMIT_NOFILE raised
 *   statted SECS           every file stat()ed through DIR (names known)
 *   opened SECS            every file open, O_RDWR (-r: O_RDONLY) and held
 *   closed SECS            every file closed again
 *
 * Exit status 0, or 1 with a message on stderr. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PER_DIR 1000

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void file_path(char *buf, size_t len, const char *dir, long i)
{
	snprintf(buf, len, "%s/d%03ld/f%06ld", dir, i / PER_DIR, i);
}

/* Tells the driver where we are and waits for it to have looked. */
static int step(const char *what, double secs)
{
	char line[64];

	if (secs >= 0)
		printf("%s %.6f\n", what, secs);
	else
		printf("%s\n", what);
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin)) {
		fprintf(stderr, "holdmany: driver went away\n");
		return -1;
	}
	return 0;
}

static int create_all(const char *src, long count)
{
	char path[4096];

	for (long d = 0; d * PER_DIR < count; d++) {
		snprintf(path, sizeof(path), "%s/d%03ld", src, d);
		if (mkdir(path, 0755) != 0 && errno != EEXIST) {
			fprintf(stderr, "holdmany: mkdir %s: %s\n", path, strerror(errno));
			return -1;
		}
	}
	for (long i = 0; i < count; i++) {
		int fd;

		file_path(path, sizeof(path), src, i);
		fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0) {
			fprintf(stderr, "holdmany: create %s: %s\n", path, strerror(errno));
			return -1;
		}
		close(fd);
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *src = NULL, *dir;
	int flags = O_RDWR, opt;
	struct rlimit rl;
	char path[4096];
	long count;
	double t;
	int *fds;

	while ((opt = getopt(argc, argv, "c:r")) != -1) {
		if (opt == 'c')
			src = optarg;
		else if (opt == 'r')
			flags = O_RDONLY;
		else {
			fprintf(stderr, "usage: holdmany [-c SOURCE] [-r] DIR COUNT\n");
			return 1;
		}
	}
	if (argc - optind != 2) {
		fprintf(stderr, "usage: holdmany [-c SOURCE] [-r] DIR COUNT\n");
		return 1;
	}
	dir = argv[optind];
	count = atol(argv[optind + 1]);
	if (count <= 0)
		return 1;

	rl.rlim_cur = rl.rlim_max = (rlim_t)count + 64;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
		fprintf(stderr, "holdmany: cannot raise RLIMIT_NOFILE to %ld: %s\n",
			count + 64, strerror(errno));
		return 1;
	}
	fds = calloc((size_t)count, sizeof(*fds));
	if (!fds)
		return 1;
	if (src && create_all(src, count) != 0)
		return 1;
	if (step("ready", -1))
		return 1;

	t = now_s();
	for (long i = 0; i < count; i++) {
		struct stat st;

		file_path(path, sizeof(path), dir, i);
		if (stat(path, &st) != 0) {
			fprintf(stderr, "holdmany: stat %s: %s\n", path, strerror(errno));
			return 1;
		}
	}
	if (step("statted", now_s() - t))
		return 1;

	t = now_s();
	for (long i = 0; i < count; i++) {
		file_path(path, sizeof(path), dir, i);
		fds[i] = open(path, flags | O_CLOEXEC);
		if (fds[i] < 0) {
			fprintf(stderr, "holdmany: open %s (file %ld): %s\n", path, i, strerror(errno));
			return 1;
		}
	}
	if (step("opened", now_s() - t))
		return 1;

	t = now_s();
	for (long i = 0; i < count; i++)
		close(fds[i]);
	if (step("closed", now_s() - t))
		return 1;
	free(fds);
	return 0;
}
