/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * omx_raw.h: raw uverbs commands for the kernel-only test programs
 * (omx_uverbs_smoke, omx_cq_flood, omx_ulimits, omx_kfuzz,
 * tests/progs/omx_modify_table).  No libibverbs, no provider: legacy
 * write() commands on the uverbs file, the CREATE_CQ ioctl (a CQ with a
 * completion channel needs it) and rdma_omx's driver methods.
 *
 * Every function takes the uverbs file descriptor and returns 0 or -errno.
 * Include after the libc headers; needs -I kmod-shim/include/uapi.
 */
#ifndef OMX_RAW_H
#define OMX_RAW_H

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <rdma/ib_user_verbs.h>
#include <rdma/ib_user_ioctl_cmds.h>
#include <rdma/rdma_user_ioctl.h>
#include <rdma/ib_user_ioctl_verbs.h>

#include "rdma_omx_abi.h"

/*
 * The uverbs character device of the RDMA device @ibdev, written to @out
 * ("/dev/infiniband/uverbsN"); NULL if there is none.
 */
static inline const char *raw_uverbs_path(const char *ibdev, char *out,
					  size_t len)
{
	DIR *d = opendir("/sys/class/infiniband_verbs");
	const char *found = NULL;
	char p[300], name[64];
	struct dirent *e;
	FILE *f;

	while (d && !found && (e = readdir(d))) {
		if (strncmp(e->d_name, "uverbs", 6))
			continue;
		snprintf(p, sizeof(p), "/sys/class/infiniband_verbs/%s/ibdev",
			 e->d_name);
		f = fopen(p, "r");
		if (!f)
			continue;
		if (fgets(name, sizeof(name), f)) {
			name[strcspn(name, "\n")] = 0;
			if (!strcmp(name, ibdev)) {
				snprintf(out, len, "/dev/infiniband/%s",
					 e->d_name);
				found = out;
			}
		}
		fclose(f);
	}
	if (d)
		closedir(d);
	return found;
}

/* IB_QP_* attribute mask bits (kernel enum ib_qp_attr_mask). */
enum {
	M_STATE = 1 << 0, M_CUR_STATE = 1 << 1, M_EN_SQD = 1 << 2,
	M_ACCESS = 1 << 3, M_PKEY = 1 << 4, M_PORT = 1 << 5, M_QKEY = 1 << 6,
	M_AV = 1 << 7, M_PATH_MTU = 1 << 8, M_TIMEOUT = 1 << 9,
	M_RETRY = 1 << 10, M_RNR_RETRY = 1 << 11, M_RQ_PSN = 1 << 12,
	M_MAX_RD = 1 << 13, M_ALT_PATH = 1 << 14, M_MIN_RNR = 1 << 15,
	M_SQ_PSN = 1 << 16, M_MAX_DEST_RD = 1 << 17, M_PATH_MIG = 1 << 18,
	M_CAP = 1 << 19, M_DEST_QPN = 1 << 20,
};

/* enum ib_qp_state */
enum { S_RESET, S_INIT, S_RTR, S_RTS, S_SQD, S_SQE, S_ERR };

/* enum ib_event_type values read from the async event file. */
enum {
	EV_CQ_ERR = 0, EV_QP_FATAL = 1, EV_QP_REQ_ERR = 2,
	EV_QP_ACCESS_ERR = 3, EV_DEVICE_FATAL = 8,
};

/* Legacy write command: buf starts with ib_uverbs_cmd_hdr. */
static inline int raw_write(int fd, uint32_t command, void *buf, size_t len,
			    size_t resplen)
{
	struct ib_uverbs_cmd_hdr *h = buf;

	h->command = command;
	h->in_words = len / 4;
	h->out_words = resplen / 4;
	if (write(fd, buf, len) != (ssize_t)len)
		return -errno;
	return 0;
}

/* One uverbs ioctl with up to 12 attributes. */
static inline int raw_ioctl(int fd, uint16_t object, uint16_t method,
			    struct ib_uverbs_attr *attrs, unsigned int n)
{
	struct {
		struct ib_uverbs_ioctl_hdr hdr;
		struct ib_uverbs_attr attrs[12];
	} io;

