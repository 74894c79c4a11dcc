//! Responder-side ACK coalescing and piggybacking (docs/wire.md §10.1).
//!
//! One ACK covers every request packet executed since the last one. It
//! leaves as its own frame when a packet with AckReq was executed (sent at
//! the next `poll_transmit`, so a whole receive batch shares one ACK), when
//! `coalesce` packets are unacknowledged, or when the ACK timer fires; or
//! it rides, as a PAETH, on the next request packet this QP sends.
//!
//! Interactive mode (TCP's delayed-ACK "pingpong" mode): once this QP has
//! sent a request within `hold` of executing a packet with AckReq (the
//! application answers what it receives), an AckReq no longer makes the
//! ACK due at once: it is held up to `hold` for the answer to carry it.
//! A hold that expires (no answer came) or a duplicate request (the
//! requester gave up waiting) ends the mode.

use crate::time::{Duration, Instant};
use crate::timer::{Timer, TimerTable};

#[derive(Debug, Clone)]
pub(crate) struct AckState {
    unacked: u32,
    due: bool,
    coalesce: u32,
    /// `coalesce`, or the current credit grant if that is smaller: the
    /// peer gets new credits once it used up the ones it had.
    limit: u32,
    delay: Duration,
    hold: Duration,
    interactive: bool,
    /// Holding is allowed for the packets executed now (the caller's
    /// choice, see `RcQp::set_ack_hold`).
    hold_allowed: bool,
    /// When the last request packet with AckReq was executed.
    last_ack_req: Option<Instant>,
    /// Copies of the ACK still to send after the next one (the last word
    /// of a QP that goes away, see `flush_final`).
    extra_copies: u8,
}

/// Copies of its last ACK a QP that goes away sends after the first.
pub(crate) const FINAL_ACK_EXTRA_COPIES: u8 = 2;

impl AckState {
    pub(crate) fn new(coalesce: u32, delay: Duration, hold: Duration) -> Self {
        AckState {
            unacked: 0,
            due: false,
            coalesce: coalesce.max(1),
            limit: coalesce.max(1),
            delay,
            hold,
            interactive: false,
            hold_allowed: true,
            last_ack_req: None,
            extra_copies: 0,
        }
    }

    /// The QP grants `credits` now (`RcQp::set_credit_grant`).
    pub(crate) fn set_grant(&mut self, credits: u32) {
        self.limit = self.coalesce.min(credits).max(1);
    }

    /// See `RcQp::set_ack_hold`.
    pub(crate) fn set_hold_allowed(&mut self, allowed: bool) {
        self.hold_allowed = allowed;
    }

    /// Longest hold in interactive mode (the owner caps it below the
    /// transport timer).
    pub(crate) fn set_hold(&mut self, hold: Duration) {
        self.hold = hold;
    }

    /// Forgets everything (modify to RESET).
    pub(crate) fn reset(&mut self, timers: &mut TimerTable) {
        self.extra_copies = 0;
        self.sent(timers);
        self.interactive = false;
        self.last_ack_req = None;
    }

    /// A request packet was executed.
    pub(crate) fn on_executed(&mut self, ack_req: bool, now: Instant, timers: &mut TimerTable) {
        self.unacked += 1;
        if ack_req {
            self.last_ack_req = Some(now);
        }
        if self.unacked >= self.limit {
            self.due = true;
        } else if self.interactive && self.hold_allowed {
            timers.set_if_stopped(Timer::Ack, now + self.hold);
        } else if ack_req {
            self.due = true;
        } else {
            timers.set_if_stopped(Timer::Ack, now + self.delay);
        }
    }

    /// A duplicate arrived: the requester probably lost our ACK, or
    /// waited too long for it.
    pub(crate) fn force(&mut self) {
        self.due = true;
        self.interactive = false;
    }

    /// The application moves the QP to ERROR or destroys it: its
    /// cumulative ACK goes now, if it owes one or ever sent one
    /// (`acked_before`), and [`FINAL_ACK_EXTRA_COPIES`] times more. Once
    /// the QP is gone no retransmission can ask for that ACK again, and
    /// the peer's last request then fails with RETRY_EXC_ERR if the one
    /// copy is lost (the end of every `ibv_rc_pingpong` run: its last
    /// answer is acknowledged only when the peer destroys its QP). A
    /// repeated ACK is a no-op for the requester.
    pub(crate) fn flush_final(&mut self, acked_before: bool) {
        if self.unacked > 0 || acked_before {
            self.due = true;
            self.extra_copies = FINAL_ACK_EXTRA_COPIES;
        }
    }

    /// The ACK timer fired: whatever is unacknowledged goes now, and if it
    /// was held for an answer that did not come, holding stops.
    pub(crate) fn on_timer(&mut self) {
        if self.unacked > 0 {
            self.due = true;
            self.interactive = false;
        }
    }

    /// An ACK should be sent now.
    pub(crate) fn is_due(&self) -> bool {
        self.due
    }

