/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * rdma_omx: kernel side of the omx-verbs provider.
 *
 * The module registers one ib_device per Ethernet netdev and keeps shadow
 * objects (ucontext = endpoint, PD, CQ, QP, SRQ, MR, MW) so that libibverbs,
 * uverbs and restrack see a normal RDMA device.  It does no packet I/O: the
 * data path runs in user space over raw Ethernet (EtherType 0x86DF).
 *
 * Objects, references and locks (see also docs/kmod.md and
 * docs/lifetime-and-locking.md, which holds the lock order):
 *
 *  omx_device   embeds the ib_device.  Allocated by newlink, freed by the
 *               ib core after ops.dealloc_driver.  Sits on omx_dev_list
 *               from just before ib_register_device() until dealloc_driver.
 *               Holds one netdev reference (netdev_tracker) for its whole
 *               life, dropped in dealloc_driver.
 *               Users outside the ib core pin it with ib_device_try_get()
 *               found under omx_dev_list_lock.
 *  omx_user     per-device, per-user charges (omx_limits.c), in
 *               users_xa under users_lock.  Referenced by every context
 *               of that user (the context count); freed by the last
 *               dealloc_ucontext, after every object it was charged for.
 *  omx_ucontext one per open uverbs file: the endpoint.  Created and freed
 *               by uverbs; the core serializes it against every object of
 *               the context.  Holds its omx_user and, once set, a
 *               reference on the fatal eventfd (fatal_fd, set once by
 *               cmpxchg, put in dealloc_ucontext).
 *  omx_cq       holds a reference on its completion channel's file
 *               (channel, from create_cq to destroy_cq).  work (a delayed
 *               work on omx_wq) raises completion and CQ_ERR events;
 *               destroy_cq cancels it synchronously before the core frees
 *               the CQ.  unread/owed/recheck_ms belong to the work alone.
 *  omx_qp       shadow attributes, epoch and event bookkeeping under
 *               qp->lock (a mutex, taken by modify/query/QP_EVENT and the
 *               event work).  event_work is cancelled by destroy_qp.
 *  omx_srq      a basic SRQ whose ring lives in user space: the size it
 *               was created with and its user's charge, nothing else.
 *               Written once by create_srq, no lock.  The ib core counts
 *               the QPs attached to it (ib_srq.usecnt) and refuses to
 *               destroy it while any remains (-EBUSY), so a QP's srq
 *               pointer never dangles.
 *  omx_mcast_grp a multicast GID some UD QPs are attached to, on the
 *               device's mcast_grps under mcast_lock (omx_mcast.c): holds
 *               one dev_mc_add() reference on its MAC from its first
 *               attachment to its last detach.  uverbs detaches every QP
 *               before it destroys it, so groups never outlive their QPs.
 *  omx_mr       key index in sdev->mr_xa (xarray internal lock).
 *  omx_mw       a memory window: a key index in the same sdev->mr_xa (so
 *               no MR and MW key ever share an index) and its user's
 *               charge.  Allocated by the ib core (INIT_RDMA_OBJ_SIZE),
 *               which frees it after dealloc_mw; uverbs holds its PD
 *               (usecnt).  Binding, invalidation and rkey checks are the
 *               provider's; the kernel keeps nothing else.
 *  endpoint_xa, qp_xa, mr_xa: cyclic id allocators; they only store
 *               pointers (mr_xa: an omx_mr or an omx_mw, not told apart)
 *               for debugging and future lookups, nobody dereferences
 *               them today, so they hold no references.
 *
 * Lock order (outer first):
 *   omx_link_mutex -> rtnl_lock -> omx_dev_list_lock
 * The netdev notifier runs under RTNL and takes omx_dev_list_lock.
 * Nothing takes RTNL or calls ib_(un)register_device() while holding
 * omx_dev_list_lock, because dealloc_driver takes it.  users_lock,
 * qp->lock and the xarray locks are leaves; mcast_lock holds only the
 * netdev's address lock (dev_mc_add/dev_mc_del); a QP's lock is never held
 * while raising an event.
 */
#ifndef _RDMA_OMX_H
#define _RDMA_OMX_H

