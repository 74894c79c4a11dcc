//! Extension headers (docs/wire.md §4): RETH, AtomicETH, AETH with its
//! syndrome, ImmDt/IETH (plain `u32`s), AtomicAckETH (a plain `u64`),
//! and the DETH of UD datagrams (§13).
//!
//! Each `parse` takes the header's bytes (at least its length) and each
//! `emit` writes into at least its length; both return
//! [`Error::Truncated`] on a short slice instead of panicking.

use crate::opcode::enum_with_unknown;
use crate::{Error, Result};

pub(crate) const RETH_LEN: usize = reth_field::DMA_LEN.end;
pub(crate) const ATOMIC_ETH_LEN: usize = atomic_field::COMPARE.end;
pub(crate) const AETH_LEN: usize = aeth_field::RESERVED.end;
pub(crate) const ATOMIC_ACK_LEN: usize = 8;
pub(crate) const PAETH_LEN: usize = paeth_field::RESERVED.end;
pub(crate) const DETH_LEN: usize = deth_field::SGID.end;

mod reth_field {
    use core::ops::Range;
    pub const VA: Range<usize> = 0..8;
    pub const RKEY: Range<usize> = 8..12;
    pub const DMA_LEN: Range<usize> = 12..16;
}

mod atomic_field {
    use core::ops::Range;
    pub const VA: Range<usize> = 0..8;
    pub const RKEY: Range<usize> = 8..12;
    pub const SWAP_ADD: Range<usize> = 12..20;
    pub const COMPARE: Range<usize> = 20..28;
}

mod aeth_field {
    use core::ops::Range;
    pub const SYNDROME: usize = 0;
    pub const MSN: Range<usize> = 1..4;
    pub const CREDITS: Range<usize> = 4..6;
    pub const RESERVED: Range<usize> = 6..8;
}

mod paeth_field {
    use core::ops::Range;
    pub const PSN: Range<usize> = 0..4;
    pub const CREDITS: Range<usize> = 4..6;
    pub const RESERVED: Range<usize> = 6..8;
}

mod deth_field {
    use core::ops::Range;
    pub const QKEY: Range<usize> = 0..4;
    pub const TRAFFIC_CLASS: usize = 4;
    pub const HOP_LIMIT: usize = 5;
    pub const RESERVED: Range<usize> = 6..8;
    pub const SGID: Range<usize> = 8..24;
}

#[inline]
fn be_u16(b: &[u8]) -> u16 {
    let mut a = [0u8; 2];
    a.copy_from_slice(b);
    u16::from_be_bytes(a)
}

#[inline]
fn be_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(b);
    u32::from_be_bytes(a)
}

#[inline]
fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    u64::from_be_bytes(a)
}

/// Reads a big-endian `u32` (ImmDt, IETH) from the first 4 bytes.
pub(crate) fn parse_u32(b: &[u8]) -> Result<u32> {
    b.get(..4).map(be_u32).ok_or(Error::Truncated)
}

/// Reads a big-endian `u64` (AtomicAckETH) from the first 8 bytes.
pub(crate) fn parse_u64(b: &[u8]) -> Result<u64> {
    b.get(..8).map(be_u64).ok_or(Error::Truncated)
}

/// RDMA extended transport header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reth {
    /// Remote virtual address.
    pub va: u64,
    /// Remote key.
    pub rkey: u32,
    /// Length of the whole RDMA operation.
    pub dma_len: u32,
}

impl Reth {
    /// Header length.
    pub const LEN: usize = RETH_LEN;

    /// Parses the first [`Reth::LEN`] bytes of `b`.
    pub fn parse(b: &[u8]) -> Result<Self> {
        let b = b.get(..Self::LEN).ok_or(Error::Truncated)?;
        Ok(Reth {
            va: be_u64(&b[reth_field::VA]),
            rkey: be_u32(&b[reth_field::RKEY]),
            dma_len: be_u32(&b[reth_field::DMA_LEN]),
        })
    }

    /// Writes the header into the first [`Reth::LEN`] bytes of `b`.
    pub fn emit(&self, b: &mut [u8]) -> Result<()> {
        let b = b.get_mut(..Self::LEN).ok_or(Error::Truncated)?;
        b[reth_field::VA].copy_from_slice(&self.va.to_be_bytes());
        b[reth_field::RKEY].copy_from_slice(&self.rkey.to_be_bytes());
        b[reth_field::DMA_LEN].copy_from_slice(&self.dma_len.to_be_bytes());
        Ok(())
    }
}

