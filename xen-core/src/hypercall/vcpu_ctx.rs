//! XEN_DOMCTL_setvcpucontext, getvcpucontext and getvcpuinfo: how a domain
//! builder starts another domain's vCPU, and how dom0 inspects it.
//!
//! Invariant: a context is installed only whole: every check (canonical
//! addresses, the CR3 frame validating as an L4 of the target domain)
//! passes before the target's state changes, and a failed install leaves
//! it as it was.

use super::*;
use crate::domain::context::{VcpuGuestContext, vgcf};
use xen_public::vcpu as wire;

/// XEN_DOMCTL_setvcpucontext on `o` with the context `ctx` (`None`: the
/// NULL handle, a vCPU reset).
pub(super) fn set(o: &mut Domain, vcpu: u32, ctx: Option<&wire::VcpuGuestContext>) -> Ret {
    if vcpu >= o.max_vcpus || !o.vcpu_created {
        return -EINVAL;
    }
    let Some(raw) = ctx else {
        reset(o);
        return 0;
    };
    let c = VcpuGuestContext::parse(raw);
    if c.check().is_err() {
        return -EINVAL;
    }
    let cr3 = c.ctrlreg[3] >> 12;
    let user_cr3 = c.ctrlreg[1] >> 12;
    if o.vcpu.vcpu_up && (cr3 << 12 != o.vcpu.guest_table || user_cr3 << 12 != o.vcpu.guest_table_user) {
        // An initialised vCPU keeps its page tables (Xen compares them).
        return -EINVAL;
    }
    if !o.vcpu.vcpu_up {
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
        o.vcpu.guest_table = cr3 << 12;
        o.vcpu.guest_table_user = user_cr3 << 12;
        o.vcpu.has_user_table = user_cr3 != 0;
    }
    apply(o, &c);
    0
}

/// Take the decoded context into the vCPU (already checked).
fn apply(o: &mut Domain, c: &VcpuGuestContext) {
    o.vcpu.traps = c.traps;
    o.vcpu.event_callback = c.callbacks[0];
    o.vcpu.failsafe_callback = c.callbacks[1];
    o.vcpu.syscall_callback = c.callbacks[2];
    o.vcpu.syscall_masks_events = c.flags & vgcf::SYSCALL_DISABLES_EVENTS != 0;
    o.vcpu.kernel_ss = c.kernel_ss | 3;
    o.vcpu.kernel_sp = c.kernel_sp;
    o.vcpu.kernel_mode = c.flags & vgcf::IN_KERNEL != 0;
    o.vm_assist = c.vm_assist & VMASST_VALID;
    [o.vcpu.fs_base, o.vcpu.gs_base_kernel, o.vcpu.gs_base_user] = c.bases;
    o.vcpu.regs = c.regs;
    if c.ldt.1 != 0 {
        let _ = mmu::set_ldt(o, c.ldt.0, c.ldt.1);
    }
    o.vcpu.vcpu_up = c.flags & vgcf::ONLINE != 0;
    o.init_shared();
}

/// A NULL context: the vCPU goes back to its state before any context.
fn reset(o: &mut Domain) {
    mmu::release_vcpu_refs(o);
    o.vcpu.reset_guest_visible();
}

/// XEN_DOMCTL_getvcpucontext of `o` into `out`.
pub(super) fn get(o: &Domain, vcpu: u32, out: &mut wire::VcpuGuestContext) -> Ret {
    if vcpu >= o.max_vcpus || !o.vcpu_created {
        return -EINVAL;
    }
    if !o.vcpu.vcpu_up && o.vcpu.guest_table == 0 {
        return -xen_public::errno::ENODATA;
    }
    let mut flags = vgcf::I387_VALID;
    if o.vcpu.vcpu_up {
        flags |= vgcf::ONLINE;
    }
    if o.vcpu.kernel_mode {
        flags |= vgcf::IN_KERNEL;
    }
    if o.vcpu.syscall_masks_events {
        flags |= vgcf::SYSCALL_DISABLES_EVENTS;
    }
    let mut ctrlreg = [0u64; 8];
    ctrlreg[3] = o.vcpu.guest_table;
    ctrlreg[1] = o.vcpu.guest_table_user;
    let mut gdt_frames = [0u64; 16];
    gdt_frames[..14].copy_from_slice(&o.vcpu.gdt_frames);
    let c = VcpuGuestContext {
        flags,
        regs: o.vcpu.regs,
        saved_upcall_mask: u8::from(o.vcpu.upcall_mask),
        traps: o.vcpu.traps,
        ldt: o.vcpu.ldt,
        gdt_frames,
        gdt_ents: o.vcpu.gdt_ents,
        kernel_ss: o.vcpu.kernel_ss,
        kernel_sp: o.vcpu.kernel_sp,
        ctrlreg,
        callbacks: [o.vcpu.event_callback, o.vcpu.failsafe_callback, o.vcpu.syscall_callback],
        vm_assist: o.vm_assist,
        bases: [o.vcpu.fs_base, o.vcpu.gs_base_kernel, o.vcpu.gs_base_user],
    };
    *out = c.encode();
    0
}

/// XEN_DOMCTL_getvcpuinfo of `o` into the domctl's union at `u`:
/// online, blocked, running, cpu_time, cpu.
pub(super) fn info(o: &Domain, running: bool, u: &mut xen_public::domctl::XenDomctlGetvcpuinfo) -> Ret {
    if u.vcpu >= o.max_vcpus {
        return -EINVAL;
    }
    if !o.vcpu_created {
        return -ESRCH;
    }
    // A vCPU running right now (on this or another CPU) has also used the
    // time since it was last switched in.
    let live = crate::schedule::running_on(o.slot);
    let now = crate::guest::system_time();
    u.online = u8::from(o.vcpu.vcpu_up);
    u.blocked = u8::from(o.vcpu.blocked);
    u.running = u8::from(running || live.is_some());
    u.cpu_time = o.vcpu.cpu_time + live.map_or(0, |(_, since)| now.saturating_sub(since));
    u.cpu = live.map_or(o.vcpu.last_cpu, |(cpu, _)| cpu) as u32;
    0
}
