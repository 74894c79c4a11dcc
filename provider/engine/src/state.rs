//! QP states and attributes, with the IBTA state machine (IBTA 10.3.1)
//! and the encodings of the transport and RNR timers.

use crate::time::Duration;
use omx_wire::Psn;

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
    /// Every state, in `ibv_qp_state` order.
    pub const ALL: [QpState; 7] = [
        QpState::Reset,
        QpState::Init,
        QpState::Rtr,
        QpState::Rts,
        QpState::Sqd,
        QpState::Sqe,
        QpState::Err,
    ];

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

    /// True if `ibv_modify_qp` may move a QP from `self` to `to` with some
    /// attribute mask (IBTA 10.3.1, figure 124; the Linux kernel's
    /// `qp_state_table`): see [`transition_attrs`].
    pub fn can_transition(self, to: QpState) -> bool {
        transition_attrs(QpType::Rc, self, to).is_some()
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

/// `enum ibv_qp_type` for the transports whose transitions
/// [`qp_attr_mask_ok`] knows (same values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum QpType {
    /// IBV_QPT_RC.
    Rc = 2,
    /// IBV_QPT_UC.
    Uc = 3,
    /// IBV_QPT_UD.
    Ud = 4,
}

/// `enum ibv_qp_attr_mask` bits (the values of `verbs.h`, equal to the
/// kernel's `IB_QP_*`).
pub mod attr_mask {
    /// IBV_QP_STATE.
    pub const STATE: u32 = 1;
    /// IBV_QP_CUR_STATE.
    pub const CUR_STATE: u32 = 1 << 1;
    /// IBV_QP_EN_SQD_ASYNC_NOTIFY.
    pub const EN_SQD_ASYNC_NOTIFY: u32 = 1 << 2;
    /// IBV_QP_ACCESS_FLAGS.
    pub const ACCESS_FLAGS: u32 = 1 << 3;
    /// IBV_QP_PKEY_INDEX.
    pub const PKEY_INDEX: u32 = 1 << 4;
    /// IBV_QP_PORT.
    pub const PORT: u32 = 1 << 5;
    /// IBV_QP_QKEY.
    pub const QKEY: u32 = 1 << 6;
    /// IBV_QP_AV.
    pub const AV: u32 = 1 << 7;
    /// IBV_QP_PATH_MTU.
    pub const PATH_MTU: u32 = 1 << 8;
    /// IBV_QP_TIMEOUT.
    pub const TIMEOUT: u32 = 1 << 9;
    /// IBV_QP_RETRY_CNT.
    pub const RETRY_CNT: u32 = 1 << 10;
    /// IBV_QP_RNR_RETRY.
    pub const RNR_RETRY: u32 = 1 << 11;
    /// IBV_QP_RQ_PSN.
    pub const RQ_PSN: u32 = 1 << 12;
    /// IBV_QP_MAX_QP_RD_ATOMIC.
    pub const MAX_QP_RD_ATOMIC: u32 = 1 << 13;
    /// IBV_QP_ALT_PATH.
    pub const ALT_PATH: u32 = 1 << 14;
    /// IBV_QP_MIN_RNR_TIMER.
    pub const MIN_RNR_TIMER: u32 = 1 << 15;
    /// IBV_QP_SQ_PSN.
    pub const SQ_PSN: u32 = 1 << 16;
    /// IBV_QP_MAX_DEST_RD_ATOMIC.
    pub const MAX_DEST_RD_ATOMIC: u32 = 1 << 17;
    /// IBV_QP_PATH_MIG_STATE.
    pub const PATH_MIG_STATE: u32 = 1 << 18;
    /// IBV_QP_CAP.
    pub const CAP: u32 = 1 << 19;
    /// IBV_QP_DEST_QPN.
    pub const DEST_QPN: u32 = 1 << 20;
    /// IBV_QP_RATE_LIMIT.
    pub const RATE_LIMIT: u32 = 1 << 25;
}

