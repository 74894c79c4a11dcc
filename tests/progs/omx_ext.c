// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * omx_ext: the extended verbs API on one device (issue 13, section 3).
 *
 *   omx_ext -d DEV [-w SECONDS]
 *
 * One process, QPs of one context connected to each other through GID
 * index 0. Checks, in order:
 *   - ibv_query_device_ex: ODP caps (general SUPPORT | IMPLICIT, RC
 *     SEND | RECV | WRITE | READ, nothing for UC/UD), a 64-bit
 *     completion_timestamp_mask, hca_core_clock 1 GHz, no device memory,
 *     no raw packet caps, no TSO, IBV_ATOMIC_GLOB; ibv_query_rt_values_ex
 *     reads the timestamp clock (CLOCK_MONOTONIC);
 *   - ibv_query_gid_ex and ibv_query_gid_table agree with ibv_query_gid
 *     on every index of the port's table;
 *   - ibv_create_cq_ex with every wc_flags the device offers (standard,
 *     completion timestamp, wall clock) works, CVLAN is EOPNOTSUPP, and
 *     ibv_start_poll on an empty CQ returns ENOENT at once;
 *   - ibv_create_qp_ex on RC with every supported send op: one batch
 *     through ibv_wr_send (set_sge), _send_imm (set_inline_data),
 *     _rdma_write (set_sge_list), _rdma_write_imm (set_inline_data_list),
 *     _rdma_read, _atomic_fetch_add and _atomic_cmp_swp; every completion
 *     read through the ibv_wc_read_* functions (opcode, qp_num, src_qp,
 *     byte_len, imm, wc_flags, slid/sl/dlid_path_bits, completion_ts
 *     non-decreasing within the post/poll window, wall clock within the
 *     CLOCK_REALTIME window); memory checked byte by byte;
 *   - ibv_wr_abort discards a batch (nothing sent, the next batch is
 *     what the peer receives); a builder error fails ibv_wr_complete
 *     with nothing posted;
 *   - ibv_query_qp returns every attribute the modify calls set;
 *     ibv_query_qp_data_in_order per QP type and opcode;
 *   - ibv_create_qp_ex refuses, with EOPNOTSUPP, TSO, FLUSH, ATOMIC_WRITE
 *     and the XRC QP types; it takes LOCAL_INV, SEND_WITH_INV and BIND_MW
 *     on RC (memory windows: omx_mw.c) and offers their builders;
 *   - UC: send/write builders work (a SEND and a WRITE with immediate
 *     arrive), RDMA READ, atomics and SEND_WITH_INV are EOPNOTSUPP at
 *     creation;
 *   - UD: ibv_wr_send_imm + ibv_wr_set_ud_addr delivers a datagram (GRH,
 *     src_qp, imm), RDMA operations and the memory-window operations are
 *     EOPNOTSUPP at creation.
 * Prints "ext ok" and exits 0 on success; a "FAIL: ..." line and exit 1
 * otherwise.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <net/if.h>
#include <unistd.h>
#include "common.h"

#define DEPTH 16
#define GRH 40
#define QKEY 0x11111111u

/* rdma-core 45+ names; libibverbs 44 has neither enum. */
#define DIO_RETURN_CAPS 1u
#define DIO_WHOLE_MSG 1
#define DIO_ALIGNED_128 2
#define QP_EX_WITH_FLUSH (1ull << 11)

#define WC_FLAGS (IBV_WC_STANDARD_FLAGS | IBV_WC_EX_WITH_COMPLETION_TIMESTAMP | \
		  IBV_WC_EX_WITH_COMPLETION_TIMESTAMP_WALLCLOCK)
#define RC_OPS (IBV_QP_EX_WITH_SEND | IBV_QP_EX_WITH_SEND_WITH_IMM | \
		IBV_QP_EX_WITH_RDMA_WRITE | IBV_QP_EX_WITH_RDMA_WRITE_WITH_IMM | \
		IBV_QP_EX_WITH_RDMA_READ | IBV_QP_EX_WITH_ATOMIC_CMP_AND_SWP | \
		IBV_QP_EX_WITH_ATOMIC_FETCH_AND_ADD)
#define UC_OPS (IBV_QP_EX_WITH_SEND | IBV_QP_EX_WITH_SEND_WITH_IMM | \
		IBV_QP_EX_WITH_RDMA_WRITE | IBV_QP_EX_WITH_RDMA_WRITE_WITH_IMM)
#define UD_OPS (IBV_QP_EX_WITH_SEND | IBV_QP_EX_WITH_SEND_WITH_IMM)

/* Offsets in the one registered buffer. */
#define SRC 0		/* what the requesters send from */
#define RECV0 4096	/* receive slots, 1 KiB each */
#define WTGT 16384	/* RDMA WRITE target */
#define RSRC 20480	/* RDMA READ source */
#define RDST 24576	/* RDMA READ destination */
#define ATOM 28672	/* atomic target */
#define ARES 28736	/* atomic results, 8 bytes each */
#define MEMSZ 32768

static struct ibv_context *ctx;
static struct ibv_pd *pd;
static struct ibv_cq_ex *cqx;
static struct ibv_mr *mr;
static uint8_t *mem;
static union ibv_gid gid;
static double wait_s = 30;

