//! RC responder: in-order execution of SEND, RDMA WRITE, RDMA READ and
//! atomic requests, duplicate handling, NAK generation, READ responses and
//! atomic acknowledges (docs/wire.md §7, §10.1, §10.4).
//!
//! What a peer may make it do (docs/wire.md §7.3):
//! - RDMA WRITE / READ / atomics only as the QP's access flags allow
//!   (NAK invalid request otherwise, as rxe's `check_op_valid`), and then
//!   only as the MR allows (NAK remote access error);
//! - no RETH length above the 2^31-byte message limit;
//! - at most `max_dest_rd_atomic` READs and atomics being answered (0
//!   refuses all);
//! - a duplicate READ is answered again only if it matches one of the
//!   last [`READ_HISTORY`] READs executed (its PSN, address, rkey and
//!   length, see [`ReadRecord::matches`]), otherwise dropped;
//! - an atomic executes once: a duplicate is answered from the saved
//!   result of one of the last [`READ_HISTORY`] atomics (same PSN,
//!   address, rkey, operation and operands), never executed again;
//!   anything else is dropped;
//! - an atomic names an 8-byte aligned address (NAK invalid request
//!   otherwise) inside an MR with remote atomic access;
//! - at most [`READ_BURST`] response packets (READ responses and atomic
//!   acknowledges) per input.
//!
//! UC ([`Responder::handle_uc_request`], docs/wire.md §14): SEND and RDMA
//! WRITE placed as for RC, but nothing is ever NAKed or acknowledged and
//! nothing a peer sends moves the QP to ERROR: a packet RC would refuse is
//! dropped with the rest of its message, and a PSN gap abandons the
//! message in progress until the next First or Only.

use std::collections::VecDeque;
use std::sync::Arc;

use omx_wire::{
    Aeth, AtomicEth, Ext, Frame, FrameRepr, NakCode, Opcode, Paeth, Position, Psn, Reth, Syndrome,
};

use crate::ack::AckState;
use crate::mem::{self, Access, AtomicOp, MemoryAccess};
use crate::qp::{Ctx, Fatal, QpEventKind, RxDrop, RxError, MAX_MSG_SIZE, READ_BURST};
use crate::state::access;
use crate::time::Instant;
use crate::timer::Timer;
use crate::wr::{RecvWr, SharedRecv, WcOpcode, WcQueue, WcStatus, WorkCompletion};

#[derive(Debug, Clone, Copy)]
struct WriteCtx {
    va: u64,
    rkey: u32,
    len: u32,
    off: u32,
}

/// An executed READ request, as the responder remembers it to answer a
/// duplicate of it (or of its tail) again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReadRecord {
    /// PSN of the request (its first response PSN).
    first: Psn,
    va: u64,
    rkey: u32,
    len: u32,
    /// Response packets: `max(1, ceil(len / mtu))`, at most 2^23.
    npsn: u32,
}

impl ReadRecord {
    fn new(first: Psn, reth: &Reth, mtu: u32) -> Self {
        ReadRecord {
            first,
            va: reth.va,
            rkey: reth.rkey,
            len: reth.dma_len,
            npsn: reth.dma_len.div_ceil(mtu).max(1),
        }
    }

    /// The index `k` of the first response a duplicate READ request with
    /// PSN `psn` and RETH `reth` asks for again, if it is this READ or
    /// its tail from response `k` on: `psn = first + k` with `k < npsn`
    /// (an unsigned offset: a READ may span 2^23 PSNs), `va + k * mtu`,
    /// the same rkey and `len - k * mtu` bytes. That is exactly how our
    /// requester re-issues a partially answered READ (requester.rs);
    /// anything else is not a READ this responder executed.
    pub(crate) fn matches(&self, psn: Psn, reth: &Reth, mtu: u32) -> Option<u32> {
        let k = psn.offset_from(self.first);
        if k >= self.npsn {
            return None;
        }
        let skip = u64::from(k) * u64::from(mtu);
        let ok = reth.rkey == self.rkey
            && reth.va == self.va.wrapping_add(skip)
            && u64::from(reth.dma_len) + skip == u64::from(self.len);
        ok.then_some(k)
    }
}

/// READ requests the responder remembers for duplicates: at least the
/// requester's most outstanding READs (`max_rd_atomic` is at most 16).
pub(crate) const READ_HISTORY: usize = 16;

#[derive(Debug, Clone, Copy)]
struct ReadJob {
    rec: ReadRecord,
    /// Next response to send (index from `rec.first`).
    next: u32,
}

/// An executed atomic, as the responder remembers it to answer a
/// duplicate of it from the saved result (IBTA: an atomic is never
/// executed twice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AtomicRecord {
    psn: Psn,
    va: u64,
    rkey: u32,
    op: AtomicOp,
    /// The value the target held before the operation.
    orig: u64,
}

impl AtomicRecord {
    /// The operation an atomic request asks for, by its opcode.
    fn op_of(opcode: Opcode, eth: &AtomicEth) -> AtomicOp {
        if opcode == Opcode::CompareSwap {
            AtomicOp::CmpSwap {
                compare: eth.compare,
                swap: eth.swap_add,
            }
        } else {
            AtomicOp::FetchAdd { add: eth.swap_add }
        }
    }

    /// A duplicate request is this atomic: same PSN, address, rkey,
    /// operation and operands (a request that differs in any of them is
    /// not one this responder executed, and gets no saved result).
    fn matches(&self, psn: Psn, opcode: Opcode, eth: &AtomicEth) -> bool {
        self.psn == psn
            && self.va == eth.va
            && self.rkey == eth.rkey
            && self.op == Self::op_of(opcode, eth)
    }
}

/// A response the responder owes, in PSN order: READ responses still to
/// send, or an atomic's acknowledge. Both count against
/// `max_dest_rd_atomic`.
#[derive(Debug, Clone, Copy)]
enum Job {
    Read(ReadJob),
    Atomic(AtomicRecord),
}

