//! Crafted and forged frames against an RC QP (issue 11, engine level):
//! frames from anyone but the connected peer, ACKs and NAKs outside the
//! window, a sweep of the whole PSN space, duplicate READs that ask for
//! something else, oversized READs, requests the QP or the MR does not
//! allow, memory that goes away or faults mid-message.
//!
//! Every case checks that nothing panics, that no byte outside the range
//! a legitimate request may write changed (regions are filled with
//! canaries), and the right completion status at the peer or the right
//! drop counter at the victim.

use std::ops::Range;

use omx_engine::testing::{
    completions, connected_pair, exchange, parse, rts_qp, send_wr, transmit_all, Conn, Crafter,
    FakeMemory, CANARY,
};
use omx_engine::*;
use omx_wire::{Ext, FrameRepr, NakCode, Opcode, Paeth, Psn, Qpn, Reth, Syndrome};

/// The peer (legitimate requester) and the victim.
const P: u32 = 0x1001;
const V: u32 = 0x2001;
/// Victim's first send PSN and expected PSN.
const S: u32 = 0x10;
const E: u32 = 0x800;
const MTU: u32 = 256;

const RECV: u32 = 0x100;
const RECV_VA: u64 = 0x10_0000;
const TARGET: u32 = 0x200;
const TARGET_VA: u64 = 0x20_0000;
const SRC: u32 = 0x300;
const SRC_VA: u64 = 0x30_0000;
const REGION: usize = 8192;

fn t0() -> Instant {
    Instant::from_micros(1_000)
}

/// The victim's side of the connection.
fn victim_conn() -> Conn {
    Conn {
        mtu: PathMtu::Mtu256,
        sq_psn: S,
        rq_psn: E,
        timeout: 8,
        min_rnr_timer: 1,
        ..Conn::new(V, P)
    }
}

/// Receive buffers and an RDMA target full of canaries, a source with
/// data.
fn memory() -> FakeMemory {
    let mut m = FakeMemory::default();
    m.add_canaried(RECV, RECV_VA, REGION, &[Access::LocalWrite]);
    m.add_canaried(
        TARGET,
        TARGET_VA,
        REGION,
        &[
            Access::LocalRead,
            Access::LocalWrite,
            Access::RemoteRead,
            Access::RemoteWrite,
        ],
    );
    let data = (0..REGION).map(|i| (i * 7 + 3) as u8).collect();
    m.add(SRC, SRC_VA, data, &[Access::LocalRead]);
    m
}

/// No byte of any canaried region changed outside `allowed`.
fn assert_canaries(m: &FakeMemory, allowed: &[(u32, Range<u64>)]) {
    for key in [RECV, TARGET] {
        let keep = allowed
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(0..0, |(_, r)| r.clone());
        let bad = m.damage_outside(key, keep);
        assert!(bad.is_empty(), "key {key:#x}: {} bytes changed", bad.len());
    }
}

fn recv_wr(wr_id: u64, addr: u64, len: u32) -> RecvWr {
    omx_engine::testing::recv_wr(wr_id, addr, len, RECV)
}

/// One QP under attack, its memory and the peer it is connected to.
struct Victim {
    qp: RcQp,
    mem: FakeMemory,
    now: Instant,
    peer: Crafter,
}

impl Victim {
    fn new(conn: Conn) -> Self {
        Victim {
            qp: rts_qp(QpConfig::new(Qpn::new(V)), &conn),
            mem: memory(),
            now: t0(),
            peer: conn.from_peer(),
        }
    }

    fn inject(&mut self, f: &[u8]) -> Result<(), RxDrop> {
        self.qp.handle_frame(self.now, f, &mut self.mem)
    }

    fn out(&mut self) -> Vec<FrameRepr> {
        transmit_all(&mut self.qp, self.now, &self.mem, 10_000)
            .iter()
            .map(|f| parse(f))
            .collect()
    }

    fn wcs(&mut self) -> Vec<WorkCompletion> {
        completions(&mut self.qp)
    }

    /// Posts `n` 8-byte SENDs and transmits what credits allow (16).
    fn send_outstanding(&mut self, n: u64) -> usize {
        for i in 0..n {
            let wr = send_wr(i, SendOp::Send, SRC_VA, 8, SRC);
            self.qp.post_send(wr).unwrap();
        }
        self.out().len()
    }

    /// A request from the peer.
    fn request(&self, op: Opcode, psn: u32, ext: Ext, payload: &[u8]) -> Vec<u8> {
        self.peer.frame(op, psn, ext, payload)
    }
}

fn reth(va: u64, rkey: u32, dma_len: u32) -> Ext {
    Ext {
        reth: Some(Reth { va, rkey, dma_len }),
        ..Ext::default()
    }
}

