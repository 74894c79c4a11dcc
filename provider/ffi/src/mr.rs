//! Memory regions: registered with the kernel shadow for keys and
//! accounting. The kernel pins nothing; the user-space data path (issue 3)
//! will look MRs up by the lkey/rkey the kernel returned, which
//! `ibv_cmd_reg_mr` stores in `ibv_mr`.
//!
//! Ownership: [`reg_mr`] Box-allocates an [`OmxMr`]; [`dereg_mr`] frees it
//! once the kernel object is gone. libibverbs fills `context/pd/addr/length`
//! after we return and handles `ibv_dontfork_range`.
//!
//! The data path finds the region in the context's MR table
//! (omx-verbs-objects `MrTable`): `reg_mr` inserts it after the kernel
//! accepted it, `dereg_mr` removes it *before* the kernel object goes, and
//! removal waits (table write lock) until no engine call is copying through
//! it. Each MR holds an `Arc` of its context's runtime. No locks of its
//! own.

use core::ffi::c_void;
use core::mem::size_of;
use core::ptr;

use omx_rdma_sys::*;

use crate::errno::{to_ptr, to_ret, Errno};
use crate::guard::guard;
use crate::runtime::Runtime;
use omx_verbs::{AdviseError, MrEntry};
use std::sync::Arc;

#[repr(C)]
pub struct OmxMr {
    pub vmr: verbs_mr,
    pub rt: Option<Arc<Runtime>>,
    pub entry: Option<MrEntry>,
}

const _: () = assert!(core::mem::offset_of!(OmxMr, vmr) == 0);