/// The attributes a transition requires and those it also accepts
/// (`(required, optional)`, [`attr_mask`] bits, [`attr_mask::STATE`]
/// never listed), or `None` if `ibv_modify_qp` can never move a QP of
/// `qp_type` from `cur` to `next`.
///
/// This is IBTA 10.3.1 (table 91 and figure 124) as the Linux kernel
/// encodes it in `qp_state_table` (drivers/infiniband/core/verbs.c),
/// which `ib_modify_qp_is_ok()` applies and every kernel provider uses:
/// the kernel module checks every `modify_qp` against that table, so the
/// engine answers exactly as it does for RC, UC and UD (the unit tests
/// walk it transition by transition). Note what the kernel's table says
/// and IBTA's prose does not spell out: RESET goes only to RESET and
/// INIT (not to ERROR), RTR to RTR is not a transition, and an SQE→RTS
/// of an RC QP takes no attribute at all.
pub fn transition_attrs(qp_type: QpType, cur: QpState, next: QpState) -> Option<(u32, u32)> {
    use attr_mask::*;
    use QpState::*;
    use QpType::*;
    let none = Some((0, 0));
    let opt = |o: u32| Some((0, o));
    // Per-type (RC, UC, UD) values of one field of the table.
    let by = |rc: u32, uc: u32, ud: u32| match qp_type {
        Rc => rc,
        Uc => uc,
        Ud => ud,
    };
    match (cur, next) {
        (Reset, Reset) => none,
        (Reset, Init) => Some((
            by(
                PKEY_INDEX | PORT | ACCESS_FLAGS,
                PKEY_INDEX | PORT | ACCESS_FLAGS,
                PKEY_INDEX | PORT | QKEY,
            ),
            0,
        )),
        (Init, Init) => opt(by(
            PKEY_INDEX | PORT | ACCESS_FLAGS,
            PKEY_INDEX | PORT | ACCESS_FLAGS,
            PKEY_INDEX | PORT | QKEY,
        )),
        (Init, Rtr) => Some((
            by(
                AV | PATH_MTU | DEST_QPN | RQ_PSN | MAX_DEST_RD_ATOMIC | MIN_RNR_TIMER,
                AV | PATH_MTU | DEST_QPN | RQ_PSN,
                0,
            ),
            by(
                ALT_PATH | ACCESS_FLAGS | PKEY_INDEX,
                ALT_PATH | ACCESS_FLAGS | PKEY_INDEX,
                PKEY_INDEX | QKEY,
            ),
        )),
        (Rtr, Rts) => Some((
            by(
                TIMEOUT | RETRY_CNT | RNR_RETRY | SQ_PSN | MAX_QP_RD_ATOMIC,
                SQ_PSN,
                SQ_PSN,
            ),
            by(
                CUR_STATE | ALT_PATH | ACCESS_FLAGS | MIN_RNR_TIMER | PATH_MIG_STATE,
                CUR_STATE | ALT_PATH | ACCESS_FLAGS | PATH_MIG_STATE,
                CUR_STATE | QKEY,
            ),
        )),
        (Rts, Rts) | (Sqd, Rts) => opt(by(
            CUR_STATE | ACCESS_FLAGS | ALT_PATH | PATH_MIG_STATE | MIN_RNR_TIMER,
            CUR_STATE | ACCESS_FLAGS | ALT_PATH | PATH_MIG_STATE,
            CUR_STATE | QKEY,
        )),
        (Rts, Sqd) => opt(EN_SQD_ASYNC_NOTIFY),
        (Sqd, Sqd) => opt(by(
            PORT | AV
                | TIMEOUT
                | RETRY_CNT
                | RNR_RETRY
                | MAX_QP_RD_ATOMIC
                | MAX_DEST_RD_ATOMIC
                | ALT_PATH
                | ACCESS_FLAGS
                | PKEY_INDEX
                | MIN_RNR_TIMER
                | PATH_MIG_STATE,
            AV | ALT_PATH | ACCESS_FLAGS | PKEY_INDEX | PATH_MIG_STATE,
            PKEY_INDEX | QKEY,
        )),
        (Sqe, Rts) => opt(by(0, CUR_STATE | ACCESS_FLAGS, CUR_STATE | QKEY)),
        (Init | Rtr | Rts | Sqd | Sqe | Err, Reset | Err) => none,
        _ => None,
    }
}

/// Whether `ibv_modify_qp` with attribute mask `mask` ([`attr_mask`]
/// bits) may move a QP of `qp_type` from `cur` to `next` (`next` = `cur`
/// when the mask lacks [`attr_mask::STATE`]): the transition exists, the
/// mask holds every attribute it requires and nothing it does not accept,
/// and [`attr_mask::CUR_STATE`] only from RTR, RTS, SQD or SQE. The same
/// answer as the kernel's `ib_modify_qp_is_ok()` for these types, for
/// every `u32` mask (unknown bits are refused).
pub fn qp_attr_mask_ok(qp_type: QpType, cur: QpState, next: QpState, mask: u32) -> bool {
    if mask & attr_mask::CUR_STATE != 0
        && !matches!(
            cur,
            QpState::Rtr | QpState::Rts | QpState::Sqd | QpState::Sqe
        )
    {
        return false;
    }
    let Some((req, opt)) = transition_attrs(qp_type, cur, next) else {
        return false;
    };
    mask & req == req && mask & !(req | opt | attr_mask::STATE) == 0
}