	if (n > 12)
		return -E2BIG;
	memset(&io, 0, sizeof(io));
	io.hdr.length = sizeof(io.hdr) + n * sizeof(io.attrs[0]);
	io.hdr.object_id = object;
	io.hdr.method_id = method;
	io.hdr.num_attrs = n;
	io.hdr.driver_id = OMX_DRIVER_ID;
	memcpy(io.attrs, attrs, n * sizeof(io.attrs[0]));
	if (ioctl(fd, RDMA_VERBS_IOCTL, &io))
		return -errno;
	memcpy(attrs, io.attrs, n * sizeof(io.attrs[0]));
	return 0;
}

struct raw_ctx_resp {
	struct ib_uverbs_get_context_resp base;
	struct omx_alloc_ucontext_resp drv;
};

static inline int raw_get_context(int fd, struct raw_ctx_resp *r)
{
	struct {
		struct ib_uverbs_cmd_hdr hdr;
		struct ib_uverbs_get_context cmd;
	} c = { .cmd.response = (uintptr_t)r };

	memset(r, 0, sizeof(*r));
	return raw_write(fd, IB_USER_VERBS_CMD_GET_CONTEXT, &c, sizeof(c),
			 sizeof(*r));
}

static inline int raw_alloc_pd(int fd, uint32_t *pd)
{
	struct ib_uverbs_alloc_pd_resp r = {};
	struct {
		struct ib_uverbs_cmd_hdr hdr;
		struct ib_uverbs_alloc_pd cmd;
	} c = { .cmd.response = (uintptr_t)&r };
	int rv = raw_write(fd, IB_USER_VERBS_CMD_ALLOC_PD, &c, sizeof(c),
			   sizeof(r));

	*pd = r.pd_handle;
	return rv;
}

static inline int raw_dealloc_pd(int fd, uint32_t pd)
{
	struct {
		struct ib_uverbs_cmd_hdr hdr;
		struct ib_uverbs_dealloc_pd cmd;
	} c = { .cmd.pd_handle = pd };

	return raw_write(fd, IB_USER_VERBS_CMD_DEALLOC_PD, &c, sizeof(c), 0);
}

static inline int raw_comp_channel(int fd, int *chan)
{
	struct ib_uverbs_create_comp_channel_resp r = { .fd = (uint32_t)-1 };
	struct {
		struct ib_uverbs_cmd_hdr hdr;
		struct ib_uverbs_create_comp_channel cmd;
	} c = { .cmd.response = (uintptr_t)&r };
	int rv = raw_write(fd, IB_USER_VERBS_CMD_CREATE_COMP_CHANNEL, &c,
			   sizeof(c), sizeof(r));

	*chan = rv ? -1 : (int)r.fd;
	return rv;
}

/* CREATE_CQ through the ioctl (chan < 0: no completion channel). */
static inline int raw_create_cq(int fd, int chan, uint32_t cqe, uint64_t uh,
				uint32_t *cq)
{
	uint32_t resp_cqe = 0;
	struct ib_uverbs_attr a[6] = {
		{ .attr_id = UVERBS_ATTR_CREATE_CQ_HANDLE },
		{ .attr_id = UVERBS_ATTR_CREATE_CQ_CQE, .len = 4,
		  .data = cqe },
		{ .attr_id = UVERBS_ATTR_CREATE_CQ_USER_HANDLE, .len = 8,
		  .data = uh },
		{ .attr_id = UVERBS_ATTR_CREATE_CQ_COMP_VECTOR, .len = 4 },
		{ .attr_id = UVERBS_ATTR_CREATE_CQ_RESP_CQE, .len = 4,
		  .data = (uintptr_t)&resp_cqe },
		{ .attr_id = UVERBS_ATTR_CREATE_CQ_COMP_CHANNEL,
		  .data = (uint64_t)(int64_t)chan },
	};
	int rv = raw_ioctl(fd, UVERBS_OBJECT_CQ, UVERBS_METHOD_CQ_CREATE, a,
			   chan >= 0 ? 6 : 5);

	*cq = rv ? 0 : (uint32_t)a[0].data;
	return rv;
}

