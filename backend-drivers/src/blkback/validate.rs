//! blkback's request validation: turns one blkif request, already copied out
//! of the shared ring, into a [`Plan`] of the I/O to do or a [`Refusal`]
//! carrying the `BLKIF_RSP_*` status to answer with.
//!
//! The checks, their order and the status each refusal gets follow Linux's
//! xen-blkback (`drivers/block/xen-blkback/blkback.c`: `__do_block_io_op`,
//! `dispatch_rw_block_io`, `xen_blkbk_parse_indirect`, `xen_vbd_translate`,
//! `dispatch_discard_io`, `dispatch_other_io`) and Xen 4.17's
//! `xen/include/public/io/blkif.h`:
//! - an unknown operation (and `BLKIF_OP_INDIRECT` when
//!   `feature-max-indirect-segments` was not offered) gets
//!   `BLKIF_RSP_EOPNOTSUPP`, as `dispatch_other_io`;
//! - a malformed read, write, flush, barrier or indirect request gets
//!   `BLKIF_RSP_ERROR`, as `dispatch_rw_block_io`'s `fail_response`;
//! - a discard outside the disk or on a read-only disk gets
//!   `BLKIF_RSP_ERROR`, as `xen_vbd_translate`;
//! - a flush, barrier or discard the backend did not offer gets
//!   `BLKIF_RSP_EOPNOTSUPP` (blkif.h's feature nodes: such requests "may
//!   still be returned at any time with BLKIF_RSP_EOPNOTSUPP").
//!
//! Invariant: every accepted [`IoPlan`] lies inside the disk (its sectors
//! end at or before [`VbdInfo::sectors`], without u64 overflow), each of its
//! segments lies inside its granted 4 KiB page (`first_sect <= last_sect <
//! 8`), a read-only disk never gets a writing plan, and nothing here panics
//! or allocates whatever the frontend wrote. The request must be a private
//! copy (the frontend can rewrite the ring at any time): plans borrow that
//! copy, never the shared page.
#![forbid(unsafe_code)]

use xen_public::io::blkif::{
    BLKIF_DISCARD_SECURE, BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST, BLKIF_OP_DISCARD, BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_INDIRECT, BLKIF_OP_READ,
    BLKIF_OP_WRITE, BLKIF_OP_WRITE_BARRIER, BLKIF_RSP_EOPNOTSUPP, BLKIF_RSP_ERROR, BLKIF_SECTOR_SIZE, BLKIF_SEGS_PER_INDIRECT_FRAME, BlkifRequest,
    BlkifRequestDiscard, BlkifRequestIndirect, BlkifRequestSegment, BlkifResponse,
};
use xen_public::io::ring::{RingIdx, request_cons_overflow, request_prod_overflow};
use zerocopy::{FromBytes, IntoBytes};

/// Bytes of a granted page (`XEN_PAGE_SIZE`).
pub const XEN_PAGE_SIZE: u32 = 4096;
/// 512-byte sectors in a granted page: a segment's `last_sect` must be
/// below this (Linux: `last_sect >= (XEN_PAGE_SIZE >> 9)` fails).
pub const SECTORS_PER_PAGE: u8 = (XEN_PAGE_SIZE / BLKIF_SECTOR_SIZE as u32) as u8;
/// The `feature-max-indirect-segments` Linux blkback offers
/// (`MAX_INDIRECT_SEGMENTS` in `xen-blkback/common.h`).
pub const LINUX_MAX_INDIRECT_SEGMENTS: u16 = 256;
/// The most segments an indirect request can name: its 8 indirect pages of
/// 512 segments each. An offer above this is clamped to it.
pub const INDIRECT_SEGMENTS_LIMIT: u16 = (BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST * BLKIF_SEGS_PER_INDIRECT_FRAME) as u16;

/// One copied indirect page: 512 [`BlkifRequestSegment`]s. A backend copies
/// the granted page's 4096 bytes into one with `as_mut_bytes()`.
pub type IndirectPage = [BlkifRequestSegment; BLKIF_SEGS_PER_INDIRECT_FRAME];

