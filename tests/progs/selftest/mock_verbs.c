// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * mock_verbs: just enough of libibverbs, LD_PRELOADed, to run two
 * omx_target processes on a host without any RDMA device (see
 * omx_target-selftest.sh).  Devices "mock0", "omx0" and "omx1", all
 * alike; a QP's number is its process id, so after connecting, a QP
 * knows its peer's pid and RDMA WRITE/READ move bytes with
 * process_vm_writev/readv, in 1 KiB steps 200 us apart like a slow wire
 * (a fault is IBV_WC_REM_ACCESS_ERR).  The
 * mock checks no key, no access right and no deregistration: it is the
 * careless peer that omx_target's canary and after-dereg checks must
 * catch.  SEND completes without delivering; receives never complete;
 * no completion or async event is ever signalled on a file descriptor.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>
#include <infiniband/verbs.h>

#define MAX_WC 256

struct mock_cq {
	struct ibv_cq cq;
	struct ibv_wc wc[MAX_WC];
	unsigned int head, tail;
};

/* mock0, and the names omx-hostile.sh's helpers open (for dry runs of
 * its omx_target cases on a host). */
static struct ibv_device devs[3] = {
	{ .name = "mock0" }, { .name = "omx0" }, { .name = "omx1" },
};
static struct ibv_device *list[4] = { &devs[0], &devs[1], &devs[2], NULL };
static uint32_t next_key = 0x100;

struct ibv_device **ibv_get_device_list(int *n)
{
	if (n)
		*n = 3;
	return list;
}

void ibv_free_device_list(struct ibv_device **l)
{
	(void)l;
}

const char *ibv_get_device_name(struct ibv_device *d)
{
	return d->name;
}

static void push_wc(struct ibv_cq *cq, uint64_t id, enum ibv_wc_opcode op,
		    enum ibv_wc_status st, uint32_t len, uint32_t qpn)
{
	struct mock_cq *m = (struct mock_cq *)cq;

	if (m->tail - m->head == MAX_WC)
		return;
	m->wc[m->tail++ % MAX_WC] = (struct ibv_wc){
		.wr_id = id, .status = st, .opcode = op, .byte_len = len,
		.qp_num = qpn,
	};
}

static int poll_cq(struct ibv_cq *cq, int n, struct ibv_wc *wc)
{
	struct mock_cq *m = (struct mock_cq *)cq;
	int i = 0;

	while (i < n && m->head != m->tail)
		wc[i++] = m->wc[m->head++ % MAX_WC];
	return i;
}

static int req_notify_cq(struct ibv_cq *cq, int solicited)
{
	(void)cq;
	(void)solicited;
	return 0;
}

/* Moves len bytes between us and the peer process, 1 KiB at a time. */
static int move(pid_t peer, void *local, uint64_t remote, size_t len, int write)
{
	size_t off;

	for (off = 0; off < len; off += 1024) {
		size_t n = len - off < 1024 ? len - off : 1024;
		struct iovec l = { (char *)local + off, n };
		struct iovec r = { (void *)(uintptr_t)(remote + off), n };
		ssize_t got = write ? process_vm_writev(peer, &l, 1, &r, 1, 0) :
				      process_vm_readv(peer, &l, 1, &r, 1, 0);

		if (got != (ssize_t)n)
			return -1;
		usleep(200);
	}
	return 0;
}

static int post_send(struct ibv_qp *qp, struct ibv_send_wr *wr,
		     struct ibv_send_wr **bad)
{
	pid_t peer = (pid_t)(uintptr_t)qp->qp_context;

	for (; wr; wr = wr->next) {
		void *buf = (void *)(uintptr_t)wr->sg_list[0].addr;
		uint32_t len = wr->sg_list[0].length;
		enum ibv_wc_status st = IBV_WC_SUCCESS;
		enum ibv_wc_opcode op = IBV_WC_SEND;

		if (wr->opcode == IBV_WR_RDMA_WRITE ||
		    wr->opcode == IBV_WR_RDMA_READ) {
			int w = wr->opcode == IBV_WR_RDMA_WRITE;

			op = w ? IBV_WC_RDMA_WRITE : IBV_WC_RDMA_READ;
			if (move(peer, buf, wr->wr.rdma.remote_addr, len, w))
				st = IBV_WC_REM_ACCESS_ERR;
		} else if (wr->opcode != IBV_WR_SEND) {
			*bad = wr;
			return EINVAL;
		}
		push_wc(qp->send_cq, wr->wr_id, op, st, len, qp->qp_num);
	}
	return 0;
}

static int post_recv(struct ibv_qp *qp, struct ibv_recv_wr *wr,
		     struct ibv_recv_wr **bad)
{
	(void)qp;
	(void)wr;
	(void)bad;
	return 0;
}

struct ibv_context *ibv_open_device(struct ibv_device *d)
{
	struct ibv_context *c = calloc(1, sizeof(struct verbs_context));
	int p[2];

