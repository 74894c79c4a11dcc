//! The verbs objects of omx-verbs, in user space, between the sans-IO
//! engine and packet I/O (data flows wire → engine → **verbs** → pktio →
//! ffi):
//!
//! - [`MrTable`]: registered memory, implementing the engine's
//!   [`omx_engine::MemoryAccess`] for one PD with key, bounds and rights
//!   checks ([`mr`]).
//! - [`Cq`]: a completion ring pre-sized at creation, with the
//!   completion-event arm state ([`cq`]).
//! - [`Qp`]: an [`Engine`] (connected or datagram) behind a spin lock
//!   with its transmit buffer and inline-data slab ([`qp`], [`engine`]).
//! - [`Endpoint`]: one per device context; the demux QP slot → QP and the
//!   drivers that feed frames and time into QPs ([`endpoint`]).
//! - [`Srq`]: a shared receive queue QPs take receive WQEs from
//!   ([`srq`]).
//! - [`addr`]: GID → MAC.
//! - [`fault`]: copies to and from application memory that turn a page
//!   the application unmapped into an error instead of a SIGSEGV/SIGBUS.
//!
//! Frames leave through a [`FrameSink`] the packet-I/O layer implements.
//! Nothing here allocates after an object is created, and the data path
//! makes no system call except copies through ODP MRs
//! (`process_vm_readv`/`writev`); the first MR registration installs the
//! fault handler (`sigaction`).

pub mod addr;
pub mod armed;
pub mod cq;
pub mod endpoint;
pub mod engine;
pub mod fault;
pub mod lock;
pub mod mr;
pub mod qp;
pub mod srq;
#[cfg(test)]
pub(crate) mod test_pages;

pub use addr::{mac_from_gid, AddrError};
pub use cq::{Clock, Cq, Pushed, Stamp};
pub use endpoint::{Drive, Endpoint, KernelCall, RxBy};
pub use engine::Engine;
pub use mr::{
    AdviseError, BindError, MrEntry, MrTable, MwBinding, MwEntry, MwType, PdMem, INLINE_LKEY,
};
pub use qp::{Qp, QpCaps, UdPort, Window, ACK_HOLD, MAX_INLINE_DATA};
pub use srq::{Srq, SrqRing};

/// Where the verbs layer sends frames (implemented by packet I/O).
pub trait FrameSink {
    /// Sends one complete frame without blocking. A frame that cannot be
    /// sent now is dropped: the engine retransmits it.
    fn send(&self, frame: &[u8]);

    /// Sends frames in this order, without blocking, in as few system
    /// calls as the sink can (packet I/O: one `sendmmsg`). Frames that
    /// cannot be sent now are dropped, as with [`FrameSink::send`].
    fn send_batch(&self, frames: &[&[u8]]) {
        for f in frames {
            self.send(f);
        }
    }
}
