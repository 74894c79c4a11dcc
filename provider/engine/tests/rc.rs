//! Scenario tests of the RC engine on the simulated network.

mod sim;

use omx_engine::testing::Crafter;
use omx_engine::*;
use omx_wire::{Frame, Opcode, Psn};
use sim::*;

const SRC: u64 = 0x10_0000;
const DST: u64 = 0x20_0000;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A with a source region (key 1, random data), B with a receive region
/// (key 2, zeros).
fn setup(p: Params, seed: u64, len: usize) -> (Net, Vec<u8>) {
    let mut net = Net::new(p, seed);
    let data = net.rng.bytes(len);
    net.a.add_region(1, SRC, data.clone());
    net.b.add_region(2, DST, vec![0; len + 64]);
    (net, data)
}

fn all_done(n: usize) -> impl FnMut(&Net) -> bool {
    move |net| net.a.send_wcs().len() >= n
}

#[test]
fn send_recv_basic() {
    let (mut net, data) = setup(Params::default(), 1, 3000);
    net.b.qp.post_recv(recv_wr(7, DST, 3064, 2)).unwrap();
    net.a
        .qp
        .post_send(send_wr(1, SendOp::SendWithImm(0xdead_beef), SRC, 3000, 1))
        .unwrap();
    assert!(net.run_until(ms(10), all_done(1)));
    net.run(ms(1));
    let s = net.a.send_wcs();
    assert_eq!(s[0].status, WcStatus::Success);
    assert_eq!(s[0].wr_id, 1);
    assert_eq!(s[0].opcode, WcOpcode::Send);
    let r = net.b.recv_wcs();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].wr_id, 7);
    assert_eq!(r[0].byte_len, 3000);
    assert_eq!(r[0].imm, Some(0xdead_beef));
    assert_eq!(r[0].src_qp.value(), QPN_A);
    assert_eq!(&net.b.mem.region(2).unwrap().data[..3000], &data[..]);
}

#[test]
fn segmentation_by_path_mtu() {
    for mtu in [
        PathMtu::Mtu256,
        PathMtu::Mtu512,
        PathMtu::Mtu1024,
        PathMtu::Mtu2048,
        PathMtu::Mtu4096,
    ] {
        let m = mtu.bytes() as usize;
        let len = 3 * m + 5;
        let p = Params {
            mtu,
            ..Params::default()
        };
        let (mut net, data) = setup(p, 2, len);
        net.capture = Some(Vec::new());
        net.b.qp.post_recv(recv_wr(1, DST, len as u32, 2)).unwrap();
        net.a
            .qp
            .post_send(send_wr(1, SendOp::Send, SRC, len as u32, 1))
            .unwrap();
        assert!(net.run_until(ms(10), all_done(1)));
        let frames: Vec<_> = net
            .capture
            .take()
            .unwrap()
            .into_iter()
            .filter(|(ab, _)| *ab)
            .map(|(_, f)| f)
            .collect();
        let kinds: Vec<_> = frames.iter().map(|f| opcode_of(f)).collect();
        assert_eq!(
            kinds,
            [
                Opcode::SendFirst,
                Opcode::SendMiddle,
                Opcode::SendMiddle,
                Opcode::SendLast
            ],
            "mtu {m}"
        );
        let lens: Vec<_> = frames
            .iter()
            .map(|f| Frame::new_checked(&f[..]).unwrap().pay_len())
            .collect();
        assert_eq!(lens, [m, m, m, 5]);
        assert!(frames.iter().all(|f| f.len() <= omx_wire::max_frame_len(m)));
        let psns: Vec<_> = frames
            .iter()
            .map(|f| Frame::new_checked(&f[..]).unwrap().psn().value())
            .collect();
        assert_eq!(psns, [100, 101, 102, 103]);
        assert_eq!(net.a.send_wcs()[0].status, WcStatus::Success);
        assert_eq!(&net.b.mem.region(2).unwrap().data[..len], &data[..]);
    }
}

