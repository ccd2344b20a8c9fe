/* Lock handoff latency: two processes pass one file back and forth.
 *
 *   handoff [-n HANDOFFS] [-m MAX_ACQUISITIONS] open|flock FILE [FILE2]
 *
 * With FILE2 the second process opens the file by that path instead: the
 * same file through another mount (two lockfs mounts of one directory in
 * one cluster stand for two hosts).
 *
 * Each process loops: open FILE O_RDWR (mode "flock": then flock LOCK_EX),
 * read the token the previous holder left, write its own token, close. In
 * mode "open" the exclusion comes from lockfs itself (the open blocks while
 * the other process holds the file); in mode "flock" it comes from the
 * kernel's flock on a plain directory.
 *
 * A handoff is an acquisition whose token shows the other process held the
 * file last. Its latency runs from the moment the previous holder started
 * close() to the moment this process's open() (or flock()) returned. A sample
 * only counts when this process was already waiting at that moment (it
 * entered open() before the other started close()); otherwise it would time
 * an uncontended open and flatter the result. Acquisitions that find their
 * own token (the releaser got the lock straight back) are counted as
 * "again".
 *
 * Output, one line of key=value pairs, times in nanoseconds:
 *   handoffs= again= late= p50= p90= p99= max= mean= acquisitions=
 * Exit status 0, or 1 with a message on stderr. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "timing.h"

#define TOKEN_LEN 8

/* Shared by the two players through a MAP_SHARED mapping; each field is
 * written by the player that holds the file lock, and the lock's handoff
 * (a system call on both sides) orders those writes for the next holder. */
struct shared {
	_Atomic uint64_t release_ns;    /* when the last holder began close() */
	_Atomic int last_holder;        /* who wrote release_ns */
	_Atomic long handoffs;          /* valid samples so far, both players */
	_Atomic long acquisitions;
	_Atomic int stop;
	_Atomic int go;
	_Atomic int failed;
	long nsamples[2];
	long again[2];
	long late[2];
	uint64_t samples[];             /* [2][cap] */
};

static int play(struct shared *sh, int me, const char *path, int use_flock,
		long want, long max_acq, long cap)
{
	char mine[TOKEN_LEN], seen[TOKEN_LEN + 1];
	uint64_t *out = sh->samples + (size_t)me * (size_t)cap;

	memset(mine, ' ', sizeof(mine));
	memcpy(mine, me ? "player1" : "player0", 7);
	while (!atomic_load(&sh->go))
		;
	for (;;) {
		uint64_t entered, got, rel;
		int fd, prev;
		ssize_t n;

		if (atomic_load(&sh->stop))
			return 0;
		entered = now_ns();
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0) {
			fprintf(stderr, "handoff: open %s: %s\n", path, strerror(errno));
			return -1;
		}
		if (use_flock && flock(fd, LOCK_EX) != 0) {
			fprintf(stderr, "handoff: flock: %s\n", strerror(errno));
			close(fd);
			return -1;
		}
		got = now_ns();
		rel = atomic_load(&sh->release_ns);
		prev = atomic_load(&sh->last_holder);
		n = pread(fd, seen, TOKEN_LEN, 0);
		if (n < 0) {
			fprintf(stderr, "handoff: read: %s\n", strerror(errno));
			close(fd);
			return -1;
		}
		seen[n] = '\0';
		if (atomic_load(&sh->stop)) {
			close(fd);
			return 0;
		}
		if (n == TOKEN_LEN && memcmp(seen, mine, TOKEN_LEN) == 0) {
			sh->again[me]++;
		} else if (n == TOKEN_LEN && prev == !me && rel) {
			if (entered < rel && sh->nsamples[me] < cap) {
				out[sh->nsamples[me]++] = got - rel;
				if (atomic_fetch_add(&sh->handoffs, 1) + 1 >= want)
					atomic_store(&sh->stop, 1);
			} else {
				sh->late[me]++;
			}
		}
		if (pwrite(fd, mine, TOKEN_LEN, 0) != TOKEN_LEN) {
			fprintf(stderr, "handoff: write: %s\n", strerror(errno));
			close(fd);
			return -1;
		}
		if (atomic_fetch_add(&sh->acquisitions, 1) + 1 >= max_acq)
			atomic_store(&sh->stop, 1);
		atomic_store(&sh->last_holder, me);
		atomic_store(&sh->release_ns, now_ns());
		if (close(fd) != 0) {
			fprintf(stderr, "handoff: close: %s\n", strerror(errno));
			return -1;
		}
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: handoff [-n HANDOFFS] [-m MAX_ACQUISITIONS] open|flock FILE [FILE2]\n");
	exit(1);
}

