//! Host tests of [`super::tx::serve_tx`] and [`super::rx::serve_rx`]: a fake
//! netfront on in-memory ring pages, a fake grant table, and every attack
//! class a frontend can mount on the rings (bad grants, fragments past
//! their page, oversize packets, too many slots, a `req_prod` far ahead,
//! half-produced packets, floods), plus a deterministic random run.

extern crate std;

use super::credit::Credit;
use super::csum::complete_l4_checksum;
use super::handshake::VifRing;
use super::rx::*;
use super::stats::VifStats;
use super::tx::*;
use std::boxed::Box;
use std::collections::BTreeMap;
use std::vec;
use std::vec::Vec;
use xen_public::grant_table::GNTST_BAD_GNTREF;
use xen_public::io::netif::*;
use xen_public::io::ring::fuzz::{Rng, SharedPages};
use xen_public::io::ring::{FrontRing, RingPages};
use zerocopy::IntoBytes;

type Pages = &'static SharedPages;

fn pages() -> Pages {
    Box::leak(Box::new(SharedPages::new(1)))
}

/// The frontend's granted pages, by grant reference.
#[derive(Default)]
struct FakeGrants {
    pages: BTreeMap<u32, Vec<u8>>,
    copies: usize,
}

impl FakeGrants {
    fn page(&mut self, gref: u32, fill: impl Fn(usize) -> u8) {
        self.pages.insert(gref, (0..4096).map(fill).collect());
    }
}

impl TxCopier for FakeGrants {
    fn copy_in(&mut self, frags: &[TxFrag], buf: &mut [u8]) -> Result<(), i16> {
        for f in frags {
            assert!(f.len > 0 && usize::from(f.offset) + usize::from(f.len) <= 4096, "a copy stays in its page: {f:?}");
            let page = self.pages.get(&f.gref).ok_or(GNTST_BAD_GNTREF)?;
            let (o, l) = (usize::from(f.offset), usize::from(f.len));
            buf[f.buf_off..f.buf_off + l].copy_from_slice(&page[o..o + l]);
            self.copies += 1;
        }
        Ok(())
    }
}

impl RxCopier for FakeGrants {
    fn copy_out(&mut self, frags: &[RxFrag], data: &[u8]) -> Result<(), i16> {
        for f in frags {
            assert!(usize::from(f.offset) + usize::from(f.len) <= 4096);
            let page = self.pages.get_mut(&f.gref).ok_or(GNTST_BAD_GNTREF)?;
            let l = usize::from(f.len);
            page[..l].copy_from_slice(&data[f.data_off..f.data_off + l]);
            self.copies += 1;
        }
        Ok(())
    }
}

fn txreq(gref: u32, offset: u16, flags: u16, id: u16, size: u16) -> NetifTxRequest {
    NetifTxRequest { gref, offset, flags, id, size }
}

/// An extra-info descriptor in a tx slot.
fn extra(type_: u8, flags: u8) -> NetifTxRequest {
    let mut e = NetifExtraInfo { type_, flags, u: [0; 6] };
    if type_ == XEN_NETIF_EXTRA_TYPE_GSO {
        e.set_gso(NetifExtraInfoGso { size: 1448, type_: XEN_NETIF_GSO_TYPE_TCPV4, pad: 0, features: 0 });
    }
    let mut r = NetifTxRequest::default();
    r.as_mut_bytes()[..8].copy_from_slice(e.as_bytes());
    r
}

/// A fake netfront's tx side and the backend's ring over the same page.
struct Tx {
    pages: Pages,
    front: FrontRing<NetifTxRequest, NetifTxResponse, Pages>,
    back: TxBackRing<Pages>,
    grants: FakeGrants,
    credit: Credit,
    stats: VifStats,
    buf: Vec<u8>,
    got: Vec<(Vec<u8>, TxPacket)>,
    now: u64,
}

impl Tx {
    fn new() -> Tx {
        let pages = pages();
        let front = FrontRing::init(pages).unwrap();
        let back = TxBackRing::attach_at_rsp_prod(pages).unwrap();
        let mut grants = FakeGrants::default();
        for g in 1..=32 {
            grants.page(g, move |i| (g as usize * 7 + i) as u8);
        }
        Tx { pages, front, back, grants, credit: Credit::unlimited(), stats: VifStats::default(), buf: vec![0; TX_BUF], got: Vec::new(), now: 0 }
    }

    fn push(&mut self, reqs: &[NetifTxRequest]) {
        for r in reqs {
            self.front.produce_request(r).unwrap();
        }
        self.front.push_requests();
    }

    fn serve(&mut self, max_packets: u32) -> TxServed {
        let got = &mut self.got;
        serve_tx(&mut self.back, &mut self.grants, &mut self.credit, self.now, &mut self.stats, &mut self.buf, max_packets, &mut |b, p| {
            got.push((b.to_vec(), p))
        })
    }

    fn responses(&mut self) -> Vec<NetifTxResponse> {
        core::iter::from_fn(|| self.front.consume_response().ok().flatten()).collect()
    }

    /// The bytes the frontend granted at `gref[off..off + len]`.
    fn bytes(&self, gref: u32, off: usize, len: usize) -> &[u8] {
        &self.grants.pages[&gref][off..off + len]
    }
}

fn ids_statuses(r: &[NetifTxResponse]) -> Vec<(u16, i16)> {
    r.iter().map(|r| (r.id, r.status)).collect()
}

