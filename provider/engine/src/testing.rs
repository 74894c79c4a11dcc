//! Test fixtures, shared by the engine's tests, the fuzz targets and the
//! other crates' tests (not for the data path: everything here may
//! allocate and panics on misuse).
//!
//! - Memories: [`FakeMemory`] (regions backed by vectors, with canary
//!   fill, faulting ranges, removal mid-test and a write log) and
//!   [`SparseMemory`] (regions of any size, up to 2^32 bytes, backed by
//!   nothing: reads return [`pattern`], writes are checked and counted).
//! - Connecting: [`Conn`] holds what the three `modify` calls RESET →
//!   INIT → RTR → RTS need; [`rts_qp`] and [`connected_pair`] build
//!   connected QPs.
//! - Frames: [`Crafter`] builds frames as a given peer (MAC, QPN) would
//!   send them, [`transmit_all`] drains a QP's output, [`exchange`] moves
//!   frames between two QPs, [`parse`] decodes.
//! - Work requests: [`send_wr`], [`recv_wr`], [`completions`]; a shared
//!   receive queue, [`TestSrq`].

pub mod rx;

use core::cell::{Cell, RefCell};
use core::ops::Range;

use omx_wire::{Bth, Ext, Frame, FrameRepr, Opcode, Psn, Qpn, Transport};

use crate::mem::{Access, AtomicOp, MemError, MemoryAccess};
use crate::qp::{QpConfig, RcQp};
use crate::state::{access, attr_mask, PathInfo, PathMtu, QpAttr, QpState};
use crate::time::Instant;

/// Every access right.
pub const ALL_ACCESS: [Access; 5] = [
    Access::LocalRead,
    Access::LocalWrite,
    Access::RemoteRead,
    Access::RemoteWrite,
    Access::RemoteAtomic,
];

/// The byte [`FakeMemory::add_canaried`] fills a region with: any other
/// value outside the range a test allowed to be written is damage.
pub const CANARY: u8 = 0xCA;

/// The bounds and rights check shared by the test memories: the offset
/// range of `[addr, addr + len)` inside a region at `base` of `size`
/// bytes, or why not.
fn region_range(
    base: u64,
    size: u64,
    rights: &[Access],
    addr: u64,
    len: u64,
    access: Access,
) -> Result<Range<u64>, MemError> {
    if !rights.contains(&access) {
        return Err(MemError::AccessDenied);
    }
    let start = addr.checked_sub(base).ok_or(MemError::OutOfBounds)?;
    let end = start.checked_add(len).ok_or(MemError::OutOfBounds)?;
    if end > size {
        return Err(MemError::OutOfBounds);
    }
    Ok(start..end)
}

/// Whether `[addr, addr + len)` touches the faulting range `fault`.
fn faults(fault: &Option<Range<u64>>, addr: u64, len: u64) -> bool {
    fault
        .as_ref()
        .is_some_and(|f| len > 0 && addr < f.end && addr.saturating_add(len) > f.start)
}

/// One fake memory region.
#[derive(Debug, Clone)]
pub struct Region {
    /// Key (lkey and rkey).
    pub key: u32,
    /// Start address.
    pub addr: u64,
    /// Contents.
    pub data: Vec<u8>,
    /// Allowed accesses.
    pub access: Vec<Access>,
    /// Addresses whose copy fails with [`MemError::Fault`] (registered
    /// memory the application unmapped).
    pub fault: Option<Range<u64>>,
}

/// A successful write into a [`FakeMemory`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteRecord {
    /// Key written through.
    pub key: u32,
    /// First address.
    pub addr: u64,
    /// Bytes.
    pub len: usize,
}

/// A set of regions.
#[derive(Debug, Clone, Default)]
pub struct FakeMemory {
    /// The regions.
    pub regions: Vec<Region>,
    /// Every successful write, in order.
    pub writes: Vec<WriteRecord>,
    /// Successful reads so far.
    pub reads: Cell<usize>,
    /// Memory windows: the engine's local operations and SEND with
    /// invalidate change them ([`FakeMemory::add_window`]).
    pub windows: RefCell<Vec<FakeWindow>>,
}

/// A memory window of a [`FakeMemory`]: bookkeeping only (remote
/// accesses do not go through it; the provider's tests cover that).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FakeWindow {
    /// Current rkey: the index bits (`>> 8`) name it, the low byte is
    /// the one the last bind set.
    pub rkey: u32,
    /// Bound (valid) or not.
    pub bound: bool,
    /// Binds executed on it.
    pub binds: u32,
}

