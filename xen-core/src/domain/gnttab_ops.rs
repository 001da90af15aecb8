//! `grant_table_op`: grant tables v1, within a domain and between domains
//! (setup_table, query_size, map_grant_ref, unmap_grant_ref, copy,
//! transfer, dump_table, set_version/get_version), and the grant side of
//! a domain's destruction. Generic over the caller's memory
//! ([`GuestAccess`], for the op arrays) and over the rest of the machine
//! ([`GrantHost`]: other domains by domid, the frame table and page-table
//! memory, the shared grant frames, TLB flushes, preemption), so decoding,
//! GNTST_* statuses, errno values and continuations are tested on the host.
//!
//! Invariants: the granting domain's entry is pinned (GTF_reading /
//! GTF_writing, pin counts) exactly as long as a mapping or a copy uses
//! it, and its flags word is only ever read and changed through the
//! atomic operations of [`SharedFrame`] (the granting guest writes the
//! same word concurrently); the mapper's maptrack remembers which domain
//! granted each handle, so unmapping (or destroying the mapper) drops the
//! pin in that table and no other; a domain reaches another domain only
//! as the granter it names, never through [`GrantHost::with_other`] for
//! its own id (the caller's own table is reached directly).
#![forbid(unsafe_code)]

use super::Domain;
use super::guest_mem::{GuestAccess, rc};
use super::vcpu::CpuUserRegs;
use super::vcpu_ops::continue_later;
use crate::grant::{self, ENTRIES_PER_FRAME, MAX_FRAMES, Mapping, gntst};
use crate::mm::page_type::{FrameTable, PageMem, PageType, Who};
use xen_public::errno::{EFAULT, EINVAL, ENOSYS, ESRCH};
use xen_public::grant_table::*;
use xen_public::pte::{PteFlags, pte_maddr};

/// A hypercall's result for the guest's RAX (a negated errno on failure).
type Ret = i64;

/// Grant-table operations handled per call before a continuation.
pub const GNTTAB_PER_CALL: u64 = 128;

/// A machine frame the hypervisor shares with guests (a grant frame, or a
/// granted frame a copy reads or writes). The word operations are atomic
/// on the live machine: the guest owning the frame changes the same words
/// on another CPU.
pub trait SharedFrame {
    /// Atomic load of the u16 at byte `off`.
    fn load_u16(&self, off: usize) -> u16;
    /// Atomic load of the u32 at byte `off`.
    fn load_u32(&self, off: usize) -> u32;
    /// Atomic store of the u32 at byte `off`.
    fn store_u32(&self, off: usize, v: u32);
    /// Compare-and-swap the u16 at byte `off`: `Ok(cur)` if it held `cur`
    /// and now holds `new`, else `Err(what it held)`.
    fn cmpxchg_u16(&self, off: usize, cur: u16, new: u16) -> Result<u16, u16>;
    /// Compare-and-swap the u32 at byte `off` (as [`Self::cmpxchg_u16`]).
    fn cmpxchg_u32(&self, off: usize, cur: u32, new: u32) -> Result<u32, u32>;
    /// Atomically AND `bits` into the u16 at byte `off`; the old value.
    fn fetch_and_u16(&self, off: usize, bits: u16) -> u16;
    /// Atomically OR `bits` into the u16 at byte `off`; the old value.
    fn fetch_or_u16(&self, off: usize, bits: u16) -> u16;
    /// Copy `len` bytes from byte `src_off` of `src` to byte `dst_off` of
    /// `self` (the frames may be the same; the ranges may overlap).
    fn copy_from(&self, dst_off: usize, src: &Self, src_off: usize, len: usize);
}

/// Page-table memory as grant operations use it: the frame table's
/// [`PageMem`], and where the frames it frees go.
pub trait GrantMem: PageMem {
    /// Give a frame the frame table freed back to the allocator.
    fn free_frame(&mut self, mfn: u64);
}

