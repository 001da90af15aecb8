//! Rebuild each vCPU's and each pCPU's state over time from a merged trace.
//!
//! Sources, all hypervisor records: `TRC_SCHED_RUNSTATE_CHANGE` sets a
//! vCPU's runstate (running, runnable, blocked, offline); `TRC_SCHED_SWITCH`
//! and xen-core's `VCPU_SWITCH` set which vCPU a pCPU runs (the idle
//! domain's vCPU is "idle"), and the latter's reason sets the outgoing
//! vCPU's state; `TRC_PV_HYPERCALL_V2` and xen-core's `HYPERCALL_EXIT`
//! bracket time "in the hypervisor" of the vCPU the pCPU runs at the entry
//! (only in a trace that has exit records at all: Xen 4.17 writes entries
//! only, and there a vCPU that made one hypercall is not "in the
//! hypervisor" for the rest of its run).
//! A vCPU first seen in a runstate change was in the change's old state
//! since the trace began; first seen leaving a pCPU it was running, first
//! seen arriving it was runnable.
//!
//! Invariant: each vCPU's spans tile [first seen, trace end] (from the trace
//! start when its earlier state is known) without gaps or overlaps, adjacent
//! spans differ in state, and no span is empty; likewise for pCPUs.

use std::collections::BTreeMap;

use xen_public::trace::{
    Event, SwitchReason, TRC_RUNSTATE_BLOCKED, TRC_RUNSTATE_OFFLINE, TRC_RUNSTATE_RUNNABLE, TRC_RUNSTATE_RUNNING, TRC_XENCORE_HYPERCALL_EXIT,
};
use xen_public::xen::DOMID_IDLE;

use super::VcpuId;
use super::merge::{Source, Stamped};

/// What a vCPU is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VcpuState {
    /// On a pCPU, in guest context.
    Running,
    /// On a pCPU, inside a hypercall (between its entry and exit records).
    Hypervisor,
    /// Waiting for a pCPU.
    Runnable,
    /// Waiting for an event.
    Blocked,
    /// Paused or down.
    Offline,
}

impl VcpuState {
    /// Every state, in display order.
    pub const ALL: [VcpuState; 5] = [VcpuState::Running, VcpuState::Hypervisor, VcpuState::Runnable, VcpuState::Blocked, VcpuState::Offline];

    /// Its name in the summary and the SVG.
    pub fn name(self) -> &'static str {
        match self {
            VcpuState::Running => "running",
            VcpuState::Hypervisor => "hypervisor",
            VcpuState::Runnable => "runnable",
            VcpuState::Blocked => "blocked",
            VcpuState::Offline => "offline",
        }
    }

    fn from_runstate(s: u32) -> Self {
        match s {
            TRC_RUNSTATE_RUNNING => VcpuState::Running,
            TRC_RUNSTATE_RUNNABLE => VcpuState::Runnable,
            TRC_RUNSTATE_BLOCKED => VcpuState::Blocked,
            TRC_RUNSTATE_OFFLINE => VcpuState::Offline,
            _ => VcpuState::Offline,
        }
    }
}

/// What a pCPU runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PcpuState {
    /// Not known yet (no switch seen).
    Unknown,
    /// The idle vCPU.
    Idle,
    /// A guest vCPU.
    Vcpu(VcpuId),
}

/// A state held from `start` to `end` (TSC, end excluded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span<T> {
    /// First TSC.
    pub start: u64,
    /// TSC where the next span begins.
    pub end: u64,
    /// The state.
    pub state: T,
}

/// A hypercall paired from its entry and exit records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HypercallSpan {
    /// The calling vCPU.
    pub vcpu: VcpuId,
    /// `__HYPERVISOR_*`.
    pub op: u32,
    /// TSC of the entry record.
    pub entry: u64,
    /// TSC of the exit record, `None` when the trace ends first.
    pub exit: Option<u64>,
}