static uint64_t clock_ns(clockid_t c)
{
	struct timespec ts;

	clock_gettime(c, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static uint64_t addr(size_t off)
{
	return (uintptr_t)(mem + off);
}

/* One completion as the ibv_wc_read_* functions report it. */
struct got {
	uint64_t wr_id, ts, wall;
	int status, opcode;
	uint32_t qp_num, src_qp, byte_len, imm, wc_flags, slid;
	uint8_t sl, dlid_path_bits;
};

static void read_cur(struct got *g)
{
	struct ibv_cq_ex *c = cqx;

	g->wr_id = c->wr_id;
	g->status = c->status;
	g->opcode = ibv_wc_read_opcode(c);
	g->qp_num = ibv_wc_read_qp_num(c);
	g->src_qp = ibv_wc_read_src_qp(c);
	g->byte_len = ibv_wc_read_byte_len(c);
	g->wc_flags = ibv_wc_read_wc_flags(c);
	g->imm = g->wc_flags & IBV_WC_WITH_IMM ? ntohl(ibv_wc_read_imm_data(c)) : 0;
	g->slid = ibv_wc_read_slid(c);
	g->sl = ibv_wc_read_sl(c);
	g->dlid_path_bits = ibv_wc_read_dlid_path_bits(c);
	g->ts = ibv_wc_read_completion_ts(c);
	g->wall = ibv_wc_read_completion_wallclock_ns(c);
	if (ibv_wc_read_vendor_err(c))
		die("wr_id %llu: vendor_err %u", (unsigned long long)g->wr_id,
		    ibv_wc_read_vendor_err(c));
}

/*
 * Takes exactly n completions through start/next/end_poll (the window
 * [t0, now] of both clocks must contain their stamps, in order).
 */
static void poll_n(struct got *out, int n, uint64_t t0, uint64_t w0)
{
	struct ibv_poll_cq_attr pa = { 0 };
	double end = now_s() + wait_s;
	uint64_t t1, w1;
	int got = 0, r;

	while (got < n) {
		r = ibv_start_poll(cqx, &pa);
		if (r == ENOENT) {
			if (now_s() > end)
				die("%d of %d completions within %.0f s", got, n, wait_s);
			continue;
		}
		if (r)
			die("ibv_start_poll: %d", r);
		do {
			if (got == n)
				die("more than %d completions (wr_id %llu)", n,
				    (unsigned long long)cqx->wr_id);
			read_cur(&out[got++]);
		} while ((r = ibv_next_poll(cqx)) == 0);
		if (r != ENOENT)
			die("ibv_next_poll: %d", r);
		ibv_end_poll(cqx);
	}
	t1 = clock_ns(CLOCK_MONOTONIC);
	w1 = clock_ns(CLOCK_REALTIME);
	for (int i = 0; i < n; i++) {
		struct got *g = &out[i];

		if (g->ts < t0 || g->ts > t1)
			die("wr_id %llu: completion_ts %llu outside [%llu, %llu]",
			    (unsigned long long)g->wr_id, (unsigned long long)g->ts,
			    (unsigned long long)t0, (unsigned long long)t1);
		if (i && g->ts < out[i - 1].ts)
			die("wr_id %llu: completion_ts went back",
			    (unsigned long long)g->wr_id);
		/* CLOCK_REALTIME may be stepped; a second of slack. */
		if (g->wall + 1000000000ull < w0 || g->wall > w1 + 1000000000ull)
			die("wr_id %llu: wallclock %llu outside [%llu, %llu]",
			    (unsigned long long)g->wr_id, (unsigned long long)g->wall,
			    (unsigned long long)w0, (unsigned long long)w1);
		if (g->slid || g->sl || g->dlid_path_bits)
			die("wr_id %llu: slid %u sl %u dlid_path_bits %u",
			    (unsigned long long)g->wr_id, g->slid, g->sl,
			    g->dlid_path_bits);
	}
}

/* Nothing completes for `s` seconds. */
static void expect_quiet(double s, const char *what)
{
	double end = now_s() + s;

	while (now_s() < end) {
		int r = ibv_start_poll(cqx, NULL);

		if (r == 0)
			die("%s: unexpected completion wr_id %llu", what,
			    (unsigned long long)cqx->wr_id);
		if (r != ENOENT)
			die("%s: ibv_start_poll %d", what, r);
		usleep(1000);
	}
}

static const struct got *find(const struct got *g, int n, uint64_t wr_id)
{
	for (int i = 0; i < n; i++)
		if (g[i].wr_id == wr_id)
			return &g[i];
	die("no completion for wr_id %llu", (unsigned long long)wr_id);
}

static void expect_wc(const struct got *g, int n, uint64_t wr_id, int opcode,
		      uint32_t qpn, uint32_t src_qp, int64_t byte_len,
		      uint32_t flags, uint32_t imm)
{
	const struct got *w = find(g, n, wr_id);

	if (w->status != IBV_WC_SUCCESS)
		die("wr_id %llu: status %s", (unsigned long long)wr_id,
		    ibv_wc_status_str(w->status));
	if (w->opcode != opcode || w->qp_num != qpn || w->src_qp != src_qp)
		die("wr_id %llu: opcode %d qp_num %#x src_qp %#x, want %d %#x %#x",
		    (unsigned long long)wr_id, w->opcode, w->qp_num, w->src_qp,
		    opcode, qpn, src_qp);
	if (byte_len >= 0 && w->byte_len != byte_len)
		die("wr_id %llu: byte_len %u, want %lld", (unsigned long long)wr_id,
		    w->byte_len, (long long)byte_len);
	if (w->wc_flags != flags || w->imm != imm)
		die("wr_id %llu: wc_flags %#x imm %#x, want %#x %#x",
		    (unsigned long long)wr_id, w->wc_flags, w->imm, flags, imm);
}

static struct ibv_qp *qp_ex(enum ibv_qp_type t, uint64_t ops)
{
	struct ibv_qp_init_attr_ex a = {
		.send_cq = ibv_cq_ex_to_cq(cqx), .recv_cq = ibv_cq_ex_to_cq(cqx),
		.qp_type = t, .sq_sig_all = 0,
		.cap = { .max_send_wr = DEPTH, .max_recv_wr = DEPTH,
			 .max_send_sge = 2, .max_recv_sge = 1,
			 .max_inline_data = 64 },
		.comp_mask = IBV_QP_INIT_ATTR_PD | IBV_QP_INIT_ATTR_SEND_OPS_FLAGS,
		.pd = pd, .send_ops_flags = ops,
	};

	return ibv_create_qp_ex(ctx, &a);
}

static struct ibv_qp *must_qp_ex(enum ibv_qp_type t, uint64_t ops)
{
	struct ibv_qp *qp = qp_ex(t, ops);

	if (!qp)
		die("ibv_create_qp_ex(type %d, ops %#llx): %s", t,
		    (unsigned long long)ops, strerror(errno));
	if (!ibv_qp_to_qp_ex(qp))
		die("ibv_qp_to_qp_ex: NULL");
	return qp;
}

static void expect_refused(enum ibv_qp_type t, uint64_t ops, const char *what)
{
	struct ibv_qp *qp;

	errno = 0;
	qp = qp_ex(t, ops);
	if (qp)
		die("create_qp_ex %s: created", what);
	if (errno != EOPNOTSUPP)
		die("create_qp_ex %s: %s, want EOPNOTSUPP", what, strerror(errno));
}

static void post_recv(struct ibv_qp *qp, uint64_t wr_id, size_t off, uint32_t len)
{
	struct ibv_sge s = { addr(off), len, mr->lkey };
	struct ibv_recv_wr wr = { .wr_id = wr_id, .sg_list = &s, .num_sge = 1 };
	struct ibv_recv_wr *bad;

	if (ibv_post_recv(qp, &wr, &bad))
		die("post_recv: %s", strerror(errno));
}

/* The attributes every connected QP gets; query_qp must give them back. */
#define ACCESS (IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | \
		IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC)
#define PMTU IBV_MTU_2048
#define MIN_RNR 3
#define TIMEOUT 15
#define RETRY 6
#define RNR_RETRY 5
#define RD_ATOMIC 8
#define DEST_RD_ATOMIC 12

static uint32_t psn_of(const struct ibv_qp *qp)
{
	return (qp->qp_num * 7 + 0x1234) & 0xffffff;
}

static void connect_qp(struct ibv_qp *qp, const struct ibv_qp *peer, int rc)
{
	struct ibv_qp_attr a = {
		.qp_state = IBV_QPS_INIT, .port_num = 1, .pkey_index = 0,
		.qp_access_flags = rc ? ACCESS : IBV_ACCESS_LOCAL_WRITE |
			IBV_ACCESS_REMOTE_WRITE,
	};
	int m;

	if (ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX |
			  IBV_QP_PORT | IBV_QP_ACCESS_FLAGS))
		die("modify to INIT: %s", strerror(errno));
	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTR;
	a.path_mtu = PMTU;
	a.dest_qp_num = peer->qp_num;
	a.rq_psn = psn_of(peer);
	a.ah_attr.is_global = 1;
	a.ah_attr.port_num = 1;
	a.ah_attr.grh.dgid = gid;
	a.ah_attr.grh.sgid_index = 0;
	a.ah_attr.grh.hop_limit = 1;
	m = IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
		IBV_QP_RQ_PSN;
	if (rc) {
		a.max_dest_rd_atomic = DEST_RD_ATOMIC;
		a.min_rnr_timer = MIN_RNR;
		m |= IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER;
	}
	if (ibv_modify_qp(qp, &a, m))
		die("modify to RTR: %s", strerror(errno));
	a.qp_state = IBV_QPS_RTS;
	a.sq_psn = psn_of(qp);
	m = IBV_QP_STATE | IBV_QP_SQ_PSN;
	if (rc) {
		a.timeout = TIMEOUT;
		a.retry_cnt = RETRY;
		a.rnr_retry = RNR_RETRY;
		a.max_rd_atomic = RD_ATOMIC;
		m |= IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
			IBV_QP_MAX_QP_RD_ATOMIC;
	}
	if (ibv_modify_qp(qp, &a, m))
		die("modify to RTS: %s", strerror(errno));
}

