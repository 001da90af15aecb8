//! Real Xen 4.17, the reference: fetched from Debian as
//! `xen-hypervisor-4.17-amd64` with `apt-get download`, unpacked with
//! `dpkg-deb -x`, and cached as `target/xtask/xen-4.17/xen.gz`.

use crate::image;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const PACKAGE: &str = "xen-hypervisor-4.17-amd64";

/// Xen's command line in our runs: serial console, dom0 sized like
/// xen-core's tests, everything logged; Xen 4.17's default scheduler
/// (credit2).
pub const XEN_CMDLINE: &str = "console=com1 com1=115200,8n1 dom0_mem=64M,max:64M loglvl=all guest_loglvl=all";
/// The same with the credit scheduler, the one xen-core implements: for the
/// runs that look at scheduler parameters (conformance, the weights test).
/// Not the default elsewhere: under TCG, Xen 4.17 with credit1 has been seen
/// to fire a guest timer milliseconds early against the guest's PV clock.
pub const XEN_CMDLINE_CREDIT: &str = "console=com1 com1=115200,8n1 dom0_mem=64M,max:64M sched=credit loglvl=all guest_loglvl=all";

fn find_xen_gz(dir: &Path) -> Option<PathBuf> {
    let boot = dir.join("boot");
    fs::read_dir(boot).ok()?.flatten().map(|e| e.path()).find(|p| {
        let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        n.starts_with("xen-4.17") && n.ends_with(".gz")
    })
}

fn download(dir: &Path) -> bool {
    Command::new("apt-get").current_dir(dir).args(["download", "-q", PACKAGE]).status().is_ok_and(|s| s.success())
}

/// Path of Xen 4.17's `xen.gz`, fetching it on first use.
pub fn xen_gz() -> Result<PathBuf, String> {
    let dir = image::out_dir().join("xen-4.17");
    let cached = dir.join("xen.gz");
    if cached.exists() {
        return Ok(cached);
    }
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    eprintln!("xtask: fetching {PACKAGE} (apt-get download)");
    if !download(&dir) {
        // A fresh machine may have no package lists yet.
        let _ = Command::new("apt-get").args(["update", "-q"]).status();
        if !download(&dir) {
            return Err(format!("apt-get download {PACKAGE} failed"));
        }
    }
    let deb = fs::read_dir(&dir)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or("no .deb downloaded")?;
    let unpacked = dir.join("unpacked");
    let ok = Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked).status().is_ok_and(|s| s.success());
    if !ok {
        return Err(format!("dpkg-deb -x {} failed", deb.display()));
    }
    let gz = find_xen_gz(&unpacked).ok_or("no boot/xen-4.17*.gz in the package")?;
    fs::copy(&gz, &cached).map_err(|e| e.to_string())?;
    Ok(cached)
}