#[test]
fn rdma_write_with_imm_and_read() {
    let (mut net, data) = setup(Params::default(), 3, 10_000);
    let remote = net.rng.bytes(7_000);
    net.b.add_region(3, 0x40_0000, vec![0; 10_000]);
    net.b.add_region(4, 0x60_0000, remote.clone());
    net.a.add_region(5, 0x80_0000, vec![0; 7_000]);
    net.b.qp.post_recv(recv_wr(9, DST, 0, 2)).unwrap();
    let w = SendOp::RdmaWriteWithImm {
        remote_addr: 0x40_0000,
        rkey: 3,
        imm: 77,
    };
    net.a.qp.post_send(send_wr(1, w, SRC, 10_000, 1)).unwrap();
    let r = SendOp::RdmaRead {
        remote_addr: 0x60_0000,
        rkey: 4,
    };
    net.a
        .qp
        .post_send(send_wr(2, r, 0x80_0000, 7_000, 5))
        .unwrap();
    assert!(net.run_until(ms(10), all_done(2)));
    let s = net.a.send_wcs();
    assert_eq!(
        (s[0].wr_id, s[0].status, s[0].opcode),
        (1, WcStatus::Success, WcOpcode::RdmaWrite)
    );
    assert_eq!(
        (s[1].wr_id, s[1].status, s[1].opcode),
        (2, WcStatus::Success, WcOpcode::RdmaRead)
    );
    assert_eq!(net.b.mem.region(3).unwrap().data, data);
    assert_eq!(net.a.mem.region(5).unwrap().data, remote);
    net.run(ms(1));
    let rw = net.b.recv_wcs();
    assert_eq!(rw.len(), 1);
    assert_eq!(rw[0].opcode, WcOpcode::RecvRdmaWithImm);
    assert_eq!(rw[0].imm, Some(77));
    assert_eq!(rw[0].byte_len, 10_000);
}

#[test]
fn zero_length_operations() {
    let (mut net, _) = setup(Params::default(), 4, 16);
    net.b.qp.post_recv(recv_wr(1, DST, 0, 2)).unwrap();
    net.a
        .qp
        .post_send(send_wr(1, SendOp::Send, SRC, 0, 1))
        .unwrap();
    let w = SendOp::RdmaWrite {
        remote_addr: 0,
        rkey: 0xbad,
    };
    net.a.qp.post_send(send_wr(2, w, SRC, 0, 1)).unwrap();
    let r = SendOp::RdmaRead {
        remote_addr: 0,
        rkey: 0xbad,
    };
    net.a.qp.post_send(send_wr(3, r, SRC, 0, 1)).unwrap();
    assert!(net.run_until(ms(10), all_done(3)));
    assert!(net
        .a
        .send_wcs()
        .iter()
        .all(|c| c.status == WcStatus::Success));
    assert_eq!(net.b.recv_wcs()[0].byte_len, 0);
}

#[test]
fn psn_wraparound() {
    let p = Params {
        mtu: PathMtu::Mtu256,
        psn_a: 0xFF_FFF0,
        psn_b: 0xFF_FFFE,
        ..Params::default()
    };
    let len = 64 * 1024;
    let (mut net, data) = setup(p, 5, len);
    net.b.add_region(4, 0x60_0000, data.clone());
    net.a.add_region(5, 0x80_0000, vec![0; len]);
    net.capture = Some(Vec::new());
    net.b.qp.post_recv(recv_wr(1, DST, len as u32, 2)).unwrap();
    net.a
        .qp
        .post_send(send_wr(1, SendOp::Send, SRC, len as u32, 1))
        .unwrap();
    let r = SendOp::RdmaRead {
        remote_addr: 0x60_0000,
        rkey: 4,
    };
    net.a
        .qp
        .post_send(send_wr(2, r, 0x80_0000, len as u32, 5))
        .unwrap();
    // B also sends to A across its own wrap.
    net.a.add_region(6, 0x90_0000, vec![0; 4096]);
    net.a.qp.post_recv(recv_wr(1, 0x90_0000, 4096, 6)).unwrap();
    net.b
        .qp
        .post_send(send_wr(9, SendOp::Send, DST, 1000, 2))
        .unwrap();
    assert!(net.run_until(ms(20), |n| n.a.send_wcs().len() == 2
        && !n.b.send_wcs().is_empty()));
    assert!(net
        .a
        .send_wcs()
        .iter()
        .all(|c| c.status == WcStatus::Success));
    assert_eq!(net.b.send_wcs()[0].status, WcStatus::Success);
    assert_eq!(&net.b.mem.region(2).unwrap().data[..len], &data[..]);
    assert_eq!(net.a.mem.region(5).unwrap().data, data);
    let cap = net.capture.take().unwrap();
    let psns: Vec<u32> = cap
        .iter()
        .filter(|(ab, _)| *ab)
        .map(|(_, f)| Frame::new_checked(&f[..]).unwrap().psn().value())
        .collect();
    assert!(psns.contains(&0xFF_FFFF) && psns.contains(&0));
    // 256 SEND packets + READ requests covering 256 PSNs.
    assert_eq!(Psn::new(0xFF_FFF0).add(512), Psn::new(0x1F0));
}

