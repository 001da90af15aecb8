//! The hypercalls about the calling vCPU: `set_trap_table`,
//! `stack_switch`, `set_callbacks`, `callback_op`, `fpu_taskswitch`,
//! `set_segment_base` and `vcpu_op` (is_up, the runstate and time areas,
//! `register_vcpu_info`, whose frame keeps a writable reference through
//! [`VcpuHost`], the timers), Xen's `access_ok` for guest areas, and the
//! continuation every long hypercall uses. Generic over [`GuestAccess`]
//! and [`VcpuHost`], so decoding, errno and continuations are tested on
//! the host.
//!
//! Invariants: an address that would reach the hardware (trap and callback
//! entry points, segment bases) is canonical or refused with Xen's errno;
//! a failed guest access is -EFAULT and leaves what was already taken; a
//! continuation re-issues the same hypercall with arguments advanced past
//! what was done.
#![forbid(unsafe_code)]

use super::Domain;
use super::guest_mem::{GuestAccess, rc};
use super::host::FrameHost;
use super::vcpu::{CpuUserRegs, TrapInfo, Vcpu, is_canonical};
use crate::mm::guest_walk::guest_va_ok;
use xen_public::errno::{EFAULT, EINVAL, ENOENT, ENOSYS, ENXIO};
use xen_public::hypercall as nr;

/// A hypercall's result for the guest's RAX (a negated errno on failure).
pub type Ret = i64;

/// Make the guest re-issue the current hypercall (a continuation): SYSCALL
/// is two bytes, and RAX must hold the number again. Returns that number.
pub fn continue_later(regs: &mut CpuUserRegs, op: u64) -> u64 {
    regs.rip = regs.rip.wrapping_sub(2);
    op
}

/// Trap-table entries handled per call before a continuation.
pub const TRAPS_PER_CALL: u64 = 64;

/// `set_trap_table(traps)`: entries until one with address 0 (RDI points
/// at the array; 0 clears the table). After [`TRAPS_PER_CALL`] entries, or
/// sooner when `preempt_due` says so (after at least one), the call
/// continues with RDI past what was taken.
pub fn set_trap_table(v: &mut Vcpu, mem: &impl GuestAccess, regs: &mut CpuUserRegs, mut preempt_due: impl FnMut() -> bool) -> Ret {
    let mut ptr = regs.rdi;
    if ptr == 0 {
        v.traps = [TrapInfo::default(); 256];
        return 0;
    }
    for i in 0..TRAPS_PER_CALL {
        if i > 0 && preempt_due() {
            break;
        }
        let Ok(t) = mem.copy_from::<xen_public::vcpu::TrapInfo>(ptr) else { return -EFAULT };
        if t.address == 0 {
            return 0;
        }
        if !is_canonical(t.address) {
            return -EINVAL;
        }
        let ti = TrapInfo { vector: t.vector, flags: t.flags, cs: t.cs, address: t.address };
        v.traps[ti.vector as usize] = ti;
        ptr += core::mem::size_of::<xen_public::vcpu::TrapInfo>() as u64;
    }
    regs.rdi = ptr;
    continue_later(regs, nr::SET_TRAP_TABLE) as i64
}

/// `stack_switch(ss, sp)`: the kernel stack for bounces from user mode.
pub fn stack_switch(v: &mut Vcpu, ss: u64, sp: u64) -> Ret {
    // Xen forces the stack selector's RPL for the guest; ring 3 here.
    v.kernel_ss = ss | 3;
    v.kernel_sp = sp;
    0
}

/// `set_callbacks(event, failsafe, syscall)`.
pub fn set_callbacks(v: &mut Vcpu, event: u64, failsafe: u64, syscall: u64) -> Ret {
    // As in Xen, each registration that fails (non-canonical) is ignored
    // and the hypercall still returns 0.
    let _ = register_callback(v, CALLBACKTYPE_EVENT, 0, event);
    let _ = register_callback(v, CALLBACKTYPE_FAILSAFE, 0, failsafe);
    let _ = register_callback(v, CALLBACKTYPE_SYSCALL, 0, syscall);
    0
}

use xen_public::callback::{
    CALLBACKF_MASK_EVENTS, CALLBACKTYPE_EVENT, CALLBACKTYPE_FAILSAFE, CALLBACKTYPE_NMI, CALLBACKTYPE_SYSCALL, CALLBACKTYPE_SYSCALL32,
    CALLBACKTYPE_SYSENTER,
};

/// Xen 4.17's `register_guest_callback` (`pv/callback.c`): the address is
/// checked before the type; type 3 (`CALLBACKTYPE_sysenter_deprecated`)
/// and every other number Xen does not name are -ENOSYS.
fn register_callback(v: &mut Vcpu, kind: u16, flags: u16, address: u64) -> Ret {
    if !is_canonical(address) {
        return -EINVAL;
    }
    let mask = flags & CALLBACKF_MASK_EVENTS != 0;
    match kind {
        CALLBACKTYPE_EVENT => v.event_callback = address,
        CALLBACKTYPE_FAILSAFE => {
            v.failsafe_callback = address;
            v.failsafe_masks_events = mask;
        }
        CALLBACKTYPE_SYSCALL => {
            v.syscall_callback = address;
            v.syscall_masks_events = mask;
        }
        // 32-bit user mode is not supported: accepted and never used, as
        // on a Xen without 32-bit PV guests.
        CALLBACKTYPE_SYSCALL32 | CALLBACKTYPE_SYSENTER => {}
        CALLBACKTYPE_NMI => v.traps[2] = TrapInfo { vector: 2, flags: 4, cs: 0xe033, address },
        _ => return -ENOSYS,
    }
    0
}

/// `callback_op(cmd, arg)`: CALLBACKOP_register and CALLBACKOP_unregister.
pub fn callback_op(v: &mut Vcpu, mem: &impl GuestAccess, cmd: u32, arg: u64) -> Ret {
    use xen_public::callback::{CALLBACKOP_REGISTER, CALLBACKOP_UNREGISTER};
    match u64::from(cmd) {
        CALLBACKOP_REGISTER => {
            let Ok(c) = mem.copy_from::<xen_public::callback::CallbackRegister>(arg) else { return -EFAULT };
            register_callback(v, c.type_, c.flags, c.address)
        }
        CALLBACKOP_UNREGISTER => {
            let Ok(c) = mem.copy_from::<xen_public::callback::CallbackUnregister>(arg) else { return -EFAULT };
            match c.type_ {
                CALLBACKTYPE_NMI => {
                    v.traps[2] = TrapInfo::default();
                    0
                }
                CALLBACKTYPE_EVENT | CALLBACKTYPE_FAILSAFE | CALLBACKTYPE_SYSCALL | CALLBACKTYPE_SYSCALL32 | CALLBACKTYPE_SYSENTER => -EINVAL,
                _ => -ENOSYS,
            }
        }
        _ => -ENOSYS,
    }
}

