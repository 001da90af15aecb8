//! Hypercall dispatch by Xen's numbers, and the hypercalls a PV kernel
//! needs to boot: console, version, scheduling, traps and callbacks, stack,
//! segment bases, FPU, vm_assist and iret.
//!
//! Every argument is untrusted: guest pointers go through [`GuestMem`],
//! addresses that will reach the hardware must be canonical, and every
//! failure is Xen's errno for the same input. Numbers without a handler
//! return -ENOSYS, like Xen.

use crate::domain::vcpu::{CpuUserRegs, TrapInfo, is_canonical};
use crate::guest::{Domain, Efault, GuestMem};
use crate::version::{NAME, VERSION, XEN_MAJOR, XEN_MINOR};
use crate::mm::Mfn;
use crate::mm::machine::{DirectMapMem, FRAME_TABLE};
use crate::mm::page_type::{PageMem, PageType, Who};
use xen_public::errno::{E2BIG, EACCES, EFAULT, EINVAL, ENOSYS, EPERM, ESRCH};
use xen_public::hypercall as nr;

type Ret = i64;

/// Unwrap a guest access, or return -EFAULT from the hypercall.
macro_rules! guest {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(Efault) => return -EFAULT,
        }
    };
}

/// Handle the hypercall in `regs`; the result goes to the guest's RAX.
pub fn dispatch(d: &mut Domain, regs: &mut CpuUserRegs) -> u64 {
    let (a1, a2, a3) = (regs.rdi, regs.rsi, regs.rdx);
    let r: Ret = match regs.rax {
        nr::SET_TRAP_TABLE => set_trap_table(d, regs),
        nr::STACK_SWITCH => stack_switch(d, a1, a2),
        nr::SET_CALLBACKS => set_callbacks(d, a1, a2, a3),
        nr::FPU_TASKSWITCH => fpu_taskswitch(d, a1),
        nr::XEN_VERSION => xen_version(d, a1 as u32, a2),
        nr::CONSOLE_IO => console_io(d, regs),
        nr::VM_ASSIST => vm_assist(d, a1 as u32, a2 as u32),
        nr::IRET => return d.iret(regs),
        nr::SET_SEGMENT_BASE => set_segment_base(d, a1 as u32, a2),
        nr::SCHED_OP => sched_op(d, regs, a1 as u32, a2),
        nr::CALLBACK_OP => callback_op(d, a1 as u32, a2),
        nr::UPDATE_VA_MAPPING => update_va_mapping(d, a1, a2, a3),
        nr::MMU_UPDATE => mmu_update(d, regs),
        nr::MMUEXT_OP => mmuext_op(d, regs),
        nr::MULTICALL => multicall(d, regs),
        nr::SET_GDT => set_gdt(d, a1, a2 as u32 as u64),
        nr::EVENT_CHANNEL_OP => event_channel_op(d, a1 as u32, a2),
        nr::GRANT_TABLE_OP => grant_table_op(d, regs),
        nr::UPDATE_DESCRIPTOR => update_descriptor(d, a1, a2),
        _ => -ENOSYS,
    };
    r as u64
}

/// Make the guest re-issue the current hypercall (a continuation): SYSCALL
/// is two bytes, and RAX must hold the number again.
fn continue_later(regs: &mut CpuUserRegs, op: u64) -> u64 {
    regs.rip = regs.rip.wrapping_sub(2);
    op
}

/// Trap-table entries handled per call before a continuation.
const TRAPS_PER_CALL: u64 = 64;

fn set_trap_table(d: &mut Domain, regs: &mut CpuUserRegs) -> Ret {
    let mut ptr = regs.rdi;
    if ptr == 0 {
        d.vcpu.traps = [TrapInfo::default(); 256];
        return 0;
    }
    let mem = d.kernel_mem();
    for _ in 0..TRAPS_PER_CALL {
        let mut raw = [0u8; 16];
        guest!(mem.read(ptr, &mut raw));
        let address = u64::from_le_bytes(raw[8..16].try_into().unwrap_or_default());
        if address == 0 {
            return 0;
        }
        if !is_canonical(address) {
            return -EINVAL;
        }
        let ti = TrapInfo { vector: raw[0], flags: raw[1], cs: u16::from_le_bytes([raw[2], raw[3]]), address };
        d.vcpu.traps[ti.vector as usize] = ti;
        ptr += 16;
    }
    regs.rdi = ptr;
    continue_later(regs, nr::SET_TRAP_TABLE) as i64
}

fn stack_switch(d: &mut Domain, ss: u64, sp: u64) -> Ret {
    // Xen forces the stack selector's RPL for the guest; ring 3 here.
    d.vcpu.kernel_ss = ss | 3;
    d.vcpu.kernel_sp = sp;
    0
}

fn set_callbacks(d: &mut Domain, event: u64, failsafe: u64, syscall: u64) -> Ret {
    // As in Xen, each registration that fails (non-canonical) is ignored
    // and the hypercall still returns 0.
    let _ = register_callback(d, CALLBACKTYPE_EVENT, 0, event);
    let _ = register_callback(d, CALLBACKTYPE_FAILSAFE, 0, failsafe);
    let _ = register_callback(d, CALLBACKTYPE_SYSCALL, 0, syscall);
    0
}

const CALLBACKTYPE_EVENT: u16 = 0;
const CALLBACKTYPE_FAILSAFE: u16 = 1;
const CALLBACKTYPE_SYSCALL: u16 = 2;
const CALLBACKTYPE_SYSENTER: u16 = 3;
const CALLBACKTYPE_NMI: u16 = 4;
const CALLBACKTYPE_SYSCALL32: u16 = 7;
const CALLBACKF_MASK_EVENTS: u16 = 1;

