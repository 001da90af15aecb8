//! ELF note types in the "Xen" namespace: mirrors Xen 4.17's
//! `public/elfnote.h`.
//!
//! Invariant: every note number is Xen's `XEN_ELFNOTE_*` value.

/// Owner name of Xen notes (with its NUL terminator in the file).
pub const XEN_NOTE_NAME: &[u8] = b"Xen";
/// Virtual address of the kernel entry point.
pub const ENTRY: u32 = 1;
/// Virtual address of the hypercall page.
pub const HYPERCALL_PAGE: u32 = 2;
/// Virtual base address of the kernel image.
pub const VIRT_BASE: u32 = 3;
/// Offset of physical addresses from virtual ones.
pub const PADDR_OFFSET: u32 = 4;
/// Version of the Xen interface ("xen-3.0").
pub const XEN_VERSION: u32 = 5;
/// Name of the guest OS.
pub const GUEST_OS: u32 = 6;
/// Version of the guest OS.
pub const GUEST_VERSION: u32 = 7;
/// Loader type ("generic").
pub const LOADER: u32 = 8;
/// PAE mode ("yes").
pub const PAE_MODE: u32 = 9;
/// `|`-separated feature list; `!` marks a required feature.
pub const FEATURES: u32 = 10;
/// Symbol table loading (BSD style).
pub const BSD_SYMTAB: u32 = 11;
/// Hypervisor virtual start (for HVM); unused for PV.
pub const HV_START_LOW: u32 = 12;
/// L1 machine-to-phys mask.
pub const L1_MFN_VALID: u32 = 13;
/// Whether the guest supports suspend cancellation.
pub const SUSPEND_CANCEL: u32 = 14;
/// Initial P2M list virtual address.
pub const INIT_P2M: u32 = 15;
/// Module (initrd) load address.
pub const MOD_START_PFN: u32 = 16;
/// Supported PV features as a bitmap.
pub const SUPPORTED_FEATURES: u32 = 17;
/// PVH entry point.
pub const PHYS32_ENTRY: u32 = 18;
