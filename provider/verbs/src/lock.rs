//! The data-path lock: a spin lock that never puts the caller to sleep.
//!
//! post_send, post_recv and poll_cq must not sleep (the provider contract
//! rdma-core's own providers keep with `pthread_spin_lock`). A `std` mutex
//! parks a contended thread in `futex()`, and waking it takes the
//! scheduler: measured in the TCG bed, an application thread that posted
//! while the progress thread held its QP to send an ACK slept up to a tick
//! (about 4 ms on 6.12) each time. The critical sections behind these locks
//! are short and never block (frames go out with non-blocking sends), so a
//! waiter spins; after [`SPINS`] rounds it yields its CPU between attempts,
//! in case the holder was preempted on the same CPU.
//!
//! Built on the `spin` crate's `SpinMutex` (no unsafe code here).

use spin::mutex::{SpinMutex, SpinMutexGuard};

/// Spin rounds before a waiter starts yielding its CPU.
const SPINS: u32 = 1 << 12;

/// A spin lock around `T`.
#[derive(Debug)]
pub struct SpinLock<T>(SpinMutex<T>);

/// Guard of a [`SpinLock`].
pub type SpinGuard<'a, T> = SpinMutexGuard<'a, T>;

impl<T> SpinLock<T> {
    /// A new unlocked lock.
    pub const fn new(v: T) -> Self {
        SpinLock(SpinMutex::new(v))
    }

    /// The lock if it is free now.
    pub fn try_lock(&self) -> Option<SpinGuard<'_, T>> {
        self.0.try_lock()
    }

    /// Takes the lock, spinning (and then yielding) while someone else
    /// holds it.
    pub fn lock(&self) -> SpinGuard<'_, T> {
        let mut n = 0u32;
        loop {
            if let Some(g) = self.0.try_lock() {
                return g;
            }
            if n < SPINS {
                n += 1;
                core::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn excludes_and_hands_over() {
        let l = Arc::new(SpinLock::new(0u64));
        let g = l.lock();
        assert!(l.try_lock().is_none());
        drop(g);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let l = l.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        *l.lock() += 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*l.lock(), 40_000);
    }
}
