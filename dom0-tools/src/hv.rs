//! Dom0's control hypercalls (libxenctrl's role): domctl, sysctl,
//! memory_op on other domains, foreign MMU operations and event channels
//! in another domain, each with Xen 4.17's structure layouts.
//!
//! Every wrapper builds the `xen_public` structure of its command
//! (`XenDomctl` with a typed payload, `XenSysctl`, ...) and passes only
//! buffers it owns; results are Xen's negated errnos. This module is
//! dom0's hypercall layer: its `unsafe` vouches for the guest handles in
//! domctl and sysctl payloads.

use pv_guest_kernel::hypercall;
use xen_public::domctl::{
    XEN_DOMCTL_CREATEDOMAIN, XEN_DOMCTL_GETVCPUINFO, XEN_DOMCTL_HYPERCALL_INIT, XEN_DOMCTL_MAX_MEM, XEN_DOMCTL_MAX_VCPUS, XEN_DOMCTL_SCHEDOP_GETINFO,
    XEN_DOMCTL_SCHEDOP_PUTINFO, XEN_DOMCTL_SCHEDULER_OP, XEN_DOMCTL_SETVCPUCONTEXT, XEN_SCHEDULER_CREDIT, XenDomctl, XenDomctlCreatedomain,
    XenDomctlGetdomaininfo, XenDomctlGetvcpuinfo, XenDomctlHypercallInit, XenDomctlMaxMem, XenDomctlMaxVcpus, XenDomctlSchedCredit,
    XenDomctlSchedulerOp, XenDomctlVcpucontext,
};
use xen_public::event_channel::EvtchnAllocUnbound;
use xen_public::sysctl::{
    XEN_SYSCTL_GETDOMAININFOLIST, XEN_SYSCTL_PHYSINFO, XEN_SYSCTL_READCONSOLE, XEN_SYSCTL_TBUF_OP, XenSysctl, XenSysctlGetdomaininfolist,
    XenSysctlPhysinfo, XenSysctlReadconsole, XenSysctlTbufOp,
};
use xen_public::vcpu::{VcpuGuestContext, VgcfFlags};
use xen_public::xen::XenctlBitmap;
use xen_public::{FLAT_KERNEL_CS64, FLAT_KERNEL_SS64, MmuUpdate, MmuextOp};

pub use xen_public::domctl::{
    XEN_DOMCTL_DESTROYDOMAIN as DESTROYDOMAIN, XEN_DOMCTL_PAUSEDOMAIN as PAUSEDOMAIN, XEN_DOMCTL_UNPAUSEDOMAIN as UNPAUSEDOMAIN,
};

/// Issue a domctl whose payload holds no guest handle, so that the
/// hypervisor reads and writes the structure and nothing else. Private:
/// every caller below fills such a payload (getvcpucontext, say, would not
/// qualify).
fn domctl_plain(op: &mut XenDomctl) -> i64 {
    // SAFETY: the callers in this module only issue commands whose payload
    // has no guest handle (createdomain, max_vcpus, scheduler_op put/get of
    // the credit parameters, max_mem, getvcpuinfo, hypercall_init, and the
    // payload-less ones); `op` itself is ours.
    unsafe { hypercall::domctl(op) }
}

/// A domctl with no arguments beyond the domain: destroy, pause or
/// unpause (another command is refused with -EINVAL, not issued).
pub fn domctl_simple(cmd: u32, dom: u16) -> i64 {
    if ![DESTROYDOMAIN, PAUSEDOMAIN, UNPAUSEDOMAIN].contains(&cmd) {
        return -xen_public::errno::EINVAL;
    }
    domctl_plain(&mut XenDomctl::new(cmd, dom))
}

/// XEN_DOMCTL_createdomain: a new paused PV domain with one vCPU.
pub fn create_domain() -> Result<u16, i64> {
    create_domain_with(1, [0; 16])
}

/// XEN_DOMCTL_createdomain and max_vcpus: a new paused PV domain with
/// `vcpus` vCPUs (the hypervisor refuses more than it supports) and
/// handle `uuid`.
pub fn create_domain_with(vcpus: u32, uuid: [u8; 16]) -> Result<u16, i64> {
    let mut c = XenDomctl::new(XEN_DOMCTL_CREATEDOMAIN, 0);
    c.set_payload(&XenDomctlCreatedomain { max_vcpus: vcpus, handle: uuid, ..XenDomctlCreatedomain::pv_default() });
    let rc = domctl_plain(&mut c);
    if rc != 0 {
        return Err(rc);
    }
    let dom = c.domain;
    // XEN_DOMCTL_max_vcpus creates the vCPUs createdomain sized.
    let mut m = XenDomctl::new(XEN_DOMCTL_MAX_VCPUS, dom);
    m.set_payload(&XenDomctlMaxVcpus { max: vcpus });
    let rc = domctl_plain(&mut m);
    if rc != 0 {
        domctl_simple(DESTROYDOMAIN, dom);
        return Err(rc);
    }
    Ok(dom)
}

