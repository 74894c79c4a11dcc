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
//! The data path: each QP owns an omx-verbs-objects `Qp` (the RC engine
//! and its buffers, `Arc`-shared with the context's demux table from
//! creation until destroy) and an `Arc` of the context runtime.
//! `post_send`/`post_recv` take the engine lock once per call, post every
//! WR, then let the engine transmit (non-blocking sends) and move
//! completions to the CQs before unlocking; they never sleep on anything
//! held across blocking I/O and never allocate.
//!
//! Locks: `paths` (a Mutex) guards the address vectors; it is never held
//! across an `ibv_cmd_*` call or a return to C, nor together with the
//! engine lock. The engine lock order is in omx-verbs-objects
//! (demux → QP → MR table → CQ ring).

use core::mem::size_of;
use core::ptr;
use std::sync::{Arc, Mutex};

use omx_engine::{
    PathInfo, PathMtu, PostError, QpAttr, QpState, QpType, RecvWr, SendOp, SendWr, SgList, Sge,
    UdDest, MAX_SGE,
};
use omx_rdma_sys::*;
use omx_verbs::qp::QpInner;
use omx_verbs::{mac_from_gid, AddrError, Drive, Qp, QpCaps, MAX_INLINE_DATA};
use omx_wire::{Psn, Qpn};

use crate::errno::{to_ptr, to_ret, Errno};
use crate::guard::guard;
use crate::log;
use crate::runtime::Runtime;

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
    /// Serialises `modify_qp` on this QP (never held by the data path).
    pub modify: Mutex<()>,
    pub qp: Option<Arc<Qp>>,
    pub rt: Option<Arc<Runtime>>,
    /// Extended QPs (`ibv_create_qp_ex` with send_ops_flags): the
    /// `ibv_wr_*` staging area. Set before the QP is returned, then
    /// read-only.
    pub ex: Option<Box<crate::qp_ex::QpEx>>,
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

