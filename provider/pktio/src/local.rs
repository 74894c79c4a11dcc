//! Same-host delivery: Open-MX's "shared" path for verbs frames
//! (docs/wire.md §11).
//!
//! Two endpoints on the same device (two processes, or two contexts of
//! one process) exchange their frames through shared memory instead of
//! the netdev: the receiving endpoint owns an *inbox*, a file in
//! `/dev/shm` named after the network namespace, the netdev and the
//! endpoint number ([`inbox_path`]), and every local sender writes its
//! frames into a *lane* of that inbox, a single-producer byte ring of
//! [`LANE_BYTES`]. The frames are the very bytes the wire would carry
//! (head, BTH, CRC): the engine does not know which way they came. Open-MX
//! copies between endpoints in its driver; we have no packet driver, so
//! the copy goes through a mapping both processes share. A frame costs the
//! sender one copy into the lane and the receiver one copy out of it (the
//! receiver never reads frames in place, so a sender writing into memory
//! the receiver is reading cannot change a frame under the engine's feet),
//! and no system call while the receiver is awake.
//!
//! When the receiver is asleep in `ppoll()` (its progress thread set the
//! inbox's `sleeping` word before it blocked), the sender that takes the
//! word sends a 60-byte wake frame (ptype [`PTYPE_LOCAL_WAKE`]) through
//! the netdev to the receiver's loopback tap; the receiver drops it
//! unread and drains the inbox. Dekker's pattern, with SeqCst on all
//! four accesses: the sender publishes its frame (`posted`) and then reads
//! `sleeping`; the receiver sets `sleeping` and then reads `posted`. One
//! of them sees the other, so a frame is never left unseen behind a
//! sleeping receiver.
//!
//! Whenever the inbox cannot take a frame (no inbox, another user's,
//! closed, lane full, no free lane, another thread of the sender is
//! writing into the lane), the frame goes out through the netdev as
//! before and reaches the receiver through its loopback tap: the local
//! path is an optimisation, never the only way.
//!
//! Who holds references: the receiving context's runtime owns its
//! [`Inbox`] (created with its first QP, removed when the context closes);
//! a sending context owns one [`Outbox`] per local endpoint it connected a
//! QP to, until it closes. Both are plain shared mappings of the file;
//! the file disappears when the inbox's owner closes it (unlinked on drop)
//! and its memory when the last mapping goes. A process killed with
//! SIGKILL leaves its inbox file until its endpoint number is reused on
//! that device (the new owner replaces it).
//!
//! Locks and ordering: one lane has one producer, the context whose
//! endpoint number claimed it in the header's `owners` table (an endpoint
//! number is held by one live context per device, so a lane outlives a
//! killed producer and is taken over by the next owner of that number).
//! Threads of that context take the lane with a try-lock
//! ([`Outbox::push`] never waits: contended means "send it through the
//! netdev"). The producer writes a record, then publishes the lane's
//! `tail` (Release), then bumps the inbox's `posted` (SeqCst). The single
//! consumer (whoever holds [`Inbox::receiver`], a try-lock) reads `tail`
//! (Acquire), copies the record out and publishes `head` (Release) so the
//! producer may reuse the space. The consumer keeps its own copy of every
//! head and never trusts the shared one; every length read from the
//! mapping is checked, and a lane whose records make no sense is emptied
//! (its frames are lost; the engine retransmits).
//!
//! Trust: an inbox is used only if its file belongs to the sender's own
//! effective user, so processes of one user share memory (which they could
//! read through ptrace anyway) and no other user can plant an inbox that
//! collects our frames. Frames read from an inbox get the same checks as
//! frames from the wire.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};

use memmap2::MmapRaw;

pub use omx_wire::PTYPE_LOCAL_WAKE;
/// Lanes per inbox: local senders one endpoint can have at once.
pub const LANES: usize = 64;
/// Bytes of one lane's ring (a power of two).
pub const LANE_BYTES: usize = 1 << 20;
/// Largest frame a lane carries (Ethernet jumbo frames).
pub const MAX_FRAME: usize = 9216;
/// Shortest frame a lane carries (the Open-MX head and the ptype).
const MIN_FRAME: usize = 17;
/// Layout version, in the header.
const VERSION: u32 = 1;
/// "omxlocal", written last when an inbox is created.
const MAGIC: u64 = u64::from_le_bytes(*b"omxlocal");
/// A record header whose length is this says "the lane goes on at its start".
const SKIP: u32 = u32::MAX;
/// Record header: length (u32) and a reserved u32, keeping payloads
/// 8-byte aligned.
const REC_HDR: usize = 8;