/* CREATE_CQ through the legacy write command (chan -1: none). */
static inline int raw_create_cq_write(int fd, int chan, uint32_t cqe,
				      uint64_t uh, uint32_t *cq)
{
	struct ib_uverbs_create_cq_resp r = {};
	struct {
		struct ib_uverbs_cmd_hdr hdr;
		struct ib_uverbs_create_cq cmd;
	} c = { .cmd = { .response = (uintptr_t)&r, .user_handle = uh,
			 .cqe = cqe, .comp_channel = chan } };
	int rv = raw_write(fd, IB_USER_VERBS_CMD_CREATE_CQ, &c, sizeof(c),
			   sizeof(r));

	*cq = r.cq_handle;
	return rv;
}

static inline int raw_destroy_cq(int fd, uint32_t cq, uint32_t *events)
{
	struct ib_uverbs_destroy_cq_resp r = {};
	struct {
		struct ib_uverbs_cmd_hdr hdr;
		struct ib_uverbs_destroy_cq cmd;
	} c = { .cmd = { .response = (uintptr_t)&r, .cq_handle = cq } };
	int rv = raw_write(fd, IB_USER_VERBS_CMD_DESTROY_CQ, &c, sizeof(c),
			   sizeof(r));

	if (events)
		*events = r.comp_events_reported;
	return rv;
}

static inline int raw_create_qp(int fd, uint32_t pd, uint32_t scq,
				uint32_t rcq, uint8_t type, uint32_t wr,
				struct ib_uverbs_create_qp_resp *r)
{
	struct {
		struct ib_uverbs_cmd_hdr hdr;
		struct ib_uverbs_create_qp cmd;
	} c = { .cmd = { .response = (uintptr_t)r, .user_handle = 7,
			 .pd_handle = pd, .send_cq_handle = scq,
			 .recv_cq_handle = rcq, .max_send_wr = wr,
			 .max_recv_wr = wr, .max_send_sge = 1,
			 .max_recv_sge = 1, .max_inline_data = 64,
			 .qp_type = type } };

	memset(r, 0, sizeof(*r));
	return raw_write(fd, IB_USER_VERBS_CMD_CREATE_QP, &c, sizeof(c),
			 sizeof(*r));
}

static inline int raw_destroy_qp(int fd, uint32_t qp)
{
	struct ib_uverbs_destroy_qp_resp r = {};
	struct {
		struct ib_uverbs_cmd_hdr hdr;
		struct ib_uverbs_destroy_qp cmd;
	} c = { .cmd = { .response = (uintptr_t)&r, .qp_handle = qp } };

	return raw_write(fd, IB_USER_VERBS_CMD_DESTROY_QP, &c, sizeof(c),
			 sizeof(r));
}

/* CREATE_QP on the SRQ @srq: the receive queue attributes are ignored. */
static inline int raw_create_qp_srq(int fd, uint32_t pd, uint32_t scq,
				    uint32_t rcq, uint8_t type, uint32_t srq,
				    uint32_t recv_wr,
				    struct ib_uverbs_create_qp_resp *r)
{
	struct {
		struct ib_uverbs_cmd_hdr hdr;
		struct ib_uverbs_create_qp cmd;
	} c = { .cmd = { .response = (uintptr_t)r, .user_handle = 8,
			 .pd_handle = pd, .send_cq_handle = scq,
			 .recv_cq_handle = rcq, .srq_handle = srq,
			 .max_send_wr = 16, .max_recv_wr = recv_wr,
			 .max_send_sge = 1, .max_recv_sge = recv_wr ? 1 : 0,
			 .qp_type = type, .is_srq = 1 } };

	memset(r, 0, sizeof(*r));
	return raw_write(fd, IB_USER_VERBS_CMD_CREATE_QP, &c, sizeof(c),
			 sizeof(*r));
}

