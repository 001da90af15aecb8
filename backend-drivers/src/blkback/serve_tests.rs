//! Host tests of [`super::serve`]: a frontend ring over shared test pages,
//! a RAM disk and a fake grant table.

extern crate std;

use super::serve::*;
use super::stats::VbdStats;
use super::validate::{VbdFeatures, VbdInfo};
use crate::disk::{BlockDevice, RamDisk};
use std::collections::BTreeMap;
use std::vec;
use std::vec::Vec;
use xen_public::grant_table::GNTST_BAD_GNTREF;
use xen_public::io::blkif::*;
use xen_public::io::ring::FrontRing;
use xen_public::io::ring::fuzz::SharedPages;
use zerocopy::IntoBytes;

/// The frontend's granted pages, by grant reference.
#[derive(Default)]
struct FakeGrants(BTreeMap<u32, Vec<u8>>);

impl FakeGrants {
    fn page(&mut self, gref: u32, fill: u8) {
        self.0.insert(gref, vec![fill; 4096]);
    }
}

impl GrantCopier for FakeGrants {
    fn copy(&mut self, segs: &[SegCopy], buf: &mut [u8], to_guest: bool) -> Result<(), i16> {
        for s in segs {
            let page = self.0.get_mut(&s.gref).ok_or(GNTST_BAD_GNTREF)?;
            let (p, b) = (s.page_off as usize, s.buf_off);
            let len = s.len as usize;
            if to_guest {
                page[p..p + len].copy_from_slice(&buf[b..b + len]);
            } else {
                buf[b..b + len].copy_from_slice(&page[p..p + len]);
            }
        }
        Ok(())
    }
}

fn info(sectors: u64, read_only: bool) -> VbdInfo {
    let features = VbdFeatures { flush: true, barrier: false, discard: true, discard_secure: false, max_indirect_segments: 256, persistent: false };
    VbdInfo { sectors, read_only, features }
}

fn seg(gref: u32, first: u8, last: u8) -> BlkifRequestSegment {
    BlkifRequestSegment { gref, first_sect: first, last_sect: last, ..Default::default() }
}

fn rw(op: u8, id: u64, sector_number: u64, segs: &[BlkifRequestSegment]) -> BlkifRequest {
    let mut r = BlkifRequest { operation: op, nr_segments: segs.len() as u8, handle: 51712, id, sector_number, ..Default::default() };
    r.seg[..segs.len()].copy_from_slice(segs);
    r
}

struct Rig {
    pages: SharedPages,
    disk: RamDisk,
    grants: FakeGrants,
    stats: VbdStats,
    bounce: Bounce,
    info: VbdInfo,
}

impl Rig {
    fn new(sectors: u64, read_only: bool) -> Rig {
        Rig {
            pages: SharedPages::new(1),
            disk: RamDisk::zeroed(sectors, read_only).unwrap(),
            grants: FakeGrants::default(),
            stats: VbdStats::default(),
            bounce: Bounce::try_new().unwrap(),
            info: info(sectors, read_only),
        }
    }

    /// Push `reqs` as the frontend, serve with `budget`, collect responses.
    fn run(&mut self, reqs: &[BlkifRequest], budget: u32) -> (Served, Vec<BlkifResponse>) {
        let mut front: FrontRing<BlkifRequest, BlkifResponse, _> = FrontRing::init(&self.pages).unwrap();
        for r in reqs {
            front.produce_request(r).unwrap();
        }
        front.push_requests();
        let mut back = BlkBackRing::attach(&self.pages, 0).unwrap();
        let served = serve(&mut back, &mut self.disk, &mut self.grants, &self.info, &mut self.stats, &mut self.bounce, budget);
        let mut rsps = Vec::new();
        while let Ok(Some(r)) = front.consume_response() {
            rsps.push(r);
        }
        (served, rsps)
    }
}

