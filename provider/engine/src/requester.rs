//! RC requester: segmentation, credits, go-back-N retransmission, ACK/NAK,
//! READ response and atomic acknowledge processing (docs/wire.md §5, §9,
//! §10.2, §10.4).
//!
//! UC mode ([`Requester::set_uc`], docs/wire.md §14): the same
//! segmentation, no credits, window, AckReq or transport timer; a WQE
//! completes as soon as its last packet is built (`una` and `sent_end`
//! follow `next_psn`), and the QP never sees a response.
//!
//! Invariants:
//! - `sq` holds every posted, not yet completed WQE in posting order;
//!   entries `< cursor` and the cursor entry (if started) have PSNs.
//! - `una <= next_psn <= sent_end` (modular): `una` is the oldest PSN not
//!   known to be executed (or, for a READ or an atomic, the first
//!   response not placed),
//!   `next_psn` the PSN of the next packet to (re)send, `sent_end` one past
//!   the highest PSN ever sent.
//! - A request packet is sent only if its PSN is `<= limit` (peer credits)
//!   and the span `una..=psn` (READ: the whole chunk) fits `rx_window`.
//! - The front WQE, once assigned, starts at or before `una`.
//!
//! What the peer can make it do (docs/wire.md §7.2): an ACK (frame,
//! PAETH or READ response) and its credits count only if its PSN lies in
//! `[una - 1, sent_end - 1]`, and a NAK or RNR NAK only if its PSN is
//! outstanding, `[una, sent_end)`; anything else is counted and ignored.
//! PSNs inside one message (up to 2^23 of them) are compared by their
//! unsigned offset from the message's first PSN.

use std::collections::VecDeque;

use omx_wire::{
    Aeth, AtomicEth, Ext, Frame, NakCode, Opcode, Paeth, Position, Psn, Reth, Syndrome,
};

use crate::cc::{self, Cwnd, RttEstimator};
use crate::mem::{self, Access, MemoryAccess};
use crate::qp::{Ctx, Fatal, QpEventKind, RxDrop, RxError};
use crate::state::{rnr_timer, RNR_RETRY_INFINITE};
use crate::time::{Duration, Instant};
use crate::timer::Timer;
use crate::wr::{SendOp, SendWr, WcQueue, WcStatus, WorkCompletion};

#[derive(Debug, Clone, Copy)]
struct SqEntry {
    wr: SendWr,
    len: u32,
    first_psn: Psn,
    npsn: u32,
    assigned: bool,
    /// READ or atomic: response packets placed, in PSN order.
    read_done: u32,
}

impl SqEntry {
    fn is_read(&self) -> bool {
        matches!(self.wr.op, SendOp::RdmaRead { .. })
    }

    fn is_atomic(&self) -> bool {
        matches!(
            self.wr.op,
            SendOp::AtomicCmpSwap { .. } | SendOp::AtomicFetchAdd { .. }
        )
    }

    /// Completes only when its responses arrived (an ACK alone does not
    /// do it: they carry the data).
    fn awaits_response(&self) -> bool {
        self.is_read() || self.is_atomic()
    }

    fn contains(&self, psn: Psn) -> bool {
        self.assigned && psn.within(self.first_psn, self.npsn)
    }
}

fn npackets(len: u32, mtu: u32) -> u32 {
    len.div_ceil(mtu).max(1)
}

#[derive(Debug)]
pub(crate) struct Requester {
    sq: VecDeque<SqEntry>,
    cursor: usize,
    cursor_pkt: u32,
    next_psn: Psn,
    una: Psn,
    sent_end: Psn,
    limit: Psn,
    pub(crate) timeout: Option<Duration>,
    pub(crate) retry_cnt: u8,
    pub(crate) rnr_retry: u8,
    pub(crate) max_rd_atomic: usize,
    rnr_left: u8,
    /// Round trip and retransmission timeout (RFC 6298).
    rtt: RttEstimator,
    /// Congestion window (packets).
    cwnd: Cwnd,
    /// The packet being timed for a round-trip sample (its last PSN) and
    /// when it was sent; cleared by a rewind (Karn's rule).
    timed: Option<(Psn, Instant)>,
    /// When the peer last showed it is alive (an ACK, a response, an RNR
    /// NAK), or when sending started from idle: the clock of
    /// IBV_WC_RETRY_EXC_ERR ([`cc::peer_gone`]).
    heard: Instant,
    /// Counter behind the timer's jitter.
    jitter: u32,
    /// Transport timer expiries left before the peer may be declared
    /// gone; reloaded by every word from the peer.
    retry_left: u8,
    /// Why the peer was declared gone, once it was.
    pub(crate) gone: Option<cc::GoneReport>,
    rnr_wait: bool,
    /// PSN of the last NAK / READ gap we rewound for (ignore repeats until
    /// progress).
    nak_guard: Option<Psn>,
    /// Last PSN of every outstanding READ request (chunk) and atomic:
    /// at most `max_rd_atomic` of them.
    read_chunks: VecDeque<Psn>,
    /// UC: nothing is acknowledged; a WQE is done once sent.
    uc: bool,
}