#[test]
fn tx_single_slot_packet_is_delivered_and_answered_okay_with_its_id() {
    let mut t = Tx::new();
    t.push(&[txreq(3, 100, NETTXF_CSUM_BLANK | NETTXF_DATA_VALIDATED, 41, 60)]);
    let s = t.serve(64);
    assert_eq!((s.packets, s.dropped, s.fatal, s.more), (1, 0, None, false));
    assert!(s.notify, "rsp_event 1 lies in (0, 1]");
    assert_eq!(ids_statuses(&t.responses()), [(41, NETIF_RSP_OKAY)]);
    assert_eq!(t.got[0].0, t.bytes(3, 100, 60));
    assert_eq!(t.got[0].1, TxPacket { len: 60, csum_blank: true, data_validated: true });
    assert_eq!((t.stats.tx_packets, t.stats.tx_bytes), (1, 60));
}

/// netif.h: the first request's size is the whole packet; `more_data`
/// chains fragments, whose bytes follow the first slot's in order.
#[test]
fn tx_first_size_is_the_whole_packet_and_fragments_follow_in_order() {
    let mut t = Tx::new();
    t.push(&[txreq(1, 0, NETTXF_MORE_DATA, 10, 5000), txreq(2, 96, NETTXF_MORE_DATA, 11, 3000), txreq(3, 0, 0, 12, 1000)]);
    let s = t.serve(64);
    assert_eq!(s.packets, 1);
    assert_eq!(ids_statuses(&t.responses()), [(10, 0), (11, 0), (12, 0)]);
    let mut want = t.bytes(1, 0, 1000).to_vec();
    want.extend_from_slice(t.bytes(2, 96, 3000));
    want.extend_from_slice(t.bytes(3, 0, 1000));
    assert_eq!(t.got[0].0, want);
}

/// Linux `make_tx_response`: an extra-info slot is answered
/// `NETIF_RSP_NULL`; a hash extra does not stop the packet.
#[test]
fn tx_extra_info_slot_is_answered_rsp_null() {
    let mut t = Tx::new();
    t.push(&[txreq(1, 0, NETTXF_EXTRA_INFO, 7, 60), extra(XEN_NETIF_EXTRA_TYPE_HASH, 0)]);
    let s = t.serve(64);
    assert_eq!(s.packets, 1);
    let r = t.responses();
    assert_eq!((r[0].id, r[0].status, r[1].status), (7, NETIF_RSP_OKAY, NETIF_RSP_NULL));
    assert_eq!(r[1].id, u16::from_le_bytes([XEN_NETIF_EXTRA_TYPE_HASH, 0]), "the extra's id bytes are left as they were");
}

/// GSO was not offered: a GSO extra drops the packet, every data slot
/// `NETIF_RSP_ERROR`, counted.
#[test]
fn tx_gso_extra_not_offered_drops_the_packet() {
    let mut t = Tx::new();
    t.push(&[txreq(1, 0, NETTXF_EXTRA_INFO | NETTXF_MORE_DATA, 7, 3000), extra(XEN_NETIF_EXTRA_TYPE_GSO, 0), txreq(2, 0, 0, 8, 1000)]);
    let s = t.serve(64);
    assert_eq!((s.packets, s.dropped, s.fatal), (0, 1, None));
    let r = t.responses();
    assert_eq!([r[0].status, r[1].status, r[2].status], [NETIF_RSP_ERROR, NETIF_RSP_NULL, NETIF_RSP_ERROR]);
    assert_eq!((r[0].id, r[2].id), (7, 8));
    assert_eq!(t.stats.tx_bad_extra, 1);
    assert!(t.got.is_empty());
}

/// Linux `xenvif_get_extras`: an extra of type 0 or past
/// `XEN_NETIF_EXTRA_TYPE_MAX` is fatal; nothing is consumed.
#[test]
fn tx_bad_extra_type_is_fatal() {
    for ty in [0, XEN_NETIF_EXTRA_TYPE_MAX, 0xff] {
        let mut t = Tx::new();
        t.push(&[txreq(1, 0, NETTXF_EXTRA_INFO, 7, 60), extra(ty, 0)]);
        let s = t.serve(64);
        assert_eq!(s.fatal, Some(TxFatal::BadExtra), "type {ty}");
        assert_eq!((t.back.req_cons(), t.responses().len(), t.stats.fatal), (0, 0, 1));
    }
}

/// Linux: a multicast extra makes the request a control operation,
/// answered OKAY with no packet.
#[test]
fn tx_multicast_extra_is_answered_okay_without_a_packet() {
    let mut t = Tx::new();
    t.push(&[txreq(0, 0, NETTXF_EXTRA_INFO, 3, 0), extra(XEN_NETIF_EXTRA_TYPE_MCAST_ADD, 0), txreq(1, 0, 0, 4, 60)]);
    let s = t.serve(64);
    assert_eq!((s.packets, s.dropped), (1, 0));
    let r = t.responses();
    assert_eq!([(r[0].id, r[0].status), (r[2].id, r[2].status)], [(3, NETIF_RSP_OKAY), (4, NETIF_RSP_OKAY)]);
    assert_eq!(r[1].status, NETIF_RSP_NULL);
}

/// Attack: a grant the frontend does not have: every slot of the packet
/// `NETIF_RSP_ERROR`, counted, nothing delivered; the next packet goes.
#[test]
fn tx_bad_grant_ref_answers_every_slot_error_and_counts() {
    let mut t = Tx::new();
    t.push(&[txreq(1, 0, NETTXF_MORE_DATA, 1, 200), txreq(999, 0, 0, 2, 100), txreq(2, 0, 0, 3, 60)]);
    let s = t.serve(64);
    assert_eq!((s.packets, s.dropped), (1, 1));
    assert_eq!(ids_statuses(&t.responses()), [(1, NETIF_RSP_ERROR), (2, NETIF_RSP_ERROR), (3, NETIF_RSP_OKAY)]);
    assert_eq!((t.stats.tx_bad_gref, t.stats.dropped_total()), (1, 1));
    assert_eq!(t.got.len(), 1);
}

