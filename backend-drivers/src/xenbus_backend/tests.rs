//! Host tests of the backend machine: blkback's keys, Linux's
//! `frontend_changed` rules, a hostile frontend writing every kind of bad
//! value, and both machines (this one and blkfront's) run against each
//! other through one fake store.

extern crate std;

use super::*;
use frontend_drivers::xenbus_fake::FakeStore;
use frontend_drivers::xenbus_frontend::{BlkInfo, Blkfront, BlkfrontRing, DiscardInfo, FrontAction, FrontEvent, Frontend};
use frontend_drivers::xenbus_store::{DeviceNodes, Store, apply};
use std::string::String;
use std::vec::Vec as StdVec;

const FE: &str = "/local/domain/1/device/vbd/51712";
const BE: &str = "/local/domain/0/backend/vbd/1/51712";
const BE_ERR: &str = "/local/domain/0/error/backend/vbd/1/51712/error";
const FE_ERR: &str = "/local/domain/1/error/device/vbd/51712/error";

fn disk() -> Disk {
    Disk {
        sectors: 32768,
        sector_size: 512,
        physical_sector_size: 4096,
        readonly: false,
        cdrom: false,
        removable: false,
        flush: true,
        discard: Some(Discard { granularity: 4096, alignment: 0, secure: false }),
    }
}

fn be_nodes() -> DeviceNodes {
    DeviceNodes::new("/local/domain/0", "backend/vbd/1/51712", FE, "be").unwrap()
}

fn fe_nodes() -> DeviceNodes {
    DeviceNodes::new("/local/domain/1", "device/vbd/51712", BE, "fe").unwrap()
}

/// The toolstack's part of attaching (libxl writes both directories at
/// Initialising, backend online).
fn toolstack_attach(s: &mut FakeStore) {
    for (p, v) in [
        ("/local/domain/1/device/vbd/51712/state", "1"),
        ("/local/domain/1/device/vbd/51712/backend", BE),
        ("/local/domain/1/device/vbd/51712/backend-id", "0"),
        ("/local/domain/1/device/vbd/51712/virtual-device", "51712"),
        ("/local/domain/0/backend/vbd/1/51712/state", "1"),
        ("/local/domain/0/backend/vbd/1/51712/frontend", FE),
        ("/local/domain/0/backend/vbd/1/51712/frontend-id", "1"),
        ("/local/domain/0/backend/vbd/1/51712/online", "1"),
        ("/local/domain/0/backend/vbd/1/51712/mode", "w"),
    ] {
        s.write(p, v.as_bytes()).unwrap();
    }
}

type BeAct = BackAction<BlkRing>;

/// A backend alone, its actions applied to the store; the frontend's side
/// is whatever the test writes.
struct Solo {
    s: FakeStore,
    be: Backend<Blkback>,
    log: StdVec<BeAct>,
}

impl Solo {
    fn new(cfg: Blkback) -> Self {
        let mut s = FakeStore::new();
        toolstack_attach(&mut s);
        let mut solo = Solo { s, be: Backend::new(cfg, FE).unwrap(), log: StdVec::new() };
        solo.ev(BackEvent::Probe);
        solo.ev(BackEvent::MediaReady(disk()));
        solo
    }

    fn ev(&mut self, e: BackEvent<Disk>) -> StdVec<BeAct> {
        let acts = self.be.handle(e, &mut self.s);
        assert!(acts.len() < ACTIONS_MAX, "a step's actions stay below the bound");
        for a in &acts {
            if let BackAction::Store(op) = a {
                apply(&mut self.s, &be_nodes(), op).unwrap();
            }
        }
        self.log.extend(acts.iter().cloned());
        acts.into_iter().collect()
    }

    /// The frontend writes `keys`, then its state; the watch fires.
    fn frontend_writes(&mut self, keys: &[(&str, &[u8])], state: &[u8]) -> StdVec<BeAct> {
        for (k, v) in keys {
            self.s.write(&std::format!("{FE}/{k}"), v).unwrap();
        }
        self.s.write(&std::format!("{FE}/state"), state).unwrap();
        self.ev(BackEvent::FrontendChanged)
    }