#include <linux/atomic.h>
#include <linux/bits.h>
#include <linux/eventfd.h>
#include <linux/idr.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/netdevice.h>
#include <linux/uidgid.h>
#include <linux/version.h>
#include <linux/workqueue.h>
#include <linux/xarray.h>
#include <rdma/ib_verbs.h>
#include <rdma/uverbs_ioctl.h>

#include "include/uapi/rdma_omx_abi.h"

#define DRV_NAME		"rdma_omx"

/*
 * Device limits: what the user-space provider honours.  Rings live in user
 * memory, so CQ and WR depths cost the kernel nothing.
 */
#define OMX_MAX_QP		65536
#define OMX_MAX_QP_WR		16384
/* Scatter/gather entries per WR: the provider's omx_engine::MAX_SGE. */
#define OMX_MAX_SGE		8
#define OMX_MAX_SGE_RD		8
#define OMX_MAX_CQ		65536
/* OMX_MAX_CQE: in the uapi header (the provider checks it too). */
#define OMX_MAX_MR		OMX_MR_INDEX_MAX
/* MWs take their keys from the MR key indexes too (mr_xa). */
#define OMX_MAX_MW		BIT(18)
#define OMX_MAX_PD		65536
#define OMX_MAX_SRQ		65536
#define OMX_MAX_SRQ_WR		OMX_MAX_QP_WR	/* as deep as a QP's RQ */
#define OMX_MAX_SRQ_SGE		OMX_MAX_SGE	/* the QP's max recv SGE */
#define OMX_MAX_RD_ATOM		16
#define OMX_MAX_RES_RD_ATOM	(OMX_MAX_QP * OMX_MAX_RD_ATOM)
#define OMX_MAX_MSG_SZ		0x80000000U	/* 2 GiB, IBTA maximum */
#define OMX_LOCAL_CA_ACK_DELAY	15
#define OMX_HW_VER		1

#define OMX_GID_TBL_LEN		64
#define OMX_PKEY_TBL_LEN	1
#define OMX_DEFAULT_PKEY	0xffff

/*
 * Bytes of every Ethernet frame reserved for the omx headers and the
 * Ethernet header/CRC when mapping the netdev MTU to an IB path MTU.
 */
#define OMX_FRAME_OVERHEAD	64

/*
 * MR keys: lkey = rkey = index << 12 | tag, the tag 12 random bits drawn
 * for each registration, the index 1..2^20-1 from a cyclic allocator.  A
 * key below 1 << OMX_MR_TAG_BITS never names an MR.  MW rkeys are made
 * the same way from the same allocator: an index names an MR or an MW,
 * never both (the provider finds a window by rkey >> 8, the low byte
 * being the consumer's key that ibv_inc_rkey() changes).
 */
#define OMX_MR_TAG_BITS		12
#define OMX_MR_TAG_MASK		((1U << OMX_MR_TAG_BITS) - 1)
#define OMX_MR_INDEX_MIN	1
#define OMX_MR_INDEX_MAX	((1U << (32 - OMX_MR_TAG_BITS)) - 1)

/*
 * Completion events: requests not raised yet are a saturating counter
 * (requests beyond it are folded, the event is raised anyway).  A CQ
 * raises at most OMX_CQ_MAX_UNREAD events since its channel was last seen
 * empty (it asks the channel's poll operation before each event); at that
 * bound, if the application has still not read the channel, every further
 * request is folded into one owed event, re-checked after
 * OMX_CQ_RECHECK_MIN_MS, doubling up to OMX_CQ_RECHECK_MAX_MS.
 * docs/kmod.md section 4b explains the numbers.
 */
#define OMX_CQ_MAX_PENDING	65536
#define OMX_CQ_MAX_UNREAD	16
#define OMX_CQ_RECHECK_MIN_MS	1
#define OMX_CQ_RECHECK_MAX_MS	128

/* Modify QP: the attribute values the shadow accepts (IBTA field widths). */
#define OMX_QP_MAX_TIMEOUT	31
#define OMX_QP_MAX_RETRY_CNT	7
#define OMX_QP_MAX_RNR_RETRY	7
#define OMX_QP_MAX_MIN_RNR	31
#define OMX_QP_MAX_QPN		0xffffffU
#define OMX_QP_ACCESS_SUPPORTED						\
	(IB_ACCESS_LOCAL_WRITE | IB_ACCESS_REMOTE_WRITE |		\
	 IB_ACCESS_REMOTE_READ | IB_ACCESS_REMOTE_ATOMIC |		\
	 IB_ACCESS_MW_BIND)