/// Attack: `offset + size > 4096` on a fragment or on the first slot is
/// Linux's "Cross page boundary": fatal, nothing copied or consumed.
#[test]
fn tx_slot_past_its_page_is_fatal_cross_page() {
    for reqs in [
        vec![txreq(1, 0, NETTXF_MORE_DATA, 1, 300), txreq(2, 4000, 0, 2, 200)],
        vec![txreq(1, 4000, 0, 1, 200)],
        vec![txreq(1, 4095, NETTXF_MORE_DATA, 1, 1000), txreq(2, 0, 0, 2, 500)],
    ] {
        let mut t = Tx::new();
        t.push(&reqs);
        let s = t.serve(64);
        assert_eq!(s.fatal, Some(TxFatal::CrossPage), "{reqs:?}");
        assert_eq!((t.grants.copies, t.back.req_cons(), t.responses().len()), (0, 0, 0));
    }
}

/// Attack: a frame of 64 KiB or more wraps the first slot's 16-bit size,
/// so a later fragment is larger than what is left (Linux: "Invalid tx
/// request, slot size %u > remaining size %u"): dropped, every slot
/// answered `NETIF_RSP_ERROR`.
#[test]
fn tx_packet_over_64k_is_dropped_not_fatal() {
    let mut t = Tx::new();
    let total: u32 = 70_000;
    let mut reqs = vec![txreq(1, 0, NETTXF_MORE_DATA, 0, (total % 65536) as u16)];
    let n = total.div_ceil(4096) as u16;
    for i in 1..n {
        let flags = if i + 1 < n { NETTXF_MORE_DATA } else { 0 };
        reqs.push(txreq(2, 0, flags, i, 4096));
    }
    t.push(&reqs);
    let s = t.serve(64);
    assert_eq!((s.packets, s.dropped, s.fatal), (0, 1, None));
    let r = t.responses();
    assert_eq!(r.len(), reqs.len());
    assert!(r.iter().all(|r| r.status == NETIF_RSP_ERROR));
    assert_eq!(t.stats.tx_bad_size, 1);
}

/// A fragment larger than what the first size leaves is dropped the same
/// way, as is a first slot shorter than an Ethernet header.
#[test]
fn tx_oversized_fragment_and_runt_first_slot_are_dropped() {
    let mut t = Tx::new();
    t.push(&[txreq(1, 0, NETTXF_MORE_DATA, 1, 100), txreq(2, 0, 0, 2, 200)]);
    t.push(&[txreq(1, 0, 0, 3, 13)]);
    t.push(&[txreq(1, 0, NETTXF_MORE_DATA, 4, 100), txreq(2, 0, 0, 5, 90)]);
    let s = t.serve(64);
    assert_eq!((s.packets, s.dropped), (0, 3));
    assert_eq!(ids_statuses(&t.responses()).iter().filter(|r| r.1 == NETIF_RSP_ERROR).count(), 5);
    assert_eq!(t.stats.tx_bad_size, 3);
}

fn chain(frags: u16) -> Vec<NetifTxRequest> {
    let mut reqs = vec![txreq(1, 0, NETTXF_MORE_DATA, 0, 100 + frags * 10)];
    for i in 1..=frags {
        reqs.push(txreq(2, 0, if i < frags { NETTXF_MORE_DATA } else { 0 }, i, 10));
    }
    reqs
}

/// Linux `xenvif_count_requests`: up to `XEN_NETBK_LEGACY_SLOTS_MAX` (18)
/// fragment slots go; 19 or 20 drop the packet; 21 (more than
/// `fatal_skb_slots`) is fatal.
#[test]
fn tx_19_fragment_slots_drop_and_21_are_fatal() {
    for (frags, packets, dropped, fatal) in [(18, 1, 0, None), (19, 0, 1, None), (20, 0, 1, None), (21, 0, 0, Some(TxFatal::TooManySlots))] {
        let mut t = Tx::new();
        t.push(&chain(frags));
        let s = t.serve(64);
        assert_eq!((s.packets, s.dropped, s.fatal), (packets, dropped, fatal), "{frags} fragments");
        let r = t.responses();
        if fatal.is_some() {
            assert!(r.is_empty());
        } else {
            assert_eq!(r.len(), usize::from(frags) + 1, "every slot answered");
            assert_eq!(t.stats.tx_too_many_slots, u64::from(dropped));
        }
        if packets == 1 {
            assert_eq!(t.got[0].0.len(), 100 + usize::from(frags) * 10);
        }
    }
}

/// Attack: the frontend's `req_prod` far past `req_cons` (Linux:
/// "Impossible number of requests") is fatal, nothing consumed.
#[test]
fn tx_req_prod_far_past_cons_is_fatal() {
    let mut t = Tx::new();
    t.push(&[txreq(1, 0, 0, 1, 60)]);
    let mut p = t.pages;
    p.store_idx(0, 100_000);
    let s = t.serve(64);
    assert!(matches!(s.fatal, Some(TxFatal::Ring(e)) if e.is_peer_fault()));
    assert_eq!((t.back.req_cons(), t.grants.copies, t.stats.fatal), (0, 0, 1));
}

/// Attack: a packet whose last published slot says `more_data` asks for
/// slots past `req_prod`. Linux's `xenvif_count_requests` (`slots >=
/// work_to_do`: "Asked for %d slots but exceeds this limit") calls
/// `xenvif_fatal_tx_err`; the complete packet before it still goes, the
/// half one is neither consumed nor answered.
#[test]
fn tx_half_published_packet_is_fatal_as_linux_count_requests() {
    let mut t = Tx::new();
    t.push(&[txreq(1, 0, 0, 1, 60), txreq(1, 0, NETTXF_MORE_DATA, 2, 160), txreq(2, 0, NETTXF_MORE_DATA, 3, 50)]);
    let s = t.serve(64);
    assert_eq!((s.packets, s.fatal), (1, Some(TxFatal::MissingSlots)));
    assert_eq!(ids_statuses(&t.responses()), [(1, 0)], "only the complete packet is answered");
    assert_eq!((t.back.req_cons(), t.stats.fatal), (1, 1));
}

