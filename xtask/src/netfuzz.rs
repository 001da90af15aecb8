//! `cargo xtask fuzz-netback`: the stable-Rust fuzzer of netback's request
//! validation (`backend_drivers::netback::fuzz`), run on the host: per
//! iteration one episode, a vif whose netfront mixes honest traffic with
//! every class of bad tx and rx request (bad grants, slots past their page,
//! packets over 64 KiB or under ETH_HLEN, too many slots, garbage
//! extra-info, made-up `req_prod`s, spoofed MACs), each serve checked
//! against a reference model of Linux xen-netback's rules. Prints progress,
//! episodes per second, what was sent and what it got, and the first broken
//! invariant with its seed and iteration. Deterministic: a failure at
//! iteration K replays with `--seed S --iterations K+1`.
//!
//! A panic inside netback is a failure too: the workspace builds with
//! `panic = "abort"`, so a panic hook prints where the run was first.

use crate::hostfuzz::rate;
use backend_drivers::netback::fuzz::{FATAL, Fuzzer, HOSTILE, RX_HOSTILE, Report, STEPS_PER_EPISODE};
use std::time::Instant;

/// `cargo xtask fuzz-netback [options]`.
pub type NetFuzzArgs = crate::hostfuzz::HostFuzzArgs;

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
pub fn command(a: &NetFuzzArgs) -> Result<(), String> {
    let f = Box::new(Fuzzer::new(a.seed));
    crate::hostfuzz::run_episodes("fuzz-netback", "netback", a, STEPS_PER_EPISODE, f, |f, start| print_report(&f.report, start))
}

/// `name n, name n, ...`.
fn classes(names: &[&str], counts: &[u64]) -> String {
    names.iter().zip(counts).map(|(n, c)| format!("{n} {c}")).collect::<Vec<_>>().join(", ")
}

fn print_report(r: &Report, start: Instant) {
    println!(
        "fuzz-netback: {} episodes ({} honest only) in {:.1} s ({:.0}/s), {} actions ({:.0}/s)",
        r.episodes,
        r.honest_episodes,
        start.elapsed().as_secs_f64(),
        rate(r.episodes, start),
        r.steps,
        rate(r.steps, start)
    );
    println!("fuzz-netback: tx sent: honest {}, {}", r.honest, classes(&HOSTILE, &r.hostile));
    println!(
        "fuzz-netback: tx got: delivered {}, dropped {}, multicast ops {}, credit waits {}, spoofed refused {}",
        r.tx_delivered, r.tx_dropped, r.tx_mcast, r.credit_waits, r.spoofed
    );
    println!(
        "fuzz-netback: rx: {}; delivered {}, dropped {}, starved {}",
        classes(&RX_HOSTILE, &r.rx_hostile),
        r.rx_delivered,
        r.rx_dropped,
        r.rx_starved
    );
    println!("fuzz-netback: fatal (vif disabled): {}", classes(&FATAL, &r.fatal));
    match &r.failure {
        None => println!("fuzz-netback: no invariant broken"),
        Some(f) => {
            println!("fuzz-netback: FAILED at seed {} iteration {} action {}: {} (values {:?})", f.seed, f.iteration, f.step, f.what, f.values)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_netback_fuzz_run_passes() {
        assert_eq!(command(&NetFuzzArgs { seed: 3, iterations: 40, seconds: None }), Ok(()));
    }
}
