//! Memory reservation and physmap control: mirrors Xen 4.17's
//! `public/memory.h`, plus the x86 `e820entry` its memory-map calls return.
//!
//! Holds the `XENMEM_*` sub-op numbers of `memory_op(cmd, arg)` and the
//! argument structures of the sub-ops a PV guest or its toolstack uses.
//! Invariant: every structure has exactly the x86_64 size and field offsets
//! Xen 4.17 gives it, checked at compile time by the assertions after it.
//! `xen_pfn_t` and `xen_ulong_t` are u64, guest handles 8-byte addresses.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `XENMEM_increase_reservation`: [`XenMemoryReservation`]; returns extents done.
pub const XENMEM_INCREASE_RESERVATION: u64 = 0;
/// `XENMEM_decrease_reservation`: [`XenMemoryReservation`]; returns extents done.
pub const XENMEM_DECREASE_RESERVATION: u64 = 1;
/// `XENMEM_maximum_ram_page`: returns the highest machine frame with RAM.
pub const XENMEM_MAXIMUM_RAM_PAGE: u64 = 2;
/// `XENMEM_current_reservation`: [`XenMemoryDomain`]; returns pages held.
pub const XENMEM_CURRENT_RESERVATION: u64 = 3;
/// `XENMEM_maximum_reservation`: [`XenMemoryDomain`]; returns the page limit.
pub const XENMEM_MAXIMUM_RESERVATION: u64 = 4;
/// `XENMEM_machphys_mfn_list`: [`XenMachphysMfnList`].
pub const XENMEM_MACHPHYS_MFN_LIST: u64 = 5;
/// `XENMEM_populate_physmap`: [`XenMemoryReservation`]; `extent_start` holds
/// the guest frames to populate.
pub const XENMEM_POPULATE_PHYSMAP: u64 = 6;
/// `XENMEM_add_to_physmap`: [`XenAddToPhysmap`].
pub const XENMEM_ADD_TO_PHYSMAP: u64 = 7;
/// `XENMEM_memory_map`: [`XenMemoryMap`] of the caller's pseudo-physical map.
pub const XENMEM_MEMORY_MAP: u64 = 9;
/// `XENMEM_machine_memory_map`: [`XenMemoryMap`] of the host's map.
pub const XENMEM_MACHINE_MEMORY_MAP: u64 = 10;
/// `XENMEM_exchange`: [`XenMemoryExchange`].
pub const XENMEM_EXCHANGE: u64 = 11;
/// `XENMEM_machphys_mapping`: [`XenMachphysMapping`].
pub const XENMEM_MACHPHYS_MAPPING: u64 = 12;
/// `XENMEM_set_memory_map`: [`XenForeignMemoryMap`].
pub const XENMEM_SET_MEMORY_MAP: u64 = 13;
/// `XENMEM_maximum_gpfn`: [`XenMemoryDomain`]; returns the highest guest frame.
pub const XENMEM_MAXIMUM_GPFN: u64 = 14;
/// `XENMEM_remove_from_physmap`: [`XenRemoveFromPhysmap`].
pub const XENMEM_REMOVE_FROM_PHYSMAP: u64 = 15;
/// `XENMEM_set_pod_target`: [`XenPodTarget`].
pub const XENMEM_SET_POD_TARGET: u64 = 16;
/// `XENMEM_get_pod_target`: [`XenPodTarget`].
pub const XENMEM_GET_POD_TARGET: u64 = 17;
/// `XENMEM_get_sharing_freed_pages`.
pub const XENMEM_GET_SHARING_FREED_PAGES: u64 = 18;
/// `XENMEM_get_sharing_shared_pages`.
pub const XENMEM_GET_SHARING_SHARED_PAGES: u64 = 19;
/// `XENMEM_paging_op`.
pub const XENMEM_PAGING_OP: u64 = 20;
/// `XENMEM_access_op`.
pub const XENMEM_ACCESS_OP: u64 = 21;
/// `XENMEM_sharing_op`.
pub const XENMEM_SHARING_OP: u64 = 22;
/// `XENMEM_add_to_physmap_batch`: [`XenAddToPhysmapBatch`].
pub const XENMEM_ADD_TO_PHYSMAP_BATCH: u64 = 23;
/// `XENMEM_claim_pages`: [`XenMemoryReservation`] with only `nr_extents` and
/// `domid` used.
pub const XENMEM_CLAIM_PAGES: u64 = 24;
/// `XENMEM_machphys_compat_mfn_list`: as [`XENMEM_MACHPHYS_MFN_LIST`] for the
/// 32-bit compat table.
pub const XENMEM_MACHPHYS_COMPAT_MFN_LIST: u64 = 25;
/// `XENMEM_get_vnumainfo`.
pub const XENMEM_GET_VNUMAINFO: u64 = 26;
/// `XENMEM_reserved_device_memory_map`.
pub const XENMEM_RESERVED_DEVICE_MEMORY_MAP: u64 = 27;
/// `XENMEM_acquire_resource`: [`XenMemAcquireResource`].
pub const XENMEM_ACQUIRE_RESOURCE: u64 = 28;