/// Attack: a lone first slot with `more_data` and nothing after it (the
/// boot test's `net=evil-hold`) is fatal at once, not polled forever.
#[test]
fn tx_lone_first_slot_with_more_data_is_fatal() {
    let mut t = Tx::new();
    t.push(&[txreq(1, 0, NETTXF_MORE_DATA, 7, 300)]);
    let s = t.serve(64);
    assert_eq!((s.packets, s.more, s.fatal), (0, false, Some(TxFatal::MissingSlots)));
    assert_eq!((t.back.req_cons(), t.grants.copies), (0, 0));
}

/// Attack: extra-info announced past `req_prod` (Linux's
/// `xenvif_get_extras`: "Missing extra info") is fatal, whether the ring
/// holds one slot or is all one unfinished chain of extras.
#[test]
fn tx_extra_info_past_req_prod_is_fatal() {
    for n in [0usize, 1, 255] {
        let mut t = Tx::new();
        let mut reqs = vec![txreq(1, 0, NETTXF_EXTRA_INFO, 0, 60)];
        reqs.extend((0..n).map(|_| extra(XEN_NETIF_EXTRA_TYPE_HASH, XEN_NETIF_EXTRA_FLAG_MORE)));
        t.push(&reqs);
        let s = t.serve(64);
        assert_eq!(s.fatal, Some(TxFatal::BadExtra), "{n} extras");
        assert_eq!(t.back.req_cons(), 0);
    }
}

/// A byte budget bounds what one call hands over: the packet that would
/// pass it stays whole on the ring (unanswered, `more`) for the next call;
/// dropped packets cost no budget.
#[test]
fn tx_byte_budget_leaves_the_packet_that_would_pass_it() {
    let mut t = Tx::new();
    let mut reqs: Vec<_> = (0..5).map(|i| txreq(1, 0, 0, i, 1000)).collect();
    reqs.insert(1, txreq(1, 0, 0, 99, 10)); // a runt: dropped
    t.push(&reqs);
    let got = &mut t.got;
    let budget = TxBudget { packets: 64, bytes: 2500 };
    let s = serve_tx_within(&mut t.back, &mut t.grants, &mut t.credit, 0, &mut t.stats, &mut t.buf, budget, &mut |b, p| got.push((b.to_vec(), p)));
    assert_eq!((s.packets, s.dropped, s.more, s.fatal), (2, 1, true, None));
    assert_eq!(t.back.req_cons(), 3, "the third 1000-byte packet is left");
    assert_eq!(t.responses().len(), 3);
    let got = &mut t.got;
    let s = serve_tx_within(&mut t.back, &mut t.grants, &mut t.credit, 0, &mut t.stats, &mut t.buf, budget, &mut |b, p| got.push((b.to_vec(), p)));
    assert_eq!((s.packets, s.more), (2, true), "the fifth would pass the budget again");
    let s = t.serve(64);
    assert_eq!((s.packets, s.more), (1, false));
    assert_eq!(t.got.len(), 5);
}

/// Linux `tx_credit_exceeded`: without credit the ring is left alone
/// (nothing consumed, not `more`: the caller waits for the refill, whose
/// time the credit names), and served again once the refill is due;
/// the rate holds over simulated time.
#[test]
fn tx_credit_limits_the_rate_and_resumes_after_the_refill() {
    let mut t = Tx::new();
    t.credit = Credit::new(3000, 10_000);
    t.now = 1_000_000;
    t.push(&(0..40).map(|i| txreq(1, 0, 0, i, 1500)).collect::<Vec<_>>());
    let s = t.serve(64);
    assert_eq!((s.packets, s.more), (2, false), "a throttled vif is not busy");
    assert_eq!((t.back.req_cons(), t.stats.tx_credit_waits), (2, 1));
    let due = t.credit.next_refill_us().unwrap();
    assert_eq!(due, t.now + 10_000);
    let mut sent = 2;
    while sent < 40 {
        t.now = t.credit.next_refill_us().unwrap();
        let s = t.serve(64);
        assert_eq!(s.packets, 2, "one interval's credit per refill");
        sent += s.packets;
    }
    assert_eq!(t.now, 1_000_000 + 19 * 10_000, "40 packets of 1500 at 3000 per 10 ms take 19 refills");
    assert_eq!(t.responses().len(), 40);
}

/// Attack: a rate-limited frontend publishes a packet over its credit
/// (arming the refill), then takes it back (`req_prod` back to
/// `req_cons`). The refill still fires at its time (Linux's one-shot
/// `credit_timeout`), so no deadline is left in the past for dom0 to wake
/// for again and again.
#[test]
fn tx_a_packet_taken_back_leaves_no_refill_deadline_in_the_past() {
    let mut t = Tx::new();
    t.credit = Credit::new(1000, 10_000);
    t.now = 5_000;
    t.push(&[txreq(1, 0, 0, 1, 900), txreq(1, 0, 0, 2, 900)]);
    // Take the second packet back before the backend looks.
    let mut p = t.pages;
    p.store_idx(0, 1);
    assert_eq!(t.serve(64).packets, 1);
    p.store_idx(0, 2);
    assert_eq!(t.serve(64).packets, 0, "over the credit");
    let due = t.credit.next_refill_us().expect("a refill is due");
    p.store_idx(0, 1);
    t.now = due + 4000;
    let s = t.serve(64);
    assert_eq!((s.packets, s.more, s.fatal), (0, false, None));
    assert_eq!(t.credit.next_refill_us(), None, "the refill fired: nothing to wake for");
}

