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
//! Memory windows take their index from the same allocator, so an MR key
//! and a window key never share `key >> 12`; a window is named by its
//! key's upper 24 bits, the low byte being the consumer's key byte a
//! bind changes (`ibv_inc_rkey`).
//!
//! Memory windows (docs/provider.md, "Memory windows"): the table of a
//! context's windows is a second `RwLock`, taken after the MR lock (lock
//! order QP → MR table → windows; nothing takes the MR lock while holding
//! the windows lock). A remote access through a window holds the windows
//! read lock for the whole copy, binds and invalidations take its write
//! lock: once an invalidation (or a rebind) returns, no access through
//! the old binding is still copying. The kernel only allocates windows
//! (keys, accounting); binding, invalidation and the checks of every
//! access are here.

use std::sync::{RwLock, RwLockReadGuard};

use omx_engine::{Access, AtomicOp, MemError, MemoryAccess, MwBind};

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
/// IBV_ACCESS_MW_BIND.
pub const ACCESS_MW_BIND: u32 = 16;
/// IBV_ACCESS_ZERO_BASED.
pub const ACCESS_ZERO_BASED: u32 = 32;
/// IBV_ACCESS_ON_DEMAND.
pub const ACCESS_ON_DEMAND: u32 = 64;
/// The rights a window can grant.
const WINDOW_RIGHTS: u32 = ACCESS_REMOTE_WRITE | ACCESS_REMOTE_READ | ACCESS_REMOTE_ATOMIC;

fn remote_right(a: Access) -> u32 {
    match a {
        Access::RemoteRead => ACCESS_REMOTE_READ,
        Access::RemoteWrite => ACCESS_REMOTE_WRITE,
        Access::RemoteAtomic => ACCESS_REMOTE_ATOMIC,
        Access::LocalRead | Access::LocalWrite => 0,
    }
}

/// `enum ibv_mw_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MwType {
    /// IBV_MW_TYPE_1: bound with `ibv_bind_mw`, associated with its PD.
    One,
    /// IBV_MW_TYPE_2: bound with IBV_WR_BIND_MW, associated with the QP
    /// it was bound through (IBTA types 2A and 2B alike: remote accesses
    /// and a SEND with invalidate must arrive at that QP).
    Two,
}

/// What a bound window covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MwBinding {
    /// lkey of the MR.
    pub mr_lkey: u32,
    /// Start in the MR's address space.
    pub addr: u64,
    /// Length (> 0).
    pub len: u64,
    /// The address remote requests use for `addr`: `addr` itself, or 0
    /// for a zero-based window.
    pub base: u64,
    /// IBV_ACCESS_REMOTE_* rights.
    pub access: u32,
    /// QP the bind went through.
    pub qpn: u32,
}

/// One memory window of a context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MwEntry {
    /// Current rkey (the kernel's, with the key byte of the last bind).
    pub rkey: u32,
    /// Kernel handle of its PD.
    pub pd: u32,
    /// Type.
    pub kind: MwType,
    /// The binding, if the window is valid.
    pub bound: Option<MwBinding>,
}

/// Why a bind was refused (each an IBV_WC_MW_BIND_ERR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindError {
    /// No window of this context has the key's index, or it is of
    /// another PD than the QP's.
    NoWindow,
    /// A type 2 window still bound (invalidate first), a zero-length
    /// type 2 bind, or a zero-based type 1 window.
    WrongState,
    /// The MR: unknown, of another PD, without IBV_ACCESS_MW_BIND, the
    /// range not inside it, or remote write/atomic on an MR without
    /// local write.
    BadMr,
    /// `mw_access_flags` other than REMOTE_* and ZERO_BASED.
    BadAccess,
}

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

/// All MRs and memory windows of a context.
#[derive(Debug, Default)]
pub struct MrTable {
    entries: RwLock<Vec<MrEntry>>,
    windows: RwLock<Vec<MwEntry>>,
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
    /// returns, no engine call is copying through it any more, and no
    /// window is bound to it (a bind that raced [`MrTable::windows_on`]
    /// is undone).
    pub fn remove(&self, lkey: u32) -> Option<MrEntry> {
        let mut v = self.entries.write().unwrap_or_else(|p| p.into_inner());
        let i = v.iter().position(|e| e.lkey == lkey)?;
        let e = v.swap_remove(i);
        let mut w = self.windows.write().unwrap_or_else(|p| p.into_inner());
        for m in w.iter_mut() {
            if m.bound.is_some_and(|b| b.mr_lkey == lkey) {
                m.bound = None;
            }
        }
        Some(e)
    }

