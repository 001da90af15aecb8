//! Host tests of blkback's request validation, named for the blkif.h or
//! Linux xen-blkback rule each checks, with every class of bad request a
//! malicious frontend can send and a deterministic random-request test.

extern crate std;

use std::vec;
use std::vec::Vec;

use xen_public::io::blkif::*;
use zerocopy::IntoBytes;

use super::stats::VbdStats;
use super::validate::*;

const DISK: u64 = 1000;

/// A disk offering everything Linux blkback offers (and barrier).
fn disk() -> VbdInfo {
    VbdInfo {
        sectors: DISK,
        read_only: false,
        features: VbdFeatures {
            flush: true,
            barrier: true,
            discard: true,
            discard_secure: true,
            max_indirect_segments: LINUX_MAX_INDIRECT_SEGMENTS,
            persistent: false,
        },
    }
}

fn read_only() -> VbdInfo {
    VbdInfo { read_only: true, ..disk() }
}

fn seg(gref: u32, first_sect: u8, last_sect: u8) -> BlkifRequestSegment {
    BlkifRequestSegment { gref, first_sect, last_sect, _pad0: 0 }
}

fn full(gref: u32) -> BlkifRequestSegment {
    seg(gref, 0, 7)
}

fn rw(op: u8, sector_number: u64, segs: &[BlkifRequestSegment]) -> BlkifRequest {
    let mut r = BlkifRequest { operation: op, id: 0xfeed_0000 + u64::from(op), handle: 51712, sector_number, ..Default::default() };
    r.nr_segments = segs.len() as u8;
    r.seg[..segs.len()].copy_from_slice(segs);
    r
}

fn discard(sector_number: u64, nr_sectors: u64, flag: u8) -> BlkifRequest {
    let d = BlkifRequestDiscard { operation: BLKIF_OP_DISCARD, flag, handle: 51712, id: 77, sector_number, nr_sectors, ..Default::default() };
    let mut r = BlkifRequest::default();
    r.as_mut_bytes()[..32].copy_from_slice(d.as_bytes());
    r
}

fn indirect(indirect_op: u8, nr_segments: u16, sector_number: u64) -> BlkifRequest {
    let ind = BlkifRequestIndirect {
        operation: BLKIF_OP_INDIRECT,
        indirect_op,
        nr_segments,
        id: 99,
        sector_number,
        handle: 51712,
        indirect_grefs: [100, 101, 102, 103, 104, 105, 106, 107],
        ..Default::default()
    };
    let mut r = BlkifRequest::default();
    r.as_mut_bytes()[..64].copy_from_slice(ind.as_bytes());
    r
}

/// `n` indirect pages whose segment i is `f(i)`.
fn pages(n: usize, f: impl Fn(usize) -> BlkifRequestSegment) -> Vec<IndirectPage> {
    let mut v = vec![[BlkifRequestSegment::default(); BLKIF_SEGS_PER_INDIRECT_FRAME]; n];
    for (i, s) in v.as_flattened_mut().iter_mut().enumerate() {
        *s = f(i);
    }
    v
}

fn io<'a>(r: Result<Plan<'a>, Refusal>) -> IoPlan<'a> {
    match r {
        Ok(Plan::Io(p)) => p,
        other => panic!("expected an I/O plan, got {other:?}"),
    }
}

fn refused(r: Result<Plan<'_>, Refusal>) -> Refusal {
    match r {
        Err(refusal) => refusal,
        Ok(plan) => panic!("expected a refusal, got {plan:?}"),
    }
}

fn fetch(r: Result<Plan<'_>, Refusal>) -> IndirectFetch {
    match r {
        Ok(Plan::FetchIndirect(f)) => f,
        other => panic!("expected an indirect fetch, got {other:?}"),
    }
}

fn assert_refused(r: Result<Plan<'_>, Refusal>, status: i16, reason: Reason) -> Refusal {
    let refusal = refused(r);
    assert_eq!((refusal.status, refusal.reason), (status, reason));
    refusal
}

// ---- plain read/write segments (dispatch_rw_block_io) ----

/// blkif.h: a segment covers sectors first_sect..=last_sect of its page;
/// 0..=7 is the whole 4096-byte page.
#[test]
fn a_full_page_segment_is_one_4096_byte_transfer() {
    let req = rw(BLKIF_OP_READ, 8, &[full(42)]);
    let plan = io(validate(&req, &disk()));
    assert_eq!((plan.op, plan.id, plan.handle, plan.sector_number, plan.nr_sectors), (IoOp::Read, req.id, 51712, 8, 8));
    assert_eq!(plan.total_bytes(), 4096);
    let segs: Vec<_> = plan.segments().collect();
    assert_eq!(segs, [PlanSegment { gref: 42, first_sect: 0, last_sect: 7, offset: 0, len: 4096, sector: 8 }]);
}

