//! blkfront's request side, as pure logic: building `io/blkif.h` requests
//! (plain, indirect, discard) over a slot's granted pages, tracking which
//! slot a response's `id` belongs to, and the disk pattern the boot tests
//! write and check (also checked from the host).
//!
//! Invariants: a request never names more segments than its form allows
//! (11 plain, the backend's offer indirect), every segment lies inside its
//! page (`first_sect <= last_sect <= 7`); a response is accepted only for
//! an `id` that is in flight, once: an unknown, repeated or out-of-range id
//! from the backend is a [`SlotError`], never an index out of bounds.
#![forbid(unsafe_code)]

use xen_public::io::blkif::{
    BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST, BLKIF_MAX_SEGMENTS_PER_REQUEST, BLKIF_OP_DISCARD, BLKIF_OP_INDIRECT, BlkifRequest, BlkifRequestDiscard,
    BlkifRequestIndirect, BlkifRequestSegment,
};
use zerocopy::IntoBytes;

/// Bytes per sector.
pub const SECTOR: usize = 512;
/// Sectors per page.
pub const SECTORS_PER_PAGE: usize = 8;

/// The segments covering `bytes` (whole sectors, at most `grefs.len()`
/// pages) from the start of consecutive pages `grefs`: full pages, then
/// the part of the last one.
pub fn segments(grefs: &[u32], bytes: usize) -> impl Iterator<Item = BlkifRequestSegment> + '_ {
    let sectors = bytes / SECTOR;
    grefs.iter().enumerate().take(sectors.div_ceil(SECTORS_PER_PAGE)).map(move |(i, &gref)| {
        let left = sectors - i * SECTORS_PER_PAGE;
        let last = left.min(SECTORS_PER_PAGE) as u8 - 1;
        BlkifRequestSegment { gref, first_sect: 0, last_sect: last, ..Default::default() }
    })
}

/// A plain read or write of `bytes` from `sector` over pages `grefs`
/// (at most 11 pages' worth).
pub fn rw_request(op: u8, id: u64, handle: u16, sector: u64, grefs: &[u32], bytes: usize) -> BlkifRequest {
    let mut r = BlkifRequest { operation: op, handle, id, sector_number: sector, ..Default::default() };
    for (slot, seg) in r.seg.iter_mut().zip(segments(grefs, bytes).take(BLKIF_MAX_SEGMENTS_PER_REQUEST)) {
        *slot = seg;
        r.nr_segments += 1;
    }
    r
}

/// Fill indirect page `list` (as bytes) with the segments of `bytes` over
/// `grefs`; the count written.
pub fn fill_indirect(list: &mut [u8], grefs: &[u32], bytes: usize) -> u16 {
    let mut n = 0;
    for (chunk, seg) in list.chunks_exact_mut(core::mem::size_of::<BlkifRequestSegment>()).zip(segments(grefs, bytes)) {
        chunk.copy_from_slice(seg.as_bytes());
        n += 1;
    }
    n
}

/// An indirect read or write of `nr_segments` listed in the pages behind
/// `indirect_grefs` (at most 8).
pub fn indirect_request(op: u8, id: u64, handle: u16, sector: u64, nr_segments: u16, indirect_grefs: &[u32]) -> BlkifRequest {
    let mut ind =
        BlkifRequestIndirect { operation: BLKIF_OP_INDIRECT, indirect_op: op, nr_segments, id, sector_number: sector, handle, ..Default::default() };
    for (slot, g) in ind.indirect_grefs.iter_mut().zip(indirect_grefs.iter().take(BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST)) {
        *slot = *g;
    }
    as_request(ind.as_bytes())
}

/// A discard of `nr_sectors` from `sector`.
pub fn discard_request(id: u64, handle: u16, sector: u64, nr_sectors: u64) -> BlkifRequest {
    let d = BlkifRequestDiscard { operation: BLKIF_OP_DISCARD, handle, id, sector_number: sector, nr_sectors, ..Default::default() };
    as_request(d.as_bytes())
}

