//! `cargo xtask trace`: boot dom0 with the hypervisor's trace buffers
//! (`tbuf_size=N` on its command line, Xen 4.17's option, which xen-core
//! takes too), run a shell script around `xl trace start` / `wait` / `stop`
//! / `dump`, take the framed dump off the serial output
//! (`dom0_tools::xltrace::unframe`), and write `trace.bin` (xentrace's
//! format), `summary.txt` and `timeline.svg` ([`crate::trace`]'s analysis),
//! and `trace.xenalyze.bin` (without the classes Xen's xenalyze rejects).
//! The `trace` boot test runs the same session and judges it with
//! [`check_session`].
//!
//! Invariant: nothing is written from a dump whose byte count or checksum
//! differs from its end line; every figure the check judges comes from the
//! records (the domain numbers are those the default script creates).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use xen_public::trace::{Event, NO_PORT};

use crate::trace::merge::{Source, Stamped};
use crate::trace::state::{Timeline, VcpuState};
use crate::trace::{VcpuId, dump, guest, merge, state, summary, svg};
use crate::{image, qemu};

/// Pages per CPU of the trace buffers (`tbuf_size=`): 256 KiB a CPU,
/// drained every 10 ms by dom0.
pub const TBUF_PAGES: u32 = 64;

/// The spinner the default script creates first.
pub const SPINNER: VcpuId = VcpuId { domid: 1, vcpu: 0 };
/// The guest that serves the network and otherwise sleeps in
/// `SCHEDOP_poll` with a timeout of at most 100 ms (netdemo's loop).
pub const BLOCKER: VcpuId = VcpuId { domid: 2, vcpu: 0 };

/// dom0's vCPU.
const DOM0: VcpuId = VcpuId { domid: 0, vcpu: 0 };
/// The guest that pings dom0 one echo request at a time.
const PINGER: VcpuId = VcpuId { domid: 3, vcpu: 0 };
/// The writers of their own streams in the default session: dom0 (its
/// backends and sends) and the two network guests, which offer tracing.
const GUEST_WRITERS: [VcpuId; 3] = [DOM0, BLOCKER, PINGER];
/// The writers that send all along (dom0's backends, the pinger): their
/// sends are judged against the hypervisor's records of them.
const SENDERS: [VcpuId; 2] = [DOM0, PINGER];
/// Sends of each of [`SENDERS`] the same-clock check must judge at least.
const MIN_BRACKETED: usize = 20;

/// The default session: three guests (a spinner, a timer-blocker, and d3
/// pinging dom0's address one echo request at a time: event channels back
/// and forth with dom0's netback; the network guests with
/// `tsc_mode="native"`, so that their TSC is the hypervisor's on Xen 4.17
/// too, where an emulated `rdtsc` also costs d2 a trap per read), then
/// three seconds of trace,
/// the guests' own dumps, the hypervisor's and dom0's, and poweroff.
pub const DEFAULT_SCRIPT: &[&str] = &[
    "create spin",
    "create netserve.cfg 'tsc_mode=\"native\"'",
    "?(d2) net: up",
    "create netpingd0.cfg 'extra=\"net=ping:10.0.2.10:1000000\"' 'tsc_mode=\"native\"'",
    "?(d3) net: up",
    "trace start",
    "trace wait 3",
    "trace stop",
    "?(d2) gtrace-dump: end",
    "?(d3) gtrace-dump: end",
    "trace dump",
    "destroy 3",
    "destroy 2",
    "destroy 1",
    "poweroff",
];