/// Linux: `seg.offset = first_sect << 9`, `nsec = last_sect - first_sect + 1`.
#[test]
fn segment_offset_and_length_come_from_first_and_last_sect() {
    let req = rw(BLKIF_OP_WRITE, 0, &[seg(5, 2, 5), seg(6, 7, 7)]);
    let plan = io(validate(&req, &disk()));
    let segs: Vec<_> = plan.segments().collect();
    assert_eq!((segs[0].offset, segs[0].len, segs[0].sector), (1024, 2048, 0));
    assert_eq!((segs[1].offset, segs[1].len, segs[1].sector), (3584, 512, 4));
    assert_eq!(plan.nr_sectors, 5);
}

/// blkif.h: BLKIF_MAX_SEGMENTS_PER_REQUEST (11) segments are allowed, and
/// they fill one contiguous disk range in order.
#[test]
fn eleven_segments_are_accepted_and_laid_out_contiguously() {
    let segs: Vec<_> = (0..11).map(|i| full(300 + i)).collect();
    let req = rw(BLKIF_OP_WRITE, 100, &segs);
    let plan = io(validate(&req, &disk()));
    assert_eq!((plan.nr_segments(), plan.nr_sectors), (11, 88));
    for (i, s) in plan.segments().enumerate() {
        assert_eq!((s.gref, s.sector), (300 + i as u32, 100 + 8 * i as u64));
    }
}

/// Linux: `nseg > BLKIF_MAX_SEGMENTS_PER_REQUEST` -> BLKIF_RSP_ERROR.
#[test]
fn more_than_eleven_segments_in_a_plain_request_get_error() {
    for n in [12u8, 200, 255] {
        let mut req = rw(BLKIF_OP_READ, 0, &[full(1)]);
        req.nr_segments = n;
        let r = assert_refused(validate(&req, &disk()), BLKIF_RSP_ERROR, Reason::TooManySegments);
        assert_eq!((r.id, r.operation), (req.id, BLKIF_OP_READ));
    }
}

/// Linux: `nseg == 0` is an error unless the operation is a flush
/// (`REQ_PREFLUSH`: flush and barrier).
#[test]
fn read_or_write_without_segments_gets_error_but_an_empty_flush_is_fine() {
    for op in [BLKIF_OP_READ, BLKIF_OP_WRITE] {
        assert_refused(validate(&rw(op, 0, &[]), &disk()), BLKIF_RSP_ERROR, Reason::NoSegments);
    }
    for (op, want) in [(BLKIF_OP_FLUSH_DISKCACHE, IoOp::Flush), (BLKIF_OP_WRITE_BARRIER, IoOp::Barrier)] {
        // Even at a sector past the disk: an empty range is not checked.
        let req = rw(op, u64::MAX, &[]);
        let plan = io(validate(&req, &disk()));
        assert_eq!((plan.op, plan.nr_sectors, plan.nr_segments()), (want, 0, 0));
    }
}

/// Linux: a flush may carry data, written after the cache flush.
#[test]
fn flush_with_segments_is_a_write_of_them() {
    let req = rw(BLKIF_OP_FLUSH_DISKCACHE, 10, &[full(3)]);
    let plan = io(validate(&req, &disk()));
    assert_eq!((plan.op, plan.nr_sectors), (IoOp::Flush, 8));
    assert!(plan.op.writes());
}

/// Linux: `last_sect < first_sect` -> BLKIF_RSP_ERROR.
#[test]
fn first_sect_after_last_sect_gets_error() {
    let req = rw(BLKIF_OP_READ, 0, &[seg(1, 5, 4)]);
    assert_refused(validate(&req, &disk()), BLKIF_RSP_ERROR, Reason::SegmentReversed);
}

/// Linux: `last_sect >= XEN_PAGE_SIZE >> 9` (8) -> BLKIF_RSP_ERROR: the
/// segment would run past its granted page.
#[test]
fn last_sect_of_eight_or_more_runs_past_the_page_and_gets_error() {
    for last in [8u8, 9, 255] {
        let req = rw(BLKIF_OP_WRITE, 0, &[seg(1, 0, last)]);
        assert_refused(validate(&req, &disk()), BLKIF_RSP_ERROR, Reason::SegmentPastPage);
    }
    // first_sect past the page, too (then also after last_sect).
    assert!(validate(&rw(BLKIF_OP_READ, 0, &[seg(1, 8, 7)]), &disk()).is_err());
}

/// Linux checks every segment: one bad segment, even the 11th, fails the
/// whole request.
#[test]
fn one_bad_segment_anywhere_refuses_the_request() {
    let mut segs: Vec<_> = (0..11).map(full).collect();
    segs[10] = seg(10, 3, 8);
    assert_refused(validate(&rw(BLKIF_OP_READ, 0, &segs), &disk()), BLKIF_RSP_ERROR, Reason::SegmentPastPage);
}

