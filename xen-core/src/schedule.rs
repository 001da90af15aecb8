//! Running vCPUs on every CPU: the domain slots, the hypervisor lock, the
//! credit scheduler that picks among vCPUs, context switches, the idle
//! loop and the IPIs that connect CPUs.
//!
//! The scheduler's unit is the vCPU ([`VcpuId`]: a slot and a vcpu_id).
//! Credit, wake deadlines, which CPU runs what, which CPU has whose
//! descriptor tables loaded and whose TLB may be stale are all per vCPU;
//! weight and cap are per domain, set on each of its vCPUs.
//!
//! Invariants:
//! - a domain lives in one slot of [`DOMAINS`] from creation to destruction,
//!   so it never moves in memory; [`SLOT_DOMID`] mirrors which domid owns
//!   each slot and can be read without the slot's lock;
//! - all hypervisor work on behalf of guests runs under the hypervisor
//!   lock ([`big_lock`]), taken on every entry from a guest and dropped just
//!   before the return to it, and dropped while a CPU halts. Guests run in
//!   parallel; their hypercalls are serialised. So slot locks never wait on
//!   each other, and a domain's state never changes under a CPU that holds
//!   the lock;
//! - a vCPU runs on at most one CPU: `SchedVcpu::running_on` names it. Its
//!   registers are then the guest frame on top of that CPU's ring-0 stack
//!   and its FPU/SSE state is in that CPU; otherwise they are in its
//!   vCPU's `Vcpu::regs` and `Vcpu::fpu`;
//! - slots hold a [`Guest`] (the domain and its vCPUs); a vCPU runs only
//!   while [`Domain::runnable`] holds for it: the vCPU is initialised and
//!   not blocked, and its domain is not paused, shut down or dying;
//! - each CPU's LAPIC one-shot timer is armed for the earliest of: the end
//!   of its time slice (when another domain exists), every domain's
//!   wake deadline (single-shot timer or poll timeout), and the periodic
//!   timer of the vCPU it runs (as in Xen, a periodic timer runs only
//!   while its vCPU does: it never wakes a blocked vCPU);
//! - a vCPU's run state ([`Vcpu::runstate`]) is running exactly while a
//!   CPU runs it; it changes on every switch in and out (and on a wake),
//!   and the copy the guest registered is written on every switch, as
//!   Xen's `update_runstate_area`;
//! - a domain running on another CPU is never torn down: destruction waits
//!   (by continuation) until it has been switched out; changes to its page
//!   tables by another domain are followed by a synchronous TLB flush on
//!   its CPU ([`flush_remote`]), answered even by a CPU spinning on the lock.
//!
//! The lock order (hypervisor lock, slot locks, `RUN`, the frame table, the
//! allocator, the console) is stated once, in `docs/architecture.md`.
//! Per-CPU and per-vCPU scheduler state is in [`SchedCpu`] and
//! [`SchedVcpu`], lock-free.

use crate::arch::x86_64::apic;
use crate::arch::x86_64::entry;
use crate::arch::x86_64::entry::this_cpu;
use crate::arch::x86_64::frame_box::FrameBox;
use crate::arch::x86_64::smp::{CPUS_ONLINE, MAX_CPUS};
use crate::domain::control_ops::RemoveError;
use crate::domain::vcpu::{CpuUserRegs, Vcpu};
use crate::guest::{Domain, Guest, MAX_VCPUS, system_time};
use crate::sched::credit::{Credit, PERIOD_MS, Params};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::SeqCst};
use spin::MutexGuard;
use xen_public::vcpu::{RUNSTATE_BLOCKED, RUNSTATE_OFFLINE, RUNSTATE_RUNNABLE, RUNSTATE_RUNNING};

/// Domains that may exist at once, dom0 included.
pub const MAX_DOMAINS: usize = 1024;
/// A domain slot: the domain lives in frames of its own while it exists.
pub type Slot = spin::Mutex<Option<FrameBox<Guest>>>;
/// Every domain, by slot; dom0 is in slot 0.
pub static DOMAINS: [Slot; MAX_DOMAINS] = [const { spin::Mutex::new(None) }; MAX_DOMAINS];

/// Every vCPU the scheduler can know: each slot's [`MAX_VCPUS`].
pub const MAX_UNITS: usize = MAX_DOMAINS * MAX_VCPUS;

/// A vCPU as the scheduler knows it: the slot of its domain and its
/// vcpu_id, as one index (`slot * MAX_VCPUS + vcpu_id`) into the per-vCPU
/// arrays below.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct VcpuId(usize);

