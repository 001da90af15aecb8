//! Dom0's staging area for the domain builder (target only): a run of
//! 2 MiB windows at consecutive virtual addresses past dom0's initial
//! region ([`crate::va_space::install_run`]), whose slots map frames of a
//! domain being built, so that a kernel image too big for dom0's heap is
//! decompressed straight into the new domain's memory (libxenguest
//! decompresses into its own process; dom0 has 2 MiB of heap).
//!
//! The windows' L1 tables are dom0's own pages past its heap, zeroed and
//! pinned once at startup, for dom0's life.
//!
//! Invariant: a slot is empty unless [`ForeignArea::map`] filled it for the
//! build under way, and [`ForeignArea::unmap_all`] empties every slot it
//! filled (a foreign mapping holds a reference on the frame: left behind,
//! it would keep the destroyed domain's frame from the free list).

use crate::hv;
use pv_guest_kernel::StartInfo;
use pv_guest_kernel::alloc::EarlyAlloc;
use pv_guest_kernel::mm::{PTE_RW, Table};
use xen_public::MmuUpdate;

/// Windows in the area: 128 MiB, room for the 66 MiB ELF of Debian's
/// generic 6.1 kernel and its 32 MiB xz dictionary.
pub const WINDOWS: usize = 64;
/// Pages the area maps at most.
pub const AREA_PAGES: u64 = WINDOWS as u64 * 512;
/// Slots filled per `mmu_update`.
const BATCH: usize = 64;

/// The area: where it starts, its L1 tables, and how many leading slots
/// are filled.
pub struct ForeignArea {
    base: u64,
    l1_mfns: [u64; WINDOWS],
    filled: u64,
}

impl ForeignArea {
    /// Make the area from dom0's own pages past its heap (`region_end`:
    /// where dom0's initial region ends); `None` if dom0 lacks the pages or
    /// the address space.
    pub fn new(si: &StartInfo, pages: &mut EarlyAlloc, region_end: u64) -> Option<ForeignArea> {
        let (pool, n, first_pfn) = crate::va_space::own_pages_after_heap(si, pages, region_end, WINDOWS)?;
        if n < WINDOWS {
            return None;
        }
        let mut l1_mfns = [0u64; WINDOWS];
        for (k, mfn) in l1_mfns.iter_mut().enumerate() {
            let va = pool + k as u64 * 4096;
            // The pool window maps pfns first_pfn.. (not at their linear
            // address): the frame comes from dom0's P2M. Zeroed, mapped
            // read-only in the pool window and pinned as an L1: its entries
            // change only through mmu_update from now on.
            let frame = pv_guest_kernel::mm::p2m(si, first_pfn + k as u64);
            let t = Table::new(va, frame, 1, &[]).ok()?;
            *mfn = t.mfn;
        }
        let base = crate::va_space::install_run(si, &l1_mfns)?;
        Some(ForeignArea { base, l1_mfns, filled: 0 })
    }

    /// The machine address of slot `i`'s L1 entry.
    fn slot_maddr(&self, i: u64) -> u64 {
        (self.l1_mfns[(i / 512) as usize] << 12) + (i % 512) * 8
    }

    /// Map `mfns` of `domid`, writable, at slots `filled..` (after the
    /// ones mapped before); the first one's slot.
    pub fn map(&mut self, domid: u16, mfns: &[u64]) -> Result<u64, i64> {
        let first = self.filled;
        if first + mfns.len() as u64 > AREA_PAGES {
            return Err(-xen_public::errno::E2BIG);
        }
        let (reached, r) = hv::map_frames(|i| self.slot_maddr(i), first, mfns, PTE_RW, domid);
        // What a failed call reached is counted too: unmap_all clears
        // those slots as well (clearing an empty one is harmless).
        self.filled = first + reached;
        r.map(|()| first)
    }

    /// The bytes of slots `first..first + pages`, which must be mapped.
    ///
    /// # Panics
    /// Never: a range past the filled slots gives an empty slice.
    pub fn bytes(&mut self, first: u64, pages: u64) -> &mut [u8] {
        if first.checked_add(pages).is_none_or(|end| end > self.filled) {
            return &mut [];
        }
        // SAFETY: slots `first..first + pages` map frames of the domain
        // being built, writable, at consecutive addresses of this area,
        // which nothing else in dom0 maps; the slice lives no longer than
        // this borrow of the area, and unmap_all needs `&mut self`.
        unsafe { core::slice::from_raw_parts_mut((self.base + first * 4096) as *mut u8, (pages * 4096) as usize) }
    }

    /// Empty every slot filled since the last call, and flush dom0's TLB.
    pub fn unmap_all(&mut self) {
        let mut i = 0;
        while i < self.filled {
            let n = (self.filled - i).min(BATCH as u64) as usize;
            let mut reqs = [MmuUpdate::default(); BATCH];
            for (j, r) in reqs.iter_mut().enumerate().take(n) {
                *r = MmuUpdate { ptr: self.slot_maddr(i + j as u64), val: 0 };
            }
            let rc = hv::mmu_update(&reqs[..n], xen_public::DOMID_SELF);
            if rc != 0 {
                pv_guest_kernel::println!("dom0: staging area: unmap of slots {i}.. failed: {rc}");
            }
            i += n as u64;
        }
        hv::flush_tlb_local();
        self.filled = 0;
    }
}
