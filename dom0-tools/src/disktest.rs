//! Dom0's disk at boot: the one probe and its line ([`probe_and_say`]),
//! and `test=disk`: a pattern written over the first 4 MiB, flushed, read
//! back and checked, the host's pre-filled MiB after it checked, and the
//! figures (sequential MiB/s, 4 KiB random-read IOPS by the PV clock);
//! and `diskbench=N` on the shell's command line ([`bench_if_asked`]): the
//! block benchmark's workload (`frontend_drivers::blkbench`, the one a
//! guest's `blk=bench` runs through blkfront/blkback) on the disk directly,
//! over the N MiB after the first N (which the guest's run uses), before
//! blkback serves the disk.
//!
//! Invariant: the disk is probed once per boot; without one dom0 says why
//! and goes on.

use alloc::vec;
use backend_drivers::disk::{BlockDevice, DiskError, SECTOR_SIZE};
use dom0_tools::cmdline;
use dom0_tools::vdisk::{self, DOM0_SEED, HOST_BYTES, HOST_SEED, TEST_BYTES, VirtioDisk};
use frontend_drivers::blkbench::{self, BenchDisk};
use pv_guest_kernel::alloc::EarlyAlloc;
use pv_guest_kernel::{StartInfo, println, shared};

/// Probe the disk and print `dom0: disk: ...`.
pub fn probe_and_say(si: &'static StartInfo, pages: &mut EarlyAlloc) -> Option<VirtioDisk> {
    match vdisk::probe(si, pages) {
        Ok(d) => {
            let (bus, dev, func) = d.location();
            let sectors = d.sectors();
            println!("dom0: disk: virtio-blk at {bus:02x}:{dev:02x}.{func}, {sectors} sectors ({} MiB)", (sectors * SECTOR_SIZE as u64) >> 20);
            Some(d)
        }
        Err(why) => {
            println!("dom0: disk: none ({why})");
            None
        }
    }
}

fn now() -> u64 {
    shared::now_ns().unwrap_or(0)
}

/// Write the pattern, flush, read back; (write ns, read ns) or the error.
fn sequential(disk: &mut VirtioDisk) -> Result<(u64, u64), &'static str> {
    const STEP: usize = 256 << 10;
    let mut buf = vec![0u8; STEP];
    let t0 = now();
    for off in (0..TEST_BYTES).step_by(STEP) {
        vdisk::fill_pattern(DOM0_SEED, off, &mut buf);
        disk.write(off / SECTOR_SIZE as u64, &buf).map_err(|_| "write failed")?;
    }
    disk.flush().map_err(|_| "flush failed")?;
    let t1 = now();
    for off in (0..TEST_BYTES).step_by(STEP) {
        buf.fill(0);
        disk.read(off / SECTOR_SIZE as u64, &mut buf).map_err(|_| "read failed")?;
        if vdisk::pattern_mismatch(DOM0_SEED, off, &buf).is_some() {
            return Err("read back differs from what was written");
        }
    }
    Ok((t1 - t0, now() - t1))
}

/// 4 KiB reads at pseudo-random 4 KiB offsets of the written area, each
/// checked and read into a buffer starting mid-page (so it may cross into
/// a frame that is not the next one); IOPS.
fn random_reads(disk: &mut VirtioDisk) -> Result<u64, &'static str> {
    const READS: u64 = 256;
    let mut store = vec![0u8; 3 * 4096];
    let buf = &mut store[2048..2048 + 4096];
    let t0 = now();
    for page in blkbench::RandomPages::new(TEST_BYTES / 4096).take(READS as usize) {
        let off = page * 4096;
        disk.read(off / SECTOR_SIZE as u64, buf).map_err(|_| "random read failed")?;
        if vdisk::pattern_mismatch(DOM0_SEED, off, buf).is_some() {
            return Err("random read differs");
        }
    }
    Ok(blkbench::per_s(READS, now() - t0))
}

