//! Address handles, in user space only (no kernel object: the kernel
//! module does no addressing, and libibverbs asks nothing of an AH but
//! the `ibv_ah` it returns, whose `context` and `pd` it fills itself).
//!
//! `create_ah` resolves everything a UD send needs once, on the control
//! path: the destination MAC (a link-local EUI-64 GID directly, a
//! multicast GID by the IPv6/IPv4 multicast mapping, an IP GID through
//! the neighbour table as `modify_qp` does), our GID that `sgid_index`
//! names (it travels in the DETH, docs/wire.md §13.2), the traffic class
//! and hop limit. `post_send` then only copies the [`UdDest`].
//!
//! Ownership: [`create_ah`] Box-allocates an [`OmxAh`], the application
//! owns it until [`destroy_ah`] frees it. A send WR that names an AH reads
//! it during `ibv_post_send` only (the frame is built from a copy), so an
//! AH destroyed after the post returned is never touched again, as the
//! verbs contract allows. Each context counts its AHs against `max_ah`
//! (an atomic in its [`Runtime`]). No locks.

use core::ptr;
use std::sync::atomic::Ordering::SeqCst;

use omx_engine::UdDest;
use omx_rdma_sys::*;
use omx_verbs::{mac_from_gid, AddrError};

use crate::errno::{to_ptr, to_ret, Errno};
use crate::guard::guard;
use crate::log;
use crate::runtime::Runtime;

#[repr(C)]
pub struct OmxAh {
    pub ibv_ah: ibv_ah,
    /// Where a WR naming this AH goes (`remote_qpn`/`remote_qkey` come
    /// from the WR).
    pub dest: UdDest,
    pub rt: Option<std::sync::Arc<Runtime>>,
}

const _: () = assert!(core::mem::offset_of!(OmxAh, ibv_ah) == 0);

/// # Safety
/// `ah` is NULL or an AH returned by [`create_ah`] and not destroyed.
pub unsafe fn from_ibv<'a>(ah: *mut ibv_ah) -> Option<&'a OmxAh> {
    // SAFETY: ibv_ah is at offset 0 of OmxAh.
    unsafe { ah.cast::<OmxAh>().as_ref() }
}

/// The Ethernet multicast MAC of a multicast GID: `33:33` and the last
/// four bytes for IPv6 (RFC 2464), `01:00:5e` and the low 23 bits of the
/// group for an IPv4-mapped one (RFC 1112), as RoCE maps them. `None`
/// when the GID is not multicast.
pub fn multicast_mac(gid: &[u8; 16]) -> Option<[u8; 6]> {
    let v4 = gid[..10].iter().all(|b| *b == 0) && gid[10..12] == [0xff, 0xff];
    if v4 && (224..240).contains(&gid[12]) {
        return Some([0x01, 0x00, 0x5e, gid[13] & 0x7f, gid[14], gid[15]]);
    }
    (gid[0] == 0xff).then(|| [0x33, 0x33, gid[12], gid[13], gid[14], gid[15]])
}

/// The destination of an AH from its attributes: `sgid` is our GID at
/// `grh.sgid_index`, `neighbour` resolves an IP GID to a MAC. RoCE needs
/// a GRH: an attribute without one is refused (EINVAL), as rxe does.
pub fn ah_dest(
    a: &ibv_ah_attr,
    sgid: [u8; 16],
    neighbour: impl FnOnce(&ibv_ah_attr) -> Result<[u8; 6], Errno>,
) -> Result<UdDest, Errno> {
    if a.is_global == 0 {
        log::notice(format_args!(
            "create_ah: the attributes have no GRH (is_global = 0); on an Ethernet port \
             the destination is a GID (e.g. ibv_ud_pingpong -g 0)"
        ));
        return Err(Errno::EINVAL);
    }
    // SAFETY: ibv_gid is a plain 16-byte union.
    let gid = unsafe { a.grh.dgid.raw };
    let dmac = match multicast_mac(&gid) {
        Some(m) => m,
        None => match mac_from_gid(&gid) {
            Ok(m) => m,
            Err(AddrError::NeedsNeighbour) => neighbour(a)?,
            Err(AddrError::Unsupported) => {
                log::notice(format_args!(
                    "create_ah: the destination GID is unspecified"
                ));
                return Err(Errno::EINVAL);
            }
        },
    };
    Ok(UdDest {
        dmac,
        remote_qpn: 0,
        remote_qkey: 0,
        sgid,
        traffic_class: a.grh.traffic_class,
        hop_limit: a.grh.hop_limit,
    })
}

/// Our GID at `index` of port 1 (EINVAL if the entry is empty or out of
/// the table).
///
/// # Safety
/// `ctx` is a live context of ours.
pub unsafe fn port_gid(ctx: *mut ibv_context, index: i32) -> Result<[u8; 16], Errno> {
    let mut gid = ibv_gid::default();
    // SAFETY: ctx live (contract); gid a local.
    let r = unsafe { ibv_query_gid(ctx, 1, index, &mut gid) };
    // SAFETY: plain bytes.
    let raw = unsafe { gid.raw };
    if r != 0 || raw == [0; 16] {
        return Err(Errno::EINVAL);
    }
    Ok(raw)
}

