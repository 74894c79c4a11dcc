//! The extended QP API: `ibv_create_qp_ex` and the `ibv_wr_*` work request
//! builders (`ibv_rc_pingpong -N`).
//!
//! An extended QP is an ordinary [`OmxQp`] (same kernel shadow, same engine
//! QP, created by [`crate::qp`]) with an [`QpEx`] behind it and the
//! `ibv_qp_ex` function pointers filled in. The builders never allocate and
//! never block: each one writes into a staging area sized at creation
//! (`max_send_wr` WRs, each with up to `MAX_SGE` SGEs and a
//! `MAX_INLINE_DATA`-byte inline slot). `ibv_wr_complete` then posts the
//! whole batch under the QP's engine lock through the same engine calls as
//! `ibv_post_send`, all or nothing: an error recorded by a builder, a batch
//! larger than the free send queue, or a QP in RESET fail the call with no
//! WR posted (ibv_wr_post(3): "the entire posting will be aborted").
//!
//! Critical section: ibv_wr_post(3) makes `wr_start` ..
//! `wr_complete`/`wr_abort` a per-QP critical section. [`QpEx::busy`] is
//! that section's spin lock (as in rxe): a second thread's `wr_start` waits
//! for the first batch to end, and nothing else ever waits on it. The
//! staging area itself sits behind a leaf spin lock taken for the length of
//! one builder call, so an application that calls builders outside the
//! section gets wrong batches, never undefined behaviour.
//!
//! Layout: libibverbs 44's `ibv_qp_ex` has no `wr_flush` slot, so its
//! `verbs_qp.comp_mask` sits where v55's `wr_flush` is (offset 352), and
//! v55's `comp_mask` (offset 360) is v44's `xrcd`. `ibv_qp_to_qp_ex()`
//! reads the comp_mask of the library that is loaded, so VERBS_QP_EX is
//! written at both places: under v44 the second write lands in the unused
//! `xrcd` (read only with VERBS_QP_XRCD, never set here); under v55+ the
//! first lands in `wr_flush`, which we never offer (a FLUSH request is
//! refused at create time).

use core::mem::offset_of;
use core::ptr;
use std::hint::spin_loop;
use std::sync::atomic::{AtomicBool, Ordering};

use omx_verbs::lock::SpinLock;

use omx_engine::{SendOp, SendWr, SgList, Sge, UdDest, MAX_SGE};
use omx_rdma_sys::*;
use omx_verbs::qp::QpInner;
use omx_verbs::MAX_INLINE_DATA;

use crate::errno::{to_ptr, Errno};
use crate::guard::guard;
use crate::qp::OmxQp;

/// `verbs_qp.comp_mask` in rdma-core v44 (Debian 12's libibverbs).
pub const V44_VERBS_QP_COMP_MASK: usize = 352;
const _: () = assert!(offset_of!(ibv_qp_ex, wr_flush) == V44_VERBS_QP_COMP_MASK);
const _: () = assert!(offset_of!(verbs_qp, comp_mask) == 360);

/// send_ops_flags an RC QP accepts.
pub const SUPPORTED_SEND_OPS: u64 = (IBV_QP_EX_WITH_SEND
    | IBV_QP_EX_WITH_SEND_WITH_IMM
    | IBV_QP_EX_WITH_SEND_WITH_INV
    | IBV_QP_EX_WITH_RDMA_WRITE
    | IBV_QP_EX_WITH_RDMA_WRITE_WITH_IMM
    | IBV_QP_EX_WITH_RDMA_READ
    | IBV_QP_EX_WITH_ATOMIC_CMP_AND_SWP
    | IBV_QP_EX_WITH_ATOMIC_FETCH_AND_ADD
    | IBV_QP_EX_WITH_BIND_MW
    | IBV_QP_EX_WITH_LOCAL_INV) as u64;

/// send_ops_flags a UC QP accepts: RC's but RDMA READ, atomics and SEND
/// with invalidate (docs/wire.md §14).
const UC_SEND_OPS: u64 = (IBV_QP_EX_WITH_SEND
    | IBV_QP_EX_WITH_SEND_WITH_IMM
    | IBV_QP_EX_WITH_RDMA_WRITE
    | IBV_QP_EX_WITH_RDMA_WRITE_WITH_IMM
    | IBV_QP_EX_WITH_BIND_MW
    | IBV_QP_EX_WITH_LOCAL_INV) as u64;

/// Every send_ops_flags bit rdma-core (v44..v55) defines.
const KNOWN_SEND_OPS: u64 = (IBV_QP_EX_WITH_ATOMIC_WRITE << 1) as u64 - 1;

/// comp_mask bits create_qp_ex accepts.
const SUPPORTED_COMP_MASK: u32 =
    IBV_QP_INIT_ATTR_PD | IBV_QP_INIT_ATTR_CREATE_FLAGS | IBV_QP_INIT_ATTR_SEND_OPS_FLAGS;

/// Every comp_mask bit rdma-core defines.
const KNOWN_COMP_MASK: u32 = (IBV_QP_INIT_ATTR_SEND_OPS_FLAGS << 1) - 1;

