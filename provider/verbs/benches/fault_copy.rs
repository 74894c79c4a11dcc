//! The fault-tolerant copy (`omx_verbs::fault::copy`, used for every copy
//! through a non-ODP MR) against `copy_nonoverlapping` (glibc memcpy, what
//! non-ODP MRs used before) and `process_vm_readv` (the ODP path and the
//! fallback off x86_64), for 64 B to 64 KiB, with both buffers aligned and
//! with both 3 bytes off.
//!
//! `cargo bench -p omx-verbs-objects --bench fault_copy`. Prints the best
//! of 7 runs of each (ns per copy, GB/s) and the ratio to memcpy. Both
//! buffers stay in cache (the same pair is copied again and again): this
//! measures the copy loop, not memory bandwidth.

use std::time::Instant;

use omx_verbs::fault;

const SIZES: [usize; 5] = [64, 1024, 4096, 9000, 65536];

fn best_ns(len: usize, off: usize, f: &dyn Fn(*mut u8, *const u8, usize)) -> f64 {
    let src: Vec<u8> = (0..len + 64).map(|i| i as u8).collect();
    let mut dst = vec![0u8; len + 64];
    let iters = ((64usize << 20) / len).max(2000);
    let mut best = f64::MAX;
    for _ in 0..7 {
        let t = Instant::now();
        for _ in 0..iters {
            f(
                dst.as_mut_ptr().wrapping_add(off),
                src.as_ptr().wrapping_add(off),
                len,
            );
            std::hint::black_box(&mut dst);
        }
        best = best.min(t.elapsed().as_nanos() as f64 / iters as f64);
    }
    assert_eq!(&dst[off..off + len], &src[off..off + len]);
    best
}

fn main() {
    assert!(
        fault::install(),
        "this benchmark measures the x86_64 routine"
    );
    let memcpy = |d: *mut u8, s: *const u8, n: usize| {
        // SAFETY: in-bounds, non-overlapping buffers of the benchmark.
        unsafe { core::ptr::copy_nonoverlapping(s, d, n) }
    };
    let ours = |d: *mut u8, s: *const u8, n: usize| {
        // SAFETY: as above.
        unsafe { fault::copy(d, s, n) }.unwrap()
    };
    let vm = |d: *mut u8, s: *const u8, n: usize| {
        // SAFETY: as above.
        unsafe { fault::vm_copy(d, s as usize, n, false) }.unwrap()
    };
    println!("| size | offset | memcpy ns | fault::copy ns (x memcpy) | process_vm_readv ns (x memcpy) |");
    println!("|---|---|---|---|---|");
    for off in [0, 3] {
        for len in SIZES {
            let m = best_ns(len, off, &memcpy);
            let o = best_ns(len, off, &ours);
            let v = best_ns(len, off, &vm);
            println!(
                "| {len} | {off} | {m:.1} ({:.0} GB/s) | {o:.1} ({:.2}x) | {v:.1} ({:.2}x) |",
                len as f64 / m,
                o / m,
                v / m
            );
        }
    }
}
