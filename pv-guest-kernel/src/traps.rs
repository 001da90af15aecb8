//! The guest's trap table: entry stubs for the exception vectors, the
//! frame Xen bounces them with, probe fixups, the syscall callback, and the
//! way into user mode.
//!
//! Xen delivers an exception on the guest kernel stack as
//! `{RCX, R11, [ERRCODE], RIP, CS, RFLAGS, RSP, SS}`; the stubs restore RCX
//! and R11, save the rest into a [`GuestTrapFrame`] and return with the
//! `iret` hypercall. Invariant: a trap at a registered probe instruction
//! resumes at its fixup; any other trap is reported and crashes the domain.

use crate::hypercall;
use core::sync::atomic::{AtomicU64, Ordering};
use xen_public::SHUTDOWN_CRASH;
use xen_public::vcpu::TrapInfo;

/// Registers saved by the stubs (lowest address first).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
#[allow(missing_docs)]
pub struct GuestTrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

macro_rules! guest_stubs {
    (no_error_code: $($a:literal),*; error_code: $($b:literal),*) => {
        core::arch::global_asm!(
            ".text",
            $( concat!(".balign 16\nguest_trap_", $a, ":\n pop %rcx\n pop %r11\n push $0\n push $", $a,
                       "\n jmp guest_trap_common"), )*
            $( concat!(".balign 16\nguest_trap_", $b, ":\n pop %rcx\n pop %r11\n push $", $b,
                       "\n jmp guest_trap_common"), )*
            ".section .rodata.guest_traps, \"a\"",
            ".balign 8",
            ".global guest_trap_stubs",
            "guest_trap_stubs:",
            ".irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19",
            ".quad guest_trap_\\n",
            ".endr",
            ".text",
            options(att_syntax)
        );
    };
}

guest_stubs!(
    no_error_code: 0, 1, 2, 3, 4, 5, 6, 7, 9, 15, 16, 18, 19;
    error_code: 8, 10, 11, 12, 13, 14, 17
);

core::arch::global_asm!(
    ".text",
    ".balign 16\nguest_trap_32:\n pop %rcx\n pop %r11\n push $0\n push $32\n jmp guest_trap_common",
    ".balign 16\nguest_trap_128:\n pop %rcx\n pop %r11\n push $0\n push $128\n jmp guest_trap_common",
    ".global guest_trap_32",
    ".global guest_trap_128",
    options(att_syntax)
);

