//! Captured frames: decoding with omx-wire, one-line text, shell
//! `KEY=VALUE` lines, and the filters of `sniff`.
//!
//! Values are printed in the forms `send` accepts (`--reth` takes what
//! `reth=` shows), so a sniffed field can be fed back into a forged frame.

use omx_wire::{Frame, FrameRepr, Qpn, Syndrome};

use crate::spec::{fmt_mac, opcode_name, syndrome_name, OpcodePattern};

/// Which way a frame crossed the interface it was captured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Received by the interface (any packet type but outgoing).
    In,
    /// Sent by a socket of this host (`PACKET_OUTGOING`).
    Out,
}

impl Dir {
    fn name(self) -> &'static str {
        match self {
            Dir::In => "in",
            Dir::Out => "out",
        }
    }
}

/// A captured omx frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// Direction.
    pub dir: Dir,
    /// Length in bytes.
    pub len: usize,
    /// Destination MAC (every captured frame has one).
    pub dst_mac: [u8; 6],
    /// Source MAC.
    pub src_mac: [u8; 6],
    /// The header when the frame is structurally valid (also with a bad
    /// CRC: see `error`).
    pub repr: Option<FrameRepr>,
    /// Why [`FrameRepr::parse`] refused it, if it did.
    pub error: Option<omx_wire::Error>,
}

impl Decoded {
    /// Decodes `bytes` (a whole Ethernet frame of EtherType 0x86DF).
    pub fn new(bytes: &[u8], dir: Dir) -> Self {
        let mut dst_mac = [0u8; 6];
        let mut src_mac = [0u8; 6];
        if bytes.len() >= 12 {
            dst_mac.copy_from_slice(&bytes[0..6]);
            src_mac.copy_from_slice(&bytes[6..12]);
        }
        let checked = Frame::new_checked(bytes);
        let repr = checked
            .as_ref()
            .ok()
            .and_then(|f| FrameRepr::parse_ignoring_crc(f).ok());
        let error = match &checked {
            Ok(f) => FrameRepr::parse(f).err(),
            Err(e) => Some(*e),
        };
        Decoded {
            dir,
            len: bytes.len(),
            dst_mac,
            src_mac,
            repr,
            error,
        }
    }

    /// The frame passed every check of [`FrameRepr::parse`].
    pub fn is_good(&self) -> bool {
        self.repr.is_some() && self.error.is_none()
    }

    /// The AETH syndrome, if the frame carries an AETH.
    pub fn syndrome(&self) -> Option<Syndrome> {
        self.repr.and_then(|r| r.ext.aeth).map(|a| a.syndrome)
    }

    /// One line: time, direction, length, MACs, opcode and every field.
    pub fn text(&self, t: f64) -> String {
        let mut s = format!(
            "{t:.6} {} {}B {}>{}",
            self.dir.name(),
            self.len,
            fmt_mac(&self.src_mac),
            fmt_mac(&self.dst_mac)
        );
        if let Some(r) = &self.repr {
            for (k, v) in fields(r) {
                match k {
                    // Split-out copies for shell use: `env` only.
                    "PAETH_PSN" | "RETH_VA" | "RETH_RKEY" | "RETH_LEN" | "SYNDROME" => {}
                    "OPCODE" => s += &format!(" {v}"),
                    "ACK_REQ" | "SOLICITED" => {
                        if v == "1" {
                            s += &format!(" {}", &k[..1]);
                        }
                    }
                    _ => s += &format!(" {}={v}", k.to_ascii_lowercase()),
                }
            }
        }
        if let Some(e) = self.error {
            s += &format!(" error={}", error_name(e));
        }
        s
    }

    /// `KEY=VALUE` lines, each key prefixed with `prefix`.
    pub fn env(&self, prefix: &str) -> Vec<String> {
        let mut v = vec![
            format!("{prefix}DIR={}", self.dir.name()),
            format!("{prefix}LEN={}", self.len),
            format!("{prefix}SRC_MAC={}", fmt_mac(&self.src_mac)),
            format!("{prefix}DST_MAC={}", fmt_mac(&self.dst_mac)),
        ];
        if let Some(r) = &self.repr {
            v.extend(
                fields(r)
                    .into_iter()
                    .map(|(k, x)| format!("{prefix}{k}={x}")),
            );
        }
        if let Some(e) = self.error {
            v.push(format!("{prefix}ERROR={}", error_name(e)));
        }
        v
    }
}