/*
 * MR access flags the shadow accepts (recorded; the provider enforces
 * them, MW_BIND included: windows are bound by the provider).
 */
#define OMX_MR_ACCESS_SUPPORTED						\
	(IB_ACCESS_LOCAL_WRITE | IB_ACCESS_REMOTE_WRITE |		\
	 IB_ACCESS_REMOTE_READ | IB_ACCESS_REMOTE_ATOMIC |		\
	 IB_ACCESS_MW_BIND | IB_ACCESS_HUGETLB | IB_ACCESS_OPTIONAL |	\
	 IB_ACCESS_ON_DEMAND)

/*
 * Completion timestamps are the provider's CLOCK_MONOTONIC in nanoseconds:
 * all 64 bits, a 1 GHz clock (hca_core_clock is in kHz).
 */
#define OMX_TIMESTAMP_MASK	U64_MAX
#define OMX_HCA_CORE_CLOCK_KHZ	1000000ULL

/*
 * The only kernel version dependencies (built and tested on 6.1 and 6.12):
 * 6.8 dropped the count argument of eventfd_signal(); 6.11 turned the
 * udata of create_cq into a uverbs_attr_bundle and added
 * ib_mark_name_assigned_by_user().
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 8, 0)
#define omx_eventfd_signal(ctx) eventfd_signal(ctx)
#else
#define omx_eventfd_signal(ctx) eventfd_signal(ctx, 1)
#endif
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 11, 0)
#define OMX_CREATE_CQ_UATTRS 1
#define OMX_HAS_NAME_ASSIGN_TYPE 1
#endif

/* What a user is charged for (omx_limits.c), one limit each. */
enum omx_res {
	OMX_RES_CTX,
	OMX_RES_PD,
	OMX_RES_CQ,
	OMX_RES_QP,
	OMX_RES_MR,
	OMX_RES_SRQ,
	OMX_RES_MW,
	OMX_RES_NUM,
};

/*
 * One user's objects on one device.  count[OMX_RES_CTX] changes only
 * under the device's users_lock (it is the record's reference count); the
 * other counts are atomics charged by the objects' create ops.
 */
struct omx_user {
	kuid_t uid;
	atomic_t count[OMX_RES_NUM];
};

struct omx_device {
	struct ib_device base_dev;
	/* Bound netdev, pinned by netdev_tracker until dealloc_driver. */
	struct net_device *netdev;
	netdevice_tracker netdev_tracker;
	/* Entry on omx_dev_list, under omx_dev_list_lock. */
	struct list_head list;
	/*
	 * Port state last reported through ib_dispatch_event; written under
	 * RTNL, read locklessly by query_port (the state users see).
	 */
	enum ib_port_state last_state;

	/*
	 * Endpoint index -> omx_ucontext.  Allocated cyclically, like the
	 * QP slots of a context, so that a number just released is not
	 * handed out again at once and stale frames of a closed endpoint
	 * do not reach its successor.
	 */
	struct xarray endpoint_xa;
	u32 endpoint_next;		/* cyclic cursor of endpoint_xa */
	struct xarray mr_xa;		/* key index -> omx_mr or omx_mw */
	u32 mr_next;			/* cyclic cursor of mr_xa */

	/* kuid value -> omx_user, created and freed under users_lock. */
	struct xarray users_xa;
	struct mutex users_lock;	/* users_xa and contexts per user */

	/* Object counts, checked against the device limits. */
	atomic_t num_ctx;
	atomic_t num_pd;
	atomic_t num_cq;
	atomic_t num_qp;
	atomic_t num_mr;
	atomic_t num_srq;
	atomic_t num_mw;

	/* Multicast groups (omx_mcast.c), all under mcast_lock. */
	struct mutex mcast_lock;
	struct list_head mcast_grps;	/* struct omx_mcast_grp */
	unsigned int mcast_ngrp;	/* groups on mcast_grps */
	unsigned int mcast_natt;	/* attachments of all groups */
	/* Limits, from the module parameters at creation (constant). */
	unsigned int mcast_max_grp;
	unsigned int mcast_max_qp_attach;
	unsigned int mcast_max_total;
};

