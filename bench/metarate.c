/* Metadata operation rates, one process, one file.
 *
 *   metarate [-t SECONDS | -n COUNT] [-w WARMUP] DIR openclose|trunc|stat
 *
 *   openclose  open(DIR/meta.dat, O_RDONLY) + close
 *   trunc      open(DIR/meta.dat, O_WRONLY|O_TRUNC) + write 8 bytes + close
 *   stat       stat(DIR/meta.dat)
 *
 * DIR/meta.dat is created (8 bytes) when missing, before the warm-up. The
 * timed loop runs for SECONDS (default 2) or exactly COUNT operations.
 * Output: "ops=N secs=S rate=R" (operations per second). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum op { OP_OPENCLOSE, OP_TRUNC, OP_STAT };

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int one(enum op op, const char *path)
{
	struct stat st;
	int fd;

	switch (op) {
	case OP_OPENCLOSE:
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		return close(fd) ? -errno : 0;
	case OP_TRUNC:
		fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		if (write(fd, "01234567", 8) != 8) {
			int e = errno ? errno : EIO;

			close(fd);
			return -e;
		}
		return close(fd) ? -errno : 0;
	case OP_STAT:
		return stat(path, &st) ? -errno : 0;
	}
	return -EINVAL;
}

static void usage(void)
{
	fprintf(stderr, "usage: metarate [-t SECONDS | -n COUNT] [-w WARMUP] DIR openclose|trunc|stat\n");
	exit(1);
}

int main(int argc, char **argv)
{
	double secs = 2.0, start, end;
	long count = 0, warmup = 200, ops = 0;
	char path[4096];
	enum op op;
	int opt, fd, r;

	while ((opt = getopt(argc, argv, "t:n:w:")) != -1) {
		if (opt == 't')
			secs = atof(optarg);
		else if (opt == 'n')
			count = atol(optarg);
		else if (opt == 'w')
			warmup = atol(optarg);
		else
			usage();
	}
	if (argc - optind != 2 || secs <= 0 || count < 0 || warmup < 0)
		usage();
	if (strcmp(argv[optind + 1], "openclose") == 0)
		op = OP_OPENCLOSE;
	else if (strcmp(argv[optind + 1], "trunc") == 0)
		op = OP_TRUNC;
	else if (strcmp(argv[optind + 1], "stat") == 0)
		op = OP_STAT;
	else
		usage();
	if ((size_t)snprintf(path, sizeof(path), "%s/meta.dat", argv[optind]) >= sizeof(path))
		usage();

	if (access(path, F_OK) != 0) {
		fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0 || write(fd, "01234567", 8) != 8 || close(fd) != 0) {
			fprintf(stderr, "metarate: create %s: %s\n", path, strerror(errno));
			return 1;
		}
	}
	for (long i = 0; i < warmup; i++) {
		r = one(op, path);
		if (r) {
			fprintf(stderr, "metarate: %s: %s\n", path, strerror(-r));
			return 1;
		}
	}

	start = now_s();
	end = start;
	for (;;) {
		if (count ? ops >= count : (ops % 64 == 0 && (end = now_s()) - start >= secs))
			break;
		r = one(op, path);
		if (r) {
			fprintf(stderr, "metarate: %s: %s\n", path, strerror(-r));
			return 1;
		}
		ops++;
	}
	end = now_s();
	printf("ops=%ld secs=%.6f rate=%.1f\n", ops, end - start, (double)ops / (end - start));
	return 0;
}