/// `cargo xtask trace [options]`.
#[derive(Debug, clap::Args)]
pub struct TraceArgs {
    /// dom0 shell input, one line per prompt (`cargo xtask run --script`'s
    /// syntax); it must run `trace dump`. Default: three guests, 3 s.
    #[arg(long, value_name = "FILE")]
    pub script: Option<PathBuf>,
    /// Trace real Xen 4.17 instead of xen-core.
    #[arg(long = "xen-4.17")]
    pub xen_417: bool,
    /// Where trace.bin, summary.txt, timeline.svg, console.log and
    /// trace.xenalyze.bin go
    /// (default target/xtask/trace/).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// CPUs QEMU gives the machine.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub smp: u32,
    /// Trace buffer pages per CPU (the hypervisor's `tbuf_size=`).
    #[arg(long = "tbuf-pages", value_name = "N", default_value_t = TBUF_PAGES)]
    pub tbuf_pages: u32,
    /// Stop QEMU after SECS seconds.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub timeout: u64,
    /// Boot nothing: analyse the dump in FILE, a console log of an earlier
    /// run (its console.log).
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
}

/// A dump taken off a console log, and its analysis.
pub struct Analysis {
    /// The dump's bytes (xentrace's format).
    pub bytes: Vec<u8>,
    /// The merged records.
    pub records: Vec<Stamped>,
    /// States over time.
    pub timeline: Timeline,
    /// `summary.txt`.
    pub summary: String,
    /// `timeline.svg`.
    pub svg: String,
}

/// Unframe, parse, merge (with the guests' own streams on the console)
/// and reconstruct the last dump in `output`.
pub fn analyse(output: &str) -> Result<Analysis, String> {
    let bytes = dom0_tools::xltrace::unframe(output).map_err(|e| format!("serial dump: {e:?}"))?;
    let tsc_khz = dom0_tools::xltrace::unframe_tsc_khz(output).unwrap_or(0);
    let d = dump::parse(&bytes).map_err(|e| e.to_string())?;
    let (guests, notes) = guest::streams(output);
    let records = merge::merge(&d.per_cpu(), &guests).map_err(|e| format!("{e:?}"))?;
    let timeline = state::reconstruct(&records);
    let mut summary = summary::summary(&timeline, &records, &d.lost(), tsc_khz);
    if d.wrap_records > 0 {
        summary.push_str(&format!("wrap records skipped: {}\n", d.wrap_records));
    }
    summary.push_str(&guest_summary(&guests, &notes, &records, tsc_khz));
    let svg = svg::render(&timeline, &records, tsc_khz, 1200);
    Ok(Analysis { bytes, records, timeline, summary, svg })
}

/// The guest streams' part of the summary: per stream its records and how
/// its sends line up with the hypervisor's records of them; then what
/// could not be used.
fn guest_summary(guests: &[merge::GuestStream], notes: &[String], records: &[Stamped], tsc_khz: u64) -> String {
    let us = |c: u64| if tsc_khz > 0 { format!("{:.2} us", c as f64 * 1000.0 / tsc_khz as f64) } else { format!("{c} cycles") };
    let median = |mut v: Vec<u64>| {
        v.sort_unstable();
        v.get(v.len() / 2).copied().unwrap_or(0)
    };
    let against = match guest::sends_bracketed(records, None).against {
        guest::Against::Nothing => "nothing (the hypervisor recorded no send and no event_channel_op entry)",
        guest::Against::SendRecords => "the hypervisor's send record of the same domain and port",
        guest::Against::HypercallEntries => "the hypervisor's event_channel_op entry on a pCPU running the guest",
    };
    let mut out = format!("\nguest streams: {}; each EVTCHNOP_send judged against {against}\n", guests.len());
    for g in guests {
        let b = guest::sends_bracketed(records, Some(g.vcpu));
        out.push_str(&format!(
            "  {}: {} records; sends judged {}, {} with none between the guest's two TSC reads",
            g.vcpu,
            g.records.len(),
            b.checked,
            b.unmatched.len()
        ));
        if !b.gaps.is_empty() {
            let (to, from): (Vec<u64>, Vec<u64>) = b.gaps.iter().copied().unzip();
            out.push_str(&format!("; median gaps {} before the record, {} after", us(median(to)), us(median(from))));
        }
        out.push('\n');
    }
    for n in notes {
        out.push_str(&format!("  {n}\n"));
    }
    out
}

