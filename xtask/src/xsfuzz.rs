//! `cargo xtask fuzz-xenstore`: the stable-Rust fuzzer of xenstored's wire
//! parser and request handling (`dom0_tools::xenstore::fuzz`), run on the
//! host: mutated messages from two attacking domains over their ring pages,
//! every invariant checked after each input. Prints progress, inputs per
//! second, the errors and drops xenstored answered with, and the first
//! failure with its seed, iteration and input. Deterministic: the same
//! seed replays the same run, so a failure at iteration K replays with
//! `--seed S --iterations K+1`.
//!
//! A panic inside xenstored is a failure too: the workspace builds with
//! `panic = "abort"`, so a panic hook prints where the run was (seed,
//! iteration, input) before the process ends.

use crate::hostfuzz::rate;
use dom0_tools::xenstore::fuzz::{Fuzzer, Report};
use std::sync::Mutex;
use std::time::Instant;

/// `cargo xtask fuzz-xenstore [options]`.
pub type XsFuzzArgs = crate::hostfuzz::HostFuzzArgs;

/// Where the run is, for the panic hook: seed, iteration and input.
static CURRENT: Mutex<String> = Mutex::new(String::new());

/// Run the fuzzer; Err if an invariant broke.
pub fn command(a: &XsFuzzArgs) -> Result<(), String> {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let at = CURRENT.lock().map(|s| s.clone()).unwrap_or_default();
        eprintln!("fuzz-xenstore: PANIC (an invariant: xenstored never panics) at {at}");
        default_hook(info);
    }));
    println!("fuzz-xenstore: seed {} iterations {}{}", a.seed, a.iterations, a.seconds.map(|s| format!(" (at most {s} s)")).unwrap_or_default());
    let f = std::cell::RefCell::new(Fuzzer::new(a.seed));
    let start = crate::hostfuzz::drive(
        "fuzz-xenstore",
        "inputs",
        a,
        || f.borrow().iteration,
        || {
            let mut f = f.borrow_mut();
            match f.step_with(|it, input| {
                if let Ok(mut c) = CURRENT.lock() {
                    *c = format!("seed {} iteration {it}: {}", a.seed, input.describe());
                }
            }) {
                Ok(()) => Ok(()),
                Err(fail) => {
                    f.report.failure = Some(fail);
                    Err(())
                }
            }
        },
    );
    let f = f.into_inner();
    print_report(&f.report, start);
    match &f.report.failure {
        None => Ok(()),
        Some(fail) => Err(crate::hostfuzz::broken(fail.seed, fail.iteration)),
    }
}

fn print_report(r: &Report, start: Instant) {
    println!(
        "fuzz-xenstore: {} inputs in {:.1} s ({:.0}/s), {} worlds, {} requests answered, {} with XS_ERROR, {} connections dropped, {} ring indices made up",
        r.inputs,
        start.elapsed().as_secs_f64(),
        rate(r.inputs, start),
        r.worlds,
        r.requests,
        r.errors_total(),
        r.drops_total(),
        r.ring_actions
    );
    let list = |m: &std::collections::BTreeMap<String, u64>| m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ");
    println!("fuzz-xenstore: errors: {}", list(&r.errors));
    println!("fuzz-xenstore: drops: {}", list(&r.drops));
    match &r.failure {
        None => println!("fuzz-xenstore: no invariant broken"),
        Some(f) => {
            println!("fuzz-xenstore: FAILED at seed {} iteration {}: {}", f.seed, f.iteration, f.what);
            println!("fuzz-xenstore: input: {}", f.input.describe());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_run_passes() {
        assert_eq!(command(&XsFuzzArgs { seed: 3, iterations: 50, seconds: None }), Ok(()));
    }
}
