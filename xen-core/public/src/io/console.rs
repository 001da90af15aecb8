//! The PV console ring: mirrors Xen 4.17's `public/io/console.h`
//! (`struct xencons_interface`): its layout, and the producer and consumer
//! index arithmetic both halves use.
//!
//! Invariant: [`XenconsInterface`] has exactly Xen 4.17's size and offsets
//! (checked at compile time, and the byte-offset constants below are tied to
//! it). Indices are free-running u32 counters; `prod - cons` (with wrapping)
//! is the number of unread bytes and never exceeds the ring size; bytes sit
//! at `index % size`. A producer publishes bytes before moving `prod`; a
//! consumer reads bytes before moving `cons` (the [`RingMem`] implementation
//! supplies the barriers).

use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

/// `XENCONS_RING_IDX`: a free-running ring index.
pub type XenconsRingIdx = u32;

/// `struct xencons_interface`: the console ring page.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenconsInterface {
    /// Backend-to-guest bytes (`in`).
    pub in_: [u8; IN_SIZE as usize],
    /// Guest-to-backend bytes.
    pub out: [u8; OUT_SIZE as usize],
    /// Bytes of `in` consumed by the guest.
    pub in_cons: XenconsRingIdx,
    /// Bytes of `in` produced by the backend.
    pub in_prod: XenconsRingIdx,
    /// Bytes of `out` consumed by the backend.
    pub out_cons: XenconsRingIdx,
    /// Bytes of `out` produced by the guest.
    pub out_prod: XenconsRingIdx,
}
const _: () = assert!(core::mem::size_of::<XenconsInterface>() == 3088);
const _: () = assert!(core::mem::offset_of!(XenconsInterface, out) == OUT);
const _: () = assert!(core::mem::offset_of!(XenconsInterface, in_cons) == IN_CONS);
const _: () = assert!(core::mem::offset_of!(XenconsInterface, in_prod) == IN_PROD);
const _: () = assert!(core::mem::offset_of!(XenconsInterface, out_cons) == OUT_CONS);
const _: () = assert!(core::mem::offset_of!(XenconsInterface, out_prod) == OUT_PROD);

impl Default for XenconsInterface {
    fn default() -> Self {
        Self::new_zeroed()
    }
}

/// `MASK_XENCONS_IDX(idx, in)`: the byte of `in` an index refers to.
pub const fn mask_in_idx(idx: XenconsRingIdx) -> usize {
    (idx & (IN_SIZE - 1)) as usize
}

/// `MASK_XENCONS_IDX(idx, out)`: the byte of `out` an index refers to.
pub const fn mask_out_idx(idx: XenconsRingIdx) -> usize {
    (idx & (OUT_SIZE - 1)) as usize
}

/// Bytes of the `in` ring (backend to guest).
pub const IN_SIZE: u32 = 1024;
/// Bytes of the `out` ring (guest to backend).
pub const OUT_SIZE: u32 = 2048;
/// Offset of `out[]`.
pub const OUT: usize = 1024;
/// Offset of `in_cons`.
pub const IN_CONS: usize = 3072;
/// Offset of `in_prod`.
pub const IN_PROD: usize = 3076;
/// Offset of `out_cons`.
pub const OUT_CONS: usize = 3080;
/// Offset of `out_prod`.
pub const OUT_PROD: usize = 3084;

use super::byte_ring::ByteRing;
pub use super::byte_ring::RingMem;

/// The `in` ring (backend to guest).
pub const IN_RING: ByteRing = ByteRing { data: core::mem::offset_of!(XenconsInterface, in_), size: IN_SIZE, cons: IN_CONS, prod: IN_PROD };
/// The `out` ring (guest to backend).
pub const OUT_RING: ByteRing = ByteRing { data: OUT, size: OUT_SIZE, cons: OUT_CONS, prod: OUT_PROD };

/// Guest side: append as much of `data` to the `out` ring as fits; returns
/// how many bytes went in. A corrupt ring (more unread than its size, as a
/// hostile backend could make it) takes nothing.
pub fn write_out(m: &mut impl RingMem, data: &[u8]) -> usize {
    OUT_RING.produce(m, data)
}

/// Backend side: take up to `buf.len()` unread bytes from the `out` ring;
/// returns how many. A corrupt ring (as a hostile guest could make it) is
/// reset to empty and yields nothing.
pub fn read_out(m: &mut impl RingMem, buf: &mut [u8]) -> usize {
    OUT_RING.consume(m, buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::io::byte_ring::tests::page;

    #[test]
    fn out_ring_wraps_and_fills_exactly() {
        // ABI: xencons_interface out[2048], free-running out_cons/out_prod
        // at 3080/3084, bytes at MASK_XENCONS_IDX(idx, out).
        let mut p = page();
        p.store(OUT_CONS, u32::MAX - 10);
        p.store(OUT_PROD, u32::MAX - 10);
        let data: std::vec::Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        assert_eq!(write_out(&mut p, &data), 2048, "fills to the ring size, no further");
        assert_eq!(write_out(&mut p, b"x"), 0, "full");
        let mut buf = [0u8; 1000];
        assert_eq!(read_out(&mut p, &mut buf), 1000);
        assert_eq!(&buf[..], &data[..1000]);
        assert_eq!(write_out(&mut p, &data[2048..]), 952);
        let mut rest = std::vec![0u8; 4000];
        assert_eq!(read_out(&mut p, &mut rest), 2000);
        assert_eq!(&rest[..2000], &data[1000..]);
    }

    /// ABI rule: `xencons_interface` is in[1024], out[2048], then in_cons,
    /// in_prod, out_cons, out_prod as u32s at 3072..3088; indices are masked
    /// by each ring's size.
    #[test]
    fn interface_fields_at_xen_offsets() {
        let mut page = std::vec![0u8; 4096];
        page[OUT] = b'h';
        page[IN_PROD..IN_PROD + 4].copy_from_slice(&3u32.to_le_bytes());
        page[OUT_PROD..OUT_PROD + 4].copy_from_slice(&1u32.to_le_bytes());
        let (i, _) = XenconsInterface::read_from_prefix(&page).unwrap();
        assert_eq!((i.out[0], i.in_prod, i.out_prod, i.in_cons), (b'h', 3, 1, 0));
        assert_eq!(i.as_bytes(), &page[..3088]);
        assert_eq!((mask_in_idx(1025), mask_out_idx(2049), mask_out_idx(u32::MAX)), (1, 1, 2047));
    }

    #[test]
    fn corrupt_indices_are_not_trusted() {
        // A hostile peer sets prod far ahead of cons: nothing is read past
        // the ring, and the backend resynchronises.
        let mut p = page();
        p.store(OUT_CONS, 0);
        p.store(OUT_PROD, 100_000);
        let mut buf = [0u8; 16];
        assert_eq!(read_out(&mut p, &mut buf), 0);
        assert_eq!(p.load(OUT_CONS), 100_000);
        p.store(OUT_PROD, 5000);
        p.store(OUT_CONS, 0);
        assert_eq!(write_out(&mut p, b"hello"), 0);
    }
}