/// `IBV_ACCESS_*` bits a QP's access flags may hold.
pub mod access {
    /// IBV_ACCESS_LOCAL_WRITE (meaningless on a QP; accepted).
    pub const LOCAL_WRITE: u32 = 1;
    /// IBV_ACCESS_REMOTE_WRITE: the responder executes RDMA WRITEs.
    pub const REMOTE_WRITE: u32 = 2;
    /// IBV_ACCESS_REMOTE_READ: the responder executes RDMA READs.
    pub const REMOTE_READ: u32 = 4;
    /// IBV_ACCESS_REMOTE_ATOMIC: the responder executes atomics.
    pub const REMOTE_ATOMIC: u32 = 8;
    /// IBV_ACCESS_MW_BIND: accepted and not needed (a bind through any
    /// RC or UC QP is checked against the MR's own IBV_ACCESS_MW_BIND).
    pub const MW_BIND: u32 = 16;
    /// Every bit a QP accepts; any other is refused.
    pub const QP_VALID: u32 = LOCAL_WRITE | REMOTE_WRITE | REMOTE_READ | REMOTE_ATOMIC | MW_BIND;
}

/// Most RDMA READ/atomic requests a QP may have outstanding as requester
/// (`max_rd_atomic`) or accept as responder (`max_dest_rd_atomic`): the
/// device's `max_qp_rd_atom` / `max_qp_init_rd_atom`.
pub const MAX_RD_ATOMIC: u8 = 16;

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
///
/// The engine keeps the attributes it uses; those it does not model
/// (port, P_Key index, Q_Key, alternate path, ...) are named only by
/// their bits in `extra_mask`, so that [`crate::RcQp::check_modify`]
/// validates the whole `ibv_modify_qp` mask against the transition
/// table, as the kernel does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QpAttr {
    /// IBV_QP_STATE.
    pub state: Option<QpState>,
    /// IBV_QP_ACCESS_FLAGS (`IBV_ACCESS_*`, see [`access`]; other bits
    /// are refused).
    pub access_flags: Option<u32>,
    /// IBV_QP_PATH_MTU.
    pub path_mtu: Option<PathMtu>,
    /// IBV_QP_DEST_QPN: `dest_qp_num` as given; more than 24 bits is
    /// refused (as the kernel module does).
    pub dest_qpn: Option<u32>,
    /// IBV_QP_RQ_PSN (a `Psn` holds the low 24 bits: larger values are
    /// masked, as the kernel does).
    pub rq_psn: Option<Psn>,
    /// IBV_QP_SQ_PSN (masked to 24 bits, as `rq_psn`).
    pub sq_psn: Option<Psn>,
    /// IBV_QP_TIMEOUT (0..31, 0 = infinite).
    pub timeout: Option<u8>,
    /// IBV_QP_RETRY_CNT (0..7).
    pub retry_cnt: Option<u8>,
    /// IBV_QP_RNR_RETRY (0..7, 7 = infinite).
    pub rnr_retry: Option<u8>,
    /// IBV_QP_MIN_RNR_TIMER (0..31).
    pub min_rnr_timer: Option<u8>,
    /// IBV_QP_MAX_QP_RD_ATOMIC (0..16; the requester keeps at least one
    /// READ outstanding, so 0 acts as 1).
    pub max_rd_atomic: Option<u8>,
    /// IBV_QP_MAX_DEST_RD_ATOMIC (0..16; 0 refuses every READ).
    pub max_dest_rd_atomic: Option<u8>,
    /// IBV_QP_AV (MACs).
    pub path: Option<PathInfo>,
    /// IBV_QP_QKEY's value (UD QPs, [`crate::UdQp`]). `Some` puts
    /// [`attr_mask::QKEY`] in [`QpAttr::mask`]; the bit may also come in
    /// `extra_mask` (QKEY is not in [`QpAttr::MODELLED_MASK`], so a
    /// provider that passes every unmodelled bit there keeps working),
    /// but a UD QP refuses the bit without the value. An RC QP never
    /// accepts QKEY (the kernel's table).
    pub qkey: Option<u32>,
    /// The other `ibv_modify_qp` mask bits ([`attr_mask`]), for
    /// attributes the engine does not model: CUR_STATE,
    /// EN_SQD_ASYNC_NOTIFY, PKEY_INDEX, PORT, QKEY, ALT_PATH,
    /// PATH_MIG_STATE, CAP, RATE_LIMIT, and any bit unknown to the
    /// engine (which the table refuses). A bit of an attribute this
    /// struct has a field for is refused here.
    pub extra_mask: u32,
}

