//! Virtual CPU control: mirrors Xen 4.17's `public/vcpu.h`, together with the
//! x86_64 register and context structures of `arch-x86/xen.h` and
//! `arch-x86/xen-x86_64.h` (`trap_info`, `cpu_user_regs`,
//! `vcpu_guest_context`) that `VCPUOP_initialise` and the domctls take.
//!
//! Invariant: every structure has exactly the x86_64 size and field offsets
//! Xen 4.17 gives it (`vcpu_guest_context` is 5168 bytes), checked at compile
//! time by the assertions after it. `unsigned long` is u64.

use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

/// `VCPUOP_initialise`: set a down vCPU's [`VcpuGuestContext`].
pub const VCPUOP_INITIALISE: u64 = 0;
/// `VCPUOP_up`: start an initialised vCPU.
pub const VCPUOP_UP: u64 = 1;
/// `VCPUOP_down`: stop a vCPU.
pub const VCPUOP_DOWN: u64 = 2;
/// `VCPUOP_is_up`: returns 1 if the vCPU is up.
pub const VCPUOP_IS_UP: u64 = 3;
/// `VCPUOP_get_runstate_info`: [`VcpuRunstateInfo`].
pub const VCPUOP_GET_RUNSTATE_INFO: u64 = 4;
/// `VCPUOP_register_runstate_memory_area`: [`VcpuRegisterRunstateMemoryArea`].
pub const VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA: u64 = 5;
/// `VCPUOP_set_periodic_timer`: [`VcpuSetPeriodicTimer`].
pub const VCPUOP_SET_PERIODIC_TIMER: u64 = 6;
/// `VCPUOP_stop_periodic_timer`: no argument.
pub const VCPUOP_STOP_PERIODIC_TIMER: u64 = 7;
/// `VCPUOP_set_singleshot_timer`: [`VcpuSetSingleshotTimer`].
pub const VCPUOP_SET_SINGLESHOT_TIMER: u64 = 8;
/// `VCPUOP_stop_singleshot_timer`: no argument.
pub const VCPUOP_STOP_SINGLESHOT_TIMER: u64 = 9;
/// `VCPUOP_register_vcpu_info`: [`VcpuRegisterVcpuInfo`].
pub const VCPUOP_REGISTER_VCPU_INFO: u64 = 10;
/// `VCPUOP_send_nmi`: no argument.
pub const VCPUOP_SEND_NMI: u64 = 11;
/// `VCPUOP_get_physid`: [`VcpuGetPhysid`].
pub const VCPUOP_GET_PHYSID: u64 = 12;
/// `VCPUOP_register_vcpu_time_memory_area`: [`VcpuRegisterTimeMemoryArea`].
pub const VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA: u64 = 13;

/// `RUNSTATE_running`: on a physical CPU.
pub const RUNSTATE_RUNNING: i32 = 0;
/// `RUNSTATE_runnable`: waiting for a physical CPU.
pub const RUNSTATE_RUNNABLE: i32 = 1;
/// `RUNSTATE_blocked`: waiting for an event.
pub const RUNSTATE_BLOCKED: i32 = 2;
/// `RUNSTATE_offline`: neither runnable nor blocked (down, or paused).
pub const RUNSTATE_OFFLINE: i32 = 3;
/// `XEN_RUNSTATE_UPDATE`: set in `state_entry_time` while Xen updates the area.
pub const XEN_RUNSTATE_UPDATE: u64 = 1 << 63;

/// `VCPU_SSHOTTMR_future`: fail with `-ETIME` if the timeout has passed.
pub const VCPU_SSHOTTMR_FUTURE: u32 = 1 << 0;

/// `VGCF_i387_valid`: `fpu_ctxt` holds valid state.
pub const VGCF_I387_VALID: u64 = 1 << 0;
/// `VGCF_in_kernel`: the vCPU is in guest kernel mode.
pub const VGCF_IN_KERNEL: u64 = 1 << 2;
/// `VGCF_failsafe_disables_events`: mask events on entry to the failsafe callback.
pub const VGCF_FAILSAFE_DISABLES_EVENTS: u64 = 1 << 3;
/// `VGCF_syscall_disables_events`: mask events on entry to the syscall callback.
pub const VGCF_SYSCALL_DISABLES_EVENTS: u64 = 1 << 4;
/// `VGCF_online`: the vCPU is up.
pub const VGCF_ONLINE: u64 = 1 << 5;
/// `VGCF_in_syscall`: the guest left in SYSCALL context (x86_64).
pub const VGCF_IN_SYSCALL: u64 = 1 << 8;