fn register_callback(d: &mut Domain, kind: u16, flags: u16, address: u64) -> Ret {
    if !is_canonical(address) {
        return -EINVAL;
    }
    let v = &mut d.vcpu;
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

fn callback_op(d: &mut Domain, cmd: u32, arg: u64) -> Ret {
    const CALLBACKOP_REGISTER: u32 = 0;
    const CALLBACKOP_UNREGISTER: u32 = 1;
    let mem = d.kernel_mem();
    match cmd {
        CALLBACKOP_REGISTER => {
            // struct callback_register { u16 type; u16 flags; u64 address @8 }
            let mut raw = [0u8; 16];
            guest!(mem.read(arg, &mut raw));
            let kind = u16::from_le_bytes([raw[0], raw[1]]);
            let flags = u16::from_le_bytes([raw[2], raw[3]]);
            let address = u64::from_le_bytes(raw[8..16].try_into().unwrap_or_default());
            register_callback(d, kind, flags, address)
        }
        CALLBACKOP_UNREGISTER => {
            let mut raw = [0u8; 2];
            guest!(mem.read(arg, &mut raw));
            match u16::from_le_bytes(raw) {
                CALLBACKTYPE_NMI => {
                    d.vcpu.traps[2] = TrapInfo::default();
                    0
                }
                CALLBACKTYPE_EVENT | CALLBACKTYPE_FAILSAFE | CALLBACKTYPE_SYSCALL | CALLBACKTYPE_SYSCALL32
                | CALLBACKTYPE_SYSENTER => -EINVAL,
                _ => -ENOSYS,
            }
        }
        _ => -ENOSYS,
    }
}

fn fpu_taskswitch(d: &mut Domain, set: u64) -> Ret {
    d.fpu_ts = set as u32 != 0;
    0
}

/// VMASST types xen-core implements: 4gb_segments and its notify variant
/// and pae_extended_cr3 (all without effect on 64-bit guests, as on Xen),
/// and runstate_update_flag. writable_pagetables, architectural_iopl and
/// m2p_strict are refused (-EINVAL) until implemented; see docs/hypercalls.md.
const VMASST_VALID: u64 = (1 << 0) | (1 << 1) | (1 << 3) | (1 << 5);
/// `VMASST_TYPE_pae_extended_cr3`.
const VMASST_PAE_EXTENDED_CR3: u32 = 3;

fn vm_assist(d: &mut Domain, cmd: u32, kind: u32) -> Ret {
    if kind >= 64 || VMASST_VALID & (1 << kind) == 0 {
        return -EINVAL;
    }
    match cmd {
        0 => d.vm_assist |= 1 << kind,
        1 => d.vm_assist &= !(1 << kind),
        _ => return -ENOSYS,
    }
    0
}

fn set_segment_base(d: &mut Domain, which: u32, base: u64) -> Ret {
    const SEGBASE_FS: u32 = 0;
    const SEGBASE_GS_USER: u32 = 1;
    const SEGBASE_GS_KERNEL: u32 = 2;
    const SEGBASE_GS_USER_SEL: u32 = 3;
    let canonical = is_canonical(base);
    match which {
        SEGBASE_FS | SEGBASE_GS_USER | SEGBASE_GS_KERNEL if !canonical => -EINVAL,
        SEGBASE_FS => {
            d.fs_base = base;
            0
        }
        SEGBASE_GS_USER => {
            d.gs_base_user = base;
            0
        }
        SEGBASE_GS_KERNEL => {
            d.gs_base_kernel = base;
            0
        }
        SEGBASE_GS_USER_SEL => {
            // Every selector a guest can name in xen-core's GDT is flat (or
            // NUL, or faults and is NULed, as in Xen): the base becomes 0.
            d.gs_base_user = 0;
            0
        }
        _ => -EINVAL,
    }
}

fn sched_op(d: &mut Domain, regs: &CpuUserRegs, cmd: u32, arg: u64) -> Ret {
    use xen_public::{SCHEDOP_BLOCK, SCHEDOP_POLL, SCHEDOP_SHUTDOWN, SCHEDOP_YIELD};
    match u64::from(cmd) {
        SCHEDOP_YIELD => 0,
        // With one vCPU and no other source of events, blocking can only
        // return at once: the caller re-checks its events, as it must
        // after any wakeup.
        SCHEDOP_BLOCK => 0,
        SCHEDOP_POLL => poll(d, arg),
        SCHEDOP_SHUTDOWN => {
            let reason = guest!(d.kernel_mem().read_u32(arg));
            d.shutdown(regs, reason)
        }
        _ => -ENOSYS,
    }
}

/// Bytes copied per step of `console_io` writes.
const CONSOLE_CHUNK: usize = 256;
/// Bytes written per call before a continuation.
const CONSOLE_PER_CALL: u64 = 16 * 1024;

fn console_io(d: &mut Domain, regs: &mut CpuUserRegs) -> Ret {
    use xen_public::{CONSOLEIO_READ, CONSOLEIO_WRITE};
    let (cmd, count, buf) = (regs.rdi as u32, regs.rsi, regs.rdx);
    let mem = d.kernel_mem();
    match u64::from(cmd) {
        CONSOLEIO_WRITE => {
            let mut done = 0u64;
            let count = count as u32 as u64;
            while done < count {
                if done == CONSOLE_PER_CALL {
                    // Long writes continue in a re-issued call, as in Xen.
                    regs.rsi = count - done;
                    regs.rdx = buf + done;
                    return continue_later(regs, nr::CONSOLE_IO) as i64;
                }
                let n = (count - done).min(CONSOLE_CHUNK as u64) as usize;
                let mut chunk = [0u8; CONSOLE_CHUNK];
                guest!(mem.read(buf + done, &mut chunk[..n]));
                crate::guest::console_write(&chunk[..n]);
                done += n as u64;
            }
            0
        }
        CONSOLEIO_READ if !d.privileged => -EPERM,
        CONSOLEIO_READ if count as u32 > i32::MAX as u32 => -E2BIG,
        CONSOLEIO_READ => {
            let count = count as u32 as usize;
            let mut got = 0usize;
            while got < count {
                let Some(b) = crate::console::read_byte() else { break };
                guest!(mem.write(buf + got as u64, &[b]));
                got += 1;
            }
            got as i64
        }
        _ => -ENOSYS,
    }
}

fn copy_str(mem: &GuestMem, va: u64, s: &str, size: usize) -> Ret {
    let mut buf = [0u8; 1024];
    let n = s.len().min(size - 1);
    buf[..n].copy_from_slice(&s.as_bytes()[..n]);
    guest!(mem.write(va, &buf[..size]));
    0
}

fn xen_version(d: &mut Domain, cmd: u32, arg: u64) -> Ret {
    use xen_public::*;
    let mem = d.kernel_mem();
    match u64::from(cmd) {
        XENVER_VERSION => i64::from((XEN_MAJOR << 16) | XEN_MINOR),
        XENVER_EXTRAVERSION => copy_str(&mem, arg, "-xen-core", 16),
        XENVER_COMPILE_INFO => {
            // {compiler[64], compile_by[16], compile_domain[32], compile_date[32]}
            let mut info = [0u8; 144];
            let fields: [(&str, usize, usize); 4] =
                [("rustc 1.95.0", 0, 64), (NAME, 64, 16), (VERSION, 80, 32), ("unknown", 112, 32)];
            for (s, at, size) in fields {
                let n = s.len().min(size - 1);
                info[at..at + n].copy_from_slice(&s.as_bytes()[..n]);
            }
            guest!(mem.write(arg, &info));
            0
        }
        XENVER_CAPABILITIES => copy_str(&mem, arg, "xen-3.0-x86_64", 1024),
        XENVER_CHANGESET => copy_str(&mem, arg, "unavailable", 64),
        XENVER_PLATFORM_PARAMETERS => {
            guest!(mem.write(arg, &HYPERVISOR_VIRT_START.to_le_bytes()));
            0
        }
        XENVER_GET_FEATURES => {
            let idx = guest!(mem.read_u32(arg));
            if idx != 0 {
                return -EINVAL;
            }
            guest!(mem.write(arg + 4, &features(d).to_le_bytes()));
            0
        }
        XENVER_PAGESIZE => PAGE_SIZE as i64,
        _ => -ENOSYS,
    }
}

/// XENFEAT bits xen-core offers a PV domain (submap 0).
fn features(d: &Domain) -> u32 {
    const XENFEAT_PAE_PGDIR_ABOVE_4GB: u32 = 4;
    const XENFEAT_DOM0: u32 = 11;
    const XENFEAT_DIRECT_MAPPED: u32 = 17;
    let mut f = 1 << XENFEAT_DIRECT_MAPPED;
    if d.privileged {
        f |= 1 << XENFEAT_DOM0;
    }
    if d.vm_assist & (1 << VMASST_PAE_EXTENDED_CR3) != 0 {
        f |= 1 << XENFEAT_PAE_PGDIR_ABOVE_4GB;
    }
    f
}

/// Preemption: entries of a batch handled per call before a continuation.
const BATCH_PER_CALL: u64 = 512;
/// Xen's `MMU_UPDATE_PREEMPTED`: the count of a continued batch.
const MMU_UPDATE_PREEMPTED: u64 = 0x8000_0000;
const PTE_ADDR: u64 = 0x000f_ffff_ffff_f000;
const PTE_US: u64 = 4;

/// The page-table memory and the frame table, locked together.
struct Mm {
    mem: DirectMapMem,
}

fn mm() -> Mm {
    Mm { mem: DirectMapMem { end_mfn: crate::mm::machine::M2P.get().map_or(0, |m| m.entries) } }
}

fn who(d: &Domain) -> Who {
    Who { dom: d.domid, io: d.privileged }
}

/// The domain an MMU batch acts on: `foreigndom` low 16 bits (self unless a
/// privileged domain names another, which does not exist yet: -ESRCH).
fn check_foreign(d: &Domain, foreigndom: u64) -> Result<(), i64> {
    let pg = foreigndom as u16;
    let pt = (foreigndom >> 16) as u16;
    let pg_ok = pg == xen_public::DOMID_SELF || pg == d.domid;
    let pt_ok = pt == 0 || pt.wrapping_sub(1) == d.domid;
    if pg_ok && pt_ok { Ok(()) } else { Err(-ESRCH) }
}

/// 64-bit PV guests run in ring 3: every present entry they install gets
/// the user bit, as Xen's `adjust_guest_l*e` does.
fn adjust(e: u64) -> u64 {
    if e & 1 != 0 { e | PTE_US } else { e }
}

/// Start or resume a batch: returns (count, done so far).
fn batch_start(mem: &GuestMem, count: u64, pdone: u64) -> Result<(u64, u64), i64> {
    let count = count as u32 as u64;
    if count & MMU_UPDATE_PREEMPTED == 0 {
        return Ok((count, 0));
    }
    let done = if pdone != 0 { mem.read_u32(pdone).map_err(|_| -EFAULT)? as u64 } else { 0 };
    Ok((count & !MMU_UPDATE_PREEMPTED, done))
}

fn write_done(mem: &GuestMem, pdone: u64, done: u64) -> Result<(), i64> {
    if pdone != 0 {
        mem.write(pdone, &(done as u32).to_le_bytes()).map_err(|_| -EFAULT)?;
    }
    Ok(())
}

/// Continue a batch hypercall after `i` of `count` entries of `size` bytes.
fn batch_continue(regs: &mut CpuUserRegs, op: u64, i: u64, count: u64, size: u64) -> Ret {
    regs.rdi += i * size;
    regs.rsi = (count - i) | MMU_UPDATE_PREEMPTED;
    continue_later(regs, op) as i64
}

/// Drive a batch hypercall (`mmu_update`, `mmuext_op`): `SIZE`-byte
/// entries at RDI, count in RSI, `done` pointer in RDX, foreign domain in
/// R10. Stops at the first failing entry; continues every
/// [`BATCH_PER_CALL`] entries; writes `done` back.
fn batch<const SIZE: usize>(
    d: &mut Domain,
    regs: &mut CpuUserRegs,
    op: u64,
    mut each: impl FnMut(&mut Domain, &[u8; SIZE]) -> Result<(), i64>,
) -> Ret {
    let (list, count, pdone, foreigndom) = (regs.rdi, regs.rsi, regs.rdx, regs.r10);
    if let Err(e) = check_foreign(d, foreigndom) {
        return e;
    }
    let mem = d.kernel_mem();
    let (count, mut done) = match batch_start(&mem, count, pdone) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let mut rc = 0;
    for i in 0..count {
        if i == BATCH_PER_CALL {
            if let Err(e) = write_done(&mem, pdone, done) {
                return e;
            }
            return batch_continue(regs, op, i, count, SIZE as u64);
        }
        let mut raw = [0u8; SIZE];
        if mem.read(list + i * SIZE as u64, &mut raw).is_err() {
            rc = -EFAULT;
            break;
        }
        if let Err(e) = each(d, &raw) {
            rc = e;
            break;
        }
        done += 1;
    }
    if let Err(e) = write_done(&mem, pdone, done) {
        return e;
    }
    rc
}

fn le64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b.try_into().unwrap_or_default())
}