fn error_name(e: omx_wire::Error) -> &'static str {
    match e {
        omx_wire::Error::Truncated => "truncated",
        omx_wire::Error::Malformed => "malformed",
        omx_wire::Error::Unsupported => "unsupported",
        omx_wire::Error::BadCrc => "bad-crc",
    }
}

/// Formats a QPN or PSN as `0x` and six hex digits.
pub fn hex24(v: u32) -> String {
    format!("{v:#08x}")
}

/// The header's fields as (KEY, value), in wire order; only the extension
/// headers present.
fn fields(r: &FrameRepr) -> Vec<(&'static str, String)> {
    let b = &r.bth;
    let mut v = vec![
        ("OPCODE", opcode_name(b.opcode)),
        ("DST_QPN", hex24(b.dst_qpn.value())),
        ("SRC_QPN", hex24(b.src_qpn.value())),
        ("PSN", hex24(b.psn.value())),
        ("ACK_REQ", u8::from(b.ack_req).to_string()),
        ("SOLICITED", u8::from(b.solicited).to_string()),
    ];
    let e = &r.ext;
    if let Some(a) = e.ack {
        v.push(("PAETH", format!("{}:{}", hex24(a.psn.value()), a.credits)));
        v.push(("PAETH_PSN", hex24(a.psn.value())));
    }
    if let Some(x) = e.reth {
        v.push(("RETH", format!("{:#x}:{:#x}:{}", x.va, x.rkey, x.dma_len)));
        v.push(("RETH_VA", format!("{:#x}", x.va)));
        v.push(("RETH_RKEY", format!("{:#x}", x.rkey)));
        v.push(("RETH_LEN", x.dma_len.to_string()));
    }
    if let Some(x) = e.atomic {
        v.push((
            "ATOMIC",
            format!(
                "{:#x}:{:#x}:{:#x}:{:#x}",
                x.va, x.rkey, x.swap_add, x.compare
            ),
        ));
    }
    if let Some(a) = e.aeth {
        v.push((
            "AETH",
            format!("{}:{}:{}", syndrome_name(a.syndrome), a.msn, a.credits),
        ));
        v.push(("SYNDROME", syndrome_name(a.syndrome)));
    }
    if let Some(i) = e.imm {
        v.push(("IMM", format!("{i:#x}")));
    }
    if let Some(i) = e.ieth {
        v.push(("IETH", format!("{i:#x}")));
    }
    if let Some(o) = e.atomic_ack {
        v.push(("ATOMIC_ACK", format!("{o:#x}")));
    }
    v.push(("PAY_LEN", r.payload_len.to_string()));
    v
}

/// What `sniff` keeps: every set condition must hold.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Any of these opcodes (none: any opcode).
    pub opcodes: Vec<OpcodePattern>,
    /// Source MAC.
    pub src_mac: Option<[u8; 6]>,
    /// Destination MAC.
    pub dst_mac: Option<[u8; 6]>,
    /// Source QPN.
    pub src_qpn: Option<Qpn>,
    /// Destination QPN.
    pub dst_qpn: Option<Qpn>,
    /// AETH syndrome (frames without an AETH never match).
    pub syndrome: Option<Syndrome>,
    /// Direction.
    pub dir: Option<Dir>,
    /// Also frames [`FrameRepr::parse`] refuses (bad CRC, unknown type).
    pub include_bad: bool,
}

