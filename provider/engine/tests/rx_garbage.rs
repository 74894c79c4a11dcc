//! The receive path on arbitrary frames (the `fuzz/engine_rx` target as a
//! property test, so it runs under plain `cargo test`): never panics, and
//! completions stay exactly-once.

use omx_engine::testing::{mac_of, rts_qp, Conn, FakeMemory, ALL_ACCESS};
use omx_engine::*;
use omx_wire::{Frame, Opcode, Qpn};
use proptest::prelude::*;

const QPN: u32 = 0x2001;
const PEER: u32 = 0x1001;

fn connected_qp() -> RcQp {
    let mut cfg = QpConfig::new(Qpn::new(QPN));
    cfg.sq_depth = 16;
    cfg.rq_depth = 16;
    let conn = Conn {
        mtu: PathMtu::Mtu256,
        rq_psn: 0xFF_FFF0,
        sq_psn: 10,
        timeout: 1,
        retry_cnt: 2,
        rnr_retry: 2,
        ..Conn::new(QPN, PEER)
    };
    rts_qp(cfg, &conn)
}

/// A frame that passes the decoder: known opcode, our QPNs, PSN near the
/// expected ones, fresh CRC.
fn plausible_frame() -> impl Strategy<Value = Vec<u8>> {
    (
        0x80u8..0x98,
        prop_oneof![0xFF_FFE0u32..0xFF_FFFF, 0u32..40],
        any::<u8>(),
        proptest::collection::vec(any::<u8>(), 0..300),
        any::<bool>(),
    )
        .prop_map(|(ptype, psn, flags, body, fix_len)| {
            let mut f = vec![0u8; 36];
            f[6..12].copy_from_slice(&mac_of(PEER));
            f[12] = 0x86;
            f[13] = 0xdf;
            f[16] = ptype;
            f[17] = omx_wire::VERSION;
            f[18] = flags;
            f[21..24].copy_from_slice(&QPN.to_be_bytes()[1..]);
            f[25..28].copy_from_slice(&PEER.to_be_bytes()[1..]);
            f[28..32].copy_from_slice(&psn.to_be_bytes());
            f.extend_from_slice(&body);
            if fix_len {
                let ext = Opcode::from(ptype).layout().map_or(0, |l| l.len());
                let pay = body.len().saturating_sub(ext + 4) as u16;
                f[32..34].copy_from_slice(&pay.to_be_bytes());
            }
            if let Ok(fr) = Frame::new_checked(&f[..]) {
                let (o, crc) = (fr.crc_offset(), fr.compute_crc());
                f[o..o + 4].copy_from_slice(&crc.to_be_bytes());
            }
            f
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn receive_path_never_panics(
        frames in proptest::collection::vec(
            prop_oneof![plausible_frame(), proptest::collection::vec(any::<u8>(), 0..120)],
            1..40,
        ),
    ) {
        let mut mem = FakeMemory::default();
        mem.add(1, 0x1000, vec![0x5a; 4096], &ALL_ACCESS);
        mem.add(7, 0, vec![0; 4096], &[Access::RemoteRead, Access::RemoteWrite]);
        let mut qp = connected_qp();
        for i in 0..4u64 {
            let sg = SgList::single(0x1000 + i * 512, 512, 1);
            qp.post_recv(RecvWr { wr_id: i, sg }).unwrap();
            let op = match i {
                0 => SendOp::Send,
                1 => SendOp::RdmaRead { remote_addr: 0, rkey: 7 },
                2 => SendOp::RdmaWrite { remote_addr: 0, rkey: 7 },
                _ => SendOp::SendWithImm(5),
            };
            qp.post_send(SendWr { wr_id: 100 + i, op, sg, signaled: true, solicited: false })
                .unwrap();
        }
        let mut now = Instant::from_micros(1);
        let mut buf = vec![0u8; omx_wire::max_frame_len(256)];
        let mut seen = Vec::new();
        for f in &frames {
            let _ = qp.handle_frame(now, f, &mut mem);
            let mut sent = 0;
            while qp.poll_transmit(now, &mut buf, &mem).is_some() {
                sent += 1;
                prop_assert!(sent < 1000, "poll_transmit never ends");
            }
            now = now + Duration::from_micros(7);
            qp.handle_timeout(now);
            while let Some(wc) = qp.poll_completion() {
                prop_assert!(!seen.contains(&(wc.queue, wc.wr_id)), "completed twice: {:?}", wc);
                seen.push((wc.queue, wc.wr_id));
            }
        }
    }
}