/// What grant-table operations need from the machine beyond the caller's
/// domain and memory.
pub trait GrantHost {
    /// Page-table memory, lent with the frame table.
    type Mem: GrantMem;
    /// A shared machine frame.
    type Frame: SharedFrame;
    /// Whether a domain with this id exists.
    fn exists(&self, domid: u16) -> bool;
    /// Run `f` on the domain `domid`, never the caller's own (`None` if it
    /// does not exist); `f` gets the host back to reach the machine.
    fn with_other<R>(&mut self, domid: u16, f: impl FnOnce(&mut Self, &mut Domain) -> R) -> Option<R>;
    /// The smallest domid in use that is at least `from`.
    fn next_domid_from(&self, from: u16) -> Option<u16>;
    /// Run `f` with the frame table locked and the page-table memory
    /// (`None` before the frame table exists).
    fn frame_table<R>(&mut self, f: impl FnOnce(&mut FrameTable<'_>, &mut Self::Mem) -> R) -> Option<R>;
    /// The shared frame `mfn` (`None` outside the hypervisor's reach).
    fn frame(&self, mfn: u64) -> Option<Self::Frame>;
    /// A zeroed frame for a grant table (`None`: out of memory).
    fn alloc_frame(&mut self) -> Option<u64>;
    /// Give a frame back to the allocator (outside the frame table's lock).
    fn free_frame(&mut self, mfn: u64);
    /// Record `mfn -> pfn` in the M2P.
    fn set_m2p(&mut self, mfn: u64, pfn: u64);
    /// The caller's L1 table and index mapping `va` (its kernel tables).
    fn l1_slot(&self, va: u64) -> Option<(u64, usize)>;
    /// Who `d` is for the frame table (its domid and I/O privilege).
    fn who(&self, d: &Domain) -> Who;
    /// Finish the devalidations `owner`'s earlier calls left pending
    /// (-ERESTART if some remain).
    fn drain_pending(&mut self, owner: u16) -> Result<(), i64>;
    /// Drop this CPU's translation of `va`.
    fn invlpg(&mut self, va: u64);
    /// Flush this CPU's whole TLB.
    fn flush_tlb(&mut self);
    /// Whether the current hypercall has run long enough to continue later.
    fn preempt_due(&mut self) -> bool;
    /// Another domain may have become runnable: let the scheduler look.
    fn kick(&mut self);
    /// A line on the hypervisor console.
    fn log(&mut self, line: core::fmt::Arguments<'_>);
}

/// Byte offsets in a v1 grant entry.
const ENTRY_FLAGS: usize = 0;
const ENTRY_FRAME: usize = 4;

fn nr_grant_entries(d: &Domain) -> u32 {
    d.grant.nr_frames * ENTRIES_PER_FRAME
}

/// Whether a `dom` field names the caller (DOMID_SELF or its own id).
fn is_self(d: &Domain, dom: u16) -> bool {
    dom == xen_public::DOMID_SELF || dom == d.domid
}

/// Where grant entry `gref` (8-byte v1 entries) lives: its grant frame
/// and byte offset, or `None` past the domain's grant table.
fn entry_at<H: GrantHost>(h: &H, d: &Domain, gref: u32) -> Option<(H::Frame, usize)> {
    if gref >= nr_grant_entries(d) {
        return None;
    }
    let frame = *d.grant.frames.get((gref / ENTRIES_PER_FRAME) as usize)?;
    Some((h.frame(frame)?, (gref % ENTRIES_PER_FRAME) as usize * 8))
}

/// `(domid, frame)` of grant entry `gref` (`None` past the grant table).
fn grant_entry<H: GrantHost>(h: &H, d: &Domain, gref: u32) -> Option<(u16, u64)> {
    let (f, at) = entry_at(h, d, gref)?;
    let head = f.load_u32(at + ENTRY_FLAGS);
    Some(((head >> 16) as u16, u64::from(f.load_u32(at + ENTRY_FRAME))))
}

/// The flags of grant entry `gref` (0 past the grant table).
fn grant_flags<H: GrantHost>(h: &H, d: &Domain, gref: u32) -> u16 {
    entry_at(h, d, gref).map_or(0, |(f, at)| f.load_u16(at + ENTRY_FLAGS))
}

/// Set the pin flags on the entry at `at` with one compare-and-swap that
/// also checks its flags and domid (Xen's `_set_status_v1`, five tries):
/// the flags this added.
fn set_pin_flags(entry: &impl SharedFrame, at: usize, mapper: u16, readonly: bool, already: bool) -> Result<u16, i16> {
    let mut cur = entry.load_u32(at + ENTRY_FLAGS);
    for _ in 0..5 {
        let (flags, domid) = (cur as u16, (cur >> 16) as u16);
        let new = grant::pin_flags(flags, domid, mapper, readonly, already)?;
        match entry.cmpxchg_u32(at + ENTRY_FLAGS, cur, (cur & 0xffff_0000) | u32::from(new)) {
            Ok(_) => return Ok(new & !flags),
            Err(now) => cur = now,
        }
    }
    Err(gntst::GENERAL_ERROR)
}

/// Pin grant `gref` of `d` for `readonly` or writable use by `mapper`:
/// take the pin (only the pinning domain may add pins, counts bounded),
/// set the flags (checked in the same swap), and only then read the frame
/// (at the first pin; later pins use the one taken then): read earlier, it
/// could be one the granter revoked and replaced between the read and the
/// swap. The granter must own the frame (Xen's `get_paged_frame`: else
/// GNTST_bad_page, and the flags this set go).
fn grant_pin<H: GrantHost>(h: &mut H, d: &mut Domain, gref: u32, mapper: u16, readonly: bool) -> Result<u64, i16> {
    let mut pin = d.grant.pins[gref as usize];
    let already = pin.pinned();
    pin.acquire(mapper, readonly)?;
    let (entry, at) = entry_at(h, d, gref).ok_or(gntst::BAD_GNTREF)?;
    let added = set_pin_flags(&entry, at, mapper, readonly, already)?;
    if !already {
        pin.frame = u64::from(entry.load_u32(at + ENTRY_FRAME));
    }
    let owner = h.frame_table(|ft, _| ft.info(pin.frame).map(|f| f.owner)).flatten();
    if owner != Some(d.domid) {
        entry.fetch_and_u16(at + ENTRY_FLAGS, !added);
        return Err(gntst::BAD_PAGE);
    }
    d.grant.pins[gref as usize] = pin;
    Ok(pin.frame)
}

/// Drop a pin and clear the flags no pin needs any more.
fn grant_unpin<H: GrantHost>(h: &H, d: &mut Domain, gref: u32, readonly: bool) {
    if gref >= nr_grant_entries(d) {
        return;
    }
    let p = &mut d.grant.pins[gref as usize];
    p.release(readonly);
    let clear = p.flags_to_clear();
    if let Some((f, at)) = entry_at(h, d, gref) {
        f.fetch_and_u16(at + ENTRY_FLAGS, !clear.bits());
    }
}

/// Run `f` on the granting domain `dom`: the caller itself or another
/// domain (`None` if it does not exist).
fn with_granter<H: GrantHost, R>(h: &mut H, d: &mut Domain, dom: u16, f: impl FnOnce(&mut H, &mut Domain) -> R) -> Option<R> {
    if dom == d.domid { Some(f(h, d)) } else { h.with_other(dom, f) }
}

/// Pin `gref` of `dom` for the caller: the granted frame.
fn pin_for<H: GrantHost>(h: &mut H, d: &mut Domain, dom: u16, gref: u32, readonly: bool) -> Result<u64, i16> {
    let mapper = d.domid;
    with_granter(h, d, dom, |h, g| {
        if gref >= nr_grant_entries(g) {
            return Err(gntst::BAD_GNTREF);
        }
        grant_pin(h, g, gref, mapper, readonly)
    })
    .unwrap_or(Err(gntst::BAD_DOMAIN))
}

/// Drop a pin taken by [`pin_for`] (nothing if the granter is gone).
fn unpin_for<H: GrantHost>(h: &mut H, d: &mut Domain, dom: u16, gref: u32, readonly: bool) {
    with_granter(h, d, dom, |h, g| grant_unpin(h, g, gref, readonly));
}

/// Domain destruction: drop the pins `dead` holds on others' grants and
/// the references of its device mappings (its host mappings' references
/// go with its page tables), so granters can revoke.
pub fn release_grants<H: GrantHost>(h: &mut H, caller: &mut Domain, dead: &mut Domain) {
    for handle in 0..grant::MAPTRACK as u32 {
        let Some(map) = dead.grant.maptrack.remove(handle) else { continue };
        if map.device {
            put_frame(h, dead.grant.mapped_frames[handle as usize], !map.readonly);
        }
        if map.dom != dead.domid {
            unpin_for(h, caller, map.dom, map.gref, map.readonly);
        }
    }
}

/// Domain destruction: every mapping of `dead`'s grants that another
/// domain still holds now names no granter, so a new domain that reuses
/// the id never sees those handles' unpins.
pub fn forget_granter<H: GrantHost>(h: &mut H, caller: &mut Domain, dead: u16) {
    caller.grant.maptrack.forget_granter(dead);
    let mut from = 0;
    while let Some(id) = h.next_domid_from(from) {
        if id != caller.domid {
            h.with_other(id, |_, o| o.grant.maptrack.forget_granter(dead));
        }
        match id.checked_add(1) {
            Some(n) => from = n,
            None => break,
        }
    }
}

/// Take a general reference on `frame` of `owner`, and a writable type
/// reference when `write` (what a device mapping or a copy holds).
fn get_frame(h: &mut impl GrantHost, frame: u64, owner: u16, write: bool) -> Result<(), i16> {
    h.frame_table(|ft, mem| {
        ft.get_page(frame, owner).map_err(|_| gntst::BAD_PAGE)?;
        if write && ft.get_page_type(mem, frame, PageType::Writable, Who::own(owner, false)).is_err() {
            ft.put_page(frame);
            return Err(gntst::GENERAL_ERROR);
        }
        Ok(())
    })
    .unwrap_or(Err(gntst::GENERAL_ERROR))
}

/// Drop what [`get_frame`] took.
fn put_frame(h: &mut impl GrantHost, frame: u64, write: bool) {
    h.frame_table(|ft, mem| {
        if write {
            ft.put_page_type(mem, frame);
        }
        ft.put_page(frame);
        ft.take_freed(|mfn| mem.free_frame(mfn));
    });
}

/// Whether `l1` is a validated L1 table of `domid`.
fn is_live_l1(ft: &FrameTable<'_>, l1: u64, domid: u16) -> bool {
    ft.info(l1).is_some_and(|f| f.ty == PageType::L1 && f.validated && f.owner == domid)
}

/// Install a host mapping of `frame` (owned by `dom`) at `host_addr` in
/// the caller's validated L1: the PTE's references are taken through the
/// frame table like any other L1 entry's.
fn map_host(h: &mut impl GrantHost, d: &Domain, dom: u16, frame: u64, host_addr: u64, readonly: bool) -> i16 {
    if !crate::mm::guest_walk::guest_va_ok(host_addr) {
        return gntst::GENERAL_ERROR;
    }
    // Present, user, accessed; writable and dirty unless read-only.
    let flags = PteFlags::PRESENT | PteFlags::USER | PteFlags::ACCESSED;
    let flags = if readonly { flags } else { flags | PteFlags::RW | PteFlags::DIRTY };
    let pte = (frame << 12) | flags.bits();
    let Some((l1, idx)) = h.l1_slot(host_addr) else { return gntst::GENERAL_ERROR };
    let who = Who { pg: dom, ..h.who(d) };
    let done = h.frame_table(|ft, mem| {
        if !is_live_l1(ft, l1, d.domid) {
            return false;
        }
        let old = mem.read(l1, idx);
        if ft.get_entry(mem, l1, 1, pte, who).is_err() {
            return false;
        }
        mem.write(l1, idx, pte);
        ft.put_entry(mem, l1, 1, old);
        ft.take_freed(|mfn| mem.free_frame(mfn));
        true
    });
    if done != Some(true) {
        return gntst::GENERAL_ERROR;
    }
    h.invlpg(host_addr);
    gntst::OKAY
}

/// Remove the host mapping of `frame` at `host_addr`, only if the PTE
/// there still maps it (Xen's `replace_grant_pv_mapping`).
fn unmap_host(h: &mut impl GrantHost, d: &Domain, frame: u64, host_addr: u64) -> i16 {
    let Some((l1, idx)) = h.l1_slot(host_addr) else { return gntst::GENERAL_ERROR };
    let done = h.frame_table(|ft, mem| {
        let cur = mem.read(l1, idx);
        if !is_live_l1(ft, l1, d.domid) || !PteFlags::of(cur).contains(PteFlags::PRESENT) || pte_maddr(cur) >> 12 != frame {
            return false;
        }
        mem.write(l1, idx, 0);
        ft.put_entry(mem, l1, 1, cur);
        ft.take_freed(|mfn| mem.free_frame(mfn));
        true
    });
    if done != Some(true) {
        return gntst::GENERAL_ERROR;
    }
    // The whole TLB, not the one page: the same L1 may be linked at other
    // addresses whose translations of the frame are cached too. Only the
    // caller (one vCPU, on this CPU) maps through this L1's PTE, and its
    // pin is dropped after this, when the granter may take the frame back
    // (Xen flushes before `unmap_common_complete` the same way).
    h.flush_tlb();
    gntst::OKAY
}

/// GNTTABOP_map_grant_ref, as Xen's `map_grant_ref`.
fn gnttab_map(h: &mut impl GrantHost, d: &mut Domain, a: &mut GnttabMapGrantRef) -> i16 {
    let (host_addr, flags, gref, dom) = (a.host_addr, GntmapFlags::from_bits_retain(a.flags), a.ref_, a.dom);
    let (host, device) = (flags.contains(GntmapFlags::HOST_MAP), flags.contains(GntmapFlags::DEVICE_MAP));
    if !host && !device {
        return gntst::BAD_GNTREF;
    }
    // As Xen (`rcu_lock_domain_by_id`): a real domain id, not DOMID_SELF.
    if dom == xen_public::DOMID_SELF || (dom != d.domid && !h.exists(dom)) {
        return gntst::BAD_DOMAIN;
    }
    if flags.contains(GntmapFlags::CONTAINS_PTE) {
        // Optional in this ABI version; not supported.
        return gntst::GENERAL_ERROR;
    }
    let readonly = flags.contains(GntmapFlags::READONLY);
    let frame = match pin_for(h, d, dom, gref, readonly) {
        Ok(f) => f,
        Err(s) => return s,
    };
    let mut status = if device { get_frame(h, frame, dom, !readonly).err().unwrap_or(gntst::OKAY) } else { gntst::OKAY };
    if status == gntst::OKAY && host {
        status = map_host(h, d, dom, frame, host_addr, readonly);
        if status != gntst::OKAY && device {
            put_frame(h, frame, !readonly);
        }
    }
    if status != gntst::OKAY {
        unpin_for(h, d, dom, gref, readonly);
        return status;
    }
    let map = Mapping { dom, gref, host_addr: if host { host_addr } else { 0 }, device, readonly };
    let Some(handle) = d.grant.maptrack.insert(map) else {
        if host {
            unmap_host(h, d, frame, host_addr);
        }
        if device {
            put_frame(h, frame, !readonly);
        }
        unpin_for(h, d, dom, gref, readonly);
        return gntst::NO_DEVICE_SPACE;
    };
    d.grant.mapped_frames[handle as usize] = frame;
    a.handle = handle;
    a.dev_bus_addr = if device { frame << 12 } else { 0 };
    gntst::OKAY
}

/// GNTTABOP_unmap_grant_ref, as Xen's `unmap_common`: a non-zero
/// `host_addr` removes the host mapping (only if its PTE still maps the
/// granted frame), a non-zero `dev_bus_addr` the device mapping; the pin
/// and the handle go when neither part is left. `host_addr` 0 on a host
/// mapping leaves it in place (status okay, as Xen).
fn gnttab_unmap(h: &mut impl GrantHost, d: &mut Domain, a: &mut GnttabUnmapGrantRef) -> i16 {
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
        let s = unmap_host(h, d, frame, host_addr);
        if s != gntst::OKAY {
            return s;
        }
        map.host_addr = 0;
    }
    if dev_bus_addr != 0 && map.device {
        put_frame(h, frame, !map.readonly);
        map.device = false;
    }
    if map.host_addr != 0 || map.device {
        d.grant.maptrack.update(handle, map);
        return gntst::OKAY;
    }
    d.grant.maptrack.remove(handle);
    unpin_for(h, d, map.dom, map.gref, map.readonly);
    gntst::OKAY
}

/// GNTTABOP_setup_table: grow the caller's table to `nr_frames` (never
/// shrink it) and list its first `nr_frames` frames at `frame_list`.
fn gnttab_setup_table(h: &mut impl GrantHost, d: &mut Domain, mem: &impl GuestAccess, a: &mut GnttabSetupTable) -> i16 {
    if !is_self(d, a.dom) {
        return gntst::BAD_DOMAIN;
    }
    let nr = a.nr_frames;
    if nr > MAX_FRAMES {
        return gntst::GENERAL_ERROR;
    }
    while d.grant.nr_frames < nr {
        let Some(f) = h.alloc_frame() else { return gntst::GENERAL_ERROR };
        let domid = d.domid;
        h.frame_table(|ft, _| {
            let _ = ft.share_with_guest(f, domid);
        });
        d.grant.frames[d.grant.nr_frames as usize] = f;
        d.grant.nr_frames += 1;
    }
    let list = a.frame_list;
    for i in 0..nr as usize {
        if mem.write(list.wrapping_add(i as u64 * 8), &d.grant.frames[i].to_le_bytes()).is_err() {
            return gntst::GENERAL_ERROR;
        }
    }
    gntst::OKAY
}

/// A grant a copy pinned: the granter and the reference.
type CopyPin = Option<(u16, u32)>;

/// One side of a copy: the machine frame, after checking the grant (the
/// granter must own the frame) or the frame's ownership, with a general
/// reference on it and, for a destination, a writable type reference (a
/// page table or descriptor page can never be written by a copy).
fn copy_side(h: &mut impl GrantHost, d: &mut Domain, is_gref: bool, v: u64, dom: u16, write: bool) -> Result<(u64, CopyPin), i16> {
    if is_gref {
        let dom = if dom == xen_public::DOMID_SELF { d.domid } else { dom };
        let gref = v as u32;
        let frame = pin_for(h, d, dom, gref, !write)?;
        if let Err(s) = get_frame(h, frame, dom, write) {
            unpin_for(h, d, dom, gref, !write);
            return Err(s);
        }
        return Ok((frame, Some((dom, gref))));
    }
    // As Xen: only DOMID_SELF (or the caller's id) may name a frame.
    if !is_self(d, dom) {
        return Err(if h.exists(dom) { gntst::PERMISSION_DENIED } else { gntst::BAD_DOMAIN });
    }
    get_frame(h, v, d.domid, write)?;
    Ok((v, None))
}

/// Drop what [`copy_side`] took.
fn copy_release(h: &mut impl GrantHost, d: &mut Domain, frame: u64, gref: CopyPin, write: bool) {
    put_frame(h, frame, write);
    if let Some((dom, g)) = gref {
        unpin_for(h, d, dom, g, !write);
    }
}

/// GNTTABOP_copy: bytes from one frame to another, each named by a grant
/// (GNTCOPY_source_gref / GNTCOPY_dest_gref) or, for the caller's own, by
/// frame number; both ranges within their page.
fn gnttab_copy(h: &mut impl GrantHost, d: &mut Domain, a: &mut GnttabCopy) -> i16 {
    let (src_off, dst_off, len, flags) = (a.source.offset, a.dest.offset, a.len, a.flags);
    if let Err(s) = grant::copy_bounds(src_off, dst_off, len) {
        return s;
    }
    let (src, sg) = match copy_side(h, d, flags & GNTCOPY_SOURCE_GREF != 0, a.source.u, a.source.domid, false) {
        Ok(v) => v,
        Err(s) => return s,
    };
    let (dst, dg) = match copy_side(h, d, flags & GNTCOPY_DEST_GREF != 0, a.dest.u, a.dest.domid, true) {
        Ok(v) => v,
        Err(s) => {
            copy_release(h, d, src, sg, false);
            return s;
        }
    };
    // Both ranges lie within one frame each (bounds checked), the frames
    // are referenced (and the destination typed writable) for the copy.
    let status = match (h.frame(src), h.frame(dst)) {
        (Some(s), Some(t)) => {
            t.copy_from(usize::from(dst_off), &s, usize::from(src_off), usize::from(len));
            gntst::OKAY
        }
        _ => gntst::BAD_PAGE,
    };
    copy_release(h, d, dst, dg, true);
    copy_release(h, d, src, sg, false);
    status
}

/// Receive a transferred frame into `e` through its entry `gref`, which
/// must accept a transfer from `from` (Xen's gnttab_prepare_for_transfer):
/// the frame becomes `e`'s, its number goes into the entry, and the entry
/// is marked committed and completed.
fn receive_transfer(h: &mut impl GrantHost, e: &mut Domain, from: u16, gref: u32, mfn: u64) -> i16 {
    // Exactly an accept_transfer entry with no flag set yet (so not already
    // committed), as Xen's compare-and-swap.
    let accept = GrantType::AcceptTransfer.bits();
    let committing = GtfFlags::TRANSFER_COMMITTED.with_type(GrantType::AcceptTransfer);
    if e.nr_pages >= e.max_pages || gref >= nr_grant_entries(e) {
        return gntst::GENERAL_ERROR;
    }
    let (Some((domid, want_pfn)), Some((entry, at))) = (grant_entry(h, e, gref), entry_at(h, e, gref)) else {
        return gntst::GENERAL_ERROR;
    };
    let committed = domid == from && entry.cmpxchg_u16(at + ENTRY_FLAGS, accept, committing).is_ok();
    let edom = e.domid;
    if !committed || h.frame_table(|ft, _| ft.assign(mfn, edom).is_ok()) != Some(true) {
        return gntst::GENERAL_ERROR;
    }
    e.nr_pages += 1;
    h.set_m2p(mfn, want_pfn);
    entry.store_u32(at + ENTRY_FRAME, mfn as u32);
    entry.fetch_or_u16(at + ENTRY_FLAGS, GtfFlags::TRANSFER_COMPLETED.bits());
    gntst::OKAY
}

/// GNTTABOP_transfer: give frame `mfn` (which only its allocation may
/// reference) to domain `domid` through its grant `ref`. As in Xen, once
/// the frame has left the caller a later failure frees it.
fn gnttab_transfer(h: &mut impl GrantHost, d: &mut Domain, a: &mut GnttabTransfer) -> i16 {
    let (mfn, dom, gref) = (a.mfn, a.domid, a.ref_);
    let from = d.domid;
    if d.is_special_frame(mfn) || h.frame_table(|ft, mem| ft.release(mem, mfn, from)) != Some(true) {
        return gntst::BAD_PAGE;
    }
    d.nr_pages -= 1;
    let status = with_granter(h, d, dom, |h, e| receive_transfer(h, e, from, gref, mfn)).unwrap_or(gntst::BAD_DOMAIN);
    if status != gntst::OKAY {
        h.free_frame(mfn);
    } else if dom != from {
        h.kick();
    }
    status
}

/// GNTTABOP_query_size: the caller's table size and its limit.
fn gnttab_query_size(d: &Domain, a: &mut GnttabQuerySize) -> i16 {
    if !is_self(d, a.dom) {
        return gntst::BAD_DOMAIN;
    }
    a.nr_frames = d.grant.nr_frames;
    a.max_nr_frames = MAX_FRAMES;
    gntst::OKAY
}

/// GNTTABOP_dump_table: the privileged domain's diagnostic on the
/// hypervisor console.
fn gnttab_dump_table(h: &mut impl GrantHost, d: &Domain, a: &mut GnttabDumpTable) -> i16 {
    if !is_self(d, a.dom) {
        return gntst::BAD_DOMAIN;
    }
    for g in 0..nr_grant_entries(d) {
        let Some((domid, frame)) = grant_entry(h, d, g) else { continue };
        let flags = grant_flags(h, d, g);
        if flags != 0 {
            let pin = d.grant.pins[g as usize];
            h.log(format_args!("grant-table d{} ref {g}: flags {flags:#06x} domid {domid} frame {frame:#x} pins {pin:?}", d.domid));
        }
    }
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

/// Run `op` on each of the `count` structures at `uop` (RSI, count in
/// EDX), each copied in, given its status and copied back; continued in a
/// re-issued hypercall (RSI and RDX advanced past the ones done) after
/// [`GNTTAB_PER_CALL`] of them or when preemption is due.
fn each<H: GrantHost, G: GuestAccess, T: GntOp>(
    h: &mut H,
    d: &mut Domain,
    mem: &G,
    regs: &mut CpuUserRegs,
    mut op: impl FnMut(&mut H, &mut Domain, &G, &mut T) -> i16,
) -> Ret {
    let (uop, count) = (regs.rsi, regs.rdx as u32 as u64);
    let size = core::mem::size_of::<T>() as u64;
    for i in 0..count {
        let at = uop.wrapping_add(i * size);
        if i == GNTTAB_PER_CALL || (i > 0 && h.preempt_due()) {
            regs.rsi = at;
            regs.rdx = count - i;
            return continue_later(regs, xen_public::hypercall::GRANT_TABLE_OP) as i64;
        }
        let Ok(mut a) = mem.copy_from::<T>(at) else { return -EFAULT };
        let status = op(h, d, mem, &mut a);
        a.set_status(status);
        if mem.copy_to(at, &a).is_err() {
            return -EFAULT;
        }
    }
    0
}

/// `grant_table_op(cmd, uop, count)` (RDI, RSI, RDX of `regs`) for the
/// caller `d`, whose memory is `mem`: per-op status in each structure;
/// the hypercall returns 0 when the array could be read and written.
pub fn grant_table_op<H: GrantHost>(h: &mut H, d: &mut Domain, mem: &impl GuestAccess, regs: &mut CpuUserRegs) -> Ret {
    let (cmd, count) = (regs.rdi as u32, regs.rdx as u32);
    let cmd = u64::from(cmd);
    if matches!(cmd, GNTTABOP_SET_VERSION | GNTTABOP_GET_VERSION) {
        return if count == 1 { version_op(d, mem, cmd, regs.rsi) } else { -EINVAL };
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
    if let Err(e) = h.drain_pending(d.domid) {
        return e;
    }
    match cmd {
        GNTTABOP_MAP_GRANT_REF => each(h, d, mem, regs, |h, d, _, a| gnttab_map(h, d, a)),
        GNTTABOP_UNMAP_GRANT_REF => each(h, d, mem, regs, |h, d, _, a| gnttab_unmap(h, d, a)),
        GNTTABOP_SETUP_TABLE => each(h, d, mem, regs, gnttab_setup_table),
        GNTTABOP_DUMP_TABLE => each(h, d, mem, regs, |h, d, _, a| gnttab_dump_table(h, d, a)),
        GNTTABOP_TRANSFER => each(h, d, mem, regs, |h, d, _, a| gnttab_transfer(h, d, a)),
        GNTTABOP_COPY => each(h, d, mem, regs, |h, d, _, a| gnttab_copy(h, d, a)),
        _ => each(h, d, mem, regs, |_, d, _, a| gnttab_query_size(d, a)),
    }
}

/// GNTTABOP_set_version (only version 1 exists here) and
/// GNTTABOP_get_version: one structure, the hypercall's own result.
fn version_op(d: &Domain, mem: &impl GuestAccess, cmd: u64, uop: u64) -> Ret {
    if cmd == GNTTABOP_SET_VERSION {
        let Ok(a) = mem.copy_from::<GnttabSetVersion>(uop) else { return -EFAULT };
        return if a.version == 1 { 0 } else { -ENOSYS };
    }
    let Ok(mut a) = mem.copy_from::<GnttabGetVersion>(uop) else { return -EFAULT };
    if !is_self(d, a.dom) {
        return -ESRCH;
    }
    a.version = 1;
    rc(mem.copy_to(uop, &a))
}
