// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * omx_mcast: UD multicast (ibv_attach_mcast, docs/wire.md section 13.5).
 *
 *   omx_mcast recv -d DEV -g GID -q QPS -a ATTACHED -n N -r DIR [-k]
 *   omx_mcast send -d DEV -g GID -n N [-s SIZE]
 *   omx_mcast attach -d DEV -g GID -e ERRNO
 *   omx_mcast errnos -d DEV -g GID -L GROUPS,PER_GROUP,TOTAL
 *
 * recv: QPS UD QPs (one CQ each, Q_Key QK), the first ATTACHED of them
 * attached to GID, then DIR/ready.  Every attached QP must receive N
 * datagrams, each with IBV_WC_GRH, a GRH whose DGID is GID and whose SGID
 * is the sender's GID 0, src_qp = the sender's QP, and the bytes sent
 * (byte k of datagram i = i + k); the unattached QPs none.  Then
 * DIR/got; it waits for DIR/detach, detaches every QP, DIR/detached;
 * waits for DIR/done (the sender sent again meanwhile) and checks that
 * no QP received anything more.  Prints "mcast recv ok".  With -k it
 * only attaches, writes DIR/ready and sleeps (to be killed, or to see
 * its device removed).
 *
 * send: one UD QP, an AH to GID (sgid_index 0), N SENDs of SIZE bytes
 * (default 256) to remote_qpn 0xffffff, each completed before the next.
 *
 * attach: one UD QP attached to GID; exits 0 if the attach returned
 * ERRNO (0 = success; then it detaches again).
 *
 * errnos: the device attributes max_mcast_grp, max_mcast_qp_attach and
 * max_total_mcast_qp_attach equal the module parameters given by -L
 * (which the caller set low: GROUPS = 2, PER_GROUP = 2, TOTAL = 3);
 * EINVAL for an RC and a UC QP, for a unicast GID (link-local and
 * IPv4-mapped); an IPv4-mapped multicast GID attaches; then the three
 * limits each refused with ENOMEM while the other two have room; EBUSY
 * for destroying an attached QP.  Prints "mcast errnos ok".
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common.h"

#define QK 0x5eed0001u
#define GRH 40
#define MAXQ 8
#define MAXN 64
#define SLOT 4096
#define MCAST_QPN 0xffffffu

static struct ibv_context *ctx;
static struct ibv_pd *pd;
static uint8_t *buf;
static struct ibv_mr *mr;

static void setup(const char *dev)
{
	ctx = open_by_name(dev);
	pd = ibv_alloc_pd(ctx);
	if (!pd)
		die("ibv_alloc_pd: %s", strerror(errno));
	buf = calloc(MAXQ * MAXN + 1, SLOT);
	if (!buf)
		die("calloc");
	mr = ibv_reg_mr(pd, buf, (size_t)(MAXQ * MAXN + 1) * SLOT,
			IBV_ACCESS_LOCAL_WRITE);
	if (!mr)
		die("ibv_reg_mr: %s", strerror(errno));
}

static struct ibv_qp *make_qp(enum ibv_qp_type type, struct ibv_cq *cq,
			      int to_rts)
{
	struct ibv_qp_init_attr ia = {
		.send_cq = cq, .recv_cq = cq, .qp_type = type,
		.cap = { .max_send_wr = 4, .max_recv_wr = MAXN,
			 .max_send_sge = 1, .max_recv_sge = 1 },
	};
	struct ibv_qp *qp = ibv_create_qp(pd, &ia);

	if (!qp)
		die("ibv_create_qp(%d): %s", type, strerror(errno));
	return to_rts ? ud_to_rts(qp, QK, 1) : qp;
}

static struct ibv_cq *make_cq(void)
{
	struct ibv_cq *cq = ibv_create_cq(ctx, MAXN + 8, NULL, NULL, 0);

	if (!cq)
		die("ibv_create_cq: %s", strerror(errno));
	return cq;
}

static uint8_t *slot_of(int q, int i)
{
	return buf + SLOT + ((size_t)q * MAXN + i) * SLOT;
}

static void post_recv(struct ibv_qp *qp, int q, int i)
{
	struct ibv_sge s = {
		.addr = (uintptr_t)slot_of(q, i), .length = SLOT,
		.lkey = mr->lkey,
	};
	struct ibv_recv_wr wr = { .wr_id = i, .sg_list = &s, .num_sge = 1 };
	struct ibv_recv_wr *bad;

	memset(slot_of(q, i), 0xee, SLOT);
	if (ibv_post_recv(qp, &wr, &bad))
		die("ibv_post_recv: %s", strerror(errno));
}

