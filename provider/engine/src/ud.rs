//! The UD queue pair (docs/wire.md §13): single-packet datagrams to and
//! from any UD QP, as a sans-IO state machine with the API shape of
//! [`crate::RcQp`].
//!
//! Invariants:
//! - Nothing is acknowledged or retransmitted: a send WR completes once
//!   its one frame was written by [`UdQp::poll_transmit`]; no timers.
//! - A received frame is acted on only if it is a UD SEND Only (with
//!   immediate) with a good CRC, for this QPN, in a receiving state, no
//!   longer than the MTU, with the QP's Q_Key, and a WQE is there; each
//!   other case is dropped, counted in [`Stats`] and never answered.
//! - A WQE gets the 40-byte GRH (built by [`write_grh`]) then the
//!   payload; a WQE too small completes with IBV_WC_LOC_LEN_ERR and the
//!   QP stays up (any host may send any size).
//! - No allocation after [`UdQp::new`]: the send, receive and completion
//!   queues are sized at creation; a slot is released when its
//!   completion is polled, and receive completions taken from an SRQ are
//!   bounded by `rq_depth` (beyond it frames are dropped, `rx_cq_full`).

use std::collections::VecDeque;
use std::sync::Arc;

use omx_wire::{Deth, Frame, Psn, Qpn, UdRepr};

use crate::mem::{self, Access, MemoryAccess};
use crate::qp::{ModifyError, PostError, QpEvent, QpEventKind, RxDrop, Stats, Transmit};
use crate::state::{attr_mask, qp_attr_mask_ok, PathMtu, QpAttr, QpState, QpType};
use crate::time::Instant;
use crate::wr::{RecvWr, SendOp, SendWr, SharedRecv, WcOpcode, WcQueue, WcStatus, WorkCompletion};

/// Length of the GRH a UD receive WQE gets in front of the payload.
pub const GRH_LEN: usize = 40;

/// IBTA's multicast QPN: the destination QPN of every datagram sent to
/// a multicast group (docs/wire.md §13.5). The kernel module never gives
/// it to a QP.
pub const MCAST_QPN: Qpn = Qpn::new(0x00ff_ffff);

/// Q_Keys with this bit set are "controlled": a send WR carrying one uses
/// the QP's own Q_Key instead (IBTA 10.2.4.2, `ibv_post_send(3)`).
pub const QKEY_CONTROLLED: u32 = 0x8000_0000;

/// `ibv_wc.sl` of a receive whose GRH is in IPv4 form (UCX reads the form
/// from `wc.sl & 7`, docs/wire.md §13.4).
pub const SL_IPV4_GRH: u8 = 2;

/// Creation-time parameters of a UD QP (sizes every queue).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdConfig {
    /// This QP's number (from the kernel).
    pub qpn: Qpn,
    /// `max_send_wr`.
    pub sq_depth: u32,
    /// `max_recv_wr` (with an SRQ: the most receive completions kept
    /// unpolled).
    pub rq_depth: u32,
    /// The port's MAC: the source MAC of every frame.
    pub mac: [u8; 6],
    /// The port's GID this QP receives on (GID index 0, link-local): the
    /// destination GID of the GRH written in front of a message from an
    /// IPv6 or link-local GID.
    pub gid: [u8; 16],
    /// The port's first IPv4-mapped GID, if it has one: the destination
    /// GID of a message from an IPv4-mapped GID (the GRH then takes the
    /// IPv4 form). Our GID table is not on the wire, so the receiver
    /// names the GID of the sender's family, which is the one the sender
    /// addressed whenever the port has a single address of that family.
    pub gid_v4: Option<[u8; 16]>,
    /// The port's GIDs are RoCE v2 (UDP-encapsulated) GIDs: the GRH
    /// takes the form RoCE v2 hardware writes ([`write_grh`]). A port of
    /// RoCE v1 GIDs (ours: docs/wire.md §13.4) gets the IPv6 form with
    /// the IBTA next header for every message, which is what
    /// `ibv_init_ah_from_wc` matches against a v1 GID table.
    pub roce_v2: bool,
    /// The port's active MTU: the largest payload sent and accepted.
    pub mtu: PathMtu,
}

