//! Same-host delivery: Open-MX's "shared" path for verbs frames
//! (docs/wire.md §11).
//!
//! Two endpoints on the same device (two processes, or two contexts of
//! one process) exchange their frames through shared memory instead of
//! the netdev: the receiving endpoint owns an *inbox*, a file in
//! `/dev/shm` named after the owner's effective user, the network
//! namespace, the netdev and the endpoint number ([`InboxDir`]), and every
//! local sender writes its
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
//! and its memory when the last mapping goes. The owner holds
//! `flock(LOCK_EX)` on its file for the inbox's whole life (the
//! descriptor stays open beside the mapping, `O_CLOEXEC`), so a file
//! whose lock is free has no live owner: senders do not use it, and the
//! next context of the same user that creates an inbox on that netdev
//! removes it (a process killed with SIGKILL leaves its file only until
//! then). Lock probes take a shared lock, so that one prober never looks
//! like an owner to another; cleaners exclude each other per file with
//! an OFD lock on its first byte ([`Inbox::create`]).
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
//! Trust: an inbox is used only if its file is a regular file of the
//! sender's own effective user (never followed if a symlink), so processes
//! of one user share memory (which they could read through ptrace anyway)
//! and no other user can plant an inbox that collects our frames. The
//! names are predictable, so another user can take one first (a file of
//! theirs, a directory, a symlink): a creator then uses the next of four
//! names ([`NAMES`]) and a sender looks them up in the same order, and
//! each such squat is reported to the caller once per process, never
//! ignored silently; with all four taken the endpoint has no inbox and
//! its local peers use the netdev. Frames read from an inbox get the same
//! checks as frames from the wire.

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

/// Names an inbox may have: the primary, then this many minus one
/// alternates (`.1`, `.2`, `.3`) for when a name is taken.
pub const NAMES: usize = 4;

/// Where the inboxes of one netdev live, and whose they are: the files
/// `<dir>/omx-<euid>-<netns inode>-<ifindex>-<endpoint>[.<k>]`
/// (docs/wire.md §11). Every process of one effective user on that netdev
/// names an endpoint's inbox the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxDir {
    dir: PathBuf,
    euid: u32,
    ns: u64,
    ifindex: u32,
}

impl InboxDir {
    /// `/dev/shm`, for the netdev `ifindex` of the caller's network
    /// namespace and the caller's effective user, or `None` if the
    /// namespace cannot be named (no /proc).
    pub fn system(ifindex: u32) -> Option<Self> {
        let ns = std::fs::metadata("/proc/self/ns/net").ok()?.ino();
        Some(Self::new(PathBuf::from("/dev/shm"), ns, ifindex))
    }

    /// Inboxes in `dir` for the namespace `ns` (tests use their own
    /// directory), owned by the caller's effective user.
    pub fn new(dir: PathBuf, ns: u64, ifindex: u32) -> Self {
        InboxDir {
            dir,
            euid: euid(),
            ns,
            ifindex,
        }
    }

    /// What every inbox name on this netdev of this user starts with.
    fn prefix(&self) -> String {
        format!("omx-{}-{}-{}-", self.euid, self.ns, self.ifindex)
    }

    /// The names the inbox of `endpoint` may have, in the order a creator
    /// tries them and a sender looks them up.
    pub fn names(&self, endpoint: u32) -> [PathBuf; NAMES] {
        let base = format!("{}{endpoint}", self.prefix());
        core::array::from_fn(|k| match k {
            0 => self.dir.join(&base),
            k => self.dir.join(format!("{base}.{k}")),
        })
    }

    /// Whether `name` (a directory entry) is one of our inbox names on
    /// this netdev, for any endpoint.
    fn is_inbox_name(&self, name: &str) -> bool {
        let Some(rest) = name.strip_prefix(&self.prefix()) else {
            return false;
        };
        let (ep, alt) = match rest.split_once('.') {
            Some((ep, alt)) => (ep, Some(alt)),
            None => (rest, None),
        };
        let number = !ep.is_empty() && ep.len() <= 4 && ep.bytes().all(|b| b.is_ascii_digit());
        number && alt.is_none_or(|a| matches!(a, "1" | "2" | "3"))
    }
}