/// Checks `ibv_qp_init_attr_ex` for what we implement: unknown bits are
/// EINVAL, known features we lack (XRC, RSS, TSO, create flags, memory
/// windows, FLUSH, atomic write, ...) EOPNOTSUPP, a missing PD EINVAL.
pub fn check_qp_init_attr_ex(a: &ibv_qp_init_attr_ex) -> Result<(), Errno> {
    if a.comp_mask & !KNOWN_COMP_MASK != 0 {
        return Err(Errno::EINVAL);
    }
    if a.comp_mask & !SUPPORTED_COMP_MASK != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    if a.comp_mask & IBV_QP_INIT_ATTR_PD == 0 || a.pd.is_null() {
        return Err(Errno::EINVAL);
    }
    if a.comp_mask & IBV_QP_INIT_ATTR_CREATE_FLAGS != 0 && a.create_flags != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    if a.comp_mask & IBV_QP_INIT_ATTR_SEND_OPS_FLAGS != 0 {
        if a.send_ops_flags & !KNOWN_SEND_OPS != 0 {
            return Err(Errno::EINVAL);
        }
        // RC, UC (without RDMA READ and atomics, docs/wire.md §14) and
        // UD (SENDs, §13).
        let supported = match a.qp_type {
            IBV_QPT_RC => SUPPORTED_SEND_OPS,
            IBV_QPT_UC => UC_SEND_OPS,
            IBV_QPT_UD => u64::from(IBV_QP_EX_WITH_SEND | IBV_QP_EX_WITH_SEND_WITH_IMM),
            _ => 0,
        };
        if supported == 0 || a.send_ops_flags & !supported != 0 {
            return Err(Errno::EOPNOTSUPP);
        }
    }
    Ok(())
}

/// One staged work request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Staged {
    pub wr: SendWr,
    /// Some(len): the data is `len` bytes in this WR's inline slot.
    pub inline_len: Option<u32>,
    /// `ibv_wr_set_ud_addr`'s destination (UD QPs: required).
    pub dest: Option<UdDest>,
}

/// The WRs built since `wr_start`.
#[derive(Debug)]
pub struct Staging {
    wrs: Box<[Staged]>,
    inline: Box<[u8]>,
    n: usize,
    /// The last builder call started a WR that setters may complete.
    open: bool,
    /// First error a builder met (0: none); reported by `complete`.
    err: i32,
}

const EMPTY: Staged = Staged {
    wr: SendWr {
        wr_id: 0,
        op: SendOp::Send,
        sg: SgList::EMPTY,
        signaled: false,
        solicited: false,
    },
    inline_len: None,
    dest: None,
};

impl Staging {
    /// Room for `depth` WRs per batch (at least one).
    pub fn new(depth: u32) -> Self {
        let d = depth.max(1) as usize;
        Staging {
            wrs: vec![EMPTY; d].into_boxed_slice(),
            inline: vec![0; d * MAX_INLINE_DATA as usize].into_boxed_slice(),
            n: 0,
            open: false,
            err: 0,
        }
    }

    /// Forgets the batch (`wr_start`, `wr_abort`, after `wr_complete`).
    pub fn reset(&mut self) {
        self.n = 0;
        self.open = false;
        self.err = 0;
    }

    fn fail(&mut self, e: i32) {
        if self.err == 0 {
            self.err = e;
        }
        self.open = false;
    }

    /// WRs staged.
    pub fn len(&self) -> usize {
        self.n
    }

    /// True if nothing is staged.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// A WR builder (`ibv_wr_send`, ...): `wr_id` and `wr_flags` as the
    /// application left them in `ibv_qp_ex`.
    pub fn begin(&mut self, wr_id: u64, wr_flags: u32, op: SendOp) {
        if self.n == self.wrs.len() {
            // More WRs than the send queue holds: the batch cannot post.
            self.fail(libc::ENOMEM);
            return;
        }
        self.wrs[self.n] = Staged {
            wr: SendWr {
                wr_id,
                op,
                sg: SgList::EMPTY,
                signaled: wr_flags & IBV_SEND_SIGNALED != 0,
                solicited: wr_flags & IBV_SEND_SOLICITED != 0,
            },
            inline_len: None,
            dest: None,
        };
        self.n += 1;
        self.open = true;
    }

    /// A builder of a local operation (`ibv_wr_bind_mw`,
    /// `ibv_wr_local_inv`): complete as built, no setter follows.
    pub fn begin_local(&mut self, wr_id: u64, wr_flags: u32, op: SendOp) {
        self.begin(wr_id, wr_flags, op);
        self.open = false;
    }

    fn current(&mut self) -> Option<&mut Staged> {
        if !self.open {
            if self.err == 0 {
                // A setter without a builder before it.
                self.err = libc::EINVAL;
            }
            return None;
        }
        self.open = false;
        self.wrs.get_mut(self.n.checked_sub(1)?)
    }

    /// `ibv_wr_set_ud_addr`: the destination of the WR being built, before
    /// or after its data setter (`None`: an AH that is not one of the QP's
    /// context's, EINVAL at `wr_complete`).
    pub fn set_ud_addr(&mut self, dest: Option<UdDest>) {
        let Some(w) = self.n.checked_sub(1).and_then(|i| self.wrs.get_mut(i)) else {
            self.fail(libc::EINVAL);
            return;
        };
        match dest {
            Some(d) => w.dest = Some(d),
            None => self.fail(libc::EINVAL),
        }
    }

    /// `ibv_wr_set_sge` / `ibv_wr_set_sge_list`.
    pub fn set_sges(&mut self, sges: &[Sge]) {
        let Some(sg) = (sges.len() <= MAX_SGE).then(|| SgList::new(sges)).flatten() else {
            self.fail(libc::EINVAL);
            return;
        };
        if let Some(w) = self.current() {
            w.wr.sg = sg;
        }
    }

    /// `ibv_wr_set_inline_data(_list)`: copies the bytes now (the caller
    /// may reuse its buffers at once). SEND and RDMA WRITE only, at most
    /// `MAX_INLINE_DATA` bytes.
    pub fn set_inline(&mut self, bufs: &[&[u8]]) {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let idx = self.n.wrapping_sub(1);
        let ok_op = self.open
            && matches!(
                self.wrs.get(idx).map(|w| w.wr.op),
                Some(
                    SendOp::Send
                        | SendOp::SendWithImm(_)
                        | SendOp::RdmaWrite { .. }
                        | SendOp::RdmaWriteWithImm { .. }
                )
            );
        if self.open && (!ok_op || total > MAX_INLINE_DATA as usize) {
            self.fail(libc::EINVAL);
            return;
        }
        let slot = idx.wrapping_mul(MAX_INLINE_DATA as usize);
        let Some(w) = self.current() else { return };
        w.inline_len = Some(total as u32);
        let mut off = slot;
        for b in bufs {
            self.inline[off..off + b.len()].copy_from_slice(b);
            off += b.len();
        }
    }

