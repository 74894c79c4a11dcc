//! Property tests: the decoder never panics, and emit/parse round-trip.

use omx_wire::*;
use proptest::prelude::*;

fn decode(bytes: &[u8]) {
    if let Ok(f) = Frame::new_checked(bytes) {
        let _ = f.payload();
        let _ = f.ext();
        let _ = f.check_crc();
        let _ = FrameRepr::parse(&f);
        let _ = FrameRepr::parse_ignoring_crc(&f);
        let _ = UdRepr::parse(&f);
        if let Ok(r) = UdRepr::parse_ignoring_crc(&f) {
            // Whatever UD accepts re-emits to the same value.
            let mut buf = vec![0u8; r.buffer_len()];
            let n = r
                .emit(&mut Frame::new_unchecked(&mut buf[..]), |p| {
                    p.copy_from_slice(f.payload())
                })
                .expect("a parsed UD repr re-emits");
            let again = Frame::new_checked(&buf[..n]).expect("valid");
            assert_eq!(UdRepr::parse(&again).expect("fresh CRC"), r);
        }
    }
}

fn with_valid_head(mut bytes: Vec<u8>, ptype: u8) -> Vec<u8> {
    if bytes.len() >= EXT_OFFSET {
        bytes[12] = 0x86;
        bytes[13] = 0xdf;
        bytes[16] = ptype;
        bytes[17] = VERSION;
        bytes[19] = 0;
        let n = bytes.len();
        let pay = n.saturating_sub(EXT_OFFSET + 4) as u16;
        bytes[32..34].copy_from_slice(&pay.min(300).to_be_bytes());
    }
    bytes
}

fn opcode_strategy() -> impl Strategy<Value = Opcode> {
    (0x80u8..=0x97).prop_filter_map("known", |b| match Opcode::from(b) {
        Opcode::Unknown(_) => None,
        o => Some(o),
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        decode(&bytes);
    }

    /// UD frames: SEND Only (with immediate) plus any other type byte,
    /// any flags, any length, with and without a correct CRC.
    #[test]
    fn plausible_ud_frames_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 36..400),
        ptype in prop_oneof![Just(0x84u8), Just(0x85u8), 0x80u8..0xa0],
    ) {
        let mut b = with_valid_head(bytes, ptype);
        if b.len() >= EXT_OFFSET {
            b[19] = 3;
        }
        decode(&b);
        if let Ok(f) = Frame::new_checked(&b[..]) {
            let (o, crc) = (f.crc_offset(), f.compute_crc());
            b[o..o + 4].copy_from_slice(&crc.to_be_bytes());
            decode(&b);
        }
    }

    #[test]
    fn ud_emit_parse_round_trip(
        psn in any::<u32>(),
        dst in any::<u32>(),
        src in any::<u32>(),
        solicited in any::<bool>(),
        qkey in any::<u32>(),
        tc_hop in any::<(u8, u8)>(),
        sgid in any::<[u8; 16]>(),
        imm in any::<Option<u32>>(),
        payload in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let repr = UdRepr {
            dst_mac: [1, 2, 3, 4, 5, 6],
            src_mac: [6, 5, 4, 3, 2, 1],
            peer_index: 7,
            dst_qpn: Qpn::new(dst),
            src_qpn: Qpn::new(src),
            psn: Psn::new(psn),
            solicited,
            deth: Deth { qkey, traffic_class: tc_hop.0, hop_limit: tc_hop.1, sgid },
            imm,
            payload_len: payload.len(),
        };
        let mut buf = vec![0xa5u8; repr.buffer_len()];
        let n = repr.emit(&mut Frame::new_unchecked(&mut buf[..]), |p| p.copy_from_slice(&payload)).unwrap();
        prop_assert_eq!(n, buf.len());
        let f = Frame::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(UdRepr::parse(&f).unwrap(), repr);
        prop_assert_eq!(FrameRepr::parse(&f).unwrap_err(), Error::Unsupported);
        prop_assert_eq!(f.payload(), &payload[..]);
        // Every truncation is an error.
        for k in 0..n.min(repr.header_len() + payload.len() + 4) {
            prop_assert!(Frame::new_checked(&buf[..k]).and_then(|f| UdRepr::parse(&f)).is_err());
        }
    }

    #[test]
    fn plausible_frames_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 36..400),
        ptype in 0x80u8..0xa0,
    ) {
        let mut b = with_valid_head(bytes, ptype);
        decode(&b);
        // Also with a correct CRC, so parse goes past it.
        if let Ok(f) = Frame::new_checked(&b[..]) {
            let (o, crc) = (f.crc_offset(), f.compute_crc());
            b[o..o + 4].copy_from_slice(&crc.to_be_bytes());
            decode(&b);
        }
    }

    #[test]
    fn emit_parse_round_trip(
        opcode in opcode_strategy(),
        psn in any::<u32>(),
        dst in any::<u32>(),
        src in any::<u32>(),
        flags in any::<(bool, bool, bool)>(),
        va in any::<u64>(),
        key in any::<u32>(),
        len in any::<u32>(),
        imm in any::<u32>(),
        msn in 0u32..(1 << 24),
        credits in any::<u16>(),
        payload in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let l = opcode.layout().unwrap();
        let payload_len = if opcode.may_have_payload() { payload.len() } else { 0 };
        let repr = FrameRepr {
            dst_mac: [1, 2, 3, 4, 5, 6],
            src_mac: [6, 5, 4, 3, 2, 1],
            peer_index: 7,
            bth: Bth {
                opcode,
                transport: Transport::Rc,
                ack_req: flags.0,
                solicited: flags.1,
                dst_qpn: Qpn::new(dst),
                src_qpn: Qpn::new(src),
                psn: Psn::new(psn),
            },
            ext: Ext {
                ack: (flags.2 && opcode.is_request())
                    .then_some(Paeth { psn: Psn::new(psn ^ 0x5a5a5a), credits }),
                reth: l.reth.then_some(Reth { va, rkey: key, dma_len: len }),
                atomic: l.atomic_eth.then_some(AtomicEth { va, rkey: key, swap_add: va ^ 1, compare: va ^ 2 }),
                aeth: l.aeth.then_some(Aeth { syndrome: Syndrome::RnrNak((imm & 0x1f) as u8), msn, credits }),
                imm: l.imm.then_some(imm),
                ieth: l.ieth.then_some(key),
                atomic_ack: l.atomic_ack.then_some(va),
            },
            payload_len,
        };
        let mut buf = vec![0xa5u8; repr.buffer_len()];
        let n = repr.emit(&mut Frame::new_unchecked(&mut buf[..]), |p| p.copy_from_slice(&payload[..payload_len])).unwrap();
        prop_assert_eq!(n, buf.len());
        let f = Frame::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(FrameRepr::parse(&f).unwrap(), repr);
        prop_assert_eq!(f.payload(), &payload[..payload_len]);
    }

    /// Flag P on a response or ACK is malformed, whatever follows.
    #[test]
    fn piggy_ack_only_on_requests(
        opcode in opcode_strategy(),
        bytes in proptest::collection::vec(any::<u8>(), 36..400),
    ) {
        let mut b = with_valid_head(bytes, u8::from(opcode));
        b[18] |= 0x20;
        if !opcode.is_request() {
            prop_assert!(Frame::new_checked(&b[..]).is_err());
        } else {
            decode(&b);
        }
    }
}
