//! Completion queues.
//!
//! The kernel shadow CQ exists so that completion channels work: it carries
//! `user_handle = (ibv_cq *)` and the channel fd, and the progress thread
//! asks the kernel module to raise the event (OMX_METHOD_CQ_NOTIFY). The
//! ring itself is an omx-verbs-objects `Cq` sized at creation.
//!
//! Ownership: [`create_cq`] Box-allocates an [`OmxCq`]; libibverbs then runs
//! `verbs_init_cq` (context, channel refcount, mutex/cond). [`destroy_cq`]
//! frees it after `ibv_cmd_destroy_cq`, which blocks until the application
//! has acked every event the kernel delivered. The ring is an `Arc` shared
//! with the QPs that use it and with the endpoint's CQ list (removed before
//! the kernel object goes, so no notify is issued for a dead handle by us);
//! the kernel refuses to destroy a CQ still used by a QP (EBUSY).
//!
//! Extended CQs (`ibv_create_cq_ex`, [`create_cq_ex`]) are the same object:
//! the `verbs_cq` union holds `ibv_cq_ex`, whose first fields are the
//! `ibv_cq`, so `ibv_poll_cq` and the `ibv_start_poll` family both work on
//! it. `start_poll`/`next_poll` move one completion out of the ring into
//! [`OmxCq::cur`], where the `ibv_wc_read_*` functions find it; with
//! IBV_WC_EX_WITH_COMPLETION_TIMESTAMP the ring stamps each completion with
//! [`crate::clock::precise_ns`] (CLOCK_MONOTONIC, ns; the kernel module reports
//! `hca_core_clock` 1 GHz and a 64-bit `completion_timestamp_mask`), with
//! IBV_WC_EX_WITH_COMPLETION_TIMESTAMP_WALLCLOCK with
//! [`crate::clock::wallclock_ns`] (CLOCK_REALTIME, ns), both read when the
//! completion is queued.
//!
//! Locks: the ring's own spin lock (see omx-verbs-objects); `cur`, a leaf
//! spin lock taken for the length of one `start/next/end_poll` or `read_*`
//! call (the polling thread is the only user; the lock only keeps a
//! misbehaving application from racing itself into undefined behaviour,
//! and being a spin lock it never puts a poller to sleep).

use core::mem::size_of;
use core::ptr;
use std::sync::Arc;

use omx_verbs::lock::SpinLock;

use omx_engine::WorkCompletion;
use omx_rdma_sys::*;
use omx_verbs::{Clock, Cq, Stamp};

use crate::errno::{to_ptr, to_ret, Errno};
use crate::guard::guard;
use crate::runtime::Runtime;

#[repr(C)]
pub struct OmxCq {
    /// `ibv_cq` for `ibv_create_cq`, `ibv_cq_ex` for `ibv_create_cq_ex`
    /// (the former is a prefix of the latter).
    pub vcq: verbs_cq,
    pub cq: Option<Arc<Cq>>,
    pub rt: Option<Arc<Runtime>>,
    /// The completion `start_poll`/`next_poll` made current (cq_ex only),
    /// with its timestamps.
    pub cur: SpinLock<Option<(WorkCompletion, Stamp)>>,
}

const _: () = assert!(core::mem::offset_of!(OmxCq, vcq) == 0);

impl OmxCq {
    fn new(rt: Option<Arc<Runtime>>) -> Self {
        OmxCq {
            vcq: verbs_cq::default(),
            cq: None,
            rt,
            cur: SpinLock::new(None),
        }
    }

    fn ibv_cq_ptr(&mut self) -> *mut ibv_cq {
        // Taking the address of a union member reads nothing.
        ptr::addr_of_mut!(self.vcq.__bindgen_anon_1.cq)
    }

    fn handle(&self) -> u32 {
        // SAFETY: `handle` lies in the common prefix of ibv_cq and
        // ibv_cq_ex, written by ibv_cmd_create_cq(_ex).
        unsafe { self.vcq.__bindgen_anon_1.cq.handle }
    }
}

/// # Safety
/// `cq` is NULL or a CQ returned by [`create_cq`].
pub unsafe fn from_ibv<'a>(cq: *mut ibv_cq) -> Option<&'a OmxCq> {
    // SAFETY: ibv_cq is the first field of the repr(C) OmxCq.
    unsafe { cq.cast::<OmxCq>().as_ref() }
}

