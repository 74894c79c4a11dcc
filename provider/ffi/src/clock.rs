//! The two clocks of the provider.
//!
//! - [`engine_ns`]: the data path's clock (transport timers, the progress
//!   thread's sleeps, the busy-poll window). It is `CLOCK_MONOTONIC_COARSE`,
//!   which the vDSO answers from the kernel's last tick without reading a
//!   hardware counter, on every clocksource. `CLOCK_MONOTONIC` is a vDSO
//!   read only with a TSC-like clocksource: under HPET or acpi_pm (guests
//!   whose TSC the kernel marked unstable, such as our TCG test bed) every
//!   read is a system call plus an emulated device access, tens of
//!   microseconds per `poll_cq` there. The transport's timers are in
//!   milliseconds (IBTA local ACK timeout >= 8 us but 67 ms for the usual
//!   timeout 14; RNR timers are minimums), so a tick of resolution (1-10 ms)
//!   only makes a timer fire up to one tick late, the way the kernel's own
//!   jiffies timers do.
//! - [`precise_ns`]: `CLOCK_MONOTONIC`, for completion timestamps only
//!   (`ibv_create_cq_ex` with IBV_WC_EX_WITH_COMPLETION_TIMESTAMP), which
//!   applications compare at nanosecond scale.
//! - [`wallclock_ns`]: `CLOCK_REALTIME`, for wall-clock completion
//!   timestamps (IBV_WC_EX_WITH_COMPLETION_TIMESTAMP_WALLCLOCK): read when
//!   the completion is queued, so it is the wall-clock time of the
//!   completion, not a conversion of the device clock done later.
//!
//! [`stamp_ts`], [`stamp_wallclock`] and [`stamp_both`] are the CQ clocks
//! (`omx_verbs::Clock`) for the three combinations of those flags: each
//! reads only the clocks its CQ reports.

use omx_verbs::Stamp;

fn read(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a live, writable timespec and both clocks used here
    // exist on every Linux this provider supports (>= 2.6.32), so the call
    // cannot fail.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// The engine clock: `CLOCK_MONOTONIC_COARSE`, nanoseconds.
pub fn engine_ns() -> u64 {
    read(libc::CLOCK_MONOTONIC_COARSE)
}

/// The engine clock's resolution in nanoseconds (one scheduler tick):
/// a deadline on the engine clock is seen as due at most this much after
/// it passed, so a thread that waits for one sleeps at least this long
/// instead of waking again and again within one tick.
pub fn engine_resolution_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a live, writable timespec; the clock exists.
    let r = unsafe { libc::clock_getres(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    let ns = (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64);
    if r == 0 && ns > 0 {
        ns
    } else {
        // HZ = 100, the coarsest tick Linux has.
        10_000_000
    }
}

/// The completion-timestamp clock: `CLOCK_MONOTONIC`, nanoseconds (what
/// `hca_core_clock` = 1 GHz describes).
pub fn precise_ns() -> u64 {
    read(libc::CLOCK_MONOTONIC)
}

/// The wall clock: `CLOCK_REALTIME`, nanoseconds since the epoch.
pub fn wallclock_ns() -> u64 {
    read(libc::CLOCK_REALTIME)
}

/// A CQ clock: the completion timestamp only.
pub fn stamp_ts() -> Stamp {
    Stamp {
        ts: precise_ns(),
        wallclock_ns: 0,
    }
}

/// A CQ clock: the wall-clock timestamp only.
pub fn stamp_wallclock() -> Stamp {
    Stamp {
        ts: 0,
        wallclock_ns: wallclock_ns(),
    }
}

/// A CQ clock: both timestamps, read one after the other.
pub fn stamp_both() -> Stamp {
    Stamp {
        ts: precise_ns(),
        wallclock_ns: wallclock_ns(),
    }
}

/// The CQ clock for an `ibv_create_cq_ex` asking for the completion
/// timestamp (`ts`) and/or the wall-clock one (`wall`); None for neither.
pub fn cq_clock(ts: bool, wall: bool) -> Option<omx_verbs::Clock> {
    match (ts, wall) {
        (false, false) => None,
        (true, false) => Some(stamp_ts),
        (false, true) => Some(stamp_wallclock),
        (true, true) => Some(stamp_both),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_are_monotonic_and_agree_within_a_tick() {
        let a = engine_ns();
        let p = precise_ns();
        let b = engine_ns();
        assert!(b >= a);
        // The coarse clock lags the precise one by at most one tick
        // (HZ >= 100), and never leads it.
        assert!(a <= p + 1_000_000, "coarse {a} ahead of precise {p}");
        let res = engine_resolution_ns();
        assert!((1..=10_000_000).contains(&res), "resolution {res}");
        assert!(
            p - a <= 2 * res,
            "coarse {a} lags precise {p} by more than a tick"
        );
    }

    #[test]
    fn cq_clocks_read_what_their_cq_reports() {
        assert!(cq_clock(false, false).is_none());
        let before = wallclock_ns();
        let t = cq_clock(true, false).unwrap()();
        assert!(t.ts > 0 && t.wallclock_ns == 0);
        let w = cq_clock(false, true).unwrap()();
        assert!(w.ts == 0 && w.wallclock_ns >= before);
        let b = cq_clock(true, true).unwrap()();
        assert!(b.ts >= t.ts && b.wallclock_ns >= w.wallclock_ns);
        // The wall clock is the epoch's (after 2020), not the boot's.
        assert!(b.wallclock_ns > 1_577_836_800 * 1_000_000_000);
        let after = wallclock_ns();
        assert!(after >= b.wallclock_ns);
    }
}
