//! Xen's hypercall-page MSR (0x40000000 for a PV guest, `cpuid` leaf
//! 0x40000002 EBX): `wrmsr` of `gfn << 12` fills that page of the guest's
//! with the hypercall stubs (`guest_wrmsr_xen`, `init_hypercall_page`); a
//! page index other than 0, a frame the guest may not write, or another
//! MSR of Xen's range is #GP(0).

#[cfg(target_os = "none")]
use super::helpers;
use crate::conformance::{CaseInfo, Kind};

cases! {
    msr_hypercall_page_written_into_a_spare_page ("trap", "wrmsr 0x40000000", Accept) {
        let Some((va, m)) = page() else { return error(format_args!("no spare page")) };
        // SAFETY: a spare writable page of ours.
        unsafe { core::ptr::write_bytes(va as *mut u8, 0x99, 4096) };
        let r = crate::traps::probe2(Probe::Wrmsr, 0x4000_0000, m << 12);
        // SAFETY: as above; the hypervisor wrote it through its own mapping.
        let page = unsafe { &*(va as *const [u8; 4096]) };
        // push %rcx; push %r11; mov $17,%eax; syscall; pop %r11; pop %rcx; ret; int3...
        let mut v17 = [0xccu8; 32];
        v17[..14].copy_from_slice(&[0x51, 0x41, 0x53, 0xb8, 17, 0, 0, 0, 0x0f, 0x05, 0x41, 0x5b, 0x59, 0xc3]);
        // push %rcx; push %r11; push %rax; mov $23,%eax; syscall
        let iret = [0x51, 0x41, 0x53, 0x50, 0xb8, 23, 0, 0, 0, 0x0f, 0x05];
        all(&[
            check(r.is_ok(), format_args!("wrmsr trapped: {r:?}")),
            check(page[17 * 32..18 * 32] == v17, format_args!("xen_version stub {:x?}", &page[17 * 32..17 * 32 + 16])),
            check(page[23 * 32..23 * 32 + 11] == iret, format_args!("iret stub {:x?}", &page[23 * 32..23 * 32 + 11])),
            check(page.iter().all(|&b| b != 0x99), format_args!("parts of the page not written")),
        ])
    }
    msr_hypercall_page_index_1_is_gp ("trap", "wrmsr 0x40000000", Reject) {
        let Some((va, m)) = page() else { return error(format_args!("no spare page")) };
        // SAFETY: a spare writable page of ours.
        unsafe { core::ptr::write_volatile(va as *mut u64, 0x1111) };
        let r = crate::traps::probe2(Probe::Wrmsr, 0x4000_0000, (m << 12) | 1);
        // SAFETY: as above.
        let first = unsafe { core::ptr::read_volatile(va as *const u64) };
        all(&[expect_trap(r, 13, Some(0), 16), check(first == 0x1111, format_args!("page written: {first:#x}"))])
    }
    msr_hypercall_page_onto_the_l4_is_gp ("trap", "wrmsr 0x40000000", Attack) {
        // A page table can never be written as a hypercall page.
        let r = crate::traps::probe2(Probe::Wrmsr, 0x4000_0000, l4_mfn() << 12);
        let still = call(nr::XEN_VERSION, 0, 0, 0, 0, 0);
        all(&[expect_trap(r, 13, Some(0), 16), expect(still, (4 << 16) | 17)])
    }
    msr_hypercall_page_past_ram_is_gp ("trap", "wrmsr 0x40000000", Attack) {
        expect_trap(crate::traps::probe2(Probe::Wrmsr, 0x4000_0000, 0x000f_ffff_ffff_f000), 13, Some(0), 16)
    }
    msr_other_xen_msrs_write_is_gp ("trap", "wrmsr 0x40000001", Reject) {
        all(&[expect_trap(crate::traps::probe2(Probe::Wrmsr, 0x4000_0001, 0), 13, Some(0), 16), expect_trap(crate::traps::probe2(Probe::Wrmsr, 0x4000_0200, 0), 13, Some(0), 16)])
    }
}