    /// Posts the batch on the engine QP, all or nothing; returns 0 or the
    /// errno `ibv_wr_complete` reports. The staging is empty afterwards.
    pub fn complete(&mut self, g: &mut QpInner, sq_sig_all: bool) -> i32 {
        let r = self.post(g, sq_sig_all);
        self.reset();
        r
    }

    fn post(&self, g: &mut QpInner, sq_sig_all: bool) -> i32 {
        if self.err != 0 {
            return self.err;
        }
        if self.n == 0 {
            return 0;
        }
        let free = g.eng.sq_free() as usize;
        if free == 0 && g.eng.state() == omx_engine::QpState::Reset {
            return libc::EINVAL;
        }
        if self.n > free {
            return libc::ENOMEM;
        }
        // Every WR of a UD QP names its destination (none of a connected
        // QP's does) and fits one datagram: checked before any is posted.
        let ud_mtu = g.eng.ud_mtu();
        let fits = |s: &Staged| match (ud_mtu, s.dest) {
            (Some(m), Some(_)) => {
                u64::from(s.inline_len.unwrap_or(0)) + s.wr.sg.total_len() <= u64::from(m)
            }
            (None, None) => true,
            _ => false,
        };
        if !self.wrs[..self.n].iter().all(fits) {
            return libc::EINVAL;
        }
        // The engine's own checks of each WR (length, an atomic's 8-byte
        // buffer), before any is posted.
        if let Some(e) = self.wrs[..self.n].iter().find_map(|s| s.wr.check().err()) {
            return crate::qp::post_errno(e);
        }
        for (i, s) in self.wrs[..self.n].iter().enumerate() {
            let mut wr = s.wr;
            wr.signaled |= sq_sig_all;
            let r = match s.inline_len {
                Some(len) => {
                    let off = i * MAX_INLINE_DATA as usize;
                    let src = &self.inline[off..off + len as usize];
                    g.post_send_inline(wr, s.dest, len as usize, |dst| dst.copy_from_slice(src))
                }
                None => g.post_send(wr, s.dest),
            };
            if let Err(e) = r {
                // Not reached: every check the engine makes was made above.
                return crate::qp::post_errno(e);
            }
        }
        0
    }
}

/// The extended part of an [`OmxQp`].
#[derive(Debug)]
pub struct QpEx {
    /// The wr_start .. wr_complete/abort critical section.
    busy: AtomicBool,
    staging: SpinLock<Staging>,
}

impl QpEx {
    pub fn new(depth: u32) -> Self {
        QpEx {
            busy: AtomicBool::new(false),
            staging: SpinLock::new(Staging::new(depth)),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Staging) -> R) -> R {
        f(&mut self.staging.lock())
    }

    fn enter(&self) {
        let mut spins = 0u32;
        while self
            .busy
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            spins = spins.wrapping_add(1);
            if spins & 63 == 0 {
                std::thread::yield_now();
            } else {
                spin_loop();
            }
        }
    }

    fn leave(&self) {
        self.busy.store(false, Ordering::Release);
    }
}

/// # Safety
/// `qp` is NULL or the `ibv_qp_ex` of one of our QPs.
unsafe fn from_ex<'a>(qp: *mut ibv_qp_ex) -> Option<(&'a OmxQp, &'a QpEx)> {
    // SAFETY: ibv_qp_ex is at offset 0 of verbs_qp, itself at offset 0 of
    // OmxQp.
    let o = unsafe { qp.cast::<OmxQp>().as_ref() }?;
    let ex = o.ex.as_deref()?;
    Some((o, ex))
}

/// Runs a builder: reads the application's wr_id/wr_flags (and the QP's
/// context), stages through `f`.
///
/// # Safety
/// `qp` is NULL or the `ibv_qp_ex` of one of our extended QPs.
unsafe fn build_with(qp: *mut ibv_qp_ex, f: impl FnOnce(&mut Staging, u64, u32, *mut ibv_context)) {
    // SAFETY: per the contract.
    let Some((_, ex)) = (unsafe { from_ex(qp) }) else {
        return;
    };
    // SAFETY: qp is live; the application writes wr_id and wr_flags
    // before calling the builder, from the thread in the critical section.
    let (wr_id, flags, ctx) = unsafe { ((*qp).wr_id, (*qp).wr_flags, (*qp).qp_base.context) };
    ex.with(|s| f(s, wr_id, flags, ctx));
}

/// [`build_with`] for a builder whose data setter follows.
///
/// # Safety
/// `qp` is NULL or the `ibv_qp_ex` of one of our extended QPs.
unsafe fn build(qp: *mut ibv_qp_ex, op: SendOp) {
    // SAFETY: per the contract.
    unsafe { build_with(qp, |s, wr_id, flags, _| s.begin(wr_id, flags, op)) }
}

/// `ibv_wr_start`.
///
/// # Safety
/// `qp` is NULL or one of our extended QPs.
pub unsafe extern "C" fn wr_start(qp: *mut ibv_qp_ex) {
    // SAFETY: per the contract.
    if let Some((_, ex)) = unsafe { from_ex(qp) } {
        ex.enter();
        ex.with(Staging::reset);
    }
}

/// `ibv_wr_complete`: posts the batch (0 or an errno; on error nothing
/// was posted).
///
/// # Safety
/// `qp` is NULL or one of our extended QPs.
pub unsafe extern "C" fn wr_complete(qp: *mut ibv_qp_ex) -> i32 {
    // SAFETY: per the contract.
    let Some((o, ex)) = (unsafe { from_ex(qp) }) else {
        return libc::EINVAL;
    };
    let r = guard("wr_complete", libc::EIO, || {
        let (Some(rt), Some(v)) = (&o.rt, &o.qp) else {
            ex.with(Staging::reset);
            return libc::EOPNOTSUPP;
        };
        crate::qp::locked(
            rt,
            v,
            |g| ex.with(|s| s.complete(g, v.sq_sig_all)),
            crate::qp::drive_send,
        )
    });
    ex.leave();
    r
}

