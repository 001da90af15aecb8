//! `memory_op`: reservations and ballooning, the machine and M2P queries a
//! PV kernel makes at boot, and XENMEM_exchange
//! (`xen/include/public/memory.h`). The suite runs as dom0 on both
//! hypervisors, so machine_memory_map's refusal to a domU is a host test
//! (`domain::memory_ops`).

#[cfg(target_os = "none")]
use super::helpers;
use crate::conformance::{CaseInfo, Kind};

cases! {
    memory_op_current_reservation_is_nr_pages ("memory_op", "XENMEM_current_reservation", Accept) {
        expect(current_reservation(0x7ff0), start_info().nr_pages as i64)
    }
    memory_op_maximum_reservation_not_below_current ("memory_op", "XENMEM_maximum_reservation", Accept) {
        let max = maximum_reservation(0x7ff0);
        check(max >= start_info().nr_pages as i64, format_args!("maximum {max}"))
    }
    memory_op_reservation_of_unknown_domain_esrch ("memory_op", "XENMEM_current_reservation", Reject) {
        expect(current_reservation(0x1234), -ESRCH)
    }
    memory_op_balloon_out_and_back_in ("memory_op", "XENMEM_decrease/increase_reservation", Accept) {
        let Some((va, m)) = page() else { return error(format_args!("no spare page")) };
        let before = current_reservation(0x7ff0);
        let unmapped = uvm(va, 0);
        let dec = decrease_reservation(0x7ff0, &[m]);
        let after_dec = current_reservation(0x7ff0);
        let mut fresh = [0u64];
        let inc = increase_reservation(0x7ff0, &mut fresh);
        let after_inc = current_reservation(0x7ff0);
        let remap = if inc == 1 { uvm(va, (fresh[0] << 12) | PTE_RW) } else { -1 };
        all(&[
            expect(unmapped, 0),
            expect(dec, 1),
            expect(after_dec, before - 1),
            expect(inc, 1),
            expect(after_inc, before),
            expect(remap, 0),
        ])
    }
    memory_op_frames_given_are_scrubbed ("memory_op", "XENMEM_increase_reservation", Attack) {
        // ABI: a frame the hypervisor hands out never carries its previous
        // owner's data. Fill a page with a pattern, give it back, take a
        // frame back (often the same one): it must read as zeros.
        let Some((va, m)) = page() else { return error(format_args!("no spare page")) };
        // SAFETY: `va` is a spare page of ours, mapped writable.
        unsafe { core::ptr::write_bytes(va as *mut u8, 0xa5, 4096) };
        let unmapped = uvm(va, 0);
        let dec = decrease_reservation(0x7ff0, &[m]);
        let mut fresh = [0u64];
        let inc = increase_reservation(0x7ff0, &mut fresh);
        let remap = if inc == 1 { uvm(va, (fresh[0] << 12) | PTE_RW) } else { -1 };
        // SAFETY: mapped just above (checked before reading).
        let dirty = if remap == 0 { unsafe { core::slice::from_raw_parts(va as *const u64, 512) }.iter().filter(|&&w| w != 0).count() } else { 0 };
        all(&[expect(unmapped, 0), expect(dec, 1), expect(inc, 1), expect(remap, 0), check(dirty == 0, format_args!("{dirty} non-zero words"))])
    }
    memory_op_decrease_of_shared_info_does_nothing ("memory_op", "XENMEM_decrease_reservation", Attack) {
        // shared_info is written by the hypervisor: it cannot be given back.
        expect(decrease_reservation(0x7ff0, &[start_info().shared_info >> 12]), 0)
    }
    memory_op_decrease_foreign_frame_does_nothing ("memory_op", "XENMEM_decrease_reservation", Attack) {
        expect(decrease_reservation(0x7ff0, &[0x100]), 0)
    }
    memory_op_unknown_cmd_enosys ("memory_op", "cmd 63", Reject) { expect(call(nr::MEMORY_OP, 63, 0, 0, 0, 0), -ENOSYS) }
    memory_op_machine_memory_map_dom0 ("memory_op", "XENMEM_machine_memory_map", Accept) {
        let mut buf = [E820Entry::default(); 64];
        let mut map = XenMemoryMap { nr_entries: 64, _pad0: 0, buffer: ptr_mut(&mut buf) };
        let rc = call(nr::MEMORY_OP, 10, ptr_mut(&mut map), 0, 0, 0);
        if rc != 0 { return expect(rc, 0); }
        let n = (map.nr_entries as usize).min(64);
        let ram = buf[..n].iter().filter(|e| { let t = e.type_; t == 1 }).count();
        let sorted = buf[..n].windows(2).all(|w| { let (a, b) = (w[0].addr, w[1].addr); a < b });
        all(&[check(n >= 2, format_args!("{n} entries")), check(ram >= 1, format_args!("no RAM entry")), check(sorted, format_args!("entries out of order"))])
    }
    memory_op_machine_memory_map_counts_with_null_buffer ("memory_op", "XENMEM_machine_memory_map", Accept) {
        let mut map = XenMemoryMap { nr_entries: 0, _pad0: 0, buffer: 0 };
        let rc = call(nr::MEMORY_OP, 10, ptr_mut(&mut map), 0, 0, 0);
        let n = map.nr_entries;
        all(&[expect(rc, 0), check(n >= 2, format_args!("{n} entries"))])
    }
    memory_op_machine_memory_map_small_buffer_einval ("memory_op", "XENMEM_machine_memory_map", Reject) {
        let mut buf = [E820Entry::default(); 1];
        let mut map = XenMemoryMap { nr_entries: 1, _pad0: 0, buffer: ptr_mut(&mut buf) };
        expect(call(nr::MEMORY_OP, 10, ptr_mut(&mut map), 0, 0, 0), -EINVAL)
    }
    memory_op_machine_memory_map_buffer_in_hypervisor_efault ("memory_op", "XENMEM_machine_memory_map", Attack) {
        let mut map = XenMemoryMap { nr_entries: 64, _pad0: 0, buffer: XEN_VA };
        expect(call(nr::MEMORY_OP, 10, ptr_mut(&mut map), 0, 0, 0), -EFAULT)
    }
    memory_op_machine_memory_map_unmapped_efault ("memory_op", "XENMEM_machine_memory_map", Reject) { expect(call(nr::MEMORY_OP, 10, UNMAPPED, 0, 0, 0), -EFAULT) }
    memory_op_memory_map_without_set_map_enosys ("memory_op", "XENMEM_memory_map", Reject) {
        // No toolstack set dom0's map: Xen 4.17 answers -ENOSYS (Linux
        // dom0 asks for the machine map instead).
        let mut buf = [E820Entry::default(); 8];
        let mut map = XenMemoryMap { nr_entries: 8, _pad0: 0, buffer: ptr_mut(&mut buf) };
        expect(call(nr::MEMORY_OP, 9, ptr_mut(&mut map), 0, 0, 0), -ENOSYS)
    }
    memory_op_machphys_mapping_is_the_m2p ("memory_op", "XENMEM_machphys_mapping", Accept) {
        let mut m = XenMachphysMapping::default();
        let rc = call(nr::MEMORY_OP, 12, ptr_mut(&mut m), 0, 0, 0);
        if rc != 0 { return expect(rc, 0); }
        // The M2P entry of the highest frame it names is mapped (a fault
        // here fails the case).
        // SAFETY: the hypervisor maps its read-only M2P up to max_mfn.
        let last = unsafe { core::ptr::read_volatile((m.v_start + m.max_mfn * 8) as *const u64) };
        core::hint::black_box(last);
        all(&[
            check(m.v_start == 0xffff_8000_0000_0000, format_args!("v_start {:#x}", m.v_start)),
            check(m.v_end > m.v_start && m.max_mfn < (m.v_end - m.v_start) / 8, format_args!("v_end {:#x} max_mfn {:#x}", m.v_end, m.max_mfn)),
        ])
    }
    memory_op_machphys_mapping_unmapped_efault ("memory_op", "XENMEM_machphys_mapping", Reject) { expect(call(nr::MEMORY_OP, 12, UNMAPPED, 0, 0, 0), -EFAULT) }
    memory_op_machphys_mfn_list_first_chunk ("memory_op", "XENMEM_machphys_mfn_list", Accept) {
        let mut mfns = [0u64; 4];
        let mut l = XenMachphysMfnList { max_extents: 4, _pad0: 0, extent_start: ptr_mut(&mut mfns), nr_extents: 0, _pad1: 0 };
        let rc = call(nr::MEMORY_OP, 5, ptr_mut(&mut l), 0, 0, 0);
        let n = l.nr_extents;
        all(&[expect(rc, 0), check(n >= 1 && mfns[0] != 0, format_args!("{n} extents, first {:#x}", mfns[0]))])
    }
    memory_op_machphys_mfn_list_into_hypervisor_efault ("memory_op", "XENMEM_machphys_mfn_list", Attack) {
        let mut l = XenMachphysMfnList { max_extents: 4, _pad0: 0, extent_start: XEN_VA, nr_extents: 0, _pad1: 0 };
        expect(call(nr::MEMORY_OP, 5, ptr_mut(&mut l), 0, 0, 0), -EFAULT)
    }
    memory_op_maximum_gpfn_is_max_pfn_less_one ("memory_op", "XENMEM_maximum_gpfn", Accept) {
        let si = crate::shared::base();
        if si == 0 { return error(format_args!("shared_info not mapped")); }
        let at = si + core::mem::offset_of!(SharedInfo, arch) as u64;
        // SAFETY: arch.max_pfn is the guest's word in its mapped shared_info.
        let max_pfn = unsafe { core::ptr::read_volatile(at as *const u64) };
        let rc = call(nr::MEMORY_OP, 14, ptr(&0x7ff0u16), 0, 0, 0);
        expect(rc, max_pfn.max(1) as i64 - 1)
    }
    memory_op_maximum_gpfn_unknown_domain_esrch ("memory_op", "XENMEM_maximum_gpfn", Reject) { expect(call(nr::MEMORY_OP, 14, ptr(&0x1234u16), 0, 0, 0), -ESRCH) }
    memory_op_exchange_own_frame ("memory_op", "XENMEM_exchange", Accept) {
        // Linux's xen_create_contiguous_region in small: a frame with no
        // mapping left is swapped for another below 4 GiB, then mapped back.
        let Some((va, m)) = page() else { return error(format_args!("no spare page")) };
        let unmapped = uvm(va, 0);
        let mut inp = [m];
        let mut out = [0x4_0000u64];
        let mut x = exchange_arg(ptr_mut(&mut inp), ptr_mut(&mut out), 32);
        let rc = call(nr::MEMORY_OP, 11, ptr_mut(&mut x), 0, 0, 0);
        let fresh = out[0];
        let remap = if rc == 0 { uvm(va, (fresh << 12) | PTE_RW) } else { -1 };
        all(&[
            expect(unmapped, 0),
            expect(rc, 0),
            check(x.nr_exchanged == 1, format_args!("nr_exchanged {}", x.nr_exchanged)),
            check(fresh != m && fresh < (1 << 20), format_args!("new frame {fresh:#x}")),
            expect(remap, 0),
        ])
    }
    memory_op_exchange_of_mapped_frame_einval ("memory_op", "XENMEM_exchange", Attack) {
        // Still mapped: Xen's steal_page needs the allocation to be the
        // only reference.
        let Some((_, m)) = page() else { return error(format_args!("no spare page")) };
        let (mut inp, mut out) = ([m], [0x4_0001u64]);
        let mut x = exchange_arg(ptr_mut(&mut inp), ptr_mut(&mut out), 0);
        let rc = call(nr::MEMORY_OP, 11, ptr_mut(&mut x), 0, 0, 0);
        all(&[expect(rc, -EINVAL), check(x.nr_exchanged == 0, format_args!("nr_exchanged {}", x.nr_exchanged))])
    }
    memory_op_exchange_of_page_table_einval ("memory_op", "XENMEM_exchange", Attack) {
        let (mut inp, mut out) = ([l4_mfn()], [0x4_0002u64]);
        let mut x = exchange_arg(ptr_mut(&mut inp), ptr_mut(&mut out), 0);
        expect(call(nr::MEMORY_OP, 11, ptr_mut(&mut x), 0, 0, 0), -EINVAL)
    }
    memory_op_exchange_of_unowned_frame_einval ("memory_op", "XENMEM_exchange", Attack) {
        // A frame past all RAM, then one low frame the firmware keeps.
        let (mut inp, mut out) = ([0xf_ffff_ffffu64], [0x4_0003u64]);
        let mut x = exchange_arg(ptr_mut(&mut inp), ptr_mut(&mut out), 0);
        let far = call(nr::MEMORY_OP, 11, ptr_mut(&mut x), 0, 0, 0);
        inp[0] = 0x1;
        let mut x = exchange_arg(ptr_mut(&mut inp), ptr_mut(&mut out), 0);
        let low = call(nr::MEMORY_OP, 11, ptr_mut(&mut x), 0, 0, 0);
        all(&[expect(far, -EINVAL), expect(low, -EINVAL)])
    }
    memory_op_exchange_order_mismatch_einval ("memory_op", "XENMEM_exchange", Reject) {
        let (mut inp, mut out) = ([0u64; 2], [0u64; 2]);
        let mut x = exchange_arg(ptr_mut(&mut inp), ptr_mut(&mut out), 0);
        x.in_.nr_extents = 2;
        expect(call(nr::MEMORY_OP, 11, ptr_mut(&mut x), 0, 0, 0), -EINVAL)
    }
    memory_op_exchange_list_in_hypervisor_efault ("memory_op", "XENMEM_exchange", Attack) {
        let mut out = [0u64];
        let mut x = exchange_arg(XEN_VA, ptr_mut(&mut out), 0);
        expect(call(nr::MEMORY_OP, 11, ptr_mut(&mut x), 0, 0, 0), -EFAULT)
    }
    memory_op_exchange_unmapped_efault ("memory_op", "XENMEM_exchange", Reject) { expect(call(nr::MEMORY_OP, 11, UNMAPPED, 0, 0, 0), -EFAULT) }
}
