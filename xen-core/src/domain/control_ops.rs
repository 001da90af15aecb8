//! `domctl` and `sysctl`: the control interfaces of the privileged domain,
//! with Xen 4.17's interface versions and layouts. Other domains can be
//! created, given memory, paused, unpaused, inspected, started (vCPU
//! contexts, hypercall page, scheduler parameters) and destroyed. Generic
//! over the caller's memory ([`GuestAccess`]) and over the machine
//! ([`ControlHost`]: domain slots, the domid allocator, frames, the
//! scheduler, what the machine is), so decoding, errno and every effect on
//! other domains are tested on the host.
//!
//! Invariants: only the privileged domain gets past the first check (a
//! domU's domctl or sysctl is -EPERM before anything is read); a domain
//! never pauses, unpauses, destroys or (re)starts itself through domctl;
//! a domain being destroyed leaves its slot first (nothing finds it any
//! more), then drops its references, then gives back its frames
//! preemptibly, and its domid is freed only when all of that is done.
#![forbid(unsafe_code)]

use super::domid::DomidAllocator;
use super::memory_ops::{FramePool, MemoryHost};
use super::vcpu::Vcpu;
use super::vcpu_ctx_ops::{self, VcpuHost};
use super::{Domain, Guest};
use crate::mm::Mfn;
use crate::mm::page_type::{PageMem, PageType};
use crate::sched::credit::Params;
use xen_public::domctl::*;
use xen_public::errno::{EACCES, EEXIST, EFAULT, EINVAL, ENOENT, ENOMEM, ENOSYS, EPERM, ESRCH};
use xen_public::sysctl::*;
use xen_public::{XEN_DOMINF_BLOCKED, XEN_DOMINF_PAUSED, XEN_DOMINF_RUNNING, XEN_DOMINF_SHUTDOWN, XEN_DOMINF_SHUTDOWNSHIFT};

use super::guest_mem::{GuestAccess, rc};
pub use super::vcpu_ctx_ops::ERESTART;

/// A hypercall's result for the guest's RAX (a negated errno on failure).
type Ret = i64;

/// `VIRQ_DOM_EXC`: a domain shut down or died.
pub const VIRQ_DOM_EXC: u32 = 3;

/// Why a domain could not be taken out of its slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoveError {
    /// No such domain (or the caller's own).
    NotFound,
    /// It still runs on another CPU: it was marked dying and that CPU
    /// kicked; try again (a continuation).
    Running,
}

/// What `domctl` and `sysctl` need from the live machine beyond the
/// caller's vCPU and domain.
pub trait ControlHost: MemoryHost + VcpuHost {
    /// A domain taken out of its slot (its storage is given back when
    /// this is dropped).
    type Removed: core::ops::DerefMut<Target = Guest>;
    /// The smallest domid in a slot that is at least `from` (the caller's
    /// own included).
    fn next_domid_from(&self, from: u16) -> Option<u16>;
    /// Whether `domid` is in a slot (the caller's own included).
    fn in_slot(&self, domid: u16) -> bool;
    /// Run `f` on the domain `domid` and its vCPUs, never the caller's own
    /// (`None` if it is in no slot).
    fn with_guest<R>(&mut self, domid: u16, f: impl FnOnce(&mut Guest, &mut Self) -> R) -> Option<R>;
    /// Put a new domain in a free slot; `false` (the domain dropped) if
    /// there is none.
    fn install(&mut self, g: Guest) -> bool;
    /// Take `domid` out of its slot (destruction).
    fn remove(&mut self, domid: u16) -> Result<Self::Removed, RemoveError>;
    /// Run `f` on the domid allocator.
    fn with_domids<R>(&mut self, f: impl FnOnce(&mut DomidAllocator) -> R) -> R;
    /// The credit scheduler's parameters of the domain in `slot`.
    fn sched_params(&self, slot: usize) -> Option<Params>;
    /// Set them.
    fn set_sched_params(&mut self, slot: usize, params: Params);
    /// CPUs online.
    fn online_cpus(&self) -> u32;
    /// The TSC frequency in kHz.
    fn cpu_khz(&self) -> u32;
    /// Mark the port of `d` bound to `virq` pending, if any.
    fn raise_virq(&mut self, d: &mut Domain, virq: u32);
    /// Drop every grant, mapping and page-table reference the domain
    /// `dead` (out of its slot) holds, and every other domain's record of
    /// its grants; `caller` is the destroying domain.
    fn release_refs(&mut self, caller: &mut Domain, dead: &mut Guest);
    /// Stub `i` of the hypercall page.
    fn hypercall_stub(&self, i: usize) -> [u8; 32];
    /// `XEN_SYSCTL_xencore_audit` for the privileged caller; `op` is the
    /// `xen_sysctl` read from `arg`.
    fn xencore_audit(&mut self, v: &mut Vcpu, d: &mut Domain, arg: u64, op: &mut XenSysctl) -> Ret;
}

