// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * omx_uverbs_smoke: drive the rdma_omx kernel module through raw uverbs
 * (write() commands and the driver ioctl), without libibverbs or the
 * provider.  Used by kmod-shim/tests/vm-kmod-*.sh.
 *
 *   omx_uverbs_smoke /dev/infiniband/uverbsN run    all checks, then wait
 *                                                   for a line on stdin,
 *                                                   destroy, exit
 *   omx_uverbs_smoke /dev/infiniband/uverbsN port   print QUERY_DEVICE and
 *                                                   QUERY_PORT, exit
 *   omx_uverbs_smoke /dev/infiniband/uverbsN hold   create objects, print
 *                                                   async events until
 *                                                   DEVICE_FATAL, check EIO
 *
 * Build: gcc -O2 -Wall -pthread -I kmod-shim/include/uapi \
 *            -o omx_uverbs_smoke kmod-shim/tests/omx_uverbs_smoke.c
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <rdma/ib_user_verbs.h>
#include <rdma/ib_user_ioctl_cmds.h>
#include <rdma/rdma_user_ioctl.h>
#include <rdma/ib_user_ioctl_verbs.h>
#include <stdbool.h>

#include "rdma_omx_abi.h"

static int failures;

#define CHECK(cond, ...) do {						\
	if (cond) {							\
		printf("ok   ");					\
	} else {							\
		printf("FAIL ");					\
		failures++;						\
	}								\
	printf(__VA_ARGS__);						\
	printf("\n");							\
	fflush(stdout);							\
} while (0)

static int ufd;

/* Legacy write command: buf starts with ib_uverbs_cmd_hdr. */
static int uv_write(uint32_t command, void *buf, size_t len, size_t resplen)
{
	struct ib_uverbs_cmd_hdr *h = buf;

	h->command = command;
	h->in_words = len / 4;
	h->out_words = resplen / 4;
	if (write(ufd, buf, len) != (ssize_t)len)
		return -errno;
	return 0;
}

struct ctx_resp {
	struct ib_uverbs_get_context_resp base;
	struct omx_alloc_ucontext_resp drv;
};

static struct ctx_resp ctx;

static int get_context(void)
{
	struct {
		struct ib_uverbs_cmd_hdr hdr;
		struct ib_uverbs_get_context cmd;
	} c = { .cmd.response = (uintptr_t)&ctx };

	return uv_write(IB_USER_VERBS_CMD_GET_CONTEXT, &c, sizeof(c),
			sizeof(ctx));
}

static int alloc_pd(uint32_t *pd)
{
	struct ib_uverbs_alloc_pd_resp r = {};
	struct {
		struct ib_uverbs_cmd_hdr hdr;
		struct ib_uverbs_alloc_pd cmd;
	} c = { .cmd.response = (uintptr_t)&r };
	int rv = uv_write(IB_USER_VERBS_CMD_ALLOC_PD, &c, sizeof(c), sizeof(r));

	*pd = r.pd_handle;
	return rv;
}

static int dealloc_pd(uint32_t pd)
{
	struct {
		struct ib_uverbs_cmd_hdr hdr;
		struct ib_uverbs_dealloc_pd cmd;
	} c = { .cmd.pd_handle = pd };

	return uv_write(IB_USER_VERBS_CMD_DEALLOC_PD, &c, sizeof(c), 0);
}

static int comp_channel(int *fd)
{
	struct ib_uverbs_create_comp_channel_resp r = {};
	struct {
		struct ib_uverbs_cmd_hdr hdr;
		struct ib_uverbs_create_comp_channel cmd;
	} c = { .cmd.response = (uintptr_t)&r };
	int rv = uv_write(IB_USER_VERBS_CMD_CREATE_COMP_CHANNEL, &c, sizeof(c),
			  sizeof(r));

	*fd = r.fd;
	return rv;
}

static int create_cq(int chan, uint32_t cqe, uint64_t uh, uint32_t *cq)
{
	struct ib_uverbs_create_cq_resp r = {};
	struct {
		struct ib_uverbs_cmd_hdr hdr;
		struct ib_uverbs_create_cq cmd;
	} c = { .cmd = { .response = (uintptr_t)&r, .user_handle = uh,
			 .cqe = cqe, .comp_channel = chan } };
	int rv = uv_write(IB_USER_VERBS_CMD_CREATE_CQ, &c, sizeof(c), sizeof(r));

	*cq = r.cq_handle;
	return rv;
}