/*
 * CREATE_SRQ (a basic SRQ) with @drv_len bytes of driver data from @drv;
 * the granted sizes in *r.
 */
static inline int raw_create_srq_drv(int fd, uint32_t pd, uint32_t max_wr,
				     uint32_t max_sge, uint32_t limit,
				     const void *drv, size_t drv_len,
				     struct ib_uverbs_create_srq_resp *r)
{
	struct {
		struct ib_uverbs_cmd_hdr hdr;
		struct ib_uverbs_create_srq cmd;
		uint8_t drv[64];
	} c = { .cmd = { .response = (uintptr_t)r, .user_handle = 9,
			 .pd_handle = pd, .max_wr = max_wr,
			 .max_sge = max_sge, .srq_limit = limit } };

	if (drv_len > sizeof(c.drv) || drv_len % 4)
		return -E2BIG;
	if (drv_len)
		memcpy(c.drv, drv, drv_len);
	memset(r, 0, sizeof(*r));
	return raw_write(fd, IB_USER_VERBS_CMD_CREATE_SRQ, &c,
			 offsetof(typeof(c), drv) + drv_len, sizeof(*r));
}

static inline int raw_create_srq(int fd, uint32_t pd, uint32_t max_wr,
				 uint32_t max_sge, uint32_t limit,
				 uint32_t *srq)
{
	struct ib_uverbs_create_srq_resp r;
	int rv = raw_create_srq_drv(fd, pd, max_wr, max_sge, limit, NULL, 0,
				    &r);

	*srq = r.srq_handle;
	return rv;
}

/* CREATE_XSRQ: any SRQ type (IB_UVERBS_SRQT_*), with a CQ and an XRCD. */
static inline int raw_create_xsrq(int fd, uint32_t type, uint32_t pd,
				  uint32_t cq, uint32_t xrcd, uint32_t max_wr,
				  struct ib_uverbs_create_srq_resp *r)
{
	struct {
		struct ib_uverbs_cmd_hdr hdr;
		struct ib_uverbs_create_xsrq cmd;
	} c = { .cmd = { .response = (uintptr_t)r, .user_handle = 10,
			 .srq_type = type, .pd_handle = pd, .max_wr = max_wr,
			 .max_sge = 1, .max_num_tags = 4, .xrcd_handle = xrcd,
			 .cq_handle = cq } };

	memset(r, 0, sizeof(*r));
	return raw_write(fd, IB_USER_VERBS_CMD_CREATE_XSRQ, &c, sizeof(c),
			 sizeof(*r));
}

/*
 * SRQ_CREATE through the ioctl: any type; @cq and a number of tags are
 * passed for XRC and tag matching SRQs (which need them), @uhw (NULL:
 * none) as driver input.
 */
static inline int raw_create_srq_ioctl(int fd, uint32_t type, uint32_t pd,
				       uint32_t cq, uint32_t max_wr,
				       uint32_t max_sge, uint32_t limit,
				       const uint64_t *uhw, uint32_t *srq,
				       uint32_t *resp_wr, uint32_t *resp_sge)
{
	struct ib_uverbs_attr a[12] = {
		{ .attr_id = UVERBS_ATTR_CREATE_SRQ_HANDLE },
		{ .attr_id = UVERBS_ATTR_CREATE_SRQ_PD_HANDLE, .data = pd },
		{ .attr_id = UVERBS_ATTR_CREATE_SRQ_TYPE, .len = 8,
		  .data = type },
		{ .attr_id = UVERBS_ATTR_CREATE_SRQ_USER_HANDLE, .len = 8,
		  .data = 11 },
		{ .attr_id = UVERBS_ATTR_CREATE_SRQ_MAX_WR, .len = 4,
		  .data = max_wr },
		{ .attr_id = UVERBS_ATTR_CREATE_SRQ_MAX_SGE, .len = 4,
		  .data = max_sge },
		{ .attr_id = UVERBS_ATTR_CREATE_SRQ_LIMIT, .len = 4,
		  .data = limit },
		{ .attr_id = UVERBS_ATTR_CREATE_SRQ_RESP_MAX_WR, .len = 4,
		  .data = (uintptr_t)resp_wr },
		{ .attr_id = UVERBS_ATTR_CREATE_SRQ_RESP_MAX_SGE, .len = 4,
		  .data = (uintptr_t)resp_sge },
	};
	unsigned int n = 9;
	int rv;

	if (type != IB_UVERBS_SRQT_BASIC) {
		a[n++] = (struct ib_uverbs_attr){
			.attr_id = UVERBS_ATTR_CREATE_SRQ_CQ_HANDLE, .data = cq };
		a[n++] = (struct ib_uverbs_attr){
			.attr_id = UVERBS_ATTR_CREATE_SRQ_MAX_NUM_TAGS, .len = 4,
			.data = 4 };
	}
	if (uhw)
		a[n++] = (struct ib_uverbs_attr){
			.attr_id = UVERBS_ATTR_UHW_IN, .len = 8,
			.data = *uhw };
	rv = raw_ioctl(fd, UVERBS_OBJECT_SRQ, UVERBS_METHOD_SRQ_CREATE, a, n);
	*srq = rv ? 0 : (uint32_t)a[0].data;
	return rv;
}

