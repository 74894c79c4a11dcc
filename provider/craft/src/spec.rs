//! What a crafted frame is made of, written as text on a command line,
//! and the frames a spec stands for.
//!
//! Every field of docs/wire.md can be set, including the ones a correct
//! peer never sends (a foreign source MAC or QPN, a PSN outside any
//! window, a READ longer than 2^31), but the frame itself is always built
//! by [`FrameRepr::emit`]: its structure, CRC32C and padding are those of
//! the provider, unless `bad_crc` asks for a wrong CRC on purpose.
//!
//! Text forms (also what [`crate::decode`] prints, so that a sniffed value
//! can be pasted back):
//! - MAC: `02:00:00:00:00:01`;
//! - numbers: decimal or `0x` hexadecimal; PSNs are taken modulo 2^24, so
//!   shell arithmetic on a learned PSN needs no masking;
//! - opcodes: the names of docs/wire.md §3.1 (`RDMA_WRITE_ONLY`), a short
//!   alias without `RDMA_` and with `IMM`/`INV`/`ACK` (`WRITE_ONLY`,
//!   `SEND_ONLY_IMM`, `ACK`), or the packet type byte (`0x8a`);
//! - syndromes: `ACK`, `RNR-<timer code>`, `NAK-SEQ`, `NAK-INV`,
//!   `NAK-ACCESS`, `NAK-OP`, `NAK-RD`, `NAK-<code>`, or the byte (`0x62`).

use omx_wire::{
    Aeth, AtomicEth, Frame, FrameRepr, NakCode, Opcode, Paeth, Psn, Qpn, Reth, Syndrome, Transport,
    PSN_MODULUS,
};

/// Formats a MAC address as `aa:bb:cc:dd:ee:ff`.
pub fn fmt_mac(m: &[u8; 6]) -> String {
    let s: Vec<String> = m.iter().map(|b| format!("{b:02x}")).collect();
    s.join(":")
}

/// Parses `aa:bb:cc:dd:ee:ff` (also with `-`).
pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return Err(format!(
            "MAC address '{s}': want six bytes aa:bb:cc:dd:ee:ff"
        ));
    }
    let mut m = [0u8; 6];
    for (d, p) in m.iter_mut().zip(&parts) {
        *d = u8::from_str_radix(p, 16).map_err(|_| format!("MAC address '{s}': bad byte '{p}'"))?;
    }
    Ok(m)
}

/// Parses a decimal or `0x` hexadecimal number.
pub fn parse_u64(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let r = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16),
        None => t.parse(),
    };
    r.map_err(|_| format!("'{s}' is not a number (decimal or 0x hex)"))
}

fn parse_bounded(s: &str, max: u64, what: &str) -> Result<u64, String> {
    let v = parse_u64(s)?;
    if v > max {
        return Err(format!("{what} '{s}' is larger than {max:#x}"));
    }
    Ok(v)
}

/// Parses a 32-bit number.
pub fn parse_u32(s: &str) -> Result<u32, String> {
    parse_bounded(s, u64::from(u32::MAX), "value").map(|v| v as u32)
}

/// Parses a 16-bit number.
pub fn parse_u16(s: &str) -> Result<u16, String> {
    parse_bounded(s, u64::from(u16::MAX), "value").map(|v| v as u16)
}

/// Parses a byte.
pub fn parse_u8(s: &str) -> Result<u8, String> {
    parse_bounded(s, u64::from(u8::MAX), "value").map(|v| v as u8)
}

/// Parses a PSN, modulo 2^24.
pub fn parse_psn(s: &str) -> Result<Psn, String> {
    parse_u64(s).map(|v| Psn::new((v % u64::from(PSN_MODULUS)) as u32))
}

/// Parses a 24-bit QPN.
pub fn parse_qpn(s: &str) -> Result<Qpn, String> {
    parse_bounded(s, u64::from(PSN_MODULUS - 1), "QPN").map(|v| Qpn::new(v as u32))
}

