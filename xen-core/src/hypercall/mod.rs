//! Hypercall dispatch by Xen's numbers, and the handlers that need the
//! live machine: console, scheduling, timers, iret and the families in the
//! submodules (grants, control, vCPU contexts, audit, the live glue of
//! event channels and of the MMU hypercalls). The handlers that need only
//! the caller's vCPU, domain and memory (traps and callbacks, stack, segment
//! bases, FPU, xen_version, vm_assist, event channels) and the MMU
//! hypercalls (over a host trait for the frame-table lock, TLBs and
//! descriptor tables) are in `domain/` and tested on the host. It also
//! holds the live glue of the privileged-op emulation for the exit path
//! (the CR3 write through MMUEXT_NEW_BASEPTR, the hypercall-page MSR, the
//! writable-page-table fault) and the live [`VcpuHost`](crate::domain::vcpu_ops::VcpuHost).
//!
//! Every argument is untrusted: guest pointers go through [`GuestMem`],
//! addresses that will reach the hardware must be canonical, and every
//! failure is Xen's errno for the same input. Numbers without a handler
//! return -ENOSYS, like Xen.

use crate::domain::guest_mem::GuestAccess;
use crate::domain::info_ops;
use crate::domain::vcpu::{CpuUserRegs, Vcpu};
use crate::domain::vcpu_ops::{self, continue_later};
use crate::guest::{Domain, GuestMem};
use crate::mm::Mfn;
use crate::mm::machine::{DirectMapMem, FRAME_TABLE};
use crate::mm::page_type::PageMem;
use xen_public::errno::{EFAULT, ENOSYS};
use xen_public::hypercall as nr;

type Ret = i64;

/// How long one hypercall may hold the hypervisor lock before it
/// continues itself (Xen's `hypercall_preempt_check`, by elapsed time).
pub const PREEMPT_NS: u64 = 500_000;

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// A CPU's current top-level hypercall (sub-calls of a multicall share
/// their parent's). One cache line per CPU.
#[repr(align(64))]
struct HypercallCpu {
    /// The TSC when it started: a raw TSC, converted only when
    /// [`preempt_due`] asks (every hypercall stores it, few ask).
    start_tsc: AtomicU64,
    /// Whether [`preempt_due`] said `true` during it (cleared when one
    /// starts). Most callers then stop and continue later; one does not (a
    /// devalidation that parks the rest of its work on the frame table's
    /// pending list and lets the hypercall finish), so [`dispatch`] counts
    /// a preemption only when the call also continued.
    preempted: AtomicBool,
}

/// Per CPU.
static PER_CPU: [HypercallCpu; crate::arch::x86_64::smp::MAX_CPUS as usize] =
    [const { HypercallCpu { start_tsc: AtomicU64::new(0), preempted: AtomicBool::new(false) } }; crate::arch::x86_64::smp::MAX_CPUS as usize];

/// Whether the current hypercall has run long enough to continue later.
/// Callers check it only after some progress, so every call advances.
pub fn preempt_due() -> bool {
    let Some(c) = PER_CPU.get(crate::arch::x86_64::entry::this_cpu()) else { return false };
    let start = crate::guest::CLOCK.get().map_or(0, |clock| clock.system_time(c.start_tsc.load(Relaxed)));
    let due = crate::guest::system_time().saturating_sub(start) >= PREEMPT_NS;
    if due {
        c.preempted.store(true, Relaxed);
    }
    due
}

/// Start this CPU's preemption clock at `tsc` (now): [`preempt_due`]
/// measures from then (a hypercall, or an emulated instruction that runs
/// hypercall code).
fn start_preempt_clock(tsc: u64) {
    if let Some(c) = PER_CPU.get(crate::arch::x86_64::entry::this_cpu()) {
        c.start_tsc.store(tsc, Relaxed);
        c.preempted.store(false, Relaxed);
    }
}

/// Handle the hypercall in `regs`; the result goes to the guest's RAX.
/// Traced: Xen's `TRC_PV_HYPERCALL_V2` (or `_SUBCALL` inside a
/// multicall) at entry, and xen-core's hypercall-exit record with the
/// result and the cycles spent.
#[inline]
pub fn dispatch(v: &mut Vcpu, d: &mut Domain, regs: &mut CpuUserRegs) -> u64 {
    match crate::trace::mask_here() {
        Some(mask) => dispatch_traced(v, d, regs, mask),
        None => {
            let tsc = if v.in_multicall { 0 } else { crate::arch::x86_64::clock::rdtsc() };
            dispatch_untraced(v, d, regs, tsc)
        }
    }
}

