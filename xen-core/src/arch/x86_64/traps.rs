//! The IDT, the exception and interrupt entry stubs, the trap frame, and
//! the one Rust entry every trap and SYSCALL goes through.
//!
//! Every vector 0-31 enters through a stub that pushes a uniform
//! [`TrapFrame`]; SYSCALL joins the same path (`entry.rs`). #DF, NMI and
//! #MC run on their own IST stacks, so even a fault with a broken stack
//! pointer is reported instead of escalating to a triple fault.
//! [`trap_dispatch`] acknowledges the hypervisor's own interrupts, counts
//! NMIs, and hands the rest to the layer above through the two functions
//! it registered ([`set_handlers`]): a [`GuestExit`] to `guest_exit`, a
//! fault of the hypervisor to `hypervisor_fault`. This module calls no
//! module above it.
//!
//! Invariant: the IDT is written once, before it is loaded, and read-only
//! afterwards; a guest exit reaches `guest_exit` exactly once.

use super::gdt::{HYPERVISOR_CS, IST_DEBUG, IST_DOUBLE_FAULT, IST_MACHINE_CHECK, IST_NMI};

/// Registers saved on entry, in stack order: the same layout as a
/// guest's saved state (Xen's `cpu_user_regs`).
pub type TrapFrame = crate::domain::vcpu::CpuUserRegs;

/// Exception vectors with stubs.
pub const NR_EXCEPTIONS: usize = 32;

/// Vector numbers.
pub mod vector {
    /// Debug exception.
    pub const DEBUG: u8 = 1;
    /// Non-maskable interrupt.
    pub const NMI: u8 = 2;
    /// Double fault.
    pub const DOUBLE_FAULT: u8 = 8;
    /// Page fault.
    pub const PAGE_FAULT: u8 = 14;
    /// Machine check.
    pub const MACHINE_CHECK: u8 = 18;
}

/// Short mnemonic and name of an exception vector.
pub fn vector_name(v: u64) -> (&'static str, &'static str) {
    match v {
        0 => ("#DE", "divide error"),
        1 => ("#DB", "debug"),
        2 => ("NMI", "non-maskable interrupt"),
        3 => ("#BP", "breakpoint"),
        4 => ("#OF", "overflow"),
        5 => ("#BR", "bound range"),
        6 => ("#UD", "invalid opcode"),
        7 => ("#NM", "device not available"),
        8 => ("#DF", "double fault"),
        10 => ("#TS", "invalid TSS"),
        11 => ("#NP", "segment not present"),
        12 => ("#SS", "stack-segment fault"),
        13 => ("#GP", "general protection"),
        14 => ("#PF", "page fault"),
        16 => ("#MF", "x87 floating point"),
        17 => ("#AC", "alignment check"),
        18 => ("#MC", "machine check"),
        19 => ("#XM", "SIMD floating point"),
        20 => ("#VE", "virtualization"),
        21 => ("#CP", "control protection"),
        0x100 => ("SYSCALL", "hypercall or syscall entry"),
        _ => ("#??", "reserved"),
    }
}

/// Emit one entry stub per exception vector. Vectors in the `error_code`
/// list get their error code from the CPU; the others push a 0 in its place,
/// so every frame has the same shape.
macro_rules! exception_stubs {
    (no_error_code: $($a:literal),*; error_code: $($b:literal),*) => {
        core::arch::global_asm!(
            ".text",
            $( concat!(".balign 16\nexception_stub_", $a, ":\n push $0\n push $", $a,
                       "\n jmp exception_common"), )*
            $( concat!(".balign 16\nexception_stub_", $b, ":\n push $", $b,
                       "\n jmp exception_common"), )*
            ".section .rodata.exception_stubs, \"a\"",
            ".balign 8",
            ".global exception_stub_table",
            "exception_stub_table:",
            ".irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31",
            ".quad exception_stub_\\n",
            ".endr",
            ".text",
            options(att_syntax)
        );

        /// Whether the CPU pushes an error code for exception `vector`
        /// (the same list the stubs are built from).
        pub const fn has_error_code(vector: u64) -> bool {
            matches!(vector, $($b)|*)
        }
    };
}

exception_stubs!(
    no_error_code: 0, 2, 3, 4, 5, 6, 7, 9, 15, 16, 18, 19, 20, 22, 23, 24, 25, 26, 27, 28, 31;
    error_code: 8, 10, 11, 12, 13, 14, 17, 21, 29, 30
);

