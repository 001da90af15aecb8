//! Scheduling and timers: `sched_op` (`xen/include/public/sched.h`),
//! `set_timer_op` (`xen/include/public/xen.h`) and the `vcpu_op` single-shot
//! timer (`xen/include/public/vcpu.h`). `SCHEDOP_poll` is with the event
//! channels. Two lists, because the run order (`cases.rs`) puts other families
//! between them.

#[cfg(target_os = "none")]
use super::helpers;
use crate::conformance::{CaseInfo, Kind};

/// `sched_op` commands other than `SCHEDOP_poll` (which is in `evtchn.rs`).
pub mod sched_op {
    use super::*;

    cases! {
        sched_op_yield_ok ("sched_op", "SCHEDOP_yield", Accept) { expect(call(nr::SCHED_OP, 0, 0, 0, 0, 0), 0) }
        sched_op_unknown_cmd_enosys ("sched_op", "cmd 99", Reject) { expect(call(nr::SCHED_OP, 99, 0, 0, 0, 0), -ENOSYS) }
        sched_op_shutdown_unmapped_efault ("sched_op", "SCHEDOP_shutdown", Reject) { expect(call(nr::SCHED_OP, 2, UNMAPPED, 0, 0, 0), -EFAULT) }
    }
}

/// `set_timer_op` and the `vcpu_op` single-shot timer.
pub mod timers {
    use super::*;

    cases! {
        set_timer_op_cancel_ok ("set_timer_op", "cancel", Accept) { expect(call(nr::SET_TIMER_OP, 0, 0, 0, 0, 0), 0) }
        set_timer_op_far_future_ok ("set_timer_op", "arm", Accept) {
            let r = call(nr::SET_TIMER_OP, u64::MAX / 2, 0, 0, 0, 0);
            call(nr::SET_TIMER_OP, 0, 0, 0, 0, 0);
            expect(r, 0)
        }
        vcpu_op_singleshot_in_the_past_fires_not_etime ("vcpu_op", "VCPUOP_set_singleshot_timer", Accept) {
            // Xen 4.17 ignores VCPU_SSHOTTMR_future: no -ETIME.
            let t = VcpuSetSingleshotTimer { timeout_abs_ns: 1, flags: VCPU_SSHOTTMR_FUTURE, _pad0: 0 };
            let r = call(nr::VCPU_OP, 8, 0, ptr(&t), 0, 0);
            call(nr::VCPU_OP, 9, 0, 0, 0, 0);
            expect(r, 0)
        }
        set_timer_op_negative_deadline_accepted ("set_timer_op", "arm", Attack) {
            let r = call(nr::SET_TIMER_OP, u64::MAX, 0, 0, 0, 0);
            call(nr::SET_TIMER_OP, 0, 0, 0, 0, 0);
            expect(r, 0)
        }
        vcpu_op_singleshot_future_then_stop ("vcpu_op", "VCPUOP_set_singleshot_timer", Accept) {
            let t = VcpuSetSingleshotTimer { timeout_abs_ns: u64::MAX / 2, flags: VCPU_SSHOTTMR_FUTURE, _pad0: 0 };
            all(&[expect(call(nr::VCPU_OP, 8, 0, ptr(&t), 0, 0), 0), expect(call(nr::VCPU_OP, 9, 0, 0, 0, 0), 0)])
        }
        vcpu_op_missing_vcpu_enoent ("vcpu_op", "VCPUOP_stop_singleshot_timer", Reject) { expect(call(nr::VCPU_OP, 9, 5, 0, 0, 0), -ENOENT) }
        vcpu_op_singleshot_unmapped_efault ("vcpu_op", "VCPUOP_set_singleshot_timer", Reject) { expect(call(nr::VCPU_OP, 8, 0, UNMAPPED, 0, 0), -EFAULT) }
    }
}