bitflags::bitflags! {
    /// `vcpu_guest_context.flags` (`VGCF_*`) as a set, for code that
    /// decides on them; [`VcpuGuestContext::flags`] stays a raw `u64` (the
    /// wire format). `IN_SYSCALL` is also the flag of `iret_context.flags`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct VgcfFlags: u64 {
        /// `VGCF_i387_valid`.
        const I387_VALID = VGCF_I387_VALID;
        /// `VGCF_in_kernel`.
        const IN_KERNEL = VGCF_IN_KERNEL;
        /// `VGCF_failsafe_disables_events`.
        const FAILSAFE_DISABLES_EVENTS = VGCF_FAILSAFE_DISABLES_EVENTS;
        /// `VGCF_syscall_disables_events`.
        const SYSCALL_DISABLES_EVENTS = VGCF_SYSCALL_DISABLES_EVENTS;
        /// `VGCF_online`.
        const ONLINE = VGCF_ONLINE;
        /// `VGCF_in_syscall`.
        const IN_SYSCALL = VGCF_IN_SYSCALL;
    }
}

/// `trap_info.flags`: mask of the DPL bits.
pub const TI_DPL_MASK: u8 = 3;
/// `trap_info.flags`: clear the event mask on entry (`TI_SET_IF`).
pub const TI_IF: u8 = 4;

/// `struct vcpu_runstate_info`: time a vCPU spent in each run state.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuRunstateInfo {
    /// Current `RUNSTATE_*`.
    pub state: i32,
    /// Padding; zero.
    pub _pad0: u32,
    /// System time (ns) the state was entered, with [`XEN_RUNSTATE_UPDATE`].
    pub state_entry_time: u64,
    /// Total ns spent in each state.
    pub time: [u64; 4],
}
const _: () = assert!(core::mem::size_of::<VcpuRunstateInfo>() == 48);
const _: () = assert!(core::mem::offset_of!(VcpuRunstateInfo, state_entry_time) == 8);
const _: () = assert!(core::mem::offset_of!(VcpuRunstateInfo, time) == 16);

/// `struct vcpu_register_runstate_memory_area`: where Xen keeps a copy of
/// [`VcpuRunstateInfo`] up to date.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuRegisterRunstateMemoryArea {
    /// The union `addr` (handle / pointer / u64): guest virtual address.
    pub addr: u64,
}
const _: () = assert!(core::mem::size_of::<VcpuRegisterRunstateMemoryArea>() == 8);

/// `struct vcpu_set_periodic_timer`.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuSetPeriodicTimer {
    /// Period in ns.
    pub period_ns: u64,
}
const _: () = assert!(core::mem::size_of::<VcpuSetPeriodicTimer>() == 8);

/// `struct vcpu_set_singleshot_timer`.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuSetSingleshotTimer {
    /// Absolute system time (ns) to fire at.
    pub timeout_abs_ns: u64,
    /// `VCPU_SSHOTTMR_*`.
    pub flags: u32,
    /// Padding; zero.
    pub _pad0: u32,
}
const _: () = assert!(core::mem::size_of::<VcpuSetSingleshotTimer>() == 16);
const _: () = assert!(core::mem::offset_of!(VcpuSetSingleshotTimer, flags) == 8);

/// `struct vcpu_register_vcpu_info`: move a vCPU's `vcpu_info` out of the
/// shared info page.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuRegisterVcpuInfo {
    /// Frame of the page to hold it.
    pub mfn: u64,
    /// Byte offset in that page.
    pub offset: u32,
    /// Unused; zero.
    pub rsvd: u32,
}
const _: () = assert!(core::mem::size_of::<VcpuRegisterVcpuInfo>() == 16);
const _: () = assert!(core::mem::offset_of!(VcpuRegisterVcpuInfo, offset) == 8);

