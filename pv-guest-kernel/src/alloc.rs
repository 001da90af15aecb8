//! The early page allocator: hands out the free pages of the initial
//! mapped region, above the bootstrap stack.
//!
//! Xen guarantees at least 512 KiB of mapped padding after the boot stack
//! (which follows the `nr_pt_frames` page tables at `pt_base`). Invariant:
//! every page handed out lies inside that window and is handed out once.
#![forbid(unsafe_code)]

/// Page size.
pub const PAGE_SIZE: u64 = 4096;
/// Mapped padding Xen guarantees after the boot stack.
pub const GUARANTEED_PADDING: u64 = 512 << 10;

/// A bump allocator over guest virtual pages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EarlyAlloc {
    next: u64,
    end: u64,
}

impl EarlyAlloc {
    /// The window after the boot stack: `pt_base + (nr_pt_frames + 1) pages`
    /// up to the guaranteed padding, clipped to the domain's `nr_pages`
    /// counted from `virt_base`.
    pub fn from_start_info(pt_base: u64, nr_pt_frames: u64, virt_base: u64, nr_pages: u64) -> Self {
        let next = pt_base.saturating_add((nr_pt_frames + 1) * PAGE_SIZE);
        let by_pages = virt_base.saturating_add(nr_pages.saturating_mul(PAGE_SIZE));
        let end = next.saturating_add(GUARANTEED_PADDING).min(by_pages).max(next);
        EarlyAlloc { next, end }
    }

    /// One page's virtual address.
    pub fn alloc_page(&mut self) -> Option<u64> {
        if self.next >= self.end {
            return None;
        }
        let p = self.next;
        self.next += PAGE_SIZE;
        Some(p)
    }

    /// Pages left.
    pub fn remaining(&self) -> u64 {
        (self.end - self.next) / PAGE_SIZE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_starts_after_the_boot_stack_and_spans_512k() {
        // ABI: bootstrap page tables, then one stack page, then >= 512 KiB mapped.
        let base = 0xffff_ffff_8000_0000;
        let mut a = EarlyAlloc::from_start_info(base + 0x36000, 5, base, 16384);
        assert_eq!(a.alloc_page(), Some(base + 0x36000 + 6 * PAGE_SIZE));
        assert_eq!(a.remaining(), 127);
    }

    #[test]
    fn exhausts_without_overlap() {
        let mut a = EarlyAlloc::from_start_info(0x10_0000, 1, 0, 1 << 20);
        let mut seen = std::collections::BTreeSet::new();
        while let Some(p) = a.alloc_page() {
            assert!(seen.insert(p));
        }
        assert_eq!(seen.len() as u64, GUARANTEED_PADDING / PAGE_SIZE);
        assert_eq!(a.alloc_page(), None);
    }

    #[test]
    fn clipped_to_the_domain_size() {
        let mut a = EarlyAlloc::from_start_info(0x3000, 1, 0, 8);
        assert_eq!(a.remaining(), 3);
        a.alloc_page();
        assert_eq!(a.remaining(), 2);
        let empty = EarlyAlloc::from_start_info(0x3000, 1, 0, 2);
        assert_eq!(empty.remaining(), 0);
    }
}