/* An Open-MX endpoint: one per ib_ucontext (ibv_open_device()). */
struct omx_ucontext {
	struct ib_ucontext base_ucontext;
	u32 endpoint;			/* upper bits of every QPN */
	struct xarray qp_xa;		/* QPN slot -> omx_qp */
	u32 qp_next;			/* cyclic cursor of qp_xa */
	struct omx_user *user;		/* who pays for this context's objects */
	/* OMX_METHOD_CTX_FATAL_FD, signalled at disassociation. */
	struct eventfd_ctx *fatal_fd;
};

struct omx_pd {
	struct ib_pd base_pd;
	struct omx_user *user;
};

/* omx_cq.flags */
enum {
	OMX_CQ_ERR_REQUESTED,		/* OMX_METHOD_CQ_ERROR was called */
	OMX_CQ_ERR_RAISED,		/* IB_EVENT_CQ_ERR went out */
};

struct omx_cq {
	struct ib_cq base_cq;
	struct omx_user *user;
	/* The completion channel's file (get_file); NULL without one. */
	struct file *channel;
	/*
	 * Raises the completion events (comp_handler) and CQ_ERR
	 * (event_handler), on omx_wq: one work item, so at most one
	 * handler of this CQ runs at a time.
	 */
	struct delayed_work work;
	atomic_t notify_pending;	/* requests not yet raised */
	unsigned long flags;		/* OMX_CQ_ERR_* bits */
	/* Written by the work only (read racily by restrack). */
	unsigned int unread;		/* raised since the channel was empty */
	unsigned int recheck_ms;	/* backoff while owed */
	bool owed;			/* requests folded, channel unread */
	atomic_t in_handler;		/* debug: a handler is running */
};

/* Shadow of the attributes user space set through modify_qp. */
struct omx_qp_shadow {
	enum ib_qp_state state;
	enum ib_mtu path_mtu;
	u32 qkey;
	u32 rq_psn;
	u32 sq_psn;
	u32 dest_qp_num;
	int qp_access_flags;
	u16 pkey_index;
	u8 port_num;
	u8 timeout;
	u8 retry_cnt;
	u8 rnr_retry;
	u8 min_rnr_timer;
	u8 max_rd_atomic;
	u8 max_dest_rd_atomic;
};

struct omx_qp {
	struct ib_qp base_qp;
	struct omx_ucontext *uctx;	/* owner; outlives the QP */
	struct omx_user *user;
	u32 slot;			/* qp_num & OMX_QPN_SLOT_MASK */
	struct ib_qp_cap cap;		/* as created */
	enum ib_sig_type sq_sig_type;
	struct mutex lock;		/* protects attr and what follows */
	struct omx_qp_shadow attr;
	/* Successful modify_qp calls to RESET (the engine counts the same). */
	u32 epoch;
	u8 ev_raised;			/* BIT(omx_qp_ev) raised this epoch */
	u8 ev_pending;			/* BIT(omx_qp_ev) for event_work */
	u8 ev_count;			/* events requested in the QP's life */
	/* Raises the affiliated events of OMX_METHOD_QP_EVENT, on omx_wq. */
	struct work_struct event_work;
	/* Multicast attachments, under the device's mcast_lock. */
	unsigned int mcast_att;
};

/*
 * A basic shared receive queue.  Its WQEs, its limit and its state live in
 * the provider (which answers ibv_modify_srq and ibv_query_srq itself);
 * the kernel keeps the size granted at creation, for debugging.
 */
struct omx_srq {
	struct ib_srq base_srq;
	struct omx_user *user;
	u32 max_wr;			/* as created or resized */
	u32 max_sge;			/* as created */
	/*
	 * The armed srq_limit, 0 = disarmed: written by modify_srq, taken
	 * (xchg to 0) by OMX_METHOD_SRQ_LIMIT, which then queues event_work.
	 */
	u32 limit;
	/* Raises IB_EVENT_SRQ_LIMIT_REACHED, on omx_wq. */
	struct work_struct event_work;
};

struct omx_mr {
	struct ib_mr base_mr;
	struct omx_user *user;
	u32 index;			/* key >> OMX_MR_TAG_BITS, in mr_xa */
	u64 start;			/* user virtual address */
	int access;
};

/*
 * A memory window (type 1 or 2, ib_mw.type, checked by the core): its
 * rkey comes from the MR key space.  Core-allocated, freed by the core
 * after dealloc_mw.
 */