#[test]
fn retry_exhausted_then_flush() {
    let p = Params {
        retry_cnt: 3,
        ..Params::default()
    };
    let (mut net, _) = setup(p, 6, 3000);
    net.ab.loss = 1.0;
    for i in 0..3 {
        net.b.qp.post_recv(recv_wr(i, DST, 3064, 2)).unwrap();
        net.a
            .qp
            .post_send(send_wr(i, SendOp::Send, SRC, 1000, 1))
            .unwrap();
    }
    // B's receive WRs stay posted; B is unaffected.
    assert!(net.run_until(ms(100), all_done(3)));
    let s = net.a.send_wcs();
    let st: Vec<_> = s.iter().map(|c| (c.wr_id, c.status)).collect();
    assert_eq!(
        st,
        [
            (0, WcStatus::RetryExcErr),
            (1, WcStatus::WrFlushErr),
            (2, WcStatus::WrFlushErr)
        ]
    );
    assert_eq!(net.a.qp.state(), QpState::Err);
    assert_eq!(net.a.qp.stats().timeouts, 4);
    // Posting in ERROR completes with a flush at once.
    net.a
        .qp
        .post_send(send_wr(9, SendOp::Send, SRC, 10, 1))
        .unwrap();
    let wc = net.a.qp.poll_completion().unwrap();
    assert_eq!((wc.wr_id, wc.status), (9, WcStatus::WrFlushErr));
    assert_eq!(net.b.qp.state(), QpState::Rts);
}

#[test]
fn retry_exhausted_takes_at_least_the_ibta_time() {
    // timeout 8 = 4.096 µs * 256 = 1.048576 ms; retry_cnt 2 → 3 expiries,
    // the timer doubling each time (docs/wire.md §10.2): T + 2T + 4T, each
    // plus up to a quarter at random, never less than IBTA's 3T.
    let p = Params {
        retry_cnt: 2,
        ..Params::default()
    };
    let (mut net, _) = setup(p, 7, 100);
    net.ab.loss = 1.0;
    let start = net.now;
    net.a
        .qp
        .post_send(send_wr(1, SendOp::Send, SRC, 100, 1))
        .unwrap();
    assert!(net.run_until(ms(100), all_done(1)));
    let took = net.now - start;
    assert!(took >= Duration::from_nanos(7 * 1_048_576), "{took:?}");
    assert!(
        took < Duration::from_nanos(7 * 1_048_576 * 5 / 4 + 100_000),
        "{took:?}"
    );
    let r = net.a.qp.gone_report().expect("why it gave up");
    assert!(r.silent_ns >= 7 * 1_048_576 && r.srtt_ns == 0, "{r:?}");
}

#[test]
fn rnr_retry_exhausted() {
    let p = Params {
        rnr_retry: 2,
        ..Params::default()
    };
    let (mut net, _) = setup(p, 8, 100);
    net.a
        .qp
        .post_send(send_wr(1, SendOp::Send, SRC, 100, 1))
        .unwrap();
    net.a
        .qp
        .post_send(send_wr(2, SendOp::Send, SRC, 100, 1))
        .unwrap();
    assert!(net.run_until(ms(100), all_done(2)));
    let st: Vec<_> = net.a.send_wcs().iter().map(|c| c.status).collect();
    assert_eq!(st, [WcStatus::RnrRetryExcErr, WcStatus::WrFlushErr]);
    assert_eq!(net.b.qp.stats().tx_rnr_naks, 3);
    assert_eq!(net.a.qp.stats().rx_rnr_naks, 3);
    assert_eq!(net.a.qp.state(), QpState::Err);
    // The responder is not in error: RNR is not fatal for it.
    assert_eq!(net.b.qp.state(), QpState::Rts);
}