impl VcpuId {
    /// vCPU `vcpu_id` of the domain in `slot`.
    pub const fn new(slot: usize, vcpu_id: usize) -> VcpuId {
        VcpuId(slot * MAX_VCPUS + vcpu_id)
    }
    /// From an index into the per-vCPU arrays.
    const fn from_index(i: usize) -> VcpuId {
        VcpuId(i)
    }
    /// The index into the per-vCPU arrays.
    pub const fn index(self) -> usize {
        self.0
    }
    /// The slot of its domain.
    pub const fn slot(self) -> usize {
        self.0 / MAX_VCPUS
    }
    /// Its id within its domain.
    #[allow(clippy::modulo_one, reason = "MAX_VCPUS is 1 so far; the arithmetic is for more")]
    pub const fn vcpu_id(self) -> usize {
        self.0 % MAX_VCPUS
    }
    /// The vCPUs of the domain in `slot`.
    fn of_slot(slot: usize) -> impl Iterator<Item = VcpuId> {
        (0..MAX_VCPUS).map(move |v| VcpuId::new(slot, v))
    }
}

const NO_DOMAIN: u32 = u32::MAX;
/// The domid in each slot, or [`NO_DOMAIN`].
static SLOT_DOMID: [AtomicU32; MAX_DOMAINS] = [const { AtomicU32::new(NO_DOMAIN) }; MAX_DOMAINS];
const NR_CPUS: usize = MAX_CPUS as usize;
/// No vCPU (an idle CPU), or no CPU (a vCPU not running).
const NONE: usize = usize::MAX;

/// The scheduler's per-CPU state (lock-free: each field is read by other
/// CPUs, written by its own CPU or under the hypervisor lock). One cache
/// line each, so CPUs do not share lines.
#[repr(align(64))]
struct SchedCpu {
    /// Set when another vCPU may have become runnable, or the running one
    /// yielded: the next return to a guest goes through the scheduler.
    reschedule: AtomicBool,
    /// The vCPU ([`VcpuId::index`]) this CPU runs, or [`NONE`].
    current: AtomicUsize,
    /// The vCPU whose GDT and LDT are loaded in this CPU ([`NONE`] if none).
    loaded: AtomicUsize,
    /// End of the running vCPU's time slice (system time).
    slice_end: AtomicU64,
    /// When the running vCPU was last switched to (system time).
    running_since: AtomicU64,
}

/// The scheduler's per-vCPU state, by [`VcpuId::index`].
struct SchedVcpu {
    /// The earliest wake deadline in system time (0: none).
    deadline: AtomicU64,
    /// The CPU running it, or [`NONE`].
    running_on: AtomicUsize,
    /// Another domain changed its domain's page tables since it last ran;
    /// a CPU that switches to it without loading a new CR3 must flush.
    stale_tlb: AtomicBool,
}

/// Per CPU.
static PER_CPU: [SchedCpu; NR_CPUS] = [const {
    SchedCpu {
        reschedule: AtomicBool::new(false),
        current: AtomicUsize::new(NONE),
        loaded: AtomicUsize::new(NONE),
        slice_end: AtomicU64::new(u64::MAX),
        running_since: AtomicU64::new(0),
    }
}; NR_CPUS];
/// Per vCPU.
static PER_VCPU: [SchedVcpu; MAX_UNITS] =
    [const { SchedVcpu { deadline: AtomicU64::new(0), running_on: AtomicUsize::new(NONE), stale_tlb: AtomicBool::new(false) } }; MAX_UNITS];
/// CPUs halted in the idle loop, one bit each.
static IDLE_CPUS: AtomicU32 = AtomicU32::new(0);
/// Domains in existence.
static NR_DOMAINS: AtomicUsize = AtomicUsize::new(0);
/// One past the highest slot ever used (slots are taken lowest first), so
/// scans over the slots stop where the used ones end.
static HIGH_SLOT: AtomicUsize = AtomicUsize::new(0);

/// The hypervisor lock: a ticket lock, so both CPUs get their turn.
static BIG_NEXT: AtomicU32 = AtomicU32::new(0);
static BIG_SERVING: AtomicU32 = AtomicU32::new(0);

/// Take the hypervisor lock. While waiting, answer TLB-flush requests, so
/// a holder that waits for this CPU's flush cannot deadlock with it.
pub fn big_lock() {
    let ticket = BIG_NEXT.fetch_add(1, SeqCst);
    while BIG_SERVING.load(SeqCst) != ticket {
        crate::arch::x86_64::remote_flush::answer();
        core::hint::spin_loop();
    }
}

/// Drop the hypervisor lock.
pub fn big_unlock() {
    BIG_SERVING.fetch_add(1, SeqCst);
}

/// The APIC id of CPU `cpu` (QEMU numbers them from 0, as we do).
fn apic_id(cpu: usize) -> u32 {
    cpu as u32
}

/// Make CPU `cpu` enter the hypervisor and look at its scheduler state.
fn ipi_kick(cpu: usize) {
    if cpu != this_cpu() && cpu < CPUS_ONLINE.load(SeqCst) as usize {
        apic::send_vector(apic_id(cpu), apic::KICK_VECTOR);
    }
}