/// Opcode names: (opcode, docs/wire.md name, short alias).
const OPCODES: [(Opcode, &str, &str); 23] = [
    (Opcode::SendFirst, "SEND_FIRST", "SEND_FIRST"),
    (Opcode::SendMiddle, "SEND_MIDDLE", "SEND_MIDDLE"),
    (Opcode::SendLast, "SEND_LAST", "SEND_LAST"),
    (
        Opcode::SendLastImm,
        "SEND_LAST_WITH_IMMEDIATE",
        "SEND_LAST_IMM",
    ),
    (Opcode::SendOnly, "SEND_ONLY", "SEND_ONLY"),
    (
        Opcode::SendOnlyImm,
        "SEND_ONLY_WITH_IMMEDIATE",
        "SEND_ONLY_IMM",
    ),
    (Opcode::WriteFirst, "RDMA_WRITE_FIRST", "WRITE_FIRST"),
    (Opcode::WriteMiddle, "RDMA_WRITE_MIDDLE", "WRITE_MIDDLE"),
    (Opcode::WriteLast, "RDMA_WRITE_LAST", "WRITE_LAST"),
    (
        Opcode::WriteLastImm,
        "RDMA_WRITE_LAST_WITH_IMMEDIATE",
        "WRITE_LAST_IMM",
    ),
    (Opcode::WriteOnly, "RDMA_WRITE_ONLY", "WRITE_ONLY"),
    (
        Opcode::WriteOnlyImm,
        "RDMA_WRITE_ONLY_WITH_IMMEDIATE",
        "WRITE_ONLY_IMM",
    ),
    (Opcode::ReadRequest, "RDMA_READ_REQUEST", "READ_REQUEST"),
    (
        Opcode::ReadResponseFirst,
        "RDMA_READ_RESPONSE_FIRST",
        "READ_RESPONSE_FIRST",
    ),
    (
        Opcode::ReadResponseMiddle,
        "RDMA_READ_RESPONSE_MIDDLE",
        "READ_RESPONSE_MIDDLE",
    ),
    (
        Opcode::ReadResponseLast,
        "RDMA_READ_RESPONSE_LAST",
        "READ_RESPONSE_LAST",
    ),
    (
        Opcode::ReadResponseOnly,
        "RDMA_READ_RESPONSE_ONLY",
        "READ_RESPONSE_ONLY",
    ),
    (Opcode::Acknowledge, "ACKNOWLEDGE", "ACK"),
    (
        Opcode::AtomicAcknowledge,
        "ATOMIC_ACKNOWLEDGE",
        "ATOMIC_ACK",
    ),
    (Opcode::CompareSwap, "COMPARE_SWAP", "CMP_SWAP"),
    (Opcode::FetchAdd, "FETCH_ADD", "FETCH_ADD"),
    (
        Opcode::SendLastInv,
        "SEND_LAST_WITH_INVALIDATE",
        "SEND_LAST_INV",
    ),
    (
        Opcode::SendOnlyInv,
        "SEND_ONLY_WITH_INVALIDATE",
        "SEND_ONLY_INV",
    ),
];

/// The docs/wire.md name of an opcode (`0x..` for an unknown type).
pub fn opcode_name(op: Opcode) -> String {
    OPCODES
        .iter()
        .find(|(o, _, _)| *o == op)
        .map_or_else(|| format!("{:#04x}", u8::from(op)), |(_, n, _)| (*n).into())
}

/// Parses an opcode name, alias or packet type byte (case-insensitive).
pub fn parse_opcode(s: &str) -> Result<Opcode, String> {
    let u = s.trim().to_ascii_uppercase();
    if let Some((o, _, _)) = OPCODES.iter().find(|(_, n, a)| u == *n || u == *a) {
        return Ok(*o);
    }
    if u.starts_with("0X") || u.bytes().all(|b| b.is_ascii_digit()) {
        return parse_u8(s).map(Opcode::from);
    }
    Err(format!(
        "unknown opcode '{s}' (one of {})",
        OPCODES.map(|(_, _, a)| a).join(", ")
    ))
}

