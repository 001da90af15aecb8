//! `cargo xtask fuzz`: boot xen-core on two CPUs with dom0's fuzzing run
//! (`test=fuzz`: two hypercall-fuzzing domUs and a canary, the invariant
//! auditor after every batch) and judge the serial output: dom0's
//! summary if the hypervisor survived, otherwise how it died and where
//! each fuzzer was (seed, call index, batch family), so the run can be
//! replayed with `--only K --seeds A,B --verbose N`.

use crate::image;
use crate::qemu::{self, EXIT_SUCCESS};
use std::time::Duration;

/// What to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FuzzArgs {
    /// dom0's seed (each fuzzer's is derived from it).
    pub seed: u64,
    /// Calls in all.
    pub calls: u64,
    /// Self-destructive calls per million.
    pub danger: u64,
    /// Print every call from this index on, straight to the hypervisor
    /// console.
    pub verbose: Option<u64>,
    /// Run only fuzzer K.
    pub only: Option<u64>,
    /// Explicit fuzzer seeds `A,B`.
    pub seeds: Option<String>,
    /// CPUs.
    pub smp: u32,
    /// QEMU timeout.
    pub timeout_s: u64,
}

impl Default for FuzzArgs {
    fn default() -> Self {
        FuzzArgs { seed: 1, calls: 100_000, danger: 50, verbose: None, only: None, seeds: None, smp: 2, timeout_s: 0 }
    }
}

/// `cargo xtask fuzz [options]`: the command line, resolved into a
/// [`FuzzArgs`] by [`FuzzOptions::resolve`].
#[derive(Clone, Debug, clap::Args)]
pub struct FuzzOptions {
    /// dom0's seed; each fuzzer's is derived from it.
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,
    /// Calls in all.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub calls: u64,
    /// Self-destructive calls per million.
    #[arg(long, value_name = "PPM", default_value_t = 50)]
    pub danger: u64,
    /// Print every call from index FROM (replays).
    #[arg(long, value_name = "FROM")]
    pub verbose: Option<u64>,
    /// Replay: run fuzzer K alone (with --seeds).
    #[arg(long, value_name = "K")]
    pub only: Option<u64>,
    /// Replay: the fuzzers' seeds.
    #[arg(long, value_name = "A,B", allow_hyphen_values = true)]
    pub seeds: Option<String>,
    /// CPUs.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub smp: u32,
    /// QEMU timeout in seconds [default: 60 + calls/500; 0 means the default].
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
}

impl FuzzOptions {
    /// What to run, with the timeout worked out from the number of calls
    /// when none (or 0) was given.
    pub fn resolve(self) -> FuzzArgs {
        let FuzzOptions { seed, calls, danger, verbose, only, seeds, smp, timeout } = self;
        // About 2000 calls/s under TCG, plus boot and slack.
        let timeout_s = timeout.filter(|&t| t != 0).unwrap_or(60 + calls / 500);
        FuzzArgs { seed, calls, danger, verbose, only, seeds, smp, timeout_s }
    }
}

impl FuzzArgs {
    /// dom0's command line.
    pub fn dom0_args(&self) -> String {
        let mut s = format!("test=fuzz seed={} calls={} danger={}", self.seed, self.calls, self.danger);
        // dom0's own time budget (600 s by default) must not end a long
        // run before QEMU's timeout does.
        let budget = self.timeout_s.saturating_sub(30);
        if budget > 600 {
            s += &format!(" budget={budget}");
        }
        if let Some(v) = self.verbose {
            s += &format!(" verbose={v}");
        }
        if let Some(o) = self.only {
            s += &format!(" only={o}");
        }
        if let Some(seeds) = &self.seeds {
            s += &format!(" seeds={seeds}");
        }
        s
    }
}

/// xen-core's command line for fuzzing runs.
pub const XEN_CMDLINE: &str = "loglvl=warning dom0_mem=64M";

/// What a run's serial output says.
#[derive(Debug, PartialEq, Eq)]
pub struct Verdict {
    /// dom0 printed PASSED and powered off.
    pub passed: bool,
    /// dom0's summary lines.
    pub summary: Vec<String>,
    /// How the hypervisor died, if it did.
    pub hypervisor_died: Option<String>,
    /// The last progress (or traced call) line of each fuzzer domain.
    pub last_positions: Vec<String>,
}

