//! The guest's own trace records (issue 19): xenbus operations, shared-ring
//! requests and responses, balloon steps and event-channel sends, in Xen's
//! `TRC_GUEST` class (`xen_public::trace_guest`), stamped with the TSC the
//! guest reads itself, the counter the hypervisor stamps its records with.
//!
//! [`TraceLog`] (pure, host-tested) is the buffer: a fixed array of slots,
//! each reserved by one atomic increment, so an event handler that records
//! in the middle of another record cannot tear it. Records are kept from
//! [`TraceLog::start`] until the log is full; later ones are counted as
//! lost, never dropped silently. [`TraceLog::frame`] prints the records as
//! a framed dump ([`crate::serial_frame`]) that `cargo xtask trace` reads
//! off the console and merges with the hypervisor's trace.
//!
//! `VCPU0_TRACE` (target only) is the log of this kernel's only vCPU; the
//! free functions below record into it.
//!
//! Invariant: a slot's header word is stored last (release) and read
//! first (acquire): a reader sees a whole record or skips the slot; the
//! slot count never exceeds `N`, and `records + lost` counts every call to
//! [`TraceLog::record`] while started.
#![forbid(unsafe_code)]

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use xen_public::trace::{T_REC_MAX_WORDS, TraceRecord};
use xen_public::trace_guest::GuestEvent;
#[cfg(target_os = "none")]
use xen_public::trace_guest::{RingKind, RingStep};

/// First line of a guest's dump (then `vcpu=V lost=L tsc_khz=K`).
pub const BEGIN: &str = "gtrace-dump: begin";
/// Prefix of each data line.
pub const DATA: &str = "gtd ";
/// Last line of a guest's dump.
pub const END: &str = "gtrace-dump: end";

/// Words of a slot: a whole `t_rec` of the longest guest record.
const SLOT_WORDS: usize = T_REC_MAX_WORDS;

/// One record's words; `words[0]` (the header) is 0 until the rest is
/// written.
struct Slot {
    words: [AtomicU32; SLOT_WORDS],
}

impl Slot {
    const fn new() -> Slot {
        Slot { words: [const { AtomicU32::new(0) }; SLOT_WORDS] }
    }
}

/// A guest vCPU's trace records: up to `N`, kept from `start`.
pub struct TraceLog<const N: usize> {
    on: AtomicBool,
    next: AtomicUsize,
    lost: AtomicU32,
    slots: [Slot; N],
}

impl<const N: usize> Default for TraceLog<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> TraceLog<N> {
    /// An empty, stopped log.
    pub const fn new() -> Self {
        TraceLog { on: AtomicBool::new(false), next: AtomicUsize::new(0), lost: AtomicU32::new(0), slots: [const { Slot::new() }; N] }
    }

    /// Whether records are being kept (a caller skips reading the TSC
    /// when not).
    pub fn is_on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    /// Forget what was kept and keep what comes from now. Called by the
    /// vCPU's own main flow, never from an event handler, so no record is
    /// in flight meanwhile (one that were could share a slot with a new
    /// one).
    pub fn start(&self) {
        self.on.store(false, Ordering::SeqCst);
        for s in &self.slots {
            s.words[0].store(0, Ordering::Relaxed);
        }
        self.lost.store(0, Ordering::Relaxed);
        self.next.store(0, Ordering::SeqCst);
        self.on.store(true, Ordering::SeqCst);
    }

    /// Keep nothing more; what was kept stays readable.
    pub fn stop(&self) {
        self.on.store(false, Ordering::SeqCst);
    }

    /// Keep `event` at `tsc`, or count it lost when the log is full.
    pub fn record(&self, event: &GuestEvent, tsc: u64) {
        if !self.is_on() {
            return;
        }
        // Saturating: a full log stays at N however many records follow.
        let slot = self.next.fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| (n < N).then_some(n + 1));
        let Ok(i) = slot else {
            self.lost.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let (words, n) = event.record(tsc).encode();
        let s = &self.slots[i];
        for (dst, w) in s.words[1..n].iter().zip(&words[1..n]) {
            dst.store(*w, Ordering::Relaxed);
        }
        s.words[0].store(words[0], Ordering::Release);
    }

    /// Records counted lost since `start`.
    pub fn lost(&self) -> u32 {
        self.lost.load(Ordering::Relaxed)
    }

