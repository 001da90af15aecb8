//! Dom0's control hypercalls (libxenctrl's role): domctl, sysctl,
//! memory_op on other domains, foreign MMU operations and event channels
//! in another domain, each with Xen 4.17's structure layouts.
//!
//! Every wrapper passes only buffers it owns; results are Xen's negated
//! errnos.

use pv_guest_kernel::hypercall::hypercall5;
use xen_public::hypercall as nr;

/// `XEN_DOMCTL_INTERFACE_VERSION` and `XEN_SYSCTL_INTERFACE_VERSION` of 4.17.
const INTERFACE_VERSION: u32 = 0x15;

/// XEN_DOMCTL_createdomain.
pub const CREATEDOMAIN: u32 = 1;
/// XEN_DOMCTL_destroydomain.
pub const DESTROYDOMAIN: u32 = 2;
/// XEN_DOMCTL_pausedomain.
pub const PAUSEDOMAIN: u32 = 3;
/// XEN_DOMCTL_unpausedomain.
pub const UNPAUSEDOMAIN: u32 = 4;
const GETDOMAININFO: u32 = 5;
const MAX_MEM: u32 = 11;
const SETVCPUCONTEXT: u32 = 12;
const MAX_VCPUS: u32 = 15;
const HYPERCALL_INIT: u32 = 22;

/// A `struct xen_domctl` (256 bytes), as u64 words.
pub type Domctl = [u64; 32];

/// A domctl for `dom` with the command and version filled in.
pub fn domctl_op(cmd: u32, dom: u16) -> Domctl {
    let mut o = [0u64; 32];
    o[0] = u64::from(cmd) | (u64::from(INTERFACE_VERSION) << 32);
    o[1] = u64::from(dom);
    o
}

/// Issue a domctl.
pub fn domctl(op: &mut Domctl) -> i64 {
    // SAFETY: the domctl structure is ours, 256 bytes.
    unsafe { hypercall5(nr::DOMCTL, op.as_mut_ptr() as u64, 0, 0, 0, 0) }
}

/// A domctl with no arguments beyond the domain (pause, unpause, destroy).
pub fn domctl_simple(cmd: u32, dom: u16) -> i64 {
    domctl(&mut domctl_op(cmd, dom))
}

/// XEN_DOMCTL_createdomain: a new paused PV domain with one vCPU.
pub fn create_domain() -> Result<u16, i64> {
    let mut c = domctl_op(CREATEDOMAIN, 0);
    // xen_domctl_createdomain at 16: ssidref, handle[16], flags @36,
    // iommu_opts @40, max_vcpus @44, max_evtchn_port @48,
    // max_grant_frames @52, max_maptrack_frames @56, grant_opts @60.
    c[5] = 1 << 32; // max_vcpus = 1
    c[6] = 1023 | (u64::from(u32::MAX) << 32);
    c[7] = u64::from(u32::MAX) | (1 << 32); // grant_opts: version 1
    let rc = domctl(&mut c);
    if rc != 0 {
        return Err(rc);
    }
    let dom = c[1] as u16;
    // XEN_DOMCTL_max_vcpus creates the vCPUs createdomain sized.
    let mut m = domctl_op(MAX_VCPUS, dom);
    m[2] = 1;
    let rc = domctl(&mut m);
    if rc != 0 {
        domctl_simple(DESTROYDOMAIN, dom);
        return Err(rc);
    }
    Ok(dom)
}

const SCHEDULER_OP: u32 = 16;
const SCHEDULER_CREDIT: u64 = 5;

/// XEN_DOMCTL_scheduler_op putinfo for the credit scheduler: weight (0
/// keeps it) and cap in percent of a CPU (0: none, 0xffff keeps it).
pub fn set_sched_credit(dom: u16, weight: u16, cap: u16) -> i64 {
    const PUTINFO: u64 = 0;
    let mut s = domctl_op(SCHEDULER_OP, dom);
    // xen_domctl_scheduler_op at 16: sched_id, cmd, then weight and cap.
    s[2] = SCHEDULER_CREDIT | (PUTINFO << 32);
    s[3] = u64::from(weight) | (u64::from(cap) << 16);
    domctl(&mut s)
}

