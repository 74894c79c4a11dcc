// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * omx_srq: the shared receive queue's rules, in one process on one device.
 *
 *   omx_srq -d DEV [-n MSGS] [-w SECONDS]
 *
 * Two senders (RC QPs a1, a2) are connected to two receivers (b1, b2)
 * that take their receives from one SRQ, all through GID index 0 of DEV.
 * Checks, in order, each with the errno rdma-core documents:
 *   - ibv_create_srq grants at least what was asked and ibv_query_srq
 *     reports it; a WR with more SGEs than max_sge is EINVAL and a WR past
 *     max_wr is ENOMEM, each with *bad_wr naming it and the WRs before it
 *     posted; the device reports IBV_DEVICE_SRQ_RESIZE, ibv_modify_srq
 *     with IBV_SRQ_MAX_WR below the WQEs waiting is EINVAL and changes
 *     nothing, doubling it lets the ring hold twice as many (then
 *     ENOMEM); IBV_SRQ_LIMIT above max_wr is EINVAL;
 *   - ibv_post_recv on a QP with an SRQ is EINVAL;
 *   - with the SRQ empty, a SEND waits (RNR) and completes once a receive
 *     is posted to the SRQ;
 *   - MSGS SENDs from a1 and a2 in turn land in MSGS distinct WQEs, each
 *     consumed once, oldest first per receiver, each buffer holding
 *     exactly what its sender sent and nothing around it, the completions
 *     naming the receiving QP;
 *   - a UD QP on the same SRQ takes a datagram into an SRQ WQE;
 *   - the limit: armed at 2 with 4 WQEs in the SRQ, the SEND that leaves
 *     fewer than 2 raises IBV_EVENT_SRQ_LIMIT_REACHED for the SRQ, once,
 *     disarming it (ibv_query_srq then reports limit 0); armed again, the
 *     next crossing raises it again;
 *   - b1 moved to ERROR raises IBV_EVENT_QP_LAST_WQE_REACHED for b1; a1
 *     (no SRQ) moved to ERROR raises nothing;
 *   - ibv_destroy_srq is EBUSY while b1 exists, and succeeds after the
 *     QPs are gone.
 * Prints "srq ok: N messages" and exits 0 on success.
 */
#include <arpa/inet.h>
#include <poll.h>
#include <stdint.h>
#include <unistd.h>
#include "common.h"

#define SLOT 512
#define PAYLOAD 300
#define MAXMSG 64

static struct ibv_context *ctx;
static struct ibv_pd *pd;
static struct ibv_cq *cq;
static struct ibv_srq *srq;
static union ibv_gid gid;
static double wait_s = 30;
static uint8_t *buf;		/* senders' payloads | receive slots */
static struct ibv_mr *mr;

static struct ibv_qp *make_qp(int with_srq)
{
	struct ibv_qp_init_attr ia = {
		.send_cq = cq, .recv_cq = cq, .qp_type = IBV_QPT_RC,
		.srq = with_srq ? srq : NULL,
		.cap = { .max_send_wr = MAXMSG, .max_recv_wr = with_srq ? 0 : 4,
			 .max_send_sge = 1, .max_recv_sge = 1 },
	};
	struct ibv_qp_attr a = {
		.qp_state = IBV_QPS_INIT, .port_num = 1,
	};
	struct ibv_qp *qp = ibv_create_qp(pd, &ia);

	if (!qp)
		die("ibv_create_qp (srq %d): %s\n", with_srq, strerror(errno));
	if (ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX |
			  IBV_QP_PORT | IBV_QP_ACCESS_FLAGS))
		die("modify to INIT: %s\n", strerror(errno));
	return qp;
}

static void connect_to(struct ibv_qp *qp, uint32_t dest_qpn)
{
	/* rnr_retry 7, infinite: the RNR check waits on purpose. */
	static const struct rc_conn c = {
		.rd_atomic = 1, .min_rnr_timer = 1, .rnr_retry = 7, .timeout = 14,
	};

	rc_to_rts(qp, dest_qpn, &gid, &c);
}

static uint8_t *slot(unsigned int i)
{
	return buf + (size_t)(2 * MAXMSG + i) * SLOT;
}

static uint8_t *payload(unsigned int m)
{
	return buf + (size_t)m * SLOT;
}

static struct ibv_recv_wr srq_wr(uint64_t id, struct ibv_sge *sge)
{
	sge->addr = (uintptr_t)slot(id);
	sge->length = SLOT;
	sge->lkey = mr->lkey;
	return (struct ibv_recv_wr){ .wr_id = id, .sg_list = sge,
				     .num_sge = 1 };
}