/// `fpu_taskswitch(set)`: the guest's virtual CR0.TS (loaded on resume).
pub fn fpu_taskswitch(v: &mut Vcpu, set: u64) -> Ret {
    v.fpu_ts = set as u32 != 0;
    0
}

/// `set_segment_base(which, base)`.
pub fn set_segment_base(v: &mut Vcpu, which: u32, base: u64) -> Ret {
    const SEGBASE_FS: u32 = 0;
    const SEGBASE_GS_USER: u32 = 1;
    const SEGBASE_GS_KERNEL: u32 = 2;
    const SEGBASE_GS_USER_SEL: u32 = 3;
    let canonical = is_canonical(base);
    match which {
        SEGBASE_FS | SEGBASE_GS_USER | SEGBASE_GS_KERNEL if !canonical => -EINVAL,
        SEGBASE_FS => {
            v.fs_base = base;
            0
        }
        SEGBASE_GS_USER => {
            v.gs_base_user = base;
            0
        }
        SEGBASE_GS_KERNEL => {
            v.gs_base_kernel = base;
            0
        }
        SEGBASE_GS_USER_SEL => {
            // Every selector a guest can name in xen-core's GDT is flat (or
            // NUL, or faults and is NULed, as in Xen): the base becomes 0.
            v.gs_base_user = 0;
            0
        }
        _ => -EINVAL,
    }
}

/// What `vcpu_op` needs from the machine beyond the caller: the clock,
/// the timers and the frames a moved `vcpu_info` lives in.
pub trait VcpuHost: FrameHost {
    /// System time now (ns).
    fn now(&self) -> u64;
    /// Arm `v`'s single-shot timer at `deadline` (0: stop it).
    fn set_singleshot(&mut self, v: &mut Vcpu, deadline: u64);
    /// `v`'s periodic timer changed; `fired` says it fired at once
    /// (VIRQ_TIMER is due).
    fn periodic_changed(&mut self, d: &mut Domain, v: &mut Vcpu, fired: bool);
    /// Copy `v`'s `vcpu_info` from where it is now to byte `offset` of
    /// frame `mfn` (which `d` owns and which is typed writable), then mark
    /// every event selector and the upcall pending there and publish the
    /// time in it (Xen's `map_vcpu_info` and
    /// `force_update_vcpu_system_time`). [`Domain::vcpu_info_at`] names
    /// the new place once this returns.
    fn move_vcpu_info(&mut self, d: &mut Domain, v: &Vcpu, mfn: u64, offset: u16);
    /// Publish `v`'s time again, in its `vcpu_info` and in the copy it
    /// registered (Xen's `force_update_vcpu_system_time`).
    fn publish_time(&mut self, d: &Domain, v: &Vcpu);
}

/// Write `v`'s run state to the area the guest registered, if any (Xen's
/// `update_runstate_area`). With VMASST_TYPE_runstate_update_flag the
/// guest first sees `XEN_RUNSTATE_UPDATE` set in `state_entry_time`, then
/// the whole record, then the flag clear again, so it can tell a record
/// being written. A failed write is ignored, as Xen does (the guest's
/// mapping may come and go); returns whether the whole record was written.
pub fn update_runstate_area(v: &Vcpu, d: &Domain, mem: &impl GuestAccess) -> bool {
    use xen_public::vcpu::XEN_RUNSTATE_UPDATE;
    const ENTRY_TIME: u64 = core::mem::offset_of!(xen_public::vcpu::VcpuRunstateInfo, state_entry_time) as u64;
    let at = v.runstate_guest;
    if at == 0 {
        return true;
    }
    let mut r = v.runstate;
    let flag = d.has_assist(VMASST_TYPE_RUNSTATE_UPDATE_FLAG);
    if flag {
        r.state_entry_time |= XEN_RUNSTATE_UPDATE;
        // The top byte of state_entry_time holds the flag (Xen writes that
        // byte alone).
        let _ = mem.write(at.wrapping_add(ENTRY_TIME + 7), &r.state_entry_time.to_le_bytes()[7..]);
    }
    let ok = mem.copy_to(at, &r).is_ok();
    if flag {
        r.state_entry_time &= !XEN_RUNSTATE_UPDATE;
        let _ = mem.write(at.wrapping_add(ENTRY_TIME + 7), &r.state_entry_time.to_le_bytes()[7..]);
    }
    ok
}

pub use xen_public::xen::VMASST_TYPE_RUNSTATE_UPDATE_FLAG;

/// The shortest period VCPUOP_set_periodic_timer takes: 1 ms (Xen's
/// `MILLISECS(1)`).
pub const MIN_PERIOD_NS: u64 = 1_000_000;
/// The longest: Xen's `STIME_DELTA_MAX`.
pub const MAX_PERIOD_NS: u64 = u64::MAX >> 2;