static void parse_gid(const char *s, union ibv_gid *g)
{
	if (inet_pton(AF_INET6, s, g->raw) != 1)
		die("bad GID %s", s);
}

static void wait_file(const char *dir, const char *name, double secs)
{
	char p[512];
	struct stat st;
	double end = now_s() + secs;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	while (stat(p, &st)) {
		if (now_s() > end)
			die("timed out waiting for %s", p);
		usleep(20000);
	}
}

static void touch_in(const char *dir, const char *name)
{
	char p[512];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	touch(p);
}

/* Checks one receive completion of QP q against datagram number seq. */
static void check_wc(const struct ibv_wc *wc, int q, const union ibv_gid *g,
		     uint32_t *src_qp)
{
	const uint8_t *p = slot_of(q, wc->wr_id);
	uint32_t len, k;
	uint8_t seq;

	if (wc->status != IBV_WC_SUCCESS)
		die("QP %d: status %s", q, ibv_wc_status_str(wc->status));
	if (!(wc->wc_flags & IBV_WC_GRH) || wc->byte_len < GRH + 1)
		die("QP %d: flags %#x byte_len %u", q, wc->wc_flags,
		    wc->byte_len);
	if (memcmp(p + 24, g->raw, 16))
		die("QP %d: the GRH's DGID is not the group", q);
	if (*src_qp && *src_qp != wc->src_qp)
		die("QP %d: src_qp %#x, before %#x", q, wc->src_qp, *src_qp);
	*src_qp = wc->src_qp;
	len = wc->byte_len - GRH;
	seq = p[GRH];
	for (k = 0; k < len; k++)
		if (p[GRH + k] != (uint8_t)(seq + k))
			die("QP %d: datagram %u byte %u", q, seq, k);
}

/* Receives on every QP for up to secs; returns the counts in got[]. */
static void receive(struct ibv_qp **qps, struct ibv_cq **cqs, int nq,
		    const union ibv_gid *g, int *got, int want, int attached,
		    double secs)
{
	double end = now_s() + secs;
	uint32_t src = 0;
	struct ibv_wc wc;
	int q, done;

	do {
		done = 1;
		for (q = 0; q < nq; q++) {
			while (ibv_poll_cq(cqs[q], 1, &wc) > 0) {
				check_wc(&wc, q, g, &src);
				if (++got[q] > MAXN)
					die("QP %d: too many", q);
				post_recv(qps[q], q, wc.wr_id);
			}
			if (q < attached && got[q] < want)
				done = 0;
		}
		if (want && done)
			break;
		usleep(1000);
	} while (now_s() < end);
}

static int do_recv(const char *dev, const union ibv_gid *g, int nq, int na,
		   int n, const char *dir, int hold)
{
	struct ibv_qp *qps[MAXQ];
	struct ibv_cq *cqs[MAXQ];
	int got[MAXQ] = { 0 };
	int q, i;

	if (nq < 1 || nq > MAXQ || na > nq || n < 1 || n > MAXN - 4)
		die("bad -q/-a/-n");
	setup(dev);
	for (q = 0; q < nq; q++) {
		cqs[q] = make_cq();
		qps[q] = make_qp(IBV_QPT_UD, cqs[q], 1);
		for (i = 0; i < MAXN; i++)
			post_recv(qps[q], q, i);
	}
	for (q = 0; q < na; q++)
		if ((i = ibv_attach_mcast(qps[q], g, 0)))
			die("ibv_attach_mcast: %s", strerror(i));
	touch_in(dir, "ready");
	if (hold)
		for (;;)
			pause();
	receive(qps, cqs, nq, g, got, n, na, 120);
	for (q = 0; q < nq; q++) {
		printf("QP %d (%#x, %s): %d datagrams\n", q, qps[q]->qp_num,
		       q < na ? "attached" : "not attached", got[q]);
		if (got[q] != (q < na ? n : 0))
			die("QP %d received %d datagrams", q, got[q]);
	}
	touch_in(dir, "got");
	wait_file(dir, "detach", 300);
	for (q = 0; q < na; q++)
		if ((i = ibv_detach_mcast(qps[q], g, 0)))
			die("ibv_detach_mcast: %s", strerror(i));
	touch_in(dir, "detached");
	wait_file(dir, "done", 300);
	memset(got, 0, sizeof(got));
	receive(qps, cqs, nq, g, got, 0, na, 2);
	for (q = 0; q < nq; q++)
		if (got[q])
			die("QP %d received %d datagrams after detach", q,
			    got[q]);
	for (q = 0; q < nq; q++) {
		if ((i = ibv_destroy_qp(qps[q])))
			die("ibv_destroy_qp: %s", strerror(i));
		ibv_destroy_cq(cqs[q]);
	}
	printf("mcast recv ok: %d QPs, %d attached, %d datagrams each\n", nq,
	       na, n);
	return 0;
}

