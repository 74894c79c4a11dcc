// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * omx_target: one RC QP with an exposed memory region, connected to a peer
 * omx_target over TCP and driven by commands on stdin.  It is both the
 * victim and the legitimate peer of the hostile-frame scenario
 * (tests/scenarios/omx-hostile.sh).
 *
 *   omx_target -d DEV (-l PORT | -c HOST:PORT) [options]
 *
 *   -s SIZE   MR size (K/M/G suffixes; default 64K).  The MR starts on a
 *             page boundary inside a larger mapping whose other bytes
 *             (two guard pages before, the rest of the last page and two
 *             guard pages after) hold a canary pattern
 *   -z        do not touch the MR (huge sparse MRs): it stays zero and
 *             "check" skips it
 *   -2        a second MR of 64 KiB (MR2_*), same access, its own canaries
 *   -m ACC    MR access: letters l (LOCAL_WRITE) w (REMOTE_WRITE)
 *             r (REMOTE_READ) a (REMOTE_ATOMIC) o (ON_DEMAND), or "-"
 *             (default lwr)
 *   -a ACC    QP access flags (IBV_QP_ACCESS_FLAGS): w r a or "-" (default wr)
 *   -R N      max_dest_rd_atomic (default 1)   -O N  max_rd_atomic (default 1)
 *   -M MTU    path MTU in bytes (default 1024) -g N  GID index (default 0)
 *   -t N      local ACK timeout (default 14)   -n N  rnr_retry (default 7)
 *   -N N      min_rnr_timer (default 12)       -P PSN  first send PSN
 *   -b SIZE   send and receive buffers (default 4K each)
 *   -r N      receives posted at the start (default 0)
 *   -T SEC    give up (exit 1) after SEC seconds (default 120)
 *
 * After connecting it prints KEY=VALUE lines (DEV QPN SQ_PSN RQ_PSN
 * MR_ADDR MR_RKEY MR_LEN [MR2_ADDR MR2_RKEY MR2_LEN] PEER_QPN PEER_MR_ADDR
 * PEER_MR_RKEY PEER_MR_LEN) and "ready".  Then, line by line on stdin:
 *
 *   send LEN | recv [N]                  SEND from / receives into the
 *                                        local buffers
 *   write LEN [ROFF] | read LEN [ROFF]   RDMA to the peer's MR, from / into
 *                                        our own MR at offset 0
 *   rdma-write LEN ADDR RKEY | rdma-read LEN ADDR RKEY
 *   munmap | mprotect none|ro|rw         the whole pages of our MR
 *   dereg [2]                            ibv_dereg_mr (MR or MR2) now
 *   dereg-after N                        a thread deregisters the MR as
 *                                        soon as byte N-1 of it changed
 *   poke OFF BYTE                        a stray write at MR offset OFF
 *                                        (negative: into the guard before
 *                                        it), to prove "check" can fail
 *   check | state | info | sleep MS | echo TEXT | quit
 *
 * Output lines, for the scenario to assert on:
 *   wc id=N op=OP status=IBV_WC_... len=N qp=0x... [data=ok|bad]
 *     (data: a RECV's bytes against the peer's send pattern)
 *   async IBV_EVENT_... [qp=0x...]
 *   dereg done region=R rc=0 changed=K   (K bytes of the MR had changed)
 *   canaries ok region=R | canaries BROKEN region=R n=K first=OFF
 *   mr unchanged region=R | mr changed region=R n=K first=OFF |
 *   mr skipped region=R (...)
 *   after-dereg unchanged region=R | after-dereg changed region=R n=K
 *   qp state=RTS|ERR|...
 *   exit status=N
 * "check" and "quit" print the canary, MR and after-dereg lines; the exit
 * status is 0 when no canary byte changed and nothing was written after
 * a deregistration, 1 otherwise (and on any setup error or the timeout).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include "common.h"

#define GUARD_PAGES 2
#define LINE 512

enum map_state { MAPPED, UNMAPPED, PROT_NONE_, READ_ONLY };

/* One exposed region: guard | MR (len bytes from base) | rest + guard. */
struct region {
	uint8_t *area;
	size_t area_len;
	uint8_t *base;
	size_t len;
	struct ibv_mr *mr;
	unsigned int seed;
	enum map_state map;
	int untouched;		/* -z: never filled nor checked */
	uint8_t *snap;		/* contents right after ibv_dereg_mr */
	pthread_mutex_t lock;	/* mr, snap */
};

struct dest {
	uint32_t qpn, psn, rkey, seed;
	uint64_t addr, len;
	union ibv_gid gid;
};

static struct ibv_context *ctx;
static struct ibv_pd *pd;
static struct ibv_comp_channel *channel;
static struct ibv_cq *cq;
static struct ibv_qp *qp;
static struct region reg[2];
static int nreg = 1;
static uint8_t *lbuf;		/* send buffer | receive buffer */
static size_t lsize = 4096;
static struct ibv_mr *lmr;
static struct dest me, peer;
static uint64_t next_id = 1;
static long page;
static size_t watch_at;
static pthread_t watcher;
static int watching;
static atomic_int stop_watching;

