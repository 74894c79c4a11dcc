// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * rdma_omx: thin verbs.  They validate, record and hand out identifiers;
 * the data path (post, poll, arm, AH, MW) lives in the user-space provider
 * and has no kernel op, so kverbs_provider is false and no kernel ULP binds.
 *
 * References and locks in this file:
 *
 *  All objects here are uverbs objects.  The uverbs core creates and
 *  destroys them, keeps a parent alive while children exist (PD usecnt,
 *  CQ usecnt, ucontext outlives all its objects) and tears everything down
 *  on close, kill -9 or device removal (disassociation).  So the driver
 *  holds no references of its own, except:
 *   - omx_qp.uctx: the owning context; valid until destroy_qp, because
 *     the core destroys every QP before dealloc_ucontext.
 *   - omx_device.netdev: pinned by the omx_device itself (omx_main.c).
 *  Locks:
 *   - omx_qp.lock (mutex) protects omx_qp.attr: modify_qp and query_qp
 *     may run concurrently (uverbs and RDMA netlink restrack dumps).
 *   - endpoint_xa, qp_xa, mr_xa: their internal locks.
 *   - RTNL is taken (innermost but one, never with our list lock held)
 *     in alloc_ucontext to snapshot the netdev, and by ib_get_eth_speed()
 *     in query_port.  Neither is ever called from the netdev notifier.
 *  Endpoints: alloc_ucontext is Open-MX's endpoint open (FREE ->
 *  INITIALIZING -> OK), dealloc_ucontext its close (CLOSING -> FREE).  The
 *  uverbs core already guarantees no user of the context remains when
 *  dealloc_ucontext runs, which is what Open-MX's CLOSING state and
 *  endpoint refcount provide, so no explicit state is kept here.
 */
#include <linux/etherdevice.h>
#include <linux/rtnetlink.h>
#include <net/net_namespace.h>
#include <rdma/ib_user_verbs.h>
#include <rdma/restrack.h>
#include <rdma/uverbs_ioctl.h>

#include "rdma_omx.h"

/* Take one object of a counted kind, if below the device limit. */
static bool omx_count_get(atomic_t *count, int max)
{
	if (atomic_inc_return(count) <= max)
		return true;
	atomic_dec(count);
	return false;
}

int omx_query_device(struct ib_device *base_dev, struct ib_device_attr *attr,
		     struct ib_udata *udata)
{
	if (udata && (udata->inlen || udata->outlen))
		return -EINVAL;

	memset(attr, 0, sizeof(*attr));

	/* No vendor: vendor_id and vendor_part_id stay 0. */
	attr->hw_ver = OMX_HW_VER;
	attr->sys_image_guid = READ_ONCE(base_dev->node_guid);
	/*
	 * On-demand paging: the provider never pins and copies through the
	 * process's own mappings, so any MR, including the implicit one
	 * (addr 0, length SIZE_MAX), is "on demand" by construction.
	 */
	attr->kernel_cap_flags = IBK_ALLOW_USER_UNREG | IBK_ON_DEMAND_PAGING;
	attr->odp_caps.general_caps = IB_ODP_SUPPORT | IB_ODP_SUPPORT_IMPLICIT;
	attr->odp_caps.per_transport_caps.rc_odp_caps =
		IB_ODP_SUPPORT_SEND | IB_ODP_SUPPORT_RECV |
		IB_ODP_SUPPORT_WRITE | IB_ODP_SUPPORT_READ;
	/* Completion timestamps: the provider's CLOCK_MONOTONIC, in ns. */
	attr->timestamp_mask = OMX_TIMESTAMP_MASK;
	attr->hca_core_clock = OMX_HCA_CORE_CLOCK_KHZ;
	/* Only capabilities the provider honours; none beyond the basics. */
	attr->device_cap_flags = 0;
	attr->page_size_cap = PAGE_SIZE;
	attr->max_mr_size = ~0ULL;

