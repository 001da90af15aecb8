//! Dom0's grant-mapping area (target only): 2 MiB of dom0's virtual
//! address space just past its initial region, covered by one L1 table
//! dom0 makes from a page of its own and installs in a free L2 slot. Its
//! 512 slots start empty, a `GNTTABOP_map_grant_ref` with
//! `GNTMAP_host_map` fills one, and the unmap empties it again (Xen clears
//! the entry), so no dom0 page is ever displaced by a guest's.
//!
//! Invariant: a slot is handed out to one mapping at a time and is empty
//! whenever it is free; the L1 stays pinned for dom0's life.

use crate::builder::entry_maddr;
use pv_guest_kernel::alloc::EarlyAlloc;
use pv_guest_kernel::mm::{PTE_RW, Table, set_entry};
use pv_guest_kernel::notes::VIRT_BASE;
use pv_guest_kernel::{StartInfo, grants};
use xen_public::errno::ENOMEM;
use xen_public::pte::PteFlags;

/// Slots in the area (one L1 table).
pub const SLOTS: usize = 512;

/// The area and which of its slots are taken.
pub struct GrantArea {
    base: u64,
    used: [bool; SLOTS],
    free: usize,
}

/// A mapped grant: where, and the handle to unmap it with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapped {
    /// Its slot's virtual address.
    pub va: u64,
    /// The map's handle.
    pub handle: u32,
}

impl GrantArea {
    /// Make the area: a fresh L1 from `pages`, installed in the first
    /// empty L2 slot after the one mapping `VIRT_BASE`.
    pub fn new(si: &StartInfo, pages: &mut EarlyAlloc) -> Option<GrantArea> {
        let l2e0 = entry_maddr(si, VIRT_BASE, 2)?;
        let l2_mfn = l2e0 >> 12;
        let l2_va = VIRT_BASE + pv_guest_kernel::console::mfn_to_pfn(l2_mfn) * 4096;
        let first = ((l2e0 & 0xfff) / 8) as usize;
        let idx = (first + 1..512).find(|&i| {
            // SAFETY: the L2 table is mapped read-only in the initial
            // region at `l2_va`; `i` < 512.
            let e = unsafe { ((l2_va + i as u64 * 8) as *const u64).read_volatile() };
            !PteFlags::of(e).contains(PteFlags::PRESENT)
        })?;
        let page = pages.alloc_page()?;
        let mfn = pv_guest_kernel::mm::mfn_of(si, page);
        let l1 = Table::new(page, mfn, 1, &[]).ok()?;
        set_entry(l2_mfn, idx, (l1.mfn << 12) | PTE_RW).ok()?;
        let base = VIRT_BASE + ((idx - first) as u64) * (2 << 20);
        Some(GrantArea { base, used: [false; SLOTS], free: SLOTS })
    }

    /// Slots free.
    pub fn free(&self) -> usize {
        self.free
    }

    /// Map `gref` of `domid` (read-only if asked) in a free slot.
    pub fn map(&mut self, domid: u16, gref: u32, readonly: bool) -> Result<Mapped, i64> {
        let i = self.used.iter().position(|u| !u).ok_or(-ENOMEM)?;
        let va = self.base + i as u64 * 4096;
        let (status, handle) = grants::map(va, gref, domid, readonly);
        if status != 0 {
            return Err(i64::from(status));
        }
        self.used[i] = true;
        self.free -= 1;
        Ok(Mapped { va, handle })
    }

    /// Unmap `m` and free its slot.
    pub fn unmap(&mut self, m: Mapped) {
        let st = grants::unmap(m.va, m.handle);
        if st != 0 {
            pv_guest_kernel::println!("dom0: grant area: unmap of {:#x} failed: {st}; slot retired", m.va);
            return;
        }
        let i = ((m.va - self.base) / 4096) as usize;
        if let Some(u) = self.used.get_mut(i).filter(|u| **u) {
            *u = false;
            self.free += 1;
        }
    }
}
