//! Host tests of the typed rings: each is named for the ring.h rule (or the
//! Linux driver check) it holds the rings to.

use super::fuzz::{Fuzzer, SharedPages, Trap, request_for, response_for};
use super::*;
use crate::io::blkif::{BlkifRequest, BlkifResponse};
use crate::io::netif::{NetifRxRequest, NetifRxResponse, NetifTxRequest, NetifTxResponse};

type Front<'a> = FrontRing<BlkifRequest, BlkifResponse, &'a SharedPages>;
type Back<'a> = BackRing<BlkifRequest, BlkifResponse, &'a SharedPages>;

/// A ring whose four indices start at `idx` (events at `idx + 1`, as
/// `SHARED_RING_INIT` leaves them relative to 0), with both halves
/// attached there.
fn ring_at(pages: &SharedPages, idx: RingIdx) -> (Front<'_>, Back<'_>) {
    let e = idx.wrapping_add(1);
    pages.set_header(&SringHeader { req_prod: idx, req_event: e, rsp_prod: idx, rsp_event: e, ..SringHeader::new() });
    (Front::attach(pages, idx).unwrap(), Back::attach(pages, idx).unwrap())
}

fn req(id: u64) -> BlkifRequest {
    request_for(id)
}

/// `__RING_SIZE(s, PAGE_SIZE << order)` for blkif, netif tx and netif rx
/// at orders 0..=4. Expected values printed by a C program that includes
/// Xen 4.17's io/ring.h, io/blkif.h and io/netif.h and evaluates
/// `__CONST_RING_SIZE(blkif, 4096 << order)` etc.
#[test]
fn ring_size_matches_xens_macro_for_blkif_and_netif_at_orders_0_to_4() {
    let blkif = [32, 64, 128, 256, 512];
    let netif = [256, 512, 1024, 2048, 4096];
    for order in 0..=MAX_RING_PAGE_ORDER as usize {
        let pages = 1 << order;
        assert_eq!(Geometry::new::<BlkifRequest, BlkifResponse>(pages).unwrap().size, blkif[order], "blkif order {order}");
        assert_eq!(Geometry::new::<NetifTxRequest, NetifTxResponse>(pages).unwrap().size, netif[order], "tx order {order}");
        assert_eq!(Geometry::new::<NetifRxRequest, NetifRxResponse>(pages).unwrap().size, netif[order], "rx order {order}");
        let p = SharedPages::new(pages);
        assert_eq!(Front::init(&p).unwrap().size(), blkif[order]);
    }
}

#[repr(C, align(8))]
#[derive(zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable)]
struct Align8([u8; 8]);

/// `DEFINE_RING_TYPES`' entry is a C union: the larger member's size,
/// rounded up to the larger alignment (blkif 112, netif tx 12, rx 8).
#[test]
fn entry_size_is_the_c_unions_size() {
    assert_eq!(entry_size::<BlkifRequest, BlkifResponse>(), 112);
    assert_eq!(entry_size::<NetifTxRequest, NetifTxResponse>(), 12);
    assert_eq!(entry_size::<NetifRxRequest, NetifRxResponse>(), 8);
    assert_eq!(entry_size::<NetifTxRequest, Align8>(), 16, "12 bytes rounded up to the 8-byte alignment");
}

/// `ring-page-order` gives 2^order pages (Linux accepts order <= 4); an
/// entry that does not fit leaves `__RING_SIZE` at 0 and is refused.
#[test]
fn page_count_must_be_a_power_of_two_up_to_order_4() {
    for bad in [0, 3, 6, 32] {
        let p = SharedPages::new(bad);
        assert_eq!(Front::init(&p).err(), Some(RingError::BadPageCount(bad)));
        assert_eq!(Back::init(&p).err(), Some(RingError::BadPageCount(bad)));
    }
    let p = SharedPages::new(1);
    assert_eq!(FrontRing::<[u8; 5000], [u8; 8], &SharedPages>::init(&p).err(), Some(RingError::EntryTooLarge));
}

