//! The toolstack's side of a virtual block device, as libxl and the
//! hotplug `block` script do it: the device number of a vdev name
//! (`libxl__device_disk_dev_number`), the xenstore nodes written for a
//! disk (`libxl__device_disk_add` and `libxl__device_generic_add`), and
//! the sharing rule (`check_sharing`: a device used read-write is used by
//! no one else).
//!
//! Invariant: pure functions of their arguments; every vdev accepted gives
//! the device number libxl gives it, and every name libxl refuses is
//! refused.
#![forbid(unsafe_code)]

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// Decode `<prefix><letters>[<partition>]` as libxl's
/// `device_virtdisk_matches`: letters in base 26 (a = 0, aa = 26), a
/// partition without a leading zero; each within its maximum.
fn virtdisk(vdev: &str, prefix: &str, max_disk: u32, max_part: u32) -> Option<(u32, u32)> {
    let rest = vdev.strip_prefix(prefix)?;
    let letters = rest.bytes().take_while(u8::is_ascii_lowercase).count();
    if letters == 0 {
        return None;
    }
    let mut disk: i64 = -1;
    for c in rest[..letters].bytes() {
        disk = (disk + 1) * 26 + i64::from(c - b'a');
        if disk > i64::from(max_disk) {
            return None;
        }
    }
    let part = &rest[letters..];
    let partition = if part.is_empty() {
        0
    } else if part.starts_with('0') || !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    } else {
        part.parse::<u32>().ok().filter(|p| *p <= max_part)?
    };
    Some((disk as u32, partition))
}

/// `libxl__device_disk_dev_number`: the device id of a vdev (`xvda` is
/// 51712), or `None` where libxl answers -1.
pub fn devid(vdev: &str) -> Option<u32> {
    if let Some((disk, part)) = dp_form(vdev).or_else(|| virtdisk(vdev, "xvd", (1 << 20) - 1, 255)) {
        return Some(if disk <= 15 && part <= 15 { (202 << 8) | (disk << 4) | part } else { (1 << 28) | (disk << 8) | part });
    }
    if let Some(n) = number(vdev) {
        return Some(n);
    }
    if let Some((disk, part)) = virtdisk(vdev, "hd", 3, 63) {
        return Some(((if disk < 2 { 3 } else { 22 }) << 8) | ((disk & 1) << 6) | part);
    }
    virtdisk(vdev, "sd", 15, 15).map(|(disk, part)| (8 << 8) | (disk << 4) | part)
}

/// `d<disk>p<partition>`.
fn dp_form(vdev: &str) -> Option<(u32, u32)> {
    let (d, p) = vdev.strip_prefix('d')?.split_once('p')?;
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(d) || !all_digits(p) {
        return None;
    }
    let (disk, part) = (d.parse::<u32>().ok()?, p.parse::<u32>().ok()?);
    (disk < (1 << 20) && part < 256).then_some((disk, part))
}

/// `strtoul(vdev, 0)` up to INT_MAX: decimal, 0x hex or 0 octal.
fn number(vdev: &str) -> Option<u32> {
    let n = if let Some(h) = vdev.strip_prefix("0x").or_else(|| vdev.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()?
    } else if vdev.len() > 1 && vdev.starts_with('0') {
        u64::from_str_radix(&vdev[1..], 8).ok()?
    } else {
        vdev.parse::<u64>().ok()?
    };
    u32::try_from(n).ok().filter(|n| *n <= i32::MAX as u32)
}

/// What the toolstack knows of one attached disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VbdNodes {
    /// The frontend domain.
    pub domid: u16,
    /// Its device id ([`devid`]).
    pub devid: u32,
    /// The vdev as configured.
    pub vdev: String,
    /// `params`: the target.
    pub target: String,
    /// `mode=w`.
    pub writable: bool,
    /// `device-type=cdrom`.
    pub cdrom: bool,
    /// `discard-enable`.
    pub discard: bool,
}

impl VbdNodes {
    /// `/local/domain/0/backend/vbd/<domid>/<devid>`.
    pub fn backend_path(&self) -> String {
        format!("/local/domain/0/backend/vbd/{}/{}", self.domid, self.devid)
    }

    /// `/local/domain/<domid>/device/vbd/<devid>`.
    pub fn frontend_path(&self) -> String {
        format!("/local/domain/{}/device/vbd/{}", self.domid, self.devid)
    }

    /// The backend's nodes, in libxl's order.
    pub fn backend_nodes(&self) -> Vec<(&'static str, String)> {
        let s = String::from;
        alloc::vec![
            ("frontend", self.frontend_path()),
            ("params", self.target.clone()),
            ("frontend-id", format!("{}", self.domid)),
            ("online", s("1")),
            ("removable", s("0")),
            ("bootable", s("1")),
            ("state", s("1")),
            ("dev", self.vdev.clone()),
            ("type", s("phy")),
            ("mode", s(if self.writable { "w" } else { "r" })),
            ("device-type", s(if self.cdrom { "cdrom" } else { "disk" })),
            ("discard-enable", s(if self.discard { "1" } else { "0" })),
            ("specification", s("xen")),
        ]
    }

