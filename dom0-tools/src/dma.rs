//! Machine-contiguous DMA memory for dom0's device drivers, as pure
//! bookkeeping: a [`Pool`] of dom0 pages with the machine frame (mfn)
//! behind each, runs of pages whose mfns are consecutive, and the choice
//! between handing a device a buffer's machine address and bouncing it
//! ([`direct_maddr`]).
//!
//! A PV dom0's pseudo-physical memory is not machine-contiguous (Xen's
//! P2M maps each pfn to any mfn), while a device without an IOMMU reads
//! and writes machine addresses: a DMA region of more than one page must
//! be a run of consecutive mfns. Invariant: [`Pool::alloc`] only hands out
//! runs of free pages whose mfns are consecutive, each page to one
//! allocation at a time; [`direct_maddr`] only answers for a buffer whose
//! every page is mapped and follows the previous one in machine memory.
#![forbid(unsafe_code)]

use alloc::vec::Vec;

/// Bytes in a page (and in a machine frame).
pub const PAGE_SIZE: u64 = 4096;

/// A set of dom0 pages, consecutive in dom0's virtual address space,
/// with the machine frame behind each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pool {
    frames: Vec<u64>,
    used: Vec<bool>,
}

impl Pool {
    /// A pool of the pages whose mfns are `frames`, in virtual order.
    pub fn new(frames: Vec<u64>) -> Pool {
        let used = alloc::vec![false; frames.len()];
        Pool { frames, used }
    }

    /// Pages in the pool.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether the pool has no page.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Whether page `i` follows page `i - 1` in machine memory.
    fn follows(&self, i: usize) -> bool {
        i > 0 && self.frames[i - 1].checked_add(1) == Some(self.frames[i])
    }

    /// The free runs (first page, pages) whose mfns are consecutive.
    pub fn free_runs(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let mut i = 0;
        core::iter::from_fn(move || {
            while i < self.len() && self.used[i] {
                i += 1;
            }
            if i >= self.len() {
                return None;
            }
            let start = i;
            i += 1;
            while i < self.len() && !self.used[i] && self.follows(i) {
                i += 1;
            }
            Some((start, i - start))
        })
    }

    /// The longest free machine-contiguous run, in pages.
    pub fn longest_free_run(&self) -> usize {
        self.free_runs().map(|(_, n)| n).max().unwrap_or(0)
    }

    /// Take `n` (> 0) free pages with consecutive mfns: the smallest free
    /// run that fits (so single-page bounces leave long runs whole); its
    /// first page's index.
    pub fn alloc(&mut self, n: usize) -> Option<usize> {
        if n == 0 {
            return None;
        }
        let (start, _) = self.free_runs().filter(|&(_, len)| len >= n).min_by_key(|&(_, len)| len)?;
        self.used[start..start + n].fill(true);
        Some(start)
    }

    /// Give back `n` pages from `first`, which one `alloc` handed out.
    /// False, changing nothing, if the range is outside the pool or any
    /// page in it is free (a double free).
    pub fn free(&mut self, first: usize, n: usize) -> bool {
        let Some(end) = first.checked_add(n).filter(|&e| e <= self.len() && n > 0) else { return false };
        if !self.used[first..end].iter().all(|&u| u) {
            return false;
        }
        self.used[first..end].fill(false);
        true
    }

    /// The machine address of page `i`.
    pub fn maddr(&self, i: usize) -> Option<u64> {
        self.frames.get(i).map(|f| f * PAGE_SIZE)
    }

    /// The page whose machine frame holds `maddr`'s first byte.
    pub fn index_of_maddr(&self, maddr: u64) -> Option<usize> {
        self.frames.iter().position(|&f| f == maddr / PAGE_SIZE)
    }
}

/// The machine address a device may use for the `len`-byte buffer at
/// virtual address `va`, if every page it touches is mapped (`frame_of`
/// gives the mfn behind a page's virtual address) and each follows the
/// previous one in machine memory; `None` means bounce it. Looks at
/// `len / PAGE_SIZE + 2` pages at most.
pub fn direct_maddr(va: u64, len: usize, frame_of: impl Fn(u64) -> Option<u64>) -> Option<u64> {
    let last = va.checked_add((len as u64).checked_sub(1)?)?;
    let first_page = va & !(PAGE_SIZE - 1);
    let first_mfn = frame_of(first_page)?;
    let pages = (last / PAGE_SIZE) - (va / PAGE_SIZE);
    for k in 1..=pages {
        if frame_of(first_page + k * PAGE_SIZE)? != first_mfn.checked_add(k)? {
            return None;
        }
    }
    first_mfn.checked_mul(PAGE_SIZE).map(|m| m + (va % PAGE_SIZE))
}

