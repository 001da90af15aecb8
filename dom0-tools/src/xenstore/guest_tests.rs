//! End-to-end host tests: the guest runtime's xenbus client
//! (`pv_guest_kernel::xenbus`) talking to this xenstored core over an
//! in-memory ring page, as the live transport will carry it. Each name
//! states the rule checked.

use super::*;
use alloc::rc::Rc;
use core::cell::RefCell;
use pv_guest_kernel::xenbus::state::{XENBUS_STATE_CONNECTED, XENBUS_STATE_INITIALISING, read_state, switch_state, wait_for_state};
use pv_guest_kernel::xenbus::{Client, Port, WatchEvent, XBT_NIL, frame};
use xen_public::errno::{EACCES, EAGAIN, ENOENT};
use xen_public::io::byte_ring::RingMem;

/// The guest's store page, shared with the fake transport.
#[derive(Clone)]
struct Page(Rc<RefCell<Vec<u8>>>);

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

/// The transport in miniature: each time the guest sleeps, xenstored
/// takes whole requests off the req ring and its answers (and the
/// domain's pending events) go onto the rsp ring as room allows.
struct Transport {
    page: Page,
    xs: Rc<RefCell<Xenstore>>,
    domid: DomId,
    inbox: Vec<u8>,
    outbox: VecDeque<u8>,
    now: u64,
}

impl Port for Transport {
    fn notify(&mut self) {}
    fn now(&mut self) -> u64 {
        self.now
    }
    fn block(&mut self, _until: u64) {
        self.now += 1_000_000;
        let mut buf = [0u8; 1024];
        let n = REQ_RING.consume(&mut self.page, &mut buf);
        self.inbox.extend_from_slice(&buf[..n]);
        let mut xs = self.xs.borrow_mut();
        loop {
            match xs.handle_frame(self.domid, &self.inbox) {
                (Verdict::Reply(msgs), used) => {
                    self.inbox.drain(..used);
                    msgs.into_iter().for_each(|m| self.outbox.extend(m));
                }
                (Verdict::Incomplete, _) => break,
                (Verdict::Drop, _) => panic!("xenstored dropped the guest"),
            }
        }
        xs.take_events(self.domid).into_iter().for_each(|m| self.outbox.extend(m));
        let pending: Vec<u8> = self.outbox.iter().copied().collect();
        let n = RSP_RING.produce(&mut self.page, &pending);
        self.outbox.drain(..n);
    }
}

/// Domain 1 introduced with its home as libxl writes it (name, domid, an
/// empty control/shutdown it may write), and its client.
fn guest() -> (Rc<RefCell<Xenstore>>, Client<Page, Transport>) {
    let mut xs = Xenstore::new();
    xs.introduce(1);
    // The home first, owned by the domain; the nodes below inherit it.
    xs.handle(0, &req(XS_MKDIR, "/local/domain/1\0"));
    xs.handle(0, &req(XS_SET_PERMS, "/local/domain/1\0n1\0"));
    for (path, value) in [("/local/domain/1/name", "guest1"), ("/local/domain/1/domid", "1"), ("/local/domain/1/control/shutdown", "")] {
        let p = format!("{path}\0{value}");
        assert!(matches!(xs.handle(0, &req(XS_WRITE, &p)), Verdict::Reply(m) if m[0][..4] == XS_WRITE.to_le_bytes()));
    }
    xs.take_events(0);
    let xs = Rc::new(RefCell::new(xs));
    let page = Page(Rc::new(RefCell::new(alloc::vec![0; 4096])));
    let t = Transport { page: page.clone(), xs: xs.clone(), domid: 1, inbox: Vec::new(), outbox: VecDeque::new(), now: 0 };
    (xs, Client::new(page, t))
}

fn req(type_: u32, payload: &str) -> Vec<u8> {
    let mut v = Vec::from(zerocopy::IntoBytes::as_bytes(&XsdSockmsg { type_, req_id: 1, tx_id: 0, len: payload.len() as u32 }));
    v.extend_from_slice(payload.as_bytes());
    v
}

/// dom0 reads a node (bypassing the guest).
fn dom0_read(xs: &Rc<RefCell<Xenstore>>, path: &str) -> Vec<u8> {
    match xs.borrow_mut().handle(0, &req(XS_READ, &format!("{path}\0"))) {
        Verdict::Reply(m) => m[0][16..].to_vec(),
        v => panic!("{v:?}"),
    }
}

