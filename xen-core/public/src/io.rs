//! Split-driver I/O protocols: mirrors Xen 4.17's `public/io/` headers, one
//! submodule per header.
//!
//! Invariant: every structure has exactly the x86_64 size and field offsets
//! Xen 4.17 gives it, checked at compile time after each one; the ring index
//! arithmetic wraps as the C macros' unsigned 32-bit arithmetic does.

pub mod blkif;
pub mod byte_ring;
pub mod console;
pub mod netif;
pub mod ring;
pub mod xenbus;
pub mod xs_wire;
