// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * omx_mw: memory windows (type 1 and type 2) as IBTA and libibverbs
 * specify them, with plain libibverbs.
 *
 *   omx_mw -d DEV [-g GIDX] [-w SECONDS] [-Q QUIRKS]
 *   omx_mw -d DEV [-g GIDX] -S [-p PORT]
 *   omx_mw -d DEV [-g GIDX] -C SERVER_IP [-p PORT]
 *
 * The "owner" holds the memory, the MRs and the windows, binds and
 * invalidates them and receives; the "peer" does the remote accesses
 * (RDMA WRITE / READ, SEND_WITH_INV) through RC QPs connected to the
 * owner's. Without -S/-C both roles live in one process on one device
 * (QPs connected to each other); with -S the server is the owner and
 * the client (-C) the peer: the owner drives every step and asks the peer
 * over TCP to create a QP connected to one of its own, to access memory
 * or to send, and the peer answers with the completion's status (and the
 * data it read). Every negative case that can move a QP to the error state
 * runs on a fresh QP pair. Every CQ poll and TCP read has a timeout.
 *
 * Checks (one line each):
 *  a. max_mw > 0, IBV_DEVICE_MEM_WINDOW and TYPE_2A or 2B (max_mw == 0:
 *     "no memory windows", exit 77);
 *  b. type 1: ibv_bind_mw -> IBV_WC_BIND_MW completion with the wr_id, a
 *     new mw->rkey; WRITE / READ through it land exactly in the window
 *     (the whole owner buffer is compared with its expected image after
 *     every access); a WRITE one byte past the end or one byte before the
 *     start -> IBV_WC_REM_ACCESS_ERR, nothing changed; a rebind read-only:
 *     WRITE refused, READ works, the old rkey refused; a bind of length 0
 *     unbinds (both rkeys refused); ibv_dealloc_mw;
 *  c. type 2: IBV_WR_BIND_MW with ibv_inc_rkey(); WRITE / READ; LOCAL_INV
 *     -> IBV_WC_LOCAL_INV, then refused; rebind, the peer's SEND_WITH_INV
 *     -> IBV_WC_RECV with IBV_WC_WITH_INV and invalidated_rkey, then
 *     refused; a window bound through QP X is refused to a peer connected
 *     to QP Y of the same PD while X's peer still reaches it;
 *  d. the same through ibv_create_qp_ex and ibv_wr_bind_mw /
 *     ibv_wr_local_inv / ibv_wr_send_inv (skipped on rxe only if rxe
 *     refuses the QP);
 *  e. refusals (post error or IBV_WC_MW_BIND_ERR; the window stays
 *     unbound): an MR without IBV_ACCESS_MW_BIND, a range one byte beyond
 *     the MR, a REMOTE_WRITE window on an MR without LOCAL_WRITE (a
 *     REMOTE_READ one binds); LOCAL_INV of an MR's rkey, of a type 1
 *     window, of a stale rkey, of an invalidated window -> error status;
 *     SEND_WITH_INV of an MR's rkey or a type 1 window -> the sender's
 *     completion is an error and the receiver gets no successful one;
 *  f. a type 2 bind of a bound window is refused, through the QP it is
 *     bound through and through another one, and changes nothing;
 *     ibv_dealloc_mw of a bound window returns 0 and its rkey dies.
 * Prints "mw ok" and exits 0 on success, 1 on the first failure, 77 when
 * the device has no memory windows.
 *
 * Deviations of rxe (device name "rxe*") that the program works around,
 * each printed when used; -Q NAME[,NAME] disables the named workarounds:
 *  unbind-mr  rdma-core's rxe provider dereferences bind_info.mr of a
 *             bind of length 0: the unbind passes the MR instead of NULL;
 *  mw-rkey    rxe finds a type 2 window by the ibv_mw's rkey field, which
 *             nothing updates after a bind: the program stores the bound
 *             rkey there, or a rebind fails with IBV_WC_MW_BIND_ERR;
 *  win-range rxe checks an access through a window against the range of
 *             the window's MR, not the window's own: the accesses outside
 *             the window (inside the MR) succeed; they are skipped;
 *  wc-inv-flag rxe's user CQ entries carry the kernel's ib_wc_flags,
 *             whose IB_WC_WITH_INVALIDATE is libibverbs' IBV_WC_IP_CSUM_OK:
 *             that bit is taken for IBV_WC_WITH_INV on rxe;
 *  bind-err-flush  a refused bind's own completion has the status
 *             IBV_WC_WR_FLUSH_ERR (rxe moves the QP to error and flushes
 *             the failed WQE with the rest), not IBV_WC_MW_BIND_ERR: taken
 *             for a refusal on rxe;
 *  send-inv-ack  a SEND_WITH_INV naming an rkey that cannot be
 *             invalidated is acknowledged (rxe's responder "class J":
 *             receive WQE in error, QP to error, but no NAK): the sender
 *             sees success; taken on rxe when the receiver got an error;
 *  inv-free   rxe's kernel side accepts invalidating a type 2 window that
 *             is already invalidated and then dereferences its NULL QP and
 *             MR (an oops): that case is skipped.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include "common.h"

#define PAGE 4096
#define MRLEN (3 * PAGE)
#define WLEN PAGE
#define MAXD PAGE
#define CANARY 0xCA
#define PEERFILL 0x5A
#define MAXCONN 128

static struct ibv_context *ctx;
static struct ibv_pd *pd;
static union ibv_gid gid;
static int gidx;
static double wait_s = 30;
static int sock = -1;		/* TCP to the peer (owner) or owner (peer) */
static int is_rxe;
static const char *noquirk = "";

/* The owner's memory: buf is what the peers access, exp its expected image. */
static uint8_t buf[MRLEN] __attribute__((aligned(PAGE)));
static uint8_t exp_[MRLEN];
static uint8_t rbuf[256] __attribute__((aligned(64)));
#define WIN ((uintptr_t)buf + PAGE)
static struct ibv_mr *mr, *rmr;
static unsigned int seed = 1;

/* Is the named rxe workaround on? Says so the first time. */
static int quirk(const char *name, const char *what)
{
	static char told[128];

	if (!is_rxe || strstr(noquirk, name))
		return 0;
	if (!strstr(told, name)) {
		printf("rxe deviation %s: %s (worked around)\n", name, what);
		strncat(told, name, sizeof(told) - strlen(told) - 2);
		strcat(told, " ");
	}
	return 1;
}

