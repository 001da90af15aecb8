//! `domctl` and `sysctl`: the control interfaces of the privileged domain,
//! with Xen 4.17's interface versions and layouts; and `memory_op`, which
//! a privileged domain may apply to another (populating a new domain).
//! Other domains can be created, given memory, paused, unpaused, inspected
//! and destroyed; they do not run yet (no vCPU context or scheduling).

use super::*;
use xen_public::domctl::*;
use xen_public::memory::{XenMemoryDomain, XenMemoryReservation};
use xen_public::sysctl::*;

use xen_public::{XEN_DOMINF_BLOCKED, XEN_DOMINF_PAUSED, XEN_DOMINF_RUNNING, XEN_DOMINF_SHUTDOWN, XEN_DOMINF_SHUTDOWNSHIFT};

/// Xen's `XEN_DOMINF_*` flags of `d`, whose vCPUs are `vcpus`; `running`
/// for the caller, which runs here; any other domain runs if one of its
/// vCPUs is on another CPU right now. As Xen's `getdomaininfo`, over the
/// online vCPUs only: blocked when every one of them is, running when one
/// is, and neither when none is online.
fn dominf_flags(d: &Domain, vcpus: &[Vcpu], running: bool) -> u32 {
    let mut flags = 0;
    let mut online = vcpus.iter().filter(|v| v.vcpu_up).peekable();
    if online.peek().is_some() {
        let on_a_cpu =
            || vcpus.iter().any(|v| v.vcpu_up && crate::schedule::running_on(crate::schedule::VcpuId::new(d.slot, v.vcpu_id as usize)).is_some());
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
fn domaininfo(d: &Domain, vcpus: &[Vcpu], running: bool) -> XenDomctlGetdomaininfo {
    let used: u64 = vcpus.iter().map(|v| v.cpu_time).sum();
    let cpu_time = if running { used.max(crate::guest::system_time()) } else { used };
    XenDomctlGetdomaininfo {
        domain: d.domid,
        flags: dominf_flags(d, vcpus, running),
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
fn first_domain_from(v: &Vcpu, d: &Domain, from: u16) -> Option<XenDomctlGetdomaininfo> {
    let next = crate::schedule::next_domid_from(from)?;
    if next == d.domid {
        return Some(domaininfo(d, core::slice::from_ref(v), true));
    }
    crate::schedule::with_guest(next, |g| domaininfo(&g.domain, &g.vcpus, false))
}

/// Run `f` on another domain.
fn with_other<R>(domid: u16, f: impl FnOnce(&mut Domain) -> R) -> Option<R> {
    crate::schedule::with_domain(domid, f)
}

/// Xen's internal "restart this hypercall" code: never seen by a guest,
/// [`super::dispatch`] turns it into a continuation.
pub(super) const ERESTART: i64 = 85;
const _: () = assert!(crate::mm::page_type::MmError::Restart.errno() == -ERESTART);

/// XEN_DOMCTL_createdomain: an empty, paused PV domain.
fn create_domain(requested: u16, c: &XenDomctlCreatedomain) -> Result<u16, i64> {
    if c.flags & XEN_DOMCTL_CDF_HVM != 0 || c.max_vcpus as usize != crate::guest::MAX_VCPUS {
        // No HVM; one vCPU per domain so far.
        return Err(-EINVAL);
    }
    let mut ids = crate::guest::DOMIDS.lock();
    let domid = if requested > 0 && requested < xen_public::DOMID_FIRST_RESERVED {
        if !ids.claim(requested) {
            return Err(-xen_public::errno::EEXIST);
        }
        requested
    } else {
        ids.alloc().ok_or(-xen_public::errno::ENOMEM)?
    };
    let Some(shinfo) = crate::mm::machine::alloc_frame() else {
        let _ = ids.free(domid);
        return Err(-xen_public::errno::ENOMEM);
    };
    if let Some(ft) = FRAME_TABLE.lock().as_mut() {
        let _ = ft.share_with_guest(shinfo.0, domid);
    }
    let mut dom = Domain::empty(domid, false, shinfo);
    dom.pause_count = 1;
    let mut g = crate::guest::Guest::new(dom);
    // As a domU that Xen's toolstack builds: shared_info starts zeroed, so
    // event upcalls start unmasked (only dom0 starts masked).
    for v in &mut g.vcpus {
        v.upcall_mask = false;
        g.domain.init_shared(v);
    }
    if crate::schedule::install(g).is_err() {
        if let Some(ft) = FRAME_TABLE.lock().as_mut() {
            ft.unshare(&mut super::mmu::mm().mem, shinfo.0, domid);
            if ft.release(&mut super::mmu::mm().mem, shinfo.0, domid) {
                crate::mm::machine::free_frame(shinfo);
            }
        }
        let _ = ids.free(domid);
        return Err(-xen_public::errno::ENOMEM);
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
fn destroy_domain(caller: &mut Domain, domid: u16) -> Result<(), i64> {
    if !being_relinquished(domid) {
        let mut dom = crate::schedule::remove(domid).map_err(|e| match e {
            crate::schedule::RemoveError::NotFound => -ESRCH,
            crate::schedule::RemoveError::Running => -ERESTART,
        })?;
        let crate::guest::Guest { domain: dom, vcpus } = &mut *dom;
        for (rdom, rport) in crate::event::foreign_peers(&dom.ports, domid) {
            if rdom == caller.domid {
                crate::event::peer_closed(&mut caller.ports, rport, domid);
            } else {
                crate::schedule::with_domain(rdom, |o| crate::event::peer_closed(&mut o.ports, rport, domid));
            }
        }
        super::gnttab::release_grants(caller, dom);
        super::gnttab::forget_granter(caller, domid);
        for v in vcpus.iter_mut() {
            super::mmu::release_vcpu_refs(v);
        }
        super::mmu::release_domain_refs(dom);
    }
    let mut released = 0u64;
    if let Some(ft) = FRAME_TABLE.lock().as_mut() {
        let mut mem = crate::mm::machine::DirectMapMem::new(true);
        let done = ft.relinquish(&mut mem, domid, |mfn| {
            crate::mm::machine::free_frame(Mfn(mfn));
            released += 1;
        });
        if done.is_err() {
            return Err(-ERESTART);
        }
    }
    log::info!("domain {domid} destroyed ({released} frames freed in the last step)");
    caller.raise_virq(crate::guest::VIRQ_DOM_EXC);
    let _ = crate::guest::DOMIDS.lock().free(domid);
    Ok(())
}

/// Whether `domid` left its slot and its frames are still being given
/// back (an allocated id with no domain).
fn being_relinquished(domid: u16) -> bool {
    crate::schedule::slot_of(domid).is_none() && crate::guest::DOMIDS.lock().is_allocated(domid)
}

/// `domctl(op)`.
pub(super) fn domctl(v: &mut Vcpu, d: &mut Domain, arg: u64) -> Ret {
    if !d.privileged {
        return -EPERM;
    }
    let mem = v.kernel_mem();
    let Ok(mut op) = mem.copy_from::<XenDomctl>(arg) else { return -EFAULT };
    if op.interface_version != XEN_DOMCTL_INTERFACE_VERSION {
        return -EACCES;
    }
    let dom = op.domain;
    let is_self = dom == d.domid || dom == xen_public::DOMID_SELF;
    match op.cmd {
        XEN_DOMCTL_CREATEDOMAIN => match create_domain(dom, &op.payload()) {
            Ok(id) => op.domain = id,
            Err(e) => return e,
        },
        XEN_DOMCTL_GETDOMAININFO => {
            let Some(info) = first_domain_from(v, d, dom) else { return -ESRCH };
            op.domain = info.domain;
            op.set_payload(&info);
        }
        XEN_DOMCTL_MAX_MEM => {
            let pages = op.payload::<XenDomctlMaxMem>().max_memkb / 4;
            if is_self {
                d.max_pages = pages;
            } else if with_other(dom, |o| o.max_pages = pages).is_none() {
                return -ESRCH;
            }
            return 0;
        }
        XEN_DOMCTL_PAUSEDOMAIN | XEN_DOMCTL_UNPAUSEDOMAIN | XEN_DOMCTL_DESTROYDOMAIN if is_self => return -EINVAL,
        XEN_DOMCTL_PAUSEDOMAIN => return with_other(dom, |o| o.pause_count += 1).map_or(-ESRCH, |()| 0),
        XEN_DOMCTL_UNPAUSEDOMAIN => return with_other(dom, unpause).unwrap_or(-ESRCH),
        XEN_DOMCTL_DESTROYDOMAIN => return destroy_domain(d, dom).map_or_else(|e| e, |()| 0),
        XEN_DOMCTL_SETVCPUCONTEXT | XEN_DOMCTL_GETVCPUCONTEXT | XEN_DOMCTL_MAX_VCPUS if is_self => return -EINVAL,
        XEN_DOMCTL_SETVCPUCONTEXT => {
            let XenDomctlVcpucontext { vcpu, ctxt, .. } = op.payload();
            let ctx = if ctxt == 0 {
                None
            } else {
                let Ok(c) = mem.copy_from::<xen_public::vcpu::VcpuGuestContext>(ctxt) else { return -EFAULT };
                Some(c)
            };
            return crate::schedule::with_guest(dom, |g| super::vcpu_ctx::set(g, vcpu, ctx.as_ref())).unwrap_or(-ESRCH);
        }
        XEN_DOMCTL_GETVCPUCONTEXT => {
            let XenDomctlVcpucontext { vcpu, ctxt, .. } = op.payload();
            let mut ctx: xen_public::vcpu::VcpuGuestContext = zerocopy::FromZeros::new_zeroed();
            let rc = crate::schedule::with_guest(dom, |g| super::vcpu_ctx::get(g, vcpu, &mut ctx)).unwrap_or(-ESRCH);
            if rc == 0 && ctxt != 0 && mem.copy_to(ctxt, &ctx).is_err() {
                return -EFAULT;
            }
            return rc;
        }
        XEN_DOMCTL_GETVCPUINFO => {
            let mut info: XenDomctlGetvcpuinfo = op.payload();
            let rc = if is_self {
                super::vcpu_ctx::info(d, core::slice::from_ref(v), true, &mut info)
            } else {
                crate::schedule::with_guest(dom, |g| super::vcpu_ctx::info(&g.domain, &g.vcpus, false, &mut info)).unwrap_or(-ESRCH)
            };
            if rc != 0 {
                return rc;
            }
            op.set_payload(&info);
        }
        XEN_DOMCTL_SCHEDULER_OP => {
            let slot = if is_self { Some(d.slot) } else { with_other(dom, |o| o.slot) };
            let Some(slot) = slot else { return -ESRCH };
            let mut sop: XenDomctlSchedulerOp = op.payload();
            let rc = scheduler_op(slot, &mut sop);
            if rc != 0 {
                return rc;
            }
            op.set_payload(&sop);
        }
        XEN_DOMCTL_HYPERCALL_INIT => {
            let gmfn = op.payload::<XenDomctlHypercallInit>().gmfn;
            return if is_self { hypercall_init(d, gmfn) } else { with_other(dom, |o| hypercall_init(o, gmfn)).unwrap_or(-ESRCH) };
        }
        XEN_DOMCTL_MAX_VCPUS => {
            // As Xen 4.17: the count was fixed by createdomain; only the
            // same value is accepted, and it creates the vCPUs.
            let max = op.payload::<XenDomctlMaxVcpus>().max;
            return with_other(dom, |o| {
                if max != o.max_vcpus {
                    return -EINVAL;
                }
                o.vcpu_created = true;
                0
            })
            .unwrap_or(-ESRCH);
        }
        _ if !is_self && with_other(dom, |_| ()).is_none() => return -ESRCH,
        _ => return -ENOSYS,
    }
    crate::domain::guest_mem::rc(mem.copy_to(arg, &op))
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
fn scheduler_op(slot: usize, op: &mut XenDomctlSchedulerOp) -> Ret {
    let Some(mut params) = crate::schedule::params(slot) else { return -ESRCH };
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
            crate::schedule::set_params(slot, params);
        }
        _ => return -EINVAL,
    }
    0
}

/// XEN_DOMCTL_hypercall_init: fill frame `gmfn` of `o` (for a PV domain
/// its machine frame) with the hypercall stubs. A frame the domain does not
/// own is -EINVAL; one it cannot write (in use as a page table) -EPERM.
fn hypercall_init(o: &mut Domain, gmfn: u64) -> Ret {
    let mut m = super::mmu::mm();
    let mut ftg = FRAME_TABLE.lock();
    let Some(ft) = ftg.as_mut() else { return -EINVAL };
    if ft.get_page(gmfn, o.domid).is_err() {
        return -EINVAL;
    }
    if ft.get_page_type(&mut m.mem, gmfn, PageType::Writable, super::mmu::who(o)).is_err() {
        // As Xen: a frame of the domain that cannot be written (a page
        // table, a descriptor page) is -EPERM.
        ft.put_page(gmfn);
        return -EPERM;
    }
    for i in 0..xen_public::hypercall::PAGE_STUBS {
        let stub = crate::domain::build::hypercall_stub(i);
        for (w, chunk) in stub.chunks_exact(8).enumerate() {
            m.mem.write(gmfn, i * 4 + w, u64::from_le_bytes(chunk.try_into().unwrap_or_default()));
        }
    }
    ft.put_page_type(&mut m.mem, gmfn);
    ft.put_page(gmfn);
    0
}

/// `sysctl(op)`.
pub(super) fn sysctl(v: &mut Vcpu, d: &mut Domain, arg: u64) -> Ret {
    if !d.privileged {
        return -EPERM;
    }
    let mem = v.kernel_mem();
    let Ok(mut op) = mem.copy_from::<XenSysctl>(arg) else { return -EFAULT };
    if op.interface_version != XEN_SYSCTL_INTERFACE_VERSION {
        return -EACCES;
    }
    match op.cmd {
        XEN_SYSCTL_PHYSINFO => op.set_payload(&physinfo()),
        XEN_SYSCTL_SCHED_ID => op.set_payload(&XenSysctlSchedId { sched_id: XEN_SCHEDULER_CREDIT }),
        super::audit::SYSCTL_XENCORE_AUDIT => return super::audit::sysctl(v, d, arg, &mut op),
        xen_public::xencore::XEN_SYSCTL_XENCORE_VCPU_STATS => {
            let mut q: xen_public::xencore::VcpuStats = op.payload();
            let read = |vcpus: &[Vcpu]| vcpus.get(q.vcpu as usize).map(|v| v.preempted_hypercalls).ok_or(-xen_public::errno::ENOENT);
            let got = if q.domid == xen_public::DOMID_SELF || q.domid == d.domid {
                Some(read(core::slice::from_ref(v)))
            } else {
                crate::schedule::with_guest(q.domid, |g| read(&g.vcpus))
            };
            match got {
                None => return -ESRCH,
                Some(Err(e)) => return e,
                Some(Ok(n)) => q.preempted_hypercalls = n,
            }
            op.set_payload(&q);
        }
        XEN_SYSCTL_GETDOMAININFOLIST => {
            let mut list: XenSysctlGetdomaininfolist = op.payload();
            let mut n = 0u32;
            let mut next = list.first_domain;
            while n < list.max_domains {
                let Some(info) = first_domain_from(v, d, next) else { break };
                let at = list.buffer + u64::from(n) * core::mem::size_of::<XenDomctlGetdomaininfo>() as u64;
                if mem.copy_to(at, &info).is_err() {
                    return -EFAULT;
                }
                n += 1;
                let Some(after) = info.domain.checked_add(1) else { break };
                next = after;
            }
            list.num_domains = n;
            op.set_payload(&list);
        }
        _ => return -ENOSYS,
    }
    crate::domain::guest_mem::rc(mem.copy_to(arg, &op))
}

/// XEN_SYSCTL_physinfo: one thread per core, one core per socket, one
/// node; PV only.
fn physinfo() -> XenSysctlPhysinfo {
    let total = crate::mm::machine::M2P.get().map_or(0, |m| m.entries);
    let cpus = crate::arch::x86_64::smp::CPUS_ONLINE.load(core::sync::atomic::Ordering::SeqCst);
    XenSysctlPhysinfo {
        threads_per_core: 1,
        cores_per_socket: 1,
        nr_cpus: cpus,
        max_cpu_id: cpus - 1,
        nr_nodes: 1,
        cpu_khz: crate::guest::tsc_khz(),
        capabilities: XEN_SYSCTL_PHYSCAP_PV,
        total_pages: total,
        free_pages: crate::mm::machine::free_frames(),
        max_mfn: total.saturating_sub(1),
        ..Default::default()
    }
}

/// `memory_op(cmd, arg)` for the domain itself: reservations and the
/// physmap, in extents of order 0 (larger orders are -EINVAL here, where
/// Xen would allocate them). A frame given back must have no other
/// reference (Xen would free it when its last mapping goes).
pub(super) fn memory_op(v: &mut Vcpu, d: &mut Domain, cmd: u32, arg: u64) -> Ret {
    const INCREASE: u32 = 0;
    const DECREASE: u32 = 1;
    const MAXIMUM_RAM_PAGE: u32 = 2;
    const CURRENT: u32 = 3;
    const MAXIMUM: u32 = 4;
    const POPULATE: u32 = 6;
    let mem = v.kernel_mem();
    match cmd & 0x3f {
        MAXIMUM_RAM_PAGE => crate::mm::machine::M2P.get().map_or(0, |m| m.entries.saturating_sub(1)) as i64,
        CURRENT | MAXIMUM => {
            let Ok(XenMemoryDomain { domid: dom }) = mem.copy_from::<XenMemoryDomain>(arg) else { return -EFAULT };
            let pick = |o: &Domain| (if cmd & 0x3f == CURRENT { o.nr_pages } else { o.max_pages }) as i64;
            if dom == xen_public::DOMID_SELF || dom == d.domid {
                return pick(d);
            }
            if !d.privileged {
                return -EPERM;
            }
            with_other(dom, |o| pick(o)).unwrap_or(-ESRCH)
        }
        INCREASE | DECREASE | POPULATE => {
            let Ok(r) = mem.copy_from::<XenMemoryReservation>(arg) else { return -EFAULT };
            let (list, nr, order, dom) = (r.extent_start, r.nr_extents, r.extent_order, r.domid);
            if order != 0 {
                return -EINVAL;
            }
            if dom == xen_public::DOMID_SELF || dom == d.domid {
                return reservation(d, cmd & 0x3f, list, nr, mem);
            }
            // Another domain: only the privileged domain (a domain builder).
            if !d.privileged {
                return -EPERM;
            }
            with_other(dom, |o| reservation(o, cmd & 0x3f, list, nr, mem)).unwrap_or(-ESRCH)
        }
        _ => -ENOSYS,
    }
}

/// Do up to `nr` extents of a reservation change for `d`, with the extent
/// list in the caller's memory `mem`; returns how many were done.
fn reservation(d: &mut Domain, cmd: u32, list: u64, nr: u64, mem: GuestMem) -> Ret {
    const DECREASE: u32 = 1;
    const POPULATE: u32 = 6;
    let mut done = 0u64;
    while done < nr && done < 512 {
        let slot = list + done * 8;
        if cmd == DECREASE {
            let Ok(mfn) = mem.read_u64(slot) else { break };
            // shared_info and grant frames are the hypervisor's to write.
            let released =
                !d.is_special_frame(mfn) && FRAME_TABLE.lock().as_mut().is_some_and(|ft| ft.release(&mut super::mmu::mm().mem, mfn, d.domid));
            if !released {
                break;
            }
            crate::mm::machine::free_frame(Mfn(mfn));
            d.nr_pages -= 1;
        } else {
            if d.nr_pages >= d.max_pages {
                break;
            }
            let gpfn = if cmd == POPULATE { mem.read_u64(slot).ok() } else { None };
            if cmd == POPULATE && gpfn.is_none() {
                break;
            }
            let Some(mfn) = crate::mm::machine::alloc_frame() else { break };
            if FRAME_TABLE.lock().as_mut().is_none_or(|ft| ft.assign(mfn.0, d.domid).is_err()) {
                crate::mm::machine::free_frame(mfn);
                break;
            }
            if let Some(g) = gpfn {
                crate::mm::machine::set_m2p(mfn, g);
            }
            // The frame is the domain's now: count it even if the list
            // cannot take its number (as Xen, which then stops, not
            // counting the extent as done), so max_mem always holds.
            d.nr_pages += 1;
            if mem.write(slot, &mfn.0.to_le_bytes()).is_err() {
                break;
            }
        }
        done += 1;
    }
    done as i64
}
