//! The device context (one per `ibv_open_device`, one rdma_omx endpoint).
//!
//! Ownership: `_verbs_init_and_alloc_context` callocs the [`OmxContext`]
//! (C heap) and `free_context` frees it with `free()` after
//! `verbs_uninit_context` (which closes cmd_fd/async_fd and drops the device
//! reference). The Rust part behind `vctx` is written with `ptr::write` right
//! after allocation and dropped in place before the free.
//!
//! What we rely on: libibverbs does **not** stop `ibv_close_device` while
//! PDs, CQs, QPs or MRs exist; the verbs spec makes that the application's
//! bug. Objects therefore never dereference their context after it is
//! closed except through the `ibv_cmd_*` calls the application makes on
//! them, exactly as in rxe/siw; the kernel refuses commands on the closed
//! fd (EBADF) rather than touching freed memory. Objects do not keep
//! pointers into `OmxContext` themselves.
//!
//! The data path lives in [`Runtime`] (an `Arc` shared with every object
//! of the context and the progress thread); `free_context` stops and joins
//! the progress thread before `verbs_uninit_context` closes cmd_fd.
//!
//! Locks: none here. [`UctxInfo`] and `rt` are written once before the
//! context is published to libibverbs and are read-only afterwards.

use core::mem::{offset_of, size_of};
use core::ptr;

use omx_rdma_sys::*;

use crate::errno::{to_ptr, to_ret, Errno};
use crate::guard::guard;
use crate::runtime::{NetdevInfo, Runtime};
use crate::{log, ops};
use std::sync::Arc;

/// What the kernel told us about our endpoint in GET_CONTEXT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UctxInfo {
    pub endpoint: u32,
    pub ifindex: u32,
    pub flags: u32,
    pub mac: [u8; 6],
    pub netdev_mtu: u32,
    pub max_qp_per_context: u32,
}

impl UctxInfo {
    /// Validates the driver tail of GET_CONTEXT.
    pub fn from_resp(r: &omx_alloc_ucontext_resp) -> Result<Self, Errno> {
        if r.abi_version != OMX_UVERBS_ABI_VERSION {
            log::error(format_args!(
                "GET_CONTEXT: kernel omx ABI {}, expected {OMX_UVERBS_ABI_VERSION}",
                r.abi_version
            ));
            return Err(Errno::EPROTO);
        }
        if !(OMX_ENDPOINT_MIN..=OMX_ENDPOINT_MAX).contains(&r.endpoint) {
            log::error(format_args!("GET_CONTEXT: bad endpoint {}", r.endpoint));
            return Err(Errno::EPROTO);
        }
        Ok(Self {
            endpoint: r.endpoint,
            ifindex: r.ifindex,
            flags: r.flags,
            mac: r.mac,
            netdev_mtu: r.netdev_mtu,
            max_qp_per_context: r.max_qp_per_context,
        })
    }

    pub fn netdev_in_caller_ns(&self) -> bool {
        self.flags & OMX_UCTX_NETDEV_IN_CALLER_NS != 0
    }
}

/// Our context; libibverbs sees `vctx` (and `vctx.context`).
#[repr(C)]
pub struct OmxContext {
    pub vctx: verbs_context,
    pub info: UctxInfo,
    pub rt: Option<Arc<Runtime>>,
}

/// GET_CONTEXT response: core part, then our driver data
/// (what `DECLARE_DRV_CMD(..., IB_USER_VERBS_CMD_GET_CONTEXT, empty,
/// omx_alloc_ucontext_resp)` would declare in C).
#[repr(C)]
#[derive(Default)]
pub struct GetContextResp {
    pub ibv_resp: ib_uverbs_get_context_resp,
    pub drv: omx_alloc_ucontext_resp,
}

const _: () = assert!(offset_of!(OmxContext, vctx) == 0);
const _: () = assert!(offset_of!(GetContextResp, drv) == size_of::<ib_uverbs_get_context_resp>());

