//! Scheduler operations: mirrors Xen 4.17's `public/sched.h`.
//!
//! Holds the `SCHEDOP_*` sub-op numbers of `sched_op(cmd, arg)`, the
//! `SHUTDOWN_*` reasons and the argument structures. The numbers that
//! already live at the crate root (`SCHEDOP_YIELD` .. `SCHEDOP_POLL`,
//! `SHUTDOWN_POWEROFF` .. `SHUTDOWN_WATCHDOG`) are re-exported from there,
//! not redefined. Invariant: every structure has exactly the x86_64 size and
//! field offsets Xen 4.17 gives it, checked at compile time.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub use crate::xen::{
    SCHEDOP_BLOCK, SCHEDOP_POLL, SCHEDOP_SHUTDOWN, SCHEDOP_YIELD, SHUTDOWN_CRASH, SHUTDOWN_POWEROFF, SHUTDOWN_REBOOT, SHUTDOWN_SUSPEND,
    SHUTDOWN_WATCHDOG,
};

/// `SCHEDOP_remote_shutdown`: [`SchedRemoteShutdown`] (privileged).
pub const SCHEDOP_REMOTE_SHUTDOWN: u64 = 4;
/// `SCHEDOP_shutdown_code`: [`SchedShutdown`]; records the reason without
/// shutting down.
pub const SCHEDOP_SHUTDOWN_CODE: u64 = 5;
/// `SCHEDOP_watchdog`: [`SchedWatchdog`].
pub const SCHEDOP_WATCHDOG: u64 = 6;
/// `SCHEDOP_pin_override`: [`SchedPinOverride`] (hardware domain only).
pub const SCHEDOP_PIN_OVERRIDE: u64 = 7;

/// `SHUTDOWN_soft_reset`: reset the domain's state, keeping its memory.
pub const SHUTDOWN_SOFT_RESET: u32 = 5;
/// `SHUTDOWN_MAX`: the largest valid reason.
pub const SHUTDOWN_MAX: u32 = 5;

/// `struct sched_shutdown`: argument of `SCHEDOP_shutdown` and
/// `SCHEDOP_shutdown_code`.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedShutdown {
    /// A `SHUTDOWN_*` reason.
    pub reason: u32,
}
const _: () = assert!(core::mem::size_of::<SchedShutdown>() == 4);

/// `struct sched_poll`: block until one of some ports is pending or a
/// timeout passes.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedPoll {
    /// Guest handle of an `evtchn_port_t[nr_ports]` array.
    pub ports: u64,
    /// Number of ports.
    pub nr_ports: u32,
    /// Padding; zero.
    pub _pad0: u32,
    /// Absolute system time (ns) to give up at; 0 waits for ever.
    pub timeout: u64,
}
const _: () = assert!(core::mem::size_of::<SchedPoll>() == 24);
const _: () = assert!(core::mem::offset_of!(SchedPoll, nr_ports) == 8);
const _: () = assert!(core::mem::offset_of!(SchedPoll, timeout) == 16);

/// `struct sched_remote_shutdown`: shut another domain down.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedRemoteShutdown {
    /// The domain.
    pub domain_id: u16,
    /// Padding; zero.
    pub _pad0: u16,
    /// A `SHUTDOWN_*` reason.
    pub reason: u32,
}
const _: () = assert!(core::mem::size_of::<SchedRemoteShutdown>() == 8);
const _: () = assert!(core::mem::offset_of!(SchedRemoteShutdown, reason) == 4);

/// `struct sched_watchdog`: create, pet or destroy a domain watchdog.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedWatchdog {
    /// 0 creates a watchdog (its id is returned); otherwise the watchdog.
    pub id: u32,
    /// Seconds until it fires; 0 with a nonzero id destroys it.
    pub timeout: u32,
}
const _: () = assert!(core::mem::size_of::<SchedWatchdog>() == 8);
const _: () = assert!(core::mem::offset_of!(SchedWatchdog, timeout) == 4);

/// `struct sched_pin_override`: temporarily pin the calling vCPU.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedPinOverride {
    /// Physical CPU to pin to; negative undoes the pin.
    pub pcpu: i32,
}
const _: () = assert!(core::mem::size_of::<SchedPinOverride>() == 4);

#[cfg(test)]
mod tests {
    use super::*;

    /// ABI rule: `sched_poll` is {handle ports @0, u32 nr_ports @8, u64 timeout @16}.
    #[test]
    fn poll_timeout_is_8_aligned_at_byte_16() {
        let mut bytes = [0u8; 24];
        bytes[0..8].copy_from_slice(&0x7000u64.to_le_bytes());
        bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
        bytes[16..24].copy_from_slice(&1_000_000u64.to_le_bytes());
        let p = SchedPoll::read_from_bytes(&bytes).unwrap();
        assert_eq!(p, SchedPoll { ports: 0x7000, nr_ports: 2, _pad0: 0, timeout: 1_000_000 });
        assert_eq!(p.as_bytes(), &bytes);
    }

    /// ABI rule: the shutdown reasons are poweroff 0, reboot 1, suspend 2,
    /// crash 3, watchdog 4, soft_reset 5.
    #[test]
    fn shutdown_reasons_are_xens() {
        assert_eq!(
            [SHUTDOWN_POWEROFF, SHUTDOWN_REBOOT, SHUTDOWN_SUSPEND, SHUTDOWN_CRASH, SHUTDOWN_WATCHDOG, SHUTDOWN_SOFT_RESET],
            [0, 1, 2, 3, 4, 5]
        );
        assert_eq!(SchedRemoteShutdown { domain_id: 3, _pad0: 0, reason: SHUTDOWN_CRASH }.as_bytes(), &[3, 0, 0, 0, 3, 0, 0, 0]);
    }
}