#[test]
fn rnr_waits_the_encoded_timer() {
    let p = Params {
        rnr_retry: 1,
        min_rnr_timer: 14, // 1.28 ms
        ..Params::default()
    };
    let (mut net, _) = setup(p, 9, 100);
    let start = net.now;
    net.a
        .qp
        .post_send(send_wr(1, SendOp::Send, SRC, 100, 1))
        .unwrap();
    assert!(net.run_until(ms(100), all_done(1)));
    let took = net.now - start;
    assert!(took >= Duration::from_micros(1280), "{took:?}");
    assert!(took < Duration::from_micros(1400), "{took:?}");
    assert_eq!(net.a.send_wcs()[0].status, WcStatus::RnrRetryExcErr);
}

#[test]
fn rnr_retry_7_is_infinite() {
    let p = Params {
        rnr_retry: 7,
        ..Params::default()
    };
    let (mut net, data) = setup(p, 10, 5000);
    net.a
        .qp
        .post_send(send_wr(1, SendOp::Send, SRC, 5000, 1))
        .unwrap();
    net.run_until(ms(20), |_| false);
    assert!(net.a.send_wcs().is_empty());
    assert!(net.b.qp.stats().tx_rnr_naks > 100, "{:?}", net.b.qp.stats());
    assert_eq!(net.a.qp.state(), QpState::Rts);
    net.b.qp.post_recv(recv_wr(1, DST, 5000, 2)).unwrap();
    assert!(net.run_until(ms(10), all_done(1)));
    assert_eq!(net.a.send_wcs()[0].status, WcStatus::Success);
    assert_eq!(&net.b.mem.region(2).unwrap().data[..5000], &data[..]);
}

fn remote_error_case(op: SendOp, expect: WcStatus, expect_recv: WcStatus) {
    let (mut net, _) = setup(Params::default(), 11, 8192);
    net.b.mem.add(
        3,
        0x40_0000,
        vec![0; 4096],
        &[Access::RemoteWrite, Access::LocalWrite],
    );
    net.b.qp.post_recv(recv_wr(1, DST, 100, 2)).unwrap();
    net.a.qp.post_send(send_wr(1, op, SRC, 8192, 1)).unwrap();
    net.a
        .qp
        .post_send(send_wr(2, SendOp::Send, SRC, 10, 1))
        .unwrap();
    assert!(net.run_until(ms(10), all_done(2)));
    let st: Vec<_> = net.a.send_wcs().iter().map(|c| c.status).collect();
    assert_eq!(st, [expect, WcStatus::WrFlushErr], "{op:?}");
    assert_eq!(net.a.qp.state(), QpState::Err);
    net.run(ms(1));
    assert_eq!(net.b.qp.state(), QpState::Err);
    assert_eq!(net.b.qp.stats().tx_naks, 1);
    // B's receive WR is flushed (or failed with a length error).
    assert_eq!(net.b.recv_wcs()[0].status, expect_recv);
}

#[test]
fn remote_access_error_nak() {
    // Bad rkey.
    remote_error_case(
        SendOp::RdmaWrite {
            remote_addr: 0x40_0000,
            rkey: 99,
        },
        WcStatus::RemAccessErr,
        WcStatus::WrFlushErr,
    );
    // Beyond the MR (4096 bytes, write of 8192).
    remote_error_case(
        SendOp::RdmaWrite {
            remote_addr: 0x40_0000,
            rkey: 3,
        },
        WcStatus::RemAccessErr,
        WcStatus::WrFlushErr,
    );
    // MR without REMOTE_READ.
    remote_error_case(
        SendOp::RdmaRead {
            remote_addr: 0x40_0000,
            rkey: 3,
        },
        WcStatus::RemAccessErr,
        WcStatus::WrFlushErr,
    );
    // SEND longer than the receive WR (100 bytes): invalid request.
    remote_error_case(SendOp::Send, WcStatus::RemInvReqErr, WcStatus::LocLenErr);
}

#[test]
fn local_protection_error() {
    let (mut net, _) = setup(Params::default(), 12, 100);
    net.b.qp.post_recv(recv_wr(1, DST, 100, 2)).unwrap();
    net.a
        .qp
        .post_send(send_wr(1, SendOp::Send, SRC, 100, 77))
        .unwrap();
    net.a
        .qp
        .post_send(send_wr(2, SendOp::Send, SRC, 100, 1))
        .unwrap();
    assert!(net.run_until(ms(10), all_done(2)));
    let st: Vec<_> = net.a.send_wcs().iter().map(|c| c.status).collect();
    assert_eq!(st, [WcStatus::LocProtErr, WcStatus::WrFlushErr]);
}

