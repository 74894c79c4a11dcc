//! The floor: what plain AF_PACKET gets over the same veth pair, with one
//! `send()` and one non-blocking `recv()` per frame and busy-polling, the
//! way our stack uses the socket (minus everything above it).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use crate::stats::{Latency, Samples};

/// IEEE 802 local experimental EtherType 1: nothing else on the veth uses it.
const ETHERTYPE: u16 = 0x88B5;
/// `PACKET_IGNORE_OUTGOING`.
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
/// Minimum Ethernet frame without FCS (a 2-byte payload is padded to it,
/// as our stack pads its 42-byte 2-byte SEND).
const MIN_FRAME: usize = 60;

/// A raw socket bound to one interface and [`ETHERTYPE`].
pub struct RawSock {
    fd: OwnedFd,
}

impl RawSock {
    /// Opens and binds it (in the calling thread's namespace).
    pub fn open(ifindex: u32) -> io::Result<Self> {
        // SAFETY: plain syscall.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                i32::from(ETHERTYPE.to_be()),
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fresh fd we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let one: libc::c_int = 1;
        // SAFETY: a live c_int of the size passed.
        unsafe {
            libc::setsockopt(
                raw,
                libc::SOL_PACKET,
                PACKET_IGNORE_OUTGOING,
                (&one as *const libc::c_int).cast(),
                4,
            )
        };
        // The same receive buffer our PacketSocket asks for.
        let rcvbuf: libc::c_int = 8 << 20;
        // SAFETY: a live c_int of the size passed.
        unsafe {
            libc::setsockopt(
                raw,
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&rcvbuf as *const libc::c_int).cast(),
                4,
            )
        };
        // SAFETY: all-zero is a valid sockaddr_ll.
        let mut sll: libc::sockaddr_ll = unsafe { core::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ETHERTYPE.to_be();
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: sll is a valid sockaddr_ll of the size passed.
        let r = unsafe {
            libc::bind(
                raw,
                (&sll as *const libc::sockaddr_ll).cast(),
                core::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(RawSock { fd })
    }

    fn send(&self, f: &[u8]) -> bool {
        // SAFETY: f is readable for f.len() bytes.
        let n = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                f.as_ptr().cast(),
                f.len(),
                libc::MSG_DONTWAIT,
            )
        };
        n == f.len() as isize
    }

    fn recv(&self, buf: &mut [u8]) -> Option<usize> {
        // SAFETY: buf is writable for buf.len() bytes.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        (n > 0).then_some(n as usize)
    }
}

fn frame(dst: [u8; 6], src: [u8; 6], len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len.max(MIN_FRAME)];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&ETHERTYPE.to_be_bytes());
    f
}

/// Who the two threads are.
pub struct Peer<'a> {
    /// The socket.
    pub sock: RawSock,
    /// Own MAC.
    pub mac: [u8; 6],
    /// Peer's MAC.
    pub peer: [u8; 6],
    /// Both threads meet here between phases.
    pub barrier: &'a Barrier,
}

/// Ping-pong of 2-byte-payload frames; the client (`client = true`)
/// returns the one-way latency, the server `None`.
pub fn pingpong(p: &Peer<'_>, client: bool, warmup: usize, iters: usize) -> Option<Latency> {
    let mut f = frame(p.peer, p.mac, 14 + 2);
    let mut buf = [0u8; 2048];
    let mut s = Samples::with_capacity(iters);
    p.barrier.wait();
    for i in 0..warmup + iters {
        f[14..16].copy_from_slice(&(i as u16).to_be_bytes());
        if client {
            let t = Instant::now();
            while !p.sock.send(&f) {}
            while p.sock.recv(&mut buf).is_none() {}
            if i >= warmup {
                s.0.push(t.elapsed().as_nanos() as u64);
            }
        } else {
            while p.sock.recv(&mut buf).is_none() {}
            while !p.sock.send(&f) {}
        }
    }
    p.barrier.wait();
    client.then(|| s.one_way())
}

/// What the stream's receiver saw.
#[derive(Debug, Clone, Copy)]
pub struct Stream {
    /// Frame bytes received per second, MB/s (10^6).
    pub mb_s: f64,
    /// Share of sent frames that never arrived.
    pub loss: f64,
}

/// What the sender tells the receiver when it stops.
#[derive(Debug, Default)]
pub struct StreamEnd {
    sent: AtomicU64,
    done: AtomicBool,
}

/// The sender blasts `frame_len`-byte frames for `secs`; the receiver
/// counts what arrives between its first and last frame and returns it.
pub fn stream(
    p: &Peer<'_>,
    sender: bool,
    frame_len: usize,
    secs: f64,
    end: &StreamEnd,
) -> Option<Stream> {
    p.barrier.wait();
    if sender {
        let f = frame(p.peer, p.mac, frame_len);
        let mut sent = 0u64;
        let t = Instant::now();
        while t.elapsed().as_secs_f64() < secs {
            if p.sock.send(&f) {
                sent += 1;
            }
        }
        end.sent.store(sent, Ordering::SeqCst);
        end.done.store(true, Ordering::SeqCst);
        p.barrier.wait();
        return None;
    }
    let mut buf = vec![0u8; 65536];
    let (mut got, mut bytes) = (0u64, 0u64);
    let mut first = None;
    let mut last = Instant::now();
    loop {
        if let Some(n) = p.sock.recv(&mut buf) {
            last = Instant::now();
            first.get_or_insert(last);
            got += 1;
            bytes += n as u64;
        } else if end.done.load(Ordering::SeqCst) {
            // Whatever is still queued arrives within a few ms.
            let t = Instant::now();
            while t.elapsed() < Duration::from_millis(20) {
                if let Some(n) = p.sock.recv(&mut buf) {
                    last = Instant::now();
                    got += 1;
                    bytes += n as u64;
                }
            }
            break;
        }
    }
    p.barrier.wait();
    let span = first.map_or(Duration::ZERO, |f| last - f);
    let sent = end.sent.load(Ordering::SeqCst).max(1);
    Some(Stream {
        mb_s: bytes as f64 / span.as_secs_f64().max(1e-9) / 1e6,
        loss: 1.0 - got as f64 / sent as f64,
    })
}