	attr->max_qp = OMX_MAX_QP;
	attr->max_qp_wr = OMX_MAX_QP_WR;
	attr->max_send_sge = OMX_MAX_SGE;
	attr->max_recv_sge = OMX_MAX_SGE;
	attr->max_sge_rd = OMX_MAX_SGE_RD;
	attr->max_cq = OMX_MAX_CQ;
	attr->max_cqe = OMX_MAX_CQE;
	attr->max_mr = OMX_MAX_MR;
	attr->max_pd = OMX_MAX_PD;
	attr->max_qp_rd_atom = OMX_MAX_RD_ATOM;
	attr->max_qp_init_rd_atom = OMX_MAX_RD_ATOM;
	attr->max_res_rd_atom = OMX_MAX_RES_RD_ATOM;
	attr->atomic_cap = IB_ATOMIC_NONE;
	attr->max_ah = OMX_MAX_AH;
	attr->max_pkeys = OMX_PKEY_TBL_LEN;
	attr->local_ca_ack_delay = OMX_LOCAL_CA_ACK_DELAY;
	/* SRQ, MW, multicast: not yet (max_srq, max_mw, max_mcast_grp 0). */

	return 0;
}

/*
 * Port attributes follow the netdev.  The state is the one last reported
 * through IB_EVENT_PORT_ACTIVE/PORT_ERR, not the live carrier bit: linkwatch
 * coalesces a quick carrier flap into no notification at all, and a port
 * that reads DOWN must also have raised PORT_ERR.  The MTU is read live.
 * Never called from the netdev notifier: ib_get_eth_speed() takes RTNL.
 */
int omx_query_port(struct ib_device *base_dev, u32 port,
		   struct ib_port_attr *attr)
{
	struct net_device *netdev = to_omx_dev(base_dev)->netdev;
	int rv;

	rv = ib_get_eth_speed(base_dev, port, &attr->active_speed,
			      &attr->active_width);
	if (rv)
		return rv;

	attr->state = READ_ONCE(to_omx_dev(base_dev)->last_state);
	attr->phys_state = attr->state == IB_PORT_ACTIVE ?
			   IB_PORT_PHYS_STATE_LINK_UP :
			   IB_PORT_PHYS_STATE_DISABLED;
	attr->max_mtu = IB_MTU_4096;
	attr->active_mtu = omx_netdev_ib_mtu(netdev);
	attr->gid_tbl_len = OMX_GID_TBL_LEN;
	attr->pkey_tbl_len = OMX_PKEY_TBL_LEN;
	attr->max_msg_sz = OMX_MAX_MSG_SZ;
	attr->max_vl_num = 1;
	attr->port_cap_flags = 0;

	return 0;
}

/*
 * RoCE-v1 style port: L2 Ethernet, no UDP encapsulation, no MADs.  ib_core
 * fills the GID table from the netdev (entry 0 = fe80::EUI-64(MAC), then
 * the IP addresses).  gid_tbl_len must equal query_port's.
 */
int omx_get_port_immutable(struct ib_device *base_dev, u32 port,
			   struct ib_port_immutable *immutable)
{
	immutable->core_cap_flags = RDMA_CORE_CAP_PROT_ROCE;
	immutable->gid_tbl_len = OMX_GID_TBL_LEN;
	immutable->pkey_tbl_len = OMX_PKEY_TBL_LEN;
	immutable->max_mad_size = 0;

	return 0;
}

enum rdma_link_layer omx_get_link_layer(struct ib_device *base_dev, u32 port)
{
	return IB_LINK_LAYER_ETHERNET;
}

int omx_query_pkey(struct ib_device *base_dev, u32 port, u16 index, u16 *pkey)
{
	if (index >= OMX_PKEY_TBL_LEN)
		return -EINVAL;

	*pkey = OMX_DEFAULT_PKEY;
	return 0;
}

void omx_get_dev_fw_str(struct ib_device *base_dev, char *str)
{
	snprintf(str, IB_FW_VERSION_NAME_MAX, "omx-%u", OMX_UVERBS_ABI_VERSION);
}

/*
 * Open an endpoint.  The response tells the provider its endpoint index
 * and how to reach the netdev (ifindex, MAC, MTU, netns flag), snapshot
 * under RTNL.
 */
