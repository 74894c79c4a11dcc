//! The connected queue pair, RC or UC: owns a requester and a responder,
//! the timers and the completion staging queue, and exposes the sans-IO
//! API. UC (docs/wire.md §14) is a mode of the same machines: the same
//! segmentation and placement, without ACKs, NAKs, credits, windows or
//! retransmission.

use std::collections::VecDeque;

use omx_wire::{Ext, Frame, FrameRepr, Opcode, Psn, Qpn, Transport};

use crate::ack::AckState;
use crate::mem::MemoryAccess;
use crate::requester::Requester;
use crate::responder::Responder;
use crate::state::{
    qp_attr_mask_ok, transport_timeout, PathInfo, PathMtu, QpAttr, QpState, QpType,
};
use crate::time::{Duration, Instant};
use crate::timer::{Timer, TimerTable};
use crate::wr::{RecvWr, SendOp, SendWr, SharedRecv, WcQueue, WcStatus, WorkCompletion};

/// Largest message (`ibv_port_attr.max_msg_sz`).
pub const MAX_MSG_SIZE: u64 = 1 << 31;

/// Creation-time parameters of an RC or UC QP (sizes every ring).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QpConfig {
    /// This QP's number (from the kernel).
    pub qpn: Qpn,
    /// `max_send_wr`.
    pub sq_depth: u32,
    /// `max_recv_wr`.
    pub rq_depth: u32,
    /// Receive window in packets advertised in every AETH, and bound on
    /// the PSN span this QP's requester keeps outstanding (READ responses
    /// land in our ring). Must be at least [`omx_wire::INITIAL_CREDITS`].
    pub rx_window: u16,
    /// Executed request packets after which an ACK is due (0 = half the
    /// window).
    pub ack_coalesce: u16,
    /// Delay after which an unacknowledged request packet is ACKed anyway.
    pub ack_delay: Duration,
    /// Longest time an ACK is held for the application's answer to carry
    /// it, in interactive mode (docs/wire.md §10.1). Capped at a quarter
    /// of this QP's own transport timer, on the assumption that both ends
    /// use similar timeouts.
    pub ack_hold: Duration,
    /// [`QpType::Rc`] or [`QpType::Uc`] (docs/wire.md §14). A UC QP
    /// ignores `rx_window`, `ack_coalesce`, `ack_delay` and `ack_hold`.
    /// [`QpType::Ud`] is not a connected QP ([`crate::UdQp`]) and is
    /// taken as RC here.
    pub qp_type: QpType,
}

impl QpConfig {
    /// Defaults: 256/256 WQEs, 64-packet window, ACK every 32 packets or
    /// after 100 ms, held up to 1 ms for an answer. The delay is a safety
    /// net only: a requester sets AckReq wherever it would stop without
    /// an ACK (end of message, credit limit, window, congestion window).
    /// Any shorter delay ACKs every packet of a flow whose packets come
    /// further apart than it, as each flow's do when hundreds share one
    /// ring on a slow host (20 µs, then 2 ms, made as many ACKs as data
    /// frames with perftest `-q 256` in the TCG bed).
    pub fn new(qpn: Qpn) -> Self {
        QpConfig {
            qpn,
            sq_depth: 256,
            rq_depth: 256,
            rx_window: 64,
            ack_coalesce: 0,
            ack_delay: Duration::from_millis(100),
            ack_hold: Duration::from_millis(1),
            qp_type: QpType::Rc,
        }
    }
}

/// Declares [`Stats`]: one `u64` counter per field, with
/// [`Stats::fields`] listing them by name.
macro_rules! counters {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* $field:ident, )+
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $( $(#[$fmeta])* pub $field: u64, )+
        }

        impl $name {
            /// Every counter as `(name, value)`, in declaration order (the
            /// name is the field's).
            pub fn fields(&self) -> impl Iterator<Item = (&'static str, u64)> {
                [$( (stringify!($field), self.$field), )+].into_iter()
            }
        }
    };
}

