//! A PV vCPU's debug registers as Xen 4.17 keeps them (`v->arch.dr[]`,
//! `dr6`, `dr7`, `pv.dr7_emul`): the checks of `set_debugreg`
//! (`pv/misc-hypercalls.c`) and the reads of `x86emul_read_dr`
//! (`x86_emulate.c`), shared by the `set_debugreg`/`get_debugreg`
//! hypercalls and the emulation of `mov` to and from %dr0-%dr7.
//!
//! Pure logic. Invariants: DR0-DR3 only ever hold guest addresses (never
//! the hypervisor's range), DR6 and DR7 hold 32-bit values with their
//! reserved bits forced as the CPU defines them, DR7 never has General
//! Detect, and its I/O breakpoints (legal only with the guest's CR4.DE)
//! live in `dr7_emul`, never in the value loaded into the hardware. So the
//! values can go into the hardware as they are when the vCPU runs.
#![forbid(unsafe_code)]

use xen_public::errno::{EINVAL, ENODEV, EPERM};

/// `X86_DR6_DEFAULT`: DR6 at vCPU creation.
pub const DR6_DEFAULT: u64 = 0xffff_0ff0;
/// `X86_DR7_DEFAULT`: DR7 at vCPU creation.
pub const DR7_DEFAULT: u64 = 0x400;
/// `DR7_ACTIVE_MASK`: the local and global enables of DR0-DR3.
pub const DR7_ACTIVE_MASK: u64 = 0xff;
/// `DR_STATUS_RESERVED_ZERO` (bit 12 and the upper half).
const DR_STATUS_RESERVED_ZERO: u64 = !0xffff_efff;
/// `DR_STATUS_RESERVED_ONE`.
const DR_STATUS_RESERVED_ONE: u64 = 0xffff_0ff0;
/// `DR_CONTROL_RESERVED_ZERO` (bits 11, 12, 14, 15 and the upper half).
const DR_CONTROL_RESERVED_ZERO: u64 = !0xffff_27ff;
/// `DR_CONTROL_RESERVED_ONE` (bit 10).
const DR_CONTROL_RESERVED_ONE: u64 = 0x400;
/// `DR_GENERAL_DETECT`.
const DR_GENERAL_DETECT: u64 = 0x2000;
/// `DR_IO`: the R/W field of an I/O breakpoint.
const DR_IO: u64 = 2;
/// `DR_CONTROL_SHIFT`, `DR_CONTROL_SIZE`.
const DR_CONTROL_SHIFT: u32 = 16;
const DR_CONTROL_SIZE: u32 = 4;

/// A vCPU's debug registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DebugRegs {
    /// DR0-DR3 (guest linear addresses).
    pub dr: [u64; 4],
    /// DR6 as the guest sees it.
    pub dr6: u64,
    /// DR7 as the hardware gets it (no I/O breakpoints).
    pub dr7: u64,
    /// The I/O breakpoint enables Xen emulates (`pv.dr7_emul`).
    pub dr7_emul: u64,
}

impl Default for DebugRegs {
    fn default() -> Self {
        DebugRegs { dr: [0; 4], dr6: DR6_DEFAULT, dr7: DR7_DEFAULT, dr7_emul: 0 }
    }
}

impl DebugRegs {
    /// Whether DR7 enables a breakpoint, so the registers must be in the
    /// hardware while the vCPU runs (Xen's `dr7 & DR7_ACTIVE_MASK`).
    pub fn active(&self) -> bool {
        self.dr7 & DR7_ACTIVE_MASK != 0
    }

    /// Xen's `set_debugreg(v, reg, value)` with the guest's CR4.DE: 0, or
    /// -EPERM (a hypervisor address in DR0-3, General Detect, an I/O
    /// breakpoint without CR4.DE), -EINVAL (upper half of DR6/DR7 set) or
    /// -ENODEV (DR4/DR5 with CR4.DE, or no such register). A refused
    /// write changes nothing.
    pub fn set(&mut self, cr4_de: bool, reg: u32, value: u64) -> Result<(), i64> {
        match reg {
            0..=3 => {
                if !crate::mm::guest_walk::guest_va_ok(value) {
                    return Err(-EPERM);
                }
                self.dr[reg as usize] = value;
            }
            4 | 6 => {
                if reg == 4 && cr4_de {
                    return Err(-ENODEV);
                }
                if value >> 32 != 0 {
                    return Err(-EINVAL);
                }
                self.dr6 = (value & !DR_STATUS_RESERVED_ZERO) | DR_STATUS_RESERVED_ONE;
            }
            5 | 7 => {
                if reg == 5 && cr4_de {
                    return Err(-ENODEV);
                }
                if value >> 32 != 0 {
                    return Err(-EINVAL);
                }
                let mut value = (value & !DR_CONTROL_RESERVED_ZERO) | DR_CONTROL_RESERVED_ONE;
                if value & DR_GENERAL_DETECT != 0 {
                    return Err(-EPERM);
                }
                let mut io_enable = 0;
                if value & DR7_ACTIVE_MASK != 0 {
                    for i in (DR_CONTROL_SHIFT..32).step_by(DR_CONTROL_SIZE as usize) {
                        if (value >> i) & 3 == DR_IO {
                            if !cr4_de {
                                return Err(-EPERM);
                            }
                            io_enable |= value & (3 << ((i - DR_CONTROL_SHIFT) / 2));
                        }
                    }
                    value &= !io_enable;
                }
                self.dr7_emul = io_enable;
                self.dr7 = value;
            }
            _ => return Err(-ENODEV),
        }
        Ok(())
    }