/// [`dispatch`] with tracing on (`mask`: the event mask): one TSC read at
/// entry stamps the entry record and starts the preemption clock, one at
/// exit stamps the exit record and measures the cycles; the records'
/// words are built directly (no typed event) and the mask is tested once
/// per record from the one load.
#[inline(never)]
fn dispatch_traced(v: &mut Vcpu, d: &mut Domain, regs: &mut CpuUserRegs, mask: u32) -> u64 {
    use xen_public::trace::{Payload, TRC_PV_HYPERCALL_SUBCALL, TRC_PV_HYPERCALL_V2, TRC_XENCORE_HYPERCALL_EXIT, event_in_mask};
    let op = regs.rax;
    let subcall = v.in_multicall;
    let t0 = crate::arch::x86_64::clock::rdtsc();
    if event_in_mask(mask, if subcall { TRC_PV_HYPERCALL_SUBCALL } else { TRC_PV_HYPERCALL_V2 }) {
        let args = [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8];
        crate::trace::write(&Payload::hypercall(subcall, op, &args), t0);
    }
    let r = dispatch_untraced(v, d, regs, t0);
    // One exit per top-level hypercall: a multicall's entries have their
    // subcall records only, so its span stays whole. The mask is read
    // again: the handler may have changed it (`XEN_SYSCTL_tbuf_op`).
    if !subcall && crate::trace::mask_here().is_some_and(|m| event_in_mask(m, TRC_XENCORE_HYPERCALL_EXIT)) {
        let t1 = crate::arch::x86_64::clock::rdtsc();
        crate::trace::write(&Payload::hypercall_exit(op as u32, r as i64, t1.wrapping_sub(t0)), t1);
    }
    r
}

/// [`dispatch`] without its trace records; `tsc` is the TSC at entry
/// (read only for a top-level call, whose preemption clock starts then).
#[inline]
fn dispatch_untraced(v: &mut Vcpu, d: &mut Domain, regs: &mut CpuUserRegs, tsc: u64) -> u64 {
    let this = PER_CPU.get(crate::arch::x86_64::entry::this_cpu());
    let top_level = !v.in_multicall;
    if top_level {
        start_preempt_clock(tsc);
    }
    // `iret` restores the guest's RAX, whatever it holds: never a
    // continuation.
    if regs.rax == nr::IRET {
        return d.iret(v, regs);
    }
    let rip = regs.rip;
    let r: Ret = call_handler(v, d, regs).unwrap_or(-ENOSYS);
    let continued = regs.rip != rip || r == -xen_public::errno::ERESTART;
    if top_level && continued && this.is_some_and(|c| c.preempted.load(Relaxed)) {
        v.preempted_hypercalls += 1;
    }
    if r == -xen_public::errno::ERESTART {
        // The operation waits for another CPU (a domain being destroyed
        // must first stop running there): issue the hypercall again.
        return continue_later(regs, regs.rax);
    }
    r as u64
}

/// The dispatch table as one list, by hypercall number: each handler gets
/// the calling vCPU, its domain and its registers (arguments in RDI, RSI, RDX, R10,
/// R8; the result goes to RAX). The macro makes both the dispatch (a
/// `match`, so every call is direct) and [`HANDLED`], which is checked
/// against [`crate::hypercall_table::HYPERCALLS`] at compile time.
macro_rules! dispatch_table {
    ($($nr:path => $handler:expr),* $(,)?) => {
        /// Run the handler of the hypercall in RAX (`None`: there is none).
        fn call_handler(v: &mut Vcpu, d: &mut Domain, r: &mut CpuUserRegs) -> Option<Ret> {
            match r.rax {
                $($nr => Some(($handler)(v, d, r)),)*
                _ => None,
            }
        }

        /// Which numbers have a handler.
        const HANDLED: [bool; crate::hypercall_table::NR_HYPERCALLS] = {
            let mut t = [false; crate::hypercall_table::NR_HYPERCALLS];
            $(t[$nr as usize] = true;)*
            t
        };
    };
}

type Regs = CpuUserRegs;

