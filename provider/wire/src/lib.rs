//! Wire format of omx-verbs: InfiniBand-style transport packets carried in
//! Open-MX Ethernet frames (EtherType 0x86DF).
//!
//! `docs/wire.md` is the normative description; this crate is a direct
//! transcription of its tables. It holds no state.
//!
//! # Two levels, as in smoltcp
//!
//! - [`Frame`] is a zero-copy view over a byte buffer with one accessor per
//!   field. Offsets live in a private `field` module per header.
//! - [`FrameRepr`] (with [`Bth`], [`Ext`], [`Reth`], [`Aeth`],
//!   [`AtomicEth`]) is a small validated value: [`FrameRepr::parse`] checks
//!   semantics and the CRC32C, [`FrameRepr::emit`] writes a frame. It
//!   holds RC packets only; UD datagrams (SEND Only with a [`Deth`]) are
//!   [`UdRepr`]s, and each parser refuses the other's frames as
//!   [`Error::Unsupported`].
//!
//! # Panic contract
//!
//! - Untrusted input must go through [`Frame::new_checked`]; after it
//!   returns `Ok`, no accessor of the view panics, whatever the bytes.
//! - [`Frame::new_unchecked`] is for emission into a buffer of at least
//!   [`FrameRepr::buffer_len`] bytes; [`FrameRepr::emit`] never panics on
//!   such a buffer. Do not use `new_checked` on a buffer you are about to
//!   fill: stale bytes would be validated.
//! - Nothing in this crate panics on any input bytes (property-tested).
//!
//! # Errors
//!
//! [`Error`] is a `Copy` enum; the caller drops the frame and bumps a
//! counter named after the variant.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod crc;
mod ext;
mod frame;
mod opcode;
mod psn;

pub use crc::crc32c;
pub use ext::{Aeth, AtomicEth, Deth, NakCode, Paeth, Reth, Syndrome, ACK_CREDIT_INVALID};
pub use frame::{
    is_local_wake, local_wake_frame, uc_opcode, Bth, Ext, Frame, FrameRepr, UdRepr,
    PTYPE_LOCAL_WAKE,
};
pub use opcode::{ExtLayout, Opcode, Position, Transport};
pub use psn::{Psn, Qpn, PSN_MODULUS};

/// Open-MX EtherType, shared with `kmod-shim` (`OMX_ETHERTYPE`).
pub const ETHERTYPE: u16 = 0x86DF;
/// Protocol version carried at abs 17. A frame with another version is
/// rejected with [`Error::Unsupported`]. Version 2 added the piggybacked
/// ACK (flag P, [`Paeth`]).
pub const VERSION: u8 = 2;
/// Length of the Open-MX head: dst MAC, src MAC, EtherType, peer index.
pub const HEAD_LEN: usize = 16;
/// Length of the base transport header that follows the head.
pub const BTH_LEN: usize = 20;
/// Offset of the first extension header (end of the BTH).
pub const EXT_OFFSET: usize = HEAD_LEN + BTH_LEN;
/// Length of the trailing CRC32C.
pub const CRC_LEN: usize = 4;
/// Minimum Ethernet frame length without FCS (ETH_ZLEN); shorter frames are
/// zero-padded after the CRC.
pub const MIN_FRAME_LEN: usize = 60;
/// Largest extension header total: PAETH (8) + AtomicETH (28).
pub const MAX_EXT_LEN: usize = 8 + 28;
/// Largest header in front of a payload: head + BTH + PAETH + RETH + ImmDt.
pub const MAX_PAYLOAD_HEADER_LEN: usize = EXT_OFFSET + 8 + 20;
/// Credits a requester may assume before the first AETH (docs/wire.md §9).
pub const INITIAL_CREDITS: u16 = 16;
/// Peer index meaning "unknown" (Open-MX convention).
pub const PEER_INDEX_UNKNOWN: u16 = 0xFFFF;
/// Bits of the QPN that select the slot inside an endpoint (kmod-shim ABI).
pub const QPN_SLOT_BITS: u32 = 12;

/// Length of the Ethernet header inside [`HEAD_LEN`] (destination,
/// source, EtherType): the part of a frame a netdev's MTU does not count.
pub const ETH_HEADER_LEN: usize = 14;

/// What a full packet of the given path MTU takes of a netdev's MTU: its
/// largest frame without the Ethernet header. A netdev whose MTU is
/// smaller cannot carry that path MTU (omx frames are never fragmented).
pub const fn max_l2_len(path_mtu: usize) -> usize {
    max_frame_len(path_mtu) - ETH_HEADER_LEN
}

/// Largest frame a QP with the given path MTU (payload bytes) can emit or
/// must accept. Transmit buffers handed to the engine must be this large.
pub const fn max_frame_len(path_mtu: usize) -> usize {
    let n = MAX_PAYLOAD_HEADER_LEN + path_mtu + CRC_LEN;
    if n < MIN_FRAME_LEN {
        MIN_FRAME_LEN
    } else {
        n
    }
}

/// Why a frame was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// Shorter than its headers and payload say.
    Truncated,
    /// Inconsistent fields: wrong EtherType, excess trailing bytes,
    /// payload where none is allowed, reserved syndrome, ...
    Malformed,
    /// Well-formed but not for us: other protocol version, packet type
    /// outside the verbs range or unknown opcode, UC or RD transport, a
    /// UD opcode other than SEND Only (with immediate), or a frame of
    /// the other transport than the parser's ([`FrameRepr`]: RC,
    /// [`UdRepr`]: UD).
    Unsupported,
    /// CRC32C mismatch.
    BadCrc,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let s = match self {
            Error::Truncated => "truncated frame",
            Error::Malformed => "malformed frame",
            Error::Unsupported => "unsupported frame",
            Error::BadCrc => "CRC32C mismatch",
        };
        f.write_str(s)
    }
}

impl std::error::Error for Error {}

/// Result type of this crate.
pub type Result<T> = core::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_lengths_of_a_path_mtu() {
        // Head 16 + BTH 20 + PAETH 8 + RETH 16 + ImmDt 4, payload, CRC 4.
        assert_eq!(max_frame_len(1024), 1024 + 68);
        // A netdev does not count the 14-byte Ethernet header: MTU 1500
        // carries path MTU 1024, not 2048; MTU 9000 carries 4096.
        assert_eq!(max_l2_len(1024), 1078);
        assert!(max_l2_len(2048) > 1500);
        assert!(max_l2_len(4096) <= 9000);
        // Tiny payloads still make a minimum-size Ethernet frame.
        assert_eq!(max_frame_len(0), 68);
        assert!(max_frame_len(0) >= MIN_FRAME_LEN);
    }
}