/// Pages a bounce of `len` bytes takes.
pub fn bounce_pages(len: usize) -> usize {
    len.div_ceil(PAGE_SIZE as usize).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pv_dma_run_needs_consecutive_mfns_not_consecutive_pfns() {
        // Pages 0..3 are machine-contiguous, 3 breaks the run, 4..6 again.
        let pool = Pool::new(alloc::vec![100, 101, 102, 50, 200, 201, 202]);
        let runs: Vec<_> = pool.free_runs().collect();
        assert_eq!(runs, [(0, 3), (3, 1), (4, 3)]);
        assert_eq!(pool.longest_free_run(), 3);
    }

    #[test]
    fn dma_alloc_takes_the_smallest_run_that_fits_and_never_spans_a_machine_gap() {
        let mut pool = Pool::new(alloc::vec![10, 11, 12, 13, 40, 70, 71]);
        assert_eq!(pool.alloc(1), Some(4), "the lone page, leaving runs whole");
        assert_eq!(pool.alloc(2), Some(5));
        assert_eq!(pool.alloc(3), Some(0));
        assert_eq!(pool.alloc(2), None, "one page left: no run of two");
        assert_eq!(pool.alloc(1), Some(3));
        assert_eq!(pool.alloc(1), None);
        assert_eq!(pool.alloc(0), None);
        assert_eq!(pool.maddr(5), Some(70 * 4096));
        assert_eq!(pool.index_of_maddr(70 * 4096 + 12), Some(5));
        assert_eq!(pool.index_of_maddr(99 * 4096), None);
    }

    #[test]
    fn freeing_what_was_not_allocated_is_refused() {
        let mut pool = Pool::new(alloc::vec![1, 2, 3, 4]);
        let a = pool.alloc(2).unwrap();
        assert!(!pool.free(a, 3), "one page of the range is free");
        assert!(!pool.free(usize::MAX, 2), "range overflows");
        assert!(!pool.free(3, 5), "past the pool");
        assert!(!pool.free(a, 0));
        assert!(pool.free(a, 2));
        assert!(!pool.free(a, 2), "double free");
        assert_eq!(pool.longest_free_run(), 4);
    }

    #[test]
    fn a_buffer_inside_one_page_is_used_in_place() {
        let frame = |va: u64| Some(0x5000 + va / 4096);
        assert_eq!(direct_maddr(0x3010, 16, frame), Some((0x5003 << 12) + 0x10));
        assert_eq!(direct_maddr(0x3ff0, 16, frame), Some((0x5003 << 12) + 0xff0), "ends on the last byte");
    }

    #[test]
    fn a_buffer_crossing_into_a_machine_discontiguous_page_bounces() {
        // Virtual pages 3 and 4 map mfns 9 and 20.
        let frame = |va: u64| Some(if va / 4096 == 3 { 9 } else { 20 });
        assert_eq!(direct_maddr(0x3ff8, 16, frame), None);
        assert_eq!(direct_maddr(0x3ff0, 16, frame), Some(9 * 4096 + 0xff0));
        // Consecutive mfns across the boundary: no bounce.
        let frame = |va: u64| Some(va / 4096 + 6);
        assert_eq!(direct_maddr(0x3ff8, 8192, frame), Some(9 * 4096 + 0xff8));
    }

    #[test]
    fn an_unmapped_empty_or_wrapping_buffer_is_never_direct() {
        assert_eq!(direct_maddr(0x3000, 16, |_| None), None);
        assert_eq!(direct_maddr(0x3000, 0, |va| Some(va / 4096)), None);
        assert_eq!(direct_maddr(u64::MAX - 4, 16, |va| Some(va / 4096)), None);
        // An mfn whose successor overflows cannot continue a run.
        assert_eq!(direct_maddr(0x3ff8, 16, |va| Some(if va < 0x4000 { u64::MAX } else { 0 })), None);
    }

    #[test]
    fn bounce_size_is_whole_pages() {
        assert_eq!(bounce_pages(1), 1);
        assert_eq!(bounce_pages(4096), 1);
        assert_eq!(bounce_pages(4097), 2);
        assert_eq!(bounce_pages(0), 1);
    }
}
