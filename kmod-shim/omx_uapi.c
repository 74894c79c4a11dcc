// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * rdma_omx: driver-specific uverbs method OMX_METHOD_CQ_NOTIFY.
 *
 * The provider arms CQs and produces completions in user space.  When it
 * owes the application a completion event it calls this method; the kernel
 * then raises the CQ's comp_handler (ib_uverbs_comp_handler, which queues
 * one event on the CQ's completion channel).
 *
 * Rules (IB midlayer locking):
 *  - the callback never runs in the caller's call chain: the method only
 *    counts the request and queues cq->notify_work on omx_wq;
 *  - one handler at a time per CQ: a work item never runs concurrently
 *    with itself, and in_handler WARNs if that is ever violated;
 *  - exactly one comp_handler call per successful method call, until
 *    destroy_cq, which cancels the work and drops what is still pending.
 *
 * References: the method holds the CQ uobject with READ access, so the CQ
 * cannot be destroyed while it runs.  A queued work item needs no
 * reference: destroy_cq cancels it synchronously before the core frees
 * the CQ.  After device removal the core revokes the method.
 */
#include <rdma/ib_verbs.h>
#include <rdma/uverbs_ioctl.h>

#include "rdma_omx.h"

#define UVERBS_MODULE_NAME rdma_omx
#include <rdma/uverbs_named_ioctl.h>

void omx_cq_notify_work(struct work_struct *work)
{
	struct omx_cq *cq = container_of(work, struct omx_cq, notify_work);
	struct ib_cq *base_cq = &cq->base_cq;

	while (atomic_add_unless(&cq->notify_pending, -1, 0)) {
		WARN_ON_ONCE(atomic_xchg(&cq->in_handler, 1));
		if (base_cq->comp_handler)
			base_cq->comp_handler(base_cq, base_cq->cq_context);
		atomic_set(&cq->in_handler, 0);
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

	/* Bound the backlog an application can queue without reading. */
	if (!atomic_add_unless(&cq->notify_pending, 1, OMX_CQ_MAX_PENDING))
		return -EAGAIN;
	queue_work(omx_wq, &cq->notify_work);

	return 0;
}

DECLARE_UVERBS_NAMED_METHOD(OMX_METHOD_CQ_NOTIFY,
			    UVERBS_ATTR_IDR(OMX_ATTR_CQ_NOTIFY_HANDLE,
					    UVERBS_OBJECT_CQ,
					    UVERBS_ACCESS_READ,
					    UA_MANDATORY));

ADD_UVERBS_METHODS(omx_cq,
		   UVERBS_OBJECT_CQ,
		   &UVERBS_METHOD(OMX_METHOD_CQ_NOTIFY));

const struct uapi_definition omx_uapi_defs[] = {
	UAPI_DEF_CHAIN_OBJ_TREE(UVERBS_OBJECT_CQ, &omx_cq),
	{},
};
