//! `domctl` and `sysctl`: the control interfaces of the privileged domain,
//! with Xen 4.17's interface versions and layouts. Other domains can be
//! created, given memory, paused, unpaused, inspected, started (vCPU
//! contexts, hypercall page, scheduler parameters) and destroyed. Generic
//! over the caller's memory ([`GuestAccess`]) and over the machine
//! ([`ControlHost`]: domain slots, the domid allocator, frames, the
//! scheduler, what the machine is, the console history), so decoding,
//! errno and every effect on other domains are tested on the host.
//!
//! Invariants: only the privileged domain gets past the first check (a
//! domU's domctl or sysctl is -EPERM before anything is read); a domain
//! never pauses, unpauses, destroys or (re)starts itself through domctl;
//! a domain being destroyed leaves its slot first (nothing finds it any
//! more), then drops its references, then gives back its frames
//! preemptibly, and its domid is freed only when all of that is done;
//! `XEN_SYSCTL_readconsole` copies no more than the history holds (16 KiB)
//! however large the count it is given.
#![forbid(unsafe_code)]

use super::domid::DomidAllocator;
use super::gnttab_ops::{self, GrantHost};
use super::host::FrameHost;
use super::memory_ops::MemoryHost;
use super::mmu_ops;
use super::vcpu::Vcpu;
use super::vcpu_ctx_ops::{self, VcpuHost};
use super::{Domain, Guest};
#[cfg(test)]
use crate::console_ring::CONRING_SIZE;
use crate::console_ring::{ConRing, read_start};
use crate::mm::Mfn;
use crate::mm::page_type::{PageMem, PageType};
use crate::sched::credit::Params;
use xen_public::domctl::*;
use xen_public::errno::{EACCES, EEXIST, EFAULT, EINVAL, ENOENT, ENOMEM, ENOSYS, EOPNOTSUPP, EPERM, ERESTART, ESRCH};
use xen_public::sysctl::*;
use xen_public::{VIRQ_DOM_EXC, XEN_DOMINF_BLOCKED, XEN_DOMINF_PAUSED, XEN_DOMINF_RUNNING, XEN_DOMINF_SHUTDOWN, XEN_DOMINF_SHUTDOWNSHIFT};

use super::guest_mem::{GuestAccess, rc};

