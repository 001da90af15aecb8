//! What the cases work with: raw hypercalls (pointing at the case's own
//! buffers, or at addresses the hypervisor must refuse), expectations,
//! probes, spare pages of the initial region and their frame numbers.

use super::{Message, Outcome};
use crate::StartInfo;
use crate::alloc::EarlyAlloc;
use crate::notes::VIRT_BASE;
use crate::traps::Caught;
use core::sync::atomic::{AtomicPtr, Ordering};

static START_INFO: AtomicPtr<StartInfo> = AtomicPtr::new(core::ptr::null_mut());
static PAGES: spin_cell::Cell = spin_cell::Cell::new();

/// A single-CPU cell for the early allocator (cases run one at a time).
mod spin_cell {
    use crate::alloc::EarlyAlloc;
    use core::cell::UnsafeCell;

    pub struct Cell(UnsafeCell<Option<EarlyAlloc>>);
    // SAFETY: the guest runs on one vCPU and the cell is only touched from
    // the case runner, never from trap handlers.
    unsafe impl Sync for Cell {}

    impl Cell {
        pub const fn new() -> Self {
            Cell(UnsafeCell::new(None))
        }
        pub fn with<R>(&self, f: impl FnOnce(&mut Option<EarlyAlloc>) -> R) -> R {
            // SAFETY: see `Sync`: no concurrent or reentrant access.
            f(unsafe { &mut *self.0.get() })
        }
    }
}

/// Record the domain's start_info and set up the spare-page allocator.
pub fn init(si: &'static StartInfo) {
    START_INFO.store(si as *const StartInfo as *mut StartInfo, Ordering::Release);
    PAGES.with(|p| *p = Some(EarlyAlloc::from_start_info(si.pt_base, si.nr_pt_frames, VIRT_BASE, si.nr_pages)));
}

/// The domain's start_info.
pub fn start_info() -> &'static StartInfo {
    // SAFETY: set once by `init` from the `&'static` the runtime was given.
    unsafe { &*START_INFO.load(Ordering::Acquire) }
}

/// A spare, mapped, writable page of the initial region.
pub fn spare_page() -> Option<u64> {
    PAGES.with(|p| p.as_mut()?.alloc_page())
}

/// Machine frame of a page of the initial region (from the P2M list).
pub fn mfn_of(va: u64) -> u64 {
    crate::mm::mfn_of(start_info(), va)
}

/// Machine frame of the running L4 (the first bootstrap page table).
pub fn l4_mfn() -> u64 {
    mfn_of(start_info().pt_base)
}

/// Issue hypercall `nr`. Pointer arguments are either the case's own
/// buffers or deliberately bad addresses the hypervisor must refuse.
pub fn call(nr: u64, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> i64 {
    // SAFETY: see above; a hypervisor that writes through a bad pointer is
    // exactly what the suite exists to catch.
    unsafe { crate::hypercall::hypercall5(nr, a1, a2, a3, a4, a5) }
}

/// SYSCALL directly with any RAX, bypassing the 128-stub hypercall page.
pub fn raw_syscall(rax: u64) -> i64 {
    let ret: i64;
    // SAFETY: a hypercall with no arguments the hypervisor could act on;
    // SYSCALL clobbers RCX and R11.
    unsafe {
        core::arch::asm!("syscall", inlateout("rax") rax as i64 => ret, out("rcx") _, out("r11") _,
            in("rdi") 0u64, in("rsi") 0u64, in("rdx") 0u64, in("r10") 0u64, in("r8") 0u64)
    };
    ret
}

/// Pointer to a value, for hypercall arguments.
pub fn ptr<T>(v: &T) -> u64 {
    v as *const T as u64
}

/// Mutable pointer to a value, for hypercall arguments.
pub fn ptr_mut<T>(v: &mut T) -> u64 {
    v as *mut T as u64
}

/// Success if `got == want`.
pub fn expect(got: i64, want: i64) -> Outcome {
    if got == want { Outcome::Success } else { Outcome::Failure(Message::new(format_args!("got {got}, want {want}"))) }
}

/// Success if `cond`, else a failure with `what`.
pub fn check(cond: bool, what: core::fmt::Arguments<'_>) -> Outcome {
    if cond { Outcome::Success } else { Outcome::Failure(Message::new(what)) }
}

/// An error in the test environment.
pub fn error(what: core::fmt::Arguments<'_>) -> Outcome {
    Outcome::Error(Message::new(what))
}

/// Success if the probe trapped with `vector` (and `error_code`, if given)
/// at the expected RIP offset.
pub fn expect_trap(r: Result<(), Caught>, vector: u64, error_code: Option<u64>, rip_offset: u64) -> Outcome {
    match r {
        Ok(()) => Outcome::Failure(Message::new(format_args!("no trap, want vector {vector}"))),
        Err(c) if c.vector != vector => Outcome::Failure(Message::new(format_args!("vector {}, want {vector}", c.vector))),
        Err(c) if error_code.is_some_and(|e| e != c.error_code) => {
            Outcome::Failure(Message::new(format_args!("error code {:#x}, want {:#x}", c.error_code, error_code.unwrap_or(0))))
        }
        Err(c) if c.rip_offset != rip_offset => Outcome::Failure(Message::new(format_args!("rip offset {}, want {rip_offset}", c.rip_offset))),
        Err(_) => Outcome::Success,
    }
}

/// Chain checks: the first non-success wins.
pub fn all(outcomes: &[Outcome]) -> Outcome {
    outcomes.iter().find(|o| **o != Outcome::Success).cloned().unwrap_or(Outcome::Success)
}
