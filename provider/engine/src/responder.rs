//! RC responder: in-order execution of SEND, RDMA WRITE and RDMA READ
//! requests, duplicate handling, NAK generation and READ responses
//! (docs/wire.md §7, §10.1).

use std::collections::VecDeque;

use omx_wire::{
    Aeth, Ext, Frame, FrameRepr, NakCode, Opcode, Paeth, Position, Psn, Reth, Syndrome,
};

use crate::ack::AckState;
use crate::mem::{self, Access, MemoryAccess};
use crate::qp::{Ctx, Fatal};
use crate::time::Instant;
use crate::wr::{RecvWr, WcOpcode, WcQueue, WcStatus, WorkCompletion};

#[derive(Debug, Clone, Copy)]
struct WriteCtx {
    va: u64,
    rkey: u32,
    len: u32,
    off: u32,
}

#[derive(Debug, Clone, Copy)]
struct ReadJob {
    first: Psn,
    va: u64,
    rkey: u32,
    len: u32,
    npsn: u32,
    next: u32,
}

impl ReadJob {
    fn new(first: Psn, reth: &Reth, mtu: u32) -> Self {
        ReadJob {
            first,
            va: reth.va,
            rkey: reth.rkey,
            len: reth.dma_len,
            npsn: reth.dma_len.div_ceil(mtu).max(1),
            next: 0,
        }
    }
}

/// What executing an in-sequence request packet did.
enum Exec {
    /// Executed; the expected PSN advances by this many PSNs.
    Advance(u32, bool),
    /// Receiver not ready: RNR NAK queued, nothing executed.
    Rnr,
}

#[derive(Debug)]
pub(crate) struct Responder {
    epsn: Psn,
    msn: u32,
    rq: VecDeque<RecvWr>,
    /// Bytes placed into `rq[0]` while a SEND is in progress.
    recv_off: Option<u64>,
    write: Option<WriteCtx>,
    read_q: VecDeque<ReadJob>,
    pub(crate) max_dest_rd_atomic: usize,
    pub(crate) min_rnr_timer: u8,
    gap_nak_sent: bool,
    nak: Option<(Psn, Syndrome)>,
    pub(crate) ack: AckState,
    /// An ACK (frame or PAETH) went out since the QP started: request
    /// packets then repeat the cumulative ACK even when nothing is owed
    /// (see `piggyback`).
    pub(crate) acked: bool,
}

impl Responder {
    pub(crate) fn new(rq_depth: usize, ack: AckState) -> Self {
        Responder {
            epsn: Psn::new(0),
            msn: 0,
            rq: VecDeque::with_capacity(rq_depth),
            recv_off: None,
            write: None,
            read_q: VecDeque::with_capacity(256),
            max_dest_rd_atomic: 16,
            min_rnr_timer: 12,
            gap_nak_sent: false,
            nak: None,
            ack,
            acked: false,
        }
    }

    /// INIT→RTR: expect `rq_psn`.
    pub(crate) fn start(&mut self, rq_psn: Psn) {
        self.epsn = rq_psn;
    }

    pub(crate) fn post(&mut self, wr: RecvWr) {
        self.rq.push_back(wr);
    }

