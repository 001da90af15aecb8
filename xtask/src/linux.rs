//! `cargo xtask linux`: boot a real, unmodified Debian Linux PV kernel as
//! dom0 on xen-core (or on Xen 4.17 with `--xen-4.17`) under the same QEMU,
//! and report each boot milestone it reached with its time since QEMU
//! started.
//!
//! It owns three things:
//! - fetching the kernel and `busybox-static` with `apt-get download` into
//!   `target/xtask/linux/` (cached), the kernel's package resolved from
//!   Debian's metapackage with `apt-cache depends`, so a new ABI is picked up;
//! - the initramfs, an uncompressed newc cpio archive written here
//!   ([`Cpio`]): busybox, its applet symlinks, `/dev/console` and an `/init`
//!   script that prints [`SENTINEL_START`] and [`SENTINEL_DONE`] around its
//!   work and then powers off;
//! - the milestones ([`Milestone`]): which serial line marks each one.
//!
//! The invariant: a milestone is "reached" only when its line was seen on
//! serial (or, for the halt, when QEMU or Xen said the machine stopped);
//! times are host wall-clock times since QEMU was spawned.
#![forbid(unsafe_code)]

use crate::image::{self, IsoSpec, Module};
use crate::qemu;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Debian's metapackage for the kernel that has `CONFIG_XEN_DOM0=y`.
pub const GENERIC_META: &str = "linux-image-amd64";
/// Debian's cloud kernel metapackage (`CONFIG_XEN_PV=y`, no
/// `CONFIG_XEN_DOM0`): kept for the domU milestone.
pub const CLOUD_META: &str = "linux-image-cloud-amd64";
/// The busybox package for the initramfs.
const BUSYBOX: &str = "busybox-static";

/// Printed by `/init` once proc, sys and devtmpfs are mounted.
pub const SENTINEL_START: &str = "XTASK-LINUX: init started";
/// Printed by `/init` after its last command, before `poweroff -f`.
pub const SENTINEL_DONE: &str = "XTASK-LINUX: init done";
/// The line of `/init` that carries the fork/exec loop's two uptimes.
pub const LOOP_LINE: &str = "XTASK-LINUX: fork/exec 1000 processes, uptime";

/// Linux's command line: its console is Xen's (`hvc0`), and its early
/// messages go through `console_io` until that console is up.
pub const KERNEL_CMDLINE: &str = "console=hvc0 earlyprintk=xen";

/// Xen 4.17's command line for Linux: as [`crate::xen::XEN_CMDLINE`], with
/// dom0 given 256 MiB (Linux 6.1 wants more than our 64 MiB dom0).
pub const XEN_CMDLINE: &str = "console=com1 com1=115200,8n1 dom0_mem=256M,max:256M loglvl=all guest_loglvl=all";
/// xen-core's command line for Linux.
pub const XEN_CORE_CMDLINE: &str = "loglvl=all dom0_mem=256M";
/// QEMU's memory for Linux runs, in MiB.
pub const MEM_MIB: u32 = 512;

/// On the kernel command line, this word makes `/init` short: `uname -a`,
/// `MemTotal`, one line read from the console ([`PROMPT_LINE`], answered
/// through `xl console`; 60 s at most) and three seconds of sleep (time
/// for the test to read the guest's xenstore nodes while it lives),
/// without the cpuinfo dump, the dmesg grep and the 1000 fork/execs (the
/// domU test's guest: its console goes through dom0's relay, and the loop
/// would add a minute on Xen 4.17).
pub const QUICK_WORD: &str = "xtask.quick";

/// What the quick `/init` prints before it reads a line from `hvc0`; it
/// then echoes the line after [`GOT_LINE`].
pub const PROMPT_LINE: &str = "XTASK-LINUX: type a line";
/// The prefix of the quick `/init`'s answer.
pub const GOT_LINE: &str = "XTASK-LINUX: got";

/// The xl config of the Linux domU (`linux.cfg` in dom0's files): the same
/// kernel and initramfs as dom0's milestones, 256 MiB (the ELF and its xz
/// dictionary are staged in the domain's top 98 MiB while it is built).
/// No `earlyprintk=xen`: in a PV domU, 6.1's early console writes through
/// the hvc console before it exists (a NULL write, "PANIC: early exception
/// 0x0e").
pub fn domu_config() -> String {
    format!(
        "name = \"linux\"\n\
         kernel = \"vmlinuz\"\n\
         ramdisk = \"initrd.cpio\"\n\
         memory = 256\n\
         extra = \"console=hvc0 {QUICK_WORD}\"\n"
    )
}