#define EXPECT_ATTR(field, want) do { \
	if ((long long)(field) != (long long)(want)) \
		die("query_qp: " #field " = %lld, want %lld", \
		    (long long)(field), (long long)(want)); \
} while (0)

static void check_query_qp(struct ibv_qp *qp, const struct ibv_qp *peer)
{
	struct ibv_qp_attr a;
	struct ibv_qp_init_attr ia;
	int mask = IBV_QP_STATE | IBV_QP_CUR_STATE | IBV_QP_PKEY_INDEX |
		IBV_QP_PORT | IBV_QP_ACCESS_FLAGS | IBV_QP_AV | IBV_QP_PATH_MTU |
		IBV_QP_DEST_QPN | IBV_QP_RQ_PSN | IBV_QP_SQ_PSN |
		IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER |
		IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
		IBV_QP_MAX_QP_RD_ATOMIC | IBV_QP_CAP;

	memset(&a, 0xa5, sizeof(a));
	memset(&ia, 0xa5, sizeof(ia));
	if (ibv_query_qp(qp, &a, mask, &ia))
		die("ibv_query_qp: %s", strerror(errno));
	EXPECT_ATTR(a.qp_state, IBV_QPS_RTS);
	EXPECT_ATTR(a.cur_qp_state, IBV_QPS_RTS);
	EXPECT_ATTR(a.pkey_index, 0);
	EXPECT_ATTR(a.port_num, 1);
	EXPECT_ATTR(a.qp_access_flags, ACCESS);
	EXPECT_ATTR(a.path_mtu, PMTU);
	EXPECT_ATTR(a.dest_qp_num, peer->qp_num);
	EXPECT_ATTR(a.rq_psn, psn_of(peer));
	EXPECT_ATTR(a.sq_psn, psn_of(qp));
	EXPECT_ATTR(a.max_dest_rd_atomic, DEST_RD_ATOMIC);
	EXPECT_ATTR(a.min_rnr_timer, MIN_RNR);
	EXPECT_ATTR(a.timeout, TIMEOUT);
	EXPECT_ATTR(a.retry_cnt, RETRY);
	EXPECT_ATTR(a.rnr_retry, RNR_RETRY);
	EXPECT_ATTR(a.max_rd_atomic, RD_ATOMIC);
	EXPECT_ATTR(a.ah_attr.is_global, 1);
	EXPECT_ATTR(a.ah_attr.port_num, 1);
	EXPECT_ATTR(a.ah_attr.grh.sgid_index, 0);
	EXPECT_ATTR(a.ah_attr.grh.hop_limit, 1);
	if (memcmp(&a.ah_attr.grh.dgid, &gid, sizeof(gid)))
		die("query_qp: ah_attr.grh.dgid differs");
	if (a.cap.max_send_wr < DEPTH || a.cap.max_recv_wr < DEPTH ||
	    a.cap.max_send_sge < 2 || a.cap.max_recv_sge < 1 ||
	    a.cap.max_inline_data < 64)
		die("query_qp: cap %u/%u wr %u/%u sge %u inline",
		    a.cap.max_send_wr, a.cap.max_recv_wr, a.cap.max_send_sge,
		    a.cap.max_recv_sge, a.cap.max_inline_data);
	EXPECT_ATTR(ia.qp_type, IBV_QPT_RC);
	EXPECT_ATTR(ia.sq_sig_all, 0);
	if (ia.send_cq != ibv_cq_ex_to_cq(cqx) || ia.recv_cq != ibv_cq_ex_to_cq(cqx))
		die("query_qp: init_attr CQs differ");
	if (ia.srq)
		die("query_qp: init_attr.srq set");
	if (memcmp(&ia.cap, &a.cap, sizeof(a.cap)))
		die("query_qp: init_attr.cap differs from attr.cap");
}