/// The slot `domid` runs in changed under another CPU's domain: make sure
/// that CPU's TLB holds nothing stale before this returns. The caller
/// holds the hypervisor lock; the other CPU answers from its guest, from
/// its halt, or from its wait for the lock.
pub fn flush_remote(domid: u16) {
    let Some(slot) = slot_of(domid) else { return };
    for v in VcpuId::of_slot(slot) {
        PER_VCPU[v.index()].stale_tlb.store(true, SeqCst);
        let cpu = PER_VCPU[v.index()].running_on.load(SeqCst);
        if cpu != NONE && cpu != this_cpu() {
            flush_other_cpu(cpu);
        }
    }
}

/// Make CPU `cpu` (not this one) flush its TLB, and wait until it has.
fn flush_other_cpu(cpu: usize) {
    crate::arch::x86_64::remote_flush::request(cpu);
}

/// Make every CPU that may still cache a translation removed at TLB-flush
/// clock `stamp` flush its TLB, and wait for them (the caller holds the
/// hypervisor lock).
pub fn flush_cpus_since(stamp: u64) {
    use crate::arch::x86_64::tlb_clock::cpu_needs_flush;
    let online = (CPUS_ONLINE.load(SeqCst) as usize).min(NR_CPUS);
    for cpu in (0..online).filter(|&c| cpu_needs_flush(c, stamp)) {
        if cpu == this_cpu() {
            crate::arch::x86_64::cpu::flush_tlb();
        } else {
            flush_other_cpu(cpu);
        }
    }
}

/// The CPU running vCPU `v`, and since when (system time).
pub fn running_on(v: VcpuId) -> Option<(usize, u64)> {
    let cpu = PER_VCPU.get(v.index())?.running_on.load(SeqCst);
    (cpu != NONE).then(|| (cpu, PER_CPU[cpu].running_since.load(SeqCst)))
}

/// Whether vCPU `v` runs on a CPU other than this one.
fn running_elsewhere(v: VcpuId) -> bool {
    PER_VCPU.get(v.index()).map(|u| &u.running_on).is_some_and(|c| {
        let c = c.load(SeqCst);
        c != NONE && c != this_cpu()
    })
}

/// Whether any vCPU of the domain in `slot` runs on another CPU.
fn domain_running_elsewhere(slot: usize) -> bool {
    VcpuId::of_slot(slot).any(running_elsewhere)
}

/// Length of a time slice.
const SLICE_NS: u64 = 10_000_000;
const MS: u64 = 1_000_000;

/// The scheduler state shared by all CPUs: the credit policy and its
/// clock (under the hypervisor lock, like everything else).
struct RunState {
    /// The credit policy, over vCPUs ([`VcpuId::index`]).
    credit: Credit<MAX_UNITS>,
    /// Per CPU: when its running vCPU was last charged.
    last_charge: [u64; NR_CPUS],
    /// Nanoseconds each vCPU ran but was not yet charged (under a ms).
    carry: [u64; MAX_UNITS],
    /// Start of the accounting period.
    period_start: u64,
}

/// Built in place (it is large): always `Some`; [`start`] sets its clock.
static RUN: spin::Mutex<Option<RunState>> =
    spin::Mutex::new(Some(RunState { credit: Credit::new(1), last_charge: [0; NR_CPUS], carry: [0; MAX_UNITS], period_start: 0 }));

/// The vCPU running on this CPU (`None` when idle).
pub fn current_vcpu() -> Option<VcpuId> {
    Some(PER_CPU[this_cpu()].current.load(SeqCst)).filter(|&i| i != NONE).map(VcpuId::from_index)
}

/// The slot of the domain whose vCPU runs on this CPU ([`NONE`] when idle).
pub fn current() -> usize {
    current_vcpu().map_or(NONE, VcpuId::slot)
}

/// The domain in `slot`, if any.
pub fn domid_of_slot(slot: usize) -> Option<u16> {
    SLOT_DOMID.get(slot).map(|d| d.load(SeqCst)).filter(|&d| d != NO_DOMAIN).map(|d| d as u16)
}

/// The slot of the domain `domid`, if it exists.
pub fn slot_of(domid: u16) -> Option<usize> {
    SLOT_DOMID[..HIGH_SLOT.load(SeqCst)].iter().position(|s| s.load(SeqCst) == u32::from(domid))
}

/// The smallest domid in use that is at least `from`.
pub fn next_domid_from(from: u16) -> Option<u16> {
    let high = HIGH_SLOT.load(SeqCst);
    SLOT_DOMID[..high].iter().filter_map(|s| u16::try_from(s.load(SeqCst)).ok()).filter(|&id| id >= from).min()
}

/// Run `f` on the domain `domid`, which must not be the caller's own (its
/// lock is held by the caller). Under the hypervisor lock no other CPU
/// holds a slot lock, so this never waits. If the domain runs on another
/// CPU, that CPU is kicked so it sees what `f` changed (events to deliver,
/// a pause).
pub fn with_domain<R>(domid: u16, f: impl FnOnce(&mut Domain) -> R) -> Option<R> {
    with_guest(domid, |g| f(&mut g.domain))
}

