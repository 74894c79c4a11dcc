//! `ibv_attach_mcast` / `ibv_detach_mcast` (docs/wire.md §13.5,
//! docs/kmod.md §5a).
//!
//! The kernel module owns the groups: it checks and bounds the attach
//! (UD QP, multicast GID, the device's limits, the caller's network
//! namespace), joins the group's Ethernet MAC on the netdev, and uverbs
//! remembers the attachment so that it is undone when the process dies.
//! The provider then records the attachment in its endpoint (group MAC →
//! QP and GID: what the receive path matches frames on) and, for the
//! context's first attachment, lets multicast frames through its packet
//! socket's steering filter; after the last detach the filter is the
//! unicast one again. The MAC comes from [`crate::ah::multicast_mac`],
//! the mapping address handles use, so a sender's AH and a receiver's
//! group always agree.
//!
//! Ownership and locks: none of its own; the endpoint's multicast table
//! is written only here and by `destroy_qp` (control path).

use omx_rdma_sys::*;

use crate::ah::multicast_mac;
use crate::errno::{to_ret, Errno};
use crate::guard::guard;
use crate::qp::OmxQp;

/// # Safety
/// `qp` NULL or ours; `gid` NULL or a valid `ibv_gid`.
pub unsafe extern "C" fn attach_mcast(qp: *mut ibv_qp, gid: *const ibv_gid, lid: u16) -> i32 {
    if qp.is_null() || gid.is_null() {
        return libc::EINVAL;
    }
    guard("attach_mcast", libc::EIO, || {
        // SAFETY: the caller passes a valid GID.
        let raw = unsafe { (*gid).raw };
        // SAFETY: qp is ours and alive; gid is valid.
        let r = Errno::check(unsafe { ibv_cmd_attach_mcast(qp, gid, lid) });
        if r.is_ok() {
            // SAFETY: qp is ours and alive.
            let o = unsafe { &*qp.cast::<OmxQp>() };
            // The kernel accepted only a multicast GID.
            if let (Some(rt), Some(v), Some(mac)) = (&o.rt, &o.qp, multicast_mac(&raw)) {
                if rt.ep.attach_mcast(v, raw, mac) {
                    rt.update_mcast_steering();
                }
            }
        }
        to_ret(r)
    })
}

/// # Safety
/// `qp` NULL or ours; `gid` NULL or a valid `ibv_gid`.
pub unsafe extern "C" fn detach_mcast(qp: *mut ibv_qp, gid: *const ibv_gid, lid: u16) -> i32 {
    if qp.is_null() || gid.is_null() {
        return libc::EINVAL;
    }
    guard("detach_mcast", libc::EIO, || {
        // SAFETY: the caller passes a valid GID.
        let raw = unsafe { (*gid).raw };
        // SAFETY: qp is ours and alive; gid is valid.
        let r = Errno::check(unsafe { ibv_cmd_detach_mcast(qp, gid, lid) });
        if r.is_ok() {
            // SAFETY: qp is ours and alive.
            let o = unsafe { &*qp.cast::<OmxQp>() };
            if let (Some(rt), Some(v)) = (&o.rt, &o.qp) {
                if rt.ep.detach_mcast(v, raw) {
                    rt.update_mcast_steering();
                }
            }
        }
        to_ret(r)
    })
}