/* A refused bind: refused at post (-1) or IBV_WC_MW_BIND_ERR. */
static int bind_refusal_ok(int s)
{
	if (s == -1 || s == IBV_WC_MW_BIND_ERR)
		return 1;
	return s == IBV_WC_WR_FLUSH_ERR &&
	       quirk("bind-err-flush", "a refused bind completes with "
		     "IBV_WC_WR_FLUSH_ERR, not IBV_WC_MW_BIND_ERR");
}

/* ---- QPs -------------------------------------------------------------- */

#define SEND_OPS (IBV_QP_EX_WITH_BIND_MW | IBV_QP_EX_WITH_LOCAL_INV | \
		  IBV_QP_EX_WITH_SEND_WITH_INV | IBV_QP_EX_WITH_RDMA_WRITE | \
		  IBV_QP_EX_WITH_RDMA_READ | IBV_QP_EX_WITH_SEND)

/* An RC QP in INIT with its own CQ; NULL (errno set) if ex and refused. */
static struct ibv_qp *mkqp(struct ibv_cq **cq, int ex, struct ibv_qp_ex **qx)
{
	struct ibv_qp_init_attr_ex ia = {
		.qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = 16, .max_recv_wr = 4,
			 .max_send_sge = 1, .max_recv_sge = 1 },
		.comp_mask = IBV_QP_INIT_ATTR_PD,
		.pd = pd,
	};
	struct ibv_qp_attr a = {
		.qp_state = IBV_QPS_INIT, .port_num = 1,
		.qp_access_flags = IBV_ACCESS_REMOTE_READ |
				   IBV_ACCESS_REMOTE_WRITE,
	};
	struct ibv_qp *qp;

	*cq = ibv_create_cq(ctx, 32, NULL, NULL, 0);
	if (!*cq)
		die("ibv_create_cq: %s", strerror(errno));
	ia.send_cq = ia.recv_cq = *cq;
	if (ex) {
		ia.comp_mask |= IBV_QP_INIT_ATTR_SEND_OPS_FLAGS;
		ia.send_ops_flags = SEND_OPS;
	}
	qp = ibv_create_qp_ex(ctx, &ia);
	if (!qp) {
		int e = errno;

		if (!ex)
			die("create QP: %s", strerror(e));
		ibv_destroy_cq(*cq);
		errno = e;
		return NULL;
	}
	if (ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX |
			  IBV_QP_PORT | IBV_QP_ACCESS_FLAGS))
		die("modify to INIT: %s", strerror(errno));
	if (qx) {
		*qx = ex ? ibv_qp_to_qp_ex(qp) : NULL;
		if (ex && !*qx)
			die("ibv_qp_to_qp_ex returned NULL");
	}
	return qp;
}

static void to_rts(struct ibv_qp *qp, uint32_t dest_qpn, const union ibv_gid *dgid)
{
	struct rc_conn c = {
		.rd_atomic = 4, .min_rnr_timer = 12, .rnr_retry = 3, .timeout = 14,
		.sgid_index = (uint8_t)gidx,
	};

	rc_to_rts(qp, dest_qpn, dgid, &c);
}

/* One completion within secs; 0 if none came. */
static int poll_for(struct ibv_cq *cq, struct ibv_wc *wc, double secs)
{
	double end = now_s() + secs;
	int n;

	while ((n = ibv_poll_cq(cq, 1, wc)) == 0) {
		if (now_s() > end)
			return 0;
		usleep(200);
	}
	if (n < 0)
		die("ibv_poll_cq: %d", n);
	return 1;
}

static struct ibv_wc poll1(struct ibv_cq *cq, const char *what)
{
	struct ibv_wc wc;

	if (!poll_for(cq, &wc, wait_s))
		die("%s: no completion within %.0f s", what, wait_s);
	return wc;
}

/* ---- the peer: requests from the owner -------------------------------- */

enum { OP_NEWQP = 1, OP_WRITE, OP_READ, OP_SEND_INV, OP_DESTROY, OP_END };

struct req {
	uint32_t op, id, rkey, len, ex, qpn;
	uint64_t addr;
	union ibv_gid gid;
	uint8_t data[MAXD];
};

/* status: a wc status, or -1 when the post (or the QP creation) failed. */
struct rep {
	int32_t status;
	uint32_t id, qpn, opcode;
	union ibv_gid gid;
	char err[128];
	uint8_t data[MAXD];
};

struct pconn {
	struct ibv_cq *cq;
	struct ibv_qp *qp;
	struct ibv_qp_ex *qx;
};

static struct pconn pconns[MAXCONN];
static uint8_t pbuf[MAXD] __attribute__((aligned(PAGE)));
static struct ibv_mr *pmr;

static void peer_init(void)
{
	pmr = ibv_reg_mr(pd, pbuf, sizeof(pbuf), IBV_ACCESS_LOCAL_WRITE);
	if (!pmr)
		die("peer ibv_reg_mr: %s", strerror(errno));
}

