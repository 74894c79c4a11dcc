// SPDX-License-Identifier: GPL-2.0
/*
 * omx_mpi: an MPI check for the omx-mpi scenario (Open MPI over UCX over
 * omx), on an even number of ranks (2, or 8 for the all-to-all run).
 *
 *   omx_mpi [-n ITERS] [-l LAT_ITERS] [-t TAG]
 *
 * Ping-pong: ranks pair up (0-1, 2-3, ...) and all pairs play at once:
 * for each size (0, 1 B, 4 KiB, 64 KiB, 1 MiB) the even rank sends and
 * the odd one answers, ITERS round trips (fewer for the large sizes).
 * Each message carries a pattern that depends on the iteration, the size
 * and the sender, and the receiver checks the count, the source and every
 * byte, so a stale, truncated or misrouted buffer is caught on both sides.
 *
 * Alltoall: MPI_Alltoall of blocks of 1 B, 1000 B and 64 KiB, 3 rounds
 * each; every block's bytes depend on the round, its sender and its
 * destination, and every rank checks every block it received.
 *
 * Allreduce: MPI_SUM over int64 and double vectors of several lengths,
 * with values that depend on the rank, the element and the round; the
 * double values are multiples of 1/4 below 2^40, so the sum is exact in
 * any order and is compared with ==.
 *
 * Latency: LAT_ITERS round trips of 0 and 8 bytes after a warm-up; rank 0
 * prints the half round trip as
 *   omx_mpi: result TAG_lat_0B_us=... TAG_lat_8B_us=... TAG_bw_1MiB_MBps=...
 * The last line of rank 0 is "omx_mpi: PASS" when every check on every
 * rank passed; any mismatch prints what differed and exits non-zero
 * (MPI_Abort).
 */
#include <inttypes.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int rank;

#define die(...)                                                   \
	do {                                                       \
		fprintf(stderr, "omx_mpi[%d]: ", rank);            \
		fprintf(stderr, __VA_ARGS__);                      \
		fprintf(stderr, "\n");                             \
		fflush(stderr);                                    \
		MPI_Abort(MPI_COMM_WORLD, 2);                      \
		exit(2);                                           \
	} while (0)

