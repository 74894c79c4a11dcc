//! QP states and attributes, with the IBTA state machine (IBTA 10.3.1)
//! and the encodings of the transport and RNR timers.

use crate::time::Duration;
use omx_wire::{Psn, Qpn};

/// `enum ibv_qp_state` (same values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum QpState {
    /// IBV_QPS_RESET.
    Reset = 0,
    /// IBV_QPS_INIT.
    Init = 1,
    /// IBV_QPS_RTR.
    Rtr = 2,
    /// IBV_QPS_RTS.
    Rts = 3,
    /// IBV_QPS_SQD.
    Sqd = 4,
    /// IBV_QPS_SQE.
    Sqe = 5,
    /// IBV_QPS_ERR.
    Err = 6,
}

impl QpState {
    /// Name as printed by rdma-core.
    pub const fn name(self) -> &'static str {
        match self {
            QpState::Reset => "RESET",
            QpState::Init => "INIT",
            QpState::Rtr => "RTR",
            QpState::Rts => "RTS",
            QpState::Sqd => "SQD",
            QpState::Sqe => "SQE",
            QpState::Err => "ERR",
        }
    }

    /// True if `ibv_modify_qp` may move a QP from `self` to `to`
    /// (IBTA 10.3.1, figure 124; RC, no alternate path).
    pub const fn can_transition(self, to: QpState) -> bool {
        use QpState::*;
        matches!(
            (self, to),
            (_, Reset)
                | (_, Err)
                | (Reset, Init)
                | (Init, Init)
                | (Init, Rtr)
                | (Rtr, Rts)
                | (Rts, Rts)
                | (Rts, Sqd)
                | (Sqd, Sqd)
                | (Sqd, Rts)
                | (Sqe, Rts)
        )
    }

    /// The responder accepts request packets in these states.
    pub const fn receives(self) -> bool {
        matches!(self, QpState::Rtr | QpState::Rts | QpState::Sqd)
    }

    /// The requester sends in this state.
    pub const fn sends(self) -> bool {
        matches!(self, QpState::Rts)
    }
}

/// `enum ibv_mtu`: the path MTU (payload bytes per packet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PathMtu {
    /// IBV_MTU_256.
    Mtu256 = 1,
    /// IBV_MTU_512.
    Mtu512 = 2,
    /// IBV_MTU_1024.
    Mtu1024 = 3,
    /// IBV_MTU_2048.
    Mtu2048 = 4,
    /// IBV_MTU_4096.
    Mtu4096 = 5,
}

impl PathMtu {
    /// Payload bytes per packet.
    pub const fn bytes(self) -> u32 {
        128 << (self as u32)
    }

    /// From the `ibv_mtu` value.
    pub const fn from_ibv(v: u8) -> Option<Self> {
        Some(match v {
            1 => PathMtu::Mtu256,
            2 => PathMtu::Mtu512,
            3 => PathMtu::Mtu1024,
            4 => PathMtu::Mtu2048,
            5 => PathMtu::Mtu4096,
            _ => return None,
        })
    }
}

/// Link-level addressing of the remote port (from the AH / `ah_attr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PathInfo {
    /// Remote MAC.
    pub dmac: [u8; 6],
    /// Local MAC.
    pub smac: [u8; 6],
    /// Our index in the remote peer table (0xFFFF = unknown).
    pub peer_index: u16,
}

/// Attributes for [`crate::RcQp::modify`] (`ibv_qp_attr` + mask: `None`
/// means "not in the mask").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QpAttr {
    /// IBV_QP_STATE.
    pub state: Option<QpState>,
    /// IBV_QP_PATH_MTU.
    pub path_mtu: Option<PathMtu>,
    /// IBV_QP_DEST_QPN.
    pub dest_qpn: Option<Qpn>,
    /// IBV_QP_RQ_PSN.
    pub rq_psn: Option<Psn>,
    /// IBV_QP_SQ_PSN.
    pub sq_psn: Option<Psn>,
    /// IBV_QP_TIMEOUT (0 = infinite).
    pub timeout: Option<u8>,
    /// IBV_QP_RETRY_CNT (0..7).
    pub retry_cnt: Option<u8>,
    /// IBV_QP_RNR_RETRY (0..7, 7 = infinite).
    pub rnr_retry: Option<u8>,
    /// IBV_QP_MIN_RNR_TIMER (0..31).
    pub min_rnr_timer: Option<u8>,
    /// IBV_QP_MAX_QP_RD_ATOMIC.
    pub max_rd_atomic: Option<u8>,
    /// IBV_QP_MAX_DEST_RD_ATOMIC.
    pub max_dest_rd_atomic: Option<u8>,
    /// IBV_QP_AV (MACs).
    pub path: Option<PathInfo>,
}

/// IBTA transport timer: `4.096 µs × 2^timeout`; `None` for 0 (infinite).
pub const fn transport_timeout(timeout: u8) -> Option<Duration> {
    if timeout == 0 {
        None
    } else {
        let t = if timeout > 31 { 31 } else { timeout };
        Some(Duration::from_nanos(4096u64 << t))
    }
}

/// IBTA table 45: RNR timer code → delay, in units of 10 µs.
const RNR_TIMER_10US: [u32; 32] = [
    65536, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536,
    2048, 3072, 4096, 6144, 8192, 12288, 16384, 24576, 32768, 49152,
];

/// The RNR delay encoded by `code` (low 5 bits).
pub const fn rnr_timer(code: u8) -> Duration {
    Duration::from_micros(RNR_TIMER_10US[(code & 0x1F) as usize] as u64 * 10)
}

/// `rnr_retry` value meaning "retry forever".
pub const RNR_RETRY_INFINITE: u8 = 7;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers() {
        assert_eq!(transport_timeout(0), None);
        assert_eq!(transport_timeout(1).unwrap().as_nanos(), 8192);
        assert_eq!(transport_timeout(14).unwrap().as_nanos(), 67_108_864);
        assert_eq!(rnr_timer(0), Duration::from_micros(655_360));
        assert_eq!(rnr_timer(1), Duration::from_micros(10));
        assert_eq!(rnr_timer(14), Duration::from_micros(1280));
        assert_eq!(rnr_timer(31), Duration::from_micros(491_520));
    }

    #[test]
    fn transitions() {
        use QpState::*;
        assert!(Reset.can_transition(Init));
        assert!(!Reset.can_transition(Rtr));
        assert!(Init.can_transition(Rtr));
        assert!(Rtr.can_transition(Rts));
        assert!(!Rtr.can_transition(Init));
        assert!(Err.can_transition(Reset));
        assert!(!Err.can_transition(Rts));
        assert!(Rts.can_transition(Err));
        assert_eq!(PathMtu::Mtu256.bytes(), 256);
        assert_eq!(PathMtu::Mtu4096.bytes(), 4096);
    }
}