/// `ibv_wr_abort`: discards the batch.
///
/// # Safety
/// `qp` is NULL or one of our extended QPs.
pub unsafe extern "C" fn wr_abort(qp: *mut ibv_qp_ex) {
    // SAFETY: per the contract.
    if let Some((_, ex)) = unsafe { from_ex(qp) } {
        ex.with(Staging::reset);
        ex.leave();
    }
}

/// `ibv_wr_send`.
///
/// # Safety
/// `qp` is NULL or one of our extended QPs.
pub unsafe extern "C" fn wr_send(qp: *mut ibv_qp_ex) {
    // SAFETY: per the contract.
    unsafe { build(qp, SendOp::Send) }
}

/// `ibv_wr_send_inv`: a SEND whose receiver invalidates `rkey`.
///
/// # Safety
/// `qp` is NULL or one of our extended QPs.
pub unsafe extern "C" fn wr_send_inv(qp: *mut ibv_qp_ex, rkey: u32) {
    // SAFETY: per the contract.
    unsafe { build(qp, SendOp::SendWithInv(rkey)) }
}

/// `ibv_wr_local_inv`.
///
/// # Safety
/// `qp` is NULL or one of our extended QPs.
pub unsafe extern "C" fn wr_local_inv(qp: *mut ibv_qp_ex, rkey: u32) {
    let op = SendOp::LocalInv(rkey);
    // SAFETY: per the contract.
    unsafe { build_with(qp, |s, wr_id, flags, _| s.begin_local(wr_id, flags, op)) }
}

/// `ibv_wr_bind_mw`: binds `mw` to `info` under `rkey`'s key byte (a
/// window or MR of another context fails the batch with EINVAL).
///
/// # Safety
/// `qp` is NULL or one of our extended QPs; `mw` and `info` (and its MR)
/// NULL or live.
pub unsafe extern "C" fn wr_bind_mw(
    qp: *mut ibv_qp_ex,
    mw: *mut ibv_mw,
    rkey: u32,
    info: *const ibv_mw_bind_info,
) {
    let stage = |s: &mut Staging, wr_id, flags, ctx| {
        // SAFETY: per the contract.
        let bind = unsafe { info.as_ref() }
            .ok_or(libc::EINVAL)
            // SAFETY: per the contract.
            .and_then(|i| unsafe { crate::mw::mw_bind(ctx, mw, rkey, i) });
        match bind {
            Ok(b) => s.begin_local(wr_id, flags, SendOp::BindMw(b)),
            Err(e) => s.fail(e),
        }
    };
    // SAFETY: per the contract.
    unsafe { build_with(qp, stage) }
}

/// `ibv_wr_send_imm` (`imm` in network order, as in `ibv_send_wr`).
///
/// # Safety
/// `qp` is NULL or one of our extended QPs.
pub unsafe extern "C" fn wr_send_imm(qp: *mut ibv_qp_ex, imm: __be32) {
    // SAFETY: per the contract.
    unsafe { build(qp, SendOp::SendWithImm(u32::from_be(imm))) }
}

/// `ibv_wr_rdma_write`.
///
/// # Safety
/// `qp` is NULL or one of our extended QPs.
pub unsafe extern "C" fn wr_rdma_write(qp: *mut ibv_qp_ex, rkey: u32, remote_addr: u64) {
    // SAFETY: per the contract.
    unsafe { build(qp, SendOp::RdmaWrite { remote_addr, rkey }) }
}

/// `ibv_wr_rdma_write_imm`.
///
/// # Safety
/// `qp` is NULL or one of our extended QPs.
pub unsafe extern "C" fn wr_rdma_write_imm(
    qp: *mut ibv_qp_ex,
    rkey: u32,
    remote_addr: u64,
    imm: __be32,
) {
    let op = SendOp::RdmaWriteWithImm {
        remote_addr,
        rkey,
        imm: u32::from_be(imm),
    };
    // SAFETY: per the contract.
    unsafe { build(qp, op) }
}

/// `ibv_wr_rdma_read`.
///
/// # Safety
/// `qp` is NULL or one of our extended QPs.
pub unsafe extern "C" fn wr_rdma_read(qp: *mut ibv_qp_ex, rkey: u32, remote_addr: u64) {
    // SAFETY: per the contract.
    unsafe { build(qp, SendOp::RdmaRead { remote_addr, rkey }) }
}

/// `ibv_wr_atomic_cmp_swp`.
///
/// # Safety
/// `qp` is NULL or one of our extended QPs.
pub unsafe extern "C" fn wr_atomic_cmp_swp(
    qp: *mut ibv_qp_ex,
    rkey: u32,
    remote_addr: u64,
    compare: u64,
    swap: u64,
) {
    let op = SendOp::AtomicCmpSwap {
        remote_addr,
        rkey,
        compare,
        swap,
    };
    // SAFETY: per the contract.
    unsafe { build(qp, op) }
}

/// `ibv_wr_atomic_fetch_add`.
///
/// # Safety
/// `qp` is NULL or one of our extended QPs.
pub unsafe extern "C" fn wr_atomic_fetch_add(
    qp: *mut ibv_qp_ex,
    rkey: u32,
    remote_addr: u64,
    add: u64,
) {
    let op = SendOp::AtomicFetchAdd {
        remote_addr,
        rkey,
        add,
    };
    // SAFETY: per the contract.
    unsafe { build(qp, op) }
}