fn nak(code: NakCode) -> Syndrome {
    Syndrome::Nak(code)
}

fn syndromes(out: &[FrameRepr]) -> Vec<(u32, Syndrome)> {
    out.iter()
        .filter_map(|r| r.ext.aeth.map(|a| (r.bth.psn.value(), a.syndrome)))
        .collect()
}

// ---------------------------------------------------------------------
// Who may talk to a QP

/// A well-formed, in-sequence SEND with a piggybacked ACK from the right
/// QPN but a foreign MAC: dropped before anything, no NAK, no ACK, the
/// PAETH not applied. The same frame from the peer's MAC works.
#[test]
fn foreign_source_mac() {
    let mut v = Victim::new(victim_conn());
    v.qp.post_recv(recv_wr(1, RECV_VA, 64)).unwrap();
    assert_eq!(v.send_outstanding(1), 1);
    let ext = Ext {
        ack: Some(Paeth {
            psn: Psn::new(S),
            credits: 64,
        }),
        ..Ext::default()
    };
    let mut forger = v.peer;
    forger.src_mac[5] ^= 0x40;
    let f = forger.frame(Opcode::SendOnly, E, ext, &[9; 16]);
    assert_eq!(v.inject(&f), Err(RxDrop::WrongMac));
    assert_eq!(v.qp.stats().rx_wrong_mac, 1);
    assert!(v.out().is_empty(), "no NAK, no ACK");
    assert!(v.wcs().is_empty(), "nothing executed, nothing acknowledged");
    assert_canaries(&v.mem, &[]);
    // A multicast or zero source MAC: the same.
    for mac in [[0xff; 6], [0; 6]] {
        forger.src_mac = mac;
        let f = forger.frame(Opcode::SendOnly, E, ext, &[9; 16]);
        assert_eq!(v.inject(&f), Err(RxDrop::WrongMac));
    }
    // From the peer itself: executed, and the PAETH completes our SEND.
    let f = v.request(Opcode::SendOnly, E, ext, &[9; 16]);
    assert_eq!(v.inject(&f), Ok(()));
    let st: Vec<_> = v.wcs().iter().map(|c| (c.queue, c.status)).collect();
    assert_eq!(
        st,
        [
            (WcQueue::Send, WcStatus::Success),
            (WcQueue::Recv, WcStatus::Success)
        ]
    );
    assert_canaries(&v.mem, &[(RECV, RECV_VA..RECV_VA + 16)]);
}

/// The same frame from another QPN (or to another QPN): dropped, never
/// NAKed.
#[test]
fn foreign_source_qpn() {
    let mut v = Victim::new(victim_conn());
    v.qp.post_recv(recv_wr(1, RECV_VA, 64)).unwrap();
    assert_eq!(v.send_outstanding(1), 1);
    for (src, dst) in [(P ^ 1, V), (P + 0x1000, V), (P, V ^ 1), (0, V)] {
        let mut c = Crafter::new(src, dst);
        c.src_mac = v.peer.src_mac;
        let ack = c.ack(S, Syndrome::Ack, 64);
        assert_eq!(v.inject(&ack), Err(RxDrop::WrongQp));
        let f = c.frame(Opcode::SendOnly, E, Ext::default(), &[1; 8]);
        assert_eq!(v.inject(&f), Err(RxDrop::WrongQp));
        // A request that would be out of sequence: still no NAK.
        let f = c.frame(Opcode::SendOnly, E + 5, Ext::default(), &[1; 8]);
        assert_eq!(v.inject(&f), Err(RxDrop::WrongQp));
    }
    assert_eq!(v.qp.stats().rx_wrong_qp, 12);
    assert!(v.out().is_empty());
    assert!(v.wcs().is_empty());
    assert_canaries(&v.mem, &[]);
}

// ---------------------------------------------------------------------
// ACKs, PAETHs and NAKs inside and outside the window

