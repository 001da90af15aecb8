//! Privileged instructions from a PV kernel, which runs in ring 3: each
//! raises #GP(0) and the hypervisor emulates it as Xen 4.17's
//! `pv/emul-priv-op.c` and `msr.c` do (`rdmsr`/`wrmsr` with the PV MSR
//! policy, `mov` from CR0/CR3/CR4, `clts`, `wbinvd`), and the Xen CPUID
//! interface: the forced-emulation prefix `ud2; .ascii "xen"; cpuid`
//! (`pv/emul-inv-op.c`) with the hypervisor leaves 0x40000000+ and the PV
//! CPUID policy. Every case puts back what it changed.

#[cfg(target_os = "none")]
mod helpers {
    pub use super::super::helpers::*;
    pub use crate::conformance::Outcome;
    pub use crate::conformance::ctx::{all, check};
    pub use crate::traps::{probe_regs, probe2};

    pub const MSR_EFER: u64 = 0xc000_0080;
    pub const MSR_FS_BASE: u64 = 0xc000_0100;
    pub const MSR_GS_BASE: u64 = 0xc000_0101;
    pub const MSR_SHADOW_GS_BASE: u64 = 0xc000_0102;
    pub const MSR_STAR: u64 = 0xc000_0081;
    pub const MSR_APIC_BASE: u64 = 0x1b;
    pub const MSR_PAT: u64 = 0x277;
    pub const MSR_MISC_ENABLE: u64 = 0x1a0;
    /// Xen's `XEN_MSR_PAT`.
    pub const XEN_MSR_PAT: u64 = 0x0501_0007_0406;
    /// Where the `rdmsr` and `wrmsr` probes' instructions are.
    pub const RDMSR_AT: u64 = 2;
    pub const WRMSR_AT: u64 = 16;

    /// `rdmsr`: the value, or what was delivered.
    pub fn rdmsr(msr: u64) -> Result<u64, crate::traps::Caught> {
        probe(Probe::Rdmsr, msr).map(|()| probe_value())
    }

    /// `wrmsr`.
    pub fn wrmsr(msr: u64, val: u64) -> Result<(), crate::traps::Caught> {
        probe2(Probe::Wrmsr, msr, val)
    }

    /// Write `val`, read it back, restore the old value: (write ok, read).
    pub fn round_trip(msr: u64, val: u64) -> Outcome {
        let old = match rdmsr(msr) {
            Ok(v) => v,
            Err(c) => return check(false, format_args!("rdmsr {msr:#x} trapped: {c:?}")),
        };
        let w = wrmsr(msr, val);
        let r = rdmsr(msr);
        let back = wrmsr(msr, old);
        all(&[
            check(w.is_ok(), format_args!("wrmsr {msr:#x} trapped: {w:?}")),
            check(r == Ok(val), format_args!("read back {r:x?}, want {val:#x}")),
            check(back.is_ok() && rdmsr(msr) == Ok(old), format_args!("restoring {old:#x}: {back:?}")),
        ])
    }

    /// The forced-emulation CPUID of `leaf`: EAX, EBX, ECX, EDX.
    pub fn forced_cpuid(leaf: u32) -> Result<[u32; 4], crate::traps::Caught> {
        probe(Probe::ForcedCpuid, u64::from(leaf)).map(|()| probe_regs().map(|r| r as u32))
    }
}

use crate::conformance::{CaseInfo, Kind};

