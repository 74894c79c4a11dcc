//! Access to registered memory, behind a trait so the engine never touches
//! raw pointers: the provider implements it over its MR table (with PD
//! checks), tests use [`crate::testing::FakeMemory`].

use crate::wr::{MwBind, SgList};

/// The right an access needs (`ibv_access_flags` / local use).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Gather from a local MR (lkey) for a SEND or RDMA WRITE.
    LocalRead,
    /// Scatter into a local MR (lkey): receive WQE or READ response
    /// (needs IBV_ACCESS_LOCAL_WRITE).
    LocalWrite,
    /// Remote read through an rkey (IBV_ACCESS_REMOTE_READ).
    RemoteRead,
    /// Remote write through an rkey (IBV_ACCESS_REMOTE_WRITE).
    RemoteWrite,
    /// Remote atomic through an rkey (IBV_ACCESS_REMOTE_ATOMIC).
    RemoteAtomic,
}

/// Why an access was refused or failed. Maps to IBV_WC_LOC_PROT_ERR for
/// local accesses and to NAK remote access error (and the responder's
/// IBV_EVENT_QP_ACCESS_ERR) for remote ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemError {
    /// No MR with this key (in this QP's PD).
    InvalidKey,
    /// The range is not inside the MR.
    OutOfBounds,
    /// The MR lacks the access right.
    AccessDenied,
    /// The range is registered and allowed, but the memory behind it
    /// faulted during the copy (unmapped or protected by the application
    /// after registration). Some bytes may have been copied before the
    /// fault; none outside the range.
    Fault,
}

/// An atomic operation on 8 bytes of registered memory (IBTA 9.4.5), in
/// host byte order: the value is what the target's own CPU reads there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AtomicOp {
    /// Compare and swap: if the value equals `compare`, it becomes `swap`.
    CmpSwap {
        /// Compared with the value.
        compare: u64,
        /// Stored if equal.
        swap: u64,
    },
    /// Fetch and add: the value becomes value + `add` (modulo 2^64).
    FetchAdd {
        /// Added to the value.
        add: u64,
    },
}

impl AtomicOp {
    /// The value the operation leaves in place of `old` (what a
    /// non-concurrent implementation stores).
    pub const fn apply(self, old: u64) -> u64 {
        match self {
            AtomicOp::CmpSwap { compare, swap } => {
                if old == compare {
                    swap
                } else {
                    old
                }
            }
            AtomicOp::FetchAdd { add } => old.wrapping_add(add),
        }
    }
}

/// Registered memory as seen by one QP (already restricted to its PD).
///
/// Implementations check key, rights and bounds before copying and must
/// not panic on any input; a copy that faults returns [`MemError::Fault`]
/// instead of crashing the process. [`MemoryAccess::check`] checks the
/// registration only (key, rights, bounds), never whether the memory is
/// mapped. A zero-length access with any key is allowed by
/// the engine's callers only where IBTA allows it (zero-length RDMA), so
/// implementations may treat `len == 0` like any other length.
pub trait MemoryAccess {
    /// Checks that `[addr, addr + len)` of the MR named `key` allows
    /// `access`.
    fn check(&self, key: u32, addr: u64, len: u64, access: Access) -> Result<(), MemError>;

    /// Copies `dst.len()` bytes from the MR into `dst`.
    fn read(&self, key: u32, addr: u64, dst: &mut [u8], access: Access) -> Result<(), MemError>;

    /// Copies `src` into the MR.
    fn write(&mut self, key: u32, addr: u64, src: &[u8], access: Access) -> Result<(), MemError>;

    /// Executes `op` on the 8 bytes at `addr` of the MR named `key`
    /// ([`Access::RemoteAtomic`]) and returns the value they held before.
    /// The caller has checked that `addr` is 8-byte aligned. The provider
    /// does it with one atomic instruction of the CPU, so it is atomic
    /// also against the host's own atomics on that memory.
    fn atomic(&mut self, key: u32, addr: u64, op: AtomicOp) -> Result<u64, MemError>;

    /// Binds a memory window (`IBV_WR_BIND_MW`) through this QP: executed
    /// when the send queue reaches the WR. Every check of IBTA's bind
    /// (window type and state, MR rights and bounds, PDs) is the
    /// implementation's; a refusal completes the WR with
    /// IBV_WC_MW_BIND_ERR. A memory without windows refuses. Windows
    /// change under the implementation's own lock (hence `&self`).
    fn bind_mw(&self, bind: &MwBind) -> Result<(), MemError> {
        let _ = bind;
        Err(MemError::InvalidKey)
    }

    /// Invalidates the type 2 window `rkey` names: `IBV_WR_LOCAL_INV`
    /// (`remote` false), or a SEND with invalidate that arrived at this
    /// QP (`remote` true: the window must have been bound through it).
    /// Later accesses through the key fail. A memory without windows
    /// refuses.
    fn invalidate(&self, rkey: u32, remote: bool) -> Result<(), MemError> {
        let _ = (rkey, remote);
        Err(MemError::InvalidKey)
    }
}

/// Gathers `dst.len()` bytes starting at message offset `off` from `sg`.
pub(crate) fn gather<M: MemoryAccess + ?Sized>(
    mem: &M,
    sg: &SgList,
    mut off: u64,
    dst: &mut [u8],
    access: Access,
) -> Result<(), MemError> {
    let mut done = 0usize;
    for sge in sg.as_slice() {
        if done == dst.len() {
            break;
        }
        let len = u64::from(sge.length);
        if off >= len {
            off -= len;
            continue;
        }
        let n = ((len - off) as usize).min(dst.len() - done);
        mem.read(
            sge.lkey,
            sge.addr.wrapping_add(off),
            &mut dst[done..done + n],
            access,
        )?;
        done += n;
        off = 0;
    }
    if done == dst.len() {
        Ok(())
    } else {
        Err(MemError::OutOfBounds)
    }
}

/// Scatters `src` into `sg` at message offset `off`. The caller has
/// checked `off + src.len() <= sg.total_len()`.
pub(crate) fn scatter<M: MemoryAccess + ?Sized>(
    mem: &mut M,
    sg: &SgList,
    mut off: u64,
    src: &[u8],
) -> Result<(), MemError> {
    let mut done = 0usize;
    for sge in sg.as_slice() {
        if done == src.len() {
            break;
        }
        let len = u64::from(sge.length);
        if off >= len {
            off -= len;
            continue;
        }
        let n = ((len - off) as usize).min(src.len() - done);
        mem.write(
            sge.lkey,
            sge.addr.wrapping_add(off),
            &src[done..done + n],
            Access::LocalWrite,
        )?;
        done += n;
        off = 0;
    }
    if done == src.len() {
        Ok(())
    } else {
        Err(MemError::OutOfBounds)
    }
}