core::arch::global_asm!(
    r#"
    .text
guest_trap_common:
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
    call {dispatch}
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
    add $16, %rsp                   /* vector, error code */
    push $0                         /* iret flags */
    jmp hypercall_page + {iret} * 32

    /*
     * Probes: one instruction that may trap, between `guest_probe_X` and
     * `guest_probe_X_end`; they return 0, or 1 through the fixup if the
     * instruction trapped. RDI is the probe's argument.
     */
    .macro probe name, insn:vararg
    .global guest_probe_\name
    .global guest_probe_\name\()_end
guest_probe_\name:
    \insn
guest_probe_\name\()_end:
    xor %eax, %eax
    ret
    .endm
    probe read, mov (%rdi), %rax
    probe write, movq $0, (%rdi)
    probe int3, int3
    probe ud2, ud2
    probe div0, div %rdi
    probe lidt, lidt (%rdi)
    probe int32, int $0x20
    probe int128, int $0x80
    probe sse, movaps %xmm0, %xmm1
    probe fs_read, mov %fs:0, %rax
    probe gs_read, mov %gs:0, %rax
    /* Port I/O (a PV kernel runs in ring 3: each raises #GP, which the
     * hypervisor emulates or delivers). Results go to guest_probe_value.
     * Spelled out: a `;` in the `probe` macro's argument would end it. */
    .global guest_probe_in80
    .global guest_probe_in80_end
guest_probe_in80:
    in $0x80, %al
guest_probe_in80_end:
    xor %eax, %eax
    ret
    .global guest_probe_inb_dx
    .global guest_probe_inb_dx_end
guest_probe_inb_dx:
    mov %edi, %edx
    in %dx, %al
    movzbl %al, %eax
    mov %rax, guest_probe_value(%rip)
guest_probe_inb_dx_end:
    xor %eax, %eax
    ret
    .global guest_probe_outb_dx
    .global guest_probe_outb_dx_end
guest_probe_outb_dx:
    mov %edi, %edx
    mov guest_probe_arg2(%rip), %rax
    out %al, %dx
guest_probe_outb_dx_end:
    xor %eax, %eax
    ret
    .global guest_probe_inl_dx
    .global guest_probe_inl_dx_end
guest_probe_inl_dx:
    mov %edi, %edx
    in %dx, %eax
    mov %rax, guest_probe_value(%rip)
guest_probe_inl_dx_end:
    xor %eax, %eax
    ret
    .global guest_probe_outl_cf8
    .global guest_probe_outl_cf8_end
guest_probe_outl_cf8:
    mov %edi, %eax
    mov $0xcf8, %edx
    out %eax, %dx
guest_probe_outl_cf8_end:
    xor %eax, %eax
    ret
    .global guest_probe_rep_insb_huge
    .global guest_probe_rep_insb_huge_end
guest_probe_rep_insb_huge:
    mov $0x80, %edx
    movabs $0x100000000, %rcx
    rep insb
    mov %rcx, guest_probe_value(%rip)
guest_probe_rep_insb_huge_end:
    xor %eax, %eax
    ret
    .global guest_probe_rep_insb_one
    .global guest_probe_rep_insb_one_end
guest_probe_rep_insb_one:
    mov $0x80, %edx
    mov $1, %ecx
    rep insb
guest_probe_rep_insb_one_end:
    xor %eax, %eax
    ret
    .global guest_probe_outsb_one
    .global guest_probe_outsb_one_end
guest_probe_outsb_one:
    mov %rdi, %rsi
    mov $0x80, %edx
    outsb
guest_probe_outsb_one_end:
    xor %eax, %eax
    ret
    .global guest_probe_rep_outsb_64k
    .global guest_probe_rep_outsb_64k_end
guest_probe_rep_outsb_64k:
    mov %rdi, %rsi
    mov $0x80, %edx
    mov $0x10000, %ecx
    rep outsb
    mov %rsi, guest_probe_value(%rip)
guest_probe_rep_outsb_64k_end:
    xor %eax, %eax
    ret
    /* Privileged instructions a PV kernel (ring 3) gets emulated. Results
     * go to guest_probe_value (EDX:EAX, or the register read) and, for
     * cpuid, guest_probe_regs. */
    .global guest_probe_rdmsr
    .global guest_probe_rdmsr_end
guest_probe_rdmsr:
    mov %edi, %ecx
    rdmsr
    shl $32, %rdx
    mov %eax, %eax
    or %rdx, %rax
    mov %rax, guest_probe_value(%rip)
guest_probe_rdmsr_end:
    xor %eax, %eax
    ret
    .global guest_probe_wrmsr
    .global guest_probe_wrmsr_end
guest_probe_wrmsr:
    mov guest_probe_arg2(%rip), %rax
    mov %rax, %rdx
    shr $32, %rdx
    mov %edi, %ecx
    wrmsr
guest_probe_wrmsr_end:
    xor %eax, %eax
    ret
    .global guest_probe_read_cr0
    .global guest_probe_read_cr0_end
guest_probe_read_cr0:
    mov %cr0, %rax
    mov %rax, guest_probe_value(%rip)
guest_probe_read_cr0_end:
    xor %eax, %eax
    ret
    .global guest_probe_read_cr3
    .global guest_probe_read_cr3_end
guest_probe_read_cr3:
    mov %cr3, %rax
    mov %rax, guest_probe_value(%rip)
guest_probe_read_cr3_end:
    xor %eax, %eax
    ret
    .global guest_probe_read_cr4
    .global guest_probe_read_cr4_end
guest_probe_read_cr4:
    mov %cr4, %rax
    mov %rax, guest_probe_value(%rip)
guest_probe_read_cr4_end:
    xor %eax, %eax
    ret
    probe write_cr4, mov %rdi, %cr4
    probe clts, clts
    probe wbinvd, wbinvd
    probe rdtsc, rdtsc
    probe cli, cli
    probe sti, sti
    probe write_cr2, mov %rdi, %cr2
    probe write_dr7, mov %rdi, %db7
    probe write_cr3, mov %rdi, %cr3
    .global guest_probe_mov_ss_syscall
    .global guest_probe_mov_ss_syscall_end
guest_probe_mov_ss_syscall:
    mov %rdi, %rsi
    xor %edi, %edi
    mov $17, %eax
    mov (%rsi), %ss
    syscall
    mov %rax, guest_probe_value(%rip)
guest_probe_mov_ss_syscall_end:
    xor %eax, %eax
    ret
    .global guest_probe_read_dr4
    .global guest_probe_read_dr4_end
guest_probe_read_dr4:
    mov %db4, %rax
    mov %rax, guest_probe_value(%rip)
guest_probe_read_dr4_end:
    xor %eax, %eax
    ret
    .global guest_probe_read_cr2
    .global guest_probe_read_cr2_end
guest_probe_read_cr2:
    mov %cr2, %rax
    mov %rax, guest_probe_value(%rip)
guest_probe_read_cr2_end:
    xor %eax, %eax
    ret
    probe read_cr8, mov %cr8, %rax
    .global guest_probe_rdpmc
    .global guest_probe_rdpmc_end
guest_probe_rdpmc:
    xor %ecx, %ecx
    rdpmc
guest_probe_rdpmc_end:
    xor %eax, %eax
    ret
    .global guest_probe_cr0_clear_pg
    .global guest_probe_cr0_clear_pg_end
guest_probe_cr0_clear_pg:
    mov %cr0, %rax
    btr $31, %rax
    mov %rax, %cr0
guest_probe_cr0_clear_pg_end:
    xor %eax, %eax
    ret
    .global guest_probe_forced_cpuid
    .global guest_probe_forced_cpuid_end
guest_probe_forced_cpuid:
    mov %rbx, %r8
    mov %edi, %eax
    xor %ecx, %ecx
    ud2
    .ascii "xen"
    cpuid
    mov %rax, guest_probe_regs(%rip)
    mov %rbx, guest_probe_regs+8(%rip)
    mov %rcx, guest_probe_regs+16(%rip)
    mov %rdx, guest_probe_regs+24(%rip)
    mov %r8, %rbx
guest_probe_forced_cpuid_end:
    xor %eax, %eax
    ret
    .pushsection .data
    .balign 8
    .global guest_probe_arg2
guest_probe_arg2:
    .quad 0
    .global guest_probe_regs
guest_probe_regs:
    .quad 0, 0, 0, 0
    .popsection
    .pushsection .data
    .balign 8
    .global guest_probe_value
guest_probe_value:
    .quad 0
    .popsection
    .global guest_probe_fixup
guest_probe_fixup:
    mov $1, %eax
    ret

    /* SYSCALL from user mode, bounced by the hypervisor. */
    .global guest_syscall_entry
guest_syscall_entry:
    pop %rcx
    pop %r11
    mov %rax, %rdi
    mov %rsp, %rsi                  /* RIP, CS, RFLAGS, RSP, SS */
    call {syscall}
    ud2

    /* User-mode programs (position independent, never crossing a page). */
    .balign 64
    .global guest_user_program
guest_user_program:
    mov ${magic}, %eax
    syscall
    ud2
    .balign 64
    .global guest_user_read
guest_user_read:
    mov (%rdi), %rax
    ud2

    /* Enter user mode: RDI = rip, RSI = rsp, RDX = the program's RDI. */
    .global guest_enter_user
guest_enter_user:
    push ${ss}
    push %rsi
    push $0x202
    push ${cs}
    push %rdi
    push $0                         /* iret flags */
    mov %rdx, %rdi
    jmp hypercall_page + {iret} * 32
    "#,
    dispatch = sym guest_trap_dispatch,
    syscall = sym guest_syscall_dispatch,
    iret = const xen_public::hypercall::IRET,
    magic = const USER_SYSCALL_MAGIC,
    ss = const xen_public::FLAT_USER_SS64,
    cs = const xen_public::FLAT_USER_CS64,
    options(att_syntax)
);

