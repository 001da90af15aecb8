//! Host tests of the vif handshake: [`Netback`] driven through the generic
//! [`Backend`] machine over the fake store, from probe to Connected and
//! back to Closed, and a hostile frontend writing every kind of bad key.

extern crate std;

use super::handshake::*;
use crate::xenbus_backend::{BackAction, BackEvent, Backend};
use frontend_drivers::xenbus_fake::FakeStore;
use frontend_drivers::xenbus_store::{
    ACTIONS_MAX, DeviceNodes, Store, StoreOp, XENBUS_STATE_CLOSED, XENBUS_STATE_CLOSING, XENBUS_STATE_CONNECTED, XENBUS_STATE_INIT_WAIT, apply,
};
use std::string::String;
use std::vec::Vec;

const FE: &str = "/local/domain/1/device/vif/0";
const BE: &str = "/local/domain/0/backend/vif/1/0";
const BE_ERR: &str = "/local/domain/0/error/backend/vif/1/0/error";

fn be_nodes() -> DeviceNodes {
    DeviceNodes::new("/local/domain/0", "backend/vif/1/0", FE, "be").unwrap()
}

/// libxl's part of attaching a vif (both directories, backend online).
fn toolstack_attach(s: &mut FakeStore) {
    for (p, v) in [
        ("/local/domain/1/device/vif/0/state", "1"),
        ("/local/domain/1/device/vif/0/backend", BE),
        ("/local/domain/1/device/vif/0/backend-id", "0"),
        ("/local/domain/1/device/vif/0/handle", "0"),
        ("/local/domain/1/device/vif/0/mac", "00:16:3e:00:00:01"),
        ("/local/domain/0/backend/vif/1/0/state", "1"),
        ("/local/domain/0/backend/vif/1/0/frontend", FE),
        ("/local/domain/0/backend/vif/1/0/frontend-id", "1"),
        ("/local/domain/0/backend/vif/1/0/online", "1"),
        ("/local/domain/0/backend/vif/1/0/handle", "0"),
        ("/local/domain/0/backend/vif/1/0/mac", "00:16:3e:00:00:01"),
    ] {
        s.write(p, v.as_bytes()).unwrap();
    }
}

type Act = BackAction<VifRing>;

struct Solo {
    s: FakeStore,
    be: Backend<Netback>,
    log: Vec<Act>,
}

impl Solo {
    fn new() -> Self {
        let mut s = FakeStore::new();
        toolstack_attach(&mut s);
        let mut solo = Solo { s, be: Backend::new(Netback, FE).unwrap(), log: Vec::new() };
        solo.ev(BackEvent::Probe);
        solo.ev(BackEvent::MediaReady(VifMedia));
        solo
    }

    fn ev(&mut self, e: BackEvent<VifMedia>) -> Vec<Act> {
        let acts = self.be.handle(e, &mut self.s);
        assert!(acts.len() < ACTIONS_MAX);
        for a in &acts {
            if let BackAction::Store(op) = a {
                apply(&mut self.s, &be_nodes(), op).unwrap();
            }
        }
        self.log.extend(acts.iter().cloned());
        acts.into_iter().collect()
    }