/// What the backend offered the frontend in xenstore (blkif.h's feature
/// nodes). A request for something not offered is refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VbdFeatures {
    /// `feature-flush-cache`.
    pub flush: bool,
    /// `feature-barrier`.
    pub barrier: bool,
    /// `feature-discard`.
    pub discard: bool,
    /// `discard-secure`: honour [`BLKIF_DISCARD_SECURE`] (ignored if not).
    pub discard_secure: bool,
    /// `feature-max-indirect-segments`; 0 = not offered (then
    /// `BLKIF_OP_INDIRECT` is an unknown operation).
    pub max_indirect_segments: u16,
    /// `feature-persistent`: grants stay mapped, and are mapped writable.
    pub persistent: bool,
}

/// The virtual block device a ring serves, as the checks need it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VbdInfo {
    /// Disk size in 512-byte sectors (xenstore `sectors`).
    pub sectors: u64,
    /// `mode=r` / `VDISK_READONLY`: only reads are allowed.
    pub read_only: bool,
    /// The features offered.
    pub features: VbdFeatures,
}

impl VbdInfo {
    /// The indirect segment limit in force: the offer, clamped to what 8
    /// indirect pages hold.
    pub fn max_indirect_segments(&self) -> u16 {
        self.features.max_indirect_segments.min(INDIRECT_SEGMENTS_LIMIT)
    }
}

/// The I/O a read/write-class request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoOp {
    /// `BLKIF_OP_READ`.
    Read,
    /// `BLKIF_OP_WRITE`.
    Write,
    /// `BLKIF_OP_FLUSH_DISKCACHE`: flush the cache, then write any segments.
    Flush,
    /// `BLKIF_OP_WRITE_BARRIER`: drain in-flight I/O, then as a flush.
    Barrier,
}

impl IoOp {
    /// The `BLKIF_OP_*` code (echoed in the response).
    pub fn blkif_op(self) -> u8 {
        match self {
            IoOp::Read => BLKIF_OP_READ,
            IoOp::Write => BLKIF_OP_WRITE,
            IoOp::Flush => BLKIF_OP_FLUSH_DISKCACHE,
            IoOp::Barrier => BLKIF_OP_WRITE_BARRIER,
        }
    }

    /// Whether the disk is written (Linux: anything but `REQ_OP_READ`).
    pub fn writes(self) -> bool {
        self != IoOp::Read
    }

    /// Flush and barrier may carry no segments (Linux: `REQ_PREFLUSH`).
    fn may_be_empty(self) -> bool {
        matches!(self, IoOp::Flush | IoOp::Barrier)
    }

    fn class(self) -> ReqClass {
        match self {
            IoOp::Read => ReqClass::Read,
            IoOp::Write => ReqClass::Write,
            IoOp::Flush | IoOp::Barrier => ReqClass::Flush,
        }
    }
}

/// Why a request was refused; each is counted in
/// [`super::stats::VbdStats`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Not a `BLKIF_OP_*` this backend knows (EOPNOTSUPP).
    UnknownOperation,
    /// `BLKIF_OP_INDIRECT` without `feature-max-indirect-segments`
    /// (EOPNOTSUPP).
    IndirectNotOffered,
    /// An indirect request whose `indirect_op` is not read or write.
    BadIndirectOperation,
    /// A read or write with `nr_segments == 0`.
    NoSegments,
    /// More than 11 segments, or more indirect segments than offered.
    TooManySegments,
    /// A segment with `first_sect > last_sect`.
    SegmentReversed,
    /// A segment with `last_sect >= 8`: past its 4 KiB page.
    SegmentPastPage,
    /// `sector_number + sectors` overflows u64.
    RangeOverflow,
    /// The sectors end past the disk.
    PastEndOfDisk,
    /// A write, flush, barrier or discard on a read-only disk.
    ReadOnlyDevice,
    /// `BLKIF_OP_FLUSH_DISKCACHE` without `feature-flush-cache`
    /// (EOPNOTSUPP).
    FlushNotOffered,
    /// `BLKIF_OP_WRITE_BARRIER` without `feature-barrier` (EOPNOTSUPP).
    BarrierNotOffered,
    /// `BLKIF_OP_DISCARD` without `feature-discard` (EOPNOTSUPP).
    DiscardNotOffered,
    /// The indirect pages handed to [`parse_indirect`] are not the number
    /// the request's `nr_segments` needs (`INDIRECT_PAGES(nr_segments)`).
    IndirectPagesMismatch,
}

