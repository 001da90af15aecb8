//! Grant tables: mirrors Xen 4.17's `public/grant_table.h`.
//!
//! Holds the `GNTTABOP_*` sub-op numbers of `grant_table_op(cmd, uop, count)`,
//! the grant entry formats (v1 and v2), the argument structure of every
//! sub-op, and the `GTF_*`, `GNTMAP_*`, `GNTCOPY_*` and `GNTST_*` values.
//! Invariant: every structure has exactly the x86_64 size and field offsets
//! Xen 4.17 gives it, checked at compile time by the assertions after it.
//! `grant_ref_t` and `grant_handle_t` are u32, `domid_t` u16, `xen_pfn_t`
//! u64, guest handles 8-byte addresses.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::union_bytes;

/// `GNTTABOP_map_grant_ref`: [`GnttabMapGrantRef`].
pub const GNTTABOP_MAP_GRANT_REF: u64 = 0;
/// `GNTTABOP_unmap_grant_ref`: [`GnttabUnmapGrantRef`].
pub const GNTTABOP_UNMAP_GRANT_REF: u64 = 1;
/// `GNTTABOP_setup_table`: [`GnttabSetupTable`].
pub const GNTTABOP_SETUP_TABLE: u64 = 2;
/// `GNTTABOP_dump_table`: [`GnttabDumpTable`].
pub const GNTTABOP_DUMP_TABLE: u64 = 3;
/// `GNTTABOP_transfer`: [`GnttabTransfer`].
pub const GNTTABOP_TRANSFER: u64 = 4;
/// `GNTTABOP_copy`: [`GnttabCopy`].
pub const GNTTABOP_COPY: u64 = 5;
/// `GNTTABOP_query_size`: [`GnttabQuerySize`].
pub const GNTTABOP_QUERY_SIZE: u64 = 6;
/// `GNTTABOP_unmap_and_replace`: [`GnttabUnmapAndReplace`].
pub const GNTTABOP_UNMAP_AND_REPLACE: u64 = 7;
/// `GNTTABOP_set_version`: [`GnttabSetVersion`].
pub const GNTTABOP_SET_VERSION: u64 = 8;
/// `GNTTABOP_get_status_frames`: [`GnttabGetStatusFrames`].
pub const GNTTABOP_GET_STATUS_FRAMES: u64 = 9;
/// `GNTTABOP_get_version`: [`GnttabGetVersion`].
pub const GNTTABOP_GET_VERSION: u64 = 10;
/// `GNTTABOP_swap_grant_ref`: [`GnttabSwapGrantRef`].
pub const GNTTABOP_SWAP_GRANT_REF: u64 = 11;
/// `GNTTABOP_cache_flush`: [`GnttabCacheFlush`].
pub const GNTTABOP_CACHE_FLUSH: u64 = 12;

/// `GNTTAB_NR_RESERVED_ENTRIES`: entries the toolstack may use; guests
/// allocate above them.
pub const GNTTAB_NR_RESERVED_ENTRIES: u32 = 8;
/// `GNTTAB_RESERVED_CONSOLE`: entry granting the console ring.
pub const GNTTAB_RESERVED_CONSOLE: u32 = 0;
/// `GNTTAB_RESERVED_XENSTORE`: entry granting the xenstore ring.
pub const GNTTAB_RESERVED_XENSTORE: u32 = 1;

/// `GTF_invalid`: the entry grants nothing.
pub const GTF_INVALID: u16 = 0;
/// `GTF_permit_access`: the domain may map or copy the frame.
pub const GTF_PERMIT_ACCESS: u16 = 1;
/// `GTF_accept_transfer`: the domain may transfer a frame into this entry.
pub const GTF_ACCEPT_TRANSFER: u16 = 2;
/// `GTF_transitive`: the entry re-grants another domain's grant (v2 only).
pub const GTF_TRANSITIVE: u16 = 3;
/// `GTF_type_mask`: the type bits above.
pub const GTF_TYPE_MASK: u16 = 3;
/// `GTF_readonly`: only read access is granted.
pub const GTF_READONLY: u16 = 1 << 2;
/// `GTF_reading`: set by Xen while the grant is in use for reading.
pub const GTF_READING: u16 = 1 << 3;
/// `GTF_writing`: set by Xen while the grant is in use for writing.
pub const GTF_WRITING: u16 = 1 << 4;
/// `GTF_PWT`: map with the page-write-through attribute.
pub const GTF_PWT: u16 = 1 << 5;
/// `GTF_PCD`: map with the page-cache-disable attribute.
pub const GTF_PCD: u16 = 1 << 6;
/// `GTF_PAT`: map with the PAT attribute.
pub const GTF_PAT: u16 = 1 << 7;
/// `GTF_sub_page`: the grant covers part of the frame (v2 only).
pub const GTF_SUB_PAGE: u16 = 1 << 8;
/// `GTF_transfer_committed`: Xen is transferring a frame into the entry.
pub const GTF_TRANSFER_COMMITTED: u16 = 1 << 2;
/// `GTF_transfer_completed`: the transfer is done and `frame` is valid.
pub const GTF_TRANSFER_COMPLETED: u16 = 1 << 3;

