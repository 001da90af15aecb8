//! Shared I/O rings: mirrors Xen 4.17's `public/io/ring.h`.
//!
//! A shared ring page is a 64-byte [`SringHeader`] followed by `ring_size`
//! entries, each the union of a request and a response; `ring_size` is the
//! largest power of two that fits ([`ring_size`]). The functions here are the
//! pure index arithmetic of the C macros (`RING_IDX` is a free-running u32,
//! so everything wraps): which slot an index uses, how many requests are
//! free or unconsumed, whether a peer's index is impossible, and whether a
//! push must notify the other end ([`need_notify`]).
//!
//! On top of the arithmetic, the typed halves `DEFINE_RING_TYPES` declares:
//! [`FrontRing`] and [`BackRing`] over a ring's shared pages ([`RingPages`],
//! one page or `2^ring-page-order`), with the init, produce, push-and-check-
//! notify, consume and final-check macros of ring.h, each copying an entry
//! out once and checking every index read from the shared page first
//! ([`RingError`]). They live here, next to the ABI, because ring.h itself
//! defines them and both `frontend-drivers` and `backend-drivers` (and the
//! guest kernel and dom0 behind them) already depend on this crate; they
//! hold no driver policy: no event channel, grant or request-id handling,
//! no decision what a peer's fault costs (the drivers disconnect the
//! device), only the macros' mechanism and the checks that keep a hostile
//! peer's indices from making either side read or write outside the ring
//! or past what the other side produced. [`fuzz`] drives them against a
//! scribbling third party (`cargo xtask fuzz-ring`).
//!
//! Invariant: the header is 64 bytes with the entries at offset 64, as in
//! Xen 4.17 (checked at compile time), and every function computes exactly
//! what its C macro computes with 32-bit unsigned wrap-around.
#![forbid(unsafe_code)]

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

mod back;
mod front;
pub mod fuzz;
mod pages;
#[cfg(test)]
mod typed_tests;

pub use back::BackRing;
pub use front::{FrontRing, Pushed};
pub use pages::{Geometry, MAX_RING_PAGE_ORDER, RingError, RingPages, XEN_PAGE_SIZE, entry_size, off, read_entry, write_entry};

/// `RING_IDX`: a free-running ring index.
pub type RingIdx = u32;

/// Byte offset of `ring[]` in a shared ring page (the header's size).
pub const SRING_HEADER_SIZE: usize = 64;

/// The header of `struct __name##_sring` made by `DEFINE_RING_TYPES`.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, PartialEq, Eq)]
pub struct SringHeader {
    /// Requests produced by the frontend.
    pub req_prod: RingIdx,
    /// The backend wants a notification when `req_prod` passes this.
    pub req_event: RingIdx,
    /// Responses produced by the backend.
    pub rsp_prod: RingIdx,
    /// The frontend wants a notification when `rsp_prod` passes this.
    pub rsp_event: RingIdx,
    /// The union `pvt` (protocol-private bytes, e.g. netif's
    /// `smartpoll_active`).
    pub pvt: [u8; 4],
    /// Padding up to the entries; zero.
    pub _pad: [u8; 44],
}
const _: () = assert!(core::mem::size_of::<SringHeader>() == SRING_HEADER_SIZE);
const _: () = assert!(core::mem::offset_of!(SringHeader, req_event) == 4);
const _: () = assert!(core::mem::offset_of!(SringHeader, rsp_prod) == 8);
const _: () = assert!(core::mem::offset_of!(SringHeader, rsp_event) == 12);
const _: () = assert!(core::mem::offset_of!(SringHeader, pvt) == 16);
const _: () = assert!(core::mem::offset_of!(SringHeader, _pad) == 20);

impl SringHeader {
    /// An empty ring as `SHARED_RING_INIT` leaves it: both producers 0,
    /// both event indices 1, private bytes zero.
    pub const fn new() -> Self {
        SringHeader { req_prod: 0, req_event: 1, rsp_prod: 0, rsp_event: 1, pvt: [0; 4], _pad: [0; 44] }
    }
}

impl Default for SringHeader {
    fn default() -> Self {
        Self::new()
    }
}