static int destroy_cq(uint32_t cq, uint32_t *events)
{
	struct ib_uverbs_destroy_cq_resp r = {};
	struct {
		struct ib_uverbs_cmd_hdr hdr;
		struct ib_uverbs_destroy_cq cmd;
	} c = { .cmd = { .response = (uintptr_t)&r, .cq_handle = cq } };
	int rv = uv_write(IB_USER_VERBS_CMD_DESTROY_CQ, &c, sizeof(c), sizeof(r));

	*events = r.comp_events_reported;
	return rv;
}

static int create_qp(uint32_t pd, uint32_t cq, uint8_t type, uint32_t wr,
		     struct ib_uverbs_create_qp_resp *r)
{
	struct {
		struct ib_uverbs_cmd_hdr hdr;
		struct ib_uverbs_create_qp cmd;
	} c = { .cmd = { .response = (uintptr_t)r, .user_handle = 7,
			 .pd_handle = pd, .send_cq_handle = cq,
			 .recv_cq_handle = cq, .max_send_wr = wr,
			 .max_recv_wr = wr, .max_send_sge = 1,
			 .max_recv_sge = 1, .max_inline_data = 64,
			 .qp_type = type } };

	memset(r, 0, sizeof(*r));
	return uv_write(IB_USER_VERBS_CMD_CREATE_QP, &c, sizeof(c), sizeof(*r));
}

static int destroy_qp(uint32_t qp)
{
	struct ib_uverbs_destroy_qp_resp r = {};
	struct {
		struct ib_uverbs_cmd_hdr hdr;
		struct ib_uverbs_destroy_qp cmd;
	} c = { .cmd = { .response = (uintptr_t)&r, .qp_handle = qp } };

	return uv_write(IB_USER_VERBS_CMD_DESTROY_QP, &c, sizeof(c), sizeof(r));
}

/* IB_QP_* attribute mask bits (kernel enum ib_qp_attr_mask). */
enum {
	M_STATE = 1 << 0, M_CUR_STATE = 1 << 1, M_ACCESS = 1 << 3,
	M_PKEY = 1 << 4, M_PORT = 1 << 5, M_QKEY = 1 << 6, M_AV = 1 << 7,
	M_PATH_MTU = 1 << 8, M_TIMEOUT = 1 << 9, M_RETRY = 1 << 10,
	M_RNR_RETRY = 1 << 11, M_RQ_PSN = 1 << 12, M_MAX_RD = 1 << 13,
	M_MIN_RNR = 1 << 15, M_SQ_PSN = 1 << 16, M_MAX_DEST_RD = 1 << 17,
	M_DEST_QPN = 1 << 20,
};

static int modify_qp(uint32_t qp, uint32_t mask, uint8_t state,
		     uint32_t dqpn)
{
	struct {
		struct ib_uverbs_cmd_hdr hdr;
		struct ib_uverbs_modify_qp cmd;
	} c = { .cmd = { .qp_handle = qp, .attr_mask = mask,
			 .qp_state = state, .port_num = 1, .path_mtu = 3,
			 .dest_qp_num = dqpn, .rq_psn = 0x123456,
			 .sq_psn = 0x654321, .qkey = 0x11111111,
			 .qp_access_flags = IB_UVERBS_ACCESS_REMOTE_WRITE,
			 .timeout = 14, .retry_cnt = 7, .rnr_retry = 7,
			 .max_rd_atomic = 1, .max_dest_rd_atomic = 1,
			 .min_rnr_timer = 12 } };

	return uv_write(IB_USER_VERBS_CMD_MODIFY_QP, &c, sizeof(c), 0);
}

static int query_qp(uint32_t qp, struct ib_uverbs_query_qp_resp *r)
{
	struct {
		struct ib_uverbs_cmd_hdr hdr;
		struct ib_uverbs_query_qp cmd;
	} c = { .cmd = { .response = (uintptr_t)r, .qp_handle = qp,
			 .attr_mask = 0xffff } };

	return uv_write(IB_USER_VERBS_CMD_QUERY_QP, &c, sizeof(c), sizeof(*r));
}