/// The type field of a grant entry's `flags` (bits 0-1, `GTF_type_mask`).
///
/// `GTF_permit_access`, `GTF_accept_transfer` and `GTF_transitive` are the
/// values 1, 2 and 3 of this two-bit field, not independent bits: an entry
/// "with `GTF_permit_access` set" is one whose field is exactly 1, and
/// `GTF_transitive` (3) is neither of the other two. So the type is an enum
/// read with [`GrantType::of`], and [`GtfFlags`] holds only the bits above.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum GrantType {
    /// `GTF_invalid`: the entry grants nothing.
    Invalid = GTF_INVALID,
    /// `GTF_permit_access`: the domain may map or copy the frame.
    PermitAccess = GTF_PERMIT_ACCESS,
    /// `GTF_accept_transfer`: the domain may transfer a frame into the entry.
    AcceptTransfer = GTF_ACCEPT_TRANSFER,
    /// `GTF_transitive`: the entry re-grants another domain's grant (v2 only).
    Transitive = GTF_TRANSITIVE,
}

impl GrantType {
    /// The type field of an entry's `flags` word (the other bits ignored).
    pub const fn of(flags: u16) -> GrantType {
        match flags & GTF_TYPE_MASK {
            GTF_INVALID => GrantType::Invalid,
            GTF_PERMIT_ACCESS => GrantType::PermitAccess,
            GTF_ACCEPT_TRANSFER => GrantType::AcceptTransfer,
            _ => GrantType::Transitive,
        }
    }

    /// The field's value (bits 0-1 of `flags`).
    pub const fn bits(self) -> u16 {
        self as u16
    }
}

bitflags::bitflags! {
    /// The flag bits of a grant entry's `flags` word (`GTF_*` above the
    /// type field), for code that decides on them; the entry itself
    /// ([`GrantEntryV1::flags`], [`GrantEntryHeader::flags`]) stays a raw
    /// `u16` because it is the wire format.
    ///
    /// Read a word with [`GtfFlags::of`], which leaves out the type field
    /// ([`GrantType::of`] reads that) and keeps bits this set does not name;
    /// write one back with [`GtfFlags::with_type`].
    ///
    /// Two pairs of names share a bit, as in Xen, and which one applies
    /// depends on the type: in a `GTF_accept_transfer` entry bit 2 is
    /// [`TRANSFER_COMMITTED`](Self::TRANSFER_COMMITTED) (not `READONLY`) and
    /// bit 3 is [`TRANSFER_COMPLETED`](Self::TRANSFER_COMPLETED) (not
    /// `READING`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct GtfFlags: u16 {
        /// `GTF_readonly`: only read access is granted.
        const READONLY = GTF_READONLY;
        /// `GTF_reading`: set by Xen while the grant is in use for reading.
        const READING = GTF_READING;
        /// `GTF_writing`: set by Xen while the grant is in use for writing.
        const WRITING = GTF_WRITING;
        /// `GTF_PWT`: map with the page-write-through attribute.
        const PWT = GTF_PWT;
        /// `GTF_PCD`: map with the page-cache-disable attribute.
        const PCD = GTF_PCD;
        /// `GTF_PAT`: map with the PAT attribute.
        const PAT = GTF_PAT;
        /// `GTF_sub_page`: the grant covers part of the frame (v2 only).
        const SUB_PAGE = GTF_SUB_PAGE;
        /// `GTF_transfer_committed` (accept-transfer entries; bit 2, the
        /// bit of `READONLY`): Xen is transferring a frame into the entry.
        const TRANSFER_COMMITTED = GTF_TRANSFER_COMMITTED;
        /// `GTF_transfer_completed` (accept-transfer entries; bit 3, the
        /// bit of `READING`): the transfer is done and `frame` is valid.
        const TRANSFER_COMPLETED = GTF_TRANSFER_COMPLETED;
    }
}

impl GtfFlags {
    /// The flag bits of an entry's `flags` word: all but the type field,
    /// unnamed bits kept, so [`Self::with_type`] gives the word back.
    pub const fn of(flags: u16) -> GtfFlags {
        GtfFlags::from_bits_retain(flags & !GTF_TYPE_MASK)
    }

    /// The `flags` word of an entry of type `ty` with these flags.
    pub const fn with_type(self, ty: GrantType) -> u16 {
        (self.bits() & !GTF_TYPE_MASK) | ty.bits()
    }
}

