//! Dom0 halves of the split drivers: console, block and net backends. A
//! backend never trusts its frontend: ring indices, grant references and
//! segment offsets are bounds-checked, and a bad request gets an error reply.
//!
//! - [`blkback`]: blkif request validation (what each request may do, or
//!   the response it gets), Linux's per-device counters.
//!
//! The backends' live halves (ring servicing in dom0, the xenbus
//! handshake, the disk behind blkback) are still to come (issue 16).
#![no_std]
#![forbid(unsafe_code)]

pub mod blkback;