/// The segments beyond `nr_segments` are not the request's: garbage there
/// is ignored.
#[test]
fn segments_beyond_nr_segments_are_ignored() {
    let mut req = rw(BLKIF_OP_READ, 0, &[full(1)]);
    req.seg[1] = seg(9, 200, 100);
    assert_eq!(io(validate(&req, &disk())).nr_segments(), 1);
}

// ---- the disk range (xen_vbd_translate) ----

/// xen_vbd_translate: `end > vbd_sz` fails, so I/O ending exactly on the
/// last sector is allowed.
#[test]
fn io_ending_on_the_last_sector_of_the_disk_is_accepted() {
    let req = rw(BLKIF_OP_WRITE, DISK - 1, &[seg(1, 7, 7)]);
    let plan = io(validate(&req, &disk()));
    assert_eq!((plan.sector_number, plan.nr_sectors), (DISK - 1, 1));
    let req = rw(BLKIF_OP_READ, DISK - 8, &[full(1)]);
    let plan = io(validate(&req, &disk()));
    assert_eq!(plan.sector_number + plan.nr_sectors, DISK);
}

/// xen_vbd_translate: a range ending past the disk gets BLKIF_RSP_ERROR.
#[test]
fn io_past_the_end_of_the_disk_gets_error() {
    assert_refused(validate(&rw(BLKIF_OP_READ, DISK, &[seg(1, 0, 0)]), &disk()), BLKIF_RSP_ERROR, Reason::PastEndOfDisk);
    assert_refused(validate(&rw(BLKIF_OP_WRITE, DISK - 7, &[full(1)]), &disk()), BLKIF_RSP_ERROR, Reason::PastEndOfDisk);
    let far = rw(BLKIF_OP_READ, u64::MAX - 100, &[full(1)]);
    assert_refused(validate(&far, &disk()), BLKIF_RSP_ERROR, Reason::PastEndOfDisk);
}

/// xen_vbd_translate: `end < sector_number` (u64 wrap) gets BLKIF_RSP_ERROR,
/// even on a disk of 2^64-1 sectors.
#[test]
fn sector_range_overflowing_u64_gets_error() {
    let huge = VbdInfo { sectors: u64::MAX, ..disk() };
    assert_refused(validate(&rw(BLKIF_OP_READ, u64::MAX, &[seg(1, 0, 0)]), &huge), BLKIF_RSP_ERROR, Reason::RangeOverflow);
    assert_refused(validate(&rw(BLKIF_OP_WRITE, u64::MAX - 3, &[full(1)]), &huge), BLKIF_RSP_ERROR, Reason::RangeOverflow);
    let req = rw(BLKIF_OP_READ, u64::MAX - 8, &[full(1)]);
    let plan = io(validate(&req, &huge));
    assert_eq!(plan.sector_number + plan.nr_sectors, u64::MAX);
}

/// xen_vbd_translate: anything but a read on a read-only vbd gets
/// BLKIF_RSP_ERROR (a flush is a `REQ_OP_WRITE` in Linux).
#[test]
fn writes_and_flushes_to_a_read_only_device_get_error() {
    for op in [BLKIF_OP_WRITE, BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_WRITE_BARRIER] {
        assert_refused(validate(&rw(op, 0, &[full(1)]), &read_only()), BLKIF_RSP_ERROR, Reason::ReadOnlyDevice);
    }
    assert_refused(validate(&rw(BLKIF_OP_FLUSH_DISKCACHE, 0, &[]), &read_only()), BLKIF_RSP_ERROR, Reason::ReadOnlyDevice);
    assert_eq!(io(validate(&rw(BLKIF_OP_READ, 0, &[full(1)]), &read_only())).op, IoOp::Read);
}

// ---- operations and features ----

/// dispatch_other_io: an unknown operation (BLKIF_OP_RESERVED_1 included)
/// gets BLKIF_RSP_EOPNOTSUPP, echoing its id and operation.
#[test]
fn unknown_operation_gets_eopnotsupp() {
    for op in [BLKIF_OP_RESERVED_1, 7, 0x80, 255] {
        let req = rw(op, 0, &[full(1)]);
        let r = assert_refused(validate(&req, &disk()), BLKIF_RSP_EOPNOTSUPP, Reason::UnknownOperation);
        let resp = r.response();
        assert_eq!((resp.id, resp.operation, resp.status), (req.id, op, BLKIF_RSP_EOPNOTSUPP));
    }
}