/// `GNTMAP_device_map`: map for device (bus) access.
pub const GNTMAP_DEVICE_MAP: u32 = 1 << 0;
/// `GNTMAP_host_map`: map for CPU access.
pub const GNTMAP_HOST_MAP: u32 = 1 << 1;
/// `GNTMAP_readonly`: map read-only.
pub const GNTMAP_READONLY: u32 = 1 << 2;
/// `GNTMAP_application_map`: the mapping is user-accessible.
pub const GNTMAP_APPLICATION_MAP: u32 = 1 << 3;
/// `GNTMAP_contains_pte`: `host_addr` is the machine address of a PTE to
/// write, not a virtual address.
pub const GNTMAP_CONTAINS_PTE: u32 = 1 << 4;
/// `GNTMAP_guest_avail_mask`: bits 16-31 are left to the guest.
pub const GNTMAP_GUEST_AVAIL_MASK: u32 = !0u32 << 16;

bitflags::bitflags! {
    /// `map_grant_ref.flags` (`GNTMAP_*`) as a set, for code that decides
    /// on them; the argument structure's field stays a raw `u32`. Bits
    /// 16-31 are the guest's own (`GNTMAP_guest_avail_mask`) and are kept,
    /// unnamed, by `from_bits_retain`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct GntmapFlags: u32 {
        /// `GNTMAP_device_map`.
        const DEVICE_MAP = GNTMAP_DEVICE_MAP;
        /// `GNTMAP_host_map`.
        const HOST_MAP = GNTMAP_HOST_MAP;
        /// `GNTMAP_readonly`.
        const READONLY = GNTMAP_READONLY;
        /// `GNTMAP_application_map`.
        const APPLICATION_MAP = GNTMAP_APPLICATION_MAP;
        /// `GNTMAP_contains_pte`.
        const CONTAINS_PTE = GNTMAP_CONTAINS_PTE;
    }
}

/// `GNTCOPY_source_gref`: `source.u` is a grant reference, not a frame.
pub const GNTCOPY_SOURCE_GREF: u16 = 1 << 0;
/// `GNTCOPY_dest_gref`: `dest.u` is a grant reference, not a frame.
pub const GNTCOPY_DEST_GREF: u16 = 1 << 1;

/// `GNTTAB_CACHE_CLEAN`: clean the range (cache flush op bit).
pub const GNTTAB_CACHE_CLEAN: u32 = 1 << 0;
/// `GNTTAB_CACHE_INVAL`: invalidate the range.
pub const GNTTAB_CACHE_INVAL: u32 = 1 << 1;
/// `GNTTAB_CACHE_SOURCE_GREF`: `a` holds a grant reference.
pub const GNTTAB_CACHE_SOURCE_GREF: u32 = 1 << 31;

/// `GNTST_okay`.
pub const GNTST_OKAY: i16 = 0;
/// `GNTST_general_error`.
pub const GNTST_GENERAL_ERROR: i16 = -1;
/// `GNTST_bad_domain`: unknown domain.
pub const GNTST_BAD_DOMAIN: i16 = -2;
/// `GNTST_bad_gntref`: unknown or unusable grant reference.
pub const GNTST_BAD_GNTREF: i16 = -3;
/// `GNTST_bad_handle`: unknown or unusable map handle.
pub const GNTST_BAD_HANDLE: i16 = -4;
/// `GNTST_bad_virt_addr`: unusable virtual address.
pub const GNTST_BAD_VIRT_ADDR: i16 = -5;
/// `GNTST_bad_dev_addr`: unusable device address.
pub const GNTST_BAD_DEV_ADDR: i16 = -6;
/// `GNTST_no_device_space`: the IOMMU is full.
pub const GNTST_NO_DEVICE_SPACE: i16 = -7;
/// `GNTST_permission_denied`.
pub const GNTST_PERMISSION_DENIED: i16 = -8;
/// `GNTST_bad_page`: the frame is not valid for the operation.
pub const GNTST_BAD_PAGE: i16 = -9;
/// `GNTST_bad_copy_arg`: a copy would cross a page boundary.
pub const GNTST_BAD_COPY_ARG: i16 = -10;
/// `GNTST_address_too_big`: the frame address is out of range.
pub const GNTST_ADDRESS_TOO_BIG: i16 = -11;
/// `GNTST_eagain`: not done; retry.
pub const GNTST_EAGAIN: i16 = -12;
/// `GNTST_no_space`: out of handles or similar.
pub const GNTST_NO_SPACE: i16 = -13;

