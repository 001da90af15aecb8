//! Host tests of netfront's pure half: the vif handshake against a
//! scripted backend in the fake store (every XenbusState, hostile nodes),
//! tx request chains, rx reassembly and hostile rx/tx responses.

extern crate std;

use super::*;
use crate::blkfront::{SlotError, Slots};
use crate::xenbus_fake::FakeStore;
use crate::xenbus_frontend::{FrontAction, FrontEvent, Frontend};
use crate::xenbus_store::{
    DeviceNodes, Store, XENBUS_STATE_CLOSED, XENBUS_STATE_CLOSING, XENBUS_STATE_CONNECTED, XENBUS_STATE_INITIALISED, XENBUS_STATE_INITIALISING, apply,
};
use std::vec::Vec as StdVec;
use xen_public::io::netif::{NETIF_RSP_ERROR, NetifTxResponse};

const FE: &str = "/local/domain/3/device/vif/0";
const BE: &str = "/local/domain/0/backend/vif/3/0";
const FE_ERR: &str = "/local/domain/3/error/device/vif/0/error";
const RING: NetfrontRing = NetfrontRing { tx_ring_ref: 256, rx_ring_ref: 257, evtchn: 9 };

type Act = FrontAction<NetParams, NetInfo>;

struct Rig {
    s: FakeStore,
    fe: Frontend<Netfront>,
}

impl Rig {
    fn new(sg: bool) -> Self {
        let mut s = FakeStore::new();
        s.write(&std::format!("{FE}/state"), b"1").unwrap();
        s.write(&std::format!("{FE}/mac"), b"00:16:3e:0a:bC:01").unwrap();
        s.write(&std::format!("{BE}/state"), b"1").unwrap();
        let mut r = Rig { s, fe: Frontend::new(Netfront::new(FE, sg).unwrap(), BE).unwrap() };
        r.ev(FrontEvent::Probe);
        r
    }

    fn ev(&mut self, e: FrontEvent<NetfrontRing>) -> StdVec<Act> {
        let nodes = DeviceNodes::new("/local/domain/3", "device/vif/0", BE, "vif0").unwrap();
        let acts = self.fe.handle(e, &mut self.s);
        for a in &acts {
            if let FrontAction::Store(op) = a {
                apply(&mut self.s, &nodes, op).unwrap();
            }
        }
        acts.into_iter().collect()
    }

    fn backend(&mut self, keys: &[(&str, &[u8])], state: &[u8]) -> StdVec<Act> {
        for (key, v) in keys {
            self.s.write(&std::format!("{BE}/{key}"), v).unwrap();
        }
        self.s.write(&std::format!("{BE}/state"), state).unwrap();
        self.ev(FrontEvent::BackendChanged)
    }

    fn fe_get(&self, key: &str) -> Option<std::string::String> {
        self.s.get(&std::format!("{FE}/{key}"))
    }
}

const OFFER: &[(&str, &[u8])] = &[("feature-rx-copy", b"1"), ("feature-sg", b"1")];
const MAC: Mac = [0x00, 0x16, 0x3e, 0x0a, 0xbc, 0x01];

