//! Host tests of the frontend machine against a scripted backend in the
//! fake store: blkfront's keys, Linux's `blkback_changed` rules, and a
//! hostile backend's bad values.

extern crate std;

use super::*;
use crate::xenbus_fake::FakeStore;
use crate::xenbus_store::{DeviceNodes, Store, apply};
use std::vec::Vec as StdVec;

const FE: &str = "/local/domain/1/device/vbd/51712";
const BE: &str = "/local/domain/0/backend/vbd/1/51712";
const FE_ERR: &str = "/local/domain/1/error/device/vbd/51712/error";

type Act = FrontAction<BlkParams, BlkInfo>;

struct Rig {
    s: FakeStore,
    fe: Frontend<Blkfront>,
    log: StdVec<Act>,
}

impl Rig {
    fn new(cfg: Blkfront) -> Self {
        let mut s = FakeStore::new();
        s.write(&std::format!("{FE}/state"), b"1").unwrap();
        s.write(&std::format!("{BE}/state"), b"1").unwrap();
        let mut r = Rig { s, fe: Frontend::new(cfg, BE).unwrap(), log: StdVec::new() };
        r.ev(FrontEvent::Probe);
        r
    }

    fn ev(&mut self, e: FrontEvent<BlkfrontRing>) -> StdVec<Act> {
        let nodes = DeviceNodes::new("/local/domain/1", "device/vbd/51712", BE, "fe").unwrap();
        let acts = self.fe.handle(e, &mut self.s);
        assert!(acts.len() < crate::xenbus_store::ACTIONS_MAX);
        for a in &acts {
            if let FrontAction::Store(op) = a {
                apply(&mut self.s, &nodes, op).unwrap();
            }
        }
        self.log.extend(acts.iter().cloned());
        acts.into_iter().collect()
    }

    /// The backend writes `keys`, then its state; the watch fires.
    fn backend_writes(&mut self, keys: &[(&str, &[u8])], state: &[u8]) -> StdVec<Act> {
        for (k, v) in keys {
            self.s.write(&std::format!("{BE}/{k}"), v).unwrap();
        }
        self.s.write(&std::format!("{BE}/state"), state).unwrap();
        self.ev(FrontEvent::BackendChanged)
    }

    fn fe_get(&self, key: &str) -> Option<std::string::String> {
        self.s.get(&std::format!("{FE}/{key}"))
    }

    fn ring(refs: &[u32]) -> BlkfrontRing {
        BlkfrontRing { ring_refs: Vec::from_slice(refs).unwrap(), evtchn: 9 }
    }

    /// Up to Initialised with a one-page ring.
    fn initialised(&mut self) {
        self.backend_writes(&[("max-ring-page-order", b"0")], b"2");
        self.ev(FrontEvent::RingReady(Self::ring(&[8])));
        assert_eq!(self.fe.state(), XENBUS_STATE_INITIALISED);
    }
}

const DEV: &[(&str, &[u8])] = &[("sectors", b"2048"), ("info", b"4"), ("sector-size", b"512"), ("feature-flush-cache", b"1")];

const BF: Blkfront = Blkfront { max_ring_page_order: 2, persistent: true };

/// blkif.h: at backend InitWait the frontend sets up a ring of
/// min(own max, `max-ring-page-order`) and publishes `ring-page-order`,
/// `ring-ref%u`, `event-channel`, `protocol`, `feature-persistent`, all
/// before switching to Initialised.
#[test]
fn init_wait_publishes_multi_page_ring_then_initialised() {
    let mut r = Rig::new(BF);
    let acts = r.backend_writes(&[("max-ring-page-order", b"4")], b"2");
    assert_eq!(acts, [FrontAction::SetupRing(BlkParams { ring_page_order: 2 })]);
    let acts = r.ev(FrontEvent::RingReady(Rig::ring(&[8, 9, 10, 11])));
    assert_eq!(acts.last(), Some(&FrontAction::Store(StoreOp::SwitchState(XENBUS_STATE_INITIALISED))));
    for (k, v) in [
        ("ring-page-order", "2"),
        ("ring-ref0", "8"),
        ("ring-ref3", "11"),
        ("event-channel", "9"),
        ("protocol", "x86_64-abi"),
        ("feature-persistent", "1"),
        ("state", "3"),
    ] {
        assert_eq!(r.fe_get(k).as_deref(), Some(v), "{k}");
    }
    assert_eq!(r.fe_get("ring-ref"), None);
}

