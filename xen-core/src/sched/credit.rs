//! A credit scheduler in the manner of Xen's credit1: each accounting
//! period hands out credits to runnable vCPUs in proportion to their
//! domain's weight; running burns credit; vCPUs with credit left (UNDER)
//! run before those that have overspent (OVER), round-robin within a
//! class; a capped vCPU that has used its cap is parked until the next
//! period.
//!
//! Invariants: a vCPU's credit stays within `[-CREDIT_CLAMP, CREDIT_CLAMP]`;
//! a parked or blocked vCPU is never picked; over many periods, CPU-bound
//! vCPUs get CPU time in proportion to their weights.
#![forbid(unsafe_code)]

/// Credits burnt per millisecond of running.
pub const CREDITS_PER_MS: i64 = 10;
/// Length of the accounting period and of a time slice, in ms.
pub const PERIOD_MS: i64 = 30;
/// Credit never exceeds one period's worth either way, so a vCPU that
/// slept cannot bank unbounded credit.
pub const CREDIT_CLAMP: i64 = CREDITS_PER_MS * PERIOD_MS;
/// Default weight (Xen's).
pub const DEFAULT_WEIGHT: u32 = 256;

/// A vCPU's scheduling parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// Relative share (Xen's weight, 1-65535).
    pub weight: u32,
    /// Upper bound in percent of one CPU; 0 means none.
    pub cap: u32,
}

impl Default for Params {
    fn default() -> Self {
        Params { weight: DEFAULT_WEIGHT, cap: 0 }
    }
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    params: Params,
    credit: i64,
    /// Credits burnt in the current period (for the cap).
    used: i64,
    runnable: bool,
    parked: bool,
}

/// Scheduler state for up to `N` vCPUs, identified by index.
pub struct Credit<const N: usize> {
    slots: [Option<Slot>; N],
    nr_pcpus: i64,
    /// Where the round-robin search starts.
    rr: usize,
}

impl<const N: usize> Credit<N> {
    /// An empty scheduler for `nr_pcpus` CPUs.
    pub fn new(nr_pcpus: u32) -> Self {
        Credit { slots: [None; N], nr_pcpus: i64::from(nr_pcpus.max(1)), rr: 0 }
    }

    /// Add a vCPU (runnable, no credit yet). `false` if the index is bad.
    pub fn add(&mut self, id: usize, params: Params) -> bool {
        let Some(s) = self.slots.get_mut(id) else { return false };
        let params = Params { weight: params.weight.clamp(1, 65535), cap: params.cap };
        *s = Some(Slot { params, credit: 0, used: 0, runnable: true, parked: false });
        true
    }

    /// Remove a vCPU.
    pub fn remove(&mut self, id: usize) {
        if let Some(s) = self.slots.get_mut(id) {
            *s = None;
        }
    }

    /// Block or wake a vCPU.
    pub fn set_runnable(&mut self, id: usize, runnable: bool) {
        if let Some(Some(s)) = self.slots.get_mut(id) {
            s.runnable = runnable;
        }
    }

    /// Change weight and cap.
    pub fn set_params(&mut self, id: usize, params: Params) {
        if let Some(Some(s)) = self.slots.get_mut(id) {
            s.params = Params { weight: params.weight.clamp(1, 65535), cap: params.cap };
        }
    }

    /// A vCPU's current credit.
    pub fn credit(&self, id: usize) -> Option<i64> {
        self.slots.get(id)?.as_ref().map(|s| s.credit)
    }

    /// Whether `id` must stop running now (blocked, parked by its cap, or
    /// gone).
    pub fn must_yield(&self, id: usize) -> bool {
        !self.slots.get(id).and_then(Option::as_ref).is_some_and(Self::eligible)
    }

    /// Charge `ms` milliseconds of running to `id`.
    pub fn burn(&mut self, id: usize, ms: i64) {
        if let Some(Some(s)) = self.slots.get_mut(id) {
            let c = ms * CREDITS_PER_MS;
            s.credit = (s.credit - c).max(-CREDIT_CLAMP);
            s.used += c;
            let cap = i64::from(s.params.cap) * CREDITS_PER_MS * PERIOD_MS / 100;
            if s.params.cap != 0 && s.used >= cap {
                s.parked = true;
            }
        }
    }