/// netif.h handshake: InitWait → rings (tx-ring-ref, rx-ring-ref, one
/// event-channel, request-rx-copy, feature-rx-notify, feature-sg,
/// feature-no-csum-offload, feature-gso-tcpv4=0) → Initialised;
/// Connected → Connected with the frontend's mac and the backend's ip;
/// Closing → Closed; Reconnect starts over.
#[test]
fn netif_handshake_goes_through_every_state_and_writes_linuxs_keys() {
    let mut r = Rig::new(true);
    let acts = r.backend(OFFER, b"2");
    assert_eq!(acts, [FrontAction::SetupRing(NetParams { sg: true })]);
    assert_eq!(r.fe.state(), XENBUS_STATE_INITIALISING);
    r.ev(FrontEvent::RingReady(RING));
    assert_eq!(r.fe.state(), XENBUS_STATE_INITIALISED);
    for (key, v) in [
        ("tx-ring-ref", "256"),
        ("rx-ring-ref", "257"),
        ("event-channel", "9"),
        ("request-rx-copy", "1"),
        ("feature-rx-notify", "1"),
        ("feature-sg", "1"),
        ("feature-no-csum-offload", "1"),
        ("feature-gso-tcpv4", "0"),
        ("state", "3"),
    ] {
        assert_eq!(r.fe_get(key).as_deref(), Some(v), "{key}");
    }
    let acts = r.backend(&[("ip", b"10.0.2.11 10.0.2.12")], b"4");
    assert_eq!(acts[0], FrontAction::Connected(NetInfo { mac: MAC, ip: Some([10, 0, 2, 11]), sg: true }));
    assert_eq!(r.fe.state(), XENBUS_STATE_CONNECTED);
    let acts = r.backend(&[], b"5");
    assert_eq!(acts[0], FrontAction::Disconnect);
    assert_eq!(r.fe.state(), XENBUS_STATE_CLOSED);
    assert_eq!(r.fe_get("state").as_deref(), Some("6"));
    r.backend(&[], b"6");
    r.ev(FrontEvent::Reconnect);
    assert_eq!(r.fe.state(), XENBUS_STATE_INITIALISING);
    assert_eq!(r.backend(&[], b"2"), [FrontAction::SetupRing(NetParams { sg: true })]);
}

/// `xennet_connect`: no `ip` means DHCP (None); no `feature-sg` from the
/// backend means no `feature-sg` key and single-slot frames only.
#[test]
fn no_ip_means_dhcp_and_sg_only_when_the_backend_offers_it() {
    let mut r = Rig::new(true);
    r.backend(&[("feature-rx-copy", b"1")], b"2");
    r.ev(FrontEvent::RingReady(RING));
    assert_eq!(r.fe_get("feature-sg"), None);
    let acts = r.backend(&[], b"4");
    assert_eq!(acts[0], FrontAction::Connected(NetInfo { mac: MAC, ip: None, sg: false }));
    let mut r = Rig::new(false);
    assert_eq!(r.backend(OFFER, b"2"), [FrontAction::SetupRing(NetParams { sg: false })]);
}

/// A backend already Connected when the frontend probes (InitWait
/// skipped): the rings are set up and the frontend connects at once.
#[test]
fn backend_already_connected_connects_after_the_rings() {
    let mut r = Rig::new(true);
    assert_eq!(r.backend(OFFER, b"4"), [FrontAction::SetupRing(NetParams { sg: true })]);
    let acts = r.ev(FrontEvent::RingReady(RING));
    assert!(acts.contains(&FrontAction::Connected(NetInfo { mac: MAC, ip: None, sg: true })));
    assert_eq!(r.fe.state(), XENBUS_STATE_CONNECTED);
}

/// `xennet_connect` rule: a backend without `feature-rx-copy` is refused
/// with ENODEV (error node, Closing), no ring set up.
#[test]
fn backend_without_rx_copy_is_refused_with_enodev() {
    let mut r = Rig::new(true);
    let acts = r.backend(&[("feature-rx-copy", b"0")], b"2");
    assert!(!acts.iter().any(|a| matches!(a, FrontAction::SetupRing(_))));
    assert_eq!(r.fe.state(), XENBUS_STATE_CLOSING);
    assert!(r.s.get(FE_ERR).unwrap().starts_with("19 "), "{:?}", r.s.get(FE_ERR));
}

/// Hostile backend nodes: a non-boolean feature, a garbage or overlong
/// `ip`, an overlong state are fatal (error node, Closing), never a panic
/// or a guess; a garbage `mac` is refused too.
#[test]
fn hostile_backend_nodes_are_fatal_not_guessed() {
    let bad: [(&str, &[u8]); 6] =
        [("feature-rx-copy", b"yes"), ("feature-sg", b"2"), ("ip", b"10.0.2.256"), ("ip", b"10.0.2"), ("ip", b"1.2.3.4.5"), ("ip", &[b'1'; 300])];
    for (key, v) in bad {
        let mut r = Rig::new(true);
        let mut keys = OFFER.to_vec();
        keys.push((key, v));
        let mut acts = r.backend(&keys, b"2");
        if r.fe.state() == XENBUS_STATE_INITIALISING {
            acts.extend(r.ev(FrontEvent::RingReady(RING)));
            acts.extend(r.backend(&[], b"4"));
        }
        assert!(!acts.iter().any(|a| matches!(a, FrontAction::Connected(_))), "{key}={:?}", v);
        assert_eq!(r.fe.state(), XENBUS_STATE_CLOSING, "{key}");
        assert!(r.s.get(FE_ERR).is_some());
    }
    let mut r = Rig::new(true);
    r.s.write(&std::format!("{FE}/mac"), b"00:16:3e:0a:bc").unwrap();
    r.backend(OFFER, b"2");
    assert_eq!(r.fe.state(), XENBUS_STATE_CLOSING);
    let mut r = Rig::new(true);
    r.backend(OFFER, b"7");
    assert_eq!(r.fe.state(), XENBUS_STATE_INITIALISING, "Reconfiguring: nothing to do");
    r.backend(&[], b"99");
    assert_eq!(r.fe.state(), XENBUS_STATE_CLOSING, "not a state");
}

