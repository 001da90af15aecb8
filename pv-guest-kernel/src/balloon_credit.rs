//! The balloon's arithmetic: how many pages to move toward
//! `memory/target`, the sets of initial-region pfns it has given back or
//! holds spare, and the range of pfns past the initial region it has given
//! back. Pure, so the host tests check it.
//!
//! Invariant: a [`PfnSet`] holds only pfns below [`TRACKED_PAGES`]; a
//! [`Tail`] gives back and takes back only pfns in its range, highest out
//! first, so what it has given back is always one range at its top; and
//! [`credit`] never asks for more than its bounds.
#![forbid(unsafe_code)]

use core::ops::Range;

/// Initial-region pfns the balloon tracks one by one: 16 MiB, the largest
/// initial region dom0's builder makes (`REGION_P2M_BUDGET`); the pfns
/// past the region are a [`Tail`], tracked by two numbers whatever the
/// domain's size.
pub const TRACKED_PAGES: usize = 4096;

/// The pfns past the initial region, `[first, end)`: nothing maps them and
/// the guest never uses them, so they go back to the hypervisor first, the
/// highest first, and come back in the reverse order. `[first, held)` are
/// the guest's, `[held, end)` given back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tail {
    first: u64,
    held: u64,
    end: u64,
}

impl Tail {
    /// The pfns `[first, end)`, all held (`first` past `end`: none).
    pub fn new(first: u64, end: u64) -> Tail {
        Tail { first: first.min(end), held: end, end }
    }

    /// Up to `n` held pfns to give back next: the highest ones. Give them
    /// back highest first, so that a partial success leaves the rest of
    /// the range held.
    pub fn next_out(&self, n: u64) -> Range<u64> {
        self.held - n.min(self.held - self.first)..self.held
    }

    /// The top `k` held pfns went back.
    pub fn gave_back(&mut self, k: u64) {
        self.held -= k.min(self.held - self.first);
    }

    /// Up to `n` given-back pfns to take back next: the lowest ones, in
    /// order, so that a partial success takes back a prefix.
    pub fn next_in(&self, n: u64) -> Range<u64> {
        self.held..self.held + n.min(self.end - self.held)
    }

    /// The first `k` of [`Self::next_in`] came back.
    pub fn took_back(&mut self, k: u64) {
        self.held += k.min(self.end - self.held);
    }

    /// Pfns given back.
    pub fn out(&self) -> u64 {
        self.end - self.held
    }
}

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
    fn a_tail_gives_back_its_highest_pfns_and_takes_them_back_lowest_first() {
        // A 64 MiB domain whose initial region is its first 4 MiB.
        let mut t = Tail::new(1024, 16384);
        assert_eq!(t.next_out(64), 16320..16384);
        t.gave_back(64);
        assert_eq!(t.next_out(8192 - 64), 8192..16320);
        t.gave_back(8192 - 64);
        assert_eq!(t.out(), 8192, "64 MiB to 32 MiB: 8192 pfns out, one range at the top");
        assert_eq!(t.next_in(64), 8192..8256);
        t.took_back(10);
        assert_eq!(t.out(), 8182, "a partial populate takes back a prefix");
        assert_eq!(t.next_in(u64::MAX), 8202..16384);
        t.took_back(u64::MAX);
        assert_eq!((t.out(), t.next_in(5)), (0, 16384..16384), "nothing more to take back");
    }

    #[test]
    fn a_tail_never_gives_back_the_initial_region_or_past_its_range() {
        let mut t = Tail::new(1024, 2048);
        assert_eq!(t.next_out(u64::MAX), 1024..2048);
        t.gave_back(u64::MAX);
        assert_eq!((t.out(), t.next_out(1)), (1024, 1024..1024), "the region stays");
        assert_eq!(Tail::new(1024, 1024).next_out(10), 1024..1024, "a domain that is all region has no tail");
        assert_eq!(Tail::new(4096, 1024).next_out(10), 1024..1024, "a region past nr_pages: no tail");
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