/// The first lines of every `/init` here: proc, sys and devtmpfs.
pub const MOUNTS: &str = "mount -t proc proc /proc\nmount -t sysfs sysfs /sys\nmount -t devtmpfs devtmpfs /dev\n";

/// The `/init` script of the initramfs.
pub fn init_script() -> String {
    format!(
        "#!/bin/sh\n\
         {MOUNTS}\
         echo \"{SENTINEL_START}\"\n\
         uname -a\n\
         if grep -q {QUICK_WORD} /proc/cmdline; then\n\
         grep MemTotal /proc/meminfo\n\
         echo \"{PROMPT_LINE}\"\n\
         read -t 60 line\n\
         echo \"{GOT_LINE} $line\"\n\
         sleep 3\n\
         echo \"{SENTINEL_DONE}\"\n\
         poweroff -f\n\
         fi\n\
         cat /proc/cpuinfo /proc/meminfo\n\
         dmesg | grep -i xen\n\
         read t0 rest < /proc/uptime\n\
         i=0; while [ $i -lt 1000 ]; do /bin/true; i=$((i+1)); done\n\
         read t1 rest < /proc/uptime\n\
         echo \"{LOOP_LINE} $t0 to $t1\"\n\
         echo \"{SENTINEL_DONE}\"\n\
         poweroff -f\n"
    )
}

/// The busybox applets the initramfs links to `/bin/busybox` (what
/// `/init` runs, and a few more for a person at the shell).
pub(crate) const APPLETS: &[&str] = &[
    "sh",
    "mount",
    "umount",
    "echo",
    "cat",
    "uname",
    "dmesg",
    "grep",
    "true",
    "false",
    "poweroff",
    "reboot",
    "halt",
    "ls",
    "sleep",
    "ps",
    "date",
    "awk",
    "mkdir",
    "free",
    "uptime",
    "insmod",
    "switch_root",
    "ifconfig",
    "ping",
    "sync",
];

/// One boot milestone, in the order Linux reaches them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Milestone {
    /// The hypervisor's banner (Xen's version line or xen-core's).
    HypervisorBanner,
    /// Linux's banner, `Linux version ...`.
    LinuxBanner,
    /// Milestone 1 (no initramfs): Linux's root-mount panic.
    RootMountPanic,
    /// Milestone 2: `/init` started (its first sentinel).
    ScriptStart,
    /// `/init` finished its commands (its last sentinel).
    ScriptDone,
    /// The machine stopped: dom0's poweroff halted Xen, or QEMU exited.
    Halted,
}

impl Milestone {
    /// The milestones of a run with or without the initramfs.
    pub fn expected(initrd: bool) -> &'static [Milestone] {
        use Milestone::*;
        if initrd { &[HypervisorBanner, LinuxBanner, ScriptStart, ScriptDone, Halted] } else { &[HypervisorBanner, LinuxBanner, RootMountPanic] }
    }

    /// Its name in the table.
    pub fn label(self) -> &'static str {
        match self {
            Milestone::HypervisorBanner => "hypervisor banner",
            Milestone::LinuxBanner => "Linux banner",
            Milestone::RootMountPanic => "root-mount panic (milestone 1)",
            Milestone::ScriptStart => "init script started (milestone 2)",
            Milestone::ScriptDone => "init script done",
            Milestone::Halted => "machine halted",
        }
    }

    /// Serial text that marks it (any one of them).
    pub fn marks(self) -> &'static [&'static str] {
        match self {
            Milestone::HypervisorBanner => &["(XEN) Xen version 4.17", "(Xen ABI 4.17, x86_64) starting"],
            Milestone::LinuxBanner => &["Linux version "],
            Milestone::RootMountPanic => &["VFS: Unable to mount root fs"],
            Milestone::ScriptStart => &[SENTINEL_START],
            Milestone::ScriptDone => &[SENTINEL_DONE],
            // Linux dom0 (CONFIG_XEN_DOM0) powers off through ACPI S5, which
            // Xen performs (QEMU then exits 0); a dom0 without ACPI makes
            // SCHEDOP_shutdown(poweroff), after which Xen halts.
            Milestone::Halted => &["(XEN) Entering ACPI S5 state", "Hardware Dom0 halted"],
        }
    }
}

/// A newc ("070701") cpio archive, what Linux unpacks as an initramfs.
/// Entries get inode numbers in order; mtimes and owners are 0, so the
/// same inputs give the same bytes.
#[derive(Default)]
pub struct Cpio {
    bytes: Vec<u8>,
    next_ino: u32,
}

/// `S_IFDIR`, `S_IFREG`, `S_IFLNK` and `S_IFCHR` from `<sys/stat.h>`.
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