#[test]
fn mac_and_ipv4_parsing_is_strict() {
    assert_eq!(parse_mac(b"00:16:3E:ff:00:7a"), Some([0, 0x16, 0x3e, 0xff, 0, 0x7a]));
    for bad in [&b""[..], b"00:16:3e:ff:00", b"00:16:3e:ff:00:7a:01", b"0:16:3e:ff:00:7a", b"00:16:3e:ff:00:+a", b"00-16-3e-ff-00-7a"] {
        assert_eq!(parse_mac(bad), None);
    }
    assert_eq!(parse_ipv4("10.0.2.11"), Some([10, 0, 2, 11]));
    for bad in ["", "10.0.2", "10.0.2.11.1", "10.0.2.256", "10.0.2.+1", "10..2.1", "1000.0.2.1"] {
        assert_eq!(parse_ipv4(bad), None, "{bad}");
    }
}

/// netif.h tx rule: a frame goes page by page from offset 0, never past
/// its page; the first request's size is the frame's, more_data on all
/// but the last; several slots only with feature-sg.
#[test]
fn tx_chain_never_crosses_a_page_and_first_size_is_the_frame() {
    let slots: StdVec<(u16, u32)> = (0..20).map(|i| (i, 300 + u32::from(i))).collect();
    let one = tx_chain(60, &slots, false).unwrap();
    assert_eq!(one.as_slice(), [NetifTxRequest { gref: 300, offset: 0, flags: 0, id: 0, size: 60 }]);
    let c = tx_chain(4096 * 2 + 10, &slots, true).unwrap();
    assert_eq!(c.len(), 3);
    assert_eq!((c[0].size, c[0].flags), (8202, NETTXF_MORE_DATA));
    assert_eq!((c[1].size, c[1].flags, c[1].id, c[1].gref), (4096, NETTXF_MORE_DATA, 1, 301));
    assert_eq!((c[2].size, c[2].flags), (10, 0));
    let full = tx_chain(FRAME_MAX, &slots, true).unwrap();
    assert_eq!(full.len(), 16);
    assert!(full.iter().all(|r| usize::from(r.offset) + if r.id == 0 { PAGE } else { usize::from(r.size) } <= PAGE));
    assert_eq!(full.iter().skip(1).map(|r| usize::from(r.size)).sum::<usize>() + PAGE, FRAME_MAX);
    assert_eq!(tx_chain(4097, &slots, false), Err(TxError::NeedsSg));
    assert_eq!(tx_chain(0, &slots, true), Err(TxError::BadLength(0)));
    assert_eq!(tx_chain(FRAME_MAX + 1, &slots, true), Err(TxError::BadLength(FRAME_MAX + 1)));
    assert_eq!(tx_chain(3 * 4096, &slots[..2], true), Err(TxError::NoSlots));
}

/// `xennet_tx_buf_gc` rule: a tx response frees its request's id once; an
/// id never sent, repeated, or past the table is the backend's fault.
#[test]
fn tx_response_ids_are_matched_once() {
    let mut ids: Slots<32> = Slots::default();
    let a = ids.take().unwrap();
    let rsp = NetifTxResponse { id: a as u16, status: 0 };
    assert_eq!(ids.complete(u64::from(rsp.id)), Ok(a));
    assert_eq!(ids.complete(u64::from(rsp.id)), Err(SlotError(u64::from(rsp.id))));
    assert_eq!(ids.complete(32), Err(SlotError(32)));
    assert_eq!(ids.complete(0xffff), Err(SlotError(0xffff)));
}