/// Whether `dom` names the caller `d` (DOMID_SELF or its own id).
fn is_self(d: &Domain, dom: u16) -> bool {
    dom == d.domid || dom == xen_public::DOMID_SELF
}

/// Xen's `XEN_DOMINF_*` flags of `d`, whose vCPUs are `vcpus`; `running`
/// for the caller, which runs here; any other domain runs if one of its
/// vCPUs is on another CPU right now. As Xen's `getdomaininfo`, over the
/// online vCPUs only: blocked when every one of them is, running when one
/// is, and neither when none is online.
fn dominf_flags<H: VcpuHost>(h: &H, d: &Domain, vcpus: &[Vcpu], running: bool) -> u32 {
    let mut flags = 0;
    let mut online = vcpus.iter().filter(|v| v.vcpu_up).peekable();
    if online.peek().is_some() {
        let on_a_cpu = || vcpus.iter().any(|v| v.vcpu_up && h.running_on(d.slot, v.vcpu_id).is_some());
        if running || on_a_cpu() {
            flags |= XEN_DOMINF_RUNNING;
        }
        if online.all(|v| v.blocked) {
            flags |= XEN_DOMINF_BLOCKED;
        }
    }
    if d.pause_count > 0 {
        flags |= XEN_DOMINF_PAUSED;
    }
    if let Some(code) = d.shutdown {
        flags |= XEN_DOMINF_SHUTDOWN | ((code & 0xff) << XEN_DOMINF_SHUTDOWNSHIFT);
    }
    flags
}

/// `xen_domctl_getdomaininfo` of `d` with its vCPUs `vcpus`; `running`
/// for the caller.
fn domaininfo<H: VcpuHost>(h: &H, d: &Domain, vcpus: &[Vcpu], running: bool) -> XenDomctlGetdomaininfo {
    let used: u64 = vcpus.iter().map(|v| v.cpu_time).sum();
    let cpu_time = if running { used.max(h.system_time()) } else { used };
    XenDomctlGetdomaininfo {
        domain: d.domid,
        flags: dominf_flags(h, d, vcpus, running),
        tot_pages: d.nr_pages,
        max_pages: d.max_pages,
        shared_info_frame: d.shared_info.0,
        cpu_time,
        nr_online_vcpus: vcpus.iter().filter(|v| v.vcpu_up).count() as u32,
        max_vcpu_id: d.max_vcpus - 1,
        gpaddr_bits: 52,
        ..Default::default()
    }
}

/// The info of the first domain with an id at or above `from`; the
/// caller is `v` of `d`.
fn first_domain_from<H: ControlHost>(h: &mut H, v: &Vcpu, d: &Domain, from: u16) -> Option<XenDomctlGetdomaininfo> {
    let next = h.next_domid_from(from)?;
    if next == d.domid {
        return Some(domaininfo(h, d, core::slice::from_ref(v), true));
    }
    h.with_guest(next, |g, h| domaininfo(h, &g.domain, &g.vcpus, false))
}

/// Run `f` on another domain.
fn with_other<H: ControlHost, R>(h: &mut H, domid: u16, f: impl FnOnce(&mut Domain, &mut H) -> R) -> Option<R> {
    h.with_domain(domid, f)
}

