//! The hardware debug registers: a vCPU's go into them while it runs with
//! DR7 active (Xen's `activate_debugregs` from `paravirt_ctxt_switch_to`),
//! DR7 is cleared when it stops (`paravirt_ctxt_switch_from`), and a #DB
//! the hypervisor itself meets (a guest's data breakpoint on a guest
//! address the hypervisor touched, or one delayed by `mov %ss` onto the
//! SYSCALL entry) is noted and ignored, as Xen's `do_debug` does.
//!
//! Invariant: the hardware's DR7 enables a breakpoint only while a vCPU
//! whose DR7 is active is the one this CPU runs; the values loaded are the
//! ones `domain::debugreg` checked (guest addresses only, no General
//! Detect, no I/O breakpoints), so a breakpoint can never fire on a
//! hypervisor address. #DB runs on its own IST stack (`gdt.rs`,
//! `entry.rs`), so one raised at the SYSCALL entry never uses the guest's
//! stack.

use crate::domain::debugreg::{DR6_DEFAULT, DebugRegs};
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

macro_rules! write_dr {
    ($n:literal, $v:expr) => {
        // SAFETY: moving to a debug register is allowed in ring 0; the
        // values come from `DebugRegs`, whose checks keep breakpoints off
        // the hypervisor's addresses and DR6/DR7 within their defined bits.
        unsafe { core::arch::asm!(concat!("mov dr", $n, ", {}"), in(reg) $v, options(nostack, nomem, preserves_flags)) }
    };
}

/// Load `d` into the hardware (Xen's `activate_debugregs`): DR0-DR3 and
/// DR6, then DR7 if it is active.
pub fn activate(d: &DebugRegs) {
    write_dr!(0, d.dr[0]);
    write_dr!(1, d.dr[1]);
    write_dr!(2, d.dr[2]);
    write_dr!(3, d.dr[3]);
    write_dr!(6, d.dr6);
    if d.active() {
        write_dr!(7, d.dr7);
    }
}

/// The running vCPU changed its debug registers: load them all if DR7 is
/// active now, else turn the hardware's breakpoints off.
pub fn reload(d: &DebugRegs) {
    if d.active() {
        activate(d);
    } else {
        deactivate();
    }
}

/// A vCPU with DR7 active stops running on this CPU: no breakpoint of its
/// stays armed, and its DR6 status bits do not reach the next vCPU's #DB.
pub fn deactivate() {
    write_dr!(7, 0u64);
    write_dr!(6, DR6_DEFAULT);
}

/// DR6 as the hardware has it, then reset to its default for the next #DB.
pub fn take_dr6() -> u64 {
    let v: u64;
    // SAFETY: reading DR6 in ring 0 has no side effect.
    unsafe { core::arch::asm!("mov {}, dr6", out(reg) v, options(nostack, nomem, preserves_flags)) };
    write_dr!(6, DR6_DEFAULT);
    v
}

/// #DBs taken in the hypervisor (counted, never printed: one may come
/// while this CPU holds the console lock, or before the SYSCALL entry's
/// `swapgs`, with the guest's GS).
pub static HYPERVISOR_DEBUG_EXCEPTIONS: AtomicU64 = AtomicU64::new(0);

/// A #DB in ring 0 (Xen's `do_debug` for `!guest_mode`): every breakpoint
/// a guest can arm is a data breakpoint on a guest address or an
/// instruction breakpoint at one, so this is a data access the hypervisor
/// made for the guest, already complete: note it and carry on. Uses no
/// per-CPU data (GS may still be the guest's).
///
/// An instruction breakpoint is a fault that would fire again at the same
/// RIP; none can be armed on hypervisor code (`domain::debugreg` admits
/// guest addresses only), but if one ever fired, DR7 is cleared so the
/// hypervisor carries on rather than looping, as Xen's `do_debug` does.
pub fn hypervisor_debug_exception() {
    const DR6_BREAKPOINTS: u64 = 0xf;
    let dr6 = take_dr6();
    if dr6 & DR6_BREAKPOINTS != 0 && execute_breakpoint_hit(dr6) {
        write_dr!(7, 0u64);
    }
    HYPERVISOR_DEBUG_EXCEPTIONS.fetch_add(1, Relaxed);
}

/// Whether one of the breakpoints DR6 reports is enabled in the hardware's
/// DR7 as an instruction (execute, RW = 00) breakpoint.
fn execute_breakpoint_hit(dr6: u64) -> bool {
    let dr7: u64;
    // SAFETY: reading DR7 in ring 0 has no side effect.
    unsafe { core::arch::asm!("mov {}, dr7", out(reg) dr7, options(nostack, nomem, preserves_flags)) };
    (0..4).any(|i| dr6 & (1 << i) != 0 && dr7 & (3 << (2 * i)) != 0 && (dr7 >> (16 + 4 * i)) & 3 == 0)
}