static uint8_t fill(unsigned int seed, size_t i)
{
	return (uint8_t)(seed * 131 + i * 7 + (i >> 8));
}

static uint8_t canary(size_t i)
{
	return (uint8_t)(0xc3 ^ (i * 13));
}

/* What a SEND from the process with this seed carries. */
static uint8_t send_fill(unsigned int seed, size_t i)
{
	return fill(seed + 100, i);
}

static size_t round_up(size_t v, size_t to)
{
	return (v + to - 1) / to * to;
}

static size_t parse_size(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 0);

	switch (*end) {
	case 'K': case 'k': v <<= 10; end++; break;
	case 'M': case 'm': v <<= 20; end++; break;
	case 'G': case 'g': v <<= 30; end++; break;
	default: break;
	}
	if (*end || !v) {
		fprintf(stderr, "bad size '%s'\n", s);
		exit(2);
	}
	return (size_t)v;
}

static int parse_access(const char *s, int qp_flags)
{
	int a = 0;

	if (!strcmp(s, "-"))
		return 0;
	for (; *s; s++) {
		switch (*s) {
		case 'l': if (qp_flags) goto bad; a |= IBV_ACCESS_LOCAL_WRITE; break;
		case 'w': a |= IBV_ACCESS_REMOTE_WRITE; break;
		case 'r': a |= IBV_ACCESS_REMOTE_READ; break;
		case 'a': a |= IBV_ACCESS_REMOTE_ATOMIC; break;
		case 'o': if (qp_flags) goto bad; a |= IBV_ACCESS_ON_DEMAND; break;
		default: goto bad;
		}
	}
	return a;
bad:
	fprintf(stderr, "bad access letters '%s'\n", s);
	exit(2);
}

static const char *wc_status_name(enum ibv_wc_status s)
{
	static const char *const n[] = {
		"IBV_WC_SUCCESS", "IBV_WC_LOC_LEN_ERR", "IBV_WC_LOC_QP_OP_ERR",
		"IBV_WC_LOC_EEC_OP_ERR", "IBV_WC_LOC_PROT_ERR",
		"IBV_WC_WR_FLUSH_ERR", "IBV_WC_MW_BIND_ERR", "IBV_WC_BAD_RESP_ERR",
		"IBV_WC_LOC_ACCESS_ERR", "IBV_WC_REM_INV_REQ_ERR",
		"IBV_WC_REM_ACCESS_ERR", "IBV_WC_REM_OP_ERR",
		"IBV_WC_RETRY_EXC_ERR", "IBV_WC_RNR_RETRY_EXC_ERR",
		"IBV_WC_LOC_RDD_VIOL_ERR", "IBV_WC_REM_INV_RD_REQ_ERR",
		"IBV_WC_REM_ABORT_ERR", "IBV_WC_INV_EECN_ERR",
		"IBV_WC_INV_EEC_STATE_ERR", "IBV_WC_FATAL_ERR",
		"IBV_WC_RESP_TIMEOUT_ERR", "IBV_WC_GENERAL_ERR",
		"IBV_WC_TM_ERR", "IBV_WC_TM_RNDV_INCOMPLETE",
	};

	return (unsigned int)s < sizeof(n) / sizeof(n[0]) ? n[s] : "IBV_WC_?";
}

static const char *wc_opcode_name(enum ibv_wc_opcode o)
{
	switch (o) {
	case IBV_WC_SEND: return "SEND";
	case IBV_WC_RDMA_WRITE: return "RDMA_WRITE";
	case IBV_WC_RDMA_READ: return "RDMA_READ";
	case IBV_WC_COMP_SWAP: return "COMP_SWAP";
	case IBV_WC_FETCH_ADD: return "FETCH_ADD";
	case IBV_WC_BIND_MW: return "BIND_MW";
	case IBV_WC_LOCAL_INV: return "LOCAL_INV";
	case IBV_WC_RECV: return "RECV";
	case IBV_WC_RECV_RDMA_WITH_IMM: return "RECV_RDMA_WITH_IMM";
	default: return "?";
	}
}

static const char *event_name(enum ibv_event_type t)
{
	static const char *const n[] = {
		"IBV_EVENT_CQ_ERR", "IBV_EVENT_QP_FATAL", "IBV_EVENT_QP_REQ_ERR",
		"IBV_EVENT_QP_ACCESS_ERR", "IBV_EVENT_COMM_EST",
		"IBV_EVENT_SQ_DRAINED", "IBV_EVENT_PATH_MIG",
		"IBV_EVENT_PATH_MIG_ERR", "IBV_EVENT_DEVICE_FATAL",
		"IBV_EVENT_PORT_ACTIVE", "IBV_EVENT_PORT_ERR",
		"IBV_EVENT_LID_CHANGE", "IBV_EVENT_PKEY_CHANGE",
		"IBV_EVENT_SM_CHANGE", "IBV_EVENT_SRQ_ERR",
		"IBV_EVENT_SRQ_LIMIT_REACHED", "IBV_EVENT_QP_LAST_WQE_REACHED",
		"IBV_EVENT_CLIENT_REREGISTER", "IBV_EVENT_GID_CHANGE",
		"IBV_EVENT_WQ_FATAL",
	};

	return (unsigned int)t < sizeof(n) / sizeof(n[0]) ? n[t] : "IBV_EVENT_?";
}

