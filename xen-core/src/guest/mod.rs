//! Running guests on the live machine: what the hypervisor does to a
//! domain's memory and vCPUs that needs the hardware. The state itself
//! (`Domain`, `Vcpu`, `Guest`) and the host-tested handlers are in
//! `domain/`.
//!
//! By concern:
//! - [`memory`]: the direct map and guest virtual memory ([`GuestMem`]);
//! - [`shinfo`]: a domain's shared_info page (event bits, `vcpu_info`);
//! - [`run`]: timers, blocking, upcalls, bounces, `iret`, and the loads
//!   before every resume;
//! - [`shutdown`]: shutdown and `domain_crash`;
//! - [`exit`]: the one path from a guest exit back to a guest.
//!
//! Invariants: guest memory is only touched through software page walks of
//! the guest's own tables ([`GuestMem`]); before every resume the registers
//! are sanitised for ring 3 and the right page tables, segment bases and
//! CR0.TS are loaded; a guest that cannot be resumed safely is crashed, and
//! a crash of dom0 stops the machine with a failing exit code.

mod exit;
mod memory;
mod run;
mod shinfo;
mod shutdown;

pub use crate::arch::x86_64::clock::{CLOCK, TSC_KHZ, system_time, tsc_khz};
pub use exit::install_exit_handlers;
pub use memory::{DirectMap, Efault, GuestMem};
pub use shinfo::ShinfoBits;

use crate::console;
use crate::domain::vcpu::{CpuUserRegs, Vcpu};

pub use crate::domain::{Domain, GrantTable, Guest, MAX_VCPUS};

/// Domain ids in use (dom0 excluded).
pub static DOMIDS: spin::Mutex<crate::domain::domid::DomidAllocator> = spin::Mutex::new(crate::domain::domid::DomidAllocator::new());

/// Checked access to a vCPU of a slot's domain (the scheduler only names
/// vCPUs that exist).
impl Guest {
    /// vCPU `vcpu_id` and the domain, borrowed together. An id past the
    /// domain's vCPUs is a hypervisor bug (the scheduler only names vCPUs
    /// that exist) and stops the machine.
    pub fn vcpu(&mut self, vcpu_id: usize) -> (&mut Vcpu, &mut Domain) {
        let domid = self.domain.domid;
        let Some(v) = self.vcpus.get_mut(vcpu_id) else {
            crate::setup::fatal(format_args!("d{domid}: no vCPU {vcpu_id}"));
        };
        (v, &mut self.domain)
    }
}

pub use xen_public::VIRQ_DOM_EXC;

/// `VIRQ_DOM_EXC` to dom0 from another domain's context.
pub fn notify_dom_exc() {
    if crate::schedule::with_domain(0, |d0| d0.raise_virq(VIRQ_DOM_EXC)).is_some() {
        crate::schedule::kick();
    }
}

/// Enter dom0 for the first time.
pub fn start(dom: Guest, regs: CpuUserRegs) -> ! {
    crate::schedule::start(dom, regs)
}

/// Write a guest's console output.
pub fn console_write(bytes: &[u8]) {
    console::write_guest(bytes);
}
