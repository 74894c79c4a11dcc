//! UD QPs (docs/wire.md §13): datagrams between two `UdQp`s over a
//! small dedicated network (loss, duplication, reordering, corruption),
//! the GRH in both forms, every drop and its counter, SRQs, ERROR and
//! RESET, and a property test over random faults: every message
//! received is byte-exact and was sent, nothing is invented, the sender
//! completes every WR, corruption is caught and counted.

use std::sync::Arc;

use omx_engine::testing::{recv_wr, send_wr, ud_steps, FakeMemory, TestSrq, ALL_ACCESS};
use omx_engine::*;
use omx_wire::{Frame, Psn, Qpn, UdRepr};
use proptest::prelude::*;

const A: u32 = 0x1001;
const B: u32 = 0x2001;
const QKEY: u32 = 0x1111_1111;
const KEY: u32 = 7;
const MEM: usize = 64 * 1024;

fn mac(qpn: u32) -> [u8; 6] {
    omx_engine::testing::mac_of(qpn)
}

/// `fe80::<n>`.
fn gid6(n: u8) -> [u8; 16] {
    let mut g = [0u8; 16];
    g[0] = 0xfe;
    g[1] = 0x80;
    g[15] = n;
    g
}

/// `::ffff:10.0.0.<n>`.
fn gid4(n: u8) -> [u8; 16] {
    let mut g = [0u8; 16];
    g[10] = 0xff;
    g[11] = 0xff;
    g[12..].copy_from_slice(&[10, 0, 0, n]);
    g
}

struct Side {
    qp: UdQp,
    mem: FakeMemory,
    gid: [u8; 16],
}

fn side_with(cfg: UdConfig) -> Side {
    let mut qp = UdQp::new(cfg);
    for s in ud_steps(QKEY, cfg.qpn.value()) {
        qp.modify(&s).unwrap();
    }
    let mut mem = FakeMemory::default();
    let data = (0..MEM)
        .map(|i| (i * 7 + cfg.qpn.value() as usize) as u8)
        .collect();
    mem.add(KEY, 0, data, &ALL_ACCESS);
    Side {
        qp,
        mem,
        gid: cfg.gid,
    }
}

fn side(qpn: u32, gid: [u8; 16]) -> Side {
    side_with(UdConfig::new(Qpn::new(qpn), mac(qpn), gid))
}

/// A side on a port of RoCE v2 GIDs ([`UdConfig::roce_v2`]).
fn side_v2(qpn: u32, gid: [u8; 16]) -> Side {
    side_with(UdConfig {
        roce_v2: true,
        ..UdConfig::new(Qpn::new(qpn), mac(qpn), gid)
    })
}

fn dest_to(to: &Side, from: &Side) -> UdDest {
    UdDest {
        dmac: mac(to.qp.qpn().value()),
        remote_qpn: to.qp.qpn().value(),
        remote_qkey: QKEY,
        sgid: from.gid,
        traffic_class: 0x28,
        hop_limit: 64,
    }
}

fn now() -> Instant {
    Instant::from_micros(1)
}

fn frames(s: &mut Side) -> Vec<Vec<u8>> {
    let mut buf = vec![0; omx_wire::max_frame_len(4096)];
    let mut out = Vec::new();
    while let Some(t) = s.qp.poll_transmit(now(), &mut buf, &s.mem) {
        out.push(buf[..t.len].to_vec());
    }
    out
}

fn wcs(s: &mut Side) -> Vec<WorkCompletion> {
    core::iter::from_fn(|| s.qp.poll_completion()).collect()
}

fn deliver(to: &mut Side, f: &[u8]) -> Result<(), RxDrop> {
    to.qp.handle_frame(now(), f, &mut to.mem)
}

/// The IPv6-form GRH, written out independently of the engine.
fn expected_grh6(
    sgid: [u8; 16],
    dgid: [u8; 16],
    tc: u8,
    hop: u8,
    imm: bool,
    len: usize,
) -> [u8; 40] {
    let mut g = [0u8; 40];
    g[0] = 0x60 | (tc >> 4);
    g[1] = (tc & 0xf) << 4;
    let pay = 12 + 8 + if imm { 4 } else { 0 } + len.div_ceil(4) * 4 + 4;
    g[4..6].copy_from_slice(&(pay as u16).to_be_bytes());
    g[6] = 0x1b;
    g[7] = hop;
    g[8..24].copy_from_slice(&sgid);
    g[24..40].copy_from_slice(&dgid);
    g
}

fn region(s: &Side) -> &[u8] {
    &s.mem.region(KEY).unwrap().data
}