static const char *qp_state_name(enum ibv_qp_state s)
{
	static const char *const n[] = {
		"RESET", "INIT", "RTR", "RTS", "SQD", "SQE", "ERR",
	};

	return (unsigned int)s < sizeof(n) / sizeof(n[0]) ? n[s] : "?";
}

/* ---- regions and their checks ---------------------------------------- */

static void region_setup(struct region *r, size_t len, unsigned int seed,
			 int access, int untouched)
{
	size_t head = GUARD_PAGES * (size_t)page, i;

	r->len = len;
	r->seed = seed;
	r->untouched = untouched;
	r->area_len = head + round_up(len, (size_t)page) + head;
	r->area = mmap(NULL, r->area_len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r->area == MAP_FAILED)
		die("mmap %zu bytes: %s", r->area_len, strerror(errno));
	r->base = r->area + head;
	for (i = 0; i < head; i++)
		r->area[i] = canary(i);
	for (i = head + len; i < r->area_len; i++)
		r->area[i] = canary(i);
	if (!untouched)
		for (i = 0; i < len; i++)
			r->base[i] = fill(seed, i);
	pthread_mutex_init(&r->lock, NULL);
	r->mr = ibv_reg_mr(pd, r->base, len, access);
	if (!r->mr)
		die("ibv_reg_mr(%zu bytes, access %#x): %s", len, access,
		    strerror(errno));
}

/* Whole pages of the MR: what munmap/mprotect may touch (the partial last
 * page also holds canaries). */
static size_t whole_pages(const struct region *r)
{
	return r->len / (size_t)page * (size_t)page;
}

static int mr_readable(const struct region *r)
{
	return r->map == MAPPED || r->map == READ_ONLY;
}

static int check_canaries(int ri)
{
	struct region *r = &reg[ri];
	size_t head = GUARD_PAGES * (size_t)page, i, n = 0;
	long first = 0;

	/* The guard before the MR, then everything after it (never the MR
	 * itself: it may be huge and untouched). */
	for (i = 0; i < r->area_len; i = i + 1 == head ? head + r->len : i + 1) {
		if (r->area[i] == canary(i))
			continue;
		if (!n++)
			first = (long)i - (long)head;
	}
	if (n)
		printf("canaries BROKEN region=%d n=%zu first=%+ld\n", ri, n,
		       first);
	else
		printf("canaries ok region=%d\n", ri);
	return n != 0;
}

/* Bytes of [base, base + len) that differ from `want`; the first one's
 * offset in *first.  The unreadable whole pages are skipped. */
static size_t count_changed(const struct region *r, const uint8_t *want,
			    size_t *first)
{
	size_t i = mr_readable(r) ? 0 : whole_pages(r), n = 0;

	for (; i < r->len; i++) {
		uint8_t w = want ? want[i] : (r->untouched ? 0 : fill(r->seed, i));

		if (r->base[i] == w)
			continue;
		if (!n++)
			*first = i;
	}
	return n;
}

static void check_mr(int ri)
{
	struct region *r = &reg[ri];
	size_t n, first = 0;

	if (r->untouched) {
		printf("mr skipped region=%d (-z)\n", ri);
		return;
	}
	if (!mr_readable(r))
		printf("mr skipped region=%d (whole pages %s)\n", ri,
		       r->map == UNMAPPED ? "unmapped" : "PROT_NONE");
	n = count_changed(r, NULL, &first);
	if (n)
		printf("mr changed region=%d n=%zu first=%zu\n", ri, n, first);
	else if (mr_readable(r))
		printf("mr unchanged region=%d\n", ri);
}

static int check_after_dereg(int ri)
{
	struct region *r = &reg[ri];
	size_t n, first = 0;

	pthread_mutex_lock(&r->lock);
	if (!r->snap) {
		pthread_mutex_unlock(&r->lock);
		return 0;
	}
	n = count_changed(r, r->snap, &first);
	pthread_mutex_unlock(&r->lock);
	if (n)
		printf("after-dereg changed region=%d n=%zu first=%zu\n", ri, n,
		       first);
	else
		printf("after-dereg unchanged region=%d\n", ri);
	return n != 0;
}

static int check_all(void)
{
	int ri, bad = 0;

	for (ri = 0; ri < nreg; ri++) {
		bad |= check_canaries(ri);
		check_mr(ri);
		bad |= check_after_dereg(ri);
	}
	return bad;
}

