//! The Linux domU with its root filesystem on `xvda` (issue 18, milestone
//! 3 with block and net): an ext2 disk image made on the host, the small
//! initramfs that loads the split-driver frontends and moves to that disk,
//! and the guest's xl config.
//!
//! Debian's generic kernel builds `xen-blkfront`, `xen-netfront` and ext4
//! as modules, so the initramfs carries them (taken from the same kernel
//! package, uncompressed there) and does what Debian's initramfs-tools
//! does: load them, wait for `/dev/xvda`, mount it and `switch_root`. The
//! disk's own `/sbin/init` then proves each half: it prints its root mount,
//! reads a file the host wrote, writes one the host looks for in the image
//! after the run, and pings another guest over `xenbr0`.
//!
//! The invariant: nothing here is faked in the guest: each line the test
//! expects is printed by a command that did the work (`grep` of
//! `/proc/mounts`, `cat`, busybox `ping`'s own summary).
#![forbid(unsafe_code)]

use crate::linux;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The guest's xl config file name in dom0's files.
pub const CONFIG_NAME: &str = "linuxroot.cfg";
/// Its initramfs in dom0's files.
pub const INITRD_NAME: &str = "initrd-xvda.cpio";
/// The guest's address on `xenbr0`; it pings [`PEER_IP`], the Rust guest
/// of `netserve.cfg`.
pub const GUEST_IP: &str = "10.0.2.13";
/// The guest it pings.
pub const PEER_IP: &str = "10.0.2.11";
/// Pings sent.
pub const PINGS: u32 = 5;
/// The file the host puts on the disk, and its one line.
pub const HOST_FILE: (&str, &str) = ("etc/xtask-disk", "XTASK-DISK: written on the host by mke2fs -d");
/// The line the guest writes to `/var/xtask-written` on its root, looked
/// for in the image file after the run.
pub const GUEST_MARK: &str = "XTASK-WRITTEN-BY-THE-LINUX-DOMU";
/// Printed by the disk's `/sbin/init` first.
pub const ROOT_SENTINEL: &str = "XTASK-LINUX: root on xvda";

/// The modules the initramfs loads, in dependency order (`modinfo -F
/// depends`: ext4 needs jbd2, mbcache and crc16, and asks the crypto API
/// for crc32c when it mounts; the frontends need nothing).
const MODULES: &[&str] = &["crc16", "crc32c_generic", "mbcache", "jbd2", "ext4", "xen-blkfront", "xen-netfront"];

/// The xl config: the generic kernel, [`INITRD_NAME`], dom0's disk as its
/// `xvda` and one vif on `xenbr0`.
pub fn config() -> String {
    format!(
        "name = \"linuxroot\"\n\
         kernel = \"vmlinuz\"\n\
         ramdisk = \"{INITRD_NAME}\"\n\
         memory = 256\n\
         extra = \"console=hvc0\"\n\
         disk = [ 'format=raw, vdev=xvda, access=rw, target=/dev/vda' ]\n\
         vif = [ 'mac=00:16:3e:00:00:13, bridge=xenbr0' ]\n"
    )
}

/// The initramfs `/init`: load the modules, wait up to 10 s for
/// `/dev/xvda`, mount it and hand over to its `/sbin/init`.
fn initramfs_init() -> String {
    let (mounts, modules) = (linux::MOUNTS, MODULES.join(" "));
    format!(
        "#!/bin/sh\n\
         {mounts}\
         for m in {modules}; do insmod /lib/modules/$m.ko || echo \"XTASK-LINUX: insmod $m failed\"; done\n\
         i=0; while [ ! -b /dev/xvda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done\n\
         if ! mount -t ext4 /dev/xvda /root; then echo \"XTASK-LINUX: mount /dev/xvda failed\"; poweroff -f; fi\n\
         umount /proc /sys /dev\n\
         exec switch_root /root /sbin/init\n"
    )
}

/// The disk's `/sbin/init`.
fn root_init() -> String {
    let ((host_file, _), mounts, done) = (HOST_FILE, linux::MOUNTS, linux::SENTINEL_DONE);
    format!(
        "#!/bin/sh\n\
         {mounts}\
         echo \"{ROOT_SENTINEL}\"\n\
         grep ' / ' /proc/mounts\n\
         cat /{host_file}\n\
         echo {GUEST_MARK} > /var/xtask-written && sync && echo \"XTASK-LINUX: wrote /var/xtask-written\"\n\
         ifconfig eth0 {GUEST_IP} netmask 255.255.255.0 up\n\
         ping -c {PINGS} {PEER_IP}\n\
         echo \"{done}\"\n\
         poweroff -f\n"
    )
}

