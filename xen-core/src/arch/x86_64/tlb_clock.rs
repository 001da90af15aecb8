//! The TLB-flush clock (Xen's `tlbflush_clock`): a counter that every TLB
//! flush on any CPU advances, and per CPU the clock value of its last flush.
//!
//! Invariant: a translation that was removed from the page tables when the
//! clock read `t` can be cached only by a CPU whose last flush is at or
//! before `t` ([`cpu_needs_flush`]). Every explicit flush and every CR3
//! load once guests exist (guest tables, idle tables) goes through
//! [`stamp_flush`]; the boot-time loads before any guest do not, which can
//! only make a CPU look staler than it is (an extra flush), never fresher.

use core::sync::atomic::{AtomicU64, Ordering::SeqCst};

use super::smp::MAX_CPUS;

/// The clock; starts at 1 so that 0 can mean "never removed".
static CLOCK: AtomicU64 = AtomicU64::new(1);
/// Per CPU: the clock value its last flush started at.
static FLUSHED_AT: [AtomicU64; MAX_CPUS as usize] = [const { AtomicU64::new(0) }; MAX_CPUS as usize];

/// The clock now (for stamping a removed translation).
pub fn now() -> u64 {
    CLOCK.load(SeqCst)
}

/// Record that this CPU is about to flush its TLB; call right before the
/// flushing instruction.
pub fn stamp_flush() {
    let t = CLOCK.fetch_add(1, SeqCst) + 1;
    if let Some(c) = FLUSHED_AT.get(super::entry::this_cpu()) {
        c.store(t, SeqCst);
    }
}

/// Whether CPU `cpu` may still cache a translation removed at `stamp`.
pub fn cpu_needs_flush(cpu: usize, stamp: u64) -> bool {
    FLUSHED_AT.get(cpu).is_some_and(|c| c.load(SeqCst) <= stamp)
}