const HEADER_BYTES: usize = 4096;
const CTL_BYTES: usize = 128;
const DATA_OFF: usize = HEADER_BYTES + LANES * CTL_BYTES;
/// Size of an inbox file (sparse: only the pages lanes touch take memory).
pub const FILE_BYTES: usize = DATA_OFF + LANES * LANE_BYTES;

/// The inbox header at offset 0 of the file.
#[repr(C)]
struct Header {
    magic: AtomicU64,
    version: AtomicU32,
    /// Set by the owner when it closes the inbox: senders stop using it.
    closed: AtomicU32,
    _pad0: [u8; 48],
    /// Frames published into any lane, bumped by producers (SeqCst).
    posted: AtomicU64,
    _pad1: [u8; 56],
    /// 1 while the owner may be asleep without watching the inbox.
    sleeping: AtomicU32,
    _pad2: [u8; 60],
    /// Endpoint number of each lane's producer, 0 = free.
    owners: [AtomicU32; LANES],
}

/// One lane's indices (byte counts since the lane's creation), on
/// separate cache lines.
#[repr(C)]
struct LaneCtl {
    /// Written by the producer.
    tail: AtomicU64,
    _pad0: [u8; 56],
    /// Written by the consumer.
    head: AtomicU64,
    _pad1: [u8; 56],
}

const _: () = assert!(core::mem::size_of::<Header>() <= HEADER_BYTES);
const _: () = assert!(core::mem::size_of::<LaneCtl>() == CTL_BYTES);
const _: () = assert!(LANE_BYTES.is_power_of_two() && DATA_OFF.is_multiple_of(4096));

/// Space a frame of `len` bytes takes in a lane.
const fn record_len(len: usize) -> usize {
    REC_HDR + ((len + 7) & !7)
}

/// `/dev/shm/omx-<netns inode>-<ifindex>-<endpoint>`: the inbox of
/// `endpoint` on the netdev `ifindex` of the caller's network namespace,
/// or `None` if the namespace cannot be named (no /proc).
pub fn inbox_path(ifindex: u32, endpoint: u32) -> Option<PathBuf> {
    let ns = std::fs::metadata("/proc/self/ns/net").ok()?.ino();
    Some(inbox_path_in(Path::new("/dev/shm"), ns, ifindex, endpoint))
}

/// [`inbox_path`] under `dir` for the namespace `ns` (tests).
pub fn inbox_path_in(dir: &Path, ns: u64, ifindex: u32, endpoint: u32) -> PathBuf {
    dir.join(format!("omx-{ns}-{ifindex}-{endpoint}"))
}

/// Reserves the file's blocks for `[off, off + len)`. The file is sparse
/// and shared memory: a store into a page tmpfs cannot back (a full
/// `/dev/shm`) would kill the process with SIGBUS, so every page we will
/// write is allocated up front, where a failure is an error we can take.
/// A filesystem without `fallocate` gets no reservation (tmpfs has it).
fn reserve(file: &File, off: usize, len: usize) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: plain syscall on a descriptor we own; mode 0 only allocates.
    let r = unsafe { libc::fallocate(file.as_raw_fd(), 0, off as libc::off_t, len as libc::off_t) };
    if r == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EOPNOTSUPP) => Ok(()),
        _ => Err(e),
    }
}

/// A shared mapping of a whole inbox file.
#[derive(Debug)]
struct Mapping {
    map: MmapRaw,
}