impl Cpio {
    /// An empty archive.
    pub fn new() -> Self {
        Cpio { bytes: Vec::new(), next_ino: 1 }
    }

    fn pad4(&mut self) {
        while !self.bytes.len().is_multiple_of(4) {
            self.bytes.push(0);
        }
    }

    fn entry(&mut self, name: &str, mode: u32, nlink: u32, rdev: (u32, u32), data: &[u8]) {
        let ino = if name == "TRAILER!!!" { 0 } else { self.next_ino };
        self.next_ino += 1;
        let fields = [ino, mode, 0, 0, nlink, 0, data.len() as u32, 0, 0, rdev.0, rdev.1, name.len() as u32 + 1, 0];
        self.bytes.extend_from_slice(b"070701");
        for f in fields {
            self.bytes.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(0);
        self.pad4();
        self.bytes.extend_from_slice(data);
        self.pad4();
    }

    /// A directory (mode 0755).
    pub fn dir(&mut self, name: &str) {
        self.entry(name, S_IFDIR | 0o755, 2, (0, 0), &[]);
    }

    /// A regular file with `perm` bits.
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.entry(name, S_IFREG | (perm & 0o7777), 1, (0, 0), data);
    }

    /// A symbolic link to `target`.
    pub fn symlink(&mut self, name: &str, target: &str) {
        self.entry(name, S_IFLNK | 0o777, 1, (0, 0), target.as_bytes());
    }

    /// A character device node (mode 0600).
    pub fn char_dev(&mut self, name: &str, major: u32, minor: u32) {
        self.entry(name, S_IFCHR | 0o600, 1, (major, minor), &[]);
    }

    /// The archive, closed with its `TRAILER!!!` entry.
    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, 1, (0, 0), &[]);
        self.bytes
    }
}

/// What every initramfs here holds: the mount points, `/dev/console`,
/// busybox at `/bin/busybox` and its applets' symlinks (no `/init` yet).
pub(crate) fn busybox_cpio(busybox: &[u8]) -> Cpio {
    let mut c = Cpio::new();
    for d in ["bin", "sbin", "dev", "proc", "sys", "tmp", "usr", "usr/bin", "usr/sbin"] {
        c.dir(d);
    }
    c.char_dev("dev/console", 5, 1);
    c.file("bin/busybox", 0o755, busybox);
    for a in APPLETS {
        c.symlink(&format!("bin/{a}"), "busybox");
    }
    c
}

/// The initramfs: busybox at `/bin/busybox`, its applets, the mount points,
/// `/dev/console` (so the kernel gives `/init` a console before devtmpfs is
/// mounted) and `/init`.
pub fn initramfs(busybox: &[u8]) -> Vec<u8> {
    let mut c = busybox_cpio(busybox);
    c.file("init", 0o755, init_script().as_bytes());
    c.finish()
}

/// The package a Debian metapackage depends on, from `apt-cache depends`
/// output (`  Depends: linux-image-6.1.0-57-amd64`).
pub fn depends_on(apt_cache_output: &str, prefix: &str) -> Option<String> {
    apt_cache_output
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends:"))
        .map(str::trim)
        .find(|p| p.starts_with(prefix) && !p.starts_with('<'))
        .map(String::from)
}

/// `target/xtask/linux`.
fn cache_dir() -> PathBuf {
    image::out_dir().join("linux")
}

/// `apt-get download PACKAGE` into `dir`, with an `apt-get update` and a
/// second try if the first fails (a fresh machine has no lists).
fn apt_download(dir: &Path, package: &str) -> Result<PathBuf, String> {
    let deb = |dir: &Path| {
        fs::read_dir(dir).ok()?.flatten().map(|e| e.path()).find(|p| p.extension().is_some_and(|x| x == "deb") && file_name(p).starts_with(package))
    };
    if let Some(d) = deb(dir) {
        return Ok(d);
    }
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    eprintln!("xtask: fetching {package} (apt-get download)");
    let get = || Command::new("apt-get").current_dir(dir).args(["download", "-q", package]).status().is_ok_and(|s| s.success());
    if !get() {
        let _ = Command::new("apt-get").args(["update", "-q"]).status();
        if !get() {
            return Err(format!("apt-get download {package} failed"));
        }
    }
    deb(dir).ok_or_else(|| format!("apt-get download {package}: no .deb in {}", dir.display()))
}

fn file_name(p: &Path) -> &str {
    p.file_name().and_then(|n| n.to_str()).unwrap_or("")
}

