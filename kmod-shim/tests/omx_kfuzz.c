// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * omx_kfuzz: a syscall-level fuzzer of rdma_omx, through raw uverbs.
 *
 *   omx_kfuzz -d IBDEV [-s SEED] [-t SECONDS] [-p PROCS] [-j THREADS]
 *
 * The parent keeps PROCS (default 3) worker processes alive for SECONDS
 * (default 60).  Each worker opens up to two contexts on IBDEV (the uverbs
 * device is looked up by name at every open, so the device may be deleted
 * and re-added meanwhile) and runs THREADS (default 4) threads that pick
 * random operations:
 *  - PD, CQ (ioctl and write command, with and without a channel, random
 *    channel fds and sizes), QP (random types and capabilities, on an
 *    SRQ now and then), SRQ (write commands and ioctl, random types,
 *    sizes, limits and driver data), MR (mapped, read-only, PROT_NONE,
 *    unmapped, wrapping, huge, zero-length and on-demand ranges, random
 *    access bits), MW (random types and driver data) created and
 *    destroyed, on handles of the worker's tables or random ones (an SRQ
 *    still used by a QP stays);
 *  - modify_qp with random masks and values, sometimes the legal ladder;
 *    query_qp;
 *  - rdma_omx's driver methods (CQ_NOTIFY bursts, CQ_ERROR, QP_EVENT with
 *    random types and epochs, CTX_FATAL_FD with eventfds, pipes, the
 *    uverbs file itself and random numbers);
 *  - ioctls with random attributes on rdma_omx's methods and the core's
 *    CQ/QP/SRQ/device methods, write commands with random bodies, sizes and
 *    driver data (responses go to a scratch buffer or to bad addresses);
 *  - ATTACH_MCAST/DETACH_MCAST with a few multicast GIDs or random ones;
 *  - mapping churn under the MR checks, closing and reopening a context.
 * Started as root, half of the workers run as one of three throwaway
 * users (uid 40000-40002), so per-user records come and go.  Workers end
 * after a random number of operations or are killed with SIGKILL by the
 * parent at random points; a worker that dies of a signal the parent did
 * not send is counted (and printed) as a crash.
 *
 * The seed (printed first and last) fixes every worker's and thread's
 * sequence of operations; the interleaving and the kill points still
 * depend on timing.  Exit status 0 unless a worker crashed or the device
 * could never be opened.  The kernel side is judged by the scenario
 * (kmod-shim/tests/vm-kmod-fuzz.sh): no WARNING/BUG, no object left, slab
 * back near its baseline, rmmod works.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "omx_raw.h"

#define MAX_PROCS 16
#define MAX_THREADS 16
#define NCTX 2
#define TBL 48		/* handles of each kind kept per context */
#define NBUF 8		/* memory mappings per worker */
#define SCRATCH (1 << 19)

/* Counters shared by every process (an anonymous shared mapping). */
struct stats {
	atomic_ulong ops, ok, fail;
	atomic_ulong workers, killed, finished, crashed;
	atomic_ulong opens, open_fail;
	atomic_int stop;
};

static struct stats *st;
static char ibdev[64];