fn create(
    ctx: *mut ibv_context,
    cqe: i32,
    channel: *mut ibv_comp_channel,
    vector: i32,
) -> Result<*mut ibv_cq, Errno> {
    if cqe < 1 || cqe as u32 > OMX_MAX_CQE {
        return Err(Errno::EINVAL);
    }
    // The ring first: nothing to undo in the kernel if it cannot be had.
    let ring = new_ring(cqe as usize, None)?;
    // SAFETY: ctx is one of our contexts (caller).
    let rt = unsafe { crate::context::from_ibv(ctx) }.and_then(|c| c.rt.clone());
    let cq = Box::into_raw(Box::new(OmxCq::new(rt)));
    let mut cmd = ibv_create_cq::default();
    let mut resp = ib_uverbs_create_cq_resp::default();
    // SAFETY: ctx is ours; channel is NULL or the application's live
    // channel; cq is a fresh allocation whose address becomes the kernel's
    // user_handle and stays valid until destroy_cq.
    let ret = unsafe {
        ibv_cmd_create_cq(
            ctx,
            cqe,
            channel,
            vector,
            (*cq).ibv_cq_ptr(),
            &mut cmd,
            size_of::<ibv_create_cq>(),
            &mut resp,
            size_of::<ib_uverbs_create_cq_resp>(),
        )
    };
    if let Err(e) = Errno::check(ret) {
        // SAFETY: never published.
        drop(unsafe { Box::from_raw(cq) });
        return Err(e.note_quota("ibv_create_cq", "max_cqs_per_user"));
    }
    // rdma_omx grants exactly the cqe asked for (resp.cqe == cqe).
    debug_assert!(resp.cqe as usize <= ring.capacity());
    // SAFETY: cq is ours, not yet returned to the application.
    unsafe { attach_ring(cq, ring) };
    Ok(cq.cast())
}

/// The ring of a CQ of `cqe` entries, or ENOMEM.
fn new_ring(cqe: usize, clock: Option<Clock>) -> Result<Cq, Errno> {
    Cq::try_with_clock(0, cqe, clock).ok_or(Errno::ENOMEM)
}

/// Gives `ring` (from [`new_ring`]) to a CQ the kernel has just accepted
/// and enters it in the context's CQ list.
///
/// # Safety
/// `cq` is a live OmxCq not yet returned to the application.
unsafe fn attach_ring(cq: *mut OmxCq, mut ring: Cq) {
    // SAFETY: per the contract, nobody else sees cq yet.
    let c = unsafe { &mut *cq };
    ring.handle = c.handle();
    let ring = Arc::new(ring);
    if let Some(rt) = &c.rt {
        rt.ep.insert_cq(ring.clone());
    }
    c.cq = Some(ring);
}

/// wc_flags `ibv_create_cq_ex` accepts: the standard fields and both
/// completion timestamps (no CVLAN, flow tag or tag matching: no VLANs
/// seen, no flow steering, no tag-matching SRQs).
pub const SUPPORTED_WC_FLAGS: u64 = (IBV_WC_STANDARD_FLAGS
    | IBV_WC_EX_WITH_COMPLETION_TIMESTAMP
    | IBV_WC_EX_WITH_COMPLETION_TIMESTAMP_WALLCLOCK) as u64;