    fn frontend_writes(&mut self, keys: Keys, state: &[u8]) -> Vec<Act> {
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

type Keys<'a> = &'a [(&'a str, &'a [u8])];

/// An owned list of frontend keys.
type KeyList = Vec<(&'static str, &'static [u8])>;

/// What Linux's netfront writes (`talk_to_netback`, one queue).
const NETFRONT: Keys = &[
    ("tx-ring-ref", b"768"),
    ("rx-ring-ref", b"769"),
    ("event-channel", b"9"),
    ("request-rx-copy", b"1"),
    ("feature-rx-notify", b"1"),
    ("feature-sg", b"1"),
    ("feature-gso-tcpv4", b"1"),
    ("feature-gso-tcpv6", b"1"),
    ("feature-ipv6-csum-offload", b"1"),
];

fn ring(sg: bool, csum_offload: bool) -> VifRing {
    VifRing { tx_ring_ref: 768, rx_ring_ref: 769, evtchn: 9, sg, csum_offload, rx_notify: true }
}

/// Linux `netback_probe`: the feature keys, each one this backend lacks
/// written 0, no `multi-queue-max-queues` (one queue), then InitWait.
#[test]
fn probe_offers_netback_features_then_init_wait() {
    let solo = Solo::new();
    for (k, v) in [
        ("feature-sg", "1"),
        ("feature-gso-tcpv4", "0"),
        ("feature-gso-tcpv6", "0"),
        ("feature-ipv6-csum-offload", "0"),
        ("feature-rx-copy", "1"),
        ("feature-rx-flip", "0"),
        ("feature-multicast-control", "0"),
        ("feature-split-event-channels", "0"),
        ("feature-ctrl-ring", "0"),
        ("state", "2"),
    ] {
        assert_eq!(solo.be_get(k).as_deref(), Some(v), "{k}");
    }
    assert_eq!(solo.be_get("multi-queue-max-queues"), None, "no multi-queue offer: one queue");
    assert_eq!(solo.be_get("feature-dynamic-multicast-control"), None, "absent reads as 0");
    for a in &solo.log {
        if let BackAction::Store(StoreOp::Write(k, v)) = a {
            assert!(!k.is_empty() && !v.is_empty(), "no key or value was cut at the store layer's capacity: {a:?}");
        }
    }
    assert_eq!(solo.s.get(BE), None, "nothing written at the directory itself");
    let init_wait = solo.log.iter().position(|a| a == &BackAction::Store(StoreOp::SwitchState(XENBUS_STATE_INIT_WAIT))).unwrap();
    let last_key = solo.log.iter().rposition(|a| matches!(a, BackAction::Store(StoreOp::Write(..)))).unwrap();
    assert!(last_key < init_wait, "the offer is in place before InitWait");
}

/// netif.h handshake: frontend Connected with its keys → the rings and
/// event channel are mapped, then the backend goes Connected (no keys of
/// its own); frontend Closing/Closed → Closing, unmap, Closed.
#[test]
fn full_vif_handshake_connects_then_closes() {
    let mut solo = Solo::new();
    let acts = solo.frontend_writes(NETFRONT, b"4");
    assert_eq!(acts, [BackAction::MapRing(ring(true, true))]);
    assert_eq!(solo.be_get("state").as_deref(), Some("2"), "not Connected before the rings are mapped");
    let acts = solo.ev(BackEvent::RingMapped);
    assert_eq!(acts, [BackAction::Store(StoreOp::SwitchState(XENBUS_STATE_CONNECTED))]);
    assert_eq!(solo.be.ring(), Some(&ring(true, true)));
    solo.frontend_writes(&[], b"5");
    assert_eq!(solo.be.state(), XENBUS_STATE_CLOSING);
    let acts = solo.frontend_writes(&[], b"6");
    assert!(acts.contains(&BackAction::Disconnect { frontend_dead: false }));
    assert_eq!(solo.be.state(), XENBUS_STATE_CLOSED);
    assert!(solo.be.ring().is_none());
    assert_eq!(solo.maps(), 1);
}

/// read_xenbus_vif_flags: `feature-sg` missing is no sg;
/// `feature-no-csum-offload` = 1 is no checksum offload; Initialised works
/// as well as Connected.
#[test]
fn vif_flags_are_read_with_linux_defaults() {
    let mut solo = Solo::new();
    let keys: Keys = &[
        ("tx-ring-ref", b"768"),
        ("rx-ring-ref", b"769"),
        ("event-channel", b"9"),
        ("request-rx-copy", b"1"),
        ("feature-rx-notify", b"1"),
        ("feature-no-csum-offload", b"1"),
    ];
    assert_eq!(solo.frontend_writes(keys, b"3"), [BackAction::MapRing(ring(false, false))]);
    let mut solo = Solo::new();
    let mut with_one_queue = NETFRONT.to_vec();
    with_one_queue.push(("multi-queue-num-queues", b"1"));
    with_one_queue.push(("feature-no-csum-offload", b"0"));
    assert_eq!(solo.frontend_writes(&with_one_queue, b"4"), [BackAction::MapRing(ring(true, true))]);
}

fn assert_refused(solo: &Solo, what: &str, errno: &str) {
    assert_eq!(solo.be.state(), XENBUS_STATE_CLOSING, "{what}: Closing");
    let err = solo.s.get(BE_ERR).unwrap_or_else(|| panic!("{what}: error node"));
    assert!(err.starts_with(errno), "{what}: {err}");
    assert_eq!(solo.maps(), 0, "{what}: nothing mapped");
    assert!(solo.be.ring().is_none());
}

/// Attack: every kind of bad key (missing or malformed ring refs and
/// event channel, split event channels not offered, several queues, no
/// rx-copy, no rx-notify, non-boolean flags, overlong values) closes with
/// an `error` node and maps nothing.
#[test]
fn hostile_vif_keys_close_with_error() {
    static LONG: [u8; 300] = [b'9'; 300];
    let without = |k: &str| NETFRONT.iter().filter(|(key, _)| *key != k).copied().collect::<Vec<_>>();
    let with = |k: &'static str, v: &'static [u8]| {
        let mut keys = without(k);
        keys.push((k, v));
        keys
    };
    let cases: Vec<(&str, KeyList, &str)> = std::vec![
        ("no tx-ring-ref", without("tx-ring-ref"), "22 "),
        ("no rx-ring-ref", without("rx-ring-ref"), "22 "),
        ("no event-channel", without("event-channel"), "22 "),
        ("tx-ring-ref abc", with("tx-ring-ref", b"abc"), "22 "),
        ("rx-ring-ref -1", with("rx-ring-ref", b"-1"), "22 "),
        ("tx-ring-ref > u32", with("tx-ring-ref", b"4294967296"), "22 "),
        ("rx-ring-ref overlong", with("rx-ring-ref", &LONG), "22 "),
        ("event-channel hex", with("event-channel", b"0x9"), "22 "),
        ("split event channels", with("event-channel-tx", b"10"), "22 "),
        ("split rx channel", with("event-channel-rx", b"11"), "22 "),
        (
            "split only",
            {
                let mut k = without("event-channel");
                k.push(("event-channel-tx", b"10"));
                k.push(("event-channel-rx", b"11"));
                k
            },
            "22 "
        ),
        ("two queues", with("multi-queue-num-queues", b"2"), "22 "),
        ("zero queues", with("multi-queue-num-queues", b"0"), "22 "),
        ("queues garbage", with("multi-queue-num-queues", b"lots"), "22 "),
        ("no request-rx-copy", without("request-rx-copy"), "95 "),
        ("request-rx-copy 0", with("request-rx-copy", b"0"), "95 "),
        ("request-rx-copy 7", with("request-rx-copy", b"7"), "22 "),
        ("no feature-rx-notify", without("feature-rx-notify"), "22 "),
        ("feature-rx-notify 0", with("feature-rx-notify", b"0"), "22 "),
        ("feature-sg yes", with("feature-sg", b"yes"), "22 "),
        ("no-csum-offload 2", with("feature-no-csum-offload", b"2"), "22 "),
    ];
    for (what, keys, errno) in &cases {
        for state in [&b"3"[..], b"4"] {
            let mut solo = Solo::new();
            solo.frontend_writes(keys, state);
            assert_refused(&solo, what, errno);
        }
    }
}

/// After a refused handshake the frontend must close and start again;
/// then it connects.
#[test]
fn refused_vif_reconnects_only_after_closed() {
    let mut solo = Solo::new();
    let mut bad = NETFRONT.to_vec();
    bad.retain(|(k, _)| *k != "tx-ring-ref");
    bad.push(("tx-ring-ref", b"x"));
    solo.frontend_writes(&bad, b"4");
    assert_refused(&solo, "bad tx-ring-ref", "22 ");
    solo.frontend_writes(NETFRONT, b"4");
    assert_eq!(solo.maps(), 0);
    solo.frontend_writes(&[], b"6");
    solo.frontend_writes(&[], b"1");
    assert_eq!(solo.be.state(), XENBUS_STATE_INIT_WAIT);
    solo.frontend_writes(NETFRONT, b"4");
    assert_eq!(solo.maps(), 1);
}

/// `xl network-detach`: the backend goes Closing, and once the frontend
/// is Closed the rings are unmapped and the device removed.
#[test]
fn detach_closes_then_removes_the_vif() {
    let mut solo = Solo::new();
    solo.frontend_writes(NETFRONT, b"4");
    solo.ev(BackEvent::RingMapped);
    solo.ev(BackEvent::Detach { force: false });
    assert_eq!(solo.be.state(), XENBUS_STATE_CLOSING);
    let acts = solo.frontend_writes(&[], b"6");
    assert!(acts.contains(&BackAction::Disconnect { frontend_dead: false }));
    assert!(acts.contains(&BackAction::Removed));
    assert!(!solo.s.exists(BE));
}

/// Shared ring pages whose header holds `req_prod` and `rsp_prod`.
fn ring_at(req_prod: u32, rsp_prod: u32) -> &'static xen_public::io::ring::fuzz::SharedPages {
    use xen_public::io::ring::{RingPages, off};
    let p: &'static _ = std::boxed::Box::leak(std::boxed::Box::new(xen_public::io::ring::fuzz::SharedPages::new(1)));
    let mut w = p;
    w.store_idx(off::REQ_PROD, req_prod);
    w.store_idx(off::RSP_PROD, rsp_prod);
    p
}

/// Linux's `xenvif_map_frontend_data_rings`: both rings attach at their
/// shared `rsp_prod` (not 0), so a reconnecting frontend's outstanding
/// requests are the ones served next.
#[test]
fn data_rings_attach_at_the_shared_rsp_prod() {
    let (tx, rx) = attach_data_rings(ring_at(1005, 1000), ring_at(70, 64)).unwrap();
    assert_eq!((tx.req_cons(), tx.rsp_prod_pvt(), tx.unconsumed_requests().unwrap()), (1000, 1000, 5));
    assert_eq!((rx.req_cons(), rx.rsp_prod_pvt(), rx.unconsumed_requests().unwrap()), (64, 64, 6));
}

/// Attack: `req_prod - rsp_prod` more than a ring (256 slots) on either
/// ring refuses the attach (Linux: `-EIO`), including a `req_prod` behind
/// `rsp_prod` (the difference wraps); a full ring is still fine.
#[test]
fn data_rings_more_than_a_ring_of_requests_refuse_the_attach() {
    assert!(attach_data_rings(ring_at(256, 0), ring_at(0, 0)).is_ok(), "exactly a ring is allowed");
    assert!(attach_data_rings(ring_at(257, 0), ring_at(0, 0)).is_err());
    assert!(attach_data_rings(ring_at(0, 0), ring_at(300, 10)).is_err());
    assert!(attach_data_rings(ring_at(5, 10), ring_at(0, 0)).is_err(), "req_prod behind rsp_prod");
    assert!(attach_data_rings(ring_at(3, u32::MAX - 2), ring_at(0, 0)).is_ok(), "indices wrap");
}