/// The probe instructions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// Read 8 bytes at the argument.
    Read,
    /// Write 8 bytes at the argument.
    Write,
    /// `int3`.
    Int3,
    /// `ud2`.
    Ud2,
    /// Divide by the argument (0 raises #DE).
    Div,
    /// `lidt` from the argument (privileged: #GP in ring 3).
    Lidt,
    /// `int $0x20`.
    Int32,
    /// `int $0x80`.
    Int128,
    /// An SSE register move (#NM while CR0.TS is set).
    Sse,
    /// Read `%fs:0`.
    FsRead,
    /// Read `%gs:0`.
    GsRead,
    /// `in $0x80, %al`.
    In80,
    /// `in %dx, %al` of port `arg` ([`probe_value`] gets the byte).
    InbDx,
    /// `in %dx, %eax` of port `arg` (two bytes of setup before the `in`).
    InlDx,
    /// `out %eax, %dx` of `arg` to 0xcf8.
    OutlCf8,
    /// `rep insb` from port 0x80 to `arg` with RCX = 2^32 (the `rep insb`
    /// is at offset 15; [`probe_value`] gets RCX after it).
    RepInsbHuge,
    /// `rep insb` from port 0x80 to `arg`, RCX = 1 (`rep insb` at offset 10).
    RepInsbOne,
    /// `outsb` from `arg` to port 0x80 (`outsb` at offset 8).
    OutsbOne,
    /// `rep outsb` of 64 KiB from `arg` to port 0x80 ([`probe_value`]
    /// gets RSI after it).
    RepOutsb64k,
    /// `rdmsr` of MSR `arg` (at offset 2; [`probe_value`] gets EDX:EAX).
    Rdmsr,
    /// `wrmsr` of MSR `arg` with the value given to [`probe2`] (at
    /// offset 16).
    Wrmsr,
    /// `mov %cr0, %rax` ([`probe_value`] gets it).
    ReadCr0,
    /// `mov %cr3, %rax`.
    ReadCr3,
    /// `mov %cr4, %rax`.
    ReadCr4,
    /// `mov %rdi, %cr4` (arg: the new CR4).
    WriteCr4,
    /// `clts`.
    Clts,
    /// `wbinvd`.
    Wbinvd,
    /// Xen's forced-emulation CPUID of leaf `arg`, sub-leaf 0 (the `ud2`
    /// at offset 7; [`probe_regs`] gets EAX, EBX, ECX, EDX).
    ForcedCpuid,
    /// Writable page tables (`conformance/cases/ptwr.rs`, which has the
    /// code): `mov`, `xchg`, `lock cmpxchg` and `lock btrq $1` at `arg`.
    PtwrMov,
    /// See [`Probe::PtwrMov`].
    PtwrXchg,
    /// See [`Probe::PtwrMov`].
    PtwrCmpxchg,
    /// See [`Probe::PtwrMov`].
    PtwrBtr,
    /// `lock andb $0xfd` at `arg` (see [`Probe::PtwrMov`]).
    PtwrAndb,
    /// `rdtsc`.
    Rdtsc,
    /// `cli`.
    Cli,
    /// `sti`.
    Sti,
    /// `mov %rdi, %cr2` of `arg`.
    WriteCr2,
    /// `mov %cr2, %rax` ([`probe_value`] gets it).
    ReadCr2,
    /// `mov %cr8, %rax`.
    ReadCr8,
    /// `rdpmc` of counter 0 (at offset 2).
    Rdpmc,
    /// `mov %cr0, %rax`, clear PG, `mov %rax, %cr0` (the write at offset 8).
    Cr0ClearPg,
    /// `mov %rdi, %dr7` of `arg`.
    WriteDr7,
    /// `mov %dr4, %rax` ([`probe_value`] gets it).
    ReadDr4,
    /// `mov (arg), %ss` then a `syscall` of xen_version(XENVER_version)
    /// ([`probe_value`] gets its result): a #DB raised by the `mov %ss` is
    /// delayed past the `syscall` on hardware.
    MovSsSyscall,
    /// `mov %rdi, %cr3` of `arg`.
    WriteCr3,
    /// `out %al, %dx` to port `arg` of the byte given to [`probe2`] (the
    /// `out` at offset 10).
    OutbDx,
}

