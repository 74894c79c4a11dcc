//! Shared receive queues (`ibv_create_srq`, `ibv_post_srq_recv`).
//!
//! The kernel shadow SRQ exists for the uverbs handle ib_core resolves
//! when a QP is created with the SRQ (and refuses to destroy while a QP
//! uses it: EBUSY), for the per-user limit (`max_srqs_per_user`) and for
//! `rdma resource`. The WQEs live in user space, in an omx-verbs-objects
//! [`Srq`] the QPs created with it take from.
//!
//! Ownership: [`create_srq`] Box-allocates an [`OmxSrq`];
//! `ibv_cmd_create_srq` fills the handle and writes the granted `max_wr`
//! and `max_sge` back into the caller's attributes; libibverbs then sets
//! `context`, `srq_context`, `pd`, `events_completed` and the mutex/cond.
//! [`destroy_srq`] frees it after the kernel object is gone. The [`Srq`]
//! is an `Arc` shared with the QPs created with it.
//!
//! Locks: the ring's spin lock only (a leaf, see omx-verbs-objects'
//! `srq` module and docs/lifetime-and-locking.md). `post_srq_recv` never
//! sleeps or allocates.
//!
//! The limit: `ibv_modify_srq(IBV_SRQ_LIMIT)` arms it in the kernel's
//! shadow (`ibv_cmd_modify_srq`), then in the ring; the take that crosses
//! it disarms the ring, and the progress thread asks the kernel
//! (OMX_METHOD_SRQ_LIMIT), which raises IBV_EVENT_SRQ_LIMIT_REACHED once
//! per arm on the async event file, from its work item.
//!
//! Resizing (IBV_SRQ_MAX_WR; the device reports IBV_DEVICE_SRQ_RESIZE):
//! the kernel's shadow takes the new size, then the ring, which refuses
//! fewer than the WQEs waiting (the shadow is then set back).
//!
//! Not supported: XRC and tag-matching SRQs (`ibv_create_srq_ex` stays
//! libibverbs' EOPNOTSUPP dummy).

use core::mem::size_of;
use core::ptr;
use std::sync::Arc;

use omx_engine::{RecvWr, MAX_SGE};
use omx_rdma_sys::*;
use omx_verbs::Srq;

use crate::errno::{to_ptr, to_ret, Errno};
use crate::guard::guard;
use crate::qp::{post_errno, refuse, sg_list, walk};

/// Our SRQ: `verbs_srq` (whose first field is the `ibv_srq` libibverbs
/// hands back to us) and the WQE ring.
#[repr(C)]
pub struct OmxSrq {
    pub vsrq: verbs_srq,
    pub srq: Option<Arc<Srq>>,
}

/// # Safety
/// `srq` is NULL or an SRQ returned by [`create_srq`].
pub unsafe fn from_ibv<'a>(srq: *mut ibv_srq) -> Option<&'a OmxSrq> {
    // SAFETY: ibv_srq is at offset 0 of verbs_srq, itself at offset 0 of
    // the repr(C) OmxSrq.
    unsafe { srq.cast::<OmxSrq>().as_ref() }
}

