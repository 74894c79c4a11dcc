//! The engine's receive path: arbitrary frames (CRC fixed up so that the
//! fuzzer gets past it) into a connected RC QP with posted send and
//! receive WRs, interleaved with transmit polls and timer expiries. Must
//! never panic, and completions must stay exactly-once.
#![no_main]

use libfuzzer_sys::fuzz_target;
use omx_engine::testing::{FakeMemory, ALL_ACCESS};
use omx_engine::*;
use omx_wire::{Frame, Psn, Qpn};

const QPN: u32 = 0x2001;
const PEER: u32 = 0x1001;

fn qp() -> RcQp {
    let mut cfg = QpConfig::new(Qpn::new(QPN));
    cfg.sq_depth = 16;
    cfg.rq_depth = 16;
    let mut qp = RcQp::new(cfg);
    let st = |s| QpAttr {
        state: Some(s),
        ..QpAttr::default()
    };
    qp.modify(&st(QpState::Init)).unwrap();
    qp.modify(&QpAttr {
        state: Some(QpState::Rtr),
        path_mtu: Some(PathMtu::Mtu256),
        dest_qpn: Some(Qpn::new(PEER)),
        rq_psn: Some(Psn::new(0xFF_FFF0)),
        ..QpAttr::default()
    })
    .unwrap();
    qp.modify(&QpAttr {
        state: Some(QpState::Rts),
        sq_psn: Some(Psn::new(10)),
        timeout: Some(1),
        retry_cnt: Some(2),
        rnr_retry: Some(2),
        ..QpAttr::default()
    })
    .unwrap();
    qp
}

fuzz_target!(|data: &[u8]| {
    let mut mem = FakeMemory::default();
    mem.add(1, 0x1000, vec![0x5a; 4096], &ALL_ACCESS);
    mem.add(
        2,
        0x9000,
        vec![0; 4096],
        &[Access::LocalWrite, Access::RemoteWrite],
    );
    let mut qp = qp();
    for i in 0..4u64 {
        let sg = SgList::single(0x1000 + i * 512, 512, 1);
        qp.post_recv(RecvWr { wr_id: i, sg }).unwrap();
        let op = match i {
            0 => SendOp::Send,
            1 => SendOp::RdmaRead {
                remote_addr: 0,
                rkey: 7,
            },
            2 => SendOp::RdmaWrite {
                remote_addr: 0,
                rkey: 7,
            },
            _ => SendOp::SendWithImm(5),
        };
        qp.post_send(SendWr {
            wr_id: 100 + i,
            op,
            sg,
            signaled: true,
            solicited: false,
        })
        .unwrap();
    }
    let mut now = Instant::from_micros(1);
    let mut buf = vec![0u8; omx_wire::max_frame_len(256)];
    let mut seen = Vec::new();
    let mut rest = data;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])) % 400;
        rest = &rest[2..];
        let take = len.min(rest.len());
        let mut frame = rest[..take].to_vec();
        rest = &rest[take..];
        if frame.len() >= 36 {
            // Make it for us more often than not, then fix the CRC.
            frame[12] = 0x86;
            frame[13] = 0xdf;
            frame[17] = omx_wire::VERSION;
            if frame[18] & 1 == 0 {
                frame[21..24].copy_from_slice(&QPN.to_be_bytes()[1..]);
                frame[25..28].copy_from_slice(&PEER.to_be_bytes()[1..]);
            }
            if let Ok(f) = Frame::new_checked(&frame[..]) {
                let (o, crc) = (f.crc_offset(), f.compute_crc());
                frame[o..o + 4].copy_from_slice(&crc.to_be_bytes());
            }
        }
        let _ = qp.handle_frame(now, &frame, &mut mem);
        while qp.poll_transmit(now, &mut buf, &mem).is_some() {}
        now = now + Duration::from_micros(u64::from(take as u8));
        qp.handle_timeout(now);
        while let Some(wc) = qp.poll_completion() {
            assert!(!seen.contains(&(wc.queue, wc.wr_id)), "completed twice");
            seen.push((wc.queue, wc.wr_id));
        }
    }
});