static void check_device(void)
{
	struct ibv_device_attr_ex d;
	struct ibv_values_ex v = { .comp_mask = IBV_VALUES_MASK_RAW_CLOCK };
	uint64_t t0, t1, raw;
	int r;

	memset(&d, 0xa5, sizeof(d));
	if (ibv_query_device_ex(ctx, NULL, &d))
		die("ibv_query_device_ex: %s", strerror(errno));
	if ((d.odp_caps.general_caps & (IBV_ODP_SUPPORT | IBV_ODP_SUPPORT_IMPLICIT)) !=
	    (IBV_ODP_SUPPORT | IBV_ODP_SUPPORT_IMPLICIT))
		die("odp general_caps %#llx",
		    (unsigned long long)d.odp_caps.general_caps);
	if (d.odp_caps.per_transport_caps.rc_odp_caps !=
	    (IBV_ODP_SUPPORT_SEND | IBV_ODP_SUPPORT_RECV | IBV_ODP_SUPPORT_WRITE |
	     IBV_ODP_SUPPORT_READ) ||
	    d.odp_caps.per_transport_caps.uc_odp_caps ||
	    d.odp_caps.per_transport_caps.ud_odp_caps)
		die("odp caps rc %#x uc %#x ud %#x",
		    d.odp_caps.per_transport_caps.rc_odp_caps,
		    d.odp_caps.per_transport_caps.uc_odp_caps,
		    d.odp_caps.per_transport_caps.ud_odp_caps);
	if (d.completion_timestamp_mask != UINT64_MAX || d.hca_core_clock != 1000000)
		die("completion_timestamp_mask %#llx hca_core_clock %llu",
		    (unsigned long long)d.completion_timestamp_mask,
		    (unsigned long long)d.hca_core_clock);
	if (d.max_dm_size || d.raw_packet_caps || d.tso_caps.max_tso ||
	    d.tso_caps.supported_qpts)
		die("max_dm_size %llu raw_packet_caps %#x tso %u/%#x",
		    (unsigned long long)d.max_dm_size, d.raw_packet_caps,
		    d.tso_caps.max_tso, d.tso_caps.supported_qpts);
	if (d.orig_attr.atomic_cap != IBV_ATOMIC_GLOB)
		die("atomic_cap %d", d.orig_attr.atomic_cap);

	t0 = clock_ns(CLOCK_MONOTONIC);
	r = ibv_query_rt_values_ex(ctx, &v);
	t1 = clock_ns(CLOCK_MONOTONIC);
	if (r)
		die("ibv_query_rt_values_ex: %s", strerror(r));
	raw = (uint64_t)v.raw_clock.tv_sec * 1000000000ull + v.raw_clock.tv_nsec;
	if (v.comp_mask != IBV_VALUES_MASK_RAW_CLOCK || raw < t0 || raw > t1)
		die("rt_values: mask %#x raw %llu outside [%llu, %llu]", v.comp_mask,
		    (unsigned long long)raw, (unsigned long long)t0,
		    (unsigned long long)t1);
	printf("device_ex ok: odp, timestamps, no dm/raw/tso, rt_values\n");
}

static void check_gids(void)
{
	struct ibv_port_attr pa;
	struct ibv_gid_entry e, table[256];
	union ibv_gid g, zero = { 0 };
	char name[IF_NAMESIZE];
	ssize_t n;
	int valid = 0;

	if (ibv_query_port(ctx, 1, &pa))
		die("ibv_query_port: %s", strerror(errno));
	if (pa.gid_tbl_len < 1 || pa.gid_tbl_len > 256)
		die("gid_tbl_len %d", pa.gid_tbl_len);
	for (int i = 0; i < pa.gid_tbl_len; i++) {
		if (ibv_query_gid(ctx, 1, i, &g))
			die("ibv_query_gid %d: %s", i, strerror(errno));
		if (!memcmp(&g, &zero, sizeof(g))) {
			if (!ibv_query_gid_ex(ctx, 1, i, &e, 0))
				die("ibv_query_gid_ex %d: empty slot reported", i);
			continue;
		}
		valid++;
		memset(&e, 0xa5, sizeof(e));
		if (ibv_query_gid_ex(ctx, 1, i, &e, 0))
			die("ibv_query_gid_ex %d: %s", i, strerror(errno));
		if (memcmp(&e.gid, &g, sizeof(g)) || e.gid_index != (uint32_t)i ||
		    e.port_num != 1)
			die("ibv_query_gid_ex %d: gid/index %u/port %u differ", i,
			    e.gid_index, e.port_num);
		if (e.gid_type != IBV_GID_TYPE_ROCE_V1 &&
		    e.gid_type != IBV_GID_TYPE_ROCE_V2)
			die("ibv_query_gid_ex %d: gid_type %u", i, e.gid_type);
		if (!e.ndev_ifindex || !if_indextoname(e.ndev_ifindex, name))
			die("ibv_query_gid_ex %d: ndev_ifindex %u", i, e.ndev_ifindex);
	}
	if (!valid)
		die("no valid GID");
	n = ibv_query_gid_table(ctx, table, 256, 0);
	if (n != valid)
		die("ibv_query_gid_table: %zd entries, ibv_query_gid found %d", n, valid);
	for (ssize_t k = 0; k < n; k++) {
		if (ibv_query_gid(ctx, table[k].port_num, table[k].gid_index, &g))
			die("ibv_query_gid: %s", strerror(errno));
		if (memcmp(&g, &table[k].gid, sizeof(g)) || table[k].port_num != 1)
			die("gid table entry %zd (index %u) differs", k,
			    table[k].gid_index);
		if (ibv_query_gid_ex(ctx, 1, table[k].gid_index, &e, 0) ||
		    memcmp(&e, &table[k], sizeof(e)))
			die("gid table entry %zd differs from ibv_query_gid_ex", k);
	}
	printf("gids ok: %d valid of %d, first on %s\n", valid, pa.gid_tbl_len,
	       if_indextoname(table[0].ndev_ifindex, name));
}

