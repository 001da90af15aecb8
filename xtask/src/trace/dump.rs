//! xentrace's dump file: read and write it.
//!
//! Xen 4.17's `tools/xentrace/xentrace.c` (`write_buffer`) writes, for each
//! window of a per-CPU buffer it drains, a `cpu_change_record`: the header
//! word `TRC_TRACE_CPU_CHANGE | 2 << 28` (two extra words, no TSC), then
//! `int cpu` and `unsigned window_size`, then `window_size` bytes of raw
//! `t_rec` records copied from the buffer (a window that wraps is written in
//! two pieces but after one header, so the bytes are contiguous). All words
//! are little-endian. Windows of different CPUs interleave in the file.
//!
//! Invariant: [`parse`] keeps every record of every window in file order,
//! per CPU. `TRC_TRACE_WRAP_BUFFER` padding is skipped but counted;
//! `TRC_LOST_RECORDS` records stay in the stream (and [`Dump::lost`] lists
//! them): nothing is dropped silently. A window that ends inside a record,
//! or a file that ends inside a window, is an error.

use std::collections::BTreeMap;

use xen_public::trace::{Event, RecordError, TRC_LOST_RECORDS, TRC_TRACE_CPU_CHANGE, TRC_TRACE_WRAP_BUFFER, TraceRecord, records_in};

/// One window: a CPU and the records xentrace copied from its buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// The pCPU.
    pub cpu: u32,
    /// Its records, in buffer order (wrap padding removed).
    pub records: Vec<TraceRecord>,
}

/// A parsed dump.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dump {
    /// The windows, in file order.
    pub chunks: Vec<Chunk>,
    /// `TRC_TRACE_WRAP_BUFFER` padding records skipped.
    pub wrap_records: usize,
}

/// A `TRC_LOST_RECORDS` record found in a dump.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lost {
    /// The pCPU whose buffer overflowed.
    pub cpu: u32,
    /// Records dropped.
    pub lost: u32,
    /// TSC of the first dropped record.
    pub first_tsc: u64,
    /// TSC of the lost-records record itself (when tracing resumed).
    pub tsc: Option<u64>,
}

/// Why a dump could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DumpError {
    /// At `offset`, a record other than a cpu-change record starts a window.
    ExpectedCpuChange {
        /// File offset.
        offset: usize,
        /// The header word found.
        header: u32,
    },
    /// A record at `offset` could not be decoded (truncated by the file or
    /// by its window).
    BadRecord {
        /// File offset.
        offset: usize,
        /// Why.
        error: RecordError,
    },
    /// The window at `offset` announces more bytes than the file holds.
    ShortWindow {
        /// File offset of the cpu-change record.
        offset: usize,
        /// Bytes announced.
        window_size: u32,
        /// Bytes left.
        left: usize,
    },
}

impl std::fmt::Display for DumpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DumpError::ExpectedCpuChange { offset, header } => {
                write!(f, "dump offset {offset:#x}: expected a cpu-change record, found header {header:#010x}")
            }
            DumpError::BadRecord { offset, error } => write!(f, "dump offset {offset:#x}: bad record: {error:?}"),
            DumpError::ShortWindow { offset, window_size, left } => {
                write!(f, "dump offset {offset:#x}: window of {window_size} bytes, only {left} left in the file")
            }
        }
    }
}

impl Dump {
    /// Each CPU's records, windows concatenated in file order.
    pub fn per_cpu(&self) -> BTreeMap<u32, Vec<TraceRecord>> {
        let mut out: BTreeMap<u32, Vec<TraceRecord>> = BTreeMap::new();
        for c in &self.chunks {
            out.entry(c.cpu).or_default().extend_from_slice(&c.records);
        }
        out
    }

    /// Every lost-records record, in file order.
    pub fn lost(&self) -> Vec<Lost> {
        let mut out = Vec::new();
        for c in &self.chunks {
            for r in c.records.iter().filter(|r| r.event() == TRC_LOST_RECORDS) {
                if let Ok(Event::LostRecords { lost, first_tsc, .. }) = r.decode_event() {
                    out.push(Lost { cpu: c.cpu, lost, first_tsc, tsc: r.tsc() });
                }
            }
        }
        out
    }
}