/// `XENMEMF_address_bits(x)`: allocate below `2^bits` (0: no limit).
pub const fn xenmemf_address_bits(bits: u32) -> u32 {
    bits
}
/// `XENMEMF_get_address_bits(x)`.
pub const fn xenmemf_get_address_bits(flags: u32) -> u32 {
    flags & 0xff
}
/// `XENMEMF_node(x)`: allocate from NUMA node `node`.
pub const fn xenmemf_node(node: u32) -> u32 {
    (node + 1) << 8
}
/// `XENMEMF_get_node(x)`.
pub const fn xenmemf_get_node(flags: u32) -> u32 {
    ((flags >> 8).wrapping_sub(1)) & 0xff
}
/// `XENMEMF_populate_on_demand`.
pub const XENMEMF_POPULATE_ON_DEMAND: u32 = 1 << 16;
/// `XENMEMF_exact_node_request`: only the named node will do.
pub const XENMEMF_EXACT_NODE_REQUEST: u32 = 1 << 17;
/// `XENMEMF_vnode`: the node named is a virtual node.
pub const XENMEMF_VNODE: u32 = 1 << 18;

/// `XENMAPSPACE_shared_info`.
pub const XENMAPSPACE_SHARED_INFO: u32 = 0;
/// `XENMAPSPACE_grant_table`.
pub const XENMAPSPACE_GRANT_TABLE: u32 = 1;
/// `XENMAPSPACE_gmfn`.
pub const XENMAPSPACE_GMFN: u32 = 2;
/// `XENMAPSPACE_gmfn_range` (add_to_physmap only).
pub const XENMAPSPACE_GMFN_RANGE: u32 = 3;
/// `XENMAPSPACE_gmfn_foreign`.
pub const XENMAPSPACE_GMFN_FOREIGN: u32 = 4;
/// `XENMAPSPACE_dev_mmio`.
pub const XENMAPSPACE_DEV_MMIO: u32 = 5;
/// `XENMAPIDX_grant_table_status`: with [`XENMAPSPACE_GRANT_TABLE`], map a
/// status frame instead.
pub const XENMAPIDX_GRANT_TABLE_STATUS: u64 = 0x8000_0000;

/// `XENMEM_resource_ioreq_server`.
pub const XENMEM_RESOURCE_IOREQ_SERVER: u16 = 0;
/// `XENMEM_resource_grant_table`.
pub const XENMEM_RESOURCE_GRANT_TABLE: u16 = 1;
/// `XENMEM_resource_vmtrace_buf`.
pub const XENMEM_RESOURCE_VMTRACE_BUF: u16 = 2;
/// `XENMEM_resource_grant_table_id_shared`.
pub const XENMEM_RESOURCE_GRANT_TABLE_ID_SHARED: u32 = 0;
/// `XENMEM_resource_grant_table_id_status`.
pub const XENMEM_RESOURCE_GRANT_TABLE_ID_STATUS: u32 = 1;

