//! Hypercall numbers (`__HYPERVISOR_*` of Xen 4.17's `public/xen.h`) and
//! the hypercall page layout.
//!
//! Invariant: every number is Xen's, and the page is 128 stubs of 32 bytes.

/// `set_trap_table(trap_info *)`.
pub const SET_TRAP_TABLE: u64 = 0;
/// `mmu_update(reqs, count, done, foreigndom)`.
pub const MMU_UPDATE: u64 = 1;
/// `set_gdt(frames, entries)`.
pub const SET_GDT: u64 = 2;
/// `stack_switch(ss, rsp)`.
pub const STACK_SWITCH: u64 = 3;
/// `set_callbacks(event, failsafe, syscall)`.
pub const SET_CALLBACKS: u64 = 4;
/// `fpu_taskswitch(set)`.
pub const FPU_TASKSWITCH: u64 = 5;
/// Old `sched_op` interface.
pub const SCHED_OP_COMPAT: u64 = 6;
/// `platform_op`.
pub const PLATFORM_OP: u64 = 7;
/// `set_debugreg`.
pub const SET_DEBUGREG: u64 = 8;
/// `get_debugreg`.
pub const GET_DEBUGREG: u64 = 9;
/// `update_descriptor(maddr, desc)`.
pub const UPDATE_DESCRIPTOR: u64 = 10;
/// `memory_op(cmd, arg)`.
pub const MEMORY_OP: u64 = 12;
/// `multicall(list, nr)`.
pub const MULTICALL: u64 = 13;
/// `update_va_mapping(va, pte, flags)`.
pub const UPDATE_VA_MAPPING: u64 = 14;
/// `set_timer_op(abs_ns)`.
pub const SET_TIMER_OP: u64 = 15;
/// Old `event_channel_op` interface.
pub const EVENT_CHANNEL_OP_COMPAT: u64 = 16;
/// `xen_version(cmd, arg)`.
pub const XEN_VERSION: u64 = 17;
/// `console_io(cmd, count, buffer)`.
pub const CONSOLE_IO: u64 = 18;
/// Old `physdev_op` interface.
pub const PHYSDEV_OP_COMPAT: u64 = 19;
/// `grant_table_op(cmd, uop, count)`.
pub const GRANT_TABLE_OP: u64 = 20;
/// `vm_assist(cmd, type)`.
pub const VM_ASSIST: u64 = 21;
/// `update_va_mapping_otherdomain`.
pub const UPDATE_VA_MAPPING_OTHERDOMAIN: u64 = 22;
/// `iret` (never returns).
pub const IRET: u64 = 23;
/// `vcpu_op(cmd, vcpuid, arg)`.
pub const VCPU_OP: u64 = 24;
/// `set_segment_base(which, base)`.
pub const SET_SEGMENT_BASE: u64 = 25;
/// `mmuext_op(ops, count, done, foreigndom)`.
pub const MMUEXT_OP: u64 = 26;
/// `xsm_op`.
pub const XSM_OP: u64 = 27;
/// `nmi_op`.
pub const NMI_OP: u64 = 28;
/// `sched_op(cmd, arg)`.
pub const SCHED_OP: u64 = 29;
/// `callback_op(cmd, arg)`.
pub const CALLBACK_OP: u64 = 30;
/// `xenoprof_op`.
pub const XENOPROF_OP: u64 = 31;
/// `event_channel_op(cmd, arg)`.
pub const EVENT_CHANNEL_OP: u64 = 32;
/// `physdev_op(cmd, arg)`.
pub const PHYSDEV_OP: u64 = 33;
/// `hvm_op`.
pub const HVM_OP: u64 = 34;
/// `sysctl(op)`.
pub const SYSCTL: u64 = 35;
/// `domctl(op)`.
pub const DOMCTL: u64 = 36;
/// `kexec_op`.
pub const KEXEC_OP: u64 = 37;

/// Number of stubs in the hypercall page.
pub const PAGE_STUBS: usize = 128;
/// Size of one hypercall-page stub in bytes.
pub const STUB_SIZE: usize = 32;