static int reg_mr(uint32_t pd, void *buf, size_t len, uint32_t access,
		  struct ib_uverbs_reg_mr_resp *r)
{
	struct {
		struct ib_uverbs_cmd_hdr hdr;
		struct ib_uverbs_reg_mr cmd;
	} c = { .cmd = { .response = (uintptr_t)r, .start = (uintptr_t)buf,
			 .length = len, .hca_va = (uintptr_t)buf,
			 .pd_handle = pd, .access_flags = access } };

	memset(r, 0, sizeof(*r));
	return uv_write(IB_USER_VERBS_CMD_REG_MR, &c, sizeof(c), sizeof(*r));
}

static int dereg_mr(uint32_t mr)
{
	struct {
		struct ib_uverbs_cmd_hdr hdr;
		struct ib_uverbs_dereg_mr cmd;
	} c = { .cmd.mr_handle = mr };

	return uv_write(IB_USER_VERBS_CMD_DEREG_MR, &c, sizeof(c), 0);
}

static int cq_notify(uint32_t cq, uint32_t driver_id)
{
	struct {
		struct ib_uverbs_ioctl_hdr hdr;
		struct ib_uverbs_attr attr;
	} io = {
		.hdr = { .length = sizeof(io), .object_id = UVERBS_OBJECT_CQ,
			 .method_id = OMX_METHOD_CQ_NOTIFY, .num_attrs = 1,
			 .driver_id = driver_id },
		.attr = { .attr_id = OMX_ATTR_CQ_NOTIFY_HANDLE,
			  .flags = UVERBS_ATTR_F_MANDATORY, .data = cq },
	};

	if (ioctl(ufd, RDMA_VERBS_IOCTL, &io))
		return -errno;
	return 0;
}

/* Count completion events readable within timeout_ms. */
static int read_comp_events(int chan, int timeout_ms, uint64_t want_uh)
{
	struct ib_uverbs_comp_event_desc ev;
	struct pollfd p = { .fd = chan, .events = POLLIN };
	int n = 0;

	while (poll(&p, 1, timeout_ms) == 1) {
		if (read(chan, &ev, sizeof(ev)) != sizeof(ev))
			break;
		if (ev.cq_handle != want_uh)
			printf("     unexpected cq user handle %llu\n",
			       (unsigned long long)ev.cq_handle);
		n++;
		timeout_ms = 300;
	}
	return n;
}

static int query_port_dev(void)
{
	struct ib_uverbs_query_device_resp d = {};
	struct ib_uverbs_query_port_resp p = {};
	struct {
		struct ib_uverbs_cmd_hdr hdr;
		struct ib_uverbs_query_device cmd;
	} cd = { .cmd.response = (uintptr_t)&d };
	struct {
		struct ib_uverbs_cmd_hdr hdr;
		struct ib_uverbs_query_port cmd;
	} cp = { .cmd = { .response = (uintptr_t)&p, .port_num = 1 } };
	int rv;

	rv = uv_write(IB_USER_VERBS_CMD_QUERY_DEVICE, &cd, sizeof(cd),
		      sizeof(d));
	CHECK(!rv, "QUERY_DEVICE rv=%d", rv);
	printf("DEVICE node_guid=%016llx max_qp=%u max_qp_wr=%u max_sge=%u max_cq=%u max_cqe=%u max_mr=%u max_pd=%u max_mr_size=0x%llx page_size_cap=0x%llx hw_ver=%u vendor_id=%u max_qp_rd_atom=%u max_res_rd_atom=%u atomic_cap=%u max_srq=%u max_ah=%u phys_port_cnt=%u cap_flags=0x%x\n",
	       (unsigned long long)__builtin_bswap64(d.node_guid), d.max_qp,
	       d.max_qp_wr, d.max_sge, d.max_cq, d.max_cqe, d.max_mr,
	       d.max_pd, (unsigned long long)d.max_mr_size,
	       (unsigned long long)d.page_size_cap, d.hw_ver, d.vendor_id,
	       d.max_qp_rd_atom, d.max_res_rd_atom, d.atomic_cap, d.max_srq,
	       d.max_ah, d.phys_port_cnt, d.device_cap_flags);
	rv = uv_write(IB_USER_VERBS_CMD_QUERY_PORT, &cp, sizeof(cp), sizeof(p));
	CHECK(!rv, "QUERY_PORT rv=%d", rv);
	printf("PORT state=%u phys_state=%u active_mtu=%u max_mtu=%u gid_tbl_len=%u pkey_tbl_len=%u link_layer=%u speed=%u width=%u lid=%u max_msg_sz=%u\n",
	       p.state, p.phys_state, p.active_mtu, p.max_mtu, p.gid_tbl_len,
	       p.pkey_tbl_len, p.link_layer, p.active_speed, p.active_width,
	       p.lid, p.max_msg_sz);
	return rv;
}