    /// Flushes every receive WQE (QP to ERROR); a pending NAK is kept so
    /// that the requester learns about the error.
    pub(crate) fn flush(&mut self, ctx: &mut Ctx) {
        for wr in self.rq.drain(..) {
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
        self.read_q.clear();
    }

    /// Drops everything without completions (modify to RESET).
    pub(crate) fn reset(&mut self) {
        self.rq.clear();
        self.recv_off = None;
        self.write = None;
        self.read_q.clear();
        self.nak = None;
        self.gap_nak_sent = false;
        self.msn = 0;
        self.acked = false;
    }

    fn fatal(&mut self, psn: Psn, code: NakCode) -> Fatal {
        self.nak = Some((psn, Syndrome::Nak(code)));
        Fatal
    }

    /// A request packet addressed to this QP.
    pub(crate) fn handle_request<M: MemoryAccess + ?Sized>(
        &mut self,
        ctx: &mut Ctx,
        now: Instant,
        repr: &FrameRepr,
        payload: &[u8],
        mem: &mut M,
    ) -> Result<(), Fatal> {
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
            match (repr.bth.opcode, repr.ext.reth) {
                (Opcode::ReadRequest, Some(reth)) => self.duplicate_read(ctx, psn, &reth, mem),
                _ => self.ack.force(),
            }
            return Ok(());
        }
        let op = repr.bth.opcode;
        let exec = if op.is_send() {
            self.exec_send(ctx, repr, payload, mem)?
        } else if op.is_write() {
            self.exec_write(ctx, repr, payload, mem)?
        } else if op == Opcode::ReadRequest {
            self.exec_read(ctx, repr, mem)?
        } else {
            // Atomics and SEND with invalidate: TODO, answered as invalid.
            return Err(self.fatal(psn, NakCode::InvalidRequest));
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

    fn length_ok(pos: Position, len: usize, mtu: usize) -> bool {
        match pos {
            Position::First | Position::Middle => len == mtu,
            Position::Last => (1..=mtu).contains(&len),
            Position::Only => len <= mtu,
        }
    }

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
            || matches!(op, Opcode::SendLastInv | Opcode::SendOnlyInv)
        {
            return Err(self.fatal(psn, NakCode::InvalidRequest));
        }
        if pos.is_first() {
            if self.recv_off.is_some() || self.write.is_some() {
                return Err(self.fatal(psn, NakCode::InvalidRequest));
            }
            if self.rq.is_empty() {
                return Ok(Exec::Rnr);
            }
            self.recv_off = Some(0);
        }
        let Some(off) = self.recv_off else {
            return Err(self.fatal(psn, NakCode::InvalidRequest));
        };
        let Some(wqe) = self.rq.front().copied() else {
            return Err(self.fatal(psn, NakCode::InvalidRequest));
        };
        let end = off + payload.len() as u64;
        if end > wqe.sg.total_len() {
            self.rq.pop_front();
            ctx.push_wc(recv_wc(
                ctx,
                &wqe,
                WcStatus::LocLenErr,
                end as u32,
                None,
                WcOpcode::Recv,
                false,
            ));
            return Err(self.fatal(psn, NakCode::InvalidRequest));
        }
        if !payload.is_empty() && mem::scatter(mem, &wqe.sg, off, payload).is_err() {
            self.rq.pop_front();
            ctx.push_wc(recv_wc(
                ctx,
                &wqe,
                WcStatus::LocProtErr,
                0,
                None,
                WcOpcode::Recv,
                false,
            ));
            return Err(self.fatal(psn, NakCode::RemoteOperationalError));
        }
        if pos.is_last() {
            self.rq.pop_front();
            self.recv_off = None;
            self.msn = (self.msn + 1) & 0xFF_FFFF;
            let wc = recv_wc(
                ctx,
                &wqe,
                WcStatus::Success,
                end as u32,
                repr.ext.imm,
                WcOpcode::Recv,
                repr.bth.solicited,
            );
            ctx.push_wc(wc);
        } else {
            self.recv_off = Some(end);
        }
        Ok(Exec::Advance(1, false))
    }

    fn exec_write<M: MemoryAccess + ?Sized>(
        &mut self,
        ctx: &mut Ctx,
        repr: &FrameRepr,
        payload: &[u8],
        mem: &mut M,
    ) -> Result<Exec, Fatal> {
        let psn = repr.bth.psn;
        let op = repr.bth.opcode;
        let pos = op.position();
        if !Self::length_ok(pos, payload.len(), ctx.mtu as usize) {
            return Err(self.fatal(psn, NakCode::InvalidRequest));
        }
        if op.has_imm() && self.rq.is_empty() {
            return Ok(Exec::Rnr);
        }
        if pos.is_first() {
            let Some(reth) = repr.ext.reth else {
                return Err(self.fatal(psn, NakCode::InvalidRequest));
            };
            if self.recv_off.is_some() || self.write.is_some() {
                return Err(self.fatal(psn, NakCode::InvalidRequest));
            }
            if reth.dma_len > 0
                && mem
                    .check(
                        reth.rkey,
                        reth.va,
                        u64::from(reth.dma_len),
                        Access::RemoteWrite,
                    )
                    .is_err()
            {
                return Err(self.fatal(psn, NakCode::RemoteAccessError));
            }
            self.write = Some(WriteCtx {
                va: reth.va,
                rkey: reth.rkey,
                len: reth.dma_len,
                off: 0,
            });
        }
        let Some(mut w) = self.write else {
            return Err(self.fatal(psn, NakCode::InvalidRequest));
        };
        let end = u64::from(w.off) + payload.len() as u64;
        if end > u64::from(w.len) {
            return Err(self.fatal(psn, NakCode::InvalidRequest));
        }
        if !payload.is_empty()
            && mem
                .write(
                    w.rkey,
                    w.va.wrapping_add(u64::from(w.off)),
                    payload,
                    Access::RemoteWrite,
                )
                .is_err()
        {
            return Err(self.fatal(psn, NakCode::RemoteAccessError));
        }
        w.off = end as u32;
        if pos.is_last() {
            if w.off != w.len {
                return Err(self.fatal(psn, NakCode::InvalidRequest));
            }
            self.write = None;
            self.msn = (self.msn + 1) & 0xFF_FFFF;
            if let Some(imm) = repr.ext.imm {
                if let Some(wqe) = self.rq.pop_front() {
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
            }
        } else {
            self.write = Some(w);
        }
        Ok(Exec::Advance(1, false))
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
        if self.recv_off.is_some()
            || self.write.is_some()
            || self.read_q.len() >= self.max_dest_rd_atomic
        {
            return Err(self.fatal(psn, NakCode::InvalidRequest));
        }
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
        let job = ReadJob::new(psn, &reth, ctx.mtu);
        self.read_q.push_back(job);
        self.msn = (self.msn + 1) & 0xFF_FFFF;
        Ok(Exec::Advance(job.npsn, true))
    }

    /// IBTA 9.7.5.1.5: a duplicate READ request is executed again from its
    /// PSN with the RETH it carries.
    fn duplicate_read<M: MemoryAccess + ?Sized>(
        &mut self,
        ctx: &mut Ctx,
        psn: Psn,
        reth: &Reth,
        mem: &M,
    ) {
        if let Some(job) = self.read_q.iter_mut().find(|j| {
            let d = psn.diff(j.first);
            d >= 0 && (d as u32) < j.npsn
        }) {
            job.next = job.next.min(psn.diff(job.first) as u32);
            return;
        }
        if self.read_q.len() >= self.max_dest_rd_atomic {
            return;
        }
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
            return;
        }
        self.read_q.push_back(ReadJob::new(psn, reth, ctx.mtu));
    }

    fn aeth(&self, ctx: &Ctx, syndrome: Syndrome) -> Aeth {
        Aeth {
            syndrome,
            msn: self.msn,
            credits: ctx.rx_window,
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
        ((self.ack.owed() || self.acked) && self.nak.is_none() && self.read_q.is_empty()).then(
            || Paeth {
                psn: self.epsn.sub(1),
                credits: ctx.rx_window,
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

    /// Next responder frame: READ responses, then a NAK, then an ACK.
    pub(crate) fn poll_transmit<M: MemoryAccess + ?Sized>(
        &mut self,
        ctx: &mut Ctx,
        buf: &mut [u8],
        mem: &M,
    ) -> Result<Option<usize>, Fatal> {
        if let Some(job) = self.read_q.front().copied() {
            let mtu = ctx.mtu;
            let psn = job.first.add(job.next);
            let pos = Position::of(job.next, job.npsn);
            let off = job.next * mtu;
            let plen = (job.len - off).min(mtu);
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
                        job.rkey,
                        job.va.wrapping_add(u64::from(off)),
                        frame.payload_mut(),
                        Access::RemoteRead,
                    )
                    .is_err()
            {
                // The MR went away after the request was validated.
                return Err(self.fatal(job.first, NakCode::RemoteAccessError));
            }
            let n = frame.fill_crc_and_pad();
            if let Some(j) = self.read_q.front_mut() {
                j.next += 1;
                if j.next >= j.npsn {
                    self.read_q.pop_front();
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
        qp_num: ctx.qpn,
        src_qp: ctx.remote_qpn,
        solicited,
    }
}