/// Judge a run from its output, QEMU's exit status and the timeout.
pub fn judge(output: &str, exit: Option<i32>, timed_out: bool) -> Verdict {
    let summary: Vec<String> = output.lines().filter(|l| l.starts_with("dom0: fuzz: ")).map(|l| l.trim_end().to_string()).collect();
    let halted = output.contains("Hardware Dom0 halted");
    let panic = output.lines().find(|l| l.contains("Panic on CPU") || l.contains("FATAL TRAP")).map(|l| l.trim().to_string());
    let hypervisor_died = match (panic, exit) {
        (Some(p), _) => Some(p),
        (None, Some(0)) => Some("QEMU reset: a triple fault in the hypervisor (no panic line)".to_string()),
        (None, _) if timed_out && !halted => Some("not finished by the timeout (hung, or a host too loaded to get through)".to_string()),
        _ => None,
    };
    // Per domain, the last "fuzz: calls=" or "fuzz: call N" line.
    let mut last: Vec<(String, String)> = Vec::new();
    for l in output.lines() {
        let Some(rest) = l.strip_prefix("(d") else {
            continue;
        };
        let Some((dom, text)) = rest.split_once(") ") else {
            continue;
        };
        if !(text.starts_with("fuzz: calls=") || text.starts_with("fuzz: call ")) {
            continue;
        }
        match last.iter_mut().find(|(d, _)| d == dom) {
            Some(e) => e.1 = l.trim_end().to_string(),
            None => last.push((dom.to_string(), l.trim_end().to_string())),
        }
    }
    let passed = halted && exit == Some(EXIT_SUCCESS) && summary.iter().any(|l| l == "dom0: fuzz: PASSED");
    Verdict { passed, summary, hypervisor_died, last_positions: last.into_iter().map(|(_, l)| l).collect() }
}

/// The CPU state QEMU logged at a reset that was not a power-on reset (a
/// triple fault): `RIP=... CR2=... CR3=...` of each such reset.
pub fn triple_faults(reset_log: &str) -> Vec<String> {
    let mut out = Vec::new();
    for block in reset_log.split("CPU Reset").skip(1) {
        let field = |name: &str| block.split_whitespace().find_map(|w| w.strip_prefix(name)).map(str::to_string).unwrap_or_default();
        // Power-on and INIT resets: paging off.
        let cr0 = u64::from_str_radix(&field("CR0="), 16).unwrap_or(0);
        if cr0 & (1 << 31) == 0 {
            continue;
        }
        let cpu = block.lines().next().unwrap_or("").trim().to_string();
        out.push(format!("{cpu} RIP={} RSP={} CR2={} CR3={}", field("RIP="), field("RSP="), field("CR2="), field("CR3=")));
    }
    out
}

/// Boot a fuzzing run; returns the verdict and the serial output.
pub fn boot(a: &FuzzArgs, k: &image::Kernels, name: &str) -> Result<(Verdict, String), String> {
    let spec = image::standard_spec(name, k, XEN_CMDLINE, &a.dom0_args());
    let iso = image::make_iso(&spec)?;
    let reset_log = image::out_dir().join(format!("{name}-qemu-reset.log"));
    let _ = std::fs::remove_file(&reset_log);
    let extra = vec!["-d".into(), "cpu_reset".into(), "-D".into(), reset_log.display().to_string()];
    let opts = qemu::Options { smp: a.smp, timeout: Some(Duration::from_secs(a.timeout_s)), extra, ..Default::default() };
    let r = qemu::boot(&iso, &opts)?;
    let mut v = judge(&r.output, r.exit, r.timed_out);
    let faults = triple_faults(&std::fs::read_to_string(&reset_log).unwrap_or_default());
    if let (Some(f), Some(how)) = (faults.first(), v.hypervisor_died.as_mut()) {
        *how = format!("{how}; QEMU's CPU state at the reset: {f}");
    }
    Ok((v, r.output))
}

