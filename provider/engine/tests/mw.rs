//! Memory windows in the engine (docs/wire.md §10.5): binds and local
//! invalidations are local operations of the send queue, executed when
//! the queue reaches them and completed in order; a SEND with invalidate
//! carries the rkey in an IETH on its last packet and the receiver
//! invalidates it before completing the receive (IBV_WC_WITH_INV), or
//! refuses the request with NAK invalid request. The window checks
//! themselves (types, states, bounds, rights) are the memory's: the
//! provider's `MrTable` and its tests.

use omx_engine::testing::{
    completions, connected_pair, exchange, parse, recv_wr, rts_qp, send_wr, transmit_all, Conn,
    FakeMemory, ALL_ACCESS,
};
use omx_engine::*;
use omx_wire::{NakCode, Opcode, Syndrome};

const A: u32 = 0x1001;
const B: u32 = 0x2001;
const BUF: u32 = 0x100;
const BUF_VA: u64 = 0x1_0000;
/// A window's rkey (index bits 0x5000_00, key byte 0x07).
const MW: u32 = 0x5000_0007;

fn now() -> Instant {
    Instant::from_micros(1_000)
}

fn bind(new_key: u8) -> SendOp {
    SendOp::BindMw(MwBind {
        mw_rkey: MW,
        new_rkey: (MW & !0xff) | u32::from(new_key),
        mr_lkey: BUF,
        addr: BUF_VA,
        len: 64,
        access: 2,
    })
}

fn pair() -> (RcQp, RcQp, FakeMemory, FakeMemory) {
    let (a, b) = connected_pair(QpConfig::new(omx_wire::Qpn::new(A)), &Conn::new(A, B));
    let mut ma = FakeMemory::default();
    ma.add(BUF, BUF_VA, vec![0x5a; 8192], &ALL_ACCESS);
    let mut mb = FakeMemory::default();
    mb.add(BUF, BUF_VA, vec![0; 8192], &ALL_ACCESS);
    (a, b, ma, mb)
}

fn ops(wcs: &[WorkCompletion]) -> Vec<(u64, WcOpcode, WcStatus)> {
    wcs.iter().map(|c| (c.wr_id, c.opcode, c.status)).collect()
}

/// A pair where A has a window, B two receives, and A posted a SEND of 3
/// packets, a bind (key byte 0x42) and a SEND of one packet.
fn send_bind_send() -> (RcQp, RcQp, FakeMemory, FakeMemory) {
    let (mut a, mut b, mut ma, mb) = pair();
    ma.add_window(MW);
    b.post_recv(recv_wr(9, BUF_VA, 4096, BUF)).unwrap();
    b.post_recv(recv_wr(10, BUF_VA, 4096, BUF)).unwrap();
    a.post_send(send_wr(1, SendOp::Send, BUF_VA, 3000, BUF))
        .unwrap();
    a.post_send(send_wr(2, bind(0x42), 0, 0, BUF)).unwrap();
    a.post_send(send_wr(3, SendOp::Send, BUF_VA, 10, BUF))
        .unwrap();
    (a, b, ma, mb)
}

/// The three WRs of [`send_bind_send`] completed, successfully, in order.
fn completed_in_order(a: &mut RcQp) {
    assert_eq!(
        ops(&completions(a)),
        [
            (1, WcOpcode::Send, WcStatus::Success),
            (2, WcOpcode::BindMw, WcStatus::Success),
            (3, WcOpcode::Send, WcStatus::Success),
        ]
    );
}

/// A bind takes effect once every WR before it was sent, and completes
/// (IBV_WC_BIND_MW) only after they did: completions stay in order.
#[test]
fn bind_runs_in_send_queue_order_and_completes_after_earlier_wrs() {
    let (mut a, mut b, mut ma, mut mb) = send_bind_send();
    // Nothing sent yet: the window is untouched.
    assert_eq!(ma.window(MW).unwrap().binds, 0);
    // The SEND before it is out (not acknowledged): the bind ran, but
    // completes only after that SEND.
    let frames = transmit_all(&mut a, now(), &ma, 100);
    assert!(frames.len() >= 2);
    let w = ma.window(MW).unwrap();
    assert!(w.bound && w.binds == 1 && w.rkey == (MW & !0xff) | 0x42);
    assert!(completions(&mut a).is_empty());
    for f in &frames {
        let _ = b.handle_frame(now(), f, &mut mb);
    }
    exchange((&mut a, &mut ma), (&mut b, &mut mb), now(), 50);
    completed_in_order(&mut a);
    // The bind was executed once, not again by any retransmission.
    assert_eq!(ma.window(MW).unwrap().binds, 1);
}