/// XEN_DOMCTL_scheduler_op on `dom` for the credit scheduler: `cmd` is
/// putinfo or getinfo, `credit` the parameters in; the parameters after.
fn sched_credit_op(dom: u16, cmd: u32, credit: XenDomctlSchedCredit) -> Result<XenDomctlSchedCredit, i64> {
    let mut s = XenDomctlSchedulerOp { sched_id: XEN_SCHEDULER_CREDIT, cmd, ..Default::default() };
    s.set_credit(credit);
    let mut d = XenDomctl::new(XEN_DOMCTL_SCHEDULER_OP, dom);
    d.set_payload(&s);
    match domctl_plain(&mut d) {
        0 => Ok(d.payload::<XenDomctlSchedulerOp>().credit()),
        rc => Err(rc),
    }
}

/// XEN_DOMCTL_scheduler_op putinfo for the credit scheduler: weight (0
/// keeps it) and cap in percent of a CPU (0: none, 0xffff keeps it).
pub fn set_sched_credit(dom: u16, weight: u16, cap: u16) -> i64 {
    sched_credit_op(dom, XEN_DOMCTL_SCHEDOP_PUTINFO, XenDomctlSchedCredit { weight, cap }).err().unwrap_or(0)
}

/// XEN_DOMCTL_scheduler_op getinfo for the credit scheduler: (weight, cap).
pub fn sched_credit(dom: u16) -> Result<(u16, u16), i64> {
    sched_credit_op(dom, XEN_DOMCTL_SCHEDOP_GETINFO, XenDomctlSchedCredit::default()).map(|c| (c.weight, c.cap))
}

/// XEN_DOMCTL_max_mem in KiB.
pub fn max_mem(dom: u16, kib: u64) -> i64 {
    let mut m = XenDomctl::new(XEN_DOMCTL_MAX_MEM, dom);
    m.set_payload(&XenDomctlMaxMem { max_memkb: kib });
    domctl_plain(&mut m)
}

/// XEN_DOMCTL_settscinfo: `dom`'s `TSC_MODE_*`, as libxl's
/// `xc_domain_set_tsc_info(xch, domid, tsc_mode, 0, 0, 0)` at creation.
pub fn set_tsc_mode(dom: u16, tsc_mode: u32) -> i64 {
    let mut m = XenDomctl::new(xen_public::domctl::XEN_DOMCTL_SETTSCINFO, dom);
    m.set_payload(&xen_public::domctl::XenDomctlTscInfo { tsc_mode, ..Default::default() });
    domctl_plain(&mut m)
}

/// XEN_DOMCTL_getdomaininfo of exactly `dom`, or -ESRCH.
pub fn getdomaininfo(dom: u16) -> Result<XenDomctlGetdomaininfo, i64> {
    let info = hypercall::domctl_getdomaininfo(dom)?;
    if info.domain != dom {
        return Err(-xen_public::errno::ESRCH);
    }
    Ok(info)
}

/// XEN_DOMCTL_getdomaininfo of exactly `dom`: (flags, tot_pages,
/// shared_info_frame), or -ESRCH.
pub fn domain_info(dom: u16) -> Result<(u32, u64, u64), i64> {
    getdomaininfo(dom).map(|i| (i.flags, i.tot_pages, i.shared_info_frame))
}

/// XEN_DOMCTL_getvcpuinfo of `dom`'s vCPU `vcpu`.
pub fn vcpu_info_of(dom: u16, vcpu: u32) -> Result<XenDomctlGetvcpuinfo, i64> {
    let mut g = XenDomctl::new(XEN_DOMCTL_GETVCPUINFO, dom);
    g.set_payload(&XenDomctlGetvcpuinfo { vcpu, ..Default::default() });
    match domctl_plain(&mut g) {
        0 => Ok(g.payload()),
        rc => Err(rc),
    }
}

