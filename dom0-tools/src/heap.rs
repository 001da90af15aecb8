//! Dom0's heap: the `#[global_allocator]` (talc) over 2 MiB of dom0's own
//! memory past its initial region (or, failing that, a run of the initial
//! region's pages), claimed once at startup.
//!
//! Invariant: the heap's pages are mapped for it alone (a window of their
//! own, or handed out by dom0's `EarlyAlloc` once), so nothing else can
//! alias them.
//! Before `init` every allocation fails (talc's `Manual` source never
//! claims memory by itself).

use pv_guest_kernel::StartInfo;
use pv_guest_kernel::alloc::{EarlyAlloc, PAGE_SIZE};
use talc::TalcLock;
use talc::source::Manual;

/// Heap pages wanted: 2 MiB. xenstored holds the store of at most
/// `MAX_GUESTS` + 1 domains (a few dozen nodes each, at most 1000 by Xen's
/// quota, each under 2 KiB) plus watches and transactions; 2 MiB is
/// that with room to spare, and it fits the initial region's window
/// (about 4 MiB today, at least 512 KiB by the ABI) of a 64 MiB dom0.
pub const HEAP_PAGES: u64 = dom0_tools::va_space::HEAP_WINDOW_PAGES;
/// Pages left to the rest of dom0 (shared_info, the builder's two scratch
/// windows: 33 pages; the grant area's L1: 1; the builder's P2M of a new
/// domain's initial region comes from the heap) when the window is small.
pub const RESERVED_PAGES: u64 = 80;

#[global_allocator]
static HEAP: TalcLock<spin::Mutex<()>, Manual> = TalcLock::new(Manual);

/// Claim the heap: `HEAP_PAGES` of dom0's own memory past its initial
/// region, mapped in a window of their own ([`dom0_tools::va_space`]), so
/// the initial region's pages stay for what must live there; failing
/// that, from `pages` (fewer if the region would then keep less than
/// `RESERVED_PAGES`). Its size in bytes (0 if nothing could be claimed).
/// Call once.
pub fn init(si: &StartInfo, pages: &mut EarlyAlloc) -> u64 {
    let (base, n) = match dom0_tools::va_space::map_own_pages(si, pages, pages.end(), HEAP_PAGES as usize) {
        Some((va, n)) => (va, n as u64),
        None => {
            let n = HEAP_PAGES.min(pages.remaining().saturating_sub(RESERVED_PAGES));
            let Some(base) = pages.alloc_run(n) else { return 0 };
            (base, n)
        }
    };
    let bytes = n * PAGE_SIZE;
    // SAFETY: `n` consecutive pages at `base`, mapped writable (a window of
    // dom0's own pages nothing else maps, or pages of the initial region
    // handed out by `pages` once), to this heap only; they stay mapped for
    // dom0's life and nothing else references them.
    let end = unsafe { HEAP.lock().claim(base as *mut u8, bytes as usize) };
    if end.is_some() { bytes } else { 0 }
}

/// A round trip through the heap: a 4 KiB vector built and summed.
pub fn works() -> bool {
    let v: alloc::vec::Vec<u64> = (0..512).collect();
    v.iter().sum::<u64>() == 512 * 511 / 2
}
