//! Request/answer traffic in both directions: ACKs ride on the answers
//! (PAETH, interactive mode, docs/wire.md §10.1), and under loss,
//! reordering, duplication and corruption every message still arrives
//! exactly once, in order, with its bytes.

mod sim;

use omx_engine::*;
use omx_wire::{Frame, Opcode};
use proptest::prelude::*;
use sim::*;

const SRC: u32 = 1;
const DST: u32 = 2;
const SLOT: u64 = 16 * 1024;

struct Game {
    net: Net,
    a_data: Vec<u8>,
    b_data: Vec<u8>,
}

fn game(p: Params, seed: u64, rounds: usize) -> Game {
    let mut net = Net::new(p, seed);
    let n = rounds as u64 * SLOT;
    let a_data = net.rng.bytes(n as usize);
    let b_data = net.rng.bytes(n as usize);
    net.a.add_region(SRC, 0, a_data.clone());
    net.b.add_region(SRC, 0, b_data.clone());
    net.a.add_region(DST, 0, vec![0; n as usize]);
    net.b.add_region(DST, 0, vec![0; n as usize]);
    for i in 0..rounds as u64 {
        let r = recv_wr(i, i * SLOT, SLOT as u32, DST);
        net.a.qp.post_recv(r).unwrap();
        net.b.qp.post_recv(r).unwrap();
    }
    Game {
        net,
        a_data,
        b_data,
    }
}

/// A sends message 0; whoever receives message `i` answers with message
/// `i + 1` as soon as its receive completion appears (SEND or RDMA WRITE
/// with immediate, by `write`). Returns false if a round did not finish.
fn play(g: &mut Game, lens: &[u32], write: bool, limit: Duration) -> bool {
    for (i, &len) in lens.iter().enumerate() {
        let from_a = i % 2 == 0;
        let base = i as u64 / 2 * SLOT;
        let op = if write {
            SendOp::RdmaWriteWithImm {
                remote_addr: base,
                rkey: DST,
                imm: i as u32,
            }
        } else {
            SendOp::SendWithImm(i as u32)
        };
        let node = if from_a { &mut g.net.a } else { &mut g.net.b };
        node.qp
            .post_send(send_wr(i as u64, op, base, len, SRC))
            .unwrap();
        let want = i / 2 + 1;
        let ok = g.net.run_until(limit, |n| {
            let to = if from_a { &n.b } else { &n.a };
            to.recv_wcs().len() >= want || to.qp.state() == QpState::Err
        });
        if !ok {
            return false;
        }
    }
    finish(g, lens.len(), limit)
}

/// Runs until every one of `n` messages' send WR completed.
fn finish(g: &mut Game, n: usize, limit: Duration) -> bool {
    let (na, nb) = (n.div_ceil(2), n / 2);
    g.net.run_until(limit, |n| {
        n.a.send_wcs().len() >= na && n.b.send_wcs().len() >= nb
    })
}

fn check(g: &Game, lens: &[u32], write: bool) -> Result<(), TestCaseError> {
    for (from_a, sender, receiver, data) in [
        (true, &g.net.a, &g.net.b, &g.a_data),
        (false, &g.net.b, &g.net.a, &g.b_data),
    ] {
        let mine: Vec<(usize, u32)> = lens
            .iter()
            .copied()
            .enumerate()
            .filter(|(i, _)| (i % 2 == 0) == from_a)
            .collect();
        let s = sender.send_wcs();
        prop_assert_eq!(s.len(), mine.len());
        let r = receiver.recv_wcs();
        prop_assert_eq!(r.len(), mine.len());
        for (k, &(i, len)) in mine.iter().enumerate() {
            prop_assert_eq!(s[k].wr_id, i as u64);
            prop_assert_eq!(s[k].status, WcStatus::Success);
            prop_assert_eq!(r[k].status, WcStatus::Success);
            prop_assert_eq!(r[k].byte_len, len);
            prop_assert_eq!(r[k].imm, Some(i as u32));
            let base = (i / 2) as u64 * SLOT;
            let got = &receiver.mem.region(DST).unwrap().data;
            let (lo, hi) = (base as usize, base as usize + len as usize);
            prop_assert_eq!(&got[lo..hi], &data[lo..hi], "message {} ({})", i, write);
        }
    }
    Ok(())
}

fn count(frames: &[(bool, Vec<u8>)], to_b: bool, what: impl Fn(&Frame<&[u8]>) -> bool) -> usize {
    frames
        .iter()
        .filter(|(ab, f)| *ab == to_b && Frame::new_checked(&f[..]).is_ok_and(|f| what(&f)))
        .count()
}

