//! Dom0's PIT channel 2 and speaker ports (0x42, 0x43, 0x61), which Xen's
//! `pv_pit_handler` answers (`hwdom_pit_access`: channel 2 and the gate
//! reach the hardware, the mode port reads 0); Linux calibrates its TSC
//! with them. Run as dom0.

#[cfg(target_os = "none")]
use super::helpers;
use crate::conformance::{CaseInfo, Kind};

cases! {
    pit_mode_port_reads_0_for_dom0 ("trap", "in $0x43", Accept) {
        // With the kernel's virtual IOPL 1, so the access is the guest's.
        let iopl = set_iopl(1);
        let r = probe(Probe::InbDx, 0x43);
        let v = probe_value();
        set_iopl(0);
        all(&[expect(iopl, 0), check(r.is_ok(), format_args!("trapped: {r:?}")), expect(v as i64, 0)])
    }
    pit_channel_2_counts_down_after_linuxs_calibration_setup ("trap", "out $0x42, $0x43, $0x61", Accept) {
        // As Linux's pit_calibrate_tsc: gate on, speaker off; counter 2 in
        // mode 0 with LSB/MSB access; count 0xffff; then two reads.
        let iopl = set_iopl(1);
        let Some(gate) = super::inb(0x61) else {
            set_iopl(0);
            return error(format_args!("in 0x61 trapped (set_iopl {iopl})"));
        };
        let ok = [
            super::outb(0x61, (gate & !0x02) | 0x01),
            super::outb(0x43, 0xb0),
            super::outb(0x42, 0xff),
            super::outb(0x42, 0xff),
        ];
        let first = super::count();
        for _ in 0..200_000 {
            core::hint::spin_loop();
        }
        let second = super::count();
        let now = super::inb(0x61);
        // Gate off again.
        super::outb(0x61, gate & !0x03);
        set_iopl(0);
        all(&[
            check(ok.iter().all(|&o| o), format_args!("an out trapped: {ok:?}")),
            check(matches!((first, second), (Some(a), Some(b)) if b < a), format_args!("count {first:?} then {second:?}")),
            check(now.is_some_and(|v| v & 0x03 == 0x01), format_args!("0x61 now {now:?}")),
        ])
    }
}

/// `in` of one byte at `port` (`None`: it trapped).
#[cfg(target_os = "none")]
fn inb(port: u64) -> Option<u8> {
    use helpers::{Probe, probe, probe_value};
    probe(Probe::InbDx, port).ok().map(|()| probe_value() as u8)
}

/// `out` of `val` at `port` (false: it trapped).
#[cfg(target_os = "none")]
fn outb(port: u64, val: u8) -> bool {
    crate::traps::probe2(helpers::Probe::OutbDx, port, u64::from(val)).is_ok()
}

/// Counter 2's count, LSB then MSB.
#[cfg(target_os = "none")]
fn count() -> Option<u16> {
    Some(u16::from_le_bytes([inb(0x42)?, inb(0x42)?]))
}
