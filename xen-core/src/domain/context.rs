//! `struct vcpu_guest_context` (x86_64), the argument of
//! XEN_DOMCTL_setvcpucontext and XEN_DOMCTL_getvcpucontext: its byte
//! layout, decoded into the fields xen-core uses and encoded back.
//!
//! Pure logic. Invariant: [`VcpuGuestContext::parse`] and
//! [`VcpuGuestContext::encode`] use the offsets of Xen's public header
//! (`arch-x86/xen.h`, `arch-x86/xen-x86_64.h`), checked by the tests;
//! [`VcpuGuestContext::check`] applies Xen's canonical-address rules.
#![forbid(unsafe_code)]

use super::vcpu::{CpuUserRegs, TrapInfo, is_canonical};

/// Size of `struct vcpu_guest_context` on x86_64.
pub const SIZE: usize = 5168;

/// `VGCF_*` flags.
pub mod vgcf {
    /// `VGCF_i387_valid`.
    pub const I387_VALID: u64 = 1 << 0;
    /// `VGCF_in_kernel`.
    pub const IN_KERNEL: u64 = 1 << 2;
    /// `VGCF_failsafe_disables_events`.
    pub const FAILSAFE_DISABLES_EVENTS: u64 = 1 << 3;
    /// `VGCF_syscall_disables_events`.
    pub const SYSCALL_DISABLES_EVENTS: u64 = 1 << 4;
    /// `VGCF_online`.
    pub const ONLINE: u64 = 1 << 5;
}

const FLAGS: usize = 512;
const USER_REGS: usize = 520;
const TRAP_CTXT: usize = 720;
const LDT_BASE: usize = 4816;
const LDT_ENTS: usize = 4824;
const GDT_FRAMES: usize = 4832;
const GDT_ENTS: usize = 4960;
const KERNEL_SS: usize = 4968;
const KERNEL_SP: usize = 4976;
const CTRLREG: usize = 4984;
const EVENT_CALLBACK: usize = 5112;
const FAILSAFE_CALLBACK: usize = 5120;
const SYSCALL_CALLBACK: usize = 5128;
const VM_ASSIST: usize = 5136;
const FS_BASE: usize = 5144;
const GS_BASE_KERNEL: usize = 5152;
const GS_BASE_USER: usize = 5160;

/// Offsets inside `cpu_user_regs` of r15, r14, r13, r12, rbp, rbx, r11,
/// r10, r9, r8, rax, rcx, rdx, rsi, rdi (8 bytes each, in that order).
const GPR_ORDER: usize = 15;
const REGS_RIP: usize = 128;
const REGS_CS: usize = 136;
const REGS_UPCALL_MASK: usize = 140;
const REGS_RFLAGS: usize = 144;
const REGS_RSP: usize = 152;
const REGS_SS: usize = 160;

/// The decoded context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VcpuGuestContext {
    /// `VGCF_*`.
    pub flags: u64,
    /// General registers, RIP, RSP, RFLAGS, CS, SS.
    pub regs: CpuUserRegs,
    /// `saved_upcall_mask`.
    pub saved_upcall_mask: u8,
    /// The virtual IDT.
    pub traps: [TrapInfo; 256],
    /// LDT linear address and entries.
    pub ldt: (u64, u64),
    /// GDT machine frames and entries.
    pub gdt_frames: [u64; 16],
    /// Entries in the GDT.
    pub gdt_ents: u64,
    /// Kernel stack segment and pointer.
    pub kernel_ss: u64,
    /// Kernel stack pointer.
    pub kernel_sp: u64,
    /// CR0-CR7; CR3 is the kernel L4, CR1 the user L4 (`xen_pfn_to_cr3`).
    pub ctrlreg: [u64; 8],
    /// Event, failsafe and syscall callback addresses.
    pub callbacks: [u64; 3],
    /// `VMASST_TYPE_*` bitmap.
    pub vm_assist: u64,
    /// FS base, kernel GS base, user GS base.
    pub bases: [u64; 3],
}

fn rd(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap_or_default())
}

