//! A PV vCPU's architectural state and the rules that change it: trap
//! bounces onto the guest kernel stack, `iret`, syscall bounces from guest
//! user mode, and the sanitising of every value that reaches the hardware.
//!
//! Pure logic over the [`GuestStack`] trait, so host tests cover Xen's frame
//! layout. Invariants: a vCPU always runs in ring 3 with the flat ring-3
//! selectors, IF set and IOPL 0; its RIP and RSP are canonical whenever it
//! is resumed; a bounce either completes or reports why the domain must
//! crash, leaving the registers untouched.
#![forbid(unsafe_code)]

use xen_public::vcpu::VgcfFlags;

/// `FLAT_KERNEL_CS64` / `FLAT_USER_CS64`.
pub const FLAT_CS64: u64 = 0xe033;
/// `FLAT_KERNEL_SS64` / `FLAT_USER_SS64`.
pub const FLAT_SS64: u64 = 0xe02b;

bitflags::bitflags! {
    /// The RFLAGS bits the vCPU rules decide on. The saved registers
    /// ([`CpuUserRegs::rflags`], guest stack frames) stay raw `u64`: they
    /// hold whatever the CPU or the guest put there, and every bit not
    /// decided on here passes through (`from_bits_retain`, `remove`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Rflags: u64 {
        /// Trap flag.
        const TF = 1 << 8;
        /// Interrupt enable.
        const IF = 1 << 9;
        /// Direction flag.
        const DF = 1 << 10;
        /// I/O privilege level: a two-bit field (0-3), not two flags;
        /// named as its mask, which is only ever cleared (a PV guest runs
        /// at IOPL 0).
        const IOPL = 3 << 12;
        /// Nested task.
        const NT = 1 << 14;
        /// Resume flag.
        const RF = 1 << 16;
        /// Virtual-8086 mode.
        const VM = 1 << 17;
        /// Alignment check.
        const AC = 1 << 18;
    }
}

/// Page-fault error-code bits (Xen's `PFEC_*`), as the #PF bounces and the
/// emulators that raise one build them.
pub const PFEC_PRESENT: u64 = 1 << 0;
/// The access was a write.
pub const PFEC_WRITE: u64 = 1 << 1;
/// The access came from user mode.
pub const PFEC_USER: u64 = 1 << 2;
/// A reserved bit was set in a paging entry.
pub const PFEC_RESERVED: u64 = 1 << 3;

/// Saved registers of a vCPU, in the order the entry stubs push them
/// (Xen's `cpu_user_regs`, lowest address first).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct CpuUserRegs {
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
    /// Entry vector (exceptions) or [`ENTRY_SYSCALL`].
    pub entry_vector: u64,
    /// Error code, or 0.
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

impl CpuUserRegs {
    /// General-purpose register `n` in the instruction encoding's order
    /// (0 = RAX, 1 = RCX, 2 = RDX, 3 = RBX, 4 = RSP, 5 = RBP, 6 = RSI,
    /// 7 = RDI, 8-15 = R8-R15); only the low 4 bits of `n` count.
    pub fn gpr(&self, n: u8) -> u64 {
        let mut copy = *self;
        *copy.gpr_mut(n)
    }

    /// The register [`gpr`](Self::gpr) names, to write.
    pub fn gpr_mut(&mut self, n: u8) -> &mut u64 {
        match n & 15 {
            0 => &mut self.rax,
            1 => &mut self.rcx,
            2 => &mut self.rdx,
            3 => &mut self.rbx,
            4 => &mut self.rsp,
            5 => &mut self.rbp,
            6 => &mut self.rsi,
            7 => &mut self.rdi,
            8 => &mut self.r8,
            9 => &mut self.r9,
            10 => &mut self.r10,
            11 => &mut self.r11,
            12 => &mut self.r12,
            13 => &mut self.r13,
            14 => &mut self.r14,
            _ => &mut self.r15,
        }
    }

    /// Load EDX:EAX with `val` as `rdmsr`, `rdtsc` and `cmpxchg8b` do:
    /// each half zero-extended into its 64-bit register.
    pub fn set_edx_eax(&mut self, val: u64) {
        self.rdx = val >> 32;
        self.rax = val & 0xffff_ffff;
    }

    /// EDX:EAX as `wrmsr` and `cmpxchg8b` read it (the upper halves of
    /// RDX and RAX ignored).
    pub fn edx_eax(&self) -> u64 {
        (self.rdx << 32) | (self.rax & 0xffff_ffff)
    }
}

/// `entry_vector` of a frame built by the SYSCALL entry.
pub const ENTRY_SYSCALL: u64 = 0x100;