int omx_alloc_ucontext(struct ib_ucontext *base_ctx, struct ib_udata *udata)
{
	struct omx_device *sdev = to_omx_dev(base_ctx->device);
	struct omx_ucontext *ctx = to_omx_ctx(base_ctx);
	struct net_device *netdev = sdev->netdev;
	struct omx_alloc_ucontext_resp uresp = {};
	u32 ep;
	int rv;

	/* -EBUSY when every endpoint is taken, as Open-MX. */
	rv = xa_alloc_cyclic(&sdev->endpoint_xa, &ep, ctx,
			     XA_LIMIT(OMX_ENDPOINT_MIN, OMX_ENDPOINT_MAX),
			     &sdev->endpoint_next, GFP_KERNEL);
	if (rv < 0)
		return rv;

	ctx->endpoint = ep;
	xa_init_flags(&ctx->qp_xa, XA_FLAGS_ALLOC);

	uresp.abi_version = OMX_UVERBS_ABI_VERSION;
	uresp.endpoint = ep;
	uresp.max_qp_per_context = OMX_MAX_QP_PER_CONTEXT;

	rtnl_lock();
	uresp.ifindex = netdev->ifindex;
	memcpy(uresp.mac, netdev->dev_addr, ETH_ALEN);
	uresp.netdev_mtu = netdev->mtu;
	if (net_eq(dev_net(netdev), current->nsproxy->net_ns))
		uresp.flags |= OMX_UCTX_NETDEV_IN_CALLER_NS;
	rtnl_unlock();

	if (udata && udata->outlen) {
		rv = ib_copy_to_udata(udata, &uresp,
				      min(sizeof(uresp), udata->outlen));
		if (rv)
			goto err_out;
	}
	atomic_inc(&sdev->num_ctx);
	omx_dbg_ctx(ctx, "opened, flags 0x%x\n", uresp.flags);

	return 0;

err_out:
	xa_destroy(&ctx->qp_xa);
	xa_erase(&sdev->endpoint_xa, ep);
	return rv;
}

/* Close an endpoint.  uverbs has destroyed every object of the context. */
void omx_dealloc_ucontext(struct ib_ucontext *base_ctx)
{
	struct omx_device *sdev = to_omx_dev(base_ctx->device);
	struct omx_ucontext *ctx = to_omx_ctx(base_ctx);

	omx_dbg_ctx(ctx, "closed\n");
	WARN_ON(!xa_empty(&ctx->qp_xa));
	xa_destroy(&ctx->qp_xa);
	xa_erase(&sdev->endpoint_xa, ctx->endpoint);
	atomic_dec(&sdev->num_ctx);
}

/*
 * Device removal with the context still open.  Its presence tells uverbs
 * not to pin the module and not to wait for the application.  By the time
 * it runs, uverbs has destroyed every object of the context through our
 * destroy ops (which cancel CQ notify work), the driver method is revoked
 * and there are no mmaps, no pinned pages, no kernel threads: nothing is
 * left to stop.  dealloc_ucontext follows.
 */
void omx_disassociate_ucontext(struct ib_ucontext *base_ctx)
{
	omx_dbg_ctx(to_omx_ctx(base_ctx), "disassociated\n");
}

int omx_alloc_pd(struct ib_pd *base_pd, struct ib_udata *udata)
{
	struct omx_device *sdev = to_omx_dev(base_pd->device);

	if (!omx_count_get(&sdev->num_pd, OMX_MAX_PD))
		return -ENOMEM;
	return 0;
}

int omx_dealloc_pd(struct ib_pd *base_pd, struct ib_udata *udata)
{
	struct omx_device *sdev = to_omx_dev(base_pd->device);

	atomic_dec(&sdev->num_pd);
	return 0;
}

#ifdef OMX_CREATE_CQ_UATTRS
int omx_create_cq(struct ib_cq *base_cq, const struct ib_cq_init_attr *attr,
		  struct uverbs_attr_bundle *attrs)
#else
int omx_create_cq(struct ib_cq *base_cq, const struct ib_cq_init_attr *attr,
		  struct ib_udata *udata)
#endif
{
	struct omx_device *sdev = to_omx_dev(base_cq->device);
	struct omx_cq *cq = to_omx_cq(base_cq);

#ifdef OMX_CREATE_CQ_UATTRS
	/* Kernel CQs have no data path. */
	if (!attrs)
		return -EOPNOTSUPP;
#else
	if (!udata)
		return -EOPNOTSUPP;
#endif
	/* The provider timestamps every completion of such a CQ. */
	if (attr->flags & ~IB_UVERBS_CQ_FLAGS_TIMESTAMP_COMPLETION)
		return -EOPNOTSUPP;
	/* comp_vector is checked by the core against num_comp_vectors. */
	if (attr->cqe < 1 || attr->cqe > OMX_MAX_CQE)
		return -EINVAL;
	if (!omx_count_get(&sdev->num_cq, OMX_MAX_CQ))
		return -ENOMEM;

	base_cq->cqe = attr->cqe;
	INIT_WORK(&cq->notify_work, omx_cq_notify_work);
	atomic_set(&cq->notify_pending, 0);
	atomic_set(&cq->in_handler, 0);

	return 0;
}

