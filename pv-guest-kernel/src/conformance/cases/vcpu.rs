//! The `vcpu_op` commands an unmodified Linux PV kernel issues at boot
//! (`xen/include/public/vcpu.h`; Xen 4.17's `do_vcpu_op`/`common_vcpu_op`):
//! is_up, the run-state area and query, the periodic timer and the
//! refusals of register_vcpu_info (a successful move of `vcpu_info` would
//! change where every later case's events arrive, so only its errors are
//! tested here). The single-shot timer is with the other timers
//! (`sched.rs`).

#[cfg(target_os = "none")]
use super::helpers;
use crate::conformance::{CaseInfo, Kind};

/// `vcpu_op` beyond the single-shot timer.
pub mod vcpu_op {
    use super::*;

    cases! {
        vcpu_op_is_up_self_is_1 ("vcpu_op", "VCPUOP_is_up", Accept) { expect(call(nr::VCPU_OP, 3, 0, 0, 0, 0), 1) }
        vcpu_op_is_up_missing_vcpu_enoent ("vcpu_op", "VCPUOP_is_up", Reject) { expect(call(nr::VCPU_OP, 3, 1000, 0, 0, 0), -ENOENT) }
        vcpu_op_get_runstate_info_running ("vcpu_op", "VCPUOP_get_runstate_info", Accept) {
            let mut r = RunstateInfo::default();
            let rc = call(nr::VCPU_OP, 4, 0, ptr_mut(&mut r), 0, 0);
            if rc != 0 { return expect(rc, 0); }
            all(&[
                check(r.state == 0, format_args!("state {}, want running (0)", r.state)),
                check(r.time[0] > 0, format_args!("no time running")),
                check(r.state_entry_time & (1 << 63) == 0, format_args!("XEN_RUNSTATE_UPDATE in a query")),
            ])
        }
        vcpu_op_get_runstate_info_unmapped_efault ("vcpu_op", "VCPUOP_get_runstate_info", Reject) { expect(call(nr::VCPU_OP, 4, 0, UNMAPPED, 0, 0), -EFAULT) }
        vcpu_op_runstate_area_written_at_once ("vcpu_op", "VCPUOP_register_runstate_memory_area", Accept) {
            static mut AREA: RunstateInfo = RunstateInfo { state: 7, _pad0: 0, state_entry_time: 0, time: [0; 4] };
            let area = &raw mut AREA as u64;
            let rc = call(nr::VCPU_OP, 5, 0, ptr(&area), 0, 0);
            // SAFETY: the hypervisor wrote the record during the call; no
            // other code touches AREA.
            let r = unsafe { core::ptr::read_volatile(&raw const AREA) };
            let (state, entry) = (r.state, r.state_entry_time);
            call(nr::VCPU_OP, 5, 0, ptr(&0u64), 0, 0);
            all(&[expect(rc, 0), check(state == 0 && entry != 0, format_args!("state {state}, entry time {entry}"))])
        }
        vcpu_op_runstate_area_updated_on_switch_with_update_flag ("vcpu_op", "VCPUOP_register_runstate_memory_area", Accept) {
            static mut AREA: RunstateInfo = RunstateInfo { state: 7, _pad0: 0, state_entry_time: 0, time: [0; 4] };
            let area = &raw mut AREA as u64;
            let va = vm_assist(0, 5);
            let rc = call(nr::VCPU_OP, 5, 0, ptr(&area), 0, 0);
            // SAFETY: as above.
            let first = unsafe { core::ptr::read_volatile(&raw const AREA) }.time;
            // Block for 2 ms (SCHEDOP_poll on no port, with a timeout,
            // which needs no event channel): the vCPU is switched out and
            // back in, and the record must follow.
            if crate::shared::poll_sleep_ns(2_000_000).is_none() {
                return error(format_args!("no clock"));
            }
            // SAFETY: as above.
            let r = unsafe { core::ptr::read_volatile(&raw const AREA) };
            call(nr::VCPU_OP, 5, 0, ptr(&0u64), 0, 0);
            vm_assist(1, 5);
            let blocked = r.time[2] > first[2] || r.time[1] > first[1];
            all(&[
                expect(va, 0),
                expect(rc, 0),
                check(r.state == 0, format_args!("state {} after the wake", r.state)),
                check(r.state_entry_time & (1 << 63) == 0, format_args!("XEN_RUNSTATE_UPDATE left set")),
                check(blocked, format_args!("no blocked or runnable time after SCHEDOP_block")),
            ])
        }
        vcpu_op_runstate_area_unmapped_accepted ("vcpu_op", "VCPUOP_register_runstate_memory_area", Attack) {
            // Xen checks only that the address is guest space; the write
            // that fails is dropped.
            let rc = call(nr::VCPU_OP, 5, 0, ptr(&UNMAPPED), 0, 0);
            call(nr::VCPU_OP, 5, 0, ptr(&0u64), 0, 0);
            expect(rc, 0)
        }
        vcpu_op_runstate_area_read_only_page_accepted_unwritten ("vcpu_op", "VCPUOP_register_runstate_memory_area", Attack) {
            // Guest space the guest cannot write: accepted (Xen checks only
            // access_ok) and never written.
            let Some((va, mfn)) = page() else { return error(format_args!("no spare page")) };
            // SAFETY: `va` is a spare page of ours, mapped writable.
            unsafe { core::ptr::write_bytes(va as *mut u8, 0x5a, 64) };
            let ro = read_only(va, mfn);
            let rc = call(nr::VCPU_OP, 5, 0, ptr(&va), 0, 0);
            call(nr::VCPU_OP, 5, 0, ptr(&0u64), 0, 0);
            // SAFETY: still mapped (read-only).
            let intact = unsafe { core::slice::from_raw_parts(va as *const u8, 64) }.iter().all(|&b| b == 0x5a);
            let rw = writable(va, mfn);
            all(&[expect(ro, 0), expect(rc, 0), check(intact, format_args!("the read-only page was written")), expect(rw, 0)])
        }
        vcpu_op_runstate_area_hypervisor_efault ("vcpu_op", "VCPUOP_register_runstate_memory_area", Attack) { expect(call(nr::VCPU_OP, 5, 0, ptr(&XEN_VA), 0, 0), -EFAULT) }
        vcpu_op_runstate_area_m2p_efault ("vcpu_op", "VCPUOP_register_runstate_memory_area", Attack) {
            // The read-only M2P the guest can read is still the hypervisor's.
            expect(call(nr::VCPU_OP, 5, 0, ptr(&0xffff_8000_0000_0000u64), 0, 0), -EFAULT)
        }
        vcpu_op_runstate_area_noncanonical_efault ("vcpu_op", "VCPUOP_register_runstate_memory_area", Attack) { expect(call(nr::VCPU_OP, 5, 0, ptr(&NONCANON), 0, 0), -EFAULT) }
        vcpu_op_runstate_area_missing_vcpu_enoent ("vcpu_op", "VCPUOP_register_runstate_memory_area", Attack) { expect(call(nr::VCPU_OP, 5, 1000, ptr(&0u64), 0, 0), -ENOENT) }
        vcpu_op_time_area_gets_the_time_record ("vcpu_op", "VCPUOP_register_vcpu_time_memory_area", Accept) {
            static mut AREA: xen_public::VcpuTimeInfo = xen_public::VcpuTimeInfo {
                version: 1, pad0: 0, tsc_timestamp: 0, system_time: 0, tsc_to_system_mul: 0, tsc_shift: 0, flags: 0, pad1: [0; 2],
            };
            let area = &raw mut AREA as u64;
            let rc = call(nr::VCPU_OP, 13, 0, ptr(&area), 0, 0);
            // SAFETY: the hypervisor wrote the record during the call; no
            // other code touches AREA.
            let t = unsafe { core::ptr::read_volatile(&raw const AREA) };
            let off = call(nr::VCPU_OP, 13, 0, ptr(&0u64), 0, 0);
            all(&[
                expect(rc, 0),
                check(t.version & 1 == 0 && t.version != 0, format_args!("version {}", t.version)),
                check(t.system_time != 0 && t.tsc_to_system_mul != 0, format_args!("system time {}, mul {}", t.system_time, t.tsc_to_system_mul)),
                expect(off, 0),
            ])
        }
        vcpu_op_time_area_hypervisor_efault ("vcpu_op", "VCPUOP_register_vcpu_time_memory_area", Attack) { expect(call(nr::VCPU_OP, 13, 0, ptr(&XEN_VA), 0, 0), -EFAULT) }
        vcpu_op_time_area_unmapped_argument_efault ("vcpu_op", "VCPUOP_register_vcpu_time_memory_area", Reject) { expect(call(nr::VCPU_OP, 13, 0, UNMAPPED, 0, 0), -EFAULT) }
        vcpu_op_periodic_below_1ms_einval ("vcpu_op", "VCPUOP_set_periodic_timer", Reject) { expect(call(nr::VCPU_OP, 6, 0, ptr(&999_999u64), 0, 0), -EINVAL) }
        vcpu_op_periodic_huge_einval ("vcpu_op", "VCPUOP_set_periodic_timer", Attack) { expect(call(nr::VCPU_OP, 6, 0, ptr(&u64::MAX), 0, 0), -EINVAL) }
        vcpu_op_periodic_unmapped_efault ("vcpu_op", "VCPUOP_set_periodic_timer", Reject) { expect(call(nr::VCPU_OP, 6, 0, UNMAPPED, 0, 0), -EFAULT) }
        vcpu_op_periodic_set_then_stop ("vcpu_op", "VCPUOP_set_periodic_timer", Accept) {
            // The runtime stopped the default timer at boot, as Linux does
            // (Linux BUG()s if the stop fails); it ends stopped again.
            all(&[expect(call(nr::VCPU_OP, 6, 0, ptr(&10_000_000u64), 0, 0), 0), expect(call(nr::VCPU_OP, 7, 0, 0, 0, 0), 0)])
        }
        vcpu_op_vcpu_info_offset_crossing_page_enxio ("vcpu_op", "VCPUOP_register_vcpu_info", Attack) {
            let Some((_, mfn)) = page() else { return error(format_args!("no spare page")) };
            expect(register_vcpu_info(mfn, 4096 - 32), -ENXIO)
        }
        vcpu_op_vcpu_info_misaligned_enxio ("vcpu_op", "VCPUOP_register_vcpu_info", Attack) {
            let Some((_, mfn)) = page() else { return error(format_args!("no spare page")) };
            expect(register_vcpu_info(mfn, 4), -ENXIO)
        }
        vcpu_op_vcpu_info_foreign_frame_einval ("vcpu_op", "VCPUOP_register_vcpu_info", Attack) {
            // A frame far past any RAM: no domain owns it.
            expect(register_vcpu_info(0xf_ffff_ffff, 0), -EINVAL)
        }
        vcpu_op_vcpu_info_page_table_einval ("vcpu_op", "VCPUOP_register_vcpu_info", Attack) {
            // The running L4 can never be typed writable.
            expect(register_vcpu_info(l4_mfn(), 0), -EINVAL)
        }
        vcpu_op_vcpu_info_unmapped_efault ("vcpu_op", "VCPUOP_register_vcpu_info", Reject) { expect(call(nr::VCPU_OP, 10, 0, UNMAPPED, 0, 0), -EFAULT) }
        vcpu_op_vcpu_info_missing_vcpu_enoent ("vcpu_op", "VCPUOP_register_vcpu_info", Attack) {
            let Some((_, mfn)) = page() else { return error(format_args!("no spare page")) };
            let info = VcpuRegisterVcpuInfo { mfn, offset: 0, rsvd: 0 };
            expect(call(nr::VCPU_OP, 10, 1000, ptr(&info), 0, 0), -ENOENT)
        }
    }
}