/// XEN_DOMCTL_getvcpuinfo of `dom`'s vCPU 0: (CPU time in ns, the
/// physical CPU it runs or last ran on).
fn vcpu_info(dom: u16) -> Option<(u64, u32)> {
    vcpu_info_of(dom, 0).ok().map(|i| (i.cpu_time, i.cpu))
}

/// Nanoseconds of CPU time `dom`'s vCPU 0 has used, 0 on error.
pub fn vcpu_time(dom: u16) -> u64 {
    vcpu_info(dom).map_or(0, |(t, _)| t)
}

/// The physical CPU `dom`'s vCPU 0 runs or last ran on.
pub fn vcpu_cpu(dom: u16) -> Option<u32> {
    vcpu_info(dom).map(|(_, cpu)| cpu)
}

/// The shared_info frame of `dom`.
pub fn shared_info_frame(dom: u16) -> Result<u64, i64> {
    domain_info(dom).map(|(_, _, f)| f)
}

/// XEN_DOMCTL_hypercall_init: fill frame `mfn` of `dom` with stubs.
pub fn hypercall_init(dom: u16, mfn: u64) -> i64 {
    let mut h = XenDomctl::new(XEN_DOMCTL_HYPERCALL_INIT, dom);
    h.set_payload(&XenDomctlHypercallInit { gmfn: mfn });
    domctl_plain(&mut h)
}

/// XEN_DOMCTL_setvcpucontext for vCPU 0 of a new 64-bit PV domain: kernel
/// mode, online, entering at `rip` with `rsp` and `rsi` (start_info), on
/// the L4 in `l4_mfn`.
pub fn set_vcpu_context(dom: u16, rip: u64, rsp: u64, rsi: u64, l4_mfn: u64) -> i64 {
    let mut ctx = VcpuGuestContext { flags: (VgcfFlags::IN_KERNEL | VgcfFlags::ONLINE).bits(), ..Default::default() };
    ctx.user_regs.rsi = rsi;
    ctx.user_regs.rip = rip;
    ctx.user_regs.cs = FLAT_KERNEL_CS64;
    ctx.user_regs.rflags = 1 << 9; // IF
    ctx.user_regs.rsp = rsp;
    ctx.user_regs.ss = FLAT_KERNEL_SS64;
    ctx.kernel_ss = u64::from(FLAT_KERNEL_SS64);
    ctx.kernel_sp = rsp;
    ctx.ctrlreg[3] = l4_mfn << 12; // xen_pfn_to_cr3
    let mut d = XenDomctl::new(XEN_DOMCTL_SETVCPUCONTEXT, dom);
    d.set_payload(&XenDomctlVcpucontext { vcpu: 0, _pad0: 0, ctxt: core::ptr::addr_of!(ctx) as u64 });
    // SAFETY: the payload's one handle is `ctx`, a whole vcpu_guest_context
    // of ours that setvcpucontext only reads and that lives across the call.
    unsafe { hypercall::domctl(&mut d) }
}

/// XENMEM_populate_physmap on `dom` for pfns `first..first + p2m.len()`;
/// on success `p2m` holds each pfn's machine frame.
pub fn populate_physmap(dom: u16, first: u64, p2m: &mut [u64]) -> Result<(), i64> {
    for (pfn, e) in (first..).zip(p2m.iter_mut()) {
        *e = pfn;
    }
    let mut done = 0usize;
    while done < p2m.len() {
        let rc = hypercall::populate_physmap(dom, &mut p2m[done..]);
        if rc <= 0 {
            return Err(if rc == 0 { -xen_public::errno::ENOMEM } else { rc });
        }
        done += rc as usize;
    }
    Ok(())
}

/// `mmu_update` with `foreigndom`.
pub fn mmu_update(reqs: &[MmuUpdate], foreigndom: u16) -> i64 {
    hypercall::mmu_update(reqs, foreigndom).0
}

/// L1 entries set per `mmu_update` by [`map_frames`].
const MAP_BATCH: usize = 64;