/// A call handles at most `max_packets` and says more is left.
#[test]
fn tx_max_packets_bounds_a_call() {
    let mut t = Tx::new();
    t.push(&(0..10).map(|i| txreq(1, 0, 0, i, 60)).collect::<Vec<_>>());
    let s = t.serve(4);
    assert_eq!((s.packets, s.more), (4, true));
    let s = t.serve(100);
    assert_eq!((s.packets, s.more), (6, false));
}

/// `RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`: an event only when the
/// frontend's `rsp_event` lies among the responses just pushed.
#[test]
fn tx_notify_follows_the_frontends_rsp_event() {
    let mut t = Tx::new();
    t.push(&[txreq(1, 0, 0, 1, 60)]);
    assert!(t.serve(64).notify);
    t.responses();
    t.push(&[txreq(1, 0, 0, 2, 60)]);
    assert!(!t.serve(64).notify, "rsp_event still 1: no event asked for");
    t.responses();
    assert!(!t.front.final_check_for_responses().unwrap());
    t.push(&[txreq(1, 0, 0, 3, 60)]);
    assert!(t.serve(64).notify, "final check asked for the next");
}

/// Attack: a guest flooding tx toward a vif whose rx queue is full: the
/// queue's bound holds, the excess is counted, and every tx slot is still
/// answered.
#[test]
fn tx_flood_into_a_full_rx_queue_is_bounded_and_counted() {
    let mut t = Tx::new();
    let mut q = RxQueue::new(8, 8 * 1514);
    let mut rx_stats = VifStats::default();
    let mut answered = 0;
    for round in 0..20u16 {
        t.push(&(0..100).map(|i| txreq(1 + u32::from(i % 4), 0, 0, round * 100 + i, 1514)).collect::<Vec<_>>());
        let s = serve_tx(&mut t.back, &mut t.grants, &mut t.credit, 0, &mut t.stats, &mut t.buf, 256, &mut |b, p| {
            q.push(b, RxFlags { csum_blank: p.csum_blank, data_validated: p.data_validated }, &mut rx_stats);
        });
        assert_eq!(s.packets, 100);
        answered += t.responses().len();
        assert!(q.len() <= 8 && q.bytes() <= 8 * 1514);
    }
    assert_eq!(answered, 2000);
    assert_eq!(rx_stats.rx_queue_full, 2000 - 8);
    q.clear();
    assert!(q.is_empty() && q.bytes() == 0);
}

/// Deterministic random frontend: garbage requests (random flags, sizes,
/// offsets, grants), occasional impossible `req_prod`s. The backend never
/// panics, answers every consumed slot exactly once in order (the data
/// slots with their ids), copies only inside pages, and does bounded work
/// per call.
#[test]
fn tx_random_garbage_is_answered_once_with_bounded_work() {
    for seed in 1..=40u64 {
        let mut rng = Rng::new(seed);
        let mut t = Tx::new();
        let mut sent: BTreeMap<u32, NetifTxRequest> = BTreeMap::new();
        let mut checked = 0u32;
        'run: for _ in 0..60 {
            let n = rng.below(40) as u32;
            for _ in 0..n.min(t.front.free_requests()) {
                let mut r = NetifTxRequest::default();
                r.as_mut_bytes()
                    .copy_from_slice(&rng.next_u64().to_le_bytes().iter().chain(&rng.next_u64().to_le_bytes()[..4]).copied().collect::<Vec<_>>());
                if rng.one_in(2) {
                    r.gref = rng.below(40) as u32;
                    r.offset = rng.below(4200) as u16;
                    let cap = if rng.one_in(3) { 70_000 } else { 3000 };
                    r.size = rng.below(cap) as u16;
                    let extra = if rng.one_in(8) { NETTXF_EXTRA_INFO } else { 0 };
                    r.flags &= NETTXF_MORE_DATA | extra;
                }
                sent.insert(t.front.req_prod_pvt(), r);
                t.front.produce_request(&r).unwrap();
            }
            t.front.push_requests();
            if rng.one_in(30) {
                let mut p = t.pages;
                p.store_idx(0, rng.next_u64() as u32);
            }
            let read_before = t.pages.bytes_read();
            let max = 1 + rng.below(8) as u32;
            let cons_before = t.back.req_cons();
            let s = t.serve(max);
            let consumed = t.back.req_cons().wrapping_sub(cons_before);
            assert!(consumed <= max * 256, "seed {seed}");
            assert!(t.pages.bytes_read() - read_before <= u64::from(max + 1) * 2 * 256 * 12 + 1024, "seed {seed}: bounded reads");
            assert_eq!(t.back.unanswered(), 0, "seed {seed}: every consumed slot answered");
            assert!(t.pages.fault().is_none());
            for r in t.responses() {
                let req = sent[&checked];
                if r.status != NETIF_RSP_NULL {
                    assert_eq!(r.id, req.id, "seed {seed}: slot {checked} answered with its id");
                }
                assert!([NETIF_RSP_OKAY, NETIF_RSP_ERROR, NETIF_RSP_NULL].contains(&r.status));
                checked += 1;
            }
            assert_eq!(checked, t.back.req_cons(), "seed {seed}: one response per consumed slot");
            if s.fatal.is_some() {
                break 'run;
            }
        }
        for (p, _) in &t.got {
            assert!(p.len() >= 14 && p.len() <= MAX_PACKET);
        }
    }
}

// ---- rx ----

/// A fake netfront's rx side.
struct Rx {
    pages: Pages,
    front: FrontRing<NetifRxRequest, NetifRxResponse, Pages>,
    back: RxBackRing<Pages>,
    grants: FakeGrants,
    queue: RxQueue,
    stats: VifStats,
    vif: VifRing,
}

