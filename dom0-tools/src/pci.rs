//! PCI configuration space as a PV dom0 reaches it: configuration
//! mechanism #1, a CONFIG_ADDRESS dword written to port 0xcf8 and the
//! register read or written at 0xcfc (Xen emulates both from the #GP the
//! `in`/`out` raise, per domain: Xen 4.17's `pv/emul-priv-op.c`,
//! `guest_io_read`/`guest_io_write` with `pci_cfg_ok`), and the search for
//! the virtio-blk disk and the virtio-net NIC dom0 drives.
//!
//! Pure: the port accesses themselves are in [`crate::portio`], behind
//! virtio-drivers' `ConfigurationAccess`. Invariant: the search reads
//! each bus at most once (a bridge whose secondary bus is already seen,
//! or 0, is not followed), so hostile or looping bridge numbers cost at
//! most 256 bus scans.
#![forbid(unsafe_code)]

use virtio_drivers::transport::pci::bus::{ConfigurationAccess, DeviceFunction};

/// CONFIG_ADDRESS.
pub const CONFIG_ADDRESS: u16 = 0xcf8;
/// CONFIG_DATA.
pub const CONFIG_DATA: u16 = 0xcfc;
/// Red Hat / virtio's PCI vendor.
pub const VIRTIO_VENDOR: u16 = 0x1af4;
/// virtio-blk, transitional (legacy and modern interfaces).
pub const VIRTIO_BLK_TRANSITIONAL: u16 = 0x1001;
/// virtio-blk, modern only (0x1040 + virtio device id 2).
pub const VIRTIO_BLK_MODERN: u16 = 0x1042;

/// virtio-net, transitional.
pub const VIRTIO_NET_TRANSITIONAL: u16 = 0x1000;
/// virtio-net, modern only (0x1040 + virtio device id 1).
pub const VIRTIO_NET_MODERN: u16 = 0x1041;

/// CONFIG_ADDRESS's enable bit (Xen's `CF8_ENABLED`).
const ENABLE: u32 = 1 << 31;
/// Offset of the header type byte's dword (header type in bits 23:16).
const HEADER_DWORD: u8 = 0x0c;
/// Offset of a bridge's bus numbers (secondary bus in bits 15:8).
const BRIDGE_BUSES: u8 = 0x18;

/// The CONFIG_ADDRESS dword for register `offset` of `df`: enable bit,
/// bus in 23:16, device in 15:11, function in 10:8, dword offset in 7:2
/// (Xen's `CF8_BDF`/`CF8_ADDR_LO`). `None` for an invalid device or
/// function number or an offset that is not dword-aligned.
pub fn config_address(df: DeviceFunction, offset: u8) -> Option<u32> {
    if df.device >= 32 || df.function >= 8 || !offset.is_multiple_of(4) {
        return None;
    }
    Some(ENABLE | (u32::from(df.bus) << 16) | (u32::from(df.device) << 11) | (u32::from(df.function) << 8) | u32::from(offset))
}

/// Reading configuration dwords: virtio-drivers' `ConfigurationAccess`
/// (the ports on dom0, a made-up space in tests).
pub trait ConfigRead {
    /// The dword at `offset` of `df`'s configuration space (all ones for
    /// an absent function).
    fn read(&self, df: DeviceFunction, offset: u8) -> u32;
}

impl<C: ConfigurationAccess> ConfigRead for C {
    fn read(&self, df: DeviceFunction, offset: u8) -> u32 {
        self.read_word(df, offset)
    }
}

/// Whether a vendor/device pair is a virtio-blk dom0 can drive.
pub fn is_virtio_blk(vendor: u16, device: u16) -> bool {
    vendor == VIRTIO_VENDOR && (device == VIRTIO_BLK_TRANSITIONAL || device == VIRTIO_BLK_MODERN)
}

/// Whether a vendor/device pair is a virtio-net NIC dom0 can drive.
pub fn is_virtio_net(vendor: u16, device: u16) -> bool {
    vendor == VIRTIO_VENDOR && (device == VIRTIO_NET_TRANSITIONAL || device == VIRTIO_NET_MODERN)
}