impl UdConfig {
    /// Defaults: 256/256 WQEs, MTU 1024.
    pub fn new(qpn: Qpn, mac: [u8; 6], gid: [u8; 16]) -> Self {
        UdConfig {
            qpn,
            sq_depth: 256,
            rq_depth: 256,
            mac,
            gid,
            gid_v4: None,
            roce_v2: false,
            mtu: PathMtu::Mtu1024,
        }
    }
}

/// Where one send WR goes: what the provider takes from its address
/// handle (`ibv_send_wr.wr.ud`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UdDest {
    /// Destination MAC (the AH's GID resolved).
    pub dmac: [u8; 6],
    /// `remote_qpn` (24 bits; higher bits are dropped).
    pub remote_qpn: u32,
    /// `remote_qkey`; with [`QKEY_CONTROLLED`] set, the QP's own Q_Key
    /// is sent instead.
    pub remote_qkey: u32,
    /// Our GID the AH's `sgid_index` names (carried in the DETH: the
    /// source GID of the receiver's GRH).
    pub sgid: [u8; 16],
    /// The AH's `grh.traffic_class`.
    pub traffic_class: u8,
    /// The AH's `grh.hop_limit`.
    pub hop_limit: u8,
}

/// Whether `gid` is IPv4-mapped (`::ffff:a.b.c.d`).
pub fn gid_is_ipv4(gid: &[u8; 16]) -> bool {
    gid[..10].iter().all(|b| *b == 0) && gid[10..12] == [0xff, 0xff]
}

/// The Internet checksum of `b` (RFC 1071), for the IPv4 form's header.
fn ipv4_checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = b
        .chunks(2)
        .map(|c| u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0)))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Writes the GRH of a UD message (docs/wire.md §13.4) and returns the
/// `ibv_wc.sl` that tells its form. On a port of RoCE v2 GIDs
/// (`roce_v2`): the IPv4 form (sl 2) when both GIDs are IPv4-mapped,
/// else the IPv6 form with next header UDP (sl 0). On a port of RoCE v1
/// GIDs: always the IPv6 form with the IBTA next header (sl 0), as RoCE
/// v1 puts an IPv6-format GRH on the wire whatever the GIDs hold. `imm`
/// and `payload_len` give the length fields.
#[allow(clippy::too_many_arguments)]
pub fn write_grh(
    out: &mut [u8; GRH_LEN],
    sgid: &[u8; 16],
    dgid: &[u8; 16],
    traffic_class: u8,
    hop_limit: u8,
    imm: bool,
    payload_len: usize,
    roce_v2: bool,
) -> u8 {
    // IBTA BTH + DETH + ImmDt + payload padded to 4 + ICRC.
    let ib_len = 12 + 8 + 4 * usize::from(imm) + payload_len.div_ceil(4) * 4 + 4;
    *out = [0; GRH_LEN];
    if roce_v2 && gid_is_ipv4(sgid) && gid_is_ipv4(dgid) {
        let ip = &mut out[20..];
        ip[0] = 0x45;
        ip[1] = traffic_class;
        let total = (20 + 8 + ib_len).min(usize::from(u16::MAX)) as u16;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes());
        ip[8] = hop_limit;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&sgid[12..16]);
        ip[16..20].copy_from_slice(&dgid[12..16]);
        let sum = ipv4_checksum(ip);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        SL_IPV4_GRH
    } else {
        out[0] = 0x60 | traffic_class >> 4;
        out[1] = traffic_class << 4;
        // RoCE v2 carries a UDP header (8 bytes) before the BTH.
        let (len, next) = if roce_v2 {
            (8 + ib_len, 17)
        } else {
            (ib_len, 0x1B)
        };
        let len = len.min(usize::from(u16::MAX)) as u16;
        out[4..6].copy_from_slice(&len.to_be_bytes());
        out[6] = next;
        out[7] = hop_limit;
        out[8..24].copy_from_slice(sgid);
        out[24..40].copy_from_slice(dgid);
        0
    }
}

