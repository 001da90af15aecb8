//! The MMU hypercalls on the live machine: `mmu_update`, `mmuext_op`,
//! `update_va_mapping`, `multicall`, `set_gdt`, `update_descriptor`. The
//! operations themselves are in `domain/mmu_ops.rs` (host-tested); this
//! module gives them the frame table under its lock, the direct map, the
//! allocator and the M2P, this CPU's TLB and descriptor tables, the
//! scheduler's view of other domains and the dispatcher.

use super::live::Live;
use super::*;
use crate::domain::mmu_ops::{self, MmuHost};

impl MmuHost for Live<'_> {
    type Guest = GuestMem;
    #[inline]
    fn kernel_mem(&self, v: &Vcpu) -> GuestMem {
        v.kernel_mem()
    }
    fn wbinvd(&mut self) {
        crate::arch::x86_64::cpu::wbinvd();
    }
    fn load_page_tables(&mut self, v: &Vcpu) {
        v.load_page_tables();
    }
    fn load_gdt(&mut self, descs: impl Iterator<Item = u64>) {
        crate::arch::x86_64::gdt::load_guest_descriptors(descs);
    }
    fn load_ldt(&mut self, descs: impl Iterator<Item = u64>, ents: usize) {
        crate::arch::x86_64::gdt::load_ldt(descs, ents);
    }
    fn set_gdt_entry(&mut self, index: usize, desc: u64) {
        crate::arch::x86_64::gdt::set_guest_descriptor(index, desc);
    }
    fn set_ldt_entry(&mut self, index: usize, desc: u64) {
        crate::arch::x86_64::gdt::set_ldt_entry(index, desc);
    }
    /// A domain changed by another (setvcpucontext) is not running here:
    /// its tables load when it is switched to.
    fn running_here(&self, d: &Domain) -> bool {
        crate::schedule::slot_of(d.domid).is_some_and(|s| s == crate::schedule::current())
    }
    fn flush_remote(&mut self, domid: u16) {
        crate::schedule::flush_remote(domid);
    }
    fn forget_loaded(&mut self, domid: u16) {
        crate::schedule::forget_loaded(domid);
    }
    fn translate(&self, l4_maddr: u64, va: u64) -> Option<u64> {
        crate::mm::guest_walk::translate(&crate::guest::DirectMap, l4_maddr, va, false).ok()
    }
    fn dispatch(&mut self, v: &mut Vcpu, d: &mut Domain, regs: &mut CpuUserRegs) -> u64 {
        super::dispatch(v, d, regs)
    }
    fn iret(&mut self, v: &mut Vcpu, d: &mut Domain, regs: &mut CpuUserRegs) -> u64 {
        d.iret(v, regs)
    }
}

// The module's limits are the hardware tables' sizes.
const _: () = assert!(mmu_ops::LDT_ENTRIES == crate::arch::x86_64::gdt::LDT_ENTRIES as u64);
const _: () = assert!(mmu_ops::FIRST_RESERVED_GDT_ENTRY == crate::arch::x86_64::gdt::FIRST_RESERVED_GDT_ENTRY as u64);

pub(super) fn mmu_update(v: &mut Vcpu, d: &mut Domain, regs: &mut CpuUserRegs) -> Ret {
    mmu_ops::mmu_update(&mut Live::new(), v, d, regs)
}

pub(super) fn update_va_mapping(v: &mut Vcpu, d: &mut Domain, va: u64, pte: u64, flags: u64) -> Ret {
    mmu_ops::update_va_mapping(&mut Live::new(), v, d, va, pte, flags)
}

pub(super) fn mmuext_op(v: &mut Vcpu, d: &mut Domain, regs: &mut CpuUserRegs) -> Ret {
    mmu_ops::mmuext_op(&mut Live::new(), v, d, regs)
}

pub(super) fn multicall(v: &mut Vcpu, d: &mut Domain, regs: &mut CpuUserRegs) -> Ret {
    mmu_ops::multicall(&mut Live::new(), v, d, regs)
}

pub(super) fn set_gdt(v: &mut Vcpu, d: &mut Domain, frame_list: u64, entries: u64) -> Ret {
    mmu_ops::set_gdt(&mut Live::new(), v, d, frame_list, entries)
}

pub(super) fn update_descriptor(v: &mut Vcpu, d: &mut Domain, maddr: u64, desc: u64) -> Ret {
    mmu_ops::update_descriptor(&mut Live::new(), v, d, maddr, desc)
}

/// A write #PF from the guest kernel on the running vCPU: writable page
/// tables and dom0's read-only MMIO (`domain/ptwr.rs`, Xen's
/// `pv_ro_page_fault`). True: emulated, the guest goes on past the
/// instruction; false: deliver the #PF.
pub fn ptwr_fault(v: &Vcpu, d: &Domain, regs: &mut CpuUserRegs, cr2: u64) -> bool {
    use crate::domain::ptwr::{Faulter, page_fault};
    // The decoder reads 64-bit code: a PV vCPU always runs on the flat
    // 64-bit selectors (as the #GP emulations check).
    if regs.cs != crate::domain::vcpu::FLAT_CS64 {
        return false;
    }
    let f = Faulter {
        domid: d.domid,
        privileged: d.privileged,
        vm_assist: d.vm_assist,
        kernel_mode: v.kernel_mode,
        l4_maddr: v.guest_table,
        fs_gs_base: (v.fs_base, v.gs_base_kernel),
    };
    page_fault(&mut Live::new(), &v.kernel_mem(), &f, regs, cr2)
}
