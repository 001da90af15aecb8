//! A vCPU's virtual machine-check MSRs, as Xen 4.17's vMCE shows them to a
//! PV guest (`xen/arch/x86/cpu/mcheck/vmce.c`, and `guest_rdmsr` /
//! `guest_wrmsr`'s MCE ranges in `msr.c`).
//!
//! Owns the per-vCPU MCG_STATUS and the two guest banks' STATUS, ADDR,
//! MISC and CTL2. Invariants: MCG_CAP is fixed per vendor and reports
//! [`GUEST_MC_BANK_NUM`] banks; MCi_CTL reads all ones and ignores writes;
//! a bank's STATUS, ADDR and MISC can only be written with 0 (anything
//! else is #GP, as on Xen); nothing here reaches a real MCE MSR.
#![forbid(unsafe_code)]

/// Banks a guest sees (Xen's `GUEST_MC_BANK_NUM`).
pub const GUEST_MC_BANK_NUM: u64 = 2;
/// `MCG_CMCI_P`, `MCG_TES_P`, `MCG_SER_P`: Intel's guest MCG_CAP bits.
const MCG_CMCI_P: u64 = 1 << 10;
const MCG_TES_P: u64 = 1 << 11;
const MCG_SER_P: u64 = 1 << 24;

/// `MSR_P5_MC_ADDR`, `MSR_P5_MC_TYPE`.
const P5_MC_ADDR: u32 = 0x0;
const P5_MC_TYPE: u32 = 0x1;
/// `MSR_IA32_MCG_CAP`, `MCG_STATUS`, `MCG_CTL`.
const MCG_CAP: u32 = 0x179;
const MCG_STATUS: u32 = 0x17a;
const MCG_CTL: u32 = 0x17b;
/// `MSR_IA32_MCx_CTL2(0..32)`.
const MC_CTL2: core::ops::Range<u32> = 0x280..0x2a0;
/// `MSR_IA32_MCx_CTL(0)` .. `MCx_MISC(31)`.
const MC_BANKS: core::ops::Range<u32> = 0x400..0x480;
/// `MSR_IA32_MCG_EXT_CTL` (needs MCG_LMCE_P, which a PV guest never has).
const MCG_EXT_CTL: u32 = 0x4d0;

/// One guest bank (Xen's `struct vmce_bank`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Bank {
    status: u64,
    addr: u64,
    misc: u64,
    ctl2: u64,
}

/// A vCPU's vMCE state (Xen's `v->arch.vmce`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Vmce {
    mcg_status: u64,
    banks: [Bank; GUEST_MC_BANK_NUM as usize],
}

/// MCG_CAP as Xen gives it (`INTEL_GUEST_MCG_CAP` / `AMD_GUEST_MCG_CAP`).
pub fn mcg_cap(intel: bool) -> u64 {
    if intel { MCG_SER_P | MCG_TES_P | MCG_CMCI_P | GUEST_MC_BANK_NUM } else { GUEST_MC_BANK_NUM }
}

/// Whether `msr` is one of the ranges `guest_rdmsr`/`guest_wrmsr` hand to
/// the vMCE.
pub fn is_vmce_msr(msr: u32) -> bool {
    matches!(msr, P5_MC_ADDR | P5_MC_TYPE | MCG_CAP..=MCG_CTL | MCG_EXT_CTL) || MC_CTL2.contains(&msr) || MC_BANKS.contains(&msr)
}

/// The bank `msr` names among the guest's, with its register (0 CTL,
/// 1 STATUS, 2 ADDR, 3 MISC), if it is a bank MSR below the bank count
/// (Xen's `mce_bank_msr`).
fn bank_of(msr: u32) -> Option<(usize, u32)> {
    let i = msr.checked_sub(MC_BANKS.start)?;
    let bank = u64::from(i / 4);
    (MC_BANKS.contains(&msr) && bank < GUEST_MC_BANK_NUM).then_some((bank as usize, i % 4))
}

/// The Intel CTL2 bank `msr` names, if below the bank count.
fn ctl2_bank(msr: u32, intel: bool) -> Option<usize> {
    let bank = u64::from(msr.checked_sub(MC_CTL2.start)?);
    (intel && MC_CTL2.contains(&msr) && bank < GUEST_MC_BANK_NUM).then_some(bank as usize)
}

