//! Registration, matching and the per-device object.
//!
//! Ownership: libibverbs owns the `verbs_sysfs_dev` and the device list.
//! `alloc_device` hands it a Box-allocated [`OmxDevice`] (refcount set by
//! libibverbs); when the last reference goes (`ibverbs_device_put`), it calls
//! `uninit_device`, which frees the Box. Every open context holds a device
//! reference (taken by `verbs_init_context`, dropped by
//! `verbs_uninit_context`), so a device outlives its contexts. No locks:
//! the device is immutable after `alloc_device`.

use core::ffi::c_char;
use core::ptr;

use omx_rdma_sys::*;

use crate::sysfs::{self, AbiAttr, Decision};
use crate::{context, guard::guard, log};

/// Provider name: libomx-rdmav34.so, /etc/libibverbs.d/omx.driver.
pub const PROVIDER_NAME: &core::ffi::CStr = c"omx";

/// Our `verbs_device`: libibverbs sees only the first member.
#[repr(C)]
pub struct OmxDevice {
    pub vdev: verbs_device,
    /// uverbs ABI of the kernel device (`verbs_sysfs_dev.abi_ver`).
    pub abi_ver: u32,
}

/// `verbs_device_ops` holds raw pointers (name, match table), which are not
/// `Sync`; they only point at immutable statics.
#[repr(transparent)]
pub struct DeviceOps(pub verbs_device_ops);
// SAFETY: every pointer in the table points at an immutable 'static
// (PROVIDER_NAME, MATCH_TABLE) and libibverbs only reads it.
unsafe impl Sync for DeviceOps {}

#[repr(transparent)]
pub struct MatchTable(pub [verbs_match_ent; 2]);
// SAFETY: as for DeviceOps: pointers to immutable 'static strings only.
unsafe impl Sync for MatchTable {}

/// `VERBS_NAME_MATCH("omx", NULL)`, then the sentinel. Only a hint: see
/// [`crate::sysfs`] for why `match_device` decides.
pub static MATCH_TABLE: MatchTable = MatchTable([
    verbs_match_ent {
        driver_data: ptr::null_mut(),
        u: verbs_match_ent__bindgen_ty_1 {
            modalias: c"rdma_device:*Nomx*".as_ptr(),
        },
        vendor: 0,
        device: 0,
        kind: VERBS_MATCH_MODALIAS as u8,
    },
    verbs_match_ent {
        driver_data: ptr::null_mut(),
        u: verbs_match_ent__bindgen_ty_1 { driver_id: 0 },
        vendor: 0,
        device: 0,
        kind: VERBS_MATCH_SENTINEL as u8,
    },
]);

/// The provider, under the symbol `PROVIDER_DRIVER(omx, ...)` would export.
#[no_mangle]
pub static verbs_provider_omx: DeviceOps = DeviceOps(verbs_device_ops {
    name: PROVIDER_NAME.as_ptr(),
    match_min_abi_version: OMX_UVERBS_ABI_VERSION,
    match_max_abi_version: OMX_UVERBS_ABI_VERSION,
    match_table: &MATCH_TABLE.0 as *const verbs_match_ent,
    static_providers: ptr::null_mut(),
    match_device: Some(match_device),
    alloc_context: Some(context::alloc_context),
    import_context: None,
    alloc_device: Some(alloc_device),
    uninit_device: Some(uninit_device),
});

/// ELF constructor, what `PROVIDER_DRIVER` emits in C: runs when
/// libibverbs dlopens us (RTLD_NOW) and registers the provider.
#[used]
#[link_section = ".init_array"]
static REGISTER_OMX: extern "C" fn() = register_omx;

extern "C" fn register_omx() {
    // SAFETY: verbs_provider_omx is a 'static, fully initialised table;
    // libibverbs keeps the pointer for the life of the process.
    unsafe { verbs_register_driver_34(&verbs_provider_omx.0) };
    log::debug(format_args!(
        "provider registered (rdma-core {} headers, private ABI {IBVERBS_PABI_VERSION})",
        RDMA_CORE_VERSION
    ));
}