static void peer_exec(const struct req *q, struct rep *p)
{
	struct pconn *c = NULL;
	struct ibv_sge sge = { (uintptr_t)pbuf, q->len, pmr ? pmr->lkey : 0 };
	struct ibv_send_wr wr = {
		.wr_id = 1000 + q->op, .sg_list = &sge, .num_sge = 1,
		.send_flags = IBV_SEND_SIGNALED,
		.wr.rdma = { .remote_addr = q->addr, .rkey = q->rkey },
	}, *bad = NULL;
	struct ibv_wc wc;
	int r = 0, i;

	memset(p, 0, sizeof(*p));
	if (q->op != OP_NEWQP) {
		if (q->id >= MAXCONN || !pconns[q->id].qp)
			die("peer: no QP %u", q->id);
		c = &pconns[q->id];
	}
	if (q->len > MAXD)
		die("peer: length %u", q->len);
	switch (q->op) {
	case OP_NEWQP:
		for (i = 0; i < MAXCONN && pconns[i].qp; i++)
			;
		if (i == MAXCONN)
			die("peer: too many QPs");
		c = &pconns[i];
		c->qp = mkqp(&c->cq, q->ex, &c->qx);
		if (!c->qp) {
			p->status = -1;
			snprintf(p->err, sizeof(p->err),
				 "peer ibv_create_qp_ex: %s", strerror(errno));
			return;
		}
		to_rts(c->qp, q->qpn, &q->gid);
		p->id = i;
		p->qpn = c->qp->qp_num;
		p->gid = gid;
		return;
	case OP_DESTROY:
		if (ibv_destroy_qp(c->qp) || ibv_destroy_cq(c->cq))
			die("peer: destroy QP/CQ: %s", strerror(errno));
		memset(c, 0, sizeof(*c));
		return;
	case OP_WRITE:
		memcpy(pbuf, q->data, q->len);
		wr.opcode = IBV_WR_RDMA_WRITE;
		r = ibv_post_send(c->qp, &wr, &bad);
		break;
	case OP_READ:
		memset(pbuf, PEERFILL, sizeof(pbuf));
		wr.opcode = IBV_WR_RDMA_READ;
		r = ibv_post_send(c->qp, &wr, &bad);
		break;
	case OP_SEND_INV:
		memcpy(pbuf, q->data, q->len);
		if (q->ex) {
			ibv_wr_start(c->qx);
			c->qx->wr_id = wr.wr_id;
			c->qx->wr_flags = IBV_SEND_SIGNALED;
			ibv_wr_send_inv(c->qx, q->rkey);
			ibv_wr_set_sge(c->qx, sge.lkey, sge.addr, sge.length);
			r = ibv_wr_complete(c->qx);
		} else {
			wr.opcode = IBV_WR_SEND_WITH_INV;
			wr.invalidate_rkey = q->rkey;
			r = ibv_post_send(c->qp, &wr, &bad);
		}
		break;
	default:
		die("peer: op %u", q->op);
	}
	if (r) {
		p->status = -1;
		snprintf(p->err, sizeof(p->err), "peer post: %s", strerror(r));
		return;
	}
	wc = poll1(c->cq, "peer");
	if (wc.wr_id != wr.wr_id)
		die("peer: completion wr_id %llu, want %llu",
		    (unsigned long long)wc.wr_id, (unsigned long long)wr.wr_id);
	p->status = wc.status;
	p->opcode = wc.opcode;
	if (q->op == OP_READ)
		memcpy(p->data, pbuf, q->len);
}

static void xfer(void *b_, size_t n, int out)
{
	uint8_t *b = b_;

	while (n) {
		ssize_t r = out ? write(sock, b, n) : read(sock, b, n);

		if (r <= 0)
			die("TCP %s: %s", out ? "write" : "read",
			    r ? strerror(errno) : "connection closed");
		b += r;
		n -= r;
	}
}

static struct rep *peer_call(const struct req *q)
{
	static struct rep p;

	if (sock < 0) {
		peer_exec(q, &p);
	} else {
		xfer((void *)q, sizeof(*q), 1);
		if (q->op != OP_END)
			xfer(&p, sizeof(p), 0);
	}
	return &p;
}

/* ---- the owner's side of a connection --------------------------------- */

struct conn {
	struct ibv_cq *cq;
	struct ibv_qp *qp;
	struct ibv_qp_ex *qx;
	uint32_t id;		/* the peer's QP */
	int ex;
};

/* A fresh QP pair; NULL if ex and the QP was refused (message printed). */
static struct conn *conn_new(int ex)
{
	struct conn *c = calloc(1, sizeof(*c));
	struct req q = { .op = OP_NEWQP, .ex = ex, .gid = gid };
	struct rep *p;

	if (!c)
		die("calloc");
	c->ex = ex;
	c->qp = mkqp(&c->cq, ex, &c->qx);
	if (!c->qp) {
		printf("ibv_create_qp_ex with send_ops_flags 0x%x: %s\n",
		       SEND_OPS, strerror(errno));
		free(c);
		return NULL;
	}
	q.qpn = c->qp->qp_num;
	p = peer_call(&q);
	if (p->status) {
		printf("%s\n", p->err);
		ibv_destroy_qp(c->qp);
		ibv_destroy_cq(c->cq);
		free(c);
		return NULL;
	}
	c->id = p->id;
	to_rts(c->qp, p->qpn, &p->gid);
	return c;
}

static void conn_free(struct conn *c)
{
	struct req q = { .op = OP_DESTROY, .id = c->id };

	peer_call(&q);
	if (ibv_destroy_qp(c->qp) || ibv_destroy_cq(c->cq))
		die("destroy QP/CQ: %s", strerror(errno));
	free(c);
}

/* The connection was used for a refused access: replace it. */
static struct conn *renew(struct conn *c)
{
	int ex = c->ex;

	conn_free(c);
	c = conn_new(ex);
	if (!c)
		die("fresh QP pair refused");
	return c;
}

static const char *st(int s)
{
	return s < 0 ? "post error" : ibv_wc_status_str(s);
}

static void expect_mem(const char *what)
{
	for (int i = 0; i < MRLEN; i++)
		if (buf[i] != exp_[i])
			die("%s: owner byte at offset %d (window %+d) is 0x%02x, want 0x%02x",
			    what, i, i - PAGE, buf[i], exp_[i]);
}

static void pattern(uint8_t *d, uint32_t len)
{
	seed++;
	for (uint32_t i = 0; i < len; i++) {
		d[i] = (uint8_t)(seed * 37 + i * 7 + 1);
		if (d[i] == CANARY)
			d[i] = 0x11;
	}
}

static int rwrite(struct conn *c, uint32_t rkey, uintptr_t addr, uint32_t len,
		  uint8_t *data)
{
	struct req q = { .op = OP_WRITE, .id = c->id, .rkey = rkey,
			 .len = len, .addr = addr };
	struct rep *p;

	pattern(q.data, len);
	if (data)
		memcpy(data, q.data, len);
	p = peer_call(&q);
	if (p->status < 0)
		die("WRITE: %s", p->err);
	if (!p->status && p->opcode != IBV_WC_RDMA_WRITE)
		die("WRITE: completion opcode %u, want IBV_WC_RDMA_WRITE", p->opcode);
	return p->status;
}

static void write_ok(struct conn *c, uint32_t rkey, uintptr_t addr,
		     uint32_t len, const char *what)
{
	uint8_t d[MAXD];
	int s = rwrite(c, rkey, addr, len, d);

	if (s)
		die("%s: WRITE %u bytes at window%+ld: %s, want success", what,
		    len, (long)(addr - WIN), st(s));
	memcpy(exp_ + (addr - (uintptr_t)buf), d, len);
	expect_mem(what);
	printf("%s: WRITE %u bytes at window%+ld: ok, exactly there\n", what,
	       len, (long)(addr - WIN));
}