/// Parse a dump written by xentrace (or by [`write`]).
pub fn parse(bytes: &[u8]) -> Result<Dump, DumpError> {
    let mut dump = Dump::default();
    let mut off = 0;
    while off < bytes.len() {
        let (rec, used) = TraceRecord::decode_bytes(&bytes[off..]).map_err(|error| DumpError::BadRecord { offset: off, error })?;
        let (cpu, window_size) = match (rec.event(), rec.decode_event()) {
            (TRC_TRACE_CPU_CHANGE, Ok(Event::CpuChange { cpu, window_size })) => (cpu, window_size),
            _ => return Err(DumpError::ExpectedCpuChange { offset: off, header: rec.header() }),
        };
        let start = off + used;
        let left = bytes.len() - start;
        if window_size as usize > left {
            return Err(DumpError::ShortWindow { offset: off, window_size, left });
        }
        let end = start + window_size as usize;
        let mut records = Vec::new();
        for r in records_in(&bytes[start..end]) {
            let (_, _, rec) = r.map_err(|(at, error)| DumpError::BadRecord { offset: start + at, error })?;
            if rec.event() == TRC_TRACE_WRAP_BUFFER {
                dump.wrap_records += 1;
            } else {
                records.push(rec);
            }
        }
        dump.chunks.push(Chunk { cpu, records });
        off = end;
    }
    Ok(dump)
}

/// Whether xenalyze 4.17 can process `event`: its `find_toplevel_event`
/// wants exactly one of the class bits 0..=7 (GEN..HW) set in `event >> 16`.
/// On any other record (xen-core's class 0x400, Xen's own `TRC_GUEST`) it
/// stops: it exits at its default `--tolerance=3`, and at 4 or more it loops
/// forever on the record (it returns before advancing its file offset).
pub fn xenalyze_knows(event: u32) -> bool {
    ((event >> 16) & 0xff).count_ones() == 1
}

/// `chunks` without the records xenalyze cannot process
/// ([`xenalyze_knows`]), and how many were removed, for a dump meant for
/// xenalyze.
pub fn for_xenalyze(chunks: &[Chunk]) -> (Vec<Chunk>, usize) {
    let mut removed = 0;
    let out = chunks
        .iter()
        .map(|c| {
            let records: Vec<TraceRecord> = c.records.iter().copied().filter(|r| xenalyze_knows(r.event())).collect();
            removed += c.records.len() - records.len();
            Chunk { cpu: c.cpu, records }
        })
        .collect();
    (out, removed)
}

