//! Running domains on CPU 0: the domain slots, the credit scheduler that
//! picks among them, context switches and the idle loop.
//!
//! Invariants:
//! - a domain lives in one slot of [`DOMAINS`] from creation to destruction,
//!   so it never moves in memory; [`SLOT_DOMID`] mirrors which domid owns
//!   each slot and can be read without the slot's lock;
//! - the running domain's registers are the guest frame on top of the ring-0
//!   stack and its FPU/SSE state is in the CPU; every other domain's are in
//!   `Domain::regs` and `Domain::fpu`;
//! - a switch holds no slot lock while it looks for the next domain, and
//!   takes only the chosen domain's lock afterwards;
//! - a domain runs only while [`Domain::runnable`] holds (vCPU initialised,
//!   not paused, not shut down, not blocked);
//! - the LAPIC one-shot timer is always armed for the earliest of: the end
//!   of the time slice (when another domain exists), and every domain's
//!   wake deadline (single-shot timer or poll timeout).
//!
//! Guests run on CPU 0 only; the other CPUs idle (see docs/architecture.md).

use crate::arch::x86_64::apic;
use crate::arch::x86_64::entry;
use crate::domain::vcpu::CpuUserRegs;
use crate::guest::{Domain, system_time};
use crate::sched::credit::{Credit, PERIOD_MS, Params};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::SeqCst};
use spin::MutexGuard;

/// Domains that may exist at once, dom0 included.
pub const MAX_DOMAINS: usize = 8;
/// A domain slot.
pub type Slot = spin::Mutex<Option<Domain>>;
/// Every domain, by slot; dom0 is in slot 0.
pub static DOMAINS: [Slot; MAX_DOMAINS] = [const { spin::Mutex::new(None) }; MAX_DOMAINS];

const NO_DOMAIN: u32 = u32::MAX;
/// The domid in each slot, or [`NO_DOMAIN`].
static SLOT_DOMID: [AtomicU32; MAX_DOMAINS] = [const { AtomicU32::new(NO_DOMAIN) }; MAX_DOMAINS];
/// Each slot's earliest wake deadline in system time (0: none).
static DEADLINES: [AtomicU64; MAX_DOMAINS] = [const { AtomicU64::new(0) }; MAX_DOMAINS];
/// Set when another domain may have become runnable, or the running one
/// yielded: the next return to a guest goes through the scheduler.
static RESCHEDULE: AtomicBool = AtomicBool::new(false);
/// The slot running on CPU 0.
static CURRENT: AtomicUsize = AtomicUsize::new(0);
/// End of the running domain's time slice (system time).
static SLICE_END: AtomicU64 = AtomicU64::new(u64::MAX);
/// When the running domain was last switched to (system time).
static RUNNING_SINCE: AtomicU64 = AtomicU64::new(0);
/// Domains in existence.
static NR_DOMAINS: AtomicUsize = AtomicUsize::new(0);

/// Length of a time slice.
const SLICE_NS: u64 = 10_000_000;
const MS: u64 = 1_000_000;

/// CPU 0's scheduler state: the credit policy and its clock.
struct RunState {
    credit: Credit<MAX_DOMAINS>,
    /// When the running slot was last charged.
    last_charge: u64,
    /// Nanoseconds each slot ran but was not yet charged (under a ms).
    carry: [u64; MAX_DOMAINS],
    /// Start of the accounting period.
    period_start: u64,
}

static RUN: spin::Mutex<Option<RunState>> = spin::Mutex::new(None);

/// The slot of the domain running on CPU 0.
pub fn current() -> usize {
    CURRENT.load(SeqCst)
}

/// The slot holding `domid`.
pub fn slot_of(domid: u16) -> Option<usize> {
    SLOT_DOMID.iter().position(|s| s.load(SeqCst) == u32::from(domid))
}

/// Domids in use, in slot order (`None` for free slots).
pub fn domids() -> [Option<u16>; MAX_DOMAINS] {
    core::array::from_fn(|i| u16::try_from(SLOT_DOMID[i].load(SeqCst)).ok())
}

