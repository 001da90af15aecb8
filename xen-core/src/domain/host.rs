//! The machine as every hypercall family sees it: the base traits the
//! family host traits (`MmuHost`, `GrantHost`, ...) extend, so one
//! operation has one name and one signature wherever it is needed.
//!
//! - [`FrameHost`]: page-table memory, the frame table under its lock, the
//!   frame allocator and the M2P.
//! - [`Domains`]: which domain ids are in use.
//! - [`CpuTlb`]: this CPU's TLB and the hypercall preemption clock.
//! - [`Kick`]: the scheduler's prompt to look again.
//!
//! Invariant: the frame table is locked only through
//! [`FrameHost::with_ft`], which hands the host back so the closure can
//! reach the rest of the machine without taking the lock again (on the
//! live machine that would deadlock; the test machines assert it).
#![forbid(unsafe_code)]

use crate::mm::Mfn;
use crate::mm::page_type::{FrameTable, PageMem};

/// Frames: page-table memory, the frame table, the allocator, the M2P.
pub trait FrameHost {
    /// Page-table memory as the frame table reads and writes it
    /// (preemptible: inside a guest's hypercall).
    type Pm: PageMem;
    /// Page-table memory (a handle: cheap, any number at once).
    fn page_mem(&self) -> Self::Pm;
    /// Run `f` with the frame table locked (`None`: there is none yet).
    /// `f` gets the host back but must not lock the frame table again.
    fn with_ft<R>(&mut self, f: impl FnOnce(&mut FrameTable<'_>, &mut Self) -> R) -> Option<R>;
    /// A zeroed free frame (`None`: out of memory).
    fn alloc_frame(&mut self) -> Option<Mfn>;
    /// Give a frame the frame table released back to the allocator.
    fn free_frame(&mut self, mfn: Mfn);
    /// Record `mfn -> gfn` in the M2P.
    fn set_m2p(&mut self, mfn: Mfn, gfn: u64);
    /// A trace point (the live machine writes the record into this CPU's
    /// trace buffer when it is traced; test machines ignore it).
    fn trace(&mut self, _ev: &xen_public::trace::Event) {}
}

/// The domain ids in use.
pub trait Domains {
    /// Whether a domain with this id exists (the caller's own included).
    fn exists(&self, domid: u16) -> bool;
    /// The smallest domid in use that is at least `from` (the caller's own
    /// included).
    fn next_domid_from(&self, from: u16) -> Option<u16>;
}

/// This CPU's TLB and the current hypercall's preemption clock.
pub trait CpuTlb {
    /// Flush this CPU's whole TLB.
    fn flush_tlb(&mut self);
    /// Drop this CPU's translation of `va`.
    fn invlpg(&mut self, va: u64);
    /// Whether the current hypercall has run long enough to continue later.
    fn preempt_due(&mut self) -> bool;
}

/// The scheduler, as a hypercall that may have made a vCPU runnable sees it.
pub trait Kick {
    /// Another vCPU may have become runnable (or should yield to one): let
    /// the scheduler look.
    fn kick(&mut self);
}
