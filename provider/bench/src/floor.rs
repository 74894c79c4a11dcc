//! The floors: what plain AF_PACKET gets over the same veth pair,
//! busy-polling, minus everything our stack puts above the socket.
//!
//! - the *send() floor*: one `send()` and one non-blocking `recv()` per
//!   frame;
//! - the *ring floor* (issue 14 §3): the best any program gets through the
//!   same kernel path, as our stack uses it: frames received from a
//!   PACKET_MMAP ring (omx-pktio's `PacketSocket`, the receive mode our
//!   stack runs with), sent with one `sendmmsg()` per 16 frames in the
//!   stream and one `send()` per frame in the ping-pong. Its frames carry
//!   just enough of the omx head (EtherType, packet type, destination
//!   endpoint) to pass the ring's steering filter.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use omx_pktio::{PacketSocket, RxMode};

use crate::stats::{Latency, Samples};

/// The endpoint the ring floor's frames are steered to (ours use 1 and 2).
const RING_EP: u32 = 0xfff;
/// Frames per `sendmmsg()` in the ring floor's stream (omx-pktio's
/// `SEND_BATCH`).
const BATCH: usize = omx_pktio::SEND_BATCH;
/// Frames one ring pass takes (the stack's `RX_BUDGET`).
const RING_BUDGET: usize = 256;

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

    /// One `sendmmsg(MSG_DONTWAIT)` of `n` copies of `f` (n <= [`BATCH`]);
    /// how many the kernel took.
    fn send_many(&self, f: &[u8], n: usize) -> usize {
        let mut iov = [libc::iovec {
            iov_base: f.as_ptr() as *mut libc::c_void,
            iov_len: f.len(),
        }; BATCH];
        // SAFETY: an all-zero mmsghdr is valid (no name, no control).
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { core::mem::zeroed() };
        for (m, v) in msgs.iter_mut().zip(iov.iter_mut()) {
            m.msg_hdr.msg_iov = v;
            m.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: msgs[..n] are initialised headers, each pointing at one
        // iovec over `f`, which outlives the call; the kernel only reads.
        let r = unsafe {
            libc::sendmmsg(
                self.fd.as_raw_fd(),
                msgs.as_mut_ptr(),
                n.min(BATCH) as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        r.max(0) as usize
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

/// A frame the ring floor's receiver accepts: the omx EtherType, a verbs
/// packet type and [`RING_EP`] as destination endpoint (docs/wire.md §8).
fn ring_frame(dst: [u8; 6], src: [u8; 6], len: usize) -> Vec<u8> {
    let mut f = frame(dst, src, len);
    f[12..14].copy_from_slice(&omx_pktio::ETHERTYPE.to_be_bytes());
    f[16] = 0x80;
    f[20..24].copy_from_slice(&(RING_EP << 12 | 1).to_be_bytes());
    f
}

/// The ring floor's receiving socket (in the calling thread's namespace).
pub fn ring_socket(ifindex: u32, rx: RxMode) -> io::Result<PacketSocket> {
    PacketSocket::open_with(ifindex, RING_EP, rx).map_err(|e| io::Error::other(format!("{e:?}")))
}

/// Takes the frames waiting in the ring; calls `f` with each one's length.
fn ring_take(rs: &PacketSocket, mut f: impl FnMut(usize)) -> usize {
    rs.receiver()
        .map_or(0, |mut rx| rx.recv_batch(RING_BUDGET, |fr| f(fr.len())))
}

/// The ring floor's ping-pong: [`pingpong`] with frames received from
/// `rs`'s ring.
pub fn ring_pingpong(
    p: &Peer<'_>,
    rs: &PacketSocket,
    client: bool,
    warmup: usize,
    iters: usize,
) -> Option<Latency> {
    let f = ring_frame(p.peer, p.mac, 14 + 2);
    let mut s = Samples::with_capacity(iters);
    p.barrier.wait();
    for i in 0..warmup + iters {
        if client {
            let t = Instant::now();
            while !p.sock.send(&f) {}
            while ring_take(rs, |_| {}) == 0 {}
            if i >= warmup {
                s.0.push(t.elapsed().as_nanos() as u64);
            }
        } else {
            while ring_take(rs, |_| {}) == 0 {}
            while !p.sock.send(&f) {}
        }
    }
    p.barrier.wait();
    client.then(|| s.one_way())
}

/// The ring floor's stream: [`stream`] with batched transmit and the
/// receiver taking frames from `rs`'s ring.
pub fn ring_stream(
    p: &Peer<'_>,
    rs: &PacketSocket,
    sender: bool,
    frame_len: usize,
    secs: f64,
    end: &StreamEnd,
) -> Option<Stream> {
    p.barrier.wait();
    if sender {
        let f = ring_frame(p.peer, p.mac, frame_len);
        return blast(p, end, secs, || p.sock.send_many(&f, BATCH) as u64);
    }
    count(p, end, |c| ring_take(rs, c))
}

/// A stream's sender: calls `send` (which returns how many frames the
/// kernel took) for `secs`, then tells the receiver it stopped.
fn blast(
    p: &Peer<'_>,
    end: &StreamEnd,
    secs: f64,
    mut send: impl FnMut() -> u64,
) -> Option<Stream> {
    let mut sent = 0u64;
    let t = Instant::now();
    while t.elapsed().as_secs_f64() < secs {
        sent += send();
    }
    end.sent.store(sent, Ordering::SeqCst);
    end.done.store(true, Ordering::SeqCst);
    p.barrier.wait();
    // Both threads are past the barrier: ready for the next stream.
    end.done.store(false, Ordering::SeqCst);
    None
}

/// A stream's receiver: `take` hands the length of every frame it
/// received to its argument and returns how many it took; counts what
/// arrives between the first and the last frame.
fn count(
    p: &Peer<'_>,
    end: &StreamEnd,
    mut take: impl FnMut(&mut dyn FnMut(usize)) -> usize,
) -> Option<Stream> {
    let (mut got, mut bytes) = (0u64, 0u64);
    let mut first = None;
    let mut last = Instant::now();
    let mut add = |n: usize| {
        got += 1;
        bytes += n as u64;
    };
    loop {
        if take(&mut add) > 0 {
            last = Instant::now();
            first.get_or_insert(last);
        } else if end.done.load(Ordering::SeqCst) {
            // Whatever is still queued arrives within a few ms.
            let t = Instant::now();
            while t.elapsed() < Duration::from_millis(20) {
                if take(&mut add) > 0 {
                    last = Instant::now();
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
        return blast(p, end, secs, || u64::from(p.sock.send(&f)));
    }
    let mut buf = vec![0u8; 65536];
    count(p, end, |c| match p.sock.recv(&mut buf) {
        Some(n) => {
            c(n);
            1
        }
        None => 0,
    })
}
