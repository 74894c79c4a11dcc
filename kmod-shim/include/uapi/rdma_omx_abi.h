/* SPDX-License-Identifier: ((GPL-2.0 WITH Linux-syscall-note) OR BSD-2-Clause) */
/*
 * rdma_omx user/kernel ABI.
 *
 * This header is the only contract between the kernel module rdma_omx
 * (kmod-shim/) and the user-space verbs provider libomx-rdmav34.so
 * (provider/).  The provider reads it through bindgen; C test programs
 * include it directly.  Any change to a structure below bumps
 * OMX_UVERBS_ABI_VERSION, which is also ib_device_ops.uverbs_abi_ver and
 * the provider's match_min/max_abi_version.
 *
 * All structures are naturally aligned, little/big-endian neutral (host
 * order, as every uverbs structure) and padded to 8 bytes.
 */
#ifndef RDMA_OMX_ABI_H
#define RDMA_OMX_ABI_H

#include <linux/types.h>

/* uverbs ABI version of the omx driver (ib_device_ops.uverbs_abi_ver). */
#define OMX_UVERBS_ABI_VERSION 2

/*
 * Driver id used in ib_device_ops.driver_id and in every ioctl header
 * (ib_uverbs_ioctl_hdr.driver_id).  rdma_omx is out of tree and owns no
 * upstream id, so it registers as RDMA_DRIVER_UNKNOWN (0) and the provider
 * matches devices through the sysfs attribute below instead.
 */
#define OMX_DRIVER_ID 0

/*
 * sysfs attribute present on every rdma_omx ib_device:
 * /sys/class/infiniband/<ibdev>/omx_abi_version holds the decimal
 * OMX_UVERBS_ABI_VERSION followed by a newline.  The provider's
 * match_device() claims a device iff this file exists and parses.
 */
#define OMX_SYSFS_ABI_ATTR "omx_abi_version"

/* Open-MX EtherType used by the data path (no packet I/O in the kernel). */
#define OMX_ETHERTYPE 0x86DF

/*
 * Endpoints and QP numbers.
 *
 * Every user context (ib_ucontext, one per ibv_open_device()) is an
 * endpoint, as in Open-MX: the kernel hands out an endpoint index unique on
 * its device.  QP numbers are unique per device and carry the endpoint of
 * the owning context in their upper bits, so a receiver can steer a frame
 * to the right process from the destination QPN alone:
 *
 *     qpn = endpoint << OMX_QPN_SLOT_BITS | slot
 *
 * Endpoint 0 is never handed out, so QPN 0 and 1 (the IB special QPs)
 * never name a user QP.
 */
#define OMX_QPN_SLOT_BITS 12
#define OMX_QPN_SLOT_MASK ((1U << OMX_QPN_SLOT_BITS) - 1)
#define OMX_MAX_QP_PER_CONTEXT (1U << OMX_QPN_SLOT_BITS)
#define OMX_ENDPOINT_MIN 1
#define OMX_ENDPOINT_MAX ((1U << (24 - OMX_QPN_SLOT_BITS)) - 1)

/*
 * Address handles live in user space only (the provider resolves and
 * keeps them); the device reports this as max_ah and the provider holds
 * each context to it.
 */
#define OMX_MAX_AH 65536U

/*
 * Largest CQ (max_cqe, as mlx5): the ring lives in the provider, which
 * refuses a larger cqe before allocating it; the kernel refuses it too.
 */
#define OMX_MAX_CQE 4194303U

static inline __u32 omx_qpn_endpoint(__u32 qpn)
{
	return (qpn & 0xffffff) >> OMX_QPN_SLOT_BITS;
}

/* omx_alloc_ucontext_resp.flags */
enum omx_ucontext_flags {
	/*
	 * The device's netdev lives in the network namespace of the process
	 * that opened the context, so the provider can bind an AF_PACKET
	 * socket to ifindex.
	 */
	OMX_UCTX_NETDEV_IN_CALLER_NS = 1 << 0,
};

/* Driver data of GET_CONTEXT (ibv_cmd_get_context() response tail). */
struct omx_alloc_ucontext_resp {
	__u32 abi_version;	/* OMX_UVERBS_ABI_VERSION */
	__u32 endpoint;		/* endpoint index of this context */
	__u32 ifindex;		/* netdev ifindex (valid in the netdev's netns) */
	__u32 flags;		/* enum omx_ucontext_flags */
	__u8 mac[6];		/* netdev MAC address when the context opened */
	__u16 reserved;
	__u32 netdev_mtu;	/* netdev MTU when the context opened */
	__u32 max_qp_per_context; /* OMX_MAX_QP_PER_CONTEXT */
};