core::arch::global_asm!(
    ".text",
    ".balign 16",
    ".global irq_stub_timer",
    "irq_stub_timer:",
    "  push $0",
    "  push $0xf0",
    "  jmp exception_common",
    ".balign 16",
    ".global irq_stub_kick",
    "irq_stub_kick:",
    "  push $0",
    "  push $0xf1",
    "  jmp exception_common",
    ".balign 16",
    ".global irq_stub_flush",
    "irq_stub_flush:",
    "  push $0",
    "  push $0xf2",
    "  jmp exception_common",
    ".balign 16",
    ".global irq_stub_spurious",
    "irq_stub_spurious:",
    "  iretq",
    options(att_syntax)
);

core::arch::global_asm!(
    r#"
    .text
/*
 * Common exception path. On entry the stack holds the stub's vector and
 * error code above the CPU's frame. Frames from ring 3 (guests) get a
 * swapgs on the way in and out, so GS always points at the per-CPU block
 * while the hypervisor runs. The SYSCALL entry joins at
 * `save_all_and_dispatch`; everything, including the first entry into a
 * guest, leaves through `guest_return_path`.
 */
    .global exception_common
exception_common:
    testb $3, 24(%rsp)              /* CS of the interrupted context */
    jz 1f
    swapgs
1:
    .global save_all_and_dispatch
save_all_and_dispatch:              /* the SYSCALL entry joins here */
    push %rax
    push %rbx
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %rbp
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, %rdi
    cld
    call {dispatch}
    .global guest_return_path
guest_return_path:
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rbp
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rbx
    pop %rax
    add $16, %rsp
    testb $3, 8(%rsp)
    jz 2f
    swapgs
2:  iretq
    "#,
    dispatch = sym trap_dispatch,
    options(att_syntax)
);

unsafe extern "C" {
    /// Stub addresses, indexed by vector (defined in the asm above).
    static exception_stub_table: [u64; NR_EXCEPTIONS];
    fn irq_stub_timer();
    fn irq_stub_kick();
    fn irq_stub_flush();
    fn irq_stub_spurious();
}

/// One 16-byte IDT gate.
#[repr(C)]
#[derive(Clone, Copy)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    _reserved: u32,
}

impl Gate {
    const EMPTY: Gate = Gate { offset_low: 0, selector: 0, ist: 0, type_attr: 0, offset_mid: 0, offset_high: 0, _reserved: 0 };

    /// A present 64-bit interrupt gate (IF cleared on entry) with a DPL.
    fn interrupt(handler: u64, ist: u8, dpl: u8) -> Gate {
        Gate {
            offset_low: handler as u16,
            selector: HYPERVISOR_CS,
            ist,
            type_attr: 0x8e | (dpl << 5),
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            _reserved: 0,
        }
    }
}

#[repr(C, align(4096))]
struct Idt([Gate; 256]);

static IDT: spin::Once<Idt> = spin::Once::new();

fn ist_for(vector: usize) -> u8 {
    match vector as u8 {
        vector::DOUBLE_FAULT => IST_DOUBLE_FAULT,
        vector::NMI => IST_NMI,
        vector::MACHINE_CHECK => IST_MACHINE_CHECK,
        vector::DEBUG => IST_DEBUG,
        _ => 0,
    }
}

/// Build the IDT (once).
pub fn init_idt() {
    IDT.call_once(|| {
        let mut idt = Idt([Gate::EMPTY; 256]);
        // SAFETY: the table is defined in the global_asm above, in .rodata,
        // with exactly NR_EXCEPTIONS entries.
        let stubs = unsafe { &exception_stub_table };
        for (v, &stub) in stubs.iter().enumerate() {
            // #BP and #OF are reachable from guests by `int3`/`into`, as on
            // Xen; every other `int n` from ring 3 raises #GP and is
            // emulated against the guest's trap table.
            let dpl = if v == 3 || v == 4 { 3 } else { 0 };
            idt.0[v] = Gate::interrupt(stub, ist_for(v), dpl);
        }
        idt.0[usize::from(super::apic::TIMER_VECTOR)] = Gate::interrupt(irq_stub_timer as *const () as u64, 0, 0);
        idt.0[usize::from(super::apic::KICK_VECTOR)] = Gate::interrupt(irq_stub_kick as *const () as u64, 0, 0);
        idt.0[usize::from(super::apic::FLUSH_VECTOR)] = Gate::interrupt(irq_stub_flush as *const () as u64, 0, 0);
        idt.0[usize::from(super::apic::SPURIOUS_VECTOR)] = Gate::interrupt(irq_stub_spurious as *const () as u64, 0, 0);
        idt
    });
}

/// Load the IDT on this CPU.
pub fn load_idt() {
    let Some(idt) = IDT.get() else { return };
    #[repr(C, packed)]
    struct Idtr {
        limit: u16,
        base: u64,
    }
    let idtr = Idtr { limit: (core::mem::size_of::<Idt>() - 1) as u16, base: idt as *const Idt as u64 };
    // SAFETY: the IDT is a static that is never written after `init_idt`,
    // and every gate in it points at a stub of this module.
    unsafe { core::arch::asm!("lidt [{}]", in(reg) &idtr, options(readonly, nostack, preserves_flags)) };
}