#define NOTIFY_THREADS 4
#define NOTIFY_PER_THREAD 2000

static uint32_t notify_cq;
static int notify_errors;

static void *notify_thread(void *arg)
{
	for (int i = 0; i < NOTIFY_PER_THREAD; i++)
		if (cq_notify(notify_cq, OMX_DRIVER_ID))
			__atomic_add_fetch(&notify_errors, 1, __ATOMIC_RELAXED);
	return arg;
}

static const char *const ev_names[] = {
	"CQ_ERR", "QP_FATAL", "QP_REQ_ERR", "QP_ACCESS_ERR", "COMM_EST",
	"SQ_DRAINED", "PATH_MIG", "PATH_MIG_ERR", "DEVICE_FATAL",
	"PORT_ACTIVE", "PORT_ERR", "LID_CHANGE", "PKEY_CHANGE", "SM_CHANGE",
	"SRQ_ERR", "SRQ_LIMIT_REACHED", "QP_LAST_WQE_REACHED",
	"CLIENT_REREGISTER", "GID_CHANGE", "WQ_FATAL",
};

int main(int argc, char **argv)
{
	struct ib_uverbs_create_qp_resp qr, qr2, qr3;
	struct ib_uverbs_query_qp_resp qq;
	struct ib_uverbs_reg_mr_resp mr, mr2;
	uint32_t pd, cq, events;
	int chan, rv, n;
	char line[64];
	void *buf;
	bool hold;

	if (argc != 3) {
		fprintf(stderr, "usage: %s /dev/infiniband/uverbsN run|hold|port\n",
			argv[0]);
		return 2;
	}
	hold = !strcmp(argv[2], "hold");
	ufd = open(argv[1], O_RDWR | O_CLOEXEC);
	if (ufd < 0) {
		perror(argv[1]);
		return 1;
	}

	rv = get_context();
	CHECK(!rv, "GET_CONTEXT rv=%d async_fd=%u vectors=%u", rv,
	      ctx.base.async_fd, ctx.base.num_comp_vectors);
	if (rv)
		return 1;
	CHECK(ctx.drv.abi_version == OMX_UVERBS_ABI_VERSION &&
	      ctx.drv.endpoint >= OMX_ENDPOINT_MIN &&
	      ctx.drv.endpoint <= OMX_ENDPOINT_MAX &&
	      ctx.drv.max_qp_per_context == OMX_MAX_QP_PER_CONTEXT,
	      "ucontext resp abi=%u endpoint=%u ifindex=%u flags=0x%x mtu=%u mac=%02x:%02x:%02x:%02x:%02x:%02x",
	      ctx.drv.abi_version, ctx.drv.endpoint, ctx.drv.ifindex,
	      ctx.drv.flags, ctx.drv.netdev_mtu, ctx.drv.mac[0],
	      ctx.drv.mac[1], ctx.drv.mac[2], ctx.drv.mac[3], ctx.drv.mac[4],
	      ctx.drv.mac[5]);

	if (!strcmp(argv[2], "port"))
		return query_port_dev() || failures ? 1 : 0;

	rv = alloc_pd(&pd);
	CHECK(!rv, "ALLOC_PD rv=%d handle=%u", rv, pd);
	rv = comp_channel(&chan);
	CHECK(!rv, "CREATE_COMP_CHANNEL rv=%d fd=%d", rv, chan);
	rv = create_cq(chan, OMX_ENDPOINT_MAX * 1000, 42, &cq);
	CHECK(rv == -EINVAL, "CREATE_CQ cqe too large -> %d (want -EINVAL)", rv);
	rv = create_cq(chan, 256, 42, &cq);
	CHECK(!rv, "CREATE_CQ rv=%d handle=%u", rv, cq);

	rv = create_qp(pd, cq, IB_UVERBS_QPT_RC, 128, &qr);
	CHECK(!rv && qr.qpn >> OMX_QPN_SLOT_BITS == ctx.drv.endpoint,
	      "CREATE_QP RC rv=%d qpn=0x%x (endpoint %u slot %u)", rv, qr.qpn,
	      omx_qpn_endpoint(qr.qpn), qr.qpn & OMX_QPN_SLOT_MASK);
	rv = create_qp(pd, cq, IB_UVERBS_QPT_UD, 128, &qr2);
	CHECK(!rv && qr2.qpn != qr.qpn, "CREATE_QP UD rv=%d qpn=0x%x", rv,
	      qr2.qpn);
	rv = create_qp(pd, cq, IB_UVERBS_QPT_RC, 1 << 20, &qr3);
	CHECK(rv == -EINVAL, "CREATE_QP max_send_wr too large -> %d (want -EINVAL)",
	      rv);
	rv = create_qp(pd, cq, IB_UVERBS_QPT_RAW_PACKET, 16, &qr3);
	CHECK(rv == -EOPNOTSUPP, "CREATE_QP RAW_PACKET -> %d (want -EOPNOTSUPP)",
	      rv);

	rv = modify_qp(qr.qp_handle, M_STATE, 2 /* RTR */, 0);
	CHECK(rv == -EINVAL, "MODIFY_QP RESET->RTR -> %d (want -EINVAL)", rv);
	rv = modify_qp(qr.qp_handle, M_STATE | M_PKEY | M_PORT | M_ACCESS,
		       1 /* INIT */, 0);
	CHECK(!rv, "MODIFY_QP RESET->INIT rv=%d", rv);
	rv = modify_qp(qr.qp_handle, M_STATE | M_AV, 2, qr2.qpn);
	CHECK(rv < 0, "MODIFY_QP with IB_QP_AV -> %d (%s)", rv, strerror(-rv));
	rv = modify_qp(qr.qp_handle, M_STATE | M_PATH_MTU | M_DEST_QPN |
		       M_RQ_PSN | M_MAX_DEST_RD | M_MIN_RNR, 2, qr2.qpn);
	CHECK(!rv, "MODIFY_QP INIT->RTR rv=%d", rv);
	rv = modify_qp(qr.qp_handle, M_STATE | M_TIMEOUT | M_RETRY |
		       M_RNR_RETRY | M_SQ_PSN | M_MAX_RD, 3 /* RTS */, 0);
	CHECK(!rv, "MODIFY_QP RTR->RTS rv=%d", rv);
	rv = query_qp(qr.qp_handle, &qq);
	CHECK(!rv && qq.qp_state == 3 && qq.dest_qp_num == qr2.qpn &&
	      qq.sq_psn == 0x654321 && qq.rq_psn == 0x123456 &&
	      qq.path_mtu == 3 && qq.timeout == 14 && qq.max_send_wr == 128,
	      "QUERY_QP rv=%d state=%u dqpn=0x%x sq_psn=0x%x rq_psn=0x%x mtu=%u",
	      rv, qq.qp_state, qq.dest_qp_num, qq.sq_psn, qq.rq_psn,
	      qq.path_mtu);
	rv = modify_qp(qr2.qp_handle, M_STATE | M_PKEY | M_PORT | M_QKEY, 1, 0);
	CHECK(!rv, "MODIFY_QP UD RESET->INIT rv=%d", rv);

	buf = aligned_alloc(4096, 1 << 16);
	rv = reg_mr(pd, buf, 1 << 16, IB_UVERBS_ACCESS_LOCAL_WRITE |
		    IB_UVERBS_ACCESS_REMOTE_WRITE | IB_UVERBS_ACCESS_REMOTE_READ,
		    &mr);
	CHECK(!rv && mr.lkey == mr.rkey && mr.lkey >> 8,
	      "REG_MR rv=%d lkey=0x%08x rkey=0x%08x", rv, mr.lkey, mr.rkey);
	rv = reg_mr(pd, buf, 4096, IB_UVERBS_ACCESS_MW_BIND, &mr2);
	CHECK(rv == -EOPNOTSUPP, "REG_MR MW_BIND -> %d (want -EOPNOTSUPP)", rv);
	rv = reg_mr(pd, buf, 4096, IB_UVERBS_ACCESS_LOCAL_WRITE, &mr2);
	CHECK(!rv && mr2.lkey != mr.lkey, "REG_MR #2 rv=%d lkey=0x%08x", rv,
	      mr2.lkey);

	rv = cq_notify(cq, OMX_DRIVER_ID + 1);
	CHECK(rv == -EINVAL, "CQ_NOTIFY wrong driver_id -> %d (want -EINVAL)",
	      rv);
	rv = cq_notify(cq + 1000, OMX_DRIVER_ID);
	CHECK(rv < 0, "CQ_NOTIFY bad handle -> %d", rv);
	n = read_comp_events(chan, 200, 42);
	CHECK(n == 0, "no spurious completion event (%d)", n);
	for (int i = 0; i < 3; i++) {
		rv = cq_notify(cq, OMX_DRIVER_ID);
		CHECK(!rv, "CQ_NOTIFY #%d rv=%d", i, rv);
	}
	n = read_comp_events(chan, 2000, 42);
	CHECK(n == 3, "completion events read: %d (want 3)", n);
	for (int i = 0; i < 1000; i++)
		if (cq_notify(cq, OMX_DRIVER_ID))
			break;
	n = read_comp_events(chan, 3000, 42);
	CHECK(n == 1000, "completion events after 1000 notifies: %d", n);

	notify_cq = cq;
	{
		pthread_t th[NOTIFY_THREADS];

		for (int i = 0; i < NOTIFY_THREADS; i++)
			pthread_create(&th[i], NULL, notify_thread, NULL);
		n = read_comp_events(chan, 5000, 42);
		for (int i = 0; i < NOTIFY_THREADS; i++)
			pthread_join(th[i], NULL);
		n += read_comp_events(chan, 1000, 42);
	}
	CHECK(n == NOTIFY_THREADS * NOTIFY_PER_THREAD && !notify_errors,
	      "concurrent notifies: %d events, %d errors", n, notify_errors);

	printf("READY endpoint=%u qpn=0x%x lkey=0x%08x\n", ctx.drv.endpoint,
	       qr.qpn, mr.lkey);
	fflush(stdout);

	if (hold) {
		struct ib_uverbs_async_event_desc ev;
		int afd = ctx.base.async_fd;

		for (;;) {
			n = read(afd, &ev, sizeof(ev));
			if (n != sizeof(ev)) {
				printf("async read -> %d errno %d\n", n, errno);
				break;
			}
			printf("ASYNC %s element=%llu\n",
			       ev.event_type < 20 ? ev_names[ev.event_type] :
			       "?", (unsigned long long)ev.element);
			fflush(stdout);
			if (ev.event_type == 8)
				break;
		}
		rv = alloc_pd(&pd);
		CHECK(rv == -EIO, "ALLOC_PD after DEVICE_FATAL -> %d (want -EIO)",
		      rv);
		rv = cq_notify(cq, OMX_DRIVER_ID);
		CHECK(rv < 0, "CQ_NOTIFY after DEVICE_FATAL -> %d", rv);
		close(chan);
		close(afd);
		close(ufd);
		printf("DONE failures=%d\n", failures);
		return failures ? 1 : 0;
	}

	/* Wait for the scenario (rdma resource show, ...). */
	if (!fgets(line, sizeof(line), stdin))
		line[0] = 0;

	rv = destroy_qp(qr.qp_handle);
	CHECK(!rv, "DESTROY_QP RC rv=%d", rv);
	rv = destroy_qp(qr2.qp_handle);
	CHECK(!rv, "DESTROY_QP UD rv=%d", rv);
	rv = dereg_mr(mr.mr_handle);
	CHECK(!rv, "DEREG_MR rv=%d", rv);
	rv = dereg_mr(mr2.mr_handle);
	CHECK(!rv, "DEREG_MR #2 rv=%d", rv);
	rv = destroy_cq(cq, &events);
	CHECK(!rv && events == 1003 + NOTIFY_THREADS * NOTIFY_PER_THREAD, "DESTROY_CQ rv=%d comp_events_reported=%u",
	      rv, events);
	rv = dealloc_pd(pd);
	CHECK(!rv, "DEALLOC_PD rv=%d", rv);
	close(ufd);
	printf("DONE failures=%d\n", failures);
	return failures ? 1 : 0;
}