    /// The periodic accounting: share this period's credits by weight
    /// among runnable vCPUs, clamp, and unpark.
    pub fn account(&mut self) {
        let total = CREDITS_PER_MS * PERIOD_MS * self.nr_pcpus;
        let weights: i64 = self.slots.iter().flatten().filter(|s| s.runnable).map(|s| i64::from(s.params.weight)).sum();
        for s in self.slots.iter_mut().flatten() {
            if s.runnable && weights > 0 {
                s.credit += total * i64::from(s.params.weight) / weights;
            }
            s.credit = s.credit.clamp(-CREDIT_CLAMP, CREDIT_CLAMP);
            s.used = 0;
            s.parked = false;
        }
    }

    fn eligible(s: &Slot) -> bool {
        s.runnable && !s.parked
    }

    /// The vCPU to run next: UNDER (credit > 0) before OVER, round-robin
    /// within a class; `None` means idle.
    pub fn pick(&mut self) -> Option<usize> {
        let order = |rr: usize| (0..N).map(move |k| (rr + k) % N);
        let under = order(self.rr).find(|&i| self.slots[i].as_ref().is_some_and(|s| Self::eligible(s) && s.credit > 0));
        let chosen = under.or_else(|| order(self.rr).find(|&i| self.slots[i].as_ref().is_some_and(Self::eligible)))?;
        self.rr = (chosen + 1) % N;
        Some(chosen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run a simulated single CPU for `ms` milliseconds with 1 ms ticks,
    /// re-picking at every slice end; returns ms run per vCPU (index N = idle).
    fn simulate<const N: usize>(s: &mut Credit<N>, ms: i64, slice: i64) -> std::vec::Vec<i64> {
        let mut run = std::vec![0i64; N + 1];
        let mut current = s.pick();
        let mut in_slice = 0;
        for t in 0..ms {
            if t % PERIOD_MS == 0 {
                s.account();
            }
            match current {
                Some(id) => {
                    s.burn(id, 1);
                    run[id] += 1;
                }
                None => run[N] += 1,
            }
            in_slice += 1;
            let parked_or_over = current.is_some_and(|id| s.must_yield(id) || s.credit(id).is_some_and(|c| c <= 0));
            if in_slice >= slice || parked_or_over || current.is_none() {
                current = s.pick();
                in_slice = 0;
            }
        }
        run
    }

    #[test]
    fn weights_256_and_512_share_one_cpu_1_to_2() {
        let mut s: Credit<4> = Credit::new(1);
        s.add(0, Params { weight: 256, cap: 0 });
        s.add(1, Params { weight: 512, cap: 0 });
        let run = simulate(&mut s, 60_000, 30);
        let ratio = run[1] as f64 / run[0] as f64;
        assert!((ratio - 2.0).abs() / 2.0 < 0.05, "share {} : {} (ratio {ratio:.3})", run[0], run[1]);
        assert_eq!(run[4], 0, "no idle time while work is runnable");
    }

    #[test]
    fn equal_weights_share_equally_so_a_spinner_cannot_starve_others() {
        let mut s: Credit<4> = Credit::new(1);
        for id in 0..3 {
            s.add(id, Params::default());
        }
        let run = simulate(&mut s, 30_000, 30);
        for (id, ms) in run.iter().take(3).enumerate() {
            assert!((ms - 10_000).abs() < 500, "vcpu {id} ran {ms} ms");
        }
    }

    #[test]
    fn cap_limits_a_lone_vcpu_and_the_rest_is_idle() {
        let mut s: Credit<2> = Credit::new(1);
        s.add(0, Params { weight: 256, cap: 25 });
        let run = simulate(&mut s, 30_000, 30);
        let share = run[0] as f64 / 30_000.0;
        // Enforcement has tick granularity: at most one extra 1 ms tick per
        // 30 ms period beyond the 25% cap.
        assert!((0.2..=0.25 + 1.0 / 30.0).contains(&share), "capped share {share:.3}");
    }

    #[test]
    fn blocked_vcpus_are_not_picked_and_credit_is_clamped() {
        let mut s: Credit<3> = Credit::new(1);
        s.add(0, Params::default());
        s.add(1, Params::default());
        s.set_runnable(0, false);
        for _ in 0..100 {
            s.account();
        }
        assert_eq!(s.pick(), Some(1));
        assert_eq!(s.pick(), Some(1));
        assert!(s.credit(1).is_some_and(|c| c <= CREDIT_CLAMP));
        s.burn(1, 10_000);
        assert_eq!(s.credit(1), Some(-CREDIT_CLAMP));
        s.set_runnable(1, false);
        assert_eq!(s.pick(), None, "idle");
        assert!(!s.add(7, Params::default()), "index out of range");
    }
}