/// The initramfs: busybox, the [`MODULES`] from the kernel package that
/// `kernel` (its `boot/vmlinuz-*`) was unpacked with, and `/init`.
pub fn initramfs(busybox: &[u8], kernel: &Path) -> Result<Vec<u8>, String> {
    let mut c = linux::busybox_cpio(busybox);
    for d in ["root", "lib", "lib/modules"] {
        c.dir(d);
    }
    for m in MODULES {
        let path = module_path(kernel, m)?;
        let data = fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        c.file(&format!("lib/modules/{m}.ko"), 0o644, &data);
    }
    c.file("init", 0o755, initramfs_init().as_bytes());
    Ok(c.finish())
}

/// `NAME.ko` under the package's `lib/modules/VERSION/kernel`.
fn module_path(kernel: &Path, name: &str) -> Result<PathBuf, String> {
    let root = kernel.parent().and_then(Path::parent).ok_or("kernel path has no package root")?.join("lib/modules");
    let want = format!("{name}.ko");
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|f| f == want.as_str()) {
                return Ok(p);
            }
        }
    }
    Err(format!("no {want} under {}", root.display()))
}

/// Make `image` a `mib` MiB ext2 filesystem holding busybox, its applets,
/// `/sbin/init` and [`HOST_FILE`] (`mke2fs -d`, from e2fsprogs).
pub fn make_root_disk(image: &Path, mib: u64, busybox: &[u8]) -> Result<(), String> {
    crate::env::ensure_packages(&[("e2fsprogs", "/usr/sbin/mke2fs")])?;
    let tree = image.with_extension("tree");
    let _ = fs::remove_dir_all(&tree);
    let io = |r: std::io::Result<()>, what: &Path| r.map_err(|e| format!("{}: {e}", what.display()));
    for d in ["bin", "sbin", "dev", "proc", "sys", "etc", "var", "tmp"] {
        io(fs::create_dir_all(tree.join(d)), &tree)?;
    }
    let write = |rel: &str, data: &[u8], mode: u32| {
        use std::os::unix::fs::PermissionsExt;
        let p = tree.join(rel);
        io(fs::write(&p, data), &p)?;
        io(fs::set_permissions(&p, fs::Permissions::from_mode(mode)), &p)
    };
    write("bin/busybox", busybox, 0o755)?;
    for a in linux::APPLETS {
        let p = tree.join("bin").join(a);
        io(std::os::unix::fs::symlink("busybox", &p), &p)?;
    }
    write("sbin/init", root_init().as_bytes(), 0o755)?;
    let (host_file, host_line) = HOST_FILE;
    write(host_file, format!("{host_line}\n").as_bytes(), 0o644)?;
    if let Some(dir) = image.parent() {
        io(fs::create_dir_all(dir), dir)?;
    }
    let _ = fs::remove_file(image);
    let ok = Command::new("/usr/sbin/mke2fs")
        .args(["-q", "-F", "-t", "ext2", "-L", "xtask-root", "-E", "root_owner=0:0", "-d"])
        .arg(&tree)
        .arg(image)
        .arg(format!("{mib}M"))
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let _ = fs::remove_dir_all(&tree);
    if ok { Ok(()) } else { Err(format!("mke2fs -d {} {} failed", tree.display(), image.display())) }
}

/// Whether the guest's write reached the image file: why not.
pub fn guest_mark_in_image(image: &[u8]) -> Option<String> {
    let mark = GUEST_MARK.as_bytes();
    (!image.windows(mark.len()).any(|w| w == mark)).then(|| format!("image file: no {GUEST_MARK} (the guest's write did not reach the host)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_parses_with_one_disk_and_one_vif() {
        let (c, warnings) = dom0_tools::xlcfg::parse(CONFIG_NAME, config().as_bytes()).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        let files = ["vmlinuz", INITRD_NAME];
        assert_eq!((c.disks.len(), c.vifs.len()), (1, 1));
        let s = dom0_tools::spec::GuestSpec::from_config(CONFIG_NAME, &c, dom0_tools::spec::MAX_PAGES, |f| files.contains(&f)).unwrap();
        assert_eq!(s.ramdisk.as_deref(), Some(INITRD_NAME));
    }

    #[test]
    fn the_scripts_load_ext4_after_its_dependencies_and_end_with_the_sentinel() {
        let pos = |m: &str| MODULES.iter().position(|x| *x == m).unwrap();
        for dep in ["crc16", "mbcache", "jbd2"] {
            assert!(pos(dep) < pos("ext4"), "{dep} before ext4");
        }
        assert!(initramfs_init().contains("exec switch_root /root /sbin/init"));
        let root = root_init();
        assert!(root.find(ROOT_SENTINEL).unwrap() < root.find(linux::SENTINEL_DONE).unwrap());
        assert!(root.trim_end().ends_with("poweroff -f"));
    }

    #[test]
    fn the_mark_is_found_only_when_written() {
        let mut image = vec![0u8; 8192];
        assert!(guest_mark_in_image(&image).is_some());
        image[5000..5000 + GUEST_MARK.len()].copy_from_slice(GUEST_MARK.as_bytes());
        assert!(guest_mark_in_image(&image).is_none());
    }
}
