//! `grant_table_op` on the live machine: the operations themselves are in
//! `domain/gnttab_ops.rs` (host-tested); this module gives them the other
//! domains through their slots, the frame table and page-table memory, the
//! grant frames through the direct map (atomic word operations), the TLB
//! and the preemption clock.

use super::mmu::{l1_slot, mm, who};
use super::*;
use crate::domain::gnttab_ops::{self, GrantHost, GrantMem, SharedFrame};
use crate::guest_access::Frame;
use crate::mm::page_type::FrameTable;

/// The machine as grant operations see it; `v` is the calling vCPU when
/// there is one (its kernel tables receive host mappings).
struct Live<'v> {
    v: Option<&'v Vcpu>,
}

impl GrantMem for DirectMapMem {
    fn free_frame(&mut self, mfn: u64) {
        crate::mm::machine::free_frame(Mfn(mfn));
    }
}

impl SharedFrame for Frame {
    #[inline]
    fn load_u16(&self, off: usize) -> u16 {
        Frame::load_u16(*self, off)
    }
    #[inline]
    fn load_u32(&self, off: usize) -> u32 {
        Frame::load_u32(*self, off)
    }
    #[inline]
    fn store_u32(&self, off: usize, v: u32) {
        Frame::store_u32(*self, off, v);
    }
    #[inline]
    fn cmpxchg_u16(&self, off: usize, cur: u16, new: u16) -> Result<u16, u16> {
        Frame::cmpxchg_u16(*self, off, cur, new)
    }
    #[inline]
    fn cmpxchg_u32(&self, off: usize, cur: u32, new: u32) -> Result<u32, u32> {
        Frame::cmpxchg_u32(*self, off, cur, new)
    }
    #[inline]
    fn fetch_and_u16(&self, off: usize, bits: u16) -> u16 {
        Frame::fetch_and_u16(*self, off, bits)
    }
    #[inline]
    fn fetch_or_u16(&self, off: usize, bits: u16) -> u16 {
        Frame::fetch_or_u16(*self, off, bits)
    }
    #[inline]
    fn copy_from(&self, dst_off: usize, src: &Self, src_off: usize, len: usize) {
        Frame::copy_from(*self, dst_off, *src, src_off, len);
    }
}

impl GrantHost for Live<'_> {
    type Mem = DirectMapMem;
    type Frame = Frame;

    fn exists(&self, domid: u16) -> bool {
        crate::schedule::slot_of(domid).is_some()
    }
    fn with_other<R>(&mut self, domid: u16, f: impl FnOnce(&mut Self, &mut Domain) -> R) -> Option<R> {
        crate::schedule::with_domain(domid, |o| f(self, o))
    }
    fn next_domid_from(&self, from: u16) -> Option<u16> {
        crate::schedule::next_domid_from(from)
    }
    #[inline]
    fn frame_table<R>(&mut self, f: impl FnOnce(&mut FrameTable<'_>, &mut DirectMapMem) -> R) -> Option<R> {
        let mut m = mm();
        FRAME_TABLE.lock().as_mut().map(|ft| f(ft, &mut m.mem))
    }
    #[inline]
    fn frame(&self, mfn: u64) -> Option<Frame> {
        Frame::new(Mfn(mfn))
    }
    fn alloc_frame(&mut self) -> Option<u64> {
        crate::mm::machine::alloc_frame().map(|f| f.0)
    }
    fn free_frame(&mut self, mfn: u64) {
        crate::mm::machine::free_frame(Mfn(mfn));
    }
    fn set_m2p(&mut self, mfn: u64, pfn: u64) {
        crate::mm::machine::set_m2p(Mfn(mfn), pfn);
    }
    fn l1_slot(&self, va: u64) -> Option<(u64, usize)> {
        l1_slot(self.v?, &mm(), va)
    }
    fn who(&self, d: &Domain) -> Who {
        who(d)
    }
    fn drain_pending(&mut self, owner: u16) -> Result<(), i64> {
        super::mmu::drain_pending(owner)
    }
    fn invlpg(&mut self, va: u64) {
        crate::arch::x86_64::cpu::invlpg(va);
    }
    fn flush_tlb(&mut self) {
        crate::arch::x86_64::cpu::flush_tlb();
    }
    fn preempt_due(&mut self) -> bool {
        super::preempt_due()
    }
    fn kick(&mut self) {
        crate::schedule::kick();
    }
    fn log(&mut self, line: core::fmt::Arguments<'_>) {
        crate::printk!("{line}");
    }
}

/// `grant_table_op(cmd, uop, count)` from `v` of `d`.
pub(super) fn grant_table_op(v: &mut Vcpu, d: &mut Domain, regs: &mut CpuUserRegs) -> Ret {
    let mem = v.kernel_mem();
    gnttab_ops::grant_table_op(&mut Live { v: Some(v) }, d, &mem, regs)
}

/// Domain destruction: drop the pins `dead` holds on others' grants and
/// the references of its device mappings.
pub(super) fn release_grants(caller: &mut Domain, dead: &mut Domain) {
    gnttab_ops::release_grants(&mut Live { v: None }, caller, dead);
}

/// Domain destruction: others' mappings of `dead`'s grants name no
/// granter any more.
pub(super) fn forget_granter(caller: &mut Domain, dead: u16) {
    gnttab_ops::forget_granter(&mut Live { v: None }, caller, dead);
}