fn mmu_update(d: &mut Domain, regs: &mut CpuUserRegs) -> Ret {
    const MACHPHYS: u64 = 1;
    const PRESERVE_AD: u64 = 2;
    let mut m = mm();
    let rc = batch::<16>(d, regs, nr::MMU_UPDATE, |d, raw| {
        let (ptr, val) = (le64(&raw[..8]), le64(&raw[8..]));
        let mut ftg = FRAME_TABLE.lock();
        let ft = ftg.as_mut().ok_or(-EINVAL)?;
        // NORMAL, PRESERVE_AD and NO_TRANSLATE (the same as NORMAL for PV)
        // update an entry; MACHPHYS updates the M2P.
        if ptr & 3 == MACHPHYS {
            let mfn = ptr >> 12;
            if ft.info(mfn).map(|f| f.owner) != Some(d.domid) {
                return Err(-EINVAL);
            }
            crate::mm::machine::set_m2p(Mfn(mfn), val);
            return Ok(());
        }
        let maddr = ptr & !7;
        let idx = ((maddr & 0xfff) >> 3) as usize;
        ft.update_entry(&mut m.mem, maddr >> 12, idx, adjust(val), ptr & 3 == PRESERVE_AD, who(d)).map_err(|e| e.errno())
    });
    crate::arch::x86_64::cpu::flush_tlb();
    rc
}

/// Walk the domain's kernel L4 to the L1 table and index mapping `va`.
fn l1_slot(d: &Domain, m: &Mm, va: u64) -> Option<(u64, usize)> {
    let mut table = d.guest_table >> 12;
    for level in (2..=4u32).rev() {
        let e = m.mem.read(table, ((va >> (12 + 9 * (level - 1))) & 511) as usize);
        if e & 1 == 0 || e & 0x80 != 0 {
            return None;
        }
        table = (e & PTE_ADDR) >> 12;
    }
    Some((table, ((va >> 12) & 511) as usize))
}