/// XEN_DOMCTL_createdomain: an empty, paused PV domain, with id
/// `requested` if that is a real domid (-EEXIST if taken), else the next
/// free one.
pub fn create_domain<H: ControlHost>(h: &mut H, requested: u16, c: &XenDomctlCreatedomain) -> Result<u16, i64> {
    if c.flags & XEN_DOMCTL_CDF_HVM != 0 || c.max_vcpus as usize != super::MAX_VCPUS {
        // No HVM; one vCPU per domain so far.
        return Err(-EINVAL);
    }
    let domid = if requested > 0 && requested < xen_public::DOMID_FIRST_RESERVED {
        if !h.with_domids(|ids| ids.claim(requested)) {
            return Err(-EEXIST);
        }
        requested
    } else {
        h.with_domids(DomidAllocator::alloc).ok_or(-ENOMEM)?
    };
    let Some(shinfo) = h.pool().alloc() else {
        let _ = h.with_domids(|ids| ids.free(domid));
        return Err(-ENOMEM);
    };
    let _ = h.with_frame_table(|ft, _, _| ft.share_with_guest(shinfo.0, domid));
    let mut dom = Domain::empty(domid, false, shinfo);
    dom.pause_count = 1;
    let mut g = Guest::new(dom);
    // As a domU that Xen's toolstack builds: shared_info starts zeroed, so
    // event upcalls start unmasked (only dom0 starts masked).
    for v in &mut g.vcpus {
        v.upcall_mask = false;
        h.init_shared(&g.domain, v);
    }
    if !h.install(g) {
        h.with_frame_table(|ft, mem, pool| {
            ft.unshare(mem, shinfo.0, domid);
            if ft.release(mem, shinfo.0, domid) {
                pool.free(shinfo);
            }
        });
        let _ = h.with_domids(|ids| ids.free(domid));
        return Err(-ENOMEM);
    }
    Ok(domid)
}

/// XEN_DOMCTL_destroydomain: drop every reference the domain holds and
/// give back every frame it owns; frames others still map stay allocated
/// until their last reference goes (see `FrameTable::relinquish`).
///
/// In two stages, as Xen's `domain_kill`: the domain leaves its slot at
/// once (no lookup finds it, so nothing can map, signal or give it
/// anything again) and drops its vCPU, event and grant references; its
/// id stays allocated while its frames are relinquished, preemptibly: the
/// call answers -ERESTART (a continuation) until that is done. A
/// destroydomain for an id that is allocated but in no slot goes on with
/// that relinquish.
pub fn destroy_domain<H: ControlHost>(h: &mut H, caller: &mut Domain, domid: u16) -> Result<(), i64> {
    if !being_relinquished(h, domid) {
        let mut dead = h.remove(domid).map_err(|e| match e {
            RemoveError::NotFound => -ESRCH,
            RemoveError::Running => -ERESTART,
        })?;
        close_peers(h, caller, &dead.domain, domid);
        h.release_refs(caller, &mut dead);
        // `dead` (its storage) goes here, before its frames are given back.
    }
    let mut released = 0u64;
    let done = h.with_frame_table(|ft, mem, pool| {
        ft.relinquish(mem, domid, |mfn| {
            pool.free(Mfn(mfn));
            released += 1;
        })
    });
    if done.is_some_and(|r| r.is_err()) {
        return Err(-ERESTART);
    }
    log::info!("domain {domid} destroyed ({released} frames freed in the last step)");
    h.raise_virq(caller, VIRQ_DOM_EXC);
    let _ = h.with_domids(|ids| ids.free(domid));
    Ok(())
}

/// Tell every domain with an interdomain channel to `dead` (whose id is
/// `domid`) that its end closed: the caller directly, others through their
/// slots.
fn close_peers<H: ControlHost>(h: &mut H, caller: &mut Domain, dead: &Domain, domid: u16) {
    for (rdom, rport) in crate::event::foreign_peers(&dead.ports, domid) {
        if rdom == caller.domid {
            crate::event::peer_closed(&mut caller.ports, rport, domid);
        } else {
            h.with_domain(rdom, |o, _| crate::event::peer_closed(&mut o.ports, rport, domid));
        }
    }
}

/// Whether `domid` left its slot and its frames are still being given
/// back (an allocated id with no domain).
fn being_relinquished<H: ControlHost>(h: &mut H, domid: u16) -> bool {
    !h.in_slot(domid) && h.with_domids(|ids| ids.is_allocated(domid))
}

