//! The receive ring (`PACKET_RX_RING`), mapped into the process with
//! memmap2, in either of the kernel's two ring layouts
//! (`<linux/if_packet.h>`, Documentation/networking/packet_mmap):
//!
//! - **TPACKET_V3**: [`RingConfig::blocks`] blocks of
//!   [`RingConfig::block_size`] bytes, each starting with a
//!   `tpacket_block_desc` whose `block_status` says who owns the block.
//!   The kernel packs frames into the current block (each a
//!   `tpacket3_hdr` followed, at `tp_mac`, by `tp_snaplen` frame bytes;
//!   `tp_next_offset` leads to the next) and hands the block over by
//!   setting `TP_STATUS_USER` when it is full or when `tp_retire_blk_tov`
//!   ms passed since it was opened; only then does `poll()` report the
//!   socket readable. Dense and cheap per frame, but a lone frame waits
//!   for the retire timer: 0.5-4 ms one way with a 1 ms timeout in
//!   docs/benchmarks.md (native host), against ~5 us with V2.
//! - **TPACKET_V2**: fixed slots of [`RingConfig::frame_size`] bytes
//!   (blocks only group them for allocation), each a `tpacket2_hdr` with
//!   its own `tp_status`, handed over (and `poll()` woken) as soon as the
//!   kernel wrote the frame. One status word per frame instead of per
//!   block, a slot per frame whatever its size, but no added latency.
//!
//! In both, user space walks the units (blocks or slots) in ring order,
//! the order the kernel fills them, and gives each back by writing
//! `TP_STATUS_KERNEL`. If the next unit is still ours, the kernel drops
//! the frame (counted in `PACKET_STATISTICS`).
//!
//! Memory ordering: the status word is the only synchronisation. We read
//! it with Acquire (the kernel wrote the frame, then issued `smp_wmb()`
//! and set the status), so the frame bytes are visible once we see
//! `TP_STATUS_USER`; we give the unit back with Release, so our reads of
//! it are done before the kernel may overwrite it.
//!
//! Single consumer: walking and returning units is not safe from two
//! threads at once, so [`RxRing::recv_batch`] takes `&mut self`; the
//! socket hands it out behind a try-lock ([`crate::Receiver`]).
//!
//! Nothing from the kernel is trusted for slicing: every offset and length
//! read from the ring is checked against the unit before use, so a
//! corrupt ring costs frames, never a panic or an out-of-bounds read.
//! Truncated frames (`tp_snaplen < tp_len`) are skipped.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU32, Ordering};

use memmap2::{MmapMut, MmapOptions};

/// `PACKET_RX_RING`.
const PACKET_RX_RING: libc::c_int = 5;
/// `PACKET_VERSION`.
const PACKET_VERSION: libc::c_int = 10;
/// `TPACKET_V2`.
const TPACKET_V2: libc::c_int = 1;
/// `TPACKET_V3`.
const TPACKET_V3: libc::c_int = 2;
/// `TP_STATUS_KERNEL`.
const TP_STATUS_KERNEL: u32 = 0;
/// `TP_STATUS_USER`.
const TP_STATUS_USER: u32 = 1;

/// Offsets in `struct tpacket_block_desc` (version, offset_to_priv, then
/// `struct tpacket_hdr_v1`).
mod bd {
    pub const BLOCK_STATUS: usize = 8;
    pub const NUM_PKTS: usize = 12;
    pub const OFFSET_TO_FIRST_PKT: usize = 16;
    /// Size of the descriptor (up to and including `ts_last_pkt`).
    pub const LEN: usize = 48;
}

/// Offsets in `struct tpacket3_hdr`.
mod hdr {
    pub const NEXT_OFFSET: usize = 0;
    pub const SNAPLEN: usize = 12;
    pub const LEN_: usize = 16;
    pub const MAC: usize = 24;
    /// `TPACKET3_HDRLEN` without the sockaddr_ll: the fixed header.
    pub const LEN: usize = 48;
}

/// Offsets in `struct tpacket2_hdr`.
mod hdr2 {
    pub const STATUS: usize = 0;
    pub const LEN_: usize = 4;
    pub const SNAPLEN: usize = 8;
    pub const MAC: usize = 12;
    /// Size of the header.
    pub const LEN: usize = 32;
}