fn update_va_mapping(d: &mut Domain, va: u64, pte: u64, flags: u64) -> Ret {
    const UVMF_TLB_FLUSH: u64 = 1;
    const UVMF_INVLPG: u64 = 2;
    if !crate::mm::guest_walk::guest_va_ok(va) {
        return -EINVAL;
    }
    let mut m = mm();
    let Some((l1, idx)) = l1_slot(d, &m, va) else { return -EINVAL };
    let mut ftg = FRAME_TABLE.lock();
    let Some(ft) = ftg.as_mut() else { return -EINVAL };
    // Reached through validated tables, the frame must be a live L1.
    if ft.info(l1).map(|f| (f.ty, f.validated)) != Some((PageType::L1, true)) {
        return -EINVAL;
    }
    if let Err(e) = ft.update_entry(&mut m.mem, l1, idx, adjust(pte), false, who(d)) {
        return e.errno();
    }
    drop(ftg);
    match flags & 3 {
        UVMF_TLB_FLUSH => crate::arch::x86_64::cpu::flush_tlb(),
        UVMF_INVLPG => crate::arch::x86_64::cpu::invlpg(va),
        _ => {}
    }
    0
}

/// Take the references a vCPU's base pointer holds on an L4 (validating it
/// if needed), and drop those of the old one.
fn switch_base(d: &Domain, new_mfn: u64, old_maddr: u64) -> Result<(), i64> {
    let mut m = mm();
    let mut ftg = FRAME_TABLE.lock();
    let ft = ftg.as_mut().ok_or(-EINVAL)?;
    if new_mfn != 0 {
        ft.get_page(new_mfn, d.domid).map_err(|_| -EINVAL)?;
        if ft.get_page_type(&mut m.mem, new_mfn, PageType::L4, who(d)).is_err() {
            ft.put_page(new_mfn);
            return Err(-EINVAL);
        }
    }
    if old_maddr != 0 {
        ft.put_page_type(&mut m.mem, old_maddr >> 12);
        ft.put_page(old_maddr >> 12);
    }
    Ok(())
}

/// One MMUEXT command.
fn mmuext_one(d: &mut Domain, cmd: u32, arg1: u64, arg2: u64) -> Result<(), i64> {
    use crate::arch::x86_64::cpu;
    let mut m = mm();
    let w = who(d);
    let with_ft = |f: &mut dyn FnMut(&mut crate::mm::page_type::FrameTable<'static>, &mut Mm) -> Result<(), i64>| {
        let mut ftg = FRAME_TABLE.lock();
        let ft = ftg.as_mut().ok_or(-EINVAL)?;
        let mut m = mm();
        f(ft, &mut m)
    };
    match cmd {
        0..=3 => with_ft(&mut |ft, m| ft.pin(&mut m.mem, arg1, cmd as u8 + 1, w).map_err(|_| -EINVAL)),
        4 => with_ft(&mut |ft, m| ft.unpin(&mut m.mem, arg1, w).map_err(|_| -EINVAL)),
        5 => {
            // NEW_BASEPTR
            switch_base(d, arg1, d.guest_table)?;
            d.guest_table = arg1 << 12;
            Ok(())
        }
        6 | 8 | 10 => {
            cpu::flush_tlb();
            Ok(())
        }
        7 | 9 | 11 => {
            if crate::domain::vcpu::is_canonical(arg1) {
                cpu::invlpg(arg1);
            }
            Ok(())
        }
        12 if d.privileged => {
            cpu::wbinvd();
            Ok(())
        }
        12 => Err(-EACCES),
        13 => set_ldt(d, if arg2 == 0 { 0 } else { arg1 }, arg2),
        15 => {
            // NEW_USER_BASEPTR
            switch_base(d, arg1, d.guest_table_user)?;
            d.guest_table_user = arg1 << 12;
            d.vcpu.has_user_table = arg1 != 0;
            Ok(())
        }
        16 | 17 => {
            // CLEAR_PAGE (arg1 = mfn), COPY_PAGE (arg1 = dst, arg2 = src):
            // the destination must be one the domain may write.
            let dst = arg1;
            let src = arg2;
            let ok = with_ft(&mut |ft, m| {
                if cmd == 17 && ft.info(src).map(|f| f.owner) != Some(w.dom) {
                    return Err(-EINVAL);
                }
                ft.get_page(dst, w.dom).map_err(|_| -EINVAL)?;
                if ft.get_page_type(&mut m.mem, dst, PageType::Writable, w).is_err() {
                    ft.put_page(dst);
                    return Err(-EINVAL);
                }
                Ok(())
            });
            ok?;
            for i in 0..512 {
                let v = if cmd == 16 { 0 } else { m.mem.read(src, i) };
                m.mem.write(dst, i, v);
            }
            with_ft(&mut |ft, m| {
                ft.put_page_type(&mut m.mem, dst);
                ft.put_page(dst);
                Ok(())
            })
        }
        _ => Err(-ENOSYS),
    }
}

fn mmuext_op(d: &mut Domain, regs: &mut CpuUserRegs) -> Ret {
    batch::<24>(d, regs, nr::MMUEXT_OP, |d, raw| {
        let cmd = u32::from_le_bytes(raw[0..4].try_into().unwrap_or_default());
        mmuext_one(d, cmd, le64(&raw[8..16]), le64(&raw[16..24]))
    })
}

/// `multicall(list, nr)`: each 64-byte entry `{op, result, args[6]}` runs
/// in turn and gets its result; `iret` ends the batch (the rest is not run);
/// a sub-call that needs a continuation continues the whole batch.
fn multicall(d: &mut Domain, regs: &mut CpuUserRegs) -> Ret {
    let (list, count) = (regs.rdi, regs.rsi as u32 as u64);
    if d.in_multicall {
        return -EINVAL;
    }
    let mem = d.kernel_mem();
    for i in 0..count {
        if i > 0 && i % BATCH_PER_CALL == 0 {
            regs.rdi = list + i * 64;
            regs.rsi = count - i;
            return continue_later(regs, nr::MULTICALL) as i64;
        }
        let entry = list + i * 64;
        let mut raw = [0u8; 64];
        if mem.read(entry, &mut raw).is_err() {
            return -EFAULT;
        }
        let w = |k: usize| u64::from_le_bytes(raw[k * 8..k * 8 + 8].try_into().unwrap_or_default());
        let op = w(0);
        if op == nr::IRET {
            let result = d.iret(regs);
            let _ = mem.write(entry + 8, &result.to_le_bytes());
            return result as i64;
        }
        let mut sub = CpuUserRegs { rax: op, rdi: w(2), rsi: w(3), rdx: w(4), r10: w(5), r8: w(6), rip: 2, ..*regs };
        d.in_multicall = true;
        let result = if op == nr::MULTICALL { (-EINVAL) as u64 } else { dispatch(d, &mut sub) };
        d.in_multicall = false;
        if mem.write(entry + 8, &result.to_le_bytes()).is_err() {
            return -EFAULT;
        }
        if sub.rip != 2 {
            // The sub-call asked to be continued: store its new arguments
            // and continue the multicall from this entry.
            let args = [sub.rdi, sub.rsi, sub.rdx, sub.r10, sub.r8];
            let mut out = [0u8; 40];
            for (c, a) in out.chunks_exact_mut(8).zip(args) {
                c.copy_from_slice(&a.to_le_bytes());
            }
            if mem.write(entry + 16, &out).is_err() {
                return -EFAULT;
            }
            regs.rdi = entry;
            regs.rsi = count - i;
            return continue_later(regs, nr::MULTICALL) as i64;
        }
    }
    0
}