fn create(pd: *mut ibv_pd, attr: &ibv_ah_attr) -> Result<*mut ibv_ah, Errno> {
    // SAFETY: pd is ours and live (caller).
    let ctx = unsafe { (*pd).context };
    // SAFETY: as above.
    let rt = unsafe { crate::context::from_ibv(ctx) }.and_then(|c| c.rt.clone());
    let Some(rt) = rt else {
        return Err(Errno::EOPNOTSUPP);
    };
    if attr.port_num != 1 {
        return Err(Errno::EINVAL);
    }
    // SAFETY: ctx is live.
    let sgid = unsafe { port_gid(ctx, i32::from(attr.grh.sgid_index)) }.inspect_err(|_| {
        log::notice(format_args!(
            "create_ah: sgid_index {} names no GID of the port (ibv_devinfo -v lists them)",
            attr.grh.sgid_index
        ))
    })?;
    let dest = ah_dest(attr, sgid, |a| crate::qp::resolve_neighbour(ctx, a))?;
    if rt.ahs.fetch_add(1, SeqCst) >= OMX_MAX_AH {
        rt.ahs.fetch_sub(1, SeqCst);
        log::notice(format_args!(
            "create_ah: this context has {OMX_MAX_AH} address handles (max_ah)"
        ));
        return Err(Errno::ENOMEM);
    }
    let ah = Box::new(OmxAh {
        ibv_ah: ibv_ah::default(),
        dest,
        rt: Some(rt),
    });
    Ok(Box::into_raw(ah).cast())
}

/// `ibv_create_ah`.
///
/// # Safety
/// `pd` NULL or ours; `attr` NULL or valid.
pub unsafe extern "C" fn create_ah(pd: *mut ibv_pd, attr: *mut ibv_ah_attr) -> *mut ibv_ah {
    if pd.is_null() || attr.is_null() {
        Errno::EINVAL.set();
        return ptr::null_mut();
    }
    // SAFETY: attr valid (contract), read only.
    let a = unsafe { &*attr };
    guard("create_ah", ptr::null_mut(), || to_ptr(create(pd, a)))
}

/// `ibv_destroy_ah`.
///
/// # Safety
/// `ah` NULL or ours, not destroyed yet.
pub unsafe extern "C" fn destroy_ah(ah: *mut ibv_ah) -> i32 {
    if ah.is_null() {
        return libc::EINVAL;
    }
    guard("destroy_ah", libc::EIO, || {
        // SAFETY: from Box::into_raw in create(); the application gives
        // it back once.
        let b = unsafe { Box::from_raw(ah.cast::<OmxAh>()) };
        if let Some(rt) = &b.rt {
            rt.ahs.fetch_sub(1, SeqCst);
        }
        to_ret(Ok(()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(gid: [u8; 16]) -> ibv_ah_attr {
        let mut a = ibv_ah_attr {
            is_global: 1,
            port_num: 1,
            ..Default::default()
        };
        a.grh.dgid.raw = gid;
        a.grh.traffic_class = 0x28;
        a.grh.hop_limit = 7;
        a
    }

    #[test]
    fn multicast_gids_map_to_multicast_macs() {
        let mut g6 = [0u8; 16];
        g6[0] = 0xff;
        g6[1] = 0x12;
        g6[12..].copy_from_slice(&[0x80, 1, 2, 3]);
        assert_eq!(multicast_mac(&g6), Some([0x33, 0x33, 0x80, 1, 2, 3]));
        let mut g4 = [0u8; 16];
        g4[10] = 0xff;
        g4[11] = 0xff;
        g4[12..].copy_from_slice(&[239, 0x85, 2, 3]);
        assert_eq!(multicast_mac(&g4), Some([1, 0, 0x5e, 5, 2, 3]));
        g4[12] = 10;
        assert_eq!(multicast_mac(&g4), None);
    }

    #[test]
    fn destinations_resolve_once() {
        let mut ll = [0u8; 16];
        ll[0] = 0xfe;
        ll[1] = 0x80;
        ll[8..].copy_from_slice(&[0x00, 0x11, 0x22, 0xff, 0xfe, 0x33, 0x44, 0x55]);
        let no = |_: &ibv_ah_attr| Err(Errno(libc::EHOSTUNREACH));
        let d = ah_dest(&attr(ll), [9; 16], no).unwrap();
        assert_eq!(d.dmac, [2, 0x11, 0x22, 0x33, 0x44, 0x55]);
        assert_eq!((d.sgid, d.traffic_class, d.hop_limit), ([9; 16], 0x28, 7));
        // No GRH: refused.
        let mut a = attr(ll);
        a.is_global = 0;
        assert_eq!(ah_dest(&a, [9; 16], no), Err(Errno::EINVAL));
        // An IP GID asks the neighbour table, whose errors come back.
        let mut v4 = [0u8; 16];
        v4[10] = 0xff;
        v4[11] = 0xff;
        v4[12..].copy_from_slice(&[10, 0, 0, 2]);
        assert_eq!(
            ah_dest(&attr(v4), [9; 16], no),
            Err(Errno(libc::EHOSTUNREACH))
        );
        let d = ah_dest(&attr(v4), [9; 16], |_| Ok([2, 7, 7, 7, 7, 7])).unwrap();
        assert_eq!(d.dmac, [2, 7, 7, 7, 7, 7]);
        assert_eq!(ah_dest(&attr([0; 16]), [9; 16], no), Err(Errno::EINVAL));
    }
}