/// What executing an in-sequence request packet did.
enum Exec {
    /// Executed; the expected PSN advances by this many PSNs.
    Advance(u32, bool),
    /// Receiver not ready: RNR NAK queued, nothing executed.
    Rnr,
}

/// Why a SEND or RDMA WRITE packet was not placed
/// ([`Responder::place_send`], [`Responder::place_write`]). The checks are
/// the same for RC and UC, the consequences are not: RC answers with an
/// RNR NAK or a NAK and moves the QP to ERROR, UC drops the rest of the
/// message (docs/wire.md §14.3).
#[derive(Debug)]
enum Refused {
    /// No receive WQE for a SEND or a WRITE with immediate.
    NoWqe,
    /// The QP lacks the remote-write right (counted `rx_qp_access_denied`).
    Denied,
    /// A WRITE longer than `MAX_MSG_SIZE` (counted `rx_too_large`).
    TooLarge,
    /// Not a packet of the message in progress, no message in progress,
    /// a missing RETH, or a WRITE whose packets do not add up to its
    /// length.
    Invalid,
    /// The WRITE's rkey, range or rights, or a fault in its memory.
    Access,
    /// The SEND is longer than its WQE (`end` bytes so far); the WQE is
    /// still the message's (`cur`).
    TooSmall { end: u64 },
    /// The WQE's own memory faulted; the WQE completed with
    /// IBV_WC_LOC_PROT_ERR.
    LocalFault,
}

#[derive(Debug)]
pub(crate) struct Responder {
    epsn: Psn,
    msn: u32,
    /// The QP's own receive queue (unused with an SRQ).
    rq: VecDeque<RecvWr>,
    /// The shared receive queue WQEs come from instead of `rq`.
    srq: Option<Arc<dyn SharedRecv>>,
    /// The WQE the message in progress consumes, taken from `rq` or the
    /// SRQ by its first packet (SEND) or its last (WRITE with
    /// immediate); flushed first if the QP fails.
    cur: Option<RecvWr>,
    /// Bytes placed into `cur` while a SEND is in progress.
    recv_off: Option<u64>,
    write: Option<WriteCtx>,
    /// Responses owed (READ and atomic), in PSN order.
    resp_q: VecDeque<Job>,
    /// The last READ requests executed, oldest overwritten first.
    read_history: [Option<ReadRecord>; READ_HISTORY],
    /// Slot of `read_history` the next READ is recorded in.
    history_next: usize,
    /// The last atomics executed, with their results, oldest
    /// overwritten first.
    atomic_history: [Option<AtomicRecord>; READ_HISTORY],
    /// Slot of `atomic_history` the next atomic is recorded in.
    atomic_next: usize,
    /// Response packets still allowed before the next input.
    burst_left: u32,
    /// The QP's `IBV_ACCESS_*` flags.
    pub(crate) access: u32,
    pub(crate) max_dest_rd_atomic: usize,
    pub(crate) min_rnr_timer: u8,
    gap_nak_sent: bool,
    nak: Option<(Psn, Syndrome)>,
    pub(crate) ack: AckState,
    /// An ACK (frame or PAETH) went out since the QP started: request
    /// packets then repeat the cumulative ACK even when nothing is owed
    /// (see `piggyback`).
    pub(crate) acked: bool,
    /// UC: the Middle and Last packets that arrive are dropped until the
    /// next First or Only.
    uc_dropping: bool,
}

impl Responder {
    pub(crate) fn new(rq_depth: usize, ack: AckState) -> Self {
        Responder {
            epsn: Psn::new(0),
            msn: 0,
            rq: VecDeque::with_capacity(rq_depth),
            srq: None,
            cur: None,
            recv_off: None,
            write: None,
            resp_q: VecDeque::with_capacity(READ_HISTORY),
            read_history: [None; READ_HISTORY],
            history_next: 0,
            atomic_history: [None; READ_HISTORY],
            atomic_next: 0,
            burst_left: READ_BURST,
            access: 0,
            max_dest_rd_atomic: 0,
            min_rnr_timer: 12,
            gap_nak_sent: false,
            nak: None,
            ack,
            acked: false,
            uc_dropping: false,
        }
    }

    /// INIT→RTR: expect `rq_psn`.
    pub(crate) fn start(&mut self, rq_psn: Psn) {
        self.epsn = rq_psn;
    }

    /// An input reached the QP: a new burst of READ responses may go.
    pub(crate) fn new_input(&mut self) {
        self.burst_left = READ_BURST;
    }

    pub(crate) fn post(&mut self, wr: RecvWr) {
        self.rq.push_back(wr);
    }

    /// From now on, WQEs come from `srq` (set once, at creation).
    pub(crate) fn use_srq(&mut self, srq: Arc<dyn SharedRecv>) {
        self.srq = Some(srq);
    }

    /// Whether WQEs come from an SRQ.
    pub(crate) fn has_srq(&self) -> bool {
        self.srq.is_some()
    }

    /// A message holds a WQE it has not completed yet.
    pub(crate) fn wqe_in_use(&self) -> bool {
        self.cur.is_some()
    }

    /// The WQE of the message in progress, taking the next one (own queue
    /// or SRQ) if it has none yet; `None`: receiver not ready.
    fn claim(&mut self) -> Option<RecvWr> {
        if self.cur.is_none() {
            self.cur = match &self.srq {
                Some(srq) => srq.take(),
                None => self.rq.pop_front(),
            };
        }
        self.cur
    }

    /// Flushes every receive WQE (QP to ERROR); a pending NAK is kept so
    /// that the requester learns about the error.
    pub(crate) fn flush(&mut self, ctx: &mut Ctx) {
        for wr in self.cur.take().into_iter().chain(self.rq.drain(..)) {
            ctx.push_wc(recv_wc(
                ctx,
                &wr,
                WcStatus::WrFlushErr,
                0,
                None,
                WcOpcode::Recv,
                false,
            ));
        }
        self.recv_off = None;
        self.write = None;
        self.resp_q.clear();
    }