dispatch_table! {
    nr::SET_TRAP_TABLE => |v: &mut Vcpu, _d: &mut Domain, r: &mut Regs| {
        let mem = v.kernel_mem();
        vcpu_ops::set_trap_table(v, &mem, r, preempt_due)
    },
    nr::STACK_SWITCH => |v: &mut Vcpu, _d: &mut Domain, r: &mut Regs| vcpu_ops::stack_switch(v, r.rdi, r.rsi),
    nr::SET_CALLBACKS => |v: &mut Vcpu, _d: &mut Domain, r: &mut Regs| vcpu_ops::set_callbacks(v, r.rdi, r.rsi, r.rdx),
    nr::FPU_TASKSWITCH => |v: &mut Vcpu, _d: &mut Domain, r: &mut Regs| vcpu_ops::fpu_taskswitch(v, r.rdi),
    nr::SET_DEBUGREG => |v: &mut Vcpu, _d: &mut Domain, r: &mut Regs| set_debugreg(v, r.rdi as u32, r.rsi),
    nr::GET_DEBUGREG => |v: &mut Vcpu, _d: &mut Domain, r: &mut Regs| {
        // Xen's do_get_debugreg: the value as the hypercall's result, or -ENODEV.
        v.debug.get(v.cr4_de(), r.rdi as u32).unwrap_or_else(|e| e as u64) as i64
    },
    nr::XEN_VERSION => |v: &mut Vcpu, d: &mut Domain, r: &mut Regs| {
        let mem = v.kernel_mem();
        info_ops::xen_version(d, &mem, r.rdi as u32, r.rsi)
    },
    nr::CONSOLE_IO => control::console_io,
    nr::VM_ASSIST => |_v: &mut Vcpu, d: &mut Domain, r: &mut Regs| info_ops::vm_assist(d, r.rdi as u32, r.rsi as u32),
    // Reached only through `dispatch`'s early return (see there).
    nr::IRET => |v: &mut Vcpu, d: &mut Domain, r: &mut Regs| d.iret(v, r) as i64,
    nr::SET_SEGMENT_BASE => |v: &mut Vcpu, _d: &mut Domain, r: &mut Regs| vcpu_ops::set_segment_base(v, r.rdi as u32, r.rsi),
    nr::SCHED_OP => |v: &mut Vcpu, d: &mut Domain, r: &mut Regs| {
        let (cmd, arg) = (r.rdi as u32, r.rsi);
        control::sched_op(v, d, r, cmd, arg)
    },
    nr::CALLBACK_OP => |v: &mut Vcpu, _d: &mut Domain, r: &mut Regs| {
        let mem = v.kernel_mem();
        vcpu_ops::callback_op(v, &mem, r.rdi as u32, r.rsi)
    },
    nr::UPDATE_VA_MAPPING => |v: &mut Vcpu, d: &mut Domain, r: &mut Regs| update_va_mapping(v, d, r.rdi, r.rsi, r.rdx),
    nr::MMU_UPDATE => mmu_update,
    nr::MMUEXT_OP => mmuext_op,
    nr::MULTICALL => multicall,
    nr::SET_GDT => |v: &mut Vcpu, d: &mut Domain, r: &mut Regs| set_gdt(v, d, r.rdi, r.rsi as u32 as u64),
    nr::EVENT_CHANNEL_OP => |v: &mut Vcpu, d: &mut Domain, r: &mut Regs| event_channel_op(v, d, r.rdi as u32, r.rsi),
    nr::GRANT_TABLE_OP => grant_table_op,
    nr::SET_TIMER_OP => |v: &mut Vcpu, _d: &mut Domain, r: &mut Regs| set_timer_op(v, r.rdi),
    nr::DOMCTL => |v: &mut Vcpu, d: &mut Domain, r: &mut Regs| audit::domctl(v, d, r.rdi),
    nr::MEMORY_OP => |v: &mut Vcpu, d: &mut Domain, r: &mut Regs| control::memory_op(v, d, r.rdi as u32, r.rsi),
    nr::SYSCTL => |v: &mut Vcpu, d: &mut Domain, r: &mut Regs| control::sysctl(v, d, r.rdi),
    nr::VCPU_OP => |v: &mut Vcpu, d: &mut Domain, r: &mut Regs| vcpu_op(v, d, r.rdi as u32, r.rsi as u32, r.rdx),
    nr::UPDATE_DESCRIPTOR => |v: &mut Vcpu, d: &mut Domain, r: &mut Regs| update_descriptor(v, d, r.rdi, r.rsi),
    nr::PHYSDEV_OP => |v: &mut Vcpu, _d: &mut Domain, r: &mut Regs| {
        let mem = v.kernel_mem();
        crate::domain::physdev_ops::physdev_op(&mut v.io, &mem, r.rdi as u32 as u64, r.rsi)
    },
}