static int do_send(const char *dev, const union ibv_gid *g, int n,
		   uint32_t size)
{
	struct ibv_ah_attr aa = {
		.is_global = 1, .port_num = 1,
		.grh = { .dgid = *g, .sgid_index = 0, .hop_limit = 1 },
	};
	struct ibv_send_wr wr = { .opcode = IBV_WR_SEND, .num_sge = 1,
				  .send_flags = IBV_SEND_SIGNALED };
	struct ibv_sge s = { .addr = (uintptr_t)buf, .length = size };
	struct ibv_send_wr *bad;
	struct ibv_cq *cq;
	struct ibv_qp *qp;
	struct ibv_ah *ah;
	struct ibv_wc wc;
	uint32_t k;
	int i, r;

	setup(dev);
	cq = make_cq();
	qp = make_qp(IBV_QPT_UD, cq, 1);
	ah = ibv_create_ah(pd, &aa);
	if (!ah)
		die("ibv_create_ah: %s", strerror(errno));
	if (size < 1 || size > SLOT - GRH)
		die("bad -s");
	s.addr = (uintptr_t)buf;
	s.lkey = mr->lkey;
	wr.sg_list = &s;
	wr.wr.ud.ah = ah;
	wr.wr.ud.remote_qpn = MCAST_QPN;
	wr.wr.ud.remote_qkey = QK;
	for (i = 0; i < n; i++) {
		for (k = 0; k < size; k++)
			buf[k] = (uint8_t)(i + k);
		wr.wr_id = i;
		if (ibv_post_send(qp, &wr, &bad))
			die("ibv_post_send: %s", strerror(errno));
		while ((r = ibv_poll_cq(cq, 1, &wc)) == 0)
			;
		if (r < 0 || wc.status != IBV_WC_SUCCESS)
			die("send %d: %s", i, ibv_wc_status_str(wc.status));
		usleep(2000);
	}
	printf("mcast send ok: %d datagrams of %u bytes\n", n, size);
	return 0;
}

/* errno of one attach (0 on success, then detached again). */
static int attach_errno(struct ibv_qp *qp, const union ibv_gid *g)
{
	int r = ibv_attach_mcast(qp, g, 0);

	if (r == 0 && (r = ibv_detach_mcast(qp, g, 0)))
		die("ibv_detach_mcast: %s", strerror(r));
	return r;
}

static int do_attach(const char *dev, const union ibv_gid *g, int want)
{
	struct ibv_qp *qp;
	int e;

	setup(dev);
	qp = make_qp(IBV_QPT_UD, make_cq(), 0);
	e = attach_errno(qp, g);
	if (e != want)
		die("attach: errno %d (%s), expected %d", e, strerror(e), want);
	printf("mcast attach: errno %d as expected\n", e);
	return 0;
}

static void expect_attach(struct ibv_qp *qp, const union ibv_gid *g, int want,
			  const char *what)
{
	int e = ibv_attach_mcast(qp, g, 0);

	if (e != want)
		die("%s: errno %d (%s), expected %d", what, e, strerror(e),
		    want);
	printf("%s: errno %d\n", what, e);
}