impl Reason {
    /// Number of reasons (the length of a per-reason counter array).
    pub const COUNT: usize = 14;
    /// Every reason, in [`Reason::index`] order.
    pub const ALL: [Reason; Reason::COUNT] = [
        Reason::UnknownOperation,
        Reason::IndirectNotOffered,
        Reason::BadIndirectOperation,
        Reason::NoSegments,
        Reason::TooManySegments,
        Reason::SegmentReversed,
        Reason::SegmentPastPage,
        Reason::RangeOverflow,
        Reason::PastEndOfDisk,
        Reason::ReadOnlyDevice,
        Reason::FlushNotOffered,
        Reason::BarrierNotOffered,
        Reason::DiscardNotOffered,
        Reason::IndirectPagesMismatch,
    ];

    /// Position in [`Reason::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// A short name for logs and statistics.
    pub fn name(self) -> &'static str {
        match self {
            Reason::UnknownOperation => "unknown_op",
            Reason::IndirectNotOffered => "indirect_not_offered",
            Reason::BadIndirectOperation => "bad_indirect_op",
            Reason::NoSegments => "no_segments",
            Reason::TooManySegments => "too_many_segments",
            Reason::SegmentReversed => "segment_reversed",
            Reason::SegmentPastPage => "segment_past_page",
            Reason::RangeOverflow => "range_overflow",
            Reason::PastEndOfDisk => "past_end_of_disk",
            Reason::ReadOnlyDevice => "read_only",
            Reason::FlushNotOffered => "flush_not_offered",
            Reason::BarrierNotOffered => "barrier_not_offered",
            Reason::DiscardNotOffered => "discard_not_offered",
            Reason::IndirectPagesMismatch => "indirect_pages_mismatch",
        }
    }

    /// The `BLKIF_RSP_*` status the frontend gets.
    pub fn status(self) -> i16 {
        match self {
            Reason::UnknownOperation
            | Reason::IndirectNotOffered
            | Reason::FlushNotOffered
            | Reason::BarrierNotOffered
            | Reason::DiscardNotOffered => BLKIF_RSP_EOPNOTSUPP,
            _ => BLKIF_RSP_ERROR,
        }
    }
}

/// The request classes Linux counts (`st_rd_req`, `st_wr_req`, `st_f_req`,
/// `st_ds_req`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReqClass {
    /// Reads, plain or indirect.
    Read,
    /// Writes, plain or indirect.
    Write,
    /// Flushes and barriers.
    Flush,
    /// Discards.
    Discard,
}

/// What one validation step adds to the statistics, at the points Linux
/// counts: a read/write/flush is counted once its operation is known (even
/// if refused afterwards), a discard once its range passed, sectors once the
/// I/O is accepted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// The request class to count, if this step counts one.
    pub class: Option<ReqClass>,
    /// Sectors read.
    pub rd_sect: u64,
    /// Sectors written.
    pub wr_sect: u64,
}

impl Tally {
    fn class(class: ReqClass) -> Self {
        Tally { class: Some(class), ..Tally::default() }
    }

    fn sectors(op: IoOp, nr: u64) -> Self {
        if op.writes() { Tally { wr_sect: nr, ..Tally::default() } } else { Tally { rd_sect: nr, ..Tally::default() } }
    }
}

/// A refused request: answer with [`Refusal::response`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The request's `id`.
    pub id: u64,
    /// The operation echoed (for an indirect request, its `indirect_op`, as
    /// Linux answers).
    pub operation: u8,
    /// `BLKIF_RSP_ERROR` or `BLKIF_RSP_EOPNOTSUPP`.
    pub status: i16,
    /// Why.
    pub reason: Reason,
    /// What to count.
    pub tally: Tally,
}

impl Refusal {
    fn new(id: u64, operation: u8, reason: Reason, tally: Tally) -> Self {
        Refusal { id, operation, status: reason.status(), reason, tally }
    }

    /// The response to put on the ring.
    pub fn response(&self) -> BlkifResponse {
        make_response(self.id, self.operation, self.status)
    }
}