/// `XEN_FRONT_RING_INIT` = `SHARED_RING_INIT` (producers 0, events 1,
/// `pvt` and padding zero) then `FRONT_RING_INIT` (private indices 0).
#[test]
fn xen_front_ring_init_writes_shared_ring_init() {
    let p = SharedPages::new(1);
    for i in 0..64 {
        p.poke_byte(i, 0xa5);
    }
    let f = Front::init(&p).unwrap();
    let mut hdr = [0u8; 64];
    (&p).read(0, &mut hdr);
    assert_eq!(&hdr[..], SringHeader::new().as_bytes());
    assert_eq!((f.req_prod_pvt(), f.rsp_cons(), f.free_requests()), (0, 0, 32));
    let b = Back::init(&p).unwrap();
    assert_eq!((b.req_cons(), b.rsp_prod_pvt()), (0, 0));
}

/// `RING_IDX` is a free-running u32: a full ring across 2^32 fills all
/// `RING_SIZE` slots (`RING_FULL`, `RING_FREE_REQUESTS` 0), slot
/// `idx & (size - 1)` wraps from 31 to 0, and every request and response
/// comes back intact.
#[test]
fn wraparound_at_2_32_with_a_full_ring() {
    let p = SharedPages::new(1);
    let start = u32::MAX - 5;
    let (mut f, mut b) = ring_at(&p, start);
    for id in 0..32 {
        assert_eq!(f.produce_request(&req(id)).unwrap(), start.wrapping_add(id as u32));
    }
    assert!(f.is_full());
    assert_eq!(f.free_requests(), 0);
    assert_eq!(f.produce_request(&req(99)), Err(RingError::Full));
    assert_eq!(
        f.push_requests_span(),
        Pushed { notify: true, from: start, to: start.wrapping_add(32) },
        "first push past req_event = start + 1; 32 published across 2^32"
    );
    assert_eq!(p.peek(off::REQ_PROD), start.wrapping_add(32));
    let end = start.wrapping_add(32);
    assert_eq!(f.push_requests_span(), Pushed { notify: false, from: end, to: end }, "nothing new: no event");
    // Request u32::MAX sits in slot 31, request 2^32 (= 0) in slot 0.
    let at = |slot: usize| u64::from_le_bytes((0..8).map(|i| p.peek_byte(64 + slot * 112 + 8 + i)).collect::<Vec<_>>().try_into().unwrap());
    assert_eq!(at(31), 5, "id of the request at index u32::MAX");
    assert_eq!(at(0), 6, "id of the request at index 2^32");
    assert_eq!(b.unconsumed_requests(), Ok(32));
    for id in 0..32 {
        let r = b.consume_request().unwrap().unwrap();
        assert_eq!(r, req(id));
        b.produce_response(&response_for(&r)).unwrap();
    }
    assert_eq!(b.consume_request(), Ok(None));
    assert!(b.push_responses());
    assert_eq!(f.unconsumed_responses(), Ok(32));
    for id in 0..32 {
        assert_eq!(f.consume_response().unwrap().unwrap(), response_for(&req(id)));
    }
    assert_eq!(f.consume_response(), Ok(None));
    assert_eq!((f.rsp_cons(), f.free_requests()), (start.wrapping_add(32), 32));
}

/// Push three requests from 100 to 103 with the backend's `req_event` at
/// `event`; the notify decision of `RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`.
fn push_three_with_req_event(event: RingIdx) -> bool {
    let p = SharedPages::new(1);
    let (mut f, _b) = ring_at(&p, 100);
    p.poke(off::REQ_EVENT, event);
    for id in 0..3 {
        f.produce_request(&req(id)).unwrap();
    }
    let notify = f.push_requests();
    assert_eq!(p.peek(off::REQ_PROD), 103, "the push publishes req_prod_pvt");
    notify
}

/// Notify iff the backend's `req_event` lies in (old, new]: it asked at
/// the first new request, in the middle, exactly at the new producer
/// index; not when it asked for a later one, and not when it is not
/// waiting (its event at or before the old producer index).
#[test]
fn push_requests_notifies_iff_req_event_is_in_old_new() {
    assert!(push_three_with_req_event(101), "peer asked at the first new request");
    assert!(push_three_with_req_event(102));
    assert!(push_three_with_req_event(103), "peer asked for notification exactly at the new index");
    assert!(!push_three_with_req_event(104), "peer waits for a later request");
    assert!(!push_three_with_req_event(100), "not waiting: event at the old index, already passed");
    assert!(!push_three_with_req_event(40), "not waiting: event long passed");
}