    /// The kept records, oldest first (a slot still being written is
    /// skipped).
    pub fn records(&self) -> impl Iterator<Item = TraceRecord> + '_ {
        let kept = self.next.load(Ordering::Acquire).min(N);
        self.slots[..kept].iter().filter_map(|s| {
            let header = s.words[0].load(Ordering::Acquire);
            if header == 0 {
                return None;
            }
            let mut w = [0u32; SLOT_WORDS];
            w[0] = header;
            for (dst, src) in w[1..].iter_mut().zip(&s.words[1..]) {
                *dst = src.load(Ordering::Relaxed);
            }
            TraceRecord::decode(&w).ok().map(|(r, _)| r)
        })
    }

    /// Print the kept records as a framed dump through `line`: `vcpu`
    /// names the writer, `tsc_khz` the counter's rate (0: unknown).
    pub fn frame(&self, vcpu: u32, tsc_khz: u64, line: impl FnMut(&str)) {
        frame_records(vcpu, self.lost(), tsc_khz, self.records(), line);
    }
}

/// Print `records` as a guest's framed dump (`gtrace-dump: begin vcpu=V
/// lost=L tsc_khz=K`, the records' bytes, the end line) through `line`.
pub fn frame_records(vcpu: u32, lost: u32, tsc_khz: u64, records: impl IntoIterator<Item = TraceRecord>, line: impl FnMut(&str)) {
    let mut head: heapless::String<96> = heapless::String::new();
    let _ = core::fmt::write(&mut head, format_args!("{BEGIN} vcpu={vcpu} lost={lost} tsc_khz={tsc_khz}"));
    crate::serial_frame::frame(
        &head,
        DATA,
        END,
        |emit| {
            for r in records {
                let (b, n) = r.encode_bytes();
                emit(&b[..n]);
            }
        },
        line,
    );
}

/// This kernel's only vCPU's log: 2048 records (80 KiB).
#[cfg(target_os = "none")]
pub static VCPU0_TRACE: TraceLog<2048> = TraceLog::new();

/// Whether this vCPU is recording.
#[cfg(target_os = "none")]
pub fn on() -> bool {
    VCPU0_TRACE.is_on()
}

/// Record `event` now, if recording.
#[cfg(target_os = "none")]
pub fn record(event: GuestEvent) {
    if on() {
        VCPU0_TRACE.record(&event, crate::shared::rdtsc());
    }
}

/// The TSC now, when recording (unread otherwise): a caller that records
/// a span reads its start with this.
#[cfg(target_os = "none")]
pub fn tsc_if_on() -> Option<u64> {
    on().then(crate::shared::rdtsc)
}

/// Record a shared ring's index moving from `from` to `to` (nothing when
/// it did not move): `GuestEvent::ring_step`.
#[cfg(target_os = "none")]
pub fn ring_step(step: RingStep, ring: RingKind, peer: u16, from: u32, to: u32, notified: bool) {
    if on()
        && let Some(e) = GuestEvent::ring_step(step, ring, peer, from, to, notified)
    {
        record(e);
    }
}

/// The watch token of `control/trace`.
#[cfg(target_os = "none")]
const CONTROL_TOKEN: &str = "gtrace";

/// Offer tracing to the toolstack: write `control/feature-trace` = `1` and
/// watch `control/trace`, which `xl trace start`/`stop` set.
#[cfg(target_os = "none")]
pub fn offer(xs: &mut crate::xenbus::live::Xenbus) -> Result<(), i64> {
    xs.write(crate::xenbus::XBT_NIL, "control/feature-trace", b"1")?;
    xs.watch("control/trace", CONTROL_TOKEN)
}

/// What `control/trace` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// `start`: forget the last session, record.
    Start,
    /// `stop`: stop recording and print the dump.
    Stop,
}

impl Control {
    /// The request a `control/trace` value makes; anything else (the
    /// empty value the node starts with, say) asks for nothing.
    pub fn parse(value: &str) -> Option<Control> {
        match value {
            "start" => Some(Control::Start),
            "stop" => Some(Control::Stop),
            _ => None,
        }
    }
}