/// The reconstructed states.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Timeline {
    /// TSC of the first record.
    pub start: u64,
    /// TSC of the last record.
    pub end: u64,
    /// Each vCPU's spans.
    pub vcpus: BTreeMap<VcpuId, Vec<Span<VcpuState>>>,
    /// Each pCPU's spans.
    pub pcpus: BTreeMap<u32, Vec<Span<PcpuState>>>,
    /// For each input record, the vCPU it is about (named in its payload,
    /// the guest that wrote it, or the vCPU its pCPU ran).
    pub attribution: Vec<Option<VcpuId>>,
    /// Hypercalls, by entry.
    pub hypercalls: Vec<HypercallSpan>,
    /// Exit records with no entry before them on that vCPU.
    pub unpaired_exits: usize,
}

impl Timeline {
    /// TSC ticks `vcpu` spent in `state`.
    pub fn time_in(&self, vcpu: VcpuId, state: VcpuState) -> u64 {
        self.vcpus.get(&vcpu).map_or(0, |s| s.iter().filter(|s| s.state == state).map(|s| s.end - s.start).sum())
    }
    /// TSC ticks of the whole trace.
    pub fn duration(&self) -> u64 {
        self.end - self.start
    }
}

/// TSC ticks as microseconds, for a TSC of `tsc_khz` kHz.
pub fn tsc_to_us(ticks: u64, tsc_khz: u64) -> f64 {
    if tsc_khz == 0 { 0.0 } else { ticks as f64 * 1000.0 / tsc_khz as f64 }
}

struct Track<T> {
    state: T,
    since: u64,
    spans: Vec<Span<T>>,
}

impl<T: Copy + PartialEq> Track<T> {
    fn new(state: T, since: u64) -> Self {
        Track { state, since, spans: Vec::new() }
    }
    fn set(&mut self, state: T, at: u64) {
        if state == self.state {
            return;
        }
        self.close(at);
        self.state = state;
    }
    fn close(&mut self, at: u64) {
        if at > self.since {
            match self.spans.last_mut() {
                Some(last) if last.state == self.state && last.end == self.since => last.end = at,
                _ => self.spans.push(Span { start: self.since, end: at, state: self.state }),
            }
            self.since = at;
        }
    }
}

struct VcpuTrack {
    base: VcpuState,
    hcall: Option<usize>,
    track: Track<VcpuState>,
}

impl VcpuTrack {
    fn shown(&self) -> VcpuState {
        if self.base == VcpuState::Running && self.hcall.is_some() { VcpuState::Hypervisor } else { self.base }
    }
    fn update(&mut self, at: u64) {
        let s = self.shown();
        self.track.set(s, at);
    }
}

struct Builder {
    start: u64,
    vcpus: BTreeMap<VcpuId, VcpuTrack>,
    pcpus: BTreeMap<u32, Track<PcpuState>>,
    hypercalls: Vec<HypercallSpan>,
    unpaired_exits: usize,
    /// Whether the trace has hypercall exit records (xen-core's).
    exits: bool,
}

fn vcpu_id(domid: u32, vcpu: u32) -> Option<VcpuId> {
    let (domid, vcpu) = (u16::try_from(domid).ok()?, u16::try_from(vcpu).ok()?);
    (domid != DOMID_IDLE).then_some(VcpuId { domid, vcpu })
}

impl Builder {
    /// The vCPU's track, created in `initial` since the trace start.
    fn vcpu(&mut self, v: VcpuId, initial: VcpuState) -> &mut VcpuTrack {
        let start = self.start;
        self.vcpus.entry(v).or_insert_with(|| VcpuTrack { base: initial, hcall: None, track: Track::new(initial, start) })
    }
    fn set_base(&mut self, v: VcpuId, initial: VcpuState, state: VcpuState, at: u64) {
        let t = self.vcpu(v, initial);
        t.base = state;
        t.update(at);
    }
    fn set_pcpu(&mut self, cpu: u32, state: PcpuState, at: u64) {
        let start = self.start;
        self.pcpus.entry(cpu).or_insert_with(|| Track::new(PcpuState::Unknown, start)).set(state, at);
    }
    fn occupant(&self, cpu: u32) -> Option<VcpuId> {
        match self.pcpus.get(&cpu).map(|t| t.state) {
            Some(PcpuState::Vcpu(v)) => Some(v),
            _ => None,
        }
    }
    fn switch(&mut self, cpu: u32, prev: Option<VcpuId>, next: Option<VcpuId>, prev_state: Option<VcpuState>, at: u64) {
        if let Some(p) = prev {
            let t = self.vcpu(p, VcpuState::Running);
            if let Some(s) = prev_state {
                t.base = s;
                t.update(at);
            }
        }
        match next {
            Some(n) => {
                self.set_base(n, VcpuState::Runnable, VcpuState::Running, at);
                self.set_pcpu(cpu, PcpuState::Vcpu(n), at);
            }
            None => self.set_pcpu(cpu, PcpuState::Idle, at),
        }
    }

