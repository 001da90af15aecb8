//! A text summary of a trace, in the spirit of xenalyze's: per domain and
//! vCPU the time and share in each state; per hypercall the count and the
//! latency percentiles of its entry/exit pairs; per event channel the sends
//! and the send-to-upcall latency; lost records.
//!
//! Invariant: every figure is computed from the records (nothing assumed);
//! percentiles use the nearest-rank method on the exact samples. A send is
//! delivered by the first later upcall of its destination vCPU's domain
//! that names its port, or that names no port but has the port's selector
//! bit (`port / 64`) set.

use std::collections::BTreeMap;
use std::fmt::Write;

use xen_public::trace::{Event, NO_PORT};

use super::dump::Lost;
use super::merge::Stamped;
use super::state::{Timeline, VcpuState, tsc_to_us};
use super::{VcpuId, hypercall_name};

/// Nearest-rank percentile `p` (0..=100) of sorted `samples`.
pub fn percentile(sorted: &[u64], p: u32) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (u64::from(p) * sorted.len() as u64).div_ceil(100).max(1);
    sorted.get(rank as usize - 1).copied()
}

/// One event channel's sends and delivery latencies (TSC ticks).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChannelStats {
    /// Destination domain and port.
    pub remote: (u32, u32),
    /// Sends.
    pub sends: usize,
    /// Latency of each delivered send.
    pub latencies: Vec<u64>,
}

/// A send not yet delivered: destination port, TSC, sender's key.
type PendingSend = (u32, u64, (u16, u32));

/// Event-channel statistics keyed by (sending domain, sending port).
pub fn channels(records: &[Stamped]) -> BTreeMap<(u16, u32), ChannelStats> {
    let mut stats: BTreeMap<(u16, u32), ChannelStats> = BTreeMap::new();
    // Sends waiting for an upcall, per destination domain.
    let mut pending: BTreeMap<u32, Vec<PendingSend>> = BTreeMap::new();
    for s in records {
        match s.record.decode_event() {
            Ok(Event::EvtchnSend { domid, port, remote_domid, remote_port, .. }) => {
                let key = (domid, port);
                let st = stats.entry(key).or_default();
                st.remote = (remote_domid, remote_port);
                st.sends += 1;
                pending.entry(remote_domid).or_default().push((remote_port, s.tsc, key));
            }
            Ok(Event::Upcall { domid, port, pending_sel, .. }) => {
                let Some(waiting) = pending.get_mut(&u32::from(domid)) else { continue };
                let delivered = |p: u32| if port == NO_PORT { p < 4096 && pending_sel & (1 << (p / 64)) != 0 } else { p == port };
                waiting.retain(|&(p, sent, key)| {
                    if delivered(p) {
                        if let Some(st) = stats.get_mut(&key) {
                            st.latencies.push(s.tsc - sent);
                        }
                        false
                    } else {
                        true
                    }
                });
            }
            _ => {}
        }
    }
    stats
}

fn us(ticks: u64, khz: u64) -> String {
    format!("{:.2} us", tsc_to_us(ticks, khz))
}

fn percentiles_line(samples: &mut [u64], khz: u64) -> String {
    samples.sort_unstable();
    match (percentile(samples, 50), percentile(samples, 90), percentile(samples, 99), samples.last()) {
        (Some(p50), Some(p90), Some(p99), Some(&max)) => {
            format!("p50 {} p90 {} p99 {} max {}", us(p50, khz), us(p90, khz), us(p99, khz), us(max, khz))
        }
        _ => "no pairs".to_string(),
    }
}

/// The summary text of a reconstructed trace, for a TSC of `tsc_khz` kHz.
pub fn summary(tl: &Timeline, records: &[Stamped], lost: &[Lost], tsc_khz: u64) -> String {
    let mut out = String::new();
    let total = tl.duration();
    let _ = writeln!(
        out,
        "trace: {} ({} records, {} pCPUs, {} vCPUs, TSC {} kHz)",
        us(total, tsc_khz),
        records.len(),
        tl.pcpus.len(),
        tl.vcpus.len(),
        tsc_khz
    );

    let _ = writeln!(out, "\nvCPU states:");
    let mut domain = None;
    for &v in tl.vcpus.keys() {
        if domain != Some(v.domid) {
            let _ = writeln!(out, "  domain {}", v.domid);
            domain = Some(v.domid);
        }
        let mut line = format!("    {v}:");
        for s in VcpuState::ALL {
            let t = tl.time_in(v, s);
            let pct = if total == 0 { 0.0 } else { t as f64 * 100.0 / total as f64 };
            let _ = write!(line, " {} {} {:.1}%", s.name(), us(t, tsc_khz), pct);
            if s != VcpuState::Offline {
                line.push(',');
            }
        }
        let _ = writeln!(out, "{line}");
    }

    let _ = writeln!(out, "\nhypercalls:");
    let mut by_op: BTreeMap<u32, (usize, Vec<u64>)> = BTreeMap::new();
    for h in &tl.hypercalls {
        let e = by_op.entry(h.op).or_default();
        e.0 += 1;
        if let Some(exit) = h.exit {
            e.1.push(exit - h.entry);
        }
    }
    for (op, (count, mut lat)) in by_op {
        let _ = writeln!(out, "  {}({op}): count {count}, {}", hypercall_name(op), percentiles_line(&mut lat, tsc_khz));
    }
    if tl.unpaired_exits != 0 {
        let _ = writeln!(out, "  exits without an entry: {}", tl.unpaired_exits);
    }

    let _ = writeln!(out, "\nevent channels:");
    for ((domid, port), mut st) in channels(records) {
        let undelivered = st.sends - st.latencies.len();
        let _ = writeln!(
            out,
            "  d{domid} port {port} -> d{} port {}: sends {}, delivered {}, undelivered {undelivered}, latency {}",
            st.remote.0,
            st.remote.1,
            st.sends,
            st.latencies.len(),
            percentiles_line(&mut st.latencies, tsc_khz)
        );
    }

    let lost_total: u64 = lost.iter().map(|l| u64::from(l.lost)).sum();
    let _ = writeln!(out, "\nlost records: {lost_total}");
    for l in lost {
        let _ = writeln!(out, "  cpu{}: {} lost from tsc {}", l.cpu, l.lost, l.first_tsc);
    }
    out
}

