// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * omx_atomic: RC atomics (IBV_WR_ATOMIC_FETCH_AND_ADD and
 * IBV_WR_ATOMIC_CMP_AND_SWP) as IBTA and rdma-core specify them.
 *
 *   omx_atomic -d DEV [-w SECONDS]
 *
 * Checks mode, one process on one device, RC QPs connected in pairs
 * through GID index 0:
 *   - the device reports IBV_ATOMIC_GLOB and max_qp_rd_atom and
 *     max_qp_init_rd_atom of at least 1;
 *   - FETCH_AND_ADD and CMP_AND_SWP (a swap that happens and one that
 *     does not) return the value the target held into the 8-byte buffer,
 *     with IBV_WC_FETCH_ADD / IBV_WC_COMP_SWAP and byte_len 8; nothing
 *     around the target or the result changes;
 *   - the same through ibv_create_qp_ex and ibv_wr_atomic_fetch_add /
 *     ibv_wr_atomic_cmp_swp;
 *   - a result buffer that is not 8 bytes is refused at post (EINVAL,
 *     *bad_wr set);
 *   - IBV_ATOMIC_GLOB: a thread of the target's process adds to the
 *     counter with the CPU's own atomic instruction while the QP adds to
 *     it too; the sum is exact;
 *   - refusals, each on fresh QPs, the target unchanged: a misaligned
 *     address (IBV_WC_REM_INV_REQ_ERR), an MR without
 *     IBV_ACCESS_REMOTE_ATOMIC (IBV_WC_REM_ACCESS_ERR), a responder QP
 *     without IBV_ACCESS_REMOTE_ATOMIC (IBV_WC_REM_INV_REQ_ERR).
 * Prints "atomic ok" and exits 0 on success.
 *
 *   omx_atomic -d DEV -S -P PROCS -n OPS [-p PORT]
 *   omx_atomic -d DEV -C SERVER_IP -P PROCS -n OPS [-p PORT]
 *
 * Many requesters: the server (-S) owns one 8-byte counter and one RC QP
 * per client process, set up over TCP; the client (-C) forks PROCS
 * processes, each with its own context and QP, each posting OPS
 * FETCH_AND_ADD of 1 on the counter (up to 16 outstanding) and sending
 * the values it got back over TCP. The server checks that the counter is
 * PROCS * OPS and that the returned values are exactly 0 .. PROCS * OPS
 * - 1, each once (an atomic executed twice, or lost, breaks one of the
 * two), and prints "fetch_add ok: PROCS x OPS, counter N, values
 * distinct". Meant to run across a lossy, duplicating, reordering link.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include "common.h"

#define DEPTH 64
#define WINDOW 16

static struct ibv_context *ctx;
static struct ibv_pd *pd;
static struct ibv_cq *cq;
static union ibv_gid gid;
static double wait_s = 60;

static struct ibv_qp *rc_qp(struct ibv_qp_init_attr_ex *ex, int access)
{
	struct ibv_qp_init_attr ia = {
		.send_cq = cq, .recv_cq = cq, .qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = DEPTH, .max_recv_wr = 1,
			 .max_send_sge = 1, .max_recv_sge = 1 },
	};
	struct ibv_qp_attr a = {
		.qp_state = IBV_QPS_INIT, .port_num = 1,
		.qp_access_flags = access,
	};
	struct ibv_qp *qp;

	if (ex) {
		ex->send_cq = cq;
		ex->recv_cq = cq;
		ex->qp_type = IBV_QPT_RC;
		ex->cap = ia.cap;
		ex->pd = pd;
		ex->comp_mask |= IBV_QP_INIT_ATTR_PD;
		qp = ibv_create_qp_ex(ctx, ex);
	} else {
		qp = ibv_create_qp(pd, &ia);
	}
	if (!qp)
		die("create QP: %s", strerror(errno));
	if (ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX |
			  IBV_QP_PORT | IBV_QP_ACCESS_FLAGS))
		die("modify to INIT: %s", strerror(errno));
	return qp;
}