impl Rx {
    fn new(sg: bool, csum_offload: bool) -> Rx {
        let pages = pages();
        let front = FrontRing::init(pages).unwrap();
        let back = RxBackRing::attach_at_rsp_prod(pages).unwrap();
        let vif = VifRing { tx_ring_ref: 1, rx_ring_ref: 2, evtchn: 3, sg, csum_offload, rx_notify: true };
        Rx {
            pages,
            front,
            back,
            grants: FakeGrants::default(),
            queue: RxQueue::new(RX_QUEUE_PACKETS, RX_QUEUE_BYTES),
            stats: VifStats::default(),
            vif,
        }
    }

    /// Post `n` rx requests, ids and grants from `first`: whether the
    /// frontend must notify the backend (`feature-rx-notify`).
    fn post(&mut self, first: u16, n: u16) -> bool {
        for i in first..first + n {
            self.grants.page(u32::from(i) + 100, |_| 0xee);
            self.front.produce_request(&NetifRxRequest { id: i, pad: 0, gref: u32::from(i) + 100 }).unwrap();
        }
        self.front.push_requests()
    }

    fn serve(&mut self, max: u32) -> RxServed {
        serve_rx(&mut self.back, &mut self.grants, &mut self.queue, &self.vif, &mut self.stats, max)
    }

    fn responses(&mut self) -> Vec<NetifRxResponse> {
        core::iter::from_fn(|| self.front.consume_response().ok().flatten()).collect()
    }
}

fn frame(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 13 + 1) as u8).collect()
}

#[test]
fn rx_frame_is_copied_at_offset_0_and_answered_with_its_length() {
    let mut r = Rx::new(true, true);
    r.post(5, 1);
    assert!(r.queue.push(&frame(60), RxFlags::default(), &mut r.stats));
    let s = r.serve(64);
    assert_eq!((s.delivered, s.dropped, s.fatal), (1, 0, None));
    assert!(s.notify);
    let rsp = r.responses();
    assert_eq!(rsp, [NetifRxResponse { id: 5, offset: 0, flags: 0, status: 60 }]);
    assert_eq!(&r.grants.pages[&105][..60], &frame(60)[..]);
    assert_eq!((r.stats.rx_packets, r.stats.rx_bytes), (1, 60));
}

/// Linux `xenvif_rx_data_slot`: a frame over a page takes `ceil(len /
/// 4096)` slots, each up to a page at offset 0, `NETRXF_more_data` on all
/// but the last; checksum flags only on the first.
#[test]
fn rx_multi_slot_delivery_sets_more_data_on_all_but_the_last() {
    let mut r = Rx::new(true, true);
    r.post(0, 4);
    r.queue.push(&frame(10_000), RxFlags { csum_blank: false, data_validated: true }, &mut r.stats);
    let s = r.serve(64);
    assert_eq!(s.delivered, 1);
    let rsp = r.responses();
    let v = NETRXF_DATA_VALIDATED;
    assert_eq!(
        rsp.iter().map(|x| (x.id, x.offset, x.flags, x.status)).collect::<Vec<_>>(),
        [(0, 0, v | NETRXF_MORE_DATA, 4096), (1, 0, NETRXF_MORE_DATA, 4096), (2, 0, 0, 1808)]
    );
    let f = frame(10_000);
    assert_eq!(&r.grants.pages[&100][..], &f[..4096]);
    assert_eq!(&r.grants.pages[&101][..], &f[4096..8192]);
    assert_eq!(&r.grants.pages[&102][..1808], &f[8192..]);
    assert_eq!(r.back.req_cons(), 3, "the fourth request stays posted");
}

/// The head frame waits until the frontend has posted all the slots it
/// needs; nothing is consumed meanwhile, and the backend asks for an event
/// on the next post (Linux's xenvif_rx_ring_slots_available: `req_event =
/// req_prod + 1`), so the frontend's next push wakes it.
#[test]
fn rx_waits_for_enough_posted_requests_and_asks_for_an_event_on_the_next_post() {
    let mut r = Rx::new(true, true);
    r.post(0, 2);
    r.queue.push(&frame(9000), RxFlags::default(), &mut r.stats);
    let s = r.serve(64);
    assert_eq!((s.delivered, s.starved), (0, true));
    assert_eq!((r.back.req_cons(), r.responses().len(), r.queue.len()), (0, 0, 1));
    assert!(r.post(2, 1), "the post of the missing slot notifies the waiting backend");
    let s = r.serve(64);
    assert_eq!((s.delivered, s.starved), (1, false));
    assert_eq!(r.responses().len(), 3);
}

/// Race (honest frontend): while the backend arms its event for more rx
/// slots, the frontend posts one (reading the old `req_event`: no
/// notification) but still too few for the frame. The backend must arm
/// again at the new `req_prod` (Linux's loop until `req_prod` holds
/// still), or the post that completes the frame notifies no one.
#[test]
fn rx_arms_its_event_again_when_the_frontend_posts_meanwhile_but_too_few() {
    let mut r = Rx::new(true, true);
    r.post(0, 1);
    r.queue.push(&frame(9000), RxFlags::default(), &mut r.stats);
    // A second request written, its req_prod published by the trap just
    // as the backend stores req_event (sring: req_prod at 0, req_event at 4).
    r.grants.page(101, |_| 0xee);
    r.front.produce_request(&NetifRxRequest { id: 1, pad: 0, gref: 101 }).unwrap();
    r.pages.set_trap(xen_public::io::ring::fuzz::Trap { on_store: 4, write: 0, value: 2 });
    let s = r.serve(64);
    assert_eq!((s.delivered, s.starved), (0, true));
    assert_eq!(r.pages.peek(4), 3, "armed again past the req_prod that moved");
    assert!(r.post(2, 1), "the post that completes the frame notifies");
    assert_eq!(r.serve(64).delivered, 1);
}