/// A hypercall has a handler exactly when the table says it exists.
const _: () = {
    let rows = crate::hypercall_table::HYPERCALLS;
    let mut i = 0;
    while i < rows.len() {
        assert!(rows[i].nr as usize == i, "hypercall table out of order");
        let enosys = matches!(rows[i].status, crate::hypercall_table::Status::Enosys);
        assert!(enosys != HANDLED[rows[i].nr as usize], "hypercall table and dispatch disagree");
        i += 1;
    }
};

pub mod audit;
mod control;
mod evtchn;
mod gnttab;
mod live;
mod mmu;
pub use mmu::ptwr_fault;
mod vcpu_ctx;

use evtchn::event_channel_op;
use gnttab::grant_table_op;
use mmu::{mmu_update, mmuext_op, multicall, set_gdt, update_descriptor, update_va_mapping};

/// `set_debugreg(reg, value)` (Xen's `do_set_debugreg`, `reg` an int): the
/// checks are `domain/debugreg.rs`'s; the running vCPU's registers go into
/// the hardware at once, as Xen writes them.
fn set_debugreg(v: &mut Vcpu, reg: u32, value: u64) -> Ret {
    match v.debug.set(v.cr4_de(), reg, value) {
        Ok(()) => {
            crate::arch::x86_64::debugreg::reload(&v.debug);
            0
        }
        Err(e) => e,
    }
}

/// `mov %reg, %cr3` from the guest kernel of `v` (Xen's `write_cr` for
/// CR3): the L4 in frame `value >> 12` becomes its base pointer through
/// the code MMUEXT_NEW_BASEPTR uses (`mmu_ops::new_baseptr`, Xen's
/// `new_guest_cr3`); a frame that is not the domain's, or cannot be an
/// L4, is refused.
/// As every MMU hypercall, it first finishes the domain's pending
/// devalidations (Xen's `put_old_guest_table`), so that CR3 writes cannot
/// fill the global pending list; -ERESTART runs the instruction again.
pub fn write_cr3(v: &mut Vcpu, d: &mut Domain, value: u64) -> Result<(), i64> {
    start_preempt_clock(crate::arch::x86_64::clock::rdtsc());
    let mut h = live::Live::new();
    crate::domain::mmu_ops::drain_pending(&mut h, d.domid)?;
    crate::domain::mmu_ops::new_baseptr(&mut h, v, d, value >> 12)
}

/// `wrmsr` of Xen's hypercall-page MSR by `d` (Xen's `guest_wrmsr_xen`):
/// its frame `gmfn` gets the hypercall stubs, through the writer
/// XEN_DOMCTL_hypercall_init uses; false (nothing written) for a frame
/// that is not the domain's or cannot be written.
pub fn write_hypercall_page(d: &Domain, gmfn: u64) -> bool {
    let stubs: [[u8; 32]; nr::PAGE_STUBS] = core::array::from_fn(crate::domain::build::hypercall_stub);
    crate::domain::control_ops::write_hypercall_page(&mut live::Live::new(), d, gmfn, &stubs).is_ok()
}

/// `set_timer_op(timeout)`: a single-shot timer at absolute system time
/// `timeout` (ns), delivered as VIRQ_TIMER; 0 cancels.
fn set_timer_op(v: &mut Vcpu, timeout: u64) -> Ret {
    v.set_timer(timeout);
    0
}

/// `vcpu_op(cmd, vcpuid, arg)` (`domain/vcpu_ops.rs`).
fn vcpu_op(v: &mut Vcpu, d: &mut Domain, cmd: u32, vcpu: u32, arg: u64) -> Ret {
    let mem = v.kernel_mem();
    vcpu_ops::vcpu_op(&mut live::Live::new(), v, d, &mem, cmd, vcpu, arg)
}

impl vcpu_ops::VcpuHost for live::Live<'_> {
    fn now(&self) -> u64 {
        crate::guest::system_time()
    }
    fn set_singleshot(&mut self, v: &mut Vcpu, deadline: u64) {
        v.set_timer(deadline);
    }
    fn periodic_changed(&mut self, d: &mut Domain, _v: &mut Vcpu, fired: bool) {
        // The next return to the guest arms the LAPIC for the new period
        // (`schedule::resume`).
        if fired {
            d.raise_virq(xen_public::VIRQ_TIMER);
        }
    }
    fn move_vcpu_info(&mut self, d: &mut Domain, v: &Vcpu, mfn: u64, offset: u16) {
        d.move_vcpu_info(v, mfn, offset);
    }
    fn publish_time(&mut self, d: &Domain, v: &Vcpu) {
        d.publish_time(v);
    }
}
