//! UC (docs/wire.md §14): the RC machines without ACKs, NAKs, credits or
//! retransmission. UC loses whole messages and never corrupts one: over a
//! lossy, duplicating, reordering, corrupting network every message the
//! receiver completes is byte-exact, was sent, and arrives in order; every
//! send WR completes. Then the responder's gap rules frame by frame.

mod sim;

use std::sync::Arc;

use omx_engine::testing::{completions, parse, Conn, FakeMemory, TestSrq, ALL_ACCESS};
use omx_engine::*;
use omx_wire::{Ext, Opcode, Psn, Reth, Transport};
use proptest::prelude::*;
use sim::*;

const A_SRC: u32 = 1;
const B_RECV: u32 = 2;
const B_WRITE: u32 = 3;
/// Bytes of one message slot (receive buffer, WRITE target, source).
const SLOT: u64 = 20 * 1024;

fn uc_params(mtu: PathMtu) -> Params {
    Params {
        mtu,
        qp_type: QpType::Uc,
        ..Params::default()
    }
}

/// `n` messages A→B (SEND with immediate `i`, or RDMA WRITE with
/// immediate `i` into slot `i`) of `lens[i]` bytes under `faults`.
fn lossy_case(
    ops: Vec<(bool, u32)>,
    mtu: PathMtu,
    faults: Faults,
    seed: u64,
) -> Result<(), TestCaseError> {
    let mut net = Net::new(uc_params(mtu), seed);
    net.capture = Some(Vec::new());
    let n = ops.len() as u64;
    let src = net.rng.bytes((n * SLOT) as usize);
    net.a.add_region(A_SRC, 0, src.clone());
    net.b.add_region(B_RECV, 0, vec![0; (n * SLOT) as usize]);
    net.b.add_region(B_WRITE, 0, vec![0; (n * SLOT) as usize]);
    net.set_faults(faults);
    for i in 0..n {
        net.b
            .qp
            .post_recv(recv_wr(i, i * SLOT, SLOT as u32, B_RECV))
            .unwrap();
    }
    for (i, &(send, len)) in ops.iter().enumerate() {
        let base = i as u64 * SLOT;
        let op = if send {
            SendOp::SendWithImm(i as u32)
        } else {
            SendOp::RdmaWriteWithImm {
                remote_addr: base,
                rkey: B_WRITE,
                imm: i as u32,
            }
        };
        net.a
            .qp
            .post_send(send_wr(i as u64, op, base, len, A_SRC))
            .unwrap();
    }
    net.run(Duration::from_millis(500));

    // Every send WR completed, successfully, in order.
    let s = net.a.send_wcs();
    prop_assert_eq!(s.len(), ops.len());
    for (i, wc) in s.iter().enumerate() {
        prop_assert_eq!((wc.wr_id, wc.status), (i as u64, WcStatus::Success));
    }
    // Every receive completion: a message that was sent, whole, in order.
    let mut last: Option<u32> = None;
    let recv = net.b.recv_wcs();
    for wc in &recv {
        prop_assert_eq!(wc.status, WcStatus::Success, "{:?}", wc);
        let i = wc.imm.expect("every message carries its index");
        prop_assert!((i as usize) < ops.len());
        prop_assert!(last.is_none_or(|l| l < i), "{:?} after {:?}", i, last);
        last = Some(i);
        let (send, len) = ops[i as usize];
        prop_assert_eq!(wc.byte_len, len);
        let want = &src[(u64::from(i) * SLOT) as usize..][..len as usize];
        if send {
            prop_assert_eq!(wc.opcode, WcOpcode::Recv);
            let at = (wc.wr_id * SLOT) as usize;
            let got = &net.b.mem.region(B_RECV).unwrap().data[at..at + len as usize];
            prop_assert_eq!(got, want, "send {}", i);
        } else {
            prop_assert_eq!(wc.opcode, WcOpcode::RecvRdmaWithImm);
            let at = (u64::from(i) * SLOT) as usize;
            let got = &net.b.mem.region(B_WRITE).unwrap().data[at..at + len as usize];
            prop_assert_eq!(got, want, "write {}", i);
        }
    }
    // Without faults nothing is lost.
    if faults.loss == 0.0 && faults.corrupt == 0.0 && faults.reorder == 0.0 {
        prop_assert_eq!(recv.len(), ops.len());
    }
    // Both QPs still in RTS; B never sent a frame, A only UC requests.
    prop_assert_eq!(net.a.qp.state(), QpState::Rts);
    prop_assert_eq!(net.b.qp.state(), QpState::Rts);
    for (to_b, f) in net.capture.as_ref().unwrap() {
        prop_assert!(*to_b, "B sent a frame");
        let r = parse(f);
        prop_assert_eq!(r.bth.transport, Transport::Uc);
        prop_assert!(!r.bth.ack_req && r.ext.ack.is_none());
    }
    prop_assert_eq!(net.b.qp.stats().tx_frames, 0);
    prop_assert_eq!(net.a.qp.stats().tx_retransmits, 0);
    Ok(())
}