/// `ibv_wr_set_sge`.
///
/// # Safety
/// `qp` is NULL or one of our extended QPs.
pub unsafe extern "C" fn wr_set_sge(qp: *mut ibv_qp_ex, lkey: u32, addr: u64, length: u32) {
    // SAFETY: per the contract.
    if let Some((_, ex)) = unsafe { from_ex(qp) } {
        ex.with(|s| s.set_sges(&[Sge { addr, length, lkey }]));
    }
}

/// `ibv_wr_set_sge_list`.
///
/// # Safety
/// `qp` is NULL or one of our extended QPs; `sg_list` readable for
/// `num_sge` entries.
pub unsafe extern "C" fn wr_set_sge_list(
    qp: *mut ibv_qp_ex,
    num_sge: usize,
    sg_list: *const ibv_sge,
) {
    // SAFETY: per the contract.
    let Some((_, ex)) = (unsafe { from_ex(qp) }) else {
        return;
    };
    if num_sge > MAX_SGE || (num_sge > 0 && sg_list.is_null()) {
        ex.with(|s| s.set_sges(&[Sge::default(); MAX_SGE + 1]));
        return;
    }
    let mut sges = [Sge::default(); MAX_SGE];
    for (i, d) in sges.iter_mut().enumerate().take(num_sge) {
        // SAFETY: i < num_sge (contract).
        let g = unsafe { &*sg_list.add(i) };
        *d = Sge {
            addr: g.addr,
            length: g.length,
            lkey: g.lkey,
        };
    }
    ex.with(|s| s.set_sges(&sges[..num_sge]));
}

/// `ibv_wr_set_ud_addr`.
///
/// # Safety
/// `qp` is NULL or one of our extended QPs; `ah` NULL or a live AH.
pub unsafe extern "C" fn wr_set_ud_addr(
    qp: *mut ibv_qp_ex,
    ah: *mut ibv_ah,
    remote_qpn: u32,
    remote_qkey: u32,
) {
    // SAFETY: per the contract.
    let Some((o, ex)) = (unsafe { from_ex(qp) }) else {
        return;
    };
    // SAFETY: per the contract.
    let dest = unsafe { crate::ah::from_ibv(ah) }
        .filter(|a| a.ibv_ah.context == o.vqp.__bindgen_anon_1.qp.context)
        .map(|a| UdDest {
            remote_qpn,
            remote_qkey,
            ..a.dest
        });
    ex.with(|s| s.set_ud_addr(dest));
}

/// Most inline buffers one call takes (the total is at most
/// `MAX_INLINE_DATA` bytes anyway).
const MAX_INLINE_BUFS: usize = 16;

/// `ibv_wr_set_inline_data`.
///
/// # Safety
/// `qp` is NULL or one of our extended QPs; `addr` readable for `length`
/// bytes.
pub unsafe extern "C" fn wr_set_inline_data(
    qp: *mut ibv_qp_ex,
    addr: *mut core::ffi::c_void,
    length: usize,
) {
    let b = ibv_data_buf { addr, length };
    // SAFETY: per the contract; one buffer.
    unsafe { wr_set_inline_data_list(qp, 1, &b) }
}

/// `ibv_wr_set_inline_data_list`.
///
/// # Safety
/// `qp` is NULL or one of our extended QPs; `buf_list` readable for
/// `num_buf` entries, each readable for its length.
pub unsafe extern "C" fn wr_set_inline_data_list(
    qp: *mut ibv_qp_ex,
    num_buf: usize,
    buf_list: *const ibv_data_buf,
) {
    // SAFETY: per the contract.
    let Some((_, ex)) = (unsafe { from_ex(qp) }) else {
        return;
    };
    if num_buf > 0 && buf_list.is_null() {
        ex.with(|s| s.set_inline(&[&[0u8; MAX_INLINE_DATA as usize + 1]]));
        return;
    }
    let mut total = 0usize;
    let mut bufs: [&[u8]; MAX_INLINE_BUFS] = [&[]; MAX_INLINE_BUFS];
    let mut k = 0;
    for i in 0..num_buf {
        // SAFETY: i < num_buf (contract).
        let b = unsafe { &*buf_list.add(i) };
        if b.length == 0 {
            continue;
        }
        total = total.saturating_add(b.length);
        if k == MAX_INLINE_BUFS || total > MAX_INLINE_DATA as usize || b.addr.is_null() {
            // Too much: let the staging record the error.
            ex.with(|s| s.set_inline(&[&[0u8; MAX_INLINE_DATA as usize + 1]]));
            return;
        }
        // SAFETY: the application's buffer, readable for its length during
        // this call (the inline setter copies now).
        bufs[k] = unsafe { core::slice::from_raw_parts(b.addr.cast::<u8>(), b.length) };
        k += 1;
    }
    ex.with(|s| s.set_inline(&bufs[..k]));
}

/// Fills the builders for the requested operations, the setters and the
/// batch functions.
fn set_ops(x: &mut ibv_qp_ex, ops: u64) {
    let has = |f: u32| ops & u64::from(f) != 0;
    if has(IBV_QP_EX_WITH_SEND) {
        x.wr_send = Some(wr_send);
    }
    if has(IBV_QP_EX_WITH_SEND_WITH_IMM) {
        x.wr_send_imm = Some(wr_send_imm);
    }
    if has(IBV_QP_EX_WITH_SEND_WITH_INV) {
        x.wr_send_inv = Some(wr_send_inv);
    }
    if has(IBV_QP_EX_WITH_BIND_MW) {
        x.wr_bind_mw = Some(wr_bind_mw);
    }
    if has(IBV_QP_EX_WITH_LOCAL_INV) {
        x.wr_local_inv = Some(wr_local_inv);
    }
    if has(IBV_QP_EX_WITH_RDMA_WRITE) {
        x.wr_rdma_write = Some(wr_rdma_write);
    }
    if has(IBV_QP_EX_WITH_RDMA_WRITE_WITH_IMM) {
        x.wr_rdma_write_imm = Some(wr_rdma_write_imm);
    }
    if has(IBV_QP_EX_WITH_RDMA_READ) {
        x.wr_rdma_read = Some(wr_rdma_read);
    }
    if has(IBV_QP_EX_WITH_ATOMIC_CMP_AND_SWP) {
        x.wr_atomic_cmp_swp = Some(wr_atomic_cmp_swp);
    }
    if has(IBV_QP_EX_WITH_ATOMIC_FETCH_AND_ADD) {
        x.wr_atomic_fetch_add = Some(wr_atomic_fetch_add);
    }
    x.wr_set_sge = Some(wr_set_sge);
    x.wr_set_sge_list = Some(wr_set_sge_list);
    x.wr_set_ud_addr = Some(wr_set_ud_addr);
    x.wr_set_inline_data = Some(wr_set_inline_data);
    x.wr_set_inline_data_list = Some(wr_set_inline_data_list);
    x.wr_start = Some(wr_start);
    x.wr_complete = Some(wr_complete);
    x.wr_abort = Some(wr_abort);
}

