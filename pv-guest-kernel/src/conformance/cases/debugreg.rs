//! Debug registers: `set_debugreg` and `get_debugreg` (hypercalls 8 and 9,
//! Xen's `pv/misc-hypercalls.c`), `mov` to and from %dr0-%dr7 from the
//! guest kernel (emulated as `x86emul_read_dr`/`x86emul_write_dr`), a
//! breakpoint the guest arms firing in the guest, and one on memory the
//! hypervisor writes for it being harmless.

#[cfg(target_os = "none")]
use super::helpers;
use crate::conformance::{CaseInfo, Kind};

cases! {
    debugreg_defaults_are_xens ("get_debugreg", "DR0 DR6 DR7", Accept) {
        all(&[expect(super::get(0), 0), expect(super::get(6), 0xffff_0ff0), expect(super::get(7), 0x400)])
    }
    debugreg_dr0_set_and_read_back ("set_debugreg", "DR0", Accept) {
        let set = super::set(0, 0x40_0000);
        let got = super::get(0);
        let high = super::set(3, 0xffff_8800_0000_0000);
        let got3 = super::get(3);
        super::set(0, 0);
        super::set(3, 0);
        all(&[expect(set, 0), expect(got, 0x40_0000), expect(high, 0), expect(got3, 0xffff_8800_0000_0000u64 as i64)])
    }
    debugreg_dr0_in_xen_space_eperm ("set_debugreg", "DR0", Attack) {
        all(&[
            expect(super::set(0, 0xffff_8000_0000_0000), -EPERM),
            expect(super::set(1, XEN_VA), -EPERM),
            expect(super::set(2, NONCANON), -EPERM),
            expect(super::set(3, 0x0000_8000_0000_0000), -EPERM),
            expect(super::get(1), 0),
        ])
    }
    debugreg_dr7_general_detect_eperm ("set_debugreg", "DR7", Attack) {
        all(&[expect(super::set(7, 0x2000), -EPERM), expect(super::set(7, 0x2001), -EPERM), expect(super::get(7), 0x400)])
    }
    debugreg_upper_half_of_dr6_dr7_einval ("set_debugreg", "DR6 DR7", Reject) {
        all(&[expect(super::set(7, 1 << 32), -EINVAL), expect(super::set(6, 1 << 40), -EINVAL), expect(super::get(6), 0xffff_0ff0)])
    }
    debugreg_dr6_reserved_bits_forced ("set_debugreg", "DR6", Accept) {
        let a = super::set(6, 0);
        let ga = super::get(6);
        let b = super::set(6, 0xffff_ffff);
        let gb = super::get(6);
        super::set(6, 0xffff_0ff0);
        all(&[expect(a, 0), expect(ga, 0xffff_0ff0), expect(b, 0), expect(gb, 0xffff_efff)])
    }
    debugreg_dr7_reserved_bits_forced ("set_debugreg", "DR7", Accept) {
        // Bits 11, 12, 14, 15 read as 0, bit 10 as 1; no enable set, so
        // nothing is armed.
        let a = super::set(7, 0xd900);
        let ga = super::get(7);
        super::set(7, 0);
        all(&[expect(a, 0), expect(ga, 0x500), expect(super::get(7), 0x400)])
    }
    debugreg_io_breakpoint_needs_cr4_de ("set_debugreg", "DR7", Reject) {
        // R/W0 = 10b (I/O) with L0 set: only with CR4.DE.
        let de = probe(Probe::ReadCr4, 0).map(|()| probe_value() & (1 << 3) != 0);
        let Ok(de) = de else { return error(format_args!("mov %cr4 failed")) };
        let r = super::set(7, 0x2_0001);
        let g = super::get(7);
        super::set(7, 0);
        if de { all(&[expect(r, 0), expect(g, 0x2_0401)]) } else { all(&[expect(r, -EPERM), expect(g, 0x400)]) }
    }
    debugreg_dr4_dr5_follow_cr4_de ("get_debugreg", "DR4 DR5", Accept) {
        let Ok(de) = probe(Probe::ReadCr4, 0).map(|()| probe_value() & (1 << 3) != 0) else {
            return error(format_args!("mov %cr4 failed"));
        };
        if de {
            all(&[expect(super::get(4), -ENODEV), expect(super::get(5), -ENODEV), expect(super::set(4, 0), -ENODEV)])
        } else {
            all(&[expect(super::get(4), super::get(6)), expect(super::get(5), super::get(7))])
        }
    }
    debugreg_no_such_register_enodev ("set_debugreg", "reg 8", Reject) {
        all(&[expect(super::set(8, 0), -ENODEV), expect(super::get(8), -ENODEV), expect(super::get(u64::from(u32::MAX)), -ENODEV)])
    }
    debugreg_get_of_dr8_to_dr15_enodev ("get_debugreg", "reg 8-15", Reject) {
        let r: [i64; 8] = core::array::from_fn(|i| super::get(8 + i as u64));
        check(r.iter().all(|&x| x == -ENODEV), format_args!("{r:?}"))
    }
    debugreg_register_number_is_an_int ("get_debugreg", "reg 2^32", Accept) {
        // do_get_debugreg(int reg): 2^32 + 6 is DR6.
        expect(super::get((1 << 32) | 6), 0xffff_0ff0)
    }
    debugreg_mov_to_and_from_dr_emulated ("trap", "mov %drN", Accept) {
        let v: u64 = 0x12_3000;
        let back: u64;
        let dr6: u64;
        // SAFETY: mov to/from debug registers from the guest kernel traps
        // (#GP) and is emulated; DR1 gets a guest address and DR7 stays
        // clear, so nothing is armed.
        unsafe {
            core::arch::asm!("mov dr1, {v}", "mov {b}, dr1", "mov {s}, dr6", v = in(reg) v, b = out(reg) back, s = out(reg) dr6);
        }
        let hc = super::get(1);
        super::set(1, 0);
        all(&[check(back == v, format_args!("dr1 read {back:#x}")), expect(hc, v as i64), check(dr6 == 0xffff_0ff0, format_args!("dr6 {dr6:#x}"))])
    }
    debugreg_mov_general_detect_to_dr7_is_gp ("trap", "mov %rdi, %dr7", Trap) {
        let r = probe(Probe::WriteDr7, 0x2000);
        all(&[expect_trap(r, 13, Some(0), 0), expect(super::get(7), 0x400)])
    }
    debugreg_mov_from_dr4_aliases_dr6_unless_cr4_de ("trap", "mov %dr4, %rax", Trap) {
        let Ok(de) = probe(Probe::ReadCr4, 0).map(|()| probe_value() & (1 << 3) != 0) else {
            return error(format_args!("mov %cr4 failed"));
        };
        let r = probe(Probe::ReadDr4, 0);
        if de { expect_trap(r, 6, None, 0) } else { all(&[check(r.is_ok(), format_args!("trapped: {r:?}")), check(probe_value() == 0xffff_0ff0, format_args!("dr4 {:#x}", probe_value()))]) }
    }
    debugreg_write_breakpoint_fires_in_the_guest ("set_debugreg", "DR0 DR7", Accept) {
        let Some((va, _)) = page() else { return error(format_args!("no spare page")) };
        // DR0 = va, 8 bytes, break on write (R/W0 = 01b, LEN0 = 11b), L0.
        let a = super::set(0, va);
        let b = super::set(7, 0xd_0001);
        let r = probe(Probe::Write, va);
        let dr6 = super::get(6);
        let off = super::set(7, 0);
        super::set(6, 0xffff_0ff0);
        super::set(0, 0);
        all(&[expect(a, 0), expect(b, 0), expect_trap(r, 1, None, 7), check(dr6 & 1 == 1, format_args!("dr6 {dr6:#x} without B0")), expect(off, 0)])
    }
    debugreg_breakpoint_survives_being_switched_out_and_in ("set_debugreg", "DR0 DR7", Accept) {
        // Armed, then blocked for 2 ms (SCHEDOP_poll on no port with a
        // timeout): the vCPU leaves the CPU (its DR7 cleared) and comes back
        // (its registers loaded again), and the breakpoint still fires.
        let Some((va, _)) = page() else { return error(format_args!("no spare page")) };
        let a = super::set(0, va);
        let b = super::set(7, 0xd_0001);
        if crate::shared::poll_sleep_ns(2_000_000).is_none() {
            return error(format_args!("no clock"));
        }
        let r = probe(Probe::Write, va);
        super::set(7, 0);
        super::set(6, 0xffff_0ff0);
        super::set(0, 0);
        let after = probe(Probe::Write, va);
        all(&[expect(a, 0), expect(b, 0), expect_trap(r, 1, None, 7), check(after.is_ok(), format_args!("fired after DR7 was cleared: {after:?}"))])
    }
    debugreg_breakpoint_on_memory_the_hypervisor_writes_is_harmless ("set_debugreg", "DR0 DR7", Attack) {
        // The hypervisor writes XENVER_extraversion into a buffer the guest
        // watches: the #DB comes in the hypervisor, which must carry on
        // (Xen's do_debug: "Hit #DB in Xen context"), and the guest gets
        // neither a #DB nor a change of its DR6.
        let mut buf = [0u8; 16];
        let va = buf.as_mut_ptr() as u64;
        let a = super::set(0, va & !7);
        let b = super::set(7, 0xd_0001);
        let r = call(nr::XEN_VERSION, 1, va, 0, 0, 0);
        let dr6 = super::get(6);
        super::set(7, 0);
        super::set(0, 0);
        all(&[expect(a, 0), expect(b, 0), expect(r, 0), check(buf[0] != 0, format_args!("extraversion not written")), expect(dr6, 0xffff_0ff0)])
    }
    debugreg_io_breakpoint_fires_after_an_emulated_in ("set_debugreg", "DR0 DR7 I/O", Accept) {
        // With CR4.DE (set through the emulated `mov %cr4`), an I/O
        // breakpoint on port 0x80 raises #DB after `in $0x80, %al`
        // (Xen's check_guest_io_breakpoint and bpmatch), with B0 in DR6.
        let cr4: u64;
        // SAFETY: reading CR4 from the guest kernel is emulated.
        unsafe { core::arch::asm!("mov {}, cr4", out(reg) cr4) };
        // SAFETY: writing CR4 is emulated; only the guest-controllable DE
        // bit changes.
        unsafe { core::arch::asm!("mov cr4, {}", in(reg) cr4 | (1 << 3)) };
        let iopl = set_iopl(1);
        let a = super::set(0, 0x80);
        let b = super::set(7, 0x2_0001);
        let r = probe(Probe::In80, 0);
        let dr6 = super::get(6);
        let miss = probe(Probe::InbDx, 0x81);
        super::set(7, 0);
        super::set(6, 0xffff_0ff0);
        super::set(0, 0);
        set_iopl(0);
        // SAFETY: as above, DE back as it was.
        unsafe { core::arch::asm!("mov cr4, {}", in(reg) cr4) };
        all(&[
            expect(iopl, 0),
            expect(a, 0),
            expect(b, 0),
            expect_trap(r, 1, None, 2),
            check(dr6 & 1 == 1, format_args!("dr6 {dr6:#x} without B0")),
            check(miss.is_ok(), format_args!("port 0x81 trapped: {miss:?}")),
        ])
    }
    debugreg_mov_ss_breakpoint_before_syscall_is_harmless ("set_debugreg", "DR0 DR7", Attack) {
        // CVE-2018-8897: a read breakpoint on the word `mov %ss` loads is
        // delayed past the next instruction, a `syscall`: on hardware the
        // #DB comes at the hypervisor's SYSCALL entry, before it switched
        // stacks. It must be ignored there and the hypercall go on (QEMU's
        // TCG raises it in the guest, before the `syscall`: a #DB the
        // guest gets). Either way the hypervisor carries on.
        let ss: u64;
        // SAFETY: reads the current SS selector.
        unsafe { core::arch::asm!("mov {0:x}, ss", out(reg) ss) };
        let mut word = [0u16; 4];
        word[0] = ss as u16;
        let va = word.as_mut_ptr() as u64;
        let a = super::set(0, va);
        // L0, R/W0 = 11b (read or write), LEN0 = 01b (2 bytes).
        let b = super::set(7, 0x7_0001);
        let r = probe(Probe::MovSsSyscall, va);
        let value = probe_value();
        super::set(7, 0);
        super::set(6, 0xffff_0ff0);
        super::set(0, 0);
        let version = crate::hypercall::xen_version();
        let fine = match r {
            Ok(()) => value as i64 == version,
            Err(c) => c.vector == 1,
        };
        all(&[expect(a, 0), expect(b, 0), check(fine, format_args!("probe {r:?}, value {value:#x}"))])
    }
}

/// `set_debugreg(reg, value)`.
#[cfg(target_os = "none")]
fn set(reg: u64, value: u64) -> i64 {
    crate::conformance::ctx::call(xen_public::hypercall::SET_DEBUGREG, reg, value, 0, 0, 0)
}

/// `get_debugreg(reg)`.
#[cfg(target_os = "none")]
fn get(reg: u64) -> i64 {
    crate::conformance::ctx::call(xen_public::hypercall::GET_DEBUGREG, reg, 0, 0, 0, 0)
}