/// The first virtio-blk function found on bus 0 and on the buses behind
/// its PCI-PCI bridges (breadth first, each bus once).
pub fn find_virtio_blk(cam: &impl ConfigRead) -> Option<DeviceFunction> {
    find_function(cam, is_virtio_blk)
}

/// The first virtio-net function, searched as [`find_virtio_blk`] does.
pub fn find_virtio_net(cam: &impl ConfigRead) -> Option<DeviceFunction> {
    find_function(cam, is_virtio_net)
}

/// The first function whose (vendor, device) ids `wanted` accepts, on bus
/// 0 and behind its bridges (breadth first, each bus once).
pub fn find_function(cam: &impl ConfigRead, wanted: fn(u16, u16) -> bool) -> Option<DeviceFunction> {
    let mut seen = [false; 256];
    let mut queue = [0u8; 256];
    let (mut head, mut tail) = (0usize, 1usize);
    seen[0] = true;
    while head < tail {
        let bus = queue[head];
        head += 1;
        for device in 0..32u8 {
            let functions = if is_multifunction(cam, DeviceFunction { bus, device, function: 0 }) { 8 } else { 1 };
            for function in 0..functions {
                let df = DeviceFunction { bus, device, function };
                let id = cam.read(df, 0);
                let (vendor, dev_id) = (id as u16, (id >> 16) as u16);
                if vendor == 0xffff {
                    continue;
                }
                if wanted(vendor, dev_id) {
                    return Some(df);
                }
                if let Some(secondary) = bridge_secondary(cam, df)
                    && !seen[usize::from(secondary)]
                {
                    seen[usize::from(secondary)] = true;
                    queue[tail] = secondary;
                    tail += 1;
                }
            }
        }
    }
    None
}

/// Whether function 0 of a device is present and has the multi-function
/// bit (bit 7 of the header type).
fn is_multifunction(cam: &impl ConfigRead, df: DeviceFunction) -> bool {
    cam.read(df, 0) as u16 != 0xffff && (cam.read(df, HEADER_DWORD) >> 16) & 0x80 != 0
}

