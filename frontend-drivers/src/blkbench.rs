//! The block benchmark's workload, one definition for both sides that
//! `cargo xtask bench` compares: dom0 on its virtio disk directly, and a
//! guest through blkfront/blkback. [`run`] does, over `bytes` from byte
//! `base` of a [`BenchDisk`]:
//!
//! 1. sequential writes of [`SEQ_STEP`] bytes each, then one flush (the
//!    flush is inside the write time: the data is on the device);
//! 2. sequential reads of the same range, [`SEQ_STEP`] bytes each;
//! 3. [`RAND_READS`] 4 KiB reads at page offsets of the range drawn by
//!    [`RandomPages`] (xorshift64 from [`RAND_SEED`]), one at a time.
//!
//! Each phase is timed by the caller's clock (the PV clock on both sides)
//! and reported as [`Figures`], printed as `bench: blk_<side>_<figure>
//! <value>` lines ([`Figures::named`]).
//!
//! Invariant: the accesses depend only on `base`, `bytes` and the
//! constants here, so two sides running [`run`] with the same range issue
//! the same requests in the same order; nothing is read or written outside
//! `[base, base + bytes)`.
#![forbid(unsafe_code)]

/// Bytes per sequential call (each side cuts it into its own requests).
pub const SEQ_STEP: usize = 256 << 10;
/// Random 4 KiB reads.
pub const RAND_READS: u64 = 1000;
/// The random reads' xorshift64 seed.
pub const RAND_SEED: u64 = 0x2545_f491_4f6c_dd1d;
/// Bytes per random read.
pub const RAND_BYTES: usize = 4096;

/// A disk as the benchmark sees it: byte offsets, whole sectors.
pub trait BenchDisk {
    /// What a failed access says.
    type Error;
    /// Write `buf` at byte `at`.
    fn write(&mut self, at: u64, buf: &[u8]) -> Result<(), Self::Error>;
    /// Read `buf.len()` bytes from byte `at`.
    fn read(&mut self, at: u64, buf: &mut [u8]) -> Result<(), Self::Error>;
    /// Make every completed write durable.
    fn flush(&mut self) -> Result<(), Self::Error>;
}

/// The phase that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The buffer is smaller than [`SEQ_STEP`] or the range is empty or
    /// not whole pages.
    Setup,
    /// Sequential writes or their flush.
    Write,
    /// Sequential reads.
    Read,
    /// Random reads.
    RandomRead,
}

/// The page indices (of `pages`) the random reads visit: xorshift64
/// (13, 7, 17) from [`RAND_SEED`], each value modulo `pages`.
pub struct RandomPages {
    x: u64,
    pages: u64,
}

impl RandomPages {
    /// The sequence over `pages` pages (at least 1).
    pub fn new(pages: u64) -> RandomPages {
        RandomPages { x: RAND_SEED, pages: pages.max(1) }
    }
}

impl Iterator for RandomPages {
    type Item = u64;
    fn next(&mut self) -> Option<u64> {
        self.x ^= self.x << 13;
        self.x ^= self.x >> 7;
        self.x ^= self.x << 17;
        Some(self.x % self.pages)
    }
}

/// One run's results.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Figures {
    /// Sequential write (with its flush), MiB/s in hundredths.
    pub seq_write_centi_mib_s: u64,
    /// Sequential read, MiB/s in hundredths.
    pub seq_read_centi_mib_s: u64,
    /// Random 4 KiB reads per second.
    pub rand_read_4k_iops: u64,
}

/// A figure as printed: whole or with two decimals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value {
    /// Hundredths, printed `N.NN`.
    Centi(u64),
    /// A whole number.
    Whole(u64),
}

impl core::fmt::Display for Value {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Value::Centi(c) => write!(f, "{}.{:02}", c / 100, c % 100),
            Value::Whole(n) => write!(f, "{n}"),
        }
    }
}

