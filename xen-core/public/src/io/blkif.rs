//! The block device protocol: mirrors Xen 4.17's `public/io/blkif.h`.
//!
//! Holds the `BLKIF_OP_*` operations, the request formats (plain, discard,
//! indirect), the response, the status codes, the `VDISK_*` info flags and
//! the ring's slot count. Invariant: every structure has exactly the x86_64
//! size and field offsets Xen 4.17 gives it (a request is 112 bytes, a
//! response 16), checked at compile time.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::ring;

/// `BLKIF_OP_READ`.
pub const BLKIF_OP_READ: u8 = 0;
/// `BLKIF_OP_WRITE`.
pub const BLKIF_OP_WRITE: u8 = 1;
/// `BLKIF_OP_WRITE_BARRIER`: a write ordered after all earlier ones.
pub const BLKIF_OP_WRITE_BARRIER: u8 = 2;
/// `BLKIF_OP_FLUSH_DISKCACHE`: flush the backend's write cache.
pub const BLKIF_OP_FLUSH_DISKCACHE: u8 = 3;
/// `BLKIF_OP_RESERVED_1`: used by one vendor; do not use.
pub const BLKIF_OP_RESERVED_1: u8 = 4;
/// `BLKIF_OP_DISCARD`: [`BlkifRequestDiscard`].
pub const BLKIF_OP_DISCARD: u8 = 5;
/// `BLKIF_OP_INDIRECT`: [`BlkifRequestIndirect`].
pub const BLKIF_OP_INDIRECT: u8 = 6;

/// `BLKIF_MAX_SEGMENTS_PER_REQUEST`: segments in a plain request.
pub const BLKIF_MAX_SEGMENTS_PER_REQUEST: usize = 11;
/// `BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST`: indirect pages in an indirect request.
pub const BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST: usize = 8;
/// `BLKIF_SEGS_PER_INDIRECT_FRAME`: segments in one 4 KiB indirect page.
pub const BLKIF_SEGS_PER_INDIRECT_FRAME: usize = 4096 / core::mem::size_of::<BlkifRequestSegment>();
/// `BLKIF_DISCARD_SECURE`: discard flag: erase securely.
pub const BLKIF_DISCARD_SECURE: u8 = 1 << 0;

/// `BLKIF_RSP_EOPNOTSUPP`: the operation is not supported.
pub const BLKIF_RSP_EOPNOTSUPP: i16 = -2;
/// `BLKIF_RSP_ERROR`: the operation failed.
pub const BLKIF_RSP_ERROR: i16 = -1;
/// `BLKIF_RSP_OKAY`.
pub const BLKIF_RSP_OKAY: i16 = 0;

/// `VDISK_CDROM`: the disk is a CD-ROM (xenstore `info`).
pub const VDISK_CDROM: u32 = 0x1;
/// `VDISK_REMOVABLE`: removable media.
pub const VDISK_REMOVABLE: u32 = 0x2;
/// `VDISK_READONLY`: read-only.
pub const VDISK_READONLY: u32 = 0x4;

/// Sector size the protocol counts in.
pub const BLKIF_SECTOR_SIZE: u64 = 512;

/// `struct blkif_request_segment`: one granted page of an I/O.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlkifRequestSegment {
    /// Grant of the buffer page.
    pub gref: u32,
    /// First 512-byte sector of the page used (inclusive).
    pub first_sect: u8,
    /// Last sector used (inclusive).
    pub last_sect: u8,
    /// Padding; zero.
    pub _pad0: u16,
}
const _: () = assert!(core::mem::size_of::<BlkifRequestSegment>() == 8);
const _: () = assert!(core::mem::offset_of!(BlkifRequestSegment, first_sect) == 4);
const _: () = assert!(core::mem::offset_of!(BlkifRequestSegment, last_sect) == 5);

/// `struct blkif_request`: a read, write, barrier or flush.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlkifRequest {
    /// `BLKIF_OP_*`.
    pub operation: u8,
    /// Segments used in `seg`.
    pub nr_segments: u8,
    /// The virtual device (read/write only).
    pub handle: u16,
    /// Padding; zero.
    pub _pad0: u32,
    /// Frontend cookie, echoed in the response.
    pub id: u64,
    /// First 512-byte sector on the disk.
    pub sector_number: u64,
    /// The buffer pages.
    pub seg: [BlkifRequestSegment; BLKIF_MAX_SEGMENTS_PER_REQUEST],
}
const _: () = assert!(core::mem::size_of::<BlkifRequest>() == 112);
const _: () = assert!(core::mem::offset_of!(BlkifRequest, nr_segments) == 1);
const _: () = assert!(core::mem::offset_of!(BlkifRequest, handle) == 2);
const _: () = assert!(core::mem::offset_of!(BlkifRequest, id) == 8);
const _: () = assert!(core::mem::offset_of!(BlkifRequest, sector_number) == 16);
const _: () = assert!(core::mem::offset_of!(BlkifRequest, seg) == 24);

/// `struct blkif_request_discard`: discard a sector range.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlkifRequestDiscard {
    /// [`BLKIF_OP_DISCARD`].
    pub operation: u8,
    /// [`BLKIF_DISCARD_SECURE`] or 0.
    pub flag: u8,
    /// The virtual device.
    pub handle: u16,
    /// Padding; zero.
    pub _pad0: u32,
    /// Frontend cookie.
    pub id: u64,
    /// First sector.
    pub sector_number: u64,
    /// Sectors to discard.
    pub nr_sectors: u64,
}
const _: () = assert!(core::mem::size_of::<BlkifRequestDiscard>() == 32);
const _: () = assert!(core::mem::offset_of!(BlkifRequestDiscard, id) == 8);
const _: () = assert!(core::mem::offset_of!(BlkifRequestDiscard, nr_sectors) == 24);

