//! The balloon: hand memory the guest does not use back to the hypervisor
//! (XENMEM_decrease_reservation), as Linux's balloon driver does, so that
//! many small domains fit in a machine.
//!
//! Invariant: a page is given back only after its last mapping is gone
//! (the hypervisor refuses a frame with references), and its P2M entry is
//! then marked invalid, so the guest never names a frame it lost.

use crate::alloc::EarlyAlloc;
use crate::hypercall;
use crate::mm::{self, Errno};
use xen_public::StartInfo;

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

use crate::balloon_credit::{PfnSet, TRACKED_PAGES, credit};

/// `MMU_MACHPHYS_UPDATE`: the kind of `mmu_update` that sets an M2P entry.
const MMU_MACHPHYS_UPDATE: u64 = 1;

/// A balloon driver that follows `memory/target` both ways: pages go out
/// with `decrease_reservation` (unmapped first, P2M entry invalidated)
/// and come back with `populate_physmap` (P2M and M2P set, mapped again).
///
/// Invariant: a pfn is in exactly one of: in use by the guest, `out`
/// (given back: no frame, no mapping), `spare` (back in, mapped, unused);
/// `current` counts the pages the guest holds.
pub struct Balloon<'a> {
    si: &'a StartInfo,
    pages: &'a mut EarlyAlloc,
    virt_base: u64,
    out: PfnSet,
    spare: PfnSet,
    /// Pages the guest holds.
    pub current: u64,
}

impl<'a> Balloon<'a> {
    /// A balloon over the guest's pages, none given back yet.
    pub fn new(si: &'a StartInfo, pages: &'a mut EarlyAlloc, virt_base: u64) -> Balloon<'a> {
        Balloon { si, pages, virt_base, out: PfnSet::default(), spare: PfnSet::default(), current: si.nr_pages }
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

    /// Give back up to `n` pages; how many went.
    fn deflate_guest(&mut self, n: u64) -> Result<u64, Errno> {
        let mut list = [0u64; BATCH];
        let mut done = 0;
        while done < n {
            let mut k = 0;
            while k < BATCH && done + (k as u64) < n {
                let Some(pfn) = self.unused_pfn() else { break };
                mm::unmap(self.virt_base + pfn * 4096)?;
                list[k] = mm::p2m(self.si, pfn);
                mm::set_p2m(self.si, pfn, mm::INVALID_P2M_ENTRY);
                self.out.insert(pfn);
                k += 1;
            }
            if k == 0 {
                break;
            }
            let gone = decrease(&list[..k])?;
            done += gone;
            self.current -= gone;
            if gone < k as u64 {
                break;
            }
        }
        Ok(done)
    }

    /// Take back up to `n` of the pages given back; how many came.
    fn inflate_guest(&mut self, n: u64) -> Result<u64, Errno> {
        let mut done = 0;
        while done < n {
            let Some(pfn) = self.out.pop() else { break };
            let mut extent = [pfn];
            if hypercall::populate_physmap(xen_public::DOMID_SELF, &mut extent) != 1 {
                self.out.insert(pfn);
                break;
            }
            let mfn = extent[0];
            let m2p = [xen_public::MmuUpdate { ptr: (mfn << 12) | MMU_MACHPHYS_UPDATE, val: pfn }];
            let (rc, _) = mm::mmu_update(&m2p);
            if rc < 0 {
                return Err(Errno(rc));
            }
            mm::set_p2m(self.si, pfn, mfn);
            mm::map(self.virt_base + pfn * 4096, mfn, true)?;
            self.spare.insert(pfn);
            self.current += 1;
            done += 1;
        }
        Ok(done)
    }

    /// Move toward `target_kib`: `Ok(pages)`, positive for pages given
    /// back, negative for pages taken back.
    pub fn follow(&mut self, target_kib: u64) -> Result<i64, Errno> {
        match credit(self.current, target_kib, u64::MAX, u64::MAX) {
            c if c > 0 => self.deflate_guest(c as u64).map(|n| n as i64),
            c if c < 0 => self.inflate_guest(c.unsigned_abs()).map(|n| -(n as i64)),
            _ => Ok(0),
        }
    }
}