/// Piggybacked ACK extended transport header (docs/wire.md §4.6): a
/// positive ACK of the *reverse* direction carried by a request packet,
/// present when the BTH flag P is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Paeth {
    /// Every request PSN up to and including this one was executed.
    pub psn: crate::Psn,
    /// Receive window in packets counted from `psn + 1`, as `AETH.credits`.
    pub credits: u16,
}

impl Paeth {
    /// Header length.
    pub const LEN: usize = PAETH_LEN;

    /// Parses the first [`Paeth::LEN`] bytes of `b`. The reserved bytes
    /// (abs byte 0 of the PSN word, and 6..8) are ignored.
    pub fn parse(b: &[u8]) -> Result<Self> {
        let b = b.get(..Self::LEN).ok_or(Error::Truncated)?;
        Ok(Paeth {
            psn: crate::Psn::new(be_u32(&b[paeth_field::PSN])),
            credits: be_u16(&b[paeth_field::CREDITS]),
        })
    }

    /// Writes the header into the first [`Paeth::LEN`] bytes of `b`
    /// (reserved bytes zero).
    pub fn emit(&self, b: &mut [u8]) -> Result<()> {
        let b = b.get_mut(..Self::LEN).ok_or(Error::Truncated)?;
        b[paeth_field::PSN].copy_from_slice(&self.psn.value().to_be_bytes());
        b[paeth_field::CREDITS].copy_from_slice(&self.credits.to_be_bytes());
        b[paeth_field::RESERVED].fill(0);
        Ok(())
    }
}

/// Datagram extended transport header of a UD packet (docs/wire.md
/// §13.2): IBTA's DETH (Q_Key; the source QPN is in our BTH) plus what
/// the receiver needs to write a real GRH in front of the message: the
/// sender's GID, traffic class and hop limit. Present exactly on UD
/// packets, right after the BTH.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Deth {
    /// Q_Key the sender addressed (the destination QP drops the packet
    /// unless it is its own).
    pub qkey: u32,
    /// Traffic class of the sender's address handle (GRH field).
    pub traffic_class: u8,
    /// Hop limit of the sender's address handle (GRH field).
    pub hop_limit: u8,
    /// The sender's GID (the GRH's source GID): 16 bytes as in
    /// `ibv_gid`, an IPv4-mapped `::ffff:a.b.c.d` for an IPv4 address.
    pub sgid: [u8; 16],
}

impl Deth {
    /// Header length.
    pub const LEN: usize = DETH_LEN;

    /// Parses the first [`Deth::LEN`] bytes of `b` (the reserved bytes
    /// 6..8 are ignored).
    pub fn parse(b: &[u8]) -> Result<Self> {
        let b = b.get(..Self::LEN).ok_or(Error::Truncated)?;
        let mut sgid = [0u8; 16];
        sgid.copy_from_slice(&b[deth_field::SGID]);
        Ok(Deth {
            qkey: be_u32(&b[deth_field::QKEY]),
            traffic_class: b[deth_field::TRAFFIC_CLASS],
            hop_limit: b[deth_field::HOP_LIMIT],
            sgid,
        })
    }

    /// Writes the header into the first [`Deth::LEN`] bytes of `b`
    /// (reserved bytes zero).
    pub fn emit(&self, b: &mut [u8]) -> Result<()> {
        let b = b.get_mut(..Self::LEN).ok_or(Error::Truncated)?;
        b[deth_field::QKEY].copy_from_slice(&self.qkey.to_be_bytes());
        b[deth_field::TRAFFIC_CLASS] = self.traffic_class;
        b[deth_field::HOP_LIMIT] = self.hop_limit;
        b[deth_field::RESERVED].fill(0);
        b[deth_field::SGID].copy_from_slice(&self.sgid);
        Ok(())
    }
}

/// Atomic extended transport header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AtomicEth {
    /// Remote virtual address (8-byte aligned).
    pub va: u64,
    /// Remote key.
    pub rkey: u32,
    /// Swap value (compare-and-swap) or addend (fetch-and-add).
    pub swap_add: u64,
    /// Compare value (compare-and-swap).
    pub compare: u64,
}

