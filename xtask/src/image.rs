//! Building the kernels and packing them into GRUB ISOs.

use crate::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Which cargo profile to build the kernels with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// `--release` (the default).
    Release,
    /// The dev profile.
    Debug,
}

/// Paths of the built kernel images.
#[derive(Clone, Debug)]
pub struct Kernels {
    /// The hypervisor.
    pub xen_core: PathBuf,
    /// Domain 0.
    pub dom0: PathBuf,
    /// The demo guest kernel.
    pub guest: PathBuf,
    /// Dom0's files: a tar archive of the demo guest (`guest`) and the xl
    /// configs of `dom0-tools/configs`, dom0's boot module.
    pub dom0_files: PathBuf,
}

/// `target/xtask`, where ISOs and scratch files go.
pub fn out_dir() -> PathBuf {
    crate::workspace_root().join("target").join("xtask")
}

/// Build every kernel image for `x86_64-unknown-none`.
pub fn build(profile: Profile) -> Result<Kernels, String> {
    let root = crate::workspace_root();
    env::ensure_rust_target(&root)?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root).args(["build", "--target", "x86_64-unknown-none"]);
    cmd.args(["-p", "xen-core", "-p", "dom0-tools", "-p", "pv-guest-kernel", "--bins"]);
    if profile == Profile::Release {
        cmd.arg("--release");
    }
    let status = cmd.status().map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err("kernel build failed".into());
    }
    let dir = cargo_target_dir(&root).join("x86_64-unknown-none").join(if profile == Profile::Release { "release" } else { "debug" });
    let guest = dir.join("pv-guest-kernel");
    let dom0_files = pack_dom0_files(&guest, &root.join("dom0-tools/configs"), &[], &dir.join("dom0-files.tar"))?;
    Ok(Kernels { xen_core: dir.join("xen-core"), dom0: dir.join("dom0"), guest, dom0_files })
}

/// Where cargo puts its output: `CARGO_TARGET_DIR` when set (relative to
/// the workspace root, where the build runs), else `target/`.
fn cargo_target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    }
}

/// Dom0's files as [`Kernels::dom0_files`] has them, plus `extra` (each a
/// name in the archive and its bytes), in `out` (under [`out_dir`]): the
/// Linux domU's kernel, initramfs and config, for instance.
pub fn dom0_files_with(k: &Kernels, extra: &[(&str, &[u8])], out: &str) -> Result<PathBuf, String> {
    let root = crate::workspace_root();
    fs::create_dir_all(out_dir()).map_err(|e| format!("{}: {e}", out_dir().display()))?;
    pack_dom0_files(&k.guest, &root.join("dom0-tools/configs"), extra, &out_dir().join(out))
}

/// Write `out`: a ustar archive of the guest kernel as `guest`, every
/// `*.cfg` of `configs`, sorted by name, then the `extra` files.
fn pack_dom0_files(guest: &Path, configs: &Path, extra: &[(&str, &[u8])], out: &Path) -> Result<PathBuf, String> {
    let file = fs::File::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut tar = tar::Builder::new(file);
    tar.mode(tar::HeaderMode::Deterministic);
    let err = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    tar.append_path_with_name(guest, "guest").map_err(|e| err(guest, e))?;
    let mut cfgs: Vec<PathBuf> = fs::read_dir(configs)
        .map_err(|e| err(configs, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "cfg"))
        .collect();
    cfgs.sort();
    for p in &cfgs {
        let name = p.file_name().and_then(|n| n.to_str()).ok_or_else(|| format!("{}: not a UTF-8 name", p.display()))?;
        tar.append_path_with_name(p, name).map_err(|e| err(p, e))?;
    }
    for (name, bytes) in extra {
        let mut h = tar::Header::new_ustar();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        tar.append_data(&mut h, name, *bytes).map_err(|e| err(out, e))?;
    }
    tar.into_inner().map_err(|e| err(out, e))?;
    Ok(out.to_path_buf())
}

/// One `module2` line.
#[derive(Clone, Debug)]
pub struct Module {
    /// File to copy into the ISO.
    pub src: PathBuf,
    /// Its name under `/boot`.
    pub name: String,
    /// Arguments after the path on the `module2` line.
    pub args: String,
}

