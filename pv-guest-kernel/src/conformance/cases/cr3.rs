//! `mov %reg, %cr3` from the guest kernel: emulated as Xen's `write_cr`
//! does for CR3 (`new_guest_cr3` on the frame `value >> 12`, the code
//! MMUEXT_NEW_BASEPTR uses), a refused frame leaving the #GP as raised.

#[cfg(target_os = "none")]
use super::helpers;
use crate::conformance::{CaseInfo, Kind};

cases! {
    privop_mov_to_cr3_of_the_current_table_ok ("trap", "mov %rdi, %cr3", Accept) {
        let Ok(cr3) = probe(Probe::ReadCr3, 0).map(|()| probe_value()) else { return error(format_args!("mov %cr3 failed")) };
        let w = probe(Probe::WriteCr3, cr3);
        let after = probe(Probe::ReadCr3, 0).map(|()| probe_value());
        all(&[check(w.is_ok(), format_args!("trapped: {w:?}")), check(after == Ok(cr3), format_args!("cr3 {after:?}, was {cr3:#x}"))])
    }
    privop_mov_to_cr3_of_a_fresh_l4_and_back ("trap", "mov %rdi, %cr3", Accept) {
        // A copy of the guest half of the current L4, read-only and not
        // pinned: the write validates it (new_guest_cr3), runs on it, and
        // switching back lets it go (it can be made writable again).
        let Ok(old) = probe(Probe::ReadCr3, 0).map(|()| probe_value()) else { return error(format_args!("mov %cr3 failed")) };
        let Some((t, tm)) = page() else { return error(format_args!("no spare page")) };
        let cur = start_info().pt_base as *const u64;
        for i in (0..512).filter(|i| !(256..272).contains(i)) {
            // SAFETY: the current L4 is mapped read-only in our region and
            // `t` is a spare writable page.
            unsafe { core::ptr::write_volatile((t as *mut u64).add(i), core::ptr::read_volatile(cur.add(i))) };
        }
        let ro = read_only(t, tm);
        let w = probe(Probe::WriteCr3, tm << 12);
        let now = probe(Probe::ReadCr3, 0).map(|()| probe_value());
        let v = call(nr::XEN_VERSION, 0, 0, 0, 0, 0);
        let back = probe(Probe::WriteCr3, old);
        let rw = writable(t, tm);
        all(&[
            expect(ro, 0),
            check(w.is_ok(), format_args!("switch trapped: {w:?}")),
            check(now == Ok(tm << 12), format_args!("cr3 {now:?}")),
            expect(v, (4 << 16) | 17),
            check(back.is_ok(), format_args!("switch back trapped: {back:?}")),
            expect(rw, 0),
        ])
    }
    privop_mov_to_cr3_of_a_data_page_is_gp ("trap", "mov %rdi, %cr3", Attack) {
        // A page mapped writable can never become an L4.
        let Some((_, m)) = page() else { return error(format_args!("no spare page")) };
        let Ok(old) = probe(Probe::ReadCr3, 0).map(|()| probe_value()) else { return error(format_args!("mov %cr3 failed")) };
        let r = probe(Probe::WriteCr3, m << 12);
        let after = probe(Probe::ReadCr3, 0).map(|()| probe_value());
        all(&[expect_trap(r, 13, Some(0), 0), check(after == Ok(old), format_args!("cr3 {after:?}"))])
    }
    privop_mov_to_cr3_past_ram_is_gp ("trap", "mov %rdi, %cr3", Attack) {
        expect_trap(probe(Probe::WriteCr3, 0x000f_ffff_ffff_f000), 13, Some(0), 0)
    }
    privop_mov_to_cr3_ignores_the_low_bits ("trap", "mov %rdi, %cr3", Accept) {
        // The kernel's own table, written with CR3's reserved low bits:
        // the frame is what counts (value >> 12), as Xen's xen_cr3_to_pfn.
        let Ok(cr3) = probe(Probe::ReadCr3, 0).map(|()| probe_value()) else { return error(format_args!("mov %cr3 failed")) };
        let w = probe(Probe::WriteCr3, cr3 | 0x18);
        let after = probe(Probe::ReadCr3, 0).map(|()| probe_value());
        all(&[check(w.is_ok(), format_args!("trapped: {w:?}")), check(after == Ok(cr3), format_args!("cr3 {after:?}"))])
    }
}