macro_rules! probe_syms {
    ($($variant:ident => $start:ident, $end:ident;)*) => {
        unsafe extern "C" {
            $( fn $start(arg: u64) -> u64; fn $end(); )*
        }
        /// `(start, end)` addresses of a probe's instruction.
        fn probe_range(p: Probe) -> (u64, u64) {
            match p { $( Probe::$variant => ($start as *const () as u64, $end as *const () as u64), )* }
        }
        /// Run a probe's instruction; nonzero if it trapped.
        fn probe_call(p: Probe, arg: u64) -> u64 {
            // SAFETY: each probe is one instruction whose trap, if any, the
            // trap handler resumes at the fixup, which returns 1.
            match p { $( Probe::$variant => unsafe { $start(arg) }, )* }
        }
        const ALL_PROBES: &[Probe] = &[$( Probe::$variant, )*];
    };
}

probe_syms! {
    Read => guest_probe_read, guest_probe_read_end;
    Write => guest_probe_write, guest_probe_write_end;
    Int3 => guest_probe_int3, guest_probe_int3_end;
    Ud2 => guest_probe_ud2, guest_probe_ud2_end;
    Div => guest_probe_div0, guest_probe_div0_end;
    Lidt => guest_probe_lidt, guest_probe_lidt_end;
    Int32 => guest_probe_int32, guest_probe_int32_end;
    Int128 => guest_probe_int128, guest_probe_int128_end;
    Sse => guest_probe_sse, guest_probe_sse_end;
    FsRead => guest_probe_fs_read, guest_probe_fs_read_end;
    GsRead => guest_probe_gs_read, guest_probe_gs_read_end;
    In80 => guest_probe_in80, guest_probe_in80_end;
    InbDx => guest_probe_inb_dx, guest_probe_inb_dx_end;
    InlDx => guest_probe_inl_dx, guest_probe_inl_dx_end;
    OutlCf8 => guest_probe_outl_cf8, guest_probe_outl_cf8_end;
    RepInsbHuge => guest_probe_rep_insb_huge, guest_probe_rep_insb_huge_end;
    RepInsbOne => guest_probe_rep_insb_one, guest_probe_rep_insb_one_end;
    OutsbOne => guest_probe_outsb_one, guest_probe_outsb_one_end;
    RepOutsb64k => guest_probe_rep_outsb_64k, guest_probe_rep_outsb_64k_end;
    Rdmsr => guest_probe_rdmsr, guest_probe_rdmsr_end;
    Wrmsr => guest_probe_wrmsr, guest_probe_wrmsr_end;
    ReadCr0 => guest_probe_read_cr0, guest_probe_read_cr0_end;
    ReadCr3 => guest_probe_read_cr3, guest_probe_read_cr3_end;
    ReadCr4 => guest_probe_read_cr4, guest_probe_read_cr4_end;
    WriteCr4 => guest_probe_write_cr4, guest_probe_write_cr4_end;
    Clts => guest_probe_clts, guest_probe_clts_end;
    Wbinvd => guest_probe_wbinvd, guest_probe_wbinvd_end;
    ForcedCpuid => guest_probe_forced_cpuid, guest_probe_forced_cpuid_end;
    PtwrMov => guest_probe_ptwr_mov, guest_probe_ptwr_mov_end;
    PtwrXchg => guest_probe_ptwr_xchg, guest_probe_ptwr_xchg_end;
    PtwrCmpxchg => guest_probe_ptwr_cmpxchg, guest_probe_ptwr_cmpxchg_end;
    PtwrBtr => guest_probe_ptwr_btr, guest_probe_ptwr_btr_end;
    PtwrAndb => guest_probe_ptwr_andb, guest_probe_ptwr_andb_end;
    Rdtsc => guest_probe_rdtsc, guest_probe_rdtsc_end;
    Cli => guest_probe_cli, guest_probe_cli_end;
    Sti => guest_probe_sti, guest_probe_sti_end;
    WriteCr2 => guest_probe_write_cr2, guest_probe_write_cr2_end;
    ReadCr2 => guest_probe_read_cr2, guest_probe_read_cr2_end;
    ReadCr8 => guest_probe_read_cr8, guest_probe_read_cr8_end;
    Rdpmc => guest_probe_rdpmc, guest_probe_rdpmc_end;
    Cr0ClearPg => guest_probe_cr0_clear_pg, guest_probe_cr0_clear_pg_end;
    WriteDr7 => guest_probe_write_dr7, guest_probe_write_dr7_end;
    ReadDr4 => guest_probe_read_dr4, guest_probe_read_dr4_end;
    MovSsSyscall => guest_probe_mov_ss_syscall, guest_probe_mov_ss_syscall_end;
    WriteCr3 => guest_probe_write_cr3, guest_probe_write_cr3_end;
    OutbDx => guest_probe_outb_dx, guest_probe_outb_dx_end;
}

