//! The PV guest runtime shared by dom0 (`dom0-tools`) and every guest.
//!
//! It owns the guest side of Xen's boot contract: the "Xen" ELF notes that
//! tell a domain builder how to load the kernel, the entry point that takes
//! `start_info` in RSI, the hypercall page Xen fills, typed hypercall
//! wrappers and a console writer over `console_io`. The target-only parts
//! (`arch`) hold all of the crate's `unsafe`; the rest builds and tests on
//! the host.
#![cfg_attr(not(test), no_std)]

#[cfg(target_os = "none")]
pub mod arch;
#[cfg(target_os = "none")]
pub mod balloon;
pub mod balloon_credit;
#[cfg(target_os = "none")]
pub mod blkfront;
#[cfg(target_os = "none")]
pub mod console;
#[cfg(target_os = "none")]
pub mod events;
#[cfg(target_os = "none")]
pub mod grants;
#[cfg(target_os = "none")]
pub mod hypercall;
#[cfg(target_os = "none")]
pub mod mm;
#[cfg(target_os = "none")]
pub mod netfront;
#[cfg(target_os = "none")]
pub mod netstack;
#[cfg(target_os = "none")]
pub mod ring_pages;
#[cfg(target_os = "none")]
pub mod shared;
#[cfg(target_os = "none")]
pub mod splitdev;
#[cfg(target_os = "none")]
pub mod traps;
#[cfg(target_os = "none")]
pub mod user;

pub mod alloc;
pub mod conformance;
pub mod fuzz;
pub mod gtrace;
pub mod notes;
pub mod pvclock;
pub mod serial_frame;
pub mod xenbus;

pub use xen_public as public;
pub use xen_public::StartInfo;

/// Define a guest kernel's entry function: `entry!(main)` where
/// `fn main(si: &'static StartInfo) -> !`.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        /// Called by the runtime's `_start` with the domain's `start_info`.
        #[unsafe(no_mangle)]
        extern "C" fn pv_guest_main(si: &'static $crate::StartInfo) -> ! {
            $crate::shared::map_at_boot(si);
            $crate::console::init(si);
            // As Linux at boot: only the single-shot timer wakes this
            // kernel (the hypervisor's default periodic VIRQ_TIMER would
            // end every timed sleep early).
            $crate::hypercall::stop_periodic_timer(0);
            $main(si)
        }

        #[panic_handler]
        fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
            $crate::console::panic(info)
        }
    };
}