/// An unreliable-datagram QP as a sans-IO state machine.
///
/// # API (as [`crate::RcQp`])
///
/// - (A) getters: [`UdQp::qpn`], [`UdQp::state`], [`UdQp::stats`],
///   [`UdQp::qkey`], [`UdQp::path_mtu`], [`UdQp::reset_epoch`].
/// - (B) inputs: [`UdQp::handle_frame`], [`UdQp::handle_timeout`] (UD
///   has no timer: a no-op kept for the driving loop's sake).
/// - (C) verbs: [`UdQp::check_modify`], [`UdQp::modify`],
///   [`UdQp::post_send`] (with the WR's [`UdDest`]), [`UdQp::post_recv`],
///   [`UdQp::fail`].
/// - (D) outputs: [`UdQp::poll_transmit`], [`UdQp::poll_completion`]
///   ([`WorkCompletion`] with `grh` and `sl` set for receives), [`UdQp::poll_event`], [`UdQp::poll_timeout`]
///   (always `None`).
///
/// States: RESET refuses posts; INIT accepts them (sends wait for RTS);
/// RTR, RTS, SQD and SQE receive; RTS sends. A failed gather moves the
/// QP to SQE (the send queue flushes, receiving goes on; SQE→RTS
/// resumes). ERROR flushes every WR, and so does every post in ERROR or
/// (send) SQE.
#[derive(Debug)]
pub struct UdQp {
    cfg: UdConfig,
    state: QpState,
    qkey: u32,
    sq_psn: Psn,
    next_psn: Psn,
    sq: VecDeque<(SendWr, UdDest)>,
    rq: VecDeque<RecvWr>,
    srq: Option<Arc<dyn SharedRecv>>,
    cq: VecDeque<WorkCompletion>,
    sq_outstanding: u32,
    rq_outstanding: u32,
    /// Receive completions of SRQ WQEs not polled yet.
    srq_unpolled: u32,
    stats: Stats,
    reset_epoch: u32,
    event: Option<QpEvent>,
}

impl UdQp {
    /// Creates a QP in RESET.
    pub fn new(cfg: UdConfig) -> Self {
        UdQp {
            state: QpState::Reset,
            qkey: 0,
            sq_psn: Psn::new(0),
            next_psn: Psn::new(0),
            sq: VecDeque::with_capacity(cfg.sq_depth as usize),
            rq: VecDeque::with_capacity(cfg.rq_depth as usize),
            srq: None,
            cq: VecDeque::with_capacity((cfg.sq_depth + cfg.rq_depth) as usize),
            sq_outstanding: 0,
            rq_outstanding: 0,
            srq_unpolled: 0,
            stats: Stats::default(),
            reset_epoch: 0,
            event: None,
            cfg,
        }
    }

    /// The QP takes its receive WQEs from `srq` ([`SharedRecv`]);
    /// [`UdQp::post_recv`] is then refused. For a QP just created.
    pub fn with_srq(mut self, srq: Arc<dyn SharedRecv>) -> Self {
        self.use_srq(srq);
        self
    }

    /// [`UdQp::with_srq`] in place.
    pub fn use_srq(&mut self, srq: Arc<dyn SharedRecv>) {
        self.srq = Some(srq);
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
        &self.stats
    }

    /// The QP's Q_Key (0 until RESET→INIT sets it).
    pub fn qkey(&self) -> u32 {
        self.qkey
    }

    /// The MTU in payload bytes: the largest message sent or accepted.
    pub fn path_mtu(&self) -> u32 {
        self.cfg.mtu.bytes()
    }

    /// Successful modifies to RESET (RESET→RESET included), modulo 2^32.
    pub fn reset_epoch(&self) -> u32 {
        self.reset_epoch
    }