/// Entries below the hypervisor's reserved GDT area (14 pages).
const FIRST_RESERVED_GDT_ENTRY: u64 = 14 * 512;

fn set_gdt(d: &mut Domain, frame_list: u64, entries: u64) -> Ret {
    if entries > FIRST_RESERVED_GDT_ENTRY {
        return -EINVAL;
    }
    let nr_frames = entries.div_ceil(512) as usize;
    let mut raw = [0u8; 14 * 8];
    if d.kernel_mem().read(frame_list, &mut raw[..nr_frames * 8]).is_err() {
        return -EFAULT;
    }
    let mut frames = [0u64; 14];
    for (f, c) in frames.iter_mut().zip(raw.chunks_exact(8)).take(nr_frames) {
        *f = u64::from_le_bytes(c.try_into().unwrap_or_default());
    }
    let mut m = mm();
    let mut ftg = FRAME_TABLE.lock();
    let Some(ft) = ftg.as_mut() else { return -EINVAL };
    for i in 0..nr_frames {
        let ok = ft.get_page(frames[i], d.domid).is_ok();
        if !ok || ft.get_page_type(&mut m.mem, frames[i], PageType::SegDesc, who(d)).is_err() {
            if ok {
                ft.put_page(frames[i]);
            }
            for &f in &frames[..i] {
                ft.put_page_type(&mut m.mem, f);
                ft.put_page(f);
            }
            return -EINVAL;
        }
    }
    let old = d.gdt_ents.div_ceil(512) as usize;
    for &f in &d.gdt_frames[..old] {
        ft.put_page_type(&mut m.mem, f);
        ft.put_page(f);
    }
    d.gdt_frames = frames;
    d.gdt_ents = entries;
    let descs = (0..entries as usize).map(|i| m.mem.read(frames[i / 512], i % 512));
    crate::arch::x86_64::gdt::load_guest_descriptors(descs);
    0
}

fn update_descriptor(d: &mut Domain, maddr: u64, desc: u64) -> Ret {
    let Some(desc) = crate::mm::descriptor::check_descriptor(desc).filter(|_| maddr.is_multiple_of(8)) else {
        return -EINVAL;
    };
    let mfn = maddr >> 12;
    let idx = ((maddr & 0xfff) / 8) as usize;
    let mut m = mm();
    let mut ftg = FRAME_TABLE.lock();
    let Some(ft) = ftg.as_mut() else { return -EINVAL };
    if ft.get_page(mfn, d.domid).is_err() {
        return -EINVAL;
    }
    let is_desc = ft.info(mfn).is_some_and(|f| f.ty == PageType::SegDesc && f.type_count > 0);
    let ty = if is_desc { PageType::SegDesc } else { PageType::Writable };
    if ft.get_page_type(&mut m.mem, mfn, ty, who(d)).is_err() {
        ft.put_page(mfn);
        return -EINVAL;
    }
    m.mem.write(mfn, idx, desc);
    ft.put_page_type(&mut m.mem, mfn);
    ft.put_page(mfn);
    if let Some(i) = d.ldt_frames.0[..d.ldt_frames.1].iter().position(|&f| f == mfn) {
        crate::arch::x86_64::gdt::set_ldt_entry(i * 512 + idx, desc);
    }
    let frames = d.gdt_ents.div_ceil(512) as usize;
    if let Some(i) = d.gdt_frames[..frames].iter().position(|&f| f == mfn) {
        let entry = i * 512 + idx;
        if (entry as u64) < d.gdt_ents {
            crate::arch::x86_64::gdt::set_guest_descriptor(entry, desc);
        }
    }
    0
}

/// `MMUEXT_SET_LDT`: a page-aligned guest address and at most 8192 entries.
/// The LDT's pages become descriptor pages and are installed at once. If
/// one cannot (still writable, not the domain's), the call still succeeds,
/// as on Xen, whose lazy LDT mapping only fails when the guest uses it:
/// here the LDT is then left empty, so such a selector faults.
fn set_ldt(d: &mut Domain, va: u64, ents: u64) -> Result<(), i64> {
    use crate::arch::x86_64::gdt;
    if va & 0xfff != 0 || !crate::mm::guest_walk::guest_va_ok(va) || ents > gdt::LDT_ENTRIES as u64 {
        return Err(-EINVAL);
    }
    if d.ldt == (va, ents) {
        return Ok(());
    }
    let mut m = mm();
    let mut ftg = FRAME_TABLE.lock();
    let ft = ftg.as_mut().ok_or(-EINVAL)?;
    let (old, n) = d.ldt_frames;
    for &f in &old[..n] {
        ft.put_page_type(&mut m.mem, f);
        ft.put_page(f);
    }
    d.ldt = (va, ents);
    d.ldt_frames = ([0; 16], 0);
    let pages = (ents * 8).div_ceil(4096) as usize;
    let mut frames = [0u64; 16];
    for (i, f) in frames.iter_mut().enumerate().take(pages) {
        let walked = crate::mm::guest_walk::translate(&crate::guest::DirectMap, d.guest_table, va + i as u64 * 4096, false);
        let typed = walked.ok().map(|maddr| maddr >> 12).filter(|&mfn| {
            ft.get_page(mfn, d.domid).is_ok()
                && (ft.get_page_type(&mut m.mem, mfn, PageType::SegDesc, who(d)).is_ok() || {
                    ft.put_page(mfn);
                    false
                })
        });
        match typed {
            Some(mfn) => *f = mfn,
            None => {
                for &g in &frames[..i] {
                    ft.put_page_type(&mut m.mem, g);
                    ft.put_page(g);
                }
                gdt::load_ldt(core::iter::empty(), 0);
                return Ok(());
            }
        }
    }
    d.ldt_frames = (frames, pages);
    let descs = (0..ents as usize).map(|i| m.mem.read(frames[i / 512], i % 512));
    gdt::load_ldt(descs, ents as usize);
    Ok(())
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap_or_default())
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes(b[off..off + 2].try_into().unwrap_or_default())
}