#[test]
fn a_datagram_arrives_after_an_ipv6_form_grh() {
    let mut a = side(A, gid6(1));
    let mut b = side(B, gid6(2));
    b.qp.post_recv(recv_wr(9, 0x8000, 2048, KEY)).unwrap();
    let d = dest_to(&b, &a);
    a.qp.post_send(send_wr(1, SendOp::SendWithImm(0xabcd), 0x100, 100, KEY), d)
        .unwrap();
    let f = frames(&mut a);
    assert_eq!(f.len(), 1);
    let r = UdRepr::parse(&Frame::new_checked(&f[0][..]).unwrap()).unwrap();
    assert_eq!(r.psn, Psn::new(A), "starts at sq_psn");
    assert_eq!(r.deth.qkey, QKEY);
    assert_eq!(r.deth.sgid, gid6(1));
    assert_eq!(r.src_mac, mac(A));
    let sent = wcs(&mut a);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].status, WcStatus::Success);
    assert_eq!(sent[0].queue, WcQueue::Send);
    deliver(&mut b, &f[0]).unwrap();
    let got = wcs(&mut b);
    assert_eq!(got.len(), 1);
    let c = got[0];
    assert_eq!(c.status, WcStatus::Success);
    assert_eq!(c.wr_id, 9);
    assert_eq!(c.byte_len, 140);
    assert_eq!(c.imm, Some(0xabcd));
    assert_eq!(c.src_qp, Qpn::new(A));
    assert_eq!(c.qp_num, Qpn::new(B));
    assert!(c.grh);
    assert_eq!(c.sl, 0);
    let grh = expected_grh6(gid6(1), gid6(2), 0x28, 64, true, 100);
    assert_eq!(&region(&b)[0x8000..0x8000 + 40], &grh[..]);
    let src = region(&a)[0x100..0x100 + 100].to_vec();
    assert_eq!(&region(&b)[0x8000 + 40..0x8000 + 140], &src[..]);
    // A second one gets the next PSN.
    a.qp.post_send(send_wr(2, SendOp::Send, 0, 0, KEY), d)
        .unwrap();
    let f = frames(&mut a);
    let r = UdRepr::parse(&Frame::new_checked(&f[0][..]).unwrap()).unwrap();
    assert_eq!(r.psn, Psn::new(A + 1));
    assert_eq!(r.imm, None);
}

#[test]
fn ipv4_mapped_gids_get_the_ipv4_form_and_sl_2() {
    let mut a = side_v2(A, gid4(1));
    let mut b = side_v2(B, gid4(2));
    b.qp.post_recv(recv_wr(1, 0, 1024, KEY)).unwrap();
    let d = dest_to(&b, &a);
    a.qp.post_send(send_wr(1, SendOp::Send, 0x100, 33, KEY), d)
        .unwrap();
    deliver(&mut b, &frames(&mut a)[0]).unwrap();
    let c = wcs(&mut b)[0];
    assert!(c.grh);
    assert_eq!(c.sl, 2);
    assert_eq!(c.byte_len, 73);
    let g = &region(&b)[..40];
    assert_eq!(&g[..20], &[0u8; 20]);
    let ip = &g[20..40];
    assert_eq!(ip[0], 0x45);
    assert_eq!(ip[1], 0x28);
    // IP 20 + UDP 8 + BTH 12 + DETH 8 + 36 (33 padded) + ICRC 4.
    assert_eq!(u16::from_be_bytes([ip[2], ip[3]]), 20 + 8 + 12 + 8 + 36 + 4);
    assert_eq!(&ip[6..8], &[0x40, 0]);
    assert_eq!(ip[8], 64);
    assert_eq!(ip[9], 17);
    assert_eq!(&ip[12..16], &[10, 0, 0, 1]);
    assert_eq!(&ip[16..20], &[10, 0, 0, 2]);
    // The header checksum verifies: the one's-complement sum is 0xffff.
    let mut sum: u32 = ip
        .chunks(2)
        .map(|c| u32::from(c[0]) << 8 | u32::from(c[1]))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    assert_eq!(sum, 0xffff);
    assert_eq!(&region(&b)[40..73], &region(&a)[0x100..0x100 + 33]);
    // An IPv4 sender and an IPv6 receiver (RoCE v1 port): the IPv6 form,
    // sl 0.
    let mut c6 = side(0x3001, gid6(3));
    c6.qp.post_recv(recv_wr(1, 0, 1024, KEY)).unwrap();
    let d = dest_to(&c6, &a);
    a.qp.post_send(send_wr(2, SendOp::Send, 0x100, 5, KEY), d)
        .unwrap();
    deliver(&mut c6, &frames(&mut a)[0]).unwrap();
    let c = wcs(&mut c6)[0];
    assert_eq!(c.sl, 0);
    let grh = expected_grh6(gid4(1), gid6(3), 0x28, 64, false, 5);
    assert_eq!(&region(&c6)[..40], &grh[..]);
    // A receiver whose port has both: the GID of the sender's family.
    let mut both = side_v2(0x3002, gid6(4));
    both.qp.set_gids(gid6(4), Some(gid4(4)));
    both.qp.post_recv(recv_wr(1, 0, 1024, KEY)).unwrap();
    both.qp.post_recv(recv_wr(2, 0x800, 1024, KEY)).unwrap();
    let d = dest_to(&both, &a);
    a.qp.post_send(send_wr(3, SendOp::Send, 0x100, 5, KEY), d)
        .unwrap();
    deliver(&mut both, &frames(&mut a)[0]).unwrap();
    assert_eq!(wcs(&mut both)[0].sl, 2);
    assert_eq!(&region(&both)[36..40], &gid4(4)[12..]);
    let d = dest_to(&both, &c6);
    c6.qp
        .post_send(send_wr(4, SendOp::Send, 0x100, 5, KEY), d)
        .unwrap();
    deliver(&mut both, &frames(&mut c6)[0]).unwrap();
    assert_eq!(wcs(&mut both)[0].sl, 0);
    let g = &region(&both)[0x800..0x800 + 40];
    // RoCE v2's IPv6 form: next header UDP, the length counts its header.
    assert_eq!(
        (g[6], u16::from_be_bytes([g[4], g[5]])),
        (17, 8 + 12 + 8 + 8 + 4)
    );
    assert_eq!(&g[24..40], &gid6(4)[..]);
    // A port of RoCE v1 GIDs (ours) writes the IPv6 form with the IBTA
    // next header whatever the GIDs hold: what ibv_init_ah_from_wc
    // matches against a v1 GID table.
    let mut v1 = side(0x3003, gid4(5));
    v1.qp.post_recv(recv_wr(1, 0, 1024, KEY)).unwrap();
    let d = dest_to(&v1, &a);
    a.qp.post_send(send_wr(5, SendOp::Send, 0x100, 5, KEY), d)
        .unwrap();
    deliver(&mut v1, &frames(&mut a)[0]).unwrap();
    assert_eq!(wcs(&mut v1)[0].sl, 0);
    let grh = expected_grh6(gid4(1), gid4(5), 0x28, 64, false, 5);
    assert_eq!(&region(&v1)[..40], &grh[..]);
}

