//! `memory_op`: reservations and ballooning (`xen/include/public/memory.h`).

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
}
