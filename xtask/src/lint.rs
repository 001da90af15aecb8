//! `cargo xtask lint`: clippy with `-D warnings` for the host build of the
//! workspace and for the bare-metal target of the kernels, then
//! `cargo fmt --check`. Fails on the first of them that fails.

use std::process::Command;

/// The crates that build for `x86_64-unknown-none` (`linux-bench` is a
/// Linux user program built for that target, see its crate).
const KERNEL_CRATES: &[&str] = &["xen-core", "dom0-tools", "pv-guest-kernel", "linux-bench"];

fn cargo(args: &[&str]) -> Result<(), String> {
    let root = crate::workspace_root();
    println!("== cargo {}", args.join(" "));
    let ok = Command::new(env!("CARGO")).current_dir(&root).args(args).status().map(|s| s.success()).unwrap_or(false);
    if ok { Ok(()) } else { Err(format!("`cargo {}` failed", args.join(" "))) }
}

/// Run every check.
pub fn command() -> Result<(), String> {
    crate::env::ensure_rust_target(&crate::workspace_root())?;
    cargo(&["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])?;
    let mut target = vec!["clippy", "--release", "--target", "x86_64-unknown-none"];
    for c in KERNEL_CRATES {
        target.extend(["-p", c]);
    }
    target.extend(["--", "-D", "warnings"]);
    cargo(&target)?;
    cargo(&["fmt", "--all", "--check"])?;
    println!("lint: clean");
    Ok(())
}