/// Upcalls judged against the sends before them: how many were checked,
/// and how many came with no send pending. An upcall that names a port a
/// send was seen for is judged (and delivers every send pending on that
/// port); one that names no port ([`NO_PORT`]) counts as checked when its
/// `pending_sel` covers a port with a send pending (and delivers those),
/// and is not judged otherwise (a VIRQ, say); so are upcalls of ports no
/// send was seen for.
pub fn upcalls_without_send(records: &[Stamped]) -> (usize, usize) {
    let mut pending: BTreeMap<(u32, u32), usize> = BTreeMap::new();
    let mut seen: BTreeSet<(u32, u32)> = BTreeSet::new();
    let (mut checked, mut bad) = (0, 0);
    for s in records {
        match s.record.decode_event() {
            Ok(Event::EvtchnSend { remote_domid, remote_port, .. }) => {
                *pending.entry((remote_domid, remote_port)).or_default() += 1;
                seen.insert((remote_domid, remote_port));
            }
            Ok(Event::Upcall { domid, port: NO_PORT, pending_sel, .. }) => {
                let mut delivered = false;
                for ((d, p), n) in pending.iter_mut() {
                    if *d == u32::from(domid) && *n > 0 && *p < 4096 && pending_sel & (1 << (p / 64)) != 0 {
                        *n = 0;
                        delivered = true;
                    }
                }
                checked += usize::from(delivered);
            }
            Ok(Event::Upcall { domid, port, .. }) if seen.contains(&(u32::from(domid), port)) => {
                checked += 1;
                match pending.get_mut(&(u32::from(domid), port)) {
                    Some(n) if *n > 0 => *n = 0,
                    _ => bad += 1,
                }
            }
            _ => {}
        }
    }
    (checked, bad)
}

/// Why the default session's trace in `output` is wrong: the dump must
/// read back and parse, the spinner be running or runnable at least 90% of
/// the trace, the blocker blocked at least 90%; with `evtchn` (a hypervisor
/// that records xen-core's event-channel events) every upcall must follow
/// a send.
pub fn check_session(output: &str, evtchn: bool) -> Option<String> {
    let a = match analyse(output) {
        Ok(a) => a,
        Err(e) => return Some(format!("trace: {e}")),
    };
    if a.records.is_empty() {
        return Some("trace: the dump holds no records".into());
    }
    let mut why = Vec::new();
    let tl = &a.timeline;
    let busy = [VcpuState::Running, VcpuState::Runnable, VcpuState::Hypervisor].iter().map(|&s| summary::share(tl, SPINNER, s)).sum::<f64>();
    if busy < 90.0 {
        why.push(format!("trace: spinner {SPINNER} running or runnable {busy:.1}% of the trace (want >= 90%)"));
    }
    let blocked = summary::share(tl, BLOCKER, VcpuState::Blocked);
    if blocked < 90.0 {
        why.push(format!("trace: blocker {BLOCKER} blocked {blocked:.1}% of the trace (want >= 90%)"));
    }
    let writers: BTreeSet<VcpuId> = a.records.iter().filter_map(|s| if let Source::Guest(v) = s.source { Some(v) } else { None }).collect();
    for w in GUEST_WRITERS {
        if !writers.contains(&w) {
            why.push(format!("trace: no records of {w}'s own stream (guest streams: {writers:?})"));
        }
    }
    if evtchn {
        match upcalls_without_send(&a.records) {
            (0, _) => why.push("trace: no upcall of a port that was sent to (no event-channel records)".into()),
            (n, bad) if bad > 0 => why.push(format!("trace: {bad} of {n} upcalls came with no send pending")),
            _ => {}
        }
    }
    // Every sender's stream shares the hypervisor's clock: on Xen 4.17 the
    // pinger is created with `tsc_mode="native"` (under TCG Xen would
    // otherwise emulate its rdtsc: the host TSC is not reliable).
    for w in SENDERS {
        let b = guest::sends_bracketed(&a.records, Some(w));
        if b.checked < MIN_BRACKETED {
            why.push(format!("trace: only {} of {w}'s sends fell inside the hypervisor's records (want >= {MIN_BRACKETED})", b.checked));
        }
        if let Some(first) = b.unmatched.first() {
            why.push(format!(
                "trace: {} of {w}'s {} sends have no hypervisor record of them between their TSC reads; first: {first}",
                b.unmatched.len(),
                b.checked
            ));
        }
    }
    if why.is_empty() {
        None
    } else {
        why.push(format!("trace summary:\n{}", a.summary));
        Some(why.join("\n"))
    }
}