    fn be_get(&self, key: &str) -> Option<String> {
        self.s.get(&std::format!("{BE}/{key}"))
    }

    fn maps(&self) -> usize {
        self.log.iter().filter(|a| matches!(a, BackAction::MapRing(_))).count()
    }
}

/// Frontend keys to write: `(key, value)`.
type Keys<'a> = &'a [(&'a str, &'a [u8])];

const GOOD: Keys = &[("ring-ref", b"8"), ("event-channel", b"5"), ("protocol", b"x86_64-abi"), ("feature-persistent", b"1")];

/// blkback's probe: the offer (`feature-max-indirect-segments`,
/// `multi-queue-max-queues`, `max-ring-page-order`), then InitWait.
#[test]
fn probe_offers_blkbacks_keys_then_init_wait() {
    let solo = Solo::new(Blkback::default());
    assert_eq!(solo.be_get("feature-max-indirect-segments").as_deref(), Some("256"));
    assert_eq!(solo.be_get("multi-queue-max-queues").as_deref(), Some("1"));
    assert_eq!(solo.be_get("max-ring-page-order").as_deref(), Some("4"));
    assert_eq!(solo.be_get("state").as_deref(), Some("2"));
    let pos = |k: &str| solo.log.iter().position(|a| matches!(a, BackAction::Store(StoreOp::Write(key, _)) if key == k)).unwrap();
    let init_wait = solo.log.iter().position(|a| a == &BackAction::Store(StoreOp::SwitchState(XENBUS_STATE_INIT_WAIT))).unwrap();
    assert!(pos("max-ring-page-order") < init_wait, "the offer is in place before InitWait");
}

/// blkif.h: frontend Initialised → backend maps `ring-ref`/`event-channel`
/// and, with the disk open, publishes it and goes Connected. The device
/// keys are written before the state.
#[test]
fn initialised_frontend_is_mapped_then_connected_with_disk_keys() {
    let mut solo = Solo::new(Blkback::default());
    let acts = solo.frontend_writes(GOOD, b"3");
    let ring = BlkRing { ring_refs: Vec::from_slice(&[8]).unwrap(), evtchn: 5, persistent: true };
    assert_eq!(acts, [BackAction::MapRing(ring.clone())]);
    assert_eq!(solo.be_get("state").as_deref(), Some("2"), "not Connected before the ring is mapped");
    let acts = solo.ev(BackEvent::RingMapped);
    assert_eq!(acts.last(), Some(&BackAction::Store(StoreOp::SwitchState(XENBUS_STATE_CONNECTED))));
    for (k, v) in [
        ("feature-flush-cache", "1"),
        ("feature-barrier", "1"),
        ("feature-discard", "1"),
        ("discard-granularity", "4096"),
        ("discard-alignment", "0"),
        ("discard-secure", "0"),
        ("feature-persistent", "1"),
        ("sectors", "32768"),
        ("info", "0"),
        ("sector-size", "512"),
        ("physical-sector-size", "4096"),
        ("state", "4"),
    ] {
        assert_eq!(solo.be_get(k).as_deref(), Some(v), "{k}");
    }
    assert_eq!(solo.be.ring(), Some(&ring));
}

/// xen_update_blkif_status: Connected needs both the mapped ring and the
/// opened medium, in either order; a read-only CD-ROM says so in `info`.
#[test]
fn connect_waits_for_the_medium() {
    let mut s = FakeStore::new();
    toolstack_attach(&mut s);
    let mut be = Backend::new(Blkback::default(), FE).unwrap();
    let run = |be: &mut Backend<Blkback>, s: &mut FakeStore, e| {
        let acts = be.handle(e, s);
        for a in &acts {
            if let BackAction::Store(op) = a {
                apply(s, &be_nodes(), op).unwrap();
            }
        }
        acts
    };
    run(&mut be, &mut s, BackEvent::Probe);
    for (k, v) in GOOD {
        s.write(&std::format!("{FE}/{k}"), v).unwrap();
    }
    s.write(&std::format!("{FE}/state"), b"3").unwrap();
    run(&mut be, &mut s, BackEvent::FrontendChanged);
    run(&mut be, &mut s, BackEvent::RingMapped);
    assert_eq!(be.state(), XENBUS_STATE_INIT_WAIT);
    let cd = Disk { readonly: true, cdrom: true, discard: None, flush: false, ..disk() };
    run(&mut be, &mut s, BackEvent::MediaReady(cd));
    assert_eq!(be.state(), XENBUS_STATE_CONNECTED);
    assert_eq!(s.get(&std::format!("{BE}/info")), Some(std::format!("{}", VDISK_CDROM | VDISK_READONLY)));
    assert_eq!(s.get(&std::format!("{BE}/feature-discard")).as_deref(), Some("0"));
    assert_eq!(s.get(&std::format!("{BE}/discard-granularity")), None);
    assert_eq!(s.get(&std::format!("{BE}/feature-flush-cache")).as_deref(), Some("0"));
}