fn create(pd: *mut ibv_pd, attr: *mut ibv_srq_init_attr) -> Result<*mut ibv_srq, Errno> {
    // SAFETY: attr is non-null (checked by the caller) and points at the
    // application's init attributes.
    let a = unsafe { (*attr).attr };
    if a.max_wr == 0 || a.max_sge as usize > MAX_SGE {
        return Err(Errno::EINVAL);
    }
    // SAFETY: an all-zero verbs_srq is valid (pointers NULL, plain data).
    let vsrq: verbs_srq = unsafe { core::mem::zeroed() };
    let srq = Box::into_raw(Box::new(OmxSrq { vsrq, srq: None }));
    let mut cmd = ibv_create_srq::default();
    let mut resp = ib_uverbs_create_srq_resp::default();
    // SAFETY: pd is our live PD; attr valid; srq is a fresh allocation
    // whose address becomes the kernel's user_handle until destroy_srq.
    let ret = unsafe {
        ibv_cmd_create_srq(
            pd,
            ptr::addr_of_mut!((*srq).vsrq.srq),
            attr,
            &mut cmd,
            size_of::<ibv_create_srq>(),
            &mut resp,
            size_of::<ib_uverbs_create_srq_resp>(),
        )
    };
    if let Err(e) = Errno::check(ret) {
        // SAFETY: never published.
        drop(unsafe { Box::from_raw(srq) });
        return Err(e.note_quota("ibv_create_srq", "max_srqs_per_user"));
    }
    // SAFETY: ibv_cmd_create_srq wrote the granted sizes into attr.
    let granted = unsafe { (*attr).attr };
    // SAFETY: ibv_cmd_create_srq filled the ibv_srq.
    let handle = unsafe { (*srq).vsrq.srq.handle };
    let ring = Arc::new(
        Srq::new(granted.max_wr.max(a.max_wr), granted.max_sge.max(a.max_sge)).with_handle(handle),
    );
    // SAFETY: srq is ours, not yet returned to the application.
    unsafe { (*srq).srq = Some(ring) };
    Ok(srq.cast())
}

/// `ibv_create_srq` (basic SRQs).
///
/// # Safety
/// `pd` NULL or ours; `attr` NULL or valid.
pub unsafe extern "C" fn create_srq(pd: *mut ibv_pd, attr: *mut ibv_srq_init_attr) -> *mut ibv_srq {
    if pd.is_null() || attr.is_null() {
        Errno::EINVAL.set();
        return ptr::null_mut();
    }
    guard("create_srq", ptr::null_mut(), || to_ptr(create(pd, attr)))
}

/// `ibv_destroy_srq`: refused by the kernel (EBUSY) while a QP uses it.
///
/// # Safety
/// `srq` NULL or ours.
pub unsafe extern "C" fn destroy_srq(srq: *mut ibv_srq) -> i32 {
    if srq.is_null() {
        return libc::EINVAL;
    }
    guard("destroy_srq", libc::EIO, || {
        // SAFETY: srq is ours and alive.
        let ret = unsafe { ibv_cmd_destroy_srq(srq) };
        if let Err(e) = Errno::check(ret) {
            return e.0;
        }
        // SAFETY: kernel object gone; from Box::into_raw in create().
        drop(unsafe { Box::from_raw(srq.cast::<OmxSrq>()) });
        to_ret(Ok(()))
    })
}