/// The same rule for `RING_PUSH_RESPONSES_AND_CHECK_NOTIFY` and
/// `rsp_event`, across 2^32.
#[test]
fn push_responses_notifies_iff_rsp_event_is_in_old_new_across_2_32() {
    for (event, want) in [(u32::MAX, true), (0, true), (1, true), (2, false), (u32::MAX - 1, false), (u32::MAX - 9, false)] {
        let p = SharedPages::new(1);
        let (mut f, mut b) = ring_at(&p, u32::MAX - 1);
        for id in 0..3 {
            f.produce_request(&req(id)).unwrap();
        }
        f.push_requests();
        for _ in 0..3 {
            let r = b.consume_request().unwrap().unwrap();
            b.produce_response(&response_for(&r)).unwrap();
        }
        p.poke(off::RSP_EVENT, event);
        assert_eq!(b.push_responses(), want, "rsp_event {event:#x}, rsp_prod u32::MAX - 1 -> 1");
    }
}

/// A push that publishes nothing new never notifies, whatever the event.
#[test]
fn push_with_nothing_produced_never_notifies() {
    let p = SharedPages::new(1);
    let (mut f, mut b) = ring_at(&p, 7);
    for event in [7, 8, 0, u32::MAX] {
        p.poke(off::REQ_EVENT, event);
        p.poke(off::RSP_EVENT, event);
        assert!(!f.push_requests());
        assert!(!b.push_responses());
    }
}

/// `RING_FINAL_CHECK_FOR_REQUESTS` with nothing pending sets `req_event =
/// req_cons + 1`, so the frontend's next push notifies, and the one after
/// (with the backend not re-armed) does not.
#[test]
fn final_check_arms_req_event_at_req_cons_plus_one() {
    let p = SharedPages::new(1);
    let (mut f, mut b) = ring_at(&p, 20);
    p.poke(off::REQ_EVENT, 5);
    assert_eq!(b.final_check_for_requests(), Ok(false));
    assert_eq!(p.peek(off::REQ_EVENT), 21);
    f.produce_request(&req(0)).unwrap();
    assert!(f.push_requests(), "the sleeping backend is woken");
    f.produce_request(&req(1)).unwrap();
    assert!(!f.push_requests(), "the backend is awake: no second event");
    assert_eq!(b.final_check_for_requests(), Ok(true));
    assert_eq!(p.peek(off::REQ_EVENT), 21, "work pending: the event index is left alone");
}

/// Linux netback's wait for more rx slots (`xenvif_rx_ring_slots_available`):
/// with some requests posted but too few, `req_event = req_prod + 1`, so
/// the frontend's next push notifies although requests are pending.
#[test]
fn request_event_after_more_arms_req_event_past_req_prod() {
    let p = SharedPages::new(1);
    let (mut f, mut b) = ring_at(&p, 40);
    f.produce_request(&req(0)).unwrap();
    f.push_requests();
    p.poke(off::REQ_EVENT, 5);
    assert_eq!(b.request_event_after_more(), Ok(1), "one request posted, not consumed");
    assert_eq!(p.peek(off::REQ_EVENT), 42, "req_prod 41 + 1");
    f.produce_request(&req(1)).unwrap();
    assert!(f.push_requests(), "the next request wakes the waiting backend");
    // A push between the backend's read of req_prod and its store.
    f.produce_request(&req(2)).unwrap();
    let new = f.req_prod_pvt();
    p.set_trap(Trap { on_store: off::REQ_EVENT, write: off::REQ_PROD, value: new });
    assert_eq!(b.request_event_after_more(), Ok(3), "the re-read sees the request published meanwhile");
    assert_eq!(p.peek(off::REQ_EVENT), new, "armed behind req_prod: the caller must arm again");
    assert_eq!(b.request_event_after_more(), Ok(3), "req_prod held still this time");
    assert_eq!(p.peek(off::REQ_EVENT), new.wrapping_add(1));
    f.produce_request(&req(3)).unwrap();
    assert!(f.push_requests(), "re-armed: the next post notifies");
    // A corrupt req_prod is an error here too.
    p.poke(off::REQ_PROD, 40 + 5000);
    assert!(b.request_event_after_more().is_err());
}