/// `test=disk`.
pub fn run(si: &'static StartInfo, pages: &mut EarlyAlloc) {
    let va = pages.alloc_page().unwrap_or(0);
    shared::map(va, si.shared_info);
    let Some(mut disk) = probe_and_say(si, pages) else {
        println!("dom0: disk test: no disk, nothing to test");
        return;
    };
    let features = disk.device_features();
    println!(
        "dom0: disk test: flush {}, read-only {}, discard {}, {} KiB per request",
        if features & vdisk::VIRTIO_BLK_F_FLUSH != 0 { "offered" } else { "not offered" },
        disk.read_only(),
        if features & vdisk::VIRTIO_BLK_F_DISCARD != 0 { "offered (not used by virtio-drivers)" } else { "not offered" },
        disk.chunk_bytes() >> 10
    );
    if disk.sectors() * (SECTOR_SIZE as u64) < TEST_BYTES + HOST_BYTES {
        println!("dom0: disk test: disk smaller than {} MiB", (TEST_BYTES + HOST_BYTES) >> 20);
        return;
    }
    let mut host = vec![0u8; HOST_BYTES as usize];
    match disk.read(TEST_BYTES / SECTOR_SIZE as u64, &mut host) {
        Ok(()) if vdisk::pattern_mismatch(HOST_SEED, TEST_BYTES, &host).is_none() => {
            println!("dom0: disk test: the host's pre-filled MiB reads back: ok")
        }
        Ok(()) => println!("dom0: disk test: the host's pre-filled MiB differs"),
        Err(e) => println!("dom0: disk test: reading the host's MiB failed: {e:?}"),
    }
    let mut one = [0u8; SECTOR_SIZE];
    let past = disk.read(disk.sectors(), &mut one);
    println!("dom0: disk test: read past the end -> {}", if past == Err(DiskError::OutOfRange) { "OutOfRange" } else { "accepted" });
    let (w, r) = match sequential(&mut disk) {
        Ok(t) => t,
        Err(why) => {
            println!("dom0: disk test: {why}");
            return;
        }
    };
    println!("dom0: disk test: wrote {} MiB, flushed, read back: ok", TEST_BYTES >> 20);
    let iops = match random_reads(&mut disk) {
        Ok(iops) => iops,
        Err(why) => {
            println!("dom0: disk test: {why}");
            return;
        }
    };
    println!("dom0: disk test: 4 KiB random reads: ok");
    println!(
        "dom0: disk bench: sequential write {} MiB/s, sequential read {} MiB/s, 4 KiB random read {iops} IOPS",
        blkbench::mib_per_s(TEST_BYTES, w),
        blkbench::mib_per_s(TEST_BYTES, r)
    );
    println!("dom0: disk test: ok");
}

/// The disk as the shared benchmark workload sees it (byte offsets).
struct Direct<'a>(&'a mut VirtioDisk);

impl BenchDisk for Direct<'_> {
    type Error = DiskError;
    fn write(&mut self, at: u64, buf: &[u8]) -> Result<(), DiskError> {
        self.0.write(at / SECTOR_SIZE as u64, buf)
    }
    fn read(&mut self, at: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        self.0.read(at / SECTOR_SIZE as u64, buf)
    }
    fn flush(&mut self) -> Result<(), DiskError> {
        self.0.flush()
    }
}

/// With `diskbench=N` in `args`: the benchmark workload over bytes
/// `[N MiB, 2N MiB)` of `disk`, printed as `dom0: bench: blk_direct_<figure>
/// <value>` lines (a fresh range, as the guest's `[0, N MiB)` is).
pub fn bench_if_asked(args: &str, disk: Option<&mut VirtioDisk>) {
    let Some(mib) = cmdline::value(args, "diskbench").and_then(|v| v.parse::<u64>().ok()) else { return };
    let Some(disk) = disk else {
        println!("dom0: diskbench failed: no disk");
        return;
    };
    let bytes = mib << 20;
    if disk.sectors() * (SECTOR_SIZE as u64) < 2 * bytes {
        println!("dom0: diskbench failed: disk smaller than {} MiB", 2 * mib);
        return;
    }
    println!("dom0: diskbench: {} KiB, {} KiB per device request, polled", bytes >> 10, disk.chunk_bytes() >> 10);
    let mut buf = vec![0u8; blkbench::SEQ_STEP];
    match blkbench::run(&mut Direct(disk), &mut buf, bytes, bytes, now) {
        Ok(f) => {
            for (name, v) in f.named() {
                println!("dom0: bench: blk_direct_{name} {v}");
            }
        }
        Err((phase, e)) => println!("dom0: diskbench failed: {phase:?} {e:?}"),
    }
}