#[test]
fn a_wrong_qkey_is_dropped_and_a_controlled_one_uses_the_qps() {
    let mut a = side(A, gid6(1));
    let mut b = side(B, gid6(2));
    b.qp.post_recv(recv_wr(1, 0, 1024, KEY)).unwrap();
    let mut d = dest_to(&b, &a);
    d.remote_qkey = QKEY ^ 1;
    a.qp.post_send(send_wr(1, SendOp::Send, 0, 10, KEY), d)
        .unwrap();
    let f = frames(&mut a);
    assert_eq!(deliver(&mut b, &f[0]), Err(RxDrop::BadQkey));
    assert_eq!(b.qp.stats().rx_bad_qkey, 1);
    assert!(wcs(&mut b).is_empty(), "no WQE consumed");
    // High bit set: the sender's own Q_Key (QKEY) goes out.
    d.remote_qkey = QKEY_CONTROLLED | 5;
    a.qp.post_send(send_wr(2, SendOp::Send, 0, 10, KEY), d)
        .unwrap();
    let f = frames(&mut a);
    deliver(&mut b, &f[0]).unwrap();
    assert_eq!(wcs(&mut b)[0].status, WcStatus::Success);
}

#[test]
fn no_wqe_too_long_and_a_small_wqe_are_handled_as_hardware_does() {
    let mut a = side(A, gid6(1));
    let mut cfg = UdConfig::new(Qpn::new(B), mac(B), gid6(2));
    cfg.mtu = PathMtu::Mtu256;
    let mut b = side_with(cfg);
    let d = dest_to(&b, &a);
    a.qp.post_send(send_wr(1, SendOp::Send, 0, 100, KEY), d)
        .unwrap();
    let f = frames(&mut a);
    assert_eq!(deliver(&mut b, &f[0]), Err(RxDrop::NoWqe));
    assert_eq!(b.qp.stats().rx_no_wqe, 1);
    // 300 bytes: within A's MTU (1024), beyond B's (256).
    b.qp.post_recv(recv_wr(1, 0, 1024, KEY)).unwrap();
    a.qp.post_send(send_wr(2, SendOp::Send, 0, 300, KEY), d)
        .unwrap();
    let f = frames(&mut a);
    assert_eq!(deliver(&mut b, &f[0]), Err(RxDrop::TooLong));
    assert_eq!(b.qp.stats().rx_too_long, 1);
    assert!(wcs(&mut b).is_empty());
    // A WQE that holds the payload but not the GRH in front of it.
    let mut b2 = side(0x3001, gid6(3));
    b2.qp.post_recv(recv_wr(5, 0, 120, KEY)).unwrap();
    b2.qp.post_recv(recv_wr(6, 0x1000, 140, KEY)).unwrap();
    let d = dest_to(&b2, &a);
    for id in 0..2 {
        a.qp.post_send(send_wr(id, SendOp::Send, 0, 100, KEY), d)
            .unwrap();
    }
    for f in frames(&mut a) {
        deliver(&mut b2, &f).unwrap();
    }
    let got = wcs(&mut b2);
    assert_eq!(got[0].status, WcStatus::LocLenErr);
    assert_eq!(got[0].byte_len, 140);
    assert!(!got[0].grh);
    assert_eq!(b2.qp.stats().rx_wqe_too_small, 1);
    assert_eq!(
        b2.qp.state(),
        QpState::Rts,
        "a remote length never kills the QP"
    );
    assert_eq!(got[1].status, WcStatus::Success);
}