/// Without `feature-sg` a frame goes in one slot; a larger one is dropped
/// and counted, and the queue moves on.
#[test]
fn rx_without_sg_one_slot_per_frame_and_larger_frames_drop() {
    let mut r = Rx::new(false, true);
    r.post(0, 4);
    r.queue.push(&frame(5000), RxFlags::default(), &mut r.stats);
    r.queue.push(&frame(4096), RxFlags::default(), &mut r.stats);
    let s = r.serve(64);
    assert_eq!((s.delivered, s.dropped), (1, 1));
    assert_eq!(r.responses(), [NetifRxResponse { id: 0, offset: 0, flags: 0, status: 4096 }]);
    assert_eq!(r.stats.rx_too_big, 1);
}

/// Attack: the frontend posted a grant it does not have: the packet's
/// responses carry the `GNTST_*` status (Linux `xenvif_rx_copy_flush`),
/// counted; the next frame goes.
#[test]
fn rx_bad_grant_answers_the_copy_status_and_counts() {
    let mut r = Rx::new(true, true);
    r.front.produce_request(&NetifRxRequest { id: 9, pad: 0, gref: 4242 }).unwrap();
    r.front.produce_request(&NetifRxRequest { id: 10, pad: 0, gref: 4243 }).unwrap();
    r.front.push_requests();
    r.post(11, 1);
    r.queue.push(&frame(5000), RxFlags::default(), &mut r.stats);
    r.queue.push(&frame(100), RxFlags::default(), &mut r.stats);
    let s = r.serve(64);
    assert_eq!((s.delivered, s.dropped), (1, 1));
    let rsp = r.responses();
    assert_eq!(rsp.iter().map(|x| (x.id, x.status)).collect::<Vec<_>>(), [(9, GNTST_BAD_GNTREF), (10, GNTST_BAD_GNTREF), (11, 100)]);
    assert_eq!(r.stats.rx_copy_failed, 1);
}

/// A UDP frame with a blank checksum (as a guest's tx marks it).
fn blank_udp() -> Vec<u8> {
    let mut f = vec![0, 0x16, 0x3e, 0, 0, 2, 0, 0x16, 0x3e, 0, 0, 1, 0x08, 0x00];
    f.extend_from_slice(&[0x45, 0, 0, 33, 0, 0, 0x40, 0, 64, 17, 0, 0, 192, 168, 1, 1, 192, 168, 1, 2]);
    f.extend_from_slice(&[0x04, 0xd2, 0x00, 0x50, 0x00, 0x0d, 0, 0]);
    f.extend_from_slice(b"hello");
    f
}

/// Linux rx.c flags: a blank checksum is `csum_blank | data_validated` to
/// a frontend with checksum offload; one without gets the checksum
/// completed (the RFC 768 value 0x338c) and no flags.
#[test]
fn rx_blank_checksum_is_flagged_or_completed_per_the_frontends_offload() {
    let mut r = Rx::new(true, true);
    r.post(0, 1);
    r.queue.push(&blank_udp(), RxFlags { csum_blank: true, data_validated: true }, &mut r.stats);
    r.serve(64);
    assert_eq!(r.responses()[0].flags, NETRXF_CSUM_BLANK | NETRXF_DATA_VALIDATED);
    assert_eq!(&r.grants.pages[&100][40..42], &[0, 0], "left blank for the frontend");

    let mut r = Rx::new(true, false);
    r.post(0, 1);
    r.queue.push(&blank_udp(), RxFlags { csum_blank: true, data_validated: false }, &mut r.stats);
    r.serve(64);
    assert_eq!(r.responses()[0].flags, 0);
    assert_eq!(&r.grants.pages[&100][40..42], &[0x33, 0x8c]);
    let mut expect = blank_udp();
    assert!(complete_l4_checksum(&mut expect));
    assert_eq!(&r.grants.pages[&100][..expect.len()], &expect[..]);
}

/// Linux `xenvif_rx_queue_tail`: the queue is bounded in frames and bytes;
/// empty and over-64 KiB frames are refused; all counted.
#[test]
fn rx_queue_bounds_hold_and_drops_are_counted() {
    let mut st = VifStats::default();
    let mut q = RxQueue::new(3, 10_000);
    assert!(q.push(&frame(4000), RxFlags::default(), &mut st));
    assert!(q.push(&frame(4000), RxFlags::default(), &mut st));
    assert!(!q.push(&frame(4000), RxFlags::default(), &mut st), "bytes bound");
    assert!(q.push(&frame(100), RxFlags::default(), &mut st));
    assert!(!q.push(&frame(100), RxFlags::default(), &mut st), "packet bound");
    assert!(!q.push(&[], RxFlags::default(), &mut st));
    assert!(!q.push(&frame(MAX_PACKET + 1), RxFlags::default(), &mut st));
    assert_eq!((q.len(), q.bytes(), st.rx_queue_full, st.rx_too_big), (3, 8100, 2, 2));
    assert_eq!(st.dropped_total(), 4);
}

/// Attack: an impossible `req_prod` on the rx ring is fatal; nothing is
/// consumed or copied.
#[test]
fn rx_req_prod_far_past_cons_is_fatal() {
    let mut r = Rx::new(true, true);
    r.post(0, 1);
    let mut p = r.pages;
    p.store_idx(0, 7777);
    r.queue.push(&frame(60), RxFlags::default(), &mut r.stats);
    let s = r.serve(64);
    assert!(s.fatal.is_some_and(|e| e.is_peer_fault()));
    assert_eq!((r.back.req_cons(), r.grants.copies, r.stats.fatal), (0, 0, 1));
}