static void dereg(int ri)
{
	struct region *r = &reg[ri];
	size_t n, first = 0;
	int rc;

	pthread_mutex_lock(&r->lock);
	if (!r->mr) {
		pthread_mutex_unlock(&r->lock);
		printf("dereg skipped region=%d (not registered)\n", ri);
		return;
	}
	rc = ibv_dereg_mr(r->mr);
	r->mr = NULL;
	/* As soon as dereg returns: later writes show in the comparison. */
	if (mr_readable(r) && !r->untouched) {
		r->snap = malloc(r->len);
		if (!r->snap)
			die("malloc %zu", r->len);
		memcpy(r->snap, r->base, r->len);
	}
	pthread_mutex_unlock(&r->lock);
	n = r->untouched ? 0 : count_changed(r, NULL, &first);
	printf("dereg done region=%d rc=%d changed=%zu\n", ri, rc, n);
}

static void *watch(void *arg)
{
	struct region *r = &reg[0];
	volatile uint8_t *p = r->base + watch_at - 1;
	uint8_t was = r->untouched ? 0 : fill(r->seed, watch_at - 1);
	struct timespec ts = { 0, 100 * 1000 };

	(void)arg;
	while (*p == was)
		if (atomic_load(&stop_watching) || nanosleep(&ts, NULL) < 0)
			return NULL;
	dereg(0);
	return NULL;
}

/* ---- connection ------------------------------------------------------- */

static void gid_to_hex(const union ibv_gid *g, char *out)
{
	int i;

	for (i = 0; i < 16; i++)
		sprintf(out + 2 * i, "%02x", g->raw[i]);
}

static int hex_to_gid(const char *s, union ibv_gid *g)
{
	unsigned int b;
	int i;

	if (strlen(s) != 32)
		return -1;
	for (i = 0; i < 16; i++) {
		if (sscanf(s + 2 * i, "%2x", &b) != 1)
			return -1;
		g->raw[i] = (uint8_t)b;
	}
	return 0;
}

static int tcp_connect(const char *hostport, double deadline)
{
	char host[256], *colon;
	struct addrinfo hints = { .ai_family = AF_INET,
				  .ai_socktype = SOCK_STREAM }, *ai;
	int fd;

	snprintf(host, sizeof(host), "%s", hostport);
	colon = strrchr(host, ':');
	if (!colon)
		die("-c wants HOST:PORT, got %s", hostport);
	*colon = 0;
	if (getaddrinfo(host, colon + 1, &hints, &ai))
		die("cannot resolve %s", hostport);
	for (;;) {
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0)
			die("socket: %s", strerror(errno));
		if (!connect(fd, ai->ai_addr, ai->ai_addrlen))
			break;
		close(fd);
		if (now_s() > deadline)
			die("connect %s: %s", hostport, strerror(errno));
		usleep(100000);
	}
	freeaddrinfo(ai);
	return fd;
}

static int tcp_accept(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)port) };
	int one = 1, lfd, fd;

	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0)
		die("socket: %s", strerror(errno));
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(lfd, 1))
		die("listen on %d: %s", port, strerror(errno));
	printf("listening port=%d\n", port);
	fd = accept(lfd, NULL, NULL);
	if (fd < 0)
		die("accept: %s", strerror(errno));
	close(lfd);
	return fd;
}

static void exchange(int fd)
{
	char msg[LINE], gid[33];
	size_t n = 0;
	int len;

	gid_to_hex(&me.gid, gid);
	len = snprintf(msg, sizeof(msg),
		       "OMXT %x %x %s %" PRIx64 " %x %" PRIx64 " %x\n",
		       me.qpn, me.psn, gid, me.addr, me.rkey, me.len, me.seed);
	if (write(fd, msg, (size_t)len) != len)
		die("send connection data: %s", strerror(errno));
	while (n < sizeof(msg) - 1) {
		ssize_t r = read(fd, msg + n, 1);

		if (r <= 0)
			die("peer closed the connection exchange");
		if (msg[n++] == '\n')
			break;
	}
	msg[n] = 0;
	if (sscanf(msg, "OMXT %x %x %32s %" SCNx64 " %x %" SCNx64 " %x",
		   &peer.qpn, &peer.psn, gid, &peer.addr, &peer.rkey,
		   &peer.len, &peer.seed) != 7 || hex_to_gid(gid, &peer.gid))
		die("bad connection data: %s", msg);
	close(fd);
}

/* ---- verbs ------------------------------------------------------------ */

struct qp_opts {
	int qp_access, mtu, gidx, timeout, rnr_retry, min_rnr, rd, dest_rd;
};

static enum ibv_mtu mtu_enum(int mtu)
{
	switch (mtu) {
	case 256: return IBV_MTU_256;
	case 512: return IBV_MTU_512;
	case 1024: return IBV_MTU_1024;
	case 2048: return IBV_MTU_2048;
	case 4096: return IBV_MTU_4096;
	default:
		fprintf(stderr, "bad MTU %d\n", mtu);
		exit(2);
	}
}