impl Figures {
    /// Each figure's name (the part after `blk_<side>_`) and value.
    pub fn named(&self) -> [(&'static str, Value); 3] {
        [
            ("seq_write_mib_s", Value::Centi(self.seq_write_centi_mib_s)),
            ("seq_read_mib_s", Value::Centi(self.seq_read_centi_mib_s)),
            ("rand_read_4k_iops", Value::Whole(self.rand_read_4k_iops)),
        ]
    }
}

/// Hundredths of MiB/s for `bytes` in `ns` (0 ns counts as 1; saturates).
pub fn centi_mib_per_s(bytes: u64, ns: u64) -> u64 {
    saturate((u128::from(bytes) * 100 * 1_000_000_000 / u128::from(ns.max(1))) >> 20)
}

/// Whole MiB/s for `bytes` in `ns` (0 ns counts as 1; saturates).
pub fn mib_per_s(bytes: u64, ns: u64) -> u64 {
    centi_mib_per_s(bytes, ns) / 100
}

/// Operations per second for `ops` in `ns` (0 ns counts as 1; saturates).
pub fn per_s(ops: u64, ns: u64) -> u64 {
    saturate(u128::from(ops) * 1_000_000_000 / u128::from(ns.max(1)))
}

fn saturate(v: u128) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// Run the workload over `[base, base + bytes)` of `disk` with `buf` (at
/// least [`SEQ_STEP`] bytes; its contents are written as they are), timed
/// by `clock` (ns). A failure names its phase and carries the disk's
/// error (none for [`Phase::Setup`]).
pub fn run<D: BenchDisk>(
    disk: &mut D,
    buf: &mut [u8],
    base: u64,
    bytes: u64,
    mut clock: impl FnMut() -> u64,
) -> Result<Figures, (Phase, Option<D::Error>)> {
    if buf.len() < SEQ_STEP || bytes == 0 || !bytes.is_multiple_of(RAND_BYTES as u64) {
        return Err((Phase::Setup, None));
    }
    let buf = &mut buf[..SEQ_STEP];
    let steps = || (0..bytes).step_by(SEQ_STEP).map(move |off| (base + off, (bytes - off).min(SEQ_STEP as u64) as usize));
    let t0 = clock();
    for (at, n) in steps() {
        disk.write(at, &buf[..n]).map_err(|e| (Phase::Write, Some(e)))?;
    }
    disk.flush().map_err(|e| (Phase::Write, Some(e)))?;
    let t1 = clock();
    for (at, n) in steps() {
        disk.read(at, &mut buf[..n]).map_err(|e| (Phase::Read, Some(e)))?;
    }
    let t2 = clock();
    let pages = bytes / RAND_BYTES as u64;
    for page in RandomPages::new(pages).take(RAND_READS as usize) {
        disk.read(base + page * RAND_BYTES as u64, &mut buf[..RAND_BYTES]).map_err(|e| (Phase::RandomRead, Some(e)))?;
    }
    let t3 = clock();
    Ok(Figures {
        seq_write_centi_mib_s: centi_mib_per_s(bytes, t1.saturating_sub(t0)),
        seq_read_centi_mib_s: centi_mib_per_s(bytes, t2.saturating_sub(t1)),
        rand_read_4k_iops: per_s(RAND_READS, t3.saturating_sub(t2)),
    })
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;
    use std::vec::Vec;

    /// A disk that records every access; it fails the `fail_at`th call.
    #[derive(Default)]
    struct Recorder {
        log: Vec<(char, u64, usize)>,
        fail_at: Option<usize>,
    }

    #[derive(Debug, PartialEq)]
    struct Failed;

    impl Recorder {
        fn note(&mut self, op: char, at: u64, len: usize) -> Result<(), Failed> {
            if self.fail_at == Some(self.log.len()) {
                return Err(Failed);
            }
            self.log.push((op, at, len));
            Ok(())
        }
    }

    impl BenchDisk for Recorder {
        type Error = Failed;
        fn write(&mut self, at: u64, buf: &[u8]) -> Result<(), Failed> {
            self.note('w', at, buf.len())
        }
        fn read(&mut self, at: u64, buf: &mut [u8]) -> Result<(), Failed> {
            self.note('r', at, buf.len())
        }
        fn flush(&mut self) -> Result<(), Failed> {
            self.note('f', 0, 0)
        }
    }

    /// A clock that advances `step` ns per reading.
    fn ticking(step: u64) -> impl FnMut() -> u64 {
        let mut t = 0;
        move || {
            t += step;
            t
        }
    }

    const MIB: u64 = 1 << 20;

    #[test]
    fn both_sides_issue_the_same_requests_in_the_same_order() {
        let (mut a, mut b) = (Recorder::default(), Recorder::default());
        let mut buf = std::vec![0u8; SEQ_STEP];
        run(&mut a, &mut buf, 0, 2 * MIB, ticking(1)).unwrap();
        run(&mut b, &mut buf, 0, 2 * MIB, ticking(7)).unwrap();
        assert_eq!(a.log, b.log, "the clock does not change the accesses");
        let writes: Vec<_> = a.log.iter().take_while(|o| o.0 == 'w').collect();
        assert_eq!(writes.len(), 8, "2 MiB in 256 KiB steps");
        assert_eq!(a.log[8], ('f', 0, 0), "one flush after the writes");
        assert!(a.log[9..17].iter().zip((0..).step_by(SEQ_STEP)).all(|(o, at)| *o == ('r', at, SEQ_STEP)));
        assert_eq!(a.log.len() as u64, 17 + RAND_READS);
    }

    #[test]
    fn every_access_stays_inside_the_range() {
        let mut d = Recorder::default();
        let mut buf = std::vec![0u8; SEQ_STEP + 100];
        let (base, bytes) = (16 * MIB, 300 * 1024);
        run(&mut d, &mut buf, base, bytes, ticking(1)).unwrap();
        for &(op, at, len) in d.log.iter().filter(|o| o.0 != 'f') {
            assert!(at >= base && at + len as u64 <= base + bytes, "{op} at {at:#x} len {len}");
            assert!(at.is_multiple_of(512) && len.is_multiple_of(512));
        }
        assert!(d.log.iter().any(|o| *o == ('w', base + SEQ_STEP as u64, 300 * 1024 - SEQ_STEP)), "a short last step");
    }

    #[test]
    fn random_pages_are_xorshift64_from_the_seed_and_in_range() {
        let mut x = RAND_SEED;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        assert_eq!(RandomPages::new(4096).next(), Some(x % 4096));
        assert!(RandomPages::new(10).take(1000).all(|p| p < 10));
        assert!(RandomPages::new(0).take(10).all(|p| p == 0), "an empty range is one page, never a division by zero");
        let distinct: std::collections::BTreeSet<u64> = RandomPages::new(4096).take(1000).collect();
        assert!(distinct.len() > 800, "spread over the range: {}", distinct.len());
    }

    #[test]
    fn figures_come_from_the_phase_times() {
        let mut d = Recorder::default();
        let mut buf = std::vec![0u8; SEQ_STEP];
        // Each phase takes one clock step: 1 s.
        let f = run(&mut d, &mut buf, 0, 4 * MIB, ticking(1_000_000_000)).unwrap();
        assert_eq!(f, Figures { seq_write_centi_mib_s: 400, seq_read_centi_mib_s: 400, rand_read_4k_iops: RAND_READS });
        let lines: Vec<_> = f.named().iter().map(|(n, v)| std::format!("{n} {v}")).collect();
        assert_eq!(lines, ["seq_write_mib_s 4.00", "seq_read_mib_s 4.00", "rand_read_4k_iops 1000"]);
        assert_eq!(Value::Centi(1205).to_string(), "12.05");
    }

    #[test]
    fn a_stopped_clock_or_a_huge_range_does_not_divide_by_zero_or_overflow() {
        assert_eq!(per_s(5, 0), 5_000_000_000);
        assert_eq!(centi_mib_per_s(u64::MAX, 1), u64::MAX);
        assert_eq!(per_s(u64::MAX, 1), u64::MAX);
        assert_eq!(centi_mib_per_s(1 << 20, 1_000_000_000), 100);
        assert_eq!(mib_per_s(3 << 20, 1_000_000_000), 3);
    }

    #[test]
    fn a_failed_access_names_its_phase_and_stops() {
        let mut buf = std::vec![0u8; SEQ_STEP];
        for (fail_at, phase) in [(0, Phase::Write), (4, Phase::Write), (5, Phase::Read), (9, Phase::RandomRead)] {
            let mut d = Recorder { fail_at: Some(fail_at), ..Default::default() };
            assert_eq!(run(&mut d, &mut buf, 0, MIB, ticking(1)), Err((phase, Some(Failed))));
            assert_eq!(d.log.len(), fail_at, "nothing after the failure");
        }
    }

    #[test]
    fn a_short_buffer_or_a_ragged_range_is_refused_before_any_access() {
        let mut d = Recorder::default();
        let mut small = std::vec![0u8; SEQ_STEP - 1];
        assert_eq!(run(&mut d, &mut small, 0, MIB, ticking(1)).map_err(|e| e.0), Err(Phase::Setup));
        let mut buf = std::vec![0u8; SEQ_STEP];
        assert_eq!(run(&mut d, &mut buf, 0, 0, ticking(1)).map_err(|e| e.0), Err(Phase::Setup));
        assert_eq!(run(&mut d, &mut buf, 0, MIB + 512, ticking(1)).map_err(|e| e.0), Err(Phase::Setup));
        assert!(d.log.is_empty());
    }
}
