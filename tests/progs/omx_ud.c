// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * omx_ud: what UD programs rely on and the pingpongs do not check, in one
 * process on one device.
 *
 *   omx_ud -d DEV [-n DATAGRAMS] [-w SECONDS]
 *
 * Three UD QPs on DEV: a and b from ibv_create_qp, x from
 * ibv_create_qp_ex with the ibv_wr_* API, all with Q_Key QK, addressed
 * through GID index 0. Checks, in order:
 *   - DATAGRAMS SENDs (every other one with immediate data) from a to b,
 *     of sizes from 0 up to the port's active MTU: each completes on b
 *     with IBV_WC_RECV, byte_len = 40 + size, IBV_WC_GRH (and
 *     IBV_WC_WITH_IMM with the value sent), src_qp = a, qp_num = b,
 *     sl = pkey_index = slid = 0; the buffer holds a GRH (IPv6 form,
 *     next header 0x1B: our GIDs are RoCE v1) whose SGID and DGID are the
 *     port's GID 0, then exactly the bytes sent;
 *   - ibv_create_ah_from_wc on one of those completions gives an AH
 *     through which b answers a;
 *   - x sends to b with ibv_wr_start / ibv_wr_send_imm /
 *     ibv_wr_set_ud_addr / ibv_wr_set_sge / ibv_wr_complete;
 *   - refused with EINVAL and *bad_wr set: RDMA WRITE on a UD QP, a
 *     message one byte over the MTU; ibv_create_ah without a GRH fails;
 *   - a datagram with the wrong Q_Key is dropped (it takes no WQE), one
 *     whose Q_Key has the high bit set goes out with the QP's own Q_Key
 *     and arrives;
 *   - a WQE too small for GRH + payload completes with
 *     IBV_WC_LOC_LEN_ERR and the QP goes on receiving.
 * Prints "ud ok: N datagrams" and exits 0 on success.
 *
 *   omx_ud -d DEV -L DATAGRAMS
 *
 *   omx_ud -d DEV -U UID
 *
 * Privilege mode: a UD QP created as root, then, as UID (no
 * capabilities), INIT with a controlled Q_Key (bit 31) is refused with
 * EPERM (IBTA: privileged; ib_core asks for CAP_NET_RAW) and with an
 * ordinary Q_Key accepted. Prints "privilege ok".
 *
 *   omx_ud -d DEV -L DATAGRAMS
 *
 * Loss mode, for a netdev under netem: a sends DATAGRAMS numbered
 * datagrams to b in bursts of 64, b reposts each receive as it checks it.
 * Every datagram b gets must be one that was sent, byte for byte; the
 * program prints how many were lost, duplicated and reordered (UD shows
 * the network's faults to the application, nothing else) as
 * "lossy: sent N received R lost L duplicated D reordered O".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdint.h>
#include <unistd.h>
#include "common.h"

#define QK 0x11111111u
#define GRH 40
#define MAXN 256

static struct ibv_context *ctx;
static struct ibv_pd *pd;
static struct ibv_cq *cq;
static union ibv_gid gid;
static double wait_s = 30;
static uint8_t *buf;
static struct ibv_mr *mr;
static unsigned int mtu;
static size_t slot;		/* one receive slot: GRH + mtu */
static int sends_done;		/* send completions next_recv passed over */

/* Buffer layout: send area (mtu + 1 bytes) then MAXN + 4 receive slots. */
static uint8_t *send_area(void) { return buf; }
static uint8_t *recv_slot(int i) { return buf + 8192 + (size_t)i * slot; }

static struct ibv_qp *to_rts(struct ibv_qp *qp)
{
	return ud_to_rts(qp, QK, 7);
}

static struct ibv_qp *make_qp(void)
{
	struct ibv_qp_init_attr ia = {
		.send_cq = cq, .recv_cq = cq, .qp_type = IBV_QPT_UD,
		.cap = { .max_send_wr = MAXN, .max_recv_wr = MAXN + 4,
			 .max_send_sge = 1, .max_recv_sge = 1 },
	};
	struct ibv_qp *qp = ibv_create_qp(pd, &ia);

	if (!qp)
		die("ibv_create_qp(UD): %s", strerror(errno));
	return to_rts(qp);
}

static struct ibv_qp *make_qp_ex(void)
{
	struct ibv_qp_init_attr_ex ia = {
		.send_cq = cq, .recv_cq = cq, .qp_type = IBV_QPT_UD,
		.cap = { .max_send_wr = 4, .max_recv_wr = 4,
			 .max_send_sge = 1, .max_recv_sge = 1 },
		.comp_mask = IBV_QP_INIT_ATTR_PD | IBV_QP_INIT_ATTR_SEND_OPS_FLAGS,
		.pd = pd,
		.send_ops_flags = IBV_QP_EX_WITH_SEND | IBV_QP_EX_WITH_SEND_WITH_IMM,
	};
	struct ibv_qp *qp = ibv_create_qp_ex(ctx, &ia);

	if (!qp)
		die("ibv_create_qp_ex(UD): %s", strerror(errno));
	return to_rts(qp);
}

static void post_recv(struct ibv_qp *qp, int i, uint32_t len)
{
	struct ibv_sge s = {
		.addr = (uintptr_t)recv_slot(i), .length = len, .lkey = mr->lkey,
	};
	struct ibv_recv_wr wr = { .wr_id = i, .sg_list = &s, .num_sge = 1 };
	struct ibv_recv_wr *bad;

	memset(recv_slot(i), 0xee, slot);
	if (ibv_post_recv(qp, &wr, &bad))
		die("ibv_post_recv: %s", strerror(errno));
}

/* Posts one SEND of `len` bytes (byte k = seed + k); returns the errno. */
static int send_to(struct ibv_qp *qp, struct ibv_ah *ah, uint32_t qpn,
		   uint32_t qkey, uint32_t len, int seed, int imm,
		   enum ibv_wr_opcode op)
{
	struct ibv_sge s = {
		.addr = (uintptr_t)send_area(), .length = len, .lkey = mr->lkey,
	};
	struct ibv_send_wr wr = {
		.wr_id = 1000 + seed, .sg_list = &s, .num_sge = len ? 1 : 0,
		.opcode = imm ? IBV_WR_SEND_WITH_IMM : op,
		.send_flags = IBV_SEND_SIGNALED,
		.imm_data = htonl(0xab000000u | seed),
		.wr.ud = { .ah = ah, .remote_qpn = qpn, .remote_qkey = qkey },
	};
	struct ibv_send_wr *bad = NULL;
	uint32_t k;
	int r;

	for (k = 0; k < len; k++)
		send_area()[k] = (uint8_t)(seed + k);
	r = ibv_post_send(qp, &wr, &bad);
	if (r && bad != &wr)
		die("ibv_post_send failed (%s) without *bad_wr naming the WR",
		    strerror(r));
	return r;
}

/* The next completion of a receive (sends' completions are skipped). */
static int next_recv(struct ibv_wc *wc, double t)
{
	double end = now_s() + t;

	while (now_s() < end) {
		int n = ibv_poll_cq(cq, 1, wc);

		if (n < 0)
			die("ibv_poll_cq: %d", n);
		if (n == 0) {
			usleep(100);
			continue;
		}
		if (wc->opcode & IBV_WC_RECV)
			return 1;
		if (wc->status != IBV_WC_SUCCESS)
			die("send wr %llu: %s", (unsigned long long)wc->wr_id,
			    ibv_wc_status_str(wc->status));
		sends_done++;
	}
	return 0;
}

static void expect_datagram(struct ibv_wc *wc, struct ibv_qp *from,
			    struct ibv_qp *to, uint32_t len, int seed, int imm)
{
	const uint8_t *b;
	uint32_t k;

	if (!next_recv(wc, wait_s))
		die("datagram %d (%u bytes) never arrived", seed, len);
	if (wc->status != IBV_WC_SUCCESS)
		die("datagram %d: %s", seed, ibv_wc_status_str(wc->status));
	if (wc->opcode != IBV_WC_RECV || wc->byte_len != GRH + len)
		die("datagram %d: opcode %d byte_len %u, expected RECV %u",
		    seed, wc->opcode, wc->byte_len, GRH + len);
	if (!(wc->wc_flags & IBV_WC_GRH))
		die("datagram %d: no IBV_WC_GRH", seed);
	if (!!(wc->wc_flags & IBV_WC_WITH_IMM) != imm ||
	    (imm && ntohl(wc->imm_data) != (0xab000000u | seed)))
		die("datagram %d: immediate flag/value wrong", seed);
	if (wc->src_qp != from->qp_num || wc->qp_num != to->qp_num)
		die("datagram %d: src_qp %#x qp_num %#x, expected %#x %#x",
		    seed, wc->src_qp, wc->qp_num, from->qp_num, to->qp_num);
	if (wc->sl || wc->pkey_index || wc->slid || wc->dlid_path_bits)
		die("datagram %d: sl/pkey_index/slid/dlid_path_bits not 0", seed);
	b = recv_slot(wc->wr_id);
	if (b[0] >> 4 != 6 || b[6] != 0x1b)
		die("datagram %d: GRH version %d next header %#x", seed,
		    b[0] >> 4, b[6]);
	if (ntohs(*(const uint16_t *)(b + 4)) !=
	    12 + 8 + 4 * imm + (len + 3) / 4 * 4 + 4)
		die("datagram %d: GRH payload length %u", seed,
		    ntohs(*(const uint16_t *)(b + 4)));
	if (memcmp(b + 8, gid.raw, 16) || memcmp(b + 24, gid.raw, 16))
		die("datagram %d: GRH SGID/DGID are not the port's GID 0", seed);
	for (k = 0; k < len; k++)
		if (b[GRH + k] != (uint8_t)(seed + k))
			die("datagram %d: byte %u is %#x", seed, k, b[GRH + k]);
	if (GRH + len < slot && b[GRH + len] != 0xee)
		die("datagram %d: written past its end", seed);
}

/* Privilege mode (see the top of the file). */
static void privilege(uid_t uid)
{
	struct ibv_qp_init_attr ia = {
		.send_cq = cq, .recv_cq = cq, .qp_type = IBV_QPT_UD,
		.cap = { .max_send_wr = 1, .max_recv_wr = 1,
			 .max_send_sge = 1, .max_recv_sge = 1 },
	};
	struct ibv_qp_attr a = {
		.qp_state = IBV_QPS_INIT, .port_num = 1, .qkey = 0x80000001u,
	};
	int mask = IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_QKEY;
	struct ibv_qp *qp = ibv_create_qp(pd, &ia);
	int r;

	if (!qp)
		die("ibv_create_qp(UD): %s", strerror(errno));
	if (setresgid(uid, uid, uid) || setresuid(uid, uid, uid))
		die("drop to uid %u: %s", (unsigned int)uid, strerror(errno));
	r = ibv_modify_qp(qp, &a, mask);
	if (r != EPERM)
		die("controlled Q_Key without CAP_NET_RAW: %s, expected EPERM",
		    strerror(r));
	a.qkey = QK;
	r = ibv_modify_qp(qp, &a, mask);
	if (r)
		die("an ordinary Q_Key as uid %u: %s", (unsigned int)uid, strerror(r));
	printf("privilege ok: controlled Q_Key EPERM for uid %u, ordinary accepted\n",
	       (unsigned int)uid);
}

/* Datagram s of the loss mode: 4 + s * 13 % (mtu - 3) bytes, s in the
 * first 4, then byte k = (s + k) & 0xff.
 */
static uint32_t lossy_len(uint32_t s) { return 4 + s * 13 % (mtu - 3); }

static void lossy_fill(uint8_t *p, uint32_t s)
{
	uint32_t k;

	memcpy(p, &s, 4);
	for (k = 4; k < lossy_len(s); k++)
		p[k] = (uint8_t)(s + k);
}

/* Loss mode (see the top of the file). */
static void lossy(struct ibv_qp *a, struct ibv_qp *b, struct ibv_ah *ah, int n)
{
	unsigned int *seen = calloc(n, sizeof(*seen));
	uint8_t *out = calloc(64, mtu), *want = malloc(mtu);
	struct ibv_mr *omr = out ? ibv_reg_mr(pd, out, 64 * mtu, 0) : NULL;
	int sent = 0, received = 0, lost = 0, dups = 0, reordered = 0;
	int last = -1, i;
	struct ibv_wc wc;

	if (!seen || !want || !omr)
		die("lossy buffers: %s", strerror(errno));
	for (i = 0; i < MAXN; i++)
		post_recv(b, i, slot);
	sends_done = 0;
	while (sent < n) {
		int burst = n - sent < 64 ? n - sent : 64;
		double quiet;

		for (i = 0; i < burst; i++, sent++) {
			struct ibv_sge sg = {
				.addr = (uintptr_t)(out + i * mtu),
				.length = lossy_len(sent), .lkey = omr->lkey,
			};
			struct ibv_send_wr wr = {
				.wr_id = sent, .sg_list = &sg, .num_sge = 1,
				.opcode = IBV_WR_SEND,
				.send_flags = IBV_SEND_SIGNALED,
				.wr.ud = { .ah = ah, .remote_qpn = b->qp_num,
					   .remote_qkey = QK },
			}, *bad;

			lossy_fill(out + i * mtu, sent);
			if (ibv_post_send(a, &wr, &bad))
				die("post datagram %d: %s", sent, strerror(errno));
		}
		/* Drain until 100 ms pass without a datagram and the burst's
		 * sends completed (its buffers are then free for the next).
		 */
		quiet = now_s() + 0.1;
		while (now_s() < quiet || sends_done < sent) {
			if (now_s() > quiet + wait_s)
				die("lossy: %d of %d sends completed", sends_done, sent);
			const uint8_t *p;
			uint32_t seq;

			if (!next_recv(&wc, 0.01))
				continue;
			quiet = now_s() + 0.1;
			if (wc.status != IBV_WC_SUCCESS || wc.byte_len < GRH + 4)
				die("lossy: %s, byte_len %u",
				    ibv_wc_status_str(wc.status), wc.byte_len);
			p = recv_slot(wc.wr_id) + GRH;
			memcpy(&seq, p, 4);
			if (seq >= (uint32_t)sent || wc.byte_len - GRH != lossy_len(seq))
				die("lossy: a datagram (number %u, %u bytes) that was never sent",
				    seq, wc.byte_len - GRH);
			lossy_fill(want, seq);
			if (memcmp(p, want, lossy_len(seq)))
				die("lossy: datagram %u corrupted", seq);
			if (seen[seq]++)
				dups++;
			else if ((int)seq < last)
				reordered++;
			if ((int)seq > last)
				last = seq;
			received++;
			post_recv(b, wc.wr_id, slot);
		}
	}
	for (i = 0; i < n; i++)
		lost += !seen[i];
	printf("lossy: sent %d received %d lost %d duplicated %d reordered %d\n",
	       n, received, lost, dups, reordered);
	if (ibv_dereg_mr(omr))
		die("ibv_dereg_mr: %s", strerror(errno));
	free(out);
	free(want);
	free(seen);
}

int main(int argc, char **argv)
{
	const char *dev = NULL;
	struct ibv_port_attr pa;
	struct ibv_qp *a, *b, *x;
	struct ibv_ah_attr aa = { .is_global = 1, .port_num = 1 };
	struct ibv_ah *ah, *back;
	struct ibv_qp_ex *qx;
	struct ibv_wc wc, keep;
	int n = 32, loss = 0, uid = -1, i, c, r;

	memset(&keep, 0, sizeof(keep));
	while ((c = getopt(argc, argv, "d:n:w:L:U:")) != -1) {
		switch (c) {
		case 'd': dev = optarg; break;
		case 'L': loss = atoi(optarg); break;
		case 'U': uid = atoi(optarg); break;
		case 'n': n = atoi(optarg); break;
		case 'w': wait_s = atof(optarg); break;
		default: return 2;
		}
	}
	if (!dev || n < 2 || n > MAXN || loss < 0) {
		fprintf(stderr, "usage: omx_ud -d DEV [-n 2..%d] [-w SECONDS] [-L DATAGRAMS] [-U UID]\n",
			MAXN);
		return 2;
	}
	ctx = open_by_name(dev);
	if (ibv_query_port(ctx, 1, &pa) || ibv_query_gid(ctx, 1, 0, &gid))
		die("ibv_query_port/gid: %s", strerror(errno));
	mtu = 1u << (pa.active_mtu + 7);
	slot = GRH + mtu;
	pd = ibv_alloc_pd(ctx);
	cq = ibv_create_cq(ctx, 4 * MAXN, NULL, NULL, 0);
	buf = calloc(1, 8192 + (MAXN + 4) * slot);
	if (!pd || !cq || !buf)
		die("pd/cq/buffer: %s", strerror(errno));
	mr = ibv_reg_mr(pd, buf, 8192 + (MAXN + 4) * slot, IBV_ACCESS_LOCAL_WRITE);
	if (!mr)
		die("ibv_reg_mr: %s", strerror(errno));
	if (uid > 0) {
		privilege(uid);
		return 0;
	}
	a = make_qp();
	b = make_qp();
	x = make_qp_ex();
	aa.grh.dgid = gid;
	aa.grh.hop_limit = 1;
	ah = ibv_create_ah(pd, &aa);
	if (!ah)
		die("ibv_create_ah: %s", strerror(errno));
	if (loss) {
		lossy(a, b, ah, loss);
		return 0;
	}

	/* Datagrams of every size class up to the MTU. */
	for (i = 0; i < n; i++)
		post_recv(b, i, slot);
	for (i = 0; i < n; i++) {
		uint32_t len = i == n - 1 ? mtu : (uint32_t)i * 97 % (mtu + 1);

		if (send_to(a, ah, b->qp_num, QK, len, i, i & 1, IBV_WR_SEND))
			die("post datagram %d: %s", i, strerror(errno));
		expect_datagram(&wc, a, b, len, i, i & 1);
		if (i == 1)
			keep = wc;
	}
	printf("%d datagrams a -> b, GRH and wc fields as expected\n", n);

	/* The answer through an AH made from a received completion. */
	back = ibv_create_ah_from_wc(pd, &keep, (struct ibv_grh *)recv_slot(keep.wr_id), 1);
	if (!back)
		die("ibv_create_ah_from_wc: %s", strerror(errno));
	post_recv(a, 0, slot);
	if (send_to(b, back, a->qp_num, QK, 5, 77, 0, IBV_WR_SEND))
		die("post through the AH from the wc: %s", strerror(errno));
	expect_datagram(&wc, b, a, 5, 77, 0);
	printf("ibv_create_ah_from_wc: answered\n");

	/* The ibv_wr_* API. */
	qx = ibv_qp_to_qp_ex(x);
	post_recv(b, 0, slot);
	for (i = 0; i < 9; i++)
		send_area()[i] = (uint8_t)(55 + i);
	ibv_wr_start(qx);
	qx->wr_id = 1;
	qx->wr_flags = IBV_SEND_SIGNALED;
	ibv_wr_send_imm(qx, htonl(0xab000000u | 55));
	ibv_wr_set_ud_addr(qx, ah, b->qp_num, QK);
	ibv_wr_set_sge(qx, mr->lkey, (uintptr_t)send_area(), 9);
	r = ibv_wr_complete(qx);
	if (r)
		die("ibv_wr_complete: %s", strerror(r));
	expect_datagram(&wc, x, b, 9, 55, 1);
	printf("ibv_wr_set_ud_addr: delivered\n");

	/* Refusals. */
	r = send_to(a, ah, b->qp_num, QK, 8, 1, 0, IBV_WR_RDMA_WRITE);
	if (r != EINVAL)
		die("RDMA WRITE on a UD QP: %s, expected EINVAL", strerror(r));
	r = send_to(a, ah, b->qp_num, QK, mtu + 1, 1, 0, IBV_WR_SEND);
	if (r != EINVAL)
		die("a datagram over the MTU: %s, expected EINVAL", strerror(r));
	aa.is_global = 0;
	if (ibv_create_ah(pd, &aa))
		die("ibv_create_ah without a GRH succeeded");
	aa.is_global = 1;
	printf("refusals: EINVAL\n");

	/* Q_Keys: a wrong one is dropped, a controlled one is the QP's. */
	post_recv(b, 0, slot);
	if (send_to(a, ah, b->qp_num, QK + 1, 10, 90, 0, IBV_WR_SEND))
		die("post (wrong qkey): %s", strerror(errno));
	if (next_recv(&wc, 0.5))
		die("a datagram with the wrong Q_Key was received");
	if (send_to(a, ah, b->qp_num, 0x80000000u, 10, 91, 0, IBV_WR_SEND))
		die("post (controlled qkey): %s", strerror(errno));
	expect_datagram(&wc, a, b, 10, 91, 0);
	printf("q_keys: wrong one dropped, controlled one is the QP's\n");

	/* A WQE too small: IBV_WC_LOC_LEN_ERR, and the QP goes on. */
	post_recv(b, 0, GRH + 8);
	post_recv(b, 1, slot);
	if (send_to(a, ah, b->qp_num, QK, 100, 92, 0, IBV_WR_SEND))
		die("post (too long): %s", strerror(errno));
	if (!next_recv(&wc, wait_s) || wc.status != IBV_WC_LOC_LEN_ERR)
		die("a too small WQE: %s", ibv_wc_status_str(wc.status));
	if (send_to(a, ah, b->qp_num, QK, 100, 93, 0, IBV_WR_SEND))
		die("post after LOC_LEN_ERR: %s", strerror(errno));
	expect_datagram(&wc, a, b, 100, 93, 0);
	printf("a too small WQE: IBV_WC_LOC_LEN_ERR, QP still receives\n");

	if (ibv_destroy_ah(back) || ibv_destroy_ah(ah) || ibv_destroy_qp(x) ||
	    ibv_destroy_qp(b) || ibv_destroy_qp(a) || ibv_dereg_mr(mr) ||
	    ibv_destroy_cq(cq) || ibv_dealloc_pd(pd))
		die("teardown: %s", strerror(errno));
	ibv_close_device(ctx);
	free(buf);
	printf("ud ok: %d datagrams\n", n);
	return 0;
}
