//! The engine behind a [`crate::Qp`]: the connected state machine (RC,
//! or UC in its unreliable mode) or the datagram one (UD), behind one
//! API so that the endpoint drives every QP alike.
//!
//! Who holds references: only the QP's [`crate::qp::QpInner`], so every
//! call here runs under the QP lock (the engines' one requirement).
//! Verbs a type does not have are no-ops (UD holds no ACKs and has no
//! timers) or refusals (a UD send without a destination, a connected
//! send with one), never panics.

use std::sync::Arc;

use omx_engine::{
    Instant, MemoryAccess, ModifyError, PostError, QpAttr, QpEvent, QpState, QpType, RcQp, RecvWr,
    RxDrop, SendWr, SharedRecv, Stats, Transmit, UdDest, UdQp, WorkCompletion,
};
use omx_wire::Qpn;

/// A QP's engine.
// One per QP, inside the QP's `Arc`: boxing the larger variant would add
// a pointer chase to every engine call to save ~1 KiB per UD QP.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Engine {
    /// RC, or UC ([`RcQp::qp_type`] tells which).
    Conn(RcQp),
    /// UD.
    Ud(UdQp),
}

/// Calls the same method on whichever engine this is.
macro_rules! each {
    ($self:expr, $q:ident => $e:expr) => {
        match $self {
            Engine::Conn($q) => $e,
            Engine::Ud($q) => $e,
        }
    };
}

impl Engine {
    /// This QP's number.
    pub fn qpn(&self) -> Qpn {
        each!(self, q => q.qpn())
    }

    /// RC, UC or UD.
    pub fn qp_type(&self) -> QpType {
        match self {
            Engine::Conn(q) => q.qp_type(),
            Engine::Ud(_) => QpType::Ud,
        }
    }

    /// Current state.
    pub fn state(&self) -> QpState {
        each!(self, q => q.state())
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        each!(self, q => q.stats())
    }

    /// A UD QP's largest message (its MTU); `None` for a connected QP.
    pub fn ud_mtu(&self) -> Option<u32> {
        match self {
            Engine::Conn(_) => None,
            Engine::Ud(q) => Some(q.path_mtu()),
        }
    }

    /// Send WRs the next post would still accept.
    pub fn sq_free(&self) -> u32 {
        each!(self, q => q.sq_free())
    }

    /// Some posted WR has not completed yet.
    pub fn work_pending(&self) -> bool {
        each!(self, q => q.work_pending())
    }

    /// The QP holds an ACK for the application's answer (never for UD).
    pub fn holds_ack(&self) -> bool {
        match self {
            Engine::Conn(q) => q.holds_ack(),
            Engine::Ud(_) => false,
        }
    }

    /// Whether frames handled next may have their ACK held (UD: no ACKs).
    pub fn set_ack_hold(&mut self, allowed: bool) {
        if let Engine::Conn(q) = self {
            q.set_ack_hold(allowed);
        }
    }

    /// The credits a connected QP grants from now on (UD: no credits).
    pub fn set_credit_grant(&mut self, credits: u16) {
        if let Engine::Conn(q) = self {
            q.set_credit_grant(credits);
        }
    }

    /// Why a connected QP declared its peer gone, if it did.
    pub fn gone_report(&self) -> Option<omx_engine::GoneReport> {
        match self {
            Engine::Conn(q) => q.gone_report(),
            _ => None,
        }
    }

    /// Sends a held ACK now (UD: nothing held).
    pub fn flush_acks(&mut self) {
        if let Engine::Conn(q) = self {
            q.flush_acks();
        }
    }

    /// The QP takes its receive WQEs from `srq`.
    pub fn use_srq(&mut self, srq: Arc<dyn SharedRecv>) {
        each!(self, q => q.use_srq(srq))
    }

    /// Validates `ibv_modify_qp` without changing anything.
    pub fn check_modify(&self, attr: &QpAttr) -> Result<(), ModifyError> {
        each!(self, q => q.check_modify(attr))
    }

    /// `ibv_modify_qp`.
    pub fn modify(&mut self, attr: &QpAttr) -> Result<(), ModifyError> {
        each!(self, q => q.modify(attr))
    }

    /// Forces the QP to ERROR (a CQ overran).
    pub fn fail(&mut self) {
        each!(self, q => q.fail())
    }

    /// Why the engine moved the QP to ERROR on its own, once.
    pub fn poll_event(&mut self) -> Option<QpEvent> {
        each!(self, q => q.poll_event())
    }

    /// `ibv_post_send` for one WR: a UD QP needs the WR's destination
    /// (`ibv_send_wr.wr.ud`), a connected QP refuses one (EINVAL).
    pub fn post_send(&mut self, wr: SendWr, dest: Option<UdDest>) -> Result<(), PostError> {
        match (self, dest) {
            (Engine::Conn(q), None) => q.post_send(wr),
            (Engine::Ud(q), Some(d)) => q.post_send(wr, d),
            _ => Err(PostError::InvalidState),
        }
    }

    /// `ibv_post_recv` for one WR.
    pub fn post_recv(&mut self, wr: RecvWr) -> Result<(), PostError> {
        each!(self, q => q.post_recv(wr))
    }

    /// One received frame.
    pub fn handle_frame<M: MemoryAccess + ?Sized>(
        &mut self,
        now: Instant,
        bytes: &[u8],
        mem: &mut M,
    ) -> Result<(), RxDrop> {
        each!(self, q => q.handle_frame(now, bytes, mem))
    }

    /// One received multicast frame for the group `group` (docs/wire.md
    /// §13.5). Only UD QPs attach to groups (the kernel refuses the
    /// others); a connected engine drops it as not its own.
    pub fn handle_mcast_frame<M: MemoryAccess + ?Sized>(
        &mut self,
        now: Instant,
        bytes: &[u8],
        mem: &mut M,
        group: &[u8; 16],
    ) -> Result<(), RxDrop> {
        match self {
            Engine::Ud(q) => q.handle_mcast_frame(now, bytes, mem, group),
            Engine::Conn(_) => Err(RxDrop::WrongQp),
        }
    }

    /// The timer that [`Engine::poll_timeout`] named is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        each!(self, q => q.handle_timeout(now))
    }

    /// The next timer deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        each!(self, q => q.poll_timeout())
    }

    /// The next frame to send, written into `buf`.
    pub fn poll_transmit<M: MemoryAccess + ?Sized>(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        mem: &M,
    ) -> Option<Transmit> {
        each!(self, q => q.poll_transmit(now, buf, mem))
    }

    /// The next completion.
    pub fn poll_completion(&mut self) -> Option<WorkCompletion> {
        each!(self, q => q.poll_completion())
    }
}
