//! The hypercalls that touch only the calling vCPU and its memory:
//! `set_trap_table`, `stack_switch`, `set_callbacks`, `callback_op`,
//! `fpu_taskswitch` and `set_segment_base`, and the continuation every
//! long hypercall uses. Generic over [`GuestAccess`], so decoding, errno
//! and continuations are tested on the host.
//!
//! Invariants: an address that would reach the hardware (trap and callback
//! entry points, segment bases) is canonical or refused with Xen's errno;
//! a failed guest access is -EFAULT and leaves what was already taken; a
//! continuation re-issues the same hypercall with arguments advanced past
//! what was done.
#![forbid(unsafe_code)]

use super::guest_mem::GuestAccess;
use super::vcpu::{CpuUserRegs, TrapInfo, Vcpu, is_canonical};
use xen_public::errno::{EFAULT, EINVAL, ENOSYS};
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

const CALLBACKTYPE_EVENT: u16 = 0;
const CALLBACKTYPE_FAILSAFE: u16 = 1;
const CALLBACKTYPE_SYSCALL: u16 = 2;
const CALLBACKTYPE_SYSENTER: u16 = 3;
const CALLBACKTYPE_NMI: u16 = 4;
const CALLBACKTYPE_SYSCALL32: u16 = 7;
const CALLBACKF_MASK_EVENTS: u16 = 1;

fn register_callback(v: &mut Vcpu, kind: u16, flags: u16, address: u64) -> Ret {
    if !is_canonical(address) {
        return -EINVAL;
    }
    match kind {
        CALLBACKTYPE_EVENT => v.event_callback = address,
        CALLBACKTYPE_FAILSAFE => v.failsafe_callback = address,
        CALLBACKTYPE_SYSCALL => {
            v.syscall_callback = address;
            v.syscall_masks_events = flags & CALLBACKF_MASK_EVENTS != 0;
        }
        // 32-bit user mode is not supported: accepted and never used, as a
        // 64-bit-only Xen would.
        CALLBACKTYPE_SYSCALL32 | CALLBACKTYPE_SYSENTER => {}
        CALLBACKTYPE_NMI => v.traps[2] = TrapInfo { vector: 2, flags: 4, cs: 0xe033, address },
        _ => return -ENOSYS,
    }
    0
}

/// `callback_op(cmd, arg)`: CALLBACKOP_register and CALLBACKOP_unregister.
pub fn callback_op(v: &mut Vcpu, mem: &impl GuestAccess, cmd: u32, arg: u64) -> Ret {
    const CALLBACKOP_REGISTER: u32 = 0;
    const CALLBACKOP_UNREGISTER: u32 = 1;
    match cmd {
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

/// `vcpu_op(cmd, vcpuid, arg)` from `v` of `d`: the single-shot timer
/// commands, answered with the deadline to set (0: stop the timer); the
/// caller arms it. A vCPU past the domain's is -ENOENT; a vCPU sets and
/// stops only its own timer (-EINVAL otherwise), as Xen; other commands
/// -ENOSYS.
pub fn vcpu_op_timer(v: &Vcpu, d: &super::Domain, mem: &impl GuestAccess, cmd: u32, vcpu: u32, arg: u64) -> Result<u64, Ret> {
    use xen_public::vcpu::{VCPUOP_SET_SINGLESHOT_TIMER, VCPUOP_STOP_SINGLESHOT_TIMER, VcpuSetSingleshotTimer};
    if vcpu >= d.max_vcpus {
        return Err(-xen_public::errno::ENOENT);
    }
    let cmd = u64::from(cmd);
    let timer_cmd = cmd == VCPUOP_SET_SINGLESHOT_TIMER || cmd == VCPUOP_STOP_SINGLESHOT_TIMER;
    if timer_cmd && vcpu != v.vcpu_id {
        return Err(-EINVAL);
    }
    match cmd {
        // As Xen 4.17, VCPU_SSHOTTMR_future is ignored: a deadline in the
        // past fires at once instead of failing with -ETIME.
        VCPUOP_SET_SINGLESHOT_TIMER => mem.copy_from::<VcpuSetSingleshotTimer>(arg).map(|t| t.timeout_abs_ns).map_err(|_| -EFAULT),
        VCPUOP_STOP_SINGLESHOT_TIMER => Ok(0),
        _ => Err(-ENOSYS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::guest_mem::tests::FakeGuest;
    use xen_public::callback::{CallbackRegister, CallbackUnregister};
    use xen_public::vcpu::TrapInfo as WireTrap;
    use zerocopy::IntoBytes;

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

    fn vcpu_op_domain() -> crate::domain::Domain {
        crate::domain::Domain::empty(1, false, crate::mm::Mfn(0x100))
    }

    #[test]
    fn vcpu_op_set_singleshot_timer_reads_the_absolute_deadline() {
        let g = FakeGuest::default();
        g.map(0x5000);
        g.copy_to(0x5000, &xen_public::vcpu::VcpuSetSingleshotTimer { timeout_abs_ns: 123_456, flags: 1, ..Default::default() }).unwrap();
        let (v, d) = (Vcpu::default(), vcpu_op_domain());
        assert_eq!(vcpu_op_timer(&v, &d, &g, 8, 0, 0x5000), Ok(123_456));
        assert_eq!(vcpu_op_timer(&v, &d, &g, 9, 0, 0), Ok(0), "stop: deadline 0");
    }

    #[test]
    fn vcpu_op_errnos_match_xen() {
        let g = FakeGuest::default();
        let (v, d) = (Vcpu::default(), vcpu_op_domain());
        assert_eq!(vcpu_op_timer(&v, &d, &g, 8, 0, 0x9000), Err(-EFAULT), "unmapped argument");
        assert_eq!(vcpu_op_timer(&v, &d, &g, 8, 1, 0), Err(-xen_public::errno::ENOENT), "no vCPU 1");
        assert_eq!(vcpu_op_timer(&v, &d, &g, 8, u32::MAX, 0), Err(-xen_public::errno::ENOENT));
        assert_eq!(vcpu_op_timer(&v, &d, &g, 0, 0, 0), Err(-ENOSYS), "VCPUOP_initialise");
        assert_eq!(vcpu_op_timer(&v, &d, &g, 99, 0, 0), Err(-ENOSYS));
    }

    #[test]
    fn vcpu_op_timer_of_another_vcpu_is_einval() {
        // A domain with two vCPUs (the rule is Xen's, whatever MAX_VCPUS).
        let g = FakeGuest::default();
        let mut d = vcpu_op_domain();
        d.max_vcpus = 2;
        let v = Vcpu::default();
        assert_eq!(vcpu_op_timer(&v, &d, &g, 8, 1, 0), Err(-EINVAL));
        assert_eq!(vcpu_op_timer(&v, &d, &g, 9, 1, 0), Err(-EINVAL));
        assert_eq!(vcpu_op_timer(&v, &d, &g, 3, 1, 0), Err(-ENOSYS), "other commands are not refused as foreign");
    }
}
