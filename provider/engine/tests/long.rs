//! Messages of 2^31 bytes at path MTU 256 (2^23 PSNs, half the PSN
//! space: docs/wire.md §5) and the READ response burst (§10.1), over a
//! memory that does not allocate 2 GiB ([`SparseMemory`]).

use omx_engine::testing::{
    completions, exchange, parse, pattern, rts_qp, transmit_all, Conn, FakeMemory, SparseMemory,
    ALL_ACCESS,
};
use omx_engine::*;
use omx_wire::{Ext, Opcode, Psn, Qpn, Reth};

const P: u32 = 0x1001;
const V: u32 = 0x2001;
const MTU: u32 = 256;
const VA: u64 = 0x1_0000_0000;
const KEY: u32 = 0x500;
const GIB2: u32 = 1 << 31;
const NPSN: u32 = 1 << 23;

fn t0() -> Instant {
    Instant::from_micros(10)
}

/// The victim (responder) expects PSNs from just before the wrap.
fn conn(rq_psn: u32) -> Conn {
    Conn {
        mtu: PathMtu::Mtu256,
        rq_psn,
        ..Conn::new(V, P)
    }
}

fn big_memory() -> SparseMemory {
    let mut m = SparseMemory::default();
    m.add(KEY, VA, 1 << 32, &ALL_ACCESS);
    m
}

fn read_request(c: &Conn, psn: Psn, va: u64, len: u32) -> Vec<u8> {
    let ext = Ext {
        reth: Some(Reth {
            va,
            rkey: KEY,
            dma_len: len,
        }),
        ..Ext::default()
    };
    c.from_peer()
        .frame(Opcode::ReadRequest, psn.value(), ext, &[])
}

/// One drive: the timer pass (if due), then everything to transmit.
fn drive(qp: &mut RcQp, mem: &SparseMemory, now: Instant) -> Vec<omx_wire::FrameRepr> {
    if qp.poll_timeout().is_some_and(|t| t <= now) {
        qp.handle_timeout(now);
    }
    transmit_all(qp, now, mem, 1 << 20)
        .iter()
        .map(|f| parse(f))
        .collect()
}

/// A READ of 2^31 bytes at MTU 256 goes out READ_BURST frames per drive:
/// the resume timer is due at once, the next timer pass grants the next
/// burst; PSNs and payload offsets run on across the 24-bit wrap.
#[test]
fn a_2_31_byte_read_goes_out_256_frames_per_drive() {
    let e = Psn::new(0xFF_F000);
    let c = conn(e.value());
    let mut v = rts_qp(QpConfig::new(Qpn::new(V)), &c);
    let mut mem = big_memory();
    v.handle_frame(t0(), &read_request(&c, e, VA, GIB2), &mut mem)
        .unwrap();
    let mut next = 0u32;
    for round in 0..40 {
        let out = drive(&mut v, &mem, t0());
        assert_eq!(out.len(), 256, "round {round}");
        for r in &out {
            assert_eq!(r.bth.psn, e.add(next));
            let want = if next == 0 {
                Opcode::ReadResponseFirst
            } else {
                Opcode::ReadResponseMiddle
            };
            assert_eq!(r.bth.opcode, want);
            next += 1;
        }
        assert_eq!(v.poll_timeout(), Some(t0()), "resume at once");
        // Without the timer pass (no input), nothing more.
        assert!(transmit_all(&mut v, t0(), &mem, 10).is_empty());
    }
    assert!(e.add(next).value() < e.value(), "crossed the wrap");
    assert_eq!(v.stats().tx_read_paused, 40 * 2);
    assert_eq!(mem.bytes_read.get(), u64::from(next) * u64::from(MTU));
    // The payload comes from va + k * mtu.
    let mut buf = vec![0; 1024];
    v.handle_timeout(t0());
    let tx = v.poll_transmit(t0(), &mut buf, &mem).unwrap();
    let f = omx_wire::Frame::new_checked(&buf[..tx.len]).unwrap();
    let off = u64::from(next) * u64::from(MTU);
    assert_eq!(f.payload()[0], pattern(VA + off));
    assert_eq!(f.payload()[255], pattern(VA + off + 255));
    assert_eq!(v.state(), QpState::Rts);
}

