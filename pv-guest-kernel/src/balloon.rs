//! The balloon: hand memory the guest does not use back to the hypervisor
//! (XENMEM_decrease_reservation), as Linux's balloon driver does, so that
//! many small domains fit in a machine.
//!
//! Invariant: a page is given back only after its last mapping is gone
//! (the hypervisor refuses a frame with references), and its P2M entry is
//! then marked invalid, so the guest never names a frame it lost.

use crate::alloc::EarlyAlloc;
use crate::mm::{self, Errno};
use crate::{gtrace, hypercall};
use xen_public::StartInfo;
use xen_public::trace_guest::{BalloonOp, GuestEvent};

/// Frames given back per hypercall.
const BATCH: usize = 64;

/// Give back the frames in `list` (already unmapped): how many went.
fn decrease(list: &[u64]) -> Result<u64, Errno> {
    let rc = hypercall::decrease_reservation(xen_public::DOMID_SELF, list);
    if rc < 0 { Err(Errno(rc)) } else { Ok(rc as u64) }
}

/// Give back every page `pages` has not handed out yet (the rest of the
/// initial region's padding): unmap each, return its frame, and mark it
/// gone in the P2M. Returns the number of pages given back.
pub fn release_unused(si: &StartInfo, pages: &mut EarlyAlloc, virt_base: u64) -> Result<u64, Errno> {
    let mut list = [0u64; BATCH];
    let mut n = 0;
    let mut released = 0;
    while let Some(va) = pages.alloc_page() {
        let pfn = (va - virt_base) / 4096;
        if pfn >= si.nr_pages {
            break;
        }
        let mfn = mm::p2m(si, pfn);
        mm::unmap(va)?;
        mm::set_p2m(si, pfn, mm::INVALID_P2M_ENTRY);
        list[n] = mfn;
        n += 1;
        if n == BATCH {
            released += decrease(&list)?;
            n = 0;
        }
    }
    released += decrease(&list[..n])?;
    Ok(released)
}

use crate::balloon_credit::{PfnSet, TRACKED_PAGES, Tail, credit};

/// `MMU_MACHPHYS_UPDATE`: the kind of `mmu_update` that sets an M2P entry.
const MMU_MACHPHYS_UPDATE: u64 = 1;

/// A balloon driver that follows `memory/target` both ways: pages go out
/// with `decrease_reservation` (unmapped first, P2M entry invalidated)
/// and come back with `populate_physmap` (P2M and M2P set, mapped again
/// if they are in the initial region), as Linux's `balloon.c`.
///
/// The pfns past the initial region (the [`Tail`]: nothing maps them, the
/// guest never uses them) go first, highest first; then initial-region
/// pages no one uses. Pages come back lowest first (Linux re-populates
/// low memory first): the region's, then the tail's.
///
/// Invariant: a pfn is in exactly one of: in use by the guest, `out` or
/// the tail's given-back range (given back: no frame, no mapping, P2M
/// entry invalid), `spare` (back in, mapped, unused), the tail's held
/// range (a frame, unmapped, unused); `current` counts the pages the
/// guest holds.
pub struct Balloon<'a> {
    si: &'a StartInfo,
    pages: &'a mut EarlyAlloc,
    virt_base: u64,
    out: PfnSet,
    spare: PfnSet,
    tail: Tail,
    /// Pages the guest holds.
    pub current: u64,
}

