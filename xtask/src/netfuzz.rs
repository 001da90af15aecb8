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
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// `cargo xtask fuzz-netback [options]`.
pub type NetFuzzArgs = crate::hostfuzz::HostFuzzArgs;

/// The iteration under way, for the panic hook.
static CURRENT: AtomicU64 = AtomicU64::new(0);

/// Run the fuzzer; Err if an invariant broke.
pub fn command(a: &NetFuzzArgs) -> Result<(), String> {
    let seed = a.seed;
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let it = CURRENT.load(Ordering::Relaxed);
        eprintln!(
            "fuzz-netback: PANIC (an invariant: netback never panics) at seed {seed} iteration {it} (replay: --seed {seed} --iterations {})",
            it + 1
        );
        default_hook(info);
    }));
    println!(
        "fuzz-netback: seed {} iterations {} (up to {} actions each){}",
        a.seed,
        a.iterations,
        STEPS_PER_EPISODE,
        a.seconds.map(|s| format!(" (at most {s} s)")).unwrap_or_default()
    );
    // The fuzzer holds ring pages, grant pages and a 64 KiB buffer.
    let f = std::cell::RefCell::new(Box::new(Fuzzer::new(a.seed)));
    let start = crate::hostfuzz::drive(
        "fuzz-netback",
        "episodes",
        a,
        || f.borrow().iteration,
        || {
            let mut f = f.borrow_mut();
            CURRENT.store(f.iteration, Ordering::Relaxed);
            f.step().map_err(drop)
        },
    );
    let f = f.into_inner();
    print_report(&f.report, start);
    match &f.report.failure {
        None => Ok(()),
        Some(fail) => Err(crate::hostfuzz::broken(fail.seed, fail.iteration)),
    }
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