/// Why the CPU left a guest: what the trap entry hands to the layer above.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestExit {
    /// SYSCALL: a hypercall, or a system call of the guest's user mode.
    Syscall,
    /// The timer, kick or flush IPI (already acknowledged here).
    Interrupt,
    /// An exception raised by the guest (vector and error code in the frame).
    Exception,
}

/// Where the trap entry hands its work up, registered once at boot
/// ([`set_handlers`]). The layers above register; this module names none
/// of them, so the trap layer depends on nothing above it.
#[derive(Clone, Copy)]
pub struct ExitHandlers {
    /// A guest left the CPU. Returns with `frame` holding what to resume
    /// (the same vCPU or another), exactly once per exit.
    pub guest_exit: fn(GuestExit, &mut TrapFrame),
    /// An exception in the hypervisor itself, or #DF/#MC from anywhere.
    pub hypervisor_fault: fn(&TrapFrame) -> !,
}

static HANDLERS: spin::Once<ExitHandlers> = spin::Once::new();

/// Register the exit handlers (once, before the first guest runs).
pub fn set_handlers(h: ExitHandlers) {
    HANDLERS.call_once(|| h);
}

/// Whether `vector` is one of the hypervisor's own interrupts.
fn is_irq(vector: u64) -> bool {
    [super::apic::TIMER_VECTOR, super::apic::KICK_VECTOR, super::apic::FLUSH_VECTOR].iter().any(|&v| u64::from(v) == vector)
}

/// Acknowledge one of the hypervisor's interrupts: note a fired timer,
/// answer a flush request, EOI.
#[inline(never)]
fn ack_irq(vector: u64) {
    if vector == u64::from(super::apic::TIMER_VECTOR) {
        super::apic::timer_fired();
    }
    if vector == u64::from(super::apic::FLUSH_VECTOR) {
        super::remote_flush::answer();
    }
    super::apic::eoi();
}

/// NMIs received (the hypervisor has no NMI work: they are counted and
/// otherwise ignored).
pub static NMIS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// A trap the guest-exit path does not take: NMI (ignored, as the
/// hypervisor has no NMI work) or a fatal fault.
#[cold]
#[inline(never)]
fn other_trap(frame: &TrapFrame) {
    if frame.entry_vector == u64::from(vector::NMI) {
        // Counted, not printed: the NMI may have come while this CPU held
        // the console lock.
        NMIS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        return;
    }
    match HANDLERS.get() {
        Some(h) => (h.hypervisor_fault)(frame),
        None => super::cpu::halt_forever(),
    }
}

/// Common Rust entry for every exception, interrupt and SYSCALL: one way
/// in, one way out. An interrupt is acknowledged here; one that arrived
/// while the hypervisor halted (ring 0) ends there. A guest's exit goes to
/// the registered `guest_exit`, which resumes a guest once; everything
/// else is NMI or fatal ([`other_trap`]).
extern "C" fn trap_dispatch(frame: &mut TrapFrame) {
    let vector = frame.entry_vector;
    let from_guest = frame.cs & 3 == 3;
    // First, before anything that may use per-CPU data: a #DB in ring 0
    // may have come before the SYSCALL entry's `swapgs`.
    if vector == u64::from(vector::DEBUG) && !from_guest {
        return super::debugreg::hypervisor_debug_exception();
    }
    // Hypercalls first: the path every guest takes most. SYSCALL cleared
    // RFLAGS.AC already (SFMASK, `entry.rs`).
    if vector == crate::domain::vcpu::ENTRY_SYSCALL
        && from_guest
        && let Some(h) = HANDLERS.get()
    {
        return (h.guest_exit)(GuestExit::Syscall, frame);
    }
    // An exception or interrupt leaves AC as the guest had it.
    super::cpu::clear_ac();
    let reason = if is_irq(vector) {
        ack_irq(vector);
        GuestExit::Interrupt
    } else if vector == crate::domain::vcpu::ENTRY_SYSCALL {
        GuestExit::Syscall
    } else {
        GuestExit::Exception
    };
    let fatal = [vector::NMI, vector::DOUBLE_FAULT, vector::MACHINE_CHECK].iter().any(|&v| u64::from(v) == vector);
    if !from_guest && reason == GuestExit::Interrupt {
        return;
    }
    match HANDLERS.get() {
        Some(h) if from_guest && !fatal => (h.guest_exit)(reason, frame),
        _ => other_trap(frame),
    }
}