/// Act on a change of `control/trace`, if its watch fired (no waiting).
#[cfg(target_os = "none")]
pub fn follow_control(xs: &mut crate::xenbus::live::Xenbus) {
    let mut ev = [0u8; 160];
    if xs.wait_watch_event(Some(CONTROL_TOKEN), &mut ev, 0).is_err() {
        return;
    }
    let mut value = [0u8; 16];
    match xs.read_str(crate::xenbus::XBT_NIL, "control/trace", &mut value).ok().and_then(Control::parse) {
        Some(Control::Start) => start(),
        Some(Control::Stop) if on() => stop_and_dump(),
        _ => {}
    }
}

/// Start recording this vCPU.
#[cfg(target_os = "none")]
pub fn start() {
    VCPU0_TRACE.start();
}

/// Stop recording this vCPU (what was kept stays).
#[cfg(target_os = "none")]
pub fn stop() {
    VCPU0_TRACE.stop();
}

/// Print this vCPU's dump on the console; `tsc_khz` is the counter's rate.
#[cfg(target_os = "none")]
pub fn dump(tsc_khz: u64) {
    VCPU0_TRACE.frame(0, tsc_khz, |l| crate::println!("{l}"));
}

/// Stop recording and print the dump, with the rate the PV clock gives.
#[cfg(target_os = "none")]
pub fn stop_and_dump() {
    stop();
    dump(crate::shared::tsc_khz().unwrap_or(0));
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::String;
    use std::vec::Vec;
    use xen_public::trace_guest::{GuestEvent, RingKind};

    fn send(port: u32) -> GuestEvent {
        GuestEvent::EvtchnSend { port, result: 0, tsc_before: 10 }
    }

    #[test]
    fn control_trace_takes_start_and_stop_only() {
        assert_eq!(Control::parse("start"), Some(Control::Start));
        assert_eq!(Control::parse("stop"), Some(Control::Stop));
        assert_eq!(Control::parse(""), None, "the node as dom0 creates it");
        assert_eq!(Control::parse("START"), None);
    }

    #[test]
    fn nothing_is_kept_before_start_or_after_stop() {
        let log: TraceLog<4> = TraceLog::new();
        log.record(&send(1), 100);
        assert_eq!(log.records().count(), 0);
        log.start();
        log.record(&send(2), 200);
        log.stop();
        log.record(&send(3), 300);
        let r: Vec<TraceRecord> = log.records().collect();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].tsc(), Some(200));
        assert_eq!(GuestEvent::decode(r[0].event(), r[0].extra()), Some(send(2)));
    }

    #[test]
    fn a_full_log_counts_what_it_cannot_keep_as_lost() {
        let log: TraceLog<2> = TraceLog::new();
        log.start();
        for i in 0..5 {
            log.record(&send(i), u64::from(i));
        }
        assert_eq!(log.records().count(), 2);
        assert_eq!(log.lost(), 3, "records + lost = every record while started");
        log.start();
        assert_eq!((log.records().count(), log.lost()), (0, 0), "start forgets the last session");
    }

    #[test]
    fn a_record_of_the_longest_payload_reads_back_whole() {
        let log: TraceLog<8> = TraceLog::new();
        log.start();
        let e = GuestEvent::RingPushRequests { ring: RingKind::NetTx, peer: 0, req_prod: 7, count: 2, notified: true };
        log.record(&e, u64::MAX);
        let r = log.records().next().unwrap();
        assert_eq!(r.tsc(), Some(u64::MAX));
        assert_eq!(GuestEvent::decode(r.event(), r.extra()), Some(e));
    }

    #[test]
    fn the_dump_frames_the_records_with_their_count_and_loss() {
        let log: TraceLog<2> = TraceLog::new();
        log.start();
        for i in 0..3 {
            log.record(&send(i), 1000 + u64::from(i));
        }
        let mut text = String::new();
        log.frame(0, 2_000_000, |l| {
            text.push_str(l);
            text.push('\n');
        });
        assert!(text.starts_with("gtrace-dump: begin vcpu=0 lost=1 tsc_khz=2000000\n"), "{text}");
        let frames = crate::serial_frame::unframe_all(&text, BEGIN, DATA, END);
        assert_eq!(frames.len(), 1);
        let bytes = frames[0].bytes.as_ref().unwrap();
        let (first, n) = TraceRecord::decode_bytes(bytes).unwrap();
        assert_eq!(first.tsc(), Some(1000));
        let (second, _) = TraceRecord::decode_bytes(&bytes[n..]).unwrap();
        assert_eq!(second.tsc(), Some(1001));
    }
}
