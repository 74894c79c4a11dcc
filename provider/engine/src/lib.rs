//! Sans-IO reliable transport engine of omx-verbs.
//!
//! Pure state machines fed frames and time, producing frames and work
//! completions: no sockets, threads or clocks inside, so every behaviour
//! runs in deterministic tests with virtual time (see `tests/`).
//!
//! - [`RcQp`]: a reliable-connected QP (requester + responder).
//! - [`UdQp`]: an unreliable-datagram QP (docs/wire.md §13), driven the
//!   same way; each send WR names its destination ([`UdDest`]), each
//!   completion says whether a GRH precedes the data and its form
//!   (`WorkCompletion::grh`). UC is a mode of [`RcQp`].
//! - Registered memory is reached only through [`MemoryAccess`], which
//!   checks keys, rights and bounds.
//! - Time is the engine's own [`Instant`]/[`Duration`], passed in.
//! - [`testing`]: fixtures for tests and fuzzing (connected QPs, crafted
//!   frames, memories with canaries, faults and no backing store).
//!
//! The protocol is specified in `docs/wire.md`.
//!
//! # What the wire may do (docs/wire.md §7)
//!
//! Every frame is hostile until shown otherwise. A QP acts on a frame
//! only if it comes from its peer: destination QPN, source QPN and source
//! MAC of the connection ([`RxDrop::WrongQp`], [`RxDrop::WrongMac`]). An
//! ACK, a piggybacked ACK and their credits count only inside the
//! requester's window, a NAK only for an outstanding PSN
//! ([`RxDrop::OutOfWindow`]). The responder executes RDMA WRITE, READ and
//! atomics only as the QP's access flags ([`access`]) and then the MR
//! allow, refuses lengths above [`MAX_MSG_SIZE`] and READs beyond
//! `max_dest_rd_atomic` (0 refuses all), answers a duplicate READ only if
//! it matches one it executed ([`RxDrop::DuplicateRead`] otherwise), and
//! sends at most [`READ_BURST`] READ responses per input. Every drop is
//! counted in [`Stats`] ([`Stats::fields`] lists them by name). No input
//! makes the engine panic, allocate, or touch memory outside an MR.
//!
//! # Driving an [`RcQp`] (contract with the provider / packet-I/O layer)
//!
//! - **Demux**: the packet-I/O layer receives only frames whose dst QPN
//!   endpoint is ours (BPF, docs/wire.md §8); it picks the QP with
//!   [`peek_dst_qpn`] (slot = low 12 bits) and calls
//!   [`RcQp::handle_frame`] with the frame bytes, which it keeps owning
//!   (the engine copies payload into registered memory before returning).
//!   The return value says why a frame was dropped, for the provider's
//!   own counters.
//! - **Transmit**: [`RcQp::poll_transmit`] writes one complete frame
//!   (head with MACs from [`PathInfo`], CRC, padding) into a caller-owned
//!   buffer of at least [`omx_wire::max_frame_len`]`(path_mtu)` bytes —
//!   e.g. a TPACKET TX ring slot — and returns its length. Call it until
//!   `None`; `None` means "blocked" (credits, window, RNR wait, a used-up
//!   READ burst) or "idle".
//! - **Time**: every call that depends on time takes `now`
//!   ([`Instant`], ns). After each batch call [`RcQp::poll_timeout`] and
//!   arrange for [`RcQp::handle_timeout`] to be called at that instant
//!   (a timerfd, or from `poll_cq`); then poll transmit again. The
//!   deadline may be `now` itself ([`Timer::Resume`]: more READ responses
//!   to send), which the caller's next timer pass handles.
//! - **Completions**: [`RcQp::poll_completion`] yields send- and
//!   receive-queue completions ([`WorkCompletion::queue`]) in order; a WQE
//!   slot is freed when its completion is polled.
//! - **Errors**: [`RcQp::poll_event`] yields, once per entry into ERROR,
//!   why the engine moved the QP there on its own ([`QpEventKind`], the
//!   values of `enum omx_qp_event` in `rdma_omx_abi.h`) with the QP's
//!   [`RcQp::reset_epoch`]; the provider passes it to the kernel module
//!   (`OMX_METHOD_QP_EVENT`). [`RcQp::fail`] forces ERROR (CQ overrun).
//! - **Control**: [`RcQp::check_modify`] validates an `ibv_modify_qp`
//!   whole (the kernel's transition table, [`qp_attr_mask_ok`], and every
//!   value) without changing anything, so the provider can check before
//!   it asks the kernel; [`RcQp::modify`] checks and applies, and changes
//!   nothing when it refuses. [`QpAttr::extra_mask`] carries the mask
//!   bits of attributes the engine does not model.
//! - **Memory**: the provider implements [`MemoryAccess`] over its MR
//!   table restricted to the QP's PD; `lkey` accesses get
//!   [`Access::LocalRead`]/[`Access::LocalWrite`], `rkey` accesses the
//!   remote rights; a copy that faults returns [`MemError::Fault`] (a
//!   remote access through it becomes NAK remote access error and
//!   [`QpEventKind::AccessErr`]).
//! - **No allocation** after [`RcQp::new`]: all rings, the READ history
//!   and the completion queue are sized from [`QpConfig`]; no syscalls,
//!   no locks (the caller serialises calls per QP).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod ack;
mod cc;
pub mod grant;
mod mem;
mod qp;
mod requester;
mod responder;
mod state;
pub mod testing;
mod time;
mod timer;
mod ud;
mod wr;

pub use cc::{GoneReport, MIN_RTO};
pub use mem::{Access, AtomicOp, MemError, MemoryAccess};
pub use qp::{
    ModifyError, PostError, QpConfig, QpEvent, QpEventKind, RcQp, RxDrop, Stats, Transmit,
    MAX_MSG_SIZE, READ_BURST,
};
pub use state::{
    access, attr_mask, qp_attr_mask_ok, rnr_timer, transition_attrs, transport_timeout, PathInfo,
    PathMtu, QpAttr, QpState, QpType, MAX_RD_ATOMIC, RNR_RETRY_INFINITE,
};
pub use time::{Duration, Instant};
pub use timer::{Timer, TimerTable};
pub use ud::{
    gid_is_ipv4, write_grh, UdConfig, UdDest, UdQp, GRH_LEN, MCAST_QPN, QKEY_CONTROLLED,
    SL_IPV4_GRH,
};
pub use wr::{
    MwBind, RecvWr, SendOp, SendWr, SgList, Sge, SharedRecv, WcOpcode, WcQueue, WcStatus,
    WorkCompletion, MAX_SGE,
};

/// Destination QPN of a frame, for demultiplexing to a QP before full
/// validation (`None` if the frame is too short or not omx-verbs).
pub fn peek_dst_qpn(frame: &[u8]) -> Option<omx_wire::Qpn> {
    let f = omx_wire::Frame::new_checked(frame).ok()?;
    Some(f.dst_qpn())
}