static void send_msg(struct ibv_qp *qp, unsigned int m)
{
	struct ibv_sge sge = { (uintptr_t)payload(m), PAYLOAD, mr->lkey };
	struct ibv_send_wr wr = {
		.wr_id = 1000 + m, .sg_list = &sge, .num_sge = 1,
		.opcode = IBV_WR_SEND, .send_flags = IBV_SEND_SIGNALED,
	};
	struct ibv_send_wr *bad;

	if (ibv_post_send(qp, &wr, &bad))
		die("ibv_post_send: %s\n", strerror(errno));
}

/* Polls n completions into wc (any order), failing on an error status. */
static void poll_n(struct ibv_wc *wc, int n)
{
	double t0 = now_s();
	int got = 0, k;

	while (got < n) {
		k = ibv_poll_cq(cq, n - got, wc + got);
		if (k < 0)
			die("ibv_poll_cq: %d\n", k);
		for (; k > 0; k--, got++)
			if (wc[got].status != IBV_WC_SUCCESS)
				die("wr %llu: %s\n",
				    (unsigned long long)wc[got].wr_id,
				    ibv_wc_status_str(wc[got].status));
		if (now_s() - t0 > wait_s)
			die("%d of %d completions after %.0f s\n", got, n,
			    wait_s);
	}
}

/* Moves qp to ERROR; the next async event (within wait_s) must be
 * `want` for qp, or none at all within half a second when want is 0. */
static void to_error_expect(struct ibv_qp *qp, enum ibv_event_type want)
{
	struct ibv_qp_attr a = { .qp_state = IBV_QPS_ERR };
	struct pollfd p = { .fd = ctx->async_fd, .events = POLLIN };
	struct ibv_async_event ev;
	int n;

	if (ibv_modify_qp(qp, &a, IBV_QP_STATE))
		die("modify to ERR: %s\n", strerror(errno));
	n = poll(&p, 1, want ? (int)(wait_s * 1000) : 500);
	if (!want) {
		if (n != 0)
			die("an async event for a QP without an SRQ\n");
		return;
	}
	if (n != 1 || ibv_get_async_event(ctx, &ev))
		die("no async event after qp %#x went to ERR\n", qp->qp_num);
	if (ev.event_type != want || ev.element.qp != qp)
		die("async event %s (qp %#x), want %s for qp %#x\n",
		    ibv_event_type_str(ev.event_type),
		    ev.element.qp ? ev.element.qp->qp_num : 0,
		    ibv_event_type_str(want), qp->qp_num);
	ibv_ack_async_event(&ev);
}

/* The next async event within `secs` must be `want` for the SRQ, or there
 * must be none when want is 0. */
static void expect_srq_event(enum ibv_event_type want, double secs)
{
	struct pollfd p = { .fd = ctx->async_fd, .events = POLLIN };
	struct ibv_async_event ev;
	int n = poll(&p, 1, (int)(secs * 1000));

	if (!want) {
		if (n != 0)
			die("an async event without a crossed, armed limit\n");
		return;
	}
	if (n != 1 || ibv_get_async_event(ctx, &ev))
		die("no IBV_EVENT_SRQ_LIMIT_REACHED within %.0f s\n", secs);
	if (ev.event_type != want || ev.element.srq != srq)
		die("async event %s, want %s for the SRQ\n",
		    ibv_event_type_str(ev.event_type), ibv_event_type_str(want));
	ibv_ack_async_event(&ev);
}

/* Posts `k` WQEs to the SRQ and arms its limit at `limit`. */
static void fill_and_arm(unsigned int k, unsigned int limit)
{
	struct ibv_srq_attr sa = { .srq_limit = limit };
	struct ibv_recv_wr w, *bad;
	struct ibv_sge sge;
	unsigned int i;

	for (i = 0; i < k; i++) {
		w = srq_wr(i, &sge);
		if (ibv_post_srq_recv(srq, &w, &bad))
			die("post_srq_recv: %s\n", strerror(errno));
	}
	if (ibv_modify_srq(srq, &sa, IBV_SRQ_LIMIT))
		die("modify_srq IBV_SRQ_LIMIT %u: %s\n", limit, strerror(errno));
	if (ibv_query_srq(srq, &sa) || sa.srq_limit != limit)
		die("ibv_query_srq: limit %u, armed %u\n", sa.srq_limit, limit);
}

