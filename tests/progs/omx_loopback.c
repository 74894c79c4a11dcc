// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * omx_loopback: RC traffic between QPs of one process on one device.
 *
 *   omx_loopback -d DEV [-n ITERS] [-s SIZE] [-w SECONDS] [-a TIMEOUT]
 *
 * Creates two RC QPs connected to each other and a third connected to
 * itself, all through GID index 0 of DEV (so every frame is addressed to
 * the device's own MAC address).  For ITERS rounds it checks, with a
 * fresh byte pattern each round:
 *   - SEND of SIZE bytes (two SGEs) from QP a to QP b and back;
 *   - RDMA WRITE with immediate from a into b's buffer;
 *   - RDMA READ by b of a's buffer;
 *   - SEND from the self-connected QP to itself (into a second buffer).
 * Every completion must be IBV_WC_SUCCESS with the expected opcode,
 * length and immediate, and every destination buffer must hold exactly
 * the pattern sent, with the bytes around it untouched.  Prints
 * "loopback ok: N rounds" and exits 0 on success.  -w is how long to wait
 * for one completion (default 30 s), -a the QPs' local ACK timeout
 * exponent (default 14, 67 ms; slow runs such as valgrind under TCG need
 * a larger one so RC's retry budget outlasts the pauses).
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <unistd.h>
#include "common.h"

#define GUARD 64

struct side {
	struct ibv_qp *qp;
	uint8_t *buf;		/* GUARD | SIZE payload | GUARD */
	struct ibv_mr *mr;
};

static struct ibv_context *ctx;
static struct ibv_pd *pd;
static struct ibv_cq *cq;
static union ibv_gid gid;
static size_t size = 4096;
static double wait_s = 30;
static uint8_t ack_timeout = 14;

static void setup_buf(struct side *s)
{
	s->buf = calloc(1, size + 2 * GUARD);
	if (!s->buf)
		die("calloc");
	s->mr = ibv_reg_mr(pd, s->buf, size + 2 * GUARD,
			   IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |
			   IBV_ACCESS_REMOTE_READ);
	if (!s->mr)
		die("ibv_reg_mr: %s", strerror(errno));
}

static void setup(struct side *s)
{
	struct ibv_qp_init_attr ia = {
		.send_cq = cq, .recv_cq = cq, .qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = 16, .max_recv_wr = 16,
			 .max_send_sge = 2, .max_recv_sge = 2 },
	};
	struct ibv_qp_attr a = {
		.qp_state = IBV_QPS_INIT, .port_num = 1,
		.qp_access_flags = IBV_ACCESS_REMOTE_WRITE |
				   IBV_ACCESS_REMOTE_READ,
	};

	setup_buf(s);
	s->qp = ibv_create_qp(pd, &ia);
	if (!s->qp)
		die("ibv_create_qp: %s", strerror(errno));
	if (ibv_modify_qp(s->qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX |
			  IBV_QP_PORT | IBV_QP_ACCESS_FLAGS))
		die("modify to INIT: %s", strerror(errno));
}

static void connect_to(struct side *s, uint32_t dest_qpn)
{
	struct rc_conn c = {
		.rd_atomic = 1, .min_rnr_timer = 12, .rnr_retry = 7,
		.timeout = ack_timeout,
	};

	rc_to_rts(s->qp, dest_qpn, &gid, &c);
}

/*
 * Waits for the completion of WR `id` and checks its status and opcode.
 * Completions of other WRs polled meanwhile are kept for later calls (a
 * SEND and its peer's RECV complete in either order).
 */
static struct ibv_wc wait_wc(uint64_t id, enum ibv_wc_opcode op)
{
	static struct ibv_wc early[8];
	static int nearly;
	double t0 = now_s();
	struct ibv_wc wc;
	int n, i;

	for (i = 0; i < nearly; i++) {
		if (early[i].wr_id != id)
			continue;
		wc = early[i];
		early[i] = early[--nearly];
		goto found;
	}
	for (;;) {
		n = ibv_poll_cq(cq, 1, &wc);
		if (n < 0)
			die("ibv_poll_cq: %d", n);
		if (n == 1 && wc.wr_id == id)
			break;
		if (n == 1) {
			if (nearly == 8)
				die("too many unexpected completions");
			early[nearly++] = wc;
		}
		if (now_s() - t0 > wait_s)
			die("no completion for wr %llu after %.0f s",
			    (unsigned long long)id, wait_s);
	}
found:
	if (wc.status != IBV_WC_SUCCESS)
		die("wr %llu: %s", (unsigned long long)wc.wr_id,
		    ibv_wc_status_str(wc.status));
	if (wc.opcode != op)
		die("wr %llu opcode %d, want %d", (unsigned long long)id,
		    wc.opcode, op);
	return wc;
}

static void fill(struct side *s, unsigned int seed)
{
	size_t i;

	memset(s->buf, 0xee, size + 2 * GUARD);
	for (i = 0; i < size; i++)
		s->buf[GUARD + i] = (uint8_t)(seed * 131 + i * 7 + (i >> 8));
}

static void clear(struct side *s)
{
	memset(s->buf, 0xee, size + 2 * GUARD);
	memset(s->buf + GUARD, 0, size);
}

/* dst's payload must equal src's and dst's guards must be intact. */
static void check(const char *what, struct side *src, struct side *dst)
{
	size_t i;

	for (i = 0; i < GUARD; i++)
		if (dst->buf[i] != 0xee || dst->buf[GUARD + size + i] != 0xee)
			die("%s: guard byte touched", what);
	if (memcmp(src->buf + GUARD, dst->buf + GUARD, size))
		die("%s: payload differs", what);
}

static void post_recv(struct side *s, uint64_t id)
{
	struct ibv_sge sge = {
		(uintptr_t)s->buf + GUARD, (uint32_t)size, s->mr->lkey
	};
	struct ibv_recv_wr wr = { .wr_id = id, .sg_list = &sge, .num_sge = 1 };
	struct ibv_recv_wr *bad;

	if (ibv_post_recv(s->qp, &wr, &bad))
		die("ibv_post_recv: %s", strerror(errno));
}

/* Posts one signaled WR whose payload is s's buffer, in two SGEs. */
static void post(struct side *s, uint64_t id, enum ibv_wr_opcode op,
		 struct side *remote)
{
	size_t half = size / 2;
	struct ibv_sge sge[2] = {
		{ (uintptr_t)s->buf + GUARD, (uint32_t)half, s->mr->lkey },
		{ (uintptr_t)s->buf + GUARD + half, (uint32_t)(size - half),
		  s->mr->lkey },
	};
	struct ibv_send_wr wr = {
		.wr_id = id, .sg_list = sge, .num_sge = half ? 2 : 1,
		.opcode = op, .send_flags = IBV_SEND_SIGNALED,
		.imm_data = htonl((uint32_t)id),
	};
	struct ibv_send_wr *bad;

	if (!half)
		sge[0].length = (uint32_t)size;
	if (remote) {
		wr.wr.rdma.remote_addr = (uintptr_t)remote->buf + GUARD;
		wr.wr.rdma.rkey = remote->mr->rkey;
	}
	if (ibv_post_send(s->qp, &wr, &bad))
		die("ibv_post_send: %s", strerror(errno));
}

static void send_check(struct side *from, struct side *to, unsigned int r,
		       const char *what)
{
	struct ibv_wc wc;

	fill(from, r);
	clear(to);
	post_recv(to, 2 * r + 1);
	post(from, 2 * r, IBV_WR_SEND, NULL);
	/* The two completions may come in either order. */
	wait_wc(2 * r, IBV_WC_SEND);
	wc = wait_wc(2 * r + 1, IBV_WC_RECV);
	if (wc.byte_len != size)
		die("%s: byte_len %u, want %zu", what, wc.byte_len, size);
	check(what, from, to);
}

int main(int argc, char **argv)
{
	struct side a, b, self, self_rx;
	unsigned int iters = 100, r;
	struct ibv_wc wc;
	int opt;
	const char *dev = NULL;

	while ((opt = getopt(argc, argv, "d:n:s:w:a:")) != -1) {
		switch (opt) {
		case 'd': dev = optarg; break;
		case 'n': iters = (unsigned int)atoi(optarg); break;
		case 's': size = (size_t)atol(optarg); break;
		case 'w': wait_s = atof(optarg); break;
		case 'a': ack_timeout = (uint8_t)atoi(optarg); break;
		default:
			fprintf(stderr,
				"usage: %s -d DEV [-n N] [-s SIZE] [-w SECONDS] [-a TIMEOUT]\n",
				argv[0]);
			return 2;
		}
	}
	if (!dev || !size) {
		fprintf(stderr, "need -d and -s >= 1\n");
		return 2;
	}
	ctx = open_by_name(dev);
	if (ibv_query_gid(ctx, 1, 0, &gid))
		die("ibv_query_gid: %s", strerror(errno));
	pd = ibv_alloc_pd(ctx);
	cq = pd ? ibv_create_cq(ctx, 64, NULL, NULL, 0) : NULL;
	if (!cq)
		die("pd/cq: %s", strerror(errno));
	setup(&a);
	setup(&b);
	setup(&self);
	/* The self-connected QP receives into a buffer of its own. */
	setup_buf(&self_rx);
	self_rx.qp = self.qp;
	connect_to(&a, b.qp->qp_num);
	connect_to(&b, a.qp->qp_num);
	connect_to(&self, self.qp->qp_num);

	for (r = 0; r < iters; r++) {
		send_check(&a, &b, 3 * r, "send a->b");
		send_check(&b, &a, 3 * r + 1, "send b->a");
		send_check(&self, &self_rx, 3 * r + 2, "send self->self");

		fill(&a, r + 7);
		clear(&b);
		post_recv(&b, 1000000 + r);
		post(&a, 2000000 + r, IBV_WR_RDMA_WRITE_WITH_IMM, &b);
		wait_wc(2000000 + r, IBV_WC_RDMA_WRITE);
		wc = wait_wc(1000000 + r, IBV_WC_RECV_RDMA_WITH_IMM);
		if (!(wc.wc_flags & IBV_WC_WITH_IMM) ||
		    ntohl(wc.imm_data) != 2000000 + r)
			die("write imm: flags %#x imm %u", wc.wc_flags,
			    ntohl(wc.imm_data));
		check("rdma write a->b", &a, &b);

		fill(&a, r + 11);
		clear(&b);
		post(&b, 3000000 + r, IBV_WR_RDMA_READ, &a);
		wc = wait_wc(3000000 + r, IBV_WC_RDMA_READ);
		check("rdma read b<-a", &a, &b);
	}
	printf("loopback ok: %u rounds of %zu bytes\n", iters, size);

	if (ibv_destroy_qp(a.qp) || ibv_destroy_qp(b.qp) ||
	    ibv_destroy_qp(self.qp))
		die("ibv_destroy_qp: %s", strerror(errno));
	if (ibv_dereg_mr(a.mr) || ibv_dereg_mr(b.mr) || ibv_dereg_mr(self.mr) ||
	    ibv_dereg_mr(self_rx.mr))
		die("ibv_dereg_mr: %s", strerror(errno));
	if (ibv_destroy_cq(cq) || ibv_dealloc_pd(pd))
		die("cq/pd: %s", strerror(errno));
	ibv_close_device(ctx);
	free(a.buf);
	free(b.buf);
	free(self.buf);
	free(self_rx.buf);
	return 0;
}