impl FakeMemory {
    /// Adds a region with contents `data`.
    pub fn add(&mut self, key: u32, addr: u64, data: Vec<u8>, access: &[Access]) {
        self.regions.push(Region {
            key,
            addr,
            data,
            access: access.to_vec(),
            fault: None,
        });
    }

    /// Adds a region of `len` bytes filled with [`CANARY`].
    pub fn add_canaried(&mut self, key: u32, addr: u64, len: usize, access: &[Access]) {
        self.add(key, addr, vec![CANARY; len], access);
    }

    /// The region with `key`.
    pub fn region(&self, key: u32) -> Option<&Region> {
        self.regions.iter().find(|r| r.key == key)
    }

    /// Mutable region with `key`.
    pub fn region_mut(&mut self, key: u32) -> Option<&mut Region> {
        self.regions.iter_mut().find(|r| r.key == key)
    }

    /// Deregisters the region with `key` (later accesses: invalid key).
    pub fn remove(&mut self, key: u32) -> Option<Region> {
        let i = self.regions.iter().position(|r| r.key == key)?;
        Some(self.regions.remove(i))
    }

    /// Adds an unbound memory window answering to `rkey`.
    pub fn add_window(&mut self, rkey: u32) {
        self.windows.get_mut().push(FakeWindow {
            rkey,
            bound: false,
            binds: 0,
        });
    }

    /// The window whose index bits are those of `rkey`.
    pub fn window(&self, rkey: u32) -> Option<FakeWindow> {
        self.windows
            .borrow()
            .iter()
            .find(|w| w.rkey >> 8 == rkey >> 8)
            .copied()
    }

    /// Makes copies touching `range` of region `key` fault.
    pub fn set_fault(&mut self, key: u32, range: Range<u64>) {
        if let Some(r) = self.region_mut(key) {
            r.fault = Some(range);
        }
    }

    /// Addresses of region `key` outside `allowed` that no longer hold
    /// [`CANARY`] (for a region added with [`FakeMemory::add_canaried`]).
    pub fn damage_outside(&self, key: u32, allowed: Range<u64>) -> Vec<u64> {
        let Some(r) = self.region(key) else {
            return Vec::new();
        };
        (r.addr..)
            .zip(&r.data)
            .filter(|(a, b)| !allowed.contains(a) && **b != CANARY)
            .map(|(a, _)| a)
            .collect()
    }

    /// Writes through `key` recorded since write number `since`.
    pub fn writes_since(&self, since: usize, key: u32) -> usize {
        self.writes[since.min(self.writes.len())..]
            .iter()
            .filter(|w| w.key == key)
            .count()
    }

    fn range(
        &self,
        key: u32,
        addr: u64,
        len: u64,
        access: Access,
    ) -> Result<(usize, usize), MemError> {
        let r = self.region(key).ok_or(MemError::InvalidKey)?;
        let o = region_range(r.addr, r.data.len() as u64, &r.access, addr, len, access)?;
        Ok((o.start as usize, o.end as usize))
    }

    fn copy_faults(&self, key: u32, addr: u64, len: usize) -> bool {
        self.region(key)
            .is_some_and(|r| faults(&r.fault, addr, len as u64))
    }
}

impl MemoryAccess for FakeMemory {
    fn check(&self, key: u32, addr: u64, len: u64, access: Access) -> Result<(), MemError> {
        self.range(key, addr, len, access).map(|_| ())
    }

    fn read(&self, key: u32, addr: u64, dst: &mut [u8], access: Access) -> Result<(), MemError> {
        let (s, e) = self.range(key, addr, dst.len() as u64, access)?;
        if self.copy_faults(key, addr, dst.len()) {
            return Err(MemError::Fault);
        }
        let r = self.region(key).ok_or(MemError::InvalidKey)?;
        dst.copy_from_slice(&r.data[s..e]);
        self.reads.set(self.reads.get() + 1);
        Ok(())
    }

    fn write(&mut self, key: u32, addr: u64, src: &[u8], access: Access) -> Result<(), MemError> {
        let (s, e) = self.range(key, addr, src.len() as u64, access)?;
        if self.copy_faults(key, addr, src.len()) {
            return Err(MemError::Fault);
        }
        let r = self.region_mut(key).ok_or(MemError::InvalidKey)?;
        r.data[s..e].copy_from_slice(src);
        self.writes.push(WriteRecord {
            key,
            addr,
            len: src.len(),
        });
        Ok(())
    }

