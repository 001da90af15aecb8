//! The boot-time machine frame allocator: one bit per frame.
//!
//! Owns a bitmap in caller-provided storage covering frames
//! `[base, base + nr_frames)`. Invariant: a set bit means the frame is free
//! and owned by nobody; `free_frames` always equals the number of set bits.
//! Frames outside the free ranges it was given are never handed out, and a
//! frame is never handed out twice without being freed in between.
#![forbid(unsafe_code)]

use super::Mfn;
use super::memmap::Range;

/// Why a free was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The frame is already free.
    DoubleFree(Mfn),
    /// The frame lies outside the range this allocator manages.
    NotManaged(Mfn),
}

/// A bitmap allocator of 4 KiB frames.
pub struct FrameAllocator<'a> {
    bits: &'a mut [u64],
    base: u64,
    nr_frames: u64,
    free_frames: u64,
    /// Word index where the next search starts; every word below it is 0.
    hint: usize,
}

/// Words of storage needed to track `nr_frames` frames.
pub const fn words_for(nr_frames: u64) -> usize {
    nr_frames.div_ceil(64) as usize
}

impl<'a> FrameAllocator<'a> {
    /// An allocator covering `[base, base + nr_frames)` with every frame
    /// allocated. `storage` must hold at least [`words_for`]`(nr_frames)` words;
    /// the covered range is clipped to what it can hold.
    pub fn new(storage: &'a mut [u64], base: Mfn, nr_frames: u64) -> Self {
        storage.fill(0);
        let nr_frames = nr_frames.min(storage.len() as u64 * 64);
        FrameAllocator { bits: storage, base: base.0, nr_frames, free_frames: 0, hint: 0 }
    }

    /// Frames currently free.
    pub fn free_frames(&self) -> u64 {
        self.free_frames
    }

    /// Frames this allocator covers, free or not.
    pub fn nr_frames(&self) -> u64 {
        self.nr_frames
    }

    fn index(&self, mfn: Mfn) -> Option<u64> {
        let i = mfn.0.checked_sub(self.base)?;
        (i < self.nr_frames).then_some(i)
    }

