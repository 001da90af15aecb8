//! The boot timeline: TSC readings at the end of each boot phase, printed
//! as microseconds once the TSC frequency is known.
//!
//! Invariant: marks are kept in the order they were taken; at most
//! [`MAX_MARKS`] are kept (later ones are counted, not stored).

/// Most phases recorded.
pub const MAX_MARKS: usize = 16;

/// TSC readings by phase, from the hypervisor's first instruction on.
pub struct Timeline {
    start: u64,
    marks: heapless::Vec<(&'static str, u64), MAX_MARKS>,
    /// Marks that did not fit.
    pub dropped: usize,
}

impl Timeline {
    /// A timeline starting at TSC `start`.
    pub const fn new(start: u64) -> Self {
        Timeline { start, marks: heapless::Vec::new(), dropped: 0 }
    }

    /// Phase `name` ended at TSC `tsc`.
    pub fn mark(&mut self, name: &'static str, tsc: u64) {
        if self.marks.push((name, tsc)).is_err() {
            self.dropped += 1;
        }
    }

    /// Each phase: (name, its own length, time since the start), in
    /// microseconds at `tsc_hz`.
    pub fn phases(&self, tsc_hz: u64) -> impl Iterator<Item = (&'static str, u64, u64)> + '_ {
        let us = move |cycles: u64| (u128::from(cycles) * 1_000_000 / u128::from(tsc_hz.max(1))) as u64;
        let mut prev = self.start;
        self.marks.iter().map(move |&(name, tsc)| {
            let own = us(tsc.saturating_sub(prev));
            prev = tsc;
            (name, own, us(tsc.saturating_sub(self.start)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_are_lengths_and_running_totals() {
        let mut t = Timeline::new(1000);
        t.mark("a", 3000);
        t.mark("b", 7000);
        let v: std::vec::Vec<_> = t.phases(1_000_000_000).collect();
        assert_eq!(v, [("a", 2, 2), ("b", 4, 6)]);
    }

    #[test]
    fn marks_past_the_limit_are_counted() {
        let mut t = Timeline::new(0);
        for _ in 0..MAX_MARKS + 3 {
            t.mark("x", 1);
        }
        assert_eq!((t.phases(1).count(), t.dropped), (MAX_MARKS, 3));
    }
}