static int do_errnos(const char *dev, const union ibv_gid *g,
		     const char *limits)
{
	struct ibv_device_attr da;
	union ibv_gid g2 = *g, g3 = *g, bad;
	struct ibv_qp *q[3], *rc, *uc;
	int lg, lq, lt, i;

	if (sscanf(limits, "%d,%d,%d", &lg, &lq, &lt) != 3 || lg != 2 ||
	    lq != 2 || lt != 3)
		die("bad -L");
	setup(dev);
	if (ibv_query_device(ctx, &da))
		die("ibv_query_device: %s", strerror(errno));
	printf("max_mcast_grp %d max_mcast_qp_attach %d max_total_mcast_qp_attach %d\n",
	       da.max_mcast_grp, da.max_mcast_qp_attach,
	       da.max_total_mcast_qp_attach);
	if (da.max_mcast_grp != lg || da.max_mcast_qp_attach != lq ||
	    da.max_total_mcast_qp_attach != lt)
		die("device attributes are not the module parameters %s",
		    limits);
	g2.raw[15] ^= 0x40;
	g3.raw[15] ^= 0x80;
	rc = make_qp(IBV_QPT_RC, make_cq(), 0);
	uc = make_qp(IBV_QPT_UC, make_cq(), 0);
	for (i = 0; i < 3; i++)
		q[i] = make_qp(IBV_QPT_UD, make_cq(), 1);
	expect_attach(rc, g, EINVAL, "RC QP");
	expect_attach(uc, g, EINVAL, "UC QP");
	parse_gid("fe80::1", &bad);
	expect_attach(q[0], &bad, EINVAL, "link-local GID");
	parse_gid("::ffff:10.1.2.3", &bad);
	expect_attach(q[0], &bad, EINVAL, "IPv4-mapped unicast GID");
	parse_gid("::ffff:239.1.2.3", &bad);
	i = attach_errno(q[0], &bad);
	if (i)
		die("IPv4-mapped multicast GID refused: %s", strerror(i));
	printf("IPv4-mapped multicast GID: attached and detached\n");
	/* Per group: 2 attachments (total 2 of 3, 1 group of >= 2). */
	expect_attach(q[0], g, 0, "g, QP 0");
	expect_attach(q[1], g, 0, "g, QP 1");
	expect_attach(q[2], g, ENOMEM, "g, QP 2 (max_mcast_qp_attach)");
	/* Total: 3 (g2 has room, a second group too). */
	expect_attach(q[0], &g2, 0, "g2, QP 0");
	expect_attach(q[1], &g2, ENOMEM, "g2, QP 1 (max_total_mcast_qp_attach)");
	if (ibv_destroy_qp(q[0]) != EBUSY)
		die("destroying an attached QP did not fail with EBUSY");
	printf("destroy attached QP: EBUSY\n");
	if (ibv_detach_mcast(q[1], &g2, 0) != EINVAL)
		die("detaching a QP that is not attached did not give EINVAL");
	/* Groups: 2 (g with QP 1, g2 with QP 0; total back to 2 of 3). */
	if ((i = ibv_detach_mcast(q[0], g, 0)))
		die("ibv_detach_mcast: %s", strerror(i));
	expect_attach(q[1], &g3, ENOMEM, "a third group (max_mcast_grp)");
	if ((i = ibv_detach_mcast(q[1], g, 0)) ||
	    (i = ibv_detach_mcast(q[0], &g2, 0)))
		die("ibv_detach_mcast: %s", strerror(i));
	printf("mcast errnos ok\n");
	return 0;
}

int main(int argc, char **argv)
{
	const char *dev = NULL, *dir = ".", *limits = NULL;
	int nq = 1, na = 1, n = 16, hold = 0, want = 0, opt;
	uint32_t size = 256;
	union ibv_gid g;
	int have_gid = 0;

	if (argc < 2)
		goto usage;
	optind = 2;
	while ((opt = getopt(argc, argv, "d:g:q:a:n:r:ks:e:L:")) != -1) {
		switch (opt) {
		case 'd': dev = optarg; break;
		case 'g': parse_gid(optarg, &g); have_gid = 1; break;
		case 'q': nq = atoi(optarg); break;
		case 'a': na = atoi(optarg); break;
		case 'n': n = atoi(optarg); break;
		case 'r': dir = optarg; break;
		case 'k': hold = 1; break;
		case 's': size = strtoul(optarg, NULL, 0); break;
		case 'e': want = atoi(optarg); break;
		case 'L': limits = optarg; break;
		default: goto usage;
		}
	}
	if (!dev || !have_gid)
		goto usage;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(argv[1], "recv"))
		return do_recv(dev, &g, nq, na, n, dir, hold);
	if (!strcmp(argv[1], "send"))
		return do_send(dev, &g, n, size);
	if (!strcmp(argv[1], "attach"))
		return do_attach(dev, &g, want);
	if (!strcmp(argv[1], "errnos") && limits)
		return do_errnos(dev, &g, limits);
usage:
	fprintf(stderr, "usage: see the top of omx_mcast.c\n");
	return 2;
}