    /// Windows bound to the MR with this lkey (`ibv_dereg_mr` refuses an
    /// MR with bound windows, as IBTA and rxe).
    pub fn windows_on(&self, lkey: u32) -> usize {
        let w = self.windows.read().unwrap_or_else(|p| p.into_inner());
        w.iter()
            .filter(|m| m.bound.is_some_and(|b| b.mr_lkey == lkey))
            .count()
    }

    /// Records a window the kernel allocated (unbound).
    pub fn insert_mw(&self, rkey: u32, pd: u32, kind: MwType) {
        self.insert_mw_entry(MwEntry {
            rkey,
            pd,
            kind,
            bound: None,
        });
    }

    /// Records a window as it is (`dealloc_mw` puts back one the kernel
    /// refused to free).
    pub fn insert_mw_entry(&self, e: MwEntry) {
        let mut w = self.windows.write().unwrap_or_else(|p| p.into_inner());
        w.push(e);
    }

    /// Forgets the window whose key has `rkey`'s index (bound or not).
    /// When this returns, no access through it is copying any more.
    pub fn remove_mw(&self, rkey: u32) -> Option<MwEntry> {
        let mut w = self.windows.write().unwrap_or_else(|p| p.into_inner());
        let i = w.iter().position(|m| m.rkey >> 8 == rkey >> 8)?;
        Some(w.swap_remove(i))
    }

    /// The window whose key has `rkey`'s index.
    pub fn window(&self, rkey: u32) -> Option<MwEntry> {
        let w = self.windows.read().unwrap_or_else(|p| p.into_inner());
        w.iter().find(|m| m.rkey >> 8 == rkey >> 8).copied()
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

    /// Runs `f` with the table as QP `qpn` of PD `pd` sees it (plus its
    /// inline slab). Holds the MR read lock for the call.
    pub fn with_qp<R>(
        &self,
        pd: u32,
        qpn: u32,
        inline: &[u8],
        f: impl FnOnce(&mut PdMem<'_>) -> R,
    ) -> R {
        let v = self.entries.read().unwrap_or_else(|p| p.into_inner());
        let mut m = PdMem {
            mrs: &v,
            windows: &self.windows,
            pd,
            qpn,
            inline,
        };
        f(&mut m)
    }

    /// [`MrTable::with_qp`] for a QP number no window was bound through.
    #[cfg(test)]
    fn with_pd<R>(&self, pd: u32, inline: &[u8], f: impl FnOnce(&mut PdMem<'_>) -> R) -> R {
        self.with_qp(pd, 0, inline, f)
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

/// The engine's [`MemoryAccess`] for one QP (its PD's MRs and windows).
#[derive(Debug)]
pub struct PdMem<'a> {
    mrs: &'a [MrEntry],
    windows: &'a RwLock<Vec<MwEntry>>,
    pd: u32,
    qpn: u32,
    inline: &'a [u8],
}

/// A checked range: where it is in our virtual memory, whether its MR is
/// on-demand (copies then go through [`fault::vm_copy`]), and, for an
/// access through a window, the windows lock held until the copy is done.
type Resolved<'g> = (usize, bool, Option<RwLockReadGuard<'g, Vec<MwEntry>>>);

impl PdMem<'_> {
    fn find(&self, key: u32, access: Access) -> Result<&MrEntry, MemError> {
        let remote = remote_right(access) != 0;
        self.mrs
            .iter()
            .find(|e| e.pd == self.pd && if remote { e.rkey == key } else { e.lkey == key })
            .ok_or(MemError::InvalidKey)
    }

    fn mr_by_lkey(&self, lkey: u32) -> Option<&MrEntry> {
        self.mrs.iter().find(|e| e.pd == self.pd && e.lkey == lkey)
    }

    /// The checked range (see [`Resolved`]). A remote key that names no
    /// MR of the PD may name a window: the window's current key exactly,
    /// bound, of this PD, a type 2 window bound through this QP, the
    /// right granted, the range inside the window (IBTA 10.6.7.2).
    fn resolve(
        &self,
        key: u32,
        addr: u64,
        len: u64,
        access: Access,
    ) -> Result<Resolved<'_>, MemError> {
        let e = match self.find(key, access) {
            Ok(e) => e,
            Err(_) if remote_right(access) != 0 => {
                return self.resolve_window(key, addr, len, access)
            }
            Err(e) => return Err(e),
        };
        if !e.contains(addr, len) {
            return Err(MemError::OutOfBounds);
        }
        if !e.allows(access) {
            return Err(MemError::AccessDenied);
        }
        Ok((
            e.va.wrapping_add(addr - e.addr) as usize,
            e.on_demand(),
            None,
        ))
    }

    fn resolve_window(
        &self,
        key: u32,
        addr: u64,
        len: u64,
        access: Access,
    ) -> Result<Resolved<'_>, MemError> {
        let g = self.windows.read().unwrap_or_else(|p| p.into_inner());
        let w = g
            .iter()
            .find(|w| w.rkey == key && w.pd == self.pd)
            .ok_or(MemError::InvalidKey)?;
        let b = w.bound.ok_or(MemError::InvalidKey)?;
        if w.kind == MwType::Two && b.qpn != self.qpn {
            return Err(MemError::InvalidKey);
        }
        if b.access & remote_right(access) == 0 {
            return Err(MemError::AccessDenied);
        }
        let off = addr.checked_sub(b.base).ok_or(MemError::OutOfBounds)?;
        let end = off.checked_add(len).ok_or(MemError::OutOfBounds)?;
        if end > b.len {
            return Err(MemError::OutOfBounds);
        }
        let at = b.addr.checked_add(off).ok_or(MemError::OutOfBounds)?;
        let mr = self.mr_by_lkey(b.mr_lkey).ok_or(MemError::InvalidKey)?;
        if !mr.contains(at, len) {
            return Err(MemError::OutOfBounds);
        }
        let p = mr.va.wrapping_add(at - mr.addr) as usize;
        let odp = mr.on_demand();
        Ok((p, odp, Some(g)))
    }

