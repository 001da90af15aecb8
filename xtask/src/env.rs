//! Making sure the machine has what the build needs: the Rust target from
//! `rust-toolchain.toml`, and QEMU, GRUB and xorriso from Debian.

use std::path::Path;
use std::process::Command;

/// Debian packages the ISO and QEMU steps need, with a file each provides.
const PACKAGES: &[(&str, &str)] = &[
    ("qemu-system-x86", "/usr/bin/qemu-system-x86_64"),
    ("grub-pc-bin", "/usr/lib/grub/i386-pc/multiboot2.mod"),
    ("grub-common", "/usr/bin/grub-mkrescue"),
    ("xorriso", "/usr/bin/xorriso"),
    ("mtools", "/usr/bin/mformat"),
];

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

/// Install missing system packages with apt-get when root; otherwise say
/// which single command to run.
pub fn ensure_system_tools() -> Result<(), String> {
    ensure_packages(PACKAGES)
}

/// Install the packages of `(package, file it provides)` whose file is
/// missing, as [`ensure_system_tools`] does.
pub fn ensure_packages(packages: &[(&str, &str)]) -> Result<(), String> {
    let missing: Vec<&str> = packages.iter().filter(|(_, f)| !Path::new(f).exists()).map(|(p, _)| *p).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing.join(" ");
    if !is_root() {
        return Err(format!("missing tools; run: sudo apt-get install -y {list}"));
    }
    eprintln!("xtask: installing {list}");
    let ok = |c: &mut Command| c.status().map(|s| s.success()).unwrap_or(false);
    let update = ok(Command::new("apt-get").args(["update", "-q"]));
    let install =
        ok(Command::new("apt-get").args(["install", "-y", "-q", "--no-install-recommends"]).args(&missing).env("DEBIAN_FRONTEND", "noninteractive"));
    if !(update && install) {
        return Err(format!("apt-get install {list} failed"));
    }
    Ok(())
}

/// The channel `rust-toolchain.toml` pins (`channel = "..."`).
pub fn pinned_channel(root: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(root.join("rust-toolchain.toml")).map_err(|e| format!("rust-toolchain.toml: {e}"))?;
    channel_in(&text).ok_or_else(|| "rust-toolchain.toml names no channel".into())
}

/// The value of the first `channel = "..."` line of a toolchain file.
fn channel_in(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("channel"))
        .filter_map(|rest| rest.trim_start().strip_prefix('='))
        .map(|v| v.trim().trim_matches('"').to_string())
        .find(|v| !v.is_empty())
}

/// Make sure the pinned toolchain has the bare-metal target and the lint
/// components. Rustup does not add a target to an installed toolchain by
/// itself, and a `rustup` started by cargo inherits `RUSTUP_TOOLCHAIN`,
/// which makes it ignore `rust-toolchain.toml`: so name the pinned channel
/// explicitly and drop the inherited variable.
pub fn ensure_rust_target(root: &Path) -> Result<(), String> {
    let channel = pinned_channel(root)?;
    let sysroot = Command::new("rustc")
        .current_dir(root)
        .env_remove("RUSTUP_TOOLCHAIN")
        .arg(format!("+{channel}"))
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("cannot run rustc: {e}"))?;
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_string();
    if !sysroot.is_empty() && Path::new(&sysroot).join("lib/rustlib/x86_64-unknown-none").exists() {
        return Ok(());
    }
    eprintln!("xtask: adding the x86_64-unknown-none target to toolchain {channel}");
    let run = |args: &[&str]| {
        Command::new("rustup").current_dir(root).env_remove("RUSTUP_TOOLCHAIN").args(args).status().map(|s| s.success()).unwrap_or(false)
    };
    let installed = run(&["toolchain", "install", &channel, "--profile", "minimal", "--component", "clippy,rustfmt"]);
    if installed && run(&["target", "add", "--toolchain", &channel, "x86_64-unknown-none"]) {
        Ok(())
    } else {
        Err(format!("could not add x86_64-unknown-none to {channel}; run `rustup target add --toolchain {channel} x86_64-unknown-none`"))
    }
}

#[cfg(test)]
mod unit {
    use super::channel_in;

    #[test]
    fn reads_the_pinned_channel() {
        let toml = "[toolchain]\nchannel = \"1.95.0\"\ntargets = [\"x86_64-unknown-none\"]\n";
        assert_eq!(channel_in(toml).as_deref(), Some("1.95.0"));
        assert_eq!(channel_in("[toolchain]\n  channel=\"nightly-2026-01-01\"  \n").as_deref(), Some("nightly-2026-01-01"));
    }

    #[test]
    fn no_channel_line_is_none() {
        assert_eq!(channel_in("[toolchain]\ntargets = [\"x86_64-unknown-none\"]\n"), None);
        assert_eq!(channel_in("channel = \"\"\n"), None);
        assert_eq!(channel_in("channels = 3\n"), None, "a longer key is not `channel`");
    }

    #[test]
    fn the_repository_pins_a_channel() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        assert!(super::pinned_channel(&root).is_ok_and(|c| !c.is_empty()));
    }
}