fn euid() -> u32 {
    // SAFETY: plain syscall, no arguments.
    unsafe { libc::geteuid() }
}

/// An inbox name held by something we must not use: another user's file,
/// or something that is not a regular file (a directory, a symlink, a
/// FIFO...), which only someone else can have put there. Never silently
/// ignored: the caller is told once per process ([`Inbox::create`],
/// [`Outbox::open`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Squat {
    /// The name.
    pub path: PathBuf,
    /// Owner of what is there.
    pub uid: u32,
    /// What is there.
    pub kind: SquatKind,
}

/// What holds a squatted name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SquatKind {
    /// A regular file of another user.
    ForeignFile,
    /// A directory.
    Directory,
    /// A symbolic link (never followed).
    Symlink,
    /// A FIFO, socket or device node.
    Other,
}

impl core::fmt::Display for Squat {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let what = match self.kind {
            SquatKind::ForeignFile => "a file",
            SquatKind::Directory => "a directory",
            SquatKind::Symlink => "a symbolic link",
            SquatKind::Other => "a special file",
        };
        write!(
            f,
            "same-host inbox name {} is taken by {what} of uid {}, not an inbox of ours \
             (uid {}): skipped; another user may be squatting our inbox names \
             (docs/troubleshooting.md)",
            self.path.display(),
            self.uid,
            euid()
        )
    }
}

/// Calls `report` with `squat` unless this process reported it before.
fn report_once(squat: Squat, report: &mut dyn FnMut(&Squat)) {
    static SEEN: Mutex<Vec<(PathBuf, u32)>> = Mutex::new(Vec::new());
    let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    let key = (squat.path.clone(), squat.uid);
    if !seen.contains(&key) {
        seen.push(key);
        drop(seen);
        report(&squat);
    }
}

/// What holds an inbox name.
enum Occupant {
    /// Nothing.
    Free,
    /// A regular file of ours (an inbox, live or dead, or not an inbox).
    Ours,
    /// Something we must not use.
    Squat(Squat),
}

fn occupant(path: &Path, euid: u32) -> io::Result<Occupant> {
    use std::os::unix::fs::FileTypeExt;
    let md = match std::fs::symlink_metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Occupant::Free),
        Err(e) => return Err(e),
    };
    let t = md.file_type();
    let kind = if t.is_symlink() {
        SquatKind::Symlink
    } else if t.is_dir() {
        SquatKind::Directory
    } else if t.is_fifo() || t.is_socket() || t.is_block_device() || t.is_char_device() {
        SquatKind::Other
    } else if md.uid() != euid {
        SquatKind::ForeignFile
    } else {
        return Ok(Occupant::Ours);
    };
    Ok(Occupant::Squat(Squat {
        path: path.to_owned(),
        uid: md.uid(),
        kind,
    }))
}

/// Whether the inbox file open as `file` has a live owner: the owner holds
/// `flock(LOCK_EX)` on it for its whole life, so a shared lock we can take
/// means nobody does (we drop it again at once). Probes take a *shared*
/// lock so that a sender's probe and a cleaner's never look like an owner
/// to each other.
fn has_live_owner(file: &File) -> bool {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: plain syscalls on a descriptor we own.
    unsafe {
        if libc::flock(fd, libc::LOCK_SH | libc::LOCK_NB) == 0 {
            libc::flock(fd, libc::LOCK_UN);
            return false;
        }
    }
    io::Error::last_os_error().raw_os_error() == Some(libc::EWOULDBLOCK)
}