struct omx_mw {
	struct ib_mw base_mw;
	struct omx_user *user;
	u32 index;			/* rkey >> OMX_MR_TAG_BITS, in mr_xa */
};

static inline struct omx_device *to_omx_dev(struct ib_device *base_dev)
{
	return container_of(base_dev, struct omx_device, base_dev);
}

static inline struct omx_ucontext *to_omx_ctx(struct ib_ucontext *base_ctx)
{
	return container_of(base_ctx, struct omx_ucontext, base_ucontext);
}

static inline struct omx_pd *to_omx_pd(struct ib_pd *base_pd)
{
	return container_of(base_pd, struct omx_pd, base_pd);
}

static inline struct omx_cq *to_omx_cq(struct ib_cq *base_cq)
{
	return container_of(base_cq, struct omx_cq, base_cq);
}

static inline struct omx_qp *to_omx_qp(struct ib_qp *base_qp)
{
	return container_of(base_qp, struct omx_qp, base_qp);
}

static inline struct omx_srq *to_omx_srq(struct ib_srq *base_srq)
{
	return container_of(base_srq, struct omx_srq, base_srq);
}

static inline struct omx_mr *to_omx_mr(struct ib_mr *base_mr)
{
	return container_of(base_mr, struct omx_mr, base_mr);
}

static inline struct omx_mw *to_omx_mw(struct ib_mw *base_mw)
{
	return container_of(base_mw, struct omx_mw, base_mw);
}