/// `dpkg-deb -x DEB DIR` (once: an existing DIR is the cache).
fn unpack(deb: &Path, dir: &Path) -> Result<(), String> {
    if dir.is_dir() {
        return Ok(());
    }
    let tmp = dir.with_extension("partial");
    let _ = fs::remove_dir_all(&tmp);
    let ok = Command::new("dpkg-deb").arg("-x").arg(deb).arg(&tmp).status().is_ok_and(|s| s.success());
    if !ok {
        return Err(format!("dpkg-deb -x {} failed", deb.display()));
    }
    fs::rename(&tmp, dir).map_err(|e| format!("{}: {e}", dir.display()))
}

/// The kernel package `meta` depends on now (`apt-cache depends`), or the
/// one cached last time when apt cannot say (offline).
fn resolve_kernel_package(meta: &str) -> Result<String, String> {
    let remembered = cache_dir().join(format!("{meta}.package"));
    let ask = || {
        let out = Command::new("apt-cache").args(["depends", meta]).output().ok()?;
        depends_on(&String::from_utf8_lossy(&out.stdout), "linux-image-")
    };
    let found = ask().or_else(|| {
        let _ = Command::new("apt-get").args(["update", "-q"]).status();
        ask()
    });
    match found {
        Some(p) => {
            let _ = fs::create_dir_all(cache_dir());
            let _ = fs::write(&remembered, &p);
            Ok(p)
        }
        None => {
            fs::read_to_string(&remembered).map(|s| s.trim().to_string()).map_err(|_| format!("apt-cache depends {meta}: no linux-image package"))
        }
    }
}

/// The bzImage of Debian's current kernel behind `meta`, fetched and
/// unpacked on first use.
pub fn fetch_kernel(meta: &str) -> Result<PathBuf, String> {
    let mut package = resolve_kernel_package(meta)?;
    let deb = match apt_download(&cache_dir().join(&package), &package) {
        Ok(deb) => deb,
        // Stale package lists can name a kernel the mirror has dropped
        // since Debian bumped the ABI; apt_download has run `apt-get
        // update` by now, so ask the metapackage again.
        Err(first) => match resolve_kernel_package(meta)? {
            newer if newer != package => {
                package = newer;
                apt_download(&cache_dir().join(&package), &package)?
            }
            _ => return Err(first),
        },
    };
    let dir = cache_dir().join(&package);
    let unpacked = dir.join("unpacked");
    unpack(&deb, &unpacked)?;
    let boot = unpacked.join("boot");
    fs::read_dir(&boot)
        .map_err(|e| format!("{}: {e}", boot.display()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| file_name(p).starts_with("vmlinuz-"))
        .ok_or_else(|| format!("no boot/vmlinuz-* in {package}"))
}

/// The initramfs file (`target/xtask/linux/initrd.cpio`), rebuilt from the
/// cached busybox each time (it is small).
pub fn fetch_initramfs() -> Result<PathBuf, String> {
    let busybox = fetch_busybox()?;
    let out = cache_dir().join("initrd.cpio");
    fs::write(&out, initramfs(&busybox)).map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(out)
}

/// The static busybox binary of [`BUSYBOX`], fetched and unpacked on
/// first use.
pub fn fetch_busybox() -> Result<Vec<u8>, String> {
    let dir = cache_dir().join(BUSYBOX);
    let deb = apt_download(&dir, BUSYBOX)?;
    let unpacked = dir.join("unpacked");
    unpack(&deb, &unpacked)?;
    let bin = unpacked.join("bin/busybox");
    fs::read(&bin).map_err(|e| format!("{}: {e}", bin.display()))
}

/// Where the bench initramfs puts the `linux-bench` program.
pub const LBENCH_PATH: &str = "/bin/linux-bench";

/// The `/init` of the bench initramfs (`cargo xtask bench`): the same
/// mounts and [`SENTINEL_START`] as [`init_script`] (the "shell" time),
/// then only `linux-bench`, whose one `LBENCH` line carries the figures,
/// then [`SENTINEL_DONE`] and `poweroff -f`.
pub fn bench_init_script() -> String {
    format!(
        "#!/bin/sh\n\
         {MOUNTS}\
         echo \"{SENTINEL_START}\"\n\
         {LBENCH_PATH}\n\
         echo \"{SENTINEL_DONE}\"\n\
         poweroff -f\n"
    )
}

/// The bench initramfs: what [`initramfs`] holds, with
/// [`bench_init_script`] as `/init` and `lbench` (the static
/// `linux-bench` executable) at [`LBENCH_PATH`].
pub fn bench_initramfs(busybox: &[u8], lbench: &[u8]) -> Vec<u8> {
    let mut c = busybox_cpio(busybox);
    c.file(LBENCH_PATH.trim_start_matches('/'), 0o755, lbench);
    c.file("init", 0o755, bench_init_script().as_bytes());
    c.finish()
}

/// The bench initramfs file (`target/xtask/linux/initrd-bench.cpio`) with
/// the `linux-bench` executable at `lbench`.
pub fn fetch_bench_initramfs(lbench: &Path) -> Result<PathBuf, String> {
    let lbench = fs::read(lbench).map_err(|e| format!("{}: {e}", lbench.display()))?;
    let cpio = bench_initramfs(&fetch_busybox()?, &lbench);
    let out = cache_dir().join("initrd-bench.cpio");
    fs::write(&out, cpio).map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(out)
}

/// Which hypervisor runs Linux.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum On {
    /// Ours.
    XenCore,
    /// Debian's Xen 4.17.
    Xen417,
}