    /// Drops everything without completions (modify to RESET).
    pub(crate) fn reset(&mut self) {
        self.rq.clear();
        self.cur = None;
        self.recv_off = None;
        self.write = None;
        self.resp_q.clear();
        self.read_history = [None; READ_HISTORY];
        self.history_next = 0;
        self.atomic_history = [None; READ_HISTORY];
        self.atomic_next = 0;
        self.nak = None;
        self.gap_nak_sent = false;
        self.msn = 0;
        self.acked = false;
        self.uc_dropping = false;
    }

    /// Queues the NAK that ends the connection; the QP goes to ERROR with
    /// the matching asynchronous event (IBTA 11.6.3: an invalid request
    /// raises a request error, a remote access error an access error,
    /// anything else a fatal error).
    fn fatal(&mut self, psn: Psn, code: NakCode) -> Fatal {
        self.nak = Some((psn, Syndrome::Nak(code)));
        Fatal(match code {
            NakCode::InvalidRequest => QpEventKind::ReqErr,
            NakCode::RemoteAccessError => QpEventKind::AccessErr,
            _ => QpEventKind::Fatal,
        })
    }

    /// The QP's access flags allow `right` (an `IBV_ACCESS_REMOTE_*`
    /// bit); if not, the request is invalid (rxe's `check_op_valid`).
    fn allowed(&mut self, ctx: &mut Ctx, psn: Psn, right: u32) -> Result<(), Fatal> {
        if self.access & right == 0 {
            ctx.stats.rx_qp_access_denied += 1;
            return Err(self.fatal(psn, NakCode::InvalidRequest));
        }
        Ok(())
    }

    /// A RETH length within the message limit.
    fn length_allowed(&mut self, ctx: &mut Ctx, psn: Psn, reth: &Reth) -> Result<(), Fatal> {
        if u64::from(reth.dma_len) > MAX_MSG_SIZE {
            ctx.stats.rx_too_large += 1;
            return Err(self.fatal(psn, NakCode::InvalidRequest));
        }
        Ok(())
    }

    /// A request packet addressed to this QP.
    pub(crate) fn handle_request<M: MemoryAccess + ?Sized>(
        &mut self,
        ctx: &mut Ctx,
        now: Instant,
        repr: &FrameRepr,
        payload: &[u8],
        mem: &mut M,
    ) -> Result<(), RxError> {
        let psn = repr.bth.psn;
        let d = psn.diff(self.epsn);
        if d > 0 {
            ctx.stats.rx_out_of_sequence += 1;
            if !self.gap_nak_sent {
                self.gap_nak_sent = true;
                self.nak = Some((self.epsn, Syndrome::Nak(NakCode::PsnSequenceError)));
            }
            return Ok(());
        }
        if d < 0 {
            ctx.stats.rx_duplicate += 1;
            return match (repr.bth.opcode, repr.ext.reth, repr.ext.atomic) {
                (Opcode::ReadRequest, Some(reth), _) => self.duplicate_read(ctx, psn, &reth, mem),
                (op, _, Some(eth)) if op.is_atomic() => self.duplicate_atomic(ctx, psn, op, &eth),
                _ => {
                    self.ack.force();
                    Ok(())
                }
            };
        }
        let op = repr.bth.opcode;
        let exec = if op.is_send() {
            self.exec_send(ctx, repr, payload, mem)?
        } else if op.is_write() {
            self.exec_write(ctx, repr, payload, mem)?
        } else if op == Opcode::ReadRequest {
            self.exec_read(ctx, repr, mem)?
        } else if op.is_atomic() {
            self.exec_atomic(ctx, repr, mem)?
        } else {
            // SEND with invalidate: TODO, answered as invalid.
            return Err(self.fatal(psn, NakCode::InvalidRequest).into());
        };
        match exec {
            Exec::Rnr => {
                ctx.stats.tx_rnr_naks += 1;
                // The rest of this message arrives out of sequence; the
                // RNR NAK already tells the requester where to resume.
                self.gap_nak_sent = true;
                self.nak = Some((psn, Syndrome::RnrNak(self.min_rnr_timer)));
            }
            Exec::Advance(n, is_read) => {
                self.epsn = self.epsn.add(n);
                self.gap_nak_sent = false;
                if !is_read {
                    self.ack.on_executed(repr.bth.ack_req, now, &mut ctx.timers);
                }
            }
        }
        Ok(())
    }

    /// UC: gives up the message in progress, if any (counted): a SEND
    /// keeps its receive WQE for the next message, a WRITE's data so far
    /// stays written; nothing completes.
    fn uc_abandon(&mut self, ctx: &mut Ctx) {
        if self.recv_off.take().is_some() | self.write.take().is_some() {
            ctx.stats.rx_uc_abandoned += 1;
        }
    }

    /// UC: drops this packet and the rest of its message.
    fn uc_drop(&mut self, ctx: &mut Ctx) -> RxError {
        self.uc_abandon(ctx);
        self.uc_dropping = true;
        RxDrop::UcDropped.into()
    }