impl Mapping {
    fn new(file: &File) -> io::Result<Self> {
        let map = MmapRaw::map_raw(file)?;
        if map.len() < FILE_BYTES {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        Ok(Mapping { map })
    }

    fn header(&self) -> &Header {
        // SAFETY: the mapping is at least FILE_BYTES long, page aligned
        // and lives as long as `self`; Header is all atomics and padding,
        // valid for any bytes, and other processes change it only
        // through atomic accesses.
        unsafe { &*self.map.as_ptr().cast::<Header>() }
    }

    fn ctl(&self, lane: usize) -> &LaneCtl {
        debug_assert!(lane < LANES);
        // SAFETY: as in `header`; lane < LANES keeps the LaneCtl inside
        // the control area, 128-byte aligned.
        unsafe {
            &*self
                .map
                .as_ptr()
                .add(HEADER_BYTES + lane * CTL_BYTES)
                .cast::<LaneCtl>()
        }
    }

    /// Start of a lane's ring. Only ever accessed through raw pointers:
    /// another process writes into it concurrently.
    fn data(&self, lane: usize) -> *mut u8 {
        debug_assert!(lane < LANES);
        // SAFETY: inside the mapping (DATA_OFF + LANES * LANE_BYTES =
        // FILE_BYTES).
        unsafe { self.map.as_mut_ptr().add(DATA_OFF + lane * LANE_BYTES) }
    }
}

/// The receiving side: this endpoint's inbox.
#[derive(Debug)]
pub struct Inbox {
    m: Mapping,
    path: PathBuf,
    ino: u64,
    /// `posted` as it was when a receive pass last emptied every lane.
    checked: AtomicU64,
    rx: Mutex<Consumer>,
}

#[derive(Debug)]
struct Consumer {
    heads: [u64; LANES],
    buf: Box<[u8]>,
}

/// Exclusive access to an inbox's receive side ([`Inbox::receiver`]).
#[derive(Debug)]
pub struct InboxReceiver<'a> {
    inbox: &'a Inbox,
    c: MutexGuard<'a, Consumer>,
}

impl Inbox {
    /// Creates the inbox at `path` (mode 0600), replacing a file a
    /// killed owner of the same endpoint number left there. Fails if the
    /// path belongs to another user (the sticky `/dev/shm` keeps us from
    /// removing it) or the file cannot be created and sized.
    pub fn create(path: PathBuf) -> io::Result<Self> {
        let open = || {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&path)
        };
        let file = match open() {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                std::fs::remove_file(&path)?;
                open()?
            }
            r => r?,
        };
        file.set_len(FILE_BYTES as u64)?;
        if let Err(e) = reserve(&file, 0, DATA_OFF) {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        let ino = file.metadata()?.ino();
        let m = Mapping::new(&file)?;
        let h = m.header();
        h.version.store(VERSION, Ordering::Relaxed);
        h.magic.store(MAGIC, Ordering::Release);
        Ok(Inbox {
            m,
            path,
            ino,
            checked: AtomicU64::new(0),
            rx: Mutex::new(Consumer {
                heads: [0; LANES],
                buf: vec![0u8; MAX_FRAME].into_boxed_slice(),
            }),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether a sender published frames since a receive pass last
    /// emptied the inbox: one load from the shared header.
    pub fn may_have_frames(&self) -> bool {
        self.m.header().posted.load(Ordering::Acquire) != self.checked.load(Ordering::Relaxed)
    }

    /// The receive side, unless another thread is receiving (never waits).
    pub fn receiver(&self) -> Option<InboxReceiver<'_>> {
        let c = match self.rx.try_lock() {
            Ok(g) => g,
            // The heads are consistent between frames.
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return None,
        };
        Some(InboxReceiver { inbox: self, c })
    }

    /// The progress thread is about to sleep without looking at the
    /// inbox: from now on a sender must wake it. Returns false if frames
    /// may already be waiting (then it must not sleep; it calls
    /// [`Inbox::awake`] and receives).
    pub fn prepare_sleep(&self) -> bool {
        let h = self.m.header();
        h.sleeping.store(1, Ordering::SeqCst);
        h.posted.load(Ordering::SeqCst) == self.checked.load(Ordering::Relaxed)
    }

    /// The progress thread watches the inbox again.
    pub fn awake(&self) {
        self.m.header().sleeping.store(0, Ordering::Relaxed);
    }
}

impl Inbox {
    /// Closes the inbox: senders stop using it (they send through the
    /// netdev) and its file is removed. Idempotent; the mapping stays
    /// until drop.
    pub fn close(&self) {
        if self.m.header().closed.swap(1, Ordering::SeqCst) != 0 {
            return;
        }
        // Only our own file: a successor may have replaced it already.
        if std::fs::symlink_metadata(&self.path).is_ok_and(|md| md.ino() == self.ino) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        self.close();
    }
}

impl InboxReceiver<'_> {
    /// Calls `f` with frames from the lanes, lane by lane and in order
    /// within a lane, until all are empty or `budget` frames were handled.
    /// Returns the number handled. The slice is a private copy, valid
    /// during the call.
    pub fn recv_batch(&mut self, budget: usize, mut f: impl FnMut(&[u8])) -> usize {
        let inbox = self.inbox;
        let h = inbox.m.header();
        let posted = h.posted.load(Ordering::SeqCst);
        let mut n = 0;
        let Consumer { heads, buf } = &mut *self.c;
        for (lane, head) in heads.iter_mut().enumerate() {
            if h.owners[lane].load(Ordering::Relaxed) == 0 {
                continue;
            }
            let ctl = inbox.m.ctl(lane);
            let data = inbox.m.data(lane);
            let tail = ctl.tail.load(Ordering::Acquire);
            while *head != tail && n < budget {
                match read_record(data, *head, tail, buf) {
                    Record::Frame(len, next) => {
                        *head = next;
                        f(&buf[..len]);
                        n += 1;
                    }
                    Record::Skip(next) => *head = next,
                    // A producer wrote nonsense: drop what the lane holds.
                    Record::Bad => *head = tail,
                }
                // Give the space back frame by frame: the producer may be
                // waiting for it right now.
                ctl.head.store(*head, Ordering::Release);
            }
            if n >= budget {
                return n;
            }
        }
        inbox.checked.store(posted, Ordering::Relaxed);
        n
    }
}

