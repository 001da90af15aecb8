//! The MMU hypercalls: `mmu_update`, `mmuext_op`, `update_va_mapping`,
//! `multicall`, `set_gdt`, `update_descriptor` and `MMUEXT_SET_LDT`, their
//! batch and continuation driver, the decoding of `foreigndom` (Xen's
//! `pg_owner`/`pt_owner`) and the vCPU's base pointers, over the frame
//! table. Generic over the caller's memory ([`GuestAccess`]), page-table
//! memory ([`PageMem`]) and the rest of the machine ([`MmuHost`]: the
//! frame-table lock, the allocator, the M2P, TLBs and descriptor tables,
//! other domains, the dispatcher), so decoding, errno, continuations and
//! cross-domain effects are tested on the host.
//!
//! Invariants: every frame reference a vCPU holds (base pointers, GDT and
//! LDT frames) is taken through the frame table, and dropped only after the
//! CPU stopped using the frame (the new base pointer is in CR3 before the
//! old one loses its references); a domain reaches another domain's frames
//! only as the privileged `pg_owner` of a batch, and never its page tables
//! (`pt_owner` is always the caller); a failing entry leaves the frame
//! table as it was; a continued batch re-issues itself with its list
//! advanced past what was done and its count marked
//! [`MMU_UPDATE_PREEMPTED`].
#![forbid(unsafe_code)]

use xen_public::trace::Event;

use super::Domain;
use super::guest_mem::GuestAccess;
use super::host::{CpuTlb, Domains, FrameHost};
use super::vcpu::{CpuUserRegs, Vcpu, is_canonical};
use super::vcpu_ops::continue_later;
use crate::mm::Mfn;
use crate::mm::descriptor::check_descriptor;
use crate::mm::guest_walk::guest_va_ok;
use crate::mm::page_type::{FrameTable, MmError, PageMem, PageType, Who};
use xen_public::errno::{EACCES, EFAULT, EINVAL, ENOSYS, EOPNOTSUPP, EPERM, ERESTART, ESRCH};
use xen_public::hypercall as nr;
use xen_public::pte::{PteFlags, pte_maddr};
use xen_public::{MmuUpdate, MmuextOp, MulticallEntry};

/// A hypercall's result for the guest's RAX (a negated errno on failure).
type Ret = i64;

/// Preemption: entries of a batch handled per call before a continuation.
pub const BATCH_PER_CALL: u64 = 512;
/// Xen's `MMU_UPDATE_PREEMPTED`: the count of a continued batch.
pub const MMU_UPDATE_PREEMPTED: u64 = 0x8000_0000;
/// Entries below the hypervisor's reserved GDT area (14 pages).
pub const FIRST_RESERVED_GDT_ENTRY: u64 = 14 * 512;
/// Most entries an LDT may have.
pub const LDT_ENTRIES: u64 = 8192;

/// What the MMU hypercalls need from the machine beyond the caller's
/// vCPU and domain.
pub trait MmuHost: FrameHost + Domains + CpuTlb {
    /// A guest's virtual memory.
    type Guest: GuestAccess;
    /// Guest memory as `v`'s kernel sees it (through its current base
    /// pointer, which NEW_BASEPTR may change within a batch).
    fn kernel_mem(&self, v: &Vcpu) -> Self::Guest;
    /// Write back and invalidate this CPU's caches.
    fn wbinvd(&mut self);
    /// Load `v`'s current page tables into CR3 (it runs on this CPU).
    fn load_page_tables(&mut self, v: &Vcpu);
    /// Load the guest's GDT entries into this CPU's GDT.
    fn load_gdt(&mut self, descs: impl Iterator<Item = u64>);
    /// Load an LDT of `ents` entries into this CPU.
    fn load_ldt(&mut self, descs: impl Iterator<Item = u64>, ents: usize);
    /// Set one guest entry of this CPU's GDT.
    fn set_gdt_entry(&mut self, index: usize, desc: u64);
    /// Set one entry of this CPU's LDT.
    fn set_ldt_entry(&mut self, index: usize, desc: u64);
    /// Whether `d` runs on this CPU (its descriptor tables are loaded).
    fn running_here(&self, d: &Domain) -> bool;
    /// `domid`'s tables changed: CPUs running it flush before they go on.
    fn flush_remote(&mut self, domid: u16);
    /// `domid`'s descriptor tables changed: reload them when it next runs.
    fn forget_loaded(&mut self, domid: u16);
    /// The machine address `va` maps to through the L4 at `l4_maddr`
    /// (read access, as the guest could reach it).
    fn translate(&self, l4_maddr: u64, va: u64) -> Option<u64>;
    /// Run a multicall's sub-call (the hypercall in `regs.rax`).
    fn dispatch(&mut self, v: &mut Vcpu, d: &mut Domain, regs: &mut CpuUserRegs) -> u64;
    /// `iret` as a multicall's sub-call.
    fn iret(&mut self, v: &mut Vcpu, d: &mut Domain, regs: &mut CpuUserRegs) -> u64;
}

/// The caller acting on its own tables and frames.
pub fn who(d: &Domain) -> Who {
    Who::own(d.domid, d.privileged)
}

/// Xen's errors where a table is validated: -ERESTART (a preempted
/// validation, continued by re-issuing the call) stays, every other
/// failure is -EINVAL.
pub fn restart_or_einval(e: i64) -> i64 {
    if e == -ERESTART { e } else { -EINVAL }
}