fn rsp(id: u16, offset: u16, flags: u16, status: i16) -> NetifRxResponse {
    NetifRxResponse { id, offset, flags, status }
}

/// Feed responses, copying from fake pages (page `id` holds byte `id` at
/// every position) into a frame; the ended packets.
fn assemble(a: &mut RxAssembler, rsps: &[NetifRxResponse], frame: &mut [u8]) -> StdVec<Result<usize, RxDrop>> {
    let mut ends = StdVec::new();
    for r in rsps {
        let step = a.push(r, frame.len());
        if let Some(c) = step.copy {
            assert!(c.offset + c.len <= PAGE && c.at + c.len <= frame.len());
            frame[c.at..c.at + c.len].fill(r.id as u8);
        }
        if let Some(e) = step.end {
            ends.push(e);
        }
    }
    ends
}

/// `xennet_get_responses`: a more_data chain is one frame, its pieces in
/// order at increasing offsets of the frame.
#[test]
fn rx_more_data_chain_is_reassembled_in_order() {
    let mut a = RxAssembler::default();
    let mut frame = std::vec![0u8; FRAME_MAX];
    let ends = assemble(&mut a, &[rsp(1, 0, NETRXF_MORE_DATA, 4096), rsp(2, 100, NETRXF_MORE_DATA, 3996), rsp(3, 0, 0, 10)], &mut frame);
    assert_eq!(ends, [Ok(8102)]);
    assert_eq!((frame[0], frame[4095], frame[4096], frame[8091], frame[8092], frame[8101]), (1, 1, 2, 2, 3, 3));
    assert!(!a.in_packet());
    assert_eq!(assemble(&mut a, &[rsp(4, 0, 0, 60)], &mut frame), [Ok(60)]);
}

/// Hostile rx responses drop that packet (the rest of its chain is
/// consumed) and the next packet arrives intact: a negative status, a
/// fragment past its page, more than 18 slots, more than 65535 bytes or
/// the caller's buffer, an empty packet.
#[test]
fn hostile_rx_responses_drop_the_packet_not_the_next_one() {
    let mut frame = std::vec![0u8; FRAME_MAX];
    let mut a = RxAssembler::default();
    let m = NETRXF_MORE_DATA;
    let cases: [(StdVec<NetifRxResponse>, RxDrop); 6] = [
        (std::vec![rsp(1, 0, m, 100), rsp(2, 0, 0, NETIF_RSP_ERROR)], RxDrop::Status(NETIF_RSP_ERROR)),
        (std::vec![rsp(1, 4000, 0, 200)], RxDrop::PastPage),
        (std::vec![rsp(1, 0xffff, 0, i16::MAX)], RxDrop::PastPage),
        ((0..19).map(|i| rsp(i, 0, if i < 18 { m } else { 0 }, 10)).collect(), RxDrop::TooManySlots),
        ((0..17).map(|i| rsp(i, 0, if i < 16 { m } else { 0 }, 4096)).collect(), RxDrop::TooLong),
        (std::vec![rsp(1, 0, m, 0), rsp(2, 0, 0, 0)], RxDrop::Empty),
    ];
    for (chain, why) in cases {
        assert_eq!(assemble(&mut a, &chain, &mut frame), [Err(why)]);
        assert_eq!(assemble(&mut a, &[rsp(7, 0, 0, 42)], &mut frame), [Ok(42)], "after {why:?}");
    }
    let mut small = [0u8; 1514];
    assert_eq!(assemble(&mut a, &[rsp(1, 0, m, 1500), rsp(2, 0, 0, 100)], &mut small), [Err(RxDrop::TooLong)]);
}