/// The frontend's side: `RING_FINAL_CHECK_FOR_RESPONSES` sets `rsp_event
/// = rsp_cons + 1`, and the backend's next push notifies.
#[test]
fn final_check_arms_rsp_event_at_rsp_cons_plus_one() {
    let p = SharedPages::new(1);
    let (mut f, mut b) = ring_at(&p, 0);
    f.produce_request(&req(0)).unwrap();
    f.push_requests();
    p.poke(off::RSP_EVENT, 1000);
    assert_eq!(f.final_check_for_responses(), Ok(false));
    assert_eq!(p.peek(off::RSP_EVENT), 1);
    let r = b.consume_request().unwrap().unwrap();
    b.produce_response(&response_for(&r)).unwrap();
    assert!(b.push_responses());
    assert_eq!(f.final_check_for_responses(), Ok(true));
}

/// The final check's re-check: a request published between the first
/// check and the store of `req_event` is seen, although the frontend,
/// having read the old `req_event`, sent no event for it.
#[test]
fn final_check_sees_a_request_arriving_before_req_event_is_set() {
    let p = SharedPages::new(1);
    let (mut f, mut b) = ring_at(&p, 300);
    // The backend consumed everything earlier and last armed at 290.
    p.poke(off::REQ_EVENT, 290);
    f.produce_request(&req(0)).unwrap();
    let (old, new) = (p.peek(off::REQ_PROD), f.req_prod_pvt());
    assert!(!need_notify(old, new, 290), "the frontend's push sees the old event: no notification");
    p.set_trap(Trap { on_store: off::REQ_EVENT, write: off::REQ_PROD, value: new });
    assert_eq!(b.final_check_for_requests(), Ok(true), "the re-check after setting req_event sees it");
    assert_eq!(p.peek(off::REQ_EVENT), 301);
    assert_eq!(b.consume_request().unwrap(), Some(req(0)));
}

/// The same race on the frontend's side, with responses.
#[test]
fn final_check_sees_a_response_arriving_before_rsp_event_is_set() {
    let p = SharedPages::new(1);
    let (mut f, mut b) = ring_at(&p, 0);
    f.produce_request(&req(0)).unwrap();
    f.push_requests();
    let r = b.consume_request().unwrap().unwrap();
    b.produce_response(&response_for(&r)).unwrap();
    p.set_trap(Trap { on_store: off::RSP_EVENT, write: off::RSP_PROD, value: b.rsp_prod_pvt() });
    assert_eq!(f.final_check_for_responses(), Ok(true));
    assert_eq!(f.consume_response().unwrap(), Some(response_for(&req(0))));
}

/// `RING_COPY_REQUEST`: each entry is copied out once (112 bytes read per
/// request, none twice), also when it straddles a page boundary of a
/// multi-page ring, and no access crosses a page.
#[test]
fn consume_copies_each_entry_out_once_even_across_a_page_boundary() {
    let p = SharedPages::new(4);
    // Entry 72 of a 4-page blkif ring spans bytes 8128..8240, across 8192.
    let (mut f, mut b) = ring_at(&p, 70);
    for id in 0..4 {
        f.produce_request(&req(id)).unwrap();
    }
    f.push_requests();
    let before = p.bytes_read();
    for id in 0..4 {
        assert_eq!(b.consume_request().unwrap(), Some(req(id)));
    }
    assert_eq!(p.bytes_read() - before, 4 * 112);
    assert_eq!(p.fault(), None);
}

/// `RING_REQUEST_PROD_OVERFLOW` (Linux blkback: "Frontend provided bogus
/// ring requests", ring halted): a `req_prod` more than a ring ahead of
/// `rsp_prod_pvt` is a peer fault from the count, the consume and the final
/// check alike, and nothing is read.
#[test]
fn req_prod_more_than_a_ring_ahead_is_request_prod_overflow() {
    let p = SharedPages::new(1);
    let (_f, mut b) = ring_at(&p, 10);
    p.poke(off::REQ_PROD, 10 + 33);
    let e = RingError::RequestProdOverflow { req_prod: 43, rsp_prod_pvt: 10 };
    assert_eq!(b.unconsumed_requests(), Err(e));
    let before = p.bytes_read();
    assert_eq!(b.consume_request(), Err(e));
    assert_eq!(b.final_check_for_requests(), Err(e));
    assert_eq!(p.bytes_read(), before, "no entry read");
    assert!(e.is_peer_fault());
    assert_eq!(b.req_cons(), 10);
}