    /// How many more send WRs [`UdQp::post_send`] would accept now (0 in
    /// RESET, where posting is refused).
    pub fn sq_free(&self) -> u32 {
        if self.state == QpState::Reset {
            return 0;
        }
        self.cfg.sq_depth.saturating_sub(self.sq_outstanding)
    }

    /// Some posted WR has not completed yet.
    pub fn work_pending(&self) -> bool {
        self.sq_outstanding != 0 || self.rq_outstanding != 0
    }

    /// The GIDs the QP receives on changed (the port's GID table did):
    /// see [`UdConfig::gid`] and [`UdConfig::gid_v4`].
    pub fn set_gids(&mut self, gid: [u8; 16], gid_v4: Option<[u8; 16]>) {
        self.cfg.gid = gid;
        self.cfg.gid_v4 = gid_v4;
    }

    /// The destination GID of the GRH of a message from `sgid`.
    fn dgid_for(&self, sgid: &[u8; 16]) -> [u8; 16] {
        match self.cfg.gid_v4 {
            Some(g) if gid_is_ipv4(sgid) => g,
            _ => self.cfg.gid,
        }
    }

    /// Validates `ibv_modify_qp` without changing anything: the
    /// transition and mask against the kernel's table for UD
    /// ([`qp_attr_mask_ok`] with [`QpType::Ud`]: RESET→INIT needs
    /// PKEY_INDEX, PORT and QKEY, INIT→RTR nothing, RTR→RTS SQ_PSN), every
    /// value ([`QpAttr::values_ok`]), and a Q_Key value with the QKEY bit.
    pub fn check_modify(&self, attr: &QpAttr) -> Result<(), ModifyError> {
        let from = self.state;
        let to = attr.state.unwrap_or(from);
        let mask = attr.mask();
        if crate::state::transition_attrs(QpType::Ud, from, to).is_none() {
            return Err(ModifyError::InvalidTransition { from, to });
        }
        if attr.extra_mask & QpAttr::MODELLED_MASK != 0 {
            return Err(ModifyError::InvalidAttribute);
        }
        if !qp_attr_mask_ok(QpType::Ud, from, to, mask) {
            return Err(ModifyError::InvalidMask { from, to, mask });
        }
        if !attr.values_ok() || (mask & attr_mask::QKEY != 0 && attr.qkey.is_none()) {
            return Err(ModifyError::InvalidAttribute);
        }
        Ok(())
    }

    /// `ibv_modify_qp`: [`UdQp::check_modify`], then the change. A
    /// refused modify leaves the QP exactly as it was.
    pub fn modify(&mut self, attr: &QpAttr) -> Result<(), ModifyError> {
        self.check_modify(attr)?;
        let from = self.state;
        let to = attr.state.unwrap_or(from);
        if let Some(q) = attr.qkey {
            self.qkey = q;
        }
        if let Some(p) = attr.sq_psn {
            self.sq_psn = p;
        }
        match to {
            QpState::Reset => {
                self.reset_epoch = self.reset_epoch.wrapping_add(1);
                self.event = None;
                self.sq.clear();
                self.rq.clear();
                self.cq.clear();
                self.sq_outstanding = 0;
                self.rq_outstanding = 0;
                self.srq_unpolled = 0;
                self.qkey = 0;
            }
            QpState::Err => {
                self.enter_error(None);
                return Ok(());
            }
            QpState::Rts if from == QpState::Rtr => self.next_psn = self.sq_psn,
            _ => {}
        }
        self.state = to;
        Ok(())
    }