/// `struct tpacket_req3` (the kernel reads only the `tpacket_req` prefix
/// for TPACKET_V2).
#[repr(C)]
struct TpacketReq3 {
    tp_block_size: u32,
    tp_block_nr: u32,
    tp_frame_size: u32,
    tp_frame_nr: u32,
    tp_retire_blk_tov: u32,
    tp_sizeof_priv: u32,
    tp_feature_req_word: u32,
}

/// Which ring layout (module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingVersion {
    /// Fixed slots, each handed over at once.
    V2,
    /// Packed blocks, each handed over when full or retired.
    V3,
}

/// Geometry of the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingConfig {
    /// Layout.
    pub version: RingVersion,
    /// Bytes per block: a multiple of the page size (a power of two
    /// avoids waste in the kernel's page allocation), larger than the
    /// largest frame plus its headers.
    pub block_size: u32,
    /// Number of blocks.
    pub blocks: u32,
    /// V2: bytes per frame slot (a multiple of 16; frames longer than a
    /// slot minus its headers are truncated, hence dropped). V3 ignores
    /// it.
    pub frame_size: u32,
    /// V3: `tp_retire_blk_tov`, ms after which the kernel hands over a
    /// block that is not full (1 is the smallest; 0 lets the kernel
    /// choose, typically 8 ms). V2 ignores it.
    pub retire_ms: u32,
}

impl RingConfig {
    /// TPACKET_V2, 64 blocks of 128 KiB (8 MiB: the receive buffer we
    /// asked for before the ring) cut into 10 KiB slots: 768 frames of up
    /// to 9 KiB, the budget QP receive windows are cut from
    /// (`omx_verbs::Endpoint::reserve_window`). V2
    /// rather than V3 because V3 holds a lone frame back until its block
    /// retires, 0.5-4 ms (docs/benchmarks.md, native host).
    pub const DEFAULT: RingConfig = RingConfig {
        version: RingVersion::V2,
        block_size: 128 << 10,
        blocks: 64,
        frame_size: 10 << 10,
        retire_ms: 1,
    };

    /// The ring of an omx context: TPACKET_V2, the same 8 MiB as
    /// [`RingConfig::DEFAULT`], cut into slots just large enough for the
    /// largest omx frame (path MTU 4096, [`OMX_SLOT`]): 1,920 frames
    /// instead of 768, the budget the receiver's credit grants divide
    /// among its QPs (docs/wire.md §9). Larger frames (none of ours) are
    /// truncated by the kernel, and skipped.
    pub const OMX: RingConfig = RingConfig {
        frame_size: OMX_SLOT,
        ..Self::DEFAULT
    };

    /// Frames the ring holds (V2: slots; V3: blocks).
    pub const fn frames(&self) -> u32 {
        match self.version {
            RingVersion::V2 => self.blocks * (self.block_size / self.frame_size),
            RingVersion::V3 => self.blocks,
        }
    }

    /// TPACKET_V3 with [`RingConfig::DEFAULT`]'s memory: ~900 jumbo or
    /// ~7000 1 KiB-MTU frames, blocks retired after 1 ms.
    pub const V3: RingConfig = RingConfig {
        version: RingVersion::V3,
        ..Self::DEFAULT
    };

    /// Slots per block and slot size: V3 reads whole blocks.
    fn unit(&self) -> (usize, usize) {
        match self.version {
            RingVersion::V2 => (
                (self.block_size / self.frame_size.max(1)) as usize,
                self.frame_size as usize,
            ),
            RingVersion::V3 => (1, self.block_size as usize),
        }
    }
}

/// Slot of [`RingConfig::OMX`]: the largest omx frame (path MTU 4096,
/// `omx_wire::max_frame_len`) and room for the kernel's `tpacket2_hdr`,
/// `sockaddr_ll`, its alignment and a VLAN tag, rounded to 16 bytes
/// (TPACKET_ALIGNMENT).
pub const OMX_SLOT: u32 = ((omx_wire::max_frame_len(4096) + 128).div_ceil(16) * 16) as u32;

impl Default for RingConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A mapped receive ring.
#[derive(Debug)]
pub struct RxRing {
    map: MmapMut,
    version: RingVersion,
    block_size: usize,
    /// Units (V2: slots, V3: blocks) per block, and their size.
    per_block: usize,
    unit_len: usize,
    /// Number of units.
    units: usize,
    /// The unit we read next (the kernel fills them in ring order).
    cur: usize,
}

