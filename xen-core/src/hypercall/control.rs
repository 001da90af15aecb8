//! `domctl` and `sysctl`: the control interfaces of the privileged domain,
//! with Xen 4.17's interface versions and layouts; and `memory_op`, which
//! a privileged domain may apply to another (populating a new domain).
//! Other domains can be created, given memory, paused, unpaused, inspected
//! and destroyed; they do not run yet (no vCPU context or scheduling).

use super::mmu::le64;
use super::*;

/// `XEN_DOMCTL_INTERFACE_VERSION` of Xen 4.17.
pub(super) const DOMCTL_VERSION: u32 = 0x15;
/// `XEN_SYSCTL_INTERFACE_VERSION` of Xen 4.17.
pub(super) const SYSCTL_VERSION: u32 = 0x15;
/// Size of `struct xen_domctl_getdomaininfo` on x86.
const DOMAININFO_SIZE: usize = 112;

use xen_public::{XEN_DOMINF_BLOCKED, XEN_DOMINF_PAUSED, XEN_DOMINF_RUNNING, XEN_DOMINF_SHUTDOWN, XEN_DOMINF_SHUTDOWNSHIFT};

/// Xen's `XEN_DOMINF_*` flags of `d`; `running` for the caller, which
/// runs here; any other domain runs if it is on another CPU right now.
fn dominf_flags(d: &Domain, running: bool) -> u32 {
    let mut flags = 0;
    if running || crate::schedule::running_on(d.slot).is_some() {
        flags |= XEN_DOMINF_RUNNING;
    }
    if d.pause_count > 0 {
        flags |= XEN_DOMINF_PAUSED;
    }
    if d.blocked {
        flags |= XEN_DOMINF_BLOCKED;
    }
    if let Some(code) = d.shutdown {
        flags |= XEN_DOMINF_SHUTDOWN | ((code & 0xff) << XEN_DOMINF_SHUTDOWNSHIFT);
    }
    flags
}

/// `xen_domctl_getdomaininfo` of `d`; `running` for the caller.
fn domaininfo(d: &Domain, running: bool) -> [u8; DOMAININFO_SIZE] {
    let mut b = [0u8; DOMAININFO_SIZE];
    b[0..2].copy_from_slice(&d.domid.to_le_bytes());
    b[4..8].copy_from_slice(&dominf_flags(d, running).to_le_bytes());
    b[8..16].copy_from_slice(&d.nr_pages.to_le_bytes());
    b[16..24].copy_from_slice(&d.max_pages.to_le_bytes());
    b[48..56].copy_from_slice(&d.shared_info.0.to_le_bytes());
    let cpu_time = if running { d.cpu_time.max(crate::guest::system_time()) } else { d.cpu_time };
    b[56..64].copy_from_slice(&cpu_time.to_le_bytes());
    b[64..68].copy_from_slice(&u32::from(d.vcpu_up).to_le_bytes());
    b[68..72].copy_from_slice(&(d.max_vcpus - 1).to_le_bytes());
    b[96] = 52;
    b
}

