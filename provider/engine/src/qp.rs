//! The RC queue pair: owns a requester and a responder, the timers and
//! the completion staging queue, and exposes the sans-IO API.

use std::collections::VecDeque;

use omx_wire::{Ext, Frame, FrameRepr, Opcode, Psn, Qpn, Transport};

use crate::ack::AckState;
use crate::mem::MemoryAccess;
use crate::requester::Requester;
use crate::responder::Responder;
use crate::state::{transport_timeout, PathInfo, PathMtu, QpAttr, QpState};
use crate::time::{Duration, Instant};
use crate::timer::{Timer, TimerTable};
use crate::wr::{RecvWr, SendOp, SendWr, WcQueue, WcStatus, WorkCompletion};

/// Largest message (`ibv_port_attr.max_msg_sz`).
pub const MAX_MSG_SIZE: u64 = 1 << 31;

/// Creation-time parameters of an RC QP (sizes every ring).
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
}

impl QpConfig {
    /// Defaults: 256/256 WQEs, 64-packet window, ACK every 32 packets or
    /// after 20 µs, held up to 1 ms for an answer.
    pub fn new(qpn: Qpn) -> Self {
        QpConfig {
            qpn,
            sq_depth: 256,
            rq_depth: 256,
            rx_window: 64,
            ack_coalesce: 0,
            ack_delay: Duration::from_micros(20),
            ack_hold: Duration::from_millis(1),
        }
    }
}

/// Counters. Every dropped frame is counted under its reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames handed to `handle_frame`.
    pub rx_frames: u64,
    /// Dropped: truncated.
    pub rx_truncated: u64,
    /// Dropped: malformed.
    pub rx_malformed: u64,
    /// Dropped: unsupported version, type or transport.
    pub rx_unsupported: u64,
    /// Dropped: CRC32C mismatch.
    pub rx_bad_crc: u64,
    /// Dropped: not for this QP / not from the connected QP.
    pub rx_wrong_qp: u64,
    /// Dropped: QP state does not accept it.
    pub rx_wrong_state: u64,
    /// Dropped: payload longer than the path MTU.
    pub rx_too_long: u64,
    /// Request or response PSN after the expected one.
    pub rx_out_of_sequence: u64,
    /// Duplicate request or response.
    pub rx_duplicate: u64,
    /// ACK for a PSN never sent.
    pub rx_bogus_ack: u64,
    /// READ response with a wrong length.
    pub rx_bad_response: u64,
    /// Response opcode not expected (atomics).
    pub rx_unexpected: u64,
    /// RNR NAKs received.
    pub rx_rnr_naks: u64,
    /// PSN sequence error NAKs received.
    pub rx_seq_naks: u64,
    /// Fatal NAKs received.
    pub rx_naks: u64,
    /// Frames produced by `poll_transmit`.
    pub tx_frames: u64,
    /// Request packets sent again.
    pub tx_retransmits: u64,
    /// ACKs sent as frames of their own.
    pub tx_acks: u64,
    /// ACKs carried by request packets (PAETH) that acknowledged
    /// something new; repeats of the cumulative ACK are not counted.
    pub tx_piggy_acks: u64,
    /// Request packets received with a PAETH (repeats included).
    pub rx_piggy_acks: u64,
    /// NAKs (not RNR) sent.
    pub tx_naks: u64,
    /// RNR NAKs sent.
    pub tx_rnr_naks: u64,
    /// Sending stopped by peer credits.
    pub tx_blocked_credits: u64,
    /// Sending stopped by our own window.
    pub tx_blocked_window: u64,
    /// Sending stopped by max_rd_atomic.
    pub tx_blocked_rd_atomic: u64,
    /// `poll_transmit` got a buffer smaller than `max_frame_len`.
    pub tx_buffer_too_small: u64,
    /// Transport timer expiries.
    pub timeouts: u64,
    /// Go-back-N rewinds.
    pub rewinds: u64,
}

/// Marker: the QP must move to ERROR (the error completion is queued).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fatal;