/// `struct vcpu_get_physid`: the physical CPU ids behind a vCPU.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuGetPhysid {
    /// x86: APIC id in bits 0-31, ACPI id in bits 32-63.
    pub phys_id: u64,
}
const _: () = assert!(core::mem::size_of::<VcpuGetPhysid>() == 8);

impl VcpuGetPhysid {
    /// `xen_vcpu_physid_to_x86_apicid`.
    pub fn x86_apicid(&self) -> u32 {
        self.phys_id as u32
    }
    /// `xen_vcpu_physid_to_x86_acpiid`.
    pub fn x86_acpiid(&self) -> u32 {
        (self.phys_id >> 32) as u32
    }
}

/// `struct vcpu_register_time_memory_area`: where Xen keeps a copy of the
/// vCPU's time info.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuRegisterTimeMemoryArea {
    /// The union `addr`: guest virtual address.
    pub addr: u64,
}
const _: () = assert!(core::mem::size_of::<VcpuRegisterTimeMemoryArea>() == 8);

/// `struct trap_info` (arch-x86): one virtual IDT entry, as `set_trap_table`
/// and `vcpu_guest_context.trap_ctxt` hold them.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrapInfo {
    /// Exception vector.
    pub vector: u8,
    /// Bits 0-1: DPL; bit 2 ([`TI_IF`]): mask events on entry.
    pub flags: u8,
    /// Code selector.
    pub cs: u16,
    /// Padding; zero.
    pub _pad0: u32,
    /// Handler address (0 ends a `set_trap_table` list).
    pub address: u64,
}
const _: () = assert!(core::mem::size_of::<TrapInfo>() == 16);
const _: () = assert!(core::mem::offset_of!(TrapInfo, cs) == 2);
const _: () = assert!(core::mem::offset_of!(TrapInfo, address) == 8);

/// `struct cpu_user_regs` for x86_64 (arch-x86/xen-x86_64.h).
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuUserRegs {
    /// r15.
    pub r15: u64,
    /// r14.
    pub r14: u64,
    /// r13.
    pub r13: u64,
    /// r12.
    pub r12: u64,
    /// rbp.
    pub rbp: u64,
    /// rbx.
    pub rbx: u64,
    /// r11.
    pub r11: u64,
    /// r10.
    pub r10: u64,
    /// r9.
    pub r9: u64,
    /// r8.
    pub r8: u64,
    /// rax.
    pub rax: u64,
    /// rcx.
    pub rcx: u64,
    /// rdx.
    pub rdx: u64,
    /// rsi.
    pub rsi: u64,
    /// rdi.
    pub rdi: u64,
    /// Xen-private: exception error code.
    pub error_code: u32,
    /// Xen-private: vector of the entry.
    pub entry_vector: u32,
    /// rip.
    pub rip: u64,
    /// cs.
    pub cs: u16,
    /// Padding; zero.
    pub _pad0: u16,
    /// Event mask saved by a bounce (rflags.IF is its inverse).
    pub saved_upcall_mask: u8,
    /// Padding; zero.
    pub _pad1: [u8; 3],
    /// rflags.
    pub rflags: u64,
    /// rsp.
    pub rsp: u64,
    /// ss.
    pub ss: u16,
    /// Padding; zero.
    pub _pad2: [u16; 3],
    /// es.
    pub es: u16,
    /// Padding; zero.
    pub _pad3: [u16; 3],
    /// ds.
    pub ds: u16,
    /// Padding; zero.
    pub _pad4: [u16; 3],
    /// fs.
    pub fs: u16,
    /// Padding; zero.
    pub _pad5: [u16; 3],
    /// gs.
    pub gs: u16,
    /// Padding; zero.
    pub _pad6: [u16; 3],
}
const _: () = assert!(core::mem::size_of::<CpuUserRegs>() == 200);
const _: () = assert!(core::mem::offset_of!(CpuUserRegs, rbp) == 32);
const _: () = assert!(core::mem::offset_of!(CpuUserRegs, rax) == 80);
const _: () = assert!(core::mem::offset_of!(CpuUserRegs, rdi) == 112);
const _: () = assert!(core::mem::offset_of!(CpuUserRegs, error_code) == 120);
const _: () = assert!(core::mem::offset_of!(CpuUserRegs, entry_vector) == 124);
const _: () = assert!(core::mem::offset_of!(CpuUserRegs, rip) == 128);
const _: () = assert!(core::mem::offset_of!(CpuUserRegs, cs) == 136);
const _: () = assert!(core::mem::offset_of!(CpuUserRegs, saved_upcall_mask) == 140);
const _: () = assert!(core::mem::offset_of!(CpuUserRegs, rflags) == 144);
const _: () = assert!(core::mem::offset_of!(CpuUserRegs, rsp) == 152);
const _: () = assert!(core::mem::offset_of!(CpuUserRegs, ss) == 160);
const _: () = assert!(core::mem::offset_of!(CpuUserRegs, es) == 168);
const _: () = assert!(core::mem::offset_of!(CpuUserRegs, ds) == 176);
const _: () = assert!(core::mem::offset_of!(CpuUserRegs, fs) == 184);
const _: () = assert!(core::mem::offset_of!(CpuUserRegs, gs) == 192);