static void create_qp(const struct qp_opts *o)
{
	struct ibv_qp_init_attr ia = {
		.send_cq = cq, .recv_cq = cq, .qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = 64, .max_recv_wr = 64,
			 .max_send_sge = 1, .max_recv_sge = 1 },
	};
	struct ibv_qp_attr a = {
		.qp_state = IBV_QPS_INIT, .port_num = 1,
		.qp_access_flags = (unsigned int)o->qp_access,
	};

	qp = ibv_create_qp(pd, &ia);
	if (!qp)
		die("ibv_create_qp: %s", strerror(errno));
	if (ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX |
			  IBV_QP_PORT | IBV_QP_ACCESS_FLAGS))
		die("modify to INIT: %s", strerror(errno));
}

static void connect_qp(const struct qp_opts *o)
{
	struct ibv_qp_attr a = {
		.qp_state = IBV_QPS_RTR, .path_mtu = mtu_enum(o->mtu),
		.dest_qp_num = peer.qpn, .rq_psn = peer.psn,
		.max_dest_rd_atomic = (uint8_t)o->dest_rd,
		.min_rnr_timer = (uint8_t)o->min_rnr,
		.ah_attr = { .is_global = 1, .port_num = 1,
			     .grh = { .dgid = peer.gid,
				      .sgid_index = (uint8_t)o->gidx,
				      .hop_limit = 1 } },
	};

	if (ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_AV |
			  IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
			  IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER))
		die("modify to RTR (max_dest_rd_atomic %d): %s", o->dest_rd,
		    strerror(errno));
	a.qp_state = IBV_QPS_RTS;
	a.timeout = (uint8_t)o->timeout;
	a.retry_cnt = 7;
	a.rnr_retry = (uint8_t)o->rnr_retry;
	a.sq_psn = me.psn;
	a.max_rd_atomic = (uint8_t)o->rd;
	if (ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_TIMEOUT |
			  IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN |
			  IBV_QP_MAX_QP_RD_ATOMIC))
		die("modify to RTS: %s", strerror(errno));
}

static void post_recv(int n)
{
	struct ibv_sge sge = { (uintptr_t)(lbuf + lsize), (uint32_t)lsize,
			       lmr->lkey };
	struct ibv_recv_wr wr = { .sg_list = &sge, .num_sge = 1 }, *bad;

	while (n-- > 0) {
		wr.wr_id = next_id++;
		if (ibv_post_recv(qp, &wr, &bad)) {
			printf("post failed op=RECV: %s\n", strerror(errno));
			return;
		}
		printf("posted id=%" PRIu64 " op=RECV len=%zu\n", wr.wr_id,
		       lsize);
	}
}

/* Posts one signaled WR; returns its id, 0 if it could not be posted. */
static uint64_t post(enum ibv_wr_opcode op, size_t len, uint64_t raddr,
		     uint32_t rkey)
{
	struct ibv_sge sge = { 0 };
	struct ibv_send_wr wr = { .sg_list = &sge, .num_sge = 1,
				  .opcode = op,
				  .send_flags = IBV_SEND_SIGNALED }, *bad;
	const char *name = op == IBV_WR_SEND ? "SEND" :
			   op == IBV_WR_RDMA_WRITE ? "RDMA_WRITE" : "RDMA_READ";
	struct region *r = &reg[0];

	if (op == IBV_WR_SEND) {
		if (len > lsize) {
			printf("post failed op=SEND: len %zu > buffer %zu\n",
			       len, lsize);
			return 0;
		}
		sge = (struct ibv_sge){ (uintptr_t)lbuf, (uint32_t)len,
					lmr->lkey };
	} else {
		pthread_mutex_lock(&r->lock);
		if (!r->mr || len > r->len) {
			pthread_mutex_unlock(&r->lock);
			printf("post failed op=%s: local MR gone or too small\n",
			       name);
			return 0;
		}
		sge = (struct ibv_sge){ (uintptr_t)r->base, (uint32_t)len,
					r->mr->lkey };
		pthread_mutex_unlock(&r->lock);
		wr.wr.rdma.remote_addr = raddr;
		wr.wr.rdma.rkey = rkey;
	}
	wr.wr_id = next_id++;
	if (ibv_post_send(qp, &wr, &bad)) {
		printf("post failed op=%s: %s\n", name, strerror(errno));
		return 0;
	}
	printf("posted id=%" PRIu64 " op=%s len=%zu\n", wr.wr_id, name, len);
	return wr.wr_id;
}