    /// A UC request packet addressed to this QP (docs/wire.md §14.3): its
    /// opcode is SEND or RDMA WRITE (the wire decoder refuses anything
    /// else on UC), its payload at most the path MTU.
    ///
    /// PSNs: a packet at the expected PSN continues or starts a message.
    /// A First or Only after a gap (a PSN ahead of the expected one)
    /// abandons the message in progress and starts anew from its PSN; a
    /// Middle or Last after a gap is dropped, and so is every packet up
    /// to the next First or Only. A PSN behind the expected one (within
    /// half the PSN space) is a duplicate or a packet overtaken by later
    /// ones: dropped without disturbing the message in progress, so a
    /// message is never delivered twice or out of order.
    ///
    /// Only a local error moves the QP to ERROR (its own memory faulted
    /// while a SEND was placed: as RC, IBV_WC_LOC_PROT_ERR); whatever the
    /// peer sends is at worst dropped with its message.
    pub(crate) fn handle_uc_request<M: MemoryAccess + ?Sized>(
        &mut self,
        ctx: &mut Ctx,
        repr: &FrameRepr,
        payload: &[u8],
        mem: &mut M,
    ) -> Result<(), RxError> {
        let psn = repr.bth.psn;
        let op = repr.bth.opcode;
        if !omx_wire::uc_opcode(op) {
            // Unreachable through the wire decoder; kept for the engine's
            // own sake.
            ctx.stats.rx_uc_bad_opcode += 1;
            return Err(RxDrop::UcDropped.into());
        }
        let pos = op.position();
        let d = psn.diff(self.epsn);
        if d < 0 {
            ctx.stats.rx_duplicate += 1;
            return Err(RxDrop::UcDropped.into());
        }
        if d > 0 {
            ctx.stats.rx_out_of_sequence += 1;
            if !pos.is_first() {
                ctx.stats.rx_uc_dropped += 1;
                return Err(self.uc_drop(ctx));
            }
        }
        // In sequence from here on (a First or Only resynchronises).
        self.epsn = psn.add(1);
        if pos.is_first() {
            self.uc_abandon(ctx);
            self.uc_dropping = false;
        } else if self.uc_dropping
            || (op.is_send() && self.recv_off.is_none())
            || (op.is_write() && self.write.is_none())
        {
            if self.recv_off.is_some() || self.write.is_some() {
                // A SEND packet inside a WRITE, or the reverse.
                ctx.stats.rx_uc_invalid += 1;
            } else {
                ctx.stats.rx_uc_dropped += 1;
            }
            return Err(self.uc_drop(ctx));
        }
        if !Self::length_ok(pos, payload.len(), ctx.mtu as usize) {
            ctx.stats.rx_uc_invalid += 1;
            return Err(self.uc_drop(ctx));
        }
        if op.is_send() {
            self.uc_send(ctx, repr, pos, payload, mem)
        } else {
            self.uc_write(ctx, repr, pos, payload, mem)
        }
    }

    /// UC's answer to a SEND packet: [`Responder::place_send`], a
    /// refusal drops the rest of the message (docs/wire.md §14.3).
    fn uc_send<M: MemoryAccess + ?Sized>(
        &mut self,
        ctx: &mut Ctx,
        repr: &FrameRepr,
        pos: Position,
        payload: &[u8],
        mem: &mut M,
    ) -> Result<(), RxError> {
        match self.place_send(ctx, repr, pos, payload, mem) {
            Ok(()) => Ok(()),
            Err(Refused::NoWqe) => {
                ctx.stats.rx_no_wqe += 1;
                self.uc_dropping = true;
                Err(RxDrop::NoWqe.into())
            }
            Err(Refused::TooSmall { .. }) => {
                // rxe: class D1 (the WQE is reused) on the QP's own
                // queue, class E (completed in error) for a WQE of an SRQ.
                ctx.stats.rx_wqe_too_small += 1;
                if let Some(wqe) = self.cur.filter(|_| self.has_srq()) {
                    self.cur = None;
                    let wc = recv_wc(
                        ctx,
                        &wqe,
                        WcStatus::RemInvReqErr,
                        0,
                        None,
                        WcOpcode::Recv,
                        false,
                    );
                    ctx.push_wc(wc);
                }
                Err(self.uc_drop(ctx))
            }
            // Our own memory: a local error, as for RC (no NAK on UC).
            Err(Refused::LocalFault) => Err(Fatal(QpEventKind::Fatal).into()),
            Err(_) => Err(self.uc_drop(ctx)),
        }
    }

    /// UC's answer to an RDMA WRITE packet: [`Responder::place_write`], a
    /// refusal drops the rest of the message (the data so far stays
    /// written).
    fn uc_write<M: MemoryAccess + ?Sized>(
        &mut self,
        ctx: &mut Ctx,
        repr: &FrameRepr,
        pos: Position,
        payload: &[u8],
        mem: &mut M,
    ) -> Result<(), RxError> {
        match self.place_write(ctx, repr, pos, payload, mem) {
            Ok(()) => return Ok(()),
            Err(Refused::NoWqe) => ctx.stats.rx_no_wqe += 1,
            Err(Refused::Access) => ctx.stats.rx_uc_access_err += 1,
            Err(Refused::Invalid) => ctx.stats.rx_uc_invalid += 1,
            // Counted where they were found.
            Err(Refused::Denied | Refused::TooLarge) => {}
            // Not produced for a WRITE.
            Err(Refused::TooSmall { .. } | Refused::LocalFault) => {}
        }
        Err(self.uc_drop(ctx))
    }

