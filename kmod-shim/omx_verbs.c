// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * rdma_omx: thin verbs.  They validate, record and hand out identifiers;
 * the data path (post, poll, arm, AH, binding and checking MWs, the SRQ
 * ring and its limit) lives in the user-space provider and has no kernel
 * op, so kverbs_provider is false and no kernel ULP binds.
 *
 * References and locks in this file (the lock order is in
 * docs/lifetime-and-locking.md):
 *
 *  All objects here are uverbs objects.  The uverbs core creates and
 *  destroys them, keeps a parent alive while children exist (PD usecnt,
 *  CQ usecnt, SRQ usecnt, ucontext outlives all its objects) and tears
 *  everything down on close, kill -9 or device removal (disassociation).
 *  So the driver holds no references of its own, except:
 *   - omx_qp.uctx and every object's user (omx_limits.c): valid until the
 *     object's destroy op, because the core destroys every object of a
 *     context before dealloc_ucontext;
 *   - omx_cq.channel: a reference on the completion channel's file, taken
 *     in create_cq, dropped in destroy_cq after the CQ's work is cancelled;
 *   - omx_ucontext.fatal_fd: an eventfd reference (omx_uapi.c), put in
 *     dealloc_ucontext;
 *   - omx_device.netdev: pinned by the omx_device itself (omx_main.c).
 *  Locks:
 *   - omx_qp.lock (mutex) protects omx_qp.attr, the epoch and the event
 *     bookkeeping: modify_qp, query_qp (uverbs and RDMA netlink restrack
 *     dumps), OMX_METHOD_QP_EVENT and the QP's event work take it.  No
 *     event is raised under it.
 *   - endpoint_xa, qp_xa, mr_xa: their internal locks.
 *   - mmap_read_lock of the caller's mm in reg_user_mr, a leaf.
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
#include <linux/file.h>
#include <linux/mm.h>
#include <linux/poll.h>
#include <linux/rtnetlink.h>
#include <linux/slab.h>
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

/*
 * Driver input of a command we define none for: only zeros are accepted,
 * so a later ABI can give those bytes a meaning.
 */
static int omx_udata_in_check(struct ib_udata *udata)
{
	if (udata && udata->inlen &&
	    !ib_is_udata_cleared(udata, 0, udata->inlen))
		return -EOPNOTSUPP;
	return 0;
}

/*
 * Charge one object of @res to the context's user, then to the device.
 * -EDQUOT past the user's limit, -ENOMEM past the device's.
 */
static int omx_charge(struct omx_device *sdev, struct omx_user *user,
		      enum omx_res res, atomic_t *dev_count, int dev_max)
{
	int rv;

	rv = omx_user_charge(sdev, user, res);
	if (rv)
		return rv;
	if (!omx_count_get(dev_count, dev_max)) {
		omx_user_uncharge(user, res);
		return -ENOMEM;
	}
	return 0;
}