/// An opcode filter: a name or alias, or a prefix ending in `*`
/// (`READ_RESPONSE_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpcodePattern {
    text: String,
    prefix: bool,
}

impl OpcodePattern {
    /// Parses one pattern.
    pub fn parse(s: &str) -> Result<Self, String> {
        let u = s.trim().to_ascii_uppercase();
        if let Some(p) = u.strip_suffix('*') {
            let any = OPCODES
                .iter()
                .any(|(_, n, a)| n.starts_with(p) || a.starts_with(p));
            if !any {
                return Err(format!("opcode pattern '{s}' matches no opcode"));
            }
            return Ok(OpcodePattern {
                text: p.into(),
                prefix: true,
            });
        }
        let op = parse_opcode(s)?;
        Ok(OpcodePattern {
            text: opcode_name(op),
            prefix: false,
        })
    }

    /// Whether `op` matches.
    pub fn matches(&self, op: Opcode) -> bool {
        if !self.prefix {
            return opcode_name(op) == self.text;
        }
        OPCODES
            .iter()
            .find(|(o, _, _)| *o == op)
            .is_some_and(|(_, n, a)| n.starts_with(&self.text) || a.starts_with(&self.text))
    }
}

const NAK_NAMES: [(NakCode, &str); 5] = [
    (NakCode::PsnSequenceError, "SEQ"),
    (NakCode::InvalidRequest, "INV"),
    (NakCode::RemoteAccessError, "ACCESS"),
    (NakCode::RemoteOperationalError, "OP"),
    (NakCode::InvalidRdRequest, "RD"),
];

/// `ACK`, `RNR-<code>`, `NAK-<name or code>`.
pub fn syndrome_name(s: Syndrome) -> String {
    match s {
        Syndrome::Ack => "ACK".into(),
        Syndrome::RnrNak(t) => format!("RNR-{t}"),
        Syndrome::Nak(c) => match NAK_NAMES.iter().find(|(n, _)| *n == c) {
            Some((_, name)) => format!("NAK-{name}"),
            None => format!("NAK-{}", u8::from(c)),
        },
    }
}

/// Parses a syndrome token (see the module documentation).
pub fn parse_syndrome(s: &str) -> Result<Syndrome, String> {
    let u = s.trim().to_ascii_uppercase();
    if u == "ACK" {
        return Ok(Syndrome::Ack);
    }
    if let Some(t) = u.strip_prefix("RNR-") {
        let code = parse_u8(t)?;
        if code > 31 {
            return Err(format!("RNR timer code '{t}' is larger than 31"));
        }
        return Ok(Syndrome::RnrNak(code));
    }
    if let Some(t) = u.strip_prefix("NAK-") {
        if let Some((c, _)) = NAK_NAMES.iter().find(|(_, n)| *n == t) {
            return Ok(Syndrome::Nak(*c));
        }
        let code = parse_u8(t)?;
        if code > 31 {
            return Err(format!("NAK code '{t}' is larger than 31"));
        }
        return Ok(Syndrome::Nak(NakCode::from(code)));
    }
    if u.starts_with("0X") {
        return Syndrome::from_byte(parse_u8(s)?)
            .map_err(|_| format!("syndrome byte '{s}' is of a reserved class"));
    }
    Err(format!(
        "syndrome '{s}': want ACK, RNR-<code>, NAK-SEQ|INV|ACCESS|OP|RD|<code> or a byte"
    ))
}

fn fields(s: &str, min: usize, max: usize, form: &str) -> Result<Vec<String>, String> {
    let v: Vec<String> = s.split(':').map(str::to_owned).collect();
    if v.len() < min || v.len() > max {
        return Err(format!("'{s}': want {form}"));
    }
    Ok(v)
}

