//! The machine clock: system time (ns since boot) from the TSC, set up
//! once at boot by the calibration and read by every CPU.

/// The machine clock, set once at boot.
pub static CLOCK: spin::Once<crate::time::Clock> = spin::Once::new();

/// The TSC frequency in kHz (0 before calibration).
pub fn tsc_khz() -> u32 {
    TSC_KHZ.load(core::sync::atomic::Ordering::Relaxed)
}

/// Set once by the clock calibration.
pub static TSC_KHZ: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// Nanoseconds since boot.
pub fn system_time() -> u64 {
    CLOCK.get().map_or(0, |c| c.system_time(crate::arch::x86_64::clock::rdtsc()))
}