cases! {
    // ---- rdmsr / wrmsr (Xen's read_msr, write_msr, guest_rdmsr)
    privop_wrmsr_rdmsr_fs_base_round_trip ("trap", "wrmsr/rdmsr MSR_FS_BASE", Accept) { round_trip(MSR_FS_BASE, 0x7f12_3456_7000) }
    privop_wrmsr_rdmsr_gs_base_round_trip ("trap", "wrmsr/rdmsr MSR_GS_BASE (kernel)", Accept) { round_trip(MSR_GS_BASE, 0xffff_8880_0123_4000) }
    privop_wrmsr_rdmsr_shadow_gs_base_round_trip ("trap", "wrmsr/rdmsr MSR_SHADOW_GS_BASE", Accept) {
        round_trip(MSR_SHADOW_GS_BASE, 0x7f00_0000_8000)
    }
    privop_rdmsr_efer_long_mode_without_svme ("trap", "rdmsr/wrmsr MSR_EFER", Accept) {
        // Xen's guest_efer: the host's SCE, LME, LMA, NXE; never SVME. The
        // same value written back is accepted (Linux does it).
        const SCE_LME_LMA: u64 = (1 << 0) | (1 << 8) | (1 << 10);
        match rdmsr(MSR_EFER) {
            Ok(v) => all(&[
                check(v & SCE_LME_LMA == SCE_LME_LMA && v & (1 << 12) == 0, format_args!("EFER {v:#x}")),
                check(wrmsr(MSR_EFER, v).is_ok(), format_args!("writing back {v:#x} trapped")),
            ]),
            Err(c) => check(false, format_args!("trapped: {c:?}")),
        }
    }
    privop_wrmsr_efer_change_is_gp ("trap", "wrmsr MSR_EFER (changed)", Reject) {
        match rdmsr(MSR_EFER) {
            Ok(v) => all(&[expect_trap(wrmsr(MSR_EFER, v ^ (1 << 11)), 13, Some(0), WRMSR_AT), check(rdmsr(MSR_EFER) == Ok(v), format_args!("EFER changed"))]),
            Err(c) => check(false, format_args!("rdmsr trapped: {c:?}")),
        }
    }
    privop_rdmsr_pat_is_xens ("trap", "rdmsr MSR_IA32_CR_PAT", Accept) {
        let r = rdmsr(MSR_PAT);
        all(&[check(r == Ok(XEN_MSR_PAT), format_args!("PAT {r:x?}")), expect_trap(wrmsr(MSR_PAT, XEN_MSR_PAT), 13, Some(0), WRMSR_AT)])
    }
    privop_rdmsr_apic_base_enabled_bsp ("trap", "rdmsr MSR_APIC_BASE", Accept) {
        let r = rdmsr(MSR_APIC_BASE);
        check(r == Ok(0xfee0_0900), format_args!("APIC_BASE {r:x?}, want 0xfee00900 (enabled, BSP)"))
    }
    privop_rdmsr_misc_enable_as_xen_shows_it ("trap", "rdmsr MSR_IA32_MISC_ENABLE", Accept) {
        // guest_misc_enable: BTS/PEBS unavailable, xTPR disabled, no perf
        // monitoring, no MONITOR; writes are ignored.
        match rdmsr(MSR_MISC_ENABLE) {
            Ok(v) => all(&[
                check(v & (1 << 11 | 1 << 12 | 1 << 23) == (1 << 11 | 1 << 12 | 1 << 23), format_args!("MISC_ENABLE {v:#x}")),
                check(v & (1 << 7 | 1 << 18) == 0, format_args!("MISC_ENABLE {v:#x}")),
                check(wrmsr(MSR_MISC_ENABLE, 0).is_ok() && rdmsr(MSR_MISC_ENABLE) == Ok(v), format_args!("write not ignored")),
            ]),
            Err(c) => check(false, format_args!("trapped: {c:?}")),
        }
    }
    privop_rdmsr_unknown_msr_is_gp ("trap", "rdmsr/wrmsr unknown MSR", Reject) {
        all(&[
            expect_trap(rdmsr(0x1234_5678).map(|_| ()), 13, Some(0), RDMSR_AT),
            expect_trap(rdmsr(MSR_STAR).map(|_| ()), 13, Some(0), RDMSR_AT),
            expect_trap(wrmsr(MSR_STAR, 0), 13, Some(0), WRMSR_AT),
        ])
    }
    privop_cpuid_faulting_interface_without_the_feature ("trap", "MSR_PLATFORM_INFO, MSR_MISC_FEATURES_ENABLES", Accept) {
        // QEMU's TCG CPUs have no CPUID faulting: PLATFORM_INFO shows none,
        // MISC_FEATURES_ENABLES reads 0 and refuses bit 0 (#GP).
        let info = rdmsr(0xce);
        let en = rdmsr(0x140);
        all(&[
            check(info.is_ok_and(|v| v & (1 << 31) == 0), format_args!("PLATFORM_INFO {info:x?}")),
            check(en == Ok(0), format_args!("MISC_FEATURES_ENABLES {en:x?}")),
            expect_trap(wrmsr(0x140, 1), 13, Some(0), WRMSR_AT),
        ])
    }
    privop_vmce_mcg_cap_two_banks_and_linux_bank_init ("trap", "rdmsr/wrmsr vMCE (MCG_CAP, MCi_CTL, MCi_STATUS)", Accept) {
        // Xen's vmce.c: MCG_CAP reports GUEST_MC_BANK_NUM (2) banks (plus
        // SER_P, TES_P, CMCI_P on Intel); MCi_CTL sticks to all ones;
        // STATUS takes 0; MCG_STATUS round-trips. Linux's mcheck_cpu_init
        // panics ("MCA architectural violation") if these #GP.
        let cap = rdmsr(0x179);
        all(&[
            check(cap.is_ok_and(|c| c & 0xff == 2), format_args!("MCG_CAP {cap:x?}")),
            check(wrmsr(0x400, u64::MAX).is_ok() && rdmsr(0x400) == Ok(u64::MAX), format_args!("MC0_CTL")),
            check(wrmsr(0x401, 0).is_ok() && rdmsr(0x401) == Ok(0), format_args!("MC0_STATUS")),
            check(wrmsr(0x17a, 0).is_ok() && rdmsr(0x17a) == Ok(0), format_args!("MCG_STATUS")),
            check(rdmsr(0x409) == Ok(0), format_args!("MC2_STATUS, past the guest's banks, reads 0")),
        ])
    }
    privop_vmce_nonzero_bank_status_write_is_gp ("trap", "wrmsr vMCE MCi_STATUS", Attack) {
        // A guest cannot plant a machine-check record: a nonzero STATUS,
        // ADDR or MISC write is #GP and changes nothing.
        all(&[
            expect_trap(wrmsr(0x401, 0xbe00_0000_0000_0001), 13, Some(0), WRMSR_AT),
            expect_trap(wrmsr(0x402, 0x1000), 13, Some(0), WRMSR_AT),
            check(rdmsr(0x401) == Ok(0) && rdmsr(0x402) == Ok(0), format_args!("bank 0 changed")),
        ])
    }
    privop_wrmsr_noncanonical_fs_base_is_gp_and_changes_nothing ("trap", "wrmsr MSR_FS_BASE non-canonical", Attack) {
        let before = rdmsr(MSR_FS_BASE);
        let t = wrmsr(MSR_FS_BASE, 0x8000_0000_0000_0000);
        let g = wrmsr(MSR_GS_BASE, 0x0000_8000_0000_0000);
        all(&[
            expect_trap(t, 13, Some(0), WRMSR_AT),
            expect_trap(g, 13, Some(0), WRMSR_AT),
            check(before.is_ok() && rdmsr(MSR_FS_BASE) == before, format_args!("FS base {before:x?} changed")),
        ])
    }

    // ---- mov from CRs, clts, wbinvd (read_cr, write_cr, cache_op)
    privop_read_cr0_shows_the_virtual_ts ("trap", "mov %cr0 (with fpu_taskswitch)", Accept) {
        // The hypervisor's own CR0 with the guest's TS: PE, ET, WP and PG
        // on either (MP, NE and AM are each hypervisor's choice).
        const PE_ET_WP_PG: u64 = 1 | (1 << 4) | (1 << 16) | (1 << 31);
        let set = call(nr::FPU_TASKSWITCH, 1, 0, 0, 0, 0);
        let with_ts = probe(Probe::ReadCr0, 0).map(|()| probe_value());
        let clear = call(nr::FPU_TASKSWITCH, 0, 0, 0, 0, 0);
        let without = probe(Probe::ReadCr0, 0).map(|()| probe_value());
        all(&[
            expect(set, 0),
            expect(clear, 0),
            check(with_ts.is_ok_and(|v| v & PE_ET_WP_PG == PE_ET_WP_PG && v & 8 != 0), format_args!("CR0 with TS {with_ts:x?}")),
            check(without.is_ok_and(|v| v & 8 == 0), format_args!("CR0 without TS {without:x?}")),
        ])
    }
    privop_cr2_holds_the_last_fault_and_what_the_kernel_writes ("trap", "mov %cr2 (read, write)", Accept) {
        // Xen's ctrlreg[2]: set when a #PF is injected, and by mov to CR2.
        let pf = probe(Probe::Read, 0xdead_b000);
        let after_pf = probe(Probe::ReadCr2, 0).map(|()| probe_value());
        let w = probe(Probe::WriteCr2, 0x1234_5000);
        let after_write = probe(Probe::ReadCr2, 0).map(|()| probe_value());
        let shown = crate::shared::cr2();
        all(&[
            expect_trap(pf, 14, Some(0), 0),
            check(after_pf == Ok(0xdead_b000), format_args!("CR2 after #PF {after_pf:x?}")),
            check(w.is_ok() && after_write == Ok(0x1234_5000), format_args!("CR2 after write {w:?} {after_write:x?}")),
            check(shown.is_none_or(|c| c == 0x1234_5000), format_args!("vcpu_info cr2 {shown:x?}")),
        ])
    }
    privop_read_cr3_is_the_l4_frame ("trap", "mov %cr3", Accept) {
        let r = probe(Probe::ReadCr3, 0).map(|()| probe_value());
        check(r == Ok(l4_mfn() << 12), format_args!("CR3 {r:x?}, want {:#x}", l4_mfn() << 12))
    }
    privop_read_cr4_shows_only_pv_visible_bits ("trap", "mov %cr4", Accept) {
        // PV_CR4_GUEST_VISIBLE_MASK (PAE, MCE, OSFXSR, OSXMMEXCPT) and the
        // guest's own (TSD, DE, FSGSBASE, OSXSAVE): never PGE, SMEP, SMAP.
        const ALLOWED: u64 = (1 << 2) | (1 << 3) | (1 << 5) | (1 << 6) | (1 << 9) | (1 << 10) | (1 << 16) | (1 << 18);
        let r = probe(Probe::ReadCr4, 0).map(|()| probe_value());
        check(r.is_ok_and(|v| v & !ALLOWED == 0 && v & (1 << 5 | 1 << 9) == (1 << 5 | 1 << 9)), format_args!("CR4 {r:x?}"))
    }
    privop_clts_clears_the_virtual_ts ("trap", "clts", Accept) {
        let set = call(nr::FPU_TASKSWITCH, 1, 0, 0, 0, 0);
        let c = probe(Probe::Clts, 0);
        let sse = probe(Probe::Sse, 0);
        all(&[expect(set, 0), check(c.is_ok(), format_args!("clts trapped: {c:?}")), check(sse.is_ok(), format_args!("SSE after clts trapped: {sse:?}"))])
    }
    privop_wbinvd_is_emulated ("trap", "wbinvd", Accept) {
        let r = probe(Probe::Wbinvd, 0);
        check(r.is_ok(), format_args!("trapped: {r:?}"))
    }
    privop_cli_sti_skipped_with_virtual_iopl_gp_without ("trap", "cli/sti at IOPL 0 and 1", Accept) {
        // emul-priv-op.c's validate: with iopl_ok, cli and sti complete
        // without effect ("too dangerous to allow"); without, #GP(0).
        let gp = (probe(Probe::Cli, 0), probe(Probe::Sti, 0));
        let r = set_iopl(1);
        let done = (probe(Probe::Cli, 0), probe(Probe::Sti, 0));
        set_iopl(0);
        all(&[
            expect(r, 0),
            expect_trap(gp.0, 13, Some(0), 0),
            expect_trap(gp.1, 13, Some(0), 0),
            check(done.0.is_ok() && done.1.is_ok(), format_args!("at IOPL 1: {done:?}")),
        ])
    }
    privop_rdtsc_runs_without_tsd ("trap", "rdtsc", Accept) {
        // Neither hypervisor sets CR4.TSD for a PV dom0 (no vTSC).
        let r = probe(Probe::Rdtsc, 0);
        check(r.is_ok(), format_args!("trapped: {r:?}"))
    }
    privop_rdpmc_is_gp ("trap", "rdpmc", Reject) {
        // No CR4.PCE for PV, and rdpmc is not in emul-priv-op's list.
        expect_trap(probe(Probe::Rdpmc, 0), 13, Some(0), 2)
    }
    privop_read_cr8_is_gp ("trap", "mov %cr8", Reject) {
        // read_cr knows CR0, CR2, CR3 and CR4 only.
        expect_trap(probe(Probe::ReadCr8, 0), 13, Some(0), 0)
    }
    privop_write_cr0_other_than_ts_is_gp ("trap", "mov to %cr0 clearing PG", Attack) {
        // write_cr: "Attempt to change unmodifiable CR0 flags": the #GP is
        // delivered and paging stays on (this case would not return).
        expect_trap(probe(Probe::Cr0ClearPg, 0), 13, Some(0), 8)
    }

    // ---- The forced-emulation CPUID (emul-inv-op.c, cpuid_hypervisor_leaves)
    cpuid_forced_leaf_0x40000000_is_xenvmmxenvmm ("cpuid", "ud2 xen cpuid, leaf 0x40000000", Accept) {
        match forced_cpuid(0x4000_0000) {
            Ok([a, b, c, d]) => {
                let mut sig = [0u8; 12];
                sig[..4].copy_from_slice(&b.to_le_bytes());
                sig[4..8].copy_from_slice(&c.to_le_bytes());
                sig[8..].copy_from_slice(&d.to_le_bytes());
                all(&[check(&sig == b"XenVMMXenVMM", format_args!("signature {sig:x?}")), check(a == 0x4000_0005, format_args!("max leaf {a:#x}"))])
            }
            Err(c) => check(false, format_args!("trapped: {c:?}")),
        }
    }
    cpuid_forced_leaf_0x40000001_is_the_version ("cpuid", "ud2 xen cpuid, leaf 0x40000001", Accept) {
        let v = call(nr::XEN_VERSION, 0, 0, 0, 0, 0);
        match forced_cpuid(0x4000_0001) {
            Ok([a, ..]) => check(i64::from(a) == v && a == (4 << 16) | 17, format_args!("leaf {a:#x}, xen_version {v:#x}")),
            Err(c) => check(false, format_args!("trapped: {c:?}")),
        }
    }
    cpuid_forced_leaf_0x40000002_one_hypercall_page ("cpuid", "ud2 xen cpuid, leaf 0x40000002", Accept) {
        let r = forced_cpuid(0x4000_0002);
        check(matches!(r, Ok([1, 0x4000_0000, 1, _])), format_args!("leaf {r:x?}, want 1 page, MSR 0x40000000, PRESERVE_AD"))
    }
    cpuid_forced_leaf_1_hides_vmx_pcid_monitor_sets_hypervisor ("cpuid", "ud2 xen cpuid, leaf 1", Accept) {
        // VMX ('h'), PCID ('H'), MONITOR (never on the forced path) are not
        // for PV; the hypervisor bit always is.
        const VMX: u32 = 1 << 5;
        const PCID: u32 = 1 << 17;
        const MONITOR: u32 = 1 << 3;
        match forced_cpuid(1) {
            Ok([_, b, c, _]) => all(&[
                check(c & (VMX | PCID | MONITOR) == 0, format_args!("ECX {c:#x}")),
                check(c & (1 << 31) != 0, format_args!("no hypervisor bit: ECX {c:#x}")),
                check(b >> 24 == 0, format_args!("APIC id {}", b >> 24)),
            ]),
            Err(c) => check(false, format_args!("trapped: {c:?}")),
        }
    }
    cpuid_forced_dom0_kernel_sees_mtrr_in_leaves_1_and_0x80000001 ("cpuid", "ud2 xen cpuid, leaves 1 and 0x80000001 (dom0)", Accept) {
        // MTRR is 'S' (not for PV), but Xen leaks it to the hardware
        // domain's kernel, in both leaves common_leaf1_adjustments covers.
        const MTRR: u32 = 1 << 12;
        let (l1, e1) = (forced_cpuid(1), forced_cpuid(0x8000_0001));
        check(matches!((l1, e1), (Ok([_, _, _, d1]), Ok([_, _, _, e1d])) if d1 & MTRR != 0 && e1d & MTRR != 0), format_args!("leaf 1 {l1:x?}, 0x80000001 {e1:x?}"))
    }
    cpuid_forced_leaf_0x40000003_dom0_has_no_tsc_info ("cpuid", "ud2 xen cpuid, leaf 0x40000003 (dom0)", Accept) {
        // tsc_set_info returns early for a PV hardware domain: no vTSC, TSC
        // mode 0, kHz, incarnation and scale 0.
        let a = forced_cpuid(0x4000_0003);
        check(matches!(a, Ok([f, 0, 0, 0]) if f & 1 == 0), format_args!("leaf 0x40000003.0 {a:x?}"))
    }
    cpuid_forced_leaf_past_the_hypervisor_leaves_is_zero ("cpuid", "ud2 xen cpuid, leaf 0x40000006", Accept) {
        let r = forced_cpuid(0x4000_0006);
        check(r == Ok([0; 4]), format_args!("leaf {r:x?}"))
    }
    cpuid_forced_prefix_returns_past_all_7_bytes ("cpuid", "ud2 xen cpuid", Trap) {
        // A plain ud2 still raises #UD; the prefixed one completes.
        all(&[expect_trap(probe(Probe::Ud2, 0), 6, None, 0), check(forced_cpuid(0).is_ok(), format_args!("forced CPUID trapped"))])
    }
}