/// XEN_DOMCTL_scheduler_op getinfo for the credit scheduler: (weight, cap).
pub fn sched_credit(dom: u16) -> Result<(u16, u16), i64> {
    const GETINFO: u64 = 1;
    let mut s = domctl_op(SCHEDULER_OP, dom);
    s[2] = SCHEDULER_CREDIT | (GETINFO << 32);
    match domctl(&mut s) {
        0 => Ok((s[3] as u16, (s[3] >> 16) as u16)),
        rc => Err(rc),
    }
}

/// XEN_DOMCTL_max_mem in KiB.
pub fn max_mem(dom: u16, kib: u64) -> i64 {
    let mut m = domctl_op(MAX_MEM, dom);
    m[2] = kib;
    domctl(&mut m)
}

/// XEN_DOMCTL_getdomaininfo of exactly `dom`: (flags, tot_pages,
/// shared_info_frame), or -ESRCH.
pub fn domain_info(dom: u16) -> Result<(u32, u64, u64), i64> {
    let mut g = domctl_op(GETDOMAININFO, dom);
    let rc = domctl(&mut g);
    if rc != 0 {
        return Err(rc);
    }
    if g[2] as u16 != dom {
        return Err(-xen_public::errno::ESRCH);
    }
    Ok(((g[2] >> 32) as u32, g[3], g[8]))
}

/// XEN_DOMCTL_getvcpuinfo of `dom`'s vCPU 0: (CPU time in ns, the
/// physical CPU it runs or last ran on).
fn vcpu_info(dom: u16) -> Option<(u64, u32)> {
    const GETVCPUINFO: u32 = 14;
    let mut g = domctl_op(GETVCPUINFO, dom);
    // xen_domctl_getvcpuinfo at 16: vcpu, flags, cpu_time @24, cpu @32.
    (domctl(&mut g) == 0).then_some((g[3], g[4] as u32))
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
    let mut h = domctl_op(HYPERCALL_INIT, dom);
    h[2] = mfn;
    domctl(&mut h)
}

/// XEN_DOMCTL_setvcpucontext for vCPU 0 of a new 64-bit PV domain: kernel
/// mode, online, entering at `rip` with `rsp` and `rsi` (start_info), on
/// the L4 in `l4_mfn`.
pub fn set_vcpu_context(dom: u16, rip: u64, rsp: u64, rsi: u64, l4_mfn: u64) -> i64 {
    const FLAT_KERNEL_CS64: u64 = 0xe033;
    const FLAT_KERNEL_SS64: u64 = 0xe02b;
    const VGCF_IN_KERNEL: u64 = 1 << 2;
    const VGCF_ONLINE: u64 = 1 << 5;
    // struct vcpu_guest_context, 5168 bytes, as words.
    let mut ctx = [0u64; 646];
    ctx[64] = VGCF_IN_KERNEL | VGCF_ONLINE; // flags @512
    let regs = 65; // user_regs @520
    ctx[regs + 13] = rsi; // rsi
    ctx[regs + 16] = rip; // rip @128
    ctx[regs + 17] = FLAT_KERNEL_CS64; // cs @136
    ctx[regs + 18] = 1 << 9; // rflags @144: IF
    ctx[regs + 19] = rsp; // rsp @152
    ctx[regs + 20] = FLAT_KERNEL_SS64; // ss @160
    ctx[621] = FLAT_KERNEL_SS64; // kernel_ss @4968
    ctx[622] = rsp; // kernel_sp @4976
    ctx[623 + 3] = l4_mfn << 12; // ctrlreg[3] @5008: xen_pfn_to_cr3
    let mut d = domctl_op(SETVCPUCONTEXT, dom);
    d[2] = 0; // vcpu 0
    d[3] = ctx.as_ptr() as u64;
    domctl(&mut d)
}

