//! errno values as a type, and the two C return conventions.

use core::fmt;

/// A positive `errno` value (`EINVAL`, `EOPNOTSUPP`, ...).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    pub const EINVAL: Self = Self(libc::EINVAL);
    pub const ENOMEM: Self = Self(libc::ENOMEM);
    pub const EOPNOTSUPP: Self = Self(libc::EOPNOTSUPP);
    pub const EPROTO: Self = Self(libc::EPROTO);
    pub const EIO: Self = Self(libc::EIO);
    pub const ENODEV: Self = Self(libc::ENODEV);
    pub const EPERM: Self = Self(libc::EPERM);

    /// Maps an `ibv_cmd_*` return (0 or a positive errno) to a Result.
    /// Negative values are not part of that convention; they are reported
    /// as `EIO` rather than trusted.
    pub fn check(ret: i32) -> Result<(), Errno> {
        match ret {
            0 => Ok(()),
            e if e > 0 => Err(Errno(e)),
            _ => Err(Errno::EIO),
        }
    }

    /// The current thread's `errno`, or `EIO` when a failing call left it 0.
    pub fn last() -> Errno {
        match std::io::Error::last_os_error().raw_os_error() {
            Some(e) if e > 0 => Errno(e),
            _ => Errno::EIO,
        }
    }

    /// A command the kernel refused with EDQUOT: the user reached one of
    /// rdma_omx's per-user limits (docs/kmod.md), `param` the module
    /// parameter that sets it. Says so, always: the application would
    /// otherwise print a bare "Disk quota exceeded".
    pub fn note_quota(self, what: &str, param: &str) -> Self {
        if self.0 == libc::EDQUOT {
            crate::log::notice(format_args!(
                "{what}: this user reached the device's per-user limit (rdma_omx module \
                 parameter {param}, see /sys/module/rdma_omx/parameters/{param})"
            ));
        }
        self
    }

    /// Stores `self` in the thread's `errno` (constructor verbs return NULL
    /// and report the reason there).
    pub fn set(self) {
        // SAFETY: __errno_location() returns the calling thread's errno
        // slot, valid for the thread's lifetime.
        unsafe { *libc::__errno_location() = self.0 };
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Errno({}: {})",
            self.0,
            std::io::Error::from_raw_os_error(self.0)
        )
    }
}

/// `int`-returning verbs: 0 or a positive errno.
pub fn to_ret(r: Result<(), Errno>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(e) => e.0,
    }
}

/// Constructor verbs: the object pointer, or NULL with `errno` set.
pub fn to_ptr<T>(r: Result<*mut T, Errno>) -> *mut T {
    match r {
        Ok(p) => p,
        Err(e) => {
            e.set();
            core::ptr::null_mut()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_maps_the_ibv_cmd_convention() {
        assert_eq!(Errno::check(0), Ok(()));
        assert_eq!(Errno::check(libc::EINVAL), Err(Errno::EINVAL));
        assert_eq!(Errno::check(-1), Err(Errno::EIO));
    }

    #[test]
    fn to_ptr_sets_errno_on_error() {
        let p: *mut u8 = to_ptr(Err(Errno::EOPNOTSUPP));
        assert!(p.is_null());
        assert_eq!(Errno::last(), Errno::EOPNOTSUPP);
        assert_eq!(to_ret(Err(Errno::ENOMEM)), libc::ENOMEM);
        assert_eq!(to_ret(Ok(())), 0);
    }
}