static void check_cq_ex(void)
{
	struct ibv_cq_init_attr_ex ca = { .cqe = 64, .wc_flags = WC_FLAGS };
	struct ibv_cq_ex *bad;
	double t;

	cqx = ibv_create_cq_ex(ctx, &ca);
	if (!cqx)
		die("ibv_create_cq_ex(%#llx): %s", (unsigned long long)ca.wc_flags,
		    strerror(errno));
	ca.wc_flags = IBV_WC_STANDARD_FLAGS | IBV_WC_EX_WITH_CVLAN;
	errno = 0;
	bad = ibv_create_cq_ex(ctx, &ca);
	if (bad || errno != EOPNOTSUPP)
		die("ibv_create_cq_ex with CVLAN: %p, %s", (void *)bad, strerror(errno));
	/* An empty CQ: ENOENT at once, however often. */
	t = now_s();
	for (int i = 0; i < 1000; i++)
		if (ibv_start_poll(cqx, NULL) != ENOENT)
			die("ibv_start_poll on an empty CQ did not give ENOENT");
	t = now_s() - t;
	if (t > 5)
		die("1000 empty ibv_start_poll took %.1f s", t);
	printf("cq_ex ok: wc_flags %#x, 1000 empty polls in %.3f s\n", WC_FLAGS, t);
}

static void check_data_in_order(struct ibv_qp *qp, int op, int want)
{
	int r0 = ibv_query_qp_data_in_order(qp, op, 0);
	int rc = ibv_query_qp_data_in_order(qp, op, DIO_RETURN_CAPS);

	if (r0 != want || rc != (want ? DIO_WHOLE_MSG | DIO_ALIGNED_128 : 0))
		die("data_in_order(type %d, op %d): %d / caps %d, want %d",
		    qp->qp_type, op, r0, rc, want);
}

static void check_refusals(void)
{
	static const struct {
		uint64_t bit;
		const char *name;
	} rc_bad[] = {
		{ IBV_QP_EX_WITH_TSO, "TSO" },
		{ QP_EX_WITH_FLUSH, "FLUSH" },
		{ IBV_QP_EX_WITH_ATOMIC_WRITE, "ATOMIC_WRITE" },
	};
	const uint64_t mw_ops = IBV_QP_EX_WITH_LOCAL_INV | IBV_QP_EX_WITH_SEND_WITH_INV |
				IBV_QP_EX_WITH_BIND_MW;
	struct ibv_qp_init_attr_ex x = {
		.send_cq = ibv_cq_ex_to_cq(cqx), .recv_cq = ibv_cq_ex_to_cq(cqx),
		.cap = { .max_send_wr = 1, .max_recv_wr = 1, .max_send_sge = 1,
			 .max_recv_sge = 1 },
		.pd = pd,
	};
	struct ibv_qp *qp;

	for (unsigned int i = 0; i < sizeof(rc_bad) / sizeof(rc_bad[0]); i++)
		expect_refused(IBV_QPT_RC, IBV_QP_EX_WITH_SEND | rc_bad[i].bit,
			       rc_bad[i].name);
	/* The memory-window operations: on RC, with their builders. */
	qp = qp_ex(IBV_QPT_RC, IBV_QP_EX_WITH_SEND | mw_ops);
	if (!qp)
		die("create_qp_ex RC with LOCAL_INV, SEND_WITH_INV, BIND_MW: %s",
		    strerror(errno));
	{
		struct ibv_qp_ex *qx = ibv_qp_to_qp_ex(qp);

		if (!qx->wr_local_inv || !qx->wr_send_inv || !qx->wr_bind_mw)
			die("RC QP without the memory-window builders");
	}
	if (ibv_destroy_qp(qp))
		die("destroy_qp");
	expect_refused(IBV_QPT_UC, UC_OPS | IBV_QP_EX_WITH_SEND_WITH_INV, "UC SEND_WITH_INV");
	expect_refused(IBV_QPT_UD, UD_OPS | IBV_QP_EX_WITH_BIND_MW, "UD BIND_MW");
	expect_refused(IBV_QPT_UD, UD_OPS | IBV_QP_EX_WITH_LOCAL_INV, "UD LOCAL_INV");
	expect_refused(IBV_QPT_XRC_SEND, IBV_QP_EX_WITH_SEND, "XRC_SEND");
	/* XRC without send ops: through create_qp, and with an XRCD. */
	x.qp_type = IBV_QPT_XRC_SEND;
	x.comp_mask = IBV_QP_INIT_ATTR_PD;
	errno = 0;
	qp = ibv_create_qp_ex(ctx, &x);
	if (qp || errno != EOPNOTSUPP)
		die("create_qp_ex XRC_SEND (PD only): %p %s", (void *)qp, strerror(errno));
	x.qp_type = IBV_QPT_XRC_RECV;
	x.comp_mask = IBV_QP_INIT_ATTR_XRCD;
	x.pd = NULL;
	errno = 0;
	qp = ibv_create_qp_ex(ctx, &x);
	if (qp || errno != EOPNOTSUPP)
		die("create_qp_ex XRC_RECV: %p %s", (void *)qp, strerror(errno));
	expect_refused(IBV_QPT_UC, UC_OPS | IBV_QP_EX_WITH_RDMA_READ, "UC RDMA_READ");
	expect_refused(IBV_QPT_UC, UC_OPS | IBV_QP_EX_WITH_ATOMIC_FETCH_AND_ADD,
		       "UC FETCH_AND_ADD");
	expect_refused(IBV_QPT_UC, UC_OPS | IBV_QP_EX_WITH_ATOMIC_CMP_AND_SWP,
		       "UC CMP_AND_SWP");
	expect_refused(IBV_QPT_UD, UD_OPS | IBV_QP_EX_WITH_RDMA_WRITE, "UD RDMA_WRITE");
	expect_refused(IBV_QPT_UD, UD_OPS | IBV_QP_EX_WITH_RDMA_WRITE_WITH_IMM,
		       "UD RDMA_WRITE_WITH_IMM");
	expect_refused(IBV_QPT_UD, UD_OPS | IBV_QP_EX_WITH_RDMA_READ, "UD RDMA_READ");
	expect_refused(IBV_QPT_UD, UD_OPS | IBV_QP_EX_WITH_ATOMIC_FETCH_AND_ADD,
		       "UD FETCH_AND_ADD");
	printf("refusals ok: TSO FLUSH ATOMIC_WRITE XRC, UC read/atomics/send_inv, "
	       "UD rdma/atomics/mw; RC takes BIND_MW LOCAL_INV SEND_WITH_INV\n");
}

