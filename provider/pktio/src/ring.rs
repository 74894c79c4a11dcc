//! The TPACKET_V3 receive ring (`PACKET_RX_RING`, `PACKET_VERSION =
//! TPACKET_V3`), mapped into the process with memmap2.
//!
//! Layout (`<linux/if_packet.h>`, Documentation/networking/packet_mmap):
//! [`RingConfig::blocks`] blocks of [`RingConfig::block_size`] bytes, each
//! starting with a `tpacket_block_desc` whose `block_status` says who owns
//! the block. The kernel fills the current block with frames (each a
//! `tpacket3_hdr` followed, at `tp_mac`, by `tp_snaplen` frame bytes;
//! `tp_next_offset` leads to the next) and hands it over by setting
//! `TP_STATUS_USER` when it is full or when `tp_retire_blk_tov` ms passed
//! since the block was opened; it then moves on to the next block, in
//! ring order. User space walks the block and gives it back by writing
//! `TP_STATUS_KERNEL`. If the next block is still ours, the kernel drops
//! frames (counted in `PACKET_STATISTICS`).
//!
//! Memory ordering: the block status is the only synchronisation. We read
//! it with Acquire (the kernel wrote the frames, then issued `smp_wmb()`
//! and set the status), so the frames are visible once we see
//! `TP_STATUS_USER`; we give the block back with Release, so our reads of
//! it are done before the kernel may overwrite it.
//!
//! Single consumer: walking and returning blocks is not safe from two
//! threads at once, so [`RxRing::recv_batch`] takes `&mut self`; the
//! socket hands it out behind a try-lock ([`crate::Receiver`]).
//!
//! Nothing from the kernel is trusted for slicing: every offset and length
//! read from the ring is checked against the block before use, so a
//! corrupt ring costs frames, never a panic or an out-of-bounds read.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU32, Ordering};

use memmap2::{MmapMut, MmapOptions};

/// `PACKET_RX_RING`.
const PACKET_RX_RING: libc::c_int = 5;
/// `PACKET_VERSION`.
const PACKET_VERSION: libc::c_int = 10;
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
    pub const MAC: usize = 24;
    /// `TPACKET3_HDRLEN` without the sockaddr_ll: the fixed header.
    pub const LEN: usize = 48;
}

/// `struct tpacket_req3`.
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

/// Geometry of the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingConfig {
    /// Bytes per block: a multiple of the page size (a power of two
    /// avoids waste in the kernel's page allocation), larger than the
    /// largest frame plus its headers.
    pub block_size: u32,
    /// Number of blocks.
    pub blocks: u32,
    /// `tp_retire_blk_tov`: ms after which the kernel hands over a block
    /// that is not full (1 is the smallest; 0 lets the kernel choose,
    /// typically 8 ms).
    pub retire_ms: u32,
}

impl RingConfig {
    /// 64 blocks of 128 KiB (8 MiB: the same as the socket receive buffer
    /// we asked for before the ring, room for ~900 jumbo frames or ~7000
    /// 1 KiB-MTU frames), blocks retired after 1 ms.
    pub const DEFAULT: RingConfig = RingConfig {
        block_size: 128 << 10,
        blocks: 64,
        retire_ms: 1,
    };
}

impl Default for RingConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A mapped TPACKET_V3 receive ring.
#[derive(Debug)]
pub struct RxRing {
    map: MmapMut,
    block_size: usize,
    blocks: usize,
    /// The block we read next (the kernel fills blocks in ring order).
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
        f(frame);
        seen += 1;
        if i + 1 < n {
            if next == 0 {
                break;
            }
            off = off.saturating_add(next as usize);
        }
    }
    seen
}

impl RxRing {
    /// Switches `fd` (an AF_PACKET socket that is not bound yet) to
    /// TPACKET_V3, creates the ring and maps it.
    pub fn new(fd: RawFd, cfg: RingConfig) -> Result<Self, (&'static str, io::Error)> {
        // Every block must hold its descriptor and a frame header: the
        // status accessor and the walk rely on it, whatever the kernel
        // would accept.
        if cfg.blocks == 0 || (cfg.block_size as usize) < bd::LEN + hdr::LEN {
            return Err(("ring geometry", io::Error::from_raw_os_error(libc::EINVAL)));
        }
        setsockopt(fd, PACKET_VERSION, &TPACKET_V3).map_err(|e| ("PACKET_VERSION", e))?;
        // tp_frame_size/nr only have to be consistent for V3 (frames are
        // variable-sized); the largest frame is bounded by the block.
        let frame_size = 2048;
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
        // kernel is governed by the block status protocol (module doc):
        // we never form a reference into a block we do not own.
        let map = unsafe { MmapOptions::new().len(len).map_mut(fd) }
            .map_err(|e| ("mmap(PACKET_RX_RING)", e))?;
        Ok(RxRing {
            map,
            block_size: cfg.block_size as usize,
            blocks: cfg.blocks as usize,
            cur: 0,
        })
    }

    /// The status word of block `i`.
    fn status(&self, i: usize) -> &AtomicU32 {
        let off = i * self.block_size + bd::BLOCK_STATUS;
        debug_assert!(off + 4 <= self.map.len());
        // SAFETY: off + 4 is inside the mapping (i < blocks, block_size >
        // bd::LEN, checked in new()), the mapping is page-aligned so off (a multiple of 4)
        // is aligned for u32, and the word is only ever accessed
        // atomically by us; the kernel writes it with WRITE_ONCE plus
        // barriers.
        unsafe { &*self.map.as_ptr().add(off).cast::<AtomicU32>() }
    }

    /// Whether the next block is ready for us.
    pub fn ready(&self) -> bool {
        self.status(self.cur).load(Ordering::Acquire) & TP_STATUS_USER != 0
    }

    /// Calls `f` with every frame of the blocks the kernel handed over,
    /// in arrival order, and gives each block back after its last frame.
    /// Stops after the block in which `budget` frames were reached (a
    /// block is never handed back half read). Returns the number of
    /// frames passed to `f`.
    pub fn recv_batch(&mut self, budget: usize, mut f: impl FnMut(&[u8])) -> usize {
        let mut n = 0;
        for _ in 0..self.blocks {
            if n >= budget || !self.ready() {
                break;
            }
            let start = self.cur * self.block_size;
            // SAFETY: the block [start, start + block_size) is inside the
            // mapping and ours: we saw TP_STATUS_USER with Acquire above
            // and the kernel does not write a block until we give it back
            // below, after the slice's last use. We hold `&mut self`, so
            // nobody else reads or returns it meanwhile.
            let block = unsafe {
                core::slice::from_raw_parts(self.map.as_ptr().add(start), self.block_size)
            };
            n += walk_block(block, &mut f);
            self.status(self.cur)
                .store(TP_STATUS_KERNEL, Ordering::Release);
            self.cur = (self.cur + 1) % self.blocks;
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
            b[off + hdr::SNAPLEN..off + hdr::SNAPLEN + 4]
                .copy_from_slice(&(f.len() as u32).to_ne_bytes());
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
}
