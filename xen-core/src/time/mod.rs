//! Time: the TSC-to-nanoseconds scale Xen publishes to guests, and the
//! `vcpu_time_info` record kept in shared_info.
//!
//! Invariant: a guest reading `vcpu_time_info` sees an even `version`
//! before and after a consistent snapshot; the hypervisor makes it odd
//! while it writes, as Xen does.
#![forbid(unsafe_code)]

const NS_PER_SEC: u64 = 1_000_000_000;

/// Xen's `time_scale`: `ns = ((tsc_delta << shift) * mul_frac) >> 32`,
/// with a negative shift meaning a right shift.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeScale {
    /// `tsc_shift`.
    pub shift: i8,
    /// `tsc_to_system_mul`.
    pub mul_frac: u32,
}

impl TimeScale {
    /// The scale for a counter running at `hz` (Xen's `set_time_scale`).
    pub fn from_hz(hz: u64) -> Option<TimeScale> {
        if hz == 0 {
            return None;
        }
        let mut tps = hz;
        let mut shift: i8 = 0;
        while tps > 2 * NS_PER_SEC {
            tps >>= 1;
            shift -= 1;
        }
        while tps <= NS_PER_SEC {
            tps <<= 1;
            shift += 1;
        }
        let mul_frac = ((NS_PER_SEC << 32) / tps) as u32;
        Some(TimeScale { shift, mul_frac })
    }

    /// Nanoseconds for a TSC delta, as a guest computes them.
    pub fn scale(&self, delta: u64) -> u64 {
        let d = if self.shift >= 0 { delta << self.shift } else { delta >> (-self.shift) };
        ((u128::from(d) * u128::from(self.mul_frac)) >> 32) as u64
    }
}

/// Offsets in `vcpu_time_info` (32 bytes, at offset 32 of `vcpu_info`).
pub mod field {
    use core::mem::offset_of;
    use xen_public::VcpuTimeInfo as T;
    /// `u32 version`.
    pub const VERSION: usize = offset_of!(T, version);
    /// `u64 tsc_timestamp`.
    pub const TSC_TIMESTAMP: usize = offset_of!(T, tsc_timestamp);
    /// `u64 system_time` (ns since boot).
    pub const SYSTEM_TIME: usize = offset_of!(T, system_time);
    /// `u32 tsc_to_system_mul`.
    pub const MUL: usize = offset_of!(T, tsc_to_system_mul);
    /// `i8 tsc_shift`.
    pub const SHIFT: usize = offset_of!(T, tsc_shift);
    /// `u8 flags`.
    pub const FLAGS: usize = offset_of!(T, flags);
}

/// `XEN_PVCLOCK_TSC_STABLE_BIT`.
pub const PVCLOCK_TSC_STABLE: u8 = 1;

/// One consistent sample of time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeInfo {
    /// TSC at the sample.
    pub tsc_timestamp: u64,
    /// System time at the sample, in ns.
    pub system_time: u64,
    /// The scale.
    pub scale: TimeScale,
}

/// Memory a time record is published into: little-endian stores at byte
/// offsets, each a separate store, made in program order (shared_info is
/// read by the guest while it is written).
pub trait RecordMem {
    /// The u32 at `off`.
    fn load_u32(&self, off: usize) -> u32;
    /// Store a u32 at `off`.
    fn store_u32(&mut self, off: usize, v: u32);
    /// Store a u64 at `off`.
    fn store_u64(&mut self, off: usize, v: u64);
    /// Store a byte at `off`.
    fn store_u8(&mut self, off: usize, v: u8);
}

impl RecordMem for [u8] {
    fn load_u32(&self, off: usize) -> u32 {
        self.get(off..off + 4).and_then(|b| b.try_into().ok()).map_or(0, u32::from_le_bytes)
    }
    fn store_u32(&mut self, off: usize, v: u32) {
        if let Some(b) = self.get_mut(off..off + 4) {
            b.copy_from_slice(&v.to_le_bytes());
        }
    }
    fn store_u64(&mut self, off: usize, v: u64) {
        if let Some(b) = self.get_mut(off..off + 8) {
            b.copy_from_slice(&v.to_le_bytes());
        }
    }
    fn store_u8(&mut self, off: usize, v: u8) {
        if let Some(b) = self.get_mut(off) {
            *b = v;
        }
    }
}

/// Write `t` into the `vcpu_time_info` record at byte `at` of `m`: odd
/// version, fields, even version (each step a separate store, in order).
pub fn publish<M: RecordMem + ?Sized>(m: &mut M, at: usize, t: &TimeInfo) {
    let odd = m.load_u32(at).wrapping_add(1) | 1;
    m.store_u32(at, odd);
    m.store_u64(at + field::TSC_TIMESTAMP, t.tsc_timestamp);
    m.store_u64(at + field::SYSTEM_TIME, t.system_time);
    m.store_u32(at + field::MUL, t.scale.mul_frac);
    m.store_u8(at + field::SHIFT, t.scale.shift as u8);
    m.store_u8(at + field::FLAGS, PVCLOCK_TSC_STABLE);
    m.store_u32(at, odd.wrapping_add(1));
}

