//! Queue pairs: an [`Engine`] (RC, UC in the connected engine's
//! unreliable mode, or UD) plus the buffers the data path needs, all
//! allocated at creation.
//!
//! Who holds references: the ffi QP object (`Arc<Qp>`) and the endpoint's
//! demux table (`Arc<Qp>`, from `insert` to `remove`), and transiently a
//! thread that took it out of the demux table to feed it a frame or a
//! timeout. A QP holds `Arc`s of its CQs and, if it has one, of its SRQ.
//!
//! Locks: `inner` (a spin lock, [`crate::lock`]) serialises every engine call on this QP, as
//! the engine requires. It is held while frames are built and handed to
//! the non-blocking transmit (never across a blocking call), and while the
//! MR table's read lock, the CQ ring locks and an SRQ's ring lock (a leaf)
//! are taken inside it. Lock order: docs/lifetime-and-locking.md.
//! `deadline` is an atomic copy of the engine's next timer deadline,
//! written only under `inner` (at the end of every drive) and read without
//! it by the timer pass, which then try-locks a due QP and re-checks. Its
//! store and load are SeqCst: the endpoint marks the QP's slot in its
//! armed set after the store, and the timer pass unmarks a slot only
//! between two loads that find no deadline (crate::armed), so a deadline
//! published during a pass is never left unmarked.
//! `pending` (the engine has WRs not completed, or holds an ACK for the
//! application's answer), `removed` (out of the
//! endpoint's demux) and `window_taken` (ring frames of the endpoint's
//! window budget this QP holds) are likewise written only under `inner`,
//! by drive and by the endpoint's `remove_qp`, which sets `removed` and
//! gives the window back exactly once; a drive that comes after it (a
//! thread that looked the QP up just before) no longer counts the QP.
//!
//! Buffer ownership: `tx` holds the [`TX_BATCH`] transmit slots of this QP
//! (the engine writes up to that many frames into them, then the sink
//! hands them to the kernel in one batch and copies them before
//! returning); `inline` is a ring of `sq_depth` slots of
//! [`MAX_INLINE_DATA`] bytes, allocated with the QP (post_send never
//! allocates): send WR number *n* posted with
//! IBV_SEND_INLINE copies its data into slot *n mod sq_depth* and points
//! its SGE at it under [`crate::INLINE_LKEY`]. The engine refuses more than
//! `sq_depth` outstanding send WRs and frees a WR's slot only once it is
//! acknowledged (UC: once its last packet was built, and it is never
//! sent again), so a slot is never reused while its data may still be
//! (re)transmitted.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use crate::lock::{SpinGuard, SpinLock};

use omx_engine::{
    Duration, ModifyError, PathMtu, PostError, QpAttr, QpConfig, RcQp, RecvWr, SendWr, SgList,
    UdConfig, UdDest, UdQp,
};
use omx_wire::Qpn;

use crate::cq::Cq;
use crate::engine::Engine;
use crate::mr::INLINE_LKEY;

/// Largest IBV_SEND_INLINE payload (reported as `max_inline_data`).
pub const MAX_INLINE_DATA: u32 = 256;

/// Largest path MTU we accept (sizes the transmit buffer).
const MAX_PATH_MTU: usize = 4096;

/// Frames one drive builds before it hands them to the sink in one batch
/// (one `sendmmsg`): a 64 KiB message at path MTU 1024 is 8 batches, not
/// 64 system calls.
pub const TX_BATCH: usize = 8;

/// How long a QP in interactive mode holds an ACK for the application's
/// answer to carry it (docs/wire.md §10.1; the engine caps it at a quarter
/// of the QP's transport timer and at half the smallest retransmission
/// timeout, `omx_engine::MIN_RTO`: 12 ms). Longer than the progress
/// thread's sleep while a context is active, so holding an ACK never needs
/// a wake-up: the thread's next regular pass sends it if no answer came.
pub const ACK_HOLD: Duration = Duration::from_millis(20);

/// Bytes of one transmit slot: the largest frame of any path MTU.
pub(crate) const TX_SLOT: usize = omx_wire::max_frame_len(MAX_PATH_MTU);

/// A QP's receive window (docs/wire.md section 9), from
/// [`crate::Endpoint::reserve_window`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Packets (the engine raises it to at least `INITIAL_CREDITS`).
    pub packets: u16,
    /// Ring frames taken from the endpoint's budget, given back when the
    /// QP leaves the demux.
    pub taken: u32,
}

impl Default for Window {
    /// 64 packets taken from no budget (tests, tools).
    fn default() -> Self {
        Window {
            packets: 64,
            taken: 0,
        }
    }
}

/// Queue sizes and receive window of a QP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QpCaps {
    /// max_send_wr.
    pub sq_depth: u32,
    /// max_recv_wr.
    pub rq_depth: u32,
    /// Receive window.
    pub window: Window,
    /// Unreliable connected (docs/wire.md §14) instead of RC: no ACKs,
    /// no retransmission, a send WR completes once its last packet left.
    pub uc: bool,
}

