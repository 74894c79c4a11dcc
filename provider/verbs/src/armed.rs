//! The QP slots that may have a timer deadline: a bitmap of atomics, so
//! that a timer pass costs in proportion to the QPs with a timer running,
//! not to every QP of the endpoint (a context with 1000 connected idle QPs
//! and one busy one visits one QP per pass; issue 14 §2).
//!
//! Who holds it: the [`crate::Endpoint`] (one per context, by value).
//!
//! Locks: none; every operation is a SeqCst atomic, and nothing blocks or
//! allocates after [`Armed::new`]. Whoever publishes a deadline (the drive
//! of a QP, under its lock) stores the deadline first and then
//! [`Armed::mark`]s the slot; the timer pass clears a slot's bit only after
//! it found no deadline, and reads the deadline again after the clear.
//! With SeqCst on the four accesses one of the two sides sees the other, so
//! a deadline published during the pass keeps its bit: a slot with a
//! deadline is never left unmarked. A marked slot without one (its QP was
//! destroyed, or its timer stopped) costs one visit and is cleared then.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

/// One bit per QP slot.
#[derive(Debug)]
pub struct Armed {
    words: Box<[AtomicU64]>,
}

impl Armed {
    /// A set for `slots` slots, none marked.
    pub fn new(slots: usize) -> Self {
        Armed {
            words: (0..slots.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Marks `slot` after its QP published a deadline (a slot outside the
    /// set is ignored). Reads before it writes: a QP whose timer is
    /// re-armed on every post costs no atomic write while it stays marked.
    pub fn mark(&self, slot: usize) {
        let Some(w) = self.words.get(slot / 64) else {
            return;
        };
        let bit = 1u64 << (slot % 64);
        if w.load(SeqCst) & bit == 0 {
            w.fetch_or(bit, SeqCst);
        }
    }

    /// Calls `visit` for every marked slot, in slot order; afterwards a
    /// slot for which `armed` says it has no deadline is unmarked, unless
    /// `armed`, asked again after the unmarking, says one appeared.
    pub fn sweep(&self, mut visit: impl FnMut(usize), armed: impl Fn(usize) -> bool) {
        for (i, w) in self.words.iter().enumerate() {
            let mut bits = w.load(SeqCst);
            while bits != 0 {
                let b = bits.trailing_zeros();
                bits &= bits - 1;
                let slot = i * 64 + b as usize;
                visit(slot);
                if !armed(slot) {
                    w.fetch_and(!(1u64 << b), SeqCst);
                    if armed(slot) {
                        w.fetch_or(1u64 << b, SeqCst);
                    }
                }
            }
        }
    }

    /// Whether `slot` is marked (tests and diagnostics).
    pub fn is_marked(&self, slot: usize) -> bool {
        self.words
            .get(slot / 64)
            .is_some_and(|w| w.load(SeqCst) & (1u64 << (slot % 64)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn sweep_visits_only_marked_slots_and_unmarks_those_without_a_deadline() {
        let a = Armed::new(4096);
        for s in [0, 63, 64, 1000, 4095] {
            a.mark(s);
        }
        a.mark(5000); // outside: ignored
        let mut seen = Vec::new();
        a.sweep(|s| seen.push(s), |s| s == 1000);
        assert_eq!(seen, [0, 63, 64, 1000, 4095]);
        assert!(a.is_marked(1000));
        assert!(!a.is_marked(0) && !a.is_marked(4095));
        let mut seen = Vec::new();
        a.sweep(|s| seen.push(s), |_| true);
        assert_eq!(seen, [1000]);
    }

    #[test]
    fn a_deadline_published_while_the_sweep_unmarks_keeps_its_mark() {
        // The QP's drive publishes a deadline between the sweep's first
        // look (none) and its unmarking: the second look keeps the bit.
        let a = Armed::new(64);
        a.mark(7);
        let looks = Cell::new(0);
        a.sweep(
            |_| {},
            |_| {
                looks.set(looks.get() + 1);
                looks.get() > 1
            },
        );
        assert_eq!(looks.get(), 2);
        assert!(a.is_marked(7));
    }
}