/* A refused access breaks the QP pair: *c is replaced. */
static void write_refused(struct conn **c, uint32_t rkey, uintptr_t addr,
			  uint32_t len, const char *what)
{
	int s = rwrite(*c, rkey, addr, len, NULL);

	if (s != IBV_WC_REM_ACCESS_ERR)
		die("%s: WRITE %u bytes at window%+ld: %s, want %s", what, len,
		    (long)(addr - WIN), st(s),
		    ibv_wc_status_str(IBV_WC_REM_ACCESS_ERR));
	expect_mem(what);
	printf("%s: WRITE refused (%s), memory unchanged\n", what, st(s));
	*c = renew(*c);
}

static int rread(struct conn *c, uint32_t rkey, uintptr_t addr, uint32_t len,
		 struct rep **pp)
{
	struct req q = { .op = OP_READ, .id = c->id, .rkey = rkey,
			 .len = len, .addr = addr };
	struct rep *p = peer_call(&q);

	if (p->status < 0)
		die("READ: %s", p->err);
	if (!p->status && p->opcode != IBV_WC_RDMA_READ)
		die("READ: completion opcode %u, want IBV_WC_RDMA_READ", p->opcode);
	*pp = p;
	return p->status;
}

static void read_ok(struct conn *c, uint32_t rkey, uintptr_t addr,
		    uint32_t len, const char *what)
{
	struct rep *p;
	int s = rread(c, rkey, addr, len, &p);

	if (s)
		die("%s: READ %u bytes at window%+ld: %s, want success", what,
		    len, (long)(addr - WIN), st(s));
	for (uint32_t i = 0; i < len; i++)
		if (p->data[i] != exp_[addr - (uintptr_t)buf + i])
			die("%s: READ byte %u is 0x%02x, want 0x%02x", what, i,
			    p->data[i], exp_[addr - (uintptr_t)buf + i]);
	expect_mem(what);
	printf("%s: READ %u bytes at window%+ld: ok, right data\n", what, len,
	       (long)(addr - WIN));
}

static void read_refused(struct conn **c, uint32_t rkey, uintptr_t addr,
			 uint32_t len, const char *what)
{
	struct rep *p;
	int s = rread(*c, rkey, addr, len, &p);

	if (s != IBV_WC_REM_ACCESS_ERR)
		die("%s: READ: %s, want %s", what, st(s),
		    ibv_wc_status_str(IBV_WC_REM_ACCESS_ERR));
	for (uint32_t i = 0; i < len; i++)
		if (p->data[i] != PEERFILL)
			die("%s: refused READ wrote the peer's byte %u", what, i);
	expect_mem(what);
	printf("%s: READ refused (%s)\n", what, st(s));
	*c = renew(*c);
}

/* ---- binds and invalidations ------------------------------------------ */

static uint64_t next_id = 100;

static struct ibv_mw_bind_info info(struct ibv_mr *m, uintptr_t addr,
				    uint64_t len, unsigned int access)
{
	struct ibv_mw_bind_info i = { .mr = m, .addr = addr, .length = len,
				      .mw_access_flags = access };
	return i;
}

/* Type 1 through ibv_bind_mw: -1 if refused at post, else the wc status. */
static int bind1(struct conn *c, struct ibv_mw *mw, struct ibv_mw_bind_info bi,
		 const char *what)
{
	struct ibv_mw_bind b = { .wr_id = ++next_id,
				 .send_flags = IBV_SEND_SIGNALED,
				 .bind_info = bi };
	struct ibv_wc wc;
	int r = ibv_bind_mw(c->qp, mw, &b);

	if (r) {
		printf("%s: ibv_bind_mw: %s\n", what, strerror(r));
		return -1;
	}
	wc = poll1(c->cq, what);
	if (wc.wr_id != b.wr_id)
		die("%s: bind completion wr_id %llu, want %llu", what,
		    (unsigned long long)wc.wr_id, (unsigned long long)b.wr_id);
	if (wc.status == IBV_WC_SUCCESS && wc.opcode != IBV_WC_BIND_MW)
		die("%s: bind completion opcode %d, want IBV_WC_BIND_MW", what,
		    wc.opcode);
	return wc.status;
}

/* Type 2 through IBV_WR_BIND_MW or ibv_wr_bind_mw (c->ex). */
static int bind2(struct conn *c, struct ibv_mw *mw, uint32_t rkey,
		 struct ibv_mw_bind_info bi, const char *what)
{
	struct ibv_send_wr wr = {
		.wr_id = ++next_id, .opcode = IBV_WR_BIND_MW,
		.send_flags = IBV_SEND_SIGNALED,
		.bind_mw = { .mw = mw, .rkey = rkey, .bind_info = bi },
	}, *bad = NULL;
	struct ibv_wc wc;
	int r;

	if (c->ex) {
		ibv_wr_start(c->qx);
		c->qx->wr_id = wr.wr_id;
		c->qx->wr_flags = IBV_SEND_SIGNALED;
		ibv_wr_bind_mw(c->qx, mw, rkey, &bi);
		r = ibv_wr_complete(c->qx);
	} else {
		r = ibv_post_send(c->qp, &wr, &bad);
	}
	if (r) {
		printf("%s: %s: %s\n", what,
		       c->ex ? "ibv_wr_complete" : "ibv_post_send", strerror(r));
		return -1;
	}
	wc = poll1(c->cq, what);
	if (wc.wr_id != wr.wr_id)
		die("%s: bind completion wr_id %llu, want %llu", what,
		    (unsigned long long)wc.wr_id, (unsigned long long)wr.wr_id);
	if (wc.status == IBV_WC_SUCCESS) {
		if (wc.opcode != IBV_WC_BIND_MW)
			die("%s: bind completion opcode %d, want IBV_WC_BIND_MW",
			    what, wc.opcode);
		if (quirk("mw-rkey", "a type 2 rebind needs ibv_mw.rkey = the bound rkey"))
			mw->rkey = rkey;
	}
	return wc.status;
}

static void bind2_ok(struct conn *c, struct ibv_mw *mw, uint32_t rkey,
		     struct ibv_mw_bind_info bi, const char *what)
{
	int s = bind2(c, mw, rkey, bi, what);

	if (s)
		die("%s: type 2 bind: %s, want success", what, st(s));
	printf("%s: type 2 bind, rkey 0x%08x: IBV_WC_BIND_MW ok\n", what, rkey);
}

