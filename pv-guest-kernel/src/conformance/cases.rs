//! The cases. Each states the ABI rule it checks in its name and runs as
//! dom0 (or any PV domain). The list is the single source for the suite,
//! `docs/conformance.md` and the report.

use super::{CaseInfo, Difference, Kind};

macro_rules! cases {
    ($( $name:ident ($hc:literal, $subop:literal, $kind:ident) $body:block )*) => {
        /// This file's cases, in run order.
        pub const LIST: &[CaseInfo] = &[
            $( CaseInfo { name: stringify!($name), hypercall: $hc, subop: $subop, kind: Kind::$kind }, )*
        ];

        #[cfg(target_os = "none")]
        #[allow(clippy::unreadable_literal)]
        mod bodies {
            use super::super::Outcome;
            #[allow(unused_imports)]
            use super::super::ctx::*;
            use super::helpers::*;
            $( pub fn $name() -> Outcome $body )*
        }

        /// The case functions, parallel to `LIST`.
        #[cfg(target_os = "none")]
        pub const FNS: &[fn() -> super::Outcome] = &[ $( bodies::$name, )* ];
    };
}
pub(super) use cases;

#[cfg(target_os = "none")]
pub(super) mod helpers {
    pub use crate::hypercall::{current_reservation, decrease_reservation, increase_reservation, maximum_reservation, xen_version_op};
    pub use crate::traps::{Probe, handler_entry, probe};
    pub use xen_public::callback::CallbackRegister;
    pub use xen_public::domctl::{
        XEN_DOMCTL_CREATEDOMAIN, XEN_DOMCTL_GETVCPUINFO, XEN_DOMCTL_MAX_MEM, XEN_DOMCTL_MAX_VCPUS, XEN_DOMCTL_SCHEDULER_OP, XEN_DOMINF_RUNNING,
        XEN_SCHEDULER_CREDIT, XenDomctl, XenDomctlCreatedomain, XenDomctlGetdomaininfo, XenDomctlGetvcpuinfo, XenDomctlHypercallInit,
        XenDomctlMaxMem, XenDomctlMaxVcpus, XenDomctlSchedCredit, XenDomctlSchedulerOp, XenDomctlVcpucontext,
    };
    pub use xen_public::errno::*;
    pub use xen_public::event_channel::{
        EVTCHNSTAT_CLOSED, EVTCHNSTAT_INTERDOMAIN, EVTCHNSTAT_UNBOUND, EvtchnAllocUnbound, EvtchnBindIpi, EvtchnBindVirq, EvtchnReset, EvtchnStatus,
    };
    pub use xen_public::grant_table::{
        GNTMAP_APPLICATION_MAP, GNTMAP_DEVICE_MAP, GNTTABOP_SETUP_TABLE, GnttabDumpTable, GnttabGetVersion, GnttabMapGrantRef, GnttabQuerySize,
        GnttabSetVersion, GnttabSetupTable, GnttabUnmapGrantRef,
    };
    pub use xen_public::hypercall as nr;
    pub use xen_public::sysctl::{XenSysctl, XenSysctlGetdomaininfolist, XenSysctlPhysinfo, XenSysctlSchedId};
    pub use xen_public::vcpu::{TrapInfo, VCPU_SSHOTTMR_FUTURE, VcpuGuestContext, VcpuSetSingleshotTimer};
    pub use xen_public::version::{
        XENFEAT_DOM0, XenCapabilitiesInfo, XenChangesetInfo, XenCompileInfo, XenExtraversion, XenFeatureInfo, XenPlatformParameters,
    };
    pub use xen_public::{MmuUpdate, MmuextOp, MulticallEntry, SharedInfo, VcpuInfo};

    /// A guest-kernel address that is never mapped.
    pub const UNMAPPED: u64 = 0xdead_0000;
    /// The hypervisor's direct map: never guest memory.
    pub const XEN_VA: u64 = 0xffff_8300_0000_0000;
    /// A non-canonical address.
    pub const NONCANON: u64 = 0x8000_0000_0000_0000;
    /// P | RW | US | A | D.
    pub const PTE_RW: u64 = 0x67;
    /// P | US | A.
    pub const PTE_RO: u64 = 0x25;
    /// UVMF_INVLPG.
    pub const INVLPG: u64 = 2;

    /// Set one trap-table entry for `vector` with the runtime's handler.
    pub fn set_entry(vector: u8, dpl: u8) -> i64 {
        let e = handler_entry(vector, dpl).unwrap_or_default();
        crate::hypercall::set_trap_table(&[e, TrapInfo::default()])
    }

    /// `callback_op(cmd, {type, flags, address})` (a `callback_register`,
    /// whose first member is also all of a `callback_unregister`).
    pub fn callback(cmd: u64, kind: u16, flags: u16, address: u64) -> i64 {
        let reg = CallbackRegister { type_: kind, flags, _pad0: 0, address };
        super::super::ctx::call(nr::CALLBACK_OP, cmd, super::super::ctx::ptr(&reg), 0, 0, 0)
    }

    /// A canonical guest text address usable as a callback.
    pub fn some_handler() -> u64 {
        handler_entry(3, 0).map_or(0, |t| t.address)
    }

    /// `update_va_mapping(va, pte, INVLPG)`.
    pub fn uvm(va: u64, pte: u64) -> i64 {
        super::super::ctx::call(nr::UPDATE_VA_MAPPING, va, pte, INVLPG, 0, 0)
    }

    /// One `mmuext_op` `{cmd, arg1}` with a `done` pointer and foreign domain.
    pub fn mmuext(cmd: u32, arg1: u64, done: u64, dom: u64) -> i64 {
        let op = MmuextOp { cmd, arg1, ..Default::default() };
        super::super::ctx::call(nr::MMUEXT_OP, super::super::ctx::ptr(&op), 1, done, dom, 0)
    }

    /// `vm_assist(cmd, type)`.
    pub fn vm_assist(cmd: u64, kind: u64) -> i64 {
        super::super::ctx::call(nr::VM_ASSIST, cmd, kind, 0, 0, 0)
    }

    /// A spare page as `(va, mfn)`.
    pub fn page() -> Option<(u64, u64)> {
        let va = super::super::ctx::spare_page()?;
        Some((va, super::super::ctx::mfn_of(va)))
    }

    /// One `mmu_update` request: `(rc, done)`.
    pub fn mmu1(ptr: u64, val: u64) -> (i64, u32) {
        crate::mm::mmu_update(&[MmuUpdate { ptr, val }])
    }

    /// Machine address of entry `idx` of the table in `mfn`.
    pub fn slot(mfn: u64, idx: usize) -> u64 {
        (mfn << 12) + idx as u64 * 8
    }

    /// `mmuext_op` PIN of `level` on `mfn`.
    pub fn pin(mfn: u64, level: u32) -> i64 {
        mmuext(level - 1, mfn, 0, 0x7ff0)
    }

    /// `mmuext_op` UNPIN.
    pub fn unpin(mfn: u64) -> i64 {
        mmuext(4, mfn, 0, 0x7ff0)
    }

    /// Make the spare page at `va` read-only, so it can become a table.
    pub fn read_only(va: u64, mfn: u64) -> i64 {
        uvm(va, (mfn << 12) | PTE_RO)
    }

    /// Make it writable again.
    pub fn writable(va: u64, mfn: u64) -> i64 {
        uvm(va, (mfn << 12) | PTE_RW)
    }

    /// A `xen_domctl` for `cmd` on `dom` with interface version `version`
    /// (Xen 4.17's is 0x15) and a zeroed payload.
    pub fn domctl_op(cmd: u32, version: u32, dom: u16) -> XenDomctl {
        let mut d = XenDomctl::new(cmd, dom);
        d.interface_version = version;
        d
    }

    /// Issue `op`; its payload's handles are the case's own buffers or
    /// addresses the hypervisor must refuse.
    pub fn domctl(op: &mut XenDomctl) -> i64 {
        super::super::ctx::call(nr::DOMCTL, super::super::ctx::ptr_mut(op), 0, 0, 0, 0)
    }

    /// Issue `op`, as [`domctl`].
    pub fn sysctl(op: &mut XenSysctl) -> i64 {
        super::super::ctx::call(nr::SYSCTL, super::super::ctx::ptr_mut(op), 0, 0, 0, 0)
    }

    /// XEN_DOMCTL_createdomain of a PV domain with one vCPU: the new id.
    pub fn create_domain(requested: u16) -> Result<u16, i64> {
        let mut op = domctl_op(XEN_DOMCTL_CREATEDOMAIN, 0x15, requested);
        // Grant table v1 only; -1: the default number of frames.
        op.set_payload(&XenDomctlCreatedomain {
            max_vcpus: 1,
            max_evtchn_port: 1023,
            max_grant_frames: -1,
            max_maptrack_frames: -1,
            grant_opts: 1,
            ..Default::default()
        });
        let r = domctl(&mut op);
        if r != 0 { Err(r) } else { Ok(op.domain) }
    }

    /// A simple domctl on `dom`: the return value.
    pub fn domctl_simple(cmd: u32, dom: u16) -> i64 {
        domctl(&mut domctl_op(cmd, 0x15, dom))
    }

    /// getdomaininfo of `dom`: `(domain, flags, tot_pages)` or the error.
    pub fn domain_info(dom: u16) -> Result<(u16, u32, u64), i64> {
        let mut op = domctl_op(5, 0x15, dom);
        let r = domctl(&mut op);
        let i: XenDomctlGetdomaininfo = op.payload();
        if r != 0 { Err(r) } else { Ok((i.domain, i.flags, i.tot_pages)) }
    }

    /// XEN_DOMCTL_setvcpucontext (12) or getvcpucontext (13) of `vcpu` with
    /// the context at `ctxt`.
    pub fn vcpu_context(cmd: u32, dom: u16, vcpu: u32, ctxt: u64) -> i64 {
        let mut op = domctl_op(cmd, 0x15, dom);
        op.set_payload(&XenDomctlVcpucontext { vcpu, _pad0: 0, ctxt });
        domctl(&mut op)
    }

    /// XEN_DOMCTL_max_vcpus of `dom`.
    pub fn max_vcpus(dom: u16, max: u32) -> i64 {
        let mut op = domctl_op(XEN_DOMCTL_MAX_VCPUS, 0x15, dom);
        op.set_payload(&XenDomctlMaxVcpus { max });
        domctl(&mut op)
    }

    /// XEN_DOMCTL_getvcpuinfo of `dom`'s `vcpu`: `(result, the info)`.
    pub fn vcpu_info(dom: u16, vcpu: u32) -> (i64, XenDomctlGetvcpuinfo) {
        let mut op = domctl_op(XEN_DOMCTL_GETVCPUINFO, 0x15, dom);
        op.set_payload(&XenDomctlGetvcpuinfo { vcpu, ..Default::default() });
        let r = domctl(&mut op);
        (r, op.payload())
    }

    /// A new domain with its vCPU created (createdomain + max_vcpus).
    pub fn create_with_vcpu() -> Result<u16, i64> {
        let id = create_domain(0)?;
        let r = max_vcpus(id, 1);
        if r != 0 {
            domctl_simple(2, id);
            return Err(r);
        }
        Ok(id)
    }

    /// XEN_DOMCTL_max_mem of `dom` in KiB.
    pub fn max_mem(dom: u16, kib: u64) -> i64 {
        let mut op = domctl_op(XEN_DOMCTL_MAX_MEM, 0x15, dom);
        op.set_payload(&XenDomctlMaxMem { max_memkb: kib });
        domctl(&mut op)
    }

    /// XENMEM_populate_physmap of `n` order-0 extents (pfns 0..n) for `dom`.
    pub fn populate(dom: u16, n: usize) -> i64 {
        let mut list = [0u64; 64];
        for (i, e) in list.iter_mut().enumerate() {
            *e = i as u64;
        }
        crate::hypercall::populate_physmap(dom, &mut list[..n.min(64)])
    }

    /// XEN_DOMCTL_scheduler_op on `dom` with the credit parameters:
    /// `(result, the parameters after)`.
    pub fn sched_op(dom: u16, sched_id: u32, cmd: u32, weight: u16, cap: u16) -> (i64, XenDomctlSchedCredit) {
        let mut s = XenDomctlSchedulerOp { sched_id, cmd, ..Default::default() };
        s.set_credit(XenDomctlSchedCredit { weight, cap });
        let mut op = domctl_op(XEN_DOMCTL_SCHEDULER_OP, 0x15, dom);
        op.set_payload(&s);
        let r = domctl(&mut op);
        (r, op.payload::<XenDomctlSchedulerOp>().credit())
    }

    /// A `xen_sysctl` for `cmd` with interface version `version`.
    pub fn sysctl_op(cmd: u32, version: u32) -> XenSysctl {
        let mut s = XenSysctl::new(cmd);
        s.interface_version = version;
        s
    }

    /// The grant table, set up once and mapped at a spare page.
    pub fn grant_table() -> Option<crate::grants::Table> {
        use core::sync::atomic::{AtomicU64, Ordering};
        static VA: AtomicU64 = AtomicU64::new(0);
        let va = match VA.load(Ordering::Relaxed) {
            0 => {
                let va = super::super::ctx::spare_page()?;
                crate::grants::Table::setup(va).ok()?;
                VA.store(va, Ordering::Relaxed);
                va
            }
            va => va,
        };
        // Re-running setup is harmless and returns the same frame.
        crate::grants::Table::setup(va).ok()
    }