counters! {
    /// Counters. Every dropped frame is counted under its reason, and so
    /// is every frame or header the engine ignored (docs/wire.md §12).
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub struct Stats {
        /// Frames handed to `handle_frame`.
        rx_frames,
        /// Dropped: truncated.
        rx_truncated,
        /// Dropped: malformed.
        rx_malformed,
        /// Dropped: unsupported version, type or transport.
        rx_unsupported,
        /// Dropped: CRC32C mismatch.
        rx_bad_crc,
        /// Dropped: destination QPN not this QP's, or source QPN not the
        /// connected QP's (never NAKed).
        rx_wrong_qp,
        /// Dropped: source MAC not the MAC of the path the QP was
        /// connected to (`PathInfo::dmac`; for an IP GID, the MAC it
        /// resolved to). Never NAKed.
        rx_wrong_mac,
        /// Dropped: QP state does not accept it.
        rx_wrong_state,
        /// Dropped: payload longer than the path MTU.
        rx_too_long,
        /// Request or response PSN after the expected one.
        rx_out_of_sequence,
        /// Duplicate request or response.
        rx_duplicate,
        /// ACK frame, piggybacked ACK (PAETH) or READ response ACK whose
        /// PSN is outside the requester's window `[una - 1, sent_end -
        /// 1]`: ignored, credits included (a forged ACK, or a stale one
        /// overtaken by a later ACK).
        rx_ack_out_of_window,
        /// NAK or RNR NAK whose PSN is not outstanding (`[una,
        /// sent_end)`): ignored, never moves the QP to ERROR.
        rx_nak_out_of_window,
        /// READ response with a wrong length, or an atomic acknowledge
        /// with a NAK syndrome: ignored.
        rx_bad_response,
        /// A response of the wrong kind for the request it names (an
        /// atomic acknowledge for a READ or the reverse, an atomic
        /// acknowledge without a pending atomic).
        rx_unexpected,
        /// RNR NAKs received.
        rx_rnr_naks,
        /// PSN sequence error NAKs received.
        rx_seq_naks,
        /// Fatal NAKs received.
        rx_naks,
        /// Requests refused with NAK invalid request because the QP's
        /// access flags lack REMOTE_WRITE / REMOTE_READ / REMOTE_ATOMIC.
        rx_qp_access_denied,
        /// Requests refused with NAK invalid request because their RETH
        /// length exceeds the 2^31-byte message limit.
        rx_too_large,
        /// READ and atomic requests refused with NAK invalid request
        /// because `max_dest_rd_atomic` of them are already being answered
        /// (always, with `max_dest_rd_atomic` 0).
        rx_rd_atomic_exceeded,
        /// Atomic requests refused with NAK invalid request because their
        /// address is not 8-byte aligned.
        rx_atomic_misaligned,
        /// Dropped: duplicate atomic request that matches no atomic in the
        /// responder's history (PSN, address, rkey, operation, operands):
        /// nothing executed, nothing answered.
        rx_dup_atomic_unmatched,
        /// Dropped: duplicate atomic request whose saved result would be
        /// answered again, while `max_dest_rd_atomic` responses are
        /// queued.
        rx_dup_atomic_busy,
        /// Atomic acknowledges sent again from a saved result (a
        /// duplicate request; the operation was not executed again).
        tx_atomic_replays,
        /// Dropped: duplicate READ request that matches no READ in the
        /// responder's history (PSN, address, rkey, length): nothing read.
        rx_dup_read_unmatched,
        /// Dropped: duplicate READ request that matches a recorded READ
        /// whose responses are no longer queued, while `max_dest_rd_atomic`
        /// READs are being answered.
        rx_dup_read_busy,
        /// SEND with invalidate refused with NAK invalid request: its
        /// IETH names no type 2 window bound through this QP.
        rx_invalidate_refused,
        /// Memory windows invalidated by a SEND with invalidate.
        rx_invalidations,
        /// Local operations (bind, local invalidate) refused: their WR
        /// completed with IBV_WC_MW_BIND_ERR or IBV_WC_LOC_QP_OP_ERR.
        tx_local_op_errors,
        /// Frames produced by `poll_transmit`.
        tx_frames,
        /// Request packets sent again.
        tx_retransmits,
        /// ACKs sent as frames of their own.
        tx_acks,
        /// ACKs carried by request packets (PAETH) that acknowledged
        /// something new; repeats of the cumulative ACK are not counted.
        tx_piggy_acks,
        /// Request packets received with a PAETH (repeats included).
        rx_piggy_acks,
        /// NAKs (not RNR) sent.
        tx_naks,
        /// RNR NAKs sent.
        tx_rnr_naks,
        /// Sending stopped by peer credits.
        tx_blocked_credits,
        /// Sending stopped by our own window.
        tx_blocked_window,
        /// A request waited for the congestion window (docs/wire.md §10.2).
        tx_blocked_cwnd,
        /// Sending stopped by max_rd_atomic.
        tx_blocked_rd_atomic,
        /// READ responses paused: [`READ_BURST`] of them went out since
        /// the last input, more are queued (resumed by `handle_timeout`).
        tx_read_paused,
        /// `poll_transmit` got a buffer smaller than `max_frame_len`.
        tx_buffer_too_small,
        /// Transport timer expiries.
        timeouts,
        /// Go-back-N rewinds.
        rewinds,
        /// UD: dropped, the DETH's Q_Key is not the QP's.
        rx_bad_qkey,
        /// UD, UC: dropped, no receive WQE (own receive queue or SRQ);
        /// for UC, the SEND (or WRITE with immediate) packet that needed
        /// one (the rest of its message counts as `rx_uc_dropped`).
        rx_no_wqe,
        /// UD on an SRQ: dropped, the QP's completion queue already holds
        /// `rq_depth` receive completions nobody polled (taking a WQE
        /// would need room the QP was not sized for).
        rx_cq_full,
        /// UD: a receive WQE completed with IBV_WC_LOC_LEN_ERR, its
        /// scatter list shorter than the 40-byte GRH plus the payload. UC:
        /// a SEND longer than its receive WQE, dropped (the WQE is kept
        /// for the next message; taken from an SRQ, it completes with
        /// IBV_WC_REM_INV_REQ_ERR, as rxe).
        rx_wqe_too_small,
        /// UD: a send WR completed with IBV_WC_LOC_PROT_ERR (gathering
        /// its payload failed); the QP moved to SQE.
        tx_gather_err,
        /// UC: dropped, an opcode UC does not carry at this QP (a frame of
        /// the other connected transport, an RC frame at a UC QP or a UC
        /// frame at an RC QP, is `rx_unsupported`).
        rx_uc_bad_opcode,
        /// UC: dropped, a Middle or Last packet of a message that is not
        /// being received: a PSN gap before it, its message's start was
        /// dropped or abandoned, or no message in progress.
        rx_uc_dropped,
        /// UC: messages abandoned part-way (a gap, or a new First/Only):
        /// a SEND's receive WQE is kept for the next message, a WRITE's
        /// data so far stays written, nothing completes.
        rx_uc_abandoned,
        /// UC: dropped with the rest of its message, a packet RC would
        /// NAK as an invalid request (payload length, a WRITE without
        /// RETH or beyond its RETH length, a SEND packet inside a WRITE
        /// or the reverse).
        rx_uc_invalid,
        /// UC: dropped with the rest of its message, an RDMA WRITE the
        /// MR refused (rkey, rights, bounds) or whose memory faulted.
        rx_uc_access_err,
    }
}