/// [`with_domain`], with the domain's vCPUs.
pub fn with_guest<R>(domid: u16, f: impl FnOnce(&mut Guest) -> R) -> Option<R> {
    let slot = slot_of(domid)?;
    if slot == current() && DOMAINS[slot].is_locked() {
        return None;
    }
    let r = DOMAINS[slot].lock().as_mut().filter(|g| g.domain.domid == domid).map(|g| f(g));
    for v in VcpuId::of_slot(slot) {
        let cpu = PER_VCPU[v.index()].running_on.load(SeqCst);
        if cpu != NONE {
            ipi_kick(cpu);
        }
    }
    r
}

/// Put a new domain in a free slot (dom0 takes slot 0), its state moved
/// into frames of its own; the domain is dropped if that cannot be done.
pub fn install(dom: Guest) -> Result<usize, NoSlot> {
    let Some(free) = SLOT_DOMID.iter().position(|s| s.load(SeqCst) == NO_DOMAIN) else { return Err(NoSlot) };
    let Ok(mut dom) = FrameBox::new(dom) else { return Err(NoSlot) };
    for (i, slot) in DOMAINS.iter().enumerate().skip(free) {
        // A used slot may be locked by the caller itself: look at the
        // mirror first; free slots are only locked here.
        if SLOT_DOMID[i].load(SeqCst) != NO_DOMAIN {
            continue;
        }
        let mut g = slot.lock();
        if g.is_none() {
            dom.set_slot(i);
            SLOT_DOMID[i].store(u32::from(dom.domain.domid), SeqCst);
            HIGH_SLOT.fetch_max(i + 1, SeqCst);
            *g = Some(dom);
            NR_DOMAINS.fetch_add(1, SeqCst);
            if let Some(run) = RUN.lock().as_mut() {
                for v in VcpuId::of_slot(i) {
                    run.credit.add(v.index(), Params::default());
                }
            }
            return Ok(i);
        }
    }
    Err(NoSlot)
}

/// Every domain slot is in use, or there is no memory for the domain's
/// state.
#[derive(Clone, Copy, Debug)]
pub struct NoSlot;

/// Take a domain out of its slot (destruction). Never the caller's own,
/// and never one still running on another CPU: that one is paused and its
/// CPU kicked, and the caller retries (a hypercall continuation).
pub fn remove(domid: u16) -> Result<FrameBox<Guest>, RemoveError> {
    let slot = slot_of(domid).filter(|&s| s != current()).ok_or(RemoveError::NotFound)?;
    if domain_running_elsewhere(slot) {
        with_domain(domid, |d| d.dying = true);
        return Err(RemoveError::Running);
    }
    let dom = DOMAINS[slot].lock().take().ok_or(RemoveError::NotFound)?;
    SLOT_DOMID[slot].store(NO_DOMAIN, SeqCst);
    forget_loaded_slot(slot);
    NR_DOMAINS.fetch_sub(1, SeqCst);
    let mut run = RUN.lock();
    for v in VcpuId::of_slot(slot) {
        set_deadline(v, 0);
        if let Some(run) = run.as_mut() {
            run.credit.remove(v.index());
            run.carry[v.index()] = 0;
        }
    }
    Ok(dom)
}

/// No CPU holds the slot's GDT/LDT any more: the next switch to it loads
/// them again.
fn forget_loaded_slot(slot: usize) {
    for loaded in PER_CPU.iter().map(|c| &c.loaded) {
        for v in VcpuId::of_slot(slot) {
            let _ = loaded.compare_exchange(v.index(), NONE, SeqCst, SeqCst);
        }
    }
}

/// Another domain changed `domid`'s descriptor tables (setvcpucontext):
/// make every CPU reload them when it next runs it.
pub fn forget_loaded(domid: u16) {
    if let Some(slot) = slot_of(domid) {
        forget_loaded_slot(slot);
    }
}

/// Record a vCPU's wake deadline (0: none) for the timer and idle loop.
pub fn set_deadline(v: VcpuId, deadline: u64) {
    let Some(d) = PER_VCPU.get(v.index()).map(|u| &u.deadline) else { return };
    let old = d.swap(deadline, SeqCst);
    let earliest = EARLIEST.load(SeqCst);
    if deadline != 0 && (earliest == 0 || deadline < earliest) {
        EARLIEST.store(deadline, SeqCst);
    } else if old != 0 && old == earliest {
        // The earliest may have gone: look again over the used vCPUs.
        let high = HIGH_SLOT.load(SeqCst) * MAX_VCPUS;
        let min = PER_VCPU[..high].iter().map(|u| u.deadline.load(SeqCst)).filter(|&t| t != 0).min().unwrap_or(0);
        EARLIEST.store(min, SeqCst);
    }
}

/// The minimum of the vCPUs' deadlines (0: none), kept by [`set_deadline`] so the
/// return path to a guest does not scan every slot.
static EARLIEST: AtomicU64 = AtomicU64::new(0);

