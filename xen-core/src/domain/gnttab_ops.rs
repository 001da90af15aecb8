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
use super::host::{CpuTlb, Domains, FrameHost, Kick};
use super::vcpu::CpuUserRegs;
use super::vcpu_ops::continue_later;
use crate::grant::{self, ENTRIES_PER_FRAME, MAX_FRAMES, Mapping, gntst};
use crate::mm::Mfn;
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

/// What grant-table operations need from the machine beyond the caller's
/// domain and memory.
pub trait GrantHost: FrameHost + Domains + CpuTlb + Kick {
    /// A shared machine frame.
    type Frame: SharedFrame;
    /// Run `f` on the domain `domid`, never the caller's own (`None` if it
    /// does not exist); `f` gets the host back to reach the machine.
    fn with_other<R>(&mut self, domid: u16, f: impl FnOnce(&mut Self, &mut Domain) -> R) -> Option<R>;
    /// The shared frame `mfn` (`None` outside the hypervisor's reach).
    fn frame(&self, mfn: u64) -> Option<Self::Frame>;
    /// The machine address of the calling vCPU's kernel L4 (its
    /// `guest_table`; `None`: no calling vCPU, as in domain destruction).
    fn kernel_l4_maddr(&self) -> Option<u64>;
    /// Finish the devalidations `owner`'s earlier calls left pending
    /// (-ERESTART if some remain).
    fn drain_pending(&mut self, owner: u16) -> Result<(), i64>;
    /// A line on the hypervisor console.
    fn log(&mut self, line: core::fmt::Arguments<'_>);
    /// A line about a guest's own mistake (Xen's `gdprintk`): a guest can
    /// repeat it at will, so the live host keeps it off the console
    /// unless debugging (by default it goes where [`log`](Self::log) does).
    fn guest_error(&mut self, line: core::fmt::Arguments<'_>) {
        self.log(line);
    }
    /// A fresh page of active entries for a new grant frame (`None` when
    /// memory is short).
    fn alloc_active(&mut self) -> Option<grant::ActiveFrame> {
        grant::ActiveFrame::new()
    }
}

/// Byte offsets in a v1 grant entry.
const ENTRY_FLAGS: usize = 0;
const ENTRY_FRAME: usize = 4;

fn nr_grant_entries(d: &Domain) -> u32 {
    d.grant.nr_entries()
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
    let frame = *d.grant.frames().get((gref / ENTRIES_PER_FRAME) as usize)?;
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
    let mut pin = d.grant.pin(gref).ok_or(gntst::BAD_GNTREF)?;
    let already = pin.pinned();
    // As Xen's map and copy paths: the entry's flags are checked and set
    // only by the first pin, or by the first writable one; any other pin
    // rides on the flags and frame those took.
    let set_status = !already || (!readonly && pin.writers == 0);
    pin.acquire(mapper, readonly)?;
    let (entry, at) = entry_at(h, d, gref).ok_or(gntst::BAD_GNTREF)?;
    let added = if set_status { set_pin_flags(&entry, at, mapper, readonly, already)? } else { 0 };
    if !already {
        pin.frame = u64::from(entry.load_u32(at + ENTRY_FRAME));
    }
    let owner = h.with_ft(|ft, _| ft.info(pin.frame).map(|f| f.owner)).flatten();
    if owner != Some(d.domid) {
        entry.fetch_and_u16(at + ENTRY_FLAGS, !added);
        return Err(gntst::BAD_PAGE);
    }
    d.grant.set_pin(gref, pin);
    Ok(pin.frame)
}

/// Drop a pin and clear the flags no pin needs any more.
fn grant_unpin<H: GrantHost>(h: &H, d: &mut Domain, gref: u32, readonly: bool) {
    let Some(mut p) = d.grant.pin(gref) else { return };
    p.release(readonly);
    d.grant.set_pin(gref, p);
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
    h.with_ft(|ft, h| {
        let mem = &mut h.page_mem();
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
    h.with_ft(|ft, h| {
        let mem = &mut h.page_mem();
        if write {
            ft.put_page_type(mem, frame);
        }
        ft.put_page(frame);
        ft.take_freed(|mfn| h.free_frame(Mfn(mfn)));
    });
}

/// The caller's L1 table and index mapping `va` (its kernel tables).
fn caller_l1_slot(h: &impl GrantHost, va: u64) -> Option<(u64, usize)> {
    super::mmu_ops::l1_slot(&h.page_mem(), h.kernel_l4_maddr()?, va)
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
    let Some((l1, idx)) = caller_l1_slot(h, host_addr) else { return gntst::GENERAL_ERROR };
    let who = Who { pg: dom, ..super::mmu_ops::who(d) };
    let done = h.with_ft(|ft, h| {
        let mem = &mut h.page_mem();
        if !is_live_l1(ft, l1, d.domid) {
            return false;
        }
        let old = mem.read(l1, idx);
        if ft.get_entry(mem, l1, 1, pte, who).is_err() {
            return false;
        }
        mem.write(l1, idx, pte);
        ft.put_entry(mem, l1, 1, old);
        ft.take_freed(|mfn| h.free_frame(Mfn(mfn)));
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
    let Some((l1, idx)) = caller_l1_slot(h, host_addr) else { return gntst::GENERAL_ERROR };
    let done = h.with_ft(|ft, h| {
        let mem = &mut h.page_mem();
        let cur = mem.read(l1, idx);
        if !is_live_l1(ft, l1, d.domid) || !PteFlags::of(cur).contains(PteFlags::PRESENT) || pte_maddr(cur) >> 12 != frame {
            return false;
        }
        mem.write(l1, idx, 0);
        ft.put_entry(mem, l1, 1, cur);
        ft.take_freed(|mfn| h.free_frame(Mfn(mfn)));
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
    // TRC_MEM_PAGE_GRANT_UNMAP names the granting domain (`map->domid`),
    // once the handle is known to be mapped, whatever the unmap's outcome
    // (Xen's `unmap_common`).
    h.trace(&xen_public::trace::Event::GrantUnmap { domid: u32::from(map.dom) });
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

/// Grow `t`'s table to `nr` frames, all or nothing (Xen's
/// `gnttab_grow_table`): every new shared frame and its page of active
/// entries are allocated before any is shared with the domain, and a
/// failure gives back what this call took.
fn grow_table(h: &mut impl GrantHost, t: &mut Domain, nr: u32) -> Result<(), ()> {
    let have = t.grant.nr_frames();
    let mut new: [Option<(u64, grant::ActiveFrame)>; MAX_FRAMES as usize] = core::array::from_fn(|_| None);
    let mut failed = false;
    for slot in new.iter_mut().take(nr.saturating_sub(have) as usize) {
        let Some(Mfn(f)) = h.alloc_frame() else {
            failed = true;
            break;
        };
        let Some(active) = h.alloc_active() else {
            h.free_frame(Mfn(f));
            failed = true;
            break;
        };
        *slot = Some((f, active));
    }
    if failed {
        for (f, _) in new.into_iter().flatten() {
            h.free_frame(Mfn(f));
        }
        h.guest_error(format_args!("Allocation failure when expanding d{} grant table", t.domid));
        return Err(());
    }
    let domid = t.domid;
    for (f, active) in new.into_iter().flatten() {
        h.with_ft(|ft, _| {
            let _ = ft.share_with_guest(f, domid);
        });
        t.grant.push_frame(f, active);
    }
    Ok(())
}

/// GNTTABOP_setup_table (one structure, as Xen's `gnttab_setup_table`):
/// grow the table of `dom` (the caller, or any domain for the privileged
/// one) to `nr_frames` frames, never shrinking it, and list its first
/// `nr_frames` frames at `frame_list`. A list outside guest addresses is
/// -EFAULT for the whole call; a list entry that cannot be written is
/// GNTST_bad_virt_addr (the table has grown all the same).
fn gnttab_setup_table<H: GrantHost>(h: &mut H, d: &mut Domain, mem: &impl GuestAccess, uop: u64, count: u32) -> Ret {
    if count != 1 {
        return -EINVAL;
    }
    let Ok(mut a) = mem.copy_from::<GnttabSetupTable>(uop) else { return -EFAULT };
    let (nr, list) = (a.nr_frames, a.frame_list);
    if !crate::mm::guest_walk::guest_va_ok(list) {
        return -EFAULT;
    }
    let (privileged, caller) = (d.privileged, d.domid);
    let dom = if a.dom == xen_public::DOMID_SELF { d.domid } else { a.dom };
    let status = with_granter(h, d, dom, |h, t| {
        if !privileged && t.domid != caller {
            return gntst::PERMISSION_DENIED;
        }
        if nr > MAX_FRAMES {
            h.guest_error(format_args!("d{} is limited to {MAX_FRAMES} grant-table frames", t.domid));
            return gntst::GENERAL_ERROR;
        }
        if nr > t.grant.nr_frames() && grow_table(h, t, nr).is_err() {
            return gntst::GENERAL_ERROR;
        }
        let mut status = gntst::OKAY;
        for (i, f) in t.grant.frames()[..nr as usize].iter().enumerate() {
            if mem.write(list.wrapping_add(i as u64 * 8), &f.to_le_bytes()).is_err() {
                status = gntst::BAD_VIRT_ADDR;
            }
        }
        status
    });
    a.status = status.unwrap_or(gntst::BAD_DOMAIN);
    rc(mem.copy_to(uop, &a))
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
    if !committed || h.with_ft(|ft, _| ft.assign(mfn, edom).is_ok()) != Some(true) {
        return gntst::GENERAL_ERROR;
    }
    e.nr_pages += 1;
    h.set_m2p(Mfn(mfn), want_pfn);
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
    if d.is_special_frame(mfn) || h.with_ft(|ft, h| ft.release(&mut h.page_mem(), mfn, from)) != Some(true) {
        return gntst::BAD_PAGE;
    }
    d.nr_pages -= 1;
    let status = with_granter(h, d, dom, |h, e| receive_transfer(h, e, from, gref, mfn)).unwrap_or(gntst::BAD_DOMAIN);
    if status != gntst::OKAY {
        h.free_frame(Mfn(mfn));
    } else if dom != from {
        h.kick();
    }
    status
}

/// GNTTABOP_query_size (one structure, as Xen's `gnttab_query_size`):
/// the table size of `dom` (the caller, or any domain for the privileged
/// one) and its limit.
fn gnttab_query_size<H: GrantHost>(h: &mut H, d: &mut Domain, mem: &impl GuestAccess, uop: u64, count: u32) -> Ret {
    if count != 1 {
        return -EINVAL;
    }
    let Ok(mut a) = mem.copy_from::<GnttabQuerySize>(uop) else { return -EFAULT };
    let (privileged, caller) = (d.privileged, d.domid);
    let dom = if a.dom == xen_public::DOMID_SELF { d.domid } else { a.dom };
    match with_granter(h, d, dom, |_, t| (privileged || t.domid == caller).then(|| t.grant.nr_frames())) {
        None => a.status = gntst::BAD_DOMAIN,
        Some(None) => a.status = gntst::PERMISSION_DENIED,
        Some(Some(n)) => {
            a.nr_frames = n;
            a.max_nr_frames = MAX_FRAMES;
            a.status = gntst::OKAY;
        }
    }
    rc(mem.copy_to(uop, &a))
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
            let pin = d.grant.pin(g).unwrap_or_default();
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
gnt_op!(GnttabMapGrantRef, GnttabUnmapGrantRef, GnttabDumpTable, GnttabTransfer, GnttabCopy);

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
        // TRC_MEM_PAGE_GRANT_MAP: per mapping made, the granter (Xen's
        // `map_grant_ref` traces `op->dom` once the map succeeded).
        GNTTABOP_MAP_GRANT_REF => each(h, d, mem, regs, |h, d, _, a: &mut GnttabMapGrantRef| {
            let status = gnttab_map(h, d, a);
            if status == gntst::OKAY {
                h.trace(&xen_public::trace::Event::GrantMap { domid: u32::from(a.dom) });
            }
            status
        }),
        GNTTABOP_UNMAP_GRANT_REF => each(h, d, mem, regs, |h, d, _, a| gnttab_unmap(h, d, a)),
        GNTTABOP_SETUP_TABLE => gnttab_setup_table(h, d, mem, regs.rsi, count),
        GNTTABOP_DUMP_TABLE => each(h, d, mem, regs, |h, d, _, a| gnttab_dump_table(h, d, a)),
        GNTTABOP_TRANSFER => each(h, d, mem, regs, |h, d, _, a| gnttab_transfer(h, d, a)),
        GNTTABOP_COPY => {
            h.trace(&xen_public::trace::Event::GrantCopy { domid: u32::from(d.domid), count });
            each(h, d, mem, regs, |h, d, _, a| gnttab_copy(h, d, a))
        }
        _ => gnttab_query_size(h, d, mem, regs.rsi, count),
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

#[cfg(test)]
pub(crate) mod tests {
    //! A model machine: a frame table over 512 frames, page tables and
    //! frame bytes in maps, domains 1 (A, the usual mapper, with kernel
    //! tables), 2 (B, the usual granter) and 3 (C, a bystander).
    use super::*;
    use crate::domain::guest_mem::tests::FakeGuest;
    use crate::grant::{DEAD_GRANTER, Pin};
    use crate::mm::Mfn;
    use crate::mm::page_type::PageInfo;
    use std::boxed::Box;
    use std::cell::RefCell;
    use std::collections::{BTreeMap, HashMap};
    use std::rc::Rc;
    use std::string::{String, ToString};
    use std::vec::Vec;
    use zerocopy::{FromBytes, Immutable, IntoBytes};

    const A: u16 = 1;
    const B: u16 = 2;
    const C: u16 = 3;
    const DOM0: u16 = 0;
    const NR_MFNS: u64 = 512;
    /// Frames each domain owns: A 16..64, B 64..112, C 112..160.
    fn first_frame(dom: u16) -> u64 {
        16 + 48 * u64::from(dom - 1)
    }
    /// A's kernel tables: L4 16, L3 17, L2 18, L1 19 (mapping 0..2 MiB).
    const A_L4: u64 = 16;
    const A_L1: u64 = 19;
    /// Frames B grants in the tests.
    const B_FRAME: u64 = 70;
    const B_FRAME2: u64 = 71;
    /// A host address in A's L1 (index 5).
    const HOST: u64 = 0x5000;
    /// Where the op arrays go in the caller's memory.
    const UOP: u64 = 0x10_0000;

    const PERMIT: u16 = GrantType::PermitAccess.bits();
    const READONLY: u16 = GtfFlags::READONLY.bits();
    const READING: u16 = GtfFlags::READING.bits();
    const WRITING: u16 = GtfFlags::WRITING.bits();

    /// Grant frames' bytes by mfn.
    pub type Bytes = Rc<RefCell<HashMap<u64, Box<[u8; 4096]>>>>;

    /// A granting guest writing its entry between the hypervisor's read
    /// and its compare-and-swap.
    #[derive(Clone, Copy)]
    enum Race {
        /// Store this word once.
        Once(u32),
        /// Flip a harmless bit (GTF_PWT) before every swap.
        Forever,
    }

    /// A shared frame over [`Bytes`], with an optional racing guest.
    #[derive(Clone)]
    pub struct FakeFrame {
        bytes: Bytes,
        race: Rc<RefCell<Option<(u64, usize, Race)>>>,
        mfn: u64,
    }

    impl FakeFrame {
        /// Frame `mfn` of `bytes`, no guest racing on it.
        pub fn new(bytes: Bytes, mfn: u64) -> Self {
            FakeFrame { bytes, race: Rc::default(), mfn }
        }
        fn get<const N: usize>(&self, off: usize) -> [u8; N] {
            let mut b = self.bytes.borrow_mut();
            let page = b.entry(self.mfn).or_insert_with(|| Box::new([0; 4096]));
            page[off..off + N].try_into().unwrap()
        }
        fn put(&self, off: usize, v: &[u8]) {
            let mut b = self.bytes.borrow_mut();
            let page = b.entry(self.mfn).or_insert_with(|| Box::new([0; 4096]));
            page[off..off + v.len()].copy_from_slice(v);
        }
        fn racer_runs(&self, off: usize) {
            let mut race = self.race.borrow_mut();
            let Some((mfn, at, r)) = *race else { return };
            if (mfn, at) != (self.mfn, off) {
                return;
            }
            match r {
                Race::Once(v) => {
                    *race = None;
                    drop(race);
                    self.store_u32(off, v);
                }
                Race::Forever => {
                    drop(race);
                    self.store_u32(off, self.load_u32(off) ^ u32::from(GtfFlags::PWT.bits()));
                }
            }
        }
    }

    impl SharedFrame for FakeFrame {
        fn load_u16(&self, off: usize) -> u16 {
            u16::from_le_bytes(self.get(off))
        }
        fn load_u32(&self, off: usize) -> u32 {
            u32::from_le_bytes(self.get(off))
        }
        fn store_u32(&self, off: usize, v: u32) {
            self.put(off, &v.to_le_bytes());
        }
        fn cmpxchg_u16(&self, off: usize, cur: u16, new: u16) -> Result<u16, u16> {
            let now = self.load_u16(off);
            if now != cur {
                return Err(now);
            }
            self.put(off, &new.to_le_bytes());
            Ok(now)
        }
        fn cmpxchg_u32(&self, off: usize, cur: u32, new: u32) -> Result<u32, u32> {
            self.racer_runs(off);
            let now = self.load_u32(off);
            if now != cur {
                return Err(now);
            }
            self.store_u32(off, new);
            Ok(now)
        }
        fn fetch_and_u16(&self, off: usize, bits: u16) -> u16 {
            let old = self.load_u16(off);
            self.put(off, &(old & bits).to_le_bytes());
            old
        }
        fn fetch_or_u16(&self, off: usize, bits: u16) -> u16 {
            let old = self.load_u16(off);
            self.put(off, &(old | bits).to_le_bytes());
            old
        }
        fn copy_from(&self, dst_off: usize, src: &Self, src_off: usize, len: usize) {
            let data: Vec<u8> = (0..len).map(|i| src.get::<1>(src_off + i)[0]).collect();
            self.put(dst_off, &data);
        }
    }

    /// Page-table memory (shared by its handles).
    type PtMem = crate::mm::page_type::tests::TestMem;

    struct Machine {
        ft: FrameTable<'static>,
        mem: PtMem,
        bytes: Bytes,
        race: Rc<RefCell<Option<(u64, usize, Race)>>>,
        doms: BTreeMap<u16, Box<Domain>>,
        /// Frames alloc_frame hands out, last first.
        free: Vec<u64>,
        /// Each domain's kernel L4 (0: none).
        l4: HashMap<u16, u64>,
        /// The calling domain.
        current: u16,
        /// preempt_due answers `true` from this many calls on.
        preempt_after: Option<u32>,
        preempt_calls: u32,
        drain: Result<(), i64>,
        invlpgs: Vec<u64>,
        flushes: u32,
        kicks: u32,
        freed: Vec<u64>,
        m2p: HashMap<u64, u64>,
        log: Vec<String>,
        /// alloc_active hands out this many more pages of active entries
        /// (`None`: no limit).
        active_left: Option<u32>,
        /// Trace points passed, in order.
        traced: Vec<xen_public::trace::Event>,
    }

    impl GrantHost for Machine {
        type Frame = FakeFrame;
        fn with_other<R>(&mut self, domid: u16, f: impl FnOnce(&mut Self, &mut Domain) -> R) -> Option<R> {
            assert_ne!(domid, self.current, "with_other for the caller's own domain");
            let mut o = self.doms.remove(&domid)?;
            let r = f(self, &mut o);
            self.doms.insert(domid, o);
            Some(r)
        }
        fn frame(&self, mfn: u64) -> Option<FakeFrame> {
            (mfn < NR_MFNS).then(|| FakeFrame { bytes: self.bytes.clone(), race: self.race.clone(), mfn })
        }
        fn kernel_l4_maddr(&self) -> Option<u64> {
            self.l4.get(&self.current).map(|mfn| mfn << 12)
        }
        fn drain_pending(&mut self, _owner: u16) -> Result<(), i64> {
            self.drain
        }
        fn log(&mut self, line: core::fmt::Arguments<'_>) {
            self.log.push(line.to_string());
        }
        fn alloc_active(&mut self) -> Option<grant::ActiveFrame> {
            match &mut self.active_left {
                Some(0) => None,
                Some(n) => {
                    *n -= 1;
                    grant::ActiveFrame::new()
                }
                None => grant::ActiveFrame::new(),
            }
        }
    }

    impl Kick for Machine {
        fn kick(&mut self) {
            self.kicks += 1;
        }
    }

    impl FrameHost for Machine {
        fn trace(&mut self, ev: &xen_public::trace::Event) {
            self.traced.push(*ev);
        }
        type Pm = PtMem;
        fn page_mem(&self) -> PtMem {
            self.mem.clone()
        }
        fn with_ft<R>(&mut self, f: impl FnOnce(&mut FrameTable<'_>, &mut Self) -> R) -> Option<R> {
            // Out of the machine while `f` runs: a second lock finds none.
            let mut ft = core::mem::replace(&mut self.ft, FrameTable::new(&mut []));
            let r = f(&mut ft, self);
            self.ft = ft;
            Some(r)
        }
        fn alloc_frame(&mut self) -> Option<Mfn> {
            self.free.pop().map(Mfn)
        }
        fn free_frame(&mut self, mfn: Mfn) {
            self.freed.push(mfn.0);
        }
        fn set_m2p(&mut self, mfn: Mfn, pfn: u64) {
            self.m2p.insert(mfn.0, pfn);
        }
    }

    impl Domains for Machine {
        fn exists(&self, domid: u16) -> bool {
            self.doms.contains_key(&domid) || domid == self.current
        }
        fn next_domid_from(&self, from: u16) -> Option<u16> {
            self.doms.keys().copied().chain(core::iter::once(self.current)).filter(|&d| d >= from).min()
        }
    }

    impl CpuTlb for Machine {
        fn invlpg(&mut self, va: u64) {
            self.invlpgs.push(va);
        }
        fn flush_tlb(&mut self) {
            self.flushes += 1;
        }
        fn preempt_due(&mut self) -> bool {
            self.preempt_calls += 1;
            self.preempt_after.is_some_and(|n| self.preempt_calls > n)
        }
    }

    fn domain(domid: u16) -> Box<Domain> {
        let mut d = Box::new(Domain::empty(domid, domid == DOM0, Mfn(0)));
        d.nr_pages = 48;
        d.max_pages = 64;
        d
    }

    /// The model machine: A, B and C with their frames, A with validated
    /// kernel tables, B with a one-frame grant table.
    fn machine() -> Machine {
        let frames = Vec::leak(std::vec![PageInfo::FREE; NR_MFNS as usize]);
        let mut m = Machine {
            ft: FrameTable::new(frames),
            mem: PtMem::default(),
            bytes: Bytes::default(),
            race: Rc::default(),
            doms: BTreeMap::new(),
            free: (200..NR_MFNS).rev().collect(),
            l4: HashMap::new(),
            current: DOM0,
            preempt_after: None,
            preempt_calls: 0,
            drain: Ok(()),
            invlpgs: Vec::new(),
            flushes: 0,
            kicks: 0,
            freed: Vec::new(),
            m2p: HashMap::new(),
            log: Vec::new(),
            active_left: None,
            traced: Vec::new(),
        };
        for dom in [A, B, C] {
            for mfn in first_frame(dom)..first_frame(dom) + 48 {
                m.ft.assign(mfn, dom).unwrap();
            }
            m.doms.insert(dom, domain(dom));
        }
        m.doms.insert(DOM0, domain(DOM0));
        let table = (PteFlags::PRESENT | PteFlags::RW | PteFlags::USER | PteFlags::ACCESSED).bits();
        for (t, next) in [(A_L4, 17), (17, 18), (18, A_L1)] {
            m.mem.write(t, 0, (next << 12) | table);
        }
        m.ft.pin(&mut m.mem, A_L4, 4, Who::own(A, false)).unwrap();
        m.l4.insert(A, A_L4);
        let s = setup(&mut m, B, 1);
        assert_eq!(s.status, gntst::OKAY);
        m
    }

    /// Run `grant_table_op` as `caller` with `regs` and the memory `g`.
    fn call(m: &mut Machine, caller: u16, g: &FakeGuest, regs: &mut CpuUserRegs) -> Ret {
        let mut d = m.doms.remove(&caller).unwrap();
        m.current = caller;
        let r = grant_table_op(m, &mut d, g, regs);
        m.current = DOM0;
        m.doms.insert(caller, d);
        r
    }

    /// Memory with `bytes` bytes mapped from [`UOP`].
    fn guest_with(bytes: u64) -> FakeGuest {
        let g = FakeGuest::default();
        for va in (UOP..UOP + bytes.max(1)).step_by(4096) {
            g.map(va);
        }
        g
    }

    fn regs(cmd: u64, uop: u64, count: u64) -> CpuUserRegs {
        CpuUserRegs { rdi: cmd, rsi: uop, rdx: count, rip: 0x1002, ..Default::default() }
    }

    /// Run `cmd` on `ops` as `caller`: the result and the ops as written back.
    fn run<T: FromBytes + IntoBytes + Immutable + Clone>(m: &mut Machine, caller: u16, cmd: u64, ops: &[T]) -> (Ret, Vec<T>) {
        let size = core::mem::size_of::<T>() as u64;
        let g = guest_with(size * ops.len() as u64 + 4096);
        for (i, op) in ops.iter().enumerate() {
            g.copy_to(UOP + i as u64 * size, op).unwrap();
        }
        let r = call(m, caller, &g, &mut regs(cmd, UOP, ops.len() as u64));
        (r, (0..ops.len()).map(|i| g.copy_from(UOP + i as u64 * size).unwrap()).collect())
    }

    fn one<T: FromBytes + IntoBytes + Immutable + Clone>(m: &mut Machine, caller: u16, cmd: u64, op: T) -> T {
        let (r, out) = run(m, caller, cmd, &[op]);
        assert_eq!(r, 0, "the hypercall itself succeeds");
        out[0].clone()
    }

    fn setup(m: &mut Machine, dom: u16, nr_frames: u32) -> GnttabSetupTable {
        let op = GnttabSetupTable { dom: xen_public::DOMID_SELF, nr_frames, frame_list: UOP + 0x800, ..Default::default() };
        one(m, dom, GNTTABOP_SETUP_TABLE, op)
    }

    fn dom(m: &Machine, id: u16) -> &Domain {
        &m.doms[&id]
    }

    /// The shared entry `gref` of `granter`: (flags, domid, frame).
    fn entry(m: &Machine, granter: u16, gref: u32) -> (u16, u16, u32) {
        let (f, at) = entry_at(m, dom(m, granter), gref).unwrap();
        (f.load_u16(at), (f.load_u32(at) >> 16) as u16, f.load_u32(at + 4))
    }

    /// `granter` writes entry `gref`, as its guest would.
    fn grant(m: &mut Machine, granter: u16, gref: u32, to: u16, frame: u64, flags: u16) {
        let (f, at) = entry_at(m, dom(m, granter), gref).unwrap();
        f.store_u32(at, u32::from(flags) | u32::from(to) << 16);
        f.store_u32(at + 4, frame as u32);
    }

    fn map_op(dom: u16, gref: u32, flags: u32, host_addr: u64) -> GnttabMapGrantRef {
        GnttabMapGrantRef { host_addr, flags, ref_: gref, dom, ..Default::default() }
    }

    fn map(m: &mut Machine, caller: u16, granter: u16, gref: u32, flags: u32) -> GnttabMapGrantRef {
        one(m, caller, GNTTABOP_MAP_GRANT_REF, map_op(granter, gref, flags, HOST))
    }

    fn unmap(m: &mut Machine, caller: u16, handle: u32, host_addr: u64, dev_bus_addr: u64) -> i16 {
        one(m, caller, GNTTABOP_UNMAP_GRANT_REF, GnttabUnmapGrantRef { host_addr, dev_bus_addr, handle, ..Default::default() }).status
    }

    /// Everything a domain's grant state holds: table size, pins,
    /// maptrack, shared entries (flags, domid, frame).
    type GrantState = (u32, Vec<Pin>, Vec<Option<Mapping>>, Vec<(u16, u16, u32)>);

    /// A domain's [`GrantState`], to compare before/after.
    fn grant_state(m: &Machine, id: u16) -> GrantState {
        let d = dom(m, id);
        let entries = (0..nr_grant_entries(d)).map(|g| entry(m, id, g)).collect();
        let maps = (0..grant::MAPTRACK as u32).map(|h| d.grant.maptrack.get(h)).collect();
        (d.grant.nr_frames(), (0..d.grant.nr_entries()).map(|g| d.grant.pin(g).unwrap()).collect(), maps, entries)
    }

    fn frame_info(m: &Machine, mfn: u64) -> PageInfo {
        *m.ft.info(mfn).unwrap()
    }

    fn pte(frame: u64, rw: bool) -> u64 {
        let f = PteFlags::PRESENT | PteFlags::USER | PteFlags::ACCESSED;
        let f = if rw { f | PteFlags::RW | PteFlags::DIRTY } else { f };
        (frame << 12) | f.bits()
    }

    // ---- setup_table / query_size ----

    #[test]
    fn setup_table_allocates_shared_frames_and_lists_them() {
        let mut m = machine();
        let s = setup(&mut m, A, 2);
        assert_eq!(s.status, gntst::OKAY);
        let frames = dom(&m, A).grant.frames().to_vec();
        assert_eq!(dom(&m, A).grant.nr_frames(), 2);
        let g = guest_with(8192);
        let op = GnttabSetupTable { dom: A, nr_frames: 2, frame_list: UOP + 0x1000, ..Default::default() };
        g.copy_to(UOP, &op).unwrap();
        assert_eq!(call(&mut m, A, &g, &mut regs(GNTTABOP_SETUP_TABLE, UOP, 1)), 0);
        assert_eq!(g.copy_from::<[u64; 2]>(UOP + 0x1000), Ok([frames[0], frames[1]]), "frame_list holds the table's frames");
        for f in &frames[..2] {
            let i = frame_info(&m, *f);
            assert_eq!((i.owner, i.ty, i.type_count), (A, PageType::Writable, 1), "shared with A, typed writable for good");
        }
        assert_eq!(dom(&m, A).grant.nr_frames(), 2, "asking again for the same size allocates nothing");
        assert_eq!(setup(&mut m, A, 1).status, gntst::OKAY);
        assert_eq!(dom(&m, A).grant.nr_frames(), 2, "a table never shrinks");
        let q = one(&mut m, A, GNTTABOP_QUERY_SIZE, GnttabQuerySize { dom: xen_public::DOMID_SELF, ..Default::default() });
        assert_eq!((q.status, q.nr_frames, q.max_nr_frames), (gntst::OKAY, 2, MAX_FRAMES));
    }

    #[test]
    fn setup_table_of_another_domain_is_dom0s_only_and_past_the_maximum_general_error() {
        // Xen's gnttab_setup_table: rcu_lock_domain_by_any_id, then
        // xsm_grant_setup(XSM_TARGET): a domU naming another domain gets
        // GNTST_permission_denied, a missing one GNTST_bad_domain; more
        // than max_grant_frames is GNTST_general_error.
        let mut m = machine();
        let before = grant_state(&m, B);
        let op = GnttabSetupTable { dom: B, nr_frames: 2, frame_list: UOP + 0x800, ..Default::default() };
        assert_eq!(one(&mut m, A, GNTTABOP_SETUP_TABLE, op).status, gntst::PERMISSION_DENIED);
        let op = GnttabSetupTable { dom: 0x1234, nr_frames: 2, frame_list: UOP + 0x800, ..Default::default() };
        assert_eq!(one(&mut m, A, GNTTABOP_SETUP_TABLE, op).status, gntst::BAD_DOMAIN);
        assert_eq!(setup(&mut m, A, MAX_FRAMES + 1).status, gntst::GENERAL_ERROR);
        assert_eq!(setup(&mut m, A, u32::MAX).status, gntst::GENERAL_ERROR);
        assert_eq!(dom(&m, A).grant.nr_frames(), 0);
        assert!(grant_state(&m, B) == before, "B's table untouched");
        let op = GnttabSetupTable { dom: B, nr_frames: 2, frame_list: UOP + 0x800, ..Default::default() };
        assert_eq!(one(&mut m, DOM0, GNTTABOP_SETUP_TABLE, op).status, gntst::OKAY, "dom0 may grow B's table");
        assert_eq!(dom(&m, B).grant.nr_frames(), 2);
        assert_eq!(frame_info(&m, dom(&m, B).grant.frames()[1]).owner, B, "shared with B, not with dom0");
    }

    #[test]
    fn setup_table_grows_on_demand_to_64_frames() {
        // Xen 4.17: max_nr_frames 64 (opt_max_grant_frames); the table
        // grows by the frames asked for, each with its active entries.
        let mut m = machine();
        let s = setup(&mut m, A, 3);
        assert_eq!((s.status, dom(&m, A).grant.nr_frames()), (gntst::OKAY, 3));
        let g = guest_with(4096);
        let op = GnttabSetupTable { dom: SELF, nr_frames: MAX_FRAMES, frame_list: UOP + 0x200, ..Default::default() };
        g.copy_to(UOP, &op).unwrap();
        assert_eq!(call(&mut m, A, &g, &mut regs(GNTTABOP_SETUP_TABLE, UOP, 1)), 0);
        assert_eq!(g.copy_from::<GnttabSetupTable>(UOP).unwrap().status, gntst::OKAY);
        let frames = dom(&m, A).grant.frames().to_vec();
        assert_eq!(frames.len(), 64);
        let listed = g.copy_from::<[u64; 64]>(UOP + 0x200).unwrap();
        assert_eq!(&listed[..], &frames[..], "all 64 frames listed");
        let mut distinct = frames.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 64);
        // An entry of the last frame can be granted and mapped; the next
        // reference is past the table.
        let last = ENTRIES_PER_FRAME * MAX_FRAMES - 1;
        grant(&mut m, A, last, B, 20, PERMIT);
        let mp = map(&mut m, B, A, last, GNTMAP_DEVICE_MAP);
        assert_eq!(mp.status, gntst::OKAY);
        assert_eq!(dom(&m, A).grant.pin(last).unwrap().writers, 1);
        assert_eq!(map(&mut m, B, A, last + 1, GNTMAP_DEVICE_MAP).status, gntst::BAD_GNTREF);
        assert_eq!(unmap(&mut m, B, mp.handle, 0, 20 << 12), gntst::OKAY);
        let q = one(&mut m, A, GNTTABOP_QUERY_SIZE, GnttabQuerySize { dom: SELF, ..Default::default() });
        assert_eq!((q.status, q.nr_frames, q.max_nr_frames), (gntst::OKAY, 64, 64));
    }

    #[test]
    fn setup_table_lists_into_an_unmapped_page_as_bad_virt_addr_and_outside_guest_space_efault() {
        // Xen: guest_handle_okay(frame_list) fails (-EFAULT, nothing done)
        // for a list in Xen's range; a list that only faults is
        // GNTST_bad_virt_addr after the table grew.
        let mut m = machine();
        let op = GnttabSetupTable { dom: A, nr_frames: 1, frame_list: 0xdead_0000, ..Default::default() };
        let (r, out) = run(&mut m, A, GNTTABOP_SETUP_TABLE, &[op]);
        assert_eq!((r, out[0].status), (0, gntst::BAD_VIRT_ADDR));
        assert_eq!(dom(&m, A).grant.nr_frames(), 1);
        let op = GnttabSetupTable { dom: A, nr_frames: 2, frame_list: xen_public::HYPERVISOR_VIRT_START, status: 77, ..Default::default() };
        let (r, out) = run(&mut m, A, GNTTABOP_SETUP_TABLE, &[op]);
        assert_eq!((r, out[0].status), (-EFAULT, 77));
        assert_eq!(dom(&m, A).grant.nr_frames(), 1, "not grown");
    }

    #[test]
    fn setup_table_and_query_size_take_exactly_one_structure() {
        // Xen: `if ( count != 1 ) return -EINVAL;` for both.
        let mut m = machine();
        let op = GnttabSetupTable { dom: SELF, nr_frames: 1, frame_list: UOP + 0x800, status: 77, ..Default::default() };
        let (r, out) = run(&mut m, A, GNTTABOP_SETUP_TABLE, &[op, op]);
        assert_eq!((r, out[0].status, dom(&m, A).grant.nr_frames()), (-EINVAL, 77, 0));
        let q = GnttabQuerySize { dom: SELF, status: 77, ..Default::default() };
        assert_eq!(run(&mut m, A, GNTTABOP_QUERY_SIZE, &[q, q]).0, -EINVAL);
        assert_eq!(run::<GnttabQuerySize>(&mut m, A, GNTTABOP_QUERY_SIZE, &[]).0, -EINVAL);
    }

    #[test]
    fn setup_table_out_of_memory_is_general_error_and_takes_nothing() {
        let mut m = machine();
        m.free.clear();
        assert_eq!(setup(&mut m, A, 1).status, gntst::GENERAL_ERROR);
        assert_eq!(dom(&m, A).grant.nr_frames(), 0);
        // All or nothing (gnttab_grow_table): frames taken before the
        // failure go back, none is shared with the domain.
        let mut m = machine();
        m.active_left = Some(3);
        let free_before = m.free.len();
        assert_eq!(setup(&mut m, A, 5).status, gntst::GENERAL_ERROR);
        assert_eq!(dom(&m, A).grant.nr_frames(), 0);
        assert_eq!(m.freed.len(), 4, "the 4 frames taken were given back");
        assert_eq!(free_before - m.free.len(), 4);
        assert!(m.freed.iter().all(|&f| frame_info(&m, f).owner != A), "none was shared");
    }

    #[test]
    fn query_size_of_another_domain_is_dom0s_only() {
        let mut m = machine();
        let q = one(&mut m, A, GNTTABOP_QUERY_SIZE, GnttabQuerySize { dom: B, nr_frames: 77, ..Default::default() });
        assert_eq!((q.status, q.nr_frames), (gntst::PERMISSION_DENIED, 77), "nothing filled in");
        let q = one(&mut m, A, GNTTABOP_QUERY_SIZE, GnttabQuerySize { dom: 0x1234, ..Default::default() });
        assert_eq!(q.status, gntst::BAD_DOMAIN);
        let q = one(&mut m, B, GNTTABOP_QUERY_SIZE, GnttabQuerySize { dom: B, ..Default::default() });
        assert_eq!((q.status, q.nr_frames, q.max_nr_frames), (gntst::OKAY, 1, MAX_FRAMES));
        let q = one(&mut m, DOM0, GNTTABOP_QUERY_SIZE, GnttabQuerySize { dom: B, ..Default::default() });
        assert_eq!((q.status, q.nr_frames, q.max_nr_frames), (gntst::OKAY, 1, 64));
    }

    // ---- map / unmap ----

    #[test]
    fn map_of_a_valid_grant_sets_reading_and_writing_pins_and_returns_a_handle() {
        let mut m = machine();
        grant(&mut m, B, 10, A, B_FRAME, PERMIT);
        let r = map(&mut m, A, B, 10, GNTMAP_HOST_MAP);
        assert_eq!((r.status, r.handle, r.dev_bus_addr), (gntst::OKAY, 0, 0));
        assert_eq!(entry(&m, B, 10), (PERMIT | READING | WRITING, A, B_FRAME as u32));
        assert_eq!(dom(&m, B).grant.pin(10).unwrap(), Pin { readers: 0, writers: 1, domid: A, frame: B_FRAME });
        let a = dom(&m, A);
        assert_eq!(a.grant.maptrack.get(0), Some(Mapping { dom: B, gref: 10, host_addr: HOST, device: false, readonly: false }));
        assert_eq!(a.grant.mapped_frames[0], B_FRAME);
        assert_eq!(m.mem.read(A_L1, 5), pte(B_FRAME, true), "the PTE maps the granted frame writable");
        let f = frame_info(&m, B_FRAME);
        assert_eq!((f.owner, f.count, f.ty, f.type_count), (B, 2, PageType::Writable, 1), "the PTE holds B's frame like any L1 entry");
        assert_eq!(m.invlpgs, [HOST]);
        let second = map_op(B, 10, GNTMAP_HOST_MAP, HOST + 0x1000);
        let r2 = one(&mut m, A, GNTTABOP_MAP_GRANT_REF, second);
        assert_eq!((r2.status, r2.handle), (gntst::OKAY, 1), "a second mapping gets its own handle");
        assert_eq!(dom(&m, B).grant.pin(10).unwrap().writers, 2);
    }

    #[test]
    fn readonly_map_sets_only_reading_and_maps_readonly() {
        let mut m = machine();
        grant(&mut m, B, 3, A, B_FRAME, PERMIT | READONLY);
        let r = map(&mut m, A, B, 3, GNTMAP_HOST_MAP | GNTMAP_READONLY);
        assert_eq!(r.status, gntst::OKAY);
        assert_eq!(entry(&m, B, 3).0, PERMIT | READONLY | READING);
        assert_eq!(dom(&m, B).grant.pin(3).unwrap(), Pin { readers: 1, writers: 0, domid: A, frame: B_FRAME });
        assert_eq!(m.mem.read(A_L1, 5), pte(B_FRAME, false));
        assert_eq!(frame_info(&m, B_FRAME).type_count, 0, "no writable type for a read-only mapping");
    }

    #[test]
    fn writable_map_of_a_readonly_grant_is_general_error() {
        let mut m = machine();
        grant(&mut m, B, 3, A, B_FRAME, PERMIT | READONLY);
        let before = grant_state(&m, B);
        assert_eq!(map(&mut m, A, B, 3, GNTMAP_HOST_MAP).status, gntst::GENERAL_ERROR);
        assert!(grant_state(&m, B) == before);
        assert_eq!(m.mem.read(A_L1, 5), 0);
    }

    #[test]
    fn map_of_a_ref_past_the_table_is_bad_gntref() {
        let mut m = machine();
        let before = grant_state(&m, B);
        for gref in [ENTRIES_PER_FRAME, ENTRIES_PER_FRAME * MAX_FRAMES, u32::MAX] {
            assert_eq!(map(&mut m, A, B, gref, GNTMAP_HOST_MAP).status, gntst::BAD_GNTREF, "gref {gref}");
        }
        assert_eq!(map(&mut m, A, C, 0, GNTMAP_HOST_MAP).status, gntst::BAD_GNTREF, "C has no table at all");
        assert!(grant_state(&m, B) == before);
        assert_eq!(dom(&m, A).grant.maptrack.get(0), None);
    }

    #[test]
    fn map_of_an_invalid_or_transfer_entry_is_general_error() {
        let mut m = machine();
        grant(&mut m, B, 4, A, B_FRAME, 0);
        grant(&mut m, B, 5, A, B_FRAME, GrantType::AcceptTransfer.bits());
        assert_eq!(map(&mut m, A, B, 4, GNTMAP_HOST_MAP).status, gntst::GENERAL_ERROR);
        assert_eq!(map(&mut m, A, B, 5, GNTMAP_HOST_MAP).status, gntst::GENERAL_ERROR);
        assert_eq!(entry(&m, B, 4).0, 0);
    }

    #[test]
    fn map_decoding_errors_are_xens_statuses() {
        let mut m = machine();
        grant(&mut m, B, 10, A, B_FRAME, PERMIT);
        assert_eq!(map(&mut m, A, B, 10, 0).status, gntst::BAD_GNTREF, "neither host nor device map");
        assert_eq!(map(&mut m, A, B, 10, GNTMAP_READONLY).status, gntst::BAD_GNTREF);
        assert_eq!(map(&mut m, A, xen_public::DOMID_SELF, 10, GNTMAP_HOST_MAP).status, gntst::BAD_DOMAIN, "DOMID_SELF is no granter");
        assert_eq!(map(&mut m, A, 99, 10, GNTMAP_HOST_MAP).status, gntst::BAD_DOMAIN, "no such domain");
        assert_eq!(map(&mut m, A, B, 10, GNTMAP_HOST_MAP | GNTMAP_CONTAINS_PTE).status, gntst::GENERAL_ERROR);
        let bad_va = one(&mut m, A, GNTTABOP_MAP_GRANT_REF, map_op(B, 10, GNTMAP_HOST_MAP, 0xffff_8000_0000_0000));
        assert_eq!(bad_va.status, gntst::GENERAL_ERROR, "hypervisor address");
        let unmapped_l1 = one(&mut m, A, GNTTABOP_MAP_GRANT_REF, map_op(B, 10, GNTMAP_HOST_MAP, 0x4000_0000));
        assert_eq!(unmapped_l1.status, gntst::GENERAL_ERROR, "no L1 for the address");
        assert_eq!(entry(&m, B, 10).0, PERMIT, "every failure dropped the pin's flags");
        assert!(!dom(&m, B).grant.pin(10).unwrap().pinned());
        assert_eq!(frame_info(&m, B_FRAME).count, 1);
    }

    #[test]
    fn device_map_returns_the_bus_address_and_unmaps_by_it() {
        let mut m = machine();
        grant(&mut m, B, 10, A, B_FRAME, PERMIT);
        let r = map(&mut m, A, B, 10, GNTMAP_DEVICE_MAP);
        assert_eq!((r.status, r.dev_bus_addr), (gntst::OKAY, B_FRAME << 12));
        let f = frame_info(&m, B_FRAME);
        assert_eq!((f.count, f.type_count), (2, 1), "a device mapping holds a general and a writable reference");
        assert_eq!(unmap(&mut m, A, r.handle, 0, (B_FRAME + 1) << 12), gntst::BAD_DEV_ADDR);
        assert_eq!(unmap(&mut m, A, r.handle, 0, B_FRAME << 12), gntst::OKAY);
        let f = frame_info(&m, B_FRAME);
        assert_eq!((f.count, f.type_count), (1, 0));
        assert_eq!(entry(&m, B, 10).0, PERMIT);
    }

    #[test]
    fn unmap_releases_the_flags_the_pin_the_pte_and_the_handle() {
        let mut m = machine();
        grant(&mut m, B, 10, A, B_FRAME, PERMIT);
        let h = map(&mut m, A, B, 10, GNTMAP_HOST_MAP).handle;
        assert_eq!(unmap(&mut m, A, h, HOST, 0), gntst::OKAY);
        assert_eq!(entry(&m, B, 10).0, PERMIT, "GTF_reading and GTF_writing cleared");
        assert_eq!(dom(&m, B).grant.pin(10).unwrap().writers, 0);
        assert_eq!(m.mem.read(A_L1, 5), 0);
        let f = frame_info(&m, B_FRAME);
        assert_eq!((f.count, f.type_count), (1, 0), "the PTE's references are gone");
        assert_eq!(m.flushes, 1, "the TLB is flushed before the pin goes");
        assert_eq!(dom(&m, A).grant.maptrack.get(h), None);
        assert_eq!(unmap(&mut m, A, h, HOST, 0), gntst::BAD_HANDLE, "a handle unmaps once");
    }

    /// Xen's `map_grant_ref` traces TRC_MEM_PAGE_GRANT_MAP with `op->dom`
    /// once the map succeeded; `unmap_common` traces
    /// TRC_MEM_PAGE_GRANT_UNMAP with the granting domain (`map->domid`),
    /// not the caller, once the handle is found (a bad handle is not
    /// traced; a later failure is).
    #[test]
    fn grant_map_and_unmap_trace_the_granting_domain() {
        use xen_public::trace::Event::{GrantMap, GrantUnmap};
        let mut m = machine();
        grant(&mut m, B, 10, A, B_FRAME, PERMIT);
        assert_ne!(map(&mut m, A, B, 11, GNTMAP_HOST_MAP).status, gntst::OKAY, "gref 11 is not granted");
        assert_eq!(m.traced, [], "a failed map is not traced");
        let h = map(&mut m, A, B, 10, GNTMAP_HOST_MAP).handle;
        assert_eq!(m.traced, [GrantMap { domid: u32::from(B) }]);
        assert_eq!(unmap(&mut m, A, h + 1, HOST, 0), gntst::BAD_HANDLE);
        assert_eq!(m.traced.len(), 1, "a bad handle is not traced");
        assert_eq!(unmap(&mut m, A, h, HOST + 0x1000, 0), gntst::GENERAL_ERROR);
        assert_eq!(unmap(&mut m, A, h, HOST, 0), gntst::OKAY);
        assert_eq!(m.traced[1..], [GrantUnmap { domid: u32::from(B) }, GrantUnmap { domid: u32::from(B) }], "the granter B, not the caller A");
    }

    #[test]
    fn unmap_keeps_reading_while_a_readonly_pin_is_left() {
        let mut m = machine();
        grant(&mut m, B, 10, A, B_FRAME, PERMIT);
        let w = map(&mut m, A, B, 10, GNTMAP_HOST_MAP).handle;
        let r = one(&mut m, A, GNTTABOP_MAP_GRANT_REF, map_op(B, 10, GNTMAP_HOST_MAP | GNTMAP_READONLY, HOST + 0x1000)).handle;
        assert_eq!(unmap(&mut m, A, w, HOST, 0), gntst::OKAY);
        assert_eq!(entry(&m, B, 10).0, PERMIT | READING);
        assert_eq!(unmap(&mut m, A, r, HOST + 0x1000, 0), gntst::OKAY);
        assert_eq!(entry(&m, B, 10).0, PERMIT);
    }

    #[test]
    fn unmap_with_a_bad_handle_or_address_changes_nothing() {
        let mut m = machine();
        grant(&mut m, B, 10, A, B_FRAME, PERMIT);
        let h = map(&mut m, A, B, 10, GNTMAP_HOST_MAP).handle;
        let before = (grant_state(&m, A), grant_state(&m, B), m.mem.read(A_L1, 5));
        assert_eq!(unmap(&mut m, A, h + 1, HOST, 0), gntst::BAD_HANDLE);
        assert_eq!(unmap(&mut m, A, u32::MAX, HOST, 0), gntst::BAD_HANDLE);
        assert_eq!(unmap(&mut m, A, h, HOST + 0x1000, 0), gntst::GENERAL_ERROR, "not where it is mapped");
        assert_eq!(unmap(&mut m, A, h, 0, 0), gntst::OKAY, "host_addr 0 leaves the host mapping (as Xen)");
        assert!((grant_state(&m, A), grant_state(&m, B), m.mem.read(A_L1, 5)) == before);
    }

    #[test]
    fn unmap_after_the_guest_replaced_the_pte_is_general_error_and_keeps_the_pin() {
        let mut m = machine();
        grant(&mut m, B, 10, A, B_FRAME, PERMIT);
        let h = map(&mut m, A, B, 10, GNTMAP_HOST_MAP).handle;
        m.mem.write(A_L1, 5, pte(20, true));
        assert_eq!(unmap(&mut m, A, h, HOST, 0), gntst::GENERAL_ERROR);
        assert_eq!(entry(&m, B, 10).0, PERMIT | READING | WRITING, "still pinned");
        assert!(dom(&m, A).grant.maptrack.get(h).is_some());
    }

    #[test]
    fn maptrack_full_is_no_device_space_and_undoes_the_mapping() {
        let mut m = machine();
        grant(&mut m, B, 10, A, B_FRAME, PERMIT | READONLY);
        for i in 0..grant::MAPTRACK as u32 {
            let r = map(&mut m, A, B, 10, GNTMAP_DEVICE_MAP | GNTMAP_READONLY);
            assert_eq!((r.status, r.handle), (gntst::OKAY, i));
        }
        let count = frame_info(&m, B_FRAME).count;
        assert_eq!(map(&mut m, A, B, 10, GNTMAP_DEVICE_MAP | GNTMAP_READONLY).status, gntst::NO_DEVICE_SPACE);
        assert_eq!(dom(&m, B).grant.pin(10).unwrap().readers, grant::MAPTRACK as u16);
        assert_eq!(frame_info(&m, B_FRAME).count, count);
    }

    // ---- attacks on map / unmap ----

    #[test]
    fn mapping_a_grant_meant_for_another_domain_is_general_error() {
        let mut m = machine();
        grant(&mut m, B, 10, C, B_FRAME, PERMIT);
        let before = (grant_state(&m, B), grant_state(&m, C), frame_info(&m, B_FRAME));
        assert_eq!(map(&mut m, A, B, 10, GNTMAP_HOST_MAP).status, gntst::GENERAL_ERROR);
        assert_eq!(map(&mut m, A, B, 10, GNTMAP_DEVICE_MAP | GNTMAP_READONLY).status, gntst::GENERAL_ERROR);
        assert!((grant_state(&m, B), grant_state(&m, C), frame_info(&m, B_FRAME)) == before, "neither B nor C changed");
        assert_eq!(m.mem.read(A_L1, 5), 0);
    }

    #[test]
    fn a_grant_of_a_frame_the_granter_does_not_own_is_bad_page() {
        let mut m = machine();
        let c_frame = first_frame(C) + 3;
        grant(&mut m, B, 10, A, c_frame, PERMIT);
        grant(&mut m, B, 11, A, NR_MFNS + 5, PERMIT);
        let before = (grant_state(&m, C), frame_info(&m, c_frame));
        assert_eq!(map(&mut m, A, B, 10, GNTMAP_HOST_MAP).status, gntst::BAD_PAGE);
        assert_eq!(map(&mut m, A, B, 11, GNTMAP_HOST_MAP).status, gntst::BAD_PAGE, "a frame past the machine");
        assert_eq!(entry(&m, B, 10).0, PERMIT, "the flags the pin set are gone");
        assert_eq!(dom(&m, B).grant.pin(10).unwrap(), Pin::default());
        assert!((grant_state(&m, C), frame_info(&m, c_frame)) == before, "C's frame untouched");
        assert_eq!(m.mem.read(A_L1, 5), 0);
    }

    #[test]
    fn only_the_first_pin_and_the_first_writable_pin_check_and_set_the_entry() {
        // Xen's map_grant_ref / acquire_grant_for_copy: `_set_status` runs
        // when the entry is unpinned, or for a writable pin while none is
        // held. A granter flipping GTF_readonly after a writable pin is
        // not seen by further writable pins; GTF_reading it cleared under
        // a read-only pin is not set again by another read-only pin.
        let mut m = machine();
        grant(&mut m, B, 4, A, B_FRAME, PERMIT);
        assert_eq!(map(&mut m, A, B, 4, GNTMAP_HOST_MAP).status, gntst::OKAY);
        grant(&mut m, B, 4, A, B_FRAME, PERMIT | READONLY | READING | WRITING);
        let again = one(&mut m, A, GNTTABOP_MAP_GRANT_REF, map_op(B, 4, GNTMAP_HOST_MAP, HOST + 0x1000));
        assert_eq!(again.status, gntst::OKAY);
        assert_eq!(dom(&m, B).grant.pin(4).unwrap().writers, 2);

        grant(&mut m, B, 5, A, B_FRAME, PERMIT | READONLY);
        assert_eq!(map(&mut m, A, B, 5, GNTMAP_HOST_MAP | GNTMAP_READONLY).status, gntst::OKAY);
        grant(&mut m, B, 5, A, B_FRAME, PERMIT | READONLY);
        let ro = one(&mut m, A, GNTTABOP_MAP_GRANT_REF, map_op(B, 5, GNTMAP_HOST_MAP | GNTMAP_READONLY, HOST + 0x2000));
        assert_eq!(ro.status, gntst::OKAY);
        assert_eq!(entry(&m, B, 5).0, PERMIT | READONLY, "a later read-only pin leaves the entry alone");
        // A first writable pin still checks the entry: refused.
        let w = one(&mut m, A, GNTTABOP_MAP_GRANT_REF, map_op(B, 5, GNTMAP_HOST_MAP, HOST + 0x3000));
        assert_eq!(w.status, gntst::GENERAL_ERROR);
        assert_eq!(dom(&m, B).grant.pin(5).unwrap().writers, 0);
    }

    #[test]
    fn revocation_while_pinned_keeps_the_flags_and_the_first_frame() {
        let mut m = machine();
        grant(&mut m, B, 10, A, B_FRAME, PERMIT);
        let h = map(&mut m, A, B, 10, GNTMAP_HOST_MAP).handle;
        // B revokes (and re-grants the entry to C, another frame) while A
        // still maps it: the hypervisor's flags stay in the entry.
        grant(&mut m, B, 10, C, B_FRAME2, PERMIT | READING | WRITING);
        let c_before = grant_state(&m, C);
        assert_eq!(map(&mut m, C, B, 10, GNTMAP_DEVICE_MAP).status, gntst::GENERAL_ERROR, "C cannot pin what A pins");
        assert!(grant_state(&m, C) == c_before);
        let again = one(&mut m, A, GNTTABOP_MAP_GRANT_REF, map_op(B, 10, GNTMAP_HOST_MAP, HOST + 0x1000));
        assert_eq!(again.status, gntst::OKAY, "A's further pins use the pinned frame");
        assert_eq!(m.mem.read(A_L1, 6), pte(B_FRAME, true), "not the frame B wrote afterwards");
        assert_eq!(unmap(&mut m, A, h, HOST, 0), gntst::OKAY);
        assert_eq!(entry(&m, B, 10).0 & (READING | WRITING), READING | WRITING, "still pinned by the other mapping");
        assert_eq!(unmap(&mut m, A, again.handle, HOST + 0x1000, 0), gntst::OKAY);
        assert_eq!(entry(&m, B, 10).0, PERMIT, "unpinned: the flags go");
        assert_eq!(frame_info(&m, B_FRAME).count, 1);
        assert_eq!(frame_info(&m, B_FRAME2).count, 1, "the re-granted frame was never referenced");
    }

    #[test]
    fn a_revocation_between_the_read_and_the_swap_is_seen_by_the_swap() {
        let mut m = machine();
        grant(&mut m, B, 10, A, B_FRAME, PERMIT);
        let at_word = (dom(&m, B).grant.frames()[0], 10 * 8);
        *m.race.borrow_mut() = Some((at_word.0, at_word.1, Race::Once(u32::from(PERMIT) | u32::from(C) << 16)));
        assert_eq!(map(&mut m, A, B, 10, GNTMAP_HOST_MAP).status, gntst::GENERAL_ERROR);
        assert_eq!(entry(&m, B, 10), (PERMIT, C, B_FRAME as u32), "no flag set on the revoked entry");
        assert_eq!(dom(&m, B).grant.pin(10).unwrap(), Pin::default());
    }

    #[test]
    fn an_entry_changing_on_every_swap_is_general_error_after_five_tries() {
        let mut m = machine();
        grant(&mut m, B, 10, A, B_FRAME, PERMIT);
        let frame = dom(&m, B).grant.frames()[0];
        *m.race.borrow_mut() = Some((frame, 80, Race::Forever));
        assert_eq!(map(&mut m, A, B, 10, GNTMAP_HOST_MAP).status, gntst::GENERAL_ERROR);
        assert_eq!(entry(&m, B, 10).0 & (READING | WRITING), 0);
        assert_eq!(dom(&m, B).grant.pin(10).unwrap(), Pin::default());
    }

    #[test]
    fn unmapping_someone_elses_handle_is_bad_handle_and_changes_nothing() {
        let mut m = machine();
        grant(&mut m, B, 10, A, B_FRAME, PERMIT);
        let h = map(&mut m, A, B, 10, GNTMAP_HOST_MAP).handle;
        let before = (grant_state(&m, A), grant_state(&m, B), m.mem.read(A_L1, 5), frame_info(&m, B_FRAME));
        assert_eq!(unmap(&mut m, C, h, HOST, 0), gntst::BAD_HANDLE, "C's maptrack has no such handle");
        assert_eq!(unmap(&mut m, B, h, HOST, B_FRAME << 12), gntst::BAD_HANDLE, "nor has the granter's");
        assert!((grant_state(&m, A), grant_state(&m, B), m.mem.read(A_L1, 5), frame_info(&m, B_FRAME)) == before);
    }

    // ---- copy ----

    fn copy_op(src: (u64, u16, u16), dst: (u64, u16, u16), len: u16, flags: u16) -> GnttabCopy {
        GnttabCopy {
            source: GnttabCopyPtr { u: src.0, domid: src.1, offset: src.2, ..Default::default() },
            dest: GnttabCopyPtr { u: dst.0, domid: dst.1, offset: dst.2, ..Default::default() },
            len,
            flags,
            ..Default::default()
        }
    }

    fn copy(m: &mut Machine, caller: u16, op: GnttabCopy) -> i16 {
        one(m, caller, GNTTABOP_COPY, op).status
    }

    fn bytes_at(m: &Machine, mfn: u64, off: usize, len: usize) -> Vec<u8> {
        let f = m.frame(mfn).unwrap();
        (0..len).map(|i| f.get::<1>(off + i)[0]).collect()
    }

    fn fill(m: &Machine, mfn: u64, off: usize, data: &[u8]) {
        m.frame(mfn).unwrap().put(off, data);
    }

    const SELF: u16 = xen_public::DOMID_SELF;

    #[test]
    fn copy_between_domains_in_both_directions_through_grants() {
        let mut m = machine();
        let a_frame = first_frame(A) + 10;
        grant(&mut m, B, 10, A, B_FRAME, PERMIT);
        fill(&m, B_FRAME, 100, b"from B");
        let op = copy_op((10, B, 100), (a_frame, SELF, 4000), 6, GNTCOPY_SOURCE_GREF);
        assert_eq!(copy(&mut m, A, op), gntst::OKAY);
        assert_eq!(bytes_at(&m, a_frame, 4000, 6), b"from B");
        fill(&m, a_frame, 0, b"from A!");
        let op = copy_op((a_frame, A, 0), (10, B, 4089), 7, GNTCOPY_DEST_GREF);
        assert_eq!(copy(&mut m, A, op), gntst::OKAY);
        assert_eq!(bytes_at(&m, B_FRAME, 4089, 7), b"from A!");
        assert_eq!(entry(&m, B, 10).0, PERMIT, "the copy's pins are gone");
        for f in [a_frame, B_FRAME] {
            let i = frame_info(&m, f);
            assert_eq!((i.count, i.type_count), (1, 0), "the copy's references are gone");
        }
    }

    #[test]
    fn copy_with_both_sides_granted() {
        let mut m = machine();
        assert_eq!(setup(&mut m, C, 1).status, gntst::OKAY);
        let c_frame = first_frame(C) + 1;
        grant(&mut m, B, 10, A, B_FRAME, PERMIT | READONLY);
        grant(&mut m, C, 20, A, c_frame, PERMIT);
        fill(&m, B_FRAME, 0, &[0xab; 4096]);
        let op = copy_op((10, B, 0), (20, C, 0), 4096, GNTCOPY_SOURCE_GREF | GNTCOPY_DEST_GREF);
        assert_eq!(copy(&mut m, A, op), gntst::OKAY);
        assert_eq!(bytes_at(&m, c_frame, 0, 4096), [0xab; 4096]);
    }

    #[test]
    fn copy_crossing_the_page_is_bad_copy_arg() {
        let mut m = machine();
        let a_frame = first_frame(A) + 10;
        grant(&mut m, B, 10, A, B_FRAME, PERMIT);
        for (so, doff, len) in [(4000, 0, 97), (0, 4095, 2), (u16::MAX, 0, 1), (0, 0, u16::MAX), (1, 0, 4096)] {
            let op = copy_op((10, B, so), (a_frame, SELF, doff), len, GNTCOPY_SOURCE_GREF);
            assert_eq!(copy(&mut m, A, op), gntst::BAD_COPY_ARG, "{so} {doff} {len}");
        }
        assert_eq!(entry(&m, B, 10).0, PERMIT, "checked before anything is pinned");
    }

    #[test]
    fn copy_with_bad_refs_is_bad_gntref_and_releases_the_other_side() {
        let mut m = machine();
        let a_frame = first_frame(A) + 10;
        grant(&mut m, B, 10, A, B_FRAME, PERMIT);
        let op = copy_op((u64::from(ENTRIES_PER_FRAME), B, 0), (a_frame, SELF, 0), 8, GNTCOPY_SOURCE_GREF);
        assert_eq!(copy(&mut m, A, op), gntst::BAD_GNTREF);
        let op = copy_op((10, B, 0), (u64::from(u32::MAX), B, 0), 8, GNTCOPY_SOURCE_GREF | GNTCOPY_DEST_GREF);
        assert_eq!(copy(&mut m, A, op), gntst::BAD_GNTREF);
        assert_eq!(entry(&m, B, 10).0, PERMIT, "the source's pin was dropped");
        assert_eq!(frame_info(&m, B_FRAME).count, 1);
        let op = copy_op((10, 99, 0), (a_frame, SELF, 0), 8, GNTCOPY_SOURCE_GREF);
        assert_eq!(copy(&mut m, A, op), gntst::BAD_DOMAIN);
    }

    #[test]
    fn copy_into_a_readonly_grant_is_general_error() {
        let mut m = machine();
        let a_frame = first_frame(A) + 10;
        grant(&mut m, B, 10, A, B_FRAME, PERMIT | READONLY);
        fill(&m, B_FRAME, 0, b"keep");
        let op = copy_op((a_frame, SELF, 0), (10, B, 0), 4, GNTCOPY_DEST_GREF);
        assert_eq!(copy(&mut m, A, op), gntst::GENERAL_ERROR);
        assert_eq!(bytes_at(&m, B_FRAME, 0, 4), b"keep");
        assert_eq!(frame_info(&m, a_frame).count, 1, "the source's reference was dropped");
    }

    #[test]
    fn copy_naming_frames_of_other_domains_is_refused() {
        let mut m = machine();
        let a_frame = first_frame(A) + 10;
        let before = (frame_info(&m, B_FRAME), bytes_at(&m, B_FRAME, 0, 16));
        let op = copy_op((a_frame, SELF, 0), (B_FRAME, B, 0), 16, 0);
        assert_eq!(copy(&mut m, A, op), gntst::PERMISSION_DENIED, "another existing domain's frame");
        let op = copy_op((a_frame, SELF, 0), (B_FRAME, 99, 0), 16, 0);
        assert_eq!(copy(&mut m, A, op), gntst::BAD_DOMAIN);
        fill(&m, a_frame, 0, &[1; 16]);
        let op = copy_op((a_frame, SELF, 0), (B_FRAME, SELF, 0), 16, 0);
        assert_eq!(copy(&mut m, A, op), gntst::BAD_PAGE, "B's frame named as A's own");
        let op = copy_op((B_FRAME, SELF, 0), (a_frame, SELF, 0), 16, 0);
        assert_eq!(copy(&mut m, A, op), gntst::BAD_PAGE);
        assert!((frame_info(&m, B_FRAME), bytes_at(&m, B_FRAME, 0, 16)) == before, "B's frame untouched");
        assert_eq!(frame_info(&m, a_frame).count, 1);
    }

    #[test]
    fn copy_into_a_page_table_is_general_error() {
        let mut m = machine();
        let a_frame = first_frame(A) + 10;
        let before = frame_info(&m, A_L1);
        let op = copy_op((a_frame, SELF, 0), (A_L1, SELF, 0), 8, 0);
        assert_eq!(copy(&mut m, A, op), gntst::GENERAL_ERROR);
        assert_eq!(frame_info(&m, A_L1), before);
        assert_eq!(frame_info(&m, a_frame).count, 1);
    }

    // ---- transfer ----

    #[test]
    fn transfer_moves_a_frame_into_an_accept_transfer_entry() {
        let mut m = machine();
        let a_frame = first_frame(A) + 30;
        grant(&mut m, B, 12, A, 0x1234, GrantType::AcceptTransfer.bits());
        let op = GnttabTransfer { mfn: a_frame, domid: B, ref_: 12, ..Default::default() };
        assert_eq!(one(&mut m, A, GNTTABOP_TRANSFER, op).status, gntst::OKAY);
        assert_eq!(frame_info(&m, a_frame).owner, B);
        assert_eq!((dom(&m, A).nr_pages, dom(&m, B).nr_pages), (47, 49));
        let done = GtfFlags::TRANSFER_COMMITTED.union(GtfFlags::TRANSFER_COMPLETED).with_type(GrantType::AcceptTransfer);
        assert_eq!(entry(&m, B, 12), (done, A, a_frame as u32));
        assert_eq!(m.m2p.get(&a_frame), Some(&0x1234));
        assert_eq!(m.kicks, 1);
        let again = GnttabTransfer { mfn: first_frame(A) + 31, domid: B, ref_: 12, ..Default::default() };
        assert_eq!(one(&mut m, A, GNTTABOP_TRANSFER, again).status, gntst::GENERAL_ERROR, "already committed");
        assert_eq!(m.freed, [first_frame(A) + 31], "a frame that left its owner is freed on failure");
    }

    #[test]
    fn transfer_of_a_special_or_foreign_frame_is_bad_page() {
        let mut m = machine();
        grant(&mut m, B, 12, A, 0, GrantType::AcceptTransfer.bits());
        let gframe = dom(&m, B).grant.frames()[0];
        for mfn in [gframe, first_frame(A), first_frame(C), NR_MFNS + 1] {
            let op = GnttabTransfer { mfn, domid: A, ref_: 0, ..Default::default() };
            assert_eq!(one(&mut m, B, GNTTABOP_TRANSFER, op).status, gntst::BAD_PAGE, "mfn {mfn}: B's grant frame, A's..");
        }
        let op = GnttabTransfer { mfn: A_L1, domid: B, ref_: 12, ..Default::default() };
        assert_eq!(one(&mut m, A, GNTTABOP_TRANSFER, op).status, gntst::BAD_PAGE, "a referenced frame (a live L1)");
        assert_eq!(frame_info(&m, first_frame(C)).owner, C);
        assert_eq!(entry(&m, B, 12).0, GrantType::AcceptTransfer.bits());
    }

    // ---- the array, its decoding and continuations ----

    /// Copies that run past the page end (GNTST_bad_copy_arg, nothing
    /// touched), with a status the op must overwrite.
    fn copy_ops(n: usize) -> Vec<GnttabCopy> {
        std::vec![GnttabCopy { len: 4097, status: 77, ..Default::default() }; n]
    }

    #[test]
    fn a_batch_continues_after_gnttab_per_call_ops_with_rsi_and_rdx_advanced() {
        let mut m = machine();
        let ops = copy_ops(200);
        let g = guest_with(40 * 200);
        for (i, op) in ops.iter().enumerate() {
            g.copy_to(UOP + i as u64 * 40, op).unwrap();
        }
        let mut r = regs(GNTTABOP_COPY, UOP, 200);
        let ret = call(&mut m, B, &g, &mut r);
        assert_eq!(ret as u64, xen_public::hypercall::GRANT_TABLE_OP, "RAX keeps the hypercall number");
        assert_eq!(r.rip, 0x1000, "the hypercall instruction runs again");
        assert_eq!((r.rsi, r.rdx), (UOP + GNTTAB_PER_CALL * 40, 200 - GNTTAB_PER_CALL));
        let done = |i: u64| g.copy_from::<GnttabCopy>(UOP + i * 40).unwrap().status;
        assert_eq!((done(GNTTAB_PER_CALL - 1), done(GNTTAB_PER_CALL)), (gntst::BAD_COPY_ARG, 77));
        r.rip = 0x1002;
        assert_eq!(call(&mut m, B, &g, &mut r), 0, "the re-issued call finishes");
        assert_eq!(done(199), gntst::BAD_COPY_ARG);
    }

    #[test]
    fn preemption_continues_after_at_least_one_op() {
        let mut m = machine();
        m.preempt_after = Some(0);
        let g = guest_with(40 * 3);
        for i in 0..3 {
            g.copy_to(UOP + i * 40, &copy_ops(1)[0]).unwrap();
        }
        let mut r = regs(GNTTABOP_COPY, UOP, 3);
        assert_eq!(call(&mut m, B, &g, &mut r) as u64, xen_public::hypercall::GRANT_TABLE_OP);
        assert_eq!((r.rsi, r.rdx, r.rip), (UOP + 40, 2, 0x1000), "one op done, then continued");
        assert_eq!(g.copy_from::<GnttabCopy>(UOP + 40).unwrap().status, 77);
    }

    #[test]
    fn a_huge_count_is_its_low_32_bits_continued_per_call() {
        let mut m = machine();
        let g = guest_with(40 * GNTTAB_PER_CALL);
        let mut r = regs(GNTTABOP_COPY, UOP, u64::MAX);
        assert_eq!(call(&mut m, B, &g, &mut r) as u64, xen_public::hypercall::GRANT_TABLE_OP);
        assert_eq!(r.rdx, u64::from(u32::MAX) - GNTTAB_PER_CALL);
        g.copy_to(UOP, &copy_ops(1)[0]).unwrap();
        let mut r = regs(GNTTABOP_COPY, UOP, 1 << 32);
        assert_eq!(call(&mut m, B, &g, &mut r), 0, "count 2^32 is 0 ops");
        assert_eq!(g.copy_from::<GnttabCopy>(UOP).unwrap().status, 77, "nothing written");
    }

    #[test]
    fn an_unmapped_op_array_is_efault() {
        let mut m = machine();
        grant(&mut m, B, 10, A, B_FRAME, PERMIT);
        let g = guest_with(4096);
        let mut r = regs(GNTTABOP_MAP_GRANT_REF, 0xdead_0000, 1);
        assert_eq!(call(&mut m, A, &g, &mut r), -EFAULT);
        // The first op lies in the page, the second runs off its end.
        let at = UOP + 4096 - 32;
        g.copy_to(at, &map_op(B, 10, GNTMAP_HOST_MAP, HOST)).unwrap();
        let mut r = regs(GNTTABOP_MAP_GRANT_REF, at, 2);
        assert_eq!(call(&mut m, A, &g, &mut r), -EFAULT, "the second op faults");
        assert_eq!(g.copy_from::<GnttabMapGrantRef>(at).unwrap().status, gntst::OKAY, "the first op was done");
        assert_eq!(entry(&m, B, 10).0, PERMIT | READING | WRITING, "and stays done, as in Xen");
    }

    #[test]
    fn unknown_cmds_are_enosys() {
        let mut m = machine();
        let g = guest_with(4096);
        for cmd in [GNTTABOP_UNMAP_AND_REPLACE, GNTTABOP_GET_STATUS_FRAMES, GNTTABOP_SWAP_GRANT_REF, GNTTABOP_CACHE_FLUSH, 13, 0xffff_ffff] {
            assert_eq!(call(&mut m, A, &g, &mut regs(cmd, UOP, 1)), -ENOSYS, "cmd {cmd}");
        }
        assert_eq!(call(&mut m, A, &g, &mut regs(GNTTABOP_DUMP_TABLE, UOP, 1)), -ENOSYS, "dump_table is dom0's");
        let q = GnttabQuerySize { dom: SELF, ..Default::default() };
        g.copy_to(UOP, &q).unwrap();
        assert_eq!(call(&mut m, B, &g, &mut regs((1 << 32) | GNTTABOP_QUERY_SIZE, UOP, 1)), 0, "cmd is RDI's low 32 bits");
        assert_eq!(g.copy_from::<GnttabQuerySize>(UOP).unwrap().nr_frames, 1);
    }

    #[test]
    fn pending_devalidations_are_finished_first() {
        let mut m = machine();
        m.drain = Err(-85);
        let ops = [GnttabQuerySize { dom: SELF, status: 77, ..Default::default() }];
        let (r, out) = run(&mut m, B, GNTTABOP_QUERY_SIZE, &ops);
        assert_eq!((r, out[0].status), (-85, 77), "-ERESTART before any op");
        let (r, _) = run(&mut m, B, GNTTABOP_GET_VERSION, &[GnttabGetVersion { dom: SELF, ..Default::default() }]);
        assert_eq!(r, 0, "the version ops do not wait");
    }

    #[test]
    fn set_and_get_version_know_only_version_1() {
        let mut m = machine();
        let set = |v| GnttabSetVersion { version: v };
        assert_eq!(run(&mut m, A, GNTTABOP_SET_VERSION, &[set(1)]).0, 0);
        assert_eq!(run(&mut m, A, GNTTABOP_SET_VERSION, &[set(2)]).0, -ENOSYS);
        assert_eq!(run(&mut m, A, GNTTABOP_SET_VERSION, &[set(1), set(1)]).0, -EINVAL, "count must be 1");
        let (r, out) = run(&mut m, A, GNTTABOP_GET_VERSION, &[GnttabGetVersion { dom: A, ..Default::default() }]);
        assert_eq!((r, out[0].version), (0, 1));
        assert_eq!(run(&mut m, A, GNTTABOP_GET_VERSION, &[GnttabGetVersion { dom: B, ..Default::default() }]).0, -ESRCH);
        let g = FakeGuest::default();
        assert_eq!(call(&mut m, A, &g, &mut regs(GNTTABOP_GET_VERSION, UOP, 1)), -EFAULT);
    }

    #[test]
    fn dump_table_logs_the_entries_in_use_for_dom0() {
        let mut m = machine();
        assert_eq!(setup(&mut m, DOM0, 1).status, gntst::OKAY);
        grant(&mut m, DOM0, 7, A, 5, PERMIT);
        let r = one(&mut m, DOM0, GNTTABOP_DUMP_TABLE, GnttabDumpTable { dom: SELF, ..Default::default() });
        assert_eq!(r.status, gntst::OKAY);
        assert_eq!(m.log.len(), 1);
        assert!(m.log[0].starts_with("grant-table d0 ref 7: flags 0x0001 domid 1 frame 0x5"), "{}", m.log[0]);
        let r = one(&mut m, DOM0, GNTTABOP_DUMP_TABLE, GnttabDumpTable { dom: B, ..Default::default() });
        assert_eq!(r.status, gntst::BAD_DOMAIN);
    }

    // ---- domain destruction ----

    #[test]
    fn a_dead_mappers_pins_go_and_a_dead_granters_handles_name_no_one() {
        let mut m = machine();
        grant(&mut m, B, 10, A, B_FRAME, PERMIT);
        grant(&mut m, B, 11, C, B_FRAME2, PERMIT);
        let dev = map(&mut m, A, B, 10, GNTMAP_DEVICE_MAP);
        assert_eq!(dev.status, gntst::OKAY);
        assert_eq!(map(&mut m, C, B, 11, GNTMAP_DEVICE_MAP | GNTMAP_READONLY).status, gntst::OKAY);
        let mut caller = m.doms.remove(&DOM0).unwrap();
        let mut dead = m.doms.remove(&A).unwrap();
        release_grants(&mut m, &mut caller, &mut dead);
        assert_eq!(entry(&m, B, 10).0, PERMIT, "A's pin on B's grant is gone");
        assert_eq!(frame_info(&m, B_FRAME).count, 1, "and its device mapping's references");
        assert_eq!(entry(&m, B, 11).0, PERMIT | READING, "C's pin stays");
        m.doms.remove(&B);
        forget_granter(&mut m, &mut caller, B);
        assert_eq!(dom(&m, C).grant.maptrack.get(0).map(|x| x.dom), Some(DEAD_GRANTER), "C's handle names no granter");
        let c_before = grant_state(&m, C);
        assert_eq!(unmap(&mut m, C, 0, 0, B_FRAME2 << 12), gntst::OKAY, "C can still unmap");
        assert_eq!(dom(&m, C).grant.maptrack.get(0), None);
        assert_eq!(c_before.1, grant_state(&m, C).1, "and touches no pin of a domain reusing the id");
    }
}