#[test]
fn credit_flow_control_slow_receiver() {
    let p = Params {
        rx_window: 32,
        ..Params::default()
    };
    let len = 1 << 20;
    let (mut net, data) = setup(p, 13, len);
    // B drains one frame per 2 µs into a ring of exactly its window.
    net.b.rx_per_tick = 1;
    net.b.ring_cap = 32;
    net.tick = Duration::from_micros(2);
    for i in 0..4 {
        let off = (i * len / 4) as u64;
        net.b
            .qp
            .post_recv(recv_wr(i as u64, DST + off, (len / 4) as u32, 2))
            .unwrap();
        net.a
            .qp
            .post_send(send_wr(
                i as u64,
                SendOp::Send,
                SRC + off,
                (len / 4) as u32,
                1,
            ))
            .unwrap();
    }
    assert!(net.run_until(ms(100), all_done(4)));
    assert!(net
        .a
        .send_wcs()
        .iter()
        .all(|c| c.status == WcStatus::Success));
    assert_eq!(net.b.overruns, 0);
    assert!(net.b.max_ring_requests <= 32, "{}", net.b.max_ring_requests);
    assert!(net.b.max_ring_requests >= 16);
    assert_eq!(net.a.qp.stats().tx_retransmits, 0);
    assert!(net.a.qp.stats().tx_blocked_credits + net.a.qp.stats().tx_blocked_window > 0);
    assert_eq!(&net.b.mem.region(2).unwrap().data[..len], &data[..]);
}

#[test]
fn large_read_is_chunked_to_the_window() {
    let p = Params {
        rx_window: 16,
        ..Params::default()
    };
    let len = 200_000;
    let (mut net, data) = setup(p, 14, len);
    net.b.add_region(4, 0x60_0000, data.clone());
    net.a.add_region(5, 0x80_0000, vec![0; len]);
    net.a.rx_per_tick = 1;
    net.a.ring_cap = 16 + 4;
    let r = SendOp::RdmaRead {
        remote_addr: 0x60_0000,
        rkey: 4,
    };
    net.a
        .qp
        .post_send(send_wr(1, r, 0x80_0000, len as u32, 5))
        .unwrap();
    assert!(net.run_until(ms(100), all_done(1)));
    assert_eq!(net.a.send_wcs()[0].status, WcStatus::Success);
    assert_eq!(net.a.overruns, 0);
    assert_eq!(net.a.mem.region(5).unwrap().data, data);
}

#[test]
fn acks_are_coalesced() {
    let len = 512 * 1024;
    let (mut net, _) = setup(Params::default(), 15, len);
    net.capture = Some(Vec::new());
    net.b.qp.post_recv(recv_wr(1, DST, len as u32, 2)).unwrap();
    net.a
        .qp
        .post_send(send_wr(1, SendOp::Send, SRC, len as u32, 1))
        .unwrap();
    assert!(net.run_until(ms(100), all_done(1)));
    let cap = net.capture.take().unwrap();
    let data = cap.iter().filter(|(ab, _)| *ab).count();
    let acks = cap
        .iter()
        .filter(|(ab, f)| !*ab && opcode_of(f) == Opcode::Acknowledge)
        .count();
    assert_eq!(data, 512);
    assert!(acks * 8 <= data, "{acks} ACKs for {data} packets");
}

#[test]
fn corrupted_frames_are_dropped_and_counted() {
    let (mut net, data) = setup(Params::default(), 16, 20_000);
    net.set_faults(Faults {
        corrupt: 0.3,
        ..Faults::default()
    });
    net.b.qp.post_recv(recv_wr(1, DST, 20_000, 2)).unwrap();
    net.a
        .qp
        .post_send(send_wr(1, SendOp::Send, SRC, 20_000, 1))
        .unwrap();
    assert!(net.run_until(ms(200), all_done(1)));
    assert_eq!(net.a.send_wcs()[0].status, WcStatus::Success);
    assert_eq!(&net.b.mem.region(2).unwrap().data[..20_000], &data[..]);
    let bad = net.b.qp.stats().rx_bad_crc + net.a.qp.stats().rx_bad_crc;
    assert!(bad > 0);
}