    /// A multicall of `[iret, xen_version]`, issued with a hand-built
    /// `iret_context` on the stack. Returns `(rax after, results)`.
    pub fn multicall_iret_first() -> (u64, u64, u64) {
        let mut list =
            [MulticallEntry { op: nr::IRET, result: 0x5555, args: [0; 6] }, MulticallEntry { op: nr::XEN_VERSION, result: 0x7777, args: [0; 6] }];
        let rax: u64;
        // SAFETY: builds Xen's iret_context {rax, r11, rcx, flags, rip, cs,
        // rflags, rsp, ss} on our stack, returning to label 2 with the
        // original RSP, kernel CS (RPL 0) and events still masked (IF 0).
        unsafe {
            core::arch::asm!(
                "mov {save}, rsp",
                "and rsp, -16",
                "lea {tmp}, [rip + 2f]",
                "push 0xe02b",
                "push {save}",
                "push 0x2",
                "push 0xe030",
                "push {tmp}",
                "push 0",
                "push 0",
                "push 0",
                "push 0x1234",
                "mov eax, 13",
                "syscall",
                "ud2",
                "2:",
                save = out(reg) _,
                tmp = out(reg) _,
                in("rdi") list.as_mut_ptr(),
                in("rsi") 2u64,
                out("rax") rax,
                out("rcx") _,
                out("r11") _,
            );
        }
        (rax, list[0].result, list[1].result)
    }
}