/// READ response packets the responder emits between two inputs
/// (`handle_frame`, `handle_timeout`, `post_send`, `post_recv`,
/// `modify`). A requester never has more READ responses outstanding than
/// its window (at most 256 packets), so it is never slowed down; a rogue
/// READ of 2^31 bytes (8M packets at MTU 256) no longer keeps the caller
/// in `poll_transmit`, holding the QP's lock, for all of them.
pub const READ_BURST: u32 = 256;

/// Why the engine moved a QP to ERROR on its own, as the affiliated
/// asynchronous event the provider raises through the kernel module
/// (same values as `enum omx_qp_event` in `rdma_omx_abi.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum QpEventKind {
    /// OMX_QP_EVENT_NONE: no event (the requester completed a WR in error:
    /// retry or RNR budget exhausted, a fatal NAK received, a local
    /// protection error); the kernel's shadow still follows to ERROR.
    None = 0,
    /// OMX_QP_EVENT_FATAL (IBV_EVENT_QP_FATAL): the responder NAKed a
    /// remote operational error, or the provider called
    /// [`RcQp::fail`].
    Fatal = 1,
    /// OMX_QP_EVENT_REQ_ERR (IBV_EVENT_QP_REQ_ERR): the responder NAKed
    /// an invalid request.
    ReqErr = 2,
    /// OMX_QP_EVENT_ACCESS_ERR (IBV_EVENT_QP_ACCESS_ERR): the responder
    /// NAKed a remote access error (bad rkey, rights, bounds, or a
    /// registered range that faulted).
    AccessErr = 3,
}

/// The engine moved the QP to ERROR on its own ([`RcQp::poll_event`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QpEvent {
    /// Why.
    pub kind: QpEventKind,
    /// [`RcQp::reset_epoch`] when it happened.
    pub epoch: u32,
}

/// Marker: the QP must move to ERROR (the error completion or the NAK is
/// queued), with this event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fatal(pub(crate) QpEventKind);

/// How a received frame ended when it did not simply succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RxError {
    /// Ignored and counted.
    Drop(RxDrop),
    /// The QP must move to ERROR.
    Fatal(Fatal),
}

impl From<Fatal> for RxError {
    fn from(f: Fatal) -> Self {
        RxError::Fatal(f)
    }
}

impl From<RxDrop> for RxError {
    fn from(d: RxDrop) -> Self {
        RxError::Drop(d)
    }
}

/// State shared by the requester and the responder.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) qpn: Qpn,
    pub(crate) remote_qpn: Qpn,
    pub(crate) path: PathInfo,
    pub(crate) mtu: u32,
    pub(crate) rx_window: u16,
    /// Credits this QP grants its peer in every AETH and PAETH
    /// (docs/wire.md §9): `rx_window` unless the provider set a smaller
    /// share of its ring ([`RcQp::set_credit_grant`]).
    pub(crate) grant: u16,
    /// RC or UC: the BTH transport of every frame this QP sends and
    /// accepts.
    pub(crate) transport: Transport,
    pub(crate) timers: TimerTable,
    pub(crate) stats: Stats,
    cq: VecDeque<WorkCompletion>,
    /// Unsignaled send WQEs retired since the last poll_completion.
    pub(crate) sq_retired_silently: u32,
}

impl Ctx {
    /// A context for unit tests of the requester and responder alone:
    /// QP `qpn` connected to `remote` (MACs as `testing::mac_of`).
    #[cfg(test)]
    pub(crate) fn for_tests(qpn: u32, remote: u32, mtu: u32, rx_window: u16) -> Ctx {
        Ctx {
            qpn: Qpn::new(qpn),
            remote_qpn: Qpn::new(remote),
            path: PathInfo {
                dmac: crate::testing::mac_of(remote),
                smac: crate::testing::mac_of(qpn),
                peer_index: omx_wire::PEER_INDEX_UNKNOWN,
            },
            mtu,
            rx_window,
            grant: rx_window,
            transport: Transport::Rc,
            timers: TimerTable::default(),
            stats: Stats::default(),
            cq: VecDeque::new(),
            sq_retired_silently: 0,
        }
    }

    /// Takes the next queued completion (unit tests).
    #[cfg(test)]
    pub(crate) fn pop_wc(&mut self) -> Option<WorkCompletion> {
        self.cq.pop_front()
    }

    pub(crate) fn push_wc(&mut self, wc: WorkCompletion) {
        self.cq.push_back(wc);
    }

    pub(crate) fn repr(
        &self,
        opcode: Opcode,
        psn: Psn,
        ack_req: bool,
        solicited: bool,
        payload_len: usize,
        ext: Ext,
    ) -> FrameRepr {
        FrameRepr {
            dst_mac: self.path.dmac,
            src_mac: self.path.smac,
            peer_index: self.path.peer_index,
            bth: omx_wire::Bth {
                opcode,
                transport: self.transport,
                ack_req,
                solicited,
                dst_qpn: self.remote_qpn,
                src_qpn: self.qpn,
                psn,
            },
            ext,
            payload_len,
        }
    }
}