/// `make_response`: a `blkif_response` for `id`, `operation`, `status`.
pub fn make_response(id: u64, operation: u8, status: i16) -> BlkifResponse {
    BlkifResponse { id, operation, status, ..BlkifResponse::default() }
}

/// One segment of an accepted I/O: which granted page, which bytes of it,
/// and where on the disk they go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanSegment {
    /// The grant of the data page.
    pub gref: u32,
    /// First sector of the page (inclusive), below 8.
    pub first_sect: u8,
    /// Last sector of the page (inclusive), below 8, `>= first_sect`.
    pub last_sect: u8,
    /// Byte offset in the page (`first_sect * 512`).
    pub offset: u32,
    /// Bytes (`(last_sect - first_sect + 1) * 512`); `offset + len <= 4096`.
    pub len: u32,
    /// Disk sector of the segment's first byte.
    pub sector: u64,
}

impl PlanSegment {
    /// Built from a segment [`check_segment`] accepted. Saturating, so a
    /// segment that was not checked gives nonsense, never a panic.
    fn from_checked(seg: &BlkifRequestSegment, sector: u64) -> Self {
        let nsec = u32::from(seg.last_sect.saturating_sub(seg.first_sect)) + 1;
        PlanSegment {
            gref: seg.gref,
            first_sect: seg.first_sect,
            last_sect: seg.last_sect,
            offset: u32::from(seg.first_sect) * BLKIF_SECTOR_SIZE as u32,
            len: nsec * BLKIF_SECTOR_SIZE as u32,
            sector,
        }
    }

    /// Sectors in the segment.
    pub fn nr_sectors(&self) -> u64 {
        u64::from(self.len) / BLKIF_SECTOR_SIZE
    }
}

/// An accepted read, write, flush or barrier (plain or indirect).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoPlan<'a> {
    /// What to do.
    pub op: IoOp,
    /// The request's `id`.
    pub id: u64,
    /// The request's `handle` (not checked: one vbd per backend, as Linux).
    pub handle: u16,
    /// First disk sector.
    pub sector_number: u64,
    /// Total sectors; `sector_number + nr_sectors <= sectors`.
    pub nr_sectors: u64,
    /// Whether the segments came from indirect pages.
    pub indirect: bool,
    /// Map the data grants read-only (`GNTMAP_readonly`): the disk is
    /// written from them and grants are not persistent (Linux
    /// `xen_blkbk_map`).
    pub grant_readonly: bool,
    /// What to count.
    pub tally: Tally,
    segs: &'a [BlkifRequestSegment],
}

impl<'a> IoPlan<'a> {
    /// Segments in the I/O.
    pub fn nr_segments(&self) -> usize {
        self.segs.len()
    }

    /// Bytes moved (`nr_sectors * 512`).
    pub fn total_bytes(&self) -> u64 {
        self.nr_sectors * BLKIF_SECTOR_SIZE
    }

    /// The segments in order, each with the disk sector it starts at
    /// (consecutive: a request is one contiguous disk range).
    pub fn segments(&self) -> impl Iterator<Item = PlanSegment> + 'a {
        let mut sector = self.sector_number;
        let segs: &'a [BlkifRequestSegment] = self.segs;
        segs.iter().map(move |seg| {
            let planned = PlanSegment::from_checked(seg, sector);
            sector = sector.saturating_add(planned.nr_sectors());
            planned
        })
    }
}

/// An accepted discard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiscardPlan {
    /// The request's `id`.
    pub id: u64,
    /// The request's `handle`.
    pub handle: u16,
    /// First sector.
    pub sector_number: u64,
    /// Sectors; 0 is accepted and does nothing (Linux answers OKAY).
    pub nr_sectors: u64,
    /// Erase securely: the flag was set and `discard-secure` offered
    /// (blkif.h: the flag is ignored otherwise).
    pub secure: bool,
    /// What to count.
    pub tally: Tally,
}

/// A well-formed indirect request header: map [`IndirectFetch::grefs`]
/// (read-only), copy them into [`IndirectPage`]s and call
/// [`parse_indirect`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndirectFetch {
    /// The real operation, read or write.
    pub op: IoOp,
    /// The request's `id`.
    pub id: u64,
    /// The request's `handle`.
    pub handle: u16,
    /// First disk sector.
    pub sector_number: u64,
    /// Segments in the indirect pages, 1..=the offered maximum.
    pub nr_segments: u16,
    /// What to count.
    pub tally: Tally,
    grefs: [u32; BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST],
    nr_pages: usize,
}

