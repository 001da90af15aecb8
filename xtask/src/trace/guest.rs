//! Guests' own trace streams (`pv_guest_kernel::gtrace`'s dumps) taken off
//! a console log, and the check that they share the hypervisor's clock.
//!
//! Each dump names its writer by the console it came on: the `(dN) `
//! prefix dom0 puts before a domU's console lines (which that domU cannot
//! write for another), or none for dom0's own dump; `vcpu=` on its begin
//! line names the vCPU. A dump that does not read back whole is reported,
//! never merged in part.
//!
//! [`sends_bracketed`] is the same-clock proof of issue 19: a guest reads
//! the TSC just before and just after its `EVTCHNOP_send`, and the
//! hypervisor stamps its event-channel send record in between, with no
//! offset applied to either side.

use xen_public::trace::{Event, TraceRecord, records_in};
use xen_public::trace_guest::{GuestEvent, is_guest_class};

use super::VcpuId;
use super::merge::{GuestStream, Source, Stamped};
use pv_guest_kernel::gtrace::{BEGIN, DATA, END};
use pv_guest_kernel::serial_frame::{field, unframe_all};

/// The guest streams in a console log, and a line for each dump that could
/// not be used or that lost records.
pub fn streams(log: &str) -> (Vec<GuestStream>, Vec<String>) {
    let (mut out, mut notes) = (Vec::new(), Vec::new());
    for f in unframe_all(log, BEGIN, DATA, END) {
        let domid = f.domid.unwrap_or(0);
        let vcpu = field(&f.begin, "vcpu").and_then(|v| v.parse().ok()).unwrap_or(0);
        let who = VcpuId { domid, vcpu };
        let bytes = match f.bytes {
            Ok(b) => b,
            Err(e) => {
                notes.push(format!("guest stream {who}: unreadable ({e:?}), left out"));
                continue;
            }
        };
        match records(&bytes) {
            // A guest may write only its own class: a stream holding a
            // hypervisor event is the guest's doing, and left out (it
            // must not fail the merge of everyone else's).
            Ok(records) if let Some(event) = records.iter().map(TraceRecord::event).find(|e| !is_guest_class(*e)) => {
                notes.push(format!("guest stream {who}: holds event {event:#010x}, not of the TRC_GUEST class, left out"));
            }
            Ok(records) => {
                if let Some(lost) = field(&f.begin, "lost").filter(|l| *l != "0") {
                    notes.push(format!("guest stream {who}: {lost} records lost (its log was full)"));
                }
                out.push(GuestStream { vcpu: who, records });
            }
            Err(at) => notes.push(format!("guest stream {who}: malformed record at byte {at}, left out")),
        }
    }
    (out, notes)
}

/// The records of a dump's bytes, or the offset of the first bad one.
fn records(bytes: &[u8]) -> Result<Vec<TraceRecord>, usize> {
    records_in(bytes).map(|r| r.map(|(_, _, rec)| rec).map_err(|(at, _)| at)).collect()
}

/// The TSC span every hypervisor CPU's records cover, and the spans in it
/// where records were lost (a `TRC_LOST_RECORDS` record says records
/// were dropped from its `first_tsc` until it was written): a guest record
/// inside the span and outside every loss has its hypervisor records in
/// the dump.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Coverage {
    /// The latest first record of any CPU.
    pub start: u64,
    /// The earliest last record of any CPU.
    pub end: u64,
    /// Where records were lost.
    pub lost: Vec<(u64, u64)>,
}

impl Coverage {
    /// Whether every hypervisor record between `from` and `to` is in the
    /// dump.
    pub fn holds(&self, from: u64, to: u64) -> bool {
        from >= self.start && to <= self.end && self.lost.iter().all(|&(a, b)| to < a || from > b)
    }
}

/// The coverage of the hypervisor records in `records`; `None` when there
/// are none.
pub fn covered(records: &[Stamped]) -> Option<Coverage> {
    let mut per_cpu: std::collections::BTreeMap<u32, (u64, u64)> = std::collections::BTreeMap::new();
    let mut lost = Vec::new();
    for s in records {
        let Source::Hypervisor { cpu } = s.source else { continue };
        let e = per_cpu.entry(cpu).or_insert((s.tsc, s.tsc));
        e.0 = e.0.min(s.tsc);
        e.1 = e.1.max(s.tsc);
        if let Ok(Event::LostRecords { first_tsc, .. }) = s.record.decode_event() {
            lost.push((first_tsc, s.tsc));
        }
    }
    let start = per_cpu.values().map(|c| c.0).max()?;
    let end = per_cpu.values().map(|c| c.1).min()?;
    (start < end).then_some(Coverage { start, end, lost })
}