/// `container_of(ctx, OmxContext, vctx.context)`.
///
/// # Safety
/// `ctx` is NULL or the `ibv_context` of a live [`OmxContext`].
pub unsafe fn from_ibv<'a>(ctx: *mut ibv_context) -> Option<&'a OmxContext> {
    if ctx.is_null() {
        return None;
    }
    let off = offset_of!(OmxContext, vctx) + offset_of!(verbs_context, context);
    // SAFETY: per the contract ctx points `off` bytes into an OmxContext.
    unsafe { ctx.byte_sub(off).cast::<OmxContext>().as_ref() }
}

impl OmxContext {
    pub fn ibv_ctx(&self) -> *mut ibv_context {
        ptr::addr_of!(self.vctx.context).cast_mut()
    }
}

/// `verbs_device_ops.alloc_context`: ibv_open_device().
///
/// # Safety
/// `ibdev` is one of our devices; we own `cmd_fd`.
pub unsafe extern "C" fn alloc_context(
    ibdev: *mut ibv_device,
    cmd_fd: i32,
    _private_data: *mut core::ffi::c_void,
) -> *mut verbs_context {
    if ibdev.is_null() {
        // SAFETY: we own cmd_fd and nobody else will close it.
        unsafe { libc::close(cmd_fd) };
        Errno::EINVAL.set();
        return ptr::null_mut();
    }
    guard("alloc_context", ptr::null_mut(), || {
        // SAFETY: ibdev is a live device of ours; cmd_fd is handed over.
        to_ptr(unsafe { open(ibdev, cmd_fd) })
    })
}

/// # Safety
/// As [`alloc_context`].
unsafe fn open(ibdev: *mut ibv_device, cmd_fd: i32) -> Result<*mut verbs_context, Errno> {
    // SAFETY: libibverbs callocs size_of::<OmxContext>() bytes, initialises
    // the verbs_context at offset `offset_of!(OmxContext, vctx)` (passed as a
    // fake pointer, the C idiom) and takes ownership of cmd_fd even on
    // failure.
    let raw = unsafe {
        _verbs_init_and_alloc_context(
            ibdev,
            cmd_fd,
            size_of::<OmxContext>(),
            offset_of!(OmxContext, vctx) as *mut verbs_context,
            OMX_DRIVER_ID,
        )
    }
    .cast::<OmxContext>();
    if raw.is_null() {
        return Err(Errno::last());
    }
    // SAFETY: raw is a fresh zeroed OmxContext allocation; `info` is plain
    // data, written before anything can read it.
    unsafe {
        ptr::addr_of_mut!((*raw).info).write(ZERO_INFO);
        ptr::addr_of_mut!((*raw).rt).write(None);
    }
    // SAFETY: vctx was initialised by _verbs_init_and_alloc_context.
    let vctx = unsafe { ptr::addr_of_mut!((*raw).vctx) };

    let mut cmd = ibv_get_context::default();
    let mut resp = GetContextResp::default();
    // SAFETY: cmd and resp are live, correctly sized command buffers; the
    // response buffer is larger than the core part, so its tail is the
    // driver udata the kernel fills.
    let ret = unsafe {
        ibv_cmd_get_context(
            vctx,
            &mut cmd,
            size_of::<ibv_get_context>(),
            &mut resp.ibv_resp,
            size_of::<GetContextResp>(),
        )
    };
    let info = Errno::check(ret)
        .map_err(|e| e.note_quota("ibv_open_device", "max_contexts_per_user"))
        .and_then(|()| UctxInfo::from_resp(&resp.drv));
    let info = match info {
        Ok(i) => i,
        Err(e) => {
            // SAFETY: raw came from _verbs_init_and_alloc_context and was not
            // published; uninit closes the fds, then the calloc'd block goes.
            unsafe { destroy(raw) };
            return Err(e);
        }
    };
    let netdev = NetdevInfo {
        ifindex: info.ifindex,
        mac: info.mac,
        mtu: info.netdev_mtu,
        in_caller_ns: info.netdev_in_caller_ns(),
    };
    let rt = Runtime::new(info.endpoint, netdev, cmd_fd);
    // SAFETY: raw is still private to this thread.
    unsafe {
        (*raw).info = info;
        (*raw).rt = Some(rt);
        verbs_set_ops(vctx, &ops::OMX_CTX_OPS);
    }
    log::debug(format_args!(
        "context open: endpoint {} ifindex {} mac {:02x?} mtu {}",
        info.endpoint, info.ifindex, info.mac, info.netdev_mtu
    ));
    Ok(vctx)
}