impl<'a> Balloon<'a> {
    /// A balloon over the guest's pages, none given back yet; `pages` is
    /// the allocator of its initial region, whose end starts the tail.
    pub fn new(si: &'a StartInfo, pages: &'a mut EarlyAlloc, virt_base: u64) -> Balloon<'a> {
        let region_end = (pages.end() - virt_base) / 4096;
        let tail = Tail::new(region_end, si.nr_pages);
        Balloon { si, pages, virt_base, out: PfnSet::default(), spare: PfnSet::default(), tail, current: si.nr_pages }
    }

    /// A page the guest does not use: a spare one, else one never handed
    /// out; its pfn.
    fn unused_pfn(&mut self) -> Option<u64> {
        if let Some(pfn) = self.spare.pop() {
            return Some(pfn);
        }
        let va = self.pages.alloc_page()?;
        let pfn = (va - self.virt_base) / 4096;
        (pfn < self.si.nr_pages.min(TRACKED_PAGES as u64)).then_some(pfn)
    }

    /// Give back up to `n` pages of the tail, a batch at a time; how many
    /// went. The batch lists the highest pfn first, so the frames Xen
    /// takes (a prefix) are the top of the held range.
    fn deflate_tail(&mut self, n: u64) -> Result<u64, Errno> {
        let mut list = [0u64; BATCH];
        let mut done = 0;
        while done < n {
            let pfns = self.tail.next_out((n - done).min(BATCH as u64));
            let k = (pfns.end - pfns.start) as usize;
            if k == 0 {
                break;
            }
            for (slot, pfn) in list.iter_mut().zip(pfns.clone().rev()) {
                *slot = mm::p2m(self.si, pfn);
                mm::set_p2m(self.si, pfn, mm::INVALID_P2M_ENTRY);
            }
            let gone = decrease(&list[..k]);
            let went = *gone.as_ref().unwrap_or(&0);
            // Frames Xen kept stay the guest's: their P2M entries back.
            for (mfn, pfn) in list[..k].iter().zip(pfns.rev()).skip(went as usize) {
                mm::set_p2m(self.si, pfn, *mfn);
            }
            self.tail.gave_back(went);
            self.current -= went;
            done += went;
            gone?;
            if went < k as u64 {
                break;
            }
        }
        Ok(done)
    }

    /// Give back up to `n` unused pages of the initial region; how many
    /// went.
    fn deflate_region(&mut self, n: u64) -> Result<u64, Errno> {
        let mut list = [0u64; BATCH];
        let mut pfns = [0u64; BATCH];
        let mut done = 0;
        while done < n {
            let mut k = 0;
            while k < BATCH && done + (k as u64) < n {
                let Some(pfn) = self.unused_pfn() else { break };
                mm::unmap(self.virt_base + pfn * 4096)?;
                list[k] = mm::p2m(self.si, pfn);
                mm::set_p2m(self.si, pfn, mm::INVALID_P2M_ENTRY);
                pfns[k] = pfn;
                k += 1;
            }
            if k == 0 {
                break;
            }
            let gone = decrease(&list[..k]);
            let went = *gone.as_ref().unwrap_or(&0) as usize;
            for &pfn in &pfns[..went] {
                self.out.insert(pfn);
            }
            // Frames Xen kept: mapped again, spare.
            for (&pfn, &mfn) in pfns[went..k].iter().zip(&list[went..k]) {
                mm::set_p2m(self.si, pfn, mfn);
                mm::map(self.virt_base + pfn * 4096, mfn, true)?;
                self.spare.insert(pfn);
            }
            done += went as u64;
            self.current -= went as u64;
            gone?;
            if went < k {
                break;
            }
        }
        Ok(done)
    }

    /// Take back up to `n` of the initial region's pages given back; how
    /// many came.
    fn inflate_region(&mut self, n: u64) -> Result<u64, Errno> {
        let mut done = 0;
        while done < n {
            let Some(pfn) = self.out.pop() else { break };
            let mut extent = [pfn];
            if hypercall::populate_physmap(xen_public::DOMID_SELF, &mut extent) != 1 {
                self.out.insert(pfn);
                break;
            }
            let mfn = extent[0];
            set_m2p(&[mfn], pfn)?;
            mm::set_p2m(self.si, pfn, mfn);
            mm::map(self.virt_base + pfn * 4096, mfn, true)?;
            self.spare.insert(pfn);
            self.current += 1;
            done += 1;
        }
        Ok(done)
    }

    /// Take back up to `n` of the tail's pages given back, a batch at a
    /// time (left unmapped: the guest does not use them); how many came.
    fn inflate_tail(&mut self, n: u64) -> Result<u64, Errno> {
        let mut list = [0u64; BATCH];
        let mut done = 0;
        while done < n {
            let pfns = self.tail.next_in((n - done).min(BATCH as u64));
            let k = (pfns.end - pfns.start) as usize;
            if k == 0 {
                break;
            }
            for (slot, pfn) in list.iter_mut().zip(pfns.clone()) {
                *slot = pfn;
            }
            let rc = hypercall::populate_physmap(xen_public::DOMID_SELF, &mut list[..k]);
            let got = rc.clamp(0, k as i64) as usize;
            for (&mfn, pfn) in list[..got].iter().zip(pfns.clone()) {
                mm::set_p2m(self.si, pfn, mfn);
            }
            set_m2p(&list[..got], pfns.start)?;
            self.tail.took_back(got as u64);
            self.current += got as u64;
            done += got as u64;
            if got < k {
                break;
            }
        }
        Ok(done)
    }

    /// Move toward `target_kib`: `Ok(pages)`, positive for pages given
    /// back, negative for pages taken back.
    ///
    /// Each step that moves is traced (`crate::gtrace`) with the pages
    /// asked, the pages moved (what `current` says, also when the step
    /// failed part-way) and the pages held after.
    pub fn follow(&mut self, target_kib: u64) -> Result<i64, Errno> {
        let c = credit(self.current, target_kib, u64::MAX, u64::MAX);
        if c == 0 {
            return Ok(0);
        }
        let before = self.current;
        let r = self.step(c);
        let op = if c > 0 { BalloonOp::Decrease } else { BalloonOp::Populate };
        let clamp = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        let done = before.abs_diff(self.current);
        gtrace::record(GuestEvent::BalloonStep { op, asked: clamp(c.unsigned_abs()), done: clamp(done), held: clamp(self.current) });
        r
    }

    /// Give back `c` pages (`c > 0`) or take back `-c`: the tail first when
    /// giving back, the region first when taking back.
    fn step(&mut self, c: i64) -> Result<i64, Errno> {
        if c > 0 {
            let tail = self.deflate_tail(c as u64)?;
            let region = self.deflate_region(c as u64 - tail)?;
            Ok((tail + region) as i64)
        } else {
            let region = self.inflate_region(c.unsigned_abs())?;
            let tail = self.inflate_tail(c.unsigned_abs() - region)?;
            Ok(-((region + tail) as i64))
        }
    }
}

/// Point the M2P entries of `mfns` at consecutive pfns from `first_pfn`
/// (`MMU_MACHPHYS_UPDATE`, as Linux's PV balloon does for the frames it
/// gets back).
fn set_m2p(mfns: &[u64], first_pfn: u64) -> Result<(), Errno> {
    let mut reqs = [xen_public::MmuUpdate::default(); BATCH];
    for ((r, &mfn), pfn) in reqs.iter_mut().zip(mfns).zip(first_pfn..) {
        *r = xen_public::MmuUpdate { ptr: (mfn << 12) | MMU_MACHPHYS_UPDATE, val: pfn };
    }
    match mm::mmu_update(&reqs[..mfns.len().min(BATCH)]) {
        (rc, _) if rc < 0 => Err(Errno(rc)),
        _ => Ok(()),
    }
}