static void to_rts(struct ibv_qp *qp, uint32_t dest_qpn, const union ibv_gid *dgid)
{
	static const struct rc_conn c = {
		.rd_atomic = WINDOW, .min_rnr_timer = 1, .rnr_retry = 7, .timeout = 14,
	};

	rc_to_rts(qp, dest_qpn, dgid, &c);
}

/* Two QPs of this context connected to each other. */
static void pair(struct ibv_qp *a, struct ibv_qp *b)
{
	to_rts(a, b->qp_num, &gid);
	to_rts(b, a->qp_num, &gid);
}

static struct ibv_wc poll1(void)
{
	struct ibv_wc wc;
	double end = now_s() + wait_s;
	int n;

	while ((n = ibv_poll_cq(cq, 1, &wc)) == 0)
		if (now_s() > end)
			die("no completion within %.0f s", wait_s);
	if (n < 0)
		die("ibv_poll_cq: %d", n);
	return wc;
}

static int post_atomic(struct ibv_qp *qp, enum ibv_wr_opcode op, uint64_t id,
		       uint64_t *res, uint32_t lkey, uint32_t len,
		       uint64_t raddr, uint32_t rkey, uint64_t cmp_add,
		       uint64_t swap)
{
	struct ibv_sge sge = { (uintptr_t)res, len, lkey };
	struct ibv_send_wr wr = {
		.wr_id = id, .sg_list = &sge, .num_sge = 1, .opcode = op,
		.send_flags = IBV_SEND_SIGNALED,
		.wr.atomic = { .remote_addr = raddr, .compare_add = cmp_add,
			       .swap = swap, .rkey = rkey },
	}, *bad = NULL;
	int r = ibv_post_send(qp, &wr, &bad);

	if (r && bad != &wr)
		die("post_send %d failed without *bad_wr", r);
	return r;
}

/* Posts one atomic and waits for its completion; returns the status. */
static struct ibv_wc atomic1(struct ibv_qp *qp, enum ibv_wr_opcode op,
			     uint64_t *res, uint32_t lkey, uint64_t raddr,
			     uint32_t rkey, uint64_t cmp_add, uint64_t swap)
{
	if (post_atomic(qp, op, 7, res, lkey, 8, raddr, rkey, cmp_add, swap))
		die("post atomic: %s", strerror(errno));
	return poll1();
}

/* The target: 64 bytes of 0xCA with the counter at offset 16. */
struct target {
	uint8_t b[64];
} __attribute__((aligned(64)));

#define CANARY 0xCA
#define CTR(t) ((uint64_t *)((t)->b + 16))

static void target_init(struct target *t, uint64_t v)
{
	memset(t->b, CANARY, sizeof(t->b));
	*CTR(t) = v;
}

static void target_check(const struct target *t, uint64_t v, const char *what)
{
	for (unsigned int i = 0; i < sizeof(t->b); i++)
		if ((i < 16 || i >= 24) && t->b[i] != CANARY)
			die("%s: target byte %u changed", what, i);
	if (*CTR(t) != v)
		die("%s: counter %llu, want %llu", what,
		    (unsigned long long)*CTR(t), (unsigned long long)v);
}

struct hammer {
	uint64_t *ctr;
	int n;
};

