//! Memory windows (docs/provider.md, "Memory windows"): the kernel
//! allocates them (`ibv_cmd_alloc_mw`: the rkey, from the same key space
//! as MRs, and the per-user accounting); binding, invalidation and the
//! checks of every access through a window are the context's MR table
//! (omx-verbs-objects `MrTable`) and the engine (binds and local
//! invalidations are local operations of the send queue).
//!
//! Ownership: [`alloc_mw`] Box-allocates an [`OmxMw`], recorded in the MR
//! table after the kernel accepted it; [`dealloc_mw`] takes it out of the
//! table *before* the kernel object (and its key) goes, then frees it.
//! Each window holds an `Arc` of its context's runtime. No locks of its
//! own.

use core::mem::size_of;
use core::ptr;
use std::sync::Arc;

use omx_engine::MwBind;
use omx_rdma_sys::*;
use omx_verbs::{MwEntry, MwType};

use crate::errno::{to_ptr, to_ret, Errno};
use crate::guard::guard;
use crate::log;
use crate::runtime::Runtime;

#[repr(C)]
pub struct OmxMw {
    pub ibv_mw: ibv_mw,
    pub rt: Option<Arc<Runtime>>,
    /// The table entry while the kernel object exists.
    pub entry: Option<MwEntry>,
}

const _: () = assert!(core::mem::offset_of!(OmxMw, ibv_mw) == 0);

/// `ibv_inc_rkey`: the next key byte, the index bits kept.
pub fn inc_rkey(rkey: u32) -> u32 {
    (rkey & 0xffff_ff00) | (rkey.wrapping_add(1) & 0xff)
}

fn alloc(pd: *mut ibv_pd, ty: ibv_mw_type) -> Result<*mut ibv_mw, Errno> {
    let kind = match ty {
        IBV_MW_TYPE_1 => MwType::One,
        IBV_MW_TYPE_2 => MwType::Two,
        _ => return Err(Errno::EINVAL),
    };
    // SAFETY: pd is a live PD of ours (caller), its context one of ours.
    let rt = unsafe { crate::context::from_ibv((*pd).context) }.and_then(|c| c.rt.clone());
    let Some(rt) = rt else {
        return Err(Errno::EOPNOTSUPP);
    };
    let mw = Box::into_raw(Box::new(OmxMw {
        ibv_mw: ibv_mw::default(),
        rt: Some(rt),
        entry: None,
    }));
    let mut cmd = ibv_alloc_mw::default();
    let mut resp = ib_uverbs_alloc_mw_resp::default();
    // SAFETY: pd is a live PD of ours; mw is a fresh allocation; cmd/resp
    // are correctly sized locals.
    let ret = unsafe {
        ibv_cmd_alloc_mw(
            pd,
            ty,
            ptr::addr_of_mut!((*mw).ibv_mw),
            &mut cmd,
            size_of::<ibv_alloc_mw>(),
            &mut resp,
            size_of::<ib_uverbs_alloc_mw_resp>(),
        )
    };
    if let Err(e) = Errno::check(ret) {
        // SAFETY: mw came from Box::into_raw above and was never published.
        drop(unsafe { Box::from_raw(mw) });
        return Err(e.note_quota("ibv_alloc_mw", "max_mws_per_user"));
    }
    // SAFETY: mw is ours and not yet published; pd is live.
    unsafe {
        let m = &mut *mw;
        let e = MwEntry {
            rkey: m.ibv_mw.rkey,
            pd: (*pd).handle,
            kind,
            bound: None,
        };
        m.entry = Some(e);
        if let Some(rt) = &m.rt {
            rt.ep.mrs.insert_mw_entry(e);
        }
    }
    Ok(mw.cast())
}

/// `ibv_alloc_mw`: type 1 or type 2 (EINVAL otherwise).
///
/// # Safety
/// `pd` is NULL or one of our PDs.
pub unsafe extern "C" fn alloc_mw(pd: *mut ibv_pd, ty: ibv_mw_type) -> *mut ibv_mw {
    if pd.is_null() {
        Errno::EINVAL.set();
        return ptr::null_mut();
    }
    guard("alloc_mw", ptr::null_mut(), || to_ptr(alloc(pd, ty)))
}

/// `ibv_dealloc_mw`: a bound window may be deallocated (it is gone for
/// remote accesses before the kernel frees its key).
///
/// # Safety
/// `mw` is NULL or a window returned by [`alloc_mw`].
pub unsafe extern "C" fn dealloc_mw(mw: *mut ibv_mw) -> i32 {
    if mw.is_null() {
        return libc::EINVAL;
    }
    guard("dealloc_mw", libc::EIO, || {
        // SAFETY: mw is the first field of a live OmxMw of ours.
        let m = unsafe { &*mw.cast::<OmxMw>() };
        let taken = match (&m.rt, m.entry) {
            (Some(rt), Some(e)) => rt.ep.mrs.remove_mw(e.rkey),
            _ => None,
        };
        // SAFETY: mw is ours and alive.
        let ret = unsafe { ibv_cmd_dealloc_mw(mw) };
        if let Err(e) = Errno::check(ret) {
            if let (Some(rt), Some(en)) = (&m.rt, taken) {
                rt.ep.mrs.insert_mw_entry(en);
            }
            return e.0;
        }
        // SAFETY: kernel object gone; mw is the first field of an OmxMw
        // from Box::into_raw in alloc().
        drop(unsafe { Box::from_raw(mw.cast::<OmxMw>()) });
        to_ret(Ok(()))
    })
}