	if (!c || pipe(p))
		return NULL;
	c->device = d;
	c->async_fd = p[0];
	c->cmd_fd = p[1];
	c->ops.poll_cq = poll_cq;
	c->ops.req_notify_cq = req_notify_cq;
	c->ops.post_send = post_send;
	c->ops.post_recv = post_recv;
	return c;
}

int ibv_close_device(struct ibv_context *c)
{
	close(c->async_fd);
	close(c->cmd_fd);
	free(c);
	return 0;
}

int ibv_query_gid(struct ibv_context *c, uint8_t port, int index,
		  union ibv_gid *gid)
{
	(void)c;
	(void)port;
	memset(gid, 0, sizeof(*gid));
	gid->raw[15] = (uint8_t)index;
	return 0;
}

struct ibv_pd *ibv_alloc_pd(struct ibv_context *c)
{
	struct ibv_pd *pd = calloc(1, sizeof(*pd));

	if (pd)
		pd->context = c;
	return pd;
}

int ibv_dealloc_pd(struct ibv_pd *pd)
{
	free(pd);
	return 0;
}

struct ibv_comp_channel *ibv_create_comp_channel(struct ibv_context *c)
{
	struct ibv_comp_channel *ch = calloc(1, sizeof(*ch));
	int p[2];

	if (!ch || pipe(p))
		return NULL;
	/* The write end stays open (and unused): never readable. */
	ch->context = c;
	ch->fd = p[0];
	return ch;
}

int ibv_destroy_comp_channel(struct ibv_comp_channel *ch)
{
	free(ch);
	return 0;
}

struct ibv_cq *ibv_create_cq(struct ibv_context *c, int cqe, void *cq_ctx,
			     struct ibv_comp_channel *ch, int vector)
{
	struct mock_cq *m = calloc(1, sizeof(*m));

	(void)vector;
	if (!m)
		return NULL;
	m->cq.context = c;
	m->cq.channel = ch;
	m->cq.cq_context = cq_ctx;
	m->cq.cqe = cqe;
	return &m->cq;
}

int ibv_destroy_cq(struct ibv_cq *cq)
{
	free(cq);
	return 0;
}

int ibv_get_cq_event(struct ibv_comp_channel *ch, struct ibv_cq **cq,
		     void **cq_ctx)
{
	(void)ch;
	(void)cq;
	(void)cq_ctx;
	errno = EAGAIN;
	return -1;
}

void ibv_ack_cq_events(struct ibv_cq *cq, unsigned int n)
{
	(void)cq;
	(void)n;
}

int ibv_get_async_event(struct ibv_context *c, struct ibv_async_event *ev)
{
	(void)c;
	(void)ev;
	errno = EAGAIN;
	return -1;
}

void ibv_ack_async_event(struct ibv_async_event *ev)
{
	(void)ev;
}

static struct ibv_mr *reg(struct ibv_pd *pd, void *addr, size_t len)
{
	struct ibv_mr *mr = calloc(1, sizeof(*mr));

	if (!mr)
		return NULL;
	mr->context = pd->context;
	mr->pd = pd;
	mr->addr = addr;
	mr->length = len;
	mr->lkey = mr->rkey = next_key++ << 8 | 0x11;
	return mr;
}

#undef ibv_reg_mr
struct ibv_mr *ibv_reg_mr(struct ibv_pd *pd, void *addr, size_t len,
			  int access)
{
	(void)access;
	return reg(pd, addr, len);
}

struct ibv_mr *ibv_reg_mr_iova2(struct ibv_pd *pd, void *addr, size_t len,
				uint64_t iova, unsigned int access)
{
	(void)iova;
	(void)access;
	return reg(pd, addr, len);
}

int ibv_dereg_mr(struct ibv_mr *mr)
{
	free(mr);
	return 0;
}

struct ibv_qp *ibv_create_qp(struct ibv_pd *pd, struct ibv_qp_init_attr *a)
{
	struct ibv_qp *qp = calloc(1, sizeof(*qp));

	if (!qp)
		return NULL;
	qp->context = pd->context;
	qp->pd = pd;
	qp->send_cq = a->send_cq;
	qp->recv_cq = a->recv_cq;
	qp->qp_type = a->qp_type;
	qp->qp_num = (uint32_t)getpid() & 0xffffff;
	qp->state = IBV_QPS_RESET;
	return qp;
}

int ibv_modify_qp(struct ibv_qp *qp, struct ibv_qp_attr *a, int mask)
{
	if (mask & IBV_QP_DEST_QPN)
		qp->qp_context = (void *)(uintptr_t)a->dest_qp_num;
	if (mask & IBV_QP_STATE)
		qp->state = a->qp_state;
	return 0;
}

int ibv_query_qp(struct ibv_qp *qp, struct ibv_qp_attr *a, int mask,
		 struct ibv_qp_init_attr *ia)
{
	(void)mask;
	(void)ia;
	a->qp_state = qp->state;
	return 0;
}

int ibv_destroy_qp(struct ibv_qp *qp)
{
	free(qp);
	return 0;
}
