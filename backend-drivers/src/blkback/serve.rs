//! Serving a blkif ring: Linux's `__do_block_io_op` and
//! `dispatch_rw_block_io` (drivers/block/xen-blkback/blkback.c) over a
//! [`BackRing`], a [`BlockDevice`] and a [`GrantCopier`] that moves bytes
//! between the frontend's granted pages and a dom0 buffer.
//!
//! Every request is copied out of the ring once, validated
//! ([`validate`]), and answered exactly once with the status of what was
//! done: `BLKIF_RSP_OKAY`, `BLKIF_RSP_ERROR` (a bad grant, a disk error,
//! a refused request) or `BLKIF_RSP_EOPNOTSUPP`. Data moves through the
//! caller's [`Bounce`] buffer in chunks of at most [`CHUNK_BYTES`], so a
//! 256-segment indirect request costs no more dom0 memory than a small
//! one.
//!
//! Invariants: the disk is touched only inside a validated plan (inside
//! the disk, writes only on a writable device); a grant fault is the
//! frontend's and ends that request only; a ring the frontend corrupted
//! ([`RingError::is_peer_fault`]) stops being served and is reported in
//! [`Served::halted`]; each call stops once its requests cost `budget`
//! (bytes moved and flushes count, see [`FLUSH_COST`]), so one busy
//! frontend cannot hold dom0.
#![forbid(unsafe_code)]

use super::stats::VbdStats;
use super::validate::{IndirectPage, IoOp, IoPlan, Plan, VbdInfo, parse_indirect, validate};
use crate::disk::{BlockDevice, DiskError};
use crate::ring::{BackRing, RingError, RingPages};
use alloc::vec::Vec;
use xen_public::grant_table::GNTST_GENERAL_ERROR;
use xen_public::io::blkif::{BLKIF_RSP_ERROR, BLKIF_RSP_OKAY, BLKIF_SEGS_PER_INDIRECT_FRAME, BlkifRequest, BlkifRequestSegment, BlkifResponse};
use zerocopy::IntoBytes;

/// The blkif back ring.
pub type BlkBackRing<M> = BackRing<BlkifRequest, BlkifResponse, M>;

/// Bytes of data moved per device access: 16 pages.
pub const CHUNK_BYTES: usize = 16 * 4096;

/// One copy between a granted page and the bounce buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegCopy {
    /// The frontend's grant.
    pub gref: u32,
    /// Byte offset in the granted page.
    pub page_off: u16,
    /// Byte offset in the buffer.
    pub buf_off: usize,
    /// Bytes; `page_off + len <= 4096`.
    pub len: u16,
}

/// Moves bytes between the frontend's granted pages and dom0 (grant copy,
/// or persistently mapped grants).
pub trait GrantCopier {
    /// Copy every `segs[i]` from the guest into `buf` (`to_guest` false)
    /// or from `buf` to the guest (true). `Err` with a `GNTST_*` status
    /// if any copy failed; the buffer's other bytes are then unspecified.
    fn copy(&mut self, segs: &[SegCopy], buf: &mut [u8], to_guest: bool) -> Result<(), i16>;
}

/// Dom0's bounce buffer: [`CHUNK_BYTES`] of data and one request's worth
/// of indirect pages, allocated once per device.
pub struct Bounce {
    data: Vec<u8>,
    indirect: Vec<IndirectPage>,
}

impl Bounce {
    /// The buffers, or `None` if the heap cannot hold them (the device is
    /// then refused, rather than dom0 aborting on a failed allocation).
    pub fn try_new() -> Option<Bounce> {
        let mut data = Vec::new();
        data.try_reserve_exact(CHUNK_BYTES).ok()?;
        data.resize(CHUNK_BYTES, 0);
        let mut indirect = Vec::new();
        indirect.try_reserve_exact(1).ok()?;
        Some(Bounce { data, indirect })
    }
}

/// What a call of [`serve`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Served {
    /// Requests answered.
    pub answered: u32,
    /// Budget spent on them (see [`FLUSH_COST`]).
    pub spent: u32,
    /// The frontend must be notified (`RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`).
    pub notify: bool,
    /// Requests are left (the budget ran out): serve again soon.
    pub more: bool,
    /// The ring is corrupt: stop serving it and disconnect.
    pub halted: Option<RingError>,
}

/// What a request costs against a pump's budget: 1, plus 1 per whole
/// [`CHUNK_BYTES`] moved, plus [`FLUSH_COST`] for a flush or barrier (a
/// flush can be an fdatasync on the host), so a budget bounds the work a
/// frontend gets per pump, not only its request count.
pub const FLUSH_COST: u32 = 8;

/// Serve requests from `ring` until they cost `budget` (see [`FLUSH_COST`]).
pub fn serve<M: RingPages, D: BlockDevice + ?Sized, G: GrantCopier>(
    ring: &mut BlkBackRing<M>,
    disk: &mut D,
    grants: &mut G,
    info: &VbdInfo,
    stats: &mut VbdStats,
    bounce: &mut Bounce,
    budget: u32,
) -> Served {
    let mut out = Served::default();
    loop {
        if out.spent >= budget {
            out.more = ring.unconsumed_requests().is_ok_and(|n| n > 0);
            break;
        }
        let req = match ring.consume_request() {
            Ok(Some(r)) => r,
            Ok(None) => match ring.final_check_for_requests() {
                Ok(true) => continue,
                Ok(false) => break,
                Err(e) => {
                    out.halted = Some(e);
                    break;
                }
            },
            Err(e) => {
                out.halted = Some(e);
                break;
            }
        };
        let (rsp, cost) = handle(&req, disk, grants, info, stats, bounce);
        out.spent = out.spent.saturating_add(cost);
        if let Err(e) = ring.produce_response(&rsp) {
            out.halted = Some(e);
            break;
        }
        out.answered += 1;
    }
    if out.answered > 0 {
        out.notify = ring.push_responses();
    }
    out
}