/// How guest sends line up with the hypervisor's send records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bracketing {
    /// Which hypervisor records the sends were judged against.
    pub against: Against,
    /// Successful guest sends inside the covered span.
    pub checked: usize,
    /// Those with no matching hypervisor record between the guest's two
    /// TSC reads.
    pub unmatched: Vec<String>,
    /// For the matched ones: cycles from the guest's first read to the
    /// hypervisor's record, and from that record to the guest's second.
    pub gaps: Vec<(u64, u64)>,
}

/// The hypervisor records a guest send is matched with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Against {
    /// None: the dump holds neither kind.
    #[default]
    Nothing,
    /// xen-core's event-channel send records (domain and port).
    SendRecords,
    /// `TRC_PV_HYPERCALL_V2` entries of `event_channel_op` (of
    /// `EVTCHNOP_send` when the record carries the command) on a pCPU
    /// running the guest: Xen 4.17 has no event-channel send record. The
    /// guest makes no other hypercall between its two TSC reads.
    HypercallEntries,
}

/// `__HYPERVISOR_event_channel_op` and `EVTCHNOP_send`.
const EVENT_CHANNEL_OP: u32 = 32;
const EVTCHNOP_SEND: u64 = 4;

/// The hypervisor's sends in `records`: (TSC, sending domain, port if the
/// record names it), in TSC order, and what they are.
fn hypervisor_sends(records: &[Stamped]) -> (Vec<(u64, u16, Option<u32>)>, Against) {
    let mut sends = Vec::new();
    let mut entries = Vec::new();
    // Who runs on each pCPU: the last vCPU switched to running there.
    let mut current: std::collections::BTreeMap<u32, u16> = std::collections::BTreeMap::new();
    // Entries on a pCPU before any switch there: theirs is the vCPU the
    // first runstate change on that pCPU takes off it.
    let mut before_first: std::collections::BTreeMap<u32, Vec<u64>> = std::collections::BTreeMap::new();
    for s in records {
        let Source::Hypervisor { cpu } = s.source else { continue };
        match s.record.decode_event() {
            Ok(Event::EvtchnSend { domid, port, .. }) => sends.push((s.tsc, domid, Some(port))),
            Ok(Event::RunstateChange { domid, old, new, .. }) if old == 0 || new == 0 => {
                if old == 0 && !current.contains_key(&cpu) {
                    entries.extend(before_first.remove(&cpu).unwrap_or_default().into_iter().map(|tsc| (tsc, domid, None)));
                }
                if new == 0 {
                    current.insert(cpu, domid);
                }
            }
            // Xen 4.17's `__trace_hypercall` records no argument of
            // event_channel_op; with one, it must be EVTCHNOP_send.
            Ok(Event::Hypercall { subcall: false, op: EVENT_CHANNEL_OP, args }) if args[0].is_none_or(|cmd| cmd == EVTCHNOP_SEND) => {
                match current.get(&cpu) {
                    Some(&domid) => entries.push((s.tsc, domid, None)),
                    None => before_first.entry(cpu).or_default().push(s.tsc),
                }
            }
            _ => {}
        }
    }
    entries.sort_unstable_by_key(|e| e.0);
    match (sends.is_empty(), entries.is_empty()) {
        (false, _) => (sends, Against::SendRecords),
        (true, false) => (entries, Against::HypercallEntries),
        (true, true) => (sends, Against::Nothing),
    }
}