impl AtomicEth {
    /// Header length.
    pub const LEN: usize = ATOMIC_ETH_LEN;

    /// Parses the first [`AtomicEth::LEN`] bytes of `b`.
    pub fn parse(b: &[u8]) -> Result<Self> {
        let b = b.get(..Self::LEN).ok_or(Error::Truncated)?;
        Ok(AtomicEth {
            va: be_u64(&b[atomic_field::VA]),
            rkey: be_u32(&b[atomic_field::RKEY]),
            swap_add: be_u64(&b[atomic_field::SWAP_ADD]),
            compare: be_u64(&b[atomic_field::COMPARE]),
        })
    }

    /// Writes the header into the first [`AtomicEth::LEN`] bytes of `b`.
    pub fn emit(&self, b: &mut [u8]) -> Result<()> {
        let b = b.get_mut(..Self::LEN).ok_or(Error::Truncated)?;
        b[atomic_field::VA].copy_from_slice(&self.va.to_be_bytes());
        b[atomic_field::RKEY].copy_from_slice(&self.rkey.to_be_bytes());
        b[atomic_field::SWAP_ADD].copy_from_slice(&self.swap_add.to_be_bytes());
        b[atomic_field::COMPARE].copy_from_slice(&self.compare.to_be_bytes());
        Ok(())
    }
}

enum_with_unknown! {
    /// NAK codes (syndrome bits 4..0 when bits 7..5 = 011), IBTA 9.7.5.2.
    pub enum NakCode {
        /// PSN sequence error: BTH.psn is the responder's expected PSN.
        PsnSequenceError = 0,
        /// Invalid request.
        InvalidRequest = 1,
        /// Remote access error.
        RemoteAccessError = 2,
        /// Remote operational error.
        RemoteOperationalError = 3,
        /// Invalid RD request (never sent).
        InvalidRdRequest = 4,
    }
}

/// ACK credit-count bits meaning "no IBTA end-to-end credit information".
pub const ACK_CREDIT_INVALID: u8 = 0x1F;

/// AETH syndrome (IBTA 9.7.5.2, table 43).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Syndrome {
    /// Positive acknowledgement.
    Ack,
    /// Receiver not ready; the 5-bit RNR timer code (IBTA table 45).
    RnrNak(u8),
    /// Negative acknowledgement.
    Nak(NakCode),
}

impl Syndrome {
    /// Decodes a syndrome byte; reserved classes are malformed.
    pub fn from_byte(b: u8) -> Result<Self> {
        let low = b & 0x1F;
        match b >> 5 {
            0 => Ok(Syndrome::Ack),
            1 => Ok(Syndrome::RnrNak(low)),
            3 => Ok(Syndrome::Nak(NakCode::from(low))),
            _ => Err(Error::Malformed),
        }
    }

    /// Encodes the syndrome byte.
    pub fn to_byte(self) -> u8 {
        match self {
            Syndrome::Ack => ACK_CREDIT_INVALID,
            Syndrome::RnrNak(t) => 0x20 | (t & 0x1F),
            Syndrome::Nak(c) => 0x60 | (u8::from(c) & 0x1F),
        }
    }
}

/// ACK extended transport header with the credit field (docs/wire.md §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aeth {
    /// ACK, RNR NAK or NAK.
    pub syndrome: Syndrome,
    /// Message sequence number (24 bits).
    pub msn: u32,
    /// Receive window in packets after BTH.psn (docs/wire.md §9).
    pub credits: u16,
}

impl Aeth {
    /// Header length.
    pub const LEN: usize = AETH_LEN;

    /// Parses the first [`Aeth::LEN`] bytes of `b`.
    pub fn parse(b: &[u8]) -> Result<Self> {
        let b = b.get(..Self::LEN).ok_or(Error::Truncated)?;
        let mut msn = [0u8; 4];
        msn[1..].copy_from_slice(&b[aeth_field::MSN]);
        Ok(Aeth {
            syndrome: Syndrome::from_byte(b[aeth_field::SYNDROME])?,
            msn: u32::from_be_bytes(msn),
            credits: be_u16(&b[aeth_field::CREDITS]),
        })
    }