impl IndirectFetch {
    /// Grants of the indirect pages: `ceil(nr_segments / 512)` of them.
    pub fn grefs(&self) -> &[u32] {
        self.grefs.get(..self.nr_pages).unwrap_or(&[])
    }
}

/// What to do with an accepted request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan<'a> {
    /// Read, write, flush or barrier.
    Io(IoPlan<'a>),
    /// Discard.
    Discard(DiscardPlan),
    /// An indirect request: fetch its segment pages first.
    FetchIndirect(IndirectFetch),
}

impl Plan<'_> {
    /// The request's `id`.
    pub fn id(&self) -> u64 {
        match self {
            Plan::Io(p) => p.id,
            Plan::Discard(p) => p.id,
            Plan::FetchIndirect(p) => p.id,
        }
    }

    /// The operation the response echoes (an indirect request's
    /// `indirect_op`, as Linux's `pending_req->operation`).
    pub fn response_op(&self) -> u8 {
        match self {
            Plan::Io(p) => p.op.blkif_op(),
            Plan::Discard(_) => BLKIF_OP_DISCARD,
            Plan::FetchIndirect(p) => p.op.blkif_op(),
        }
    }

    /// The response once the I/O finished with `status`.
    pub fn response(&self, status: i16) -> BlkifResponse {
        make_response(self.id(), self.response_op(), status)
    }

    /// What to count.
    pub fn tally(&self) -> Tally {
        match self {
            Plan::Io(p) => p.tally,
            Plan::Discard(p) => p.tally,
            Plan::FetchIndirect(p) => p.tally,
        }
    }
}

/// Validates one request copied out of the ring. Indirect requests come
/// back as [`Plan::FetchIndirect`]; everything else is final.
pub fn validate<'a>(req: &'a BlkifRequest, dev: &VbdInfo) -> Result<Plan<'a>, Refusal> {
    match req.operation {
        BLKIF_OP_READ => validate_rw(req, IoOp::Read, dev),
        BLKIF_OP_WRITE => validate_rw(req, IoOp::Write, dev),
        BLKIF_OP_WRITE_BARRIER => validate_rw(req, IoOp::Barrier, dev),
        BLKIF_OP_FLUSH_DISKCACHE => validate_rw(req, IoOp::Flush, dev),
        BLKIF_OP_DISCARD => validate_discard(&as_discard(req), dev),
        BLKIF_OP_INDIRECT => validate_indirect(&as_indirect(req), dev),
        op => Err(Refusal::new(req.id, op, Reason::UnknownOperation, Tally::default())),
    }
}

/// The ring entry read as `blkif_request_discard` (the union's other arm).
fn as_discard(req: &BlkifRequest) -> BlkifRequestDiscard {
    BlkifRequestDiscard::read_from_prefix(req.as_bytes()).map(|(d, _)| d).unwrap_or_default()
}

/// The ring entry read as `blkif_request_indirect`.
fn as_indirect(req: &BlkifRequest) -> BlkifRequestIndirect {
    BlkifRequestIndirect::read_from_prefix(req.as_bytes()).map(|(r, _)| r).unwrap_or_default()
}
const _: () = assert!(core::mem::size_of::<BlkifRequestDiscard>() <= core::mem::size_of::<BlkifRequest>());
const _: () = assert!(core::mem::size_of::<BlkifRequestIndirect>() <= core::mem::size_of::<BlkifRequest>());