/*
 * The uverbs core holds the CQ exclusively here, so no notify method runs
 * concurrently.  Cancel the worker synchronously and drop the requests it
 * has not raised yet: ibv_cmd_destroy_cq() only waits for the acks of the
 * events uverbs actually reported.  The core frees the CQ afterwards.
 */
int omx_destroy_cq(struct ib_cq *base_cq, struct ib_udata *udata)
{
	struct omx_device *sdev = to_omx_dev(base_cq->device);
	struct omx_cq *cq = to_omx_cq(base_cq);

	cancel_work_sync(&cq->notify_work);
	atomic_set(&cq->notify_pending, 0);
	atomic_dec(&sdev->num_cq);
	omx_dbg_cq(cq, "destroyed\n");

	return 0;
}

int omx_create_qp(struct ib_qp *base_qp, struct ib_qp_init_attr *attr,
		  struct ib_udata *udata)
{
	struct omx_device *sdev = to_omx_dev(base_qp->device);
	struct omx_qp *qp = to_omx_qp(base_qp);
	struct omx_ucontext *uctx;
	struct ib_qp_cap *cap = &attr->cap;
	u32 slot;
	int rv;

	uctx = rdma_udata_to_drv_context(udata, struct omx_ucontext,
					 base_ucontext);
	if (!uctx)
		return -EOPNOTSUPP;	/* kernel QPs have no data path */

	switch (attr->qp_type) {
	case IB_QPT_RC:
	case IB_QPT_UC:
	case IB_QPT_UD:
		break;
	default:
		return -EOPNOTSUPP;
	}
	if (attr->srq || attr->create_flags || attr->rwq_ind_tbl)
		return -EOPNOTSUPP;
	if (cap->max_send_wr > OMX_MAX_QP_WR ||
	    cap->max_recv_wr > OMX_MAX_QP_WR ||
	    cap->max_send_sge > OMX_MAX_SGE ||
	    cap->max_recv_sge > OMX_MAX_SGE)
		return -EINVAL;
	/* max_inline_data is the provider's business: recorded only. */

	if (!omx_count_get(&sdev->num_qp, OMX_MAX_QP))
		return -ENOMEM;

	rv = xa_alloc_cyclic(&uctx->qp_xa, &slot, qp,
			     XA_LIMIT(0, OMX_QPN_SLOT_MASK), &uctx->qp_next,
			     GFP_KERNEL);
	if (rv < 0) {
		atomic_dec(&sdev->num_qp);
		return rv == -EBUSY ? -ENOMEM : rv;
	}

	qp->uctx = uctx;
	qp->slot = slot;
	qp->cap = *cap;
	qp->sq_sig_type = attr->sq_sig_type;
	mutex_init(&qp->lock);
	qp->attr.state = IB_QPS_RESET;
	qp->attr.port_num = 1;

	/* Unique per device: endpoints are unique per device. */
	base_qp->qp_num = uctx->endpoint << OMX_QPN_SLOT_BITS | slot;
	omx_dbg_qp(qp, "created, type %d\n", attr->qp_type);

	return 0;
}

/*
 * Shadow state machine.  The provider is the authority for IBTA semantics
 * and attribute masks; this table only refuses transitions that are never
 * legal.  Transitions the provider makes on its own (to SQE or ERR on a
 * failed work request) are not seen here, hence RTS -> RTS and any -> RESET
 * or ERR are always accepted.
 */
