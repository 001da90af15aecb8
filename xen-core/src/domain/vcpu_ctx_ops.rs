//! XEN_DOMCTL_setvcpucontext, getvcpucontext and getvcpuinfo: how a domain
//! builder starts another domain's vCPU, and how dom0 inspects it. Generic
//! over the machine ([`VcpuHost`]: shared_info, where vCPUs run and the
//! clock; through [`MmuHost`] the frame table, where the base pointers'
//! and the LDT's references are taken by `mmu_ops` itself), so the checks,
//! their order and the CR3 validation are tested on the host.
//!
//! Invariant: a context is installed only whole: every check (canonical
//! addresses, the CR3 frame validating as an L4 of the target domain)
//! passes before the target's state changes, and a failed install leaves
//! it as it was.
#![forbid(unsafe_code)]

use super::context::{VcpuGuestContext, VgcfFlags};
use super::debugreg::DebugRegs;
use super::info_ops::VMASST_VALID;
use super::mmu_ops::{self, MmuHost, restart_or_einval};
use super::priv_op::PV_CR4_GUEST_MASK;
use super::vcpu::Vcpu;
use super::{Domain, Guest};
use xen_public::errno::{EINVAL, ENODATA, ESRCH};
use xen_public::vcpu as wire;

/// A hypercall's result for the guest's RAX (a negated errno on failure).
type Ret = i64;

/// What the vCPU-context operations need from the live machine beyond
/// the MMU's ([`MmuHost`]: base pointers, LDT, the frame table).
pub trait VcpuHost: MmuHost {
    /// Publish `v`'s upcall mask and the time in `d`'s shared_info.
    fn init_shared(&mut self, d: &Domain, v: &Vcpu);
    /// Take `v`'s upcall mask from `d`'s shared_info as the toolstack left
    /// it, and publish the time there.
    fn attach_shared(&mut self, d: &Domain, v: &mut Vcpu);
    /// The CPU running vCPU `vcpu_id` of the domain in `slot`, and since
    /// when (system time); `None` if it runs nowhere.
    fn running_on(&self, slot: usize, vcpu_id: u32) -> Option<(usize, u64)>;
    /// Nanoseconds since boot.
    fn system_time(&self) -> u64;
}

/// XEN_DOMCTL_setvcpucontext on vCPU `vcpu` of `g` with the context `ctx`
/// (`None`: the NULL handle, a vCPU reset).
pub fn set<H: VcpuHost>(h: &mut H, g: &mut Guest, vcpu: u32, ctx: Option<&wire::VcpuGuestContext>) -> Ret {
    let Guest { domain: o, vcpus } = g;
    let Some(v) = vcpus.get_mut(vcpu as usize).filter(|_| vcpu < o.max_vcpus && o.vcpu_created) else {
        return -EINVAL;
    };
    let Some(raw) = ctx else {
        mmu_ops::release_vcpu_refs(h, v);
        v.reset_guest_visible();
        return 0;
    };
    let c = VcpuGuestContext::parse(raw);
    if c.check().is_err() {
        return -EINVAL;
    }
    let cr3 = c.ctrlreg[3] >> 12;
    let user_cr3 = c.ctrlreg[1] >> 12;
    if v.vcpu_up && (cr3 << 12 != v.guest_table || user_cr3 << 12 != v.guest_table_user) {
        // An initialised vCPU keeps its page tables (Xen compares them).
        return -EINVAL;
    }
    if !v.vcpu_up {
        if let Err(e) = install_bases(h, o, cr3, user_cr3) {
            return e;
        }
        v.guest_table = cr3 << 12;
        v.guest_table_user = user_cr3 << 12;
        v.has_user_table = user_cr3 != 0;
    }
    apply(h, v, o, &c);
    0
}

/// Take the references of a not-yet-running vCPU's base pointers (kernel
/// `cr3`, user `user_cr3`, as frame numbers): both or neither.
fn install_bases<H: VcpuHost>(h: &mut H, o: &Domain, cr3: u64, user_cr3: u64) -> Result<(), i64> {
    if cr3 == 0 {
        return Err(-EINVAL);
    }
    mmu_ops::drain_pending(h, o.domid)?;
    mmu_ops::switch_base(h, o, cr3, 0).map_err(restart_or_einval)?;
    if user_cr3 != 0
        && let Err(e) = mmu_ops::switch_base(h, o, user_cr3, 0)
    {
        let _ = mmu_ops::switch_base(h, o, 0, cr3 << 12);
        return Err(restart_or_einval(e));
    }
    Ok(())
}