/// `struct vcpu_guest_context` for a 64-bit PV guest (arch-x86/xen.h): the
/// full state `VCPUOP_initialise` and `XEN_DOMCTL_{set,get}vcpucontext` move.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, PartialEq, Eq)]
pub struct VcpuGuestContext {
    /// FXSAVE image of the FPU/SSE state.
    pub fpu_ctxt: [u8; 512],
    /// `VGCF_*`.
    pub flags: u64,
    /// General registers.
    pub user_regs: CpuUserRegs,
    /// The virtual IDT.
    pub trap_ctxt: [TrapInfo; 256],
    /// LDT linear address.
    pub ldt_base: u64,
    /// LDT entries.
    pub ldt_ents: u64,
    /// Machine frames of the GDT.
    pub gdt_frames: [u64; 16],
    /// GDT entries.
    pub gdt_ents: u64,
    /// Kernel stack selector (virtual TSS SS1).
    pub kernel_ss: u64,
    /// Kernel stack pointer (virtual TSS SP1).
    pub kernel_sp: u64,
    /// CR0-CR7; CR3 is the kernel page-table base (`xen_pfn_to_cr3`), CR1 the
    /// user one.
    pub ctrlreg: [u64; 8],
    /// DR0-DR7.
    pub debugreg: [u64; 8],
    /// Event upcall entry point.
    pub event_callback_eip: u64,
    /// Failsafe callback entry point.
    pub failsafe_callback_eip: u64,
    /// 64-bit SYSCALL callback entry point.
    pub syscall_callback_eip: u64,
    /// `VMASST_TYPE_*` bitmap.
    pub vm_assist: u64,
    /// FS base.
    pub fs_base: u64,
    /// Kernel GS base.
    pub gs_base_kernel: u64,
    /// User GS base.
    pub gs_base_user: u64,
}
const _: () = assert!(core::mem::size_of::<VcpuGuestContext>() == 5168);
const _: () = assert!(core::mem::offset_of!(VcpuGuestContext, flags) == 512);
const _: () = assert!(core::mem::offset_of!(VcpuGuestContext, user_regs) == 520);
const _: () = assert!(core::mem::offset_of!(VcpuGuestContext, trap_ctxt) == 720);
const _: () = assert!(core::mem::offset_of!(VcpuGuestContext, ldt_base) == 4816);
const _: () = assert!(core::mem::offset_of!(VcpuGuestContext, ldt_ents) == 4824);
const _: () = assert!(core::mem::offset_of!(VcpuGuestContext, gdt_frames) == 4832);
const _: () = assert!(core::mem::offset_of!(VcpuGuestContext, gdt_ents) == 4960);
const _: () = assert!(core::mem::offset_of!(VcpuGuestContext, kernel_ss) == 4968);
const _: () = assert!(core::mem::offset_of!(VcpuGuestContext, kernel_sp) == 4976);
const _: () = assert!(core::mem::offset_of!(VcpuGuestContext, ctrlreg) == 4984);
const _: () = assert!(core::mem::offset_of!(VcpuGuestContext, debugreg) == 5048);
const _: () = assert!(core::mem::offset_of!(VcpuGuestContext, event_callback_eip) == 5112);
const _: () = assert!(core::mem::offset_of!(VcpuGuestContext, failsafe_callback_eip) == 5120);
const _: () = assert!(core::mem::offset_of!(VcpuGuestContext, syscall_callback_eip) == 5128);
const _: () = assert!(core::mem::offset_of!(VcpuGuestContext, vm_assist) == 5136);
const _: () = assert!(core::mem::offset_of!(VcpuGuestContext, fs_base) == 5144);
const _: () = assert!(core::mem::offset_of!(VcpuGuestContext, gs_base_kernel) == 5152);
const _: () = assert!(core::mem::offset_of!(VcpuGuestContext, gs_base_user) == 5160);