/// `domctl(op)` from `v` of `d`, whose memory is `mem`.
pub fn domctl<H: ControlHost>(h: &mut H, v: &mut Vcpu, d: &mut Domain, mem: &impl GuestAccess, arg: u64) -> Ret {
    if !d.privileged {
        return -EPERM;
    }
    let Ok(mut op) = mem.copy_from::<XenDomctl>(arg) else { return -EFAULT };
    if op.interface_version != XEN_DOMCTL_INTERFACE_VERSION {
        return -EACCES;
    }
    let dom = op.domain;
    let is_self = is_self(d, dom);
    match op.cmd {
        XEN_DOMCTL_CREATEDOMAIN => match create_domain(h, dom, &op.payload()) {
            Ok(id) => op.domain = id,
            Err(e) => return e,
        },
        XEN_DOMCTL_GETDOMAININFO => {
            let Some(info) = first_domain_from(h, v, d, dom) else { return -ESRCH };
            op.domain = info.domain;
            op.set_payload(&info);
        }
        XEN_DOMCTL_MAX_MEM => {
            let pages = op.payload::<XenDomctlMaxMem>().max_memkb / 4;
            if is_self {
                d.max_pages = pages;
            } else if with_other(h, dom, |o, _| o.max_pages = pages).is_none() {
                return -ESRCH;
            }
            return 0;
        }
        XEN_DOMCTL_PAUSEDOMAIN | XEN_DOMCTL_UNPAUSEDOMAIN | XEN_DOMCTL_DESTROYDOMAIN if is_self => return -EINVAL,
        XEN_DOMCTL_PAUSEDOMAIN => return with_other(h, dom, |o, _| o.pause_count += 1).map_or(-ESRCH, |()| 0),
        XEN_DOMCTL_UNPAUSEDOMAIN => return with_other(h, dom, |o, _| unpause(o)).unwrap_or(-ESRCH),
        XEN_DOMCTL_DESTROYDOMAIN => return destroy_domain(h, d, dom).map_or_else(|e| e, |()| 0),
        XEN_DOMCTL_SETVCPUCONTEXT | XEN_DOMCTL_GETVCPUCONTEXT | XEN_DOMCTL_MAX_VCPUS if is_self => return -EINVAL,
        XEN_DOMCTL_SETVCPUCONTEXT => return set_vcpu_context(h, mem, dom, op.payload()),
        XEN_DOMCTL_GETVCPUCONTEXT => return get_vcpu_context(h, mem, dom, op.payload()),
        XEN_DOMCTL_GETVCPUINFO => {
            let mut info: XenDomctlGetvcpuinfo = op.payload();
            let rc = if is_self {
                vcpu_ctx_ops::info(h, d, core::slice::from_ref(v), true, &mut info)
            } else {
                h.with_guest(dom, |g, h| vcpu_ctx_ops::info(h, &g.domain, &g.vcpus, false, &mut info)).unwrap_or(-ESRCH)
            };
            if rc != 0 {
                return rc;
            }
            op.set_payload(&info);
        }
        XEN_DOMCTL_SCHEDULER_OP => {
            let slot = if is_self { Some(d.slot) } else { with_other(h, dom, |o, _| o.slot) };
            let Some(slot) = slot else { return -ESRCH };
            let mut sop: XenDomctlSchedulerOp = op.payload();
            let rc = scheduler_op(h, slot, &mut sop);
            if rc != 0 {
                return rc;
            }
            op.set_payload(&sop);
        }
        XEN_DOMCTL_HYPERCALL_INIT => {
            let gmfn = op.payload::<XenDomctlHypercallInit>().gmfn;
            return if is_self { hypercall_init(h, d, gmfn) } else { with_other(h, dom, |o, h| hypercall_init(h, o, gmfn)).unwrap_or(-ESRCH) };
        }
        XEN_DOMCTL_MAX_VCPUS => {
            // As Xen 4.17: the count was fixed by createdomain; only the
            // same value is accepted, and it creates the vCPUs.
            let max = op.payload::<XenDomctlMaxVcpus>().max;
            return with_other(h, dom, |o, _| {
                if max != o.max_vcpus {
                    return -EINVAL;
                }
                o.vcpu_created = true;
                0
            })
            .unwrap_or(-ESRCH);
        }
        _ if !is_self && with_other(h, dom, |_, _| ()).is_none() => return -ESRCH,
        _ => return -ENOSYS,
    }
    rc(mem.copy_to(arg, &op))
}