static void drain_cq(void)
{
	struct ibv_wc wc[16];
	int n, i;

	while ((n = ibv_poll_cq(cq, 16, wc)) > 0) {
		for (i = 0; i < n; i++) {
			const char *data = "";

			if (wc[i].status == IBV_WC_SUCCESS &&
			    wc[i].opcode == IBV_WC_RECV) {
				size_t k;

				data = " data=ok";
				for (k = 0; k < wc[i].byte_len && k < lsize; k++)
					if (lbuf[lsize + k] !=
					    send_fill(peer.seed, k)) {
						data = " data=bad";
						break;
					}
			}
			printf("wc id=%" PRIu64 " op=%s status=%s len=%u qp=%#08x%s\n",
			       wc[i].wr_id, wc_opcode_name(wc[i].opcode),
			       wc_status_name(wc[i].status), wc[i].byte_len,
			       wc[i].qp_num, data);
		}
	}
	if (n < 0)
		printf("poll_cq failed: %d\n", n);
}

static void cq_event(void)
{
	struct ibv_cq *ev_cq;
	void *ev_ctx;

	if (ibv_get_cq_event(channel, &ev_cq, &ev_ctx))
		return;
	ibv_ack_cq_events(ev_cq, 1);
	if (ibv_req_notify_cq(cq, 0))
		printf("req_notify_cq failed: %s\n", strerror(errno));
}

static void async_events(void)
{
	struct ibv_async_event ev;

	while (!ibv_get_async_event(ctx, &ev)) {
		switch (ev.event_type) {
		case IBV_EVENT_QP_FATAL:
		case IBV_EVENT_QP_REQ_ERR:
		case IBV_EVENT_QP_ACCESS_ERR:
		case IBV_EVENT_COMM_EST:
		case IBV_EVENT_SQ_DRAINED:
		case IBV_EVENT_PATH_MIG:
		case IBV_EVENT_PATH_MIG_ERR:
		case IBV_EVENT_QP_LAST_WQE_REACHED:
			printf("async %s qp=%#08x\n", event_name(ev.event_type),
			       ev.element.qp->qp_num);
			break;
		default:
			printf("async %s\n", event_name(ev.event_type));
		}
		ibv_ack_async_event(&ev);
	}
}

static void print_info(const char *dev)
{
	int i;

	printf("DEV=%s\nQPN=%#08x\nSQ_PSN=%#08x\nRQ_PSN=%#08x\n", dev, me.qpn,
	       me.psn, peer.psn);
	for (i = 0; i < nreg; i++) {
		const char *p = i ? "MR2_" : "MR_";

		printf("%sADDR=%#" PRIx64 "\n%sRKEY=%#x\n%sLEN=%zu\n", p,
		       (uint64_t)(uintptr_t)reg[i].base, p,
		       reg[i].mr ? reg[i].mr->rkey : 0, p, reg[i].len);
	}
	printf("PEER_QPN=%#08x\nPEER_MR_ADDR=%#" PRIx64 "\nPEER_MR_RKEY=%#x\n"
	       "PEER_MR_LEN=%" PRIu64 "\n", peer.qpn, peer.addr, peer.rkey,
	       peer.len);
}

/* ---- commands --------------------------------------------------------- */

static void map_change(const char *how)
{
	struct region *r = &reg[0];
	size_t len = whole_pages(r);
	int prot, rc;

	if (!len) {
		printf("%s skipped: the MR has no whole page\n", how);
		return;
	}
	if (!strcmp(how, "munmap")) {
		rc = munmap(r->base, len);
		r->map = rc ? r->map : UNMAPPED;
	} else {
		if (!strcmp(how, "none"))
			prot = PROT_NONE;
		else if (!strcmp(how, "ro"))
			prot = PROT_READ;
		else if (!strcmp(how, "rw"))
			prot = PROT_READ | PROT_WRITE;
		else {
			printf("usage: mprotect none|ro|rw\n");
			return;
		}
		rc = mprotect(r->base, len, prot);
		if (!rc)
			r->map = prot == PROT_NONE ? PROT_NONE_ :
				 prot == PROT_READ ? READ_ONLY : MAPPED;
	}
	printf("%s%s %s bytes=%zu\n", strcmp(how, "munmap") ? "mprotect " : "",
	       how, rc ? strerror(errno) : "done", len);
}

/*
 * Reads what stdin has and hands each complete line to `f`; returns 1
 * when `f` asks to quit or stdin is closed.  (stdio's fgets would keep
 * lines in its buffer where poll() cannot see them.)
 */
static int read_commands(const char *dev, int (*f)(char *, const char *))
{
	static char buf[4 * LINE];
	static size_t have;
	ssize_t n = read(0, buf + have, sizeof(buf) - 1 - have);
	char *nl;

	if (n <= 0)
		return n < 0 && errno == EINTR ? 0 : 1;
	have += (size_t)n;
	buf[have] = 0;
	while ((nl = memchr(buf, '\n', have))) {
		size_t len = (size_t)(nl - buf) + 1;
		char line[4 * LINE];

		memcpy(line, buf, len);
		line[len] = 0;
		memmove(buf, buf + len, have - len);
		have -= len;
		if (f(line, dev))
			return 1;
		drain_cq();
	}
	if (have == sizeof(buf) - 1)
		have = 0;	/* an overlong line: dropped */
	return 0;
}

