//! Completion queues: a ring of work completions pre-sized at creation,
//! plus the completion-event arm state.
//!
//! Who holds references: the ffi CQ object (`Arc<Cq>`), every QP that uses
//! it as send or receive CQ (`Arc<Cq>`), and the endpoint's CQ list (for
//! the progress thread's notification pass). The ring outlives
//! `ibv_destroy_cq` only while a QP still holds it, which the kernel
//! forbids (EBUSY), so in practice it goes with the ffi object.
//!
//! Locks: `ring` (a spin lock, [`crate::lock`]) guards the entries; it is a leaf lock (taken
//! under a QP lock by the drivers, alone by `poll`). `waiting` mirrors the
//! ring's length (written under the lock, read without it), so a poll of
//! an empty CQ takes no lock at all: a busy-polling application never
//! holds the ring lock while it waits, and the progress thread (which
//! pushes under a QP lock) never spins behind it. (Without it, valgrind's
//! deterministic thread switches could preempt the poller inside the lock
//! on every time slice, and the progress thread spun forever.) `armed` and
//! `notify_pending` are atomics.
//!
//! Events (never lost, never duplicated per arm): [`Cq::push`] inserts
//! under the ring lock, *then* consumes the arm; [`Cq::arm`] only sets the
//! arm (completions already waiting raise no event, see its doc). The
//! compare-exchange on `armed` lets one arm yield exactly one pending
//! notification, which the progress thread turns into the kernel event
//! ([`Cq::take_notify`]).

use crate::lock::{SpinGuard, SpinLock};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

use omx_engine::{WcStatus, WorkCompletion};

/// Arm state: not armed.
pub const DISARMED: u32 = 0;
/// Armed for the next completion.
pub const ARMED_NEXT: u32 = 1;
/// Armed for the next solicited (or error) completion.
pub const ARMED_SOLICITED: u32 = 2;

/// The times a completion was queued at, as the CQ's clock reads them
/// (each field 0 when the clock does not provide it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stamp {
    /// `ibv_wc_read_completion_ts`: the device clock (the provider's
    /// CLOCK_MONOTONIC), ns.
    pub ts: u64,
    /// `ibv_wc_read_completion_wallclock_ns`: CLOCK_REALTIME, ns.
    pub wallclock_ns: u64,
}

/// Reads the clock(s) a CQ stamps its completions with.
pub type Clock = fn() -> Stamp;

#[derive(Debug)]
struct Ring {
    buf: Box<[Option<WorkCompletion>]>,
    /// Completion stamps, parallel to `buf` (empty without a clock).
    ts: Box<[Stamp]>,
    head: usize,
    len: usize,
    overflows: u64,
}

/// A completion queue.
#[derive(Debug)]
pub struct Cq {
    /// Kernel uverbs handle (`ibv_cq.handle`), for the notify ioctl.
    pub handle: u32,
    /// Stamps each completion as it is pushed (`ibv_create_cq_ex` with
    /// IBV_WC_EX_WITH_COMPLETION_TIMESTAMP(_WALLCLOCK)).
    clock: Option<Clock>,
    ring: SpinLock<Ring>,
    /// `ring.len`, for lock-free empty checks.
    waiting: AtomicUsize,
    armed: AtomicU32,
    notify_pending: AtomicBool,
    /// The ring overran (a completion was dropped): the CQ is in error
    /// for good (IBTA 11.4.2.1: an overrun CQ takes no more completions)
    /// and every QP that tries to complete into it moves to ERROR.
    error: AtomicBool,
    /// IBV_EVENT_CQ_ERR is still to be raised (taken by the progress
    /// thread, [`Cq::take_error_event`]).
    error_event: AtomicBool,
}

/// What [`Cq::push`] did with a completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Pushed {
    /// In the ring; `notify`: it made a completion event pending (the
    /// caller makes sure the progress thread runs).
    Queued {
        /// A completion event is now pending.
        notify: bool,
    },
    /// Dropped: the ring was full, or had overrun before. The CQ is in
    /// error; the QP that completed into it must move to ERROR.
    Overrun {
        /// This push made the CQ overrun (its CQ_ERR event is now
        /// pending).
        first: bool,
    },
}

impl Pushed {
    /// The completion made an event pending.
    pub fn notify(self) -> bool {
        matches!(self, Pushed::Queued { notify: true })
    }
}

impl Cq {
    /// A CQ holding up to `cqe` completions.
    pub fn new(handle: u32, cqe: usize) -> Self {
        Self::with_clock(handle, cqe, None)
    }

    /// A CQ whose completions carry `clock()` taken when they are pushed.
    pub fn with_clock(handle: u32, cqe: usize, clock: Option<Clock>) -> Self {
        Self::try_with_clock(handle, cqe, clock).expect("CQ ring allocation")
    }

