//! An AF_PACKET socket on one interface of the caller's network namespace:
//! sends whole Ethernet frames as given (any source MAC) and captures the
//! omx frames crossing the interface in both directions.
//!
//! Unlike the provider's socket (`omx-pktio`), which only ever sees frames
//! for its own endpoint and never its own, a capture socket is bound to
//! `ETH_P_ALL` (the only protocol that also sees outgoing frames) with a
//! classic BPF filter on the Open-MX EtherType, attached before the socket
//! is bound so that nothing else is ever queued. Needs CAP_NET_RAW.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::decode::Dir;

const ETH_P_ALL: u16 = 0x0003;
const PACKET_OUTGOING: u8 = 4;
/// Largest frame captured (jumbo frames up to 9 KiB; longer ones are
/// reported truncated to this size).
pub const CAPTURE_LEN: usize = 9216;

/// The raw socket.
#[derive(Debug)]
pub struct RawSocket {
    fd: OwnedFd,
    ifindex: i32,
    mac: [u8; 6],
}

fn check(what: &str, r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        let e = io::Error::last_os_error();
        Err(io::Error::new(e.kind(), format!("{what}: {e}")))
    } else {
        Ok(r)
    }
}

/// `ldh [12]; jeq #0x86df, accept, drop`.
fn ethertype_filter() -> [libc::sock_filter; 4] {
    let insn = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    [
        insn(
            (libc::BPF_LD | libc::BPF_H | libc::BPF_ABS) as u16,
            0,
            0,
            12,
        ),
        insn(
            (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            0,
            1,
            u32::from(omx_wire::ETHERTYPE),
        ),
        insn((libc::BPF_RET | libc::BPF_K) as u16, 0, 0, 0x40000),
        insn((libc::BPF_RET | libc::BPF_K) as u16, 0, 0, 0),
    ]
}

impl RawSocket {
    /// Opens a socket on `ifname`. With `capture`, omx frames crossing the
    /// interface in either direction are queued for [`RawSocket::recv`];
    /// without, the socket only sends (nothing is ever queued).
    pub fn open(ifname: &str, capture: bool) -> io::Result<Self> {
        let name = std::ffi::CString::new(ifname)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name"))?;
        // SAFETY: name is a valid NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no interface '{ifname}' in this network namespace"),
            ));
        }
        // Protocol 0: no frame is queued before bind().
        // SAFETY: plain syscall.
        let raw = check("socket(AF_PACKET)", unsafe {
            libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0)
        })?;
        // SAFETY: raw is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut s = RawSocket {
            fd,
            ifindex: ifindex as i32,
            mac: [0; 6],
        };
        s.mac = s.query_mac(&name)?;
        if capture {
            let mut f = ethertype_filter();
            let prog = libc::sock_fprog {
                len: f.len() as u16,
                filter: f.as_mut_ptr(),
            };
            s.setsockopt(libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)?;
            let big: libc::c_int = 8 << 20;
            let _ = s.setsockopt(libc::SOL_SOCKET, libc::SO_RCVBUF, &big);
            s.bind(ETH_P_ALL)?;
        } else {
            s.bind(0)?;
        }
        Ok(s)
    }

    fn setsockopt<T>(&self, level: libc::c_int, name: libc::c_int, v: &T) -> io::Result<()> {
        // SAFETY: `v` is a live value of the size we pass.
        let r = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                (v as *const T).cast(),
                core::mem::size_of::<T>() as libc::socklen_t,
            )
        };
        check("setsockopt", r).map(|_| ())
    }

    fn sockaddr(&self, proto: u16) -> libc::sockaddr_ll {
        // SAFETY: all-zero is a valid sockaddr_ll.
        let mut sll: libc::sockaddr_ll = unsafe { core::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto.to_be();
        sll.sll_ifindex = self.ifindex;
        sll
    }

    fn bind(&self, proto: u16) -> io::Result<()> {
        let sll = self.sockaddr(proto);
        // SAFETY: sll is a valid sockaddr_ll of the size we pass.
        let r = unsafe {
            libc::bind(
                self.fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                core::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        check("bind(AF_PACKET)", r).map(|_| ())
    }

    fn query_mac(&self, name: &std::ffi::CStr) -> io::Result<[u8; 6]> {
        // SAFETY: all-zero is a valid ifreq.
        let mut ifr: libc::ifreq = unsafe { core::mem::zeroed() };
        let bytes = name.to_bytes_with_nul();
        if bytes.len() > ifr.ifr_name.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "interface name too long",
            ));
        }
        for (d, s) in ifr.ifr_name.iter_mut().zip(bytes) {
            *d = *s as libc::c_char;
        }
        // SAFETY: ifr names the interface; SIOCGIFHWADDR fills ifru_hwaddr.
        check("SIOCGIFHWADDR", unsafe {
            libc::ioctl(self.fd.as_raw_fd(), libc::SIOCGIFHWADDR, &mut ifr)
        })?;
        // SAFETY: the kernel filled the hwaddr member.
        let sa = unsafe { ifr.ifr_ifru.ifru_hwaddr };
        let mut m = [0u8; 6];
        for (d, s) in m.iter_mut().zip(sa.sa_data.iter()) {
            *d = *s as u8;
        }
        Ok(m)
    }

    /// The interface's MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// Sends one frame as it is. A full transmit queue (ENOBUFS, EAGAIN)
    /// is waited out for up to a second.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        let sll = self.sockaddr(omx_wire::ETHERTYPE);
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            // SAFETY: frame and sll are live for the call, of the sizes
            // we pass.
            let n = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    (&sll as *const libc::sockaddr_ll).cast(),
                    core::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            if n >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            let again = matches!(
                e.raw_os_error(),
                Some(libc::ENOBUFS) | Some(libc::EAGAIN) | Some(libc::EINTR)
            );
            if !again || Instant::now() > deadline {
                return Err(io::Error::new(e.kind(), format!("send: {e}")));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Waits up to `timeout` for a captured frame; copies it into `buf`
    /// (at most [`CAPTURE_LEN`] bytes) and returns its length and
    /// direction, or `None` when the time ran out.
    pub fn recv(&self, buf: &mut [u8], timeout: Duration) -> io::Result<Option<(usize, Dir)>> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
        // SAFETY: pfd is one live pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                return Ok(None);
            }
            return Err(e);
        }
        if r == 0 {
            return Ok(None);
        }
        // SAFETY: all-zero is a valid sockaddr_ll.
        let mut sll: libc::sockaddr_ll = unsafe { core::mem::zeroed() };
        let mut slen = core::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: buf is writable for buf.len() bytes; sll/slen are live
        // and describe a sockaddr_ll.
        let n = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
                (&mut sll as *mut libc::sockaddr_ll).cast(),
                &mut slen,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(None),
                _ => Err(e),
            };
        }
        let dir = if sll.sll_pkttype == PACKET_OUTGOING {
            Dir::Out
        } else {
            Dir::In
        };
        Ok(Some((n as usize, dir)))
    }
}
