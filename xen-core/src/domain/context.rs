//! `struct vcpu_guest_context` (x86_64), the argument of
//! XEN_DOMCTL_setvcpucontext and XEN_DOMCTL_getvcpucontext: the fields
//! xen-core uses, taken from and put into the wire layout
//! (`xen_public::vcpu::VcpuGuestContext`, whose offsets are asserted
//! against Xen 4.17's headers at compile time).
//!
//! Pure logic. Invariants: [`VcpuGuestContext::parse`] and
//! [`VcpuGuestContext::encode`] are inverse on the fields kept (the others
//! encode as zero); [`VcpuGuestContext::check`] applies Xen's
//! canonical-address rules.
#![forbid(unsafe_code)]

use super::vcpu::{CpuUserRegs, TrapInfo, is_canonical};
use xen_public::vcpu as wire;
pub use xen_public::vcpu::VgcfFlags;

/// The decoded context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VcpuGuestContext {
    /// `VGCF_*` (bits no `VGCF_*` names kept, so encode gives them back).
    pub flags: VgcfFlags,
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
    /// DR0-DR7.
    pub debugreg: [u64; 8],
    /// Event, failsafe and syscall callback addresses.
    pub callbacks: [u64; 3],
    /// `VMASST_TYPE_*` bitmap.
    pub vm_assist: u64,
    /// FS base, kernel GS base, user GS base.
    pub bases: [u64; 3],
}

impl VcpuGuestContext {
    /// Take the fields xen-core keeps from the wire layout.
    pub fn parse(w: &wire::VcpuGuestContext) -> VcpuGuestContext {
        let u = &w.user_regs;
        let regs = CpuUserRegs {
            r15: u.r15,
            r14: u.r14,
            r13: u.r13,
            r12: u.r12,
            rbp: u.rbp,
            rbx: u.rbx,
            r11: u.r11,
            r10: u.r10,
            r9: u.r9,
            r8: u.r8,
            rax: u.rax,
            rcx: u.rcx,
            rdx: u.rdx,
            rsi: u.rsi,
            rdi: u.rdi,
            rip: u.rip,
            cs: u64::from(u.cs),
            rflags: u.rflags,
            rsp: u.rsp,
            ss: u64::from(u.ss),
            ..CpuUserRegs::default()
        };
        let traps = w.trap_ctxt.map(|t| TrapInfo { vector: t.vector, flags: t.flags, cs: t.cs, address: t.address });
        VcpuGuestContext {
            flags: VgcfFlags::from_bits_retain(w.flags),
            regs,
            saved_upcall_mask: u.saved_upcall_mask,
            traps,
            ldt: (w.ldt_base, w.ldt_ents),
            gdt_frames: w.gdt_frames,
            gdt_ents: w.gdt_ents,
            kernel_ss: w.kernel_ss,
            kernel_sp: w.kernel_sp,
            ctrlreg: w.ctrlreg,
            debugreg: w.debugreg,
            callbacks: [w.event_callback_eip, w.failsafe_callback_eip, w.syscall_callback_eip],
            vm_assist: w.vm_assist,
            bases: [w.fs_base, w.gs_base_kernel, w.gs_base_user],
        }
    }

