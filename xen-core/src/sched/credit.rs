//! A credit scheduler in the manner of Xen's credit1: each accounting
//! period hands out credits to active vCPUs in proportion to their
//! domain's weight; running burns credit; a vCPU that wakes with credit
//! left (BOOST) runs first, then vCPUs with credit left (UNDER), then
//! those that have overspent (OVER), round-robin within a class; a
//! capped vCPU that has used its cap is parked until the next period.
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
    /// Woke with credit left: runs before UNDER vCPUs until charged
    /// (Xen's BOOST), so a mostly idle domain answers at once.
    boost: bool,
}

/// Scheduler state for up to `N` vCPUs, identified by index.
pub struct Credit<const N: usize> {
    slots: [Option<Slot>; N],
    nr_pcpus: i64,
    /// Where the round-robin search starts.
    rr: usize,
    /// One past the highest index ever added: every scan stops there, so a
    /// scheduler with room for many vCPUs costs what its used part costs.
    high: usize,
}

impl<const N: usize> Credit<N> {
    /// An empty scheduler for `nr_pcpus` CPUs.
    pub const fn new(nr_pcpus: u32) -> Self {
        let nr_pcpus = if nr_pcpus == 0 { 1 } else { nr_pcpus as i64 };
        Credit { slots: [None; N], nr_pcpus, rr: 0, high: 0 }
    }

    /// Change the number of CPUs whose time is shared out.
    pub fn set_pcpus(&mut self, nr_pcpus: u32) {
        self.nr_pcpus = i64::from(nr_pcpus.max(1));
    }