/// blkif.h feature-flush-cache / feature-barrier: a request for what was
/// not offered gets BLKIF_RSP_EOPNOTSUPP.
#[test]
fn flush_or_barrier_not_offered_gets_eopnotsupp() {
    let mut dev = disk();
    dev.features.flush = false;
    dev.features.barrier = false;
    let r = assert_refused(validate(&rw(BLKIF_OP_FLUSH_DISKCACHE, 0, &[]), &dev), BLKIF_RSP_EOPNOTSUPP, Reason::FlushNotOffered);
    assert_eq!(r.operation, BLKIF_OP_FLUSH_DISKCACHE);
    let r = assert_refused(validate(&rw(BLKIF_OP_WRITE_BARRIER, 0, &[full(1)]), &dev), BLKIF_RSP_EOPNOTSUPP, Reason::BarrierNotOffered);
    assert_eq!(r.operation, BLKIF_OP_WRITE_BARRIER);
    // Linux checks the segments first: a malformed one is still an ERROR.
    let bad = rw(BLKIF_OP_FLUSH_DISKCACHE, 0, &[seg(1, 3, 2)]);
    assert_refused(validate(&bad, &dev), BLKIF_RSP_ERROR, Reason::SegmentReversed);
}

/// Linux xen_blkbk_map: data pages of a write are mapped GNTMAP_readonly
/// unless grants are persistent.
#[test]
fn write_grants_are_mapped_read_only_unless_persistent() {
    let w = rw(BLKIF_OP_WRITE, 0, &[full(1)]);
    assert!(io(validate(&w, &disk())).grant_readonly);
    assert!(!io(validate(&rw(BLKIF_OP_READ, 0, &[full(1)]), &disk())).grant_readonly);
    let mut persistent = disk();
    persistent.features.persistent = true;
    assert!(!io(validate(&w, &persistent)).grant_readonly);
}

// ---- discard (dispatch_discard_io) ----

/// blkif_request_discard: the range and the secure flag are carried; the
/// response echoes BLKIF_OP_DISCARD.
#[test]
fn discard_inside_the_disk_is_accepted() {
    let req = discard(10, DISK - 10, BLKIF_DISCARD_SECURE);
    let plan = validate(&req, &disk()).unwrap();
    let Plan::Discard(d) = plan else { panic!("{plan:?}") };
    assert_eq!((d.id, d.handle, d.sector_number, d.nr_sectors, d.secure), (77, 51712, 10, DISK - 10, true));
    assert_eq!(plan.response(BLKIF_RSP_OKAY).operation, BLKIF_OP_DISCARD);
}

/// blkif.h: BLKIF_DISCARD_SECURE is "ignored if discard-secure=0": the
/// discard is done, not securely.
#[test]
fn secure_discard_without_discard_secure_is_a_plain_discard() {
    let mut dev = disk();
    dev.features.discard_secure = false;
    let Ok(Plan::Discard(d)) = validate(&discard(0, 8, BLKIF_DISCARD_SECURE), &dev) else { panic!() };
    assert!(!d.secure);
    let Ok(Plan::Discard(d)) = validate(&discard(0, 8, 0), &disk()) else { panic!() };
    assert!(!d.secure);
}

/// xen_vbd_translate on a discard: past the end, u64 overflow and a
/// read-only vbd get BLKIF_RSP_ERROR; the last sector is inside.
#[test]
fn discard_outside_the_disk_or_on_a_read_only_device_gets_error() {
    assert!(validate(&discard(DISK - 1, 1, 0), &disk()).is_ok());
    assert_refused(validate(&discard(DISK - 1, 2, 0), &disk()), BLKIF_RSP_ERROR, Reason::PastEndOfDisk);
    assert_refused(validate(&discard(1, u64::MAX, 0), &disk()), BLKIF_RSP_ERROR, Reason::RangeOverflow);
    assert_refused(validate(&discard(0, 1, 0), &read_only()), BLKIF_RSP_ERROR, Reason::ReadOnlyDevice);
    let r = refused(validate(&discard(DISK, 1, 0), &disk()));
    assert_eq!(r.response(), make_response(77, BLKIF_OP_DISCARD, BLKIF_RSP_ERROR));
}

/// xen_vbd_translate skips the range check when `nr_sectors == 0`, and
/// Linux's discard of nothing answers OKAY: an empty discard is accepted
/// and does nothing, wherever it points.
#[test]
fn discard_of_zero_sectors_is_accepted_and_empty() {
    let Ok(Plan::Discard(d)) = validate(&discard(u64::MAX, 0, 0), &disk()) else { panic!() };
    assert_eq!(d.nr_sectors, 0);
}

/// blkif.h feature-discard: a discard when it was not offered gets
/// BLKIF_RSP_EOPNOTSUPP, after the range check (Linux order).
#[test]
fn discard_not_offered_gets_eopnotsupp() {
    let mut dev = disk();
    dev.features.discard = false;
    assert_refused(validate(&discard(0, 8, 0), &dev), BLKIF_RSP_EOPNOTSUPP, Reason::DiscardNotOffered);
    assert_refused(validate(&discard(DISK, 8, 0), &dev), BLKIF_RSP_ERROR, Reason::PastEndOfDisk);
}

// ---- indirect (BLKIF_OP_INDIRECT, xen_blkbk_parse_indirect) ----