/// `cargo xtask fuzz [options]`.
pub fn command(args: FuzzOptions) -> Result<(), String> {
    let a = args.resolve();
    crate::env::ensure_system_tools()?;
    let k = image::build(image::Profile::Release)?;
    println!("fuzz: xen-core on {} CPUs, dom0 '{}', timeout {} s", a.smp, a.dom0_args(), a.timeout_s);
    let (v, output) = boot(&a, &k, "fuzz")?;
    let log = image::out_dir().join(format!("fuzz-seed{}.log", a.seed));
    let _ = std::fs::write(&log, &output);
    for l in &v.summary {
        println!("{l}");
    }
    if let Some(how) = &v.hypervisor_died {
        println!("fuzz: the hypervisor died: {how}");
        println!("fuzz: where each fuzzer was (replay with --only K --seeds A,B --verbose N):");
        for l in &v.last_positions {
            println!("    {l}");
        }
    }
    println!("fuzz: serial output in {}", log.display());
    if v.passed { Ok(()) } else { Err("the fuzzing run failed".into()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `cargo xtask fuzz ARGS`, parsed by the real command line.
    fn parse(args: &[&str]) -> Result<FuzzArgs, clap::Error> {
        use clap::Parser;
        match crate::Cli::try_parse_from(["xtask", "fuzz"].into_iter().chain(args.iter().copied()))?.command {
            crate::Command::Fuzz(o) => Ok(o.resolve()),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn arguments() {
        let a = parse(&["--seed", "7", "--calls", "5000"]).unwrap();
        assert_eq!((a.seed, a.calls, a.smp, a.timeout_s), (7, 5000, 2, 70));
        assert_eq!(a.dom0_args(), "test=fuzz seed=7 calls=5000 danger=50");
        let r = parse(&["--only", "1", "--seeds", "3,4", "--verbose", "100"]).unwrap();
        assert_eq!(r.dom0_args(), "test=fuzz seed=1 calls=100000 danger=50 verbose=100 only=1 seeds=3,4");
        assert!(parse(&["--bogus"]).is_err());
        assert!(parse(&["--seed"]).is_err());
        assert!(parse(&["--calls", "many"]).is_err());
    }

    #[test]
    fn defaults_timeout_and_repeats() {
        assert_eq!(parse(&[]).unwrap(), FuzzArgs { timeout_s: 260, ..FuzzArgs::default() });
        let a = parse(&["--smp", "4", "--timeout", "30", "--danger", "0"]).unwrap();
        assert_eq!((a.smp, a.timeout_s, a.danger), (4, 30, 0));
        assert_eq!(parse(&["--calls", "1000", "--timeout", "0"]).unwrap().timeout_s, 62, "0 means the default");
        assert_eq!(parse(&["--seed", "3", "--seed", "4"]).unwrap().seed, 4, "the last one wins");
        assert_eq!(parse(&["--seed=9"]).unwrap().seed, 9);
    }

    #[test]
    fn a_clean_run_passes() {
        let out = "(d1) fuzz: calls=0 seed=5 op=misc\ndom0: fuzz: 100 calls in 5 ms: 20000 calls/s\ndom0: fuzz: PASSED\n(XEN) Hardware Dom0 halted: halting machine\n";
        let v = judge(out, Some(EXIT_SUCCESS), false);
        assert!(v.passed);
        assert_eq!(v.summary.len(), 2);
        assert_eq!(v.hypervisor_died, None);
    }

    #[test]
    fn a_dead_hypervisor_names_where_the_fuzzers_were() {
        let out = "(d1) fuzz: calls=0 seed=5 op=misc\n(d2) fuzz: calls=0 seed=6 op=vcpu\n(d1) fuzz: calls=256 seed=5 op=mmuext_op\n(d2) fuzz: call 300 set_gdt nr=2 args=[0]\n";
        let v = judge(out, Some(0), false);
        assert!(!v.passed);
        assert!(v.hypervisor_died.as_deref().is_some_and(|h| h.contains("triple fault")));
        assert_eq!(v.last_positions, ["(d1) fuzz: calls=256 seed=5 op=mmuext_op", "(d2) fuzz: call 300 set_gdt nr=2 args=[0]"]);
        let p = judge("(XEN) Panic on CPU 0: FATAL TRAP: vector 14\n", Some(35), false);
        assert_eq!(p.hypervisor_died.as_deref(), Some("(XEN) Panic on CPU 0: FATAL TRAP: vector 14"));
        let h = judge("(d1) fuzz: calls=0 seed=1 op=misc\n", None, true);
        assert!(h.hypervisor_died.as_deref().is_some_and(|h| h.contains("hung")));
    }

    #[test]
    fn triple_faults_are_told_from_power_on_resets() {
        let log = "CPU Reset (CPU 0)\nRAX=0 RIP=0000fff0\nCR0=60000010 CR2=0 CR3=0 CR4=0\n\
                   CPU Reset (CPU 1)\nRAX=0000000000000001 RIP=ffff82d040212345 RFL=00000002\nRSP=ffff82d0405fff00\n\
                   CR0=80050033 CR2=0000000000000000 CR3=0000000000000000 CR4=000006a0\n";
        assert_eq!(triple_faults(log), ["(CPU 1) RIP=ffff82d040212345 RSP=ffff82d0405fff00 CR2=0000000000000000 CR3=0000000000000000"]);
    }

    #[test]
    fn failures_reported_by_dom0_fail_the_run() {
        let out = "dom0: fuzz: first failure: audit: rc -5\ndom0: fuzz: FAILED\n(XEN) Hardware Dom0 halted: halting machine\n";
        let v = judge(out, Some(EXIT_SUCCESS), false);
        assert!(!v.passed);
        assert_eq!(v.hypervisor_died, None);
    }
}