/// The interactive ACK hold: `configured`, but at most a quarter of the
/// transport timer (if there is one) and half the smallest retransmission
/// timeout a peer may use (`cc::MIN_RTO`), so that a held ACK never makes
/// the peer retransmit.
fn ack_hold(configured: Duration, timeout: Option<Duration>) -> Duration {
    let floor = Duration::from_nanos(crate::cc::MIN_RTO.as_nanos() / 2);
    timeout
        .map_or(configured, |t| {
            configured.min(Duration::from_nanos(t.as_nanos() / 4))
        })
        .min(floor)
}

/// Metadata of a frame written by [`RcQp::poll_transmit`]: send
/// `buf[..len]` as is (it carries its MACs, CRC and padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Transmit {
    /// Frame length in bytes (at least 60).
    pub len: usize,
}

/// Why `post_send` / `post_recv` refused a WR (the provider returns the
/// errno in parentheses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostError {
    /// Queue full (ENOMEM).
    Full,
    /// QP in RESET, or receive posted to a QP in RESET or with an SRQ;
    /// on a UD QP also an operation other than SEND and SEND with
    /// immediate, on a UC QP an RDMA READ or an atomic (EINVAL).
    InvalidState,
    /// Message longer than [`MAX_MSG_SIZE`]; on a UD QP, longer than
    /// its path MTU (EINVAL).
    TooLong,
    /// An atomic whose scatter list is not exactly the 8 bytes the
    /// original value is returned into (EINVAL, as rxe).
    BadAtomicLength,
}

/// Why `modify` refused (the provider returns EINVAL for each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModifyError {
    /// No `ibv_modify_qp` moves a QP from `from` to `to`.
    InvalidTransition {
        /// Current state.
        from: QpState,
        /// Requested state.
        to: QpState,
    },
    /// The transition exists but the attribute mask lacks an attribute it
    /// requires, or names one it does not accept (see
    /// [`crate::qp_attr_mask_ok`]).
    InvalidMask {
        /// Current state.
        from: QpState,
        /// Requested state.
        to: QpState,
        /// The mask ([`QpAttr::mask`]).
        mask: u32,
    },
    /// An attribute value is out of range ([`QpAttr::values_ok`]).
    InvalidAttribute,
}

/// Why `handle_frame` dropped a frame (already counted in [`Stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxDrop {
    /// Rejected by the wire decoder.
    Wire(omx_wire::Error),
    /// Destination QPN is not this QP's, or source QPN is not the
    /// connected QP's.
    WrongQp,
    /// Source MAC is not the connected path's.
    WrongMac,
    /// The QP state does not accept packets.
    WrongState,
    /// Payload longer than the path MTU.
    TooLong,
    /// ACK or NAK whose PSN is outside the requester's window.
    OutOfWindow,
    /// Duplicate READ request not answered: it matches no recorded READ,
    /// or no room is left to answer it again.
    DuplicateRead,
    /// Duplicate atomic request not answered: it matches no recorded
    /// atomic, or no room is left to answer it again.
    DuplicateAtomic,
    /// UD: the Q_Key is not the QP's.
    BadQkey,
    /// UD: no receive WQE (own receive queue or SRQ).
    NoWqe,
    /// UD on an SRQ: no room for another receive completion.
    CqFull,
    /// UC: the packet was dropped, and with it the rest of its message
    /// (the reason is counted in [`Stats`]).
    UcDropped,
}

/// A connected QP (reliable, or unreliable: [`QpConfig::qp_type`]) as a
/// sans-IO state machine.
///
/// # API (quinn-proto's four kinds)
///
/// - (A) getters: [`RcQp::qpn`], [`RcQp::state`], [`RcQp::stats`],
///   [`RcQp::reset_epoch`], [`RcQp::access_flags`].
/// - (B) inputs: [`RcQp::handle_frame`] (one received frame) and
///   [`RcQp::handle_timeout`].
/// - (C) verbs: [`RcQp::check_modify`], [`RcQp::modify`],
///   [`RcQp::post_send`], [`RcQp::post_recv`], and [`RcQp::fail`].
/// - (D) outputs: [`RcQp::poll_transmit`], [`RcQp::poll_timeout`],
///   [`RcQp::poll_completion`], [`RcQp::poll_event`].
///
/// After any (B) or (C) call, drain the outputs in this order: call
/// `poll_transmit` until it returns `None` (sending each frame), then
/// `poll_completion` until `None` (into the send/recv CQs), then
/// `poll_event`, then re-arm the caller's timer with `poll_timeout`
/// (which may be `now`: more READ responses to send after a
/// [`READ_BURST`]). `now` must never go backwards across calls.
///
/// Nothing here allocates after [`RcQp::new`]: the WQE rings, READ queues
/// and history and the completion queue are sized at creation, and a
/// send/recv slot is released only when its completion has been polled,
/// so the completion queue cannot overflow.
#[derive(Debug)]
pub struct RcQp {
    cfg: QpConfig,
    state: QpState,
    ctx: Ctx,
    req: Requester,
    resp: Responder,
    sq_outstanding: u32,
    rq_outstanding: u32,
    sq_psn: Psn,
    rq_psn: Psn,
    /// Successful modifies to RESET (RESET→RESET included).
    reset_epoch: u32,
    /// Why the engine last moved the QP to ERROR, not yet polled.
    event: Option<QpEvent>,
}

