//! The `blk=` modes of the demo guest, over blkfront
//! (`pv_guest_kernel::blkfront`) on `vdev=N` (51712, xvda, unless told):
//!
//! - `blk=write mib=N`: write the test pattern over the first N MiB,
//!   flush, print `blk: wrote N MiB ... flushed`, power off;
//! - `blk=check mib=N`: read N MiB back and check the pattern, then try to
//!   write one sector (a read-only vbd answers an error), power off;
//! - `blk=bench mib=N`: the block benchmark (`frontend_drivers::blkbench`:
//!   sequential write and read MiB/s, 4 KiB random reads per second) over
//!   the first N MiB, as `blk: bench: blk_guest_<figure> <value>` lines;
//! - `blk=evil`: a hostile frontend: every class of bad request (and a
//!   read into a page it granted read-only), each answer printed, then a
//!   forged ring index; it stays up afterwards;
//! - `blk=hold`: connect and keep the device (a second attach's test);
//! - `blk=churn`: write and read the disk without end (destroyed mid-I/O);
//! - `blk=hotplug`: no disk at start: wait for `xl block-attach`, connect,
//!   read, and close when `xl block-detach` closes the backend; repeat.
//!
//! Console contract: lines start with `blk: `; failures say `failed`.

use crate::xs::{cmdline, now, num, poweroff};
use frontend_drivers::blkbench::{self, BenchDisk};
use frontend_drivers::blkfront as req;
use pv_guest_kernel::alloc::EarlyAlloc;
use pv_guest_kernel::blkfront::{self, BlkDev, BlkError, Options};
use pv_guest_kernel::grants::Table;
use pv_guest_kernel::notes::VIRT_BASE;
use pv_guest_kernel::xenbus::live;
use pv_guest_kernel::{StartInfo, hypercall, println};
use xen_public::io::blkif::*;

/// The transfer buffer: 64 pages (256 KiB), four requests in flight.
const BUF_PAGES: u64 = 64;

/// Run the mode named by `blk=`; never returns.
pub fn run(si: &StartInfo) -> ! {
    let line = cmdline(si);
    let mode = line.split_ascii_whitespace().find_map(|w| w.strip_prefix("blk=")).unwrap_or("");
    let mib = num(line, "mib").unwrap_or(16);
    let devid = num(line, "vdev").unwrap_or(51712) as u32;
    let order = num(line, "ring-order").unwrap_or(1) as u32;
    let mut pages = EarlyAlloc::from_start_info(si.pt_base, si.nr_pt_frames, VIRT_BASE, si.nr_pages);
    let mut xs = match live::connect(si) {
        Ok(xs) => xs,
        Err(e) => fail("xenbus connect", e),
    };
    let Some(table_va) = pages.alloc_page() else { fail("no page", 0) };
    let table = match Table::setup(table_va) {
        Ok(t) => t,
        Err(e) => fail("grant table", e),
    };
    let word = |w: &str| line.split_ascii_whitespace().any(|x| x == w);
    let opts = Options { ring_page_order: order, indirect: !word("no-indirect"), persistent: !word("no-persistent") };
    if mode == "hotplug" {
        hotplug(si, &mut xs, &table, &mut pages, opts);
    }
    let mut dev = match blkfront::connect(si, &mut xs, &table, &mut pages, devid, opts) {
        Ok(d) => d,
        Err(e) => {
            println!("blk: connect failed: {e:?}");
            poweroff();
        }
    };
    let ro = dev.info.info & VDISK_READONLY != 0;
    println!(
        "blk: vdev {devid}: {} sectors ({} MiB){}, {} KiB per request{}",
        dev.info.sectors,
        dev.info.sectors / 2048,
        if ro { ", read-only" } else { "" },
        dev.request_bytes() / 1024,
        if dev.indirect() { " (indirect)" } else { "" }
    );
    let Some(base) = pages.alloc_run(BUF_PAGES) else { fail("no buffer pages", 0) };
    // SAFETY: `BUF_PAGES` pages of our initial region at `base`, handed out
    // once by the allocator, used only as this buffer.
    let buf = unsafe { core::slice::from_raw_parts_mut(base as *mut u8, (BUF_PAGES * 4096) as usize) };
    let bytes = (mib << 20).min(dev.info.sectors * 512);
    match mode {
        "write" => write_pattern(&mut dev, buf, bytes),
        "check" => check_pattern(&mut dev, buf, bytes),
        "bench" => bench(&mut dev, buf, bytes),
        "evil" => evil(&mut dev, &table, si),
        "churn" => churn(&mut dev, buf, bytes),
        "hold" => println!("blk: holding the device"),
        other => println!("blk: unknown mode {other:?}"),
    }
    if mode == "evil" || mode == "hold" {
        loop {
            hypercall::sched_block();
        }
    }
    dev.close(&mut xs);
    println!("blk: closed");
    poweroff();
}