/// Linux talk_to_blkback: without `max-ring-page-order` (old backend) the
/// ring is one page, published as `ring-ref` with no `ring-page-order`.
#[test]
fn single_page_ring_uses_ring_ref() {
    let mut r = Rig::new(BF);
    let acts = r.backend_writes(&[], b"2");
    assert_eq!(acts, [FrontAction::SetupRing(BlkParams { ring_page_order: 0 })]);
    r.ev(FrontEvent::RingReady(Rig::ring(&[8])));
    assert_eq!(r.fe_get("ring-ref").as_deref(), Some("8"));
    assert_eq!(r.fe_get("ring-page-order"), None);
}

/// blkfront_connect: backend Connected → read `sectors`, `info`,
/// `sector-size` and features → Connected(info), then the state.
#[test]
fn backend_connected_gives_device_info() {
    let mut r = Rig::new(BF);
    r.initialised();
    let acts = r.backend_writes(DEV, b"4");
    let info = BlkInfo {
        sectors: 2048,
        info: 4,
        sector_size: 512,
        physical_sector_size: 512,
        flush: true,
        barrier: false,
        discard: None,
        persistent: false,
        max_indirect_segments: 0,
    };
    assert_eq!(acts, [FrontAction::Connected(info), FrontAction::Store(StoreOp::SwitchState(XENBUS_STATE_CONNECTED))]);
    assert_eq!(r.fe_get("state").as_deref(), Some("4"));
}

/// blkif.h "may skip states": a backend seen only at Connected (InitWait
/// missed) still gets a ring, and the frontend connects as soon as the
/// ring is ready.
#[test]
fn backend_seen_connected_first_sets_up_then_connects() {
    let mut r = Rig::new(BF);
    let acts = r.backend_writes(DEV, b"4");
    assert_eq!(acts, [FrontAction::SetupRing(BlkParams { ring_page_order: 0 })]);
    r.ev(FrontEvent::RingReady(Rig::ring(&[8])));
    assert_eq!(r.fe.state(), XENBUS_STATE_CONNECTED);
    assert!(r.log.iter().any(|a| matches!(a, FrontAction::Connected(_))));
}

/// blkback_changed Connected while Connected: the backend re-announces
/// (size changed) → Resized, no second Connected.
#[test]
fn connected_again_with_new_size_is_a_resize() {
    let mut r = Rig::new(BF);
    r.initialised();
    r.backend_writes(DEV, b"4");
    r.s.write(&std::format!("{BE}/sectors"), b"4096").unwrap();
    let acts = r.ev(FrontEvent::BackendChanged);
    assert!(matches!(acts.as_slice(), [FrontAction::Resized(i)] if i.sectors == 4096));
    assert_eq!(r.ev(FrontEvent::BackendChanged), []);
}

/// blkfront_closing: backend Closing → stop I/O, free the ring, Closed
/// (`xenbus_frontend_closed`); a later Closed changes nothing.
#[test]
fn backend_closing_stops_and_closes() {
    let mut r = Rig::new(BF);
    r.initialised();
    r.backend_writes(DEV, b"4");
    let acts = r.backend_writes(&[], b"5");
    assert_eq!(acts, [FrontAction::Disconnect, FrontAction::Store(StoreOp::SwitchState(XENBUS_STATE_CLOSED))]);
    assert_eq!(r.backend_writes(&[], b"6"), []);
    assert!(r.fe.info().is_none());
}

/// Guest-side detach: Closing first, Closed once the backend closes too.
#[test]
fn frontend_close_waits_for_backend() {
    let mut r = Rig::new(BF);
    r.initialised();
    r.backend_writes(DEV, b"4");
    let acts = r.ev(FrontEvent::Close);
    assert_eq!(acts, [FrontAction::Disconnect, FrontAction::Store(StoreOp::SwitchState(XENBUS_STATE_CLOSING))]);
    assert_eq!(r.backend_writes(&[], b"5"), [FrontAction::Store(StoreOp::SwitchState(XENBUS_STATE_CLOSED))]);
}

/// Reconnect after the backend went Closed: Initialising, wait for
/// InitWait (a stale Closed is no reason to close again), new ring.
#[test]
fn reconnect_after_backend_closed() {
    let mut r = Rig::new(BF);
    r.initialised();
    r.backend_writes(DEV, b"4");
    r.backend_writes(&[], b"6");
    assert_eq!(r.fe.state(), XENBUS_STATE_CLOSED);
    assert_eq!(r.ev(FrontEvent::Reconnect), [FrontAction::Store(StoreOp::SwitchState(XENBUS_STATE_INITIALISING))]);
    assert_eq!(r.ev(FrontEvent::BackendChanged), []);
    let acts = r.backend_writes(&[], b"2");
    assert_eq!(acts, [FrontAction::SetupRing(BlkParams { ring_page_order: 0 })]);
}

