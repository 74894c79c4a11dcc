//! The receive path on arbitrary frames (what the `fuzz/engine_rx` target
//! does, as a property test, so that it runs under plain `cargo test`):
//! never panics, never sends without bound, completions stay
//! exactly-once. Also: the fuzz corpus's seeds reach deep.

use omx_engine::testing::rx::{self, Harness};
use omx_engine::*;
use omx_wire::Opcode;
use proptest::prelude::*;

/// A frame that passes the decoder: known opcode, PSN near the expected
/// ones, any flags, RC or UC (the harness aims it at the QP, or its UC
/// twin, and fixes the CRC).
fn plausible_frame() -> impl Strategy<Value = Vec<u8>> {
    (
        0x80u8..0x98,
        prop_oneof![0xFF_FFE0u32..0xFF_FFFF, 0u32..40],
        any::<u8>(),
        proptest::collection::vec(any::<u8>(), 0..300),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(ptype, psn, flags, body, fix_len, uc)| {
            let mut f = vec![0u8; 36];
            f[16] = ptype;
            f[18] = flags;
            f[19] = u8::from(uc);
            f[28..32].copy_from_slice(&psn.to_be_bytes());
            f.extend_from_slice(&body);
            if fix_len {
                let ext = Opcode::from(ptype).layout().map_or(0, |l| l.len());
                let pay = body.len().saturating_sub(ext + 4) as u16;
                f[32..34].copy_from_slice(&pay.to_be_bytes());
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
        let mut mem = rx::fake_memory();
        let mut h = Harness::new();
        for f in rx::frames(&rx::encode(&frames)) {
            if rx::wants_dereg(&f) {
                mem.remove(rx::REMOTE_KEY);
            }
            h.input(&f, &mut mem);
        }
    }
}

/// The seeds the fuzz corpus is made of (fuzz/src/bin/gen_corpus.rs)
/// decode as the harness sees them and do what they are for: every
/// opcode is there, with and without a piggybacked ACK, and the whole
/// exchanges execute.
#[test]
fn fuzz_seeds_reach_deep() {
    let seeds = rx::seeds();
    for code in 0x80u8..0xa0 {
        let op = Opcode::from(code);
        if op.layout().is_some() {
            for suffix in ["", "-paeth"] {
                let name = format!("{op:?}{suffix}").to_lowercase();
                assert!(seeds.iter().any(|(n, _)| *n == name), "{name}");
            }
        }
    }
    let run = |name: &str| {
        let (_, frames) = seeds.iter().find(|(n, _)| n == name).unwrap();
        let input = rx::encode(frames);
        let aimed: Vec<_> = rx::frames(&input).collect();
        assert_eq!(
            &aimed, frames,
            "{name}: the harness keeps seeds as they are"
        );
        let mut mem = rx::fake_memory();
        let mut h = Harness::new();
        for f in &aimed {
            h.input(f, &mut mem);
        }
        (h, mem)
    };
    let (h, mem) = run("exchange-send");
    assert_eq!(h.qp.state(), QpState::Rts);
    assert_eq!(&mem.region(rx::LOCAL_KEY).unwrap().data[..4], &[0x33; 4]);
    let (h, mem) = run("exchange-write");
    assert_eq!(h.qp.state(), QpState::Rts);
    assert_eq!(mem.region(rx::REMOTE_KEY).unwrap().data[561], 0x33);
    let (h, _) = run("exchange-read");
    assert_eq!(h.qp.stats().rx_dup_read_unmatched, 0);
    // Three responses, the same again, the tail's two, the on-demand
    // READ's three, and the QP's own requests (SEND and WRITE two frames
    // each, the READ and the FETCH_ADD one each).
    assert_eq!(h.qp.stats().tx_frames, 3 + 3 + 2 + 3 + 6);
    let (h, mem) = run("exchange-answers");
    assert_eq!(h.qp.state(), QpState::Rts);
    assert_eq!(h.qp.stats().rx_ack_out_of_window, 0);
    // Every send WR completed, the FETCH_ADD with the acknowledge's value.
    assert_eq!(h.qp.sq_free(), 16);
    let res = &mem.region(rx::LOCAL_KEY).unwrap().data[3 * 1024..3 * 1024 + 8];
    assert_eq!(u64::from_ne_bytes(res.try_into().unwrap()), 7);
    let (h, _) = run("sendonly-paeth");
    assert_eq!(h.qp.stats().rx_piggy_acks, 1);
    assert_eq!(h.qp.stats().rx_ack_out_of_window, 0);
}

/// The UC seeds reach the UC twin's responder: a whole SEND completes,
/// and the gap seed drops a Last and abandons its message before the
/// resynchronised one lands.
#[test]
fn uc_seeds_reach_the_uc_responder() {
    let seeds = rx::seeds();
    let get = |n: &str| seeds.iter().find(|(k, _)| k == n).unwrap().1.clone();
    let mut mem = rx::fake_memory();
    let mut h = Harness::new();
    for f in &get("uc-exchange-send") {
        h.input(f, &mut mem);
    }
    assert_eq!(h.uc.stats().rx_frames, 3);
    assert_eq!(h.uc.sq_free(), 16, "the UC sends completed on transmit");
    let mut h = Harness::new();
    for f in &get("uc-gap-resync") {
        h.input(f, &mut mem);
    }
    let s = *h.uc.stats();
    assert_eq!((s.rx_frames, s.rx_uc_dropped, s.rx_uc_abandoned), (4, 1, 1));
    assert_eq!(h.qp.stats().rx_frames, 0);
    assert_eq!(h.uc.state(), QpState::Rts);
}
