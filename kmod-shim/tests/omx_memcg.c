// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * omx_memcg: what rdma_omx allocates for a user is charged to the user's
 * memory cgroup (GFP_KERNEL_ACCOUNT): registering N MRs must raise the
 * cgroup's unreclaimable slab (memory.stat slab_unreclaimable) by at
 * least 100 bytes per MR (an omx_mr alone is larger), and deregistering
 * them must give it back.
 *
 *   omx_memcg /dev/infiniband/uverbsN N
 *
 * Run inside a cgroup v2 group with the memory controller (the scenario
 * creates one); exit 1 if the charge is missing.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include "omx_raw.h"

static long slab_unreclaimable(void)
{
	char cg[512], path[700], line[256];
	long v = -1;
	FILE *f = fopen("/proc/self/cgroup", "r");

	if (!f || !fgets(cg, sizeof(cg), f) || strncmp(cg, "0::", 3))
		return -1;
	fclose(f);
	cg[strcspn(cg, "\n")] = 0;
	snprintf(path, sizeof(path), "/sys/fs/cgroup%s/memory.stat", cg + 3);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "slab_unreclaimable ", 19))
			v = atol(line + 19);
	fclose(f);
	return v;
}

int main(int argc, char **argv)
{
	struct ib_uverbs_reg_mr_resp r;
	struct raw_ctx_resp ctx;
	long n, i, s0, s1, s2;
	uint32_t pd, *mrs;
	char *buf;
	int fd, rv;

	if (argc != 3) {
		fprintf(stderr, "usage: %s /dev/infiniband/uverbsN N\n", argv[0]);
		return 2;
	}
	n = atol(argv[2]);
	mrs = calloc(n, sizeof(*mrs));
	buf = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	fd = open(argv[1], O_RDWR | O_CLOEXEC);
	if (!mrs || fd < 0 || raw_get_context(fd, &ctx) ||
	    raw_alloc_pd(fd, &pd)) {
		fprintf(stderr, "setup failed\n");
		return 2;
	}
	s0 = slab_unreclaimable();
	for (i = 0; i < n; i++) {
		rv = raw_reg_mr(fd, pd, (uintptr_t)buf, 4096,
				IB_UVERBS_ACCESS_LOCAL_WRITE, &r);
		if (rv) {
			fprintf(stderr, "reg_mr #%ld: %s\n", i, strerror(-rv));
			return 1;
		}
		mrs[i] = r.mr_handle;
	}
	s1 = slab_unreclaimable();
	for (i = 0; i < n; i++)
		raw_dereg_mr(fd, mrs[i]);
	sleep(1);
	s2 = slab_unreclaimable();
	printf("memcg slab_unreclaimable: %ld before, %ld with %ld MRs (+%ld bytes, %ld per MR), %ld after dereg\n",
	       s0, s1, n, s1 - s0, n ? (s1 - s0) / n : 0, s2);
	if (s0 < 0 || s1 - s0 < 100 * n) {
		printf("MEMCG FAIL: MRs not charged to the cgroup\n");
		return 1;
	}
	printf("MEMCG PASS\n");
	return 0;
}
