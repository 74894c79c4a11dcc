//! The MR table of a context and the engine's view of it for one PD.
//!
//! Who holds what: the [`MrTable`] lives in the [`crate::Endpoint`]
//! (one per context); `reg_mr`/`dereg_mr` insert and remove entries; the
//! data path borrows the table through [`MrTable::with_pd`] for the length
//! of one engine call.
//!
//! Locks: one `RwLock` over the entries. Readers are the data path
//! (post_send/poll_cq/progress thread, while they hold a QP lock: lock
//! order QP → MR table); the writer is reg/dereg (control path). So
//! `dereg_mr` returns only after no engine call can still copy into or out
//! of that region, which is what makes the raw copies below sound.
//!
//! Keys: the kernel hands out `index << 12 | tag` (12 random bits) with
//! index ≥ 1 (kmod-shim `OMX_MR_INDEX_MIN`), so keys below 4096 never name
//! an MR and [`INLINE_LKEY`] (0) names a QP's inline-data slab instead.

use std::sync::RwLock;

use omx_engine::{Access, AtomicOp, MemError, MemoryAccess};

use crate::fault::{self, Fault};

/// lkey of inline data copied at post time (never a kernel key).
pub const INLINE_LKEY: u32 = 0;

/// `IBV_ACCESS_*` bits we check.
pub const ACCESS_LOCAL_WRITE: u32 = 1;
/// IBV_ACCESS_REMOTE_WRITE.
pub const ACCESS_REMOTE_WRITE: u32 = 2;
/// IBV_ACCESS_REMOTE_READ.
pub const ACCESS_REMOTE_READ: u32 = 4;
/// IBV_ACCESS_REMOTE_ATOMIC.
pub const ACCESS_REMOTE_ATOMIC: u32 = 8;
/// IBV_ACCESS_ON_DEMAND.
pub const ACCESS_ON_DEMAND: u32 = 64;

/// One registered region (what `ibv_cmd_reg_mr` returned).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MrEntry {
    /// lkey (rdma_omx returns rkey == lkey; both are matched).
    pub lkey: u32,
    /// rkey.
    pub rkey: u32,
    /// Kernel handle of the PD.
    pub pd: u32,
    /// Start of the region in the MR's address space (iova, `hca_va`):
    /// what SGEs and remote addresses name.
    pub addr: u64,
    /// Where that start is in our virtual memory (`addr` of `ibv_reg_mr`).
    pub va: u64,
    /// Length in bytes.
    pub len: u64,
    /// `IBV_ACCESS_*` flags.
    pub access: u32,
}

impl MrEntry {
    fn allows(&self, a: Access) -> bool {
        match a {
            Access::LocalRead => true,
            Access::LocalWrite => self.access & ACCESS_LOCAL_WRITE != 0,
            Access::RemoteRead => self.access & ACCESS_REMOTE_READ != 0,
            Access::RemoteWrite => self.access & ACCESS_REMOTE_WRITE != 0,
            Access::RemoteAtomic => self.access & ACCESS_REMOTE_ATOMIC != 0,
        }
    }

    /// Registered with IBV_ACCESS_ON_DEMAND: the application does not
    /// promise that the range is mapped, so copies go through the kernel
    /// (an unmapped page becomes an access error, not a SIGSEGV).
    pub fn on_demand(&self) -> bool {
        self.access & ACCESS_ON_DEMAND != 0
    }

    fn contains(&self, addr: u64, len: u64) -> bool {
        let Some(end) = addr.checked_add(len) else {
            return false;
        };
        addr >= self.addr && end <= self.addr.saturating_add(self.len)
    }
}

/// All MRs of a context.
#[derive(Debug, Default)]
pub struct MrTable {
    entries: RwLock<Vec<MrEntry>>,
}

