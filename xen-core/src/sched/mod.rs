//! Scheduling policy. Pure logic, driven by the hypervisor's timer on the
//! target and by a simulated clock in the host tests.

pub mod credit;

use xen_public::trace::SwitchReason;

/// Why the vCPU a pCPU ran leaves it, for xen-core's
/// `TRC_XENCORE_VCPU_SWITCH` record: it blocked (`SCHEDOP_block`,
/// `SCHEDOP_poll`); it cannot run (paused, down, shut down); it yielded;
/// its slice ended (`slice_over`) while still runnable; otherwise another
/// vCPU woke and took the pCPU (a kick, a timer due).
pub fn switch_reason(blocked: bool, runnable: bool, yielded: bool, slice_over: bool) -> SwitchReason {
    if blocked {
        SwitchReason::Block
    } else if !runnable {
        SwitchReason::Offline
    } else if yielded {
        SwitchReason::Yield
    } else if slice_over {
        SwitchReason::Preempt
    } else {
        SwitchReason::Wake
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `TRC_XENCORE_VCPU_SWITCH`'s reason: what the outgoing vCPU's state
    /// says first (blocked, then not runnable), then what it asked for
    /// (yield), then the scheduler's own cause (slice over, else a wake).
    #[test]
    fn the_switch_reason_follows_the_outgoing_vcpus_state_first() {
        use SwitchReason::*;
        assert_eq!(switch_reason(true, false, true, true), Block, "blocked, even if it also yielded");
        assert_eq!(switch_reason(false, false, true, true), Offline, "paused or shut down");
        assert_eq!(switch_reason(false, true, true, true), Yield);
        assert_eq!(switch_reason(false, true, false, true), Preempt);
        assert_eq!(switch_reason(false, true, false, false), Wake);
    }
}
