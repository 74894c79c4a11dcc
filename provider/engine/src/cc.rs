//! The requester's pure policies for loss recovery and congestion
//! (docs/wire.md §10.2): the retransmission timeout from the measured
//! round trip (RFC 6298), the congestion window (AIMD, RFC 5681's slow
//! start and congestion avoidance, counted in packets), and when a
//! silent peer is declared gone.
//!
//! Why loss-based AIMD rather than a delay-based control (Timely, Swift)
//! or ECN marks (DCQCN): frames cross veth, bridges and switches that do
//! not mark ECN for EtherType 0x86DF, and round trips through a busy host
//! vary by milliseconds with scheduling, which a delay target would take
//! for congestion. Drops are the one signal every path gives; AIMD
//! converges to a fair share between flows that see the same drops
//! (Chiu and Jain), and the receiver's credit grants (crate::grant) keep
//! the receive ring itself from dropping in the first place.

use crate::time::{Duration, Instant};

/// Smallest retransmission timeout the round trip may set (never above
/// the QP's own transport timer). Scheduling pauses of a few
/// milliseconds are common on a loaded host; a shorter floor would
/// retransmit what is merely late. It is also above the provider's
/// progress-thread sleep while a context is active (10 ms), and half of it
/// (the longest ACK hold) too: the deadline every post arms then never
/// needs a wake-up of that thread. At 4 ms it did, on every message, and
/// `ib_send_lat`/`ib_write_lat` in the TCG bed went from ~38 to ~115 µs.
pub const MIN_RTO: Duration = Duration::from_micros(24_000);

/// Most doublings of the timeout after consecutive expiries: up to 16
/// times the base (a round trip through a ring that takes longer than
/// the transport timer to drain is then measured), so that retransmissions of many QPs that lost their
/// packets together (a ring overflowed at their start) thin out instead
/// of colliding again every timeout.
const MAX_BACKOFF: u32 = 4;

/// RFC 6298's smoothed round trip and variance, and the backoff.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
    backoff: u32,
}

impl RttEstimator {
    /// A round-trip sample (Karn: only from a packet sent once); it ends
    /// any backoff.
    pub(crate) fn sample(&mut self, rtt: Duration) {
        self.backoff = 0;
        let r = rtt.as_nanos();
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = Duration::from_nanos(r / 2);
            }
            Some(s) => {
                let s = s.as_nanos();
                let var = self.rttvar.as_nanos();
                self.rttvar = Duration::from_nanos((3 * var + s.abs_diff(r)) / 4);
                self.srtt = Some(Duration::from_nanos((7 * s + r) / 8));
            }
        }
    }

    /// The base timeout: `srtt + 4·rttvar`, at least [`MIN_RTO`] (or the
    /// transport timer `t`, if that is shorter); `t` itself before the
    /// first sample. Not capped at `t`: a round trip longer than the
    /// transport timer (a peer whose ring takes longer than `t` to drain)
    /// would otherwise make every packet a retransmission.
    pub(crate) fn base(&self, t: Duration) -> Duration {
        let Some(s) = self.srtt else {
            return t;
        };
        let floor = MIN_RTO.as_nanos().min(t.as_nanos());
        Duration::from_nanos(
            s.as_nanos()
                .saturating_add(self.rttvar.as_nanos().saturating_mul(4))
                .max(floor),
        )
    }

    /// The retransmission timeout: the base, doubled per consecutive
    /// expiry (at most `2^MAX_BACKOFF` times). The retries a peer gets
    /// before it is declared gone ([`peer_gone`]) then span more time
    /// than IBTA's `retry_cnt` timeouts, never less.
    pub(crate) fn rto(&self, t: Duration) -> Duration {
        Duration::from_nanos(
            self.base(t)
                .as_nanos()
                .saturating_mul(1u64 << self.backoff.min(MAX_BACKOFF)),
        )
    }

    /// The timer expired without progress.
    pub(crate) fn on_timeout(&mut self) {
        self.backoff = (self.backoff + 1).min(MAX_BACKOFF);
    }

    /// The smoothed round trip, if measured.
    pub(crate) fn srtt(&self) -> Option<Duration> {
        self.srtt
    }
}