const ZERO_INFO: UctxInfo = UctxInfo {
    endpoint: 0,
    ifindex: 0,
    flags: 0,
    mac: [0; 6],
    netdev_mtu: 0,
    max_qp_per_context: 0,
};

/// Tears down a context built by [`open`].
///
/// # Safety
/// `raw` came from `_verbs_init_and_alloc_context` and is not used again.
unsafe fn destroy(raw: *mut OmxContext) {
    // SAFETY: raw is live (contract); the progress thread must be gone
    // before cmd_fd is closed.
    if let Some(rt) = unsafe { (*raw).rt.as_ref() } {
        rt.shutdown();
    }
    // SAFETY: per the contract; the Rust part was initialised in open().
    unsafe {
        ptr::drop_in_place(ptr::addr_of_mut!((*raw).rt));
        verbs_uninit_context(ptr::addr_of_mut!((*raw).vctx));
        ptr::drop_in_place(ptr::addr_of_mut!((*raw).info));
        libc::free(raw.cast());
    }
}

/// `free_context`: ibv_close_device().
///
/// # Safety
/// `ctx` is NULL or the context of a live [`OmxContext`].
pub unsafe extern "C" fn free_context(ctx: *mut ibv_context) {
    // SAFETY: per the contract.
    let Some(c) = (unsafe { from_ibv(ctx) }) else {
        return;
    };
    let raw = ptr::from_ref(c).cast_mut();
    log::debug(format_args!("context close: endpoint {}", c.info.endpoint));
    // SAFETY: libibverbs calls free_context once, after which nothing uses
    // the context.
    unsafe { destroy(raw) };
}

/// `query_device_ex`.
///
/// # Safety
/// Pointers per libibverbs: `attr` is writable for `attr_size` bytes.
pub unsafe extern "C" fn query_device_ex(
    ctx: *mut ibv_context,
    input: *const ibv_query_device_ex_input,
    attr: *mut ibv_device_attr_ex,
    attr_size: usize,
) -> i32 {
    if ctx.is_null() || attr.is_null() {
        return libc::EINVAL;
    }
    if attr_size < size_of::<ibv_device_attr>() {
        return libc::EINVAL;
    }
    guard("query_device_ex", libc::EIO, || {
        let mut resp = ib_uverbs_ex_query_device_resp::default();
        let mut resp_size = size_of::<ib_uverbs_ex_query_device_resp>();
        // SAFETY: ctx is ours; attr is writable for attr_size bytes (it
        // writes no more); resp/resp_size are live locals.
        let ret = unsafe {
            ibv_cmd_query_device_any(ctx, input, attr, attr_size, &mut resp, &mut resp_size)
        };
        if let Err(e) = Errno::check(ret) {
            return e.0;
        }
        let fw = fw_ver_string(resp.base.fw_ver);
        // SAFETY: orig_attr (and so fw_ver) lies within the first
        // size_of::<ibv_device_attr>() <= attr_size bytes.
        let dst = unsafe { &mut (*attr).orig_attr.fw_ver };
        write_c_str(dst, &fw);
        if !omx_verbs::fault::ATOMICS {
            // The module reports what an x86_64 provider does; this build
            // has no fault-safe atomic instruction to run them with.
            // SAFETY: as above.
            unsafe { (*attr).orig_attr.atomic_cap = IBV_ATOMIC_NONE };
        }
        to_ret(Ok(()))
    })
}

