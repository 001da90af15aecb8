//! `cargo xtask newcomer`: a newcomer's first build, reproduced. In a
//! private `RUSTUP_HOME` and `CARGO_HOME` under `target/newcomer/` (never
//! `~/.rustup` or `~/.cargo`), it installs the toolchain that
//! `rust-toolchain.toml` pins, `--profile minimal` and without the
//! `x86_64-unknown-none` target; checks that the target is missing and that
//! a bare-metal build fails with "can't find crate for `core`"; runs
//! `cargo xtask build` through that toolchain's rustup proxies, from an
//! environment without `RUSTUP_TOOLCHAIN`, as a newcomer's shell would;
//! and checks that the target is now installed and a bare-metal build
//! succeeds.
//!
//! The trap: cargo starts xtask with `RUSTUP_TOOLCHAIN` set, and a `rustup`
//! that xtask starts inherits it and ignores `rust-toolchain.toml`, so a
//! bare `rustup toolchain install` finds the toolchain installed and adds
//! no target. The private environment sets `RUSTUP_AUTO_INSTALL=0`, as on
//! machines where the bug bites: otherwise rustup (1.28.2 and 1.29.0 were
//! seen to) adds a target listed in `rust-toolchain.toml` to an installed
//! toolchain by itself whenever a proxy runs, which would hide the bug. So
//! only xtask can add the target here.
//!
//! Between runs the private toolchain, registry and host build are kept;
//! each run removes the target and the bare-metal build directory first.
//! `--fresh` starts from nothing.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

/// The target the newcomer's toolchain lacks.
const TARGET: &str = "x86_64-unknown-none";
/// A small `no_std` crate that builds for [`TARGET`].
const PROBE_CRATE: &str = "xen-public";
/// rustc's message when the target's standard library is not installed.
const MISSING_CORE: &str = "can't find crate for `core`";
/// What the newcomer runs: the cheapest xtask command that goes through
/// `env::ensure_rust_target` (`test`, `run` and `iso` build the same way).
const XTASK: &[&str] = &["xtask", "build"];
/// How many steps [`run`] takes.
const STEPS: usize = 5;

/// `cargo xtask newcomer [--fresh]`.
#[derive(Debug, clap::Args)]
pub struct NewcomerArgs {
    /// Delete the private toolchain, registry and builds first (slower: a
    /// run from nothing).
    #[arg(long)]
    pub fresh: bool,
}

/// The private directories, all under `target/newcomer/`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Homes {
    /// `target/newcomer`.
    dir: PathBuf,
    /// `RUSTUP_HOME`.
    rustup: PathBuf,
    /// `CARGO_HOME`, whose `bin/` holds the rustup proxies.
    cargo: PathBuf,
    /// `CARGO_TARGET_DIR`, so the main build is left alone.
    target: PathBuf,
}

impl Homes {
    fn under(root: &Path) -> Self {
        let dir = root.join("target").join("newcomer");
        Homes { rustup: dir.join("rustup"), cargo: dir.join("cargo"), target: dir.join("target"), dir }
    }

    fn bin(&self) -> PathBuf {
        self.cargo.join("bin")
    }
}

/// Whether cargo or rustup pass `key` down to their children, or it would
/// choose a toolchain or a build setting: none of these is in a newcomer's
/// shell (`LD_LIBRARY_PATH` is set by `cargo run`).
fn is_toolchain_var(key: &OsStr) -> bool {
    key.to_str().is_some_and(|k| k == "LD_LIBRARY_PATH" || k.starts_with("CARGO") || k.starts_with("RUST"))
}

/// `PATH` with the private proxies first and without `outer_bins`, the
/// outer rustup's proxies. Other directories stay, even one with a system
/// cargo: the private proxies come first, and that directory may hold the
/// linker.
fn private_path(bin: &Path, outer: &OsStr, outer_bins: &[PathBuf]) -> Result<OsString, String> {
    let rest = std::env::split_paths(outer).filter(|d| !outer_bins.contains(d));
    std::env::join_paths(std::iter::once(bin.to_path_buf()).chain(rest)).map_err(|e| format!("PATH: {e}"))
}