    /// [`Cq::with_clock`], or `None` if the ring cannot be allocated (a
    /// CQ may hold up to the device's max_cqe, 4194303 completions: some
    /// 200 MB, which the application gets as ENOMEM rather than an abort).
    pub fn try_with_clock(handle: u32, cqe: usize, clock: Option<Clock>) -> Option<Self> {
        fn filled<T: Clone>(n: usize, v: T) -> Option<Box<[T]>> {
            let mut b = Vec::new();
            b.try_reserve_exact(n).ok()?;
            b.resize(n, v);
            Some(b.into_boxed_slice())
        }
        let cap = cqe.max(1);
        Some(Cq {
            handle,
            clock,
            ring: SpinLock::new(Ring {
                buf: filled(cap, None)?,
                ts: filled(if clock.is_some() { cap } else { 0 }, Stamp::default())?,
                head: 0,
                len: 0,
                overflows: 0,
            }),
            waiting: AtomicUsize::new(0),
            armed: AtomicU32::new(DISARMED),
            notify_pending: AtomicBool::new(false),
            error: AtomicBool::new(false),
            error_event: AtomicBool::new(false),
        })
    }

    /// Capacity.
    pub fn capacity(&self) -> usize {
        self.lock().buf.len()
    }

    fn lock(&self) -> SpinGuard<'_, Ring> {
        self.ring.lock()
    }

    /// Adds a completion. A full ring drops it, counts an overflow and
    /// puts the CQ in error for good (CQ overrun): the completion is lost,
    /// but loudly (IBV_EVENT_CQ_ERR, and the QP moves to ERROR), never
    /// silently.
    pub fn push(&self, wc: WorkCompletion) -> Pushed {
        let now = self.clock.map(|c| c());
        {
            let mut r = self.lock();
            let cap = r.buf.len();
            if r.len == cap || self.error.load(Ordering::Relaxed) {
                r.overflows += 1;
                let first = !self.error.swap(true, Ordering::AcqRel);
                if first {
                    self.error_event.store(true, Ordering::Release);
                }
                return Pushed::Overrun { first };
            }
            let i = (r.head + r.len) % cap;
            r.buf[i] = Some(wc);
            if let (Some(t), Some(slot)) = (now, r.ts.get_mut(i)) {
                *slot = t;
            }
            r.len += 1;
            self.waiting.store(r.len, Ordering::Release);
        }
        let solicited = wc.solicited || wc.status != WcStatus::Success;
        Pushed::Queued {
            notify: self.consume_arm(solicited),
        }
    }

    /// The CQ overran (see [`Cq::push`]).
    pub fn in_error(&self) -> bool {
        self.error.load(Ordering::Acquire)
    }

    /// Consumes the pending IBV_EVENT_CQ_ERR (progress thread).
    pub fn take_error_event(&self) -> bool {
        self.error_event.swap(false, Ordering::AcqRel)
    }

    /// Moves up to `out.len()` completions out; returns how many.
    pub fn poll(&self, out: &mut [WorkCompletion]) -> usize {
        self.poll_with(out.len(), |i, wc| out[i] = *wc)
    }

    /// Takes up to `max` completions, handing each to `f` with its index
    /// (0, 1, ...) under the ring lock, so that the caller converts them
    /// straight into its own array (no staging buffer to initialise on
    /// every empty poll); returns how many.
    pub fn poll_with(&self, max: usize, mut f: impl FnMut(usize, &WorkCompletion)) -> usize {
        if self.waiting.load(Ordering::Acquire) == 0 {
            return 0;
        }
        let mut r = self.lock();
        let cap = r.buf.len();
        let mut n = 0;
        while n < max && r.len > 0 {
            let h = r.head;
            if let Some(wc) = r.buf[h].take() {
                f(n, &wc);
                n += 1;
            }
            r.head = (h + 1) % cap;
            r.len -= 1;
        }
        self.waiting.store(r.len, Ordering::Release);
        n
    }

    /// Takes the oldest completion with its stamp (zero on a CQ without a
    /// clock).
    pub fn poll_one(&self) -> Option<(WorkCompletion, Stamp)> {
        if self.waiting.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut r = self.lock();
        while r.len > 0 {
            let cap = r.buf.len();
            let h = r.head;
            let wc = r.buf[h].take();
            let ts = r.ts.get(h).copied().unwrap_or_default();
            r.head = (h + 1) % cap;
            r.len -= 1;
            self.waiting.store(r.len, Ordering::Release);
            if let Some(wc) = wc {
                return Some((wc, ts));
            }
        }
        None
    }

    /// True if this CQ timestamps its completions.
    pub fn has_clock(&self) -> bool {
        self.clock.is_some()
    }

    /// Completions waiting.
    pub fn len(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// True if no completion is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Completions dropped because the ring was full or had overrun.
    pub fn overflows(&self) -> u64 {
        self.lock().overflows
    }

    /// `ibv_req_notify_cq`: the next completion (`solicited_only`: the
    /// next solicited or error completion) added to the ring raises an
    /// event. Completions already waiting raise none, as in rxe and siw:
    /// the application polls after arming (the documented pattern) and
    /// finds them, so nothing is lost, and no event arrives for a
    /// completion it already consumed (ibv_rc_pingpong -t -e treats such
    /// an event as an error).
    pub fn arm(&self, solicited_only: bool) {
        let want = if solicited_only {
            ARMED_SOLICITED
        } else {
            ARMED_NEXT
        };
        let _ = self
            .armed
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| match cur {
                ARMED_NEXT => None,
                _ => Some(want),
            });
    }

    fn consume_arm(&self, solicited: bool) -> bool {
        let fired = self
            .armed
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| match cur {
                ARMED_NEXT => Some(DISARMED),
                ARMED_SOLICITED if solicited => Some(DISARMED),
                _ => None,
            })
            .is_ok();
        if fired {
            self.notify_pending.store(true, Ordering::Release);
        }
        fired
    }

    /// True if armed (any mode).
    pub fn is_armed(&self) -> bool {
        self.armed.load(Ordering::Acquire) != DISARMED
    }

    /// Consumes a pending notification (progress thread).
    pub fn take_notify(&self) -> bool {
        self.notify_pending.swap(false, Ordering::AcqRel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use omx_engine::{WcOpcode, WcQueue};
    use omx_wire::Qpn;

    /// A ring that cannot be allocated is `None` (the provider's ENOMEM),
    /// not an abort; the device's largest CQ (4194303 entries) costs
    /// `size_of::<Option<WorkCompletion>>()` bytes an entry.
    #[test]
    fn ring_allocation_is_fallible() {
        assert!(Cq::try_with_clock(1, usize::MAX / 4, None).is_none());
        let cq = Cq::try_with_clock(1, 128_000, None).unwrap();
        assert_eq!(cq.capacity(), 128_000);
        assert!(size_of::<Option<WorkCompletion>>() <= 48);
    }

    /// Polling an empty CQ takes no lock, so a busy-polling application
    /// never holds the ring lock while it waits.
    #[test]
    fn empty_poll_takes_no_lock() {
        let cq = std::sync::Arc::new(Cq::new(1, 4));
        let held = cq.lock();
        let (tx, rx) = std::sync::mpsc::channel();
        let c = cq.clone();
        std::thread::spawn(move || {
            let n = c.poll_with(4, |_, _| ());
            let _ = tx.send((n, c.poll_one().is_none(), c.len()));
        });
        let got = rx.recv_timeout(std::time::Duration::from_secs(10));
        drop(held);
        assert_eq!(got, Ok((0, true, 0)), "an empty poll waited for the lock");
        let wc = WorkCompletion {
            wr_id: 5,
            status: WcStatus::Success,
            opcode: WcOpcode::Send,
            queue: WcQueue::Send,
            byte_len: 0,
            imm: None,
            inv: None,
            qp_num: Qpn::new(1),
            src_qp: Qpn::new(2),
            solicited: false,
            grh: false,
            sl: 0,
        };
        let _ = cq.push(wc);
        assert_eq!(cq.len(), 1);
        let mut got = Vec::new();
        assert_eq!(cq.poll_with(4, |i, w| got.push((i, w.wr_id))), 1);
        assert_eq!(got, [(0, 5)]);
        assert_eq!(cq.len(), 0);
    }

    fn wc(id: u64, solicited: bool) -> WorkCompletion {
        WorkCompletion {
            wr_id: id,
            status: WcStatus::Success,
            opcode: WcOpcode::Recv,
            queue: WcQueue::Recv,
            byte_len: 0,
            imm: None,
            inv: None,
            qp_num: Qpn::new(1),
            src_qp: Qpn::new(2),
            solicited,
            grh: false,
            sl: 0,
        }
    }

    #[test]
    fn ring_fifo_wraps_and_overflows() {
        let cq = Cq::new(1, 3);
        let mut out = [wc(0, false); 4];
        for round in 0..5u64 {
            assert!(!cq.push(wc(round * 10, false)).notify());
            assert!(!cq.push(wc(round * 10 + 1, false)).notify());
            assert_eq!(cq.poll(&mut out[..1]), 1);
            assert_eq!(out[0].wr_id, round * 10);
            assert_eq!(cq.poll(&mut out), 1);
            assert_eq!(out[0].wr_id, round * 10 + 1);
        }
        for i in 0..3 {
            assert_eq!(cq.push(wc(i, false)), Pushed::Queued { notify: false });
        }
        assert_eq!(cq.overflows(), 0);
        assert_eq!(cq.poll(&mut out), 3);
        assert_eq!([out[0].wr_id, out[1].wr_id, out[2].wr_id], [0, 1, 2]);
        assert!(cq.is_empty());
    }

    /// A completion that finds the ring full is dropped, loudly: the CQ is
    /// in error for good (CQ_ERR pending once), and every later push is
    /// refused too, even with room, so the QPs completing into it move
    /// to ERROR instead of going on as if nothing was lost.
    #[test]
    fn an_overrun_puts_the_cq_in_error_for_good() {
        let cq = Cq::new(1, 2);
        let mut out = [wc(0, false); 4];
        let _ = cq.push(wc(1, false));
        let _ = cq.push(wc(2, false));
        assert!(!cq.in_error() && !cq.take_error_event());
        assert_eq!(cq.push(wc(3, false)), Pushed::Overrun { first: true });
        assert!(cq.in_error());
        assert_eq!(cq.overflows(), 1);
        // What was in the ring can still be polled.
        assert_eq!(cq.poll(&mut out), 2);
        assert_eq!(cq.push(wc(4, false)), Pushed::Overrun { first: false });
        assert_eq!(cq.overflows(), 2);
        assert!(cq.take_error_event(), "one CQ_ERR");
        assert!(!cq.take_error_event());
        assert_eq!(cq.poll(&mut out), 0);
    }

    #[test]
    fn arm_fires_once() {
        let cq = Cq::new(1, 8);
        assert!(!cq.push(wc(1, false)).notify(), "not armed: no event");
        let mut out = [wc(0, false); 8];
        cq.poll(&mut out);
        cq.arm(false);
        assert!(cq.push(wc(2, false)).notify());
        assert!(!cq.push(wc(3, false)).notify(), "one event per arm");
        assert!(cq.take_notify());
        assert!(!cq.take_notify());
    }

    #[test]
    fn arming_a_non_empty_cq_waits_for_the_next_completion() {
        let cq = Cq::new(1, 8);
        let _ = cq.push(wc(1, false));
        cq.arm(false);
        assert!(!cq.take_notify(), "the waiting completion raises nothing");
        assert!(cq.is_armed());
        assert!(cq.push(wc(2, false)).notify());
        assert!(cq.take_notify());
        // Solicited-only: unsolicited completions do not fire.
        cq.arm(true);
        assert!(!cq.push(wc(3, false)).notify());
        assert!(cq.push(wc(4, true)).notify());
    }

    #[test]
    fn arm_push_race_never_loses_the_completion() {
        use std::sync::Arc;
        for _ in 0..200 {
            let cq = Arc::new(Cq::new(1, 4));
            let c2 = cq.clone();
            let t = std::thread::spawn(move || c2.push(wc(1, false)).notify());
            cq.arm(false);
            let fired = t.join().unwrap();
            // Either the push came after the arm and raised the event, or
            // it came first and the application's poll after arming finds
            // it; at most one event either way.
            assert_eq!(cq.take_notify(), fired);
            let mut out = [wc(0, false); 4];
            assert_eq!(cq.poll(&mut out), 1);
            assert_eq!(cq.is_armed(), !fired);
        }
    }

    #[test]
    fn timestamps_follow_their_completions() {
        use std::sync::atomic::AtomicU64;
        static T: AtomicU64 = AtomicU64::new(100);
        fn clock() -> Stamp {
            let ts = T.fetch_add(10, Ordering::Relaxed);
            Stamp {
                ts,
                wallclock_ns: ts + 5,
            }
        }
        let cq = Cq::with_clock(1, 2, Some(clock));
        assert!(cq.has_clock() && !Cq::new(1, 2).has_clock());
        assert!(cq.poll_one().is_none());
        let _ = cq.push(wc(1, false));
        let _ = cq.push(wc(2, false));
        let (a, ta) = cq.poll_one().unwrap();
        let _ = cq.push(wc(4, false));
        let (b, tb) = cq.poll_one().unwrap();
        let (c, tc) = cq.poll_one().unwrap();
        assert_eq!((a.wr_id, b.wr_id, c.wr_id), (1, 2, 4));
        assert!(ta.ts < tb.ts && tb.ts < tc.ts);
        // Both clocks of one stamp were read at the same push.
        assert!([ta, tb, tc].iter().all(|t| t.wallclock_ns == t.ts + 5));
        assert!(cq.poll_one().is_none());
        // Without a clock the stamp reads 0.
        let plain = Cq::new(1, 1);
        let _ = plain.push(wc(5, false));
        assert_eq!(
            plain.poll_one().map(|(w, t)| (w.wr_id, t)),
            Some((5, Stamp::default()))
        );
    }
}
