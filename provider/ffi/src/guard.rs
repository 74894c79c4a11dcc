//! Never unwind into C.
//!
//! Release builds abort on panic (`profile.release.panic = "abort"`), so a
//! bug aborts the process instead of unwinding through libibverbs' frames.
//! Builds that unwind (tests, dev builds) catch the panic at the edge and
//! return the caller's error value instead: a logic error becomes an errno.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `f`; if it panics, logs and returns `on_panic`.
pub fn guard<T>(what: &str, on_panic: T, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(_) => {
            crate::log::error(format_args!("internal error in {what}"));
            on_panic
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn panic_becomes_value() {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let v = super::guard("test", 7, || -> i32 { panic!("boom") });
        std::panic::set_hook(prev);
        assert_eq!(v, 7);
        assert_eq!(super::guard("test", 7, || 3), 3);
    }
}
