//! Packet I/O of omx-verbs: one AF_PACKET socket per device context,
//! bound to the device's netdev and the Open-MX EtherType, with a classic
//! BPF filter that lets through only frames for our endpoint
//! (docs/wire.md §8), plus the eventfd that wakes the progress thread,
//! and [`local`]: same-host delivery through shared memory (docs/wire.md
//! §11), which takes the frames between endpoints of one device off the
//! netdev.
//!
//! Receive: a receive ring ([`ring`]; TPACKET_V2 by default, TPACKET_V3
//! on request) mapped into the process, read in place:
//! [`Receiver::recv_batch`] hands each frame to a closure as a slice of
//! the ring (no copy, no system call per frame) and gives each slot or
//! block back to the kernel once read. If the ring cannot be set up
//! (old kernel, no memory for it) the socket falls back to one
//! non-blocking `recv(MSG_DONTWAIT)` per frame into a buffer it owns
//! (one copy), behind the same API; [`PacketSocket::rx_kind`] says which.
//! Waiting is the same for all: `ppoll()` on a ring socket reports it
//! readable once the kernel handed over a frame (V2) or a block (V3).
//!
//! Send: non-blocking, `send(MSG_DONTWAIT)` for one frame or
//! `sendmmsg(MSG_DONTWAIT)` for a batch of up to [`SEND_BATCH`] (a QP
//! hands over every frame one drive built at once). A frame the kernel
//! cannot take now (EAGAIN/ENOBUFS) is dropped; the engine's
//! retransmission recovers it.
//!
//! Who holds references: the ffi context runtime owns the [`PacketSocket`]
//! and the [`Waker`]; every thread in a verb and the progress thread use
//! them through `&`. The file descriptors are closed and the ring
//! unmapped on drop, after the progress thread was joined.
//!
//! Locks: the receive side is single-consumer (the ring's read position
//! and the blocks we own must not be walked by two threads, and frames
//! must be handled in arrival order): [`PacketSocket::receiver`] try-locks
//! it and hands out a [`Receiver`] guard, or `None` while another thread
//! receives; nobody waits. The guard's holder also publishes the address
//! of the ring's next status word (`PacketSocket::head`, an `AtomicPtr`
//! into the mapping the socket owns, stored after every batch), which
//! [`PacketSocket::may_have_frames`] reads without the lock; a stale
//! address only makes it miss frames another thread is taking. Sending
//! needs no lock: the kernel serialises concurrent sends on one socket.

pub mod local;
pub mod netns;
pub mod ring;

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU32, AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};
use std::sync::{Mutex, MutexGuard, TryLockError};

use omx_verbs::FrameSink;

pub use ring::{RingConfig, RingVersion, RxRing};

/// Open-MX EtherType.
pub const ETHERTYPE: u16 = 0x86DF;

/// Descriptors [`Waker::wait_on`] watches besides its own eventfd.
pub const WAIT_FDS: usize = 3;

/// Frames per `sendmmsg` call.
pub const SEND_BATCH: usize = 16;
/// `PACKET_IGNORE_OUTGOING` (Linux 4.20, `<linux/if_packet.h>`).
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
/// `SO_RCVBUFFORCE`.
const SO_RCVBUFFORCE: libc::c_int = 33;
/// Receive buffer we ask for (frames in flight for every QP's window).
const RCVBUF: libc::c_int = 8 << 20;

/// Why the socket could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// socket(AF_PACKET) was refused: the process lacks CAP_NET_RAW.
    NoCapNetRaw,
    /// Any other failure (syscall name, error).
    Io(&'static str, io::Error),
}

impl core::fmt::Display for OpenError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            OpenError::NoCapNetRaw => f.write_str(
                "opening the AF_PACKET socket needs CAP_NET_RAW: run as root or grant it \
                 with `setcap cap_net_raw+ep <program>`",
            ),
            OpenError::Io(what, e) => write!(f, "{what}: {e}"),
        }
    }
}

// Classic BPF opcodes (<linux/bpf_common.h>).
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_LD_H_ABS: u16 = 0x28;
const BPF_LD_B_ABS: u16 = 0x30;
const BPF_ALU_AND_K: u16 = 0x54;
const BPF_JMP_JEQ_K: u16 = 0x15;
const BPF_RET_K: u16 = 0x06;
/// `SKF_AD_OFF + SKF_AD_PKTTYPE`.
const SKF_AD_PKTTYPE: u32 = (-0x1000i32 + 4) as u32;
/// `PACKET_HOST`.
const PACKET_HOST: u32 = 0;
/// `PACKET_MULTICAST`.
const PACKET_MULTICAST: u32 = 2;
/// `PACKET_OUTGOING`.
const PACKET_OUTGOING: u32 = 4;
/// `ETH_P_ALL`: the only protocol whose sockets see outgoing frames.
const ETH_P_ALL: u16 = 3;
const BPF_MISC_TAX: u16 = 0x07;
const BPF_JMP_JEQ_X: u16 = 0x1d;

/// One classic BPF instruction (`struct sock_filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    /// Opcode.
    pub code: u16,
    /// Jump offset if true.
    pub jt: u8,
    /// Jump offset if false.
    pub jf: u8,
    /// Constant.
    pub k: u32,
}

/// The Open-MX EtherType and verbs packet-type tests, at index `at` of
/// a program whose final drop is at index `drop`.
fn verbs_frame_tests(at: u8, drop: u8) -> [Insn; 5] {
    let i = |code, fails: Option<u8>, k| Insn {
        code,
        jt: 0,
        jf: fails.map_or(0, |n| drop - (at + n) - 1),
        k,
    };
    [
        i(BPF_LD_H_ABS, None, 12),
        i(BPF_JMP_JEQ_K, Some(1), u32::from(ETHERTYPE)),
        i(BPF_LD_B_ABS, None, 16),
        i(BPF_ALU_AND_K, None, 0xe0),
        i(BPF_JMP_JEQ_K, Some(4), 0x80),
    ]
}

/// Length of [`steering_filter`].
pub const FILTER_LEN: usize = 12;