/// What a guest computes from a record and a TSC reading.
pub fn read(rec: &[u8; 32], tsc: u64) -> Option<u64> {
    let v = u32::from_le_bytes(rec[field::VERSION..][..4].try_into().ok()?);
    if v & 1 != 0 {
        return None;
    }
    let ts = u64::from_le_bytes(rec[field::TSC_TIMESTAMP..][..8].try_into().ok()?);
    let st = u64::from_le_bytes(rec[field::SYSTEM_TIME..][..8].try_into().ok()?);
    let mul = u32::from_le_bytes(rec[field::MUL..][..4].try_into().ok()?);
    let scale = TimeScale { shift: rec[field::SHIFT] as i8, mul_frac: mul };
    Some(st + scale.scale(tsc.wrapping_sub(ts)))
}

/// Seconds since 1970-01-01 for a UTC date (civil calendar, years >= 1970).
pub fn unix_seconds(year: u64, month: u64, day: u64, h: u64, m: u64, s: u64) -> u64 {
    // Days from civil (Howard Hinnant's algorithm), shifted so March is
    // the first month of the year.
    let (y, mo) = if month <= 2 { (year - 1, month + 9) } else { (year, month - 3) };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + day.saturating_sub(1);
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + h * 3_600 + m * 60 + s
}

/// The machine's clock, fixed at boot: the TSC scale, the TSC at system
/// time 0, and the wall clock (seconds since 1970) at system time 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    /// TSC to nanoseconds.
    pub scale: TimeScale,
    /// TSC at system time 0.
    pub boot_tsc: u64,
    /// Unix seconds at system time 0.
    pub boot_wall: u64,
}

impl Clock {
    /// System time (ns since boot) at TSC value `tsc`.
    pub fn system_time(&self, tsc: u64) -> u64 {
        self.scale.scale(tsc.saturating_sub(self.boot_tsc))
    }

    /// A sample for `vcpu_time_info` taken at `tsc`.
    pub fn sample(&self, tsc: u64) -> TimeInfo {
        TimeInfo { tsc_timestamp: tsc, system_time: self.system_time(tsc), scale: self.scale }
    }
}

/// Write the wall clock into a shared_info page image: version odd, the
/// seconds and nanoseconds at system time 0, version even.
pub fn publish_wallclock<M: RecordMem + ?Sized>(shinfo: &mut M, boot_wall: u64) {
    let odd = shinfo.load_u32(wallclock::VERSION).wrapping_add(1) | 1;
    shinfo.store_u32(wallclock::VERSION, odd);
    shinfo.store_u32(wallclock::SEC, boot_wall as u32);
    shinfo.store_u32(wallclock::NSEC, 0);
    shinfo.store_u32(wallclock::SEC_HI, (boot_wall >> 32) as u32);
    shinfo.store_u32(wallclock::VERSION, odd.wrapping_add(1));
}

/// Offsets of the wall clock in shared_info.
pub mod wallclock {
    use core::mem::offset_of;
    use xen_public::SharedInfo as S;
    /// `u32 wc_version`.
    pub const VERSION: usize = offset_of!(S, wc_version);
    /// `u32 wc_sec`.
    pub const SEC: usize = offset_of!(S, wc_sec);
    /// `u32 wc_nsec`.
    pub const NSEC: usize = offset_of!(S, wc_nsec);
    /// `u32 wc_sec_hi`.
    pub const SEC_HI: usize = offset_of!(S, wc_sec_hi);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_to_unix_seconds() {
        assert_eq!(unix_seconds(1970, 1, 1, 0, 0, 0), 0);
        assert_eq!(unix_seconds(2000, 3, 1, 0, 0, 0), 951_868_800);
        assert_eq!(unix_seconds(2026, 11, 23, 6, 55, 0), 1_795_416_900);
    }

    #[test]
    fn scale_matches_frequency_within_a_ppm() {
        for hz in [1_000_000_000u64, 2_500_000_000, 3_600_000_000, 1_193_182, 2_100_000_001] {
            let s = TimeScale::from_hz(hz).unwrap();
            let one_sec = s.scale(hz);
            let err = (one_sec as i64 - NS_PER_SEC as i64).abs();
            assert!(err < 1_000, "{hz} Hz: one second scaled to {one_sec} ns");
        }
        assert_eq!(TimeScale::from_hz(0), None);
    }

    #[test]
    fn shift_is_negative_for_fast_counters() {
        // ABI: tsc_shift is signed; a negative value shifts right.
        let s = TimeScale::from_hz(3_000_000_000).unwrap();
        assert_eq!(s.shift, -1);
        let s = TimeScale::from_hz(100_000_000).unwrap();
        assert!(s.shift > 0);
    }

    #[test]
    fn publish_bumps_version_to_even_and_guests_read_it() {
        // ABI: vcpu_time_info.version is odd while updating and even when stable.
        let mut rec = [0u8; 32];
        let t = TimeInfo { tsc_timestamp: 1_000, system_time: 5_000_000, scale: TimeScale::from_hz(1_000_000_000).unwrap() };
        publish(&mut rec[..], 0, &t);
        assert_eq!(u32::from_le_bytes(rec[0..4].try_into().unwrap()), 2);
        publish(&mut rec[..], 0, &t);
        assert_eq!(u32::from_le_bytes(rec[0..4].try_into().unwrap()), 4);
        let now = read(&rec, 1_000 + 1_000_000).unwrap();
        assert!((now as i64 - 6_000_000).abs() <= 1);
        rec[0] |= 1;
        assert_eq!(read(&rec, 0), None, "an odd version is an update in progress");
    }
}