/// The info of the first domain with an id at or above `from`.
fn first_domain_from(d: &Domain, from: u16) -> Option<[u8; DOMAININFO_SIZE]> {
    let next = crate::schedule::next_domid_from(from)?;
    if next == d.domid {
        return Some(domaininfo(d, true));
    }
    with_other(next, |o| domaininfo(o, false))
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
fn create_domain(requested: u16, b: &[u8]) -> Result<u16, i64> {
    const CDF_HVM: u32 = 1;
    let (flags, max_vcpus) = (u32_at(b, 20), u32_at(b, 28));
    if flags & CDF_HVM != 0 || max_vcpus != 1 {
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
    // As a domU that Xen's toolstack builds: shared_info starts zeroed, so
    // event upcalls start unmasked (only dom0 starts masked).
    dom.vcpu.upcall_mask = false;
    dom.init_shared();
    if crate::schedule::install(dom).is_err() {
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
        for (rdom, rport) in crate::event::foreign_peers(&dom.ports, domid) {
            if rdom == caller.domid {
                crate::event::peer_closed(&mut caller.ports, rport, domid);
            } else {
                crate::schedule::with_domain(rdom, |o| crate::event::peer_closed(&mut o.ports, rport, domid));
            }
        }
        super::gnttab::release_grants(caller, &mut dom);
        super::gnttab::forget_granter(caller, domid);
        super::mmu::release_domain_refs(&mut dom);
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
pub(super) fn domctl(d: &mut Domain, arg: u64) -> Ret {
    const CREATEDOMAIN: u32 = 1;
    const DESTROYDOMAIN: u32 = 2;
    const PAUSEDOMAIN: u32 = 3;
    const UNPAUSEDOMAIN: u32 = 4;
    const GETDOMAININFO: u32 = 5;
    const MAX_MEM: u32 = 11;
    const SETVCPUCONTEXT: u32 = 12;
    const GETVCPUCONTEXT: u32 = 13;
    const GETVCPUINFO: u32 = 14;
    const MAX_VCPUS: u32 = 15;
    const SCHEDULER_OP: u32 = 16;
    const HYPERCALL_INIT: u32 = 22;
    if !d.privileged {
        return -EPERM;
    }
    let mem = d.kernel_mem();
    let mut b = [0u8; 144];
    if mem.read(arg, &mut b).is_err() {
        return -EFAULT;
    }
    let (cmd, version, dom) = (u32_at(&b, 0), u32_at(&b, 4), u16_at(&b, 8));
    if version != DOMCTL_VERSION {
        return -EACCES;
    }
    let is_self = dom == d.domid || dom == xen_public::DOMID_SELF;
    match cmd {
        CREATEDOMAIN => match create_domain(dom, &b[16..]) {
            Ok(id) => b[8..10].copy_from_slice(&id.to_le_bytes()),
            Err(e) => return e,
        },
        GETDOMAININFO => {
            let Some(info) = first_domain_from(d, dom) else { return -ESRCH };
            b[8..10].copy_from_slice(&info[0..2]);
            b[16..16 + DOMAININFO_SIZE].copy_from_slice(&info);
        }
        MAX_MEM => {
            let pages = u64::from_le_bytes(b[16..24].try_into().unwrap_or_default()) / 4;
            if is_self {
                d.max_pages = pages;
            } else if with_other(dom, |o| o.max_pages = pages).is_none() {
                return -ESRCH;
            }
            return 0;
        }
        PAUSEDOMAIN | UNPAUSEDOMAIN | DESTROYDOMAIN if is_self => return -EINVAL,
        PAUSEDOMAIN => return with_other(dom, |o| o.pause_count += 1).map_or(-ESRCH, |()| 0),
        UNPAUSEDOMAIN => {
            return with_other(dom, |o| {
                if o.pause_count == 0 {
                    -EINVAL
                } else {
                    o.pause_count -= 1;
                    0
                }
            })
            .unwrap_or(-ESRCH);
        }
        DESTROYDOMAIN => return destroy_domain(d, dom).map_or_else(|e| e, |()| 0),
        SETVCPUCONTEXT | GETVCPUCONTEXT | MAX_VCPUS if is_self => return -EINVAL,
        SETVCPUCONTEXT => {
            let (vcpu, ptr) = (u32_at(&b, 16), le64(&b[24..32]));
            let mut ctx = [0u8; crate::domain::context::SIZE];
            if ptr != 0 && mem.read(ptr, &mut ctx).is_err() {
                return -EFAULT;
            }
            let ctx = (ptr != 0).then_some(&ctx);
            return with_other(dom, |o| super::vcpu_ctx::set(o, vcpu, ctx)).unwrap_or(-ESRCH);
        }
        GETVCPUCONTEXT => {
            let (vcpu, ptr) = (u32_at(&b, 16), le64(&b[24..32]));
            let mut ctx = [0u8; crate::domain::context::SIZE];
            let rc = with_other(dom, |o| super::vcpu_ctx::get(o, vcpu, &mut ctx)).unwrap_or(-ESRCH);
            if rc == 0 && ptr != 0 && mem.write(ptr, &ctx).is_err() {
                return -EFAULT;
            }
            return rc;
        }
        GETVCPUINFO => {
            let vcpu = u32_at(&b, 16);
            let rc = if is_self {
                super::vcpu_ctx::info(d, vcpu, true, &mut b[16..])
            } else {
                with_other(dom, |o| super::vcpu_ctx::info(o, vcpu, false, &mut b[16..])).unwrap_or(-ESRCH)
            };
            if rc != 0 {
                return rc;
            }
        }
        SCHEDULER_OP => {
            let slot = if is_self { Some(d.slot) } else { with_other(dom, |o| o.slot) };
            let Some(slot) = slot else { return -ESRCH };
            let rc = scheduler_op(slot, &mut b[16..32]);
            if rc != 0 {
                return rc;
            }
        }
        HYPERCALL_INIT => {
            let gmfn = le64(&b[16..24]);
            return if is_self { hypercall_init(d, gmfn) } else { with_other(dom, |o| hypercall_init(o, gmfn)).unwrap_or(-ESRCH) };
        }
        MAX_VCPUS => {
            // As Xen 4.17: the count was fixed by createdomain; only the
            // same value is accepted, and it creates the vCPUs.
            let max = u32_at(&b, 16);
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
    if mem.write(arg, &b).is_err() { -EFAULT } else { 0 }
}

/// `XEN_SCHEDULER_CREDIT`: the scheduler xen-core runs (Xen 4.17 with
/// `sched=credit`).
pub(super) const SCHEDULER_CREDIT: u32 = 5;

/// XEN_DOMCTL_scheduler_op on the domain in `slot`, with `op` the
/// `xen_domctl_scheduler_op` (sched_id, cmd, then the credit parameters
/// weight and cap). As Xen's credit scheduler: a foreign sched_id or a
/// command other than putinfo/getinfo is -EINVAL; putinfo leaves the weight
/// alone when it is 0 and the cap when it is 0xffff.
fn scheduler_op(slot: usize, op: &mut [u8]) -> Ret {
    const PUTINFO: u32 = 0;
    const GETINFO: u32 = 1;
    let (sched_id, cmd) = (u32_at(op, 0), u32_at(op, 4));
    let Some(mut params) = crate::schedule::params(slot) else { return -ESRCH };
    if sched_id != SCHEDULER_CREDIT {
        return -EINVAL;
    }
    match cmd {
        GETINFO => {
            op[8..10].copy_from_slice(&(params.weight as u16).to_le_bytes());
            op[10..12].copy_from_slice(&(params.cap as u16).to_le_bytes());
        }
        PUTINFO => {
            let (weight, cap) = (u16_at(op, 8), u16_at(op, 10));
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
pub(super) fn sysctl(d: &mut Domain, arg: u64) -> Ret {
    const PHYSINFO: u32 = 3;
    const SCHED_ID: u32 = 4;
    const GETDOMAININFOLIST: u32 = 6;
    const PHYSCAP_PV: u32 = 1 << 1;
    if !d.privileged {
        return -EPERM;
    }
    let mem = d.kernel_mem();
    let mut b = [0u8; 136];
    if mem.read(arg, &mut b).is_err() {
        return -EFAULT;
    }
    let (cmd, version) = (u32_at(&b, 0), u32_at(&b, 4));
    if version != SYSCTL_VERSION {
        return -EACCES;
    }
    let u = 8;
    match cmd {
        PHYSINFO => {
            let total = crate::mm::machine::M2P.get().map_or(0, |m| m.entries);
            let cpus = crate::arch::x86_64::smp::CPUS_ONLINE.load(core::sync::atomic::Ordering::SeqCst);
            let words: [u32; 10] = [1, 1, cpus, cpus - 1, 1, 0, 0, PHYSCAP_PV, 0, 0];
            for (i, w) in words.iter().enumerate() {
                b[u + i * 4..u + i * 4 + 4].copy_from_slice(&w.to_le_bytes());
            }
            b[u + 24..u + 28].copy_from_slice(&crate::guest::tsc_khz().to_le_bytes());
            b[u + 40..u + 48].copy_from_slice(&total.to_le_bytes());
            b[u + 48..u + 56].copy_from_slice(&crate::mm::machine::free_frames().to_le_bytes());
            b[u + 72..u + 80].copy_from_slice(&total.saturating_sub(1).to_le_bytes());
        }
        SCHED_ID => b[u..u + 4].copy_from_slice(&SCHEDULER_CREDIT.to_le_bytes()),
        super::audit::SYSCTL_XENCORE_AUDIT => return super::audit::sysctl(d, arg, &mut b),
        GETDOMAININFOLIST => {
            let (first, max, buf) = (u16_at(&b, u), u32_at(&b, u + 4), le64(&b[u + 8..u + 16]));
            let mut n = 0u32;
            let mut next = first;
            while n < max {
                let Some(info) = first_domain_from(d, next) else { break };
                if mem.write(buf + u64::from(n) * DOMAININFO_SIZE as u64, &info).is_err() {
                    return -EFAULT;
                }
                n += 1;
                let id = u16::from_le_bytes([info[0], info[1]]);
                let Some(after) = id.checked_add(1) else { break };
                next = after;
            }
            b[u + 16..u + 20].copy_from_slice(&n.to_le_bytes());
        }
        _ => return -ENOSYS,
    }
    if mem.write(arg, &b).is_err() { -EFAULT } else { 0 }
}

/// `memory_op(cmd, arg)` for the domain itself: reservations and the
/// physmap, in extents of order 0 (larger orders are -EINVAL here, where
/// Xen would allocate them). A frame given back must have no other
/// reference (Xen would free it when its last mapping goes).
pub(super) fn memory_op(d: &mut Domain, cmd: u32, arg: u64) -> Ret {
    const INCREASE: u32 = 0;
    const DECREASE: u32 = 1;
    const MAXIMUM_RAM_PAGE: u32 = 2;
    const CURRENT: u32 = 3;
    const MAXIMUM: u32 = 4;
    const POPULATE: u32 = 6;
    let mem = d.kernel_mem();
    match cmd & 0x3f {
        MAXIMUM_RAM_PAGE => crate::mm::machine::M2P.get().map_or(0, |m| m.entries.saturating_sub(1)) as i64,
        CURRENT | MAXIMUM => {
            let mut raw = [0u8; 2];
            if mem.read(arg, &mut raw).is_err() {
                return -EFAULT;
            }
            let dom = u16::from_le_bytes(raw);
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
            let mut b = [0u8; 32];
            if mem.read(arg, &mut b).is_err() {
                return -EFAULT;
            }
            let (list, nr, order, dom) = (le64(&b[0..8]), le64(&b[8..16]), u32_at(&b, 16), u16_at(&b, 24));
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
