//! `grant_table_op`: grant tables v1, within a domain and between domains.
//!
//! The granting domain's entry is pinned (GTF_reading/GTF_writing, pin
//! counts) for as long as a mapping or a copy uses it; the mapper's
//! maptrack remembers which domain granted each handle, so unmapping (or
//! destroying the mapper) drops the pin in the right table.

use super::mmu::{l1_slot, mm, who};
use super::*;
use crate::guest_access::Frame;
use xen_public::grant_table::*;
use xen_public::pte::{PteFlags, pte_maddr};

/// Grant-table operations handled per call before a continuation.
const GNTTAB_PER_CALL: u64 = 128;

/// Where grant entry `gref` (8-byte v1 entries) lives: its grant frame
/// and byte offset, or `None` past the domain's grant table. The guest
/// writes the same entry concurrently: it is only ever read and changed
/// through `Frame`'s atomic word operations.
fn entry_at(d: &Domain, gref: u32) -> Option<(Frame, usize)> {
    if gref >= nr_grant_entries(d) {
        return None;
    }
    let frame = *d.grant.frames.get((gref / crate::grant::ENTRIES_PER_FRAME) as usize)?;
    Some((Frame::new(Mfn(frame))?, (gref % crate::grant::ENTRIES_PER_FRAME) as usize * 8))
}

/// Byte offsets in a v1 grant entry.
const ENTRY_FLAGS: usize = 0;
const ENTRY_FRAME: usize = 4;

/// `(domid, frame)` of grant entry `gref` (`None` past the grant table).
fn grant_entry(d: &Domain, gref: u32) -> Option<(u16, u64)> {
    let (f, at) = entry_at(d, gref)?;
    let head = f.load_u32(at + ENTRY_FLAGS);
    Some(((head >> 16) as u16, u64::from(f.load_u32(at + ENTRY_FRAME))))
}

/// The flags of grant entry `gref` (0 past the grant table).
fn grant_flags(d: &Domain, gref: u32) -> u16 {
    entry_at(d, gref).map_or(0, |(f, at)| f.load_u16(at + ENTRY_FLAGS))
}

fn nr_grant_entries(d: &Domain) -> u32 {
    d.grant.nr_frames * crate::grant::ENTRIES_PER_FRAME
}

/// Pin grant `gref` for `readonly` or writable use by `mapper`: take the
/// pin (only the pinning domain may add pins, counts bounded), check the
/// entry's flags and domid in the same compare-and-swap that sets
/// GTF_reading / GTF_writing (Xen's `_set_status_v1`), and only then read
/// the frame (at the first pin; later pins use the one taken then): read
/// earlier, it could be one the granter revoked and replaced between the
/// read and the swap. The granter must own the frame (Xen's
/// `get_paged_frame`: else GNTST_bad_page, and the flags this set go).
fn grant_pin(d: &mut Domain, gref: u32, mapper: u16, readonly: bool) -> Result<u64, i16> {
    use crate::grant::{gntst, pin_flags};
    let mut pin = d.grant.pins[gref as usize];
    let already = pin.pinned();
    pin.acquire(mapper, readonly)?;
    let (entry, at) = entry_at(d, gref).ok_or(gntst::BAD_GNTREF)?;
    let mut cur = entry.load_u32(at + ENTRY_FLAGS);
    let mut added = None;
    for _ in 0..5 {
        let (flags, domid) = (cur as u16, (cur >> 16) as u16);
        let new = pin_flags(flags, domid, mapper, readonly, already)?;
        match entry.cmpxchg_u32(at + ENTRY_FLAGS, cur, (cur & 0xffff_0000) | u32::from(new)) {
            Ok(_) => {
                added = Some(new & !flags);
                break;
            }
            Err(now) => cur = now,
        }
    }
    let added = added.ok_or(gntst::GENERAL_ERROR)?;
    if !already {
        pin.frame = u64::from(entry.load_u32(at + ENTRY_FRAME));
    }
    let owned = FRAME_TABLE.lock().as_ref().and_then(|ft| ft.info(pin.frame).map(|f| f.owner)) == Some(d.domid);
    if !owned {
        entry.fetch_and_u16(at + ENTRY_FLAGS, !added);
        return Err(gntst::BAD_PAGE);
    }
    d.grant.pins[gref as usize] = pin;
    Ok(pin.frame)
}