/// Whether the peer is gone, at an expiry of the transport timer: the
/// timer expired `retry_cnt + 1` times (`retries_left` is 0) since the
/// peer last said something that shows it alive (an ACK, a response, an
/// RNR NAK; not a sequence NAK), and that was at least `retry_cnt + 1`
/// times `unit` ago: IBTA's `retry_cnt` retries, a timeout apart, before
/// IBV_WC_RETRY_EXC_ERR, however short the round trip's timeout made the
/// retransmissions. `unit` is the transport timer, or the round trip's
/// base timeout if that is longer (a slow peer is not a dead one).
pub(crate) fn peer_gone(
    now: Instant,
    heard: Instant,
    unit: Duration,
    retry_cnt: u8,
    retries_left: u8,
) -> bool {
    let silent = now.saturating_duration_since(heard).as_nanos();
    retries_left == 0 && silent >= unit.as_nanos().saturating_mul(u64::from(retry_cnt) + 1)
}

/// What a requester knew when it declared its peer gone
/// (IBV_WC_RETRY_EXC_ERR), for diagnostics (`OMX_STATS`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GoneReport {
    /// How long the peer had been silent (ns).
    pub silent_ns: u64,
    /// The silence unit: the transport timer or the round trip's base
    /// timeout, if longer (ns); the budget is `retry_cnt + 1` of them.
    pub unit_ns: u64,
    /// Smoothed round trip (ns), 0 if never measured.
    pub srtt_ns: u64,
    /// Retransmission timeout at that moment (ns).
    pub rto_ns: u64,
    /// Congestion window (packets).
    pub cwnd: u32,
    /// Packets outstanding (from the oldest unacknowledged one).
    pub outstanding: u32,
    /// Credits left beyond the next PSN to send (negative: blocked).
    pub credits_left: i32,
}

/// SplitMix64's finalizer: a well-spread 64-bit value from any input
/// (the retransmission timer's jitter; not for anything secret).
pub(crate) fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Smallest congestion window (packets).
pub(crate) const MIN_CWND: u32 = 2;
/// Largest congestion window (no path needs more than the largest
/// receive window many times over).
pub(crate) const MAX_CWND: u32 = 1 << 16;
/// Congestion window of a new QP: unlimited, as DCQCN and IRN start at
/// line rate. Until the first loss only the receiver's credits bound a
/// QP (and they are the receiver's share of its ring, crate::grant).
pub(crate) const INITIAL_CWND: u32 = MAX_CWND;

/// The congestion window in packets: slow start up to `ssthresh`, then
/// one packet per window of ACKed packets; halved on a loss, once per
/// window of data (NewReno's recovery point), and back to
/// [`MIN_CWND`] on a timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cwnd {
    cwnd: u32,
    ssthresh: u32,
    /// ACKed packets towards the next increase in congestion avoidance.
    acc: u32,
    /// Packets sent when the window was last cut; until that many more
    /// were acknowledged, further losses belong to the same event.
    recovering: u32,
}

impl Default for Cwnd {
    fn default() -> Self {
        Cwnd {
            cwnd: INITIAL_CWND,
            ssthresh: MAX_CWND,
            acc: 0,
            recovering: 0,
        }
    }
}

impl Cwnd {
    /// The window (packets).
    pub(crate) fn get(&self) -> u32 {
        self.cwnd
    }

    /// `n` packets were newly acknowledged.
    pub(crate) fn on_ack(&mut self, n: u32) {
        self.recovering = self.recovering.saturating_sub(n);
        if self.cwnd < self.ssthresh {
            self.cwnd = (self.cwnd + n).min(self.ssthresh);
            return;
        }
        self.acc += n;
        if self.acc >= self.cwnd {
            self.acc -= self.cwnd;
            self.cwnd = (self.cwnd + 1).min(MAX_CWND);
        }
    }

    /// A loss was detected (a sequence NAK or a gap in responses) with
    /// `inflight` packets outstanding.
    pub(crate) fn on_loss(&mut self, inflight: u32) {
        if self.recovering > 0 {
            return;
        }
        self.ssthresh = (inflight.min(self.cwnd) / 2).max(MIN_CWND);
        self.cwnd = self.ssthresh;
        self.acc = 0;
        self.recovering = inflight.max(1);
    }