/// Checks `ibv_cq_init_attr_ex` for what we implement.
pub fn check_cq_attr_ex(a: &ibv_cq_init_attr_ex) -> Result<(), Errno> {
    if a.wc_flags & !SUPPORTED_WC_FLAGS != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    // Unknown comp_mask bits give EOPNOTSUPP, as in ibv_cmd_create_cq_ex;
    // so does IBV_CQ_INIT_ATTR_MASK_PD (no parent domains here).
    if a.comp_mask & !IBV_CQ_INIT_ATTR_MASK_FLAGS != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    // SINGLE_THREADED is a hint we may ignore; IGNORE_OVERRUN would need
    // a ring that overwrites.
    if a.comp_mask & IBV_CQ_INIT_ATTR_MASK_FLAGS != 0
        && a.flags & !IBV_CREATE_CQ_ATTR_SINGLE_THREADED != 0
    {
        return Err(Errno::EOPNOTSUPP);
    }
    if a.cqe < 1 || a.cqe > OMX_MAX_CQE {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

fn create_ex(
    ctx: *mut ibv_context,
    attr: &mut ibv_cq_init_attr_ex,
) -> Result<*mut ibv_cq_ex, Errno> {
    check_cq_attr_ex(attr)?;
    let has = |f: u32| attr.wc_flags & u64::from(f) != 0;
    let clock = crate::clock::cq_clock(
        has(IBV_WC_EX_WITH_COMPLETION_TIMESTAMP),
        has(IBV_WC_EX_WITH_COMPLETION_TIMESTAMP_WALLCLOCK),
    );
    let ring = new_ring(attr.cqe as usize, clock)?;
    // SAFETY: ctx is one of our contexts (caller).
    let rt = unsafe { crate::context::from_ibv(ctx) }.and_then(|c| c.rt.clone());
    let cq = Box::into_raw(Box::new(OmxCq::new(rt)));
    let mut cmd = ibv_create_cq_ex::default();
    let mut resp = ib_uverbs_ex_create_cq_resp::default();
    // SAFETY: ctx is ours; attr is the application's (its channel NULL or
    // live); cq is a fresh allocation whose address becomes the kernel's
    // user_handle and stays valid until destroy_cq. The kernel is told
    // about the timestamp flag (rdma_omx accepts it).
    let ret = unsafe {
        ibv_cmd_create_cq_ex(
            ctx,
            attr,
            ptr::addr_of_mut!((*cq).vcq),
            &mut cmd,
            size_of::<ibv_create_cq_ex>(),
            &mut resp,
            size_of::<ib_uverbs_ex_create_cq_resp>(),
            0,
        )
    };
    if let Err(e) = Errno::check(ret) {
        // SAFETY: never published.
        drop(unsafe { Box::from_raw(cq) });
        return Err(e.note_quota("ibv_create_cq", "max_cqs_per_user"));
    }
    debug_assert!(resp.base.cqe as usize <= ring.capacity());
    // SAFETY: cq is ours, not yet returned to the application.
    unsafe {
        attach_ring(cq, ring);
        set_ex_ops(&mut (*cq).vcq.__bindgen_anon_1.cq_ex);
    }
    // SAFETY: as above; cq_ex is at offset 0.
    Ok(unsafe { ptr::addr_of_mut!((*cq).vcq.__bindgen_anon_1.cq_ex) })
}

/// Fills the polling functions of an `ibv_cq_ex`. Every read function is
/// set, whether or not its flag was requested (reading an unrequested
/// field is undefined for the application, not a crash here).
fn set_ex_ops(x: &mut ibv_cq_ex) {
    x.start_poll = Some(start_poll);
    x.next_poll = Some(next_poll);
    x.end_poll = Some(end_poll);
    x.read_opcode = Some(read_opcode);
    x.read_vendor_err = Some(read_vendor_err);
    x.read_byte_len = Some(read_byte_len);
    x.read_imm_data = Some(read_imm_data);
    x.read_qp_num = Some(read_qp_num);
    x.read_src_qp = Some(read_src_qp);
    x.read_wc_flags = Some(read_wc_flags);
    x.read_slid = Some(read_slid);
    x.read_sl = Some(read_sl);
    x.read_dlid_path_bits = Some(read_dlid_path_bits);
    x.read_completion_ts = Some(read_completion_ts);
    x.read_completion_wallclock_ns = Some(read_completion_wallclock_ns);
}

/// `create_cq_ex`: ibv_create_cq_ex(). libibverbs has already refused
/// wc_flags outside IBV_CREATE_CQ_SUP_WC_FLAGS and runs `verbs_init_cq`
/// after we return.
///
/// # Safety
/// `ctx` is NULL or ours; `attr` NULL or valid.
pub unsafe extern "C" fn create_cq_ex(
    ctx: *mut ibv_context,
    attr: *mut ibv_cq_init_attr_ex,
) -> *mut ibv_cq_ex {
    if ctx.is_null() || attr.is_null() {
        Errno::EINVAL.set();
        return ptr::null_mut();
    }
    guard("create_cq_ex", ptr::null_mut(), || {
        // SAFETY: attr is valid and ours for the call (contract).
        to_ptr(create_ex(ctx, unsafe { &mut *attr }))
    })
}

/// # Safety
/// `cq` is NULL or an extended CQ of ours.
unsafe fn ex_from<'a>(cq: *mut ibv_cq_ex) -> Option<&'a OmxCq> {
    // SAFETY: ibv_cq_ex is at offset 0 of verbs_cq, itself at offset 0.
    unsafe { cq.cast::<OmxCq>().as_ref() }
}

/// Makes the next completion current; publishes wr_id/status in the
/// `ibv_cq_ex`. With `rx`, an empty ring makes us receive pending frames
/// (busy poll) first, as `poll_cq` does.
///
/// # Safety
/// `cq` is an extended CQ of ours.
unsafe fn advance(cq: *mut ibv_cq_ex, rx: bool) -> i32 {
    // SAFETY: per the contract.
    let Some(o) = (unsafe { ex_from(cq) }) else {
        return libc::EINVAL;
    };
    let Some(ring) = &o.cq else {
        return libc::EINVAL;
    };
    let mut next = ring.poll_one();
    if rx {
        if let (None, Some(rt)) = (next, &o.rt) {
            let d = rt.poll_rx();
            rt.after_drive(d);
            next = ring.poll_one();
        }
        if let Some(rt) = &o.rt {
            rt.app_polled(next.is_some());
        }
    }
    let mut cur = o.cur.lock();
    *cur = next;
    match next {
        Some((wc, _)) => {
            // SAFETY: cq is live; these two fields are the application's
            // view of the current completion, written by the poller only.
            unsafe {
                (*cq).wr_id = wc.wr_id;
                (*cq).status = wc.status as u32;
            }
            0
        }
        None => libc::ENOENT,
    }
}

/// `ibv_start_poll`: 0 with a current completion, ENOENT if there is none
/// (then `end_poll` must not be called), EINVAL for a nonzero comp_mask.
///
/// # Safety
/// `cq` is an extended CQ of ours; `attr` NULL or valid.
pub unsafe extern "C" fn start_poll(cq: *mut ibv_cq_ex, attr: *mut ibv_poll_cq_attr) -> i32 {
    // SAFETY: attr NULL or valid (contract).
    if let Some(a) = unsafe { attr.as_ref() } {
        if a.comp_mask != 0 {
            return libc::EINVAL;
        }
    }
    // SAFETY: per the contract.
    guard("start_poll", libc::EIO, || unsafe { advance(cq, true) })
}

/// `ibv_next_poll`: 0 or ENOENT (the caller still calls `end_poll`).
///
/// # Safety
/// `cq` is an extended CQ of ours, between start_poll and end_poll.
pub unsafe extern "C" fn next_poll(cq: *mut ibv_cq_ex) -> i32 {
    // SAFETY: per the contract.
    guard("next_poll", libc::EIO, || unsafe { advance(cq, false) })
}

/// `ibv_end_poll`: the completions taken are consumed.
///
/// # Safety
/// `cq` is an extended CQ of ours.
pub unsafe extern "C" fn end_poll(cq: *mut ibv_cq_ex) {
    // SAFETY: per the contract.
    if let Some(o) = unsafe { ex_from(cq) } {
        *o.cur.lock() = None;
    }
}

/// Reads a field of the current completion (0 when there is none).
///
/// # Safety
/// `cq` is NULL or an extended CQ of ours.
unsafe fn read_cur<T: Default>(
    cq: *mut ibv_cq_ex,
    f: impl FnOnce(&WorkCompletion, Stamp) -> T,
) -> T {
    // SAFETY: per the contract.
    let Some(o) = (unsafe { ex_from(cq) }) else {
        return T::default();
    };
    let cur = o.cur.lock();
    match &*cur {
        Some((wc, ts)) => f(wc, *ts),
        None => T::default(),
    }
}

macro_rules! cq_reader {
    ($(#[$doc:meta])* $name:ident -> $t:ty, |$w:ident, $ts:ident| $e:expr) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// `cq` is an extended CQ of ours.
        pub unsafe extern "C" fn $name(cq: *mut ibv_cq_ex) -> $t {
            // SAFETY: per the contract.
            unsafe { read_cur(cq, |$w, $ts| $e) }
        }
    };
}

cq_reader!(
    /// `ibv_wc_read_opcode`.
    read_opcode -> ibv_wc_opcode, |w, _t| w.opcode as u32
);
cq_reader!(
    /// `ibv_wc_read_vendor_err`: always 0.
    read_vendor_err -> u32, |_w, _t| 0
);
cq_reader!(
    /// `ibv_wc_read_byte_len`.
    read_byte_len -> u32, |w, _t| w.byte_len
);
cq_reader!(
    /// `ibv_wc_read_imm_data`: the immediate data in network order, or
    /// with IBV_WC_WITH_INV the invalidated rkey in host order (the
    /// `ibv_wc` union's two members, as mlx5 reads them).
    read_imm_data -> u32, |w, _t| w.inv.unwrap_or_else(|| w.imm.unwrap_or(0).to_be())
);
cq_reader!(
    /// `ibv_wc_read_qp_num`.
    read_qp_num -> u32, |w, _t| w.qp_num.value()
);
cq_reader!(
    /// `ibv_wc_read_src_qp`.
    read_src_qp -> u32, |w, _t| w.src_qp.value()
);
cq_reader!(
    /// `ibv_wc_read_wc_flags` ([`wc_flags`]).
    read_wc_flags -> u32, |w, _t| wc_flags(w)
);
cq_reader!(
    /// `ibv_wc_read_slid`: no LIDs on Ethernet, 0.
    read_slid -> u32, |_w, _t| 0
);
cq_reader!(
    /// `ibv_wc_read_sl`: the GRH's form for a UD receive (docs/wire.md
    /// §13.4), else 0.
    read_sl -> u8, |w, _t| w.sl
);
cq_reader!(
    /// `ibv_wc_read_dlid_path_bits`: 0.
    read_dlid_path_bits -> u8, |_w, _t| 0
);
cq_reader!(
    /// `ibv_wc_read_completion_ts`: CLOCK_MONOTONIC ns when the completion
    /// was queued (0 on a CQ created without the timestamp flag).
    read_completion_ts -> u64, |_w, t| t.ts
);
cq_reader!(
    /// `ibv_wc_read_completion_wallclock_ns`: CLOCK_REALTIME ns when the
    /// completion was queued (0 on a CQ created without the wall-clock
    /// flag).
    read_completion_wallclock_ns -> u64, |_w, t| t.wallclock_ns
);

/// # Safety
/// `ctx` is NULL or ours; `channel` NULL or live.
pub unsafe extern "C" fn create_cq(
    ctx: *mut ibv_context,
    cqe: i32,
    channel: *mut ibv_comp_channel,
    comp_vector: i32,
) -> *mut ibv_cq {
    if ctx.is_null() {
        Errno::EINVAL.set();
        return ptr::null_mut();
    }
    guard("create_cq", ptr::null_mut(), || {
        to_ptr(create(ctx, cqe, channel, comp_vector))
    })
}

/// # Safety
/// `cq` is NULL or a CQ returned by [`create_cq`].
pub unsafe extern "C" fn destroy_cq(cq: *mut ibv_cq) -> i32 {
    if cq.is_null() {
        return libc::EINVAL;
    }
    guard("destroy_cq", libc::EIO, || {
        // SAFETY: cq is ours and alive (plain or extended: same object).
        let o = unsafe { &*cq.cast::<OmxCq>() };
        if let (Some(rt), Some(ring)) = (&o.rt, &o.cq) {
            rt.ep.remove_cq(ring);
        }
        // SAFETY: cq is ours and alive.
        let ret = unsafe { ibv_cmd_destroy_cq(cq) };
        if let Err(e) = Errno::check(ret) {
            if let (Some(rt), Some(ring)) = (&o.rt, &o.cq) {
                rt.ep.insert_cq(ring.clone());
            }
            return e.0;
        }
        // SAFETY: kernel object gone, events acked; from Box::into_raw.
        drop(unsafe { Box::from_raw(cq.cast::<OmxCq>()) });
        to_ret(Ok(()))
    })
}

/// `ibv_req_notify_cq`: arms the ring for the next completion (see
/// [`omx_verbs::Cq::arm`]; completions already waiting raise no event).
///
/// # Safety
/// `cq` is NULL or ours.
pub unsafe extern "C" fn req_notify_cq(cq: *mut ibv_cq, solicited_only: i32) -> i32 {
    // SAFETY: per the contract.
    let Some(o) = (unsafe { from_ibv(cq) }) else {
        return libc::EINVAL;
    };
    let Some(ring) = &o.cq else {
        return libc::EINVAL;
    };
    ring.arm(solicited_only != 0);
    0
}

/// Converts an engine completion to `ibv_wc`.
pub fn to_ibv_wc(w: &WorkCompletion) -> ibv_wc {
    let mut wc = ibv_wc {
        wr_id: w.wr_id,
        status: w.status as u32,
        opcode: w.opcode as u32,
        byte_len: w.byte_len,
        qp_num: w.qp_num.value(),
        src_qp: w.src_qp.value(),
        ..Default::default()
    };
    if let Some(imm) = w.imm {
        wc.__bindgen_anon_1.imm_data = imm.to_be();
    }
    if let Some(rkey) = w.inv {
        wc.__bindgen_anon_1.invalidated_rkey = rkey;
    }
    wc.wc_flags = wc_flags(w);
    wc.sl = w.sl;
    wc
}

/// `ibv_wc.wc_flags`: IBV_WC_WITH_IMM when immediate data came,
/// IBV_WC_WITH_INV when a SEND with invalidate invalidated a window
/// (`invalidated_rkey`), IBV_WC_GRH when a GRH precedes the data (UD
/// receives). `pkey_index`, `slid` and
/// `dlid_path_bits` stay 0, as rdma-core documents for an Ethernet port.
fn wc_flags(w: &WorkCompletion) -> u32 {
    let mut f = 0;
    if w.imm.is_some() {
        f |= IBV_WC_WITH_IMM;
    }
    if w.inv.is_some() {
        f |= IBV_WC_WITH_INV;
    }
    if w.grh {
        f |= IBV_WC_GRH;
    }
    f
}

/// Moves up to `n` completions of `ring` to `wc`; returns how many.
///
/// # Safety
/// `wc` is writable for `n` entries.
unsafe fn drain(ring: &Cq, n: usize, wc: *mut ibv_wc) -> usize {
    ring.poll_with(n, |i, w| {
        // SAFETY: poll_with hands out indexes below n, within the
        // caller's array.
        unsafe { wc.add(i).write(to_ibv_wc(w)) };
    })
}

/// `ibv_poll_cq`: returns waiting completions; when there are none it
/// receives pending frames itself (busy-poll), then looks again. No lock is
/// waited for, nothing is allocated; the only system calls are the
/// non-blocking receive and the transmits the frames cause.
///
/// # Safety
/// `cq` is NULL or ours; `wc` writable for `num_entries` entries.
pub unsafe extern "C" fn poll_cq(cq: *mut ibv_cq, num_entries: i32, wc: *mut ibv_wc) -> i32 {
    // SAFETY: per the contract.
    let Some(o) = (unsafe { from_ibv(cq) }) else {
        Errno::EINVAL.set();
        return -libc::EINVAL;
    };
    let (Some(ring), true) = (&o.cq, num_entries >= 0) else {
        Errno::EINVAL.set();
        return -libc::EINVAL;
    };
    if num_entries == 0 {
        return 0;
    }
    if wc.is_null() {
        Errno::EINVAL.set();
        return -libc::EINVAL;
    }
    let n = num_entries as usize;
    guard("poll_cq", -libc::EIO, || {
        // SAFETY: wc writable for n entries (contract).
        let got = unsafe { drain(ring, n, wc) };
        if got > 0 {
            if let Some(rt) = &o.rt {
                rt.app_polled(true);
            }
            return got as i32;
        }
        let Some(rt) = &o.rt else { return 0 };
        let d = rt.poll_rx();
        rt.after_drive(d);
        // SAFETY: as above.
        let got = unsafe { drain(ring, n, wc) };
        rt.app_polled(got > 0);
        got as i32
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZERO_WC: WorkCompletion = WorkCompletion {
        wr_id: 0,
        status: omx_engine::WcStatus::Success,
        opcode: omx_engine::WcOpcode::Send,
        queue: omx_engine::WcQueue::Send,
        byte_len: 0,
        imm: None,
        inv: None,
        qp_num: omx_wire::Qpn::new(0),
        src_qp: omx_wire::Qpn::new(0),
        solicited: false,
        grh: false,
        sl: 0,
    };

    #[test]
    fn null_arguments_are_refused() {
        // SAFETY: NULL is rejected before any dereference.
        let r = unsafe { poll_cq(ptr::null_mut(), 1, ptr::null_mut()) };
        assert!(r < 0);
        // SAFETY: as above.
        assert_eq!(unsafe { req_notify_cq(ptr::null_mut(), 0) }, libc::EINVAL);
    }

    #[test]
    fn wc_conversion() {
        let w = WorkCompletion {
            wr_id: 9,
            status: omx_engine::WcStatus::LocProtErr,
            opcode: omx_engine::WcOpcode::Recv,
            imm: Some(0x0102_0304),
            inv: None,
            byte_len: 77,
            qp_num: omx_wire::Qpn::new(0x1005),
            src_qp: omx_wire::Qpn::new(0x2001),
            ..ZERO_WC
        };
        let c = to_ibv_wc(&w);
        assert_eq!(c.wr_id, 9);
        assert_eq!(c.status, IBV_WC_LOC_PROT_ERR);
        assert_eq!(c.opcode, IBV_WC_RECV);
        assert_eq!(c.byte_len, 77);
        assert_eq!((c.qp_num, c.src_qp), (0x1005, 0x2001));
        assert_eq!(c.wc_flags & IBV_WC_WITH_IMM, IBV_WC_WITH_IMM);
        // SAFETY: plain integer union.
        assert_eq!(
            unsafe { c.__bindgen_anon_1.imm_data },
            0x0102_0304u32.to_be()
        );
        assert_eq!(c.wc_flags & IBV_WC_GRH, 0);
        assert_eq!(c.sl, 0);
        // A UD receive: the GRH flag and its form in sl.
        let c = to_ibv_wc(&WorkCompletion {
            grh: true,
            sl: 2,
            ..w
        });
        assert_eq!(c.wc_flags, IBV_WC_WITH_IMM | IBV_WC_GRH);
        assert_eq!((c.sl, c.pkey_index, c.slid, c.dlid_path_bits), (2, 0, 0, 0));
        // A SEND with invalidate: the rkey in host order, in the union.
        let c = to_ibv_wc(&WorkCompletion {
            imm: None,
            inv: Some(0x1234_5678),
            ..w
        });
        assert_eq!(c.wc_flags, IBV_WC_WITH_INV);
        // SAFETY: plain data.
        assert_eq!(unsafe { c.__bindgen_anon_1.invalidated_rkey }, 0x1234_5678);
    }

    #[test]
    fn drain_moves_in_order() {
        let ring = Cq::new(1, 40);
        for i in 0..35 {
            let _ = ring.push(WorkCompletion {
                wr_id: i,
                ..ZERO_WC
            });
        }
        let mut out = vec![ibv_wc::default(); 40];
        // SAFETY: out has 40 entries.
        assert_eq!(unsafe { drain(&ring, 20, out.as_mut_ptr()) }, 20);
        // SAFETY: as above.
        assert_eq!(unsafe { drain(&ring, 40, out.as_mut_ptr().add(20)) }, 15);
        assert!(out[..35]
            .iter()
            .enumerate()
            .all(|(i, w)| w.wr_id == i as u64));
    }

    #[test]
    fn cq_ex_attr_checks() {
        let ok = ibv_cq_init_attr_ex {
            cqe: 4,
            wc_flags: SUPPORTED_WC_FLAGS,
            ..Default::default()
        };
        assert_eq!(check_cq_attr_ex(&ok), Ok(()));
        let bad = |f: &dyn Fn(&mut ibv_cq_init_attr_ex)| {
            let mut a = ok;
            f(&mut a);
            check_cq_attr_ex(&a)
        };
        // Every flag libibverbs 44 lets through but these three is ours.
        let theirs =
            u64::from(IBV_WC_EX_WITH_CVLAN | IBV_WC_EX_WITH_FLOW_TAG | IBV_WC_EX_WITH_TM_INFO);
        assert_eq!(
            u64::from(IBV_CREATE_CQ_SUP_WC_FLAGS) & !theirs,
            SUPPORTED_WC_FLAGS
        );
        let wall = u64::from(IBV_WC_EX_WITH_COMPLETION_TIMESTAMP_WALLCLOCK);
        assert_eq!(bad(&|a| a.wc_flags = wall), Ok(()));
        let cvlan = u64::from(IBV_WC_EX_WITH_CVLAN);
        assert_eq!(bad(&|a| a.wc_flags |= cvlan), Err(Errno::EOPNOTSUPP));
        assert_eq!(
            bad(&|a| a.comp_mask = IBV_CQ_INIT_ATTR_MASK_PD),
            Err(Errno::EOPNOTSUPP)
        );
        assert_eq!(bad(&|a| a.comp_mask = 1 << 9), Err(Errno::EOPNOTSUPP));
        assert_eq!(bad(&|a| a.cqe = 0), Err(Errno::EINVAL));
        // The device's max_cqe (as mlx5), checked before the ring is made.
        assert_eq!(OMX_MAX_CQE, 4_194_303);
        assert_eq!(bad(&|a| a.cqe = OMX_MAX_CQE), Ok(()));
        assert_eq!(bad(&|a| a.cqe = OMX_MAX_CQE + 1), Err(Errno::EINVAL));
        assert_eq!(bad(&|a| a.cqe = u32::MAX), Err(Errno::EINVAL));
        let single = |a: &mut ibv_cq_init_attr_ex| {
            a.comp_mask = IBV_CQ_INIT_ATTR_MASK_FLAGS;
            a.flags = IBV_CREATE_CQ_ATTR_SINGLE_THREADED;
        };
        assert_eq!(bad(&single), Ok(()));
        let overrun = |a: &mut ibv_cq_init_attr_ex| {
            a.comp_mask = IBV_CQ_INIT_ATTR_MASK_FLAGS;
            a.flags = IBV_CREATE_CQ_ATTR_IGNORE_OVERRUN;
        };
        assert_eq!(bad(&overrun), Err(Errno::EOPNOTSUPP));
    }

    #[test]
    fn cq_ex_polls_and_reads_the_current_completion() {
        let mut o = Box::new(OmxCq::new(None));
        let ring = Arc::new(Cq::with_clock(1, 8, crate::clock::cq_clock(true, true)));
        o.cq = Some(ring.clone());
        // SAFETY: the zeroed union is a valid ibv_cq_ex.
        set_ex_ops(unsafe { &mut o.vcq.__bindgen_anon_1.cq_ex });
        let x: *mut ibv_cq_ex = ptr::addr_of_mut!(o.vcq.__bindgen_anon_1.cq_ex);
        let mut attr = ibv_poll_cq_attr::default();
        // SAFETY: x is the cq_ex of a live OmxCq for the whole test.
        unsafe {
            assert_eq!(start_poll(x, &mut attr), libc::ENOENT);
            let _ = ring.push(WorkCompletion {
                wr_id: 11,
                opcode: omx_engine::WcOpcode::Recv,
                byte_len: 64,
                imm: Some(0x0a0b_0c0d),
                inv: None,
                qp_num: omx_wire::Qpn::new(0x1001),
                src_qp: omx_wire::Qpn::new(0x2002),
                ..ZERO_WC
            });
            let _ = ring.push(WorkCompletion {
                wr_id: 12,
                status: omx_engine::WcStatus::WrFlushErr,
                ..ZERO_WC
            });
            attr.comp_mask = 1;
            assert_eq!(start_poll(x, &mut attr), libc::EINVAL);
            attr.comp_mask = 0;
            assert_eq!(start_poll(x, &mut attr), 0);
            assert_eq!(((*x).wr_id, (*x).status), (11, IBV_WC_SUCCESS));
            assert_eq!(read_opcode(x), IBV_WC_RECV);
            assert_eq!(read_byte_len(x), 64);
            assert_eq!(read_imm_data(x), 0x0a0b_0c0du32.to_be());
            assert_eq!(read_wc_flags(x), IBV_WC_WITH_IMM);
            assert_eq!((read_qp_num(x), read_src_qp(x)), (0x1001, 0x2002));
            assert_eq!(
                (read_slid(x), read_sl(x), read_dlid_path_bits(x)),
                (0, 0, 0)
            );
            assert_eq!(read_vendor_err(x), 0);
            let t1 = read_completion_ts(x);
            assert!(t1 > 0);
            let w1 = read_completion_wallclock_ns(x);
            let now = crate::clock::wallclock_ns();
            assert!(w1 <= now && now - w1 < 10_000_000_000, "{w1} vs {now}");
            assert_eq!(next_poll(x), 0);
            assert_eq!(((*x).wr_id, (*x).status), (12, IBV_WC_WR_FLUSH_ERR));
            assert!(read_completion_ts(x) >= t1);
            assert!(read_completion_wallclock_ns(x) >= w1);
            assert_eq!(read_wc_flags(x), 0);
            assert_eq!(next_poll(x), libc::ENOENT);
            end_poll(x);
            assert_eq!(read_byte_len(x), 0);
            assert_eq!(read_completion_wallclock_ns(x), 0);
            assert_eq!(start_poll(x, ptr::null_mut()), libc::ENOENT);
        }
        assert!(ring.is_empty());
    }
}
