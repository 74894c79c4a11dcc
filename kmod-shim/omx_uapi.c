// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * rdma_omx: driver-specific uverbs methods (include/uapi/rdma_omx_abi.h)
 * and the work items that raise the events they ask for.
 *
 *  OMX_METHOD_CQ_NOTIFY   completion event on the CQ's channel
 *  OMX_METHOD_CQ_ERROR    IB_EVENT_CQ_ERR, once per CQ
 *  OMX_METHOD_QP_EVENT    the engine's own move to ERROR (omx_verbs.c keeps
 *                         the shadow) and the QP's affiliated event
 *  OMX_METHOD_SRQ_LIMIT   IB_EVENT_SRQ_LIMIT_REACHED, once per arm
 *  OMX_METHOD_CTX_FATAL_FD  eventfd signalled at disassociation
 *
 * The provider arms CQs and produces completions in user space.  When it
 * owes the application a completion event it calls CQ_NOTIFY; the kernel
 * then raises the CQ's comp_handler (ib_uverbs_comp_handler, which queues
 * one event on the CQ's completion channel).
 *
 * Rules (IB midlayer locking):
 *  - no callback runs in the caller's call chain: the methods only record
 *    the request and queue the CQ's work (cq->work) or the QP's event work
 *    (qp->event_work) on omx_wq;
 *  - one handler at a time per CQ: comp_handler and CQ_ERR are both raised
 *    by cq->work, a work item never runs concurrently with itself, and
 *    in_handler WARNs if that is ever violated;
 *  - completion events the application has not read are bounded per CQ
 *    (OMX_CQ_MAX_UNREAD, see omx_cq_work()); below the bound every
 *    successful CQ_NOTIFY raises exactly one event.
 *
 * References: the methods hold their CQ/QP/SRQ uobject with READ access, so
 * the object cannot be destroyed while they run.  A queued work item needs
 * no reference: destroy_cq/destroy_qp cancel it synchronously before the
 * core frees the object.  The CQ's channel file is pinned by the CQ
 * (omx_verbs.c) for as long as the work may poll it.  After device removal
 * the core revokes the methods.  No lock of ours is held while a handler
 * runs.
 */
#include <linux/eventfd.h>
#include <linux/poll.h>
#include <rdma/ib_verbs.h>
#include <rdma/uverbs_ioctl.h>

#include "rdma_omx.h"

#define UVERBS_MODULE_NAME rdma_omx
#include <rdma/uverbs_named_ioctl.h>

/* Does the CQ's completion channel hold events nobody has read yet? */
static bool omx_cq_channel_unread(struct omx_cq *cq)
{
	return vfs_poll(cq->channel, NULL) & EPOLLIN;
}

static void omx_cq_raise_comp(struct omx_cq *cq)
{
	struct ib_cq *base_cq = &cq->base_cq;

	WARN_ON_ONCE(atomic_xchg(&cq->in_handler, 1));
	base_cq->comp_handler(base_cq, base_cq->cq_context);
	atomic_set(&cq->in_handler, 0);
	WRITE_ONCE(cq->unread, cq->unread + 1);
}

static void omx_cq_raise_error(struct omx_cq *cq)
{
	struct ib_cq *base_cq = &cq->base_cq;
	struct ib_event ev = {
		.device = base_cq->device,
		.element.cq = base_cq,
		.event = IB_EVENT_CQ_ERR,
	};

	if (!test_bit(OMX_CQ_ERR_REQUESTED, &cq->flags) ||
	    test_and_set_bit(OMX_CQ_ERR_RAISED, &cq->flags))
		return;
	omx_dbg_cq(cq, "CQ_ERR\n");
	WARN_ON_ONCE(atomic_xchg(&cq->in_handler, 1));
	if (base_cq->event_handler)
		base_cq->event_handler(&ev, base_cq->cq_context);
	atomic_set(&cq->in_handler, 0);
}