/// A ring entry holding `bytes` (a smaller member of the request union).
fn as_request(bytes: &[u8]) -> BlkifRequest {
    let mut r = BlkifRequest::default();
    let n = bytes.len().min(core::mem::size_of::<BlkifRequest>());
    r.as_mut_bytes()[..n].copy_from_slice(&bytes[..n]);
    r
}

/// A response the backend should not have sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotError(pub u64);

/// Which of `N` request slots are in flight; a slot's index is its
/// request's `id`.
#[derive(Clone, Debug)]
pub struct Slots<const N: usize> {
    busy: [bool; N],
}

impl<const N: usize> Default for Slots<N> {
    fn default() -> Self {
        Slots { busy: [false; N] }
    }
}

impl<const N: usize> Slots<N> {
    /// A free slot, now in flight.
    pub fn take(&mut self) -> Option<usize> {
        let i = self.busy.iter().position(|b| !b)?;
        self.busy[i] = true;
        Some(i)
    }

    /// The response with `id` arrived: its slot, now free.
    pub fn complete(&mut self, id: u64) -> Result<usize, SlotError> {
        let i = usize::try_from(id).ok().filter(|i| *i < N).ok_or(SlotError(id))?;
        if !self.busy[i] {
            return Err(SlotError(id));
        }
        self.busy[i] = false;
        Ok(i)
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.busy.iter().filter(|b| **b).count()
    }
}

/// The test pattern's 8-byte little-endian word at disk byte `offset` (a
/// multiple of 8) for `seed`: every writer of a test pattern (a guest
/// through blkfront, dom0 on its disk, the host before booting) has its own
/// seed, so a check tells whose bytes it found.
pub fn pattern_word(seed: u64, offset: u64) -> u64 {
    offset.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ seed
}

/// The seed of the pattern the demo guest writes through blkfront.
pub const GUEST_SEED: u64 = u64::from_le_bytes(*b"blkfront");

/// Fill `buf` (whole words) with `seed`'s pattern of the disk bytes from
/// `offset` (a multiple of 8).
pub fn fill_pattern(seed: u64, offset: u64, buf: &mut [u8]) {
    for (i, w) in buf.chunks_exact_mut(8).enumerate() {
        w.copy_from_slice(&pattern_word(seed, offset + i as u64 * 8).to_le_bytes());
    }
}