/// A hypercall's result for the guest's RAX (a negated errno on failure).
type Ret = i64;

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
pub trait ControlHost: MemoryHost + VcpuHost + GrantHost {
    /// A domain taken out of its slot (its storage is given back when
    /// this is dropped).
    type Removed: core::ops::DerefMut<Target = Guest>;
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
    /// Stub `i` of the hypercall page.
    fn hypercall_stub(&self, i: usize) -> [u8; 32];
    /// `XEN_SYSCTL_xencore_audit` for the privileged caller; `op` is the
    /// `xen_sysctl` read from `arg`.
    fn xencore_audit(&mut self, v: &mut Vcpu, d: &mut Domain, arg: u64, op: &mut XenSysctl) -> Ret;
    /// `XEN_SYSCTL_tbuf_op` on the trace buffers; the CPU bitmap of
    /// `set_cpu_mask` is read from the caller's memory `mem`.
    fn tbuf_op(&mut self, mem: &impl GuestAccess, op: &mut xen_public::sysctl::XenSysctlTbufOp) -> Ret;
    /// Run `f` on the console history (Xen's conring); `f` must not print.
    fn with_conring<R>(&mut self, f: impl FnOnce(&mut ConRing) -> R) -> R;
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
    // Each vCPU's accounted time, plus the slice it is in if it runs now
    // (on any CPU: the caller's own vCPU is running too).
    let now = h.system_time();
    let cpu_time = vcpus.iter().map(|v| v.cpu_time + h.running_on(d.slot, v.vcpu_id).map_or(0, |(_, since)| now.saturating_sub(since))).sum();
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
        handle: d.handle,
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
    let Some(shinfo) = h.alloc_frame() else {
        let _ = h.with_domids(|ids| ids.free(domid));
        return Err(-ENOMEM);
    };
    let _ = h.with_ft(|ft, _| ft.share_with_guest(shinfo.0, domid));
    let mut dom = Domain::empty(domid, false, shinfo);
    dom.pause_count = 1;
    dom.handle = c.handle;
    let mut g = Guest::new(dom);
    // As a domU that Xen's toolstack builds: shared_info starts zeroed, so
    // event upcalls start unmasked (only dom0 starts masked).
    for v in &mut g.vcpus {
        v.upcall_mask = false;
        h.init_shared(&g.domain, v);
    }
    if !h.install(g) {
        let mut pm = h.page_mem();
        h.with_ft(|ft, h| {
            ft.unshare(&mut pm, shinfo.0, domid);
            if ft.release(&mut pm, shinfo.0, domid) {
                h.free_frame(shinfo);
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
        release_refs(h, caller, &mut dead);
        // `dead` (its storage) goes here, before its frames are given back.
    }
    let mut released = 0u64;
    let mut pm = h.page_mem();
    let done = h.with_ft(|ft, h| {
        ft.relinquish(&mut pm, domid, |mfn| {
            h.free_frame(Mfn(mfn));
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

/// Drop every grant, mapping and page-table reference the domain `dead`
/// (out of its slot) holds, and every other domain's record of its
/// grants; `caller` is the destroying domain.
fn release_refs<H: ControlHost>(h: &mut H, caller: &mut Domain, dead: &mut Guest) {
    let Guest { domain: dom, vcpus } = dead;
    gnttab_ops::release_grants(h, caller, dom);
    gnttab_ops::forget_granter(h, caller, dom.domid);
    for v in vcpus.iter_mut() {
        mmu_ops::release_vcpu_refs(h, v);
    }
    super::vcpu_ops::release_vcpu_info(h, dom);
    mmu_ops::release_domain_refs(h, dom);
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
    !h.exists(domid) && h.with_domids(|ids| ids.is_allocated(domid))
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
        XEN_DOMCTL_UNPAUSEDOMAIN => {
            let rc = with_other(h, dom, |o, _| unpause(o)).unwrap_or(-ESRCH);
            // As Xen's vcpu_wake: a CPU that idles looks at once.
            if rc == 0 {
                h.kick();
            }
            return rc;
        }
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
        // As Xen: no domain_pause() of oneself.
        XEN_DOMCTL_SETTSCINFO | XEN_DOMCTL_GETTSCINFO if is_self => return -EINVAL,
        XEN_DOMCTL_SETTSCINFO => {
            let (info, khz): (XenDomctlTscInfo, u32) = (op.payload(), h.cpu_khz());
            return with_other(h, dom, |o, _| set_tsc_info(o, &info, khz)).unwrap_or(-ESRCH);
        }
        XEN_DOMCTL_GETTSCINFO => {
            let (khz, now) = (h.cpu_khz(), h.system_time());
            let Some(info) = with_other(h, dom, |o, _| tsc_info(o, khz, now)) else { return -ESRCH };
            op.set_payload(&info);
        }
        _ if !is_self && with_other(h, dom, |_, _| ()).is_none() => return -ESRCH,
        _ => return -ENOSYS,
    }
    rc(mem.copy_to(arg, &op))
}

/// XEN_DOMCTL_settscinfo on `o` (Xen's `tsc_set_info`): default and
/// never-emulate are taken (a PV guest's `rdtsc` is never trapped here, so
/// both read the host's TSC, as Xen's default does on a reliable TSC);
/// always-emulate, or a default with a guest rate other than the host's
/// `cpu_khz`, is -EOPNOTSUPP, as xen-core has no emulated TSC; any other
/// mode is Xen's -EINVAL.
fn set_tsc_info(o: &mut Domain, info: &XenDomctlTscInfo, cpu_khz: u32) -> Ret {
    match info.tsc_mode {
        // Xen's default mode emulates a guest rate other than the host's.
        TSC_MODE_DEFAULT if info.gtsc_khz != 0 && info.gtsc_khz != cpu_khz => -EOPNOTSUPP,
        TSC_MODE_DEFAULT | TSC_MODE_NEVER_EMULATE => {
            o.tsc_mode = info.tsc_mode;
            o.tsc_incarnation = info.incarnation.wrapping_add(1);
            0
        }
        TSC_MODE_ALWAYS_EMULATE => -EOPNOTSUPP,
        _ => -EINVAL,
    }
}

/// XEN_DOMCTL_gettscinfo of `o` (Xen's `tsc_get_info` for a native TSC):
/// the mode, the host's rate and the time the TSC has counted (`now`, ns).
fn tsc_info(o: &Domain, cpu_khz: u32, now: u64) -> XenDomctlTscInfo {
    let default_mode = o.tsc_mode == TSC_MODE_DEFAULT;
    XenDomctlTscInfo {
        tsc_mode: o.tsc_mode,
        // Xen: 0 for never-emulate, the rate for a native default.
        gtsc_khz: if default_mode { cpu_khz } else { 0 },
        incarnation: o.tsc_incarnation,
        pad: 0,
        // Xen: the TSC in ns; here the system time, which counts from the
        // hypervisor's boot rather than from the TSC's reset.
        elapsed_nsec: if default_mode { now } else { 0 },
    }
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
    match write_hypercall_page(h, o, gmfn, &stubs) {
        Ok(()) => 0,
        Err(HypercallPageError::NotOwned) => -EINVAL,
        // As Xen: a frame of the domain that cannot be written (a page
        // table, a descriptor page) is -EPERM.
        Err(HypercallPageError::NotWritable) => -EPERM,
    }
}

/// Why [`write_hypercall_page`] wrote nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HypercallPageError {
    /// The frame is not the domain's.
    NotOwned,
    /// It is, but cannot be written (a page table, a descriptor page).
    NotWritable,
}

/// Fill frame `gmfn` of `o` (for a PV domain its machine frame) with the
/// hypercall stubs, holding a general and a writable type reference on it
/// meanwhile (Xen's `get_page_from_gfn`, `get_page_type(PGT_writable_page)`
/// and `init_hypercall_page`): XEN_DOMCTL_hypercall_init's and the
/// guest's own `wrmsr` of the hypercall-page MSR (`guest_wrmsr_xen`).
pub fn write_hypercall_page<H: FrameHost>(
    h: &mut H,
    o: &Domain,
    gmfn: u64,
    stubs: &[[u8; 32]; xen_public::hypercall::PAGE_STUBS],
) -> Result<(), HypercallPageError> {
    let who = crate::mm::page_type::Who::own(o.domid, o.privileged);
    let mut pm = h.page_mem();
    let mem = &mut pm;
    h.with_ft(|ft, _| {
        if ft.get_page(gmfn, o.domid).is_err() {
            return Err(HypercallPageError::NotOwned);
        }
        if ft.get_page_type(mem, gmfn, PageType::Writable, who).is_err() {
            ft.put_page(gmfn);
            return Err(HypercallPageError::NotWritable);
        }
        for (i, stub) in stubs.iter().enumerate() {
            for (w, chunk) in stub.chunks_exact(8).enumerate() {
                mem.write(gmfn, i * 4 + w, u64::from_le_bytes(chunk.try_into().unwrap_or_default()));
            }
        }
        ft.put_page_type(mem, gmfn);
        ft.put_page(gmfn);
        Ok(())
    })
    .unwrap_or(Err(HypercallPageError::NotOwned))
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
        xen_public::sysctl::XEN_SYSCTL_TBUF_OP => {
            let mut t: xen_public::sysctl::XenSysctlTbufOp = op.payload();
            let r = h.tbuf_op(mem, &mut t);
            if r != 0 {
                return r;
            }
            op.set_payload(&t);
        }
        XEN_SYSCTL_READCONSOLE => {
            let mut rc: XenSysctlReadconsole = op.payload();
            if let Err(e) = read_console(h, mem, &mut rc) {
                return e;
            }
            op.set_payload(&rc);
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

/// Bytes of history copied to the guest per step of readconsole (the
/// history's lock is not held while the guest's memory is written).
const READCONSOLE_CHUNK: usize = 256;

/// XEN_SYSCTL_readconsole, as Xen 4.17's `read_console_ring`
/// (`xen/drivers/char/console.c`): copy the history from its oldest byte
/// (or, if `incremental`, from `index` when that lies in what the ring
/// holds) towards the newest byte as it was when the call began, at most
/// `count` bytes, to `buffer`; OUT `count` is how many, `index` where the
/// copy stopped; `clear` then forgets everything before that. An
/// unwritable buffer is -EFAULT (what was written stays, nothing is
/// cleared, and the structure is not written back).
fn read_console<H: ControlHost>(h: &mut H, mem: &impl GuestAccess, op: &mut XenSysctlReadconsole) -> Result<(), i64> {
    let (cons, prod) = h.with_conring(|r| r.bounds());
    let mut c = read_start(cons, prod, op.incremental != 0, op.index);
    let max = op.count;
    let mut sofar = 0u32;
    while c != prod && sofar < max {
        let mut chunk = [0u8; READCONSOLE_CHUNK];
        let want = ((max - sofar) as usize).min(READCONSOLE_CHUNK);
        let n = h.with_conring(|r| r.copy_out(c, prod, &mut chunk[..want]));
        mem.write(op.buffer.wrapping_add(u64::from(sofar)), &chunk[..n]).map_err(|_| -EFAULT)?;
        // `n` is at least 1 (c != prod, want > 0) and at most what is left
        // of `prod - c` (bounded by the ring): the loop ends.
        sofar += n as u32;
        c = c.wrapping_add(n as u32);
    }
    if op.clear != 0 {
        h.with_conring(|r| r.clear_to(c));
    }
    op.count = sofar;
    op.index = c;
    Ok(())
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
        free_pages: h.free_frames(),
        max_mfn: total.saturating_sub(1),
        ..Default::default()
    }
}

#[cfg(test)]
pub mod tests {
    //! domctl and sysctl over the fake machine of `memory_ops`' tests,
    //! with the control state ([`Ctl`]) it carries.
    use super::*;
    use crate::domain::gnttab_ops::tests::FakeFrame;
    use crate::domain::guest_mem::tests::FakeGuest;
    use crate::domain::host::{CpuTlb, Kick};
    use crate::domain::memory_ops::tests::{FRAMES, FakeMachine};
    use crate::domain::mmu_ops::MmuHost;
    use crate::domain::vcpu::CpuUserRegs;
    use crate::mm::page_type::PageInfo;
    use std::collections::{BTreeMap, BTreeSet};
    use std::vec::Vec;

    /// The control side of the fake machine: the caller's slot, the domid
    /// allocator, the scheduler, and a record of what the live machine
    /// would have done.
    #[derive(Default)]
    pub struct Ctl {
        /// The caller's domid (in a slot, but not in `others`).
        pub caller: Option<u16>,
        /// The domid allocator.
        pub domids: DomidAllocator,
        /// Domains running on another CPU (remove answers Running).
        pub running: BTreeSet<u16>,
        /// Credit parameters by slot.
        pub params: BTreeMap<usize, Params>,
        /// VIRQs raised: (domid, virq).
        pub virqs: Vec<(u16, u32)>,
        /// Domains taken out of their slots.
        pub removed: Vec<u16>,
        /// vCPUs on a CPU: (slot, vcpu) -> (cpu, since).
        pub on_cpu: BTreeMap<(usize, u32), (usize, u64)>,
        /// System time.
        pub now: u64,
        /// No free slot: install fails.
        pub full: bool,
        /// Next slot to give.
        pub next_slot: usize,
        /// init_shared calls: domid.
        pub inited: Vec<u16>,
        /// Each domain's vcpu_info[0].evtchn_upcall_mask in shared_info.
        pub shared_mask: BTreeMap<u16, bool>,
        /// The console history.
        pub conring: Box<ConRing>,
        /// Guest page -> machine address, for the LDT's walk.
        pub walk: BTreeMap<u64, u64>,
        /// Kicks of the scheduler.
        pub kicks: usize,
        /// Grant frames' bytes.
        pub grant_bytes: crate::domain::gnttab_ops::tests::Bytes,
    }

    impl MmuHost for FakeMachine {
        /// The caller's memory is the test's `FakeGuest`: domctl never runs
        /// an MMU batch of its own.
        type Guest = FakeGuest;
        fn kernel_mem(&self, _v: &Vcpu) -> FakeGuest {
            FakeGuest::default()
        }
        fn wbinvd(&mut self) {}
        fn load_page_tables(&mut self, _v: &Vcpu) {
            panic!("domctl loads no CR3");
        }
        fn load_gdt(&mut self, _descs: impl Iterator<Item = u64>) {
            panic!("domctl loads no GDT");
        }
        fn load_ldt(&mut self, _descs: impl Iterator<Item = u64>, _ents: usize) {
            panic!("another domain's LDT is not loaded here");
        }
        fn set_gdt_entry(&mut self, _index: usize, _desc: u64) {
            panic!("domctl sets no GDT entry");
        }
        fn set_ldt_entry(&mut self, _index: usize, _desc: u64) {
            panic!("domctl sets no LDT entry");
        }
        fn running_here(&self, _d: &Domain) -> bool {
            false
        }
        fn flush_remote(&mut self, _domid: u16) {}
        fn forget_loaded(&mut self, _domid: u16) {}
        fn translate(&self, _l4_maddr: u64, va: u64) -> Option<u64> {
            self.ctl.walk.get(&(va & !0xfff)).copied()
        }
        fn dispatch(&mut self, _v: &mut Vcpu, _d: &mut Domain, _regs: &mut CpuUserRegs) -> u64 {
            unreachable!("no multicall in domctl")
        }
        fn iret(&mut self, _v: &mut Vcpu, _d: &mut Domain, _regs: &mut CpuUserRegs) -> u64 {
            unreachable!("no multicall in domctl")
        }
    }

    impl CpuTlb for FakeMachine {
        fn flush_tlb(&mut self) {}
        fn invlpg(&mut self, _va: u64) {}
        fn preempt_due(&mut self) -> bool {
            self.preempt_calls += 1;
            self.preempt_after.is_some_and(|n| self.preempt_calls > n)
        }
    }

    impl Kick for FakeMachine {
        fn kick(&mut self) {
            self.ctl.kicks += 1;
        }
    }

    impl GrantHost for FakeMachine {
        type Frame = FakeFrame;
        fn with_other<R>(&mut self, domid: u16, f: impl FnOnce(&mut Self, &mut Domain) -> R) -> Option<R> {
            self.take_guest(domid, |g, h| f(h, &mut g.domain))
        }
        fn frame(&self, mfn: u64) -> Option<FakeFrame> {
            (mfn < FRAMES).then(|| FakeFrame::new(self.ctl.grant_bytes.clone(), mfn))
        }
        fn kernel_l4_maddr(&self) -> Option<u64> {
            None
        }
        fn drain_pending(&mut self, owner: u16) -> Result<(), i64> {
            mmu_ops::drain_pending(self, owner)
        }
        fn log(&mut self, _line: core::fmt::Arguments<'_>) {}
    }

    impl VcpuHost for FakeMachine {
        fn init_shared(&mut self, d: &Domain, v: &Vcpu) {
            self.ctl.inited.push(d.domid);
            self.ctl.shared_mask.insert(d.domid, v.upcall_mask);
        }
        fn attach_shared(&mut self, d: &Domain, v: &mut Vcpu) {
            v.upcall_mask = self.ctl.shared_mask.get(&d.domid).copied().unwrap_or(false);
        }
        fn running_on(&self, slot: usize, vcpu_id: u32) -> Option<(usize, u64)> {
            self.ctl.on_cpu.get(&(slot, vcpu_id)).copied()
        }
        fn system_time(&self) -> u64 {
            self.ctl.now
        }
    }

    impl ControlHost for FakeMachine {
        type Removed = Box<Guest>;
        fn with_guest<R>(&mut self, domid: u16, f: impl FnOnce(&mut Guest, &mut Self) -> R) -> Option<R> {
            self.take_guest(domid, f)
        }
        fn install(&mut self, mut g: Guest) -> bool {
            if self.ctl.full {
                return false;
            }
            self.ctl.next_slot += 1;
            g.set_slot(self.ctl.next_slot);
            self.others.insert(g.domain.domid, Box::new(g));
            true
        }
        fn remove(&mut self, domid: u16) -> Result<Box<Guest>, RemoveError> {
            if self.ctl.running.contains(&domid) {
                if let Some(g) = self.others.get_mut(&domid) {
                    g.domain.dying = true;
                }
                return Err(RemoveError::Running);
            }
            let g = self.others.remove(&domid).ok_or(RemoveError::NotFound)?;
            self.ctl.removed.push(domid);
            Ok(g)
        }
        fn with_domids<R>(&mut self, f: impl FnOnce(&mut DomidAllocator) -> R) -> R {
            f(&mut self.ctl.domids)
        }
        fn sched_params(&self, slot: usize) -> Option<Params> {
            Some(self.ctl.params.get(&slot).copied().unwrap_or_default())
        }
        fn set_sched_params(&mut self, slot: usize, params: Params) {
            self.ctl.params.insert(slot, params);
        }
        fn online_cpus(&self) -> u32 {
            2
        }
        fn cpu_khz(&self) -> u32 {
            2_000_000
        }
        fn raise_virq(&mut self, d: &mut Domain, virq: u32) {
            self.ctl.virqs.push((d.domid, virq));
        }
        fn hypercall_stub(&self, i: usize) -> [u8; 32] {
            [i as u8; 32]
        }
        fn xencore_audit(&mut self, _v: &mut Vcpu, _d: &mut Domain, _arg: u64, _op: &mut XenSysctl) -> Ret {
            -xen_public::errno::EIO
        }
        fn tbuf_op(&mut self, _mem: &impl GuestAccess, op: &mut xen_public::sysctl::XenSysctlTbufOp) -> Ret {
            op.buffer_mfn = 0x1234;
            0
        }
        fn with_conring<R>(&mut self, f: impl FnOnce(&mut ConRing) -> R) -> R {
            f(&mut self.ctl.conring)
        }
    }

    const ARG: u64 = 0x1000;
    const BUF: u64 = 0x3000;
    const DOM0: u16 = 0;
    const NO_OWNER: u16 = PageInfo::FREE.owner;

    /// dom0 (privileged, in a slot) calling, with its argument page mapped.
    fn setup() -> (FakeMachine, FakeGuest, Vcpu, Domain) {
        let mut h = FakeMachine::default();
        h.ctl.caller = Some(DOM0);
        let g = FakeGuest::default();
        g.map(ARG);
        g.map(BUF);
        let v = Vcpu { vcpu_up: true, ..Default::default() };
        let mut d = Domain::empty(DOM0, true, Mfn(1));
        d.vcpu_created = true;
        (h, g, v, d)
    }

    /// A created domain `domid` (as createdomain leaves it).
    fn created(h: &mut FakeMachine, domid: u16) {
        assert!(h.ctl.domids.claim(domid));
        h.add(domid, 0);
        let o = h.others.get_mut(&domid).unwrap();
        o.domain.pause_count = 1;
        o.set_slot(domid as usize);
    }

    fn domctl_op(h: &mut FakeMachine, g: &FakeGuest, v: &mut Vcpu, d: &mut Domain, op: &XenDomctl) -> Ret {
        g.copy_to(ARG, op).unwrap();
        domctl(h, v, d, g, ARG)
    }

    fn domctl_cmd(h: &mut FakeMachine, g: &FakeGuest, v: &mut Vcpu, d: &mut Domain, cmd: u32, dom: u16) -> Ret {
        domctl_op(h, g, v, d, &XenDomctl::new(cmd, dom))
    }

    fn out(g: &FakeGuest) -> XenDomctl {
        g.copy_from(ARG).unwrap()
    }

    #[test]
    fn domctl_and_sysctl_from_an_unprivileged_domain_are_eperm_before_reading_anything() {
        // Attack: a domU calls the toolstack's interfaces, even with an
        // unmapped argument (it gets -EPERM, not -EFAULT).
        let (mut h, g, mut v, mut d) = setup();
        created(&mut h, 5);
        d.privileged = false;
        d.domid = 3;
        for arg in [ARG, 0xdead_0000] {
            g.copy_to(ARG, &XenDomctl::new(XEN_DOMCTL_DESTROYDOMAIN, 5)).unwrap();
            assert_eq!(domctl(&mut h, &mut v, &mut d, &g, arg), -EPERM);
            g.copy_to(ARG, &XenSysctl::new(XEN_SYSCTL_PHYSINFO)).unwrap();
            assert_eq!(sysctl(&mut h, &mut v, &mut d, &g, arg), -EPERM);
        }
        assert!(h.others.contains_key(&5), "the domain is still there");
    }

    #[test]
    fn interface_version_other_than_0x15_is_eacces() {
        let (mut h, g, mut v, mut d) = setup();
        assert_eq!(XEN_DOMCTL_INTERFACE_VERSION, 0x15, "Xen 4.17's");
        assert_eq!(XEN_SYSCTL_INTERFACE_VERSION, 0x15, "Xen 4.17's");
        let mut op = XenDomctl::new(XEN_DOMCTL_CREATEDOMAIN, 0);
        op.set_payload(&XenDomctlCreatedomain::pv_default());
        op.interface_version = 0x14;
        assert_eq!(domctl_op(&mut h, &g, &mut v, &mut d, &op), -EACCES);
        assert!(h.others.is_empty(), "nothing created");
        let mut s = XenSysctl::new(XEN_SYSCTL_PHYSINFO);
        s.interface_version = 0x16;
        g.copy_to(ARG, &s).unwrap();
        assert_eq!(sysctl(&mut h, &mut v, &mut d, &g, ARG), -EACCES);
        assert_eq!(domctl(&mut h, &mut v, &mut d, &g, 0xdead_0000), -EFAULT, "an unmapped domctl");
        assert_eq!(sysctl(&mut h, &mut v, &mut d, &g, 0xdead_0000), -EFAULT, "an unmapped sysctl");
    }

    fn create(h: &mut FakeMachine, g: &FakeGuest, v: &mut Vcpu, d: &mut Domain, dom: u16, c: &XenDomctlCreatedomain) -> Ret {
        let mut op = XenDomctl::new(XEN_DOMCTL_CREATEDOMAIN, dom);
        op.set_payload(c);
        domctl_op(h, g, v, d, &op)
    }

    #[test]
    fn createdomain_makes_a_paused_pv_domain_with_a_shared_info_frame_and_returns_its_id() {
        let (mut h, g, mut v, mut d) = setup();
        let c = XenDomctlCreatedomain { handle: [7; 16], ..XenDomctlCreatedomain::pv_default() };
        assert_eq!(create(&mut h, &g, &mut v, &mut d, 0, &c), 0);
        let id = out(&g).domain;
        assert_eq!(id, 1, "the first free domid");
        let o = h.other(id);
        assert_eq!((o.pause_count, o.privileged, o.vcpu_created), (1, false, false));
        assert_eq!(o.handle, [7; 16], "the toolstack's handle (its UUID) is kept for getdomaininfo");
        let shinfo = o.shared_info.0;
        let f = h.ft.info(shinfo).unwrap();
        assert_eq!((f.owner, f.ty, f.type_count), (id, PageType::Writable, 1), "shared_info shared with the guest for good");
        assert!(!h.others[&id].vcpus[0].upcall_mask, "a domU's upcalls start unmasked");
        assert_eq!(h.ctl.inited, [id]);
        // A requested free id is used as is.
        assert_eq!(create(&mut h, &g, &mut v, &mut d, 42, &XenDomctlCreatedomain::pv_default()), 0);
        assert_eq!(out(&g).domain, 42);
    }

    #[test]
    fn createdomain_with_hvm_flag_or_other_max_vcpus_is_einval_and_takes_nothing() {
        let (mut h, g, mut v, mut d) = setup();
        let free = h.pool.free_count();
        let mut c = XenDomctlCreatedomain::pv_default();
        c.flags |= XEN_DOMCTL_CDF_HVM;
        assert_eq!(create(&mut h, &g, &mut v, &mut d, 0, &c), -EINVAL);
        for max in [0, 2, u32::MAX] {
            let mut c = XenDomctlCreatedomain::pv_default();
            c.max_vcpus = max;
            assert_eq!(create(&mut h, &g, &mut v, &mut d, 0, &c), -EINVAL, "max_vcpus {max}");
        }
        assert_eq!(h.pool.free_count(), free);
        assert!(h.others.is_empty());
        assert_eq!(h.ctl.domids.alloc(), Some(1), "no domid taken");
    }

    #[test]
    fn createdomain_with_a_requested_domid_in_use_is_eexist() {
        let (mut h, g, mut v, mut d) = setup();
        created(&mut h, 7);
        let free = h.pool.free_count();
        assert_eq!(create(&mut h, &g, &mut v, &mut d, 7, &XenDomctlCreatedomain::pv_default()), -EEXIST);
        assert_eq!(h.pool.free_count(), free);
        assert_eq!(h.other(7).pause_count, 1, "the existing domain is untouched");
        // A reserved id (DOMID_SELF and up) means "any free one".
        assert_eq!(create(&mut h, &g, &mut v, &mut d, xen_public::DOMID_SELF, &XenDomctlCreatedomain::pv_default()), 0);
        assert_eq!(out(&g).domain, 1);
    }

    #[test]
    fn createdomain_without_a_free_slot_is_enomem_and_gives_back_the_frame_and_the_domid() {
        let (mut h, g, mut v, mut d) = setup();
        h.ctl.full = true;
        let free = h.pool.free_count();
        assert_eq!(create(&mut h, &g, &mut v, &mut d, 9, &XenDomctlCreatedomain::pv_default()), -ENOMEM);
        assert_eq!(h.pool.free_count(), free, "shared_info went back");
        assert!(h.ft.frames().iter().all(|f| f.owner == NO_OWNER), "no frame left owned");
        assert!(!h.ctl.domids.is_allocated(9));
        h.pool.free.clear();
        h.ctl.full = false;
        assert_eq!(create(&mut h, &g, &mut v, &mut d, 9, &XenDomctlCreatedomain::pv_default()), -ENOMEM, "no frame for shared_info");
        assert!(!h.ctl.domids.is_allocated(9));
    }

    fn info_of(h: &mut FakeMachine, g: &FakeGuest, v: &mut Vcpu, d: &mut Domain, dom: u16) -> Result<XenDomctlGetdomaininfo, i64> {
        match domctl_cmd(h, g, v, d, XEN_DOMCTL_GETDOMAININFO, dom) {
            0 => Ok(out(g).payload()),
            e => Err(e),
        }
    }

    #[test]
    fn getdomaininfo_reports_the_first_domain_at_or_above_the_id_and_esrch_past_the_last() {
        let (mut h, g, mut v, mut d) = setup();
        created(&mut h, 4);
        created(&mut h, 9);
        assert_eq!(info_of(&mut h, &g, &mut v, &mut d, 5).map(|i| i.domain), Ok(9));
        assert_eq!(out(&g).domain, 9, "the domctl's domain field too");
        assert_eq!(info_of(&mut h, &g, &mut v, &mut d, 1).map(|i| i.domain), Ok(4));
        assert_eq!(info_of(&mut h, &g, &mut v, &mut d, 10), Err(-ESRCH));
        assert_eq!(info_of(&mut h, &g, &mut v, &mut d, xen_public::DOMID_SELF), Err(-ESRCH), "DOMID_SELF is not resolved here");
    }

    #[test]
    fn getdomaininfo_flags_pages_and_vcpus_follow_the_domain_state() {
        let (mut h, g, mut v, mut d) = setup();
        created(&mut h, 4);
        {
            let o = h.others.get_mut(&4).unwrap();
            o.domain.nr_pages = 10;
            o.domain.max_pages = 20;
            o.domain.shutdown = Some(0x1ff);
            o.domain.shared_info = Mfn(33);
            o.vcpus[0].cpu_time = 500;
        }
        let i = info_of(&mut h, &g, &mut v, &mut d, 4).unwrap();
        // No vCPU online: neither running nor blocked; paused; the
        // shutdown code's low 8 bits.
        assert_eq!(i.flags, XEN_DOMINF_PAUSED | XEN_DOMINF_SHUTDOWN | (0xff << XEN_DOMINF_SHUTDOWNSHIFT));
        assert_eq!((i.tot_pages, i.max_pages, i.shared_info_frame, i.cpu_time), (10, 20, 33, 500));
        assert_eq!((i.nr_online_vcpus, i.max_vcpu_id, i.gpaddr_bits), (0, 0, 52));
        {
            let o = h.others.get_mut(&4).unwrap();
            o.domain.pause_count = 0;
            o.domain.shutdown = None;
            o.vcpus[0].vcpu_up = true;
            o.vcpus[0].blocked = true;
        }
        let i = info_of(&mut h, &g, &mut v, &mut d, 4).unwrap();
        assert_eq!((i.flags, i.nr_online_vcpus), (XEN_DOMINF_BLOCKED, 1));
        h.ctl.on_cpu.insert((4, 0), (1, 0));
        let i = info_of(&mut h, &g, &mut v, &mut d, 4).unwrap();
        assert_eq!(i.flags, XEN_DOMINF_BLOCKED | XEN_DOMINF_RUNNING, "on another CPU");
        // The caller runs: its CPU time is what it was charged plus the
        // slice it is in, not the time since boot (an idle dom0 that
        // blocks uses next to none).
        h.ctl.now = 7000;
        v.cpu_time = 100;
        h.ctl.on_cpu.insert((0, 0), (0, 6000));
        let i = info_of(&mut h, &g, &mut v, &mut d, 0).unwrap();
        assert_eq!((i.domain, i.flags, i.cpu_time), (0, XEN_DOMINF_RUNNING, 1100));
    }

    #[test]
    fn destroydomain_of_self_is_einval_and_of_an_unknown_domain_esrch() {
        let (mut h, g, mut v, mut d) = setup();
        created(&mut h, 4);
        for dom in [DOM0, xen_public::DOMID_SELF] {
            assert_eq!(domctl_cmd(&mut h, &g, &mut v, &mut d, XEN_DOMCTL_DESTROYDOMAIN, dom), -EINVAL, "dom0 destroying itself ({dom:#x})");
        }
        assert_eq!(domctl_cmd(&mut h, &g, &mut v, &mut d, XEN_DOMCTL_DESTROYDOMAIN, 5), -ESRCH);
        assert!(h.ctl.virqs.is_empty());
        // A domU with the privilege (a driver domain) still cannot destroy
        // dom0 while dom0 is in its slot but not removable: here dom0 is the
        // caller's slot, which remove never finds.
        d.domid = 4;
        assert_eq!(domctl_cmd(&mut h, &g, &mut v, &mut d, XEN_DOMCTL_DESTROYDOMAIN, DOM0), -ESRCH);
    }

    #[test]
    fn destroydomain_frees_its_frames_and_domid_closes_peers_and_raises_virq_dom_exc() {
        let (mut h, g, mut v, mut d) = setup();
        created(&mut h, 4);
        created(&mut h, 6);
        let mut o = h.others.remove(&4).unwrap();
        let mine = h.give(&mut o.domain, 3);
        // An interdomain channel from 6 to 4, and one from dom0 to 4.
        let p6 = h.others.get_mut(&6).unwrap().domain.ports.alloc_unbound(4).unwrap();
        let p0 = d.ports.alloc_unbound(4).unwrap();
        crate::event::bind_interdomain(&mut o.domain.ports, 4, &mut h.others.get_mut(&6).unwrap().domain.ports, 6, p6).unwrap();
        crate::event::bind_interdomain(&mut o.domain.ports, 4, &mut d.ports, DOM0, p0).unwrap();
        h.others.insert(4, o);
        // dom0 holds a reference to one of its frames (a mapping).
        h.ft.get_page(mine[2], 4).unwrap();
        assert_eq!(domctl_cmd(&mut h, &g, &mut v, &mut d, XEN_DOMCTL_DESTROYDOMAIN, 4), 0);
        assert!(!h.others.contains_key(&4));
        assert_eq!(h.ctl.removed, [4]);
        assert_eq!(h.pool.freed, mine[..2], "frames nothing else references are freed");
        assert_eq!(h.owner(mine[2]), crate::mm::page_type::ORPHAN, "a mapped frame waits for its last reference");
        assert_eq!(h.ctl.virqs, [(DOM0, VIRQ_DOM_EXC)]);
        assert!(!h.ctl.domids.is_allocated(4));
        assert!(matches!(d.ports.state(p0), Some(crate::event::State::Unbound { .. })), "dom0's end is unbound again");
        assert!(matches!(h.other(6).ports.state(p6), Some(crate::event::State::Unbound { .. })), "domain 6's end too");
        // Again: the domain is gone.
        assert_eq!(domctl_cmd(&mut h, &g, &mut v, &mut d, XEN_DOMCTL_DESTROYDOMAIN, 4), -ESRCH);
    }

    #[test]
    fn destroydomain_of_a_domain_running_elsewhere_restarts_and_marks_it_dying() {
        let (mut h, g, mut v, mut d) = setup();
        created(&mut h, 4);
        h.ctl.running.insert(4);
        assert_eq!(domctl_cmd(&mut h, &g, &mut v, &mut d, XEN_DOMCTL_DESTROYDOMAIN, 4), -ERESTART);
        assert!(h.other(4).dying);
        assert!(h.ctl.domids.is_allocated(4));
        h.ctl.running.clear();
        assert_eq!(domctl_cmd(&mut h, &g, &mut v, &mut d, XEN_DOMCTL_DESTROYDOMAIN, 4), 0);
        assert!(!h.ctl.domids.is_allocated(4));
    }

    #[test]
    fn destroydomain_of_an_allocated_id_out_of_its_slot_goes_on_with_the_relinquish() {
        let (mut h, g, mut v, mut d) = setup();
        assert!(h.ctl.domids.claim(4));
        assert_eq!(domctl_cmd(&mut h, &g, &mut v, &mut d, XEN_DOMCTL_DESTROYDOMAIN, 4), 0);
        assert!(h.ctl.removed.is_empty(), "nothing to remove: its references went before");
        assert!(!h.ctl.domids.is_allocated(4));
    }

    #[test]
    fn pause_counts_and_unpause_of_a_running_domain_is_einval() {
        let (mut h, g, mut v, mut d) = setup();
        created(&mut h, 4);
        assert_eq!(domctl_cmd(&mut h, &g, &mut v, &mut d, XEN_DOMCTL_PAUSEDOMAIN, 4), 0);
        assert_eq!(h.other(4).pause_count, 2);
        for left in [1, 0] {
            let kicks = h.ctl.kicks;
            assert_eq!(domctl_cmd(&mut h, &g, &mut v, &mut d, XEN_DOMCTL_UNPAUSEDOMAIN, 4), 0);
            assert_eq!(h.other(4).pause_count, left);
            assert_eq!(h.ctl.kicks, kicks + 1, "an unpause wakes the idle CPUs (Xen's vcpu_wake)");
        }
        assert_eq!(domctl_cmd(&mut h, &g, &mut v, &mut d, XEN_DOMCTL_UNPAUSEDOMAIN, 4), -EINVAL);
        assert_eq!(h.other(4).pause_count, 0);
        for cmd in [XEN_DOMCTL_PAUSEDOMAIN, XEN_DOMCTL_UNPAUSEDOMAIN] {
            assert_eq!(domctl_cmd(&mut h, &g, &mut v, &mut d, cmd, xen_public::DOMID_SELF), -EINVAL, "of self");
            assert_eq!(domctl_cmd(&mut h, &g, &mut v, &mut d, cmd, 8), -ESRCH, "of unknown");
        }
        assert_eq!(d.pause_count, 0);
    }

    fn sched(
        h: &mut FakeMachine,
        g: &FakeGuest,
        v: &mut Vcpu,
        d: &mut Domain,
        dom: u16,
        sop: XenDomctlSchedulerOp,
    ) -> Result<XenDomctlSchedulerOp, i64> {
        let mut op = XenDomctl::new(XEN_DOMCTL_SCHEDULER_OP, dom);
        op.set_payload(&sop);
        match domctl_op(h, g, v, d, &op) {
            0 => Ok(out(g).payload()),
            e => Err(e),
        }
    }

    fn credit(cmd: u32, weight: u16, cap: u16) -> XenDomctlSchedulerOp {
        let mut s = XenDomctlSchedulerOp { sched_id: XEN_SCHEDULER_CREDIT, cmd, ..Default::default() };
        s.set_credit(XenDomctlSchedCredit { weight, cap });
        s
    }

    #[test]
    fn scheduler_op_putinfo_keeps_weight_0_and_cap_0xffff_and_getinfo_reads_back() {
        let (mut h, g, mut v, mut d) = setup();
        created(&mut h, 4);
        let get = credit(XEN_DOMCTL_SCHEDOP_GETINFO, 0, 0);
        let def = Params::default();
        assert_eq!(
            sched(&mut h, &g, &mut v, &mut d, 4, get).unwrap().credit(),
            XenDomctlSchedCredit { weight: def.weight as u16, cap: def.cap as u16 }
        );
        sched(&mut h, &g, &mut v, &mut d, 4, credit(XEN_DOMCTL_SCHEDOP_PUTINFO, 65535, 0)).unwrap();
        assert_eq!(h.ctl.params[&4], Params { weight: 65535, cap: 0 }, "the extremes are accepted");
        sched(&mut h, &g, &mut v, &mut d, 4, credit(XEN_DOMCTL_SCHEDOP_PUTINFO, 0, 50)).unwrap();
        assert_eq!(h.ctl.params[&4], Params { weight: 65535, cap: 50 }, "weight 0: unchanged");
        sched(&mut h, &g, &mut v, &mut d, 4, credit(XEN_DOMCTL_SCHEDOP_PUTINFO, 7, u16::MAX)).unwrap();
        assert_eq!(h.ctl.params[&4], Params { weight: 7, cap: 50 }, "cap 0xffff: unchanged");
        assert_eq!(sched(&mut h, &g, &mut v, &mut d, 4, get).unwrap().credit(), XenDomctlSchedCredit { weight: 7, cap: 50 });
        // The caller's own slot (0) is reachable through DOMID_SELF.
        sched(&mut h, &g, &mut v, &mut d, xen_public::DOMID_SELF, credit(XEN_DOMCTL_SCHEDOP_PUTINFO, 9, 0)).unwrap();
        assert_eq!(h.ctl.params[&0].weight, 9);
    }

    #[test]
    fn scheduler_op_with_another_scheduler_or_command_is_einval_and_unknown_domain_esrch() {
        let (mut h, g, mut v, mut d) = setup();
        created(&mut h, 4);
        let mut s = credit(XEN_DOMCTL_SCHEDOP_PUTINFO, 5, 5);
        s.sched_id = XEN_SCHEDULER_CREDIT + 1;
        assert_eq!(sched(&mut h, &g, &mut v, &mut d, 4, s), Err(-EINVAL));
        assert_eq!(sched(&mut h, &g, &mut v, &mut d, 4, credit(7, 5, 5)), Err(-EINVAL));
        assert_eq!(sched(&mut h, &g, &mut v, &mut d, 8, credit(XEN_DOMCTL_SCHEDOP_PUTINFO, 5, 5)), Err(-ESRCH));
        assert!(h.ctl.params.is_empty(), "nothing set");
    }

    #[test]
    fn max_mem_sets_max_pages_from_kib_for_self_and_others() {
        let (mut h, g, mut v, mut d) = setup();
        created(&mut h, 4);
        let mut op = XenDomctl::new(XEN_DOMCTL_MAX_MEM, 4);
        op.set_payload(&XenDomctlMaxMem { max_memkb: 4099 });
        assert_eq!(domctl_op(&mut h, &g, &mut v, &mut d, &op), 0);
        assert_eq!(h.other(4).max_pages, 1024);
        op.domain = xen_public::DOMID_SELF;
        assert_eq!(domctl_op(&mut h, &g, &mut v, &mut d, &op), 0);
        assert_eq!(d.max_pages, 1024);
        op.domain = 5;
        assert_eq!(domctl_op(&mut h, &g, &mut v, &mut d, &op), -ESRCH);
    }

    #[test]
    fn settscinfo_takes_default_and_native_refuses_emulation_and_bad_modes_as_xen() {
        // Xen 4.17 tsc_set_info: DEFAULT/ALWAYS_EMULATE/NEVER_EMULATE, else
        // -EINVAL; incarnation = the given one + 1; never on oneself.
        let (mut h, g, mut v, mut d) = setup();
        created(&mut h, 4);
        assert_eq!(h.other(4).tsc_incarnation, 1, "arch_domain_create's own set");
        let mut op = XenDomctl::new(XEN_DOMCTL_SETTSCINFO, 4);
        op.set_payload(&XenDomctlTscInfo { tsc_mode: TSC_MODE_NEVER_EMULATE, incarnation: 6, ..XenDomctlTscInfo::default() });
        assert_eq!(domctl_op(&mut h, &g, &mut v, &mut d, &op), 0);
        assert_eq!((h.other(4).tsc_mode, h.other(4).tsc_incarnation), (TSC_MODE_NEVER_EMULATE, 7));
        op.set_payload(&XenDomctlTscInfo { tsc_mode: TSC_MODE_ALWAYS_EMULATE, ..XenDomctlTscInfo::default() });
        assert_eq!(domctl_op(&mut h, &g, &mut v, &mut d, &op), -EOPNOTSUPP, "xen-core has no emulated TSC");
        op.set_payload(&XenDomctlTscInfo { tsc_mode: TSC_MODE_DEFAULT, gtsc_khz: h.cpu_khz() / 2, ..XenDomctlTscInfo::default() });
        assert_eq!(domctl_op(&mut h, &g, &mut v, &mut d, &op), -EOPNOTSUPP, "another guest rate needs emulation");
        op.set_payload(&XenDomctlTscInfo { tsc_mode: 3, ..XenDomctlTscInfo::default() });
        assert_eq!(domctl_op(&mut h, &g, &mut v, &mut d, &op), -EINVAL, "PVRDTSCP is gone from Xen 4.17");
        assert_eq!(h.other(4).tsc_mode, TSC_MODE_NEVER_EMULATE, "a refused set changes nothing");
        let mut get = XenDomctl::new(XEN_DOMCTL_GETTSCINFO, 4);
        assert_eq!(domctl_op(&mut h, &g, &mut v, &mut d, &get), 0);
        let info: XenDomctlTscInfo = out(&g).payload();
        assert_eq!((info.tsc_mode, info.gtsc_khz, info.incarnation, info.elapsed_nsec), (TSC_MODE_NEVER_EMULATE, 0, 7, 0));
        op.set_payload(&XenDomctlTscInfo::default());
        assert_eq!(domctl_op(&mut h, &g, &mut v, &mut d, &op), 0);
        assert_eq!(domctl_op(&mut h, &g, &mut v, &mut d, &get), 0);
        let info: XenDomctlTscInfo = out(&g).payload();
        assert_eq!((info.tsc_mode, info.gtsc_khz), (TSC_MODE_DEFAULT, h.cpu_khz()), "a native default reports the host's rate");
        for cmd in [XEN_DOMCTL_SETTSCINFO, XEN_DOMCTL_GETTSCINFO] {
            assert_eq!(domctl_cmd(&mut h, &g, &mut v, &mut d, cmd, xen_public::DOMID_SELF), -EINVAL, "no domain_pause() of oneself");
            assert_eq!(domctl_cmd(&mut h, &g, &mut v, &mut d, cmd, 9), -ESRCH);
        }
        get.domain = 4;
        d.privileged = false;
        assert_eq!(domctl_op(&mut h, &g, &mut v, &mut d, &get), -EPERM);
    }

    #[test]
    fn max_vcpus_accepts_only_the_created_count_and_never_self() {
        let (mut h, g, mut v, mut d) = setup();
        created(&mut h, 4);
        let mut op = XenDomctl::new(XEN_DOMCTL_MAX_VCPUS, 4);
        op.set_payload(&XenDomctlMaxVcpus { max: 2 });
        assert_eq!(domctl_op(&mut h, &g, &mut v, &mut d, &op), -EINVAL);
        assert!(!h.other(4).vcpu_created);
        op.set_payload(&XenDomctlMaxVcpus { max: 1 });
        assert_eq!(domctl_op(&mut h, &g, &mut v, &mut d, &op), 0);
        assert!(h.other(4).vcpu_created);
        op.domain = DOM0;
        assert_eq!(domctl_op(&mut h, &g, &mut v, &mut d, &op), -EINVAL);
        op.domain = 5;
        assert_eq!(domctl_op(&mut h, &g, &mut v, &mut d, &op), -ESRCH);
    }

    fn hypercall_init_of(h: &mut FakeMachine, g: &FakeGuest, v: &mut Vcpu, d: &mut Domain, dom: u16, gmfn: u64) -> Ret {
        let mut op = XenDomctl::new(XEN_DOMCTL_HYPERCALL_INIT, dom);
        op.set_payload(&XenDomctlHypercallInit { gmfn });
        domctl_op(h, g, v, d, &op)
    }

    #[test]
    fn hypercall_init_fills_an_owned_frame_and_refuses_foreign_and_page_table_frames() {
        let (mut h, g, mut v, mut d) = setup();
        created(&mut h, 4);
        created(&mut h, 6);
        let mut o = h.others.remove(&4).unwrap();
        let mine = h.give(&mut o.domain, 2);
        h.others.insert(4, o);
        let mut o6 = h.others.remove(&6).unwrap();
        let theirs = h.give(&mut o6.domain, 1);
        h.others.insert(6, o6);
        assert_eq!(hypercall_init_of(&mut h, &g, &mut v, &mut d, 4, mine[0]), 0);
        assert_eq!(h.mem.read(mine[0], 0), 0, "stub 0");
        assert_eq!(h.mem.read(mine[0], 4 * 5 + 3), u64::from_le_bytes([5; 8]), "stub 5's last word");
        let f = h.ft.info(mine[0]).unwrap();
        assert_eq!((f.count, f.type_count), (1, 0), "its references are dropped again");
        // Attack: dom0 points domain 4's hypercall page at domain 6's frame.
        assert_eq!(hypercall_init_of(&mut h, &g, &mut v, &mut d, 4, theirs[0]), -EINVAL);
        assert_eq!(h.mem.read(theirs[0], 4), 0, "domain 6's frame is untouched");
        assert_eq!(hypercall_init_of(&mut h, &g, &mut v, &mut d, 4, u64::MAX), -EINVAL);
        // A frame typed as a page table cannot be written.
        h.ft.get_page_type(&mut h.mem, mine[1], PageType::table(1), crate::mm::page_type::Who::own(4, false)).unwrap();
        assert_eq!(hypercall_init_of(&mut h, &g, &mut v, &mut d, 4, mine[1]), -EPERM);
        assert_eq!(h.ft.info(mine[1]).unwrap().count, 1, "the general reference was dropped");
        assert_eq!(hypercall_init_of(&mut h, &g, &mut v, &mut d, 9, mine[0]), -ESRCH);
    }

    #[test]
    fn unknown_domctl_is_esrch_for_an_unknown_domain_and_enosys_otherwise() {
        let (mut h, g, mut v, mut d) = setup();
        created(&mut h, 4);
        assert_eq!(domctl_cmd(&mut h, &g, &mut v, &mut d, XEN_DOMCTL_SHADOW_OP, 9), -ESRCH);
        assert_eq!(domctl_cmd(&mut h, &g, &mut v, &mut d, XEN_DOMCTL_SHADOW_OP, 4), -ENOSYS);
        assert_eq!(domctl_cmd(&mut h, &g, &mut v, &mut d, u32::MAX, xen_public::DOMID_SELF), -ENOSYS);
    }

    fn vcpu_stats_of(h: &mut FakeMachine, g: &FakeGuest, v: &mut Vcpu, d: &mut Domain, domid: u16, vcpu: u32) -> Result<u64, i64> {
        let mut s = XenSysctl::new(xen_public::xencore::XEN_SYSCTL_XENCORE_VCPU_STATS);
        s.set_payload(&xen_public::xencore::VcpuStats { domid, vcpu, ..Default::default() });
        g.copy_to(ARG, &s).unwrap();
        match sysctl(h, v, d, g, ARG) {
            0 => Ok(g.copy_from::<XenSysctl>(ARG).unwrap().payload::<xen_public::xencore::VcpuStats>().preempted_hypercalls),
            e => Err(e),
        }
    }

    #[test]
    fn vcpu_stats_sysctl_is_esrch_for_an_unknown_domain_and_enoent_for_an_unknown_vcpu() {
        let (mut h, g, mut v, mut d) = setup();
        created(&mut h, 4);
        h.others.get_mut(&4).unwrap().vcpus[0].preempted_hypercalls = 17;
        v.preempted_hypercalls = 3;
        assert_eq!(vcpu_stats_of(&mut h, &g, &mut v, &mut d, 4, 0), Ok(17));
        assert_eq!(vcpu_stats_of(&mut h, &g, &mut v, &mut d, xen_public::DOMID_SELF, 0), Ok(3));
        assert_eq!(vcpu_stats_of(&mut h, &g, &mut v, &mut d, DOM0, 0), Ok(3));
        assert_eq!(vcpu_stats_of(&mut h, &g, &mut v, &mut d, 9, 0), Err(-ESRCH));
        assert_eq!(vcpu_stats_of(&mut h, &g, &mut v, &mut d, 4, 1), Err(-ENOENT));
        assert_eq!(vcpu_stats_of(&mut h, &g, &mut v, &mut d, DOM0, u32::MAX), Err(-ENOENT));
    }

    #[test]
    fn sysctl_physinfo_sched_id_and_unknown_commands() {
        let (mut h, g, mut v, mut d) = setup();
        g.copy_to(ARG, &XenSysctl::new(XEN_SYSCTL_PHYSINFO)).unwrap();
        assert_eq!(sysctl(&mut h, &mut v, &mut d, &g, ARG), 0);
        let p: XenSysctlPhysinfo = g.copy_from::<XenSysctl>(ARG).unwrap().payload();
        let free = h.pool.free_count();
        assert_eq!((p.nr_cpus, p.max_cpu_id, p.cpu_khz, p.capabilities), (2, 1, 2_000_000, XEN_SYSCTL_PHYSCAP_PV));
        assert_eq!((p.total_pages, p.max_mfn, p.free_pages), (64, 63, free));
        g.copy_to(ARG, &XenSysctl::new(XEN_SYSCTL_SCHED_ID)).unwrap();
        assert_eq!(sysctl(&mut h, &mut v, &mut d, &g, ARG), 0);
        assert_eq!(g.copy_from::<XenSysctl>(ARG).unwrap().payload::<XenSysctlSchedId>().sched_id, XEN_SCHEDULER_CREDIT);
        g.copy_to(ARG, &XenSysctl::new(0x7fff)).unwrap();
        assert_eq!(sysctl(&mut h, &mut v, &mut d, &g, ARG), -ENOSYS);
        g.copy_to(ARG, &XenSysctl::new(xen_public::xencore::XEN_SYSCTL_XENCORE_AUDIT)).unwrap();
        assert_eq!(sysctl(&mut h, &mut v, &mut d, &g, ARG), -xen_public::errno::EIO, "the auditor answers");
    }

    fn list_of(h: &mut FakeMachine, g: &FakeGuest, v: &mut Vcpu, d: &mut Domain, first: u16, max: u32, buffer: u64) -> Result<u32, i64> {
        let mut s = XenSysctl::new(XEN_SYSCTL_GETDOMAININFOLIST);
        s.set_payload(&XenSysctlGetdomaininfolist { first_domain: first, max_domains: max, buffer, ..Default::default() });
        g.copy_to(ARG, &s).unwrap();
        match sysctl(h, v, d, g, ARG) {
            0 => Ok(g.copy_from::<XenSysctl>(ARG).unwrap().payload::<XenSysctlGetdomaininfolist>().num_domains),
            e => Err(e),
        }
    }

    #[test]
    fn getdomaininfolist_writes_up_to_max_domains_in_domid_order() {
        let (mut h, g, mut v, mut d) = setup();
        created(&mut h, 4);
        created(&mut h, 9);
        assert_eq!(list_of(&mut h, &g, &mut v, &mut d, 0, 10, BUF), Ok(3));
        let size = core::mem::size_of::<XenDomctlGetdomaininfo>() as u64;
        let ids: Vec<u16> = (0..3).map(|i| g.copy_from::<XenDomctlGetdomaininfo>(BUF + i * size).unwrap().domain).collect();
        assert_eq!(ids, [0, 4, 9]);
        assert_eq!(list_of(&mut h, &g, &mut v, &mut d, 1, 1, BUF), Ok(1));
        assert_eq!(list_of(&mut h, &g, &mut v, &mut d, 10, 5, BUF), Ok(0));
        assert_eq!(list_of(&mut h, &g, &mut v, &mut d, 0, 5, 0xdead_0000), Err(-EFAULT), "an unmapped buffer");
        assert_eq!(list_of(&mut h, &g, &mut v, &mut d, 0, u32::MAX, u64::MAX - 8), Err(-EFAULT), "a buffer wrapping the top");
    }

    fn ctx_op(h: &mut FakeMachine, g: &FakeGuest, v: &mut Vcpu, d: &mut Domain, cmd: u32, dom: u16, ctxt: u64) -> Ret {
        let mut op = XenDomctl::new(cmd, dom);
        op.set_payload(&XenDomctlVcpucontext { vcpu: 0, ctxt, ..Default::default() });
        domctl_op(h, g, v, d, &op)
    }

    /// Give `n` frames of the pool to the domain `domid` (not the caller).
    fn give_to(h: &mut FakeMachine, domid: u16, n: u64) -> Vec<u64> {
        let mut o = h.others.remove(&domid).unwrap();
        let f = h.give(&mut o.domain, n);
        h.others.insert(domid, o);
        f
    }

    /// Where the tests put a vcpu_guest_context (two pages).
    const CTX: u64 = 0x10000;

    /// A zeroed context with kernel base `cr3` and user base `user_cr3`
    /// (frame numbers), written at [`CTX`].
    fn ctx_with(g: &FakeGuest, cr3: u64, user_cr3: u64) {
        for p in 0..2 {
            g.map(CTX + 4096 * p);
        }
        let mut c: xen_public::vcpu::VcpuGuestContext = zerocopy::FromZeros::new_zeroed();
        c.ctrlreg[3] = cr3 << 12;
        c.ctrlreg[1] = user_cr3 << 12;
        g.copy_to(CTX, &c).unwrap();
    }

    /// (count, type, type_count) of a frame.
    fn refs(h: &FakeMachine, mfn: u64) -> (u32, PageType, u32) {
        let f = h.ft.info(mfn).unwrap();
        (f.count, f.ty, f.type_count)
    }

    #[test]
    fn setvcpucontext_checks_the_vcpu_and_cr3_and_installs_the_bases_whole() {
        let (mut h, g, mut v, mut d) = setup();
        created(&mut h, 4);
        created(&mut h, 6);
        let l4s = give_to(&mut h, 4, 2);
        let theirs = give_to(&mut h, 6, 1)[0];
        ctx_with(&g, 0, 0);
        let set = XEN_DOMCTL_SETVCPUCONTEXT;
        assert_eq!(ctx_op(&mut h, &g, &mut v, &mut d, set, 4, CTX), -EINVAL, "before max_vcpus");
        h.others.get_mut(&4).unwrap().domain.vcpu_created = true;
        assert_eq!(ctx_op(&mut h, &g, &mut v, &mut d, set, 4, CTX), -EINVAL, "cr3 0");
        assert_eq!(ctx_op(&mut h, &g, &mut v, &mut d, set, 4, 0xdead_0000), -EFAULT, "an unmapped context");
        assert_eq!(ctx_op(&mut h, &g, &mut v, &mut d, set, xen_public::DOMID_SELF, CTX), -EINVAL, "of self");
        assert_eq!(ctx_op(&mut h, &g, &mut v, &mut d, set, 9, CTX), -ESRCH);
        // The user base is no L4 of the target: the kernel base taken is
        // dropped again.
        let before = refs(&h, l4s[0]);
        ctx_with(&g, l4s[0], theirs);
        assert_eq!(ctx_op(&mut h, &g, &mut v, &mut d, set, 4, CTX), -EINVAL);
        assert_eq!(refs(&h, l4s[0]), before, "the kernel base's references went back");
        assert_eq!(h.others[&4].vcpus[0].guest_table, 0);
        ctx_with(&g, l4s[0], l4s[1]);
        assert_eq!(ctx_op(&mut h, &g, &mut v, &mut d, set, 4, CTX), 0);
        let o = &h.others[&4];
        assert_eq!((o.vcpus[0].guest_table, o.vcpus[0].guest_table_user), (l4s[0] << 12, l4s[1] << 12));
        for &l4 in &l4s {
            assert_eq!(refs(&h, l4), (before.0 + 1, PageType::L4, 1), "frame {l4:#x} validated as an L4 and held");
        }
        // getvcpucontext reads it back; a NULL handle resets the vCPU and
        // drops its bases' references.
        let get = XEN_DOMCTL_GETVCPUCONTEXT;
        assert_eq!(ctx_op(&mut h, &g, &mut v, &mut d, get, 4, CTX), 0);
        assert_eq!(g.copy_from::<xen_public::vcpu::VcpuGuestContext>(CTX).unwrap().ctrlreg[3], l4s[0] << 12);
        assert_eq!(ctx_op(&mut h, &g, &mut v, &mut d, set, 4, 0), 0);
        for &l4 in &l4s {
            let (count, _, type_count) = refs(&h, l4);
            assert_eq!((count, type_count), (before.0, 0), "frame {l4:#x} released");
        }
        assert_eq!(ctx_op(&mut h, &g, &mut v, &mut d, get, 4, CTX), -xen_public::errno::ENODATA, "never started");
    }

    #[test]
    fn setvcpucontext_with_a_cr3_that_is_no_l4_of_the_target_is_einval_and_takes_no_reference() {
        // Attack: dom0 (or a compromised builder) points a domain's CR3 at
        // another domain's frame, a frame the target holds writable, an
        // "L4" mapping another domain's frame, or past the frame table.
        let (mut h, g, mut v, mut d) = setup();
        created(&mut h, 4);
        created(&mut h, 6);
        h.others.get_mut(&4).unwrap().domain.vcpu_created = true;
        let mine = give_to(&mut h, 4, 2);
        let theirs = give_to(&mut h, 6, 1)[0];
        let who4 = crate::mm::page_type::Who::own(4, false);
        h.ft.get_page(mine[0], 4).unwrap();
        h.ft.get_page_type(&mut h.mem, mine[0], PageType::Writable, who4).unwrap();
        h.mem.write(mine[1], 0, (theirs << 12) | xen_public::pte::PteFlags::PRESENT.bits());
        let frames = [mine[0], mine[1], theirs];
        let before: Vec<_> = frames.iter().map(|&f| refs(&h, f)).collect();
        for cr3 in [theirs, mine[0], mine[1], FRAMES, (u64::MAX >> 12) - 1] {
            ctx_with(&g, cr3, 0);
            assert_eq!(ctx_op(&mut h, &g, &mut v, &mut d, XEN_DOMCTL_SETVCPUCONTEXT, 4, CTX), -EINVAL, "cr3 {cr3:#x}");
            let after: Vec<_> = frames.iter().map(|&f| refs(&h, f)).collect();
            assert_eq!(after, before, "no reference taken or left (cr3 {cr3:#x})");
            let o = &h.others[&4].vcpus[0];
            assert_eq!((o.guest_table, o.vcpu_up), (0, false), "the vCPU is as it was");
        }
        assert_eq!(h.ft.info(theirs).unwrap().owner, 6, "domain 6 keeps its frame");
    }

    /// Xen's arch_set_info_guest: CR4 keeps only the PV guest's bits
    /// (TSD, DE), the debug registers go through set_debugreg from their
    /// defaults (a refused DR0 stays 0), and getvcpucontext gives them
    /// back: a rebuilt vCPU keeps nothing of its previous life.
    #[test]
    fn setvcpucontext_loads_cr4_and_the_debug_registers_as_xen() {
        let (mut h, g, mut v, mut d) = setup();
        created(&mut h, 4);
        h.others.get_mut(&4).unwrap().domain.vcpu_created = true;
        h.others.get_mut(&4).unwrap().vcpus[0].debug.dr[1] = 0x5000;
        let l4s = give_to(&mut h, 4, 1);
        ctx_with(&g, l4s[0], 0);
        let mut c: xen_public::vcpu::VcpuGuestContext = g.copy_from(CTX).unwrap();
        c.ctrlreg[4] = (1 << 2) | (1 << 3) | (1 << 7) | (1 << 20);
        c.debugreg = [0x1000, 0, 0xffff_8000_0000_0000, 0, 0, 0, 0, 0x1];
        g.copy_to(CTX, &c).unwrap();
        assert_eq!(ctx_op(&mut h, &g, &mut v, &mut d, XEN_DOMCTL_SETVCPUCONTEXT, 4, CTX), 0);
        let t = &h.others[&4].vcpus[0];
        assert_eq!(t.cr4, (1 << 2) | (1 << 3), "only TSD and DE are the guest's");
        assert_eq!(t.debug.dr, [0x1000, 0, 0, 0], "DR1 reset, the hypervisor-range DR2 refused");
        assert_eq!(t.debug.dr7 & 0xff, 1, "L0 enabled");
        g.map(CTX + 8192);
        assert_eq!(ctx_op(&mut h, &g, &mut v, &mut d, XEN_DOMCTL_GETVCPUCONTEXT, 4, CTX + 4096), 0);
        let back: xen_public::vcpu::VcpuGuestContext = g.copy_from(CTX + 4096).unwrap();
        assert_eq!(back.ctrlreg[4], (1 << 2) | (1 << 3));
        assert_eq!((back.debugreg[0], back.debugreg[7] & 0x4ff), (0x1000, 0x401));
    }

    /// Xen's arch_set_info_guest never writes vcpu_info's
    /// evtchn_upcall_mask: the mask libxc set in shared_info (1 for every
    /// vCPU) survives XEN_DOMCTL_setvcpucontext, whatever the context's IF.
    #[test]
    fn setvcpucontext_keeps_the_upcall_mask_the_toolstack_wrote() {
        let (mut h, g, mut v, mut d) = setup();
        created(&mut h, 4);
        h.others.get_mut(&4).unwrap().domain.vcpu_created = true;
        // libxc's shared_info hook masks every vCPU's upcalls.
        h.ctl.shared_mask.insert(4, true);
        let l4s = give_to(&mut h, 4, 1);
        ctx_with(&g, l4s[0], 0);
        let mut c: xen_public::vcpu::VcpuGuestContext = g.copy_from(CTX).unwrap();
        c.user_regs.rflags = 0x202;
        g.copy_to(CTX, &c).unwrap();
        assert_eq!(ctx_op(&mut h, &g, &mut v, &mut d, XEN_DOMCTL_SETVCPUCONTEXT, 4, CTX), 0);
        assert!(h.others[&4].vcpus[0].upcall_mask, "IF in the context does not unmask upcalls");
        assert_eq!(h.ctl.shared_mask.get(&4), Some(&true));
    }

    #[test]
    fn destroydomain_releases_the_vcpus_base_references_and_frees_its_tables() {
        let (mut h, g, mut v, mut d) = setup();
        created(&mut h, 4);
        h.others.get_mut(&4).unwrap().domain.vcpu_created = true;
        let l4s = give_to(&mut h, 4, 2);
        ctx_with(&g, l4s[0], l4s[1]);
        assert_eq!(ctx_op(&mut h, &g, &mut v, &mut d, XEN_DOMCTL_SETVCPUCONTEXT, 4, CTX), 0);
        assert_eq!(refs(&h, l4s[0]).2, 1, "the base holds its L4 type");
        assert_eq!(domctl_cmd(&mut h, &g, &mut v, &mut d, XEN_DOMCTL_DESTROYDOMAIN, 4), 0);
        for &l4 in &l4s {
            let f = h.ft.info(l4).unwrap();
            assert_eq!((f.count, f.type_count, f.owner), (0, 0, NO_OWNER), "frame {l4:#x}: no reference left, freed");
            assert!(h.pool.freed.contains(&l4), "frame {l4:#x} back in the pool");
        }
    }

    #[test]
    fn getvcpuinfo_is_einval_past_max_vcpus_and_esrch_before_the_vcpus_exist() {
        let (mut h, g, mut v, mut d) = setup();
        created(&mut h, 4);
        let info = |h: &mut FakeMachine, v: &mut Vcpu, d: &mut Domain, dom: u16, vcpu: u32| {
            let mut op = XenDomctl::new(XEN_DOMCTL_GETVCPUINFO, dom);
            op.set_payload(&XenDomctlGetvcpuinfo { vcpu, ..Default::default() });
            match domctl_op(h, &g, v, d, &op) {
                0 => Ok(out(&g).payload::<XenDomctlGetvcpuinfo>()),
                e => Err(e),
            }
        };
        assert_eq!(info(&mut h, &mut v, &mut d, 4, 0).err(), Some(-ESRCH), "before max_vcpus");
        assert_eq!(info(&mut h, &mut v, &mut d, 4, 1).err(), Some(-EINVAL));
        assert_eq!(info(&mut h, &mut v, &mut d, 9, 0).err(), Some(-ESRCH));
        h.others.get_mut(&4).unwrap().domain.vcpu_created = true;
        h.others.get_mut(&4).unwrap().vcpus[0].cpu_time = 100;
        h.ctl.on_cpu.insert((4, 0), (1, 1000));
        h.ctl.now = 1500;
        let i = info(&mut h, &mut v, &mut d, 4, 0).unwrap();
        assert_eq!((i.running, i.cpu_time, i.cpu), (1, 600, 1), "running since 1000 on CPU 1");
        let i = info(&mut h, &mut v, &mut d, xen_public::DOMID_SELF, 0).unwrap();
        assert_eq!((i.online, i.running), (1, 1), "the caller runs");
    }

    /// XEN_SYSCTL_readconsole with `clear`, `incremental`, `index`, a
    /// buffer of `count` bytes at `buffer`: the OUT (count, index), or the
    /// errno; the sysctl as it was left in the argument.
    fn readconsole(
        h: &mut FakeMachine,
        g: &FakeGuest,
        v: &mut Vcpu,
        d: &mut Domain,
        (clear, incremental, index): (bool, bool, u32),
        buffer: u64,
        count: u32,
    ) -> Result<(u32, u32), i64> {
        let mut s = XenSysctl::new(XEN_SYSCTL_READCONSOLE);
        s.set_payload(&XenSysctlReadconsole { clear: clear.into(), incremental: incremental.into(), index, buffer, count, ..Default::default() });
        g.copy_to(ARG, &s).unwrap();
        match sysctl(h, v, d, g, ARG) {
            0 => {
                let r = g.copy_from::<XenSysctl>(ARG).unwrap().payload::<XenSysctlReadconsole>();
                Ok((r.count, r.index))
            }
            e => Err(e),
        }
    }

    fn text(g: &FakeGuest, at: u64, n: u32) -> std::string::String {
        let mut b = std::vec![0u8; n as usize];
        g.read(at, &mut b).unwrap();
        std::string::String::from_utf8(b).unwrap()
    }

    const PLAIN: (bool, bool, u32) = (false, false, 0);

    #[test]
    fn readconsole_copies_the_history_and_says_how_much_and_where_it_stopped() {
        let (mut h, g, mut v, mut d) = setup();
        h.ctl.conring.puts(b"(XEN) one\n(XEN) two\n");
        assert_eq!(readconsole(&mut h, &g, &mut v, &mut d, PLAIN, BUF, 4096), Ok((20, 20)));
        assert_eq!(text(&g, BUF, 20), "(XEN) one\n(XEN) two\n");
        // A smaller buffer gets the oldest bytes; without clear, a second
        // read gets them again.
        assert_eq!(readconsole(&mut h, &g, &mut v, &mut d, PLAIN, BUF, 6), Ok((6, 6)));
        assert_eq!(text(&g, BUF, 6), "(XEN) ");
        assert_eq!(readconsole(&mut h, &g, &mut v, &mut d, PLAIN, BUF, 0), Ok((0, 0)), "count 0 reads nothing");
        assert_eq!(h.ctl.conring.bounds(), (0, 20), "reading without clear keeps the history");
    }

    #[test]
    fn readconsole_incremental_reads_go_on_where_the_last_stopped() {
        let (mut h, g, mut v, mut d) = setup();
        h.ctl.conring.puts(b"(XEN) one\n");
        let (n, idx) = readconsole(&mut h, &g, &mut v, &mut d, PLAIN, BUF, 4096).unwrap();
        assert_eq!((n, idx), (10, 10));
        assert_eq!(readconsole(&mut h, &g, &mut v, &mut d, (false, true, idx), BUF, 4096), Ok((0, 10)), "nothing new");
        h.ctl.conring.puts(b"(XEN) two\n");
        assert_eq!(readconsole(&mut h, &g, &mut v, &mut d, (false, true, idx), BUF, 4096), Ok((10, 20)));
        assert_eq!(text(&g, BUF, 10), "(XEN) two\n");
        // The index is ignored unless incremental is set.
        assert_eq!(readconsole(&mut h, &g, &mut v, &mut d, (false, false, 10), BUF, 4096), Ok((20, 20)));
    }

    #[test]
    fn readconsole_incremental_reads_cross_the_ring_end_and_the_u32_wrap() {
        let (mut h, g, mut v, mut d) = setup();
        g.map(BUF + 0x1000);
        g.map(BUF + 0x2000);
        g.map(BUF + 0x3000);
        g.map(BUF + 0x4000);
        *h.ctl.conring = ConRing::starting_at(u32::MAX - 100);
        let lines: std::vec::Vec<std::string::String> = (0..2000).map(|i| std::format!("(XEN) line {i:05}\n")).collect();
        let mut idx = u32::MAX - 100;
        let mut got = std::string::String::new();
        for chunk in lines.chunks(150) {
            for l in chunk {
                h.ctl.conring.puts(l.as_bytes());
            }
            let (n, next) = readconsole(&mut h, &g, &mut v, &mut d, (false, true, idx), BUF, 0x5000).unwrap();
            assert_eq!(next, idx.wrapping_add(n), "index advances by the bytes copied");
            got += &text(&g, BUF, n);
            idx = next;
        }
        assert_eq!(got, lines.concat(), "every byte once, in order, across the ring's end and index 2^32");
        assert!(idx < 100_000, "the index wrapped");
    }

    #[test]
    fn readconsole_clear_forgets_what_was_read_and_only_that() {
        let (mut h, g, mut v, mut d) = setup();
        h.ctl.conring.puts(b"(XEN) one\n(XEN) two\n");
        assert_eq!(readconsole(&mut h, &g, &mut v, &mut d, (true, false, 0), BUF, 10), Ok((10, 10)));
        assert_eq!(readconsole(&mut h, &g, &mut v, &mut d, PLAIN, BUF, 4096), Ok((10, 20)), "the unread line stays");
        assert_eq!(text(&g, BUF, 10), "(XEN) two\n");
        assert_eq!(readconsole(&mut h, &g, &mut v, &mut d, (true, false, 0), BUF, 4096), Ok((10, 20)));
        assert_eq!(readconsole(&mut h, &g, &mut v, &mut d, PLAIN, BUF, 4096), Ok((0, 20)), "cleared: empty");
    }

    #[test]
    fn readconsole_attack_a_huge_count_copies_only_what_the_ring_holds() {
        let (mut h, g, mut v, mut d) = setup();
        for off in (0x1000..0x6000).step_by(0x1000) {
            g.map(BUF + off);
        }
        let big = std::vec![b'x'; CONRING_SIZE + 500];
        h.ctl.conring.puts(&big);
        assert_eq!(readconsole(&mut h, &g, &mut v, &mut d, PLAIN, BUF, u32::MAX), Ok((CONRING_SIZE as u32, CONRING_SIZE as u32 + 500)));
        assert_eq!(text(&g, BUF, CONRING_SIZE as u32), "x".repeat(CONRING_SIZE));
        let mut after = [0u8; 1];
        g.read(BUF + CONRING_SIZE as u64, &mut after).unwrap();
        assert_eq!(after, [0], "nothing written past what the ring holds");
    }

    #[test]
    fn readconsole_attack_an_index_outside_the_ring_starts_at_the_oldest_byte() {
        let (mut h, g, mut v, mut d) = setup();
        h.ctl.conring.puts(b"(XEN) one\n");
        for bogus in [11, 5000, u32::MAX, 0x8000_0000] {
            assert_eq!(readconsole(&mut h, &g, &mut v, &mut d, (false, true, bogus), BUF, 4096), Ok((10, 10)), "index {bogus}");
        }
        // After a clear, an index behind the new oldest byte starts there.
        readconsole(&mut h, &g, &mut v, &mut d, (true, false, 0), BUF, 4).unwrap();
        h.ctl.conring.puts(b"(XEN) two\n");
        assert_eq!(readconsole(&mut h, &g, &mut v, &mut d, (false, true, 2), BUF, 4096), Ok((16, 20)));
        assert_eq!(text(&g, BUF, 16), ") one\n(XEN) two\n");
    }

    #[test]
    fn readconsole_attack_an_unmapped_buffer_is_efault_clears_nothing_and_writes_no_result() {
        let (mut h, g, mut v, mut d) = setup();
        h.ctl.conring.puts(b"(XEN) one\n");
        for buffer in [0xdead_0000, u64::MAX - 3, 0x8000_0000_0000] {
            assert_eq!(readconsole(&mut h, &g, &mut v, &mut d, (true, false, 0), buffer, 4096), Err(-EFAULT), "buffer {buffer:#x}");
            let left = g.copy_from::<XenSysctl>(ARG).unwrap().payload::<XenSysctlReadconsole>();
            assert_eq!((left.count, left.index), (4096, 0), "no copy-back on a fault, as Xen's do_sysctl");
        }
        assert_eq!(h.ctl.conring.bounds(), (0, 10), "nothing cleared");
        // A buffer that runs into an unmapped page after a full chunk: the
        // first chunk is written, then -EFAULT, and still nothing cleared.
        g.map(0x20000);
        h.ctl.conring.puts(&[b'x'; 600]);
        let start = 0x21000 - READCONSOLE_CHUNK as u64;
        assert_eq!(readconsole(&mut h, &g, &mut v, &mut d, (true, false, 0), start, 4096), Err(-EFAULT));
        assert_eq!(text(&g, start, 10), "(XEN) one\n");
        assert_eq!(h.ctl.conring.bounds(), (0, 610), "nothing cleared");
    }

    #[test]
    fn readconsole_from_a_domu_is_eperm() {
        let (mut h, g, mut v, mut d) = setup();
        h.ctl.conring.puts(b"(XEN) secret\n");
        d.privileged = false;
        d.domid = 3;
        assert_eq!(readconsole(&mut h, &g, &mut v, &mut d, (true, false, 0), BUF, 4096), Err(-EPERM));
        assert_eq!(text(&g, BUF, 4), "\0\0\0\0", "nothing copied");
        assert_eq!(h.ctl.conring.bounds(), (0, 13), "nothing cleared");
    }
}