/// Write `chunks` in xentrace's format: per chunk a cpu-change record with
/// the window's byte length, then the records.
pub fn write(chunks: &[Chunk]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in chunks {
        let window: usize = c.records.iter().map(TraceRecord::size).sum();
        let header = Event::cpu_change(c.cpu, window as u32).payload().record_without_tsc();
        let (b, n) = header.encode_bytes();
        out.extend_from_slice(&b[..n]);
        for r in &c.records {
            let (b, n) = r.encode_bytes();
            out.extend_from_slice(&b[..n]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use xen_public::trace::{TRC_SCHED_SWITCH, TRC_TRACE_WRAP_BUFFER};

    fn rec(e: Event, tsc: u64) -> TraceRecord {
        e.payload().record(tsc)
    }

    fn two_cpus() -> Vec<Chunk> {
        vec![
            Chunk {
                cpu: 0,
                records: vec![
                    rec(Event::runstate_change(1, 0, 1, 0), 100),
                    rec(Event::hypercall(29, &[1, 0, 0, 0, 0]), 110),
                    TraceRecord::new(TRC_SCHED_SWITCH, None, &[1, 0, 0x7fff, 0]).unwrap(),
                ],
            },
            Chunk { cpu: 1, records: vec![rec(Event::lost_records(7, 2, 0, 90), 120), rec(Event::runstate_change(2, 0, 2, 1), 125)] },
            Chunk { cpu: 0, records: vec![rec(Event::runstate_change(1, 0, 0, 2), 130)] },
        ]
    }

    #[test]
    fn xentrace_format_round_trips_two_cpus_and_lost_records() {
        let chunks = two_cpus();
        let bytes = write(&chunks);
        let dump = parse(&bytes).unwrap();
        assert_eq!(dump.chunks, chunks);
        assert_eq!(dump.wrap_records, 0);
        let per_cpu = dump.per_cpu();
        assert_eq!(per_cpu[&0].len(), 4);
        assert_eq!(per_cpu[&1].len(), 2);
        assert_eq!(dump.lost(), vec![Lost { cpu: 1, lost: 7, first_tsc: 90, tsc: Some(120) }]);
    }

    #[test]
    fn window_starts_with_xentraces_cpu_change_record() {
        // xentrace.c: CPU_CHANGE_HEADER = TRC_TRACE_CPU_CHANGE | 2 << 28,
        // then int cpu, unsigned window_size (bytes of records).
        let chunks = vec![Chunk { cpu: 3, records: vec![rec(Event::Wake { domid: 1, vcpu: 2 }, 5)] }];
        let bytes = write(&chunks);
        let w: Vec<u32> = bytes.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect();
        assert_eq!(w, vec![0x2001_f003, 3, 20, 0xa002_8004, 5, 0, 1, 2]);
    }

    #[test]
    fn wrap_padding_is_skipped_and_counted() {
        let pad = TraceRecord::new(TRC_TRACE_WRAP_BUFFER, None, &[0, 0, 0]).unwrap();
        let mut chunks = two_cpus();
        chunks[0].records.insert(1, pad);
        let dump = parse(&write(&chunks)).unwrap();
        assert_eq!(dump.wrap_records, 1);
        assert_eq!(dump.chunks, two_cpus());
    }

    #[test]
    fn xenalyze_dump_drops_only_classes_xenalyze_rejects() {
        use xen_public::trace::{SwitchReason, TRC_GUEST};
        let mut chunks = two_cpus();
        chunks[0].records.push(rec(Event::VcpuSwitch { prev_domid: 1, prev_vcpu: 0, next_domid: 2, next_vcpu: 0, reason: SwitchReason::Yield }, 140));
        chunks[1].records.push(TraceRecord::new(TRC_GUEST + 1, Some(150), &[]).unwrap());
        let (out, removed) = for_xenalyze(&chunks);
        assert_eq!(removed, 2);
        assert_eq!(out, two_cpus());
        assert!(xenalyze_knows(xen_public::trace::TRC_HW_IRQ_HANDLED));
        assert!(!xenalyze_knows(xen_public::trace::TRC_XENCORE_UPCALL));
    }

    #[test]
    fn corrupted_dumps_never_panic_the_analysis() {
        // Every truncation and 2000 byte-flipped copies of a valid dump:
        // parse, and when it parses, run the whole analysis on it.
        let good = write(&two_cpus());
        let analyse = |bytes: &[u8]| {
            if let Ok(d) = parse(bytes) {
                let m = crate::trace::merge::merge(&d.per_cpu(), &[]).unwrap();
                let tl = crate::trace::state::reconstruct(&m);
                let _ = crate::trace::summary::summary(&tl, &m, &d.lost(), 1_000_000);
                let _ = crate::trace::svg::render(&tl, &m, 1_000_000, 300);
            }
        };
        for n in 0..good.len() {
            analyse(&good[..n]);
        }
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            let mut bad = good.clone();
            for _ in 0..3 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let at = (x % bad.len() as u64) as usize;
                bad[at] = (x >> 32) as u8;
            }
            analyse(&bad);
        }
    }

    #[test]
    fn truncated_dumps_are_errors() {
        let bytes = write(&two_cpus());
        // The file ends inside the last window.
        assert!(matches!(parse(&bytes[..bytes.len() - 4]), Err(DumpError::ShortWindow { .. })));
        // A window that ends inside a record.
        let mut bad = write(&[Chunk { cpu: 0, records: vec![rec(Event::Wake { domid: 1, vcpu: 2 }, 5)] }]);
        bad[8] = 16; // window_size 20 -> 16
        bad.truncate(12 + 16);
        assert!(matches!(parse(&bad), Err(DumpError::BadRecord { offset: 12, .. })));
        // Records without a cpu-change record first.
        let (b, n) = rec(Event::Wake { domid: 1, vcpu: 2 }, 5).encode_bytes();
        assert!(matches!(parse(&b[..n]), Err(DumpError::ExpectedCpuChange { offset: 0, .. })));
        // A partial header word.
        assert!(matches!(parse(&bytes[..2]), Err(DumpError::BadRecord { offset: 0, .. })));
        assert_eq!(parse(&[]), Ok(Dump::default()));
    }

    /// Xen 4.17's own xenalyze, built on the host from the xen-project/xen
    /// mirror (Debian's xen-utils-4.17 does not ship it), reads a dump that
    /// [`write`] produces. Needs git, gcc and the mirror, so it runs on
    /// request: `cargo test -p xtask -- --ignored xenalyze_reads`.
    #[test]
    #[ignore = "builds xenalyze from the Xen mirror with gcc"]
    fn xenalyze_reads_our_dump() {
        use std::process::{Command, Stdio};
        let repo = std::env::var("XEN_MIRROR").unwrap_or_else(|_| "/work/.mirror/xen-project+xen/repo".into());
        let dir = std::env::temp_dir().join(format!("xtask-xenalyze-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("inc/xen-tools")).unwrap();
        std::fs::create_dir_all(dir.join("inc/xen")).unwrap();
        let files = [
            ("tools/xentrace/xenalyze.c", "xenalyze.c"),
            ("tools/xentrace/mread.c", "mread.c"),
            ("tools/xentrace/mread.h", "mread.h"),
            ("tools/xentrace/analyze.h", "analyze.h"),
            ("tools/xentrace/pv.h", "pv.h"),
            ("tools/include/xen-tools/libs.h", "inc/xen-tools/libs.h"),
            ("xen/include/public/trace.h", "inc/xen/trace.h"),
        ];
        for (from, to) in files {
            let out = Command::new("git").args(["-C", &repo, "show", &format!("RELEASE-4.17.0:{from}")]).output().unwrap();
            assert!(out.status.success(), "git show {from}");
            std::fs::write(dir.join(to), out.stdout).unwrap();
        }
        let cc = Command::new("gcc").current_dir(&dir).args(["-O1", "-w", "-Iinc", "-o", "xenalyze", "xenalyze.c", "mread.c"]).status().unwrap();
        assert!(cc.success(), "gcc xenalyze");

        // The three-guest trace on a realistic TSC (xenalyze treats 0 as unset).
        let mut per_cpu: BTreeMap<u32, Vec<TraceRecord>> = BTreeMap::new();
        for s in crate::trace::state::tests::three_guests() {
            if let crate::trace::merge::Source::Hypervisor { cpu } = s.source {
                let r = TraceRecord::new(s.record.event(), s.record.tsc().map(|t| t + 3_000_000_000), s.record.extra()).unwrap();
                per_cpu.entry(cpu).or_default().push(r);
            }
        }
        let chunks: Vec<Chunk> = per_cpu.into_iter().map(|(cpu, records)| Chunk { cpu, records }).collect();
        let (chunks, removed) = for_xenalyze(&chunks);
        // Class 0x400: 2 VCPU_SWITCH, 2 HYPERCALL_EXIT, EVTCHN_SEND, UPCALL,
        // TIMER_SET, TIMER_FIRE.
        assert_eq!(removed, 8);
        std::fs::write(dir.join("trace.dump"), write(&chunks)).unwrap();

        let mut child = Command::new(dir.join("xenalyze"))
            .current_dir(&dir)
            .args(["--summary", "trace.dump"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            if start.elapsed() > std::time::Duration::from_secs(30) {
                let _ = child.kill();
                panic!("xenalyze did not finish in 30 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let out = child.wait_with_output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(status.success(), "xenalyze failed:\n{text}");
        let lines: Vec<String> = text.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
        for want in [
            "|-- Domain 1 --|",
            "running: 2 0.00s 4750 { 5000| 5000| 5000}",
            "runnable: 1 0.00s 500 { 500| 500| 500}",
            "blocked: 1 0.00s 4940 { 4940| 4940| 4940}",
            "sched_op [29]: 2",
            "evtchn_op [32]: 1",
        ] {
            assert!(lines.iter().any(|l| l == want), "xenalyze output lacks {want:?}:\n{text}");
        }
    }
}
