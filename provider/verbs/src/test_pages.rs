//! Test fixture: anonymous pages we can make inaccessible or unmap, and a
//! shared file mapping we can truncate, to fault copies on purpose.
//!
//! Holes: a test that unmaps a page holds [`Pages::hole_guard`] while the
//! hole exists, and [`Pages::new`] takes the same lock, so no other test's
//! fixture is mapped into the hole (a one-page hole is too small for any
//! other mapping a test makes: malloc maps at least 128 KiB, thread stacks
//! megabytes).

use std::sync::{Mutex, MutexGuard};

static HOLES: Mutex<()> = Mutex::new(());

pub(crate) fn page() -> usize {
    // SAFETY: plain libc call.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// `n` pages of private anonymous memory, readable and writable, unmapped
/// on drop.
pub(crate) struct Pages {
    base: *mut u8,
    n: usize,
}

// SAFETY: the fixture only hands out addresses; tests synchronise access.
unsafe impl Send for Pages {}
// SAFETY: as above.
unsafe impl Sync for Pages {}

impl Pages {
    pub(crate) fn new(n: usize) -> Self {
        assert!(
            n >= 2,
            "one-page mappings could land in another test's hole"
        );
        let _g = Self::hole_guard();
        // SAFETY: a fresh anonymous mapping.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                n * page(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        Pages { base: p.cast(), n }
    }

    /// Serialises holes against new fixtures (see the module docs).
    pub(crate) fn hole_guard() -> MutexGuard<'static, ()> {
        HOLES.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Address of page `i` plus `off`.
    pub(crate) fn addr(&self, i: usize, off: usize) -> usize {
        self.base as usize + i * page() + off
    }

    /// Makes page `i` inaccessible (PROT_NONE) or accessible again.
    pub(crate) fn protect(&self, i: usize, prot: libc::c_int) {
        // SAFETY: page `i` of our own mapping.
        let r = unsafe { libc::mprotect(self.addr(i, 0) as *mut libc::c_void, page(), prot) };
        assert_eq!(r, 0);
    }

    /// Unmaps page `i` (hold [`Pages::hole_guard`] until it is mapped
    /// again or the fixture dropped).
    pub(crate) fn unmap(&self, i: usize) {
        // SAFETY: page `i` of our own mapping; nothing references it.
        let r = unsafe { libc::munmap(self.addr(i, 0) as *mut libc::c_void, page()) };
        assert_eq!(r, 0);
    }

    /// Maps fresh zeroed memory at page `i` again (only where it is a
    /// hole: MAP_FIXED_NOREPLACE).
    pub(crate) fn remap(&self, i: usize) {
        // SAFETY: the address is a hole we made; NOREPLACE refuses to map
        // over anything else.
        let p = unsafe {
            libc::mmap(
                self.addr(i, 0) as *mut libc::c_void,
                page(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                -1,
                0,
            )
        };
        assert_eq!(p as usize, self.addr(i, 0));
    }

    /// Byte at `addr` (inside an accessible page of the fixture).
    pub(crate) fn get(&self, addr: usize) -> u8 {
        // SAFETY: the test passes an address inside an accessible page.
        unsafe { core::ptr::read_volatile(addr as *const u8) }
    }

    /// Fills `[addr, addr + len)` with `f(i)`.
    pub(crate) fn fill(&self, addr: usize, len: usize, f: impl Fn(usize) -> u8) {
        for i in 0..len {
            // SAFETY: as in `get`.
            unsafe { core::ptr::write_volatile((addr + i) as *mut u8, f(i)) };
        }
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        // SAFETY: our mapping (pages unmapped in between are holes, which
        // munmap skips).
        unsafe { libc::munmap(self.base.cast(), self.n * page()) };
    }
}

/// A `MAP_SHARED` mapping of a file of `pages` pages that was then
/// truncated to 0: every access raises SIGBUS.
pub(crate) struct Truncated {
    base: *mut u8,
    len: usize,
}

impl Truncated {
    pub(crate) fn new(tag: &str, pages: usize) -> Self {
        use std::os::fd::AsRawFd;
        let path = std::env::temp_dir().join(format!("omx-sigbus-{tag}-{}", std::process::id()));
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let _ = std::fs::remove_file(&path);
        let len = pages * page();
        f.set_len(len as u64).unwrap();
        let _g = Pages::hole_guard();
        // SAFETY: a shared mapping of our own file.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        f.set_len(0).unwrap();
        Truncated {
            base: p.cast(),
            len,
        }
    }

    pub(crate) fn addr(&self) -> usize {
        self.base as usize
    }
}

impl Drop for Truncated {
    fn drop(&mut self) {
        // SAFETY: our mapping.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}