impl Requester {
    pub(crate) fn new(sq_depth: usize) -> Self {
        Requester {
            sq: VecDeque::with_capacity(sq_depth),
            cursor: 0,
            cursor_pkt: 0,
            next_psn: Psn::new(0),
            una: Psn::new(0),
            sent_end: Psn::new(0),
            limit: Psn::new(0),
            timeout: crate::state::transport_timeout(14),
            retry_cnt: 7,
            rnr_retry: 7,
            max_rd_atomic: 16,
            rnr_left: 7,
            rtt: RttEstimator::default(),
            cwnd: Cwnd::default(),
            timed: None,
            heard: Instant::ZERO,
            retry_left: 7,
            jitter: 0,
            gone: None,
            rnr_wait: false,
            nak_guard: None,
            read_chunks: VecDeque::with_capacity(256),
            uc: false,
        }
    }

    /// UC mode (for a requester just created): no transport timer, no
    /// credits, no window, no ACK request.
    pub(crate) fn set_uc(&mut self) {
        self.uc = true;
        self.timeout = None;
    }

    /// RTR→RTS: start sending at `sq_psn`.
    pub(crate) fn start(&mut self, sq_psn: Psn) {
        self.next_psn = sq_psn;
        self.una = sq_psn;
        self.sent_end = sq_psn;
        self.limit = sq_psn.add(u32::from(omx_wire::INITIAL_CREDITS)).sub(1);
        self.rnr_left = self.rnr_retry;
        self.retry_left = self.retry_cnt;
        self.rtt = RttEstimator::default();
        self.cwnd = Cwnd::default();
        self.timed = None;
    }

    pub(crate) fn post(&mut self, wr: SendWr, len: u32) {
        self.sq.push_back(SqEntry {
            wr,
            len,
            first_psn: Psn::new(0),
            npsn: 0,
            assigned: false,
            read_done: 0,
        });
    }

    fn outstanding(&self) -> bool {
        self.una != self.sent_end
    }

    /// Moves the cursor to `psn` (which must belong to a started WQE or be
    /// the PSN right after the last started one).
    fn seek(&mut self, psn: Psn) {
        for (i, e) in self.sq.iter().enumerate() {
            if !e.assigned {
                break;
            }
            if e.contains(psn) {
                self.cursor = i;
                self.cursor_pkt = psn.offset_from(e.first_psn);
                self.next_psn = psn;
                return;
            }
            if e.first_psn.add(e.npsn) == psn {
                self.cursor = i + 1;
                self.cursor_pkt = 0;
                self.next_psn = psn;
            }
        }
    }

    /// Go-back-N: resend from `psn`.
    fn rewind(&mut self, ctx: &mut Ctx, psn: Psn) {
        if psn.before(self.next_psn) {
            ctx.stats.rewinds += 1;
            self.seek(psn);
            self.read_chunks.clear();
            self.timed = None;
        }
    }

    /// The retransmission timeout now, from the round trip, plus up to a
    /// quarter of it at random (`None`: the timer is off, IBTA timeout 0).
    /// The jitter keeps QPs that lost their packets together from
    /// retransmitting together again and again: a thousand QPs whose first
    /// packets overflowed a ring at once otherwise came back in the same
    /// order every time, and the same ones, at the end of each burst,
    /// were dropped every time until they gave up.
    fn rto(&mut self, ctx: &Ctx) -> Option<Duration> {
        let t = self.timeout?;
        let rto = self.rtt.rto(t).as_nanos();
        self.jitter = self.jitter.wrapping_add(1);
        let r = cc::mix(u64::from(ctx.qpn.value()) << 32 | u64::from(self.jitter));
        Some(Duration::from_nanos(
            rto.saturating_add((rto / 4).saturating_mul(r >> 54) >> 10),
        ))
    }

    /// Packets outstanding: from `una` to the next one to send.
    fn inflight(&self) -> u32 {
        self.next_psn.diff(self.una).max(0) as u32
    }

    /// Packets sent and not acknowledged: from `una` to `sent_end`.
    fn unacked(&self) -> u32 {
        self.sent_end.diff(self.una).max(0) as u32
    }

    /// The peer said something that shows it alive (or sending starts
    /// from idle): the silence clock and the retries start over.
    fn alive(&mut self, now: Instant) {
        self.heard = now;
        self.retry_left = self.retry_cnt;
    }

    /// The transport timer expired: whether the peer is gone
    /// ([`cc::peer_gone`]), else one retry used up. Records why.
    fn peer_gone(&mut self, now: Instant) -> bool {
        let Some(t) = self.timeout else {
            return false;
        };
        let unit = t.max(self.rtt.base(t));
        if !cc::peer_gone(now, self.heard, unit, self.retry_cnt, self.retry_left) {
            self.retry_left = self.retry_left.saturating_sub(1);
            return false;
        }
        self.gone = Some(cc::GoneReport {
            silent_ns: now.saturating_duration_since(self.heard).as_nanos(),
            unit_ns: unit.as_nanos(),
            srtt_ns: self.rtt.srtt().map_or(0, Duration::as_nanos),
            rto_ns: self.rtt.rto(t).as_nanos(),
            cwnd: self.cwnd.get(),
            outstanding: self.unacked(),
            credits_left: self.limit.diff(self.next_psn),
        });
        true
    }

    /// `psn` may be acknowledged: it lies in `[una - 1, sent_end - 1]`
    /// (with nothing outstanding, only the repeated ACK of `una - 1`).
    fn ack_in_window(&self, psn: Psn) -> bool {
        let lo = self.una.sub(1);
        psn.offset_from(lo) <= self.sent_end.sub(1).offset_from(lo)
    }