#[test]
fn malformed_foreign_and_misaddressed_frames_are_dropped_and_counted() {
    let mut a = side(A, gid6(1));
    let mut b = side(B, gid6(2));
    for i in 0..4 {
        b.qp.post_recv(recv_wr(i, 0, 1024, KEY)).unwrap();
    }
    let d = dest_to(&b, &a);
    a.qp.post_send(send_wr(1, SendOp::Send, 0, 64, KEY), d)
        .unwrap();
    let good = frames(&mut a).remove(0);
    let mut bad = good.clone();
    bad[70] ^= 0x10;
    assert!(matches!(
        deliver(&mut b, &bad),
        Err(RxDrop::Wire(omx_wire::Error::BadCrc))
    ));
    assert!(deliver(&mut b, &good[..50]).is_err());
    assert_eq!(b.qp.stats().rx_truncated, 1);
    // An RC frame for this QPN.
    let rc = omx_engine::testing::Crafter::new(A, B).frame(
        omx_wire::Opcode::SendOnly,
        0,
        omx_wire::Ext::default(),
        &[1, 2, 3],
    );
    assert!(deliver(&mut b, &rc).is_err());
    assert_eq!(b.qp.stats().rx_unsupported, 1);
    // Another QP's datagram.
    let mut c = side(0x3001, gid6(3));
    let mut d2 = dest_to(&c, &a);
    d2.remote_qpn = 0x3001;
    a.qp.post_send(send_wr(2, SendOp::Send, 0, 8, KEY), d2)
        .unwrap();
    let other = frames(&mut a).remove(0);
    assert_eq!(deliver(&mut b, &other), Err(RxDrop::WrongQp));
    assert_eq!(b.qp.stats().rx_wrong_qp, 1);
    let _ = deliver(&mut c, &other);
    // Garbage never panics and never consumes a WQE.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for n in 0..3000usize {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut f: Vec<u8> = (0..n % 200).map(|i| (x >> (i % 56)) as u8).collect();
        if f.len() > 36 {
            f[12] = 0x86;
            f[13] = 0xdf;
            f[16] = 0x84 + (n % 2) as u8;
            f[17] = 2;
            f[19] = 3;
        }
        let _ = deliver(&mut b, &f);
    }
    assert!(wcs(&mut b).is_empty());
    deliver(&mut b, &good).unwrap();
    assert_eq!(wcs(&mut b).len(), 1);
}

#[test]
fn posting_rules() {
    let mut a = UdQp::new(UdConfig {
        sq_depth: 2,
        ..UdConfig::new(Qpn::new(A), mac(A), gid6(1))
    });
    let b = side(B, gid6(2));
    let d = UdDest {
        remote_qpn: B,
        remote_qkey: QKEY,
        ..UdDest::default()
    };
    let wr = send_wr(1, SendOp::Send, 0, 10, KEY);
    assert_eq!(a.post_send(wr, d), Err(PostError::InvalidState), "RESET");
    assert_eq!(
        a.post_recv(recv_wr(1, 0, 10, KEY)),
        Err(PostError::InvalidState)
    );
    for s in ud_steps(QKEY, 0) {
        a.modify(&s).unwrap();
    }
    let write = SendOp::RdmaWrite {
        remote_addr: 0,
        rkey: 1,
    };
    let read = SendOp::RdmaRead {
        remote_addr: 0,
        rkey: 1,
    };
    for op in [write, read] {
        assert_eq!(
            a.post_send(send_wr(1, op, 0, 8, KEY), d),
            Err(PostError::InvalidState)
        );
    }
    assert_eq!(
        a.post_send(send_wr(1, SendOp::Send, 0, 1025, KEY), d),
        Err(PostError::TooLong)
    );
    a.post_send(send_wr(1, SendOp::Send, 0, 1024, KEY), d)
        .unwrap();
    let mut unsignaled = send_wr(2, SendOp::Send, 0, 4, KEY);
    unsignaled.signaled = false;
    a.post_send(unsignaled, d).unwrap();
    assert_eq!(a.post_send(wr, d), Err(PostError::Full));
    let mut s = Side {
        qp: a,
        mem: b.mem,
        gid: gid6(1),
    };
    assert_eq!(frames(&mut s).len(), 2);
    let w = wcs(&mut s);
    assert_eq!(w.len(), 1, "the unsignaled WR retires silently");
    assert_eq!(w[0].wr_id, 1);
    // Both slots are free again.
    s.qp.post_send(wr, d).unwrap();
    s.qp.post_send(wr, d).unwrap();
}