    /// Places one SEND packet (its position `pos`, its length already
    /// checked) into the receive WQE of its message: the first packet
    /// claims the WQE, the last completes it. The checks and effects RC
    /// and UC share; what a refusal means is theirs
    /// ([`Responder::exec_send`], [`Responder::uc_send`]). A fault in the
    /// WQE's own memory completes it with IBV_WC_LOC_PROT_ERR before
    /// [`Refused::LocalFault`] is returned.
    fn place_send<M: MemoryAccess + ?Sized>(
        &mut self,
        ctx: &mut Ctx,
        repr: &FrameRepr,
        pos: Position,
        payload: &[u8],
        mem: &mut M,
    ) -> Result<(), Refused> {
        if pos.is_first() {
            if self.claim().is_none() {
                return Err(Refused::NoWqe);
            }
            self.recv_off = Some(0);
        }
        let (Some(off), Some(wqe)) = (self.recv_off, self.cur) else {
            return Err(Refused::Invalid);
        };
        let end = off + payload.len() as u64;
        if end > wqe.sg.total_len() {
            return Err(Refused::TooSmall { end });
        }
        if !payload.is_empty() && mem::scatter(mem, &wqe.sg, off, payload).is_err() {
            self.cur = None;
            self.recv_off = None;
            let wc = recv_wc(
                ctx,
                &wqe,
                WcStatus::LocProtErr,
                0,
                None,
                WcOpcode::Recv,
                false,
            );
            ctx.push_wc(wc);
            return Err(Refused::LocalFault);
        }
        if pos.is_last() {
            // SEND with invalidate: the window goes before the receive
            // completes (IBTA 10.6.7.2.7). A refusal leaves the WQE to
            // the flush of the QP's ERROR.
            if let Some(rkey) = repr.ext.ieth {
                if mem.invalidate(rkey, true).is_err() {
                    ctx.stats.rx_invalidate_refused += 1;
                    return Err(Refused::Invalid);
                }
                ctx.stats.rx_invalidations += 1;
            }
            self.cur = None;
            self.recv_off = None;
            let mut wc = recv_wc(
                ctx,
                &wqe,
                WcStatus::Success,
                end as u32,
                repr.ext.imm,
                WcOpcode::Recv,
                repr.bth.solicited,
            );
            wc.inv = repr.ext.ieth;
            ctx.push_wc(wc);
        } else {
            self.recv_off = Some(end);
        }
        Ok(())
    }

    /// Places one RDMA WRITE packet (its position `pos`, its length
    /// already checked): the QP's remote-write right for every packet; a
    /// packet with immediate data claims its WQE before anything else
    /// changes (so an RNR-refused packet leaves no trace); the first
    /// packet's RETH (length, rkey, range, rights); then the data, and
    /// the last packet ends the message (exactly its length) and
    /// completes the WQE of an immediate. The checks and effects RC and
    /// UC share; what a refusal means is theirs ([`Responder::exec_write`],
    /// [`Responder::uc_write`]).
    fn place_write<M: MemoryAccess + ?Sized>(
        &mut self,
        ctx: &mut Ctx,
        repr: &FrameRepr,
        pos: Position,
        payload: &[u8],
        mem: &mut M,
    ) -> Result<(), Refused> {
        if self.access & access::REMOTE_WRITE == 0 {
            ctx.stats.rx_qp_access_denied += 1;
            return Err(Refused::Denied);
        }
        if repr.bth.opcode.has_imm() && self.claim().is_none() {
            return Err(Refused::NoWqe);
        }
        if pos.is_first() {
            let Some(reth) = repr.ext.reth else {
                return Err(Refused::Invalid);
            };
            if u64::from(reth.dma_len) > MAX_MSG_SIZE {
                ctx.stats.rx_too_large += 1;
                return Err(Refused::TooLarge);
            }
            let len = u64::from(reth.dma_len);
            if len > 0
                && mem
                    .check(reth.rkey, reth.va, len, Access::RemoteWrite)
                    .is_err()
            {
                return Err(Refused::Access);
            }
            self.write = Some(WriteCtx {
                va: reth.va,
                rkey: reth.rkey,
                len: reth.dma_len,
                off: 0,
            });
        }
        let Some(mut w) = self.write else {
            return Err(Refused::Invalid);
        };
        let end = u64::from(w.off) + payload.len() as u64;
        if end > u64::from(w.len) || (pos.is_last() && end != u64::from(w.len)) {
            return Err(Refused::Invalid);
        }
        let va = w.va.wrapping_add(u64::from(w.off));
        if !payload.is_empty() && mem.write(w.rkey, va, payload, Access::RemoteWrite).is_err() {
            return Err(Refused::Access);
        }
        w.off = end as u32;
        if !pos.is_last() {
            self.write = Some(w);
            return Ok(());
        }
        self.write = None;
        if let (Some(imm), Some(wqe)) = (repr.ext.imm, self.cur.take()) {
            let wc = recv_wc(
                ctx,
                &wqe,
                WcStatus::Success,
                w.len,
                Some(imm),
                WcOpcode::RecvRdmaWithImm,
                repr.bth.solicited,
            );
            ctx.push_wc(wc);
        }
        Ok(())
    }

    fn length_ok(pos: Position, len: usize, mtu: usize) -> bool {
        match pos {
            Position::First | Position::Middle => len == mtu,
            Position::Last => (1..=mtu).contains(&len),
            Position::Only => len <= mtu,
        }
    }

    /// RC's answer to a SEND packet in sequence: the packet's shape,
    /// then [`Responder::place_send`]; a refusal is an RNR NAK (no WQE)
    /// or a NAK that moves the QP to ERROR.
    fn exec_send<M: MemoryAccess + ?Sized>(
        &mut self,
        ctx: &mut Ctx,
        repr: &FrameRepr,
        payload: &[u8],
        mem: &mut M,
    ) -> Result<Exec, Fatal> {
        let psn = repr.bth.psn;
        let op = repr.bth.opcode;
        let pos = op.position();
        if !Self::length_ok(pos, payload.len(), ctx.mtu as usize)
            || (pos.is_first() && (self.recv_off.is_some() || self.write.is_some()))
        {
            return Err(self.fatal(psn, NakCode::InvalidRequest));
        }
        match self.place_send(ctx, repr, pos, payload, mem) {
            Ok(()) => Ok(self.executed(pos)),
            Err(Refused::NoWqe) => Ok(Exec::Rnr),
            Err(Refused::TooSmall { end }) => {
                if let Some(wqe) = self.cur.take() {
                    let wc = recv_wc(
                        ctx,
                        &wqe,
                        WcStatus::LocLenErr,
                        end as u32,
                        None,
                        WcOpcode::Recv,
                        false,
                    );
                    ctx.push_wc(wc);
                }
                Err(self.fatal(psn, NakCode::InvalidRequest))
            }
            Err(Refused::LocalFault) => Err(self.fatal(psn, NakCode::RemoteOperationalError)),
            Err(_) => Err(self.fatal(psn, NakCode::InvalidRequest)),
        }
    }