impl Filter {
    /// Whether `d` passes.
    pub fn matches(&self, d: &Decoded) -> bool {
        if !self.include_bad && !d.is_good() {
            return false;
        }
        if self.dir.is_some_and(|x| x != d.dir)
            || self.src_mac.is_some_and(|m| m != d.src_mac)
            || self.dst_mac.is_some_and(|m| m != d.dst_mac)
        {
            return false;
        }
        let needs_header = !self.opcodes.is_empty()
            || self.src_qpn.is_some()
            || self.dst_qpn.is_some()
            || self.syndrome.is_some();
        let Some(r) = &d.repr else {
            return !needs_header;
        };
        (self.opcodes.is_empty() || self.opcodes.iter().any(|p| p.matches(r.bth.opcode)))
            && self.src_qpn.is_none_or(|q| q == r.bth.src_qpn)
            && self.dst_qpn.is_none_or(|q| q == r.bth.dst_qpn)
            && self.syndrome.is_none_or(|s| d.syndrome() == Some(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::tests::write_only;
    use crate::spec::{parse_aeth, parse_syndrome, Payload};
    use omx_wire::{Ext, Opcode, Psn};

    #[test]
    fn text_shows_every_field_in_send_syntax() {
        let mut s = write_only();
        s.header.ext.ack = Some(omx_wire::Paeth {
            psn: Psn::new(0x42),
            credits: 64,
        });
        let d = Decoded::new(&s.build().unwrap(), Dir::Out);
        assert!(d.is_good());
        let t = d.text(1.5);
        assert!(
            t.starts_with("1.500000 out 164B 02:00:00:00:00:02>02:00:00:00:00:01 RDMA_WRITE_ONLY")
        );
        assert!(
            t.contains(" dst_qpn=0x001001 src_qpn=0x002001 psn=0xfffffe A "),
            "{t}"
        );
        assert!(t.contains(" paeth=0x000042:64 "), "{t}");
        assert!(t.contains(" reth=0x7f0000000000:0x1234:100 "), "{t}");
        assert!(t.ends_with(" pay_len=100"), "{t}");
        // What it prints is what send takes.
        let r = crate::spec::parse_reth("0x7f0000000000:0x1234:100").unwrap();
        assert_eq!(Some(r), s.header.ext.reth);
    }

    #[test]
    fn env_lines_and_errors() {
        let mut s = write_only();
        s.header.bth.opcode = Opcode::Acknowledge;
        s.header.ext = Ext {
            aeth: Some(parse_aeth("NAK-INV:3:64").unwrap()),
            ..Ext::default()
        };
        s.payload = Payload::Fill { len: 0, byte: 0 };
        s.bad_crc = true;
        let d = Decoded::new(&s.build().unwrap(), Dir::In);
        assert!(!d.is_good());
        let e = d.env("X_");
        for want in [
            "X_DIR=in",
            "X_LEN=60",
            "X_OPCODE=ACKNOWLEDGE",
            "X_SYNDROME=NAK-INV",
            "X_AETH=NAK-INV:3:64",
            "X_PSN=0xfffffe",
            "X_ERROR=bad-crc",
        ] {
            assert!(e.iter().any(|l| l == want), "{want} in {e:?}");
        }
        assert!(d.text(0.0).ends_with("error=bad-crc"));
        // Not an omx frame at all: MACs, length and the reason only.
        let d = Decoded::new(&[0u8; 20], Dir::In);
        assert_eq!(d.repr, None);
        assert_eq!(d.error, Some(omx_wire::Error::Truncated));
    }

    #[test]
    fn filters() {
        let s = write_only();
        let d = Decoded::new(&s.build().unwrap(), Dir::In);
        let mut f = Filter::default();
        assert!(f.matches(&d));
        f.opcodes = vec![OpcodePattern::parse("READ_RESPONSE_*").unwrap()];
        assert!(!f.matches(&d));
        f.opcodes.push(OpcodePattern::parse("WRITE_ONLY").unwrap());
        assert!(f.matches(&d));
        f.src_qpn = Some(Qpn::new(0x2001));
        f.dst_mac = Some([2, 0, 0, 0, 0, 1]);
        assert!(f.matches(&d));
        f.dir = Some(Dir::Out);
        assert!(!f.matches(&d));
        f.dir = None;
        f.syndrome = Some(parse_syndrome("ACK").unwrap());
        assert!(!f.matches(&d), "no AETH, no syndrome match");

        let mut bad = s.clone();
        bad.bad_crc = true;
        let d = Decoded::new(&bad.build().unwrap(), Dir::In);
        let mut f = Filter::default();
        assert!(!f.matches(&d));
        f.include_bad = true;
        assert!(f.matches(&d));
    }
}