#[test]
fn unsignaled_wrs_release_their_slots() {
    let p = Params {
        depth: 4,
        ..Params::default()
    };
    let (mut net, _) = setup(p, 17, 100);
    for round in 0..5u64 {
        for i in 0..4u64 {
            net.b.qp.post_recv(recv_wr(i, DST, 100, 2)).unwrap();
            let mut wr = send_wr(round * 4 + i, SendOp::Send, SRC, 10, 1);
            wr.signaled = i == 3;
            net.a.qp.post_send(wr).unwrap();
        }
        assert_eq!(
            net.a.qp.post_send(send_wr(99, SendOp::Send, SRC, 10, 1)),
            Err(PostError::Full)
        );
        assert!(net.run_until(ms(10), |n| n.a.send_wcs().len() as u64 == round + 1));
        net.run(ms(1));
    }
    let ids: Vec<_> = net.a.send_wcs().iter().map(|c| c.wr_id).collect();
    assert_eq!(ids, [3, 7, 11, 15, 19]);
}

#[test]
fn modify_follows_the_ibta_state_machine() {
    let mut qp = RcQp::new(QpConfig::new(omx_wire::Qpn::new(0x1001)));
    let [init, _, rts] = omx_engine::testing::Conn::new(0x1001, 0x2001).steps();
    let to = |s| QpAttr {
        state: Some(s),
        ..QpAttr::default()
    };
    assert!(matches!(
        qp.modify(&rts),
        Err(ModifyError::InvalidTransition { .. })
    ));
    assert_eq!(
        qp.post_send(send_wr(1, SendOp::Send, 0, 0, 0)),
        Err(PostError::InvalidState)
    );
    // RESET→INIT takes the access flags, port and P_Key index.
    assert!(matches!(
        qp.modify(&to(QpState::Init)),
        Err(ModifyError::InvalidMask { .. })
    ));
    qp.modify(&init).unwrap();
    assert_eq!(
        qp.modify(&to(QpState::Rtr)),
        Err(ModifyError::InvalidMask {
            from: QpState::Init,
            to: QpState::Rtr,
            mask: attr_mask::STATE
        })
    );
    let bad = QpAttr {
        access_flags: Some(access::REMOTE_READ | 64),
        ..QpAttr::default()
    };
    assert_eq!(qp.modify(&bad), Err(ModifyError::InvalidAttribute));
    // Posted in INIT, kept until RTS.
    qp.post_send(send_wr(1, SendOp::Send, 0, 0, 0)).unwrap();
    qp.modify(&to(QpState::Err)).unwrap();
    assert_eq!(qp.state(), QpState::Err);
    assert_eq!(qp.poll_completion().unwrap().status, WcStatus::WrFlushErr);
    assert!(qp.modify(&to(QpState::Rts)).is_err());
    qp.modify(&to(QpState::Reset)).unwrap();
    assert_eq!(qp.state(), QpState::Reset);
    let atomic = SendOp::AtomicFetchAdd {
        remote_addr: 0,
        rkey: 0,
        add: 1,
    };
    qp.modify(&init).unwrap();
    assert_eq!(
        qp.post_send(send_wr(1, atomic, 0, 4, 0)),
        Err(PostError::BadAtomicLength)
    );
    qp.post_send(send_wr(1, atomic, 0, 8, 0)).unwrap();
}

#[test]
fn garbage_frames_never_disturb_a_connected_qp() {
    let (mut net, data) = setup(Params::default(), 18, 3000);
    let mut rng = Rng::new(99);
    for i in 0..2000 {
        let n = rng.below(200) as usize;
        let mut f = rng.bytes(n);
        if n > 36 && i % 2 == 0 {
            f[12] = 0x86;
            f[13] = 0xdf;
            f[16] = 0x80 | (rng.below(0x18) as u8);
            f[17] = 1;
            f[19] = 0;
        }
        let _ = net.b.qp.handle_frame(net.now, &f, &mut net.b.mem);
    }
    net.b.qp.post_recv(recv_wr(1, DST, 3000, 2)).unwrap();
    net.a
        .qp
        .post_send(send_wr(1, SendOp::Send, SRC, 3000, 1))
        .unwrap();
    assert!(net.run_until(ms(10), all_done(1)));
    assert_eq!(net.a.send_wcs()[0].status, WcStatus::Success);
    assert_eq!(&net.b.mem.region(2).unwrap().data[..3000], &data[..]);
}