#[test]
fn answers_carry_the_acks() {
    for (write, len) in [(false, 8), (true, 8), (false, 3000), (true, 3000)] {
        let rounds = 20;
        let lens = vec![len; rounds];
        let mut g = game(Params::default(), 7, rounds);
        g.net.capture = Some(Vec::new());
        assert!(play(&mut g, &lens, write, Duration::from_millis(50)));
        // The last message's ACK is held, then sent alone when the hold
        // expires (nobody answers it).
        g.net.run(Duration::from_millis(5));
        check(&g, &lens, write).unwrap();
        let frames = g.net.capture.take().unwrap();
        let acks = |to_b| count(&frames, to_b, |f| f.opcode() == Opcode::Acknowledge);
        let piggy = |to_b| count(&frames, to_b, |f| f.piggy_ack());
        // B acknowledges message 0 alone (nothing says yet that A
        // answers), A likewise message 1; from then on answers carry every
        // ACK: B's messages 3..19, A's 4..18. Message 19's ACK waits out
        // the hold, then goes alone. Once a QP has acknowledged anything,
        // each of its requests repeats the cumulative ACK (B's message 1,
        // A's message 2), but only the ones that acknowledge something new
        // count as piggybacked ACKs.
        assert_eq!(acks(false), 1, "B's lone ACKs (write {write})");
        assert_eq!(acks(true), 2, "A's lone ACKs (write {write})");
        assert_eq!(piggy(false), rounds / 2);
        assert_eq!(piggy(true), rounds / 2 - 1);
        assert_eq!(g.net.b.qp.stats().tx_piggy_acks, (rounds / 2 - 1) as u64);
        assert_eq!(g.net.a.qp.stats().rx_piggy_acks, (rounds / 2) as u64);
        assert_eq!(g.net.a.qp.stats().tx_piggy_acks, (rounds / 2 - 2) as u64);
        // Only the last packet of a message carries it, so the peer
        // learns in one frame that its request completed and that the
        // answer arrived.
        assert!(frames
            .iter()
            .filter_map(|(_, f)| Frame::new_checked(&f[..]).ok())
            .filter(|f| f.piggy_ack())
            .all(|f| f.opcode().position().is_last()));
        assert_eq!(g.net.a.qp.stats().tx_retransmits, 0);
        assert_eq!(g.net.b.qp.stats().tx_retransmits, 0);
    }
}

#[test]
fn retransmissions_repeat_the_ack() {
    // A's answer (message 4) carries the ACK of B's message 3 and is lost.
    // Its retransmission carries the cumulative ACK again, as every later
    // request of A does: an ACK must not be lost with the packet it rode
    // on. (At the end of ibv_rc_pingpong the peer, its last exchange
    // complete, destroys its QP and no longer answers a retransmission of
    // the request that ACK covered: that request failed with
    // RETRY_EXC_ERR under netem loss.)
    let lens = [8u32; 5];
    let mut g = game(Params::default(), 5, lens.len());
    g.net.capture = Some(Vec::new());
    // A→B frames: message 0, the lone ACK of message 1, message 2, then
    // message 4.
    g.net.drop_ab = vec![3];
    assert!(play(&mut g, &lens, false, Duration::from_millis(2_000)));
    g.net.run(Duration::from_millis(50));
    check(&g, &lens, false).unwrap();
    let frames = g.net.capture.take().unwrap();
    let requests: Vec<Frame<&[u8]>> = frames
        .iter()
        .filter(|(to_b, _)| *to_b)
        .filter_map(|(_, f)| Frame::new_checked(&f[..]).ok())
        .filter(|f| f.opcode().is_request())
        .collect();
    assert!(g.net.a.qp.stats().tx_retransmits >= 1);
    // Messages 0, 2, 4 and at least one retransmission of 4.
    assert!(requests.len() >= 4, "{} requests", requests.len());
    assert!(!requests[0].piggy_ack(), "nothing to acknowledge yet");
    for (i, f) in requests.iter().enumerate().skip(1) {
        assert!(f.piggy_ack(), "A's request frame {i} carries no ACK");
    }
}

/// Three exchanges, then B sends message 3, which A receives and does
/// not answer: A holds the ACK of B's last message.
fn a_owes_the_last_ack() -> Game {
    let lens = [8u32; 4];
    let mut g = game(Params::default(), 11, lens.len());
    assert!(play(&mut g, &lens[..3], false, Duration::from_millis(50)));
    g.net
        .b
        .qp
        .post_send(send_wr(3, SendOp::SendWithImm(3), SLOT, 8, SRC))
        .unwrap();
    assert!(g
        .net
        .run_until(Duration::from_millis(5), |n| n.a.recv_wcs().len() == 2));
    g
}

