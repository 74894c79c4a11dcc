//! Memory regions: registered with the kernel shadow for keys and
//! accounting. The kernel pins nothing; the user-space data path (issue 3)
//! will look MRs up by the lkey/rkey the kernel returned, which
//! `ibv_cmd_reg_mr` stores in `ibv_mr`.
//!
//! Ownership: [`reg_mr`] Box-allocates an [`OmxMr`]; [`dereg_mr`] frees it
//! once the kernel object is gone. libibverbs fills `context/pd/addr/length`
//! after we return and handles `ibv_dontfork_range`. No locks.

use core::ffi::c_void;
use core::mem::size_of;
use core::ptr;

use omx_rdma_sys::*;

use crate::errno::{to_ptr, to_ret, Errno};
use crate::guard::guard;

#[repr(C)]
pub struct OmxMr {
    pub vmr: verbs_mr,
}

const _: () = assert!(core::mem::offset_of!(OmxMr, vmr) == 0);

fn reg(
    pd: *mut ibv_pd,
    addr: *mut c_void,
    len: usize,
    hca_va: u64,
    access: i32,
) -> Result<*mut ibv_mr, Errno> {
    let mr = Box::into_raw(Box::new(OmxMr {
        vmr: verbs_mr::default(),
    }));
    let mut cmd = ibv_reg_mr::default();
    let mut resp = ib_uverbs_reg_mr_resp::default();
    // SAFETY: pd is a live PD of ours; mr is a fresh allocation; the kernel
    // only records [addr, addr+len) and never touches the memory.
    let ret = unsafe {
        ibv_cmd_reg_mr(
            pd,
            addr,
            len,
            hca_va,
            access,
            ptr::addr_of_mut!((*mr).vmr),
            &mut cmd,
            size_of::<ibv_reg_mr>(),
            &mut resp,
            size_of::<ib_uverbs_reg_mr_resp>(),
        )
    };
    if let Err(e) = Errno::check(ret) {
        // SAFETY: mr came from Box::into_raw above and was never published.
        drop(unsafe { Box::from_raw(mr) });
        return Err(e);
    }
    // SAFETY: vmr.ibv_mr is the first member; the pointer stays valid until
    // dereg_mr.
    Ok(unsafe { ptr::addr_of_mut!((*mr).vmr.ibv_mr) })
}

/// # Safety
/// `pd` is NULL or one of our PDs.
pub unsafe extern "C" fn reg_mr(
    pd: *mut ibv_pd,
    addr: *mut c_void,
    length: usize,
    hca_va: u64,
    access: i32,
) -> *mut ibv_mr {
    if pd.is_null() {
        Errno::EINVAL.set();
        return ptr::null_mut();
    }
    guard("reg_mr", ptr::null_mut(), || {
        to_ptr(reg(pd, addr, length, hca_va, access))
    })
}

/// # Safety
/// `vmr` is NULL or an MR returned by [`reg_mr`].
pub unsafe extern "C" fn dereg_mr(vmr: *mut verbs_mr) -> i32 {
    if vmr.is_null() {
        return libc::EINVAL;
    }
    guard("dereg_mr", libc::EIO, || {
        // SAFETY: vmr is ours and alive.
        let ret = unsafe { ibv_cmd_dereg_mr(vmr) };
        if let Err(e) = Errno::check(ret) {
            return e.0;
        }
        // SAFETY: kernel object gone; vmr is the first field of an OmxMr
        // from Box::into_raw in reg().
        drop(unsafe { Box::from_raw(vmr.cast::<OmxMr>()) });
        to_ret(Ok(()))
    })
}
