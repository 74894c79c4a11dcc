//! The endpoint: one per device context. Owns the MR table, the demux
//! table QP slot → QP and the list of CQs, and drives QPs: feeds them
//! frames and timeouts, drains their frames into a [`FrameSink`] and their
//! completions into CQs.
//!
//! Who holds references: the ffi context (in its runtime `Arc`), shared by
//! the progress thread and every application thread in a verb.
//!
//! Locks: `qps` (the slot table and the list of live QPs, changed
//! together) and `cqs` are `RwLock`s written only by create/destroy
//! (control path) and read by the data path just long enough to clone an
//! `Arc` or, in the timer and notification passes, while visiting each
//! entry. Lock order: `qps` (read) → QP → MR table (read) → CQ ring;
//! `cqs` is taken alone. The timer pass visits only the slots whose QP
//! published a deadline (`armed`, crate::armed), reads that deadline (an
//! atomic) and try-locks only the QPs that are due, so the progress
//! thread never waits for an application thread and never holds a QP lock
//! it has no work under. The QP and CQ ring locks are spin locks
//! ([`crate::lock`]). `remove_qp` releases `qps` before it takes the QP
//! lock. `mcast` (the multicast attachments) is written only by
//! attach/detach and QP removal and read by the data path while it
//! delivers a multicast frame: `mcast` (read) → QP, never the other way,
//! and never together with `qps`. Atomics: `busy_qps` (QPs with WRs
//! pending, changed only under the QP lock of the QP whose `pending`
//! flips), `window_budget` (ring frames not promised to a receive window;
//! a CAS loop), and `qp_events` / `srq_events`, set by a drive after it
//! set the QP's `event` or saw its SRQ's `limit_reached`, and swapped by
//! the kernel pass before it looks at them (under `qps` read; an SRQ's
//! own flag is taken once there, however many QPs share it). The count of
//! QPs receiving now (`act_epoch`, `act_start`, `act_frames`, `act_cur`,
//! `act_prev`; the credit grants, docs/wire.md §9) is atomics updated by
//! whichever thread handles a request frame, under that QP's lock only
//! (which guards its `QpInner::seen_epoch`); a race at an epoch's end may
//! miscount one QP for one epoch, never block.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex, RwLock};

use omx_engine::grant::GrantPolicy;
use omx_engine::Instant;

use crate::armed::Armed;
use crate::cq::{Cq, Pushed};
use crate::mr::MrTable;
use crate::qp::{pack_event, unpack_event, Qp, QpInner, Window, TX_BATCH, TX_SLOT};
use crate::FrameSink;

/// How soon the timer pass looks again at a due QP it found locked.
pub const TIMER_RETRY_NS: u64 = 50_000;

/// Frames of the packet I/O layer's receive ring (`RingConfig::OMX`:
/// TPACKET_V2, 64 blocks of 30 slots of 4,304 bytes).
pub const DEFAULT_RING_FRAMES: u32 = 1920;
/// Smallest receive window: the requester's credits before the first ACK
/// (`omx_wire::INITIAL_CREDITS`).
pub const MIN_WINDOW: u16 = omx_wire::INITIAL_CREDITS;
/// Largest receive window: a quarter MiB at path MTU 1024, 1 MiB at 4096.
pub const MAX_WINDOW: u16 = 256;

/// Slots per endpoint (low 12 bits of a QPN).
pub const SLOTS: usize = 1 << omx_wire::QPN_SLOT_BITS;

/// Which thread received a frame. It decides whether a QP may hold its
/// ACK for the application's answer (docs/wire.md §10.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxBy {
    /// An application thread busy-polling in `poll_cq`: it will answer
    /// within microseconds, so the ACK may wait for the answer.
    Poller,
    /// The progress thread, for an application that busy-polls its CQs
    /// (it did within the last few milliseconds) but is not in `poll_cq`
    /// now: it spins on memory for a passive RDMA target's data, as
    /// `ib_write_lat` does between polls, and answers from its own thread
    /// within microseconds, so the ACK may wait for the answer. (Without
    /// this, one frame taken by the progress thread made the peer's WRITE
    /// complete early, the peer stopped polling, and from then on each
    /// side's progress thread took every frame: `ib_write_lat` settled at
    /// 400-500 us instead of 20 us in the TCG bed, in half of the runs.)
    ProgressForPoller,
    /// The progress thread, for an application that does not busy-poll:
    /// it sleeps (completion events), and its answer is at least a
    /// wake-up away. The ACK goes at once, as it would from an RDMA
    /// adapter. (Holding it there made `ibv_rc_pingpong -e` ~1.9x slower
    /// in the TCG bed.)
    Progress,
}

impl RxBy {
    /// Whether a QP in interactive mode may hold its ACK for a frame
    /// received this way.
    pub fn may_hold_ack(self) -> bool {
        matches!(self, RxBy::Poller | RxBy::ProgressForPoller)
    }
}

/// A call into the kernel module that the progress thread makes on behalf
/// of the endpoint's objects ([`Endpoint::kernel_pass`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelCall {
    /// Raise the completion event of the CQ with this uverbs handle
    /// (OMX_METHOD_CQ_NOTIFY).
    CqNotify(u32),
    /// The CQ with this handle overran: IBV_EVENT_CQ_ERR
    /// (OMX_METHOD_CQ_ERROR).
    CqError(u32),
    /// The engine moved the QP with this handle to ERROR on its own: the
    /// kernel's shadow follows, and the event's kind is raised
    /// (OMX_METHOD_QP_EVENT).
    QpEvent {
        /// The QP's uverbs handle.
        handle: u32,
        /// Why, and in which reset epoch.
        event: omx_engine::QpEvent,
    },
    /// The SRQ with this uverbs handle fell below its armed limit:
    /// IBV_EVENT_SRQ_LIMIT_REACHED (OMX_METHOD_SRQ_LIMIT).
    SrqLimit(u32),
}

/// What driving a QP left to do for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drive {
    /// The progress thread has calls to make into the kernel module
    /// ([`Endpoint::kernel_pass`]): a completion landed on an armed CQ, a
    /// CQ overran, or a QP moved to ERROR on its own.
    pub notify: bool,
    /// Earliest timer deadline of the QPs driven, in engine nanoseconds;
    /// `u64::MAX` = none. A plain integer rather than an
    /// `Option<Instant>`: memcheck flags the optimised code that selects
    /// on the uninitialised payload of a `None`.
    pub deadline_ns: u64,
    /// This drive completed the last posted WR of the endpoint: no QP has
    /// work pending any more ([`Endpoint::work_pending`]).
    pub idle: bool,
}

impl Default for Drive {
    fn default() -> Self {
        Drive {
            notify: false,
            deadline_ns: u64::MAX,
            idle: false,
        }
    }
}

impl Drive {
    /// Only a deadline.
    pub fn at(t: Instant) -> Drive {
        Drive {
            deadline_ns: t.as_nanos(),
            ..Drive::default()
        }
    }

    /// The earliest deadline, if any.
    pub fn deadline(&self) -> Option<Instant> {
        (self.deadline_ns != u64::MAX).then(|| Instant::from_nanos(self.deadline_ns))
    }

    /// Combines two results.
    pub fn merge(self, o: Drive) -> Drive {
        Drive {
            notify: self.notify || o.notify,
            deadline_ns: self.deadline_ns.min(o.deadline_ns),
            idle: self.idle || o.idle,
        }
    }
}

/// The QP demux: a QP per slot, and the same QPs in a list for the
/// control-path passes over all of them (statistics, flushing held ACKs
/// at close, failing all QPs), which would otherwise walk all [`SLOTS`]
/// slots. The timer pass walks neither: it visits the slots marked in
/// `Endpoint::armed`.
#[derive(Debug)]
struct QpTable {
    slots: Vec<Option<Arc<Qp>>>,
    live: Vec<Arc<Qp>>,
}

/// One QP attached to one multicast group (docs/wire.md §13.5).
#[derive(Debug)]
struct McastAttachment {
    /// The group's Ethernet multicast MAC: what a frame is matched on.
    mac: [u8; 6],
    /// The group's GID: the destination GID of the GRH written.
    gid: [u8; 16],
    qp: Arc<Qp>,
    /// Attaches not yet detached (uverbs makes one per (GID, LID) pair;
    /// the LID means nothing on Ethernet).
    refs: u32,
}

/// Per-context verbs state.
#[derive(Debug)]
pub struct Endpoint {
    /// This context's endpoint number (QPN bits 12..24).
    pub endpoint: u32,
    /// Registered memory.
    pub mrs: MrTable,
    qps: RwLock<QpTable>,
    cqs: RwLock<Vec<Arc<Cq>>>,
    /// Multicast attachments in attach order; the kernel bounds them
    /// (`max_total_mcast_qp_attach`).
    mcast: RwLock<Vec<McastAttachment>>,
    /// QPs whose `pending` is set.
    busy_qps: AtomicU32,
    /// Receive-ring frames not yet promised to a QP's window.
    window_budget: AtomicU32,
    /// How the ring is shared among the QPs receiving now
    /// (omx_engine::grant).
    grants: GrantPolicy,
    /// Active QPs (omx_engine::grant::ActiveSet, in atomics): the epoch
    /// counted now (from 1; 0 = none yet), when it started (engine ns),
    /// the request frames in it, the QPs that received a request in it,
    /// and in the one before.
    act_epoch: AtomicU64,
    act_start: AtomicU64,
    act_frames: AtomicU32,
    act_cur: AtomicU32,
    act_prev: AtomicU32,
    /// The slots whose QP may have a timer deadline: what the timer pass
    /// visits (crate::armed).
    armed: Armed,
    /// QPs the timer pass visited (diagnostics; the test that the pass is
    /// proportional to the QPs with a timer, not to all QPs).
    timer_visits: AtomicU64,
    /// Frames dropped before any QP saw them (see [`Endpoint::counters`]).
    rx_unparsable: AtomicU64,
    rx_unknown_qp: AtomicU64,
    rx_mcast_unjoined: AtomicU64,
    /// Some QP has an event for the kernel pass (set by drive after it
    /// stored the QP's `event`, taken by the pass before it looks).
    qp_events: AtomicBool,
    /// Some QP's SRQ crossed its limit (set by drive, taken by the kernel
    /// pass before it looks at the SRQs).
    srq_events: AtomicBool,
    /// Engine counters of the QPs destroyed so far, by the index of
    /// [`omx_engine::Stats::fields`] (control path only).
    retired: Mutex<Vec<u64>>,
}