static void fill(size_t off, size_t len, uint8_t seed)
{
	for (size_t i = 0; i < len; i++)
		mem[off + i] = (uint8_t)(seed + i * 7);
}

static void expect_mem(size_t off, const void *want, size_t len, const char *what)
{
	if (memcmp(mem + off, want, len))
		die("%s: memory differs", what);
}

static void check_rc(void)
{
	struct ibv_qp *a = must_qp_ex(IBV_QPT_RC, RC_OPS);
	struct ibv_qp *b = must_qp_ex(IBV_QPT_RC, RC_OPS);
	struct ibv_qp_ex *x = ibv_qp_to_qp_ex(a);
	struct ibv_sge list[2] = {
		{ addr(SRC + 200), 50, mr->lkey }, { addr(SRC + 300), 70, mr->lkey },
	};
	struct ibv_data_buf il[2] = { { (void *)"abc", 3 }, { (void *)"defgh", 5 } };
	uint64_t t0, w0, v;
	struct got g[16];
	uint8_t want[256];
	int r;

	connect_qp(a, b, 1);
	connect_qp(b, a, 1);
	check_query_qp(a, b);
	check_query_qp(b, a);
	check_data_in_order(a, IBV_WR_SEND, 1);
	check_data_in_order(a, IBV_WR_SEND_WITH_IMM, 1);
	check_data_in_order(a, IBV_WR_RDMA_WRITE, 1);
	check_data_in_order(a, IBV_WR_RDMA_WRITE_WITH_IMM, 1);
	check_data_in_order(a, IBV_WR_RDMA_READ, 1);
	check_data_in_order(a, IBV_WR_ATOMIC_FETCH_AND_ADD, 0);
	check_data_in_order(a, IBV_WR_ATOMIC_CMP_AND_SWP, 0);

	fill(SRC, 4096, 1);
	fill(RSRC, 256, 99);
	memset(mem + RECV0, 0xee, 4 * 1024);
	memset(mem + WTGT, 0xee, 1024);
	memset(mem + RDST, 0xee, 512);
	memset(mem + ARES, 0xee, 16);
	v = 100;
	memcpy(mem + ATOM, &v, 8);
	for (int i = 0; i < 3; i++)
		post_recv(b, 1000 + i, RECV0 + 1024 * i, 1024);

	t0 = clock_ns(CLOCK_MONOTONIC);
	w0 = clock_ns(CLOCK_REALTIME);
	ibv_wr_start(x);
	x->wr_flags = IBV_SEND_SIGNALED;
	x->wr_id = 1;
	ibv_wr_send(x);
	ibv_wr_set_sge(x, mr->lkey, addr(SRC), 100);
	x->wr_id = 2;
	ibv_wr_send_imm(x, htonl(0x11223344));
	ibv_wr_set_inline_data(x, (void *)"inline-send", 11);
	x->wr_id = 3;
	ibv_wr_rdma_write(x, mr->rkey, addr(WTGT));
	ibv_wr_set_sge_list(x, 2, list);
	x->wr_id = 4;
	ibv_wr_rdma_write_imm(x, mr->rkey, addr(WTGT + 512), htonl(0x55667788));
	ibv_wr_set_inline_data_list(x, 2, il);
	x->wr_id = 5;
	ibv_wr_rdma_read(x, mr->rkey, addr(RSRC));
	ibv_wr_set_sge(x, mr->lkey, addr(RDST), 256);
	x->wr_id = 6;
	ibv_wr_atomic_fetch_add(x, mr->rkey, addr(ATOM), 5);
	ibv_wr_set_sge(x, mr->lkey, addr(ARES), 8);
	x->wr_id = 7;
	ibv_wr_atomic_cmp_swp(x, mr->rkey, addr(ATOM), 105, 777);
	ibv_wr_set_sge(x, mr->lkey, addr(ARES + 8), 8);
	r = ibv_wr_complete(x);
	if (r)
		die("ibv_wr_complete (RC batch): %s", strerror(r));
	poll_n(g, 10, t0, w0);

	expect_wc(g, 10, 1, IBV_WC_SEND, a->qp_num, b->qp_num, -1, 0, 0);
	expect_wc(g, 10, 2, IBV_WC_SEND, a->qp_num, b->qp_num, -1, 0, 0);
	expect_wc(g, 10, 3, IBV_WC_RDMA_WRITE, a->qp_num, b->qp_num, -1, 0, 0);
	expect_wc(g, 10, 4, IBV_WC_RDMA_WRITE, a->qp_num, b->qp_num, -1, 0, 0);
	expect_wc(g, 10, 5, IBV_WC_RDMA_READ, a->qp_num, b->qp_num, 256, 0, 0);
	expect_wc(g, 10, 6, IBV_WC_FETCH_ADD, a->qp_num, b->qp_num, 8, 0, 0);
	expect_wc(g, 10, 7, IBV_WC_COMP_SWAP, a->qp_num, b->qp_num, 8, 0, 0);
	expect_wc(g, 10, 1000, IBV_WC_RECV, b->qp_num, a->qp_num, 100, 0, 0);
	expect_wc(g, 10, 1001, IBV_WC_RECV, b->qp_num, a->qp_num, 11,
		  IBV_WC_WITH_IMM, 0x11223344);
	expect_wc(g, 10, 1002, IBV_WC_RECV_RDMA_WITH_IMM, b->qp_num, a->qp_num, 8,
		  IBV_WC_WITH_IMM, 0x55667788);

	expect_mem(RECV0, mem + SRC, 100, "SEND");
	if (mem[RECV0 + 100] != 0xee)
		die("SEND wrote past its 100 bytes");
	expect_mem(RECV0 + 1024, "inline-send", 11, "SEND_WITH_IMM inline");
	memcpy(want, mem + SRC + 200, 50);
	memcpy(want + 50, mem + SRC + 300, 70);
	expect_mem(WTGT, want, 120, "RDMA_WRITE sge list");
	if (mem[WTGT + 120] != 0xee)
		die("RDMA_WRITE wrote past its 120 bytes");
	expect_mem(WTGT + 512, "abcdefgh", 8, "RDMA_WRITE_WITH_IMM inline list");
	expect_mem(RDST, mem + RSRC, 256, "RDMA_READ");
	v = 100;
	expect_mem(ARES, &v, 8, "FETCH_AND_ADD result");
	v = 105;
	expect_mem(ARES + 8, &v, 8, "CMP_AND_SWP result");
	v = 777;
	expect_mem(ATOM, &v, 8, "atomic target");
	printf("rc batch ok: 7 builders, 10 completions, ts %llu..%llu ns, "
	       "wall - ts %lld ns\n", (unsigned long long)g[0].ts,
	       (unsigned long long)g[9].ts, (long long)(g[0].wall - g[0].ts));

	/* ibv_wr_abort: the batch goes nowhere. */
	post_recv(b, 1003, RECV0 + 3 * 1024, 1024);
	memset(mem + RECV0 + 3 * 1024, 0xee, 1024);
	ibv_wr_start(x);
	x->wr_flags = IBV_SEND_SIGNALED;
	x->wr_id = 100;
	ibv_wr_send(x);
	ibv_wr_set_sge(x, mr->lkey, addr(SRC + 1000), 40);
	x->wr_id = 101;
	ibv_wr_rdma_write(x, mr->rkey, addr(WTGT));
	ibv_wr_set_sge(x, mr->lkey, addr(SRC + 2000), 64);
	ibv_wr_abort(x);
	expect_quiet(0.3, "after ibv_wr_abort");
	/* A builder error: wr_complete fails, nothing is posted. */
	ibv_wr_start(x);
	x->wr_id = 102;
	ibv_wr_send(x);
	ibv_wr_set_sge(x, mr->lkey, addr(SRC), 10);
	x->wr_id = 103;
	ibv_wr_rdma_read(x, mr->rkey, addr(RSRC));
	ibv_wr_set_inline_data(x, (void *)"x", 1);
	r = ibv_wr_complete(x);
	if (r != EINVAL)
		die("ibv_wr_complete with inline data on a READ: %d, want EINVAL", r);
	expect_quiet(0.3, "after a failed ibv_wr_complete");
	t0 = clock_ns(CLOCK_MONOTONIC);
	w0 = clock_ns(CLOCK_REALTIME);
	ibv_wr_start(x);
	x->wr_flags = IBV_SEND_SIGNALED;
	x->wr_id = 104;
	ibv_wr_send(x);
	ibv_wr_set_inline_data(x, (void *)"after-abort", 11);
	r = ibv_wr_complete(x);
	if (r)
		die("ibv_wr_complete after abort: %s", strerror(r));
	poll_n(g, 2, t0, w0);
	expect_wc(g, 2, 104, IBV_WC_SEND, a->qp_num, b->qp_num, -1, 0, 0);
	expect_wc(g, 2, 1003, IBV_WC_RECV, b->qp_num, a->qp_num, 11, 0, 0);
	expect_mem(RECV0 + 3 * 1024, "after-abort", 11, "SEND after abort");
	memset(want, 0xee, 120);
	memcpy(want, mem + SRC + 200, 50);
	memcpy(want + 50, mem + SRC + 300, 70);
	expect_mem(WTGT, want, 120, "WRITE target after the aborted WRITE");
	printf("abort ok: aborted and failed batches posted nothing\n");

	if (ibv_destroy_qp(a) || ibv_destroy_qp(b))
		die("destroy RC QPs: %s", strerror(errno));
}