/// A call delivers at most `max_packets`; the rest stay queued.
#[test]
fn rx_max_packets_bounds_a_call() {
    let mut r = Rx::new(true, true);
    r.post(0, 20);
    for _ in 0..10 {
        r.queue.push(&frame(60), RxFlags::default(), &mut r.stats);
    }
    assert_eq!(r.serve(4).delivered, 4);
    assert_eq!(r.queue.len(), 6);
    assert_eq!(r.serve(64).delivered, 6);
}

/// Deterministic random run of the rx side: random frame sizes and sg,
/// random posting, a scribbled `req_prod` now and then: no panic, each
/// consumed request answered once, responses inside a page.
#[test]
fn rx_random_frames_and_postings_are_answered_once() {
    for seed in 1..=30u64 {
        let mut rng = Rng::new(seed);
        let mut r = Rx::new(rng.one_in(2), rng.one_in(2));
        let mut id = 0u16;
        let mut answered = 0u32;
        for _ in 0..80 {
            for _ in 0..rng.below(6) {
                let cap = if rng.one_in(4) { 70_000 } else { 2000 };
                let len = rng.below(cap) as usize;
                r.queue.push(&frame(len), RxFlags { csum_blank: rng.one_in(3), data_validated: rng.one_in(2) }, &mut r.stats);
            }
            let n = (rng.below(12) as u32).min(r.front.free_requests()) as u16;
            r.post(id, n);
            id = id.wrapping_add(n);
            if rng.one_in(40) {
                let mut p = r.pages;
                p.store_idx(0, rng.next_u64() as u32);
            }
            let s = r.serve(1 + rng.below(8) as u32);
            assert!(r.queue.len() <= RX_QUEUE_PACKETS && r.queue.bytes() <= RX_QUEUE_BYTES);
            if s.fatal.is_some() {
                break;
            }
            assert_eq!(r.back.unanswered(), 0, "seed {seed}");
            for x in r.responses() {
                assert!(x.status <= 4096 && x.offset == 0, "seed {seed}: {x:?}");
                answered += 1;
            }
            assert_eq!(answered, r.back.req_cons(), "seed {seed}");
        }
    }
}

// ---- dom0's memory bounds across vifs ----

/// A pump's tx bytes are shared: one vif may take the whole total, eight
/// get at least a largest packet each, and none ever passes what is left.
#[test]
fn pump_budget_shares_the_total_and_never_passes_it() {
    let one = PumpBudget::new(256 * 1024, 1);
    assert_eq!(one.next_vif(), 256 * 1024);
    let mut b = PumpBudget::new(256 * 1024, 8);
    assert_eq!(b.next_vif(), MAX_PACKET, "a share holds the largest packet");
    for _ in 0..4 {
        b.spend(b.next_vif());
    }
    assert_eq!(b.next_vif(), 256 * 1024 - 4 * MAX_PACKET, "the fifth gets what is left");
    b.spend(b.next_vif());
    assert_eq!((b.next_vif(), b.left()), (0, 0));
    b.spend(10);
    assert_eq!(b.left(), 0, "spending past the total saturates");
    assert_eq!(PumpBudget::new(1000, 0).next_vif(), 1000, "no vif: the total");
}

/// Attack: eight vifs flood 4000-byte packets. Each pass (the first vif
/// rotating, as dom0's pump does) takes at most 256 KiB in all and one
/// share per vif, every vif is served within eight passes, and whatever a
/// pass left waits on its ring, unanswered (`more`).
#[test]
fn eight_flooding_vifs_get_bounded_fair_pumps() {
    const TOTAL: usize = 256 * 1024;
    let mut vifs: Vec<Tx> = (0..8).map(|_| Tx::new()).collect();
    for t in &mut vifs {
        t.push(&(0..200).map(|i| txreq(1, 0, 0, i, 4000)).collect::<Vec<_>>());
    }
    let mut served = [0usize; 8];
    for pass in 0..8 {
        let mut budget = PumpBudget::new(TOTAL, 8);
        let mut taken = 0;
        for i in 0..8 {
            let k = (pass + i) % 8;
            let t = &mut vifs[k];
            let mut bytes = 0;
            let limit = TxBudget { packets: 64, bytes: budget.next_vif() };
            let s = serve_tx_within(&mut t.back, &mut t.grants, &mut t.credit, 0, &mut t.stats, &mut t.buf, limit, &mut |b, _| bytes += b.len());
            assert!(bytes <= MAX_PACKET, "one share per vif");
            assert!(s.more, "vif {k} still has packets");
            assert_eq!(t.back.unanswered(), 0);
            budget.spend(bytes);
            taken += bytes;
            served[k] += bytes;
        }
        assert!(taken <= TOTAL, "pass {pass}: {taken} bytes");
    }
    assert!(served.iter().all(|&b| b > 0), "every vif served: {served:?}");
}

/// Attack: a budget shared by every vif's rx queue bounds their sum: the
/// newest frame past it is dropped and counted in its vif's stats even
/// though that vif's own queue has room.
#[test]
fn rx_queues_share_a_global_byte_budget() {
    const GLOBAL: usize = 20_000;
    let mut qs: Vec<RxQueue> = (0..4).map(|_| RxQueue::new(64, 96 * 1024)).collect();
    let mut st = [VifStats::default(); 4];
    let mut kept = 0;
    for n in 0..40 {
        let k = n % 4;
        let queued: usize = qs.iter().map(RxQueue::bytes).sum();
        if qs[k].push_within(&frame(1500), RxFlags::default(), &mut st[k], GLOBAL.saturating_sub(queued)) {
            kept += 1;
        }
        assert!(qs.iter().map(RxQueue::bytes).sum::<usize>() <= GLOBAL);
    }
    assert_eq!(kept, GLOBAL / 1500);
    assert_eq!(st.iter().map(|s| s.rx_queue_full).sum::<u64>(), 40 - kept as u64);
    assert!(qs.iter().all(|q| q.bytes() <= 96 * 1024 - 1500), "each queue still had room of its own");
}
