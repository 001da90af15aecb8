//! Guest entry and exit: the SYSCALL entry point, the per-CPU blocks reached
//! through GS, and the first entry into a guest.
//!
//! While the hypervisor runs, GS_BASE points at this CPU's [`PerCpu`]; while
//! a guest runs, GS_BASE is the guest's and KERNEL_GS_BASE holds ours, and
//! every entry from ring 3 swaps them. A guest's registers always sit in a
//! [`CpuUserRegs`] at the top of the CPU's ring-0 stack (TSS.RSP0), whether
//! it entered by SYSCALL or by exception, and it always leaves by IRETQ
//! (never SYSRET, whose non-canonical-RCX fault in ring 0 is CVE-2012-0217).

use super::cpu::{self, rdmsr, wrmsr};
use super::gdt::{FLAT_RING3_CS64, FLAT_RING3_DS, HYPERVISOR_CS};
use crate::domain::vcpu::{CpuUserRegs, ENTRY_SYSCALL};
use core::cell::UnsafeCell;

const MSR_STAR: u32 = 0xc000_0081;
const MSR_LSTAR: u32 = 0xc000_0082;
const MSR_SFMASK: u32 = 0xc000_0084;
/// `IA32_FS_BASE`.
pub const MSR_FS_BASE: u32 = 0xc000_0100;
/// `IA32_GS_BASE`.
pub const MSR_GS_BASE: u32 = 0xc000_0101;
/// `IA32_KERNEL_GS_BASE`: the guest's GS base while the hypervisor runs.
pub const MSR_KERNEL_GS_BASE: u32 = 0xc000_0102;
const EFER_SCE: u64 = 1 << 0;

/// Per-CPU data reached through `%gs` in the entry code.
#[repr(C)]
pub struct PerCpu {
    /// Top of this CPU's ring-0 stack (TSS.RSP0): guest frames live below it.
    pub stack_top: u64,
    /// Scratch slot for the guest RSP during SYSCALL entry.
    pub scratch_rsp: u64,
    /// This CPU's number (0 for the boot CPU).
    pub cpu: u64,
    /// Non-zero when the benchmark floor path is on (`bench_floor`).
    pub floor_on: u64,
}

/// The RAX of the benchmark floor: with `bench_floor` on the command line,
/// a SYSCALL with this number returns at once through IRETQ, having done
/// nothing but the entry and exit every hypercall pays.
pub const FLOOR_NR: u32 = 0x7fff_f100;

/// Whether `bench_floor` is on (set before any guest runs).
static FLOOR_ON: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Turn the benchmark floor path on (boot option `bench_floor`); CPUs
/// brought up later pick it up in [`init_cpu`].
pub fn enable_floor() {
    FLOOR_ON.store(true, core::sync::atomic::Ordering::SeqCst);
    let Some(block) = PERCPU.0.first() else { return };
    // SAFETY: called on the boot CPU before any guest runs: no entry code
    // reads the block concurrently.
    unsafe { (*block.get()).floor_on = 1 };
}

const PERCPU_STACK_TOP: usize = core::mem::offset_of!(PerCpu, stack_top);
const PERCPU_SCRATCH: usize = core::mem::offset_of!(PerCpu, scratch_rsp);
const PERCPU_CPU: usize = core::mem::offset_of!(PerCpu, cpu);
const PERCPU_FLOOR: usize = core::mem::offset_of!(PerCpu, floor_on);
const NR_CPUS: usize = super::smp::MAX_CPUS as usize;

struct PerCpuBlocks([UnsafeCell<PerCpu>; NR_CPUS]);
// SAFETY: block `n` is written once by CPU `n` in `init_cpu`, before its
// GS base points at it; afterwards only that CPU's entry code writes it
// (the scratch slot) and everyone else only reads `stack_top`/`cpu`.
unsafe impl Sync for PerCpuBlocks {}
static PERCPU: PerCpuBlocks = PerCpuBlocks([const { UnsafeCell::new(PerCpu { stack_top: 0, scratch_rsp: 0, cpu: 0, floor_on: 0 }) }; NR_CPUS]);

core::arch::global_asm!(
    r#"
    .text
    .global syscall_entry
syscall_entry:
    swapgs
    mov %rsp, %gs:{scratch}
    mov %gs:{stack_top}, %rsp
    push ${ss}                      /* SS */
    push %gs:{scratch}              /* RSP */
    push %r11                       /* RFLAGS */
    push ${cs}                      /* CS */
    push %rcx                       /* RIP */
    cmp ${floor}, %rax              /* the benchmark floor, if on */
    je 2f
1:  push $0                         /* error code */
    push ${vec}                     /* entry vector */
    jmp save_all_and_dispatch
2:  cmpq $0, %gs:{floor_on}
    je 1b
    sar $47, %rcx                   /* the return RIP must be canonical: */
    jz 3f                           /* bits 63..47 all clear */
    cmp $-1, %rcx
    je 3f                           /* or all set */
    mov (%rsp), %rcx                /* else the normal path (which */
    jmp 1b                          /* crashes such a guest) */
3:  mov (%rsp), %rcx
    swapgs
    iretq

    .global enter_guest_frame
enter_guest_frame:
    mov %rdi, %rsp
    jmp guest_return_path

/*
 * #DB, on its own IST stack. From ring 0 it stays there (the hypervisor
 * notes it and returns; GS may still be the guest's if it came before the
 * SYSCALL entry's swapgs). From a guest, the CPU's frame moves to the top
 * of the ring-0 stack, where every guest frame lives, so that a #DB the
 * hypervisor meets while handling it cannot overwrite it; then it goes on
 * as any exception.
 */
    .balign 16
    .global exception_stub_1
exception_stub_1:
    testb $3, 8(%rsp)               /* CS of the interrupted context */
    jz 4f
    swapgs
    mov %rax, %gs:{scratch}
    mov %rsp, %rax
    mov %gs:{stack_top}, %rsp
    push 32(%rax)                   /* SS */
    push 24(%rax)                   /* RSP */
    push 16(%rax)                   /* RFLAGS */
    push 8(%rax)                    /* CS */
    push (%rax)                     /* RIP */
    mov %gs:{scratch}, %rax
    swapgs
4:  push $0                         /* error code */
    push $1                         /* vector */
    jmp exception_common
    "#,
    scratch = const PERCPU_SCRATCH,
    stack_top = const PERCPU_STACK_TOP,
    ss = const FLAT_RING3_DS,
    cs = const FLAT_RING3_CS64,
    vec = const ENTRY_SYSCALL,
    floor = const FLOOR_NR,
    floor_on = const PERCPU_FLOOR,
    options(att_syntax)
);

