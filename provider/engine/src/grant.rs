//! Receiver-driven credit grants (docs/wire.md §9).
//!
//! Every RC QP of an endpoint receives into the same ring, so the credits
//! all of them grant their peers together must not exceed what the ring
//! holds, whatever the fan-in. The receiver therefore divides its ring
//! among the QPs that are receiving now (Homa's grants, eRPC's session
//! credits): a QP that received a request in the current or the previous
//! epoch (a ring's worth of request frames, [`ActiveSet`]) is *active*, and each QP grants `ring / active` packets, clamped
//! to [`MIN_GRANT`]..=its own window ([`RcQp::set_credit_grant`]). Idle
//! QPs hold nothing, so one busy QP among a thousand idle ones still gets
//! the whole window. Below [`MIN_GRANT`] per QP (more active QPs than the
//! ring has frames for, two each) the ring is overcommitted; the
//! requester's congestion window and loss recovery take that case.
//!
//! The policies here are pure; the provider's endpoint keeps the same
//! counts in atomics (`omx_verbs::Endpoint`), the deterministic fabric of
//! the engine's tests in plain fields.
//!
//! [`RcQp::set_credit_grant`]: crate::RcQp::set_credit_grant

use crate::time::{Duration, Instant};

/// Longest activity epoch. An epoch normally ends once the receiver took
/// as many request frames as its ring holds; this bound only makes an
/// idle receiver forget. It must be longer than the ring takes to drain
/// on a slow host, or the count misses QPs whose packets still wait: at
/// 10 ms, a receiver under TCG that drained its 768 frames in ~100 ms
/// counted a third of its 256 senders and overflowed its ring by 24%.
pub const EPOCH: Duration = Duration::from_micros(200_000);

/// Smallest grant: one packet in flight while the ACK of the previous
/// one comes back.
pub const MIN_GRANT: u16 = 2;

/// Whether a frame counts its QP as active: an RC or UC request
/// (credits bound requests only; ACKs and READ responses are bounded by
/// the requests that caused them).
pub fn takes_credit(frame: &[u8]) -> bool {
    omx_wire::Frame::new_checked(frame).is_ok_and(|f| f.opcode().is_request())
}

/// How a receive ring of `ring_frames` frames is granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantPolicy {
    ring_frames: u32,
}

impl GrantPolicy {
    /// The policy of a ring of `ring_frames` frames.
    pub const fn new(ring_frames: u32) -> Self {
        GrantPolicy { ring_frames }
    }

    /// The ring's size in frames: the length of an epoch in frames.
    pub const fn ring_frames(&self) -> u32 {
        self.ring_frames
    }

    /// The credits each of `active` receiving QPs grants (the caller
    /// clamps it to the QP's window): an equal share of the ring, at
    /// least [`MIN_GRANT`].
    pub fn share(&self, active: u32) -> u16 {
        let s = self.ring_frames / active.max(1);
        s.clamp(u32::from(MIN_GRANT), u32::from(u16::MAX)) as u16
    }

    /// Whether the epoch that started at `start` and has seen `frames`
    /// request frames is over at `now`: a ring's worth of frames (every
    /// QP with a packet in the ring was counted in it or in the one
    /// before), or [`EPOCH`] of time (an idle receiver forgets).
    pub fn epoch_over(&self, start: Instant, frames: u32, now: Instant) -> bool {
        frames >= self.ring_frames || now.saturating_duration_since(start) >= EPOCH
    }

    /// Whether an epoch that started at `start` is so old at `now` that
    /// nothing of it counts any more (more than two epochs ago).
    pub fn epoch_stale(&self, start: Instant, now: Instant) -> bool {
        now.saturating_duration_since(start).as_nanos() >= 2 * EPOCH.as_nanos()
    }
}

/// Active-QP counting by epochs, for one receiver: the QPs that received
/// a request in the current epoch and in the previous one; the estimate
/// is the larger count. An epoch lasts a ring's worth of request frames
/// (or [`EPOCH`] at most), so that every QP that may have a packet
/// waiting in the ring is counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ActiveSet {
    /// Epoch number (from 1; a QP's slot starts at 0, never a live one).
    epoch: u64,
    start: Instant,
    frames: u32,
    current: u32,
    previous: u32,
}

impl ActiveSet {
    /// A request frame for the QP whose last-seen epoch is `*seen`
    /// arrived at `now`: ends the epoch if it is over, counts the QP once
    /// per epoch, and returns the number of active QPs.
    pub fn note(&mut self, policy: &GrantPolicy, seen: &mut u64, now: Instant) -> u32 {
        if self.epoch == 0 || policy.epoch_over(self.start, self.frames, now) {
            let stale = self.epoch == 0 || policy.epoch_stale(self.start, now);
            self.previous = if stale { 0 } else { self.current };
            self.current = 0;
            self.frames = 0;
            self.start = now;
            self.epoch += 1;
        }
        self.frames += 1;
        if *seen != self.epoch {
            *seen = self.epoch;
            self.current += 1;
        }
        self.current.max(self.previous)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_divide_the_ring_and_stop_at_the_minimum() {
        let p = GrantPolicy::new(768);
        assert_eq!(p.share(0), 768);
        assert_eq!(p.share(1), 768);
        assert_eq!(p.share(64), 12);
        assert_eq!(p.share(1000), MIN_GRANT);
        assert_eq!(GrantPolicy::new(u32::MAX).share(1), u16::MAX);
    }

    #[test]
    fn an_epoch_is_a_ring_of_frames_and_a_qp_counts_once_in_it() {
        let p = GrantPolicy::new(4);
        let mut a = ActiveSet::default();
        let mut q = [0u64; 3];
        let t = Instant::from_micros(10_000);
        // Epoch 1: q0, q0, q1, q2 (4 frames: the ring).
        assert_eq!(a.note(&p, &mut q[0], t), 1);
        assert_eq!(a.note(&p, &mut q[0], t), 1);
        assert_eq!(a.note(&p, &mut q[1], t), 2);
        assert_eq!(a.note(&p, &mut q[2], t), 3);
        // Epoch 2 (by frames, no time passed): q0 alone, but epoch 1 had 3.
        assert_eq!(a.note(&p, &mut q[0], t), 3);
        for _ in 0..3 {
            assert_eq!(a.note(&p, &mut q[0], t), 3);
        }
        // Epoch 3: epoch 2 had q0 only.
        assert_eq!(a.note(&p, &mut q[1], t), 1);
        // Epoch 4 by time, epoch 3 (q1) still counts.
        assert_eq!(a.note(&p, &mut q[2], t + EPOCH), 1);
        // Silence for two epochs forgets everything.
        let later = t + EPOCH + Duration::from_micros(2 * EPOCH.as_nanos() / 1000);
        assert_eq!(a.note(&p, &mut q[0], later), 1);
    }

    #[test]
    fn the_first_frame_opens_epoch_one() {
        let mut a = ActiveSet::default();
        let mut q = 0;
        assert_eq!(a.note(&GrantPolicy::new(768), &mut q, Instant::ZERO), 1);
        assert_eq!(q, 1);
    }
}