    /// `psn` is outstanding: in `[una, sent_end)`.
    fn outstanding_psn(&self, psn: Psn) -> bool {
        psn.offset_from(self.una) < self.sent_end.offset_from(self.una)
    }

    /// Credits of an AETH or PAETH about `psn`, which the caller checked
    /// is in the ACK window: the bound then stays within a window and a
    /// credit count of `sent_end`, so the modular max cannot jump.
    fn update_limit(&mut self, psn: Psn, credits: u16) {
        if self.ack_in_window(psn) {
            self.limit = self.limit.max(psn.add(u32::from(credits)));
        }
    }

    /// Pushes a completion for WQE `i` with `status`, flushing the ones
    /// before it, and reports the QP-fatal error.
    fn fail_at(&mut self, ctx: &mut Ctx, psn: Psn, status: WcStatus) -> Fatal {
        let i = self.sq.iter().position(|e| e.contains(psn)).unwrap_or(0);
        self.fail_index(ctx, i, status)
    }

    /// [`Requester::fail_at`] for the WQE at index `i` of the queue.
    fn fail_index(&mut self, ctx: &mut Ctx, i: usize, status: WcStatus) -> Fatal {
        for (j, e) in self.sq.drain(..).enumerate() {
            let st = match j.cmp(&i) {
                core::cmp::Ordering::Less => WcStatus::WrFlushErr,
                core::cmp::Ordering::Equal => status,
                core::cmp::Ordering::Greater => WcStatus::WrFlushErr,
            };
            ctx.push_wc(send_wc(ctx, &e, st));
        }
        self.cursor = 0;
        self.cursor_pkt = 0;
        // The error is reported by the completion: no asynchronous event.
        Fatal(QpEventKind::None)
    }

    /// Moves the QP's send side to ERROR: flushes every WQE.
    pub(crate) fn flush(&mut self, ctx: &mut Ctx) {
        for e in self.sq.drain(..) {
            ctx.push_wc(send_wc(ctx, &e, WcStatus::WrFlushErr));
        }
        self.cursor = 0;
        self.cursor_pkt = 0;
        self.read_chunks.clear();
        self.rnr_wait = false;
    }

    /// Drops every WQE without completion (modify to RESET).
    pub(crate) fn reset(&mut self) {
        self.gone = None;
        self.sq.clear();
        self.cursor = 0;
        self.cursor_pkt = 0;
        self.read_chunks.clear();
        self.rnr_wait = false;
        self.nak_guard = None;
    }