/// A backend that never ends its chain costs nothing: state stays O(1)
/// and nothing is copied past the frame.
#[test]
fn endless_more_data_chain_stays_bounded() {
    let mut a = RxAssembler::default();
    let mut frame = [0u8; 2048];
    for i in 0..100_000u32 {
        let s = a.push(&rsp(i as u16, 0, NETRXF_MORE_DATA, 1000), frame.len());
        assert!(s.end.is_none());
        if let Some(c) = s.copy {
            assert!(c.at + c.len <= frame.len());
            frame[c.at..c.at + c.len].fill(1);
        }
    }
    assert_eq!(a.push(&rsp(0, 0, 0, 1), frame.len()).end, Some(Err(RxDrop::TooLong)));
}

/// ring.h rule on the netif rings: responses past the requests made are a
/// peer fault (the driver disconnects), never a read of unwritten slots.
#[test]
fn rx_ring_responses_past_requests_are_a_peer_fault() {
    use xen_public::io::netif::NetifRxRequest;
    use xen_public::io::ring::FrontRing;
    use xen_public::io::ring::fuzz::SharedPages;
    let pages = SharedPages::new(1);
    let mut ring: FrontRing<NetifRxRequest, NetifRxResponse, _> = FrontRing::init(&pages).unwrap();
    assert_eq!(ring.size(), 256);
    ring.produce_request(&NetifRxRequest { id: 0, pad: 0, gref: 300 }).unwrap();
    ring.push_requests();
    pages.poke(8, 2);
    let e = ring.consume_response().unwrap_err();
    assert!(e.is_peer_fault());
}

/// FNV-1a 32 reference values (Fowler/Noll/Vo's test vectors) and the
/// pattern's independence from power-of-two periods.
#[test]
fn fnv1a_matches_reference_vectors_and_pattern_is_not_periodic() {
    assert_eq!(fnv1a(FNV_OFFSET, b""), 0x811c_9dc5);
    assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xe40c_292c);
    assert_eq!(fnv1a(FNV_OFFSET, b"foobar"), 0xbf9c_f968);
    assert_eq!(fnv1a(fnv1a(FNV_OFFSET, b"foo"), b"bar"), 0xbf9c_f968, "incremental");
    let mut a = [0u8; 4096];
    let mut b = [0u8; 4096];
    fill_pattern(0, &mut a);
    for shift in [256u64, 4096, 65536, 1 << 20] {
        fill_pattern(shift, &mut b);
        assert_ne!(a, b, "period {shift}");
    }
}

#[test]
fn the_transfer_checksum_changes_when_a_segment_is_lost_or_repeated() {
    let mut data = std::vec![0u8; 256 * 1024];
    fill_pattern(0, &mut data);
    let whole = fnv1a(FNV_OFFSET, &data);
    for at in [0usize, 1460, 65_536, 200_000] {
        let mut lost = data.clone();
        lost.drain(at..at + 1460);
        lost.extend_from_slice(&data[..1460]);
        assert_ne!(fnv1a(FNV_OFFSET, &lost), whole, "a segment lost at {at}");
        let mut repeated = data[..at + 1460].to_vec();
        repeated.extend_from_slice(&data[at..data.len() - 1460]);
        assert_ne!(fnv1a(FNV_OFFSET, &repeated), whole, "a segment repeated at {at}");
    }
}

#[test]
fn pattern_stream_in_any_pieces_hashes_as_the_whole_pattern() {
    let mut whole = [0u8; 10_000];
    fill_pattern(0, &mut whole);
    let mut s = PatternStream::new(10_000);
    let mut got = StdVec::new();
    for piece in [1usize, 7, 4096, 0, 5000, 9999] {
        let mut buf = std::vec![0u8; piece];
        let n = s.fill(&mut buf);
        got.extend_from_slice(&buf[..n]);
    }
    assert!(s.done());
    assert_eq!(got, whole, "the pieces are the pattern, in order, and stop at the total");
    assert_eq!(s.fnv1a, fnv1a(FNV_OFFSET, &whole));
    assert_eq!(s.fill(&mut [0u8; 8]), 0, "nothing past the end");
}

#[test]
fn mib_per_s_is_bytes_over_time_in_hundredths() {
    assert_eq!(mib_per_s(32 << 20, 4_000_000), (8, 0));
    assert_eq!(mib_per_s(1 << 20, 3_000_000), (0, 33));
    assert_eq!(mib_per_s(5, 0), (4, 76), "no time is taken as 1 us (5 B/us), never a division by zero");
}
