//! `xl trace`: the pure half of dom0's trace collection (what xentrace does
//! for a Xen toolstack), host-tested; the hypercalls and mappings are in
//! [`crate::tbuf`].
//!
//! Owns:
//! - the command's arguments ([`TraceCmd`], [`parse`]);
//! - the ring arithmetic of xentrace's `monitor_tbufs` over one per-CPU
//!   buffer ([`window`]): the bytes between `cons` and `prod`, in one piece
//!   or two when they wrap, and the `cons` to write back; bogus indices are
//!   an error, never a panic or an out-of-range read;
//! - dom0's bounded record store ([`Store`]): whole `t_rec` records, per
//!   CPU window, up to a byte budget fixed at start (dom0's heap is 2 MiB);
//!   what does not fit is counted, never silently lost;
//! - the dump: xentrace's file format (per window a `TRC_TRACE_CPU_CHANGE`
//!   record `[cpu, window_size]`, then the records, as
//!   `tools/xentrace/xentrace.c`'s `write_buffer` writes it), framed for the
//!   serial console ([`frame`]) and read back on the host ([`unframe`]).
//!
//! Serial framing (one line each, the data lines base64 of 57 bytes = 76
//! characters, the last one shorter):
//!
//! ```text
//! xl-trace-dump: begin bytes=N tsc_khz=K
//! xtd <base64>
//! ...
//! xl-trace-dump: end bytes=N lines=L fnv1a=XXXXXXXX
//! ```
//!
//! `fnv1a` is `frontend_drivers::netfront::fnv1a` (FNV-1a 32) of the N
//! dump bytes; the framing is `pv_guest_kernel::serial_frame`'s, which
//! guests' own trace dumps use too. Other lines between begin and end
//! (guest consoles, the hypervisor's log) are ignored by [`unframe`].
//!
//! Invariant: the dump holds only whole records, every window's
//! `window_size` is the byte length of the records that follow it, and
//! [`unframe`] returns bytes only when their count and checksum match the
//! end line.
#![forbid(unsafe_code)]

use alloc::vec::Vec;
use pv_guest_kernel::serial_frame;
pub use pv_guest_kernel::serial_frame::FrameError;
use xen_public::trace::{Event, TRC_ALL, records_in, ring_bogus, ring_offset, ring_unconsumed};

/// First line of a dump on the console.
pub const BEGIN: &str = "xl-trace-dump: begin";
/// Prefix of each data line.
pub const DATA: &str = "xtd ";
/// Last line of a dump.
pub const END: &str = "xl-trace-dump: end";
/// The event mask `trace start` sets without `-e`: Xen's `TRC_ALL`, the
/// default of `tb_event_mask` in `common/trace.c` (and of xentrace's `-e`).
pub const DEFAULT_EVT_MASK: u32 = TRC_ALL;
/// Bytes of records dom0 keeps at most (a quarter of its heap).
pub const STORE_BYTES: usize = 512 * 1024;
/// Windows dom0 keeps at most (each costs a cpu-change header).
pub const STORE_WINDOWS: usize = 8192;
/// Bytes of xentrace's cpu-change record (header, cpu, window_size).
pub const CPU_CHANGE_BYTES: usize = 12;

/// `trace`'s usage.
pub const USAGE: &str = "usage: trace start [-e MASK] [-c CPUMASK] [-s PAGES] | trace wait SECONDS | trace stop | trace dump";

/// A `trace` subcommand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceCmd {
    /// `trace start [-e MASK] [-c CPUMASK] [-s PAGES]`: set the size if
    /// asked, the event mask, the CPU mask, enable, map the buffers.
    Start {
        /// `-e`: the event mask (default [`DEFAULT_EVT_MASK`]).
        evt_mask: u32,
        /// `-c`: the pCPUs traced, bit N for CPU N (xentrace's `-c`;
        /// default every CPU).
        cpu_mask: u64,
        /// `-s`: pages per CPU (`XEN_SYSCTL_TBUFOP_set_size`).
        pages: Option<u32>,
    },
    /// `trace wait SECONDS`: keep draining the buffers (and serving the
    /// guests) for that long.
    Wait {
        /// Seconds, 1..=600.
        seconds: u32,
    },
    /// `trace stop`: disable, then drain one last time.
    Stop,
    /// `trace dump`: print the collected records, framed.
    Dump,
}