/// One `trap_info` entry: `{u8 vector; u8 flags; u16 cs; u64 address}`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrapInfo {
    /// Vector.
    pub vector: u8,
    /// Bits 0-1: DPL; bit 2: clear the event mask (TI_GET_IF).
    pub flags: u8,
    /// Code selector (ignored for 64-bit guests).
    pub cs: u16,
    /// Handler address; 0 means none.
    pub address: u64,
}

impl TrapInfo {
    /// The DPL a software `int` needs.
    pub fn dpl(&self) -> u8 {
        self.flags & 3
    }

    /// Whether entering the handler masks event upcalls.
    pub fn masks_events(&self) -> bool {
        self.flags & 4 != 0
    }
}

/// Whether an address is canonical (48-bit virtual addresses).
pub fn is_canonical(va: u64) -> bool {
    let top = (va as i64) >> 47;
    top == 0 || top == -1
}

/// Whether a guest stack pointer lies outside the hypervisor's range, as
/// Xen's `create_bounce_frame` checks it.
pub fn stack_ok(rsp: u64) -> bool {
    const START: u64 = 0xffff_8000_0000_0000;
    const END: u64 = 0xffff_8800_0000_0000;
    rsp <= START || rsp >= END + 8 * 8
}

/// A guest stack access faulted (unmapped, read-only or not guest memory).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackFault;

/// Writes and reads a bounce frame on the guest's stack.
pub trait GuestStack {
    /// Store `words` at guest virtual `va` (increasing addresses).
    fn write(&mut self, va: u64, words: &[u64]) -> Result<(), StackFault>;
    /// Load `words.len()` words from guest virtual `va`.
    fn read(&mut self, va: u64, words: &mut [u64]) -> Result<(), StackFault>;
}

/// Why a bounce or `iret` crashes the domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Crash {
    /// No handler registered for the vector.
    NoHandler(u8),
    /// The guest kernel stack is in the hypervisor's range.
    BadStack(u64),
    /// Writing the frame faulted (unmapped or read-only stack).
    FaultWritingFrame(u64),
    /// The handler address or the return address is not canonical.
    NonCanonical(u64),
    /// `iret`'s frame could not be read.
    FaultReadingIret(u64),
    /// `iret` to user mode without user page tables.
    NoUserPageTables,
    /// An event upcall is due but no event callback is registered (Xen's
    /// `create_bounce_frame_bad_bounce_ip`).
    NoEventCallback,
}

