//! All timers of an RC QP in one table (quinn-proto's `Timer` +
//! `TimerTable`); [`crate::RcQp::handle_timeout`] handles every expiry in a
//! single `match`.

use crate::time::Instant;

/// The timers of an RC QP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// Requester transport timer: `4.096 µs × 2^timeout` after the last
    /// progress while request packets are unacknowledged.
    Retransmit = 0,
    /// Requester RNR wait: the RNR NAK's timer before resending.
    Rnr = 1,
    /// Responder ACK coalescing delay.
    Ack = 2,
    /// Immediate: the responder used up its READ response burst with
    /// responses left (docs/wire.md §7.3, `READ_BURST`); the caller's
    /// timer pass calls `handle_timeout`, which grants the next burst.
    Resume = 3,
}

impl Timer {
    /// Every timer, in table order.
    pub const VALUES: [Timer; 4] = [Timer::Retransmit, Timer::Rnr, Timer::Ack, Timer::Resume];
}

/// Deadlines of the [`Timer`]s; `None` = stopped.
#[derive(Debug, Clone, Default)]
pub struct TimerTable {
    data: [Option<Instant>; Timer::VALUES.len()],
}

impl TimerTable {
    /// Arms `t` at `at` (replacing any earlier deadline).
    pub fn set(&mut self, t: Timer, at: Instant) {
        self.data[t as usize] = Some(at);
    }

    /// Arms `t` at `at` unless it is already armed.
    pub fn set_if_stopped(&mut self, t: Timer, at: Instant) {
        if self.data[t as usize].is_none() {
            self.data[t as usize] = Some(at);
        }
    }

    /// Stops `t`.
    pub fn stop(&mut self, t: Timer) {
        self.data[t as usize] = None;
    }

    /// Deadline of `t`.
    pub fn get(&self, t: Timer) -> Option<Instant> {
        self.data[t as usize]
    }

    /// True if `t` is armed and due at `now`.
    pub fn is_expired(&self, t: Timer, now: Instant) -> bool {
        self.data[t as usize].is_some_and(|d| d <= now)
    }

    /// The earliest deadline.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.data.iter().flatten().min().copied()
    }

    /// Stops every timer.
    pub fn stop_all(&mut self) {
        self.data = [None; Timer::VALUES.len()];
    }
}