    fn atomic(&mut self, key: u32, addr: u64, op: AtomicOp) -> Result<u64, MemError> {
        let mut old = [0u8; 8];
        self.read(key, addr, &mut old, Access::RemoteAtomic)?;
        let old = u64::from_ne_bytes(old);
        self.write(
            key,
            addr,
            &op.apply(old).to_ne_bytes(),
            Access::RemoteAtomic,
        )?;
        Ok(old)
    }

    /// Binds a window to a region that exists (length 0 unbinds);
    /// anything else is refused.
    fn bind_mw(&self, bind: &crate::MwBind) -> Result<(), MemError> {
        if bind.len > 0 && self.region(bind.mr_lkey).is_none() {
            return Err(MemError::InvalidKey);
        }
        let mut ws = self.windows.borrow_mut();
        let w = ws
            .iter_mut()
            .find(|w| w.rkey >> 8 == bind.mw_rkey >> 8)
            .ok_or(MemError::InvalidKey)?;
        w.rkey = (w.rkey & !0xff) | (bind.new_rkey & 0xff);
        w.bound = bind.len > 0;
        w.binds += 1;
        Ok(())
    }

    /// Unbinds the bound window with exactly this rkey.
    fn invalidate(&self, rkey: u32, _remote: bool) -> Result<(), MemError> {
        let mut ws = self.windows.borrow_mut();
        let w = ws
            .iter_mut()
            .find(|w| w.rkey == rkey && w.bound)
            .ok_or(MemError::InvalidKey)?;
        w.bound = false;
        Ok(())
    }
}

/// The contents [`SparseMemory`] reads at `addr`: a function of the
/// address, so that a test can tell which offset a READ response came
/// from.
pub const fn pattern(addr: u64) -> u8 {
    (addr ^ (addr >> 8) ^ (addr >> 16) ^ (addr >> 24)) as u8
}

/// A region of a [`SparseMemory`].
#[derive(Debug, Clone)]
pub struct SparseRegion {
    /// Key (lkey and rkey).
    pub key: u32,
    /// Start address.
    pub addr: u64,
    /// Length in bytes (no storage behind it).
    pub len: u64,
    /// Allowed accesses.
    pub access: Vec<Access>,
}

/// Regions of any size without storage, for messages of up to 2^31 bytes
/// in tests: reads return [`pattern`] of each address, writes are checked
/// (key, rights, bounds) and counted, their bytes dropped.
#[derive(Debug, Clone, Default)]
pub struct SparseMemory {
    /// The regions.
    pub regions: Vec<SparseRegion>,
    /// Bytes written so far.
    pub bytes_written: u64,
    /// Highest address written so far, plus one.
    pub write_end: u64,
    /// Bytes read so far.
    pub bytes_read: Cell<u64>,
}

impl SparseMemory {
    /// Adds a region.
    pub fn add(&mut self, key: u32, addr: u64, len: u64, access: &[Access]) {
        self.regions.push(SparseRegion {
            key,
            addr,
            len,
            access: access.to_vec(),
        });
    }

    fn range(&self, key: u32, addr: u64, len: u64, access: Access) -> Result<(), MemError> {
        let r = self
            .regions
            .iter()
            .find(|r| r.key == key)
            .ok_or(MemError::InvalidKey)?;
        region_range(r.addr, r.len, &r.access, addr, len, access).map(|_| ())
    }
}

impl MemoryAccess for SparseMemory {
    fn check(&self, key: u32, addr: u64, len: u64, access: Access) -> Result<(), MemError> {
        self.range(key, addr, len, access)
    }

    fn read(&self, key: u32, addr: u64, dst: &mut [u8], access: Access) -> Result<(), MemError> {
        self.range(key, addr, dst.len() as u64, access)?;
        for (a, b) in (addr..).zip(dst.iter_mut()) {
            *b = pattern(a);
        }
        self.bytes_read
            .set(self.bytes_read.get() + dst.len() as u64);
        Ok(())
    }

    fn write(&mut self, key: u32, addr: u64, src: &[u8], access: Access) -> Result<(), MemError> {
        self.range(key, addr, src.len() as u64, access)?;
        self.bytes_written += src.len() as u64;
        self.write_end = self.write_end.max(addr + src.len() as u64);
        Ok(())
    }