/// Another domain may have become runnable: reconsider at the next
/// return to a guest, and wake the CPUs that idle so they look too.
pub fn kick() {
    PER_CPU[this_cpu()].reschedule.store(true, SeqCst);
    let idle = IDLE_CPUS.load(SeqCst);
    for cpu in 0..NR_CPUS {
        if idle & (1 << cpu) != 0 {
            ipi_kick(cpu);
        }
    }
}

/// Change a domain's weight and cap: each of its vCPUs gets them (Xen's
/// credit1 shares the weight among the domain's active vCPUs; with one
/// vCPU per domain the two agree).
pub fn set_params(slot: usize, params: Params) {
    if let Some(run) = RUN.lock().as_mut() {
        for v in VcpuId::of_slot(slot) {
            run.credit.set_params(v.index(), params);
        }
    }
}

/// A domain's weight and cap.
pub fn params(slot: usize) -> Option<Params> {
    RUN.lock().as_ref()?.credit.params(VcpuId::new(slot, 0).index())
}

/// Start scheduling with dom0 and enter it on the boot CPU. Never returns.
/// The other CPUs join through [`ap_main`] once the scheduler exists.
pub fn start(dom0: Guest, regs: CpuUserRegs) -> ! {
    big_lock();
    let now = system_time();
    let cpus = CPUS_ONLINE.load(SeqCst);
    if let Some(run) = RUN.lock().as_mut() {
        run.credit.set_pcpus(cpus);
        run.last_charge = [now; NR_CPUS];
        run.period_start = now;
    }
    let Ok(slot) = install(dom0) else { crate::setup::fatal(format_args!("no slot for dom0")) };
    SCHEDULER_UP.store(true, SeqCst);
    let mut regs = regs;
    let mut g = DOMAINS[slot].lock();
    if let Some(g) = g.as_mut() {
        let boot_vcpu = VcpuId::new(slot, 0);
        begin_running(boot_vcpu, now);
        let (v, d) = g.vcpu(boot_vcpu.vcpu_id());
        d.start_running(v);
        switched_in(d, v, now);
        d.prepare_resume(v, &mut regs);
    }
    drop(g);
    big_unlock();
    entry::enter_guest(&regs)
}

/// Set once dom0 is in its slot: application processors may schedule.
static SCHEDULER_UP: AtomicBool = AtomicBool::new(false);

/// An application processor's life once it is up: wait for the
/// scheduler, then run whatever domain it picks. Never returns.
pub fn ap_main() -> ! {
    while !SCHEDULER_UP.load(SeqCst) {
        core::hint::spin_loop();
    }
    big_lock();
    let mut regs = CpuUserRegs::default();
    switch(&mut regs, Outgoing::idle());
    big_unlock();
    entry::enter_guest(&regs)
}

/// Record that this CPU now runs vCPU `v`, from `now`.
fn begin_running(v: VcpuId, now: u64) {
    let cpu = this_cpu();
    PER_CPU[cpu].current.store(v.index(), SeqCst);
    PER_VCPU[v.index()].running_on.store(cpu, SeqCst);
    PER_CPU[cpu].running_since.store(now, SeqCst);
}

/// Finish an entry from the guest (the exit path's one call): `guard`
/// holds the domain of the running vCPU `me`, and the caller took the
/// hypervisor lock. Keep the vCPU running if it may, else save it and
/// switch. On return, `regs` holds the registers of the vCPU to resume,
/// with everything loaded for it, and the hypervisor lock is released.
pub fn resume(mut guard: MutexGuard<'_, Option<FrameBox<Guest>>>, me: VcpuId, regs: &mut CpuUserRegs) {
    let Some(g) = guard.as_mut() else { crate::setup::fatal(format_args!("resume with no domain")) };
    let (v, d) = g.vcpu(me.vcpu_id());
    let cpu = this_cpu();
    let now = system_time();
    let yielded = core::mem::take(&mut v.yielded);
    d.wake_check(v, now);
    periodic_tick(d, v, now);
    // Another vCPU's deadline has passed: let the scheduler wake it (the
    // running vCPU's own timer was just handled by `wake_check`).
    let due = earliest_deadline().is_some_and(|t| t <= now);
    let slice_over = now >= PER_CPU[cpu].slice_end.load(SeqCst);
    let must_switch = due || PER_CPU[cpu].reschedule.load(SeqCst) || slice_over;
    if d.runnable(v) && !must_switch {
        raise_tbuf_virq(d);
        d.deliver_events(v, regs);
        d.prepare_resume(v, regs);
        // Both may crash the domain (shut it down), nothing else.
        if d.shutdown.is_none() {
            arm_timer(now, v.periodic_deadline());
            drop(guard);
            big_unlock();
            return;
        }
    }
    let prev =
        Outgoing { domid: d.domid, vcpu: v.vcpu_id as u16, reason: crate::sched::switch_reason(v.blocked, d.runnable(v), yielded, slice_over) };
    switched_out(d, v, now);
    v.regs = *regs;
    v.cpu_time += now.saturating_sub(PER_CPU[cpu].running_since.load(SeqCst));
    v.last_cpu = cpu;
    crate::arch::x86_64::cpu::fxsave(&mut v.fpu);
    if v.debug.active() {
        crate::arch::x86_64::debugreg::deactivate();
    }
    PER_VCPU[me.index()].running_on.store(NONE, SeqCst);
    drop(guard);
    switch(regs, prev);
    big_unlock();
}

