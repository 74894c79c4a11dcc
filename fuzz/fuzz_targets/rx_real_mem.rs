//! The engine's receive path over the provider's real MR code: the same
//! harness as `engine_rx` (omx_engine::testing::rx), but registered
//! memory is omx-verbs-objects' MrTable / PdMem over real mappings, so
//! every copy is the one the provider makes (bounds, rights, raw copies,
//! the on-demand path through process_vm_writev). Each MR sits in a
//! mapping filled with canary bytes, checked after every frame: a byte
//! written outside an MR fails the run. The on-demand MR runs into a
//! PROT_NONE page (an application that unmapped part of it), and the
//! remote MR is deregistered when a frame says so. A type 2 memory window
//! on part of the remote MR is (re)bound through the QP before each frame
//! (a SEND with invalidate may have invalidated it).
#![no_main]

use libfuzzer_sys::fuzz_target;
use omx_engine::testing::rx::{self, Harness};
use omx_engine::testing::CANARY;
use omx_engine::{MemoryAccess, MwBind};
use omx_verbs::mr::{
    ACCESS_LOCAL_WRITE, ACCESS_MW_BIND, ACCESS_ON_DEMAND, ACCESS_REMOTE_ATOMIC,
    ACCESS_REMOTE_READ, ACCESS_REMOTE_WRITE,
};
use omx_verbs::{MrEntry, MrTable, MwType};

const PAGE: usize = 4096;
const PD: u32 = 1;

/// An anonymous mapping of `pages` pages, filled with canaries; the MR
/// lies at `offset`, [`rx::REGION_LEN`] bytes long. Pages from
/// `readable` on are PROT_NONE.
struct Mapping {
    base: *mut u8,
    pages: usize,
    readable: usize,
    offset: usize,
}

impl Mapping {
    fn new(pages: usize, readable: usize, offset: usize) -> Self {
        let len = pages * PAGE;
        // SAFETY: a fresh anonymous private mapping; no existing memory is
        // affected. The result is checked.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED, "mmap");
        let base = p.cast::<u8>();
        // SAFETY: [base, base + len) is the mapping just made, readable
        // and writable, and nothing else refers to it.
        unsafe { core::ptr::write_bytes(base, CANARY, len) };
        if readable < pages {
            // SAFETY: the tail pages of our own mapping.
            let r = unsafe {
                libc::mprotect(
                    base.add(readable * PAGE).cast(),
                    (pages - readable) * PAGE,
                    libc::PROT_NONE,
                )
            };
            assert_eq!(r, 0, "mprotect");
        }
        Mapping {
            base,
            pages,
            readable,
            offset,
        }
    }

    /// Where the MR starts in our address space.
    fn va(&self) -> u64 {
        self.base as u64 + self.offset as u64
    }

    /// Whether a canary byte of the accessible pages outside the MR
    /// changed. (Compared block-wise: a per-byte loop would be
    /// instrumented comparison by comparison and slow the fuzzer down
    /// thirtyfold.)
    fn damaged(&self) -> bool {
        static CANARIES: [u8; 3 * PAGE] = [CANARY; 3 * PAGE];
        // SAFETY: the first `readable` pages are mapped readable for the
        // mapping's life; the engine writes into them only through the
        // MR table, which no engine call is using now.
        let bytes = unsafe { core::slice::from_raw_parts(self.base, self.readable * PAGE) };
        let end = (self.offset + rx::REGION_LEN).min(bytes.len());
        let (before, after) = (&bytes[..self.offset], &bytes[end..]);
        before != &CANARIES[..before.len()] || after != &CANARIES[..after.len()]
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: our own mapping, no longer registered (the table is
        // dropped first) nor referred to.
        unsafe { libc::munmap(self.base.cast(), self.pages * PAGE) };
    }
}

fuzz_target!(|data: &[u8]| {
    // Local and remote MRs with 64 canary bytes before them and the rest
    // of a second page after; the on-demand MR's second half is in a
    // PROT_NONE page.
    let local = Mapping::new(2, 2, 64);
    let remote = Mapping::new(2, 2, 64);
    let odp = Mapping::new(3, 2, 2 * PAGE - rx::REGION_LEN / 2);
    let table = MrTable::new();
    let entry = |key, m: &Mapping, addr, access| MrEntry {
        lkey: key,
        rkey: key,
        pd: PD,
        addr,
        va: m.va(),
        len: rx::REGION_LEN as u64,
        access,
    };
    let remote_rights = ACCESS_LOCAL_WRITE
        | ACCESS_REMOTE_WRITE
        | ACCESS_REMOTE_READ
        | ACCESS_REMOTE_ATOMIC
        | ACCESS_MW_BIND;
    table.insert(entry(
        rx::LOCAL_KEY,
        &local,
        rx::LOCAL_VA,
        ACCESS_LOCAL_WRITE,
    ));
    table.insert(entry(rx::REMOTE_KEY, &remote, rx::REMOTE_VA, remote_rights));
    table.insert(entry(
        rx::ODP_KEY,
        &odp,
        rx::ODP_VA,
        remote_rights | ACCESS_ON_DEMAND,
    ));
    table.insert_mw(rx::WINDOW_KEY, PD, MwType::Two);
    let bind = MwBind {
        mw_rkey: rx::WINDOW_KEY,
        new_rkey: rx::WINDOW_KEY,
        mr_lkey: rx::REMOTE_KEY,
        addr: rx::WINDOW_VA,
        len: rx::WINDOW_LEN,
        access: remote_rights & (ACCESS_REMOTE_WRITE | ACCESS_REMOTE_READ | ACCESS_REMOTE_ATOMIC),
    };
    let inline = [0u8; 64];
    let mut h = Harness::new();
    for f in rx::frames(data) {
        if rx::wants_dereg(&f) {
            table.remove(rx::REMOTE_KEY);
        }
        table.with_qp(PD, rx::QPN, &inline, |mem| {
            if table.window(rx::WINDOW_KEY).is_some_and(|w| w.bound.is_none()) {
                // Refused once the MR is gone: the window stays unbound.
                let _ = mem.bind_mw(&bind);
            }
            h.input(&f, mem)
        });
        for (name, m) in [("local", &local), ("remote", &remote), ("odp", &odp)] {
            assert!(!m.damaged(), "{name}: bytes written outside the MR");
        }
    }
    drop(table);
});