/// Run `f` on the domain `domid`, which must not be the caller's own (its
/// lock is held by the caller). On one CPU this cannot deadlock: only the
/// running domain's lock is held while another is taken.
pub fn with_domain<R>(domid: u16, f: impl FnOnce(&mut Domain) -> R) -> Option<R> {
    let slot = slot_of(domid)?;
    if slot == current() && DOMAINS[slot].is_locked() {
        return None;
    }
    DOMAINS[slot].lock().as_mut().filter(|d| d.domid == domid).map(f)
}

/// Put a new domain in a free slot (dom0 takes slot 0); gives it back if
/// every slot is in use.
pub fn install(mut dom: Domain) -> Result<usize, Domain> {
    for (i, slot) in DOMAINS.iter().enumerate() {
        // A used slot may be locked by the caller itself: look at the
        // mirror first; free slots are only locked here.
        if SLOT_DOMID[i].load(SeqCst) != NO_DOMAIN {
            continue;
        }
        let mut g = slot.lock();
        if g.is_none() {
            dom.slot = i;
            SLOT_DOMID[i].store(u32::from(dom.domid), SeqCst);
            *g = Some(dom);
            NR_DOMAINS.fetch_add(1, SeqCst);
            if let Some(run) = RUN.lock().as_mut() {
                run.credit.add(i, Params::default());
            }
            return Ok(i);
        }
    }
    Err(dom)
}

/// Take a domain out of its slot (destruction). Never the running one.
pub fn remove(domid: u16) -> Option<Domain> {
    let slot = slot_of(domid).filter(|&s| s != current())?;
    let dom = DOMAINS[slot].lock().take()?;
    SLOT_DOMID[slot].store(NO_DOMAIN, SeqCst);
    DEADLINES[slot].store(0, SeqCst);
    NR_DOMAINS.fetch_sub(1, SeqCst);
    if let Some(run) = RUN.lock().as_mut() {
        run.credit.remove(slot);
    }
    Some(dom)
}

/// Record a domain's wake deadline (0: none) for the timer and idle loop.
pub fn set_deadline(slot: usize, deadline: u64) {
    if let Some(d) = DEADLINES.get(slot) {
        d.store(deadline, SeqCst);
    }
}

/// Another domain may have become runnable: reconsider at the next
/// return to a guest.
pub fn kick() {
    RESCHEDULE.store(true, SeqCst);
}

/// Change a domain's weight and cap.
pub fn set_params(slot: usize, params: Params) {
    if let Some(run) = RUN.lock().as_mut() {
        run.credit.set_params(slot, params);
    }
}

/// A domain's weight and cap.
pub fn params(slot: usize) -> Option<Params> {
    RUN.lock().as_ref()?.credit.params(slot)
}

/// Start scheduling with dom0 and enter it. Never returns.
pub fn start(dom0: Domain, regs: CpuUserRegs) -> ! {
    let now = system_time();
    *RUN.lock() = Some(RunState { credit: Credit::new(1), last_charge: now, carry: [0; MAX_DOMAINS], period_start: now });
    let Ok(slot) = install(dom0) else { crate::setup::fatal(format_args!("no slot for dom0")) };
    CURRENT.store(slot, SeqCst);
    let mut regs = regs;
    let mut g = DOMAINS[slot].lock();
    if let Some(d) = g.as_mut() {
        d.start_running();
        d.prepare_resume(&mut regs);
    }
    drop(g);
    entry::enter_guest(&regs)
}

/// Finish an entry from the guest in `g` (the running domain): keep it
/// running if it may, else save it and switch. On return, `regs` holds the
/// registers of the domain to resume, with everything loaded for it.
pub fn resume(mut g: MutexGuard<'_, Option<Domain>>, regs: &mut CpuUserRegs) {
    let Some(d) = g.as_mut() else { crate::setup::fatal(format_args!("resume with no domain")) };
    let now = system_time();
    d.wake_check(now);
    // Another domain's deadline has passed: let the scheduler wake it (the
    // running domain's own timer was just handled by `wake_check`).
    let due = earliest_deadline().is_some_and(|t| t <= now);
    let must_switch = due || RESCHEDULE.load(SeqCst) || now >= SLICE_END.load(SeqCst);
    if d.runnable() && !must_switch {
        d.deliver_events(regs);
        d.prepare_resume(regs);
        if d.runnable() {
            arm_timer(now);
            return;
        }
    }
    d.regs = *regs;
    d.cpu_time += now.saturating_sub(RUNNING_SINCE.load(SeqCst));
    crate::arch::x86_64::cpu::fxsave(&mut d.fpu);
    drop(g);
    switch(regs);
}

