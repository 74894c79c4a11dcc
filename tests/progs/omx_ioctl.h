/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Direct call of the rdma_omx driver method OMX_METHOD_CQ_NOTIFY, bypassing
 * the provider, so the kernel's completion-event path is tested on its own.
 */
#ifndef OMX_TEST_IOCTL_H
#define OMX_TEST_IOCTL_H

#include <sys/ioctl.h>
#include <rdma/rdma_user_ioctl_cmds.h>
#include <rdma/ib_user_ioctl_cmds.h>
#include "rdma_omx_abi.h"

/* Returns 0 or -errno. */
static inline int omx_cq_notify(struct ibv_cq *cq)
{
	struct {
		struct ib_uverbs_ioctl_hdr hdr;
		struct ib_uverbs_attr attr;
	} cmd;

	memset(&cmd, 0, sizeof(cmd));
	cmd.hdr.length = sizeof(cmd);
	cmd.hdr.object_id = UVERBS_OBJECT_CQ;
	cmd.hdr.method_id = OMX_METHOD_CQ_NOTIFY;
	cmd.hdr.num_attrs = 1;
	cmd.hdr.driver_id = OMX_DRIVER_ID;
	cmd.attr.attr_id = OMX_ATTR_CQ_NOTIFY_HANDLE;
	cmd.attr.flags = UVERBS_ATTR_F_MANDATORY;
	cmd.attr.data = cq->handle;
	if (ioctl(cq->context->cmd_fd, RDMA_VERBS_IOCTL, &cmd))
		return -errno;
	return 0;
}

#endif