/// `ibv_query_rt_values_ex`: IBV_VALUES_MASK_RAW_CLOCK is the device clock
/// completion timestamps are taken with (CLOCK_MONOTONIC, `hca_core_clock`
/// 1 GHz), now, as a normalised timespec: `tv_sec * 10^9 + tv_nsec` is
/// the value `ibv_wc_read_completion_ts` would read for a completion
/// queued at this moment (mlx5 stores its cycles in `tv_nsec`, so that sum
/// means the same on both). Other mask bits are EINVAL.
pub fn rt_values(values: &mut ibv_values_ex, now_ns: u64) -> Result<(), Errno> {
    if values.comp_mask & !IBV_VALUES_MASK_RAW_CLOCK != 0 {
        return Err(Errno::EINVAL);
    }
    let mut filled = 0;
    if values.comp_mask & IBV_VALUES_MASK_RAW_CLOCK != 0 {
        values.raw_clock.tv_sec = (now_ns / 1_000_000_000) as libc::time_t;
        values.raw_clock.tv_nsec = (now_ns % 1_000_000_000) as libc::c_long;
        filled |= IBV_VALUES_MASK_RAW_CLOCK;
    }
    values.comp_mask = filled;
    Ok(())
}

/// `query_rt_values` ([`rt_values`]).
///
/// # Safety
/// `values` is NULL or valid and writable.
pub unsafe extern "C" fn query_rt_values(ctx: *mut ibv_context, values: *mut ibv_values_ex) -> i32 {
    // SAFETY: values NULL or valid and exclusively ours for the call
    // (contract).
    let Some(v) = (unsafe { values.as_mut() }) else {
        return libc::EINVAL;
    };
    if ctx.is_null() {
        return libc::EINVAL;
    }
    to_ret(rt_values(v, crate::clock::precise_ns()))
}

/// The kernel's 64-bit fw_ver as siw prints it, or our version when 0.
pub fn fw_ver_string(raw: u64) -> String {
    if raw == 0 {
        format!("omx {}", env!("CARGO_PKG_VERSION"))
    } else {
        format!(
            "{}.{}.{}",
            (raw >> 32) & 0xffff,
            (raw >> 16) & 0xffff,
            raw & 0xffff
        )
    }
}

/// Copies `s` into a C char array, truncated and NUL-terminated.
pub fn write_c_str(dst: &mut [core::ffi::c_char], s: &str) {
    let Some(max) = dst.len().checked_sub(1) else {
        return;
    };
    let n = s.len().min(max);
    for (d, &b) in dst.iter_mut().zip(&s.as_bytes()[..n]) {
        *d = b as core::ffi::c_char;
    }
    dst[n] = 0;
}