/// Charge the running slot for the time since the last charge, and start
/// a new accounting period when one has passed.
fn charge(run: &mut RunState, slot: usize, now: u64) {
    let carry = &mut run.carry[slot];
    *carry += now.saturating_sub(run.last_charge);
    run.last_charge = now;
    let ms = *carry / MS;
    if ms > 0 {
        run.credit.burn(slot, ms as i64);
        *carry %= MS;
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

/// Fire due timers, wake domains whose wait is over, and note which slots
/// can run.
fn refresh(now: u64) -> [bool; MAX_DOMAINS] {
    core::array::from_fn(|i| DOMAINS[i].lock().as_mut().is_some_and(|d| {
        d.wake_check(now);
        d.runnable()
    }))
}

/// Pick the next domain and load it into `regs`; idle until one can run.
fn switch(regs: &mut CpuUserRegs) {
    loop {
        RESCHEDULE.store(false, SeqCst);
        let now = system_time();
        let runnable = refresh(now);
        let (next, slice_end, period_end) = {
            let mut guard = RUN.lock();
            let Some(run) = guard.as_mut() else { crate::setup::fatal(format_args!("scheduler not started")) };
            for (i, r) in runnable.iter().enumerate() {
                run.credit.set_runnable(i, *r);
            }
            charge(run, current(), now);
            let next = run.credit.pick();
            // Run until the slice ends, or earlier when the credit or the
            // cap of the chosen domain runs out.
            let budget = next.and_then(|n| run.credit.budget_ms(n)).map_or(SLICE_NS, |ms| ms as u64 * MS);
            let period_end = run.credit.any_parked().then_some(run.period_start + PERIOD_MS as u64 * MS);
            (next, now + budget.min(SLICE_NS), period_end)
        };
        let Some(next) = next else {
            idle(now, period_end);
            continue;
        };
        let mut g = DOMAINS[next].lock();
        let Some(d) = g.as_mut().filter(|d| d.runnable()) else { continue };
        if next != current() {
            crate::hypercall::load_segments(d);
        }
        CURRENT.store(next, SeqCst);
        SLICE_END.store(slice_end, SeqCst);
        RUNNING_SINCE.store(now, SeqCst);
        *regs = d.regs;
        crate::arch::x86_64::cpu::fxrstor(&d.fpu);
        d.deliver_events(regs);
        d.prepare_resume(regs);
        if d.runnable() {
            d.regs = *regs;
            arm_timer(now);
            return;
        }
        d.regs = *regs;
    }
}

/// The earliest wake deadline of any domain.
fn earliest_deadline() -> Option<u64> {
    DEADLINES.iter().map(|d| d.load(SeqCst)).filter(|&d| d != 0).min()
}

/// Arm the LAPIC for the next thing the scheduler must look at.
fn arm_timer(now: u64) {
    let slice = (NR_DOMAINS.load(SeqCst) > 1).then(|| SLICE_END.load(SeqCst));
    match [earliest_deadline(), slice].into_iter().flatten().min() {
        Some(t) => apic::arm(t.saturating_sub(now).max(1)),
        None => apic::disarm(),
    }
}

/// Nothing can run: halt until the next deadline, or until the next
/// accounting period when a domain waits there, parked by its cap. With
/// neither, nothing could ever wake a domain, so dom0's block ends instead
/// (it returns at once, as it did when dom0 ran alone).
fn idle(now: u64, period_end: Option<u64>) {
    match earliest_deadline().into_iter().chain(period_end).min() {
        Some(t) => {
            apic::arm(t.saturating_sub(now).max(1));
            apic::wait_for_interrupt();
        }
        None => {
            if let Some(d) = DOMAINS[0].lock().as_mut() {
                d.unblock();
            }
        }
    }
}
