//! dom0-tools as a library: what libxenctrl, libxenguest and libxl do for
//! a Xen toolstack, for dom0's thin users (the `xl` shell and the boot
//! self-tests in the `dom0` binary).
//!
//! - [`hv`]: the control hypercalls (domctl, sysctl, memory_op on other
//!   domains, foreign MMU and event-channel operations), each over the
//!   `xen_public` structure of its command (libxenctrl);
//! - [`builder`]: the PV domain builder (libxenguest), with [`staging`]
//!   (where a compressed kernel is decompressed: the new domain's own top
//!   pfns, pure) and [`foreign_area`] (the windows that map them);
//! - [`guests`]: running guests: start, console relay, reap, destroy
//!   (libxl's domain management);
//! - [`xl`] and [`cmdline`]: `xl`'s command parsing and dom0's
//!   command-line parsing; [`xlfmt`]: `xl`'s output formats; [`xlcfg`]:
//!   xl.cfg configs; [`spec`]: what a guest is built from; [`files`]:
//!   dom0's boot-module files. All pure and host-tested.
//! - [`xltrace`]: `xl trace`'s ring windows, bounded store and serial
//!   dump framing (pure); `tbuf` maps Xen's trace buffers (target only).
//! - [`xenstore`]: xenstored (pure core, ring transport in `service`).
//! - Block backends: [`vbd`] (blkback live: handshake, ring, persistent
//!   grants), [`grant_area`] (where dom0 maps guests' grants), [`vbdcfg`]
//!   (libxl's vdev numbers, nodes and the sharing rule, pure); dom0's own
//!   disk: [`pci`] and [`dma`] (pure), [`portio`] and [`virtio_hal`] (the
//!   unsafe edges), [`vdisk`] (virtio-drivers behind `BlockDevice`).
//! - [`vdisk`]: dom0's virtio-blk disk for blkback, over [`pci`]
//!   (configuration space, the search), [`dma`] (machine-contiguous
//!   pages, bounce decisions), `portio` and `virtio_hal` (arch modules:
//!   port I/O, virtio-drivers' HAL for a PV dom0).
//! - Networking: [`vnet`] (the uplink: QEMU's virtio-net NIC, sharing
//!   vdisk's DMA context), [`dom0net`] (dom0's IP endpoint on the bridge,
//!   smoltcp: ARP, ICMP echo; pure).
//!
//! Invariant: hypercalls are issued here (through the guest runtime's
//! typed wrappers), not by the binaries: they call these functions.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod backends;
#[cfg(target_os = "none")]
pub mod big_stack;
#[cfg(target_os = "none")]
pub mod builder;
pub mod cmdline;
pub mod dma;
pub mod dom0net;
pub mod files;
#[cfg(target_os = "none")]
pub mod foreign_area;
#[cfg(target_os = "none")]
pub mod grant_area;
#[cfg(target_os = "none")]
pub mod guests;
#[cfg(target_os = "none")]
pub mod hv;
pub mod kernel_image;
pub mod pci;
#[cfg(target_os = "none")]
pub mod portio;
pub mod spec;
pub mod staging;
#[cfg(target_os = "none")]
pub mod tbuf;
#[cfg(target_os = "none")]
pub mod va_space;
#[cfg(target_os = "none")]
pub mod vbd;
pub mod vbdcfg;
pub mod vdisk;
#[cfg(target_os = "none")]
pub mod vif;
pub mod vifcfg;
#[cfg(target_os = "none")]
pub mod virtio_hal;
pub mod vnet;
pub mod xenstore;
pub mod xl;
pub mod xlcfg;
pub mod xlfmt;
pub mod xltrace;
