//! `domctl`, `sysctl`, `memory_op`, `sched_op` and `console_io` on the live
//! machine: the operations themselves are in `domain/control_ops.rs`,
//! `domain/memory_ops.rs` and `domain/sched_ops.rs` (host-tested); this
//! module gives them the domain slots, the domid allocator, the frame
//! allocator, frame table and M2P, the scheduler, the clock and the
//! console: its history for readconsole, its rx ring for CONSOLEIO_read
//! ([`Live`]). The vCPU-context part of the machine is in
//! `vcpu_ctx.rs`.

use super::live::Live;
use super::*;
use crate::domain::control_ops::{self, ControlHost, RemoveError};
use crate::domain::domid::DomidAllocator;
use crate::domain::memory_ops::{self, MemoryHost};
use crate::domain::sched_ops::{self, ConsoleHost, SchedHost};
use crate::guest::Guest;

impl MemoryHost for Live<'_> {
    fn free_frames(&self) -> u64 {
        crate::mm::machine::free_frames()
    }
    fn m2p_entries(&self) -> u64 {
        crate::mm::machine::M2P.get().map_or(0, |m| m.entries)
    }
    fn with_domain<R>(&mut self, domid: u16, f: impl FnOnce(&mut Domain, &mut Self) -> R) -> Option<R> {
        crate::schedule::with_domain(domid, |o| f(o, self))
    }
    fn machine_e820(&self) -> &[xen_public::memory::E820Entry] {
        crate::mm::machine::MACHINE_E820.get().map_or(&[], |m| m.entries())
    }
    fn m2p_base(&self) -> u64 {
        crate::mm::machine::M2P.get().map_or(0, |m| m.base.0)
    }
    fn shared_max_pfn(&self, d: &Domain) -> u64 {
        const MAX_PFN: usize = core::mem::offset_of!(xen_public::SharedInfo, arch) + core::mem::offset_of!(xen_public::ArchSharedInfo, max_pfn);
        crate::guest_access::Frame::new(d.shared_info).map_or(0, |f| f.load_u64(MAX_PFN))
    }
    fn alloc_extent(&mut self, order: u32, limit: u64) -> Option<Mfn> {
        let n = 1u64 << order;
        let m = if order == 0 { crate::mm::machine::alloc_frame()? } else { crate::mm::machine::alloc_contiguous(n)? };
        if m.0.checked_add(n).is_none_or(|end| end > limit) {
            for k in 0..n {
                crate::mm::machine::free_frame(Mfn(m.0 + k));
            }
            return None;
        }
        // alloc_contiguous does not zero (alloc_frame does).
        if order > 0 {
            for k in 0..n {
                crate::guest_access::Frame::new(Mfn(m.0 + k))?.scrub();
            }
        }
        Some(m)
    }
}

impl ControlHost for Live<'_> {
    type Removed = crate::arch::x86_64::frame_box::FrameBox<Guest>;
    fn with_guest<R>(&mut self, domid: u16, f: impl FnOnce(&mut Guest, &mut Self) -> R) -> Option<R> {
        crate::schedule::with_guest(domid, |g| f(g, self))
    }
    fn install(&mut self, g: Guest) -> bool {
        crate::schedule::install(g).is_ok()
    }
    fn remove(&mut self, domid: u16) -> Result<Self::Removed, RemoveError> {
        crate::schedule::remove(domid)
    }
    fn with_domids<R>(&mut self, f: impl FnOnce(&mut DomidAllocator) -> R) -> R {
        f(&mut crate::guest::DOMIDS.lock())
    }
    fn sched_params(&self, slot: usize) -> Option<crate::sched::credit::Params> {
        crate::schedule::params(slot)
    }
    fn set_sched_params(&mut self, slot: usize, params: crate::sched::credit::Params) {
        crate::schedule::set_params(slot, params);
    }
    fn online_cpus(&self) -> u32 {
        crate::arch::x86_64::smp::CPUS_ONLINE.load(core::sync::atomic::Ordering::SeqCst)
    }
    fn cpu_khz(&self) -> u32 {
        crate::guest::tsc_khz()
    }
    fn raise_virq(&mut self, d: &mut Domain, virq: u32) {
        d.raise_virq(virq);
    }
    fn hypercall_stub(&self, i: usize) -> [u8; 32] {
        crate::domain::build::hypercall_stub(i)
    }
    fn xencore_audit(&mut self, v: &mut Vcpu, d: &mut Domain, arg: u64, op: &mut xen_public::sysctl::XenSysctl) -> Ret {
        super::audit::sysctl(v, d, arg, op)
    }
    fn with_conring<R>(&mut self, f: impl FnOnce(&mut crate::console_ring::ConRing) -> R) -> R {
        crate::console::with_conring(f)
    }
    fn tbuf_op(&mut self, mem: &impl GuestAccess, op: &mut xen_public::sysctl::XenSysctlTbufOp) -> Ret {
        crate::trace::tb_control(op, |handle, buf| mem.read(handle, buf).is_ok())
    }
}