/// XENMEM_populate_physmap on `dom` for pfns `0..p2m.len()`; on success
/// `p2m` holds each pfn's machine frame.
pub fn populate_physmap(dom: u16, p2m: &mut [u64]) -> Result<(), i64> {
    const POPULATE_PHYSMAP: u64 = 6;
    for (pfn, e) in p2m.iter_mut().enumerate() {
        *e = pfn as u64;
    }
    let mut done = 0usize;
    while done < p2m.len() {
        let rest = &mut p2m[done..];
        // struct xen_memory_reservation: extent_start, nr_extents,
        // extent_order, mem_flags, domid.
        let resv: [u64; 4] = [rest.as_mut_ptr() as u64, rest.len() as u64, 0, u64::from(dom)];
        // SAFETY: the reservation and its extent list are ours; the
        // hypervisor writes machine frames into the list.
        let rc = unsafe { hypercall5(nr::MEMORY_OP, POPULATE_PHYSMAP, resv.as_ptr() as u64, 0, 0, 0) };
        if rc <= 0 {
            return Err(if rc == 0 { -xen_public::errno::ENOMEM } else { rc });
        }
        done += rc as usize;
    }
    Ok(())
}

/// `mmu_update` with `foreigndom`.
pub fn mmu_update(reqs: &[[u64; 2]], foreigndom: u16) -> i64 {
    let mut done = 0u32;
    // SAFETY: the request array is ours and only read; `done` is ours.
    unsafe { hypercall5(nr::MMU_UPDATE, reqs.as_ptr() as u64, reqs.len() as u64, core::ptr::addr_of_mut!(done) as u64, u64::from(foreigndom), 0) }
}

/// `mmuext_op` of one command with `foreigndom`.
fn mmuext_foreign(cmd: u32, arg1: u64, foreigndom: u16) -> i64 {
    let op: [u64; 3] = [u64::from(cmd), arg1, 0];
    // SAFETY: the op is ours and only read; no done pointer.
    unsafe { hypercall5(nr::MMUEXT_OP, op.as_ptr() as u64, 1, 0, u64::from(foreigndom), 0) }
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
    let mut a: [u16; 4] = [dom, remote, 0, 0];
    let rc = pv_guest_kernel::events::op(6, &mut a);
    if rc != 0 { Err(rc) } else { Ok(u32::from(a[2]) | (u32::from(a[3]) << 16)) }
}

/// Free machine frames (sysctl physinfo).
pub fn free_pages() -> u64 {
    let mut s = [0u32; 34];
    s[0] = 3;
    s[1] = INTERFACE_VERSION;
    // SAFETY: the sysctl structure is ours.
    let rc = unsafe { hypercall5(nr::SYSCTL, s.as_mut_ptr() as u64, 0, 0, 0, 0) };
    if rc != 0 { 0 } else { u64::from(s[14]) | (u64::from(s[15]) << 32) }
}

/// `XEN_SYSCTL_xencore_audit`: xen-core's private sysctl (0x8001) that
/// runs its frame-table invariant auditor.
pub const SYSCTL_XENCORE_AUDIT: u32 = 0x8001;

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
    let mut s = [0u32; 34];
    s[0] = SYSCTL_XENCORE_AUDIT;
    s[1] = INTERFACE_VERSION;
    // SAFETY: the sysctl structure is ours.
    let rc = unsafe { hypercall5(nr::SYSCTL, s.as_mut_ptr() as u64, 0, 0, 0, 0) };
    let w = |i: usize| u64::from(s[i]) | (u64::from(s[i + 1]) << 32);
    Audit { rc, violations: s[2], domains: s[3], frames: w(4), tables: w(6) }
}