#[test]
fn modify_follows_the_ud_table() {
    let mut q = UdQp::new(UdConfig::new(Qpn::new(A), mac(A), gid6(1)));
    let [init, rtr, rts] = ud_steps(QKEY, 0);
    let no_qkey = QpAttr { qkey: None, ..init };
    assert!(matches!(
        q.modify(&no_qkey),
        Err(ModifyError::InvalidMask { .. })
    ));
    let bit_only = QpAttr {
        qkey: None,
        extra_mask: init.extra_mask | attr_mask::QKEY,
        ..init
    };
    assert_eq!(q.modify(&bit_only), Err(ModifyError::InvalidAttribute));
    let rc_init = QpAttr {
        access_flags: Some(0),
        ..no_qkey
    };
    assert!(q.modify(&rc_init).is_err(), "ACCESS_FLAGS is not UD's");
    assert_eq!(q.state(), QpState::Reset);
    q.modify(&init).unwrap();
    assert_eq!(q.qkey(), QKEY);
    let rtr_rc = QpAttr {
        path_mtu: Some(PathMtu::Mtu256),
        ..rtr
    };
    assert!(q.modify(&rtr_rc).is_err(), "UD has no path MTU attribute");
    q.modify(&rtr).unwrap();
    let rts_no_psn = QpAttr {
        sq_psn: None,
        ..rts
    };
    assert!(matches!(
        q.modify(&rts_no_psn),
        Err(ModifyError::InvalidMask { .. })
    ));
    q.modify(&rts).unwrap();
    // RTS→RTS may change the Q_Key.
    q.modify(&QpAttr {
        qkey: Some(9),
        ..QpAttr::default()
    })
    .unwrap();
    assert_eq!(q.qkey(), 9);
}

#[test]
fn error_flushes_everything_and_reset_forgets_it() {
    let mut a = side(A, gid6(1));
    let b = side(B, gid6(2));
    let d = dest_to(&b, &a);
    for i in 0..3 {
        a.qp.post_send(send_wr(i, SendOp::Send, 0, 8, KEY), d)
            .unwrap();
        a.qp.post_recv(recv_wr(10 + i, 0, 100, KEY)).unwrap();
    }
    a.qp.modify(&QpAttr {
        state: Some(QpState::Err),
        ..QpAttr::default()
    })
    .unwrap();
    assert_eq!(a.qp.poll_event(), None, "the application asked");
    a.qp.post_send(send_wr(3, SendOp::Send, 0, 8, KEY), d)
        .unwrap();
    a.qp.post_recv(recv_wr(13, 0, 100, KEY)).unwrap();
    assert!(frames(&mut a).is_empty());
    let w = wcs(&mut a);
    assert_eq!(w.len(), 8);
    assert!(w.iter().all(|c| c.status == WcStatus::WrFlushErr && !c.grh));
    let sends: Vec<u64> = w
        .iter()
        .filter(|c| c.queue == WcQueue::Send)
        .map(|c| c.wr_id)
        .collect();
    assert_eq!(sends, [0, 1, 2, 3]);
    assert!(!a.qp.work_pending());
    // In ERROR frames are dropped.
    let mut c = side(0x3001, gid6(3));
    c.qp.post_send(send_wr(1, SendOp::Send, 0, 8, KEY), dest_to(&a, &c))
        .unwrap();
    assert_eq!(deliver(&mut a, &frames(&mut c)[0]), Err(RxDrop::WrongState));
    // RESET drops what is queued, without completions.
    a.qp.modify(&QpAttr {
        state: Some(QpState::Reset),
        ..QpAttr::default()
    })
    .unwrap();
    assert_eq!(a.qp.reset_epoch(), 1);
    assert!(wcs(&mut a).is_empty());
    let [init, ..] = ud_steps(QKEY, 0);
    a.qp.modify(&init).unwrap();
    a.qp.post_recv(recv_wr(20, 0, 100, KEY)).unwrap();
    c.qp.post_send(send_wr(2, SendOp::Send, 0, 8, KEY), dest_to(&a, &c))
        .unwrap();
    let f = frames(&mut c).remove(0);
    assert_eq!(
        deliver(&mut a, &f),
        Err(RxDrop::WrongState),
        "INIT does not receive"
    );
}