/// Opens what is at `path` if it is a regular file of `euid`, without
/// following a symlink and without opening anything else (a device node
/// or a FIFO someone put there: looked at first, and `O_NONBLOCK` should
/// one be swapped in meanwhile); returns it with its metadata.
fn open_ours(path: &Path, euid: u32) -> Option<(File, std::fs::Metadata)> {
    let first = std::fs::symlink_metadata(path).ok()?;
    if !first.is_file() || first.uid() != euid {
        return None;
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    let md = file.metadata().ok()?;
    (md.is_file() && md.uid() == euid).then_some((file, md))
}

/// What [`remove_if_dead`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stale {
    /// A file without a live owner: removed.
    Removed,
    /// A live inbox, or another cleaner is deciding about it: kept.
    Kept,
    /// Not a regular file of ours, or gone already.
    NotOurs,
}

/// Removes the inbox file at `path` if it is ours and nobody owns it any
/// more (a killed process left it). Cleaners exclude each other per file
/// with an OFD lock on its first byte (independent of `flock`), so the
/// check that the name still leads to the file we found dead and the
/// unlink cannot interleave with another cleaner's unlink and a new
/// owner's link at that name; a new owner links only onto a free name, so
/// while we hold the OFD lock the name keeps our file.
fn remove_if_dead(path: &Path, euid: u32) -> Stale {
    let Some((file, md)) = open_ours(path, euid) else {
        return Stale::NotOurs;
    };
    if !cleaner_lock(&file) {
        return Stale::Kept;
    }
    if has_live_owner(&file) {
        return Stale::Kept;
    }
    match std::fs::symlink_metadata(path) {
        Ok(now) if now.dev() == md.dev() && now.ino() == md.ino() => {
            if std::fs::remove_file(path).is_ok() {
                Stale::Removed
            } else {
                Stale::Kept
            }
        }
        _ => Stale::NotOurs,
    }
    // `file` closes here: the OFD lock goes with it.
}

/// Takes the cleaners' lock on `file` (an OFD write lock on its first
/// byte, without waiting; released when the descriptor closes). False if
/// another cleaner holds it.
fn cleaner_lock(file: &File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: all-zero is a valid flock struct; fields set below.
    let mut lk: libc::flock = unsafe { core::mem::zeroed() };
    lk.l_type = libc::F_WRLCK as libc::c_short;
    lk.l_whence = libc::SEEK_SET as libc::c_short;
    lk.l_start = 0;
    lk.l_len = 1;
    // SAFETY: plain fcntl on our descriptor with a valid flock struct.
    unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &lk) == 0 }
}

/// Removes every inbox file of ours on this netdev (any endpoint, any
/// alternate name) whose owner is gone.
fn remove_stale(dir: &InboxDir) {
    let Ok(entries) = std::fs::read_dir(&dir.dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_str().is_some_and(|n| dir.is_inbox_name(n)) {
            remove_if_dead(&e.path(), dir.euid);
        }
    }
}

