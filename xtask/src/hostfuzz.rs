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