#[test]
fn a_failed_gather_stops_the_send_queue_only() {
    let mut a = side(A, gid6(1));
    let mut b = side(B, gid6(2));
    let d = dest_to(&b, &a);
    a.qp.post_send(send_wr(1, SendOp::Send, 0, 8, 99), d)
        .unwrap();
    a.qp.post_send(send_wr(2, SendOp::Send, 0, 8, KEY), d)
        .unwrap();
    assert!(frames(&mut a).is_empty());
    assert_eq!(a.qp.state(), QpState::Sqe);
    let w = wcs(&mut a);
    assert_eq!(w[0].status, WcStatus::LocProtErr);
    assert_eq!(w[1].status, WcStatus::WrFlushErr);
    assert_eq!(a.qp.stats().tx_gather_err, 1);
    // Receiving goes on in SQE.
    a.qp.post_recv(recv_wr(5, 0, 100, KEY)).unwrap();
    b.qp.post_send(send_wr(1, SendOp::Send, 0, 8, KEY), dest_to(&a, &b))
        .unwrap();
    deliver(&mut a, &frames(&mut b)[0]).unwrap();
    assert_eq!(wcs(&mut a)[0].status, WcStatus::Success);
    a.qp.modify(&QpAttr {
        state: Some(QpState::Rts),
        ..QpAttr::default()
    })
    .unwrap();
    a.qp.post_send(send_wr(3, SendOp::Send, 0, 8, KEY), d)
        .unwrap();
    assert_eq!(frames(&mut a).len(), 1);
}

#[test]
fn a_bad_receive_wqe_moves_the_qp_to_error() {
    let mut a = side(A, gid6(1));
    let mut b = side(B, gid6(2));
    b.qp.post_recv(recv_wr(1, 0, 100, 99)).unwrap();
    b.qp.post_recv(recv_wr(2, 0, 100, KEY)).unwrap();
    a.qp.post_send(send_wr(1, SendOp::Send, 0, 8, KEY), dest_to(&b, &a))
        .unwrap();
    deliver(&mut b, &frames(&mut a)[0]).unwrap();
    let w = wcs(&mut b);
    assert_eq!(w[0].status, WcStatus::LocProtErr);
    assert_eq!(w[1].status, WcStatus::WrFlushErr);
    assert_eq!(b.qp.state(), QpState::Err);
    assert_eq!(b.qp.poll_event().unwrap().kind, QpEventKind::Fatal);
}

#[test]
fn ud_qps_on_one_srq() {
    let srq = Arc::new(TestSrq::default());
    let mk = |qpn: u32, gid| {
        let mut cfg = UdConfig::new(Qpn::new(qpn), mac(qpn), gid);
        cfg.rq_depth = 4;
        let mut s = side_with(cfg);
        s.qp = UdQp::new(cfg).with_srq(srq.clone());
        for st in ud_steps(QKEY, 0) {
            s.qp.modify(&st).unwrap();
        }
        s
    };
    let mut b1 = mk(B, gid6(2));
    let mut b2 = mk(0x3001, gid6(3));
    let mut a = side(A, gid6(1));
    assert_eq!(
        b1.qp.post_recv(recv_wr(1, 0, 10, KEY)),
        Err(PostError::InvalidState)
    );
    for i in 0..3 {
        srq.post(recv_wr(i, i * 2048, 2048, KEY));
    }
    for (i, to) in [&b1, &b2, &b1].iter().enumerate() {
        let d = dest_to(to, &a);
        a.qp.post_send(send_wr(i as u64, SendOp::Send, 0, 20, KEY), d)
            .unwrap();
    }
    let f = frames(&mut a);
    deliver(&mut b1, &f[0]).unwrap();
    deliver(&mut b2, &f[1]).unwrap();
    deliver(&mut b1, &f[2]).unwrap();
    assert_eq!(srq.taken(), 3);
    let ids1: Vec<u64> = wcs(&mut b1).iter().map(|c| c.wr_id).collect();
    let ids2: Vec<u64> = wcs(&mut b2).iter().map(|c| c.wr_id).collect();
    assert_eq!(ids1, [0, 2]);
    assert_eq!(ids2, [1]);
    // Empty SRQ: no WQE.
    a.qp.post_send(send_wr(9, SendOp::Send, 0, 20, KEY), dest_to(&b1, &a))
        .unwrap();
    assert_eq!(deliver(&mut b1, &frames(&mut a)[0]), Err(RxDrop::NoWqe));
    // At most rq_depth unpolled receive completions per QP.
    for i in 0..6 {
        srq.post(recv_wr(100 + i, 0, 2048, KEY));
    }
    for i in 0..5 {
        a.qp.post_send(send_wr(i, SendOp::Send, 0, 20, KEY), dest_to(&b1, &a))
            .unwrap();
    }
    let f = frames(&mut a);
    let r: Vec<_> = f.iter().map(|f| deliver(&mut b1, f)).collect();
    assert_eq!(r[4], Err(RxDrop::CqFull));
    assert_eq!(b1.qp.stats().rx_cq_full, 1);
    assert_eq!(srq.len(), 2, "the dropped frame took no WQE");
    assert_eq!(wcs(&mut b1).len(), 4);
}

/// A network for the property test: each frame is lost, delivered, or
/// duplicated, possibly corrupted, in a shuffled order.
#[derive(Debug, Clone)]
struct Fault {
    copies: u8,
    corrupt: Option<(usize, u8)>,
}