    /// The wire layout of the context (fields xen-core does not keep are
    /// zero).
    pub fn encode(&self) -> wire::VcpuGuestContext {
        let r = &self.regs;
        let user_regs = wire::CpuUserRegs {
            r15: r.r15,
            r14: r.r14,
            r13: r.r13,
            r12: r.r12,
            rbp: r.rbp,
            rbx: r.rbx,
            r11: r.r11,
            r10: r.r10,
            r9: r.r9,
            r8: r.r8,
            rax: r.rax,
            rcx: r.rcx,
            rdx: r.rdx,
            rsi: r.rsi,
            rdi: r.rdi,
            rip: r.rip,
            cs: r.cs as u16,
            saved_upcall_mask: self.saved_upcall_mask,
            rflags: r.rflags,
            rsp: r.rsp,
            ss: r.ss as u16,
            ..Default::default()
        };
        let trap_ctxt = self.traps.map(|t| wire::TrapInfo { vector: t.vector, flags: t.flags, cs: t.cs, address: t.address, ..Default::default() });
        wire::VcpuGuestContext {
            flags: self.flags.bits(),
            user_regs,
            trap_ctxt,
            ldt_base: self.ldt.0,
            ldt_ents: self.ldt.1,
            gdt_frames: self.gdt_frames,
            gdt_ents: self.gdt_ents,
            kernel_ss: self.kernel_ss,
            kernel_sp: self.kernel_sp,
            ctrlreg: self.ctrlreg,
            debugreg: self.debugreg,
            event_callback_eip: self.callbacks[0],
            failsafe_callback_eip: self.callbacks[1],
            syscall_callback_eip: self.callbacks[2],
            vm_assist: self.vm_assist,
            fs_base: self.bases[0],
            gs_base_kernel: self.bases[1],
            gs_base_user: self.bases[2],
            ..zerocopy::FromZeros::new_zeroed()
        }
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

    /// A context as bytes, written at Xen 4.17's offsets.
    fn wr(b: &mut [u8], off: usize, v: u64) {
        b[off..off + 8].copy_from_slice(&v.to_le_bytes());
    }

    #[test]
    fn offsets_match_xen_public_header() {
        // ABI: struct vcpu_guest_context (x86_64) is 5168 bytes; flags at
        // 512, user_regs (200 bytes) at 520 with rdi at +112 and rip at
        // +128, trap_ctxt at 720, ctrlreg[3] at 5008, the callbacks at
        // 5112.., the segment bases at 5144...
        use zerocopy::{FromBytes, IntoBytes};
        let mut b = [0u8; 5168];
        wr(&mut b, 512, (VgcfFlags::ONLINE | VgcfFlags::IN_KERNEL).bits());
        wr(&mut b, 520 + 14 * 8, 0x1234); // rdi, last GPR
        wr(&mut b, 520 + 13 * 8, 0x5678); // rsi
        wr(&mut b, 520 + 4 * 8, 0xbb); // rbp
        wr(&mut b, 520 + 128, 0xffff_8000_0000_1000); // rip
        wr(&mut b, 5008, 0x42000); // ctrlreg[3]
        wr(&mut b, 5112, 0xffff_8000_0000_2000); // event callback
        wr(&mut b, 5160, 7); // gs_base_user, last field
        b[720 + 14 * 16] = 14;
        wr(&mut b, 720 + 14 * 16 + 8, 0xffff_8000_0000_3000);
        let w = wire::VcpuGuestContext::read_from_bytes(&b[..]).unwrap();
        let c = VcpuGuestContext::parse(&w);
        assert_eq!(c.flags, VgcfFlags::ONLINE | VgcfFlags::IN_KERNEL);
        assert_eq!((c.regs.rdi, c.regs.rsi, c.regs.rbp, c.regs.rip), (0x1234, 0x5678, 0xbb, 0xffff_8000_0000_1000));
        assert_eq!(c.ctrlreg[3], 0x42000);
        assert_eq!(c.callbacks[0], 0xffff_8000_0000_2000);
        assert_eq!(c.bases[2], 7);
        assert_eq!((c.traps[14].vector, c.traps[14].address), (14, 0xffff_8000_0000_3000));
        assert!(c.encode().as_bytes() == &b[..], "encode(parse(b)) == b");
    }

    #[test]
    fn non_canonical_addresses_are_rejected() {
        // ABI: arch_set_info_guest refuses non-canonical RIP, stacks,
        // callbacks, segment bases and trap handlers with -EINVAL.
        let ok = VcpuGuestContext::parse(&zerocopy::FromZeros::new_zeroed());
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
