//! Packet types (abs 16) and the extension headers each one carries
//! (docs/wire.md §3.1 and §4).

/// Declares a `u8` code-point enum with an `Unknown(u8)` variant, so that
/// every byte round-trips (smoltcp's `enum_with_unknown!`).
macro_rules! enum_with_unknown {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $value:expr ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+,
            /// A value this version does not know.
            Unknown(u8),
        }

        impl From<u8> for $name {
            #[inline]
            fn from(v: u8) -> Self {
                match v {
                    $( $value => $name::$variant ),+,
                    other => $name::Unknown(other),
                }
            }
        }

        impl From<$name> for u8 {
            #[inline]
            fn from(v: $name) -> u8 {
                match v {
                    $( $name::$variant => $value ),+,
                    $name::Unknown(other) => other,
                }
            }
        }
    };
}
pub(crate) use enum_with_unknown;

enum_with_unknown! {
    /// Verbs packet types: `0x80 | IBTA opcode bits 4..0`.
    ///
    /// Open-MX types (0..45) are never verbs packets and decode as
    /// `Unknown`.
    pub enum Opcode {
        /// SEND First.
        SendFirst = 0x80,
        /// SEND Middle.
        SendMiddle = 0x81,
        /// SEND Last.
        SendLast = 0x82,
        /// SEND Last with Immediate.
        SendLastImm = 0x83,
        /// SEND Only.
        SendOnly = 0x84,
        /// SEND Only with Immediate.
        SendOnlyImm = 0x85,
        /// RDMA WRITE First.
        WriteFirst = 0x86,
        /// RDMA WRITE Middle.
        WriteMiddle = 0x87,
        /// RDMA WRITE Last.
        WriteLast = 0x88,
        /// RDMA WRITE Last with Immediate.
        WriteLastImm = 0x89,
        /// RDMA WRITE Only.
        WriteOnly = 0x8A,
        /// RDMA WRITE Only with Immediate.
        WriteOnlyImm = 0x8B,
        /// RDMA READ Request.
        ReadRequest = 0x8C,
        /// RDMA READ Response First.
        ReadResponseFirst = 0x8D,
        /// RDMA READ Response Middle.
        ReadResponseMiddle = 0x8E,
        /// RDMA READ Response Last.
        ReadResponseLast = 0x8F,
        /// RDMA READ Response Only.
        ReadResponseOnly = 0x90,
        /// Acknowledge (ACK, NAK, RNR NAK).
        Acknowledge = 0x91,
        /// Atomic Acknowledge.
        AtomicAcknowledge = 0x92,
        /// Compare and swap.
        CompareSwap = 0x93,
        /// Fetch and add.
        FetchAdd = 0x94,
        /// SEND Last with Invalidate.
        SendLastInv = 0x96,
        /// SEND Only with Invalidate.
        SendOnlyInv = 0x97,
    }
}

enum_with_unknown! {
    /// Transport service (IBTA opcode bits 7..5), carried at abs 19.
    pub enum Transport {
        /// Reliable connected.
        Rc = 0,
        /// Unreliable connected.
        Uc = 1,
        /// Reliable datagram (never used).
        Rd = 2,
        /// Unreliable datagram.
        Ud = 3,
    }
}

/// Where a packet sits in its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Position {
    /// First packet of a multi-packet message.
    First,
    /// Neither first nor last.
    Middle,
    /// Last packet of a multi-packet message.
    Last,
    /// The only packet of the message.
    Only,
}

impl Position {
    /// True for `First` and `Only`.
    #[inline]
    pub const fn is_first(self) -> bool {
        matches!(self, Position::First | Position::Only)
    }

    /// True for `Last` and `Only`.
    #[inline]
    pub const fn is_last(self) -> bool {
        matches!(self, Position::Last | Position::Only)
    }

    /// Position of packet `index` of a message of `count` packets.
    #[inline]
    pub const fn of(index: u32, count: u32) -> Position {
        match (index == 0, index + 1 >= count) {
            (true, true) => Position::Only,
            (true, false) => Position::First,
            (false, true) => Position::Last,
            (false, false) => Position::Middle,
        }
    }
}

