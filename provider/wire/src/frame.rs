//! The whole frame: Open-MX head, BTH, extension headers, payload, CRC32C
//! (docs/wire.md §2, §3, §5, §6), as a view ([`Frame`]) and as values:
//! [`FrameRepr`] for RC packets, [`UdRepr`] for UD datagrams (§13).
//!
//! Which extension headers follow the BTH is a function of the opcode,
//! the transport (a UD packet carries a [`Deth`] first) and flag P,
//! all three in the fixed part of the frame, so [`Frame::check_len`]
//! knows every offset before any of them is read.

use crate::ext::{self, Aeth, AtomicEth, Deth, Paeth, Reth};
use crate::opcode::{ExtLayout, Opcode, Transport};
use crate::psn::{Psn, Qpn};
use crate::{Error, Result};
use crate::{CRC_LEN, ETHERTYPE, EXT_OFFSET, MIN_FRAME_LEN, VERSION};

mod field {
    use core::ops::Range;
    // Open-MX head.
    pub const DST_MAC: Range<usize> = 0..6;
    pub const SRC_MAC: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
    pub const PEER_INDEX: Range<usize> = 14..16;
    // BTH.
    pub const PTYPE: usize = 16;
    pub const VERSION: usize = 17;
    pub const FLAGS: usize = 18;
    pub const TRANSPORT: usize = 19;
    pub const DST_QPN: Range<usize> = 20..24;
    pub const SRC_QPN: Range<usize> = 24..28;
    pub const PSN: Range<usize> = 28..32;
    pub const PAY_LEN: Range<usize> = 32..34;
    pub const RESERVED: Range<usize> = 34..36;
    /// First byte covered by the CRC.
    pub const CRC_START: usize = PTYPE;
}

const _: () = assert!(field::RESERVED.end == EXT_OFFSET);

/// BTH flag: acknowledge request.
pub const FLAG_ACK_REQ: u8 = 0x80;
/// BTH flag: solicited event.
pub const FLAG_SOLICITED: u8 = 0x40;
/// BTH flag P: a [`Paeth`] (piggybacked ACK) follows the BTH. Request
/// packets only.
pub const FLAG_PIGGY_ACK: u8 = 0x20;

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

/// The opcodes a UC frame may carry (IBTA 9.8, docs/wire.md §14): SEND and
/// RDMA WRITE, First/Middle/Last/Only, with immediate; no SEND with
/// invalidate, READ, atomics or responses.
pub const fn uc_opcode(opcode: Opcode) -> bool {
    (opcode.is_send() || opcode.is_write())
        && !matches!(opcode, Opcode::SendLastInv | Opcode::SendOnlyInv)
}

/// Length of the extension headers of a frame with this opcode,
/// transport and flag P, or why no such frame exists: an unknown opcode,
/// a UD packet other than SEND Only (with immediate), a UC packet other
/// than SEND and RDMA WRITE (without invalidate) are unsupported; flag P
/// on anything but an RC request, UC and UD included, is malformed.
fn ext_len_of(opcode: Opcode, transport: Transport, piggy: bool) -> Result<usize> {
    let layout = opcode.layout().ok_or(Error::Unsupported)?;
    if transport == Transport::Uc {
        if !uc_opcode(opcode) {
            return Err(Error::Unsupported);
        }
        if piggy {
            return Err(Error::Malformed);
        }
        return Ok(layout.len());
    }
    if transport == Transport::Ud {
        if !matches!(opcode, Opcode::SendOnly | Opcode::SendOnlyImm) {
            return Err(Error::Unsupported);
        }
        if piggy {
            return Err(Error::Malformed);
        }
        return Ok(Deth::LEN + layout.len());
    }
    if piggy && !opcode.is_request() {
        return Err(Error::Malformed);
    }
    Ok(usize::from(piggy) * Paeth::LEN + layout.len())
}