/// Drop a pin and clear the flags no pin needs any more.
fn grant_unpin(d: &mut Domain, gref: u32, readonly: bool) {
    if gref >= nr_grant_entries(d) {
        return;
    }
    let p = &mut d.grant.pins[gref as usize];
    p.release(readonly);
    let clear = p.flags_to_clear();
    if let Some((f, at)) = entry_at(d, gref) {
        f.fetch_and_u16(at + ENTRY_FLAGS, !clear.bits());
    }
}

fn gnttab_setup_table(v: &mut Vcpu, d: &mut Domain, a: &mut GnttabSetupTable) -> i16 {
    use crate::grant::{MAX_FRAMES, gntst};
    if self_dom(d, a.dom).is_err() {
        return gntst::BAD_DOMAIN;
    }
    let nr = a.nr_frames;
    if nr > MAX_FRAMES {
        return gntst::GENERAL_ERROR;
    }
    while d.grant.nr_frames < nr {
        let Some(f) = crate::mm::machine::alloc_frame() else { return gntst::GENERAL_ERROR };
        if let Some(ft) = FRAME_TABLE.lock().as_mut() {
            let _ = ft.share_with_guest(f.0, d.domid);
        }
        d.grant.frames[d.grant.nr_frames as usize] = f.0;
        d.grant.nr_frames += 1;
    }
    let list = a.frame_list;
    let mem = v.kernel_mem();
    for i in 0..nr as usize {
        if mem.write(list + i as u64 * 8, &d.grant.frames[i].to_le_bytes()).is_err() {
            return gntst::GENERAL_ERROR;
        }
    }
    gntst::OKAY
}

/// Run `f` on the granting domain `dom`: the caller itself or another
/// domain (`None` if it does not exist).
fn with_granter<R>(d: &mut Domain, dom: u16, f: impl FnOnce(&mut Domain) -> R) -> Option<R> {
    if dom == d.domid { Some(f(d)) } else { crate::schedule::with_domain(dom, f) }
}

/// Pin `gref` of `dom` for the caller: the granted frame.
fn pin_for(d: &mut Domain, dom: u16, gref: u32, readonly: bool) -> Result<u64, i16> {
    use crate::grant::gntst;
    let mapper = d.domid;
    with_granter(d, dom, |g| {
        if gref >= nr_grant_entries(g) {
            return Err(gntst::BAD_GNTREF);
        }
        grant_pin(g, gref, mapper, readonly)
    })
    .unwrap_or(Err(gntst::BAD_DOMAIN))
}

/// Drop a pin taken by [`pin_for`] (nothing if the granter is gone).
fn unpin_for(d: &mut Domain, dom: u16, gref: u32, readonly: bool) {
    with_granter(d, dom, |g| grant_unpin(g, gref, readonly));
}

/// Domain destruction: drop the pins `dead` holds on others' grants and
/// the references of its device mappings (its host mappings' references
/// go with its page tables), so granters can revoke.
pub(super) fn release_grants(caller: &mut Domain, dead: &mut Domain) {
    for h in 0..crate::grant::MAPTRACK as u32 {
        let Some(map) = dead.grant.maptrack.remove(h) else { continue };
        if map.device {
            put_frame(dead.grant.mapped_frames[h as usize], !map.readonly);
        }
        if map.dom != dead.domid {
            unpin_for(caller, map.dom, map.gref, map.readonly);
        }
    }
}

/// Domain destruction: every mapping of `dead`'s grants that another
/// domain still holds now names no granter, so a new domain that reuses
/// the id never sees those handles' unpins.
pub(super) fn forget_granter(caller: &mut Domain, dead: u16) {
    caller.grant.maptrack.forget_granter(dead);
    let mut from = 0;
    while let Some(id) = crate::schedule::next_domid_from(from) {
        if id != caller.domid {
            crate::schedule::with_domain(id, |o| o.grant.maptrack.forget_granter(dead));
        }
        match id.checked_add(1) {
            Some(n) => from = n,
            None => break,
        }
    }
}

