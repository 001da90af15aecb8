//! Running guests: the domain state the hypervisor keeps per domain, guest
//! memory access, and what happens when a guest enters the hypervisor
//! (SYSCALL or exception) and when it is resumed.
//!
//! Invariants: guest memory is only touched through software page walks of
//! the guest's own tables ([`GuestMem`]); before every resume the registers
//! are sanitised for ring 3 and the right page tables, segment bases and
//! CR0.TS are loaded; a guest that cannot be resumed safely is crashed, and
//! a crash of dom0 stops the machine with a failing exit code.

use crate::arch::x86_64::cpu::{self, ExitCode};
use crate::arch::x86_64::entry::{self, GuestBases};
use crate::arch::x86_64::traps::vector_name;
use crate::domain::build::{SHINFO_CR2, SHINFO_UPCALL_MASK};
use crate::domain::vcpu::{CpuUserRegs, Crash, FLAT_CS64, FLAT_SS64, GuestStack, Poll, StackFault, Vcpu, guest_rflags, is_canonical};
use crate::guest_access::Frame;
use crate::mm::Mfn;
use crate::mm::guest_walk::{self, PhysRead};
use crate::{console, hypercall, printk};

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

/// The 2-level event bits in a domain's shared_info page (vCPU 0's
/// `vcpu_info` for the selector and upcall flag), updated atomically since
/// the guest writes the same words.
pub struct ShinfoBits {
    page: Frame,
}

const SHINFO_PENDING: usize = 2048;
const SHINFO_MASK: usize = 2560;
const VCPU0_PENDING_SEL: usize = 8;
// Every port notifies vCPU 0 (its selector and upcall byte above), VIRQ_TIMER
// is raised domain-wide and the caller's own domctl answers see only the
// calling vCPU: a domain with more vCPUs needs those per vCPU first.
const _: () = assert!(MAX_VCPUS == 1, "event delivery and self-queries assume one vCPU");

impl crate::event::EventBits for ShinfoBits {
    fn test_and_set_pending(&mut self, port: u32) -> bool {
        let bit = 1u64 << (port % 64);
        self.page.fetch_or_u64(SHINFO_PENDING + (port / 64 % 64) as usize * 8, bit) & bit != 0
    }
    fn is_masked(&self, port: u32) -> bool {
        self.page.load_u64(SHINFO_MASK + (port / 64 % 64) as usize * 8) & (1 << (port % 64)) != 0
    }
    fn clear_mask(&mut self, port: u32) {
        self.page.fetch_and_u64(SHINFO_MASK + (port / 64 % 64) as usize * 8, !(1 << (port % 64)));
    }
    fn is_pending(&self, port: u32) -> bool {
        self.page.load_u64(SHINFO_PENDING + (port / 64 % 64) as usize * 8) & (1 << (port % 64)) != 0
    }
    fn test_and_set_sel(&mut self, w: u32) -> bool {
        let bit = 1u64 << (w % 64);
        self.page.fetch_or_u64(VCPU0_PENDING_SEL, bit) & bit != 0
    }
    fn set_upcall_pending(&mut self) {
        // Byte 0 of vcpu_info[0].
        self.page.write_u8(0, 1);
    }
}

/// The machine clock, set once at boot.
pub static CLOCK: spin::Once<crate::time::Clock> = spin::Once::new();

/// The TSC frequency in kHz (0 before calibration).
pub fn tsc_khz() -> u32 {
    TSC_KHZ.load(core::sync::atomic::Ordering::Relaxed)
}

/// Set once by the clock calibration.
pub static TSC_KHZ: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// Nanoseconds since boot.
pub fn system_time() -> u64 {
    CLOCK.get().map_or(0, |c| c.system_time(crate::arch::x86_64::clock::rdtsc()))
}

/// One past the highest machine address the direct map covers (0 until
/// set once at boot, before any guest exists). A plain atomic rather than
/// a `Once`: every frame access checks it.
pub static DIRECTMAP_END: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Reads machine memory through the direct map; addresses past its end read
/// as 0 (not present), so a bad guest entry can never fault the hypervisor.
pub struct DirectMap;

impl PhysRead for DirectMap {
    #[inline]
    fn read_u64(&self, maddr: u64) -> u64 {
        Frame::new(Mfn::containing(maddr)).map_or(0, |f| f.read_u64(((maddr & 0xfff) / 8) as usize))
    }
}

/// A guest's virtual memory, as seen through one of its L4 tables.
#[derive(Clone, Copy)]
pub struct GuestMem {
    /// The L4's machine address.
    pub l4: u64,
}

