//! Protection domains: a kernel shadow PD (`rdma resource` shows it) and
//! nothing else yet.
//!
//! Ownership: [`alloc_pd`] Box-allocates an [`OmxPd`]; the application owns
//! it until [`dealloc_pd`] succeeds, which frees it. libibverbs sets
//! `pd->context` after we return. MRs and QPs reference their PD by pointer
//! only (the kernel refuses to free a PD in use: EBUSY, and then we keep the
//! object). No locks.

use core::mem::size_of;
use core::ptr;

use omx_rdma_sys::*;

use crate::errno::{to_ptr, to_ret, Errno};
use crate::guard::guard;

#[repr(C)]
pub struct OmxPd {
    pub ibv_pd: ibv_pd,
}

const _: () = assert!(core::mem::offset_of!(OmxPd, ibv_pd) == 0);

fn alloc(ctx: *mut ibv_context) -> Result<*mut ibv_pd, Errno> {
    let pd = Box::into_raw(Box::new(OmxPd {
        ibv_pd: ibv_pd::default(),
    }));
    let mut cmd = ibv_alloc_pd::default();
    let mut resp = ib_uverbs_alloc_pd_resp::default();
    // SAFETY: ctx is a live context of ours (checked by the caller); pd is a
    // fresh allocation; cmd/resp are correctly sized locals.
    let ret = unsafe {
        ibv_cmd_alloc_pd(
            ctx,
            ptr::addr_of_mut!((*pd).ibv_pd),
            &mut cmd,
            size_of::<ibv_alloc_pd>(),
            &mut resp,
            size_of::<ib_uverbs_alloc_pd_resp>(),
        )
    };
    if let Err(e) = Errno::check(ret) {
        // SAFETY: pd came from Box::into_raw above and was never published.
        drop(unsafe { Box::from_raw(pd) });
        return Err(e.note_quota("ibv_alloc_pd", "max_pds_per_user"));
    }
    Ok(pd.cast())
}

/// # Safety
/// `ctx` is NULL or one of our contexts.
pub unsafe extern "C" fn alloc_pd(ctx: *mut ibv_context) -> *mut ibv_pd {
    if ctx.is_null() {
        Errno::EINVAL.set();
        return ptr::null_mut();
    }
    guard("alloc_pd", ptr::null_mut(), || to_ptr(alloc(ctx)))
}

/// # Safety
/// `pd` is NULL or a PD returned by [`alloc_pd`].
pub unsafe extern "C" fn dealloc_pd(pd: *mut ibv_pd) -> i32 {
    if pd.is_null() {
        return libc::EINVAL;
    }
    guard("dealloc_pd", libc::EIO, || {
        // SAFETY: pd is ours and alive.
        let ret = unsafe { ibv_cmd_dealloc_pd(pd) };
        if let Err(e) = Errno::check(ret) {
            return e.0;
        }
        // SAFETY: the kernel object is gone; pd came from Box::into_raw in
        // alloc() and the application may not use it any more.
        drop(unsafe { Box::from_raw(pd.cast::<OmxPd>()) });
        to_ret(Ok(()))
    })
}