impl RcQp {
    /// Creates a QP in RESET.
    pub fn new(cfg: QpConfig) -> Self {
        let coalesce = if cfg.ack_coalesce == 0 {
            u32::from(cfg.rx_window / 2)
        } else {
            u32::from(cfg.ack_coalesce)
        };
        let cap = (cfg.sq_depth + cfg.rq_depth) as usize;
        let uc = cfg.qp_type == QpType::Uc;
        let mut req = Requester::new(cfg.sq_depth as usize);
        if uc {
            req.set_uc();
        }
        let hold = ack_hold(cfg.ack_hold, req.timeout);
        RcQp {
            state: QpState::Reset,
            ctx: Ctx {
                qpn: cfg.qpn,
                remote_qpn: Qpn::new(0),
                path: PathInfo {
                    peer_index: omx_wire::PEER_INDEX_UNKNOWN,
                    ..PathInfo::default()
                },
                mtu: PathMtu::Mtu1024.bytes(),
                rx_window: cfg.rx_window.max(omx_wire::INITIAL_CREDITS),
                grant: cfg.rx_window.max(omx_wire::INITIAL_CREDITS),
                transport: if uc { Transport::Uc } else { Transport::Rc },
                timers: TimerTable::default(),
                stats: Stats::default(),
                cq: VecDeque::with_capacity(cap),
                sq_retired_silently: 0,
            },
            req,
            resp: Responder::new(
                cfg.rq_depth as usize,
                AckState::new(coalesce, cfg.ack_delay, hold),
            ),
            sq_outstanding: 0,
            rq_outstanding: 0,
            sq_psn: Psn::new(0),
            rq_psn: Psn::new(0),
            reset_epoch: 0,
            event: None,
            cfg,
        }
    }

    /// The QP takes its receive WQEs from `srq` instead of its own
    /// receive queue ([`SharedRecv`]); [`RcQp::post_recv`] is then
    /// refused. For a QP just created.
    pub fn with_srq(mut self, srq: std::sync::Arc<dyn SharedRecv>) -> Self {
        self.use_srq(srq);
        self
    }

    /// As [`RcQp::with_srq`], in place (for a QP just created, before
    /// anything was posted to it).
    pub fn use_srq(&mut self, srq: std::sync::Arc<dyn SharedRecv>) {
        self.resp.use_srq(srq);
    }

    /// This QP's number.
    pub fn qpn(&self) -> Qpn {
        self.cfg.qpn
    }

    /// [`QpType::Rc`] or [`QpType::Uc`].
    pub fn qp_type(&self) -> QpType {
        if self.is_uc() {
            QpType::Uc
        } else {
            QpType::Rc
        }
    }

    fn is_uc(&self) -> bool {
        self.ctx.transport == Transport::Uc
    }

    /// Current state.
    pub fn state(&self) -> QpState {
        self.state
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.ctx.stats
    }

    /// Path MTU in payload bytes.
    pub fn path_mtu(&self) -> u32 {
        self.ctx.mtu
    }

    /// The QP's `IBV_ACCESS_*` flags (0 after creation and RESET).
    pub fn access_flags(&self) -> u32 {
        self.resp.access
    }

    /// How many successful [`RcQp::modify`] calls moved the QP to RESET
    /// (RESET→RESET included), modulo 2^32: the epoch the kernel module
    /// counts identically, which tells it whether an event is stale.
    pub fn reset_epoch(&self) -> u32 {
        self.reset_epoch
    }

    /// Validates `ibv_modify_qp` with these attributes without changing
    /// anything: the transition and its attribute mask (the kernel's
    /// table, [`crate::qp_attr_mask_ok`] with [`RcQp::qp_type`]), then every
    /// value ([`QpAttr::values_ok`]).
    pub fn check_modify(&self, attr: &QpAttr) -> Result<(), ModifyError> {
        let from = self.state;
        let to = attr.state.unwrap_or(from);
        if !from.can_transition(to) {
            return Err(ModifyError::InvalidTransition { from, to });
        }
        let mask = attr.mask();
        if attr.extra_mask & QpAttr::MODELLED_MASK != 0 {
            return Err(ModifyError::InvalidAttribute);
        }
        if !qp_attr_mask_ok(self.qp_type(), from, to, mask) {
            return Err(ModifyError::InvalidMask { from, to, mask });
        }
        if !attr.values_ok() {
            return Err(ModifyError::InvalidAttribute);
        }
        Ok(())
    }

    /// `ibv_modify_qp`: [`RcQp::check_modify`], then the change, which
    /// cannot fail. A refused modify leaves the QP exactly as it was.
    pub fn modify(&mut self, attr: &QpAttr) -> Result<(), ModifyError> {
        self.check_modify(attr)?;
        self.apply(attr);
        Ok(())
    }

    /// The change of a checked modify.
    fn apply(&mut self, attr: &QpAttr) {
        let from = self.state;
        let to = attr.state.unwrap_or(from);
        self.resp.new_input();
        if let Some(f) = attr.access_flags {
            self.resp.access = f;
        }
        if let Some(m) = attr.path_mtu {
            self.ctx.mtu = m.bytes();
        }
        if let Some(q) = attr.dest_qpn {
            self.ctx.remote_qpn = Qpn::new(q);
        }
        if let Some(p) = attr.rq_psn {
            self.rq_psn = p;
        }
        if let Some(p) = attr.sq_psn {
            self.sq_psn = p;
        }
        if let Some(t) = attr.timeout {
            self.req.timeout = transport_timeout(t);
            self.resp
                .ack
                .set_hold(ack_hold(self.cfg.ack_hold, self.req.timeout));
        }
        if let Some(r) = attr.retry_cnt {
            self.req.retry_cnt = r;
        }
        if let Some(r) = attr.rnr_retry {
            self.req.rnr_retry = r;
        }
        if let Some(t) = attr.min_rnr_timer {
            self.resp.min_rnr_timer = t;
        }
        if let Some(n) = attr.max_rd_atomic {
            // The requester needs one READ outstanding to make progress;
            // 0 (legal in verbs) acts as 1.
            self.req.max_rd_atomic = usize::from(n.max(1));
        }
        if let Some(n) = attr.max_dest_rd_atomic {
            // 0 is legal: every READ is refused (IBTA, rxe).
            self.resp.max_dest_rd_atomic = usize::from(n);
        }
        if let Some(p) = attr.path {
            self.ctx.path = p;
        }
        if to == QpState::Reset {
            self.reset_epoch = self.reset_epoch.wrapping_add(1);
            self.resp.access = 0;
            self.event = None;
        }
        if from == to {
            return;
        }
        match to {
            QpState::Reset => {
                self.req.reset();
                self.resp.reset();
                self.resp.ack.reset(&mut self.ctx.timers);
                self.ctx.cq.clear();
                self.ctx.timers.stop_all();
                self.sq_outstanding = 0;
                self.rq_outstanding = 0;
            }
            QpState::Rtr => self.resp.start(self.rq_psn),
            QpState::Rts if from == QpState::Rtr => self.req.start(self.sq_psn),
            QpState::Err => {
                // A held ACK still goes out: the requester must learn
                // that its packets were executed. It is this QP's
                // last word, so it goes out more than once. The
                // application asked for ERROR: no event.
                self.resp.ack.flush_final(self.resp.acked);
                self.enter_error(None);
                return;
            }
            _ => {}
        }
        self.state = to;
    }

