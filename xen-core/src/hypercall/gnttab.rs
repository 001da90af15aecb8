//! `grant_table_op` on the live machine: the operations themselves are in
//! `domain/gnttab_ops.rs` (host-tested); this module gives them the other
//! domains through their slots, the frame table and page-table memory, the
//! grant frames through the direct map (atomic word operations), the TLB
//! and the preemption clock.

use super::live::Live;
use super::*;
use crate::domain::gnttab_ops::{self, GrantHost, SharedFrame};
use crate::domain::mmu_ops;
use crate::guest_access::Frame;

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
    type Frame = Frame;
    fn with_other<R>(&mut self, domid: u16, f: impl FnOnce(&mut Self, &mut Domain) -> R) -> Option<R> {
        crate::schedule::with_domain(domid, |o| f(self, o))
    }
    #[inline]
    fn frame(&self, mfn: u64) -> Option<Frame> {
        Frame::new(Mfn(mfn))
    }
    fn kernel_l4_maddr(&self) -> Option<u64> {
        Some(self.v?.guest_table)
    }
    fn drain_pending(&mut self, owner: u16) -> Result<(), i64> {
        mmu_ops::drain_pending(self, owner)
    }
    fn log(&mut self, line: core::fmt::Arguments<'_>) {
        crate::printk!("{line}");
    }
    fn guest_error(&mut self, line: core::fmt::Arguments<'_>) {
        log::debug!("{line}");
    }
}

/// `grant_table_op(cmd, uop, count)` from `v` of `d`.
pub(super) fn grant_table_op(v: &mut Vcpu, d: &mut Domain, regs: &mut CpuUserRegs) -> Ret {
    let mem = v.kernel_mem();
    gnttab_ops::grant_table_op(&mut Live::of(v), d, &mem, regs)
}