    fn is_free_index(&self, i: u64) -> bool {
        self.bits[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    /// Hand over every frame of a page-aligned free range. Frames outside the
    /// covered window are ignored; frames already free are left as they are.
    /// Returns how many frames became free.
    pub fn add_range(&mut self, r: Range) -> u64 {
        let mut added = 0;
        for mfn in (r.start >> 12)..(r.end >> 12) {
            if let Some(i) = self.index(Mfn(mfn))
                && !self.is_free_index(i)
            {
                self.bits[(i / 64) as usize] |= 1 << (i % 64);
                added += 1;
            }
        }
        self.free_frames += added;
        self.hint = 0;
        added
    }

    /// Allocate the lowest free frame.
    pub fn alloc(&mut self) -> Option<Mfn> {
        let word = (self.hint..self.bits.len()).find(|&w| self.bits[w] != 0)?;
        self.hint = word;
        let bit = self.bits[word].trailing_zeros() as u64;
        self.bits[word] &= !(1 << bit);
        self.free_frames -= 1;
        Some(Mfn(self.base + word as u64 * 64 + bit))
    }

    /// Allocate `n` physically contiguous frames, the lowest run that fits.
    pub fn alloc_contiguous(&mut self, n: u64) -> Option<Mfn> {
        if n == 0 || n > self.free_frames {
            return None;
        }
        let mut run = 0;
        for i in 0..self.nr_frames {
            run = if self.is_free_index(i) { run + 1 } else { 0 };
            if run == n {
                let first = i + 1 - n;
                for j in first..=i {
                    self.bits[(j / 64) as usize] &= !(1 << (j % 64));
                }
                self.free_frames -= n;
                return Some(Mfn(self.base + first));
            }
        }
        None
    }

    /// Return a frame.
    pub fn free(&mut self, mfn: Mfn) -> Result<(), FrameError> {
        let i = self.index(mfn).ok_or(FrameError::NotManaged(mfn))?;
        if self.is_free_index(i) {
            return Err(FrameError::DoubleFree(mfn));
        }
        let word = (i / 64) as usize;
        self.bits[word] |= 1 << (i % 64);
        self.free_frames += 1;
        self.hint = self.hint.min(word);
        Ok(())
    }

    /// Whether a frame is currently free.
    pub fn is_free(&self, mfn: Mfn) -> bool {
        self.index(mfn).is_some_and(|i| self.is_free_index(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::vec;

    fn range(start_mfn: u64, end_mfn: u64) -> Range {
        Range { start: start_mfn << 12, end: end_mfn << 12 }
    }

    #[test]
    fn hands_out_only_frames_it_was_given_lowest_first() {
        let mut st = vec![0u64; words_for(256)];
        let mut a = FrameAllocator::new(&mut st, Mfn(0x100), 256);
        assert_eq!(a.alloc(), None, "nothing is free before add_range");
        assert_eq!(a.add_range(range(0x180, 0x183)), 3);
        assert_eq!(a.add_range(range(0x110, 0x111)), 1);
        assert_eq!(a.free_frames(), 4);
        assert_eq!(a.alloc(), Some(Mfn(0x110)));
        assert_eq!(a.alloc(), Some(Mfn(0x180)));
        assert_eq!(a.alloc(), Some(Mfn(0x181)));
        assert_eq!(a.alloc(), Some(Mfn(0x182)));
        assert_eq!(a.free_frames(), 0);
    }

    #[test]
    fn exhaustion_returns_none_and_recovers_after_free() {
        let mut st = vec![0u64; words_for(100)];
        let mut a = FrameAllocator::new(&mut st, Mfn(0), 100);
        a.add_range(range(0, 100));
        let got: BTreeSet<_> = (0..100).map(|_| a.alloc().unwrap()).collect();
        assert_eq!(got.len(), 100, "no frame handed out twice");
        assert_eq!(a.alloc(), None);
        assert_eq!(a.alloc(), None);
        a.free(Mfn(42)).unwrap();
        assert_eq!(a.alloc(), Some(Mfn(42)));
        assert_eq!(a.alloc(), None);
    }

    #[test]
    fn double_free_is_refused_and_counts_stay_right() {
        let mut st = vec![0u64; 1];
        let mut a = FrameAllocator::new(&mut st, Mfn(10), 64);
        a.add_range(range(10, 20));
        let f = a.alloc().unwrap();
        a.free(f).unwrap();
        assert_eq!(a.free(f), Err(FrameError::DoubleFree(f)));
        assert_eq!(a.free(Mfn(15)), Err(FrameError::DoubleFree(Mfn(15))));
        assert_eq!(a.free_frames(), 10);
    }

    #[test]
    fn frames_outside_the_window_are_not_managed() {
        let mut st = vec![0u64; 1];
        let mut a = FrameAllocator::new(&mut st, Mfn(64), 64);
        assert_eq!(a.free(Mfn(63)), Err(FrameError::NotManaged(Mfn(63))));
        assert_eq!(a.free(Mfn(128)), Err(FrameError::NotManaged(Mfn(128))));
        assert_eq!(a.add_range(range(0, 1000)), 64, "clipped to the window");
        assert!(!a.is_free(Mfn(200)));
    }

    #[test]
    fn window_is_clipped_to_the_storage() {
        let mut st = vec![0u64; 1];
        let a = FrameAllocator::new(&mut st, Mfn(0), 1000);
        assert_eq!(a.nr_frames(), 64);
    }

    #[test]
    fn contiguous_runs() {
        let mut st = vec![0u64; 2];
        let mut a = FrameAllocator::new(&mut st, Mfn(0), 128);
        a.add_range(range(0, 3));
        a.add_range(range(10, 20));
        assert_eq!(a.alloc_contiguous(4), Some(Mfn(10)));
        assert_eq!(a.alloc_contiguous(7), None);
        assert_eq!(a.alloc_contiguous(6), Some(Mfn(14)));
        assert_eq!(a.alloc_contiguous(0), None);
        assert_eq!(a.free_frames(), 3);
    }

    #[test]
    fn random_alloc_free_keeps_count_and_bitmap_in_balance() {
        let mut st = vec![0u64; words_for(500)];
        let mut a = FrameAllocator::new(&mut st, Mfn(1000), 500);
        a.add_range(range(1000, 1500));
        let mut held = BTreeSet::new();
        let mut s: u64 = 12345;
        for _ in 0..20_000 {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            if !(s >> 33).is_multiple_of(3) {
                if let Some(f) = a.alloc() {
                    assert!(held.insert(f), "frame {f:?} handed out twice");
                }
            } else if let Some(&f) = held.iter().nth((s >> 40) as usize % held.len().max(1)) {
                held.remove(&f);
                a.free(f).unwrap();
            }
            assert_eq!(a.free_frames() + held.len() as u64, 500);
        }
    }
}
