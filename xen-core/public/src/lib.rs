//! Xen's public guest ABI, as numbers and `#[repr(C)]` layouts.
//!
//! This crate plays the role of `xen/include/public`: every constant and every
//! structure here must match Xen 4.17 byte for byte, because guests built
//! against real Xen run on `xen-core` and ours run on real Xen. It holds no
//! logic beyond layout; size assertions at the bottom of each module keep the
//! layouts honest at compile time.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod console;
pub mod elfnote;
pub mod errno;
pub mod hypercall;
pub mod xen;

pub use xen::*;