/* LOCAL_INV: the wc status (-1: refused at post). */
static int local_inv(struct conn *c, uint32_t rkey, const char *what)
{
	struct ibv_send_wr wr = {
		.wr_id = ++next_id, .opcode = IBV_WR_LOCAL_INV,
		.send_flags = IBV_SEND_SIGNALED, .invalidate_rkey = rkey,
	}, *bad = NULL;
	struct ibv_wc wc;
	int r;

	if (c->ex) {
		ibv_wr_start(c->qx);
		c->qx->wr_id = wr.wr_id;
		c->qx->wr_flags = IBV_SEND_SIGNALED;
		ibv_wr_local_inv(c->qx, rkey);
		r = ibv_wr_complete(c->qx);
	} else {
		r = ibv_post_send(c->qp, &wr, &bad);
	}
	if (r) {
		printf("%s: LOCAL_INV post: %s\n", what, strerror(r));
		return -1;
	}
	wc = poll1(c->cq, what);
	if (wc.wr_id != wr.wr_id)
		die("%s: LOCAL_INV completion wr_id %llu, want %llu", what,
		    (unsigned long long)wc.wr_id, (unsigned long long)wr.wr_id);
	if (wc.status == IBV_WC_SUCCESS && wc.opcode != IBV_WC_LOCAL_INV)
		die("%s: LOCAL_INV completion opcode %d, want IBV_WC_LOCAL_INV",
		    what, wc.opcode);
	return wc.status;
}

static void local_inv_ok(struct conn *c, uint32_t rkey, const char *what)
{
	int s = local_inv(c, rkey, what);

	if (s)
		die("%s: LOCAL_INV 0x%08x: %s, want success", what, rkey, st(s));
	printf("%s: LOCAL_INV 0x%08x: IBV_WC_LOCAL_INV ok\n", what, rkey);
}

static void post_recv(struct conn *c)
{
	struct ibv_sge sge = { (uintptr_t)rbuf, sizeof(rbuf), rmr->lkey };
	struct ibv_recv_wr wr = { .wr_id = 77, .sg_list = &sge, .num_sge = 1 },
			   *bad;

	memset(rbuf, 0, sizeof(rbuf));
	if (ibv_post_recv(c->qp, &wr, &bad))
		die("ibv_post_recv: %s", strerror(errno));
}

/* The peer sends 32 bytes with invalidate; returns the sender's status. */
static int send_inv(struct conn *c, uint32_t rkey, uint8_t *data)
{
	struct req q = { .op = OP_SEND_INV, .id = c->id, .rkey = rkey,
			 .len = 32, .ex = c->ex };
	struct rep *p;

	pattern(q.data, q.len);
	memcpy(data, q.data, q.len);
	p = peer_call(&q);
	if (p->status < 0)
		die("SEND_WITH_INV: %s", p->err);
	if (!p->status && p->opcode != IBV_WC_SEND)
		die("SEND_WITH_INV: sender's opcode %u, want IBV_WC_SEND",
		    p->opcode);
	return p->status;
}

static void send_inv_ok(struct conn *c, uint32_t rkey, const char *what)
{
	uint8_t d[32];
	struct ibv_wc wc;
	int s;

	post_recv(c);
	s = send_inv(c, rkey, d);
	if (s)
		die("%s: SEND_WITH_INV: sender %s, want success", what, st(s));
	wc = poll1(c->cq, what);
	if (wc.status || wc.opcode != IBV_WC_RECV || wc.wr_id != 77)
		die("%s: receive completion %s opcode %d wr_id %llu, want success IBV_WC_RECV",
		    what, ibv_wc_status_str(wc.status), wc.opcode,
		    (unsigned long long)wc.wr_id);
	if (!(wc.wc_flags & IBV_WC_WITH_INV) &&
	    !((wc.wc_flags & IBV_WC_IP_CSUM_OK) &&
	      quirk("wc-inv-flag", "the receive completion carries the kernel's "
		    "IB_WC_WITH_INVALIDATE (1 << 2), which is IBV_WC_IP_CSUM_OK, "
		    "not IBV_WC_WITH_INV (1 << 3)")))
		die("%s: receive completion without IBV_WC_WITH_INV (flags 0x%x)",
		    what, wc.wc_flags);
	if (wc.invalidated_rkey != rkey)
		die("%s: invalidated_rkey 0x%08x, want 0x%08x", what,
		    wc.invalidated_rkey, rkey);
	if (wc.byte_len != 32 || memcmp(rbuf, d, 32))
		die("%s: received %u bytes, data %s", what, wc.byte_len,
		    memcmp(rbuf, d, 32) ? "wrong" : "right");
	printf("%s: SEND_WITH_INV 0x%08x: IBV_WC_RECV with IBV_WC_WITH_INV, rkey and data ok\n",
	       what, rkey);
}

/* ---- the checks ------------------------------------------------------- */

static int check_device(void)
{
	struct ibv_device_attr_ex da;
	uint64_t f;

	if (ibv_query_device_ex(ctx, NULL, &da))
		die("ibv_query_device_ex: %s", strerror(errno));
	f = da.orig_attr.device_cap_flags;
	if (da.orig_attr.max_mw == 0) {
		printf("no memory windows\n");
		return 77;
	}
	if (!(f & IBV_DEVICE_MEM_WINDOW))
		die("max_mw %d but device_cap_flags 0x%llx lacks IBV_DEVICE_MEM_WINDOW",
		    da.orig_attr.max_mw, (unsigned long long)f);
	if (!(f & (IBV_DEVICE_MEM_WINDOW_TYPE_2A | IBV_DEVICE_MEM_WINDOW_TYPE_2B)))
		die("device_cap_flags 0x%llx: neither MEM_WINDOW_TYPE_2A nor 2B",
		    (unsigned long long)f);
	printf("device: max_mw %d, MEM_WINDOW%s%s: ok\n", da.orig_attr.max_mw,
	       f & IBV_DEVICE_MEM_WINDOW_TYPE_2A ? " TYPE_2A" : "",
	       f & IBV_DEVICE_MEM_WINDOW_TYPE_2B ? " TYPE_2B" : "");
	return 0;
}

static struct ibv_mw *alloc_mw(enum ibv_mw_type t)
{
	struct ibv_mw *mw = ibv_alloc_mw(pd, t);

	if (!mw)
		die("ibv_alloc_mw(type %d): %s", t, strerror(errno));
	if (mw->type != t || mw->pd != pd)
		die("ibv_alloc_mw: type %d pd %p", mw->type, (void *)mw->pd);
	return mw;
}