/* `k` SENDs from a1 into the SRQ (through b1), each completed. */
static void consume(struct ibv_qp *a1, unsigned int k)
{
	struct ibv_wc wc[8];
	unsigned int i;

	for (i = 0; i < k; i++)
		send_msg(a1, 0);
	poll_n(wc, 2 * (int)k);
}

static void check_limit(struct ibv_qp *a1)
{
	struct ibv_srq_attr sa;

	fill_and_arm(4, 2);
	consume(a1, 2);			/* 2 left: not below 2 */
	expect_srq_event(0, 0.3);
	consume(a1, 1);			/* 1 left: crossed */
	expect_srq_event(IBV_EVENT_SRQ_LIMIT_REACHED, wait_s);
	if (ibv_query_srq(srq, &sa) || sa.srq_limit != 0)
		die("after the event the limit is %u, want 0\n", sa.srq_limit);
	consume(a1, 1);			/* disarmed: nothing */
	expect_srq_event(0, 0.3);
	fill_and_arm(4, 4);
	consume(a1, 1);			/* 3 left: crossed again */
	expect_srq_event(IBV_EVENT_SRQ_LIMIT_REACHED, wait_s);
	consume(a1, 3);
	expect_srq_event(0, 0.3);
	printf("srq limit: one IBV_EVENT_SRQ_LIMIT_REACHED per arm, "
	       "disarmed after it\n");
}

/* A UD QP on the same SRQ as the RC QPs: a datagram takes an SRQ WQE
 * (GRH, then the payload), its completion names the UD QP. */
static void check_ud_on_srq(void)
{
	struct ibv_qp_init_attr ia = {
		.send_cq = cq, .recv_cq = cq, .qp_type = IBV_QPT_UD, .srq = srq,
		.cap = { .max_send_wr = 2, .max_send_sge = 1, .max_recv_sge = 1 },
	};
	struct ibv_ah_attr aa = {
		.is_global = 1, .port_num = 1,
		.grh = { .dgid = gid, .hop_limit = 1 },
	};
	struct ibv_qp_attr a = {
		.qp_state = IBV_QPS_INIT, .port_num = 1, .qkey = 0x1111,
	};
	struct ibv_sge sge = { (uintptr_t)payload(1), PAYLOAD, 0 };
	struct ibv_send_wr wr = {
		.sg_list = &sge, .num_sge = 1, .opcode = IBV_WR_SEND,
		.send_flags = IBV_SEND_SIGNALED,
	}, *sbad;
	struct ibv_recv_wr w, *bad;
	struct ibv_qp *qp[2];
	struct ibv_wc wc[2];
	struct ibv_ah *ah;
	int i, k;

	for (i = 0; i < 2; i++) {
		ia.srq = i ? NULL : srq;
		ia.cap.max_recv_wr = i;
		qp[i] = ibv_create_qp(pd, &ia);
		if (!qp[i])
			die("ibv_create_qp(UD%s): %s\n", i ? "" : " on the SRQ",
			    strerror(errno));
		a.qp_state = IBV_QPS_INIT;
		if (ibv_modify_qp(qp[i], &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX |
				  IBV_QP_PORT | IBV_QP_QKEY))
			die("UD to INIT: %s\n", strerror(errno));
		a.qp_state = IBV_QPS_RTR;
		if (ibv_modify_qp(qp[i], &a, IBV_QP_STATE))
			die("UD to RTR: %s\n", strerror(errno));
		a.qp_state = IBV_QPS_RTS;
		if (ibv_modify_qp(qp[i], &a, IBV_QP_STATE | IBV_QP_SQ_PSN))
			die("UD to RTS: %s\n", strerror(errno));
	}
	ah = ibv_create_ah(pd, &aa);
	if (!ah)
		die("ibv_create_ah: %s\n", strerror(errno));
	w = srq_wr(7, &sge);
	if (ibv_post_srq_recv(srq, &w, &bad))
		die("post_srq_recv: %s\n", strerror(errno));
	sge = (struct ibv_sge){ (uintptr_t)payload(1), PAYLOAD, mr->lkey };
	wr.wr.ud.ah = ah;
	wr.wr.ud.remote_qpn = qp[0]->qp_num;
	wr.wr.ud.remote_qkey = 0x1111;
	if (ibv_post_send(qp[1], &wr, &sbad))
		die("UD post_send: %s\n", strerror(errno));
	poll_n(wc, 2);
	for (k = 0; k < 2; k++)
		if (wc[k].opcode == IBV_WC_RECV &&
		    (wc[k].wr_id != 7 || wc[k].qp_num != qp[0]->qp_num ||
		     wc[k].byte_len != 40 + PAYLOAD ||
		     !(wc[k].wc_flags & IBV_WC_GRH) ||
		     memcmp(slot(7) + 40, payload(1), PAYLOAD)))
			die("the datagram on the SRQ: wr %llu qp %#x len %u\n",
			    (unsigned long long)wc[k].wr_id, wc[k].qp_num,
			    wc[k].byte_len);
	if (ibv_destroy_ah(ah) || ibv_destroy_qp(qp[0]) ||
	    ibv_destroy_qp(qp[1]))
		die("UD teardown: %s\n", strerror(errno));
	printf("ud on the srq: a datagram took an SRQ WQE, GRH first\n");
}