/// ACK frames: only PSNs in [una - 1, sent_end - 1] count, credits
/// included. Before, credits from a PSN up to 2^23 in the past were
/// trusted.
#[test]
fn forged_acks_inside_and_outside_the_window() {
    let mut v = Victim::new(victim_conn());
    // 40 SENDs, 16 on the wire (initial credits): una S, sent_end S + 16.
    assert_eq!(v.send_outstanding(40), 16);
    let s = Psn::new(S);
    let outside = [
        s.add(16),   // sent_end
        s.add(20),   // never sent
        s.sub(2),    // una - 2
        s.sub(1000), // long ago: credits would reach far ahead
        s.add(0x80_0000),
    ];
    for (i, p) in outside.iter().enumerate() {
        let f = v.peer.ack(p.value(), Syndrome::Ack, u16::MAX);
        assert_eq!(v.inject(&f), Err(RxDrop::OutOfWindow), "{p:?}");
        assert_eq!(v.qp.stats().rx_ack_out_of_window, i as u64 + 1);
        assert!(v.wcs().is_empty(), "{p:?}");
        assert!(v.out().is_empty(), "{p:?}: credits applied");
    }
    // una - 1: nothing acknowledged, but its credits count.
    let f = v.peer.ack(s.sub(1).value(), Syndrome::Ack, 20);
    assert_eq!(v.inject(&f), Ok(()));
    assert!(v.wcs().is_empty());
    let more = v.out();
    assert_eq!(more.len(), 4);
    assert_eq!(more[0].bth.psn, s.add(16));
    // Inside: completes what it covers.
    let f = v.peer.ack(s.add(3).value(), Syndrome::Ack, 16);
    v.inject(&f).unwrap();
    assert_eq!(v.wcs().len(), 4);
    // sent_end - 1: everything sent.
    let f = v.peer.ack(s.add(19).value(), Syndrome::Ack, 0);
    v.inject(&f).unwrap();
    assert_eq!(v.wcs().len(), 16);
    assert!(v.wcs().iter().all(|c| c.status == WcStatus::Success));
    // Now nothing is outstanding: only the repeat of the last ACK counts.
    let f = v.peer.ack(s.add(20).value(), Syndrome::Ack, 100);
    assert_eq!(v.inject(&f), Err(RxDrop::OutOfWindow));
    let f = v.peer.ack(s.add(19).value(), Syndrome::Ack, 30);
    assert_eq!(v.inject(&f), Ok(()));
    assert_eq!(v.out().len(), 20 - 10 + 10, "credits to S + 49");
    assert_eq!(v.qp.state(), QpState::Rts);
}

/// A PAETH outside the window is ignored (the request it rides on is
/// executed); inside, it acknowledges and credits like an ACK.
#[test]
fn forged_paeth_inside_and_outside_the_window() {
    let mut v = Victim::new(victim_conn());
    for i in 0..4 {
        v.qp.post_recv(recv_wr(i, RECV_VA + i * 64, 64)).unwrap();
    }
    assert_eq!(v.send_outstanding(30), 16);
    let s = Psn::new(S);
    let paeth = |p: Psn, credits| Ext {
        ack: Some(Paeth { psn: p, credits }),
        ..Ext::default()
    };
    let mut epsn = E;
    for p in [s.add(16), s.sub(2), s.sub(5000), s.add(0x40_0000)] {
        let f = v.request(Opcode::SendOnly, epsn, paeth(p, u16::MAX), &[7; 8]);
        assert_eq!(v.inject(&f), Ok(()));
        epsn += 1;
        let wcs = v.wcs();
        assert_eq!(wcs.len(), 1, "{p:?}: only the receive");
        assert_eq!(wcs[0].queue, WcQueue::Recv);
        let out = v.out();
        assert!(
            out.iter().all(|r| r.bth.opcode == Opcode::Acknowledge),
            "{p:?}: credits applied"
        );
    }
    assert_eq!(v.qp.stats().rx_ack_out_of_window, 4);
    let f = v.request(Opcode::SendOnly, epsn, paeth(s.add(7), 16), &[7; 8]);
    v.inject(&f).unwrap();
    let wcs = v.wcs();
    assert_eq!(
        wcs.iter().filter(|c| c.queue == WcQueue::Send).count(),
        8,
        "S..=S+7 acknowledged"
    );
    let sends = v
        .out()
        .iter()
        .filter(|r| r.bth.opcode == Opcode::SendOnly)
        .count();
    assert_eq!(sends, 8, "credits to S + 23");
    assert_canaries(&v.mem, &[(RECV, RECV_VA..RECV_VA + 4 * 64)]);
}

