//! Guest exits: what happens between a guest leaving the CPU (SYSCALL, an
//! exception, one of the hypervisor's interrupts) and a guest running
//! again.
//!
//! Invariant: every exit takes the hypervisor lock, is handled on the
//! vCPU that was running, and resumes a guest exactly once, through
//! [`exit_to_guest`]'s single call of `schedule::resume`, which may pick
//! another vCPU. Nothing here returns to a guest any other way.

use crate::arch::x86_64::cpu;
use crate::arch::x86_64::traps::{ExitHandlers, GuestExit, TrapFrame, has_error_code, vector_name};
use crate::domain::Domain;
use crate::domain::vcpu::{Bounce, CpuUserRegs, Vcpu};
use crate::hypercall;

/// Register the exit path and the hypervisor-fault path with the trap
/// layer (at boot, before anything can trap).
pub fn install_exit_handlers() {
    crate::arch::x86_64::traps::set_handlers(ExitHandlers { guest_exit: exit_to_guest, hypervisor_fault: crate::setup::hypervisor_fault });
}

/// The one way from a guest exit back to a guest.
fn exit_to_guest(reason: GuestExit, regs: &mut TrapFrame) {
    crate::schedule::big_lock();
    let Some(me) = crate::schedule::current_vcpu() else {
        crate::setup::fatal(format_args!("guest exit with no vCPU running"));
    };
    let mut guard = crate::schedule::DOMAINS[me.slot()].lock();
    let Some(g) = guard.as_mut() else {
        crate::setup::fatal(format_args!("guest exit with no guest running"));
    };
    let (v, d) = g.vcpu(me.vcpu_id());
    match reason {
        GuestExit::Syscall => syscall(v, d, regs),
        // Timers and events are looked at on every resume.
        GuestExit::Interrupt => {}
        GuestExit::Exception => exception(v, d, regs),
    }
    crate::schedule::resume(guard, me, regs);
}

/// SYSCALL: a hypercall from kernel mode, a bounce to the syscall callback
/// from user mode.
#[inline]
fn syscall(v: &mut Vcpu, d: &mut Domain, regs: &mut CpuUserRegs) {
    if v.kernel_mode {
        regs.rax = hypercall::dispatch(v, d, regs);
    } else {
        let b = v.syscall_bounce(regs);
        d.deliver(v, regs, b);
    }
}

/// An exception raised by the guest: reflected to its trap table, as Xen
/// does.
#[inline(never)]
fn exception(v: &mut Vcpu, d: &mut Domain, regs: &mut CpuUserRegs) {
    let vector = regs.entry_vector as u8;
    let (short, _) = vector_name(regs.entry_vector);
    log::debug!("d{} trap {vector} ({short}) err {:#x} at {:#x}", d.domid, regs.error_code, regs.rip);
    if vector == GP && regs.error_code & 3 == 2 && soft_interrupt(v, d, regs) {
        return;
    }
    // Xen's do_debug for guest mode: what the hardware's DR6 reports goes
    // into the guest's DR6 (which it reads with get_debugreg).
    if vector == DB {
        v.debug.note_debug_exception(crate::arch::x86_64::debugreg::take_dr6());
    }
    // Xen's do_general_protection: a #GP with error code 0 may be a
    // privileged instruction to emulate (port I/O, then the others).
    if vector == GP && regs.error_code == 0 && (port_io(v, d, regs) || priv_op(v, d, regs)) {
        return;
    }
    // Xen's do_invalid_op: `ud2; "xen"; cpuid` is the forced-emulation
    // CPUID (pv/emul-inv-op.c).
    if vector == UD && forced_cpuid(v, d, regs) {
        return;
    }
    if vector == PF {
        let cr2 = cpu::read_cr2();
        // Writable page tables (Xen's fixup_page_fault): a kernel write
        // to its own read-only L1 may be emulated instead.
        if hypercall::ptwr_fault(v, d, regs, cr2) {
            return;
        }
        d.set_guest_cr2(v, cr2);
    }
    // #NM exists for guests only through their virtual CR0.TS: deliver it
    // once and clear TS, as Xen does.
    if vector == NM {
        if !v.fpu_ts {
            return;
        }
        v.fpu_ts = false;
    }
    let ec = has_error_code(regs.entry_vector).then_some(regs.error_code);
    if crate::trace::on(xen_public::trace::TRC_PV_TRAP) {
        crate::trace::record(&xen_public::trace::Event::pv_trap(u32::from(vector), regs.rip, ec.is_some(), ec.unwrap_or(0) as u32));
    }
    raise(v, d, regs, vector, ec);
}