static void *host_adds(void *arg)
{
	struct hammer *h = arg;

	for (int i = 0; i < h->n; i++)
		__atomic_fetch_add(h->ctr, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static void refusal(const char *what, int qp_access, struct ibv_mr *tmr,
		    struct target *t, uint64_t raddr, struct ibv_mr *rmr,
		    uint64_t *res, enum ibv_wc_status want)
{
	struct ibv_qp *a = rc_qp(NULL, 0);
	struct ibv_qp *b = rc_qp(NULL, qp_access);
	struct ibv_wc wc;

	pair(a, b);
	target_init(t, 5);
	res[0] = 0x1111111111111111ull;
	wc = atomic1(a, IBV_WR_ATOMIC_FETCH_AND_ADD, res, rmr->lkey, raddr,
		     tmr->rkey, 1, 0);
	if (wc.status != want)
		die("%s: status %s, want %s", what,
		    ibv_wc_status_str(wc.status), ibv_wc_status_str(want));
	target_check(t, 5, what);
	if (res[0] != 0x1111111111111111ull)
		die("%s: result buffer written", what);
	ibv_destroy_qp(a);
	ibv_destroy_qp(b);
	printf("refused as IBTA says: %s -> %s\n", what, ibv_wc_status_str(want));
}

static void checks(void)
{
	struct ibv_device_attr da;
	static struct target t;
	static uint64_t res[8];
	struct ibv_mr *tmr, *rmr, *plain;
	struct ibv_qp *a, *b, *xb, *x;
	struct ibv_qp_init_attr_ex ex = {
		.comp_mask = IBV_QP_INIT_ATTR_SEND_OPS_FLAGS,
		.send_ops_flags = IBV_QP_EX_WITH_ATOMIC_FETCH_AND_ADD |
				  IBV_QP_EX_WITH_ATOMIC_CMP_AND_SWP,
	};
	struct ibv_qp_ex *qx;
	struct ibv_wc wc;
	const int remote = IBV_ACCESS_REMOTE_ATOMIC | IBV_ACCESS_REMOTE_READ |
			   IBV_ACCESS_REMOTE_WRITE;
	struct hammer h;
	pthread_t th;
	int r, k;

	if (ibv_query_device(ctx, &da))
		die("ibv_query_device: %s", strerror(errno));
	if (da.atomic_cap != IBV_ATOMIC_GLOB)
		die("atomic_cap %d, want IBV_ATOMIC_GLOB", da.atomic_cap);
	if (da.max_qp_rd_atom < 1 || da.max_qp_init_rd_atom < 1)
		die("max_qp_rd_atom %d max_qp_init_rd_atom %d",
		    da.max_qp_rd_atom, da.max_qp_init_rd_atom);
	printf("atomic_cap GLOB, max_qp_rd_atom %d, max_qp_init_rd_atom %d\n",
	       da.max_qp_rd_atom, da.max_qp_init_rd_atom);

	tmr = ibv_reg_mr(pd, &t, sizeof(t), IBV_ACCESS_LOCAL_WRITE |
			 IBV_ACCESS_REMOTE_ATOMIC | IBV_ACCESS_REMOTE_READ);
	plain = ibv_reg_mr(pd, &t, sizeof(t), IBV_ACCESS_LOCAL_WRITE |
			   IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ);
	rmr = ibv_reg_mr(pd, res, sizeof(res), IBV_ACCESS_LOCAL_WRITE);
	if (!tmr || !plain || !rmr)
		die("ibv_reg_mr: %s", strerror(errno));

	a = rc_qp(NULL, 0);
	b = rc_qp(NULL, remote);
	pair(a, b);
	target_init(&t, 40);
	memset(res, CANARY, sizeof(res));
	wc = atomic1(a, IBV_WR_ATOMIC_FETCH_AND_ADD, &res[0], rmr->lkey,
		     (uintptr_t)CTR(&t), tmr->rkey, 2, 0);
	if (wc.status || wc.opcode != IBV_WC_FETCH_ADD || wc.byte_len != 8 ||
	    wc.qp_num != a->qp_num)
		die("FETCH_ADD: status %s opcode %d byte_len %u",
		    ibv_wc_status_str(wc.status), wc.opcode, wc.byte_len);
	wc = atomic1(a, IBV_WR_ATOMIC_CMP_AND_SWP, &res[1], rmr->lkey,
		     (uintptr_t)CTR(&t), tmr->rkey, 42, 7);
	if (wc.status || wc.opcode != IBV_WC_COMP_SWAP || wc.byte_len != 8)
		die("CMP_AND_SWP: status %s opcode %d byte_len %u",
		    ibv_wc_status_str(wc.status), wc.opcode, wc.byte_len);
	wc = atomic1(a, IBV_WR_ATOMIC_CMP_AND_SWP, &res[2], rmr->lkey,
		     (uintptr_t)CTR(&t), tmr->rkey, 42, 9);
	if (wc.status)
		die("CMP_AND_SWP (no swap): %s", ibv_wc_status_str(wc.status));
	if (res[0] != 40 || res[1] != 42 || res[2] != 7)
		die("results %llu %llu %llu, want 40 42 7",
		    (unsigned long long)res[0], (unsigned long long)res[1],
		    (unsigned long long)res[2]);
	target_check(&t, 7, "fetch_add, cmp_swap");
	for (k = 24; k < (int)sizeof(res); k++)
		if (((uint8_t *)res)[k] != CANARY)
			die("result area byte %d changed", k);
	printf("fetch_add 40 +2, cmp_swap 42 -> 7, cmp_swap 42 (is 7): ok\n");

	/* A result buffer of 4 or 12 bytes: EINVAL at post. */
	for (k = 4; k <= 12; k += 8) {
		r = post_atomic(a, IBV_WR_ATOMIC_FETCH_AND_ADD, 1, res,
				rmr->lkey, k, (uintptr_t)CTR(&t), tmr->rkey,
				1, 0);
		if (r != EINVAL)
			die("%d-byte result buffer: %d, want EINVAL", k, r);
	}

	/* The extended API. */
	x = rc_qp(&ex, 0);
	xb = rc_qp(NULL, remote);
	pair(x, xb);
	qx = ibv_qp_to_qp_ex(x);
	if (!qx || !qx->wr_atomic_fetch_add || !qx->wr_atomic_cmp_swp)
		die("ibv_qp_to_qp_ex: no atomic builders");
	ibv_wr_start(qx);
	qx->wr_id = 11;
	qx->wr_flags = IBV_SEND_SIGNALED;
	ibv_wr_atomic_fetch_add(qx, tmr->rkey, (uintptr_t)CTR(&t), 100);
	ibv_wr_set_sge(qx, rmr->lkey, (uintptr_t)&res[3], 8);
	qx->wr_id = 12;
	ibv_wr_atomic_cmp_swp(qx, tmr->rkey, (uintptr_t)CTR(&t), 107, 1);
	ibv_wr_set_sge(qx, rmr->lkey, (uintptr_t)&res[4], 8);
	r = ibv_wr_complete(qx);
	if (r)
		die("ibv_wr_complete: %s", strerror(r));
	for (k = 0; k < 2; k++) {
		wc = poll1();
		if (wc.status || wc.wr_id != (uint64_t)(11 + k))
			die("wr API atomic %d: %s wr_id %llu", k,
			    ibv_wc_status_str(wc.status),
			    (unsigned long long)wc.wr_id);
	}
	if (res[3] != 7 || res[4] != 107)
		die("wr API results %llu %llu, want 7 107",
		    (unsigned long long)res[3], (unsigned long long)res[4]);
	target_check(&t, 1, "wr API");
	printf("ibv_wr_atomic_fetch_add / ibv_wr_atomic_cmp_swp: ok\n");

	/* Against the host's own atomics on the target memory. */
	h.ctr = CTR(&t);
	h.n = 200000;
	target_init(&t, 0);
	if (pthread_create(&th, NULL, host_adds, &h))
		die("pthread_create");
	for (k = 0; k < 2000; k += WINDOW) {
		for (int j = 0; j < WINDOW; j++)
			if (post_atomic(a, IBV_WR_ATOMIC_FETCH_AND_ADD, k + j,
					&res[5], rmr->lkey, 8,
					(uintptr_t)CTR(&t), tmr->rkey, 1, 0))
				die("post: %s", strerror(errno));
		for (int j = 0; j < WINDOW; j++) {
			wc = poll1();
			if (wc.status)
				die("FETCH_ADD %d: %s", k + j,
				    ibv_wc_status_str(wc.status));
		}
	}
	pthread_join(th, NULL);
	target_check(&t, 2000 + (uint64_t)h.n, "QP and host CPU together");
	printf("QP and host CPU on one counter: %d + %d = %llu: ok\n", 2000,
	       h.n, (unsigned long long)*CTR(&t));
	ibv_destroy_qp(x);
	ibv_destroy_qp(xb);
	ibv_destroy_qp(a);
	ibv_destroy_qp(b);

	refusal("misaligned address", remote, tmr, &t, (uintptr_t)CTR(&t) + 4,
		rmr, &res[6], IBV_WC_REM_INV_REQ_ERR);
	refusal("MR without REMOTE_ATOMIC", remote, plain, &t,
		(uintptr_t)CTR(&t), rmr, &res[6], IBV_WC_REM_ACCESS_ERR);
	refusal("QP without REMOTE_ATOMIC",
		IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE, tmr, &t,
		(uintptr_t)CTR(&t), rmr, &res[6], IBV_WC_REM_INV_REQ_ERR);
	ibv_dereg_mr(tmr);
	ibv_dereg_mr(plain);
	ibv_dereg_mr(rmr);
	printf("atomic ok\n");
}

/* What one side of a connection tells the other over TCP. */
struct info {
	uint32_t qpn;
	uint32_t rkey;
	uint64_t addr;
	union ibv_gid gid;
};

static void xfer(int fd, void *p, size_t n, int out)
{
	uint8_t *b = p;

	while (n) {
		ssize_t r = out ? write(fd, b, n) : read(fd, b, n);

		if (r <= 0)
			die("%s: %s", out ? "write" : "read",
			    r ? strerror(errno) : "connection closed");
		b += r;
		n -= r;
	}
}

static void open_dev(const char *dev, int cqe)
{
	ctx = open_by_name(dev);
	pd = ibv_alloc_pd(ctx);
	cq = ibv_create_cq(ctx, cqe, NULL, NULL, 0);
	if (!pd || !cq)
		die("alloc pd / create cq: %s", strerror(errno));
	if (ibv_query_gid(ctx, 1, 0, &gid))
		die("ibv_query_gid: %s", strerror(errno));
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void server(const char *dev, int procs, int ops, int port)
{
	static struct target t;
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons(port) };
	struct ibv_qp **qps = calloc(procs, sizeof(*qps));
	int *fds = calloc(procs, sizeof(*fds));
	uint64_t *vals = calloc((size_t)procs * ops, sizeof(*vals));
	struct ibv_mr *mr;
	int ls, one = 1;

	if (!qps || !fds || !vals)
		die("calloc");
	open_dev(dev, 16);
	target_init(&t, 0);
	mr = ibv_reg_mr(pd, &t, sizeof(t), IBV_ACCESS_LOCAL_WRITE |
			IBV_ACCESS_REMOTE_ATOMIC);
	if (!mr)
		die("ibv_reg_mr: %s", strerror(errno));
	ls = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ls < 0 || bind(ls, (void *)&sa, sizeof(sa)) || listen(ls, procs))
		die("listen on %d: %s", port, strerror(errno));
	for (int i = 0; i < procs; i++) {
		struct info peer, me = { .rkey = mr->rkey,
					 .addr = (uintptr_t)CTR(&t),
					 .gid = gid };

		fds[i] = accept(ls, NULL, NULL);
		if (fds[i] < 0)
			die("accept: %s", strerror(errno));
		xfer(fds[i], &peer, sizeof(peer), 0);
		qps[i] = rc_qp(NULL, IBV_ACCESS_REMOTE_ATOMIC);
		to_rts(qps[i], peer.qpn, &peer.gid);
		me.qpn = qps[i]->qp_num;
		xfer(fds[i], &me, sizeof(me), 1);
	}
	for (int i = 0; i < procs; i++)
		xfer(fds[i], vals + (size_t)i * ops, (size_t)ops * 8, 0);
	target_check(&t, (uint64_t)procs * ops, "many requesters");
	qsort(vals, (size_t)procs * ops, sizeof(*vals), cmp_u64);
	for (uint64_t i = 0; i < (uint64_t)procs * ops; i++)
		if (vals[i] != i)
			die("returned values: position %llu holds %llu "
			    "(a value twice, or one missing)",
			    (unsigned long long)i, (unsigned long long)vals[i]);
	for (int i = 0; i < procs; i++) {
		xfer(fds[i], &one, sizeof(one), 1);
		close(fds[i]);
		ibv_destroy_qp(qps[i]);
	}
	printf("fetch_add ok: %d x %d, counter %llu, values distinct\n", procs,
	       ops, (unsigned long long)*CTR(&t));
}

static void client_proc(const char *dev, const char *ip, int ops, int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons(port) };
	uint64_t *vals = calloc(ops, sizeof(*vals));
	struct info me = { 0 }, peer;
	struct ibv_mr *mr;
	struct ibv_qp *qp;
	int fd, posted = 0, done = 0, bye;
	double t0;

	if (!vals || inet_pton(AF_INET, ip, &sa.sin_addr) != 1)
		die("bad address %s", ip);
	open_dev(dev, 2 * WINDOW);
	mr = ibv_reg_mr(pd, vals, (size_t)ops * 8, IBV_ACCESS_LOCAL_WRITE);
	if (!mr)
		die("ibv_reg_mr: %s", strerror(errno));
	qp = rc_qp(NULL, 0);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	for (int tries = 0; connect(fd, (void *)&sa, sizeof(sa)); tries++) {
		if (tries > 300)
			die("connect %s:%d: %s", ip, port, strerror(errno));
		usleep(100000);
		close(fd);
		fd = socket(AF_INET, SOCK_STREAM, 0);
	}
	me.qpn = qp->qp_num;
	me.gid = gid;
	xfer(fd, &me, sizeof(me), 1);
	xfer(fd, &peer, sizeof(peer), 0);
	to_rts(qp, peer.qpn, &peer.gid);
	t0 = now_s();
	while (done < ops) {
		struct ibv_wc wc[WINDOW];
		int n;

		while (posted < ops && posted - done < WINDOW) {
			if (post_atomic(qp, IBV_WR_ATOMIC_FETCH_AND_ADD, posted,
					&vals[posted], mr->lkey, 8, peer.addr,
					peer.rkey, 1, 0))
				die("post %d: %s", posted, strerror(errno));
			posted++;
		}
		n = ibv_poll_cq(cq, WINDOW, wc);
		if (n < 0)
			die("ibv_poll_cq: %d", n);
		for (int i = 0; i < n; i++) {
			if (wc[i].status || wc[i].wr_id != (uint64_t)done)
				die("FETCH_ADD %d: %s (wr_id %llu)", done,
				    ibv_wc_status_str(wc[i].status),
				    (unsigned long long)wc[i].wr_id);
			done++;
		}
		if (now_s() - t0 > wait_s * 10)
			die("%d of %d done after %.0f s", done, ops, now_s() - t0);
	}
	xfer(fd, vals, (size_t)ops * 8, 1);
	xfer(fd, &bye, sizeof(bye), 0);
	printf("client %d: %d FETCH_ADD in %.2f s\n", getpid(), ops,
	       now_s() - t0);
	exit(0);
}

