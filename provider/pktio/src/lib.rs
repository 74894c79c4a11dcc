//! Packet I/O of omx-verbs: one AF_PACKET socket per device context,
//! bound to the device's netdev and the Open-MX EtherType, with a classic
//! BPF filter that lets through only frames for our endpoint
//! (docs/wire.md §8), plus the eventfd that wakes the progress thread.
//!
//! This first version receives with non-blocking `recv(MSG_DONTWAIT)` into
//! a buffer the caller pre-allocated (one copy; a TPACKET_V3 ring mapped
//! with memmap2 is the planned replacement) and sends with non-blocking
//! `send(MSG_DONTWAIT)`, one frame per call. A frame the kernel cannot
//! take now (EAGAIN/ENOBUFS) is dropped; the engine's retransmission
//! recovers it.
//!
//! Who holds references: the ffi context runtime owns the [`PacketSocket`]
//! and the [`Waker`]; every thread in a verb and the progress thread use
//! them through `&`. The file descriptors are closed on drop, after the
//! progress thread was joined. No locks: the kernel serialises concurrent
//! send/recv on one socket; callers serialise receive processing
//! themselves (ffi's RX try-lock) to keep frames in order.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use omx_verbs::FrameSink;

/// Open-MX EtherType.
pub const ETHERTYPE: u16 = 0x86DF;

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
    [
        i(BPF_LD_B_ABS, None, SKF_AD_PKTTYPE),
        i(BPF_JMP_JEQ_K, Some(1), PACKET_HOST),
        i(BPF_LD_H_ABS, None, 12),
        i(BPF_JMP_JEQ_K, Some(3), u32::from(ETHERTYPE)),
        i(BPF_LD_B_ABS, None, 16),
        i(BPF_ALU_AND_K, None, 0xe0),
        i(BPF_JMP_JEQ_K, Some(6), 0x80),
        i(BPF_LD_W_ABS, None, 20),
        i(BPF_ALU_AND_K, None, 0x00ff_f000),
        i(BPF_JMP_JEQ_K, Some(9), (endpoint << 12) & 0x00ff_f000),
        i(BPF_RET_K, None, 0x40000),
        i(BPF_RET_K, None, 0),
    ]
}

/// Length of [`loopback_filter`].
pub const LOOPBACK_FILTER_LEN: usize = 20;

/// The filter of a [`LoopbackTap`] (docs/wire.md §8): frames this host
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

/// The context's packet socket.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
}