/// A read/write view over an omx-verbs frame.
#[derive(Debug, Clone)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps a buffer without checks (for emission).
    pub const fn new_unchecked(buffer: T) -> Self {
        Frame { buffer }
    }

    /// Wraps an untrusted buffer, validating it with [`Frame::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self> {
        let f = Self::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
    }

    /// Structural validation: EtherType, version, known opcode (for UD:
    /// SEND Only with or without immediate), and that headers, payload
    /// and CRC fit the buffer exactly (docs/wire.md §5, §13). After `Ok`,
    /// no accessor panics.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < EXT_OFFSET {
            return Err(Error::Truncated);
        }
        if be_u16(&b[field::ETHERTYPE]) != ETHERTYPE {
            return Err(Error::Malformed);
        }
        if b[field::VERSION] != VERSION {
            return Err(Error::Unsupported);
        }
        let opcode = Opcode::from(b[field::PTYPE]);
        if opcode.layout().is_none() {
            return Err(Error::Unsupported);
        }
        let pay_len = usize::from(be_u16(&b[field::PAY_LEN]));
        if pay_len != 0 && !opcode.may_have_payload() {
            return Err(Error::Malformed);
        }
        let piggy = b[field::FLAGS] & FLAG_PIGGY_ACK != 0;
        let transport = Transport::from(b[field::TRANSPORT]);
        let ext_len = ext_len_of(opcode, transport, piggy)?;
        let need = EXT_OFFSET + ext_len + pay_len + CRC_LEN;
        if b.len() < need {
            return Err(Error::Truncated);
        }
        if b.len() > need.max(MIN_FRAME_LEN) {
            return Err(Error::Malformed);
        }
        Ok(())
    }

    /// Consumes the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Destination MAC.
    #[inline]
    pub fn dst_mac(&self) -> [u8; 6] {
        let mut m = [0u8; 6];
        m.copy_from_slice(&self.buffer.as_ref()[field::DST_MAC]);
        m
    }

    /// Source MAC.
    #[inline]
    pub fn src_mac(&self) -> [u8; 6] {
        let mut m = [0u8; 6];
        m.copy_from_slice(&self.buffer.as_ref()[field::SRC_MAC]);
        m
    }

    /// EtherType.
    #[inline]
    pub fn ethertype(&self) -> u16 {
        be_u16(&self.buffer.as_ref()[field::ETHERTYPE])
    }

    /// Open-MX peer index.
    #[inline]
    pub fn peer_index(&self) -> u16 {
        be_u16(&self.buffer.as_ref()[field::PEER_INDEX])
    }

    /// Packet type / opcode.
    #[inline]
    pub fn opcode(&self) -> Opcode {
        Opcode::from(self.buffer.as_ref()[field::PTYPE])
    }

    /// Protocol version.
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION]
    }

    /// AckReq flag.
    #[inline]
    pub fn ack_req(&self) -> bool {
        self.buffer.as_ref()[field::FLAGS] & FLAG_ACK_REQ != 0
    }

    /// Solicited-event flag.
    #[inline]
    pub fn solicited(&self) -> bool {
        self.buffer.as_ref()[field::FLAGS] & FLAG_SOLICITED != 0
    }

    /// Flag P: a piggybacked ACK ([`Paeth`]) follows the BTH.
    #[inline]
    pub fn piggy_ack(&self) -> bool {
        self.buffer.as_ref()[field::FLAGS] & FLAG_PIGGY_ACK != 0
    }

    /// Transport service.
    #[inline]
    pub fn transport(&self) -> Transport {
        Transport::from(self.buffer.as_ref()[field::TRANSPORT])
    }

    /// Destination QPN (the steering key, abs 21..24).
    #[inline]
    pub fn dst_qpn(&self) -> Qpn {
        Qpn::new(be_u32(&self.buffer.as_ref()[field::DST_QPN]))
    }

    /// Source QPN.
    #[inline]
    pub fn src_qpn(&self) -> Qpn {
        Qpn::new(be_u32(&self.buffer.as_ref()[field::SRC_QPN]))
    }

    /// Packet sequence number.
    #[inline]
    pub fn psn(&self) -> Psn {
        Psn::new(be_u32(&self.buffer.as_ref()[field::PSN]))
    }

    /// Payload length field.
    #[inline]
    pub fn pay_len(&self) -> usize {
        usize::from(be_u16(&self.buffer.as_ref()[field::PAY_LEN]))
    }

    fn ext_len(&self) -> usize {
        ext_len_of(self.opcode(), self.transport(), self.piggy_ack()).unwrap_or(0)
    }

    /// Offset of the payload.
    #[inline]
    pub fn payload_offset(&self) -> usize {
        EXT_OFFSET + self.ext_len()
    }

    /// Offset of the CRC32C field.
    #[inline]
    pub fn crc_offset(&self) -> usize {
        self.payload_offset() + self.pay_len()
    }

    /// CRC32C field value.
    pub fn crc(&self) -> u32 {
        let o = self.crc_offset();
        be_u32(&self.buffer.as_ref()[o..o + CRC_LEN])
    }

    /// CRC32C computed over abs 16 up to the CRC field.
    pub fn compute_crc(&self) -> u32 {
        crate::crc32c(&self.buffer.as_ref()[field::CRC_START..self.crc_offset()])
    }

    /// True when the CRC field matches the content.
    pub fn check_crc(&self) -> bool {
        self.crc() == self.compute_crc()
    }

    /// Extension header bytes (the [`Paeth`] or the [`Deth`], if any,
    /// first).
    pub fn ext(&self) -> &[u8] {
        &self.buffer.as_ref()[EXT_OFFSET..self.payload_offset()]
    }

    /// Payload bytes.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.payload_offset()..self.crc_offset()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Sets the destination MAC.
    #[inline]
    pub fn set_dst_mac(&mut self, m: [u8; 6]) {
        self.buffer.as_mut()[field::DST_MAC].copy_from_slice(&m);
    }

    /// Sets the source MAC.
    #[inline]
    pub fn set_src_mac(&mut self, m: [u8; 6]) {
        self.buffer.as_mut()[field::SRC_MAC].copy_from_slice(&m);
    }

    /// Sets the peer index (not covered by the CRC).
    #[inline]
    pub fn set_peer_index(&mut self, v: u16) {
        self.buffer.as_mut()[field::PEER_INDEX].copy_from_slice(&v.to_be_bytes());
    }

    fn set_head_and_bth(&mut self, r: &FrameRepr) {
        let b = self.buffer.as_mut();
        b[field::DST_MAC].copy_from_slice(&r.dst_mac);
        b[field::SRC_MAC].copy_from_slice(&r.src_mac);
        b[field::ETHERTYPE].copy_from_slice(&ETHERTYPE.to_be_bytes());
        b[field::PEER_INDEX].copy_from_slice(&r.peer_index.to_be_bytes());
        b[field::PTYPE] = u8::from(r.bth.opcode);
        b[field::VERSION] = VERSION;
        let mut flags = 0;
        if r.bth.ack_req {
            flags |= FLAG_ACK_REQ;
        }
        if r.bth.solicited {
            flags |= FLAG_SOLICITED;
        }
        if r.ext.ack.is_some() {
            flags |= FLAG_PIGGY_ACK;
        }
        b[field::FLAGS] = flags;
        b[field::TRANSPORT] = u8::from(r.bth.transport);
        b[field::DST_QPN].copy_from_slice(&r.bth.dst_qpn.value().to_be_bytes());
        b[field::SRC_QPN].copy_from_slice(&r.bth.src_qpn.value().to_be_bytes());
        b[field::PSN].copy_from_slice(&r.bth.psn.value().to_be_bytes());
        b[field::PAY_LEN].copy_from_slice(&(r.payload_len as u16).to_be_bytes());
        b[field::RESERVED].fill(0);
    }

    /// Mutable payload bytes (valid once the BTH is written).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (s, e) = (self.payload_offset(), self.crc_offset());
        &mut self.buffer.as_mut()[s..e]
    }

    /// Computes and stores the CRC32C, zero-pads to 60 bytes, and returns
    /// the frame length to transmit.
    pub fn fill_crc_and_pad(&mut self) -> usize {
        let crc = self.compute_crc();
        let o = self.crc_offset();
        let b = self.buffer.as_mut();
        b[o..o + CRC_LEN].copy_from_slice(&crc.to_be_bytes());
        let end = o + CRC_LEN;
        if end < MIN_FRAME_LEN {
            b[end..MIN_FRAME_LEN].fill(0);
            MIN_FRAME_LEN
        } else {
            end
        }
    }
}