/// A vCPU: its registers and FPU, page-table bases, descriptor tables,
/// segment bases, timer, block and poll state, and the PV callbacks and
/// trap table its guest registered (Xen's `struct vcpu` for a PV guest).
#[derive(Clone, Copy)]
pub struct Vcpu {
    /// The guest's trap table (`set_trap_table`).
    pub traps: [TrapInfo; 256],
    /// Event callback (`CALLBACKTYPE_event`).
    pub event_callback: u64,
    /// Failsafe callback.
    pub failsafe_callback: u64,
    /// Syscall callback: where user-mode SYSCALL goes.
    pub syscall_callback: u64,
    /// Whether the syscall callback masks events (CALLBACKF_mask_events).
    pub syscall_masks_events: bool,
    /// Whether the failsafe callback masks events (CALLBACKF_mask_events,
    /// Xen's VGCF_failsafe_disables_events).
    pub failsafe_masks_events: bool,
    /// Kernel stack for bounces from user mode (`stack_switch`).
    pub kernel_sp: u64,
    /// Kernel stack segment (`stack_switch`).
    pub kernel_ss: u64,
    /// Whether the vCPU is in guest kernel mode.
    pub kernel_mode: bool,
    /// `evtchn_upcall_mask` mirror: the hypervisor keeps this in the shared
    /// info page; bounces read and update it through the caller.
    pub upcall_mask: bool,
    /// Whether user page tables exist (NEW_USER_BASEPTR).
    pub has_user_table: bool,
    /// Kernel-mode L4 (machine address).
    pub guest_table: u64,
    /// User-mode L4 (machine address), 0 if none.
    pub guest_table_user: u64,
    /// FS base.
    pub fs_base: u64,
    /// GS base in guest kernel mode.
    pub gs_base_kernel: u64,
    /// GS base in guest user mode.
    pub gs_base_user: u64,
    /// CR0.TS as the guest set it with `fpu_taskswitch`.
    pub fpu_ts: bool,
    /// LDT (`MMUEXT_SET_LDT`): guest address and entry count.
    pub ldt: (u64, u64),
    /// Frames of the loaded LDT (typed as descriptor pages), and how many.
    pub ldt_frames: ([u64; 16], usize),
    /// A multicall is in progress (multicalls do not nest).
    pub in_multicall: bool,
    /// Frames of the guest's GDT (`set_gdt`), each typed as a descriptor page.
    pub gdt_frames: [u64; 14],
    /// Entries in the guest's GDT.
    pub gdt_ents: u64,
    /// Single-shot timer deadline in system time (ns); 0 when none.
    pub timer_deadline: u64,
    /// Saved guest registers while the vCPU is not running.
    pub regs: CpuUserRegs,
    /// Whether the vCPU has a context (dom0's at boot, a domU's after
    /// XEN_DOMCTL_setvcpucontext).
    pub vcpu_up: bool,
    /// Blocked in SCHEDOP_block or SCHEDOP_poll.
    pub blocked: bool,
    /// Asked to give up its pCPU (SCHEDOP_yield) since the scheduler last
    /// looked: the reason of the context switch it causes.
    pub yielded: bool,
    /// The CPU it last ran on.
    pub last_cpu: usize,
    /// Its id within its domain (Xen's `v->vcpu_id`).
    pub vcpu_id: u32,
    /// The slot of its domain in [`crate::schedule::DOMAINS`] (Xen's
    /// `v->domain`, as an index).
    pub slot: usize,
    /// The ports and timeout of a SCHEDOP_poll in progress.
    pub poll: Option<Poll>,
    /// Hypercalls that ran out of time and were continued (a continuation
    /// issued after a preemption point fired; see `hypercall::dispatch`).
    pub preempted_hypercalls: u64,
    /// System time the vCPU has run (ns), for getvcpuinfo.
    pub cpu_time: u64,
    /// FPU/SSE registers while the vCPU is not running.
    pub fpu: FpuArea,
    /// Virtual IOPL and I/O bitmap (PHYSDEVOP_set_iopl/set_iobitmap).
    pub io: super::io_emul::VcpuIo,
    /// The guest-controllable bits of its virtual CR4 (Xen's
    /// `arch.pv.ctrlreg[4]` within `PV_CR4_GUEST_MASK`; the hardware bits
    /// it may see are added when it reads CR4, see `priv_op::guest_cr4`).
    pub cr4: u64,
    /// Its virtual CR2 (Xen's `arch.pv.ctrlreg[2]`): the address of the
    /// last page fault delivered, or what it wrote with `mov %reg, %cr2`.
    pub cr2: u64,
    /// Its MSR_INTEL_MISC_FEATURES_ENABLES (bit 0: CPUID faulting for its
    /// own user mode, accepted only where the CPU has CPUID faulting).
    pub misc_features_enables: u64,
    /// Its virtual machine-check MSRs (Xen's `v->arch.vmce`).
    pub vmce: super::vmce::Vmce,
    /// Its debug registers (Xen's `v->arch.dr[]`, `dr6`, `dr7`,
    /// `pv.dr7_emul`): in the hardware only while it runs with DR7 active.
    pub debug: super::debugreg::DebugRegs,
    /// Its run state and the time spent in each (Xen's `v->runstate`),
    /// in ns of system time; `state_entry_time` never carries
    /// `XEN_RUNSTATE_UPDATE` here.
    pub runstate: xen_public::vcpu::VcpuRunstateInfo,
    /// Guest virtual address of the copy the guest asked for with
    /// VCPUOP_register_runstate_memory_area (0: none).
    pub runstate_guest: u64,
    /// Guest virtual address of the second copy of its `vcpu_time_info`
    /// (VCPUOP_register_vcpu_time_memory_area; 0: none).
    pub time_info_guest: u64,
    /// Period of the periodic timer in ns (0: stopped). Xen gives every PV
    /// vCPU 10 ms (`pv_vcpu_initialise`).
    pub periodic_period: u64,
    /// System time the periodic timer last fired (Xen's
    /// `periodic_last_event`).
    pub periodic_last: u64,
}

/// Xen's default period of a PV vCPU's periodic timer: 10 ms.
pub const DEFAULT_PERIODIC_NS: u64 = 10_000_000;

/// A SCHEDOP_poll in progress: it ends when one of the ports is pending
/// or the timeout (system time, 0 = none) passes.
#[derive(Clone, Copy)]
pub struct Poll {
    /// The ports.
    pub ports: [u32; 128],
    /// How many.
    pub nr: usize,
    /// Timeout in system time, 0 = none.
    pub deadline: u64,
}

/// A vCPU's FPU/SSE state in FXSAVE format.
#[repr(C, align(16))]
#[derive(Clone, Copy)]
pub struct FpuArea(pub [u8; 512]);