    /// The old value is the [`pattern`] of the 8 addresses; nothing is
    /// stored.
    fn atomic(&mut self, key: u32, addr: u64, _op: AtomicOp) -> Result<u64, MemError> {
        let mut old = [0u8; 8];
        self.read(key, addr, &mut old, Access::RemoteAtomic)?;
        self.write(key, addr, &old, Access::RemoteAtomic)?;
        Ok(u64::from_ne_bytes(old))
    }
}

/// The MAC the fixtures give the port of the QP numbered `qpn`.
pub const fn mac_of(qpn: u32) -> [u8; 6] {
    [2, 0, 0, (qpn >> 16) as u8, (qpn >> 8) as u8, qpn as u8]
}

/// Everything connecting one QP takes: the attributes of the three
/// `modify` calls RESET → INIT → RTR → RTS (all the kernel's table
/// requires for RC, and the port and P_Key index as `extra_mask` bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conn {
    /// This QP's number (its MAC is [`mac_of`] it).
    pub qpn: u32,
    /// The peer's QP number (its MAC is [`mac_of`] it).
    pub dest_qpn: u32,
    /// Path MTU.
    pub mtu: PathMtu,
    /// First PSN this QP sends.
    pub sq_psn: u32,
    /// First PSN this QP expects.
    pub rq_psn: u32,
    /// Transport timer exponent.
    pub timeout: u8,
    /// Retry count.
    pub retry_cnt: u8,
    /// RNR retry count.
    pub rnr_retry: u8,
    /// RNR timer code this QP sends.
    pub min_rnr_timer: u8,
    /// Outstanding READs as requester.
    pub max_rd_atomic: u8,
    /// READs answered at once as responder.
    pub max_dest_rd_atomic: u8,
    /// QP access flags.
    pub access_flags: u32,
}

impl Conn {
    /// `qpn` connected to `dest_qpn`: MTU 1024, PSNs 0, timeout 14,
    /// retries 7, RNR timer 12, 16 READs each way, remote write, read
    /// and atomic allowed.
    pub const fn new(qpn: u32, dest_qpn: u32) -> Self {
        Conn {
            qpn,
            dest_qpn,
            mtu: PathMtu::Mtu1024,
            sq_psn: 0,
            rq_psn: 0,
            timeout: 14,
            retry_cnt: 7,
            rnr_retry: 7,
            min_rnr_timer: 12,
            max_rd_atomic: 16,
            max_dest_rd_atomic: 16,
            access_flags: access::REMOTE_WRITE | access::REMOTE_READ | access::REMOTE_ATOMIC,
        }
    }

    /// The other side of this connection (QPNs and PSNs swapped).
    pub const fn peer(&self) -> Self {
        Conn {
            qpn: self.dest_qpn,
            dest_qpn: self.qpn,
            sq_psn: self.rq_psn,
            rq_psn: self.sq_psn,
            ..*self
        }
    }

    /// The path to the peer.
    pub const fn path(&self) -> PathInfo {
        PathInfo {
            dmac: mac_of(self.dest_qpn),
            smac: mac_of(self.qpn),
            peer_index: omx_wire::PEER_INDEX_UNKNOWN,
        }
    }

    /// The attributes of RESET → INIT, INIT → RTR and RTR → RTS.
    pub fn steps(&self) -> [QpAttr; 3] {
        [
            QpAttr {
                state: Some(QpState::Init),
                access_flags: Some(self.access_flags),
                extra_mask: attr_mask::PKEY_INDEX | attr_mask::PORT,
                ..QpAttr::default()
            },
            QpAttr {
                state: Some(QpState::Rtr),
                path_mtu: Some(self.mtu),
                dest_qpn: Some(self.dest_qpn),
                rq_psn: Some(Psn::new(self.rq_psn)),
                min_rnr_timer: Some(self.min_rnr_timer),
                max_dest_rd_atomic: Some(self.max_dest_rd_atomic),
                path: Some(self.path()),
                ..QpAttr::default()
            },
            QpAttr {
                state: Some(QpState::Rts),
                sq_psn: Some(Psn::new(self.sq_psn)),
                timeout: Some(self.timeout),
                retry_cnt: Some(self.retry_cnt),
                rnr_retry: Some(self.rnr_retry),
                max_rd_atomic: Some(self.max_rd_atomic),
                ..QpAttr::default()
            },
        ]
    }