/// Which extension headers follow the BTH (docs/wire.md §4 table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExtLayout {
    /// RETH (16 bytes).
    pub reth: bool,
    /// AtomicETH (28 bytes).
    pub atomic_eth: bool,
    /// AETH (8 bytes).
    pub aeth: bool,
    /// ImmDt (4 bytes).
    pub imm: bool,
    /// IETH (4 bytes).
    pub ieth: bool,
    /// AtomicAckETH (8 bytes).
    pub atomic_ack: bool,
}

impl ExtLayout {
    /// Total extension length in bytes.
    pub const fn len(&self) -> usize {
        (self.reth as usize) * crate::ext::RETH_LEN
            + (self.atomic_eth as usize) * crate::ext::ATOMIC_ETH_LEN
            + (self.aeth as usize) * crate::ext::AETH_LEN
            + (self.imm as usize) * 4
            + (self.ieth as usize) * 4
            + (self.atomic_ack as usize) * crate::ext::ATOMIC_ACK_LEN
    }

    /// True when no extension header is present.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

const fn layout(reth: bool, atomic_eth: bool, aeth: bool, imm: bool, ieth: bool) -> ExtLayout {
    ExtLayout {
        reth,
        atomic_eth,
        aeth,
        imm,
        ieth,
        atomic_ack: false,
    }
}

impl Opcode {
    /// Extension headers of this opcode; `None` for unknown opcodes.
    pub const fn layout(self) -> Option<ExtLayout> {
        use Opcode::*;
        const N: bool = false;
        const Y: bool = true;
        Some(match self {
            SendFirst | SendMiddle | SendLast | SendOnly => layout(N, N, N, N, N),
            SendLastImm | SendOnlyImm => layout(N, N, N, Y, N),
            SendLastInv | SendOnlyInv => layout(N, N, N, N, Y),
            WriteFirst | WriteOnly | ReadRequest => layout(Y, N, N, N, N),
            WriteMiddle | WriteLast | ReadResponseMiddle => layout(N, N, N, N, N),
            WriteLastImm => layout(N, N, N, Y, N),
            WriteOnlyImm => layout(Y, N, N, Y, N),
            ReadResponseFirst | ReadResponseLast | ReadResponseOnly | Acknowledge => {
                layout(N, N, Y, N, N)
            }
            AtomicAcknowledge => ExtLayout {
                reth: false,
                atomic_eth: false,
                aeth: true,
                imm: false,
                ieth: false,
                atomic_ack: true,
            },
            CompareSwap | FetchAdd => layout(N, Y, N, N, N),
            Unknown(_) => return None,
        })
    }

    /// True if packets of this opcode may carry payload.
    pub const fn may_have_payload(self) -> bool {
        !matches!(
            self,
            Opcode::ReadRequest
                | Opcode::Acknowledge
                | Opcode::AtomicAcknowledge
                | Opcode::CompareSwap
                | Opcode::FetchAdd
                | Opcode::Unknown(_)
        )
    }

    /// True for packets sent by a requester (they consume responder PSNs).
    pub const fn is_request(self) -> bool {
        self.is_send() || self.is_write() || matches!(self, Opcode::ReadRequest) || self.is_atomic()
    }

    /// True for packets sent by a responder.
    pub const fn is_response(self) -> bool {
        self.is_read_response() || matches!(self, Opcode::Acknowledge | Opcode::AtomicAcknowledge)
    }

    /// SEND opcodes.
    pub const fn is_send(self) -> bool {
        use Opcode::*;
        matches!(
            self,
            SendFirst
                | SendMiddle
                | SendLast
                | SendLastImm
                | SendOnly
                | SendOnlyImm
                | SendLastInv
                | SendOnlyInv
        )
    }

    /// RDMA WRITE opcodes.
    pub const fn is_write(self) -> bool {
        use Opcode::*;
        matches!(
            self,
            WriteFirst | WriteMiddle | WriteLast | WriteLastImm | WriteOnly | WriteOnlyImm
        )
    }

    /// RDMA READ response opcodes.
    pub const fn is_read_response(self) -> bool {
        use Opcode::*;
        matches!(
            self,
            ReadResponseFirst | ReadResponseMiddle | ReadResponseLast | ReadResponseOnly
        )
    }