pub use crate::domain::guest_mem::Efault;

impl GuestMem {
    /// Copy `buf.len()` bytes from guest virtual `va`.
    pub fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), Efault> {
        let mut ok = true;
        guest_walk::for_each_chunk(&DirectMap, self.l4, va, buf.len(), false, |maddr, off, n| {
            // The walk proved the guest may read these bytes, in one frame.
            match Frame::new(Mfn::containing(maddr)) {
                Some(f) => f.read_bytes((maddr & 0xfff) as usize, &mut buf[off..off + n]),
                None => ok = false,
            }
        })
        .map_err(|_| Efault)?;
        if ok { Ok(()) } else { Err(Efault) }
    }

    /// Copy `buf` to guest virtual `va`.
    pub fn write(&self, va: u64, buf: &[u8]) -> Result<(), Efault> {
        let mut ok = true;
        guest_walk::for_each_chunk(&DirectMap, self.l4, va, buf.len(), true, |maddr, off, n| {
            // The walk proved the guest may write these bytes (never a
            // page-table frame: those are mapped read-only), in one frame.
            match Frame::new(Mfn::containing(maddr)) {
                Some(f) => f.write_bytes((maddr & 0xfff) as usize, &buf[off..off + n]),
                None => ok = false,
            }
        })
        .map_err(|_| Efault)?;
        if ok { Ok(()) } else { Err(Efault) }
    }

    /// Read a little-endian u64.
    pub fn read_u64(&self, va: u64) -> Result<u64, Efault> {
        let mut b = [0u8; 8];
        self.read(va, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Read a little-endian u32.
    pub fn read_u32(&self, va: u64) -> Result<u32, Efault> {
        let mut b = [0u8; 4];
        self.read(va, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }
}

impl crate::domain::guest_mem::GuestAccess for GuestMem {
    fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), Efault> {
        GuestMem::read(self, va, buf)
    }
    fn write(&self, va: u64, buf: &[u8]) -> Result<(), Efault> {
        GuestMem::write(self, va, buf)
    }
}

impl GuestStack for GuestMem {
    fn write(&mut self, va: u64, words: &[u64]) -> Result<(), StackFault> {
        let mut buf = [0u8; 8 * 9];
        let bytes = &mut buf[..words.len() * 8];
        for (chunk, w) in bytes.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        GuestMem::write(self, va, bytes).map_err(|_| StackFault)
    }

    fn read(&mut self, va: u64, words: &mut [u64]) -> Result<(), StackFault> {
        let mut buf = [0u8; 8 * 9];
        let bytes = &mut buf[..words.len() * 8];
        GuestMem::read(self, va, bytes).map_err(|_| StackFault)?;
        for (w, chunk) in words.iter_mut().zip(bytes.chunks_exact(8)) {
            *w = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        }
        Ok(())
    }
}

impl Vcpu {
    /// Guest memory as the kernel sees it.
    pub fn kernel_mem(&self) -> GuestMem {
        GuestMem { l4: self.guest_table }
    }

    /// Guest memory as the vCPU's current mode sees it.
    pub fn current_mem(&self) -> GuestMem {
        let l4 = if self.kernel_mode { self.guest_table } else { self.guest_table_user };
        GuestMem { l4 }
    }

    /// Mirror the earliest wake deadline (timer or poll timeout) for the
    /// scheduler.
    fn sync_deadline(&self) {
        let poll = self.poll.map_or(0, |p| p.deadline);
        let d = [self.timer_deadline, poll].into_iter().filter(|&t| t != 0).min().unwrap_or(0);
        crate::schedule::set_deadline(crate::schedule::VcpuId::new(self.slot, self.vcpu_id as usize), d);
    }

    /// Set (or cancel, with 0) the single-shot timer.
    pub fn set_timer(&mut self, deadline: u64) {
        self.timer_deadline = deadline;
        self.sync_deadline();
    }

    /// Block until an upcall is deliverable (SCHEDOP_block) or, with
    /// `poll`, until one of its ports is pending or its timeout passes.
    pub fn block(&mut self, poll: Option<Poll>) {
        self.blocked = true;
        self.poll = poll;
        self.sync_deadline();
    }

    /// End a block or poll.
    pub fn unblock(&mut self) {
        self.blocked = false;
        self.poll = None;
        self.sync_deadline();
    }

    /// Load the page tables of the vCPU's current mode into CR3 (it runs
    /// on this CPU). NEW_BASEPTR calls it before it drops the old base's
    /// references, so CR3 never holds a table that lost them.
    pub fn load_page_tables(&self) {
        // Both base pointers were validated as L4s when installed and are
        // held by the vCPU's references.
        let table = if self.kernel_mode { self.guest_table } else { self.guest_table_user };
        crate::arch::x86_64::paging::load_guest_l4(table);
    }

    /// Byte offset of this vCPU's `vcpu_info` in shared_info.
    fn vcpu_info(&self) -> usize {
        self.vcpu_id as usize * VCPU_INFO_SIZE
    }
}

/// Bytes of a `vcpu_info` in shared_info.
const VCPU_INFO_SIZE: usize = core::mem::size_of::<xen_public::VcpuInfo>();

impl Domain {
    /// The domain's shared_info frame (allocated from RAM with the
    /// domain, so always in the direct map).
    #[inline]
    fn shinfo(&self) -> Frame {
        match Frame::new(self.shared_info) {
            Some(f) => f,
            None => self.shinfo_outside_directmap(),
        }
    }

    #[cold]
    #[inline(never)]
    fn shinfo_outside_directmap(&self) -> ! {
        crate::setup::fatal(format_args!("d{}: shared_info outside the direct map", self.domid))
    }

    /// The domain's event bits.
    pub fn event_bits(&self) -> ShinfoBits {
        ShinfoBits { page: self.shinfo() }
    }

    /// Whether an event upcall is pending and not masked for `v`.
    #[inline]
    pub fn upcall_deliverable(&self, v: &Vcpu) -> bool {
        // Bytes 0 and 1 of vcpu_info: upcall pending, upcall mask.
        let (page, at) = (self.shinfo(), v.vcpu_info());
        page.read_u8(at) != 0 && page.read_u8(at + SHINFO_UPCALL_MASK) == 0
    }

    /// Mark the port bound to `virq` pending, if any.
    pub fn raise_virq(&mut self, virq: u32) {
        if let Some(port) = self.ports.virq_port(virq) {
            crate::event::set_pending(&mut self.event_bits(), port);
        }
    }

    /// Whether its vCPU `v` may run now.
    pub fn runnable(&self, v: &Vcpu) -> bool {
        v.vcpu_up && self.pause_count == 0 && self.shutdown.is_none() && !v.blocked && !self.dying
    }

    /// Fire `v`'s timer if its deadline has passed (VIRQ_TIMER), end a
    /// wait that is over, and count the time.
    #[inline]
    pub fn wake_check(&mut self, v: &mut Vcpu, now: u64) {
        // On every return to a guest: the common case (no timer due, not
        // blocked) stays inline.
        if (v.timer_deadline != 0 && now >= v.timer_deadline) || v.blocked {
            self.wake_check_slow(v, now);
        }
    }

    #[inline(never)]
    fn wake_check_slow(&mut self, v: &mut Vcpu, now: u64) {
        if v.timer_deadline != 0 && now >= v.timer_deadline {
            v.set_timer(0);
            self.raise_virq(0);
        }
        if v.blocked && (self.upcall_deliverable(v) || v.poll.is_some_and(|p| self.poll_done(&p, now))) {
            v.unblock();
        }
    }

    fn poll_done(&self, p: &Poll, now: u64) -> bool {
        use crate::event::EventBits;
        let bits = self.event_bits();
        (p.deadline != 0 && now >= p.deadline) || p.ports[..p.nr].iter().any(|&port| bits.is_pending(port))
    }

    /// Publish `v`'s upcall mask and the time in a new shared_info page.
    pub fn init_shared(&self, v: &Vcpu) {
        self.sync_mask_out(v);
        self.publish_time(v);
    }

    /// First run of dom0.
    pub fn start_running(&mut self, v: &mut Vcpu) {
        self.vcpu_created = true;
        v.vcpu_up = true;
        self.init_shared(v);
    }

    /// Deliver a pending event upcall to `v`'s event callback, as Xen does
    /// on every return to a guest: the callback runs with events masked;
    /// its `iret` unmasks them and the check runs again.
    #[inline]
    pub fn deliver_events(&mut self, v: &mut Vcpu, regs: &mut CpuUserRegs) {
        if self.upcall_deliverable(v) {
            self.deliver_upcall(v, regs);
        }
    }

    #[inline(never)]
    fn deliver_upcall(&mut self, v: &mut Vcpu, regs: &mut CpuUserRegs) {
        if v.event_callback == 0 {
            // As Xen: an upcall to address 0 crashes the domain.
            self.crash(v, regs, Crash::NoEventCallback);
            return;
        }
        let b = crate::domain::vcpu::Bounce { eip: v.event_callback, error_code: None, mask_events: true, clear_df: false };
        self.deliver(v, regs, b);
    }

    /// Clear `v`'s `evtchn_upcall_mask` in shared_info (SCHEDOP_block).
    pub fn clear_upcall_mask(&self, v: &Vcpu) {
        self.shinfo().write_u8(v.vcpu_info() + SHINFO_UPCALL_MASK, 0);
    }

    /// Pull `evtchn_upcall_mask` from shared_info into the vCPU state.
    fn sync_mask_in(&self, v: &mut Vcpu) {
        v.upcall_mask = self.shinfo().read_u8(v.vcpu_info() + SHINFO_UPCALL_MASK) != 0;
    }

    /// Push the vCPU's upcall mask back to shared_info.
    fn sync_mask_out(&self, v: &Vcpu) {
        self.shinfo().write_u8(v.vcpu_info() + SHINFO_UPCALL_MASK, u8::from(v.upcall_mask));
    }

    /// Publish the time to the guest: `v`'s `vcpu_info.time` and the wall
    /// clock, with Xen's version protocol.
    pub fn publish_time(&self, v: &Vcpu) {
        let Some(clock) = CLOCK.get() else { return };
        let mut page = self.shinfo();
        // vcpu_info.time is at byte 32 of a vcpu_info.
        crate::time::publish(&mut page, v.vcpu_info() + 32, &clock.sample(crate::arch::x86_64::clock::rdtsc()));
        crate::time::publish_wallclock(&mut page, clock.boot_wall);
    }

    /// Record a page fault's address in `v`'s `vcpu_info.arch.cr2`.
    fn set_guest_cr2(&self, v: &Vcpu, cr2: u64) {
        self.shinfo().write_u64((v.vcpu_info() + SHINFO_CR2) / 8, cr2);
    }

    /// Deliver a bounce to `v`; a failure crashes the domain.
    pub fn deliver(&mut self, v: &mut Vcpu, regs: &mut CpuUserRegs, b: crate::domain::vcpu::Bounce) {
        self.sync_mask_in(v);
        let mut stack = v.kernel_mem();
        if let Err(c) = v.bounce(regs, b, &mut stack) {
            self.crash(v, regs, c);
        }
        self.sync_mask_out(v);
    }

    /// The `iret` hypercall of `v`.
    pub fn iret(&mut self, v: &mut Vcpu, regs: &mut CpuUserRegs) -> u64 {
        self.sync_mask_in(v);
        let mut stack = v.kernel_mem();
        match v.iret(regs, &mut stack) {
            Ok(rax) => {
                self.sync_mask_out(v);
                rax
            }
            Err(c) => {
                self.crash(v, regs, c);
                0
            }
        }
    }

    /// Load everything `v` runs with, and sanitise its registers.
    pub fn prepare_resume(&mut self, v: &mut Vcpu, regs: &mut CpuUserRegs) {
        regs.cs = FLAT_CS64;
        regs.ss = FLAT_SS64;
        regs.rflags = guest_rflags(regs.rflags);
        if !is_canonical(regs.rip) || !is_canonical(regs.rsp) {
            self.crash(v, regs, Crash::NonCanonical(regs.rip));
            return;
        }
        v.load_page_tables();
        let gs = if v.kernel_mode { v.gs_base_kernel } else { v.gs_base_user };
        entry::load_guest_bases(GuestBases { fs: v.fs_base, gs });
        cpu::set_cr0_ts(v.fpu_ts);
    }

    /// Crash this domain (its vCPU `v` was running), as Xen's
    /// `domain_crash`. Dom0's crash stops the machine; another domain is
    /// shut down with reason crash and stops running (the caller's resume
    /// switches away from it).
    pub fn crash(&mut self, v: &mut Vcpu, regs: &CpuUserRegs, why: Crash) {
        printk!("domain_crash called for d{}: {why:?}", self.domid);
        if self.privileged && self.domid == 0 {
            crate::setup::dump_frame("guest state of d0v0", regs);
            crate::setup::fatal(format_args!("Hardware Dom{} crashed", self.domid))
        }
        log::info!("d{}v{} crashed at {:#x}", self.domid, v.vcpu_id, regs.rip);
        self.shut_down(v, xen_public::SHUTDOWN_CRASH);
    }

    /// Mark the domain shut down and tell dom0 (VIRQ_DOM_EXC).
    fn shut_down(&mut self, v: &mut Vcpu, reason: u32) {
        if self.shutdown.is_none() {
            self.shutdown = Some(reason);
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

/// `VIRQ_DOM_EXC`: a domain shut down or died.
pub const VIRQ_DOM_EXC: u32 = 3;

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

/// The running vCPU's domain slot, locked, and the vCPU.
fn running() -> (spin::MutexGuard<'static, Option<crate::arch::x86_64::frame_box::FrameBox<Guest>>>, crate::schedule::VcpuId) {
    let Some(me) = crate::schedule::current_vcpu() else {
        crate::setup::fatal(format_args!("guest entry with no vCPU running"));
    };
    (crate::schedule::DOMAINS[me.slot()].lock(), me)
}

/// SYSCALL from a guest: a hypercall from kernel mode, a bounce to the
/// syscall callback from user mode.
pub fn handle_syscall(regs: &mut CpuUserRegs) {
    let (mut guard, me) = running();
    let Some(g) = guard.as_mut() else {
        crate::setup::fatal(format_args!("SYSCALL with no guest running"));
    };
    let (v, d) = g.vcpu(me.vcpu_id());
    if v.kernel_mode {
        regs.rax = hypercall::dispatch(v, d, regs);
    } else {
        let b = v.syscall_bounce(regs);
        d.deliver(v, regs, b);
    }
    crate::schedule::resume(guard, me, regs);
}

/// An interrupt (timer, kick or flush IPI) arrived while a guest ran:
/// fire timers, deliver events, maybe switch.
pub fn handle_interrupt(regs: &mut CpuUserRegs) {
    // A guest was running, so no hypervisor path holds its lock.
    let (guard, me) = running();
    crate::schedule::resume(guard, me, regs);
}

/// Vectors whose exceptions push an error code.
const fn has_error_code(v: u64) -> bool {
    matches!(v, 8 | 10 | 11 | 12 | 13 | 14 | 17 | 21 | 29 | 30)
}

/// An exception raised while a guest ran: reflect it to the guest's trap
/// table, as Xen does.
pub fn handle_exception(regs: &mut CpuUserRegs) {
    let (mut guard, me) = running();
    let Some(g) = guard.as_mut() else {
        crate::setup::fatal(format_args!("guest exception with no guest running"));
    };
    let (v, d) = g.vcpu(me.vcpu_id());
    let vector = regs.entry_vector as u8;
    let (short, _) = vector_name(regs.entry_vector);
    log::debug!("d{} trap {vector} ({short}) err {:#x} at {:#x}", d.domid, regs.error_code, regs.rip);
    // `int n` hits #GP with the IDT bit set: emulate it if the guest's trap
    // table allows it from the current mode. The vector comes from the
    // instruction itself (CD ib): QEMU's TCG reports it in the error code
    // as vector*16+2 instead of the architectural vector*8+2.
    if vector == 13 && regs.error_code & 3 == 2 {
        let mut insn = [0u8; 2];
        let decoded = v.current_mem().read(regs.rip, &mut insn).is_ok() && insn[0] == 0xcd;
        let soft = if decoded { insn[1] } else { (regs.error_code >> 3) as u8 };
        regs.error_code = (u64::from(soft) << 3) | 2;
        // Xen's `int $0x80` fast path delivers to a registered handler
        // whatever its DPL; other vectors need the DPL to allow the mode.
        let int80 = soft == 0x80 && v.traps[0x80].address != 0;
        if int80 || v.permits_softint(soft) {
            regs.rip = regs.rip.wrapping_add(2);
            regs.entry_vector = u64::from(soft);
            let ti = v.traps[soft as usize];
            let b = crate::domain::vcpu::Bounce { eip: ti.address, error_code: None, mask_events: ti.masks_events(), clear_df: false };
            d.deliver(v, regs, b);
            crate::schedule::resume(guard, me, regs);
            return;
        }
    }
    if vector == 14 {
        d.set_guest_cr2(v, cpu::read_cr2());
    }
    // #NM exists for guests only through their virtual CR0.TS: deliver it
    // once and clear TS, as Xen does.
    if vector == 7 {
        if !v.fpu_ts {
            crate::schedule::resume(guard, me, regs);
            return;
        }
        v.fpu_ts = false;
    }
    let ec = has_error_code(regs.entry_vector).then_some(regs.error_code);
    let b = v.exception_bounce(vector, ec);
    d.deliver(v, regs, b);
    crate::schedule::resume(guard, me, regs);
}

/// Write a guest's console output.
pub fn console_write(bytes: &[u8]) {
    console::write_guest(bytes);
}
