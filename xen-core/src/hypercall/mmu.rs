//! The MMU hypercalls: `mmu_update`, `mmuext_op`, `update_va_mapping`,
//! `multicall`, `set_gdt`, `update_descriptor`, over the frame table.

use super::*;
use xen_public::pte::{PteFlags, pte_maddr};

/// Preemption: entries of a batch handled per call before a continuation.
const BATCH_PER_CALL: u64 = 512;
/// Xen's `MMU_UPDATE_PREEMPTED`: the count of a continued batch.
const MMU_UPDATE_PREEMPTED: u64 = 0x8000_0000;

/// The page-table memory and the frame table, locked together.
pub(super) struct Mm {
    pub(super) mem: DirectMapMem,
}

pub(super) fn mm() -> Mm {
    Mm { mem: DirectMapMem::new(true) }
}

/// Finish the devalidations `owner`'s earlier calls left pending (Xen's
/// `old_guest_table`), preemptibly: -ERESTART if some remain. Every MMU
/// and grant path of a domain calls it first, so its own teardown is done
/// before it can ask for more.
pub(super) fn drain_pending(owner: u16) -> Result<(), i64> {
    let mut m = mm();
    match FRAME_TABLE.lock().as_mut() {
        Some(ft) if ft.has_pending() => {
            let r = ft.drain_pending(&mut m.mem, owner).map_err(|e| e.errno());
            ft.take_freed(|mfn| crate::mm::machine::free_frame(Mfn(mfn)));
            r
        }
        _ => Ok(()),
    }
}

pub(super) fn who(d: &Domain) -> Who {
    Who::own(d.domid, d.privileged)
}

/// Whose frames an MMU batch may map (Xen's `pg_owner`): `foreigndom`'s
/// low 16 bits name the caller itself or, for a privileged caller (a
/// domain builder), another domain; an unknown domain is -ESRCH and an
/// unprivileged caller naming another -EPERM. Page tables always belong to
/// the caller (`pt_owner`, bits 16-31, may only name it).
fn check_foreign(d: &Domain, foreigndom: u64) -> Result<u16, i64> {
    let pg = foreigndom as u16;
    let pt = (foreigndom >> 16) as u16;
    if pt != 0 && pt.wrapping_sub(1) != d.domid {
        return Err(-ESRCH);
    }
    if pg == xen_public::DOMID_SELF || pg == d.domid {
        return Ok(d.domid);
    }
    if crate::schedule::slot_of(pg).is_none() {
        return Err(-ESRCH);
    }
    if !d.privileged {
        return Err(-EPERM);
    }
    Ok(pg)
}