enum Record {
    /// A frame of this length was copied out; the next record starts here.
    Frame(usize, u64),
    /// Padding up to the lane's end; the next record starts here.
    Skip(u64),
    /// The record cannot be right.
    Bad,
}

/// Reads the record at `head` of a lane whose producer published `tail`,
/// copying its frame into `buf`.
fn read_record(data: *const u8, head: u64, tail: u64, buf: &mut [u8]) -> Record {
    let avail = tail.wrapping_sub(head);
    if avail > LANE_BYTES as u64 || avail < REC_HDR as u64 || !head.is_multiple_of(8) {
        return Record::Bad;
    }
    let pos = (head % LANE_BYTES as u64) as usize;
    // SAFETY: pos is 8-aligned and pos + 8 <= LANE_BYTES (LANE_BYTES is a
    // multiple of 8), inside the lane; the producer wrote the record
    // before publishing `tail` (Acquire above us).
    let len = unsafe { core::ptr::read_volatile(data.add(pos).cast::<u32>()) };
    if len == SKIP {
        return Record::Skip(head + (LANE_BYTES - pos) as u64);
    }
    let len = len as usize;
    let rec = record_len(len) as u64;
    if len < MIN_FRAME
        || len > buf.len()
        || len > MAX_FRAME
        || rec > avail
        || pos + record_len(len) > LANE_BYTES
    {
        return Record::Bad;
    }
    // SAFETY: the record lies inside the lane (checked just above) and
    // buf holds len bytes; the lane is shared memory, read only through
    // this raw copy.
    unsafe { core::ptr::copy_nonoverlapping(data.add(pos + REC_HDR), buf.as_mut_ptr(), len) };
    Record::Frame(len, head + rec)
}

/// The sending side: one lane of another endpoint's inbox.
#[derive(Debug)]
pub struct Outbox {
    m: Mapping,
    lane: usize,
    ino: u64,
    /// Held by the thread writing into the lane.
    busy: AtomicBool,
}

/// What [`Outbox::push`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// The frame is in the inbox; if `wake`, the receiver sleeps and this
    /// sender must send it a wake frame.
    Queued { wake: bool },
    /// Not taken: send the frame through the netdev.
    Refused,
}