/// Take the decoded context into `v`, a vCPU of `o` (already checked).
fn apply<H: VcpuHost>(h: &mut H, v: &mut Vcpu, o: &mut Domain, c: &VcpuGuestContext) {
    v.traps = c.traps;
    v.event_callback = c.callbacks[0];
    v.failsafe_callback = c.callbacks[1];
    v.syscall_callback = c.callbacks[2];
    v.syscall_masks_events = c.flags.contains(VgcfFlags::SYSCALL_DISABLES_EVENTS);
    v.failsafe_masks_events = c.flags.contains(VgcfFlags::FAILSAFE_DISABLES_EVENTS);
    v.kernel_ss = c.kernel_ss | 3;
    v.kernel_sp = c.kernel_sp;
    v.kernel_mode = c.flags.contains(VgcfFlags::IN_KERNEL);
    o.vm_assist = c.vm_assist & VMASST_VALID;
    load_cr4_and_debugregs(v, c);
    [v.fs_base, v.gs_base_kernel, v.gs_base_user] = c.bases;
    v.regs = c.regs;
    if c.ldt.1 != 0 {
        // Left empty if it cannot be installed, as MMUEXT_SET_LDT.
        let _ = mmu_ops::set_ldt(h, v, o, c.ldt.0, c.ldt.1);
    }
    v.vcpu_up = c.flags.contains(VgcfFlags::ONLINE);
    // Xen's arch_set_info_guest leaves vcpu_info's evtchn_upcall_mask as
    // the toolstack wrote it (libxc masks every vCPU; Linux unmasks once
    // its per-CPU data exists): the context's IF does not set it.
    h.attach_shared(o, v);
}

/// CR4 and the debug registers from a context, as Xen's
/// `arch_set_info_guest`: CR4 keeps only the bits a PV guest controls
/// (`pv_fixup_guest_cr4`); the debug registers start from their defaults
/// and each of DR0-DR3, DR6 and DR7 goes through `set_debugreg`'s checks,
/// a refused value leaving the default (Xen ignores the result).
fn load_cr4_and_debugregs(v: &mut Vcpu, c: &VcpuGuestContext) {
    v.cr4 = c.ctrlreg[4] & PV_CR4_GUEST_MASK;
    v.debug = DebugRegs::default();
    let de = v.cr4_de();
    for reg in [0, 1, 2, 3, 6, 7] {
        let _ = v.debug.set(de, reg, c.debugreg[reg as usize]);
    }
}

/// The debug registers as a context carries them (DR4 and DR5 zero).
fn saved_debugregs(v: &Vcpu) -> [u64; 8] {
    let de = v.cr4_de();
    core::array::from_fn(|i| if i == 4 || i == 5 { 0 } else { v.debug.get(de, i as u32).unwrap_or(0) })
}

/// XEN_DOMCTL_getvcpucontext of vCPU `vcpu` of `g` into `out`.
pub fn get(g: &Guest, vcpu: u32, out: &mut wire::VcpuGuestContext) -> Ret {
    let o = &g.domain;
    let Some(v) = g.vcpus.get(vcpu as usize).filter(|_| vcpu < o.max_vcpus && o.vcpu_created) else {
        return -EINVAL;
    };
    if !v.vcpu_up && v.guest_table == 0 {
        return -ENODATA;
    }
    let mut flags = VgcfFlags::I387_VALID;
    flags.set(VgcfFlags::ONLINE, v.vcpu_up);
    flags.set(VgcfFlags::IN_KERNEL, v.kernel_mode);
    flags.set(VgcfFlags::SYSCALL_DISABLES_EVENTS, v.syscall_masks_events);
    flags.set(VgcfFlags::FAILSAFE_DISABLES_EVENTS, v.failsafe_masks_events);
    let mut ctrlreg = [0u64; 8];
    ctrlreg[3] = v.guest_table;
    ctrlreg[1] = v.guest_table_user;
    ctrlreg[4] = v.cr4;
    let mut gdt_frames = [0u64; 16];
    gdt_frames[..14].copy_from_slice(&v.gdt_frames);
    let c = VcpuGuestContext {
        flags,
        regs: v.regs,
        saved_upcall_mask: u8::from(v.upcall_mask),
        traps: v.traps,
        ldt: v.ldt,
        gdt_frames,
        gdt_ents: v.gdt_ents,
        kernel_ss: v.kernel_ss,
        kernel_sp: v.kernel_sp,
        ctrlreg,
        debugreg: saved_debugregs(v),
        callbacks: [v.event_callback, v.failsafe_callback, v.syscall_callback],
        vm_assist: o.vm_assist,
        bases: [v.fs_base, v.gs_base_kernel, v.gs_base_user],
    };
    *out = c.encode();
    0
}

/// XEN_DOMCTL_getvcpuinfo of `o` (whose vCPUs at hand are `vcpus`;
/// `running` for the caller's own) into the domctl's union at `u`: online,
/// blocked, running, cpu_time, cpu.
pub fn info<H: VcpuHost>(h: &H, o: &Domain, vcpus: &[Vcpu], running: bool, u: &mut xen_public::domctl::XenDomctlGetvcpuinfo) -> Ret {
    if u.vcpu >= o.max_vcpus {
        return -EINVAL;
    }
    if !o.vcpu_created {
        return -ESRCH;
    }
    let Some(v) = vcpus.get(u.vcpu as usize) else { return -EINVAL };
    // A vCPU running right now (on this or another CPU) has also used the
    // time since it was last switched in.
    let live = h.running_on(o.slot, v.vcpu_id);
    let now = h.system_time();
    u.online = u8::from(v.vcpu_up);
    u.blocked = u8::from(v.blocked);
    u.running = u8::from(running || live.is_some());
    u.cpu_time = v.cpu_time + live.map_or(0, |(_, since)| now.saturating_sub(since));
    u.cpu = live.map_or(v.last_cpu, |(cpu, _)| cpu) as u32;
    0
}