static void check_uc(void)
{
	struct ibv_qp *a = must_qp_ex(IBV_QPT_UC, UC_OPS);
	struct ibv_qp *b = must_qp_ex(IBV_QPT_UC, UC_OPS);
	struct ibv_qp_ex *x = ibv_qp_to_qp_ex(a);
	uint64_t t0, w0;
	struct got g[4];
	int r;

	connect_qp(a, b, 0);
	connect_qp(b, a, 0);
	check_data_in_order(a, IBV_WR_SEND, 1);
	check_data_in_order(a, IBV_WR_RDMA_WRITE, 1);
	check_data_in_order(a, IBV_WR_RDMA_READ, 0);
	memset(mem + RECV0, 0xee, 2048);
	memset(mem + WTGT, 0xee, 1024);
	post_recv(b, 2000, RECV0, 1024);
	post_recv(b, 2001, RECV0 + 1024, 1024);
	t0 = clock_ns(CLOCK_MONOTONIC);
	w0 = clock_ns(CLOCK_REALTIME);
	ibv_wr_start(x);
	x->wr_flags = IBV_SEND_SIGNALED;
	x->wr_id = 20;
	ibv_wr_send(x);
	ibv_wr_set_sge(x, mr->lkey, addr(SRC), 300);
	x->wr_id = 21;
	ibv_wr_rdma_write_imm(x, mr->rkey, addr(WTGT), htonl(0xabcdef01));
	ibv_wr_set_sge(x, mr->lkey, addr(SRC + 400), 200);
	r = ibv_wr_complete(x);
	if (r)
		die("ibv_wr_complete (UC): %s", strerror(r));
	poll_n(g, 4, t0, w0);
	expect_wc(g, 4, 20, IBV_WC_SEND, a->qp_num, b->qp_num, -1, 0, 0);
	expect_wc(g, 4, 21, IBV_WC_RDMA_WRITE, a->qp_num, b->qp_num, -1, 0, 0);
	expect_wc(g, 4, 2000, IBV_WC_RECV, b->qp_num, a->qp_num, 300, 0, 0);
	expect_wc(g, 4, 2001, IBV_WC_RECV_RDMA_WITH_IMM, b->qp_num, a->qp_num, 200,
		  IBV_WC_WITH_IMM, 0xabcdef01);
	expect_mem(RECV0, mem + SRC, 300, "UC SEND");
	expect_mem(WTGT, mem + SRC + 400, 200, "UC RDMA_WRITE_WITH_IMM");
	if (ibv_destroy_qp(a) || ibv_destroy_qp(b))
		die("destroy UC QPs: %s", strerror(errno));
	printf("uc ok: send and write_imm builders\n");
}

