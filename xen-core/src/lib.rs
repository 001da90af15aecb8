//! xen-core: a ring-0 x86_64 microhypervisor that speaks Xen's PV guest ABI.
//!
//! The crate splits into a small unsafe core (`arch`, built only for the
//! bare-metal target) and safe services that also build on the host so that
//! `cargo test` covers them: multiboot2 and command-line parsing (`boot`),
//! the memory map and the frame allocator (`mm`).
#![cfg_attr(not(test), no_std)]

pub mod boot;
pub mod domain;
pub mod event;
pub mod grant;
pub mod mm;
pub mod sched;
pub mod time;
pub mod version;

#[cfg(target_os = "none")]
pub mod arch;
#[cfg(target_os = "none")]
pub mod console;
#[cfg(target_os = "none")]
pub mod guest;
#[cfg(target_os = "none")]
pub mod guest_access;
#[cfg(target_os = "none")]
pub mod hypercall;
#[cfg(target_os = "none")]
pub mod schedule;
#[cfg(target_os = "none")]
pub mod setup;
