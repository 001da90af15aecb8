//! Physical device operations: mirrors Xen 4.17's `public/physdev.h`.
//!
//! Holds every `PHYSDEVOP_*` sub-op number of `physdev_op(cmd, arg)` and the
//! argument structures of the sub-ops a PV kernel uses for I/O privilege and
//! interrupts. Invariant: every structure has exactly the x86_64 size and
//! field offsets Xen 4.17 gives it, checked at compile time.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `PHYSDEVOP_IRQ_UNMASK_NOTIFY`: old unmask notification (no argument).
pub const PHYSDEVOP_IRQ_UNMASK_NOTIFY: u64 = 4;
/// `PHYSDEVOP_irq_status_query`: [`PhysdevIrqStatusQuery`].
pub const PHYSDEVOP_IRQ_STATUS_QUERY: u64 = 5;
/// `PHYSDEVOP_set_iopl`: [`PhysdevSetIopl`].
pub const PHYSDEVOP_SET_IOPL: u64 = 6;
/// `PHYSDEVOP_set_iobitmap`: [`PhysdevSetIobitmap`].
pub const PHYSDEVOP_SET_IOBITMAP: u64 = 7;
/// `PHYSDEVOP_apic_read`: [`PhysdevApic`].
pub const PHYSDEVOP_APIC_READ: u64 = 8;
/// `PHYSDEVOP_apic_write`: [`PhysdevApic`].
pub const PHYSDEVOP_APIC_WRITE: u64 = 9;
/// `PHYSDEVOP_alloc_irq_vector`: [`PhysdevIrq`].
pub const PHYSDEVOP_ALLOC_IRQ_VECTOR: u64 = 10;
/// `PHYSDEVOP_free_irq_vector`: [`PhysdevIrq`].
pub const PHYSDEVOP_FREE_IRQ_VECTOR: u64 = 11;
/// `PHYSDEVOP_eoi`: [`PhysdevEoi`].
pub const PHYSDEVOP_EOI: u64 = 12;
/// `PHYSDEVOP_map_pirq`: [`PhysdevMapPirq`].
pub const PHYSDEVOP_MAP_PIRQ: u64 = 13;
/// `PHYSDEVOP_unmap_pirq`: [`PhysdevUnmapPirq`].
pub const PHYSDEVOP_UNMAP_PIRQ: u64 = 14;
/// `PHYSDEVOP_manage_pci_add`: [`PhysdevManagePci`].
pub const PHYSDEVOP_MANAGE_PCI_ADD: u64 = 15;
/// `PHYSDEVOP_manage_pci_remove`: [`PhysdevManagePci`].
pub const PHYSDEVOP_MANAGE_PCI_REMOVE: u64 = 16;
/// `PHYSDEVOP_pirq_eoi_gmfn_v1`: [`PhysdevPirqEoiGmfn`] (old semantics).
pub const PHYSDEVOP_PIRQ_EOI_GMFN_V1: u64 = 17;
/// `PHYSDEVOP_restore_msi`: [`PhysdevManagePci`]-shaped `physdev_restore_msi`.
pub const PHYSDEVOP_RESTORE_MSI: u64 = 19;
/// `PHYSDEVOP_manage_pci_add_ext`: [`PhysdevManagePciExt`].
pub const PHYSDEVOP_MANAGE_PCI_ADD_EXT: u64 = 20;
/// `PHYSDEVOP_setup_gsi`: [`PhysdevSetupGsi`].
pub const PHYSDEVOP_SETUP_GSI: u64 = 21;
/// `PHYSDEVOP_get_free_pirq`: [`PhysdevGetFreePirq`].
pub const PHYSDEVOP_GET_FREE_PIRQ: u64 = 23;
/// `PHYSDEVOP_pci_mmcfg_reserved`.
pub const PHYSDEVOP_PCI_MMCFG_RESERVED: u64 = 24;
/// `PHYSDEVOP_pci_device_add`.
pub const PHYSDEVOP_PCI_DEVICE_ADD: u64 = 25;
/// `PHYSDEVOP_pci_device_remove`: [`PhysdevPciDevice`].
pub const PHYSDEVOP_PCI_DEVICE_REMOVE: u64 = 26;
/// `PHYSDEVOP_restore_msi_ext`: [`PhysdevPciDevice`].
pub const PHYSDEVOP_RESTORE_MSI_EXT: u64 = 27;
/// `PHYSDEVOP_pirq_eoi_gmfn_v2`: [`PhysdevPirqEoiGmfn`].
pub const PHYSDEVOP_PIRQ_EOI_GMFN_V2: u64 = 28;
/// `PHYSDEVOP_dbgp_op`.
pub const PHYSDEVOP_DBGP_OP: u64 = 29;
/// `PHYSDEVOP_prepare_msix`: [`PhysdevPciDevice`].
pub const PHYSDEVOP_PREPARE_MSIX: u64 = 30;
/// `PHYSDEVOP_release_msix`: [`PhysdevPciDevice`].
pub const PHYSDEVOP_RELEASE_MSIX: u64 = 31;
/// `PHYSDEVOP_pirq_eoi_gmfn`: the current (v2) number.
pub const PHYSDEVOP_PIRQ_EOI_GMFN: u64 = PHYSDEVOP_PIRQ_EOI_GMFN_V2;