unsafe extern "C" {
    static guest_probe_value: u64;
    static mut guest_probe_arg2: u64;
    static guest_probe_regs: [u64; 4];
}

/// Run a probe that takes a second argument (the value for
/// [`Probe::Wrmsr`]).
pub fn probe2(p: Probe, arg: u64, arg2: u64) -> Result<(), Caught> {
    // SAFETY: a plain u64 in .data, read only by the probes on this
    // (single) vCPU.
    unsafe { core::ptr::write_volatile(&raw mut guest_probe_arg2, arg2) };
    probe(p, arg)
}

/// EAX, EBX, ECX, EDX of the last [`Probe::ForcedCpuid`].
pub fn probe_regs() -> [u64; 4] {
    // SAFETY: plain u64s in .data written only by that probe.
    unsafe { core::ptr::read_volatile(&raw const guest_probe_regs) }
}

/// What the last value-producing probe stored (see [`Probe`]).
pub fn probe_value() -> u64 {
    // SAFETY: a plain u64 in .data, written only by the probes on this
    // (single) vCPU; a volatile read sees their store.
    unsafe { core::ptr::read_volatile(&raw const guest_probe_value) }
}

unsafe extern "C" {
    static guest_trap_stubs: [u64; 20];
    fn guest_trap_32();
    fn guest_trap_128();
    fn guest_probe_fixup();
    fn guest_syscall_entry();
    fn guest_user_program();
    fn guest_user_read();
    fn guest_enter_user(rip: u64, rsp: u64, arg: u64) -> !;
}

