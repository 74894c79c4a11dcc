//! The engine's own time types. The engine never reads a clock: every
//! time-dependent call takes `now`, supplied by the caller (a monotonic
//! clock in the provider, virtual time in tests).

use core::ops::{Add, Sub};

/// A point in time, in nanoseconds since an arbitrary epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant {
    nanos: u64,
}

/// A span of time in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration {
    nanos: u64,
}

impl Instant {
    /// The epoch.
    pub const ZERO: Instant = Instant { nanos: 0 };

    /// From nanoseconds since the epoch.
    pub const fn from_nanos(nanos: u64) -> Self {
        Instant { nanos }
    }

    /// From microseconds since the epoch.
    pub const fn from_micros(us: u64) -> Self {
        Instant {
            nanos: us.saturating_mul(1_000),
        }
    }

    /// Nanoseconds since the epoch.
    pub const fn as_nanos(self) -> u64 {
        self.nanos
    }

    /// `self - earlier`, or zero if `earlier` is later.
    pub const fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration {
            nanos: self.nanos.saturating_sub(earlier.nanos),
        }
    }
}

impl Duration {
    /// Zero.
    pub const ZERO: Duration = Duration { nanos: 0 };
    /// The largest duration.
    pub const MAX: Duration = Duration { nanos: u64::MAX };

    /// From nanoseconds.
    pub const fn from_nanos(nanos: u64) -> Self {
        Duration { nanos }
    }

    /// From microseconds.
    pub const fn from_micros(us: u64) -> Self {
        Duration {
            nanos: us.saturating_mul(1_000),
        }
    }

    /// From milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Duration {
            nanos: ms.saturating_mul(1_000_000),
        }
    }

    /// Nanoseconds.
    pub const fn as_nanos(self) -> u64 {
        self.nanos
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        Instant {
            nanos: self.nanos.saturating_add(d.nanos),
        }
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, o: Instant) -> Duration {
        self.saturating_duration_since(o)
    }
}

impl Add for Duration {
    type Output = Duration;
    fn add(self, d: Duration) -> Duration {
        Duration {
            nanos: self.nanos.saturating_add(d.nanos),
        }
    }
}