    /// Builds the next request packet into `buf`; returns its length and
    /// whether it carries `ack` (the responder's piggybacked ACK), which
    /// only the last packet of a message does: the peer then learns in one
    /// frame that its request completed and that this message arrived
    /// (one completion event, not two).
    pub(crate) fn poll_transmit<M: MemoryAccess + ?Sized>(
        &mut self,
        ctx: &mut Ctx,
        now: Instant,
        buf: &mut [u8],
        mem: &M,
        ack: Option<Paeth>,
    ) -> Result<Option<(usize, bool)>, Fatal> {
        if self.rnr_wait {
            return Ok(None);
        }
        self.run_local_ops(ctx, mem)?;
        if self.cursor >= self.sq.len() {
            return Ok(None);
        }
        let mtu = ctx.mtu;
        let psn = self.next_psn;
        {
            let e = &mut self.sq[self.cursor];
            if !e.assigned {
                e.assigned = true;
                e.first_psn = psn;
                e.npsn = npackets(e.len, mtu);
            }
        }
        if !self.uc && psn.diff(self.limit) > 0 {
            ctx.stats.tx_blocked_credits += 1;
            return Ok(None);
        }
        let window = u32::from(ctx.rx_window);
        // UC: una follows next_psn, nothing is in flight.
        let inflight = psn.diff(self.una).max(0) as u32;
        if inflight >= window {
            ctx.stats.tx_blocked_window += 1;
            return Ok(None);
        }
        if !self.uc && inflight >= self.cwnd.get() {
            ctx.stats.tx_blocked_cwnd += 1;
            return Ok(None);
        }
        let room = window - inflight;
        let e = self.sq[self.cursor];
        let pkt = self.cursor_pkt;
        let off = pkt * mtu;
        let (opcode, mut ext, plen, consumed) = match e.wr.op {
            SendOp::Send | SendOp::SendWithImm(_) | SendOp::SendWithInv(_) => {
                let pos = Position::of(pkt, e.npsn);
                let (imm, ieth) = match e.wr.op {
                    SendOp::SendWithImm(v) if pos.is_last() => (Some(v), None),
                    SendOp::SendWithInv(k) if pos.is_last() => (None, Some(k)),
                    _ => (None, None),
                };
                let ext = Ext {
                    imm,
                    ieth,
                    ..Ext::default()
                };
                let opcode = match (ieth, pos) {
                    (Some(_), Position::Only) => Opcode::SendOnlyInv,
                    (Some(_), _) => Opcode::SendLastInv,
                    (None, _) => Opcode::send(pos, imm.is_some()),
                };
                (opcode, ext, (e.len - off).min(mtu), 1)
            }
            // Executed by run_local_ops before we get here.
            SendOp::BindMw(_) | SendOp::LocalInv(_) => return Ok(None),
            SendOp::RdmaWrite { remote_addr, rkey }
            | SendOp::RdmaWriteWithImm {
                remote_addr, rkey, ..
            } => {
                let pos = Position::of(pkt, e.npsn);
                let imm = match e.wr.op {
                    SendOp::RdmaWriteWithImm { imm, .. } if pos.is_last() => Some(imm),
                    _ => None,
                };
                let reth = pos.is_first().then_some(Reth {
                    va: remote_addr,
                    rkey,
                    dma_len: e.len,
                });
                let ext = Ext {
                    reth,
                    imm,
                    ..Ext::default()
                };
                (
                    Opcode::write(pos, imm.is_some()),
                    ext,
                    (e.len - off).min(mtu),
                    1,
                )
            }
            SendOp::RdmaRead { remote_addr, rkey } => {
                if self.read_chunks.len() >= self.max_rd_atomic {
                    ctx.stats.tx_blocked_rd_atomic += 1;
                    return Ok(None);
                }
                // Chunks of at most `window` PSNs at fixed boundaries, so
                // that a re-issued request never reaches past the original
                // one (IBTA 9.7.5.1.5 duplicate READ rules).
                let chunk_end = e.npsn.min((pkt / window + 1).saturating_mul(window));
                let chunk = chunk_end - pkt;
                if chunk > room {
                    ctx.stats.tx_blocked_window += 1;
                    return Ok(None);
                }
                let rlen = (e.len - off).min(chunk.saturating_mul(mtu));
                let ext = Ext {
                    reth: Some(Reth {
                        va: remote_addr.wrapping_add(u64::from(off)),
                        rkey,
                        dma_len: rlen,
                    }),
                    ..Ext::default()
                };
                (Opcode::ReadRequest, ext, 0, chunk)
            }
            SendOp::AtomicCmpSwap {
                remote_addr,
                rkey,
                compare,
                swap,
            } => {
                let eth = AtomicEth {
                    va: remote_addr,
                    rkey,
                    swap_add: swap,
                    compare,
                };
                match self.atomic_packet(ctx, Opcode::CompareSwap, eth) {
                    Some(p) => p,
                    None => return Ok(None),
                }
            }
            SendOp::AtomicFetchAdd {
                remote_addr,
                rkey,
                add,
            } => {
                let eth = AtomicEth {
                    va: remote_addr,
                    rkey,
                    swap_add: add,
                    compare: 0,
                };
                match self.atomic_packet(ctx, Opcode::FetchAdd, eth) {
                    Some(p) => p,
                    None => return Ok(None),
                }
            }
        };
        // READ and atomic requests are answered by their responses: no
        // AckReq of their own, and they count against max_rd_atomic.
        let answered = opcode == Opcode::ReadRequest || opcode.is_atomic();
        let last_pkt = pkt + consumed >= e.npsn;
        // AckReq wherever sending will stop until an ACK comes: the end
        // of a message, the credit limit, our window, the congestion
        // window.
        let ack_req = !self.uc
            && ((last_pkt && !answered)
                || psn == self.limit
                || inflight + 1 >= window
                || (!answered && inflight + 1 >= self.cwnd.get()));
        let solicited = e.wr.solicited && last_pkt && opcode.is_send();
        ext.ack = ack.filter(|_| last_pkt);
        let repr = ctx.repr(opcode, psn, ack_req, solicited, plen as usize, ext);
        let mut frame = Frame::new_unchecked(&mut *buf);
        if repr.emit_header(&mut frame).is_err() {
            // Transmit buffer smaller than max_frame_len(path_mtu).
            ctx.stats.tx_buffer_too_small += 1;
            return Ok(None);
        }
        if plen > 0 {
            let sg = e.wr.sg;
            if mem::gather(
                mem,
                &sg,
                u64::from(off),
                frame.payload_mut(),
                Access::LocalRead,
            )
            .is_err()
            {
                return Err(self.fail_at(ctx, psn, WcStatus::LocProtErr));
            }
        }
        let n = frame.fill_crc_and_pad();

        // Advance the cursor.
        let npsn = e.npsn;
        if answered {
            self.read_chunks.push_back(psn.add(consumed - 1));
        }
        self.cursor_pkt += consumed;
        self.next_psn = psn.add(consumed);
        if self.cursor_pkt >= npsn {
            self.cursor += 1;
            self.cursor_pkt = 0;
        }
        if self.uc {
            // Handed to the wire is done: complete the WQE if this was
            // its last packet.
            self.una = self.next_psn;
            self.sent_end = self.next_psn;
            self.retire(ctx);
            return Ok(Some((n, false)));
        }
        if inflight == 0 && psn == self.sent_end {
            // Sending starts from idle: the silence clock starts now.
            self.alive(now);
        }
        if self.next_psn.diff(self.sent_end) > 0 {
            self.sent_end = self.next_psn;
            if self.timed.is_none() {
                self.timed = Some((self.next_psn.sub(1), now));
            }
        } else {
            ctx.stats.tx_retransmits += 1;
        }
        if let Some(t) = self.rto(ctx) {
            ctx.timers.set_if_stopped(Timer::Retransmit, now + t);
        }
        Ok(Some((n, repr.ext.ack.is_some())))
    }