/* Owed and the channel still unread: look again later, backing off. */
static void omx_cq_recheck_later(struct omx_cq *cq, unsigned int ms)
{
	WRITE_ONCE(cq->owed, true);
	cq->recheck_ms = ms;
	queue_delayed_work(omx_wq, &cq->work, msecs_to_jiffies(ms));
}

/*
 * The CQ's only work item.  Raises CQ_ERR if asked, then one completion
 * event per request, as long as the CQ has raised fewer than
 * OMX_CQ_MAX_UNREAD events since its channel was last seen empty.  Before
 * each event it asks the channel (its poll operation, as any reader
 * could) whether anything is unread: empty means the application has
 * read everything, so counting starts again.  At the bound, with the
 * channel still unread, the request is folded into one owed event and the
 * work comes back after recheck_ms (1 ms, doubling up to 128 ms) until
 * the channel has been read, then raises the owed event once.  Requests
 * made meanwhile are folded into it too: one wake-up is as good as
 * several.  So the channel never holds more than OMX_CQ_MAX_UNREAD events
 * of this CQ, and an application that keeps reading sees exactly one
 * event per request.
 */
void omx_cq_work(struct work_struct *work)
{
	struct omx_cq *cq = container_of(to_delayed_work(work), struct omx_cq,
					 work);

	omx_cq_raise_error(cq);
	if (!cq->channel)
		return;

	if (cq->owed) {
		if (omx_cq_channel_unread(cq)) {
			unsigned int ms = min_t(unsigned int, cq->recheck_ms * 2,
						OMX_CQ_RECHECK_MAX_MS);

			omx_cq_recheck_later(cq, ms);
			return;
		}
		WRITE_ONCE(cq->unread, 0);
		WRITE_ONCE(cq->owed, false);
		atomic_set(&cq->notify_pending, 0);
		omx_cq_raise_comp(cq);
	}

	while (atomic_add_unless(&cq->notify_pending, -1, 0)) {
		if (cq->unread && !omx_cq_channel_unread(cq)) {
			WRITE_ONCE(cq->unread, 0);
		} else if (cq->unread >= OMX_CQ_MAX_UNREAD) {
			omx_cq_recheck_later(cq, OMX_CQ_RECHECK_MIN_MS);
			return;
		}
		omx_cq_raise_comp(cq);
	}
}

static int UVERBS_HANDLER(OMX_METHOD_CQ_NOTIFY)(struct uverbs_attr_bundle *attrs)
{
	struct ib_cq *base_cq;
	struct omx_cq *cq;

	base_cq = uverbs_attr_get_obj(attrs, OMX_ATTR_CQ_NOTIFY_HANDLE);
	if (IS_ERR(base_cq))
		return PTR_ERR(base_cq);
	cq = to_omx_cq(base_cq);

	/* Without a channel the event would go nowhere. */
	if (!cq->channel)
		return 0;
	/*
	 * A saturated counter folds the request into those already waiting
	 * (at least one of them is raised).  Queuing a work that is already
	 * pending, immediately or for an owed re-check, does nothing: a
	 * request never shortens the backoff.
	 */
	atomic_add_unless(&cq->notify_pending, 1, OMX_CQ_MAX_PENDING);
	queue_delayed_work(omx_wq, &cq->work, 0);

	return 0;
}

static int UVERBS_HANDLER(OMX_METHOD_CQ_ERROR)(struct uverbs_attr_bundle *attrs)
{
	struct ib_cq *base_cq;
	struct omx_cq *cq;

	base_cq = uverbs_attr_get_obj(attrs, OMX_ATTR_CQ_ERROR_HANDLE);
	if (IS_ERR(base_cq))
		return PTR_ERR(base_cq);
	cq = to_omx_cq(base_cq);

	/* Once per CQ; run the work now even if it waits for a re-check. */
	if (!test_and_set_bit(OMX_CQ_ERR_REQUESTED, &cq->flags))
		mod_delayed_work(omx_wq, &cq->work, 0);
	return 0;
}