/// blkif.h: "If a backend does not recognize BLKIF_OP_INDIRECT, it should
/// *not* create the feature-max-indirect-segments node": without the offer
/// the operation is unknown (EOPNOTSUPP, echoing BLKIF_OP_INDIRECT).
#[test]
fn indirect_without_the_offer_gets_eopnotsupp() {
    let mut dev = disk();
    dev.features.max_indirect_segments = 0;
    let r = assert_refused(validate(&indirect(BLKIF_OP_READ, 1, 0), &dev), BLKIF_RSP_EOPNOTSUPP, Reason::IndirectNotOffered);
    assert_eq!((r.id, r.operation), (99, BLKIF_OP_INDIRECT));
}

/// Linux: an indirect request's `indirect_op` must be read or write, else
/// BLKIF_RSP_ERROR echoing that inner operation.
#[test]
fn indirect_op_other_than_read_or_write_gets_error() {
    for op in [BLKIF_OP_WRITE_BARRIER, BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_DISCARD, BLKIF_OP_INDIRECT, 200] {
        let r = assert_refused(validate(&indirect(op, 1, 0), &disk()), BLKIF_RSP_ERROR, Reason::BadIndirectOperation);
        assert_eq!(r.operation, op);
    }
}

/// Linux: an indirect request with 0 segments, or more than the
/// feature-max-indirect-segments offered, gets BLKIF_RSP_ERROR.
#[test]
fn indirect_segment_count_outside_1_to_the_offer_gets_error() {
    assert_refused(validate(&indirect(BLKIF_OP_READ, 0, 0), &disk()), BLKIF_RSP_ERROR, Reason::NoSegments);
    let r = assert_refused(validate(&indirect(BLKIF_OP_WRITE, 257, 0), &disk()), BLKIF_RSP_ERROR, Reason::TooManySegments);
    assert_eq!(r.operation, BLKIF_OP_WRITE);
    assert_refused(validate(&indirect(BLKIF_OP_READ, u16::MAX, 0), &disk()), BLKIF_RSP_ERROR, Reason::TooManySegments);
    // An offer above what 8 indirect pages hold is clamped to 4096.
    let mut dev = disk();
    dev.features.max_indirect_segments = u16::MAX;
    assert_refused(validate(&indirect(BLKIF_OP_READ, 4097, 0), &dev), BLKIF_RSP_ERROR, Reason::TooManySegments);
}

/// blkif.h: indirect pages = ceil(nr_segments / 512); only that many of
/// `indirect_grefs` are the request's.
#[test]
fn indirect_page_count_is_nr_segments_over_512_rounded_up() {
    let mut dev = disk();
    dev.features.max_indirect_segments = INDIRECT_SEGMENTS_LIMIT;
    for (n, want) in [(1u16, 1usize), (256, 1), (512, 1), (513, 2), (1024, 2), (4095, 8), (4096, 8)] {
        let f = fetch(validate(&indirect(BLKIF_OP_READ, n, 0), &dev));
        assert_eq!((f.nr_segments, f.grefs().len()), (n, want));
        assert_eq!(f.grefs(), &[100, 101, 102, 103, 104, 105, 106, 107][..want]);
        assert_eq!(indirect_pages(n), want);
    }
}

/// Linux parse: each indirect segment is checked as a plain one; the I/O
/// is the concatenation, answered with the inner operation.
#[test]
fn indirect_segments_are_read_from_the_copied_pages() {
    let dev = VbdInfo { sectors: 1 << 20, ..disk() };
    let req = indirect(BLKIF_OP_WRITE, 256, 0);
    let f = fetch(validate(&req, &dev));
    let p = pages(1, |i| seg(1000 + i as u32, (i % 8) as u8, 7));
    let plan = parse_indirect(&f, &p, &dev).unwrap();
    assert_eq!(plan.response(BLKIF_RSP_OKAY), make_response(99, BLKIF_OP_WRITE, BLKIF_RSP_OKAY));
    let Plan::Io(io) = plan else { panic!() };
    assert!(io.indirect);
    assert_eq!(io.nr_segments(), 256);
    let expect: u64 = (0..256u64).map(|i| 8 - i % 8).sum();
    assert_eq!(io.nr_sectors, expect);
    let last = io.segments().last().unwrap();
    assert_eq!((last.gref, last.offset, last.len, last.sector + last.nr_sectors()), (1255, 3584, 512, expect));
}

/// The largest indirect request: 8 pages of 512 full-page segments = 16 MiB.
#[test]
fn the_largest_indirect_request_is_4096_segments_in_8_pages() {
    let mut dev = VbdInfo { sectors: 4096 * 8, ..disk() };
    dev.features.max_indirect_segments = INDIRECT_SEGMENTS_LIMIT;
    let f = fetch(validate(&indirect(BLKIF_OP_READ, 4096, 0), &dev));
    let p = pages(8, |i| full(i as u32));
    let io = io(parse_indirect(&f, &p, &dev));
    assert_eq!((io.nr_segments(), io.nr_sectors, io.total_bytes()), (4096, 32768, 16 << 20));
    // One sector later it no longer fits the disk.
    let f = fetch(validate(&indirect(BLKIF_OP_READ, 4096, 1), &dev));
    assert_refused(parse_indirect(&f, &p, &dev), BLKIF_RSP_ERROR, Reason::PastEndOfDisk);
}