/// `PSN:CREDITS` (credits default to [`omx_wire::INITIAL_CREDITS`]).
pub fn parse_paeth(s: &str) -> Result<Paeth, String> {
    let f = fields(s, 1, 2, "PSN[:CREDITS]")?;
    Ok(Paeth {
        psn: parse_psn(&f[0])?,
        credits: f
            .get(1)
            .map_or(Ok(omx_wire::INITIAL_CREDITS), |c| parse_u16(c))?,
    })
}

/// `VA:RKEY:LEN`.
pub fn parse_reth(s: &str) -> Result<Reth, String> {
    let f = fields(s, 3, 3, "VA:RKEY:LEN")?;
    Ok(Reth {
        va: parse_u64(&f[0])?,
        rkey: parse_u32(&f[1])?,
        dma_len: parse_u32(&f[2])?,
    })
}

/// `SYNDROME[:MSN[:CREDITS]]` (MSN 0, credits
/// [`omx_wire::INITIAL_CREDITS`] by default).
pub fn parse_aeth(s: &str) -> Result<Aeth, String> {
    let f = fields(s, 1, 3, "SYNDROME[:MSN[:CREDITS]]")?;
    let msn = f.get(1).map_or(Ok(0), |m| parse_u64(m))?;
    if msn >= u64::from(PSN_MODULUS) {
        return Err(format!("MSN '{}' does not fit 24 bits", f[1]));
    }
    Ok(Aeth {
        syndrome: parse_syndrome(&f[0])?,
        msn: msn as u32,
        credits: f
            .get(2)
            .map_or(Ok(omx_wire::INITIAL_CREDITS), |c| parse_u16(c))?,
    })
}

/// `VA:RKEY:SWAP_ADD[:COMPARE]`.
pub fn parse_atomic(s: &str) -> Result<AtomicEth, String> {
    let f = fields(s, 3, 4, "VA:RKEY:SWAP_ADD[:COMPARE]")?;
    Ok(AtomicEth {
        va: parse_u64(&f[0])?,
        rkey: parse_u32(&f[1])?,
        swap_add: parse_u64(&f[2])?,
        compare: f.get(3).map_or(Ok(0), |c| parse_u64(c))?,
    })
}

/// Parses a transport name (`RC`, `UC`, `RD`, `UD`) or its number.
pub fn parse_transport(s: &str) -> Result<Transport, String> {
    match s.trim().to_ascii_uppercase().as_str() {
        "RC" => Ok(Transport::Rc),
        "UC" => Ok(Transport::Uc),
        "RD" => Ok(Transport::Rd),
        "UD" => Ok(Transport::Ud),
        _ => parse_u8(s).map(Transport::from),
    }
}

/// The payload bytes of a crafted frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// `len` copies of one byte.
    Fill {
        /// Number of bytes.
        len: usize,
        /// The byte.
        byte: u8,
    },
    /// These bytes.
    Bytes(Vec<u8>),
}

impl Payload {
    fn len(&self) -> usize {
        match self {
            Payload::Fill { len, .. } => *len,
            Payload::Bytes(b) => b.len(),
        }
    }

    fn write(&self, dst: &mut [u8]) {
        match self {
            Payload::Fill { byte, .. } => dst.fill(*byte),
            Payload::Bytes(b) => dst.copy_from_slice(b),
        }
    }
}

/// Parses hexadecimal bytes (`a5a5ff`, optional `0x`).
pub fn parse_hex_bytes(s: &str) -> Result<Vec<u8>, String> {
    let h = s.trim().trim_start_matches("0x");
    if !h.len().is_multiple_of(2) {
        return Err(format!("hex payload '{s}' has an odd number of digits"));
    }
    (0..h.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&h[i..i + 2], 16)
                .map_err(|_| format!("hex payload '{s}': bad digit"))
        })
        .collect()
}

/// One crafted frame: any header omx-wire can emit, a payload, and
/// optionally a wrong CRC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameSpec {
    /// Head, BTH and extension headers: exactly those the opcode carries
    /// must be set (plus `ext.ack` on request packets). `payload_len` is
    /// ignored: the payload's length is used.
    pub header: FrameRepr,
    /// Payload.
    pub payload: Payload,
    /// Store a CRC32C that does not match (every bit inverted).
    pub bad_crc: bool,
}