#define omx_dbg(ibdev, fmt, ...)					\
	ibdev_dbg(ibdev, "%s: " fmt, __func__, ##__VA_ARGS__)

#define omx_dbg_ctx(ctx, fmt, ...)					\
	ibdev_dbg((ctx)->base_ucontext.device, "EP[%u] %s: " fmt,	\
		  (ctx)->endpoint, __func__, ##__VA_ARGS__)

#define omx_dbg_cq(cq, fmt, ...)					\
	ibdev_dbg((cq)->base_cq.device, "CQ[%u] %s: " fmt,		\
		  (cq)->base_cq.res.id, __func__, ##__VA_ARGS__)

#define omx_dbg_qp(qp, fmt, ...)					\
	ibdev_dbg((qp)->base_qp.device, "QP[%u] %s: " fmt,		\
		  (qp)->base_qp.qp_num, __func__, ##__VA_ARGS__)

#define omx_dbg_srq(srq, fmt, ...)					\
	ibdev_dbg((srq)->base_srq.device, "SRQ[%u] %s: " fmt,		\
		  (srq)->base_srq.res.id, __func__, ##__VA_ARGS__)

#define omx_dbg_mr(mr, fmt, ...)					\
	ibdev_dbg((mr)->base_mr.device, "MR[0x%08x] %s: " fmt,	\
		  (mr)->base_mr.lkey, __func__, ##__VA_ARGS__)

#define omx_dbg_mw(mw, fmt, ...)					\
	ibdev_dbg((mw)->base_mw.device, "MW[0x%08x] %s: " fmt,	\
		  (mw)->base_mw.rkey, __func__, ##__VA_ARGS__)

/* omx_main.c */
extern struct workqueue_struct *omx_wq;
enum ib_port_state omx_netdev_port_state(struct net_device *netdev);
enum ib_mtu omx_netdev_ib_mtu(struct net_device *netdev);

/* omx_limits.c: per-user charges */
int omx_user_get(struct omx_device *sdev, struct omx_user **user);
void omx_user_put(struct omx_device *sdev, struct omx_user *user);
int omx_user_charge(struct omx_device *sdev, struct omx_user *user,
		    enum omx_res res);
void omx_user_uncharge(struct omx_user *user, enum omx_res res);
void omx_users_destroy(struct omx_device *sdev);
extern struct device_attribute omx_attr_users;

/* omx_mcast.c: multicast groups */
void omx_mcast_init(struct omx_device *sdev);
void omx_mcast_destroy(struct omx_device *sdev);
void omx_mcast_query_device(struct omx_device *sdev,
			    struct ib_device_attr *attr);
int omx_attach_mcast(struct ib_qp *base_qp, union ib_gid *gid, u16 lid);
int omx_detach_mcast(struct ib_qp *base_qp, union ib_gid *gid, u16 lid);
extern struct device_attribute omx_attr_mcast;

/* omx_uapi.c: driver methods and the work items they feed */
extern const struct uapi_definition omx_uapi_defs[];
void omx_cq_work(struct work_struct *work);
/*
 * The events a QP's event work raises: the uapi's enum omx_qp_event (what
 * the engine reports), then the module's own.  Bits of ev_raised and
 * ev_pending.
 */
enum omx_qp_ev {
	/* IB_EVENT_QP_LAST_WQE_REACHED: a QP on an SRQ entered ERROR. */
	OMX_QP_EV_LAST_WQE = OMX_QP_EVENT_MAX + 1,
	OMX_QP_EV_MAX = OMX_QP_EV_LAST_WQE,
};

void omx_qp_event_work(struct work_struct *work);

/* omx_verbs.c: device and port */
int omx_query_device(struct ib_device *base_dev, struct ib_device_attr *attr,
		     struct ib_udata *udata);
int omx_query_port(struct ib_device *base_dev, u32 port,
		   struct ib_port_attr *attr);
int omx_get_port_immutable(struct ib_device *base_dev, u32 port,
			   struct ib_port_immutable *immutable);
enum rdma_link_layer omx_get_link_layer(struct ib_device *base_dev,
					u32 port);
int omx_query_pkey(struct ib_device *base_dev, u32 port, u16 index,
		   u16 *pkey);
void omx_get_dev_fw_str(struct ib_device *base_dev, char *str);

/* omx_verbs.c: objects */
int omx_alloc_ucontext(struct ib_ucontext *base_ctx, struct ib_udata *udata);
void omx_dealloc_ucontext(struct ib_ucontext *base_ctx);
void omx_disassociate_ucontext(struct ib_ucontext *base_ctx);
int omx_alloc_pd(struct ib_pd *base_pd, struct ib_udata *udata);
int omx_dealloc_pd(struct ib_pd *base_pd, struct ib_udata *udata);
#ifdef OMX_CREATE_CQ_UATTRS
int omx_create_cq(struct ib_cq *base_cq, const struct ib_cq_init_attr *attr,
		  struct uverbs_attr_bundle *attrs);
#else
int omx_create_cq(struct ib_cq *base_cq, const struct ib_cq_init_attr *attr,
		  struct ib_udata *udata);
#endif
int omx_destroy_cq(struct ib_cq *base_cq, struct ib_udata *udata);
int omx_create_qp(struct ib_qp *base_qp, struct ib_qp_init_attr *attr,
		  struct ib_udata *udata);
int omx_modify_qp(struct ib_qp *base_qp, struct ib_qp_attr *attr,
		  int attr_mask, struct ib_udata *udata);
int omx_query_qp(struct ib_qp *base_qp, struct ib_qp_attr *attr,
		 int attr_mask, struct ib_qp_init_attr *init_attr);
int omx_destroy_qp(struct ib_qp *base_qp, struct ib_udata *udata);
int omx_create_srq(struct ib_srq *base_srq, struct ib_srq_init_attr *attr,
		   struct ib_udata *udata);
int omx_destroy_srq(struct ib_srq *base_srq, struct ib_udata *udata);
int omx_modify_srq(struct ib_srq *base_srq, struct ib_srq_attr *attr,
		   enum ib_srq_attr_mask mask, struct ib_udata *udata);
void omx_srq_event_work(struct work_struct *work);
struct ib_mr *omx_reg_user_mr(struct ib_pd *base_pd, u64 start, u64 length,
			      u64 virt, int access, struct ib_udata *udata);
int omx_dereg_mr(struct ib_mr *base_mr, struct ib_udata *udata);
int omx_alloc_mw(struct ib_mw *base_mw, struct ib_udata *udata);
int omx_dealloc_mw(struct ib_mw *base_mw);

/* omx_verbs.c: restrack driver attributes */
int omx_fill_res_cq_entry(struct sk_buff *msg, struct ib_cq *base_cq);
int omx_fill_res_mr_entry(struct sk_buff *msg, struct ib_mr *base_mr);
int omx_fill_res_qp_entry(struct sk_buff *msg, struct ib_qp *base_qp);

/* omx_verbs.c: shadow moves made by the driver methods */
void omx_qp_engine_error(struct omx_qp *qp, u32 type, u32 epoch);

#endif /* _RDMA_OMX_H */