/// Every NAK kind: outside [una, sent_end) counted and ignored (never
/// ERROR, never a completion: a sequence-error NAK at sent_end used to
/// acknowledge everything sent); inside, what IBTA says.
#[test]
fn forged_naks_inside_and_outside_the_window() {
    let kinds = [
        Syndrome::RnrNak(1),
        nak(NakCode::PsnSequenceError),
        nak(NakCode::InvalidRequest),
        nak(NakCode::RemoteAccessError),
        nak(NakCode::RemoteOperationalError),
    ];
    let s = Psn::new(S);
    for kind in kinds {
        let mut v = Victim::new(victim_conn());
        assert_eq!(v.send_outstanding(20), 16);
        let outside = [
            s.sub(1),
            s.add(16),
            s.add(17),
            s.sub(1000),
            s.add(0x80_0000),
        ];
        for p in outside {
            let f = v.peer.ack(p.value(), kind, u16::MAX);
            assert_eq!(v.inject(&f), Err(RxDrop::OutOfWindow), "{kind:?} {p:?}");
            assert_eq!(v.qp.state(), QpState::Rts, "{kind:?} {p:?}");
            assert!(v.wcs().is_empty(), "{kind:?} {p:?}");
            assert!(v.out().is_empty(), "{kind:?} {p:?}");
        }
        assert_eq!(v.qp.stats().rx_nak_out_of_window, outside.len() as u64);
        assert_eq!(v.qp.poll_event(), None);
        // Inside, at S + 5: everything before it is acknowledged.
        let f = v.peer.ack(s.add(5).value(), kind, 16);
        assert_eq!(v.inject(&f), Ok(()), "{kind:?}");
        let wcs = v.wcs();
        let ok = wcs.iter().filter(|c| c.status == WcStatus::Success).count();
        assert_eq!(ok, 5, "{kind:?}");
        let expect = match kind {
            Syndrome::Nak(NakCode::InvalidRequest) => Some(WcStatus::RemInvReqErr),
            Syndrome::Nak(NakCode::RemoteAccessError) => Some(WcStatus::RemAccessErr),
            Syndrome::Nak(NakCode::RemoteOperationalError) => Some(WcStatus::RemOpErr),
            _ => None,
        };
        match expect {
            Some(st) => {
                assert_eq!(wcs[5].status, st);
                assert!(wcs[6..].iter().all(|c| c.status == WcStatus::WrFlushErr));
                assert_eq!(wcs.len(), 20);
                assert_eq!(v.qp.state(), QpState::Err);
                let ev = v.qp.poll_event().unwrap();
                assert_eq!(ev.kind, QpEventKind::None, "requester errors raise none");
            }
            None => {
                assert_eq!(wcs.len(), 5);
                assert_eq!(v.qp.state(), QpState::Rts);
                if kind == nak(NakCode::PsnSequenceError) {
                    let out = v.out();
                    assert_eq!(out[0].bth.psn, s.add(5), "resent from the NAK");
                } else {
                    assert!(v.out().is_empty(), "RNR wait");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------
// A sweep of the whole PSN space

const STRIDE: usize = 521;

/// PSNs over the whole 24-bit space at a prime stride, plus `edges`.
fn sweep(edges: &[Psn]) -> Vec<Psn> {
    (0..omx_wire::PSN_MODULUS)
        .step_by(STRIDE)
        .map(Psn::new)
        .chain(edges.iter().copied())
        .collect()
}

/// Forged ACKs and every NAK kind at every swept PSN outside the window
/// change nothing; the frames the victim sent meanwhile are then
/// delivered to the real peer and everything completes.
#[test]
fn psn_sweep_acks_and_naks() {
    let kinds = [
        Syndrome::Ack,
        Syndrome::RnrNak(1),
        nak(NakCode::PsnSequenceError),
        nak(NakCode::InvalidRequest),
        nak(NakCode::RemoteAccessError),
        nak(NakCode::RemoteOperationalError),
    ];
    let s = Psn::new(S);
    for kind in kinds {
        let conn = victim_conn();
        let (mut a, mut b) = connected_pair(QpConfig::new(Qpn::new(V)), &conn);
        let (mut ma, mut mb) = (memory(), memory());
        for i in 0..16 {
            b.post_recv(recv_wr(i, RECV_VA + i * 64, 64)).unwrap();
            a.post_send(send_wr(i, SendOp::Send, SRC_VA, 8, SRC))
                .unwrap();
        }
        let held = transmit_all(&mut a, t0(), &ma, 100);
        assert_eq!(held.len(), 16);
        // Window: ACKs [S - 1, S + 15], NAKs [S, S + 15].
        let lo = if kind == Syndrome::Ack { s.sub(1) } else { s };
        let in_window = |p: Psn| p.offset_from(lo) <= s.add(15).offset_from(lo);
        let psns = sweep(&[s.sub(2), s.sub(1), s.add(16), s.add(17)]);
        let mut forged = 0;
        for p in psns.iter().filter(|p| !in_window(**p)) {
            let f = conn.from_peer().ack(p.value(), kind, u16::MAX);
            assert_eq!(
                a.handle_frame(t0(), &f, &mut ma),
                Err(RxDrop::OutOfWindow),
                "{kind:?} {p:?}"
            );
            forged += 1;
        }
        assert!(forged > 32_000);
        let st = a.stats();
        assert_eq!(st.rx_ack_out_of_window + st.rx_nak_out_of_window, forged);
        assert_eq!(a.state(), QpState::Rts, "{kind:?}");
        assert!(completions(&mut a).is_empty(), "{kind:?}");
        assert!(transmit_all(&mut a, t0(), &ma, 100).is_empty(), "{kind:?}");
        // The real traffic still goes through.
        for f in &held {
            b.handle_frame(t0(), f, &mut mb).unwrap();
        }
        exchange((&mut a, &mut ma), (&mut b, &mut mb), t0(), 100);
        let wcs = completions(&mut a);
        assert_eq!(wcs.len(), 16, "{kind:?}");
        assert!(wcs.iter().all(|c| c.status == WcStatus::Success));
        assert_eq!(completions(&mut b).len(), 16);
        assert_canaries(&mb, &[(RECV, RECV_VA..RECV_VA + 16 * 64)]);
        assert_canaries(&ma, &[]);
    }
}

/// Requests (SENDs and READs) at every swept PSN but the expected one:
/// behind it they are duplicates (ACKed; a READ that matches nothing is
/// dropped unread), ahead of it they get one PSN-sequence-error NAK for
/// the whole gap. Nothing executes, nothing is read or written, and the
/// peer's real SEND then completes.
#[test]
fn psn_sweep_requests() {
    let conn = victim_conn();
    let (mut v, mut p) = connected_pair(QpConfig::new(Qpn::new(V)), &conn);
    let (mut mv, mut mp) = (memory(), memory());
    v.post_recv(recv_wr(1, RECV_VA, 64)).unwrap();
    let e = Psn::new(E);
    let psns = sweep(&[e.sub(1), e.add(1), e.sub(0x80_0000), e.add(0x7F_FFFF)]);
    let (mut naks, mut dropped, mut sent) = (0, 0, 0u64);
    for (i, q) in psns.iter().filter(|q| **q != e).enumerate() {
        let f = if i % 2 == 0 {
            conn.from_peer()
                .frame(Opcode::SendOnly, q.value(), Ext::default(), &[5; 8])
        } else {
            let ext = reth(TARGET_VA, TARGET, MTU);
            conn.from_peer()
                .frame(Opcode::ReadRequest, q.value(), ext, &[])
        };
        match v.handle_frame(t0(), &f, &mut mv) {
            Ok(()) => {}
            Err(RxDrop::DuplicateRead) => dropped += 1,
            Err(d) => panic!("{q:?}: {d:?}"),
        }
        sent += 1;
        for r in transmit_all(&mut v, t0(), &mv, 100)
            .iter()
            .map(|f| parse(f))
        {
            assert_eq!(r.bth.opcode, Opcode::Acknowledge, "{q:?}: only ACK/NAK");
            match r.ext.aeth.unwrap().syndrome {
                Syndrome::Ack => assert_eq!(r.bth.psn, e.sub(1)),
                Syndrome::Nak(NakCode::PsnSequenceError) => {
                    assert_eq!(r.bth.psn, e);
                    naks += 1;
                }
                other => panic!("{q:?}: {other:?}"),
            }
        }
    }
    assert!(sent > 32_000);
    assert_eq!(naks, 1, "one NAK per gap");
    assert!(dropped > 1000);
    let st = v.stats();
    assert_eq!(st.rx_duplicate + st.rx_out_of_sequence, sent);
    assert_eq!(st.rx_dup_read_unmatched, dropped);
    assert_eq!(v.state(), QpState::Rts);
    assert!(completions(&mut v).is_empty());
    assert_eq!(mv.reads.get(), 0, "no byte read");
    assert_canaries(&mv, &[]);
    // The peer's real SEND at the expected PSN.
    p.post_send(send_wr(9, SendOp::Send, SRC_VA, 24, SRC))
        .unwrap();
    exchange((&mut p, &mut mp), (&mut v, &mut mv), t0(), 100);
    let wc = completions(&mut p);
    assert_eq!((wc.len(), wc[0].status), (1, WcStatus::Success));
    let wc = completions(&mut v);
    assert_eq!((wc[0].wr_id, wc[0].byte_len), (1, 24));
    assert_canaries(&mv, &[(RECV, RECV_VA..RECV_VA + 24)]);
}

// ---------------------------------------------------------------------
// What a peer may do: READs

/// A READ is executed, then duplicates of it arrive: only those that ask
/// for a tail of that very READ (PSN, address, rkey and length in step)
/// are answered; a new address, rkey or length reads nothing.
#[test]
fn duplicate_read_with_new_address_rkey_or_length() {
    let mut v = Victim::new(victim_conn());
    // Another region the peer may read, for the new-rkey case.
    v.mem
        .add(0x400, TARGET_VA, vec![0x55; REGION], &[Access::RemoteRead]);
    let len = 4 * MTU;
    let f = v.request(Opcode::ReadRequest, E, reth(TARGET_VA, TARGET, len), &[]);
    v.inject(&f).unwrap();
    let out = v.out();
    assert_eq!(out.len(), 4);
    let reads = v.mem.reads.get();
    let peer = v.peer;
    let dup = |psn: u32, va: u64, rkey: u32, len: u32| {
        peer.frame(Opcode::ReadRequest, psn, reth(va, rkey, len), &[])
    };
    let refused = [
        ("new address", dup(E, TARGET_VA + 8, TARGET, len)),
        (
            "new address, tail",
            dup(E + 2, TARGET_VA + 8, TARGET, 2 * MTU),
        ),
        ("new rkey", dup(E, TARGET_VA, 0x400, len)),
        ("longer", dup(E, TARGET_VA, TARGET, len + 1)),
        ("shorter", dup(E, TARGET_VA, TARGET, len - 1)),
        (
            "tail, whole length",
            dup(E + 1, TARGET_VA + 256, TARGET, len),
        ),
        ("before the READ", dup(E - 1, TARGET_VA, TARGET, len)),
    ];
    for (i, (what, f)) in refused.iter().enumerate() {
        assert_eq!(v.inject(f), Err(RxDrop::DuplicateRead), "{what}");
        assert!(v.out().is_empty(), "{what}");
        assert_eq!(v.qp.stats().rx_dup_read_unmatched, i as u64 + 1);
    }
    assert_eq!(v.mem.reads.get(), reads, "nothing read");
    // The same READ, and its tail from the third response.
    v.inject(&dup(E, TARGET_VA, TARGET, len)).unwrap();
    let again = v.out();
    assert_eq!(again.len(), 4);
    assert_eq!(again[0].bth.psn, Psn::new(E));
    v.inject(&dup(E + 2, TARGET_VA + 512, TARGET, 2 * MTU))
        .unwrap();
    let tail: Vec<_> = v.out().iter().map(|r| r.bth.psn.value()).collect();
    assert_eq!(tail, [E + 2, E + 3]);
    assert_eq!(v.qp.state(), QpState::Rts);
}

/// RETH lengths above 2^31: NAK invalid request, nothing read; exactly
/// 2^31 is a READ like any other.
#[test]
fn read_longer_than_2_31() {
    for (len, ok) in [
        (1u32 << 31, true),
        ((1 << 31) + 1, false),
        (u32::MAX, false),
    ] {
        let mut v = Victim::new(victim_conn());
        let mut big = omx_engine::testing::SparseMemory::default();
        big.add(TARGET, TARGET_VA, 1 << 32, &[Access::RemoteRead]);
        let f = v.request(Opcode::ReadRequest, E, reth(TARGET_VA, TARGET, len), &[]);
        v.qp.handle_frame(v.now, &f, &mut big).unwrap();
        let out: Vec<_> = transmit_all(&mut v.qp, v.now, &big, 300)
            .iter()
            .map(|f| parse(f))
            .collect();
        if ok {
            assert_eq!(out.len(), READ_BURST as usize, "{len:#x}");
            assert_eq!(v.qp.state(), QpState::Rts);
        } else {
            assert_eq!(
                syndromes(&out),
                [(E, nak(NakCode::InvalidRequest))],
                "{len:#x}"
            );
            assert_eq!(big.bytes_read.get(), 0);
            assert_eq!(v.qp.stats().rx_too_large, 1);
            assert_eq!(v.qp.state(), QpState::Err);
            assert_eq!(v.qp.poll_event().unwrap().kind, QpEventKind::ReqErr);
        }
    }
    // A WRITE announcing more than 2^31 bytes: the same.
    let mut v = Victim::new(victim_conn());
    let ext = reth(TARGET_VA, TARGET, (1 << 31) + MTU);
    let f = v.request(Opcode::WriteFirst, E, ext, &[1; MTU as usize]);
    v.inject(&f).unwrap();
    assert_eq!(syndromes(&v.out()), [(E, nak(NakCode::InvalidRequest))]);
    assert_canaries(&v.mem, &[]);
}

// ---------------------------------------------------------------------
// What a peer may do: QP access flags, max_dest_rd_atomic

/// A requester and a victim responder connected to each other.
struct Pair {
    a: RcQp,
    ma: FakeMemory,
    b: RcQp,
    mb: FakeMemory,
}

impl Pair {
    /// `b` is the victim, connected as `victim` says (its peer `a` as
    /// the mirror image).
    fn new(victim: Conn) -> Self {
        let cfg = QpConfig::new(Qpn::new(0));
        Pair {
            a: rts_qp(cfg, &victim.peer()),
            ma: memory(),
            b: rts_qp(cfg, &victim),
            mb: memory(),
        }
    }

    fn run(&mut self) {
        exchange(
            (&mut self.a, &mut self.ma),
            (&mut self.b, &mut self.mb),
            t0(),
            1000,
        );
    }

    /// Posts `op` of `len` bytes at `a`, runs, returns `a`'s statuses.
    fn one(&mut self, op: SendOp, len: u32) -> Vec<WcStatus> {
        let lkey = if matches!(op, SendOp::RdmaRead { .. }) {
            TARGET
        } else {
            SRC
        };
        let addr = if lkey == TARGET { TARGET_VA } else { SRC_VA };
        self.a.post_send(send_wr(1, op, addr, len, lkey)).unwrap();
        self.run();
        completions(&mut self.a).iter().map(|c| c.status).collect()
    }
}

fn write(imm: bool) -> SendOp {
    if imm {
        SendOp::RdmaWriteWithImm {
            remote_addr: TARGET_VA,
            rkey: TARGET,
            imm: 7,
        }
    } else {
        SendOp::RdmaWrite {
            remote_addr: TARGET_VA,
            rkey: TARGET,
        }
    }
}

const READ: SendOp = SendOp::RdmaRead {
    remote_addr: TARGET_VA,
    rkey: TARGET,
};

/// WRITE (multi-packet, zero-length, with immediate) without
/// REMOTE_WRITE and READ without REMOTE_READ on the victim's QP, though
/// its MR allows both: NAK invalid request, IBV_WC_REM_INV_REQ_ERR at the
/// peer, the victim in ERROR with a request-error event, no byte written
/// or read. With the right, the same requests succeed.
#[test]
fn write_and_read_without_qp_access_rights() {
    let cases: [(&str, SendOp, u32, u32); 5] = [
        ("write", write(false), 3 * MTU, access::REMOTE_READ),
        ("write 0", write(false), 0, access::REMOTE_READ),
        ("write imm", write(true), 100, access::REMOTE_READ),
        ("read", READ, 2 * MTU, access::REMOTE_WRITE),
        ("read 0", READ, 0, access::REMOTE_WRITE | access::MW_BIND),
    ];
    for (what, op, len, flags) in cases {
        let conn = Conn {
            access_flags: flags,
            ..victim_conn()
        };
        let mut p = Pair::new(conn);
        p.b.post_recv(recv_wr(1, RECV_VA, 64)).unwrap();
        assert_eq!(p.one(op, len), [WcStatus::RemInvReqErr], "{what}");
        assert_eq!(p.b.state(), QpState::Err, "{what}");
        assert_eq!(p.b.stats().rx_qp_access_denied, 1, "{what}");
        assert_eq!(p.b.poll_event().unwrap().kind, QpEventKind::ReqErr);
        assert_eq!(p.mb.reads.get(), 0, "{what}");
        assert_canaries(&p.mb, &[]);
        assert_canaries(&p.ma, &[]);
        // Control: with every right the same request succeeds.
        let mut p = Pair::new(victim_conn());
        p.b.post_recv(recv_wr(1, RECV_VA, 64)).unwrap();
        assert_eq!(p.one(op, len), [WcStatus::Success], "{what}");
    }
}

/// Access revoked between two packets of one WRITE (RTS → RTS with new
/// access flags): the rest of the message is refused.
#[test]
fn write_access_revoked_mid_message() {
    let mut p = Pair::new(victim_conn());
    p.a.post_send(send_wr(1, write(false), SRC_VA, 4 * MTU, SRC))
        .unwrap();
    let frames = transmit_all(&mut p.a, t0(), &p.ma, 100);
    assert_eq!(frames.len(), 4);
    p.b.handle_frame(t0(), &frames[0], &mut p.mb).unwrap();
    p.b.modify(&QpAttr {
        access_flags: Some(access::REMOTE_READ),
        ..QpAttr::default()
    })
    .unwrap();
    for f in &frames[1..] {
        let _ = p.b.handle_frame(t0(), f, &mut p.mb);
    }
    p.run();
    let st: Vec<_> = completions(&mut p.a).iter().map(|c| c.status).collect();
    assert_eq!(st, [WcStatus::RemInvReqErr]);
    assert_canaries(&p.mb, &[(TARGET, TARGET_VA..TARGET_VA + u64::from(MTU))]);
}

/// Atomics without REMOTE_ATOMIC on the QP: invalid request, counted as
/// a refusal of the QP's rights, nothing touched.
#[test]
fn atomic_without_qp_access_right() {
    let mut v = Victim::new(Conn {
        access_flags: access::REMOTE_READ | access::REMOTE_WRITE,
        ..victim_conn()
    });
    let ext = Ext {
        atomic: Some(omx_wire::AtomicEth {
            va: TARGET_VA,
            rkey: TARGET,
            swap_add: 1,
            compare: 0,
        }),
        ..Ext::default()
    };
    let f = v.request(Opcode::FetchAdd, E, ext, &[]);
    v.inject(&f).unwrap();
    assert_eq!(syndromes(&v.out()), [(E, nak(NakCode::InvalidRequest))]);
    assert_eq!(v.qp.stats().rx_qp_access_denied, 1);
    assert_canaries(&v.mem, &[]);
}

/// max_dest_rd_atomic 0 is a legal setting that refuses every READ.
#[test]
fn max_dest_rd_atomic_zero_refuses_reads() {
    let mut p = Pair::new(Conn {
        max_dest_rd_atomic: 0,
        ..victim_conn()
    });
    assert_eq!(p.one(READ, MTU), [WcStatus::RemInvReqErr]);
    assert_eq!(p.b.stats().rx_rd_atomic_exceeded, 1);
    assert_eq!(p.b.poll_event().unwrap().kind, QpEventKind::ReqErr);
    assert_eq!(p.mb.reads.get(), 0);
    let mut p = Pair::new(Conn {
        max_dest_rd_atomic: 1,
        ..victim_conn()
    });
    assert_eq!(p.one(READ, MTU), [WcStatus::Success]);
}

// ---------------------------------------------------------------------
// Memory that goes away or faults

/// The MR is deregistered after three packets of an eight-packet WRITE:
/// the fourth gets NAK remote access error, the peer
/// IBV_WC_REM_ACCESS_ERR, the victim an access-error event, and no byte
/// is written after the removal.
#[test]
fn dereg_during_a_multi_packet_write() {
    let mut p = Pair::new(victim_conn());
    p.a.post_send(send_wr(1, write(false), SRC_VA, 8 * MTU, SRC))
        .unwrap();
    let frames = transmit_all(&mut p.a, t0(), &p.ma, 100);
    assert_eq!(frames.len(), 8);
    for f in &frames[..3] {
        p.b.handle_frame(t0(), f, &mut p.mb).unwrap();
    }
    let mark = p.mb.writes.len();
    let removed = p.mb.remove(TARGET).unwrap();
    for f in &frames[3..] {
        let _ = p.b.handle_frame(t0(), f, &mut p.mb);
    }
    assert_eq!(p.mb.writes_since(mark, TARGET), 0);
    let naks = transmit_all(&mut p.b, t0(), &p.mb, 100);
    let out: Vec<_> = naks.iter().map(|f| parse(f)).collect();
    let bad = Psn::new(E).add(3).value();
    assert_eq!(syndromes(&out), [(bad, nak(NakCode::RemoteAccessError))]);
    for f in &naks {
        p.a.handle_frame(t0(), f, &mut p.ma).unwrap();
    }
    let st: Vec<_> = completions(&mut p.a).iter().map(|c| c.status).collect();
    assert_eq!(st, [WcStatus::RemAccessErr]);
    assert_eq!(p.b.poll_event().unwrap().kind, QpEventKind::AccessErr);
    // Three packets landed, nothing after them.
    let written = 3 * MTU as usize;
    assert_eq!(
        removed.data[..written],
        p.ma.region(SRC).unwrap().data[..written]
    );
    assert!(removed.data[written..].iter().all(|b| *b == CANARY));
    assert_canaries(&p.mb, &[]);
}

/// A WRITE into a registered range whose memory faults (the application
/// unmapped it): NAK remote access error and an access-error event, not
/// a crash; the packets before the fault landed, nothing after. A READ
/// from it: the same.
#[test]
fn write_and_read_through_a_faulting_range() {
    let fault = TARGET_VA + 2 * u64::from(MTU)..TARGET_VA + 3 * u64::from(MTU);
    let mut p = Pair::new(victim_conn());
    p.mb.set_fault(TARGET, fault.clone());
    let st = p.one(write(false), 8 * MTU);
    assert_eq!(st, [WcStatus::RemAccessErr]);
    assert_eq!(p.b.poll_event().unwrap().kind, QpEventKind::AccessErr);
    assert_eq!(p.b.state(), QpState::Err);
    assert_canaries(&p.mb, &[(TARGET, TARGET_VA..fault.start)]);
    let mut p = Pair::new(victim_conn());
    p.mb.set_fault(TARGET, fault);
    assert_eq!(p.one(READ, 8 * MTU), [WcStatus::RemAccessErr]);
    assert_eq!(p.b.poll_event().unwrap().kind, QpEventKind::AccessErr);
    // Only the responses before the fault were placed at the requester.
    assert_canaries(
        &p.ma,
        &[(TARGET, TARGET_VA..TARGET_VA + 2 * u64::from(MTU))],
    );
}