/* xorshift64*, one state per thread. */
static uint64_t rnd(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint32_t below(uint64_t *s, uint32_t n)
{
	return n ? (uint32_t)(rnd(s) % n) : 0;
}

static bool chance(uint64_t *s, uint32_t percent)
{
	return below(s, 100) < percent;
}

/* A random 32-bit value, biased towards the edges of the ranges. */
static uint32_t edgy32(uint64_t *s)
{
	static const uint32_t edges[] = {
		0, 1, 2, 3, 7, 8, 15, 16, 17, 31, 32, 255, 256, 4095, 4096,
		16384, 16385, 65535, 65536, 65537, 0x3fffff, 0x400000,
		0xffffff, 0x1000000,
		0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff,
	};

	switch (below(s, 4)) {
	case 0:
		return edges[below(s, sizeof(edges) / sizeof(edges[0]))];
	case 1:
		return below(s, 64);
	default:
		return (uint32_t)rnd(s);
	}
}

/* One context of a worker and its handle tables. */
struct ctx {
	pthread_mutex_t lock;
	int fd;
	int chan[4];
	uint32_t pd[TBL], cq[TBL], qp[TBL], mr[TBL], srq[TBL], mw[TBL];
	int npd, ncq, nqp, nmr, nsrq, nmw, nchan;
};

struct worker {
	struct ctx ctx[NCTX];
	pthread_mutex_t buf_lock;
	char *buf[NBUF];
	size_t buf_len[NBUF];
	char *scratch;
	long budget;
};

static struct worker *W;

/*
 * (Re)open context @c: close the old file (destroying its objects).  The
 * async event file is left open and unread half of the time (what queues
 * there is bounded per object), closed the other half.
 */
static void ctx_open(uint64_t *s, struct ctx *c)
{
	struct raw_ctx_resp r;
	char path[300];
	int fd, i;

	pthread_mutex_lock(&c->lock);
	if (c->fd >= 0)
		close(c->fd);
	for (i = 0; i < c->nchan; i++)
		close(c->chan[i]);
	c->fd = -1;
	c->npd = c->ncq = c->nqp = c->nmr = c->nsrq = c->nmw = c->nchan = 0;
	atomic_fetch_add(&st->opens, 1);
	fd = raw_uverbs_path(ibdev, path, sizeof(path)) ?
	     open(path, O_RDWR | O_CLOEXEC) : -1;
	if (fd >= 0 && raw_get_context(fd, &r)) {
		close(fd);
		fd = -1;
	}
	if (fd >= 0 && chance(s, 50))
		close(r.base.async_fd);
	c->fd = fd;
	pthread_mutex_unlock(&c->lock);
	if (fd < 0) {
		/* The device may be gone for a while (rdma link delete). */
		atomic_fetch_add(&st->open_fail, 1);
		usleep(10000);
	}
}

/* A handle of a table, or a random number now and then. */
static uint32_t pick(uint64_t *s, struct ctx *c, const uint32_t *tbl, int n)
{
	uint32_t h;

	if (!n || chance(s, 10))
		return chance(s, 50) ? below(s, 64) : edgy32(s);
	pthread_mutex_lock(&c->lock);
	h = tbl[below(s, n)];
	pthread_mutex_unlock(&c->lock);
	return h;
}

/* Record a new handle; a full table forgets a random entry (leaked). */
static void keep(uint64_t *s, struct ctx *c, uint32_t *tbl, int *n,
		 uint32_t h)
{
	pthread_mutex_lock(&c->lock);
	if (*n < TBL)
		tbl[(*n)++] = h;
	else
		tbl[below(s, TBL)] = h;
	pthread_mutex_unlock(&c->lock);
}

static void forget(struct ctx *c, uint32_t *tbl, int *n, uint32_t h)
{
	pthread_mutex_lock(&c->lock);
	for (int i = 0; i < *n; i++) {
		if (tbl[i] == h) {
			tbl[i] = tbl[--*n];
			break;
		}
	}
	pthread_mutex_unlock(&c->lock);
}

/* A random fd: a channel, an eventfd, the uverbs file, junk. */
static int some_fd(uint64_t *s, struct ctx *c)
{
	switch (below(s, 6)) {
	case 0:
		return c->nchan ? c->chan[below(s, c->nchan)] : -1;
	case 1:
		return c->fd;
	case 2:
		return -1;
	case 3:
		return (int)edgy32(s);
	default:
		return (int)below(s, 32);
	}
}

/* An address for a reg_mr: mapped, unmapped, wrapping, kernel, huge. */
static void some_range(uint64_t *s, uint64_t *addr, uint64_t *len)
{
	int b = below(s, NBUF);

	switch (below(s, 8)) {
	case 0: case 1: case 2:
		pthread_mutex_lock(&W->buf_lock);
		*addr = (uintptr_t)W->buf[b] + below(s, 64);
		*len = below(s, W->buf_len[b] + 8192);
		pthread_mutex_unlock(&W->buf_lock);
		break;
	case 3:
		*addr = ~0ULL - below(s, 1 << 20);
		*len = below(s, 1 << 21);
		break;
	case 4:
		*addr = 0xffff888000000000ULL + ((rnd(s) & 0xffffff) << 12);
		*len = 4096;
		break;
	case 5:
		*addr = 0;
		*len = ~0ULL;
		break;
	case 6:
		*addr = rnd(s) & 0x7ffffffff000ULL;
		*len = rnd(s) >> below(s, 64);
		break;
	default:
		*addr = (uintptr_t)W->scratch;
		*len = chance(s, 50) ? 0 : SCRATCH;
		break;
	}
}

static void churn_buffer(uint64_t *s)
{
	static const int prots[] = { PROT_READ | PROT_WRITE, PROT_READ,
				     PROT_NONE, PROT_WRITE };
	int b = below(s, NBUF);
	size_t len = (1 + below(s, 32)) * 4096;
	void *p;

	pthread_mutex_lock(&W->buf_lock);
	if (W->buf[b])
		munmap(W->buf[b], W->buf_len[b]);
	p = mmap(NULL, len, prots[below(s, 4)], MAP_PRIVATE | MAP_ANONYMOUS,
		 -1, 0);
	if (p != MAP_FAILED && len > 8192 && chance(s, 30))
		munmap((char *)p + 4096, 4096);	/* a hole */
	W->buf[b] = p == MAP_FAILED ? NULL : p;
	W->buf_len[b] = len;
	pthread_mutex_unlock(&W->buf_lock);
}

static int op_create_cq(uint64_t *s, struct ctx *c)
{
	uint32_t h, cqe = chance(s, 80) ? 1 + below(s, 4096) : edgy32(s);
	int chan = chance(s, 60) ? some_fd(s, c) : -1;
	int rv;

	if (chance(s, 25))
		rv = raw_create_cq_write(c->fd, chan, cqe, rnd(s), &h);
	else
		rv = raw_create_cq(c->fd, chan, cqe, rnd(s), &h);
	if (!rv)
		keep(s, c, c->cq, &c->ncq, h);
	return rv;
}

static int op_create_qp(uint64_t *s, struct ctx *c)
{
	static const uint8_t types[] = { IB_UVERBS_QPT_RC, IB_UVERBS_QPT_UC,
					 IB_UVERBS_QPT_UD };
	struct ib_uverbs_create_qp_resp r;
	struct {
		struct ib_uverbs_cmd_hdr hdr;
		struct ib_uverbs_create_qp cmd;
	} cmd;
	uint32_t cq = pick(s, c, c->cq, c->ncq);
	int rv;

	memset(&cmd, 0, sizeof(cmd));
	cmd.cmd.response = (uintptr_t)&r;
	cmd.cmd.user_handle = rnd(s);
	cmd.cmd.pd_handle = pick(s, c, c->pd, c->npd);
	cmd.cmd.send_cq_handle = cq;
	cmd.cmd.recv_cq_handle = chance(s, 80) ? cq : pick(s, c, c->cq, c->ncq);
	cmd.cmd.max_send_wr = chance(s, 80) ? below(s, 1024) : edgy32(s);
	cmd.cmd.max_recv_wr = chance(s, 80) ? below(s, 1024) : edgy32(s);
	cmd.cmd.max_send_sge = chance(s, 80) ? below(s, 17) : edgy32(s);
	cmd.cmd.max_recv_sge = chance(s, 80) ? below(s, 17) : edgy32(s);
	cmd.cmd.max_inline_data = edgy32(s);
	cmd.cmd.sq_sig_all = rnd(s);
	cmd.cmd.qp_type = chance(s, 85) ? types[below(s, 3)] : rnd(s);
	cmd.cmd.is_srq = chance(s, 20);
	if (cmd.cmd.is_srq)
		cmd.cmd.srq_handle = pick(s, c, c->srq, c->nsrq);
	memset(&r, 0, sizeof(r));
	rv = raw_write(c->fd, IB_USER_VERBS_CMD_CREATE_QP, &cmd, sizeof(cmd),
		       sizeof(r));
	if (!rv)
		keep(s, c, c->qp, &c->nqp, r.qp_handle);
	return rv;
}

/*
 * An SRQ: CREATE_SRQ (with random driver data now and then), CREATE_XSRQ
 * or the SRQ_CREATE ioctl, any type (mostly basic; XRC and tag matching
 * with a CQ, an XRCD number that names nothing), sizes and limits mostly
 * valid.
 */
static int op_create_srq(uint64_t *s, struct ctx *c)
{
	static const uint32_t types[] = {
		IB_UVERBS_SRQT_BASIC, IB_UVERBS_SRQT_BASIC, IB_UVERBS_SRQT_BASIC,
		IB_UVERBS_SRQT_XRC, IB_UVERBS_SRQT_TM,
	};
	struct ib_uverbs_create_srq_resp r;
	uint32_t pd = pick(s, c, c->pd, c->npd);
	uint32_t wr = chance(s, 80) ? 1 + below(s, 1024) : edgy32(s);
	uint32_t sge = chance(s, 80) ? 1 + below(s, 16) : edgy32(s);
	uint32_t limit = chance(s, 70) ? below(s, wr) : edgy32(s);
	uint32_t type = chance(s, 90) ? types[below(s, 5)] : edgy32(s);
	uint64_t uhw = chance(s, 80) ? 0 : rnd(s);
	uint32_t h = 0, rwr, rsge;
	int rv;

	switch (below(s, 3)) {
	case 0:
		rv = raw_create_srq_drv(c->fd, pd, wr, sge, limit, &uhw,
					chance(s, 20) ? sizeof(uhw) : 0, &r);
		h = r.srq_handle;
		break;
	case 1:
		rv = raw_create_xsrq(c->fd, type, pd, pick(s, c, c->cq, c->ncq),
				     below(s, 4), wr, &r);
		h = r.srq_handle;
		break;
	default:
		rv = raw_create_srq_ioctl(c->fd, type, pd,
					  pick(s, c, c->cq, c->ncq), wr, sge,
					  limit, chance(s, 20) ? &uhw : NULL,
					  &h, &rwr, &rsge);
	}
	if (!rv)
		keep(s, c, c->srq, &c->nsrq, h);
	return rv;
}

/* The attribute bits of IB_QP_* a mask is drawn from. */
static uint32_t some_mask(uint64_t *s)
{
	switch (below(s, 4)) {
	case 0:
		return (uint32_t)rnd(s);
	case 1:
		return (uint32_t)rnd(s) & 0x1fffff;
	default: {
		uint32_t m = M_STATE;

		for (int i = below(s, 5); i > 0; i--)
			m |= 1u << below(s, 21);
		return m & ~(chance(s, 80) ? M_AV | M_ALT_PATH : 0);
	}
	}
}

static int op_modify_qp(uint64_t *s, struct ctx *c)
{
	struct ib_uverbs_modify_qp m;
	uint32_t qp = pick(s, c, c->qp, c->nqp);

	if (chance(s, 40)) {
		/* The legal ladder, values mostly valid. */
		static const uint32_t masks[] = {
			M_STATE,
			M_STATE | M_PKEY | M_PORT | M_ACCESS,
			M_STATE | M_PATH_MTU | M_DEST_QPN | M_RQ_PSN |
				M_MAX_DEST_RD | M_MIN_RNR,
			M_STATE | M_TIMEOUT | M_RETRY | M_RNR_RETRY |
				M_SQ_PSN | M_MAX_RD,
			M_STATE, M_STATE, M_STATE,
		};
		int step = below(s, 7);

		raw_qp_attr_defaults(&m, qp, edgy32(s) & 0xffffff);
		m.attr_mask = masks[step];
		m.qp_state = step < 4 ? step : (step == 4 ? S_SQD :
						step == 5 ? S_ERR : S_RESET);
		if (chance(s, 20))
			m.timeout = edgy32(s);
	} else {
		uint8_t *p = (uint8_t *)&m;

		for (size_t i = 0; i < sizeof(m); i++)
			p[i] = rnd(s);
		m.qp_handle = qp;
		m.attr_mask = some_mask(s);
		if (chance(s, 70))
			m.qp_state = below(s, 8);
		if (chance(s, 70))
			m.port_num = 1;
		if (chance(s, 80))
			m.qkey &= 0x7fffffff;
		/*
		 * ib_core logs every PSN above 24 bits (not rate limited):
		 * keep that path, but rare, or the log wraps within seconds.
		 */
		if (chance(s, 98)) {
			m.rq_psn &= 0xffffff;
			m.sq_psn &= 0xffffff;
		}
	}
	return raw_modify_qp_cmd(c->fd, &m);
}

static int op_reg_mr(uint64_t *s, struct ctx *c)
{
	struct ib_uverbs_reg_mr_resp r;
	uint64_t addr, len;
	uint32_t access;
	int rv;

	some_range(s, &addr, &len);
	access = chance(s, 70) ? (uint32_t)below(s, 16) : edgy32(s);
	if (chance(s, 20))
		access |= IB_UVERBS_ACCESS_ON_DEMAND;
	rv = raw_reg_mr(c->fd, pick(s, c, c->pd, c->npd), addr, len, access,
			&r);
	if (!rv)
		keep(s, c, c->mr, &c->nmr, r.mr_handle);
	return rv;
}

/* ALLOC_MW: types 1 and 2 mostly, driver data now and then. */
static int op_alloc_mw(uint64_t *s, struct ctx *c)
{
	struct ib_uverbs_alloc_mw_resp r;
	uint64_t drv = chance(s, 50) ? 0 : rnd(s);
	uint8_t type = chance(s, 90) ? 1 + below(s, 2) : (uint8_t)rnd(s);
	int rv;

	rv = raw_alloc_mw_drv(c->fd, pick(s, c, c->pd, c->npd), type,
			      chance(s, 10) ? &drv : NULL, &r);
	if (!rv)
		keep(s, c, c->mw, &c->nmw, r.mw_handle);
	return rv;
}

static int op_driver_method(uint64_t *s, struct ctx *c)
{
	uint32_t h;
	int rv = 0, efd, n;

	switch (below(s, 6)) {
	case 5:
		/* Arm (any mask, any limit) and fire an SRQ's limit. */
		h = pick(s, c, c->srq, c->nsrq);
		if (chance(s, 70))
			raw_modify_srq(c->fd, h,
				       chance(s, 80) ? 2 : (uint32_t)rnd(s),
				       below(s, 70000), chance(s, 80) ?
				       below(s, 64) : edgy32(s));
		n = chance(s, 20) ? 1 + below(s, 200) : 1;
		for (int i = 0; i < n; i++)
			rv = raw_srq_limit(c->fd, h);
		return rv;
	case 0:
		h = pick(s, c, c->cq, c->ncq);
		n = chance(s, 20) ? 1 + below(s, 2000) : 1;
		for (int i = 0; i < n; i++)
			rv = raw_cq_notify(c->fd, h);
		return rv;
	case 1:
		return raw_cq_error(c->fd, pick(s, c, c->cq, c->ncq));
	case 2:
		return raw_qp_event(c->fd, pick(s, c, c->qp, c->nqp),
				    chance(s, 80) ? below(s, 5) : edgy32(s),
				    chance(s, 80) ? below(s, 4) : edgy32(s));
	case 3:
		if (chance(s, 50)) {
			efd = eventfd(0, EFD_CLOEXEC);
			rv = raw_ctx_fatal_fd(c->fd, efd);
			close(efd);
			return rv;
		}
		return raw_ctx_fatal_fd(c->fd, some_fd(s, c));
	default:
		/* A channel to hand to later CQs. */
		pthread_mutex_lock(&c->lock);
		if (c->nchan < 4 && !raw_comp_channel(c->fd, &efd))
			c->chan[c->nchan++] = efd;
		pthread_mutex_unlock(&c->lock);
		return 0;
	}
}

/* An ioctl with random attributes, aimed at our methods mostly. */
static int op_garbage_ioctl(uint64_t *s, struct ctx *c)
{
	static const uint16_t objects[] = { UVERBS_OBJECT_CQ, UVERBS_OBJECT_QP,
					    UVERBS_OBJECT_DEVICE,
					    UVERBS_OBJECT_SRQ };
	struct {
		struct ib_uverbs_ioctl_hdr hdr;
		struct ib_uverbs_attr a[10];
	} io;
	unsigned int n = below(s, 9);
	char *scr = W->scratch + below(s, SCRATCH / 2);

	memset(&io, 0, sizeof(io));
	io.hdr.object_id = chance(s, 90) ? objects[below(s, 4)] : rnd(s);
	io.hdr.method_id = chance(s, 80) ? OMX_UVERBS_ID_NS + below(s, 3) :
					   (chance(s, 50) ? below(s, 4) : rnd(s));
	/*
	 * Not UVERBS_METHOD_GET_CONTEXT: when it fails (the context exists)
	 * ib_uverbs frees the new ucontext without rdma_restrack_put() and
	 * leaks a reference on the calling task (6.1 and 6.12), which would
	 * drown our own leak checks (docs/kmod.md, "core issues").
	 */
	if (io.hdr.object_id == UVERBS_OBJECT_DEVICE &&
	    io.hdr.method_id == UVERBS_METHOD_GET_CONTEXT)
		io.hdr.method_id = UVERBS_METHOD_INFO_HANDLES;
	io.hdr.num_attrs = n;
	io.hdr.length = sizeof(io.hdr) + n * sizeof(io.a[0]);
	if (chance(s, 5))
		io.hdr.length = rnd(s);
	io.hdr.driver_id = chance(s, 95) ? OMX_DRIVER_ID : rnd(s);
	if (chance(s, 5))
		io.hdr.reserved1 = rnd(s);
	for (unsigned int i = 0; i < n; i++) {
		struct ib_uverbs_attr *a = &io.a[i];

		a->attr_id = chance(s, 70) ? OMX_UVERBS_ID_NS + below(s, 3) :
					     (chance(s, 50) ? below(s, 12) : rnd(s));
		a->len = chance(s, 60) ? 4u << below(s, 2) : rnd(s) & 0xfff;
		a->flags = chance(s, 80) ? below(s, 4) : rnd(s);
		if (chance(s, 5))
			a->attr_data.reserved = rnd(s);
		switch (below(s, 6)) {
		case 0:
			a->data = pick(s, c, c->cq, c->ncq);
			break;
		case 1:
			a->data = pick(s, c, c->qp, c->nqp);
			break;
		case 5:
			a->data = pick(s, c, c->srq, c->nsrq);
			break;
		case 2:
			a->data = (uintptr_t)scr;	/* a pointer to junk */
			break;
		case 3:
			a->data = some_fd(s, c);
			break;
		default:
			a->data = chance(s, 50) ? edgy32(s) :
				  0xdead000000000000ULL + (rnd(s) & 0xffff);
		}
	}
	if (ioctl(c->fd, RDMA_VERBS_IOCTL, &io))
		return -errno;
	return 0;
}

/* A write command with a random body and driver data. */
static int op_garbage_write(uint64_t *s, struct ctx *c)
{
	static const uint32_t cmds[] = {
		IB_USER_VERBS_CMD_QUERY_DEVICE, IB_USER_VERBS_CMD_QUERY_PORT,
		IB_USER_VERBS_CMD_ALLOC_PD, IB_USER_VERBS_CMD_DEALLOC_PD,
		IB_USER_VERBS_CMD_REG_MR, IB_USER_VERBS_CMD_DEREG_MR,
		IB_USER_VERBS_CMD_CREATE_COMP_CHANNEL,
		IB_USER_VERBS_CMD_CREATE_CQ, IB_USER_VERBS_CMD_DESTROY_CQ,
		IB_USER_VERBS_CMD_CREATE_QP, IB_USER_VERBS_CMD_QUERY_QP,
		IB_USER_VERBS_CMD_MODIFY_QP, IB_USER_VERBS_CMD_DESTROY_QP,
		IB_USER_VERBS_CMD_GET_CONTEXT,
		IB_USER_VERBS_CMD_CREATE_SRQ, IB_USER_VERBS_CMD_CREATE_XSRQ,
		IB_USER_VERBS_CMD_MODIFY_SRQ, IB_USER_VERBS_CMD_QUERY_SRQ,
		IB_USER_VERBS_CMD_DESTROY_SRQ,
		IB_USER_VERBS_CMD_ATTACH_MCAST, IB_USER_VERBS_CMD_DETACH_MCAST,
		IB_USER_VERBS_CMD_ALLOC_MW, IB_USER_VERBS_CMD_DEALLOC_MW,
	};
	uint32_t words[256];
	struct ib_uverbs_cmd_hdr *h = (void *)words;
	bool ex = chance(s, 20);
	unsigned int len = 4 * (2 + below(s, 60));
	uint64_t resp;
	ssize_t r;

	for (unsigned int i = 0; i < 256; i++)
		words[i] = chance(s, 50) ? (uint32_t)rnd(s) : below(s, 8);
	switch (below(s, 4)) {
	case 0:
		resp = 0;
		break;
	case 1:
		resp = 0xdead000000000000ULL;
		break;
	default:
		resp = (uintptr_t)W->scratch + below(s, 4096);
	}
	h->command = cmds[below(s, sizeof(cmds) / sizeof(cmds[0]))] |
		     (ex ? IB_USER_VERBS_CMD_FLAG_EXTENDED : 0);
	h->in_words = chance(s, 80) ? len / 4 : rnd(s);
	h->out_words = below(s, 64);
	/*
	 * The response pointer (the first field of the commands that have
	 * one, and of the extended header): ours, NULL or unmapped, never
	 * random, so the kernel cannot write into our own memory.
	 */
	memcpy(&words[2], &resp, sizeof(resp));
	if (chance(s, 70)) /* a handle that exists, where one may be */
		words[4 + below(s, 4)] = chance(s, 75) ?
					 pick(s, c, c->qp, c->nqp) :
					 pick(s, c, c->srq, c->nsrq);
	r = write(c->fd, words, len);
	return r < 0 ? -errno : 0;
}

static int op_destroy(uint64_t *s, struct ctx *c)
{
	uint32_t h;
	int rv;

	switch (below(s, 6)) {
	case 5:
		h = pick(s, c, c->mw, c->nmw);
		rv = raw_dealloc_mw(c->fd, h);
		if (!rv)
			forget(c, c->mw, &c->nmw, h);
		return rv;
	case 4:
		h = pick(s, c, c->srq, c->nsrq);
		rv = chance(s, 50) ? raw_destroy_srq(c->fd, h) :
				     raw_destroy_srq_ioctl(c->fd, h);
		if (!rv)
			forget(c, c->srq, &c->nsrq, h);
		return rv;
	case 0:
		h = pick(s, c, c->pd, c->npd);
		rv = raw_dealloc_pd(c->fd, h);
		if (!rv)
			forget(c, c->pd, &c->npd, h);
		return rv;
	case 1:
		h = pick(s, c, c->cq, c->ncq);
		rv = raw_destroy_cq(c->fd, h, NULL);
		if (!rv)
			forget(c, c->cq, &c->ncq, h);
		return rv;
	case 2:
		h = pick(s, c, c->qp, c->nqp);
		rv = raw_destroy_qp(c->fd, h);
		if (!rv)
			forget(c, c->qp, &c->nqp, h);
		return rv;
	default:
		h = pick(s, c, c->mr, c->nmr);
		rv = raw_dereg_mr(c->fd, h);
		if (!rv)
			forget(c, c->mr, &c->nmr, h);
		return rv;
	}
}

/*
 * ATTACH_MCAST / DETACH_MCAST on a QP handle that exists (mostly): a GID
 * from a few multicast groups (two share a MAC), else random bytes, and
 * a random LID, so attachments pile up against the module's limits and
 * are left for close and kill to clean.
 */
static int op_mcast(uint64_t *s, struct ctx *c)
{
	struct {
		struct ib_uverbs_cmd_hdr hdr;
		struct ib_uverbs_attach_mcast cmd;
	} m = { 0 };
	unsigned int i;

	if (chance(s, 80)) {
		m.cmd.gid[0] = 0xff;
		m.cmd.gid[1] = chance(s, 50) ? 0x0e : 0x02;
		m.cmd.gid[12] = 0x0f;	/* MAC 33:33:0f:fe:00:0x */
		m.cmd.gid[13] = 0xfe;
		m.cmd.gid[15] = below(s, 4);
	} else {
		for (i = 0; i < sizeof(m.cmd.gid); i++)
			m.cmd.gid[i] = rnd(s);
	}
	m.cmd.qp_handle = chance(s, 90) ? pick(s, c, c->qp, c->nqp) :
					  (uint32_t)rnd(s);
	m.cmd.mlid = chance(s, 80) ? 0 : rnd(s);
	return raw_write(c->fd, chance(s, 60) ? IB_USER_VERBS_CMD_ATTACH_MCAST :
				IB_USER_VERBS_CMD_DETACH_MCAST,
			 &m, sizeof(m), 0);
}

static int one_op(uint64_t *s)
{
	struct ctx *c = &W->ctx[below(s, NCTX)];
	struct ib_uverbs_query_qp_resp q;
	uint32_t h;
	int rv;

	if (c->fd < 0 || below(s, 500) == 0) {
		ctx_open(s, c);
		return 0;
	}
	switch (below(s, 24)) {
	case 0: case 1:
		rv = raw_alloc_pd(c->fd, &h);
		if (!rv)
			keep(s, c, c->pd, &c->npd, h);
		return rv;
	case 2: case 3:
		return op_create_cq(s, c);
	case 4: case 5:
		return op_create_qp(s, c);
	case 6: case 7: case 8:
		return op_modify_qp(s, c);
	case 9:
		return raw_query_qp(c->fd, pick(s, c, c->qp, c->nqp), &q);
	case 10: case 11:
		return op_reg_mr(s, c);
	case 12: case 13: case 14:
		return op_driver_method(s, c);
	case 15:
		return op_garbage_ioctl(s, c);
	case 16:
		return op_garbage_write(s, c);
	case 17:
		churn_buffer(s);
		return 0;
	case 18:
		return op_create_srq(s, c);
	case 21: case 22:
		return op_mcast(s, c);
	case 23:
		return op_alloc_mw(s, c);
	default:
		return op_destroy(s, c);
	}
}

struct thread_arg {
	uint64_t seed;
	long ops;
};

static void *thread_main(void *p)
{
	struct thread_arg *t = p;
	uint64_t s = t->seed | 1;

	for (long i = 0; i < t->ops && !atomic_load(&st->stop); i++) {
		int rv = one_op(&s);

		atomic_fetch_add(&st->ops, 1);
		atomic_fetch_add(rv ? &st->fail : &st->ok, 1);
	}
	return NULL;
}

static void worker_main(uint64_t seed, int nthreads)
{
	struct thread_arg ta[MAX_THREADS];
	pthread_t th[MAX_THREADS];
	uint64_t s = seed | 1;
	int i;

	/* Half of the workers run as one of three other users. */
	if (!geteuid() && chance(&s, 50)) {
		uid_t uid = 40000 + below(&s, 3);

		if (setresgid(uid, uid, uid) || setresuid(uid, uid, uid))
			_exit(3);
	}

	W = calloc(1, sizeof(*W));
	W->scratch = mmap(NULL, SCRATCH, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	pthread_mutex_init(&W->buf_lock, NULL);
	for (i = 0; i < NBUF; i++)
		churn_buffer(&s);
	for (i = 0; i < NCTX; i++) {
		pthread_mutex_init(&W->ctx[i].lock, NULL);
		W->ctx[i].fd = -1;
		ctx_open(&s, &W->ctx[i]);
	}
	for (i = 0; i < nthreads; i++) {
		ta[i].seed = mix(seed + 1 + i);
		ta[i].ops = 100 + below(&s, 4000);
		pthread_create(&th[i], NULL, thread_main, &ta[i]);
	}
	for (i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	/* Exit with everything open: the kernel cleans up. */
	_exit(0);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	int nprocs = 3, nthreads = 4, opt, i, status;
	pid_t pids[MAX_PROCS] = { 0 }, pid;
	bool kill_sent[MAX_PROCS] = { false };
	uint64_t seed = 0, s, n = 0;
	double secs = 60, end, t0;
	bool have_seed = false;

	while ((opt = getopt(argc, argv, "d:s:t:p:j:")) != -1) {
		switch (opt) {
		case 'd':
			snprintf(ibdev, sizeof(ibdev), "%s", optarg);
			break;
		case 's':
			seed = strtoull(optarg, NULL, 0);
			have_seed = true;
			break;
		case 't':
			secs = atof(optarg);
			break;
		case 'p':
			nprocs = atoi(optarg);
			break;
		case 'j':
			nthreads = atoi(optarg);
			break;
		default:
			fprintf(stderr, "usage: %s -d IBDEV [-s SEED] [-t SECONDS] [-p PROCS] [-j THREADS]\n",
				argv[0]);
			return 2;
		}
	}
	if (!ibdev[0] || nprocs < 1 || nprocs > MAX_PROCS || nthreads < 1 ||
	    nthreads > MAX_THREADS) {
		fprintf(stderr, "bad arguments\n");
		return 2;
	}
	if (!have_seed)
		seed = mix((uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32));
	printf("omx_kfuzz: seed 0x%016llx, %.0f s, %d processes x %d threads on %s\n",
	       (unsigned long long)seed, secs, nprocs, nthreads, ibdev);
	fflush(stdout);
	st = mmap(NULL, sizeof(*st), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (st == MAP_FAILED)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	s = seed | 1;
	t0 = now();
	end = t0 + secs;

	while (now() < end) {
		for (i = 0; i < nprocs; i++) {
			if (pids[i])
				continue;
			pid = fork();
			if (!pid)
				worker_main(mix(seed ^ (n + 1)), nthreads);
			if (pid > 0) {
				pids[i] = pid;
				kill_sent[i] = false;
				n++;
				atomic_fetch_add(&st->workers, 1);
			}
		}
		usleep(20000 + below(&s, 200000));
		i = below(&s, nprocs);
		if (pids[i] && chance(&s, 40)) {
			kill(pids[i], SIGKILL);
			kill_sent[i] = true;
		}
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
			for (i = 0; i < nprocs; i++) {
				if (pids[i] != pid)
					continue;
				if (WIFSIGNALED(status) && kill_sent[i])
					atomic_fetch_add(&st->killed, 1);
				else if (WIFEXITED(status) && !WEXITSTATUS(status))
					atomic_fetch_add(&st->finished, 1);
				else {
					atomic_fetch_add(&st->crashed, 1);
					printf("worker %d crashed: status 0x%x\n",
					       pid, status);
				}
				pids[i] = 0;
			}
		}
	}
	atomic_store(&st->stop, 1);
	for (i = 0; i < nprocs; i++)
		if (pids[i])
			kill(pids[i], SIGKILL);
	while (wait(NULL) > 0)
		;
	printf("omx_kfuzz: seed 0x%016llx: %lu operations (%lu ok, %lu failed) in %.0f s, %lu workers (%lu killed, %lu finished, %lu crashed), %lu opens (%lu failed)\n",
	       (unsigned long long)seed, atomic_load(&st->ops),
	       atomic_load(&st->ok), atomic_load(&st->fail), now() - t0,
	       atomic_load(&st->workers), atomic_load(&st->killed),
	       atomic_load(&st->finished), atomic_load(&st->crashed),
	       atomic_load(&st->opens), atomic_load(&st->open_fail));
	return atomic_load(&st->crashed) ? 1 : 0;
}