    /// Executes the local operations (bind, local invalidate) the cursor
    /// has reached: every WR posted before them was sent (at least once),
    /// so they take effect in send queue order. They take no PSN; each
    /// completes once the WRs before it did (`retire`). A refused one
    /// completes with its error status and moves the QP to ERROR, as a
    /// local error of the send queue does.
    fn run_local_ops<M: MemoryAccess + ?Sized>(
        &mut self,
        ctx: &mut Ctx,
        mem: &M,
    ) -> Result<(), Fatal> {
        let mut ran = false;
        while let Some(e) = self.sq.get(self.cursor) {
            if !e.wr.op.is_local() {
                break;
            }
            if e.assigned {
                // Executed before a go-back-N rewind brought the cursor
                // back: never again.
                self.cursor += 1;
                self.cursor_pkt = 0;
                continue;
            }
            let (r, status) = match e.wr.op {
                SendOp::BindMw(b) => (mem.bind_mw(&b), WcStatus::MwBindErr),
                SendOp::LocalInv(k) => (mem.invalidate(k, false), WcStatus::LocQpOpErr),
                _ => break,
            };
            if r.is_err() {
                ctx.stats.tx_local_op_errors += 1;
                return Err(self.fail_index(ctx, self.cursor, status));
            }
            let psn = self.next_psn;
            let e = &mut self.sq[self.cursor];
            e.assigned = true;
            e.first_psn = psn;
            e.npsn = 0;
            self.cursor += 1;
            self.cursor_pkt = 0;
            ran = true;
        }
        if ran {
            // Done at once if nothing before it is outstanding.
            self.retire(ctx);
        }
        Ok(())
    }

    /// The packet of an atomic request (opcode, extension headers, no
    /// payload, one PSN), or `None` while `max_rd_atomic` READs and
    /// atomics are outstanding.
    fn atomic_packet(
        &self,
        ctx: &mut Ctx,
        opcode: Opcode,
        eth: AtomicEth,
    ) -> Option<(Opcode, Ext, u32, u32)> {
        if self.read_chunks.len() >= self.max_rd_atomic {
            ctx.stats.tx_blocked_rd_atomic += 1;
            return None;
        }
        let ext = Ext {
            atomic: Some(eth),
            ..Ext::default()
        };
        Some((opcode, ext, 0, 1))
    }

    /// A PAETH: the same as an ACK frame with syndrome ACK. Returns
    /// whether it was in the window (and applied).
    pub(crate) fn handle_piggy_ack(&mut self, ctx: &mut Ctx, now: Instant, a: Paeth) -> bool {
        if !self.ack_in_window(a.psn) {
            ctx.stats.rx_ack_out_of_window += 1;
            return false;
        }
        self.alive(now);
        self.update_limit(a.psn, a.credits);
        self.process_ack(ctx, now, a.psn);
        true
    }

    /// ACK of every PSN up to and including `a`, which the caller checked
    /// is in the ACK window.
    fn process_ack(&mut self, ctx: &mut Ctx, now: Instant, a: Psn) {
        if !self.ack_in_window(a) {
            return;
        }
        let new_una = a.add(1);
        if new_una.diff(self.una) <= 0 {
            return;
        }
        let old_una = self.una;
        self.una = new_una;
        self.alive(now);
        self.cwnd.on_ack(new_una.diff(old_una).max(0) as u32);
        // The backoff stays until a new sample (Karn, RFC 6298 5.7): a
        // round trip longer than the timer would otherwise be met with
        // a timeout, a rewind that voids the sample, and no backoff
        // again, forever.
        if let Some((p, t)) = self.timed {
            if p.before(new_una) {
                self.rtt.sample(now.saturating_duration_since(t));
                self.timed = None;
            }
        }
        if self.next_psn.before(new_una) {
            self.seek(new_una);
        }
        self.retire(ctx);
        while self.read_chunks.front().is_some_and(|p| p.before(self.una)) {
            self.read_chunks.pop_front();
        }
        if old_una.before(self.una) {
            self.rnr_left = self.rnr_retry;
            self.nak_guard = None;
            match self.rto(ctx) {
                Some(t) if self.outstanding() => ctx.timers.set(Timer::Retransmit, now + t),
                _ => ctx.timers.stop(Timer::Retransmit),
            }
        }
    }

    /// Completes the WQEs at the front whose PSNs are all acknowledged.
    fn retire(&mut self, ctx: &mut Ctx) {
        while let Some(e) = self.sq.front() {
            if !e.assigned {
                break;
            }
            if e.awaits_response() && e.read_done < e.npsn {
                // An ACK beyond a READ or an atomic whose responses are
                // missing: they were lost; re-request from the first
                // missing one (a responder answers a repeated atomic from
                // its saved result).
                let missing = e.first_psn.add(e.read_done);
                if missing.before(self.una) {
                    self.una = missing;
                    self.rewind(ctx, missing);
                }
                break;
            }
            // una is at or after the front WQE's first PSN, so an offset
            // below npsn means "inside", at or above it "past the end",
            // for messages of up to 2^23 PSNs.
            if self.una.within(e.first_psn, e.npsn) {
                break;
            }
            let e = self.sq.pop_front().expect("front exists");
            self.cursor = self.cursor.saturating_sub(1);
            if e.wr.signaled {
                ctx.push_wc(send_wc(ctx, &e, WcStatus::Success));
            } else {
                ctx.sq_retired_silently += 1;
            }
        }
    }