impl Endpoint {
    /// An empty endpoint whose receive ring holds [`DEFAULT_RING_FRAMES`].
    pub fn new(endpoint: u32) -> Self {
        Self::with_ring(endpoint, DEFAULT_RING_FRAMES)
    }

    /// An empty endpoint whose receive ring holds `ring_frames` frames:
    /// the budget QP receive windows are cut from.
    pub fn with_ring(endpoint: u32, ring_frames: u32) -> Self {
        Endpoint {
            endpoint,
            mrs: MrTable::new(),
            qps: RwLock::new(QpTable {
                slots: vec![None; SLOTS],
                live: Vec::new(),
            }),
            cqs: RwLock::new(Vec::new()),
            mcast: RwLock::new(Vec::new()),
            busy_qps: AtomicU32::new(0),
            window_budget: AtomicU32::new(ring_frames),
            grants: GrantPolicy::new(ring_frames),
            act_epoch: AtomicU64::new(0),
            act_start: AtomicU64::new(0),
            act_frames: AtomicU32::new(0),
            act_cur: AtomicU32::new(0),
            act_prev: AtomicU32::new(0),
            armed: Armed::new(SLOTS),
            timer_visits: AtomicU64::new(0),
            rx_unparsable: AtomicU64::new(0),
            rx_unknown_qp: AtomicU64::new(0),
            rx_mcast_unjoined: AtomicU64::new(0),
            qp_events: AtomicBool::new(false),
            srq_events: AtomicBool::new(false),
            retired: Mutex::new(Vec::new()),
        }
    }

    /// The receive window (packets) for a QP about to be created: half of
    /// the ring frames no other QP's window holds yet, between
    /// [`MIN_WINDOW`] and [`MAX_WINDOW`], so the windows of all QPs fit
    /// the ring (docs/wire.md section 9) until it is spread thin; past
    /// that every further QP gets [`MIN_WINDOW`] and the ring is
    /// overcommitted (a burst from every QP at once can then overflow it,
    /// which costs retransmissions, not correctness). `remove_qp` gives
    /// the frames back.
    pub fn reserve_window(&self) -> Window {
        let mut w = MIN_WINDOW;
        let mut taken = 0;
        let _ = self.window_budget.fetch_update(SeqCst, SeqCst, |left| {
            w = (left / 2).clamp(u32::from(MIN_WINDOW), u32::from(MAX_WINDOW)) as u16;
            taken = left.min(u32::from(w));
            Some(left - taken)
        });
        Window { packets: w, taken }
    }

    /// A request frame for the QP whose last active epoch is `*seen`
    /// arrived at `now` (the caller holds that QP's lock): counts the QP
    /// once per epoch and returns how many QPs are receiving (the larger
    /// of this epoch's and the previous epoch's counts), as
    /// [`omx_engine::grant::ActiveSet::note`] does, lock-free. Races at an
    /// epoch's end may miscount a QP or a frame for that epoch; the next
    /// one corrects it.
    pub fn note_active(&self, seen: &mut u64, now: Instant) -> u32 {
        let mut e = self.act_epoch.load(SeqCst);
        let start = Instant::from_nanos(self.act_start.load(Relaxed));
        let frames = self.act_frames.fetch_add(1, Relaxed) + 1;
        // The frame that overflows the epoch opens the next one (as
        // ActiveSet: an epoch holds exactly a ring's worth).
        if e == 0 || self.grants.epoch_over(start, frames - 1, now) {
            if self
                .act_epoch
                .compare_exchange(e, e + 1, SeqCst, Relaxed)
                .is_ok()
            {
                let stale = e == 0 || self.grants.epoch_stale(start, now);
                let cur = self.act_cur.swap(0, SeqCst);
                self.act_prev.store(if stale { 0 } else { cur }, SeqCst);
                self.act_frames.store(1, SeqCst);
                self.act_start.store(now.as_nanos(), SeqCst);
            }
            e = self.act_epoch.load(SeqCst);
        }
        let mut cur = self.act_cur.load(Relaxed);
        if *seen != e {
            *seen = e;
            cur = self.act_cur.fetch_add(1, SeqCst) + 1;
        }
        cur.max(self.act_prev.load(Relaxed))
    }

    /// Registers a QP under its slot (replaces nothing: the kernel never
    /// hands out a live slot twice).
    pub fn insert_qp(&self, qp: Arc<Qp>) {
        let slot = qp.qpn.slot() as usize;
        let mut t = self.qps.write().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = t.slots[slot].replace(qp.clone()) {
            t.live.retain(|q| !Arc::ptr_eq(q, &old));
        }
        t.live.push(qp);
    }

    /// Removes the QP with this QPN from the demux.
    pub fn remove_qp(&self, qpn: omx_wire::Qpn) -> Option<Arc<Qp>> {
        let mut t = self.qps.write().unwrap_or_else(|p| p.into_inner());
        let e = &mut t.slots[qpn.slot() as usize];
        if !e.as_ref().is_some_and(|q| q.qpn == qpn) {
            return None;
        }
        let qp = e.take()?;
        t.live.retain(|q| !Arc::ptr_eq(q, &qp));
        drop(t);
        // Under the QP lock, as drive writes it; a QP out of the demux is
        // no longer counted (the application destroys it: its WRs are not
        // waited for).
        let _g = qp.lock();
        qp.removed.store(true, SeqCst);
        let taken = qp.window_taken.swap(0, SeqCst);
        self.window_budget.fetch_add(taken, SeqCst);
        if qp.pending.swap(false, SeqCst) {
            self.busy_qps.fetch_sub(1, SeqCst);
        }
        drop(_g);
        Some(qp)
    }

    /// The QP a frame for `qpn` goes to, if it is ours.
    pub fn lookup(&self, qpn: omx_wire::Qpn) -> Option<Arc<Qp>> {
        if qpn.endpoint() != self.endpoint {
            return None;
        }
        let t = self.qps.read().unwrap_or_else(|p| p.into_inner());
        t.slots[qpn.slot() as usize]
            .as_ref()
            .filter(|q| q.qpn == qpn)
            .cloned()
    }

