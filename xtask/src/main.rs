//! `cargo xtask`: the project's build, boot and test driver (host side,
//! std only). Commands: build, iso, run, test, conformance, bench, fuzz.
//! See `usage()`.

mod bench;
mod conformance;
mod env;
mod fuzz;
mod image;
mod lint;
mod qemu;
mod tests;
mod xen;

use std::path::PathBuf;
use std::process::ExitCode;

fn usage() -> &'static str {
    "usage: cargo xtask <command> [options]

commands:
  build [--debug]           build xen-core, dom0 and the guest kernel (release by default)
  iso [--debug]             build a GRUB ISO in target/xtask/xen-core.iso
  run [options]             boot the ISO in QEMU, serial console on this terminal
      --timeout SECS        stop QEMU after SECS seconds (default: none)
      --script FILE         feed FILE's lines to the console, one per prompt
      --cpu MODEL           QEMU CPU model (default Haswell-noTSX)
      --smp N               number of CPUs (default 1)
      --mem MIB             memory in MiB (default 256)
      --cmdline STR         xen-core command line (default 'loglvl=all')
      --dom0-cmdline STR    dom0's command line (e.g. test=pagefault)
      --xen-4.17            boot the same dom0 on real Xen 4.17 instead (fetched from Debian)
  test [FILTER]             host unit tests, QEMU boot tests and the conformance suite;
                            ends with 'N passed, N failed'
  conformance [FILTER] [--on xen-core|xen-4.17|both]
                            the hypercall conformance suite, one line per case, JSON report in
                            target/conformance.json; regenerates docs/conformance.md
  bench [options]           dom0 micro-benchmarks on xen-core and Xen 4.17, as ratios of medians
      --runs N              boots of the main benchmarks per hypervisor (default 3; spreads shown)
      --xen-core-only       boot only xen-core (no ratios)
  lint                      clippy -D warnings (host and x86_64-unknown-none) and cargo fmt --check
  fuzz [options]            two hypercall-fuzzing domUs and a canary on xen-core (2 CPUs), audited
                            after every batch; prints calls/s, audits, canary, first failure
      --seed S              dom0's seed (default 1); each fuzzer's is derived from it
      --calls N             calls in all (default 100000)
      --danger PPM          self-destructive calls per million (default 50)
      --verbose FROM        print every call from index FROM (replays)
      --only K --seeds A,B  replay: run fuzzer K alone with the given seeds
      --smp N --timeout S   CPUs (default 2), QEMU timeout (default 60 + calls/500 s)"
}

/// Root of the workspace (the parent of this crate's directory).
fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        eprintln!("{}", usage());
        return ExitCode::FAILURE;
    };
    let result = match cmd.as_str() {
        "build" => image::build(profile(rest)).map(|_| ()),
        "iso" => image::build(profile(rest)).and_then(|k| image::default_iso(&k, "loglvl=all")).map(|p| {
            println!("{}", p.display());
        }),
        "run" => qemu::run_command(rest),
        "test" => tests::run(rest),
        "conformance" => conformance::command(rest),
        "bench" => bench::command(rest),
        "lint" => lint::command(rest),
        "fuzz" => fuzz::command(rest),
        "help" | "--help" | "-h" => {
            println!("{}", usage());
            Ok(())
        }
        other => Err(format!("unknown command '{other}'\n{}", usage())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn profile(args: &[String]) -> image::Profile {
    if args.iter().any(|a| a == "--debug") { image::Profile::Debug } else { image::Profile::Release }
}
