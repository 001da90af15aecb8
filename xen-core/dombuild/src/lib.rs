//! How a new PV domain is laid out and mapped at its first instruction:
//! the same rules for dom0 (built by xen-core) and for every domU (built by
//! dom0's builder through hypercalls), as Xen's and libxenguest's builders
//! share them.
//!
//! Pure logic, tested on the host.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod layout;
pub mod pagetable;