    /// Apply one hypervisor record from `cpu`; the vCPU it is about.
    fn apply(&mut self, cpu: u32, at: u64, e: Event) -> Option<VcpuId> {
        use Event::*;
        match e {
            RunstateChange { domid, vcpu, old, new } => {
                let Some(v) = vcpu_id(u32::from(domid), u32::from(vcpu)) else {
                    if new == TRC_RUNSTATE_RUNNING {
                        self.set_pcpu(cpu, PcpuState::Idle, at);
                    }
                    return None;
                };
                self.set_base(v, VcpuState::from_runstate(old), VcpuState::from_runstate(new), at);
                if new == TRC_RUNSTATE_RUNNING {
                    self.set_pcpu(cpu, PcpuState::Vcpu(v), at);
                } else if old == TRC_RUNSTATE_RUNNING && self.occupant(cpu) == Some(v) {
                    self.set_pcpu(cpu, PcpuState::Idle, at);
                }
                Some(v)
            }
            Switch { prev_domid, prev_vcpu, next_domid, next_vcpu } => {
                let (prev, next) = (vcpu_id(prev_domid, prev_vcpu), vcpu_id(next_domid, next_vcpu));
                self.switch(cpu, prev, next, None, at);
                next.or(prev)
            }
            VcpuSwitch { prev_domid, prev_vcpu, next_domid, next_vcpu, reason } => {
                let prev = vcpu_id(u32::from(prev_domid), u32::from(prev_vcpu));
                let next = vcpu_id(u32::from(next_domid), u32::from(next_vcpu));
                let prev_state = match reason {
                    SwitchReason::Block => VcpuState::Blocked,
                    SwitchReason::Yield | SwitchReason::Preempt | SwitchReason::Wake => VcpuState::Runnable,
                    SwitchReason::Offline => VcpuState::Offline,
                };
                self.switch(cpu, prev, next, Some(prev_state), at);
                next.or(prev)
            }
            Hypercall { subcall: false, op, .. } => {
                let v = self.occupant(cpu)?;
                let idx = self.hypercalls.len();
                self.hypercalls.push(HypercallSpan { vcpu: v, op, entry: at, exit: None });
                if self.exits {
                    let t = self.vcpu(v, VcpuState::Running);
                    t.hcall = Some(idx);
                    t.update(at);
                }
                Some(v)
            }
            HypercallExit { .. } => {
                let Some(v) = self.occupant(cpu) else {
                    self.unpaired_exits += 1;
                    return None;
                };
                let t = self.vcpu(v, VcpuState::Running);
                match t.hcall.take() {
                    Some(idx) => {
                        t.update(at);
                        self.hypercalls[idx].exit = Some(at);
                    }
                    None => self.unpaired_exits += 1,
                }
                Some(v)
            }
            ContinueRunning { domid, vcpu }
            | EvtchnSend { domid, vcpu, .. }
            | Upcall { domid, vcpu, .. }
            | TimerSet { domid, vcpu, .. }
            | TimerFire { domid, vcpu, .. } => vcpu_id(u32::from(domid), u32::from(vcpu)),
            Sleep { domid, vcpu } | Wake { domid, vcpu } | Block { domid, vcpu } | Yield { domid, vcpu } => vcpu_id(domid, vcpu),
            Shutdown { domid, vcpu, .. } | ShutdownCode { domid, vcpu, .. } => vcpu_id(domid, vcpu),
            SwitchInfPrev { domid, vcpu, .. } | SwitchInfNext { domid, vcpu, .. } | SwitchInfCont { domid, vcpu, .. } => vcpu_id(domid, vcpu),
            _ => self.occupant(cpu),
        }
    }
}