#[test]
fn guest_client_reads_its_relative_nodes_and_its_writes_land_in_its_home() {
    let (xs, mut c) = guest();
    let mut buf = [0u8; 64];
    assert_eq!(c.read_str(XBT_NIL, "name", &mut buf), Ok("guest1"));
    assert_eq!(c.read_str(XBT_NIL, "domid", &mut buf), Ok("1"));
    c.write(XBT_NIL, "data/hello", b"world").unwrap();
    assert_eq!(dom0_read(&xs, "/local/domain/1/data/hello"), b"world");
    let n = c.get_domain_path(1, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"/local/domain/1");
    let n = c.directory(XBT_NIL, "data", &mut buf).unwrap();
    assert_eq!(frame::names(&buf[..n]).collect::<Vec<_>>(), [&b"hello"[..]]);
    c.rm(XBT_NIL, "data/hello").unwrap();
    assert_eq!(c.read(XBT_NIL, "data/hello", &mut buf), Err(-ENOENT));
}

#[test]
fn guest_client_gets_xenstoreds_errno_for_what_it_may_not_touch() {
    let (_xs, mut c) = guest();
    assert_eq!(c.write(XBT_NIL, "/local/domain/0/x", b"v"), Err(-EACCES));
    assert_eq!(c.mkdir(XBT_NIL, "/tool"), Err(-EACCES));
}

#[test]
fn guest_watch_fires_at_once_and_again_when_dom0_writes_poweroff() {
    let (xs, mut c) = guest();
    c.watch("control/shutdown", "sd").unwrap();
    let mut ev = [0u8; 128];
    assert_eq!(c.next_watch_event(&mut ev, 10_000_000), Ok(WatchEvent { path: "control/shutdown", token: "sd" }));
    let mut v = [0u8; 16];
    assert_eq!(c.read_str(XBT_NIL, "control/shutdown", &mut v), Ok(""), "the initial firing sees it empty");
    xs.borrow_mut().handle(0, &req(XS_WRITE, "/local/domain/1/control/shutdown\0poweroff"));
    assert_eq!(c.next_watch_event(&mut ev, 10_000_000).map(|e| e.path), Ok("control/shutdown"));
    assert_eq!(c.read_str(XBT_NIL, "control/shutdown", &mut v), Ok("poweroff"));
    c.unwatch("control/shutdown", "sd").unwrap();
    assert_eq!(xs.borrow().watch_count(1), 0);
}

#[test]
fn guest_transaction_conflict_answers_eagain_and_a_retry_commits() {
    let (xs, mut c) = guest();
    let tx = c.transaction_start().unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(c.read(tx, "name", &mut buf), Ok(6));
    c.write(tx, "name", b"renamed").unwrap();
    xs.borrow_mut().handle(0, &req(XS_WRITE, "/local/domain/1/name\0by-dom0"));
    assert_eq!(c.transaction_end(tx, true), Err(-EAGAIN));
    assert_eq!(dom0_read(&xs, "/local/domain/1/name"), b"by-dom0");
    let tx = c.transaction_start().unwrap();
    c.write(tx, "name", b"renamed").unwrap();
    c.transaction_end(tx, true).unwrap();
    assert_eq!(dom0_read(&xs, "/local/domain/1/name"), b"renamed");
    assert_eq!(xs.borrow().txn_count(1), 0);
}

#[test]
fn xenbus_state_helpers_publish_and_wait_through_xenstored() {
    let (xs, mut c) = guest();
    switch_state(&mut c, "device/vif/0", XENBUS_STATE_INITIALISING).unwrap();
    assert_eq!(dom0_read(&xs, "/local/domain/1/device/vif/0/state"), b"1");
    assert_eq!(read_state(&mut c, "device/vif/0"), Ok(XENBUS_STATE_INITIALISING));
    // The "backend" (here the guest's own node, written by dom0) is not
    // connected: the wait times out, leaving no watch behind.
    assert_eq!(wait_for_state(&mut c, "device/vif/0", XENBUS_STATE_CONNECTED, 20_000_000), Err(-pv_guest_kernel::xenbus::ETIMEDOUT));
    assert_eq!(xs.borrow().watch_count(1), 0);
    xs.borrow_mut().handle(0, &req(XS_WRITE, "/local/domain/1/device/vif/0/state\x004"));
    wait_for_state(&mut c, "device/vif/0", XENBUS_STATE_CONNECTED, 20_000_000).unwrap();
}
