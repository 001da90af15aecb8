//! Host tests of the xenbus client against a scripted xenstored over an
//! in-memory ring page; each name states the rule checked.

use super::state::*;
use super::*;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::vec::Vec;
use xen_public::errno::{EAGAIN, EEXIST, ENOENT};
use xen_public::trace_guest::GuestEvent;
use zerocopy::FromBytes;

/// A 4 KiB ring page shared by the client and the fake xenstored.
#[derive(Clone)]
struct Page(Rc<RefCell<Vec<u8>>>);

impl Page {
    fn new() -> Page {
        Page(Rc::new(RefCell::new(std::vec![0; 4096])))
    }
}

impl RingMem for Page {
    fn load(&self, off: usize) -> u32 {
        u32::from_le_bytes(self.0.borrow()[off..off + 4].try_into().unwrap())
    }
    fn store(&mut self, off: usize, v: u32) {
        self.0.borrow_mut()[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }
    fn byte(&self, off: usize) -> u8 {
        self.0.borrow()[off]
    }
    fn set_byte(&mut self, off: usize, v: u8) {
        self.0.borrow_mut()[off] = v;
    }
}

type Handler = Box<dyn FnMut(XsdSockmsg, &[u8]) -> Vec<Vec<u8>>>;
/// Something done to the page on every block.
type Tamper = Box<dyn FnMut(&mut Page)>;

/// A fake xenstored: on every block it takes whole requests off the req
/// ring, answers them with `handler`, and feeds `out` into the rsp ring
/// as room allows. Time advances 1 ms per block.
struct Fake {
    page: Page,
    inbox: Vec<u8>,
    out: VecDeque<u8>,
    handler: Handler,
    now: u64,
    blocks: u64,
    notifies: u64,
    /// Bytes the fake accepts per block (to make xenstored slow).
    accept: usize,
    /// Called on every block, before serving (e.g. to corrupt the ring).
    every_block: Option<Tamper>,
    requests: Requests,
    /// What the client recorded for the guest's trace.
    traced: Vec<GuestEvent>,
}

impl Port for Fake {
    fn notify(&mut self) {
        self.notifies += 1;
    }
    fn now(&mut self) -> u64 {
        self.now
    }
    fn block(&mut self, until: u64) {
        assert!(until >= self.now || self.blocks > 0, "never asked to sleep into the past");
        self.now += 1_000_000;
        self.blocks += 1;
        if let Some(f) = self.every_block.as_mut() {
            f(&mut self.page);
        }
        self.serve();
    }
    fn trace(&mut self, event: GuestEvent) {
        self.traced.push(event);
    }
}

impl Fake {
    fn serve(&mut self) {
        let mut buf = std::vec![0u8; self.accept];
        let n = REQ_RING.consume(&mut self.page, &mut buf);
        self.inbox.extend_from_slice(&buf[..n]);
        while self.inbox.len() >= 16 {
            let h = XsdSockmsg::read_from_bytes(&self.inbox[..16]).unwrap();
            let total = 16 + h.len as usize;
            if self.inbox.len() < total {
                break;
            }
            let payload = self.inbox[16..total].to_vec();
            self.inbox.drain(..total);
            self.requests.borrow_mut().push((h, payload.clone()));
            for m in (self.handler)(h, &payload) {
                self.out.extend(m);
            }
        }
        let pending: Vec<u8> = self.out.iter().copied().collect();
        let n = RSP_RING.produce(&mut self.page, &pending);
        self.out.drain(..n);
    }
}

fn msg(type_: u32, req_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::from(XsdSockmsg { type_, req_id, tx_id: 0, len: payload.len() as u32 }.as_bytes());
    v.extend_from_slice(payload);
    v
}

fn event(path: &str, token: &str) -> Vec<u8> {
    msg(XS_WATCH_EVENT, 0, format!("{path}\0{token}\0").as_bytes())
}

type Requests = Rc<RefCell<Vec<(XsdSockmsg, Vec<u8>)>>>;

fn client(handler: impl FnMut(XsdSockmsg, &[u8]) -> Vec<Vec<u8>> + 'static) -> (Client<Page, Fake>, Requests) {
    let page = Page::new();
    let requests = Requests::default();
    let fake = Fake {
        page: page.clone(),
        inbox: Vec::new(),
        out: VecDeque::new(),
        handler: Box::new(handler),
        now: 0,
        blocks: 0,
        notifies: 0,
        accept: 4096,
        every_block: None,
        requests: requests.clone(),
        traced: Vec::new(),
    };
    (Client::new(page, fake), requests)
}

/// Answers every request with `payload` and its own type.
fn answer(payload: &'static [u8]) -> impl FnMut(XsdSockmsg, &[u8]) -> Vec<Vec<u8>> {
    move |h, _| std::vec![msg(h.type_, h.req_id, payload)]
}

// ---- trace

#[test]
fn each_request_and_its_reply_are_traced_with_the_req_id_xenstored_echoes() {
    let (mut c, reqs) =
        client(|h, _| if h.type_ == XS_READ { std::vec![msg(XS_ERROR, h.req_id, b"ENOENT\0")] } else { std::vec![msg(h.type_, h.req_id, b"OK\0")] });
    c.write(XBT_NIL, "a", b"v").unwrap();
    assert_eq!(c.read(XBT_NIL, "b", &mut [0; 8]), Err(-ENOENT));
    let ids: Vec<u32> = reqs.borrow().iter().map(|(h, _)| h.req_id).collect();
    assert_eq!(
        c.port.traced,
        [
            GuestEvent::XenbusRequest { type_: XS_WRITE, req_id: ids[0], tx_id: 0, len: 3 },
            GuestEvent::XenbusReply { type_: XS_WRITE, req_id: ids[0], len: 3 },
            GuestEvent::XenbusRequest { type_: XS_READ, req_id: ids[1], tx_id: 0, len: 2 },
            GuestEvent::XenbusReply { type_: XS_ERROR, req_id: ids[1], len: 0 },
        ]
    );
}

// ---- frame

#[test]
fn a_request_past_xenstore_payload_max_is_refused_with_e2big() {
    let big = [b'x'; 4096];
    assert_eq!(frame::request_header(XS_WRITE, 1, 0, &[&big]).map(|h| h.len), Ok(4096));
    assert_eq!(frame::request_header(XS_WRITE, 1, 0, &[&big, b"\0"]), Err(-xen_public::errno::E2BIG));
}

#[test]
fn an_argument_holding_a_nul_is_refused_before_anything_is_sent() {
    let (mut c, reqs) = client(answer(b"OK\0"));
    assert_eq!(c.write(XBT_NIL, "a\0b", b"v"), Err(-EINVAL));
    assert_eq!(c.watch("a", "t\0x"), Err(-EINVAL));
    assert!(reqs.borrow().is_empty());
    assert_eq!(c.mem.load(REQ_RING.prod), 0, "nothing on the ring");
}

#[test]
fn a_reply_header_claiming_more_than_payload_max_is_not_trusted() {
    let ok = XsdSockmsg { type_: XS_READ, req_id: 1, tx_id: 0, len: 4096 };
    assert_eq!(frame::reply_header(ok.as_bytes().try_into().unwrap()), Some(ok));
    let bad = XsdSockmsg { len: 4097, ..ok };
    assert_eq!(frame::reply_header(bad.as_bytes().try_into().unwrap()), None);
    let huge = XsdSockmsg { len: u32::MAX, ..ok };
    assert_eq!(frame::reply_header(huge.as_bytes().try_into().unwrap()), None);
}

#[test]
fn error_names_map_to_xens_errno_and_unknown_names_to_einval() {
    assert_eq!(frame::error_errno(b"ENOENT\0"), -ENOENT);
    assert_eq!(frame::error_errno(b"EAGAIN"), -EAGAIN);
    assert_eq!(frame::error_errno(b"E2BIG\0"), -xen_public::errno::E2BIG);
    assert_eq!(frame::error_errno(b"EWHAT\0"), -EINVAL);
    assert_eq!(frame::error_errno(b"\xff\xfe"), -EINVAL);
    assert_eq!(frame::error_errno(b""), -EINVAL);
}

#[test]
fn a_watch_event_is_exactly_two_nul_terminated_strings() {
    assert_eq!(frame::watch_event(b"control/shutdown\0tok\0"), Some(("control/shutdown", "tok")));
    assert_eq!(frame::watch_event(b"p\0\0"), Some(("p", "")));
    assert_eq!(frame::watch_event(b"p\0tok"), None, "token lacks its NUL");
    assert_eq!(frame::watch_event(b"p\0t\0x\0"), None, "three strings");
    assert_eq!(frame::watch_event(b"p\0"), None, "one string");
    assert_eq!(frame::watch_event(b""), None);
}

#[test]
fn numbers_are_decimal_text_and_overflow_is_refused() {
    assert_eq!(frame::parse_u32(b"17\0"), Some(17));
    assert_eq!(frame::parse_u32(b"4294967295"), Some(u32::MAX));
    assert_eq!(frame::parse_u32(b"4294967296"), None);
    assert_eq!(frame::parse_u32(b"-1"), None);
    assert_eq!(frame::parse_u32(b""), None);
    let mut b = [0u8; 10];
    assert_eq!(frame::fmt_u32(0, &mut b), b"0");
    assert_eq!(frame::fmt_u32(u32::MAX, &mut b), b"4294967295");
}

#[test]
fn directory_names_split_on_nul() {
    let v: Vec<&[u8]> = frame::names(b"a\0bc\0").collect();
    assert_eq!(v, [&b"a"[..], b"bc"]);
    assert_eq!(frame::names(b"").count(), 0);
}

// ---- client

#[test]
fn read_sends_path_with_its_nul_and_returns_the_value() {
    let (mut c, reqs) = client(answer(b"guest1"));
    let mut buf = [0u8; 32];
    assert_eq!(c.read_str(XBT_NIL, "name", &mut buf), Ok("guest1"));
    let r = reqs.borrow();
    assert_eq!((r[0].0.type_, r[0].0.req_id, r[0].0.tx_id, r[0].1.as_slice()), (XS_READ, 1, 0, &b"name\0"[..]));
    assert!(c.port.notifies > 0, "xenstored was notified");
}

#[test]
fn write_sends_path_nul_value_without_a_trailing_nul() {
    let (mut c, reqs) = client(answer(b"OK\0"));
    c.write(7, "data/hello", b"world").unwrap();
    let r = reqs.borrow();
    assert_eq!((r[0].0.type_, r[0].0.tx_id, r[0].1.as_slice()), (XS_WRITE, 7, &b"data/hello\0world"[..]));
}

#[test]
fn reply_with_xs_error_maps_the_name_to_errno() {
    let (mut c, _) = client(|h, _| std::vec![msg(XS_ERROR, h.req_id, b"ENOENT\0")]);
    let mut buf = [0u8; 8];
    assert_eq!(c.read(XBT_NIL, "nope", &mut buf), Err(-ENOENT));
    assert!(!c.is_broken(), "an error reply is not a broken connection");
}

#[test]
fn a_long_error_name_is_cut_without_overrun_and_maps_to_einval() {
    let (mut c, _) = client(|h, _| std::vec![msg(XS_ERROR, h.req_id, &[b'E'; 3000])]);
    assert_eq!(c.mkdir(XBT_NIL, "x"), Err(-EINVAL));
}

#[test]
fn a_reply_longer_than_the_buffer_is_refused_without_overrun() {
    let (mut c, _) = client(|h, p| {
        let v: &[u8] = if p == b"big\0" { b"0123456789abcdef" } else { b"small" };
        std::vec![msg(h.type_, h.req_id, v)]
    });
    let mut buf = [0xAAu8; 12];
    assert_eq!(c.read(XBT_NIL, "big", &mut buf[..8]), Err(-ERANGE));
    assert_eq!(&buf[..8], b"01234567", "only the buffer was written");
    assert_eq!(&buf[8..], &[0xAA; 4], "nothing past it");
    // The rest of the long reply was consumed: the stream is still in step.
    assert_eq!(c.read(XBT_NIL, "other", &mut buf), Ok(5));
    assert_eq!(&buf[..5], b"small");
}

#[test]
fn watch_events_arriving_before_the_reply_are_queued() {
    let (mut c, _) = client(|h, _| std::vec![event("control/shutdown", "sd"), event("a/b", "t2"), msg(h.type_, h.req_id, b"v")]);
    let mut buf = [0u8; 8];
    assert_eq!(c.read(XBT_NIL, "x", &mut buf), Ok(1));
    assert_eq!(c.queued_events(), 2);
    let mut ev = [0u8; 64];
    assert_eq!(c.next_watch_event(&mut ev, 0), Ok(WatchEvent { path: "control/shutdown", token: "sd" }));
    assert_eq!(c.next_watch_event(&mut ev, 0), Ok(WatchEvent { path: "a/b", token: "t2" }));
    assert_eq!(c.queued_events(), 0);
}

#[test]
fn waiting_for_one_token_leaves_other_events_queued_in_order() {
    let (mut c, _) = client(|h, _| std::vec![event("a", "other"), event("b", "mine"), event("c", "other"), msg(h.type_, h.req_id, b"OK\0")]);
    c.mkdir(XBT_NIL, "x").unwrap();
    let mut ev = [0u8; 64];
    assert_eq!(c.wait_watch_event(Some("mine"), &mut ev, 0).map(|e| e.path), Ok("b"));
    assert_eq!(c.next_watch_event(&mut ev, 0).map(|e| e.path), Ok("a"));
    assert_eq!(c.next_watch_event(&mut ev, 0).map(|e| e.path), Ok("c"));
}

#[test]
fn events_past_the_queue_or_too_long_or_malformed_are_dropped_and_counted() {
    let (mut c, _) = client(|h, _| {
        let mut v: Vec<Vec<u8>> = (0..EVENT_SLOTS + 2).map(|i| event(&format!("p{i}"), "t")).collect();
        v.push(event(&"x".repeat(EVENT_MAX), "t"));
        v.push(msg(XS_WATCH_EVENT, 0, b"no-nul"));
        v.push(msg(h.type_, h.req_id, b"OK\0"));
        v
    });
    // Freed slots are not refilled: this reply comes after all of them.
    c.rm(XBT_NIL, "x").unwrap();
    assert_eq!(c.queued_events(), EVENT_SLOTS);
    assert_eq!(c.dropped_events(), 4);
}

#[test]
fn an_event_too_big_for_the_callers_buffer_is_erange() {
    let (mut c, _) = client(|h, _| std::vec![event("a/long/path", "t"), msg(h.type_, h.req_id, b"OK\0")]);
    c.mkdir(XBT_NIL, "x").unwrap();
    let mut ev = [0u8; 4];
    assert_eq!(c.next_watch_event(&mut ev, 0), Err(-ERANGE));
}

#[test]
fn a_stale_reply_with_another_req_id_is_skipped() {
    let (mut c, _) =
        client(|h, _| std::vec![msg(h.type_, h.req_id.wrapping_sub(1), b"stale"), msg(XS_ERROR, 999, b"EIO\0"), msg(h.type_, h.req_id, b"fresh")]);
    let mut buf = [0u8; 16];
    assert_eq!(c.read_str(XBT_NIL, "x", &mut buf), Ok("fresh"));
}

#[test]
fn a_reply_of_another_type_is_einval() {
    let (mut c, _) = client(|h, _| std::vec![msg(XS_DIRECTORY, h.req_id, b"a\0")]);
    let mut buf = [0u8; 16];
    assert_eq!(c.read(XBT_NIL, "x", &mut buf), Err(-EINVAL));
}

#[test]
fn a_silent_xenstored_times_out_after_the_patience() {
    let (mut c, _) = client(|_, _| Vec::new());
    c.set_patience(50_000_000);
    let mut buf = [0u8; 8];
    assert_eq!(c.read(XBT_NIL, "x", &mut buf), Err(-ETIMEDOUT));
    assert!(c.port.blocks <= 51, "slept {} times", c.port.blocks);
    assert!(!c.is_broken(), "the request went out whole");
}

#[test]
fn a_late_reply_to_a_timed_out_request_does_not_answer_the_next() {
    let mut first = true;
    let (mut c, _) =
        client(
            move |h, _| {
                if std::mem::take(&mut first) { Vec::new() } else { std::vec![msg(h.type_, h.req_id - 1, b"late"), msg(h.type_, h.req_id, b"new")] }
            },
        );
    c.set_patience(5_000_000);
    let mut buf = [0u8; 8];
    assert_eq!(c.read(XBT_NIL, "x", &mut buf), Err(-ETIMEDOUT));
    assert_eq!(c.read_str(XBT_NIL, "y", &mut buf), Ok("new"));
}

#[test]
fn a_garbage_header_breaks_the_connection_instead_of_being_trusted() {
    let (mut c, reqs) = client(|h, _| {
        std::vec![msg(h.type_, h.req_id, b""), Vec::from(XsdSockmsg { type_: XS_READ, req_id: h.req_id + 1, tx_id: 0, len: 0x7fff_ffff }.as_bytes())]
    });
    let mut buf = [0u8; 8];
    assert_eq!(c.read(XBT_NIL, "x", &mut buf), Ok(0));
    assert_eq!(c.read(XBT_NIL, "y", &mut buf), Err(-EIO));
    assert!(c.is_broken());
    let prod = c.mem.load(REQ_RING.prod);
    assert_eq!(c.read(XBT_NIL, "z", &mut buf), Err(-EIO), "and stays broken");
    assert_eq!(c.mem.load(REQ_RING.prod), prod, "no request sent once broken");
    assert_eq!(reqs.borrow().len(), 1);
}

#[test]
fn hostile_ring_indices_make_the_client_wait_then_time_out_without_reading_out_of_bounds() {
    let (mut c, _) = client(|_, _| Vec::new());
    c.port.every_block = Some(Box::new(|p: &mut Page| {
        p.store(RSP_RING.prod, 0xdead_beef);
        p.store(REQ_RING.cons, 0x1234_5678);
    }));
    c.set_patience(20_000_000);
    let mut buf = [0u8; 8];
    assert_eq!(c.read(XBT_NIL, "x", &mut buf), Err(-ETIMEDOUT));
}

#[test]
fn an_endless_stream_of_events_does_not_hold_a_request_past_its_patience() {
    let (mut c, _) = client(|_, _| Vec::new());
    c.port.every_block = Some(Box::new(|p: &mut Page| {
        let e = event("spam", "t");
        while RSP_RING.unread(p).is_some_and(|u| (RSP_RING.size - u) as usize >= e.len()) {
            RSP_RING.produce(p, &e);
        }
    }));
    c.set_patience(30_000_000);
    let mut buf = [0u8; 8];
    assert_eq!(c.read(XBT_NIL, "x", &mut buf), Err(-ETIMEDOUT));
    assert_eq!(c.queued_events(), EVENT_SLOTS);
}

#[test]
fn requests_and_replies_longer_than_the_ring_go_through_in_pieces() {
    let (mut c, reqs) = client(|h, p| std::vec![msg(h.type_, h.req_id, if h.type_ == XS_READ { &[b'r'; 3000][..] } else { &p[p.len() - 3..] })]);
    c.port.accept = 100;
    let value = [b'w'; 3000];
    c.request(XS_WRITE, XBT_NIL, &[b"big\0", &value], &mut [0u8; 8]).unwrap();
    assert_eq!(reqs.borrow()[0].1.len(), 3004);
    let mut buf = std::vec![0u8; 3000];
    assert_eq!(c.read(XBT_NIL, "big", &mut buf), Ok(3000));
    assert!(buf.iter().all(|&b| b == b'r'));
}

#[test]
fn a_request_that_cannot_be_sent_in_time_breaks_the_connection() {
    let (mut c, _) = client(|_, _| Vec::new());
    c.port.accept = 0;
    c.set_patience(10_000_000);
    assert_eq!(c.write(XBT_NIL, "big", &[b'w'; 2000]), Err(-ETIMEDOUT));
    assert!(c.is_broken(), "a half-sent request leaves the stream out of step");
}

#[test]
fn transactions_carry_their_id_and_end_with_t_or_f() {
    let (mut c, reqs) = client(|h, _| match h.type_ {
        XS_TRANSACTION_START => std::vec![msg(h.type_, h.req_id, b"42\0")],
        XS_TRANSACTION_END if h.tx_id == 42 => std::vec![msg(XS_ERROR, h.req_id, b"EAGAIN\0")],
        _ => std::vec![msg(h.type_, h.req_id, b"OK\0")],
    });
    let tx = c.transaction_start().unwrap();
    assert_eq!(tx, 42);
    c.write(tx, "a", b"1").unwrap();
    assert_eq!(c.transaction_end(tx, true), Err(-EAGAIN));
    let r = reqs.borrow();
    assert_eq!((r[0].0.tx_id, r[0].1.as_slice()), (0, &b"\0"[..]));
    assert_eq!(r[1].0.tx_id, 42);
    assert_eq!((r[2].0.type_, r[2].0.tx_id, r[2].1.as_slice()), (XS_TRANSACTION_END, 42, &b"T\0"[..]));
}

#[test]
fn a_transaction_id_that_is_not_a_number_is_einval() {
    let (mut c, _) = client(answer(b"zz\0"));
    assert_eq!(c.transaction_start(), Err(-EINVAL));
}

#[test]
fn get_domain_path_sends_the_domid_in_decimal_and_strips_the_nul() {
    let (mut c, reqs) = client(answer(b"/local/domain/12\0"));
    let mut buf = [0u8; 32];
    let n = c.get_domain_path(12, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"/local/domain/12");
    assert_eq!(reqs.borrow()[0].1, b"12\0");
}

#[test]
fn watch_and_unwatch_send_path_and_token_each_with_a_nul() {
    let (mut c, reqs) = client(answer(b"OK\0"));
    c.watch("control/shutdown", "sd").unwrap();
    c.unwatch("control/shutdown", "sd").unwrap();
    let r = reqs.borrow();
    assert_eq!((r[0].0.type_, r[0].1.as_slice()), (XS_WATCH, &b"control/shutdown\0sd\0"[..]));
    assert_eq!((r[1].0.type_, r[1].1.as_slice()), (XS_UNWATCH, &b"control/shutdown\0sd\0"[..]));
}

#[test]
fn waiting_for_an_event_that_never_comes_times_out() {
    let (mut c, _) = client(|_, _| Vec::new());
    let mut ev = [0u8; 64];
    assert_eq!(c.next_watch_event(&mut ev, 3_000_000), Err(-ETIMEDOUT));
}

// ---- XenbusState

#[test]
fn switch_state_writes_the_number_to_dir_state() {
    let (mut c, reqs) = client(answer(b"OK\0"));
    switch_state(&mut c, "device/vif/0", XENBUS_STATE_CONNECTED).unwrap();
    assert_eq!(reqs.borrow()[0].1, b"device/vif/0/state\x004");
}

#[test]
fn a_missing_or_garbage_state_reads_as_unknown() {
    let (mut c, _) = client(|h, p| {
        std::vec![match p {
            b"a/state\0" => msg(XS_ERROR, h.req_id, b"ENOENT\0"),
            b"b/state\0" => msg(h.type_, h.req_id, b"banana"),
            b"c/state\0" => msg(h.type_, h.req_id, b"9"),
            b"d/state\0" => msg(XS_ERROR, h.req_id, b"EACCES\0"),
            _ => msg(h.type_, h.req_id, b"6"),
        }]
    });
    assert_eq!(read_state(&mut c, "a"), Ok(XENBUS_STATE_UNKNOWN));
    assert_eq!(read_state(&mut c, "b"), Ok(XENBUS_STATE_UNKNOWN));
    assert_eq!(read_state(&mut c, "c"), Ok(XENBUS_STATE_UNKNOWN), "past Reconfigured");
    assert_eq!(read_state(&mut c, "d"), Err(-xen_public::errno::EACCES));
    assert_eq!(read_state(&mut c, "e"), Ok(XENBUS_STATE_CLOSED));
    assert_eq!(state_name(XENBUS_STATE_INIT_WAIT), "InitWait");
}

#[test]
fn wait_for_state_follows_the_watch_until_the_state_comes_and_unwatches() {
    // The backend's state moves 1 -> 2 -> 4, one step per read.
    let mut reads = 0;
    let (mut c, reqs) = client(move |h, _| match h.type_ {
        XS_READ => {
            reads += 1;
            let s: &[u8] = [b"1", b"2", b"4"][(reads - 1).min(2)];
            std::vec![event("backend/vif/1/0/state", STATE_TOKEN), msg(h.type_, h.req_id, s)]
        }
        XS_WATCH => std::vec![msg(h.type_, h.req_id, b"OK\0"), event("backend/vif/1/0/state", STATE_TOKEN), event("other", "keep")],
        _ => std::vec![msg(h.type_, h.req_id, b"OK\0")],
    });
    wait_for_state(&mut c, "backend/vif/1/0", XENBUS_STATE_CONNECTED, 1_000_000_000).unwrap();
    let r = reqs.borrow();
    assert_eq!((r[0].0.type_, r[0].1.as_slice()), (XS_WATCH, &b"backend/vif/1/0/state\0xenbus-state\0"[..]));
    assert_eq!(r.iter().filter(|m| m.0.type_ == XS_READ).count(), 3);
    assert_eq!(r.last().unwrap().0.type_, XS_UNWATCH);
    drop(r);
    let mut ev = [0u8; 64];
    assert_eq!(c.wait_watch_event(Some("keep"), &mut ev, 0).map(|e| e.path), Ok("other"), "other tokens' events stay queued");
}

#[test]
fn wait_for_state_gives_up_after_its_patience_and_still_unwatches() {
    let (mut c, reqs) = client(|h, _| match h.type_ {
        XS_WATCH => std::vec![msg(XS_ERROR, h.req_id, b"EEXIST\0")],
        XS_READ => std::vec![msg(h.type_, h.req_id, b"1")],
        _ => std::vec![msg(h.type_, h.req_id, b"OK\0")],
    });
    assert_eq!(wait_for_state(&mut c, "fe", XENBUS_STATE_CONNECTED, 20_000_000), Err(-ETIMEDOUT));
    assert_eq!(reqs.borrow().last().unwrap().0.type_, XS_UNWATCH);
    let _ = EEXIST;
}

// ---- raw frames (for the hostile-client boot test)

#[test]
fn send_raw_puts_the_bytes_on_the_ring_unchecked_and_wait_reply_matches_the_req_id() {
    let (mut c, reqs) = client(|h, _| std::vec![msg(XS_ERROR, h.req_id, b"ENOSYS\0")]);
    let id = c.next_req_id_for_tests();
    let bad = msg(9999, id, b"x");
    c.send_raw(&bad).unwrap();
    assert_eq!(reqs.borrow().last().map(|(h, p)| (h.type_, h.req_id, p.clone())), None, "nothing served before a wait");
    assert_eq!(c.wait_reply(id, &mut [0u8; 8], 1_000_000_000), Err(-xen_public::errno::ENOSYS));
    assert_eq!(reqs.borrow()[0].0.type_, 9999, "sent exactly as given");
    // The next ordinary request gets a later id and still works.
    assert_ne!(c.next_req_id_for_tests(), id);
}

#[test]
fn wait_reply_of_an_unanswered_raw_frame_times_out_after_its_patience() {
    let (mut c, _) = client(|_, _| Vec::new());
    let id = c.next_req_id_for_tests();
    c.send_raw(&msg(XS_READ, id, b"a\0")).unwrap();
    let before = c.port_mut().now;
    assert_eq!(c.wait_reply(id, &mut [0u8; 8], 50_000_000), Err(-ETIMEDOUT));
    assert!(c.port_mut().now - before <= 52_000_000, "bounded by the patience given");
    assert!(!c.is_broken(), "a timeout alone does not break the connection");
}

#[test]
fn wait_reply_returns_the_type_and_length_of_a_reply() {
    let (mut c, _) = client(|h, _| std::vec![msg(h.type_, h.req_id, b"v1")]);
    let id = c.next_req_id_for_tests();
    c.send_raw(&msg(XS_READ, id, b"a\0")).unwrap();
    let mut out = [0u8; 8];
    assert_eq!(c.wait_reply(id, &mut out, 1_000_000_000), Ok((XS_READ, 2)));
    assert_eq!(&out[..2], b"v1");
}