/// blkif.h ring-ref%u: with `ring-page-order` N the backend maps
/// `ring-ref0` .. `ring-ref(2^N - 1)`, up to the order it offered.
#[test]
fn multi_page_ring_reads_ring_ref_n() {
    let mut solo = Solo::new(Blkback { max_ring_page_order: 2, ..Blkback::default() });
    let acts = solo.frontend_writes(
        &[("ring-page-order", b"2"), ("ring-ref0", b"10"), ("ring-ref1", b"11"), ("ring-ref2", b"12"), ("ring-ref3", b"13"), ("event-channel", b"7")],
        b"3",
    );
    let ring = BlkRing { ring_refs: Vec::from_slice(&[10, 11, 12, 13]).unwrap(), evtchn: 7, persistent: false };
    assert_eq!(acts, [BackAction::MapRing(ring)]);
}

/// Linux frontend_changed: the same state seen twice (the watch firing
/// again) maps the ring once; Connected after Initialised is no remap.
#[test]
fn repeated_frontend_states_map_once() {
    let mut solo = Solo::new(Blkback::default());
    solo.frontend_writes(GOOD, b"3");
    solo.ev(BackEvent::FrontendChanged);
    solo.ev(BackEvent::RingMapped);
    solo.frontend_writes(&[], b"4");
    solo.ev(BackEvent::FrontendChanged);
    assert_eq!(solo.maps(), 1);
    assert_eq!(solo.be.state(), XENBUS_STATE_CONNECTED);
}

/// A hostile frontend's write ends in Closing with an `error` node
/// (`"<errno> ..."`), no ring mapped, and nothing else.
fn assert_refused(solo: &Solo, what: &str) {
    assert_eq!(solo.be.state(), XENBUS_STATE_CLOSING, "{what}: Closing");
    assert_eq!(solo.be_get("state").as_deref(), Some("5"), "{what}: state node");
    let err = solo.s.get(BE_ERR).unwrap_or_else(|| panic!("{what}: error node"));
    assert!(err.starts_with("22 ") || err.starts_with("38 "), "{what}: {err}");
    assert_eq!(solo.maps(), 0, "{what}: no ring mapped");
    assert!(solo.be.ring().is_none());
}

