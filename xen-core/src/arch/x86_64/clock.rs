//! Hardware clocks: the TSC, calibrated against the PIT, the CMOS RTC for
//! the wall clock, and the machine clock built on them (system time in ns
//! since boot), set once at boot and read by every CPU.

use super::cpu::{inb, outb};

/// The PIT's input clock.
const PIT_HZ: u64 = 1_193_182;
/// Calibration window: 10 ms of PIT ticks.
const PIT_TICKS: u64 = 11_932;

/// Read the time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: rdtsc only reads the counter.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Measure the TSC frequency with PIT channel 2 (one-shot, 10 ms). `None`
/// if the PIT never counts down (bounded wait, so a missing PIT cannot
/// hang boot).
pub fn calibrate_tsc_hz() -> Option<u64> {
    // SAFETY: ports 0x42, 0x43 and 0x61 are the PIT's channel 2 and the
    // speaker gate, which the hypervisor owns; the speaker stays off.
    unsafe {
        outb(0x61, (inb(0x61) & !0x02) | 0x01);
        outb(0x43, 0xb0);
        outb(0x42, (PIT_TICKS & 0xff) as u8);
        outb(0x42, (PIT_TICKS >> 8) as u8);
    }
    let t0 = rdtsc();
    for _ in 0..200_000_000u64 {
        // SAFETY: reading port 0x61 only samples the PIT's OUT2 line.
        if unsafe { inb(0x61) } & 0x20 != 0 {
            let t1 = rdtsc();
            return Some((t1 - t0) * PIT_HZ / PIT_TICKS);
        }
    }
    None
}

fn cmos(reg: u8) -> u8 {
    // SAFETY: ports 0x70/0x71 are the CMOS index/data pair; NMI stays
    // enabled (bit 7 clear) and only time registers are read.
    unsafe {
        outb(0x70, reg);
        inb(0x71)
    }
}

fn bcd(v: u8, binary: bool) -> u64 {
    if binary { u64::from(v) } else { u64::from((v & 0x0f) + (v >> 4) * 10) }
}

/// Seconds since 1970 from the RTC (UTC assumed, as QEMU provides).
pub fn rtc_unix_seconds() -> u64 {
    // Wait for the end of an update cycle (bounded).
    for _ in 0..1_000_000 {
        if cmos(0x0a) & 0x80 == 0 {
            break;
        }
    }
    let binary = cmos(0x0b) & 0x04 != 0;
    let (s, m, h) = (bcd(cmos(0x00), binary), bcd(cmos(0x02), binary), bcd(cmos(0x04) & 0x7f, binary));
    let (d, mo, y) = (bcd(cmos(0x07), binary), bcd(cmos(0x08), binary), bcd(cmos(0x09), binary));
    crate::time::unix_seconds(2000 + y, mo, d, h, m, s)
}

/// The machine clock, set once at boot.
pub static CLOCK: spin::Once<crate::time::Clock> = spin::Once::new();

/// Set once by the clock calibration.
pub static TSC_KHZ: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// The TSC frequency in kHz (0 before calibration).
pub fn tsc_khz() -> u32 {
    TSC_KHZ.load(core::sync::atomic::Ordering::Relaxed)
}

/// Nanoseconds since boot (0 before the clock is set).
pub fn system_time() -> u64 {
    CLOCK.get().map_or(0, |c| c.system_time(rdtsc()))
}