impl MrTable {
    /// Empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a registration (control path; may allocate). The first
    /// non-ODP registration of the process installs the fault handler
    /// ([`fault::install`]) that lets copies and atomics through it
    /// survive a page the application unmapped.
    pub fn insert(&self, e: MrEntry) {
        if !e.on_demand() {
            fault::install();
        }
        let mut v = self.entries.write().unwrap_or_else(|p| p.into_inner());
        v.push(e);
    }

    /// Forgets the MR with this lkey; returns it if it existed. When this
    /// returns, no engine call is copying through it any more.
    pub fn remove(&self, lkey: u32) -> Option<MrEntry> {
        let mut v = self.entries.write().unwrap_or_else(|p| p.into_inner());
        let i = v.iter().position(|e| e.lkey == lkey)?;
        Some(v.swap_remove(i))
    }

    /// `ibv_advise_mr` (prefetch) for one SGE: the lkey must name an ODP
    /// MR of `pd`, the range must lie inside it, and PREFETCH_WRITE needs
    /// IBV_ACCESS_LOCAL_WRITE. Returns the range in our virtual memory.
    pub fn advise_range(
        &self,
        pd: u32,
        lkey: u32,
        addr: u64,
        len: u32,
        write: bool,
    ) -> Result<(u64, u64), AdviseError> {
        let v = self.entries.read().unwrap_or_else(|p| p.into_inner());
        let e = v
            .iter()
            .find(|e| e.lkey == lkey)
            .ok_or(AdviseError::BadKey)?;
        if e.pd != pd {
            return Err(AdviseError::OtherPd);
        }
        if !e.on_demand() {
            return Err(AdviseError::NotOnDemand);
        }
        if !e.contains(addr, u64::from(len)) {
            return Err(AdviseError::OutOfBounds);
        }
        if write && !e.allows(Access::LocalWrite) {
            return Err(AdviseError::NotWritable);
        }
        Ok((e.va.wrapping_add(addr - e.addr), u64::from(len)))
    }

    /// Number of MRs.
    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// True if there is no MR.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs `f` with the table restricted to `pd` (plus a QP's inline
    /// slab). Holds the read lock for the call.
    pub fn with_pd<R>(&self, pd: u32, inline: &[u8], f: impl FnOnce(&mut PdMem<'_>) -> R) -> R {
        let v = self.entries.read().unwrap_or_else(|p| p.into_inner());
        let mut m = PdMem {
            mrs: &v,
            pd,
            inline,
        };
        f(&mut m)
    }
}

/// Why `ibv_advise_mr` refused an SGE (the provider maps these to the
/// errnos of ibv_advise_mr(3)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdviseError {
    /// No MR has this lkey.
    BadKey,
    /// The MR belongs to another PD.
    OtherPd,
    /// The MR was not registered with IBV_ACCESS_ON_DEMAND.
    NotOnDemand,
    /// The range is not inside the MR.
    OutOfBounds,
    /// PREFETCH_WRITE on an MR without local write access.
    NotWritable,
}

/// The [`MemError`] of a copy that faulted (the range is registered but not
/// mapped, not accessible, or without backing: docs/provider.md, "When a
/// registered buffer goes away"). The engine turns every `MemError` into a
/// remote access error NAK (remote operations) or IBV_WC_LOC_PROT_ERR
/// (local gather/scatter).
fn fault_error(_: Fault) -> MemError {
    MemError::Fault
}

/// The engine's [`MemoryAccess`] for one PD.
#[derive(Debug)]
pub struct PdMem<'a> {
    mrs: &'a [MrEntry],
    pd: u32,
    inline: &'a [u8],
}