/// After that READ, the expected PSN is 2^23 ahead of its first PSN:
/// exactly half the space. Duplicates at its last PSN and at its first
/// are still recognised and matched; ones that ask for something else
/// are not.
#[test]
fn duplicates_at_the_ends_of_a_2_31_byte_read() {
    let e = Psn::new(0xFF_FF80);
    let c = conn(e.value());
    let mut v = rts_qp(QpConfig::new(Qpn::new(V)), &c);
    let mut mem = big_memory();
    v.handle_frame(t0(), &read_request(&c, e, VA, GIB2), &mut mem)
        .unwrap();
    assert_eq!(drive(&mut v, &mem, t0()).len(), 256);
    let last = e.add(NPSN - 1);
    let last_va = VA + u64::from(NPSN - 1) * u64::from(MTU);
    // The last response alone: matches (its job is still queued).
    let f = read_request(&c, last, last_va, MTU);
    assert_eq!(v.handle_frame(t0(), &f, &mut mem), Ok(()));
    assert_eq!(v.stats().rx_dup_read_unmatched, 0);
    for f in [
        read_request(&c, last, last_va, 2 * MTU),
        read_request(&c, last, last_va + 1, MTU),
        read_request(&c, last, last_va - u64::from(MTU), MTU),
    ] {
        assert_eq!(
            v.handle_frame(t0(), &f, &mut mem),
            Err(RxDrop::DuplicateRead)
        );
    }
    // The whole READ again, from its first PSN (2^23 behind ePSN).
    let f = read_request(&c, e, VA, GIB2);
    assert_eq!(v.handle_frame(t0(), &f, &mut mem), Ok(()));
    let out = drive(&mut v, &mem, t0());
    assert_eq!(out[0].bth.psn, e, "rewound to the first response");
    assert_eq!(out.len(), 256);
    // The next request after the READ is in sequence at first + 2^23.
    let f = c.from_peer().frame(
        Opcode::WriteOnly,
        e.add(NPSN).value(),
        Ext {
            reth: Some(Reth {
                va: VA,
                rkey: KEY,
                dma_len: 8,
            }),
            ..Ext::default()
        },
        &[1; 8],
    );
    v.handle_frame(t0(), &f, &mut mem).unwrap();
    assert_eq!(mem.bytes_written, 8, "executed, not taken for a duplicate");
    assert_eq!(v.stats().rx_out_of_sequence, 0);
    assert_eq!(v.state(), QpState::Rts);
}

/// The requester side of a 2^31-byte WRITE and SEND at MTU 256 starting
/// just before the PSN wrap: segmentation, the RETH, PSNs that run on
/// across the wrap, progress by ACKs, no early completion. (Its end is
/// covered by the requester's unit test: 2^23 packets take too long in
/// a debug build.) One byte more is refused at post time.
#[test]
fn a_2_31_byte_write_and_send_across_the_wrap() {
    for op in [
        SendOp::RdmaWrite {
            remote_addr: 0x7000_0000,
            rkey: 3,
        },
        SendOp::Send,
    ] {
        let start = Psn::new(0xFF_FF00);
        let c = Conn {
            mtu: PathMtu::Mtu256,
            sq_psn: start.value(),
            ..Conn::new(V, P)
        };
        let mut qp = rts_qp(QpConfig::new(Qpn::new(V)), &c);
        let mut mem = big_memory();
        let wr = |len| SendWr {
            wr_id: 1,
            op,
            sg: SgList::single(VA, len, KEY),
            signaled: true,
            solicited: false,
        };
        assert_eq!(qp.post_send(wr(GIB2 + 1)), Err(PostError::TooLong));
        qp.post_send(wr(GIB2)).unwrap();
        let mut next = 0u32;
        for _ in 0..20 {
            let out: Vec<_> = transmit_all(&mut qp, t0(), &mem, 1000)
                .iter()
                .map(|f| parse(f))
                .collect();
            assert!(!out.is_empty());
            for r in &out {
                assert_eq!(r.bth.psn, start.add(next));
                assert_eq!(r.payload_len, MTU as usize);
                if next == 0 {
                    assert!(matches!(
                        r.bth.opcode,
                        Opcode::WriteFirst | Opcode::SendFirst
                    ));
                    if let Some(reth) = r.ext.reth {
                        assert_eq!(reth.dma_len, GIB2);
                    }
                } else {
                    assert!(matches!(
                        r.bth.opcode,
                        Opcode::WriteMiddle | Opcode::SendMiddle
                    ));
                }
                next += 1;
            }
            let ack = c
                .from_peer()
                .ack(start.add(next - 1).value(), omx_wire::Syndrome::Ack, 64);
            qp.handle_frame(t0(), &ack, &mut mem).unwrap();
            assert!(completions(&mut qp).is_empty());
        }
        assert!(start.add(next).value() < start.value(), "crossed the wrap");
    }
}

/// A legitimate requester's READs never meet the burst limit: its window
/// bounds the responses it has outstanding. (exchange() runs no timers,
/// so a paused responder would stall this.)
#[test]
fn a_legitimate_read_is_never_paused() {
    let c = Conn {
        mtu: PathMtu::Mtu256,
        ..Conn::new(P, V)
    };
    let mut cfg = QpConfig::new(Qpn::new(0));
    cfg.rx_window = 256;
    let (mut a, mut b) = (rts_qp(cfg, &c), rts_qp(cfg, &c.peer()));
    let len = 1 << 20;
    let data: Vec<u8> = (0..len).map(|i| (i * 13) as u8).collect();
    let (mut ma, mut mb) = (FakeMemory::default(), FakeMemory::default());
    ma.add(1, 0, vec![0; len], &ALL_ACCESS);
    mb.add(2, 0, data.clone(), &ALL_ACCESS);
    for i in 0..4u64 {
        let wr = SendWr {
            wr_id: i,
            op: SendOp::RdmaRead {
                remote_addr: 0,
                rkey: 2,
            },
            sg: SgList::single(0, len as u32, 1),
            signaled: true,
            solicited: false,
        };
        a.post_send(wr).unwrap();
    }
    exchange((&mut a, &mut ma), (&mut b, &mut mb), t0(), 100_000);
    let wcs = completions(&mut a);
    assert_eq!(wcs.len(), 4);
    assert!(wcs.iter().all(|w| w.status == WcStatus::Success));
    assert_eq!(ma.region(1).unwrap().data, data);
    assert_eq!(b.stats().tx_read_paused, 0);
}