/// xen_blkbk_parse_indirect: a bad segment in any indirect page gets
/// BLKIF_RSP_ERROR; entries after `nr_segments` are not looked at.
#[test]
fn a_bad_indirect_segment_gets_error_and_trailing_entries_are_ignored() {
    let req = indirect(BLKIF_OP_READ, 600, 0);
    let mut dev = disk();
    dev.features.max_indirect_segments = 1024;
    dev.sectors = 1 << 20;
    let f = fetch(validate(&req, &dev));
    let bad = pages(2, |i| if i == 599 { seg(1, 0, 8) } else { full(1) });
    assert_refused(parse_indirect(&f, &bad, &dev), BLKIF_RSP_ERROR, Reason::SegmentPastPage);
    let reversed = pages(2, |i| if i == 512 { seg(1, 6, 1) } else { full(1) });
    assert_refused(parse_indirect(&f, &reversed, &dev), BLKIF_RSP_ERROR, Reason::SegmentReversed);
    let trailing = pages(2, |i| if i >= 600 { seg(1, 9, 0) } else { full(1) });
    assert_eq!(io(parse_indirect(&f, &trailing, &dev)).nr_segments(), 600);
}

/// The pages handed to parse_indirect must be the INDIRECT_PAGES count of
/// the request: fewer or more is an error, never an out-of-bounds read.
#[test]
fn indirect_pages_not_matching_nr_segments_get_error() {
    let f = fetch(validate(&indirect(BLKIF_OP_READ, 100, 0), &disk()));
    for n in [0, 2, 8] {
        assert_refused(parse_indirect(&f, &pages(n, |_| full(1)), &disk()), BLKIF_RSP_ERROR, Reason::IndirectPagesMismatch);
    }
}

/// xen_vbd_translate after the parse: an indirect write to a read-only vbd,
/// or past the disk, gets BLKIF_RSP_ERROR echoing the inner operation.
#[test]
fn indirect_write_to_a_read_only_device_or_past_the_end_gets_error() {
    let p = pages(1, |_| full(1));
    let f = fetch(validate(&indirect(BLKIF_OP_WRITE, 2, 0), &read_only()));
    let r = assert_refused(parse_indirect(&f, &p, &read_only()), BLKIF_RSP_ERROR, Reason::ReadOnlyDevice);
    assert_eq!(r.response(), make_response(99, BLKIF_OP_WRITE, BLKIF_RSP_ERROR));
    let f = fetch(validate(&indirect(BLKIF_OP_READ, 2, DISK - 15), &disk()));
    assert_refused(parse_indirect(&f, &p, &disk()), BLKIF_RSP_ERROR, Reason::PastEndOfDisk);
    let f = fetch(validate(&indirect(BLKIF_OP_READ, 2, DISK - 16), &disk()));
    assert_eq!(io(parse_indirect(&f, &p, &disk())).nr_sectors, 16);
}

// ---- responses, statistics and the ring ----

/// blkif.h `struct blkif_response`: {id, operation, status}, padding zero.
#[test]
fn response_carries_id_operation_and_status_with_zero_padding() {
    let resp = make_response(0x1122_3344_5566_7788, BLKIF_OP_WRITE, BLKIF_RSP_ERROR);
    let b = resp.as_bytes();
    assert_eq!(&b[..8], &0x1122_3344_5566_7788u64.to_le_bytes());
    assert_eq!(&b[8..], &[1, 0, 0xff, 0xff, 0, 0, 0, 0]);
    let req = rw(BLKIF_OP_READ, 0, &[full(1)]);
    let plan = validate(&req, &disk()).unwrap();
    assert_eq!(plan.response(BLKIF_RSP_OKAY), make_response(0xfeed_0000, BLKIF_OP_READ, BLKIF_RSP_OKAY));
}

