//! Reading Xen's PV clock: `vcpu_time_info` and the shared_info wall clock.
//! Pure arithmetic over snapshots of `xen_public::VcpuTimeInfo`; `shared`
//! takes the snapshots.
#![forbid(unsafe_code)]

use xen_public::VcpuTimeInfo;

/// A snapshot of `vcpu_time_info`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeInfo {
    /// `version` (odd while the hypervisor updates it).
    pub version: u32,
    /// `tsc_timestamp`.
    pub tsc_timestamp: u64,
    /// `system_time` in ns.
    pub system_time: u64,
    /// `tsc_to_system_mul`.
    pub mul: u32,
    /// `tsc_shift`.
    pub shift: i8,
}

impl From<&VcpuTimeInfo> for TimeInfo {
    fn from(t: &VcpuTimeInfo) -> Self {
        TimeInfo { version: t.version, tsc_timestamp: t.tsc_timestamp, system_time: t.system_time, mul: t.tsc_to_system_mul, shift: t.tsc_shift }
    }
}

impl TimeInfo {
    /// System time in ns at TSC value `tsc`.
    pub fn system_time_at(&self, tsc: u64) -> u64 {
        let delta = tsc.wrapping_sub(self.tsc_timestamp);
        let d = if self.shift >= 0 { delta << self.shift } else { delta >> (-self.shift) };
        self.system_time + ((u128::from(d) * u128::from(self.mul)) >> 32) as u64
    }

    /// The TSC's rate in kHz that `mul` and `shift` encode (ns per tick is
    /// `mul * 2^shift / 2^32`); `None` for a zero `mul` or a scale that
    /// gives no rate.
    pub fn tsc_khz(&self) -> Option<u64> {
        let num: u128 = 1_000_000u128 << 32;
        let den = u128::from(self.mul);
        // `shift` is an i8 from the hypervisor: shifts past the width give
        // no rate rather than a panic.
        let khz = if self.shift >= 0 {
            num.checked_div(den.checked_shl(u32::from(self.shift.unsigned_abs()))?)?
        } else {
            num.checked_shl(u32::from(self.shift.unsigned_abs()))?.checked_div(den)?
        };
        u64::try_from(khz).ok().filter(|k| *k > 0)
    }
}

/// Whole years since 1970 → calendar year of a Unix time (for banners).
pub fn year_of(unix_seconds: u64) -> u64 {
    let days = unix_seconds / 86_400;
    // Civil-from-days (Hinnant), year part only.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let year = yoe + era * 400;
    if mp >= 10 { year + 1 } else { year }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_tsc_deltas_as_vcpu_time_info_says() {
        let mut v = VcpuTimeInfo {
            version: 2,
            tsc_timestamp: 1000,
            system_time: 5_000_000,
            tsc_to_system_mul: 0x8000_0000,
            tsc_shift: 1,
            ..Default::default()
        };
        let t = TimeInfo::from(&v);
        assert_eq!(t.version, 2);
        // shift 1, mul 0.5: 1 ns per TSC tick.
        assert_eq!(t.system_time_at(1000 + 42), 5_000_042);
        v.tsc_shift = -1;
        assert_eq!(TimeInfo::from(&v).system_time_at(1000 + 40), 5_000_010);
    }

    #[test]
    fn tsc_khz_inverts_the_scale_xen_publishes() {
        // A 2 GHz TSC: 0.5 ns a tick = mul 2^31, shift 0 (Xen's
        // set_time_scale picks a shift that keeps mul in [2^31, 2^32)).
        let t = TimeInfo { mul: 1 << 31, shift: 0, ..TimeInfo::default() };
        assert_eq!(t.tsc_khz(), Some(2_000_000));
        // 3 GHz: ns per tick 1/3 = mul/2^32 * 2^-1 → mul = 2^33/3.
        let t = TimeInfo { mul: ((1u64 << 33) / 3) as u32, shift: -1, ..TimeInfo::default() };
        assert_eq!(t.tsc_khz().map(|k| k / 1000), Some(3000));
        assert_eq!(TimeInfo::default().tsc_khz(), None);
        assert_eq!(TimeInfo { mul: 1, shift: 127, ..TimeInfo::default() }.tsc_khz(), None, "a rate below 1 kHz");
        assert_eq!(TimeInfo { mul: 1, shift: -128, ..TimeInfo::default() }.tsc_khz(), None);
    }

    #[test]
    fn years() {
        assert_eq!(year_of(0), 1970);
        assert_eq!(year_of(1_795_416_900), 2026);
        assert_eq!(year_of(951_868_800), 2000);
    }
}