/// `__RD32`: `x` rounded down to a power of two (0 stays 0).
pub const fn round_down_pow2(x: u32) -> u32 {
    if x == 0 { 0 } else { 1 << (31 - x.leading_zeros()) }
}

/// `__CONST_RING_SIZE`: entries of `entry_bytes` (the size of the
/// request/response union) in a shared ring of `page_bytes`, after the
/// 64-byte header, rounded down to a power of two. 0 if none fit.
pub const fn ring_size(page_bytes: usize, entry_bytes: usize) -> u32 {
    if entry_bytes == 0 || page_bytes < SRING_HEADER_SIZE {
        return 0;
    }
    let n = (page_bytes - SRING_HEADER_SIZE) / entry_bytes;
    round_down_pow2(if n > u32::MAX as usize { u32::MAX } else { n as u32 })
}

/// The slot `idx` uses in a ring of `size` (a power of two) entries
/// (`RING_GET_REQUEST` / `RING_GET_RESPONSE`).
pub const fn slot(idx: RingIdx, size: u32) -> u32 {
    idx & size.wrapping_sub(1)
}

/// `RING_PUSH_{REQUESTS,RESPONSES}_AND_CHECK_NOTIFY`: after moving a
/// producer index from `old` to `new`, the peer must be notified iff its
/// event index lies in `(old, new]`, i.e. `(RING_IDX)(new - event) <
/// (RING_IDX)(new - old)` with wrap-around.
pub const fn need_notify(old: RingIdx, new: RingIdx, event: RingIdx) -> bool {
    new.wrapping_sub(event) < new.wrapping_sub(old)
}

/// `RING_FREE_REQUESTS`: request slots the frontend may still fill.
pub const fn free_requests(size: u32, req_prod_pvt: RingIdx, rsp_cons: RingIdx) -> u32 {
    size.wrapping_sub(req_prod_pvt.wrapping_sub(rsp_cons))
}

/// `XEN_RING_NR_UNCONSUMED_RESPONSES`: responses the frontend has not read.
pub const fn unconsumed_responses(rsp_prod: RingIdx, rsp_cons: RingIdx) -> u32 {
    rsp_prod.wrapping_sub(rsp_cons)
}

/// `XEN_RING_NR_UNCONSUMED_REQUESTS`: requests the backend has not read,
/// never more than the slots not holding unread responses (so a frontend
/// that pushes `req_prod` too far cannot make the backend overrun).
pub const fn unconsumed_requests(size: u32, req_prod: RingIdx, req_cons: RingIdx, rsp_prod_pvt: RingIdx) -> u32 {
    let req = req_prod.wrapping_sub(req_cons);
    let rsp = size.wrapping_sub(req_cons.wrapping_sub(rsp_prod_pvt));
    if req < rsp { req } else { rsp }
}

/// `RING_REQUEST_CONS_OVERFLOW`: consuming request `cons` would overrun the
/// responses not yet produced.
pub const fn request_cons_overflow(size: u32, cons: RingIdx, rsp_prod_pvt: RingIdx) -> bool {
    cons.wrapping_sub(rsp_prod_pvt) >= size
}

/// `RING_REQUEST_PROD_OVERFLOW`: a frontend's `prod` claims more requests
/// than the ring can hold (an ill-behaved frontend).
pub const fn request_prod_overflow(size: u32, prod: RingIdx, rsp_prod_pvt: RingIdx) -> bool {
    prod.wrapping_sub(rsp_prod_pvt) > size
}