    /// An ACKNOWLEDGE, READ response or ATOMIC ACKNOWLEDGE addressed to
    /// this QP.
    pub(crate) fn handle_response<M: MemoryAccess + ?Sized>(
        &mut self,
        ctx: &mut Ctx,
        now: Instant,
        repr: &omx_wire::FrameRepr,
        payload: &[u8],
        mem: &mut M,
    ) -> Result<(), RxError> {
        let psn = repr.bth.psn;
        match repr.bth.opcode {
            Opcode::Acknowledge => {
                let Some(aeth) = repr.ext.aeth else {
                    return Ok(());
                };
                self.handle_aeth(ctx, now, psn, aeth)
            }
            op if op.is_read_response() => {
                Ok(self.handle_read_response(ctx, now, psn, repr.ext.aeth, payload, mem)?)
            }
            Opcode::AtomicAcknowledge => {
                let (Some(aeth), Some(orig)) = (repr.ext.aeth, repr.ext.atomic_ack) else {
                    return Ok(());
                };
                Ok(self.handle_atomic_ack(ctx, now, psn, aeth, orig, mem)?)
            }
            _ => {
                ctx.stats.rx_unexpected += 1;
                Ok(())
            }
        }
    }

    /// The WQE a READ response or atomic acknowledge at `psn` answers, if
    /// `psn` is the next response the oldest READ or atomic waits for.
    /// A later PSN among those sent means responses were lost: the
    /// requester re-requests from the first missing one (once per gap);
    /// anything else is a duplicate. Both counted.
    fn response_slot(&mut self, ctx: &mut Ctx, psn: Psn) -> Option<usize> {
        let Some(i) = self
            .sq
            .iter()
            .position(|e| e.assigned && e.awaits_response() && e.read_done < e.npsn)
        else {
            ctx.stats.rx_duplicate += 1;
            return None;
        };
        let e = &self.sq[i];
        let expected = e.first_psn.add(e.read_done);
        if psn == expected && psn.diff(self.sent_end) < 0 {
            return Some(i);
        }
        if expected.before(psn) && psn.before(self.sent_end) {
            ctx.stats.rx_out_of_sequence += 1;
            if self.nak_guard != Some(expected) {
                self.nak_guard = Some(expected);
                self.cwnd.on_loss(self.inflight());
                self.rewind(ctx, expected);
            }
        } else {
            ctx.stats.rx_duplicate += 1;
        }
        None
    }

    /// An ATOMIC ACKNOWLEDGE: the original value goes into the WQE's
    /// 8-byte buffer (host byte order), and the atomic completes once
    /// everything before it did.
    fn handle_atomic_ack<M: MemoryAccess + ?Sized>(
        &mut self,
        ctx: &mut Ctx,
        now: Instant,
        psn: Psn,
        aeth: Aeth,
        orig: u64,
        mem: &mut M,
    ) -> Result<(), Fatal> {
        if aeth.syndrome != Syndrome::Ack {
            ctx.stats.rx_bad_response += 1;
            return Ok(());
        }
        let Some(i) = self.response_slot(ctx, psn) else {
            return Ok(());
        };
        let e = &self.sq[i];
        if !e.is_atomic() {
            ctx.stats.rx_unexpected += 1;
            return Ok(());
        }
        let sg = e.wr.sg;
        if mem::scatter(mem, &sg, 0, &orig.to_ne_bytes()).is_err() {
            // The answer acknowledges everything before it: those WRs
            // complete, then this one fails (the first error, in order).
            self.process_ack(ctx, now, psn.sub(1));
            return Err(self.fail_at(ctx, psn, WcStatus::LocProtErr));
        }
        self.sq[i].read_done = 1;
        self.update_limit(psn, aeth.credits);
        self.process_ack(ctx, now, psn);
        Ok(())
    }

    fn handle_aeth(
        &mut self,
        ctx: &mut Ctx,
        now: Instant,
        psn: Psn,
        aeth: Aeth,
    ) -> Result<(), RxError> {
        if let Syndrome::Ack = aeth.syndrome {
            if !self.ack_in_window(psn) {
                ctx.stats.rx_ack_out_of_window += 1;
                return Err(RxDrop::OutOfWindow.into());
            }
            self.alive(now);
            self.update_limit(psn, aeth.credits);
            self.process_ack(ctx, now, psn);
            return Ok(());
        }
        // Every NAK names an outstanding request packet: the one that
        // failed, the one to resume from, or (sequence error) the first
        // one the responder did not get.
        if !self.outstanding_psn(psn) {
            ctx.stats.rx_nak_out_of_window += 1;
            return Err(RxDrop::OutOfWindow.into());
        }
        match aeth.syndrome {
            Syndrome::Ack => Ok(()),
            Syndrome::RnrNak(code) => {
                ctx.stats.rx_rnr_naks += 1;
                self.alive(now);
                self.update_limit(psn.sub(1), aeth.credits);
                self.process_ack(ctx, now, psn.sub(1));
                if self.rnr_left == 0 {
                    // The oldest outstanding WR fails (una: at or before
                    // psn, earlier if a READ's or an atomic's answer is
                    // missing), so the error is the first completion and
                    // the rest flush, in order.
                    let una = self.una;
                    return Err(self.fail_at(ctx, una, WcStatus::RnrRetryExcErr).into());
                }
                if self.rnr_retry != RNR_RETRY_INFINITE {
                    self.rnr_left -= 1;
                }
                self.rewind(ctx, psn);
                self.rnr_wait = true;
                ctx.timers.stop(Timer::Retransmit);
                ctx.timers.set(Timer::Rnr, now + rnr_timer(code));
                Ok(())
            }
            Syndrome::Nak(NakCode::PsnSequenceError) => {
                ctx.stats.rx_seq_naks += 1;
                self.update_limit(psn.sub(1), aeth.credits);
                self.process_ack(ctx, now, psn.sub(1));
                if self.nak_guard == Some(psn) {
                    return Ok(());
                }
                self.nak_guard = Some(psn);
                // A sequence NAK shows the peer alive but our packets
                // lost: it neither uses up a retry nor counts as a word
                // from the peer, and it leaves a running timer alone, so
                // NAKs without progress still end in RETRY_EXC_ERR when
                // the timer has expired often enough.
                self.cwnd.on_loss(self.inflight());
                self.rewind(ctx, psn);
                if let Some(t) = self.rto(ctx) {
                    ctx.timers.set_if_stopped(Timer::Retransmit, now + t);
                }
                Ok(())
            }
            Syndrome::Nak(code) => {
                ctx.stats.rx_naks += 1;
                self.process_ack(ctx, now, psn.sub(1));
                let status = match code {
                    NakCode::RemoteAccessError => WcStatus::RemAccessErr,
                    NakCode::RemoteOperationalError => WcStatus::RemOpErr,
                    _ => WcStatus::RemInvReqErr,
                };
                Err(self.fail_at(ctx, psn, status).into())
            }
        }
    }