/// A go-back-N retransmission of the WRs around a bind does not bind
/// again (a local operation has no PSN and runs once).
#[test]
fn retransmissions_do_not_run_a_bind_again() {
    let (mut a, mut b, mut ma, mut mb) = send_bind_send();
    // Everything is lost; the transport timer sends it all again.
    let lost = transmit_all(&mut a, now(), &ma, 100);
    assert_eq!(lost.len(), 4);
    let mut t = now();
    let mut again = Vec::new();
    for _ in 0..10 {
        t = t + Duration::from_millis(500);
        a.handle_timeout(t);
        again = transmit_all(&mut a, t, &ma, 100);
        if !again.is_empty() {
            break;
        }
    }
    // The timeout cut the congestion window to 2 packets: the rest
    // follows as ACKs come (exchange below).
    assert!(!again.is_empty(), "the SENDs again");
    assert!(a.stats().tx_retransmits >= 2);
    for f in &again {
        let _ = b.handle_frame(t, f, &mut mb);
    }
    exchange((&mut a, &mut ma), (&mut b, &mut mb), t, 50);
    completed_in_order(&mut a);
    assert_eq!(ma.window(MW).unwrap().binds, 1);
}

/// With nothing outstanding, a bind and a local invalidate complete at
/// once, without a packet; an unsignaled one completes silently.
#[test]
fn bind_and_local_invalidate_alone_complete_at_once() {
    let (mut a, _b, ma, _mb) = {
        let (a, b, mut ma, mb) = pair();
        ma.add_window(MW);
        (a, b, ma, mb)
    };
    a.post_send(send_wr(1, bind(0x08), 0, 0, BUF)).unwrap();
    let mut quiet = send_wr(2, SendOp::LocalInv((MW & !0xff) | 0x08), 0, 0, BUF);
    quiet.signaled = false;
    a.post_send(quiet).unwrap();
    a.post_send(send_wr(3, bind(0x09), 0, 0, BUF)).unwrap();
    assert!(transmit_all(&mut a, now(), &ma, 10).is_empty());
    assert_eq!(
        ops(&completions(&mut a)),
        [
            (1, WcOpcode::BindMw, WcStatus::Success),
            (3, WcOpcode::BindMw, WcStatus::Success),
        ]
    );
    let w = ma.window(MW).unwrap();
    assert!(w.bound && w.rkey == (MW & !0xff) | 0x09 && w.binds == 2);
}

/// A refused bind completes with IBV_WC_MW_BIND_ERR, a refused local
/// invalidate with IBV_WC_LOC_QP_OP_ERR; either moves the QP to ERROR
/// and flushes what follows.
#[test]
fn refused_local_operations_fail_the_qp() {
    for (op, status, opcode) in [
        (bind(1), WcStatus::MwBindErr, WcOpcode::BindMw),
        (
            SendOp::LocalInv(MW),
            WcStatus::LocQpOpErr,
            WcOpcode::LocalInv,
        ),
    ] {
        let (mut a, _b, ma, _mb) = pair(); // no window at all
        a.post_send(send_wr(1, op, 0, 0, BUF)).unwrap();
        a.post_send(send_wr(2, SendOp::Send, BUF_VA, 8, BUF))
            .unwrap();
        assert!(transmit_all(&mut a, now(), &ma, 10).is_empty());
        assert_eq!(
            ops(&completions(&mut a)),
            [
                (1, opcode, status),
                (2, WcOpcode::Send, WcStatus::WrFlushErr)
            ]
        );
        assert_eq!(a.state(), QpState::Err);
        assert_eq!(a.stats().tx_local_op_errors, 1);
    }
}

