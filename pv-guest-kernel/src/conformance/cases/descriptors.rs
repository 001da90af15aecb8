//! Descriptor tables: `set_gdt`, `MMUEXT_SET_LDT` and `update_descriptor`
//! (`xen/include/public/xen.h`, `xen/include/public/arch-x86/xen.h`).

#[cfg(target_os = "none")]
use super::helpers;
use crate::conformance::{CaseInfo, Kind};

cases! {
    set_gdt_one_page_and_load_a_selector ("set_gdt", "one frame", Accept) {
        let Some((g, gm)) = page() else { return error(format_args!("no spare page")) };
        // SAFETY: a spare, writable page of ours: entry 1 is a flat data
        // segment (DPL 0, which the hypervisor raises to 3).
        unsafe {
            core::ptr::write_bytes(g as *mut u8, 0, 4096);
            core::ptr::write_volatile((g as *mut u64).add(1), 0x00cf_9200_0000_ffff);
        }
        read_only(g, gm);
        let frames = [gm];
        let r = call(nr::SET_GDT, ptr(&frames), 512, 0, 0, 0);
        // SAFETY: our GDT page, mapped read-only.
        let fixed = unsafe { core::ptr::read_volatile((g as *const u64).add(1)) };
        let loaded = if r == 0 {
            // SAFETY: selector 0x0b (GDT entry 1, RPL 3) is the data segment
            // just installed; FS is reset to the NUL selector right after.
            unsafe { core::arch::asm!("mov {s:x}, 0x0b", "mov fs, {s:x}", "xor {s:e}, {s:e}", "mov fs, {s:x}", s = out(reg) _) };
            true
        } else {
            false
        };
        let clear = call(nr::SET_GDT, ptr(&frames), 0, 0, 0, 0);
        let w = writable(g, gm);
        all(&[expect(r, 0), check(fixed == 0x00cf_f200_0000_ffff, format_args!("descriptor {fixed:#x}")), check(loaded, format_args!("not loaded")), expect(clear, 0), expect(w, 0)])
    }
    set_ldt_and_load_a_selector ("mmuext_op", "MMUEXT_SET_LDT", Accept) {
        let Some((l, lm)) = page() else { return error(format_args!("no spare page")) };
        // SAFETY: a spare, writable page: LDT entry 1 is a flat data segment.
        unsafe {
            core::ptr::write_bytes(l as *mut u8, 0, 4096);
            core::ptr::write_volatile((l as *mut u64).add(1), 0x00cf_f200_0000_ffff);
        }
        read_only(l, lm);
        let r = mmuext(13, l, 0, 0x7ff0);
        let op = MmuextOp { cmd: 13, _pad0: 0, arg1: l, arg2: 2 };
        let r = if r == 0 { call(nr::MMUEXT_OP, ptr(&op), 1, 0, 0x7ff0, 0) } else { r };
        if r == 0 {
            // SAFETY: selector 0x0f is LDT entry 1 (TI set, RPL 3), the data
            // segment above; FS goes back to NUL right after.
            unsafe { core::arch::asm!("mov {s:x}, 0x0f", "mov fs, {s:x}", "xor {s:e}, {s:e}", "mov fs, {s:x}", s = out(reg) _) };
        }
        let clear = mmuext(13, 0, 0, 0x7ff0);
        let w = writable(l, lm);
        all(&[expect(r, 0), expect(clear, 0), expect(w, 0)])
    }
    set_ldt_unaligned_einval ("mmuext_op", "MMUEXT_SET_LDT", Reject) {
        let op = MmuextOp { cmd: 13, _pad0: 0, arg1: 0x1234_5008, arg2: 4 };
        expect(call(nr::MMUEXT_OP, ptr(&op), 1, 0, 0x7ff0, 0), -EINVAL)
    }
    set_ldt_too_many_entries_einval ("mmuext_op", "MMUEXT_SET_LDT", Reject) {
        let op = MmuextOp { cmd: 13, _pad0: 0, arg1: 0x4000_0000, arg2: 8193 };
        expect(call(nr::MMUEXT_OP, ptr(&op), 1, 0, 0x7ff0, 0), -EINVAL)
    }
    set_ldt_in_xen_range_einval ("mmuext_op", "MMUEXT_SET_LDT", Attack) {
        let op = MmuextOp { cmd: 13, _pad0: 0, arg1: XEN_VA, arg2: 16 };
        expect(call(nr::MMUEXT_OP, ptr(&op), 1, 0, 0x7ff0, 0), -EINVAL)
    }
    set_gdt_writable_frame_einval ("set_gdt", "frame mapped RW", Attack) {
        let Some((_, gm)) = page() else { return error(format_args!("no spare page")) };
        let frames = [gm];
        let r = call(nr::SET_GDT, ptr(&frames), 16, 0, 0, 0);
        if r == 0 { call(nr::SET_GDT, ptr(&frames), 0, 0, 0, 0); }
        expect(r, -EINVAL)
    }
    set_gdt_too_many_entries_einval ("set_gdt", "7169 entries", Reject) {
        let frames = [0u64; 16];
        expect(call(nr::SET_GDT, ptr(&frames), 7169, 0, 0, 0), -EINVAL)
    }
    set_gdt_unmapped_list_efault ("set_gdt", "frame list", Reject) { expect(call(nr::SET_GDT, UNMAPPED, 1, 0, 0, 0), -EFAULT) }
    set_gdt_tss_descriptor_refused ("set_gdt", "system descriptor", Attack) {
        let Some((g, gm)) = page() else { return error(format_args!("no spare page")) };
        // SAFETY: spare writable page: entry 0 is a 64-bit TSS descriptor.
        unsafe { core::ptr::write_volatile(g as *mut u64, 0x0000_8900_0000_0067) };
        read_only(g, gm);
        let frames = [gm];
        let r = call(nr::SET_GDT, ptr(&frames), 16, 0, 0, 0);
        if r == 0 { call(nr::SET_GDT, ptr(&frames), 0, 0, 0, 0); }
        writable(g, gm);
        // SAFETY: writable again.
        unsafe { core::ptr::write_volatile(g as *mut u64, 0) };
        expect(r, -EINVAL)
    }
    update_descriptor_on_a_writable_page ("update_descriptor", "data segment", Accept) {
        let Some((va, m)) = page() else { return error(format_args!("no spare page")) };
        let r = call(nr::UPDATE_DESCRIPTOR, (m << 12) + 8, 0x00cf_9200_0000_ffff, 0, 0, 0);
        // SAFETY: our own spare page.
        let v = unsafe { core::ptr::read_volatile((va + 8) as *const u64) };
        all(&[expect(r, 0), check(v == 0x00cf_f200_0000_ffff, format_args!("wrote {v:#x}"))])
    }
    update_descriptor_unaligned_einval ("update_descriptor", "alignment", Reject) {
        let Some((_, m)) = page() else { return error(format_args!("no spare page")) };
        expect(call(nr::UPDATE_DESCRIPTOR, (m << 12) + 4, 0, 0, 0, 0), -EINVAL)
    }
    update_descriptor_tss_refused ("update_descriptor", "system descriptor", Attack) {
        let Some((_, m)) = page() else { return error(format_args!("no spare page")) };
        expect(call(nr::UPDATE_DESCRIPTOR, m << 12, 0x0000_8900_0000_0067, 0, 0, 0), -EINVAL)
    }
    update_descriptor_into_page_table_refused ("update_descriptor", "page-table frame", Attack) {
        expect(call(nr::UPDATE_DESCRIPTOR, (l4_mfn() << 12) + 8, 0x00cf_f200_0000_ffff, 0, 0, 0), -EINVAL)
    }
    update_descriptor_foreign_frame_refused ("update_descriptor", "frame not owned", Attack) {
        expect(call(nr::UPDATE_DESCRIPTOR, 0x10_0000, 0x00cf_f200_0000_ffff, 0, 0, 0), -EINVAL)
    }
}