#[test]
fn lossy_reordering_duplicating_network() {
    for seed in 0..8 {
        let len = 30_000;
        let (mut net, data) = setup(Params::default(), 100 + seed, 8 * len);
        net.set_faults(Faults {
            loss: 0.2,
            dup: 0.1,
            reorder: 0.3,
            reorder_delay: Duration::from_micros(30),
            corrupt: 0.02,
        });
        for i in 0..8u64 {
            let off = i * len as u64;
            net.b
                .qp
                .post_recv(recv_wr(i, DST + off, len as u32, 2))
                .unwrap();
            net.a
                .qp
                .post_send(send_wr(i, SendOp::Send, SRC + off, len as u32, 1))
                .unwrap();
        }
        assert!(net.run_until(ms(1000), all_done(8)));
        let st = net.a.qp.stats();
        assert!(
            net.a
                .send_wcs()
                .iter()
                .all(|c| c.status == WcStatus::Success),
            "seed {seed}: {:?} {st:?}",
            net.a.send_wcs()
        );
        assert!(st.tx_retransmits > 0 && net.b.qp.stats().rx_duplicate > 0);
        assert_eq!(&net.b.mem.region(2).unwrap().data[..8 * len], &data[..]);
        let ids: Vec<_> = net.b.recv_wcs().iter().map(|c| c.wr_id).collect();
        assert_eq!(ids, (0..8).collect::<Vec<_>>());
    }
}

#[test]
fn psn_sequence_error_nak_triggers_fast_retransmit() {
    let (mut net, data) = setup(Params::default(), 19, 8 * 1024);
    net.drop_ab = vec![1]; // the second SEND packet
    net.b.qp.post_recv(recv_wr(1, DST, 8 * 1024, 2)).unwrap();
    net.a
        .qp
        .post_send(send_wr(1, SendOp::Send, SRC, 8 * 1024, 1))
        .unwrap();
    let start = net.now;
    assert!(net.run_until(ms(10), all_done(1)));
    // Recovered by the NAK, long before the 1 ms transport timer.
    assert!(net.now - start < Duration::from_micros(200));
    assert_eq!(net.a.qp.stats().timeouts, 0);
    assert_eq!(net.a.qp.stats().rx_seq_naks, 1);
    assert_eq!(net.b.qp.stats().tx_naks, 1, "one NAK per gap");
    assert_eq!(net.a.send_wcs()[0].status, WcStatus::Success);
    assert_eq!(&net.b.mem.region(2).unwrap().data[..8 * 1024], &data[..]);
}

/// Builds a request frame from A to B.
fn request(op: Opcode, psn: u32, payload: &[u8], reth: Option<omx_wire::Reth>) -> Vec<u8> {
    let ext = omx_wire::Ext {
        reth,
        ..omx_wire::Ext::default()
    };
    Crafter::new(QPN_A, QPN_B).frame(op, psn, ext, payload)
}

fn responses_of(net: &mut Net) -> Vec<omx_wire::FrameRepr> {
    let mut buf = vec![0; 8192];
    let mut out = Vec::new();
    while let Some(t) = net.b.qp.poll_transmit(net.now, &mut buf, &net.b.mem) {
        let f = Frame::new_checked(&buf[..t.len]).unwrap();
        out.push(omx_wire::FrameRepr::parse(&f).unwrap());
    }
    out
}

