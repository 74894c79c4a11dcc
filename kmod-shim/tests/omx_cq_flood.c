// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * omx_cq_flood: OMX_METHOD_CQ_NOTIFY N times on a CQ whose completion
 * channel nobody reads, and check that kernel memory stayed flat: the
 * kernel keeps at most OMX_CQ_MAX_UNREAD (16) unread events per CQ and
 * folds the rest into one event owed until the channel is read.
 *
 *   omx_cq_flood /dev/infiniband/uverbsN N [MAX_GROWTH_KB]
 *
 * Prints the time the N calls took and, before and after, SUnreclaim
 * (/proc/meminfo) and the active objects of the kmalloc caches up to 128
 * bytes (/proc/slabinfo, root only), where uverbs' event entries live.
 * Fails (exit 1) if SUnreclaim or those caches grew by more than
 * MAX_GROWTH_KB (default 8192), if more than 16 events are readable after
 * the flood, or if the owed event does not follow once they are read.
 * Without the bound, 10^6 calls leave 10^6 events of 56 bytes queued.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "omx_raw.h"

#define CQ_UH 77
#define BOUND 16	/* OMX_CQ_MAX_UNREAD in kmod-shim/rdma_omx.h */

static long meminfo_kb(const char *key)
{
	char line[256];
	size_t n = strlen(key);
	long v = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, n) && line[n] == ':')
			v = strtol(line + n + 1, NULL, 10);
	fclose(f);
	return v;
}

/*
 * Bytes in active objects of the kmalloc caches of objects up to 128
 * bytes (kmalloc-64, kmalloc-rnd-NN-96, kmalloc-cg-128, ...).
 */
static long small_kmalloc_bytes(void)
{
	char line[512], name[128];
	long active, total, size, sum = 0;
	FILE *f = fopen("/proc/slabinfo", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%127s %ld %ld %ld", name, &active, &total,
			   &size) != 4 || strncmp(name, "kmalloc-", 8))
			continue;
		if (size <= 128)
			sum += active * size;
	}
	fclose(f);
	return sum;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void settle(void)
{
	/* Let the CQ work run and RCU-freed objects go back to the slabs. */
	sync();
	usleep(1500 * 1000);
}

int main(int argc, char **argv)
{
	long n, max_kb = 8192, slab0, slab1, km0, km1, errors = 0, i;
	struct raw_ctx_resp ctx;
	int fd, chan, rv, unread, owed, failed = 0;
	uint32_t cq;
	double t;

	if (argc < 3) {
		fprintf(stderr, "usage: %s /dev/infiniband/uverbsN N [MAX_GROWTH_KB]\n",
			argv[0]);
		return 2;
	}
	n = atol(argv[2]);
	if (argc > 3)
		max_kb = atol(argv[3]);
	fd = open(argv[1], O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		perror(argv[1]);
		return 1;
	}
	if (raw_get_context(fd, &ctx) || raw_comp_channel(fd, &chan) ||
	    raw_create_cq(fd, chan, 16, CQ_UH, &cq)) {
		fprintf(stderr, "setup failed: %s\n", strerror(errno));
		return 1;
	}

	settle();
	slab0 = meminfo_kb("SUnreclaim");
	km0 = small_kmalloc_bytes();
	t = now();
	for (i = 0; i < n; i++) {
		rv = raw_cq_notify(fd, cq);
		if (rv && !errors++)
			fprintf(stderr, "CQ_NOTIFY #%ld: %s\n", i, strerror(-rv));
	}
	t = now() - t;
	settle();
	slab1 = meminfo_kb("SUnreclaim");
	km1 = small_kmalloc_bytes();
	printf("calls=%ld errors=%ld time=%.1f s (%.2f us/call)\n", n, errors,
	       t, t * 1e6 / (n ? n : 1));
	printf("SUnreclaim before=%ld kB after=%ld kB growth=%ld kB\n", slab0,
	       slab1, slab1 - slab0);
	printf("kmalloc<=128 before=%ld kB after=%ld kB growth=%ld kB\n",
	       km0 / 1024, km1 / 1024, (km1 - km0) / 1024);

	unread = raw_read_comp_events(chan, 0, 0, CQ_UH, NULL);
	owed = raw_read_comp_events(chan, 3000, 500, CQ_UH, NULL);
	printf("events readable after the flood=%d (bound %d), then owed=%d\n",
	       unread, BOUND, owed);

	if (errors) {
		printf("FAIL: %ld calls failed\n", errors);
		failed = 1;
	}
	if (slab1 - slab0 > max_kb || (km1 - km0) / 1024 > max_kb) {
		printf("FAIL: kernel memory grew by more than %ld kB\n", max_kb);
		failed = 1;
	}
	if (n >= BOUND && (unread != BOUND || owed != 1)) {
		printf("FAIL: want %d unread events then 1 owed\n", BOUND);
		failed = 1;
	}
	if (raw_destroy_cq(fd, cq, NULL)) {
		printf("FAIL: destroy_cq\n");
		failed = 1;
	}
	close(chan);
	close(fd);
	printf("%s\n", failed ? "FLOOD FAIL" : "FLOOD PASS");
	return failed;
}