/// What a UD QP takes from its port: the source MAC of every frame, the
/// GIDs of the GRH it writes ([`UdConfig::gid`], [`UdConfig::gid_v4`])
/// and the largest datagram (the port's active MTU).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdPort {
    /// The netdev's MAC.
    pub mac: [u8; 6],
    /// GID index 0.
    pub gid: [u8; 16],
    /// The port's first IPv4-mapped GID.
    pub gid_v4: Option<[u8; 16]>,
    /// The port's active MTU.
    pub mtu: PathMtu,
}

/// A queue pair.
#[derive(Debug)]
pub struct Qp {
    /// QP number (endpoint << 12 | slot).
    pub qpn: Qpn,
    /// Kernel handle of the PD (MR lookups are restricted to it).
    pub pd: u32,
    /// Send CQ.
    pub send_cq: Arc<Cq>,
    /// Receive CQ.
    pub recv_cq: Arc<Cq>,
    /// `sq_sig_all`.
    pub sq_sig_all: bool,
    inner: SpinLock<QpInner>,
    /// The engine's next timer deadline (ns, `u64::MAX` = none), stored by
    /// whoever drove the QP last, so the timer pass finds due QPs without
    /// taking every QP's lock (SeqCst, paired with `Endpoint`'s armed set).
    deadline: AtomicU64,
    /// Whether the engine has posted WRs not completed yet, or holds an
    /// ACK for the application's answer, as the last drive saw it (a hint
    /// for the progress thread, see
    /// [`crate::Endpoint::work_pending`]).
    pub(crate) pending: AtomicBool,
    /// Set (under `inner`) when the endpoint's `remove_qp` took the QP out
    /// of the demux.
    pub(crate) removed: AtomicBool,
    /// Ring frames this QP's window took from the endpoint's budget,
    /// given back by `remove_qp`.
    pub(crate) window_taken: AtomicU32,
    /// The kernel's uverbs handle of the QP (`ibv_qp.handle`), for the
    /// calls the progress thread makes about it (OMX_METHOD_QP_EVENT).
    pub handle: u32,
    /// The SRQ the QP takes its receive WQEs from (also inside its
    /// engine): the endpoint looks at its limit after each drive.
    pub srq: Option<Arc<crate::Srq>>,
    /// The engine moved the QP to ERROR on its own and the kernel has not
    /// been told yet ([`omx_engine::QpEvent`] packed by [`pack_event`];
    /// 0 = none). Written under `inner` by drive, taken by the endpoint's
    /// kernel pass; a newer event replaces an older one, which would be
    /// stale by then (an older reset epoch).
    pub(crate) event: AtomicU64,
}

/// An event as one word: bit 63 set, the kind in bits 32..63, the epoch
/// in bits 0..32.
pub(crate) fn pack_event(e: omx_engine::QpEvent) -> u64 {
    1 << 63 | u64::from(e.kind as u32) << 32 | u64::from(e.epoch)
}

/// The event [`pack_event`] packed (`None` for 0).
pub(crate) fn unpack_event(w: u64) -> Option<omx_engine::QpEvent> {
    use omx_engine::QpEventKind as K;
    if w >> 63 == 0 {
        return None;
    }
    let kind = match (w >> 32) as u32 & 0x7fff_ffff {
        0 => K::None,
        1 => K::Fatal,
        2 => K::ReqErr,
        _ => K::AccessErr,
    };
    Some(omx_engine::QpEvent {
        kind,
        epoch: w as u32,
    })
}

/// The state behind the QP lock.
#[derive(Debug)]
pub struct QpInner {
    /// The engine.
    pub eng: Engine,
    pub(crate) tx: Box<[u8]>,
    pub(crate) inline: Box<[u8]>,
    inline_next: u64,
    sq_depth: u32,
    /// The endpoint's activity epoch in which this QP last received a
    /// request (`Endpoint::note_active`).
    pub(crate) seen_epoch: u64,
}

impl Qp {
    /// Creates a connected (RC or UC) QP in RESET with all buffers sized.
    pub fn new(
        qpn: Qpn,
        pd: u32,
        caps: QpCaps,
        send_cq: Arc<Cq>,
        recv_cq: Arc<Cq>,
        sq_sig_all: bool,
    ) -> Self {
        let mut cfg = QpConfig::new(qpn);
        cfg.sq_depth = caps.sq_depth.max(1);
        cfg.rq_depth = caps.rq_depth.max(1);
        cfg.rx_window = caps.window.packets;
        cfg.ack_hold = ACK_HOLD;
        if caps.uc {
            cfg.qp_type = omx_engine::QpType::Uc;
        }
        let eng = Engine::Conn(RcQp::new(cfg));
        Self::with_engine(qpn, pd, eng, caps, send_cq, recv_cq, sq_sig_all)
    }