fn mtu_strategy() -> impl Strategy<Value = PathMtu> {
    prop_oneof![
        Just(PathMtu::Mtu256),
        Just(PathMtu::Mtu1024),
        Just(PathMtu::Mtu4096),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// UC loses whole messages and never corrupts one.
    #[test]
    fn uc_loses_whole_messages_and_never_corrupts_one(
        ops in proptest::collection::vec(
            (any::<bool>(), prop_oneof![0u32..64, 64u32..5000, 5000u32..(SLOT as u32)]),
            1..24,
        ),
        mtu in mtu_strategy(),
        loss in 0.0f64..0.2,
        dup in 0.0f64..0.2,
        reorder in 0.0f64..0.2,
        corrupt in 0.0f64..0.1,
        seed in any::<u64>(),
    ) {
        let faults = Faults {
            loss,
            dup,
            reorder,
            reorder_delay: Duration::from_micros(50),
            corrupt,
        };
        lossy_case(ops, mtu, faults, seed)?;
    }
}

#[test]
fn uc_without_faults_delivers_everything() {
    let ops = (0..20).map(|i| (i % 2 == 0, i * 997 % 9000)).collect();
    lossy_case(ops, PathMtu::Mtu1024, Faults::default(), 1).unwrap();
}

// ---- Frame by frame, as B's peer (A) would send them ----

const MTU: usize = 1024;
const RQ_PSN: u32 = 0xFF_FFFE; // across the wrap

fn uc_conn() -> Conn {
    Conn {
        rq_psn: RQ_PSN,
        sq_psn: 700,
        ..Conn::new(0x2001, 0x1001)
    }
}

fn uc_cfg() -> QpConfig {
    let mut cfg = QpConfig::new(omx_wire::Qpn::new(0x2001));
    cfg.qp_type = QpType::Uc;
    cfg
}

/// B: a UC QP in RTS with 64 KiB receive memory (key 2) and a 64 KiB
/// WRITE target (key 3).
fn b_side() -> (RcQp, FakeMemory) {
    let qp = testing::rts_qp(uc_cfg(), &uc_conn());
    let mut mem = FakeMemory::default();
    mem.add(B_RECV, 0, vec![0; 64 * 1024], &ALL_ACCESS);
    mem.add(B_WRITE, 0x10_0000, vec![0; 64 * 1024], &ALL_ACCESS);
    (qp, mem)
}

fn psn(k: u32) -> u32 {
    Psn::new(RQ_PSN).add(k).value()
}

fn feed(qp: &mut RcQp, mem: &mut FakeMemory, frame: &[u8]) -> Result<(), RxDrop> {
    qp.handle_frame(Instant::ZERO, frame, mem)
}

fn send(op: Opcode, k: u32, byte: u8, len: usize) -> Vec<u8> {
    let imm = op.has_imm().then_some(0xabcd);
    let ext = Ext {
        imm,
        ..Ext::default()
    };
    uc_conn()
        .from_peer()
        .uc()
        .frame(op, psn(k), ext, &vec![byte; len])
}

fn no_frames(qp: &mut RcQp, mem: &FakeMemory) {
    let mut buf = vec![0; omx_wire::max_frame_len(4096)];
    assert!(qp.poll_transmit(Instant::ZERO, &mut buf, mem).is_none());
    assert_eq!(qp.stats().tx_frames, 0);
    assert_eq!(qp.poll_timeout(), None);
}

/// A Middle after a gap is dropped, the Last after it too; the next First
/// (after the gap) starts a message anew in the abandoned SEND's WQE.
#[test]
fn gap_drops_the_rest_and_first_resyncs_into_the_same_wqe() {
    let (mut qp, mut mem) = b_side();
    qp.post_recv(recv_wr(1, 0, 4096, B_RECV)).unwrap();
    qp.post_recv(recv_wr(2, 8192, 4096, B_RECV)).unwrap();
    feed(&mut qp, &mut mem, &send(Opcode::SendFirst, 0, 0x11, MTU)).unwrap();
    // PSN 1 lost.
    assert_eq!(
        feed(&mut qp, &mut mem, &send(Opcode::SendMiddle, 2, 0x11, MTU)),
        Err(RxDrop::UcDropped)
    );
    assert_eq!(
        feed(&mut qp, &mut mem, &send(Opcode::SendLast, 3, 0x11, 10)),
        Err(RxDrop::UcDropped)
    );
    let s = *qp.stats();
    assert_eq!((s.rx_uc_dropped, s.rx_uc_abandoned), (2, 1));
    assert!(completions(&mut qp).is_empty());
    // A new message after a further gap.
    feed(&mut qp, &mut mem, &send(Opcode::SendFirst, 9, 0x22, MTU)).unwrap();
    feed(&mut qp, &mut mem, &send(Opcode::SendLastImm, 10, 0x23, 5)).unwrap();
    let wcs = completions(&mut qp);
    assert_eq!(wcs.len(), 1);
    assert_eq!(
        (wcs[0].wr_id, wcs[0].status, wcs[0].byte_len, wcs[0].imm),
        (1, WcStatus::Success, MTU as u32 + 5, Some(0xabcd))
    );
    let d = &mem.region(B_RECV).unwrap().data;
    assert!(d[..MTU].iter().all(|&b| b == 0x22));
    assert!(d[MTU..MTU + 5].iter().all(|&b| b == 0x23));
    // An Only right after: the next WQE.
    feed(&mut qp, &mut mem, &send(Opcode::SendOnly, 11, 0x33, 7)).unwrap();
    assert_eq!(completions(&mut qp)[0].wr_id, 2);
    assert_eq!(qp.state(), QpState::Rts);
    no_frames(&mut qp, &mem);
}

/// A First after a gap abandons the message in progress; a Middle at the
/// expected PSN with no message in progress is dropped; a PSN behind the
/// expected one (a duplicate) is dropped and disturbs nothing.
#[test]
fn first_abandons_middle_alone_dropped_duplicates_ignored() {
    let (mut qp, mut mem) = b_side();
    qp.post_recv(recv_wr(1, 0, 4096, B_RECV)).unwrap();
    assert_eq!(
        feed(&mut qp, &mut mem, &send(Opcode::SendMiddle, 0, 1, MTU)),
        Err(RxDrop::UcDropped)
    );
    feed(&mut qp, &mut mem, &send(Opcode::SendFirst, 1, 2, MTU)).unwrap();
    feed(&mut qp, &mut mem, &send(Opcode::SendFirst, 5, 3, MTU)).unwrap();
    assert_eq!(qp.stats().rx_uc_abandoned, 1);
    // Duplicates of PSN 1 and 5: behind the expected PSN 6.
    for k in [1, 5] {
        assert_eq!(
            feed(&mut qp, &mut mem, &send(Opcode::SendFirst, k, 9, MTU)),
            Err(RxDrop::UcDropped)
        );
    }
    assert_eq!(qp.stats().rx_duplicate, 2);
    feed(&mut qp, &mut mem, &send(Opcode::SendLast, 6, 4, 1)).unwrap();
    let wcs = completions(&mut qp);
    assert_eq!((wcs.len(), wcs[0].byte_len), (1, MTU as u32 + 1));
    assert!(mem.region(B_RECV).unwrap().data[..MTU]
        .iter()
        .all(|&b| b == 3));
    // The duplicate of a completed message is not delivered again.
    qp.post_recv(recv_wr(2, 0, 4096, B_RECV)).unwrap();
    assert!(feed(&mut qp, &mut mem, &send(Opcode::SendLast, 6, 4, 1)).is_err());
    assert!(completions(&mut qp).is_empty());
}

/// No receive WQE: the SEND is dropped silently with the rest of its
/// message; the QP stays in RTS and the next message lands once a WQE is
/// there.
#[test]
fn no_wqe_drops_the_message() {
    let (mut qp, mut mem) = b_side();
    assert_eq!(
        feed(&mut qp, &mut mem, &send(Opcode::SendFirst, 0, 1, MTU)),
        Err(RxDrop::NoWqe)
    );
    assert!(feed(&mut qp, &mut mem, &send(Opcode::SendLast, 1, 1, 3)).is_err());
    let s = *qp.stats();
    assert_eq!((s.rx_no_wqe, s.rx_uc_dropped, s.tx_rnr_naks), (1, 1, 0));
    qp.post_recv(recv_wr(7, 0, 4096, B_RECV)).unwrap();
    feed(&mut qp, &mut mem, &send(Opcode::SendOnlyImm, 2, 5, 9)).unwrap();
    let wcs = completions(&mut qp);
    assert_eq!((wcs[0].wr_id, wcs[0].byte_len), (7, 9));
    assert_eq!(qp.state(), QpState::Rts);
    no_frames(&mut qp, &mem);
}

/// A SEND longer than its WQE (own receive queue): dropped, the WQE kept
/// for the next message (rxe's class D1); from an SRQ the WQE completes
/// with IBV_WC_REM_INV_REQ_ERR (class E). The QP stays in RTS.
#[test]
fn wqe_too_small() {
    let (mut qp, mut mem) = b_side();
    qp.post_recv(recv_wr(1, 0, 100, B_RECV)).unwrap();
    assert!(feed(&mut qp, &mut mem, &send(Opcode::SendOnly, 0, 1, 200)).is_err());
    assert_eq!(qp.stats().rx_wqe_too_small, 1);
    assert!(completions(&mut qp).is_empty());
    feed(&mut qp, &mut mem, &send(Opcode::SendOnly, 1, 2, 50)).unwrap();
    assert_eq!(completions(&mut qp)[0].wr_id, 1);

    let srq = Arc::new(TestSrq::default());
    srq.post(recv_wr(5, 0, 100, B_RECV));
    srq.post(recv_wr(6, 4096, 100, B_RECV));
    let mut qp = RcQp::new(uc_cfg()).with_srq(srq.clone());
    uc_conn().connect(&mut qp);
    assert!(feed(&mut qp, &mut mem, &send(Opcode::SendOnly, 0, 1, 200)).is_err());
    let wcs = completions(&mut qp);
    assert_eq!((wcs[0].wr_id, wcs[0].status), (5, WcStatus::RemInvReqErr));
    feed(&mut qp, &mut mem, &send(Opcode::SendOnly, 1, 2, 50)).unwrap();
    assert_eq!(completions(&mut qp)[0].wr_id, 6);
    assert_eq!(qp.state(), QpState::Rts);
}

/// UC on an SRQ: an abandoned SEND keeps the WQE it took from the SRQ for
/// its next message; nothing else is taken.
#[test]
fn srq_wqe_kept_across_an_abandoned_message() {
    let srq = Arc::new(TestSrq::default());
    for w in 0..3 {
        srq.post(recv_wr(w, w * 4096, 4096, B_RECV));
    }
    let (_, mut mem) = b_side();
    let mut qp = RcQp::new(uc_cfg()).with_srq(srq.clone());
    uc_conn().connect(&mut qp);
    feed(&mut qp, &mut mem, &send(Opcode::SendFirst, 0, 1, MTU)).unwrap();
    assert!(feed(&mut qp, &mut mem, &send(Opcode::SendLast, 2, 1, 1)).is_err());
    feed(&mut qp, &mut mem, &send(Opcode::SendOnly, 3, 2, 10)).unwrap();
    let wcs = completions(&mut qp);
    assert_eq!((wcs.len(), wcs[0].wr_id, wcs[0].byte_len), (1, 0, 10));
    assert_eq!((srq.taken(), srq.len()), (1, 2));
}

/// An RDMA WRITE cut by a gap: its first packet's data stays written,
/// nothing completes; a WRITE the MR refuses is dropped (no NAK, no
/// ERROR); one without REMOTE_WRITE rights too.
#[test]
fn write_gap_and_refusals() {
    let (mut qp, mut mem) = b_side();
    let c = uc_conn().from_peer().uc();
    let reth = |va: u64, rkey: u32, len: u32| Ext {
        reth: Some(Reth {
            va,
            rkey,
            dma_len: len,
        }),
        ..Ext::default()
    };
    feed(
        &mut qp,
        &mut mem,
        &c.frame(
            Opcode::WriteFirst,
            psn(0),
            reth(0x10_0000, B_WRITE, 3000),
            &[7; MTU],
        ),
    )
    .unwrap();
    assert!(feed(
        &mut qp,
        &mut mem,
        &c.frame(Opcode::WriteLast, psn(2), Ext::default(), &[7; 952])
    )
    .is_err());
    let d = &mem.region(B_WRITE).unwrap().data;
    assert!(d[..MTU].iter().all(|&b| b == 7) && d[MTU] == 0);
    // Outside the MR.
    assert!(feed(
        &mut qp,
        &mut mem,
        &c.frame(
            Opcode::WriteOnly,
            psn(3),
            reth(0x20_0000, B_WRITE, 8),
            &[1; 8]
        )
    )
    .is_err());
    assert_eq!(qp.stats().rx_uc_access_err, 1);
    // Beyond its RETH length.
    assert!(feed(
        &mut qp,
        &mut mem,
        &c.frame(
            Opcode::WriteOnly,
            psn(4),
            reth(0x10_0000, B_WRITE, 4),
            &[1; 8]
        )
    )
    .is_err());
    assert_eq!(qp.stats().rx_uc_invalid, 1);
    assert!(completions(&mut qp).is_empty());
    assert_eq!(qp.state(), QpState::Rts);
    // A WRITE with immediate in order completes a WQE.
    qp.post_recv(recv_wr(3, 0, 16, B_RECV)).unwrap();
    let ext = Ext {
        imm: Some(5),
        ..reth(0x10_0000, B_WRITE, 8)
    };
    feed(
        &mut qp,
        &mut mem,
        &c.frame(Opcode::WriteOnlyImm, psn(5), ext, &[9; 8]),
    )
    .unwrap();
    let wcs = completions(&mut qp);
    assert_eq!(
        (wcs[0].wr_id, wcs[0].opcode, wcs[0].imm),
        (3, WcOpcode::RecvRdmaWithImm, Some(5))
    );
    no_frames(&mut qp, &mem);

    // Without REMOTE_WRITE: dropped.
    let mut cfg = uc_cfg();
    cfg.qpn = omx_wire::Qpn::new(0x2001);
    let conn = Conn {
        access_flags: 0,
        ..uc_conn()
    };
    let mut qp = testing::rts_qp(cfg, &conn);
    assert!(feed(
        &mut qp,
        &mut mem,
        &c.frame(
            Opcode::WriteOnly,
            psn(0),
            reth(0x10_0000, B_WRITE, 8),
            &[1; 8]
        )
    )
    .is_err());
    assert_eq!(qp.stats().rx_qp_access_denied, 1);
    assert_eq!(qp.state(), QpState::Rts);
}

/// READ and atomics are refused at post (EINVAL); UC frames other than
/// SEND and WRITE, RC frames at a UC QP and UC frames at an RC QP are
/// dropped as unsupported.
#[test]
fn read_refused_and_foreign_frames_dropped() {
    let (mut qp, mut mem) = b_side();
    for op in [
        SendOp::RdmaRead {
            remote_addr: 0,
            rkey: 1,
        },
        SendOp::AtomicFetchAdd {
            remote_addr: 0,
            rkey: 1,
            add: 1,
        },
    ] {
        assert_eq!(
            qp.post_send(send_wr(1, op, 0, 8, A_SRC)),
            Err(PostError::InvalidState)
        );
    }
    qp.post_recv(recv_wr(1, 0, 4096, B_RECV)).unwrap();
    let rc = uc_conn().from_peer();
    let read = Ext {
        reth: Some(Reth {
            va: 0x10_0000,
            rkey: B_WRITE,
            dma_len: 8,
        }),
        ..Ext::default()
    };
    let mut f = rc.frame(Opcode::ReadRequest, psn(0), read, &[]);
    f[19] = 1;
    let n = f.len();
    omx_wire::Frame::new_unchecked(&mut f[..n]).fill_crc_and_pad();
    assert!(feed(&mut qp, &mut mem, &f).is_err());
    assert!(feed(
        &mut qp,
        &mut mem,
        &rc.frame(Opcode::SendOnly, psn(0), Ext::default(), &[1])
    )
    .is_err());
    assert_eq!(qp.stats().rx_unsupported, 2);
    assert!(completions(&mut qp).is_empty());
    // The UC frame at an RC QP.
    let mut rcqp = testing::rts_qp(QpConfig::new(omx_wire::Qpn::new(0x2001)), &uc_conn());
    rcqp.post_recv(recv_wr(1, 0, 4096, B_RECV)).unwrap();
    assert!(feed(&mut rcqp, &mut mem, &send(Opcode::SendOnly, 0, 1, 1)).is_err());
    assert_eq!(rcqp.stats().rx_unsupported, 1);
    no_frames(&mut qp, &mem);
}

/// The requester: PSNs from sq_psn, one per packet, no AckReq, and a WR
/// completes once its last packet was built; no timer, and an unsignaled
/// WR frees its slot as it goes.
#[test]
fn requester_completes_on_transmit() {
    let conn = Conn {
        sq_psn: 0xFF_FFFF,
        ..Conn::new(0x1001, 0x2001)
    };
    let mut cfg = uc_cfg();
    cfg.sq_depth = 2;
    let mut qp = testing::rts_qp(cfg, &conn);
    let mut mem = FakeMemory::default();
    mem.add(A_SRC, 0, vec![5; 8192], &ALL_ACCESS);
    qp.post_send(send_wr(1, SendOp::Send, 0, 2500, A_SRC))
        .unwrap();
    let mut unsignaled = send_wr(2, SendOp::Send, 0, 10, A_SRC);
    unsignaled.signaled = false;
    qp.post_send(unsignaled).unwrap();
    assert_eq!(qp.sq_free(), 0);
    let mut buf = vec![0; omx_wire::max_frame_len(4096)];
    let mut psns = Vec::new();
    while let Some(t) = qp.poll_transmit(Instant::ZERO, &mut buf, &mem) {
        let r = parse(&buf[..t.len]);
        assert_eq!(r.bth.transport, Transport::Uc);
        assert!(!r.bth.ack_req && r.ext.ack.is_none());
        psns.push((r.bth.psn.value(), r.bth.opcode));
    }
    assert_eq!(
        psns,
        [
            (0xFF_FFFF, Opcode::SendFirst),
            (0, Opcode::SendMiddle),
            (1, Opcode::SendLast),
            (2, Opcode::SendOnly),
        ]
    );
    assert_eq!(qp.poll_timeout(), None);
    let wcs = completions(&mut qp);
    assert_eq!(wcs.len(), 1);
    assert_eq!((wcs[0].wr_id, wcs[0].status), (1, WcStatus::Success));
    assert_eq!(qp.sq_free(), 2);
}

/// modify: UC's table (no RNR timer, READ limits, timeout or retries).
#[test]
fn uc_modify_table() {
    let mut qp = RcQp::new(uc_cfg());
    let [init, rtr, rts] = uc_conn().steps();
    qp.modify(&init).unwrap();
    assert!(matches!(
        qp.modify(&rtr),
        Err(ModifyError::InvalidMask { .. })
    ));
    let [_, rtr, _] = uc_conn().steps_for(QpType::Uc);
    qp.modify(&rtr).unwrap();
    assert!(matches!(
        qp.modify(&rts),
        Err(ModifyError::InvalidMask { .. })
    ));
    let [_, _, rts] = uc_conn().steps_for(QpType::Uc);
    qp.modify(&rts).unwrap();
    assert_eq!((qp.state(), qp.qp_type()), (QpState::Rts, QpType::Uc));
}