    /// RC's answer to an RDMA WRITE packet in sequence: the packet's
    /// shape, then [`Responder::place_write`]; a refusal is an RNR NAK
    /// (no WQE for the immediate) or a NAK that moves the QP to ERROR.
    fn exec_write<M: MemoryAccess + ?Sized>(
        &mut self,
        ctx: &mut Ctx,
        repr: &FrameRepr,
        payload: &[u8],
        mem: &mut M,
    ) -> Result<Exec, Fatal> {
        let psn = repr.bth.psn;
        let pos = repr.bth.opcode.position();
        if !Self::length_ok(pos, payload.len(), ctx.mtu as usize)
            || (pos.is_first() && (self.recv_off.is_some() || self.write.is_some()))
        {
            return Err(self.fatal(psn, NakCode::InvalidRequest));
        }
        match self.place_write(ctx, repr, pos, payload, mem) {
            Ok(()) => Ok(self.executed(pos)),
            Err(Refused::NoWqe) => Ok(Exec::Rnr),
            Err(Refused::Access) => Err(self.fatal(psn, NakCode::RemoteAccessError)),
            Err(_) => Err(self.fatal(psn, NakCode::InvalidRequest)),
        }
    }

    /// A SEND or WRITE packet was placed: the last one of a message
    /// advances the MSN.
    fn executed(&mut self, pos: Position) -> Exec {
        if pos.is_last() {
            self.msn = (self.msn + 1) & 0xFF_FFFF;
        }
        Exec::Advance(1, false)
    }

    fn exec_read<M: MemoryAccess + ?Sized>(
        &mut self,
        ctx: &mut Ctx,
        repr: &FrameRepr,
        mem: &M,
    ) -> Result<Exec, Fatal> {
        let psn = repr.bth.psn;
        let Some(reth) = repr.ext.reth else {
            return Err(self.fatal(psn, NakCode::InvalidRequest));
        };
        if self.recv_off.is_some() || self.write.is_some() {
            return Err(self.fatal(psn, NakCode::InvalidRequest));
        }
        // rxe's order: the QP's rights, its resources, the length, the
        // MR.
        self.allowed(ctx, psn, access::REMOTE_READ)?;
        if self.resp_q.len() >= self.max_dest_rd_atomic {
            ctx.stats.rx_rd_atomic_exceeded += 1;
            return Err(self.fatal(psn, NakCode::InvalidRequest));
        }
        self.length_allowed(ctx, psn, &reth)?;
        if reth.dma_len > 0
            && mem
                .check(
                    reth.rkey,
                    reth.va,
                    u64::from(reth.dma_len),
                    Access::RemoteRead,
                )
                .is_err()
        {
            return Err(self.fatal(psn, NakCode::RemoteAccessError));
        }
        let rec = ReadRecord::new(psn, &reth, ctx.mtu);
        self.read_history[self.history_next] = Some(rec);
        self.history_next = (self.history_next + 1) % READ_HISTORY;
        self.resp_q.push_back(Job::Read(ReadJob { rec, next: 0 }));
        self.msn = (self.msn + 1) & 0xFF_FFFF;
        Ok(Exec::Advance(rec.npsn, true))
    }

    /// An atomic request in sequence: the QP's
    /// right and its resources, then the alignment, then the MR (key,
    /// rights, bounds of the 8 bytes) through [`MemoryAccess::atomic`],
    /// which executes it. The result is saved for duplicates and its
    /// acknowledge queued behind the responses owed before it.
    fn exec_atomic<M: MemoryAccess + ?Sized>(
        &mut self,
        ctx: &mut Ctx,
        repr: &FrameRepr,
        mem: &mut M,
    ) -> Result<Exec, Fatal> {
        let psn = repr.bth.psn;
        let Some(eth) = repr.ext.atomic else {
            return Err(self.fatal(psn, NakCode::InvalidRequest));
        };
        if self.recv_off.is_some() || self.write.is_some() {
            return Err(self.fatal(psn, NakCode::InvalidRequest));
        }
        self.allowed(ctx, psn, access::REMOTE_ATOMIC)?;
        if self.resp_q.len() >= self.max_dest_rd_atomic {
            ctx.stats.rx_rd_atomic_exceeded += 1;
            return Err(self.fatal(psn, NakCode::InvalidRequest));
        }
        if !eth.va.is_multiple_of(8) {
            ctx.stats.rx_atomic_misaligned += 1;
            return Err(self.fatal(psn, NakCode::InvalidRequest));
        }
        let op = AtomicRecord::op_of(repr.bth.opcode, &eth);
        let Ok(orig) = mem.atomic(eth.rkey, eth.va, op) else {
            return Err(self.fatal(psn, NakCode::RemoteAccessError));
        };
        let rec = AtomicRecord {
            psn,
            va: eth.va,
            rkey: eth.rkey,
            op,
            orig,
        };
        self.atomic_history[self.atomic_next] = Some(rec);
        self.atomic_next = (self.atomic_next + 1) % READ_HISTORY;
        self.resp_q.push_back(Job::Atomic(rec));
        self.msn = (self.msn + 1) & 0xFF_FFFF;
        Ok(Exec::Advance(1, true))
    }