/// `E820_RAM`: usable memory.
pub const E820_RAM: u32 = 1;
/// `E820_RESERVED`.
pub const E820_RESERVED: u32 = 2;
/// `E820_ACPI`: ACPI tables, reclaimable.
pub const E820_ACPI: u32 = 3;
/// `E820_NVS`: ACPI non-volatile storage.
pub const E820_NVS: u32 = 4;
/// `E820_UNUSABLE`.
pub const E820_UNUSABLE: u32 = 5;
/// `E820MAX`: most entries a map holds (toolstack limit).
pub const E820MAX: usize = 128;

/// `struct xen_memory_reservation`: a batch of `2^extent_order`-page extents.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenMemoryReservation {
    /// Guest handle of a `xen_pfn_t` array: frames in or out (may be 0 for
    /// increase_reservation).
    pub extent_start: u64,
    /// Number of extents.
    pub nr_extents: u64,
    /// log2 of pages per extent.
    pub extent_order: u32,
    /// `XENMEMF_*` flags.
    pub mem_flags: u32,
    /// The domain (`DOMID_SELF` or, privileged, another).
    pub domid: u16,
    /// Padding; zero.
    pub _pad0: [u16; 3],
}
const _: () = assert!(core::mem::size_of::<XenMemoryReservation>() == 32);
const _: () = assert!(core::mem::offset_of!(XenMemoryReservation, nr_extents) == 8);
const _: () = assert!(core::mem::offset_of!(XenMemoryReservation, extent_order) == 16);
const _: () = assert!(core::mem::offset_of!(XenMemoryReservation, mem_flags) == 20);
const _: () = assert!(core::mem::offset_of!(XenMemoryReservation, domid) == 24);

/// `struct xen_memory_exchange`: give up `in` extents for `out` extents.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenMemoryExchange {
    /// Extents given up.
    pub in_: XenMemoryReservation,
    /// Extents received.
    pub out: XenMemoryReservation,
    /// OUT (and IN, for continuations): input extents already exchanged.
    pub nr_exchanged: u64,
}
const _: () = assert!(core::mem::size_of::<XenMemoryExchange>() == 72);
const _: () = assert!(core::mem::offset_of!(XenMemoryExchange, out) == 32);
const _: () = assert!(core::mem::offset_of!(XenMemoryExchange, nr_exchanged) == 64);

/// `struct xen_memory_domain`: the argument of the reservation queries.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenMemoryDomain {
    /// The domain asked about.
    pub domid: u16,
}
const _: () = assert!(core::mem::size_of::<XenMemoryDomain>() == 2);

/// `struct xen_machphys_mfn_list`: the frames backing the read-only M2P table.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenMachphysMfnList {
    /// IN: room in `extent_start`.
    pub max_extents: u32,
    /// Padding; zero.
    pub _pad0: u32,
    /// IN: guest handle of a `xen_pfn_t` array Xen fills (one 2 MiB extent each).
    pub extent_start: u64,
    /// OUT: entries written.
    pub nr_extents: u32,
    /// Padding; zero.
    pub _pad1: u32,
}
const _: () = assert!(core::mem::size_of::<XenMachphysMfnList>() == 24);
const _: () = assert!(core::mem::offset_of!(XenMachphysMfnList, extent_start) == 8);
const _: () = assert!(core::mem::offset_of!(XenMachphysMfnList, nr_extents) == 16);

/// `struct xen_machphys_mapping`: where the M2P table is mapped.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenMachphysMapping {
    /// First virtual address of the table.
    pub v_start: u64,
    /// End virtual address.
    pub v_end: u64,
    /// Largest machine frame the table covers.
    pub max_mfn: u64,
}
const _: () = assert!(core::mem::size_of::<XenMachphysMapping>() == 24);

