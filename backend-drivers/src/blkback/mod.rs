//! blkback, the dom0 half of the block split driver (`io/blkif.h`).
//!
//! Owns the pure core: request validation ([`validate`]), the responses a
//! request gets, serving a ring against a disk ([`serve`]) and the
//! per-device statistics ([`stats`]). Invariant: a
//! frontend's request reaches the disk only as a [`validate::Plan`], which
//! lies inside the disk and inside the granted pages; anything else is
//! answered with a `BLKIF_RSP_*` error status and counted.
#![forbid(unsafe_code)]

pub mod serve;
pub mod stats;
pub mod validate;

#[cfg(test)]
mod serve_tests;
#[cfg(test)]
mod tests;