cases! {
    // ---- Hypercall numbers without a handler: -ENOSYS.
    nr_11_unused_is_enosys ("unused", "11", Reject) { expect(call(11, 0, 0, 0, 0, 0), -ENOSYS) }
    nr_38_tmem_removed_is_enosys ("unused", "38 (tmem_op)", Reject) { expect(call(38, 0, 0, 0, 0, 0), -ENOSYS) }
    nr_43_unused_is_enosys ("unused", "43", Reject) { expect(call(43, 0, 0, 0, 0, 0), -ENOSYS) }
    nr_44_unused_is_enosys ("unused", "44", Reject) { expect(call(44, 0, 0, 0, 0, 0), -ENOSYS) }
    nr_46_unused_is_enosys ("unused", "46", Reject) { expect(call(46, 0, 0, 0, 0, 0), -ENOSYS) }
    nr_47_unused_is_enosys ("unused", "47", Reject) { expect(call(47, 0, 0, 0, 0, 0), -ENOSYS) }
    nr_56_unused_is_enosys ("unused", "56", Reject) { expect(call(56, 0, 0, 0, 0, 0), -ENOSYS) }
    nr_64_unused_is_enosys ("unused", "64", Reject) { expect(call(64, 0, 0, 0, 0, 0), -ENOSYS) }
    nr_100_unused_is_enosys ("unused", "100", Reject) { expect(call(100, 0, 0, 0, 0, 0), -ENOSYS) }
    nr_127_last_stub_is_enosys ("unused", "127", Reject) { expect(call(127, 0, 0, 0, 0, 0), -ENOSYS) }
    nr_4096_out_of_table_is_enosys ("unused", "4096 (raw SYSCALL)", Attack) { expect(raw_syscall(4096), -ENOSYS) }
    nr_u64_max_out_of_table_is_enosys ("unused", "2^64-1 (raw SYSCALL)", Attack) { expect(raw_syscall(u64::MAX), -ENOSYS) }

    // ---- Exception delivery through the trap table (returns with iret).
    trap_int3_delivers_bp_after_insn ("trap", "#BP", Trap) { expect_trap(probe(Probe::Int3, 0), 3, None, 1) }
    trap_ud2_delivers_ud_at_insn ("trap", "#UD", Trap) { expect_trap(probe(Probe::Ud2, 0), 6, None, 0) }
    trap_divide_by_zero_delivers_de ("trap", "#DE", Trap) { expect_trap(probe(Probe::Div, 0), 0, None, 0) }
    trap_pf_read_has_cr2_and_error_0 ("trap", "#PF read", Trap) {
        match probe(Probe::Read, 0xdead_b000) {
            Err(c) => all(&[expect_trap(Err(c), 14, Some(0), 0), check(c.cr2 == 0xdead_b000, format_args!("cr2 {:#x}", c.cr2))]),
            Ok(()) => check(false, format_args!("no fault")),
        }
    }
    trap_pf_write_error_code_2 ("trap", "#PF write", Trap) { expect_trap(probe(Probe::Write, 0xdead_c000), 14, Some(2), 0) }
    trap_write_to_own_l4_faults ("trap", "#PF on page-table write", Attack) {
        expect_trap(probe(Probe::Write, start_info().pt_base + 8), 14, Some(3), 0)
    }
    trap_lidt_in_guest_kernel_is_gp ("trap", "#GP privileged insn", Trap) {
        let desc = [0u64; 2];
        expect_trap(probe(Probe::Lidt, ptr(&desc)), 13, Some(0), 0)
    }
    trap_int80_dpl3_delivered ("trap", "int $0x80 DPL 3", Trap) {
        if set_entry(0x80, 3) != 0 { return error(format_args!("set_trap_table failed")); }
        expect_trap(probe(Probe::Int128, 0), 0x80, None, 2)
    }
    trap_int80_dpl0_still_delivered ("trap", "int $0x80 DPL 0", Trap) {
        // Xen's int $0x80 fast path ignores the entry's DPL.
        if set_entry(0x80, 0) != 0 { return error(format_args!("set_trap_table failed")); }
        expect_trap(probe(Probe::Int128, 0), 0x80, None, 2)
    }
    trap_int80_without_entry_is_gp_with_idt_bit ("trap", "int $0x80, no entry", Attack) {
        expect_trap(probe(Probe::Int128, 0), 13, Some((0x80 << 3) | 2), 0)
    }
    trap_int20_without_entry_is_gp ("trap", "int $0x20, no entry", Attack) {
        expect_trap(probe(Probe::Int32, 0), 13, Some((0x20 << 3) | 2), 0)
    }
    trap_int20_dpl1_allowed_in_kernel ("trap", "int $0x20 DPL 1", Trap) {
        if set_entry(0x20, 1) != 0 { return error(format_args!("set_trap_table failed")); }
        expect_trap(probe(Probe::Int32, 0), 0x20, None, 2)
    }
    iret_returns_to_the_interrupted_context ("iret", "kernel to kernel", Accept) {
        // Every trap case returns through iret; twice in a row must work.
        all(&[expect_trap(probe(Probe::Int3, 0), 3, None, 1), expect_trap(probe(Probe::Int3, 0), 3, None, 1)])
    }

    // ---- set_trap_table
    set_trap_table_valid_table_accepted ("set_trap_table", "table", Accept) { expect(crate::traps::install(), 0) }
    set_trap_table_null_clears ("set_trap_table", "NULL", Accept) { expect(call(nr::SET_TRAP_TABLE, 0, 0, 0, 0, 0), 0) }
    set_trap_table_long_table_continues ("set_trap_table", "long table", Accept) {
        let mut table = [TrapInfo::default(); 201];
        for e in table.iter_mut().take(200) { *e = handler_entry(3, 3).unwrap_or_default(); }
        all(&[expect(crate::hypercall::set_trap_table(&table), 0), expect_trap(probe(Probe::Int3, 0), 3, None, 1)])
    }
    set_trap_table_noncanonical_handler_einval ("set_trap_table", "table", Reject) {
        let table = [TrapInfo { vector: 3, flags: 0, cs: 0xe033, _pad0: 0, address: NONCANON }, TrapInfo::default()];
        expect(crate::hypercall::set_trap_table(&table), -EINVAL)
    }
    set_trap_table_unmapped_pointer_efault ("set_trap_table", "table", Reject) { expect(call(nr::SET_TRAP_TABLE, UNMAPPED, 0, 0, 0, 0), -EFAULT) }
    set_trap_table_xen_pointer_efault ("set_trap_table", "table", Attack) { expect(call(nr::SET_TRAP_TABLE, XEN_VA, 0, 0, 0, 0), -EFAULT) }
    set_trap_table_noncanonical_pointer_efault ("set_trap_table", "table", Attack) { expect(call(nr::SET_TRAP_TABLE, NONCANON, 0, 0, 0, 0), -EFAULT) }

    // ---- callback_op / set_callbacks
    callback_register_event_ok ("callback_op", "register event", Accept) { expect(callback(0, 0, 0, some_handler()), 0) }
    callback_register_failsafe_ok ("callback_op", "register failsafe", Accept) { expect(callback(0, 1, 0, some_handler()), 0) }
    callback_register_syscall_masked_ok ("callback_op", "register syscall", Accept) { expect(callback(0, 2, 1, some_handler()), 0) }
    callback_register_syscall32_ok ("callback_op", "register syscall32", Accept) { expect(callback(0, 7, 0, some_handler()), 0) }
    callback_register_nmi_ok ("callback_op", "register nmi", Accept) {
        let r = callback(0, 4, 0, some_handler());
        callback(1, 4, 0, 0);
        expect(r, 0)
    }
    callback_register_noncanonical_einval ("callback_op", "register event", Attack) { expect(callback(0, 0, 0, NONCANON), -EINVAL) }
    callback_register_unknown_type_enosys ("callback_op", "register type 100", Reject) { expect(callback(0, 100, 0, some_handler()), -ENOSYS) }
    callback_unregister_event_einval ("callback_op", "unregister event", Reject) { expect(callback(1, 0, 0, 0), -EINVAL) }
    callback_unregister_nmi_ok ("callback_op", "unregister nmi", Accept) { expect(callback(1, 4, 0, 0), 0) }
    callback_unknown_cmd_enosys ("callback_op", "cmd 7", Reject) { expect(callback(7, 0, 0, some_handler()), -ENOSYS) }
    callback_unmapped_pointer_efault ("callback_op", "register event", Reject) { expect(call(nr::CALLBACK_OP, 0, UNMAPPED, 0, 0, 0), -EFAULT) }
    set_callbacks_ok ("set_callbacks", "all three", Accept) {
        let h = some_handler();
        expect(call(nr::SET_CALLBACKS, h, h, h, 0, 0), 0)
    }
    set_callbacks_noncanonical_ignored_returns_0 ("set_callbacks", "all three", Attack) {
        expect(call(nr::SET_CALLBACKS, NONCANON, NONCANON, NONCANON, 0, 0), 0)
    }

    // ---- stack_switch, fpu_taskswitch
    stack_switch_ok ("stack_switch", "ss, sp", Accept) { expect(call(nr::STACK_SWITCH, 0xe02b, start_info().pt_base, 0, 0, 0), 0) }
    stack_switch_xen_sp_accepted_not_used ("stack_switch", "ss, sp", Attack) {
        // Xen checks the stack only when it bounces a frame onto it.
        let r = call(nr::STACK_SWITCH, 0xe02b, XEN_VA, 0, 0, 0);
        call(nr::STACK_SWITCH, 0xe02b, 0, 0, 0, 0);
        expect(r, 0)
    }
    fpu_taskswitch_set_raises_nm ("fpu_taskswitch", "set", Accept) {
        all(&[expect(call(nr::FPU_TASKSWITCH, 1, 0, 0, 0, 0), 0), expect_trap(probe(Probe::Sse, 0), 7, None, 0)])
    }
    fpu_taskswitch_nm_clears_virtual_ts ("fpu_taskswitch", "set", Accept) {
        call(nr::FPU_TASKSWITCH, 1, 0, 0, 0, 0);
        let first = probe(Probe::Sse, 0);
        all(&[expect_trap(first, 7, None, 0), check(probe(Probe::Sse, 0).is_ok(), format_args!("second SSE use trapped"))])
    }
    fpu_taskswitch_clear_allows_sse ("fpu_taskswitch", "clear", Accept) {
        call(nr::FPU_TASKSWITCH, 1, 0, 0, 0, 0);
        all(&[expect(call(nr::FPU_TASKSWITCH, 0, 0, 0, 0, 0), 0), check(probe(Probe::Sse, 0).is_ok(), format_args!("SSE trapped"))])
    }
    fpu_taskswitch_arg_is_an_int ("fpu_taskswitch", "set = 2^32", Attack) {
        // The argument is a C int: 2^32 truncates to 0, which clears TS.
        all(&[expect(call(nr::FPU_TASKSWITCH, 1 << 32, 0, 0, 0, 0), 0), check(probe(Probe::Sse, 0).is_ok(), format_args!("SSE trapped"))])
    }

    // ---- xen_version
    xen_version_is_4_17 ("xen_version", "XENVER_version", Accept) { expect(call(nr::XEN_VERSION, 0, 0, 0, 0, 0), (4 << 16) | 17) }
    xen_version_extraversion_terminated ("xen_version", "XENVER_extraversion", Accept) {
        let mut b = XenExtraversion([0xff; 16]);
        all(&[expect(xen_version_op(&mut b), 0), check(b.0.contains(&0), format_args!("no NUL"))])
    }
    xen_version_compile_info_ok ("xen_version", "XENVER_compile_info", Accept) {
        expect(xen_version_op(&mut XenCompileInfo::default()), 0)
    }
    xen_version_capabilities_has_x86_64 ("xen_version", "XENVER_capabilities", Accept) {
        let mut b = XenCapabilitiesInfo::default();
        let r = xen_version_op(&mut b);
        all(&[expect(r, 0), check(b.0.windows(14).any(|w| w == b"xen-3.0-x86_64"), format_args!("no xen-3.0-x86_64"))])
    }
    xen_version_changeset_ok ("xen_version", "XENVER_changeset", Accept) {
        expect(xen_version_op(&mut XenChangesetInfo::default()), 0)
    }
    xen_version_platform_parameters_virt_start ("xen_version", "XENVER_platform_parameters", Accept) {
        let mut p = XenPlatformParameters::default();
        let r = xen_version_op(&mut p);
        all(&[expect(r, 0), check(p.virt_start == 0xffff_8000_0000_0000, format_args!("virt_start {:#x}", p.virt_start))])
    }
    xen_version_features_dom0_bit ("xen_version", "XENVER_get_features", Accept) {
        let mut f = XenFeatureInfo { submap_idx: 0, submap: 0 };
        let r = xen_version_op(&mut f);
        all(&[expect(r, 0), check(f.submap & (1 << XENFEAT_DOM0) != 0, format_args!("submap {:#x} lacks XENFEAT_dom0", f.submap))])
    }
    xen_version_features_submap_1_einval ("xen_version", "XENVER_get_features", Reject) {
        expect(xen_version_op(&mut XenFeatureInfo { submap_idx: 1, submap: 0 }), -EINVAL)
    }
    xen_version_pagesize_4096 ("xen_version", "XENVER_pagesize", Accept) { expect(call(nr::XEN_VERSION, 7, 0, 0, 0, 0), 4096) }
    xen_version_unknown_cmd_enosys ("xen_version", "cmd 200", Reject) { expect(call(nr::XEN_VERSION, 200, 0, 0, 0, 0), -ENOSYS) }
    xen_version_unmapped_buffer_efault ("xen_version", "XENVER_extraversion", Reject) { expect(call(nr::XEN_VERSION, 1, UNMAPPED, 0, 0, 0), -EFAULT) }
    xen_version_xen_buffer_efault ("xen_version", "XENVER_compile_info", Attack) { expect(call(nr::XEN_VERSION, 2, XEN_VA, 0, 0, 0), -EFAULT) }
    xen_version_into_readonly_page_table_efault ("xen_version", "XENVER_capabilities", Attack) {
        let l4 = start_info().pt_base;
        // SAFETY: the L4 is mapped (read-only) in our initial region.
        let before = unsafe { core::ptr::read_volatile(l4 as *const u64) };
        let r = call(nr::XEN_VERSION, 3, l4, 0, 0, 0);
        // SAFETY: as above.
        let after = unsafe { core::ptr::read_volatile(l4 as *const u64) };
        all(&[expect(r, -EFAULT), check(before == after, format_args!("L4 entry 0 changed"))])
    }

    // ---- console_io
    console_write_ok ("console_io", "CONSOLEIO_write", Accept) {
        let msg = b"(conformance console_io check)\n";
        expect(call(nr::CONSOLE_IO, 0, msg.len() as u64, ptr(msg), 0, 0), 0)
    }
    console_write_zero_length_ok ("console_io", "CONSOLEIO_write", Accept) { expect(call(nr::CONSOLE_IO, 0, 0, UNMAPPED, 0, 0), 0) }
    console_write_unmapped_efault ("console_io", "CONSOLEIO_write", Reject) { expect(call(nr::CONSOLE_IO, 0, 8, UNMAPPED, 0, 0), -EFAULT) }
    console_write_noncanonical_efault ("console_io", "CONSOLEIO_write", Attack) { expect(call(nr::CONSOLE_IO, 0, 8, NONCANON, 0, 0), -EFAULT) }
    console_read_returns_count ("console_io", "CONSOLEIO_read", Accept) {
        let mut b = [0u8; 16];
        let r = call(nr::CONSOLE_IO, 1, 16, ptr_mut(&mut b), 0, 0);
        check((0..=16).contains(&r), format_args!("read returned {r}"))
    }
    console_read_count_over_int_max_e2big ("console_io", "CONSOLEIO_read", Reject) {
        let mut b = [0u8; 16];
        expect(call(nr::CONSOLE_IO, 1, 0x8000_0000, ptr_mut(&mut b), 0, 0), -E2BIG)
    }
    console_unknown_cmd_enosys ("console_io", "cmd 9", Reject) { expect(call(nr::CONSOLE_IO, 9, 0, 0, 0, 0), -ENOSYS) }

    // ---- vm_assist
    vm_assist_enable_4gb_segments ("vm_assist", "enable 4gb_segments", Accept) { expect(vm_assist(0, 0), 0) }
    vm_assist_disable_4gb_segments ("vm_assist", "disable 4gb_segments", Accept) { expect(vm_assist(1, 0), 0) }
    vm_assist_pae_extended_cr3 ("vm_assist", "enable pae_extended_cr3", Accept) {
        let r = vm_assist(0, 3);
        vm_assist(1, 3);
        expect(r, 0)
    }
    vm_assist_type_64_einval ("vm_assist", "type 64", Reject) { expect(vm_assist(0, 64), -EINVAL) }
    vm_assist_huge_type_einval ("vm_assist", "type 2^32-1", Attack) { expect(vm_assist(0, 0xffff_ffff), -EINVAL) }
    vm_assist_unknown_type_einval ("vm_assist", "type 10", Reject) { expect(vm_assist(0, 10), -EINVAL) }
    vm_assist_bad_cmd_enosys ("vm_assist", "cmd 2", Reject) { expect(vm_assist(2, 0), -ENOSYS) }
    vm_assist_writable_pagetables_refused ("vm_assist", "enable writable_pagetables", Reject) {
        let r = vm_assist(0, 2);
        vm_assist(1, 2);
        expect(r, -EINVAL)
    }

    // ---- set_segment_base
    set_segment_base_fs_loads_base ("set_segment_base", "SEGBASE_FS", Accept) {
        static VALUE: u64 = 0x1234_5678_9abc_def0;
        let r = call(nr::SET_SEGMENT_BASE, 0, ptr(&VALUE), 0, 0, 0);
        if r != 0 { return expect(r, 0); }
        let v: u64;
        // SAFETY: FS now points at VALUE.
        unsafe { core::arch::asm!("mov {}, fs:[0]", out(reg) v) };
        check(v == VALUE, format_args!("%fs:0 read {v:#x}"))
    }
    set_segment_base_gs_kernel_loads_base ("set_segment_base", "SEGBASE_GS_KERNEL", Accept) {
        static VALUE: u64 = 0x0fed_cba9_8765_4321;
        let r = call(nr::SET_SEGMENT_BASE, 2, ptr(&VALUE), 0, 0, 0);
        if r != 0 { return expect(r, 0); }
        let v: u64;
        // SAFETY: GS now points at VALUE.
        unsafe { core::arch::asm!("mov {}, gs:[0]", out(reg) v) };
        check(v == VALUE, format_args!("%gs:0 read {v:#x}"))
    }
    set_segment_base_gs_user_ok ("set_segment_base", "SEGBASE_GS_USER", Accept) { expect(call(nr::SET_SEGMENT_BASE, 1, 0x1000, 0, 0, 0), 0) }
    set_segment_base_gs_user_sel_null_ok ("set_segment_base", "SEGBASE_GS_USER_SEL", Accept) { expect(call(nr::SET_SEGMENT_BASE, 3, 0, 0, 0, 0), 0) }
    set_segment_base_fs_noncanonical_einval ("set_segment_base", "SEGBASE_FS", Attack) { expect(call(nr::SET_SEGMENT_BASE, 0, NONCANON, 0, 0, 0), -EINVAL) }
    set_segment_base_gs_kernel_noncanonical_einval ("set_segment_base", "SEGBASE_GS_KERNEL", Attack) { expect(call(nr::SET_SEGMENT_BASE, 2, NONCANON, 0, 0, 0), -EINVAL) }
    set_segment_base_bad_which_einval ("set_segment_base", "which 4", Reject) { expect(call(nr::SET_SEGMENT_BASE, 4, 0, 0, 0, 0), -EINVAL) }

    // ---- sched_op
    sched_op_yield_ok ("sched_op", "SCHEDOP_yield", Accept) { expect(call(nr::SCHED_OP, 0, 0, 0, 0, 0), 0) }
    sched_op_unknown_cmd_enosys ("sched_op", "cmd 99", Reject) { expect(call(nr::SCHED_OP, 99, 0, 0, 0, 0), -ENOSYS) }
    sched_op_shutdown_unmapped_efault ("sched_op", "SCHEDOP_shutdown", Reject) { expect(call(nr::SCHED_OP, 2, UNMAPPED, 0, 0, 0), -EFAULT) }

    // ---- update_va_mapping
    update_va_mapping_alias_own_frame ("update_va_mapping", "map RW", Accept) {
        let (Some(a), Some(b)) = (spare_page(), spare_page()) else { return error(format_args!("no spare pages")) };
        // SAFETY: both are spare pages of our own initial region.
        unsafe { core::ptr::write_volatile(b as *mut u64, 0x5eed) };
        let r = uvm(a, (mfn_of(b) << 12) | PTE_RW);
        // SAFETY: `a` is mapped (to b's frame if the call worked, its own otherwise).
        let seen = unsafe { core::ptr::read_volatile(a as *const u64) };
        let restore = uvm(a, (mfn_of(a) << 12) | PTE_RW);
        all(&[expect(r, 0), check(seen == 0x5eed, format_args!("alias read {seen:#x}")), expect(restore, 0)])
    }
    update_va_mapping_unmap_then_fault ("update_va_mapping", "unmap", Accept) {
        let Some(a) = spare_page() else { return error(format_args!("no spare page")) };
        let r = uvm(a, 0);
        let fault = probe(Probe::Read, a);
        let restore = uvm(a, (mfn_of(a) << 12) | PTE_RW);
        all(&[expect(r, 0), expect_trap(fault, 14, Some(0), 0), expect(restore, 0)])
    }
    update_va_mapping_l4_read_only_ok ("update_va_mapping", "map page table RO", Accept) {
        let Some(a) = spare_page() else { return error(format_args!("no spare page")) };
        let r = uvm(a, (l4_mfn() << 12) | PTE_RO);
        let readable = probe(Probe::Read, a).is_ok();
        let restore = uvm(a, (mfn_of(a) << 12) | PTE_RW);
        all(&[expect(r, 0), check(readable, format_args!("RO alias of the L4 unreadable")), expect(restore, 0)])
    }
    update_va_mapping_l4_writable_refused ("update_va_mapping", "map page table RW", Attack) {
        let Some(a) = spare_page() else { return error(format_args!("no spare page")) };
        let r = uvm(a, (l4_mfn() << 12) | PTE_RW);
        if r == 0 { uvm(a, (mfn_of(a) << 12) | PTE_RW); }
        expect(r, -EBUSY)
    }
    update_va_mapping_high_avail_bits_ok ("update_va_mapping", "AVAIL_HIGH flags", Accept) {
        let Some(a) = spare_page() else { return error(format_args!("no spare page")) };
        expect(uvm(a, (mfn_of(a) << 12) | PTE_RW | (0x3ff << 52)), 0)
    }
    update_va_mapping_bit_62_and_cache_attrs_ok_for_dom0 ("update_va_mapping", "bit 62, PWT/PCD/PAT", Accept) {
        // Release builds of Xen leave bit 62 to guests; a domain with I/O
        // access (dom0) may set cache attributes. A different frame, so
        // Xen's same-frame fast path does not apply.
        let (Some(a), Some(b)) = (spare_page(), spare_page()) else { return error(format_args!("no spare pages")) };
        let r = uvm(a, (mfn_of(b) << 12) | PTE_RW | (1 << 62) | 0x98);
        let restore = uvm(a, (mfn_of(a) << 12) | PTE_RW);
        all(&[expect(r, 0), expect(restore, 0)])
    }
    update_va_mapping_xen_va_einval ("update_va_mapping", "Xen address", Attack) { expect(uvm(XEN_VA, 0), -EINVAL) }
    update_va_mapping_noncanonical_va_einval ("update_va_mapping", "non-canonical", Attack) { expect(uvm(NONCANON, 0), -EINVAL) }
    update_va_mapping_without_l1_einval ("update_va_mapping", "no L1", Reject) { expect(uvm(0x4000_0000, 0), -EINVAL) }
    update_va_mapping_foreign_frame_refused ("update_va_mapping", "frame not owned", Attack) {
        let Some(a) = spare_page() else { return error(format_args!("no spare page")) };
        let r = uvm(a, (0x100 << 12) | PTE_RW);
        if r == 0 { uvm(a, (mfn_of(a) << 12) | PTE_RW); }
        expect(r, -EBUSY)
    }

    // ---- mmuext_op
    mmuext_new_user_baseptr_own_l4 ("mmuext_op", "MMUEXT_NEW_USER_BASEPTR", Accept) {
        let r = mmuext(15, l4_mfn(), 0, 0x7ff0);
        mmuext(15, 0, 0, 0x7ff0);
        expect(r, 0)
    }
    mmuext_new_user_baseptr_zero_clears ("mmuext_op", "MMUEXT_NEW_USER_BASEPTR", Accept) { expect(mmuext(15, 0, 0, 0x7ff0), 0) }
    mmuext_done_count_written ("mmuext_op", "done", Accept) {
        let ops = [MmuextOp { cmd: 15, ..Default::default() }; 2];
        let mut done = 0xffff_ffffu32;
        let r = call(nr::MMUEXT_OP, ptr(&ops), 2, ptr_mut(&mut done), 0x7ff0, 0);
        all(&[expect(r, 0), check(done == 2, format_args!("done {done}"))])
    }
    mmuext_new_user_baseptr_data_frame_refused ("mmuext_op", "MMUEXT_NEW_USER_BASEPTR", Attack) {
        let Some(a) = spare_page() else { return error(format_args!("no spare page")) };
        let r = mmuext(15, mfn_of(a), 0, 0x7ff0);
        mmuext(15, 0, 0, 0x7ff0);
        expect(r, -EINVAL)
    }
    mmuext_unmapped_ops_efault ("mmuext_op", "ops", Reject) { expect(call(nr::MMUEXT_OP, UNMAPPED, 1, 0, 0x7ff0, 0), -EFAULT) }
    mmuext_unknown_cmd_enosys ("mmuext_op", "cmd 99", Reject) { expect(mmuext(99, 0, 0, 0x7ff0), -ENOSYS) }
    mmuext_unknown_foreign_domain_esrch ("mmuext_op", "foreigndom", Reject) { expect(mmuext(15, 0, 0, 0x1234), -ESRCH) }

    // ---- Memory virtualization: mmu_update, pinning, validation rules.
    mmu_update_set_entry_of_pinned_l1 ("mmu_update", "MMU_NORMAL_PT_UPDATE", Accept) {
        let (Some((t, tm)), Some((_, dm))) = (page(), page()) else { return error(format_args!("no spare pages")) };
        let r0 = read_only(t, tm);
        let pinned = pin(tm, 1);
        let (r, done) = mmu1(slot(tm, 0), (dm << 12) | PTE_RW);
        let clear = mmu1(slot(tm, 0), 0).0;
        let cleanup = (unpin(tm), writable(t, tm));
        all(&[expect(r0, 0), expect(pinned, 0), expect(r, 0), check(done == 1, format_args!("done {done}")), expect(clear, 0), expect(cleanup.0, 0), expect(cleanup.1, 0)])
    }
    mmu_update_preserve_ad_ok ("mmu_update", "MMU_PT_UPDATE_PRESERVE_AD", Accept) {
        let (Some((t, tm)), Some((_, dm))) = (page(), page()) else { return error(format_args!("no spare pages")) };
        read_only(t, tm);
        let pinned = pin(tm, 1);
        let r = mmu1(slot(tm, 0) | 2, (dm << 12) | PTE_RW).0;
        mmu1(slot(tm, 0), 0);
        unpin(tm);
        writable(t, tm);
        all(&[expect(pinned, 0), expect(r, 0)])
    }
    mmu_update_machphys_own_frame_ok ("mmu_update", "MMU_MACHPHYS_UPDATE", Accept) {
        let Some((va, m)) = page() else { return error(format_args!("no spare page")) };
        let pfn = (va - crate::notes::VIRT_BASE) / 4096;
        expect(mmu1((m << 12) | 1, pfn).0, 0)
    }
    mmu_update_machphys_foreign_frame_refused ("mmu_update", "MMU_MACHPHYS_UPDATE", Attack) { expect(mmu1((0x100 << 12) | 1, 5).0, -EINVAL) }
    mmu_update_no_translate_is_normal_for_pv ("mmu_update", "MMU_PT_UPDATE_NO_TRANSLATE", Accept) {
        // ptr & 3 == 3 is MMU_PT_UPDATE_NO_TRANSLATE: a write to a writable
        // (non-table) page of the domain's own.
        let Some((va, m)) = page() else { return error(format_args!("no spare page")) };
        let r = mmu1((m << 12) | 3, 0x77).0;
        // SAFETY: our own spare page.
        let v = unsafe { core::ptr::read_volatile(va as *const u64) };
        all(&[expect(r, 0), check(v == 0x77, format_args!("page holds {v:#x}"))])
    }
    mmu_update_unmapped_requests_efault ("mmu_update", "reqs", Reject) { expect(call(nr::MMU_UPDATE, UNMAPPED, 1, 0, 0x7ff0, 0), -EFAULT) }
    mmu_update_unknown_foreign_domain_esrch ("mmu_update", "foreigndom", Reject) {
        let req = MmuUpdate::default();
        expect(call(nr::MMU_UPDATE, ptr(&req), 1, 0, 0x1234, 0), -ESRCH)
    }
    mmu_update_long_batch_preempted_and_resumed ("mmu_update", "2048-entry batch", Accept) {
        let (Some((t, tm)), Some((_, dm))) = (page(), page()) else { return error(format_args!("no spare pages")) };
        read_only(t, tm);
        if pin(tm, 1) != 0 { writable(t, tm); return error(format_args!("pin failed")); }
        let mut reqs = [MmuUpdate::default(); 2048];
        for (i, r) in reqs.iter_mut().enumerate() {
            *r = MmuUpdate { ptr: slot(tm, i % 512), val: if i % 2 == 0 { (dm << 12) | PTE_RO } else { 0 } };
        }
        let (rc, done) = crate::mm::mmu_update(&reqs);
        unpin(tm);
        writable(t, tm);
        all(&[expect(rc, 0), check(done == 2048, format_args!("done {done}"))])
    }
    pin_l1_then_unpin_ok ("mmuext_op", "MMUEXT_PIN_L1_TABLE", Accept) {
        let Some((t, tm)) = page() else { return error(format_args!("no spare page")) };
        read_only(t, tm);
        let p = pin(tm, 1);
        let u = unpin(tm);
        writable(t, tm);
        all(&[expect(p, 0), expect(u, 0)])
    }
    pin_twice_einval ("mmuext_op", "MMUEXT_PIN_L1_TABLE", Reject) {
        let Some((t, tm)) = page() else { return error(format_args!("no spare page")) };
        read_only(t, tm);
        pin(tm, 1);
        let again = pin(tm, 1);
        unpin(tm);
        writable(t, tm);
        expect(again, -EINVAL)
    }
    unpin_unpinned_einval ("mmuext_op", "MMUEXT_UNPIN_TABLE", Reject) {
        let Some((t, tm)) = page() else { return error(format_args!("no spare page")) };
        read_only(t, tm);
        let r = unpin(tm);
        writable(t, tm);
        expect(r, -EINVAL)
    }
    pin_frame_with_writable_mapping_refused ("mmuext_op", "MMUEXT_PIN_L1_TABLE", Attack) {
        let Some((_, tm)) = page() else { return error(format_args!("no spare page")) };
        let r = pin(tm, 1);
        if r == 0 { unpin(tm); }
        expect(r, -EINVAL)
    }
    pinned_l1_made_writable_refused ("update_va_mapping", "map pinned L1 RW", Attack) {
        let Some((t, tm)) = page() else { return error(format_args!("no spare page")) };
        read_only(t, tm);
        pin(tm, 1);
        let r = writable(t, tm);
        unpin(tm);
        writable(t, tm);
        expect(r, -EBUSY)
    }
    pse_in_l2_refused ("mmuext_op", "MMUEXT_PIN_L2_TABLE", Attack) {
        let (Some((t, tm)), Some((_, dm))) = (page(), page()) else { return error(format_args!("no spare pages")) };
        // SAFETY: a spare, still-writable page of ours.
        unsafe { core::ptr::write_volatile(t as *mut u64, (dm << 12) | PTE_RW | 0x80) };
        read_only(t, tm);
        let r = pin(tm, 2);
        if r == 0 { unpin(tm); }
        writable(t, tm);
        // SAFETY: as above, writable again.
        unsafe { core::ptr::write_volatile(t as *mut u64, 0) };
        expect(r, -EINVAL)
    }
    l1_mapping_foreign_frame_refused ("mmu_update", "MMU_NORMAL_PT_UPDATE", Attack) {
        let Some((t, tm)) = page() else { return error(format_args!("no spare page")) };
        read_only(t, tm);
        pin(tm, 1);
        let r = mmu1(slot(tm, 0), (0x100 << 12) | PTE_RW).0;
        unpin(tm);
        writable(t, tm);
        expect(r, -EBUSY)
    }
    hypervisor_l4_slot_write_refused ("mmu_update", "L4 slot 256-271", Attack) {
        let l4 = l4_mfn();
        all(&[expect(mmu1(slot(l4, 256), 0).0, -EINVAL), expect(mmu1(slot(l4, 262), 0).0, -EINVAL), expect(mmu1(slot(l4, 271), 0).0, -EINVAL)])
    }
    writable_self_map_refused ("mmu_update", "L4 self-map RW", Attack) {
        let l4 = l4_mfn();
        let r = mmu1(slot(l4, 1), (l4 << 12) | PTE_RW).0;
        if r == 0 { mmu1(slot(l4, 1), 0); }
        expect(r, -EINVAL)
    }
    read_only_self_map_ok ("mmu_update", "L4 self-map RO", Accept) {
        let l4 = l4_mfn();
        let r = mmu1(slot(l4, 1), (l4 << 12) | PTE_RO).0;
        let clear = mmu1(slot(l4, 1), 0).0;
        all(&[expect(r, 0), expect(clear, 0)])
    }
    l2_linear_entry_read_only_ok_writable_refused ("mmu_update", "L2 linear entry", Attack) {
        // An L2 entry pointing at an L2 (its own frame): a linear mapping,
        // which Xen allows read-only only.
        let Some((t, tm)) = page() else { return error(format_args!("no spare page")) };
        read_only(t, tm);
        let p = pin(tm, 2);
        let rw = mmu1(slot(tm, 5), (tm << 12) | PTE_RW).0;
        let ro = mmu1(slot(tm, 5), (tm << 12) | PTE_RO).0;
        let clear = mmu1(slot(tm, 5), 0).0;
        let u = unpin(tm);
        writable(t, tm);
        all(&[expect(p, 0), expect(rw, -EINVAL), expect(ro, 0), expect(clear, 0), expect(u, 0)])
    }
    l3_entry_to_a_data_frame_refused ("mmu_update", "L3 entry to data", Attack) {
        // Making a writable data page an L2 through an L3 entry would let
        // the guest write page-table entries: refused.
        let (Some((t, tm)), Some((_, dm))) = (page(), page()) else { return error(format_args!("no spare pages")) };
        read_only(t, tm);
        let p = pin(tm, 3);
        let r = mmu1(slot(tm, 0), (dm << 12) | PTE_RW).0;
        if r == 0 { mmu1(slot(tm, 0), 0); }
        let u = unpin(tm);
        writable(t, tm);
        all(&[expect(p, 0), expect(r, -EINVAL), expect(u, 0)])
    }
    new_baseptr_to_data_frame_refused ("mmuext_op", "MMUEXT_NEW_BASEPTR", Attack) {
        let Some((_, m)) = page() else { return error(format_args!("no spare page")) };
        expect(mmuext(5, m, 0, 0x7ff0), -EINVAL)
    }
    new_baseptr_current_l4_ok ("mmuext_op", "MMUEXT_NEW_BASEPTR", Accept) { expect(mmuext(5, l4_mfn(), 0, 0x7ff0), 0) }
    new_baseptr_to_a_fresh_l4_and_back ("mmuext_op", "MMUEXT_NEW_BASEPTR", Accept) {
        // A copy of the guest half of the current L4 (the hypervisor fills
        // its own slots when it validates), pinned, switched to, used, and
        // switched away from.
        let Some((t, tm)) = page() else { return error(format_args!("no spare page")) };
        let cur = start_info().pt_base as *const u64;
        for i in (0..512).filter(|i| !(256..272).contains(i)) {
            // SAFETY: the current L4 is mapped read-only in our region and
            // `t` is a spare writable page.
            unsafe { core::ptr::write_volatile((t as *mut u64).add(i), core::ptr::read_volatile(cur.add(i))) };
        }
        read_only(t, tm);
        let p = pin(tm, 4);
        let sw = if p == 0 { mmuext(5, tm, 0, 0x7ff0) } else { -1 };
        let v = call(nr::XEN_VERSION, 0, 0, 0, 0, 0);
        let back = mmuext(5, l4_mfn(), 0, 0x7ff0);
        let u = unpin(tm);
        writable(t, tm);
        all(&[expect(p, 0), expect(sw, 0), expect(v, (4 << 16) | 17), expect(back, 0), expect(u, 0)])
    }
    tlb_flush_and_invlpg_ok ("mmuext_op", "TLB flushes", Accept) {
        all(&[expect(mmuext(6, 0, 0, 0x7ff0), 0), expect(mmuext(10, 0, 0, 0x7ff0), 0), expect(mmuext(7, 0x1000, 0, 0x7ff0), 0), expect(mmuext(7, NONCANON, 0, 0x7ff0), 0)])
    }
    copy_and_clear_page_ok ("mmuext_op", "MMUEXT_COPY_PAGE, CLEAR_PAGE", Accept) {
        let (Some((a, am)), Some((b, bm))) = (page(), page()) else { return error(format_args!("no spare pages")) };
        // SAFETY: spare, writable pages of ours.
        unsafe { core::ptr::write_volatile(a as *mut u64, 0xc0fe) };
        let op = MmuextOp { cmd: 17, _pad0: 0, arg1: bm, arg2: am };
        let c = call(nr::MMUEXT_OP, ptr(&op), 1, 0, 0x7ff0, 0);
        // SAFETY: as above.
        let copied = unsafe { core::ptr::read_volatile(b as *const u64) };
        let z = mmuext(16, bm, 0, 0x7ff0);
        // SAFETY: as above.
        let cleared = unsafe { core::ptr::read_volatile(b as *const u64) };
        all(&[expect(c, 0), check(copied == 0xc0fe, format_args!("copied {copied:#x}")), expect(z, 0), check(cleared == 0, format_args!("not cleared"))])
    }
    clear_page_of_a_page_table_refused ("mmuext_op", "MMUEXT_CLEAR_PAGE", Attack) { expect(mmuext(16, l4_mfn(), 0, 0x7ff0), -EINVAL) }
    multicall_two_calls_results ("multicall", "list", Accept) {
        let mut list = [MulticallEntry { op: nr::XEN_VERSION, ..Default::default() }; 2];
        list[1].args[0] = 7; // XENVER_pagesize
        let r = call(nr::MULTICALL, ptr_mut(&mut list), 2, 0, 0, 0);
        all(&[expect(r, 0), expect(list[0].result as i64, (4 << 16) | 17), expect(list[1].result as i64, 4096)])
    }
    multicall_unknown_op_result_enosys ("multicall", "list", Reject) {
        let mut list = [MulticallEntry { op: 99, ..Default::default() }];
        let r = call(nr::MULTICALL, ptr_mut(&mut list), 1, 0, 0, 0);
        all(&[expect(r, 0), expect(list[0].result as i64, -ENOSYS)])
    }
    multicall_unmapped_list_efault ("multicall", "list", Reject) { expect(call(nr::MULTICALL, UNMAPPED, 1, 0, 0, 0), -EFAULT) }
    multicall_iret_stops_the_batch ("multicall", "iret then xen_version", Attack) {
        let (rax, first, second) = multicall_iret_first();
        all(&[
            check(rax == 0x1234, format_args!("rax after iret {rax:#x}")),
            check(second == 0x7777, format_args!("op after iret ran: result {second:#x}")),
            check(first == 0x1234, format_args!("iret entry result {first:#x}")),
        ])
    }
    set_gdt_one_page_and_load_a_selector ("set_gdt", "one frame", Accept) {
        let Some((g, gm)) = page() else { return error(format_args!("no spare page")) };
        // SAFETY: a spare, writable page of ours: entry 1 is a flat data
        // segment (DPL 0, which the hypervisor raises to 3).
        unsafe {
            core::ptr::write_bytes(g as *mut u8, 0, 4096);
            core::ptr::write_volatile((g as *mut u64).add(1), 0x00cf_9200_0000_ffff);
        }
        read_only(g, gm);
        let frames = [gm];
        let r = call(nr::SET_GDT, ptr(&frames), 512, 0, 0, 0);
        // SAFETY: our GDT page, mapped read-only.
        let fixed = unsafe { core::ptr::read_volatile((g as *const u64).add(1)) };
        let loaded = if r == 0 {
            // SAFETY: selector 0x0b (GDT entry 1, RPL 3) is the data segment
            // just installed; FS is reset to the NUL selector right after.
            unsafe { core::arch::asm!("mov {s:x}, 0x0b", "mov fs, {s:x}", "xor {s:e}, {s:e}", "mov fs, {s:x}", s = out(reg) _) };
            true
        } else {
            false
        };
        let clear = call(nr::SET_GDT, ptr(&frames), 0, 0, 0, 0);
        let w = writable(g, gm);
        all(&[expect(r, 0), check(fixed == 0x00cf_f200_0000_ffff, format_args!("descriptor {fixed:#x}")), check(loaded, format_args!("not loaded")), expect(clear, 0), expect(w, 0)])
    }
    set_ldt_and_load_a_selector ("mmuext_op", "MMUEXT_SET_LDT", Accept) {
        let Some((l, lm)) = page() else { return error(format_args!("no spare page")) };
        // SAFETY: a spare, writable page: LDT entry 1 is a flat data segment.
        unsafe {
            core::ptr::write_bytes(l as *mut u8, 0, 4096);
            core::ptr::write_volatile((l as *mut u64).add(1), 0x00cf_f200_0000_ffff);
        }
        read_only(l, lm);
        let r = mmuext(13, l, 0, 0x7ff0);
        let op = MmuextOp { cmd: 13, _pad0: 0, arg1: l, arg2: 2 };
        let r = if r == 0 { call(nr::MMUEXT_OP, ptr(&op), 1, 0, 0x7ff0, 0) } else { r };
        if r == 0 {
            // SAFETY: selector 0x0f is LDT entry 1 (TI set, RPL 3), the data
            // segment above; FS goes back to NUL right after.
            unsafe { core::arch::asm!("mov {s:x}, 0x0f", "mov fs, {s:x}", "xor {s:e}, {s:e}", "mov fs, {s:x}", s = out(reg) _) };
        }
        let clear = mmuext(13, 0, 0, 0x7ff0);
        let w = writable(l, lm);
        all(&[expect(r, 0), expect(clear, 0), expect(w, 0)])
    }
    set_ldt_unaligned_einval ("mmuext_op", "MMUEXT_SET_LDT", Reject) {
        let op = MmuextOp { cmd: 13, _pad0: 0, arg1: 0x1234_5008, arg2: 4 };
        expect(call(nr::MMUEXT_OP, ptr(&op), 1, 0, 0x7ff0, 0), -EINVAL)
    }
    set_ldt_too_many_entries_einval ("mmuext_op", "MMUEXT_SET_LDT", Reject) {
        let op = MmuextOp { cmd: 13, _pad0: 0, arg1: 0x4000_0000, arg2: 8193 };
        expect(call(nr::MMUEXT_OP, ptr(&op), 1, 0, 0x7ff0, 0), -EINVAL)
    }
    set_ldt_in_xen_range_einval ("mmuext_op", "MMUEXT_SET_LDT", Attack) {
        let op = MmuextOp { cmd: 13, _pad0: 0, arg1: XEN_VA, arg2: 16 };
        expect(call(nr::MMUEXT_OP, ptr(&op), 1, 0, 0x7ff0, 0), -EINVAL)
    }
    set_gdt_writable_frame_einval ("set_gdt", "frame mapped RW", Attack) {
        let Some((_, gm)) = page() else { return error(format_args!("no spare page")) };
        let frames = [gm];
        let r = call(nr::SET_GDT, ptr(&frames), 16, 0, 0, 0);
        if r == 0 { call(nr::SET_GDT, ptr(&frames), 0, 0, 0, 0); }
        expect(r, -EINVAL)
    }
    set_gdt_too_many_entries_einval ("set_gdt", "7169 entries", Reject) {
        let frames = [0u64; 16];
        expect(call(nr::SET_GDT, ptr(&frames), 7169, 0, 0, 0), -EINVAL)
    }
    set_gdt_unmapped_list_efault ("set_gdt", "frame list", Reject) { expect(call(nr::SET_GDT, UNMAPPED, 1, 0, 0, 0), -EFAULT) }
    set_gdt_tss_descriptor_refused ("set_gdt", "system descriptor", Attack) {
        let Some((g, gm)) = page() else { return error(format_args!("no spare page")) };
        // SAFETY: spare writable page: entry 0 is a 64-bit TSS descriptor.
        unsafe { core::ptr::write_volatile(g as *mut u64, 0x0000_8900_0000_0067) };
        read_only(g, gm);
        let frames = [gm];
        let r = call(nr::SET_GDT, ptr(&frames), 16, 0, 0, 0);
        if r == 0 { call(nr::SET_GDT, ptr(&frames), 0, 0, 0, 0); }
        writable(g, gm);
        // SAFETY: writable again.
        unsafe { core::ptr::write_volatile(g as *mut u64, 0) };
        expect(r, -EINVAL)
    }
    update_descriptor_on_a_writable_page ("update_descriptor", "data segment", Accept) {
        let Some((va, m)) = page() else { return error(format_args!("no spare page")) };
        let r = call(nr::UPDATE_DESCRIPTOR, (m << 12) + 8, 0x00cf_9200_0000_ffff, 0, 0, 0);
        // SAFETY: our own spare page.
        let v = unsafe { core::ptr::read_volatile((va + 8) as *const u64) };
        all(&[expect(r, 0), check(v == 0x00cf_f200_0000_ffff, format_args!("wrote {v:#x}"))])
    }
    update_descriptor_unaligned_einval ("update_descriptor", "alignment", Reject) {
        let Some((_, m)) = page() else { return error(format_args!("no spare page")) };
        expect(call(nr::UPDATE_DESCRIPTOR, (m << 12) + 4, 0, 0, 0, 0), -EINVAL)
    }
    update_descriptor_tss_refused ("update_descriptor", "system descriptor", Attack) {
        let Some((_, m)) = page() else { return error(format_args!("no spare page")) };
        expect(call(nr::UPDATE_DESCRIPTOR, m << 12, 0x0000_8900_0000_0067, 0, 0, 0), -EINVAL)
    }
    update_descriptor_into_page_table_refused ("update_descriptor", "page-table frame", Attack) {
        expect(call(nr::UPDATE_DESCRIPTOR, (l4_mfn() << 12) + 8, 0x00cf_f200_0000_ffff, 0, 0, 0), -EINVAL)
    }
    update_descriptor_foreign_frame_refused ("update_descriptor", "frame not owned", Attack) {
        expect(call(nr::UPDATE_DESCRIPTOR, 0x10_0000, 0x00cf_f200_0000_ffff, 0, 0, 0), -EINVAL)
    }
    evtchn_loopback_delivers ("event_channel_op", "EVTCHNOP_send (loopback)", Accept) {
        use crate::events as ev;
        if ev::init() != 0 { return error(format_args!("no event callback")); }
        let Ok(a) = ev::alloc_unbound(0x7ff0) else { return error(format_args!("alloc_unbound failed")) };
        let Ok(b) = ev::bind_interdomain(0x7ff0, a) else { return error(format_args!("bind_interdomain failed")) };
        let before = ev::count(a);
        let r = ev::send(b);
        all(&[expect(r, 0), check(ev::count(a) == before + 1, format_args!("port {a} got {} events", ev::count(a) - before))])
    }
    evtchn_bind_marks_the_new_port_pending ("event_channel_op", "EVTCHNOP_bind_interdomain", Accept) {
        use crate::events as ev;
        let Ok(a) = ev::alloc_unbound(0x7ff0) else { return error(format_args!("alloc_unbound failed")) };
        let Ok(b) = ev::bind_interdomain(0x7ff0, a) else { return error(format_args!("bind_interdomain failed")) };
        check(ev::is_pending(b) && !ev::is_pending(a), format_args!("pending: a {} b {}", ev::is_pending(a), ev::is_pending(b)))
    }
    evtchn_masked_port_does_not_deliver ("event_channel_op", "EVTCHNOP_send (masked)", Accept) {
        use crate::events as ev;
        if ev::init() != 0 { return error(format_args!("no event callback")); }
        let Ok(a) = ev::alloc_unbound(0x7ff0) else { return error(format_args!("alloc_unbound failed")) };
        let Ok(b) = ev::bind_interdomain(0x7ff0, a) else { return error(format_args!("bind failed")) };
        ev::set_mask(a, true);
        let before = ev::count(a);
        let r = ev::send(b);
        all(&[expect(r, 0), check(ev::count(a) == before, format_args!("masked port delivered")), check(ev::is_pending(a), format_args!("not pending"))])
    }
    evtchn_unmask_delivers_what_was_pending ("event_channel_op", "EVTCHNOP_unmask", Accept) {
        use crate::events as ev;
        if ev::init() != 0 { return error(format_args!("no event callback")); }
        let Ok(a) = ev::alloc_unbound(0x7ff0) else { return error(format_args!("alloc_unbound failed")) };
        let Ok(b) = ev::bind_interdomain(0x7ff0, a) else { return error(format_args!("bind failed")) };
        ev::set_mask(a, true);
        ev::send(b);
        let before = ev::count(a);
        let r = ev::unmask(a);
        all(&[expect(r, 0), check(ev::count(a) == before + 1, format_args!("unmask delivered {} events", ev::count(a) - before))])
    }
    evtchn_ipi_to_self_delivers ("event_channel_op", "EVTCHNOP_bind_ipi", Accept) {
        use crate::events as ev;
        if ev::init() != 0 { return error(format_args!("no event callback")); }
        let mut ipi = EvtchnBindIpi { vcpu: 0, port: 0 };
        let r = ev::op(&mut ipi);
        let s = ev::send(ipi.port);
        all(&[expect(r, 0), expect(s, 0), check(ev::count(ipi.port) == 1, format_args!("ipi delivered {}", ev::count(ipi.port)))])
    }
    evtchn_close_makes_the_peer_unbound ("event_channel_op", "EVTCHNOP_close, EVTCHNOP_status", Accept) {
        use crate::events as ev;
        let Ok(a) = ev::alloc_unbound(0x7ff0) else { return error(format_args!("alloc_unbound failed")) };
        let Ok(b) = ev::bind_interdomain(0x7ff0, a) else { return error(format_args!("bind failed")) };
        let c = ev::close(b);
        let mut st = EvtchnStatus { dom: 0x7ff0, port: a, ..Default::default() };
        let r = ev::op(&mut st);
        let mut stb = EvtchnStatus { dom: 0x7ff0, port: b, ..Default::default() };
        let rb = ev::op(&mut stb);
        all(&[
            expect(c, 0),
            expect(r, 0),
            check(st.status == EVTCHNSTAT_UNBOUND, format_args!("peer status {}", st.status)),
            expect(rb, 0),
            check(stb.status == EVTCHNSTAT_CLOSED, format_args!("closed port status {}", stb.status)),
        ])
    }
    evtchn_alloc_until_enospc ("event_channel_op", "EVTCHNOP_alloc_unbound", Attack) {
        use crate::events as ev;
        let mut n = 0;
        let last = loop {
            match ev::alloc_unbound(0x7ff0) {
                Ok(_) => n += 1,
                Err(e) => break e,
            }
            if n > 5000 { break 0; }
        };
        let r = ev::reset();
        all(&[expect(last, -ENOSPC), check(n > 1000, format_args!("only {n} ports")), expect(r, 0)])
    }
    evtchn_send_on_free_port_einval ("event_channel_op", "EVTCHNOP_send", Reject) { expect(crate::events::send(33), -EINVAL) }
    evtchn_send_beyond_ports_einval ("event_channel_op", "EVTCHNOP_send", Attack) { expect(crate::events::send(0xffff_fff0), -EINVAL) }
    evtchn_close_reserved_port_0_einval ("event_channel_op", "EVTCHNOP_close", Reject) { expect(crate::events::close(0), -EINVAL) }
    evtchn_status_of_a_port_beyond_the_abi_einval ("event_channel_op", "EVTCHNOP_status", Reject) {
        expect(crate::events::op(&mut EvtchnStatus { dom: 0x7ff0, port: 0xffff, ..Default::default() }), -EINVAL)
    }
    evtchn_bind_virq_out_of_range_einval ("event_channel_op", "EVTCHNOP_bind_virq", Attack) {
        expect(crate::events::op(&mut EvtchnBindVirq { virq: 24, vcpu: 0, port: 0 }), -EINVAL)
    }
    evtchn_bind_virq_twice_eexist ("event_channel_op", "EVTCHNOP_bind_virq", Reject) {
        const VIRQ_CONSOLE: u32 = 2;
        let first = crate::events::op(&mut EvtchnBindVirq { virq: VIRQ_CONSOLE, vcpu: 0, port: 0 });
        let second = crate::events::op(&mut EvtchnBindVirq { virq: VIRQ_CONSOLE, vcpu: 0, port: 0 });
        all(&[expect(first, 0), expect(second, -EEXIST)])
    }
    evtchn_bind_ipi_to_missing_vcpu_enoent ("event_channel_op", "EVTCHNOP_bind_ipi", Reject) {
        expect(crate::events::op(&mut EvtchnBindIpi { vcpu: 7, port: 0 }), -ENOENT)
    }
    evtchn_unknown_cmd_enosys ("event_channel_op", "cmd 99", Reject) {
        // No structure belongs to sub-op 99: pass 24 zero bytes (the size
        // of the largest, evtchn_status).
        let mut x = EvtchnStatus::default();
        expect(call(nr::EVENT_CHANNEL_OP, 99, ptr_mut(&mut x), 0, 0, 0), -ENOSYS)
    }
    evtchn_unmapped_argument_efault ("event_channel_op", "EVTCHNOP_send", Reject) { expect(call(nr::EVENT_CHANNEL_OP, 4, UNMAPPED, 0, 0, 0), -EFAULT) }
    evtchn_alloc_for_unknown_domain_esrch ("event_channel_op", "EVTCHNOP_alloc_unbound", Reject) {
        expect(crate::events::op(&mut EvtchnAllocUnbound { dom: 0x1234, remote_dom: 0x7ff0, port: 0 }), -ESRCH)
    }
    poll_unallocated_port_einval ("sched_op", "SCHEDOP_poll", Attack) { expect(crate::events::poll(&[0xffff], 0), -EINVAL) }
    poll_too_many_ports_einval ("sched_op", "SCHEDOP_poll", Reject) {
        let ports = [1u32; 129];
        expect(crate::events::poll(&ports, 0), -EINVAL)
    }
    poll_pending_port_returns_at_once ("sched_op", "SCHEDOP_poll", Accept) {
        use crate::events as ev;
        let Ok(a) = ev::alloc_unbound(0x7ff0) else { return error(format_args!("alloc_unbound failed")) };
        let Ok(b) = ev::bind_interdomain(0x7ff0, a) else { return error(format_args!("bind failed")) };
        ev::set_mask(a, true);
        ev::send(b);
        expect(ev::poll(&[a], 0), 0)
    }
    gnttab_query_size_ok ("grant_table_op", "GNTTABOP_query_size", Accept) {
        let mut q = GnttabQuerySize { dom: 0x7ff0, ..Default::default() };
        let r = crate::grants::op(core::slice::from_mut(&mut q));
        all(&[expect(r, 0), check(q.status == 0, format_args!("status {}", q.status)), check(q.max_nr_frames >= 1, format_args!("max_nr_frames {}", q.max_nr_frames))])
    }
    gnttab_setup_table_one_frame ("grant_table_op", "GNTTABOP_setup_table", Accept) { check(grant_table().is_some(), format_args!("setup_table or mapping the frame failed")) }
    gnttab_setup_table_too_many_frames ("grant_table_op", "GNTTABOP_setup_table", Reject) {
        // 100000 frames asked for, room for 4: the hypervisor must refuse
        // before writing the list.
        let mut frames = [0u64; 4];
        let mut s = GnttabSetupTable { dom: 0x7ff0, nr_frames: 100_000, frame_list: ptr_mut(&mut frames), ..Default::default() };
        let r = call(nr::GRANT_TABLE_OP, GNTTABOP_SETUP_TABLE, ptr_mut(&mut s), 1, 0, 0);
        all(&[expect(r, 0), expect(i64::from(s.status), -1)])
    }
    gnttab_transfer_to_self_through_an_accepting_entry ("grant_table_op", "GNTTABOP_transfer", Accept) {
        use crate::grants::{GTF_TRANSFER_COMMITTED, GTF_TRANSFER_COMPLETED, transfer};
        let (Some(t), Some((va, m))) = (grant_table(), page()) else { return error(format_args!("setup failed")) };
        // Only the allocation may reference a transferred frame: unmap it.
        let un = uvm(va, 0);
        t.accept_transfer(20, 0, 0x1234);
        let (r, st) = transfer(m, 0, 20);
        let flags = t.entry_flags(20);
        let frame = t.entry_frame(20);
        let remap = uvm(va, (m << 12) | PTE_RW);
        t.end_access(20);
        all(&[
            expect(un, 0),
            expect(r, 0),
            expect(i64::from(st), 0),
            check(flags & (GTF_TRANSFER_COMMITTED | GTF_TRANSFER_COMPLETED) == GTF_TRANSFER_COMMITTED | GTF_TRANSFER_COMPLETED, format_args!("flags {flags:#x}")),
            check(u64::from(frame) == m, format_args!("entry frame {frame:#x}, want {m:#x}")),
            expect(remap, 0),
        ])
    }
    gnttab_transfer_of_a_mapped_frame_is_bad_page ("grant_table_op", "GNTTABOP_transfer", Reject) {
        let (Some(t), Some((va, m))) = (grant_table(), page()) else { return error(format_args!("setup failed")) };
        t.accept_transfer(21, 0, 0);
        // Still mapped at `va`: more than the allocation references it.
        let (r, st) = crate::grants::transfer(m, 0, 21);
        let still_ours = uvm(va, (m << 12) | PTE_RW);
        t.end_access(21);
        all(&[expect(r, 0), expect(i64::from(st), -9), expect(still_ours, 0)])
    }
    gnttab_transfer_without_an_accepting_entry_fails ("grant_table_op", "GNTTABOP_transfer", Reject) {
        let (Some(t), Some((va, m))) = (grant_table(), page()) else { return error(format_args!("setup failed")) };
        let un = uvm(va, 0);
        // Entry 22 permits access instead of accepting a transfer: the
        // frame is given up and lost, as in Xen.
        t.grant(22, 0, m, false);
        let (r, st) = crate::grants::transfer(m, 0, 22);
        let flags = t.entry_flags(22);
        t.end_access(22);
        // Take a frame back so dom0's reservation is whole again.
        let mut fresh = [0u64];
        let got = increase_reservation(0x7ff0, &mut fresh);
        let remap = if got == 1 { uvm(va, (fresh[0] << 12) | PTE_RW) } else { -1 };
        all(&[
            expect(un, 0),
            expect(r, 0),
            expect(i64::from(st), -1),
            check(flags == crate::grants::GTF_PERMIT_ACCESS, format_args!("flags {flags:#x}")),
            expect(got, 1),
            expect(remap, 0),
        ])
    }
    gnttab_self_grant_maps_reads_and_unmaps ("grant_table_op", "GNTTABOP_map_grant_ref", Accept) {
        let (Some(t), Some((data, dm)), Some((host, hm))) = (grant_table(), page(), page()) else { return error(format_args!("setup failed")) };
        // SAFETY: a spare writable page of ours.
        unsafe { core::ptr::write_volatile(data as *mut u64, 0x9a17) };
        t.grant(10, 0, dm, true);
        let (st, h) = crate::grants::map(host, 10, 0, true);
        // SAFETY: `host` is mapped to the granted frame if the map worked.
        let seen = if st == 0 { unsafe { core::ptr::read_volatile(host as *const u64) } } else { 0 };
        let busy = t.entry_flags(10) & crate::grants::GTF_READING != 0;
        let revoke_while_mapped = t.end_access(10);
        let u = if st == 0 { crate::grants::unmap(host, h) } else { -1 };
        let released = t.entry_flags(10) & (crate::grants::GTF_READING | crate::grants::GTF_WRITING) == 0;
        let ended = t.end_access(10);
        writable(host, hm);
        all(&[
            expect(i64::from(st), 0),
            check(seen == 0x9a17, format_args!("read {seen:#x} through the grant")),
            check(busy, format_args!("GTF_reading not set while mapped")),
            check(!revoke_while_mapped, format_args!("revoked while mapped")),
            expect(i64::from(u), 0),
            check(released, format_args!("flags not cleared by unmap")),
            check(ended, format_args!("end_access failed after unmap")),
        ])
    }
    gnttab_writable_self_grant_sets_writing ("grant_table_op", "GNTTABOP_map_grant_ref", Accept) {
        let (Some(t), Some((_, dm)), Some((host, hm))) = (grant_table(), page(), page()) else { return error(format_args!("setup failed")) };
        t.grant(11, 0, dm, false);
        let (st, h) = crate::grants::map(host, 11, 0, false);
        let writing = t.entry_flags(11) & crate::grants::GTF_WRITING != 0;
        let u = if st == 0 { crate::grants::unmap(host, h) } else { -1 };
        t.end_access(11);
        writable(host, hm);
        all(&[expect(i64::from(st), 0), check(writing, format_args!("GTF_writing not set")), expect(i64::from(u), 0)])
    }
    gnttab_map_wrong_domid_fails ("grant_table_op", "GNTTABOP_map_grant_ref", Attack) {
        let (Some(t), Some((_, dm)), Some((host, _))) = (grant_table(), page(), page()) else { return error(format_args!("setup failed")) };
        t.grant(12, 5, dm, true);
        let (st, _) = crate::grants::map(host, 12, 0, true);
        t.end_access(12);
        expect(i64::from(st), -1)
    }
    gnttab_map_ref_past_the_table_end ("grant_table_op", "GNTTABOP_map_grant_ref", Attack) {
        let (Some(_), Some((host, _))) = (grant_table(), page()) else { return error(format_args!("setup failed")) };
        expect(i64::from(crate::grants::map(host, 0x10_0000, 0, true).0), -3)
    }
    gnttab_writable_map_of_readonly_grant_fails ("grant_table_op", "GNTTABOP_map_grant_ref", Attack) {
        let (Some(t), Some((_, dm)), Some((host, _))) = (grant_table(), page(), page()) else { return error(format_args!("setup failed")) };
        t.grant(13, 0, dm, true);
        let (st, _) = crate::grants::map(host, 13, 0, false);
        t.end_access(13);
        expect(i64::from(st), -1)
    }
    gnttab_map_unknown_domain ("grant_table_op", "GNTTABOP_map_grant_ref", Reject) {
        let (Some(_), Some((host, _))) = (grant_table(), page()) else { return error(format_args!("setup failed")) };
        expect(i64::from(crate::grants::map(host, 1, 0x1234, true).0), -2)
    }
    gnttab_map_with_domid_self_is_bad_domain ("grant_table_op", "GNTTABOP_map_grant_ref", Reject) {
        // Mapping names the granting domain by its real id.
        let (Some(_), Some((host, _))) = (grant_table(), page()) else { return error(format_args!("setup failed")) };
        expect(i64::from(crate::grants::map(host, 1, 0x7ff0, true).0), -2)
    }
    gnttab_map_without_host_or_device_flag ("grant_table_op", "GNTTABOP_map_grant_ref", Reject) {
        let mut m = GnttabMapGrantRef { host_addr: 0x4000_0000, flags: GNTMAP_APPLICATION_MAP, ref_: 1, dom: 0x7ff0, ..Default::default() };
        let r = crate::grants::op(core::slice::from_mut(&mut m));
        all(&[expect(r, 0), expect(i64::from(m.status), -3)])
    }
    gnttab_unmap_bad_handle ("grant_table_op", "GNTTABOP_unmap_grant_ref", Reject) {
        let _ = grant_table();
        expect(i64::from(crate::grants::unmap(0x4000_0000, 200)), -4)
    }
    gnttab_copy_grant_to_frame ("grant_table_op", "GNTTABOP_copy", Accept) {
        use crate::grants::CopySide;
        let (Some(t), Some((src, sm)), Some((dst, dm))) = (grant_table(), page(), page()) else { return error(format_args!("setup failed")) };
        // SAFETY: spare writable pages of ours.
        unsafe {
            core::ptr::write_volatile((src + 16) as *mut u64, 0x00c0_ffee);
            core::ptr::write_volatile((dst + 8) as *mut u64, 0);
        }
        t.grant(14, 0, sm, true);
        let st = crate::grants::copy(CopySide::Gref(14, 0x7ff0), 16, CopySide::Frame(dm, 0x7ff0), 8, 8);
        t.end_access(14);
        // SAFETY: as above.
        let v = unsafe { core::ptr::read_volatile((dst + 8) as *const u64) };
        all(&[expect(i64::from(st), 0), check(v == 0x00c0_ffee, format_args!("copied {v:#x}"))])
    }
    gnttab_copy_past_the_page_end ("grant_table_op", "GNTTABOP_copy", Reject) {
        use crate::grants::CopySide;
        let (Some(_), Some((_, a)), Some((_, b))) = (grant_table(), page(), page()) else { return error(format_args!("setup failed")) };
        expect(i64::from(crate::grants::copy(CopySide::Frame(a, 0x7ff0), 4000, CopySide::Frame(b, 0x7ff0), 0, 200)), -10)
    }
    gnttab_copy_into_a_page_table_refused ("grant_table_op", "GNTTABOP_copy", Attack) {
        use crate::grants::CopySide;
        let (Some(_), Some((_, a))) = (grant_table(), page()) else { return error(format_args!("setup failed")) };
        expect(i64::from(crate::grants::copy(CopySide::Frame(a, 0x7ff0), 0, CopySide::Frame(l4_mfn(), 0x7ff0), 0, 8)), -1)
    }
    gnttab_get_version_is_1 ("grant_table_op", "GNTTABOP_get_version", Accept) {
        let mut v = GnttabGetVersion { dom: 0x7ff0, pad: 0, version: 0 };
        let r = crate::grants::op(core::slice::from_mut(&mut v));
        all(&[expect(r, 0), expect(i64::from(v.version), 1)])
    }
    gnttab_set_version_1_ok ("grant_table_op", "GNTTABOP_set_version", Accept) {
        expect(crate::grants::op(&mut [GnttabSetVersion { version: 1 }]), 0)
    }
    gnttab_dump_table_ok ("grant_table_op", "GNTTABOP_dump_table", Accept) {
        let _ = grant_table();
        let mut d = GnttabDumpTable { dom: 0x7ff0, status: -1 };
        let r = crate::grants::op(core::slice::from_mut(&mut d));
        all(&[expect(r, 0), expect(i64::from(d.status), 0)])
    }
    gnttab_unmapped_op_array_efault ("grant_table_op", "GNTTABOP_map_grant_ref", Reject) { expect(call(nr::GRANT_TABLE_OP, 0, UNMAPPED, 1, 0, 0), -EFAULT) }
    gnttab_unknown_cmd_enosys ("grant_table_op", "cmd 99", Reject) { expect(call(nr::GRANT_TABLE_OP, 99, UNMAPPED, 1, 0, 0), -ENOSYS) }
    set_timer_op_cancel_ok ("set_timer_op", "cancel", Accept) { expect(call(nr::SET_TIMER_OP, 0, 0, 0, 0, 0), 0) }
    set_timer_op_far_future_ok ("set_timer_op", "arm", Accept) {
        let r = call(nr::SET_TIMER_OP, u64::MAX / 2, 0, 0, 0, 0);
        call(nr::SET_TIMER_OP, 0, 0, 0, 0, 0);
        expect(r, 0)
    }
    vcpu_op_singleshot_in_the_past_fires_not_etime ("vcpu_op", "VCPUOP_set_singleshot_timer", Accept) {
        // Xen 4.17 ignores VCPU_SSHOTTMR_future: no -ETIME.
        let t = VcpuSetSingleshotTimer { timeout_abs_ns: 1, flags: VCPU_SSHOTTMR_FUTURE, _pad0: 0 };
        let r = call(nr::VCPU_OP, 8, 0, ptr(&t), 0, 0);
        call(nr::VCPU_OP, 9, 0, 0, 0, 0);
        expect(r, 0)
    }
    set_timer_op_negative_deadline_accepted ("set_timer_op", "arm", Attack) {
        let r = call(nr::SET_TIMER_OP, u64::MAX, 0, 0, 0, 0);
        call(nr::SET_TIMER_OP, 0, 0, 0, 0, 0);
        expect(r, 0)
    }
    vcpu_op_singleshot_future_then_stop ("vcpu_op", "VCPUOP_set_singleshot_timer", Accept) {
        let t = VcpuSetSingleshotTimer { timeout_abs_ns: u64::MAX / 2, flags: VCPU_SSHOTTMR_FUTURE, _pad0: 0 };
        all(&[expect(call(nr::VCPU_OP, 8, 0, ptr(&t), 0, 0), 0), expect(call(nr::VCPU_OP, 9, 0, 0, 0, 0), 0)])
    }
    vcpu_op_missing_vcpu_enoent ("vcpu_op", "VCPUOP_stop_singleshot_timer", Reject) { expect(call(nr::VCPU_OP, 9, 5, 0, 0, 0), -ENOENT) }
    vcpu_op_singleshot_unmapped_efault ("vcpu_op", "VCPUOP_set_singleshot_timer", Reject) { expect(call(nr::VCPU_OP, 8, 0, UNMAPPED, 0, 0), -EFAULT) }
    domctl_getdomaininfo_of_dom0 ("domctl", "XEN_DOMCTL_getdomaininfo", Accept) {
        let mut op = domctl_op(5, 0x15, 0);
        let r = domctl(&mut op);
        let i: XenDomctlGetdomaininfo = op.payload();
        all(&[
            expect(r, 0),
            check(i.domain == 0, format_args!("domain {}", i.domain)),
            check(i.flags & XEN_DOMINF_RUNNING != 0, format_args!("flags {:#x} not running", i.flags)),
            check(i.tot_pages == start_info().nr_pages, format_args!("tot_pages {}", i.tot_pages)),
            check(i.nr_online_vcpus == 1, format_args!("online vcpus {}", i.nr_online_vcpus)),
        ])
    }
    domctl_getdomaininfo_past_the_last_domain_esrch ("domctl", "XEN_DOMCTL_getdomaininfo", Reject) {
        expect(domctl(&mut domctl_op(5, 0x15, 0x7000)), -ESRCH)
    }
    domctl_wrong_interface_version_eacces ("domctl", "interface_version", Reject) {
        expect(domctl(&mut domctl_op(5, 0x14, 0)), -EACCES)
    }
    domctl_unmapped_argument_efault ("domctl", "argument", Reject) { expect(call(nr::DOMCTL, UNMAPPED, 0, 0, 0, 0), -EFAULT) }
    domctl_max_mem_on_dom0_ok ("domctl", "XEN_DOMCTL_max_mem", Accept) {
        expect(max_mem(0, start_info().nr_pages * 4 + 1024), 0)
    }
    domctl_create_populate_destroy ("domctl", "XEN_DOMCTL_createdomain, destroydomain", Accept) {
        let id = match create_domain(0) {
            Ok(id) => id,
            Err(e) => return expect(e, 0),
        };
        let info = domain_info(id);
        let mm = max_mem(id, 16 * 4);
        let pop = populate(id, 16);
        let cur = current_reservation(id);
        let destroyed = domctl_simple(2, id);
        let after = domain_info(id);
        all(&[
            check(id > 0, format_args!("new id {id}")),
            check(matches!(info, Ok((d, f, 0)) if d == id && f & (1 << 3) != 0), format_args!("info {info:?}")),
            expect(mm, 0),
            expect(pop, 16),
            expect(cur, 16),
            expect(destroyed, 0),
            check(!matches!(after, Ok((d, _, _)) if d == id), format_args!("still there: {after:?}")),
        ])
    }
    domctl_pause_counts_and_unpause_underflow ("domctl", "XEN_DOMCTL_pausedomain, unpausedomain", Accept) {
        let id = match create_domain(0) {
            Ok(id) => id,
            Err(e) => return expect(e, 0),
        };
        let p = domctl_simple(3, id);
        let u1 = domctl_simple(4, id);
        let still = domain_info(id).map(|i| i.1 & (1 << 3) != 0);
        let u2 = domctl_simple(4, id);
        let gone = domain_info(id).map(|i| i.1 & (1 << 3) != 0);
        let u3 = domctl_simple(4, id);
        let d = domctl_simple(2, id);
        all(&[expect(p, 0), expect(u1, 0), check(still == Ok(true), format_args!("not paused after one unpause")), expect(u2, 0), check(gone == Ok(false), format_args!("still paused")), expect(u3, -EINVAL), expect(d, 0)])
    }
    domctl_create_with_a_taken_id_eexist ("domctl", "XEN_DOMCTL_createdomain", Reject) {
        let id = match create_domain(0) {
            Ok(id) => id,
            Err(e) => return expect(e, 0),
        };
        let again = create_domain(id);
        domctl_simple(2, id);
        check(again == Err(-EEXIST), format_args!("second create: {again:?}"))
    }
    domctl_pause_unknown_domain_esrch ("domctl", "XEN_DOMCTL_pausedomain", Reject) { expect(domctl_simple(3, 0x1234), -ESRCH) }
    domctl_max_vcpus_must_match_createdomain ("domctl", "XEN_DOMCTL_max_vcpus", Accept) {
        let id = match create_domain(0) {
            Ok(id) => id,
            Err(e) => return expect(e, 0),
        };
        let two = max_vcpus(id, 2);
        let one = max_vcpus(id, 1);
        domctl_simple(2, id);
        all(&[expect(two, -EINVAL), expect(one, 0)])
    }
    domctl_setvcpucontext_before_max_vcpus_einval ("domctl", "XEN_DOMCTL_setvcpucontext", Reject) {
        let id = match create_domain(0) {
            Ok(id) => id,
            Err(e) => return expect(e, 0),
        };
        let ctx = VcpuGuestContext::default();
        let r = vcpu_context(12, id, 0, ptr(&ctx));
        domctl_simple(2, id);
        expect(r, -EINVAL)
    }
    domctl_setvcpucontext_non_canonical_rip_einval ("domctl", "XEN_DOMCTL_setvcpucontext", Attack) {
        let id = match create_with_vcpu() {
            Ok(id) => id,
            Err(e) => return expect(e, 0),
        };
        let mut ctx = VcpuGuestContext::default();
        ctx.user_regs.rip = NONCANON;
        let r = vcpu_context(12, id, 0, ptr(&ctx));
        let bad_vcpu = vcpu_context(12, id, 7, ptr(&ctx));
        domctl_simple(2, id);
        all(&[expect(r, -EINVAL), expect(bad_vcpu, -EINVAL)])
    }
    domctl_setvcpucontext_unmapped_context_efault ("domctl", "XEN_DOMCTL_setvcpucontext", Reject) {
        let id = match create_with_vcpu() {
            Ok(id) => id,
            Err(e) => return expect(e, 0),
        };
        let r = vcpu_context(12, id, 0, UNMAPPED);
        domctl_simple(2, id);
        expect(r, -EFAULT)
    }
    domctl_setvcpucontext_on_self_einval ("domctl", "XEN_DOMCTL_setvcpucontext", Reject) {
        let ctx = VcpuGuestContext::default();
        expect(vcpu_context(12, 0, 0, ptr(&ctx)), -EINVAL)
    }
    domctl_getvcpucontext_uninitialised_enodata ("domctl", "XEN_DOMCTL_getvcpucontext", Reject) {
        let id = match create_with_vcpu() {
            Ok(id) => id,
            Err(e) => return expect(e, 0),
        };
        let mut ctx = VcpuGuestContext::default();
        let r = vcpu_context(13, id, 0, ptr_mut(&mut ctx));
        domctl_simple(2, id);
        expect(r, -ENODATA)
    }
    domctl_getvcpuinfo_of_dom0_online ("domctl", "XEN_DOMCTL_getvcpuinfo", Accept) {
        let (r, info) = vcpu_info(0, 0);
        let (bad, _) = vcpu_info(0, 9);
        all(&[
            expect(r, 0),
            check(info.online == 1, format_args!("online {}", info.online)),
            check(info.running == 1, format_args!("running {}", info.running)),
            expect(bad, -EINVAL),
        ])
    }
    domctl_hypercall_init_on_a_frame_not_owned_einval ("domctl", "XEN_DOMCTL_hypercall_init", Reject) {
        let id = match create_with_vcpu() {
            Ok(id) => id,
            Err(e) => return expect(e, 0),
        };
        // A frame of dom0's: not the new domain's.
        let mut op = domctl_op(22, 0x15, id);
        op.set_payload(&XenDomctlHypercallInit { gmfn: start_info().store_mfn.max(1) });
        let r = domctl(&mut op);
        domctl_simple(2, id);
        expect(r, -EINVAL)
    }
    evtchn_alloc_unbound_in_another_domain ("event_channel_op", "EVTCHNOP_alloc_unbound", Accept) {
        let id = match create_with_vcpu() {
            Ok(id) => id,
            Err(e) => return expect(e, 0),
        };
        let mut a = EvtchnAllocUnbound { dom: id, remote_dom: 0, port: 0 };
        let r = crate::events::op(&mut a);
        let port = a.port;
        // Unbound, for dom0 to bind.
        let mut st = EvtchnStatus { dom: id, port, ..Default::default() };
        let rs = crate::events::op(&mut st);
        domctl_simple(2, id);
        let remote = st.unbound().dom;
        all(&[
            expect(r, 0),
            check(port > 0, format_args!("port {port}")),
            expect(rs, 0),
            check(st.status == EVTCHNSTAT_UNBOUND && remote == 0, format_args!("status {} remote {remote}", st.status)),
        ])
    }
    mmu_update_foreigndom_unknown_domain_esrch ("mmu_update", "foreigndom", Reject) {
        let req = MmuUpdate::default();
        let mut done = 0u32;
        expect(call(nr::MMU_UPDATE, ptr(&req), 1, ptr_mut(&mut done), 0x4321, 0), -ESRCH)
    }
    mmuext_pin_foreign_frame_that_is_no_table_einval ("mmuext_op", "MMUEXT_PIN_L4_TABLE foreigndom", Reject) {
        let id = match create_with_vcpu() {
            Ok(id) => id,
            Err(e) => return expect(e, 0),
        };
        // A frame dom0 owns named as the new domain's: refused.
        let mfn = start_info().store_mfn.max(1);
        let op = MmuextOp { cmd: 3, arg1: mfn, ..Default::default() };
        let r = call(nr::MMUEXT_OP, ptr(&op), 1, 0, u64::from(id), 0);
        domctl_simple(2, id);
        expect(r, -EINVAL)
    }
    memory_op_populate_beyond_max_mem_stops ("memory_op", "XENMEM_populate_physmap", Attack) {
        let id = match create_domain(0) {
            Ok(id) => id,
            Err(e) => return expect(e, 0),
        };
        max_mem(id, 4 * 4);
        let pop = populate(id, 16);
        domctl_simple(2, id);
        check((0..=4).contains(&pop), format_args!("populated {pop} of 16 with a 4-page limit"))
    }
    sysctl_physinfo_reports_memory ("sysctl", "XEN_SYSCTL_physinfo", Accept) {
        let mut op = sysctl_op(3, 0x15);
        let r = sysctl(&mut op);
        let p: XenSysctlPhysinfo = op.payload();
        let (total, free) = (p.total_pages, p.free_pages);
        all(&[expect(r, 0), check(p.nr_cpus >= 1, format_args!("nr_cpus {}", p.nr_cpus)), check(total > start_info().nr_pages && free < total, format_args!("total {total} free {free}"))])
    }
    sysctl_sched_id_is_credit ("sysctl", "XEN_SYSCTL_sched_id", Accept) {
        let mut op = sysctl_op(4, 0x15);
        let r = sysctl(&mut op);
        let id = op.payload::<XenSysctlSchedId>().sched_id;
        // XEN_SCHEDULER_CREDIT (both hypervisors run credit in our tests).
        all(&[expect(r, 0), check(id == XEN_SCHEDULER_CREDIT, format_args!("sched_id {id}"))])
    }
    domctl_scheduler_op_put_then_get_weight_and_cap ("domctl", "XEN_DOMCTL_scheduler_op", Accept) {
        let id = match create_with_vcpu() {
            Ok(id) => id,
            Err(e) => return expect(e, 0),
        };
        let (put, _) = sched_op(id, 5, 0, 512, 30);
        // weight 0 and cap 0xffff leave both alone.
        let (keep, _) = sched_op(id, 5, 0, 0, 0xffff);
        let (get, credit) = sched_op(id, 5, 1, 0, 0);
        domctl_simple(2, id);
        let XenDomctlSchedCredit { weight, cap } = credit;
        all(&[expect(put, 0), expect(keep, 0), expect(get, 0), check(weight == 512 && cap == 30, format_args!("weight {weight} cap {cap}"))])
    }
    domctl_scheduler_op_default_weight_256 ("domctl", "XEN_DOMCTL_scheduler_op", Accept) {
        let (r, c) = sched_op(0, 5, 1, 0, 0);
        all(&[expect(r, 0), check(c.weight == 256 && c.cap == 0, format_args!("weight {} cap {}", c.weight, c.cap))])
    }
    domctl_scheduler_op_wrong_scheduler_einval ("domctl", "XEN_DOMCTL_scheduler_op", Reject) {
        // XEN_SCHEDULER_CREDIT2 while credit runs; then an unknown command.
        let (other, _) = sched_op(0, 6, 1, 0, 0);
        let (bad_cmd, _) = sched_op(0, 5, 7, 0, 0);
        let (vcpu_cmd, _) = sched_op(0, 5, 3, 0, 0);
        all(&[expect(other, -EINVAL), expect(bad_cmd, -EINVAL), expect(vcpu_cmd, -EINVAL)])
    }
    domctl_scheduler_op_unknown_domain_esrch ("domctl", "XEN_DOMCTL_scheduler_op", Reject) { expect(sched_op(0x1234, 5, 1, 0, 0).0, -ESRCH) }
    sysctl_getdomaininfolist_sees_dom0 ("sysctl", "XEN_SYSCTL_getdomaininfolist", Accept) {
        let mut infos = [XenDomctlGetdomaininfo::default(); 4];
        let mut op = sysctl_op(6, 0x15);
        op.set_payload(&XenSysctlGetdomaininfolist { first_domain: 0, max_domains: 4, buffer: ptr_mut(&mut infos), ..Default::default() });
        let r = sysctl(&mut op);
        let n = op.payload::<XenSysctlGetdomaininfolist>().num_domains;
        all(&[expect(r, 0), check(n >= 1, format_args!("num_domains {n}")), check(infos[0].domain == 0, format_args!("first is not dom0"))])
    }
    sysctl_wrong_interface_version_eacces ("sysctl", "interface_version", Reject) {
        expect(sysctl(&mut sysctl_op(3, 0x1)), -EACCES)
    }
    memory_op_current_reservation_is_nr_pages ("memory_op", "XENMEM_current_reservation", Accept) {
        expect(current_reservation(0x7ff0), start_info().nr_pages as i64)
    }
    memory_op_maximum_reservation_not_below_current ("memory_op", "XENMEM_maximum_reservation", Accept) {
        let max = maximum_reservation(0x7ff0);
        check(max >= start_info().nr_pages as i64, format_args!("maximum {max}"))
    }
    memory_op_reservation_of_unknown_domain_esrch ("memory_op", "XENMEM_current_reservation", Reject) {
        expect(current_reservation(0x1234), -ESRCH)
    }
    memory_op_balloon_out_and_back_in ("memory_op", "XENMEM_decrease/increase_reservation", Accept) {
        let Some((va, m)) = page() else { return error(format_args!("no spare page")) };
        let before = current_reservation(0x7ff0);
        let unmapped = uvm(va, 0);
        let dec = decrease_reservation(0x7ff0, &[m]);
        let after_dec = current_reservation(0x7ff0);
        let mut fresh = [0u64];
        let inc = increase_reservation(0x7ff0, &mut fresh);
        let after_inc = current_reservation(0x7ff0);
        let remap = if inc == 1 { uvm(va, (fresh[0] << 12) | PTE_RW) } else { -1 };
        all(&[
            expect(unmapped, 0),
            expect(dec, 1),
            expect(after_dec, before - 1),
            expect(inc, 1),
            expect(after_inc, before),
            expect(remap, 0),
        ])
    }
    memory_op_frames_given_are_scrubbed ("memory_op", "XENMEM_increase_reservation", Attack) {
        // ABI: a frame the hypervisor hands out never carries its previous
        // owner's data. Fill a page with a pattern, give it back, take a
        // frame back (often the same one): it must read as zeros.
        let Some((va, m)) = page() else { return error(format_args!("no spare page")) };
        // SAFETY: `va` is a spare page of ours, mapped writable.
        unsafe { core::ptr::write_bytes(va as *mut u8, 0xa5, 4096) };
        let unmapped = uvm(va, 0);
        let dec = decrease_reservation(0x7ff0, &[m]);
        let mut fresh = [0u64];
        let inc = increase_reservation(0x7ff0, &mut fresh);
        let remap = if inc == 1 { uvm(va, (fresh[0] << 12) | PTE_RW) } else { -1 };
        // SAFETY: mapped just above (checked before reading).
        let dirty = if remap == 0 { unsafe { core::slice::from_raw_parts(va as *const u64, 512) }.iter().filter(|&&w| w != 0).count() } else { 0 };
        all(&[expect(unmapped, 0), expect(dec, 1), expect(inc, 1), expect(remap, 0), check(dirty == 0, format_args!("{dirty} non-zero words"))])
    }
    memory_op_decrease_of_shared_info_does_nothing ("memory_op", "XENMEM_decrease_reservation", Attack) {
        // shared_info is written by the hypervisor: it cannot be given back.
        expect(decrease_reservation(0x7ff0, &[start_info().shared_info >> 12]), 0)
    }
    memory_op_decrease_foreign_frame_does_nothing ("memory_op", "XENMEM_decrease_reservation", Attack) {
        expect(decrease_reservation(0x7ff0, &[0x100]), 0)
    }
    memory_op_unknown_cmd_enosys ("memory_op", "cmd 63", Reject) { expect(call(nr::MEMORY_OP, 63, 0, 0, 0, 0), -ENOSYS) }
    multicall_batch_of_update_va_mapping ("multicall", "update_va_mapping batch", Accept) {
        let (Some((a, am)), Some((b, bm))) = (page(), page()) else { return error(format_args!("no spare pages")) };
        let mut batch = crate::mm::Batch::default();
        batch.map(a, bm, true);
        batch.map(b, am, true);
        let (rc, res) = batch.flush();
        batch.map(a, am, true);
        batch.map(b, bm, true);
        let (rc2, _) = batch.flush();
        all(&[expect(rc, 0), expect(res[0], 0), expect(res[1], 0), expect(rc2, 0)])
    }
}