/// The vCPU a pCPU is leaving (or the idle vCPU), and why: the first half
/// of xen-core's `TRC_XENCORE_VCPU_SWITCH` record, written once the next
/// one is known.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Outgoing {
    domid: u16,
    vcpu: u16,
    reason: xen_public::trace::SwitchReason,
}

impl Outgoing {
    /// This CPU's idle vCPU (domain `DOMID_IDLE`, vCPU = pCPU), which
    /// leaves when a vCPU wakes.
    fn idle() -> Outgoing {
        Outgoing { domid: xen_public::DOMID_IDLE, vcpu: this_cpu() as u16, reason: xen_public::trace::SwitchReason::Wake }
    }

    /// Trace the switch from this vCPU to `(domid, vcpu)` (none when it is
    /// the same one, picked again).
    fn switch_to(self, domid: u16, vcpu: u16) {
        use xen_public::trace::{Event, TRC_XENCORE_VCPU_SWITCH};
        if (self.domid, self.vcpu) != (domid, vcpu) && crate::trace::on(TRC_XENCORE_VCPU_SWITCH) {
            crate::trace::record(&Event::VcpuSwitch {
                prev_domid: self.domid,
                prev_vcpu: self.vcpu,
                next_domid: domid,
                next_vcpu: vcpu,
                reason: self.reason,
            });
        }
    }
}

/// Charge vCPU index `unit` (the one this CPU ran, if any) for the time
/// since this CPU's last charge, and account every period that has passed.
fn charge(run: &mut RunState, unit: usize, now: u64) {
    let cpu = this_cpu();
    let ran = now.saturating_sub(run.last_charge[cpu]);
    run.last_charge[cpu] = now;
    if let Some(carry) = run.carry.get_mut(unit) {
        *carry += ran;
        let ms = *carry / MS;
        if ms > 0 {
            run.credit.burn(unit, ms as i64);
            *carry %= MS;
        }
    }
    // One share of credit per period that has passed, so the credit handed
    // out matches the time there was to run, even when a switch comes late.
    let period = PERIOD_MS as u64 * MS;
    let periods = now.saturating_sub(run.period_start) / period;
    for _ in 0..periods.min(4) {
        run.credit.account();
    }
    run.period_start += periods * period;
}

/// Fire due timers, wake vCPUs whose wait is over, and note which vCPUs
/// this CPU could run (runnable, and not running on another CPU).
fn refresh(now: u64) -> [bool; MAX_UNITS] {
    let mut runnable = [false; MAX_UNITS];
    for (i, r) in runnable.iter_mut().enumerate().take(HIGH_SLOT.load(SeqCst) * MAX_VCPUS) {
        let u = VcpuId::from_index(i);
        *r = SLOT_DOMID[u.slot()].load(SeqCst) != NO_DOMAIN
            && !running_elsewhere(u)
            && DOMAINS[u.slot()].lock().as_mut().is_some_and(|g| {
                let (v, d) = g.vcpu(u.vcpu_id());
                raise_tbuf_virq(d);
                d.wake_check(v, now);
                settle_runstate(d, v, now);
                d.runnable(v)
            });
    }
    runnable
}