/// `int n` hits #GP with the IDT bit set: emulate it if the guest's trap
/// table allows it from the current mode (true: delivered). The vector
/// comes from the instruction itself (CD ib): QEMU's TCG reports it in the
/// error code as vector*16+2 instead of the architectural vector*8+2.
fn soft_interrupt(v: &mut Vcpu, d: &mut Domain, regs: &mut CpuUserRegs) -> bool {
    let mut insn = [0u8; 2];
    let decoded = v.current_mem().read(regs.rip, &mut insn).is_ok() && insn[0] == 0xcd;
    let soft = if decoded { insn[1] } else { (regs.error_code >> 3) as u8 };
    regs.error_code = (u64::from(soft) << 3) | 2;
    // Xen's `int $0x80` fast path delivers to a registered handler
    // whatever its DPL; other vectors need the DPL to allow the mode.
    let int80 = soft == 0x80 && v.traps[0x80].address != 0;
    if !(int80 || v.permits_softint(soft)) {
        return false;
    }
    regs.rip = regs.rip.wrapping_add(2);
    regs.entry_vector = u64::from(soft);
    let ti = v.traps[soft as usize];
    let b = Bounce { eip: ti.address, error_code: None, mask_events: ti.masks_events(), clear_df: false };
    d.deliver(v, regs, b);
    true
}

/// Repetitions of `ins`/`outs` one exit does at most; the rest restart the
/// instruction (Xen stops at `hypercall_preempt_check`).
const MAX_REPS_PER_EXIT: u64 = 256;

/// The exception vectors the exit path raises itself.
const DB: u8 = 1;
const UD: u8 = 6;
const NM: u8 = 7;
const GP: u8 = 13;
const PF: u8 = 14;

/// Bounce exception `vector` (with its error code, if it has one) to the
/// handler in `v`'s trap table.
fn raise(v: &mut Vcpu, d: &mut Domain, regs: &mut CpuUserRegs, vector: u8, error_code: Option<u64>) {
    let b = v.exception_bounce(vector, error_code);
    d.deliver(v, regs, b);
}

/// A #GP(0) that may come from `in`/`out`/`ins`/`outs`: emulate it as Xen's
/// emul-priv-op.c does (`domain/io_emul.rs`). True: handled (done, or an
/// exception of its own delivered); false: deliver the #GP as raised.
#[inline(never)]
fn port_io(v: &mut Vcpu, d: &mut Domain, regs: &mut CpuUserRegs) -> bool {
    use crate::domain::io_emul::{self, DomainIo, Emulated, IoEnv};
    // Only 64-bit flat code: a PV vCPU always runs on the flat selectors.
    if regs.cs != crate::domain::vcpu::FLAT_CS64 {
        return false;
    }
    let (bytes, n) = crate::domain::guest_mem::fetch_insn(&v.current_mem(), regs.rip);
    let Some(insn) = io_emul::decode(&bytes[..n]) else { return false };
    let (port, rip) = (insn.imm_port.map_or(regs.rdx as u16, u16::from), regs.rip);
    let mem = v.current_mem();
    let iopl_ok = io_emul::iopl_ok(&v.io, v.kernel_mode, d.has_assist(xen_public::xen::VMASST_TYPE_ARCHITECTURAL_IOPL));
    let gs = v.gs_base();
    let kernel_mem = v.kernel_mem();
    let mut hw = crate::arch::x86_64::pio::MachinePorts;
    let mut env = IoEnv {
        mem: &mem,
        kernel_mem: &kernel_mem,
        hw: &mut hw,
        vcpu: v.io,
        iopl_ok,
        dom: DomainIo { ioports: &d.ioports, hardware: d.privileged, pci_cf8: &mut d.pci_cf8 },
        fs_gs_base: (v.fs_base, gs),
        max_reps: MAX_REPS_PER_EXIT,
    };
    match io_emul::emulate(&insn, regs, &mut env) {
        Emulated::NotEmulated => false,
        Emulated::Done => {
            // Xen's ctxt.bpmatch: the guest's I/O breakpoints on the port
            // raise #DB once the instruction is done.
            let cr4_de = v.cr4_de();
            let hit = if regs.rip != rip { v.debug.io_breakpoints(cr4_de, port, insn.bytes) } else { 0 };
            if hit != 0 {
                v.debug.note_io_breakpoints(hit);
                raise(v, d, regs, DB, None);
            }
            true
        }
        Emulated::GeneralProtection => {
            raise(v, d, regs, GP, Some(0));
            true
        }
        Emulated::PageFault { cr2, error_code } => {
            d.set_guest_cr2(v, cr2);
            raise(v, d, regs, PF, Some(error_code));
            true
        }
    }
}