/// The engine's bind of `mw` to `info` under the key byte of `rkey`, for
/// a QP of context `ctx`. Refused with EINVAL at post time (as rxe): a
/// window or an MR of another context, a length without an MR. What the
/// window's type and state, the MR's rights and bounds allow is checked
/// when the send queue executes the bind (IBV_WC_MW_BIND_ERR).
///
/// # Safety
/// `mw` is NULL or a live `ibv_mw`, `info.mr` NULL or a live `ibv_mr`
/// (the verbs contract for the call that hands them to us).
pub unsafe fn mw_bind(
    ctx: *mut ibv_context,
    mw: *mut ibv_mw,
    rkey: u32,
    info: &ibv_mw_bind_info,
) -> Result<MwBind, i32> {
    // SAFETY: per the contract.
    let mw = unsafe { mw.as_ref() }.ok_or(libc::EINVAL)?;
    if mw.context != ctx {
        return Err(libc::EINVAL);
    }
    // SAFETY: per the contract.
    let mr_lkey = match unsafe { info.mr.as_ref() } {
        Some(mr) if mr.context == ctx => mr.lkey,
        Some(_) => return Err(libc::EINVAL),
        None if info.length != 0 => {
            log::notice(format_args!(
                "bind_mw: a window of {} bytes needs an MR (bind_info.mr is NULL)",
                info.length
            ));
            return Err(libc::EINVAL);
        }
        None => 0,
    };
    Ok(MwBind {
        mw_rkey: mw.rkey,
        new_rkey: rkey,
        mr_lkey,
        addr: info.addr,
        len: info.length,
        access: info.mw_access_flags,
    })
}

/// `ibv_bind_mw`: binds a type 1 window through `qp`'s send queue (an
/// IBV_WR_BIND_MW of our own, completed as IBV_WC_BIND_MW), under the
/// next key byte, which `mw->rkey` takes at once (the application
/// announces it to its peer; an IBV_WC_MW_BIND_ERR completion means the
/// window did not change). Type 2 windows are bound with
/// IBV_WR_BIND_MW (EINVAL here), as are zero-based ones.
///
/// # Safety
/// `qp`, `mw` NULL or ours; `bind` NULL or readable.
pub unsafe extern "C" fn bind_mw(qp: *mut ibv_qp, mw: *mut ibv_mw, bind: *mut ibv_mw_bind) -> i32 {
    // SAFETY: per the contract.
    let (Some(m), Some(b)) = (unsafe { mw.as_mut() }, unsafe { bind.as_ref() }) else {
        return libc::EINVAL;
    };
    if qp.is_null() || m.type_ != IBV_MW_TYPE_1 {
        return libc::EINVAL;
    }
    if b.bind_info.mw_access_flags & IBV_ACCESS_ZERO_BASED != 0 {
        log::notice(format_args!(
            "bind_mw: type 1 windows are not zero-based (IBTA o10-36.2.2)"
        ));
        return libc::EINVAL;
    }
    let new_rkey = inc_rkey(m.rkey);
    let mut wr = ibv_send_wr {
        wr_id: b.wr_id,
        opcode: IBV_WR_BIND_MW,
        send_flags: b.send_flags,
        ..Default::default()
    };
    wr.__bindgen_anon_2.bind_mw = ibv_send_wr__bindgen_ty_4__bindgen_ty_1 {
        mw,
        rkey: new_rkey,
        bind_info: b.bind_info,
    };
    let mut bad = ptr::null_mut();
    // SAFETY: qp is ours (contract); wr is a one-element list on our stack
    // whose mw and mr pointers are the caller's live objects.
    let r = unsafe { crate::qp::post_send(qp, &mut wr, &mut bad) };
    if r == 0 {
        m.rkey = new_rkey;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inc_rkey_changes_the_key_byte_only() {
        assert_eq!(inc_rkey(0x1234_5600), 0x1234_5601);
        assert_eq!(inc_rkey(0x1234_56ff), 0x1234_5600);
    }

    #[test]
    fn binds_are_checked_against_the_context() {
        let mut ctx = ibv_context::default();
        let mut other = ibv_context::default();
        let c: *mut ibv_context = &mut ctx;
        let o: *mut ibv_context = &mut other;
        let mut mw = ibv_mw {
            context: c,
            rkey: 0x5000_0001,
            ..Default::default()
        };
        let mut mr = ibv_mr {
            context: c,
            lkey: 0x7000,
            ..Default::default()
        };
        let mut info = ibv_mw_bind_info {
            mr: &mut mr,
            addr: 0x1000,
            length: 64,
            mw_access_flags: IBV_ACCESS_REMOTE_WRITE,
        };
        // SAFETY: every pointer is a live local.
        let b = unsafe { mw_bind(c, &mut mw, 0x77, &info) }.unwrap();
        assert_eq!(
            (b.mw_rkey, b.new_rkey, b.mr_lkey, b.addr, b.len, b.access),
            (
                0x5000_0001,
                0x77,
                0x7000,
                0x1000,
                64,
                IBV_ACCESS_REMOTE_WRITE
            )
        );
        // SAFETY: as above.
        unsafe {
            assert_eq!(mw_bind(o, &mut mw, 1, &info), Err(libc::EINVAL));
            assert_eq!(mw_bind(c, ptr::null_mut(), 1, &info), Err(libc::EINVAL));
            (*info.mr).context = o;
            assert_eq!(mw_bind(c, &mut mw, 1, &info), Err(libc::EINVAL));
            info.mr = ptr::null_mut();
            assert_eq!(mw_bind(c, &mut mw, 1, &info), Err(libc::EINVAL));
            info.length = 0;
            assert_eq!(mw_bind(c, &mut mw, 1, &info).map(|b| b.mr_lkey), Ok(0));
        }
    }
}