/// A vCPU's share of the trace in `state`, in percent.
pub fn share(tl: &Timeline, v: VcpuId, state: VcpuState) -> f64 {
    if tl.duration() == 0 { 0.0 } else { tl.time_in(v, state) as f64 * 100.0 / tl.duration() as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::state::reconstruct;
    use crate::trace::state::tests::{BLOCKER, PINGPONG, SPINNER, three_guests};

    #[test]
    fn percentiles_are_nearest_rank() {
        let s: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&s, 50), Some(50));
        assert_eq!(percentile(&s, 99), Some(99));
        assert_eq!(percentile(&s, 100), Some(100));
        assert_eq!(percentile(&[7], 90), Some(7));
        assert_eq!(percentile(&[1, 2, 3], 50), Some(2));
        assert_eq!(percentile(&[], 50), None);
    }

    #[test]
    fn summary_lines_of_the_three_guest_trace() {
        let m = three_guests();
        let tl = reconstruct(&m);
        let lost = [Lost { cpu: 1, lost: 3, first_tsc: 42, tsc: Some(50) }];
        // 1 GHz: 1000 ticks per microsecond.
        let text = summary(&tl, &m, &lost, 1_000_000);
        let has = |l: &str| assert!(text.lines().any(|x| x == l), "missing {l:?} in\n{text}");
        has("trace: 10.00 us (40 records, 2 pCPUs, 3 vCPUs, TSC 1000000 kHz)");
        has("    d1v0: running 9.50 us 95.0%, hypervisor 0.00 us 0.0%, runnable 0.50 us 5.0%, blocked 0.00 us 0.0%, offline 0.00 us 0.0%");
        has("    d2v0: running 0.12 us 1.2%, hypervisor 0.03 us 0.3%, runnable 0.01 us 0.1%, blocked 9.84 us 98.4%, offline 0.00 us 0.0%");
        has("  sched_op(29): count 2, p50 4.97 us p90 4.97 us p99 4.97 us max 4.97 us");
        has("  event_channel_op(32): count 1, p50 0.01 us p90 0.01 us p99 0.01 us max 0.01 us");
        has("  d3 port 3 -> d1 port 7: sends 1, delivered 1, undelivered 0, latency p50 0.40 us p90 0.40 us p99 0.40 us max 0.40 us");
        has("lost records: 3");
        has("  cpu1: 3 lost from tsc 42");
        assert!(share(&tl, SPINNER, VcpuState::Running) + share(&tl, SPINNER, VcpuState::Runnable) > 99.0);
        assert!(share(&tl, BLOCKER, VcpuState::Blocked) > 98.0);
        assert!(share(&tl, PINGPONG, VcpuState::Blocked) > 90.0);
    }

    #[test]
    fn upcall_without_port_delivers_by_selector_bit() {
        use crate::trace::merge::Source;
        let st = |tsc, e: Event| Stamped { tsc, source: Source::Hypervisor { cpu: 0 }, record: e.payload().record(tsc) };
        let send = |port| Event::EvtchnSend { domid: 1, vcpu: 0, port: 1, remote_domid: 2, remote_port: port };
        let recs = [
            st(10, send(70)),
            st(20, send(3)),
            // Selector bit 1 covers ports 64..=127: delivers port 70 only.
            st(50, Event::Upcall { domid: 2, vcpu: 0, port: NO_PORT, pending_sel: 0b10 }),
            // An upcall of another domain delivers nothing.
            st(60, Event::Upcall { domid: 3, vcpu: 0, port: 3, pending_sel: 1 }),
        ];
        let c = channels(&recs);
        let s = &c[&(1, 1)];
        assert_eq!((s.sends, s.latencies.clone()), (2, vec![40]));
    }
}