static void client(const char *dev, const char *ip, int procs, int ops,
		   int port)
{
	int bad = 0, st;

	for (int i = 0; i < procs; i++) {
		pid_t p = fork();

		if (p < 0)
			die("fork: %s", strerror(errno));
		if (!p)
			client_proc(dev, ip, ops, port);
	}
	while (wait(&st) > 0)
		bad |= !WIFEXITED(st) || WEXITSTATUS(st);
	if (bad)
		die("a client process failed");
	printf("clients ok: %d x %d\n", procs, ops);
}

int main(int argc, char **argv)
{
	const char *dev = NULL, *ip = NULL;
	int c, srv = 0, procs = 4, ops = 10000, port = 18515;

	setvbuf(stdout, NULL, _IOLBF, 0);
	while ((c = getopt(argc, argv, "d:w:SC:P:n:p:")) != -1) {
		switch (c) {
		case 'd': dev = optarg; break;
		case 'w': wait_s = atof(optarg); break;
		case 'S': srv = 1; break;
		case 'C': ip = optarg; break;
		case 'P': procs = atoi(optarg); break;
		case 'n': ops = atoi(optarg); break;
		case 'p': port = atoi(optarg); break;
		default: goto usage;
		}
	}
	if (!dev || procs < 1 || ops < 1)
		goto usage;
	if (srv)
		server(dev, procs, ops, port);
	else if (ip)
		client(dev, ip, procs, ops, port);
	else {
		open_dev(dev, 2 * DEPTH);
		checks();
	}
	return 0;
usage:
	fprintf(stderr, "usage: omx_atomic -d DEV [-w S] | -d DEV -S [-P N] "
		"[-n OPS] [-p PORT] | -d DEV -C IP [-P N] [-n OPS] [-p PORT]\n");
	return 2;
}