/// How the frames of a sweep differ: frame `i` adds `i * step` to each
/// field (PSNs modulo 2^24, QPNs modulo 2^24, the RETH address wrapping).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Number of frames (at least 1).
    pub count: u32,
    /// Added to the BTH PSN.
    pub psn_step: u32,
    /// Added to the PAETH PSN.
    pub paeth_step: u32,
    /// Added to the destination QPN.
    pub dst_qpn_step: u32,
    /// Added to the source QPN.
    pub src_qpn_step: u32,
    /// Added to the RETH virtual address.
    pub va_step: u64,
}

fn need(present: bool, wanted: bool, what: &str, op: Opcode) -> Result<(), String> {
    match (present, wanted) {
        (false, true) => Err(format!("{} needs {what}", opcode_name(op))),
        (true, false) => Err(format!("{} carries no {what}", opcode_name(op))),
        _ => Ok(()),
    }
}

impl FrameSpec {
    /// The frame's header, checked against the opcode's layout
    /// (docs/wire.md §4) with a message naming what is missing or extra.
    pub fn repr(&self) -> Result<FrameRepr, String> {
        let op = self.header.bth.opcode;
        let layout = op
            .layout()
            .ok_or_else(|| format!("packet type {:#04x} has no layout", u8::from(op)))?;
        let e = &self.header.ext;
        need(e.reth.is_some(), layout.reth, "RETH (--reth)", op)?;
        need(
            e.atomic.is_some(),
            layout.atomic_eth,
            "AtomicETH (--atomic)",
            op,
        )?;
        need(e.aeth.is_some(), layout.aeth, "AETH (--aeth)", op)?;
        need(e.imm.is_some(), layout.imm, "ImmDt (--imm)", op)?;
        need(e.ieth.is_some(), layout.ieth, "IETH (--ieth)", op)?;
        need(
            e.atomic_ack.is_some(),
            layout.atomic_ack,
            "AtomicAckETH (--atomic-ack)",
            op,
        )?;
        if e.ack.is_some() && !op.is_request() {
            return Err(format!(
                "{} is not a request packet: no PAETH (--paeth)",
                opcode_name(op)
            ));
        }
        let len = self.payload.len();
        if len != 0 && !op.may_have_payload() {
            return Err(format!("{} carries no payload", opcode_name(op)));
        }
        if len > usize::from(u16::MAX) {
            return Err(format!(
                "payload of {len} bytes does not fit the 16-bit length"
            ));
        }
        Ok(FrameRepr {
            payload_len: len,
            ..self.header
        })
    }

    /// The frame's bytes, padded to the Ethernet minimum.
    pub fn build(&self) -> Result<Vec<u8>, String> {
        let repr = self.repr()?;
        let mut buf = vec![0u8; repr.buffer_len()];
        let mut frame = Frame::new_unchecked(&mut buf[..]);
        let n = repr
            .emit(&mut frame, |p| self.payload.write(p))
            .map_err(|e| format!("cannot emit the frame: {e}"))?;
        if self.bad_crc {
            let o = frame.crc_offset();
            for b in &mut buf[o..o + omx_wire::CRC_LEN] {
                *b = !*b;
            }
        }
        buf.truncate(n);
        Ok(buf)
    }

    /// Frame `i` of `sweep`.
    #[must_use]
    pub fn nth(&self, sweep: &Sweep, i: u32) -> FrameSpec {
        let mut s = self.clone();
        let step = |v: u32, by: u32| v.wrapping_add(i.wrapping_mul(by));
        let (b, e) = (&mut s.header.bth, &mut s.header.ext);
        b.psn = Psn::new(step(b.psn.value(), sweep.psn_step));
        b.dst_qpn = Qpn::new(step(b.dst_qpn.value(), sweep.dst_qpn_step));
        b.src_qpn = Qpn::new(step(b.src_qpn.value(), sweep.src_qpn_step));
        if let Some(a) = &mut e.ack {
            a.psn = Psn::new(step(a.psn.value(), sweep.paeth_step));
        }
        if let Some(r) = &mut e.reth {
            r.va = r.va.wrapping_add(u64::from(i).wrapping_mul(sweep.va_step));
        }
        s
    }