/// The steering filter of docs/wire.md §8, preceded by a packet-type test
/// that keeps only frames addressed to this host (never our own outgoing
/// frames, which AF_PACKET would otherwise loop back to us, nor other
/// hosts' frames seen in promiscuous mode).
pub fn steering_filter(endpoint: u32) -> [Insn; FILTER_LEN] {
    const DROP: u8 = (FILTER_LEN - 1) as u8;
    let i = |code, jf_from: Option<u8>, k| Insn {
        code,
        jt: 0,
        jf: jf_from.map_or(0, |at| DROP - at - 1),
        k,
    };
    let mut p = [i(BPF_RET_K, None, 0); FILTER_LEN];
    p[..2].copy_from_slice(&[
        i(BPF_LD_B_ABS, None, SKF_AD_PKTTYPE),
        i(BPF_JMP_JEQ_K, Some(1), PACKET_HOST),
    ]);
    p[2..7].copy_from_slice(&verbs_frame_tests(2, DROP));
    p[7..11].copy_from_slice(&[
        i(BPF_LD_W_ABS, None, 20),
        i(BPF_ALU_AND_K, None, 0x00ff_f000),
        i(BPF_JMP_JEQ_K, Some(9), (endpoint << 12) & 0x00ff_f000),
        i(BPF_RET_K, None, 0x40000),
    ]);
    p
}

/// Length of [`mcast_steering_filter`].
pub const MCAST_FILTER_LEN: usize = FILTER_LEN + 11;

/// The steering filter of a context with QPs attached to multicast
/// groups (docs/wire.md §13.5): [`steering_filter`], preceded by a test
/// that also accepts multicast frames (packet type `PACKET_MULTICAST`)
/// of the verbs range for IBTA's multicast QPN 0xffffff. Which groups a
/// frame belongs to (its destination MAC) the endpoint decides.
pub fn mcast_steering_filter(endpoint: u32) -> [Insn; MCAST_FILTER_LEN] {
    const DROP: u8 = (MCAST_FILTER_LEN - 1) as u8;
    const TAIL: u8 = 11;
    let i = |code, jf_from: Option<u8>, k| Insn {
        code,
        jt: 0,
        jf: jf_from.map_or(0, |at| DROP - at - 1),
        k,
    };
    let mut p = [i(BPF_RET_K, None, 0); MCAST_FILTER_LEN];
    p[..2].copy_from_slice(&[
        i(BPF_LD_B_ABS, None, SKF_AD_PKTTYPE),
        // Not multicast: the unicast filter, from its start.
        Insn {
            code: BPF_JMP_JEQ_K,
            jt: 0,
            jf: TAIL - 2,
            k: PACKET_MULTICAST,
        },
    ]);
    p[2..7].copy_from_slice(&verbs_frame_tests(2, DROP));
    p[7..TAIL as usize].copy_from_slice(&[
        i(BPF_LD_W_ABS, None, 20),
        i(BPF_ALU_AND_K, None, 0x00ff_ffff),
        i(BPF_JMP_JEQ_K, Some(9), 0x00ff_ffff),
        i(BPF_RET_K, None, 0x40000),
    ]);
    p[TAIL as usize..].copy_from_slice(&steering_filter(endpoint));
    p
}

/// Length of [`loopback_filter`].
pub const LOOPBACK_FILTER_LEN: usize = 20;

/// The filter of the loopback tap ([`PacketSocket::open_loopback`]) (docs/wire.md §8): frames this host
/// sends to its own MAC address (destination = source MAC) that carry our
/// endpoint, seen on their way out. It ends with [`steering_filter`]'s
/// EtherType, type and endpoint tests; their jumps are relative to the
/// shared final drop, so they are reused unchanged.
pub fn loopback_filter(endpoint: u32) -> [Insn; LOOPBACK_FILTER_LEN] {
    const DROP: u8 = (LOOPBACK_FILTER_LEN - 1) as u8;
    let i = |code, jf_from: Option<u8>, k| Insn {
        code,
        jt: 0,
        jf: jf_from.map_or(0, |at| DROP - at - 1),
        k,
    };
    let tail = steering_filter(endpoint);
    let mut p = [i(BPF_RET_K, None, 0); LOOPBACK_FILTER_LEN];
    p[..10].copy_from_slice(&[
        i(BPF_LD_B_ABS, None, SKF_AD_PKTTYPE),
        i(BPF_JMP_JEQ_K, Some(1), PACKET_OUTGOING),
        i(BPF_LD_W_ABS, None, 6),
        i(BPF_MISC_TAX, None, 0),
        i(BPF_LD_W_ABS, None, 0),
        i(BPF_JMP_JEQ_X, Some(5), 0),
        i(BPF_LD_H_ABS, None, 10),
        i(BPF_MISC_TAX, None, 0),
        i(BPF_LD_H_ABS, None, 4),
        i(BPF_JMP_JEQ_X, Some(9), 0),
    ]);
    p[10..].copy_from_slice(&tail[2..]);
    p
}

fn cvt(what: &'static str, r: libc::c_int) -> Result<libc::c_int, OpenError> {
    if r < 0 {
        Err(OpenError::Io(what, io::Error::last_os_error()))
    } else {
        Ok(r)
    }
}

fn setsockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, v: &T) -> libc::c_int {
    // SAFETY: `v` is a live value of the size we pass.
    unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (v as *const T).cast(),
            core::mem::size_of::<T>() as libc::socklen_t,
        )
    }
}

/// How a socket receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxMode {
    /// A receive ring of this layout and geometry, falling back to
    /// [`RxMode::Copy`] if the kernel refuses it.
    Ring(RingConfig),
    /// One `recv()` per frame into a buffer of the socket (one copy).
    Copy,
}

/// How a socket ended up receiving ([`PacketSocket::rx_kind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxKind {
    /// The receive ring.
    Ring,
    /// `recv()` per frame, asked for.
    Copy,
    /// `recv()` per frame because the ring could not be set up (the
    /// step that failed and its errno).
    Fallback(&'static str, i32),
}

/// Largest frame the copy fallback receives (jumbo frames up to 9 KiB).
const COPY_BUF: usize = 9216;

/// The receive side: the ring, or the copy fallback's buffer.
#[derive(Debug)]
enum Rx {
    Ring(RxRing),
    Copy(Box<[u8]>),
}

/// The context's packet socket.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    rx: Mutex<Rx>,
    /// The ring's next status word ([`RxRing::head_status`]), published
    /// under `rx` after each batch so that [`PacketSocket::may_have_frames`]
    /// can look without the lock; null in copy mode.
    head: AtomicPtr<AtomicU32>,
    kind: RxKind,
    /// Set by [`PacketSocket::shut`]: nothing is sent or received any
    /// more.
    shut: AtomicBool,
    /// Frames the kernel dropped for want of ring space, summed over
    /// every `PACKET_STATISTICS` read (each read resets the kernel's
    /// count).
    ring_drops: AtomicU64,
    /// Frames the kernel refused to send (see [`PacketSocket::tx_drops`]).
    tx_drops: AtomicU64,
}

