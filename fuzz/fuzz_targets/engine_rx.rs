//! The engine's receive path: arbitrary frames (aimed at the QP and with
//! a fresh CRC, so that the fuzzer gets past the source check and the
//! CRC) into a connected RC QP with posted send and receive WRs (or its
//! UC twin, for a frame whose transport byte says UC),
//! interleaved with transmit polls and timer expiries, over the fake
//! memory (with a faulting range, and the remote region deregistered
//! when a frame says so). Must never panic, never send without bound,
//! and completions must stay exactly-once (omx_engine::testing::rx).
#![no_main]

use libfuzzer_sys::fuzz_target;
use omx_engine::testing::rx::{self, Harness};

fuzz_target!(|data: &[u8]| {
    let mut mem = rx::fake_memory();
    let mut h = Harness::new();
    for f in rx::frames(data) {
        if rx::wants_dereg(&f) {
            mem.remove(rx::REMOTE_KEY);
        }
        h.input(&f, &mut mem);
    }
});