    fn bind(&self, b: &MwBind) -> Result<(), BindError> {
        let mut g = self.windows.write().unwrap_or_else(|p| p.into_inner());
        let w = g
            .iter_mut()
            .find(|w| w.rkey >> 8 == b.mw_rkey >> 8 && w.pd == self.pd)
            .ok_or(BindError::NoWindow)?;
        if b.access & !(WINDOW_RIGHTS | ACCESS_ZERO_BASED) != 0 {
            return Err(BindError::BadAccess);
        }
        let zero_based = b.access & ACCESS_ZERO_BASED != 0;
        match w.kind {
            // IBTA o10-36.2.2: type 1 windows are not zero-based.
            MwType::One if zero_based => return Err(BindError::WrongState),
            // o10-37.2.30, o10-37.2.40: a type 2 window is bound only
            // when free, and never with length 0.
            MwType::Two if w.bound.is_some() || b.len == 0 => return Err(BindError::WrongState),
            _ => {}
        }
        let new_rkey = (w.rkey & !0xff) | (b.new_rkey & 0xff);
        if b.len == 0 {
            // Type 1 with length 0: unbound, under a new key.
            w.bound = None;
            w.rkey = new_rkey;
            return Ok(());
        }
        let mr = self.mr_by_lkey(b.mr_lkey).ok_or(BindError::BadMr)?;
        // C10-73, C10-74, C10-75.
        if mr.access & ACCESS_MW_BIND == 0
            || (b.access & (ACCESS_REMOTE_WRITE | ACCESS_REMOTE_ATOMIC) != 0
                && mr.access & ACCESS_LOCAL_WRITE == 0)
            || !mr.contains(b.addr, b.len)
        {
            return Err(BindError::BadMr);
        }
        w.bound = Some(MwBinding {
            mr_lkey: b.mr_lkey,
            addr: b.addr,
            len: b.len,
            base: if zero_based { 0 } else { b.addr },
            access: b.access & WINDOW_RIGHTS,
            qpn: self.qpn,
        });
        w.rkey = new_rkey;
        Ok(())
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
        let (p, odp, _window) = self.resolve(key, addr, dst.len() as u64, access)?;
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
        let (p, odp, _window) = self.resolve(key, addr, src.len() as u64, access)?;
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
        let (p, odp, _window) = self.resolve(key, addr, 8, Access::RemoteAtomic)?;
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

    fn bind_mw(&self, bind: &MwBind) -> Result<(), MemError> {
        self.bind(bind).map_err(|_| MemError::AccessDenied)
    }

    /// IBTA o10-37.2.26: only type 2 windows are invalidated, and only
    /// bound ones of this QP's PD under their current key; a SEND with
    /// invalidate must also arrive at the QP the window was bound through.
    fn invalidate(&self, rkey: u32, remote: bool) -> Result<(), MemError> {
        let mut g = self.windows.write().unwrap_or_else(|p| p.into_inner());
        let w = g
            .iter_mut()
            .find(|w| w.rkey == rkey && w.pd == self.pd && w.kind == MwType::Two)
            .ok_or(MemError::InvalidKey)?;
        match w.bound {
            Some(b) if !remote || b.qpn == self.qpn => {
                w.bound = None;
                Ok(())
            }
            _ => Err(MemError::InvalidKey),
        }
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

    const MW1: u32 = 0x7000_0011;
    const MW2: u32 = 0x8000_0022;

    /// A 4 KiB MR (key 0x101, PD 7) with MW_BIND and local write, a type
    /// 1 and a type 2 window of PD 7, and a window of PD 8.
    fn windows(buf: &mut [u8]) -> (MrTable, u64) {
        let (t, a) = table(
            buf,
            ACCESS_LOCAL_WRITE | ACCESS_MW_BIND | ACCESS_REMOTE_READ,
        );
        t.insert_mw(MW1, 7, MwType::One);
        t.insert_mw(MW2, 7, MwType::Two);
        t.insert_mw(0x9000_0033, 8, MwType::Two);
        (t, a)
    }

    fn bind_of(mw: u32, key: u8, addr: u64, len: u64, access: u32) -> MwBind {
        MwBind {
            mw_rkey: mw,
            new_rkey: u32::from(key),
            mr_lkey: 0x101,
            addr,
            len,
            access,
        }
    }

    const RW: u32 = ACCESS_REMOTE_READ | ACCESS_REMOTE_WRITE;

    /// Remote accesses through a bound window: only its current key, its
    /// range and its rights; the MR's own rkey and rights are not the
    /// window's.
    #[test]
    fn a_window_grants_its_range_and_rights_under_its_current_key() {
        let mut buf = vec![0u8; 4096];
        let (t, a) = windows(&mut buf);
        let k1 = (MW1 & !0xff) | 0x12;
        t.with_qp(7, 5, &[], |m| {
            m.bind_mw(&bind_of(MW1, 0x12, a + 64, 128, RW)).unwrap();
            m.write(k1, a + 64, b"window", Access::RemoteWrite).unwrap();
            m.write(k1, a + 64 + 122, b"edge!!", Access::RemoteWrite)
                .unwrap();
            let mut out = [0u8; 6];
            m.read(k1, a + 64, &mut out, Access::RemoteRead).unwrap();
            assert_eq!(&out, b"window");
            for (at, len) in [(a + 63, 2), (a + 64 + 123, 6), (a, 1), (u64::MAX, 2)] {
                assert_eq!(
                    m.check(k1, at, len, Access::RemoteWrite),
                    Err(MemError::OutOfBounds),
                    "{at:#x}+{len}"
                );
            }
            assert_eq!(
                m.atomic(k1, a + 64, AtomicOp::FetchAdd { add: 1 }),
                Err(MemError::AccessDenied)
            );
            // The key byte before the bind, another byte, the MR's key
            // for writes (it has no remote write) all fail.
            for k in [MW1, k1 ^ 1] {
                assert_eq!(
                    m.check(k, a + 64, 1, Access::RemoteRead),
                    Err(MemError::InvalidKey)
                );
            }
            assert_eq!(
                m.check(0x101, a + 64, 1, Access::RemoteWrite),
                Err(MemError::AccessDenied)
            );
            // Not an lkey.
            assert_eq!(
                m.check(k1, a + 64, 1, Access::LocalRead),
                Err(MemError::InvalidKey)
            );
            // Rebinding a type 1 window read-only changes key and rights.
            m.bind_mw(&bind_of(k1, 0x13, a, 4096, ACCESS_REMOTE_READ))
                .unwrap();
            let k2 = (MW1 & !0xff) | 0x13;
            assert_eq!(
                m.check(k2, a + 100, 8, Access::RemoteWrite),
                Err(MemError::AccessDenied)
            );
            assert_eq!(m.check(k2, a + 100, 8, Access::RemoteRead), Ok(()));
            assert_eq!(
                m.check(k1, a + 100, 8, Access::RemoteRead),
                Err(MemError::InvalidKey)
            );
            // Length 0 unbinds a type 1 window.
            m.bind_mw(&bind_of(k2, 0x14, 0, 0, 0)).unwrap();
            let k3 = (MW1 & !0xff) | 0x14;
            assert_eq!(
                m.check(k3, a, 1, Access::RemoteRead),
                Err(MemError::InvalidKey)
            );
        });
        // A QP of another PD sees no window of PD 7.
        t.with_qp(8, 5, &[], |m| {
            assert_eq!(
                m.bind_mw(&bind_of(MW1, 1, a, 8, RW)),
                Err(MemError::AccessDenied)
            );
        });
        assert_eq!(&buf[64..70], b"window");
        assert_eq!(&buf[186..192], b"edge!!");
    }

    /// Type 2: bound only when free and with a length, reachable only
    /// through the QP it was bound through, invalidated locally or by a
    /// SEND with invalidate arriving at that QP; zero-based windows.
    #[test]
    fn type_2_windows_belong_to_their_qp_and_are_invalidated() {
        let mut buf = vec![0u8; 4096];
        let (t, a) = windows(&mut buf);
        let k = (MW2 & !0xff) | 0x40;
        t.with_qp(7, 5, &[], |m| {
            assert_eq!(
                m.bind_mw(&bind_of(MW2, 0x40, a, 0, RW)),
                Err(MemError::AccessDenied),
                "zero length"
            );
            m.bind_mw(&bind_of(MW2, 0x40, a + 1024, 256, RW | ACCESS_ZERO_BASED))
                .unwrap();
            assert_eq!(
                m.bind_mw(&bind_of(k, 0x41, a, 8, RW)),
                Err(MemError::AccessDenied),
                "still bound"
            );
            // Zero-based: remote addresses start at 0.
            m.write(k, 0, b"zb", Access::RemoteWrite).unwrap();
            assert_eq!(
                m.check(k, 255, 2, Access::RemoteWrite),
                Err(MemError::OutOfBounds)
            );
            // Local invalidate of a type 1 window, an MR key, a stale key:
            // refused.
            for key in [MW1, 0x101, k ^ 1] {
                assert_eq!(m.invalidate(key, false), Err(MemError::InvalidKey));
            }
        });
        // Another QP of the PD: no access, no remote invalidate; a local
        // invalidate through it is allowed.
        t.with_qp(7, 6, &[], |m| {
            assert_eq!(
                m.check(k, 0, 1, Access::RemoteRead),
                Err(MemError::InvalidKey)
            );
            assert_eq!(m.invalidate(k, true), Err(MemError::InvalidKey));
        });
        t.with_qp(7, 5, &[], |m| {
            m.invalidate(k, true).unwrap();
            assert_eq!(
                m.check(k, 0, 1, Access::RemoteRead),
                Err(MemError::InvalidKey)
            );
            assert_eq!(m.invalidate(k, false), Err(MemError::InvalidKey));
            // Free again: rebound under a new key byte.
            m.bind_mw(&bind_of(k, 0x41, a, 64, ACCESS_REMOTE_READ))
                .unwrap();
            let k2 = (MW2 & !0xff) | 0x41;
            assert_eq!(m.check(k2, a, 64, Access::RemoteRead), Ok(()));
        });
        t.with_qp(7, 6, &[], |m| {
            m.invalidate((MW2 & !0xff) | 0x41, false).unwrap();
        });
        assert_eq!(&buf[1024..1026], b"zb");
    }

    /// IBTA C10-73..75: the MR must allow binding, cover the window, and
    /// have local write for a writable window; rights other than remote
    /// ones and zero-based are refused, so is a zero-based type 1 window.
    #[test]
    fn binds_check_the_mr() {
        let mut buf = vec![0u8; 4096];
        let (t, a) = windows(&mut buf);
        let mut plain = vec![0u8; 64];
        let p = plain.as_mut_ptr() as u64;
        t.insert(MrEntry {
            lkey: 0x201,
            rkey: 0x201,
            pd: 7,
            addr: p,
            va: p,
            len: 64,
            access: ACCESS_LOCAL_WRITE | RW,
        });
        t.insert(MrEntry {
            lkey: 0x301,
            rkey: 0x301,
            pd: 7,
            addr: p,
            va: p,
            len: 64,
            access: ACCESS_MW_BIND,
        });
        let refused = |m: &PdMem<'_>, b: MwBind| m.bind(&b).unwrap_err();
        t.with_qp(7, 5, &[], |m| {
            let mut b = bind_of(MW2, 1, p, 64, ACCESS_REMOTE_READ);
            b.mr_lkey = 0x201;
            assert_eq!(refused(m, b), BindError::BadMr, "no MW_BIND");
            b.mr_lkey = 0x301;
            b.access = ACCESS_REMOTE_WRITE;
            assert_eq!(refused(m, b), BindError::BadMr, "no local write");
            assert_eq!(
                refused(m, bind_of(MW2, 1, a + 4000, 100, RW)),
                BindError::BadMr,
                "beyond the MR"
            );
            assert_eq!(
                refused(m, bind_of(MW2, 1, a, 8, RW | ACCESS_LOCAL_WRITE)),
                BindError::BadAccess
            );
            assert_eq!(
                refused(m, bind_of(MW1, 1, a, 8, RW | ACCESS_ZERO_BASED)),
                BindError::WrongState
            );
            assert_eq!(
                refused(m, bind_of(0xA000_0000, 1, a, 8, RW)),
                BindError::NoWindow
            );
            assert_eq!(
                refused(m, bind_of(0x9000_0033, 1, a, 8, RW)),
                BindError::NoWindow,
                "window of another PD"
            );
        });
        // Nothing was bound by the refusals.
        assert!(t.window(MW2).unwrap().bound.is_none());
    }

    /// Deregistering the MR under a window unbinds it (the provider
    /// refuses `ibv_dereg_mr` while windows are bound, see `windows_on`;
    /// this covers a bind racing that check); deallocating a window
    /// forgets it.
    #[test]
    fn windows_follow_their_mr_and_deallocation() {
        let mut buf = vec![0u8; 4096];
        let (t, a) = windows(&mut buf);
        t.with_qp(7, 5, &[], |m| {
            m.bind_mw(&bind_of(MW1, 1, a, 64, RW)).unwrap();
            m.bind_mw(&bind_of(MW2, 2, a, 64, RW)).unwrap();
        });
        assert_eq!(t.windows_on(0x101), 2);
        assert!(t.remove(0x101).is_some());
        assert_eq!(t.windows_on(0x101), 0);
        t.with_qp(7, 5, &[], |m| {
            assert_eq!(
                m.check((MW1 & !0xff) | 1, a, 1, Access::RemoteRead),
                Err(MemError::InvalidKey)
            );
        });
        assert!(t.remove_mw(MW2 ^ 0x5).is_some(), "named by its index");
        assert!(t.window(MW2).is_none());
        assert!(t.remove_mw(MW2).is_none());
    }

    /// An invalidation racing a stream of copies through the window: it
    /// takes the windows lock between two copies, and every access after
    /// it returned fails.
    #[test]
    fn invalidation_waits_for_copies_through_the_window() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let mut buf = vec![0u8; 1 << 16];
        let (t, a) = table(&mut buf, ACCESS_LOCAL_WRITE | ACCESS_MW_BIND);
        t.insert_mw(MW2, 7, MwType::Two);
        let k = (MW2 & !0xff) | 1;
        t.with_qp(7, 5, &[], |m| {
            m.bind_mw(&bind_of(MW2, 1, a, 1 << 16, RW)).unwrap();
        });
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                let chunk = vec![0xabu8; 1 << 16];
                while t
                    .with_qp(7, 5, &[], |m| m.write(k, a, &chunk, Access::RemoteWrite))
                    .is_ok()
                {}
                done.store(true, Ordering::SeqCst);
            });
            std::thread::sleep(std::time::Duration::from_millis(20));
            t.with_qp(7, 5, &[], |m| m.invalidate(k, false)).unwrap();
            // Nothing copies through the window once invalidated.
            let t0 = std::time::Instant::now();
            while !done.load(Ordering::SeqCst) && t0.elapsed().as_secs() < 10 {
                std::thread::yield_now();
            }
            assert!(done.load(Ordering::SeqCst));
        });
    }
}