/// Exclusive access to a socket's receive side ([`PacketSocket::receiver`]).
#[derive(Debug)]
pub struct Receiver<'a> {
    fd: RawFd,
    rx: MutexGuard<'a, Rx>,
    head: &'a AtomicPtr<AtomicU32>,
}

impl Receiver<'_> {
    /// Calls `f` with received frames, in arrival order, without
    /// blocking, until nothing is pending or about `budget` frames were
    /// handled (the ring finishes the block it is in). Returns the number
    /// of frames handled. The slices are valid only during the call.
    pub fn recv_batch(&mut self, budget: usize, mut f: impl FnMut(&[u8])) -> usize {
        match &mut *self.rx {
            Rx::Ring(r) => {
                let n = r.recv_batch(budget, f);
                // Also when no frame was delivered: a unit holding only
                // malformed frames still moved the head on.
                self.head.store(r.head_status().cast_mut(), Release);
                n
            }
            Rx::Copy(buf) => {
                let mut n = 0;
                while n < budget {
                    let Some(len) = recv_copy(self.fd, buf) else {
                        break;
                    };
                    f(&buf[..len]);
                    n += 1;
                }
                n
            }
        }
    }
}

/// Receives one frame into `buf` without blocking: `Some(len)`, or
/// `None` when nothing is queued. Frames longer than `buf` are dropped.
fn recv_copy(fd: RawFd, buf: &mut [u8]) -> Option<usize> {
    loop {
        // SAFETY: buf is writable for buf.len() bytes.
        let n = unsafe {
            libc::recv(
                fd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            )
        };
        if n < 0 {
            if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return None;
        }
        let n = n as usize;
        if n > buf.len() {
            continue;
        }
        return Some(n);
    }
}

/// A new non-blocking AF_PACKET socket with `filter` attached and its
/// buffers sized, not bound yet (so nothing is queued before the filter).
/// Attaches (or replaces) the socket's classic BPF filter.
fn attach_filter(raw: RawFd, filter: &[Insn]) -> Result<(), OpenError> {
    let mut insns: Vec<libc::sock_filter> = filter
        .iter()
        .map(|i| libc::sock_filter {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        })
        .collect();
    let fprog = libc::sock_fprog {
        len: insns.len() as u16,
        filter: insns.as_mut_ptr(),
    };
    cvt(
        "SO_ATTACH_FILTER",
        setsockopt(raw, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog),
    )
    .map(|_| ())
}

/// The filter of a socket that was shut: accepts nothing.
const REJECT_ALL: [Insn; 1] = [Insn {
    code: BPF_RET_K,
    jt: 0,
    jf: 0,
    k: 0,
}];

fn new_raw(filter: &[Insn]) -> Result<OwnedFd, OpenError> {
    // SAFETY: plain syscall.
    let raw = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if raw < 0 {
        let e = io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => OpenError::NoCapNetRaw,
            _ => OpenError::Io("socket(AF_PACKET)", e),
        });
    }
    // SAFETY: raw is a fresh fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    attach_filter(raw, filter)?;
    if setsockopt(raw, libc::SOL_SOCKET, SO_RCVBUFFORCE, &RCVBUF) < 0 {
        let _ = setsockopt(raw, libc::SOL_SOCKET, libc::SO_RCVBUF, &RCVBUF);
    }
    let _ = setsockopt(raw, libc::SOL_SOCKET, libc::SO_SNDBUF, &RCVBUF);
    Ok(fd)
}

/// The current MTU of the netdev `ifindex` in the calling thread's network
/// namespace (`SIOCGIFMTU`), or `None` if there is no such netdev there.
/// Control path: two system calls on a throwaway socket, no privilege.
pub fn netdev_mtu(ifindex: u32) -> Option<u32> {
    // SAFETY: all-zero is a valid ifreq.
    let mut ifr: libc::ifreq = unsafe { core::mem::zeroed() };
    // SAFETY: ifr_name has IFNAMSIZ bytes, what if_indextoname writes at
    // most (with its NUL).
    if unsafe { libc::if_indextoname(ifindex, ifr.ifr_name.as_mut_ptr()) }.is_null() {
        return None;
    }
    // SAFETY: plain syscall. Any socket family reaches the netdev ioctls;
    // AF_UNIX needs no capability and exists in every namespace.
    let raw = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return None;
    }
    // SAFETY: raw is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: ifr is a live ifreq naming the netdev; SIOCGIFMTU writes
    // ifru_mtu inside it.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFMTU, &mut ifr) } != 0 {
        return None;
    }
    // SAFETY: the kernel filled the ifru_mtu member.
    Some(unsafe { ifr.ifr_ifru.ifru_mtu } as u32)
}