/// Attack: every kind of bad transport key from the frontend (missing,
/// non-numeric, out of range, above the offered order, unknown protocol,
/// bad queue count, bad boolean, overlong) is refused.
#[test]
fn hostile_transport_keys_close_with_error() {
    let long = [b'x'; 300];
    let cases: &[(&str, Keys)] = &[
        ("no event-channel", &[("ring-ref", b"8")]),
        ("no ring-ref", &[("event-channel", b"5")]),
        ("ring-ref abc", &[("ring-ref", b"abc"), ("event-channel", b"5")]),
        ("ring-ref -1", &[("ring-ref", b"-1"), ("event-channel", b"5")]),
        ("ring-ref empty", &[("ring-ref", b""), ("event-channel", b"5")]),
        ("ring-ref 12abc", &[("ring-ref", b"12abc"), ("event-channel", b"5")]),
        ("ring-ref space", &[("ring-ref", b" 5"), ("event-channel", b"5")]),
        ("ring-ref > u32", &[("ring-ref", b"4294967296"), ("event-channel", b"5")]),
        ("ring-ref overlong", &[("ring-ref", &long), ("event-channel", b"5")]),
        ("event-channel hex", &[("ring-ref", b"8"), ("event-channel", b"0x5")]),
        ("order above offer", &[("ring-page-order", b"5"), ("ring-ref0", b"8"), ("event-channel", b"5")]),
        ("order huge", &[("ring-page-order", b"4294967295"), ("event-channel", b"5")]),
        ("order overflow", &[("ring-page-order", b"99999999999999999999"), ("event-channel", b"5")]),
        ("order not a number", &[("ring-page-order", b"two"), ("ring-ref", b"8"), ("event-channel", b"5")]),
        ("ring-ref1 missing", &[("ring-page-order", b"1"), ("ring-ref0", b"8"), ("event-channel", b"5")]),
        ("order given, only ring-ref", &[("ring-page-order", b"0"), ("ring-ref", b"8"), ("event-channel", b"5")]),
        ("x86_32 protocol", &[("ring-ref", b"8"), ("event-channel", b"5"), ("protocol", b"x86_32-abi")]),
        ("arm protocol", &[("ring-ref", b"8"), ("event-channel", b"5"), ("protocol", b"arm-abi")]),
        ("garbage protocol", &[("ring-ref", b"8"), ("event-channel", b"5"), ("protocol", b"\xff\x00zz")]),
        ("overlong protocol", &[("ring-ref", b"8"), ("event-channel", b"5"), ("protocol", &long)]),
        ("zero queues", &[("ring-ref", b"8"), ("event-channel", b"5"), ("multi-queue-num-queues", b"0")]),
        ("two queues", &[("ring-ref", b"8"), ("event-channel", b"5"), ("multi-queue-num-queues", b"2")]),
        ("queues garbage", &[("ring-ref", b"8"), ("event-channel", b"5"), ("multi-queue-num-queues", b"many")]),
        ("persistent 2", &[("ring-ref", b"8"), ("event-channel", b"5"), ("feature-persistent", b"2")]),
        ("persistent yes", &[("ring-ref", b"8"), ("event-channel", b"5"), ("feature-persistent", b"yes")]),
    ];
    for (what, keys) in cases {
        for state in [&b"3"[..], b"4"] {
            let mut solo = Solo::new(Blkback::default());
            solo.frontend_writes(keys, state);
            assert_refused(&solo, what);
        }
    }
}

/// Attack: an order above a smaller configured maximum is refused too.
#[test]
fn ring_order_above_configured_max_is_refused() {
    let mut solo = Solo::new(Blkback { max_ring_page_order: 1, ..Blkback::default() });
    solo.frontend_writes(
        &[("ring-page-order", b"2"), ("ring-ref0", b"1"), ("ring-ref1", b"2"), ("ring-ref2", b"3"), ("ring-ref3", b"4"), ("event-channel", b"5")],
        b"3",
    );
    assert_refused(&solo, "order 2 > max 1");
    assert!(solo.s.get(BE_ERR).unwrap().contains("exceed max:1"));
}

/// Attack: states a frontend never takes (InitWait, Reconfiguring,
/// Reconfigured: Linux "saw state %d at frontend") and values that are not
/// states at all are refused.
#[test]
fn hostile_frontend_states_close_with_error() {
    for state in [&b"2"[..], b"7", b"8", b"9", b"abc", b"", b"-1", b"4294967295", b"3 ", &[b'4'; 100]] {
        let mut solo = Solo::new(Blkback::default());
        solo.frontend_writes(GOOD, state);
        assert_refused(&solo, &std::format!("state {:?}", Bytes(state)));
    }
}

