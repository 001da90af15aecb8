//! Dom0 halves of the split drivers: console, block and net backends. A
//! backend never trusts its frontend: ring indices, grant references and
//! segment offsets are bounds-checked, and a bad request gets an error reply.
//!
//! - [`ring`]: the backend's half of `io/ring.h`, [`ring::BackRing`], from
//!   `xen_public::io::ring` (shared with `frontend-drivers`, which uses the
//!   other half). Its [`ring::RingError`]s that
//!   [`are peer faults`](ring::RingError::is_peer_fault) (a `req_prod` more
//!   than a ring ahead, or behind what was consumed) disconnect the device,
//!   as Linux's blkback halts the ring.
//! - [`blkback`]: blkif request validation (what each request may do, or
//!   the response it gets), Linux's per-device counters.
//! - [`bridge`]: dom0's learning Ethernet bridge (`xenbr0`): which port a
//!   frame goes to, a bounded MAC table with Linux's ageing.
//! - [`netback`]: the vif's xenbus handshake, serving its tx and rx rings
//!   (Linux xen-netback's rules), the `rate=` credit scheduler, checksum
//!   completion and the per-vif counters.
//! - [`disk`]: the storage behind a block device ([`disk::BlockDevice`]),
//!   and the RAM disk used when dom0 has none.
//! - [`xenbus_backend`]: blkback's side of the xenbus handshake, as a state
//!   machine over the store operations `frontend-drivers` shares.
//!
//! The backends' live halves (ring servicing in dom0, the disk behind
//! blkback) are still to come (issue 16).
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod blkback;
pub mod bridge;
pub mod disk;
pub mod netback;

/// The backend's view of `io/ring.h`.
pub mod ring {
    pub use xen_public::io::ring::{BackRing, MAX_RING_PAGE_ORDER, RingError, RingIdx, RingPages, XEN_PAGE_SIZE};
}
pub mod xenbus_backend;