/// State shared by the requester and the responder.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) qpn: Qpn,
    pub(crate) remote_qpn: Qpn,
    pub(crate) path: PathInfo,
    pub(crate) mtu: u32,
    pub(crate) rx_window: u16,
    pub(crate) timers: TimerTable,
    pub(crate) stats: Stats,
    cq: VecDeque<WorkCompletion>,
    /// Unsignaled send WQEs retired since the last poll_completion.
    pub(crate) sq_retired_silently: u32,
}

impl Ctx {
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
                transport: Transport::Rc,
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
/// transport timer (if there is one).
fn ack_hold(configured: Duration, timeout: Option<Duration>) -> Duration {
    timeout.map_or(configured, |t| {
        configured.min(Duration::from_nanos(t.as_nanos() / 4))
    })
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
    /// QP in RESET, or receive posted to a QP in RESET (EINVAL).
    InvalidState,
    /// Message longer than [`MAX_MSG_SIZE`] (EINVAL).
    TooLong,
    /// Operation not implemented yet: atomics (EOPNOTSUPP).
    Unsupported,
}

/// Why `modify` refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModifyError {
    /// Transition not allowed from the current state.
    InvalidTransition {
        /// Current state.
        from: QpState,
        /// Requested state.
        to: QpState,
    },
    /// An attribute is out of range.
    InvalidAttribute,
    /// INIT→RTR without path MTU or destination QPN.
    MissingAttribute,
}

/// Why `handle_frame` dropped a frame (already counted in [`Stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxDrop {
    /// Rejected by the wire decoder.
    Wire(omx_wire::Error),
    /// Destination or source QPN does not match.
    WrongQp,
    /// The QP state does not accept packets.
    WrongState,
    /// Payload longer than the path MTU.
    TooLong,
}