    /// Moves the QP to ERROR, flushing every WR; `event` (the engine's own
    /// reason, `None` when the application asked) is queued for
    /// [`RcQp::poll_event`]. Once per entry into ERROR.
    fn enter_error(&mut self, event: Option<QpEventKind>) {
        if self.state == QpState::Err {
            return;
        }
        self.state = QpState::Err;
        if let Some(kind) = event {
            self.event = Some(QpEvent {
                kind,
                epoch: self.reset_epoch,
            });
        }
        self.ctx.timers.stop_all();
        self.req.flush(&mut self.ctx);
        self.resp.flush(&mut self.ctx);
        self.release_silent();
    }

    /// The provider forces the QP to ERROR (its CQ overran: IBTA 11.4.2.1
    /// moves every QP of the CQ to ERROR): every WR is flushed and
    /// [`QpEventKind::Fatal`] is queued. No effect in RESET (nothing to
    /// flush, and RESET→ERROR is not a transition) or in ERROR.
    pub fn fail(&mut self) {
        if self.state != QpState::Reset {
            self.enter_error(Some(QpEventKind::Fatal));
        }
    }

    /// Why the engine moved the QP to ERROR on its own since the last
    /// call, with the reset epoch of that moment: at most one event per
    /// entry into ERROR, none when the application asked for ERROR, and
    /// a pending event is forgotten when the QP is reset.
    pub fn poll_event(&mut self) -> Option<QpEvent> {
        self.event.take()
    }

    fn release_silent(&mut self) {
        self.sq_outstanding -= self.ctx.sq_retired_silently.min(self.sq_outstanding);
        self.ctx.sq_retired_silently = 0;
    }

    /// An ACK is held for the application's answer (interactive mode):
    /// the application is expected to post a request soon, and then to
    /// poll for its completion.
    pub fn holds_ack(&self) -> bool {
        self.resp.ack.holding()
    }

    /// Whether the frames handed to [`RcQp::handle_frame`] from now on may
    /// have their ACK held for the application's answer (interactive mode,
    /// docs/wire.md §10.1; allowed by default). A provider allows it for
    /// frames an application thread receives while busy-polling, and
    /// forbids it for frames a background thread receives while the
    /// application sleeps: its answer is then a wake-up away.
    pub fn set_ack_hold(&mut self, allowed: bool) {
        self.resp.ack.set_hold_allowed(allowed);
    }

    /// Sends any held ACK at the next [`RcQp::poll_transmit`] (the
    /// application is going away: nobody will answer to carry it).
    pub fn flush_acks(&mut self) {
        self.resp.ack.flush_final(self.resp.acked);
    }

    /// Some posted WR (send or receive) has not completed yet: the
    /// application has a reason to poll a CQ of this QP.
    pub fn work_pending(&self) -> bool {
        self.sq_outstanding != 0 || self.rq_outstanding != 0 || self.resp.wqe_in_use()
    }

    /// How many more send WRs [`RcQp::post_send`] would accept now (0 in
    /// RESET, where posting is refused).
    pub fn sq_free(&self) -> u32 {
        if self.state == QpState::Reset {
            return 0;
        }
        self.cfg.sq_depth.saturating_sub(self.sq_outstanding)
    }

    /// `ibv_post_send` for one WR. In ERROR the WR completes at once with
    /// IBV_WC_WR_FLUSH_ERR. A UC QP refuses RDMA READ and atomics
    /// (EINVAL, as rxe); an atomic needs a scatter list of exactly 8
    /// bytes. Its remote address is not checked here: a misaligned one is
    /// the responder's to refuse (IBV_WC_REM_INV_REQ_ERR).
    pub fn post_send(&mut self, wr: SendWr) -> Result<(), PostError> {
        self.resp.new_input();
        if self.state == QpState::Reset {
            return Err(PostError::InvalidState);
        }
        if self.is_uc()
            && matches!(
                wr.op,
                SendOp::RdmaRead { .. }
                    | SendOp::AtomicCmpSwap { .. }
                    | SendOp::AtomicFetchAdd { .. }
                    | SendOp::SendWithInv(_)
            )
        {
            return Err(PostError::InvalidState);
        }
        wr.check()?;
        let len = wr.sg.total_len();
        if self.sq_outstanding >= self.cfg.sq_depth {
            return Err(PostError::Full);
        }
        self.sq_outstanding += 1;
        if self.state == QpState::Err {
            self.ctx.push_wc(WorkCompletion {
                wr_id: wr.wr_id,
                status: WcStatus::WrFlushErr,
                opcode: wr.op.wc_opcode(),
                queue: WcQueue::Send,
                byte_len: len as u32,
                imm: None,
                inv: None,
                qp_num: self.cfg.qpn,
                src_qp: self.ctx.remote_qpn,
                solicited: false,
                grh: false,
                sl: 0,
            });
            return Ok(());
        }
        self.req.post(wr, len as u32);
        Ok(())
    }

