//! 24-bit packet sequence numbers and queue pair numbers.

/// Number of distinct PSNs.
pub const PSN_MODULUS: u32 = 1 << 24;
const MASK: u32 = PSN_MODULUS - 1;

/// A 24-bit packet sequence number with modular (serial number)
/// arithmetic: `a` is before `b` iff `(b - a) mod 2^24` is in `1..2^23`.
///
/// Two kinds of comparison, never mixed (docs/wire.md §10):
/// - between PSNs of different packets in flight (a window of at most
///   2^16 PSNs): the signed [`Psn::diff`] / [`Psn::before`];
/// - inside one message, which may span up to 2^23 PSNs (2^31 bytes at
///   path MTU 256): the unsigned [`Psn::offset_from`] the message's first
///   PSN, or [`Psn::within`], which are right for any span up to 2^24.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Psn(u32);

impl Psn {
    /// Builds a PSN from the low 24 bits of `v`.
    #[inline]
    pub const fn new(v: u32) -> Self {
        Psn(v & MASK)
    }

    /// The 24-bit value.
    #[inline]
    pub const fn value(self) -> u32 {
        self.0
    }

    /// `self + n` modulo 2^24.
    #[inline]
    #[must_use]
    pub const fn add(self, n: u32) -> Self {
        Psn(self.0.wrapping_add(n) & MASK)
    }

    /// `self - n` modulo 2^24.
    #[inline]
    #[must_use]
    pub const fn sub(self, n: u32) -> Self {
        Psn(self.0.wrapping_sub(n) & MASK)
    }

    /// Signed distance `self - other` in `-2^23..2^23`.
    #[inline]
    pub const fn diff(self, other: Psn) -> i32 {
        ((self.0.wrapping_sub(other.0) << 8) as i32) >> 8
    }

    /// Unsigned distance `(self - first) mod 2^24`, in `0..2^24`: the
    /// index of `self` in a sequence of PSNs that starts at `first`.
    #[inline]
    pub const fn offset_from(self, first: Psn) -> u32 {
        self.0.wrapping_sub(first.0) & MASK
    }

    /// True if `self` is one of the `n` PSNs `first, first + 1, ...,
    /// first + n - 1` (modulo 2^24; `n` up to 2^24).
    #[inline]
    pub const fn within(self, first: Psn, n: u32) -> bool {
        self.offset_from(first) < n
    }

    /// True if `self` comes strictly before `other`.
    #[inline]
    pub const fn before(self, other: Psn) -> bool {
        self.diff(other) < 0
    }

    /// The later of two PSNs in modular order.
    #[inline]
    #[must_use]
    pub const fn max(self, other: Psn) -> Psn {
        if self.before(other) {
            other
        } else {
            self
        }
    }
}

/// A 24-bit queue pair number: `endpoint << 12 | slot` (kmod-shim ABI).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Qpn(u32);

impl Qpn {
    /// Builds a QPN from the low 24 bits of `v`.
    #[inline]
    pub const fn new(v: u32) -> Self {
        Qpn(v & MASK)
    }

    /// The 24-bit value.
    #[inline]
    pub const fn value(self) -> u32 {
        self.0
    }

    /// The endpoint (owning user context) this QPN belongs to.
    #[inline]
    pub const fn endpoint(self) -> u32 {
        self.0 >> crate::QPN_SLOT_BITS
    }

    /// The QP slot inside its endpoint.
    #[inline]
    pub const fn slot(self) -> u32 {
        self.0 & ((1 << crate::QPN_SLOT_BITS) - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraparound() {
        let a = Psn::new(0xFF_FFFF);
        assert_eq!(a.add(1), Psn::new(0));
        assert_eq!(Psn::new(0).sub(1), a);
        assert_eq!(Psn::new(2).diff(a), 3);
        assert_eq!(a.diff(Psn::new(2)), -3);
        assert!(a.before(Psn::new(0)));
        assert!(!Psn::new(0).before(a));
        assert_eq!(a.max(Psn::new(1)), Psn::new(1));
        assert_eq!(Psn::new(0x80_0000).diff(Psn::new(0)), -0x80_0000);
    }

    /// Inside one message the index of a PSN is unsigned: a message of
    /// 2^23 PSNs (2^31 bytes at path MTU 256) that crosses the wrap still
    /// contains its last PSN and nothing after it.
    #[test]
    fn offsets_inside_a_message() {
        let first = Psn::new(0xFF_FFF0);
        let n = 1 << 23;
        let last = first.add(n - 1);
        assert_eq!(last.offset_from(first), n - 1);
        assert!(last.within(first, n));
        assert!(!first.add(n).within(first, n));
        assert!(!first.sub(1).within(first, n));
        assert_eq!(first.sub(1).offset_from(first), 0xFF_FFFF);
        assert_eq!(first.add(0x80_0000).offset_from(first), 0x80_0000);
        // The whole PSN space.
        assert!(first.sub(1).within(first, 1 << 24));
        assert!(!first.within(first, 0));
    }

    #[test]
    fn qpn_split() {
        let q = Qpn::new(0x12_3456);
        assert_eq!(q.endpoint(), 0x123);
        assert_eq!(q.slot(), 0x456);
        assert_eq!(Qpn::new(0xFF12_3456), q);
    }
}