impl PdMem<'_> {
    fn find(&self, key: u32, access: Access) -> Result<&MrEntry, MemError> {
        let remote = matches!(
            access,
            Access::RemoteRead | Access::RemoteWrite | Access::RemoteAtomic
        );
        self.mrs
            .iter()
            .find(|e| e.pd == self.pd && if remote { e.rkey == key } else { e.lkey == key })
            .ok_or(MemError::InvalidKey)
    }

    /// The checked range as a raw pointer into application memory, and
    /// whether the MR is on-demand (copies then go through
    /// [`fault::vm_copy`]).
    fn resolve(
        &self,
        key: u32,
        addr: u64,
        len: u64,
        access: Access,
    ) -> Result<(usize, bool), MemError> {
        let e = self.find(key, access)?;
        if !e.contains(addr, len) {
            return Err(MemError::OutOfBounds);
        }
        if !e.allows(access) {
            return Err(MemError::AccessDenied);
        }
        Ok((e.va.wrapping_add(addr - e.addr) as usize, e.on_demand()))
    }

    fn inline_range(&self, addr: u64, len: usize) -> Result<core::ops::Range<usize>, MemError> {
        let start = usize::try_from(addr).map_err(|_| MemError::OutOfBounds)?;
        let end = start.checked_add(len).ok_or(MemError::OutOfBounds)?;
        if end > self.inline.len() {
            return Err(MemError::OutOfBounds);
        }
        Ok(start..end)
    }
}