impl Default for FpuArea {
    /// The state after FNINIT with SSE defaults: FCW 0x37f, MXCSR 0x1f80.
    fn default() -> Self {
        let mut a = [0u8; 512];
        a[0..2].copy_from_slice(&0x37fu16.to_le_bytes());
        a[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
        a[28..32].copy_from_slice(&0xffffu32.to_le_bytes()); // MXCSR_MASK
        FpuArea(a)
    }
}

impl Default for Vcpu {
    fn default() -> Self {
        Vcpu {
            traps: [TrapInfo::default(); 256],
            event_callback: 0,
            failsafe_callback: 0,
            syscall_callback: 0,
            syscall_masks_events: false,
            failsafe_masks_events: false,
            kernel_sp: 0,
            kernel_ss: FLAT_SS64,
            kernel_mode: true,
            upcall_mask: true,
            has_user_table: false,
            guest_table: 0,
            guest_table_user: 0,
            fs_base: 0,
            gs_base_kernel: 0,
            gs_base_user: 0,
            fpu_ts: false,
            ldt: (0, 0),
            ldt_frames: ([0; 16], 0),
            in_multicall: false,
            gdt_frames: [0; 14],
            gdt_ents: 0,
            timer_deadline: 0,
            regs: CpuUserRegs::default(),
            vcpu_up: false,
            blocked: false,
            yielded: false,
            last_cpu: 0,
            vcpu_id: 0,
            slot: 0,
            poll: None,
            preempted_hypercalls: 0,
            cpu_time: 0,
            fpu: FpuArea::default(),
            io: super::io_emul::VcpuIo::default(),
            cr4: 0,
            cr2: 0,
            misc_features_enables: 0,
            vmce: super::vmce::Vmce::default(),
            debug: super::debugreg::DebugRegs::default(),
            runstate: xen_public::vcpu::VcpuRunstateInfo { state: xen_public::vcpu::RUNSTATE_OFFLINE, ..Default::default() },
            runstate_guest: 0,
            time_info_guest: 0,
            periodic_period: DEFAULT_PERIODIC_NS,
            periodic_last: 0,
        }
    }
}

impl Vcpu {
    /// The GS base of the vCPU's current mode (kernel or user).
    pub fn gs_base(&self) -> u64 {
        if self.kernel_mode { self.gs_base_kernel } else { self.gs_base_user }
    }

    /// Whether the guest's CR4.DE is set (DR4/DR5 refused, I/O
    /// breakpoints allowed).
    pub fn cr4_de(&self) -> bool {
        self.cr4 & super::priv_op::CR4_DE != 0
    }
}

impl Vcpu {
    /// Enter run state `new` at system time `now` (Xen's
    /// `vcpu_runstate_change`): the time since the last change goes to the
    /// state being left. Entering the state it is in only moves time.
    pub fn runstate_change(&mut self, new: i32, now: u64) {
        let r = &mut self.runstate;
        let delta = now.saturating_sub(r.state_entry_time);
        if let Some(t) = r.time.get_mut(r.state as usize) {
            *t += delta;
        }
        r.state = new;
        r.state_entry_time = now;
    }

    /// The run state as VCPUOP_get_runstate_info reports it at `now`
    /// (Xen's `vcpu_runstate_get`): the time in the current state so far
    /// is added to it; `state_entry_time` is when it was entered.
    pub fn runstate_at(&self, now: u64) -> xen_public::vcpu::VcpuRunstateInfo {
        let mut r = self.runstate;
        let delta = now.saturating_sub(r.state_entry_time);
        if let Some(t) = r.time.get_mut(r.state as usize) {
            *t += delta;
        }
        r
    }

    /// Whether the periodic timer fires at `now` (Xen's
    /// `vcpu_periodic_timer_work`: it fires when a period has passed since
    /// it last fired, and the next period counts from `now`).
    pub fn periodic_due(&mut self, now: u64) -> bool {
        if self.periodic_period == 0 || now < self.periodic_last.saturating_add(self.periodic_period) {
            return false;
        }
        self.periodic_last = now;
        true
    }

    /// When the periodic timer fires next (`None`: stopped).
    pub fn periodic_deadline(&self) -> Option<u64> {
        (self.periodic_period != 0).then(|| self.periodic_last.saturating_add(self.periodic_period))
    }

    /// Set the periodic timer's period (0: stop) at `now` (Xen's
    /// `vcpu_set_periodic_timer`); it fires at once when a period has
    /// already passed since it last fired. Returns whether it fired.
    pub fn set_periodic(&mut self, period: u64, now: u64) -> bool {
        self.periodic_period = period;
        self.periodic_due(now)
    }
}

/// A bounce to deliver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounce {
    /// Handler address.
    pub eip: u64,
    /// Error code to push, if any.
    pub error_code: Option<u64>,
    /// Mask events on entry.
    pub mask_events: bool,
    /// Clear DF in the saved flags' successor (syscall bounce).
    pub clear_df: bool,
}