impl On {
    /// Its name in ISO names and tables.
    pub fn label(self) -> &'static str {
        match self {
            On::XenCore => "xen-core",
            On::Xen417 => "xen-4.17",
        }
    }
}

/// One Linux boot.
#[derive(Clone, Debug)]
pub struct Run {
    /// The hypervisor.
    pub on: On,
    /// The bzImage (dom0's module).
    pub kernel: PathBuf,
    /// The initramfs (second module), or none (milestone 1).
    pub initrd: Option<PathBuf>,
    /// QEMU's timeout.
    pub timeout: Duration,
    /// Copy serial output to stdout as it comes.
    pub echo: bool,
    /// ISO name stem.
    pub name: String,
    /// xen-core's image when already built (else [`boot`] builds it).
    pub xen_core: Option<PathBuf>,
}

/// What a Linux boot reached.
#[derive(Debug)]
pub struct Report {
    /// Each expected milestone and when it was reached (since QEMU started).
    pub milestones: Vec<(Milestone, Option<Duration>)>,
    /// The fork/exec loop's time in seconds (from Linux's uptime), if run.
    pub fork_exec_s: Option<f64>,
    /// Whether QEMU was stopped at the timeout.
    pub timed_out: bool,
    /// QEMU's exit status, when it exited by itself.
    pub exit: Option<i32>,
    /// The serial output.
    pub output: String,
}

impl Report {
    /// Whether every expected milestone was reached.
    pub fn all_reached(&self) -> bool {
        self.milestones.iter().all(|(_, t)| t.is_some())
    }

    /// The milestone table, one row each, and the loop's time.
    pub fn table(&self) -> String {
        let mut s = format!("{:<36} {:<8} {:<22} {}\n", "milestone", "reached", "time since QEMU start", "Linux's clock");
        for (m, t) in &self.milestones {
            let (yes, at) = match t {
                Some(t) => ("yes", format!("{:.2} s", t.as_secs_f64())),
                None => ("no", "-".into()),
            };
            let clock = t.and_then(|_| linux_clock(&self.output, m.marks())).map_or("-".into(), |c| format!("{c:.2} s"));
            s += &format!("{:<36} {:<8} {:<22} {}\n", m.label(), yes, at, clock);
        }
        if let Some(f) = self.fork_exec_s {
            s += &format!("fork/exec of 1000 processes in Linux: {f:.2} s\n");
        }
        s
    }
}

/// Linux's own clock (the printk timestamp, `[   11.676815] ...`) on the
/// first line holding one of `marks`, when that line carries one.
pub fn linux_clock(output: &str, marks: &[&str]) -> Option<f64> {
    let line = output.lines().find(|l| marks.iter().any(|m| l.contains(m)))?;
    let stamp = line.trim_start().strip_prefix('[')?.split_once(']')?.0;
    stamp.trim().parse().ok()
}

/// The fork/exec loop's duration from `/init`'s [`LOOP_LINE`].
pub fn fork_exec_seconds(output: &str) -> Option<f64> {
    let line = output.lines().find(|l| l.contains(LOOP_LINE))?;
    let rest = &line[line.find(LOOP_LINE)? + LOOP_LINE.len()..];
    let (a, b) = rest.split_once(" to ")?;
    Some(b.trim().parse::<f64>().ok()? - a.trim().parse::<f64>().ok()?)
}

/// Boot Linux as dom0 once and collect its milestones.
pub fn boot(run: &Run) -> Result<Report, String> {
    boot_with(run, XEN_CORE_CMDLINE, XEN_CMDLINE)
}