/// Base transport header, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bth {
    /// Opcode (packet type).
    pub opcode: Opcode,
    /// Transport service.
    pub transport: Transport,
    /// AckReq flag.
    pub ack_req: bool,
    /// Solicited-event flag.
    pub solicited: bool,
    /// Destination QPN.
    pub dst_qpn: Qpn,
    /// Source QPN.
    pub src_qpn: Qpn,
    /// PSN.
    pub psn: Psn,
}

/// Extension headers, decoded. Exactly those named by the opcode's
/// [`ExtLayout`] are `Some`, plus `ack` on request packets with flag P.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ext {
    /// PAETH: piggybacked ACK of the reverse direction (flag P; request
    /// packets only; placed first, right after the BTH).
    pub ack: Option<Paeth>,
    /// RETH.
    pub reth: Option<Reth>,
    /// AtomicETH.
    pub atomic: Option<AtomicEth>,
    /// AETH.
    pub aeth: Option<Aeth>,
    /// ImmDt (value of the big-endian wire field).
    pub imm: Option<u32>,
    /// IETH (rkey to invalidate).
    pub ieth: Option<u32>,
    /// AtomicAckETH (original value).
    pub atomic_ack: Option<u64>,
}

impl Ext {
    fn matches(&self, l: &ExtLayout) -> bool {
        self.reth.is_some() == l.reth
            && self.atomic.is_some() == l.atomic_eth
            && self.aeth.is_some() == l.aeth
            && self.imm.is_some() == l.imm
            && self.ieth.is_some() == l.ieth
            && self.atomic_ack.is_some() == l.atomic_ack
    }
}

/// A validated frame header; the payload stays in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRepr {
    /// Destination MAC.
    pub dst_mac: [u8; 6],
    /// Source MAC.
    pub src_mac: [u8; 6],
    /// Open-MX peer index.
    pub peer_index: u16,
    /// Base transport header.
    pub bth: Bth,
    /// Extension headers.
    pub ext: Ext,
    /// Payload length in bytes.
    pub payload_len: usize,
}

impl FrameRepr {
    /// Parses a checked frame: CRC32C, transport, extension headers.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(frame: &Frame<&T>) -> Result<FrameRepr> {
        frame.check_len()?;
        if !frame.check_crc() {
            return Err(Error::BadCrc);
        }
        Self::parse_ignoring_crc(frame)
    }

    /// As [`FrameRepr::parse`] but without the CRC check (for tests and
    /// fuzzing of the fields behind it).
    pub fn parse_ignoring_crc<T: AsRef<[u8]> + ?Sized>(frame: &Frame<&T>) -> Result<FrameRepr> {
        frame.check_len()?;
        let opcode = frame.opcode();
        let layout = opcode.layout().ok_or(Error::Unsupported)?;
        let transport = frame.transport();
        if !matches!(transport, Transport::Rc | Transport::Uc) {
            return Err(Error::Unsupported);
        }
        let mut rest = frame.ext();
        let mut ext = Ext::default();
        if frame.piggy_ack() {
            ext.ack = Some(Paeth::parse(rest)?);
            rest = &rest[Paeth::LEN..];
        }
        if layout.reth {
            ext.reth = Some(Reth::parse(rest)?);
            rest = &rest[Reth::LEN..];
        }
        if layout.atomic_eth {
            ext.atomic = Some(AtomicEth::parse(rest)?);
            rest = &rest[AtomicEth::LEN..];
        }
        if layout.aeth {
            ext.aeth = Some(Aeth::parse(rest)?);
            rest = &rest[Aeth::LEN..];
        }
        if layout.imm {
            ext.imm = Some(ext::parse_u32(rest)?);
            rest = &rest[4..];
        }
        if layout.ieth {
            ext.ieth = Some(ext::parse_u32(rest)?);
            rest = &rest[4..];
        }
        if layout.atomic_ack {
            ext.atomic_ack = Some(ext::parse_u64(rest)?);
        }
        Ok(FrameRepr {
            dst_mac: frame.dst_mac(),
            src_mac: frame.src_mac(),
            peer_index: frame.peer_index(),
            bth: Bth {
                opcode,
                transport,
                ack_req: frame.ack_req(),
                solicited: frame.solicited(),
                dst_qpn: frame.dst_qpn(),
                src_qpn: frame.src_qpn(),
                psn: frame.psn(),
            },
            ext,
            payload_len: frame.pay_len(),
        })
    }

    /// Bytes in front of the payload.
    pub fn header_len(&self) -> usize {
        EXT_OFFSET
            + usize::from(self.ext.ack.is_some()) * Paeth::LEN
            + self.bth.opcode.layout().map_or(0, |l| l.len())
    }

    /// Length of the emitted frame, padding included.
    pub fn buffer_len(&self) -> usize {
        (self.header_len() + self.payload_len + CRC_LEN).max(MIN_FRAME_LEN)
    }

    /// Writes head, BTH and extension headers. The caller then fills
    /// [`Frame::payload_mut`] and calls [`Frame::fill_crc_and_pad`].
    ///
    /// Fails with [`Error::Truncated`] if the buffer is shorter than
    /// [`FrameRepr::buffer_len`], and [`Error::Malformed`] if `ext` does
    /// not match the opcode's layout (or carries a PAETH on a
    /// non-request), or the payload does not fit the
    /// 16-bit length field; never panics.
    pub fn emit_header<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut Frame<T>) -> Result<()> {
        let layout = self.bth.opcode.layout().ok_or(Error::Malformed)?;
        if !self.ext.matches(&layout)
            || (self.ext.ack.is_some() && !self.bth.opcode.is_request())
            || (self.bth.transport == Transport::Uc
                && (!uc_opcode(self.bth.opcode) || self.ext.ack.is_some()))
            || self.payload_len > usize::from(u16::MAX)
            || (self.payload_len != 0 && !self.bth.opcode.may_have_payload())
        {
            return Err(Error::Malformed);
        }
        if frame.buffer.as_ref().len() < self.buffer_len() {
            return Err(Error::Truncated);
        }
        frame.set_head_and_bth(self);
        let b = &mut frame.buffer.as_mut()[EXT_OFFSET..];
        let mut off = 0;
        if let Some(a) = &self.ext.ack {
            a.emit(&mut b[off..])?;
            off += Paeth::LEN;
        }
        if let Some(r) = &self.ext.reth {
            r.emit(&mut b[off..])?;
            off += Reth::LEN;
        }
        if let Some(a) = &self.ext.atomic {
            a.emit(&mut b[off..])?;
            off += AtomicEth::LEN;
        }
        if let Some(a) = &self.ext.aeth {
            a.emit(&mut b[off..])?;
            off += Aeth::LEN;
        }
        if let Some(v) = self.ext.imm {
            b[off..off + 4].copy_from_slice(&v.to_be_bytes());
            off += 4;
        }
        if let Some(v) = self.ext.ieth {
            b[off..off + 4].copy_from_slice(&v.to_be_bytes());
            off += 4;
        }
        if let Some(v) = self.ext.atomic_ack {
            b[off..off + 8].copy_from_slice(&v.to_be_bytes());
        }
        Ok(())
    }

    /// Emits a whole frame: header, payload via `fill`, CRC and padding.
    /// Returns the frame length.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        frame: &mut Frame<T>,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<usize> {
        self.emit_header(frame)?;
        fill(frame.payload_mut());
        Ok(frame.fill_crc_and_pad())
    }
}

