// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * omx_modify_refuse: through the provider (ibv_modify_qp), a refused
 * transition leaves the QP exactly as it was, on both sides: the engine
 * (ibv_query_qp reports its state) and the kernel's shadow (which the
 * scenario reads with `rdma resource show qp`).
 *
 *   omx_modify_refuse IBDEV STATEFILE
 *
 * Steps, each printed as "step N: ..." and checked here:
 *  1. RESET -> INIT with a P_Key index, port and access flags: accepted.
 *  2. INIT -> RTR without IBV_QP_RQ_PSN: refused by the engine (EINVAL)
 *     before the kernel is asked; the QP stays in INIT.
 *  3. INIT -> INIT with port 2: accepted by the engine (it keeps no port),
 *     refused by the kernel (EINVAL); the engine has not changed (its
 *     access flags are still those of step 1).
 *  4. INIT -> RTR with every attribute: accepted, the QP is in RTR.
 *  5. RTR -> RTS without IBV_QP_SQ_PSN: refused by the engine; the QP
 *     stays in RTR.
 * After steps 2, 3 and 5 the program writes the QP number and the state it
 * must be in to STATEFILE and waits for the scenario to compare the
 * kernel's shadow (it writes "next" into STATEFILE.go).
 */
#include <fcntl.h>
#include <unistd.h>

#include "common.h"

static const char *statefile;
static int round_no;

/* Lets the scenario check the kernel's shadow of QP qpn, expected in
 * state `want`, then waits until it says go. */
static void checkpoint(uint32_t qpn, const char *want)
{
	char path[512], go[512];
	FILE *f;
	double t0 = now_s();

	round_no++;
	snprintf(path, sizeof(path), "%s.tmp", statefile);
	f = fopen(path, "w");
	if (!f)
		die("create %s: %s", path, strerror(errno));
	fprintf(f, "%d %u %s\n", round_no, qpn, want);
	fclose(f);
	if (rename(path, statefile))
		die("rename %s: %s", statefile, strerror(errno));
	snprintf(go, sizeof(go), "%s.go%d", statefile, round_no);
	while (access(go, F_OK)) {
		if (now_s() - t0 > 120)
			die("the scenario never checked round %d", round_no);
		usleep(20000);
	}
}

static enum ibv_qp_state qp_state(struct ibv_qp *qp, int *access)
{
	struct ibv_qp_attr a;
	struct ibv_qp_init_attr ia;

	if (ibv_query_qp(qp, &a, IBV_QP_STATE | IBV_QP_ACCESS_FLAGS, &ia))
		die("ibv_query_qp: %s", strerror(errno));
	if (access)
		*access = a.qp_access_flags;
	return a.qp_state;
}

static void expect(struct ibv_qp *qp, enum ibv_qp_state want, int step)
{
	enum ibv_qp_state got = qp_state(qp, NULL);

	if (got != want)
		die("step %d: QP in state %d, expected %d", step, got, want);
}

/* What INIT -> RTR of an RC QP requires (IBTA), the QP connected to itself. */
#define RTR_MASK (IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | \
		  IBV_QP_DEST_QPN | IBV_QP_RQ_PSN | \
		  IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER)

static void rtr_attr(struct ibv_context *ctx, struct ibv_qp *qp,
		     struct ibv_qp_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->qp_state = IBV_QPS_RTR;
	a->path_mtu = IBV_MTU_1024;
	a->dest_qp_num = qp->qp_num;
	a->rq_psn = 0x123;
	a->max_dest_rd_atomic = 1;
	a->min_rnr_timer = 12;
	a->ah_attr.is_global = 1;
	a->ah_attr.port_num = 1;
	if (ibv_query_gid(ctx, 1, 0, &a->ah_attr.grh.dgid))
		die("ibv_query_gid: %s", strerror(errno));
}

int main(int argc, char **argv)
{
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	struct ibv_cq *cq;
	struct ibv_qp *qp;
	struct ibv_qp_init_attr ia = { 0 };
	struct ibv_qp_attr a;
	const int access = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE;
	int r, acc;

	if (argc != 3) {
		fprintf(stderr, "usage: %s IBDEV STATEFILE\n", argv[0]);
		return 2;
	}
	statefile = argv[2];
	ctx = open_by_name(argv[1]);
	pd = ibv_alloc_pd(ctx);
	cq = pd ? ibv_create_cq(ctx, 16, NULL, NULL, 0) : NULL;
	if (!cq)
		die("pd/cq: %s", strerror(errno));
	ia.send_cq = cq;
	ia.recv_cq = cq;
	ia.qp_type = IBV_QPT_RC;
	ia.cap.max_send_wr = 4;
	ia.cap.max_recv_wr = 4;
	ia.cap.max_send_sge = 1;
	ia.cap.max_recv_sge = 1;
	qp = ibv_create_qp(pd, &ia);
	if (!qp)
		die("ibv_create_qp: %s", strerror(errno));

	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_INIT;
	a.port_num = 1;
	a.qp_access_flags = access;
	r = ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX |
			  IBV_QP_PORT | IBV_QP_ACCESS_FLAGS);
	if (r)
		die("step 1: RESET->INIT: %s", strerror(r));
	expect(qp, IBV_QPS_INIT, 1);
	printf("step 1: RESET->INIT accepted\n");

	rtr_attr(ctx, qp, &a);
	r = ibv_modify_qp(qp, &a, RTR_MASK & ~IBV_QP_RQ_PSN);
	if (r != EINVAL)
		die("step 2: INIT->RTR without RQ_PSN gave %d, expected EINVAL", r);
	expect(qp, IBV_QPS_INIT, 2);
	printf("step 2: INIT->RTR without RQ_PSN refused, QP in INIT\n");
	checkpoint(qp->qp_num, "INIT");

	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_INIT;
	a.port_num = 2;
	a.qp_access_flags = IBV_ACCESS_REMOTE_READ;
	r = ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_PORT |
			  IBV_QP_ACCESS_FLAGS);
	if (r != EINVAL)
		die("step 3: INIT->INIT with port 2 gave %d, expected EINVAL", r);
	if (qp_state(qp, &acc) != IBV_QPS_INIT || acc != access)
		die("step 3: the refused modify changed the QP (access 0x%x)",
		    acc);
	printf("step 3: INIT->INIT with port 2 refused by the kernel, QP unchanged\n");
	checkpoint(qp->qp_num, "INIT");

	rtr_attr(ctx, qp, &a);
	r = ibv_modify_qp(qp, &a, RTR_MASK);
	if (r)
		die("step 4: INIT->RTR: %s", strerror(r));
	expect(qp, IBV_QPS_RTR, 4);
	printf("step 4: INIT->RTR accepted\n");

	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTS;
	a.timeout = 14;
	a.retry_cnt = 7;
	a.rnr_retry = 7;
	a.max_rd_atomic = 1;
	r = ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_TIMEOUT |
			  IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
			  IBV_QP_MAX_QP_RD_ATOMIC);
	if (r != EINVAL)
		die("step 5: RTR->RTS without SQ_PSN gave %d, expected EINVAL", r);
	expect(qp, IBV_QPS_RTR, 5);
	printf("step 5: RTR->RTS without SQ_PSN refused, QP in RTR\n");
	checkpoint(qp->qp_num, "RTR");

	if (ibv_destroy_qp(qp) || ibv_destroy_cq(cq) || ibv_dealloc_pd(pd) ||
	    ibv_close_device(ctx))
		die("teardown: %s", strerror(errno));
	printf("PASS\n");
	return 0;
}