/// RAX the user-mode test program passes to SYSCALL.
pub const USER_SYSCALL_MAGIC: u64 = 0x5ca11;

/// The last trap a probe caught.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caught {
    /// Vector.
    pub vector: u64,
    /// Error code.
    pub error_code: u64,
    /// `vcpu_info.arch.cr2` at the time (0 if shared_info is not mapped).
    pub cr2: u64,
    /// Offset of the reported RIP from the probe instruction (0 for a
    /// fault, the instruction length for a trap).
    pub rip_offset: u64,
}

static CAUGHT_VECTOR: AtomicU64 = AtomicU64::new(u64::MAX);
static CAUGHT_ERROR: AtomicU64 = AtomicU64::new(0);
static CAUGHT_CR2: AtomicU64 = AtomicU64::new(0);
static CAUGHT_RIP_OFFSET: AtomicU64 = AtomicU64::new(0);

/// The trap-table entry for a vector with the runtime's handler, if it has
/// one (0-19, 0x20, 0x80).
pub fn handler_entry(vector: u8, dpl: u8) -> Option<TrapInfo> {
    let address = match vector {
        // SAFETY: the stub table is defined in the asm above, in .rodata.
        0..=19 => unsafe { guest_trap_stubs[vector as usize] },
        32 => guest_trap_32 as *const () as u64,
        128 => guest_trap_128 as *const () as u64,
        _ => return None,
    };
    Some(TrapInfo { vector, flags: dpl, cs: xen_public::FLAT_KERNEL_CS64, _pad0: 0, address })
}