/// Attack: a frontend going backwards (Connected → Initialising or
/// Initialised, Closing → Connected) is refused, and the mapped ring is
/// dropped at once.
#[test]
fn frontend_states_moving_backwards_close_with_error() {
    for (path, back) in [(&[&b"3"[..], b"4"][..], &b"1"[..]), (&[b"3", b"4"], b"3"), (&[b"3", b"4", b"5"], b"4"), (&[b"3", b"5"], b"1")] {
        let mut solo = Solo::new(Blkback::default());
        for (i, st) in path.iter().enumerate() {
            solo.frontend_writes(if i == 0 { GOOD } else { &[] }, st);
            if i == 0 {
                solo.ev(BackEvent::RingMapped);
            }
        }
        let acts = solo.frontend_writes(&[], back);
        assert!(solo.s.get(BE_ERR).unwrap().contains("went back"), "{path:?} -> {back:?}");
        assert_eq!(solo.be.state(), XENBUS_STATE_CLOSING);
        assert!(solo.be.ring().is_none());
        if solo.log.iter().filter(|a| matches!(a, BackAction::Disconnect { .. })).count() == 0 {
            panic!("ring not unmapped: {acts:?}");
        }
    }
}

/// Attack: after a refusal, the frontend writing Initialised/Connected
/// again does not get a ring mapped (it must close and start over).
#[test]
fn refused_frontend_cannot_reconnect_without_closing() {
    let mut solo = Solo::new(Blkback::default());
    solo.frontend_writes(&[("ring-ref", b"x")], b"3");
    assert_refused(&solo, "bad ring-ref");
    solo.frontend_writes(GOOD, b"4");
    solo.frontend_writes(GOOD, b"3");
    assert_eq!(solo.maps(), 0);
    // The proper way: Closed, then Initialising → InitWait, then a map.
    solo.frontend_writes(&[], b"6");
    assert_eq!(solo.be.state(), XENBUS_STATE_CLOSED);
    solo.frontend_writes(&[], b"1");
    assert_eq!(solo.be.state(), XENBUS_STATE_INIT_WAIT);
    solo.frontend_writes(GOOD, b"3");
    assert_eq!(solo.maps(), 1);
}

/// A grant the frontend does not really grant (mapping fails) closes the
/// device with an error node.
#[test]
fn ring_that_fails_to_map_closes_with_error() {
    let mut solo = Solo::new(Blkback::default());
    solo.frontend_writes(GOOD, b"3");
    solo.ev(BackEvent::RingFailed(-22));
    assert_eq!(solo.be.state(), XENBUS_STATE_CLOSING);
    assert!(solo.s.get(BE_ERR).unwrap().starts_with("22 mapping ring-ref"));
    assert!(solo.be.ring().is_none());
}

/// Attack: a frontend flipping its state node through random values,
/// garbage included, never panics the backend, never gets more than one
/// ring mapped per connection, and each step's output stays bounded.
#[test]
fn state_flapping_is_bounded() {
    let mut solo = Solo::new(Blkback::default());
    for (k, v) in GOOD {
        solo.s.write(&std::format!("{FE}/{k}"), v).unwrap();
    }
    let mut x: u32 = 12345;
    let values: [&[u8]; 12] = [b"0", b"1", b"2", b"3", b"4", b"5", b"6", b"7", b"8", b"9", b"zz", b""];
    let mut maps_before_closed = 0;
    for _ in 0..5000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let v = values[(x >> 16) as usize % values.len()];
        solo.s.write(&std::format!("{FE}/state"), v).unwrap();
        let acts = solo.ev(BackEvent::FrontendChanged);
        if acts.iter().any(|a| matches!(a, BackAction::MapRing(_))) {
            maps_before_closed += 1;
            assert_eq!(maps_before_closed, 1, "one mapping per connection");
            if x & 1 == 0 {
                solo.ev(BackEvent::RingMapped);
            } else {
                solo.ev(BackEvent::RingFailed(-22));
            }
        }
        if acts.iter().any(|a| matches!(a, BackAction::Disconnect { .. })) || solo.be.ring().is_none() {
            maps_before_closed = 0;
        }
        if solo.be.removed() {
            break;
        }
    }
    assert!(solo.s.events.len() < 20_000);
}