/// Sanitise flags for ring 3: IF set, IOPL and VM clear.
pub fn guest_rflags(f: u64) -> u64 {
    Rflags::from_bits_retain(f).difference(Rflags::IOPL | Rflags::VM).union(Rflags::IF).bits()
}

impl Vcpu {
    /// XEN_DOMCTL_setvcpucontext with a NULL context: the registers, the
    /// trap table, callbacks and kernel stack go back to their defaults
    /// (the upcall mask stays) and the vCPU is down. Its page-table and
    /// descriptor-table references were released by the caller.
    pub fn reset_guest_visible(&mut self) {
        let d = Vcpu::default();
        self.traps = d.traps;
        self.event_callback = d.event_callback;
        self.failsafe_callback = d.failsafe_callback;
        self.syscall_callback = d.syscall_callback;
        self.syscall_masks_events = d.syscall_masks_events;
        self.failsafe_masks_events = d.failsafe_masks_events;
        self.kernel_sp = d.kernel_sp;
        self.kernel_ss = d.kernel_ss;
        self.kernel_mode = d.kernel_mode;
        self.has_user_table = d.has_user_table;
        self.regs = d.regs;
        // A re-initialised vCPU arms no breakpoint of its old life (Xen's
        // arch_set_info_guest loads the context's debugreg[]).
        self.debug = d.debug;
        self.vcpu_up = false;
    }

    /// Build Xen's bounce frame on the guest kernel stack and point the
    /// registers at the handler. On `Err` nothing changed.
    pub fn bounce(&mut self, regs: &mut CpuUserRegs, b: Bounce, stack: &mut impl GuestStack) -> Result<(), Crash> {
        if b.eip == 0 {
            return Err(Crash::NoHandler(regs.entry_vector as u8));
        }
        if !is_canonical(b.eip) {
            return Err(Crash::NonCanonical(b.eip));
        }
        let from_user = !self.kernel_mode;
        let mut cs = regs.cs & 0xffff;
        let sp = if from_user {
            self.kernel_sp
        } else {
            cs &= !3; // Kernel context shows RPL 0 to the guest.
            regs.rsp
        };
        let sp = sp & !0xf;
        if !stack_ok(sp) {
            return Err(Crash::BadStack(sp));
        }
        let saved_mask = self.upcall_mask;
        // The frame shows the event mask as IF, and IOPL 0.
        let mut flags = Rflags::from_bits_retain(regs.rflags).difference(Rflags::IF | Rflags::IOPL);
        flags.set(Rflags::IF, !saved_mask);
        let flags = flags.bits();
        let cs_slot = cs | (u64::from(saved_mask) << 32);
        let mut frame = [0u64; 8];
        let words: &[u64] = match b.error_code {
            Some(ec) => {
                frame = [regs.rcx, regs.r11, ec, regs.rip, cs_slot, flags, regs.rsp, regs.ss];
                &frame
            }
            None => {
                frame[..7].copy_from_slice(&[regs.rcx, regs.r11, regs.rip, cs_slot, flags, regs.rsp, regs.ss]);
                &frame[..7]
            }
        };
        let base = sp.wrapping_sub(words.len() as u64 * 8);
        stack.write(base, words).map_err(|_| Crash::FaultWritingFrame(base))?;

        self.kernel_mode = true;
        if b.mask_events {
            self.upcall_mask = true;
        }
        regs.entry_vector |= ENTRY_SYSCALL;
        let mut rf = Rflags::from_bits_retain(regs.rflags).difference(Rflags::AC | Rflags::VM | Rflags::RF | Rflags::NT | Rflags::TF);
        if b.clear_df {
            rf.remove(Rflags::DF);
        }
        regs.rflags = guest_rflags(rf.bits());
        regs.ss = FLAT_SS64;
        regs.rsp = base;
        regs.cs = FLAT_CS64;
        regs.rip = b.eip;
        Ok(())
    }

    /// The bounce for a hardware exception, per the trap table. Page-fault
    /// error codes get their user bit from the guest's mode.
    pub fn exception_bounce(&self, vector: u8, error_code: Option<u64>) -> Bounce {
        let ti = self.traps[vector as usize];
        let error_code = error_code.map(|ec| if vector == 14 { (ec & !PFEC_USER) | if self.kernel_mode { 0 } else { PFEC_USER } } else { ec });
        Bounce { eip: ti.address, error_code, mask_events: ti.masks_events(), clear_df: false }
    }

    /// Whether a software `int vector` from the current mode is allowed by
    /// the trap table (Xen's `permit_softint`).
    pub fn permits_softint(&self, vector: u8) -> bool {
        let need = if self.kernel_mode { 1 } else { 3 };
        self.traps[vector as usize].dpl() >= need
    }