/// Where xen-core and Xen 4.17 differ, and why. `xtask conformance` accepts
/// a disagreement only for a case listed here.
pub static DIFFERENCES: &[Difference] = &[
    Difference {
        case: "memory_op_frames_given_are_scrubbed",
        reason: "xen-core zeroes every frame when it hands it out, so no domain ever sees another's old data. Xen 4.17 scrubs a freed page only when its domain is dying (or with scrub_domheap): a page a live guest gives back keeps its contents, and the same guest (or another) may get it back unscrubbed; Xen expects guests to clear pages before ballooning them out.",
    },
    Difference {
        case: "gnttab_dump_table_ok",
        reason: "The issue asks for GNTTABOP_dump_table, which xen-core implements (it prints the domain's live entries on the console); Xen 4.17 no longer has the sub-op and returns -ENOSYS.",
    },
    Difference {
        case: "vm_assist_writable_pagetables_refused",
        reason: "xen-core does not emulate writable page tables yet and refuses the assist (-EINVAL); Xen 4.17 accepts it (0).",
    },
    Difference {
        case: "trap_int20_without_entry_is_gp",
        reason: "QEMU TCG reports the IDT vector in a #GP error code as vector*16+2, not the architectural vector*8+2. Xen 4.17 passes that on (0x202); xen-core decodes the `int` instruction and delivers the architectural 0x102.",
    },
    Difference {
        case: "trap_int20_dpl1_allowed_in_kernel",
        reason: "Same TCG error-code quirk: Xen 4.17 derives vector 0x40 from 0x202, finds no DPL-1 entry there and injects #GP; xen-core decodes `int $0x20` and delivers vector 0x20 as the trap table allows. On real hardware both agree.",
    },
    Difference {
        case: "memory_op_decrease_of_shared_info_does_nothing",
        reason: "Xen 4.17 counts the shared_info frame as given back (1 extent) but keeps the page alive through its own reference; xen-core's frame table holds no hypervisor reference on it, so it refuses to give back shared_info and grant-table frames (0 extents) rather than free a frame it still writes. Either way the page is never reused while the domain lives.",
    },
];
