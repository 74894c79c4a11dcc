//! Queue pairs.
//!
//! The kernel shadow QP allocates the QP number (`endpoint << 12 | slot`) and
//! tracks the state so `rdma resource` is truthful. Addressing stays in user
//! space: `modify_qp` strips `IBV_QP_AV`/`IBV_QP_ALT_PATH` before the
//! command (ib_core would otherwise try to resolve a RoCE destination MAC
//! for the address vector) and keeps the vectors in [`QpPaths`] for the data
//! path (issue 3); `query_qp` reports them back.
//!
//! Ownership: [`create_qp`] Box-allocates an [`OmxQp`]; `ibv_cmd_create_qp`
//! fills every `ibv_qp` field (context, pd, cqs, handle, qp_num, state,
//! mutex/cond) as libibverbs does no QP initialisation of its own.
//! [`destroy_qp`] frees it after the kernel object is gone. The QP points at
//! its PD and CQs, which the kernel keeps alive while the QP exists.
//!
//! Locks: `paths` (a Mutex) guards the address vectors. It is the only lock
//! in the provider for now, is never held across an `ibv_cmd_*` call or a
//! return to C, and so has no ordering constraints.

use core::mem::size_of;
use core::ptr;
use std::sync::Mutex;

use omx_rdma_sys::*;

use crate::errno::{to_ptr, to_ret, Errno};
use crate::guard::guard;
use crate::log;

/// Address vectors set through `modify_qp`, user space only.
#[derive(Clone, Copy, Default)]
pub struct QpPaths {
    pub av: Option<ibv_ah_attr>,
    pub alt_av: Option<ibv_ah_attr>,
}

#[repr(C)]
pub struct OmxQp {
    /// `verbs_qp`, not plain `ibv_qp`: `ibv_qp_to_qp_ex()` reads
    /// `verbs_qp.comp_mask` behind the `ibv_qp` on any QP, so that memory
    /// must exist and be zero (we never set VERBS_QP_EX). The v55 struct is
    /// 8 bytes longer than v44's; both views read zero there.
    pub vqp: verbs_qp,
    pub paths: Mutex<QpPaths>,
}

const _: () = assert!(core::mem::offset_of!(OmxQp, vqp) == 0);

/// Splits a modify mask into the part the kernel sees and whether the
/// primary / alternate address vectors are being set.
pub fn split_mask(mask: u32) -> (u32, bool, bool) {
    let user = IBV_QP_AV | IBV_QP_ALT_PATH;
    (
        mask & !user,
        mask & IBV_QP_AV != 0,
        mask & IBV_QP_ALT_PATH != 0,
    )
}

/// QP types the provider implements.
pub fn supported_type(t: u32) -> bool {
    matches!(t, IBV_QPT_RC | IBV_QPT_UC | IBV_QPT_UD)
}

impl OmxQp {
    /// Records what `modify_qp` set, after the kernel accepted the rest.
    pub fn apply_paths(&self, attr: &ibv_qp_attr, mask: u32) {
        let (_, av, alt) = split_mask(mask);
        let Ok(mut p) = self.paths.lock() else { return };
        if mask & IBV_QP_STATE != 0 && attr.qp_state == IBV_QPS_RESET {
            *p = QpPaths::default();
        }
        if av {
            p.av = Some(attr.ah_attr);
        }
        if alt {
            p.alt_av = Some(attr.alt_ah_attr);
        }
    }

    /// Fills the address vectors the kernel does not know about.
    pub fn report_paths(&self, attr: &mut ibv_qp_attr, mask: u32) {
        let (_, av, alt) = split_mask(mask);
        let p = match self.paths.lock() {
            Ok(p) => *p,
            Err(_) => QpPaths::default(),
        };
        if av {
            attr.ah_attr = p.av.unwrap_or_default();
        }
        if alt {
            attr.alt_ah_attr = p.alt_av.unwrap_or_default();
        }
    }
}

/// # Safety
/// `qp` is NULL or a QP returned by [`create_qp`].
pub unsafe fn from_ibv<'a>(qp: *mut ibv_qp) -> Option<&'a OmxQp> {
    // SAFETY: ibv_qp is at offset 0 of verbs_qp, itself at offset 0 of OmxQp.
    unsafe { qp.cast::<OmxQp>().as_ref() }
}