impl Module {
    /// A module named `name` with no extra arguments.
    pub fn new(src: &Path, name: &str) -> Self {
        Module { src: src.to_path_buf(), name: name.into(), args: String::new() }
    }
}

/// What goes on an ISO.
#[derive(Clone, Debug)]
pub struct IsoSpec {
    /// ISO file name stem, unique per variant.
    pub name: String,
    /// The multiboot2 kernel (xen-core or Xen's xen.gz).
    pub hypervisor: PathBuf,
    /// Its command line.
    pub cmdline: String,
    /// Modules, in order (dom0 first).
    pub modules: Vec<Module>,
}

fn grub_cfg(spec: &IsoSpec) -> String {
    let mut cfg = String::from("set timeout=0\nset timeout_style=hidden\nmenuentry \"xen-core\" {\n");
    cfg += &format!("    multiboot2 /boot/hypervisor {}\n", spec.cmdline);
    for m in &spec.modules {
        // GRUB 2 passes what follows the path as the module's command line.
        cfg += &format!("    module2 /boot/{} {}\n", m.name, m.args);
    }
    cfg += "}\n";
    cfg
}

/// Pack an ISO with `grub-mkrescue`; returns its path.
pub fn make_iso(spec: &IsoSpec) -> Result<PathBuf, String> {
    env::ensure_system_tools()?;
    let tree = out_dir().join(format!("iso-{}", spec.name));
    let _ = fs::remove_dir_all(&tree);
    let boot = tree.join("boot");
    fs::create_dir_all(boot.join("grub")).map_err(|e| format!("{}: {e}", tree.display()))?;
    let copy = |src: &Path, dst: &Path| fs::copy(src, dst).map_err(|e| format!("copy {}: {e}", src.display()));
    copy(&spec.hypervisor, &boot.join("hypervisor"))?;
    for m in &spec.modules {
        copy(&m.src, &boot.join(&m.name))?;
    }
    fs::write(boot.join("grub/grub.cfg"), grub_cfg(spec)).map_err(|e| e.to_string())?;
    let iso = out_dir().join(format!("{}.iso", spec.name));
    let out = Command::new("grub-mkrescue")
        .args(["-d", "/usr/lib/grub/i386-pc", "--locales=", "--fonts=", "--themes="])
        .arg("--install-modules=multiboot2 normal iso9660 biosdisk part_msdos gzio")
        .arg("-o")
        .arg(&iso)
        .arg(&tree)
        .output()
        .map_err(|e| format!("cannot run grub-mkrescue: {e}"))?;
    if !out.status.success() {
        return Err(format!("grub-mkrescue failed:\n{}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(iso)
}

/// The standard ISO: xen-core, dom0 and the demo guest.
pub fn default_iso(k: &Kernels, cmdline: &str) -> Result<PathBuf, String> {
    make_iso(&standard_spec("xen-core", k, cmdline, ""))
}

/// The same dom0 and guest on real Xen 4.17.
pub fn xen417_spec(name: &str, k: &Kernels, dom0_args: &str) -> Result<IsoSpec, String> {
    xen417_spec_with(name, k, crate::xen::XEN_CMDLINE, dom0_args)
}

/// Xen 4.17 with its own command line.
pub fn xen417_spec_with(name: &str, k: &Kernels, xen_cmdline: &str, dom0_args: &str) -> Result<IsoSpec, String> {
    let mut spec = standard_spec(name, k, xen_cmdline, dom0_args);
    spec.hypervisor = crate::xen::xen_gz()?;
    Ok(spec)
}

/// xen-core with dom0 (given `dom0_args`) and the demo guest as its module.
pub fn standard_spec(name: &str, k: &Kernels, cmdline: &str, dom0_args: &str) -> IsoSpec {
    let dom0 = Module { args: dom0_args.into(), ..Module::new(&k.dom0, "dom0") };
    IsoSpec {
        name: name.into(),
        hypervisor: k.xen_core.clone(),
        cmdline: cmdline.into(),
        modules: vec![dom0, Module::new(&k.dom0_files, "dom0-files.tar")],
    }
}
