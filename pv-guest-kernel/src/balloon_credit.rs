//! The balloon's arithmetic: how many pages to move toward
//! `memory/target`, and the sets of pfns it has given back or holds spare.
//! Pure, so the host tests check it.
//!
//! Invariant: a [`PfnSet`] holds only pfns below [`TRACKED_PAGES`], and
//! [`credit`] never asks for more than its bounds.
#![forbid(unsafe_code)]

/// Pages the balloon follows a target for (16 MiB of pfns: dom0's
/// builder's largest domain); pages past it stay with the guest.
pub const TRACKED_PAGES: usize = 4096;

/// A set of pfns below [`TRACKED_PAGES`] (others are ignored).
#[derive(Clone, Copy)]
pub struct PfnSet([u64; TRACKED_PAGES / 64]);

impl Default for PfnSet {
    fn default() -> Self {
        PfnSet([0; TRACKED_PAGES / 64])
    }
}

impl PfnSet {
    /// Add `pfn`.
    pub fn insert(&mut self, pfn: u64) {
        if let Some(w) = self.0.get_mut(pfn as usize / 64) {
            *w |= 1 << (pfn % 64);
        }
    }
    /// Remove and return the lowest pfn in the set.
    pub fn pop(&mut self) -> Option<u64> {
        let (i, w) = self.0.iter_mut().enumerate().find(|(_, w)| **w != 0)?;
        let bit = w.trailing_zeros() as u64;
        *w &= !(1 << bit);
        Some(i as u64 * 64 + bit)
    }
}

/// How many pages to give back (positive) or take back (negative) to go
/// from `current` pages to `target_kib`, as Linux's balloon computes its
/// credit; at most `max_out` out and `max_in` back.
pub fn credit(current: u64, target_kib: u64, max_out: u64, max_in: u64) -> i64 {
    let target = target_kib / 4;
    if target < current { (current - target).min(max_out) as i64 } else { -((target - current).min(max_in) as i64) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credit_moves_toward_the_target_in_pages_both_ways() {
        // memory/target is in KiB; a page is 4 KiB.
        assert_eq!(credit(1024, 2048, u64::MAX, u64::MAX), 512, "4 MiB to 2 MiB: give back 512 pages");
        assert_eq!(credit(512, 4096, u64::MAX, u64::MAX), -512, "back to 4 MiB");
        assert_eq!(credit(1024, 4096, u64::MAX, u64::MAX), 0);
        assert_eq!(credit(1024, 4094, u64::MAX, u64::MAX), 1, "a partial page rounds down to pages");
        assert_eq!(credit(1024, 0, 100, u64::MAX), 100, "bounded per step");
        assert_eq!(credit(0, u64::MAX, u64::MAX, 7), -7);
    }

    #[test]
    fn pfn_sets_pop_the_lowest_and_ignore_pfns_past_the_tracked_range() {
        let mut s = PfnSet::default();
        s.insert(70);
        s.insert(3);
        s.insert(TRACKED_PAGES as u64 + 5);
        assert_eq!((s.pop(), s.pop(), s.pop()), (Some(3), Some(70), None));
    }
}