fn c_str_field(buf: &[c_char]) -> String {
    let bytes: Vec<u8> = buf
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Reads `<ibdev_path>/omx_abi_version` through libibverbs (so `SYSFS_PATH`
/// and its path handling apply).
fn read_abi_attr(dev: *mut verbs_sysfs_dev) -> AbiAttr {
    let mut buf = [0u8; 32];
    // SAFETY: `dev` is the live sysfs device libibverbs passed to
    // match_device; buf is writable for its length; the format string is a
    // NUL-terminated literal without conversions.
    let n = unsafe {
        ibv_read_ibdev_sysfs_file(
            buf.as_mut_ptr().cast(),
            buf.len(),
            dev,
            OMX_SYSFS_ABI_ATTR.as_ptr().cast(),
        )
    };
    match usize::try_from(n) {
        Ok(n) if n > 0 && n <= buf.len() => AbiAttr::Read(buf[..n].to_vec()),
        _ => AbiAttr::Unreadable,
    }
}

/// `verbs_device_ops.match_device`: called for every candidate device.
///
/// # Safety
/// `sysfs_dev` is NULL or a valid `verbs_sysfs_dev` (libibverbs' contract).
pub unsafe extern "C" fn match_device(sysfs_dev: *mut verbs_sysfs_dev) -> bool {
    if sysfs_dev.is_null() {
        return false;
    }
    guard("match_device", false, || {
        let attr = read_abi_attr(sysfs_dev);
        // SAFETY: non-null and valid per the caller; we only read fields.
        let d = unsafe { &*sysfs_dev };
        let ibdev_path = c_str_field(&d.ibdev_path);
        let dir_exists = std::path::Path::new(&ibdev_path).is_dir();
        let decision = sysfs::decide(&attr, dir_exists, !d.match_.is_null());
        let name = c_str_field(&d.ibdev_name);
        match decision {
            Decision::Claim => {
                log::debug(format_args!("claiming {name} ({ibdev_path})"));
                true
            }
            Decision::WrongAbi(v) => {
                log::error(format_args!(
                    "{name}: kernel omx ABI {v}, this provider speaks {OMX_UVERBS_ABI_VERSION}"
                ));
                false
            }
            Decision::NotOurs => false,
        }
    })
}

/// `verbs_device_ops.alloc_device`.
///
/// # Safety
/// `sysfs_dev` is NULL or valid.
pub unsafe extern "C" fn alloc_device(sysfs_dev: *mut verbs_sysfs_dev) -> *mut verbs_device {
    if sysfs_dev.is_null() {
        return ptr::null_mut();
    }
    guard("alloc_device", ptr::null_mut(), || {
        // SAFETY: checked non-null, valid per the caller.
        let abi_ver = unsafe { (*sysfs_dev).abi_ver };
        let dev = Box::new(OmxDevice {
            // libibverbs requires a zeroed verbs_device (it asserts that
            // device._ops is NULL) and fills it in try_driver().
            vdev: verbs_device::default(),
            abi_ver,
        });
        // vdev is the first field of a repr(C) struct: same address.
        Box::into_raw(dev).cast::<verbs_device>()
    })
}

/// `verbs_device_ops.uninit_device`: last reference gone.
///
/// # Safety
/// `vdev` was returned by [`alloc_device`] and is not used afterwards.
pub unsafe extern "C" fn uninit_device(vdev: *mut verbs_device) {
    if vdev.is_null() {
        return;
    }
    // SAFETY: alloc_device created it with Box::into_raw of an OmxDevice
    // whose first field is the verbs_device; libibverbs calls this once.
    drop(unsafe { Box::from_raw(vdev.cast::<OmxDevice>()) });
}

/// The device an `ibv_device` belongs to, if it is one of ours.
///
/// # Safety
/// `dev` is NULL or an `ibv_device` created by [`alloc_device`].
pub unsafe fn omx_device<'a>(dev: *mut ibv_device) -> Option<&'a OmxDevice> {
    // SAFETY: ibv_device is the first member of verbs_device, which is the
    // first member of OmxDevice (repr(C)), so the addresses coincide.
    unsafe { dev.cast::<OmxDevice>().as_ref() }
}

// verbs_device must sit at offset 0 for the casts above.
const _: () = assert!(core::mem::offset_of!(OmxDevice, vdev) == 0);