unsafe extern "C" {
    fn syscall_entry();
    fn enter_guest_frame(frame: *mut CpuUserRegs) -> !;
}

/// Program SYSCALL and the per-CPU block of CPU `cpu` (on that CPU),
/// whose ring-0 stack tops at `stack_top`.
pub fn init_cpu(cpu: usize, stack_top: u64) {
    let Some(block) = PERCPU.0.get(cpu) else { return };
    let percpu = block.get();
    let floor_on = u64::from(FLOOR_ON.load(core::sync::atomic::Ordering::SeqCst));
    // SAFETY: only this CPU writes its block, once, before GS points at it.
    unsafe { *percpu = PerCpu { stack_top, scratch_rsp: 0, cpu: cpu as u64, floor_on } };
    let star = (u64::from(FLAT_RING3_DS - 8) << 48) | (u64::from(HYPERVISOR_CS) << 32);
    // RFLAGS bits cleared on SYSCALL: TF, IF, DF, IOPL, NT, AC.
    let sfmask = (1 << 8) | (1 << 9) | (1 << 10) | (3 << 12) | (1 << 14) | (1 << 18);
    // SAFETY: these MSRs exist on every x86_64 CPU; LSTAR points at our
    // entry stub, STAR's selectors match the GDT (SYSRET's user base has
    // RPL 3), and GS_BASE points at this CPU's static per-CPU block.
    unsafe {
        wrmsr(MSR_STAR, star);
        wrmsr(MSR_LSTAR, syscall_entry as *const () as u64);
        wrmsr(MSR_SFMASK, sfmask);
        wrmsr(MSR_GS_BASE, percpu as u64);
        wrmsr(MSR_KERNEL_GS_BASE, 0);
        wrmsr(cpu::MSR_EFER, rdmsr(cpu::MSR_EFER) | EFER_SCE);
    }
}

/// Program SYSCALL and the per-CPU block on the boot CPU.
pub fn init_bsp() {
    init_cpu(0, super::gdt::ring0_stack_top(0));
}

/// The number of the CPU running this code (0 before `init_cpu`).
pub fn this_cpu() -> usize {
    let cpu: u64;
    // SAFETY: while the hypervisor runs, GS_BASE points at this CPU's
    // block (set in `init_cpu` before any caller; entries from guests swap
    // it back in), and the read has no side effect.
    unsafe { core::arch::asm!("mov {}, gs:[{off}]", out(reg) cpu, off = const PERCPU_CPU, options(nostack, readonly, preserves_flags)) };
    cpu as usize
}

/// The guest register frame of the current CPU (top of its ring-0 stack).
pub fn guest_frame() -> *mut CpuUserRegs {
    let top = super::gdt::ring0_stack_top(this_cpu());
    (top - core::mem::size_of::<CpuUserRegs>() as u64) as *mut CpuUserRegs
}

/// Segment bases a guest runs with.
#[derive(Clone, Copy, Debug, Default)]
pub struct GuestBases {
    /// FS base.
    pub fs: u64,
    /// GS base active in the guest's current mode.
    pub gs: u64,
}

/// Load the guest's FS base and (into KERNEL_GS_BASE, swapped in on exit)
/// its GS base.
pub fn load_guest_bases(b: GuestBases) {
    // SAFETY: FS_BASE and KERNEL_GS_BASE only affect the guest's segments;
    // the caller passes canonical values (checked by set_segment_base).
    unsafe {
        wrmsr(MSR_FS_BASE, b.fs);
        wrmsr(MSR_KERNEL_GS_BASE, b.gs);
    }
}

/// Enter a guest for the first time with `regs`, on this CPU's ring-0
/// stack. Never returns: the boot stack is abandoned.
pub fn enter_guest(regs: &CpuUserRegs) -> ! {
    let frame = guest_frame();
    // SAFETY: the frame lies at the top of this CPU's ring-0 stack, which is
    // not in use (we run on the boot stack); `enter_guest_frame` switches to
    // it and IRETQs with the sanitised registers.
    unsafe {
        frame.write(*regs);
        enter_guest_frame(frame)
    }
}

/// Remove PIC interrupts: remap both 8259s away from the exception vectors
/// and mask every line, so nothing arrives while guests run with IF set.
pub fn quiesce_pic() {
    let cmds: [(u16, u8); 10] =
        [(0x20, 0x11), (0xa0, 0x11), (0x21, 0x20), (0xa1, 0x28), (0x21, 4), (0xa1, 2), (0x21, 1), (0xa1, 1), (0x21, 0xff), (0xa1, 0xff)];
    for (port, val) in cmds {
        // SAFETY: the legacy PICs belong to the hypervisor; this is the
        // standard remap-and-mask sequence.
        unsafe { cpu::outb(port, val) };
    }
}
