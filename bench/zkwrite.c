/* The latency of one ZooKeeper write, the floor under a cross-host lock
 * handoff: create and delete a persistent znode, one after the other.
 *
 *   zkwrite [-n PAIRS] HOST:PORT[,HOST:PORT...] PATH
 *
 * PATH must not exist; it is created and deleted PAIRS times (synchronous
 * calls of the multi-threaded C client, one session). Every write is synced
 * to the server's transaction log before it answers, which is what a lock
 * handoff between hosts waits for twice: the holder's delete, then the
 * waiter's watch and listing.
 *
 * Output, one line of key=value pairs, times in nanoseconds:
 *   pairs= create_p50= delete_p50= pair_p50= pair_p90= pair_p99= pair_max=
 * Exit status 0, or 1 with a message on stderr. */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
/* The synchronous calls are declared only for the threaded client. */
#define THREADED
#include <zookeeper/zookeeper.h>

#include "timing.h"

/* The p-th quantile of v, sorting it first. */
static uint64_t quantile(uint64_t *v, long n, double p)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_u64);
	return pct(v, n, p);
}

static void usage(void)
{
	fprintf(stderr, "usage: zkwrite [-n PAIRS] HOST:PORT[,HOST:PORT...] PATH\n");
	exit(1);
}

int main(int argc, char **argv)
{
	long n = 500;
	uint64_t *create, *del, *pair;
	zhandle_t *zh;
	int opt, rc;

	while ((opt = getopt(argc, argv, "n:")) != -1) {
		if (opt == 'n')
			n = atol(optarg);
		else
			usage();
	}
	if (argc - optind != 2 || n <= 0)
		usage();
	create = calloc((size_t)n, sizeof(*create));
	del = calloc((size_t)n, sizeof(*del));
	pair = calloc((size_t)n, sizeof(*pair));
	if (!create || !del || !pair) {
		perror("zkwrite: calloc");
		return 1;
	}
	zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
	zh = zookeeper_init(argv[optind], NULL, 10000, NULL, NULL, 0);
	if (!zh) {
		fprintf(stderr, "zkwrite: zookeeper_init %s: %s\n", argv[optind], strerror(errno));
		return 1;
	}
	/* The first synchronous call waits for the session. */
	for (int i = 0; i < 100 && zoo_state(zh) != ZOO_CONNECTED_STATE; i++)
		usleep(100000);
	if (zoo_state(zh) != ZOO_CONNECTED_STATE) {
		fprintf(stderr, "zkwrite: no session with %s in 10 s\n", argv[optind]);
		return 1;
	}
	for (long i = 0; i < n; i++) {
		uint64_t t0 = now_ns(), t1, t2;

		rc = zoo_create(zh, argv[optind + 1], "x", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT,
				NULL, 0);
		t1 = now_ns();
		if (rc == ZOK)
			rc = zoo_delete(zh, argv[optind + 1], -1);
		t2 = now_ns();
		if (rc != ZOK) {
			fprintf(stderr, "zkwrite: %s: %s\n", argv[optind + 1], zerror(rc));
			zookeeper_close(zh);
			return 1;
		}
		create[i] = t1 - t0;
		del[i] = t2 - t1;
		pair[i] = t2 - t0;
	}
	zookeeper_close(zh);
	printf("pairs=%ld create_p50=%" PRIu64 " delete_p50=%" PRIu64 " pair_p50=%" PRIu64
	       " pair_p90=%" PRIu64 " pair_p99=%" PRIu64 " pair_max=%" PRIu64 "\n",
	       n, quantile(create, n, 0.5), quantile(del, n, 0.5), quantile(pair, n, 0.5),
	       quantile(pair, n, 0.9), quantile(pair, n, 0.99), quantile(pair, n, 1.0));
	free(create);
	free(del);
	free(pair);
	return 0;
}