static void check_post_rules(struct ibv_qp *b1)
{
	struct ibv_sge sge[3], many[32];
	struct ibv_recv_wr w[3], *bad = NULL;
	struct ibv_srq_attr sa;
	int i, rc;

	if (ibv_query_srq(srq, &sa))
		die("ibv_query_srq: %s\n", strerror(errno));
	if (sa.max_sge >= 32)
		die("max_sge %u: the test needs it below 32\n", sa.max_sge);
	/* Three WRs, the second with one SGE more than max_sge. */
	for (i = 0; i < 3; i++)
		w[i] = srq_wr(60 + i, &sge[i]);
	for (i = 0; i < 32; i++)
		many[i] = sge[1];
	w[0].next = &w[1];
	w[1].next = &w[2];
	w[1].sg_list = many;
	w[1].num_sge = (int)sa.max_sge + 1;
	rc = ibv_post_srq_recv(srq, w, &bad);
	if (rc != EINVAL || bad != &w[1])
		die("post_srq_recv, %u SGEs: %d (bad_wr %p, want EINVAL, %p)\n",
		    sa.max_sge + 1, rc, (void *)bad, (void *)&w[1]);
	/* w[0] went in: fill up to max_wr, then one more. */
	for (i = 1; i < (int)sa.max_wr; i++) {
		w[2] = srq_wr(0, &sge[2]);
		if (ibv_post_srq_recv(srq, &w[2], &bad))
			die("post_srq_recv %d of %u refused\n", i, sa.max_wr);
	}
	w[2] = srq_wr(0, &sge[2]);
	bad = NULL;
	rc = ibv_post_srq_recv(srq, &w[2], &bad);
	if (rc != ENOMEM || bad != &w[2])
		die("post_srq_recv past max_wr %u: %d (want ENOMEM)\n",
		    sa.max_wr, rc);
	printf("post_srq_recv: EINVAL past max_sge, ENOMEM past max_wr %u\n",
	       sa.max_wr);

	/* Resize: not below the WQEs waiting; up, and the ring holds more. */
	{
		struct ibv_device_attr da;
		unsigned int full = sa.max_wr;

		if (ibv_query_device(ctx, &da) ||
		    !(da.device_cap_flags & IBV_DEVICE_SRQ_RESIZE))
			die("IBV_DEVICE_SRQ_RESIZE not reported\n");
		sa.max_wr = full / 2;
		if (ibv_modify_srq(srq, &sa, IBV_SRQ_MAX_WR) != EINVAL)
			die("modify_srq IBV_SRQ_MAX_WR below the WQEs waiting: "
			    "want EINVAL\n");
		if (ibv_query_srq(srq, &sa) || sa.max_wr != full)
			die("a refused resize changed max_wr to %u\n", sa.max_wr);
		sa.max_wr = 2 * full;
		if (ibv_modify_srq(srq, &sa, IBV_SRQ_MAX_WR))
			die("modify_srq IBV_SRQ_MAX_WR %u: %s\n", sa.max_wr,
			    strerror(errno));
		if (ibv_query_srq(srq, &sa) || sa.max_wr != 2 * full)
			die("after the resize max_wr is %u\n", sa.max_wr);
		for (i = (int)full; i < (int)(2 * full); i++) {
			w[2] = srq_wr(0, &sge[2]);
			if (ibv_post_srq_recv(srq, &w[2], &bad))
				die("post_srq_recv %d of %u after the resize\n",
				    i, 2 * full);
		}
		w[2] = srq_wr(0, &sge[2]);
		if (ibv_post_srq_recv(srq, &w[2], &bad) != ENOMEM)
			die("post_srq_recv past the new max_wr: want ENOMEM\n");
		printf("modify_srq IBV_SRQ_MAX_WR: %u -> %u, EINVAL below the "
		       "WQEs waiting\n", full, 2 * full);
	}
	if (ibv_query_srq(srq, &sa))
		die("ibv_query_srq: %s\n", strerror(errno));
	sa.srq_limit = sa.max_wr + 1;
	if (ibv_modify_srq(srq, &sa, IBV_SRQ_LIMIT) != EINVAL)
		die("modify_srq IBV_SRQ_LIMIT above max_wr: want EINVAL\n");

	w[0] = srq_wr(0, &sge[0]);
	bad = NULL;
	{
		struct ibv_recv_wr *rbad = NULL;

		rc = ibv_post_recv(b1, &w[0], &rbad);
		if (rc != EINVAL || rbad != &w[0])
			die("ibv_post_recv on an SRQ QP: %d (want EINVAL)\n",
			    rc);
	}
	printf("modify_srq: EINVAL (limit above max_wr); "
	       "post_recv on an SRQ QP: EINVAL\n");
}

