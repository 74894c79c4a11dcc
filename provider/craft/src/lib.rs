//! omx-craft: a hostile peer on the Ethernet segment, for the end-to-end
//! crafted-frame tests (tests/scenarios/omx-hostile.sh).
//!
//! - [`spec`]: the fields of a forged frame as command-line text, and the
//!   frames (or PSN sweeps) they stand for, built by omx-wire's
//!   `FrameRepr::emit` so that CRC32C, padding and the PAETH are exactly
//!   the provider's;
//! - [`decode`]: captured frames decoded by omx-wire, printed as one line
//!   or as shell `KEY=VALUE` lines, and the filters of `sniff`;
//! - [`learn`]: the state of a live connection (QPNs, MACs, expected PSN,
//!   window, a victim MR's address and rkey) from watching it;
//! - [`sock`]: the AF_PACKET socket that sends and captures;
//! - [`qp_table`]: the engine's verdicts on `modify_qp` cases, to compare
//!   with the kernel module's (tests/scenarios/omx-modify-table.sh).
//!
//! The binary (`src/main.rs`) is the command line over these; this crate
//! is never linked into the provider.

pub mod decode;
pub mod learn;
pub mod qp_table;
pub mod sock;
pub mod spec;