/// 64-bit PV guests run in ring 3: every present entry they install gets
/// the user bit, as Xen's `adjust_guest_l*e` does.
fn adjust(e: u64) -> u64 {
    if PteFlags::of(e).contains(PteFlags::PRESENT) { e | PteFlags::USER.bits() } else { e }
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

/// Drive a batch hypercall (`mmu_update`, `mmuext_op`): entries `T` at
/// RDI, count in RSI, `done` pointer in RDX, foreign domain in R10. Each
/// entry is copied in once, then handled. Stops at the first failing
/// entry; continues every [`BATCH_PER_CALL`] entries; writes `done` back.
fn batch<T: zerocopy::FromBytes + zerocopy::IntoBytes>(
    v: &mut Vcpu,
    d: &mut Domain,
    regs: &mut CpuUserRegs,
    op: u64,
    mut each: impl FnMut(&mut Vcpu, &mut Domain, u16, &T) -> Result<(), i64>,
) -> Ret {
    let size = core::mem::size_of::<T>() as u64;
    let (list, count, pdone, foreigndom) = (regs.rdi, regs.rsi, regs.rdx, regs.r10);
    let pg_owner = match check_foreign(d, foreigndom) {
        Ok(pg) => pg,
        Err(e) => return e,
    };
    if drain_pending(d.domid).is_err() {
        // No entry done yet: the whole call is issued again.
        return continue_later(regs, op) as i64;
    }
    // The guest's tables may change under the batch (NEW_BASEPTR): every
    // access to its memory walks the current ones.
    let (count, mut done) = match batch_start(&v.kernel_mem(), count, pdone) {
        Ok(start) => start,
        Err(e) => return e,
    };
    let mut rc = 0;
    // Tables of another domain may have changed: if it runs on another
    // CPU, that CPU's TLB must forget them before this call returns.
    let flush_foreign = |d: &Domain| {
        if pg_owner != d.domid {
            crate::schedule::flush_remote(pg_owner);
        }
    };
    for i in 0..count {
        if i == BATCH_PER_CALL || (i > 0 && super::preempt_due()) {
            flush_foreign(d);
            if let Err(e) = write_done(&v.kernel_mem(), pdone, done) {
                return e;
            }
            return batch_continue(regs, op, i, count, size);
        }
        let Ok(entry) = v.kernel_mem().copy_from::<T>(list + i * size) else {
            rc = -EFAULT;
            break;
        };
        match each(v, d, pg_owner, &entry) {
            Ok(()) => {}
            Err(e) if e == -super::control::ERESTART => {
                // A long validation stopped: this entry is issued again.
                flush_foreign(d);
                if let Err(e) = write_done(&v.kernel_mem(), pdone, done) {
                    return e;
                }
                return batch_continue(regs, op, i, count, size);
            }
            Err(e) => {
                rc = e;
                break;
            }
        }
        done += 1;
    }
    flush_foreign(d);
    if let Err(e) = write_done(&v.kernel_mem(), pdone, done) {
        return e;
    }
    rc
}

pub(super) fn mmu_update(v: &mut Vcpu, d: &mut Domain, regs: &mut CpuUserRegs) -> Ret {
    const MACHPHYS: u64 = 1;
    const PRESERVE_AD: u64 = 2;
    let mut m = mm();
    let rc = batch(v, d, regs, nr::MMU_UPDATE, |_v, d, pg, &xen_public::MmuUpdate { ptr, val }| {
        let mut ftg = FRAME_TABLE.lock();
        let ft = ftg.as_mut().ok_or(-EINVAL)?;
        // NORMAL, PRESERVE_AD and NO_TRANSLATE (the same as NORMAL for PV)
        // update an entry; MACHPHYS updates the M2P.
        if ptr & 3 == MACHPHYS {
            let mfn = ptr >> 12;
            if ft.info(mfn).map(|f| f.owner) != Some(pg) {
                return Err(-EINVAL);
            }
            crate::mm::machine::set_m2p(Mfn(mfn), val);
            return Ok(());
        }
        let maddr = ptr & !7;
        let idx = ((maddr & 0xfff) >> 3) as usize;
        let w = Who { pg, ..who(d) };
        let r = ft.update_entry(&mut m.mem, maddr >> 12, idx, adjust(val), ptr & 3 == PRESERVE_AD, w).map_err(|e| e.errno());
        ft.take_freed(|mfn| crate::mm::machine::free_frame(Mfn(mfn)));
        r
    });
    crate::arch::x86_64::cpu::flush_tlb();
    rc
}

/// Walk the domain's kernel L4 to the L1 table and index mapping `va`.
pub(super) fn l1_slot(v: &Vcpu, m: &Mm, va: u64) -> Option<(u64, usize)> {
    let mut table = v.guest_table >> 12;
    for level in (2..=4u32).rev() {
        let e = m.mem.read(table, ((va >> (12 + 9 * (level - 1))) & 511) as usize);
        let flags = PteFlags::of(e);
        if !flags.contains(PteFlags::PRESENT) || flags.contains(PteFlags::PSE) {
            return None;
        }
        table = pte_maddr(e) >> 12;
    }
    Some((table, ((va >> 12) & 511) as usize))
}

pub(super) fn update_va_mapping(v: &mut Vcpu, d: &mut Domain, va: u64, pte: u64, flags: u64) -> Ret {
    const UVMF_TLB_FLUSH: u64 = 1;
    const UVMF_INVLPG: u64 = 2;
    if !crate::mm::guest_walk::guest_va_ok(va) {
        return -EINVAL;
    }
    if let Err(e) = drain_pending(d.domid) {
        return e;
    }
    let mut m = mm();
    let Some((l1, idx)) = l1_slot(v, &m, va) else { return -EINVAL };
    let mut ftg = FRAME_TABLE.lock();
    let Some(ft) = ftg.as_mut() else { return -EINVAL };
    // Reached through validated tables, the frame must be a live L1.
    if ft.info(l1).map(|f| (f.ty, f.validated)) != Some((PageType::L1, true)) {
        return -EINVAL;
    }
    let r = ft.update_entry(&mut m.mem, l1, idx, adjust(pte), false, who(d));
    ft.take_freed(|mfn| crate::mm::machine::free_frame(Mfn(mfn)));
    if let Err(e) = r {
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

/// Take the references a vCPU's base pointer holds on the L4 in `mfn`
/// (validating it if needed).
fn acquire_base(d: &Domain, mfn: u64) -> Result<(), i64> {
    let mut m = mm();
    let mut ftg = FRAME_TABLE.lock();
    let ft = ftg.as_mut().ok_or(-EINVAL)?;
    ft.get_page(mfn, d.domid).map_err(|_| -EINVAL)?;
    if let Err(e) = ft.get_page_type(&mut m.mem, mfn, PageType::L4, who(d)) {
        ft.put_page(mfn);
        return Err(super::restart_or_einval(e.errno()));
    }
    Ok(())
}

/// Drop the references of a base pointer (machine address; 0: none). The
/// table must no longer be in any CR3.
fn release_base(maddr: u64) {
    if maddr == 0 {
        return;
    }
    let mut m = mm();
    let mut ftg = FRAME_TABLE.lock();
    let Some(ft) = ftg.as_mut() else { return };
    ft.put_page_type(&mut m.mem, maddr >> 12);
    ft.put_page(maddr >> 12);
    ft.take_freed(|mfn| crate::mm::machine::free_frame(Mfn(mfn)));
}

/// Install a new base pointer of another (not running) vCPU: take the new
/// one's references, drop the old one's (setvcpucontext).
pub(super) fn switch_base(d: &Domain, new_mfn: u64, old_maddr: u64) -> Result<(), i64> {
    if new_mfn != 0 {
        acquire_base(d, new_mfn)?;
    }
    release_base(old_maddr);
    Ok(())
}

/// MMUEXT_NEW_BASEPTR on the running vCPU: as Xen, the new table goes
/// into CR3 before the old one loses its references, so the rest of a
/// batch or multicall never runs on a table that may be retyped or freed.
fn new_baseptr(v: &mut Vcpu, d: &mut Domain, mfn: u64) -> Result<(), i64> {
    if mfn == 0 {
        // Only the user base pointer may be null (Xen: -EINVAL).
        return Err(-EINVAL);
    }
    acquire_base(d, mfn)?;
    let old = core::mem::replace(&mut v.guest_table, mfn << 12);
    v.load_page_tables();
    release_base(old);
    Ok(())
}

/// MMUEXT_NEW_USER_BASEPTR: the user table is not in CR3 while the guest
/// kernel makes hypercalls, so the old one can go at once.
fn new_user_baseptr(v: &mut Vcpu, d: &mut Domain, mfn: u64) -> Result<(), i64> {
    if mfn != 0 {
        acquire_base(d, mfn)?;
    }
    let old = core::mem::replace(&mut v.guest_table_user, mfn << 12);
    v.has_user_table = mfn != 0;
    release_base(old);
    Ok(())
}

/// One MMUEXT command.
fn mmuext_one(v: &mut Vcpu, d: &mut Domain, pg: u16, cmd: u32, arg1: u64, arg2: u64) -> Result<(), i64> {
    use crate::arch::x86_64::cpu;
    let mut m = mm();
    let w = who(d);
    // Pins act on the frames of `pg` (a builder pins a new domain's tables
    // with its ownership rules).
    let pin_who = if pg == d.domid { w } else { Who::own(pg, false) };
    let with_ft = |f: &mut dyn FnMut(&mut crate::mm::page_type::FrameTable<'static>, &mut Mm) -> Result<(), i64>| {
        let mut ftg = FRAME_TABLE.lock();
        let ft = ftg.as_mut().ok_or(-EINVAL)?;
        let mut m = mm();
        f(ft, &mut m)
    };
    match cmd {
        0..=3 => with_ft(&mut |ft, m| ft.pin(&mut m.mem, arg1, cmd as u8 + 1, pin_who).map_err(|e| super::restart_or_einval(e.errno()))),
        4 => with_ft(&mut |ft, m| {
            let r = ft.unpin(&mut m.mem, arg1, pin_who).map_err(|_| -EINVAL);
            ft.take_freed(|mfn| crate::mm::machine::free_frame(Mfn(mfn)));
            r
        }),
        5 => new_baseptr(v, d, arg1),
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
        13 => set_ldt(v, d, if arg2 == 0 { 0 } else { arg1 }, arg2),
        15 => new_user_baseptr(v, d, arg1),
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

pub(super) fn mmuext_op(v: &mut Vcpu, d: &mut Domain, regs: &mut CpuUserRegs) -> Ret {
    batch(v, d, regs, nr::MMUEXT_OP, |v, d, pg, e: &xen_public::MmuextOp| mmuext_one(v, d, pg, e.cmd, e.arg1, e.arg2))
}

/// `multicall(list, nr)`: each 64-byte entry `{op, result, args[6]}` runs
/// in turn and gets its result; `iret` ends the batch (the rest is not run);
/// a sub-call that needs a continuation continues the whole batch.
pub(super) fn multicall(v: &mut Vcpu, d: &mut Domain, regs: &mut CpuUserRegs) -> Ret {
    use xen_public::MulticallEntry;
    const ENTRY_SIZE: u64 = core::mem::size_of::<MulticallEntry>() as u64;
    const RESULT_AT: u64 = core::mem::offset_of!(MulticallEntry, result) as u64;
    const ARGS_AT: u64 = core::mem::offset_of!(MulticallEntry, args) as u64;
    let (list, count) = (regs.rdi, regs.rsi as u32 as u64);
    if v.in_multicall {
        return -EINVAL;
    }
    for i in 0..count {
        // A sub-call may switch the guest's tables (NEW_BASEPTR): each
        // entry is read and written through the current ones.
        let mem = v.kernel_mem();
        // Xen checks for preemption before every entry but the first.
        if i > 0 && (i % BATCH_PER_CALL == 0 || super::preempt_due()) {
            regs.rdi = list + i * ENTRY_SIZE;
            regs.rsi = count - i;
            return continue_later(regs, nr::MULTICALL) as i64;
        }
        let entry = list + i * ENTRY_SIZE;
        let Ok(MulticallEntry { op, args, .. }) = mem.copy_from::<MulticallEntry>(entry) else { return -EFAULT };
        if op == nr::IRET {
            let result = d.iret(v, regs);
            let _ = mem.write(entry + RESULT_AT, &result.to_le_bytes());
            return result as i64;
        }
        let mut sub = CpuUserRegs { rax: op, rdi: args[0], rsi: args[1], rdx: args[2], r10: args[3], r8: args[4], rip: 2, ..*regs };
        v.in_multicall = true;
        let result = if op == nr::MULTICALL { (-EINVAL) as u64 } else { dispatch(v, d, &mut sub) };
        v.in_multicall = false;
        let mem = v.kernel_mem();
        if mem.write(entry + RESULT_AT, &result.to_le_bytes()).is_err() {
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
            if mem.write(entry + ARGS_AT, &out).is_err() {
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

pub(super) fn set_gdt(v: &mut Vcpu, d: &mut Domain, frame_list: u64, entries: u64) -> Ret {
    if entries > FIRST_RESERVED_GDT_ENTRY {
        return -EINVAL;
    }
    if let Err(e) = drain_pending(d.domid) {
        return e;
    }
    let nr_frames = entries.div_ceil(512) as usize;
    let mut raw = [0u8; 14 * 8];
    if v.kernel_mem().read(frame_list, &mut raw[..nr_frames * 8]).is_err() {
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
    let old = v.gdt_ents.div_ceil(512) as usize;
    for &f in &v.gdt_frames[..old] {
        ft.put_page_type(&mut m.mem, f);
        ft.put_page(f);
    }
    v.gdt_frames = frames;
    v.gdt_ents = entries;
    let descs = (0..entries as usize).map(|i| m.mem.read(frames[i / 512], i % 512));
    crate::arch::x86_64::gdt::load_guest_descriptors(descs);
    0
}

pub(super) fn update_descriptor(v: &mut Vcpu, d: &mut Domain, maddr: u64, desc: u64) -> Ret {
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
    if let Some(i) = v.ldt_frames.0[..v.ldt_frames.1].iter().position(|&f| f == mfn) {
        crate::arch::x86_64::gdt::set_ldt_entry(i * 512 + idx, desc);
    }
    let frames = v.gdt_ents.div_ceil(512) as usize;
    if let Some(i) = v.gdt_frames[..frames].iter().position(|&f| f == mfn) {
        let entry = i * 512 + idx;
        if (entry as u64) < v.gdt_ents {
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
pub(super) fn set_ldt(v: &mut Vcpu, d: &mut Domain, va: u64, ents: u64) -> Result<(), i64> {
    use crate::arch::x86_64::gdt;
    if va & 0xfff != 0 || !crate::mm::guest_walk::guest_va_ok(va) || ents > gdt::LDT_ENTRIES as u64 {
        return Err(-EINVAL);
    }
    // Nothing to do if this LDT is installed already (its pages typed: a
    // failed attempt left none, and may be retried).
    if v.ldt == (va, ents) && v.ldt_frames.1 == (ents * 8).div_ceil(4096) as usize {
        return Ok(());
    }
    let mut m = mm();
    let mut ftg = FRAME_TABLE.lock();
    let ft = ftg.as_mut().ok_or(-EINVAL)?;
    let (old, n) = v.ldt_frames;
    for &f in &old[..n] {
        ft.put_page_type(&mut m.mem, f);
        ft.put_page(f);
    }
    v.ldt = (va, ents);
    v.ldt_frames = ([0; 16], 0);
    let pages = (ents * 8).div_ceil(4096) as usize;
    let mut frames = [0u64; 16];
    for (i, f) in frames.iter_mut().enumerate().take(pages) {
        let page_va = va.wrapping_add(i as u64 * 4096);
        let walked = crate::mm::guest_walk::translate(&crate::guest::DirectMap, v.guest_table, page_va, false);
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
                if is_running_here(d) {
                    gdt::load_ldt(core::iter::empty(), 0);
                } else {
                    crate::schedule::forget_loaded(d.domid);
                }
                return Ok(());
            }
        }
    }
    v.ldt_frames = (frames, pages);
    if is_running_here(d) {
        let descs = (0..ents as usize).map(|i| m.mem.read(frames[i / 512], i % 512));
        gdt::load_ldt(descs, ents as usize);
    } else {
        crate::schedule::forget_loaded(d.domid);
    }
    Ok(())
}

/// Whether `d` is the domain running on this CPU (whose descriptor tables
/// are the loaded ones). A domain changed by another (setvcpucontext) is
/// not: its tables load when it is switched to.
fn is_running_here(d: &Domain) -> bool {
    crate::schedule::slot_of(d.domid).is_some_and(|s| s == crate::schedule::current())
}

/// Drop the permanent type of a domain's shared pages, before its memory
/// is relinquished (after [`release_vcpu_refs`] for each of its vCPUs).
pub(super) fn release_domain_refs(d: &mut Domain) {
    let mut m = mm();
    if let Some(ft) = FRAME_TABLE.lock().as_mut() {
        for &f in core::iter::once(&d.shared_info.0).chain(&d.grant.frames[..d.grant.nr_frames as usize]) {
            ft.unshare(&mut m.mem, f, d.domid);
        }
    }
}

/// Drop the references a domain's vCPU holds: its base pointers, GDT and
/// LDT frames (a vCPU reset, or destruction).
pub(super) fn release_vcpu_refs(v: &mut Vcpu) {
    release_base(core::mem::take(&mut v.guest_table));
    release_base(core::mem::take(&mut v.guest_table_user));
    let mut m = mm();
    let mut ftg = FRAME_TABLE.lock();
    let Some(ft) = ftg.as_mut() else { return };
    let (ldt, n) = v.ldt_frames;
    let gdt = v.gdt_ents.div_ceil(512) as usize;
    for &f in ldt[..n].iter().chain(&v.gdt_frames[..gdt]) {
        ft.put_page_type(&mut m.mem, f);
        ft.put_page(f);
    }
    v.ldt_frames = ([0; 16], 0);
    v.gdt_ents = 0;
}

/// Load a vCPU's GDT and LDT descriptors into this CPU's tables (on a
/// switch to it).
pub fn load_segments(v: &Vcpu) {
    use crate::arch::x86_64::gdt;
    let m = mm();
    let gdt_frames = v.gdt_frames;
    gdt::load_guest_descriptors((0..v.gdt_ents as usize).map(|i| m.mem.read(gdt_frames[i / 512], i % 512)));
    let (ldt, n) = v.ldt_frames;
    let ents = if n == 0 { 0 } else { v.ldt.1 as usize };
    gdt::load_ldt((0..ents).map(|i| m.mem.read(ldt[i / 512], i % 512)), ents);
}
