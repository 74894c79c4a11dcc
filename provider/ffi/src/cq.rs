//! Completion queues.
//!
//! The kernel shadow CQ exists so that completion channels work: it carries
//! `user_handle = (ibv_cq *)` and the channel fd, and the kernel module
//! raises the event (OMX_METHOD_CQ_NOTIFY, issue 3). The CQ ring itself will
//! live here in user space; `poll_cq` returns an error until then.
//!
//! Ownership: [`create_cq`] Box-allocates an [`OmxCq`]; libibverbs then runs
//! `verbs_init_cq` (context, channel refcount, mutex/cond). [`destroy_cq`]
//! frees it after `ibv_cmd_destroy_cq`, which blocks until the application
//! has acked every event the kernel delivered. QPs point at their CQs; the
//! kernel refuses to destroy a CQ still used by a QP (EBUSY).
//!
//! Locks: `armed` is an atomic written by `req_notify_cq` and (later)
//! consumed by the progress engine with a swap; no mutex.

use core::mem::size_of;
use core::ptr;
use core::sync::atomic::{AtomicU32, Ordering};

use omx_rdma_sys::*;

use crate::errno::{to_ptr, to_ret, Errno};
use crate::guard::guard;

/// Arm state values of [`OmxCq::armed`].
pub const CQ_DISARMED: u32 = 0;
pub const CQ_ARMED_NEXT: u32 = 1;
pub const CQ_ARMED_SOLICITED: u32 = 2;

#[repr(C)]
pub struct OmxCq {
    pub ibv_cq: ibv_cq,
    /// CQ_DISARMED / CQ_ARMED_NEXT / CQ_ARMED_SOLICITED.
    pub armed: AtomicU32,
}

const _: () = assert!(core::mem::offset_of!(OmxCq, ibv_cq) == 0);

impl OmxCq {
    /// `ibv_req_notify_cq`: arm for the next (or next solicited)
    /// completion. Re-arming while armed keeps the broader mode.
    pub fn arm(&self, solicited_only: bool) {
        let want = if solicited_only {
            CQ_ARMED_SOLICITED
        } else {
            CQ_ARMED_NEXT
        };
        let _ = self
            .armed
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| match cur {
                CQ_ARMED_NEXT => None,
                _ => Some(want),
            });
    }

    /// Consumes the arm for a completion; true if an event must be raised.
    pub fn take_arm(&self, solicited: bool) -> bool {
        self.armed
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| match cur {
                CQ_ARMED_NEXT => Some(CQ_DISARMED),
                CQ_ARMED_SOLICITED if solicited => Some(CQ_DISARMED),
                _ => None,
            })
            .is_ok()
    }
}

/// # Safety
/// `cq` is NULL or a CQ returned by [`create_cq`].
pub unsafe fn from_ibv<'a>(cq: *mut ibv_cq) -> Option<&'a OmxCq> {
    // SAFETY: ibv_cq is the first field of the repr(C) OmxCq.
    unsafe { cq.cast::<OmxCq>().as_ref() }
}

fn create(
    ctx: *mut ibv_context,
    cqe: i32,
    channel: *mut ibv_comp_channel,
    vector: i32,
) -> Result<*mut ibv_cq, Errno> {
    if cqe < 1 {
        return Err(Errno::EINVAL);
    }
    let cq = Box::into_raw(Box::new(OmxCq {
        ibv_cq: ibv_cq::default(),
        armed: AtomicU32::new(CQ_DISARMED),
    }));
    let mut cmd = ibv_create_cq::default();
    let mut resp = ib_uverbs_create_cq_resp::default();
    // SAFETY: ctx is ours; channel is NULL or the application's live
    // channel; cq is a fresh allocation whose address becomes the kernel's
    // user_handle and stays valid until destroy_cq.
    let ret = unsafe {
        ibv_cmd_create_cq(
            ctx,
            cqe,
            channel,
            vector,
            ptr::addr_of_mut!((*cq).ibv_cq),
            &mut cmd,
            size_of::<ibv_create_cq>(),
            &mut resp,
            size_of::<ib_uverbs_create_cq_resp>(),
        )
    };
    if let Err(e) = Errno::check(ret) {
        // SAFETY: never published.
        drop(unsafe { Box::from_raw(cq) });
        return Err(e);
    }
    Ok(cq.cast())
}

/// # Safety
/// `ctx` is NULL or ours; `channel` NULL or live.
pub unsafe extern "C" fn create_cq(
    ctx: *mut ibv_context,
    cqe: i32,
    channel: *mut ibv_comp_channel,
    comp_vector: i32,
) -> *mut ibv_cq {
    if ctx.is_null() {
        Errno::EINVAL.set();
        return ptr::null_mut();
    }
    guard("create_cq", ptr::null_mut(), || {
        to_ptr(create(ctx, cqe, channel, comp_vector))
    })
}

/// # Safety
/// `cq` is NULL or a CQ returned by [`create_cq`].
pub unsafe extern "C" fn destroy_cq(cq: *mut ibv_cq) -> i32 {
    if cq.is_null() {
        return libc::EINVAL;
    }
    guard("destroy_cq", libc::EIO, || {
        // SAFETY: cq is ours and alive.
        let ret = unsafe { ibv_cmd_destroy_cq(cq) };
        if let Err(e) = Errno::check(ret) {
            return e.0;
        }
        // SAFETY: kernel object gone, events acked; from Box::into_raw.
        drop(unsafe { Box::from_raw(cq.cast::<OmxCq>()) });
        to_ret(Ok(()))
    })
}

/// `ibv_req_notify_cq`: user-space arm flag only.
///
/// # Safety
/// `cq` is NULL or ours.
pub unsafe extern "C" fn req_notify_cq(cq: *mut ibv_cq, solicited_only: i32) -> i32 {
    // SAFETY: per the contract.
    let Some(cq) = (unsafe { from_ibv(cq) }) else {
        return libc::EINVAL;
    };
    cq.arm(solicited_only != 0);
    0
}

/// `ibv_poll_cq`: no data path yet. Returns a negative value (`ibv_poll_cq`
/// callers treat < 0 as an error) and sets errno.
///
/// # Safety
/// Any pointers; none is dereferenced.
pub unsafe extern "C" fn poll_cq(_cq: *mut ibv_cq, _num_entries: i32, _wc: *mut ibv_wc) -> i32 {
    Errno::EOPNOTSUPP.set();
    -libc::EOPNOTSUPP
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cq() -> OmxCq {
        OmxCq {
            ibv_cq: ibv_cq::default(),
            armed: AtomicU32::new(CQ_DISARMED),
        }
    }

    #[test]
    fn arm_is_one_shot() {
        let c = cq();
        assert!(!c.take_arm(false));
        c.arm(false);
        assert!(c.take_arm(false));
        assert!(!c.take_arm(true));
    }

    #[test]
    fn solicited_arm_ignores_unsolicited() {
        let c = cq();
        c.arm(true);
        assert!(!c.take_arm(false));
        assert!(c.take_arm(true));
        // NEXT wins over a later SOLICITED request.
        c.arm(false);
        c.arm(true);
        assert!(c.take_arm(false));
    }

    #[test]
    fn stubs_report_errors() {
        // SAFETY: poll_cq dereferences nothing.
        let r = unsafe { poll_cq(ptr::null_mut(), 1, ptr::null_mut()) };
        assert!(r < 0);
        // SAFETY: NULL is rejected before any dereference.
        assert_eq!(unsafe { req_notify_cq(ptr::null_mut(), 0) }, libc::EINVAL);
    }
}