/// Gives the unnamed file `file` (`O_TMPFILE`) the name `path`; fails
/// with `AlreadyExists` if the name is taken.
fn link_at(file: &File, path: &Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    let from = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let to = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: two valid NUL-terminated paths.
    let r = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Why there is no inbox ([`Inbox::create`]).
#[derive(Debug)]
pub enum CreateError {
    /// Every name ([`NAMES`]) is taken by something we cannot use (each
    /// squat was reported) or by a live inbox of another context.
    NamesTaken,
    /// The file could not be made (no `/dev/shm`, no `O_TMPFILE`, full).
    Io(io::Error),
}

impl core::fmt::Display for CreateError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CreateError::NamesTaken => write!(f, "all {NAMES} inbox names are taken"),
            CreateError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl From<io::Error> for CreateError {
    fn from(e: io::Error) -> Self {
        CreateError::Io(e)
    }
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
    /// The file, open for the inbox's whole life: we hold `flock(LOCK_EX)`
    /// on it, which is how others know the inbox is live.
    _lock: File,
    path: PathBuf,
    dev: u64,
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
    /// Creates the inbox of `endpoint` in `dir` (mode 0600), under the
    /// first of its [`InboxDir::names`] it can take. First removes every
    /// inbox file of ours on this netdev that has no live owner (a killed
    /// process left it). The file is made unnamed (`O_TMPFILE`), locked
    /// (`flock(LOCK_EX)`, held until the inbox drops), sized and
    /// initialised, and only then linked under a name, so whatever others
    /// find at a name is complete and, while its owner lives, locked. A
    /// name taken by something we must not use is reported through
    /// `report` (once per process for each) and skipped; a name taken by
    /// a live inbox of ours (another context with this endpoint number on
    /// this netdev) is skipped too; one whose owner died meanwhile is
    /// cleaned and taken.
    pub fn create(
        dir: &InboxDir,
        endpoint: u32,
        report: &mut dyn FnMut(&Squat),
    ) -> Result<Self, CreateError> {
        use std::os::fd::AsRawFd;
        remove_stale(dir);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
            .open(&dir.dir)?;
        // SAFETY: plain syscall on our descriptor; a fresh unnamed file,
        // so the lock is free.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(io::Error::last_os_error().into());
        }
        file.set_len(FILE_BYTES as u64)?;
        reserve(&file, 0, DATA_OFF)?;
        let md = file.metadata()?;
        let m = Mapping::new(&file)?;
        let h = m.header();
        h.version.store(VERSION, Ordering::Relaxed);
        h.magic.store(MAGIC, Ordering::Release);
        for path in dir.names(endpoint) {
            // Twice: once more if the name's owner was dead and we removed it.
            for _ in 0..2 {
                match link_at(&file, &path) {
                    Ok(()) => {
                        return Ok(Inbox {
                            m,
                            _lock: file,
                            path,
                            dev: md.dev(),
                            ino: md.ino(),
                            checked: AtomicU64::new(0),
                            rx: Mutex::new(Consumer {
                                heads: [0; LANES],
                                buf: vec![0u8; MAX_FRAME].into_boxed_slice(),
                            }),
                        });
                    }
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(e.into()),
                }
                match occupant(&path, dir.euid)? {
                    // Gone meanwhile: try it again.
                    Occupant::Free => continue,
                    Occupant::Squat(sq) => report_once(sq, report),
                    Occupant::Ours => {
                        if remove_if_dead(&path, dir.euid) == Stale::Removed {
                            continue;
                        }
                    }
                }
                break;
            }
        }
        Err(CreateError::NamesTaken)
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
        // Only our own file (nobody else removes it while we hold its
        // lock, and we still do: `_lock` closes after this).
        if std::fs::symlink_metadata(&self.path)
            .is_ok_and(|md| md.dev() == self.dev && md.ino() == self.ino)
        {
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
    /// The inbox file (we never lock it but to probe its owner).
    file: File,
    path: PathBuf,
    dev: u64,
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
    /// Opens the inbox of the endpoint `peer` in `dir` as the producer
    /// `me` (1..4095): looks at its [`InboxDir::names`] in order and takes
    /// the first that is a live inbox of ours (`Outbox::open_at`),
    /// reporting through `report` (once per process for each) the names
    /// something we must not use holds. `None` when there is none.
    pub fn open(
        dir: &InboxDir,
        peer: u32,
        me: u32,
        report: &mut dyn FnMut(&Squat),
    ) -> Option<Self> {
        for path in dir.names(peer) {
            match occupant(&path, dir.euid) {
                Ok(Occupant::Ours) => {
                    if let Some(o) = Self::open_at(&path, me, dir.euid) {
                        return Some(o);
                    }
                }
                Ok(Occupant::Squat(sq)) => report_once(sq, report),
                Ok(Occupant::Free) | Err(_) => {}
            }
        }
        None
    }

    /// Opens the inbox at `path` as the producer `endpoint`: claims the
    /// lane that endpoint had, or a free one. `None` unless the file is a
    /// regular file of `euid` (not followed if a symlink), an inbox of
    /// this layout, not closed, with a live owner, and has a free lane.
    fn open_at(path: &Path, endpoint: u32, euid: u32) -> Option<Self> {
        if endpoint == 0 {
            return None;
        }
        let (file, md) = open_ours(path, euid)?;
        if md.len() < FILE_BYTES as u64 || !has_live_owner(&file) {
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
            file,
            path: path.to_owned(),
            dev: md.dev(),
            ino: md.ino(),
            busy: AtomicBool::new(false),
        })
    }

    /// Whether this outbox still leads to a live inbox: the owner did not
    /// close it, its file is still at its name (no successor replaced
    /// it), and its owner still holds the lock (it was not killed).
    /// Control path (system calls).
    pub fn current(&self) -> bool {
        self.m.header().closed.load(Ordering::Acquire) == 0
            && std::fs::symlink_metadata(&self.path)
                .is_ok_and(|md| md.dev() == self.dev && md.ino() == self.ino)
            && has_live_owner(&self.file)
    }

    /// The inbox file this outbox writes into.
    pub fn path(&self) -> &Path {
        &self.path
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

    /// Makes sure the outbox to `endpoint` (whose inbox is in `dir`)
    /// leads to a live inbox, opening it as the producer `me` if needed
    /// (squatted names go to `report`, as in [`Outbox::open`]). Returns
    /// whether frames to `endpoint` now take the local path.
    pub fn connect(
        &self,
        endpoint: u32,
        dir: &InboxDir,
        me: u32,
        report: &mut dyn FnMut(&Squat),
    ) -> bool {
        let Some(slot) = self.slots.get(endpoint as usize) else {
            return false;
        };
        let mut owned = self.owned.lock().unwrap_or_else(|p| p.into_inner());
        if self.get(endpoint).is_some_and(Outbox::current) {
            return true;
        }
        match Outbox::open(dir, endpoint, me, report) {
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

    /// A test directory and the inbox names of netns 1, ifindex 2 in it.
    fn setup(tag: &str) -> (Dir, InboxDir) {
        let d = tmpdir(tag);
        let dir = InboxDir::new(d.0.clone(), 1, 2);
        (d, dir)
    }

    /// A report callback for tests where nothing is squatted.
    fn no_squat(s: &Squat) {
        panic!("unexpected: {s}");
    }

    fn create(dir: &InboxDir, endpoint: u32) -> Inbox {
        Inbox::create(dir, endpoint, &mut no_squat).unwrap()
    }

    fn open(dir: &InboxDir, peer: u32, me: u32) -> Option<Outbox> {
        Outbox::open(dir, peer, me, &mut no_squat)
    }

    /// A fresh inbox of endpoint 7 and endpoint 9's outbox to it.
    fn pair(tag: &str) -> (Dir, InboxDir, Inbox, Outbox) {
        let (d, dir) = setup(tag);
        let ib = create(&dir, 7);
        let ob = open(&dir, 7, 9).unwrap();
        (d, dir, ib, ob)
    }

    impl Inbox {
        /// What SIGKILL leaves: the file in place, its header not closed,
        /// its lock released.
        fn kill(self) {
            use std::os::fd::AsRawFd;
            // SAFETY: plain syscall on our descriptor.
            unsafe { libc::flock(self._lock.as_raw_fd(), libc::LOCK_UN) };
            core::mem::forget(self);
        }
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
        let (_d, dir) = setup("lanes");
        let ib = create(&dir, 7);
        let a = open(&dir, 7, 10).unwrap();
        let b = open(&dir, 7, 11).unwrap();
        assert_ne!(a.lane, b.lane);
        // A new context with a's endpoint number (a was killed) gets its
        // lane and goes on where a stopped.
        a.push(&frame(1, 100));
        let a2 = open(&dir, 7, 10).unwrap();
        assert_eq!(a2.lane, a.lane);
        a2.push(&frame(2, 100));
        b.push(&frame(3, 100));
        assert_eq!(
            drain(&ib),
            vec![frame(1, 100), frame(2, 100), frame(3, 100)]
        );
        // Endpoint 0 is never a producer; the table fills up.
        assert!(open(&dir, 7, 0).is_none());
        let others: Vec<_> = (100..100 + LANES as u32 - 2)
            .map(|e| open(&dir, 7, e).unwrap())
            .collect();
        assert_eq!(others.len(), LANES - 2);
        assert!(open(&dir, 7, 4000).is_none(), "no free lane");
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
    fn names_carry_the_user_and_only_ours_are_inbox_names() {
        let dir = InboxDir::new(PathBuf::from("/x"), 11, 3);
        let me = euid();
        let names = dir.names(42);
        assert_eq!(names[0], PathBuf::from(format!("/x/omx-{me}-11-3-42")));
        assert_eq!(names[3], PathBuf::from(format!("/x/omx-{me}-11-3-42.3")));
        let ok = |n: &str| dir.is_inbox_name(&format!("omx-{me}-11-3-{n}"));
        assert!(ok("42") && ok("4095") && ok("1.1") && ok("7.3"));
        assert!(!ok("") && !ok("7.4") && !ok("7.") && !ok("x") && !ok("12345") && !ok("7.1.1"));
        assert!(
            !dir.is_inbox_name(&format!("omx-{me}-11-4-42")),
            "another netdev"
        );
        assert!(!dir.is_inbox_name("omx-11-3-42"), "the old names");
    }

    #[test]
    fn closed_replaced_dead_or_foreign_inboxes_are_not_used() {
        let (d, dir) = setup("stale");
        let p = dir.names(7)[0].clone();
        assert!(open(&dir, 7, 9).is_none(), "no inbox yet");
        let ib = create(&dir, 7);
        assert_eq!(ib.path(), p);
        let ob = open(&dir, 7, 9).unwrap();
        assert!(ob.current());
        // The owner is killed: its file stays, but nobody holds its lock.
        ib.kill();
        assert!(p.exists());
        assert!(!ob.current(), "dead");
        assert!(open(&dir, 7, 9).is_none(), "a dead inbox is not used");
        // A successor with the same endpoint number removes it and
        // creates its own: the old outbox is stale.
        let ib2 = create(&dir, 7);
        assert_eq!(ib2.path(), p);
        assert!(!ob.current());
        let ob2 = open(&dir, 7, 9).unwrap();
        assert!(ob2.current());
        drop(ib2);
        assert!(!p.exists(), "a closing owner removes its inbox");
        assert_eq!(ob2.push(&frame(1, 64)), Push::Refused, "closed");
        assert!(!ob2.current());
        // Not an inbox (a file of ours, no magic).
        std::fs::write(&p, b"hello").unwrap();
        assert!(open(&dir, 7, 9).is_none());
        std::fs::remove_file(&p).unwrap();
        // A symlink planted at the path is neither followed nor used (a
        // squat: see the tests below).
        let _keep = create(&dir, 8);
        std::os::unix::fs::symlink(dir.names(8)[0].clone(), &p).unwrap();
        let mut seen = Vec::new();
        assert!(Outbox::open(&dir, 7, 9, &mut |s| seen.push(s.clone())).is_none());
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].kind, SquatKind::Symlink);
        drop(d);
    }

    /// Makes `path` something another user could have put there.
    fn squat(path: &Path, kind: SquatKind) -> bool {
        match kind {
            SquatKind::Directory => std::fs::create_dir(path).unwrap(),
            SquatKind::Symlink => std::os::unix::fs::symlink("/etc/passwd", path).unwrap(),
            SquatKind::Other => {
                let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
                // SAFETY: a valid path.
                assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
            }
            SquatKind::ForeignFile => {
                // An inbox-sized file of uid 65534, as `nobody` would make it.
                std::fs::write(path, b"").unwrap();
                if std::os::unix::fs::chown(path, Some(65534), Some(65534)).is_err() {
                    eprintln!("not root: cannot chown, the foreign-file case is skipped");
                    std::fs::remove_file(path).unwrap();
                    return false;
                }
            }
        }
        true
    }

    #[test]
    fn a_squatted_primary_moves_the_inbox_to_the_next_name_and_the_sender_finds_it() {
        for (ep, kind) in [
            (7, SquatKind::ForeignFile),
            (8, SquatKind::Directory),
            (9, SquatKind::Symlink),
            (10, SquatKind::Other),
        ] {
            let (_d, dir) = setup(&format!("squat{ep}"));
            let names = dir.names(ep);
            if !squat(&names[0], kind) {
                continue;
            }
            let mut seen = Vec::new();
            let ib = Inbox::create(&dir, ep, &mut |s| seen.push(s.clone())).unwrap();
            assert_eq!(ib.path(), names[1], "{kind:?}");
            assert_eq!(seen.len(), 1, "{kind:?}: reported");
            assert_eq!(seen[0].path, names[0]);
            assert_eq!(seen[0].kind, kind);
            let owner = std::fs::symlink_metadata(&names[0]).unwrap().uid();
            assert_eq!(seen[0].uid, owner);
            let text = seen[0].to_string();
            assert!(text.contains(&names[0].display().to_string()), "{text}");
            assert!(text.contains(&format!("uid {owner}")), "{text}");
            // The sender skips the squat (reported once per process: the
            // receiver's report was it) and finds the inbox at `.1`.
            let mut again = Vec::new();
            let ob = Outbox::open(&dir, ep, 20, &mut |s| again.push(s.clone())).unwrap();
            assert!(again.is_empty(), "{kind:?}: once per process");
            assert_eq!(ob.path(), names[1]);
            assert_eq!(ob.push(&frame(1, 64)), Push::Queued { wake: false });
            assert_eq!(drain(&ib), vec![frame(1, 64)]);
            // The squat is left alone.
            assert!(std::fs::symlink_metadata(&names[0]).is_ok());
        }
    }

    #[test]
    fn a_sender_reports_a_squat_it_finds_first() {
        let (_d, dir) = setup("squat-tx");
        let names = dir.names(7);
        squat(&names[0], SquatKind::Directory);
        let mut seen = Vec::new();
        assert!(Outbox::open(&dir, 7, 9, &mut |s| seen.push(s.clone())).is_none());
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].path, names[0]);
        // Not twice.
        assert!(Outbox::open(&dir, 7, 9, &mut |s| seen.push(s.clone())).is_none());
        assert_eq!(seen.len(), 1);
    }

    #[test]
    fn with_every_name_squatted_there_is_no_inbox_and_no_outbox() {
        let (_d, dir) = setup("squat-all");
        let names = dir.names(7);
        for n in &names {
            squat(n, SquatKind::Directory);
        }
        let mut seen = Vec::new();
        assert!(matches!(
            Inbox::create(&dir, 7, &mut |s| seen.push(s.clone())),
            Err(CreateError::NamesTaken)
        ));
        let paths: Vec<_> = seen.iter().map(|s| s.path.clone()).collect();
        assert_eq!(paths, names, "each squat reported, in order");
        let t = Outboxes::default();
        assert!(!t.connect(7, &dir, 9, &mut no_squat), "already reported");
        assert!(t.get(7).is_none(), "frames to 7 take the netdev");
    }

    #[test]
    fn inboxes_of_killed_owners_are_removed_by_the_next_creation() {
        let (_d, dir) = setup("cleanup");
        let live = create(&dir, 8);
        let dead7 = create(&dir, 7);
        let p7 = dead7.path().to_owned();
        // A killed owner of an alternate name, too.
        squat(&dir.names(9)[0], SquatKind::Directory);
        let mut seen = Vec::new();
        let dead9 = Inbox::create(&dir, 9, &mut |s| seen.push(s.clone())).unwrap();
        let p9 = dead9.path().to_owned();
        assert_eq!(p9, dir.names(9)[1]);
        dead7.kill();
        dead9.kill();
        assert!(p7.exists() && p9.exists());
        // Another netdev's file is not ours to judge.
        let other = InboxDir::new(dir.dir.clone(), 1, 3);
        let foreign_dev = create(&other, 7);
        foreign_dev.kill();
        // The next creation on this netdev, for any endpoint.
        let _new = create(&dir, 100);
        assert!(!p7.exists(), "the dead inbox of endpoint 7 is gone");
        assert!(!p9.exists(), "and the one at an alternate name");
        assert!(live.path().exists(), "a live inbox stays");
        assert!(other.names(7)[0].exists(), "other netdevs are left alone");
        let ob = open(&dir, 8, 9).unwrap();
        assert_eq!(ob.push(&frame(1, 64)), Push::Queued { wake: false });
        assert_eq!(drain(&live).len(), 1);
    }

    #[test]
    fn a_live_inbox_is_never_removed_and_a_second_owner_takes_the_next_name() {
        let (_d, dir) = setup("live");
        let first = create(&dir, 7);
        let names = dir.names(7);
        assert_eq!(first.path(), names[0]);
        // Another live context with endpoint number 7 on this netdev
        // (another device on the same netdev): it must not take over.
        let second = create(&dir, 7);
        assert_eq!(second.path(), names[1]);
        assert!(names[0].exists());
        // A sender takes the first live one, in name order.
        let ob = open(&dir, 7, 9).unwrap();
        assert_eq!(ob.path(), names[0]);
        drop(first);
        assert!(!names[0].exists());
        let ob2 = open(&dir, 7, 9).unwrap();
        assert_eq!(ob2.path(), names[1]);
        assert!(second.path().exists());
    }

    /// The file of endpoint 7's inbox, whose owner was killed.
    fn dead_inbox(tag: &str) -> (Dir, InboxDir, PathBuf) {
        let (d, dir) = setup(tag);
        let ib = create(&dir, 7);
        let p = ib.path().to_owned();
        ib.kill();
        (d, dir, p)
    }

    #[test]
    fn a_cleaner_deciding_about_a_file_does_not_make_it_look_live() {
        use std::os::fd::AsRawFd;
        let (_d, dir, p) = dead_inbox("probe");
        // Another process's cleaner (or sender) probing the dead file
        // right now holds a shared lock on it.
        let probe = File::open(&p).unwrap();
        // SAFETY: plain syscall on our descriptor.
        assert_eq!(unsafe { libc::flock(probe.as_raw_fd(), libc::LOCK_SH) }, 0);
        assert!(open(&dir, 7, 9).is_none(), "still dead to a sender");
        assert_eq!(remove_if_dead(&p, euid()), Stale::Removed);
    }

    #[test]
    fn cleaners_exclude_each_other_per_file() {
        let (_d, _, p) = dead_inbox("cleaners");
        // Another cleaner is between its check and its unlink.
        let other = OpenOptions::new().read(true).write(true).open(&p).unwrap();
        assert!(cleaner_lock(&other));
        assert_eq!(remove_if_dead(&p, euid()), Stale::Kept);
        assert!(p.exists());
        drop(other);
        assert_eq!(remove_if_dead(&p, euid()), Stale::Removed);
    }

    #[test]
    fn outboxes_follow_the_live_inbox() {
        let (_d, dir) = setup("table");
        let t = Outboxes::default();
        let connect = |ep| t.connect(ep, &dir, 9, &mut no_squat);
        assert!(!connect(7), "no inbox yet");
        assert!(t.get(7).is_none());
        let ib = create(&dir, 7);
        assert!(connect(7));
        let first: *const Outbox = t.get(7).unwrap();
        assert!(connect(7));
        assert_eq!(
            t.get(7).unwrap() as *const Outbox,
            first,
            "kept while current"
        );
        t.get(7).unwrap().push(&frame(1, 64));
        assert_eq!(drain(&ib).len(), 1);
        // The owner was killed and a successor created a new inbox.
        ib.kill();
        let ib2 = create(&dir, 7);
        assert!(connect(7));
        t.get(7).unwrap().push(&frame(2, 64));
        assert_eq!(drain(&ib2), vec![frame(2, 64)]);
        ib2.close();
        assert!(!connect(7));
        assert!(t.get(7).is_none());
        assert!(!connect(5000), "no such endpoint number");
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