    /// `ibv_post_recv` for one WR. In ERROR the WR completes at once with
    /// IBV_WC_WR_FLUSH_ERR. Refused in RESET and on a QP with an SRQ
    /// (EINVAL, as rxe).
    pub fn post_recv(&mut self, wr: RecvWr) -> Result<(), PostError> {
        self.resp.new_input();
        if self.state == QpState::Reset || self.resp.has_srq() {
            return Err(PostError::InvalidState);
        }
        if self.rq_outstanding >= self.cfg.rq_depth {
            return Err(PostError::Full);
        }
        self.rq_outstanding += 1;
        if self.state == QpState::Err {
            self.ctx.push_wc(WorkCompletion {
                wr_id: wr.wr_id,
                status: WcStatus::WrFlushErr,
                opcode: crate::wr::WcOpcode::Recv,
                queue: WcQueue::Recv,
                byte_len: 0,
                imm: None,
                inv: None,
                qp_num: self.cfg.qpn,
                src_qp: self.ctx.remote_qpn,
                solicited: false,
                grh: false,
                sl: 0,
            });
            return Ok(());
        }
        self.resp.post(wr);
        Ok(())
    }

    /// One received frame (any bytes; never panics). Returns why it was
    /// dropped or ignored, if it was; protocol events (NAKs sent,
    /// duplicates answered) are not drops.
    ///
    /// Only a frame from the connected peer moves the QP (docs/wire.md
    /// §7.1): its destination QPN must be this QP's, its source QPN the
    /// connected remote QPN and its source MAC the MAC of the connected
    /// path; anything else is dropped and counted before any field is
    /// acted on (no NAK, no piggybacked ACK applied).
    pub fn handle_frame<M: MemoryAccess + ?Sized>(
        &mut self,
        now: Instant,
        bytes: &[u8],
        mem: &mut M,
    ) -> Result<(), RxDrop> {
        self.ctx.stats.rx_frames += 1;
        self.resp.new_input();
        let parsed = Frame::new_checked(bytes).and_then(|f| FrameRepr::parse(&f).map(|r| (f, r)));
        let (frame, repr) = match parsed {
            Ok(x) => x,
            Err(e) => {
                let s = &mut self.ctx.stats;
                match e {
                    omx_wire::Error::Truncated => s.rx_truncated += 1,
                    omx_wire::Error::Malformed => s.rx_malformed += 1,
                    omx_wire::Error::Unsupported => s.rx_unsupported += 1,
                    omx_wire::Error::BadCrc => s.rx_bad_crc += 1,
                }
                return Err(RxDrop::Wire(e));
            }
        };
        if repr.bth.transport != self.ctx.transport {
            // An RC frame at a UC QP or the reverse: not a protocol this
            // QP speaks.
            self.ctx.stats.rx_unsupported += 1;
            return Err(RxDrop::Wire(omx_wire::Error::Unsupported));
        }
        if repr.bth.dst_qpn != self.cfg.qpn || repr.bth.src_qpn != self.ctx.remote_qpn {
            self.ctx.stats.rx_wrong_qp += 1;
            return Err(RxDrop::WrongQp);
        }
        if repr.src_mac != self.ctx.path.dmac {
            self.ctx.stats.rx_wrong_mac += 1;
            return Err(RxDrop::WrongMac);
        }
        let op = repr.bth.opcode;
        if self.is_uc() {
            // UC (§14): requests only (the wire decoder refuses anything
            // else), no PAETH, no ACK; never an error for the QP.
            if !self.state.receives() {
                self.ctx.stats.rx_wrong_state += 1;
                return Err(RxDrop::WrongState);
            }
            if repr.payload_len > self.ctx.mtu as usize {
                self.ctx.stats.rx_too_long += 1;
                return Err(RxDrop::TooLong);
            }
            let r = self
                .resp
                .handle_uc_request(&mut self.ctx, &repr, frame.payload(), mem);
            return self.settle(r);
        }
        let accepts = if op.is_request() {
            self.state.receives()
        } else {
            matches!(self.state, QpState::Rts | QpState::Sqd)
        };
        if !accepts {
            self.ctx.stats.rx_wrong_state += 1;
            return Err(RxDrop::WrongState);
        }
        if repr.payload_len > self.ctx.mtu as usize {
            self.ctx.stats.rx_too_long += 1;
            return Err(RxDrop::TooLong);
        }
        let payload = frame.payload();
        if let Some(a) = repr.ext.ack {
            // The peer's responder acknowledges our requests. Only a
            // sending QP has any; the requester applies it only inside
            // its window. The request itself is processed either way.
            self.ctx.stats.rx_piggy_acks += 1;
            if matches!(self.state, QpState::Rts | QpState::Sqd) {
                self.req.handle_piggy_ack(&mut self.ctx, now, a);
            }
        }
        let r = if op.is_request() {
            self.resp
                .handle_request(&mut self.ctx, now, &repr, payload, mem)
        } else {
            self.req
                .handle_response(&mut self.ctx, now, &repr, payload, mem)
        };
        self.settle(r)
    }