/// `dispatch_rw_block_io` for a plain request. `req.seg` holds
/// `BLKIF_MAX_SEGMENTS_PER_REQUEST` (11) entries, so a longer
/// `nr_segments` finds no slice.
fn validate_rw<'a>(req: &'a BlkifRequest, op: IoOp, dev: &VbdInfo) -> Result<Plan<'a>, Refusal> {
    let counted = Tally::class(op.class());
    let refuse = |reason| Refusal::new(req.id, op.blkif_op(), reason, counted);
    let nseg = usize::from(req.nr_segments);
    if nseg == 0 && !op.may_be_empty() {
        return Err(refuse(Reason::NoSegments));
    }
    let segs = req.seg.get(..nseg).ok_or_else(|| refuse(Reason::TooManySegments))?;
    let nr_sectors = check_segments(segs).map_err(refuse)?;
    translate(op.writes(), req.sector_number, nr_sectors, dev).map_err(refuse)?;
    check_offered(op, dev).map_err(refuse)?;
    let head = Head { id: req.id, handle: req.handle, sector_number: req.sector_number };
    Ok(Plan::Io(io_plan(op, head, segs, nr_sectors, false, dev)))
}

/// Where a read/write-class request points: its cookie, vbd and first
/// sector.
#[derive(Clone, Copy)]
struct Head {
    id: u64,
    handle: u16,
    sector_number: u64,
}

/// The plan of a checked I/O. A plain request counts its class and sectors
/// here; an indirect one counted its class at the header, so only sectors.
fn io_plan<'a>(op: IoOp, head: Head, segs: &'a [BlkifRequestSegment], nr_sectors: u64, indirect: bool, dev: &VbdInfo) -> IoPlan<'a> {
    let class = if indirect { None } else { Some(op.class()) };
    let tally = Tally { class, ..Tally::sectors(op, nr_sectors) };
    let grant_readonly = op.writes() && !dev.features.persistent;
    let Head { id, handle, sector_number } = head;
    IoPlan { op, id, handle, sector_number, nr_sectors, indirect, grant_readonly, tally, segs }
}

/// Flush and barrier need their feature offered (checked last, where Linux
/// learns it from the device's `BLK_STS_NOTSUPP`).
fn check_offered(op: IoOp, dev: &VbdInfo) -> Result<(), Reason> {
    match op {
        IoOp::Flush if !dev.features.flush => Err(Reason::FlushNotOffered),
        IoOp::Barrier if !dev.features.barrier => Err(Reason::BarrierNotOffered),
        _ => Ok(()),
    }
}

/// One segment must lie inside its page: `first_sect <= last_sect < 8`.
/// Returns its sector count.
pub fn check_segment(seg: &BlkifRequestSegment) -> Result<u64, Reason> {
    if seg.last_sect >= SECTORS_PER_PAGE {
        return Err(Reason::SegmentPastPage);
    }
    if seg.last_sect < seg.first_sect {
        return Err(Reason::SegmentReversed);
    }
    Ok(u64::from(seg.last_sect - seg.first_sect) + 1)
}

/// Checks every segment; returns the total sectors (at most 4096 * 8).
fn check_segments(segs: &[BlkifRequestSegment]) -> Result<u64, Reason> {
    segs.iter().try_fold(0u64, |total, seg| Ok(total + check_segment(seg)?))
}

/// `xen_vbd_translate`: no writing to a read-only disk, and a non-empty
/// range must neither overflow nor end past the disk.
fn translate(writes: bool, sector_number: u64, nr_sectors: u64, dev: &VbdInfo) -> Result<(), Reason> {
    if writes && dev.read_only {
        return Err(Reason::ReadOnlyDevice);
    }
    if nr_sectors == 0 {
        return Ok(());
    }
    let end = sector_number.checked_add(nr_sectors).ok_or(Reason::RangeOverflow)?;
    if end > dev.sectors {
        return Err(Reason::PastEndOfDisk);
    }
    Ok(())
}

/// `dispatch_discard_io`: range and read-only first (ERROR), then counted,
/// then the feature (EOPNOTSUPP).
fn validate_discard(d: &BlkifRequestDiscard, dev: &VbdInfo) -> Result<Plan<'static>, Refusal> {
    if let Err(reason) = translate(true, d.sector_number, d.nr_sectors, dev) {
        return Err(Refusal::new(d.id, BLKIF_OP_DISCARD, reason, Tally::default()));
    }
    let tally = Tally::class(ReqClass::Discard);
    if !dev.features.discard {
        return Err(Refusal::new(d.id, BLKIF_OP_DISCARD, Reason::DiscardNotOffered, tally));
    }
    let secure = d.flag & BLKIF_DISCARD_SECURE != 0 && dev.features.discard_secure;
    Ok(Plan::Discard(DiscardPlan { id: d.id, handle: d.handle, sector_number: d.sector_number, nr_sectors: d.nr_sectors, secure, tally }))
}