/// XEN_DOMCTL_setvcpucontext of another domain `dom`: the context is read
/// from the caller's memory first (a NULL handle resets the vCPU).
fn set_vcpu_context<H: ControlHost>(h: &mut H, mem: &impl GuestAccess, dom: u16, p: XenDomctlVcpucontext) -> Ret {
    let XenDomctlVcpucontext { vcpu, ctxt, .. } = p;
    let ctx = if ctxt == 0 {
        None
    } else {
        let Ok(c) = mem.copy_from::<xen_public::vcpu::VcpuGuestContext>(ctxt) else { return -EFAULT };
        Some(c)
    };
    h.with_guest(dom, |g, h| vcpu_ctx_ops::set(h, g, vcpu, ctx.as_ref())).unwrap_or(-ESRCH)
}

/// XEN_DOMCTL_getvcpucontext of another domain `dom`, written to the
/// caller's memory (not at all for a NULL handle).
fn get_vcpu_context<H: ControlHost>(h: &mut H, mem: &impl GuestAccess, dom: u16, p: XenDomctlVcpucontext) -> Ret {
    let XenDomctlVcpucontext { vcpu, ctxt, .. } = p;
    let mut ctx: xen_public::vcpu::VcpuGuestContext = zerocopy::FromZeros::new_zeroed();
    let rc = h.with_guest(dom, |g, _| vcpu_ctx_ops::get(g, vcpu, &mut ctx)).unwrap_or(-ESRCH);
    if rc == 0 && ctxt != 0 && mem.copy_to(ctxt, &ctx).is_err() {
        return -EFAULT;
    }
    rc
}

/// XEN_DOMCTL_unpausedomain of another domain: -EINVAL if not paused.
fn unpause(o: &mut Domain) -> Ret {
    if o.pause_count == 0 {
        return -EINVAL;
    }
    o.pause_count -= 1;
    0
}

/// XEN_DOMCTL_scheduler_op on the domain in `slot`, with `op` the
/// `xen_domctl_scheduler_op` (sched_id, cmd, then the credit parameters
/// weight and cap). As Xen's credit scheduler: a foreign sched_id or a
/// command other than putinfo/getinfo is -EINVAL; putinfo leaves the weight
/// alone when it is 0 and the cap when it is 0xffff.
fn scheduler_op<H: ControlHost>(h: &mut H, slot: usize, op: &mut XenDomctlSchedulerOp) -> Ret {
    let Some(mut params) = h.sched_params(slot) else { return -ESRCH };
    if op.sched_id != XEN_SCHEDULER_CREDIT {
        return -EINVAL;
    }
    match op.cmd {
        XEN_DOMCTL_SCHEDOP_GETINFO => op.set_credit(XenDomctlSchedCredit { weight: params.weight as u16, cap: params.cap as u16 }),
        XEN_DOMCTL_SCHEDOP_PUTINFO => {
            let XenDomctlSchedCredit { weight, cap } = op.credit();
            if weight != 0 {
                params.weight = u32::from(weight);
            }
            if cap != u16::MAX {
                params.cap = u32::from(cap);
            }
            h.set_sched_params(slot, params);
        }
        _ => return -EINVAL,
    }
    0
}

/// XEN_DOMCTL_hypercall_init: fill frame `gmfn` of `o` (for a PV domain
/// its machine frame) with the hypercall stubs. A frame the domain does not
/// own is -EINVAL; one it cannot write (in use as a page table) -EPERM.
fn hypercall_init<H: ControlHost>(h: &mut H, o: &mut Domain, gmfn: u64) -> Ret {
    let stubs: [[u8; 32]; xen_public::hypercall::PAGE_STUBS] = core::array::from_fn(|i| h.hypercall_stub(i));
    let who = crate::mm::page_type::Who::own(o.domid, o.privileged);
    h.with_frame_table(|ft, mem, _| {
        if ft.get_page(gmfn, o.domid).is_err() {
            return -EINVAL;
        }
        if ft.get_page_type(mem, gmfn, PageType::Writable, who).is_err() {
            // As Xen: a frame of the domain that cannot be written (a page
            // table, a descriptor page) is -EPERM.
            ft.put_page(gmfn);
            return -EPERM;
        }
        for (i, stub) in stubs.iter().enumerate() {
            for (w, chunk) in stub.chunks_exact(8).enumerate() {
                mem.write(gmfn, i * 4 + w, u64::from_le_bytes(chunk.try_into().unwrap_or_default()));
            }
        }
        ft.put_page_type(mem, gmfn);
        ft.put_page(gmfn);
        0
    })
    .unwrap_or(-EINVAL)
}

