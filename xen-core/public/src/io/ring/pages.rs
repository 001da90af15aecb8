//! The shared area under a typed ring: the [`RingPages`] access trait, the
//! errors a ring reports ([`RingError`]), and the ring's geometry
//! ([`Geometry`]: slot count and entry size of a `DEFINE_RING_TYPES` union).
//!
//! Invariant: every access this module makes lies inside the ring's
//! `nr_pages * XEN_PAGE_SIZE` bytes and inside one page (an entry that
//! straddles a page boundary is copied in two pieces), so an implementation
//! over separately mapped grant pages needs no contiguous mapping; an entry
//! is copied exactly once per produce or consume.
#![forbid(unsafe_code)]

use zerocopy::{FromBytes, Immutable, IntoBytes};

use super::{RingIdx, SRING_HEADER_SIZE, ring_size, slot};

/// `XEN_PAGE_SIZE`: the unit of a ring's grant pages.
pub const XEN_PAGE_SIZE: usize = 4096;

/// The largest `ring-page-order` accepted: Linux's
/// `XENBUS_MAX_RING_GRANT_ORDER` (16 pages), which blkback offers as
/// `max-ring-page-order`.
pub const MAX_RING_PAGE_ORDER: u32 = 4;

/// Byte offsets of the header's indices in `struct __name##_sring`.
pub mod off {
    /// `req_prod`.
    pub const REQ_PROD: usize = 0;
    /// `req_event`.
    pub const REQ_EVENT: usize = 4;
    /// `rsp_prod`.
    pub const RSP_PROD: usize = 8;
    /// `rsp_event`.
    pub const RSP_EVENT: usize = 12;
}

/// Access to a ring's shared pages: `2^order` pages of `XEN_PAGE_SIZE`
/// bytes, contiguous in the ring's offset space (page `i` holds offsets
/// `i * XEN_PAGE_SIZE ..`), whatever their mapping.
///
/// The ring calls each method only with ranges inside `nr_pages()` pages
/// that do not cross a page boundary. The peer may write the pages at any
/// time: an implementation reads and writes through volatile or atomic
/// accesses, never through Rust references to the shared bytes.
pub trait RingPages {
    /// Pages in the ring (`1 << ring-page-order`).
    fn nr_pages(&self) -> usize;
    /// Read the index at `off` (4-aligned, in the header) with acquire
    /// ordering: entries the peer wrote before publishing it are visible
    /// after (the `xen_rmb()` after reading a producer index).
    fn load_idx(&self, off: usize) -> RingIdx;
    /// Write the index at `off` with release ordering: entries written
    /// before are visible to the peer first (`xen_wmb()` before publishing
    /// a producer index).
    fn store_idx(&mut self, off: usize, v: RingIdx);
    /// A full barrier (`xen_mb()`): the last index store is visible before
    /// the next index load.
    fn full_barrier(&self);
    /// Copy `buf.len()` bytes from `off` into `buf`.
    fn read(&self, off: usize, buf: &mut [u8]);
    /// Copy `data` to `off`.
    fn write(&mut self, off: usize, data: &[u8]);
}

/// What went wrong on a ring. A `*Overflow`, `*Behind*` or `*Past*` error
/// is the peer's fault ([`RingError::is_peer_fault`]): the driver
/// disconnects that device (as Linux's blkback halts the ring, and netback
/// calls `xenvif_fatal_tx_err`). The others are local misuse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// The shared area is not `2^order` pages with order in
    /// `0..=MAX_RING_PAGE_ORDER`.
    BadPageCount(usize),
    /// Not one entry fits after the header (`__RING_SIZE` is 0).
    EntryTooLarge,
    /// `RING_REQUEST_PROD_OVERFLOW`: the frontend's `req_prod` claims more
    /// requests than the ring holds beyond the backend's last response.
    RequestProdOverflow {
        /// The `req_prod` read from the shared page.
        req_prod: RingIdx,
        /// The backend's private response producer.
        rsp_prod_pvt: RingIdx,
    },
    /// The frontend's `req_prod` went back behind requests the backend has
    /// already consumed.
    RequestProdBehindConsumer {
        /// The `req_prod` read from the shared page.
        req_prod: RingIdx,
        /// The backend's private request consumer.
        req_cons: RingIdx,
    },
    /// `RING_RESPONSE_PROD_OVERFLOW`: the backend's `rsp_prod` claims more
    /// responses than the ring holds (or went back behind `rsp_cons`, which
    /// wraps to the same thing).
    ResponseProdOverflow {
        /// The `rsp_prod` read from the shared page.
        rsp_prod: RingIdx,
        /// The frontend's private response consumer.
        rsp_cons: RingIdx,
    },
    /// The backend's `rsp_prod` passed `req_prod_pvt`: responses to
    /// requests the frontend never made.
    ResponseProdPastRequests {
        /// The `rsp_prod` read from the shared page.
        rsp_prod: RingIdx,
        /// The frontend's private request producer.
        req_prod_pvt: RingIdx,
    },
    /// `RING_FULL`: the frontend has no free request slot.
    Full,
    /// The backend has no consumed request left to answer.
    NoRequestToAnswer,
}

