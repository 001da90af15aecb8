//! A vCPU between hypervisor entries: its timer, blocking and polling,
//! event upcalls and bounces into the guest, `iret`, and the checks and
//! loads before every resume (ring-3 selectors and flags, canonical
//! RIP/RSP, page tables, segment bases, CR0.TS).

use crate::arch::x86_64::entry::{self, GuestBases};
use crate::arch::x86_64::{cpu, gdt};
use crate::domain::Domain;
use crate::domain::vcpu::{CpuUserRegs, Crash, FLAT_CS64, FLAT_SS64, Poll, Vcpu, guest_rflags, is_canonical};

impl Vcpu {
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
        if deadline != 0 && crate::trace::on(xen_public::trace::TRC_XENCORE_TIMER_SET) {
            let domid = crate::schedule::domid_of_slot(self.slot).unwrap_or(xen_public::DOMID_IDLE);
            crate::trace::record(&xen_public::trace::Event::TimerSet { domid, vcpu: self.vcpu_id as u16, deadline });
        }
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

    /// Load the vCPU's GDT and LDT descriptors into this CPU's tables (on a
    /// switch to it). Its descriptor frames are typed and referenced while
    /// installed, so they hold checked descriptors.
    pub fn load_descriptor_tables(&self) {
        use crate::mm::page_type::PageMem;
        let m = crate::mm::machine::DirectMapMem::new(true);
        let gdt_frames = self.gdt_frames;
        gdt::load_guest_descriptors((0..self.gdt_ents as usize).map(|i| m.read(gdt_frames[i / 512], i % 512)));
        let (ldt, n) = self.ldt_frames;
        let ents = if n == 0 { 0 } else { self.ldt.1 as usize };
        gdt::load_ldt((0..ents).map(|i| m.read(ldt[i / 512], i % 512)), ents);
    }
}

impl Domain {
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
            if crate::trace::on(xen_public::trace::TRC_XENCORE_TIMER_FIRE) {
                let late_ns = now - v.timer_deadline;
                crate::trace::record(&xen_public::trace::Event::TimerFire { domid: self.domid, vcpu: v.vcpu_id as u16, late_ns });
            }
            v.set_timer(0);
            self.raise_virq(xen_public::VIRQ_TIMER);
        }
        if v.blocked && (self.upcall_deliverable(v) || v.poll.is_some_and(|p| self.poll_done(&p, now))) {
            self.trace_poll_wake(v);
            v.unblock();
        }
    }

    /// A vCPU in SCHEDOP_poll woken by one of its ports: the event is
    /// delivered to it this way, not by an upcall, so it is traced as the
    /// delivery of that port.
    fn trace_poll_wake(&self, v: &Vcpu) {
        use crate::event::EventBits;
        let Some(p) = v.poll.filter(|_| crate::trace::on(xen_public::trace::TRC_XENCORE_UPCALL)) else { return };
        let bits = self.event_bits();
        if let Some(&port) = p.ports[..p.nr].iter().find(|&&port| bits.is_pending(port)) {
            let ev = xen_public::trace::Event::Upcall { domid: self.domid, vcpu: v.vcpu_id as u16, port, pending_sel: 0 };
            crate::trace::record(&ev);
        }
    }

    fn poll_done(&self, p: &Poll, now: u64) -> bool {
        use crate::event::EventBits;
        let bits = self.event_bits();
        (p.deadline != 0 && now >= p.deadline) || p.ports[..p.nr].iter().any(|&port| bits.is_pending(port))
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
        if crate::trace::on(xen_public::trace::TRC_XENCORE_UPCALL) {
            let (page, at) = self.vcpu_info_of(v.vcpu_id);
            let pending_sel = page.read_u64((at + core::mem::offset_of!(xen_public::VcpuInfo, evtchn_pending_sel)) / 8);
            let ev = xen_public::trace::Event::Upcall { domid: self.domid, vcpu: v.vcpu_id as u16, port: xen_public::trace::NO_PORT, pending_sel };
            crate::trace::record(&ev);
        }
        let b = crate::domain::vcpu::Bounce { eip: v.event_callback, error_code: None, mask_events: true, clear_df: false };
        self.deliver(v, regs, b);
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
        let gs = v.gs_base();
        entry::load_guest_bases(GuestBases { fs: v.fs_base, gs });
        cpu::set_cr0_ts(v.fpu_ts);
        cpu::set_cr4_tsd(v.cr4 & crate::domain::priv_op::CR4_TSD != 0);
    }
}