static void dealloc_mw(struct ibv_mw *mw, const char *what)
{
	int r = ibv_dealloc_mw(mw);

	if (r)
		die("%s: ibv_dealloc_mw: %s", what, strerror(r));
	printf("%s: ibv_dealloc_mw: ok\n", what);
}

static const unsigned int RW = IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE;

static void type1(void)
{
	const char *w = "type 1";
	struct conn *c = conn_new(0);
	struct ibv_mw *mw = alloc_mw(IBV_MW_TYPE_1);
	uint32_t k0 = mw->rkey, k1, k2, k3;
	int s;

	s = bind1(c, mw, info(mr, WIN, WLEN, RW), w);
	if (s)
		die("type 1 bind: %s, want success", st(s));
	k1 = mw->rkey;
	if (k1 == k0)
		die("type 1 bind: mw->rkey unchanged (0x%08x)", k1);
	printf("type 1: ibv_bind_mw READ|WRITE: IBV_WC_BIND_MW ok, rkey 0x%08x -> 0x%08x\n",
	       k0, k1);
	write_ok(c, k1, WIN, WLEN, "type 1 whole window");
	write_ok(c, k1, WIN + 100, 64, "type 1 inside");
	read_ok(c, k1, WIN, WLEN, "type 1 whole window");
	if (quirk("win-range", "a window's rkey reaches its whole MR: rxe checks "
		  "the access against the MR's range, not the window's")) {
		printf("type 1 accesses outside the window: skipped on rxe\n");
	} else {
		write_refused(&c, k1, WIN + WLEN - 15, 16,
			      "type 1 one byte past the end");
		write_refused(&c, k1, WIN - 1, 16,
			      "type 1 one byte before the start");
		read_refused(&c, k1, WIN + WLEN - 7, 8,
			     "type 1 READ one byte past the end");
	}
	read_ok(c, k1, WIN, WLEN, "type 1 still bound");

	s = bind1(c, mw, info(mr, WIN, WLEN, IBV_ACCESS_REMOTE_READ), w);
	if (s)
		die("type 1 rebind read-only: %s, want success", st(s));
	k2 = mw->rkey;
	if (k2 == k1)
		die("type 1 rebind: mw->rkey unchanged (0x%08x)", k2);
	printf("type 1: rebind READ only: ok, rkey 0x%08x\n", k2);
	read_ok(c, k2, WIN, WLEN, "type 1 read-only");
	write_refused(&c, k2, WIN, 16, "type 1 read-only WRITE");
	read_refused(&c, k1, WIN, 16, "type 1 old rkey after rebind");
	read_ok(c, k2, WIN, 64, "type 1 new rkey still");

	if (quirk("unbind-mr", "the provider dereferences bind_info.mr of a length 0 bind"))
		s = bind1(c, mw, info(mr, 0, 0, 0), w);
	else
		s = bind1(c, mw, info(NULL, 0, 0, 0), w);
	if (s)
		die("type 1 bind of length 0: %s, want success", st(s));
	k3 = mw->rkey;
	printf("type 1: bind of length 0 (unbind): ok, rkey 0x%08x\n", k3);
	read_refused(&c, k3, WIN, 16, "type 1 unbound, its rkey");
	read_refused(&c, k2, WIN, 16, "type 1 unbound, the previous rkey");
	dealloc_mw(mw, w);
	conn_free(c);
}

static void type2(int ex)
{
	const char *w = ex ? "type 2 wr API" : "type 2";
	char what[96];
	struct conn *c = conn_new(ex), *y;
	struct ibv_mw *mw;
	uint32_t k;

	if (!c) {
		if (!is_rxe)
			die("%s: the QP with send_ops_flags is refused", w);
		printf("%s: skipped on rxe (QP refused)\n", w);
		return;
	}
	mw = alloc_mw(IBV_MW_TYPE_2);
	k = ibv_inc_rkey(mw->rkey);
	bind2_ok(c, mw, k, info(mr, WIN, WLEN, RW), w);
	write_ok(c, k, WIN, WLEN, w);
	read_ok(c, k, WIN, WLEN, w);
	local_inv_ok(c, k, w);
	snprintf(what, sizeof(what), "%s after LOCAL_INV", w);
	write_refused(&c, k, WIN, 16, what);

	k = ibv_inc_rkey(k);
	snprintf(what, sizeof(what), "%s rebind", w);
	bind2_ok(c, mw, k, info(mr, WIN, WLEN, RW), what);
	write_ok(c, k, WIN + 8, 32, what);
	send_inv_ok(c, k, w);
	snprintf(what, sizeof(what), "%s after SEND_WITH_INV", w);
	write_refused(&c, k, WIN, 16, what);
	read_refused(&c, k, WIN, 16, what);

	/* Bound through X (c), accessed through Y. */
	k = ibv_inc_rkey(k);
	snprintf(what, sizeof(what), "%s bound through QP X", w);
	bind2_ok(c, mw, k, info(mr, WIN, WLEN, RW), what);
	y = conn_new(ex);
	if (!y)
		die("second QP pair refused");
	snprintf(what, sizeof(what), "%s through another QP Y of the PD", w);
	write_refused(&y, k, WIN, 16, what);
	read_refused(&y, k, WIN, 16, what);
	snprintf(what, sizeof(what), "%s through QP X still", w);
	write_ok(c, k, WIN + 200, 16, what);
	read_ok(c, k, WIN, WLEN, what);
	local_inv_ok(c, k, w);
	dealloc_mw(mw, w);
	conn_free(y);
	conn_free(c);
}

/* The bind must be refused (post error or IBV_WC_MW_BIND_ERR) and leave
 * the window unbound. */