/// Take a general reference on `frame` of `owner`, and a writable type
/// reference when `write` (what a device mapping or a copy holds).
fn get_frame(frame: u64, owner: u16, write: bool) -> Result<(), i16> {
    use crate::grant::gntst;
    let mut m = mm();
    let mut ftg = FRAME_TABLE.lock();
    let ft = ftg.as_mut().ok_or(gntst::GENERAL_ERROR)?;
    ft.get_page(frame, owner).map_err(|_| gntst::BAD_PAGE)?;
    if write && ft.get_page_type(&mut m.mem, frame, PageType::Writable, Who::own(owner, false)).is_err() {
        ft.put_page(frame);
        return Err(gntst::GENERAL_ERROR);
    }
    Ok(())
}

/// Drop what [`get_frame`] took.
fn put_frame(frame: u64, write: bool) {
    let mut m = mm();
    if let Some(ft) = FRAME_TABLE.lock().as_mut() {
        if write {
            ft.put_page_type(&mut m.mem, frame);
        }
        ft.put_page(frame);
        ft.take_freed(|mfn| crate::mm::machine::free_frame(Mfn(mfn)));
    }
}

/// Install a host mapping of `frame` (owned by `dom`) at `host_addr` in
/// the caller's validated L1: the PTE's references are taken through the
/// frame table like any other L1 entry's.
fn map_host(v: &Vcpu, d: &Domain, dom: u16, frame: u64, host_addr: u64, readonly: bool) -> i16 {
    use crate::grant::gntst;
    if !crate::mm::guest_walk::guest_va_ok(host_addr) {
        return gntst::GENERAL_ERROR;
    }
    // Present, user, accessed; writable and dirty unless read-only.
    let flags = PteFlags::PRESENT | PteFlags::USER | PteFlags::ACCESSED;
    let flags = if readonly { flags } else { flags | PteFlags::RW | PteFlags::DIRTY };
    let pte = (frame << 12) | flags.bits();
    let mut m = mm();
    let Some((l1, idx)) = l1_slot(v, &m, host_addr) else { return gntst::GENERAL_ERROR };
    let mut ftg = FRAME_TABLE.lock();
    let Some(ft) = ftg.as_mut() else { return gntst::GENERAL_ERROR };
    let live_l1 = ft.info(l1).is_some_and(|f| f.ty == PageType::L1 && f.validated && f.owner == d.domid);
    if !live_l1 {
        return gntst::GENERAL_ERROR;
    }
    let old = m.mem.read(l1, idx);
    if ft.get_entry(&mut m.mem, l1, 1, pte, Who { pg: dom, ..who(d) }).is_err() {
        return gntst::GENERAL_ERROR;
    }
    m.mem.write(l1, idx, pte);
    ft.put_entry(&mut m.mem, l1, 1, old);
    ft.take_freed(|mfn| crate::mm::machine::free_frame(Mfn(mfn)));
    drop(ftg);
    crate::arch::x86_64::cpu::invlpg(host_addr);
    gntst::OKAY
}

/// Remove the host mapping of `frame` at `host_addr`, only if the PTE
/// there still maps it (Xen's `replace_grant_pv_mapping`).
fn unmap_host(v: &Vcpu, d: &Domain, frame: u64, host_addr: u64) -> i16 {
    use crate::grant::gntst;
    let mut m = mm();
    let Some((l1, idx)) = l1_slot(v, &m, host_addr) else { return gntst::GENERAL_ERROR };
    let mut ftg = FRAME_TABLE.lock();
    let Some(ft) = ftg.as_mut() else { return gntst::GENERAL_ERROR };
    let cur = m.mem.read(l1, idx);
    let live_l1 = ft.info(l1).is_some_and(|f| f.ty == PageType::L1 && f.validated && f.owner == d.domid);
    if !live_l1 || !PteFlags::of(cur).contains(PteFlags::PRESENT) || pte_maddr(cur) >> 12 != frame {
        return gntst::GENERAL_ERROR;
    }
    m.mem.write(l1, idx, 0);
    ft.put_entry(&mut m.mem, l1, 1, cur);
    ft.take_freed(|mfn| crate::mm::machine::free_frame(Mfn(mfn)));
    drop(ftg);
    // The whole TLB, not the one page: the same L1 may be linked at other
    // addresses whose translations of the frame are cached too. Only the
    // caller (one vCPU, on this CPU) maps through this L1's PTE, and its
    // pin is dropped after this, when the granter may take the frame back
    // (Xen flushes before `unmap_common_complete` the same way).
    crate::arch::x86_64::cpu::flush_tlb();
    gntst::OKAY
}