/// A validated UD datagram (docs/wire.md §13): SEND Only or SEND Only
/// with Immediate, transport UD, a [`Deth`]; the payload stays in the
/// buffer. No PAETH, no AETH, no AckReq (sent as 0, ignored on receive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdRepr {
    /// Destination MAC (the address handle's).
    pub dst_mac: [u8; 6],
    /// Source MAC (the sending port's).
    pub src_mac: [u8; 6],
    /// Open-MX peer index.
    pub peer_index: u16,
    /// Destination QPN (the address handle's remote QPN).
    pub dst_qpn: Qpn,
    /// Source QPN (reported as `ibv_wc.src_qp`).
    pub src_qpn: Qpn,
    /// The sender's own counter, never checked by the receiver.
    pub psn: Psn,
    /// Solicited-event flag (IBV_SEND_SOLICITED).
    pub solicited: bool,
    /// Q_Key, the sender's GID, traffic class and hop limit.
    pub deth: Deth,
    /// ImmDt: `Some` makes the packet a SEND Only with Immediate.
    pub imm: Option<u32>,
    /// Payload length in bytes (at most the sender's path MTU).
    pub payload_len: usize,
}

impl UdRepr {
    /// The opcode this datagram travels as.
    pub fn opcode(&self) -> Opcode {
        if self.imm.is_some() {
            Opcode::SendOnlyImm
        } else {
            Opcode::SendOnly
        }
    }

    /// Parses a checked UD frame, CRC32C first. An RC (or UC) frame is
    /// [`Error::Unsupported`], as is any UD opcode but SEND Only (with
    /// immediate) ([`Frame::check_len`]).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(frame: &Frame<&T>) -> Result<UdRepr> {
        frame.check_len()?;
        if !frame.check_crc() {
            return Err(Error::BadCrc);
        }
        Self::parse_ignoring_crc(frame)
    }

    /// As [`UdRepr::parse`] without the CRC check (tests and fuzzing).
    pub fn parse_ignoring_crc<T: AsRef<[u8]> + ?Sized>(frame: &Frame<&T>) -> Result<UdRepr> {
        frame.check_len()?;
        if frame.transport() != Transport::Ud {
            return Err(Error::Unsupported);
        }
        let opcode = frame.opcode();
        let ext = frame.ext();
        let deth = Deth::parse(ext)?;
        let imm = if opcode.has_imm() {
            Some(ext::parse_u32(
                ext.get(Deth::LEN..).ok_or(Error::Truncated)?,
            )?)
        } else {
            None
        };
        Ok(UdRepr {
            dst_mac: frame.dst_mac(),
            src_mac: frame.src_mac(),
            peer_index: frame.peer_index(),
            dst_qpn: frame.dst_qpn(),
            src_qpn: frame.src_qpn(),
            psn: frame.psn(),
            solicited: frame.solicited(),
            deth,
            imm,
            payload_len: frame.pay_len(),
        })
    }

    /// Bytes in front of the payload: head, BTH, DETH and ImmDt.
    pub fn header_len(&self) -> usize {
        EXT_OFFSET + Deth::LEN + if self.imm.is_some() { 4 } else { 0 }
    }

    /// Length of the emitted frame, padding included.
    pub fn buffer_len(&self) -> usize {
        (self.header_len() + self.payload_len + CRC_LEN).max(MIN_FRAME_LEN)
    }

    /// Writes head, BTH, DETH and ImmDt. The caller then fills
    /// [`Frame::payload_mut`] and calls [`Frame::fill_crc_and_pad`].
    /// [`Error::Truncated`] if the buffer is shorter than
    /// [`UdRepr::buffer_len`], [`Error::Malformed`] if the payload does
    /// not fit the 16-bit length field; never panics.
    pub fn emit_header<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut Frame<T>) -> Result<()> {
        if self.payload_len > usize::from(u16::MAX) {
            return Err(Error::Malformed);
        }
        if frame.buffer.as_ref().len() < self.buffer_len() {
            return Err(Error::Truncated);
        }
        let b = frame.buffer.as_mut();
        b[field::DST_MAC].copy_from_slice(&self.dst_mac);
        b[field::SRC_MAC].copy_from_slice(&self.src_mac);
        b[field::ETHERTYPE].copy_from_slice(&ETHERTYPE.to_be_bytes());
        b[field::PEER_INDEX].copy_from_slice(&self.peer_index.to_be_bytes());
        b[field::PTYPE] = u8::from(self.opcode());
        b[field::VERSION] = VERSION;
        b[field::FLAGS] = if self.solicited { FLAG_SOLICITED } else { 0 };
        b[field::TRANSPORT] = u8::from(Transport::Ud);
        b[field::DST_QPN].copy_from_slice(&self.dst_qpn.value().to_be_bytes());
        b[field::SRC_QPN].copy_from_slice(&self.src_qpn.value().to_be_bytes());
        b[field::PSN].copy_from_slice(&self.psn.value().to_be_bytes());
        b[field::PAY_LEN].copy_from_slice(&(self.payload_len as u16).to_be_bytes());
        b[field::RESERVED].fill(0);
        let ext = &mut b[EXT_OFFSET..];
        self.deth.emit(ext)?;
        if let Some(v) = self.imm {
            ext[Deth::LEN..Deth::LEN + 4].copy_from_slice(&v.to_be_bytes());
        }
        Ok(())
    }

    /// Emits a whole frame: header, payload via `fill`, CRC and padding.
    /// Returns the frame length.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        frame: &mut Frame<T>,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<usize> {
        self.emit_header(frame)?;
        fill(frame.payload_mut());
        Ok(frame.fill_crc_and_pad())
    }
}