    /// The frontend's nodes, in libxl's order.
    pub fn frontend_nodes(&self) -> Vec<(&'static str, String)> {
        let s = String::from;
        alloc::vec![
            ("backend", self.backend_path()),
            ("backend-id", s("0")),
            ("state", s("1")),
            ("virtual-device", format!("{}", self.devid)),
            ("device-type", s(if self.cdrom { "cdrom" } else { "disk" })),
            ("trusted", s("1")),
        ]
    }
}

/// The hotplug script's `check_sharing` and `do_ebusy`: `Err` with the
/// script's message if `target` may not be attached with `writable` given
/// the disks already attached (`(target, writable)` of each).
pub fn check_sharing<'a>(attached: impl IntoIterator<Item = (&'a str, bool)>, target: &str, writable: bool) -> Result<(), String> {
    let clash = attached.into_iter().any(|(t, w)| t == target && (w || writable));
    if !clash {
        return Ok(());
    }
    let (m1, m2) = if writable { ("", "") } else { ("read-write ", "read-only ") };
    Err(format!("Device {target} is mounted {m1}in a guest domain,\nand so cannot be mounted {m2}now."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libxl_dev_number_of_xvd_names() {
        assert_eq!(devid("xvda"), Some(51712));
        assert_eq!(devid("xvdb"), Some(51728));
        assert_eq!(devid("xvda1"), Some(51713));
        assert_eq!(devid("xvdp15"), Some((202 << 8) | (15 << 4) | 15));
        // Past 15 disks or partitions: the extended form.
        assert_eq!(devid("xvdq"), Some((1 << 28) | (16 << 8)));
        assert_eq!(devid("xvdaa"), Some((1 << 28) | (26 << 8)));
        assert_eq!(devid("xvda16"), Some((1 << 28) | 16));
        assert_eq!(devid("d3p2"), Some((202 << 8) | (3 << 4) | 2));
    }

    #[test]
    fn libxl_dev_number_of_hd_sd_and_numbers() {
        assert_eq!(devid("hda"), Some(3 << 8));
        assert_eq!(devid("hdb"), Some((3 << 8) | (1 << 6)));
        assert_eq!(devid("hdc"), Some(22 << 8));
        assert_eq!(devid("sda2"), Some((8 << 8) | 2));
        assert_eq!(devid("51712"), Some(51712));
        assert_eq!(devid("0xca00"), Some(51712));
    }

    #[test]
    fn libxl_refuses_bad_vdevs() {
        for bad in ["", "xvd", "xvda0", "xvda01", "xvda256", "hde", "sdq", "vda", "xvdA", "4294967296", "xvda1x", "d1p", "dp1"] {
            assert_eq!(devid(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn libxl_writes_backend_and_frontend_nodes_pointing_at_each_other() {
        let n = VbdNodes { domid: 3, devid: 51712, vdev: "xvda".into(), target: "/dev/vda".into(), writable: false, cdrom: false, discard: true };
        let b = n.backend_nodes();
        let f = n.frontend_nodes();
        let get = |v: &[(&str, String)], k: &str| v.iter().find(|(key, _)| *key == k).map(|(_, v)| v.clone());
        assert_eq!(get(&b, "frontend").as_deref(), Some("/local/domain/3/device/vbd/51712"));
        assert_eq!(get(&f, "backend").as_deref(), Some("/local/domain/0/backend/vbd/3/51712"));
        assert_eq!(get(&b, "mode").as_deref(), Some("r"));
        assert_eq!(get(&b, "state").as_deref(), Some("1"));
        assert_eq!(get(&f, "state").as_deref(), Some("1"));
        assert_eq!(get(&f, "virtual-device").as_deref(), Some("51712"));
    }

    #[test]
    fn block_script_sharing_rule_one_writer_or_many_readers() {
        let none: [(&str, bool); 0] = [];
        assert!(check_sharing(none, "/dev/vda", true).is_ok());
        assert!(check_sharing([("/dev/vda", false)], "/dev/vda", false).is_ok());
        assert!(check_sharing([("/dev/vdb", true)], "/dev/vda", true).is_ok());
        assert_eq!(
            check_sharing([("/dev/vda", false)], "/dev/vda", true).unwrap_err(),
            "Device /dev/vda is mounted in a guest domain,\nand so cannot be mounted now."
        );
        assert_eq!(
            check_sharing([("/dev/vda", true)], "/dev/vda", false).unwrap_err(),
            "Device /dev/vda is mounted read-write in a guest domain,\nand so cannot be mounted read-only now."
        );
    }
}
