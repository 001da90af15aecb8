//! What the host-side fuzzers (`fuzz-xenstore`, `fuzz-ring`, `fuzz-netback`) share: their
//! arguments, the loop that runs iterations until a count or a time
//! budget with progress every 10 s, and the replay hint of a failure.
//!
//! Invariant: a run is deterministic in its seed; a failure at iteration K
//! replays with `--seed S --iterations K+1`.

use std::time::{Duration, Instant};

/// `--seed`, `--iterations`, `--seconds`.
#[derive(Clone, Debug, clap::Args)]
pub struct HostFuzzArgs {
    /// The seed; the same seed replays the same run.
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,
    /// Iterations to run (inputs, or episodes).
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub iterations: u64,
    /// Stop after this many seconds even if iterations remain.
    #[arg(long, value_name = "SECS")]
    pub seconds: Option<u64>,
}

/// Per second since `since`.
pub fn rate(n: u64, since: Instant) -> f64 {
    n as f64 / since.elapsed().as_secs_f64().max(1e-9)
}

/// Run `step` while `done()` (iterations so far) is below the count and
/// time remains, printing `NAME: N UNIT, R/s` every 10 s; stops at the
/// first `Err` from `step`. Returns when the run started.
pub fn drive(name: &str, unit: &str, a: &HostFuzzArgs, mut done: impl FnMut() -> u64, mut step: impl FnMut() -> Result<(), ()>) -> Instant {
    let start = Instant::now();
    let deadline = a.seconds.map(|s| start + Duration::from_secs(s));
    let mut last = start;
    while done() < a.iterations && deadline.is_none_or(|d| Instant::now() < d) {
        if step().is_err() {
            break;
        }
        if last.elapsed() >= Duration::from_secs(10) {
            last = Instant::now();
            println!("{name}: {} {unit}, {:.0}/s", done(), rate(done(), start));
        }
    }
    start
}

/// An episode fuzzer the runner drives: deterministic in its seed.
pub trait Episodes {
    /// Episodes run so far.
    fn iteration(&self) -> u64;
    /// Run the next episode; `Err` once an invariant broke.
    fn step(&mut self) -> Result<(), ()>;
    /// Where the first broken invariant was: (seed, iteration).
    fn broke_at(&self) -> Option<(u64, u64)>;
}

/// The iteration under way, for the panic hook of [`run_episodes`].
static CURRENT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Run `f` as `cargo xtask NAME` does: a panic hook that names the seed and
/// iteration (`never` says what never panics: the workspace builds with
/// `panic = "abort"`), the banner, [`drive`], then `report`; Err with the
/// replay hint if an invariant broke.
pub fn run_episodes<F: Episodes>(
    name: &'static str,
    never: &'static str,
    a: &HostFuzzArgs,
    actions: u32,
    f: Box<F>,
    report: impl FnOnce(&F, Instant),
) -> Result<(), String> {
    use std::sync::atomic::Ordering;
    let seed = a.seed;
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let it = CURRENT.load(Ordering::Relaxed);
        eprintln!("{name}: PANIC (an invariant: {never} never panics) at seed {seed} iteration {it} (replay: --seed {seed} --iterations {})", it + 1);
        default_hook(info);
    }));
    let at_most = a.seconds.map(|s| format!(" (at most {s} s)")).unwrap_or_default();
    println!("{name}: seed {} iterations {} (up to {actions} actions each){at_most}", a.seed, a.iterations);
    // Boxed: the fuzzers hold ring and grant pages, too much for the stack.
    let f = std::cell::RefCell::new(f);
    let start = drive(
        name,
        "episodes",
        a,
        || f.borrow().iteration(),
        || {
            let mut f = f.borrow_mut();
            CURRENT.store(f.iteration(), Ordering::Relaxed);
            f.step()
        },
    );
    let f = f.into_inner();
    report(&f, start);
    match f.broke_at() {
        None => Ok(()),
        Some((seed, iteration)) => Err(broken(seed, iteration)),
    }
}

/// The error of a run that broke an invariant at `iteration`.
pub fn broken(seed: u64, iteration: u64) -> String {
    format!("invariant broken at seed {seed} iteration {iteration} (replay: --seed {seed} --iterations {})", iteration + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(cmd: &str, args: &[&str]) -> Result<HostFuzzArgs, clap::Error> {
        match crate::Cli::try_parse_from(["xtask", cmd].into_iter().chain(args.iter().copied()))?.command {
            crate::Command::FuzzRing(a) | crate::Command::FuzzXenstore(a) | crate::Command::FuzzNetback(a) => Ok(a),
            c => panic!("{c:?}"),
        }
    }

    #[test]
    fn host_fuzzers_take_seed_iterations_and_seconds() {
        for cmd in ["fuzz-ring", "fuzz-xenstore", "fuzz-netback"] {
            let d = parse(cmd, &[]).unwrap();
            assert_eq!((d.seed, d.iterations, d.seconds), (1, 100_000, None), "{cmd}");
            let a = parse(cmd, &["--seed", "9", "--iterations", "50", "--seconds", "3"]).unwrap();
            assert_eq!((a.seed, a.iterations, a.seconds), (9, 50, Some(3)));
            assert!(parse(cmd, &["--iterations", "-1"]).is_err());
            assert!(parse(cmd, &["--seed", "x"]).is_err());
        }
    }

    #[test]
    fn a_broken_run_says_how_to_replay_it() {
        assert_eq!(broken(7, 41), "invariant broken at seed 7 iteration 41 (replay: --seed 7 --iterations 42)");
    }
}
