//! The engine's own moves to ERROR and the asynchronous event each one
//! raises (RcQp::poll_event, docs/wire.md §7.4): which kind, which reset
//! epoch, at most one per entry into ERROR, none for the application's
//! own modify to ERROR.

use omx_engine::testing::{
    completions, exchange, rts_qp, send_wr, transmit_all, Conn, FakeMemory, ALL_ACCESS,
};
use omx_engine::*;
use omx_wire::Qpn;

const A: u32 = 0x1001;
const B: u32 = 0x2001;

fn t0() -> Instant {
    Instant::from_micros(1)
}

fn conn() -> Conn {
    Conn {
        timeout: 1,
        retry_cnt: 1,
        ..Conn::new(A, B)
    }
}

fn wr(op: SendOp, lkey: u32) -> SendWr {
    send_wr(1, op, 0, 64, lkey)
}

fn memory() -> FakeMemory {
    let mut m = FakeMemory::default();
    m.add(1, 0, vec![0; 4096], &ALL_ACCESS);
    m
}

fn to(s: QpState) -> QpAttr {
    QpAttr {
        state: Some(s),
        ..QpAttr::default()
    }
}

/// A SEND that the responder cannot scatter (its receive WQE names no
/// MR): NAK remote operational error, a fatal event at the responder, an
/// error completion and an event of kind None at the requester.
#[test]
fn remote_operational_error_is_fatal() {
    let cfg = QpConfig::new(Qpn::new(0));
    let (mut a, mut b) = (rts_qp(cfg, &conn()), rts_qp(cfg, &conn().peer()));
    let (mut ma, mut mb) = (memory(), memory());
    b.post_recv(RecvWr {
        wr_id: 5,
        sg: SgList::single(0, 64, 0x777),
    })
    .unwrap();
    a.post_send(wr(SendOp::Send, 1)).unwrap();
    exchange((&mut a, &mut ma), (&mut b, &mut mb), t0(), 10);
    let st: Vec<_> = completions(&mut a).iter().map(|c| c.status).collect();
    assert_eq!(st, [WcStatus::RemOpErr]);
    let st: Vec<_> = completions(&mut b).iter().map(|c| c.status).collect();
    assert_eq!(st, [WcStatus::LocProtErr]);
    let ev = b.poll_event().unwrap();
    assert_eq!((ev.kind, ev.epoch), (QpEventKind::Fatal, 0));
    assert_eq!(a.poll_event().unwrap().kind, QpEventKind::None);
    // One event per entry into ERROR.
    assert_eq!(a.poll_event(), None);
    assert_eq!(b.poll_event(), None);
}

/// The requester's retry budget runs out: kind None, with the epoch of
/// the moment (after two resets).
#[test]
fn retry_exhausted_raises_none_with_the_epoch() {
    let mut a = rts_qp(QpConfig::new(Qpn::new(0)), &conn());
    let ma = memory();
    for _ in 0..2 {
        a.modify(&to(QpState::Reset)).unwrap();
    }
    conn().connect(&mut a);
    a.post_send(wr(SendOp::Send, 1)).unwrap();
    let mut now = t0();
    for _ in 0..10 {
        transmit_all(&mut a, now, &ma, 100);
        now = a.poll_timeout().unwrap_or(now);
        a.handle_timeout(now);
    }
    assert_eq!(a.state(), QpState::Err);
    let st: Vec<_> = completions(&mut a).iter().map(|c| c.status).collect();
    assert_eq!(st, [WcStatus::RetryExcErr]);
    let ev = a.poll_event().unwrap();
    assert_eq!((ev.kind, ev.epoch), (QpEventKind::None, 2));
    assert_eq!(a.reset_epoch(), 2);
}

/// The provider's own reason (CQ overrun): every WR flushed, a fatal
/// event; once. Nothing in RESET.
#[test]
fn fail_forces_error_with_a_fatal_event() {
    let mut a = rts_qp(QpConfig::new(Qpn::new(0)), &conn());
    a.post_send(wr(SendOp::Send, 1)).unwrap();
    a.post_recv(RecvWr {
        wr_id: 2,
        sg: SgList::single(0, 64, 1),
    })
    .unwrap();
    a.fail();
    assert_eq!(a.state(), QpState::Err);
    let st: Vec<_> = completions(&mut a).iter().map(|c| c.status).collect();
    assert_eq!(st, [WcStatus::WrFlushErr, WcStatus::WrFlushErr]);
    assert_eq!(a.poll_event().unwrap().kind, QpEventKind::Fatal);
    a.fail();
    assert_eq!(a.poll_event(), None, "already in ERROR");
    let mut r = RcQp::new(QpConfig::new(Qpn::new(A)));
    r.fail();
    assert_eq!((r.state(), r.poll_event()), (QpState::Reset, None));
}

/// The application's modify to ERROR raises nothing, and a reset forgets
/// an event not yet polled.
#[test]
fn application_modifies_raise_nothing() {
    let mut a = rts_qp(QpConfig::new(Qpn::new(0)), &conn());
    a.post_send(wr(SendOp::Send, 1)).unwrap();
    a.modify(&to(QpState::Err)).unwrap();
    assert_eq!(a.poll_event(), None);
    a.modify(&to(QpState::Reset)).unwrap();
    conn().connect(&mut a);
    a.fail();
    a.modify(&to(QpState::Reset)).unwrap();
    assert_eq!(a.poll_event(), None);
    assert_eq!(a.reset_epoch(), 2);
}