impl QpAttr {
    /// The mask bits of the attributes that have a field in [`QpAttr`]
    /// (the provider passes every other bit in `extra_mask`).
    pub const MODELLED_MASK: u32 = attr_mask::STATE
        | attr_mask::ACCESS_FLAGS
        | attr_mask::PATH_MTU
        | attr_mask::DEST_QPN
        | attr_mask::RQ_PSN
        | attr_mask::SQ_PSN
        | attr_mask::TIMEOUT
        | attr_mask::RETRY_CNT
        | attr_mask::RNR_RETRY
        | attr_mask::MIN_RNR_TIMER
        | attr_mask::MAX_QP_RD_ATOMIC
        | attr_mask::MAX_DEST_RD_ATOMIC
        | attr_mask::AV;

    /// The `ibv_modify_qp` attribute mask these attributes stand for.
    pub fn mask(&self) -> u32 {
        use attr_mask::*;
        let bit = |present: bool, b: u32| if present { b } else { 0 };
        bit(self.state.is_some(), STATE)
            | bit(self.access_flags.is_some(), ACCESS_FLAGS)
            | bit(self.path_mtu.is_some(), PATH_MTU)
            | bit(self.dest_qpn.is_some(), DEST_QPN)
            | bit(self.rq_psn.is_some(), RQ_PSN)
            | bit(self.sq_psn.is_some(), SQ_PSN)
            | bit(self.timeout.is_some(), TIMEOUT)
            | bit(self.retry_cnt.is_some(), RETRY_CNT)
            | bit(self.rnr_retry.is_some(), RNR_RETRY)
            | bit(self.min_rnr_timer.is_some(), MIN_RNR_TIMER)
            | bit(self.max_rd_atomic.is_some(), MAX_QP_RD_ATOMIC)
            | bit(self.max_dest_rd_atomic.is_some(), MAX_DEST_RD_ATOMIC)
            | bit(self.path.is_some(), AV)
            | bit(self.qkey.is_some(), QKEY)
            | self.extra_mask
    }