int main(int argc, char **argv)
{
	struct ibv_srq_init_attr sia = {
		.attr = { .max_wr = 4, .max_sge = 2 },
	};
	struct ibv_qp *a1, *a2, *b1, *b2;
	struct ibv_wc wc[2 * MAXMSG];
	struct ibv_recv_wr w, *bad;
	struct ibv_sge sge;
	struct ibv_srq_attr sa;
	const char *dev = NULL;
	unsigned int n = 32, m, i, seen[2 * MAXMSG] = { 0 };
	int64_t last[2] = { -1, -1 };
	int opt, k, rc;

	while ((opt = getopt(argc, argv, "d:n:w:")) != -1) {
		switch (opt) {
		case 'd': dev = optarg; break;
		case 'n': n = (unsigned int)atoi(optarg); break;
		case 'w': wait_s = atof(optarg); break;
		default: die("usage: %s -d DEV [-n MSGS] [-w SECONDS]\n",
			     argv[0]);
		}
	}
	if (!dev || n < 2 || n > MAXMSG)
		die("usage: %s -d DEV [-n 2..%d] [-w SECONDS]\n", argv[0],
		    MAXMSG);
	setvbuf(stdout, NULL, _IOLBF, 0);
	ctx = open_by_name(dev);
	if (ibv_query_gid(ctx, 1, 0, &gid))
		die("ibv_query_gid: %s\n", strerror(errno));
	pd = ibv_alloc_pd(ctx);
	cq = ibv_create_cq(ctx, 4 * MAXMSG, NULL, NULL, 0);
	buf = calloc(4 * MAXMSG, SLOT);
	if (!pd || !cq || !buf)
		die("setup: %s\n", strerror(errno));
	mr = ibv_reg_mr(pd, buf, (size_t)4 * MAXMSG * SLOT,
			IBV_ACCESS_LOCAL_WRITE);
	if (!mr)
		die("ibv_reg_mr: %s\n", strerror(errno));

	srq = ibv_create_srq(pd, &sia);
	if (!srq)
		die("ibv_create_srq: %s\n", strerror(errno));
	if (sia.attr.max_wr < 4 || sia.attr.max_sge < 2)
		die("ibv_create_srq granted max_wr %u max_sge %u\n",
		    sia.attr.max_wr, sia.attr.max_sge);
	if (ibv_query_srq(srq, &sa) || sa.max_wr != sia.attr.max_wr ||
	    sa.max_sge != sia.attr.max_sge)
		die("ibv_query_srq disagrees with create\n");

	a1 = make_qp(0);
	a2 = make_qp(0);
	b1 = make_qp(1);
	b2 = make_qp(1);
	connect_to(a1, b1->qp_num);
	connect_to(b1, a1->qp_num);
	connect_to(a2, b2->qp_num);
	connect_to(b2, a2->qp_num);

	check_post_rules(b1);
	/* Drain what the rule checks left in the SRQ, through b1. */
	ibv_query_srq(srq, &sa);
	for (i = 0; i < sa.max_wr; i++)
		send_msg(a1, 0);
	poll_n(wc, 2 * (int)sa.max_wr);

	/* Empty SRQ: a2's SEND waits on RNR until a receive comes. */
	memset(payload(0), 0x77, PAYLOAD);
	send_msg(a2, 0);
	usleep(200000);
	if (ibv_poll_cq(cq, 1, wc) != 0)
		die("a SEND completed with the SRQ empty\n");
	w = srq_wr(100, &sge);
	if (ibv_post_srq_recv(srq, &w, &bad))
		die("post_srq_recv: %s\n", strerror(errno));
	poll_n(wc, 2);
	for (k = 0; k < 2; k++)
		if (wc[k].opcode == IBV_WC_RECV &&
		    (wc[k].wr_id != 100 || wc[k].qp_num != b2->qp_num ||
		     wc[k].byte_len != PAYLOAD || slot(100)[0] != 0x77))
			die("the receive after RNR: wr %llu qp %#x len %u\n",
			    (unsigned long long)wc[k].wr_id, wc[k].qp_num,
			    wc[k].byte_len);
	printf("rnr: a SEND to an empty SRQ waited and completed\n");

	/* n messages, a1 and a2 in turn, into n WQEs (posted in batches of
	 * what the SRQ holds). */
	memset(buf + (size_t)2 * MAXMSG * SLOT, 0xee, (size_t)2 * MAXMSG * SLOT);
	for (m = 0; m < n; m++)
		for (i = 0; i < PAYLOAD; i++)
			payload(m)[i] = (uint8_t)(m * 37 + i * 3 + 1);
	for (m = 0; m < n; m += sa.max_wr) {
		unsigned int batch = n - m < sa.max_wr ? n - m : sa.max_wr;

		for (i = 0; i < batch; i++) {
			w = srq_wr(m + i, &sge);
			if (ibv_post_srq_recv(srq, &w, &bad))
				die("post_srq_recv: %s\n", strerror(errno));
		}
		for (i = 0; i < batch; i++)
			send_msg((m + i) % 2 ? a2 : a1, m + i);
		poll_n(wc, 2 * (int)batch);
		for (k = 0; k < 2 * (int)batch; k++) {
			int side;

			if (wc[k].opcode != IBV_WC_RECV)
				continue;
			side = wc[k].qp_num == b2->qp_num;
			if (!side && wc[k].qp_num != b1->qp_num)
				die("receive on qp %#x\n", wc[k].qp_num);
			if (wc[k].wr_id >= n || seen[wc[k].wr_id]++)
				die("WQE %llu consumed twice or unknown\n",
				    (unsigned long long)wc[k].wr_id);
			if ((int64_t)wc[k].wr_id < last[side])
				die("b%d took WQE %llu after %llu\n", side + 1,
				    (unsigned long long)wc[k].wr_id,
				    (unsigned long long)last[side]);
			last[side] = (int64_t)wc[k].wr_id;
			if (wc[k].byte_len != PAYLOAD)
				die("WQE %llu: %u bytes\n",
				    (unsigned long long)wc[k].wr_id,
				    wc[k].byte_len);
		}
	}
	/* Each slot holds one message of its receiver's sender, and the rest
	 * of the slot is untouched. */
	for (i = 0; i < n; i++) {
		unsigned int j, found = 0;

		if (!seen[i])
			die("WQE %u never used\n", i);
		for (m = 0; m < n && !found; m++)
			found = !memcmp(slot(i), payload(m), PAYLOAD);
		if (!found)
			die("WQE %u holds no message that was sent\n", i);
		for (j = PAYLOAD; j < SLOT; j++)
			if (slot(i)[j] != 0xee)
				die("WQE %u: byte %u past the message written\n",
				    i, j);
	}
	printf("exactly once: %u messages in %u distinct WQEs\n", n, n);

	check_limit(a1);
	check_ud_on_srq();

	to_error_expect(a1, 0);
	to_error_expect(b1, IBV_EVENT_QP_LAST_WQE_REACHED);
	printf("last wqe reached: raised for a QP on the SRQ, not for the "
	       "others\n");

	rc = ibv_destroy_srq(srq);
	if (rc != EBUSY)
		die("ibv_destroy_srq with QPs on it: %d (want EBUSY)\n", rc);
	if (ibv_destroy_qp(a1) || ibv_destroy_qp(a2) || ibv_destroy_qp(b1) ||
	    ibv_destroy_qp(b2))
		die("ibv_destroy_qp: %s\n", strerror(errno));
	if (ibv_destroy_srq(srq))
		die("ibv_destroy_srq: %s\n", strerror(errno));
	printf("destroy_srq: EBUSY while used, then 0\n");
	ibv_dereg_mr(mr);
	ibv_destroy_cq(cq);
	ibv_dealloc_pd(pd);
	ibv_close_device(ctx);
	printf("srq ok: %u messages\n", n);
	return 0;
}