static inline int raw_destroy_srq_ioctl(int fd, uint32_t srq)
{
	struct ib_uverbs_destroy_srq_resp r = {};
	struct ib_uverbs_attr a[2] = {
		{ .attr_id = UVERBS_ATTR_DESTROY_SRQ_HANDLE, .data = srq },
		{ .attr_id = UVERBS_ATTR_DESTROY_SRQ_RESP, .len = sizeof(r),
		  .data = (uintptr_t)&r },
	};

	return raw_ioctl(fd, UVERBS_OBJECT_SRQ, UVERBS_METHOD_SRQ_DESTROY, a,
			 2);
}

static inline int raw_destroy_srq(int fd, uint32_t srq)
{
	struct ib_uverbs_destroy_srq_resp r = {};
	struct {
		struct ib_uverbs_cmd_hdr hdr;
		struct ib_uverbs_destroy_srq cmd;
	} c = { .cmd = { .response = (uintptr_t)&r, .srq_handle = srq } };

	return raw_write(fd, IB_USER_VERBS_CMD_DESTROY_SRQ, &c, sizeof(c),
			 sizeof(r));
}

/*
 * Valid values for every attribute modify_qp may carry; tests change the
 * mask, and the fields they want to make bad.
 */
static inline void raw_qp_attr_defaults(struct ib_uverbs_modify_qp *m,
					uint32_t qp, uint32_t dqpn)
{
	memset(m, 0, sizeof(*m));
	m->qp_handle = qp;
	m->port_num = 1;
	m->path_mtu = 3;
	m->dest_qp_num = dqpn;
	m->rq_psn = 0x123456;
	m->sq_psn = 0x654321;
	m->qkey = 0x11111111;
	m->qp_access_flags = IB_UVERBS_ACCESS_LOCAL_WRITE |
			     IB_UVERBS_ACCESS_REMOTE_WRITE;
	m->timeout = 14;
	m->retry_cnt = 7;
	m->rnr_retry = 7;
	m->max_rd_atomic = 1;
	m->max_dest_rd_atomic = 1;
	m->min_rnr_timer = 12;
	/* Address vectors: a link-local GID on port 1. */
	m->dest.port_num = 1;
	m->dest.is_global = 1;
	m->dest.hop_limit = 1;
	m->dest.dgid[0] = 0xfe;
	m->dest.dgid[1] = 0x80;
	m->dest.dgid[15] = 1;
	m->alt_dest = m->dest;
	m->alt_port_num = 1;
}

static inline int raw_modify_qp_cmd(int fd, const struct ib_uverbs_modify_qp *m)
{
	struct {
		struct ib_uverbs_cmd_hdr hdr;
		struct ib_uverbs_modify_qp cmd;
	} c = { .cmd = *m };

	return raw_write(fd, IB_USER_VERBS_CMD_MODIFY_QP, &c, sizeof(c), 0);
}