/// xen-core's command line for the Linux bench: warnings only. At
/// `loglvl=all` xen-core logs every trap it bounces to Linux (160,000
/// serial lines in one bench run), which would dominate the figures;
/// Xen 4.17 logs nothing per trap at any level.
pub const XEN_CORE_BENCH_CMDLINE: &str = "loglvl=warning dom0_mem=256M";

/// [`boot`] with these command lines for xen-core and for Xen 4.17.
pub fn boot_with(run: &Run, xen_core_cmdline: &str, xen_cmdline: &str) -> Result<Report, String> {
    let mut modules = vec![Module { args: KERNEL_CMDLINE.into(), ..Module::new(&run.kernel, "vmlinuz") }];
    if let Some(i) = &run.initrd {
        modules.push(Module::new(i, "initrd.cpio"));
    }
    let (hypervisor, cmdline) = match run.on {
        On::XenCore => match &run.xen_core {
            Some(p) => (p.clone(), xen_core_cmdline),
            None => (image::build(image::Profile::Release)?.xen_core, xen_core_cmdline),
        },
        On::Xen417 => (crate::xen::xen_gz()?, xen_cmdline),
    };
    let spec = IsoSpec { name: format!("{}-{}", run.name, run.on.label()), hypervisor, cmdline: cmdline.into(), modules };
    let iso = image::make_iso(&spec)?;
    let expected = Milestone::expected(run.initrd.is_some());
    let marks: Vec<String> = expected.iter().flat_map(|m| m.marks().iter().map(|s| s.to_string())).collect();
    let opts = qemu::Options {
        mem_mib: MEM_MIB,
        timeout: Some(run.timeout),
        echo: run.echo,
        // Xen 4.17 keeps QEMU running after dom0 halts or crashes.
        stop_on: qemu::XEN_STOP_LINES.iter().map(|s| s.to_string()).collect(),
        watch: marks.clone(),
        ..Default::default()
    };
    let r = qemu::boot(&iso, &opts)?;
    let seen = |m: Milestone| -> Option<Duration> {
        let found = m.marks().iter().filter_map(|mark| marks.iter().position(|x| x == mark).and_then(|i| r.watched.get(i).copied().flatten())).min();
        match (m, found) {
            (_, Some(t)) => Some(t),
            // QEMU powered off (ACPI S5: exit 0) or xen-core's isa-debug-exit
            // after dom0's poweroff.
            (Milestone::Halted, None) if matches!(r.exit, Some(0 | qemu::EXIT_SUCCESS)) => r.ended_after,
            _ => None,
        }
    };
    Ok(Report {
        milestones: expected.iter().map(|&m| (m, seen(m))).collect(),
        fork_exec_s: fork_exec_seconds(&r.output),
        timed_out: r.timed_out,
        exit: r.exit,
        output: r.output,
    })
}

/// `cargo xtask linux [options]`.
#[derive(Debug, clap::Args)]
pub struct LinuxArgs {
    /// Boot on real Xen 4.17 (fetched from Debian) instead of xen-core.
    #[arg(long = "xen-4.17")]
    pub xen_417: bool,
    /// No initramfs: Linux runs to its root-mount panic (milestone 1).
    #[arg(long = "no-initrd")]
    pub no_initrd: bool,
    /// Stop QEMU after SECS seconds.
    #[arg(long, value_name = "SECS", default_value_t = 180)]
    pub timeout: u64,
    /// Boot this bzImage instead of Debian's kernel.
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,
    /// Fetch Debian's cloud kernel (linux-image-cloud-amd64) instead of the
    /// generic one: it has no CONFIG_XEN_DOM0, so as dom0 it runs but never
    /// gets a console (kept for the domU milestone).
    #[arg(long)]
    pub cloud: bool,
    /// Print the serial output as it comes.
    #[arg(long)]
    pub echo: bool,
}