/// `struct grant_entry_v1`: one entry of a v1 shared grant table.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrantEntryV1 {
    /// `GTF_*` type and flags.
    pub flags: u16,
    /// The domain granted access.
    pub domid: u16,
    /// The frame granted (or, for a transfer, received).
    pub frame: u32,
}
const _: () = assert!(core::mem::size_of::<GrantEntryV1>() == 8);
const _: () = assert!(core::mem::offset_of!(GrantEntryV1, domid) == 2);
const _: () = assert!(core::mem::offset_of!(GrantEntryV1, frame) == 4);

/// `struct grant_entry_header`: the first four bytes of a v2 entry.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrantEntryHeader {
    /// `GTF_*` type and flags.
    pub flags: u16,
    /// The domain granted access.
    pub domid: u16,
}
const _: () = assert!(core::mem::size_of::<GrantEntryHeader>() == 4);

/// `full_page` member of `union grant_entry_v2`.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrantEntryV2FullPage {
    /// The common header.
    pub hdr: GrantEntryHeader,
    /// Padding; zero.
    pub _pad0: u32,
    /// The frame granted.
    pub frame: u64,
}
const _: () = assert!(core::mem::size_of::<GrantEntryV2FullPage>() == 16);
const _: () = assert!(core::mem::offset_of!(GrantEntryV2FullPage, frame) == 8);

/// `sub_page` member of `union grant_entry_v2`.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrantEntryV2SubPage {
    /// The common header.
    pub hdr: GrantEntryHeader,
    /// First byte granted.
    pub page_off: u16,
    /// Number of bytes granted.
    pub length: u16,
    /// The frame.
    pub frame: u64,
}
const _: () = assert!(core::mem::size_of::<GrantEntryV2SubPage>() == 16);
const _: () = assert!(core::mem::offset_of!(GrantEntryV2SubPage, length) == 6);
const _: () = assert!(core::mem::offset_of!(GrantEntryV2SubPage, frame) == 8);

/// `transitive` member of `union grant_entry_v2` (12 bytes; the union's
/// last four bytes are unused by it).
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrantEntryV2Transitive {
    /// The common header.
    pub hdr: GrantEntryHeader,
    /// The domain whose grant is passed on.
    pub trans_domid: u16,
    /// Padding; zero.
    pub _pad0: u16,
    /// That domain's grant reference.
    pub gref: u32,
}
const _: () = assert!(core::mem::size_of::<GrantEntryV2Transitive>() == 12);
const _: () = assert!(core::mem::offset_of!(GrantEntryV2Transitive, gref) == 8);

/// `union grant_entry_v2`: one 16-byte entry of a v2 shared grant table, kept
/// as bytes; the typed members are read and written with the accessors.
#[repr(C, align(8))]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrantEntryV2 {
    /// The union's bytes.
    pub bytes: [u8; 16],
}
const _: () = assert!(core::mem::size_of::<GrantEntryV2>() == 16);
const _: () = assert!(core::mem::align_of::<GrantEntryV2>() == 8);

impl GrantEntryV2 {
    /// `hdr`, shared by every member.
    pub fn hdr(&self) -> GrantEntryHeader {
        union_bytes::read(&self.bytes)
    }
    /// Store `hdr`.
    pub fn set_hdr(&mut self, v: GrantEntryHeader) {
        union_bytes::write(&mut self.bytes, &v);
    }
    /// `full_page`.
    pub fn full_page(&self) -> GrantEntryV2FullPage {
        union_bytes::read(&self.bytes)
    }
    /// Store `full_page`.
    pub fn set_full_page(&mut self, v: GrantEntryV2FullPage) {
        union_bytes::write(&mut self.bytes, &v);
    }
    /// `sub_page`.
    pub fn sub_page(&self) -> GrantEntryV2SubPage {
        union_bytes::read(&self.bytes)
    }
    /// Store `sub_page`.
    pub fn set_sub_page(&mut self, v: GrantEntryV2SubPage) {
        union_bytes::write(&mut self.bytes, &v);
    }
    /// `transitive`.
    pub fn transitive(&self) -> GrantEntryV2Transitive {
        union_bytes::read(&self.bytes)
    }
    /// Store `transitive`.
    pub fn set_transitive(&mut self, v: GrantEntryV2Transitive) {
        union_bytes::write(&mut self.bytes, &v);
    }
}