    /// Moves the QP to ERROR, flushing every WR in order; `event` is
    /// queued for [`UdQp::poll_event`]. Once per entry into ERROR.
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
        self.flush_sq();
        while let Some(wr) = self.rq.pop_front() {
            let wc = self.recv_wc(wr.wr_id, WcStatus::WrFlushErr, 0, None, Qpn::new(0));
            self.cq.push_back(wc);
        }
    }

    fn flush_sq(&mut self) {
        while let Some((wr, _)) = self.sq.pop_front() {
            let wc = self.send_wc(&wr, WcStatus::WrFlushErr);
            self.cq.push_back(wc);
        }
    }

    /// The provider forces the QP to ERROR (CQ overrun):
    /// [`QpEventKind::Fatal`]. No effect in RESET or ERROR.
    pub fn fail(&mut self) {
        if self.state != QpState::Reset {
            self.enter_error(Some(QpEventKind::Fatal));
        }
    }

    /// Why the engine moved the QP to ERROR on its own since the last
    /// call (a receive WQE it could not write into).
    pub fn poll_event(&mut self) -> Option<QpEvent> {
        self.event.take()
    }

    fn send_wc(&self, wr: &SendWr, status: WcStatus) -> WorkCompletion {
        WorkCompletion {
            wr_id: wr.wr_id,
            status,
            opcode: WcOpcode::Send,
            queue: WcQueue::Send,
            byte_len: wr.sg.total_len() as u32,
            imm: None,
            inv: None,
            qp_num: self.cfg.qpn,
            src_qp: Qpn::new(0),
            solicited: false,
            grh: false,
            sl: 0,
        }
    }

    fn recv_wc(
        &self,
        wr_id: u64,
        status: WcStatus,
        byte_len: u32,
        imm: Option<u32>,
        src_qp: Qpn,
    ) -> WorkCompletion {
        WorkCompletion {
            wr_id,
            status,
            opcode: WcOpcode::Recv,
            queue: WcQueue::Recv,
            byte_len,
            imm,
            inv: None,
            qp_num: self.cfg.qpn,
            src_qp,
            solicited: false,
            grh: false,
            sl: 0,
        }
    }

    /// `ibv_post_send` for one UD WR to `dest`. Refused: in RESET, an
    /// operation other than SEND / SEND with immediate
    /// ([`PostError::InvalidState`]), more than the MTU
    /// ([`PostError::TooLong`]), a full queue. In ERROR or SQE the WR
    /// completes at once with IBV_WC_WR_FLUSH_ERR.
    pub fn post_send(&mut self, wr: SendWr, dest: UdDest) -> Result<(), PostError> {
        if self.state == QpState::Reset || !matches!(wr.op, SendOp::Send | SendOp::SendWithImm(_)) {
            return Err(PostError::InvalidState);
        }
        if wr.sg.total_len() > u64::from(self.path_mtu()) {
            return Err(PostError::TooLong);
        }
        if self.sq_outstanding >= self.cfg.sq_depth {
            return Err(PostError::Full);
        }
        self.sq_outstanding += 1;
        if matches!(self.state, QpState::Err | QpState::Sqe) {
            let wc = self.send_wc(&wr, WcStatus::WrFlushErr);
            self.cq.push_back(wc);
            return Ok(());
        }
        self.sq.push_back((wr, dest));
        Ok(())
    }

    /// `ibv_post_recv` for one WR. Refused in RESET and on a QP with an
    /// SRQ (EINVAL). In ERROR the WR completes at once, flushed.
    pub fn post_recv(&mut self, wr: RecvWr) -> Result<(), PostError> {
        if self.state == QpState::Reset || self.srq.is_some() {
            return Err(PostError::InvalidState);
        }
        if self.rq_outstanding >= self.cfg.rq_depth {
            return Err(PostError::Full);
        }
        self.rq_outstanding += 1;
        if self.state == QpState::Err {
            let wc = self.recv_wc(wr.wr_id, WcStatus::WrFlushErr, 0, None, Qpn::new(0));
            self.cq.push_back(wc);
            return Ok(());
        }
        self.rq.push_back(wr);
        Ok(())
    }

    fn drop_wire(&mut self, e: omx_wire::Error) -> RxDrop {
        let s = &mut self.stats;
        match e {
            omx_wire::Error::Truncated => s.rx_truncated += 1,
            omx_wire::Error::Malformed => s.rx_malformed += 1,
            omx_wire::Error::Unsupported => s.rx_unsupported += 1,
            omx_wire::Error::BadCrc => s.rx_bad_crc += 1,
        }
        RxDrop::Wire(e)
    }

    /// One received frame (any bytes; never panics): the checks of
    /// docs/wire.md §13.3 in order, each failure dropped and counted.
    /// A WQE that completes (also with IBV_WC_LOC_LEN_ERR) is not a drop.
    pub fn handle_frame<M: MemoryAccess + ?Sized>(
        &mut self,
        _now: Instant,
        bytes: &[u8],
        mem: &mut M,
    ) -> Result<(), RxDrop> {
        self.receive(bytes, mem, None)
    }

    /// One received multicast frame for a group this QP is attached to
    /// (docs/wire.md §13.5): the checks of [`UdQp::handle_frame`], except
    /// that the destination QPN must be [`MCAST_QPN`], and the GRH's
    /// destination GID is `group`. Which groups a frame is for (its
    /// destination MAC) is the caller's business.
    pub fn handle_mcast_frame<M: MemoryAccess + ?Sized>(
        &mut self,
        _now: Instant,
        bytes: &[u8],
        mem: &mut M,
        group: &[u8; 16],
    ) -> Result<(), RxDrop> {
        self.receive(bytes, mem, Some(group))
    }

    fn receive<M: MemoryAccess + ?Sized>(
        &mut self,
        bytes: &[u8],
        mem: &mut M,
        group: Option<&[u8; 16]>,
    ) -> Result<(), RxDrop> {
        self.stats.rx_frames += 1;
        let parsed = Frame::new_checked(bytes).and_then(|f| UdRepr::parse(&f).map(|r| (f, r)));
        let (frame, repr) = parsed.map_err(|e| self.drop_wire(e))?;
        let to = if group.is_some() {
            MCAST_QPN
        } else {
            self.cfg.qpn
        };
        if repr.dst_qpn != to {
            self.stats.rx_wrong_qp += 1;
            return Err(RxDrop::WrongQp);
        }
        if !matches!(
            self.state,
            QpState::Rtr | QpState::Rts | QpState::Sqd | QpState::Sqe
        ) {
            self.stats.rx_wrong_state += 1;
            return Err(RxDrop::WrongState);
        }
        if repr.payload_len > self.path_mtu() as usize {
            self.stats.rx_too_long += 1;
            return Err(RxDrop::TooLong);
        }
        if repr.deth.qkey != self.qkey {
            self.stats.rx_bad_qkey += 1;
            return Err(RxDrop::BadQkey);
        }
        let wqe = match &self.srq {
            Some(_) if self.srq_unpolled >= self.cfg.rq_depth => {
                self.stats.rx_cq_full += 1;
                return Err(RxDrop::CqFull);
            }
            Some(srq) => srq.take(),
            None => self.rq.pop_front(),
        };
        let Some(wqe) = wqe else {
            self.stats.rx_no_wqe += 1;
            return Err(RxDrop::NoWqe);
        };
        if self.srq.is_some() {
            self.srq_unpolled += 1;
        }
        let payload = frame.payload();
        let byte_len = (GRH_LEN + payload.len()) as u32;
        let src = repr.src_qpn;
        if u64::from(byte_len) > wqe.sg.total_len() {
            self.stats.rx_wqe_too_small += 1;
            let wc = self.recv_wc(wqe.wr_id, WcStatus::LocLenErr, byte_len, None, src);
            self.cq.push_back(wc);
            return Ok(());
        }
        let mut grh = [0u8; GRH_LEN];
        let dgid = match group {
            Some(g) => *g,
            None => self.dgid_for(&repr.deth.sgid),
        };
        let sl = write_grh(
            &mut grh,
            &repr.deth.sgid,
            &dgid,
            repr.deth.traffic_class,
            repr.deth.hop_limit,
            repr.imm.is_some(),
            payload.len(),
            self.cfg.roce_v2,
        );
        let wrote = mem::scatter(mem, &wqe.sg, 0, &grh).and_then(|()| {
            if payload.is_empty() {
                Ok(())
            } else {
                mem::scatter(mem, &wqe.sg, GRH_LEN as u64, payload)
            }
        });
        if wrote.is_err() {
            let wc = self.recv_wc(wqe.wr_id, WcStatus::LocProtErr, 0, None, src);
            self.cq.push_back(wc);
            self.enter_error(Some(QpEventKind::Fatal));
            return Ok(());
        }
        let mut wc = self.recv_wc(wqe.wr_id, WcStatus::Success, byte_len, repr.imm, src);
        wc.solicited = repr.solicited;
        wc.grh = true;
        wc.sl = sl;
        self.cq.push_back(wc);
        Ok(())
    }

    /// UD has no timers: nothing to do (kept so that the provider drives
    /// every QP alike).
    pub fn handle_timeout(&mut self, _now: Instant) {}

    /// Always `None`: UD has no timers.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    /// Writes the frame of the oldest send WR into `buf` (at least
    /// [`omx_wire::max_frame_len`]`(path_mtu)` bytes) and completes the
    /// WR; `None` when not in RTS or nothing is queued. A gather failure
    /// completes the WR with IBV_WC_LOC_PROT_ERR and moves the QP to SQE.
    pub fn poll_transmit<M: MemoryAccess + ?Sized>(
        &mut self,
        _now: Instant,
        buf: &mut [u8],
        mem: &M,
    ) -> Option<Transmit> {
        if self.state != QpState::Rts {
            return None;
        }
        let (wr, dest) = *self.sq.front()?;
        let len = wr.sg.total_len() as usize;
        let qkey = if dest.remote_qkey & QKEY_CONTROLLED != 0 {
            self.qkey
        } else {
            dest.remote_qkey
        };
        let repr = UdRepr {
            dst_mac: dest.dmac,
            src_mac: self.cfg.mac,
            peer_index: omx_wire::PEER_INDEX_UNKNOWN,
            dst_qpn: Qpn::new(dest.remote_qpn),
            src_qpn: self.cfg.qpn,
            psn: self.next_psn,
            solicited: wr.solicited,
            deth: Deth {
                qkey,
                traffic_class: dest.traffic_class,
                hop_limit: dest.hop_limit,
                sgid: dest.sgid,
            },
            imm: match wr.op {
                SendOp::SendWithImm(v) => Some(v),
                _ => None,
            },
            payload_len: len,
        };
        let mut frame = Frame::new_unchecked(&mut *buf);
        if repr.emit_header(&mut frame).is_err() {
            self.stats.tx_buffer_too_small += 1;
            return None;
        }
        self.sq.pop_front();
        if mem::gather(mem, &wr.sg, 0, frame.payload_mut(), Access::LocalRead).is_err() {
            self.stats.tx_gather_err += 1;
            let wc = self.send_wc(&wr, WcStatus::LocProtErr);
            self.cq.push_back(wc);
            self.state = QpState::Sqe;
            self.flush_sq();
            return None;
        }
        let n = frame.fill_crc_and_pad();
        self.next_psn = self.next_psn.add(1);
        self.stats.tx_frames += 1;
        if wr.signaled {
            let wc = self.send_wc(&wr, WcStatus::Success);
            self.cq.push_back(wc);
        } else {
            self.sq_outstanding -= 1;
        }
        Some(Transmit { len: n })
    }

    /// Next completion (send or receive queue). Polling releases the
    /// WQE's slot.
    #[must_use]
    pub fn poll_completion(&mut self) -> Option<WorkCompletion> {
        let c = self.cq.pop_front()?;
        match c.queue {
            WcQueue::Send => self.sq_outstanding = self.sq_outstanding.saturating_sub(1),
            WcQueue::Recv if self.srq.is_some() => {
                self.srq_unpolled = self.srq_unpolled.saturating_sub(1)
            }
            WcQueue::Recv => self.rq_outstanding = self.rq_outstanding.saturating_sub(1),
        }
        Some(c)
    }
}