    /// The retransmission timer expired.
    pub(crate) fn on_timeout(&mut self, inflight: u32) {
        if self.recovering == 0 {
            self.ssthresh = (inflight.min(self.cwnd) / 2).max(MIN_CWND);
        }
        self.cwnd = MIN_CWND;
        self.acc = 0;
        self.recovering = inflight.max(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn rto_follows_rfc_6298_with_its_floor_and_backoff() {
        let t = Duration::from_millis(67);
        let mut r = RttEstimator::default();
        assert_eq!(r.rto(t), t, "no sample: the transport timer");
        r.on_timeout();
        assert_eq!(r.rto(t).as_nanos(), 2 * t.as_nanos(), "doubled");
        r.sample(Duration::from_millis(10));
        // srtt 10 ms, rttvar 5 ms: 30 ms.
        assert_eq!(r.rto(t).as_nanos(), 30 * MS);
        for _ in 0..50 {
            r.sample(Duration::from_micros(100));
        }
        assert_eq!(r.rto(t), MIN_RTO, "a fast path stops at the floor");
        assert_eq!(
            r.rto(Duration::from_millis(1)).as_nanos(),
            MS,
            "or at a shorter timer"
        );
        r.on_timeout();
        assert_eq!(r.rto(t).as_nanos(), 2 * MIN_RTO.as_nanos());
        for _ in 0..40 {
            r.on_timeout();
        }
        assert_eq!(
            r.rto(t).as_nanos(),
            16 * MIN_RTO.as_nanos(),
            "at most 16 times"
        );
        r.sample(Duration::from_micros(100));
        assert_eq!(r.rto(t), MIN_RTO, "a new sample ends the backoff");
        // A slow peer: the timeout grows with it, past the timer.
        for _ in 0..50 {
            r.sample(Duration::from_millis(130));
        }
        assert!(r.base(t).as_nanos() >= 129 * MS);
        r.on_timeout();
        assert_eq!(r.rto(t).as_nanos(), 2 * r.base(t).as_nanos());
        assert_eq!(r.srtt().map(|s| s.as_nanos() / MS), Some(129));
    }

    #[test]
    fn the_peer_is_gone_after_its_retries_and_the_silence_ibta_allows() {
        let t = Duration::from_millis(67);
        let heard = Instant::from_micros(1_000);
        let at = |ms: u64| heard + Duration::from_millis(ms);
        assert!(!peer_gone(at(535), heard, t, 7, 0), "too soon");
        assert!(peer_gone(at(536), heard, t, 7, 0));
        assert!(!peer_gone(at(5000), heard, t, 7, 1), "a retry left");
        assert!(!peer_gone(at(66), heard, t, 0, 0));
        assert!(peer_gone(at(67), heard, t, 0, 0));
        assert!(!peer_gone(heard, at(5), t, 0, 0), "heard after now");
    }

    #[test]
    fn cwnd_slow_starts_halves_once_per_event_and_collapses_on_timeout() {
        let mut c = Cwnd::default();
        assert_eq!(c.get(), INITIAL_CWND);
        c.on_loss(64);
        assert_eq!(c.get(), 32, "the first loss halves what was in flight");
        c.on_ack(64);
        c.on_loss(32);
        assert_eq!(c.get(), 16);
        c.on_loss(32);
        assert_eq!(c.get(), 16, "the same loss event");
        c.on_ack(32);
        assert_eq!(c.get(), 17, "congestion avoidance: one packet per window");
        c.on_loss(17);
        assert_eq!(c.get(), 8);
        c.on_timeout(8);
        assert_eq!(c.get(), MIN_CWND);
        c.on_ack(2);
        assert_eq!(c.get(), 4, "slow start again");
        c.on_ack(6);
        assert_eq!(c.get(), 8, "up to ssthresh");
        for _ in 0..100 {
            c.on_loss(1);
            c.on_ack(1);
        }
        assert!(c.get() >= MIN_CWND);
        let mut big = Cwnd::default();
        for _ in 0..100 {
            big.on_ack(MAX_CWND);
        }
        assert_eq!(big.get(), MAX_CWND);
    }
}