/// The newcomer's environment: the outer one without toolchain variables
/// (so without `RUSTUP_TOOLCHAIN`), with the private homes, `path`, and
/// rustup's auto-install off.
fn newcomer_env(outer: impl IntoIterator<Item = (OsString, OsString)>, homes: &Homes, path: OsString) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = outer.into_iter().filter(|(k, _)| k != "PATH" && !is_toolchain_var(k)).collect();
    env.extend([
        ("PATH".into(), path),
        ("RUSTUP_HOME".into(), homes.rustup.clone().into_os_string()),
        ("CARGO_HOME".into(), homes.cargo.clone().into_os_string()),
        ("CARGO_TARGET_DIR".into(), homes.target.clone().into_os_string()),
        ("RUSTUP_AUTO_INSTALL".into(), "0".into()),
    ]);
    env
}

/// Whether `rustup target list --installed` printed [`TARGET`].
fn lists_target(installed: &str) -> bool {
    installed.lines().any(|l| l.trim() == TARGET)
}

/// Whether a build failed because the target's `core` is not installed.
fn is_missing_core(stderr: &str) -> bool {
    stderr.contains(MISSING_CORE)
}

/// The outer rustup's proxy directories: `$CARGO_HOME/bin` (cargo sets
/// `CARGO_HOME` for xtask) and `~/.cargo/bin`.
fn outer_bins() -> Vec<PathBuf> {
    let homes = [std::env::var_os("CARGO_HOME").map(PathBuf::from), std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo"))];
    homes.into_iter().flatten().map(|h| h.join("bin")).collect()
}

/// The first `name` on the outer `PATH`.
fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join(name)).find(|p| p.is_file())
}

fn remove_dir(dir: &Path) -> Result<(), String> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(format!("{}: {e}", dir.display())),
        _ => Ok(()),
    }
}

/// Run `cmd` with its output on this terminal; an error names `what`.
fn status(cmd: &mut Command, what: &str) -> Result<(), String> {
    match cmd.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("`{what}` failed ({s})")),
        Err(e) => Err(format!("cannot run `{what}`: {e}")),
    }
}

/// Run `cmd` and capture its output; an error names `what`.
fn output(cmd: &mut Command, what: &str) -> Result<Output, String> {
    cmd.output().map_err(|e| format!("cannot run `{what}`: {e}"))
}

/// Run `cmd` quietly; its output is shown only if it fails.
fn quiet(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = output(cmd, what)?;
    if out.status.success() {
        return Ok(());
    }
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Err(format!("`{what}` failed ({}):\n{}", out.status, text.trim_end()))
}

/// The private toolchain and the environment its commands run in.
struct Newcomer {
    root: PathBuf,
    channel: String,
    homes: Homes,
    env: Vec<(OsString, OsString)>,
}

impl Newcomer {
    fn new(root: PathBuf) -> Result<Self, String> {
        let channel = crate::env::pinned_channel(&root)?;
        let homes = Homes::under(&root);
        let path = private_path(&homes.bin(), &std::env::var_os("PATH").unwrap_or_default(), &outer_bins())?;
        let env = newcomer_env(std::env::vars_os(), &homes, path);
        Ok(Newcomer { root, channel, homes, env })
    }

    /// `program` in the repository root with the newcomer's environment
    /// and nothing else.
    fn cmd(&self, program: impl AsRef<OsStr>, args: &[&str]) -> Command {
        let mut c = Command::new(program);
        c.current_dir(&self.root).env_clear().envs(self.env.iter().map(|(k, v)| (k, v))).args(args);
        c
    }

    fn rustup(&self, args: &[&str]) -> Command {
        self.cmd(self.homes.bin().join("rustup"), args)
    }

    fn cargo(&self, args: &[&str]) -> Command {
        self.cmd(self.homes.bin().join("cargo"), args)
    }

    /// Step 1: rustup itself, installed from a copy of the outer `rustup`
    /// (it is `rustup-init` when run under that name), self-update off.
    fn install_rustup(&self) -> Result<(), String> {
        if self.homes.bin().join("rustup").is_file() {
            println!("newcomer: reusing the private rustup in {}", self.homes.dir.display());
            return Ok(());
        }
        let outer = find_on_path("rustup").ok_or("no rustup on PATH to install from")?;
        fs::create_dir_all(&self.homes.dir).map_err(|e| format!("{}: {e}", self.homes.dir.display()))?;
        let init = self.homes.dir.join("rustup-init");
        fs::copy(&outer, &init).map_err(|e| format!("copying {} to {}: {e}", outer.display(), init.display()))?;
        let args = ["-y", "--no-modify-path", "--default-toolchain", "none", "--profile", "minimal"];
        println!("newcomer: rustup-init {} (from {})", args.join(" "), outer.display());
        quiet(&mut self.cmd(&init, &args), "rustup-init")?;
        let _ = fs::remove_file(&init);
        quiet(&mut self.rustup(&["set", "auto-self-update", "disable"]), "rustup set auto-self-update disable")
    }