/// Pick the next vCPU and load it into `regs`; idle until one can run.
/// `prev` left this CPU: each switch is traced (xen-core's
/// `TRC_XENCORE_VCPU_SWITCH`, the idle vCPU included).
fn switch(regs: &mut CpuUserRegs, mut prev: Outgoing) {
    let cpu = this_cpu();
    loop {
        PER_CPU[cpu].reschedule.store(false, SeqCst);
        let now = system_time();
        poll_console_input(now);
        let runnable = refresh(now);
        let (next, slice_end, period_end) = {
            let mut guard = RUN.lock();
            let Some(run) = guard.as_mut() else { crate::setup::fatal(format_args!("scheduler not started")) };
            for (i, r) in runnable.iter().enumerate().take(HIGH_SLOT.load(SeqCst) * MAX_VCPUS) {
                if !running_elsewhere(VcpuId::from_index(i)) {
                    run.credit.set_runnable(i, *r);
                }
            }
            charge(run, current_vcpu().map_or(NONE, VcpuId::index), now);
            let next = run.credit.pick_where(|i| runnable[i]);
            // Run until the slice ends, or earlier when the credit or the
            // cap of the chosen vCPU runs out.
            let budget = next.and_then(|n| run.credit.budget_ms(n)).map_or(SLICE_NS, |ms| ms as u64 * MS);
            let period_end = run.credit.any_parked().then_some(run.period_start + PERIOD_MS as u64 * MS);
            (next, now + budget.min(SLICE_NS), period_end)
        };
        let Some(next) = next else {
            PER_CPU[cpu].current.store(NONE, SeqCst);
            let idle_vcpu = Outgoing::idle();
            prev.switch_to(idle_vcpu.domid, idle_vcpu.vcpu);
            prev = idle_vcpu;
            idle(now, period_end);
            continue;
        };
        let next = VcpuId::from_index(next);
        let mut g = DOMAINS[next.slot()].lock();
        let Some(g) = g.as_mut() else { continue };
        let (v, d) = g.vcpu(next.vcpu_id());
        if !d.runnable(v) {
            continue;
        }
        // Descriptor tables change only under their own domain: reload them
        // unless this CPU has them and the vCPU has not run elsewhere.
        if PER_CPU[cpu].loaded.load(SeqCst) != next.index() || v.last_cpu != cpu {
            v.load_descriptor_tables();
            PER_CPU[cpu].loaded.store(next.index(), SeqCst);
        }
        begin_running(next, now);
        prev.switch_to(d.domid, v.vcpu_id as u16);
        switched_in(d, v, now);
        PER_CPU[cpu].slice_end.store(slice_end, SeqCst);
        *regs = v.regs;
        crate::arch::x86_64::cpu::fxrstor(&v.fpu);
        // Only a vCPU with breakpoints enabled pays for its debug
        // registers (Xen's paravirt_ctxt_switch_to).
        if v.debug.active() {
            crate::arch::x86_64::debugreg::activate(&v.debug);
        }
        raise_tbuf_virq(d);
        d.deliver_events(v, regs);
        let cr3_before = crate::arch::x86_64::cpu::read_cr3();
        d.prepare_resume(v, regs);
        // The vCPU may have run on another CPU, or had its tables changed
        // by another domain, since this CPU last loaded them: if loading
        // them did not flush the TLB, flush it.
        let stale = PER_VCPU[next.index()].stale_tlb.swap(false, SeqCst) || v.last_cpu != cpu;
        if stale && crate::arch::x86_64::cpu::read_cr3() == cr3_before {
            crate::arch::x86_64::cpu::flush_tlb();
        }
        if d.runnable(v) {
            v.regs = *regs;
            arm_timer(now, v.periodic_deadline());
            return;
        }
        prev = Outgoing { domid: d.domid, vcpu: v.vcpu_id as u16, reason: crate::sched::switch_reason(v.blocked, false, false, false) };
        switched_out(d, v, now);
        v.regs = *regs;
        if v.debug.active() {
            crate::arch::x86_64::debugreg::deactivate();
        }
        PER_VCPU[next.index()].running_on.store(NONE, SeqCst);
    }
}

/// The run state a vCPU that is not running is in: blocked, runnable or
/// offline (down, or its domain paused, shut down or dying), as Xen's
/// scheduler decides it when it deschedules one.
fn idle_runstate(d: &Domain, v: &Vcpu) -> i32 {
    if v.blocked {
        RUNSTATE_BLOCKED
    } else if d.runnable(v) {
        RUNSTATE_RUNNABLE
    } else {
        RUNSTATE_OFFLINE
    }
}

/// A vCPU that is not running woke, blocked or was paused: move its run
/// state (Xen's `vcpu_wake` and `vcpu_sleep_nosync`; the guest's copy is
/// written at the next switch).
fn settle_runstate(d: &Domain, v: &mut Vcpu, now: u64) {
    if v.runstate.state == RUNSTATE_RUNNING {
        return;
    }
    let new = idle_runstate(d, v);
    if new != v.runstate.state {
        change_runstate(d, v, new, now);
    }
}

/// Dom0, about to run, gets the `VIRQ_TBUF` a trace buffer asked for.
#[inline]
fn raise_tbuf_virq(d: &mut Domain) {
    if d.domid == 0 && crate::trace::take_tbuf_virq() {
        d.raise_virq(xen_public::VIRQ_TBUF);
    }
}

/// Move `v` to run state `new`, traced as Xen's `TRC_SCHED_RUNSTATE_CHANGE`.
fn change_runstate(d: &Domain, v: &mut Vcpu, new: i32, now: u64) {
    if crate::trace::on(xen_public::trace::TRC_SCHED_RUNSTATE_CHANGE) {
        let ev = xen_public::trace::Event::runstate_change(d.domid, v.vcpu_id as u16, v.runstate.state as u32, new as u32);
        crate::trace::record(&ev);
    }
    v.runstate_change(new, now);
}

/// `v` starts running on this CPU: its run state, the guest's copy of it,
/// and its periodic timer, which fires now if a period has passed (Xen's
/// `vcpu_periodic_timer_work` when it is scheduled).
fn switched_in(d: &mut Domain, v: &mut Vcpu, now: u64) {
    // Its first run: nothing before it is known (Xen counts from the
    // vCPU's creation).
    if v.runstate.state_entry_time == 0 {
        v.runstate.state_entry_time = now;
    }
    change_runstate(d, v, RUNSTATE_RUNNING, now);
    crate::domain::vcpu_ops::update_runstate_area(v, d, &v.kernel_mem());
    periodic_tick(d, v, now);
}