/// Point dom0's L1 entries at frames of `owner`: entry `slot_maddr(first +
/// i)` (its machine address) maps `mfns[i]` with PTE `flags`, a batch per
/// `mmu_update`, then dom0's TLB is flushed. Returns the slots the calls
/// reached, counted in whole batches even when one failed part way (the
/// caller clears those too), and the first error.
pub fn map_frames(slot_maddr: impl Fn(u64) -> u64, first: u64, mfns: &[u64], flags: u64, owner: u16) -> (u64, Result<(), i64>) {
    let mut reached = 0;
    for chunk in mfns.chunks(MAP_BATCH) {
        let mut reqs = [MmuUpdate::default(); MAP_BATCH];
        for (j, (r, mfn)) in reqs.iter_mut().zip(chunk).enumerate() {
            *r = MmuUpdate { ptr: slot_maddr(first + reached + j as u64), val: (mfn << 12) | flags };
        }
        let rc = mmu_update(&reqs[..chunk.len()], owner);
        reached += chunk.len() as u64;
        if rc != 0 {
            return (reached, Err(rc));
        }
    }
    flush_tlb_local();
    (reached, Ok(()))
}

/// `mmuext_op` of one command with `foreigndom`.
fn mmuext_foreign(cmd: u32, arg1: u64, foreigndom: u16) -> i64 {
    hypercall::mmuext_op(&[MmuextOp { cmd, _pad0: 0, arg1, arg2: 0 }], foreigndom)
}

/// MMUEXT_PIN_L4_TABLE on a frame of `dom`.
pub fn pin_l4(dom: u16, mfn: u64) -> i64 {
    mmuext_foreign(3, mfn, dom)
}

/// MMUEXT_TLB_FLUSH_LOCAL.
pub fn flush_tlb_local() {
    mmuext_foreign(6, 0, xen_public::DOMID_SELF);
}

/// EVTCHNOP_alloc_unbound in `dom`'s table, offered to `remote`.
pub fn alloc_unbound(dom: u16, remote: u16) -> Result<u32, i64> {
    let mut a = EvtchnAllocUnbound { dom, remote_dom: remote, port: 0 };
    let rc = pv_guest_kernel::events::op(&mut a);
    if rc != 0 { Err(rc) } else { Ok(a.port) }
}

/// Issue a sysctl whose payload holds no guest handle (physinfo, and
/// xen-core's audit); private, as [`domctl_plain`].
fn sysctl_plain(op: &mut XenSysctl) -> i64 {
    // SAFETY: the callers in this module only issue commands whose payload
    // has no guest handle; `op` itself is ours.
    unsafe { hypercall::sysctl(op) }
}

/// XEN_SYSCTL_physinfo.
pub fn physinfo() -> Result<XenSysctlPhysinfo, i64> {
    let mut s = XenSysctl::new(XEN_SYSCTL_PHYSINFO);
    match sysctl_plain(&mut s) {
        0 => Ok(s.payload()),
        rc => Err(rc),
    }
}

/// Free machine frames (sysctl physinfo), 0 on error.
pub fn free_pages() -> u64 {
    physinfo().map_or(0, |p| p.free_pages)
}

/// XEN_SYSCTL_getdomaininfolist from domain `first` into `infos`: how many
/// records were filled.
pub fn domain_infos(first: u16, infos: &mut [XenDomctlGetdomaininfo]) -> Result<usize, i64> {
    let mut s = XenSysctl::new(XEN_SYSCTL_GETDOMAININFOLIST);
    s.set_payload(&XenSysctlGetdomaininfolist {
        first_domain: first,
        max_domains: infos.len() as u32,
        buffer: infos.as_mut_ptr() as u64,
        ..Default::default()
    });
    // SAFETY: the payload's one handle is `infos`, room for `max_domains`
    // records, the most the hypervisor writes.
    match unsafe { hypercall::sysctl(&mut s) } {
        0 => Ok((s.payload::<XenSysctlGetdomaininfolist>().num_domains as usize).min(infos.len())),
        rc => Err(rc),
    }
}

/// XEN_SYSCTL_readconsole (`xl dmesg`): copy the hypervisor's console
/// history into `buf`, from its oldest byte or, if `incremental`, from
/// `index` (an index returned by an earlier call); `clear` then forgets
/// what was read. `(bytes copied, index after them)` or the errno.
pub fn readconsole(clear: bool, incremental: bool, index: u32, buf: &mut [u8]) -> Result<(u32, u32), i64> {
    let mut s = XenSysctl::new(XEN_SYSCTL_READCONSOLE);
    s.set_payload(&XenSysctlReadconsole {
        clear: clear.into(),
        incremental: incremental.into(),
        index,
        buffer: buf.as_mut_ptr() as u64,
        count: u32::try_from(buf.len()).unwrap_or(u32::MAX),
        ..Default::default()
    });
    // SAFETY: the payload's one handle is `buf`, with `count` no more than
    // its length, the most the hypervisor writes.
    match unsafe { hypercall::sysctl(&mut s) } {
        0 => {
            let r: XenSysctlReadconsole = s.payload();
            Ok((r.count.min(u32::try_from(buf.len()).unwrap_or(u32::MAX)), r.index))
        }
        rc => Err(rc),
    }
}