/// Opens an AF_PACKET socket, attaches `filter`, sizes its buffers and
/// binds it to `ifindex` and `proto`.
fn open_raw(ifindex: u32, proto: u16, filter: &[Insn]) -> Result<OwnedFd, OpenError> {
    // Protocol 0 first: nothing is queued before the filter is in place;
    // bind() below sets the protocol.
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
    )?;
    if setsockopt(raw, libc::SOL_SOCKET, SO_RCVBUFFORCE, &RCVBUF) < 0 {
        let _ = setsockopt(raw, libc::SOL_SOCKET, libc::SO_RCVBUF, &RCVBUF);
    }
    let _ = setsockopt(raw, libc::SOL_SOCKET, libc::SO_SNDBUF, &RCVBUF);
    // SAFETY: all-zero is a valid sockaddr_ll.
    let mut sll: libc::sockaddr_ll = unsafe { core::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto.to_be();
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: sll is a valid sockaddr_ll of the size we pass.
    let r = unsafe {
        libc::bind(
            raw,
            (&sll as *const libc::sockaddr_ll).cast(),
            core::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    cvt("bind(AF_PACKET)", r)?;
    Ok(fd)
}

/// Receives one frame from `fd` into `buf` without blocking: `Some(len)`,
/// or `None` when nothing is queued. Frames longer than `buf` are dropped.
fn recv_into(fd: RawFd, buf: &mut [u8]) -> Option<usize> {
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

impl PacketSocket {
    /// Opens, filters and binds the socket to `ifindex` (which must be in
    /// the caller's network namespace).
    pub fn open(ifindex: u32, endpoint: u32) -> Result<Self, OpenError> {
        let fd = open_raw(ifindex, ETHERTYPE, &steering_filter(endpoint))?;
        let one: libc::c_int = 1;
        // Best effort: the BPF packet-type test covers older kernels.
        let _ = setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            PACKET_IGNORE_OUTGOING,
            &one,
        );
        Ok(PacketSocket { fd })
    }

    /// Receives one frame into `buf` without blocking: `Some(len)`, or
    /// `None` when nothing is queued. Frames longer than `buf` are dropped.
    pub fn recv(&self, buf: &mut [u8]) -> Option<usize> {
        recv_into(self.fd.as_raw_fd(), buf)
    }

    /// Blocks until a frame is readable, `waker` was signalled, or
    /// `timeout_ns` passed.
    pub fn wait(&self, waker: &Waker, timeout_ns: u64) {
        waker.wait_on(&[self.fd.as_fd()], timeout_ns);
    }
}

impl AsFd for PacketSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A socket that sees this host's own frames to its own MAC address on
/// their way out ([`loopback_filter`]): how two processes, or two QPs of
/// one process, on the same device reach each other. A [`PacketSocket`]
/// never sees outgoing frames (it is bound to the Open-MX EtherType, and
/// the kernel shows outgoing frames only to `ETH_P_ALL` sockets), so the
/// tap is a second socket, opened only by contexts that connect a QP to
/// their own MAC address: only they pay for an `ETH_P_ALL` tap on the
/// netdev. Same references and concurrency rules as [`PacketSocket`].
#[derive(Debug)]
pub struct LoopbackTap {
    fd: OwnedFd,
}

impl LoopbackTap {
    /// Opens the tap for `endpoint` on `ifindex`.
    pub fn open(ifindex: u32, endpoint: u32) -> Result<Self, OpenError> {
        let fd = open_raw(ifindex, ETH_P_ALL, &loopback_filter(endpoint))?;
        Ok(LoopbackTap { fd })
    }

    /// Receives one frame without blocking, as [`PacketSocket::recv`].
    pub fn recv(&self, buf: &mut [u8]) -> Option<usize> {
        recv_into(self.fd.as_raw_fd(), buf)
    }
}

impl AsFd for LoopbackTap {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl FrameSink for PacketSocket {
    fn send(&self, frame: &[u8]) {
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
            return;
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

    /// Blocks until woken, one of `fds` (at most two) is readable, or
    /// `timeout_ns` passed.
    pub fn wait_on(&self, fds: &[BorrowedFd<'_>], timeout_ns: u64) {
        let pfd = |fd: RawFd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let mut set = [pfd(self.fd.as_raw_fd()), pfd(-1), pfd(-1)];
        let n = 1 + fds.len().min(set.len() - 1);
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
    }

    fn drain(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64; non-blocking.
        unsafe { libc::read(self.fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
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
        let (s, tap) = match (PacketSocket::open(1, 7), LoopbackTap::open(1, 7)) {
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
        let mut buf = [0u8; 2048];
        for _ in 0..20 {
            w.wait_on(&[tap.as_fd()], 50_000_000);
            while let Some(n) = tap.recv(&mut buf) {
                got.push(buf[..n].to_vec());
            }
            if !got.is_empty() {
                break;
            }
        }
        w.wait_on(&[tap.as_fd()], 50_000_000);
        while let Some(n) = tap.recv(&mut buf) {
            got.push(buf[..n].to_vec());
        }
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
        let mut buf = [0u8; 2048];
        for _ in 0..20 {
            while let Some(n) = s.recv(&mut buf) {
                got.push(buf[..n].to_vec());
            }
            if !got.is_empty() {
                s.wait(&w, 50_000_000);
                while let Some(n) = s.recv(&mut buf) {
                    got.push(buf[..n].to_vec());
                }
                break;
            }
            s.wait(&w, 50_000_000);
        }
        assert_eq!(got.len(), 1, "exactly our frame, once");
        assert_eq!(got[0][59], 0xaa);
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