/// Wait for devices under `device/vbd` (one at a time), connect each,
/// read its first sector, and close it when the backend closes.
fn hotplug(si: &StartInfo, xs: &mut live::Xenbus, table: &Table, pages: &mut EarlyAlloc, opts: Options) -> ! {
    if let Err(e) = xs.watch("device/vbd", "hotplug") {
        fail("watch device/vbd", e);
    }
    println!("blk: hotplug: waiting for a disk");
    let mut ev = [0u8; 160];
    let mut sector = [0u8; 512];
    loop {
        let devid = match xs.wait_watch_event(Some("hotplug"), &mut ev, u64::MAX / 4) {
            Ok(e) => e.path.strip_prefix("device/vbd/").and_then(|r| r.split('/').next()).and_then(|d| d.parse::<u32>().ok()),
            Err(_) => None,
        };
        let Some(devid) = devid else { continue };
        let mut state = [0u8; 8];
        let st: heapless::String<48> = {
            let mut p = heapless::String::new();
            let _ = core::fmt::Write::write_fmt(&mut p, format_args!("device/vbd/{devid}/state"));
            p
        };
        if xs.read_str(pv_guest_kernel::xenbus::XBT_NIL, &st, &mut state) != Ok("1") {
            continue;
        }
        // Our own writes under device/vbd would fire this watch and crowd
        // the backend's events out of the client's queue: off meanwhile.
        // (the client keeps 8 events), until the device is closed again.
        let _ = xs.unwatch("device/vbd", "hotplug");
        while xs.wait_watch_event(Some("hotplug"), &mut ev, 0).is_ok() {}
        match blkfront::connect(si, xs, table, pages, devid, opts) {
            Ok(mut dev) => {
                let r = dev.read(0, &mut sector);
                println!(
                    "blk: hotplug: vdev {devid} connected, {} sectors, sector 0 read -> {}",
                    dev.info.sectors,
                    if r.is_ok() { "okay" } else { "failed" }
                );
                while !dev.follow_backend(xs, u64::MAX / 4) {}
                println!("blk: hotplug: vdev {devid} closed by the backend");
            }
            Err(e) => println!("blk: hotplug: vdev {devid}: connect failed: {e:?}"),
        }
        let _ = xs.watch("device/vbd", "hotplug");
    }
}

/// Write and read the disk over and over (never returns).
fn churn(dev: &mut BlkDev, buf: &mut [u8], bytes: u64) {
    println!("blk: churning");
    let n = (buf.len() as u64).min(bytes) as usize;
    loop {
        let _ = dev.write(0, &buf[..n]);
        let _ = dev.read(0, &mut buf[..n]);
    }
}

fn fail(what: &str, e: i64) -> ! {
    println!("blk: {what} failed: {e}");
    poweroff();
}

fn write_pattern(dev: &mut BlkDev, buf: &mut [u8], bytes: u64) {
    let t0 = now();
    let mut at = 0;
    while at < bytes {
        let n = (bytes - at).min(buf.len() as u64) as usize;
        req::fill_pattern(req::GUEST_SEED, at, &mut buf[..n]);
        if let Err(e) = dev.write(at / 512, &buf[..n]) {
            println!("blk: write at byte {at} failed: {e:?}");
            return;
        }
        at += n as u64;
    }
    let flushed = dev.flush();
    let ns = now() - t0;
    match flushed {
        Ok(()) => println!("blk: wrote {} KiB of pattern in {} ms ({} MiB/s), flushed", bytes >> 10, ns / 1_000_000, blkbench::mib_per_s(bytes, ns)),
        Err(e) => println!("blk: flush failed: {e:?}"),
    }
}

fn check_pattern(dev: &mut BlkDev, buf: &mut [u8], bytes: u64) {
    let t0 = now();
    let mut at = 0;
    while at < bytes {
        let n = (bytes - at).min(buf.len() as u64) as usize;
        if let Err(e) = dev.read(at / 512, &mut buf[..n]) {
            println!("blk: read at byte {at} failed: {e:?}");
            return;
        }
        if let Some(bad) = req::pattern_mismatch(req::GUEST_SEED, at, &buf[..n]) {
            println!("blk: pattern check failed at byte {bad}");
            return;
        }
        at += n as u64;
    }
    let ns = now() - t0;
    println!("blk: checked {} KiB: pattern intact ({} MiB/s)", bytes >> 10, blkbench::mib_per_s(bytes, ns));
    match dev.write(0, &buf[..512]) {
        Ok(()) => println!("blk: write of sector 0 -> okay"),
        Err(e) => println!("blk: write of sector 0 -> {e:?}"),
    }
}

/// A vbd as the shared benchmark workload sees it (byte offsets).
struct Bench<'a>(&'a mut BlkDev);