/// Linux statistics: rd/wr/f_req count a request once its operation is
/// known, even if refused later; sectors count accepted I/O only; unknown
/// operations count nowhere but in their refusal reason.
#[test]
fn statistics_count_as_linux_blkback() {
    let mut st = VbdStats::default();
    let run = |req: &BlkifRequest, dev: &VbdInfo, st: &mut VbdStats| match validate(req, dev) {
        Ok(p) => st.account_plan(&p),
        Err(r) => st.account_refusal(&r),
    };
    run(&rw(BLKIF_OP_READ, 0, &[full(1), seg(2, 0, 3)]), &disk(), &mut st);
    run(&rw(BLKIF_OP_WRITE, 0, &[seg(1, 4, 2)]), &disk(), &mut st);
    run(&rw(BLKIF_OP_FLUSH_DISKCACHE, 0, &[full(1)]), &disk(), &mut st);
    run(&rw(9, 0, &[]), &disk(), &mut st);
    run(&discard(DISK, 1, 0), &disk(), &mut st);
    run(&discard(0, 1, 0), &disk(), &mut st);
    run(&indirect(42, 1, 0), &disk(), &mut st);
    assert_eq!((st.rd_req, st.wr_req, st.f_req, st.ds_req), (1, 1, 1, 1));
    assert_eq!((st.rd_sect, st.wr_sect), (12, 8));
    assert_eq!(st.refused(Reason::SegmentReversed), 1);
    assert_eq!(st.refused(Reason::UnknownOperation), 1);
    assert_eq!(st.refused(Reason::PastEndOfDisk), 1);
    assert_eq!(st.refused(Reason::BadIndirectOperation), 1);
    assert_eq!(st.refused_total(), 4);
    // Indirect: counted once at the header, sectors after the parse.
    let req = indirect(BLKIF_OP_READ, 3, 0);
    let f = validate(&req, &disk()).unwrap();
    st.account_plan(&f);
    let Plan::FetchIndirect(f) = f else { panic!() };
    let p = pages(1, |_| full(1));
    st.account_plan(&parse_indirect(&f, &p, &disk()).unwrap());
    assert_eq!((st.rd_req, st.rd_sect), (2, 36));
    st.note_out_of_requests();
    assert_eq!(st.oo_req, 1);
}

/// io/ring.h via __do_block_io_op: take a request only while one is
/// published and a response slot is free; a req_prod more than a ring
/// ahead halts the ring.
#[test]
fn ring_gate_follows_request_overflow_checks() {
    assert_eq!(ring_gate(32, 5, 4, 4), RingGate::Take);
    assert_eq!(ring_gate(32, 4, 4, 4), RingGate::Wait);
    assert_eq!(ring_gate(32, 32, 32, 0), RingGate::Wait);
    assert_eq!(ring_gate(32, 32, 31, 0), RingGate::Take);
    assert_eq!(ring_gate(32, 33, 0, 0), RingGate::Halt);
    assert_eq!(ring_gate(32, 3, u32::MAX - 2, u32::MAX - 10), RingGate::Take);
}