impl Default for VcpuGuestContext {
    fn default() -> Self {
        Self::new_zeroed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ABI rule: VGCF_i387_valid is bit 0, in_kernel 2,
    /// failsafe_disables_events 3, syscall_disables_events 4, online 5,
    /// in_syscall 8 (bit 1 is unused on x86_64).
    #[test]
    fn vgcf_flags_at_xen_bits() {
        assert_eq!(VgcfFlags::all().bits(), 0b1_0011_1101);
        assert_eq!((VgcfFlags::ONLINE | VgcfFlags::IN_KERNEL).bits(), 0x24);
        assert!(VgcfFlags::from_bits_retain(0x102).contains(VgcfFlags::IN_SYSCALL));
    }

    /// ABI rule: in `vcpu_guest_context` CR3 is `ctrlreg[3]` at byte 5008,
    /// the registers start at 520 with rip at 520 + 128, and the trap table
    /// at 720 in 16-byte entries.
    #[test]
    fn guest_context_fields_at_xen_offsets() {
        let mut c = VcpuGuestContext::default();
        c.ctrlreg[3] = 0x0012_3000;
        c.user_regs.rip = 0xffff_ffff_8000_0000;
        c.trap_ctxt[14] = TrapInfo { vector: 14, flags: TI_IF | 3, cs: 0xe033, _pad0: 0, address: 0xffff_ffff_8000_1000 };
        c.gs_base_user = 7;
        let b = c.as_bytes();
        assert_eq!(&b[5008..5016], &0x0012_3000u64.to_le_bytes());
        assert_eq!(&b[648..656], &0xffff_ffff_8000_0000u64.to_le_bytes());
        let t = 720 + 14 * 16;
        assert_eq!(&b[t..t + 4], &[14, 7, 0x33, 0xe0]);
        assert_eq!(&b[t + 8..t + 16], &0xffff_ffff_8000_1000u64.to_le_bytes());
        assert_eq!(&b[5160..5168], &7u64.to_le_bytes());
        assert_eq!(VcpuGuestContext::read_from_bytes(b).unwrap(), c);
    }

    /// ABI rule: `vcpu_runstate_info` has its u64s 8-aligned: state @0,
    /// state_entry_time @8, time[4] @16, 48 bytes.
    #[test]
    fn runstate_info_round_trips() {
        let r = VcpuRunstateInfo { state: RUNSTATE_BLOCKED, _pad0: 0, state_entry_time: XEN_RUNSTATE_UPDATE | 5, time: [1, 2, 3, 4] };
        let b = r.as_bytes();
        assert_eq!(&b[0..4], &2i32.to_le_bytes());
        assert_eq!(b[15], 0x80);
        assert_eq!(&b[40..48], &4u64.to_le_bytes());
        assert_eq!(VcpuRunstateInfo::read_from_bytes(b).unwrap(), r);
    }

    /// ABI rule: x86 physid packs the APIC id in bits 0-31 and the ACPI id
    /// in bits 32-63.
    #[test]
    fn physid_splits_apic_and_acpi_ids() {
        let p = VcpuGetPhysid { phys_id: (5 << 32) | 9 };
        assert_eq!((p.x86_apicid(), p.x86_acpiid()), (9, 5));
    }
}