    /// Creates a UD QP in RESET with all buffers sized (`caps.window`
    /// and `caps.uc` do not apply: UD has no credits).
    pub fn new_ud(
        qpn: Qpn,
        pd: u32,
        caps: QpCaps,
        port: UdPort,
        send_cq: Arc<Cq>,
        recv_cq: Arc<Cq>,
        sq_sig_all: bool,
    ) -> Self {
        let mut cfg = UdConfig::new(qpn, port.mac, port.gid);
        cfg.gid_v4 = port.gid_v4;
        cfg.mtu = port.mtu;
        cfg.sq_depth = caps.sq_depth.max(1);
        cfg.rq_depth = caps.rq_depth.max(1);
        let eng = Engine::Ud(UdQp::new(cfg));
        let caps = QpCaps {
            window: Window {
                packets: 0,
                taken: 0,
            },
            ..caps
        };
        Self::with_engine(qpn, pd, eng, caps, send_cq, recv_cq, sq_sig_all)
    }

    fn with_engine(
        qpn: Qpn,
        pd: u32,
        eng: Engine,
        caps: QpCaps,
        send_cq: Arc<Cq>,
        recv_cq: Arc<Cq>,
        sq_sig_all: bool,
    ) -> Self {
        let sq = caps.sq_depth.max(1);
        Qp {
            qpn,
            pd,
            send_cq,
            recv_cq,
            sq_sig_all,
            deadline: AtomicU64::new(u64::MAX),
            pending: AtomicBool::new(false),
            removed: AtomicBool::new(false),
            window_taken: AtomicU32::new(caps.window.taken),
            handle: 0,
            srq: None,
            event: AtomicU64::new(0),
            inner: SpinLock::new(QpInner {
                eng,
                tx: vec![0u8; TX_BATCH * TX_SLOT].into_boxed_slice(),
                inline: vec![0u8; sq as usize * MAX_INLINE_DATA as usize].into_boxed_slice(),
                inline_next: 0,
                sq_depth: sq,
                seen_epoch: 0,
            }),
        }
    }

    /// The QP takes its receive WQEs from `srq` (created with one:
    /// `ibv_qp_init_attr.srq`); its own receive queue is unused.
    pub fn with_srq(mut self, srq: Arc<crate::Srq>) -> Self {
        self.inner.lock().eng.use_srq(srq.clone());
        self.srq = Some(srq);
        self
    }

    /// The QP with its kernel uverbs handle (see [`Qp::handle`]).
    pub fn with_handle(mut self, handle: u32) -> Self {
        self.handle = handle;
        self
    }

    /// The deadline the last drive published (ns; `u64::MAX` = none).
    pub fn deadline(&self) -> u64 {
        self.deadline.load(Ordering::SeqCst)
    }

    /// Publishes the engine's next deadline (under the QP lock).
    pub(crate) fn set_deadline(&self, ns: u64) {
        self.deadline.store(ns, Ordering::SeqCst);
    }

    /// The QP lock if it is free now.
    pub fn try_lock(&self) -> Option<SpinGuard<'_, QpInner>> {
        self.inner.try_lock()
    }

    /// Takes the QP lock (a spin lock: see [`crate::lock`]).
    pub fn lock(&self) -> SpinGuard<'_, QpInner> {
        self.inner.lock()
    }
}

impl QpInner {
    /// Posts a send WR whose SGEs name registered memory; `dest` is the
    /// UD destination (`None` for a connected QP).
    pub fn post_send(&mut self, wr: SendWr, dest: Option<UdDest>) -> Result<(), PostError> {
        self.eng.post_send(wr, dest)
    }

    /// Posts a send WR with IBV_SEND_INLINE: `fill` copies the `len` bytes
    /// of the WR's gather list into the slot it is given, now.
    pub fn post_send_inline(
        &mut self,
        mut wr: SendWr,
        dest: Option<UdDest>,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), PostError> {
        if len > MAX_INLINE_DATA as usize {
            return Err(PostError::TooLong);
        }
        let slot = (self.inline_next % u64::from(self.sq_depth)) as usize;
        let off = slot * MAX_INLINE_DATA as usize;
        wr.sg = SgList::single(off as u64, len as u32, INLINE_LKEY);
        // Post first: if the queue is full, the slot still belongs to an
        // outstanding WR and must not be touched. The engine reads the data
        // only in poll_transmit, which cannot run before we return (we hold
        // the QP lock).
        self.eng.post_send(wr, dest)?;
        fill(&mut self.inline[off..off + len]);
        self.inline_next += 1;
        Ok(())
    }

    /// Posts a receive WR.
    pub fn post_recv(&mut self, wr: RecvWr) -> Result<(), PostError> {
        self.eng.post_recv(wr)
    }

    /// `ibv_modify_qp` on the engine.
    pub fn modify(&mut self, attr: &QpAttr) -> Result<(), ModifyError> {
        self.eng.modify(attr)
    }
}