    /// Xen's `x86emul_read_dr(reg)` with the guest's CR4.DE: the value, or
    /// -ENODEV (DR4/DR5 with CR4.DE, or no such register).
    pub fn get(&self, cr4_de: bool, reg: u32) -> Result<u64, i64> {
        match reg {
            0..=3 => Ok(self.dr[reg as usize]),
            4 | 5 if cr4_de => Err(-ENODEV),
            4 | 6 => Ok(self.dr6),
            5 | 7 => Ok(self.dr7 | self.dr7_emul),
            _ => Err(-ENODEV),
        }
    }

    /// Xen's `check_guest_io_breakpoint`: the DR6 B0-B3 bits of the
    /// guest's I/O breakpoints (enabled in `dr7_emul`, only with CR4.DE)
    /// whose range (DRn, LEN from DR7) meets ports `[port, port + len)`.
    pub fn io_breakpoints(&self, cr4_de: bool, port: u16, len: u8) -> u64 {
        if self.dr7_emul == 0 || !cr4_de {
            return 0;
        }
        let (port, len) = (u64::from(port), u64::from(len));
        let mut hit = 0;
        for i in 0..4u32 {
            if self.dr7_emul & (3 << (i * 2)) == 0 {
                continue;
            }
            let width = match (self.dr7 >> (DR_CONTROL_SHIFT + i * DR_CONTROL_SIZE + 2)) & 3 {
                0 => 1,
                1 => 2,
                3 => 4,
                _ => 8,
            };
            let start = self.dr[i as usize];
            if start < port + len && start.wrapping_add(width) > port {
                hit |= 1 << i;
            }
        }
        hit
    }

    /// An emulated port access hit the I/O breakpoints `hit` (Xen's
    /// `ctxt.bpmatch`): they show in DR6, and the caller delivers #DB.
    pub fn note_io_breakpoints(&mut self, hit: u64) {
        self.dr6 |= hit | DR_STATUS_RESERVED_ONE;
    }

