//! A test and benchmark topology (root only): two network namespaces
//! joined by a veth pair, made with `ip` and removed on drop, and
//! `setns()` for one thread. Used by this crate's ring tests and by
//! omx-bench; the provider never calls it.
//!
//! The network namespace is per thread, so each thread enters its side
//! with [`enter`] and everything it opens (sockets, interface lookups)
//! lives there.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Command;

/// One side of the pair.
#[derive(Debug, Clone)]
pub struct Side {
    /// Namespace name (`/run/netns/NAME`).
    pub ns: String,
    /// Interface name inside it.
    pub ifname: String,
    /// Its MAC address (set explicitly, so nobody has to look it up).
    pub mac: [u8; 6],
}

/// Two namespaces and the veth pair; deleted on drop.
#[derive(Debug)]
pub struct Topology {
    /// The two ends.
    pub sides: [Side; 2],
}

fn ip(args: &[&str]) -> io::Result<()> {
    let st = Command::new("ip").args(args).status()?;
    if st.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!("ip {} failed", args.join(" "))))
    }
}

fn mac_str(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl Topology {
    /// Creates namespaces `omx<tag>-<pid>-{a,b}` joined by a veth pair of
    /// this MTU (`tag`: a few letters, unique per concurrent user in this
    /// process).
    pub fn new(tag: &str, mtu: u32) -> io::Result<Self> {
        let pid = std::process::id();
        let side = |c: char, last: u8| Side {
            ns: format!("omx{tag}-{pid}-{c}"),
            ifname: format!("{tag}{}{c}", pid % 100_000),
            mac: [0x02, 0x00, 0x00, 0x00, 0x00, last],
        };
        let t = Topology {
            sides: [side('a', 1), side('b', 2)],
        };
        let [a, b] = &t.sides;
        ip(&["netns", "add", &a.ns])?;
        ip(&["netns", "add", &b.ns])?;
        ip(&[
            "link", "add", &a.ifname, "netns", &a.ns, "type", "veth", "peer", "name", &b.ifname,
            "netns", &b.ns,
        ])?;
        let mtu = mtu.to_string();
        for s in &t.sides {
            let mac = mac_str(&s.mac);
            ip(&["-n", &s.ns, "link", "set", &s.ifname, "address", &mac])?;
            ip(&["-n", &s.ns, "link", "set", &s.ifname, "mtu", &mtu, "up"])?;
        }
        Ok(t)
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end inside it, and with it
        // the pair.
        for s in &self.sides {
            let _ = ip(&["netns", "del", &s.ns]);
        }
    }
}

/// Moves the calling thread into `side`'s namespace and returns the
/// interface index there.
pub fn enter(side: &Side) -> io::Result<u32> {
    let f = std::fs::File::open(format!("/run/netns/{}", side.ns))?;
    let fd: OwnedFd = f.into();
    // SAFETY: fd is an open namespace file; setns changes only the
    // calling thread's network namespace.
    if unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let name = std::ffi::CString::new(side.ifname.as_str()).map_err(io::Error::other)?;
    // SAFETY: name is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if idx == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(idx)
}