impl RingError {
    /// The peer broke the ring protocol: disconnect the device.
    pub fn is_peer_fault(self) -> bool {
        matches!(
            self,
            RingError::RequestProdOverflow { .. }
                | RingError::RequestProdBehindConsumer { .. }
                | RingError::ResponseProdOverflow { .. }
                | RingError::ResponseProdPastRequests { .. }
        )
    }
}

/// `sizeof(union __name##_sring_entry)`: the larger of the two members,
/// rounded up to the larger alignment, as a C union is laid out.
pub const fn entry_size<Req, Rsp>() -> usize {
    let size = max(core::mem::size_of::<Req>(), core::mem::size_of::<Rsp>());
    let align = max(core::mem::align_of::<Req>(), core::mem::align_of::<Rsp>());
    size.div_ceil(align) * align
}

const fn max(a: usize, b: usize) -> usize {
    if a > b { a } else { b }
}

/// A ring's shape: `nr_ents` slots of `entry` bytes after the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// `RING_SIZE`: slots, a power of two.
    pub size: u32,
    /// Bytes per slot (the union's size).
    pub entry: usize,
}

impl Geometry {
    /// `__RING_SIZE(s, nr_pages * XEN_PAGE_SIZE)` for entries of `Req`
    /// and `Rsp`, after checking the page count.
    pub fn new<Req, Rsp>(nr_pages: usize) -> Result<Geometry, RingError> {
        if !nr_pages.is_power_of_two() || nr_pages > 1 << MAX_RING_PAGE_ORDER {
            return Err(RingError::BadPageCount(nr_pages));
        }
        let entry = entry_size::<Req, Rsp>();
        match ring_size(nr_pages * XEN_PAGE_SIZE, entry) {
            0 => Err(RingError::EntryTooLarge),
            size => Ok(Geometry { size, entry }),
        }
    }

    /// Byte offset of the slot `idx` uses (`RING_GET_REQUEST`): inside
    /// the pages, since `size * entry <= bytes - SRING_HEADER_SIZE`.
    pub fn entry_offset(self, idx: RingIdx) -> usize {
        SRING_HEADER_SIZE + slot(idx, self.size) as usize * self.entry
    }
}

/// Copy the member at slot `idx` out of the ring once (`RING_COPY_*`): the
/// caller validates the copy, never the shared bytes.
pub fn read_entry<T: FromBytes + IntoBytes, M: RingPages>(m: &M, g: Geometry, idx: RingIdx) -> T {
    let mut v = T::new_zeroed();
    read_split(m, g.entry_offset(idx), v.as_mut_bytes());
    v
}

/// Copy `v` into slot `idx` (the union's member at offset 0; the rest of
/// the slot is left as it is, as a C assignment to the member leaves it).
pub fn write_entry<T: IntoBytes + Immutable, M: RingPages>(m: &mut M, g: Geometry, idx: RingIdx, v: &T) {
    write_split(m, g.entry_offset(idx), v.as_bytes());
}

/// Bytes from `off` to the end of its page.
fn page_room(off: usize) -> usize {
    XEN_PAGE_SIZE - off % XEN_PAGE_SIZE
}

/// `m.read` in pieces that never cross a page boundary.
fn read_split<M: RingPages>(m: &M, mut off: usize, mut buf: &mut [u8]) {
    while !buf.is_empty() {
        let (piece, rest) = buf.split_at_mut(page_room(off).min(buf.len()));
        m.read(off, piece);
        off += piece.len();
        buf = rest;
    }
}

/// `m.write` in pieces that never cross a page boundary.
fn write_split<M: RingPages>(m: &mut M, mut off: usize, mut data: &[u8]) {
    while !data.is_empty() {
        let (piece, rest) = data.split_at(page_room(off).min(data.len()));
        m.write(off, piece);
        off += piece.len();
        data = rest;
    }
}