/// libxl device removal: once removed, the backend ignores everything and
/// its directory stays gone.
#[test]
fn removed_backend_ignores_all_events() {
    let mut solo = Solo::new(Blkback::default());
    solo.ev(BackEvent::Detach { force: true });
    assert!(solo.be.removed());
    assert!(!solo.s.exists(BE));
    for e in [BackEvent::Probe, BackEvent::FrontendChanged, BackEvent::RingMapped, BackEvent::Detach { force: false }, BackEvent::FrontendDied] {
        assert!(solo.ev(e).is_empty());
    }
    solo.frontend_writes(GOOD, b"3");
    assert!(!solo.s.exists(BE), "not resurrected");
}

// ---------------------------------------------------------------------
// Both machines through one store.

type FeAct = FrontAction<frontend_drivers::xenbus_frontend::BlkParams, BlkInfo>;

/// dom0's blkback, the guest's blkfront, the toolstack and the fake store.
struct World {
    s: FakeStore,
    be: Backend<Blkback>,
    fe: Option<Frontend<Blkfront>>,
    be_q: StdVec<BackEvent<Disk>>,
    fe_q: StdVec<FrontEvent<BlkfrontRing>>,
    be_log: StdVec<BeAct>,
    fe_log: StdVec<FeAct>,
    /// The ring the frontend granted, and whether blkback has it mapped.
    fe_ring: Option<BlkfrontRing>,
    be_mapped: Option<BlkRing>,
    /// Requests in flight on the ring (for the mid-I/O death).
    inflight: u32,
    next_gref: u32,
}

impl World {
    fn new() -> Self {
        let mut s = FakeStore::new();
        toolstack_attach(&mut s);
        let mut w = World {
            s,
            be: Backend::new(Blkback::default(), FE).unwrap(),
            fe: Some(Frontend::new(Blkfront { max_ring_page_order: 1, persistent: true }, BE).unwrap()),
            be_q: StdVec::new(),
            fe_q: StdVec::new(),
            be_log: StdVec::new(),
            fe_log: StdVec::new(),
            fe_ring: None,
            be_mapped: None,
            inflight: 0,
            next_gref: 8,
        };
        w.be_q.push(BackEvent::Probe);
        w.fe_q.push(FrontEvent::Probe);
        w.be_q.push(BackEvent::MediaReady(disk()));
        w
    }

    fn be_do(&mut self, e: BackEvent<Disk>) {
        for a in self.be.handle(e, &mut self.s) {
            match &a {
                BackAction::Store(op) => apply(&mut self.s, &be_nodes(), op).unwrap(),
                BackAction::MapRing(r) => {
                    let granted = self.fe_ring.as_ref().map(|f| (f.ring_refs.as_slice(), f.evtchn));
                    let ok = granted == Some((r.ring_refs.as_slice(), r.evtchn));
                    if ok {
                        self.be_mapped = Some(r.clone());
                        self.be_q.push(BackEvent::RingMapped);
                    } else {
                        self.be_q.push(BackEvent::RingFailed(-22));
                    }
                }
                BackAction::Disconnect { .. } => {
                    assert!(self.be_mapped.take().is_some(), "disconnect only what is mapped");
                    self.inflight = 0;
                }
                BackAction::Removed => {}
            }
            self.be_log.push(a);
        }
    }

    fn fe_do(&mut self, e: FrontEvent<BlkfrontRing>) {
        let Some(fe) = self.fe.as_mut() else { return };
        for a in fe.handle(e, &mut self.s) {
            match &a {
                FrontAction::Store(op) => apply(&mut self.s, &fe_nodes(), op).unwrap(),
                FrontAction::SetupRing(p) => {
                    assert!(self.fe_ring.is_none(), "one ring at a time");
                    let pages = 1u32 << p.ring_page_order;
                    let refs: StdVec<u32> = (self.next_gref..self.next_gref + pages).collect();
                    self.next_gref += pages;
                    self.fe_q.push(FrontEvent::RingReady(BlkfrontRing { ring_refs: Vec::from_slice(&refs).unwrap(), evtchn: 5 }));
                }
                FrontAction::Disconnect => {
                    assert!(self.fe_ring.is_some() || self.fe_log.iter().any(|a| matches!(a, FrontAction::SetupRing(_))));
                    self.fe_ring = None;
                }
                FrontAction::Connected(_) | FrontAction::Resized(_) => {}
            }
            self.fe_log.push(a);
        }
    }