    /// The endpoint's own drop counters, by name: frames too short or not
    /// omx-verbs at all (`rx_unparsable`), frames whose destination
    /// QPN names no QP of ours (`rx_unknown_qp`: another endpoint's, or a QP
    /// destroyed since), and multicast frames whose destination MAC is no
    /// group a QP of ours is attached to (`rx_mcast_unjoined`). What
    /// happens to frames a QP sees is in its engine's `Stats`.
    pub fn counters(&self) -> [(&'static str, u64); 3] {
        [
            ("rx_unparsable", self.rx_unparsable.load(Relaxed)),
            ("rx_unknown_qp", self.rx_unknown_qp.load(Relaxed)),
            ("rx_mcast_unjoined", self.rx_mcast_unjoined.load(Relaxed)),
        ]
    }

    /// Attaches `qp` to the multicast group `gid` whose Ethernet MAC is
    /// `mac` (after the kernel accepted it). Returns whether this is the
    /// endpoint's first attachment: the caller then lets multicast frames
    /// through its packet socket.
    pub fn attach_mcast(&self, qp: &Arc<Qp>, gid: [u8; 16], mac: [u8; 6]) -> bool {
        let mut t = self.mcast.write().unwrap_or_else(|p| p.into_inner());
        let first = t.is_empty();
        match t
            .iter_mut()
            .find(|a| a.gid == gid && Arc::ptr_eq(&a.qp, qp))
        {
            Some(a) => a.refs += 1,
            None => t.push(McastAttachment {
                mac,
                gid,
                qp: qp.clone(),
                refs: 1,
            }),
        }
        first
    }

    /// Undoes one [`Endpoint::attach_mcast`] (after the kernel's detach).
    /// Returns whether the endpoint has no attachment left.
    pub fn detach_mcast(&self, qp: &Arc<Qp>, gid: [u8; 16]) -> bool {
        let mut t = self.mcast.write().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = t
            .iter()
            .position(|a| a.gid == gid && Arc::ptr_eq(&a.qp, qp))
        {
            t[i].refs -= 1;
            if t[i].refs == 0 {
                t.remove(i);
            }
        }
        t.is_empty()
    }

    /// Drops every attachment of `qp` (it was destroyed). Returns whether
    /// that removed the endpoint's last attachment.
    pub fn forget_mcast(&self, qp: &Arc<Qp>) -> bool {
        let mut t = self.mcast.write().unwrap_or_else(|p| p.into_inner());
        let had = !t.is_empty();
        t.retain(|a| !Arc::ptr_eq(&a.qp, qp));
        had && t.is_empty()
    }

    /// Whether any QP of this endpoint is attached to a multicast group.
    pub fn mcast_attached(&self) -> bool {
        !self
            .mcast
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    /// A frame for the multicast QPN: one copy to every QP attached to a
    /// group whose MAC is the frame's destination MAC, with that group's
    /// GID as the GRH's DGID; a QP attached to several such groups (their
    /// GIDs map to one MAC) gets one copy, with the GID it attached to
    /// first (docs/wire.md §13.5). No allocation.
    fn handle_mcast_frame(&self, now: Instant, frame: &[u8], tx: &impl FrameSink) -> Drive {
        let t = self.mcast.read().unwrap_or_else(|p| p.into_inner());
        let mut d = Drive::default();
        let mut delivered = false;
        for (i, a) in t.iter().enumerate() {
            if frame.get(..6) != Some(&a.mac[..])
                || t[..i]
                    .iter()
                    .any(|b| b.mac == a.mac && Arc::ptr_eq(&b.qp, &a.qp))
            {
                continue;
            }
            delivered = true;
            let mut g = a.qp.lock();
            {
                let QpInner { eng, inline, .. } = &mut *g;
                self.mrs.with_qp(a.qp.pd, a.qp.qpn.value(), inline, |mem| {
                    let _ = eng.handle_mcast_frame(now, frame, mem, &a.gid);
                });
            }
            d = d.merge(self.drive(&a.qp, &mut g, now, tx));
        }
        if !delivered {
            self.rx_mcast_unjoined.fetch_add(1, Relaxed);
        }
        d
    }

    /// Registers a CQ for the notification pass.
    pub fn insert_cq(&self, cq: Arc<Cq>) {
        self.cqs.write().unwrap_or_else(|p| p.into_inner()).push(cq);
    }

    /// Forgets a CQ.
    pub fn remove_cq(&self, cq: &Arc<Cq>) {
        self.cqs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|c| !Arc::ptr_eq(c, cq));
    }

    /// Calls `f` with every call into the kernel module the endpoint's
    /// objects are waiting for: completion events of armed CQs that got a
    /// completion, and the CQ_ERR of CQs that overran. The progress thread
    /// makes these calls (never a post or poll call: IB midlayer rule).
    pub fn kernel_pass(&self, mut f: impl FnMut(KernelCall)) {
        if self.qp_events.swap(false, SeqCst) {
            let t = self.qps.read().unwrap_or_else(|p| p.into_inner());
            for qp in &t.live {
                if let Some(event) = unpack_event(qp.event.swap(0, SeqCst)) {
                    f(KernelCall::QpEvent {
                        handle: qp.handle,
                        event,
                    });
                }
            }
        }
        if self.srq_events.swap(false, SeqCst) {
            // Several QPs may share the SRQ: its own flag is taken once.
            let t = self.qps.read().unwrap_or_else(|p| p.into_inner());
            for srq in t.live.iter().filter_map(|qp| qp.srq.as_ref()) {
                if srq.take_limit_event() {
                    f(KernelCall::SrqLimit(srq.handle));
                }
            }
        }
        let v = self.cqs.read().unwrap_or_else(|p| p.into_inner());
        for c in v.iter() {
            if c.take_error_event() {
                f(KernelCall::CqError(c.handle));
            }
            if c.take_notify() {
                f(KernelCall::CqNotify(c.handle));
            }
        }
    }

    /// Adds the engine counters of a QP being destroyed to the
    /// endpoint's totals ([`Endpoint::qp_totals`]).
    pub fn retire_stats(&self, stats: &omx_engine::Stats) {
        let mut r = self.retired.lock().unwrap_or_else(|p| p.into_inner());
        let fields: Vec<u64> = stats.fields().map(|(_, v)| v).collect();
        r.resize(fields.len(), 0);
        for (t, v) in r.iter_mut().zip(fields) {
            *t += v;
        }
    }

    /// The engine counters summed over every QP this endpoint had: those
    /// destroyed ([`Endpoint::retire_stats`]) and those still live.
    /// Control path (it locks every live QP in turn).
    pub fn qp_totals(&self) -> Vec<(&'static str, u64)> {
        let mut tot: Vec<(&'static str, u64)> = omx_engine::Stats::default().fields().collect();
        {
            let r = self.retired.lock().unwrap_or_else(|p| p.into_inner());
            for (t, v) in tot.iter_mut().zip(r.iter()) {
                t.1 += v;
            }
        }
        let t = self.qps.read().unwrap_or_else(|p| p.into_inner());
        for qp in &t.live {
            let g = qp.lock();
            for (t, (_, v)) in tot.iter_mut().zip(g.eng.stats().fields()) {
                t.1 += v;
            }
        }
        tot
    }

    /// The QPs that declared their peer gone, and why (control path:
    /// diagnostics at exit).
    pub fn gone_reports(&self) -> Vec<(omx_wire::Qpn, omx_engine::GoneReport)> {
        let t = self.qps.read().unwrap_or_else(|p| p.into_inner());
        t.live
            .iter()
            .filter_map(|qp| qp.lock().eng.gone_report().map(|r| (qp.qpn, r)))
            .collect()
    }

    /// After any input or verb on `qp` (whose lock `g` is): sends what the
    /// engine has to send, moves completions to the CQs, and reports the
    /// next deadline.
    pub fn drive(&self, qp: &Qp, g: &mut QpInner, now: Instant, tx: &impl FrameSink) -> Drive {
        let QpInner {
            eng: rc,
            tx: buf,
            inline,
            ..
        } = g;
        self.mrs.with_qp(qp.pd, qp.qpn.value(), inline, |mem| loop {
            // Fill up to TX_BATCH slots, then send them in one batch.
            let mut lens = [0usize; TX_BATCH];
            let mut n = 0;
            for (slot, len) in buf.chunks_exact_mut(TX_SLOT).zip(lens.iter_mut()) {
                match rc.poll_transmit(now, slot, mem) {
                    Some(t) => *len = t.len,
                    None => break,
                }
                n += 1;
            }
            if n == 0 {
                break;
            }
            let mut frames: [&[u8]; TX_BATCH] = [&[]; TX_BATCH];
            for ((f, slot), len) in frames.iter_mut().zip(buf.chunks_exact(TX_SLOT)).zip(lens) {
                *f = &slot[..len];
            }
            tx.send_batch(&frames[..n]);
            if n < TX_BATCH {
                break;
            }
        });
        let mut notify = false;
        let mut overrun = false;
        loop {
            while let Some(wc) = rc.poll_completion() {
                let cq = match wc.queue {
                    omx_engine::WcQueue::Send => &qp.send_cq,
                    omx_engine::WcQueue::Recv => &qp.recv_cq,
                };
                match cq.push(wc) {
                    Pushed::Queued { notify: n } => notify |= n,
                    Pushed::Overrun { first } => {
                        overrun = true;
                        // The CQ_ERR event is the progress thread's.
                        notify |= first;
                    }
                }
            }
            // A completion was lost to an overrun CQ: the QP goes to
            // ERROR (IBTA: a work queue that cannot complete is in error),
            // its other WRs are flushed (those for an overrun CQ are lost
            // too, loudly), and its application gets QP_FATAL.
            if !overrun || rc.state() == omx_engine::QpState::Err {
                break;
            }
            rc.fail();
            notify = true;
        }
        if let Some(e) = rc.poll_event() {
            // The engine moved the QP to ERROR on its own: the kernel's
            // shadow must follow, and the application gets the event.
            qp.event.store(pack_event(e), SeqCst);
            self.qp_events.store(true, SeqCst);
            notify = true;
        }
        if qp.srq.as_ref().is_some_and(|s| s.limit_event_pending()) {
            // A take of this drive crossed the SRQ's limit: the event is
            // the progress thread's to ask for.
            self.srq_events.store(true, SeqCst);
            notify = true;
        }
        let deadline_ns = rc.poll_timeout().map_or(u64::MAX, |t| t.as_nanos());
        qp.set_deadline(deadline_ns);
        if deadline_ns != u64::MAX {
            // After the deadline is published (crate::armed).
            self.armed.mark(qp.qpn.slot() as usize);
        }
        let mut idle = false;
        // A QP out of the demux (being destroyed; a thread that looked it
        // up just before may still drive it) is no longer counted. A QP
        // holding an ACK for the application's answer counts as busy: the
        // application is about to post that answer and poll for it, so
        // the progress thread need not be woken to receive for it (in
        // ib_write_lat that wake-up cost more than the whole round trip).
        let pending = (rc.work_pending() || rc.holds_ack()) && !qp.removed.load(SeqCst);
        if qp.pending.load(SeqCst) != pending {
            qp.pending.store(pending, SeqCst);
            if pending {
                self.busy_qps.fetch_add(1, SeqCst);
            } else {
                idle = self.busy_qps.fetch_sub(1, SeqCst) == 1;
            }
        }
        Drive {
            notify,
            deadline_ns,
            idle,
        }
    }

    /// [`Endpoint::drive`] after `ibv_post_recv`, which skips the full
    /// drive when it could change nothing: a receive WR gives the engine
    /// nothing to send and no timer, and a completion only in ERROR (a
    /// flushed WR). What is left is `pending`, which a new WR can only set:
    /// if it is set already, there is nothing to do. On the critical path
    /// of every ping-pong (the responder reposts its receive WR between
    /// receiving and answering), where the full drive cost ~900
    /// instructions.
    pub fn drive_after_post_recv(
        &self,
        qp: &Qp,
        g: &mut QpInner,
        now: Instant,
        tx: &impl FrameSink,
    ) -> Drive {
        if g.eng.state() != omx_engine::QpState::Err && qp.pending.load(SeqCst) {
            return Drive::default();
        }
        self.drive(qp, g, now, tx)
    }

    /// Some QP of the endpoint has posted WRs that have not completed: an
    /// application thread that busy-polls a CQ is waiting for them. When
    /// none has, a busy-polling thread has nothing to wait for, and frames
    /// that still arrive (a passive RDMA target's) are the progress
    /// thread's to handle. SeqCst, paired with the progress thread's own
    /// SeqCst flag (see the ffi runtime).
    pub fn work_pending(&self) -> bool {
        self.busy_qps.load(SeqCst) != 0
    }

    /// One received frame, taken by an application thread that busy-polls
    /// (`poll_cq`). Frames for no QP of ours are dropped (counted by the
    /// caller if it wants to).
    pub fn handle_frame(&self, now: Instant, frame: &[u8], tx: &impl FrameSink) -> Drive {
        self.handle_frame_by(RxBy::Poller, now, frame, tx)
    }

    /// One received frame, taken by `by`.
    pub fn handle_frame_by(
        &self,
        by: RxBy,
        now: Instant,
        frame: &[u8],
        tx: &impl FrameSink,
    ) -> Drive {
        let Some(qpn) = omx_engine::peek_dst_qpn(frame) else {
            self.rx_unparsable.fetch_add(1, Relaxed);
            return Drive::default();
        };
        if qpn == omx_engine::MCAST_QPN {
            return self.handle_mcast_frame(now, frame, tx);
        }
        let Some(qp) = self.lookup(qpn) else {
            self.rx_unknown_qp.fetch_add(1, Relaxed);
            return Drive::default();
        };
        let mut g = qp.lock();
        let accepted = {
            let QpInner {
                eng: rc, inline, ..
            } = &mut *g;
            rc.set_ack_hold(by.may_hold_ack());
            self.mrs
                .with_qp(qp.pd, qp.qpn.value(), inline, |mem| {
                    rc.handle_frame(now, frame, mem)
                })
                .is_ok()
        };
        if accepted && omx_engine::grant::takes_credit(frame) {
            // Receiver-driven credits (docs/wire.md §9): this QP's share
            // of the ring among the QPs receiving now, carried by the ACK
            // the drive below sends. Only a request the QP accepted (from
            // its connected peer) counts: forged frames cannot shrink the
            // other QPs' shares.
            let active = self.note_active(&mut g.seen_epoch, now);
            g.eng.set_credit_grant(self.grants.share(active));
        }
        self.drive(&qp, &mut g, now, tx)
    }

    /// Sends every QP's held ACK now (the context is closing: nobody
    /// will answer to carry them).
    pub fn flush_acks(&self, now: Instant, tx: &impl FrameSink) {
        let t = self.qps.read().unwrap_or_else(|p| p.into_inner());
        for qp in &t.live {
            let mut g = qp.lock();
            g.eng.flush_acks();
            let _ = self.drive(qp, &mut g, now, tx);
        }
    }

    /// Moves every QP to ERROR (the device went away under the context):
    /// their outstanding WRs complete with IBV_WC_WR_FLUSH_ERR, so that
    /// threads waiting for them wake up.
    pub fn fail_all(&self, now: Instant, tx: &impl FrameSink) -> Drive {
        let t = self.qps.read().unwrap_or_else(|p| p.into_inner());
        let mut d = Drive::default();
        for qp in &t.live {
            let mut g = qp.lock();
            let _ = g.modify(&omx_engine::QpAttr {
                state: Some(omx_engine::QpState::Err),
                ..Default::default()
            });
            d = d.merge(self.drive(qp, &mut g, now, tx));
        }
        d
    }

    /// Runs every due timer of every QP; returns the earliest deadline
    /// left. Only QPs whose published deadline has passed are locked, and
    /// only with a try-lock: a QP some other thread holds is being driven
    /// right now and is looked at again [`TIMER_RETRY_NS`] later.
    pub fn handle_timeouts(&self, now: Instant, tx: &impl FrameSink) -> Drive {
        let t = self.qps.read().unwrap_or_else(|p| p.into_inner());
        let mut d = Drive::default();
        let mut visits = 0u64;
        // Only the QPs with a timer running (crate::armed): a pass costs
        // nothing per idle QP.
        self.armed.sweep(
            |slot| {
                let Some(qp) = t.slots.get(slot).and_then(Option::as_ref) else {
                    return;
                };
                visits += 1;
                let t = qp.deadline();
                if t == u64::MAX {
                    return;
                }
                if t > now.as_nanos() {
                    d = d.merge(Drive::at(Instant::from_nanos(t)));
                    return;
                }
                let Some(mut g) = qp.try_lock() else {
                    d = d.merge(Drive::at(Instant::from_nanos(
                        now.as_nanos() + TIMER_RETRY_NS,
                    )));
                    return;
                };
                if g.eng.poll_timeout().is_some_and(|t| t <= now) {
                    g.eng.handle_timeout(now);
                }
                d = d.merge(self.drive(qp, &mut g, now, tx));
            },
            |slot| {
                t.slots
                    .get(slot)
                    .and_then(Option::as_ref)
                    .is_some_and(|qp| qp.deadline() != u64::MAX)
            },
        );
        if visits > 0 {
            self.timer_visits.fetch_add(visits, Relaxed);
        }
        d
    }

    /// QPs the timer passes visited so far (diagnostics): the passes
    /// visit only QPs with a timer running.
    pub fn timer_visits(&self) -> u64 {
        self.timer_visits.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mr::{MrEntry, ACCESS_LOCAL_WRITE};
    use crate::qp::QpCaps;
    use omx_engine::{QpAttr, QpState, RecvWr, SendOp, SendWr, SgList, WcStatus, WorkCompletion};
    use omx_wire::Qpn;
    use std::cell::RefCell;

    #[derive(Default)]
    struct Wire(RefCell<Vec<Vec<u8>>>);
    impl FrameSink for Wire {
        fn send(&self, f: &[u8]) {
            self.0.borrow_mut().push(f.to_vec());
        }
    }

    fn connect(ep: &Endpoint, qpn: u32, peer: u32) -> Arc<Qp> {
        connect_with(ep, qpn, peer, 4, 16)
    }

    fn connect_with(ep: &Endpoint, qpn: u32, peer: u32, depth: u32, cqe: usize) -> Arc<Qp> {
        connect_typed(ep, qpn, peer, depth, cqe, false)
    }

    fn connect_typed(
        ep: &Endpoint,
        qpn: u32,
        peer: u32,
        depth: u32,
        cqe: usize,
        uc: bool,
    ) -> Arc<Qp> {
        let cq = Arc::new(Cq::new(1, cqe));
        ep.insert_cq(cq.clone());
        let qp = Arc::new(
            Qp::new(
                Qpn::new(qpn),
                9,
                QpCaps {
                    sq_depth: depth,
                    rq_depth: depth,
                    uc,
                    ..Default::default()
                },
                cq.clone(),
                cq,
                false,
            )
            .with_handle(qpn),
        );
        ep.insert_qp(qp.clone());
        let mut g = qp.lock();
        let conn = omx_engine::testing::Conn {
            min_rnr_timer: 1,
            ..omx_engine::testing::Conn::new(qpn, peer)
        };
        for a in conn.steps_for(g.eng.qp_type()) {
            g.modify(&a).unwrap();
        }
        drop(g);
        qp
    }

    /// Registers the first `len` bytes of `buf` under key `key` (lkey =
    /// rkey, PD 9: the PD of every test QP).
    fn reg(ep: &Endpoint, buf: &mut [u8], key: u32, len: u64, access: u32) {
        ep.mrs.insert(MrEntry {
            lkey: key,
            rkey: key,
            pd: 9,
            addr: buf.as_mut_ptr() as u64,
            va: buf.as_mut_ptr() as u64,
            len,
            access,
        });
    }

    fn pump(a: &Endpoint, b: &Endpoint, wa: &Wire, wb: &Wire) {
        for _ in 0..100 {
            let fa: Vec<_> = wa.0.borrow_mut().drain(..).collect();
            let fb: Vec<_> = wb.0.borrow_mut().drain(..).collect();
            if fa.is_empty() && fb.is_empty() {
                return;
            }
            for f in fa {
                b.handle_frame(Instant::ZERO, &f, wb);
            }
            for f in fb {
                a.handle_frame(Instant::ZERO, &f, wa);
            }
        }
    }

    /// A UD QP in RTS with Q_Key 0x11 and an empty receive queue of 8.
    fn ud_qp(ep: &Endpoint, qpn: u32) -> Arc<Qp> {
        let cq = Arc::new(Cq::new(qpn, 16));
        ep.insert_cq(cq.clone());
        let port = crate::qp::UdPort {
            mac: [2, 0, 0, 0, 0, qpn as u8],
            gid: [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, qpn as u8],
            gid_v4: None,
            mtu: omx_engine::PathMtu::Mtu1024,
        };
        let caps = QpCaps {
            sq_depth: 8,
            rq_depth: 8,
            ..Default::default()
        };
        let qp = Arc::new(
            Qp::new_ud(Qpn::new(qpn), 9, caps, port, cq.clone(), cq, true).with_handle(qpn),
        );
        ep.insert_qp(qp.clone());
        let mut g = qp.lock();
        for a in omx_engine::testing::ud_steps(0x11, 1) {
            g.modify(&a).unwrap();
        }
        drop(g);
        qp
    }

    fn recv_wcs(qp: &Arc<Qp>) -> Vec<WorkCompletion> {
        let mut out = Vec::new();
        qp.recv_cq.poll_with(8, |_, wc| out.push(*wc));
        out
    }

    /// docs/wire.md §13.5: one copy per attached QP of the groups whose
    /// MAC is the frame's destination MAC, with the group's GID as DGID;
    /// a QP in two groups of one MAC gets one copy (the GID it attached
    /// first); an unattached QP, another MAC, or a detached QP get none.
    #[test]
    fn multicast_frames_reach_each_attached_qp_once() {
        let g1: [u8; 16] = [0xff, 0x0e, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let mut g2 = g1;
        g2[1] = 0x05; // same last four bytes: same MAC
        let m = [0x33, 0x33, 0, 0, 0, 1];
        let tx = Endpoint::new(1);
        let rx = Endpoint::new(2);
        let mut buf = vec![0u8; 8 * 2048];
        reg(&tx, &mut buf, 0x100, 2048, ACCESS_LOCAL_WRITE);
        reg(&rx, &mut buf[2048..], 0x100, 6 * 2048, ACCESS_LOCAL_WRITE);
        let s = ud_qp(&tx, 0x1001);
        let [a, b, c, u] = [0x2001, 0x2002, 0x2003, 0x2004].map(|n| ud_qp(&rx, n));
        let (tx_base, rx_base) = (buf.as_ptr() as u64, buf[2048..].as_ptr() as u64);
        for (i, q) in [&a, &b, &c, &u].into_iter().enumerate() {
            for k in 0..2u64 {
                let wr = RecvWr {
                    wr_id: k,
                    sg: SgList::single(rx_base + (i as u64 * 2 + k) * 512, 512, 0x100),
                };
                q.lock().post_recv(wr).unwrap();
            }
        }
        assert!(rx.attach_mcast(&a, g1, m), "first attachment");
        assert!(!rx.attach_mcast(&b, g1, m));
        assert!(!rx.attach_mcast(&b, g2, m));
        assert!(!rx.attach_mcast(&c, g2, m));
        assert!(rx.mcast_attached());
        let w = Wire::default();
        let send = |dmac: [u8; 6]| {
            let dest = omx_engine::UdDest {
                dmac,
                remote_qpn: 0xff_ffff,
                remote_qkey: 0x11,
                sgid: [1; 16],
                traffic_class: 0,
                hop_limit: 1,
            };
            let mut g = s.lock();
            g.post_send(
                SendWr {
                    wr_id: 1,
                    op: SendOp::Send,
                    sg: SgList::single(tx_base, 16, 0x100),
                    signaled: true,
                    solicited: false,
                },
                Some(dest),
            )
            .unwrap();
            let _ = tx.drive(&s, &mut g, Instant::ZERO, &w);
            w.0.borrow_mut().remove(0)
        };
        let f = send(m);
        rx.handle_frame(Instant::ZERO, &f, &w);
        let dgid = |q: &Arc<Qp>| {
            let wc = recv_wcs(q);
            assert_eq!(wc.len(), 1, "{:#x}: one copy", q.qpn.value());
            assert_eq!(wc[0].status, WcStatus::Success);
            assert_eq!(wc[0].src_qp, Qpn::new(0x1001));
            let at = (wc[0].qp_num.slot() as usize - 1) * 1024 + wc[0].wr_id as usize * 512;
            let base = 2048 + at;
            let mut d = [0u8; 16];
            d.copy_from_slice(&buf[base + 24..base + 40]);
            d
        };
        assert_eq!(dgid(&a), g1);
        assert_eq!(dgid(&b), g1, "attached to g1 first");
        assert_eq!(dgid(&c), g2);
        assert!(recv_wcs(&u).is_empty(), "not attached");
        // Another group's MAC: nobody, counted.
        let f = send([0x33, 0x33, 0, 0, 0, 2]);
        rx.handle_frame(Instant::ZERO, &f, &w);
        assert!([&a, &b, &c, &u].iter().all(|q| recv_wcs(q).is_empty()));
        assert_eq!(rx.counters()[2], ("rx_mcast_unjoined", 1));
        // Detach: a leaves, b keeps g2 only.
        assert!(!rx.detach_mcast(&a, g1));
        assert!(!rx.detach_mcast(&b, g1));
        let f = send(m);
        rx.handle_frame(Instant::ZERO, &f, &w);
        assert!(recv_wcs(&a).is_empty(), "detached");
        assert_eq!(dgid(&b), g2);
        assert_eq!(dgid(&c), g2);
        assert!(!rx.forget_mcast(&b));
        assert!(rx.forget_mcast(&c), "the last attachment");
        assert!(!rx.mcast_attached());
        rx.handle_frame(Instant::ZERO, &f, &w);
        assert!([&a, &b, &c, &u].iter().all(|q| recv_wcs(q).is_empty()));
        assert_eq!(rx.counters()[2], ("rx_mcast_unjoined", 2));
    }

    /// UC through the endpoint (docs/wire.md §14): an inline SEND leaves
    /// as one UC frame, completes at the sender on transmit (nothing
    /// left pending there once polled), lands in B's CQ, and B sends
    /// nothing back.
    #[test]
    fn uc_send_through_the_endpoint() {
        let a = Endpoint::new(1);
        let b = Endpoint::new(2);
        let qa = connect_typed(&a, 1 << 12, 2 << 12, 4, 16, true);
        let qb = connect_typed(&b, 2 << 12, 1 << 12, 4, 16, true);
        let mut mb = vec![0u8; 64];
        reg(&b, &mut mb, 0x200, 64, ACCESS_LOCAL_WRITE);
        qb.lock()
            .post_recv(RecvWr {
                wr_id: 7,
                sg: SgList::single(mb.as_mut_ptr() as u64, 64, 0x200),
            })
            .unwrap();
        let (wa, wb) = (Wire::default(), Wire::default());
        {
            let mut g = qa.lock();
            let wr = SendWr {
                wr_id: 1,
                op: SendOp::Send,
                sg: SgList::default(),
                signaled: true,
                solicited: false,
            };
            g.post_send_inline(wr, None, 2, |d| d.copy_from_slice(b"hi"))
                .unwrap();
            a.drive(&qa, &mut g, Instant::ZERO, &wa);
        }
        let frames: Vec<_> = wa.0.borrow_mut().drain(..).collect();
        assert_eq!(frames.len(), 1);
        let f = omx_wire::Frame::new_checked(&frames[0][..]).unwrap();
        assert_eq!(
            (f.opcode(), f.transport(), f.ack_req()),
            (omx_wire::Opcode::SendOnly, omx_wire::Transport::Uc, false)
        );
        let (wc, _) = qa.send_cq.poll_one().expect("completed on transmit");
        assert_eq!((wc.wr_id, wc.status), (1, WcStatus::Success));
        a.drive(&qa, &mut qa.lock(), Instant::ZERO, &wa);
        assert!(!qa.pending.load(SeqCst), "nothing left once polled");
        b.handle_frame(Instant::ZERO, &frames[0], &wb);
        assert!(wb.0.borrow().is_empty(), "UC sends no ACK");
        let (wc, _) = qb.recv_cq.poll_one().expect("received");
        assert_eq!((wc.wr_id, wc.byte_len), (7, 2));
        assert_eq!(&mb[..2], b"hi");
    }

    /// Only a request the QP accepted from its connected peer counts it as
    /// receiving (docs/wire.md §9): a forged one (another source QPN)
    /// leaves the count, and so every other QP's grant, alone.
    #[test]
    fn only_accepted_requests_count_a_qp_as_receiving() {
        let a = Endpoint::new(1);
        let b = Endpoint::new(2);
        let _qa = connect(&a, 1 << 12, 2 << 12);
        let qb = connect(&b, 2 << 12, 1 << 12);
        let wb = Wire::default();
        let genuine = omx_engine::testing::Crafter::new(1 << 12, 2 << 12);
        let forged = omx_engine::testing::Crafter::new(3 << 12, 2 << 12);
        let write = |c: &omx_engine::testing::Crafter| {
            c.frame(
                omx_wire::Opcode::SendOnly,
                0,
                omx_wire::Ext::default(),
                b"x",
            )
        };
        let count = || b.act_cur.load(SeqCst);
        b.handle_frame(Instant::from_micros(10), &write(&forged), &wb);
        assert_eq!(count(), 0, "a forged request is not counted");
        assert_eq!(qb.lock().eng.stats().rx_wrong_qp, 1);
        b.handle_frame(Instant::from_micros(20), &write(&genuine), &wb);
        assert_eq!(count(), 1, "the peer's request is");
    }

    /// A QP in interactive mode holds the ACK of a frame a busy-polling
    /// thread received or the progress thread received for a busy-poller,
    /// and ACKs at once a frame the progress thread received for an
    /// application that does not busy-poll (docs/wire.md §10.1).
    #[test]
    fn only_frames_of_a_busy_poller_have_their_ack_held() {
        let a = Endpoint::new(1);
        let b = Endpoint::new(2);
        let qa = connect(&a, 1 << 12, 2 << 12);
        let qb = connect(&b, 2 << 12, 1 << 12);
        let (mut ma, mut mb) = (vec![0u8; 64], vec![0u8; 64]);
        for (ep, qp, key, m) in [(&a, &qa, 0x100, &mut ma), (&b, &qb, 0x200, &mut mb)] {
            ep.mrs.insert(MrEntry {
                lkey: key,
                rkey: key,
                pd: 9,
                addr: m.as_mut_ptr() as u64,
                va: m.as_mut_ptr() as u64,
                len: 64,
                access: ACCESS_LOCAL_WRITE,
            });
            let mut g = qp.lock();
            for id in 0..4 {
                g.post_recv(RecvWr {
                    wr_id: id,
                    sg: SgList::single(m.as_mut_ptr() as u64, 64, key),
                })
                .unwrap();
            }
        }
        let (wa, wb) = (Wire::default(), Wire::default());
        let send = |ep: &Endpoint, qp: &Arc<Qp>, w: &Wire, id: u64| {
            let mut g = qp.lock();
            let wr = SendWr {
                wr_id: id,
                op: SendOp::Send,
                sg: SgList::default(),
                signaled: false,
                solicited: false,
            };
            g.post_send_inline(wr, None, 2, |d| d.copy_from_slice(b"hi"))
                .unwrap();
            ep.drive(qp, &mut g, Instant::ZERO, w);
        };
        let take = |w: &Wire| -> Vec<Vec<u8>> { w.0.borrow_mut().drain(..).collect() };
        let kinds = |fs: &[Vec<u8>]| -> Vec<(omx_wire::Opcode, bool)> {
            fs.iter()
                .map(|f| {
                    let f = omx_wire::Frame::new_checked(&f[..]).unwrap();
                    (f.opcode(), f.piggy_ack())
                })
                .collect()
        };
        use omx_wire::Opcode::{Acknowledge, SendOnly};
        // A asks, B answers at once: B becomes interactive.
        send(&a, &qa, &wa, 1);
        for f in take(&wa) {
            b.handle_frame(Instant::ZERO, &f, &wb);
        }
        assert_eq!(kinds(&take(&wb)), [(Acknowledge, false)]);
        send(&b, &qb, &wb, 2);
        for f in take(&wb) {
            a.handle_frame(Instant::ZERO, &f, &wa);
        }
        take(&wa);
        // Busy-polled: the ACK waits for B's answer, which carries it.
        send(&a, &qa, &wa, 3);
        for f in take(&wa) {
            b.handle_frame_by(RxBy::Poller, Instant::ZERO, &f, &wb);
        }
        assert!(take(&wb).is_empty());
        assert!(qb.pending.load(SeqCst), "a held ACK counts as pending");
        send(&b, &qb, &wb, 4);
        assert_eq!(kinds(&take(&wb)), [(SendOnly, true)]);
        // Received by the progress thread for an application that does
        // not busy-poll: ACKed at once.
        send(&a, &qa, &wa, 5);
        for f in take(&wa) {
            b.handle_frame_by(RxBy::Progress, Instant::ZERO, &f, &wb);
        }
        assert_eq!(kinds(&take(&wb)), [(Acknowledge, false)]);
        // Received by the progress thread for a busy-poller (it spins on
        // memory between polls): held for the answer, like a polled frame.
        send(&b, &qb, &wb, 6);
        for f in take(&wb) {
            a.handle_frame(Instant::ZERO, &f, &wa);
        }
        take(&wa);
        send(&a, &qa, &wa, 7);
        for f in take(&wa) {
            b.handle_frame_by(RxBy::ProgressForPoller, Instant::ZERO, &f, &wb);
        }
        assert!(take(&wb).is_empty());
        send(&b, &qb, &wb, 8);
        assert_eq!(kinds(&take(&wb)), [(SendOnly, true)]);
    }

    /// `drive_after_post_recv` skips only what a receive WR cannot
    /// change: the first WR still makes the QP pending, and in ERROR the
    /// flushed completion still reaches the CQ at once.
    #[test]
    fn post_recv_drive_sets_pending_and_flushes_in_error() {
        let ep = Endpoint::new(1);
        let qp = connect(&ep, 1 << 12, 2 << 12);
        let w = Wire::default();
        let mut buf = vec![0u8; 64];
        let post = |id: u64, buf: &mut [u8]| {
            let mut g = qp.lock();
            g.post_recv(RecvWr {
                wr_id: id,
                sg: SgList::single(buf.as_mut_ptr() as u64, 64, 0),
            })
            .unwrap();
            ep.drive_after_post_recv(&qp, &mut g, Instant::ZERO, &w)
        };
        assert!(!ep.work_pending());
        post(1, &mut buf);
        assert!(qp.pending.load(SeqCst) && ep.work_pending());
        post(2, &mut buf);
        assert!(ep.work_pending());
        assert!(w.0.borrow().is_empty(), "a receive WR sends nothing");
        // In ERROR (not driven since: the QP still counts as pending) a
        // new WR is flushed, and drive_after_post_recv moves it to the CQ
        // with the WRs the move to ERROR flushed.
        qp.lock()
            .modify(&QpAttr {
                state: Some(QpState::Err),
                ..Default::default()
            })
            .unwrap();
        assert!(qp.pending.load(SeqCst));
        post(3, &mut buf);
        let mut ids = Vec::new();
        qp.recv_cq
            .poll_with(16, |_, wc| ids.push((wc.wr_id, wc.status)));
        let flushed = |id| (id, WcStatus::WrFlushErr);
        assert_eq!(ids, [flushed(1), flushed(2), flushed(3)]);
    }

    #[test]
    fn fail_all_flushes_every_qp_and_leaves_none_pending() {
        let ep = Endpoint::new(1);
        let a = connect(&ep, 1 << 12 | 1, 2 << 12);
        let b = connect(&ep, 1 << 12 | 2, 2 << 12 | 1);
        let w = Wire::default();
        let mut buf = vec![0u8; 64];
        for (qp, id) in [(&a, 10), (&b, 20)] {
            let mut g = qp.lock();
            g.post_recv(RecvWr {
                wr_id: id,
                sg: SgList::single(buf.as_mut_ptr() as u64, 64, 0),
            })
            .unwrap();
            ep.drive_after_post_recv(qp, &mut g, Instant::ZERO, &w);
        }
        assert!(ep.work_pending());
        let d = ep.fail_all(Instant::ZERO, &w);
        assert!(d.idle, "the last pending WRs completed");
        assert!(!ep.work_pending());
        for (qp, id) in [(&a, 10), (&b, 20)] {
            assert_eq!(qp.lock().eng.state(), QpState::Err);
            let mut got = Vec::new();
            qp.recv_cq
                .poll_with(16, |_, wc| got.push((wc.wr_id, wc.status)));
            assert_eq!(got, [(id, WcStatus::WrFlushErr)]);
        }
    }

    /// A completion that finds its CQ full overruns it: the CQ is in
    /// error (CQ_ERR for the kernel pass), the QP moves to ERROR, and the
    /// drive tells the caller to run the kernel pass.
    #[test]
    fn a_cq_overrun_fails_the_qp_and_raises_cq_err() {
        let a = Endpoint::new(1);
        let b = Endpoint::new(2);
        let qa = connect(&a, 1 << 12, 2 << 12);
        let qb = connect_with(&b, 2 << 12, 1 << 12, 4, 1);
        let mut dst = vec![0u8; 64];
        reg(&b, &mut dst, 0x200, 64, ACCESS_LOCAL_WRITE);
        let (wa, wb) = (Wire::default(), Wire::default());
        for id in 0..3 {
            let mut g = qb.lock();
            g.post_recv(RecvWr {
                wr_id: id,
                sg: SgList::single(dst.as_mut_ptr() as u64, 64, 0x200),
            })
            .unwrap();
        }
        {
            let mut g = qa.lock();
            for id in 10..12 {
                g.post_send_inline(
                    SendWr {
                        wr_id: id,
                        op: SendOp::Send,
                        sg: SgList::default(),
                        signaled: true,
                        solicited: false,
                    },
                    None,
                    2,
                    |d| d.copy_from_slice(b"hi"),
                )
                .unwrap();
            }
            a.drive(&qa, &mut g, Instant::ZERO, &wa);
        }
        pump(&a, &b, &wa, &wb);
        assert!(qb.recv_cq.in_error());
        assert_eq!(qb.lock().eng.state(), QpState::Err, "the QP failed");
        let mut calls = Vec::new();
        b.kernel_pass(|c| calls.push(c));
        assert_eq!(
            calls,
            [
                KernelCall::QpEvent {
                    handle: 2 << 12,
                    event: omx_engine::QpEvent {
                        kind: omx_engine::QpEventKind::Fatal,
                        epoch: 0,
                    },
                },
                KernelCall::CqError(1)
            ]
        );
        let mut ids = Vec::new();
        qb.recv_cq
            .poll_with(8, |_, wc| ids.push((wc.wr_id, wc.status)));
        assert_eq!(ids, [(0, WcStatus::Success)], "the one that fit");
        calls.clear();
        b.kernel_pass(|c| calls.push(c));
        assert!(calls.is_empty(), "CQ_ERR once");
    }

    #[test]
    fn events_pack_into_one_word() {
        use omx_engine::{QpEvent, QpEventKind as K};
        for kind in [K::None, K::Fatal, K::ReqErr, K::AccessErr] {
            for epoch in [0, 1, u32::MAX] {
                let e = QpEvent { kind, epoch };
                assert_eq!(unpack_event(pack_event(e)), Some(e));
            }
        }
        assert_eq!(unpack_event(0), None);
    }

    /// The engine's own moves to ERROR reach the kernel pass, once each,
    /// with their kind: the responder that refused a WRITE its QP does not
    /// allow (REQ_ERR) and the requester that got the NAK (no event, but
    /// its kernel shadow must still follow to ERROR).
    #[test]
    fn engine_errors_reach_the_kernel_pass_once() {
        let a = Endpoint::new(1);
        let b = Endpoint::new(2);
        let qa = connect(&a, 1 << 12, 2 << 12);
        let qb = connect(&b, 2 << 12, 1 << 12);
        qb.lock()
            .modify(&QpAttr {
                state: Some(QpState::Rts),
                access_flags: Some(0),
                ..Default::default()
            })
            .unwrap();
        let mut dst = vec![0u8; 64];
        reg(
            &b,
            &mut dst,
            0x200,
            64,
            ACCESS_LOCAL_WRITE | crate::mr::ACCESS_REMOTE_WRITE,
        );
        let (wa, wb) = (Wire::default(), Wire::default());
        {
            let mut g = qa.lock();
            g.post_send_inline(
                SendWr {
                    wr_id: 1,
                    op: SendOp::RdmaWrite {
                        remote_addr: dst.as_ptr() as u64,
                        rkey: 0x200,
                    },
                    sg: SgList::default(),
                    signaled: true,
                    solicited: false,
                },
                None,
                4,
                |d| d.copy_from_slice(b"evil"),
            )
            .unwrap();
            a.drive(&qa, &mut g, Instant::ZERO, &wa);
        }
        pump(&a, &b, &wa, &wb);
        assert_eq!(&dst[..4], [0; 4], "nothing written");
        let pass = |ep: &Endpoint| {
            let mut v = Vec::new();
            ep.kernel_pass(|c| v.push(c));
            v
        };
        let ev = |handle, kind| KernelCall::QpEvent {
            handle,
            event: omx_engine::QpEvent { kind, epoch: 0 },
        };
        assert_eq!(pass(&b), [ev(2 << 12, omx_engine::QpEventKind::ReqErr)]);
        assert_eq!(pass(&a), [ev(1 << 12, omx_engine::QpEventKind::None)]);
        assert!(pass(&a).is_empty() && pass(&b).is_empty(), "once");
    }

    #[test]
    fn passes_over_all_qps_visit_exactly_the_live_ones() {
        let ep = Endpoint::new(3);
        let a = connect(&ep, 3 << 12 | 5, 4 << 12);
        let b = connect(&ep, 3 << 12 | 4000, 4 << 12 | 1);
        let live = |ep: &Endpoint| -> Vec<u32> {
            let t = ep.qps.read().unwrap();
            let mut v: Vec<u32> = t.live.iter().map(|q| q.qpn.value()).collect();
            v.sort_unstable();
            assert_eq!(v.len(), t.slots.iter().flatten().count());
            v
        };
        assert_eq!(live(&ep), [a.qpn.value(), b.qpn.value()]);
        // Another endpoint's QPN with the same slot removes nothing.
        assert!(ep.remove_qp(Qpn::new(4 << 12 | 5)).is_none());
        assert!(ep.remove_qp(a.qpn).is_some());
        assert_eq!(live(&ep), [b.qpn.value()]);
        // The slot is reused by a new QP.
        let c = connect(&ep, 3 << 12 | 5, 4 << 12 | 2);
        assert_eq!(live(&ep), [c.qpn.value(), b.qpn.value()]);
        assert!(ep.remove_qp(b.qpn).is_some());
        assert!(ep.remove_qp(c.qpn).is_some());
        assert!(live(&ep).is_empty());
    }

    #[test]
    fn demux_by_endpoint_and_slot() {
        let ep = Endpoint::new(3);
        let qp = connect(&ep, 3 << 12 | 5, 4 << 12);
        assert!(ep.lookup(Qpn::new(3 << 12 | 5)).is_some());
        assert!(ep.lookup(Qpn::new(3 << 12 | 6)).is_none());
        assert!(ep.lookup(Qpn::new(4 << 12 | 5)).is_none());
        // Garbage frames are ignored, and counted.
        let w = Wire::default();
        assert_eq!(
            ep.handle_frame(Instant::ZERO, &[0u8; 10], &w),
            Drive::default()
        );
        assert_eq!(
            ep.counters(),
            [
                ("rx_unparsable", 1),
                ("rx_unknown_qp", 0),
                ("rx_mcast_unjoined", 0)
            ]
        );
        // So are frames for a slot with no QP, or another endpoint.
        for qpn in [3u32 << 12 | 6, 4 << 12 | 5] {
            let repr = omx_wire::FrameRepr {
                dst_mac: [2, 0, 0, 0, 0, 1],
                src_mac: [2, 0, 0, 0, 0, 2],
                peer_index: 0xffff,
                bth: omx_wire::Bth {
                    opcode: omx_wire::Opcode::SendOnly,
                    transport: omx_wire::Transport::Rc,
                    ack_req: true,
                    solicited: false,
                    dst_qpn: Qpn::new(qpn),
                    src_qpn: Qpn::new(4 << 12),
                    psn: omx_wire::Psn::new(0),
                },
                ext: omx_wire::Ext::default(),
                payload_len: 0,
            };
            let mut f = [0u8; 64];
            let n = repr
                .emit(&mut omx_wire::Frame::new_unchecked(&mut f[..]), |_| ())
                .unwrap();
            assert_eq!(
                ep.handle_frame(Instant::ZERO, &f[..n], &w),
                Drive::default()
            );
        }
        assert_eq!(
            ep.counters(),
            [
                ("rx_unparsable", 1),
                ("rx_unknown_qp", 2),
                ("rx_mcast_unjoined", 0)
            ]
        );
        assert!(w.0.borrow().is_empty(), "never answered");
        assert!(ep.remove_qp(qp.qpn).is_some());
        assert!(ep.lookup(qp.qpn).is_none());
    }

    #[test]
    fn timer_pass_visits_only_qps_with_a_timer_running() {
        // 1000 connected idle QPs and one with a SEND in flight: every
        // timer pass visits that one alone (issue 14 §2), retransmits
        // it when due, and forgets it once it is destroyed.
        let a = Endpoint::new(1);
        let qps: Vec<_> = (1..=1000u32)
            .map(|s| connect(&a, 1 << 12 | s, 2 << 12 | s))
            .collect();
        let mut src = vec![7u8; 64];
        reg(&a, &mut src, 0x100, 64, 0);
        let w = Wire::default();
        let busy = &qps[500];
        {
            let mut g = busy.lock();
            g.post_send(
                SendWr {
                    wr_id: 1,
                    op: SendOp::Send,
                    sg: SgList::single(src.as_ptr() as u64, 64, 0x100),
                    signaled: true,
                    solicited: false,
                },
                None,
            )
            .unwrap();
            a.drive(busy, &mut g, Instant::ZERO, &w);
        }
        assert_eq!(w.0.borrow_mut().drain(..).count(), 1);
        let due = busy.deadline();
        assert_ne!(due, u64::MAX, "the retransmission timer runs");
        let d = a.handle_timeouts(Instant::ZERO, &w);
        assert_eq!(d.deadline_ns, due);
        assert_eq!(a.timer_visits(), 1, "one pass, one QP with a timer");
        let mut now = due;
        for _ in 0..3 {
            now += (10 * omx_engine::MIN_RTO.as_nanos()) << 5;
            a.handle_timeouts(Instant::from_nanos(now), &w);
        }
        assert_eq!(a.timer_visits(), 4);
        assert!(
            !w.0.borrow().is_empty(),
            "the pass retransmitted the unanswered SEND"
        );
        // Destroyed: one more visit finds the slot empty and unmarks it.
        let _gone = a.remove_qp(busy.qpn).unwrap();
        a.handle_timeouts(Instant::from_nanos(now), &w);
        a.handle_timeouts(Instant::from_nanos(now), &w);
        assert_eq!(a.timer_visits(), 4, "an empty slot is no visit");
        assert!(!a.armed.is_marked(busy.qpn.slot() as usize));
    }

    #[test]
    fn send_recv_and_inline_between_two_endpoints() {
        let a = Endpoint::new(1);
        let b = Endpoint::new(2);
        let qa = connect(&a, 1 << 12, 2 << 12);
        let qb = connect(&b, 2 << 12, 1 << 12);
        let mut src = vec![7u8; 3000];
        let mut dst = vec![0u8; 4096];
        reg(&a, &mut src, 0x100, 3000, 0);
        reg(&b, &mut dst, 0x200, 4096, ACCESS_LOCAL_WRITE);
        let (wa, wb) = (Wire::default(), Wire::default());
        for id in 0..2 {
            let mut g = qb.lock();
            g.post_recv(RecvWr {
                wr_id: id,
                sg: SgList::single(dst.as_mut_ptr() as u64, 4096, 0x200),
            })
            .unwrap();
        }
        {
            let mut g = qa.lock();
            g.post_send(
                SendWr {
                    wr_id: 10,
                    op: SendOp::Send,
                    sg: SgList::single(src.as_ptr() as u64, 3000, 0x100),
                    signaled: true,
                    solicited: false,
                },
                None,
            )
            .unwrap();
            g.post_send_inline(
                SendWr {
                    wr_id: 11,
                    op: SendOp::Send,
                    sg: SgList::default(),
                    signaled: true,
                    solicited: false,
                },
                None,
                5,
                |d| d.copy_from_slice(b"hello"),
            )
            .unwrap();
            a.drive(&qa, &mut g, Instant::ZERO, &wa);
        }
        pump(&a, &b, &wa, &wb);
        let mut out = [WorkCompletion {
            wr_id: 0,
            status: WcStatus::GeneralErr,
            opcode: omx_engine::WcOpcode::Send,
            queue: omx_engine::WcQueue::Send,
            byte_len: 0,
            imm: None,
            inv: None,
            qp_num: Qpn::new(0),
            src_qp: Qpn::new(0),
            solicited: false,
            grh: false,
            sl: 0,
        }; 4];
        assert_eq!(qb.recv_cq.poll(&mut out), 2);
        assert_eq!(out[0].status, WcStatus::Success);
        assert_eq!(out[0].byte_len, 3000);
        assert_eq!(out[1].byte_len, 5);
        assert_eq!(&dst[..5], b"hello");
        assert_eq!(qa.send_cq.poll(&mut out), 2);
        assert_eq!([out[0].wr_id, out[1].wr_id], [10, 11]);
    }

    #[test]
    fn work_pending_follows_posted_wrs_and_the_last_completion_reports_idle() {
        let a = Endpoint::new(1);
        let b = Endpoint::new(2);
        let qa = connect(&a, 1 << 12, 2 << 12);
        let qb = connect(&b, 2 << 12, 1 << 12);
        let mut buf = vec![0u8; 64];
        for ep in [&a, &b] {
            reg(ep, &mut buf, 0x100, 64, ACCESS_LOCAL_WRITE);
        }
        let (wa, wb) = (Wire::default(), Wire::default());
        assert!(!a.work_pending() && !b.work_pending());
        {
            let mut g = qb.lock();
            g.post_recv(RecvWr {
                wr_id: 1,
                sg: SgList::single(buf.as_mut_ptr() as u64, 64, 0x100),
            })
            .unwrap();
            assert!(!b.drive(&qb, &mut g, Instant::ZERO, &wb).idle);
        }
        assert!(b.work_pending(), "a posted receive is pending work");
        {
            let mut g = qa.lock();
            g.post_send(
                SendWr {
                    wr_id: 2,
                    op: SendOp::Send,
                    sg: SgList::single(buf.as_ptr() as u64, 8, 0x100),
                    signaled: true,
                    solicited: false,
                },
                None,
            )
            .unwrap();
            assert!(!a.drive(&qa, &mut g, Instant::ZERO, &wa).idle);
        }
        assert!(a.work_pending());
        // The SEND reaches b: its receive completes, b has nothing left.
        let mut idle_b = false;
        for f in wa.0.borrow_mut().drain(..) {
            idle_b |= b.handle_frame(Instant::ZERO, &f, &wb).idle;
        }
        assert!(idle_b && !b.work_pending());
        // The ACK reaches a: its send completes, exactly one drive says so.
        let mut idle_a = 0;
        for f in wb.0.borrow_mut().drain(..) {
            idle_a += usize::from(a.handle_frame(Instant::ZERO, &f, &wa).idle);
        }
        assert_eq!(idle_a, 1);
        assert!(!a.work_pending());
        // A QP removed with work pending no longer counts.
        {
            let mut g = qa.lock();
            g.post_send(
                SendWr {
                    wr_id: 3,
                    op: SendOp::Send,
                    sg: SgList::single(buf.as_ptr() as u64, 8, 0x100),
                    signaled: true,
                    solicited: false,
                },
                None,
            )
            .unwrap();
            a.drive(&qa, &mut g, Instant::ZERO, &wa);
        }
        assert!(a.work_pending());
        assert!(a.remove_qp(qa.qpn).is_some());
        assert!(!a.work_pending());
        // A thread that looked the QP up before it was removed and drives
        // it now does not count it again.
        a.drive(&qa, &mut qa.lock(), Instant::ZERO, &wa);
        assert!(!a.work_pending());
    }

    /// The lock-free count of receiving QPs agrees with the engine's
    /// reference (`ActiveSet`): epochs of a ring's worth of request
    /// frames or of `EPOCH`, QPs aged out after two.
    #[test]
    fn active_qps_are_counted_as_the_reference_counts_them() {
        let ep = Endpoint::with_ring(1, 4);
        let policy = omx_engine::grant::GrantPolicy::new(4);
        let mut reference = omx_engine::grant::ActiveSet::default();
        let (mut a, mut b) = ([0u64; 3], [0u64; 3]);
        let t0 = Instant::from_micros(5_000);
        let epoch_us = omx_engine::grant::EPOCH.as_nanos() / 1000;
        let mut steps = vec![
            (0, 0),
            (0, 0),
            (1, 0),
            (2, 0),
            (0, 0),
            (0, 0),
            (0, 0),
            (0, 0),
            (1, 0),
        ];
        steps.extend([(2, epoch_us), (0, 4 * epoch_us)]);
        let mut got = Vec::new();
        for (q, us) in steps {
            let now = t0 + omx_engine::Duration::from_micros(us);
            let n = ep.note_active(&mut a[q], now);
            assert_eq!(n, reference.note(&policy, &mut b[q], now), "{q} at {us} us");
            got.push(n);
        }
        assert_eq!(got, [1, 1, 2, 3, 3, 3, 3, 3, 1, 1, 1]);
        assert_eq!(ep.grants.share(3), omx_engine::grant::MIN_GRANT);
    }

    #[test]
    fn receive_windows_share_the_ring_and_come_back_on_removal() {
        let ep = Endpoint::with_ring(1, 768);
        let got: Vec<u16> = (0..8).map(|_| ep.reserve_window().packets).collect();
        assert_eq!(got, [256, 256, 128, 64, 32, 16, 16, 16]);
        // Overcommitted now: nothing left, windows at the minimum.
        assert_eq!(
            ep.reserve_window(),
            Window {
                packets: 16,
                taken: 0
            }
        );
        let ep = Endpoint::with_ring(1, 768);
        let cq = Arc::new(Cq::new(1, 4));
        let w = ep.reserve_window();
        let qp = Arc::new(Qp::new(
            Qpn::new(1 << 12 | 3),
            9,
            QpCaps {
                sq_depth: 4,
                rq_depth: 4,
                window: w,
                uc: false,
            },
            cq.clone(),
            cq,
            false,
        ));
        ep.insert_qp(qp.clone());
        assert_eq!(ep.reserve_window().packets, 256, "512 left");
        assert!(ep.remove_qp(qp.qpn).is_some());
        // 512 - 256 (the reservation above) + 256 given back.
        assert_eq!(ep.reserve_window().packets, 256);
        assert_eq!(ep.reserve_window().packets, 128);
    }

    #[test]
    fn bad_lkey_is_a_local_protection_error() {
        let a = Endpoint::new(1);
        let b = Endpoint::new(2);
        let qa = connect(&a, 1 << 12, 2 << 12);
        let _qb = connect(&b, 2 << 12, 1 << 12);
        let wa = Wire::default();
        let mut g = qa.lock();
        g.post_send(
            SendWr {
                wr_id: 1,
                op: SendOp::Send,
                sg: SgList::single(0x1000, 64, 0x999),
                signaled: true,
                solicited: false,
            },
            None,
        )
        .unwrap();
        a.drive(&qa, &mut g, Instant::ZERO, &wa);
        drop(g);
        let mut out = [ZERO; 1];
        assert_eq!(qa.send_cq.poll(&mut out), 1);
        assert_eq!(out[0].status, WcStatus::LocProtErr);
        assert!(wa.0.borrow().is_empty(), "nothing sent");
    }

    /// Registered memory the application unmapped (docs/provider.md,
    /// "When a registered buffer goes away"): a peer's WRITE into it is
    /// NAKed (remote access error at the requester), a SEND landing in a
    /// receive buffer there completes the receive with LOC_PROT_ERR (remote
    /// operational error at the sender), and a local gather from it
    /// completes with LOC_PROT_ERR; nothing is sent for it, and the
    /// process lives on.
    #[test]
    fn unmapped_registered_memory_gives_errors_at_both_ends() {
        use crate::mr::{ACCESS_LOCAL_WRITE as LW, ACCESS_REMOTE_WRITE};
        use crate::test_pages::{page, Pages};
        let p = Pages::new(4);
        let pg = page() as u64;
        let base = p.addr(0, 0) as u64;
        let hole = Pages::hole_guard();
        let run = |op: SendOp, src: u64, want_a: WcStatus, want_b: Option<WcStatus>| {
            let a = Endpoint::new(1);
            let b = Endpoint::new(2);
            let qa = connect(&a, 1 << 12, 2 << 12);
            let qb = connect(&b, 2 << 12, 1 << 12);
            for (ep, key) in [(&a, 0x100), (&b, 0x200)] {
                ep.mrs.insert(MrEntry {
                    lkey: key,
                    rkey: key,
                    pd: 9,
                    addr: base,
                    va: base,
                    len: 4 * pg,
                    access: LW | ACCESS_REMOTE_WRITE,
                });
            }
            let (wa, wb) = (Wire::default(), Wire::default());
            // The receive buffer is page 2, unmapped.
            qb.lock()
                .post_recv(RecvWr {
                    wr_id: 5,
                    sg: SgList::single(base + 2 * pg, 256, 0x200),
                })
                .unwrap();
            {
                let mut g = qa.lock();
                g.post_send(
                    SendWr {
                        wr_id: 1,
                        op,
                        sg: SgList::single(src, 100, 0x100),
                        signaled: true,
                        solicited: false,
                    },
                    None,
                )
                .unwrap();
                a.drive(&qa, &mut g, Instant::ZERO, &wa);
            }
            if want_a == WcStatus::LocProtErr {
                assert!(wa.0.borrow().is_empty(), "nothing sent");
            }
            pump(&a, &b, &wa, &wb);
            let mut out = [ZERO; 2];
            assert_eq!(qa.send_cq.poll(&mut out), 1);
            assert_eq!((out[0].wr_id, out[0].status), (1, want_a));
            let n = qb.recv_cq.poll(&mut out);
            match want_b {
                Some(st) => {
                    assert_eq!(n, 1);
                    assert_eq!((out[0].wr_id, out[0].status), (5, st));
                }
                None => assert_eq!(n, 0),
            }
        };
        p.unmap(2);
        // WRITE into the unmapped page 2 of the target's MR (the target's
        // QP goes to ERROR, flushing its receive WR).
        run(
            SendOp::RdmaWrite {
                remote_addr: base + 2 * pg + 8,
                rkey: 0x200,
            },
            base,
            WcStatus::RemAccessErr,
            Some(WcStatus::WrFlushErr),
        );
        // SEND into the receive buffer on page 2.
        run(
            SendOp::Send,
            base,
            WcStatus::RemOpErr,
            Some(WcStatus::LocProtErr),
        );
        // SEND gathered from page 2: nothing reaches the target.
        run(SendOp::Send, base + 2 * pg, WcStatus::LocProtErr, None);
        drop(hole);
    }

    /// Several threads post on one QP while another receives and a third
    /// plays the network (and runs timers): every message arrives once, in
    /// per-sender order.
    #[test]
    fn concurrent_posters_poller_and_network() {
        use std::collections::VecDeque;
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Mutex;

        #[derive(Default)]
        struct Q(Mutex<VecDeque<Vec<u8>>>);
        impl FrameSink for Q {
            fn send(&self, f: &[u8]) {
                self.0.lock().unwrap().push_back(f.to_vec());
            }
        }
        const PER: u32 = 300;
        const SLOTS_RX: u64 = 16;
        let a = Arc::new(Endpoint::new(1));
        let b = Arc::new(Endpoint::new(2));
        let qa = connect(&a, 1 << 12, 2 << 12);
        let qb = connect_with(&b, 2 << 12, 1 << 12, 32, 64);
        let (wa, wb) = (Arc::new(Q::default()), Arc::new(Q::default()));
        let mut rxbuf = vec![0u8; (SLOTS_RX * 64) as usize];
        let rxaddr = rxbuf.as_mut_ptr() as u64;
        b.mrs.insert(MrEntry {
            lkey: 0x200,
            rkey: 0x200,
            pd: 9,
            addr: rxaddr,
            va: rxaddr,
            len: SLOTS_RX * 64,
            access: ACCESS_LOCAL_WRITE,
        });
        let post_rx = |slot: u64| {
            let mut g = qb.lock();
            g.post_recv(RecvWr {
                wr_id: slot,
                sg: SgList::single(rxaddr + slot * 64, 64, 0x200),
            })
            .unwrap();
        };
        for s in 0..SLOTS_RX {
            post_rx(s);
        }
        let done = Arc::new(AtomicBool::new(false));
        let base = std::time::Instant::now();
        let now = move || Instant::from_nanos(base.elapsed().as_nanos() as u64 + 1);
        std::thread::scope(|sc| {
            {
                let (a, b, wa, wb, done) = (&a, &b, wa.clone(), wb.clone(), done.clone());
                sc.spawn(move || {
                    while !done.load(Ordering::Relaxed) {
                        let fa = wa.0.lock().unwrap().pop_front();
                        if let Some(f) = fa {
                            b.handle_frame(now(), &f, &*wb);
                        }
                        let fb = wb.0.lock().unwrap().pop_front();
                        if let Some(f) = fb {
                            a.handle_frame(now(), &f, &*wa);
                        }
                        a.handle_timeouts(now(), &*wa);
                        b.handle_timeouts(now(), &*wb);
                        std::thread::yield_now();
                    }
                });
            }
            for k in 0..2u32 {
                let (a, qa, wa, done) = (&a, &qa, wa.clone(), done.clone());
                sc.spawn(move || {
                    let mut sink = [ZERO; 8];
                    for i in 0..PER {
                        loop {
                            if done.load(Ordering::Relaxed) {
                                return;
                            }
                            let mut g = qa.lock();
                            let r = g.post_send_inline(
                                SendWr {
                                    wr_id: u64::from(k << 16 | i),
                                    op: SendOp::Send,
                                    sg: SgList::default(),
                                    signaled: true,
                                    solicited: false,
                                },
                                None,
                                8,
                                |d| {
                                    d[..4].copy_from_slice(&k.to_le_bytes());
                                    d[4..].copy_from_slice(&i.to_le_bytes());
                                },
                            );
                            a.drive(qa, &mut g, now(), &*wa);
                            drop(g);
                            match r {
                                Ok(()) => break,
                                Err(omx_engine::PostError::Full) => {
                                    qa.send_cq.poll(&mut sink);
                                    std::thread::yield_now();
                                }
                                Err(e) => panic!("{e:?}"),
                            }
                        }
                        qa.send_cq.poll(&mut sink);
                    }
                });
            }
            // Whatever happens below, the helper threads stop.
            struct StopOnDrop(Arc<AtomicBool>);
            impl Drop for StopOnDrop {
                fn drop(&mut self) {
                    self.0.store(true, Ordering::Relaxed);
                }
            }
            let _stop = StopOnDrop(done.clone());
            let mut next = [0u32; 2];
            let mut out = [ZERO; 4];
            let t0 = std::time::Instant::now();
            while next != [PER, PER] {
                assert!(t0.elapsed().as_secs() < 30, "stuck at {next:?}");
                let n = qb.recv_cq.poll(&mut out);
                for w in &out[..n] {
                    assert_eq!(w.status, WcStatus::Success);
                    assert_eq!(w.byte_len, 8);
                    let o = (w.wr_id * 64) as usize;
                    let k = u32::from_le_bytes(rxbuf[o..o + 4].try_into().unwrap()) as usize;
                    let i = u32::from_le_bytes(rxbuf[o + 4..o + 8].try_into().unwrap());
                    assert_eq!(i, next[k], "sender {k} in order");
                    next[k] += 1;
                    post_rx(w.wr_id);
                    let mut g = qb.lock();
                    b.drive(&qb, &mut g, now(), &*wb);
                }
                if n == 0 {
                    std::thread::yield_now();
                }
            }
            done.store(true, Ordering::Relaxed);
        });
        assert_eq!(qb.recv_cq.overflows(), 0);
    }

    const ZERO: WorkCompletion = WorkCompletion {
        wr_id: 0,
        status: WcStatus::Success,
        opcode: omx_engine::WcOpcode::Send,
        queue: omx_engine::WcQueue::Send,
        byte_len: 0,
        imm: None,
        inv: None,
        qp_num: Qpn::new(0),
        src_qp: Qpn::new(0),
        solicited: false,
        grh: false,
        sl: 0,
    };
}