/// The hypervisor's command line with its trace buffers.
pub fn with_tbuf(cmdline: &str, pages: u32) -> String {
    format!("{cmdline} tbuf_size={pages}")
}

/// `cargo xtask trace`.
pub fn command(a: &TraceArgs) -> Result<(), String> {
    let script: Vec<String> = match &a.script {
        Some(f) => std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?.lines().map(String::from).collect(),
        None => DEFAULT_SCRIPT.iter().map(|s| s.to_string()).collect(),
    };
    let out = a.out.clone().unwrap_or_else(|| image::out_dir().join("trace"));
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    if let Some(log) = &a.log {
        let text = std::fs::read_to_string(log).map_err(|e| format!("{}: {e}", log.display()))?;
        return write_outputs(&out, &analyse(&text)?);
    }
    let k = image::build(image::Profile::Release)?;
    let mut o = qemu::Options { timeout: Some(Duration::from_secs(a.timeout)), script, smp: a.smp, ..Default::default() };
    let spec = if a.xen_417 {
        o.stop_on = qemu::XEN_STOP_LINES.iter().map(|s| s.to_string()).collect();
        image::xen417_spec_with("trace-xen-4.17", &k, &with_tbuf(crate::xen::XEN_CMDLINE, a.tbuf_pages), "")?
    } else {
        image::standard_spec("trace-xen-core", &k, &with_tbuf("loglvl=all dom0_mem=64M", a.tbuf_pages), "")
    };
    let iso = image::make_iso(&spec)?;
    eprintln!("[xtask] trace: booting {} ({} CPUs, tbuf_size={})", iso.display(), a.smp, a.tbuf_pages);
    let r = qemu::boot(&iso, &o)?;
    let log = out.join("console.log");
    std::fs::write(&log, &r.output).map_err(|e| format!("{}: {e}", log.display()))?;
    eprintln!("[xtask] trace: console log in {}", log.display());
    for l in r.output.lines().filter(|l| l.starts_with("xl trace:")) {
        eprintln!("[dom0] {l}");
    }
    let an = analyse(&r.output).map_err(|e| format!("{e} (console log: {})", log.display()))?;
    write_outputs(&out, &an)?;
    if r.timed_out {
        return Err(format!("QEMU stopped at the {} s timeout (the dump was complete)", a.timeout));
    }
    Ok(())
}