/// The machine and domain facts the privileged-op emulation needs.
fn priv_env<'a>(host: &'a mut cpu::MachineHost, v: &Vcpu, d: &Domain) -> crate::domain::priv_op::Env<'a, cpu::MachineHost> {
    let scale = crate::arch::x86_64::clock::CLOCK.get().map_or((0, 0), |c| (c.scale.mul_frac, c.scale.shift));
    crate::domain::priv_op::Env {
        host,
        hardware_domain: d.privileged,
        version: (crate::version::XEN_MAJOR, crate::version::XEN_MINOR),
        tsc: (crate::arch::x86_64::clock::tsc_khz(), scale),
        max_mfn: crate::mm::machine::M2P.get().map_or(0, |m| m.entries).saturating_sub(1),
        iopl_ok: crate::domain::io_emul::iopl_ok(&v.io, v.kernel_mode, d.has_assist(xen_public::xen::VMASST_TYPE_ARCHITECTURAL_IOPL)),
    }
}

/// A #GP(0) that may come from `rdmsr`, `wrmsr` (the hypercall-page MSR
/// among them), `mov` to or from a CR (CR3 writes included) or a debug
/// register, `clts`, `wbinvd`, `rdtsc(p)`, `cli`/`sti` under the virtual
/// IOPL or a faulting `cpuid`: emulate it as Xen's
/// emul-priv-op.c does (`domain/priv_op.rs`). True: handled (done, or a
/// #GP(0) of its own delivered); false: deliver the #GP as raised.
#[inline(never)]
fn priv_op(v: &mut Vcpu, d: &mut Domain, regs: &mut CpuUserRegs) -> bool {
    use crate::domain::priv_op::{self, Emulated};
    if regs.cs != crate::domain::vcpu::FLAT_CS64 {
        return false;
    }
    let (bytes, n) = crate::domain::guest_mem::fetch_insn(&v.current_mem(), regs.rip);
    let Some(insn) = priv_op::decode(&bytes[..n]) else { return false };
    let mut host = cpu::MachineHost;
    let mut env = priv_env(&mut host, v, d);
    match priv_op::emulate(&insn, regs, v, &mut env) {
        Emulated::NotEmulated => false,
        Emulated::Done => true,
        Emulated::DoneCr2 => {
            let cr2 = v.cr2;
            d.set_guest_cr2(v, cr2);
            true
        }
        Emulated::DoneDr => {
            crate::arch::x86_64::debugreg::reload(&v.debug);
            true
        }
        Emulated::GeneralProtection => {
            raise(v, d, regs, GP, Some(0));
            true
        }
        Emulated::InvalidOpcode => {
            raise(v, d, regs, UD, None);
            true
        }
        // The hypercall-page MSR: a frame that cannot take the stubs is a
        // #GP(0), as Xen's guest_wrmsr_xen.
        Emulated::WriteHypercallPage(value) => {
            if hypercall::write_hypercall_page(d, value >> 12) {
                regs.rip = regs.rip.wrapping_add(insn.len);
            } else {
                raise(v, d, regs, GP, Some(0));
            }
            true
        }
        // Xen's write_cr(3): X86EMUL_RETRY runs the instruction again,
        // X86EMUL_UNHANDLEABLE leaves the #GP as raised.
        Emulated::WriteCr3(value) => match hypercall::write_cr3(v, d, value) {
            Ok(()) => {
                regs.rip = regs.rip.wrapping_add(insn.len);
                true
            }
            Err(e) => e == -xen_public::errno::ERESTART,
        },
    }
}

/// A #UD at `ud2; .ascii "xen"; cpuid`: the CPUID with Xen's PV policy,
/// RIP past all 7 bytes (Xen's `emulate_forced_invalid_op`, from kernel
/// or user mode). A fault reading the bytes is a #PF(0) at the first
/// byte that could not be read; with the guest's own CPUID faulting on,
/// user mode gets #GP at the `cpuid`. True: handled.
#[inline(never)]
fn forced_cpuid(v: &mut Vcpu, d: &mut Domain, regs: &mut CpuUserRegs) -> bool {
    use crate::domain::priv_op::{self, Forced};
    match priv_op::forced_emulation(&v.current_mem(), regs.rip, v) {
        Forced::No => false,
        Forced::Fault(cr2) => {
            d.set_guest_cr2(v, cr2);
            raise(v, d, regs, PF, Some(0));
            true
        }
        Forced::GpAtCpuid => {
            regs.rip = regs.rip.wrapping_add(priv_op::FORCED_PREFIX_LEN);
            raise(v, d, regs, GP, Some(0));
            true
        }
        Forced::Cpuid => {
            let mut host = cpu::MachineHost;
            let mut env = priv_env(&mut host, v, d);
            priv_op::emulate_cpuid(regs, v, &mut env, true);
            regs.rip = regs.rip.wrapping_add(crate::domain::cpuid::FORCED_EMULATION.len() as u64);
            true
        }
    }
}
