//! `cargo xtask`: the project's build, boot and test driver (host side,
//! std only). Commands: build, iso, run, test, conformance, bench, lint,
//! fuzz, fuzz-xenstore, fuzz-ring, fuzz-netback, newcomer, linux, trace. The command line is [`Cli`] (clap's derive API); `cargo xtask help`
//! prints it.

mod bench;
mod bench_plot;
mod conformance;
mod env;
mod fuzz;
mod hostfuzz;
mod image;
mod lint;
mod linux;
mod linux_disk;
mod netfuzz;
mod newcomer;
mod pathcount;
mod qemu;
mod ringfuzz;
mod tests;
mod trace;
mod trace_cmd;
mod xen;
mod xsfuzz;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Build, boot and test driver for xen-core.
#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    arg_required_else_help = true,
    // A repeated option replaces the earlier value, as before clap.
    args_override_self = true,
    disable_version_flag = true
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build xen-core, dom0 and the guest kernel (release by default).
    Build(ProfileArgs),
    /// Build a GRUB ISO in target/xtask/xen-core.iso.
    Iso(ProfileArgs),
    /// Boot the ISO in QEMU, serial console on this terminal.
    Run(qemu::RunArgs),
    /// Host unit tests, QEMU boot tests and the conformance suite.
    #[command(after_help = "Ends with 'N passed, N failed'.")]
    Test(tests::TestArgs),
    /// The hypercall conformance suite, one line per case.
    #[command(after_help = "Writes a JSON report to target/conformance.json and regenerates docs/conformance.md.")]
    Conformance(conformance::ConformanceArgs),
    /// dom0 micro-benchmarks (and Linux dom0's figures) on xen-core and Xen 4.17, as ratios of medians.
    Bench(bench::BenchArgs),
    /// clippy -D warnings (host and x86_64-unknown-none) and cargo fmt --check.
    Lint,
    /// Hypercall fuzzing on xen-core: two fuzzing domUs and a canary.
    #[command(after_help = "Runs on 2 CPUs by default, audited after every batch; prints calls/s, audits, canary, \
                            first failure. Replay a failure with --only K --seeds A,B --verbose FROM.")]
    Fuzz(fuzz::FuzzOptions),
    /// Host fuzzing of xenstored's wire parser: two hostile domains over their rings, a bystander, invariants after each input.
    #[command(after_help = "Prints inputs/s, the errors and drops answered, and the first broken invariant with its seed, \
                            iteration and input. Replay a failure with --seed S --iterations K+1.")]
    FuzzXenstore(xsfuzz::XsFuzzArgs),
    /// Host fuzzing of the io/ring.h library: a front and a back over shared pages while a third party makes up indices.
    #[command(after_help = "Prints episodes/s, the peer faults reported, and the first broken invariant with its seed \
                            and iteration. Replay a failure with --seed S --iterations K+1.")]
    FuzzRing(ringfuzz::RingFuzzArgs),
    /// Host fuzzing of netback's request validation: a hostile netfront's tx and rx requests checked against Linux's rules.
    #[command(after_help = "Prints episodes/s, the requests sent by class, what they got, the fatal errors, and the first \
                            broken invariant with its seed and iteration. Replay a failure with --seed S --iterations K+1.")]
    FuzzNetback(netfuzz::NetFuzzArgs),
    /// Boot Debian's Linux PV kernel as dom0 and report the milestones it reaches.
    #[command(after_help = "Prints a table: milestone, reached, time since QEMU start. Fetches the kernel and busybox-static \
                            with apt-get download into target/xtask/linux/.")]
    Linux(linux::LinuxArgs),
    /// A newcomer's first `cargo xtask build`, on a private toolchain that
    /// lacks x86_64-unknown-none (under target/newcomer/).
    #[command(after_help = "Ends with 'newcomer: PASSED' or 'newcomer: FAILED' and the reason. Never touches ~/.rustup or ~/.cargo.")]
    Newcomer(newcomer::NewcomerArgs),
    /// Trace the hypervisor under a dom0 script (`xl trace`) and analyse it.
    #[command(after_help = "Writes trace.bin (xentrace's format), summary.txt, timeline.svg and console.log to \
                            target/xtask/trace/ (or --out) and prints the summary.")]
    Trace(trace_cmd::TraceArgs),
}