/*
 * Driver-specific uverbs ioctl methods.  IDs live in the driver namespace
 * (1 << UVERBS_ID_NS_SHIFT = 0x1000).  Every method is called by the
 * provider's progress thread, never from inside a post or poll call, and
 * every callback it causes runs later on a kernel work item.
 *
 * OMX_METHOD_CQ_NOTIFY on UVERBS_OBJECT_CQ (3): ask the kernel to raise the
 * completion event of a CQ on its completion channel.  The event is raised
 * later by the CQ's serialized worker, never in the caller's call chain.
 * Attribute OMX_ATTR_CQ_NOTIFY_HANDLE is the CQ's uverbs handle
 * (ibv_cq.handle), mandatory.  Events the application has not read yet are
 * bounded per CQ: a request made while the CQ already has that many
 * unread events is folded into them (one wake-up is as good as several)
 * and raised once the channel has been read.
 *
 * OMX_METHOD_CQ_ERROR on UVERBS_OBJECT_CQ: the CQ overran (the provider
 * dropped a completion).  Raises IB_EVENT_CQ_ERR on the context's async
 * event file, at most once per CQ.  Attribute OMX_ATTR_CQ_ERROR_HANDLE.
 *
 * OMX_METHOD_QP_EVENT on UVERBS_OBJECT_QP (4): the provider's engine moved
 * the QP to ERROR on its own (a fatal completion error, a NAK, a CQ
 * overrun): the kernel's shadow follows it to IB_QPS_ERR, and the QP's
 * affiliated asynchronous event (enum omx_qp_event; OMX_QP_EVENT_NONE
 * raises none) is raised on the context's async event file.  Attributes,
 * all mandatory: OMX_ATTR_QP_EVENT_HANDLE (the QP's uverbs handle),
 * OMX_ATTR_QP_EVENT_TYPE (u32, enum omx_qp_event) and
 * OMX_ATTR_QP_EVENT_EPOCH (u32: how many times the QP had been modified to
 * RESET when the engine made the change; a request from an earlier epoch
 * is stale and ignored, so it never moves a QP the application has reset
 * since).  Each type is raised at most once per epoch, and a QP raises at
 * most OMX_QP_MAX_EVENTS events in its life; further requests succeed and
 * raise nothing.  A QP on an SRQ also raises IBV_EVENT_QP_LAST_WQE_REACHED
 * when its shadow enters ERR, by this method or by modify_qp (counted in
 * the same budget).
 *
 * OMX_METHOD_SRQ_LIMIT on UVERBS_OBJECT_SRQ (5): the provider's SRQ ring
 * fell below the limit armed by ibv_modify_srq(IBV_SRQ_LIMIT) (which the
 * kernel records).  Raises IB_EVENT_SRQ_LIMIT_REACHED on the context's
 * async event file and disarms, so one arm raises at most one event; a
 * request with nothing armed succeeds and raises nothing.  Attribute
 * OMX_ATTR_SRQ_LIMIT_HANDLE (the SRQ's uverbs handle), mandatory.
 *
 * OMX_METHOD_CTX_FATAL_FD on UVERBS_OBJECT_DEVICE (0): register an eventfd
 * that the kernel signals when the device is removed under the context
 * (disassociation: netdev unregistered, rdma link delete, rmmod), so the
 * provider stops its packet I/O at once.  Attribute
 * OMX_ATTR_CTX_FATAL_FD_FD (s32, the eventfd), mandatory.  Once per
 * context (-EBUSY after that).
 */
#define OMX_UVERBS_ID_NS (1U << 12)

enum omx_cq_methods {
	OMX_METHOD_CQ_NOTIFY = OMX_UVERBS_ID_NS,
	OMX_METHOD_CQ_ERROR,
};

enum omx_cq_notify_attrs {
	OMX_ATTR_CQ_NOTIFY_HANDLE = OMX_UVERBS_ID_NS,
};

enum omx_cq_error_attrs {
	OMX_ATTR_CQ_ERROR_HANDLE = OMX_UVERBS_ID_NS,
};

enum omx_qp_methods {
	OMX_METHOD_QP_EVENT = OMX_UVERBS_ID_NS,
};

enum omx_qp_event_attrs {
	OMX_ATTR_QP_EVENT_HANDLE = OMX_UVERBS_ID_NS,
	OMX_ATTR_QP_EVENT_TYPE,
	OMX_ATTR_QP_EVENT_EPOCH,
};

/* OMX_ATTR_QP_EVENT_TYPE values and the ibv_event_type each one raises. */
enum omx_qp_event {
	OMX_QP_EVENT_NONE = 0,		/* shadow to ERR only */
	OMX_QP_EVENT_FATAL,		/* IBV_EVENT_QP_FATAL */
	OMX_QP_EVENT_REQ_ERR,		/* IBV_EVENT_QP_REQ_ERR */
	OMX_QP_EVENT_ACCESS_ERR,	/* IBV_EVENT_QP_ACCESS_ERR */
	OMX_QP_EVENT_MAX = OMX_QP_EVENT_ACCESS_ERR,
};

/* Affiliated events one QP may raise in its whole life. */
#define OMX_QP_MAX_EVENTS 64

enum omx_srq_methods {
	OMX_METHOD_SRQ_LIMIT = OMX_UVERBS_ID_NS,
};

enum omx_srq_limit_attrs {
	OMX_ATTR_SRQ_LIMIT_HANDLE = OMX_UVERBS_ID_NS,
};

enum omx_device_methods {
	OMX_METHOD_CTX_FATAL_FD = OMX_UVERBS_ID_NS,
};

enum omx_ctx_fatal_fd_attrs {
	OMX_ATTR_CTX_FATAL_FD_FD = OMX_UVERBS_ID_NS,
};

/*
 * Per-user limits.  Every object a context creates is charged to the
 * effective user that opened the context; past the limit (module
 * parameters of rdma_omx, see docs/kmod.md) the command fails with
 * -EDQUOT, so one user cannot exhaust a device's endpoints, QPs, CQs, PDs
 * or MR keys for everyone.
 */

#endif /* RDMA_OMX_ABI_H */