/// `ibv_modify_srq`: IBV_SRQ_MAX_WR resizes (1..16384, at least the WQEs
/// waiting and any armed limit, else EINVAL), IBV_SRQ_LIMIT arms the limit
/// (0 disarms; more than the size is EINVAL), each first in the kernel's
/// shadow, then in the ring. Any other bit is EINVAL.
///
/// # Safety
/// `srq` NULL or ours; `attr` NULL or valid.
pub unsafe extern "C" fn modify_srq(srq: *mut ibv_srq, attr: *mut ibv_srq_attr, mask: i32) -> i32 {
    // SAFETY: per the contract.
    let Some(ring) = (unsafe { from_ibv(srq) }).and_then(|o| o.srq.as_ref()) else {
        return libc::EINVAL;
    };
    if attr.is_null() {
        return libc::EINVAL;
    }
    let mask = mask as u32;
    if mask & !(IBV_SRQ_MAX_WR | IBV_SRQ_LIMIT) != 0 {
        return libc::EINVAL;
    }
    // SAFETY: attr is the caller's valid ibv_srq_attr.
    let a = unsafe { *attr };
    let old_max = ring.max_wr();
    let max_wr = if mask & IBV_SRQ_MAX_WR != 0 {
        a.max_wr
    } else {
        old_max
    };
    if mask & IBV_SRQ_LIMIT != 0 && a.srq_limit > max_wr {
        return libc::EINVAL;
    }
    guard("modify_srq", libc::EIO, || {
        let kernel = |attr: &mut ibv_srq_attr, mask: u32| {
            let mut cmd = ibv_modify_srq::default();
            // SAFETY: srq is ours and alive; attr is a live local.
            let ret = unsafe {
                ibv_cmd_modify_srq(
                    srq,
                    attr,
                    mask as i32,
                    &mut cmd,
                    size_of::<ibv_modify_srq>(),
                )
            };
            Errno::check(ret)
        };
        let mut k = a;
        if let Err(e) = kernel(&mut k, mask) {
            return e.0;
        }
        // The new limit first: the ring refuses a size below the armed one.
        let old_limit = ring.limit();
        if mask & IBV_SRQ_LIMIT != 0 {
            ring.arm(a.srq_limit);
        }
        if mask & IBV_SRQ_MAX_WR != 0 && ring.resize(max_wr).is_err() {
            // More WQEs wait than the new size holds: the ring and the
            // shadow go back to what they were.
            if mask & IBV_SRQ_LIMIT != 0 {
                ring.arm(old_limit);
            }
            let mut back = ibv_srq_attr {
                max_wr: old_max,
                max_sge: 0,
                srq_limit: old_limit,
            };
            let _ = kernel(&mut back, mask);
            return libc::EINVAL;
        }
        0
    })
}

/// `ibv_query_srq`: the granted sizes and the armed limit (0 once it
/// fired).
///
/// # Safety
/// `srq` NULL or ours; `attr` NULL or writable.
pub unsafe extern "C" fn query_srq(srq: *mut ibv_srq, attr: *mut ibv_srq_attr) -> i32 {
    // SAFETY: per the contract.
    let Some(ring) = (unsafe { from_ibv(srq) }).and_then(|o| o.srq.as_ref()) else {
        return libc::EINVAL;
    };
    if attr.is_null() {
        return libc::EINVAL;
    }
    // SAFETY: attr is the caller's writable ibv_srq_attr.
    unsafe {
        *attr = ibv_srq_attr {
            max_wr: ring.max_wr(),
            max_sge: ring.max_sge,
            srq_limit: ring.limit(),
        }
    };
    0
}

/// `ibv_post_srq_recv`: the whole list under one lock of the ring
/// ([`walk`]); a WR with more scatter entries than the SRQ's `max_sge`
/// is EINVAL, a full ring ENOMEM. Nothing is driven: a QP that answered
/// RNR NAK because the SRQ was empty finds the WQEs when its peer
/// retries.
///
/// # Safety
/// `srq` NULL or ours; `wr` NULL or a valid list; `bad_wr` NULL or
/// writable.
pub unsafe extern "C" fn post_srq_recv(
    srq: *mut ibv_srq,
    wr: *mut ibv_recv_wr,
    bad_wr: *mut *mut ibv_recv_wr,
) -> i32 {
    // SAFETY: per the contract.
    let Some(ring) = (unsafe { from_ibv(srq) }).and_then(|o| o.srq.as_ref()) else {
        // SAFETY: per the contract.
        return unsafe { refuse(bad_wr, wr, libc::EINVAL) };
    };
    guard("post_srq_recv", libc::EIO, || {
        let mut r = ring.lock();
        // SAFETY: per the contract.
        unsafe {
            walk(wr, bad_wr, |w| {
                if w.num_sge < 0 || w.num_sge as u32 > ring.max_sge {
                    return Err(libc::EINVAL);
                }
                // SAFETY: sg_list readable for num_sge entries (contract).
                let sg = sg_list(w.sg_list, w.num_sge)?;
                r.post(RecvWr { wr_id: w.wr_id, sg }).map_err(post_errno)
            })
        }
    })
}