    fn handle_read_response<M: MemoryAccess + ?Sized>(
        &mut self,
        ctx: &mut Ctx,
        now: Instant,
        psn: Psn,
        aeth: Option<Aeth>,
        payload: &[u8],
        mem: &mut M,
    ) -> Result<(), Fatal> {
        let Some(i) = self.response_slot(ctx, psn) else {
            return Ok(());
        };
        let e = &self.sq[i];
        if !e.is_read() {
            ctx.stats.rx_unexpected += 1;
            return Ok(());
        }
        let mtu = ctx.mtu;
        let off = e.read_done * mtu;
        let want = (e.len - off).min(mtu) as usize;
        if payload.len() != want {
            ctx.stats.rx_bad_response += 1;
            return Ok(());
        }
        if !payload.is_empty() {
            let sg = e.wr.sg;
            if mem::scatter(mem, &sg, u64::from(off), payload).is_err() {
                // As for an atomic: what this response acknowledges
                // completes first.
                self.process_ack(ctx, now, psn.sub(1));
                return Err(self.fail_at(ctx, psn, WcStatus::LocProtErr));
            }
        }
        self.sq[i].read_done += 1;
        if let Some(a) = aeth {
            self.update_limit(psn, a.credits);
        }
        self.process_ack(ctx, now, psn);
        Ok(())
    }

    /// The transport timer fired.
    pub(crate) fn on_retransmit_timeout(
        &mut self,
        ctx: &mut Ctx,
        now: Instant,
    ) -> Result<(), Fatal> {
        if !self.outstanding() {
            return Ok(());
        }
        ctx.stats.timeouts += 1;
        if self.peer_gone(now) {
            let una = self.una;
            return Err(self.fail_at(ctx, una, WcStatus::RetryExcErr));
        }
        self.rtt.on_timeout();
        self.cwnd.on_timeout(self.unacked());
        self.nak_guard = None;
        let una = self.una;
        self.rewind(ctx, una);
        if let Some(t) = self.rto(ctx) {
            ctx.timers.set(Timer::Retransmit, now + t);
        }
        Ok(())
    }

    /// The RNR wait is over: resume sending.
    pub(crate) fn on_rnr_timeout(&mut self) {
        self.rnr_wait = false;
    }
}