static void omx_uncharge(struct omx_user *user, enum omx_res res,
			 atomic_t *dev_count)
{
	atomic_dec(dev_count);
	omx_user_uncharge(user, res);
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
	/* Only capabilities the provider honours. */
	attr->device_cap_flags = IB_DEVICE_SRQ_RESIZE;
	/* Memory windows: bound and checked by the provider. */
	attr->device_cap_flags |= IB_DEVICE_MEM_WINDOW |
				  IB_DEVICE_MEM_WINDOW_TYPE_2A |
				  IB_DEVICE_MEM_WINDOW_TYPE_2B;
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
	attr->max_mw = OMX_MAX_MW;
	attr->max_pd = OMX_MAX_PD;
	attr->max_qp_rd_atom = OMX_MAX_RD_ATOM;
	attr->max_qp_init_rd_atom = OMX_MAX_RD_ATOM;
	attr->max_res_rd_atom = OMX_MAX_RES_RD_ATOM;
	/*
	 * The provider executes atomics with the CPU's locked instructions
	 * on the target's memory, so they are atomic against the host's own
	 * atomics and other processes' too (docs/provider.md, "Atomics").
	 */
	attr->atomic_cap = IB_ATOMIC_GLOB;
	attr->max_ah = OMX_MAX_AH;
	attr->max_srq = OMX_MAX_SRQ;
	attr->max_srq_wr = OMX_MAX_SRQ_WR;
	attr->max_srq_sge = OMX_MAX_SRQ_SGE;
	attr->max_pkeys = OMX_PKEY_TBL_LEN;
	attr->local_ca_ack_delay = OMX_LOCAL_CA_ACK_DELAY;
	omx_mcast_query_device(to_omx_dev(base_dev), attr);

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
 * under RTNL.  The context is charged to the caller's effective user,
 * which pays for every object of the context from now on.
 */
int omx_alloc_ucontext(struct ib_ucontext *base_ctx, struct ib_udata *udata)
{
	struct omx_device *sdev = to_omx_dev(base_ctx->device);
	struct omx_ucontext *ctx = to_omx_ctx(base_ctx);
	struct net_device *netdev = sdev->netdev;
	struct omx_alloc_ucontext_resp uresp = {};
	u32 ep;
	int rv;

	rv = omx_udata_in_check(udata);
	if (rv)
		return rv;
	rv = omx_user_get(sdev, &ctx->user);
	if (rv)
		return rv;

	/* -EBUSY when every endpoint is taken, as Open-MX. */
	rv = xa_alloc_cyclic(&sdev->endpoint_xa, &ep, ctx,
			     XA_LIMIT(OMX_ENDPOINT_MIN, OMX_ENDPOINT_MAX),
			     &sdev->endpoint_next, GFP_KERNEL_ACCOUNT);
	if (rv < 0)
		goto err_user;

	ctx->endpoint = ep;
	xa_init_flags(&ctx->qp_xa, XA_FLAGS_ALLOC);
	/* QP numbers of a context do not start at a predictable slot. */
	ctx->qp_next = get_random_u32_below(OMX_MAX_QP_PER_CONTEXT);

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
err_user:
	omx_user_put(sdev, ctx->user);
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
	if (ctx->fatal_fd)
		eventfd_ctx_put(ctx->fatal_fd);
	omx_user_put(sdev, ctx->user);
	atomic_dec(&sdev->num_ctx);
}

/*
 * Device removal with the context still open.  Its presence tells uverbs
 * not to pin the module and not to wait for the application.  By the time
 * it runs, uverbs has destroyed every object of the context through our
 * destroy ops (which cancel the CQ and QP work) and revoked the driver
 * methods (so fatal_fd no longer changes); there are no mmaps, no pinned
 * pages, no kernel threads.  What is left is telling the provider at once
 * through the eventfd it registered (OMX_METHOD_CTX_FATAL_FD), so it stops
 * its packet I/O before it even reads DEVICE_FATAL.  dealloc_ucontext
 * follows.
 */
void omx_disassociate_ucontext(struct ib_ucontext *base_ctx)
{
	struct omx_ucontext *ctx = to_omx_ctx(base_ctx);
	struct eventfd_ctx *fatal_fd = READ_ONCE(ctx->fatal_fd);

	omx_dbg_ctx(ctx, "disassociated%s\n", fatal_fd ? ", eventfd" : "");
	if (fatal_fd)
		omx_eventfd_signal(fatal_fd);
}

int omx_alloc_pd(struct ib_pd *base_pd, struct ib_udata *udata)
{
	struct omx_device *sdev = to_omx_dev(base_pd->device);
	struct omx_pd *pd = to_omx_pd(base_pd);
	struct omx_ucontext *uctx;
	int rv;

	uctx = rdma_udata_to_drv_context(udata, struct omx_ucontext,
					 base_ucontext);
	if (!uctx)
		return -EOPNOTSUPP;	/* no kernel consumers */
	rv = omx_udata_in_check(udata);
	if (rv)
		return rv;
	rv = omx_charge(sdev, uctx->user, OMX_RES_PD, &sdev->num_pd,
			OMX_MAX_PD);
	if (rv)
		return rv;
	pd->user = uctx->user;
	return 0;
}

int omx_dealloc_pd(struct ib_pd *base_pd, struct ib_udata *udata)
{
	struct omx_device *sdev = to_omx_dev(base_pd->device);

	omx_uncharge(to_omx_pd(base_pd)->user, OMX_RES_PD, &sdev->num_pd);
	return 0;
}

/*
 * The struct file of the CQ's completion channel, from the attributes of
 * the CREATE_CQ ioctl (the FD uobject's object is the file; the bundle
 * holds it for the length of the command), pinned with get_file().  NULL
 * when the CQ has no channel.  The legacy write command carries the
 * channel only as a number the core resolves internally, so a CQ with a
 * channel created that way is refused: without the file the unread events
 * could not be bounded.  The provider always uses the ioctl.
 */
static struct file *omx_cq_channel_file(struct ib_cq *base_cq,
					struct uverbs_attr_bundle *attrs)
{
	struct ib_uobject *uobj;

	if (!base_cq->cq_context)
		return NULL;
	uobj = uverbs_attr_get_uobject(attrs, UVERBS_ATTR_CREATE_CQ_COMP_CHANNEL);
	if (IS_ERR(uobj) || !uobj->object)
		return ERR_PTR(-EOPNOTSUPP);
	return get_file(uobj->object);
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
	struct omx_ucontext *uctx;
	struct file *channel;
	int rv;

#ifndef OMX_CREATE_CQ_UATTRS
	struct uverbs_attr_bundle *attrs =
		udata ? rdma_udata_to_uverbs_attr_bundle(udata) : NULL;
#endif
	/* Kernel CQs have no data path. */
	if (!attrs || !attrs->context)
		return -EOPNOTSUPP;
	uctx = to_omx_ctx(attrs->context);
	rv = omx_udata_in_check(&attrs->driver_udata);
	if (rv)
		return rv;
	/* The provider timestamps every completion of such a CQ. */
	if (attr->flags & ~IB_UVERBS_CQ_FLAGS_TIMESTAMP_COMPLETION)
		return -EOPNOTSUPP;
	/* comp_vector is checked by the core against num_comp_vectors. */
	if (attr->cqe < 1 || attr->cqe > OMX_MAX_CQE)
		return -EINVAL;

	channel = omx_cq_channel_file(base_cq, attrs);
	if (IS_ERR(channel)) {
		ibdev_dbg(base_cq->device,
			  "a CQ with a completion channel needs the CREATE_CQ ioctl\n");
		return PTR_ERR(channel);
	}
	rv = omx_charge(sdev, uctx->user, OMX_RES_CQ, &sdev->num_cq,
			OMX_MAX_CQ);
	if (rv) {
		if (channel)
			fput(channel);
		return rv;
	}

	base_cq->cqe = attr->cqe;
	cq->user = uctx->user;
	cq->channel = channel;
	INIT_DELAYED_WORK(&cq->work, omx_cq_work);
	atomic_set(&cq->notify_pending, 0);
	atomic_set(&cq->in_handler, 0);

	return 0;
}

/*
 * The uverbs core holds the CQ exclusively here, so no driver method runs
 * concurrently.  Cancel the work synchronously and drop the requests it
 * has not raised yet: ibv_cmd_destroy_cq() only waits for the acks of the
 * events uverbs actually reported.  Then let go of the channel.  The core
 * frees the CQ afterwards.
 */
int omx_destroy_cq(struct ib_cq *base_cq, struct ib_udata *udata)
{
	struct omx_device *sdev = to_omx_dev(base_cq->device);
	struct omx_cq *cq = to_omx_cq(base_cq);

	cancel_delayed_work_sync(&cq->work);
	atomic_set(&cq->notify_pending, 0);
	if (cq->channel)
		fput(cq->channel);
	cq->channel = NULL;
	omx_uncharge(cq->user, OMX_RES_CQ, &sdev->num_cq);
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
	u32 slot, max_slot;
	int rv;

	uctx = rdma_udata_to_drv_context(udata, struct omx_ucontext,
					 base_ucontext);
	if (!uctx)
		return -EOPNOTSUPP;	/* kernel QPs have no data path */
	rv = omx_udata_in_check(udata);
	if (rv)
		return rv;

	switch (attr->qp_type) {
	case IB_QPT_RC:
	case IB_QPT_UC:
	case IB_QPT_UD:
		break;
	default:
		return -EOPNOTSUPP;
	}
	if (attr->create_flags || attr->rwq_ind_tbl)
		return -EOPNOTSUPP;
	/*
	 * A QP on an SRQ has no receive queue of its own: its receive
	 * attributes are ignored, as IBTA says, and reported as 0.  The SRQ
	 * is a basic one (the only kind create_srq makes; uverbs refuses an
	 * XRC SRQ for a QP) and the core counts the QP in its usecnt.
	 */
	if (attr->srq) {
		cap->max_recv_wr = 0;
		cap->max_recv_sge = 0;
	}
	if (cap->max_send_wr > OMX_MAX_QP_WR ||
	    cap->max_recv_wr > OMX_MAX_QP_WR ||
	    cap->max_send_sge > OMX_MAX_SGE ||
	    cap->max_recv_sge > OMX_MAX_SGE)
		return -EINVAL;
	/* max_inline_data is the provider's business: recorded only. */

	rv = omx_charge(sdev, uctx->user, OMX_RES_QP, &sdev->num_qp,
			OMX_MAX_QP);
	if (rv)
		return rv;

	/*
	 * QPN 0xffffff is IBTA's multicast QPN (docs/wire.md section 13.5):
	 * endpoint OMX_ENDPOINT_MAX never gets its last slot.
	 */
	max_slot = OMX_QPN_SLOT_MASK;
	if (uctx->endpoint == OMX_ENDPOINT_MAX)
		max_slot--;
	rv = xa_alloc_cyclic(&uctx->qp_xa, &slot, qp,
			     XA_LIMIT(0, max_slot), &uctx->qp_next,
			     GFP_KERNEL_ACCOUNT);
	if (rv < 0) {
		omx_uncharge(uctx->user, OMX_RES_QP, &sdev->num_qp);
		return rv == -EBUSY ? -ENOMEM : rv;
	}

	qp->uctx = uctx;
	qp->user = uctx->user;
	qp->slot = slot;
	qp->cap = *cap;
	qp->sq_sig_type = attr->sq_sig_type;
	mutex_init(&qp->lock);
	INIT_WORK(&qp->event_work, omx_qp_event_work);
	qp->attr.state = IB_QPS_RESET;
	qp->attr.port_num = 1;

	/* Unique per device: endpoints are unique per device. */
	base_qp->qp_num = uctx->endpoint << OMX_QPN_SLOT_BITS | slot;
	omx_dbg_qp(qp, "created, type %d%s\n", attr->qp_type,
		   attr->srq ? ", on an SRQ" : "");

	return 0;
}

/*
 * Addressing (IB_QP_AV, IB_QP_ALT_PATH) is never passed to the kernel: on
 * a RoCE port ib_core would resolve a destination MAC through the IP
 * neighbour table, which has no meaning for omx.  Such requests, rate
 * limits and unknown bits fail with -EOPNOTSUPP.
 */
#define OMX_QP_ATTR_UNSUPPORTED						\
	(IB_QP_AV | IB_QP_ALT_PATH | ~IB_QP_ATTR_STANDARD_BITS)

/* Every value modify_qp would record, checked before anything changes. */
static bool omx_qp_values_ok(const struct ib_qp_attr *attr, int mask)
{
	if (mask & IB_QP_STATE && attr->qp_state > IB_QPS_ERR)
		return false;
	if (mask & IB_QP_CUR_STATE && attr->cur_qp_state > IB_QPS_ERR)
		return false;
	if (mask & IB_QP_PATH_MTU &&
	    (attr->path_mtu < IB_MTU_256 || attr->path_mtu > IB_MTU_4096))
		return false;
	if (mask & IB_QP_TIMEOUT && attr->timeout > OMX_QP_MAX_TIMEOUT)
		return false;
	if (mask & IB_QP_RETRY_CNT && attr->retry_cnt > OMX_QP_MAX_RETRY_CNT)
		return false;
	if (mask & IB_QP_RNR_RETRY && attr->rnr_retry > OMX_QP_MAX_RNR_RETRY)
		return false;
	if (mask & IB_QP_MIN_RNR_TIMER &&
	    attr->min_rnr_timer > OMX_QP_MAX_MIN_RNR)
		return false;
	if (mask & IB_QP_MAX_QP_RD_ATOMIC &&
	    attr->max_rd_atomic > OMX_MAX_RD_ATOM)
		return false;
	if (mask & IB_QP_MAX_DEST_RD_ATOMIC &&
	    attr->max_dest_rd_atomic > OMX_MAX_RD_ATOM)
		return false;
	if (mask & IB_QP_ACCESS_FLAGS &&
	    attr->qp_access_flags & ~OMX_QP_ACCESS_SUPPORTED)
		return false;
	if (mask & IB_QP_PKEY_INDEX && attr->pkey_index >= OMX_PKEY_TBL_LEN)
		return false;
	if (mask & IB_QP_PORT && attr->port_num != 1)
		return false;
	if (mask & IB_QP_DEST_QPN && attr->dest_qp_num > OMX_QP_MAX_QPN)
		return false;
	if (mask & IB_QP_PATH_MIG_STATE && attr->path_mig_state > IB_MIG_ARMED)
		return false;
	return true;
}

/*
 * The state a transition starts from.  IB_QP_CUR_STATE is the caller's
 * claim about the current state: it must be the shadow's, or SQE while the
 * shadow is in RTS (the engine moves a UD/UC QP to SQE on its own and the
 * kernel never hears of it).  Anything else would let a caller skip states
 * (e.g. RESET -> RTS by claiming RTS).  Returns -1 for a false claim.
 */
static int omx_qp_cur_state(const struct omx_qp *qp,
			    const struct ib_qp_attr *attr, int mask)
{
	enum ib_qp_state shadow = qp->attr.state;

	if (!(mask & IB_QP_CUR_STATE) || attr->cur_qp_state == shadow)
		return shadow;
	if (attr->cur_qp_state == IB_QPS_SQE && shadow == IB_QPS_RTS)
		return IB_QPS_SQE;
	return -1;
}

/*
 * The transition table is ib_core's (IBTA 11.2.5.2,
 * ib_modify_qp_is_ok()).  The provider never sends IB_QP_AV (the path
 * lives in user space), so a mask is legal iff it is legal as given or
 * with IB_QP_AV added: INIT -> RTR of RC/UC requires AV.
 */
static bool omx_qp_transition_ok(enum ib_qp_state cur, enum ib_qp_state next,
				 enum ib_qp_type type, int mask)
{
	return ib_modify_qp_is_ok(cur, next, type, mask) ||
	       ib_modify_qp_is_ok(cur, next, type, mask | IB_QP_AV);
}

/*
 * Hands event `type` (enum omx_qp_ev) to the QP's event work, unless it was
 * raised in this epoch already or the QP's lifetime budget is spent: never
 * raised in the caller's chain.  Called with qp->lock held.
 */
static void omx_qp_raise(struct omx_qp *qp, unsigned int type)
{
	lockdep_assert_held(&qp->lock);
	if (qp->ev_raised & BIT(type) || qp->ev_count >= OMX_QP_MAX_EVENTS)
		return;
	qp->ev_raised |= BIT(type);
	qp->ev_pending |= BIT(type);
	qp->ev_count++;
	queue_work(omx_wq, &qp->event_work);
}

/*
 * The QP's shadow enters ERR (the application's modify or the engine's
 * report): a QP on an SRQ takes no WQE from it any more, which IBTA
 * signals with the Last WQE Reached event (as rxe does).  Called with
 * qp->lock held, before the state changes.
 */
static void omx_qp_entering_err(struct omx_qp *qp)
{
	if (qp->attr.state != IB_QPS_ERR && qp->base_qp.srq)
		omx_qp_raise(qp, OMX_QP_EV_LAST_WQE);
}

/* Record the attributes of a validated modify_qp.  Under qp->lock. */
static void omx_qp_apply(struct omx_qp *qp, const struct ib_qp_attr *attr,
			 int mask, enum ib_qp_state next)
{
	struct omx_qp_shadow *sh = &qp->attr;

	if (mask & IB_QP_STATE && next == IB_QPS_RESET) {
		/* RESET forgets every attribute (IBTA 10.3.1)... */
		memset(sh, 0, sizeof(*sh));
		sh->port_num = 1;
		/*
		 * ...and starts a new epoch: an engine error reported for
		 * the QP's previous life is stale from now on.
		 */
		qp->epoch++;
		qp->ev_raised = 0;
		qp->ev_pending = 0;
	}
	if (mask & IB_QP_PKEY_INDEX)
		sh->pkey_index = attr->pkey_index;
	if (mask & IB_QP_PORT)
		sh->port_num = attr->port_num;
	if (mask & IB_QP_QKEY)
		sh->qkey = attr->qkey;
	if (mask & IB_QP_ACCESS_FLAGS)
		sh->qp_access_flags = attr->qp_access_flags;
	if (mask & IB_QP_PATH_MTU)
		sh->path_mtu = attr->path_mtu;
	if (mask & IB_QP_DEST_QPN)
		sh->dest_qp_num = attr->dest_qp_num;
	if (mask & IB_QP_RQ_PSN)
		sh->rq_psn = attr->rq_psn & 0xffffff;
	if (mask & IB_QP_SQ_PSN)
		sh->sq_psn = attr->sq_psn & 0xffffff;
	if (mask & IB_QP_MAX_DEST_RD_ATOMIC)
		sh->max_dest_rd_atomic = attr->max_dest_rd_atomic;
	if (mask & IB_QP_MIN_RNR_TIMER)
		sh->min_rnr_timer = attr->min_rnr_timer;
	if (mask & IB_QP_TIMEOUT)
		sh->timeout = attr->timeout;
	if (mask & IB_QP_RETRY_CNT)
		sh->retry_cnt = attr->retry_cnt;
	if (mask & IB_QP_RNR_RETRY)
		sh->rnr_retry = attr->rnr_retry;
	if (mask & IB_QP_MAX_QP_RD_ATOMIC)
		sh->max_rd_atomic = attr->max_rd_atomic;
	if (sh->state != next)
		omx_dbg_qp(qp, "%d -> %d\n", sh->state, next);
	if (next == IB_QPS_ERR)
		omx_qp_entering_err(qp);
	sh->state = next;
}

/*
 * Validate the whole request (mask bits, every value, the claimed current
 * state, the transition and its attribute mask) before changing anything:
 * a refused request leaves the shadow exactly as it was.  The engine
 * applies the same rules (docs/kmod.md section 5).
 */
int omx_modify_qp(struct ib_qp *base_qp, struct ib_qp_attr *attr,
		  int attr_mask, struct ib_udata *udata)
{
	struct omx_qp *qp = to_omx_qp(base_qp);
	enum ib_qp_state next;
	int cur, rv;

	if (attr_mask & OMX_QP_ATTR_UNSUPPORTED)
		return -EOPNOTSUPP;
	rv = omx_udata_in_check(udata);
	if (rv)
		return rv;
	if (!omx_qp_values_ok(attr, attr_mask))
		return -EINVAL;

	mutex_lock(&qp->lock);
	cur = omx_qp_cur_state(qp, attr, attr_mask);
	if (cur < 0) {
		omx_dbg_qp(qp, "current state %d claimed, shadow in %d\n",
			   attr->cur_qp_state, qp->attr.state);
		rv = -EINVAL;
		goto out;
	}
	next = attr_mask & IB_QP_STATE ? attr->qp_state : cur;
	if (!omx_qp_transition_ok(cur, next, base_qp->qp_type, attr_mask)) {
		omx_dbg_qp(qp, "illegal transition %d -> %d, mask 0x%x\n", cur,
			   next, attr_mask);
		rv = -EINVAL;
		goto out;
	}
	omx_qp_apply(qp, attr, attr_mask, next);
out:
	mutex_unlock(&qp->lock);
	return rv;
}

/*
 * OMX_METHOD_QP_EVENT: the engine moved the QP to ERROR on its own.  A
 * request of an earlier epoch (the QP was reset since) changes nothing.
 * Otherwise the shadow follows to ERR and the event, if any, is raised
 * (omx_qp_raise).
 */
void omx_qp_engine_error(struct omx_qp *qp, u32 type, u32 epoch)
{
	mutex_lock(&qp->lock);
	if (epoch != qp->epoch) {
		omx_dbg_qp(qp, "stale epoch %u (now %u)\n", epoch, qp->epoch);
		goto out;
	}
	if (type != OMX_QP_EVENT_NONE)
		omx_qp_raise(qp, type);
	if (qp->attr.state != IB_QPS_ERR)
		omx_dbg_qp(qp, "%d -> %d by the engine, event %u\n",
			   qp->attr.state, IB_QPS_ERR, type);
	omx_qp_entering_err(qp);
	qp->attr.state = IB_QPS_ERR;
out:
	mutex_unlock(&qp->lock);
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
	init_attr->srq = base_qp->srq;
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
	/* ib_destroy_qp_user() refuses a QP still attached (-EBUSY). */
	WARN_ON_ONCE(READ_ONCE(qp->mcast_att));
	/* uverbs holds the QP exclusively: no QP_EVENT can queue it again. */
	cancel_work_sync(&qp->event_work);
	xa_erase(&qp->uctx->qp_xa, qp->slot);
	/*
	 * No mutex_destroy(): a restrack dump may still query the QP until
	 * the core's rdma_restrack_del() returns, after this op.
	 */
	omx_uncharge(qp->user, OMX_RES_QP, &sdev->num_qp);

	return 0;
}

/*
 * A basic shared receive queue.  Its ring and its state live in the
 * provider, which also answers ibv_query_srq: the kernel validates the
 * size, charges the SRQ to the context's user, keeps the armed limit (so
 * that OMX_METHOD_SRQ_LIMIT raises one event per arm) and lets uverbs and
 * restrack track it (the core lists it in "rdma resource show srq" and
 * keeps it alive while QPs use it).  XRC and tag-matching SRQs:
 * -EOPNOTSUPP.  max_wr and max_sge are granted exactly as asked, so the
 * values the core reports back are the request's; the srq_limit of the
 * creation is not an arm (ibv_create_srq(3): irrelevant there).
 */
int omx_create_srq(struct ib_srq *base_srq, struct ib_srq_init_attr *attr,
		   struct ib_udata *udata)
{
	struct omx_device *sdev = to_omx_dev(base_srq->device);
	struct omx_srq *srq = to_omx_srq(base_srq);
	struct ib_srq_attr *sa = &attr->attr;
	struct omx_ucontext *uctx;
	int rv;

	uctx = rdma_udata_to_drv_context(udata, struct omx_ucontext,
					 base_ucontext);
	if (!uctx)
		return -EOPNOTSUPP;	/* kernel SRQs have no data path */
	rv = omx_udata_in_check(udata);
	if (rv)
		return rv;
	if (attr->srq_type != IB_SRQT_BASIC)
		return -EOPNOTSUPP;
	if (sa->max_wr < 1 || sa->max_wr > OMX_MAX_SRQ_WR ||
	    sa->max_sge < 1 || sa->max_sge > OMX_MAX_SRQ_SGE ||
	    sa->srq_limit > sa->max_wr)
		return -EINVAL;

	rv = omx_charge(sdev, uctx->user, OMX_RES_SRQ, &sdev->num_srq,
			OMX_MAX_SRQ);
	if (rv)
		return rv;

	srq->user = uctx->user;
	srq->max_wr = sa->max_wr;
	srq->max_sge = sa->max_sge;
	INIT_WORK(&srq->event_work, omx_srq_event_work);
	omx_dbg(base_srq->device, "EP[%u] max_wr %u max_sge %u limit %u\n",
		uctx->endpoint, sa->max_wr, sa->max_sge, sa->srq_limit);

	return 0;
}

/*
 * The core calls this only once no QP uses the SRQ (usecnt, else -EBUSY
 * before the driver is asked), with the SRQ held exclusively by uverbs.
 * Never fails: uverbs' cleanup at close and disassociation relies on it.
 */
int omx_destroy_srq(struct ib_srq *base_srq, struct ib_udata *udata)
{
	struct omx_device *sdev = to_omx_dev(base_srq->device);
	struct omx_srq *srq = to_omx_srq(base_srq);

	/* uverbs holds the SRQ exclusively: no SRQ_LIMIT can queue it again. */
	cancel_work_sync(&srq->event_work);
	omx_dbg_srq(srq, "destroyed\n");
	omx_uncharge(srq->user, OMX_RES_SRQ, &sdev->num_srq);

	return 0;
}

/*
 * ibv_modify_srq: a new size (IB_SRQ_MAX_WR, 1..OMX_MAX_SRQ_WR; the
 * provider resizes its ring and refuses fewer than the WQEs it holds) and
 * arming (or, with 0, disarming) the limit, which may not exceed the size.
 * uverbs holds the SRQ with READ access only, so two modifies may run at
 * once: each field is written whole.
 */
int omx_modify_srq(struct ib_srq *base_srq, struct ib_srq_attr *attr,
		   enum ib_srq_attr_mask mask, struct ib_udata *udata)
{
	struct omx_srq *srq = to_omx_srq(base_srq);
	u32 max_wr = READ_ONCE(srq->max_wr);
	int rv;

	rv = omx_udata_in_check(udata);
	if (rv)
		return rv;
	if (mask & ~(IB_SRQ_MAX_WR | IB_SRQ_LIMIT))
		return -EINVAL;
	if (mask & IB_SRQ_MAX_WR)
		max_wr = attr->max_wr;
	if (max_wr < 1 || max_wr > OMX_MAX_SRQ_WR ||
	    (mask & IB_SRQ_LIMIT && attr->srq_limit > max_wr))
		return -EINVAL;
	WRITE_ONCE(srq->max_wr, max_wr);
	if (mask & IB_SRQ_LIMIT)
		WRITE_ONCE(srq->limit, attr->srq_limit);
	omx_dbg_srq(srq, "max_wr %u limit %u\n", max_wr, READ_ONCE(srq->limit));

	return 0;
}

/*
 * Is [start, start + length) covered, without a hole, by VMAs of the
 * calling process that allow what @access implies?  Everything needs
 * VM_READ; local write, remote write and remote atomic need VM_WRITE.
 * VM_IO/VM_PFNMAP ranges are refused too, as ib_umem_get() (which cannot
 * pin them) refuses them.  -EFAULT otherwise, as hardware providers
 * return through ib_umem_get().  The walk visits each VMA once (the
 * cursor jumps to the VMA's end), so it is bounded by the number of VMAs
 * of the process.
 */
static int omx_mr_check_vmas(u64 start, u64 length, int access)
{
	unsigned long need = VM_READ, addr = start, end = start + length;
	struct mm_struct *mm = current->mm;
	struct vm_area_struct *vma;
	int rv = 0;

	if (access & (IB_ACCESS_LOCAL_WRITE | IB_ACCESS_REMOTE_WRITE |
		      IB_ACCESS_REMOTE_ATOMIC))
		need |= VM_WRITE;
	if (!mm)
		return -EFAULT;
	if (mmap_read_lock_killable(mm))
		return -EINTR;
	while (addr < end) {
		vma = find_vma(mm, addr);
		if (!vma || vma->vm_start > addr ||
		    (vma->vm_flags & need) != need ||
		    vma->vm_flags & (VM_IO | VM_PFNMAP)) {
			rv = -EFAULT;
			break;
		}
		addr = vma->vm_end;
	}
	mmap_read_unlock(mm);
	return rv;
}

/*
 * Range checks of reg_user_mr, those of ib_umem_get(): a zero length and
 * a range whose end (rounded up to a page) wraps are -EINVAL, as is an
 * iova range that wraps.  An on-demand registration (including the
 * implicit MR, start 0 / length U64_MAX) is not checked against the
 * process's mappings: like hardware ODP, its pages are looked up when
 * used.  Any other range must be mapped with the rights @access implies.
 */
static int omx_mr_check_range(u64 start, u64 length, u64 virt, int access)
{
	u64 end;

	if (!length || check_add_overflow(virt, length, &end) ||
	    check_add_overflow(start, length, &end))
		return -EINVAL;
	if (access & IB_ACCESS_ON_DEMAND)
		return 0;
	if (PAGE_ALIGN(end) < end)
		return -EINVAL;
	return omx_mr_check_vmas(start, length, access);
}

/*
 * A key for a user buffer: no pinning, no ib_umem, no page list.  The
 * provider reads and writes its own memory; the kernel checks the range
 * is mapped as the access flags need (unless on demand), hands out a
 * device-unique key and lists the MR in restrack.  The core has already
 * run ib_check_mr_access() (remote write/atomic without local write is
 * refused there).
 *
 * Key: index << OMX_MR_TAG_BITS | tag, the index from the device's cyclic
 * allocator (1..OMX_MR_INDEX_MAX), the tag OMX_MR_TAG_BITS random bits
 * drawn for this registration, so a key seen once says little about the
 * next one or about the keys of other contexts.
 */
struct ib_mr *omx_reg_user_mr(struct ib_pd *base_pd, u64 start, u64 length,
			      u64 virt, int access, struct ib_udata *udata)
{
	struct omx_device *sdev = to_omx_dev(base_pd->device);
	struct omx_user *user = to_omx_pd(base_pd)->user;
	struct omx_mr *mr;
	u32 index;
	int rv;

	if (access & ~OMX_MR_ACCESS_SUPPORTED)
		return ERR_PTR(-EOPNOTSUPP);
	rv = omx_udata_in_check(udata);
	if (rv)
		return ERR_PTR(rv);
	rv = omx_mr_check_range(start, length, virt, access);
	if (rv)
		return ERR_PTR(rv);
	rv = omx_charge(sdev, user, OMX_RES_MR, &sdev->num_mr, OMX_MAX_MR);
	if (rv)
		return ERR_PTR(rv);

	mr = kzalloc(sizeof(*mr), GFP_KERNEL_ACCOUNT);
	if (!mr) {
		rv = -ENOMEM;
		goto err_count;
	}

	rv = xa_alloc_cyclic(&sdev->mr_xa, &index, mr,
			     XA_LIMIT(OMX_MR_INDEX_MIN, OMX_MR_INDEX_MAX),
			     &sdev->mr_next, GFP_KERNEL_ACCOUNT);
	if (rv < 0) {
		rv = rv == -EBUSY ? -ENOMEM : rv;
		goto err_free;
	}

	mr->user = user;
	mr->index = index;
	mr->start = start;
	mr->access = access;
	mr->base_mr.lkey = index << OMX_MR_TAG_BITS |
			   (get_random_u32() & OMX_MR_TAG_MASK);
	mr->base_mr.rkey = mr->base_mr.lkey;
	/* The core sets iova and length from the command. */

	return &mr->base_mr;

err_free:
	kfree(mr);
err_count:
	omx_uncharge(user, OMX_RES_MR, &sdev->num_mr);
	return ERR_PTR(rv);
}

int omx_dereg_mr(struct ib_mr *base_mr, struct ib_udata *udata)
{
	struct omx_device *sdev = to_omx_dev(base_mr->device);
	struct omx_mr *mr = to_omx_mr(base_mr);
	struct omx_user *user = mr->user;

	omx_dbg_mr(mr, "deregistered\n");
	xa_erase(&sdev->mr_xa, mr->index);
	kfree(mr);
	omx_uncharge(user, OMX_RES_MR, &sdev->num_mr);

	return 0;
}

/*
 * A memory window: an rkey and nothing else.  The core allocated the
 * omx_mw, checked the type (1 or 2) and holds the PD; the provider binds
 * the window, invalidates it and checks every access through it.
 *
 * The rkey is made like an MR key (index << OMX_MR_TAG_BITS | random
 * tag) from the same allocator, mr_xa, so a window's index is never an
 * MR's: the provider tells windows from MRs by the key alone.
 */
int omx_alloc_mw(struct ib_mw *base_mw, struct ib_udata *udata)
{
	struct omx_device *sdev = to_omx_dev(base_mw->device);
	struct omx_user *user = to_omx_pd(base_mw->pd)->user;
	struct omx_mw *mw = to_omx_mw(base_mw);
	u32 index;
	int rv;

	rv = omx_udata_in_check(udata);
	if (rv)
		return rv;
	rv = omx_charge(sdev, user, OMX_RES_MW, &sdev->num_mw, OMX_MAX_MW);
	if (rv)
		return rv;

	rv = xa_alloc_cyclic(&sdev->mr_xa, &index, mw,
			     XA_LIMIT(OMX_MR_INDEX_MIN, OMX_MR_INDEX_MAX),
			     &sdev->mr_next, GFP_KERNEL_ACCOUNT);
	if (rv < 0) {
		omx_uncharge(user, OMX_RES_MW, &sdev->num_mw);
		return rv == -EBUSY ? -ENOMEM : rv;
	}

	mw->user = user;
	mw->index = index;
	mw->base_mw.rkey = index << OMX_MR_TAG_BITS |
			   (get_random_u32() & OMX_MR_TAG_MASK);
	omx_dbg_mw(mw, "type %d\n", mw->base_mw.type);
	return 0;
}

/* The core frees the omx_mw and drops the PD afterwards. */
int omx_dealloc_mw(struct ib_mw *base_mw)
{
	struct omx_device *sdev = to_omx_dev(base_mw->device);
	struct omx_mw *mw = to_omx_mw(base_mw);

	omx_dbg_mw(mw, "deallocated\n");
	xa_erase(&sdev->mr_xa, mw->index);
	omx_uncharge(mw->user, OMX_RES_MW, &sdev->num_mw);
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
				   atomic_read(&cq->notify_pending)) ||
	    /* unread and owed belong to the work: a racy snapshot. */
	    rdma_nl_put_driver_u32(msg, "unread", READ_ONCE(cq->unread)) ||
	    rdma_nl_put_driver_u32(msg, "owed", READ_ONCE(cq->owed)) ||
	    rdma_nl_put_driver_u32(msg, "channel", !!cq->channel)) {
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
	u32 epoch, events;

	table = nla_nest_start(msg, RDMA_NLDEV_ATTR_DRIVER);
	if (!table)
		return -EMSGSIZE;
	mutex_lock(&qp->lock);
	epoch = qp->epoch;
	events = qp->ev_count;
	mutex_unlock(&qp->lock);
	if (rdma_nl_put_driver_u32(msg, "endpoint", qp->uctx->endpoint) ||
	    rdma_nl_put_driver_u32(msg, "slot", qp->slot) ||
	    rdma_nl_put_driver_u32(msg, "epoch", epoch) ||
	    rdma_nl_put_driver_u32(msg, "events", events)) {
		nla_nest_cancel(msg, table);
		return -EMSGSIZE;
	}
	nla_nest_end(msg, table);
	return 0;
}
