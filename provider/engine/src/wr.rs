//! Work requests and work completions, mirroring `ibv_send_wr`,
//! `ibv_recv_wr` and `ibv_wc` semantics (values of `ibv_wc_status` and
//! `ibv_wc_opcode` are kept so the provider converts with a cast).

use omx_wire::Qpn;

/// Most scatter/gather entries per work request (`max_send_sge`,
/// `max_recv_sge`). Fixed so that a WQE has no heap allocation.
pub const MAX_SGE: usize = 8;

/// One scatter/gather entry (`ibv_sge`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sge {
    /// Start address in the local MR.
    pub addr: u64,
    /// Length in bytes.
    pub length: u32,
    /// Local key of the MR.
    pub lkey: u32,
}

/// A fixed-capacity scatter/gather list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SgList {
    sges: [Sge; MAX_SGE],
    len: u8,
}

impl SgList {
    /// The empty list.
    pub const EMPTY: SgList = SgList {
        sges: [Sge {
            addr: 0,
            length: 0,
            lkey: 0,
        }; MAX_SGE],
        len: 0,
    };

    /// Builds a list; `None` if `sges` has more than [`MAX_SGE`] entries.
    pub fn new(sges: &[Sge]) -> Option<Self> {
        if sges.len() > MAX_SGE {
            return None;
        }
        let mut l = SgList::default();
        l.sges[..sges.len()].copy_from_slice(sges);
        l.len = sges.len() as u8;
        Some(l)
    }

    /// A one-entry list.
    pub fn single(addr: u64, length: u32, lkey: u32) -> Self {
        let mut l = SgList::default();
        l.sges[0] = Sge { addr, length, lkey };
        l.len = 1;
        l
    }

    /// The entries.
    pub fn as_slice(&self) -> &[Sge] {
        &self.sges[..usize::from(self.len)]
    }

    /// Sum of the entry lengths.
    pub fn total_len(&self) -> u64 {
        self.as_slice().iter().map(|s| u64::from(s.length)).sum()
    }
}

/// The operation of a send work request (`ibv_wr_opcode` + its fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOp {
    /// IBV_WR_SEND.
    Send,
    /// IBV_WR_SEND_WITH_IMM (host-order value of `imm_data`).
    SendWithImm(u32),
    /// IBV_WR_RDMA_WRITE.
    RdmaWrite {
        /// Remote address.
        remote_addr: u64,
        /// Remote key.
        rkey: u32,
    },
    /// IBV_WR_RDMA_WRITE_WITH_IMM.
    RdmaWriteWithImm {
        /// Remote address.
        remote_addr: u64,
        /// Remote key.
        rkey: u32,
        /// Immediate data.
        imm: u32,
    },
    /// IBV_WR_RDMA_READ.
    RdmaRead {
        /// Remote address.
        remote_addr: u64,
        /// Remote key.
        rkey: u32,
    },
    /// IBV_WR_ATOMIC_CMP_AND_SWP: the scatter list (8 bytes) receives
    /// the value the target held.
    AtomicCmpSwap {
        /// Remote address.
        remote_addr: u64,
        /// Remote key.
        rkey: u32,
        /// Compare value.
        compare: u64,
        /// Swap value.
        swap: u64,
    },
    /// IBV_WR_ATOMIC_FETCH_AND_ADD: the scatter list (8 bytes) receives
    /// the value the target held.
    AtomicFetchAdd {
        /// Remote address.
        remote_addr: u64,
        /// Remote key.
        rkey: u32,
        /// Addend.
        add: u64,
    },
    /// IBV_WR_SEND_WITH_INV: a SEND whose receiver invalidates `rkey`
    /// (a type 2 memory window of its PD) before completing it.
    SendWithInv(u32),
    /// IBV_WR_BIND_MW (and `ibv_bind_mw`): a local operation, executed
    /// when the send queue reaches it (after every earlier WR was sent).
    BindMw(MwBind),
    /// IBV_WR_LOCAL_INV of a type 2 window's rkey: a local operation, in
    /// send queue order like [`SendOp::BindMw`].
    LocalInv(u32),
}