/* Returns 1 to quit. */
static int command(char *line, const char *dev)
{
	char *argv[8], *save = NULL, *t;
	int argc = 0;

	for (t = strtok_r(line, " \t\n", &save); t && argc < 8;
	     t = strtok_r(NULL, " \t\n", &save))
		argv[argc++] = t;
	if (!argc)
		return 0;
#define IS(s) (!strcmp(argv[0], s))
#define NUM(i, d) (argc > (i) ? strtoull(argv[i], NULL, 0) : (d))
	if (IS("send") && argc == 2)
		post(IBV_WR_SEND, parse_size(argv[1]), 0, 0);
	else if (IS("recv"))
		post_recv((int)NUM(1, 1));
	else if ((IS("write") || IS("read")) && argc >= 2)
		post(IS("write") ? IBV_WR_RDMA_WRITE : IBV_WR_RDMA_READ,
		     parse_size(argv[1]), peer.addr + NUM(2, 0), peer.rkey);
	else if ((IS("rdma-write") || IS("rdma-read")) && argc == 4)
		post(IS("rdma-write") ? IBV_WR_RDMA_WRITE : IBV_WR_RDMA_READ,
		     parse_size(argv[1]), NUM(2, 0), (uint32_t)NUM(3, 0));
	else if (IS("munmap"))
		map_change("munmap");
	else if (IS("mprotect") && argc == 2)
		map_change(argv[1]);
	else if (IS("dereg"))
		dereg(argc > 1 && nreg > 1 && !strcmp(argv[1], "2") ? 1 : 0);
	else if (IS("dereg-after") && argc == 2 && !watching) {
		watch_at = (size_t)NUM(1, 1);
		if (!watch_at || watch_at > reg[0].len || !mr_readable(&reg[0]))
			printf("dereg-after: offset out of the readable MR\n");
		else if (pthread_create(&watcher, NULL, watch, NULL))
			die("pthread_create");
		else {
			watching = 1;
			printf("dereg-after armed byte=%zu\n", watch_at - 1);
		}
	} else if (IS("poke") && argc == 3) {
		struct region *r = &reg[0];
		long off = strtol(argv[1], NULL, 0);
		long at = off + GUARD_PAGES * page;
		int in_mr = off >= 0 && (size_t)off < r->len;

		if (at < 0 || (size_t)at >= r->area_len ||
		    (in_mr && (size_t)off < whole_pages(r) && r->map != MAPPED))
			printf("poke: offset %ld not writable\n", off);
		else {
			r->area[at] = (uint8_t)strtoul(argv[2], NULL, 0);
			printf("poked %ld\n", off);
		}
	} else if (IS("check"))
		check_all();
	else if (IS("state")) {
		struct ibv_qp_attr a;
		struct ibv_qp_init_attr ia;

		if (ibv_query_qp(qp, &a, IBV_QP_STATE, &ia))
			printf("qp state=? (%s)\n", strerror(errno));
		else
			printf("qp state=%s\n", qp_state_name(a.qp_state));
	} else if (IS("info"))
		print_info(dev);
	else if (IS("sleep"))
		usleep((useconds_t)NUM(1, 0) * 1000);
	else if (IS("echo")) {
		int i;

		for (i = 1; i < argc; i++)
			printf("%s%s", argv[i], i + 1 < argc ? " " : "\n");
	} else if (IS("quit"))
		return 1;
	else
		printf("unknown command: %s (argc %d)\n", argv[0], argc);
#undef IS
#undef NUM
	return 0;
}

static int teardown(void)
{
	int bad, i;

	drain_cq();
	bad = check_all();
	if (watching) {
		atomic_store(&stop_watching, 1);
		pthread_join(watcher, NULL);
	}
	if (ibv_destroy_qp(qp))
		printf("ibv_destroy_qp: %s\n", strerror(errno));
	for (i = 0; i < nreg; i++)
		if (reg[i].mr && ibv_dereg_mr(reg[i].mr))
			printf("ibv_dereg_mr: %s\n", strerror(errno));
	if (ibv_dereg_mr(lmr) || ibv_destroy_cq(cq) ||
	    ibv_destroy_comp_channel(channel) || ibv_dealloc_pd(pd))
		printf("teardown: %s\n", strerror(errno));
	if (ibv_close_device(ctx))
		printf("ibv_close_device: %s\n", strerror(errno));
	return bad;
}

