//! netback, the dom0 half of the network split driver (`io/netif.h`),
//! its pure core after Linux's xen-netback (drivers/net/xen-netback/):
//! the vif's part of the xenbus handshake ([`handshake`]), serving the tx
//! ring (packets from the guest, [`tx`]) and the rx ring (packets to it,
//! [`rx`]), the `rate=` credit scheduler ([`credit`]), checksum completion
//! for frontends without checksum offload ([`csum`]) and the per-vif
//! counters ([`stats`]); [`fuzz`] drives them as a hostile netfront
//! would (`cargo xtask fuzz-netback`). Grant copies are the caller's ([`tx::TxCopier`],
//! [`rx::RxCopier`]), as are the event channel and the time.
//!
//! Invariant: the frontend is not trusted. A ring slot is looked at only
//! in a copy out of the shared page (a slot the frontend rewrites meanwhile
//! changes nothing already decided); every consumed request is answered
//! exactly once; a malformed packet is answered with an error and
//! counted, a malicious one (Linux's `xenvif_fatal_tx_err` cases, a
//! corrupt ring) is reported fatal so the caller disables the vif; no
//! memory is allocated in proportion to anything the frontend controls.
#![forbid(unsafe_code)]

pub mod credit;
pub mod csum;
pub mod fuzz;
pub mod handshake;
pub mod rx;
pub mod stats;
pub mod tx;

pub use credit::Credit;
pub use csum::complete_l4_checksum;
pub use handshake::{Netback, VifMedia, VifRing};
pub use rx::{RX_QUEUE_BYTES, RX_QUEUE_PACKETS, RxBackRing, RxCopier, RxFlags, RxFrag, RxQueue, RxServed, serve_rx};
pub use stats::VifStats;
pub use tx::{MAX_PACKET, TX_BUF, TxBackRing, TxCopier, TxFatal, TxFrag, TxPacket, TxServed, serve_tx};

#[cfg(test)]
mod handshake_tests;
#[cfg(test)]
mod serve_tests;