/// A number as xentrace's options take it: decimal or `0x` hex.
fn number64(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// [`number64`] that fits 32 bits.
fn number(s: &str) -> Option<u32> {
    number64(s).and_then(|v| u32::try_from(v).ok())
}

/// Parse the words after `trace`; `None` is a usage error.
pub fn parse(args: &[&str]) -> Option<TraceCmd> {
    match args {
        ["start", opts @ ..] => {
            let (mut evt_mask, mut cpu_mask, mut pages) = (DEFAULT_EVT_MASK, u64::MAX, None);
            let mut it = opts.iter();
            while let Some(o) = it.next() {
                let v = it.next()?;
                match *o {
                    "-e" => evt_mask = number(v)?,
                    "-c" => cpu_mask = number64(v).filter(|m| *m != 0)?,
                    "-s" => pages = Some(number(v).filter(|p| *p > 0)?),
                    _ => return None,
                }
            }
            Some(TraceCmd::Start { evt_mask, cpu_mask, pages })
        }
        ["wait", s] => number(s).filter(|s| (1..=600).contains(s)).map(|seconds| TraceCmd::Wait { seconds }),
        ["stop"] => Some(TraceCmd::Stop),
        ["dump"] => Some(TraceCmd::Dump),
        _ => None,
    }
}

/// Why a buffer's indices cannot be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// `prod` or `cons` unaligned or past `2 * data_size` (Xen's `bogus`).
    Bogus {
        /// The producer index.
        prod: u32,
        /// The consumer index.
        cons: u32,
    },
    /// The mapped data area is shorter than `data_size`.
    Short {
        /// Bytes mapped.
        have: usize,
        /// `data_size`.
        data_size: u32,
    },
}

/// The unread bytes of one buffer: `first`, then `second` (empty unless the
/// window wraps past the end of the data area), and the `cons` to write
/// back once they are copied (`prod`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window<'a> {
    /// From `cons`'s offset ([`ring_offset`]) on.
    pub first: &'a [u8],
    /// From the start of the data area, when the window wraps.
    pub second: &'a [u8],
    /// The new consumer index.
    pub new_cons: u32,
}

/// xentrace's window of a buffer whose data area (after the `t_buf` head)
/// is `data`, `data_size` bytes, with indices `cons` and `prod`; `None`
/// when nothing is unread.
pub fn window(data: &[u8], data_size: u32, cons: u32, prod: u32) -> Result<Option<Window<'_>>, RingError> {
    if ring_bogus(prod, cons, data_size) {
        return Err(RingError::Bogus { prod, cons });
    }
    if data.len() < data_size as usize {
        return Err(RingError::Short { have: data.len(), data_size });
    }
    if cons == prod {
        return Ok(None);
    }
    let size = ring_unconsumed(prod, cons, data_size) as usize;
    let (start, end) = (ring_offset(cons, data_size) as usize, ring_offset(prod, data_size) as usize);
    let (first, second) = if end > start { (&data[start..start + size], &data[..0]) } else { (&data[start..data_size as usize], &data[..end]) };
    Ok(Some(Window { first, second, new_cons: prod }))
}

/// dom0's collected records: per window the CPU and the byte length of its
/// records, and the records' bytes, within the budget set at creation.
#[derive(Debug, Default)]
pub struct Store {
    bytes: Vec<u8>,
    windows: Vec<(u32, u32)>,
    budget: usize,
    max_windows: usize,
    /// Records kept.
    pub records: u64,
    /// Records that did not fit.
    pub dropped_records: u64,
    /// Their bytes.
    pub dropped_bytes: u64,
    /// Bytes that were not whole records (a record running past its
    /// window), skipped.
    pub malformed_bytes: u64,
}