    /// Deliver driver answers and watch events until nothing moves; panics
    /// if the two machines never settle.
    fn pump(&mut self) {
        for _ in 0..500 {
            if !self.be_q.is_empty() {
                let e = self.be_q.remove(0);
                self.be_do(e);
            } else if !self.fe_q.is_empty() {
                let e = self.fe_q.remove(0);
                if let FrontEvent::RingReady(r) = &e {
                    self.fe_ring = Some(r.clone());
                }
                self.fe_do(e);
            } else if let Some((_, token)) = self.s.next_event() {
                match token.as_str() {
                    "be" => self.be_do(BackEvent::FrontendChanged),
                    "fe" => self.fe_do(FrontEvent::BackendChanged),
                    t => panic!("unknown token {t}"),
                }
            } else {
                return;
            }
        }
        panic!("the handshake never settled");
    }

    fn fe_state(&self) -> XenbusState {
        self.fe.as_ref().map_or(XENBUS_STATE_UNKNOWN, |f| f.state())
    }

    fn attach(&mut self) {
        self.pump();
        assert_eq!(self.be.state(), XENBUS_STATE_CONNECTED);
        assert_eq!(self.fe_state(), XENBUS_STATE_CONNECTED);
        assert_eq!(self.s.get(&std::format!("{BE}/state")).as_deref(), Some("4"));
        assert_eq!(self.s.get(&std::format!("{FE}/state")).as_deref(), Some("4"));
    }
}

/// Attach end to end: both reach Connected, blkback maps exactly the
/// grants blkfront published (2 pages: the frontend's max order 1 under
/// the backend's 4), and blkfront sees the disk blkback described.
#[test]
fn attach_reaches_connected_on_both_ends() {
    let mut w = World::new();
    w.attach();
    let fe_ring = w.fe_ring.clone().unwrap();
    assert_eq!(fe_ring.ring_refs.len(), 2);
    assert_eq!(w.be_mapped.as_ref().map(|r| r.ring_refs.clone()), Some(fe_ring.ring_refs.clone()));
    assert_eq!(w.s.get(&std::format!("{FE}/ring-page-order")).as_deref(), Some("1"));
    assert_eq!(w.s.get(&std::format!("{FE}/ring-ref")), None);
    let info = *w.fe.as_ref().unwrap().info().unwrap();
    assert_eq!(
        info,
        BlkInfo {
            sectors: 32768,
            info: 0,
            sector_size: 512,
            physical_sector_size: 4096,
            flush: true,
            barrier: true,
            discard: Some(DiscardInfo { granularity: 4096, alignment: 0, secure: false }),
            persistent: true,
            max_indirect_segments: 256,
        }
    );
    assert!(w.be_mapped.as_ref().unwrap().persistent);
    assert_eq!(w.s.get(BE_ERR), None);
    assert_eq!(w.s.get(FE_ERR), None);
}

/// `xl block-detach`: backend Closing → frontend stops and goes Closed →
/// backend unmaps, Closed, and (offline) removes its directory.
#[test]
fn detach_by_backend_closes_both_and_removes_backend() {
    let mut w = World::new();
    w.attach();
    w.be_q.push(BackEvent::Detach { force: false });
    w.pump();
    assert!(w.be.removed());
    assert_eq!(w.fe_state(), XENBUS_STATE_CLOSED);
    assert!(!w.s.exists(BE), "backend nodes removed");
    assert_eq!(w.s.get(&std::format!("{FE}/state")).as_deref(), Some("6"));
    assert!(w.be_mapped.is_none() && w.fe_ring.is_none(), "both rings released");
    // The frontend stopped before it reported Closed; the backend unmapped
    // only after the frontend's Closed.
    let fe_dc = w.fe_log.iter().position(|a| a == &FrontAction::Disconnect).unwrap();
    let fe_closed = w.fe_log.iter().position(|a| a == &FrontAction::Store(StoreOp::SwitchState(XENBUS_STATE_CLOSED))).unwrap();
    assert!(fe_dc < fe_closed);
    assert!(w.be_log.contains(&BackAction::Disconnect { frontend_dead: false }));
}