// A UD header (head + BTH + DETH + ImmDt) is no longer than the largest
// RC one, so `max_frame_len(path_mtu)` holds for UD too (docs/wire.md §5).
const _: () = assert!(EXT_OFFSET + ext::DETH_LEN + 4 <= crate::MAX_PAYLOAD_HEADER_LEN);

/// Packet type of the same-host wake frame (docs/wire.md §3.1, §11): in
/// the verbs range, so the loopback tap's filter passes it; the packet-I/O
/// layer drops it before the engine.
pub const PTYPE_LOCAL_WAKE: u8 = 0x9F;

/// The LOCAL_WAKE frame for `endpoint` on the port whose MAC is `mac`
/// (docs/wire.md §11): the MAC as destination and source, the Open-MX
/// EtherType, peer index unknown, ptype [`PTYPE_LOCAL_WAKE`] and the
/// endpoint's QPN base as dst QPN (what the steering filters match),
/// zeros to the minimum frame length. No CRC: it never reaches an engine.
pub fn local_wake_frame(mac: [u8; 6], endpoint: u32) -> [u8; MIN_FRAME_LEN] {
    let mut f = [0u8; MIN_FRAME_LEN];
    f[field::DST_MAC].copy_from_slice(&mac);
    f[field::SRC_MAC].copy_from_slice(&mac);
    f[field::ETHERTYPE].copy_from_slice(&ETHERTYPE.to_be_bytes());
    f[field::PEER_INDEX].copy_from_slice(&crate::PEER_INDEX_UNKNOWN.to_be_bytes());
    f[field::PTYPE] = PTYPE_LOCAL_WAKE;
    let qpn = Qpn::new(endpoint << crate::QPN_SLOT_BITS);
    f[field::DST_QPN].copy_from_slice(&qpn.value().to_be_bytes());
    f
}