fn setsockopt<T>(fd: RawFd, name: libc::c_int, v: &T) -> io::Result<()> {
    // SAFETY: `v` is a live value of the size we pass.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_PACKET,
            name,
            (v as *const T).cast(),
            core::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

/// Calls `f` with every frame of one block, as far as its headers are
/// consistent with the block's bounds; returns how many it passed on.
fn walk_block(block: &[u8], f: &mut impl FnMut(&[u8])) -> usize {
    let (Some(n), Some(first)) = (
        u32_at(block, bd::NUM_PKTS),
        u32_at(block, bd::OFFSET_TO_FIRST_PKT),
    ) else {
        return 0;
    };
    let mut off = first as usize;
    let mut seen = 0;
    for i in 0..n {
        let Some(h) = block.get(off..off.saturating_add(hdr::LEN)) else {
            break;
        };
        let (Some(next), Some(snap), Some(mac)) = (
            u32_at(h, hdr::NEXT_OFFSET),
            u32_at(h, hdr::SNAPLEN),
            u16_at(h, hdr::MAC),
        ) else {
            break;
        };
        let start = off.saturating_add(usize::from(mac));
        let Some(frame) = block.get(start..start.saturating_add(snap as usize)) else {
            break;
        };
        if u32_at(h, hdr::LEN_) == Some(snap) {
            f(frame);
            seen += 1;
        }
        if i + 1 < n {
            if next == 0 {
                break;
            }
            off = off.saturating_add(next as usize);
        }
    }
    seen
}

/// The frame in a TPACKET_V2 slot, if its header is consistent with the
/// slot and it was not truncated.
fn slot_frame(slot: &[u8]) -> Option<&[u8]> {
    let len = u32_at(slot, hdr2::LEN_)?;
    let snap = u32_at(slot, hdr2::SNAPLEN)?;
    let mac = usize::from(u16_at(slot, hdr2::MAC)?);
    if len != snap || mac < hdr2::LEN {
        return None;
    }
    slot.get(mac..mac.checked_add(snap as usize)?)
}

impl RxRing {
    /// Switches `fd` (an AF_PACKET socket that is not bound yet) to the
    /// configured TPACKET version, creates the ring and maps it.
    pub fn new(fd: RawFd, cfg: RingConfig) -> Result<Self, (&'static str, io::Error)> {
        let (per_block, unit_len) = cfg.unit();
        // Every unit must hold its headers and lie within its block, and
        // V2 status words must be aligned: the status accessor and the
        // walk rely on it, whatever the kernel would accept.
        let min = match cfg.version {
            RingVersion::V2 => hdr2::LEN,
            RingVersion::V3 => bd::LEN + hdr::LEN,
        };
        if cfg.blocks == 0 || per_block == 0 || unit_len < min || unit_len % 16 != 0 {
            return Err(("ring geometry", io::Error::from_raw_os_error(libc::EINVAL)));
        }
        let version = match cfg.version {
            RingVersion::V2 => TPACKET_V2,
            RingVersion::V3 => TPACKET_V3,
        };
        setsockopt(fd, PACKET_VERSION, &version).map_err(|e| ("PACKET_VERSION", e))?;
        // V3 frames are variable-sized: tp_frame_size/nr only have to be
        // consistent, the largest frame is bounded by the block.
        let frame_size = match cfg.version {
            RingVersion::V2 => cfg.frame_size,
            RingVersion::V3 => 2048,
        };
        let req = TpacketReq3 {
            tp_block_size: cfg.block_size,
            tp_block_nr: cfg.blocks,
            tp_frame_size: frame_size,
            tp_frame_nr: cfg.block_size / frame_size * cfg.blocks,
            tp_retire_blk_tov: cfg.retire_ms,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        setsockopt(fd, PACKET_RX_RING, &req).map_err(|e| ("PACKET_RX_RING", e))?;
        let len = cfg.block_size as usize * cfg.blocks as usize;
        // SAFETY: the kernel backs `len` bytes at offset 0 of the socket
        // with the ring just created; the mapping is MAP_SHARED and keeps
        // the socket's ring alive until it is unmapped. Aliasing with the
        // kernel is governed by the status protocol (module doc): we
        // never form a reference into a unit we do not own.
        let map = unsafe { MmapOptions::new().len(len).map_mut(fd) }
            .map_err(|e| ("mmap(PACKET_RX_RING)", e))?;
        Ok(RxRing {
            map,
            version: cfg.version,
            block_size: cfg.block_size as usize,
            per_block,
            unit_len,
            units: per_block * cfg.blocks as usize,
            cur: 0,
        })
    }

    /// Where unit `k` starts in the mapping.
    fn unit_offset(&self, k: usize) -> usize {
        (k / self.per_block) * self.block_size + (k % self.per_block) * self.unit_len
    }

    /// The status word of the unit at `off`.
    fn status(&self, off: usize) -> &AtomicU32 {
        let at = off
            + match self.version {
                RingVersion::V2 => hdr2::STATUS,
                RingVersion::V3 => bd::BLOCK_STATUS,
            };
        debug_assert!(at + 4 <= self.map.len());
        // SAFETY: at + 4 is inside the mapping (the unit lies within its
        // block and holds its header, checked in new()); the mapping is
        // page-aligned and units start at multiples of 16, so `at` (+0 or
        // +8) is aligned for u32. The word is only ever accessed
        // atomically by us; the kernel writes it with barriers around.
        unsafe { &*self.map.as_ptr().add(at).cast::<AtomicU32>() }
    }

    /// The status word of the unit read next: non-zero `TP_STATUS_USER`
    /// there means frames are waiting. The pointer stays valid as long as
    /// the ring (the mapping never moves); it goes stale when `recv_batch`
    /// moves on, so the owner republishes it after each batch.
    pub(crate) fn head_status(&self) -> *const AtomicU32 {
        self.status(self.unit_offset(self.cur))
    }

    /// Whether the status word `head` (from [`RxRing::head_status`]) says
    /// frames are waiting.
    ///
    /// # Safety
    /// `head` must come from `head_status` of a ring that is still alive.
    pub(crate) unsafe fn head_ready(head: *const AtomicU32) -> bool {
        // SAFETY: the caller guarantees the ring, hence its mapping, is
        // alive; the word is aligned and only accessed atomically.
        unsafe { &*head }.load(Ordering::Acquire) & TP_STATUS_USER != 0
    }

    /// Calls `f` with every frame the kernel handed over, in arrival
    /// order, and gives each unit back after its last frame. Stops once
    /// `budget` frames were reached (a V3 block is never handed back half
    /// read, so up to a block more). Returns the number of frames passed
    /// to `f`.
    pub fn recv_batch(&mut self, budget: usize, mut f: impl FnMut(&[u8])) -> usize {
        let mut n = 0;
        for _ in 0..self.units {
            let off = self.unit_offset(self.cur);
            if n >= budget || self.status(off).load(Ordering::Acquire) & TP_STATUS_USER == 0 {
                break;
            }
            // SAFETY: the unit [off, off + unit_len) is inside the mapping
            // and ours: we saw TP_STATUS_USER with Acquire above and the
            // kernel does not write it until we give it back below, after
            // the slice's last use. We hold `&mut self`, so nobody else
            // reads or returns it meanwhile.
            let unit =
                unsafe { core::slice::from_raw_parts(self.map.as_ptr().add(off), self.unit_len) };
            n += match self.version {
                RingVersion::V2 => slot_frame(unit).map(&mut f).map_or(0, |()| 1),
                RingVersion::V3 => walk_block(unit, &mut f),
            };
            self.status(off).store(TP_STATUS_KERNEL, Ordering::Release);
            self.cur = (self.cur + 1) % self.units;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A block as the kernel lays it out, holding `frames`.
    fn block(frames: &[&[u8]], size: usize) -> Vec<u8> {
        let mut b = vec![0u8; size];
        let first = bd::LEN;
        b[bd::NUM_PKTS..bd::NUM_PKTS + 4].copy_from_slice(&(frames.len() as u32).to_ne_bytes());
        b[bd::OFFSET_TO_FIRST_PKT..bd::OFFSET_TO_FIRST_PKT + 4]
            .copy_from_slice(&(first as u32).to_ne_bytes());
        let mut off = first;
        for (i, f) in frames.iter().enumerate() {
            let mac = 66u16;
            let next = if i + 1 == frames.len() {
                0
            } else {
                (usize::from(mac) + f.len()).next_multiple_of(16) as u32
            };
            b[off..off + 4].copy_from_slice(&next.to_ne_bytes());
            for field in [hdr::SNAPLEN, hdr::LEN_] {
                b[off + field..off + field + 4].copy_from_slice(&(f.len() as u32).to_ne_bytes());
            }
            b[off + hdr::MAC..off + hdr::MAC + 2].copy_from_slice(&mac.to_ne_bytes());
            let s = off + usize::from(mac);
            b[s..s + f.len()].copy_from_slice(f);
            off += next as usize;
        }
        b
    }

    fn collect(b: &[u8]) -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        walk_block(b, &mut |f| v.push(f.to_vec()));
        v
    }

    #[test]
    fn walks_every_frame_in_order() {
        let b = block(&[b"one", &[7u8; 100], b"three"], 4096);
        assert_eq!(
            collect(&b),
            vec![b"one".to_vec(), vec![7u8; 100], b"three".to_vec()]
        );
        assert!(collect(&block(&[], 4096)).is_empty());
    }

    #[test]
    fn corrupt_headers_cost_frames_not_a_panic() {
        let good = block(&[b"aaaa", b"bbbb"], 512);
        // Snaplen beyond the block.
        let mut b = good.clone();
        let o = bd::LEN + hdr::SNAPLEN;
        b[o..o + 4].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(collect(&b).is_empty());
        // tp_mac beyond the block.
        let mut b = good.clone();
        let o = bd::LEN + hdr::MAC;
        b[o..o + 2].copy_from_slice(&u16::MAX.to_ne_bytes());
        assert!(collect(&b).is_empty());
        // First frame offset beyond the block, huge packet count.
        let mut b = good.clone();
        b[bd::OFFSET_TO_FIRST_PKT..bd::OFFSET_TO_FIRST_PKT + 4]
            .copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(collect(&b).is_empty());
        let mut b = good.clone();
        b[bd::NUM_PKTS..bd::NUM_PKTS + 4].copy_from_slice(&u32::MAX.to_ne_bytes());
        let v = collect(&b);
        assert_eq!(v.len(), 2, "stops at the zero tp_next_offset");
        // A next offset that leaves the block.
        let mut b = good.clone();
        b[bd::LEN..bd::LEN + 4].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert_eq!(collect(&b), vec![b"aaaa".to_vec()]);
        // A block shorter than its descriptor.
        assert!(collect(&good[..10]).is_empty());
        // Random bytes never panic.
        let mut x: u32 = 0x1234_5678;
        for _ in 0..2000 {
            let mut b = good.clone();
            for _ in 0..8 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let i = x as usize % b.len();
                b[i] = (x >> 24) as u8;
            }
            collect(&b);
        }
    }

    fn slot(frame: &[u8], mac: u16, len: u32, size: usize) -> Vec<u8> {
        let mut b = vec![0u8; size];
        b[hdr2::LEN_..hdr2::LEN_ + 4].copy_from_slice(&len.to_ne_bytes());
        b[hdr2::SNAPLEN..hdr2::SNAPLEN + 4].copy_from_slice(&(frame.len() as u32).to_ne_bytes());
        b[hdr2::MAC..hdr2::MAC + 2].copy_from_slice(&mac.to_ne_bytes());
        let m = usize::from(mac);
        if let Some(d) = b.get_mut(m..m + frame.len()) {
            d.copy_from_slice(frame);
        }
        b
    }

    #[test]
    fn v2_slots_are_bounds_checked() {
        assert_eq!(slot_frame(&slot(b"hello", 64, 5, 256)), Some(&b"hello"[..]));
        assert_eq!(slot_frame(&slot(b"hello", 64, 9, 256)), None, "truncated");
        assert_eq!(
            slot_frame(&slot(b"hello", 8, 5, 256)),
            None,
            "inside the header"
        );
        assert_eq!(
            slot_frame(&slot(b"hello", 254, 5, 256)),
            None,
            "past the slot"
        );
        assert_eq!(slot_frame(&[0u8; 7]), None, "short slot");
        let mut b = slot(b"hello", 64, 5, 256);
        b[hdr2::SNAPLEN..hdr2::SNAPLEN + 4].copy_from_slice(&u32::MAX.to_ne_bytes());
        b[hdr2::LEN_..hdr2::LEN_ + 4].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert_eq!(slot_frame(&b), None, "huge snaplen");
    }
}
