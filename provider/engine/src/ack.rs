//! Responder-side ACK coalescing (docs/wire.md §10.1).
//!
//! One ACK covers every request packet executed since the last one. It is
//! due when a packet with AckReq was executed (sent at the next
//! `poll_transmit`, so a whole receive batch shares one ACK), when
//! `coalesce` packets are unacknowledged, or when the ACK delay timer
//! fires.

use crate::time::{Duration, Instant};
use crate::timer::{Timer, TimerTable};

#[derive(Debug, Clone)]
pub(crate) struct AckState {
    unacked: u32,
    due: bool,
    coalesce: u32,
    delay: Duration,
}

impl AckState {
    pub(crate) fn new(coalesce: u32, delay: Duration) -> Self {
        AckState {
            unacked: 0,
            due: false,
            coalesce: coalesce.max(1),
            delay,
        }
    }

    /// A request packet was executed.
    pub(crate) fn on_executed(&mut self, ack_req: bool, now: Instant, timers: &mut TimerTable) {
        self.unacked += 1;
        if ack_req || self.unacked >= self.coalesce {
            self.due = true;
        } else {
            timers.set_if_stopped(Timer::Ack, now + self.delay);
        }
    }

    /// A duplicate arrived: the requester probably lost our ACK.
    pub(crate) fn force(&mut self) {
        self.due = true;
    }

    /// The ACK delay timer fired.
    pub(crate) fn on_timer(&mut self) {
        if self.unacked > 0 {
            self.due = true;
        }
    }

    /// An ACK should be sent now.
    pub(crate) fn is_due(&self) -> bool {
        self.due
    }

    /// An ACK, NAK or READ response covering everything executed was sent.
    pub(crate) fn sent(&mut self, timers: &mut TimerTable) {
        self.unacked = 0;
        self.due = false;
        timers.stop(Timer::Ack);
    }
}