impl BenchDisk for Bench<'_> {
    type Error = BlkError;
    fn write(&mut self, at: u64, buf: &[u8]) -> Result<(), BlkError> {
        self.0.write(at / 512, buf)
    }
    fn read(&mut self, at: u64, buf: &mut [u8]) -> Result<(), BlkError> {
        self.0.read(at / 512, buf)
    }
    fn flush(&mut self) -> Result<(), BlkError> {
        self.0.flush()
    }
}

/// `blk=bench`: `frontend_drivers::blkbench`'s workload over the first
/// `bytes` (dom0's `diskbench` runs the same one on its disk directly),
/// printed as `blk: bench: blk_guest_<figure> <value>` lines, then
/// `blk: bench done`.
fn bench(dev: &mut BlkDev, buf: &mut [u8], bytes: u64) {
    println!("blk: bench: {} KiB, {} KiB per request, {} in flight", bytes >> 10, dev.request_bytes() >> 10, blkfront::SLOTS);
    match blkbench::run(&mut Bench(dev), buf, 0, bytes, now) {
        Ok(f) => {
            for (name, v) in f.named() {
                println!("blk: bench: blk_guest_{name} {v}");
            }
            println!("blk: bench done");
        }
        Err((phase, e)) => println!("blk: bench failed: {phase:?} {e:?}"),
    }
}

/// One hand-built request; its answer by name.
fn answer(dev: &mut BlkDev, r: BlkifRequest) -> &'static str {
    match dev.one(r) {
        Ok(()) => "okay",
        Err(BlkError::Status(BLKIF_RSP_ERROR)) => "error",
        Err(BlkError::Status(BLKIF_RSP_EOPNOTSUPP)) => "eopnotsupp",
        Err(BlkError::Status(_)) => "other status",
        Err(BlkError::Timeout) => "no answer",
        Err(_) => "broken",
    }
}

fn rw(op: u8, sector: u64, segs: &[BlkifRequestSegment]) -> BlkifRequest {
    let mut r = BlkifRequest { operation: op, nr_segments: segs.len() as u8, handle: 51712, sector_number: sector, ..Default::default() };
    for (d, s) in r.seg.iter_mut().zip(segs) {
        *d = *s;
    }
    r
}

fn seg(gref: u32, first: u8, last: u8) -> BlkifRequestSegment {
    BlkifRequestSegment { gref, first_sect: first, last_sect: last, ..Default::default() }
}

/// Every class of bad request, then a forged `req_prod`.
fn evil(dev: &mut BlkDev, table: &Table, si: &StartInfo) {
    let g = dev.slot_gref(0, 0);
    let end = dev.info.sectors;
    let cases: [(&str, BlkifRequest); 11] = [
        ("bad grant ref", rw(BLKIF_OP_READ, 0, &[seg(0xdead, 0, 7)])),
        ("first_sect > last_sect", rw(BLKIF_OP_READ, 0, &[seg(g, 5, 2)])),
        ("last_sect past the page", rw(BLKIF_OP_READ, 0, &[seg(g, 0, 8)])),
        ("sector past the disk", rw(BLKIF_OP_READ, end, &[seg(g, 0, 7)])),
        ("sector range wraps", rw(BLKIF_OP_WRITE, u64::MAX - 2, &[seg(g, 0, 7)])),
        ("12 segments", {
            let mut r = rw(BLKIF_OP_READ, 0, &[seg(g, 0, 0); 11]);
            r.nr_segments = 12;
            r
        }),
        ("no segments", rw(BLKIF_OP_WRITE, 0, &[])),
        ("unknown operation", rw(0x42, 0, &[seg(g, 0, 7)])),
        ("indirect, 0 segments", req::indirect_request(BLKIF_OP_READ, 0, 51712, 0, 0, &[g])),
        ("indirect, bad indirect grant", req::indirect_request(BLKIF_OP_READ, 0, 51712, 0, 8, &[0xbeef])),
        ("discard past the disk", req::discard_request(0, 51712, end, 8)),
    ];
    for (what, r) in cases {
        println!("blk: evil: {what} -> {}", answer(dev, r));
    }
    // A read into a page granted read-only: dom0 would have to write the
    // guest's memory against its grant (a persistent map is writable, a
    // grant copy writes): refused by the hypervisor, answered with an error.
    dev.regrant(table, si, 1, 0, true);
    let ro = dev.slot_gref(1, 0);
    println!("blk: evil: read into a read-only grant -> {}", answer(dev, rw(BLKIF_OP_READ, 0, &[seg(ro, 0, 7)])));
    dev.regrant(table, si, 1, 0, false);
    let good = rw(BLKIF_OP_READ, 0, &[seg(g, 0, 7)]);
    println!("blk: evil: a good read after them -> {}", answer(dev, good));
    dev.corrupt_req_prod(1000);
    println!("blk: evil: forged req_prod (+1000) sent");
    println!("blk: evil: done");
}