static const enum ib_event_type omx_qp_event_type[OMX_QP_EV_MAX + 1] = {
	[OMX_QP_EVENT_FATAL] = IB_EVENT_QP_FATAL,
	[OMX_QP_EVENT_REQ_ERR] = IB_EVENT_QP_REQ_ERR,
	[OMX_QP_EVENT_ACCESS_ERR] = IB_EVENT_QP_ACCESS_ERR,
	[OMX_QP_EV_LAST_WQE] = IB_EVENT_QP_LAST_WQE_REACHED,
};

/* Raises the affiliated events OMX_METHOD_QP_EVENT queued, outside qp->lock. */
void omx_qp_event_work(struct work_struct *work)
{
	struct omx_qp *qp = container_of(work, struct omx_qp, event_work);
	struct ib_qp *base_qp = &qp->base_qp;
	struct ib_event ev = {
		.device = base_qp->device,
		.element.qp = base_qp,
	};
	unsigned int type;
	u8 pending;

	mutex_lock(&qp->lock);
	pending = qp->ev_pending;
	qp->ev_pending = 0;
	mutex_unlock(&qp->lock);

	/* The error first, then that the SRQ's last WQE was consumed. */
	for (type = OMX_QP_EVENT_FATAL; type <= OMX_QP_EV_MAX; type++) {
		if (!(pending & BIT(type)) || !base_qp->event_handler)
			continue;
		ev.event = omx_qp_event_type[type];
		omx_dbg_qp(qp, "event %d\n", ev.event);
		base_qp->event_handler(&ev, base_qp->qp_context);
	}
}

static int UVERBS_HANDLER(OMX_METHOD_QP_EVENT)(struct uverbs_attr_bundle *attrs)
{
	struct ib_qp *base_qp;
	u32 type, epoch;
	int rv;

	base_qp = uverbs_attr_get_obj(attrs, OMX_ATTR_QP_EVENT_HANDLE);
	if (IS_ERR(base_qp))
		return PTR_ERR(base_qp);
	rv = uverbs_copy_from(&type, attrs, OMX_ATTR_QP_EVENT_TYPE);
	if (rv)
		return rv;
	rv = uverbs_copy_from(&epoch, attrs, OMX_ATTR_QP_EVENT_EPOCH);
	if (rv)
		return rv;
	if (type > OMX_QP_EVENT_MAX)
		return -EINVAL;

	omx_qp_engine_error(to_omx_qp(base_qp), type, epoch);
	return 0;
}

/* Raises the SRQ limit event OMX_METHOD_SRQ_LIMIT queued. */
void omx_srq_event_work(struct work_struct *work)
{
	struct omx_srq *srq = container_of(work, struct omx_srq, event_work);
	struct ib_srq *base_srq = &srq->base_srq;
	struct ib_event ev = {
		.device = base_srq->device,
		.element.srq = base_srq,
		.event = IB_EVENT_SRQ_LIMIT_REACHED,
	};

	omx_dbg_srq(srq, "limit reached\n");
	if (base_srq->event_handler)
		base_srq->event_handler(&ev, base_srq->srq_context);
}

static int UVERBS_HANDLER(OMX_METHOD_SRQ_LIMIT)(struct uverbs_attr_bundle *attrs)
{
	struct ib_srq *base_srq;
	struct omx_srq *srq;

	base_srq = uverbs_attr_get_obj(attrs, OMX_ATTR_SRQ_LIMIT_HANDLE);
	if (IS_ERR(base_srq))
		return PTR_ERR(base_srq);
	srq = to_omx_srq(base_srq);
	/* One event per arm: with nothing armed, nothing is raised. */
	if (xchg(&srq->limit, 0))
		queue_work(omx_wq, &srq->event_work);
	return 0;
}

static int UVERBS_HANDLER(OMX_METHOD_CTX_FATAL_FD)(struct uverbs_attr_bundle *attrs)
{
	struct ib_ucontext *base_ctx;
	struct eventfd_ctx *efd;
	s32 fd;
	int rv;

	base_ctx = ib_uverbs_get_ucontext(attrs);
	if (IS_ERR(base_ctx))
		return PTR_ERR(base_ctx);
	rv = uverbs_copy_from(&fd, attrs, OMX_ATTR_CTX_FATAL_FD_FD);
	if (rv)
		return rv;

	/* -EBADF for a closed fd, -EINVAL for one that is no eventfd. */
	efd = eventfd_ctx_fdget(fd);
	if (IS_ERR(efd))
		return PTR_ERR(efd);
	/* Once per context; dealloc_ucontext puts it. */
	if (cmpxchg(&to_omx_ctx(base_ctx)->fatal_fd, NULL, efd)) {
		eventfd_ctx_put(efd);
		return -EBUSY;
	}
	return 0;
}