impl Outbox {
    /// Opens the inbox at `path` as the producer `endpoint` (1..4095):
    /// claims the lane that endpoint had, or a free one. `None` when there
    /// is no usable inbox there (none yet, another user's, closed, not an
    /// inbox, no free lane).
    pub fn open(path: &Path, endpoint: u32) -> Option<Self> {
        if endpoint == 0 {
            return None;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .ok()?;
        let md = file.metadata().ok()?;
        // SAFETY: plain syscall, no arguments.
        let me = unsafe { libc::geteuid() };
        if md.uid() != me || !md.is_file() || md.len() < FILE_BYTES as u64 {
            return None;
        }
        let m = Mapping::new(&file).ok()?;
        let h = m.header();
        if h.magic.load(Ordering::Acquire) != MAGIC
            || h.version.load(Ordering::Relaxed) != VERSION
            || h.closed.load(Ordering::Acquire) != 0
        {
            return None;
        }
        let (lane, claimed) = match h
            .owners
            .iter()
            .position(|o| o.load(Ordering::Acquire) == endpoint)
        {
            Some(l) => (l, false),
            None => (
                h.owners.iter().position(|o| {
                    o.compare_exchange(0, endpoint, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                })?,
                true,
            ),
        };
        if reserve(&file, DATA_OFF + lane * LANE_BYTES, LANE_BYTES).is_err() {
            if claimed {
                h.owners[lane].store(0, Ordering::Release);
            }
            return None;
        }
        Some(Outbox {
            m,
            lane,
            ino: md.ino(),
            busy: AtomicBool::new(false),
        })
    }

    /// Whether this outbox still leads to the inbox now at `path` (the
    /// owner did not close it, nor did a successor replace the file).
    pub fn current(&self, path: &Path) -> bool {
        self.m.header().closed.load(Ordering::Acquire) == 0
            && std::fs::symlink_metadata(path).is_ok_and(|md| md.ino() == self.ino)
    }

    /// Queues `frame` in the lane, without waiting and without a system
    /// call.
    pub fn push(&self, frame: &[u8]) -> Push {
        let h = self.m.header();
        if frame.len() > MAX_FRAME || h.closed.load(Ordering::Relaxed) != 0 {
            return Push::Refused;
        }
        if self
            .busy
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return Push::Refused;
        }
        let ctl = self.m.ctl(self.lane);
        let tail = ctl.tail.load(Ordering::Relaxed);
        let head = ctl.head.load(Ordering::Acquire);
        let used = tail.wrapping_sub(head);
        let need = record_len(frame.len());
        let pos = (tail % LANE_BYTES as u64) as usize;
        let skip = if LANE_BYTES - pos < need {
            LANE_BYTES - pos
        } else {
            0
        };
        if !tail.is_multiple_of(8)
            || used > LANE_BYTES as u64
            || used as usize + skip + need > LANE_BYTES
        {
            // Full (or the consumer's head makes no sense: then it is
            // resetting the lane).
            self.busy.store(false, Ordering::Release);
            return Push::Refused;
        }
        let data = self.m.data(self.lane);
        // SAFETY: pos is 8-aligned and inside the lane; with `skip` the
        // record starts at the lane's start, else it fits before the end
        // (checked above); the space from tail on is ours until we
        // publish the new tail (the consumer reads only up to tail).
        unsafe {
            let at = if skip != 0 {
                core::ptr::write_volatile(data.add(pos).cast::<u32>(), SKIP);
                0
            } else {
                pos
            };
            core::ptr::write_volatile(data.add(at).cast::<u32>(), frame.len() as u32);
            core::ptr::write_volatile(data.add(at + 4).cast::<u32>(), 0);
            core::ptr::copy_nonoverlapping(frame.as_ptr(), data.add(at + REC_HDR), frame.len());
        }
        ctl.tail
            .store(tail + (skip + need) as u64, Ordering::Release);
        self.busy.store(false, Ordering::Release);
        h.posted.fetch_add(1, Ordering::SeqCst);
        let wake =
            h.sleeping.load(Ordering::SeqCst) != 0 && h.sleeping.swap(0, Ordering::SeqCst) != 0;
        Push::Queued { wake }
    }
}

/// Endpoint numbers a device has (`kmod-shim`: 12 bits).
const ENDPOINTS: usize = 4096;

/// The outboxes of one sending context, by destination endpoint number.
/// Looking one up is a load (data path); opening, checking and replacing
/// them is the control path (a QP connecting to a local endpoint). An
/// outbox replaced because its inbox went stale stays mapped until the
/// context closes, so a sender still holding it writes into memory that
/// nobody reads, never into freed memory.
#[derive(Debug)]
pub struct Outboxes {
    slots: Box<[core::sync::atomic::AtomicPtr<Outbox>]>,
    /// Every outbox ever opened; the slots point into these boxes (boxed
    /// so that they keep their address when the vector grows).
    #[allow(clippy::vec_box)]
    owned: Mutex<Vec<Box<Outbox>>>,
}

impl Default for Outboxes {
    fn default() -> Self {
        Outboxes {
            slots: (0..ENDPOINTS)
                .map(|_| core::sync::atomic::AtomicPtr::new(core::ptr::null_mut()))
                .collect(),
            owned: Mutex::new(Vec::new()),
        }
    }
}

impl Outboxes {
    /// The outbox to `endpoint`, if one is open.
    pub fn get(&self, endpoint: u32) -> Option<&Outbox> {
        let p = self.slots.get(endpoint as usize)?.load(Ordering::Acquire);
        // SAFETY: a non-null slot points into a box of `owned`, which is
        // never shrunk before `self` drops; a box's contents do not move.
        unsafe { p.as_ref() }
    }