/// `query_port`: the kernel's answer, unchanged (gid_tbl_len in particular
/// must equal the kernel GID table size).
///
/// # Safety
/// `port_attr` is writable as the *caller's* `ibv_port_attr`: libibverbs 44
/// passes a 52-byte struct while our v55 bindings say 56, so this function
/// never forms a Rust reference to it.
pub unsafe extern "C" fn query_port(
    ctx: *mut ibv_context,
    port_num: u8,
    port_attr: *mut ibv_port_attr,
) -> i32 {
    if ctx.is_null() || port_attr.is_null() {
        return libc::EINVAL;
    }
    guard("query_port", libc::EIO, || {
        let mut cmd = ibv_query_port::default();
        // SAFETY: ctx is ours; the library we run against fills exactly its
        // own ibv_port_attr layout.
        unsafe {
            ibv_cmd_query_port(
                ctx,
                port_num,
                port_attr,
                &mut cmd,
                size_of::<ibv_query_port>(),
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(abi: u32, ep: u32) -> omx_alloc_ucontext_resp {
        omx_alloc_ucontext_resp {
            abi_version: abi,
            endpoint: ep,
            ifindex: 3,
            flags: OMX_UCTX_NETDEV_IN_CALLER_NS,
            mac: [2, 0, 0, 0, 0, 1],
            reserved: 0,
            netdev_mtu: 1500,
            max_qp_per_context: OMX_MAX_QP_PER_CONTEXT,
        }
    }

    #[test]
    fn ucontext_resp_is_validated() {
        let i = UctxInfo::from_resp(&resp(OMX_UVERBS_ABI_VERSION, 5)).unwrap();
        assert_eq!(i.endpoint, 5);
        assert_eq!(i.mac, [2, 0, 0, 0, 0, 1]);
        assert!(i.netdev_in_caller_ns());
        // A kernel that sent no driver data leaves zeros: refused.
        assert_eq!(UctxInfo::from_resp(&Default::default()), Err(Errno::EPROTO));
        assert_eq!(UctxInfo::from_resp(&resp(1, 5)), Err(Errno::EPROTO));
        assert_eq!(
            UctxInfo::from_resp(&resp(OMX_UVERBS_ABI_VERSION, 0)),
            Err(Errno::EPROTO)
        );
        assert_eq!(
            UctxInfo::from_resp(&resp(OMX_UVERBS_ABI_VERSION, OMX_ENDPOINT_MAX + 1)),
            Err(Errno::EPROTO)
        );
    }

    #[test]
    fn get_context_resp_layout() {
        // 8 bytes of core response, then the 32-byte omx tail.
        assert_eq!(size_of::<GetContextResp>(), 40);
        assert_eq!(offset_of!(GetContextResp, drv), 8);
    }

    #[test]
    fn fw_ver_formats() {
        assert_eq!(fw_ver_string(0x0001_0002_0003), "1.2.3");
        assert!(fw_ver_string(0).starts_with("omx "));
        let mut buf = [1 as core::ffi::c_char; 4];
        write_c_str(&mut buf, "abcdef");
        assert_eq!(buf, [b'a' as _, b'b' as _, b'c' as _, 0]);
    }

    #[test]
    fn rt_values_raw_clock() {
        let mut v = ibv_values_ex {
            comp_mask: IBV_VALUES_MASK_RAW_CLOCK,
            ..Default::default()
        };
        assert_eq!(rt_values(&mut v, 12_345_678_901), Ok(()));
        assert_eq!(v.comp_mask, IBV_VALUES_MASK_RAW_CLOCK);
        assert_eq!((v.raw_clock.tv_sec, v.raw_clock.tv_nsec), (12, 345_678_901));
        // Nothing asked, nothing filled.
        v.comp_mask = 0;
        assert_eq!(rt_values(&mut v, 1), Ok(()));
        assert_eq!(v.comp_mask, 0);
        v.comp_mask = IBV_VALUES_MASK_RAW_CLOCK << 1;
        assert_eq!(rt_values(&mut v, 1), Err(Errno::EINVAL));
        // Through the op, against the timestamp clock.
        v.comp_mask = IBV_VALUES_MASK_RAW_CLOCK;
        let before = crate::clock::precise_ns();
        let mut c = 0u8;
        let ctx = ptr::addr_of_mut!(c).cast::<ibv_context>();
        // SAFETY: v is a live local; ctx is only checked for NULL.
        assert_eq!(unsafe { query_rt_values(ctx, &mut v) }, 0);
        let ns = v.raw_clock.tv_sec as u64 * 1_000_000_000 + v.raw_clock.tv_nsec as u64;
        assert!(ns >= before && ns <= crate::clock::precise_ns());
        // SAFETY: NULL is refused before any dereference.
        assert_eq!(
            unsafe { query_rt_values(ctx, ptr::null_mut()) },
            libc::EINVAL
        );
    }
}
