//! What the cases share (and `attacks.rs` re-exports): the `xen_public` types
//! and constants they use, addresses the hypervisor must refuse, and small
//! wrappers for the hypercalls several families issue.

pub use crate::hypercall::{current_reservation, decrease_reservation, increase_reservation, maximum_reservation, xen_version_op};
pub use crate::mm::{PTE_RO, PTE_RW};
pub use crate::traps::{Probe, handler_entry, probe};
pub use xen_public::callback::CallbackRegister;
pub use xen_public::domctl::{
    TSC_MODE_DEFAULT, TSC_MODE_NEVER_EMULATE, XEN_DOMCTL_CREATEDOMAIN, XEN_DOMCTL_DESTROYDOMAIN, XEN_DOMCTL_GETTSCINFO, XEN_DOMCTL_GETVCPUINFO,
    XEN_DOMCTL_MAX_MEM, XEN_DOMCTL_MAX_VCPUS, XEN_DOMCTL_SCHEDULER_OP, XEN_DOMCTL_SETTSCINFO, XEN_DOMINF_RUNNING, XEN_SCHEDULER_CREDIT, XenDomctl,
    XenDomctlCreatedomain, XenDomctlGetdomaininfo, XenDomctlGetvcpuinfo, XenDomctlHypercallInit, XenDomctlMaxMem, XenDomctlMaxVcpus,
    XenDomctlSchedCredit, XenDomctlSchedulerOp, XenDomctlTscInfo, XenDomctlVcpucontext,
};
pub use xen_public::errno::*;
pub use xen_public::event_channel::{
    EVTCHNSTAT_CLOSED, EVTCHNSTAT_INTERDOMAIN, EVTCHNSTAT_UNBOUND, EvtchnAllocUnbound, EvtchnBindIpi, EvtchnBindVcpu, EvtchnBindVirq, EvtchnReset,
    EvtchnStatus,
};
pub use xen_public::grant_table::{
    GNTMAP_APPLICATION_MAP, GNTMAP_DEVICE_MAP, GNTTABOP_SETUP_TABLE, GnttabDumpTable, GnttabGetVersion, GnttabMapGrantRef, GnttabQuerySize,
    GnttabSetVersion, GnttabSetupTable, GnttabUnmapGrantRef,
};
pub use xen_public::hypercall as nr;
pub use xen_public::memory::{E820Entry, XenMachphysMapping, XenMachphysMfnList, XenMemoryExchange, XenMemoryMap, XenMemoryReservation};
pub use xen_public::sysctl::{XenSysctl, XenSysctlGetdomaininfolist, XenSysctlPhysinfo, XenSysctlSchedId};
pub use xen_public::vcpu::{
    TrapInfo, VCPU_SSHOTTMR_FUTURE, VcpuGuestContext, VcpuRegisterVcpuInfo, VcpuRunstateInfo as RunstateInfo, VcpuSetSingleshotTimer,
};
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
/// UVMF_INVLPG.
pub const INVLPG: u64 = xen_public::xen::UVMF_INVLPG;

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

/// `vcpu_op(VCPUOP_register_vcpu_info)` of vCPU 0 to `offset` in `mfn`.
pub fn register_vcpu_info(mfn: u64, offset: u32) -> i64 {
    let info = VcpuRegisterVcpuInfo { mfn, offset, rsvd: 0 };
    super::super::ctx::call(nr::VCPU_OP, 10, 0, super::super::ctx::ptr(&info), 0, 0)
}

/// A one-extent, order-0 XENMEM_exchange of the caller's frames: input
/// list `inp`, output list `out`, `bits` address bits (0: any).
pub fn exchange_arg(inp: u64, out: u64, bits: u32) -> XenMemoryExchange {
    let r = |extent_start, mem_flags| XenMemoryReservation {
        extent_start,
        nr_extents: 1,
        extent_order: 0,
        mem_flags,
        domid: 0x7ff0,
        ..Default::default()
    };
    XenMemoryExchange { in_: r(inp, 0), out: r(out, bits & 0xff), nr_exchanged: 0 }
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
    op.set_payload(&XenDomctlCreatedomain::pv_default());
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
/// XEN_DOMCTL_settscinfo or gettscinfo (`cmd`) of `dom` with `info`:
/// `(result, the info back)`.
pub fn tsc_info(cmd: u32, dom: u16, info: XenDomctlTscInfo) -> (i64, XenDomctlTscInfo) {
    let mut op = domctl_op(cmd, 0x15, dom);
    op.set_payload(&info);
    let r = domctl(&mut op);
    (r, op.payload())
}

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

pub use crate::traps::probe_value;
pub use xen_public::physdev::PHYSDEVOP_SET_IOPL;

/// `physdev_op(PHYSDEVOP_set_iopl, {iopl})`.
pub fn set_iopl(iopl: u32) -> i64 {
    super::super::ctx::call(nr::PHYSDEV_OP, PHYSDEVOP_SET_IOPL, super::super::ctx::ptr(&iopl), 0, 0, 0)
}