fn send_wc(ctx: &Ctx, e: &SqEntry, status: WcStatus) -> WorkCompletion {
    WorkCompletion {
        wr_id: e.wr.wr_id,
        status,
        opcode: e.wr.op.wc_opcode(),
        queue: WcQueue::Send,
        byte_len: e.len,
        imm: None,
        inv: None,
        qp_num: ctx.qpn,
        src_qp: ctx.remote_qpn,
        solicited: false,
        grh: false,
        sl: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{pattern, SparseMemory};
    use crate::wr::SgList;
    use omx_wire::{FrameRepr, Opcode};

    const MTU: u32 = 256;
    /// A whole message of 2^31 bytes at MTU 256: 2^23 packets.
    const NPSN: u32 = 1 << 23;

    fn transmit(
        r: &mut Requester,
        ctx: &mut Ctx,
        mem: &SparseMemory,
    ) -> Option<(FrameRepr, Vec<u8>)> {
        let mut buf = vec![0; omx_wire::max_frame_len(MTU as usize)];
        let (n, _) = r
            .poll_transmit(ctx, Instant::ZERO, &mut buf, mem, None)
            .unwrap()?;
        let f = omx_wire::Frame::new_checked(&buf[..n]).unwrap();
        Some((FrameRepr::parse(&f).unwrap(), f.payload().to_vec()))
    }

    fn aeth(syndrome: Syndrome) -> Aeth {
        Aeth {
            syndrome,
            msn: 0,
            credits: 64,
        }
    }

    /// The end of a 2^31-byte RDMA WRITE at path MTU 256 whose 2^23 PSNs
    /// cross the 24-bit wrap: the last packets, a rewind to a PSN near
    /// the end of the message, and the ACK of its last PSN, which
    /// completes it. Sending the 2^23 packets before takes half a minute
    /// in a debug build, so the requester is moved there by hand, as if
    /// they had all been sent and acknowledged.
    #[test]
    fn the_end_of_a_2_31_byte_write_across_the_wrap() {
        let mut ctx = Ctx::for_tests(0x1001, 0x2001, MTU, 64);
        let mut mem = SparseMemory::default();
        mem.add(1, 0x1000, 1 << 31, &[Access::LocalRead]);
        let mut r = Requester::new(4);
        let first = Psn::new(0xFF_FF00);
        r.start(first);
        let op = SendOp::RdmaWrite {
            remote_addr: 0x7000_0000,
            rkey: 9,
        };
        let wr = SendWr {
            wr_id: 7,
            op,
            sg: SgList::single(0x1000, 1 << 31, 1),
            signaled: true,
            solicited: false,
        };
        r.post(wr, 1 << 31);
        // The first packet through the ordinary path.
        let (f, _) = transmit(&mut r, &mut ctx, &mem).unwrap();
        assert_eq!(f.bth.opcode, Opcode::WriteFirst);
        assert_eq!(f.ext.reth.unwrap().dma_len, 1 << 31);
        assert_eq!(r.sq[0].npsn, NPSN);
        // Everything but the last 4 packets sent and acknowledged.
        let k = NPSN - 4;
        r.una = first.add(k);
        r.next_psn = r.una;
        r.sent_end = r.una;
        r.cursor_pkt = k;
        r.limit = r.una.add(63);
        let mut psns = Vec::new();
        while let Some((f, payload)) = transmit(&mut r, &mut ctx, &mem) {
            let off = u64::from(f.bth.psn.offset_from(first)) * u64::from(MTU);
            assert_eq!(payload[0], pattern(0x1000 + off));
            assert_eq!(payload.len(), MTU as usize);
            psns.push((f.bth.psn, f.bth.opcode));
        }
        let last = first.add(NPSN - 1);
        assert_eq!(last, Psn::new(0x7F_FEFF));
        assert_eq!(
            psns,
            [
                (first.add(k), Opcode::WriteMiddle),
                (first.add(k + 1), Opcode::WriteMiddle),
                (first.add(k + 2), Opcode::WriteMiddle),
                (last, Opcode::WriteLast),
            ]
        );
        assert!(r.sq[0].contains(last) && !r.sq[0].contains(last.add(1)));
        assert!(r.sq[0].contains(first) && !r.sq[0].contains(first.sub(1)));
        // The responder lost the third-to-last: go back to it.
        let nak = aeth(Syndrome::Nak(NakCode::PsnSequenceError));
        r.handle_aeth(&mut ctx, Instant::ZERO, first.add(k + 1), nak)
            .unwrap();
        assert_eq!(r.una, first.add(k + 1));
        assert_eq!((r.cursor, r.cursor_pkt), (0, k + 1));
        // The loss halved the congestion window (cc.rs tests it); this
        // test is about the rewind.
        r.cwnd = Cwnd::default();
        let again: Vec<_> = core::iter::from_fn(|| transmit(&mut r, &mut ctx, &mem))
            .map(|(f, _)| f.bth.psn)
            .collect();
        assert_eq!(again, [first.add(k + 1), first.add(k + 2), last]);
        assert!(ctx.pop_wc().is_none());
        // Acknowledging the PSN before the last completes nothing, the
        // last completes the WRITE; one past it is outside the window.
        r.handle_aeth(&mut ctx, Instant::ZERO, last.sub(1), aeth(Syndrome::Ack))
            .unwrap();
        assert!(ctx.pop_wc().is_none());
        assert_eq!(
            r.handle_aeth(&mut ctx, Instant::ZERO, last.add(1), aeth(Syndrome::Ack)),
            Err(RxError::Drop(RxDrop::OutOfWindow))
        );
        r.handle_aeth(&mut ctx, Instant::ZERO, last, aeth(Syndrome::Ack))
            .unwrap();
        let wc = ctx.pop_wc().unwrap();
        assert_eq!((wc.wr_id, wc.status), (7, WcStatus::Success));
        assert!(r.sq.is_empty());
        assert_eq!(r.una, last.add(1));
    }

    /// The ACK window's edges, with the window across the PSN wrap.
    #[test]
    fn ack_and_nak_windows() {
        let mut r = Requester::new(4);
        let una = Psn::new(0xFF_FFFE);
        r.start(una);
        r.sent_end = una.add(5);
        for (p, ack, nak) in [
            (una.sub(2), false, false),
            (una.sub(1), true, false),
            (una, true, true),
            (una.add(4), true, true),
            (una.add(5), false, false),
            (una.add(0x80_0000), false, false),
        ] {
            assert_eq!(r.ack_in_window(p), ack, "{p:?}");
            assert_eq!(r.outstanding_psn(p), nak, "{p:?}");
        }
        // Nothing outstanding: only una - 1.
        r.sent_end = una;
        assert!(r.ack_in_window(una.sub(1)));
        assert!(!r.ack_in_window(una));
        assert!(!r.outstanding_psn(una));
        // Credits of an old PSN never move the limit.
        let limit = r.limit;
        r.update_limit(una.sub(1000), u16::MAX);
        assert_eq!(r.limit, limit);
        r.update_limit(una.sub(1), 100);
        assert_eq!(r.limit, una.add(99));
    }
}