/// `struct blkif_request_indirect`: an I/O whose segments are listed in
/// granted indirect pages.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlkifRequestIndirect {
    /// [`BLKIF_OP_INDIRECT`].
    pub operation: u8,
    /// The real operation, read or write.
    pub indirect_op: u8,
    /// Segments in the indirect pages.
    pub nr_segments: u16,
    /// Padding; zero.
    pub _pad0: u32,
    /// Frontend cookie.
    pub id: u64,
    /// First sector.
    pub sector_number: u64,
    /// The virtual device.
    pub handle: u16,
    /// Padding; zero.
    pub _pad1: u16,
    /// Grants of the pages holding [`BlkifRequestSegment`]s.
    pub indirect_grefs: [u32; BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST],
    /// Padding; zero.
    pub _pad2: u32,
}
const _: () = assert!(core::mem::size_of::<BlkifRequestIndirect>() == 64);
const _: () = assert!(core::mem::offset_of!(BlkifRequestIndirect, nr_segments) == 2);
const _: () = assert!(core::mem::offset_of!(BlkifRequestIndirect, id) == 8);
const _: () = assert!(core::mem::offset_of!(BlkifRequestIndirect, sector_number) == 16);
const _: () = assert!(core::mem::offset_of!(BlkifRequestIndirect, handle) == 24);
const _: () = assert!(core::mem::offset_of!(BlkifRequestIndirect, indirect_grefs) == 28);

/// `struct blkif_response`.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlkifResponse {
    /// The request's `id`.
    pub id: u64,
    /// The request's operation.
    pub operation: u8,
    /// Padding; zero.
    pub _pad0: u8,
    /// `BLKIF_RSP_*`.
    pub status: i16,
    /// Padding; zero.
    pub _pad1: u32,
}
const _: () = assert!(core::mem::size_of::<BlkifResponse>() == 16);
const _: () = assert!(core::mem::offset_of!(BlkifResponse, operation) == 8);
const _: () = assert!(core::mem::offset_of!(BlkifResponse, status) == 10);

/// Bytes of one ring entry (the request/response union).
pub const BLKIF_RING_ENTRY_SIZE: usize = core::mem::size_of::<BlkifRequest>();
const _: () = assert!(core::mem::size_of::<BlkifResponse>() <= BLKIF_RING_ENTRY_SIZE);
/// Slots in a one-page blkif ring (`__CONST_RING_SIZE(blkif, 4096)`).
pub const BLKIF_RING_SIZE: u32 = ring::ring_size(4096, BLKIF_RING_ENTRY_SIZE);
const _: () = assert!(BLKIF_RING_SIZE == 32);

#[cfg(test)]
mod tests {
    use super::*;

    /// ABI rule: a request is {u8 op, u8 nr_segments, u16 handle, pad, u64 id
    /// @8, u64 sector @16, seg[11] @24 of {u32 gref, u8 first, u8 last, pad}}.
    #[test]
    fn request_fields_at_xen_offsets() {
        let mut r = BlkifRequest { operation: BLKIF_OP_WRITE, nr_segments: 2, handle: 51712, id: 0xfeed, sector_number: 2048, ..Default::default() };
        r.seg[1] = BlkifRequestSegment { gref: 9, first_sect: 0, last_sect: 7, _pad0: 0 };
        let b = r.as_bytes();
        assert_eq!(b.len(), 112);
        assert_eq!(&b[0..4], &[1, 2, 0x00, 0xca]);
        assert_eq!(&b[8..16], &0xfeedu64.to_le_bytes());
        assert_eq!(&b[16..24], &2048u64.to_le_bytes());
        assert_eq!(&b[32..38], &[9, 0, 0, 0, 0, 7]);
        assert_eq!(BlkifRequest::read_from_bytes(b).unwrap(), r);
    }

    /// ABI rule: a response is {u64 id, u8 operation @8, i16 status @10},
    /// 16 bytes.
    #[test]
    fn response_status_at_byte_10() {
        let mut bytes = [0u8; 16];
        bytes[0..8].copy_from_slice(&0xfeedu64.to_le_bytes());
        bytes[8] = BLKIF_OP_READ;
        bytes[10..12].copy_from_slice(&BLKIF_RSP_EOPNOTSUPP.to_le_bytes());
        let r = BlkifResponse::read_from_bytes(&bytes).unwrap();
        assert_eq!((r.id, r.operation, r.status), (0xfeed, BLKIF_OP_READ, -2));
        assert_eq!(r.as_bytes(), &bytes);
    }

    /// ABI rule: an indirect request keeps its handle at 24 and its grants
    /// at 28 in a 64-byte struct; an indirect page holds 512 segments.
    #[test]
    fn indirect_request_layout() {
        let r = BlkifRequestIndirect {
            operation: BLKIF_OP_INDIRECT,
            indirect_op: BLKIF_OP_READ,
            nr_segments: 600,
            handle: 3,
            indirect_grefs: [10, 11, 0, 0, 0, 0, 0, 0],
            ..Default::default()
        };
        let b = r.as_bytes();
        assert_eq!(&b[0..4], &[6, 0, 0x58, 0x02]);
        assert_eq!(&b[24..26], &3u16.to_le_bytes());
        assert_eq!(&b[28..36], &[10, 0, 0, 0, 11, 0, 0, 0]);
        assert_eq!(BLKIF_SEGS_PER_INDIRECT_FRAME, 512);
    }
}