/// Run a probe: `Ok` if its instruction completed, `Err` with what the
/// hypervisor delivered if it trapped.
pub fn probe(p: Probe, arg: u64) -> Result<(), Caught> {
    CAUGHT_VECTOR.store(u64::MAX, Ordering::Relaxed);
    if probe_call(p, arg) == 0 {
        return Ok(());
    }
    Err(Caught {
        vector: CAUGHT_VECTOR.load(Ordering::Relaxed),
        error_code: CAUGHT_ERROR.load(Ordering::Relaxed),
        cr2: CAUGHT_CR2.load(Ordering::Relaxed),
        rip_offset: CAUGHT_RIP_OFFSET.load(Ordering::Relaxed),
    })
}

/// Register handlers for vectors 0-19 with the hypervisor.
pub fn install() -> i64 {
    let mut table = [TrapInfo::default(); 21];
    for v in 0..20u8 {
        // #BP and #OF may be raised from user mode (DPL 3).
        let dpl = if v == 3 || v == 4 { 3 } else { 0 };
        table[v as usize] = handler_entry(v, dpl).unwrap_or_default();
    }
    hypercall::set_trap_table(&table)
}

/// Read 8 bytes at `addr`, catching a fault: `Err(caught)` if it trapped.
pub fn probe_read(addr: u64) -> Result<(), Caught> {
    probe(Probe::Read, addr)
}

/// Where a trap raised in guest user mode goes, if set: `fn(vector,
/// error_code, cr2) -> !`.
static USER_TRAP_HOOK: AtomicU64 = AtomicU64::new(0);

/// Send traps from user mode to `hook` instead of crashing.
pub fn on_user_trap(hook: fn(u64, u64, u64) -> !) {
    USER_TRAP_HOOK.store(hook as *const () as u64, Ordering::Relaxed);
}

extern "C" fn guest_trap_dispatch(f: &mut GuestTrapFrame) {
    let cr2 = crate::shared::cr2().unwrap_or(0);
    let hook = USER_TRAP_HOOK.load(Ordering::Relaxed);
    if f.cs & 3 == 3 && hook != 0 {
        // SAFETY: only `on_user_trap` stores here, a `fn(u64, u64, u64) -> !`.
        let h: fn(u64, u64, u64) -> ! = unsafe { core::mem::transmute(hook as usize) };
        h(f.vector, f.error_code, cr2);
    }
    for &p in ALL_PROBES {
        let (start, end) = probe_range(p);
        if (start..=end).contains(&f.rip) {
            CAUGHT_VECTOR.store(f.vector, Ordering::Relaxed);
            CAUGHT_ERROR.store(f.error_code, Ordering::Relaxed);
            CAUGHT_CR2.store(cr2, Ordering::Relaxed);
            CAUGHT_RIP_OFFSET.store(f.rip - start, Ordering::Relaxed);
            f.rip = guest_probe_fixup as *const () as u64;
            return;
        }
    }
    crate::println!(
        "guest: unexpected trap {} error {:#x} at rip {:#x} cs {:#x} rsp {:#x} cr2 {:#x}",
        f.vector,
        f.error_code,
        f.rip,
        f.cs,
        f.rsp,
        cr2
    );
    loop {
        hypercall::shutdown(SHUTDOWN_CRASH);
    }
}