/// `struct gnttab_map_grant_ref`: map a foreign grant.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabMapGrantRef {
    /// IN: virtual address (or PTE machine address with
    /// [`GNTMAP_CONTAINS_PTE`]) to map at.
    pub host_addr: u64,
    /// IN: `GNTMAP_*`.
    pub flags: u32,
    /// IN: the granting domain's reference.
    pub ref_: u32,
    /// IN: the granting domain.
    pub dom: u16,
    /// OUT: a `GNTST_*` value.
    pub status: i16,
    /// OUT: handle to unmap with.
    pub handle: u32,
    /// OUT: bus address, for [`GNTMAP_DEVICE_MAP`].
    pub dev_bus_addr: u64,
}
const _: () = assert!(core::mem::size_of::<GnttabMapGrantRef>() == 32);
const _: () = assert!(core::mem::offset_of!(GnttabMapGrantRef, flags) == 8);
const _: () = assert!(core::mem::offset_of!(GnttabMapGrantRef, ref_) == 12);
const _: () = assert!(core::mem::offset_of!(GnttabMapGrantRef, dom) == 16);
const _: () = assert!(core::mem::offset_of!(GnttabMapGrantRef, status) == 18);
const _: () = assert!(core::mem::offset_of!(GnttabMapGrantRef, handle) == 20);
const _: () = assert!(core::mem::offset_of!(GnttabMapGrantRef, dev_bus_addr) == 24);

/// `struct gnttab_unmap_grant_ref`: undo a map.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabUnmapGrantRef {
    /// IN: the address mapped at (0 if only device-mapped).
    pub host_addr: u64,
    /// IN: the bus address (0 if only host-mapped).
    pub dev_bus_addr: u64,
    /// IN: the map's handle.
    pub handle: u32,
    /// OUT: a `GNTST_*` value.
    pub status: i16,
    /// Padding; zero.
    pub _pad0: u16,
}
const _: () = assert!(core::mem::size_of::<GnttabUnmapGrantRef>() == 24);
const _: () = assert!(core::mem::offset_of!(GnttabUnmapGrantRef, handle) == 16);
const _: () = assert!(core::mem::offset_of!(GnttabUnmapGrantRef, status) == 20);

/// `struct gnttab_setup_table`: size a domain's grant table and learn its
/// frames.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabSetupTable {
    /// IN: the domain.
    pub dom: u16,
    /// Padding; zero.
    pub _pad0: u16,
    /// IN: frames wanted.
    pub nr_frames: u32,
    /// OUT: a `GNTST_*` value.
    pub status: i16,
    /// Padding; zero.
    pub _pad1: [u16; 3],
    /// IN: guest handle of a `xen_pfn_t[nr_frames]` array Xen fills.
    pub frame_list: u64,
}
const _: () = assert!(core::mem::size_of::<GnttabSetupTable>() == 24);
const _: () = assert!(core::mem::offset_of!(GnttabSetupTable, nr_frames) == 4);
const _: () = assert!(core::mem::offset_of!(GnttabSetupTable, status) == 8);
const _: () = assert!(core::mem::offset_of!(GnttabSetupTable, frame_list) == 16);

/// `struct gnttab_dump_table`: print a domain's grant table on Xen's console.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabDumpTable {
    /// IN: the domain.
    pub dom: u16,
    /// OUT: a `GNTST_*` value.
    pub status: i16,
}
const _: () = assert!(core::mem::size_of::<GnttabDumpTable>() == 4);

/// `struct gnttab_transfer`: give a frame to a domain that accepts it.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabTransfer {
    /// IN: the frame given away.
    pub mfn: u64,
    /// IN: the receiving domain.
    pub domid: u16,
    /// Padding; zero.
    pub _pad0: u16,
    /// IN: the receiver's accept-transfer entry.
    pub ref_: u32,
    /// OUT: a `GNTST_*` value.
    pub status: i16,
    /// Padding; zero.
    pub _pad1: [u16; 3],
}
const _: () = assert!(core::mem::size_of::<GnttabTransfer>() == 24);
const _: () = assert!(core::mem::offset_of!(GnttabTransfer, domid) == 8);
const _: () = assert!(core::mem::offset_of!(GnttabTransfer, ref_) == 12);
const _: () = assert!(core::mem::offset_of!(GnttabTransfer, status) == 16);

/// `struct gnttab_copy_ptr`: one end of a grant copy.
///
/// `u` is the C union `{ grant_ref_t ref; xen_pfn_t gmfn; }`, 8 bytes kept
/// as a u64: on little-endian x86_64 `ref` is its low 32 bits.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabCopyPtr {
    /// The union: a grant reference (with `GNTCOPY_*_gref`) or a frame.
    pub u: u64,
    /// The domain owning the reference or frame.
    pub domid: u16,
    /// Byte offset in the page.
    pub offset: u16,
    /// Padding; zero.
    pub _pad0: u32,
}
const _: () = assert!(core::mem::size_of::<GnttabCopyPtr>() == 16);
const _: () = assert!(core::mem::offset_of!(GnttabCopyPtr, domid) == 8);
const _: () = assert!(core::mem::offset_of!(GnttabCopyPtr, offset) == 10);