/// The disk offset of the first word of `buf` (read from `offset`) that
/// differs from `seed`'s pattern, if any.
pub fn pattern_mismatch(seed: u64, offset: u64, buf: &[u8]) -> Option<u64> {
    buf.chunks_exact(8).enumerate().find(|(i, w)| **w != pattern_word(seed, offset + *i as u64 * 8).to_le_bytes()).map(|(i, _)| offset + i as u64 * 8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use xen_public::io::blkif::{BLKIF_OP_READ, BLKIF_OP_WRITE};

    #[test]
    fn blkif_segments_cover_whole_pages_then_the_tail_sectors() {
        let segs: heapless::Vec<_, 8> = segments(&[10, 11, 12], 2 * 4096 + 3 * 512).collect();
        assert_eq!(segs.len(), 3);
        assert_eq!((segs[0].gref, segs[0].first_sect, segs[0].last_sect), (10, 0, 7));
        assert_eq!((segs[2].gref, segs[2].first_sect, segs[2].last_sect), (12, 0, 2));
        assert_eq!(segments(&[1, 2], 512).count(), 1);
        assert_eq!(segments(&[1, 2], 100 * 4096).count(), 2, "never more pages than granted");
    }

    #[test]
    fn blkif_plain_request_holds_at_most_11_segments() {
        let grefs: [u32; 16] = core::array::from_fn(|i| i as u32 + 100);
        let r = rw_request(BLKIF_OP_WRITE, 3, 51712, 64, &grefs, 16 * 4096);
        assert_eq!((r.operation, r.nr_segments, r.id, r.sector_number, r.handle), (BLKIF_OP_WRITE, 11, 3, 64, 51712));
        assert_eq!(r.seg[10].gref, 110);
    }

    #[test]
    fn blkif_indirect_request_layout_is_blkif_request_indirect() {
        let r = indirect_request(BLKIF_OP_READ, 5, 51712, 8, 32, &[77]);
        let b = r.as_bytes();
        assert_eq!((b[0], b[1], u16::from_le_bytes([b[2], b[3]])), (BLKIF_OP_INDIRECT, BLKIF_OP_READ, 32));
        assert_eq!(u64::from_le_bytes(b[8..16].try_into().unwrap()), 5);
        assert_eq!(u64::from_le_bytes(b[16..24].try_into().unwrap()), 8);
        assert_eq!(u16::from_le_bytes([b[24], b[25]]), 51712);
        assert_eq!(u32::from_le_bytes(b[28..32].try_into().unwrap()), 77);
        let mut list = [0u8; 4096];
        let grefs: [u32; 32] = core::array::from_fn(|i| i as u32);
        assert_eq!(fill_indirect(&mut list, &grefs, 32 * 4096), 32);
        assert_eq!(u32::from_le_bytes(list[8..12].try_into().unwrap()), 1);
        assert_eq!((list[12], list[13]), (0, 7));
    }

    #[test]
    fn blkif_discard_request_layout_is_blkif_request_discard() {
        let r = discard_request(9, 51712, 100, 8);
        let b = r.as_bytes();
        assert_eq!(b[0], BLKIF_OP_DISCARD);
        assert_eq!(u64::from_le_bytes(b[8..16].try_into().unwrap()), 9);
        assert_eq!(u64::from_le_bytes(b[16..24].try_into().unwrap()), 100);
        assert_eq!(u64::from_le_bytes(b[24..32].try_into().unwrap()), 8);
    }

    #[test]
    fn a_response_is_taken_once_and_only_for_an_id_in_flight() {
        let mut s: Slots<4> = Slots::default();
        let a = s.take().unwrap();
        assert_eq!(s.complete(a as u64), Ok(a));
        assert_eq!(s.complete(a as u64), Err(SlotError(a as u64)), "repeated id");
        assert_eq!(s.complete(4), Err(SlotError(4)), "past the slots");
        assert_eq!(s.complete(u64::MAX), Err(SlotError(u64::MAX)));
        for _ in 0..4 {
            s.take().unwrap();
        }
        assert_eq!(s.take(), None);
        assert_eq!(s.in_flight(), 4);
    }

    #[test]
    fn pattern_round_trips_and_finds_the_first_bad_word() {
        let mut buf = [0u8; 1024];
        fill_pattern(GUEST_SEED, 4096, &mut buf);
        assert_eq!(pattern_mismatch(GUEST_SEED, 4096, &buf), None);
        assert_eq!(pattern_mismatch(GUEST_SEED, 0, &buf), Some(0), "the pattern depends on the offset");
        assert_eq!(pattern_mismatch(GUEST_SEED, 4104, &buf), Some(4104), "even shifted by a word");
        assert_eq!(pattern_mismatch(GUEST_SEED ^ 1, 4096, &buf), Some(4096), "and on the seed");
        buf[520] ^= 1;
        assert_eq!(pattern_mismatch(GUEST_SEED, 4096, &buf), Some(4096 + 520));
        assert_eq!(pattern_mismatch(GUEST_SEED, 0, &[0u8; 8]), Some(0), "a zeroed disk is not the pattern");
        let mut mid = [0u8; 64];
        fill_pattern(GUEST_SEED, 4096, &mut mid);
        mid[17] ^= 1;
        assert_eq!(pattern_mismatch(GUEST_SEED, 4096, &mid), Some(4096 + 16), "a bad byte is reported at its word");
    }
}