static const bool omx_qp_trans[IB_QPS_ERR + 1][IB_QPS_ERR + 1] = {
	[IB_QPS_RESET] = {
		[IB_QPS_RESET] = true, [IB_QPS_INIT] = true,
		[IB_QPS_ERR] = true,
	},
	[IB_QPS_INIT] = {
		[IB_QPS_RESET] = true, [IB_QPS_INIT] = true,
		[IB_QPS_RTR] = true, [IB_QPS_ERR] = true,
	},
	[IB_QPS_RTR] = {
		[IB_QPS_RESET] = true, [IB_QPS_RTS] = true,
		[IB_QPS_ERR] = true,
	},
	[IB_QPS_RTS] = {
		[IB_QPS_RESET] = true, [IB_QPS_RTS] = true,
		[IB_QPS_SQD] = true, [IB_QPS_ERR] = true,
	},
	[IB_QPS_SQD] = {
		[IB_QPS_RESET] = true, [IB_QPS_RTS] = true,
		[IB_QPS_SQD] = true, [IB_QPS_ERR] = true,
	},
	[IB_QPS_SQE] = {
		[IB_QPS_RESET] = true, [IB_QPS_RTS] = true,
		[IB_QPS_ERR] = true,
	},
	[IB_QPS_ERR] = {
		[IB_QPS_RESET] = true, [IB_QPS_ERR] = true,
	},
};

/*
 * Addressing (IB_QP_AV, IB_QP_ALT_PATH) is never passed to the kernel: on
 * a RoCE port ib_core would resolve a destination MAC through the IP
 * neighbour table, which has no meaning for omx.  Such requests, rate
 * limits and unknown bits fail with -EOPNOTSUPP.
 */
#define OMX_QP_ATTR_UNSUPPORTED						\
	(IB_QP_AV | IB_QP_ALT_PATH | ~IB_QP_ATTR_STANDARD_BITS)

int omx_modify_qp(struct ib_qp *base_qp, struct ib_qp_attr *attr,
		  int attr_mask, struct ib_udata *udata)
{
	struct omx_qp *qp = to_omx_qp(base_qp);
	struct omx_qp_shadow *sh = &qp->attr;
	enum ib_qp_state cur, next;
	int rv = 0;

	if (attr_mask & OMX_QP_ATTR_UNSUPPORTED)
		return -EOPNOTSUPP;

	if ((attr_mask & IB_QP_STATE && attr->qp_state > IB_QPS_ERR) ||
	    (attr_mask & IB_QP_CUR_STATE && attr->cur_qp_state > IB_QPS_ERR))
		return -EINVAL;
	if (attr_mask & IB_QP_PATH_MTU &&
	    (attr->path_mtu < IB_MTU_256 || attr->path_mtu > IB_MTU_4096))
		return -EINVAL;
	if (attr_mask & IB_QP_PKEY_INDEX && attr->pkey_index >= OMX_PKEY_TBL_LEN)
		return -EINVAL;
	if (attr_mask & IB_QP_PORT && attr->port_num != 1)
		return -EINVAL;
	if ((attr_mask & IB_QP_MAX_QP_RD_ATOMIC &&
	     attr->max_rd_atomic > OMX_MAX_RD_ATOM) ||
	    (attr_mask & IB_QP_MAX_DEST_RD_ATOMIC &&
	     attr->max_dest_rd_atomic > OMX_MAX_RD_ATOM))
		return -EINVAL;
	if (attr_mask & IB_QP_DEST_QPN && attr->dest_qp_num & ~0xffffffU)
		return -EINVAL;

	mutex_lock(&qp->lock);

	cur = attr_mask & IB_QP_CUR_STATE ? attr->cur_qp_state : sh->state;
	next = attr_mask & IB_QP_STATE ? attr->qp_state : cur;
	if (attr_mask & IB_QP_STATE && !omx_qp_trans[cur][next]) {
		omx_dbg_qp(qp, "illegal transition %d -> %d\n", cur, next);
		rv = -EINVAL;
		goto out;
	}

	if (next == IB_QPS_RESET && attr_mask & IB_QP_STATE) {
		/* RESET forgets every attribute (IBTA 10.3.1). */
		memset(sh, 0, sizeof(*sh));
		sh->port_num = 1;
	}
	if (attr_mask & IB_QP_PKEY_INDEX)
		sh->pkey_index = attr->pkey_index;
	if (attr_mask & IB_QP_PORT)
		sh->port_num = attr->port_num;
	if (attr_mask & IB_QP_QKEY)
		sh->qkey = attr->qkey;
	if (attr_mask & IB_QP_ACCESS_FLAGS)
		sh->qp_access_flags = attr->qp_access_flags;
	if (attr_mask & IB_QP_PATH_MTU)
		sh->path_mtu = attr->path_mtu;
	if (attr_mask & IB_QP_DEST_QPN)
		sh->dest_qp_num = attr->dest_qp_num;
	if (attr_mask & IB_QP_RQ_PSN)
		sh->rq_psn = attr->rq_psn & 0xffffff;
	if (attr_mask & IB_QP_SQ_PSN)
		sh->sq_psn = attr->sq_psn & 0xffffff;
	if (attr_mask & IB_QP_MAX_DEST_RD_ATOMIC)
		sh->max_dest_rd_atomic = attr->max_dest_rd_atomic;
	if (attr_mask & IB_QP_MIN_RNR_TIMER)
		sh->min_rnr_timer = attr->min_rnr_timer;
	if (attr_mask & IB_QP_TIMEOUT)
		sh->timeout = attr->timeout;
	if (attr_mask & IB_QP_RETRY_CNT)
		sh->retry_cnt = attr->retry_cnt;
	if (attr_mask & IB_QP_RNR_RETRY)
		sh->rnr_retry = attr->rnr_retry;
	if (attr_mask & IB_QP_MAX_QP_RD_ATOMIC)
		sh->max_rd_atomic = attr->max_rd_atomic;
	if (attr_mask & IB_QP_STATE) {
		if (next != sh->state)
			omx_dbg_qp(qp, "%d -> %d\n", sh->state, next);
		sh->state = next;
	}
out:
	mutex_unlock(&qp->lock);
	return rv;
}