/// `INDIRECT_PAGES(nr_segments)`: indirect pages holding `nr_segments`.
pub fn indirect_pages(nr_segments: u16) -> usize {
    usize::from(nr_segments).div_ceil(BLKIF_SEGS_PER_INDIRECT_FRAME)
}

/// The header checks of an indirect request (`dispatch_rw_block_io` up to
/// `xen_blkbk_parse_indirect`).
fn validate_indirect(ind: &BlkifRequestIndirect, dev: &VbdInfo) -> Result<Plan<'static>, Refusal> {
    let max = dev.max_indirect_segments();
    if max == 0 {
        return Err(Refusal::new(ind.id, BLKIF_OP_INDIRECT, Reason::IndirectNotOffered, Tally::default()));
    }
    let op = match ind.indirect_op {
        BLKIF_OP_READ => IoOp::Read,
        BLKIF_OP_WRITE => IoOp::Write,
        other => return Err(Refusal::new(ind.id, other, Reason::BadIndirectOperation, Tally::default())),
    };
    let tally = Tally::class(op.class());
    let refuse = |reason| Refusal::new(ind.id, op.blkif_op(), reason, tally);
    if ind.nr_segments == 0 {
        return Err(refuse(Reason::NoSegments));
    }
    if ind.nr_segments > max {
        return Err(refuse(Reason::TooManySegments));
    }
    let nr_pages = indirect_pages(ind.nr_segments);
    if nr_pages > BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST {
        return Err(refuse(Reason::TooManySegments));
    }
    Ok(Plan::FetchIndirect(IndirectFetch {
        op,
        id: ind.id,
        handle: ind.handle,
        sector_number: ind.sector_number,
        nr_segments: ind.nr_segments,
        tally,
        grefs: ind.indirect_grefs,
        nr_pages,
    }))
}

/// `xen_blkbk_parse_indirect` and what follows it: `pages` are private
/// copies of the pages behind [`IndirectFetch::grefs`], exactly as many.
/// Each of the first `nr_segments` segments is checked as a plain one, then
/// the whole range as in [`validate`].
pub fn parse_indirect<'a>(fetch: &IndirectFetch, pages: &'a [IndirectPage], dev: &VbdInfo) -> Result<Plan<'a>, Refusal> {
    let refuse = |reason| Refusal::new(fetch.id, fetch.op.blkif_op(), reason, Tally::default());
    if pages.len() != fetch.nr_pages {
        return Err(refuse(Reason::IndirectPagesMismatch));
    }
    let segs = pages.as_flattened().get(..usize::from(fetch.nr_segments)).ok_or_else(|| refuse(Reason::IndirectPagesMismatch))?;
    let nr_sectors = check_segments(segs).map_err(refuse)?;
    translate(fetch.op.writes(), fetch.sector_number, nr_sectors, dev).map_err(refuse)?;
    let head = Head { id: fetch.id, handle: fetch.handle, sector_number: fetch.sector_number };
    Ok(Plan::Io(io_plan(fetch.op, head, segs, nr_sectors, true, dev)))
}

/// What `__do_block_io_op` may do next with the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingGate {
    /// Copy request `req_cons` and validate it.
    Take,
    /// Nothing new, or every slot holds a request not yet answered
    /// (`RING_REQUEST_CONS_OVERFLOW`): wait for responses.
    Wait,
    /// `req_prod` claims more requests than the ring holds
    /// (`RING_REQUEST_PROD_OVERFLOW`): Linux stops serving the ring.
    Halt,
}

/// The ring checks `__do_block_io_op` makes before copying a request.
pub fn ring_gate(ring_size: u32, req_prod: RingIdx, req_cons: RingIdx, rsp_prod_pvt: RingIdx) -> RingGate {
    if request_prod_overflow(ring_size, req_prod, rsp_prod_pvt) {
        RingGate::Halt
    } else if req_cons == req_prod || request_cons_overflow(ring_size, req_cons, rsp_prod_pvt) {
        RingGate::Wait
    } else {
        RingGate::Take
    }
}