// ---- a malicious frontend: random requests ----

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A random request: random bytes, then nudged towards plausible values so
/// the checks past the first ones are reached.
fn random_request(rng: &mut XorShift, dev: &VbdInfo) -> BlkifRequest {
    let mut req = BlkifRequest::default();
    for chunk in req.as_mut_bytes().chunks_mut(8) {
        let v = rng.next().to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
    let bytes = req.as_mut_bytes();
    bytes[0] = if rng.below(8) == 0 { rng.next() as u8 } else { rng.below(7) as u8 };
    if rng.below(2) == 0 {
        bytes[1] = rng.below(13) as u8;
    }
    if bytes[0] == BLKIF_OP_INDIRECT && rng.below(2) == 0 {
        bytes[1] = rng.below(3) as u8;
        bytes[2..4].copy_from_slice(&(rng.below(600) as u16).to_le_bytes());
    }
    let sector = match rng.below(4) {
        0 => rng.next(),
        1 => dev.sectors.saturating_sub(rng.below(64)),
        _ => rng.below(dev.sectors.max(1)),
    };
    bytes[16..24].copy_from_slice(&sector.to_le_bytes());
    if bytes[0] == BLKIF_OP_DISCARD && rng.below(2) == 0 {
        bytes[24..32].copy_from_slice(&rng.below(256).to_le_bytes());
    } else {
        let sane = rng.below(2) == 0;
        for s in 0..BLKIF_MAX_SEGMENTS_PER_REQUEST {
            let (first, last) = random_sects(rng, sane);
            bytes[28 + 8 * s] = first;
            bytes[29 + 8 * s] = last;
        }
    }
    req
}

/// A segment's (first_sect, last_sect): inside the page when `sane` (bar
/// one in 2000), anything with a bias to the edges otherwise.
fn random_sects(rng: &mut XorShift, sane: bool) -> (u8, u8) {
    if sane && rng.below(2000) != 0 {
        let (a, b) = (rng.below(8) as u8, rng.below(8) as u8);
        (a.min(b), a.max(b))
    } else if rng.below(4) == 0 {
        (rng.next() as u8, rng.next() as u8)
    } else {
        (rng.below(9) as u8, rng.below(9) as u8)
    }
}

fn random_device(rng: &mut XorShift) -> VbdInfo {
    VbdInfo {
        sectors: [0, 1, 8, 4096, 1 << 20, u64::MAX][rng.below(6) as usize],
        read_only: rng.below(4) == 0,
        features: VbdFeatures {
            flush: rng.below(2) == 0,
            barrier: rng.below(2) == 0,
            discard: rng.below(2) == 0,
            discard_secure: rng.below(2) == 0,
            max_indirect_segments: [0, 11, 256, 600, 4096, u16::MAX][rng.below(6) as usize],
            persistent: rng.below(2) == 0,
        },
    }
}

/// Every accepted I/O stays inside the disk and inside its granted pages,
/// and uses only grants the request named.
fn check_io(io: &IoPlan<'_>, dev: &VbdInfo, named: &[BlkifRequestSegment]) {
    assert!(!(dev.read_only && io.op.writes()), "write planned on a read-only disk");
    assert_eq!(io.nr_segments(), named.len());
    if io.nr_sectors != 0 {
        let end = io.sector_number.checked_add(io.nr_sectors).expect("range overflows");
        assert!(end <= dev.sectors, "{io:?} ends past {}", dev.sectors);
    }
    let mut sector = io.sector_number;
    let mut total = 0;
    for (s, n) in io.segments().zip(named) {
        assert!(s.first_sect <= s.last_sect && s.last_sect < 8);
        assert!(s.len >= 512 && s.offset % 512 == 0 && s.offset + s.len <= XEN_PAGE_SIZE);
        assert_eq!((s.gref, s.first_sect, s.last_sect, s.sector), (n.gref, n.first_sect, n.last_sect, sector));
        sector += s.nr_sectors();
        total += s.nr_sectors();
    }
    assert_eq!(total, io.nr_sectors);
}

/// A malicious frontend sends 50 000 random requests (with random indirect
/// pages) to random devices: nothing panics, every refusal carries the
/// status of its reason and the request's id, and every accepted plan stays
/// inside the disk and the granted pages.
#[test]
fn random_requests_never_panic_and_accepted_plans_stay_inside_disk_and_pages() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let (mut io_ok, mut discards, mut indirect_ok, mut refusals) = (0, 0, 0, 0);
    let mut st = VbdStats::default();
    for _ in 0..50_000 {
        let dev = random_device(&mut rng);
        let req = random_request(&mut rng, &dev);
        match validate(&req, &dev) {
            Err(r) => {
                assert_eq!((r.id, r.status), (req.id, r.reason.status()));
                assert!(r.status == BLKIF_RSP_ERROR || r.status == BLKIF_RSP_EOPNOTSUPP);
                st.account_refusal(&r);
                refusals += 1;
            }
            Ok(Plan::Io(io)) => {
                assert!(usize::from(req.nr_segments) <= BLKIF_MAX_SEGMENTS_PER_REQUEST);
                assert!(io.nr_segments() > 0 || matches!(io.op, IoOp::Flush | IoOp::Barrier));
                assert!(io.op != IoOp::Flush || dev.features.flush);
                assert!(io.op != IoOp::Barrier || dev.features.barrier);
                check_io(&io, &dev, &req.seg[..usize::from(req.nr_segments)]);
                io_ok += 1;
            }
            Ok(Plan::Discard(d)) => {
                assert!(dev.features.discard && !dev.read_only);
                assert!(d.nr_sectors == 0 || d.sector_number.checked_add(d.nr_sectors).is_some_and(|e| e <= dev.sectors));
                assert!(!d.secure || dev.features.discard_secure);
                discards += 1;
            }
            Ok(Plan::FetchIndirect(f)) => {
                assert!(f.nr_segments >= 1 && f.nr_segments <= dev.max_indirect_segments());
                assert_eq!(f.grefs().len(), indirect_pages(f.nr_segments));
                let mut p = pages(f.grefs().len(), |_| BlkifRequestSegment::default());
                let sane = rng.below(2) == 0;
                for s in p.as_flattened_mut() {
                    let (first, last) = random_sects(&mut rng, sane);
                    *s = seg(rng.next() as u32, first, last);
                }
                match parse_indirect(&f, &p, &dev) {
                    Ok(Plan::Io(io)) => {
                        assert!(io.op == IoOp::Read || io.op == IoOp::Write);
                        check_io(&io, &dev, &p.as_flattened()[..usize::from(f.nr_segments)]);
                        indirect_ok += 1;
                    }
                    Ok(other) => panic!("parse_indirect gave {other:?}"),
                    Err(r) => assert_eq!((r.id, r.status), (f.id, BLKIF_RSP_ERROR)),
                }
            }
        }
    }
    // The run reached every kind of outcome, so the checks above ran.
    assert!(io_ok > 1000 && discards > 100 && indirect_ok > 10 && refusals > 1000, "{io_ok} {discards} {indirect_ok} {refusals}");
    assert_eq!(st.refused_total(), refusals);
    for reason in Reason::ALL {
        assert!(reason == Reason::IndirectPagesMismatch || st.refused(reason) > 0, "{} never hit", reason.name());
    }
}

/// Reason's table: ALL lists each reason once, at its index.
#[test]
fn reason_table_is_indexed_in_order() {
    for (i, r) in Reason::ALL.iter().enumerate() {
        assert_eq!(r.index(), i);
    }
}