/// What the syscall callback does with a user-mode SYSCALL.
static SYSCALL_HOOK: AtomicU64 = AtomicU64::new(0);

extern "C" fn guest_syscall_dispatch(rax: u64, frame: *const [u64; 5]) -> ! {
    // SAFETY: the entry stub passes the bounce frame on our kernel stack.
    let [rip, cs, rflags, rsp, _ss] = unsafe { *frame };
    let hook = SYSCALL_HOOK.load(Ordering::Relaxed);
    if hook != 0 {
        // SAFETY: only `run_user_program` stores here, a `fn(u64, u64, u64) -> !`.
        let f: fn(u64, u64, u64) -> ! = unsafe { core::mem::transmute(hook as usize) };
        f(rax, rip, cs);
    }
    crate::println!("guest: SYSCALL from user mode rax {rax:#x} rip {rip:#x} rflags {rflags:#x} rsp {rsp:#x}");
    loop {
        hypercall::shutdown(SHUTDOWN_CRASH);
    }
}

/// Kernel stack for bounces from user mode.
#[repr(C, align(16))]
struct Stack([u8; 16384]);
static mut KERNEL_STACK: Stack = Stack([0; 16384]);
static mut USER_STACK: Stack = Stack([0; 16384]);

/// Run the built-in user-mode program, which issues SYSCALL with
/// [`USER_SYSCALL_MAGIC`]; `on_syscall(rax, user_rip, user_cs)` receives it
/// in kernel mode. Needs `l4_mfn`, the current L4, as the user page table.
pub fn run_user_program(l4_mfn: u64, on_syscall: fn(u64, u64, u64) -> !) -> i64 {
    const MMUEXT_NEW_USER_BASEPTR: u32 = 15;
    let rc = hypercall::mmuext_one(MMUEXT_NEW_USER_BASEPTR, l4_mfn, 0);
    if rc != 0 {
        return rc;
    }
    let ustack = core::ptr::addr_of!(USER_STACK) as u64 + 16384;
    enter_user(guest_user_program as *const () as u64, ustack, 0, on_syscall)
}

/// Which built-in user program to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserProgram {
    /// SYSCALL with [`USER_SYSCALL_MAGIC`].
    Syscall,
    /// Read 8 bytes at its argument.
    Read,
}

/// The guest virtual address and machine-independent offset of a user
/// program: `(address, offset in its page)`.
pub fn user_program(p: UserProgram) -> (u64, u64) {
    let va = match p {
        UserProgram::Syscall => guest_user_program as *const () as u64,
        UserProgram::Read => guest_user_read as *const () as u64,
    };
    (va, va & 0xfff)
}

/// Enter user mode at `rip` with stack `rsp` and RDI = `arg`, on whatever
/// user page tables are installed. The syscall callback and the user-trap
/// hook must be set; this never returns.
pub fn enter_user(rip: u64, rsp: u64, arg: u64, on_syscall: fn(u64, u64, u64) -> !) -> i64 {
    let rc = hypercall::register_callback(xen_public::callback::CALLBACKTYPE_SYSCALL, 0, guest_syscall_entry as *const () as u64);
    if rc != 0 {
        return rc;
    }
    let kstack = core::ptr::addr_of!(KERNEL_STACK) as u64 + 16384;
    let rc = hypercall::stack_switch(u64::from(xen_public::FLAT_KERNEL_SS64), kstack);
    if rc != 0 {
        return rc;
    }
    SYSCALL_HOOK.store(on_syscall as *const () as u64, Ordering::Relaxed);
    // SAFETY: the caller installed user page tables mapping `rip` and
    // `rsp`; every way out of user mode lands in a hook that never returns.
    unsafe { guest_enter_user(rip, rsp, arg) }
}