/// Creates a QP (plain, or the base of an extended one).
pub(crate) fn create(pd: *mut ibv_pd, attr: *mut ibv_qp_init_attr) -> Result<*mut ibv_qp, Errno> {
    // SAFETY: attr is non-null (checked by the caller) and points at the
    // application's init attributes.
    let qp_type = unsafe { (*attr).qp_type };
    if !supported_type(qp_type) {
        return Err(Errno::EOPNOTSUPP);
    }
    // SAFETY: as above; reading pointer fields. A non-NULL srq must be
    // one of this context's (libibverbs hands us only its own objects,
    // but an application may mix contexts).
    let srq = match unsafe { (*attr).srq } {
        s if s.is_null() => None,
        // SAFETY: s is a live SRQ (the application's contract); reading
        // its context field, then ours only if it is of our context.
        s if unsafe { (*s).context } == unsafe { (*pd).context } => {
            // SAFETY: an SRQ of one of our contexts is an OmxSrq.
            match unsafe { crate::srq::from_ibv(s) }.and_then(|o| o.srq.clone()) {
                Some(r) => Some(r),
                None => return Err(Errno::EINVAL),
            }
        }
        _ => return Err(Errno::EINVAL),
    };
    // SAFETY: as above.
    let cap = unsafe { (*attr).cap };
    if cap.max_inline_data > MAX_INLINE_DATA
        || cap.max_send_sge as usize > MAX_SGE
        || cap.max_recv_sge as usize > MAX_SGE
    {
        return Err(Errno::EINVAL);
    }
    // SAFETY: pd is ours and live (caller).
    let rt = unsafe { crate::context::from_ibv((*pd).context) }.and_then(|c| c.rt.clone());
    let qp = Box::into_raw(Box::new(OmxQp {
        vqp: verbs_qp::default(),
        paths: Mutex::new(QpPaths::default()),
        modify: Mutex::new(()),
        qp: None,
        rt,
        ex: None,
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
        return Err(e.note_quota("ibv_create_qp", "max_qps_per_user"));
    }
    // SAFETY: ibv_cmd_create_qp filled the ibv_qp (the ioctl path leaves
    // the legacy `resp` untouched).
    let qpn = unsafe { (*qp).vqp.__bindgen_anon_1.qp.qp_num };
    // SAFETY: attr valid; ibv_cmd_create_qp wrote the granted caps; the
    // CQs are ours (the kernel accepted them); qp not yet published.
    unsafe {
        (*attr).cap.max_inline_data = MAX_INLINE_DATA;
        let o = &mut *qp;
        let scq = crate::cq::from_ibv((*attr).send_cq).and_then(|c| c.cq.clone());
        let rcq = crate::cq::from_ibv((*attr).recv_cq).and_then(|c| c.cq.clone());
        // RC and UC run on the connected engine (UC in its unreliable
        // mode, docs/wire.md §14), UD on the datagram one (§13).
        if let (Some(rt), Some(scq), Some(rcq)) = (&o.rt, scq, rcq) {
            let caps = QpCaps {
                sq_depth: (*attr).cap.max_send_wr,
                rq_depth: (*attr).cap.max_recv_wr,
                window: omx_verbs::Window::default(),
                uc: qp_type == IBV_QPT_UC,
            };
            let pdh = (*pd).handle;
            let sig = (*attr).sq_sig_all != 0;
            let q = if qp_type == IBV_QPT_UD {
                let port = ud_port((*pd).context, rt);
                Qp::new_ud(Qpn::new(qpn), pdh, caps, port, scq, rcq, sig)
            } else {
                let caps = QpCaps {
                    window: rt.ep.reserve_window(),
                    ..caps
                };
                Qp::new(Qpn::new(qpn), pdh, caps, scq, rcq, sig)
            }
            .with_handle(o.vqp.__bindgen_anon_1.qp.handle);
            let v = Arc::new(match srq {
                Some(r) => q.with_srq(r),
                None => q,
            });
            rt.ep.insert_qp(v.clone());
            o.qp = Some(v);
            // Peers on this device learn our endpoint from this QP's
            // number: have our inbox ready before they can.
            rt.open_inbox();
        }
    }
    log::debug(format_args!(
        "qp {qpn:#x} created: endpoint {} slot {}",
        (qpn & 0xff_ffff) >> OMX_QPN_SLOT_BITS,
        qpn & OMX_QPN_SLOT_MASK
    ));
    Ok(qp.cast())
}

/// What a new UD QP takes from port 1: the netdev's MAC, GID index 0 and
/// the first IPv4-mapped GID (the destination GIDs of the GRHs it writes,
/// docs/wire.md §13.4), and the port's active MTU (the largest datagram).
/// Read once, at creation (control path); the GID table entries are
/// RoCE v1 (the module registers `RDMA_CORE_CAP_PROT_ROCE`).
///
/// # Safety
/// `ctx` is a live context of ours.
unsafe fn ud_port(ctx: *mut ibv_context, rt: &Runtime) -> omx_verbs::UdPort {
    let mac = rt.netdev.mac;
    // SAFETY: ctx live (contract).
    let gid = unsafe { crate::ah::port_gid(ctx, 0) }.unwrap_or_else(|_| {
        let mut g = [0u8; 16];
        g[0] = 0xfe;
        g[1] = 0x80;
        g[8..].copy_from_slice(&[
            mac[0] ^ 2,
            mac[1],
            mac[2],
            0xff,
            0xfe,
            mac[3],
            mac[4],
            mac[5],
        ]);
        g
    });
    let mut pa = ibv_port_attr::default();
    let mut cmd = ibv_query_port::default();
    // SAFETY: ctx live; pa is at least as large as the running library's
    // ibv_port_attr (see context::query_port), cmd correctly sized.
    let r = unsafe { ibv_cmd_query_port(ctx, 1, &mut pa, &mut cmd, size_of::<ibv_query_port>()) };
    if r != 0 {
        pa = ibv_port_attr::default();
    }
    let mtu = PathMtu::from_ibv(pa.active_mtu as u8).unwrap_or(PathMtu::Mtu1024);
    let gid_v4 = (1..pa.gid_tbl_len)
        // SAFETY: ctx live (contract).
        .filter_map(|i| unsafe { crate::ah::port_gid(ctx, i) }.ok())
        .find(omx_engine::gid_is_ipv4);
    omx_verbs::UdPort {
        mac,
        gid,
        gid_v4,
        mtu,
    }
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
        let o = unsafe { &*qp.cast::<OmxQp>() };
        // Out of the demux first (no more frames reach it), then flush
        // what is in flight to the CQs.
        if let (Some(rt), Some(v)) = (&o.rt, &o.qp) {
            rt.ep.remove_qp(v.qpn);
            let mut g = v.lock();
            // A QP in RESET has nothing to flush (and RESET->ERR is not a
            // transition): the refusal is expected.
            let _ = g.modify(&QpAttr {
                state: Some(QpState::Err),
                ..Default::default()
            });
            let d = rt.ep.drive(v, &mut g, rt.now(), &rt.sink());
            drop(g);
            rt.after_drive(d);
        }
        // SAFETY: qp is ours and alive.
        let ret = unsafe { ibv_cmd_destroy_qp(qp) };
        if let Err(e) = Errno::check(ret) {
            if let (Some(rt), Some(v)) = (&o.rt, &o.qp) {
                rt.ep.insert_qp(v.clone());
            }
            return e.0;
        }
        if let (Some(rt), Some(v)) = (&o.rt, &o.qp) {
            // The kernel destroys no attached QP (EBUSY), so this finds
            // nothing unless the two disagreed.
            if rt.ep.forget_mcast(v) {
                rt.update_mcast_steering();
            }
            let g = v.lock();
            let stats = g.eng.stats();
            log::stats("qp", &format!("{:#x}", v.qpn.value()), stats.fields());
            if let Some(r) = g.eng.gone_report() {
                log::gone(v.qpn.value(), &r);
            }
            rt.ep.retire_stats(stats);
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
        // SAFETY: attr valid (checked non-null; caller's contract).
        let a = unsafe { &*attr };
        // SAFETY: qp is live (contract), so its context is.
        let ctx = unsafe { (*qp).context };
        let eattr = match oqp
            .rt
            .as_ref()
            .filter(|_| oqp.qp.is_some())
            .map(|rt| engine_attr(a, mask, rt.netdev.mac, |ah| resolve_neighbour(ctx, ah)))
        {
            Some(Ok(e)) => Some(e),
            Some(Err(e)) => return e.0,
            None => None,
        };
        // One modify at a time per QP, from the check to the engine's
        // change (control path; the data path never takes this lock).
        let _serial = oqp.modify.lock().unwrap_or_else(|p| p.into_inner());
        // 1. The whole transition (state, mask, every value) is checked
        // before anything changes, in the kernel or in the engine: the
        // engine's table is the kernel's (ib_modify_qp_is_ok), so a
        // transition the engine refuses never reaches the kernel's shadow.
        if let (Some(v), Some(e)) = (&oqp.qp, &eattr) {
            if let Err(err) = v.lock().eng.check_modify(e) {
                log::error(format_args!(
                    "modify_qp: qp {:#x}: {err:?}: refused, nothing changed",
                    v.qpn.value()
                ));
                return libc::EINVAL;
            }
        }
        if let (Some(rt), Some(m)) = (&oqp.rt, eattr.and_then(|e| e.path_mtu)) {
            // Frames are never fragmented: a path MTU the netdev cannot
            // carry would lose every full-size packet and end in
            // IBV_WC_RETRY_EXC_ERR. The MTU now, if the netdev is in our
            // namespace, else the one GET_CONTEXT reported.
            let mtu = rt
                .netdev
                .in_caller_ns
                .then(|| omx_pktio::netdev_mtu(rt.netdev.ifindex))
                .flatten()
                .unwrap_or(rt.netdev.mtu);
            if !path_mtu_fits(m, mtu) {
                log::notice(format_args!(
                    "modify_qp: path_mtu {} needs a netdev MTU of at least {} (omx headers \
                     and CRC take {} bytes per frame), the netdev has {mtu}: use at most the \
                     port's active_mtu (ibv_devinfo -v) or raise the netdev's MTU",
                    m.bytes(),
                    l2_len(m),
                    l2_len(m) - m.bytes() as usize
                ));
                return libc::EINVAL;
            }
        }
        // 2. What the new state needs (packet socket, loopback tap, the
        // peer's inbox): opened once per context, harmless to keep if the
        // kernel refuses below.
        if let (Some(rt), Some(QpState::Rtr)) = (&oqp.rt, eattr.and_then(|e| e.state)) {
            // The data path needs the packet socket from now on.
            if let Err(e) = rt.io() {
                return e.0;
            }
            // A UD QP hears from anyone, other contexts on this device
            // included, whose frames to our MAC only the tap sees.
            if oqp
                .qp
                .as_ref()
                .is_some_and(|v| v.lock().eng.qp_type() == QpType::Ud)
            {
                if let Err(e) = rt.enable_loopback() {
                    return e.0;
                }
            }
        }
        if let (Some(rt), Some(p)) = (&oqp.rt, eattr.and_then(|e| e.path)) {
            // A peer on this very device (another process, or one of our
            // own QPs) sends its frames to our MAC address: watch for them.
            if p.dmac == rt.netdev.mac {
                if let Err(e) = rt.io().and_then(|_| rt.enable_loopback()) {
                    return e.0;
                }
                // And through shared memory where it can.
                if let Some(q) = eattr.and_then(|e| e.dest_qpn) {
                    rt.connect_local(Qpn::new(q).endpoint());
                }
            }
        }
        // 3. The kernel's shadow, which checks the same table and every
        // value again: if it refuses, the engine has not changed yet.
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
        oqp.apply_paths(a, mask);
        // 4. The engine, which cannot refuse what step 1 accepted unless
        // it moved to ERROR on its own since: then the kernel's shadow
        // follows it there (OMX_METHOD_QP_EVENT) and the caller is told.
        if let (Some(rt), Some(v), Some(e)) = (&oqp.rt, &oqp.qp, eattr) {
            let mut g = v.lock();
            let r = g.modify(&e);
            let d = rt.ep.drive(v, &mut g, rt.now(), &rt.sink());
            drop(g);
            rt.after_drive(d);
            if let Err(err) = r {
                log::error(format_args!(
                    "modify_qp: qp {:#x} moved on its own meanwhile: {err:?}",
                    v.qpn.value()
                ));
                return libc::EINVAL;
            }
        }
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
        let a = unsafe { &mut *attr };
        oqp.report_paths(a, attr_mask as u32);
        a.cap.max_inline_data = MAX_INLINE_DATA;
        // SAFETY: init_attr valid, exclusively ours for the call.
        unsafe { (*init_attr).cap.max_inline_data = MAX_INLINE_DATA };
        if let Some(v) = &oqp.qp {
            // The engine may have moved to ERROR on its own.
            a.qp_state = v.lock().eng.state() as u32;
        }
        to_ret(Ok(()))
    })
}

/// What `ibv_query_qp_data_in_order(qp, op, flags)` answers for a QP of
/// type `qp_type`: whether the data an `op` writes at this QP's side
/// (remote SENDs and RDMA WRITEs into it, the responses of its own RDMA
/// READs) lands in order, so that a reader may poll the last byte instead
/// of the completion.
///
/// True for every operation the QP type carries: the engine places the
/// packets of a message in PSN order (out-of-sequence packets are not
/// placed), and each copy into a non-ODP MR is one forward pass of plain
/// stores (`omx_verbs::fault`), which x86's store ordering makes visible
/// in program order. So the whole message is in order, which implies each
/// aligned 128-byte block is. Not covered (docs/provider.md): ODP MRs,
/// whose copies go through `process_vm_writev` (the kernel's `rep movsb`,
/// whose stores x86 may reorder), as the man page leaves out
/// relaxed-ordering MRs. Atomics and other opcodes answer 0 (the call is
/// not defined for them).
///
/// The return value is the final one: libibverbs 44 returns the op's value
/// unchanged (later versions fold the caps themselves, identically): with
/// IBV_QUERY_QP_DATA_IN_ORDER_RETURN_CAPS the capability bits, with 0 just
/// 1 or 0 for WHOLE_MSG.
pub fn data_in_order(qp_type: u32, op: u32, flags: u32) -> i32 {
    let send = matches!(op, IBV_WR_SEND | IBV_WR_SEND_WITH_IMM);
    let write = matches!(op, IBV_WR_RDMA_WRITE | IBV_WR_RDMA_WRITE_WITH_IMM);
    let in_order = match qp_type {
        IBV_QPT_RC => send || write || op == IBV_WR_RDMA_READ,
        IBV_QPT_UC => send || write,
        IBV_QPT_UD => send,
        _ => false,
    };
    if !in_order {
        0
    } else if flags & IBV_QUERY_QP_DATA_IN_ORDER_RETURN_CAPS != 0 {
        (IBV_QUERY_QP_DATA_IN_ORDER_WHOLE_MSG | IBV_QUERY_QP_DATA_IN_ORDER_ALIGNED_128_BYTES) as i32
    } else {
        1
    }
}

/// `query_qp_data_in_order` ([`data_in_order`]).
///
/// # Safety
/// `qp` is NULL or one of our QPs.
pub unsafe extern "C" fn query_qp_data_in_order(
    qp: *mut ibv_qp,
    op: ibv_wr_opcode,
    flags: u32,
) -> i32 {
    if qp.is_null() {
        return 0;
    }
    // SAFETY: qp is one of our live QPs (contract); qp_type was written
    // at creation and never changes.
    let qp_type = unsafe { (*qp).qp_type };
    // Unknown flags: libibverbs 55 answers 0 before calling us; so do we
    // under 44.
    if flags & !IBV_QUERY_QP_DATA_IN_ORDER_RETURN_CAPS != 0 {
        return 0;
    }
    data_in_order(qp_type, op, flags)
}

/// Bytes a full `path_mtu` packet takes of the netdev's MTU.
fn l2_len(path_mtu: PathMtu) -> usize {
    omx_wire::max_l2_len(path_mtu.bytes() as usize)
}

/// Whether full `path_mtu` packets fit a netdev of MTU `netdev_mtu`.
pub fn path_mtu_fits(path_mtu: PathMtu, netdev_mtu: u32) -> bool {
    l2_len(path_mtu) <= netdev_mtu as usize
}

/// Translates `ibv_modify_qp` attributes for the engine. The address
/// vector becomes MACs: only link-local EUI-64 GIDs (GID index 0,
/// `ibv_rc_pingpong -g 0`) are supported.
pub fn engine_attr(
    a: &ibv_qp_attr,
    mask: u32,
    smac: [u8; 6],
    neighbour: impl FnOnce(&ibv_ah_attr) -> Result<[u8; 6], Errno>,
) -> Result<QpAttr, Errno> {
    let has = |bit: u32| mask & bit != 0;
    let mut e = QpAttr {
        // Attributes the engine does not model still count for its
        // transition table.
        extra_mask: mask & !QpAttr::MODELLED_MASK,
        ..QpAttr::default()
    };
    if has(IBV_QP_ACCESS_FLAGS) {
        e.access_flags = Some(a.qp_access_flags);
    }
    if has(IBV_QP_STATE) {
        e.state = Some(match a.qp_state {
            IBV_QPS_RESET => QpState::Reset,
            IBV_QPS_INIT => QpState::Init,
            IBV_QPS_RTR => QpState::Rtr,
            IBV_QPS_RTS => QpState::Rts,
            IBV_QPS_SQD => QpState::Sqd,
            IBV_QPS_SQE => QpState::Sqe,
            IBV_QPS_ERR => QpState::Err,
            _ => return Err(Errno::EINVAL),
        });
    }
    if has(IBV_QP_PATH_MTU) {
        e.path_mtu = Some(PathMtu::from_ibv(a.path_mtu as u8).ok_or(Errno::EINVAL)?);
    }
    if has(IBV_QP_DEST_QPN) {
        e.dest_qpn = Some(a.dest_qp_num);
    }
    if has(IBV_QP_RQ_PSN) {
        e.rq_psn = Some(Psn::new(a.rq_psn));
    }
    if has(IBV_QP_SQ_PSN) {
        e.sq_psn = Some(Psn::new(a.sq_psn));
    }
    if has(IBV_QP_TIMEOUT) {
        e.timeout = Some(a.timeout);
    }
    if has(IBV_QP_RETRY_CNT) {
        e.retry_cnt = Some(a.retry_cnt);
    }
    if has(IBV_QP_RNR_RETRY) {
        e.rnr_retry = Some(a.rnr_retry);
    }
    if has(IBV_QP_MIN_RNR_TIMER) {
        e.min_rnr_timer = Some(a.min_rnr_timer);
    }
    if has(IBV_QP_MAX_QP_RD_ATOMIC) {
        e.max_rd_atomic = Some(a.max_rd_atomic);
    }
    if has(IBV_QP_MAX_DEST_RD_ATOMIC) {
        e.max_dest_rd_atomic = Some(a.max_dest_rd_atomic);
    }
    if has(IBV_QP_QKEY) {
        e.qkey = Some(a.qkey);
    }
    if has(IBV_QP_AV) {
        if a.ah_attr.is_global == 0 {
            log::notice(format_args!(
                "modify_qp: the address vector has no GID (is_global = 0); omx needs the \
                 peer's GID (e.g. ibv_rc_pingpong -g 0)"
            ));
            return Err(Errno::EINVAL);
        }
        // SAFETY: ibv_gid is a plain 16-byte union.
        let gid = unsafe { a.ah_attr.grh.dgid.raw };
        let dmac = match mac_from_gid(&gid) {
            Ok(m) => m,
            Err(AddrError::NeedsNeighbour) => neighbour(&a.ah_attr)?,
            Err(AddrError::Unsupported) => {
                log::notice(format_args!(
                    "modify_qp: the destination GID is multicast or unspecified"
                ));
                return Err(Errno::EINVAL);
            }
        };
        e.path = Some(PathInfo {
            dmac,
            smac,
            peer_index: omx_wire::PEER_INDEX_UNKNOWN,
        });
    }
    Ok(e)
}

/// The MAC of an IP-address GID (IPv4-mapped at GID index ≥ 1, or IPv6),
/// from the neighbour table through libibverbs's own resolver, which asks
/// the kernel (ARP / neighbour discovery, in the caller's network
/// namespace) and may wait for the answer: control path only
/// (`modify_qp`'s address vector, `create_ah`).
pub(crate) fn resolve_neighbour(ctx: *mut ibv_context, ah: &ibv_ah_attr) -> Result<[u8; 6], Errno> {
    let mut attr = *ah;
    let mut mac = [0u8; 6];
    let mut vid: u16 = 0xffff;
    // SAFETY: ctx is a live context of ours (the callers' contract);
    // attr, mac (6 bytes) and vid are live locals.
    let r = unsafe { ibv_resolve_eth_l2_from_gid(ctx, &mut attr, mac.as_mut_ptr(), &mut vid) };
    if r != 0 {
        // SAFETY: the GID union is plain bytes.
        let gid = std::net::Ipv6Addr::from(unsafe { ah.grh.dgid.raw });
        log::notice(format_args!(
            "no neighbour entry for GID {gid} (sgid index {}): is the peer's address \
             reachable from this network namespace?",
            ah.grh.sgid_index
        ));
        return Err(Errno(libc::EHOSTUNREACH));
    }
    if vid < 0x1000 {
        log::notice(format_args!(
            "the GID's netdev is VLAN {vid}; omx sends untagged frames on the device's own \
             netdev only"
        ));
        return Err(Errno::EOPNOTSUPP);
    }
    Ok(mac)
}

pub(crate) fn post_errno(e: PostError) -> i32 {
    match e {
        PostError::Full => libc::ENOMEM,
        PostError::InvalidState | PostError::TooLong | PostError::BadAtomicLength => libc::EINVAL,
    }
}

/// Reads an SGE list.
///
/// # Safety
/// `list` is readable for `n` entries when `n > 0`.
pub(crate) unsafe fn sg_list(list: *const ibv_sge, n: i32) -> Result<SgList, i32> {
    if n < 0 || n as usize > MAX_SGE || (n > 0 && list.is_null()) {
        return Err(libc::EINVAL);
    }
    let mut sges = [Sge::default(); MAX_SGE];
    for (i, s) in sges.iter_mut().enumerate().take(n as usize) {
        // SAFETY: i < n (contract).
        let g = unsafe { &*list.add(i) };
        *s = Sge {
            addr: g.addr,
            length: g.length,
            lkey: g.lkey,
        };
    }
    SgList::new(&sges[..n as usize]).ok_or(libc::EINVAL)
}

/// The engine operation of a send WR of a QP of context `ctx`.
///
/// # Safety
/// For IBV_WR_BIND_MW, `w`'s window and MR pointers are NULL or live
/// objects (the verbs contract of `ibv_post_send`).
unsafe fn send_op(ctx: *mut ibv_context, w: &ibv_send_wr) -> Result<SendOp, i32> {
    // SAFETY: plain-data unions; the opcode says which member is live.
    let (rdma, atomic, imm, inv) = unsafe {
        (
            w.wr.rdma,
            w.wr.atomic,
            u32::from_be(w.__bindgen_anon_1.imm_data),
            w.__bindgen_anon_1.invalidate_rkey,
        )
    };
    Ok(match w.opcode {
        IBV_WR_SEND => SendOp::Send,
        IBV_WR_SEND_WITH_IMM => SendOp::SendWithImm(imm),
        IBV_WR_SEND_WITH_INV => SendOp::SendWithInv(inv),
        IBV_WR_LOCAL_INV => SendOp::LocalInv(inv),
        IBV_WR_BIND_MW => {
            // SAFETY: the opcode says `bind_mw` is the live member; its
            // pointers per this function's contract.
            let b = unsafe { w.__bindgen_anon_2.bind_mw };
            // SAFETY: per this function's contract.
            SendOp::BindMw(unsafe { crate::mw::mw_bind(ctx, b.mw, b.rkey, &b.bind_info) }?)
        }
        IBV_WR_RDMA_WRITE => SendOp::RdmaWrite {
            remote_addr: rdma.remote_addr,
            rkey: rdma.rkey,
        },
        IBV_WR_RDMA_WRITE_WITH_IMM => SendOp::RdmaWriteWithImm {
            remote_addr: rdma.remote_addr,
            rkey: rdma.rkey,
            imm,
        },
        IBV_WR_RDMA_READ => SendOp::RdmaRead {
            remote_addr: rdma.remote_addr,
            rkey: rdma.rkey,
        },
        IBV_WR_ATOMIC_CMP_AND_SWP => SendOp::AtomicCmpSwap {
            remote_addr: atomic.remote_addr,
            rkey: atomic.rkey,
            compare: atomic.compare_add,
            swap: atomic.swap,
        },
        IBV_WR_ATOMIC_FETCH_AND_ADD => SendOp::AtomicFetchAdd {
            remote_addr: atomic.remote_addr,
            rkey: atomic.rkey,
            add: atomic.compare_add,
        },
        _ => return Err(libc::EINVAL),
    })
}

/// A work-request list as libibverbs hands it to a post verb
/// (`ibv_send_wr`, `ibv_recv_wr`): linked through `next`.
pub(crate) trait WrList {
    fn next_wr(&self) -> *mut Self;
}

impl WrList for ibv_send_wr {
    fn next_wr(&self) -> *mut Self {
        self.next
    }
}

impl WrList for ibv_recv_wr {
    fn next_wr(&self) -> *mut Self {
        self.next
    }
}

/// Hands the WRs of the list `wr` to `post` in order and stops at the
/// first one refused, whose address goes to `*bad_wr` (libibverbs'
/// contract: the ones before it were posted); returns 0 or that errno.
/// The walk every post verb shares ([`post_list`] for QPs,
/// `post_srq_recv`); the caller holds the queue's lock around it.
///
/// # Safety
/// `wr` is NULL or a list the caller owns for the call, each element
/// readable; `bad_wr` is NULL or writable.
pub(crate) unsafe fn walk<W: WrList>(
    wr: *mut W,
    bad_wr: *mut *mut W,
    mut post: impl FnMut(&W) -> Result<(), i32>,
) -> i32 {
    let mut cur = wr;
    while !cur.is_null() {
        // SAFETY: cur is an element of the caller's list.
        let w = unsafe { &*cur };
        if let Err(e) = post(w) {
            // SAFETY: per the contract.
            return unsafe { refuse(bad_wr, cur, e) };
        }
        cur = w.next_wr();
    }
    0
}

/// Sets `*bad_wr = w` (if `bad_wr` is not NULL) and returns `e`.
///
/// # Safety
/// `bad_wr` is NULL or writable.
pub(crate) unsafe fn refuse<W>(bad_wr: *mut *mut W, w: *mut W, e: i32) -> i32 {
    if !bad_wr.is_null() {
        // SAFETY: non-null out-pointer supplied by the caller.
        unsafe { *bad_wr = w };
    }
    e
}

/// The skeleton of the QP post verbs: finds the QP, takes its lock once,
/// [`walk`]s the list with `post`, then drives the QP once with `drive`,
/// so the frames of the whole list leave in one batch. A QP without a
/// data path (a type we do not run) refuses the first WR with
/// EOPNOTSUPP; a panic in the engine becomes EIO ([`guard`]).
///
/// # Safety
/// `qp` is NULL or ours; `wr` is NULL or a list the caller owns for the
/// call, each element readable; `bad_wr` is NULL or writable.
unsafe fn post_list<W: WrList>(
    what: &str,
    qp: *mut ibv_qp,
    wr: *mut W,
    bad_wr: *mut *mut W,
    mut post: impl FnMut(&Qp, &mut QpInner, &W) -> Result<(), i32>,
    drive: impl FnOnce(&Runtime, &Arc<Qp>, &mut QpInner) -> Drive,
) -> i32 {
    // SAFETY: per the contract.
    let Some(o) = (unsafe { from_ibv(qp) }) else {
        // SAFETY: per the contract.
        return unsafe { refuse(bad_wr, wr, libc::EINVAL) };
    };
    let (Some(rt), Some(v)) = (&o.rt, &o.qp) else {
        // SAFETY: per the contract.
        return unsafe { refuse(bad_wr, wr, libc::EOPNOTSUPP) };
    };
    guard(what, libc::EIO, || {
        locked(
            rt,
            v,
            // SAFETY: per the contract.
            |g| unsafe { walk(wr, bad_wr, |w| post(v, g, w)) },
            drive,
        )
    })
}

/// Runs `f` on the QP under its lock, then drives the QP once (`drive`)
/// and tells the runtime what the drive left to do: the tail of every
/// verb that queues work ([`post_list`], `ibv_wr_complete`).
pub(crate) fn locked<R>(
    rt: &Runtime,
    v: &Arc<Qp>,
    f: impl FnOnce(&mut QpInner) -> R,
    drive: impl FnOnce(&Runtime, &Arc<Qp>, &mut QpInner) -> Drive,
) -> R {
    let mut g = v.lock();
    let r = f(&mut g);
    let d = drive(rt, v, &mut g);
    drop(g);
    rt.after_drive(d);
    r
}

/// The drive after send-queue work: everything the QP can send now.
pub(crate) fn drive_send(rt: &Runtime, v: &Arc<Qp>, g: &mut QpInner) -> Drive {
    rt.ep.drive(v, g, rt.now(), &rt.sink())
}

/// The destination of a send WR on a UD QP of context `ctx`: its AH's
/// (which must be one of that context's), with the WR's remote QPN and
/// Q_Key.
fn ud_dest(ctx: *mut ibv_context, w: &ibv_send_wr) -> Result<UdDest, i32> {
    // SAFETY: plain data; `wr.ud` is the member a UD send WR uses.
    let ud = unsafe { w.wr.ud };
    // SAFETY: the application's AH for this WR, live during the call (the
    // verbs contract); NULL is refused.
    let ah = unsafe { crate::ah::from_ibv(ud.ah) }.ok_or(libc::EINVAL)?;
    if ah.ibv_ah.context != ctx {
        return Err(libc::EINVAL);
    }
    Ok(UdDest {
        remote_qpn: ud.remote_qpn,
        remote_qkey: ud.remote_qkey,
        ..ah.dest
    })
}

/// Posts one `ibv_send_wr` to a locked QP of context `ctx`. A UC QP
/// refuses RDMA READ and atomics with EINVAL, as rxe (the engine); a UD
/// QP takes SEND and SEND with immediate to the WR's address handle.
/// IBV_SEND_INLINE means something for SEND and RDMA WRITE only (as in
/// rxe): a READ or an atomic writes into its scatter list, a bind or a
/// local invalidate has no data, and they ignore the flag.
fn post_one_send(
    ctx: *mut ibv_context,
    v: &Qp,
    g: &mut QpInner,
    w: &ibv_send_wr,
) -> Result<(), i32> {
    let ty = g.eng.qp_type();
    if ty == QpType::Ud && !matches!(w.opcode, IBV_WR_SEND | IBV_WR_SEND_WITH_IMM) {
        return Err(libc::EINVAL);
    }
    let dest = match ty {
        QpType::Ud => Some(ud_dest(ctx, w)?),
        _ => None,
    };
    // SAFETY: the WR's pointers are live for this call (post_send's
    // contract).
    let op = unsafe { send_op(ctx, w) }?;
    // SAFETY: sg_list readable for num_sge entries (the caller's list, as
    // post_send's contract says).
    let sg = unsafe { sg_list(w.sg_list, w.num_sge) }?;
    let swr = SendWr {
        wr_id: w.wr_id,
        op,
        sg,
        signaled: v.sq_sig_all || w.send_flags & IBV_SEND_SIGNALED != 0,
        solicited: w.send_flags & IBV_SEND_SOLICITED != 0,
    };
    let inline = w.send_flags & IBV_SEND_INLINE != 0
        && !matches!(
            op,
            SendOp::RdmaRead { .. }
                | SendOp::AtomicCmpSwap { .. }
                | SendOp::AtomicFetchAdd { .. }
                | SendOp::BindMw(_)
                | SendOp::LocalInv(_)
        );
    if !inline {
        return g.post_send(swr, dest).map_err(post_errno);
    }
    let len = sg.total_len();
    if len > u64::from(MAX_INLINE_DATA) {
        return Err(libc::EINVAL);
    }
    g.post_send_inline(swr, dest, len as usize, |dst| {
        let mut off = 0;
        for s in sg.as_slice() {
            let n = s.length as usize;
            if n == 0 {
                continue;
            }
            // SAFETY: IBV_SEND_INLINE: the application's gather buffers
            // are readable for their lengths during this call (lkeys are
            // not used).
            unsafe {
                core::ptr::copy_nonoverlapping(
                    s.addr as usize as *const u8,
                    dst[off..off + n].as_mut_ptr(),
                    n,
                )
            };
            off += n;
        }
    })
    .map_err(post_errno)
}

/// `ibv_post_send` ([`post_list`]).
///
/// # Safety
/// `qp` NULL or ours; `wr` a valid list; `bad_wr` NULL or writable.
pub unsafe extern "C" fn post_send(
    qp: *mut ibv_qp,
    wr: *mut ibv_send_wr,
    bad_wr: *mut *mut ibv_send_wr,
) -> i32 {
    // SAFETY: qp is NULL or ours (contract).
    let ctx = unsafe { qp.as_ref() }.map_or(ptr::null_mut(), |q| q.context);
    let post = |v: &Qp, g: &mut QpInner, w: &ibv_send_wr| post_one_send(ctx, v, g, w);
    // SAFETY: per the contract.
    unsafe { post_list("post_send", qp, wr, bad_wr, post, drive_send) }
}

/// `ibv_post_recv` ([`post_list`]).
///
/// # Safety
/// `qp` NULL or ours; `wr` a valid list; `bad_wr` NULL or writable.
pub unsafe extern "C" fn post_recv(
    qp: *mut ibv_qp,
    wr: *mut ibv_recv_wr,
    bad_wr: *mut *mut ibv_recv_wr,
) -> i32 {
    let post = |_: &Qp, g: &mut QpInner, w: &ibv_recv_wr| {
        // SAFETY: sg_list readable for num_sge entries (contract).
        let sg = unsafe { sg_list(w.sg_list, w.num_sge) }?;
        g.post_recv(RecvWr { wr_id: w.wr_id, sg })
            .map_err(post_errno)
    };
    // SAFETY: per the contract.
    unsafe {
        post_list("post_recv", qp, wr, bad_wr, post, |rt, v, g| {
            rt.ep.drive_after_post_recv(v, g, rt.now(), &rt.sink())
        })
    }
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
    fn path_mtu_must_fit_the_netdev() {
        use omx_engine::PathMtu::*;
        // Payload + 54 bytes (16-byte head without the Ethernet header's
        // 14, 20-byte BTH, up to 28 bytes of extension headers, CRC).
        assert!(path_mtu_fits(Mtu1024, 1500));
        assert!(path_mtu_fits(Mtu1024, 1078));
        assert!(!path_mtu_fits(Mtu1024, 1077));
        assert!(!path_mtu_fits(Mtu2048, 1500));
        assert!(!path_mtu_fits(Mtu4096, 1500));
        assert!(path_mtu_fits(Mtu4096, 4150));
        assert!(!path_mtu_fits(Mtu4096, 4149));
        // The kernel module reports as active_mtu the largest IB MTU whose
        // payload plus OMX_FRAME_OVERHEAD fits the netdev: that one must
        // always pass this check.
        let h = include_str!("../../../kmod-shim/rdma_omx.h");
        let overhead: u32 = h
            .lines()
            .find_map(|l| l.strip_prefix("#define OMX_FRAME_OVERHEAD"))
            .and_then(|v| v.trim().parse().ok())
            .expect("OMX_FRAME_OVERHEAD in rdma_omx.h");
        for m in [Mtu256, Mtu512, Mtu1024, Mtu2048, Mtu4096] {
            assert!(path_mtu_fits(m, m.bytes() + overhead), "{m:?}");
        }
    }

    #[test]
    fn paths_round_trip_and_reset() {
        let qp = OmxQp {
            vqp: verbs_qp::default(),
            paths: Mutex::new(QpPaths::default()),
            modify: Mutex::new(()),
            qp: None,
            rt: None,
            ex: None,
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
    fn rtr_attributes_resolve_the_mac() {
        let mut a = ibv_qp_attr {
            qp_state: IBV_QPS_RTR,
            path_mtu: IBV_MTU_1024,
            dest_qp_num: 0x1003,
            rq_psn: 77,
            ..Default::default()
        };
        a.ah_attr.is_global = 1;
        let mut gid = [0u8; 16];
        gid[0] = 0xfe;
        gid[1] = 0x80;
        gid[8..].copy_from_slice(&[0x00, 0x11, 0x22, 0xff, 0xfe, 0x33, 0x44, 0x55]);
        a.ah_attr.grh.dgid.raw = gid;
        let m = IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN;
        let no_neigh = |_: &ibv_ah_attr| Err(Errno(libc::EHOSTUNREACH));
        let e = engine_attr(&a, m, [2, 0, 0, 0, 0, 9], no_neigh).unwrap();
        assert_eq!(e.state, Some(QpState::Rtr));
        assert_eq!(e.path_mtu, Some(PathMtu::Mtu1024));
        assert_eq!(e.dest_qpn, Some(0x1003));
        let p = e.path.unwrap();
        assert_eq!(p.dmac, [2, 0x11, 0x22, 0x33, 0x44, 0x55]);
        assert_eq!(p.smac, [2, 0, 0, 0, 0, 9]);
        a.ah_attr.is_global = 0;
        assert_eq!(engine_attr(&a, m, [0; 6], no_neigh), Err(Errno::EINVAL));
        a.ah_attr.is_global = 1;
        let mut v4 = [0u8; 16];
        v4[10] = 0xff;
        v4[11] = 0xff;
        v4[12..].copy_from_slice(&[10, 78, 0, 2]);
        a.ah_attr.grh.dgid.raw = v4;
        assert_eq!(
            engine_attr(&a, m, [0; 6], no_neigh),
            Err(Errno(libc::EHOSTUNREACH))
        );
        // The neighbour table's answer becomes the destination MAC.
        let e = engine_attr(&a, m, [2, 0, 0, 0, 0, 9], |ah| {
            // SAFETY: plain bytes.
            assert_eq!(unsafe { ah.grh.dgid.raw }[12..], [10, 78, 0, 2]);
            Ok([2, 9, 9, 9, 9, 9])
        })
        .unwrap();
        assert_eq!(e.path.unwrap().dmac, [2, 9, 9, 9, 9, 9]);
        a.ah_attr.grh.dgid.raw = [0; 16];
        assert_eq!(engine_attr(&a, m, [0; 6], no_neigh), Err(Errno::EINVAL));
    }

    #[test]
    fn send_opcodes() {
        // SAFETY: no WR here names a window.
        let op = |w: &ibv_send_wr| unsafe { send_op(ptr::null_mut(), w) };
        let mut w = ibv_send_wr {
            opcode: IBV_WR_SEND,
            ..Default::default()
        };
        assert_eq!(op(&w), Ok(SendOp::Send));
        w.opcode = IBV_WR_ATOMIC_FETCH_AND_ADD;
        w.wr.atomic = ibv_send_wr__bindgen_ty_2__bindgen_ty_2 {
            remote_addr: 0x1000,
            compare_add: 3,
            swap: 4,
            rkey: 7,
        };
        assert_eq!(
            op(&w),
            Ok(SendOp::AtomicFetchAdd {
                remote_addr: 0x1000,
                rkey: 7,
                add: 3
            })
        );
        w.opcode = IBV_WR_ATOMIC_CMP_AND_SWP;
        assert_eq!(
            op(&w),
            Ok(SendOp::AtomicCmpSwap {
                remote_addr: 0x1000,
                rkey: 7,
                compare: 3,
                swap: 4
            })
        );
        // A bind names a window (NULL here: EINVAL); invalidations carry
        // their rkey in host order.
        w.opcode = IBV_WR_BIND_MW;
        assert_eq!(op(&w), Err(libc::EINVAL));
        w.__bindgen_anon_1.invalidate_rkey = 0x1234_5678;
        w.opcode = IBV_WR_LOCAL_INV;
        assert_eq!(op(&w), Ok(SendOp::LocalInv(0x1234_5678)));
        w.opcode = IBV_WR_SEND_WITH_INV;
        assert_eq!(op(&w), Ok(SendOp::SendWithInv(0x1234_5678)));
        w.opcode = IBV_WR_TSO;
        assert_eq!(op(&w), Err(libc::EINVAL));
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
        assert_eq!(r, libc::EINVAL);
        assert_eq!(bad, &mut wr as *mut _);
        let mut rwr = ibv_recv_wr::default();
        let mut rbad: *mut ibv_recv_wr = ptr::null_mut();
        // SAFETY: as above.
        let r = unsafe { post_recv(ptr::null_mut(), &mut rwr, &mut rbad) };
        assert_eq!(r, libc::EINVAL);
        assert_eq!(rbad, &mut rwr as *mut _);
    }

    #[test]
    fn data_in_order_per_type_and_op() {
        const CAPS: i32 = (IBV_QUERY_QP_DATA_IN_ORDER_WHOLE_MSG
            | IBV_QUERY_QP_DATA_IN_ORDER_ALIGNED_128_BYTES) as i32;
        let rc = [
            IBV_WR_SEND,
            IBV_WR_SEND_WITH_IMM,
            IBV_WR_RDMA_WRITE,
            IBV_WR_RDMA_WRITE_WITH_IMM,
            IBV_WR_RDMA_READ,
        ];
        for op in rc {
            assert_eq!(data_in_order(IBV_QPT_RC, op, 0), 1, "op {op}");
            let caps = IBV_QUERY_QP_DATA_IN_ORDER_RETURN_CAPS;
            assert_eq!(data_in_order(IBV_QPT_RC, op, caps), CAPS, "op {op}");
            let uc = op != IBV_WR_RDMA_READ;
            assert_eq!(data_in_order(IBV_QPT_UC, op, 0), i32::from(uc));
            let ud = matches!(op, IBV_WR_SEND | IBV_WR_SEND_WITH_IMM);
            assert_eq!(data_in_order(IBV_QPT_UD, op, 0), i32::from(ud));
        }
        // Not defined for atomics and the rest: 0.
        for op in [
            IBV_WR_ATOMIC_CMP_AND_SWP,
            IBV_WR_ATOMIC_FETCH_AND_ADD,
            IBV_WR_LOCAL_INV,
            IBV_WR_SEND_WITH_INV,
        ] {
            assert_eq!(data_in_order(IBV_QPT_RC, op, 1), 0, "op {op}");
        }
        assert_eq!(data_in_order(IBV_QPT_XRC_SEND, IBV_WR_SEND, 1), 0);
        // SAFETY: NULL is refused before any dereference.
        assert_eq!(
            unsafe { query_qp_data_in_order(ptr::null_mut(), IBV_WR_SEND, 0) },
            0
        );
    }
}