int omx_query_qp(struct ib_qp *base_qp, struct ib_qp_attr *attr,
		 int attr_mask, struct ib_qp_init_attr *init_attr)
{
	struct omx_qp *qp = to_omx_qp(base_qp);
	struct omx_qp_shadow *sh = &qp->attr;

	memset(attr, 0, sizeof(*attr));
	memset(init_attr, 0, sizeof(*init_attr));

	mutex_lock(&qp->lock);
	attr->qp_state = sh->state;
	attr->cur_qp_state = sh->state;
	attr->path_mtu = sh->path_mtu;
	attr->path_mig_state = IB_MIG_MIGRATED;
	attr->qkey = sh->qkey;
	attr->rq_psn = sh->rq_psn;
	attr->sq_psn = sh->sq_psn;
	attr->dest_qp_num = sh->dest_qp_num;
	attr->qp_access_flags = sh->qp_access_flags;
	attr->pkey_index = sh->pkey_index;
	attr->port_num = sh->port_num;
	attr->timeout = sh->timeout;
	attr->retry_cnt = sh->retry_cnt;
	attr->rnr_retry = sh->rnr_retry;
	attr->min_rnr_timer = sh->min_rnr_timer;
	attr->max_rd_atomic = sh->max_rd_atomic;
	attr->max_dest_rd_atomic = sh->max_dest_rd_atomic;
	mutex_unlock(&qp->lock);

	attr->cap = qp->cap;
	init_attr->qp_type = base_qp->qp_type;
	init_attr->send_cq = base_qp->send_cq;
	init_attr->recv_cq = base_qp->recv_cq;
	init_attr->qp_context = base_qp->qp_context;
	init_attr->cap = qp->cap;
	init_attr->sq_sig_type = qp->sq_sig_type;
	init_attr->port_num = sh->port_num;

	return 0;
}

int omx_destroy_qp(struct ib_qp *base_qp, struct ib_udata *udata)
{
	struct omx_device *sdev = to_omx_dev(base_qp->device);
	struct omx_qp *qp = to_omx_qp(base_qp);

	omx_dbg_qp(qp, "destroyed\n");
	xa_erase(&qp->uctx->qp_xa, qp->slot);
	/*
	 * No mutex_destroy(): a restrack dump may still query the QP until
	 * the core's rdma_restrack_del() returns, after this op.
	 */
	atomic_dec(&sdev->num_qp);

	return 0;
}

/*
 * A key for a user buffer: no pinning, no ib_umem, no page list.  The
 * provider reads and writes its own memory; the kernel only hands out a
 * device-unique key and lists the MR in restrack.  The core has already
 * run ib_check_mr_access() (remote write/atomic without local write is
 * refused there).  IB_ACCESS_ON_DEMAND is accepted, including the implicit
 * MR (start 0, length U64_MAX): nothing is pinned in any case.
 */