/// Whether `frame` is a LOCAL_WAKE frame.
pub fn is_local_wake(frame: &[u8]) -> bool {
    frame.get(field::PTYPE) == Some(&PTYPE_LOCAL_WAKE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Deth, NakCode, Syndrome};

    /// RDMA WRITE Only with Immediate, 4 payload bytes, AckReq, PSN 0x123456,
    /// dst QPN 0x001002 (endpoint 1, slot 2), src QPN 0x002005.
    static WRITE_IMM: [u8; 64] = [
        // head
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x86, 0xdf, 0xff,
        0xff, //
        // BTH
        0x8b, 0x02, 0x80, 0x00, 0x00, 0x00, 0x10, 0x02, 0x00, 0x00, 0x20, 0x05, 0x00, 0x12, 0x34,
        0x56, 0x00, 0x04, 0x00, 0x00, //
        // RETH
        0x00, 0x00, 0x7f, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x2a, 0x00, 0x00, 0x00,
        0x04, //
        // ImmDt
        0xca, 0xfe, 0xba, 0xbe, //
        // payload
        0x01, 0x02, 0x03, 0x04, //
        // CRC32C over abs 16..60
        0x00, 0x00, 0x00, 0x00,
    ];

    fn fixture() -> [u8; 64] {
        let mut b = WRITE_IMM;
        let crc = crate::crc32c(&b[16..60]);
        b[60..64].copy_from_slice(&crc.to_be_bytes());
        b
    }

    fn repr() -> FrameRepr {
        FrameRepr {
            dst_mac: [2, 0, 0, 0, 0, 2],
            src_mac: [2, 0, 0, 0, 0, 1],
            peer_index: 0xFFFF,
            bth: Bth {
                opcode: Opcode::WriteOnlyImm,
                transport: Transport::Rc,
                ack_req: true,
                solicited: false,
                dst_qpn: Qpn::new(0x1002),
                src_qpn: Qpn::new(0x2005),
                psn: Psn::new(0x12_3456),
            },
            ext: Ext {
                reth: Some(Reth {
                    va: 0x7f00_0000_1000,
                    rkey: 42,
                    dma_len: 4,
                }),
                imm: Some(0xcafe_babe),
                ..Ext::default()
            },
            payload_len: 4,
        }
    }

    #[test]
    fn test_deconstruct() {
        let b = fixture();
        let f = Frame::new_checked(&b[..]).unwrap();
        assert_eq!(f.ethertype(), 0x86DF);
        assert_eq!(f.opcode(), Opcode::WriteOnlyImm);
        assert_eq!(f.version(), 2);
        assert!(f.ack_req());
        assert!(!f.piggy_ack());
        assert!(!f.solicited());
        assert_eq!(f.dst_qpn(), Qpn::new(0x1002));
        assert_eq!(f.dst_qpn().endpoint(), 1);
        assert_eq!(f.src_qpn(), Qpn::new(0x2005));
        assert_eq!(f.psn(), Psn::new(0x12_3456));
        assert_eq!(f.pay_len(), 4);
        assert_eq!(f.payload(), &[1, 2, 3, 4]);
        assert_eq!(f.crc_offset(), 60);
        assert!(f.check_crc());
    }

    #[test]
    fn test_construct() {
        let mut b = [0xa5u8; 64];
        let mut f = Frame::new_unchecked(&mut b[..]);
        let n = repr()
            .emit(&mut f, |p| p.copy_from_slice(&[1, 2, 3, 4]))
            .unwrap();
        assert_eq!(n, 64);
        assert_eq!(b, fixture());
    }

    #[test]
    fn test_parse() {
        let b = fixture();
        let f = Frame::new_checked(&b[..]).unwrap();
        assert_eq!(FrameRepr::parse(&f).unwrap(), repr());
        assert_eq!(repr().buffer_len(), 64);
    }

    #[test]
    fn test_emit_short_buffer() {
        let mut b = [0u8; 63];
        let mut f = Frame::new_unchecked(&mut b[..]);
        assert_eq!(repr().emit(&mut f, |_| ()), Err(Error::Truncated));
        let mut bad = repr();
        bad.ext.imm = None;
        let mut b = [0u8; 64];
        let mut f = Frame::new_unchecked(&mut b[..]);
        assert_eq!(bad.emit(&mut f, |_| ()), Err(Error::Malformed));
    }

    #[test]
    fn ack_is_padded_to_60() {
        let r = FrameRepr {
            bth: Bth {
                opcode: Opcode::Acknowledge,
                ack_req: false,
                ..repr().bth
            },
            ext: Ext {
                aeth: Some(Aeth {
                    syndrome: Syndrome::Nak(NakCode::RemoteAccessError),
                    msn: 3,
                    credits: 64,
                }),
                ..Ext::default()
            },
            payload_len: 0,
            ..repr()
        };
        assert_eq!(r.buffer_len(), 60);
        let mut b = [0xa5u8; 60];
        let n = r
            .emit(&mut Frame::new_unchecked(&mut b[..]), |_| ())
            .unwrap();
        assert_eq!(n, 60);
        assert_eq!(&b[48..60], &[0u8; 12]);
        let f = Frame::new_checked(&b[..]).unwrap();
        assert_eq!(FrameRepr::parse(&f).unwrap(), r);
        // Padding stripped by the path: still accepted.
        let f = Frame::new_checked(&b[..48]).unwrap();
        assert_eq!(FrameRepr::parse(&f).unwrap(), r);
        // Longer than the padded length: malformed.
        let mut long = [0u8; 61];
        long[..60].copy_from_slice(&b);
        assert_eq!(Frame::new_checked(&long[..]).unwrap_err(), Error::Malformed);
    }

    #[test]
    fn rejects_malformed() {
        let good = fixture();
        // Truncated at every length.
        for n in 0..64 {
            assert!(Frame::new_checked(&good[..n]).is_err(), "len {n}");
        }
        let mut b = good;
        b[12] = 0x08;
        assert_eq!(Frame::new_checked(&b[..]).unwrap_err(), Error::Malformed);
        let mut b = good;
        b[17] = 1; // version 1 had no flag P
        assert_eq!(Frame::new_checked(&b[..]).unwrap_err(), Error::Unsupported);
        let mut b = good;
        b[18] |= FLAG_PIGGY_ACK; // says a PAETH follows: 8 bytes short
        assert_eq!(Frame::new_checked(&b[..]).unwrap_err(), Error::Truncated);
        let mut b = good;
        b[16] = 0x24; // Open-MX CONNECT
        assert_eq!(Frame::new_checked(&b[..]).unwrap_err(), Error::Unsupported);
        let mut b = good;
        b[33] = 5; // payload longer than the frame
        assert_eq!(Frame::new_checked(&b[..]).unwrap_err(), Error::Truncated);
        let mut b = good;
        b[40] ^= 1; // corrupted RETH
        let f = Frame::new_checked(&b[..]).unwrap();
        assert_eq!(FrameRepr::parse(&f).unwrap_err(), Error::BadCrc);
        let mut b = good;
        b[19] = 3; // UD carries no RDMA WRITE
        assert_eq!(Frame::new_checked(&b[..]).unwrap_err(), Error::Unsupported);
        let mut b = good;
        b[19] = 1; // UC: the same frame with transport UC (§14)
        let crc = crate::crc32c(&b[16..60]);
        b[60..].copy_from_slice(&crc.to_be_bytes());
        let f = Frame::new_checked(&b[..]).unwrap();
        assert_eq!(FrameRepr::parse(&f).unwrap().bth.transport, Transport::Uc);
        assert_eq!(UdRepr::parse(&f).unwrap_err(), Error::Unsupported);
        b[19] = 2; // RD: never
        let crc = crate::crc32c(&b[16..60]);
        b[60..].copy_from_slice(&crc.to_be_bytes());
        let f = Frame::new_checked(&b[..]).unwrap();
        assert_eq!(FrameRepr::parse(&f).unwrap_err(), Error::Unsupported);
    }

    /// SEND Only with Immediate as UD, 4 payload bytes, SE, PSN 0x000007,
    /// dst QPN 0x001002, src QPN 0x002005, Q_Key 0x11111111, traffic
    /// class 0x20, hop limit 64, sender GID fe80::1:2:3:4.
    static UD_IMM: [u8; 72] = [
        // head
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x86, 0xdf, 0xff,
        0xff, //
        // BTH: ptype 0x85, version 2, flags SE, transport 3 (UD)
        0x85, 0x02, 0x40, 0x03, 0x00, 0x00, 0x10, 0x02, 0x00, 0x00, 0x20, 0x05, 0x00, 0x00, 0x00,
        0x07, 0x00, 0x04, 0x00, 0x00, //
        // DETH: Q_Key, traffic class, hop limit, reserved, SGID
        0x11, 0x11, 0x11, 0x11, 0x20, 0x40, 0x00, 0x00, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x01, 0x00, 0x02, 0x00, 0x03, 0x00, 0x04, //
        // ImmDt
        0xca, 0xfe, 0xba, 0xbe, //
        // payload
        0x01, 0x02, 0x03, 0x04, //
        // CRC32C over abs 16..68
        0x00, 0x00, 0x00, 0x00,
    ];

    fn ud_fixture() -> [u8; 72] {
        let mut b = UD_IMM;
        let crc = crate::crc32c(&b[16..68]);
        b[68..72].copy_from_slice(&crc.to_be_bytes());
        b
    }

    fn ud_repr() -> UdRepr {
        UdRepr {
            dst_mac: [2, 0, 0, 0, 0, 2],
            src_mac: [2, 0, 0, 0, 0, 1],
            peer_index: 0xFFFF,
            dst_qpn: Qpn::new(0x1002),
            src_qpn: Qpn::new(0x2005),
            psn: Psn::new(7),
            solicited: true,
            deth: Deth {
                qkey: 0x1111_1111,
                traffic_class: 0x20,
                hop_limit: 64,
                sgid: [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2, 0, 3, 0, 4],
            },
            imm: Some(0xcafe_babe),
            payload_len: 4,
        }
    }

    #[test]
    fn ud_construct_and_parse() {
        let mut b = [0xa5u8; 72];
        let n = ud_repr()
            .emit(&mut Frame::new_unchecked(&mut b[..]), |p| {
                p.copy_from_slice(&[1, 2, 3, 4])
            })
            .unwrap();
        assert_eq!(n, 72);
        assert_eq!(b, ud_fixture());
        let f = Frame::new_checked(&b[..]).unwrap();
        assert_eq!(f.transport(), Transport::Ud);
        assert_eq!(f.payload_offset(), 36 + 24 + 4);
        assert_eq!(f.payload(), &[1, 2, 3, 4]);
        assert_eq!(UdRepr::parse(&f).unwrap(), ud_repr());
        assert_eq!(ud_repr().buffer_len(), 72);
        // RC's parser does not take it.
        assert_eq!(FrameRepr::parse(&f).unwrap_err(), Error::Unsupported);
        // Nor does UD's parser take an RC frame.
        let rc = fixture();
        let f = Frame::new_checked(&rc[..]).unwrap();
        assert_eq!(UdRepr::parse(&f).unwrap_err(), Error::Unsupported);
    }

    #[test]
    fn ud_without_immediate_is_padded_and_round_trips() {
        let r = UdRepr {
            imm: None,
            solicited: false,
            payload_len: 0,
            ..ud_repr()
        };
        assert_eq!(r.opcode(), Opcode::SendOnly);
        assert_eq!(r.header_len(), 60);
        assert_eq!(r.buffer_len(), 64);
        let mut b = [0xa5u8; 64];
        let n = r
            .emit(&mut Frame::new_unchecked(&mut b[..]), |_| ())
            .unwrap();
        assert_eq!(n, 64);
        assert_eq!(b[16], 0x84);
        assert_eq!(b[18], 0);
        let f = Frame::new_checked(&b[..]).unwrap();
        assert_eq!(UdRepr::parse(&f).unwrap(), r);
        // The largest UD header fits the RC bound of max_frame_len.
        let big = UdRepr {
            payload_len: 1024,
            ..ud_repr()
        };
        assert!(big.buffer_len() <= crate::max_frame_len(1024));
    }

    #[test]
    fn ud_rejects_malformed() {
        let good = ud_fixture();
        for n in 0..72 {
            assert!(Frame::new_checked(&good[..n]).is_err(), "len {n}");
        }
        let mut long = [0u8; 73];
        long[..72].copy_from_slice(&good);
        assert_eq!(Frame::new_checked(&long[..]).unwrap_err(), Error::Malformed);
        let mut b = good;
        b[18] |= FLAG_PIGGY_ACK; // no PAETH on UD
        assert_eq!(Frame::new_checked(&b[..]).unwrap_err(), Error::Malformed);
        // Every opcode but SEND Only (with immediate) is unsupported on UD.
        for code in 0x80..=0xff_u8 {
            let mut b = good;
            b[16] = code;
            let r = Frame::new_checked(&b[..]);
            match Opcode::from(code) {
                Opcode::SendOnlyImm => assert!(r.is_ok()),
                // The same length minus ImmDt: 4 excess bytes.
                Opcode::SendOnly => assert_eq!(r.unwrap_err(), Error::Malformed),
                // With a payload where none may be: malformed first.
                op if op.layout().is_some() && !op.may_have_payload() => {
                    assert_eq!(r.unwrap_err(), Error::Malformed, "{code:#x}")
                }
                _ => assert_eq!(r.unwrap_err(), Error::Unsupported, "{code:#x}"),
            }
        }
        let mut b = good;
        b[33] = 5; // payload longer than the frame
        assert_eq!(Frame::new_checked(&b[..]).unwrap_err(), Error::Truncated);
        let mut b = good;
        b[46] ^= 1; // corrupted SGID
        let f = Frame::new_checked(&b[..]).unwrap();
        assert_eq!(UdRepr::parse(&f).unwrap_err(), Error::BadCrc);
        // A short buffer or a payload beyond 16 bits: an error, no panic.
        let mut b = [0u8; 71];
        assert_eq!(
            ud_repr().emit(&mut Frame::new_unchecked(&mut b[..]), |_| ()),
            Err(Error::Truncated)
        );
        let huge = UdRepr {
            payload_len: 70_000,
            ..ud_repr()
        };
        let mut b = vec![0u8; 70_200];
        assert_eq!(
            huge.emit(&mut Frame::new_unchecked(&mut b[..]), |_| ()),
            Err(Error::Malformed)
        );
    }

    /// UC frames (§14): SEND and RDMA WRITE round-trip with transport 1;
    /// READ, atomics, responses and SEND with invalidate are unsupported,
    /// flag P malformed, on the wire and at emit.
    #[test]
    fn uc_frames() {
        let mut r = repr();
        r.bth.transport = Transport::Uc;
        r.bth.ack_req = false;
        let mut b = [0u8; 128];
        let n = r
            .emit(&mut Frame::new_unchecked(&mut b[..]), |p| {
                p.copy_from_slice(&[1, 2, 3, 4])
            })
            .unwrap();
        assert_eq!(b[19], 1);
        let f = Frame::new_checked(&b[..n]).unwrap();
        assert_eq!(FrameRepr::parse(&f).unwrap(), r);
        // The same bytes with another opcode (CRC refreshed): refused.
        for op in [
            Opcode::ReadRequest,
            Opcode::CompareSwap,
            Opcode::Acknowledge,
            Opcode::ReadResponseOnly,
            Opcode::SendOnlyInv,
        ] {
            let mut c = b;
            c[16] = op.into();
            let g = Frame::new_unchecked(&c[..n]);
            assert!(FrameRepr::parse_ignoring_crc(&g).is_err(), "{op:?}");
            let mut e = r;
            e.bth.opcode = op;
            e.ext = Ext::default();
            e.payload_len = 0;
            assert!(e
                .emit_header(&mut Frame::new_unchecked(&mut [0u8; 128][..]))
                .is_err());
        }
        let mut c = b;
        c[18] |= FLAG_PIGGY_ACK;
        assert_eq!(
            FrameRepr::parse_ignoring_crc(&Frame::new_unchecked(&c[..n])),
            Err(Error::Malformed)
        );
        let mut e = r;
        e.ext.ack = Some(Paeth {
            psn: Psn::new(1),
            credits: 1,
        });
        assert_eq!(
            e.emit_header(&mut Frame::new_unchecked(&mut [0u8; 128][..])),
            Err(Error::Malformed)
        );
    }

    /// The piggybacked ACK sits right after the BTH, before the RETH, and
    /// sets flag P; byte for byte against the fixture.
    #[test]
    fn piggy_ack_layout() {
        let mut r = repr();
        r.ext.ack = Some(Paeth {
            psn: Psn::new(0xab_cdef),
            credits: 0x0102,
        });
        assert_eq!(r.header_len(), 36 + 8 + 20);
        assert_eq!(r.buffer_len(), 72);
        let mut b = [0xa5u8; 72];
        let n = r
            .emit(&mut Frame::new_unchecked(&mut b[..]), |p| {
                p.copy_from_slice(&[1, 2, 3, 4])
            })
            .unwrap();
        assert_eq!(n, 72);
        let plain = fixture();
        assert_eq!(b[18], 0x80 | FLAG_PIGGY_ACK);
        assert_eq!(&b[..18], &plain[..18]);
        assert_eq!(&b[19..36], &plain[19..36]);
        assert_eq!(&b[36..44], &[0, 0xab, 0xcd, 0xef, 0x01, 0x02, 0, 0]);
        assert_eq!(&b[44..68], &plain[36..60]);
        let f = Frame::new_checked(&b[..]).unwrap();
        assert!(f.piggy_ack());
        assert_eq!(f.payload(), &[1, 2, 3, 4]);
        assert_eq!(FrameRepr::parse(&f).unwrap(), r);
        // Not on an ACK.
        let mut ack = r;
        ack.bth.opcode = Opcode::Acknowledge;
        ack.ext = Ext {
            ack: r.ext.ack,
            aeth: Some(Aeth {
                syndrome: Syndrome::Ack,
                msn: 0,
                credits: 1,
            }),
            ..Ext::default()
        };
        ack.payload_len = 0;
        let mut b = [0u8; 80];
        assert_eq!(
            ack.emit(&mut Frame::new_unchecked(&mut b[..]), |_| ()),
            Err(Error::Malformed)
        );
    }

    #[test]
    fn head_not_covered_by_crc() {
        let mut b = fixture();
        b[14] = 0; // peer index rewritten by the I/O layer
        b[0] = 0x0a;
        let f = Frame::new_checked(&b[..]).unwrap();
        assert!(FrameRepr::parse(&f).is_ok());
    }

    #[test]
    fn the_local_wake_frame_carries_the_steering_fields() {
        let mac = [2, 0, 0, 0, 0, 5];
        let w = local_wake_frame(mac, 77);
        let f = Frame::new_unchecked(&w[..]);
        assert_eq!(f.dst_mac(), mac);
        assert_eq!(w[field::SRC_MAC], mac);
        assert_eq!(w[field::ETHERTYPE], ETHERTYPE.to_be_bytes());
        assert_eq!(f.dst_qpn().endpoint(), 77);
        assert_eq!(f.dst_qpn().slot(), 0);
        assert!(is_local_wake(&w));
        // Not a frame the engine accepts.
        assert!(Frame::new_checked(&w[..]).is_err());
        assert!(!is_local_wake(&w[..field::PTYPE]));
    }
}