#[test]
fn blkif_write_then_read_moves_the_granted_bytes_and_answers_okay_with_the_request_id() {
    let mut rig = Rig::new(64, false);
    rig.grants.page(7, 0x5a);
    rig.grants.page(8, 0);
    let w = rw(BLKIF_OP_WRITE, 41, 8, &[seg(7, 0, 7)]);
    let r = rw(BLKIF_OP_READ, 42, 8, &[seg(8, 2, 3)]);
    let (served, rsps) = rig.run(&[w, r], 32);
    assert_eq!(served.answered, 2);
    assert!(served.notify);
    assert_eq!((rsps[0].id, rsps[0].operation, rsps[0].status), (41, BLKIF_OP_WRITE, BLKIF_RSP_OKAY));
    assert_eq!((rsps[1].id, rsps[1].operation, rsps[1].status), (42, BLKIF_OP_READ, BLKIF_RSP_OKAY));
    assert!(rig.disk.bytes()[8 * 512..16 * 512].iter().all(|&b| b == 0x5a));
    // The read put sectors 8..10 at bytes 1024..2048 of page 8, nothing else.
    let p = &rig.grants.0[&8];
    assert!(p[..1024].iter().all(|&b| b == 0) && p[1024..2048].iter().all(|&b| b == 0x5a) && p[2048..].iter().all(|&b| b == 0));
    assert_eq!((rig.stats.wr_req, rig.stats.rd_req, rig.stats.wr_sect, rig.stats.rd_sect), (1, 1, 8, 2));
}

#[test]
fn blkif_bad_grant_ref_gets_rsp_error_and_the_disk_is_untouched() {
    let mut rig = Rig::new(64, false);
    rig.grants.page(7, 0x11);
    let w = rw(BLKIF_OP_WRITE, 1, 0, &[seg(7, 0, 7), seg(999, 0, 7)]);
    let (_, rsps) = rig.run(&[w], 32);
    assert_eq!(rsps[0].status, BLKIF_RSP_ERROR);
    assert!(rig.disk.bytes().iter().all(|&b| b == 0), "a write with one bad grant must not reach the disk");
}

#[test]
fn blkif_write_to_a_read_only_vbd_gets_rsp_error() {
    let mut rig = Rig::new(64, true);
    rig.grants.page(7, 0x11);
    let (_, rsps) = rig.run(&[rw(BLKIF_OP_WRITE, 5, 0, &[seg(7, 0, 7)])], 32);
    assert_eq!(rsps[0].status, BLKIF_RSP_ERROR);
    assert!(rig.disk.bytes().iter().all(|&b| b == 0));
}

#[test]
fn blkif_io_past_the_end_of_the_disk_gets_rsp_error() {
    let mut rig = Rig::new(16, false);
    rig.grants.page(7, 0x11);
    let (_, rsps) = rig.run(&[rw(BLKIF_OP_WRITE, 5, 12, &[seg(7, 0, 7)]), rw(BLKIF_OP_READ, 6, u64::MAX - 3, &[seg(7, 0, 7)])], 32);
    assert_eq!(rsps.iter().map(|r| r.status).collect::<Vec<_>>(), [BLKIF_RSP_ERROR, BLKIF_RSP_ERROR]);
}

#[test]
fn blkif_unknown_operation_gets_rsp_eopnotsupp() {
    let mut rig = Rig::new(16, false);
    let (_, rsps) = rig.run(&[rw(0x77, 9, 0, &[])], 32);
    assert_eq!((rsps[0].id, rsps[0].status), (9, BLKIF_RSP_EOPNOTSUPP));
}

#[test]
fn a_pump_budget_counts_flushes_and_bytes_not_only_requests() {
    let mut rig = Rig::new(64, false);
    rig.grants.page(7, 1);
    let flushes: Vec<_> = (0..4).map(|i| rw(BLKIF_OP_FLUSH_DISKCACHE, i, 0, &[])).collect();
    let (served, _) = rig.run(&flushes, FLUSH_COST + 1);
    assert_eq!((served.answered, served.more), (1, true), "one flush spends a small budget");
    assert_eq!(served.spent, 1 + FLUSH_COST, "and says what it spent");
}