static void bind_refused(enum ibv_mw_type t, struct ibv_mr *m, uintptr_t addr,
			 uint64_t len, unsigned int access, const char *what)
{
	struct conn *c = conn_new(0);
	struct ibv_mw *mw = alloc_mw(t);
	uint32_t old = mw->rkey, k = ibv_inc_rkey(mw->rkey);
	char w[128];
	int s;

	snprintf(w, sizeof(w), "refusal, type %d, %s", t, what);
	if (t == IBV_MW_TYPE_1) {
		s = bind1(c, mw, info(m, addr, len, access), w);
		k = mw->rkey;
		mw->rkey = old;	/* ibv_bind_mw(3): the caller undoes it */
	} else {
		s = bind2(c, mw, k, info(m, addr, len, access), w);
	}
	if (!bind_refusal_ok(s))
		die("%s: bind %s, want a post error or %s", w, st(s),
		    ibv_wc_status_str(IBV_WC_MW_BIND_ERR));
	printf("%s: bind refused (%s)\n", w, st(s));
	c = renew(c);
	if (t == IBV_MW_TYPE_1) {
		/* The rkey the bind would have given reaches nothing. */
		snprintf(w, sizeof(w), "refusal, type 1, %s: not bound", what);
		read_refused(&c, k, addr, 16, w);
	} else {
		/* Still free: a good bind works (a bound one would be refused). */
		snprintf(w, sizeof(w), "refusal, type 2, %s: still free", what);
		k = ibv_inc_rkey(k);
		bind2_ok(c, mw, k, info(mr, WIN, WLEN, IBV_ACCESS_REMOTE_READ), w);
		read_ok(c, k, WIN, 64, w);
		local_inv_ok(c, k, w);
	}
	dealloc_mw(mw, w);
	conn_free(c);
}

static void inv_refused(uint32_t rkey, const char *what)
{
	struct conn *c = conn_new(0);
	int s = local_inv(c, rkey, what);

	if (s == IBV_WC_SUCCESS)
		die("refusal, LOCAL_INV of %s (0x%08x): success, want an error",
		    what, rkey);
	if (s < 0)
		die("refusal, LOCAL_INV of %s: refused at post, want an error completion",
		    what);
	printf("refusal, LOCAL_INV of %s: %s\n", what, st(s));
	conn_free(c);
}

static void send_inv_refused(uint32_t rkey, const char *what)
{
	struct conn *c = conn_new(0);
	uint8_t d[32];
	struct ibv_wc wc;
	char seen[128] = "none";
	int s, n = 0;

	post_recv(c);
	s = send_inv(c, rkey, d);
	while (poll_for(c->cq, &wc, 1.0)) {
		if (wc.status == IBV_WC_SUCCESS)
			die("refusal, SEND_WITH_INV of %s: the receiver got a successful completion (flags 0x%x)",
			    what, wc.wc_flags);
		snprintf(seen + (n ? strlen(seen) : 0),
			 sizeof(seen) - (n ? strlen(seen) : 0), "%s%s",
			 n ? ", " : "", ibv_wc_status_str(wc.status));
		n++;
	}
	if (s == IBV_WC_SUCCESS &&
	    !(n && quirk("send-inv-ack", "a SEND_WITH_INV whose invalidation "
			 "fails is acknowledged: the sender's completion is a "
			 "success, only the receive completes in error")))
		die("refusal, SEND_WITH_INV of %s (0x%08x): sender success (receiver: %s), want an error",
		    what, rkey, seen);
	printf("refusal, SEND_WITH_INV of %s: sender %s, receiver: %s\n", what,
	       st(s), seen);
	conn_free(c);
}

static void refusals(void)
{
	struct ibv_mr *nobind, *nolw;
	struct conn *c;
	struct ibv_mw *mw1, *mw2;
	uint32_t k, stale;
	int t;

	nobind = ibv_reg_mr(pd, buf, MRLEN, IBV_ACCESS_LOCAL_WRITE | RW);
	nolw = ibv_reg_mr(pd, buf, MRLEN, IBV_ACCESS_REMOTE_READ |
			  IBV_ACCESS_MW_BIND);
	if (!nobind || !nolw)
		die("ibv_reg_mr: %s", strerror(errno));
	for (t = IBV_MW_TYPE_1; t <= IBV_MW_TYPE_2; t++) {
		bind_refused(t, nobind, WIN, WLEN, RW, "MR without MW_BIND");
		bind_refused(t, mr, (uintptr_t)buf + 2 * PAGE + 1, PAGE, RW,
			     "range one byte beyond the MR");
		bind_refused(t, mr, (uintptr_t)buf - 1, PAGE, RW,
			     "range one byte before the MR");
		bind_refused(t, nolw, WIN, WLEN, RW,
			     "REMOTE_WRITE on an MR without LOCAL_WRITE");
	}
	/* The same MR takes a REMOTE_READ window. */
	c = conn_new(0);
	mw2 = alloc_mw(IBV_MW_TYPE_2);
	k = ibv_inc_rkey(mw2->rkey);
	bind2_ok(c, mw2, k, info(nolw, WIN, WLEN, IBV_ACCESS_REMOTE_READ),
		 "REMOTE_READ window on the MR without LOCAL_WRITE");
	read_ok(c, k, WIN, WLEN, "REMOTE_READ window on the MR without LOCAL_WRITE");
	local_inv_ok(c, k, "REMOTE_READ window on the MR without LOCAL_WRITE");

	/* Invalidations of what is not a bound type 2 window. */
	inv_refused(mr->rkey, "an MR's rkey");
	mw1 = alloc_mw(IBV_MW_TYPE_1);
	if (bind1(c, mw1, info(mr, WIN, WLEN, RW), "type 1 for the refusals"))
		die("type 1 bind failed");
	inv_refused(mw1->rkey, "a bound type 1 window");
	read_ok(c, mw1->rkey, WIN, WLEN, "type 1 window after the refused LOCAL_INV");
	stale = k;
	k = ibv_inc_rkey(k);
	bind2_ok(c, mw2, k, info(mr, WIN, WLEN, RW), "type 2 rebound");
	inv_refused(stale, "a type 2 window's previous rkey");
	read_ok(c, k, WIN, 64, "type 2 window after the refused LOCAL_INV");
	local_inv_ok(c, k, "type 2 rebound");
	if (quirk("inv-free", "invalidating an invalidated type 2 window oopses rxe"))
		printf("refusal, LOCAL_INV of an invalidated window: skipped on rxe\n");
	else
		inv_refused(k, "an invalidated type 2 window");

	send_inv_refused(mr->rkey, "an MR's rkey");
	send_inv_refused(mw1->rkey, "a bound type 1 window");
	read_ok(c, mw1->rkey, WIN, WLEN, "type 1 window after the refused SEND_WITH_INV");
	dealloc_mw(mw1, "type 1 for the refusals");
	dealloc_mw(mw2, "type 2 for the refusals");
	conn_free(c);
	if (ibv_dereg_mr(nobind) || ibv_dereg_mr(nolw))
		die("ibv_dereg_mr: %s", strerror(errno));
}