    /// Makes sure the outbox to `endpoint` (whose inbox is at `path`)
    /// leads to its current inbox, opening it as the producer `me`.
    /// Returns whether frames to `endpoint` now take the local path.
    pub fn connect(&self, endpoint: u32, path: &Path, me: u32) -> bool {
        let Some(slot) = self.slots.get(endpoint as usize) else {
            return false;
        };
        let mut owned = self.owned.lock().unwrap_or_else(|p| p.into_inner());
        if self.get(endpoint).is_some_and(|o| o.current(path)) {
            return true;
        }
        match Outbox::open(path, me) {
            Some(o) => {
                let b = Box::new(o);
                let p: *const Outbox = &*b;
                owned.push(b);
                slot.store(p.cast_mut(), Ordering::Release);
                true
            }
            None => {
                slot.store(core::ptr::null_mut(), Ordering::Release);
                false
            }
        }
    }
}

/// The wake frame for `endpoint` on the device whose MAC is `mac`
/// ([`omx_wire::local_wake_frame`]).
pub fn wake_frame(mac: [u8; 6], endpoint: u32) -> [u8; omx_wire::MIN_FRAME_LEN] {
    omx_wire::local_wake_frame(mac, endpoint)
}

/// Whether `frame` is a wake frame (dropped before the engine).
pub fn is_wake_frame(frame: &[u8]) -> bool {
    omx_wire::is_local_wake(frame)
}

/// The destination endpoint of `frame` if it is addressed to `mac` (a
/// same-device frame: dst MAC = our MAC), from its dst QPN.
pub fn local_destination(frame: &[u8], mac: &[u8; 6]) -> Option<u32> {
    if frame.len() < omx_wire::EXT_OFFSET {
        return None;
    }
    let f = omx_wire::Frame::new_unchecked(frame);
    (f.dst_mac() == *mac).then(|| f.dst_qpn().endpoint())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    fn tmpdir(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("omx-local-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }

    /// A fresh inbox of endpoint 7 and endpoint 9's outbox to it.
    fn pair(tag: &str) -> (Dir, PathBuf, Inbox, Outbox) {
        let d = tmpdir(tag);
        let p = inbox_path_in(&d.0, 1, 2, 7);
        let ib = Inbox::create(p.clone()).unwrap();
        let ob = Outbox::open(&p, 9).unwrap();
        (d, p, ib, ob)
    }

    fn frame(i: u32, len: usize) -> Vec<u8> {
        (0..len)
            .map(|k| (k as u32 ^ i.wrapping_mul(31)) as u8)
            .collect()
    }

    fn drain(ib: &Inbox) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        ib.receiver()
            .unwrap()
            .recv_batch(usize::MAX, |f| got.push(f.to_vec()));
        got
    }

    #[test]
    fn frames_arrive_in_order_and_byte_for_byte_across_many_wraps() {
        let (_d, _, ib, ob) = pair("order");
        assert!(!ib.may_have_frames());
        let mut sent = 0u32;
        let mut want = std::collections::VecDeque::new();
        // 3000 frames of odd sizes through a 1 MiB lane: it wraps several
        // times, with padding records at the end.
        for round in 0..30 {
            for _ in 0..100 {
                let len = 60 + (sent as usize * 977) % 4000;
                let f = frame(sent, len);
                assert_eq!(ob.push(&f), Push::Queued { wake: false });
                want.push_back(f);
                sent += 1;
            }
            assert!(ib.may_have_frames());
            // Take them in two budgets.
            let mut got = Vec::new();
            let mut rx = ib.receiver().unwrap();
            assert_eq!(rx.recv_batch(40, |f| got.push(f.to_vec())), 40);
            assert!(ib.may_have_frames(), "round {round}");
            assert_eq!(rx.recv_batch(1000, |f| got.push(f.to_vec())), 60);
            drop(rx);
            assert!(!ib.may_have_frames());
            for g in got {
                assert_eq!(g, want.pop_front().unwrap());
            }
        }
    }

    #[test]
    fn a_full_lane_refuses_and_takes_again_once_drained() {
        let (_d, _, ib, ob) = pair("full");
        let f = frame(1, 9000);
        let mut queued = 0;
        while ob.push(&f) != Push::Refused {
            queued += 1;
        }
        assert_eq!(queued, LANE_BYTES / record_len(9000));
        assert_eq!(drain(&ib).len(), queued);
        assert_eq!(ob.push(&f), Push::Queued { wake: false });
        assert_eq!(drain(&ib), vec![f]);
        // Too large for any lane.
        assert_eq!(ob.push(&vec![0; MAX_FRAME + 1]), Push::Refused);
    }

    #[test]
    fn lanes_are_claimed_per_endpoint_and_taken_over_by_the_next_owner() {
        let d = tmpdir("lanes");
        let p = inbox_path_in(&d.0, 1, 2, 7);
        let ib = Inbox::create(p.clone()).unwrap();
        let a = Outbox::open(&p, 10).unwrap();
        let b = Outbox::open(&p, 11).unwrap();
        assert_ne!(a.lane, b.lane);
        // A new context with a's endpoint number (a was killed) gets its
        // lane and goes on where a stopped.
        a.push(&frame(1, 100));
        let a2 = Outbox::open(&p, 10).unwrap();
        assert_eq!(a2.lane, a.lane);
        a2.push(&frame(2, 100));
        b.push(&frame(3, 100));
        assert_eq!(
            drain(&ib),
            vec![frame(1, 100), frame(2, 100), frame(3, 100)]
        );
        // Endpoint 0 is never a producer; the table fills up.
        assert!(Outbox::open(&p, 0).is_none());
        let others: Vec<_> = (100..100 + LANES as u32 - 2)
            .map(|e| Outbox::open(&p, e).unwrap())
            .collect();
        assert_eq!(others.len(), LANES - 2);
        assert!(Outbox::open(&p, 4000).is_none(), "no free lane");
    }

    #[test]
    fn a_sleeping_receiver_is_woken_exactly_once() {
        let (_d, _, ib, ob) = pair("wake");
        assert!(ib.prepare_sleep(), "nothing waiting: may sleep");
        assert_eq!(ob.push(&frame(1, 64)), Push::Queued { wake: true });
        assert_eq!(ob.push(&frame(2, 64)), Push::Queued { wake: false });
        ib.awake();
        assert_eq!(drain(&ib).len(), 2);
        // A frame published before the receiver looks keeps it awake.
        ob.push(&frame(3, 64));
        assert!(!ib.prepare_sleep());
        ib.awake();
        assert_eq!(drain(&ib).len(), 1);
    }

    #[test]
    fn closed_replaced_or_foreign_inboxes_are_not_used() {
        let d = tmpdir("stale");
        let p = inbox_path_in(&d.0, 1, 2, 7);
        assert!(Outbox::open(&p, 9).is_none(), "no inbox yet");
        let ib = Inbox::create(p.clone()).unwrap();
        let ob = Outbox::open(&p, 9).unwrap();
        assert!(ob.current(&p));
        // A successor with the same endpoint number replaces the file
        // (the first owner was killed): the old outbox is stale.
        let ib2 = Inbox::create(p.clone()).unwrap();
        assert!(!ob.current(&p));
        // The killed owner's drop must not remove its successor's file.
        drop(ib);
        assert!(p.exists());
        let ob2 = Outbox::open(&p, 9).unwrap();
        assert!(ob2.current(&p));
        drop(ib2);
        assert!(!p.exists(), "a closing owner removes its inbox");
        assert_eq!(ob2.push(&frame(1, 64)), Push::Refused, "closed");
        assert!(!ob2.current(&p));
        // Not an inbox.
        std::fs::write(&p, b"hello").unwrap();
        assert!(Outbox::open(&p, 9).is_none());
        std::fs::remove_file(&p).unwrap();
        // A symlink planted at the path is neither followed nor used.
        let target = d.0.join("target");
        let _keep = Inbox::create(target.clone()).unwrap();
        std::os::unix::fs::symlink(&target, &p).unwrap();
        assert!(Outbox::open(&p, 9).is_none());
    }

    #[test]
    fn outboxes_follow_the_inbox_now_at_the_path() {
        let d = tmpdir("table");
        let p = inbox_path_in(&d.0, 1, 2, 7);
        let t = Outboxes::default();
        assert!(!t.connect(7, &p, 9), "no inbox yet");
        assert!(t.get(7).is_none());
        let ib = Inbox::create(p.clone()).unwrap();
        assert!(t.connect(7, &p, 9));
        let first: *const Outbox = t.get(7).unwrap();
        assert!(t.connect(7, &p, 9));
        assert_eq!(
            t.get(7).unwrap() as *const Outbox,
            first,
            "kept while current"
        );
        t.get(7).unwrap().push(&frame(1, 64));
        assert_eq!(drain(&ib).len(), 1);
        // The owner was killed and a successor created a new inbox.
        let ib2 = Inbox::create(p.clone()).unwrap();
        assert!(t.connect(7, &p, 9));
        t.get(7).unwrap().push(&frame(2, 64));
        assert_eq!(drain(&ib2), vec![frame(2, 64)]);
        assert!(drain(&ib).is_empty());
        ib2.close();
        assert!(!t.connect(7, &p, 9));
        assert!(t.get(7).is_none());
        assert!(!t.connect(5000, &p, 9), "no such endpoint number");
    }

    #[test]
    fn garbage_in_a_lane_is_dropped_not_delivered() {
        let (_d, _, ib, ob) = pair("garbage");
        ob.push(&frame(1, 100));
        // A producer scribbles a length beyond the frame limit over the
        // record and publishes more than it wrote.
        // SAFETY: test-only write into the lane's first record header.
        unsafe { core::ptr::write_volatile(ob.m.data(ob.lane).cast::<u32>(), 50_000) };
        assert!(drain(&ib).is_empty());
        let ctl = ob.m.ctl(ob.lane);
        ctl.tail
            .store(ctl.tail.load(Ordering::Relaxed) + 4096, Ordering::Release);
        ob.m.header().posted.fetch_add(1, Ordering::SeqCst);
        assert!(drain(&ib).is_empty());
        // The lane works again afterwards.
        assert_eq!(ob.push(&frame(2, 64)), Push::Queued { wake: false });
        assert_eq!(drain(&ib), vec![frame(2, 64)]);
        // A tail behind the consumer's head is nonsense too.
        ctl.tail.store(8, Ordering::Release);
        ob.m.header().posted.fetch_add(1, Ordering::SeqCst);
        assert!(drain(&ib).is_empty());
    }

    #[test]
    fn wake_frames_pass_the_tap_filter_fields_and_name_the_endpoint() {
        let mac = [2, 0, 0, 0, 0, 5];
        let f = wake_frame(mac, 77);
        assert!(is_wake_frame(&f));
        assert_eq!(local_destination(&f, &mac), Some(77));
        assert_eq!(local_destination(&f, &[2, 0, 0, 0, 0, 6]), None);
        assert_eq!(
            f[16] & 0xe0,
            0x80,
            "verbs range: the steering filter passes it"
        );
        assert!(!is_wake_frame(&[0u8; 16]));
    }

    #[test]
    fn concurrent_producers_of_one_lane_never_interleave() {
        let (_d, _, ib, ob) = pair("threads");
        let queued = AtomicU64::new(0);
        let mut got = 0u64;
        std::thread::scope(|s| {
            for t in 0..3u8 {
                let (ob, queued) = (&ob, &queued);
                s.spawn(move || {
                    for i in 0..2000u32 {
                        let f = vec![t.wrapping_add(i as u8); 64 + (i as usize % 500)];
                        if let Push::Queued { .. } = ob.push(&f) {
                            queued.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
            for _ in 0..200 {
                got += ib.receiver().unwrap().recv_batch(usize::MAX, |f| {
                    assert!(f.iter().all(|&b| b == f[0]), "a torn frame");
                }) as u64;
            }
        });
        got += drain(&ib).len() as u64;
        assert_eq!(got, queued.load(Ordering::Relaxed));
        assert!(got > 0);
    }
}