impl GnttabCopyPtr {
    /// `u.ref`: the grant reference (low 32 bits of the union).
    pub fn gref(&self) -> u32 {
        self.u as u32
    }
    /// Store `u.ref`, clearing the union's upper half.
    pub fn set_gref(&mut self, gref: u32) {
        self.u = u64::from(gref);
    }
    /// `u.gmfn`: the frame.
    pub fn gmfn(&self) -> u64 {
        self.u
    }
    /// Store `u.gmfn`.
    pub fn set_gmfn(&mut self, gmfn: u64) {
        self.u = gmfn;
    }
}

/// `struct gnttab_copy`: copy bytes between granted or own frames.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabCopy {
    /// IN: where the bytes come from.
    pub source: GnttabCopyPtr,
    /// IN: where they go.
    pub dest: GnttabCopyPtr,
    /// IN: how many bytes (within one page at each end).
    pub len: u16,
    /// IN: `GNTCOPY_*`.
    pub flags: u16,
    /// OUT: a `GNTST_*` value.
    pub status: i16,
    /// Padding; zero.
    pub _pad0: u16,
}
const _: () = assert!(core::mem::size_of::<GnttabCopy>() == 40);
const _: () = assert!(core::mem::offset_of!(GnttabCopy, dest) == 16);
const _: () = assert!(core::mem::offset_of!(GnttabCopy, len) == 32);
const _: () = assert!(core::mem::offset_of!(GnttabCopy, flags) == 34);
const _: () = assert!(core::mem::offset_of!(GnttabCopy, status) == 36);

/// `struct gnttab_query_size`: current and maximum grant-table frames.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabQuerySize {
    /// IN: the domain.
    pub dom: u16,
    /// Padding; zero.
    pub _pad0: u16,
    /// OUT: frames in use.
    pub nr_frames: u32,
    /// OUT: the limit.
    pub max_nr_frames: u32,
    /// OUT: a `GNTST_*` value.
    pub status: i16,
    /// Padding; zero.
    pub _pad1: u16,
}
const _: () = assert!(core::mem::size_of::<GnttabQuerySize>() == 16);
const _: () = assert!(core::mem::offset_of!(GnttabQuerySize, nr_frames) == 4);
const _: () = assert!(core::mem::offset_of!(GnttabQuerySize, max_nr_frames) == 8);
const _: () = assert!(core::mem::offset_of!(GnttabQuerySize, status) == 12);

/// `struct gnttab_unmap_and_replace`: unmap a grant, moving another mapping
/// into its place.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabUnmapAndReplace {
    /// IN: where the grant is mapped.
    pub host_addr: u64,
    /// IN: the address whose mapping replaces it (and is then cleared).
    pub new_addr: u64,
    /// IN: the map's handle.
    pub handle: u32,
    /// OUT: a `GNTST_*` value.
    pub status: i16,
    /// Padding; zero.
    pub _pad0: u16,
}
const _: () = assert!(core::mem::size_of::<GnttabUnmapAndReplace>() == 24);
const _: () = assert!(core::mem::offset_of!(GnttabUnmapAndReplace, handle) == 16);
const _: () = assert!(core::mem::offset_of!(GnttabUnmapAndReplace, status) == 20);

/// `struct gnttab_set_version`: choose grant table format 1 or 2.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabSetVersion {
    /// IN: the version wanted; OUT: the version in force.
    pub version: u32,
}
const _: () = assert!(core::mem::size_of::<GnttabSetVersion>() == 4);

/// `struct gnttab_get_status_frames`: the frames of a v2 status array.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabGetStatusFrames {
    /// IN: number of frames wanted.
    pub nr_frames: u32,
    /// IN: the domain.
    pub dom: u16,
    /// OUT: a `GNTST_*` value.
    pub status: i16,
    /// IN: guest handle of a `u64[nr_frames]` array Xen fills.
    pub frame_list: u64,
}
const _: () = assert!(core::mem::size_of::<GnttabGetStatusFrames>() == 16);
const _: () = assert!(core::mem::offset_of!(GnttabGetStatusFrames, dom) == 4);
const _: () = assert!(core::mem::offset_of!(GnttabGetStatusFrames, status) == 6);
const _: () = assert!(core::mem::offset_of!(GnttabGetStatusFrames, frame_list) == 8);

/// `struct gnttab_get_version`: a domain's grant table format.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabGetVersion {
    /// IN: the domain.
    pub dom: u16,
    /// Padding; zero.
    pub pad: u16,
    /// OUT: 1 or 2.
    pub version: u32,
}
const _: () = assert!(core::mem::size_of::<GnttabGetVersion>() == 8);
const _: () = assert!(core::mem::offset_of!(GnttabGetVersion, version) == 4);