impl MemoryAccess for PdMem<'_> {
    fn check(&self, key: u32, addr: u64, len: u64, access: Access) -> Result<(), MemError> {
        if key == INLINE_LKEY && access == Access::LocalRead {
            let len = usize::try_from(len).map_err(|_| MemError::OutOfBounds)?;
            return self.inline_range(addr, len).map(|_| ());
        }
        self.resolve(key, addr, len, access).map(|_| ())
    }

    fn read(&self, key: u32, addr: u64, dst: &mut [u8], access: Access) -> Result<(), MemError> {
        if key == INLINE_LKEY && access == Access::LocalRead {
            let r = self.inline_range(addr, dst.len())?;
            dst.copy_from_slice(&self.inline[r]);
            return Ok(());
        }
        let (p, odp) = self.resolve(key, addr, dst.len() as u64, access)?;
        if dst.is_empty() {
            return Ok(());
        }
        if odp {
            // SAFETY: `dst` is our own buffer; the kernel checks `p`.
            return unsafe { fault::vm_copy(dst.as_mut_ptr(), p, dst.len(), false) }
                .map_err(fault_error);
        }
        // SAFETY: [p, p + dst.len()) lies inside a region the application
        // registered and has not deregistered (dereg_mr takes the table's
        // write lock, which cannot happen while we hold the read lock); if
        // the application unmapped it anyway, the copy fails instead of
        // faulting. `dst` is our own buffer, so the ranges do not overlap.
        unsafe { fault::read_app(p, dst) }.map_err(fault_error)
    }

    fn write(&mut self, key: u32, addr: u64, src: &[u8], access: Access) -> Result<(), MemError> {
        if key == INLINE_LKEY && self.find(key, access).is_err() {
            return Err(MemError::InvalidKey);
        }
        let (p, odp) = self.resolve(key, addr, src.len() as u64, access)?;
        if src.is_empty() {
            return Ok(());
        }
        if odp {
            // SAFETY: process_vm_writev only reads `src` through the local
            // iovec; the kernel checks `p`.
            return unsafe { fault::vm_copy(src.as_ptr().cast_mut(), p, src.len(), true) }
                .map_err(fault_error);
        }
        // SAFETY: as in `read`; the region allows this write (checked), and
        // `src` is a frame buffer we own, distinct from application memory,
        // to which Rust code holds no references.
        unsafe { fault::write_app(p, src) }.map_err(fault_error)
    }

    /// The 8 bytes must also be 8-byte aligned in our virtual memory (an
    /// MR registered at an iova whose alignment differs from its address's
    /// could name an aligned `addr` at a misaligned pointer; a locked
    /// instruction across a cache line is a split lock, which the kernel
    /// may punish with SIGBUS): refused as an access error. So is an
    /// atomic through an on-demand MR: the application did not promise
    /// what is mapped there (the implicit MR covers every address), and
    /// there is no kernel call for an atomic that would refuse a device
    /// mapping as `process_vm_writev` does for the copies; a locked
    /// instruction on one could have side effects. The device does not
    /// report atomics in `odp_caps` either.
    fn atomic(&mut self, key: u32, addr: u64, op: AtomicOp) -> Result<u64, MemError> {
        let (p, odp) = self.resolve(key, addr, 8, Access::RemoteAtomic)?;
        if odp || !p.is_multiple_of(8) {
            return Err(MemError::AccessDenied);
        }
        // SAFETY: [p, p + 8) lies inside a (non-ODP) region the application
        // registered with remote atomic access and has not deregistered
        // (dereg_mr takes the table's write lock, which cannot happen while
        // we hold the read lock); it is aligned (checked); if it was
        // unmapped, the instruction faults into the handler's fixup. Rust
        // code holds no reference to application memory.
        unsafe { fault::atomic_app(p, op) }.map_err(fault_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(buf: &mut [u8], access: u32) -> (MrTable, u64) {
        let t = MrTable::new();
        let addr = buf.as_mut_ptr() as u64;
        t.insert(MrEntry {
            lkey: 0x101,
            rkey: 0x101,
            pd: 7,
            addr,
            va: addr,
            len: buf.len() as u64,
            access,
        });
        (t, addr)
    }

    #[test]
    fn read_write_in_bounds() {
        let mut buf = vec![0u8; 64];
        let (t, a) = table(&mut buf, ACCESS_LOCAL_WRITE | ACCESS_REMOTE_WRITE);
        t.with_pd(7, &[], |m| {
            m.write(0x101, a + 8, b"hello", Access::LocalWrite).unwrap();
            let mut out = [0u8; 5];
            m.read(0x101, a + 8, &mut out, Access::LocalRead).unwrap();
            assert_eq!(&out, b"hello");
            m.write(0x101, a + 60, b"abcd", Access::RemoteWrite)
                .unwrap();
        });
        assert_eq!(&buf[8..13], b"hello");
        assert_eq!(&buf[60..], b"abcd");
    }

    #[test]
    fn bounds_keys_rights_and_pd() {
        let mut buf = vec![0u8; 64];
        let (t, a) = table(&mut buf, 0);
        t.with_pd(7, &[], |m| {
            let mut out = [0u8; 8];
            assert_eq!(
                m.read(0x101, a + 60, &mut out, Access::LocalRead),
                Err(MemError::OutOfBounds)
            );
            assert_eq!(
                m.read(0x101, a - 1, &mut out, Access::LocalRead),
                Err(MemError::OutOfBounds)
            );
            assert_eq!(
                m.check(0x101, u64::MAX - 2, 8, Access::LocalRead),
                Err(MemError::OutOfBounds)
            );
            assert_eq!(
                m.read(0x202, a, &mut out, Access::LocalRead),
                Err(MemError::InvalidKey)
            );
            assert_eq!(
                m.write(0x101, a, b"x", Access::LocalWrite),
                Err(MemError::AccessDenied)
            );
            assert_eq!(
                m.check(0x101, a, 1, Access::RemoteRead),
                Err(MemError::AccessDenied)
            );
        });
        // Another PD sees nothing.
        t.with_pd(8, &[], |m| {
            assert_eq!(
                m.check(0x101, a, 1, Access::LocalRead),
                Err(MemError::InvalidKey)
            );
        });
        assert!(t.remove(0x101).is_some());
        assert!(t.is_empty());
        t.with_pd(7, &[], |m| {
            assert_eq!(
                m.check(0x101, a, 1, Access::LocalRead),
                Err(MemError::InvalidKey)
            );
        });
    }

    #[test]
    fn inline_slab_is_read_only() {
        let t = MrTable::new();
        let slab = *b"0123456789";
        t.with_pd(1, &slab, |m| {
            let mut out = [0u8; 4];
            m.read(INLINE_LKEY, 2, &mut out, Access::LocalRead).unwrap();
            assert_eq!(&out, b"2345");
            assert_eq!(
                m.read(INLINE_LKEY, 8, &mut out, Access::LocalRead),
                Err(MemError::OutOfBounds)
            );
            assert_eq!(
                m.write(INLINE_LKEY, 0, b"x", Access::LocalWrite),
                Err(MemError::InvalidKey)
            );
            assert_eq!(
                m.check(INLINE_LKEY, 0, 1, Access::RemoteRead),
                Err(MemError::InvalidKey)
            );
        });
    }

    fn implicit(access: u32) -> MrTable {
        let t = MrTable::new();
        t.insert(MrEntry {
            lkey: 0x301,
            rkey: 0x301,
            pd: 7,
            addr: 0,
            va: 0,
            len: u64::MAX,
            access: access | ACCESS_ON_DEMAND,
        });
        t
    }

    #[test]
    fn implicit_odp_mr_covers_mapped_memory_and_refuses_unmapped() {
        let t = implicit(ACCESS_LOCAL_WRITE | ACCESS_REMOTE_WRITE | ACCESS_REMOTE_READ);
        let mut buf = vec![0u8; 32];
        let a = buf.as_mut_ptr() as u64;
        t.with_pd(7, &[], |m| {
            m.write(0x301, a + 4, b"odp!", Access::RemoteWrite).unwrap();
            let mut out = [0u8; 4];
            m.read(0x301, a + 4, &mut out, Access::RemoteRead).unwrap();
            assert_eq!(&out, b"odp!");
            // Page 0 is never mapped: an error, not a signal.
            assert_eq!(
                m.read(0x301, 16, &mut out, Access::LocalRead),
                Err(MemError::Fault)
            );
            assert_eq!(
                m.write(0x301, 16, b"x", Access::LocalWrite),
                Err(MemError::Fault)
            );
            // The top of the address space: bounds arithmetic must not
            // overflow, and the range is refused.
            assert_eq!(m.check(0x301, u64::MAX - 1, 1, Access::LocalRead), Ok(()));
            assert_eq!(
                m.check(0x301, u64::MAX - 1, 2, Access::LocalRead),
                Err(MemError::OutOfBounds)
            );
            // Inside the implicit MR, but no user mapping is there.
            assert_eq!(
                m.read(0x301, u64::MAX - 3, &mut out[..2], Access::LocalRead),
                Err(MemError::Fault)
            );
        });
        assert_eq!(&buf[4..8], b"odp!");
    }

    /// docs/provider.md, "When a registered buffer goes away": we do not
    /// pin, so the MR names virtual addresses. Inaccessible, unmapped or
    /// truncated pages make every copy an error (the engine then NAKs a
    /// remote access or completes a local WR with IBV_WC_LOC_PROT_ERR),
    /// never a signal; memory mapped there again is what the MR reaches.
    #[test]
    fn a_registered_buffer_that_goes_away_gives_errors_not_signals() {
        use crate::test_pages::{page, Pages, Truncated};
        let p = Pages::new(3);
        let t = MrTable::new();
        let all = ACCESS_LOCAL_WRITE | ACCESS_REMOTE_WRITE | ACCESS_REMOTE_READ;
        let a = p.addr(0, 0) as u64;
        let len = 3 * page() as u64;
        t.insert(MrEntry {
            lkey: 0x101,
            rkey: 0x101,
            pd: 7,
            addr: a,
            va: a,
            len,
            access: all,
        });
        let fault = fault_error(Fault { not_copied: 0 });
        let pg = page() as u64;
        p.protect(1, libc::PROT_NONE);
        let hole = Pages::hole_guard();
        p.unmap(2);
        t.with_pd(7, &[], |m| {
            for (at, what) in [(a + pg, "PROT_NONE"), (a + 2 * pg + 100, "unmapped")] {
                let mut out = [0u8; 64];
                for acc in [Access::LocalRead, Access::RemoteRead] {
                    assert_eq!(m.read(0x101, at, &mut out, acc), Err(fault), "{what}");
                }
                for acc in [Access::LocalWrite, Access::RemoteWrite] {
                    assert_eq!(m.write(0x101, at, b"peer", acc), Err(fault), "{what}");
                }
                // The range check itself still passes: the MR covers it.
                assert_eq!(m.check(0x101, at, 64, Access::RemoteWrite), Ok(()));
            }
            // A WRITE across the edge fails; what lay before the edge may
            // have been written (as on hardware, the target of a failed
            // WRITE is undefined).
            assert_eq!(
                m.write(0x101, a + pg - 4, b"abcdefgh", Access::RemoteWrite),
                Err(fault)
            );
            // The accessible page still works.
            m.write(0x101, a + 8, b"ok", Access::RemoteWrite).unwrap();
        });
        assert_eq!(p.get(p.addr(0, 8)), b'o');
        // Memory mapped at the address again is what the MR reaches now
        // (hardware would still reach the old, pinned pages).
        p.remap(2);
        t.with_pd(7, &[], |m| {
            m.write(0x101, a + 2 * pg + 100, b"new", Access::RemoteWrite)
                .unwrap();
        });
        assert_eq!(p.get(p.addr(2, 102)), b'w');
        drop(hole);
        // A MAP_SHARED file truncated under an MR: SIGBUS territory.
        let tr = Truncated::new("mr", 2);
        let b = tr.addr() as u64;
        t.insert(MrEntry {
            lkey: 0x201,
            rkey: 0x201,
            pd: 7,
            addr: b,
            va: b,
            len: 2 * pg,
            access: all,
        });
        t.with_pd(7, &[], |m| {
            let mut out = [0u8; 16];
            assert_eq!(m.read(0x201, b, &mut out, Access::RemoteRead), Err(fault));
            assert_eq!(
                m.write(0x201, b + pg, b"x", Access::RemoteWrite),
                Err(fault)
            );
        });
    }

    /// Atomics through an MR: key, rights, bounds, alignment of the
    /// pointer, a page that went away; and atomic against the host's own
    /// atomics on the same memory (what IBV_ATOMIC_GLOB promises).
    #[test]
    fn atomics_through_an_mr() {
        use crate::test_pages::{page, Pages};
        use std::sync::atomic::{AtomicU64, Ordering};
        let p = Pages::new(2);
        let a = p.addr(0, 0) as u64;
        let t = MrTable::new();
        let all = ACCESS_LOCAL_WRITE | ACCESS_REMOTE_ATOMIC;
        t.insert(MrEntry {
            lkey: 0x101,
            rkey: 0x101,
            pd: 7,
            addr: a,
            va: a,
            len: 2 * page() as u64,
            access: all,
        });
        // The same memory at an iova 4 bytes off: aligned addresses there
        // are misaligned pointers.
        t.insert(MrEntry {
            lkey: 0x201,
            rkey: 0x201,
            pd: 7,
            addr: 0x1000,
            va: a + 4,
            len: 64,
            access: all,
        });
        t.insert(MrEntry {
            lkey: 0x301,
            rkey: 0x301,
            pd: 7,
            addr: a,
            va: a,
            len: 64,
            access: ACCESS_LOCAL_WRITE | ACCESS_REMOTE_WRITE,
        });
        let fadd = |add| AtomicOp::FetchAdd { add };
        t.with_pd(7, &[], |m| {
            assert_eq!(m.atomic(0x101, a + 8, fadd(5)), Ok(0));
            assert_eq!(m.atomic(0x101, a + 8, fadd(5)), Ok(5));
            let cas = |compare, swap| AtomicOp::CmpSwap { compare, swap };
            assert_eq!(m.atomic(0x101, a + 8, cas(9, 1)), Ok(10), "no swap");
            assert_eq!(m.atomic(0x101, a + 8, cas(10, 1)), Ok(10), "swap");
            assert_eq!(m.atomic(0x101, a + 8, fadd(0)), Ok(1));
            assert_eq!(m.atomic(0x999, a + 8, fadd(1)), Err(MemError::InvalidKey));
            assert_eq!(m.atomic(0x301, a + 8, fadd(1)), Err(MemError::AccessDenied));
            let end = a + 2 * page() as u64;
            assert_eq!(m.atomic(0x101, end, fadd(1)), Err(MemError::OutOfBounds));
            assert_eq!(
                m.atomic(0x201, 0x1000, fadd(1)),
                Err(MemError::AccessDenied)
            );
        });
        assert_eq!(p.get(p.addr(0, 8)), 1);
        // Through an on-demand MR (here the implicit one, which would
        // reach any address): refused, nothing executed.
        let odp = implicit(ACCESS_LOCAL_WRITE | ACCESS_REMOTE_ATOMIC);
        odp.with_pd(7, &[], |m| {
            assert_eq!(m.atomic(0x301, a + 8, fadd(1)), Err(MemError::AccessDenied));
        });
        assert_eq!(p.get(p.addr(0, 8)), 1);
        // Another PD sees nothing.
        t.with_pd(8, &[], |m| {
            assert_eq!(m.atomic(0x101, a, fadd(1)), Err(MemError::InvalidKey));
        });
        // The host and the MR hammer one counter from several threads.
        let ctr = p.addr(0, 16) as u64;
        std::thread::scope(|s| {
            for i in 0..4 {
                let t = &t;
                s.spawn(move || {
                    for _ in 0..20_000 {
                        if i % 2 == 0 {
                            t.with_pd(7, &[], |m| m.atomic(0x101, ctr, fadd(1)).unwrap());
                        } else {
                            // SAFETY: aligned, inside the live mapping,
                            // only ever accessed atomically.
                            let host = unsafe { AtomicU64::from_ptr(ctr as *mut u64) };
                            host.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                });
            }
        });
        // SAFETY: as above; the threads are done.
        let v = unsafe { AtomicU64::from_ptr(ctr as *mut u64) }.load(Ordering::SeqCst);
        assert_eq!(v, 80_000);
        // A page that went away: an error, not a signal, nothing stored.
        p.protect(1, libc::PROT_NONE);
        let pg = page() as u64;
        t.with_pd(7, &[], |m| {
            assert_eq!(m.atomic(0x101, a + pg + 8, fadd(1)), Err(MemError::Fault));
            let cas = AtomicOp::CmpSwap {
                compare: 0,
                swap: 1,
            };
            assert_eq!(m.atomic(0x101, a + pg, cas), Err(MemError::Fault));
        });
    }

    #[test]
    fn advise_checks_key_pd_odp_bounds_and_rights() {
        let t = implicit(0);
        let mut buf = vec![0u8; 64];
        let (plain, a) = table(&mut buf, ACCESS_LOCAL_WRITE);
        assert_eq!(t.advise_range(7, 0x301, a, 64, false), Ok((a, 64)));
        assert_eq!(
            t.advise_range(7, 0x301, a, 64, true),
            Err(AdviseError::NotWritable)
        );
        assert_eq!(
            t.advise_range(8, 0x301, a, 64, false),
            Err(AdviseError::OtherPd)
        );
        assert_eq!(
            t.advise_range(7, 0x999, a, 64, false),
            Err(AdviseError::BadKey)
        );
        assert_eq!(
            t.advise_range(7, 0x301, u64::MAX, 2, false),
            Err(AdviseError::OutOfBounds)
        );
        assert_eq!(
            plain.advise_range(7, 0x101, a, 8, true),
            Err(AdviseError::NotOnDemand)
        );
    }
}