/// One request, start to response.
fn handle<D: BlockDevice + ?Sized, G: GrantCopier>(
    req: &BlkifRequest,
    disk: &mut D,
    grants: &mut G,
    info: &VbdInfo,
    stats: &mut VbdStats,
    bounce: &mut Bounce,
) -> (BlkifResponse, u32) {
    let plan = match validate(req, info) {
        Ok(p) => p,
        Err(refusal) => {
            stats.account_refusal(&refusal);
            return (refusal.response(), 1);
        }
    };
    match plan {
        Plan::Io(io) => {
            stats.account_plan(&plan);
            (plan.response(status(do_io(&io, disk, grants, bounce))), io_cost(&io))
        }
        Plan::Discard(d) => {
            stats.account_plan(&plan);
            (plan.response(status(disk.discard(d.sector_number, d.nr_sectors).map_err(|_| ()))), FLUSH_COST)
        }
        Plan::FetchIndirect(fetch) => {
            // The class is counted at the header, the sectors once parsed
            // (as Linux's dispatch_rw_block_io).
            stats.account_plan(&plan);
            if fetch_indirect(fetch.grefs(), grants, &mut bounce.indirect).is_err() {
                return (plan.response(BLKIF_RSP_ERROR), 1);
            }
            let pages = core::mem::take(&mut bounce.indirect);
            let rsp = match parse_indirect(&fetch, &pages, info) {
                Ok(p @ Plan::Io(io)) => {
                    stats.account_plan(&p);
                    (p.response(status(do_io(&io, disk, grants, bounce))), io_cost(&io))
                }
                Ok(other) => (other.response(BLKIF_RSP_ERROR), 1),
                Err(refusal) => {
                    stats.account_refusal(&refusal);
                    (refusal.response(), 1)
                }
            };
            bounce.indirect = pages;
            rsp
        }
    }
}

/// A read, write, flush or barrier's cost (see [`FLUSH_COST`]).
fn io_cost(io: &IoPlan<'_>) -> u32 {
    let chunks = (io.total_bytes() / CHUNK_BYTES as u64) as u32;
    1 + chunks + if matches!(io.op, IoOp::Flush | IoOp::Barrier) { FLUSH_COST } else { 0 }
}

fn status(r: Result<(), ()>) -> i16 {
    if r.is_ok() { BLKIF_RSP_OKAY } else { BLKIF_RSP_ERROR }
}

/// Copy the indirect pages behind `grefs` into `pages` (resized to fit).
fn fetch_indirect<G: GrantCopier>(grefs: &[u32], grants: &mut G, pages: &mut Vec<IndirectPage>) -> Result<(), i16> {
    pages.clear();
    pages.try_reserve_exact(grefs.len()).map_err(|_| GNTST_GENERAL_ERROR)?;
    pages.resize(grefs.len(), [BlkifRequestSegment::default(); BLKIF_SEGS_PER_INDIRECT_FRAME]);
    for (gref, page) in grefs.iter().zip(pages.iter_mut()) {
        let seg = SegCopy { gref: *gref, page_off: 0, buf_off: 0, len: 4096 };
        grants.copy(&[seg], page.as_mut_bytes(), false)?;
    }
    Ok(())
}

/// A read, write, flush or barrier: flush first for the latter two (the
/// blkif rule: completed writes are durable before this one), then the
/// data in chunks.
fn do_io<D: BlockDevice + ?Sized, G: GrantCopier>(io: &IoPlan<'_>, disk: &mut D, grants: &mut G, bounce: &mut Bounce) -> Result<(), ()> {
    if matches!(io.op, IoOp::Flush | IoOp::Barrier) {
        disk.flush().map_err(drop)?;
    }
    let mut chunk: heapless::Vec<SegCopy, 16> = heapless::Vec::new();
    let mut chunk_sector = io.sector_number;
    let mut used = 0usize;
    for seg in io.segments() {
        if chunk.is_full() || used + seg.len as usize > CHUNK_BYTES {
            move_chunk(io.op, chunk_sector, &chunk, used, disk, grants, &mut bounce.data)?;
            chunk.clear();
            chunk_sector = seg.sector;
            used = 0;
        }
        let copy = SegCopy { gref: seg.gref, page_off: seg.offset as u16, buf_off: used, len: seg.len as u16 };
        if chunk.push(copy).is_err() {
            return Err(());
        }
        used += seg.len as usize;
    }
    if !chunk.is_empty() {
        move_chunk(io.op, chunk_sector, &chunk, used, disk, grants, &mut bounce.data)?;
    }
    Ok(())
}

/// One chunk: disk to guest for a read, guest to disk otherwise.
fn move_chunk<D: BlockDevice + ?Sized, G: GrantCopier>(
    op: IoOp,
    sector: u64,
    segs: &[SegCopy],
    bytes: usize,
    disk: &mut D,
    grants: &mut G,
    buf: &mut [u8],
) -> Result<(), ()> {
    let buf = buf.get_mut(..bytes).ok_or(())?;
    if op == IoOp::Read {
        disk.read(sector, buf).map_err(|_: DiskError| ())?;
        grants.copy(segs, buf, true).map_err(drop)
    } else {
        grants.copy(segs, buf, false).map_err(drop)?;
        disk.write(sector, buf).map_err(drop)
    }
}