/// What a bind sets a memory window to (`ibv_mw_bind_info` + the keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MwBind {
    /// The window's rkey when the WR was posted: its index bits
    /// (`>> 8`) name the window.
    pub mw_rkey: u32,
    /// The rkey the window answers to once bound: the index bits of
    /// `mw_rkey`, the key byte (low 8 bits) of this value.
    pub new_rkey: u32,
    /// lkey of the MR the window covers (0 with `len` 0: unbind).
    pub mr_lkey: u32,
    /// Start of the window in the MR's address space.
    pub addr: u64,
    /// Length; 0 unbinds a type 1 window (refused for type 2).
    pub len: u64,
    /// `mw_access_flags`: IBV_ACCESS_REMOTE_* and IBV_ACCESS_ZERO_BASED.
    pub access: u32,
}

impl SendOp {
    /// The completion opcode of this operation.
    pub fn wc_opcode(&self) -> WcOpcode {
        match self {
            SendOp::Send | SendOp::SendWithImm(_) => WcOpcode::Send,
            SendOp::RdmaWrite { .. } | SendOp::RdmaWriteWithImm { .. } => WcOpcode::RdmaWrite,
            SendOp::RdmaRead { .. } => WcOpcode::RdmaRead,
            SendOp::AtomicCmpSwap { .. } => WcOpcode::CompSwap,
            SendOp::AtomicFetchAdd { .. } => WcOpcode::FetchAdd,
            SendOp::SendWithInv(_) => WcOpcode::Send,
            SendOp::BindMw(_) => WcOpcode::BindMw,
            SendOp::LocalInv(_) => WcOpcode::LocalInv,
        }
    }

    /// A local operation: no packet, executed and completed in send
    /// queue order.
    pub fn is_local(&self) -> bool {
        matches!(self, SendOp::BindMw(_) | SendOp::LocalInv(_))
    }
}

/// A send work request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendWr {
    /// User cookie.
    pub wr_id: u64,
    /// Operation.
    pub op: SendOp,
    /// Gather list (scatter list for RDMA READ).
    pub sg: SgList,
    /// Generate a completion on success (IBV_SEND_SIGNALED or sq_sig_all).
    pub signaled: bool,
    /// IBV_SEND_SOLICITED.
    pub solicited: bool,
}

impl SendWr {
    /// The checks `post_send` makes that depend on the WR alone: a
    /// message of at most [`crate::MAX_MSG_SIZE`] bytes
    /// ([`crate::PostError::TooLong`]), and an atomic's scatter list of
    /// exactly the 8 bytes the original value goes to
    /// ([`crate::PostError::BadAtomicLength`], as rxe). A caller that must
    /// refuse a whole batch before posting any of it (`ibv_wr_complete`)
    /// makes them first.
    pub fn check(&self) -> Result<(), crate::PostError> {
        let len = self.sg.total_len();
        if len > crate::MAX_MSG_SIZE {
            return Err(crate::PostError::TooLong);
        }
        let atomic = matches!(
            self.op,
            SendOp::AtomicCmpSwap { .. } | SendOp::AtomicFetchAdd { .. }
        );
        if atomic && len != 8 {
            return Err(crate::PostError::BadAtomicLength);
        }
        Ok(())
    }
}

/// A receive work request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvWr {
    /// User cookie.
    pub wr_id: u64,
    /// Scatter list.
    pub sg: SgList,
}

