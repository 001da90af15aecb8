//! Reading Xen's PV clock: `vcpu_time_info` and the shared_info wall clock.
//! Pure arithmetic over snapshots; `shared` takes the snapshots.
#![forbid(unsafe_code)]

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

impl TimeInfo {
    /// Parse the 32-byte record.
    pub fn parse(b: &[u8; 32]) -> Self {
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let u64_at = |o: usize| u64::from(u32_at(o)) | (u64::from(u32_at(o + 4)) << 32);
        TimeInfo { version: u32_at(0), tsc_timestamp: u64_at(8), system_time: u64_at(16), mul: u32_at(24), shift: b[28] as i8 }
    }

    /// System time in ns at TSC value `tsc`.
    pub fn system_time_at(&self, tsc: u64) -> u64 {
        let delta = tsc.wrapping_sub(self.tsc_timestamp);
        let d = if self.shift >= 0 { delta << self.shift } else { delta >> (-self.shift) };
        self.system_time + ((u128::from(d) * u128::from(self.mul)) >> 32) as u64
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
    fn reads_the_abi_layout() {
        // ABI: vcpu_time_info {u32 version; u32 pad; u64 tsc_timestamp; u64 system_time;
        // u32 tsc_to_system_mul; i8 tsc_shift; u8 flags; u8 pad[2]}.
        let mut b = [0u8; 32];
        b[0] = 2;
        b[8..16].copy_from_slice(&1000u64.to_le_bytes());
        b[16..24].copy_from_slice(&5_000_000u64.to_le_bytes());
        b[24..28].copy_from_slice(&0x8000_0000u32.to_le_bytes());
        b[28] = 1;
        let t = TimeInfo::parse(&b);
        assert_eq!(t.version, 2);
        // shift 1, mul 0.5: 1 ns per TSC tick.
        assert_eq!(t.system_time_at(1000 + 42), 5_000_042);
        b[28] = (-1i8) as u8;
        assert_eq!(TimeInfo::parse(&b).system_time_at(1000 + 40), 5_000_010);
    }

    #[test]
    fn years() {
        assert_eq!(year_of(0), 1970);
        assert_eq!(year_of(1_795_416_900), 2026);
        assert_eq!(year_of(951_868_800), 2000);
    }
}
