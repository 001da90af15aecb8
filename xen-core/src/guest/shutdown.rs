//! How a domain stops: `SCHEDOP_shutdown`, and `domain_crash` for a
//! guest that cannot be resumed safely. Dom0's shutdown is the machine's;
//! another domain stops and dom0 hears of it (VIRQ_DOM_EXC).

use super::notify_dom_exc;
use crate::arch::x86_64::cpu::{self, ExitCode};
use crate::domain::Domain;
use crate::domain::vcpu::{CpuUserRegs, Crash, Vcpu};
use crate::printk;

impl Domain {
    /// Crash this domain (its vCPU `v` was running), as Xen's
    /// `domain_crash`. Dom0's crash stops the machine; another domain is
    /// shut down with reason crash and stops running (the caller's resume
    /// switches away from it).
    pub fn crash(&mut self, v: &mut Vcpu, regs: &CpuUserRegs, why: Crash) {
        printk!("domain_crash called for d{}: {why:?}", self.domid);
        if self.privileged && self.domid == 0 {
            crate::setup::dump_frame("guest state of d0v0", regs);
            show_guest_stack(v, regs);
            crate::setup::fatal(format_args!("Hardware Dom{} crashed", self.domid))
        }
        log::info!("d{}v{} crashed at {:#x}", self.domid, v.vcpu_id, regs.rip);
        self.shut_down(v, xen_public::SHUTDOWN_CRASH);
    }

    /// Mark the domain shut down (traced as xen-core's `DOM_SHUTDOWN`) and
    /// tell dom0 (VIRQ_DOM_EXC).
    fn shut_down(&mut self, v: &mut Vcpu, reason: u32) {
        if let Some(ev) = self.note_shutdown(reason) {
            crate::trace::record(&ev);
            v.set_timer(0);
            notify_dom_exc();
        }
    }

    /// `SCHEDOP_shutdown` from `v`. Dom0's is the machine's: what Xen's
    /// `hwdom_shutdown` does, with QEMU's debug-exit device standing in for
    /// halt and reboot. Another domain just stops and dom0 is told.
    pub fn shutdown(&mut self, v: &mut Vcpu, regs: &CpuUserRegs, reason: u32) {
        use xen_public::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF, SHUTDOWN_REBOOT, SHUTDOWN_WATCHDOG};
        let d = self.domid;
        crate::trace::record(&xen_public::trace::Event::Shutdown { domid: u32::from(d), vcpu: v.vcpu_id, reason });
        if d != 0 {
            log::info!("domain {d} shut down: reason {reason}");
            self.shut_down(v, reason);
            return;
        }
        match reason {
            SHUTDOWN_POWEROFF => {
                printk!("Hardware Dom{d} halted: halting machine");
                cpu::qemu_exit(ExitCode::Success)
            }
            SHUTDOWN_REBOOT => {
                printk!("Hardware Dom{d} shutdown: rebooting machine");
                cpu::qemu_exit(ExitCode::Success)
            }
            SHUTDOWN_CRASH => {
                crate::setup::dump_frame("guest state of d0v0", regs);
                crate::setup::fatal(format_args!("Hardware Dom{d} crashed"))
            }
            SHUTDOWN_WATCHDOG => crate::setup::fatal(format_args!("Hardware Dom{d} shutdown: watchdog rebooting machine")),
            r => crate::setup::fatal(format_args!("Hardware Dom{d} shutdown (unknown reason {r})")),
        }
    }
}

/// Words of a crashed guest's stack printed with its registers (Xen's
/// `show_guest_stack` prints 32 as well).
const GUEST_STACK_WORDS: u64 = 32;

/// Print the guest's stack from RSP, read with its current page tables
/// (Xen's `show_guest_stack`): what the crashed code was called from.
fn show_guest_stack(v: &Vcpu, regs: &CpuUserRegs) {
    let mem = v.current_mem();
    crate::console::print_fatal(format_args!("Guest stack trace from rsp={:016x}:", regs.rsp));
    for i in 0..GUEST_STACK_WORDS {
        let at = regs.rsp.wrapping_add(i * 8);
        let mut w = [0u8; 8];
        if mem.read(at, &mut w).is_err() {
            crate::console::print_fatal(format_args!("  Fault while accessing guest memory at {at:016x}"));
            return;
        }
        crate::console::print_fatal(format_args!("  {at:016x}: {:016x}", u64::from_le_bytes(w)));
    }
}