int main(int argc, char **argv)
{
	long want = 2000, max_acq = 0, cap, total;
	struct shared *sh;
	uint64_t *all, sum = 0;
	size_t size;
	pid_t pids[2];
	int use_flock, opt, fd, status, ok = 1;

	while ((opt = getopt(argc, argv, "n:m:")) != -1) {
		if (opt == 'n')
			want = atol(optarg);
		else if (opt == 'm')
			max_acq = atol(optarg);
		else
			usage();
	}
	if (argc - optind < 2 || argc - optind > 3 || want <= 0)
		usage();
	if (strcmp(argv[optind], "open") == 0)
		use_flock = 0;
	else if (strcmp(argv[optind], "flock") == 0)
		use_flock = 1;
	else
		usage();
	if (max_acq <= 0)
		max_acq = want * 50;
	cap = want + 2;

	/* The file exists with a neutral token before the players start, so
	 * neither ever creates it. */
	fd = open(argv[optind + 1], O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, "nobody  ", TOKEN_LEN) != TOKEN_LEN || close(fd) != 0) {
		fprintf(stderr, "handoff: create %s: %s\n", argv[optind + 1], strerror(errno));
		return 1;
	}

	size = sizeof(*sh) + 2 * (size_t)cap * sizeof(uint64_t);
	sh = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED) {
		perror("handoff: mmap");
		return 1;
	}
	for (int i = 0; i < 2; i++) {
		pids[i] = fork();
		if (pids[i] < 0) {
			perror("handoff: fork");
			atomic_store(&sh->stop, 1);
			atomic_store(&sh->go, 1);
			return 1;
		}
		if (pids[i] == 0) {
			const char *path = i == 1 && argc - optind == 3 ? argv[optind + 2]
								      : argv[optind + 1];
			int r = play(sh, i, path, use_flock, want, max_acq, cap);

			if (r)
				atomic_store(&sh->failed, 1);
			atomic_store(&sh->stop, 1);
			_exit(r ? 1 : 0);
		}
	}
	atomic_store(&sh->go, 1);
	for (int i = 0; i < 2; i++) {
		if (waitpid(pids[i], &status, 0) < 0 || !WIFEXITED(status) ||
		    WEXITSTATUS(status) != 0)
			ok = 0;
	}
	if (!ok || atomic_load(&sh->failed))
		return 1;

	total = sh->nsamples[0] + sh->nsamples[1];
	if (total == 0) {
		fprintf(stderr, "handoff: no handoff happened in %ld acquisitions\n",
			(long)atomic_load(&sh->acquisitions));
		return 1;
	}
	all = malloc((size_t)total * sizeof(*all));
	if (!all) {
		perror("handoff: malloc");
		return 1;
	}
	memcpy(all, sh->samples, (size_t)sh->nsamples[0] * sizeof(*all));
	memcpy(all + sh->nsamples[0], sh->samples + cap, (size_t)sh->nsamples[1] * sizeof(*all));
	qsort(all, (size_t)total, sizeof(*all), cmp_u64);
	for (long i = 0; i < total; i++)
		sum += all[i];
	printf("handoffs=%ld again=%ld late=%ld p50=%" PRIu64 " p90=%" PRIu64
	       " p99=%" PRIu64 " max=%" PRIu64 " mean=%" PRIu64 " acquisitions=%ld\n",
	       total, sh->again[0] + sh->again[1], sh->late[0] + sh->late[1],
	       pct(all, total, 0.50), pct(all, total, 0.90), pct(all, total, 0.99),
	       all[total - 1], sum / (uint64_t)total, (long)atomic_load(&sh->acquisitions));
	free(all);
	munmap(sh, size);
	return 0;
}