DECLARE_UVERBS_NAMED_METHOD(OMX_METHOD_CQ_NOTIFY,
			    UVERBS_ATTR_IDR(OMX_ATTR_CQ_NOTIFY_HANDLE,
					    UVERBS_OBJECT_CQ,
					    UVERBS_ACCESS_READ,
					    UA_MANDATORY));

DECLARE_UVERBS_NAMED_METHOD(OMX_METHOD_CQ_ERROR,
			    UVERBS_ATTR_IDR(OMX_ATTR_CQ_ERROR_HANDLE,
					    UVERBS_OBJECT_CQ,
					    UVERBS_ACCESS_READ,
					    UA_MANDATORY));

DECLARE_UVERBS_NAMED_METHOD(OMX_METHOD_QP_EVENT,
			    UVERBS_ATTR_IDR(OMX_ATTR_QP_EVENT_HANDLE,
					    UVERBS_OBJECT_QP,
					    UVERBS_ACCESS_READ,
					    UA_MANDATORY),
			    UVERBS_ATTR_PTR_IN(OMX_ATTR_QP_EVENT_TYPE,
					       UVERBS_ATTR_TYPE(u32),
					       UA_MANDATORY),
			    UVERBS_ATTR_PTR_IN(OMX_ATTR_QP_EVENT_EPOCH,
					       UVERBS_ATTR_TYPE(u32),
					       UA_MANDATORY));

DECLARE_UVERBS_NAMED_METHOD(OMX_METHOD_SRQ_LIMIT,
			    UVERBS_ATTR_IDR(OMX_ATTR_SRQ_LIMIT_HANDLE,
					    UVERBS_OBJECT_SRQ,
					    UVERBS_ACCESS_READ,
					    UA_MANDATORY));

DECLARE_UVERBS_NAMED_METHOD(OMX_METHOD_CTX_FATAL_FD,
			    UVERBS_ATTR_PTR_IN(OMX_ATTR_CTX_FATAL_FD_FD,
					       UVERBS_ATTR_TYPE(s32),
					       UA_MANDATORY));

ADD_UVERBS_METHODS(omx_cq_methods,
		   UVERBS_OBJECT_CQ,
		   &UVERBS_METHOD(OMX_METHOD_CQ_NOTIFY),
		   &UVERBS_METHOD(OMX_METHOD_CQ_ERROR));

ADD_UVERBS_METHODS(omx_qp_methods,
		   UVERBS_OBJECT_QP,
		   &UVERBS_METHOD(OMX_METHOD_QP_EVENT));

ADD_UVERBS_METHODS(omx_srq_methods,
		   UVERBS_OBJECT_SRQ,
		   &UVERBS_METHOD(OMX_METHOD_SRQ_LIMIT));

ADD_UVERBS_METHODS(omx_device_methods,
		   UVERBS_OBJECT_DEVICE,
		   &UVERBS_METHOD(OMX_METHOD_CTX_FATAL_FD));

const struct uapi_definition omx_uapi_defs[] = {
	UAPI_DEF_CHAIN_OBJ_TREE(UVERBS_OBJECT_CQ, &omx_cq_methods),
	UAPI_DEF_CHAIN_OBJ_TREE(UVERBS_OBJECT_QP, &omx_qp_methods),
	UAPI_DEF_CHAIN_OBJ_TREE(UVERBS_OBJECT_SRQ, &omx_srq_methods),
	UAPI_DEF_CHAIN_OBJ_TREE(UVERBS_OBJECT_DEVICE, &omx_device_methods),
	{},
};