/// Write the analysis's files into `out` and print the summary.
fn write_outputs(out: &std::path::Path, an: &Analysis) -> Result<(), String> {
    let write = |name: &str, bytes: &[u8]| {
        let p = out.join(name);
        std::fs::write(&p, bytes).map_err(|e| format!("{}: {e}", p.display()))
    };
    write("trace.bin", &an.bytes)?;
    write("summary.txt", an.summary.as_bytes())?;
    write("timeline.svg", an.svg.as_bytes())?;
    // Xen's xenalyze stops at a record of a class it does not know
    // (xen-core's 0x400, TRC_GUEST): a copy without them for it.
    let (chunks, removed) = dump::for_xenalyze(&dump::parse(&an.bytes).map_err(|e| e.to_string())?.chunks);
    write("trace.xenalyze.bin", &dump::write(&chunks))?;
    println!("{}", an.summary);
    println!(
        "trace: {} bytes in {}/trace.bin; summary.txt, timeline.svg and trace.xenalyze.bin ({removed} records xenalyze cannot read left out) beside it",
        an.bytes.len(),
        out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::dump::Chunk;
    use crate::trace::merge::Source;
    use xen_public::trace::TraceRecord;

    fn st(tsc: u64, e: Event) -> Stamped {
        Stamped { tsc, source: Source::Hypervisor { cpu: 0 }, record: e.payload().record(tsc) }
    }
    fn send(port: u32) -> Event {
        Event::EvtchnSend { domid: 3, vcpu: 0, port: 1, remote_domid: 0, remote_port: port }
    }
    fn upcall(port: u32) -> Event {
        Event::Upcall { domid: 0, vcpu: 0, port, pending_sel: 1 }
    }

    #[test]
    fn an_upcall_of_a_sent_port_needs_a_send_pending() {
        // EVTCHNOP_send sets the pending bit; the upcall delivers it: an
        // upcall of that port with nothing pending came from nowhere.
        let recs = [st(1, upcall(5)), st(2, send(5)), st(3, send(5)), st(4, upcall(5)), st(5, upcall(5)), st(6, upcall(NO_PORT)), st(7, upcall(9))];
        assert_eq!(upcalls_without_send(&recs), (2, 1));
        assert_eq!(upcalls_without_send(&recs[..4]), (1, 0));
        // Without a port, the selector bit (port / 64) of a pending send.
        let sel = |sel| Event::Upcall { domid: 0, vcpu: 0, port: NO_PORT, pending_sel: sel };
        let recs = [st(1, send(70)), st(2, sel(0b1)), st(3, sel(0b10)), st(4, sel(0b10)), st(5, upcall(70))];
        assert_eq!(upcalls_without_send(&recs), (2, 1));
    }

    /// A console log holding a framed dump of `chunks`, as dom0 prints it.
    fn console_with(chunks: &[Chunk]) -> String {
        let bytes = dump::write(chunks);
        let mut store = dom0_tools::xltrace::Store::new(1 << 20, 64);
        let mut at = 0;
        while at < bytes.len() {
            let w = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
            let cpu = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap());
            store.add_window(cpu, &bytes[at + 12..at + 12 + w], &[]);
            at += 12 + w;
        }
        let mut text = String::from("(XEN) booting\nxl> trace dump\n");
        dom0_tools::xltrace::frame(&store, 1_000_000, |l| {
            text.push_str(l);
            text.push('\n');
        });
        text
    }

    /// A guest's own dump of `records` as its console shows it (`(dN) `
    /// lines; none for dom0).
    fn guest_dump(domid: u16, records: &[TraceRecord]) -> String {
        let prefix = if domid == 0 { String::new() } else { format!("(d{domid}) ") };
        let mut text = String::new();
        pv_guest_kernel::gtrace::frame_records(0, 0, 0, records.iter().copied(), |l| text.push_str(&format!("{prefix}{l}\n")));
        text
    }

    /// Each of the default session's stream writers' dump, one xenbus
    /// request each.
    fn writers_dumps() -> String {
        let req = xen_public::trace_guest::GuestEvent::XenbusRequest { type_: 2, req_id: 1, tx_id: 0, len: 4 };
        GUEST_WRITERS.iter().map(|w| guest_dump(w.domid, &[req.record(1005)])).collect()
    }

    #[test]
    fn session_check_wants_each_writers_stream_and_guest_sends_bracketing_the_hypervisors() {
        let rs = |tsc, domid, old, new| Event::runstate_change(domid, 0, old, new).payload().record(tsc);
        let chunk = |extra: Vec<TraceRecord>| {
            let mut records = vec![rs(1000, 1, 0, 1), rs(1010, 1, 1, 0), rs(1020, 2, 2, 0), rs(1030, 2, 0, 2)];
            records.extend(extra);
            records.push(TraceRecord::new(xen_public::trace::TRC_SCHED_SWITCH, Some(2000), &[0, 0, 1, 0]).unwrap());
            vec![Chunk { cpu: 0, records }]
        };
        // Without d3's stream: caught.
        let two: String = writers_dumps().lines().filter(|l| !l.starts_with("(d3)")).map(|l| format!("{l}\n")).collect();
        let why = check_session(&(console_with(&chunk(vec![])) + &two), false).unwrap();
        assert!(why.contains("no records of d3v0's own stream"), "{why}");
        // On xen-core, 20 sends each of dom0 and d3 with the hypervisor's
        // record between the guest's two reads pass; one without fails.
        let g_send = |before: u64| xen_public::trace_guest::GuestEvent::EvtchnSend { port: 4, result: 0, tsc_before: before }.record(before + 10);
        let hv_send = |domid: u16, tsc: u64| Event::EvtchnSend { domid, vcpu: 0, port: 4, remote_domid: 0, remote_port: 7 }.payload().record(tsc);
        let sends: Vec<TraceRecord> = (0..20).map(|i| g_send(1100 + 20 * i)).collect();
        let upcall = Event::Upcall { domid: 0, vcpu: 0, port: 7, pending_sel: 1 }.payload().record(1600);
        let mut hv: Vec<TraceRecord> = (0..20).flat_map(|i| [hv_send(0, 1105 + 20 * i), hv_send(3, 1106 + 20 * i)]).collect();
        hv.push(upcall);
        let log = |hv: Vec<TraceRecord>| console_with(&chunk(hv)) + &writers_dumps() + &guest_dump(0, &sends) + &guest_dump(3, &sends);
        assert_eq!(check_session(&log(hv.clone()), true), None);
        hv.remove(11);
        let why = check_session(&log(hv.clone()), true).unwrap();
        assert!(why.contains("1 of d3v0's 20 sends have no hypervisor record of them between their TSC reads"), "{why}");
        // Without xen-core's send records (Xen 4.17) the same holds.
        let why = check_session(&log(hv), false).unwrap();
        assert!(why.contains("1 of d3v0's 20 sends"), "{why}");
    }

    #[test]
    fn session_check_reads_the_spinner_and_the_blocker_off_the_dump() {
        let rs = |tsc, domid, old, new| Event::runstate_change(domid, 0, old, new).payload().record(tsc);
        // Xen's runstates: 0 running, 1 runnable, 2 blocked.
        let good = vec![Chunk {
            cpu: 0,
            records: vec![
                rs(1000, 1, 0, 1),
                rs(1010, 1, 1, 0),
                rs(1020, 2, 2, 0),
                rs(1030, 2, 0, 2),
                TraceRecord::new(xen_public::trace::TRC_SCHED_SWITCH, Some(2000), &[0, 0, 1, 0]).unwrap(),
            ],
        }];
        let with_streams = |c: &[Chunk]| console_with(c) + &writers_dumps();
        let why = check_session(&with_streams(&good), false).unwrap();
        assert!(!why.contains("spinner") && !why.contains("blocker"), "{why}");
        let why = check_session(&with_streams(&good), true).unwrap();
        assert!(why.contains("no event-channel records"), "{why}");
        // The blocker running instead: caught.
        let mut bad = good.clone();
        bad[0].records[3] = rs(1030, 2, 2, 0);
        bad[0].records[2] = rs(1020, 2, 2, 0);
        let why = check_session(&with_streams(&bad), false).unwrap();
        assert!(why.contains("blocker d2v0 blocked"), "{why}");
        // A damaged dump is an error, not an analysis.
        let broken = console_with(&good).replacen("xtd ", "xtd A", 1);
        assert!(check_session(&broken, false).unwrap().starts_with("trace: serial dump"));
    }

    #[test]
    fn hypervisor_command_line_gets_tbuf_size() {
        assert_eq!(with_tbuf("loglvl=all", 64), "loglvl=all tbuf_size=64");
    }
}
