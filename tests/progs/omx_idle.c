// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * omx_idle: what idle QPs cost a context (issue 14 §2).
 *
 *   omx_idle -d DEV [-q IDLE_QPS] [-n ITERS] [-t SECONDS] [-w SECONDS]
 *
 * In one context of DEV, two RC QPs a and b connected to each other
 * through GID index 0 (same-device loopback) play a 2-byte SEND
 * ping-pong, busy-polling as ib_send_lat does.  The program measures, in
 * this order:
 *   1. the ping-pong's one-way latency (RTT/2, median over ITERS rounds)
 *      with a and b the context's only QPs;
 *   2. after IDLE_QPS more RC QPs (default 1000, connected in pairs, each
 *      with one receive posted, nothing in flight) joined the context and
 *      one second passed: the CPU time the whole process (its progress
 *      thread included) used while nobody polled for SECONDS (default
 *      10), as a percentage of one CPU;
 *   3. the ping-pong's latency again, with the idle QPs there;
 *   4. after the idle QPs are destroyed, the lone latency once more (a
 *      second baseline: the two brackets show the run's drift).
 * Every completion must succeed and carry the right length.  Prints
 * key=value lines (lat_lone_us, idle_cpu_pct, lat_idle_us, lat_lone2_us,
 * idle_qps) and exits 0.  Numbers are for benchmarks (docs/benchmarks.md):
 * the program asserts no timing.  -w is how long to wait for one
 * completion (default 30 s).
 */
#include <sys/resource.h>
#include <unistd.h>
#include "common.h"

static struct ibv_context *ctx;
static struct ibv_pd *pd;
static struct ibv_mr *mr;
static uint8_t buf[4096];
static union ibv_gid gid;
static double wait_s = 30;

static struct ibv_qp *rc_qp(struct ibv_cq *cq, int depth)
{
	struct ibv_qp_init_attr ia = {
		.send_cq = cq, .recv_cq = cq, .qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = depth, .max_recv_wr = depth,
			 .max_send_sge = 1, .max_recv_sge = 1,
			 .max_inline_data = 16 },
	};
	struct ibv_qp_attr a = {
		.qp_state = IBV_QPS_INIT, .port_num = 1,
	};
	struct ibv_qp *qp = ibv_create_qp(pd, &ia);

	if (!qp)
		die("ibv_create_qp: %s", strerror(errno));
	if (ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX |
			  IBV_QP_PORT | IBV_QP_ACCESS_FLAGS))
		die("modify to INIT: %s", strerror(errno));
	return qp;
}

static void connect_to(struct ibv_qp *qp, uint32_t dest_qpn)
{
	static const struct rc_conn c = {
		.rd_atomic = 1, .min_rnr_timer = 12, .rnr_retry = 7, .timeout = 14,
	};

	rc_to_rts(qp, dest_qpn, &gid, &c);
}

static void post_recv(struct ibv_qp *qp, uint64_t id)
{
	struct ibv_sge sge = { (uintptr_t)buf + 2048, 64, mr->lkey };
	struct ibv_recv_wr wr = { .wr_id = id, .sg_list = &sge, .num_sge = 1 };
	struct ibv_recv_wr *bad;

	if (ibv_post_recv(qp, &wr, &bad))
		die("ibv_post_recv: %s", strerror(errno));
}

static void post_send(struct ibv_qp *qp, uint64_t id)
{
	struct ibv_sge sge = { (uintptr_t)buf, 2, mr->lkey };
	struct ibv_send_wr wr = {
		.wr_id = id, .sg_list = &sge, .num_sge = 1,
		.opcode = IBV_WR_SEND,
		.send_flags = IBV_SEND_SIGNALED | IBV_SEND_INLINE,
	};
	struct ibv_send_wr *bad;

	if (ibv_post_send(qp, &wr, &bad))
		die("ibv_post_send: %s", strerror(errno));
}

/*
 * Polls cq until a receive completes; send completions met on the way are
 * checked and counted off *sends.
 */