impl Vmce {
    /// `rdmsr` of a vMCE MSR ([`is_vmce_msr`]): `Some(value)`, or `None`
    /// for #GP. MSRs in the ranges that no bank backs read 0, as on Xen.
    pub fn rdmsr(&self, msr: u32, intel: bool) -> Option<u64> {
        Some(match msr {
            MCG_STATUS => self.mcg_status,
            MCG_CAP => mcg_cap(intel),
            MCG_EXT_CTL => return None,
            P5_MC_ADDR if intel => self.banks[1].addr,
            P5_MC_TYPE if intel => self.banks[1].status,
            _ => match (bank_of(msr), ctl2_bank(msr, intel)) {
                (Some((_, 0)), _) => u64::MAX,
                (Some((b, 1)), _) => self.banks[b].status,
                (Some((b, 2)), _) => self.banks[b].addr,
                (Some((b, _)), _) => self.banks[b].misc,
                (None, Some(b)) => self.banks[b].ctl2,
                (None, None) => 0,
            },
        })
    }

    /// `wrmsr` of a vMCE MSR: `false` for #GP, nothing changed.
    pub fn wrmsr(&mut self, msr: u32, val: u64, intel: bool) -> bool {
        match msr {
            MCG_STATUS => self.mcg_status = val,
            MCG_EXT_CTL => return false,
            // MCG_CAP is read-only, MCG_CTL and MCi_CTL stick: ignored.
            _ => match (bank_of(msr), ctl2_bank(msr, intel)) {
                (Some((_, 0)), _) => {}
                (Some(_), _) if val != 0 => return false,
                (Some((b, 1)), _) => self.banks[b].status = 0,
                (Some((b, 2)), _) => self.banks[b].addr = 0,
                (Some((b, _)), _) => self.banks[b].misc = 0,
                (None, Some(b)) => self.banks[b].ctl2 = val,
                (None, None) => {}
            },
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mcg_cap_reports_two_banks_and_intels_extras_as_xen_4_17() {
        assert_eq!(mcg_cap(true), (1 << 24) | (1 << 11) | (1 << 10) | 2);
        assert_eq!(mcg_cap(false), 2);
        let v = Vmce::default();
        assert_eq!(v.rdmsr(0x179, true), Some(mcg_cap(true)));
        assert_eq!(v.rdmsr(0x17b, true), Some(0), "no MCG_CTL_P: MCG_CTL reads 0");
    }

    /// Linux's mcheck_cpu_init: reads MCG_CAP/STATUS, writes every
    /// bank's CTL with all ones and STATUS with 0.
    #[test]
    fn linux_bank_init_sequence_is_accepted() {
        let mut v = Vmce::default();
        for b in 0..2u32 {
            assert!(v.wrmsr(0x400 + 4 * b, u64::MAX, true));
            assert!(v.wrmsr(0x401 + 4 * b, 0, true));
            assert_eq!(v.rdmsr(0x400 + 4 * b, true), Some(u64::MAX), "MCi_CTL sticks to all ones");
            assert_eq!(v.rdmsr(0x401 + 4 * b, true), Some(0));
        }
        assert!(v.wrmsr(0x17a, 0, true));
        assert_eq!(v.rdmsr(0x17a, true), Some(0));
    }

    #[test]
    fn nonzero_bank_status_addr_misc_writes_are_gp_unchanged() {
        let mut v = Vmce::default();
        for m in [0x401, 0x402, 0x403, 0x405] {
            assert!(!v.wrmsr(m, 1, true), "msr {m:#x}");
        }
        assert_eq!(v, Vmce::default());
    }

    #[test]
    fn msrs_past_the_guest_banks_read_0_and_ignore_writes() {
        let mut v = Vmce::default();
        assert_eq!(v.rdmsr(0x409, true), Some(0), "bank 2 STATUS: no bank, reads 0");
        assert!(v.wrmsr(0x409, 5, true), "ignored, as Xen's vmce_wrmsr returns 0 for it");
        assert_eq!(v.rdmsr(0x47f, false), Some(0));
        assert_eq!(v, Vmce::default());
    }

    #[test]
    fn ctl2_is_per_bank_on_intel_only_and_ext_ctl_is_gp() {
        let mut v = Vmce::default();
        assert!(v.wrmsr(0x281, 0x7fff, true));
        assert_eq!(v.rdmsr(0x281, true), Some(0x7fff));
        assert_eq!(v.rdmsr(0x281, false), Some(0), "AMD: no CTL2 banks");
        assert_eq!(v.rdmsr(0x4d0, true), None, "MCG_EXT_CTL without MCG_LMCE_P");
        assert!(!v.wrmsr(0x4d0, 0, true));
    }

    #[test]
    fn the_ranges_are_xens() {
        for m in [0x0, 0x1, 0x179, 0x17a, 0x17b, 0x280, 0x29f, 0x400, 0x47f, 0x4d0] {
            assert!(is_vmce_msr(m), "{m:#x}");
        }
        for m in [0x2, 0x178, 0x17c, 0x2a0, 0x3ff, 0x480, 0x4cf] {
            assert!(!is_vmce_msr(m), "{m:#x}");
        }
    }
}