/// A PCI-PCI bridge's (header type 1) secondary bus number.
fn bridge_secondary(cam: &impl ConfigRead, df: DeviceFunction) -> Option<u8> {
    let header_type = (cam.read(df, HEADER_DWORD) >> 16) & 0x7f;
    (header_type == 1).then(|| (cam.read(df, BRIDGE_BUSES) >> 8) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Configuration spaces of made-up functions; absent ones read all ones.
    #[derive(Default)]
    struct FakeCam {
        regs: BTreeMap<(u8, u8, u8), [u32; 64]>,
        reads: core::cell::Cell<usize>,
    }

    impl FakeCam {
        /// A function at (bus, dev, func) with (vendor, device) ids, a
        /// header type byte and, for a bridge, its secondary bus.
        fn add(&mut self, (bus, dev, func): (u8, u8, u8), (vendor, device): (u16, u16), header: u8, secondary: u8) {
            let mut r = [0u32; 64];
            r[0] = u32::from(vendor) | (u32::from(device) << 16);
            r[3] = u32::from(header) << 16;
            r[6] = u32::from(secondary) << 8;
            self.regs.insert((bus, dev, func), r);
        }
    }

    impl ConfigRead for FakeCam {
        fn read(&self, df: DeviceFunction, off: u8) -> u32 {
            self.reads.set(self.reads.get() + 1);
            self.regs.get(&(df.bus, df.device, df.function)).map_or(!0, |r| r[usize::from(off / 4)])
        }
    }

    fn df(bus: u8, device: u8, function: u8) -> DeviceFunction {
        DeviceFunction { bus, device, function }
    }

    #[test]
    fn cf8_word_is_enable_bus_device_function_register() {
        assert_eq!(config_address(df(0, 0, 0), 0), Some(0x8000_0000));
        assert_eq!(config_address(df(0, 4, 0), 0x10), Some(0x8000_2010));
        assert_eq!(config_address(df(0xab, 31, 7), 0xfc), Some(0x80ab_fffc));
    }

    #[test]
    fn cf8_refuses_bad_device_function_or_unaligned_register() {
        assert_eq!(config_address(df(0, 32, 0), 0), None);
        assert_eq!(config_address(df(0, 0, 8), 0), None);
        assert_eq!(config_address(df(0, 0, 0), 0x11), None);
    }

    #[test]
    fn finds_transitional_or_modern_virtio_blk_and_nothing_else() {
        let mut cam = FakeCam::default();
        cam.add((0, 0, 0), (0x8086, 0x1237), 0, 0);
        cam.add((0, 3, 0), (VIRTIO_VENDOR, 0x1000), 0, 0); // virtio-net
        cam.add((0, 4, 0), (VIRTIO_VENDOR, VIRTIO_BLK_TRANSITIONAL), 0, 0);
        assert_eq!(find_virtio_blk(&cam), Some(df(0, 4, 0)));
        let mut modern = FakeCam::default();
        modern.add((0, 5, 0), (VIRTIO_VENDOR, VIRTIO_BLK_MODERN), 0, 0);
        assert_eq!(find_virtio_blk(&modern), Some(df(0, 5, 0)));
        let mut none = FakeCam::default();
        none.add((0, 3, 0), (VIRTIO_VENDOR, 0x1000), 0, 0);
        assert_eq!(find_virtio_blk(&none), None);
    }

    #[test]
    fn finds_virtio_net_but_not_the_disk_as_a_nic() {
        let mut cam = FakeCam::default();
        cam.add((0, 3, 0), (VIRTIO_VENDOR, VIRTIO_BLK_TRANSITIONAL), 0, 0);
        cam.add((0, 4, 0), (VIRTIO_VENDOR, VIRTIO_NET_TRANSITIONAL), 0, 0);
        assert_eq!(find_virtio_net(&cam), Some(df(0, 4, 0)));
        assert_eq!(find_virtio_blk(&cam), Some(df(0, 3, 0)));
        let mut modern = FakeCam::default();
        modern.add((0, 6, 0), (VIRTIO_VENDOR, VIRTIO_NET_MODERN), 0, 0);
        assert_eq!(find_virtio_net(&modern), Some(df(0, 6, 0)));
        let mut none = FakeCam::default();
        none.add((0, 3, 0), (VIRTIO_VENDOR, VIRTIO_BLK_MODERN), 0, 0);
        assert_eq!(find_virtio_net(&none), None);
    }

    #[test]
    fn functions_above_zero_are_scanned_only_on_multifunction_devices() {
        let mut cam = FakeCam::default();
        cam.add((0, 1, 0), (0x8086, 0x7000), 0, 0);
        cam.add((0, 1, 2), (VIRTIO_VENDOR, VIRTIO_BLK_MODERN), 0, 0);
        assert_eq!(find_virtio_blk(&cam), None, "single-function device: function 2 is not looked at");
        cam.add((0, 1, 0), (0x8086, 0x7000), 0x80, 0);
        assert_eq!(find_virtio_blk(&cam), Some(df(0, 1, 2)));
    }

    #[test]
    fn disk_behind_a_bridge_is_found() {
        let mut cam = FakeCam::default();
        cam.add((0, 2, 0), (0x1b36, 0x0001), 1, 5);
        cam.add((5, 0, 0), (VIRTIO_VENDOR, VIRTIO_BLK_TRANSITIONAL), 0, 0);
        assert_eq!(find_virtio_blk(&cam), Some(df(5, 0, 0)));
    }

    #[test]
    fn looping_bridges_scan_each_bus_once() {
        // Hostile bus numbers: bus 0 -> 1 -> 0 and 1 -> 1, every device a bridge.
        let mut cam = FakeCam::default();
        for dev in 0..32 {
            cam.add((0, dev, 0), (0x1b36, 1), 1, 1);
            cam.add((1, dev, 0), (0x1b36, 1), 1, if dev % 2 == 0 { 0 } else { 1 });
        }
        assert_eq!(find_virtio_blk(&cam), None);
        // Two buses, 32 devices, a handful of reads each: bounded.
        assert!(cam.reads.get() < 2 * 32 * 8, "{} reads", cam.reads.get());
    }
}