    /// Add a vCPU (runnable, no credit yet). `false` if the index is bad.
    pub fn add(&mut self, id: usize, params: Params) -> bool {
        let Some(s) = self.slots.get_mut(id) else { return false };
        let params = Params { weight: params.weight.clamp(1, 65535), cap: params.cap };
        *s = Some(Slot { params, credit: 0, used: 0, runnable: true, parked: false, boost: false });
        self.high = self.high.max(id + 1);
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
            s.boost = runnable && (s.boost || (!s.runnable && s.credit > 0));
            s.runnable = runnable;
        }
    }

    /// Change weight and cap.
    pub fn set_params(&mut self, id: usize, params: Params) {
        if let Some(Some(s)) = self.slots.get_mut(id) {
            s.params = Params { weight: params.weight.clamp(1, 65535), cap: params.cap };
        }
    }

    /// A vCPU's weight and cap.
    pub fn params(&self, id: usize) -> Option<Params> {
        self.slots.get(id)?.as_ref().map(|s| s.params)
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
            s.boost &= c == 0;
            s.credit = (s.credit - c).max(-CREDIT_CLAMP);
            s.used += c;
            if s.params.cap != 0 && s.used >= Self::cap_credits(&s.params) {
                s.parked = true;
            }
        }
    }

    /// Milliseconds `id` may run before the policy must look again: until
    /// its credit runs out (it turns OVER) or it reaches its cap; at least
    /// 1. `None` when neither can happen (already OVER, no cap).
    pub fn budget_ms(&self, id: usize) -> Option<i64> {
        let s = self.slots.get(id)?.as_ref()?;
        let ceil_ms = |credits: i64| ((credits + CREDITS_PER_MS - 1) / CREDITS_PER_MS).max(1);
        let until_over = (s.credit > 0).then(|| ceil_ms(s.credit));
        let until_cap = (s.params.cap != 0).then(|| ceil_ms(Self::cap_credits(&s.params) - s.used));
        until_over.into_iter().chain(until_cap).min()
    }

    /// Whether some vCPU waits, parked by its cap, for the next period.
    pub fn any_parked(&self) -> bool {
        self.used().iter().flatten().any(|s| s.parked)
    }

    /// Credits a capped vCPU may burn in one period.
    fn cap_credits(p: &Params) -> i64 {
        i64::from(p.cap) * CREDITS_PER_MS * PERIOD_MS / 100
    }

    /// The periodic accounting: share this period's credits by weight
    /// among active vCPUs, clamp, and unpark. A vCPU whose share would
    /// take it past [`CREDIT_CLAMP`] (it does not use what it gets, like a
    /// mostly idle dom0) receives only what fits; the rest goes to the
    /// others by weight, so every period's credit is handed to vCPUs that
    /// can burn it.
    pub fn account(&mut self) {
        let mut left = CREDITS_PER_MS * PERIOD_MS * self.nr_pcpus;
        let mut open = [false; N];
        for (o, s) in open.iter_mut().zip(self.used()) {
            *o = s.as_ref().is_some_and(Self::active);
        }
        // Water-filling: settle the vCPUs that saturate, then share again.
        loop {
            let weights: i64 = self.open_slots(&open).map(|(_, s)| i64::from(s.params.weight)).sum();
            if weights == 0 {
                break;
            }
            let share = |s: &Slot| left * i64::from(s.params.weight) / weights;
            let full: Option<usize> = self.open_slots(&open).find(|(_, s)| s.credit + share(s) >= CREDIT_CLAMP).map(|(i, _)| i);
            match full {
                Some(i) => {
                    open[i] = false;
                    if let Some(s) = self.slots[i].as_mut() {
                        left -= (CREDIT_CLAMP - s.credit).max(0);
                        s.credit = CREDIT_CLAMP;
                    }
                }
                None => {
                    for (o, s) in open.iter().zip(self.slots[..self.high].iter_mut()) {
                        if let (true, Some(s)) = (*o, s.as_mut()) {
                            s.credit += left * i64::from(s.params.weight) / weights;
                        }
                    }
                    break;
                }
            }
        }
        let high = self.high;
        for s in self.slots[..high].iter_mut().flatten() {
            s.credit = s.credit.clamp(-CREDIT_CLAMP, CREDIT_CLAMP);
            s.used = 0;
            s.parked = false;
        }
    }

    /// The slots still marked in `open`, with their index.
    fn open_slots<'a>(&'a self, open: &'a [bool; N]) -> impl Iterator<Item = (usize, &'a Slot)> + 'a {
        self.used().iter().enumerate().filter(|(i, _)| open[*i]).filter_map(|(i, s)| s.as_ref().map(|s| (i, s)))
    }

    /// Whether a vCPU takes part in sharing out a period's credit: it ran
    /// during the period, or it waits to run with none left. A vCPU that
    /// only woke for a moment (and still has credit) does not dilute the
    /// shares of the busy ones, as in Xen's active list.
    fn active(s: &Slot) -> bool {
        s.used > 0 || (s.runnable && s.credit <= 0)
    }

    fn eligible(s: &Slot) -> bool {
        s.runnable && !s.parked
    }

    /// The vCPU to run next: BOOST (woken with credit), then UNDER
    /// (credit > 0), then OVER, round-robin within a class; `None` means
    /// idle.
    pub fn pick(&mut self) -> Option<usize> {
        self.pick_where(|_| true)
    }

    /// [`Credit::pick`] among the vCPUs `allowed` accepts (on SMP: those
    /// not running on another CPU).
    pub fn pick_where(&mut self, allowed: impl Fn(usize) -> bool) -> Option<usize> {
        let high = self.high;
        let order = |rr: usize| (0..high).map(move |k| (rr + k) % high);
        let first = |this: &Self, class: fn(&Slot) -> bool| {
            order(this.rr).find(|&i| allowed(i) && this.slots[i].as_ref().is_some_and(|s| Self::eligible(s) && class(s)))
        };
        let chosen = first(self, |s| s.boost).or_else(|| first(self, |s| s.credit > 0)).or_else(|| first(self, |_| true))?;
        self.rr = (chosen + 1) % high;
        Some(chosen)
    }

    /// The slots up to the highest index ever added.
    fn used(&self) -> &[Option<Slot>] {
        &self.slots[..self.high]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run a simulated single CPU for `ms` milliseconds with 1 ms ticks, as
    /// the hypervisor does: a picked vCPU runs until its slice or its
    /// [`Credit::budget_ms`] ends, whichever is first. With `waker =
    /// Some((id, every))`, vCPU `id` wakes that often (also just before
    /// accounting), is picked at once and blocks again, every fifth time
    /// after using one tick, like dom0 polling its guests. Returns ms run per vCPU
    /// (index N = idle).
    fn simulate<const N: usize>(s: &mut Credit<N>, ms: i64, slice: i64, waker: Option<(usize, i64)>) -> std::vec::Vec<i64> {
        let mut run = std::vec![0i64; N + 1];
        let every_of = |w: Option<(usize, i64)>| w.map_or(1, |(_, e)| e);
        let limit = |s: &Credit<N>, c: Option<usize>| c.map_or(1, |id| s.budget_ms(id).map_or(slice, |b| b.min(slice)));
        let mut current = None;
        let mut until = 0;
        if let Some((w, _)) = waker {
            s.set_runnable(w, false);
        }
        for t in 0..ms {
            let wakes = waker.filter(|&(_, every)| t % every == 0).map(|(w, _)| w);
            if let Some(w) = wakes {
                s.set_runnable(w, true);
            }
            if t % PERIOD_MS == 0 {
                s.account();
            }
            if let Some(w) = wakes {
                // The waker preempts (it has credit); now and then it uses
                // a whole tick (dom0 relaying output), else it blocks at once.
                let picked = s.pick();
                assert!(t == 0 || picked == Some(w) || s.credit(w).is_some_and(|c| c <= 0), "a waking vCPU with credit runs at once");
                if picked == Some(w) && t / every_of(waker) % 5 == 0 {
                    current = picked;
                    until = 1;
                } else {
                    s.set_runnable(w, false);
                    until = 0;
                }
            } else if let Some((w, _)) = waker.filter(|_| until == 0 && current == waker.map(|(w, _)| w)) {
                s.set_runnable(w, false);
            }
            if until == 0 {
                current = s.pick();
                until = limit(s, current);
            }
            match current {
                Some(id) => {
                    s.burn(id, 1);
                    run[id] += 1;
                }
                None => run[N] += 1,
            }
            until -= 1;
        }
        run
    }

    #[test]
    fn weights_256_and_512_share_one_cpu_1_to_2() {
        let mut s: Credit<4> = Credit::new(1);
        s.add(0, Params { weight: 256, cap: 0 });
        s.add(1, Params { weight: 512, cap: 0 });
        s.add(2, Params::default());
        for wake in [None, Some((2, 10)), Some((2, 7))] {
            s.account();
            let run = simulate(&mut s, 60_000, 10, wake);
            let ratio = run[1] as f64 / run[0] as f64;
            assert!((ratio - 2.0).abs() / 2.0 < 0.05, "share {} : {} (ratio {ratio:.3}, wake {wake:?})", run[0], run[1]);
            assert_eq!(run[4], 0, "no idle time while work is runnable");
        }
    }

    #[test]
    fn equal_weights_share_equally_so_a_spinner_cannot_starve_others() {
        let mut s: Credit<5> = Credit::new(1);
        for id in 0..3 {
            s.add(id, Params::default());
        }
        s.add(3, Params::default());
        let run = simulate(&mut s, 30_000, 10, Some((3, 10)));
        for (id, ms) in run.iter().take(3).enumerate() {
            assert!((ms - 10_000).abs() < 500, "vcpu {id} ran {ms} ms");
        }
    }

    #[test]
    fn cap_limits_a_lone_vcpu_and_the_rest_is_idle() {
        let mut s: Credit<2> = Credit::new(1);
        s.add(0, Params { weight: 256, cap: 25 });
        let run = simulate(&mut s, 30_000, 10, None);
        let share = run[0] as f64 / 30_000.0;
        // Enforcement has tick granularity: at most one extra 1 ms tick per
        // 30 ms period beyond the 25% cap.
        assert!((0.2..=0.25 + 1.0 / 30.0).contains(&share), "capped share {share:.3}");
        assert!(s.any_parked() || s.budget_ms(0).is_some());
    }

    #[test]
    fn cap_holds_next_to_an_uncapped_spinner() {
        let mut s: Credit<3> = Credit::new(1);
        s.add(0, Params::default());
        s.add(1, Params { weight: 256, cap: 20 });
        s.add(2, Params::default());
        let run = simulate(&mut s, 30_000, 10, Some((2, 10)));
        let share = run[1] as f64 / 30_000.0;
        assert!((0.15..=0.2 + 1.0 / 30.0).contains(&share), "capped share {share:.3}");
        assert_eq!(run[3], 0, "the uncapped vCPU takes the rest");
    }

    #[test]
    fn budget_ends_when_credit_or_cap_runs_out() {
        let mut s: Credit<2> = Credit::new(1);
        s.add(0, Params { weight: 256, cap: 50 });
        s.account();
        // 300 credits (alone) = 30 ms; cap 50% = 150 credits = 15 ms.
        assert_eq!(s.budget_ms(0), Some(15));
        s.burn(0, 15);
        assert!(s.must_yield(0), "parked at its cap");
        s.set_params(0, Params::default());
        s.account();
        s.burn(0, 40);
        assert_eq!(s.budget_ms(0), None, "OVER and uncapped: nothing to wait for");
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