/// The domain a `dom` field names: only the caller itself exists here, so
/// anything else is unknown (-ESRCH).
fn self_dom(d: &Domain, dom: u16) -> Result<(), i64> {
    if dom == xen_public::DOMID_SELF || dom == d.domid { Ok(()) } else { Err(-ESRCH) }
}

fn set_pending(d: &Domain, port: u32) {
    crate::event::set_pending(&mut d.event_bits(), port);
}

/// `event_channel_op(cmd, arg)`: the 2-level event channels of
/// `event.rs`, with results written back into the argument structure.
fn event_channel_op(d: &mut Domain, cmd: u32, arg: u64) -> Ret {
    use crate::event::{self, op};
    let size = match cmd {
        op::ALLOC_UNBOUND => 8,
        op::BIND_INTERDOMAIN | op::BIND_VIRQ => 12,
        op::BIND_IPI | op::BIND_VCPU => 8,
        op::CLOSE | op::SEND | op::UNMASK => 4,
        op::STATUS => 24,
        op::RESET => 2,
        _ => return -ENOSYS,
    };
    let mem = d.kernel_mem();
    let mut b = [0u8; 24];
    if mem.read(arg, &mut b[..size]).is_err() {
        return -EFAULT;
    }
    let dom = d.domid;
    let result: Result<Option<(usize, u32)>, i64> = match cmd {
        op::ALLOC_UNBOUND => self_dom(d, u16_at(&b, 0)).and_then(|()| {
            let remote = u16_at(&b, 2);
            let remote = if remote == xen_public::DOMID_SELF { dom } else { remote };
            d.ports.alloc_unbound(remote).map(|p| Some((4, p)))
        }),
        op::BIND_INTERDOMAIN => self_dom(d, u16_at(&b, 0)).and_then(|()| {
            let local = event::bind_loopback(&mut d.ports, dom, u32_at(&b, 4))?;
            // As Xen: notifications sent to the unbound port may have been
            // lost, so the new local port starts pending.
            set_pending(d, local);
            Ok(Some((8, local)))
        }),
        op::BIND_VIRQ => d.ports.bind_virq(u32_at(&b, 0), u32_at(&b, 4)).map(|p| Some((8, p))),
        op::BIND_IPI => d.ports.bind_ipi(u32_at(&b, 0)).map(|p| Some((4, p))),
        op::CLOSE => event::close(&mut d.ports, dom, u32_at(&b, 0)).map(|()| None),
        op::SEND => event::send_target(&d.ports, dom, u32_at(&b, 0)).map(|t| {
            if let Some((_, port)) = t {
                set_pending(d, port);
            }
            None
        }),
        op::UNMASK => {
            let port = u32_at(&b, 0);
            if d.ports.state(port).is_none() {
                Err(-EINVAL)
            } else {
                event::unmask(&mut d.event_bits(), port);
                Ok(None)
            }
        }
        op::BIND_VCPU => match (d.ports.state(u32_at(&b, 0)), u32_at(&b, 4)) {
            (_, v) if v != 0 => Err(-xen_public::errno::ENOENT),
            (None | Some(event::State::Free | event::State::Reserved), _) => Err(-EINVAL),
            _ => Ok(None),
        },
        op::STATUS => self_dom(d, u16_at(&b, 0)).and_then(|()| {
            let (status, w1, w2) = event::status(&d.ports, u32_at(&b, 4))?;
            b[8..12].copy_from_slice(&status.to_le_bytes());
            b[12..16].copy_from_slice(&0u32.to_le_bytes());
            if status == event::stat::VIRQ {
                b[16..20].copy_from_slice(&w1.to_le_bytes());
            } else {
                b[16..18].copy_from_slice(&(w1 as u16).to_le_bytes());
                b[20..24].copy_from_slice(&w2.to_le_bytes());
            }
            Ok(Some((8, status)))
        }),
        op::RESET => self_dom(d, u16_at(&b, 0)).map(|()| {
            d.ports.reset();
            None
        }),
        _ => Err(-ENOSYS),
    };
    match result {
        Err(e) => e,
        Ok(None) => 0,
        Ok(Some((off, v))) => {
            if cmd != op::STATUS {
                b[off..off + 4].copy_from_slice(&v.to_le_bytes());
            }
            if mem.write(arg, &b[..size]).is_err() { -EFAULT } else { 0 }
        }
    }
}

/// `SCHEDOP_poll`: returns at once if an upcall is deliverable or one of
/// the ports is pending; bad ports are -EINVAL; more than 128 -EINVAL.
/// Otherwise it waits for the timeout (there is nothing else to run).
fn poll(d: &mut Domain, arg: u64) -> Ret {
    use crate::event::EventBits;
    let mem = d.kernel_mem();
    let mut b = [0u8; 24];
    if mem.read(arg, &mut b).is_err() {
        return -EFAULT;
    }
    let (ports, nr, timeout) = (le64(&b[0..8]), u32_at(&b, 8), le64(&b[16..24]));
    if nr > 128 {
        return -EINVAL;
    }
    if d.upcall_deliverable() {
        return 0;
    }
    let bits = d.event_bits();
    for i in 0..u64::from(nr) {
        let Ok(port) = mem.read_u32(ports + i * 4) else { return -EFAULT };
        if d.ports.state(port).is_none() {
            return -EINVAL;
        }
        if bits.is_pending(port) {
            return 0;
        }
    }
    if timeout != 0
        && let Some(clock) = crate::guest::CLOCK.get() {
            while clock.system_time(crate::arch::x86_64::clock::rdtsc()) < timeout {
                core::hint::spin_loop();
            }
        }
    0
}

/// Grant-table operations handled per call before a continuation.
const GNTTAB_PER_CALL: u64 = 128;

/// The 16-bit flags word of grant entry `gref`, shared with the guest.
fn grant_flags(d: &Domain, gref: u32) -> &'static core::sync::atomic::AtomicU16 {
    let frame = d.grant.frames[(gref / crate::grant::ENTRIES_PER_FRAME) as usize];
    let addr = (frame << 12) + u64::from(gref % crate::grant::ENTRIES_PER_FRAME) * 8;
    // SAFETY: the entry lies in one of the domain's grant frames (the caller
    // checked `gref` against `nr_frames`), inside the direct map; the guest
    // updates the same word atomically.
    unsafe { core::sync::atomic::AtomicU16::from_ptr(crate::arch::x86_64::maddr_to_virt(addr) as *mut u16) }
}

/// `(domid, frame)` of grant entry `gref`.
fn grant_entry(d: &Domain, gref: u32) -> (u16, u64) {
    let m = mm();
    let frame = d.grant.frames[(gref / crate::grant::ENTRIES_PER_FRAME) as usize];
    let e = m.mem.read(frame, (gref % crate::grant::ENTRIES_PER_FRAME) as usize);
    (((e >> 16) & 0xffff) as u16, e >> 32)
}