    /// A duplicate atomic request (PSN before ePSN): its acknowledge was
    /// lost, or the request was duplicated on the way. Answered from the
    /// saved result if it matches an atomic in the history
    /// ([`AtomicRecord::matches`]) and its acknowledge is not queued
    /// already; never executed again. Anything else is dropped.
    fn duplicate_atomic(
        &mut self,
        ctx: &mut Ctx,
        psn: Psn,
        opcode: Opcode,
        eth: &AtomicEth,
    ) -> Result<(), RxError> {
        let Some(rec) = self
            .atomic_history
            .iter()
            .flatten()
            .find(|r| r.matches(psn, opcode, eth))
            .copied()
        else {
            ctx.stats.rx_dup_atomic_unmatched += 1;
            return Err(RxDrop::DuplicateAtomic.into());
        };
        if self
            .resp_q
            .iter()
            .any(|j| matches!(j, Job::Atomic(r) if r.psn == psn))
        {
            return Ok(());
        }
        if self.resp_q.len() >= self.max_dest_rd_atomic {
            ctx.stats.rx_dup_atomic_busy += 1;
            return Err(RxDrop::DuplicateAtomic.into());
        }
        ctx.stats.tx_atomic_replays += 1;
        self.resp_q.push_back(Job::Atomic(rec));
        Ok(())
    }

    /// A duplicate READ request (PSN before ePSN; IBTA 9.7.5.1.5): the
    /// requester lost responses and asks again from one of them. It is
    /// answered only if it matches a READ in the history
    /// ([`ReadRecord::matches`]): the responses from the one it names on
    /// are sent again, from the queued job if its responses are still
    /// going out, else from a new job (rights re-checked, within
    /// `max_dest_rd_atomic`). Anything else is dropped without reading a
    /// byte.
    fn duplicate_read<M: MemoryAccess + ?Sized>(
        &mut self,
        ctx: &mut Ctx,
        psn: Psn,
        reth: &Reth,
        mem: &M,
    ) -> Result<(), RxError> {
        let mtu = ctx.mtu;
        let found = self
            .read_history
            .iter()
            .flatten()
            .find_map(|r| r.matches(psn, reth, mtu).map(|k| (*r, k)));
        let Some((rec, k)) = found else {
            ctx.stats.rx_dup_read_unmatched += 1;
            return Err(RxDrop::DuplicateRead.into());
        };
        let queued = self.resp_q.iter_mut().find_map(|j| match j {
            Job::Read(r) if r.rec == rec => Some(r),
            _ => None,
        });
        if let Some(job) = queued {
            job.next = job.next.min(k);
            return Ok(());
        }
        if self.resp_q.len() >= self.max_dest_rd_atomic {
            ctx.stats.rx_dup_read_busy += 1;
            return Err(RxDrop::DuplicateRead.into());
        }
        self.allowed(ctx, psn, access::REMOTE_READ)?;
        if reth.dma_len > 0
            && mem
                .check(
                    reth.rkey,
                    reth.va,
                    u64::from(reth.dma_len),
                    Access::RemoteRead,
                )
                .is_err()
        {
            return Err(self.fatal(psn, NakCode::RemoteAccessError).into());
        }
        self.resp_q.push_back(Job::Read(ReadJob { rec, next: k }));
        Ok(())
    }

    fn aeth(&self, ctx: &Ctx, syndrome: Syndrome) -> Aeth {
        Aeth {
            syndrome,
            msn: self.msn,
            credits: ctx.grant,
        }
    }

    /// The ACK the next request packet of this QP carries (PAETH), unless
    /// a NAK or READ response has to go before it: when anything executed
    /// is unacknowledged, and also when nothing is, once this QP has
    /// acknowledged anything. The repeat is TCP's rule that every segment
    /// carries the cumulative ACK: an ACK that rode on a lost packet is not
    /// on its retransmission otherwise, and if the peer then completes its
    /// last exchange and destroys its QP (ibv_rc_pingpong at its end), the
    /// request that ACK covered is retried until RETRY_EXC_ERR. A stale or
    /// repeated PAETH is harmless (ACKs and credit limits never move
    /// backwards).
    pub(crate) fn piggyback(&self, ctx: &Ctx) -> Option<Paeth> {
        ((self.ack.owed() || self.acked) && self.nak.is_none() && self.resp_q.is_empty()).then(
            || Paeth {
                psn: self.epsn.sub(1),
                credits: ctx.grant,
            },
        )
    }

    /// Only a pending NAK (used in ERROR state).
    pub(crate) fn poll_nak(&mut self, ctx: &mut Ctx, buf: &mut [u8]) -> Option<usize> {
        let (psn, syndrome) = self.nak.take()?;
        let ext = Ext {
            aeth: Some(self.aeth(ctx, syndrome)),
            ..Ext::default()
        };
        let repr = ctx.repr(Opcode::Acknowledge, psn, false, false, 0, ext);
        let n = repr.emit(&mut Frame::new_unchecked(buf), |_| ()).ok()?;
        match syndrome {
            Syndrome::RnrNak(_) => {}
            _ => ctx.stats.tx_naks += 1,
        }
        self.ack.sent(&mut ctx.timers);
        Some(n)
    }