    /// Every frame of `sweep`, built (stops at the first error).
    pub fn build_sweep(&self, sweep: &Sweep) -> Result<Vec<Vec<u8>>, String> {
        (0..sweep.count.max(1))
            .map(|i| self.nth(sweep, i).build())
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use omx_wire::{Bth, Ext};

    /// An RDMA WRITE Only from 02:..:02 (QPN 0x2001) to 02:..:01 (QPN
    /// 0x1001): the base of the crafted-frame tests.
    pub(crate) fn write_only() -> FrameSpec {
        FrameSpec {
            header: FrameRepr {
                dst_mac: [2, 0, 0, 0, 0, 1],
                src_mac: [2, 0, 0, 0, 0, 2],
                peer_index: omx_wire::PEER_INDEX_UNKNOWN,
                bth: Bth {
                    opcode: Opcode::WriteOnly,
                    transport: Transport::Rc,
                    ack_req: true,
                    solicited: false,
                    dst_qpn: Qpn::new(0x1001),
                    src_qpn: Qpn::new(0x2001),
                    psn: Psn::new(0xff_fffe),
                },
                ext: Ext {
                    reth: Some(Reth {
                        va: 0x7f00_0000_0000,
                        rkey: 0x1234,
                        dma_len: 100,
                    }),
                    ..Ext::default()
                },
                payload_len: 0,
            },
            payload: Payload::Fill {
                len: 100,
                byte: 0xa5,
            },
            bad_crc: false,
        }
    }

    fn parse(b: &[u8]) -> FrameRepr {
        let f = Frame::new_checked(b).expect("structurally valid");
        assert!(f.check_crc(), "good CRC");
        FrameRepr::parse(&f).expect("parses")
    }

    #[test]
    fn macs_and_numbers() {
        let m = parse_mac("02:0a:FF:00:00:01").unwrap();
        assert_eq!(m, [2, 0x0a, 0xff, 0, 0, 1]);
        assert_eq!(fmt_mac(&m), "02:0a:ff:00:00:01");
        assert_eq!(parse_mac("02-0a-ff-00-00-01").unwrap(), m);
        assert!(parse_mac("02:0a:ff:00:00").is_err());
        assert!(parse_mac("02:0a:ff:00:00:zz").is_err());
        assert_eq!(parse_u64("0x10").unwrap(), 16);
        assert_eq!(parse_u64("10").unwrap(), 10);
        assert!(parse_u64("x10").is_err());
        assert_eq!(parse_psn("0x1000005").unwrap(), Psn::new(5));
        assert!(parse_qpn("0x1000000").is_err());
        assert_eq!(parse_qpn("0x1001").unwrap(), Qpn::new(0x1001));
        assert!(parse_u16("65536").is_err());
    }

    #[test]
    fn every_opcode_name_round_trips() {
        for (op, name, alias) in OPCODES {
            assert_eq!(parse_opcode(name).unwrap(), op);
            assert_eq!(parse_opcode(alias).unwrap(), op);
            assert_eq!(parse_opcode(&alias.to_lowercase()).unwrap(), op);
            assert_eq!(opcode_name(op), name);
            assert_eq!(parse_opcode(&format!("{:#04x}", u8::from(op))).unwrap(), op);
        }
        assert_eq!(opcode_name(Opcode::from(0x24)), "0x24");
        assert!(parse_opcode("WRITE").is_err());
    }

    #[test]
    fn opcode_patterns() {
        let p = OpcodePattern::parse("read_response_*").unwrap();
        assert!(p.matches(Opcode::ReadResponseFirst));
        assert!(p.matches(Opcode::ReadResponseOnly));
        assert!(!p.matches(Opcode::ReadRequest));
        let p = OpcodePattern::parse("RDMA_WRITE_*").unwrap();
        assert!(p.matches(Opcode::WriteOnlyImm));
        assert!(!p.matches(Opcode::SendOnly));
        let p = OpcodePattern::parse("ack").unwrap();
        assert!(p.matches(Opcode::Acknowledge));
        assert!(!p.matches(Opcode::AtomicAcknowledge));
        assert!(OpcodePattern::parse("BOGUS_*").is_err());
    }

    #[test]
    fn syndromes_round_trip() {
        for b in 0..=255u8 {
            let Ok(s) = Syndrome::from_byte(b) else {
                continue;
            };
            assert_eq!(parse_syndrome(&syndrome_name(s)).unwrap(), s, "{b:#x}");
        }
        assert_eq!(
            parse_syndrome("nak-access").unwrap(),
            Syndrome::Nak(NakCode::RemoteAccessError)
        );
        assert_eq!(
            parse_syndrome("0x62").unwrap(),
            parse_syndrome("NAK-ACCESS").unwrap()
        );
        assert!(parse_syndrome("0x40").is_err());
        assert!(parse_syndrome("RNR-32").is_err());
    }

    #[test]
    fn extension_specs() {
        let a = parse_aeth("NAK-INV:5:64").unwrap();
        assert_eq!(a.syndrome, Syndrome::Nak(NakCode::InvalidRequest));
        assert_eq!((a.msn, a.credits), (5, 64));
        let a = parse_aeth("RNR-14").unwrap();
        assert_eq!(
            (a.syndrome, a.msn, a.credits),
            (Syndrome::RnrNak(14), 0, 16)
        );
        assert!(parse_aeth("ACK:0x1000000").is_err());
        let r = parse_reth("0x7f0000001000:0x1234:0x80000001").unwrap();
        assert_eq!(
            (r.va, r.rkey, r.dma_len),
            (0x7f00_0000_1000, 0x1234, 0x8000_0001)
        );
        assert!(parse_reth("1:2").is_err());
        let p = parse_paeth("0x123456:256").unwrap();
        assert_eq!((p.psn, p.credits), (Psn::new(0x12_3456), 256));
        let x = parse_atomic("8:9:10").unwrap();
        assert_eq!((x.va, x.rkey, x.swap_add, x.compare), (8, 9, 10, 0));
        assert_eq!(parse_hex_bytes("0xa5ff").unwrap(), vec![0xa5, 0xff]);
        assert!(parse_hex_bytes("a5f").is_err());
        assert_eq!(parse_transport("ud").unwrap(), Transport::Ud);
    }

    #[test]
    fn crafted_frame_parses_back() {
        let s = write_only();
        let b = s.build().unwrap();
        assert_eq!(b.len(), 36 + 16 + 100 + 4);
        let r = parse(&b);
        assert_eq!(r, s.repr().unwrap());
        let f = Frame::new_checked(&b[..]).unwrap();
        assert_eq!(f.payload(), &[0xa5; 100][..]);
    }

    #[test]
    fn ack_is_padded_and_paeth_rides_first() {
        let mut s = write_only();
        s.header.bth.opcode = Opcode::Acknowledge;
        s.header.ext = Ext {
            aeth: Some(parse_aeth("NAK-ACCESS:1:64").unwrap()),
            ..Ext::default()
        };
        s.payload = Payload::Fill { len: 0, byte: 0 };
        let b = s.build().unwrap();
        assert_eq!(b.len(), omx_wire::MIN_FRAME_LEN);
        assert_eq!(parse(&b).ext.aeth, s.header.ext.aeth);

        let mut s = write_only();
        s.header.ext.ack = Some(parse_paeth("0x10:32").unwrap());
        let b = s.build().unwrap();
        let r = parse(&b);
        assert_eq!(r.ext.ack, s.header.ext.ack);
        assert_eq!(r.ext.reth, s.header.ext.reth);
    }

    #[test]
    fn layout_mistakes_are_named() {
        let mut s = write_only();
        s.header.ext.reth = None;
        assert!(s.build().unwrap_err().contains("needs RETH"));
        let mut s = write_only();
        s.header.bth.opcode = Opcode::WriteMiddle;
        assert!(s.build().unwrap_err().contains("carries no RETH"));
        let mut s = write_only();
        s.header.bth.opcode = Opcode::Acknowledge;
        s.header.ext = Ext {
            aeth: Some(parse_aeth("ACK").unwrap()),
            ack: Some(Paeth::default()),
            ..Ext::default()
        };
        s.payload = Payload::Fill { len: 0, byte: 0 };
        assert!(s.build().unwrap_err().contains("no PAETH"));
        let mut s = write_only();
        s.header.bth.opcode = Opcode::ReadRequest;
        assert!(s.build().unwrap_err().contains("no payload"));
    }

    #[test]
    fn bad_crc_is_the_only_difference() {
        let mut s = write_only();
        let good = s.build().unwrap();
        s.bad_crc = true;
        let bad = s.build().unwrap();
        assert_eq!(good.len(), bad.len());
        let f = Frame::new_checked(&bad[..]).unwrap();
        assert!(!f.check_crc());
        assert_eq!(FrameRepr::parse(&f), Err(omx_wire::Error::BadCrc));
        let differ: Vec<usize> = (0..good.len()).filter(|&i| good[i] != bad[i]).collect();
        assert_eq!(
            differ,
            (f.crc_offset()..f.crc_offset() + 4).collect::<Vec<_>>()
        );
    }

    #[test]
    fn sweeps_step_and_wrap() {
        let mut s = write_only();
        s.header.ext.ack = Some(parse_paeth("0xfffffe:16").unwrap());
        let sw = Sweep {
            count: 4,
            psn_step: 1,
            paeth_step: 2,
            dst_qpn_step: 0,
            src_qpn_step: 1,
            va_step: 4096,
        };
        let frames = s.build_sweep(&sw).unwrap();
        assert_eq!(frames.len(), 4);
        let psns: Vec<u32> = frames.iter().map(|b| parse(b).bth.psn.value()).collect();
        assert_eq!(psns, [0xff_fffe, 0xff_ffff, 0, 1]);
        let r3 = parse(&frames[3]);
        assert_eq!(r3.ext.ack.unwrap().psn, Psn::new(4));
        assert_eq!(r3.bth.src_qpn, Qpn::new(0x2004));
        assert_eq!(r3.bth.dst_qpn, Qpn::new(0x1001));
        assert_eq!(r3.ext.reth.unwrap().va, 0x7f00_0000_0000 + 3 * 4096);
        // count 0 still means one frame.
        assert_eq!(s.build_sweep(&Sweep::default()).unwrap().len(), 1);
    }

    /// Every opcode, with the extension headers its layout names and a
    /// payload where one is allowed, builds a frame that parses back to
    /// the same header with a good CRC.
    #[test]
    fn every_opcode_builds_a_parsable_frame() {
        for (op, name, _) in OPCODES {
            let l = op.layout().unwrap();
            let mut s = write_only();
            s.header.bth.opcode = op;
            s.header.ext = Ext {
                ack: op.is_request().then(|| parse_paeth("7:9").unwrap()),
                reth: l.reth.then(|| parse_reth("1:2:3").unwrap()),
                atomic: l.atomic_eth.then(|| parse_atomic("8:1:2:3").unwrap()),
                aeth: l.aeth.then(|| parse_aeth("ACK:1:2").unwrap()),
                imm: l.imm.then_some(0xdead_beef),
                ieth: l.ieth.then_some(0x1234),
                atomic_ack: l.atomic_ack.then_some(99),
            };
            let len = if op.may_have_payload() { 17 } else { 0 };
            s.payload = Payload::Bytes((0..len as u8).collect());
            let b = s.build().unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(parse(&b), s.repr().unwrap(), "{name}");
        }
    }
}