/// A shared receive queue (SRQ) as a QP's responder sees it: receive
/// WQEs several QPs take from, oldest first. The provider implements it
/// behind a lock of its own, taken inside the QP's and holding nothing
/// else (a leaf). A QP created with one ([`crate::RcQp::with_srq`])
/// takes a WQE when a SEND or an RDMA WRITE with immediate needs one,
/// keeps it until the message completes, and answers RNR NAK when the
/// SRQ is empty; its own receive queue is unused.
pub trait SharedRecv: core::fmt::Debug + Send + Sync {
    /// Takes the oldest receive WQE, if there is one.
    fn take(&self) -> Option<RecvWr>;
}

/// `enum ibv_wc_status` (same values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum WcStatus {
    /// IBV_WC_SUCCESS.
    Success = 0,
    /// IBV_WC_LOC_LEN_ERR.
    LocLenErr = 1,
    /// IBV_WC_LOC_QP_OP_ERR.
    LocQpOpErr = 2,
    /// IBV_WC_LOC_PROT_ERR.
    LocProtErr = 4,
    /// IBV_WC_WR_FLUSH_ERR.
    WrFlushErr = 5,
    /// IBV_WC_MW_BIND_ERR.
    MwBindErr = 6,
    /// IBV_WC_BAD_RESP_ERR.
    BadRespErr = 7,
    /// IBV_WC_REM_INV_REQ_ERR.
    RemInvReqErr = 9,
    /// IBV_WC_REM_ACCESS_ERR.
    RemAccessErr = 10,
    /// IBV_WC_REM_OP_ERR.
    RemOpErr = 11,
    /// IBV_WC_RETRY_EXC_ERR.
    RetryExcErr = 12,
    /// IBV_WC_RNR_RETRY_EXC_ERR.
    RnrRetryExcErr = 13,
    /// IBV_WC_GENERAL_ERR.
    GeneralErr = 21,
}

/// `enum ibv_wc_opcode` (same values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum WcOpcode {
    /// IBV_WC_SEND.
    Send = 0,
    /// IBV_WC_RDMA_WRITE.
    RdmaWrite = 1,
    /// IBV_WC_RDMA_READ.
    RdmaRead = 2,
    /// IBV_WC_COMP_SWAP.
    CompSwap = 3,
    /// IBV_WC_FETCH_ADD.
    FetchAdd = 4,
    /// IBV_WC_BIND_MW.
    BindMw = 5,
    /// IBV_WC_LOCAL_INV.
    LocalInv = 6,
    /// IBV_WC_RECV.
    Recv = 128,
    /// IBV_WC_RECV_RDMA_WITH_IMM.
    RecvRdmaWithImm = 129,
}

/// Which work queue a completion belongs to (the provider routes it to the
/// QP's send CQ or receive CQ).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WcQueue {
    /// Send queue.
    Send,
    /// Receive queue.
    Recv,
}

/// A work completion (`ibv_wc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkCompletion {
    /// User cookie of the WR.
    pub wr_id: u64,
    /// Status.
    pub status: WcStatus,
    /// Opcode (also set on errors, where ibv leaves it undefined).
    pub opcode: WcOpcode,
    /// Queue.
    pub queue: WcQueue,
    /// Bytes received (receive queue) or transferred (send queue).
    pub byte_len: u32,
    /// Immediate data (IBV_WC_WITH_IMM), host-order value.
    pub imm: Option<u32>,
    /// The rkey a SEND with invalidate invalidated (IBV_WC_WITH_INV,
    /// `ibv_wc.invalidated_rkey`); never together with `imm`.
    pub inv: Option<u32>,
    /// Local QPN.
    pub qp_num: Qpn,
    /// Remote QPN (receive completions).
    pub src_qp: Qpn,
    /// The SEND carried the solicited-event bit.
    pub solicited: bool,
    /// IBV_WC_GRH: the receive buffer starts with a 40-byte GRH (every
    /// successful UD receive, [`crate::GRH_LEN`]).
    pub grh: bool,
    /// `ibv_wc.sl`: for a UD receive, the GRH's form
    /// ([`crate::SL_IPV4_GRH`] for IPv4, else 0); 0 otherwise.
    pub sl: u8,
}