/// `RING_RESPONSE_PROD_OVERFLOW`: a backend's `prod` claims more responses
/// than the ring can hold (an ill-behaved backend).
pub const fn response_prod_overflow(size: u32, prod: RingIdx, rsp_cons: RingIdx) -> bool {
    prod.wrapping_sub(rsp_cons) > size
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ABI rule: `__RD32` rounds down to a power of two and leaves 0 at 0.
    #[test]
    fn rd32_rounds_down_to_power_of_two() {
        assert_eq!(round_down_pow2(0), 0);
        assert_eq!(round_down_pow2(1), 1);
        assert_eq!(round_down_pow2(36), 32);
        assert_eq!(round_down_pow2(64), 64);
        assert_eq!(round_down_pow2(u32::MAX), 1 << 31);
    }

    /// ABI rule: `__CONST_RING_SIZE` counts entries after the 64-byte header
    /// and rounds down: blkif (112-byte entries) has 32 slots per page,
    /// netif tx (12) and rx (8) 256, a 64-byte entry 32 (63 fit).
    #[test]
    fn ring_size_is_power_of_two_after_header() {
        assert_eq!(ring_size(4096, 112), 32);
        assert_eq!(ring_size(4096, 12), 256);
        assert_eq!(ring_size(4096, 8), 256);
        assert_eq!(ring_size(4096, 64), 32);
        assert_eq!(ring_size(4 * 4096, 112), 128);
        assert_eq!(ring_size(64, 8), 0);
        assert_eq!(ring_size(32, 8), 0);
        assert_eq!(ring_size(4096, 0), 0);
        assert_eq!(ring_size(4096, 5000), 0);
    }

    /// ABI rule: `SHARED_RING_INIT` sets both producers to 0 and both event
    /// indices to 1, in a 64-byte header laid out req_prod, req_event,
    /// rsp_prod, rsp_event.
    #[test]
    fn shared_ring_init_layout() {
        let h = SringHeader::new();
        let b = h.as_bytes();
        assert_eq!(&b[..16], &[0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
        assert!(b[16..].iter().all(|&x| x == 0));
        assert_eq!(SringHeader::read_from_bytes(b).unwrap(), h);
    }

    /// ABI rule: notify iff the peer's event index is in (old, new]; a
    /// first push of one request onto a fresh ring (event 1) notifies.
    #[test]
    fn need_notify_event_in_pushed_range() {
        assert!(need_notify(0, 1, 1));
        assert!(need_notify(0, 5, 3));
        assert!(need_notify(0, 5, 5));
        assert!(!need_notify(0, 5, 6), "peer wants a later index");
        assert!(!need_notify(4, 5, 4), "event at old: already notified by the last push");
        assert!(!need_notify(5, 5, 5), "nothing pushed");
    }

    /// ABI rule: the notify test uses wrapping u32 differences, so a push
    /// across 2^32 behaves like any other.
    #[test]
    fn need_notify_wraps_around_u32() {
        let old = u32::MAX - 1;
        let new = 1; // three requests pushed: the producer moved from MAX - 1 to 1
        assert!(need_notify(old, new, u32::MAX));
        assert!(need_notify(old, new, 0));
        assert!(need_notify(old, new, 1));
        assert!(!need_notify(old, new, 2));
        assert!(!need_notify(old, new, old));
        assert!(!need_notify(old, new, u32::MAX - 10));
    }

    /// ABI rule: indices are free-running and a slot is `idx & (size - 1)`;
    /// free and unconsumed counts are wrapping differences.
    #[test]
    fn counts_wrap_around_u32() {
        assert_eq!(slot(u32::MAX, 32), 31);
        assert_eq!(slot(u32::MAX.wrapping_add(1), 32), 0);
        // 8 requests outstanding across the wrap.
        assert_eq!(free_requests(32, 5, u32::MAX - 2), 24);
        assert_eq!(unconsumed_responses(3, u32::MAX - 1), 5);
        assert_eq!(unconsumed_requests(32, 2, u32::MAX, u32::MAX), 3);
    }

    /// ABI rule: unconsumed requests are capped by the slots not holding
    /// unread responses, and the overflow checks catch a peer's impossible
    /// producer index.
    #[test]
    fn ill_behaved_peer_is_bounded() {
        // A frontend claims 1000 requests on a 32-slot ring.
        assert_eq!(unconsumed_requests(32, 1000, 0, 0), 32);
        assert!(request_prod_overflow(32, 1000, 0));
        assert!(!request_prod_overflow(32, 32, 0));
        assert!(request_prod_overflow(32, 33u32.wrapping_add(u32::MAX - 3), u32::MAX - 3));
        // Backend: consuming index 32 before answering any would overrun.
        assert!(request_cons_overflow(32, 32, 0));
        assert!(!request_cons_overflow(32, 31, 0));
        assert!(response_prod_overflow(32, 40, 7));
        assert!(!response_prod_overflow(32, 39, 7));
    }
}
