//! Merge the hypervisor's per-CPU streams and guest streams into one
//! sequence on the TSC.
//!
//! A PV guest reads the same TSC as the hypervisor (no offset or scaling,
//! unlike an HVM guest's), so records of both kinds compare directly.
//! Invariant: the output holds every input record once, tagged with its
//! source, ordered by TSC; equal TSCs keep input order (hypervisor CPUs in
//! ascending order, then guest streams as given, each stream in its own
//! order). A record without a TSC takes the TSC of the record before it in
//! its stream, as xenalyze does (`ri->tsc = p->last_tsc`), or 0 at the start.

use std::collections::BTreeMap;

use xen_public::trace::TraceRecord;

use super::VcpuId;
use xen_public::trace_guest::is_guest_class;

/// Where a record came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// The hypervisor's buffer of this pCPU.
    Hypervisor {
        /// The pCPU.
        cpu: u32,
    },
    /// A guest's own record stream, written by this vCPU.
    Guest(VcpuId),
}

/// A record with its effective TSC and its source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamped {
    /// The record's TSC, or the one inherited (see the module doc).
    pub tsc: u64,
    /// Its stream.
    pub source: Source,
    /// The record.
    pub record: TraceRecord,
}

/// One guest vCPU's records (Xen's `TRC_GUEST` class).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestStream {
    /// The vCPU that wrote them.
    pub vcpu: VcpuId,
    /// Its records in the order it wrote them.
    pub records: Vec<TraceRecord>,
}

/// A guest stream holds a record that is not of the `TRC_GUEST` class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotGuestClass {
    /// The stream.
    pub vcpu: VcpuId,
    /// Index of the record in it.
    pub index: usize,
    /// Its event.
    pub event: u32,
}

fn stamp(records: &[TraceRecord], source: Source, out: &mut Vec<Stamped>) {
    let mut last = 0;
    for r in records {
        let tsc = r.tsc().unwrap_or(last);
        last = tsc;
        out.push(Stamped { tsc, source, record: *r });
    }
}

/// Merge per-CPU hypervisor records and guest streams into one TSC order.
pub fn merge(hypervisor: &BTreeMap<u32, Vec<TraceRecord>>, guests: &[GuestStream]) -> Result<Vec<Stamped>, NotGuestClass> {
    for g in guests {
        if let Some((index, r)) = g.records.iter().enumerate().find(|(_, r)| !is_guest_class(r.event())) {
            return Err(NotGuestClass { vcpu: g.vcpu, index, event: r.event() });
        }
    }
    let mut out = Vec::with_capacity(hypervisor.values().map(Vec::len).sum::<usize>() + guests.iter().map(|g| g.records.len()).sum::<usize>());
    for (&cpu, records) in hypervisor {
        stamp(records, Source::Hypervisor { cpu }, &mut out);
    }
    for g in guests {
        stamp(&g.records, Source::Guest(g.vcpu), &mut out);
    }
    // `sort_by_key` is stable: equal TSCs keep the order built above.
    out.sort_by_key(|s| s.tsc);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use xen_public::trace::{Event, TRC_GUEST};

    fn hv(e: Event, tsc: u64) -> TraceRecord {
        e.payload().record(tsc)
    }
    fn guest(minor: u32, tsc: Option<u64>) -> TraceRecord {
        TraceRecord::new(TRC_GUEST + minor, tsc, &[minor]).unwrap()
    }

    #[test]
    fn merge_orders_by_tsc_across_cpus_and_guests() {
        let mut cpus = BTreeMap::new();
        cpus.insert(0, vec![hv(Event::Wake { domid: 1, vcpu: 0 }, 10), hv(Event::Wake { domid: 1, vcpu: 0 }, 40)]);
        cpus.insert(1, vec![hv(Event::Block { domid: 2, vcpu: 0 }, 20)]);
        let g = GuestStream { vcpu: VcpuId { domid: 2, vcpu: 0 }, records: vec![guest(1, Some(15)), guest(2, Some(30))] };
        let m = merge(&cpus, &[g]).unwrap();
        let tscs: Vec<u64> = m.iter().map(|s| s.tsc).collect();
        assert_eq!(tscs, vec![10, 15, 20, 30, 40]);
        assert_eq!(m[1].source, Source::Guest(VcpuId { domid: 2, vcpu: 0 }));
        assert_eq!(m[2].source, Source::Hypervisor { cpu: 1 });
        assert_eq!(m[4].source, Source::Hypervisor { cpu: 0 });
    }

    #[test]
    fn equal_tscs_keep_cpu_then_guest_then_stream_order() {
        let mut cpus = BTreeMap::new();
        cpus.insert(1, vec![hv(Event::Wake { domid: 1, vcpu: 1 }, 50)]);
        cpus.insert(0, vec![hv(Event::Wake { domid: 1, vcpu: 0 }, 50), hv(Event::Block { domid: 1, vcpu: 0 }, 50)]);
        let a = GuestStream { vcpu: VcpuId { domid: 3, vcpu: 0 }, records: vec![guest(7, Some(50))] };
        let b = GuestStream { vcpu: VcpuId { domid: 2, vcpu: 0 }, records: vec![guest(8, Some(50)), guest(9, None)] };
        let m = merge(&cpus, &[a, b]).unwrap();
        let order: Vec<(Source, u32)> = m.iter().map(|s| (s.source, s.record.event())).collect();
        let g = |d| Source::Guest(VcpuId { domid: d, vcpu: 0 });
        assert_eq!(
            order,
            vec![
                (Source::Hypervisor { cpu: 0 }, xen_public::trace::TRC_SCHED_WAKE),
                (Source::Hypervisor { cpu: 0 }, xen_public::trace::TRC_SCHED_BLOCK),
                (Source::Hypervisor { cpu: 1 }, xen_public::trace::TRC_SCHED_WAKE),
                (g(3), TRC_GUEST + 7),
                (g(2), TRC_GUEST + 8),
                (g(2), TRC_GUEST + 9),
            ]
        );
        // The record without a TSC inherits its predecessor's.
        assert_eq!(m[5].tsc, 50);
    }

    #[test]
    fn guest_streams_must_use_xens_trc_guest_class() {
        let g = GuestStream { vcpu: VcpuId { domid: 1, vcpu: 0 }, records: vec![guest(1, Some(1)), hv(Event::Wake { domid: 1, vcpu: 0 }, 2)] };
        assert_eq!(
            merge(&BTreeMap::new(), &[g]),
            Err(NotGuestClass { vcpu: VcpuId { domid: 1, vcpu: 0 }, index: 1, event: xen_public::trace::TRC_SCHED_WAKE })
        );
    }
}