/// A reliable-connected QP as a sans-IO state machine.
///
/// # API (quinn-proto's four kinds)
///
/// - (A) getters: [`RcQp::qpn`], [`RcQp::state`], [`RcQp::stats`].
/// - (B) inputs: [`RcQp::handle_frame`] (one received frame) and
///   [`RcQp::handle_timeout`].
/// - (C) verbs: [`RcQp::modify`], [`RcQp::post_send`],
///   [`RcQp::post_recv`].
/// - (D) outputs: [`RcQp::poll_transmit`], [`RcQp::poll_timeout`],
///   [`RcQp::poll_completion`].
///
/// After any (B) or (C) call, drain the outputs in this order: call
/// `poll_transmit` until it returns `None` (sending each frame), then
/// `poll_completion` until `None` (into the send/recv CQs), then re-arm
/// the caller's timer with `poll_timeout`. `now` must never go backwards
/// across calls.
///
/// Nothing here allocates after [`RcQp::new`]: the WQE rings, READ queues
/// and the completion queue are sized at creation, and a send/recv slot is
/// released only when its completion has been polled, so the completion
/// queue cannot overflow.
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
    have_mtu: bool,
    have_dest: bool,
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
        let req = Requester::new(cfg.sq_depth as usize);
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
            have_mtu: false,
            have_dest: false,
            cfg,
        }
    }

    /// This QP's number.
    pub fn qpn(&self) -> Qpn {
        self.cfg.qpn
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

    /// `ibv_modify_qp`.
    pub fn modify(&mut self, attr: &QpAttr) -> Result<(), ModifyError> {
        let to = attr.state.unwrap_or(self.state);
        if !self.state.can_transition(to) {
            return Err(ModifyError::InvalidTransition {
                from: self.state,
                to,
            });
        }
        let bad = |v: Option<u8>, max: u8| v.is_some_and(|v| v > max);
        if bad(attr.retry_cnt, 7)
            || bad(attr.rnr_retry, 7)
            || bad(attr.min_rnr_timer, 31)
            || bad(attr.timeout, 31)
        {
            return Err(ModifyError::InvalidAttribute);
        }
        if to == QpState::Rtr
            && self.state == QpState::Init
            && !(self.have_mtu || attr.path_mtu.is_some())
            || to == QpState::Rtr
                && self.state == QpState::Init
                && !(self.have_dest || attr.dest_qpn.is_some())
        {
            return Err(ModifyError::MissingAttribute);
        }
        if let Some(m) = attr.path_mtu {
            self.ctx.mtu = m.bytes();
            self.have_mtu = true;
        }
        if let Some(q) = attr.dest_qpn {
            self.ctx.remote_qpn = q;
            self.have_dest = true;
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
            self.req.max_rd_atomic = usize::from(n.max(1));
        }
        if let Some(n) = attr.max_dest_rd_atomic {
            self.resp.max_dest_rd_atomic = usize::from(n.max(1));
        }
        if let Some(p) = attr.path {
            self.ctx.path = p;
        }
        let from = self.state;
        if from != to {
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
                    // last word, so it goes out more than once.
                    self.resp.ack.flush_final(self.resp.acked);
                    self.enter_error();
                    return Ok(());
                }
                _ => {}
            }
            self.state = to;
        }
        Ok(())
    }

    fn enter_error(&mut self) {
        self.state = QpState::Err;
        self.ctx.timers.stop_all();
        self.req.flush(&mut self.ctx);
        self.resp.flush(&mut self.ctx);
        self.release_silent();
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
        self.sq_outstanding != 0 || self.rq_outstanding != 0
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
    /// IBV_WC_WR_FLUSH_ERR.
    pub fn post_send(&mut self, wr: SendWr) -> Result<(), PostError> {
        if self.state == QpState::Reset {
            return Err(PostError::InvalidState);
        }
        if matches!(
            wr.op,
            SendOp::AtomicCmpSwap { .. } | SendOp::AtomicFetchAdd { .. }
        ) {
            return Err(PostError::Unsupported);
        }
        let len = wr.sg.total_len();
        if len > MAX_MSG_SIZE {
            return Err(PostError::TooLong);
        }
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
                qp_num: self.cfg.qpn,
                src_qp: self.ctx.remote_qpn,
                solicited: false,
            });
            return Ok(());
        }
        self.req.post(wr, len as u32);
        Ok(())
    }

    /// `ibv_post_recv` for one WR. In ERROR the WR completes at once with
    /// IBV_WC_WR_FLUSH_ERR.
    pub fn post_recv(&mut self, wr: RecvWr) -> Result<(), PostError> {
        if self.state == QpState::Reset {
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
                qp_num: self.cfg.qpn,
                src_qp: self.ctx.remote_qpn,
                solicited: false,
            });
            return Ok(());
        }
        self.resp.post(wr);
        Ok(())
    }

    /// One received frame (any bytes; never panics). Returns why it was
    /// dropped, if it was; protocol events (NAKs, duplicates) are not
    /// drops.
    pub fn handle_frame<M: MemoryAccess + ?Sized>(
        &mut self,
        now: Instant,
        bytes: &[u8],
        mem: &mut M,
    ) -> Result<(), RxDrop> {
        self.ctx.stats.rx_frames += 1;
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
        if repr.bth.dst_qpn != self.cfg.qpn || repr.bth.src_qpn != self.ctx.remote_qpn {
            self.ctx.stats.rx_wrong_qp += 1;
            return Err(RxDrop::WrongQp);
        }
        let op = repr.bth.opcode;
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
            // sending QP has any; duplicates and stale ones are harmless
            // (an ACK never moves backwards).
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
        if r.is_err() {
            self.enter_error();
        }
        self.release_silent();
        Ok(())
    }

    /// Handles every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
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
            };
            if r.is_err() {
                self.enter_error();
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
        if self.state == QpState::Err {
            return match self.resp.poll_nak(&mut self.ctx, buf) {
                Some(n) => Some(n),
                None => self.resp.poll_ack(&mut self.ctx, buf),
            };
        }
        if self.state.receives() {
            match self.resp.poll_transmit(&mut self.ctx, buf, mem) {
                Ok(Some(n)) => return Some(n),
                Ok(None) => {}
                Err(Fatal) => {
                    self.enter_error();
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
                Err(Fatal) => {
                    self.enter_error();
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

    /// Next work completion (send or receive queue, see
    /// [`WorkCompletion::queue`]). Polling releases the WQE's slot.
    #[must_use]
    pub fn poll_completion(&mut self) -> Option<WorkCompletion> {
        let wc = self.ctx.cq.pop_front()?;
        match wc.queue {
            WcQueue::Send => self.sq_outstanding = self.sq_outstanding.saturating_sub(1),
            WcQueue::Recv => self.rq_outstanding = self.rq_outstanding.saturating_sub(1),
        }
        Some(wc)
    }
}