fn nr_grant_entries(d: &Domain) -> u32 {
    d.grant.nr_frames * crate::grant::ENTRIES_PER_FRAME
}

/// Pin grant `gref` for `readonly` or writable use: set GTF_reading /
/// GTF_writing with a bounded compare-and-swap loop, as Xen does.
fn grant_pin(d: &mut Domain, gref: u32, readonly: bool) -> Result<u64, i16> {
    use core::sync::atomic::Ordering;
    use crate::grant::{gntst, pin_flags};
    let (domid, frame) = grant_entry(d, gref);
    let (r, w) = d.grant.pins[gref as usize];
    let word = grant_flags(d, gref);
    let mut cur = word.load(Ordering::SeqCst);
    for _ in 0..5 {
        let new = pin_flags(cur, domid, d.domid, readonly, r + w > 0)?;
        match word.compare_exchange(cur, new, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => {
                let p = &mut d.grant.pins[gref as usize];
                if readonly { p.0 += 1 } else { p.1 += 1 }
                return Ok(frame);
            }
            Err(now) => cur = now,
        }
    }
    Err(gntst::GENERAL_ERROR)
}

/// Drop a pin and clear the flags no pin needs any more.
fn grant_unpin(d: &mut Domain, gref: u32, readonly: bool) {
    let p = &mut d.grant.pins[gref as usize];
    if readonly { p.0 = p.0.saturating_sub(1) } else { p.1 = p.1.saturating_sub(1) }
    let a = crate::grant::Active { readers: u32::from(p.0), writers: u32::from(p.1), domid: d.domid, frame: 0 };
    grant_flags(d, gref).fetch_and(!a.flags_to_clear(), core::sync::atomic::Ordering::SeqCst);
}

fn gnttab_setup_table(d: &mut Domain, b: &mut [u8]) -> i16 {
    use crate::grant::{MAX_FRAMES, gntst};
    if self_dom(d, u16_at(b, 0)).is_err() {
        return gntst::BAD_DOMAIN;
    }
    let nr = u32_at(b, 4);
    if nr > MAX_FRAMES {
        return gntst::GENERAL_ERROR;
    }
    while d.grant.nr_frames < nr {
        let Some(f) = crate::mm::machine::alloc_frame() else { return gntst::GENERAL_ERROR };
        if let Some(ft) = FRAME_TABLE.lock().as_mut() {
            let _ = ft.assign(f.0, d.domid);
        }
        d.grant.frames[d.grant.nr_frames as usize] = f.0;
        d.grant.nr_frames += 1;
    }
    let list = le64(&b[16..24]);
    let mem = d.kernel_mem();
    for i in 0..nr as usize {
        if mem.write(list + i as u64 * 8, &d.grant.frames[i].to_le_bytes()).is_err() {
            return gntst::GENERAL_ERROR;
        }
    }
    gntst::OKAY
}

fn gnttab_map(d: &mut Domain, b: &mut [u8]) -> i16 {
    use crate::grant::{Mapping, gntmap, gntst};
    let (host_addr, flags, gref, dom) = (le64(&b[0..8]), u32_at(b, 8), u32_at(b, 12), u16_at(b, 16));
    if flags & (gntmap::HOST_MAP | gntmap::DEVICE_MAP) == 0 {
        return gntst::BAD_GNTREF;
    }
    // As Xen (`rcu_lock_domain_by_id`): a real domain id, not DOMID_SELF.
    if dom != d.domid {
        return gntst::BAD_DOMAIN;
    }
    if gref >= nr_grant_entries(d) {
        return gntst::BAD_GNTREF;
    }
    if flags & gntmap::CONTAINS_PTE != 0 {
        // Optional in this ABI version; not supported.
        return gntst::GENERAL_ERROR;
    }
    let readonly = flags & gntmap::READONLY != 0;
    let frame = match grant_pin(d, gref, readonly) {
        Ok(f) => f,
        Err(s) => return s,
    };
    let mut status = gntst::OKAY;
    if flags & gntmap::HOST_MAP != 0 {
        let pte = (frame << 12) | 0x25 | if readonly { 0 } else { 0x42 };
        let m = mm();
        status = match l1_slot(d, &m, host_addr) {
            Some((l1, idx)) => {
                let mut m = m;
                let mut ftg = FRAME_TABLE.lock();
                match ftg.as_mut() {
                    Some(ft) if ft.info(l1).map(|f| f.ty) == Some(PageType::L1) => {
                        let old = m.mem.read(l1, idx);
                        match ft.get_entry(&mut m.mem, l1, 1, pte, who(d)) {
                            Ok(()) => {
                                m.mem.write(l1, idx, pte);
                                ft.put_entry(&mut m.mem, 1, old);
                                gntst::OKAY
                            }
                            Err(_) => gntst::GENERAL_ERROR,
                        }
                    }
                    _ => gntst::GENERAL_ERROR,
                }
            }
            None => gntst::GENERAL_ERROR,
        };
        crate::arch::x86_64::cpu::invlpg(host_addr);
    }
    if status != gntst::OKAY {
        grant_unpin(d, gref, readonly);
        return status;
    }
    let Some(handle) = d.grant.maptrack.insert(Mapping { dom: d.domid, gref, host_addr: if flags & gntmap::HOST_MAP != 0 { host_addr } else { 0 }, readonly }) else {
        grant_unpin(d, gref, readonly);
        return gntst::NO_DEVICE_SPACE;
    };
    d.grant.mapped_frames[handle as usize] = frame;
    b[20..24].copy_from_slice(&handle.to_le_bytes());
    let bus = if flags & gntmap::DEVICE_MAP != 0 { frame << 12 } else { 0 };
    b[24..32].copy_from_slice(&bus.to_le_bytes());
    gntst::OKAY
}

fn gnttab_unmap(d: &mut Domain, b: &mut [u8]) -> i16 {
    use crate::grant::gntst;
    let (host_addr, handle) = (le64(&b[0..8]), u32_at(b, 16));
    let Some(map) = d.grant.maptrack.get(handle) else { return gntst::BAD_HANDLE };
    let frame = d.grant.mapped_frames[handle as usize];
    if host_addr != 0 {
        if host_addr != map.host_addr {
            return gntst::GENERAL_ERROR;
        }
        let mut m = mm();
        let Some((l1, idx)) = l1_slot(d, &m, host_addr) else { return gntst::GENERAL_ERROR };
        let cur = m.mem.read(l1, idx);
        if cur & 1 == 0 || (cur & PTE_ADDR) >> 12 != frame {
            return gntst::GENERAL_ERROR;
        }
        if let Some(ft) = FRAME_TABLE.lock().as_mut() {
            m.mem.write(l1, idx, 0);
            ft.put_entry(&mut m.mem, 1, cur);
        }
        crate::arch::x86_64::cpu::invlpg(host_addr);
    }
    d.grant.maptrack.remove(handle);
    grant_unpin(d, map.gref, map.readonly);
    gntst::OKAY
}