impl Store {
    /// An empty store with room for `budget` bytes of records (less if the
    /// heap cannot give that much at once) and `max_windows` windows.
    pub fn new(budget: usize, max_windows: usize) -> Store {
        // The most of `want` (halving down to `min`, else none) the heap
        // gives at once.
        fn reserve<T>(v: &mut Vec<T>, mut want: usize, min: usize) -> usize {
            while v.try_reserve_exact(want).is_err() {
                if want < 2 * min {
                    return 0;
                }
                want /= 2;
            }
            want
        }
        let mut s = Store::default();
        s.budget = reserve(&mut s.bytes, budget, 4096);
        s.max_windows = reserve(&mut s.windows, max_windows, 16);
        s
    }

    /// Bytes of records the store may hold.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Bytes of records held.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether it holds no record.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Windows held.
    pub fn windows(&self) -> usize {
        self.windows.len()
    }

    /// Keep the whole records of `cpu`'s window `first` + `second` that fit
    /// (in order, stopping at the first that does not); count the rest.
    /// Xen never splits a record at the wrap (it pads with a
    /// `TRC_TRACE_WRAP_BUFFER` record), so each piece holds whole records.
    pub fn add_window(&mut self, cpu: u32, first: &[u8], second: &[u8]) {
        for piece in [first, second] {
            for r in records_in(piece) {
                match r {
                    Ok((at, used, _)) => self.keep(cpu, &piece[at..at + used]),
                    Err((at, _)) => self.malformed_bytes += (piece.len() - at) as u64,
                }
            }
        }
    }

    fn keep(&mut self, cpu: u32, rec: &[u8]) {
        let same_window = self.windows.last().is_some_and(|w| w.0 == cpu);
        let room = self.bytes.len() + rec.len() <= self.budget && (same_window || self.windows.len() < self.max_windows);
        // Once one record was dropped, later ones are too: the dump stays
        // a prefix of the trace, with no hole in its middle.
        if !room || self.dropped_records > 0 {
            self.dropped_records += 1;
            self.dropped_bytes += rec.len() as u64;
            return;
        }
        match self.windows.last_mut() {
            Some(w) if same_window => w.1 += rec.len() as u32,
            _ => self.windows.push((cpu, rec.len() as u32)),
        }
        self.bytes.extend_from_slice(rec);
        self.records += 1;
    }

    /// Bytes of the dump in xentrace's format.
    pub fn dump_len(&self) -> usize {
        self.windows.len() * CPU_CHANGE_BYTES + self.bytes.len()
    }

    /// The dump in xentrace's format, piece by piece: per window the
    /// cpu-change record, then its records.
    pub fn dump(&self, mut out: impl FnMut(&[u8])) {
        let mut at = 0;
        for &(cpu, len) in &self.windows {
            let (b, n) = Event::cpu_change(cpu, len).payload().record_without_tsc().encode_bytes();
            out(&b[..n]);
            out(&self.bytes[at..at + len as usize]);
            at += len as usize;
        }
    }
}

/// Print `store`'s dump as framed lines through `line` (each without its
/// newline); `tsc_khz` goes on the begin line for the host's analysis.
pub fn frame(store: &Store, tsc_khz: u32, line: impl FnMut(&str)) {
    let total = store.dump_len();
    let begin = alloc::format!("{BEGIN} bytes={total} tsc_khz={tsc_khz}");
    serial_frame::frame(&begin, DATA, END, |emit| store.dump(emit), line);
}

/// The TSC frequency on the last begin line of `text`.
#[cfg(not(target_os = "none"))]
pub fn unframe_tsc_khz(text: &str) -> Option<u64> {
    text.lines().rfind(|l| l.starts_with(BEGIN)).and_then(|l| serial_frame::field(l, "tsc_khz")?.parse().ok())
}