/// `struct gnttab_swap_grant_ref`: exchange two of the caller's entries.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabSwapGrantRef {
    /// IN: first entry.
    pub ref_a: u32,
    /// IN: second entry.
    pub ref_b: u32,
    /// OUT: a `GNTST_*` value.
    pub status: i16,
    /// Padding; zero.
    pub _pad0: u16,
}
const _: () = assert!(core::mem::size_of::<GnttabSwapGrantRef>() == 12);
const _: () = assert!(core::mem::offset_of!(GnttabSwapGrantRef, status) == 8);

/// `struct gnttab_cache_flush`: clean or invalidate caches over part of a
/// page (Arm).
///
/// `a` is the C union `{ uint64_t dev_bus_addr; grant_ref_t ref; }` kept as a
/// u64; `ref` is its low 32 bits.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabCacheFlush {
    /// IN: bus address, or grant reference with [`GNTTAB_CACHE_SOURCE_GREF`].
    pub a: u64,
    /// IN: offset in the page.
    pub offset: u16,
    /// IN: bytes.
    pub length: u16,
    /// IN: `GNTTAB_CACHE_*`.
    pub op: u32,
}
const _: () = assert!(core::mem::size_of::<GnttabCacheFlush>() == 16);
const _: () = assert!(core::mem::offset_of!(GnttabCacheFlush, offset) == 8);
const _: () = assert!(core::mem::offset_of!(GnttabCacheFlush, length) == 10);
const _: () = assert!(core::mem::offset_of!(GnttabCacheFlush, op) == 12);

#[cfg(test)]
mod tests {
    use super::*;

    /// ABI rule: `gnttab_map_grant_ref` is {u64 host_addr @0, u32 flags @8,
    /// u32 ref @12, u16 dom @16, i16 status @18, u32 handle @20, u64
    /// dev_bus_addr @24}.
    #[test]
    fn map_grant_ref_fields_at_xen_offsets() {
        let mut bytes = [0u8; 32];
        bytes[0..8].copy_from_slice(&0xdead_b000u64.to_le_bytes());
        bytes[8..12].copy_from_slice(&GNTMAP_HOST_MAP.to_le_bytes());
        bytes[12..16].copy_from_slice(&9u32.to_le_bytes());
        bytes[16..18].copy_from_slice(&3u16.to_le_bytes());
        bytes[18..20].copy_from_slice(&GNTST_BAD_GNTREF.to_le_bytes());
        bytes[20..24].copy_from_slice(&77u32.to_le_bytes());
        bytes[24..32].copy_from_slice(&0x1000u64.to_le_bytes());
        let m = GnttabMapGrantRef::read_from_bytes(&bytes).unwrap();
        assert_eq!(
            m,
            GnttabMapGrantRef {
                host_addr: 0xdead_b000,
                flags: GNTMAP_HOST_MAP,
                ref_: 9,
                dom: 3,
                status: GNTST_BAD_GNTREF,
                handle: 77,
                dev_bus_addr: 0x1000
            }
        );
        assert_eq!(m.as_bytes(), &bytes);
    }

    /// ABI rule: `gnttab_copy_ptr.u` is an 8-byte union whose `ref` member
    /// overlays the low half of `gmfn`; `domid` follows at byte 8.
    #[test]
    fn copy_ptr_ref_overlays_low_half_of_gmfn() {
        let mut c = GnttabCopy { len: 512, flags: GNTCOPY_SOURCE_GREF, ..Default::default() };
        c.source.set_gref(0x55);
        c.source.domid = 4;
        c.dest.set_gmfn(0x1_0000_0002);
        let b = c.as_bytes();
        assert_eq!(&b[0..4], &0x55u32.to_le_bytes());
        assert_eq!(&b[8..10], &4u16.to_le_bytes());
        assert_eq!(&b[16..24], &0x1_0000_0002u64.to_le_bytes());
        assert_eq!(&b[32..36], &[0x00, 0x02, 0x01, 0x00]);
        let back = GnttabCopy::read_from_bytes(b).unwrap();
        assert_eq!(back.source.gref(), 0x55);
        assert_eq!(back.dest.gmfn(), 0x1_0000_0002);
    }

    /// ABI rule: every v2 entry member starts with the 4-byte header;
    /// `full_page.frame` is at byte 8 and `sub_page.length` at byte 6.
    #[test]
    fn grant_entry_v2_members_share_the_header() {
        let mut e = GrantEntryV2::default();
        e.set_sub_page(GrantEntryV2SubPage {
            hdr: GrantEntryHeader { flags: GTF_PERMIT_ACCESS | GTF_SUB_PAGE, domid: 2 },
            page_off: 0x100,
            length: 0x80,
            frame: 0xabc,
        });
        assert_eq!(e.hdr(), GrantEntryHeader { flags: 0x101, domid: 2 });
        assert_eq!(e.full_page().frame, 0xabc);
        assert_eq!(&e.bytes[6..8], &0x80u16.to_le_bytes());
        e.set_transitive(GrantEntryV2Transitive { hdr: e.hdr(), trans_domid: 5, _pad0: 0, gref: 7 });
        assert_eq!(e.transitive().gref, 7);
        assert_eq!(&e.bytes[8..12], &7u32.to_le_bytes());
    }