/// `build` and `iso`: which profile to build the kernels with.
#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// Build the kernels with the dev profile instead of --release.
    #[arg(long)]
    pub debug: bool,
}

impl ProfileArgs {
    fn profile(&self) -> image::Profile {
        if self.debug { image::Profile::Debug } else { image::Profile::Release }
    }
}

/// Root of the workspace (the parent of this crate's directory).
fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help goes to stdout and succeeds; a bad command line (or none)
            // prints clap's message on stderr and fails with 1, as before.
            let _ = e.print();
            return if e.use_stderr() { ExitCode::FAILURE } else { ExitCode::SUCCESS };
        }
    };
    let result = match cli.command {
        Command::Build(a) => image::build(a.profile()).map(|_| ()),
        Command::Iso(a) => image::build(a.profile()).and_then(|k| image::default_iso(&k, "loglvl=all")).map(|p| {
            println!("{}", p.display());
        }),
        Command::Run(a) => qemu::run_command(a),
        Command::Test(a) => tests::run(&a),
        Command::Conformance(a) => conformance::command(&a),
        Command::Bench(a) => bench::command(&a),
        Command::Lint => lint::command(),
        Command::Fuzz(a) => fuzz::command(a),
        Command::FuzzXenstore(a) => xsfuzz::command(&a),
        Command::FuzzRing(a) => ringfuzz::command(&a),
        Command::FuzzNetback(a) => netfuzz::command(&a),
        Command::Newcomer(a) => newcomer::command(&a),
        Command::Linux(a) => linux::command(&a),
        Command::Trace(a) => trace_cmd::command(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod cli_tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("xtask").chain(args.iter().copied())).map(|c| c.command)
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn build_and_iso_take_debug() {
        assert!(matches!(parse(&["build"]), Ok(Command::Build(ProfileArgs { debug: false }))));
        assert!(matches!(parse(&["build", "--debug"]), Ok(Command::Build(ProfileArgs { debug: true }))));
        assert!(matches!(parse(&["iso", "--debug"]), Ok(Command::Iso(ProfileArgs { debug: true }))));
        assert!(matches!(parse(&["lint"]), Ok(Command::Lint)));
    }

    #[test]
    fn newcomer_takes_fresh() {
        assert!(matches!(parse(&["newcomer"]), Ok(Command::Newcomer(newcomer::NewcomerArgs { fresh: false }))));
        assert!(matches!(parse(&["newcomer", "--fresh"]), Ok(Command::Newcomer(newcomer::NewcomerArgs { fresh: true }))));
        assert!(parse(&["newcomer", "--bogus"]).is_err());
    }

    #[test]
    fn run_takes_every_option() {
        let Ok(Command::Run(d)) = parse(&["run"]) else { panic!("run") };
        assert_eq!((d.timeout, d.script, d.cpu.as_str(), d.smp, d.mem), (None, None, "Haswell-noTSX", 1, 256));
        assert_eq!((d.cmdline.as_str(), d.dom0_cmdline.as_str(), d.xen_417), ("loglvl=all", "guests=1", false));
        let args = [
            "run",
            "--timeout",
            "20",
            "--script",
            "s.txt",
            "--cpu",
            "max",
            "--smp",
            "2",
            "--mem",
            "512",
            "--cmdline",
            "loglvl=warning",
            "--dom0-cmdline",
            "test=pagefault",
            "--xen-4.17",
        ];
        let Ok(Command::Run(r)) = parse(&args) else { panic!("run") };
        assert_eq!((r.timeout, r.script.as_deref(), r.cpu.as_str(), r.smp, r.mem), (Some(20), Some("s.txt".as_ref()), "max", 2, 512));
        assert_eq!((r.cmdline.as_str(), r.dom0_cmdline.as_str(), r.xen_417), ("loglvl=warning", "test=pagefault", true));
        let Ok(Command::Run(h)) = parse(&["run", "--cmdline", "-x", "--dom0-cmdline", ""]) else { panic!("run") };
        assert_eq!((h.cmdline.as_str(), h.dom0_cmdline.as_str()), ("-x", ""), "values as given, as before");
        assert!(parse(&["run", "--smp", "two"]).is_err());
        assert!(parse(&["run", "--timeout"]).is_err());
        assert!(parse(&["run", "--bogus"]).is_err());
    }

    #[test]
    fn bench_icount_adds_qemu_icount() {
        let Ok(Command::Bench(b)) = parse(&["bench", "--icount", "--runs", "1"]) else { panic!("bench") };
        assert!(b.icount && b.runs == 1 && !b.ours_only);
        assert_eq!(bench::qemu_extra(&b), ["-icount", "shift=0"]);
        let Ok(Command::Bench(plain)) = parse(&["bench"]) else { panic!("bench") };
        assert!(bench::qemu_extra(&plain).is_empty(), "real cycles unless asked");
    }

    #[test]
    fn linux_takes_every_option() {
        let Ok(Command::Linux(d)) = parse(&["linux"]) else { panic!("linux") };
        assert_eq!((d.xen_417, d.no_initrd, d.timeout, d.kernel, d.cloud, d.echo), (false, false, 180, None, false, false), "xen-core by default");
        let args = ["linux", "--xen-4.17", "--no-initrd", "--timeout", "30", "--kernel", "bzImage", "--cloud", "--echo"];
        let Ok(Command::Linux(a)) = parse(&args) else { panic!("linux") };
        assert_eq!((a.xen_417, a.no_initrd, a.timeout, a.kernel.as_deref(), a.cloud, a.echo), (true, true, 30, Some("bzImage".as_ref()), true, true));
        assert!(parse(&["linux", "--timeout", "soon"]).is_err());
    }

    #[test]
    fn trace_takes_every_option() {
        let Ok(Command::Trace(d)) = parse(&["trace"]) else { panic!("trace") };
        assert_eq!((d.script, d.xen_417, d.out, d.smp, d.tbuf_pages, d.timeout, d.log), (None, false, None, 2, trace_cmd::TBUF_PAGES, 300, None));
        let Ok(Command::Trace(l)) = parse(&["trace", "--log", "c.log"]) else { panic!("trace") };
        assert_eq!(l.log.as_deref(), Some("c.log".as_ref()));
        let args = ["trace", "--script", "s.txt", "--xen-4.17", "--out", "o", "--smp", "1", "--tbuf-pages", "8", "--timeout", "60"];
        let Ok(Command::Trace(a)) = parse(&args) else { panic!("trace") };
        assert_eq!(
            (a.script.as_deref(), a.xen_417, a.out.as_deref(), a.smp, a.tbuf_pages, a.timeout),
            (Some("s.txt".as_ref()), true, Some("o".as_ref()), 1, 8, 60)
        );
        assert!(parse(&["trace", "--smp", "x"]).is_err());
    }

    #[test]
    fn test_takes_a_filter() {
        assert!(matches!(parse(&["test"]), Ok(Command::Test(tests::TestArgs { filter })) if filter.is_empty()));
        assert!(matches!(parse(&["test", "enosys"]), Ok(Command::Test(tests::TestArgs { filter })) if filter == "enosys"));
    }

    #[test]
    fn no_command_or_an_unknown_one_is_an_error_and_help_is_not() {
        assert!(parse(&[]).is_err_and(|e| e.use_stderr()));
        assert!(parse(&["frobnicate"]).is_err_and(|e| e.use_stderr()));
        assert!(parse(&["build", "--bogus"]).is_err_and(|e| e.use_stderr()));
        for help in [&["help"][..], &["--help"], &["-h"], &["help", "run"], &["bench", "--help"]] {
            let e = parse(help).expect_err("help is reported as an 'error'");
            assert!(!e.use_stderr(), "{help:?}");
            assert_eq!(e.kind(), clap::error::ErrorKind::DisplayHelp, "{help:?}");
        }
    }
}