/// `vcpu_op(cmd, vcpuid, arg)` from `v` of `d`, whose memory is `mem`
/// (Xen 4.17's `do_vcpu_op` and `common_vcpu_op`): is_up,
/// get_runstate_info, register_runstate_memory_area, the periodic and
/// single-shot timers, register_vcpu_info and get_physid. A vCPU id past
/// the domain's is -ENOENT. xen-core has one vCPU per domain
/// ([`super::MAX_VCPUS`]), so on the live machine every id that passes
/// that check is the caller's own; another one (only in a test domain that
/// claims more) is -EINVAL for the single-shot timers, as Xen answers a
/// vCPU that is not the caller, and -ENOENT otherwise. Also
/// register_vcpu_time_memory_area (a second copy of the time record at a
/// guest address, Xen's `access_ok` rule as for the run-state area).
/// VCPUOP_initialise, up, down and send_nmi are -ENOSYS.
pub fn vcpu_op<H: VcpuHost>(h: &mut H, v: &mut Vcpu, d: &mut Domain, mem: &impl GuestAccess, cmd: u32, vcpu: u32, arg: u64) -> Ret {
    use xen_public::vcpu::*;
    if vcpu >= d.max_vcpus {
        return -ENOENT;
    }
    let cmd = u64::from(cmd);
    if vcpu != v.vcpu_id {
        return match cmd {
            VCPUOP_SET_SINGLESHOT_TIMER | VCPUOP_STOP_SINGLESHOT_TIMER => -EINVAL,
            _ => -ENOENT,
        };
    }
    match cmd {
        VCPUOP_IS_UP => i64::from(v.vcpu_up),
        VCPUOP_GET_RUNSTATE_INFO => rc(mem.copy_to(arg, &v.runstate_at(h.now()))),
        VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA => {
            let Ok(area) = mem.copy_from::<VcpuRegisterRunstateMemoryArea>(arg) else { return -EFAULT };
            if !guest_va_ok(area.addr) {
                return -EFAULT;
            }
            v.runstate_guest = area.addr;
            // The caller is running: its record as it stands (Xen copies
            // `v->runstate` for the current vCPU), a failed write ignored.
            if area.addr != 0 {
                let _ = mem.copy_to(area.addr, &v.runstate);
            }
            0
        }
        VCPUOP_SET_PERIODIC_TIMER => {
            let Ok(t) = mem.copy_from::<VcpuSetPeriodicTimer>(arg) else { return -EFAULT };
            if !(MIN_PERIOD_NS..=MAX_PERIOD_NS).contains(&t.period_ns) {
                return -EINVAL;
            }
            let fired = v.set_periodic(t.period_ns, h.now());
            h.periodic_changed(d, v, fired);
            0
        }
        VCPUOP_STOP_PERIODIC_TIMER => {
            v.set_periodic(0, h.now());
            h.periodic_changed(d, v, false);
            0
        }
        // As the Xen 4.17 point releases Debian ships (stable-4.17 dropped
        // the -ETIME check, which Linux misused), VCPU_SSHOTTMR_future is
        // ignored: a deadline in the past fires at once.
        VCPUOP_SET_SINGLESHOT_TIMER => {
            let Ok(t) = mem.copy_from::<VcpuSetSingleshotTimer>(arg) else { return -EFAULT };
            h.set_singleshot(v, t.timeout_abs_ns);
            0
        }
        VCPUOP_STOP_SINGLESHOT_TIMER => {
            h.set_singleshot(v, 0);
            0
        }
        VCPUOP_REGISTER_VCPU_INFO => {
            let Ok(info) = mem.copy_from::<VcpuRegisterVcpuInfo>(arg) else { return -EFAULT };
            register_vcpu_info(h, v, d, info.mfn, info.offset)
        }
        VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA => {
            let Ok(area) = mem.copy_from::<VcpuRegisterTimeMemoryArea>(arg) else { return -EFAULT };
            if !guest_va_ok(area.addr) {
                return -EFAULT;
            }
            v.time_info_guest = area.addr;
            h.publish_time(d, v);
            0
        }
        // Xen answers a vCPU that is not the hardware domain's and pinned
        // (dom0_vcpus_pin) with -EINVAL; xen-core pins none.
        VCPUOP_GET_PHYSID => -EINVAL,
        _ => -ENOSYS,
    }
}

/// Xen's `map_vcpu_info`: `v`'s `vcpu_info` moves to byte `offset` of
/// frame `mfn`, which `d` must own and which takes a writable type
/// reference for as long as it holds it (released with the domain, see
/// [`release_vcpu_info`]). An offset that leaves no room for the 64-byte
/// structure, or is not 8-aligned, is -ENXIO; a second registration, a
/// frame the domain does not own, or one it cannot have writable (a page
/// table, a descriptor page), is -EINVAL.
fn register_vcpu_info<H: VcpuHost>(h: &mut H, v: &mut Vcpu, d: &mut Domain, mfn: u64, offset: u32) -> Ret {
    use crate::mm::page_type::{PageType, Who};
    const SIZE: u32 = core::mem::size_of::<xen_public::VcpuInfo>() as u32;
    if offset > 4096 - SIZE || !offset.is_multiple_of(8) {
        return -ENXIO;
    }
    let Some(slot) = d.vcpu_info_at.get_mut(v.vcpu_id as usize) else { return -EINVAL };
    if slot.is_some() {
        return -EINVAL;
    }
    let (domid, privileged) = (d.domid, d.privileged);
    let mut pm = h.page_mem();
    let typed = h.with_ft(|ft, _| {
        if ft.get_page(mfn, domid).is_err() {
            return false;
        }
        if ft.get_page_type(&mut pm, mfn, PageType::Writable, Who::own(domid, privileged)).is_err() {
            ft.put_page(mfn);
            return false;
        }
        true
    });
    if typed != Some(true) {
        return -EINVAL;
    }
    h.move_vcpu_info(d, v, mfn, offset as u16);
    d.vcpu_info_at[v.vcpu_id as usize] = Some((mfn, offset as u16));
    0
}

