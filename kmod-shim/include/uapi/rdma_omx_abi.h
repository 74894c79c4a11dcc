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
#define OMX_UVERBS_ABI_VERSION 1

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
 * (1 << UVERBS_ID_NS_SHIFT = 0x1000).
 *
 * OMX_METHOD_CQ_NOTIFY on UVERBS_OBJECT_CQ (3): ask the kernel to raise the
 * completion event of a CQ on its completion channel.  The event is raised
 * later by the CQ's serialized worker, never in the caller's call chain,
 * and exactly once per successful call.  Attribute OMX_ATTR_CQ_NOTIFY_HANDLE
 * is the CQ's uverbs handle (ibv_cq.handle), mandatory.
 */
#define OMX_UVERBS_ID_NS (1U << 12)

enum omx_cq_methods {
	OMX_METHOD_CQ_NOTIFY = OMX_UVERBS_ID_NS,
};

enum omx_cq_notify_attrs {
	OMX_ATTR_CQ_NOTIFY_HANDLE = OMX_UVERBS_ID_NS,
};

#endif /* RDMA_OMX_ABI_H */