impl SchedHost for Live<'_> {
    fn clear_upcall_mask(&mut self, d: &Domain, v: &Vcpu) {
        d.clear_upcall_mask(v);
    }
    fn block(&mut self, v: &mut Vcpu, poll: Option<crate::domain::vcpu::Poll>) {
        v.block(poll);
    }
    fn shutdown(&mut self, v: &mut Vcpu, d: &mut Domain, regs: &CpuUserRegs, reason: u32) {
        d.shutdown(v, regs, reason);
    }
}

impl ConsoleHost for Live<'_> {
    fn console_write(&mut self, bytes: &[u8]) {
        crate::guest::console_write(bytes);
    }
    fn console_read_byte(&mut self) -> Option<u8> {
        crate::console::read_byte()
    }
}

/// `domctl(op)`; a domain created, paused, unpaused or destroyed is
/// traced (Xen's `TRC_DOM0_DOM_ADD` and `_REM`, and xen-core's pause and
/// unpause records).
pub(super) fn domctl(v: &mut Vcpu, d: &mut Domain, arg: u64) -> Ret {
    use xen_public::domctl::{XEN_DOMCTL_CREATEDOMAIN, XEN_DOMCTL_DESTROYDOMAIN, XEN_DOMCTL_PAUSEDOMAIN, XEN_DOMCTL_UNPAUSEDOMAIN, XenDomctl};
    use xen_public::trace::Event;
    let mem = v.kernel_mem();
    // The command and domain as they were before the call (another vCPU
    // may rewrite the guest's copy); createdomain's new id comes back in
    // the guest's copy afterwards.
    let before = if crate::trace::enabled() { mem.copy_from::<XenDomctl>(arg).ok().map(|op| (op.cmd, op.domain)) } else { None };
    let rc = control_ops::domctl(&mut Live::new(), v, d, &mem, arg);
    if rc == 0
        && let Some((cmd, dom)) = before
    {
        let created = || mem.copy_from::<XenDomctl>(arg).map_or(dom, |op| op.domain);
        let domid = u32::from(if cmd == XEN_DOMCTL_CREATEDOMAIN { created() } else { dom });
        let ev = match cmd {
            XEN_DOMCTL_CREATEDOMAIN => Some(Event::Dom0DomAdd { domid }),
            XEN_DOMCTL_PAUSEDOMAIN => Some(Event::DomPause { domid }),
            XEN_DOMCTL_UNPAUSEDOMAIN => Some(Event::DomUnpause { domid }),
            XEN_DOMCTL_DESTROYDOMAIN => Some(Event::Dom0DomRem { domid }),
            _ => None,
        };
        if let Some(ev) = ev {
            crate::trace::record(&ev);
        }
    }
    rc
}

/// `sysctl(op)`.
pub(super) fn sysctl(v: &mut Vcpu, d: &mut Domain, arg: u64) -> Ret {
    let mem = v.kernel_mem();
    control_ops::sysctl(&mut Live::new(), v, d, &mem, arg)
}

/// `memory_op(cmd, arg)`.
pub(super) fn memory_op(v: &mut Vcpu, d: &mut Domain, cmd: u32, arg: u64) -> Ret {
    memory_ops::memory_op(&mut Live::new(), d, &v.kernel_mem(), u64::from(cmd), arg)
}

/// `sched_op(cmd, arg)`.
pub(super) fn sched_op(v: &mut Vcpu, d: &mut Domain, regs: &CpuUserRegs, cmd: u32, arg: u64) -> Ret {
    let mem = v.kernel_mem();
    sched_ops::sched_op(&mut Live::new(), v, d, &mem, regs, cmd, arg)
}

/// `console_io(cmd, count, buf)`.
pub(super) fn console_io(v: &mut Vcpu, d: &mut Domain, regs: &mut CpuUserRegs) -> Ret {
    sched_ops::console_io(&mut Live::new(), d, &v.kernel_mem(), regs, preempt_due)
}
