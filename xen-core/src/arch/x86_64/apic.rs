//! The local APIC timer: one-shot interrupts for guest timers.
//!
//! Owns the xAPIC MMIO page, mapped uncached at [`LAPIC_VA`], and each
//! CPU's record of what its timer is armed for ([`ARMED_FOR`]).
//! Invariants: the timer interrupt handler only acknowledges the interrupt
//! and notes that the timer is spent ([`timer_fired`]); whoever resumes a
//! guest or waits for events checks the deadlines, so the handler never
//! takes a lock. `ARMED_FOR[cpu]` names the deadline the CPU's timer will
//! fire at, or [`DISARMED`]; the register is written only when that
//! changes: under QEMU a LAPIC write is an exit to the device model, and
//! one on every return to a guest was a fifth of a null hypercall (1903
//! against 1532 cycles, `cargo xtask bench --xen-core-only`).

use core::sync::atomic::{AtomicU64, Ordering};

/// Where the LAPIC's registers are mapped.
pub const LAPIC_VA: u64 = 0xffff_82d0_c000_0000;
/// The LAPIC's physical base.
pub const LAPIC_PHYS: u64 = 0xfee0_0000;
/// Vector of the timer interrupt.
pub const TIMER_VECTOR: u8 = 0xf0;
/// Vector of spurious interrupts.
pub const SPURIOUS_VECTOR: u8 = 0xff;

const MSR_APIC_BASE: u32 = 0x1b;
const REG_TPR: u64 = 0x80;
const REG_EOI: u64 = 0xb0;
const REG_SVR: u64 = 0xf0;
const REG_LVT_TIMER: u64 = 0x320;
const REG_INITIAL: u64 = 0x380;
const REG_CURRENT: u64 = 0x390;
const REG_DIVIDE: u64 = 0x3e0;

/// `ARMED_FOR` of a CPU whose timer will not fire.
const DISARMED: u64 = u64::MAX;
/// Per CPU: the system time its timer is armed to fire at, or [`DISARMED`].
static ARMED_FOR: [AtomicU64; super::smp::MAX_CPUS as usize] = [const { AtomicU64::new(DISARMED) }; super::smp::MAX_CPUS as usize];
/// APIC timer ticks per second (0 until calibrated).
static APIC_HZ: AtomicU64 = AtomicU64::new(0);

fn write(reg: u64, v: u32) {
    // SAFETY: LAPIC_VA maps the LAPIC page uncached (paging::build); the
    // register offsets are architectural.
    unsafe { ((LAPIC_VA + reg) as *mut u32).write_volatile(v) }
}

fn read(reg: u64) -> u32 {
    // SAFETY: as in `write`.
    unsafe { ((LAPIC_VA + reg) as *const u32).read_volatile() }
}

/// Enable the LAPIC and calibrate its timer against the TSC (`tsc_hz`).
pub fn init(tsc_hz: u64) -> u64 {
    // SAFETY: IA32_APIC_BASE exists on every x86_64 CPU; this keeps the
    // default base and sets the global enable bit.
    unsafe { super::cpu::wrmsr(MSR_APIC_BASE, (super::cpu::rdmsr(MSR_APIC_BASE) & !0xfff) | (1 << 11)) };
    write(REG_TPR, 0);
    write(REG_SVR, 0x100 | u32::from(SPURIOUS_VECTOR));
    write(REG_DIVIDE, 0x3); // divide by 16
    write(REG_LVT_TIMER, (1 << 16) | u32::from(TIMER_VECTOR)); // masked while calibrating
    write(REG_INITIAL, u32::MAX);
    let t0 = super::clock::rdtsc();
    let window = tsc_hz / 100; // 10 ms
    while super::clock::rdtsc() - t0 < window {
        core::hint::spin_loop();
    }
    let elapsed = u64::from(u32::MAX - read(REG_CURRENT));
    write(REG_INITIAL, 0);
    let hz = elapsed * 100;
    APIC_HZ.store(hz, Ordering::Relaxed);
    write(REG_LVT_TIMER, u32::from(TIMER_VECTOR)); // one-shot, unmasked
    hz
}