    /// Every value in range (the transition aside): retry counts 0..7,
    /// timers 0..31, rd_atomic depths 0..[`MAX_RD_ATOMIC`], access bits
    /// within [`access::QP_VALID`], a 24-bit destination QPN, and no
    /// modelled attribute in `extra_mask`. Path MTU and PSNs cannot be out
    /// of range by type.
    pub fn values_ok(&self) -> bool {
        let le = |v: Option<u8>, max: u8| v.is_none_or(|v| v <= max);
        le(self.retry_cnt, 7)
            && le(self.rnr_retry, 7)
            && le(self.min_rnr_timer, 31)
            && le(self.timeout, 31)
            && le(self.max_rd_atomic, MAX_RD_ATOMIC)
            && le(self.max_dest_rd_atomic, MAX_RD_ATOMIC)
            && self.access_flags.is_none_or(|f| f & !access::QP_VALID == 0)
            && self.dest_qpn.is_none_or(|q| q < omx_wire::PSN_MODULUS)
            && self.extra_mask & Self::MODELLED_MASK == 0
    }
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
        assert!(!Reset.can_transition(Err), "not in the kernel's table");
        assert!(Init.can_transition(Rtr));
        assert!(Rtr.can_transition(Rts));
        assert!(!Rtr.can_transition(Rtr));
        assert!(!Rtr.can_transition(Init));
        assert!(Err.can_transition(Reset));
        assert!(!Err.can_transition(Rts));
        assert!(Rts.can_transition(Err));
        assert_eq!(PathMtu::Mtu256.bytes(), 256);
        assert_eq!(PathMtu::Mtu4096.bytes(), 4096);
    }

    use attr_mask::*;

    /// One row of the kernel's `qp_state_table` (drivers/infiniband/
    /// core/verbs.c) for RC, UC and UD, written out independently of
    /// `transition_attrs`: (from, to, [(required, optional); RC, UC, UD]).
    type Row = (QpState, QpState, [(u32, u32); 3]);

    fn kernel_table() -> Vec<Row> {
        use QpState::*;
        let same = |r: u32, o: u32| [(r, o); 3];
        let rc_uc_init = PKEY_INDEX | PORT | ACCESS_FLAGS;
        let ud_init = PKEY_INDEX | PORT | QKEY;
        let rtr_opt = ALT_PATH | ACCESS_FLAGS | PKEY_INDEX;
        let rts_rc = CUR_STATE | ALT_PATH | ACCESS_FLAGS | MIN_RNR_TIMER | PATH_MIG_STATE;
        let rts_uc = CUR_STATE | ALT_PATH | ACCESS_FLAGS | PATH_MIG_STATE;
        let rts_ud = CUR_STATE | QKEY;
        let mut rows = vec![
            (Reset, Reset, same(0, 0)),
            (
                Reset,
                Init,
                [(rc_uc_init, 0), (rc_uc_init, 0), (ud_init, 0)],
            ),
            (Init, Init, [(0, rc_uc_init), (0, rc_uc_init), (0, ud_init)]),
            (
                Init,
                Rtr,
                [
                    (
                        AV | PATH_MTU | DEST_QPN | RQ_PSN | MAX_DEST_RD_ATOMIC | MIN_RNR_TIMER,
                        rtr_opt,
                    ),
                    (AV | PATH_MTU | DEST_QPN | RQ_PSN, rtr_opt),
                    (0, PKEY_INDEX | QKEY),
                ],
            ),
            (
                Rtr,
                Rts,
                [
                    (
                        TIMEOUT | RETRY_CNT | RNR_RETRY | SQ_PSN | MAX_QP_RD_ATOMIC,
                        rts_rc,
                    ),
                    (SQ_PSN, rts_uc),
                    (SQ_PSN, rts_ud),
                ],
            ),
            (Rts, Rts, [(0, rts_rc), (0, rts_uc), (0, rts_ud)]),
            (Rts, Sqd, same(0, EN_SQD_ASYNC_NOTIFY)),
            (Sqd, Rts, [(0, rts_rc), (0, rts_uc), (0, rts_ud)]),
            (
                Sqd,
                Sqd,
                [
                    (
                        0,
                        PORT | AV
                            | TIMEOUT
                            | RETRY_CNT
                            | RNR_RETRY
                            | MAX_QP_RD_ATOMIC
                            | MAX_DEST_RD_ATOMIC
                            | ALT_PATH
                            | ACCESS_FLAGS
                            | PKEY_INDEX
                            | MIN_RNR_TIMER
                            | PATH_MIG_STATE,
                    ),
                    (
                        0,
                        AV | ALT_PATH | ACCESS_FLAGS | PKEY_INDEX | PATH_MIG_STATE,
                    ),
                    (0, PKEY_INDEX | QKEY),
                ],
            ),
            (
                Sqe,
                Rts,
                [(0, 0), (0, CUR_STATE | ACCESS_FLAGS), (0, CUR_STATE | QKEY)],
            ),
        ];
        for from in [Init, Rtr, Rts, Sqd, Sqe, Err] {
            rows.push((from, Reset, same(0, 0)));
            rows.push((from, Err, same(0, 0)));
        }
        rows
    }

    const TYPES: [QpType; 3] = [QpType::Rc, QpType::Uc, QpType::Ud];

    /// Every bit of a `u32` mask, known or not.
    fn bits() -> impl Iterator<Item = u32> {
        (0..32).map(|i| 1u32 << i)
    }

    /// `(from, to)` for `t` accepts exactly `req` plus any subset of
    /// `opt`, checked one bit at a time, with and without the STATE bit.
    fn exactly(t: QpType, from: QpState, to: QpState, req: u32, opt: u32) {
        let ok = |m: u32| qp_attr_mask_ok(t, from, to, m);
        let what = format!("{t:?} {} -> {}", from.name(), to.name());
        assert_eq!(transition_attrs(t, from, to), Some((req, opt)), "{what}");
        for state in [0, STATE] {
            assert!(ok(state | req), "{what}: required only");
            assert!(ok(state | req | opt), "{what}: all optional");
            for b in bits() {
                let m = state | req | b;
                if req & b != 0 {
                    assert!(!ok(state | (req & !b)), "{what}: without {b:#x}");
                } else if opt & b != 0 {
                    assert!(ok(m), "{what}: optional {b:#x}");
                } else if b != STATE {
                    assert!(!ok(m), "{what}: not accepted {b:#x}");
                }
            }
        }
    }

    #[test]
    fn the_kernels_table_transition_by_transition() {
        let rows = kernel_table();
        for (from, to, per_type) in &rows {
            for (t, (req, opt)) in TYPES.iter().zip(per_type) {
                exactly(*t, *from, *to, *req, *opt);
            }
        }
        // Every other pair is refused whatever the mask.
        for from in QpState::ALL {
            for to in QpState::ALL {
                if rows.iter().any(|(f, t, _)| (*f, *t) == (from, to)) {
                    continue;
                }
                for t in TYPES {
                    assert_eq!(transition_attrs(t, from, to), None);
                    for m in [0, STATE, u32::MAX] {
                        assert!(!qp_attr_mask_ok(t, from, to, m), "{from:?} -> {to:?}");
                    }
                    for b in bits() {
                        assert!(!qp_attr_mask_ok(t, from, to, STATE | b));
                    }
                }
            }
        }
    }

    /// IBV_QP_CUR_STATE only from RTR, RTS, SQD and SQE, even where the
    /// transition would accept it.
    #[test]
    fn cur_state_only_from_the_states_that_have_one() {
        use QpState::*;
        for t in TYPES {
            assert!(qp_attr_mask_ok(t, Rts, Rts, STATE | CUR_STATE));
            assert!(!qp_attr_mask_ok(t, Init, Reset, STATE | CUR_STATE));
            assert!(!qp_attr_mask_ok(t, Err, Err, STATE | CUR_STATE));
            assert!(!qp_attr_mask_ok(t, Rtr, Reset, STATE | CUR_STATE));
        }
        assert!(qp_attr_mask_ok(QpType::Uc, Sqe, Rts, STATE | CUR_STATE));
        assert!(!qp_attr_mask_ok(QpType::Rc, Sqe, Rts, STATE | CUR_STATE));
    }

    #[test]
    fn attribute_masks_and_values() {
        let a = QpAttr {
            state: Some(QpState::Rtr),
            path_mtu: Some(PathMtu::Mtu1024),
            dest_qpn: Some(0x1001),
            rq_psn: Some(Psn::new(1)),
            max_dest_rd_atomic: Some(0),
            min_rnr_timer: Some(12),
            path: Some(PathInfo::default()),
            extra_mask: PKEY_INDEX,
            ..QpAttr::default()
        };
        assert_eq!(
            a.mask(),
            STATE
                | PATH_MTU
                | DEST_QPN
                | RQ_PSN
                | MAX_DEST_RD_ATOMIC
                | MIN_RNR_TIMER
                | AV
                | PKEY_INDEX
        );
        assert!(a.values_ok());
        let with = |f: fn(&mut QpAttr)| {
            let mut b = a;
            f(&mut b);
            b.values_ok()
        };
        assert!(!with(|b| b.dest_qpn = Some(1 << 24)));
        assert!(with(|b| b.dest_qpn = Some(0xFF_FFFF)));
        assert!(!with(|b| b.max_dest_rd_atomic = Some(17)));
        assert!(with(|b| b.max_dest_rd_atomic = Some(16)));
        assert!(!with(|b| b.max_rd_atomic = Some(17)));
        assert!(!with(|b| b.retry_cnt = Some(8)));
        assert!(!with(|b| b.rnr_retry = Some(8)));
        assert!(with(|b| b.rnr_retry = Some(7)));
        assert!(!with(|b| b.timeout = Some(32)));
        assert!(with(|b| b.timeout = Some(31)));
        assert!(!with(|b| b.min_rnr_timer = Some(32)));
        assert!(with(|b| b.access_flags = Some(access::QP_VALID)));
        assert!(!with(|b| b.access_flags = Some(32)));
        assert!(!with(|b| b.access_flags = Some(1 << 20)));
        assert!(!with(|b| b.extra_mask |= TIMEOUT), "modelled bit as extra");
        // Every modelled bit has its field, every other one is extra.
        assert_eq!(
            QpAttr::MODELLED_MASK & (CUR_STATE | PORT | QKEY | ALT_PATH),
            0
        );
    }
}