#[test]
fn blkif_budget_bounds_one_call_and_says_more_is_left() {
    let mut rig = Rig::new(64, false);
    rig.grants.page(7, 1);
    let reqs: Vec<_> = (0..10).map(|i| rw(BLKIF_OP_READ, i, i, &[seg(7, 0, 0)])).collect();
    let (served, rsps) = rig.run(&reqs, 4);
    assert_eq!((served.answered, served.more, rsps.len()), (4, true, 4));
}

#[test]
fn blkif_flush_with_data_writes_it_and_discard_zeroes_the_range() {
    let mut rig = Rig::new(64, false);
    rig.grants.page(3, 0xee);
    let f = rw(BLKIF_OP_FLUSH_DISKCACHE, 1, 0, &[seg(3, 0, 7)]);
    let mut d = BlkifRequestDiscard { operation: BLKIF_OP_DISCARD, id: 2, sector_number: 2, nr_sectors: 2, ..Default::default() };
    d.handle = 51712;
    let mut dr = BlkifRequest::default();
    dr.as_mut_bytes()[..core::mem::size_of::<BlkifRequestDiscard>()].copy_from_slice(d.as_bytes());
    let (_, rsps) = rig.run(&[f, dr], 32);
    assert_eq!(rsps.iter().map(|r| (r.operation, r.status)).collect::<Vec<_>>(), [(BLKIF_OP_FLUSH_DISKCACHE, 0), (BLKIF_OP_DISCARD, 0)]);
    let b = rig.disk.bytes();
    assert!(b[..1024].iter().all(|&x| x == 0xee) && b[1024..2048].iter().all(|&x| x == 0) && b[2048..4096].iter().all(|&x| x == 0xee));
}

#[test]
fn blkif_indirect_write_of_64_segments_crosses_chunks_and_lands_in_order() {
    let mut rig = Rig::new(1024, false);
    // Indirect page 100 lists 64 one-page segments, grants 200..264,
    // each page filled with its index.
    let mut list = vec![0u8; 4096];
    for i in 0..64u32 {
        let s = seg(200 + i, 0, 7);
        list[i as usize * 8..i as usize * 8 + 8].copy_from_slice(s.as_bytes());
        rig.grants.page(200 + i, i as u8);
    }
    rig.grants.0.insert(100, list);
    let ind = BlkifRequestIndirect {
        operation: BLKIF_OP_INDIRECT,
        indirect_op: BLKIF_OP_WRITE,
        nr_segments: 64,
        id: 77,
        sector_number: 16,
        handle: 51712,
        indirect_grefs: [100, 0, 0, 0, 0, 0, 0, 0],
        ..Default::default()
    };
    let mut r = BlkifRequest::default();
    r.as_mut_bytes()[..64].copy_from_slice(ind.as_bytes());
    let (_, rsps) = rig.run(&[r], 32);
    assert_eq!((rsps[0].id, rsps[0].operation, rsps[0].status), (77, BLKIF_OP_WRITE, BLKIF_RSP_OKAY));
    assert_eq!((rig.stats.wr_req, rig.stats.wr_sect), (1, 512), "an indirect write counts once, with all its sectors");
    for i in 0..64usize {
        let at = (16 + i * 8) * 512;
        assert!(rig.disk.bytes()[at..at + 4096].iter().all(|&b| b == i as u8), "page {i}");
    }
}

#[test]
fn blkif_indirect_page_behind_a_bad_grant_gets_rsp_error() {
    let mut rig = Rig::new(1024, false);
    let ind = BlkifRequestIndirect {
        operation: BLKIF_OP_INDIRECT,
        indirect_op: BLKIF_OP_READ,
        nr_segments: 4,
        id: 3,
        handle: 51712,
        indirect_grefs: [4242, 0, 0, 0, 0, 0, 0, 0],
        ..Default::default()
    };
    let mut r = BlkifRequest::default();
    r.as_mut_bytes()[..64].copy_from_slice(ind.as_bytes());
    let (_, rsps) = rig.run(&[r], 32);
    assert_eq!((rsps[0].operation, rsps[0].status), (BLKIF_OP_READ, BLKIF_RSP_ERROR));
}

