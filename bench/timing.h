/* Timing helpers shared by the benchmark programs (handoff.c, zkwrite.c). */
#ifndef LOCKFS_BENCH_TIMING_H
#define LOCKFS_BENCH_TIMING_H

#include <stdint.h>
#include <time.h>

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* For qsort of uint64_t. */
static inline int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The p-th quantile of n sorted values. */
static inline uint64_t pct(const uint64_t *v, long n, double p)
{
	long i = (long)(p * (double)(n - 1) + 0.5);

	return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

#endif