/// `XENIRQSTAT_needs_eoi`: the IRQ must be acknowledged with `PHYSDEVOP_eoi`.
pub const XENIRQSTAT_NEEDS_EOI: u32 = 1 << 0;
/// `XENIRQSTAT_shared`: the IRQ is shared with other guests.
pub const XENIRQSTAT_SHARED: u32 = 1 << 1;

/// `MAP_PIRQ_TYPE_MSI`.
pub const MAP_PIRQ_TYPE_MSI: i32 = 0;
/// `MAP_PIRQ_TYPE_GSI`.
pub const MAP_PIRQ_TYPE_GSI: i32 = 1;
/// `MAP_PIRQ_TYPE_UNKNOWN`.
pub const MAP_PIRQ_TYPE_UNKNOWN: i32 = 2;
/// `MAP_PIRQ_TYPE_MSI_SEG`.
pub const MAP_PIRQ_TYPE_MSI_SEG: i32 = 3;
/// `MAP_PIRQ_TYPE_MULTI_MSI`.
pub const MAP_PIRQ_TYPE_MULTI_MSI: i32 = 4;

/// `struct physdev_eoi`: acknowledge a physical IRQ.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysdevEoi {
    /// The IRQ.
    pub irq: u32,
}
const _: () = assert!(core::mem::size_of::<PhysdevEoi>() == 4);

/// `struct physdev_pirq_eoi_gmfn`: register a bitmap page of IRQs needing EOI.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysdevPirqEoiGmfn {
    /// Guest frame of the bitmap.
    pub gmfn: u64,
}
const _: () = assert!(core::mem::size_of::<PhysdevPirqEoiGmfn>() == 8);

/// `struct physdev_irq_status_query`.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysdevIrqStatusQuery {
    /// IN: the IRQ.
    pub irq: u32,
    /// OUT: `XENIRQSTAT_*`.
    pub flags: u32,
}
const _: () = assert!(core::mem::size_of::<PhysdevIrqStatusQuery>() == 8);
const _: () = assert!(core::mem::offset_of!(PhysdevIrqStatusQuery, flags) == 4);

/// `struct physdev_set_iopl`: the I/O privilege level of the guest kernel.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysdevSetIopl {
    /// 0-3.
    pub iopl: u32,
}
const _: () = assert!(core::mem::size_of::<PhysdevSetIopl>() == 4);

/// `struct physdev_set_iobitmap`: a guest I/O permission bitmap.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysdevSetIobitmap {
    /// Guest handle of the bitmap.
    pub bitmap: u64,
    /// Ports it covers.
    pub nr_ports: u32,
    /// Padding; zero.
    pub _pad0: u32,
}
const _: () = assert!(core::mem::size_of::<PhysdevSetIobitmap>() == 16);
const _: () = assert!(core::mem::offset_of!(PhysdevSetIobitmap, nr_ports) == 8);

/// `struct physdev_apic`: read or write an IO-APIC register.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysdevApic {
    /// IN: the IO-APIC's physical base.
    pub apic_physbase: u64,
    /// IN: register.
    pub reg: u32,
    /// IN (write) or OUT (read): value.
    pub value: u32,
}
const _: () = assert!(core::mem::size_of::<PhysdevApic>() == 16);
const _: () = assert!(core::mem::offset_of!(PhysdevApic, reg) == 8);

/// `struct physdev_irq`: allocate or free an IRQ vector.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysdevIrq {
    /// IN: the IRQ.
    pub irq: u32,
    /// IN or OUT: the vector.
    pub vector: u32,
}
const _: () = assert!(core::mem::size_of::<PhysdevIrq>() == 8);

/// `struct physdev_map_pirq`: map a GSI or MSI to a pirq of a domain.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysdevMapPirq {
    /// The domain.
    pub domid: u16,
    /// Padding; zero.
    pub _pad0: u16,
    /// IN: `MAP_PIRQ_TYPE_*`.
    pub type_: i32,
    /// IN: GSI, or MSI-X entry index.
    pub index: i32,
    /// IN or OUT: the pirq.
    pub pirq: i32,
    /// IN: PCI bus (segment in bits 16-31 for the segmented MSI types).
    pub bus: i32,
    /// IN: PCI devfn.
    pub devfn: i32,
    /// IN (OUT for multi-MSI): entry count.
    pub entry_nr: i32,
    /// Padding; zero.
    pub _pad1: u32,
    /// IN: MSI-X table base.
    pub table_base: u64,
}
const _: () = assert!(core::mem::size_of::<PhysdevMapPirq>() == 40);
const _: () = assert!(core::mem::offset_of!(PhysdevMapPirq, type_) == 4);
const _: () = assert!(core::mem::offset_of!(PhysdevMapPirq, entry_nr) == 24);
const _: () = assert!(core::mem::offset_of!(PhysdevMapPirq, table_base) == 32);