/// A's application destroys its QP (destroy_qp moves it to ERROR first).
fn destroy_a(g: &mut Game) {
    g.net
        .a
        .qp
        .modify(&QpAttr {
            state: Some(QpState::Err),
            ..QpAttr::default()
        })
        .unwrap();
}

#[test]
fn a_held_ack_leaves_when_the_qp_is_destroyed() {
    // B's last message (3) is answered by nobody: A holds its ACK. The
    // application then destroys A's QP (modify to ERROR first, as
    // destroy_qp does): the ACK goes at once, and B's WR succeeds instead
    // of timing out.
    let mut g = a_owes_the_last_ack();
    let t0 = g.net.now;
    assert!(g.net.a.qp.stats().tx_acks < 2);
    destroy_a(&mut g);
    assert!(g
        .net
        .run_until(Duration::from_millis(50), |n| n.b.send_wcs().len() == 2));
    assert_eq!(g.net.b.send_wcs()[1].status, WcStatus::Success);
    let took = g.net.now.saturating_duration_since(t0);
    assert!(took.as_nanos() < 50_000, "{took:?}");
}

#[test]
fn the_last_ack_of_a_destroyed_qp_survives_a_loss() {
    // As above, but the first copy of A's last ACK is lost. A's QP is gone
    // and answers no retransmission of B's message, so without more
    // copies B's WR would fail with RETRY_EXC_ERR (the end of
    // ibv_rc_pingpong under netem loss).
    let mut g = a_owes_the_last_ack();
    let acks_before = g.net.a.qp.stats().tx_acks;
    g.net.drop_ab = vec![g.net.sent_ab];
    destroy_a(&mut g);
    assert!(g
        .net
        .run_until(Duration::from_millis(50), |n| n.b.send_wcs().len() == 2));
    assert_eq!(g.net.b.send_wcs()[1].status, WcStatus::Success);
    assert_eq!(g.net.b.qp.stats().tx_retransmits, 0);
    assert_eq!(g.net.a.qp.stats().tx_acks - acks_before, 3, "three copies");
    // A QP that never received anything has nothing to say.
    let mut h = game(Params::default(), 12, 1);
    destroy_a(&mut h);
    h.net.run(Duration::from_millis(5));
    assert_eq!(h.net.a.qp.stats().tx_acks, 0);
}

#[test]
fn one_way_traffic_is_acked_at_once() {
    // A answers nothing: B never holds an ACK, so every WRITE completes
    // one round trip after it left, not after a hold.
    let mut g = game(Params::default(), 3, 4);
    for i in 0..4u64 {
        let t0 = g.net.now;
        g.net
            .a
            .qp
            .post_send(send_wr(
                i,
                SendOp::RdmaWrite {
                    remote_addr: i * SLOT,
                    rkey: DST,
                },
                i * SLOT,
                100,
                SRC,
            ))
            .unwrap();
        assert!(g
            .net
            .run_until(Duration::from_millis(5), |n| n.a.send_wcs().len() as u64
                > i));
        let took = g.net.now.saturating_duration_since(t0);
        assert!(took.as_nanos() < 100_000, "{took:?}");
    }
    assert_eq!(g.net.b.qp.stats().tx_piggy_acks, 0);
    assert_eq!(g.net.b.qp.stats().tx_acks, 4);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Ping-pong of random sizes over a faulty network: every message
    /// exactly once, in order, with its bytes; every WR succeeds.
    #[test]
    fn pingpong_under_faults(
        lens in proptest::collection::vec(prop_oneof![1u32..64, 64u32..SLOT as u32], 2..16),
        write in any::<bool>(),
        loss in 0.0f64..0.2,
        dup in 0.0f64..0.1,
        reorder in 0.0f64..0.3,
        corrupt in 0.0f64..0.05,
        seed in any::<u64>(),
    ) {
        let p = Params { retry_cnt: 7, rnr_retry: 7, ..Params::default() };
        let mut g = game(p, seed, lens.len());
        g.net.set_faults(Faults {
            loss,
            dup,
            reorder,
            reorder_delay: Duration::from_micros(30),
            corrupt,
        });
        let done = play(&mut g, &lens, write, Duration::from_millis(2_000));
        prop_assert!(done, "{:?} / {:?}", g.net.a.qp.stats(), g.net.b.qp.stats());
        g.net.run(Duration::from_millis(20));
        check(&g, &lens, write)?;
    }
}
