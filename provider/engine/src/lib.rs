//! Sans-IO reliable transport engine of omx-verbs.
//!
//! Pure state machines fed frames and time, producing frames and work
//! completions: no sockets, threads or clocks inside, so every behaviour
//! runs in deterministic tests with virtual time (see `tests/`).
//!
//! - [`RcQp`]: a reliable-connected QP (requester + responder), the only
//!   transport so far. UC/UD/SRQ/atomics slot in as more state machines
//!   over the same wire crate, timers and [`MemoryAccess`].
//! - Registered memory is reached only through [`MemoryAccess`], which
//!   checks keys, rights and bounds.
//! - Time is the engine's own [`Instant`]/[`Duration`], passed in.
//!
//! The protocol is specified in `docs/wire.md`.
//!
//! # Driving an [`RcQp`] (contract with the provider / packet-I/O layer)
//!
//! - **Demux**: the packet-I/O layer receives only frames whose dst QPN
//!   endpoint is ours (BPF, docs/wire.md §8); it picks the QP with
//!   [`peek_dst_qpn`] (slot = low 12 bits) and calls
//!   [`RcQp::handle_frame`] with the frame bytes, which it keeps owning
//!   (the engine copies payload into registered memory before returning).
//! - **Transmit**: [`RcQp::poll_transmit`] writes one complete frame
//!   (head with MACs from [`PathInfo`], CRC, padding) into a caller-owned
//!   buffer of at least [`omx_wire::max_frame_len`]`(path_mtu)` bytes —
//!   e.g. a TPACKET TX ring slot — and returns its length. Call it until
//!   `None`; `None` means "blocked" (credits, window, RNR wait) or "idle".
//! - **Time**: every call that depends on time takes `now`
//!   ([`Instant`], ns). After each batch call [`RcQp::poll_timeout`] and
//!   arrange for [`RcQp::handle_timeout`] to be called at that instant
//!   (a timerfd, or from `poll_cq`); then poll transmit again.
//! - **Completions**: [`RcQp::poll_completion`] yields send- and
//!   receive-queue completions ([`WorkCompletion::queue`]) in order; a WQE
//!   slot is freed when its completion is polled.
//! - **Memory**: the provider implements [`MemoryAccess`] over its MR
//!   table restricted to the QP's PD; `lkey` accesses get
//!   [`Access::LocalRead`]/[`Access::LocalWrite`], `rkey` accesses the
//!   remote rights.
//! - **No allocation** after [`RcQp::new`]: all rings are sized from
//!   [`QpConfig`]; no syscalls, no locks (the caller serialises calls per
//!   QP).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod ack;
mod mem;
mod qp;
mod requester;
mod responder;
mod state;
pub mod testing;
mod time;
mod timer;
mod wr;

pub use mem::{Access, MemError, MemoryAccess};
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
pub use wr::{
    RecvWr, SendOp, SendWr, SgList, Sge, WcOpcode, WcQueue, WcStatus, WorkCompletion, MAX_SGE,
};

/// Destination QPN of a frame, for demultiplexing to a QP before full
/// validation (`None` if the frame is too short or not omx-verbs).
pub fn peek_dst_qpn(frame: &[u8]) -> Option<omx_wire::Qpn> {
    let f = omx_wire::Frame::new_checked(frame).ok()?;
    Some(f.dst_qpn())
}
