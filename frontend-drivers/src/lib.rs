//! Guest halves of the split drivers: console, block and net frontends, and
//! the balloon driver. Each talks to its backend over a shared ring in a
//! granted page and an event channel (`io/ring.h`).
//!
//! The ring is [`ring`]: the frontend's half, [`ring::FrontRing`], from
//! `xen_public::io::ring` (shared with `backend-drivers`, which uses the
//! other half). A frontend never trusts its backend either: a
//! [`ring::RingError`] that [`is a peer fault`](ring::RingError::is_peer_fault)
//! disconnects the device.
//!
//! blkfront's requests, response slots and the test pattern are
//! [`blkfront`]; the block benchmark's workload, run alike by dom0 on its
//! disk and by a guest through blkfront, is [`blkbench`].
//!
//! netfront's handshake part, tx request chains, rx reassembly and the
//! test traffic's pattern and checksum are [`netfront`].
//!
//! The xenbus handshake of a split driver is [`xenbus_frontend`] (blkfront's
//! side) over [`xenbus_store`] (the store operations both ends share; the
//! backend's side is in `backend-drivers`). The drivers' live halves are
//! still to come (issue 16).
#![no_std]
#![forbid(unsafe_code)]

/// The frontend's view of `io/ring.h`.
pub mod ring {
    pub use xen_public::io::ring::{FrontRing, MAX_RING_PAGE_ORDER, RingError, RingIdx, RingPages, XEN_PAGE_SIZE};
}
pub mod blkbench;
pub mod blkfront;
pub mod netfront;
#[cfg(any(test, feature = "fake-store"))]
pub mod xenbus_fake;
pub mod xenbus_frontend;
pub mod xenbus_store;