static void check_ud(void)
{
	struct ibv_qp *a = must_qp_ex(IBV_QPT_UD, UD_OPS);
	struct ibv_qp *b = must_qp_ex(IBV_QPT_UD, UD_OPS);
	struct ibv_qp_ex *x = ibv_qp_to_qp_ex(a);
	struct ibv_ah_attr aa = {
		.is_global = 1, .port_num = 1,
		.grh = { .dgid = gid, .sgid_index = 0, .hop_limit = 1 },
	};
	struct ibv_ah *ah;
	uint64_t t0, w0;
	struct got g[2];
	int r;

	ud_to_rts(a, QKEY, psn_of(a));
	ud_to_rts(b, QKEY, psn_of(b));
	check_data_in_order(a, IBV_WR_SEND, 1);
	check_data_in_order(a, IBV_WR_RDMA_WRITE, 0);
	ah = ibv_create_ah(pd, &aa);
	if (!ah)
		die("ibv_create_ah: %s", strerror(errno));
	memset(mem + RECV0, 0xee, 1024);
	post_recv(b, 3000, RECV0, 1024);
	t0 = clock_ns(CLOCK_MONOTONIC);
	w0 = clock_ns(CLOCK_REALTIME);
	ibv_wr_start(x);
	x->wr_flags = IBV_SEND_SIGNALED;
	x->wr_id = 30;
	ibv_wr_send_imm(x, htonl(0x0badcafe));
	ibv_wr_set_ud_addr(x, ah, b->qp_num, QKEY);
	ibv_wr_set_sge(x, mr->lkey, addr(SRC + 64), 200);
	r = ibv_wr_complete(x);
	if (r)
		die("ibv_wr_complete (UD): %s", strerror(r));
	poll_n(g, 2, t0, w0);
	expect_wc(g, 2, 30, IBV_WC_SEND, a->qp_num, 0, -1, 0, 0);
	expect_wc(g, 2, 3000, IBV_WC_RECV, b->qp_num, a->qp_num, GRH + 200,
		  IBV_WC_GRH | IBV_WC_WITH_IMM, 0x0badcafe);
	expect_mem(RECV0 + GRH, mem + SRC + 64, 200, "UD datagram");
	if (ibv_destroy_qp(a) || ibv_destroy_qp(b) || ibv_destroy_ah(ah))
		die("destroy UD QPs: %s", strerror(errno));
	printf("ud ok: send_imm + set_ud_addr datagram\n");
}

int main(int argc, char **argv)
{
	const char *dev = NULL;
	int c;

	setvbuf(stdout, NULL, _IOLBF, 0);
	while ((c = getopt(argc, argv, "d:w:")) != -1) {
		switch (c) {
		case 'd': dev = optarg; break;
		case 'w': wait_s = atof(optarg); break;
		default: goto usage;
		}
	}
	if (!dev)
		goto usage;
	ctx = open_by_name(dev);
	pd = ibv_alloc_pd(ctx);
	if (!pd)
		die("ibv_alloc_pd: %s", strerror(errno));
	if (posix_memalign((void **)&mem, 4096, MEMSZ))
		die("posix_memalign");
	mr = ibv_reg_mr(pd, mem, MEMSZ, ACCESS);
	if (!mr)
		die("ibv_reg_mr: %s", strerror(errno));
	if (ibv_query_gid(ctx, 1, 0, &gid))
		die("ibv_query_gid: %s", strerror(errno));

	check_device();
	check_gids();
	check_cq_ex();
	check_refusals();
	check_rc();
	check_uc();
	check_ud();

	if (ibv_dereg_mr(mr) || ibv_destroy_cq(ibv_cq_ex_to_cq(cqx)) ||
	    ibv_dealloc_pd(pd) || ibv_close_device(ctx))
		die("teardown: %s", strerror(errno));
	free(mem);
	printf("ext ok\n");
	return 0;
usage:
	fprintf(stderr, "usage: omx_ext -d DEV [-w SECONDS]\n");
	return 2;
}