/// `sysctl(op)` from `v` of `d`, whose memory is `mem`.
pub fn sysctl<H: ControlHost>(h: &mut H, v: &mut Vcpu, d: &mut Domain, mem: &impl GuestAccess, arg: u64) -> Ret {
    if !d.privileged {
        return -EPERM;
    }
    let Ok(mut op) = mem.copy_from::<XenSysctl>(arg) else { return -EFAULT };
    if op.interface_version != XEN_SYSCTL_INTERFACE_VERSION {
        return -EACCES;
    }
    match op.cmd {
        XEN_SYSCTL_PHYSINFO => op.set_payload(&physinfo(h)),
        XEN_SYSCTL_SCHED_ID => op.set_payload(&XenSysctlSchedId { sched_id: XEN_SCHEDULER_CREDIT }),
        xen_public::xencore::XEN_SYSCTL_XENCORE_AUDIT => return h.xencore_audit(v, d, arg, &mut op),
        xen_public::xencore::XEN_SYSCTL_XENCORE_VCPU_STATS => {
            let mut q: xen_public::xencore::VcpuStats = op.payload();
            match vcpu_stats(h, v, d, q.domid, q.vcpu) {
                Ok(n) => q.preempted_hypercalls = n,
                Err(e) => return e,
            }
            op.set_payload(&q);
        }
        XEN_SYSCTL_GETDOMAININFOLIST => {
            let mut list: XenSysctlGetdomaininfolist = op.payload();
            match domaininfo_list(h, v, d, mem, &list) {
                Ok(n) => list.num_domains = n,
                Err(e) => return e,
            }
            op.set_payload(&list);
        }
        _ => return -ENOSYS,
    }
    rc(mem.copy_to(arg, &op))
}

/// `XEN_SYSCTL_xencore_vcpu_stats`: hypercalls of vCPU `vcpu` of `domid`
/// that were preempted (continued). An unknown domain is -ESRCH, an
/// unknown vCPU -ENOENT.
fn vcpu_stats<H: ControlHost>(h: &mut H, v: &Vcpu, d: &Domain, domid: u16, vcpu: u32) -> Result<u64, i64> {
    let read = |vcpus: &[Vcpu]| vcpus.get(vcpu as usize).map(|v| v.preempted_hypercalls).ok_or(-ENOENT);
    let got = if domid == xen_public::DOMID_SELF || domid == d.domid {
        Some(read(core::slice::from_ref(v)))
    } else {
        h.with_guest(domid, |g, _| read(&g.vcpus))
    };
    got.unwrap_or(Err(-ESRCH))
}

/// XEN_SYSCTL_getdomaininfolist: the infos of up to `max_domains` domains
/// from `first_domain` on, in domid order, written to `buffer`; how many.
fn domaininfo_list<H: ControlHost>(h: &mut H, v: &Vcpu, d: &Domain, mem: &impl GuestAccess, list: &XenSysctlGetdomaininfolist) -> Result<u32, i64> {
    let mut n = 0u32;
    let mut next = list.first_domain;
    while n < list.max_domains {
        let Some(info) = first_domain_from(h, v, d, next) else { break };
        let at = list.buffer.wrapping_add(u64::from(n) * core::mem::size_of::<XenDomctlGetdomaininfo>() as u64);
        if mem.copy_to(at, &info).is_err() {
            return Err(-EFAULT);
        }
        n += 1;
        let Some(after) = info.domain.checked_add(1) else { break };
        next = after;
    }
    Ok(n)
}

/// XEN_SYSCTL_physinfo: one thread per core, one core per socket, one
/// node; PV only.
fn physinfo<H: ControlHost>(h: &mut H) -> XenSysctlPhysinfo {
    let total = h.m2p_entries();
    let cpus = h.online_cpus();
    XenSysctlPhysinfo {
        threads_per_core: 1,
        cores_per_socket: 1,
        nr_cpus: cpus,
        max_cpu_id: cpus - 1,
        nr_nodes: 1,
        cpu_khz: h.cpu_khz(),
        capabilities: XEN_SYSCTL_PHYSCAP_PV,
        total_pages: total,
        free_pages: h.pool().free_count(),
        max_mfn: total.saturating_sub(1),
        ..Default::default()
    }
}