/// `struct xen_add_to_physmap`: put a Xen-owned or own frame into a domain's
/// physmap.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenAddToPhysmap {
    /// The domain whose map changes.
    pub domid: u16,
    /// Pages, for [`XENMAPSPACE_GMFN_RANGE`].
    pub size: u16,
    /// A `XENMAPSPACE_*` value.
    pub space: u32,
    /// Index in that space.
    pub idx: u64,
    /// Guest frame where the page appears.
    pub gpfn: u64,
}
const _: () = assert!(core::mem::size_of::<XenAddToPhysmap>() == 24);
const _: () = assert!(core::mem::offset_of!(XenAddToPhysmap, size) == 2);
const _: () = assert!(core::mem::offset_of!(XenAddToPhysmap, space) == 4);
const _: () = assert!(core::mem::offset_of!(XenAddToPhysmap, idx) == 8);
const _: () = assert!(core::mem::offset_of!(XenAddToPhysmap, gpfn) == 16);

/// `struct xen_add_to_physmap_batch`: many add_to_physmap calls at once.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenAddToPhysmapBatch {
    /// The domain whose map changes.
    pub domid: u16,
    /// A `XENMAPSPACE_*` value.
    pub space: u16,
    /// Number of pages.
    pub size: u16,
    /// The union `u`: the foreign domain for [`XENMAPSPACE_GMFN_FOREIGN`],
    /// else zero.
    pub foreign_domid: u16,
    /// Guest handle of `xen_ulong_t[size]` indexes.
    pub idxs: u64,
    /// Guest handle of `xen_pfn_t[size]` target frames.
    pub gpfns: u64,
    /// Guest handle of `int[size]` per-page errors (OUT).
    pub errs: u64,
}
const _: () = assert!(core::mem::size_of::<XenAddToPhysmapBatch>() == 32);
const _: () = assert!(core::mem::offset_of!(XenAddToPhysmapBatch, idxs) == 8);
const _: () = assert!(core::mem::offset_of!(XenAddToPhysmapBatch, errs) == 24);

/// `struct xen_remove_from_physmap`: unmap a page from a domain's physmap.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenRemoveFromPhysmap {
    /// The domain whose map changes.
    pub domid: u16,
    /// Padding; zero.
    pub _pad0: [u16; 3],
    /// Guest frame of the mapping.
    pub gpfn: u64,
}
const _: () = assert!(core::mem::size_of::<XenRemoveFromPhysmap>() == 16);
const _: () = assert!(core::mem::offset_of!(XenRemoveFromPhysmap, gpfn) == 8);

/// `struct xen_memory_map`: a buffer of [`E820Entry`] (memory_map and
/// machine_memory_map).
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenMemoryMap {
    /// IN: room in `buffer` (entries); OUT: entries written.
    pub nr_entries: u32,
    /// Padding; zero.
    pub _pad0: u32,
    /// Guest handle of the entry buffer.
    pub buffer: u64,
}
const _: () = assert!(core::mem::size_of::<XenMemoryMap>() == 16);
const _: () = assert!(core::mem::offset_of!(XenMemoryMap, buffer) == 8);

/// `struct xen_foreign_memory_map`: set another domain's memory map.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenForeignMemoryMap {
    /// The domain.
    pub domid: u16,
    /// Padding; zero.
    pub _pad0: [u16; 3],
    /// Its map.
    pub map: XenMemoryMap,
}
const _: () = assert!(core::mem::size_of::<XenForeignMemoryMap>() == 24);
const _: () = assert!(core::mem::offset_of!(XenForeignMemoryMap, map) == 8);

/// `struct xen_pod_target`: populate-on-demand target and counters.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenPodTarget {
    /// IN: target pages.
    pub target_pages: u64,
    /// OUT: pages held.
    pub tot_pages: u64,
    /// OUT: pages in the PoD cache.
    pub pod_cache_pages: u64,
    /// OUT: PoD entries outstanding.
    pub pod_entries: u64,
    /// IN: the domain.
    pub domid: u16,
    /// Padding; zero.
    pub _pad0: [u16; 3],
}
const _: () = assert!(core::mem::size_of::<XenPodTarget>() == 40);
const _: () = assert!(core::mem::offset_of!(XenPodTarget, domid) == 32);

