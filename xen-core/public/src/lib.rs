//! Xen's public guest ABI, as numbers and `#[repr(C)]` layouts.
//!
//! This crate plays the role of `xen/include/public`: every constant and every
//! structure here must match Xen 4.17 byte for byte (x86_64 layouts), because
//! guests built against real Xen run on `xen-core` and ours run on real Xen.
//! It holds no logic beyond layout and the pure index arithmetic the shared
//! rings define; compile-time size and offset assertions after each structure
//! keep the layouts honest.
//!
//! Every structure is plain old data: it derives `zerocopy`'s `FromBytes`,
//! `IntoBytes`, `Immutable` and `KnownLayout`, so it can be read from and
//! written to guest memory as bytes without `unsafe`. C's implicit padding is
//! spelled out as `_pad*` fields (zero them). A C union is kept as a byte
//! array of the union's size, with typed accessor structures for its members.
//!
//! Modules, one per Xen header:
//!
//! | module | Xen header |
//! | --- | --- |
//! | [`xen`] (re-exported at the root) | `xen.h`, `arch-x86/xen-x86_64.h`: `start_info`, `shared_info`, domain ids, selectors |
//! | [`hypercall`] | `xen.h`: `__HYPERVISOR_*` numbers, hypercall page |
//! | [`errno`] | `errno.h` |
//! | [`elfnote`] | `elfnote.h` |
//! | [`event_channel`] | `event_channel.h` |
//! | [`grant_table`] | `grant_table.h` |
//! | [`memory`] | `memory.h` (and the x86 `e820entry`) |
//! | [`sched`] | `sched.h` |
//! | [`vcpu`] | `vcpu.h`, plus `vcpu_guest_context`, `cpu_user_regs`, `trap_info` of `arch-x86` |
//! | [`physdev`] | `physdev.h` |
//! | [`pte`] | none: the x86-64 page-table entry bits (Xen's `_PAGE_*`) that PV guests write through `mmu_update` |
//! | [`callback`] | `callback.h` |
//! | [`domctl`] | `domctl.h` (and `xen_arch_domainconfig`) |
//! | [`sysctl`] | `sysctl.h` |
//! | [`trace`] | `trace.h`, the payloads of Xen's trace call sites, and xen-core's own trace class |
//! | [`version`] | `version.h` (and the `XENFEAT_*` numbers of `features.h`) |
//! | [`io::ring`] | `io/ring.h` |
//! | [`io::xs_wire`] | `io/xs_wire.h` |
//! | [`io::xenbus`] | `io/xenbus.h` |
//! | [`io::blkif`] | `io/blkif.h` |
//! | [`io::netif`] | `io/netif.h` |
//! | [`io::console`] (also reachable as [`console`]) | `io/console.h` |
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod callback;
pub mod console;
pub mod domctl;
pub mod elfnote;
pub mod errno;
pub mod event_channel;
pub mod grant_table;
pub mod hypercall;
pub mod io;
pub mod memory;
pub mod physdev;
pub mod pte;
pub mod sched;
pub mod sysctl;
pub mod trace;
pub mod trace_guest;
pub mod vcpu;
pub mod version;
pub mod xen;
pub mod xencore;

mod union_bytes;

pub use xen::*;