    /// Atomic request opcodes.
    pub const fn is_atomic(self) -> bool {
        matches!(self, Opcode::CompareSwap | Opcode::FetchAdd)
    }

    /// Position in the message for SEND, WRITE and READ response opcodes;
    /// single-packet operations are `Only`.
    pub const fn position(self) -> Position {
        use Opcode::*;
        match self {
            SendFirst | WriteFirst | ReadResponseFirst => Position::First,
            SendMiddle | WriteMiddle | ReadResponseMiddle => Position::Middle,
            SendLast | SendLastImm | SendLastInv | WriteLast | WriteLastImm | ReadResponseLast => {
                Position::Last
            }
            _ => Position::Only,
        }
    }

    /// True if this opcode carries immediate data.
    pub const fn has_imm(self) -> bool {
        matches!(
            self,
            Opcode::SendLastImm | Opcode::SendOnlyImm | Opcode::WriteLastImm | Opcode::WriteOnlyImm
        )
    }

    /// The SEND opcode for a packet at `pos`, with immediate if `imm`.
    pub const fn send(pos: Position, imm: bool) -> Opcode {
        match (pos, imm) {
            (Position::First, _) => Opcode::SendFirst,
            (Position::Middle, _) => Opcode::SendMiddle,
            (Position::Last, false) => Opcode::SendLast,
            (Position::Last, true) => Opcode::SendLastImm,
            (Position::Only, false) => Opcode::SendOnly,
            (Position::Only, true) => Opcode::SendOnlyImm,
        }
    }

    /// The RDMA WRITE opcode for a packet at `pos`, with immediate if `imm`.
    pub const fn write(pos: Position, imm: bool) -> Opcode {
        match (pos, imm) {
            (Position::First, _) => Opcode::WriteFirst,
            (Position::Middle, _) => Opcode::WriteMiddle,
            (Position::Last, false) => Opcode::WriteLast,
            (Position::Last, true) => Opcode::WriteLastImm,
            (Position::Only, false) => Opcode::WriteOnly,
            (Position::Only, true) => Opcode::WriteOnlyImm,
        }
    }

    /// The READ response opcode for a packet at `pos`.
    pub const fn read_response(pos: Position) -> Opcode {
        match pos {
            Position::First => Opcode::ReadResponseFirst,
            Position::Middle => Opcode::ReadResponseMiddle,
            Position::Last => Opcode::ReadResponseLast,
            Position::Only => Opcode::ReadResponseOnly,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_byte() {
        for b in 0..=255u8 {
            assert_eq!(u8::from(Opcode::from(b)), b);
            assert_eq!(u8::from(Transport::from(b)), b);
        }
    }

    #[test]
    fn openmx_types_are_not_verbs() {
        for b in [0u8, 1, 3, 4, 35, 36, 44, 45, 0x95, 0x98, 0x9F, 0xFF] {
            assert!(matches!(Opcode::from(b), Opcode::Unknown(_)));
            assert!(Opcode::from(b).layout().is_none());
        }
    }

    #[test]
    fn ext_lengths() {
        assert_eq!(Opcode::WriteOnlyImm.layout().unwrap().len(), 20);
        assert_eq!(Opcode::CompareSwap.layout().unwrap().len(), 28);
        assert_eq!(Opcode::AtomicAcknowledge.layout().unwrap().len(), 16);
        assert_eq!(Opcode::Acknowledge.layout().unwrap().len(), 8);
        assert_eq!(Opcode::SendMiddle.layout().unwrap().len(), 0);
    }

    #[test]
    fn positions() {
        assert_eq!(Position::of(0, 1), Position::Only);
        assert_eq!(Position::of(0, 3), Position::First);
        assert_eq!(Position::of(1, 3), Position::Middle);
        assert_eq!(Position::of(2, 3), Position::Last);
        assert_eq!(Opcode::send(Position::Last, true), Opcode::SendLastImm);
        assert_eq!(Opcode::SendLastImm.position(), Position::Last);
        assert!(Opcode::WriteOnlyImm.has_imm());
    }
}
