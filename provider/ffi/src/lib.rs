//! libomx-rdmav34.so: the omx verbs provider for libibverbs (rdma-core 44,
//! private ABI 34).
//!
//! Layers, data flowing one way:
//! * [`device`]: `verbs_device_ops` (`verbs_provider_omx`), the ELF
//!   constructor that registers it, device matching and allocation.
//! * [`context`], [`pd`], [`mr`], [`cq`], [`qp`]: one file per verbs object;
//!   each `#[repr(C)]` struct embeds the libibverbs object as its first field
//!   and keeps its own state behind it. Control-path verbs go to the rdma_omx
//!   kernel module through the `ibv_cmd_*` helpers.
//! * [`mcast`]: multicast attach/detach (kernel first, then the endpoint).
//! * [`ops`]: the one static `verbs_context_ops` table.
//! * [`sysfs`], [`errno`], [`log`]: pure helpers, tested on any host.
//!
//! Rules at the `extern "C"` edge: check every pointer, then call safe
//! code; `int` verbs return a positive errno, constructors return NULL and
//! set `errno`; nothing panics across the boundary ([`guard`]).

pub mod ah;
pub mod clock;
pub mod context;
pub mod cq;
pub mod device;
pub mod errno;
pub mod guard;
pub mod kcmd;
pub mod log;
pub mod mcast;
pub mod mr;
pub mod mw;
pub mod ops;
pub mod pd;
pub mod qp;
pub mod qp_ex;
pub mod runtime;
pub mod srq;
pub mod sysfs;

pub use omx_rdma_sys as sys;