/// The dump of the last framed dump in `text` (a console log) on dom0's
/// lines (unprefixed: a guest's `(dN) ` lines cannot pose as one), checked
/// against its end line.
#[cfg(not(target_os = "none"))]
pub fn unframe(text: &str) -> Result<Vec<u8>, FrameError> {
    serial_frame::unframe_all(text, BEGIN, DATA, END).into_iter().rfind(|f| f.domid.is_none()).ok_or(FrameError::NoBegin)?.bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;
    use alloc::vec;
    use xen_public::trace::{TRC_TRACE_WRAP_BUFFER, TraceRecord, data_size, wrap_record};

    extern crate std;

    fn bytes_of(r: &TraceRecord) -> Vec<u8> {
        let (b, n) = r.encode_bytes();
        b[..n].to_vec()
    }

    fn wake(i: u32) -> TraceRecord {
        Event::Wake { domid: 1, vcpu: i }.payload().record(u64::from(i) * 10)
    }

    #[test]
    fn trace_start_takes_xentraces_e_c_and_s_in_decimal_or_hex() {
        assert_eq!(parse(&["start"]), Some(TraceCmd::Start { evt_mask: TRC_ALL, cpu_mask: u64::MAX, pages: None }));
        assert_eq!(
            parse(&["start", "-e", "0x0002f000", "-s", "32", "-c", "0x2"]),
            Some(TraceCmd::Start { evt_mask: 0x2_f000, cpu_mask: 2, pages: Some(32) })
        );
        assert_eq!(parse(&["start", "-c", "0"]), None, "no CPU at all");
        assert_eq!(parse(&["start", "-e", "0x1ffffffff"]), None, "the event mask is 32 bits");
        assert_eq!(parse(&["start", "-s", "0"]), None, "set_size 0 is Xen's -EINVAL: refused here");
        assert_eq!(parse(&["start", "-e"]), None);
        assert_eq!(parse(&["start", "-x", "1"]), None);
        assert_eq!(parse(&["wait", "3"]), Some(TraceCmd::Wait { seconds: 3 }));
        assert_eq!(parse(&["wait", "0"]), None);
        assert_eq!(parse(&["stop"]), Some(TraceCmd::Stop));
        assert_eq!(parse(&["dump"]), Some(TraceCmd::Dump));
        assert_eq!(parse(&["dump", "x"]), None);
        assert_eq!(parse(&[]), None);
    }

    #[test]
    fn default_mask_is_xens_trc_all() {
        // common/trace.c: static u32 tb_event_mask = TRC_ALL (0x0ffff000).
        assert_eq!(DEFAULT_EVT_MASK, 0x0fff_f000);
    }

    /// A fake buffer's data area: records written at `prod` as Xen's
    /// `__insert_record` does, wrapping with a wrap record.
    struct FakeRing {
        data: Vec<u8>,
        size: u32,
        prod: u32,
    }

    impl FakeRing {
        fn new(pages: u32) -> Self {
            let size = data_size(pages);
            FakeRing { data: vec![0xee; size as usize], size, prod: 0 }
        }
        fn put(&mut self, r: &TraceRecord) {
            let b = bytes_of(r);
            let off = (self.prod % self.size) as usize;
            let to_end = self.size as usize - off;
            if b.len() > to_end {
                let pad = wrap_record(to_end as u32, 0).unwrap();
                self.data[off..].copy_from_slice(&bytes_of(&pad));
                self.prod = xen_public::trace::ring_advance(self.prod, to_end as u32, self.size);
            }
            let off = (self.prod % self.size) as usize;
            self.data[off..off + b.len()].copy_from_slice(&b);
            self.prod = xen_public::trace::ring_advance(self.prod, b.len() as u32, self.size);
        }
    }

    fn records_of(w: &Window<'_>) -> Vec<TraceRecord> {
        let mut s = Store::new(1 << 20, 16);
        s.add_window(0, w.first, w.second);
        let mut d = Vec::new();
        s.dump(|b| d.extend_from_slice(b));
        let mut out = Vec::new();
        let mut at = CPU_CHANGE_BYTES;
        while at < d.len() {
            let (r, n) = TraceRecord::decode_bytes(&d[at..]).unwrap();
            out.push(r);
            at += n;
        }
        out
    }

    #[test]
    fn ring_window_between_cons_and_prod_as_xentrace_reads_it() {
        let mut ring = FakeRing::new(1);
        assert_eq!(window(&ring.data, ring.size, 0, 0), Ok(None));
        for i in 0..3 {
            ring.put(&wake(i));
        }
        let w = window(&ring.data, ring.size, 0, ring.prod).unwrap().unwrap();
        assert_eq!((w.first.len(), w.second.len(), w.new_cons), (60, 0, 60));
        assert_eq!(records_of(&w), vec![wake(0), wake(1), wake(2)]);
    }

    #[test]
    fn ring_window_that_wraps_comes_in_two_pieces_after_the_wrap_record() {
        // Indices run modulo 2 * data_size (common/trace.c): fill past the
        // end of the data area twice over, reading as xentrace does.
        let mut ring = FakeRing::new(1);
        let mut cons = 0;
        let mut seen = Vec::new();
        let mut wrapped = 0;
        for round in 0..600u32 {
            ring.put(&wake(round));
            if round % 50 == 49 {
                let w = window(&ring.data, ring.size, cons, ring.prod).unwrap().unwrap();
                wrapped += usize::from(!w.second.is_empty());
                seen.extend(records_of(&w).into_iter().filter(|r| r.event() != TRC_TRACE_WRAP_BUFFER));
                cons = w.new_cons;
            }
        }
        assert!(wrapped >= 2, "the test must cross the end of the data area");
        assert_eq!(seen, (0..600).map(wake).collect::<Vec<_>>());
    }

    #[test]
    fn full_ring_is_one_whole_data_area() {
        // prod - cons == data_size: start == end, the whole area in two
        // pieces (xentrace's `end_offset > start_offset` is false).
        let size = data_size(1);
        let data = vec![0u8; size as usize];
        let w = window(&data, size, 100, 100 + size).unwrap().unwrap();
        assert_eq!(w.first.len() + w.second.len(), size as usize);
        assert_eq!(w.new_cons, 100 + size);
    }

    #[test]
    fn bogus_indices_are_errors_not_reads() {
        // common/trace.c's bogus(): unaligned, or at/after 2 * data_size.
        let size = data_size(1);
        let data = vec![0u8; size as usize];
        for (cons, prod) in [(0, 2), (1, 8), (0, 2 * size), (2 * size + 4, 0), (!3, 0)] {
            assert_eq!(window(&data, size, cons, prod), Err(RingError::Bogus { prod, cons }), "cons {cons} prod {prod}");
        }
        assert_eq!(window(&data[..100], size, 0, 8), Err(RingError::Short { have: 100, data_size: size }));
    }

    #[test]
    fn store_keeps_a_prefix_within_its_budget_and_counts_the_rest() {
        // Each wake record is 20 bytes; 50 bytes hold two.
        let mut s = Store::new(50, 4);
        let recs: Vec<u8> = (0..5).flat_map(|i| bytes_of(&wake(i))).collect();
        s.add_window(1, &recs, &[]);
        assert_eq!((s.records, s.dropped_records, s.dropped_bytes), (2, 3, 60));
        s.add_window(0, &bytes_of(&wake(9)), &[]);
        assert_eq!(s.dropped_records, 4, "after a drop, nothing more is kept");
        assert_eq!(s.dump_len(), CPU_CHANGE_BYTES + 40);
    }

    #[test]
    fn store_counts_a_record_cut_by_its_window() {
        let mut s = Store::new(1024, 4);
        let mut b = bytes_of(&wake(1));
        b.extend_from_slice(&bytes_of(&wake(2))[..8]);
        s.add_window(0, &b, &[]);
        assert_eq!((s.records, s.malformed_bytes), (1, 8));
    }

    #[test]
    fn dump_is_xentraces_file_format() {
        // xentrace.c write_buffer: CPU_CHANGE_HEADER = TRC_TRACE_CPU_CHANGE
        // | 2 << 28, int cpu, unsigned window_size, then the records.
        let mut s = Store::new(1024, 4);
        s.add_window(3, &bytes_of(&wake(1)), &[]);
        s.add_window(3, &bytes_of(&wake(2)), &[]);
        s.add_window(0, &bytes_of(&wake(3)), &[]);
        let mut d = Vec::new();
        s.dump(|b| d.extend_from_slice(b));
        let w: Vec<u32> = d.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect();
        assert_eq!(&w[..3], &[0x2001_f003, 3, 40], "consecutive windows of one CPU share a header");
        assert_eq!(&w[3..8], &[0xa002_8004, 10, 0, 1, 1]);
        assert_eq!(&w[13..16], &[0x2001_f003, 0, 20]);
        assert_eq!(d.len(), s.dump_len());
    }

    fn framed(s: &Store) -> String {
        let mut text = String::new();
        frame(s, 2_000_000, |l| {
            text.push_str(l);
            text.push('\n');
        });
        text
    }

    #[test]
    fn framing_round_trips_through_a_noisy_console_log() {
        let mut s = Store::new(1 << 16, 64);
        let recs: Vec<u8> = (0..200).flat_map(|i| bytes_of(&wake(i))).collect();
        s.add_window(1, &recs, &[]);
        let text = framed(&s);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "xl-trace-dump: begin bytes=4012 tsc_khz=2000000");
        assert!(lines[1..lines.len() - 1].iter().all(|l| l.starts_with(DATA) && l.len() <= 4 + 76));
        assert!(lines.last().unwrap().starts_with("xl-trace-dump: end bytes=4012 lines=71 fnv1a="));
        // Guest and hypervisor lines in between are skipped.
        let noisy = alloc::format!("(XEN) boot\n{}(d1) hello\n{}", lines[..5].join("\n") + "\n", lines[5..].join("\n"));
        let mut want = Vec::new();
        s.dump(|b| want.extend_from_slice(b));
        assert_eq!(unframe(&noisy), Ok(want));
        assert_eq!(unframe_tsc_khz(&noisy), Some(2_000_000));
    }

    #[test]
    fn framing_detects_a_lost_or_changed_line() {
        let mut s = Store::new(1 << 16, 64);
        let recs: Vec<u8> = (0..20).flat_map(|i| bytes_of(&wake(i))).collect();
        s.add_window(0, &recs, &[]);
        let text = framed(&s);
        let lines: Vec<&str> = text.lines().collect();
        let without: String = lines.iter().enumerate().filter(|(i, _)| *i != 2).map(|(_, l)| alloc::format!("{l}\n")).collect();
        assert!(matches!(unframe(&without), Err(FrameError::Mismatch { .. })));
        let mut one: Vec<char> = lines[1].chars().collect();
        one[9] = if one[9] == 'A' { 'B' } else { 'A' };
        let changed = text.replacen(lines[1], &one.iter().collect::<String>(), 1);
        assert!(matches!(unframe(&changed), Err(FrameError::Mismatch { .. })));
        assert_eq!(unframe(&text.replace("xtd ", "xtd !")), Err(FrameError::BadLine(0)));
        assert_eq!(unframe("nothing"), Err(FrameError::NoBegin));
        assert_eq!(unframe(lines[0]), Err(FrameError::NoEnd));
    }

    #[test]
    fn empty_store_frames_an_empty_dump() {
        let s = Store::new(4096, 4);
        let text = framed(&s);
        assert_eq!(unframe(&text), Ok(Vec::new()));
        assert!(text.contains("end bytes=0 lines=0 fnv1a=811c9dc5"));
    }
}
