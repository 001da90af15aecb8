//! The list of free RAM ranges built from the firmware's memory map.
//!
//! Invariant: ranges are page-aligned, non-empty, sorted by start, and
//! disjoint with a gap between neighbours (touching ranges are merged). The
//! hypervisor image, the boot modules and the boot information block are
//! subtracted before the frame allocator takes the list over.
#![forbid(unsafe_code)]

use super::PAGE_SIZE;

/// A half-open physical range `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl Range {
    /// Bytes in the range.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Whether the range is empty.
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

/// The list is full; the range was not added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

/// A fixed-capacity set of free ranges.
#[derive(Clone, Debug)]
pub struct MemMap<const N: usize> {
    ranges: heapless::Vec<Range, N>,
}

impl<const N: usize> Default for MemMap<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> MemMap<N> {
    /// An empty map.
    pub const fn new() -> Self {
        MemMap { ranges: heapless::Vec::new() }
    }

    /// The ranges, sorted.
    pub fn ranges(&self) -> &[Range] {
        &self.ranges
    }

    /// Total free bytes.
    pub fn total(&self) -> u64 {
        self.ranges().iter().map(Range::len).sum()
    }

    /// One past the highest free byte, or 0 if empty.
    pub fn top(&self) -> u64 {
        self.ranges().last().map_or(0, |r| r.end)
    }

    /// Add usable RAM `[base, base + len)`, shrunk inward to page boundaries
    /// and merged with its neighbours.
    pub fn add(&mut self, base: u64, len: u64) -> Result<(), Full> {
        let start = base.saturating_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1);
        let end = base.saturating_add(len) & !(PAGE_SIZE - 1);
        if end <= start {
            return Ok(());
        }
        // Cut out what is already present, so overlapping firmware entries
        // never count twice, then insert and merge.
        self.remove(start, end)?;
        let at = self.ranges().partition_point(|r| r.start < start);
        self.ranges.insert(at, Range { start, end }).map_err(|_| Full)?;
        self.merge();
        Ok(())
    }

    /// Remove `[start, end)`, widened outward to page boundaries. Splitting a
    /// range needs one free slot; without it the map is left unchanged.
    pub fn remove(&mut self, start: u64, end: u64) -> Result<(), Full> {
        let start = start & !(PAGE_SIZE - 1);
        let end = end.saturating_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1);
        if end <= start {
            return Ok(());
        }
        let splits = self.ranges().iter().any(|r| r.start < start && r.end > end);
        if splits && self.ranges.is_full() {
            return Err(Full);
        }
        // At most one range splits, and only with a slot free: `out` fits.
        let mut out = heapless::Vec::new();
        for r in self.ranges() {
            let pieces = [Range { start: r.start, end: r.end.min(start) }, Range { start: r.start.max(end), end: r.end }];
            for p in pieces.into_iter().filter(|p| !p.is_empty()) {
                out.push(p).map_err(|_| Full)?;
            }
        }
        self.ranges = out;
        Ok(())
    }

    fn merge(&mut self) {
        let mut w = 0;
        for i in 0..self.ranges.len() {
            let r = self.ranges[i];
            if w > 0 && self.ranges[w - 1].end >= r.start {
                self.ranges[w - 1].end = self.ranges[w - 1].end.max(r.end);
            } else {
                self.ranges[w] = r;
                w += 1;
            }
        }
        self.ranges.truncate(w);
    }

    /// Take `bytes` (rounded up to pages) from the lowest range that fits
    /// entirely below `limit`, and return its start.
    pub fn carve(&mut self, bytes: u64, limit: u64) -> Option<u64> {
        let bytes = bytes.checked_add(PAGE_SIZE - 1)? & !(PAGE_SIZE - 1);
        let r = *self.ranges().iter().find(|r| r.len() >= bytes && r.start + bytes <= limit)?;
        self.remove(r.start, r.start + bytes).ok()?;
        Some(r.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn map(entries: &[(u64, u64)]) -> MemMap<8> {
        let mut m = MemMap::new();
        for &(b, l) in entries {
            m.add(b, l).unwrap();
        }
        m
    }

    fn pairs<const N: usize>(m: &MemMap<N>) -> std::vec::Vec<(u64, u64)> {
        m.ranges().iter().map(|r| (r.start, r.end)).collect()
    }

    #[test]
    fn unaligned_areas_shrink_inward() {
        let m = map(&[(0x1001, 0x3000)]);
        assert_eq!(pairs(&m), [(0x2000, 0x4000)]);
        let m = map(&[(0x100, 0x200)]);
        assert_eq!(m.ranges().len(), 0);
    }

    #[test]
    fn out_of_order_and_touching_areas_are_sorted_and_merged() {
        let m = map(&[(8 * MIB, 8 * MIB), (MIB, 3 * MIB), (4 * MIB, 4 * MIB)]);
        assert_eq!(pairs(&m), [(MIB, 16 * MIB)]);
    }

    #[test]
    fn overlapping_firmware_entries_do_not_count_twice() {
        let m = map(&[(0, 4 * MIB), (2 * MIB, 4 * MIB)]);
        assert_eq!(pairs(&m), [(0, 6 * MIB)]);
        assert_eq!(m.total(), 6 * MIB);
    }

    #[test]
    fn reserving_the_image_and_modules_splits_and_trims() {
        let mut m = map(&[(0, 0x9fc00), (MIB, 127 * MIB)]);
        m.remove(MIB, 3 * MIB + 10).unwrap(); // image, unaligned end widens
        m.remove(10 * MIB + 100, 11 * MIB).unwrap(); // module, unaligned start widens
        m.remove(0, MIB).unwrap(); // legacy low memory
        assert_eq!(pairs(&m), [(3 * MIB + 0x1000, 10 * MIB), (11 * MIB, 128 * MIB)]);
    }

    #[test]
    fn reserving_outside_ram_changes_nothing() {
        let mut m = map(&[(MIB, MIB)]);
        m.remove(0xfee0_0000, 0xfee0_1000).unwrap();
        assert_eq!(pairs(&m), [(MIB, 2 * MIB)]);
    }

    #[test]
    fn a_full_map_refuses_a_split_and_stays_unchanged() {
        let mut m: MemMap<2> = MemMap::new();
        m.add(0, MIB).unwrap();
        m.add(4 * MIB, MIB).unwrap();
        assert_eq!(m.add(8 * MIB, MIB), Err(Full));
        let before = pairs(&m);
        assert_eq!(m.remove(0x1000, 0x2000), Err(Full));
        assert_eq!(pairs(&m), before);
    }

    #[test]
    fn carve_takes_the_lowest_fit_below_the_limit() {
        let mut m = map(&[(MIB, 0x1000), (4 * MIB, 4 * MIB)]);
        assert_eq!(m.carve(0x1800, u64::MAX), Some(4 * MIB));
        assert_eq!(pairs(&m), [(MIB, MIB + 0x1000), (4 * MIB + 0x2000, 8 * MIB)]);
        assert_eq!(m.carve(16 * MIB, u64::MAX), None);
        assert_eq!(m.carve(0x1000, MIB), None);
    }

    #[test]
    fn top_and_total() {
        let m = map(&[(0, 0x9f000), (MIB, 15 * MIB)]);
        assert_eq!(m.top(), 16 * MIB);
        assert_eq!(m.total(), 0x9f000 + 15 * MIB);
    }
}