/// Check every successful `EVTCHNOP_send` of `writer`'s stream (every
/// stream's with `None`) in `records` (merged, guest streams included)
/// against the hypervisor's record of it.
pub fn sends_bracketed(records: &[Stamped], writer: Option<VcpuId>) -> Bracketing {
    let (hv, against) = hypervisor_sends(records);
    let mut b = Bracketing { against, ..Bracketing::default() };
    let Some(cover) = covered(records).filter(|_| against != Against::Nothing) else { return b };
    for s in records {
        let Source::Guest(who) = s.source else { continue };
        if writer.is_some_and(|w| w != who) {
            continue;
        }
        let Some(GuestEvent::EvtchnSend { port, result: 0, tsc_before }) = GuestEvent::decode(s.record.event(), s.record.extra()) else { continue };
        if !cover.holds(tsc_before, s.tsc) {
            continue;
        }
        b.checked += 1;
        // `hv` is in TSC order (the merge's): the first at or after the
        // guest's first read.
        let from = hv.partition_point(|h| h.0 < tsc_before);
        match hv[from..].iter().take_while(|h| h.0 <= s.tsc).find(|h| h.1 == who.domid && h.2.is_none_or(|p| p == port)) {
            Some(h) => b.gaps.push((h.0 - tsc_before, s.tsc - h.0)),
            None => b.unmatched.push(format!("{who} send on port {port}: tsc {tsc_before}..{} holds no hypervisor send of d{}", s.tsc, who.domid)),
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::merge::merge;
    use std::collections::BTreeMap;

    fn hv_send(domid: u16, port: u32, tsc: u64) -> TraceRecord {
        Event::EvtchnSend { domid, vcpu: 0, port, remote_domid: 0, remote_port: 9 }.payload().record(tsc)
    }
    fn g_send(port: u32, before: u64, after: u64) -> TraceRecord {
        GuestEvent::EvtchnSend { port, result: 0, tsc_before: before }.record(after)
    }
    fn wake(tsc: u64) -> TraceRecord {
        Event::Wake { domid: 0, vcpu: 0 }.payload().record(tsc)
    }

    #[test]
    fn a_guest_send_brackets_the_hypervisors_send_record_on_one_tsc() {
        let mut cpus = BTreeMap::new();
        cpus.insert(0, vec![wake(0), hv_send(3, 5, 150), hv_send(3, 5, 400), wake(1000)]);
        cpus.insert(1, vec![wake(0), wake(1000)]);
        let g = GuestStream { vcpu: VcpuId { domid: 3, vcpu: 0 }, records: vec![g_send(5, 100, 200), g_send(5, 300, 350)] };
        let m = merge(&cpus, &[g]).unwrap();
        let b = sends_bracketed(&m, None);
        assert_eq!(b.against, Against::SendRecords);
        assert_eq!(b.checked, 2);
        assert_eq!(b.gaps, [(50, 50)]);
        assert_eq!(b.unmatched.len(), 1, "the second send's hypervisor record comes after the guest's second read: {:?}", b.unmatched);
        assert_eq!(sends_bracketed(&m, Some(VcpuId { domid: 4, vcpu: 0 })).checked, 0, "another writer's sends only");
    }

    #[test]
    fn on_xen_the_send_hypercalls_entry_on_the_guests_pcpu_is_the_record() {
        // Xen 4.17 writes no send record: TRC_PV_HYPERCALL_V2 of
        // event_channel_op(EVTCHNOP_send, ..) on the pCPU d3 runs on.
        let entry = |tsc| Event::Hypercall { subcall: false, op: 32, args: [Some(4), Some(0x1000), None, None, None, None] }.payload().record(tsc);
        let run = |domid, tsc| Event::runstate_change(domid, 0, 1, 0).payload().record(tsc);
        let mut cpus = BTreeMap::new();
        cpus.insert(0, vec![run(3, 0), entry(150), run(0, 260), entry(320), wake(1000)]);
        let g = GuestStream { vcpu: VcpuId { domid: 3, vcpu: 0 }, records: vec![g_send(5, 100, 200), g_send(5, 300, 350)] };
        let b = sends_bracketed(&merge(&cpus, &[g]).unwrap(), None);
        assert_eq!(b.against, Against::HypercallEntries);
        assert_eq!((b.checked, b.gaps.clone()), (2, vec![(50, 50)]));
        assert_eq!(b.unmatched.len(), 1, "the second entry ran on a pCPU running d0");
        assert_eq!(sends_bracketed(&merge(&BTreeMap::from([(0, vec![wake(0), wake(9)])]), &[]).unwrap(), None).against, Against::Nothing);
        // An entry before the trace's first switch on its pCPU belongs to
        // the vCPU that switch takes off it.
        let off = |domid, tsc| Event::runstate_change(domid, 0, 0, 1).payload().record(tsc);
        let mut cpus = BTreeMap::new();
        cpus.insert(0, vec![wake(0), entry(150), off(3, 260), wake(1000)]);
        let g = GuestStream { vcpu: VcpuId { domid: 3, vcpu: 0 }, records: vec![g_send(5, 100, 200)] };
        let b = sends_bracketed(&merge(&cpus, &[g]).unwrap(), None);
        assert_eq!((b.checked, b.unmatched.len()), (1, 0), "{:?}", b.unmatched);
    }

    #[test]
    fn another_domains_or_ports_send_does_not_count() {
        let mut cpus = BTreeMap::new();
        cpus.insert(0, vec![wake(0), hv_send(2, 5, 150), hv_send(3, 6, 160), wake(1000)]);
        let g = GuestStream { vcpu: VcpuId { domid: 3, vcpu: 0 }, records: vec![g_send(5, 100, 200)] };
        let b = sends_bracketed(&merge(&cpus, &[g]).unwrap(), None);
        assert_eq!((b.checked, b.unmatched.len()), (1, 1));
    }

    #[test]
    fn sends_outside_every_cpus_records_or_after_a_loss_are_not_judged() {
        let mut cpus = BTreeMap::new();
        cpus.insert(0, vec![wake(100), wake(2000)]);
        // CPU 1's records end at 500: later sends may have been on it.
        cpus.insert(1, vec![wake(50), wake(500)]);
        let g = GuestStream { vcpu: VcpuId { domid: 1, vcpu: 0 }, records: vec![g_send(1, 10, 20), g_send(1, 600, 700)] };
        let m = merge(&cpus, &[g]).unwrap();
        assert_eq!(covered(&m), Some(Coverage { start: 100, end: 500, lost: vec![] }));
        assert_eq!(sends_bracketed(&m, None).checked, 0);
        // Records lost from 300 until 450 (the lost-records record's own
        // TSC); before the trace began (boot) does not matter.
        let lost = Event::LostRecords { lost: 3, domid: 0, vcpu: 0, first_tsc: 300 }.payload().record(450);
        cpus.get_mut(&0).unwrap().insert(1, lost);
        let c = covered(&merge(&cpus, &[]).unwrap()).unwrap();
        assert_eq!(c.lost, [(300, 450)]);
        assert!(c.holds(150, 299) && c.holds(451, 500));
        assert!(!c.holds(250, 310) && !c.holds(440, 460) && !c.holds(200, 480));
    }

    #[test]
    fn streams_come_off_the_console_named_by_their_prefix() {
        let log_of = |recs: &[TraceRecord], lost: u32| {
            let mut lines = Vec::new();
            pv_guest_kernel::gtrace::frame_records(0, lost, 0, recs.iter().copied(), |l| lines.push(l.to_string()));
            lines
        };
        let d0 = log_of(&[g_send(1, 1, 2)], 0);
        let d3: Vec<String> = log_of(&[g_send(4, 5, 6), g_send(4, 7, 8)], 9).iter().map(|l| format!("(d3) {l}")).collect();
        let mut bad: Vec<String> = log_of(&[g_send(4, 5, 6)], 0).iter().map(|l| format!("(d4) {l}")).collect();
        bad.remove(1);
        // A guest posing a hypervisor record in its own stream.
        let posing: Vec<String> = log_of(&[g_send(1, 1, 2), wake(3)], 0).iter().map(|l| format!("(d5) {l}")).collect();
        let log = [d0, d3, bad, posing].concat().join("\n");
        let (s, notes) = streams(&log);
        assert_eq!(
            s.iter().map(|g| (g.vcpu, g.records.len())).collect::<Vec<_>>(),
            [(VcpuId { domid: 0, vcpu: 0 }, 1), (VcpuId { domid: 3, vcpu: 0 }, 2)]
        );
        assert_eq!(notes.len(), 3, "{notes:?}");
        assert!(notes.iter().any(|n| n.starts_with("guest stream d5v0: holds event 0x00028004, not of the TRC_GUEST class")), "{notes:?}");
        assert!(notes.iter().any(|n| n.starts_with("guest stream d3v0: 9 records lost")));
        assert!(notes.iter().any(|n| n.starts_with("guest stream d4v0: unreadable")));
    }
}