/// Marks `vqp` as extended for the loaded libibverbs (see the module
/// comment on the two layouts).
///
/// # Safety
/// `vqp` is a live verbs_qp of ours, not yet returned to the application.
unsafe fn mark_ex(vqp: *mut verbs_qp) {
    // SAFETY: vqp is live and ours (contract); offset 352 is inside it (a
    // u32-aligned slot: v44's comp_mask, v55's unused wr_flush).
    unsafe {
        (*vqp).comp_mask |= VERBS_QP_EX;
        let v44 = vqp.cast::<u8>().add(V44_VERBS_QP_COMP_MASK).cast::<u32>();
        v44.write(v44.read() | VERBS_QP_EX);
    }
}

fn create(attr: *mut ibv_qp_init_attr_ex) -> Result<*mut ibv_qp, Errno> {
    // SAFETY: attr non-null (caller) and the application's.
    let a = unsafe { &*attr };
    check_qp_init_attr_ex(a)?;
    let ops = if a.comp_mask & IBV_QP_INIT_ATTR_SEND_OPS_FLAGS != 0 {
        a.send_ops_flags
    } else {
        0
    };
    // ibv_qp_init_attr_ex begins with ibv_qp_init_attr (libibverbs itself
    // casts it so in ibv_create_qp_ex).
    let qp = crate::qp::create(a.pd, attr.cast::<ibv_qp_init_attr>())?;
    if ops != 0 {
        // SAFETY: qp is the fresh, unpublished OmxQp create() returned;
        // attr.cap holds the granted send queue depth.
        unsafe {
            let o = qp.cast::<OmxQp>();
            (*o).ex = Some(Box::new(QpEx::new((*attr).cap.max_send_wr)));
            set_ops(&mut (*o).vqp.__bindgen_anon_1.qp_ex, ops);
            mark_ex(ptr::addr_of_mut!((*o).vqp));
        }
    }
    Ok(qp)
}