/* modify_qp with the default values, @mask and @state. */
static inline int raw_modify_qp(int fd, uint32_t qp, uint32_t mask,
				uint8_t state, uint32_t dqpn)
{
	struct ib_uverbs_modify_qp m;

	raw_qp_attr_defaults(&m, qp, dqpn);
	m.attr_mask = mask;
	m.qp_state = state;
	return raw_modify_qp_cmd(fd, &m);
}

static inline int raw_query_qp(int fd, uint32_t qp,
			       struct ib_uverbs_query_qp_resp *r)
{
	struct {
		struct ib_uverbs_cmd_hdr hdr;
		struct ib_uverbs_query_qp cmd;
	} c = { .cmd = { .response = (uintptr_t)r, .qp_handle = qp,
			 .attr_mask = 0x1fffff } };

	memset(r, 0, sizeof(*r));
	return raw_write(fd, IB_USER_VERBS_CMD_QUERY_QP, &c, sizeof(c),
			 sizeof(*r));
}

static inline int raw_reg_mr(int fd, uint32_t pd, uint64_t addr, uint64_t len,
			     uint32_t access, struct ib_uverbs_reg_mr_resp *r)
{
	struct {
		struct ib_uverbs_cmd_hdr hdr;
		struct ib_uverbs_reg_mr cmd;
	} c = { .cmd = { .response = (uintptr_t)r, .start = addr,
			 .length = len, .hca_va = addr, .pd_handle = pd,
			 .access_flags = access } };

	memset(r, 0, sizeof(*r));
	return raw_write(fd, IB_USER_VERBS_CMD_REG_MR, &c, sizeof(c),
			 sizeof(*r));
}

static inline int raw_dereg_mr(int fd, uint32_t mr)
{
	struct {
		struct ib_uverbs_cmd_hdr hdr;
		struct ib_uverbs_dereg_mr cmd;
	} c = { .cmd.mr_handle = mr };

	return raw_write(fd, IB_USER_VERBS_CMD_DEREG_MR, &c, sizeof(c), 0);
}

/*
 * ALLOC_MW of @type on @pd; with @drv, 8 bytes of driver data holding it
 * (rdma_omx defines none: only zeros are accepted).
 */
static inline int raw_alloc_mw_drv(int fd, uint32_t pd, uint8_t type,
				   const uint64_t *drv,
				   struct ib_uverbs_alloc_mw_resp *r)
{
	struct {
		struct ib_uverbs_cmd_hdr hdr;
		struct ib_uverbs_alloc_mw cmd;
		uint64_t drv;
	} c = { .cmd = { .response = (uintptr_t)r, .pd_handle = pd,
			 .mw_type = type }, .drv = drv ? *drv : 0 };

	memset(r, 0, sizeof(*r));
	return raw_write(fd, IB_USER_VERBS_CMD_ALLOC_MW, &c,
			 drv ? sizeof(c) : offsetof(typeof(c), drv),
			 sizeof(*r));
}

static inline int raw_alloc_mw(int fd, uint32_t pd, uint8_t type,
			       struct ib_uverbs_alloc_mw_resp *r)
{
	return raw_alloc_mw_drv(fd, pd, type, NULL, r);
}

static inline int raw_dealloc_mw(int fd, uint32_t mw)
{
	struct {
		struct ib_uverbs_cmd_hdr hdr;
		struct ib_uverbs_dealloc_mw cmd;
	} c = { .cmd.mw_handle = mw };

	return raw_write(fd, IB_USER_VERBS_CMD_DEALLOC_MW, &c, sizeof(c), 0);
}

/* rdma_omx driver methods. */
static inline int raw_cq_notify(int fd, uint32_t cq)
{
	struct ib_uverbs_attr a = { .attr_id = OMX_ATTR_CQ_NOTIFY_HANDLE,
				    .flags = UVERBS_ATTR_F_MANDATORY,
				    .data = cq };

	return raw_ioctl(fd, UVERBS_OBJECT_CQ, OMX_METHOD_CQ_NOTIFY, &a, 1);
}