fn gnttab_map(v: &mut Vcpu, d: &mut Domain, a: &mut GnttabMapGrantRef) -> i16 {
    use crate::grant::{Mapping, gntst};
    let (host_addr, flags, gref, dom) = (a.host_addr, GntmapFlags::from_bits_retain(a.flags), a.ref_, a.dom);
    let (host, device) = (flags.contains(GntmapFlags::HOST_MAP), flags.contains(GntmapFlags::DEVICE_MAP));
    if !host && !device {
        return gntst::BAD_GNTREF;
    }
    // As Xen (`rcu_lock_domain_by_id`): a real domain id, not DOMID_SELF.
    if dom == xen_public::DOMID_SELF || (dom != d.domid && crate::schedule::slot_of(dom).is_none()) {
        return gntst::BAD_DOMAIN;
    }
    if flags.contains(GntmapFlags::CONTAINS_PTE) {
        // Optional in this ABI version; not supported.
        return gntst::GENERAL_ERROR;
    }
    let readonly = flags.contains(GntmapFlags::READONLY);
    let frame = match pin_for(d, dom, gref, readonly) {
        Ok(f) => f,
        Err(s) => return s,
    };
    let mut status = if device { get_frame(frame, dom, !readonly).err().unwrap_or(gntst::OKAY) } else { gntst::OKAY };
    if status == gntst::OKAY && host {
        status = map_host(v, d, dom, frame, host_addr, readonly);
        if status != gntst::OKAY && device {
            put_frame(frame, !readonly);
        }
    }
    if status != gntst::OKAY {
        unpin_for(d, dom, gref, readonly);
        return status;
    }
    let map = Mapping { dom, gref, host_addr: if host { host_addr } else { 0 }, device, readonly };
    let Some(handle) = d.grant.maptrack.insert(map) else {
        if host {
            unmap_host(v, d, frame, host_addr);
        }
        if device {
            put_frame(frame, !readonly);
        }
        unpin_for(d, dom, gref, readonly);
        return gntst::NO_DEVICE_SPACE;
    };
    d.grant.mapped_frames[handle as usize] = frame;
    a.handle = handle;
    let bus = if device { frame << 12 } else { 0 };
    a.dev_bus_addr = bus;
    gntst::OKAY
}

/// GNTTABOP_unmap_grant_ref, as Xen's `unmap_common`: a non-zero
/// `host_addr` removes the host mapping (only if its PTE still maps the
/// granted frame), a non-zero `dev_bus_addr` the device mapping; the pin
/// and the handle go when neither part is left. `host_addr` 0 on a host
/// mapping leaves it in place (status okay, as Xen).
fn gnttab_unmap(v: &mut Vcpu, d: &mut Domain, a: &mut GnttabUnmapGrantRef) -> i16 {
    use crate::grant::gntst;
    let (host_addr, dev_bus_addr, handle) = (a.host_addr, a.dev_bus_addr, a.handle);
    let Some(mut map) = d.grant.maptrack.get(handle) else { return gntst::BAD_HANDLE };
    let frame = d.grant.mapped_frames[handle as usize];
    if dev_bus_addr != 0 && map.device && dev_bus_addr != frame << 12 {
        return gntst::BAD_DEV_ADDR;
    }
    if host_addr != 0 && map.host_addr != 0 {
        if host_addr != map.host_addr {
            return gntst::GENERAL_ERROR;
        }
        let s = unmap_host(v, d, frame, host_addr);
        if s != gntst::OKAY {
            return s;
        }
        map.host_addr = 0;
    }
    if dev_bus_addr != 0 && map.device {
        put_frame(frame, !map.readonly);
        map.device = false;
    }
    if map.host_addr != 0 || map.device {
        d.grant.maptrack.update(handle, map);
        return gntst::OKAY;
    }
    d.grant.maptrack.remove(handle);
    unpin_for(d, map.dom, map.gref, map.readonly);
    gntst::OKAY
}