/// Run `f` with the frame table locked; no frame table is -EINVAL.
fn locked<H: MmuHost, R>(h: &mut H, f: impl FnOnce(&mut FrameTable<'_>, &mut H) -> Result<R, i64>) -> Result<R, i64> {
    h.with_ft(f).unwrap_or(Err(-EINVAL))
}

/// Finish the devalidations `owner`'s earlier calls left pending (Xen's
/// `old_guest_table`), preemptibly: -ERESTART if some remain. Every MMU
/// and grant path of a domain calls it first, so its own teardown is done
/// before it can ask for more.
pub fn drain_pending<H: FrameHost>(h: &mut H, owner: u16) -> Result<(), i64> {
    let mut pm = h.page_mem();
    h.with_ft(|ft, h| {
        if !ft.has_pending() {
            return Ok(());
        }
        let r = ft.drain_pending(&mut pm, owner).map_err(MmError::errno);
        ft.take_freed(|mfn| h.free_frame(Mfn(mfn)));
        r
    })
    .unwrap_or(Ok(()))
}

/// Whose frames an MMU batch may map (Xen's `pg_owner`): `foreigndom`'s
/// low 16 bits name the caller itself or, for a privileged caller (a
/// domain builder, xentrace), another domain or `DOMID_XEN` (the
/// hypervisor's shared pages); an unknown domain is -ESRCH and an
/// unprivileged caller naming another -EPERM. Page tables always belong to
/// the caller (`pt_owner`, bits 16-31, may only name it, plus one).
pub fn check_foreign(h: &impl MmuHost, d: &Domain, foreigndom: u64) -> Result<u16, i64> {
    let pg = foreigndom as u16;
    let pt = (foreigndom >> 16) as u16;
    if pt != 0 && pt.wrapping_sub(1) != d.domid {
        return Err(-ESRCH);
    }
    if pg == xen_public::DOMID_SELF {
        return Ok(d.domid);
    }
    // Xen's get_pg_owner: a domain naming itself by number is refused
    // ("Cannot specify itself as foreign domain").
    if pg == d.domid {
        return Err(-ESRCH);
    }
    // DOMID_XEN: the hypervisor's pages shared with privileged domains
    // (the trace buffers xentrace maps); XSM's dummy policy lets only a
    // privileged domain name it.
    if pg == xen_public::DOMID_XEN {
        return if d.privileged { Ok(pg) } else { Err(-EPERM) };
    }
    if !h.exists(pg) {
        return Err(-ESRCH);
    }
    if !d.privileged {
        return Err(-EPERM);
    }
    Ok(pg)
}

/// Start or resume a batch: returns (count, done so far). A continued
/// batch's count carries [`MMU_UPDATE_PREEMPTED`] and its `done` so far is
/// read back from the guest.
fn batch_start(mem: &impl GuestAccess, count: u64, pdone: u64) -> Result<(u64, u64), i64> {
    let count = count as u32 as u64;
    if count & MMU_UPDATE_PREEMPTED == 0 {
        return Ok((count, 0));
    }
    let done = if pdone != 0 { u64::from(mem.copy_from::<u32>(pdone).map_err(|_| -EFAULT)?) } else { 0 };
    Ok((count & !MMU_UPDATE_PREEMPTED, done))
}

/// Write the `done` count back (a null pointer: not wanted).
fn write_done(mem: &impl GuestAccess, pdone: u64, done: u64) -> Result<(), i64> {
    if pdone != 0 {
        mem.copy_to(pdone, &(done as u32)).map_err(|_| -EFAULT)?;
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
/// entry; continues every [`BATCH_PER_CALL`] entries (or sooner when
/// preemption is due, after at least one); writes `done` back.
fn batch<H: MmuHost, T: zerocopy::FromBytes + zerocopy::IntoBytes>(
    h: &mut H,
    v: &mut Vcpu,
    d: &mut Domain,
    regs: &mut CpuUserRegs,
    op: u64,
    mut each: impl FnMut(&mut H, &mut Vcpu, &mut Domain, u16, &T) -> Result<(), i64>,
) -> Ret {
    let size = core::mem::size_of::<T>() as u64;
    let (list, count, pdone, foreigndom) = (regs.rdi, regs.rsi, regs.rdx, regs.r10);
    let pg_owner = match check_foreign(h, d, foreigndom) {
        Ok(pg) => pg,
        Err(e) => return e,
    };
    if drain_pending(h, d.domid).is_err() {
        // No entry done yet: the whole call is issued again.
        return continue_later(regs, op) as i64;
    }
    // The guest's tables may change under the batch (NEW_BASEPTR): every
    // access to its memory walks the current ones.
    let (count, mut done) = match batch_start(&h.kernel_mem(v), count, pdone) {
        Ok(start) => start,
        Err(e) => return e,
    };
    let mut rc = 0;
    // Tables of another domain may have changed: if it runs on another
    // CPU, that CPU's TLB must forget them before this call returns.
    let flush_foreign = |h: &mut H, d: &Domain| {
        if pg_owner != d.domid {
            h.flush_remote(pg_owner);
        }
    };
    for i in 0..count {
        if i == BATCH_PER_CALL || (i > 0 && h.preempt_due()) {
            flush_foreign(h, d);
            if let Err(e) = write_done(&h.kernel_mem(v), pdone, done) {
                return e;
            }
            return batch_continue(regs, op, i, count, size);
        }
        let Ok(entry) = h.kernel_mem(v).copy_from::<T>(list + i * size) else {
            rc = -EFAULT;
            break;
        };
        match each(h, v, d, pg_owner, &entry) {
            Ok(()) => {}
            Err(e) if e == -ERESTART => {
                // A long validation stopped: this entry is issued again.
                flush_foreign(h, d);
                if let Err(e) = write_done(&h.kernel_mem(v), pdone, done) {
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
    flush_foreign(h, d);
    if let Err(e) = write_done(&h.kernel_mem(v), pdone, done) {
        return e;
    }
    rc
}

/// `mmu_update(req, count, pdone, foreigndom)`: NORMAL_PT_UPDATE,
/// PT_UPDATE_PRESERVE_AD and NO_TRANSLATE (the same as NORMAL for PV)
/// replace an entry of a table of the caller's (mapping frames of
/// `pg_owner`); MACHPHYS_UPDATE sets the M2P entry of a frame of
/// `pg_owner`.
pub fn mmu_update<H: MmuHost>(h: &mut H, v: &mut Vcpu, d: &mut Domain, regs: &mut CpuUserRegs) -> Ret {
    const MACHPHYS: u64 = 1;
    const PRESERVE_AD: u64 = 2;
    let mut pm = h.page_mem();
    let rc = batch(h, v, d, regs, nr::MMU_UPDATE, |h, _v, d, pg, &MmuUpdate { ptr, val }| {
        locked(h, |ft, h| {
            if ptr & 3 == MACHPHYS {
                let mfn = ptr >> 12;
                if ft.info(mfn).map(|f| f.owner) != Some(pg) {
                    return Err(-EINVAL);
                }
                h.set_m2p(Mfn(mfn), val);
                return Ok(());
            }
            let maddr = ptr & !7;
            let idx = ((maddr & 0xfff) >> 3) as usize;
            let w = Who { pg, ..who(d) };
            let r = ft.update_entry(&mut pm, maddr >> 12, idx, val, ptr & 3 == PRESERVE_AD, w).map_err(MmError::errno);
            ft.take_freed(|mfn| h.free_frame(Mfn(mfn)));
            r
        })
    });
    h.flush_tlb();
    rc
}

/// Walk the L4 at `l4_maddr` to the L1 table and index mapping `va`
/// (`None` where an upper entry is absent or a superpage).
pub fn l1_slot(pm: &impl PageMem, l4_maddr: u64, va: u64) -> Option<(u64, usize)> {
    let mut table = l4_maddr >> 12;
    for level in (2..=4u32).rev() {
        let e = pm.read(table, ((va >> (12 + 9 * (level - 1))) & 511) as usize);
        let flags = PteFlags::of(e);
        if !flags.contains(PteFlags::PRESENT) || flags.contains(PteFlags::PSE) {
            return None;
        }
        table = pte_maddr(e) >> 12;
    }
    Some((table, ((va >> 12) & 511) as usize))
}

/// `update_va_mapping(va, pte, flags)`: replace the L1 entry mapping `va`
/// in the caller's current tables, then flush as `flags` asks.
pub fn update_va_mapping<H: MmuHost>(h: &mut H, v: &mut Vcpu, d: &mut Domain, va: u64, pte: u64, flags: u64) -> Ret {
    use xen_public::xen::{UVMF_INVLPG, UVMF_TLB_FLUSH};
    if !guest_va_ok(va) {
        return -EINVAL;
    }
    if let Err(e) = drain_pending(h, d.domid) {
        return e;
    }
    let mut pm = h.page_mem();
    let Some((l1, idx)) = l1_slot(&pm, v.guest_table, va) else { return -EINVAL };
    let r = locked(h, |ft, h| {
        // Reached through validated tables, the frame must be a live L1.
        if ft.info(l1).map(|f| (f.ty, f.validated)) != Some((PageType::L1, true)) {
            return Err(-EINVAL);
        }
        let r = ft.update_entry(&mut pm, l1, idx, pte, false, who(d));
        ft.take_freed(|mfn| h.free_frame(Mfn(mfn)));
        r.map_err(MmError::errno)
    });
    if let Err(e) = r {
        return e;
    }
    match flags & 3 {
        UVMF_TLB_FLUSH => h.flush_tlb(),
        UVMF_INVLPG => h.invlpg(va),
        _ => {}
    }
    0
}

/// Take the references a vCPU's base pointer holds on the L4 in `mfn`
/// (validating it if needed).
fn acquire_base<H: MmuHost>(h: &mut H, d: &Domain, mfn: u64) -> Result<(), i64> {
    let mut pm = h.page_mem();
    locked(h, |ft, _| {
        ft.get_page(mfn, d.domid).map_err(|_| -EINVAL)?;
        if let Err(e) = ft.get_page_type(&mut pm, mfn, PageType::L4, who(d)) {
            ft.put_page(mfn);
            return Err(restart_or_einval(e.errno()));
        }
        Ok(())
    })
}

/// Drop the references of a base pointer (machine address; 0: none). The
/// table must no longer be in any CR3.
fn release_base<H: MmuHost>(h: &mut H, maddr: u64) {
    if maddr == 0 {
        return;
    }
    let mut pm = h.page_mem();
    h.with_ft(|ft, h| {
        ft.put_page_type(&mut pm, maddr >> 12);
        ft.put_page(maddr >> 12);
        ft.take_freed(|mfn| h.free_frame(Mfn(mfn)));
    });
}

/// Install a new base pointer of another (not running) vCPU: take the new
/// one's references, drop the old one's (setvcpucontext).
pub fn switch_base<H: MmuHost>(h: &mut H, d: &Domain, new_mfn: u64, old_maddr: u64) -> Result<(), i64> {
    if new_mfn != 0 {
        acquire_base(h, d, new_mfn)?;
    }
    release_base(h, old_maddr);
    Ok(())
}

/// MMUEXT_NEW_BASEPTR on the running vCPU, and its `mov %reg, %cr3`
/// (Xen's `new_guest_cr3`, which both use): as Xen, the new table goes
/// into CR3 before the old one loses its references, so the rest of a
/// batch or multicall never runs on a table that may be retyped or freed.
pub fn new_baseptr<H: MmuHost>(h: &mut H, v: &mut Vcpu, d: &Domain, mfn: u64) -> Result<(), i64> {
    if mfn == 0 {
        // Only the user base pointer may be null (Xen: -EINVAL).
        return Err(-EINVAL);
    }
    acquire_base(h, d, mfn)?;
    let old = core::mem::replace(&mut v.guest_table, mfn << 12);
    h.load_page_tables(v);
    release_base(h, old);
    Ok(())
}

/// MMUEXT_NEW_USER_BASEPTR: the user table is not in CR3 while the guest
/// kernel makes hypercalls, so the old one can go at once.
fn new_user_baseptr<H: MmuHost>(h: &mut H, v: &mut Vcpu, d: &Domain, mfn: u64) -> Result<(), i64> {
    if mfn != 0 {
        acquire_base(h, d, mfn)?;
    }
    let old = core::mem::replace(&mut v.guest_table_user, mfn << 12);
    v.has_user_table = mfn != 0;
    release_base(h, old);
    Ok(())
}

/// MMUEXT_CLEAR_PAGE (`src`: none) and MMUEXT_COPY_PAGE: the destination
/// must be one the caller may write, the source one it owns.
fn clear_or_copy<H: MmuHost>(h: &mut H, w: Who, dst: u64, src: Option<u64>) -> Result<(), i64> {
    let mut pm = h.page_mem();
    locked(h, |ft, _| {
        if let Some(src) = src
            && ft.info(src).map(|f| f.owner) != Some(w.dom)
        {
            return Err(-EINVAL);
        }
        ft.get_page(dst, w.dom).map_err(|_| -EINVAL)?;
        if ft.get_page_type(&mut pm, dst, PageType::Writable, w).is_err() {
            ft.put_page(dst);
            return Err(-EINVAL);
        }
        Ok(())
    })?;
    for i in 0..512 {
        let v = src.map_or(0, |src| pm.read(src, i));
        pm.write(dst, i, v);
    }
    locked(h, |ft, _| {
        ft.put_page_type(&mut pm, dst);
        ft.put_page(dst);
        Ok(())
    })
}

/// One MMUEXT command of the caller `d`, whose batch names `pg`.
fn mmuext_one<H: MmuHost>(h: &mut H, v: &mut Vcpu, d: &mut Domain, pg: u16, cmd: u32, arg1: u64, arg2: u64) -> Result<(), i64> {
    let w = who(d);
    // Pins act on the frames of `pg` (a builder pins a new domain's tables
    // with its ownership rules).
    let pin_who = if pg == d.domid { w } else { Who::own(pg, false) };
    // Every other command acts on the caller's own vCPU or TLB, or (clear
    // and copy) on pg_owner's pages: naming another domain for one of the
    // former is -EPERM, as Xen's `currd != pg_owner` checks.
    let foreign = pg != d.domid;
    match cmd {
        5..=13 | 15 | 18 if foreign => Err(-EPERM),
        0..=3 => {
            let mut pm = h.page_mem();
            locked(h, |ft, _| ft.pin(&mut pm, arg1, cmd as u8 + 1, pin_who).map_err(|e| restart_or_einval(e.errno())))?;
            h.trace(&Event::PtPin { domid: u32::from(pg), mfn: arg1, level: cmd + 1 });
            Ok(())
        }
        4 => {
            let mut pm = h.page_mem();
            let level = locked(h, |ft, h| {
                let level = ft.info(arg1).and_then(|f| f.ty.level()).map_or(0, u32::from);
                let r = ft.unpin(&mut pm, arg1, pin_who).map_err(|_| -EINVAL);
                ft.take_freed(|mfn| h.free_frame(Mfn(mfn)));
                r.map(|()| level)
            })?;
            h.trace(&Event::PtUnpin { domid: u32::from(pg), mfn: arg1, level });
            Ok(())
        }
        5 => new_baseptr(h, v, d, arg1),
        6 | 8 | 10 => {
            h.flush_tlb();
            Ok(())
        }
        7 | 9 | 11 => {
            if is_canonical(arg1) {
                h.invlpg(arg1);
            }
            Ok(())
        }
        12 if d.privileged => {
            h.wbinvd();
            Ok(())
        }
        12 => Err(-EACCES),
        // MMUEXT_FLUSH_CACHE_GLOBAL: the same permission, -EINVAL without it.
        18 if d.privileged => {
            h.wbinvd();
            Ok(())
        }
        18 => Err(-EINVAL),
        // MMUEXT_MARK_SUPER / UNMARK_SUPER: gone from Xen, which says so.
        19 | 20 => Err(-EOPNOTSUPP),
        13 => set_ldt(h, v, d, if arg2 == 0 { 0 } else { arg1 }, arg2),
        15 => new_user_baseptr(h, v, d, arg1),
        16 => clear_or_copy(h, pin_who, arg1, None),
        17 => clear_or_copy(h, pin_who, arg1, Some(arg2)),
        _ => Err(-ENOSYS),
    }
}

/// `mmuext_op(ops, count, pdone, foreigndom)`: a batch of MMUEXT commands.
pub fn mmuext_op<H: MmuHost>(h: &mut H, v: &mut Vcpu, d: &mut Domain, regs: &mut CpuUserRegs) -> Ret {
    batch(h, v, d, regs, nr::MMUEXT_OP, |h, v, d, pg, e: &MmuextOp| mmuext_one(h, v, d, pg, e.cmd, e.arg1, e.arg2))
}

/// `multicall(list, nr)`: each 64-byte entry `{op, result, args[6]}` runs
/// in turn and gets its result; `iret` ends the batch (the rest is not run);
/// a multicall inside one is -EINVAL; a sub-call that needs a continuation
/// stores its new arguments in its entry and continues the whole batch
/// from there.
pub fn multicall<H: MmuHost>(h: &mut H, v: &mut Vcpu, d: &mut Domain, regs: &mut CpuUserRegs) -> Ret {
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
        let mem = h.kernel_mem(v);
        // Xen checks for preemption before every entry but the first.
        if i > 0 && (i % BATCH_PER_CALL == 0 || h.preempt_due()) {
            regs.rdi = list + i * ENTRY_SIZE;
            regs.rsi = count - i;
            return continue_later(regs, nr::MULTICALL) as i64;
        }
        let entry = list + i * ENTRY_SIZE;
        let Ok(MulticallEntry { op, args, .. }) = mem.copy_from::<MulticallEntry>(entry) else { return -EFAULT };
        if op == nr::IRET {
            let result = h.iret(v, d, regs);
            let _ = mem.write(entry + RESULT_AT, &result.to_le_bytes());
            return result as i64;
        }
        let mut sub = CpuUserRegs { rax: op, rdi: args[0], rsi: args[1], rdx: args[2], r10: args[3], r8: args[4], rip: 2, ..*regs };
        v.in_multicall = true;
        let result = if op == nr::MULTICALL { (-EINVAL) as u64 } else { h.dispatch(v, d, &mut sub) };
        v.in_multicall = false;
        let mem = h.kernel_mem(v);
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

/// Drop a type and a general reference on each frame.
fn put_typed(ft: &mut FrameTable<'_>, pm: &mut impl PageMem, frames: &[u64]) {
    for &f in frames {
        ft.put_page_type(pm, f);
        ft.put_page(f);
    }
}

/// `set_gdt(frame_list, entries)`: the GDT's frames become descriptor
/// pages (all or none), the old ones are released, and the entries are
/// loaded into this CPU's GDT.
pub fn set_gdt<H: MmuHost>(h: &mut H, v: &mut Vcpu, d: &mut Domain, frame_list: u64, entries: u64) -> Ret {
    if entries > FIRST_RESERVED_GDT_ENTRY {
        return -EINVAL;
    }
    if let Err(e) = drain_pending(h, d.domid) {
        return e;
    }
    let nr_frames = entries.div_ceil(512) as usize;
    let mut raw = [0u8; 14 * 8];
    if h.kernel_mem(v).read(frame_list, &mut raw[..nr_frames * 8]).is_err() {
        return -EFAULT;
    }
    let mut frames = [0u64; 14];
    for (f, c) in frames.iter_mut().zip(raw.chunks_exact(8)).take(nr_frames) {
        *f = u64::from_le_bytes(c.try_into().unwrap_or_default());
    }
    let mut pm = h.page_mem();
    let w = who(d);
    h.with_ft(|ft, h| {
        for i in 0..nr_frames {
            let ok = ft.get_page(frames[i], w.dom).is_ok();
            if !ok || ft.get_page_type(&mut pm, frames[i], PageType::SegDesc, w).is_err() {
                if ok {
                    ft.put_page(frames[i]);
                }
                put_typed(ft, &mut pm, &frames[..i]);
                return -EINVAL;
            }
        }
        let old = v.gdt_ents.div_ceil(512) as usize;
        put_typed(ft, &mut pm, &v.gdt_frames[..old]);
        v.gdt_frames = frames;
        v.gdt_ents = entries;
        h.load_gdt((0..entries as usize).map(|i| pm.read(frames[i / 512], i % 512)));
        0
    })
    .unwrap_or(-EINVAL)
}

/// `update_descriptor(maddr, desc)`: write one checked descriptor into a
/// frame of the caller's that is a descriptor page or may be written, and
/// into this CPU's GDT or LDT if the frame is one of the vCPU's.
pub fn update_descriptor<H: MmuHost>(h: &mut H, v: &mut Vcpu, d: &mut Domain, maddr: u64, desc: u64) -> Ret {
    let Some(desc) = check_descriptor(desc).filter(|_| maddr.is_multiple_of(8)) else {
        return -EINVAL;
    };
    let mfn = maddr >> 12;
    let idx = ((maddr & 0xfff) / 8) as usize;
    let mut pm = h.page_mem();
    h.with_ft(|ft, h| {
        if ft.get_page(mfn, d.domid).is_err() {
            return -EINVAL;
        }
        let is_desc = ft.info(mfn).is_some_and(|f| f.ty == PageType::SegDesc && f.type_count > 0);
        let ty = if is_desc { PageType::SegDesc } else { PageType::Writable };
        if ft.get_page_type(&mut pm, mfn, ty, who(d)).is_err() {
            ft.put_page(mfn);
            return -EINVAL;
        }
        pm.write(mfn, idx, desc);
        put_typed(ft, &mut pm, &[mfn]);
        if let Some(i) = v.ldt_frames.0[..v.ldt_frames.1].iter().position(|&f| f == mfn) {
            h.set_ldt_entry(i * 512 + idx, desc);
        }
        let frames = v.gdt_ents.div_ceil(512) as usize;
        if let Some(i) = v.gdt_frames[..frames].iter().position(|&f| f == mfn) {
            let entry = i * 512 + idx;
            if (entry as u64) < v.gdt_ents {
                h.set_gdt_entry(entry, desc);
            }
        }
        0
    })
    .unwrap_or(-EINVAL)
}

/// `MMUEXT_SET_LDT`: a page-aligned guest address and at most 8192 entries.
/// The LDT's pages become descriptor pages and are installed at once. If
/// one cannot (still writable, not the domain's), the call still succeeds,
/// as on Xen, whose lazy LDT mapping only fails when the guest uses it:
/// here the LDT is then left empty, so such a selector faults.
pub fn set_ldt<H: MmuHost>(h: &mut H, v: &mut Vcpu, d: &Domain, va: u64, ents: u64) -> Result<(), i64> {
    if va & 0xfff != 0 || !guest_va_ok(va) || ents > LDT_ENTRIES {
        return Err(-EINVAL);
    }
    // Nothing to do if this LDT is installed already (its pages typed: a
    // failed attempt left none, and may be retried).
    if v.ldt == (va, ents) && v.ldt_frames.1 == (ents * 8).div_ceil(4096) as usize {
        return Ok(());
    }
    let mut pm = h.page_mem();
    let w = who(d);
    locked(h, |ft, h| {
        let (old, n) = v.ldt_frames;
        put_typed(ft, &mut pm, &old[..n]);
        v.ldt = (va, ents);
        v.ldt_frames = ([0; 16], 0);
        let pages = (ents * 8).div_ceil(4096) as usize;
        let mut frames = [0u64; 16];
        for (i, f) in frames.iter_mut().enumerate().take(pages) {
            let page_va = va.wrapping_add(i as u64 * 4096);
            let typed = h.translate(v.guest_table, page_va).map(|maddr| maddr >> 12).filter(|&mfn| {
                ft.get_page(mfn, w.dom).is_ok()
                    && (ft.get_page_type(&mut pm, mfn, PageType::SegDesc, w).is_ok() || {
                        ft.put_page(mfn);
                        false
                    })
            });
            match typed {
                Some(mfn) => *f = mfn,
                None => {
                    put_typed(ft, &mut pm, &frames[..i]);
                    if h.running_here(d) {
                        h.load_ldt(core::iter::empty(), 0);
                    } else {
                        h.forget_loaded(d.domid);
                    }
                    return Ok(());
                }
            }
        }
        v.ldt_frames = (frames, pages);
        if h.running_here(d) {
            h.load_ldt((0..ents as usize).map(|i| pm.read(frames[i / 512], i % 512)), ents as usize);
        } else {
            h.forget_loaded(d.domid);
        }
        Ok(())
    })
}

/// Drop the permanent type of a domain's shared pages, before its memory
/// is relinquished (after [`release_vcpu_refs`] for each of its vCPUs).
pub fn release_domain_refs<H: MmuHost>(h: &mut H, d: &Domain) {
    let mut pm = h.page_mem();
    h.with_ft(|ft, _| {
        for &f in core::iter::once(&d.shared_info.0).chain(d.grant.frames()) {
            ft.unshare(&mut pm, f, d.domid);
        }
    });
}

/// Drop the references a domain's vCPU holds: its base pointers, GDT and
/// LDT frames (a vCPU reset, or destruction).
pub fn release_vcpu_refs<H: MmuHost>(h: &mut H, v: &mut Vcpu) {
    release_base(h, core::mem::take(&mut v.guest_table));
    release_base(h, core::mem::take(&mut v.guest_table_user));
    let mut pm = h.page_mem();
    h.with_ft(|ft, _| {
        let (ldt, n) = v.ldt_frames;
        let gdt = v.gdt_ents.div_ceil(512) as usize;
        put_typed(ft, &mut pm, &ldt[..n]);
        put_typed(ft, &mut pm, &v.gdt_frames[..gdt]);
        v.ldt_frames = ([0; 16], 0);
        v.gdt_ents = 0;
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::guest_mem::tests::FakeGuest;
    use crate::mm::Mfn;
    use crate::mm::page_type::PageInfo;
    use std::boxed::Box;
    use std::collections::BTreeMap;
    use std::vec;
    use std::vec::Vec;
    use zerocopy::IntoBytes;

    /// The caller, another existing domain and an id no domain has.
    const ME: u16 = 1;
    const OTHER: u16 = 2;
    const UNKNOWN: u16 = 9;
    /// Frames 0-47 are ME's, 48-63 OTHER's.
    const NR_FRAMES: u64 = 64;
    const OTHERS: core::ops::Range<u64> = 48..64;
    /// An OTHER frame used as the hostile argument.
    const THEIRS: u64 = 50;

    /// Guest addresses: the request list (16 pages), the `done` counter, a
    /// hole, and a list whose next page is a hole.
    const LIST: u64 = 0x40_0000;
    const DONE: u64 = 0x50_0000;
    const UNMAPPED: u64 = 0x60_0000;
    const EDGE: u64 = 0x70_0000;
    const NON_CANONICAL: u64 = 0x0000_8000_0000_0000;
    const HYPERVISOR_VA: u64 = 0xffff_8000_0000_0000;

    const P: u64 = PteFlags::PRESENT.bits();
    const RW: u64 = PteFlags::RW.bits();
    const USER: u64 = PteFlags::USER.bits();
    const PCD: u64 = PteFlags::PCD.bits();
    const MACHPHYS: u64 = 1;
    const PREEMPTED: u64 = MMU_UPDATE_PREEMPTED;
    /// `foreigndom` naming the caller.
    const SELF: u64 = xen_public::DOMID_SELF as u64;
    /// A 64-bit ring-0 code segment (the check raises its DPL to 3), and a
    /// TSS, which a guest may never install.
    const CODE_DPL0: u64 = 0x00af_9a00_0000_ffff;
    const CODE_DPL3: u64 = 0x00af_fa00_0000_ffff;
    const TSS: u64 = 0x0000_8900_0000_0067;
    /// A sub-call the fake dispatcher continues (RDI advanced by one).
    const CONTINUING: u64 = nr::CONSOLE_IO;
    /// What the fake `iret` returns.
    const IRET_RAX: u64 = 0x5151;

    fn pte(mfn: u64, flags: u64) -> u64 {
        (mfn << 12) | flags
    }

    /// Page-table memory shared by the host and the operations' handles.
    type Pm = crate::mm::page_type::tests::TestMem;

    /// What the operations did to the machine, in order.
    #[derive(Clone, Debug, PartialEq, Eq)]
    enum Ev {
        FlushTlb,
        Invlpg(u64),
        Wbinvd,
        /// CR3 loaded with this table while this many L4s were typed.
        Cr3(u64, usize),
        Gdt(Vec<u64>),
        Ldt(Vec<u64>),
        GdtEntry(usize, u64),
        LdtEntry(usize, u64),
        FlushRemote(u16),
        Forget(u16),
        Iret,
        Dispatch(u64, u64),
        Trace(Event),
    }

    struct Host<'g> {
        guest: &'g FakeGuest,
        ft: Option<FrameTable<'static>>,
        in_lock: bool,
        pm: Pm,
        preempt: bool,
        here: bool,
        m2p: BTreeMap<u64, u64>,
        freed: Vec<u64>,
        log: Vec<Ev>,
        /// Guest page -> machine address, for the LDT's walk.
        walk: BTreeMap<u64, u64>,
    }

    impl<'g> Host<'g> {
        fn new(guest: &'g FakeGuest) -> Self {
            let frames: &'static mut [PageInfo] = Box::leak(vec![PageInfo::FREE; NR_FRAMES as usize].into_boxed_slice());
            let mut ft = FrameTable::new(frames);
            for mfn in 0..NR_FRAMES {
                ft.assign(mfn, if OTHERS.contains(&mfn) { OTHER } else { ME }).unwrap();
            }
            Host {
                guest,
                ft: Some(ft),
                in_lock: false,
                pm: Pm::default(),
                preempt: false,
                here: true,
                m2p: BTreeMap::new(),
                freed: Vec::new(),
                log: Vec::new(),
                walk: BTreeMap::new(),
            }
        }

        fn info(&self, mfn: u64) -> PageInfo {
            *self.ft.as_ref().unwrap().info(mfn).unwrap()
        }

        fn entry(&self, mfn: u64, idx: usize) -> u64 {
            self.pm.read(mfn, idx)
        }

        /// Everything another domain has: its frames' state and contents,
        /// and their M2P entries.
        fn others_state(&self) -> (Vec<PageInfo>, Vec<Vec<u64>>, Vec<Option<u64>>) {
            let infos = OTHERS.map(|m| self.info(m)).collect();
            let contents = OTHERS.map(|m| (0..512).map(|i| self.entry(m, i)).collect()).collect();
            let m2p = OTHERS.map(|m| self.m2p.get(&m).copied()).collect();
            (infos, contents, m2p)
        }

        fn l4s_typed(&self) -> usize {
            let ft = self.ft.as_ref().unwrap();
            ft.frames().iter().filter(|f| f.ty == PageType::L4 && f.type_count > 0).count()
        }
    }

    impl<'g> MmuHost for Host<'g> {
        type Guest = &'g FakeGuest;
        fn kernel_mem(&self, _v: &Vcpu) -> &'g FakeGuest {
            self.guest
        }
        fn wbinvd(&mut self) {
            self.log.push(Ev::Wbinvd);
        }
        fn load_page_tables(&mut self, v: &Vcpu) {
            let live = self.l4s_typed();
            self.log.push(Ev::Cr3(v.guest_table, live));
        }
        fn load_gdt(&mut self, descs: impl Iterator<Item = u64>) {
            self.log.push(Ev::Gdt(descs.collect()));
        }
        fn load_ldt(&mut self, descs: impl Iterator<Item = u64>, ents: usize) {
            let descs: Vec<u64> = descs.collect();
            assert_eq!(descs.len(), ents);
            self.log.push(Ev::Ldt(descs));
        }
        fn set_gdt_entry(&mut self, index: usize, desc: u64) {
            self.log.push(Ev::GdtEntry(index, desc));
        }
        fn set_ldt_entry(&mut self, index: usize, desc: u64) {
            self.log.push(Ev::LdtEntry(index, desc));
        }
        fn running_here(&self, d: &Domain) -> bool {
            self.here && d.domid == ME
        }
        fn flush_remote(&mut self, domid: u16) {
            self.log.push(Ev::FlushRemote(domid));
        }
        fn forget_loaded(&mut self, domid: u16) {
            self.log.push(Ev::Forget(domid));
        }
        fn translate(&self, _l4_maddr: u64, va: u64) -> Option<u64> {
            self.walk.get(&(va & !0xfff)).copied()
        }
        fn dispatch(&mut self, v: &mut Vcpu, d: &mut Domain, regs: &mut CpuUserRegs) -> u64 {
            self.log.push(Ev::Dispatch(regs.rax, regs.rdi));
            match regs.rax {
                nr::MMU_UPDATE => mmu_update(self, v, d, regs) as u64,
                nr::MMUEXT_OP => mmuext_op(self, v, d, regs) as u64,
                nr::MULTICALL => multicall(self, v, d, regs) as u64,
                CONTINUING => {
                    regs.rdi += 1;
                    continue_later(regs, regs.rax)
                }
                op => op + 1000,
            }
        }
        fn iret(&mut self, _v: &mut Vcpu, _d: &mut Domain, _regs: &mut CpuUserRegs) -> u64 {
            self.log.push(Ev::Iret);
            IRET_RAX
        }
    }

    impl FrameHost for Host<'_> {
        type Pm = Pm;
        fn page_mem(&self) -> Pm {
            self.pm.clone()
        }
        fn with_ft<R>(&mut self, f: impl FnOnce(&mut FrameTable<'_>, &mut Self) -> R) -> Option<R> {
            // On the machine a second lock would deadlock.
            assert!(!self.in_lock, "frame table locked twice");
            let mut ft = self.ft.take()?;
            self.in_lock = true;
            let r = f(&mut ft, self);
            self.in_lock = false;
            self.ft = Some(ft);
            Some(r)
        }
        fn alloc_frame(&mut self) -> Option<Mfn> {
            None
        }
        fn free_frame(&mut self, mfn: Mfn) {
            self.freed.push(mfn.0);
        }
        fn set_m2p(&mut self, mfn: Mfn, pfn: u64) {
            self.m2p.insert(mfn.0, pfn);
        }
        fn trace(&mut self, ev: &Event) {
            self.log.push(Ev::Trace(*ev));
        }
    }

    impl Domains for Host<'_> {
        fn exists(&self, domid: u16) -> bool {
            domid == ME || domid == OTHER
        }
        fn next_domid_from(&self, from: u16) -> Option<u16> {
            [ME, OTHER].into_iter().filter(|&d| d >= from).min()
        }
    }

    impl CpuTlb for Host<'_> {
        fn flush_tlb(&mut self) {
            self.log.push(Ev::FlushTlb);
        }
        fn invlpg(&mut self, va: u64) {
            self.log.push(Ev::Invlpg(va));
        }
        fn preempt_due(&mut self) -> bool {
            self.preempt
        }
    }

    /// A guest with the list, `done` and edge pages mapped.
    fn guest() -> FakeGuest {
        let g = FakeGuest::default();
        for page in 0..16 {
            g.map(LIST + page * 4096);
        }
        g.map(DONE);
        g.map(EDGE);
        g
    }

    fn domain(privileged: bool) -> Domain {
        Domain::empty(ME, privileged, Mfn(0))
    }

    fn regs(op: u64, list: u64, count: u64, pdone: u64, foreigndom: u64) -> CpuUserRegs {
        CpuUserRegs { rax: op, rdi: list, rsi: count, rdx: pdone, r10: foreigndom, rip: 0x1002, ..Default::default() }
    }

    fn done(g: &FakeGuest) -> u32 {
        g.copy_from::<u32>(DONE).unwrap()
    }

    fn machphys(mfn: u64, pfn: u64) -> MmuUpdate {
        MmuUpdate { ptr: (mfn << 12) | MACHPHYS, val: pfn }
    }

    fn normal(table: u64, idx: u64, val: u64) -> MmuUpdate {
        MmuUpdate { ptr: (table << 12) | (idx * 8), val }
    }

    fn op(cmd: u32, arg1: u64, arg2: u64) -> MmuextOp {
        MmuextOp { cmd, arg1, arg2, ..Default::default() }
    }

    /// Run `mmu_update` over `reqs` at LIST; the result and the registers.
    fn run_mmu(h: &mut Host<'_>, v: &mut Vcpu, d: &mut Domain, reqs: &[MmuUpdate], foreigndom: u64) -> (Ret, CpuUserRegs) {
        h.guest.write(LIST, reqs.as_bytes()).unwrap();
        let mut r = regs(nr::MMU_UPDATE, LIST, reqs.len() as u64, DONE, foreigndom);
        (mmu_update(h, v, d, &mut r), r)
    }

    /// Run `mmuext_op` over `ops` at LIST.
    fn run_ext(h: &mut Host<'_>, v: &mut Vcpu, d: &mut Domain, ops: &[MmuextOp], foreigndom: u64) -> Ret {
        h.guest.write(LIST, ops.as_bytes()).unwrap();
        let mut r = regs(nr::MMUEXT_OP, LIST, ops.len() as u64, DONE, foreigndom);
        mmuext_op(h, v, d, &mut r)
    }

    const PIN_L1: u32 = 0;
    const PIN_L4: u32 = 3;
    const UNPIN: u32 = 4;
    const NEW_BASEPTR: u32 = 5;
    const TLB_FLUSH_LOCAL: u32 = 6;
    const INVLPG_LOCAL: u32 = 7;
    const FLUSH_CACHE: u32 = 12;
    const SET_LDT: u32 = 13;
    const NEW_USER_BASEPTR: u32 = 15;
    const CLEAR_PAGE: u32 = 16;
    const COPY_PAGE: u32 = 17;

    /// ME's L4 11 -> L3 12 -> L2 13 -> L1 14, mapping 0x40_0000 at L1
    /// slot 0, installed as the kernel base pointer.
    fn with_tables(h: &mut Host<'_>, v: &mut Vcpu, d: &mut Domain) {
        let t = P | RW | USER;
        h.pm.write(11, 0, pte(12, t));
        h.pm.write(12, 0, pte(13, t));
        h.pm.write(13, 2, pte(14, t));
        assert_eq!(run_ext(h, v, d, &[op(NEW_BASEPTR, 11, 0)], SELF), 0);
    }

    // ---- mmu_update ----

    #[test]
    fn mmu_update_normal_entry_of_a_pinned_l1_is_validated_and_gets_the_user_bit() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(PIN_L1, 10, 0)], SELF), 0);
        let (rc, r) = run_mmu(&mut h, &mut v, &mut d, &[normal(10, 3, pte(20, P | RW))], SELF);
        assert_eq!(rc, 0);
        assert_eq!(h.entry(10, 3), pte(20, P | RW | USER));
        let f = h.info(20);
        assert_eq!((f.ty, f.type_count, f.count), (PageType::Writable, 1, 2));
        assert_eq!(done(&g), 1);
        assert_eq!(r.rip, 0x1002, "no continuation");
        assert_eq!(h.log.last(), Some(&Ev::FlushTlb));
    }

    #[test]
    fn mmu_update_writable_mapping_of_a_page_table_is_ebusy_as_xens_could_not_pin() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(PIN_L1, 10, 0), op(PIN_L1, 11, 0)], SELF), 0);
        let before = h.info(11);
        let (rc, _) = run_mmu(&mut h, &mut v, &mut d, &[normal(10, 0, pte(11, P | RW))], SELF);
        assert_eq!(rc, -xen_public::errno::EBUSY);
        assert_eq!(h.entry(10, 0), 0);
        assert_eq!(h.info(11), before);
        assert_eq!(done(&g), 0);
        // Read-only, the same mapping is allowed.
        assert_eq!(run_mmu(&mut h, &mut v, &mut d, &[normal(10, 0, pte(11, P))], SELF).0, 0);
    }

    #[test]
    fn mmu_update_disallowed_flag_bits_are_einval() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(PIN_L1, 10, 0)], SELF), 0);
        let (rc, _) = run_mmu(&mut h, &mut v, &mut d, &[normal(10, 0, pte(20, P | RW | PCD))], SELF);
        assert_eq!(rc, -EINVAL);
        assert_eq!(h.entry(10, 0), 0);
        assert_eq!(h.info(20).count, 1);
    }

    #[test]
    fn mmu_update_stops_at_the_first_failing_entry_and_writes_done() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        let (rc, _) = run_mmu(&mut h, &mut v, &mut d, &[machphys(5, 50), machphys(THEIRS, 1), machphys(6, 60)], SELF);
        assert_eq!(rc, -EINVAL);
        assert_eq!(done(&g), 1);
        assert_eq!(h.m2p, BTreeMap::from([(5, 50)]), "the entry after the failing one is not run");
    }

    #[test]
    fn mmu_update_machphys_only_for_frames_of_pg_owner() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        assert_eq!(run_mmu(&mut h, &mut v, &mut d, &[machphys(5, 0x77)], SELF).0, 0);
        assert_eq!(h.m2p.get(&5), Some(&0x77));
        assert_eq!(run_mmu(&mut h, &mut v, &mut d, &[machphys(THEIRS, 0x77)], SELF).0, -EINVAL);
        assert_eq!(run_mmu(&mut h, &mut v, &mut d, &[machphys(1 << 40, 0x77)], SELF).0, -EINVAL);
        assert_eq!(h.m2p.len(), 1);
    }

    #[test]
    fn mmu_update_machphys_for_a_privileged_foreign_pg_owner_takes_its_frames_not_the_callers() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(true));
        assert_eq!(run_mmu(&mut h, &mut v, &mut d, &[machphys(THEIRS, 7)], u64::from(OTHER)).0, 0);
        assert_eq!(h.m2p.get(&THEIRS), Some(&7));
        assert_eq!(run_mmu(&mut h, &mut v, &mut d, &[machphys(5, 7)], u64::from(OTHER)).0, -EINVAL);
        assert_eq!(h.m2p.get(&5), None);
        assert!(h.log.contains(&Ev::FlushRemote(OTHER)), "CPUs running the foreign domain flush");
    }

    #[test]
    fn mmu_update_pt_owner_other_than_the_caller_is_esrch() {
        let g = guest();
        for privileged in [false, true] {
            let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(privileged));
            g.copy_to(DONE, &0xdeadu32).unwrap();
            let pt_other = (u64::from(OTHER + 1) << 16) | SELF;
            assert_eq!(run_mmu(&mut h, &mut v, &mut d, &[machphys(5, 1)], pt_other).0, -ESRCH);
            assert!(h.m2p.is_empty());
            assert_eq!(done(&g), 0xdead, "nothing written before the decoding");
            // pt_owner naming the caller (domid + 1) is allowed.
            let pt_me = (u64::from(ME + 1) << 16) | SELF;
            assert_eq!(run_mmu(&mut h, &mut v, &mut d, &[machphys(5, 1)], pt_me).0, 0);
        }
    }

    #[test]
    fn mmu_update_unknown_pg_owner_is_esrch_even_unprivileged() {
        let g = guest();
        for privileged in [false, true] {
            let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(privileged));
            // 0 is dom0, not the caller (DOMID_SELF is).
            for fd in [u64::from(UNKNOWN), 0] {
                assert_eq!(run_mmu(&mut h, &mut v, &mut d, &[machphys(5, 1)], fd).0, -ESRCH);
            }
            assert!(h.m2p.is_empty());
        }
    }

    /// Xen's get_pg_owner with XSM's dummy policy: DOMID_XEN (the pages
    /// the hypervisor shares, such as trace buffers) is a pg_owner only for
    /// a privileged caller; a domU naming it is -EPERM and nothing is done.
    /// The trace points of pin and unpin (xen-core's PT_PIN/PT_UNPIN): the
    /// domain, the frame and the table's level, only when the operation
    /// succeeded.
    #[test]
    fn pin_and_unpin_are_traced_with_their_level() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        let traced = |h: &Host<'_>| h.log.iter().filter_map(|e| if let Ev::Trace(t) = e { Some(*t) } else { None }).collect::<Vec<_>>();
        assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(PIN_L1, 10, 0)], SELF), 0);
        assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(PIN_L1, 10, 0)], SELF), -EINVAL, "pins do not nest");
        assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(UNPIN, 10, 0)], SELF), 0);
        let me = u32::from(d.domid);
        assert_eq!(traced(&h), [Event::PtPin { domid: me, mfn: 10, level: 1 }, Event::PtUnpin { domid: me, mfn: 10, level: 1 }]);
    }

    #[test]
    fn domid_xen_as_pg_owner_is_for_the_privileged_domain_only() {
        let g = guest();
        let xen = u64::from(xen_public::DOMID_XEN);
        let h = Host::new(&g);
        assert_eq!(check_foreign(&h, &domain(true), xen), Ok(xen_public::DOMID_XEN));
        assert_eq!(check_foreign(&h, &domain(false), xen), Err(-EPERM));
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        assert_eq!(run_mmu(&mut h, &mut v, &mut d, &[machphys(5, 1)], xen).0, -EPERM);
        assert!(h.m2p.is_empty());
    }

    #[test]
    fn mmu_update_unprivileged_naming_another_domain_is_eperm() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        g.copy_to(DONE, &0xdeadu32).unwrap();
        assert_eq!(run_mmu(&mut h, &mut v, &mut d, &[machphys(THEIRS, 1)], u64::from(OTHER)).0, -EPERM);
        assert!(h.m2p.is_empty());
        assert_eq!(done(&g), 0xdead);
        assert!(!h.log.contains(&Ev::FlushRemote(OTHER)));
    }

    #[test]
    fn mmu_update_domid_self_names_the_caller_and_its_own_domid_is_esrch() {
        // Xen's get_pg_owner: DOMID_SELF is the caller; the caller's own
        // number is refused ("Cannot specify itself as foreign domain").
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        let self_fd = u64::from(xen_public::DOMID_SELF);
        assert_eq!(run_mmu(&mut h, &mut v, &mut d, &[machphys(5, 9)], self_fd).0, 0);
        assert_eq!(h.m2p.get(&5), Some(&9));
        assert_eq!(run_mmu(&mut h, &mut v, &mut d, &[machphys(5, 7)], u64::from(ME)).0, -ESRCH);
        assert_eq!(h.m2p.get(&5), Some(&9), "nothing done");
        let mut d = domain(true);
        assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(TLB_FLUSH_LOCAL, 0, 0)], u64::from(ME)), -ESRCH, "privileged too");
    }

    #[test]
    fn mmuext_undefined_cmd_14_naming_a_foreign_pg_owner_is_enosys() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(true));
        assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(14, 0, 0)], u64::from(OTHER)), -ENOSYS);
    }

    #[test]
    fn mmu_update_preempted_batch_sets_bit_31_and_advances_list() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        h.preempt = true;
        let (rc, mut r) = run_mmu(&mut h, &mut v, &mut d, &[machphys(5, 1), machphys(6, 2), machphys(7, 3)], SELF);
        assert_eq!(rc, nr::MMU_UPDATE as i64, "RAX holds the hypercall again");
        assert_eq!(r.rip, 0x1000, "the SYSCALL is issued again");
        assert_eq!(r.rsi, 2 | PREEMPTED);
        assert_eq!(r.rdi, LIST + 16);
        assert_eq!(r.rdx, DONE);
        assert_eq!(done(&g), 1);
        assert_eq!(h.m2p, BTreeMap::from([(5, 1)]));
        // The guest issues it again: it resumes from `done`.
        h.preempt = false;
        r.rip = 0x1002;
        assert_eq!(mmu_update(&mut h, &mut v, &mut d, &mut r), 0);
        assert_eq!(done(&g), 3);
        assert_eq!(h.m2p, BTreeMap::from([(5, 1), (6, 2), (7, 3)]));
    }

    #[test]
    fn mmu_update_resumed_batch_reads_done_from_the_guest() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        g.write(LIST, [machphys(5, 1), machphys(6, 2)].as_bytes()).unwrap();
        g.copy_to(DONE, &40u32).unwrap();
        let mut r = regs(nr::MMU_UPDATE, LIST, 2 | PREEMPTED, DONE, SELF);
        assert_eq!(mmu_update(&mut h, &mut v, &mut d, &mut r), 0);
        assert_eq!(done(&g), 42);
    }

    #[test]
    fn mmu_update_continues_after_512_entries() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        let reqs: Vec<MmuUpdate> = (0..600).map(|i| machphys(i % 48, i)).collect();
        let (rc, r) = run_mmu(&mut h, &mut v, &mut d, &reqs, SELF);
        assert_eq!(rc, nr::MMU_UPDATE as i64);
        assert_eq!(r.rsi, (600 - 512) | PREEMPTED);
        assert_eq!(r.rdi, LIST + 512 * 16);
        assert_eq!(done(&g), 512);
        assert_eq!(h.m2p.get(&(511 % 48)), Some(&511));
        assert_eq!(h.m2p.get(&(512 % 48)), Some(&(512 - 48)), "entry 512 is left for the continuation");
    }

    #[test]
    fn mmu_update_count_is_the_low_32_bits() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        g.write(LIST, [machphys(5, 1), machphys(6, 2)].as_bytes()).unwrap();
        let mut r = regs(nr::MMU_UPDATE, LIST, (1 << 32) | 1, DONE, SELF);
        assert_eq!(mmu_update(&mut h, &mut v, &mut d, &mut r), 0);
        assert_eq!(h.m2p, BTreeMap::from([(5, 1)]));
    }

    #[test]
    fn mmu_update_huge_count_stops_with_efault_where_the_list_ends() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        // Zeroed entries: plain writes of 0 into ME's frame 0.
        let mut r = regs(nr::MMU_UPDATE, EDGE, 0x7fff_ffff, DONE, SELF);
        assert_eq!(mmu_update(&mut h, &mut v, &mut d, &mut r), -EFAULT);
        assert_eq!(done(&g), 256);
        assert_eq!(r.rip, 0x1002);
    }

    #[test]
    fn mmu_update_unmapped_list_is_efault() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        g.copy_to(DONE, &0xdeadu32).unwrap();
        let mut r = regs(nr::MMU_UPDATE, UNMAPPED, 1, DONE, SELF);
        assert_eq!(mmu_update(&mut h, &mut v, &mut d, &mut r), -EFAULT);
        assert_eq!(done(&g), 0);
        let mut r = regs(nr::MMU_UPDATE, u64::MAX - 7, 1, DONE, SELF);
        assert_eq!(mmu_update(&mut h, &mut v, &mut d, &mut r), -EFAULT, "a list wrapping past the top");
    }

    #[test]
    fn mmu_update_unmapped_done_pointer_is_efault() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        g.write(LIST, machphys(5, 1).as_bytes()).unwrap();
        // A fresh batch: the entries run, the write-back fails.
        let mut r = regs(nr::MMU_UPDATE, LIST, 1, UNMAPPED, SELF);
        assert_eq!(mmu_update(&mut h, &mut v, &mut d, &mut r), -EFAULT);
        assert_eq!(h.m2p, BTreeMap::from([(5, 1)]));
        // A resumed one: `done` cannot be read, nothing runs.
        g.write(LIST, machphys(6, 1).as_bytes()).unwrap();
        let mut r = regs(nr::MMU_UPDATE, LIST, 1 | PREEMPTED, UNMAPPED, SELF);
        assert_eq!(mmu_update(&mut h, &mut v, &mut d, &mut r), -EFAULT);
        assert_eq!(h.m2p.get(&6), None);
        // A preempted one: the continuation's write-back fails.
        h.preempt = true;
        g.write(LIST, [machphys(7, 1), machphys(8, 1)].as_bytes()).unwrap();
        let mut r = regs(nr::MMU_UPDATE, LIST, 2, UNMAPPED, SELF);
        assert_eq!(mmu_update(&mut h, &mut v, &mut d, &mut r), -EFAULT);
        assert_eq!(r.rip, 0x1002, "no continuation");
    }

    #[test]
    fn mmu_update_null_done_pointer_is_not_written() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        g.write(LIST, machphys(5, 1).as_bytes()).unwrap();
        let mut r = regs(nr::MMU_UPDATE, LIST, 1, 0, SELF);
        assert_eq!(mmu_update(&mut h, &mut v, &mut d, &mut r), 0);
        assert_eq!(h.m2p.get(&5), Some(&1));
    }

    #[test]
    fn mmu_update_table_of_another_domain_is_einval_and_changes_nothing() {
        let g = guest();
        for (privileged, fd) in [(false, SELF), (true, u64::from(OTHER))] {
            let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(privileged));
            h.pm.write(THEIRS, 0, 0x1234);
            let before = h.others_state();
            // Page tables always belong to the caller, foreigndom or not.
            let (rc, _) = run_mmu(&mut h, &mut v, &mut d, &[normal(THEIRS, 0, pte(20, P | RW))], fd);
            assert_eq!(rc, -EINVAL);
            assert!(h.others_state() == before);
            assert_eq!(h.info(20).count, 1);
        }
    }

    #[test]
    fn mmu_update_mapping_another_domains_frame_is_ebusy_and_changes_nothing() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(PIN_L1, 10, 0)], SELF), 0);
        let before = h.others_state();
        for flags in [P, P | RW] {
            let (rc, _) = run_mmu(&mut h, &mut v, &mut d, &[normal(10, 0, pte(THEIRS, flags))], SELF);
            assert_eq!(rc, -xen_public::errno::EBUSY);
        }
        let (rc, _) = run_mmu(&mut h, &mut v, &mut d, &[normal(10, 0, pte((1 << 40) - 2, P))], SELF);
        assert_eq!(rc, -xen_public::errno::EPERM, "a frame past the table is MMIO: a domU may not map it");
        // Xen's get_page_from_l1e: the all-ones frame (INVALID_MFN) is
        // -EINVAL rather than -EPERM.
        let (rc, _) = run_mmu(&mut h, &mut v, &mut d, &[normal(10, 0, pte((1 << 40) - 1, P))], SELF);
        assert_eq!(rc, -EINVAL);
        assert!(h.others_state() == before);
        assert_eq!(h.entry(10, 0), 0);
    }

    #[test]
    fn mmio_mapping_by_dom0_takes_no_reference_is_made_uncacheable_and_unmaps_without_a_put() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(true));
        assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(PIN_L1, 10, 0)], SELF), 0);
        let before = h.others_state();
        let bar = 0xfebf0;
        let (rc, _) = run_mmu(&mut h, &mut v, &mut d, &[normal(10, 0, pte(bar, P | RW))], SELF);
        assert_eq!(rc, 0, "dom0 may map a PCI BAR frame");
        let pcd_pwt = (PteFlags::PCD | PteFlags::PWT).bits();
        assert_eq!(h.entry(10, 0) & pcd_pwt, pcd_pwt, "a write-back MMIO mapping is forced uncacheable (mmio-relax=0)");
        let (rc, _) = run_mmu(&mut h, &mut v, &mut d, &[normal(10, 0, 0)], SELF);
        assert_eq!(rc, 0);
        assert!(h.others_state() == before, "no frame-table state changed by map and unmap");
    }

    #[test]
    fn dom0_mapping_the_lapic_is_eperm_and_the_ioapic_only_read_only() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(true));
        assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(PIN_L1, 10, 0)], SELF), 0);
        for mfn in [0xfee00, 0xfee01, 0xfeeff] {
            let (rc, _) = run_mmu(&mut h, &mut v, &mut d, &[normal(10, 0, pte(mfn, P))], SELF);
            assert_eq!(rc, -xen_public::errno::EPERM, "mfn {mfn:#x}");
            assert_eq!(h.entry(10, 0), 0);
        }
        let (rc, _) = run_mmu(&mut h, &mut v, &mut d, &[normal(10, 0, pte(0xfec00, P | RW))], SELF);
        assert_eq!(rc, 0, "Xen 4.17 lets dom0 map the I/O APIC (mmio_ro_ranges)");
        assert_eq!(h.entry(10, 0) & RW, 0, "forced read-only");
    }

    #[test]
    fn mmu_update_privileged_pg_owner_maps_its_frames_into_the_callers_table() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(true));
        assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(PIN_L1, 10, 0)], SELF), 0);
        let (rc, _) = run_mmu(&mut h, &mut v, &mut d, &[normal(10, 0, pte(THEIRS, P | RW))], u64::from(OTHER));
        assert_eq!(rc, 0);
        assert_eq!(h.info(THEIRS).count, 2);
        // The caller's own frames are not the foreign domain's.
        let (rc, _) = run_mmu(&mut h, &mut v, &mut d, &[normal(10, 1, pte(20, P))], u64::from(OTHER));
        assert_eq!(rc, -xen_public::errno::EBUSY);
    }

    // ---- mmuext_op ----

    #[test]
    fn mmuext_pin_validates_and_unpin_releases() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        h.pm.write(10, 0, pte(20, P | RW | USER));
        assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(PIN_L1, 10, 0)], SELF), 0);
        let f = h.info(10);
        assert_eq!((f.ty, f.pinned, f.validated), (PageType::L1, true, true));
        assert_eq!(h.info(20).ty, PageType::Writable);
        assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(PIN_L1, 10, 0)], SELF), -EINVAL, "pins do not nest");
        assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(UNPIN, 10, 0)], SELF), 0);
        let f = h.info(10);
        assert_eq!((f.ty, f.pinned, f.type_count, f.count), (PageType::None, false, 0, 1));
        assert_eq!((h.info(20).ty, h.info(20).count), (PageType::None, 1));
        assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(UNPIN, 10, 0)], SELF), -EINVAL);
    }

    #[test]
    fn mmuext_pin_of_a_table_mapping_another_domains_frame_is_einval_and_changes_nothing() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        h.pm.write(10, 0, pte(20, P | RW | USER));
        h.pm.write(10, 1, pte(THEIRS, P | USER));
        let before = h.others_state();
        assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(PIN_L1, 10, 0)], SELF), -EINVAL);
        assert!(h.others_state() == before);
        assert_eq!(h.info(10), PageInfo { owner: ME, count: 1, ..PageInfo::FREE }, "validation undone");
        assert_eq!(h.info(20).count, 1);
    }

    #[test]
    fn mmuext_privileged_pg_owner_pins_that_domains_table_and_unprivileged_is_eperm() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(true));
        assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(PIN_L1, THEIRS, 0)], u64::from(OTHER)), 0);
        assert!(h.info(THEIRS).pinned);
        assert_eq!(h.info(THEIRS).owner, OTHER);
        assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(PIN_L1, 20, 0)], u64::from(OTHER)), -EINVAL, "not the foreign domain's");
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(PIN_L1, THEIRS, 0)], u64::from(OTHER)), -EPERM);
        assert!(!h.info(THEIRS).pinned);
    }

    #[test]
    fn mmuext_new_baseptr_null_is_einval() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        v.guest_table = 7 << 12;
        assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(NEW_BASEPTR, 0, 0)], SELF), -EINVAL);
        assert_eq!(v.guest_table, 7 << 12);
        assert!(!h.log.iter().any(|e| matches!(e, Ev::Cr3(..))));
    }

    #[test]
    fn mmuext_new_baseptr_loads_cr3_before_the_old_table_loses_its_references() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(NEW_BASEPTR, 11, 0)], SELF), 0);
        assert_eq!(v.guest_table, 11 << 12);
        let f = h.info(11);
        assert_eq!((f.ty, f.type_count, f.count), (PageType::L4, 1, 2));
        assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(NEW_BASEPTR, 12, 0)], SELF), 0);
        assert_eq!(h.log.iter().rfind(|e| matches!(e, Ev::Cr3(..))), Some(&Ev::Cr3(12 << 12, 2)), "both L4s live at the switch");
        let f = h.info(11);
        assert_eq!((f.ty, f.type_count, f.count), (PageType::None, 0, 1));
    }

    #[test]
    fn mmuext_new_baseptr_of_another_domains_frame_is_einval_and_changes_nothing() {
        let g = guest();
        for privileged in [false, true] {
            let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(privileged));
            let before = h.others_state();
            for cmd in [NEW_BASEPTR, NEW_USER_BASEPTR] {
                assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(cmd, THEIRS, 0)], SELF), -EINVAL);
                assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(cmd, 1 << 40, 0)], SELF), -EINVAL);
            }
            assert!(h.others_state() == before);
            assert_eq!((v.guest_table, v.guest_table_user), (0, 0));
        }
    }

    #[test]
    fn mmuext_new_user_baseptr_null_clears_the_user_table_and_releases_it() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(NEW_USER_BASEPTR, 11, 0)], SELF), 0);
        assert!(v.has_user_table);
        assert_eq!(h.info(11).type_count, 1);
        assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(NEW_USER_BASEPTR, 0, 0)], SELF), 0);
        assert!(!v.has_user_table);
        assert_eq!((v.guest_table_user, h.info(11).type_count, h.info(11).count), (0, 0, 1));
    }

    #[test]
    fn mmuext_unknown_cmd_is_enosys() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(true));
        for cmd in [14, 21, 0xffff_ffff] {
            g.copy_to(DONE, &0xdeadu32).unwrap();
            assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(TLB_FLUSH_LOCAL, 0, 0), op(cmd, 5, 5)], SELF), -ENOSYS, "cmd {cmd}");
            assert_eq!(done(&g), 1);
        }
    }

    #[test]
    fn mmuext_flush_cache_unprivileged_is_eacces() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(FLUSH_CACHE, 0, 0)], SELF), -EACCES);
        assert!(!h.log.contains(&Ev::Wbinvd));
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(true));
        assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(FLUSH_CACHE, 0, 0)], SELF), 0);
        assert!(h.log.contains(&Ev::Wbinvd));
    }

    #[test]
    fn mmuext_flush_cache_global_needs_privilege_else_einval() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(18, 0, 0)], SELF), -EINVAL);
        assert!(h.log.is_empty());
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(true));
        assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(18, 0, 0)], SELF), 0);
        assert_eq!(h.log, [Ev::Wbinvd]);
    }

    #[test]
    fn mmuext_mark_super_and_unmark_super_are_eopnotsupp() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(true));
        for cmd in [19, 20] {
            assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(cmd, 5, 0)], SELF), -EOPNOTSUPP, "cmd {cmd}");
        }
    }

    #[test]
    fn mmuext_vcpu_and_tlb_commands_naming_a_foreign_pg_owner_are_eperm() {
        // Xen's `currd != pg_owner` checks: a privileged builder may pin
        // another domain's tables, but not load its base pointers, LDT or
        // flush on its behalf.
        let g = guest();
        for cmd in [NEW_BASEPTR, TLB_FLUSH_LOCAL, INVLPG_LOCAL, 8, 9, 10, 11, FLUSH_CACHE, SET_LDT, NEW_USER_BASEPTR, 18] {
            let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(true));
            let before = h.others_state();
            assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(cmd, 11, 1)], u64::from(OTHER)), -EPERM, "cmd {cmd}");
            // The batch's closing remote flush of pg_owner's CPUs is all.
            assert!(h.log.iter().all(|e| *e == Ev::FlushRemote(OTHER)), "cmd {cmd}: {:?}", h.log);
            assert_eq!((v.guest_table, v.guest_table_user), (0, 0));
            assert!(h.others_state() == before);
        }
    }

    #[test]
    fn mmuext_tlb_flushes_and_invlpg_of_non_canonical_address_is_ignored() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        let ops = [op(TLB_FLUSH_LOCAL, 0, 0), op(8, 0, 0), op(10, 0, 0), op(INVLPG_LOCAL, NON_CANONICAL, 0), op(9, 0x1000, 0), op(11, 0x2000, 0)];
        assert_eq!(run_ext(&mut h, &mut v, &mut d, &ops, SELF), 0);
        assert_eq!(h.log, [Ev::FlushTlb, Ev::FlushTlb, Ev::FlushTlb, Ev::Invlpg(0x1000), Ev::Invlpg(0x2000)]);
    }

    #[test]
    fn mmuext_clear_and_copy_page_need_own_writable_frames() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        h.pm.write(20, 5, 0xabcd);
        h.pm.write(21, 7, 0x9999);
        assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(COPY_PAGE, 21, 20)], SELF), 0);
        assert_eq!((h.entry(21, 5), h.entry(21, 7)), (0xabcd, 0));
        assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(CLEAR_PAGE, 20, 0)], SELF), 0);
        assert_eq!(h.entry(20, 5), 0);
        assert_eq!((h.info(21).ty, h.info(21).count), (PageType::None, 1), "references dropped");
        // Never into a page table.
        assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(PIN_L1, 10, 0)], SELF), 0);
        assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(COPY_PAGE, 10, 21)], SELF), -EINVAL);
        assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(CLEAR_PAGE, 10, 0)], SELF), -EINVAL);
        assert_eq!(h.info(10).type_count, 1);
    }

    #[test]
    fn mmuext_clear_or_copy_with_another_domains_frame_is_einval_and_changes_nothing() {
        let g = guest();
        for privileged in [false, true] {
            let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(privileged));
            h.pm.write(THEIRS, 0, 0x5ec7e7);
            let before = h.others_state();
            assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(CLEAR_PAGE, THEIRS, 0)], SELF), -EINVAL);
            assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(COPY_PAGE, THEIRS, 20)], SELF), -EINVAL);
            assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(COPY_PAGE, 20, THEIRS)], SELF), -EINVAL);
            assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(CLEAR_PAGE, 1 << 40, 0)], SELF), -EINVAL);
            assert!(h.others_state() == before);
            assert_eq!(h.entry(20, 0), 0, "the secret was not copied");
        }
    }

    #[test]
    fn mmuext_set_ldt_misaligned_hypervisor_or_too_many_entries_is_einval() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        for (va, ents) in [(0x1008, 1), (HYPERVISOR_VA, 1), (NON_CANONICAL, 1), (0x1000, LDT_ENTRIES + 1)] {
            assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(SET_LDT, va, ents)], SELF), -EINVAL, "{va:#x} {ents}");
        }
        assert_eq!(v.ldt, (0, 0));
    }

    #[test]
    fn mmuext_set_ldt_types_its_pages_and_loads_them_here_or_later() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        h.pm.write(30, 1, CODE_DPL0);
        h.walk.insert(0x8000, 30 << 12);
        assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(SET_LDT, 0x8000, 2)], SELF), 0);
        assert_eq!(v.ldt_frames.1, 1);
        assert_eq!((h.info(30).ty, h.info(30).type_count), (PageType::SegDesc, 1));
        assert_eq!(h.log.last(), Some(&Ev::Ldt(vec![0, CODE_DPL3])), "checked descriptors");
        // Not running here (setvcpucontext): loaded when it is switched to.
        h.here = false;
        h.walk.insert(0x9000, 31 << 12);
        assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(SET_LDT, 0x9000, 1)], SELF), 0);
        assert_eq!(h.log.last(), Some(&Ev::Forget(ME)));
        assert_eq!((h.info(30).type_count, h.info(30).count), (0, 1), "the old LDT released");
        // arg2 == 0: no LDT.
        assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(SET_LDT, 0x9000, 0)], SELF), 0);
        assert_eq!((v.ldt, v.ldt_frames.1, h.info(31).count), ((0, 0), 0, 1));
    }

    #[test]
    fn mmuext_set_ldt_on_another_domains_frame_succeeds_with_an_empty_ldt() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        h.walk.insert(0x8000, 30 << 12);
        h.walk.insert(0x9000, THEIRS << 12);
        let before = h.others_state();
        assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(SET_LDT, 0x8000, 1024)], SELF), 0);
        assert_eq!(v.ldt_frames.1, 0);
        assert_eq!(h.log.last(), Some(&Ev::Ldt(vec![])));
        assert!(h.others_state() == before);
        assert_eq!((h.info(30).type_count, h.info(30).count), (0, 1), "the first page rolled back");
    }

    // ---- update_va_mapping ----

    #[test]
    fn update_va_mapping_non_canonical_or_hypervisor_va_is_einval() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        with_tables(&mut h, &mut v, &mut d);
        for va in [NON_CANONICAL, HYPERVISOR_VA, 0xffff_87ff_ffff_f000] {
            assert_eq!(update_va_mapping(&mut h, &mut v, &mut d, va, pte(20, P | RW), 2), -EINVAL);
        }
        assert_eq!(h.info(20).count, 1);
    }

    #[test]
    fn update_va_mapping_replaces_the_l1_entry_and_flushes_as_asked() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        with_tables(&mut h, &mut v, &mut d);
        assert_eq!(update_va_mapping(&mut h, &mut v, &mut d, 0x40_0000, pte(20, P | RW), 2), 0);
        assert_eq!(h.entry(14, 0), pte(20, P | RW | USER));
        assert_eq!(h.log.last(), Some(&Ev::Invlpg(0x40_0000)));
        assert_eq!(update_va_mapping(&mut h, &mut v, &mut d, 0x40_1000, pte(21, P), 1), 0);
        assert_eq!(h.entry(14, 1), pte(21, P | USER));
        assert_eq!(h.log.last(), Some(&Ev::FlushTlb));
        assert_eq!(update_va_mapping(&mut h, &mut v, &mut d, 0x40_0000, 0, 0), 0);
        assert_eq!((h.info(20).ty, h.info(20).count), (PageType::None, 1));
    }

    #[test]
    fn update_va_mapping_of_a_va_without_an_l1_is_einval() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        with_tables(&mut h, &mut v, &mut d);
        assert_eq!(update_va_mapping(&mut h, &mut v, &mut d, 0x80_0000, pte(20, P), 0), -EINVAL);
        assert_eq!(h.info(20).count, 1);
    }

    #[test]
    fn update_va_mapping_to_another_domains_frame_is_ebusy_and_changes_nothing() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(true));
        with_tables(&mut h, &mut v, &mut d);
        let before = h.others_state();
        assert_eq!(update_va_mapping(&mut h, &mut v, &mut d, 0x40_0000, pte(THEIRS, P | RW), 0), -xen_public::errno::EBUSY);
        assert!(h.others_state() == before);
        assert_eq!(h.entry(14, 0), 0);
    }

    // ---- multicall ----

    /// Write multicall entries `(op, args)` at LIST; the registers.
    fn calls(g: &FakeGuest, entries: &[(u64, [u64; 6])]) -> CpuUserRegs {
        let list: Vec<MulticallEntry> = entries.iter().map(|&(op, args)| MulticallEntry { op, result: 0xffff, args }).collect();
        g.write(LIST, list.as_bytes()).unwrap();
        regs(nr::MULTICALL, LIST, entries.len() as u64, 0, 0)
    }

    fn entry(g: &FakeGuest, i: u64) -> MulticallEntry {
        g.copy_from(LIST + i * 64).unwrap()
    }

    #[test]
    fn multicall_runs_each_entry_and_writes_its_result() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        let mut r = calls(&g, &[(100, [1, 2, 3, 4, 5, 6]), (101, [7; 6])]);
        assert_eq!(multicall(&mut h, &mut v, &mut d, &mut r), 0);
        assert_eq!((entry(&g, 0).result, entry(&g, 1).result), (1100, 1101));
        assert_eq!(h.log, [Ev::Dispatch(100, 1), Ev::Dispatch(101, 7)]);
        assert!(!v.in_multicall);
    }

    #[test]
    fn multicall_iret_ends_the_batch() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        let mut r = calls(&g, &[(100, [0; 6]), (nr::IRET, [0; 6]), (101, [0; 6])]);
        assert_eq!(multicall(&mut h, &mut v, &mut d, &mut r), IRET_RAX as i64);
        assert_eq!(entry(&g, 1).result, IRET_RAX);
        assert_eq!(entry(&g, 2).result, 0xffff, "not run");
        assert_eq!(h.log, [Ev::Dispatch(100, 0), Ev::Iret]);
    }

    #[test]
    fn multicall_nested_multicall_entry_is_einval_and_the_batch_goes_on() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        let mut r = calls(&g, &[(nr::MULTICALL, [LIST, 1, 0, 0, 0, 0]), (100, [0; 6])]);
        assert_eq!(multicall(&mut h, &mut v, &mut d, &mut r), 0);
        assert_eq!(entry(&g, 0).result, (-EINVAL) as u64);
        assert_eq!(entry(&g, 1).result, 1100);
        assert_eq!(h.log, [Ev::Dispatch(100, 0)], "the nested one never dispatched");
    }

    #[test]
    fn multicall_inside_a_multicall_is_einval() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        let mut r = calls(&g, &[(100, [0; 6])]);
        v.in_multicall = true;
        assert_eq!(multicall(&mut h, &mut v, &mut d, &mut r), -EINVAL);
        assert!(h.log.is_empty());
    }

    #[test]
    fn multicall_continued_sub_call_stores_its_new_args_and_continues_the_batch() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        let mut r = calls(&g, &[(100, [0; 6]), (CONTINUING, [5, 6, 7, 8, 9, 10]), (101, [0; 6])]);
        assert_eq!(multicall(&mut h, &mut v, &mut d, &mut r), nr::MULTICALL as i64);
        assert_eq!((r.rip, r.rdi, r.rsi), (0x1000, LIST + 64, 2));
        let e = entry(&g, 1);
        assert_eq!(e.args, [6, 6, 7, 8, 9, 10], "the sub-call's new arguments; args[5] untouched");
        assert_eq!(e.result, CONTINUING);
        assert_eq!(entry(&g, 2).result, 0xffff, "left for the continuation");
    }

    #[test]
    fn multicall_preemption_continues_from_the_next_entry() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        h.preempt = true;
        let mut r = calls(&g, &[(100, [0; 6]), (101, [0; 6]), (102, [0; 6])]);
        assert_eq!(multicall(&mut h, &mut v, &mut d, &mut r), nr::MULTICALL as i64);
        assert_eq!((r.rip, r.rdi, r.rsi), (0x1000, LIST + 64, 2));
        assert_eq!(h.log, [Ev::Dispatch(100, 0)], "the first entry always runs");
    }

    #[test]
    fn multicall_unmapped_list_or_result_is_efault() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        let mut r = regs(nr::MULTICALL, UNMAPPED, 1, 0, 0);
        assert_eq!(multicall(&mut h, &mut v, &mut d, &mut r), -EFAULT);
        let mut r = regs(nr::MULTICALL, u64::MAX - 31, 1, 0, 0);
        assert_eq!(multicall(&mut h, &mut v, &mut d, &mut r), -EFAULT, "a list wrapping past the top");
        // The second entry straddles into a hole.
        g.write(EDGE + 4096 - 64, MulticallEntry { op: 100, ..Default::default() }.as_bytes()).unwrap();
        let mut r = regs(nr::MULTICALL, EDGE + 4096 - 64, 2, 0, 0);
        assert_eq!(multicall(&mut h, &mut v, &mut d, &mut r), -EFAULT);
        assert_eq!(h.log, [Ev::Dispatch(100, 0)]);
    }

    #[test]
    fn multicall_preempted_mmu_update_sub_call_continues_the_whole_batch() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        let reqs = LIST + 8 * 4096;
        g.write(reqs, [machphys(5, 1), machphys(6, 2)].as_bytes()).unwrap();
        let mut r = calls(&g, &[(nr::MMU_UPDATE, [reqs, 2, DONE, SELF, 0, 0])]);
        h.preempt = true;
        assert_eq!(multicall(&mut h, &mut v, &mut d, &mut r), nr::MULTICALL as i64);
        assert_eq!((r.rip, r.rdi, r.rsi), (0x1000, LIST, 1));
        let e = entry(&g, 0);
        assert_eq!(e.args[..4], [reqs + 16, 1 | PREEMPTED, DONE, SELF]);
        assert_eq!(h.m2p, BTreeMap::from([(5, 1)]));
        // Issued again, the batch finishes the sub-call.
        h.preempt = false;
        r.rip = 0x1002;
        assert_eq!(multicall(&mut h, &mut v, &mut d, &mut r), 0);
        assert_eq!(entry(&g, 0).result, 0);
        assert_eq!((h.m2p.get(&6), done(&g)), (Some(&2), 2));
    }

    // ---- set_gdt ----

    fn gdt_list(g: &FakeGuest, frames: &[u64]) -> u64 {
        g.write(LIST, frames.as_bytes()).unwrap();
        LIST
    }

    #[test]
    fn set_gdt_more_than_14_pages_of_entries_is_einval() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        let list = gdt_list(&g, &[30; 15]);
        for ents in [FIRST_RESERVED_GDT_ENTRY + 1, u64::from(u32::MAX)] {
            assert_eq!(set_gdt(&mut h, &mut v, &mut d, list, ents), -EINVAL);
        }
        assert_eq!(h.info(30).count, 1);
    }

    #[test]
    fn set_gdt_types_frames_releases_the_old_ones_and_loads_the_entries() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        h.pm.write(30, 1, CODE_DPL0);
        assert_eq!(set_gdt(&mut h, &mut v, &mut d, gdt_list(&g, &[30]), 3), 0);
        assert_eq!(h.log.last(), Some(&Ev::Gdt(vec![0, CODE_DPL3, 0])));
        assert_eq!((h.info(30).ty, h.info(30).type_count, v.gdt_ents), (PageType::SegDesc, 1, 3));
        assert_eq!(set_gdt(&mut h, &mut v, &mut d, gdt_list(&g, &[31, 32]), 513), 0);
        assert_eq!((h.info(30).ty, h.info(30).count), (PageType::None, 1));
        assert_eq!((h.info(32).type_count, &v.gdt_frames[..2]), (1, &[31u64, 32][..]));
    }

    #[test]
    fn set_gdt_bad_frame_is_einval_and_rolls_back_the_frames_already_typed() {
        let g = guest();
        for bad in [THEIRS, 33, 1 << 40] {
            let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
            h.pm.write(33, 0, TSS);
            let before = h.others_state();
            assert_eq!(set_gdt(&mut h, &mut v, &mut d, gdt_list(&g, &[30, 31, bad]), 3 * 512), -EINVAL, "{bad}");
            for f in [30, 31, 33] {
                assert_eq!((h.info(f).ty, h.info(f).type_count, h.info(f).count), (PageType::None, 0, 1), "frame {f}");
            }
            assert!(h.others_state() == before);
            assert_eq!(v.gdt_ents, 0);
        }
    }

    #[test]
    fn set_gdt_unmapped_frame_list_is_efault() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        assert_eq!(set_gdt(&mut h, &mut v, &mut d, UNMAPPED, 1), -EFAULT);
        assert_eq!(set_gdt(&mut h, &mut v, &mut d, EDGE + 4096 - 8, 513), -EFAULT, "second frame number in a hole");
    }

    // ---- update_descriptor ----

    #[test]
    fn update_descriptor_misaligned_or_bad_descriptor_is_einval() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        assert_eq!(update_descriptor(&mut h, &mut v, &mut d, (30 << 12) | 4, CODE_DPL0), -EINVAL);
        assert_eq!(update_descriptor(&mut h, &mut v, &mut d, 30 << 12, TSS), -EINVAL);
        assert_eq!((h.entry(30, 0), h.info(30).count), (0, 1));
    }

    #[test]
    fn update_descriptor_writes_the_checked_descriptor_and_the_loaded_gdt_entry() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        // A writable page of the domain's.
        assert_eq!(update_descriptor(&mut h, &mut v, &mut d, 20 << 12, CODE_DPL0), 0);
        assert_eq!((h.entry(20, 0), h.info(20).count, h.info(20).ty), (CODE_DPL3, 1, PageType::None));
        // A page of the loaded GDT.
        assert_eq!(set_gdt(&mut h, &mut v, &mut d, gdt_list(&g, &[30]), 4), 0);
        assert_eq!(update_descriptor(&mut h, &mut v, &mut d, (30 << 12) + 16, CODE_DPL0), 0);
        assert_eq!(h.log.last(), Some(&Ev::GdtEntry(2, CODE_DPL3)));
        assert_eq!(h.info(30).type_count, 1, "still a descriptor page");
        // Past gdt_ents: written, not loaded.
        h.log.clear();
        assert_eq!(update_descriptor(&mut h, &mut v, &mut d, (30 << 12) + 8 * 10, CODE_DPL0), 0);
        assert!(h.log.is_empty());
    }

    #[test]
    fn update_descriptor_in_a_page_table_or_another_domains_frame_is_einval() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(true));
        assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(PIN_L1, 10, 0)], SELF), 0);
        let before = h.others_state();
        for maddr in [10 << 12, THEIRS << 12, 1 << 52] {
            assert_eq!(update_descriptor(&mut h, &mut v, &mut d, maddr, CODE_DPL0), -EINVAL);
        }
        assert!(h.others_state() == before);
        assert_eq!((h.entry(10, 0), h.info(10).count), (0, 2));
    }

    // ---- vCPU references ----

    #[test]
    fn release_vcpu_refs_drops_base_gdt_and_ldt_references() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        h.walk.insert(0x8000, 31 << 12);
        assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(NEW_BASEPTR, 11, 0), op(NEW_USER_BASEPTR, 12, 0), op(SET_LDT, 0x8000, 1)], SELF), 0);
        assert_eq!(set_gdt(&mut h, &mut v, &mut d, gdt_list(&g, &[30]), 1), 0);
        release_vcpu_refs(&mut h, &mut v);
        for f in [11, 12, 30, 31] {
            assert_eq!((h.info(f).type_count, h.info(f).count), (0, 1), "frame {f}");
        }
        assert_eq!((v.guest_table, v.guest_table_user, v.gdt_ents, v.ldt_frames.1), (0, 0, 0, 0));
    }

    // ---- attack: another domain's frame everywhere ----

    #[test]
    fn another_domains_frame_in_every_position_changes_none_of_its_state() {
        let g = guest();
        for privileged in [false, true] {
            let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(privileged));
            with_tables(&mut h, &mut v, &mut d);
            assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(PIN_L1, 10, 0)], SELF), 0);
            for m in OTHERS {
                h.pm.write(m, 0, 0x0dd0_0000 + m);
            }
            h.walk.insert(0x8000, THEIRS << 12);
            let before = h.others_state();
            let t = THEIRS;
            let reqs = [machphys(t, 1), normal(t, 0, 0), normal(10, 0, pte(t, P)), normal(10, 0, pte(t, P | RW)), normal(11, 1, pte(t, P | RW))];
            for req in reqs {
                assert!(run_mmu(&mut h, &mut v, &mut d, &[req], SELF).0 < 0, "{req:?}");
            }
            for cmd in [PIN_L1, PIN_L4, UNPIN, NEW_BASEPTR, NEW_USER_BASEPTR, CLEAR_PAGE] {
                assert!(run_ext(&mut h, &mut v, &mut d, &[op(cmd, t, 0)], SELF) < 0, "cmd {cmd}");
            }
            assert!(run_ext(&mut h, &mut v, &mut d, &[op(COPY_PAGE, 20, t)], SELF) < 0);
            assert_eq!(run_ext(&mut h, &mut v, &mut d, &[op(SET_LDT, 0x8000, 1)], SELF), 0);
            assert!(update_va_mapping(&mut h, &mut v, &mut d, 0x40_0000, pte(t, P), 0) < 0);
            assert!(set_gdt(&mut h, &mut v, &mut d, gdt_list(&g, &[t]), 1) < 0);
            assert!(update_descriptor(&mut h, &mut v, &mut d, t << 12, 0) < 0);
            assert!(switch_base(&mut h, &d, t, 0).is_err());
            assert!(h.others_state() == before, "privileged {privileged}");
            assert_eq!(h.entry(20, 0), 0);
        }
    }

    #[test]
    fn drain_pending_without_a_frame_table_is_ok_and_mmu_calls_are_einval() {
        let g = guest();
        let (mut h, mut v, mut d) = (Host::new(&g), Vcpu::default(), domain(false));
        h.ft = None;
        assert_eq!(drain_pending(&mut h, ME), Ok(()));
        assert_eq!(run_mmu(&mut h, &mut v, &mut d, &[machphys(5, 1)], SELF).0, -EINVAL);
        assert_eq!(update_descriptor(&mut h, &mut v, &mut d, 20 << 12, 0), -EINVAL);
        assert_eq!(done(&g), 0);
    }
}