#[test]
fn ring_req_prod_a_ring_ahead_halts_serving_without_touching_the_disk() {
    let mut rig = Rig::new(64, false);
    rig.grants.page(7, 9);
    {
        let mut front: FrontRing<BlkifRequest, BlkifResponse, _> = FrontRing::init(&rig.pages).unwrap();
        front.produce_request(&rw(BLKIF_OP_WRITE, 1, 0, &[seg(7, 0, 7)])).unwrap();
        front.push_requests();
    }
    // A hostile frontend claims 1000 requests in a 32-slot ring.
    let mut p = &rig.pages;
    xen_public::io::ring::RingPages::store_idx(&mut p, 0, 1000);
    let mut back = BlkBackRing::attach(&rig.pages, 0).unwrap();
    let s = serve(&mut back, &mut rig.disk, &mut rig.grants, &rig.info, &mut rig.stats, &mut rig.bounce, 64);
    assert!(s.halted.is_some_and(|e| e.is_peer_fault()));
    assert_eq!(s.answered, 0);
    assert!(rig.disk.bytes().iter().all(|&b| b == 0));
    let _ = rig.disk.sectors();
}

/// A disk that records the order of what was asked of it.
struct Recorder(Vec<&'static str>, RamDisk);

impl BlockDevice for Recorder {
    fn sectors(&self) -> u64 {
        self.1.sectors()
    }
    fn read_only(&self) -> bool {
        false
    }
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), crate::disk::DiskError> {
        self.0.push("read");
        self.1.read(sector, buf)
    }
    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), crate::disk::DiskError> {
        self.0.push("write");
        self.1.write(sector, buf)
    }
    fn flush(&mut self) -> Result<(), crate::disk::DiskError> {
        self.0.push("flush");
        Ok(())
    }
    fn discard(&mut self, _: u64, _: u64) -> Result<(), crate::disk::DiskError> {
        self.0.push("discard");
        Err(crate::disk::DiskError::Io)
    }
}

#[test]
fn blkif_flush_diskcache_flushes_before_its_data_and_a_disk_error_is_rsp_error() {
    let pages = SharedPages::new(1);
    let mut disk = Recorder(Vec::new(), RamDisk::zeroed(64, false).unwrap());
    let mut grants = FakeGrants::default();
    grants.page(3, 0x77);
    let (mut stats, mut bounce, info) = (VbdStats::default(), Bounce::try_new().unwrap(), info(64, false));
    let mut front: FrontRing<BlkifRequest, BlkifResponse, _> = FrontRing::init(&pages).unwrap();
    front.produce_request(&rw(BLKIF_OP_FLUSH_DISKCACHE, 1, 0, &[seg(3, 0, 7)])).unwrap();
    let mut d = BlkifRequestDiscard { operation: BLKIF_OP_DISCARD, id: 2, sector_number: 0, nr_sectors: 8, ..Default::default() };
    d.handle = 51712;
    let mut dr = BlkifRequest::default();
    dr.as_mut_bytes()[..core::mem::size_of::<BlkifRequestDiscard>()].copy_from_slice(d.as_bytes());
    front.produce_request(&dr).unwrap();
    front.push_requests();
    let mut back = BlkBackRing::attach(&pages, 0).unwrap();
    serve(&mut back, &mut disk, &mut grants, &info, &mut stats, &mut bounce, 64);
    assert_eq!(disk.0, ["flush", "write", "discard"]);
    let statuses: Vec<_> = core::iter::from_fn(|| front.consume_response().ok().flatten()).map(|r| r.status).collect();
    assert_eq!(statuses, [BLKIF_RSP_OKAY, BLKIF_RSP_ERROR], "the device's discard failure is the frontend's error");
}