fn create(pd: *mut ibv_pd, attr: *mut ibv_qp_init_attr) -> Result<*mut ibv_qp, Errno> {
    // SAFETY: attr is non-null (checked by the caller) and points at the
    // application's init attributes.
    let qp_type = unsafe { (*attr).qp_type };
    if !supported_type(qp_type) {
        return Err(Errno::EOPNOTSUPP);
    }
    // SAFETY: as above; reading a pointer field.
    if !unsafe { (*attr).srq }.is_null() {
        // No SRQs yet (create_srq is a libibverbs dummy), so a non-NULL srq
        // is not one of ours.
        return Err(Errno::EINVAL);
    }
    let qp = Box::into_raw(Box::new(OmxQp {
        vqp: verbs_qp::default(),
        paths: Mutex::new(QpPaths::default()),
    }));
    let mut cmd = ibv_create_qp::default();
    let mut resp = ib_uverbs_create_qp_resp::default();
    // SAFETY: pd is our live PD; attr valid; qp is a fresh allocation whose
    // address becomes the kernel's user_handle until destroy_qp. Passing the
    // plain ibv_qp makes libibverbs leave verbs_qp.comp_mask alone (zero).
    let ret = unsafe {
        ibv_cmd_create_qp(
            pd,
            ptr::addr_of_mut!((*qp).vqp.__bindgen_anon_1.qp),
            attr,
            &mut cmd,
            size_of::<ibv_create_qp>(),
            &mut resp,
            size_of::<ib_uverbs_create_qp_resp>(),
        )
    };
    if let Err(e) = Errno::check(ret) {
        // SAFETY: never published.
        drop(unsafe { Box::from_raw(qp) });
        return Err(e);
    }
    let qpn = resp.qpn;
    log::debug(format_args!(
        "qp {qpn:#x} created: endpoint {} slot {}",
        (qpn & 0xff_ffff) >> OMX_QPN_SLOT_BITS,
        qpn & OMX_QPN_SLOT_MASK
    ));
    Ok(qp.cast())
}

/// # Safety
/// `pd` NULL or ours; `attr` NULL or valid.
pub unsafe extern "C" fn create_qp(pd: *mut ibv_pd, attr: *mut ibv_qp_init_attr) -> *mut ibv_qp {
    if pd.is_null() || attr.is_null() {
        Errno::EINVAL.set();
        return ptr::null_mut();
    }
    guard("create_qp", ptr::null_mut(), || to_ptr(create(pd, attr)))
}

/// # Safety
/// `qp` NULL or ours.
pub unsafe extern "C" fn destroy_qp(qp: *mut ibv_qp) -> i32 {
    if qp.is_null() {
        return libc::EINVAL;
    }
    guard("destroy_qp", libc::EIO, || {
        // SAFETY: qp is ours and alive.
        let ret = unsafe { ibv_cmd_destroy_qp(qp) };
        if let Err(e) = Errno::check(ret) {
            return e.0;
        }
        // SAFETY: kernel object gone; from Box::into_raw in create().
        drop(unsafe { Box::from_raw(qp.cast::<OmxQp>()) });
        to_ret(Ok(()))
    })
}

/// # Safety
/// `qp` NULL or ours; `attr` NULL or valid.
pub unsafe extern "C" fn modify_qp(qp: *mut ibv_qp, attr: *mut ibv_qp_attr, attr_mask: i32) -> i32 {
    // SAFETY: per the contract.
    let Some(oqp) = (unsafe { from_ibv(qp) }) else {
        return libc::EINVAL;
    };
    if attr.is_null() {
        return libc::EINVAL;
    }
    guard("modify_qp", libc::EIO, || {
        let mask = attr_mask as u32;
        let (kmask, _, _) = split_mask(mask);
        if kmask != 0 {
            let mut cmd = ibv_modify_qp::default();
            // SAFETY: qp ours, attr valid; the kernel reads only the
            // fields selected by kmask.
            let ret = unsafe {
                ibv_cmd_modify_qp(qp, attr, kmask as i32, &mut cmd, size_of::<ibv_modify_qp>())
            };
            if let Err(e) = Errno::check(ret) {
                return e.0;
            }
        }
        // SAFETY: attr valid and not written concurrently by the caller.
        oqp.apply_paths(unsafe { &*attr }, mask);
        to_ret(Ok(()))
    })
}