/// A ring that becomes ready after the handshake moved on is freed, not
/// published.
#[test]
fn stale_ring_is_freed() {
    let mut r = Rig::new(BF);
    r.backend_writes(&[], b"2");
    r.backend_writes(&[], b"5");
    assert_eq!(r.fe.state(), XENBUS_STATE_CLOSED);
    assert_eq!(r.ev(FrontEvent::RingReady(Rig::ring(&[8]))), [FrontAction::Disconnect]);
    assert_eq!(r.fe_get("ring-ref"), None);
}

/// Attack: a hostile backend's bad offer or device keys (non-numeric,
/// missing, sector size not a power of two ≥ 512, physical size not a
/// multiple, bad state) end in an error node and Closing, never Connected.
#[test]
fn hostile_backend_values_close_with_error() {
    let offers: &[&[(&str, &[u8])]] = &[&[("max-ring-page-order", b"x")], &[("max-ring-page-order", b"-1")], &[("max-ring-page-order", &[b'9'; 80])]];
    for keys in offers {
        let mut r = Rig::new(BF);
        r.backend_writes(keys, b"2");
        assert_eq!(r.fe.state(), XENBUS_STATE_CLOSING);
        assert!(r.s.get(FE_ERR).unwrap().starts_with("22 "));
        assert!(!r.log.iter().any(|a| matches!(a, FrontAction::SetupRing(_))));
    }
    let devs: &[&[(&str, &[u8])]] = &[
        &[("sectors", b""), ("info", b"0"), ("sector-size", b"512")],
        &[("info", b"0"), ("sector-size", b"512")],
        &[("sectors", b"10"), ("sector-size", b"512")],
        &[("sectors", b"10"), ("info", b"0")],
        &[("sectors", b"10"), ("info", b"0"), ("sector-size", b"513")],
        &[("sectors", b"10"), ("info", b"0"), ("sector-size", b"256")],
        &[("sectors", b"10"), ("info", b"0"), ("sector-size", b"0")],
        &[("sectors", b"10"), ("info", b"0"), ("sector-size", b"4096"), ("physical-sector-size", b"512")],
        &[("sectors", b"18446744073709551616"), ("info", b"0"), ("sector-size", b"512")],
        &[("sectors", b"10"), ("info", b"0"), ("sector-size", b"512"), ("feature-discard", b"1"), ("discard-granularity", b"big")],
        &[("sectors", b"10"), ("info", b"0"), ("sector-size", b"512"), ("feature-flush-cache", b"2")],
    ];
    for keys in devs {
        let mut r = Rig::new(BF);
        r.initialised();
        r.backend_writes(keys, b"4");
        assert_eq!(r.fe.state(), XENBUS_STATE_CLOSING, "{keys:?}");
        assert!(r.s.get(FE_ERR).unwrap().starts_with("22 "));
        assert!(!r.log.iter().any(|a| matches!(a, FrontAction::Connected(_))));
        assert_eq!(r.log.iter().filter(|a| **a == FrontAction::Disconnect).count(), 1, "ring freed");
    }
    for state in [&b"9"[..], b"x", b"", b"-4"] {
        let mut r = Rig::new(BF);
        r.backend_writes(&[], state);
        assert_eq!(r.fe.state(), XENBUS_STATE_CLOSING);
        assert!(r.s.get(FE_ERR).unwrap().contains("saw state"));
    }
}

/// A ring with the wrong number of grants for its order is the driver's
/// bug, refused all the same.
#[test]
fn ring_with_wrong_grant_count_is_refused() {
    let mut r = Rig::new(BF);
    r.backend_writes(&[("max-ring-page-order", b"1")], b"2");
    r.ev(FrontEvent::RingReady(Rig::ring(&[8])));
    assert_eq!(r.fe.state(), XENBUS_STATE_CLOSING);
    assert_eq!(r.fe_get("ring-ref0"), None);
}

/// Before Probe nothing is acted on; after a fatal Closing a backend
/// Connected does not bring the device up.
#[test]
fn no_action_before_probe_or_after_fatal() {
    let mut s = FakeStore::new();
    let mut fe = Frontend::new(BF, BE).unwrap();
    s.write(&std::format!("{BE}/state"), b"2").unwrap();
    assert!(fe.handle(FrontEvent::BackendChanged, &mut s).is_empty());
    let mut r = Rig::new(BF);
    r.backend_writes(&[("max-ring-page-order", b"x")], b"2");
    r.backend_writes(DEV, b"4");
    assert!(!r.log.iter().any(|a| matches!(a, FrontAction::SetupRing(_) | FrontAction::Connected(_))));
}