/// One side of a copy: the machine frame, after checking the grant (the
/// granter must own the frame) or the frame's ownership, with a general
/// reference on it and, for a destination, a writable type reference (a
/// page table or descriptor page can never be written by a copy).
fn copy_side(d: &mut Domain, is_gref: bool, v: u64, dom: u16, write: bool) -> Result<(u64, Option<(u16, u32)>), i16> {
    use crate::grant::gntst;
    if is_gref {
        let dom = if dom == xen_public::DOMID_SELF { d.domid } else { dom };
        let gref = v as u32;
        let frame = pin_for(d, dom, gref, !write)?;
        if let Err(s) = get_frame(frame, dom, write) {
            unpin_for(d, dom, gref, !write);
            return Err(s);
        }
        return Ok((frame, Some((dom, gref))));
    }
    // As Xen: only DOMID_SELF (or the caller's id) may name a frame.
    if self_dom(d, dom).is_err() {
        return Err(if crate::schedule::slot_of(dom).is_some() { gntst::PERMISSION_DENIED } else { gntst::BAD_DOMAIN });
    }
    get_frame(v, d.domid, write)?;
    Ok((v, None))
}

fn copy_release(d: &mut Domain, frame: u64, gref: Option<(u16, u32)>, write: bool) {
    put_frame(frame, write);
    if let Some((dom, g)) = gref {
        unpin_for(d, dom, g, !write);
    }
}

/// Receive a transferred frame into `e` through its entry `gref`, which
/// must accept a transfer from `from` (Xen's gnttab_prepare_for_transfer):
/// the frame becomes `e`'s, its number goes into the entry, and the entry
/// is marked committed and completed.
fn receive_transfer(e: &mut Domain, from: u16, gref: u32, mfn: u64) -> i16 {
    use crate::grant::gntst;
    // Exactly an accept_transfer entry with no flag set yet (so not already
    // committed), as Xen's compare-and-swap.
    let accept = GrantType::AcceptTransfer.bits();
    let committing = GtfFlags::TRANSFER_COMMITTED.with_type(GrantType::AcceptTransfer);
    if e.nr_pages >= e.max_pages || gref >= nr_grant_entries(e) {
        return gntst::GENERAL_ERROR;
    }
    let (Some((domid, want_pfn)), Some((entry, at))) = (grant_entry(e, gref), entry_at(e, gref)) else {
        return gntst::GENERAL_ERROR;
    };
    let committed = domid == from && entry.cmpxchg_u16(at + ENTRY_FLAGS, accept, committing).is_ok();
    if !committed || FRAME_TABLE.lock().as_mut().is_none_or(|ft| ft.assign(mfn, e.domid).is_err()) {
        return gntst::GENERAL_ERROR;
    }
    e.nr_pages += 1;
    crate::mm::machine::set_m2p(Mfn(mfn), want_pfn);
    entry.store_u32(at + ENTRY_FRAME, mfn as u32);
    entry.fetch_or_u16(at + ENTRY_FLAGS, GtfFlags::TRANSFER_COMPLETED.bits());
    gntst::OKAY
}