    /// The end of every `handle_frame`: a drop is returned, a fatal
    /// outcome moves the QP to ERROR with its event (not a drop), and
    /// unsignaled send WQEs retired meanwhile release their slots.
    fn settle(&mut self, r: Result<(), RxError>) -> Result<(), RxDrop> {
        let out = match r {
            Ok(()) => Ok(()),
            Err(RxError::Drop(d)) => Err(d),
            Err(RxError::Fatal(Fatal(kind))) => {
                self.enter_error(Some(kind));
                Ok(())
            }
        };
        self.release_silent();
        out
    }

    /// Handles every timer due at `now` (and grants the responder its next
    /// burst of READ responses).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.resp.new_input();
        for t in Timer::VALUES {
            if !self.ctx.timers.is_expired(t, now) {
                continue;
            }
            self.ctx.timers.stop(t);
            let r = match t {
                Timer::Retransmit => self.req.on_retransmit_timeout(&mut self.ctx, now),
                Timer::Rnr => {
                    self.req.on_rnr_timeout();
                    Ok(())
                }
                Timer::Ack => {
                    self.resp.ack.on_timer();
                    Ok(())
                }
                // The burst was granted above.
                Timer::Resume => Ok(()),
            };
            if let Err(Fatal(kind)) = r {
                self.enter_error(Some(kind));
            }
        }
    }

    /// Writes the next frame to send into `buf` (at least
    /// [`omx_wire::max_frame_len`]`(path_mtu)` bytes) and returns its
    /// length; `None` when there is nothing to send now.
    pub fn poll_transmit<M: MemoryAccess + ?Sized>(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        mem: &M,
    ) -> Option<Transmit> {
        let n = self.poll_transmit_inner(now, buf, mem);
        if n.is_some() {
            self.ctx.stats.tx_frames += 1;
        }
        self.release_silent();
        n.map(|len| Transmit { len })
    }

    fn poll_transmit_inner<M: MemoryAccess + ?Sized>(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        mem: &M,
    ) -> Option<usize> {
        if self.is_uc() {
            // UC: requests only, never an ACK or a NAK.
            if !self.state.sends() {
                return None;
            }
            return match self.req.poll_transmit(&mut self.ctx, now, buf, mem, None) {
                Ok(Some((n, _))) => Some(n),
                Ok(None) => None,
                Err(Fatal(kind)) => {
                    self.enter_error(Some(kind));
                    None
                }
            };
        }
        if self.state == QpState::Err {
            return match self.resp.poll_nak(&mut self.ctx, buf) {
                Some(n) => Some(n),
                None => self.resp.poll_ack(&mut self.ctx, buf),
            };
        }
        if self.state.receives() {
            match self.resp.poll_transmit(&mut self.ctx, now, buf, mem) {
                Ok(Some(n)) => return Some(n),
                Ok(None) => {}
                Err(Fatal(kind)) => {
                    self.enter_error(Some(kind));
                    return self.resp.poll_nak(&mut self.ctx, buf);
                }
            }
        }
        if self.state.sends() {
            let ack = if self.state.receives() {
                self.resp.piggyback(&self.ctx)
            } else {
                None
            };
            let owed = self.resp.ack.owed();
            match self.req.poll_transmit(&mut self.ctx, now, buf, mem, ack) {
                Ok(Some((n, carried))) => {
                    self.resp.ack.request_sent(now);
                    if carried && owed {
                        self.ctx.stats.tx_piggy_acks += 1;
                        self.resp.ack.sent(&mut self.ctx.timers);
                        self.resp.acked = true;
                    }
                    return Some(n);
                }
                Ok(None) => return None,
                Err(Fatal(kind)) => {
                    self.enter_error(Some(kind));
                    return None;
                }
            }
        }
        None
    }

    /// The earliest time at which [`RcQp::handle_timeout`] must be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.ctx.timers.next_timeout()
    }

    /// The credits this QP grants its peer from now on (docs/wire.md §9,
    /// [`crate::grant`]): its share of the receive ring, clamped to
    /// [`crate::grant::MIN_GRANT`]..=the QP's receive window. The next
    /// ACK carries it; an ACK becomes due once all of it is used. A
    /// smaller grant never takes back what the peer was already allowed
    /// (its bound only moves forward).
    pub fn set_credit_grant(&mut self, credits: u16) {
        let g = credits.clamp(crate::grant::MIN_GRANT, self.ctx.rx_window);
        if g != self.ctx.grant {
            self.ctx.grant = g;
            self.resp.ack.set_grant(u32::from(g));
        }
    }

    /// Why the requester declared its peer gone (IBV_WC_RETRY_EXC_ERR),
    /// if it did since the QP was created or last reset.
    pub fn gone_report(&self) -> Option<crate::GoneReport> {
        self.req.gone
    }

    /// The credits this QP grants now.
    pub fn credit_grant(&self) -> u16 {
        self.ctx.grant
    }

    /// Next work completion (send or receive queue, see
    /// [`WorkCompletion::queue`]). Polling releases the WQE's slot.
    #[must_use]
    pub fn poll_completion(&mut self) -> Option<WorkCompletion> {
        let wc = self.ctx.cq.pop_front()?;
        match wc.queue {
            WcQueue::Send => self.sq_outstanding = self.sq_outstanding.saturating_sub(1),
            // A WQE taken from an SRQ never counted here.
            WcQueue::Recv if self.resp.has_srq() => {}
            WcQueue::Recv => self.rq_outstanding = self.rq_outstanding.saturating_sub(1),
        }
        Some(wc)
    }
}