/// # Safety
/// `qp` NULL or ours; `attr`, `init_attr` NULL or valid.
pub unsafe extern "C" fn query_qp(
    qp: *mut ibv_qp,
    attr: *mut ibv_qp_attr,
    attr_mask: i32,
    init_attr: *mut ibv_qp_init_attr,
) -> i32 {
    // SAFETY: per the contract.
    let Some(oqp) = (unsafe { from_ibv(qp) }) else {
        return libc::EINVAL;
    };
    if attr.is_null() || init_attr.is_null() {
        return libc::EINVAL;
    }
    guard("query_qp", libc::EIO, || {
        let mut cmd = ibv_query_qp::default();
        // SAFETY: qp ours; attr/init_attr valid and writable.
        let ret = unsafe {
            ibv_cmd_query_qp(
                qp,
                attr,
                attr_mask,
                init_attr,
                &mut cmd,
                size_of::<ibv_query_qp>(),
            )
        };
        if let Err(e) = Errno::check(ret) {
            return e.0;
        }
        // SAFETY: attr valid, exclusively ours for the call.
        oqp.report_paths(unsafe { &mut *attr }, attr_mask as u32);
        to_ret(Ok(()))
    })
}

/// `ibv_post_send`: no data path yet. Every WR fails; `*bad_wr` names the
/// first one.
///
/// # Safety
/// `bad_wr` NULL or writable.
pub unsafe extern "C" fn post_send(
    _qp: *mut ibv_qp,
    wr: *mut ibv_send_wr,
    bad_wr: *mut *mut ibv_send_wr,
) -> i32 {
    if !bad_wr.is_null() {
        // SAFETY: non-null out-pointer supplied by the caller.
        unsafe { *bad_wr = wr };
    }
    libc::EOPNOTSUPP
}

/// `ibv_post_recv`: as [`post_send`].
///
/// # Safety
/// `bad_wr` NULL or writable.
pub unsafe extern "C" fn post_recv(
    _qp: *mut ibv_qp,
    wr: *mut ibv_recv_wr,
    bad_wr: *mut *mut ibv_recv_wr,
) -> i32 {
    if !bad_wr.is_null() {
        // SAFETY: non-null out-pointer supplied by the caller.
        unsafe { *bad_wr = wr };
    }
    libc::EOPNOTSUPP
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn av_bits_never_reach_the_kernel() {
        let m = IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_ALT_PATH;
        let (k, av, alt) = split_mask(m);
        assert_eq!(k, IBV_QP_STATE | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN);
        assert!(av && alt);
        assert_eq!(split_mask(IBV_QP_STATE), (IBV_QP_STATE, false, false));
    }

    #[test]
    fn paths_round_trip_and_reset() {
        let qp = OmxQp {
            vqp: verbs_qp::default(),
            paths: Mutex::new(QpPaths::default()),
        };
        let a = ibv_qp_attr {
            qp_state: IBV_QPS_RTR,
            ah_attr: ibv_ah_attr {
                dlid: 7,
                port_num: 1,
                ..Default::default()
            },
            ..Default::default()
        };
        qp.apply_paths(&a, IBV_QP_STATE | IBV_QP_AV);
        let mut q = ibv_qp_attr::default();
        qp.report_paths(&mut q, IBV_QP_AV);
        assert_eq!(q.ah_attr.dlid, 7);
        let r = ibv_qp_attr {
            qp_state: IBV_QPS_RESET,
            ..Default::default()
        };
        qp.apply_paths(&r, IBV_QP_STATE);
        let mut q = ibv_qp_attr::default();
        q.ah_attr.dlid = 99;
        qp.report_paths(&mut q, IBV_QP_AV);
        assert_eq!(q.ah_attr.dlid, 0);
    }

    #[test]
    fn types() {
        assert!(supported_type(IBV_QPT_RC));
        assert!(supported_type(IBV_QPT_UC));
        assert!(supported_type(IBV_QPT_UD));
        assert!(!supported_type(IBV_QPT_RAW_PACKET));
        assert!(!supported_type(IBV_QPT_XRC_SEND));
    }

    #[test]
    fn post_stubs_set_bad_wr() {
        let mut wr = ibv_send_wr::default();
        let mut bad: *mut ibv_send_wr = ptr::null_mut();
        // SAFETY: valid pointers to locals.
        let r = unsafe { post_send(ptr::null_mut(), &mut wr, &mut bad) };
        assert_eq!(r, libc::EOPNOTSUPP);
        assert_eq!(bad, &mut wr as *mut _);
        let mut rwr = ibv_recv_wr::default();
        let mut rbad: *mut ibv_recv_wr = ptr::null_mut();
        // SAFETY: as above.
        let r = unsafe { post_recv(ptr::null_mut(), &mut rwr, &mut rbad) };
        assert_eq!(r, libc::EOPNOTSUPP);
        assert_eq!(rbad, &mut rwr as *mut _);
    }
}