    /// The attributes of RESET → INIT, INIT → RTR and RTR → RTS for a QP
    /// of type `t`: for UC, [`Conn::steps`] without the attributes UC
    /// does not have (RNR timer, READ limits, timeout, retries).
    pub fn steps_for(&self, t: crate::QpType) -> [QpAttr; 3] {
        let mut s = self.steps();
        if t == crate::QpType::Uc {
            s[1].min_rnr_timer = None;
            s[1].max_dest_rd_atomic = None;
            s[2].timeout = None;
            s[2].retry_cnt = None;
            s[2].rnr_retry = None;
            s[2].max_rd_atomic = None;
        }
        s
    }

    /// Moves `qp` (in RESET) to RTS. Panics if a step is refused.
    pub fn connect(&self, qp: &mut RcQp) {
        for a in self.steps_for(qp.qp_type()) {
            if let Err(e) = qp.modify(&a) {
                panic!("connect {:#x}: {a:?}: {e:?}", self.qpn);
            }
        }
    }

    /// A [`Crafter`] sending as this QP's peer to this QP.
    pub const fn from_peer(&self) -> Crafter {
        Crafter::new(self.dest_qpn, self.qpn)
    }
}

/// The modify steps RESET→INIT→RTR→RTS of a UD QP with Q_Key `qkey`
/// and send PSN `psn`.
pub fn ud_steps(qkey: u32, psn: u32) -> [crate::QpAttr; 3] {
    [
        crate::QpAttr {
            state: Some(crate::QpState::Init),
            qkey: Some(qkey),
            extra_mask: crate::attr_mask::PKEY_INDEX | crate::attr_mask::PORT,
            ..crate::QpAttr::default()
        },
        crate::QpAttr {
            state: Some(crate::QpState::Rtr),
            ..crate::QpAttr::default()
        },
        crate::QpAttr {
            state: Some(crate::QpState::Rts),
            sq_psn: Some(omx_wire::Psn::new(psn)),
            ..crate::QpAttr::default()
        },
    ]
}

/// A QP numbered `conn.qpn` (configured by `cfg`, whose QPN is replaced)
/// in RTS.
pub fn rts_qp(cfg: QpConfig, conn: &Conn) -> RcQp {
    let mut qp = RcQp::new(QpConfig {
        qpn: Qpn::new(conn.qpn),
        ..cfg
    });
    conn.connect(&mut qp);
    qp
}

/// Two QPs in RTS connected to each other: `a` as `conn` says, `b` as
/// its [`Conn::peer`], both with `cfg`.
pub fn connected_pair(cfg: QpConfig, conn: &Conn) -> (RcQp, RcQp) {
    (rts_qp(cfg, conn), rts_qp(cfg, &conn.peer()))
}

/// Builds frames as one QP (MAC [`mac_of`] its number) sends them to
/// another: for crafted, forged or replayed traffic in tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crafter {
    /// Source MAC.
    pub src_mac: [u8; 6],
    /// Destination MAC.
    pub dst_mac: [u8; 6],
    /// Source QPN.
    pub src_qpn: u32,
    /// Destination QPN.
    pub dst_qpn: u32,
    /// BTH transport (RC unless [`Crafter::uc`]).
    pub transport: Transport,
}

impl Crafter {
    /// From QP `src_qpn` to QP `dst_qpn`.
    pub const fn new(src_qpn: u32, dst_qpn: u32) -> Self {
        Crafter {
            src_mac: mac_of(src_qpn),
            dst_mac: mac_of(dst_qpn),
            src_qpn,
            dst_qpn,
            transport: Transport::Rc,
        }
    }

    /// The same crafter sending UC frames (docs/wire.md §14): no AckReq.
    pub const fn uc(self) -> Self {
        Crafter {
            transport: Transport::Uc,
            ..self
        }
    }

    /// A frame with this opcode, PSN, extension headers and payload
    /// (AckReq set on requests), fresh CRC. Panics if `ext` does not fit
    /// the opcode.
    pub fn frame(&self, opcode: Opcode, psn: u32, ext: Ext, payload: &[u8]) -> Vec<u8> {
        let repr = FrameRepr {
            dst_mac: self.dst_mac,
            src_mac: self.src_mac,
            peer_index: omx_wire::PEER_INDEX_UNKNOWN,
            bth: Bth {
                opcode,
                transport: self.transport,
                ack_req: opcode.is_request() && matches!(self.transport, Transport::Rc),
                solicited: false,
                dst_qpn: Qpn::new(self.dst_qpn),
                src_qpn: Qpn::new(self.src_qpn),
                psn: Psn::new(psn),
            },
            ext,
            payload_len: payload.len(),
        };
        let mut buf = vec![0; repr.buffer_len()];
        let n = repr
            .emit(&mut Frame::new_unchecked(&mut buf[..]), |p| {
                p.copy_from_slice(payload)
            })
            .expect("ext matches the opcode");
        buf.truncate(n);
        buf
    }