/// SEND with invalidate: the IETH rides on the last packet only (SEND
/// Last/Only with Invalidate), the receiver invalidates the window before
/// the receive completes with the rkey (IBV_WC_WITH_INV), and the sender
/// completes an ordinary SEND.
#[test]
fn send_with_invalidate_invalidates_before_the_receive_completes() {
    let key = (MW & !0xff) | 0x42;
    for len in [100u32, 3000] {
        let (mut a, mut b, mut ma, mut mb) = pair();
        mb.add_window(MW);
        b.post_send(send_wr(7, bind(0x42), 0, 0, BUF)).unwrap();
        exchange((&mut a, &mut ma), (&mut b, &mut mb), now(), 10);
        assert!(mb.window(key).unwrap().bound);
        assert_eq!(completions(&mut b).len(), 1);
        b.post_recv(recv_wr(9, BUF_VA, 4096, BUF)).unwrap();
        a.post_send(send_wr(1, SendOp::SendWithInv(key), BUF_VA, len, BUF))
            .unwrap();
        let frames = transmit_all(&mut a, now(), &ma, 100);
        let reprs: Vec<_> = frames.iter().map(|f| parse(f)).collect();
        let (last, rest) = reprs.split_last().unwrap();
        assert_eq!(last.ext.ieth, Some(key));
        let want = if rest.is_empty() {
            Opcode::SendOnlyInv
        } else {
            Opcode::SendLastInv
        };
        assert_eq!(last.bth.opcode, want);
        for (k, r) in rest.iter().enumerate() {
            let want = if k == 0 {
                Opcode::SendFirst
            } else {
                Opcode::SendMiddle
            };
            assert_eq!((r.bth.opcode, r.ext.ieth), (want, None));
        }
        for f in &frames {
            let _ = b.handle_frame(now(), f, &mut mb);
        }
        exchange((&mut a, &mut ma), (&mut b, &mut mb), now(), 10);
        let r = completions(&mut b);
        assert_eq!(r.len(), 1);
        assert_eq!(
            (r[0].opcode, r[0].status, r[0].inv, r[0].imm, r[0].byte_len),
            (WcOpcode::Recv, WcStatus::Success, Some(key), None, len)
        );
        assert!(!mb.window(key).unwrap().bound);
        assert_eq!(b.stats().rx_invalidations, 1);
        assert_eq!(
            ops(&completions(&mut a)),
            [(1, WcOpcode::Send, WcStatus::Success)]
        );
    }
}

/// An IETH naming nothing the receiver can invalidate: NAK invalid
/// request (the sender completes with IBV_WC_REM_INV_REQ_ERR), no
/// successful receive, both QPs in ERROR.
#[test]
fn send_with_invalidate_of_an_unknown_rkey_is_an_invalid_request() {
    let (mut a, mut b, mut ma, mut mb) = pair();
    b.post_recv(recv_wr(9, BUF_VA, 4096, BUF)).unwrap();
    a.post_send(send_wr(1, SendOp::SendWithInv(MW), BUF_VA, 16, BUF))
        .unwrap();
    let frames = transmit_all(&mut a, now(), &ma, 10);
    for f in &frames {
        let _ = b.handle_frame(now(), f, &mut mb);
    }
    let naks = transmit_all(&mut b, now(), &mb, 10);
    assert!(naks.iter().map(|f| parse(f)).any(|r| r
        .ext
        .aeth
        .is_some_and(|a| a.syndrome == Syndrome::Nak(NakCode::InvalidRequest))));
    for f in &naks {
        let _ = a.handle_frame(now(), f, &mut ma);
    }
    assert_eq!(
        ops(&completions(&mut a)),
        [(1, WcOpcode::Send, WcStatus::RemInvReqErr)]
    );
    assert!(completions(&mut b)
        .iter()
        .all(|c| c.status != WcStatus::Success));
    assert_eq!(b.stats().rx_invalidate_refused, 1);
    assert_eq!(b.state(), QpState::Err);
}

/// UC has no SEND with invalidate (IBTA's UC opcodes): refused at post;
/// a bind on a UC QP works.
#[test]
fn uc_refuses_send_with_invalidate_and_binds() {
    let mut cfg = QpConfig::new(omx_wire::Qpn::new(A));
    cfg.qp_type = QpType::Uc;
    let mut a = rts_qp(cfg, &Conn::new(A, B));
    let mut ma = FakeMemory::default();
    ma.add(BUF, BUF_VA, vec![0; 64], &ALL_ACCESS);
    ma.add_window(MW);
    assert_eq!(
        a.post_send(send_wr(1, SendOp::SendWithInv(MW), BUF_VA, 8, BUF)),
        Err(PostError::InvalidState)
    );
    a.post_send(send_wr(2, bind(3), 0, 0, BUF)).unwrap();
    assert!(transmit_all(&mut a, now(), &ma, 10).is_empty());
    assert_eq!(
        ops(&completions(&mut a)),
        [(2, WcOpcode::BindMw, WcStatus::Success)]
    );
}