/// Exactly a ring of requests is allowed, and the backend stops after
/// `RING_SIZE` (`RING_REQUEST_CONS_OVERFLOW`): it cannot read a slot that
/// still needs its response, even if the frontend pushes `req_prod` on.
#[test]
fn backend_stops_at_request_cons_overflow_and_refuses_more() {
    let p = SharedPages::new(1);
    let (mut f, mut b) = ring_at(&p, u32::MAX - 3);
    for id in 0..32 {
        f.produce_request(&req(id)).unwrap();
    }
    f.push_requests();
    for _ in 0..32 {
        assert!(b.consume_request().unwrap().is_some());
    }
    assert_eq!(b.consume_request(), Ok(None), "ring full of unanswered requests");
    assert_eq!(b.unanswered(), 32);
    p.poke(off::REQ_PROD, p.peek(off::REQ_PROD).wrapping_add(5));
    assert!(matches!(b.consume_request(), Err(RingError::RequestProdOverflow { .. })));
    b.produce_response(&response_for(&req(0))).unwrap();
    assert!(matches!(b.consume_request(), Err(RingError::RequestProdOverflow { .. })), "33 + 4 still too many");
}

/// Netback's "impossible number of requests": a `req_prod` moved back
/// behind `req_cons` (so `req_prod - req_cons` wraps to ~2^32) is a peer
/// fault, not 4 billion requests to read.
#[test]
fn req_prod_behind_req_cons_is_refused() {
    let p = SharedPages::new(1);
    let (mut f, mut b) = ring_at(&p, 0);
    for id in 0..5 {
        f.produce_request(&req(id)).unwrap();
    }
    f.push_requests();
    for _ in 0..3 {
        b.consume_request().unwrap().unwrap();
    }
    p.poke(off::REQ_PROD, 1);
    assert_eq!(b.consume_request(), Err(RingError::RequestProdBehindConsumer { req_prod: 1, req_cons: 3 }));
    for bad in [2, u32::MAX, 0x8000_0000] {
        p.poke(off::REQ_PROD, bad);
        assert!(b.unconsumed_requests().unwrap_err().is_peer_fault(), "req_prod {bad:#x}");
    }
    p.poke(off::REQ_PROD, 5);
    assert_eq!(b.unconsumed_requests(), Ok(2), "the honest value is accepted again");
}

/// Linux's `xen_blkif_map`: attaching at the shared `rsp_prod` refuses a
/// ring whose `req_prod - rsp_prod` exceeds the ring's size.
#[test]
fn attach_at_rsp_prod_refuses_more_than_a_ring_of_requests() {
    let p = SharedPages::new(1);
    p.set_header(&SringHeader { req_prod: 10 + 33, rsp_prod: 10, ..SringHeader::new() });
    assert!(matches!(Back::attach_at_rsp_prod(&p), Err(RingError::RequestProdOverflow { req_prod: 43, rsp_prod_pvt: 10 })));
    p.poke(off::REQ_PROD, 10 + 32);
    let b = Back::attach_at_rsp_prod(&p).unwrap();
    assert_eq!((b.req_cons(), b.rsp_prod_pvt(), b.unconsumed_requests()), (10, 10, Ok(32)));
}

/// A hostile backend's `rsp_prod`: past `req_prod_pvt` (responses to
/// requests never made), more than a ring ahead
/// (`RING_RESPONSE_PROD_OVERFLOW`), or behind `rsp_cons`: each a peer
/// fault, and the frontend reads no slot.
#[test]
fn made_up_rsp_prod_is_refused_by_the_frontend() {
    let p = SharedPages::new(1);
    let (mut f, _b) = ring_at(&p, u32::MAX);
    f.produce_request(&req(0)).unwrap();
    f.produce_request(&req(1)).unwrap();
    f.push_requests();
    let before = p.bytes_read();
    p.poke(off::RSP_PROD, 2);
    assert_eq!(f.consume_response(), Err(RingError::ResponseProdPastRequests { rsp_prod: 2, req_prod_pvt: 1 }));
    p.poke(off::RSP_PROD, u32::MAX.wrapping_add(33));
    assert_eq!(f.final_check_for_responses(), Err(RingError::ResponseProdOverflow { rsp_prod: 32, rsp_cons: u32::MAX }));
    p.poke(off::RSP_PROD, u32::MAX - 1);
    assert!(matches!(f.unconsumed_responses(), Err(RingError::ResponseProdOverflow { .. })), "behind rsp_cons");
    assert_eq!(p.bytes_read(), before, "no slot read");
    p.poke(off::RSP_PROD, 1);
    assert_eq!(f.unconsumed_responses(), Ok(2), "answering both requests is fine");
}