static void wait_recv(struct ibv_cq *cq, int *sends)
{
	double t0 = now_s();
	struct ibv_wc wc;
	int n;

	for (;;) {
		n = ibv_poll_cq(cq, 1, &wc);
		if (n < 0)
			die("ibv_poll_cq: %d", n);
		if (n == 1) {
			if (wc.status != IBV_WC_SUCCESS)
				die("wr %llu: %s", (unsigned long long)wc.wr_id,
				    ibv_wc_status_str(wc.status));
			if (wc.opcode == IBV_WC_RECV) {
				if (wc.byte_len != 2)
					die("received %u bytes, sent 2",
					    wc.byte_len);
				return;
			}
			--*sends;
			continue;
		}
		if (now_s() - t0 > wait_s)
			die("no receive completion after %.0f s", wait_s);
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* The ping-pong: median one-way latency in microseconds. */
static double pingpong(struct ibv_qp *qa, struct ibv_cq *ca,
		       struct ibv_qp *qb, struct ibv_cq *cb, int iters)
{
	double *t = calloc(iters, sizeof(*t)), med;
	int sa = 0, sb = 0, i;

	if (!t)
		die("calloc");
	for (i = 0; i < iters; i++) {
		double t0 = now_s();

		post_send(qa, i);
		sa++;
		wait_recv(cb, &sb);
		post_recv(qb, i);
		post_send(qb, i);
		sb++;
		wait_recv(ca, &sa);
		post_recv(qa, i);
		t[i] = (now_s() - t0) / 2 * 1e6;
		/* Send completions come with or after the peer's receive. */
		while (sa > 8 || sb > 8) {
			struct ibv_wc wc;

			if (now_s() - t0 > wait_s)
				die("no send completion after %.0f s", wait_s);
			if (ibv_poll_cq(sa > 8 ? ca : cb, 1, &wc) == 1) {
				if (wc.status != IBV_WC_SUCCESS)
					die("send: %s",
					    ibv_wc_status_str(wc.status));
				--*(sa > 8 ? &sa : &sb);
			}
		}
	}
	qsort(t, iters, sizeof(*t), cmp_double);
	med = t[iters / 2];
	free(t);
	return med;
}

static double cpu_s(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru))
		die("getrusage: %s", strerror(errno));
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
	const char *dev = NULL;
	int nidle = 1000, iters = 2000, secs = 10, opt, i;
	struct ibv_cq *ca, *cb, *ci;
	struct ibv_qp *qa, *qb, **idle;
	double lone, lone2, with, cpu, wall;

	while ((opt = getopt(argc, argv, "d:q:n:t:w:")) != -1) {
		switch (opt) {
		case 'd': dev = optarg; break;
		case 'q': nidle = atoi(optarg); break;
		case 'n': iters = atoi(optarg); break;
		case 't': secs = atoi(optarg); break;
		case 'w': wait_s = atof(optarg); break;
		default: goto usage;
		}
	}
	if (!dev || nidle < 0 || nidle % 2 || iters < 1 || secs < 1) {
usage:
		fprintf(stderr, "usage: omx_idle -d DEV [-q IDLE_QPS (even)] "
			"[-n ITERS] [-t SECONDS] [-w SECONDS]\n");
		return 2;
	}
	ctx = open_by_name(dev);
	pd = ibv_alloc_pd(ctx);
	if (!pd)
		die("ibv_alloc_pd: %s", strerror(errno));
	mr = ibv_reg_mr(pd, buf, sizeof(buf), IBV_ACCESS_LOCAL_WRITE);
	if (!mr)
		die("ibv_reg_mr: %s", strerror(errno));
	if (ibv_query_gid(ctx, 1, 0, &gid))
		die("ibv_query_gid: %s", strerror(errno));
	ca = ibv_create_cq(ctx, 64, NULL, NULL, 0);
	cb = ibv_create_cq(ctx, 64, NULL, NULL, 0);
	ci = ibv_create_cq(ctx, nidle ? 2 * nidle : 1, NULL, NULL, 0);
	if (!ca || !cb || !ci)
		die("ibv_create_cq: %s", strerror(errno));
	qa = rc_qp(ca, 16);
	qb = rc_qp(cb, 16);
	connect_to(qa, qb->qp_num);
	connect_to(qb, qa->qp_num);
	post_recv(qa, 0);
	post_recv(qb, 0);

	lone = pingpong(qa, ca, qb, cb, iters);

	idle = calloc(nidle ? nidle : 1, sizeof(*idle));
	if (!idle)
		die("calloc");
	for (i = 0; i < nidle; i++)
		idle[i] = rc_qp(ci, 1);
	for (i = 0; i < nidle; i++) {
		connect_to(idle[i], idle[i ^ 1]->qp_num);
		post_recv(idle[i], i);
	}
	sleep(1);
	wall = now_s();
	cpu = cpu_s();
	sleep(secs);
	cpu = cpu_s() - cpu;
	wall = now_s() - wall;

	with = pingpong(qa, ca, qb, cb, iters);

	for (i = 0; i < nidle; i++)
		if (ibv_destroy_qp(idle[i]))
			die("ibv_destroy_qp: %s", strerror(errno));
	lone2 = pingpong(qa, ca, qb, cb, iters);

	printf("idle_qps=%d\n", nidle);
	printf("lat_lone_us=%.2f\n", lone);
	printf("idle_cpu_pct=%.3f\n", cpu / wall * 100);
	printf("lat_idle_us=%.2f\n", with);
	printf("lat_lone2_us=%.2f\n", lone2);
	printf("idle ok: %d idle QPs, %d rounds\n", nidle, iters);
	return 0;
}