/// `struct physdev_unmap_pirq`.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysdevUnmapPirq {
    /// The domain.
    pub domid: u16,
    /// Padding; zero.
    pub _pad0: u16,
    /// The pirq.
    pub pirq: i32,
}
const _: () = assert!(core::mem::size_of::<PhysdevUnmapPirq>() == 8);
const _: () = assert!(core::mem::offset_of!(PhysdevUnmapPirq, pirq) == 4);

/// `struct physdev_manage_pci`: report a PCI device added or removed.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysdevManagePci {
    /// Bus.
    pub bus: u8,
    /// Device and function.
    pub devfn: u8,
}
const _: () = assert!(core::mem::size_of::<PhysdevManagePci>() == 2);

/// `physfn` member of `physdev_manage_pci_ext`.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysdevPhysfn {
    /// Bus of the physical function.
    pub bus: u8,
    /// Its devfn.
    pub devfn: u8,
}
const _: () = assert!(core::mem::size_of::<PhysdevPhysfn>() == 2);

/// `struct physdev_manage_pci_ext`: add a PCI device that may be an
/// extended or virtual function.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysdevManagePciExt {
    /// Bus.
    pub bus: u8,
    /// Device and function.
    pub devfn: u8,
    /// Padding; zero.
    pub _pad0: u16,
    /// Nonzero for an extended function.
    pub is_extfn: u32,
    /// Nonzero for an SR-IOV virtual function.
    pub is_virtfn: u32,
    /// The physical function, for a virtual one.
    pub physfn: PhysdevPhysfn,
    /// Padding; zero.
    pub _pad1: u16,
}
const _: () = assert!(core::mem::size_of::<PhysdevManagePciExt>() == 16);
const _: () = assert!(core::mem::offset_of!(PhysdevManagePciExt, is_extfn) == 4);
const _: () = assert!(core::mem::offset_of!(PhysdevManagePciExt, physfn) == 12);

/// `struct physdev_pci_device`: a PCI device by segment, bus and devfn.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysdevPciDevice {
    /// Segment.
    pub seg: u16,
    /// Bus.
    pub bus: u8,
    /// Device and function.
    pub devfn: u8,
}
const _: () = assert!(core::mem::size_of::<PhysdevPciDevice>() == 4);

/// `struct physdev_setup_gsi`.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysdevSetupGsi {
    /// The GSI.
    pub gsi: i32,
    /// Edge (0) or level (1).
    pub triggering: u8,
    /// Active high (0) or low (1).
    pub polarity: u8,
    /// Padding; zero.
    pub _pad0: u16,
}
const _: () = assert!(core::mem::size_of::<PhysdevSetupGsi>() == 8);

/// `struct physdev_get_free_pirq`.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysdevGetFreePirq {
    /// IN: `MAP_PIRQ_TYPE_*`.
    pub type_: i32,
    /// OUT: a free pirq.
    pub pirq: u32,
}
const _: () = assert!(core::mem::size_of::<PhysdevGetFreePirq>() == 8);

#[cfg(test)]
mod tests {
    use super::*;

    /// ABI rule: `physdev_set_iobitmap` is {handle bitmap @0, u32 nr_ports @8}, 16 bytes.
    #[test]
    fn set_iobitmap_round_trips() {
        let s = PhysdevSetIobitmap { bitmap: 0xffff_8800_0000_1000, nr_ports: 65536, _pad0: 0 };
        let b = s.as_bytes();
        assert_eq!(&b[8..12], &65536u32.to_le_bytes());
        assert_eq!(PhysdevSetIobitmap::read_from_bytes(b).unwrap(), s);
    }

    /// ABI rule: `physdev_map_pirq` keeps its u64 table_base 8-aligned at byte 32.
    #[test]
    fn map_pirq_table_base_at_byte_32() {
        let mut bytes = [0u8; 40];
        bytes[4..8].copy_from_slice(&MAP_PIRQ_TYPE_GSI.to_le_bytes());
        bytes[32..40].copy_from_slice(&0xfee0_0000u64.to_le_bytes());
        let m = PhysdevMapPirq::read_from_bytes(&bytes).unwrap();
        assert_eq!((m.type_, m.table_base), (MAP_PIRQ_TYPE_GSI, 0xfee0_0000));
    }
}
