//! Dom0's address space past its initial region (target only): fresh
//! 2 MiB windows, each one L1 table dom0 makes from a page of its own and
//! installs in a free slot of the L2 that maps its initial region. The
//! grant area is one (empty, filled by grant maps); the heap's memory is
//! another (mapped to dom0's own pages past the initial region, which the
//! domain builder gave it but did not map).
//!
//! Invariant: a window's L1 is pinned and installed once, for dom0's life;
//! it maps only frames dom0 owns (its P2M's) or nothing.

use crate::builder::entry_maddr;
use pv_guest_kernel::StartInfo;
use pv_guest_kernel::alloc::EarlyAlloc;
use pv_guest_kernel::mm::{PTE_RW, Table, set_entry};
use pv_guest_kernel::notes::VIRT_BASE;
use xen_public::pte::PteFlags;

/// Bytes one window maps.
pub const WINDOW_BYTES: u64 = 2 << 20;
/// Pages of dom0's own memory past its initial region that the heap's
/// window maps (`heap::HEAP_PAGES`); the pages after them are free for
/// [`own_pages_after_heap`].
pub const HEAP_WINDOW_PAGES: u64 = 512;

/// The L2 that maps dom0's initial region: its mfn, its read-only
/// virtual address and the slot of `VIRT_BASE`.
fn region_l2(si: &StartInfo) -> Option<(u64, u64, usize)> {
    let l2e0 = entry_maddr(si, VIRT_BASE, 2)?;
    let l2_mfn = l2e0 >> 12;
    let l2_va = VIRT_BASE + pv_guest_kernel::console::mfn_to_pfn(l2_mfn) * 4096;
    Some((l2_mfn, l2_va, ((l2e0 & 0xfff) / 8) as usize))
}

/// Whether slot `i` of the L2 at `l2_va` is empty.
fn l2_slot_free(l2_va: u64, i: usize) -> bool {
    // SAFETY: the L2 table is mapped read-only in the initial region at
    // `l2_va` (found through the M2P); `i` < 512.
    let e = unsafe { ((l2_va + i as u64 * 8) as *const u64).read_volatile() };
    !PteFlags::of(e).contains(PteFlags::PRESENT)
}

/// Install `l1_mfns.len()` windows at consecutive free slots of the L2
/// that maps the initial region, window `k` through the pinned L1
/// `l1_mfns[k]`: the first window's virtual address, or `None` if no run
/// of free slots is long enough (nothing installed then).
pub fn install_run(si: &StartInfo, l1_mfns: &[u64]) -> Option<u64> {
    let (l2_mfn, l2_va, first) = region_l2(si)?;
    let n = l1_mfns.len();
    let start = (first + 1..=512usize.checked_sub(n)?).find(|&s| (s..s + n).all(|i| l2_slot_free(l2_va, i)))?;
    for (k, mfn) in l1_mfns.iter().enumerate() {
        set_entry(l2_mfn, start + k, (mfn << 12) | PTE_RW).ok()?;
    }
    Some(VIRT_BASE + ((start - first) as u64) * WINDOW_BYTES)
}

/// Map up to 512 of dom0's own pages past the heap's pages (which follow
/// the initial region ending at `region_end`) in a new window: its
/// address, the pages mapped and the pfn of the first (the window is not
/// the initial region's linear map: `mm::mfn_of` does not apply to it).
pub fn own_pages_after_heap(si: &StartInfo, pages: &mut EarlyAlloc, region_end: u64, count: usize) -> Option<(u64, usize, u64)> {
    let after_heap = region_end + HEAP_WINDOW_PAGES * 4096;
    let (va, n) = map_own_pages(si, pages, after_heap, count)?;
    Some((va, n, (after_heap - VIRT_BASE) / 4096))
}

/// Install a new window whose L1 holds `entries` (`(index, pte)`); its
/// virtual address. The L1 page comes from `pages`.
pub fn new_window(si: &StartInfo, pages: &mut EarlyAlloc, entries: &[(usize, u64)]) -> Option<u64> {
    let (l2_mfn, l2_va, first) = region_l2(si)?;
    let idx = (first + 1..512).find(|&i| l2_slot_free(l2_va, i))?;
    let page = pages.alloc_page()?;
    let l1 = Table::new(page, pv_guest_kernel::mm::mfn_of(si, page), 1, entries).ok()?;
    set_entry(l2_mfn, idx, (l1.mfn << 12) | PTE_RW).ok()?;
    Some(VIRT_BASE + ((idx - first) as u64) * WINDOW_BYTES)
}

/// Map up to 512 of dom0's own pages past its initial region (which ends
/// at `region_end`, a virtual address) in a new window: its address and
/// the pages mapped (fewer if dom0 has fewer).
pub fn map_own_pages(si: &StartInfo, pages: &mut EarlyAlloc, region_end: u64, count: usize) -> Option<(u64, usize)> {
    let first_pfn = (region_end - VIRT_BASE) / 4096;
    let n = count.min(512).min(si.nr_pages.saturating_sub(first_pfn) as usize);
    if n == 0 {
        return None;
    }
    let mut entries = [(0usize, 0u64); 512];
    for (i, e) in entries.iter_mut().enumerate().take(n) {
        let mfn = pv_guest_kernel::mm::p2m(si, first_pfn + i as u64);
        *e = (i, (mfn << 12) | PTE_RW);
    }
    Some((new_window(si, pages, &entries[..n])?, n))
}