/// `cargo xtask linux`.
pub fn command(a: &LinuxArgs) -> Result<(), String> {
    crate::env::ensure_system_tools()?;
    let kernel = match &a.kernel {
        Some(k) if k.is_file() => k.clone(),
        Some(k) => return Err(format!("--kernel {}: no such file", k.display())),
        None => fetch_kernel(if a.cloud { CLOUD_META } else { GENERIC_META })?,
    };
    let initrd = if a.no_initrd { None } else { Some(fetch_initramfs()?) };
    let on = if a.xen_417 { On::Xen417 } else { On::XenCore };
    eprintln!(
        "[xtask] linux: {} as dom0 on {}{}",
        kernel.display(),
        on.label(),
        if initrd.is_some() { " with the busybox initramfs" } else { ", no initramfs" }
    );
    let run = Run { on, kernel, initrd, timeout: Duration::from_secs(a.timeout), echo: a.echo, name: "linux".into(), xen_core: None };
    let r = boot(&run)?;
    let log = cache_dir().join(format!("last-{}.log", on.label()));
    let _ = fs::write(&log, &r.output);
    print!("{}", r.table());
    println!("serial log: {}", log.display());
    if r.all_reached() {
        return Ok(());
    }
    let serial = r.output.split("\n[qemu stderr]\n").next().unwrap_or("");
    let lines: Vec<&str> = serial.lines().collect();
    println!("--- last serial lines ---");
    for l in &lines[lines.len().saturating_sub(15)..] {
        println!("| {l}");
    }
    let why = if r.timed_out { format!("stopped at the {} s timeout", a.timeout) } else { format!("QEMU ended (exit {:?})", r.exit) };
    Err(format!("linux: not every milestone reached; {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(entry: &[u8], i: usize) -> u32 {
        u32::from_str_radix(std::str::from_utf8(&entry[6 + 8 * i..14 + 8 * i]).unwrap(), 16).unwrap()
    }

    #[test]
    fn newc_entries_follow_the_cpio_format_linux_unpacks() {
        // Linux's init/initramfs.c: "070701", 13 hex fields, the name with
        // its NUL padded to 4 with the 110-byte header, the data padded to 4.
        let mut c = Cpio::new();
        c.file("init", 0o755, b"#!/bin/sh\n");
        let a = c.finish();
        assert_eq!(&a[..6], b"070701");
        assert_eq!(field(&a, 1), S_IFREG | 0o755);
        assert_eq!(field(&a, 6), 10, "filesize");
        assert_eq!(field(&a, 11), 5, "namesize counts the NUL");
        assert_eq!(&a[110..115], b"init\0");
        // 110 + 5 = 115 -> 116; data 10 bytes -> 126 -> 128.
        assert_eq!(&a[116..126], b"#!/bin/sh\n");
        assert_eq!(&a[128..134], b"070701");
        assert_eq!(&a[128 + 110..128 + 121], b"TRAILER!!!\0");
        assert_eq!(a.len() % 4, 0);
    }

    #[test]
    fn symlinks_and_device_nodes_carry_their_target_and_rdev() {
        let mut c = Cpio::new();
        c.symlink("bin/sh", "busybox");
        let a = c.finish();
        assert_eq!(field(&a, 1), S_IFLNK | 0o777);
        assert_eq!(field(&a, 6), 7);
        let mut c = Cpio::new();
        c.char_dev("dev/console", 5, 1);
        let a = c.finish();
        assert_eq!(field(&a, 1), S_IFCHR | 0o600);
        assert_eq!((field(&a, 9), field(&a, 10)), (5, 1), "rdevmajor, rdevminor of /dev/console");
        assert_eq!(field(&a, 6), 0);
    }

    #[test]
    fn the_initramfs_has_init_busybox_and_the_applets_init_runs() {
        let a = initramfs(b"\x7fELF-busybox");
        let text = String::from_utf8_lossy(&a);
        for name in ["init\0", "bin/busybox\0", "dev/console\0", "bin/sh\0", "bin/true\0", "bin/poweroff\0", "TRAILER!!!\0"] {
            assert!(text.contains(name), "{name}");
        }
        let script = init_script();
        for cmd in ["uname -a", "cat /proc/cpuinfo /proc/meminfo", "dmesg | grep -i xen", "-lt 1000", SENTINEL_START, SENTINEL_DONE, "poweroff -f"] {
            assert!(script.contains(cmd), "{cmd}");
        }
        // Every command /init runs by name is a linked applet.
        for cmd in ["mount", "uname", "cat", "dmesg", "grep", "true", "poweroff"] {
            assert!(APPLETS.contains(&cmd), "{cmd}");
        }
    }

    #[test]
    fn the_bench_initramfs_runs_linux_bench_between_the_sentinels_then_powers_off() {
        let a = initramfs_entries(&bench_initramfs(b"\x7fELF-busybox", b"\x7fELF-lbench"));
        let lbench = a.iter().find(|e| e.0 == "bin/linux-bench").expect("bin/linux-bench");
        assert_eq!((lbench.1, lbench.2.as_slice()), (S_IFREG | 0o755, &b"\x7fELF-lbench"[..]), "an executable file");
        let init = a.iter().find(|e| e.0 == "init").expect("init");
        assert_eq!(init.2, bench_init_script().as_bytes());
        for name in ["bin/busybox", "dev/console", "bin/sh", "bin/poweroff", "bin/mount", "bin/echo"] {
            assert!(a.iter().any(|e| e.0 == name), "{name}");
        }
        let script = bench_init_script();
        let at = |s: &str| script.find(s).unwrap_or_else(|| panic!("{s} in {script}"));
        assert!(at(SENTINEL_START) < at(LBENCH_PATH) && at(LBENCH_PATH) < at(SENTINEL_DONE) && at(SENTINEL_DONE) < at("poweroff -f"));
        assert!(!script.contains("-lt 1000"), "no fork/exec loop of busybox in the bench");
    }

    /// Every entry of a newc archive: name, mode and data.
    fn initramfs_entries(mut a: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
        let mut out = Vec::new();
        let up4 = |n: usize| n.div_ceil(4) * 4;
        while a.len() >= 110 {
            let (mode, size, namesize) = (field(a, 1) as usize, field(a, 6) as usize, field(a, 11) as usize);
            let name = String::from_utf8(a[110..110 + namesize - 1].to_vec()).unwrap();
            let data_at = up4(110 + namesize);
            if name == "TRAILER!!!" {
                break;
            }
            out.push((name, mode as u32, a[data_at..data_at + size].to_vec()));
            a = &a[up4(data_at + size)..];
        }
        out
    }

    #[test]
    fn the_quick_init_powers_off_before_the_long_work() {
        let script = init_script();
        let quick = script.find(QUICK_WORD).unwrap();
        let quick_end = quick + script[quick..].find("fi\n").unwrap();
        let quick_part = &script[quick..quick_end];
        assert!(quick_part.contains(SENTINEL_DONE) && quick_part.contains("poweroff -f"));
        assert!(script.find(SENTINEL_START).unwrap() < quick, "the start sentinel comes first");
        assert!(script.find("-lt 1000").unwrap() > quick_end, "the loop runs only without the word");
        assert!(domu_config().contains(QUICK_WORD));
    }

    #[test]
    fn the_domu_config_is_one_dom0s_builder_accepts() {
        let (c, warnings) = dom0_tools::xlcfg::parse("linux.cfg", domu_config().as_bytes()).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        let files = ["vmlinuz", "initrd.cpio"];
        let s = dom0_tools::spec::GuestSpec::from_config("linux.cfg", &c, dom0_tools::spec::MAX_PAGES, |f| files.contains(&f)).unwrap();
        assert_eq!((s.kernel.as_str(), s.ramdisk.as_deref(), s.pages), ("vmlinuz", Some("initrd.cpio"), 65536));
        assert!(s.cmdline.contains("console=hvc0"));
    }

    #[test]
    fn the_kernel_package_is_what_the_metapackage_depends_on() {
        let out = "linux-image-amd64\n  Depends: linux-image-6.1.0-57-amd64\n  Recommends: firmware-linux-free\n";
        assert_eq!(depends_on(out, "linux-image-").as_deref(), Some("linux-image-6.1.0-57-amd64"));
        assert_eq!(depends_on("linux-image-amd64\n  Recommends: x\n", "linux-image-"), None);
        assert_eq!(depends_on("x\n  Depends: <linux-image-virtual>\n", "linux-image-"), None, "a virtual package is not a kernel");
    }

    #[test]
    fn the_loop_time_is_the_difference_of_the_two_uptimes() {
        let out = format!("junk\n{LOOP_LINE} 5.12 to 9.62\n");
        assert!((fork_exec_seconds(&out).unwrap() - 4.5).abs() < 1e-9);
        assert_eq!(fork_exec_seconds("nothing"), None);
        assert_eq!(fork_exec_seconds(&format!("{LOOP_LINE} $t0 to $t1")), None, "an unexpanded line is no time");
    }

    #[test]
    fn linux_clock_is_the_printk_timestamp_of_the_milestone_line() {
        let out =
            "(XEN) Xen version 4.17.7\n[   11.676815] Kernel panic - not syncing: VFS: Unable to mount root fs on x\nXTASK-LINUX: init started\n";
        assert_eq!(linux_clock(out, Milestone::RootMountPanic.marks()), Some(11.676815));
        assert_eq!(linux_clock(out, Milestone::ScriptStart.marks()), None, "user space prints no timestamp");
        assert_eq!(linux_clock(out, Milestone::HypervisorBanner.marks()), None);
        assert_eq!(linux_clock(out, &["absent"]), None);
    }

    #[test]
    fn runs_without_initramfs_expect_the_panic_and_with_it_the_halt() {
        assert!(Milestone::expected(false).contains(&Milestone::RootMountPanic));
        assert!(!Milestone::expected(false).contains(&Milestone::ScriptStart));
        assert_eq!(Milestone::expected(true).last(), Some(&Milestone::Halted));
    }
}