/// Binds `fd` to `ifindex` and `proto` (from now on frames arrive).
fn bind_raw(fd: &OwnedFd, ifindex: u32, proto: u16) -> Result<(), OpenError> {
    // SAFETY: all-zero is a valid sockaddr_ll.
    let mut sll: libc::sockaddr_ll = unsafe { core::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto.to_be();
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: sll is a valid sockaddr_ll of the size we pass.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            core::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    cvt("bind(AF_PACKET)", r).map(|_| ())
}

impl PacketSocket {
    /// Opens, filters and binds the socket to `ifindex` (which must be in
    /// the caller's network namespace), receiving through the omx ring
    /// ([`RingConfig::OMX`]).
    pub fn open(ifindex: u32, endpoint: u32) -> Result<Self, OpenError> {
        Self::open_with(ifindex, endpoint, RxMode::Ring(RingConfig::OMX))
    }

    /// [`PacketSocket::open`] with a choice of receive path.
    pub fn open_with(ifindex: u32, endpoint: u32, mode: RxMode) -> Result<Self, OpenError> {
        Self::open_filtered(ifindex, &steering_filter(endpoint), ETHERTYPE, mode)
    }

    /// The loopback tap of `endpoint` on `ifindex`: a socket that sees
    /// this host's own frames to its own MAC address on their way out
    /// ([`loopback_filter`]), how two processes, or two QPs of one process,
    /// on the same device reach each other. The packet socket never sees
    /// outgoing frames (it is bound to the Open-MX EtherType, and the
    /// kernel shows outgoing frames only to `ETH_P_ALL` sockets), so the
    /// tap is a second socket, opened only by contexts that connect a QP to
    /// their own MAC address: only they pay for an `ETH_P_ALL` tap on the
    /// netdev. It receives like the packet socket (ring, single consumer).
    pub fn open_loopback(ifindex: u32, endpoint: u32) -> Result<Self, OpenError> {
        Self::open_filtered(
            ifindex,
            &loopback_filter(endpoint),
            ETH_P_ALL,
            RxMode::Ring(RingConfig::OMX),
        )
    }

    fn open_filtered(
        ifindex: u32,
        filter: &[Insn],
        proto: u16,
        mode: RxMode,
    ) -> Result<Self, OpenError> {
        let fd = new_raw(filter)?;
        let raw = fd.as_raw_fd();
        if proto == ETHERTYPE {
            let one: libc::c_int = 1;
            // Best effort: the BPF packet-type test covers older kernels.
            let _ = setsockopt(raw, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, &one);
        }
        // The ring before bind(): from bind() on frames arrive, and any
        // queued before the ring would sit in the socket's ordinary queue
        // and keep ppoll() reporting it readable.
        let (rx, kind) = match mode {
            RxMode::Ring(cfg) => match RxRing::new(raw, cfg) {
                Ok(r) => (Rx::Ring(r), RxKind::Ring),
                Err((what, e)) => (
                    Rx::Copy(vec![0u8; COPY_BUF].into_boxed_slice()),
                    RxKind::Fallback(what, e.raw_os_error().unwrap_or(0)),
                ),
            },
            RxMode::Copy => (
                Rx::Copy(vec![0u8; COPY_BUF].into_boxed_slice()),
                RxKind::Copy,
            ),
        };
        bind_raw(&fd, ifindex, proto)?;
        let head = match &rx {
            Rx::Ring(r) => r.head_status().cast_mut(),
            Rx::Copy(_) => core::ptr::null_mut(),
        };
        Ok(PacketSocket {
            fd,
            rx: Mutex::new(rx),
            head: AtomicPtr::new(head),
            kind,
            shut: AtomicBool::new(false),
            ring_drops: AtomicU64::new(0),
            tx_drops: AtomicU64::new(0),
        })
    }

    /// Stops this socket's packet I/O for good (the device was removed
    /// under the context, docs/kmod.md): the kernel queues no more frames
    /// for it (a filter that accepts nothing replaces the steering
    /// filter, so a context from before a module reload never sees frames
    /// meant for a newer context with its endpoint number), and sends
    /// become no-ops. Frames already in the ring stay there unread.
    pub fn shut(&self) {
        self.shut.store(true, Release);
        // Best effort: if the kernel refuses, sends stop anyway and the
        // owner no longer reads what arrives.
        let _ = attach_filter(self.fd.as_raw_fd(), &REJECT_ALL);
    }

    /// Replaces the steering filter of the packet socket of `endpoint`:
    /// with `multicast`, [`mcast_steering_filter`], else
    /// [`steering_filter`]. A shut socket keeps rejecting everything.
    pub fn steer_multicast(&self, endpoint: u32, multicast: bool) -> io::Result<()> {
        if self.is_shut() {
            return Ok(());
        }
        let r = if multicast {
            attach_filter(self.fd.as_raw_fd(), &mcast_steering_filter(endpoint))
        } else {
            attach_filter(self.fd.as_raw_fd(), &steering_filter(endpoint))
        };
        // A shut() that ran meanwhile keeps the last word.
        if self.is_shut() {
            let _ = attach_filter(self.fd.as_raw_fd(), &REJECT_ALL);
        }
        r.map_err(|e| match e {
            OpenError::Io(_, e) => e,
            OpenError::NoCapNetRaw => io::Error::from_raw_os_error(libc::EPERM),
        })
    }

    /// Whether [`PacketSocket::shut`] was called.
    pub fn is_shut(&self) -> bool {
        self.shut.load(Acquire)
    }

    /// Frames the kernel dropped so far because the receive ring (or
    /// queue) was full (`PACKET_STATISTICS`'s `tp_drops`, accumulated).
    /// One system call; diagnostics only.
    pub fn ring_drops(&self) -> u64 {
        let mut st = libc::tpacket_stats {
            tp_packets: 0,
            tp_drops: 0,
        };
        let mut len = core::mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
        // SAFETY: `st` is a live tpacket_stats of `len` bytes, which the
        // kernel fills (the V3 struct is a superset, but we ask with the
        // V1/V2 length and the kernel copies at most that much).
        let r = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut st as *mut libc::tpacket_stats).cast(),
                &mut len,
            )
        };
        if r == 0 {
            self.ring_drops.fetch_add(u64::from(st.tp_drops), Relaxed);
        }
        self.ring_drops.load(Relaxed)
    }

    /// Frames the kernel refused to take for sending so far (a full
    /// socket send buffer or transmit queue, a frame longer than the
    /// netdev carries): they are lost like frames lost on the wire, and
    /// the engine retransmits them. Diagnostics (OMX_STATS).
    pub fn tx_drops(&self) -> u64 {
        self.tx_drops.load(Relaxed)
    }

    /// How this socket receives.
    pub fn rx_kind(&self) -> RxKind {
        self.kind
    }

    /// The receive side, unless another thread is receiving right now
    /// (never waits).
    pub fn receiver(&self) -> Option<Receiver<'_>> {
        let rx = match self.rx.try_lock() {
            Ok(g) => g,
            // A receiver panicked mid-batch: the ring position is still
            // consistent (blocks are returned only when fully read).
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return None,
        };
        Some(Receiver {
            fd: self.fd.as_raw_fd(),
            rx,
            head: &self.head,
        })
    }

    /// Whether frames may be waiting, without taking the receive side: a
    /// busy poll that finds nothing then costs two loads instead of a
    /// lock round trip. Exact for the ring while no other thread
    /// receives; while one does, it may answer false for frames that
    /// thread is about to take anyway. Always true in copy mode.
    pub fn may_have_frames(&self) -> bool {
        let head = self.head.load(Acquire);
        if head.is_null() {
            return true;
        }
        // SAFETY: `head` was published from the ring `self.rx` owns,
        // which lives as long as `self`.
        unsafe { RxRing::head_ready(head) }
    }

    /// Blocks until a frame is readable, `waker` was signalled, or
    /// `timeout_ns` passed.
    pub fn wait(&self, waker: &Waker, timeout_ns: u64) {
        waker.wait_on(&[self.fd.as_fd()], timeout_ns);
    }

    /// Its receive side can be waited on (`ppoll`).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsFd for PacketSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl FrameSink for PacketSocket {
    fn send(&self, frame: &[u8]) {
        if self.is_shut() {
            return;
        }
        loop {
            // SAFETY: frame is readable for frame.len() bytes.
            let n = unsafe {
                libc::send(
                    self.fd.as_raw_fd(),
                    frame.as_ptr().cast(),
                    frame.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            if n < 0 {
                self.tx_drops.fetch_add(1, Relaxed);
            }
            return;
        }
    }

    /// One `sendmmsg(MSG_DONTWAIT)` per [`SEND_BATCH`] frames, in order. On
    /// a partial send the rest is offered again; once the kernel takes
    /// none (a full transmit queue: EAGAIN/ENOBUFS), the rest is dropped
    /// and the engine retransmits it.
    fn send_batch(&self, frames: &[&[u8]]) {
        if self.is_shut() {
            return;
        }
        if let [one] = frames {
            // The common case of a latency-bound QP; plain send() is the
            // cheaper system call.
            return self.send(one);
        }
        for chunk in frames.chunks(SEND_BATCH) {
            let mut iov = [libc::iovec {
                iov_base: core::ptr::null_mut(),
                iov_len: 0,
            }; SEND_BATCH];
            // SAFETY: an all-zero mmsghdr is valid (null name/control,
            // no iovecs).
            let mut msgs: [libc::mmsghdr; SEND_BATCH] = unsafe { core::mem::zeroed() };
            for (v, f) in iov.iter_mut().zip(chunk) {
                v.iov_base = f.as_ptr() as *mut libc::c_void;
                v.iov_len = f.len();
            }
            for (m, v) in msgs.iter_mut().zip(iov.iter_mut()) {
                m.msg_hdr.msg_iov = v;
                m.msg_hdr.msg_iovlen = 1;
            }
            let mut done = 0;
            while done < chunk.len() {
                // SAFETY: msgs[done..chunk.len()] are initialised headers,
                // each pointing at one iovec over a frame the caller keeps
                // alive and readable for the duration of the call; the
                // kernel only reads them.
                let n = unsafe {
                    libc::sendmmsg(
                        self.fd.as_raw_fd(),
                        msgs[done..].as_mut_ptr(),
                        (chunk.len() - done) as libc::c_uint,
                        libc::MSG_DONTWAIT,
                    )
                };
                if n > 0 {
                    done += n as usize;
                } else if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue;
                } else {
                    break;
                }
            }
            if done < chunk.len() {
                self.tx_drops
                    .fetch_add((chunk.len() - done) as u64, Relaxed);
            }
        }
    }
}

