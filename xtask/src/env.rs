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
    let missing: Vec<&str> = PACKAGES.iter().filter(|(_, f)| !Path::new(f).exists()).map(|(p, _)| *p).collect();
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
    let install = ok(Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"));
    if !(update && install) {
        return Err(format!("apt-get install {list} failed"));
    }
    Ok(())
}

/// Make sure the pinned toolchain has the bare-metal target. Rustup does not
/// add a target to an installed toolchain by itself, so run
/// `rustup toolchain install` in the repository root, which reads
/// `rust-toolchain.toml`.
pub fn ensure_rust_target(root: &Path) -> Result<(), String> {
    let sysroot = Command::new("rustc")
        .current_dir(root)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("cannot run rustc: {e}"))?;
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_string();
    if Path::new(&sysroot).join("lib/rustlib/x86_64-unknown-none").exists() {
        return Ok(());
    }
    eprintln!("xtask: adding the x86_64-unknown-none target (rustup toolchain install)");
    let ok = Command::new("rustup").current_dir(root).args(["toolchain", "install"]).status();
    match ok {
        Ok(s) if s.success() => Ok(()),
        _ => Err("`rustup toolchain install` failed; run it in the repository root".into()),
    }
}