fn wr(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// The general registers of `r` in `cpu_user_regs` order.
fn gprs(r: &mut CpuUserRegs) -> [&mut u64; GPR_ORDER] {
    [
        &mut r.r15, &mut r.r14, &mut r.r13, &mut r.r12, &mut r.rbp, &mut r.rbx, &mut r.r11, &mut r.r10, &mut r.r9, &mut r.r8, &mut r.rax, &mut r.rcx,
        &mut r.rdx, &mut r.rsi, &mut r.rdi,
    ]
}

impl VcpuGuestContext {
    /// Decode a context.
    pub fn parse(b: &[u8; SIZE]) -> VcpuGuestContext {
        let u = USER_REGS;
        let mut regs = CpuUserRegs::default();
        for (i, r) in gprs(&mut regs).into_iter().enumerate() {
            *r = rd(b, u + i * 8);
        }
        regs.rip = rd(b, u + REGS_RIP);
        regs.cs = u64::from(u16::from_le_bytes([b[u + REGS_CS], b[u + REGS_CS + 1]]));
        regs.rflags = rd(b, u + REGS_RFLAGS);
        regs.rsp = rd(b, u + REGS_RSP);
        regs.ss = u64::from(u16::from_le_bytes([b[u + REGS_SS], b[u + REGS_SS + 1]]));
        let traps = core::array::from_fn(|i| {
            let t = &b[TRAP_CTXT + i * 16..TRAP_CTXT + i * 16 + 16];
            TrapInfo { vector: t[0], flags: t[1], cs: u16::from_le_bytes([t[2], t[3]]), address: rd(t, 8) }
        });
        VcpuGuestContext {
            flags: rd(b, FLAGS),
            regs,
            saved_upcall_mask: b[u + REGS_UPCALL_MASK],
            traps,
            ldt: (rd(b, LDT_BASE), rd(b, LDT_ENTS)),
            gdt_frames: core::array::from_fn(|i| rd(b, GDT_FRAMES + i * 8)),
            gdt_ents: rd(b, GDT_ENTS),
            kernel_ss: rd(b, KERNEL_SS),
            kernel_sp: rd(b, KERNEL_SP),
            ctrlreg: core::array::from_fn(|i| rd(b, CTRLREG + i * 8)),
            callbacks: [rd(b, EVENT_CALLBACK), rd(b, FAILSAFE_CALLBACK), rd(b, SYSCALL_CALLBACK)],
            vm_assist: rd(b, VM_ASSIST),
            bases: [rd(b, FS_BASE), rd(b, GS_BASE_KERNEL), rd(b, GS_BASE_USER)],
        }
    }

    /// Encode the context (fields xen-core does not keep are zero).
    pub fn encode(&self, b: &mut [u8; SIZE]) {
        b.fill(0);
        let u = USER_REGS;
        wr(b, FLAGS, self.flags);
        let mut regs = self.regs;
        for (i, r) in gprs(&mut regs).into_iter().enumerate() {
            wr(b, u + i * 8, *r);
        }
        wr(b, u + REGS_RIP, self.regs.rip);
        b[u + REGS_CS..u + REGS_CS + 2].copy_from_slice(&(self.regs.cs as u16).to_le_bytes());
        b[u + REGS_UPCALL_MASK] = self.saved_upcall_mask;
        wr(b, u + REGS_RFLAGS, self.regs.rflags);
        wr(b, u + REGS_RSP, self.regs.rsp);
        b[u + REGS_SS..u + REGS_SS + 2].copy_from_slice(&(self.regs.ss as u16).to_le_bytes());
        for (i, t) in self.traps.iter().enumerate() {
            let o = TRAP_CTXT + i * 16;
            b[o] = t.vector;
            b[o + 1] = t.flags;
            b[o + 2..o + 4].copy_from_slice(&t.cs.to_le_bytes());
            wr(b, o + 8, t.address);
        }
        wr(b, LDT_BASE, self.ldt.0);
        wr(b, LDT_ENTS, self.ldt.1);
        for (i, f) in self.gdt_frames.iter().enumerate() {
            wr(b, GDT_FRAMES + i * 8, *f);
        }
        wr(b, GDT_ENTS, self.gdt_ents);
        wr(b, KERNEL_SS, self.kernel_ss);
        wr(b, KERNEL_SP, self.kernel_sp);
        for (i, c) in self.ctrlreg.iter().enumerate() {
            wr(b, CTRLREG + i * 8, *c);
        }
        wr(b, EVENT_CALLBACK, self.callbacks[0]);
        wr(b, FAILSAFE_CALLBACK, self.callbacks[1]);
        wr(b, SYSCALL_CALLBACK, self.callbacks[2]);
        wr(b, VM_ASSIST, self.vm_assist);
        wr(b, FS_BASE, self.bases[0]);
        wr(b, GS_BASE_KERNEL, self.bases[1]);
        wr(b, GS_BASE_USER, self.bases[2]);
    }

    /// Xen's `arch_set_info_guest` checks for a 64-bit PV vCPU: canonical
    /// RIP, RSP, kernel SP, LDT base, segment bases, callbacks and trap
    /// handlers; a page-aligned LDT of at most 8192 entries; at most 16
    /// GDT frames' worth of entries. `Err` is -EINVAL.
    pub fn check(&self) -> Result<(), BadContext> {
        let addrs = [self.regs.rip, self.regs.rsp, self.kernel_sp].into_iter().chain(self.bases).chain(self.callbacks);
        let ldt_ok = self.ldt.1 == 0 || (is_canonical(self.ldt.0) && self.ldt.0 & 0xfff == 0 && self.ldt.1 <= 8192);
        let traps_ok = self.traps.iter().all(|t| is_canonical(t.address));
        let all = addrs.into_iter().all(is_canonical) && ldt_ok && traps_ok && self.gdt_ents <= 16 * 512;
        if all { Ok(()) } else { Err(BadContext) }
    }
}

/// A vCPU context that Xen would refuse (-EINVAL).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadContext;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_match_xen_public_header() {
        // ABI: struct vcpu_guest_context (x86_64) is 5168 bytes; flags at
        // 512, user_regs (200 bytes) at 520, ctrlreg[3] at 5008, the
        // callbacks at 5112.., the segment bases at 5144...
        let mut b = [0u8; SIZE];
        wr(&mut b, FLAGS, vgcf::ONLINE | vgcf::IN_KERNEL);
        wr(&mut b, USER_REGS + 14 * 8, 0x1234); // rdi, last GPR
        wr(&mut b, USER_REGS + 13 * 8, 0x5678); // rsi
        wr(&mut b, USER_REGS + 4 * 8, 0xbb); // rbp
        wr(&mut b, 520 + 128, 0xffff_8000_0000_1000); // rip
        wr(&mut b, 5008, 0x42000); // ctrlreg[3]
        wr(&mut b, 5112, 0xffff_8000_0000_2000); // event callback
        wr(&mut b, 5160, 7); // gs_base_user, last field
        b[TRAP_CTXT + 14 * 16] = 14;
        wr(&mut b, TRAP_CTXT + 14 * 16 + 8, 0xffff_8000_0000_3000);
        let c = VcpuGuestContext::parse(&b);
        assert_eq!(c.flags, vgcf::ONLINE | vgcf::IN_KERNEL);
        assert_eq!((c.regs.rdi, c.regs.rsi, c.regs.rbp, c.regs.rip), (0x1234, 0x5678, 0xbb, 0xffff_8000_0000_1000));
        assert_eq!(c.ctrlreg[3], 0x42000);
        assert_eq!(c.callbacks[0], 0xffff_8000_0000_2000);
        assert_eq!(c.bases[2], 7);
        assert_eq!((c.traps[14].vector, c.traps[14].address), (14, 0xffff_8000_0000_3000));
        let mut again = [0u8; SIZE];
        c.encode(&mut again);
        assert!(again == b, "encode(parse(b)) == b");
    }

    #[test]
    fn non_canonical_addresses_are_rejected() {
        // ABI: arch_set_info_guest refuses non-canonical RIP, stacks,
        // callbacks, segment bases and trap handlers with -EINVAL.
        let ok = VcpuGuestContext::parse(&[0u8; SIZE]);
        assert_eq!(ok.check(), Ok(()));
        let bad = 0x0000_8000_0000_0000;
        let mut c = ok;
        c.regs.rip = bad;
        assert_eq!(c.check(), Err(BadContext));
        let mut c = ok;
        c.callbacks[2] = bad;
        assert_eq!(c.check(), Err(BadContext));
        let mut c = ok;
        c.traps[3].address = bad;
        assert_eq!(c.check(), Err(BadContext));
        let mut c = ok;
        c.ldt = (0x1001, 1);
        assert_eq!(c.check(), Err(BadContext), "unaligned LDT");
        c.ldt = (0x1000, 8193);
        assert_eq!(c.check(), Err(BadContext), "LDT too long");
    }
}