/// GNTTABOP_transfer: give frame `mfn` (which only its allocation may
/// reference) to domain `domid` through its grant `ref`. As in Xen, once
/// the frame has left the caller a later failure frees it.
fn gnttab_transfer(d: &mut Domain, a: &mut GnttabTransfer) -> i16 {
    use crate::grant::gntst;
    let (mfn, dom, gref) = (a.mfn, a.domid, a.ref_);
    if d.is_special_frame(mfn) || !FRAME_TABLE.lock().as_mut().is_some_and(|ft| ft.release(&mut mm().mem, mfn, d.domid)) {
        return gntst::BAD_PAGE;
    }
    d.nr_pages -= 1;
    let from = d.domid;
    let status = with_granter(d, dom, |e| receive_transfer(e, from, gref, mfn)).unwrap_or(gntst::BAD_DOMAIN);
    if status != gntst::OKAY {
        crate::mm::machine::free_frame(Mfn(mfn));
    } else if dom != from {
        crate::schedule::kick();
    }
    status
}

fn gnttab_copy(d: &mut Domain, a: &mut GnttabCopy) -> i16 {
    use crate::grant::{copy_bounds, gntst};
    let (src_off, dst_off, len, flags) = (a.source.offset, a.dest.offset, a.len, a.flags);
    if let Err(s) = copy_bounds(src_off, dst_off, len) {
        return s;
    }
    let (src, sg) = match copy_side(d, flags & GNTCOPY_SOURCE_GREF != 0, a.source.u, a.source.domid, false) {
        Ok(v) => v,
        Err(s) => return s,
    };
    let (dst, dg) = match copy_side(d, flags & GNTCOPY_DEST_GREF != 0, a.dest.u, a.dest.domid, true) {
        Ok(v) => v,
        Err(s) => {
            copy_release(d, src, sg, false);
            return s;
        }
    };
    // Both ranges lie within one frame each (bounds checked), the frames
    // are referenced (and the destination typed writable) for the copy.
    match (Frame::new(Mfn(src)), Frame::new(Mfn(dst))) {
        (Some(s), Some(t)) => t.copy_from(usize::from(dst_off), s, usize::from(src_off), usize::from(len)),
        _ => {
            copy_release(d, dst, dg, true);
            copy_release(d, src, sg, false);
            return gntst::BAD_PAGE;
        }
    }
    copy_release(d, dst, dg, true);
    copy_release(d, src, sg, false);
    gntst::OKAY
}

/// An element of a `grant_table_op` array: a structure of
/// `grant_table.h` with a status field.
trait GntOp: zerocopy::FromBytes + zerocopy::IntoBytes + zerocopy::Immutable {
    fn set_status(&mut self, s: i16);
}

macro_rules! gnt_op {
    ($($t:ty),*) => {$(
        impl GntOp for $t {
            fn set_status(&mut self, s: i16) {
                self.status = s;
            }
        }
    )*};
}
gnt_op!(GnttabMapGrantRef, GnttabUnmapGrantRef, GnttabSetupTable, GnttabDumpTable, GnttabTransfer, GnttabCopy, GnttabQuerySize);

/// Run `op` on each of the `count` structures at `uop`, each copied in,
/// given its status and copied back; continued in a re-issued hypercall
/// after [`GNTTAB_PER_CALL`] of them or when preemption is due.
fn each<T: GntOp>(v: &mut Vcpu, d: &mut Domain, regs: &mut CpuUserRegs, op: fn(&mut Vcpu, &mut Domain, &mut T) -> i16) -> Ret {
    let (uop, count) = (regs.rsi, regs.rdx as u32 as u64);
    let size = core::mem::size_of::<T>() as u64;
    let mem = v.kernel_mem();
    for i in 0..count {
        if i == GNTTAB_PER_CALL || (i > 0 && super::preempt_due()) {
            regs.rsi = uop + i * size;
            regs.rdx = count - i;
            return continue_later(regs, nr::GRANT_TABLE_OP) as i64;
        }
        let at = uop + i * size;
        let Ok(mut a) = mem.copy_from::<T>(at) else { return -EFAULT };
        let status = op(v, d, &mut a);
        a.set_status(status);
        if mem.copy_to(at, &a).is_err() {
            return -EFAULT;
        }
    }
    0
}