static void bound_twice(void)
{
	const char *w = "bound twice";
	struct conn *c = conn_new(0), *c2;
	struct ibv_mw *mw = alloc_mw(IBV_MW_TYPE_2);
	uint32_t k = ibv_inc_rkey(mw->rkey), k2 = ibv_inc_rkey(k);
	int s;

	/* Through the QP it is bound through. */
	bind2_ok(c, mw, k, info(mr, WIN, WLEN, RW), w);
	s = bind2(c, mw, k2, info(mr, WIN, WLEN, IBV_ACCESS_REMOTE_READ), w);
	if (!bind_refusal_ok(s))
		die("type 2 bind of a bound window, same QP: %s, want a post error or %s",
		    st(s), ibv_wc_status_str(IBV_WC_MW_BIND_ERR));
	printf("type 2 bind of a bound window, same QP: refused (%s)\n", st(s));
	dealloc_mw(mw, w);
	c = renew(c);

	/* Through another QP; the binding stays as it was. */
	mw = alloc_mw(IBV_MW_TYPE_2);
	k = ibv_inc_rkey(mw->rkey);
	k2 = ibv_inc_rkey(k);
	bind2_ok(c, mw, k, info(mr, WIN, WLEN, RW), w);
	write_ok(c, k, WIN + 300, 16, w);
	c2 = conn_new(0);
	s = bind2(c2, mw, k2, info(mr, WIN, WLEN, IBV_ACCESS_REMOTE_READ), w);
	if (!bind_refusal_ok(s))
		die("type 2 bind of a bound window: %s, want a post error or %s",
		    st(s), ibv_wc_status_str(IBV_WC_MW_BIND_ERR));
	printf("type 2 bind of a bound window, another QP: refused (%s)\n", st(s));
	conn_free(c2);
	write_ok(c, k, WIN + 400, 16, "bound twice, the first binding still");
	read_ok(c, k, WIN, WLEN, "bound twice, the first binding still");
	dealloc_mw(mw, "type 2 bound window");
	read_refused(&c, k, WIN, 16, "the rkey of a deallocated bound window");
	conn_free(c);
}

static void checks(void)
{
	memset(buf, CANARY, sizeof(buf));
	memcpy(exp_, buf, sizeof(buf));
	mr = ibv_reg_mr(pd, buf, MRLEN, IBV_ACCESS_LOCAL_WRITE | RW |
			IBV_ACCESS_MW_BIND);
	rmr = ibv_reg_mr(pd, rbuf, sizeof(rbuf), IBV_ACCESS_LOCAL_WRITE);
	if (!mr || !rmr)
		die("ibv_reg_mr: %s", strerror(errno));
	type1();
	type2(0);
	type2(1);
	refusals();
	bound_twice();
	if (ibv_dereg_mr(mr) || ibv_dereg_mr(rmr))
		die("ibv_dereg_mr: %s", strerror(errno));
}

/* ---- main --------------------------------------------------------------- */

static void open_dev(const char *dev)
{
	ctx = open_by_name(dev);
	is_rxe = !strncmp(dev, "rxe", 3);
	pd = ibv_alloc_pd(ctx);
	if (!pd)
		die("ibv_alloc_pd: %s", strerror(errno));
	if (ibv_query_gid(ctx, 1, gidx, &gid))
		die("ibv_query_gid(%d): %s", gidx, strerror(errno));
}

static void timeouts(int fd)
{
	struct timeval tv = { .tv_sec = 300 };

	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)))
		die("setsockopt: %s", strerror(errno));
}

static int server(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons(port) };
	struct req end = { .op = OP_END };
	int ls, one = 1, rc;
	uint8_t go;

	ls = socket(AF_INET, SOCK_STREAM, 0);
	if (ls < 0)
		die("socket: %s", strerror(errno));
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(ls, (void *)&sa, sizeof(sa)) || listen(ls, 1))
		die("listen on %d: %s", port, strerror(errno));
	sock = accept(ls, NULL, NULL);
	if (sock < 0)
		die("accept: %s", strerror(errno));
	close(ls);
	timeouts(sock);
	rc = check_device();
	go = !rc;
	xfer(&go, 1, 1);
	if (rc)
		return rc;
	checks();
	peer_call(&end);
	xfer(&go, 1, 0);
	printf("mw ok\n");
	return 0;
}

static int client(const char *ip, int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons(port) };
	static struct req q;
	static struct rep p;
	int tries;
	uint8_t go;

	if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1)
		die("bad address %s", ip);
	peer_init();
	for (tries = 0;; tries++) {
		sock = socket(AF_INET, SOCK_STREAM, 0);
		if (sock < 0)
			die("socket: %s", strerror(errno));
		if (!connect(sock, (void *)&sa, sizeof(sa)))
			break;
		if (tries > 300)
			die("connect %s:%d: %s", ip, port, strerror(errno));
		close(sock);
		usleep(100000);
	}
	timeouts(sock);
	xfer(&go, 1, 0);
	if (!go) {
		printf("no memory windows (server)\n");
		return 77;
	}
	for (;;) {
		xfer(&q, sizeof(q), 0);
		if (q.op == OP_END)
			break;
		peer_exec(&q, &p);
		xfer(&p, sizeof(p), 1);
	}
	xfer(&go, 1, 1);
	printf("mw ok (peer)\n");
	return 0;
}

int main(int argc, char **argv)
{
	const char *dev = NULL, *ip = NULL;
	int c, srv = 0, port = 18520, rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	while ((c = getopt(argc, argv, "d:g:w:SC:p:Q:")) != -1) {
		switch (c) {
		case 'd': dev = optarg; break;
		case 'g': gidx = atoi(optarg); break;
		case 'w': wait_s = atof(optarg); break;
		case 'S': srv = 1; break;
		case 'C': ip = optarg; break;
		case 'p': port = atoi(optarg); break;
		case 'Q': noquirk = optarg; break;
		default: goto usage;
		}
	}
	if (!dev || optind != argc || (srv && ip))
		goto usage;
	open_dev(dev);
	if (srv)
		return server(port);
	if (ip)
		return client(ip, port);
	rc = check_device();
	if (rc)
		return rc;
	peer_init();
	checks();
	printf("mw ok\n");
	return 0;
usage:
	fprintf(stderr, "usage: omx_mw -d DEV [-g GIDX] [-w S] [-Q QUIRKS] "
		"[-S [-p PORT] | -C SERVER_IP [-p PORT]]\n");
	return 2;
}
