//! XEN_DOMCTL_setvcpucontext, getvcpucontext and getvcpuinfo: how a domain
//! builder starts another domain's vCPU, and how dom0 inspects it.
//!
//! Invariant: a context is installed only whole: every check (canonical
//! addresses, the CR3 frame validating as an L4 of the target domain)
//! passes before the target's state changes, and a failed install leaves
//! it as it was.

use super::*;
use crate::domain::context::{VcpuGuestContext, VgcfFlags};
use crate::guest::Guest;
use xen_public::vcpu as wire;

/// XEN_DOMCTL_setvcpucontext on vCPU `vcpu` of `g` with the context `ctx`
/// (`None`: the NULL handle, a vCPU reset).
pub(super) fn set(g: &mut Guest, vcpu: u32, ctx: Option<&wire::VcpuGuestContext>) -> Ret {
    let Guest { domain: o, vcpus } = g;
    let Some(v) = vcpus.get_mut(vcpu as usize).filter(|_| vcpu < o.max_vcpus && o.vcpu_created) else {
        return -EINVAL;
    };
    let Some(raw) = ctx else {
        reset(v);
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
        if cr3 == 0 {
            return -EINVAL;
        }
        if let Err(e) = mmu::drain_pending(o.domid) {
            return e;
        }
        if let Err(e) = mmu::switch_base(o, cr3, 0) {
            return super::restart_or_einval(e);
        }
        if user_cr3 != 0
            && let Err(e) = mmu::switch_base(o, user_cr3, 0)
        {
            let _ = mmu::switch_base(o, 0, cr3 << 12);
            return super::restart_or_einval(e);
        }
        v.guest_table = cr3 << 12;
        v.guest_table_user = user_cr3 << 12;
        v.has_user_table = user_cr3 != 0;
    }
    apply(v, o, &c);
    0
}

/// Take the decoded context into `v`, a vCPU of `o` (already checked).
fn apply(v: &mut Vcpu, o: &mut Domain, c: &VcpuGuestContext) {
    v.traps = c.traps;
    v.event_callback = c.callbacks[0];
    v.failsafe_callback = c.callbacks[1];
    v.syscall_callback = c.callbacks[2];
    v.syscall_masks_events = c.flags.contains(VgcfFlags::SYSCALL_DISABLES_EVENTS);
    v.kernel_ss = c.kernel_ss | 3;
    v.kernel_sp = c.kernel_sp;
    v.kernel_mode = c.flags.contains(VgcfFlags::IN_KERNEL);
    o.vm_assist = c.vm_assist & VMASST_VALID;
    [v.fs_base, v.gs_base_kernel, v.gs_base_user] = c.bases;
    v.regs = c.regs;
    if c.ldt.1 != 0 {
        let _ = mmu::set_ldt(v, o, c.ldt.0, c.ldt.1);
    }
    v.vcpu_up = c.flags.contains(VgcfFlags::ONLINE);
    o.init_shared(v);
}

/// A NULL context: the vCPU goes back to its state before any context.
fn reset(v: &mut Vcpu) {
    mmu::release_vcpu_refs(v);
    v.reset_guest_visible();
}

/// XEN_DOMCTL_getvcpucontext of vCPU `vcpu` of `g` into `out`.
pub(super) fn get(g: &Guest, vcpu: u32, out: &mut wire::VcpuGuestContext) -> Ret {
    let o = &g.domain;
    let Some(v) = g.vcpus.get(vcpu as usize).filter(|_| vcpu < o.max_vcpus && o.vcpu_created) else {
        return -EINVAL;
    };
    if !v.vcpu_up && v.guest_table == 0 {
        return -xen_public::errno::ENODATA;
    }
    let mut flags = VgcfFlags::I387_VALID;
    flags.set(VgcfFlags::ONLINE, v.vcpu_up);
    flags.set(VgcfFlags::IN_KERNEL, v.kernel_mode);
    flags.set(VgcfFlags::SYSCALL_DISABLES_EVENTS, v.syscall_masks_events);
    let mut ctrlreg = [0u64; 8];
    ctrlreg[3] = v.guest_table;
    ctrlreg[1] = v.guest_table_user;
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
        callbacks: [v.event_callback, v.failsafe_callback, v.syscall_callback],
        vm_assist: o.vm_assist,
        bases: [v.fs_base, v.gs_base_kernel, v.gs_base_user],
    };
    *out = c.encode();
    0
}

/// XEN_DOMCTL_getvcpuinfo of `o` (whose vCPUs at hand are `vcpus`) into
/// the domctl's union at `u`: online, blocked, running, cpu_time, cpu.
pub(super) fn info(o: &Domain, vcpus: &[Vcpu], running: bool, u: &mut xen_public::domctl::XenDomctlGetvcpuinfo) -> Ret {
    if u.vcpu >= o.max_vcpus {
        return -EINVAL;
    }
    if !o.vcpu_created {
        return -ESRCH;
    }
    let Some(v) = vcpus.get(u.vcpu as usize) else { return -EINVAL };
    // A vCPU running right now (on this or another CPU) has also used the
    // time since it was last switched in.
    let live = crate::schedule::running_on(crate::schedule::VcpuId::new(o.slot, v.vcpu_id as usize));
    let now = crate::guest::system_time();
    u.online = u8::from(v.vcpu_up);
    u.blocked = u8::from(v.blocked);
    u.running = u8::from(running || live.is_some());
    u.cpu_time = v.cpu_time + live.map_or(0, |(_, since)| now.saturating_sub(since));
    u.cpu = live.map_or(v.last_cpu, |(cpu, _)| cpu) as u32;
    0
}
