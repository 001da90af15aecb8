//! The live machine as every hypercall family's operations see it: one
//! [`Live`] implements the base traits of `domain/host.rs` here, and each
//! family's host trait in its own glue module (`mmu.rs`, `gnttab.rs`,
//! `evtchn.rs`, `control.rs`, `vcpu_ctx.rs`).

use super::*;
use crate::domain::host::{CpuTlb, Domains, FrameHost, Kick};
use crate::mm::page_type::FrameTable;

/// The live machine; `v` is the calling vCPU when an operation needs it
/// beyond its arguments (the grant paths map into its kernel tables).
pub(super) struct Live<'v> {
    pub(super) v: Option<&'v Vcpu>,
}

impl Live<'static> {
    /// The machine without a calling vCPU.
    #[inline]
    pub(super) const fn new() -> Self {
        Live { v: None }
    }
}

impl<'v> Live<'v> {
    /// The machine as `v`, the calling vCPU, sees it.
    #[inline]
    pub(super) const fn of(v: &'v Vcpu) -> Self {
        Live { v: Some(v) }
    }
}

impl FrameHost for Live<'_> {
    type Pm = DirectMapMem;
    #[inline]
    fn page_mem(&self) -> DirectMapMem {
        DirectMapMem::new(true)
    }
    #[inline]
    fn with_ft<R>(&mut self, f: impl FnOnce(&mut FrameTable<'_>, &mut Self) -> R) -> Option<R> {
        let mut ftg = FRAME_TABLE.lock();
        let ft = ftg.as_mut()?;
        Some(f(ft, self))
    }
    fn alloc_frame(&mut self) -> Option<Mfn> {
        crate::mm::machine::alloc_frame()
    }
    fn free_frame(&mut self, mfn: Mfn) {
        crate::mm::machine::free_frame(mfn);
    }
    fn trace(&mut self, ev: &xen_public::trace::Event) {
        crate::trace::record(ev);
    }
    fn set_m2p(&mut self, mfn: Mfn, gfn: u64) {
        crate::mm::machine::set_m2p(mfn, gfn);
    }
}

impl Domains for Live<'_> {
    fn exists(&self, domid: u16) -> bool {
        crate::schedule::slot_of(domid).is_some()
    }
    fn next_domid_from(&self, from: u16) -> Option<u16> {
        crate::schedule::next_domid_from(from)
    }
}

impl CpuTlb for Live<'_> {
    fn flush_tlb(&mut self) {
        crate::arch::x86_64::cpu::flush_tlb();
    }
    fn invlpg(&mut self, va: u64) {
        crate::arch::x86_64::cpu::invlpg(va);
    }
    #[inline]
    fn preempt_due(&mut self) -> bool {
        super::preempt_due()
    }
}

impl Kick for Live<'_> {
    fn kick(&mut self) {
        crate::schedule::kick();
    }
}