/// XEN_SYSCTL_tbuf_op of a command whose payload holds no guest handle
/// (`get_info`, `set_evt_mask`, `set_size`, `enable`, `disable`; another
/// is refused with -EINVAL, not issued): Xen's answer.
pub fn tbuf_op(cmd: u32, evt_mask: u32, size: u32) -> Result<XenSysctlTbufOp, i64> {
    use xen_public::sysctl::{
        XEN_SYSCTL_TBUFOP_DISABLE, XEN_SYSCTL_TBUFOP_ENABLE, XEN_SYSCTL_TBUFOP_GET_INFO, XEN_SYSCTL_TBUFOP_SET_EVT_MASK, XEN_SYSCTL_TBUFOP_SET_SIZE,
    };
    let plain =
        [XEN_SYSCTL_TBUFOP_GET_INFO, XEN_SYSCTL_TBUFOP_SET_EVT_MASK, XEN_SYSCTL_TBUFOP_SET_SIZE, XEN_SYSCTL_TBUFOP_ENABLE, XEN_SYSCTL_TBUFOP_DISABLE];
    if !plain.contains(&cmd) {
        return Err(-xen_public::errno::EINVAL);
    }
    let mut s = XenSysctl::new(XEN_SYSCTL_TBUF_OP);
    s.set_payload(&XenSysctlTbufOp { cmd, evt_mask, size, ..Default::default() });
    match sysctl_plain(&mut s) {
        0 => Ok(s.payload()),
        rc => Err(rc),
    }
}

/// XEN_SYSCTL_tbuf_op set_cpu_mask: trace the CPUs whose bits are set in
/// `mask` (bit `i` of byte `i / 8` is CPU `i`, as `xenctl_bitmap`).
pub fn tbuf_set_cpu_mask(mask: &[u8]) -> i64 {
    let mut s = XenSysctl::new(XEN_SYSCTL_TBUF_OP);
    let cpu_mask = XenctlBitmap { bitmap: mask.as_ptr() as u64, nr_bits: (mask.len().min(1 << 20) * 8) as u32, _pad0: 0 };
    s.set_payload(&XenSysctlTbufOp { cmd: xen_public::sysctl::XEN_SYSCTL_TBUFOP_SET_CPU_MASK, cpu_mask, ..Default::default() });
    // SAFETY: the payload's one handle is `mask`, `nr_bits / 8` bytes that
    // set_cpu_mask only reads (xenctl_bitmap_to_cpumask) and that live
    // across the call.
    unsafe { hypercall::sysctl(&mut s) }
}

/// `XEN_SYSCTL_xencore_audit`: xen-core's private sysctl (0x8001) that
/// runs its frame-table invariant auditor.
pub const SYSCTL_XENCORE_AUDIT: u32 = xen_public::xencore::XEN_SYSCTL_XENCORE_AUDIT;

/// What an audit reported.
#[derive(Clone, Copy, Debug, Default)]
pub struct Audit {
    /// 0 clean, -EIO violations found, another errno if it did not run
    /// (-ENOSYS on a hypervisor without the auditor).
    pub rc: i64,
    /// Violations found (the first ones are in the hypervisor log).
    pub violations: u32,
    /// Live domains seen.
    pub domains: u32,
    /// Frames checked.
    pub frames: u64,
    /// Live page tables walked.
    pub tables: u64,
}

/// Run the hypervisor's invariant auditor (xen-core only).
pub fn audit() -> Audit {
    let mut s = XenSysctl::new(SYSCTL_XENCORE_AUDIT);
    let rc = sysctl_plain(&mut s);
    let r: xen_public::xencore::AuditResult = s.payload();
    Audit { rc, violations: r.violations, domains: r.domains, frames: r.frames, tables: r.tables }
}

/// How many of vCPU 0 of `domid`'s hypercalls ran out of time and
/// continued themselves (xen-core's private `XEN_SYSCTL_xencore_vcpu_stats`;
/// -ENOSYS on Xen).
pub fn preempted_hypercalls(domid: u16) -> Result<u64, i64> {
    hypercall::xencore_vcpu_stats(domid)
}
