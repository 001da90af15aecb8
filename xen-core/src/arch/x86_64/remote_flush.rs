//! TLB flushes one CPU asks of another: a per-CPU request flag and the
//! flush IPI.
//!
//! Invariant: a request is done when its flag is clear again, and only the
//! target CPU clears it, after its flush. The target answers from its
//! flush-IPI handler (in a guest or halted) or from its wait for the
//! hypervisor lock ([`answer`]), so a requester that holds the lock never
//! waits for a CPU that waits for the lock.

use core::sync::atomic::{AtomicBool, Ordering::SeqCst};

use super::smp::MAX_CPUS;

/// Per CPU: a flush was asked for and not yet done.
static WANTED: [AtomicBool; MAX_CPUS as usize] = [const { AtomicBool::new(false) }; MAX_CPUS as usize];

/// Do this CPU's pending flush, if one was asked for.
pub fn answer() {
    let Some(wanted) = WANTED.get(super::entry::this_cpu()) else { return };
    if wanted.load(SeqCst) {
        super::cpu::flush_tlb();
        wanted.store(false, SeqCst);
    }
}

/// Make CPU `cpu` (not this one) flush its TLB, and wait until it has.
pub fn request(cpu: usize) {
    let Some(wanted) = WANTED.get(cpu) else { return };
    wanted.store(true, SeqCst);
    // QEMU numbers APIC ids from 0, as the CPU indices are.
    super::apic::send_vector(cpu as u32, super::apic::FLUSH_VECTOR);
    while wanted.load(SeqCst) {
        core::hint::spin_loop();
    }
}
