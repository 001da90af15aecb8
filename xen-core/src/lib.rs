//! xen-core: a ring-0 x86_64 microhypervisor that speaks Xen's PV guest ABI.
//!
//! The crate splits into a small unsafe core and safe services. Unsafe
//! code is allowed in two places only, and the crate root denies it
//! everywhere else: `arch` (registers, descriptor tables, traps, paging,
//! the boot trampoline; built only for the bare-metal target, except its
//! pure multiboot2 loader, which the host tests use too) and
//! `guest_access` (the one way into machine memory a guest can reach).
//! The safe services also build on the host so that `cargo test` covers
//! them: multiboot2 and command-line parsing (`boot`), the memory map, the
//! frame allocator and the frame table (`mm`), events, grants, the
//! scheduler's policy and the domain builder's layout.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

pub mod boot;
pub mod console_ring;
pub mod domain;
pub mod event;
pub mod grant;
pub mod hypercall_table;
pub mod mm;
pub mod sched;
pub mod tbuf;
pub mod time;
pub mod trace_control;
pub mod version;

#[allow(unsafe_code)]
pub mod arch;
#[cfg(target_os = "none")]
pub mod console;
#[cfg(target_os = "none")]
pub mod guest;
#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub mod guest_access;
#[cfg(target_os = "none")]
pub mod hypercall;
#[cfg(target_os = "none")]
pub mod schedule;
#[cfg(target_os = "none")]
pub mod setup;
#[cfg(target_os = "none")]
pub mod trace;