/// One side of a copy: the machine frame, after checking the grant or the
/// frame's ownership (and, for a destination frame, that it may be written).
fn copy_side(d: &mut Domain, is_gref: bool, v: u64, dom: u16, write: bool) -> Result<(u64, Option<u32>), i16> {
    use crate::grant::gntst;
    if self_dom(d, dom).is_err() {
        return Err(gntst::BAD_DOMAIN);
    }
    if is_gref {
        let gref = v as u32;
        if gref >= nr_grant_entries(d) {
            return Err(gntst::BAD_GNTREF);
        }
        let frame = grant_pin(d, gref, !write)?;
        return Ok((frame, Some(gref)));
    }
    let mut m = mm();
    let mut ftg = FRAME_TABLE.lock();
    let ft = ftg.as_mut().ok_or(gntst::GENERAL_ERROR)?;
    if ft.get_page(v, d.domid).is_err() {
        return Err(gntst::BAD_PAGE);
    }
    if write && ft.get_page_type(&mut m.mem, v, PageType::Writable, who(d)).is_err() {
        ft.put_page(v);
        return Err(gntst::GENERAL_ERROR);
    }
    Ok((v, None))
}

fn copy_release(d: &mut Domain, frame: u64, gref: Option<u32>, write: bool) {
    match gref {
        Some(g) => grant_unpin(d, g, !write),
        None => {
            let mut m = mm();
            if let Some(ft) = FRAME_TABLE.lock().as_mut() {
                if write {
                    ft.put_page_type(&mut m.mem, frame);
                }
                ft.put_page(frame);
            }
        }
    }
}

fn gnttab_copy(d: &mut Domain, b: &mut [u8]) -> i16 {
    use crate::grant::{copy_bounds, gntst};
    const SOURCE_GREF: u16 = 1;
    const DEST_GREF: u16 = 2;
    let (src_off, dst_off, len, flags) = (u16_at(b, 10), u16_at(b, 26), u16_at(b, 32), u16_at(b, 34));
    if let Err(s) = copy_bounds(src_off, dst_off, len) {
        return s;
    }
    let (src, sg) = match copy_side(d, flags & SOURCE_GREF != 0, le64(&b[0..8]), u16_at(b, 8), false) {
        Ok(v) => v,
        Err(s) => return s,
    };
    let (dst, dg) = match copy_side(d, flags & DEST_GREF != 0, le64(&b[16..24]), u16_at(b, 24), true) {
        Ok(v) => v,
        Err(s) => {
            copy_release(d, src, sg, false);
            return s;
        }
    };
    let s = crate::arch::x86_64::maddr_to_virt((src << 12) + u64::from(src_off)) as *const u8;
    let t = crate::arch::x86_64::maddr_to_virt((dst << 12) + u64::from(dst_off)) as *mut u8;
    // SAFETY: both ranges lie within one frame each (bounds checked), the
    // frames are referenced (and the destination typed writable) for the
    // copy, and `copy` tolerates overlap.
    unsafe { core::ptr::copy(s, t, usize::from(len)) };
    copy_release(d, dst, dg, true);
    copy_release(d, src, sg, false);
    gntst::OKAY
}

/// `grant_table_op(cmd, uop, count)`: per-op status in each structure;
/// the hypercall returns 0 when the array could be read and written.
fn grant_table_op(d: &mut Domain, regs: &mut CpuUserRegs) -> Ret {
    use crate::grant::gntst;
    const MAP: u32 = 0;
    const UNMAP: u32 = 1;
    const SETUP: u32 = 2;
    const DUMP: u32 = 3;
    const COPY: u32 = 5;
    const QUERY: u32 = 6;
    const SET_VERSION: u32 = 8;
    const GET_VERSION: u32 = 10;
    let (cmd, uop, count) = (regs.rdi as u32, regs.rsi, regs.rdx as u32 as u64);
    let (size, status_at) = match cmd {
        MAP => (32, 18),
        UNMAP => (24, 20),
        SETUP => (24, 8),
        DUMP => (4, 2),
        COPY => (40, 36),
        QUERY => (16, 12),
        SET_VERSION => (4, usize::MAX),
        GET_VERSION => (8, usize::MAX),
        _ => return -ENOSYS,
    };
    if matches!(cmd, SET_VERSION | GET_VERSION) && count != 1 {
        return -EINVAL;
    }
    let mem = d.kernel_mem();
    for i in 0..count {
        if i == GNTTAB_PER_CALL {
            regs.rsi = uop + i * size as u64;
            regs.rdx = count - i;
            return continue_later(regs, nr::GRANT_TABLE_OP) as i64;
        }
        let at = uop + i * size as u64;
        let mut b = [0u8; 40];
        if mem.read(at, &mut b[..size]).is_err() {
            return -EFAULT;
        }
        let status = match cmd {
            MAP => gnttab_map(d, &mut b),
            UNMAP => gnttab_unmap(d, &mut b),
            SETUP => gnttab_setup_table(d, &mut b),
            COPY => gnttab_copy(d, &mut b),
            QUERY => {
                if self_dom(d, u16_at(&b, 0)).is_ok() {
                    b[4..8].copy_from_slice(&d.grant.nr_frames.to_le_bytes());
                    b[8..12].copy_from_slice(&crate::grant::MAX_FRAMES.to_le_bytes());
                    gntst::OKAY
                } else {
                    gntst::BAD_DOMAIN
                }
            }
            DUMP => {
                if self_dom(d, u16_at(&b, 0)).is_ok() {
                    for g in 0..nr_grant_entries(d) {
                        let (domid, frame) = grant_entry(d, g);
                        let flags = grant_flags(d, g).load(core::sync::atomic::Ordering::SeqCst);
                        if flags != 0 {
                            crate::printk!("grant-table d{} ref {g}: flags {flags:#06x} domid {domid} frame {frame:#x} pins {:?}", d.domid, d.grant.pins[g as usize]);
                        }
                    }
                    gntst::OKAY
                } else {
                    gntst::BAD_DOMAIN
                }
            }
            SET_VERSION => {
                // Only version 1 exists here.
                return if u32_at(&b, 0) == 1 { 0 } else { -ENOSYS };
            }
            _ => {
                // GET_VERSION: {domid_t dom; uint32_t version}.
                if self_dom(d, u16_at(&b, 0)).is_err() {
                    return -ESRCH;
                }
                b[4..8].copy_from_slice(&1u32.to_le_bytes());
                return if mem.write(at, &b[..8]).is_err() { -EFAULT } else { 0 };
            }
        };
        b[status_at..status_at + 2].copy_from_slice(&status.to_le_bytes());
        if mem.write(at, &b[..size]).is_err() {
            return -EFAULT;
        }
    }
    0
}
