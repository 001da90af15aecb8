//! `cargo xtask fuzz-ring`: the stable-Rust fuzzer of the io/ring.h
//! library (`xen_public::io::ring::fuzz`), run on the host: per iteration
//! one episode, an honest front and back over shared blkif ring pages
//! (order 0..=4, indices often just below 2^32), in most episodes with a
//! third party making up the shared indices. Prints progress, episodes per
//! second, the peer faults the rings reported, and the first broken
//! invariant with its seed and iteration. Deterministic: the same seed
//! replays the same run, so a failure at iteration K replays with
//! `--seed S --iterations K+1`.
//!
//! A panic inside the rings is a failure too: the workspace builds with
//! `panic = "abort"`, so a panic hook prints where the run was first.

use crate::hostfuzz::rate;
use std::time::Instant;
use xen_public::io::ring::fuzz::{Fuzzer, Report, STEPS_PER_EPISODE};

/// `cargo xtask fuzz-ring [options]`.
pub type RingFuzzArgs = crate::hostfuzz::HostFuzzArgs;

impl crate::hostfuzz::Episodes for Fuzzer {
    fn iteration(&self) -> u64 {
        self.iteration
    }
    fn step(&mut self) -> Result<(), ()> {
        Fuzzer::step(self).map_err(drop)
    }
    fn broke_at(&self) -> Option<(u64, u64)> {
        self.report.failure.as_ref().map(|f| (f.seed, f.iteration))
    }
}

/// Run the fuzzer; Err if an invariant broke.
pub fn command(a: &RingFuzzArgs) -> Result<(), String> {
    let f = Box::new(Fuzzer::new(a.seed));
    crate::hostfuzz::run_episodes("fuzz-ring", "the rings", a, STEPS_PER_EPISODE, f, |f, start| print_report(&f.report, start))
}

fn print_report(r: &Report, start: Instant) {
    println!(
        "fuzz-ring: {} episodes ({} hostile) in {:.1} s ({:.0}/s), {} actions, {} requests, {} responses taken",
        r.episodes,
        r.hostile,
        start.elapsed().as_secs_f64(),
        rate(r.episodes, start),
        r.steps,
        r.requests,
        r.responses
    );
    println!(
        "fuzz-ring: episodes by ring-page-order 0..4: {:?}; notifications: {} request, {} response; {} indices/bytes made up",
        r.orders, r.notifies[0], r.notifies[1], r.scribbles
    );
    println!(
        "fuzz-ring: peer faults: req_prod overflow {}, req_prod behind req_cons {}, rsp_prod overflow {}, rsp_prod past requests {}; \
         {} garbage responses after a scribble",
        r.errors[0], r.errors[1], r.errors[2], r.errors[3], r.garbage_responses
    );
    match &r.failure {
        None => println!("fuzz-ring: no invariant broken"),
        Some(f) => println!("fuzz-ring: FAILED at seed {} iteration {} action {}: {} (values {:?})", f.seed, f.iteration, f.step, f.what, f.values),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_ring_fuzz_run_passes() {
        assert_eq!(command(&RingFuzzArgs { seed: 3, iterations: 50, seconds: None }), Ok(()));
    }
}
