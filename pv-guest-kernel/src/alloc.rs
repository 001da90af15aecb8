//! The early page allocator: hands out the free pages of the initial
//! mapped region, above the bootstrap stack.
//!
//! Xen maps the initial region up to a 4 MiB boundary with at least 512 KiB
//! of padding after the boot stack (which follows the `nr_pt_frames` page
//! tables at `pt_base`). Invariant: every page handed out lies inside that
//! window and is handed out once.
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
    /// The window after the boot stack: from `pt_base + (nr_pt_frames + 1)
    /// pages` to the end of the mapped region (the next 4 MiB boundary,
    /// one more 4 MiB if that leaves less than 512 KiB), clipped to the
    /// domain's `nr_pages` counted from `virt_base`.
    pub fn from_start_info(pt_base: u64, nr_pt_frames: u64, virt_base: u64, nr_pages: u64) -> Self {
        const MIB4: u64 = 4 << 20;
        let next = pt_base.saturating_add((nr_pt_frames + 1) * PAGE_SIZE);
        let mut v_end = next.saturating_add(MIB4 - 1) & !(MIB4 - 1);
        if v_end - next < GUARANTEED_PADDING {
            v_end = v_end.saturating_add(MIB4);
        }
        let by_pages = virt_base.saturating_add(nr_pages.saturating_mul(PAGE_SIZE));
        let end = v_end.min(by_pages).max(next);
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

    /// `n` consecutive pages (`n` > 0); the first one's virtual address.
    /// `None`, taking nothing, if fewer than `n` are left.
    pub fn alloc_run(&mut self, n: u64) -> Option<u64> {
        if n == 0 || self.remaining() < n {
            return None;
        }
        let p = self.next;
        self.next += n * PAGE_SIZE;
        Some(p)
    }

    /// One past the window's last page: the end of the initial region
    /// (clipped to the domain's pages).
    pub fn end(&self) -> u64 {
        self.end
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
        // Up to the 4 MiB boundary: 0x400000 - 0x3d000 bytes left.
        assert_eq!(a.remaining(), (0x40_0000 - 0x3d000) / PAGE_SIZE);
        assert_eq!(a.end(), base + 0x40_0000, "the initial region ends at 4 MiB");
    }

    #[test]
    fn exhausts_without_overlap_and_keeps_512k_of_padding() {
        // Stack ends at 0x3c0000: less than 512 KiB to 4 MiB, so the region
        // runs to 8 MiB.
        let mut a = EarlyAlloc::from_start_info(0x3b_e000, 1, 0, 1 << 20);
        let mut seen = std::collections::BTreeSet::new();
        while let Some(p) = a.alloc_page() {
            assert!(seen.insert(p));
        }
        assert_eq!(seen.len() as u64, (0x80_0000 - 0x3c_0000) / PAGE_SIZE);
        assert_eq!(a.alloc_page(), None);
    }

    #[test]
    fn a_run_is_consecutive_and_never_overlaps_later_pages() {
        let mut a = EarlyAlloc::from_start_info(0x3000, 1, 0, 16);
        assert_eq!(a.remaining(), 11);
        assert_eq!(a.alloc_run(4), Some(0x5000));
        assert_eq!(a.alloc_page(), Some(0x9000));
        assert_eq!(a.alloc_run(7), None, "too few left: nothing taken");
        assert_eq!(a.alloc_run(0), None);
        assert_eq!(a.alloc_run(6), Some(0xa000));
        assert_eq!(a.remaining(), 0);
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
