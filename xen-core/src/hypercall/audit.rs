//! The invariant auditor on the live hypervisor: `XEN_SYSCTL_xencore_audit`
//! (a private sysctl, [`SYSCTL_XENCORE_AUDIT`]) and the `audit=1` boot
//! option, which audits after every successful createdomain and
//! destroydomain.
//!
//! It owns the glue only: it describes every live domain to
//! [`crate::mm::audit`] (base pointers, GDT and LDT frames, shared_info and
//! grant frames, grant maptrack with each host mapping's PTE), lends it the
//! frame table, the page tables and the frame allocator, and prints what it
//! finds as `(XEN) audit: ...` lines.
//!
//! Invariant: an audit runs inside a hypercall, so under the hypervisor
//! lock, with the frame table and allocator locked for its whole length; it
//! changes no guest-visible state. Its scratch frames come from the
//! allocator and go back before it returns.

use super::*;
use crate::arch::x86_64::frame_box::FrameSlice;
use crate::mm::audit::{self, DomainView, Expect, GrantMap, GrantMaps, Report, World};
use crate::mm::frame_alloc::FrameAllocator;
use core::sync::atomic::{AtomicBool, Ordering};

/// `XEN_SYSCTL_xencore_audit`: a private sysctl number (Xen's own stop
/// well below 0x8000). Privileged callers only (-EPERM otherwise). The
/// `xen_sysctl` union holds `{ out u32 violations; out u32 domains; out u64
/// frames; out u64 tables; out u32 stale_grants }`. Returns 0 when the
/// audit is clean, -EIO when it found violations (the first ones are in
/// the hypervisor log), -ENOMEM when no scratch memory was free.
pub const SYSCTL_XENCORE_AUDIT: u32 = xen_public::xencore::XEN_SYSCTL_XENCORE_AUDIT;

/// `audit=1` on the command line: audit after every createdomain and
/// destroydomain.
pub static ON_DOMCTL: AtomicBool = AtomicBool::new(false);

/// Violations printed per audit (the report keeps up to
/// [`audit::MAX_REPORTED`]; all are counted).
const PRINTED: usize = 16;

/// XEN_DOMCTL_createdomain and XEN_DOMCTL_destroydomain.
const CREATEDOMAIN: u32 = 1;
const DESTROYDOMAIN: u32 = 2;

/// A domain's maptrack as the auditor sees it: each host mapping's PTE is
/// found by walking the mapper's current kernel tables to its address.
struct Maps<'a>(&'a Vcpu, &'a Domain);

impl GrantMaps for Maps<'_> {
    fn for_each_map(&self, f: &mut dyn FnMut(GrantMap)) {
        let (v, d) = (self.0, self.1);
        let m = DirectMapMem::new(true);
        for h in 0..crate::grant::MAPTRACK as u32 {
            let Some(map) = d.grant.maptrack.get(h) else {
                continue;
            };
            let host = map.host_addr != 0;
            let pte = if host { crate::domain::mmu_ops::l1_slot(&m, v.guest_table, map.host_addr) } else { None };
            f(GrantMap { granter: map.dom, frame: d.grant.mapped_frames[h as usize], writable: !map.readonly, host, device: map.device, pte });
        }
    }
}