fn reg(
    pd: *mut ibv_pd,
    addr: *mut c_void,
    len: usize,
    hca_va: u64,
    access: i32,
) -> Result<*mut ibv_mr, Errno> {
    // SAFETY: pd is a live PD of ours (caller), its context one of ours.
    let rt = unsafe { crate::context::from_ibv((*pd).context) }.and_then(|c| c.rt.clone());
    let mr = Box::into_raw(Box::new(OmxMr {
        vmr: verbs_mr::default(),
        rt,
        entry: None,
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
        return Err(e.note_quota("ibv_reg_mr", "max_mrs_per_user"));
    }
    // SAFETY: mr is ours and not yet published; pd is live.
    unsafe {
        let m = &mut *mr;
        let e = MrEntry {
            lkey: m.vmr.ibv_mr.lkey,
            rkey: m.vmr.ibv_mr.rkey,
            pd: (*pd).handle,
            addr: hca_va,
            va: addr as u64,
            len: len as u64,
            access: access as u32,
        };
        m.entry = Some(e);
        if let Some(rt) = &m.rt {
            rt.ep.mrs.insert(e);
        }
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
        // SAFETY: vmr is the first field of a live OmxMr of ours.
        let m = unsafe { &*vmr.cast::<OmxMr>() };
        if let (Some(rt), Some(e)) = (&m.rt, m.entry) {
            let n = rt.ep.mrs.windows_on(e.lkey);
            if n > 0 {
                // IBTA: an MR with bound windows is not deregistered
                // (rxe refuses too); invalidate or deallocate them first.
                crate::log::notice(format_args!(
                    "dereg_mr: {n} memory window(s) are bound to MR lkey {:#x}: EBUSY",
                    e.lkey
                ));
                return libc::EBUSY;
            }
        }
        // The data path stops using the region before the kernel forgets
        // it.
        if let (Some(rt), Some(e)) = (&m.rt, m.entry) {
            rt.ep.mrs.remove(e.lkey);
        }
        // SAFETY: vmr is ours and alive.
        let ret = unsafe { ibv_cmd_dereg_mr(vmr) };
        if let Err(e) = Errno::check(ret) {
            if let (Some(rt), Some(en)) = (&m.rt, m.entry) {
                rt.ep.mrs.insert(en);
            }
            return e.0;
        }
        // SAFETY: kernel object gone; vmr is the first field of an OmxMr
        // from Box::into_raw in reg().
        drop(unsafe { Box::from_raw(vmr.cast::<OmxMr>()) });
        to_ret(Ok(()))
    })
}

/// The errno ibv_advise_mr(3) documents for each refusal.
pub fn advise_errno(e: AdviseError) -> i32 {
    match e {
        // "One of the lkeys provided in the scatter gather list is invalid"
        // and "the range requested is out of the MR bounds".
        AdviseError::BadKey | AdviseError::OutOfBounds => libc::EFAULT,
        // "Referencing a valid lkey outside the caller's security scope",
        // "PREFETCH_WRITE but the MR is not registered as writable".
        AdviseError::OtherPd | AdviseError::NotWritable => libc::EPERM,
        // The lkeys of a prefetch must name ODP MRs.
        AdviseError::NotOnDemand => libc::EINVAL,
    }
}

/// Pages `[va, va + len)` in (best effort). An unmapped range gives
/// EFAULT ("parts of it are not part of the process address space").
fn prefetch(va: u64, len: u64) -> Result<(), i32> {
    if len == 0 {
        return Ok(());
    }
    const PAGE: u64 = 4096;
    let start = va & !(PAGE - 1);
    let end = va
        .checked_add(len)
        .and_then(|e| e.checked_add(PAGE - 1))
        .ok_or(libc::EFAULT)?
        & !(PAGE - 1);
    // SAFETY: MADV_WILLNEED only schedules read-ahead/swap-in; it never
    // changes the contents or the mapping of the range.
    let r = unsafe {
        libc::madvise(
            start as usize as *mut c_void,
            (end - start) as usize,
            libc::MADV_WILLNEED,
        )
    };
    if r != 0 && Errno::last().0 == libc::ENOMEM {
        return Err(libc::EFAULT);
    }
    Ok(())
}

/// `ibv_advise_mr`: prefetch advice on ODP MRs. Nothing is pinned or
/// mapped for a device here (the provider copies through the process's own
/// mappings), so a prefetch validates every SGE and asks the kernel to
/// page the range in (`MADV_WILLNEED`); IBV_ADVISE_MR_FLAG_FLUSH is
/// accepted and changes nothing (the call is synchronous anyway).
///
/// # Safety
/// `pd` NULL or ours; `sg_list` readable for `num_sges` entries.
pub unsafe extern "C" fn advise_mr(
    pd: *mut ibv_pd,
    advice: ib_uverbs_advise_mr_advice,
    flags: u32,
    sg_list: *mut ibv_sge,
    num_sges: u32,
) -> i32 {
    if pd.is_null() {
        return libc::EINVAL;
    }
    let write = match advice {
        IB_UVERBS_ADVISE_MR_ADVICE_PREFETCH | IB_UVERBS_ADVISE_MR_ADVICE_PREFETCH_NO_FAULT => false,
        IB_UVERBS_ADVISE_MR_ADVICE_PREFETCH_WRITE => true,
        _ => return libc::EOPNOTSUPP,
    };
    if flags & !IB_UVERBS_ADVISE_MR_FLAG_FLUSH != 0 || num_sges == 0 || sg_list.is_null() {
        return libc::EINVAL;
    }
    guard("advise_mr", libc::EIO, || {
        // SAFETY: pd is a live PD of ours (contract).
        let (ctx, handle) = unsafe { ((*pd).context, (*pd).handle) };
        // SAFETY: ctx is the context of our PD.
        let Some(rt) = (unsafe { crate::context::from_ibv(ctx) }).and_then(|c| c.rt.as_ref())
        else {
            return libc::EINVAL;
        };
        for i in 0..num_sges as usize {
            // SAFETY: i < num_sges (contract).
            let g = unsafe { &*sg_list.add(i) };
            let r = rt
                .ep
                .mrs
                .advise_range(handle, g.lkey, g.addr, g.length, write)
                .map_err(advise_errno)
                .and_then(|(va, len)| {
                    if advice == IB_UVERBS_ADVISE_MR_ADVICE_PREFETCH_NO_FAULT {
                        Ok(())
                    } else {
                        prefetch(va, len)
                    }
                });
            if let Err(e) = r {
                return e;
            }
        }
        0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advise_errnos_follow_the_man_page() {
        assert_eq!(advise_errno(AdviseError::BadKey), libc::EFAULT);
        assert_eq!(advise_errno(AdviseError::OutOfBounds), libc::EFAULT);
        assert_eq!(advise_errno(AdviseError::NotWritable), libc::EPERM);
        assert_eq!(advise_errno(AdviseError::OtherPd), libc::EPERM);
        assert_eq!(advise_errno(AdviseError::NotOnDemand), libc::EINVAL);
    }

    #[test]
    fn prefetch_maps_unmapped_to_efault() {
        let buf = vec![1u8; 10000];
        assert_eq!(prefetch(buf.as_ptr() as u64, 10000), Ok(()));
        assert_eq!(prefetch(0, 0), Ok(()));
        // Page 0 is never mapped.
        assert_eq!(prefetch(16, 8), Err(libc::EFAULT));
        assert_eq!(prefetch(u64::MAX - 4, 4), Err(libc::EFAULT));
    }

    #[test]
    fn advise_argument_checks() {
        let mut sge = ibv_sge::default();
        // SAFETY: NULL pd and bad arguments are refused before any use.
        unsafe {
            assert_eq!(advise_mr(ptr::null_mut(), 0, 0, &mut sge, 1), libc::EINVAL);
        }
    }
}