    /// An ACKNOWLEDGE with this syndrome, PSN and credits.
    pub fn ack(&self, psn: u32, syndrome: omx_wire::Syndrome, credits: u16) -> Vec<u8> {
        let ext = Ext {
            aeth: Some(omx_wire::Aeth {
                syndrome,
                msn: 0,
                credits,
            }),
            ..Ext::default()
        };
        self.frame(Opcode::Acknowledge, psn, ext, &[])
    }
}

/// Every frame `qp` has to send at `now` (at most `limit`).
pub fn transmit_all<M: MemoryAccess + ?Sized>(
    qp: &mut RcQp,
    now: Instant,
    mem: &M,
    limit: usize,
) -> Vec<Vec<u8>> {
    let mut buf = vec![0; omx_wire::max_frame_len(4096)];
    let mut out = Vec::new();
    while out.len() < limit {
        let Some(t) = qp.poll_transmit(now, &mut buf, mem) else {
            break;
        };
        out.push(buf[..t.len].to_vec());
    }
    out
}

/// Moves frames between `a` and `b` (each with its memory) at `now`,
/// losing nothing, until neither has anything to send, at most `rounds`
/// times; returns the frames moved. Timers are not run.
pub fn exchange<M: MemoryAccess>(
    a: (&mut RcQp, &mut M),
    b: (&mut RcQp, &mut M),
    now: Instant,
    rounds: usize,
) -> usize {
    let (qa, ma) = a;
    let (qb, mb) = b;
    let mut moved = 0;
    for _ in 0..rounds {
        let to_b = transmit_all(qa, now, ma, usize::MAX);
        let to_a = transmit_all(qb, now, mb, usize::MAX);
        if to_a.is_empty() && to_b.is_empty() {
            break;
        }
        moved += to_a.len() + to_b.len();
        for f in &to_b {
            let _ = qb.handle_frame(now, f, mb);
        }
        for f in &to_a {
            let _ = qa.handle_frame(now, f, ma);
        }
    }
    moved
}

/// A signaled send WR of one SGE.
pub fn send_wr(wr_id: u64, op: crate::SendOp, addr: u64, len: u32, lkey: u32) -> crate::SendWr {
    crate::SendWr {
        wr_id,
        op,
        sg: crate::SgList::single(addr, len, lkey),
        signaled: true,
        solicited: false,
    }
}

/// A receive WR of one SGE.
pub fn recv_wr(wr_id: u64, addr: u64, len: u32, lkey: u32) -> crate::RecvWr {
    crate::RecvWr {
        wr_id,
        sg: crate::SgList::single(addr, len, lkey),
    }
}

/// A shared receive queue for tests: a locked FIFO of WQEs that several
/// QPs take from ([`crate::RcQp::with_srq`]), counting what was taken.
#[derive(Debug, Default)]
pub struct TestSrq {
    q: std::sync::Mutex<std::collections::VecDeque<crate::RecvWr>>,
    taken: core::sync::atomic::AtomicU64,
}

impl TestSrq {
    /// Appends a WQE.
    pub fn post(&self, wr: crate::RecvWr) {
        self.q.lock().unwrap().push_back(wr);
    }

    /// WQEs posted and not taken yet.
    pub fn len(&self) -> usize {
        self.q.lock().unwrap().len()
    }

    /// Whether no WQE is left.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// WQEs taken so far.
    pub fn taken(&self) -> u64 {
        self.taken.load(core::sync::atomic::Ordering::Relaxed)
    }
}

impl crate::SharedRecv for TestSrq {
    fn take(&self) -> Option<crate::RecvWr> {
        let w = self.q.lock().unwrap().pop_front();
        if w.is_some() {
            self.taken
                .fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        }
        w
    }
}

/// Every completion `qp` has queued.
pub fn completions(qp: &mut RcQp) -> Vec<crate::WorkCompletion> {
    core::iter::from_fn(|| qp.poll_completion()).collect()
}

/// Decodes a frame the engine emitted. Panics if it does not parse.
pub fn parse(frame: &[u8]) -> FrameRepr {
    let f = Frame::new_checked(frame).expect("valid frame");
    FrameRepr::parse(&f).expect("valid frame")
}