/// An eventfd that wakes the progress thread.
#[derive(Debug)]
pub struct Waker {
    fd: OwnedFd,
}

impl Waker {
    /// A new non-blocking eventfd.
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain syscall.
        let raw = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fresh fd we own.
        Ok(Waker {
            fd: unsafe { OwnedFd::from_raw_fd(raw) },
        })
    }

    /// Wakes the waiter (non-blocking).
    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64.
        unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Blocks until woken or `timeout_ns` passed (the packet socket is
    /// not watched: an application thread is busy-polling it).
    pub fn wait(&self, timeout_ns: u64) {
        self.wait_on(&[], timeout_ns);
    }

    /// Blocks until woken, one of `fds` (at most [`WAIT_FDS`]) is
    /// readable, or `timeout_ns` passed. Returns which of `fds` were
    /// readable: bit `i` for `fds[i]`.
    pub fn wait_on(&self, fds: &[BorrowedFd<'_>], timeout_ns: u64) -> u32 {
        let pfd = |fd: RawFd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let mut set = [pfd(self.fd.as_raw_fd()); 1 + WAIT_FDS];
        let n = 1 + fds.len().min(WAIT_FDS);
        for (slot, fd) in set[1..n].iter_mut().zip(fds) {
            slot.fd = fd.as_raw_fd();
        }
        let ts = libc::timespec {
            tv_sec: (timeout_ns / 1_000_000_000) as libc::time_t,
            tv_nsec: (timeout_ns % 1_000_000_000) as libc::c_long,
        };
        // SAFETY: set holds n valid pollfds, ts is a valid timespec, no
        // signal mask.
        unsafe { libc::ppoll(set.as_mut_ptr(), n as libc::nfds_t, &ts, core::ptr::null()) };
        if set[0].revents & libc::POLLIN != 0 {
            self.drain();
        }
        set[1..n]
            .iter()
            .enumerate()
            .filter(|(_, p)| p.revents & (libc::POLLIN | libc::POLLERR | libc::POLLHUP) != 0)
            .fold(0, |m, (i, _)| m | 1 << i)
    }

    /// Whether the eventfd was signalled since the last [`Waker::wait_on`]
    /// or `signalled` (which resets it). One non-blocking read.
    pub fn signalled(&self) -> bool {
        self.drain() != 0
    }

    /// Resets the counter; returns what it held (0: not signalled).
    fn drain(&self) -> u64 {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64; non-blocking.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
        if n == 8 {
            v
        } else {
            0
        }
    }
}

impl AsFd for Waker {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny classic-BPF interpreter for the instructions we emit.
    fn run(prog: &[Insn], frame: &[u8], pkttype: u32) -> u32 {
        let mut a: u32 = 0;
        let mut x: u32 = 0;
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            pc += 1;
            let load = |off: u32, n: usize| -> Option<u32> {
                if off == SKF_AD_PKTTYPE {
                    return Some(pkttype);
                }
                let o = off as usize;
                let b = frame.get(o..o + n)?;
                Some(b.iter().fold(0u32, |acc, &x| acc << 8 | u32::from(x)))
            };
            match i.code {
                BPF_LD_B_ABS => match load(i.k, 1) {
                    Some(v) => a = v,
                    None => return 0,
                },
                BPF_LD_H_ABS => match load(i.k, 2) {
                    Some(v) => a = v,
                    None => return 0,
                },
                BPF_LD_W_ABS => match load(i.k, 4) {
                    Some(v) => a = v,
                    None => return 0,
                },
                BPF_ALU_AND_K => a &= i.k,
                BPF_MISC_TAX => x = a,
                BPF_JMP_JEQ_K => pc += usize::from(if a == i.k { i.jt } else { i.jf }),
                BPF_JMP_JEQ_X => pc += usize::from(if a == x { i.jt } else { i.jf }),
                BPF_RET_K => return i.k,
                c => panic!("opcode {c:#x}"),
            }
        }
    }

    fn frame(ethertype: u16, ptype: u8, qpn: u32) -> Vec<u8> {
        let mut f = vec![0u8; 60];
        f[12..14].copy_from_slice(&ethertype.to_be_bytes());
        f[16] = ptype;
        f[20..24].copy_from_slice(&(qpn & 0xff_ffff).to_be_bytes());
        f
    }

    #[test]
    fn filter_bytes() {
        let p = steering_filter(5);
        assert_eq!(
            p[0],
            Insn {
                code: 0x30,
                jt: 0,
                jf: 0,
                k: 0xffff_f004
            }
        );
        assert_eq!(
            p[1],
            Insn {
                code: 0x15,
                jt: 0,
                jf: 9,
                k: 0
            }
        );
        assert_eq!(
            p[3],
            Insn {
                code: 0x15,
                jt: 0,
                jf: 7,
                k: 0x86df
            }
        );
        assert_eq!(
            p[7],
            Insn {
                code: 0x20,
                jt: 0,
                jf: 0,
                k: 20
            }
        );
        assert_eq!(
            p[8],
            Insn {
                code: 0x54,
                jt: 0,
                jf: 0,
                k: 0x00ff_f000
            }
        );
        assert_eq!(
            p[9],
            Insn {
                code: 0x15,
                jt: 0,
                jf: 1,
                k: 0x5000
            }
        );
        assert_eq!(p[10].k, 0x40000);
        assert_eq!(
            p[11],
            Insn {
                code: 0x06,
                jt: 0,
                jf: 0,
                k: 0
            }
        );
    }

    #[test]
    fn filter_steers() {
        let p = steering_filter(5);
        assert_ne!(run(&p, &frame(0x86df, 0x84, 5 << 12 | 7), 0), 0);
        assert_eq!(run(&p, &frame(0x86df, 0x84, 5 << 12 | 7), 4), 0, "outgoing");
        assert_eq!(
            run(&p, &frame(0x86df, 0x84, 6 << 12 | 7), 0),
            0,
            "other endpoint"
        );
        assert_eq!(run(&p, &frame(0x0800, 0x84, 5 << 12), 0), 0, "IPv4");
        assert_eq!(
            run(&p, &frame(0x86df, 0x10, 5 << 12), 0),
            0,
            "Open-MX MPI type"
        );
        assert_eq!(run(&p, &[0u8; 14], 0), 0, "short");
    }

    #[test]
    fn mcast_filter_adds_multicast_frames_for_the_multicast_qpn() {
        let p = mcast_steering_filter(5);
        let mc = frame(0x86df, 0x84, 0xff_ffff);
        assert_ne!(run(&p, &mc, PACKET_MULTICAST), 0);
        assert_eq!(run(&steering_filter(5), &mc, PACKET_MULTICAST), 0);
        assert_eq!(run(&p, &mc, PACKET_HOST), 0, "unicast to 0xffffff");
        assert_eq!(run(&p, &mc, PACKET_OUTGOING), 0, "outgoing");
        let other = frame(0x86df, 0x84, 5 << 12 | 7);
        assert_eq!(run(&p, &other, PACKET_MULTICAST), 0, "another QPN");
        assert_eq!(run(&p, &frame(0x0800, 0x84, 0xff_ffff), 2), 0, "IPv4");
        assert_eq!(run(&p, &frame(0x86df, 0x10, 0xff_ffff), 2), 0, "type");
        assert_eq!(run(&p, &[0u8; 14], PACKET_MULTICAST), 0, "short");
        // The unicast part is the steering filter's.
        assert_ne!(run(&p, &other, PACKET_HOST), 0);
        let foreign = frame(0x86df, 0x84, 6 << 12 | 7);
        assert_eq!(run(&p, &foreign, PACKET_HOST), 0, "other endpoint");
        assert_eq!(run(&p, &mc, 1), 0, "broadcast");
    }

    #[test]
    fn loopback_filter_takes_only_our_frames_to_ourselves() {
        let p = loopback_filter(5);
        let mut f = frame(0x86df, 0x84, 5 << 12 | 7);
        f[0..6].copy_from_slice(&[2, 1, 2, 3, 4, 5]);
        f[6..12].copy_from_slice(&[2, 1, 2, 3, 4, 5]);
        assert_ne!(run(&p, &f, PACKET_OUTGOING), 0);
        assert_eq!(run(&p, &f, PACKET_HOST), 0, "incoming: the socket's job");
        let mut other_dst = f.clone();
        other_dst[5] = 6;
        assert_eq!(run(&p, &other_dst, PACKET_OUTGOING), 0, "to another host");
        let mut other_dst = f.clone();
        other_dst[1] = 9;
        assert_eq!(run(&p, &other_dst, PACKET_OUTGOING), 0, "to another host");
        let mut other_ep = f.clone();
        other_ep[20..24].copy_from_slice(&(6u32 << 12).to_be_bytes());
        assert_eq!(run(&p, &other_ep, PACKET_OUTGOING), 0, "other endpoint");
        let mut ipv4 = f.clone();
        ipv4[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        assert_eq!(run(&p, &ipv4, PACKET_OUTGOING), 0, "IPv4");
        assert_eq!(run(&p, &f[..14], PACKET_OUTGOING), 0, "short");
        assert_eq!(
            p[LOOPBACK_FILTER_LEN - 1],
            Insn {
                code: BPF_RET_K,
                jt: 0,
                jf: 0,
                k: 0
            }
        );
    }

    /// The tap sees our outgoing frame to ourselves (loopback's MAC is all
    /// zeros, so destination = source), once, and only for its endpoint;
    /// the sending socket itself never sees it. Skipped without
    /// CAP_NET_RAW.
    #[test]
    fn kernel_shows_the_tap_our_own_frames() {
        let (s, tap) = match (PacketSocket::open(1, 7), PacketSocket::open_loopback(1, 7)) {
            (Ok(s), Ok(t)) => (s, t),
            _ => {
                eprintln!("skipped: no AF_PACKET socket here");
                return;
            }
        };
        let w = Waker::new().unwrap();
        let mut other = frame(0x86df, 0x84, 8 << 12 | 1);
        other[59] = 0xbb;
        let mut mine = frame(0x86df, 0x84, 7 << 12 | 1);
        mine[59] = 0xaa;
        s.send(&other);
        s.send(&mine);
        let mut got = Vec::new();
        for _ in 0..20 {
            w.wait_on(&[tap.as_fd()], 50_000_000);
            tap.receiver()
                .unwrap()
                .recv_batch(64, |f| got.push(f.to_vec()));
            if !got.is_empty() {
                break;
            }
        }
        w.wait_on(&[tap.as_fd()], 50_000_000);
        tap.receiver()
            .unwrap()
            .recv_batch(64, |f| got.push(f.to_vec()));
        assert_eq!(got.len(), 1, "exactly our frame, once");
        assert_eq!(got[0][59], 0xaa);
    }

    /// The kernel accepts the filter and it steers for real: on loopback,
    /// a frame to endpoint 5 comes back to us once (the outgoing copy is
    /// not delivered), one to endpoint 6 never. Skipped without
    /// CAP_NET_RAW.
    #[test]
    fn kernel_runs_the_filter_on_loopback() {
        let s = match PacketSocket::open(1, 5) {
            Ok(s) => s,
            Err(OpenError::NoCapNetRaw) | Err(OpenError::Io("socket(AF_PACKET)", _)) => {
                eprintln!("skipped: no AF_PACKET socket here");
                return;
            }
            Err(e) => panic!("{e}"),
        };
        let w = Waker::new().unwrap();
        let mut other = frame(0x86df, 0x84, 6 << 12 | 1);
        other[59] = 0xbb;
        let mut mine = frame(0x86df, 0x84, 5 << 12 | 1);
        mine[59] = 0xaa;
        s.send(&other);
        s.send(&mine);
        let mut got = Vec::new();
        let rx = |got: &mut Vec<Vec<u8>>| {
            let mut r = s.receiver().expect("nobody else receives");
            r.recv_batch(64, |f| got.push(f.to_vec()));
        };
        // Wait until our frame shows up (the ring hands a lone frame over
        // when its block retires), then a little longer for a duplicate.
        for _ in 0..40 {
            s.wait(&w, 50_000_000);
            rx(&mut got);
            if !got.is_empty() {
                s.wait(&w, 50_000_000);
                rx(&mut got);
                break;
            }
        }
        assert_eq!(got.len(), 1, "exactly our frame, once");
        assert_eq!(got[0][59], 0xaa);
    }

    /// Two sockets in two network namespaces joined by a veth pair (root
    /// only): `f` runs with a sender in one and a receiver (endpoint 5)
    /// in the other, each in its own thread.
    fn over_veth(
        tag: &str,
        mode: RxMode,
        f: impl FnOnce(&PacketSocket, &PacketSocket, &Waker) + Send,
    ) {
        // SAFETY: plain syscall.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: needs root for network namespaces and a veth pair");
            return;
        }
        let t = match netns::Topology::new(tag, 9000) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("skipped: cannot create namespaces and veth here: {e}");
                return;
            }
        };
        let open = |i: usize, mode| {
            let idx = netns::enter(&t.sides[i]).unwrap();
            PacketSocket::open_with(idx, 5, mode).unwrap()
        };
        std::thread::scope(|sc| {
            let tx = sc.spawn(|| open(0, RxMode::Copy));
            let rx = sc.spawn(|| open(1, mode));
            let (tx, rx) = (tx.join().unwrap(), rx.join().unwrap());
            f(&tx, &rx, &Waker::new().unwrap());
        });
    }

    fn numbered(i: u32, len: usize) -> Vec<u8> {
        let mut f = frame(0x86df, 0x84, 5 << 12 | 1);
        f.resize(len, 0);
        f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
        f[40..44].copy_from_slice(&i.to_be_bytes());
        f
    }

    /// Receives until `want` frames arrived or 2 s of waiting passed.
    fn drain(rx: &PacketSocket, w: &Waker, want: usize) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        for _ in 0..200 {
            let mut r = rx.receiver().unwrap();
            r.recv_batch(usize::MAX, |f| got.push(f.to_vec()));
            drop(r);
            if got.len() >= want {
                break;
            }
            rx.wait(w, 10_000_000);
        }
        got
    }

    /// Bursts spanning many blocks arrive complete and in order, each
    /// frame byte for byte; the blocks are given back (two rounds carry
    /// more than the whole ring, so later frames fit only in returned
    /// blocks).
    #[test]
    fn ring_receives_bursts_across_blocks_over_veth() {
        for cfg in [RingConfig::DEFAULT, RingConfig::V3] {
            over_veth("rb", RxMode::Ring(cfg), |tx, rx, w| {
                assert_eq!(rx.rx_kind(), RxKind::Ring);
                for round in 0..2u32 {
                    // 5 MiB per round: two rounds overflow the 8 MiB ring
                    // unless the first round's blocks were returned. Sent
                    // in bursts of 100 frames (0.9 MB, 7 V3 blocks), taking
                    // what arrived after each: a V3 block the 1 ms retire
                    // timer closes half full wastes the rest of its space,
                    // so one 600-frame burst could outrun the 64 blocks
                    // when the timer fired often enough during it (it did,
                    // 2 runs in 12: tp_drops 58-67, one queue freeze).
                    let n = 600u32;
                    let mut got = Vec::new();
                    for i in 0..n {
                        tx.send(&numbered(round * n + i, 9000));
                        if i % 100 == 99 {
                            got.extend(drain(rx, w, 0));
                        }
                    }
                    let rest = (n as usize).saturating_sub(got.len());
                    got.extend(drain(rx, w, rest));
                    assert_eq!(got.len(), n as usize, "round {round}");
                    for (i, f) in got.iter().enumerate() {
                        assert_eq!(f, &numbered(round * n + i as u32, 9000));
                    }
                }
            });
        }
    }

    /// `may_have_frames` says yes exactly while a frame waits in the ring,
    /// as the head goes round it several times (V2: 768 slots; V3: 64
    /// blocks, each retired by its 1 ms timer with one frame in it). In
    /// copy mode it cannot know and always says yes.
    #[test]
    fn may_have_frames_follows_the_ring_head_over_veth() {
        for cfg in [RingConfig::DEFAULT, RingConfig::V3] {
            over_veth("mh", RxMode::Ring(cfg), |tx, rx, w| {
                assert!(!rx.may_have_frames());
                for i in 0..1000u32 {
                    tx.send(&numbered(i, 64));
                    let mut waited = 0;
                    while !rx.may_have_frames() {
                        assert!(waited < 200, "frame {i} never showed at the head");
                        rx.wait(w, 10_000_000);
                        waited += 1;
                    }
                    let got = drain(rx, w, 1);
                    assert_eq!(got, [numbered(i, 64)], "frame {i}");
                    assert!(!rx.may_have_frames(), "after frame {i}");
                }
            });
        }
        over_veth("mc", RxMode::Copy, |_, rx, _| assert!(rx.may_have_frames()));
    }

    #[test]
    fn netdev_mtu_of_loopback_and_of_no_netdev() {
        // `lo` is ifindex 1 in every network namespace; its MTU is 65536
        // by default, and at least the IPv6 minimum if someone changed it.
        let lo = netdev_mtu(1).expect("lo");
        assert!(lo >= 1280, "lo mtu {lo}");
        assert_eq!(netdev_mtu(u32::MAX >> 1), None);
    }

    /// The verbs layer cuts QP receive windows from the default ring's
    /// frame count: keep the two in step.
    #[test]
    fn default_ring_frames_match_the_window_budget() {
        let c = RingConfig::OMX;
        assert_eq!(c.version, RingVersion::V2);
        assert_eq!(c.frames(), omx_verbs::endpoint::DEFAULT_RING_FRAMES);
        assert_eq!(c.frames(), 1920);
        assert_eq!(RingConfig::DEFAULT.frames(), 768);
        // The largest omx frame fits a slot with the kernel's headers.
        assert!(omx_wire::max_frame_len(4096) + 80 + 4 <= c.frame_size as usize);
        assert_eq!(c.frame_size % 16, 0);
    }

    /// The omx ring carries the largest omx frame (path MTU 4096) intact,
    /// and drops (counts) a longer one rather than passing it cut.
    #[test]
    fn the_omx_ring_takes_the_largest_omx_frame_whole() {
        let big = omx_wire::max_frame_len(4096);
        over_veth("om", RxMode::Ring(RingConfig::OMX), |tx, rx, w| {
            tx.send(&numbered(1, big));
            tx.send(&numbered(2, 9000));
            tx.send(&numbered(3, 64));
            let got = drain(rx, w, 2);
            assert_eq!(got, [numbered(1, big), numbered(3, 64)]);
        });
    }

    /// `send_batch` sends every frame of a batch longer than one
    /// `sendmmsg` (SEND_BATCH), in order and byte for byte.
    #[test]
    fn send_batch_delivers_in_order_over_veth() {
        over_veth("sb", RxMode::Ring(RingConfig::DEFAULT), |tx, rx, w| {
            let n = SEND_BATCH as u32 * 2 + 3;
            let frames: Vec<Vec<u8>> = (0..n).map(|i| numbered(i, 60 + 37 * i as usize)).collect();
            let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
            tx.send_batch(&refs);
            let got = drain(rx, w, n as usize);
            assert_eq!(got, frames);
        });
    }

    /// Frames the kernel refuses (here: longer than any netdev carries)
    /// are counted as transmit drops, one by one and in batches.
    #[test]
    fn refused_frames_are_counted_as_transmit_drops() {
        over_veth("td", RxMode::Ring(RingConfig::DEFAULT), |tx, rx, w| {
            tx.send(&numbered(1, 70_000));
            assert_eq!(tx.tx_drops(), 1);
            tx.send_batch(&[&numbered(2, 60), &numbered(3, 70_000), &numbered(4, 70_000)]);
            assert_eq!(tx.tx_drops(), 3);
            assert_eq!(drain(rx, w, 1), [numbered(2, 60)]);
            assert_eq!(rx.tx_drops(), 0);
        });
    }

    /// A shut socket (device removed under the context) receives nothing
    /// more and sends nothing, while the socket it talked to still works.
    #[test]
    fn a_shut_socket_neither_receives_nor_sends_over_veth() {
        over_veth("sh", RxMode::Ring(RingConfig::DEFAULT), |tx, rx, w| {
            tx.send(&numbered(1, 60));
            assert_eq!(drain(rx, w, 1).len(), 1, "open: received");
            rx.shut();
            assert!(rx.is_shut());
            tx.send_batch(&[&numbered(2, 60), &numbered(3, 60)]);
            assert!(drain(rx, w, 1).is_empty(), "shut: nothing queued for it");
            // Its sends are no-ops: the peer (whose receive side is open)
            // sees none of them.
            let back = |i| {
                let mut f = numbered(i, 60);
                f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
                f
            };
            rx.send(&back(4));
            rx.send_batch(&[&back(5), &back(6)]);
            assert!(drain(tx, w, 1).is_empty(), "shut: nothing sent");
            tx.send(&numbered(7, 60));
            assert!(drain(rx, w, 1).is_empty());
        });
    }

    #[test]
    fn wait_on_reports_which_descriptors_are_readable() {
        let w = Waker::new().unwrap();
        let a = Waker::new().unwrap();
        let b = Waker::new().unwrap();
        assert_eq!(w.wait_on(&[a.as_fd(), b.as_fd()], 1_000), 0, "timeout");
        b.wake();
        assert_eq!(w.wait_on(&[a.as_fd(), b.as_fd()], 1_000_000_000), 0b10);
        assert!(b.signalled(), "left for its owner to take");
        assert!(!b.signalled());
        w.wake();
        assert_eq!(w.wait_on(&[a.as_fd()], 1_000_000_000), 0, "own wake-up");
    }

    /// A lone frame is handed over without more traffic behind it (when
    /// its block retires), and ppoll() wakes for it.
    #[test]
    fn ring_hands_over_a_lone_frame_over_veth() {
        for cfg in [RingConfig::DEFAULT, RingConfig::V3] {
            over_veth("rl", RxMode::Ring(cfg), |tx, rx, w| {
                tx.send(&numbered(7, 60));
                rx.wait(w, 2_000_000_000);
                let got = drain(rx, w, 1);
                assert_eq!(got, vec![numbered(7, 60)]);
            });
        }
    }

    /// Only one receiver at a time; the copy mode works behind the same
    /// API.
    #[test]
    fn one_receiver_at_a_time_and_copy_mode_over_veth() {
        over_veth("rc", RxMode::Copy, |tx, rx, w| {
            assert_eq!(rx.rx_kind(), RxKind::Copy);
            let r = rx.receiver().unwrap();
            assert!(rx.receiver().is_none(), "second receiver refused");
            drop(r);
            for i in 0..10 {
                tx.send(&numbered(i, 1000));
            }
            let got = drain(rx, w, 10);
            assert_eq!(got.len(), 10);
            assert_eq!(got[9], numbered(9, 1000));
        });
    }

    #[test]
    fn waker_wakes() {
        let w = Waker::new().unwrap();
        w.wake();
        w.wait(1_000_000_000);
        let t = std::time::Instant::now();
        w.wait(1_000_000);
        assert!(
            t.elapsed() >= std::time::Duration::from_micros(900),
            "drained"
        );
    }
}