/// GNTTABOP_query_size: the caller's table size and its limit.
fn gnttab_query_size(d: &mut Domain, a: &mut GnttabQuerySize) -> i16 {
    if self_dom(d, a.dom).is_err() {
        return GNTST_BAD_DOMAIN;
    }
    a.nr_frames = d.grant.nr_frames;
    a.max_nr_frames = crate::grant::MAX_FRAMES;
    GNTST_OKAY
}

/// GNTTABOP_dump_table: the privileged domain's diagnostic on the
/// hypervisor console.
fn gnttab_dump_table(d: &mut Domain, a: &mut GnttabDumpTable) -> i16 {
    if self_dom(d, a.dom).is_err() {
        return GNTST_BAD_DOMAIN;
    }
    for g in 0..nr_grant_entries(d) {
        let Some((domid, frame)) = grant_entry(d, g) else { continue };
        let flags = grant_flags(d, g);
        if flags != 0 {
            crate::printk!("grant-table d{} ref {g}: flags {flags:#06x} domid {domid} frame {frame:#x} pins {:?}", d.domid, d.grant.pins[g as usize]);
        }
    }
    GNTST_OKAY
}

/// `grant_table_op(cmd, uop, count)`: per-op status in each structure;
/// the hypercall returns 0 when the array could be read and written.
pub(super) fn grant_table_op(v: &mut Vcpu, d: &mut Domain, regs: &mut CpuUserRegs) -> Ret {
    let (cmd, count) = (regs.rdi as u32, regs.rdx as u32);
    let cmd = u64::from(cmd);
    if matches!(cmd, GNTTABOP_SET_VERSION | GNTTABOP_GET_VERSION) {
        return if count == 1 { version_op(v, d, cmd, regs.rsi) } else { -EINVAL };
    }
    // dump_table prints on the hypervisor console (up to 2048 lines a
    // call): the privileged domain's diagnostic only. Xen 4.17 dropped the
    // sub-op (-ENOSYS), which is what a domU gets.
    if cmd == GNTTABOP_DUMP_TABLE && !d.privileged {
        return -ENOSYS;
    }
    if !matches!(
        cmd,
        GNTTABOP_MAP_GRANT_REF
            | GNTTABOP_UNMAP_GRANT_REF
            | GNTTABOP_SETUP_TABLE
            | GNTTABOP_DUMP_TABLE
            | GNTTABOP_TRANSFER
            | GNTTABOP_COPY
            | GNTTABOP_QUERY_SIZE
    ) {
        return -ENOSYS;
    }
    if let Err(e) = super::mmu::drain_pending(d.domid) {
        return e;
    }
    match cmd {
        GNTTABOP_MAP_GRANT_REF => each(v, d, regs, gnttab_map),
        GNTTABOP_UNMAP_GRANT_REF => each(v, d, regs, gnttab_unmap),
        GNTTABOP_SETUP_TABLE => each(v, d, regs, gnttab_setup_table),
        GNTTABOP_DUMP_TABLE => each(v, d, regs, |_, d, a| gnttab_dump_table(d, a)),
        GNTTABOP_TRANSFER => each(v, d, regs, |_, d, a| gnttab_transfer(d, a)),
        GNTTABOP_COPY => each(v, d, regs, |_, d, a| gnttab_copy(d, a)),
        _ => each(v, d, regs, |_, d, a| gnttab_query_size(d, a)),
    }
}

/// GNTTABOP_set_version (only version 1 exists here) and
/// GNTTABOP_get_version: one structure, the hypercall's own result.
fn version_op(v: &mut Vcpu, d: &mut Domain, cmd: u64, uop: u64) -> Ret {
    let mem = v.kernel_mem();
    if cmd == GNTTABOP_SET_VERSION {
        let Ok(a) = mem.copy_from::<GnttabSetVersion>(uop) else { return -EFAULT };
        return if a.version == 1 { 0 } else { -ENOSYS };
    }
    let Ok(mut a) = mem.copy_from::<GnttabGetVersion>(uop) else { return -EFAULT };
    if self_dom(d, a.dom).is_err() {
        return -ESRCH;
    }
    a.version = 1;
    crate::domain::guest_mem::rc(mem.copy_to(uop, &a))
}