/// `ff0e::<n>`, a multicast GID.
fn mgid(n: u8) -> [u8; 16] {
    let mut g = [0u8; 16];
    g[0] = 0xff;
    g[1] = 0x0e;
    g[15] = n;
    g
}

/// A datagram from `a` to the multicast QPN (or to `qpn`), as a sender
/// addressing a group sends it (docs/wire.md §13.5).
fn mcast_frame(a: &mut Side, qpn: u32, qkey: u32, len: u32) -> Vec<u8> {
    let d = UdDest {
        dmac: [0x33, 0x33, 0, 0, 0, 7],
        remote_qpn: qpn,
        remote_qkey: qkey,
        sgid: a.gid,
        traffic_class: 0,
        hop_limit: 1,
    };
    a.qp.post_send(send_wr(1, SendOp::Send, 0x200, len, KEY), d)
        .unwrap();
    frames(a).remove(0)
}

#[test]
fn a_multicast_datagram_carries_the_group_gid_and_needs_the_multicast_qpn() {
    let mut a = side(A, gid6(1));
    let mut b = side(B, gid6(2));
    for i in 0..4 {
        b.qp.post_recv(recv_wr(i, i * 0x1000, 0x1000, KEY)).unwrap();
    }
    let f = mcast_frame(&mut a, 0xff_ffff, QKEY, 300);
    assert_eq!(MCAST_QPN, Qpn::new(0xff_ffff));
    b.qp.handle_mcast_frame(now(), &f, &mut b.mem, &mgid(7))
        .unwrap();
    let got = wcs(&mut b);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].status, WcStatus::Success);
    assert_eq!(got[0].byte_len, 340);
    assert_eq!(got[0].src_qp, Qpn::new(A));
    assert_eq!(got[0].qp_num, Qpn::new(B));
    assert!(got[0].grh);
    let grh = expected_grh6(gid6(1), mgid(7), 0, 1, false, 300);
    assert_eq!(&region(&b)[..40], &grh[..], "DGID = the group");
    let src = region(&a)[0x200..0x200 + 300].to_vec();
    assert_eq!(&region(&b)[40..340], &src[..]);
    // The unicast path does not take a multicast frame...
    assert_eq!(deliver(&mut b, &f), Err(RxDrop::WrongQp));
    // ...nor the multicast path a unicast one, even for this QP.
    let u = mcast_frame(&mut a, B, QKEY, 8);
    assert_eq!(
        b.qp.handle_mcast_frame(now(), &u, &mut b.mem, &mgid(7)),
        Err(RxDrop::WrongQp)
    );
    assert_eq!(b.qp.stats().rx_wrong_qp, 2);
    // The Q_Key is checked as for unicast, and no WQE is consumed.
    let k = mcast_frame(&mut a, 0xff_ffff, QKEY ^ 1, 8);
    assert_eq!(
        b.qp.handle_mcast_frame(now(), &k, &mut b.mem, &mgid(7)),
        Err(RxDrop::BadQkey)
    );
    assert!(wcs(&mut b).is_empty());
    // A corrupted copy is dropped on the CRC.
    let mut bad = f.clone();
    bad[60] ^= 1;
    assert!(b
        .qp
        .handle_mcast_frame(now(), &bad, &mut b.mem, &mgid(7))
        .is_err());
    // The unicast path still works and keeps the port's GID.
    deliver(&mut b, &u).unwrap();
    let got = wcs(&mut b);
    assert_eq!(got.len(), 1);
    assert_eq!(&region(&b)[0x1000 + 24..0x1000 + 40], &gid6(2)[..]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any bytes through the multicast path: never a panic, and a
    /// completion only for a well-formed datagram to the multicast QPN.
    #[test]
    fn multicast_path_takes_only_multicast_datagrams(
        len in 0u32..1024,
        flip in proptest::option::of((0usize..1200, 1u8..=255)),
        qpn in prop_oneof![Just(0xff_ffffu32), any::<u32>()],
    ) {
        let mut a = side(A, gid6(1));
        let mut b = side(B, gid6(2));
        b.qp.post_recv(recv_wr(1, 0, 0x1000, KEY)).unwrap();
        let mut f = mcast_frame(&mut a, qpn, QKEY, len);
        if let Some((at, x)) = flip {
            let at = at % f.len();
            f[at] ^= x;
        }
        let r = b.qp.handle_mcast_frame(now(), &f, &mut b.mem, &mgid(3));
        let parsed = Frame::new_checked(&f[..]).and_then(|fr| UdRepr::parse(&fr));
        match parsed {
            Ok(p) if p.dst_qpn == MCAST_QPN && p.deth.qkey == QKEY => {
                prop_assert!(r.is_ok());
                let got = wcs(&mut b);
                prop_assert_eq!(got.len(), 1);
                prop_assert_eq!(&region(&b)[24..40], &mgid(3)[..]);
            }
            _ => {
                prop_assert!(r.is_err());
                prop_assert!(wcs(&mut b).is_empty());
            }
        }
    }
}