/// Call `f` with the auditor's view of `d`.
fn with_view(v: &Vcpu, d: &Domain, f: &mut dyn FnMut(&DomainView<'_>)) {
    let mut special = [0u64; 1 + crate::grant::MAX_FRAMES as usize];
    let nr_grant = d.grant.frames().len();
    special[0] = d.shared_info.0;
    special[1..1 + nr_grant].copy_from_slice(d.grant.frames());
    let gdt_frames = (v.gdt_ents.div_ceil(512) as usize).min(v.gdt_frames.len());
    let (ldt, nr_ldt) = &v.ldt_frames;
    let view = DomainView {
        domid: d.domid,
        privileged: d.privileged,
        base: [v.guest_table >> 12, v.guest_table_user >> 12],
        gdt: &v.gdt_frames[..gdt_frames],
        ldt: &ldt[..*nr_ldt],
        special: &special[..1 + nr_grant],
        maps: &Maps(v, d),
        tot_pages: Some(d.nr_pages),
    };
    f(&view);
}

/// [`with_view`] of another domain, through its vCPU 0's tables (the
/// auditor's view has one pair of base pointers; one vCPU per domain so far).
fn with_guest_view(g: &crate::guest::Guest, f: &mut dyn FnMut(&DomainView<'_>)) {
    let [v] = &g.vcpus;
    with_view(v, &g.domain, f);
}

/// The live hypervisor as the auditor's [`World`]: the caller (whose slot
/// it already holds) and every other domain through its slot.
struct Live<'a> {
    caller_vcpu: &'a Vcpu,
    caller: &'a Domain,
    alloc: Option<&'a FrameAllocator<'static>>,
    mem: &'a DirectMapMem,
    /// The frame table's RAM map (which frames are MMIO).
    machine: crate::domain::iocap::MachineMap,
}

impl World for Live<'_> {
    fn for_each_domain(&self, f: &mut dyn FnMut(&DomainView<'_>)) {
        with_view(self.caller_vcpu, self.caller, f);
        let mut from = 0u16;
        while let Some(id) = crate::schedule::next_domid_from(from) {
            if id != self.caller.domid {
                crate::schedule::with_guest(id, |g| with_guest_view(g, f));
            }
            let Some(next) = id.checked_add(1) else { break };
            from = next;
        }
    }

    fn with_domain(&self, domid: u16, f: &mut dyn FnMut(&DomainView<'_>)) -> bool {
        if domid == self.caller.domid {
            with_view(self.caller_vcpu, self.caller, f);
            return true;
        }
        crate::schedule::with_guest(domid, |g| with_guest_view(g, f)).is_some()
    }

    fn allocator_free(&self, mfn: u64) -> Option<bool> {
        self.alloc.map(|a| a.is_free(Mfn(mfn)))
    }

    fn is_io_frame(&self, mfn: u64) -> bool {
        !self.machine.is_ram(mfn)
    }
    fn xen_l4_slot(&self, idx: usize) -> Option<u64> {
        crate::mm::machine::IDLE_L4.get().map(|l4| self.mem.read(l4.0, idx))
    }
}

/// Scratch frames for the audit's windows: as many as can be had
/// contiguously, from 64 down to 1 (through the allocator's front door,
/// which first flushes whatever CPU may still translate to a freed frame,
/// so no guest can write into the audit's working data).
fn alloc_scratch() -> Option<FrameSlice<Expect>> {
    [64, 16, 4, 1].into_iter().find_map(|n| FrameSlice::with_pages(n, Expect::ZERO))
}

/// Run the audit with `caller` being the domain in the hypercall.
fn run(caller_vcpu: &Vcpu, caller: &Domain) -> Result<Report, i64> {
    let Some(mut scratch) = alloc_scratch() else {
        return Err(-xen_public::errno::ENOMEM);
    };
    let mut report = Report::new();
    {
        let m = DirectMapMem::new(true);
        let ftg = FRAME_TABLE.lock();
        let alloc = crate::mm::machine::FRAMES.lock();
        if let Some(ft) = ftg.as_ref() {
            let world = Live { caller_vcpu, caller, alloc: alloc.as_ref(), mem: &m, machine: *ft.machine() };
            audit::audit(&world, &m, ft.frames(), &mut scratch, &mut report);
        }
    }
    // The scratch frames go back to the allocator here, with the
    // allocator's lock no longer held.
    drop(scratch);
    Ok(report)
}

/// Print a report: each violation kept (up to [`PRINTED`]) and a summary.
/// A clean report is only logged at info level.
fn print(report: &Report, when: &str) {
    if report.is_clean() {
        log::info!(
            "audit: clean {when}: {} frames, {} live tables, {} domains, {} stale grant mappings",
            report.frames,
            report.tables,
            report.domains,
            report.stale_grants
        );
        return;
    }
    for v in report.violations().take(PRINTED) {
        crate::printk!("audit: {v}");
    }
    crate::printk!("audit: {} violations {when} ({} frames, {} live tables, {} domains)", report.total, report.frames, report.tables, report.domains);
}

/// `XEN_SYSCTL_xencore_audit` for the privileged caller `d` (sysctl has
/// checked privilege and version); `op` is the `xen_sysctl` read from
/// `arg`, written back with the results.
pub(super) fn sysctl(v: &mut Vcpu, d: &mut Domain, arg: u64, op: &mut xen_public::sysctl::XenSysctl) -> Ret {
    let report = match run(v, d) {
        Ok(r) => r,
        Err(e) => return e,
    };
    print(&report, "on request");
    let out = xen_public::xencore::AuditResult {
        violations: u32::try_from(report.total).unwrap_or(u32::MAX),
        domains: report.domains as u32,
        frames: report.frames,
        tables: report.tables,
        stale_grants: report.stale_grants as u32,
        _pad: 0,
    };
    op.set_payload(&out);
    if v.kernel_mem().copy_to(arg, op).is_err() {
        return -EFAULT;
    }
    if report.is_clean() { 0 } else { -xen_public::errno::EIO }
}

/// `domctl`, audited afterwards when `audit=1` and the call created or
/// destroyed a domain.
pub(super) fn domctl(v: &mut Vcpu, d: &mut Domain, arg: u64) -> Ret {
    let cmd = v.kernel_mem().read_u32(arg).unwrap_or(0);
    let rc = super::control::domctl(v, d, arg);
    if rc == 0 && (cmd == CREATEDOMAIN || cmd == DESTROYDOMAIN) && ON_DOMCTL.load(Ordering::Relaxed) {
        let when = if cmd == CREATEDOMAIN { "after createdomain" } else { "after destroydomain" };
        match run(v, d) {
            Ok(r) => print(&r, when),
            Err(e) => log::warn!("audit: {when}: no scratch memory ({e})"),
        }
    }
    rc
}