/// Drop the references the domain's moved `vcpu_info`s hold (the domain
/// is being destroyed); each goes back to shared_info.
pub fn release_vcpu_info<H: FrameHost>(h: &mut H, d: &mut Domain) {
    let mut pm = h.page_mem();
    for at in &mut d.vcpu_info_at {
        if let Some((mfn, _)) = at.take() {
            h.with_ft(|ft, _| {
                ft.put_page_type(&mut pm, mfn);
                ft.put_page(mfn);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::guest_mem::tests::FakeGuest;
    use xen_public::callback::{CallbackRegister, CallbackUnregister};
    use xen_public::vcpu::TrapInfo as WireTrap;
    use zerocopy::{FromBytes, IntoBytes};

    const ARRAY: u64 = 0x40_0000;
    const NON_CANONICAL: u64 = 0x0000_8000_0000_0000;

    fn guest_with_traps(traps: &[WireTrap]) -> FakeGuest {
        let g = FakeGuest::default();
        for page in 0..4 {
            g.map(ARRAY + page * 4096);
        }
        g.write(ARRAY, traps.as_bytes()).unwrap();
        g
    }

    fn trap(vector: u8, address: u64) -> WireTrap {
        WireTrap { vector, cs: 0xe033, address, ..Default::default() }
    }

    fn syscall_regs(rdi: u64) -> CpuUserRegs {
        CpuUserRegs { rax: nr::SET_TRAP_TABLE, rdi, rip: 0x1002, ..Default::default() }
    }

    #[test]
    fn set_trap_table_takes_entries_until_address_0() {
        let g = guest_with_traps(&[trap(3, 0xffff_8000_0000_1000), trap(14, 0xffff_8000_0000_2000), trap(0, 0)]);
        let mut v = Vcpu::default();
        let mut regs = syscall_regs(ARRAY);
        assert_eq!(set_trap_table(&mut v, &g, &mut regs, || false), 0);
        assert_eq!(v.traps[3].address, 0xffff_8000_0000_1000);
        assert_eq!(v.traps[14].address, 0xffff_8000_0000_2000);
        assert_eq!(regs.rip, 0x1002, "no continuation");
    }

    #[test]
    fn set_trap_table_null_clears_the_table() {
        let mut v = Vcpu::default();
        v.traps[14].address = 0xffff_8000_0000_2000;
        let mut regs = syscall_regs(0);
        assert_eq!(set_trap_table(&mut v, &FakeGuest::default(), &mut regs, || false), 0);
        assert_eq!(v.traps[14].address, 0);
    }

    #[test]
    fn set_trap_table_non_canonical_handler_is_einval() {
        let g = guest_with_traps(&[trap(3, 0xffff_8000_0000_1000), trap(6, NON_CANONICAL)]);
        let mut v = Vcpu::default();
        assert_eq!(set_trap_table(&mut v, &g, &mut syscall_regs(ARRAY), || false), -EINVAL);
        assert_eq!(v.traps[3].address, 0xffff_8000_0000_1000, "entries before the bad one stay");
        assert_eq!(v.traps[6].address, 0);
    }

    #[test]
    fn set_trap_table_past_mapped_memory_is_efault() {
        let g = FakeGuest::default();
        g.map(ARRAY);
        g.write(ARRAY + 4096 - 16, trap(3, 0xffff_8000_0000_1000).as_bytes()).unwrap();
        let mut v = Vcpu::default();
        assert_eq!(set_trap_table(&mut v, &g, &mut syscall_regs(ARRAY + 4096 - 16), || false), -EFAULT);
        assert_eq!(v.traps[3].address, 0xffff_8000_0000_1000);
    }

    #[test]
    fn set_trap_table_continues_after_64_entries() {
        let mut traps: Vec<WireTrap> = (0..100u64).map(|i| trap(i as u8, 0xffff_8000_0000_0000 + i * 16)).collect();
        traps.push(trap(0, 0));
        let g = guest_with_traps(&traps);
        let mut v = Vcpu::default();
        let mut regs = syscall_regs(ARRAY);
        let rax = set_trap_table(&mut v, &g, &mut regs, || false);
        assert_eq!(rax as u64, nr::SET_TRAP_TABLE, "RAX holds the hypercall number again");
        assert_eq!(regs.rip, 0x1000, "RIP back on the SYSCALL");
        assert_eq!(regs.rdi, ARRAY + 64 * 16, "RDI past the 64 entries taken");
        assert_eq!(v.traps[63].address, 0xffff_8000_0000_0000 + 63 * 16);
        assert_eq!(v.traps[64].address, 0);
        regs.rip += 2;
        assert_eq!(set_trap_table(&mut v, &g, &mut regs, || false), 0, "the continuation finishes");
        assert_eq!(v.traps[99].address, 0xffff_8000_0000_0000 + 99 * 16);
    }

    #[test]
    fn set_trap_table_preempted_after_one_entry_makes_progress() {
        let g = guest_with_traps(&[trap(1, 0xffff_8000_0000_0010), trap(2, 0xffff_8000_0000_0020), trap(0, 0)]);
        let mut v = Vcpu::default();
        let mut regs = syscall_regs(ARRAY);
        assert_eq!(set_trap_table(&mut v, &g, &mut regs, || true) as u64, nr::SET_TRAP_TABLE);
        assert_eq!(regs.rdi, ARRAY + 16, "one entry taken before the preemption check");
    }

    #[test]
    fn stack_switch_forces_rpl_3() {
        let mut v = Vcpu::default();
        assert_eq!(stack_switch(&mut v, 0xe020, 0xffff_8000_0010_0000), 0);
        assert_eq!(v.kernel_ss, 0xe023);
        assert_eq!(v.kernel_sp, 0xffff_8000_0010_0000);
    }

    #[test]
    fn set_callbacks_ignores_a_non_canonical_one_and_returns_0() {
        let mut v = Vcpu::default();
        assert_eq!(set_callbacks(&mut v, 0xffff_8000_0000_1000, NON_CANONICAL, 0xffff_8000_0000_3000), 0);
        assert_eq!((v.event_callback, v.failsafe_callback, v.syscall_callback), (0xffff_8000_0000_1000, 0, 0xffff_8000_0000_3000));
    }

    fn callback_guest(at: u64, bytes: &[u8]) -> FakeGuest {
        let g = FakeGuest::default();
        g.map(at);
        g.write(at, bytes).unwrap();
        g
    }

    #[test]
    fn callback_op_register_syscall_with_mask_events() {
        let r = CallbackRegister { type_: CALLBACKTYPE_SYSCALL, flags: CALLBACKF_MASK_EVENTS, address: 0xffff_8000_0000_4000, ..Default::default() };
        let g = callback_guest(0x5000, r.as_bytes());
        let mut v = Vcpu::default();
        assert_eq!(callback_op(&mut v, &g, 0, 0x5000), 0);
        assert_eq!(v.syscall_callback, 0xffff_8000_0000_4000);
        assert!(v.syscall_masks_events);
    }

    #[test]
    fn callback_op_errnos_match_xen() {
        let mut v = Vcpu::default();
        let bad = CallbackRegister { type_: CALLBACKTYPE_EVENT, address: NON_CANONICAL, ..Default::default() };
        assert_eq!(callback_op(&mut v, &callback_guest(0x5000, bad.as_bytes()), 0, 0x5000), -EINVAL, "non-canonical address");
        let unknown = CallbackRegister { type_: 9, address: 0xffff_8000_0000_4000, ..Default::default() };
        assert_eq!(callback_op(&mut v, &callback_guest(0x5000, unknown.as_bytes()), 0, 0x5000), -ENOSYS, "unknown type");
        let unreg = CallbackUnregister { type_: CALLBACKTYPE_EVENT, ..Default::default() };
        assert_eq!(callback_op(&mut v, &callback_guest(0x5000, unreg.as_bytes()), 1, 0x5000), -EINVAL, "event callback cannot go");
        assert_eq!(callback_op(&mut v, &FakeGuest::default(), 0, 0x5000), -EFAULT, "unmapped argument");
        assert_eq!(callback_op(&mut v, &FakeGuest::default(), 7, 0x5000), -ENOSYS, "unknown command");
    }

    #[test]
    fn callback_op_type_5_is_sysenter_and_3_is_enosys_as_xen_4_17() {
        let mut v = Vcpu::default();
        let sysenter = CallbackRegister { type_: CALLBACKTYPE_SYSENTER, address: 0xffff_8000_0000_4000, ..Default::default() };
        assert_eq!(callback_op(&mut v, &callback_guest(0x5000, sysenter.as_bytes()), 0, 0x5000), 0, "type 5: sysenter");
        let deprecated =
            CallbackRegister { type_: xen_public::callback::CALLBACKTYPE_SYSENTER_DEPRECATED, address: 0xffff_8000_0000_4000, ..Default::default() };
        assert_eq!(callback_op(&mut v, &callback_guest(0x5000, deprecated.as_bytes()), 0, 0x5000), -ENOSYS, "type 3 is no type");
        let bad = CallbackRegister { address: NON_CANONICAL, ..deprecated };
        assert_eq!(callback_op(&mut v, &callback_guest(0x5000, bad.as_bytes()), 0, 0x5000), -EINVAL, "the address is checked first");
        let u = CallbackUnregister { type_: CALLBACKTYPE_SYSENTER, ..Default::default() };
        assert_eq!(callback_op(&mut v, &callback_guest(0x5000, u.as_bytes()), 1, 0x5000), -EINVAL);
        let u3 = CallbackUnregister { type_: 3, ..Default::default() };
        assert_eq!(callback_op(&mut v, &callback_guest(0x5000, u3.as_bytes()), 1, 0x5000), -ENOSYS);
    }

    #[test]
    fn callback_op_failsafe_honours_mask_events() {
        let mut v = Vcpu::default();
        let r = CallbackRegister { type_: CALLBACKTYPE_FAILSAFE, flags: CALLBACKF_MASK_EVENTS, address: 0xffff_8000_0000_5000, ..Default::default() };
        assert_eq!(callback_op(&mut v, &callback_guest(0x5000, r.as_bytes()), 0, 0x5000), 0);
        assert_eq!(v.failsafe_callback, 0xffff_8000_0000_5000);
        assert!(v.failsafe_masks_events);
        let r = CallbackRegister { flags: 0, ..r };
        assert_eq!(callback_op(&mut v, &callback_guest(0x5000, r.as_bytes()), 0, 0x5000), 0);
        assert!(!v.failsafe_masks_events, "re-registering without the flag clears it");
    }

    #[test]
    fn callback_op_nmi_registers_and_unregisters_trap_2() {
        let mut v = Vcpu::default();
        let r = CallbackRegister { type_: CALLBACKTYPE_NMI, address: 0xffff_8000_0000_6000, ..Default::default() };
        assert_eq!(callback_op(&mut v, &callback_guest(0x5000, r.as_bytes()), 0, 0x5000), 0);
        assert_eq!(v.traps[2].address, 0xffff_8000_0000_6000);
        let u = CallbackUnregister { type_: CALLBACKTYPE_NMI, ..Default::default() };
        assert_eq!(callback_op(&mut v, &callback_guest(0x5000, u.as_bytes()), 1, 0x5000), 0);
        assert_eq!(v.traps[2].address, 0);
    }

    #[test]
    fn set_segment_base_refuses_non_canonical_and_unknown() {
        let mut v = Vcpu::default();
        assert_eq!(set_segment_base(&mut v, 0, NON_CANONICAL), -EINVAL);
        assert_eq!(set_segment_base(&mut v, 9, 0), -EINVAL);
        assert_eq!(set_segment_base(&mut v, 2, 0xffff_8000_0000_7000), 0);
        assert_eq!(v.gs_base_kernel, 0xffff_8000_0000_7000);
        v.gs_base_user = 0x1234;
        assert_eq!(set_segment_base(&mut v, 3, 0x2b), 0, "GS_USER_SEL: every selector is flat");
        assert_eq!(v.gs_base_user, 0);
    }

    #[test]
    fn fpu_taskswitch_looks_at_the_low_32_bits() {
        let mut v = Vcpu::default();
        assert_eq!(fpu_taskswitch(&mut v, 1), 0);
        assert!(v.fpu_ts);
        assert_eq!(fpu_taskswitch(&mut v, 1 << 32), 0);
        assert!(!v.fpu_ts);
    }

    use crate::domain::memory_ops::tests::FakeMachine;
    use crate::mm::Mfn;
    use crate::mm::page_type::tests::TestMem;
    use crate::mm::page_type::{FrameTable, PageType, Who};
    use std::cell::RefCell;
    use std::vec::Vec;
    use xen_public::vcpu::{
        RUNSTATE_BLOCKED, RUNSTATE_RUNNABLE, RUNSTATE_RUNNING, VCPUOP_GET_PHYSID, VCPUOP_GET_RUNSTATE_INFO, VCPUOP_INITIALISE, VCPUOP_IS_UP,
        VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA, VCPUOP_REGISTER_VCPU_INFO, VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA, VCPUOP_SET_PERIODIC_TIMER,
        VCPUOP_SET_SINGLESHOT_TIMER, VCPUOP_STOP_PERIODIC_TIMER, VCPUOP_STOP_SINGLESHOT_TIMER, VcpuRegisterRunstateMemoryArea,
        VcpuRegisterTimeMemoryArea, VcpuRegisterVcpuInfo, VcpuRunstateInfo, VcpuSetPeriodicTimer, VcpuSetSingleshotTimer, XEN_RUNSTATE_UPDATE,
    };

    /// The machine around `vcpu_op`: frames, the clock, and what the
    /// timers and the vcpu_info move were asked to do.
    #[derive(Default)]
    struct Host {
        m: FakeMachine,
        now: u64,
        singleshot: Option<u64>,
        periodic_fired: u32,
        moved: Vec<(u64, u16)>,
        published: Vec<u64>,
    }

    impl FrameHost for Host {
        type Pm = TestMem;
        fn page_mem(&self) -> TestMem {
            self.m.page_mem()
        }
        fn with_ft<R>(&mut self, f: impl FnOnce(&mut FrameTable<'_>, &mut Self) -> R) -> Option<R> {
            let mut ft = core::mem::replace(&mut self.m.ft, FrameTable::new(&mut []));
            let r = f(&mut ft, self);
            self.m.ft = ft;
            Some(r)
        }
        fn alloc_frame(&mut self) -> Option<Mfn> {
            self.m.alloc_frame()
        }
        fn free_frame(&mut self, mfn: Mfn) {
            self.m.free_frame(mfn);
        }
        fn set_m2p(&mut self, mfn: Mfn, gfn: u64) {
            self.m.set_m2p(mfn, gfn);
        }
    }

    impl VcpuHost for Host {
        fn now(&self) -> u64 {
            self.now
        }
        fn set_singleshot(&mut self, _v: &mut Vcpu, deadline: u64) {
            self.singleshot = Some(deadline);
        }
        fn periodic_changed(&mut self, _d: &mut Domain, _v: &mut Vcpu, fired: bool) {
            self.periodic_fired += u32::from(fired);
        }
        fn move_vcpu_info(&mut self, d: &mut Domain, v: &Vcpu, mfn: u64, offset: u16) {
            self.moved.push((mfn, offset));
            d.vcpu_info_at[v.vcpu_id as usize] = Some((mfn, offset));
        }
        fn publish_time(&mut self, _d: &Domain, v: &Vcpu) {
            self.published.push(v.time_info_guest);
        }
    }

    const ME: u16 = 1;
    const OP_ARG: u64 = 0x5000;
    const AREA: u64 = 0x6000;

    fn vcpu_op_domain() -> Domain {
        Domain::empty(ME, false, Mfn(0x100))
    }

    fn op_guest() -> FakeGuest {
        let g = FakeGuest::default();
        g.map(OP_ARG);
        g.map(AREA);
        g
    }

    fn run(h: &mut Host, v: &mut Vcpu, d: &mut Domain, g: &FakeGuest, cmd: u64, vcpu: u32, arg: u64) -> Ret {
        vcpu_op(h, v, d, g, cmd as u32, vcpu, arg)
    }

    #[test]
    fn vcpu_op_set_singleshot_timer_reads_the_absolute_deadline() {
        let g = op_guest();
        g.copy_to(OP_ARG, &VcpuSetSingleshotTimer { timeout_abs_ns: 123_456, flags: 1, ..Default::default() }).unwrap();
        let (mut h, mut v, mut d) = (Host { now: 200_000, ..Default::default() }, Vcpu::default(), vcpu_op_domain());
        assert_eq!(run(&mut h, &mut v, &mut d, &g, VCPUOP_SET_SINGLESHOT_TIMER, 0, OP_ARG), 0, "VCPU_SSHOTTMR_future ignored, as Debian's 4.17");
        assert_eq!(h.singleshot, Some(123_456));
        assert_eq!(run(&mut h, &mut v, &mut d, &g, VCPUOP_STOP_SINGLESHOT_TIMER, 0, 0), 0);
        assert_eq!(h.singleshot, Some(0), "stop: deadline 0");
    }

    #[test]
    fn vcpu_op_errnos_match_xen() {
        let g = FakeGuest::default();
        let (mut h, mut v, mut d) = (Host::default(), Vcpu::default(), vcpu_op_domain());
        assert_eq!(run(&mut h, &mut v, &mut d, &g, VCPUOP_SET_SINGLESHOT_TIMER, 0, 0x9000), -EFAULT, "unmapped argument");
        assert_eq!(run(&mut h, &mut v, &mut d, &g, VCPUOP_SET_SINGLESHOT_TIMER, 1, 0), -ENOENT, "no vCPU 1");
        assert_eq!(run(&mut h, &mut v, &mut d, &g, VCPUOP_IS_UP, u32::MAX, 0), -ENOENT);
        assert_eq!(run(&mut h, &mut v, &mut d, &g, VCPUOP_INITIALISE, 0, 0), -ENOSYS);
        assert_eq!(run(&mut h, &mut v, &mut d, &g, 99, 0, 0), -ENOSYS);
        assert_eq!(run(&mut h, &mut v, &mut d, &g, VCPUOP_GET_PHYSID, 0, 0), -EINVAL, "no vCPU is pinned");
        assert_eq!(run(&mut h, &mut v, &mut d, &g, VCPUOP_GET_RUNSTATE_INFO, 0, 0x9000), -EFAULT);
        assert_eq!(run(&mut h, &mut v, &mut d, &g, VCPUOP_REGISTER_VCPU_INFO, 0, 0x9000), -EFAULT);
        assert_eq!(run(&mut h, &mut v, &mut d, &g, VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA, 0, 0x9000), -EFAULT);
        assert_eq!(run(&mut h, &mut v, &mut d, &g, VCPUOP_SET_PERIODIC_TIMER, 0, 0x9000), -EFAULT);
    }

    #[test]
    fn vcpu_op_timer_of_another_vcpu_is_einval() {
        // A domain claiming two vCPUs (the rule is Xen's, whatever MAX_VCPUS).
        let g = FakeGuest::default();
        let (mut h, mut v, mut d) = (Host::default(), Vcpu::default(), vcpu_op_domain());
        d.max_vcpus = 2;
        assert_eq!(run(&mut h, &mut v, &mut d, &g, VCPUOP_SET_SINGLESHOT_TIMER, 1, 0), -EINVAL);
        assert_eq!(run(&mut h, &mut v, &mut d, &g, VCPUOP_STOP_SINGLESHOT_TIMER, 1, 0), -EINVAL);
        assert_eq!(h.singleshot, None);
    }

    #[test]
    fn vcpu_op_is_up_says_whether_the_vcpu_is_up() {
        let g = FakeGuest::default();
        let (mut h, mut v, mut d) = (Host::default(), Vcpu::default(), vcpu_op_domain());
        assert_eq!(run(&mut h, &mut v, &mut d, &g, VCPUOP_IS_UP, 0, 0), 0);
        v.vcpu_up = true;
        assert_eq!(run(&mut h, &mut v, &mut d, &g, VCPUOP_IS_UP, 0, 0), 1);
    }

    fn running_vcpu(now: u64) -> Vcpu {
        let mut v = Vcpu { vcpu_up: true, ..Default::default() };
        v.runstate_change(RUNSTATE_RUNNABLE, 100);
        v.runstate_change(RUNSTATE_RUNNING, now);
        v
    }

    #[test]
    fn runstate_change_charges_the_state_left() {
        let mut v = running_vcpu(300);
        assert_eq!(v.runstate.time[RUNSTATE_RUNNABLE as usize], 200);
        v.runstate_change(RUNSTATE_BLOCKED, 1_000);
        assert_eq!(v.runstate.time[RUNSTATE_RUNNING as usize], 700);
        assert_eq!((v.runstate.state, v.runstate.state_entry_time), (RUNSTATE_BLOCKED, 1_000));
    }

    #[test]
    fn get_runstate_info_adds_the_time_in_the_current_state() {
        let g = op_guest();
        let (mut h, mut v, mut d) = (Host { now: 1_300, ..Default::default() }, running_vcpu(300), vcpu_op_domain());
        assert_eq!(run(&mut h, &mut v, &mut d, &g, VCPUOP_GET_RUNSTATE_INFO, 0, OP_ARG), 0);
        let r: VcpuRunstateInfo = g.copy_from(OP_ARG).unwrap();
        assert_eq!(r.state, RUNSTATE_RUNNING);
        assert_eq!(r.state_entry_time, 300, "when it entered the state");
        assert_eq!(r.time, [1_000, 200, 0, 100], "running 1000 (so far), runnable 200, offline 100 (from 0)");
        assert_eq!(v.runstate.time[0], 0, "the vCPU's own record is unchanged");
    }

    #[test]
    fn register_runstate_area_writes_the_record_at_once() {
        let g = op_guest();
        g.copy_to(OP_ARG, &VcpuRegisterRunstateMemoryArea { addr: AREA + 0x40 }).unwrap();
        let (mut h, mut v, mut d) = (Host { now: 500, ..Default::default() }, running_vcpu(300), vcpu_op_domain());
        assert_eq!(run(&mut h, &mut v, &mut d, &g, VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA, 0, OP_ARG), 0);
        assert_eq!(v.runstate_guest, AREA + 0x40);
        assert_eq!(g.copy_from::<VcpuRunstateInfo>(AREA + 0x40).unwrap(), v.runstate);
    }

    #[test]
    fn register_runstate_area_refuses_hypervisor_addresses_like_access_ok() {
        let g = op_guest();
        let (mut h, mut v, mut d) = (Host::default(), running_vcpu(300), vcpu_op_domain());
        for bad in [xen_public::HYPERVISOR_VIRT_START, xen_public::HYPERVISOR_VIRT_END - 8, NON_CANONICAL] {
            g.copy_to(OP_ARG, &VcpuRegisterRunstateMemoryArea { addr: bad }).unwrap();
            assert_eq!(run(&mut h, &mut v, &mut d, &g, VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA, 0, OP_ARG), -EFAULT, "{bad:#x}");
            assert_eq!(v.runstate_guest, 0, "nothing registered");
        }
        // Above the hypervisor's slots is guest space again.
        g.copy_to(OP_ARG, &VcpuRegisterRunstateMemoryArea { addr: xen_public::HYPERVISOR_VIRT_END }).unwrap();
        assert_eq!(run(&mut h, &mut v, &mut d, &g, VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA, 0, OP_ARG), 0);
    }

    #[test]
    fn register_runstate_area_unmapped_is_accepted_and_the_write_dropped() {
        // Xen checks only access_ok and ignores a failed copy.
        let g = op_guest();
        g.copy_to(OP_ARG, &VcpuRegisterRunstateMemoryArea { addr: 0x7000_0000 }).unwrap();
        let (mut h, mut v, mut d) = (Host::default(), running_vcpu(300), vcpu_op_domain());
        assert_eq!(run(&mut h, &mut v, &mut d, &g, VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA, 0, OP_ARG), 0);
        assert_eq!(v.runstate_guest, 0x7000_0000);
        assert!(!update_runstate_area(&v, &d, &g), "later updates fail quietly");
        g.copy_to(OP_ARG, &VcpuRegisterRunstateMemoryArea { addr: 0 }).unwrap();
        assert_eq!(run(&mut h, &mut v, &mut d, &g, VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA, 0, OP_ARG), 0);
        assert_eq!(v.runstate_guest, 0, "NULL unregisters");
    }

    /// Guest memory that logs every write.
    #[derive(Default)]
    struct Logged {
        g: FakeGuest,
        writes: RefCell<Vec<(u64, Vec<u8>)>>,
    }

    impl GuestAccess for Logged {
        fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), super::super::guest_mem::Efault> {
            self.g.read(va, buf)
        }
        fn write(&self, va: u64, buf: &[u8]) -> Result<(), super::super::guest_mem::Efault> {
            self.writes.borrow_mut().push((va, buf.to_vec()));
            self.g.write(va, buf)
        }
    }

    #[test]
    fn update_runstate_area_with_update_flag_sets_then_clears_xen_runstate_update() {
        let l = Logged::default();
        l.g.map(AREA);
        let mut v = running_vcpu(300);
        v.runstate_guest = AREA;
        let mut d = vcpu_op_domain();
        assert_eq!(crate::domain::info_ops::vm_assist(&mut d, 0, VMASST_TYPE_RUNSTATE_UPDATE_FLAG), 0);
        assert!(update_runstate_area(&v, &d, &l));
        let w = l.writes.borrow();
        assert_eq!(w.len(), 3, "flag byte, record, flag byte");
        assert_eq!(w[0], (AREA + 15, std::vec![0x80]), "the top byte of state_entry_time gets XEN_RUNSTATE_UPDATE first");
        let mid = VcpuRunstateInfo::read_from_bytes(&w[1].1).unwrap();
        assert_eq!(mid.state_entry_time, 300 | XEN_RUNSTATE_UPDATE, "the record goes out flagged");
        assert_eq!(w[2], (AREA + 15, std::vec![0]), "then the flag is cleared");
        assert_eq!(l.g.copy_from::<VcpuRunstateInfo>(AREA).unwrap(), v.runstate);
    }

    #[test]
    fn update_runstate_area_without_the_assist_is_one_write() {
        let l = Logged::default();
        l.g.map(AREA);
        let mut v = running_vcpu(300);
        v.runstate_guest = AREA;
        assert!(update_runstate_area(&v, &vcpu_op_domain(), &l));
        assert_eq!(l.writes.borrow().len(), 1);
        assert!(update_runstate_area(&Vcpu::default(), &vcpu_op_domain(), &l), "nothing registered: nothing to do");
        assert_eq!(l.writes.borrow().len(), 1);
    }

    #[test]
    fn periodic_timer_defaults_to_10ms_and_fires_per_period() {
        let mut v = Vcpu::default();
        assert_eq!(v.periodic_period, 10_000_000, "Xen's pv_vcpu_initialise");
        assert!(v.periodic_due(10_000_000));
        assert!(!v.periodic_due(15_000_000));
        assert_eq!(v.periodic_deadline(), Some(20_000_000));
        assert!(v.periodic_due(20_000_001));
        assert_eq!(v.periodic_deadline(), Some(30_000_001), "the next period counts from when it fired");
    }

    #[test]
    fn set_periodic_timer_bounds_are_xens() {
        let g = op_guest();
        let (mut h, mut v, mut d) = (Host { now: 50_000_000, ..Default::default() }, Vcpu::default(), vcpu_op_domain());
        v.periodic_last = 49_000_000;
        for bad in [0, 999_999, MAX_PERIOD_NS + 1, u64::MAX] {
            g.copy_to(OP_ARG, &VcpuSetPeriodicTimer { period_ns: bad }).unwrap();
            assert_eq!(run(&mut h, &mut v, &mut d, &g, VCPUOP_SET_PERIODIC_TIMER, 0, OP_ARG), -EINVAL, "{bad}");
        }
        assert_eq!(v.periodic_period, 10_000_000, "unchanged by a refused call");
        g.copy_to(OP_ARG, &VcpuSetPeriodicTimer { period_ns: 1_000_000 }).unwrap();
        assert_eq!(run(&mut h, &mut v, &mut d, &g, VCPUOP_SET_PERIODIC_TIMER, 0, OP_ARG), 0);
        assert_eq!(v.periodic_period, 1_000_000);
        assert_eq!(h.periodic_fired, 1, "a period had passed since it last fired: it fires at once");
        assert_eq!(run(&mut h, &mut v, &mut d, &g, VCPUOP_STOP_PERIODIC_TIMER, 0, 0), 0, "Linux BUG()s if this fails");
        assert_eq!((v.periodic_period, v.periodic_deadline()), (0, None));
        assert!(!v.periodic_due(u64::MAX), "a stopped timer never fires");
    }

    /// A domain owning some frames of a fake machine.
    fn owning(h: &mut Host) -> (Domain, Vec<u64>) {
        let mut d = vcpu_op_domain();
        let frames = h.m.give(&mut d, 4);
        (d, frames)
    }

    fn register_info(h: &mut Host, v: &mut Vcpu, d: &mut Domain, mfn: u64, offset: u32) -> Ret {
        let g = op_guest();
        g.copy_to(OP_ARG, &VcpuRegisterVcpuInfo { mfn, offset, rsvd: 0 }).unwrap();
        run(h, v, d, &g, VCPUOP_REGISTER_VCPU_INFO, 0, OP_ARG)
    }

    #[test]
    fn register_vcpu_info_takes_a_writable_reference_and_moves_once() {
        let mut h = Host::default();
        let (mut d, frames) = owning(&mut h);
        let mut v = Vcpu::default();
        let before = h.m.ft.info(frames[0]).unwrap().count;
        assert_eq!(register_info(&mut h, &mut v, &mut d, frames[0], 4096 - 64), 0, "the last 64 bytes of the page");
        assert_eq!(h.moved, [(frames[0], 4096 - 64)]);
        assert_eq!(d.vcpu_info_at[0], Some((frames[0], 4096 - 64)));
        let info = *h.m.ft.info(frames[0]).unwrap();
        assert_eq!((info.ty, info.type_count, info.count), (PageType::Writable, 1, before + 1));
        assert_eq!(register_info(&mut h, &mut v, &mut d, frames[1], 0), -EINVAL, "already registered");
        assert_eq!(h.moved.len(), 1);
        release_vcpu_info(&mut h, &mut d);
        let info = *h.m.ft.info(frames[0]).unwrap();
        assert_eq!((info.type_count, info.count), (0, before), "destruction drops both references");
        assert_eq!(d.vcpu_info_at[0], None);
    }

    #[test]
    fn register_vcpu_info_bad_offset_is_enxio() {
        let mut h = Host::default();
        let (mut d, frames) = owning(&mut h);
        let mut v = Vcpu::default();
        assert_eq!(register_info(&mut h, &mut v, &mut d, frames[0], 4096 - 63), -ENXIO, "crosses the page end");
        assert_eq!(register_info(&mut h, &mut v, &mut d, frames[0], 4096), -ENXIO);
        assert_eq!(register_info(&mut h, &mut v, &mut d, frames[0], u32::MAX), -ENXIO);
        assert_eq!(register_info(&mut h, &mut v, &mut d, frames[0], 4), -ENXIO, "not 8-aligned");
        assert!(h.moved.is_empty());
    }

    #[test]
    fn register_vcpu_info_foreign_or_page_table_frame_is_einval() {
        let mut h = Host::default();
        let (mut d, frames) = owning(&mut h);
        let mut other = Domain::empty(ME + 1, false, Mfn(0x101));
        let theirs = h.m.give(&mut other, 1)[0];
        let mut v = Vcpu::default();
        assert_eq!(register_info(&mut h, &mut v, &mut d, theirs, 0), -EINVAL, "another domain's frame");
        assert_eq!(register_info(&mut h, &mut v, &mut d, 5, 0), -EINVAL, "a hypervisor frame");
        assert_eq!(register_info(&mut h, &mut v, &mut d, u64::MAX, 0), -EINVAL, "no such frame");
        let mut pm = h.m.page_mem();
        h.m.ft.get_page_type(&mut pm, frames[2], PageType::L1, Who::own(ME, false)).unwrap();
        let before = *h.m.ft.info(frames[2]).unwrap();
        assert_eq!(register_info(&mut h, &mut v, &mut d, frames[2], 0), -EINVAL, "a page table cannot be writable");
        let after = *h.m.ft.info(frames[2]).unwrap();
        assert_eq!((after.count, after.type_count, after.ty), (before.count, before.type_count, PageType::L1), "no reference left behind");
        assert!(h.moved.is_empty());
        assert_eq!(d.vcpu_info_at[0], None);
    }

    #[test]
    fn register_time_area_follows_access_ok_and_publishes_at_once() {
        let g = op_guest();
        let (mut h, mut v, mut d) = (Host::default(), Vcpu::default(), vcpu_op_domain());
        for bad in [xen_public::HYPERVISOR_VIRT_START, NON_CANONICAL] {
            g.copy_to(OP_ARG, &VcpuRegisterTimeMemoryArea { addr: bad }).unwrap();
            assert_eq!(run(&mut h, &mut v, &mut d, &g, VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA, 0, OP_ARG), -EFAULT, "{bad:#x}");
        }
        assert!(h.published.is_empty());
        g.copy_to(OP_ARG, &VcpuRegisterTimeMemoryArea { addr: AREA }).unwrap();
        assert_eq!(run(&mut h, &mut v, &mut d, &g, VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA, 0, OP_ARG), 0);
        assert_eq!((v.time_info_guest, h.published.as_slice()), (AREA, &[AREA][..]), "registered, then the time goes out");
        assert_eq!(run(&mut h, &mut v, &mut d, &g, VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA, 0, 0x9000), -EFAULT);
        g.copy_to(OP_ARG, &VcpuRegisterTimeMemoryArea { addr: 0 }).unwrap();
        assert_eq!(run(&mut h, &mut v, &mut d, &g, VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA, 0, OP_ARG), 0);
        assert_eq!(v.time_info_guest, 0, "NULL unregisters");
    }
}