fn fault() -> impl Strategy<Value = Fault> {
    (
        prop_oneof![3 => Just(1u8), 1 => Just(0u8), 1 => Just(2u8), 1 => Just(3u8)],
        proptest::option::weighted(0.2, (any::<usize>(), 1u8..=255)),
    )
        .prop_map(|(copies, corrupt)| Fault { copies, corrupt })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn lossy_network_delivers_only_what_was_sent(
        msgs in proptest::collection::vec((0usize..=1024, any::<bool>(), fault()), 1..40),
        order_seed in any::<u64>(),
        v4 in any::<bool>(),
    ) {
        let (ga, gb) = if v4 { (gid4(1), gid4(2)) } else { (gid6(1), gid6(2)) };
        let mut a = side_v2(A, ga);
        let mut b = side_v2(B, gb);
        let slot = 1024 + 64;
        for i in 0..msgs.len() {
            b.qp.post_recv(recv_wr(i as u64, (i * slot) as u64, slot as u32, KEY)).unwrap();
        }
        // Send buffers: message i's bytes start with its index.
        let mut sent = Vec::new();
        let d = dest_to(&b, &a);
        for (i, (len, imm, _)) in msgs.iter().enumerate() {
            let at = 40_000 + i * 8;
            let op = if *imm { SendOp::SendWithImm(i as u32) } else { SendOp::Send };
            let len = (*len).min(MEM - at);
            a.qp.post_send(send_wr(i as u64, op, at as u64, len as u32, KEY), d).unwrap();
            sent.push(region(&a)[at..at + len].to_vec());
        }
        let out = frames(&mut a);
        prop_assert_eq!(out.len(), msgs.len());
        let done = wcs(&mut a);
        prop_assert_eq!(done.len(), msgs.len());
        prop_assert!(done.iter().all(|c| c.status == WcStatus::Success));
        // The network.
        let mut wire: Vec<(usize, bool, Vec<u8>)> = Vec::new();
        let mut corrupted = 0u64;
        for (i, f) in out.iter().enumerate() {
            let fl = &msgs[i].2;
            for c in 0..fl.copies {
                let mut g = f.clone();
                let mut bad = false;
                if let (0, Some((at, x))) = (c, fl.corrupt) {
                    // Only bytes the CRC covers (and the CRC itself).
                    let at = 16 + at % (g.len() - 16);
                    g[at] ^= x;
                    bad = true;
                    corrupted += 1;
                }
                wire.push((i, bad, g));
            }
        }
        let mut x = order_seed | 1;
        for k in (1..wire.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            wire.swap(k, (x % (k as u64 + 1)) as usize);
        }
        let mut good_copies = vec![0usize; msgs.len()];
        for (i, bad, g) in &wire {
            let r = deliver(&mut b, g);
            if *bad {
                prop_assert!(r.is_err(), "a corrupted copy was accepted");
            } else {
                good_copies[*i] += 1;
            }
        }
        let s = *b.qp.stats();
        prop_assert_eq!(s.rx_bad_crc + s.rx_malformed + s.rx_truncated + s.rx_unsupported, corrupted);
        // Every completion is one message that was sent, byte for byte,
        // and no (payload, immediate) arrives more often than the network
        // delivered intact copies of messages that carry it.
        let got = wcs(&mut b);
        let key = |m: &[u8], imm: Option<u32>| (m.to_vec(), imm);
        let mut budget = std::collections::HashMap::new();
        for (j, m) in sent.iter().enumerate() {
            let imm = msgs[j].1.then_some(j as u32);
            *budget.entry(key(m, imm)).or_insert(0usize) += good_copies[j];
        }
        for c in &got {
            prop_assert_eq!(c.status, WcStatus::Success);
            prop_assert!(c.grh);
            let at = c.wr_id as usize * slot;
            let buf = &region(&b)[at..at + c.byte_len as usize];
            let payload = &buf[40..];
            let left = budget.get_mut(&key(payload, c.imm));
            prop_assert!(left.is_some(), "received bytes nobody sent");
            let left = left.unwrap();
            prop_assert!(*left > 0, "more copies than the network made");
            *left -= 1;
            let mut grh = [0u8; 40];
            let sl = write_grh(&mut grh, &ga, &gb, 0x28, 64, c.imm.is_some(), payload.len(), true);
            prop_assert_eq!(&buf[..40], &grh[..]);
            prop_assert_eq!(c.sl, sl);
            prop_assert_eq!(sl == 2, v4);
        }
        let delivered: usize = good_copies.iter().sum();
        prop_assert_eq!(got.len(), delivered.min(msgs.len()));
        prop_assert_eq!(s.rx_no_wqe as usize, delivered.saturating_sub(msgs.len()));
    }
}