    fn target_installed(&self) -> Result<bool, String> {
        let what = "rustup target list --installed";
        let out = output(&mut self.rustup(&["target", "list", "--installed", "--toolchain", &self.channel]), what)?;
        if !out.status.success() {
            return Err(format!("`{what}` failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(lists_target(&String::from_utf8_lossy(&out.stdout)))
    }

    /// Step 2: the pinned toolchain without the target (removed if a
    /// previous run left it), and no bare-metal build left to look fresh.
    fn install_toolchain(&self) -> Result<(), String> {
        let install = ["toolchain", "install", &self.channel, "--profile", "minimal", "--no-self-update"];
        status(&mut self.rustup(&install), "rustup toolchain install")?;
        if self.target_installed()? {
            println!("newcomer: removing {TARGET}, which a previous run added");
            status(&mut self.rustup(&["target", "remove", "--toolchain", &self.channel, TARGET]), "rustup target remove")?;
        }
        if self.target_installed()? {
            return Err(format!("{TARGET} is still installed in the private toolchain"));
        }
        println!("newcomer: toolchain {} has no {TARGET}", self.channel);
        // Cargo would call old artifacts fresh without looking for `core`.
        remove_dir(&self.homes.target.join(TARGET))
    }

    /// Step 3: the newcomer's failure, before xtask runs.
    fn expect_missing_core(&self) -> Result<(), String> {
        let out = output(&mut self.cargo(&["check", "--target", TARGET, "-p", PROBE_CRATE]), "cargo check")?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            return Err(format!("`cargo check --target {TARGET} -p {PROBE_CRATE}` succeeded without the target"));
        }
        if !is_missing_core(&stderr) {
            return Err(format!("`cargo check --target {TARGET}` failed, but not for want of the target:\n{stderr}"));
        }
        println!("newcomer: as on a fresh machine: error[E0463]: {MISSING_CORE}");
        Ok(())
    }

    /// Step 4: what the newcomer types.
    fn run_xtask(&self) -> Result<(), String> {
        let what = format!("cargo {}", XTASK.join(" "));
        println!("newcomer: $ {what}");
        status(&mut self.cargo(XTASK), &what)
    }

    /// Step 5: xtask added the target, and a bare-metal build works.
    fn expect_target(&self) -> Result<(), String> {
        if !self.target_installed()? {
            return Err(format!("`cargo {}` left toolchain {} without {TARGET}", XTASK.join(" "), self.channel));
        }
        println!("newcomer: toolchain {} now has {TARGET}", self.channel);
        status(&mut self.cargo(&["check", "--target", TARGET, "-p", PROBE_CRATE]), "cargo check --target x86_64-unknown-none")
    }
}

/// Run step `n` of [`STEPS`] and say how long it took.
fn step(n: usize, what: &str, f: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    println!("newcomer: [{n}/{STEPS}] {what}");
    let start = Instant::now();
    let result = f();
    println!("newcomer: [{n}/{STEPS}] {} in {:.1} s", if result.is_ok() { "done" } else { "failed" }, start.elapsed().as_secs_f64());
    result
}

fn run(args: &NewcomerArgs) -> Result<(), String> {
    let nc = Newcomer::new(crate::workspace_root())?;
    if args.fresh {
        println!("newcomer: --fresh: removing {}", nc.homes.dir.display());
        remove_dir(&nc.homes.dir)?;
    }
    step(1, "a private rustup in target/newcomer (RUSTUP_HOME, CARGO_HOME)", || nc.install_rustup())?;
    step(2, &format!("toolchain {} (--profile minimal) without {TARGET}", nc.channel), || nc.install_toolchain())?;
    step(3, &format!("a bare-metal build fails: {MISSING_CORE}"), || nc.expect_missing_core())?;
    step(4, &format!("cargo {} through the private rustup, no RUSTUP_TOOLCHAIN set", XTASK.join(" ")), || nc.run_xtask())?;
    step(5, &format!("{TARGET} is installed and a bare-metal build succeeds"), || nc.expect_target())
}

/// `cargo xtask newcomer`: ends with `newcomer: PASSED` or
/// `newcomer: FAILED` and the reason.
pub fn command(args: &NewcomerArgs) -> Result<(), String> {
    let start = Instant::now();
    let result = run(args);
    let secs = start.elapsed().as_secs_f64();
    match &result {
        Ok(()) => println!("newcomer: PASSED in {secs:.1} s"),
        Err(e) => println!("newcomer: FAILED after {secs:.1} s: {e}"),
    }
    result.map_err(|_| "the newcomer test failed".into())
}

#[cfg(test)]
mod unit {
    use super::*;

    fn os(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs.iter().map(|(k, v)| (OsString::from(k), OsString::from(v))).collect()
    }

    fn homes() -> Homes {
        Homes::under(Path::new("/repo"))
    }

    #[test]
    fn the_homes_are_under_target_newcomer() {
        let h = homes();
        assert_eq!(h.dir, Path::new("/repo/target/newcomer"));
        assert_eq!((h.rustup.as_path(), h.cargo.as_path()), (Path::new("/repo/target/newcomer/rustup"), Path::new("/repo/target/newcomer/cargo")));
        assert_eq!((h.target.as_path(), h.bin()), (Path::new("/repo/target/newcomer/target"), PathBuf::from("/repo/target/newcomer/cargo/bin")));
    }

    #[test]
    fn toolchain_variables_are_recognised() {
        for k in ["RUSTUP_TOOLCHAIN", "RUSTUP_HOME", "CARGO", "CARGO_HOME", "CARGO_MANIFEST_DIR", "RUSTC", "RUSTFLAGS", "LD_LIBRARY_PATH"] {
            assert!(is_toolchain_var(OsStr::new(k)), "{k}");
        }
        for k in ["HOME", "PATH", "TERM", "http_proxy", "MY_RUSTUP_TOOLCHAIN"] {
            assert!(!is_toolchain_var(OsStr::new(k)), "{k}");
        }
    }

    #[test]
    fn the_environment_has_no_rustup_toolchain_and_the_private_homes() {
        let outer = os(&[
            ("HOME", "/root"),
            ("PATH", "/old"),
            ("RUSTUP_TOOLCHAIN", "1.95.0-x86_64-unknown-linux-gnu"),
            ("RUSTUP_HOME", "/root/.rustup"),
            ("CARGO_HOME", "/root/.cargo"),
            ("RUSTUP_AUTO_INSTALL", "1"),
        ]);
        let env = newcomer_env(outer, &homes(), "/new".into());
        let get = |k: &str| {
            let all: Vec<_> = env.iter().filter(|(key, _)| key == k).map(|(_, v)| v.to_string_lossy().into_owned()).collect();
            assert!(all.len() <= 1, "{k} set twice");
            all.into_iter().next()
        };
        assert_eq!(get("RUSTUP_TOOLCHAIN"), None);
        assert_eq!(get("HOME").as_deref(), Some("/root"));
        assert_eq!(get("PATH").as_deref(), Some("/new"));
        assert_eq!(get("RUSTUP_HOME").as_deref(), Some("/repo/target/newcomer/rustup"));
        assert_eq!(get("CARGO_HOME").as_deref(), Some("/repo/target/newcomer/cargo"));
        assert_eq!(get("CARGO_TARGET_DIR").as_deref(), Some("/repo/target/newcomer/target"));
        assert_eq!(get("RUSTUP_AUTO_INSTALL").as_deref(), Some("0"));
    }

    #[test]
    fn the_path_starts_with_the_proxies_and_drops_the_outer_ones() {
        let outer = std::env::join_paths(["/root/.cargo/bin", "/usr/bin", "/root/.cargo/bin", "/bin"]).unwrap_or_default();
        let path = private_path(Path::new("/p/bin"), &outer, &["/root/.cargo/bin".into()]);
        let dirs: Vec<PathBuf> = path.map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
        assert_eq!(dirs, [PathBuf::from("/p/bin"), "/usr/bin".into(), "/bin".into()]);
    }

    #[test]
    fn installed_targets_are_read_line_by_line() {
        assert!(lists_target("x86_64-unknown-linux-gnu\nx86_64-unknown-none\n"));
        assert!(!lists_target("x86_64-unknown-linux-gnu\n"));
        assert!(!lists_target("x86_64-unknown-none-softfloat\n"));
    }

    #[test]
    fn the_missing_core_error_is_recognised() {
        let stderr = "error[E0463]: can't find crate for `core`\n  = note: the `x86_64-unknown-none` target may not be installed\n";
        assert!(is_missing_core(stderr));
        assert!(!is_missing_core("error[E0425]: cannot find value `x` in this scope\n"));
    }
}