/// `struct xen_mem_acquire_resource`: map a domain's resource frames.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenMemAcquireResource {
    /// The domain owning the resource.
    pub domid: u16,
    /// `XENMEM_resource_*` type.
    pub type_: u16,
    /// Type-specific id.
    pub id: u32,
    /// IN: frames wanted (0 asks the size); OUT: frames available.
    pub nr_frames: u32,
    /// Padding; zero.
    pub pad: u32,
    /// First frame index in the resource.
    pub frame: u64,
    /// Guest handle of a `xen_pfn_t[nr_frames]` array.
    pub frame_list: u64,
}
const _: () = assert!(core::mem::size_of::<XenMemAcquireResource>() == 32);
const _: () = assert!(core::mem::offset_of!(XenMemAcquireResource, frame) == 16);
const _: () = assert!(core::mem::offset_of!(XenMemAcquireResource, frame_list) == 24);

/// `struct e820entry` (x86, `__attribute__((packed))`): one BIOS-style memory
/// map entry, 20 bytes, as the buffers of [`XenMemoryMap`] hold them.
#[repr(C, packed)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct E820Entry {
    /// First byte of the range.
    pub addr: u64,
    /// Bytes in the range.
    pub size: u64,
    /// An `E820_*` type.
    pub type_: u32,
}
const _: () = assert!(core::mem::size_of::<E820Entry>() == 20);
const _: () = assert!(core::mem::align_of::<E820Entry>() == 1);
const _: () = assert!(core::mem::offset_of!(E820Entry, size) == 8);
const _: () = assert!(core::mem::offset_of!(E820Entry, type_) == 16);

#[cfg(test)]
mod tests {
    use super::*;

    /// ABI rule: `xen_memory_reservation` is {handle @0, nr_extents @8,
    /// extent_order @16, mem_flags @20, domid @24}, 32 bytes.
    #[test]
    fn reservation_fields_at_xen_offsets() {
        let r = XenMemoryReservation {
            extent_start: 0x1000,
            nr_extents: 3,
            extent_order: 9,
            mem_flags: xenmemf_address_bits(32),
            domid: 0x7ff0,
            ..Default::default()
        };
        let b = r.as_bytes();
        assert_eq!(&b[8..16], &3u64.to_le_bytes());
        assert_eq!(&b[16..20], &9u32.to_le_bytes());
        assert_eq!(&b[20..24], &32u32.to_le_bytes());
        assert_eq!(&b[24..26], &0x7ff0u16.to_le_bytes());
        assert_eq!(XenMemoryReservation::read_from_bytes(b).unwrap(), r);
    }

    /// ABI rule: `e820entry` is packed: entries sit every 20 bytes with the
    /// type at byte 16 and no padding.
    #[test]
    fn e820_entries_are_packed_20_bytes() {
        let map = [E820Entry { addr: 0, size: 0x9f000, type_: E820_RAM }, E820Entry { addr: 0x100000, size: 0x1000, type_: E820_RESERVED }];
        let b = map.as_bytes();
        assert_eq!(b.len(), 40);
        assert_eq!(&b[16..20], &E820_RAM.to_le_bytes());
        assert_eq!(&b[20..28], &0x100000u64.to_le_bytes());
        let back = <[E820Entry; 2]>::read_from_bytes(b).unwrap();
        assert_eq!(back, map);
    }

    /// ABI rule: `XENMEMF_node(n)` stores n + 1 in bits 8-15, and
    /// `XENMEMF_get_node` undoes it.
    #[test]
    fn memf_node_round_trips() {
        assert_eq!(xenmemf_node(0), 0x100);
        assert_eq!(xenmemf_get_node(xenmemf_node(3) | XENMEMF_EXACT_NODE_REQUEST), 3);
        assert_eq!(xenmemf_get_address_bits(xenmemf_node(1) | 40), 40);
    }
}