    /// ABI rule: a v1 entry is {u16 flags, u16 domid, u32 frame}, 8 bytes, so
    /// a 4 KiB frame holds 512 of them.
    #[test]
    fn grant_entry_v1_round_trips() {
        let e = GrantEntryV1 { flags: GTF_PERMIT_ACCESS | GTF_READONLY, domid: 0, frame: 0x1234 };
        assert_eq!(e.as_bytes(), &[5, 0, 0, 0, 0x34, 0x12, 0, 0]);
        assert_eq!(GrantEntryV1::read_from_bytes(e.as_bytes()).unwrap(), e);
        assert_eq!(4096 / core::mem::size_of::<GrantEntryV1>(), 512);
    }

    /// ABI rule: bits 0-1 of a grant entry's flags are one two-bit type
    /// field (invalid, permit_access, accept_transfer, transitive), not
    /// flags: 3 is transitive, not permit_access plus accept_transfer.
    #[test]
    fn gtf_type_field_is_two_bits() {
        assert_eq!(GTF_TYPE_MASK, 0b11);
        assert_eq!(GrantType::of(0), GrantType::Invalid);
        assert_eq!(GrantType::of(GTF_PERMIT_ACCESS | GTF_READONLY | GTF_READING), GrantType::PermitAccess);
        assert_eq!(GrantType::of(GTF_ACCEPT_TRANSFER | GTF_TRANSFER_COMPLETED), GrantType::AcceptTransfer);
        assert_eq!(GrantType::of(GTF_TRANSITIVE), GrantType::Transitive);
        assert_ne!(GrantType::of(GTF_TRANSITIVE), GrantType::PermitAccess);
        for t in [GrantType::Invalid, GrantType::PermitAccess, GrantType::AcceptTransfer, GrantType::Transitive] {
            assert_eq!(GrantType::of(t.bits() | 0xfffc), t, "only bits 0-1 name the type");
        }
        // No flag lives in the type field.
        assert_eq!(GtfFlags::all().bits() & GTF_TYPE_MASK, 0);
    }

    /// ABI rule: an entry's flags word is the type field plus the GTF_*
    /// bits above it; reading and writing it back keeps every bit,
    /// including ones no GTF_* names.
    #[test]
    fn gtf_flags_round_trip_the_word() {
        let word = GTF_PERMIT_ACCESS | GTF_READONLY | GTF_READING | 0x8000;
        let f = GtfFlags::of(word);
        assert!(f.contains(GtfFlags::READONLY | GtfFlags::READING));
        assert!(!f.contains(GtfFlags::WRITING));
        assert_eq!(f.bits() & GTF_TYPE_MASK, 0, "the type is not among the flags");
        assert_eq!(f.with_type(GrantType::of(word)), word);
        assert_eq!(GtfFlags::READONLY.with_type(GrantType::PermitAccess), 5);
    }

    /// ABI rule: GTF_transfer_committed and GTF_transfer_completed are bits
    /// 2 and 3, the bits of GTF_readonly and GTF_reading, read as such only
    /// in an accept_transfer entry.
    #[test]
    fn gtf_transfer_bits_alias_readonly_and_reading() {
        assert_eq!(GtfFlags::TRANSFER_COMMITTED, GtfFlags::READONLY);
        assert_eq!(GtfFlags::TRANSFER_COMPLETED, GtfFlags::READING);
        let done = (GtfFlags::TRANSFER_COMMITTED | GtfFlags::TRANSFER_COMPLETED).with_type(GrantType::AcceptTransfer);
        assert_eq!(done, 0b1110);
    }

    /// ABI rule: GNTMAP_* bits 0-4; bits 16-31 belong to the guest and are
    /// kept through a set.
    #[test]
    fn gntmap_flags_keep_guest_bits() {
        let f = GntmapFlags::from_bits_retain(GNTMAP_HOST_MAP | GNTMAP_READONLY | 0x5_0000);
        assert!(f.contains(GntmapFlags::HOST_MAP | GntmapFlags::READONLY));
        assert!(!f.contains(GntmapFlags::DEVICE_MAP));
        assert_eq!(f.bits() & GNTMAP_GUEST_AVAIL_MASK, 0x5_0000);
        assert_eq!(GntmapFlags::all().bits(), 0x1f);
    }
}