/// Event indices are the peer's to write: a made-up `req_event` or
/// `rsp_event` (or a made-up old producer index) changes only the notify
/// decision, never what is published or the private indices.
#[test]
fn made_up_event_indices_only_change_the_notify_decision() {
    for event in [0, 1, 3, 0x8000_0000, u32::MAX] {
        let p = SharedPages::new(1);
        let (mut f, mut b) = ring_at(&p, 0);
        p.poke(off::REQ_EVENT, event);
        p.poke(off::REQ_PROD, event.wrapping_mul(7));
        f.produce_request(&req(0)).unwrap();
        f.push_requests();
        assert_eq!((p.peek(off::REQ_PROD), f.req_prod_pvt(), f.free_requests()), (1, 1, 31));
        let r = b.consume_request().unwrap().unwrap();
        b.produce_response(&response_for(&r)).unwrap();
        p.poke(off::RSP_EVENT, event);
        b.push_responses();
        assert_eq!(p.peek(off::RSP_PROD), 1);
        assert_eq!(f.consume_response().unwrap(), Some(response_for(&req(0))));
    }
}

/// Made-up producer indices from either side, every value class: the
/// rings never touch memory outside their pages and keep their private
/// indices within a ring of each other.
#[test]
fn made_up_indices_from_each_side_never_leave_the_ring() {
    let p = SharedPages::new(1);
    let (mut f, mut b) = ring_at(&p, u32::MAX - 16);
    let values = [0, 1, 31, 32, 33, 64, 0x7fff_ffff, 0x8000_0000, u32::MAX - 1, u32::MAX];
    for (i, v) in values.iter().enumerate() {
        f.produce_request(&req(i as u64)).ok();
        f.push_requests();
        let base = b.req_cons();
        p.poke(off::REQ_PROD, base.wrapping_add(*v));
        for _ in 0..40 {
            if let Ok(Some(r)) = b.consume_request() {
                b.produce_response(&response_for(&r)).unwrap();
            }
        }
        b.push_responses();
        p.poke(off::RSP_PROD, f.rsp_cons().wrapping_add(*v));
        for _ in 0..40 {
            let _ = f.consume_response();
        }
        let _ = f.final_check_for_responses();
        let _ = b.final_check_for_requests();
        assert_eq!(p.fault(), None);
        assert!(f.req_prod_pvt().wrapping_sub(f.rsp_cons()) <= 32);
        assert!(b.unanswered() <= 32);
    }
}

/// A backend answering more than it consumed is its own bug
/// (`NoRequestToAnswer`), not a peer fault.
#[test]
fn backend_cannot_answer_more_than_it_consumed() {
    let p = SharedPages::new(1);
    let (_f, mut b) = ring_at(&p, 0);
    let e = b.produce_response(&BlkifResponse::default()).unwrap_err();
    assert_eq!(e, RingError::NoRequestToAnswer);
    assert!(!e.is_peer_fault());
    assert!(!RingError::Full.is_peer_fault());
}

/// The fuzzer (short run): honest and hostile episodes at every order keep
/// every invariant, and hostile ones do get their peer faults reported.
#[test]
fn fuzz_short_run_keeps_every_invariant() {
    let mut fz = Fuzzer::new(0x5eed);
    for _ in 0..300 {
        if let Err(f) = fz.step() {
            panic!("{f:?}");
        }
    }
    let r = &fz.report;
    assert_eq!(r.episodes, 300);
    assert!(r.orders.iter().all(|&n| n > 0), "{:?}", r.orders);
    assert!(r.hostile > 0 && r.hostile < 300);
    assert!(r.errors.iter().all(|&n| n > 0), "every fault kind seen: {:?}", r.errors);
    assert!(r.responses > 1000 && r.notifies.iter().all(|&n| n > 0));
}

/// The fuzzer is deterministic: a seed replays the same run.
#[test]
fn fuzz_same_seed_replays_the_same_run() {
    let run = |seed| {
        let mut fz = Fuzzer::new(seed);
        for _ in 0..30 {
            fz.step().unwrap();
        }
        fz.report
    };
    assert_eq!(run(9), run(9));
    assert_ne!(run(9), run(10));
}