/// Enable an application processor's LAPIC with the boot CPU's timer
/// calibration (every LAPIC runs from the same bus clock).
pub fn init_ap() {
    // SAFETY: as in `init`.
    unsafe { super::cpu::wrmsr(MSR_APIC_BASE, (super::cpu::rdmsr(MSR_APIC_BASE) & !0xfff) | (1 << 11)) };
    write(REG_TPR, 0);
    write(REG_SVR, 0x100 | u32::from(SPURIOUS_VECTOR));
    write(REG_DIVIDE, 0x3);
    write(REG_INITIAL, 0);
    write(REG_LVT_TIMER, u32::from(TIMER_VECTOR));
}

/// Vector of the IPI that makes a CPU look at its scheduler state (a
/// remote wakeup, an event for the domain it runs, a stop request).
pub const KICK_VECTOR: u8 = 0xf1;
/// Vector of the TLB-flush IPI.
pub const FLUSH_VECTOR: u8 = 0xf2;

/// Send a fixed IPI with `vector` to the CPU whose APIC id is `apic_id`.
pub fn send_vector(apic_id: u32, vector: u8) {
    send_ipi(apic_id, u32::from(vector));
}

/// This CPU's slot in [`ARMED_FOR`].
fn armed_for() -> &'static AtomicU64 {
    &ARMED_FOR[super::entry::this_cpu()]
}

/// Fire this CPU's timer interrupt at system time `deadline` (`now` is the
/// current system time; at least one tick from now; long delays fire
/// early, and the deadline check arms the timer again). Nothing is written
/// if the timer is already armed for that deadline.
pub fn arm_at(deadline: u64, now: u64) {
    let hz = APIC_HZ.load(Ordering::Relaxed);
    if hz == 0 || armed_for().swap(deadline, Ordering::Relaxed) == deadline {
        return;
    }
    let ns = deadline.saturating_sub(now).max(1);
    let ticks = (u128::from(ns) * u128::from(hz) / 1_000_000_000).clamp(1, u128::from(u32::MAX)) as u32;
    write(REG_INITIAL, ticks);
}

/// Stop this CPU's timer (nothing is written if it is stopped already).
pub fn disarm() {
    if APIC_HZ.load(Ordering::Relaxed) != 0 && armed_for().swap(DISARMED, Ordering::Relaxed) != DISARMED {
        write(REG_INITIAL, 0);
    }
}

/// This CPU's timer interrupt arrived: the one-shot count is spent, so the
/// timer is disarmed until armed again.
pub fn timer_fired() {
    armed_for().store(DISARMED, Ordering::Relaxed);
}

/// Acknowledge the current interrupt.
pub fn eoi() {
    write(REG_EOI, 0);
}

/// Wait for an interrupt with interrupts briefly enabled. Only called
/// with no lock held that an interrupt handler could want.
pub fn wait_for_interrupt() {
    // SAFETY: `sti; hlt` enables interrupts only for the halt (an
    // interrupt arriving between them still wakes the hlt); `cli` restores
    // the hypervisor's interrupts-off rule.
    unsafe { core::arch::asm!("sti", "hlt", "cli", options(nomem, nostack)) };
}

/// Send an IPI to `apic_id` with the given ICR low word.
pub fn send_ipi(apic_id: u32, icr_low: u32) {
    const ICR_LOW: u64 = 0x300;
    const ICR_HIGH: u64 = 0x310;
    write(ICR_HIGH, apic_id << 24);
    write(ICR_LOW, icr_low);
    for _ in 0..1_000_000 {
        if read(ICR_LOW) & (1 << 12) == 0 {
            break;
        }
    }
}