#define check_mpi(call)                                            \
	do {                                                       \
		int rc_ = (call);                                  \
		if (rc_ != MPI_SUCCESS)                            \
			die("%s failed: %d", #call, rc_);          \
	} while (0)

/* One byte of the message of iteration it, size len, sent by rank from. */
static uint8_t pattern(uint32_t it, uint32_t len, int from, size_t j)
{
	uint32_t x = (uint32_t)j * 0x9e3779b1u ^ it * 0x85ebca6bu ^
		     len * 0xc2b2ae35u ^ (uint32_t)(from + 1) * 0x27d4eb2fu;

	x ^= x >> 15;
	x *= 0x2c1b3c6du;
	x ^= x >> 12;
	return (uint8_t)x;
}

static void fill(uint8_t *b, size_t len, uint32_t it, int from)
{
	for (size_t j = 0; j < len; j++)
		b[j] = pattern(it, (uint32_t)len, from, j);
}

static void verify(const uint8_t *b, size_t len, uint32_t it, int from,
		   const MPI_Status *st)
{
	int count;

	check_mpi(MPI_Get_count(st, MPI_BYTE, &count));
	if ((size_t)count != len)
		die("pingpong iteration %u: received %d bytes, expected %zu",
		    it, count, len);
	if (st->MPI_SOURCE != (rank ^ 1))
		die("pingpong iteration %u: message from rank %d",
		    it, st->MPI_SOURCE);
	for (size_t j = 0; j < len; j++) {
		uint8_t want = pattern(it, (uint32_t)len, from, j);

		if (b[j] != want)
			die("pingpong size %zu iteration %u: byte %zu is 0x%02x, expected 0x%02x",
			    len, it, j, b[j], want);
	}
}

/* Checked round trips of len bytes; it0 keeps iterations distinct. */
static void pingpong_checked(uint8_t *buf, size_t len, int iters, uint32_t it0)
{
	MPI_Status st;

	for (int i = 0; i < iters; i++) {
		uint32_t it = it0 + (uint32_t)i;

		if (!(rank & 1)) {
			fill(buf, len, it, rank);
			check_mpi(MPI_Send(buf, (int)len, MPI_BYTE, rank ^ 1, 1, MPI_COMM_WORLD));
			memset(buf, 0xa5, len);
			check_mpi(MPI_Recv(buf, (int)len, MPI_BYTE, rank ^ 1, 2, MPI_COMM_WORLD, &st));
			verify(buf, len, it, rank ^ 1, &st);
		} else {
			memset(buf, 0x5a, len);
			check_mpi(MPI_Recv(buf, (int)len, MPI_BYTE, rank ^ 1, 1, MPI_COMM_WORLD, &st));
			verify(buf, len, it, rank ^ 1, &st);
			fill(buf, len, it, rank);
			check_mpi(MPI_Send(buf, (int)len, MPI_BYTE, rank ^ 1, 2, MPI_COMM_WORLD));
		}
	}
	if (rank == 0)
		printf("omx_mpi: pingpong %zu B x %d: data checked\n", len, iters);
}

/* Untimed warm-up then iters timed round trips; half round trip in us. */
static double pingpong_time(uint8_t *buf, size_t len, int iters)
{
	double t0 = 0;

	for (int i = -iters / 10 - 1; i < iters; i++) {
		if (i == 0) {
			check_mpi(MPI_Barrier(MPI_COMM_WORLD));
			t0 = MPI_Wtime();
		}
		if (!(rank & 1)) {
			check_mpi(MPI_Send(buf, (int)len, MPI_BYTE, rank ^ 1, 3, MPI_COMM_WORLD));
			check_mpi(MPI_Recv(buf, (int)len, MPI_BYTE, rank ^ 1, 3, MPI_COMM_WORLD,
					   MPI_STATUS_IGNORE));
		} else {
			check_mpi(MPI_Recv(buf, (int)len, MPI_BYTE, rank ^ 1, 3, MPI_COMM_WORLD,
					   MPI_STATUS_IGNORE));
			check_mpi(MPI_Send(buf, (int)len, MPI_BYTE, rank ^ 1, 3, MPI_COMM_WORLD));
		}
	}
	return (MPI_Wtime() - t0) * 1e6 / iters / 2;
}

static int64_t ival(int r, size_t k, int round)
{
	return ((int64_t)(r + 1) << 33) - (int64_t)k * (r + 3) + round * 1000003LL;
}

static double dval(int r, size_t k, int round)
{
	return (double)((k * 7919 + (size_t)r * 104729 + (size_t)round * 31) % 1000000) * 0.25 -
	       (double)r * 1024.5;
}

static void allreduce_checked(size_t n, int round, int size)
{
	int64_t *is = malloc(n * sizeof(*is)), *ir = malloc(n * sizeof(*ir));
	double *ds = malloc(n * sizeof(*ds)), *dr = malloc(n * sizeof(*dr));

	if (!is || !ir || !ds || !dr)
		die("out of memory");
	for (size_t k = 0; k < n; k++) {
		is[k] = ival(rank, k, round);
		ds[k] = dval(rank, k, round);
	}
	memset(ir, 0, n * sizeof(*ir));
	memset(dr, 0, n * sizeof(*dr));
	check_mpi(MPI_Allreduce(is, ir, (int)n, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD));
	check_mpi(MPI_Allreduce(ds, dr, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD));
	for (size_t k = 0; k < n; k++) {
		int64_t iw = 0;
		double dw = 0;

		for (int r = 0; r < size; r++) {
			iw += ival(r, k, round);
			dw += dval(r, k, round);
		}
		if (ir[k] != iw)
			die("allreduce int64 n=%zu round %d: element %zu is %" PRId64
			    ", expected %" PRId64, n, round, k, ir[k], iw);
		if (dr[k] != dw)
			die("allreduce double n=%zu round %d: element %zu is %.17g, expected %.17g",
			    n, round, k, dr[k], dw);
	}
	free(is);
	free(ir);
	free(ds);
	free(dr);
}

/*
 * One MPI_Alltoall of len-byte blocks: the block from rank `from` to rank
 * `to` in round `round` holds pattern(round * size + to, len, from, j).
 */
static void alltoall_checked(size_t len, int round, int size)
{
	uint8_t *sb = malloc(len * (size_t)size), *rb = malloc(len * (size_t)size);

	if (!sb || !rb)
		die("out of memory");
	for (int d = 0; d < size; d++)
		for (size_t j = 0; j < len; j++)
			sb[(size_t)d * len + j] =
				pattern((uint32_t)(round * size + d), (uint32_t)len, rank, j);
	memset(rb, 0xa5, len * (size_t)size);
	check_mpi(MPI_Alltoall(sb, (int)len, MPI_BYTE, rb, (int)len, MPI_BYTE,
			       MPI_COMM_WORLD));
	for (int from = 0; from < size; from++)
		for (size_t j = 0; j < len; j++) {
			uint8_t want = pattern((uint32_t)(round * size + rank),
					       (uint32_t)len, from, j);

			if (rb[(size_t)from * len + j] != want)
				die("alltoall %zu B round %d: byte %zu from rank %d is 0x%02x, expected 0x%02x",
				    len, round, j, from, rb[(size_t)from * len + j], want);
		}
	free(sb);
	free(rb);
}

int main(int argc, char **argv)
{
	static const size_t sizes[] = { 0, 1, 4096, 65536, 1 << 20 };
	static const size_t lens[] = { 1, 7, 1000, 65536, 300000 };
	int iters = 100, lat_iters = 1000, size, opt;
	const char *tag = "mpi";
	char host[256];
	uint8_t *buf;
	uint32_t it0 = 1;

	check_mpi(MPI_Init(&argc, &argv));
	check_mpi(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
	check_mpi(MPI_Comm_size(MPI_COMM_WORLD, &size));
	while ((opt = getopt(argc, argv, "n:l:t:")) != -1) {
		switch (opt) {
		case 'n':
			iters = atoi(optarg);
			break;
		case 'l':
			lat_iters = atoi(optarg);
			break;
		case 't':
			tag = optarg;
			break;
		default:
			die("usage: omx_mpi [-n ITERS] [-l LAT_ITERS] [-t TAG]");
		}
	}
	if (size < 2 || size % 2)
		die("needs an even number of ranks, got %d", size);
	if (iters < 1 || lat_iters < 1)
		die("-n and -l must be positive");
	if (gethostname(host, sizeof(host)) != 0)
		strcpy(host, "?");
	printf("omx_mpi: rank %d of %d on %s\n", rank, size, host);
	fflush(stdout);

	buf = malloc(sizes[sizeof(sizes) / sizeof(sizes[0]) - 1]);
	if (!buf)
		die("out of memory");

	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		/* 1 MiB: a tenth of the round trips (they are slow under TCG). */
		int n = sizes[s] >= 65536 ? iters / 10 + 1 : iters;

		pingpong_checked(buf, sizes[s], n, it0);
		it0 += (uint32_t)n;
	}

	for (int round = 0; round < 3; round++)
		for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++)
			allreduce_checked(lens[l], round, size);
	if (rank == 0)
		printf("omx_mpi: allreduce int64/double sum, %zu lengths x 3 rounds: checked\n",
		       sizeof(lens) / sizeof(lens[0]));

	static const size_t blocks[] = { 1, 1000, 65536 };

	for (int round = 0; round < 3; round++)
		for (size_t b = 0; b < sizeof(blocks) / sizeof(blocks[0]); b++)
			alltoall_checked(blocks[b], round, size);
	if (rank == 0)
		printf("omx_mpi: alltoall %d ranks, 1 B/1000 B/64 KiB blocks x 3 rounds: checked\n",
		       size);

	double lat0 = pingpong_time(buf, 0, lat_iters);
	double lat8 = pingpong_time(buf, 8, lat_iters);
	int bw_iters = lat_iters / 50 + 2;
	double half = pingpong_time(buf, 1 << 20, bw_iters);

	/* Every rank got here without a mismatch: say so once. */
	check_mpi(MPI_Barrier(MPI_COMM_WORLD));
	if (rank == 0) {
		printf("omx_mpi: result %s_lat_0B_us=%.2f %s_lat_8B_us=%.2f %s_bw_1MiB_MBps=%.1f\n",
		       tag, lat0, tag, lat8, tag, (double)(1 << 20) / half);
		printf("omx_mpi: PASS\n");
	}
	free(buf);
	check_mpi(MPI_Finalize());
	return 0;
}