/// Guest-side detach: frontend Closing → backend Closing → frontend Closed
/// → backend Closed (still online: the device stays), then a reconnect
/// from the frontend after the backend went Closed reaches Connected again
/// with a fresh ring.
#[test]
fn detach_by_frontend_then_reconnect() {
    let mut w = World::new();
    w.attach();
    let first = w.fe_ring.clone().unwrap();
    w.fe_q.push(FrontEvent::Close);
    w.pump();
    assert_eq!(w.fe_state(), XENBUS_STATE_CLOSED);
    assert_eq!(w.be.state(), XENBUS_STATE_CLOSED);
    assert!(!w.be.removed() && w.s.exists(BE), "online device stays");
    assert!(w.be_mapped.is_none() && w.fe_ring.is_none());
    w.fe_q.push(FrontEvent::Reconnect);
    w.attach();
    assert_ne!(w.fe_ring.clone().unwrap(), first, "a fresh ring");
    assert_eq!(w.be_log.iter().filter(|a| matches!(a, BackAction::MapRing(_))).count(), 2);
}

/// Reconnect when the backend is already waiting (InitWait): after a
/// backend-side detach the toolstack attaches again; a new blkback probes
/// to InitWait before the closed frontend asks to reconnect.
#[test]
fn reconnect_to_a_backend_already_in_init_wait() {
    let mut w = World::new();
    w.attach();
    w.be_q.push(BackEvent::Detach { force: false });
    w.pump();
    assert!(w.be.removed());
    toolstack_attach(&mut w.s);
    w.be = Backend::new(Blkback::default(), FE).unwrap();
    w.be_q.push(BackEvent::Probe);
    w.be_q.push(BackEvent::MediaReady(disk()));
    w.pump();
    assert_eq!(w.be.state(), XENBUS_STATE_INIT_WAIT);
    w.fe_q.push(FrontEvent::Reconnect);
    w.attach();
}

/// The frontend domain dies mid-I/O: blkback hears `@releaseDomain`,
/// drops the ring without waiting for responses no one will read, goes
/// Closed and removes its nodes; the toolstack then removes the dead
/// domain's nodes, and that watch firing changes nothing.
#[test]
fn frontend_domain_dying_mid_io_tears_down_backend() {
    let mut w = World::new();
    w.attach();
    w.inflight = 3;
    w.fe = None; // the domain is gone: its kernel runs no more
    w.be_q.push(BackEvent::FrontendDied);
    w.pump();
    assert!(w.be.removed());
    assert!(w.be_log.contains(&BackAction::Disconnect { frontend_dead: true }));
    assert_eq!(w.inflight, 0);
    assert!(w.be_mapped.is_none());
    assert!(!w.s.exists(BE));
    w.s.rm("/local/domain/1").unwrap();
    let before = w.be_log.len();
    w.pump();
    assert_eq!(w.be_log.len(), before, "nothing more happens");
}

/// The frontend domain's nodes vanish before blkback hears of the death
/// (state reads as Unknown): Linux unregisters the device; so does this.
#[test]
fn frontend_nodes_vanishing_removes_backend() {
    let mut w = World::new();
    w.attach();
    w.fe = None;
    w.s.rm("/local/domain/1").unwrap();
    w.pump();
    assert!(w.be.removed());
    assert!(w.be_mapped.is_none());
    assert!(!w.s.exists(BE));
}

/// A frontend that refuses the backend's offer (here: the backend
/// publishes a bad sector size) closes both ends cleanly with the error in
/// the frontend's error node.
#[test]
fn bad_backend_device_keys_close_both_ends() {
    let mut w = World::new();
    w.be_q.clear();
    w.be_q.push(BackEvent::Probe);
    w.be_q.push(BackEvent::MediaReady(Disk { sector_size: 513, ..disk() }));
    w.pump();
    assert!(w.s.get(FE_ERR).unwrap().contains("sector-size 513"));
    assert_eq!(w.fe_state(), XENBUS_STATE_CLOSED);
    assert_eq!(w.be.state(), XENBUS_STATE_CLOSED);
    assert!(w.be_mapped.is_none() && w.fe_ring.is_none());
}