/// `v` stops running on this CPU.
fn switched_out(d: &mut Domain, v: &mut Vcpu, now: u64) {
    change_runstate(d, v, idle_runstate(d, v), now);
    crate::domain::vcpu_ops::update_runstate_area(v, d, &v.kernel_mem());
}

/// Fire the running vCPU `v`'s periodic timer if it is due: VIRQ_TIMER.
#[inline]
fn periodic_tick(d: &mut Domain, v: &mut Vcpu, now: u64) {
    if v.periodic_due(now) {
        d.raise_virq(xen_public::VIRQ_TIMER);
    }
}

/// Serial input for dom0. Xen raises `VIRQ_CONSOLE` from the UART's
/// interrupt (`xen/drivers/char/console.c`: `serial_rx`); xen-core has no
/// IOAPIC, so CPU 0 polls the UART when it schedules, at most once per
/// `console::POLL_MIN_NS` and only while dom0 has `VIRQ_CONSOLE` bound,
/// and raises it when input arrived. Runs before [`refresh`], so a dom0
/// blocked for input wakes in the same pass.
fn poll_console_input(now: u64) {
    if this_cpu() != 0 || !crate::console::poll_due(now) || !dom0_console_virq_bound() {
        return;
    }
    if crate::console::pull_input() {
        with_domain(0, |d0| d0.raise_virq(xen_public::VIRQ_CONSOLE));
    }
}

/// Whether dom0 has a port bound to `VIRQ_CONSOLE` (the caller holds the
/// hypervisor lock and no slot lock).
fn dom0_console_virq_bound() -> bool {
    let Some(slot) = slot_of(0) else { return false };
    DOMAINS[slot].lock().as_ref().is_some_and(|g| g.domain.domid == 0 && g.domain.ports.virq_port(xen_public::VIRQ_CONSOLE).is_some())
}

/// The earliest wake deadline of any vCPU.
fn earliest_deadline() -> Option<u64> {
    Some(EARLIEST.load(SeqCst)).filter(|&t| t != 0)
}

/// Arm this CPU's LAPIC for the next thing the scheduler must look at;
/// `periodic` is the periodic timer of the vCPU about to run.
#[inline]
fn arm_timer(now: u64, periodic: Option<u64>) {
    // On every return to a guest: plain comparisons, no iterator.
    let deadline = match (earliest_deadline(), periodic) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let slice = if NR_DOMAINS.load(SeqCst) > 1 { Some(PER_CPU[this_cpu()].slice_end.load(SeqCst)) } else { None };
    let t = match (deadline, slice) {
        (Some(d), Some(s)) => Some(d.min(s)),
        (d, s) => d.or(s),
    };
    match t {
        Some(t) => apic::arm_at(t, now),
        None => apic::disarm(),
    }
}

/// Nothing can run here: drop the hypervisor lock and halt until the next
/// deadline, the next accounting period when a domain waits there parked
/// by its cap, or a kick from another CPU. When no CPU runs a domain and
/// there is no deadline at all, nothing could ever wake a domain, so
/// dom0's block ends instead (it returns at once, as it did when dom0 ran
/// alone).
fn idle(now: u64, period_end: Option<u64>) {
    let cpu = this_cpu();
    // CPU 0 looks at the UART again within a poll period while dom0 waits
    // for console input (so dom0's block does not end at once below).
    let console_poll = (cpu == 0 && dom0_console_virq_bound()).then_some(now + crate::console::POLL_PERIOD_NS);
    let wake = earliest_deadline().into_iter().chain(period_end).chain(console_poll).min();
    let anyone_running = PER_VCPU.iter().take(HIGH_SLOT.load(SeqCst) * MAX_VCPUS).any(|u| u.running_on.load(SeqCst) != NONE);
    if wake.is_none() && !anyone_running && cpu == 0 {
        if let Some(g) = DOMAINS[0].lock().as_mut() {
            g.vcpu(0).0.unblock();
        }
        return;
    }
    match wake {
        Some(t) => apic::arm_at(t, now),
        None => apic::disarm(),
    }
    // With other CPUs, one of them may free the L4 this CPU still has
    // loaded while it halts: move to the hypervisor's own tables. Alone,
    // nothing runs while this CPU halts, so its CR3 can stay.
    if CPUS_ONLINE.load(SeqCst) > 1 {
        crate::arch::x86_64::paging::load_idle_tables();
    }
    IDLE_CPUS.fetch_or(1 << cpu, SeqCst);
    big_unlock();
    apic::wait_for_interrupt();
    big_lock();
    IDLE_CPUS.fetch_and(!(1 << cpu), SeqCst);
}