    /// Next responder frame: READ responses and atomic acknowledges, then
    /// a NAK, then an ACK. Once [`READ_BURST`] responses went out since
    /// the last input with more queued, nothing (the NAK and ACK would
    /// overtake them): the resume timer, due at `now`, makes the caller's
    /// timer pass grant the next burst.
    pub(crate) fn poll_transmit<M: MemoryAccess + ?Sized>(
        &mut self,
        ctx: &mut Ctx,
        now: Instant,
        buf: &mut [u8],
        mem: &M,
    ) -> Result<Option<usize>, Fatal> {
        if !self.resp_q.is_empty() && self.burst_left == 0 {
            ctx.stats.tx_read_paused += 1;
            ctx.timers.set_if_stopped(Timer::Resume, now);
            return Ok(None);
        }
        if let Some(Job::Atomic(rec)) = self.resp_q.front().copied() {
            let ext = Ext {
                aeth: Some(self.aeth(ctx, Syndrome::Ack)),
                atomic_ack: Some(rec.orig),
                ..Ext::default()
            };
            let repr = ctx.repr(Opcode::AtomicAcknowledge, rec.psn, false, false, 0, ext);
            let Ok(n) = repr.emit(&mut Frame::new_unchecked(&mut *buf), |_| ()) else {
                ctx.stats.tx_buffer_too_small += 1;
                return Ok(None);
            };
            self.burst_left -= 1;
            self.resp_q.pop_front();
            return Ok(Some(n));
        }
        if let Some(Job::Read(ReadJob { rec, next })) = self.resp_q.front().copied() {
            let mtu = ctx.mtu;
            let psn = rec.first.add(next);
            let pos = Position::of(next, rec.npsn);
            // next < npsn <= 2^23, so this is below len <= 2^31.
            let off = u64::from(next) * u64::from(mtu);
            let plen = (u64::from(rec.len) - off).min(u64::from(mtu)) as u32;
            let opcode = Opcode::read_response(pos);
            let ext = Ext {
                aeth: (pos != Position::Middle).then(|| self.aeth(ctx, Syndrome::Ack)),
                ..Ext::default()
            };
            let repr = ctx.repr(opcode, psn, false, false, plen as usize, ext);
            let mut frame = Frame::new_unchecked(&mut *buf);
            if repr.emit_header(&mut frame).is_err() {
                ctx.stats.tx_buffer_too_small += 1;
                return Ok(None);
            }
            if plen > 0
                && mem
                    .read(
                        rec.rkey,
                        rec.va.wrapping_add(off),
                        frame.payload_mut(),
                        Access::RemoteRead,
                    )
                    .is_err()
            {
                // The MR went away after the request was validated, or
                // its memory faulted. The NAK names this response's PSN:
                // the requester has the ones before it, so only this one
                // is still outstanding there (the READ's first PSN may
                // already be acknowledged, and a NAK for it ignored).
                return Err(self.fatal(psn, NakCode::RemoteAccessError));
            }
            let n = frame.fill_crc_and_pad();
            self.burst_left -= 1;
            if let Some(Job::Read(j)) = self.resp_q.front_mut() {
                j.next += 1;
                if j.next >= j.rec.npsn {
                    self.resp_q.pop_front();
                }
            }
            return Ok(Some(n));
        }
        if self.nak.is_some() {
            return Ok(self.poll_nak(ctx, buf));
        }
        Ok(self.poll_ack(ctx, buf))
    }

    /// An ACK frame, if one is due.
    pub(crate) fn poll_ack(&mut self, ctx: &mut Ctx, buf: &mut [u8]) -> Option<usize> {
        if !self.ack.is_due() {
            return None;
        }
        let ext = Ext {
            aeth: Some(self.aeth(ctx, Syndrome::Ack)),
            ..Ext::default()
        };
        let repr = ctx.repr(Opcode::Acknowledge, self.epsn.sub(1), false, false, 0, ext);
        let n = repr.emit(&mut Frame::new_unchecked(buf), |_| ()).ok();
        if n.is_some() {
            ctx.stats.tx_acks += 1;
            self.ack.sent(&mut ctx.timers);
            self.acked = true;
        }
        n
    }
}

fn recv_wc(
    ctx: &Ctx,
    wr: &RecvWr,
    status: WcStatus,
    byte_len: u32,
    imm: Option<u32>,
    opcode: WcOpcode,
    solicited: bool,
) -> WorkCompletion {
    WorkCompletion {
        wr_id: wr.wr_id,
        status,
        opcode,
        queue: WcQueue::Recv,
        byte_len,
        imm,
        inv: None,
        qp_num: ctx.qpn,
        src_qp: ctx.remote_qpn,
        solicited,
        grh: false,
        sl: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A READ of 2^31 bytes at MTU 256 (2^23 responses) across the wrap:
    /// a duplicate names a tail of it by PSN, address and length in step.
    #[test]
    fn duplicate_read_matching() {
        let mtu = 256;
        let first = Psn::new(0xFF_FFF0);
        let reth = |va: u64, rkey: u32, dma_len: u32| Reth { va, rkey, dma_len };
        let rec = ReadRecord::new(first, &reth(0x10_0000, 5, 1 << 31), mtu);
        assert_eq!(rec.npsn, 1 << 23);
        let last = (1u32 << 23) - 1;
        let at = |k: u32| 0x10_0000 + u64::from(k) * u64::from(mtu);
        let tail = |k: u32| (1u32 << 31) - k * mtu;
        assert_eq!(rec.matches(first, &reth(at(0), 5, tail(0)), mtu), Some(0));
        assert_eq!(
            rec.matches(first.add(16), &reth(at(16), 5, tail(16)), mtu),
            Some(16)
        );
        assert_eq!(
            rec.matches(first.add(last), &reth(at(last), 5, mtu), mtu),
            Some(last)
        );
        for (what, psn, r) in [
            (
                "past the end",
                first.add(last + 1),
                reth(at(last + 1), 5, 0),
            ),
            ("before", first.sub(1), reth(at(0), 5, tail(0))),
            ("address", first.add(16), reth(at(16) + 1, 5, tail(16))),
            ("address of k - 1", first.add(16), reth(at(15), 5, tail(16))),
            ("rkey", first.add(16), reth(at(16), 6, tail(16))),
            ("length", first.add(16), reth(at(16), 5, tail(16) - 1)),
            ("whole length", first.add(16), reth(at(16), 5, tail(0))),
            ("far away", first.add(0x80_0000), reth(at(0), 5, tail(0))),
        ] {
            assert_eq!(rec.matches(psn, &r, mtu), None, "{what}");
        }
        // A zero-length READ: one response, at its own PSN only.
        let zero = ReadRecord::new(first, &reth(0, 5, 0), mtu);
        assert_eq!(zero.npsn, 1);
        assert_eq!(zero.matches(first, &reth(0, 5, 0), mtu), Some(0));
        assert_eq!(zero.matches(first.add(1), &reth(0, 5, 0), mtu), None);
    }
}