struct ib_mr *omx_reg_user_mr(struct ib_pd *base_pd, u64 start, u64 length,
			      u64 virt, int access, struct ib_udata *udata)
{
	struct omx_device *sdev = to_omx_dev(base_pd->device);
	struct omx_mr *mr;
	u32 index, tag;
	int rv;

	if (access & ~OMX_MR_ACCESS_SUPPORTED)
		return ERR_PTR(-EOPNOTSUPP);
	if (start + length < start || virt + length < virt)
		return ERR_PTR(-EINVAL);
	if (!omx_count_get(&sdev->num_mr, OMX_MAX_MR))
		return ERR_PTR(-ENOMEM);

	mr = kzalloc(sizeof(*mr), GFP_KERNEL);
	if (!mr) {
		rv = -ENOMEM;
		goto err_count;
	}

	rv = xa_alloc_cyclic(&sdev->mr_xa, &index, mr,
			     XA_LIMIT(OMX_MR_INDEX_MIN, OMX_MR_INDEX_MAX),
			     &sdev->mr_next, GFP_KERNEL);
	if (rv < 0)
		goto err_free;

	tag = (u32)atomic_inc_return(&sdev->mr_tag) & 0xff;
	mr->index = index;
	mr->start = start;
	mr->access = access;
	mr->base_mr.lkey = index << OMX_MR_TAG_BITS | tag;
	mr->base_mr.rkey = mr->base_mr.lkey;
	/* The core sets iova and length from the command. */

	return &mr->base_mr;

err_free:
	kfree(mr);
err_count:
	atomic_dec(&sdev->num_mr);
	return ERR_PTR(rv);
}

int omx_dereg_mr(struct ib_mr *base_mr, struct ib_udata *udata)
{
	struct omx_device *sdev = to_omx_dev(base_mr->device);
	struct omx_mr *mr = to_omx_mr(base_mr);

	omx_dbg_mr(mr, "deregistered\n");
	xa_erase(&sdev->mr_xa, mr->index);
	kfree(mr);
	atomic_dec(&sdev->num_mr);

	return 0;
}

/*
 * Restrack driver attributes, shown by "rdma resource show ... -d".  The
 * core already prints pid, comm, qpn, state, keys and lengths.
 */
int omx_fill_res_cq_entry(struct sk_buff *msg, struct ib_cq *base_cq)
{
	struct omx_cq *cq = to_omx_cq(base_cq);
	struct nlattr *table;

	table = nla_nest_start(msg, RDMA_NLDEV_ATTR_DRIVER);
	if (!table)
		return -EMSGSIZE;
	if (rdma_nl_put_driver_u32(msg, "notify_pending",
				   atomic_read(&cq->notify_pending))) {
		nla_nest_cancel(msg, table);
		return -EMSGSIZE;
	}
	nla_nest_end(msg, table);
	return 0;
}

int omx_fill_res_mr_entry(struct sk_buff *msg, struct ib_mr *base_mr)
{
	struct omx_mr *mr = to_omx_mr(base_mr);
	struct nlattr *table;

	table = nla_nest_start(msg, RDMA_NLDEV_ATTR_DRIVER);
	if (!table)
		return -EMSGSIZE;
	if (rdma_nl_put_driver_u32_hex(msg, "access", mr->access)) {
		nla_nest_cancel(msg, table);
		return -EMSGSIZE;
	}
	nla_nest_end(msg, table);
	return 0;
}

int omx_fill_res_qp_entry(struct sk_buff *msg, struct ib_qp *base_qp)
{
	struct omx_qp *qp = to_omx_qp(base_qp);
	struct nlattr *table;

	table = nla_nest_start(msg, RDMA_NLDEV_ATTR_DRIVER);
	if (!table)
		return -EMSGSIZE;
	if (rdma_nl_put_driver_u32(msg, "endpoint", qp->uctx->endpoint) ||
	    rdma_nl_put_driver_u32(msg, "slot", qp->slot)) {
		nla_nest_cancel(msg, table);
		return -EMSGSIZE;
	}
	nla_nest_end(msg, table);
	return 0;
}