    /// Writes the header into the first [`Aeth::LEN`] bytes of `b`.
    pub fn emit(&self, b: &mut [u8]) -> Result<()> {
        let b = b.get_mut(..Self::LEN).ok_or(Error::Truncated)?;
        b[aeth_field::SYNDROME] = self.syndrome.to_byte();
        b[aeth_field::MSN].copy_from_slice(&self.msn.to_be_bytes()[1..]);
        b[aeth_field::CREDITS].copy_from_slice(&self.credits.to_be_bytes());
        b[aeth_field::RESERVED].fill(0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static RETH_BYTES: [u8; 16] = [
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x00, 0x10,
        0x00,
    ];

    #[test]
    fn reth_round_trip() {
        let r = Reth::parse(&RETH_BYTES).unwrap();
        assert_eq!(r.va, 0x0102_0304_0506_0708);
        assert_eq!(r.rkey, 0xdead_beef);
        assert_eq!(r.dma_len, 4096);
        let mut b = [0xa5u8; 16];
        r.emit(&mut b).unwrap();
        assert_eq!(b, RETH_BYTES);
        assert_eq!(Reth::parse(&RETH_BYTES[..15]), Err(Error::Truncated));
    }

    #[test]
    fn atomic_round_trip() {
        let a = AtomicEth {
            va: 0x1000,
            rkey: 7,
            swap_add: 0x1122_3344_5566_7788,
            compare: 9,
        };
        let mut b = [0xa5u8; 28];
        a.emit(&mut b).unwrap();
        assert_eq!(
            &b[12..20],
            &[0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]
        );
        assert_eq!(AtomicEth::parse(&b).unwrap(), a);
    }

    #[test]
    fn syndromes() {
        assert_eq!(Syndrome::Ack.to_byte(), 0x1F);
        assert_eq!(Syndrome::from_byte(0x00).unwrap(), Syndrome::Ack);
        assert_eq!(Syndrome::from_byte(0x2E).unwrap(), Syndrome::RnrNak(14));
        assert_eq!(
            Syndrome::from_byte(0x62).unwrap(),
            Syndrome::Nak(NakCode::RemoteAccessError)
        );
        assert_eq!(Syndrome::from_byte(0x40), Err(Error::Malformed));
        assert_eq!(Syndrome::from_byte(0x80), Err(Error::Malformed));
        for b in 0..=255u8 {
            if let Ok(s) = Syndrome::from_byte(b) {
                if s != Syndrome::Ack {
                    assert_eq!(s.to_byte(), b);
                }
            }
        }
    }

    #[test]
    fn deth_round_trip() {
        let mut bytes = [0u8; 24];
        bytes[..8].copy_from_slice(&[0x11, 0x11, 0x11, 0x11, 0x20, 0x40, 0xa5, 0xa5]);
        for (i, b) in bytes[8..].iter_mut().enumerate() {
            *b = 0xf0 | i as u8;
        }
        let d = Deth::parse(&bytes).unwrap();
        assert_eq!(d.qkey, 0x1111_1111);
        assert_eq!(d.traffic_class, 0x20);
        assert_eq!(d.hop_limit, 0x40);
        assert_eq!(d.sgid[0], 0xf0);
        assert_eq!(d.sgid[15], 0xff);
        let mut b = [0xa5u8; 24];
        d.emit(&mut b).unwrap();
        // Reserved bytes go out as zero.
        assert_eq!(&b[6..8], &[0, 0]);
        assert_eq!(&b[..6], &bytes[..6]);
        assert_eq!(&b[8..], &bytes[8..]);
        assert_eq!(Deth::parse(&b).unwrap(), d);
        for n in 0..24 {
            assert_eq!(Deth::parse(&bytes[..n]), Err(Error::Truncated));
            assert_eq!(d.emit(&mut b[..n]), Err(Error::Truncated));
        }
    }

    #[test]
    fn aeth_round_trip() {
        let bytes = [0x60, 0x12, 0x34, 0x56, 0x00, 0x20, 0xa5, 0xa5];
        let a = Aeth::parse(&bytes).unwrap();
        assert_eq!(a.syndrome, Syndrome::Nak(NakCode::PsnSequenceError));
        assert_eq!(a.msn, 0x12_3456);
        assert_eq!(a.credits, 32);
        let mut b = [0xa5u8; 8];
        a.emit(&mut b).unwrap();
        assert_eq!(b, [0x60, 0x12, 0x34, 0x56, 0x00, 0x20, 0, 0]);
    }
}