    /// Something is executed and not yet acknowledged.
    pub(crate) fn owed(&self) -> bool {
        self.unacked > 0
    }

    /// Holding ACKs for answers.
    #[cfg(test)]
    pub(crate) fn interactive(&self) -> bool {
        self.interactive
    }

    /// An ACK is being held for the application's answer.
    pub(crate) fn holding(&self) -> bool {
        self.interactive && self.unacked > 0 && !self.due
    }

    /// This QP sent a request packet at `now`: if it answers a packet with
    /// AckReq executed within `hold`, the application answers what it
    /// receives, and later ACKs are held for the answer.
    pub(crate) fn request_sent(&mut self, now: Instant) {
        if self
            .last_ack_req
            .is_some_and(|t| now.saturating_duration_since(t) <= self.hold)
        {
            self.interactive = true;
        }
    }

    /// An ACK, NAK, READ response or piggybacked ACK covering everything
    /// executed was sent.
    pub(crate) fn sent(&mut self, timers: &mut TimerTable) {
        self.unacked = 0;
        self.due = false;
        timers.stop(Timer::Ack);
        if self.extra_copies > 0 {
            self.extra_copies -= 1;
            self.due = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(us: u64) -> Instant {
        Instant::from_micros(us)
    }

    #[test]
    fn ack_req_is_due_at_once_until_the_application_answers() {
        let mut tt = TimerTable::default();
        let mut a = AckState::new(32, Duration::from_micros(20), Duration::from_millis(10));
        a.on_executed(true, t(100), &mut tt);
        assert!(a.is_due());
        a.sent(&mut tt);
        // The application answers 50 us later: interactive from now on.
        a.request_sent(t(150));
        assert!(a.interactive());
        a.on_executed(true, t(200), &mut tt);
        assert!(!a.is_due(), "held for the answer");
        assert!(a.owed());
        assert_eq!(tt.get(Timer::Ack), Some(t(10_200)));
        // The answer carries it.
        a.request_sent(t(260));
        a.sent(&mut tt);
        assert_eq!(tt.get(Timer::Ack), None);
        assert!(!a.owed());
        // No answer this time: the hold expires, the ACK goes alone and
        // holding stops.
        a.on_executed(true, t(300), &mut tt);
        assert!(!a.is_due());
        assert!(tt.is_expired(Timer::Ack, t(10_300)));
        a.on_timer();
        assert!(a.is_due());
        assert!(!a.interactive());
        a.sent(&mut tt);
        a.on_executed(true, t(20_000), &mut tt);
        assert!(a.is_due());
    }

    #[test]
    fn a_late_answer_does_not_start_holding() {
        let mut tt = TimerTable::default();
        let mut a = AckState::new(32, Duration::from_micros(20), Duration::from_millis(10));
        a.on_executed(true, t(0), &mut tt);
        a.request_sent(t(10_001));
        assert!(!a.interactive());
        // A request with nothing executed before does not either.
        let mut b = AckState::new(32, Duration::from_micros(20), Duration::from_millis(10));
        b.request_sent(t(5));
        assert!(!b.interactive());
    }

    #[test]
    fn no_hold_when_the_caller_forbids_it() {
        let mut tt = TimerTable::default();
        let mut a = AckState::new(32, Duration::from_micros(20), Duration::from_millis(10));
        a.on_executed(true, t(0), &mut tt);
        a.sent(&mut tt);
        a.request_sent(t(1));
        assert!(a.interactive());
        a.set_hold_allowed(false);
        a.on_executed(false, t(10), &mut tt);
        assert!(!a.is_due(), "middle packets still coalesce");
        assert_eq!(tt.get(Timer::Ack), Some(t(30)));
        a.on_executed(true, t(11), &mut tt);
        assert!(a.is_due(), "AckReq answered at once");
        assert!(a.interactive(), "the mode itself stays");
        a.sent(&mut tt);
        a.set_hold_allowed(true);
        a.on_executed(true, t(20), &mut tt);
        assert!(!a.is_due());
        assert!(a.holding());
    }

    #[test]
    fn coalescing_and_duplicates_override_the_hold() {
        let mut tt = TimerTable::default();
        let mut a = AckState::new(4, Duration::from_micros(20), Duration::from_millis(10));
        a.on_executed(true, t(0), &mut tt);
        a.sent(&mut tt);
        a.request_sent(t(1));
        for i in 0..3 {
            a.on_executed(true, t(10 + i), &mut tt);
            assert!(!a.is_due());
        }
        a.on_executed(true, t(20), &mut tt);
        assert!(a.is_due(), "coalesce limit reached");
        a.sent(&mut tt);
        a.on_executed(true, t(30), &mut tt);
        assert!(!a.is_due());
        a.force();
        assert!(a.is_due());
        assert!(!a.interactive());
        a.reset(&mut tt);
        assert!(!a.owed() && !a.is_due());
    }
}