/// `create_qp_ex`: ibv_create_qp_ex() with more than IBV_QP_INIT_ATTR_PD
/// (libibverbs sends the plain case to `create_qp`).
///
/// # Safety
/// `ctx` NULL or ours; `attr` NULL or valid, its PD and CQs ours.
pub unsafe extern "C" fn create_qp_ex(
    ctx: *mut ibv_context,
    attr: *mut ibv_qp_init_attr_ex,
) -> *mut ibv_qp {
    if ctx.is_null() || attr.is_null() {
        Errno::EINVAL.set();
        return ptr::null_mut();
    }
    guard("create_qp_ex", ptr::null_mut(), || to_ptr(create(attr)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use omx_verbs::{Cq, Qp, QpCaps};
    use omx_wire::Qpn;
    use std::sync::Arc;

    fn attr(mask: u32, ops: u64) -> ibv_qp_init_attr_ex {
        ibv_qp_init_attr_ex {
            qp_type: IBV_QPT_RC,
            comp_mask: mask,
            pd: ptr::NonNull::dangling().as_ptr(),
            send_ops_flags: ops,
            ..Default::default()
        }
    }

    #[test]
    fn init_attr_checks() {
        let pd_ops = IBV_QP_INIT_ATTR_PD | IBV_QP_INIT_ATTR_SEND_OPS_FLAGS;
        assert_eq!(
            check_qp_init_attr_ex(&attr(pd_ops, SUPPORTED_SEND_OPS)),
            Ok(())
        );
        let atomics = u64::from(IBV_QP_EX_WITH_ATOMIC_FETCH_AND_ADD);
        assert_eq!(check_qp_init_attr_ex(&attr(pd_ops, atomics)), Ok(()));
        let atomic_write = u64::from(IBV_QP_EX_WITH_ATOMIC_WRITE);
        assert_eq!(
            check_qp_init_attr_ex(&attr(pd_ops, atomic_write)),
            Err(Errno::EOPNOTSUPP)
        );
        let flush = u64::from(IBV_QP_EX_WITH_FLUSH);
        assert_eq!(
            check_qp_init_attr_ex(&attr(pd_ops, flush)),
            Err(Errno::EOPNOTSUPP)
        );
        assert_eq!(
            check_qp_init_attr_ex(&attr(pd_ops, 1 << 40)),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            check_qp_init_attr_ex(&attr(pd_ops | 1 << 20, 4)),
            Err(Errno::EINVAL)
        );
        let xrcd = IBV_QP_INIT_ATTR_PD | IBV_QP_INIT_ATTR_XRCD;
        assert_eq!(
            check_qp_init_attr_ex(&attr(xrcd, 0)),
            Err(Errno::EOPNOTSUPP)
        );
        assert_eq!(
            check_qp_init_attr_ex(&attr(IBV_QP_INIT_ATTR_SEND_OPS_FLAGS, 4)),
            Err(Errno::EINVAL)
        );
        let mut a = attr(pd_ops | IBV_QP_INIT_ATTR_CREATE_FLAGS, 4);
        assert_eq!(check_qp_init_attr_ex(&a), Ok(()));
        a.create_flags = 1;
        assert_eq!(check_qp_init_attr_ex(&a), Err(Errno::EOPNOTSUPP));
        // UD: SEND with or without immediate only.
        let mut ud = attr(
            pd_ops,
            u64::from(IBV_QP_EX_WITH_SEND | IBV_QP_EX_WITH_SEND_WITH_IMM),
        );
        ud.qp_type = IBV_QPT_UD;
        assert_eq!(check_qp_init_attr_ex(&ud), Ok(()));
        ud.send_ops_flags |= u64::from(IBV_QP_EX_WITH_RDMA_WRITE);
        assert_eq!(check_qp_init_attr_ex(&ud), Err(Errno::EOPNOTSUPP));
        // UC: SEND and WRITE (with immediate), no READ, no atomics
        // (perftest -c UC creates its QPs this way).
        let mut uc = attr(pd_ops, SUPPORTED_SEND_OPS);
        uc.qp_type = IBV_QPT_UC;
        assert_eq!(check_qp_init_attr_ex(&uc), Err(Errno::EOPNOTSUPP));
        uc.send_ops_flags = UC_SEND_OPS | u64::from(IBV_QP_EX_WITH_ATOMIC_CMP_AND_SWP);
        assert_eq!(check_qp_init_attr_ex(&uc), Err(Errno::EOPNOTSUPP));
        uc.send_ops_flags = UC_SEND_OPS;
        assert_eq!(check_qp_init_attr_ex(&uc), Ok(()));
    }

    fn qp(depth: u32) -> Qp {
        let cq = Arc::new(Cq::new(1, 64));
        Qp::new(
            Qpn::new(0x1001),
            1,
            QpCaps {
                sq_depth: depth,
                rq_depth: 4,
                ..Default::default()
            },
            cq.clone(),
            cq,
            false,
        )
    }

    fn to_init(q: &Qp) {
        let mut g = q.lock();
        let [init, ..] = omx_engine::testing::Conn::new(0x1001, 0x2001).steps();
        g.modify(&init).unwrap();
    }

    #[test]
    fn batch_posts_all_or_nothing() {
        let q = qp(2);
        let mut s = Staging::new(2);
        s.begin(1, IBV_SEND_SIGNALED, SendOp::Send);
        s.set_sges(&[Sge {
            addr: 0x1000,
            length: 8,
            lkey: 0x101,
        }]);
        // In RESET posting is refused, and nothing stays staged.
        assert_eq!(s.complete(&mut q.lock(), false), libc::EINVAL);
        assert!(s.is_empty());
        to_init(&q);
        s.begin(1, 0, SendOp::Send);
        s.begin(
            2,
            0,
            SendOp::RdmaRead {
                remote_addr: 9,
                rkey: 3,
            },
        );
        assert_eq!(s.len(), 2);
        assert_eq!(s.complete(&mut q.lock(), false), 0);
        assert_eq!(q.lock().eng.sq_free(), 0);
        // A third WR does not fit: the whole batch fails.
        s.begin(3, 0, SendOp::Send);
        assert_eq!(s.complete(&mut q.lock(), false), libc::ENOMEM);
    }

    /// A batch whose second WR is an atomic with a 4-byte result buffer:
    /// EINVAL, and the SEND before it is not posted either (the engine's
    /// refusal used to come after the SEND had been posted).
    #[test]
    fn a_bad_atomic_refuses_the_whole_batch() {
        let q = qp(4);
        to_init(&q);
        let mut s = Staging::new(4);
        let sge = |length| Sge {
            addr: 0x1000,
            length,
            lkey: 0x101,
        };
        s.begin(1, 0, SendOp::Send);
        s.set_sges(&[sge(16)]);
        let fadd = SendOp::AtomicFetchAdd {
            remote_addr: 0x2000,
            rkey: 3,
            add: 1,
        };
        s.begin(2, 0, fadd);
        s.set_sges(&[sge(4)]);
        assert_eq!(s.complete(&mut q.lock(), false), libc::EINVAL);
        assert_eq!(q.lock().eng.sq_free(), 4, "nothing posted");
        s.begin(1, 0, SendOp::Send);
        s.set_sges(&[sge(16)]);
        s.begin(2, 0, fadd);
        s.set_sges(&[sge(8)]);
        assert_eq!(s.complete(&mut q.lock(), false), 0);
        assert_eq!(q.lock().eng.sq_free(), 2);
    }

    #[test]
    fn builder_errors_surface_at_complete() {
        let q = qp(4);
        to_init(&q);
        let mut s = Staging::new(1);
        s.begin(1, 0, SendOp::Send);
        s.begin(2, 0, SendOp::Send); // beyond the staging depth
        assert_eq!(s.complete(&mut q.lock(), false), libc::ENOMEM);
        s.set_sges(&[]); // setter without builder
        assert_eq!(s.complete(&mut q.lock(), false), libc::EINVAL);
        s.begin(1, 0, SendOp::Send);
        s.set_sges(&[Sge::default(); MAX_SGE + 1]);
        assert_eq!(s.complete(&mut q.lock(), false), libc::EINVAL);
        s.begin(
            1,
            0,
            SendOp::RdmaRead {
                remote_addr: 0,
                rkey: 1,
            },
        );
        s.set_inline(&[b"abc"]); // inline READ
        assert_eq!(s.complete(&mut q.lock(), false), libc::EINVAL);
        s.begin(1, 0, SendOp::Send);
        s.set_inline(&[&[0u8; MAX_INLINE_DATA as usize + 1]]);
        assert_eq!(s.complete(&mut q.lock(), false), libc::EINVAL);
        assert_eq!(q.lock().eng.sq_free(), 4);
    }

    #[test]
    fn ud_batches_need_a_destination_per_wr_and_fit_the_mtu() {
        let cq = Arc::new(Cq::new(1, 64));
        let port = omx_verbs::UdPort {
            mac: [2, 0, 0, 0, 0, 1],
            gid: [0xfe; 16],
            gid_v4: None,
            mtu: omx_engine::PathMtu::Mtu1024,
        };
        let caps = QpCaps {
            sq_depth: 4,
            rq_depth: 4,
            ..Default::default()
        };
        let q = Qp::new_ud(Qpn::new(0x1001), 1, caps, port, cq.clone(), cq, false);
        let init = omx_engine::QpAttr {
            state: Some(omx_engine::QpState::Init),
            qkey: Some(0x11),
            extra_mask: omx_engine::attr_mask::PKEY_INDEX | omx_engine::attr_mask::PORT,
            ..Default::default()
        };
        q.lock().modify(&init).unwrap();
        let d = UdDest {
            dmac: [2, 0, 0, 0, 0, 2],
            remote_qpn: 0x2001,
            remote_qkey: 0x11,
            ..Default::default()
        };
        let sge = |len| Sge {
            addr: 0x1000,
            length: len,
            lkey: 0x101,
        };
        let mut s = Staging::new(4);
        // No destination on the second WR: nothing is posted.
        s.begin(1, 0, SendOp::Send);
        s.set_ud_addr(Some(d));
        s.set_sges(&[sge(8)]);
        s.begin(2, 0, SendOp::Send);
        s.set_sges(&[sge(8)]);
        assert_eq!(s.complete(&mut q.lock(), false), libc::EINVAL);
        assert_eq!(q.lock().eng.sq_free(), 4);
        // An AH of another context: EINVAL.
        s.begin(1, 0, SendOp::Send);
        s.set_ud_addr(None);
        assert_eq!(s.complete(&mut q.lock(), false), libc::EINVAL);
        // Larger than the MTU (inline or not): nothing is posted.
        s.begin(1, 0, SendOp::Send);
        s.set_sges(&[sge(8)]);
        s.set_ud_addr(Some(d));
        s.begin(2, 0, SendOp::Send);
        s.set_ud_addr(Some(d));
        s.set_sges(&[sge(1025)]);
        assert_eq!(s.complete(&mut q.lock(), false), libc::EINVAL);
        assert_eq!(q.lock().eng.sq_free(), 4);
        // The setter before or after the data; both post.
        s.begin(1, 0, SendOp::Send);
        s.set_sges(&[sge(1024)]);
        s.set_ud_addr(Some(d));
        s.begin(2, 0, SendOp::SendWithImm(3));
        s.set_ud_addr(Some(d));
        s.set_inline(&[b"abc"]);
        assert_eq!(s.complete(&mut q.lock(), false), 0);
        assert_eq!(q.lock().eng.sq_free(), 2);
        // A destination on a connected QP's WR: EINVAL.
        let rc = qp(2);
        to_init(&rc);
        s.begin(1, 0, SendOp::Send);
        s.set_ud_addr(Some(d));
        assert_eq!(s.complete(&mut rc.lock(), false), libc::EINVAL);
        // A setter with no WR begun.
        s.set_ud_addr(Some(d));
        assert_eq!(s.complete(&mut rc.lock(), false), libc::EINVAL);
    }

    /// docs/provider.md "Memory per QP": an extended QP's staging holds
    /// one `Staged` and one inline slot per send slot, allocated at
    /// creation (building a WR never allocates).
    #[test]
    fn staging_holds_its_inline_slots_from_creation() {
        let mut s = Staging::new(128);
        assert_eq!(s.inline.len(), 128 * MAX_INLINE_DATA as usize);
        assert!(size_of::<Staged>() <= 256, "{}", size_of::<Staged>());
        assert!(size_of::<OmxQp>() <= 640, "{}", size_of::<OmxQp>());
        s.begin(1, 0, SendOp::Send);
        s.set_inline(&[b"abc"]);
        assert_eq!(s.inline.len(), 128 * MAX_INLINE_DATA as usize);
        assert_eq!(&s.inline[..3], b"abc");
    }

    #[test]
    fn inline_data_is_copied_at_the_setter() {
        let mut s = Staging::new(2);
        let mut buf = *b"hello";
        s.begin(
            7,
            IBV_SEND_SIGNALED | IBV_SEND_SOLICITED,
            SendOp::SendWithImm(5),
        );
        s.set_inline(&[&buf[..2], &buf[2..]]);
        buf.fill(0);
        s.begin(
            8,
            0,
            SendOp::RdmaWrite {
                remote_addr: 1,
                rkey: 2,
            },
        );
        s.set_inline(&[b"xy"]);
        assert_eq!(s.err, 0);
        assert_eq!(&s.inline[..5], b"hello");
        let m = MAX_INLINE_DATA as usize;
        assert_eq!(&s.inline[m..m + 2], b"xy");
        assert_eq!(s.wrs[0].inline_len, Some(5));
        assert!(s.wrs[0].wr.signaled && s.wrs[0].wr.solicited);
        assert_eq!(s.wrs[0].wr.op, SendOp::SendWithImm(5));
        assert_eq!(s.wrs[1].wr.wr_id, 8);
        s.reset();
        assert!(s.is_empty());
    }

    #[test]
    fn layout_offsets() {
        assert_eq!(offset_of!(ibv_qp_ex, wr_abort) + 16, V44_VERBS_QP_COMP_MASK);
        let mut v = verbs_qp::default();
        // SAFETY: v is a live local verbs_qp.
        unsafe { mark_ex(&mut v) };
        assert_eq!(v.comp_mask, VERBS_QP_EX);
        // SAFETY: reading the u32 at the v44 comp_mask offset of a local.
        let v44 = unsafe {
            (&v as *const verbs_qp)
                .cast::<u8>()
                .add(V44_VERBS_QP_COMP_MASK)
                .cast::<u32>()
                .read()
        };
        assert_eq!(v44, VERBS_QP_EX);
    }
}