    /// A #DB the guest raised: fold the hardware's DR6 into the guest's
    /// as Xen's `do_debug` does (the status bits it reports set, the ones
    /// it reports clear cleared).
    pub fn note_debug_exception(&mut self, hw_dr6: u64) {
        self.dr6 |= hw_dr6 & !DR6_DEFAULT;
        self.dr6 &= hw_dr6 | !DR6_DEFAULT;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_vcpu_has_xens_defaults() {
        // Xen's arch_vcpu_regs_init: DR6 0xffff0ff0, DR7 0x400, DR0-3 0.
        let d = DebugRegs::default();
        assert_eq!((d.dr, d.dr6, d.dr7, d.active()), ([0; 4], 0xffff_0ff0, 0x400, false));
        assert_eq!(d.get(false, 7), Ok(0x400));
    }

    #[test]
    fn dr0_to_dr3_take_only_guest_addresses() {
        // set_debugreg: !access_ok(value) is -EPERM.
        let mut d = DebugRegs::default();
        assert_eq!(d.set(false, 0, 0x7fff_ffff_f000), Ok(()));
        assert_eq!(d.set(false, 3, 0xffff_8800_0000_0000), Ok(()), "above Xen's range is the guest's");
        for bad in [0xffff_8000_0000_0000, 0xffff_87ff_ffff_ffff, 0x0000_8000_0000_0000, 0x8000_0000_0000_0000] {
            assert_eq!(d.set(false, 1, bad), Err(-EPERM), "{bad:#x}");
        }
        assert_eq!((d.get(false, 0), d.get(false, 1), d.get(false, 3)), (Ok(0x7fff_ffff_f000), Ok(0), Ok(0xffff_8800_0000_0000)));
    }

    #[test]
    fn dr6_keeps_its_reserved_bits() {
        let mut d = DebugRegs::default();
        assert_eq!(d.set(false, 6, 0), Ok(()));
        assert_eq!(d.dr6, 0xffff_0ff0, "reserved-one bits forced");
        assert_eq!(d.set(false, 6, 0xffff_ffff), Ok(()));
        assert_eq!(d.dr6, 0xffff_efff, "bit 12 forced to 0");
        assert_eq!(d.set(false, 6, 1 << 32), Err(-EINVAL));
        assert_eq!(d.dr6, 0xffff_efff, "unchanged by a refused write");
    }

    #[test]
    fn dr7_refuses_general_detect_and_the_upper_half() {
        let mut d = DebugRegs::default();
        assert_eq!(d.set(false, 7, DR_GENERAL_DETECT | 1), Err(-EPERM));
        assert_eq!(d.set(false, 7, 1 << 40), Err(-EINVAL));
        assert_eq!(d.dr7, DR7_DEFAULT);
        assert_eq!(d.set(false, 7, 0xffff_ffff & !DR_GENERAL_DETECT & !(0x2222 << 16)), Ok(()));
        assert_eq!(d.dr7, 0xdddd_07ff & 0xffff_27ff | 0x400, "reserved bits 11,12,14,15 cleared");
        assert!(d.active());
        assert_eq!(d.set(false, 7, 0), Ok(()));
        assert_eq!((d.dr7, d.active()), (0x400, false));
    }

    #[test]
    fn io_breakpoints_need_cr4_de_and_are_emulated() {
        // R/W0 = 10b (I/O) with L0: -EPERM without CR4.DE; with it, the
        // enable moves to dr7_emul and reads show both.
        let mut d = DebugRegs::default();
        let io0 = (DR_IO << 16) | 1;
        assert_eq!(d.set(false, 7, io0), Err(-EPERM));
        assert_eq!(d.set(true, 7, io0 | (1 << 20) | 4), Ok(()), "DR0 I/O, DR1 write breakpoint");
        assert_eq!(d.dr7_emul, 1);
        assert_eq!(d.dr7 & DR7_ACTIVE_MASK, 4, "only DR1's enable reaches the hardware");
        assert_eq!(d.get(true, 7), Ok(0x400 | io0 | (1 << 20) | 4));
        // An I/O type with DR7 inactive is not an I/O breakpoint.
        assert_eq!(d.set(false, 7, DR_IO << 16), Ok(()));
        assert_eq!((d.dr7_emul, d.active()), (0, false));
    }

    #[test]
    fn dr4_and_dr5_alias_dr6_and_dr7_unless_cr4_de() {
        let mut d = DebugRegs::default();
        assert_eq!(d.set(false, 4, 0x1), Ok(()));
        assert_eq!(d.get(false, 6), Ok(0xffff_0ff1));
        assert_eq!(d.set(false, 5, 0x2), Ok(()));
        assert_eq!(d.get(false, 5), Ok(0x402));
        assert_eq!((d.set(true, 4, 0), d.set(true, 5, 0)), (Err(-ENODEV), Err(-ENODEV)));
        assert_eq!((d.get(true, 4), d.get(true, 5)), (Err(-ENODEV), Err(-ENODEV)));
        for reg in [8, 15, 0x1_0000, u32::MAX] {
            assert_eq!((d.set(false, reg, 0), d.get(false, reg)), (Err(-ENODEV), Err(-ENODEV)), "reg {reg}");
        }
    }

    #[test]
    fn io_breakpoints_match_the_ports_they_cover() {
        // check_guest_io_breakpoint: DR0 = 0x80 LEN 1, DR2 = 0x60 LEN 4,
        // both I/O (R/W 10b) and enabled; nothing without CR4.DE.
        let mut d = DebugRegs::default();
        d.dr[0] = 0x80;
        d.dr[2] = 0x60;
        let dr7 = 1 | (DR_IO << 16) | (1 << 5) | (DR_IO << 24) | (3 << 26);
        assert_eq!(d.set(true, 7, dr7), Ok(()));
        assert_eq!(d.io_breakpoints(true, 0x80, 1), 1);
        assert_eq!(d.io_breakpoints(true, 0x7f, 2), 1, "a word at 0x7f covers 0x80");
        assert_eq!(d.io_breakpoints(true, 0x81, 1), 0);
        assert_eq!(d.io_breakpoints(true, 0x63, 1), 4);
        assert_eq!(d.io_breakpoints(true, 0x64, 1), 0);
        assert_eq!(d.io_breakpoints(false, 0x80, 1), 0, "CR4.DE cleared since");
        d.note_io_breakpoints(1);
        assert_eq!(d.dr6, 0xffff_0ff1);
    }

    #[test]
    fn a_debug_exception_updates_the_guests_dr6() {
        // do_debug: B0 and BS reported by the hardware show up; bits the
        // guest had set that the hardware reports clear stay.
        let mut d = DebugRegs::default();
        d.note_debug_exception(0xffff_0ff0 | 1 | 0x4000);
        assert_eq!(d.dr6, 0xffff_4ff1);
        d.note_debug_exception(0xffff_0ff0 | 2);
        assert_eq!(d.dr6, 0xffff_4ff3, "sticky until the guest clears them");
    }
}