/// Rebuild the states from a merged trace ([`super::merge::merge`]).
///
/// The trace spans the hypervisor's records (all records when there are
/// none): a guest's own stream may run on past the hypervisor's (its log
/// kept recording after dom0's store was full), and no state is known
/// there.
pub fn reconstruct(records: &[Stamped]) -> Timeline {
    let span =
        |tscs: &mut dyn Iterator<Item = u64>| tscs.fold(None, |m: Option<(u64, u64)>, t| Some(m.map_or((t, t), |(a, b)| (a.min(t), b.max(t)))));
    let (start, end) = span(&mut records.iter().filter(|s| matches!(s.source, Source::Hypervisor { .. })).map(|s| s.tsc))
        .or_else(|| span(&mut records.iter().map(|s| s.tsc)))
        .unwrap_or((0, 0));
    let exits = records.iter().any(|s| s.record.event() == TRC_XENCORE_HYPERCALL_EXIT);
    let mut b = Builder { start, vcpus: BTreeMap::new(), pcpus: BTreeMap::new(), hypercalls: Vec::new(), unpaired_exits: 0, exits };
    let mut attribution = Vec::with_capacity(records.len());
    for s in records {
        let who = match s.source {
            Source::Guest(v) => Some(v),
            Source::Hypervisor { cpu } => match s.record.decode_event() {
                Ok(e) => b.apply(cpu, s.tsc, e),
                Err(_) => b.occupant(cpu),
            },
        };
        attribution.push(who);
    }
    let vcpus = b
        .vcpus
        .into_iter()
        .map(|(v, mut t)| {
            t.track.close(end);
            (v, t.track.spans)
        })
        .collect();
    let pcpus = b
        .pcpus
        .into_iter()
        .map(|(c, mut t)| {
            t.close(end);
            (c, t.spans)
        })
        .collect();
    Timeline { start, end, vcpus, pcpus, attribution, hypercalls: b.hypercalls, unpaired_exits: b.unpaired_exits }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::trace::merge::merge;
    use xen_public::trace::TraceRecord;

    /// Builds per-CPU hypervisor streams.
    #[derive(Default)]
    pub(crate) struct Trace(pub BTreeMap<u32, Vec<TraceRecord>>);

    impl Trace {
        pub(crate) fn at(&mut self, cpu: u32, tsc: u64, e: Event) -> &mut Self {
            self.0.entry(cpu).or_default().push(e.payload().record(tsc));
            self
        }
    }

    #[test]
    fn xen_4_17_entries_without_exits_leave_the_vcpu_running() {
        // Xen 4.17's __trace_hypercall writes TRC_PV_HYPERCALL_V2 at entry
        // and nothing at exit: no "hypervisor" time can be known.
        let mut t = Trace::default();
        t.at(0, 100, Event::runstate_change(1, 0, TRC_RUNSTATE_RUNNABLE, TRC_RUNSTATE_RUNNING))
            .at(0, 200, Event::hypercall(29, &[1, 0, 0, 0, 0]))
            .at(0, 1000, Event::runstate_change(1, 0, TRC_RUNSTATE_RUNNING, TRC_RUNSTATE_BLOCKED));
        let tl = reconstruct(&merge(&t.0, &[]).unwrap());
        let v = VcpuId { domid: 1, vcpu: 0 };
        assert_eq!((tl.time_in(v, VcpuState::Running), tl.time_in(v, VcpuState::Hypervisor)), (900, 0));
        assert_eq!(tl.hypercalls, vec![HypercallSpan { vcpu: v, op: 29, entry: 200, exit: None }]);
    }

    pub(crate) const SPINNER: VcpuId = VcpuId { domid: 1, vcpu: 0 };
    pub(crate) const BLOCKER: VcpuId = VcpuId { domid: 2, vcpu: 0 };
    pub(crate) const PINGPONG: VcpuId = VcpuId { domid: 3, vcpu: 0 };

    /// 10000 ticks on two pCPUs: d1v0 spins on cpu0 and is preempted once
    /// by d3v0, which wakes, sends an event to d1 (port 3 -> d1 port 7,
    /// delivered 400 ticks later) and blocks; d2v0 blocks on cpu1 in
    /// sched_op, a timer wakes it at 5000, it blocks again at 5100.
    pub(crate) fn three_guests() -> Vec<Stamped> {
        use Event::*;
        let rs = Event::runstate_change;
        let (r, rb, b) = (TRC_RUNSTATE_RUNNING, TRC_RUNSTATE_RUNNABLE, TRC_RUNSTATE_BLOCKED);
        let idle = u32::from(DOMID_IDLE);
        let mut t = Trace::default();
        // As Xen's sched_switch_units writes a switch: TRC_SCHED_SWITCH,
        // then the runstate changes of the previous and the next vCPU (the
        // idle vCPU's too); xen-core adds VCPU_SWITCH with the reason.
        t.at(0, 0, Switch { prev_domid: idle, prev_vcpu: 0, next_domid: 1, next_vcpu: 0 })
            .at(0, 0, rs(DOMID_IDLE, 0, r, rb))
            .at(0, 0, rs(1, 0, rb, r))
            .at(0, 4990, Wake { domid: 3, vcpu: 0 })
            .at(0, 4990, rs(3, 0, b, rb))
            .at(0, 5000, Switch { prev_domid: 1, prev_vcpu: 0, next_domid: 3, next_vcpu: 0 })
            .at(0, 5000, VcpuSwitch { prev_domid: 1, prev_vcpu: 0, next_domid: 3, next_vcpu: 0, reason: SwitchReason::Preempt })
            .at(0, 5000, rs(1, 0, r, rb))
            .at(0, 5000, rs(3, 0, rb, r))
            .at(0, 5200, Event::hypercall(32, &[4, 0, 0, 0, 0]))
            .at(0, 5205, EvtchnSend { domid: 3, vcpu: 0, port: 3, remote_domid: 1, remote_port: 7 })
            .at(0, 5210, HypercallExit { op: 32, result: 0, cycles: 10 })
            .at(0, 5500, Block { domid: 3, vcpu: 0 })
            .at(0, 5500, Switch { prev_domid: 3, prev_vcpu: 0, next_domid: 1, next_vcpu: 0 })
            .at(0, 5500, VcpuSwitch { prev_domid: 3, prev_vcpu: 0, next_domid: 1, next_vcpu: 0, reason: SwitchReason::Block })
            .at(0, 5500, rs(3, 0, r, b))
            .at(0, 5500, rs(1, 0, rb, r))
            .at(0, 5600, Upcall { domid: 1, vcpu: 0, port: 7, pending_sel: 1 })
            .at(0, 10000, ContinueRunning { domid: 1, vcpu: 0 });
        t.at(1, 0, Switch { prev_domid: idle, prev_vcpu: 1, next_domid: 2, next_vcpu: 0 })
            .at(1, 0, rs(DOMID_IDLE, 1, r, rb))
            .at(1, 0, rs(2, 0, rb, r))
            .at(1, 50, Event::hypercall(29, &[1, 0, 0, 0, 0]))
            .at(1, 55, TimerSet { domid: 2, vcpu: 0, deadline: 4995 })
            .at(1, 60, Block { domid: 2, vcpu: 0 })
            .at(1, 60, Switch { prev_domid: 2, prev_vcpu: 0, next_domid: idle, next_vcpu: 1 })
            .at(1, 60, rs(2, 0, r, b))
            .at(1, 60, rs(DOMID_IDLE, 1, rb, r))
            .at(1, 4995, TimerFire { domid: 2, vcpu: 0, late_ns: 5 })
            .at(1, 5000, Wake { domid: 2, vcpu: 0 })
            .at(1, 5000, rs(2, 0, b, rb))
            .at(1, 5010, Switch { prev_domid: idle, prev_vcpu: 1, next_domid: 2, next_vcpu: 0 })
            .at(1, 5010, rs(DOMID_IDLE, 1, r, rb))
            .at(1, 5010, rs(2, 0, rb, r))
            .at(1, 5020, HypercallExit { op: 29, result: 0, cycles: 4970 })
            .at(1, 5090, Event::hypercall(29, &[1, 0, 0, 0, 0]))
            .at(1, 5100, Block { domid: 2, vcpu: 0 })
            .at(1, 5100, Switch { prev_domid: 2, prev_vcpu: 0, next_domid: idle, next_vcpu: 1 })
            .at(1, 5100, rs(2, 0, r, b))
            .at(1, 5100, rs(DOMID_IDLE, 1, rb, r));
        merge(&t.0, &[]).unwrap()
    }

    fn times(tl: &Timeline, v: VcpuId) -> [u64; 5] {
        VcpuState::ALL.map(|s| tl.time_in(v, s))
    }

    #[test]
    fn spinner_blocker_and_pingponger_states_add_up() {
        let tl = reconstruct(&three_guests());
        assert_eq!((tl.start, tl.end), (0, 10000));
        // [running, hypervisor, runnable, blocked, offline]
        assert_eq!(times(&tl, SPINNER), [9500, 0, 500, 0, 0]);
        assert_eq!(times(&tl, BLOCKER), [120, 30, 10, 9840, 0]);
        assert_eq!(times(&tl, PINGPONG), [490, 10, 10, 9490, 0]);
        for spans in tl.vcpus.values() {
            assert_eq!(spans.first().unwrap().start, 0);
            assert_eq!(spans.last().unwrap().end, 10000);
            for w in spans.windows(2) {
                assert_eq!(w[0].end, w[1].start);
                assert_ne!(w[0].state, w[1].state);
            }
        }
    }

    #[test]
    fn a_guest_stream_past_the_hypervisors_records_does_not_stretch_the_trace() {
        use xen_public::trace_guest::GuestEvent;
        let late = GuestEvent::XenbusRequest { type_: 2, req_id: 1, tx_id: 0, len: 1 }.record(90_000);
        let early = GuestEvent::XenbusRequest { type_: 2, req_id: 2, tx_id: 0, len: 1 }.record(1);
        let mut cpus = std::collections::BTreeMap::new();
        for s in three_guests() {
            let Source::Hypervisor { cpu } = s.source else { continue };
            cpus.entry(cpu).or_insert_with(Vec::new).push(s.record);
        }
        let g = super::super::merge::GuestStream { vcpu: PINGPONG, records: vec![early, late] };
        let tl = reconstruct(&merge(&cpus, &[g]).unwrap());
        assert_eq!((tl.start, tl.end), (0, 10000), "the span is the hypervisor's");
        assert_eq!(times(&tl, PINGPONG), [490, 10, 10, 9490, 0], "no state is invented past it");
    }

    #[test]
    fn pcpus_show_which_vcpu_or_idle() {
        let tl = reconstruct(&three_guests());
        let v = PcpuState::Vcpu;
        let span = |start, end, state| Span { start, end, state };
        assert_eq!(tl.pcpus[&0], vec![span(0, 5000, v(SPINNER)), span(5000, 5500, v(PINGPONG)), span(5500, 10000, v(SPINNER))]);
        assert_eq!(
            tl.pcpus[&1],
            vec![span(0, 60, v(BLOCKER)), span(60, 5010, PcpuState::Idle), span(5010, 5100, v(BLOCKER)), span(5100, 10000, PcpuState::Idle)]
        );
    }

    #[test]
    fn hypercalls_pair_entry_and_exit_on_the_same_vcpu() {
        let tl = reconstruct(&three_guests());
        assert_eq!(
            tl.hypercalls,
            vec![
                HypercallSpan { vcpu: BLOCKER, op: 29, entry: 50, exit: Some(5020) },
                HypercallSpan { vcpu: BLOCKER, op: 29, entry: 5090, exit: None },
                HypercallSpan { vcpu: PINGPONG, op: 32, entry: 5200, exit: Some(5210) },
            ]
        );
        assert_eq!(tl.unpaired_exits, 0);
    }

    #[test]
    fn records_are_attributed_to_the_vcpu_they_concern() {
        let m = three_guests();
        let tl = reconstruct(&m);
        assert_eq!(tl.attribution.len(), m.len());
        for (s, who) in m.iter().zip(&tl.attribution) {
            if s.record.decode_event() == Ok(Event::hypercall(32, &[4, 0, 0, 0, 0])) {
                assert_eq!(*who, Some(PINGPONG));
            }
            if let Ok(Event::Upcall { .. }) = s.record.decode_event() {
                assert_eq!(*who, Some(SPINNER));
            }
        }
    }

    #[test]
    fn tsc_converts_to_microseconds_by_khz() {
        assert_eq!(tsc_to_us(3_000_000, 3_000_000), 1000.0);
        assert_eq!(tsc_to_us(1500, 1_500_000), 1.0);
        assert_eq!(tsc_to_us(5, 0), 0.0);
    }
}