    /// The bounce for SYSCALL from guest user mode. With no callback the
    /// guest gets #UD at the syscall instruction, as on Xen.
    pub fn syscall_bounce(&self, regs: &mut CpuUserRegs) -> Bounce {
        if self.syscall_callback == 0 {
            regs.rip = regs.rip.wrapping_sub(2);
            regs.entry_vector = 6;
            let ud = self.traps[6];
            return Bounce { eip: ud.address, error_code: None, mask_events: ud.masks_events(), clear_df: false };
        }
        Bounce { eip: self.syscall_callback, error_code: None, mask_events: self.syscall_masks_events, clear_df: true }
    }

    /// The `iret` hypercall: pop Xen's `iret_context` from the guest stack
    /// and resume where it says. Returns the guest's saved RAX, which becomes
    /// the hypercall's "result".
    pub fn iret(&mut self, regs: &mut CpuUserRegs, stack: &mut impl GuestStack) -> Result<u64, Crash> {
        // {rax, r11, rcx, flags, rip, cs, rflags, rsp, ss}
        let mut ctx = [0u64; 9];
        stack.read(regs.rsp, &mut ctx).map_err(|_| Crash::FaultReadingIret(regs.rsp))?;
        let [rax, r11, rcx, flags, rip, cs, rf, rsp, _ss] = ctx;
        if !is_canonical(rip) || !is_canonical(rsp) {
            return Err(Crash::NonCanonical(rip));
        }
        let to_user = cs & 3 == 3;
        if to_user && !self.has_user_table {
            return Err(Crash::NoUserPageTables);
        }
        if to_user {
            self.kernel_mode = false;
        }
        regs.rip = rip;
        regs.cs = FLAT_CS64;
        regs.rflags = guest_rflags(rf);
        regs.rsp = rsp;
        regs.ss = FLAT_SS64;
        if !VgcfFlags::from_bits_retain(flags).contains(VgcfFlags::IN_SYSCALL) {
            regs.r11 = r11;
            regs.rcx = rcx;
        }
        self.upcall_mask = !Rflags::from_bits_retain(rf).contains(Rflags::IF);
        Ok(rax)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ModRM/REX register numbering every emulator decodes with.
    #[test]
    fn gpr_follows_the_instruction_encoding_order() {
        let mut r = CpuUserRegs::default();
        for n in 0..16u8 {
            *r.gpr_mut(n) = u64::from(n) + 100;
        }
        assert_eq!((r.rax, r.rcx, r.rdx, r.rbx, r.rsp, r.rbp, r.rsi, r.rdi), (100, 101, 102, 103, 104, 105, 106, 107));
        assert_eq!((r.r8, r.r15), (108, 115));
        assert_eq!(r.gpr(16 + 3), 103, "only the low 4 bits count");
        r.set_edx_eax(0xdead_beef_0123_4567);
        assert_eq!((r.rdx, r.rax), (0xdead_beef, 0x0123_4567), "each half zero-extended");
    }
    use std::collections::BTreeMap;

    /// Guest memory: writable words in [lo, hi).
    struct Stack {
        lo: u64,
        hi: u64,
        mem: BTreeMap<u64, u64>,
    }

    impl Stack {
        fn new(lo: u64, hi: u64) -> Self {
            Stack { lo, hi, mem: BTreeMap::new() }
        }
        fn at(&self, va: u64) -> u64 {
            self.mem[&va]
        }
    }

    impl GuestStack for Stack {
        fn write(&mut self, va: u64, words: &[u64]) -> Result<(), StackFault> {
            if va < self.lo || va + words.len() as u64 * 8 > self.hi {
                return Err(StackFault);
            }
            for (i, w) in words.iter().enumerate() {
                self.mem.insert(va + 8 * i as u64, *w);
            }
            Ok(())
        }
        fn read(&mut self, va: u64, words: &mut [u64]) -> Result<(), StackFault> {
            for (i, w) in words.iter_mut().enumerate() {
                *w = *self.mem.get(&(va + 8 * i as u64)).ok_or(StackFault)?;
            }
            Ok(())
        }
    }

    fn kernel_regs() -> CpuUserRegs {
        CpuUserRegs {
            rip: 0xffff_ffff_8000_1234,
            cs: FLAT_CS64,
            rflags: Rflags::IF.bits() | 0x2 | Rflags::TF.bits(),
            rsp: 0xffff_ffff_8000_8008,
            ss: FLAT_SS64,
            rcx: 0xc,
            r11: 0x11,
            entry_vector: 14,
            ..Default::default()
        }
    }

    fn vcpu_with_pf_handler() -> Vcpu {
        let mut v = Vcpu::default();
        v.traps[14] = TrapInfo { vector: 14, flags: 0, cs: 0xe033, address: 0xffff_ffff_8000_2000 };
        v.upcall_mask = false;
        v
    }

    #[test]
    fn exception_frame_matches_xen_layout_in_kernel_mode() {
        // ABI: bounce frame {RCX, R11, ERRCODE, RIP, CS, RFLAGS, RSP, SS}, 16-byte aligned,
        // CS RPL cleared in kernel context, saved upcall mask in CS bits 32-39.
        let mut v = vcpu_with_pf_handler();
        let mut regs = kernel_regs();
        let mut st = Stack::new(0xffff_ffff_8000_0000, 0xffff_ffff_8001_0000);
        let b = v.exception_bounce(14, Some(0x7));
        v.bounce(&mut regs, b, &mut st).unwrap();
        let base = 0xffff_ffff_8000_8000 - 8 * 8;
        assert_eq!(regs.rsp, base);
        let words: Vec<u64> = (0..8).map(|i| st.at(base + 8 * i)).collect();
        assert_eq!(
            words,
            [0xc, 0x11, 0x3, 0xffff_ffff_8000_1234, 0xe030, Rflags::IF.bits() | 0x2 | Rflags::TF.bits(), 0xffff_ffff_8000_8008, FLAT_SS64]
        );
        assert_eq!(regs.rip, 0xffff_ffff_8000_2000);
        assert_eq!(regs.cs, FLAT_CS64);
        assert_eq!(regs.rflags & Rflags::TF.bits(), 0, "TF cleared on trap");
        assert_ne!(regs.rflags & Rflags::IF.bits(), 0, "hardware IF always on");
    }

    #[test]
    fn page_fault_error_code_user_bit_follows_guest_mode() {
        let mut v = vcpu_with_pf_handler();
        assert_eq!(v.exception_bounce(14, Some(0x6)).error_code, Some(0x2));
        v.kernel_mode = false;
        assert_eq!(v.exception_bounce(14, Some(0x2)).error_code, Some(0x6));
    }

    #[test]
    fn masked_upcalls_are_saved_in_cs_and_flags() {
        let mut v = vcpu_with_pf_handler();
        v.upcall_mask = true;
        v.traps[14].flags = 4; // handler wants events masked
        let mut regs = kernel_regs();
        let mut st = Stack::new(0xffff_ffff_8000_0000, 0xffff_ffff_8001_0000);
        v.bounce(&mut regs, v.exception_bounce(14, Some(0)), &mut st).unwrap();
        let base = regs.rsp;
        assert_eq!(st.at(base + 32) >> 32, 1, "saved upcall mask");
        assert_eq!(st.at(base + 40) & Rflags::IF.bits(), 0, "saved IF reflects the mask");
        assert!(v.upcall_mask);
    }

    #[test]
    fn no_handler_crashes_and_leaves_registers_alone() {
        let mut v = Vcpu::default();
        let mut regs = kernel_regs();
        let before = regs;
        let mut st = Stack::new(0, u64::MAX);
        let b = v.exception_bounce(6, None);
        assert_eq!(v.bounce(&mut regs, b, &mut st), Err(Crash::NoHandler(14)));
        assert_eq!(regs, before);
    }

    #[test]
    fn fault_while_delivering_crashes() {
        // The guest's stack is unmapped: the frame cannot be written.
        let mut v = vcpu_with_pf_handler();
        let mut regs = kernel_regs();
        let before = regs;
        let mut st = Stack::new(0, 0x1000);
        let b = v.exception_bounce(14, Some(2));
        assert!(matches!(v.bounce(&mut regs, b, &mut st), Err(Crash::FaultWritingFrame(_))));
        assert_eq!(regs, before);
    }

    #[test]
    fn stack_in_hypervisor_range_crashes() {
        let mut v = vcpu_with_pf_handler();
        let mut regs = kernel_regs();
        regs.rsp = 0xffff_8300_0000_1000;
        let mut st = Stack::new(0, u64::MAX);
        assert!(matches!(v.bounce(&mut regs, v.exception_bounce(14, Some(0)), &mut st), Err(Crash::BadStack(_))));
    }

    #[test]
    fn user_mode_syscall_bounces_to_the_callback_on_the_kernel_stack() {
        // ABI: SYSCALL from guest user mode goes to the syscall callback, frame
        // {RCX, R11, RIP, CS, RFLAGS, RSP, SS} on the stack_switch stack, DF cleared.
        let mut v = Vcpu { kernel_mode: false, kernel_sp: 0xffff_ffff_8000_9000, syscall_callback: 0xffff_ffff_8000_3000, ..Default::default() };
        let mut regs = CpuUserRegs {
            rip: 0x40_1002,
            rcx: 0x40_1002,
            r11: Rflags::IF.bits() | Rflags::DF.bits() | 2,
            rflags: Rflags::IF.bits() | Rflags::DF.bits() | 2,
            cs: FLAT_CS64,
            ss: FLAT_SS64,
            rsp: 0x7fff_0000,
            entry_vector: ENTRY_SYSCALL,
            ..Default::default()
        };
        let mut st = Stack::new(0xffff_ffff_8000_0000, 0xffff_ffff_8001_0000);
        let b = v.syscall_bounce(&mut regs);
        v.bounce(&mut regs, b, &mut st).unwrap();
        assert!(v.kernel_mode);
        assert_eq!(regs.rip, 0xffff_ffff_8000_3000);
        assert_eq!(regs.rsp, 0xffff_ffff_8000_9000 - 7 * 8);
        assert_eq!(st.at(regs.rsp + 16), 0x40_1002, "user RIP");
        assert_eq!(st.at(regs.rsp + 24) & 3, 3, "user CS keeps RPL 3");
        assert_eq!(st.at(regs.rsp + 40), 0x7fff_0000, "user RSP");
        assert_eq!(regs.rflags & Rflags::DF.bits(), 0);
    }

    #[test]
    fn syscall_without_callback_is_ud_at_the_instruction() {
        let mut v = Vcpu { kernel_mode: false, ..Default::default() };
        v.traps[6].address = 0xffff_ffff_8000_4000;
        let mut regs = CpuUserRegs { rip: 0x1002, ..Default::default() };
        let b = v.syscall_bounce(&mut regs);
        assert_eq!(regs.rip, 0x1000);
        assert_eq!(b.eip, 0xffff_ffff_8000_4000);
    }

    #[test]
    fn iret_restores_the_context_and_the_event_mask() {
        // ABI: iret_context {rax, r11, rcx, flags, rip, cs, rflags, rsp, ss}.
        let mut v = Vcpu { upcall_mask: true, ..Default::default() };
        let mut st = Stack::new(0, u64::MAX);
        let sp = 0xffff_ffff_8000_7000;
        st.write(sp, &[0xaa, 0x11, 0xcc, 0, 0xffff_ffff_8000_1000, 0xe030, Rflags::IF.bits() | Rflags::IOPL.bits(), 0xffff_ffff_8000_8000, 0xe02b])
            .unwrap();
        let mut regs = CpuUserRegs { rsp: sp, ..Default::default() };
        assert_eq!(v.iret(&mut regs, &mut st), Ok(0xaa));
        assert_eq!(regs.rip, 0xffff_ffff_8000_1000);
        assert_eq!(regs.cs, FLAT_CS64, "forced to ring 3");
        assert_eq!(regs.rflags & Rflags::IOPL.bits(), 0);
        assert_eq!((regs.rcx, regs.r11), (0xcc, 0x11));
        assert!(!v.upcall_mask, "IF in the frame unmasks events");
        assert!(v.kernel_mode, "RPL 0 in the frame stays in kernel mode");
    }

    #[test]
    fn iret_to_user_needs_user_page_tables() {
        let mut v = Vcpu::default();
        let mut st = Stack::new(0, u64::MAX);
        st.write(0x1000, &[0, 0, 0, 0, 0x40_0000, 0xe033, Rflags::IF.bits(), 0x7000, 0xe02b]).unwrap();
        let mut regs = CpuUserRegs { rsp: 0x1000, ..Default::default() };
        assert_eq!(v.iret(&mut regs, &mut st), Err(Crash::NoUserPageTables));
        v.has_user_table = true;
        assert!(v.iret(&mut regs, &mut st).is_ok());
        assert!(!v.kernel_mode);
    }

    #[test]
    fn iret_to_a_non_canonical_rip_crashes() {
        let mut v = Vcpu::default();
        let mut st = Stack::new(0, u64::MAX);
        st.write(0x1000, &[0, 0, 0, 0, 0x8000_0000_0000_0000, 0xe030, Rflags::IF.bits(), 0x7000, 0xe02b]).unwrap();
        let mut regs = CpuUserRegs { rsp: 0x1000, ..Default::default() };
        assert!(matches!(v.iret(&mut regs, &mut st), Err(Crash::NonCanonical(_))));
    }

    #[test]
    fn softint_permission_follows_dpl_and_mode() {
        let mut v = Vcpu::default();
        v.traps[0x80].flags = 3;
        v.traps[0x20].flags = 1;
        assert!(v.permits_softint(0x80) && v.permits_softint(0x20));
        v.kernel_mode = false;
        assert!(v.permits_softint(0x80) && !v.permits_softint(0x20));
    }
}