int main(int argc, char **argv)
{
	const char *dev = NULL, *connect_to = NULL;
	struct qp_opts o = { .qp_access = IBV_ACCESS_REMOTE_WRITE |
					  IBV_ACCESS_REMOTE_READ,
			     .mtu = 1024, .timeout = 14, .rnr_retry = 7,
			     .min_rnr = 12, .rd = 1, .dest_rd = 1 };
	int mr_access = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |
			IBV_ACCESS_REMOTE_READ;
	int port = 0, untouched = 0, recvs = 0, opt, fd, bad;
	size_t size = 65536, used = 0;
	double limit = 120, deadline;
	long psn = -1;

	while ((opt = getopt(argc, argv, "d:l:c:s:z2m:a:R:O:M:g:t:n:N:P:b:r:T:")) != -1) {
		switch (opt) {
		case 'd': dev = optarg; break;
		case 'l': port = atoi(optarg); break;
		case 'c': connect_to = optarg; break;
		case 's': size = parse_size(optarg); break;
		case 'z': untouched = 1; break;
		case '2': nreg = 2; break;
		case 'm': mr_access = parse_access(optarg, 0); break;
		case 'a': o.qp_access = parse_access(optarg, 1); break;
		case 'R': o.dest_rd = atoi(optarg); break;
		case 'O': o.rd = atoi(optarg); break;
		case 'M': o.mtu = atoi(optarg); break;
		case 'g': o.gidx = atoi(optarg); break;
		case 't': o.timeout = atoi(optarg); break;
		case 'n': o.rnr_retry = atoi(optarg); break;
		case 'N': o.min_rnr = atoi(optarg); break;
		case 'P': psn = strtol(optarg, NULL, 0) & 0xffffff; break;
		case 'b': lsize = parse_size(optarg); break;
		case 'r': recvs = atoi(optarg); break;
		case 'T': limit = atof(optarg); break;
		default: goto usage;
		}
	}
	if (!dev || optind != argc || (!port) == (!connect_to))
		goto usage;
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	deadline = now_s() + limit;
	page = sysconf(_SC_PAGESIZE);
	srand48(getpid() * time(NULL));

	ctx = open_by_name(dev);
	if (ibv_query_gid(ctx, 1, o.gidx, &me.gid))
		die("ibv_query_gid %d: %s", o.gidx, strerror(errno));
	pd = ibv_alloc_pd(ctx);
	channel = pd ? ibv_create_comp_channel(ctx) : NULL;
	cq = channel ? ibv_create_cq(ctx, 256, NULL, channel, 0) : NULL;
	if (!cq || ibv_req_notify_cq(cq, 0))
		die("pd/channel/cq: %s", strerror(errno));
	if (fcntl(ctx->async_fd, F_SETFL, O_NONBLOCK) ||
	    fcntl(channel->fd, F_SETFL, O_NONBLOCK))
		die("O_NONBLOCK: %s", strerror(errno));
	region_setup(&reg[0], size, port ? 1 : 2, mr_access, untouched);
	if (nreg > 1)
		region_setup(&reg[1], 65536, 3, mr_access, 0);
	lbuf = malloc(2 * lsize);
	if (!lbuf)
		die("malloc");
	for (used = 0; used < lsize; used++)
		lbuf[used] = send_fill(port ? 1 : 2, used);
	memset(lbuf + lsize, 0, lsize);
	lmr = ibv_reg_mr(pd, lbuf, 2 * lsize, IBV_ACCESS_LOCAL_WRITE);
	if (!lmr)
		die("ibv_reg_mr(local buffers): %s", strerror(errno));
	create_qp(&o);

	me.qpn = qp->qp_num;
	me.psn = psn >= 0 ? (uint32_t)psn : (uint32_t)(lrand48() & 0xffffff);
	me.addr = (uintptr_t)reg[0].base;
	me.rkey = reg[0].mr->rkey;
	me.len = reg[0].len;
	me.seed = port ? 1 : 2;
	fd = port ? tcp_accept(port) : tcp_connect(connect_to, deadline);
	exchange(fd);
	connect_qp(&o);
	post_recv(recvs);
	print_info(dev);
	printf("ready\n");

	for (;;) {
		struct pollfd p[3] = {
			{ .fd = 0, .events = POLLIN },
			{ .fd = channel->fd, .events = POLLIN },
			{ .fd = ctx->async_fd, .events = POLLIN },
		};
		double left = deadline - now_s();

		if (left <= 0) {
			printf("timeout after %.0f s\n", limit);
			drain_cq();
			check_all();
			printf("exit status=1\n");
			return 1;
		}
		/* At most 100 ms asleep: the CQ is also polled on a timer. */
		if (poll(p, 3, left > 0.1 ? 100 : (int)(left * 1000) + 1) < 0 &&
		    errno != EINTR)
			die("poll: %s", strerror(errno));
		if (p[1].revents)
			cq_event();
		if (p[2].revents)
			async_events();
		drain_cq();
		if (p[0].revents && read_commands(dev, command))
			break;		/* "quit", or stdin closed */
	}
	bad = teardown();
	printf("exit status=%d\n", bad);
	return bad;
usage:
	fprintf(stderr,
		"usage: %s -d DEV (-l PORT | -c HOST:PORT) [-s SIZE] [-z] [-2] [-m ACC] [-a ACC]\n"
		"       [-R N] [-O N] [-M MTU] [-g N] [-t N] [-n N] [-N N] [-P PSN] [-b SIZE]\n"
		"       [-r N] [-T SEC]   (commands on stdin: see the source's header)\n",
		argv[0]);
	return 2;
}