static inline int raw_cq_error(int fd, uint32_t cq)
{
	struct ib_uverbs_attr a = { .attr_id = OMX_ATTR_CQ_ERROR_HANDLE,
				    .flags = UVERBS_ATTR_F_MANDATORY,
				    .data = cq };

	return raw_ioctl(fd, UVERBS_OBJECT_CQ, OMX_METHOD_CQ_ERROR, &a, 1);
}

static inline int raw_qp_event(int fd, uint32_t qp, uint32_t type,
			       uint32_t epoch)
{
	struct ib_uverbs_attr a[3] = {
		{ .attr_id = OMX_ATTR_QP_EVENT_HANDLE,
		  .flags = UVERBS_ATTR_F_MANDATORY, .data = qp },
		{ .attr_id = OMX_ATTR_QP_EVENT_TYPE,
		  .flags = UVERBS_ATTR_F_MANDATORY, .len = 4, .data = type },
		{ .attr_id = OMX_ATTR_QP_EVENT_EPOCH,
		  .flags = UVERBS_ATTR_F_MANDATORY, .len = 4, .data = epoch },
	};

	return raw_ioctl(fd, UVERBS_OBJECT_QP, OMX_METHOD_QP_EVENT, a, 3);
}

static inline int raw_modify_srq(int fd, uint32_t srq, uint32_t mask,
				 uint32_t max_wr, uint32_t limit)
{
	struct {
		struct ib_uverbs_cmd_hdr hdr;
		struct ib_uverbs_modify_srq cmd;
	} c = { .cmd = { .srq_handle = srq, .attr_mask = mask,
			 .max_wr = max_wr, .srq_limit = limit } };

	return raw_write(fd, IB_USER_VERBS_CMD_MODIFY_SRQ, &c, sizeof(c), 0);
}

static inline int raw_srq_limit(int fd, uint32_t srq)
{
	struct ib_uverbs_attr a = { .attr_id = OMX_ATTR_SRQ_LIMIT_HANDLE,
				    .flags = UVERBS_ATTR_F_MANDATORY,
				    .data = srq };

	return raw_ioctl(fd, UVERBS_OBJECT_SRQ, OMX_METHOD_SRQ_LIMIT, &a, 1);
}

static inline int raw_ctx_fatal_fd(int fd, int32_t efd)
{
	struct ib_uverbs_attr a = { .attr_id = OMX_ATTR_CTX_FATAL_FD_FD,
				    .flags = UVERBS_ATTR_F_MANDATORY,
				    .len = 4, .data = (uint32_t)efd };

	return raw_ioctl(fd, UVERBS_OBJECT_DEVICE, OMX_METHOD_CTX_FATAL_FD,
			 &a, 1);
}

/*
 * Completion events readable on @chan: waits up to first_ms for the
 * first, then up to next_ms for each further one.  Counts those whose CQ
 * user handle is @uh (others are counted in *other if given).
 */
static inline int raw_read_comp_events(int chan, int first_ms, int next_ms,
				       uint64_t uh, int *other)
{
	struct ib_uverbs_comp_event_desc ev;
	struct pollfd p = { .fd = chan, .events = POLLIN };
	int n = 0, ms = first_ms;

	while (poll(&p, 1, ms) == 1) {
		if (read(chan, &ev, sizeof(ev)) != sizeof(ev))
			break;
		if (ev.cq_handle == uh)
			n++;
		else if (other)
			(*other)++;
		ms = next_ms;
	}
	return n;
}

/* The next async event within ms, or -1 (type in *type, element in *elem). */
static inline int raw_read_async_event(int afd, int ms, uint32_t *type,
				       uint64_t *elem)
{
	struct ib_uverbs_async_event_desc ev;
	struct pollfd p = { .fd = afd, .events = POLLIN };

	if (poll(&p, 1, ms) != 1)
		return -1;
	if (read(afd, &ev, sizeof(ev)) != sizeof(ev))
		return -1;
	*type = ev.event_type;
	*elem = ev.element;
	return 0;
}

#endif /* OMX_RAW_H */