#[test]
fn invalid_request_nak_on_protocol_violations() {
    use omx_wire::{NakCode, Syndrome};
    let mtu = 1024;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "MIDDLE without FIRST",
            request(Opcode::SendMiddle, 100, &[0; 1024], None),
        ),
        (
            "FIRST shorter than the MTU",
            request(Opcode::SendFirst, 100, &[0; 10], None),
        ),
        ("atomic at a misaligned address", {
            let mut f = request(Opcode::SendOnly, 100, &[], None);
            // Re-emit as FETCH_ADD.
            let repr = omx_wire::FrameRepr {
                bth: omx_wire::Bth {
                    opcode: Opcode::FetchAdd,
                    ..omx_wire::FrameRepr::parse(&Frame::new_checked(&f[..]).unwrap())
                        .unwrap()
                        .bth
                },
                ext: omx_wire::Ext {
                    atomic: Some(omx_wire::AtomicEth {
                        va: 4,
                        ..omx_wire::AtomicEth::default()
                    }),
                    ..omx_wire::Ext::default()
                },
                ..omx_wire::FrameRepr::parse(&Frame::new_checked(&f[..]).unwrap()).unwrap()
            };
            f = vec![0; repr.buffer_len()];
            repr.emit(&mut Frame::new_unchecked(&mut f[..]), |_| ())
                .unwrap();
            f
        }),
        (
            "WRITE ONLY longer than its RETH length",
            request(
                Opcode::WriteOnly,
                100,
                &[0; 100],
                Some(omx_wire::Reth {
                    va: DST,
                    rkey: 2,
                    dma_len: 50,
                }),
            ),
        ),
    ];
    for (what, frame) in cases {
        let (mut net, _) = setup(Params::default(), 20, 4096);
        net.b.qp.post_recv(recv_wr(1, DST, 4096, 2)).unwrap();
        assert_eq!(net.b.qp.path_mtu(), mtu);
        net.b
            .qp
            .handle_frame(net.now, &frame, &mut net.b.mem)
            .unwrap();
        let out = responses_of(&mut net);
        assert_eq!(out.len(), 1, "{what}");
        assert_eq!(out[0].bth.opcode, Opcode::Acknowledge);
        assert_eq!(out[0].bth.psn, Psn::new(100), "{what}");
        assert_eq!(
            out[0].ext.aeth.unwrap().syndrome,
            Syndrome::Nak(NakCode::InvalidRequest),
            "{what}"
        );
        assert_eq!(net.b.qp.state(), QpState::Err, "{what}");
    }
}

#[test]
fn out_of_sequence_and_duplicate_requests() {
    use omx_wire::{NakCode, Syndrome};
    let (mut net, _) = setup(Params::default(), 21, 4096);
    net.b.qp.post_recv(recv_wr(1, DST, 4096, 2)).unwrap();
    net.b.qp.post_recv(recv_wr(2, DST, 4096, 2)).unwrap();
    // Ahead of ePSN (100): one NAK for the gap, however many arrive.
    for psn in [102, 103, 104] {
        let f = request(Opcode::SendOnly, psn, &[1; 8], None);
        net.b.qp.handle_frame(net.now, &f, &mut net.b.mem).unwrap();
    }
    let out = responses_of(&mut net);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].bth.psn, Psn::new(100));
    assert_eq!(
        out[0].ext.aeth.unwrap().syndrome,
        Syndrome::Nak(NakCode::PsnSequenceError)
    );
    assert_eq!(out[0].ext.aeth.unwrap().credits, 64);
    // In sequence, then a duplicate: executed once, ACKed twice.
    let f = request(Opcode::SendOnly, 100, &[1; 8], None);
    net.b.qp.handle_frame(net.now, &f, &mut net.b.mem).unwrap();
    let out = responses_of(&mut net);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].ext.aeth.unwrap().syndrome, Syndrome::Ack);
    assert_eq!(out[0].bth.psn, Psn::new(100));
    assert_eq!(out[0].ext.aeth.unwrap().msn, 1);
    net.b.qp.handle_frame(net.now, &f, &mut net.b.mem).unwrap();
    let out = responses_of(&mut net);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].bth.psn, Psn::new(100));
    let mut wcs = Vec::new();
    while let Some(wc) = net.b.qp.poll_completion() {
        wcs.push(wc);
    }
    assert_eq!(wcs.len(), 1);
    assert_eq!(net.b.qp.stats().rx_duplicate, 1);
    // A frame from another QP or to another QP is dropped and counted.
    let mut f = request(Opcode::SendOnly, 101, &[1; 8], None);
    f[27] ^= 1; // source QPN
    let fr = Frame::new_checked(&f[..]).unwrap();
    let (o, c) = (fr.crc_offset(), fr.compute_crc());
    f[o..o + 4].copy_from_slice(&c.to_be_bytes());
    assert_eq!(
        net.b.qp.handle_frame(net.now, &f, &mut net.b.mem),
        Err(RxDrop::WrongQp)
    );
}
