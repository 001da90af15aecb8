//! One domain's xenstore connection over its ring page: the input buffer
//! of a request not yet whole, the output not yet on the rsp ring, and the
//! pump that moves bytes between the rings and [`Xenstore`].
//!
//! Generic over [`RingMem`] (the mapped page on the target, a `Vec` in the
//! host tests). Invariants: the input buffer holds at most one request
//! (`HDR + XENSTORE_PAYLOAD_MAX` bytes); a new request is taken only when
//! the previous answer is wholly on the rsp ring (backpressure: a guest
//! that does not read its replies stops being served, nothing piles up);
//! pending output stays under [`MAX_PENDING_OUT`] or the connection
//! closes; indices a guest made up (more unread bytes than the ring
//! holds) close the connection. What a connection does never touches
//! another connection's state.
#![forbid(unsafe_code)]

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use xen_public::io::byte_ring::RingMem;
use xen_public::io::xs_wire::{REQ_RING, RSP_RING, XENSTORE_PAYLOAD_MAX, XS_RESET_WATCHES, XsdSockmsg};
use zerocopy::IntoBytes;

use super::wire::HDR;
use super::{DomId, Verdict, Xenstore};

/// The largest request: a header and the longest payload.
pub const MAX_INPUT: usize = HDR + XENSTORE_PAYLOAD_MAX as usize;
/// Output bytes a connection may have waiting for room on its rsp ring
/// (one reply and the watch events queued with it); past this it closes.
pub const MAX_PENDING_OUT: usize = 256 * 1024;
/// Requests handled per connection per pump, so a flood cannot starve
/// the other connections or dom0's shell.
pub const REQUESTS_PER_PUMP: usize = 32;

/// Why a connection was closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    /// The req ring's indices claim more unread bytes than it holds.
    CorruptReqRing,
    /// The rsp ring's indices claim more unread bytes than it holds.
    CorruptRspRing,
    /// A header xenstored cannot frame (payload past the maximum).
    BadFrame,
    /// More output waiting than [`MAX_PENDING_OUT`].
    OutputFlood,
}

impl Closed {
    /// A short description for dom0's log.
    pub fn what(self) -> &'static str {
        match self {
            Closed::CorruptReqRing => "corrupt req ring indices",
            Closed::CorruptRspRing => "corrupt rsp ring indices",
            Closed::BadFrame => "malformed message header",
            Closed::OutputFlood => "too much output pending",
        }
    }
}

/// What one pump did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pumped {
    /// Bytes were consumed or produced: kick the event channel.
    pub notify: bool,
    /// Requests answered.
    pub requests: usize,
    /// The connection was closed now.
    pub closed: Option<Closed>,
}

/// A domain's ring connection.
#[derive(Clone, Debug)]
pub struct RingConn {
    /// The domain.
    pub domid: DomId,
    input: Vec<u8>,
    out: VecDeque<Vec<u8>>,
    /// Bytes of `out`'s front message already on the ring.
    out_sent: usize,
    out_bytes: usize,
    closed: Option<Closed>,
}

impl RingConn {
    /// A fresh connection of `domid`.
    pub fn new(domid: DomId) -> RingConn {
        RingConn { domid, input: Vec::new(), out: VecDeque::new(), out_sent: 0, out_bytes: 0, closed: None }
    }

    /// Why the connection was closed, if it was.
    pub fn closed(&self) -> Option<Closed> {
        self.closed
    }

    /// Output bytes waiting for room on the rsp ring.
    pub fn pending_out(&self) -> usize {
        self.out_bytes - self.out_sent
    }

    /// Serve the connection: flush output, take requests (at most
    /// [`REQUESTS_PER_PUMP`]) and hand them to `xs`, queue the answers and
    /// the connection's watch events. A closed connection does nothing.
    pub fn pump(&mut self, xs: &mut Xenstore, page: &mut impl RingMem) -> Pumped {
        let mut p = Pumped::default();
        if self.closed.is_some() {
            return p;
        }
        if let Err(why) = self.serve(xs, page, &mut p) {
            self.close(xs, why);
            p.closed = Some(why);
        }
        p
    }

    fn serve(&mut self, xs: &mut Xenstore, page: &mut impl RingMem, p: &mut Pumped) -> Result<(), Closed> {
        loop {
            p.notify |= self.flush(page)?;
            if !self.out.is_empty() {
                return Ok(());
            }
            if p.requests < REQUESTS_PER_PUMP {
                match xs.handle_frame(self.domid, &self.input) {
                    (Verdict::Reply(msgs), used) => {
                        self.input.drain(..used);
                        p.requests += 1;
                        self.queue(msgs)?;
                        continue;
                    }
                    (Verdict::Drop, _) => return Err(Closed::BadFrame),
                    (Verdict::Incomplete, _) => {}
                }
                if self.fill(page)? {
                    p.notify = true;
                    continue;
                }
            }
            let events = xs.take_events(self.domid);
            if events.is_empty() {
                return Ok(());
            }
            self.queue(events)?;
        }
    }

    /// Read what the req ring holds, up to one whole request; whether any
    /// byte came.
    fn fill(&mut self, page: &mut impl RingMem) -> Result<bool, Closed> {
        if REQ_RING.unread(page).is_none() {
            return Err(Closed::CorruptReqRing);
        }
        let have = self.input.len();
        let room = MAX_INPUT - have;
        if room == 0 {
            return Ok(false);
        }
        self.input.resize(MAX_INPUT, 0);
        let n = REQ_RING.consume(page, &mut self.input[have..]);
        self.input.truncate(have + n);
        Ok(n > 0)
    }

    /// Put as much output on the rsp ring as fits; whether any byte went.
    fn flush(&mut self, page: &mut impl RingMem) -> Result<bool, Closed> {
        let mut wrote = false;
        while let Some(front) = self.out.front() {
            if RSP_RING.unread(page).is_none() {
                return Err(Closed::CorruptRspRing);
            }
            let n = RSP_RING.produce(page, &front[self.out_sent..]);
            wrote |= n > 0;
            self.out_sent += n;
            if self.out_sent < front.len() {
                return Ok(wrote);
            }
            self.out_bytes -= front.len();
            self.out_sent = 0;
            self.out.pop_front();
        }
        Ok(wrote)
    }

    fn queue(&mut self, msgs: Vec<Vec<u8>>) -> Result<(), Closed> {
        for m in msgs {
            self.out_bytes += m.len();
            self.out.push_back(m);
        }
        if self.out_bytes > MAX_PENDING_OUT { Err(Closed::OutputFlood) } else { Ok(()) }
    }

    /// Close: forget buffered bytes, and drop the connection's watches,
    /// transactions and events in `xs` (as xenstored's `ignore_connection`;
    /// the domain stays introduced until it is released).
    fn close(&mut self, xs: &mut Xenstore, why: Closed) {
        self.closed = Some(why);
        self.input = Vec::new();
        self.out = VecDeque::new();
        self.out_sent = 0;
        self.out_bytes = 0;
        let reset = XsdSockmsg { type_: XS_RESET_WATCHES, req_id: 0, tx_id: 0, len: 0 };
        let _ = xs.handle_frame(self.domid, reset.as_bytes());
        let _ = xs.take_events(self.domid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use xen_public::io::xs_wire::{XS_ERROR, XS_READ, XS_WATCH, XS_WATCH_EVENT, XS_WRITE};
    use zerocopy::FromBytes;

    /// A xenstore ring page in host memory.
    struct Page(Vec<u8>, Vec<u8>);

    impl RingMem for Page {
        fn load(&self, off: usize) -> u32 {
            u32::from_le_bytes(self.0[off..off + 4].try_into().unwrap())
        }
        fn store(&mut self, off: usize, v: u32) {
            self.0[off..off + 4].copy_from_slice(&v.to_le_bytes());
        }
        fn byte(&self, off: usize) -> u8 {
            self.0[off]
        }
        fn set_byte(&mut self, off: usize, v: u8) {
            self.0[off] = v;
        }
    }

    fn page() -> Page {
        Page(alloc::vec![0; 4096], Vec::new())
    }

    fn msg(type_: u32, req_id: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::from(XsdSockmsg { type_, req_id, tx_id: 0, len: payload.len() as u32 }.as_bytes());
        v.extend_from_slice(payload);
        v
    }

    /// The guest's side: send `bytes` (all must fit).
    fn send(p: &mut Page, bytes: &[u8]) {
        assert_eq!(REQ_RING.produce(p, bytes), bytes.len());
    }

    /// The guest's side: read the rsp ring; every whole reply so far
    /// (a partial one stays in the page's receive buffer).
    fn replies(p: &mut Page) -> Vec<(XsdSockmsg, Vec<u8>)> {
        let mut buf = alloc::vec![0u8; 4096];
        let n = RSP_RING.consume(p, &mut buf);
        p.1.extend_from_slice(&buf[..n]);
        let mut v = Vec::new();
        while p.1.len() >= HDR {
            let h = XsdSockmsg::read_from_bytes(&p.1[..HDR]).unwrap();
            let end = HDR + h.len as usize;
            if p.1.len() < end {
                break;
            }
            v.push((h, p.1[HDR..end].to_vec()));
            p.1.drain(..end);
        }
        v
    }

    /// A home `/local/domain/<id>` the domain owns, and its connection.
    fn home(xs: &mut Xenstore, id: DomId) {
        let path = alloc::format!("/local/domain/{id}");
        super::super::client::write(xs, &path, b"").unwrap();
        super::super::client::set_perms(xs, &path, &[&alloc::format!("n{id}")]).unwrap();
        xs.introduce(id);
    }

    fn setup() -> (Xenstore, RingConn, Page) {
        let mut xs = Xenstore::new();
        home(&mut xs, 1);
        (xs, RingConn::new(1), page())
    }

    #[test]
    fn a_request_on_the_req_ring_is_answered_on_the_rsp_ring_with_a_kick() {
        let (mut xs, mut c, mut p) = setup();
        send(&mut p, &msg(XS_WRITE, 7, b"data/x\0v"));
        send(&mut p, &msg(XS_READ, 8, b"data/x\0"));
        let r = c.pump(&mut xs, &mut p);
        assert_eq!((r.notify, r.requests, r.closed), (true, 2, None));
        let got = replies(&mut p);
        assert_eq!((got[0].0.type_, got[0].0.req_id, &got[0].1[..]), (XS_WRITE, 7, &b"OK\0"[..]));
        assert_eq!((got[1].0.req_id, &got[1].1[..]), (8, &b"v"[..]));
    }

    #[test]
    fn a_request_split_across_pumps_is_answered_once_whole() {
        let (mut xs, mut c, mut p) = setup();
        let m = msg(XS_WRITE, 1, b"data/y\0hello");
        send(&mut p, &m[..10]);
        assert_eq!(c.pump(&mut xs, &mut p).requests, 0);
        assert!(replies(&mut p).is_empty());
        send(&mut p, &m[10..]);
        assert_eq!(c.pump(&mut xs, &mut p).requests, 1);
        assert_eq!(xs.tree().peek("/local/domain/1/data/y").map(|n| n.value.clone()), Some(b"hello".to_vec()));
    }

    #[test]
    fn watch_events_follow_the_reply_and_later_changes_arrive_by_pump() {
        let (mut xs, mut c, mut p) = setup();
        send(&mut p, &msg(XS_WATCH, 1, b"data\0tok\0"));
        c.pump(&mut xs, &mut p);
        let got = replies(&mut p);
        assert_eq!(got.iter().map(|g| g.0.type_).collect::<Vec<_>>(), [XS_WATCH, XS_WATCH_EVENT]);
        // dom0 writes in-process; the domain's event goes out on the next pump.
        let w = msg(XS_WRITE, 2, b"/local/domain/1/data/z\0q");
        assert!(matches!(xs.handle_frame(0, &w).0, Verdict::Reply(_)));
        assert!(c.pump(&mut xs, &mut p).notify);
        let got = replies(&mut p);
        assert_eq!((got[0].0.type_, &got[0].1[..]), (XS_WATCH_EVENT, &b"data/z\0tok\0"[..]));
    }

    #[test]
    fn a_full_rsp_ring_stops_taking_requests_until_the_guest_reads() {
        let (mut xs, mut c, mut p) = setup();
        // 1024 bytes of ring: a read of a 600-byte value twice does not fit.
        let big = alloc::vec![b'a'; 600];
        let mut w = Vec::from(&b"data/big\0"[..]);
        w.extend_from_slice(&big);
        send(&mut p, &msg(XS_WRITE, 1, &w));
        c.pump(&mut xs, &mut p);
        replies(&mut p);
        for id in 2..5 {
            send(&mut p, &msg(XS_READ, id, b"data/big\0"));
        }
        let r = c.pump(&mut xs, &mut p);
        assert_eq!(r.requests, 2, "the second reply did not fit: no third request taken");
        assert!(c.pending_out() > 0);
        let got = replies(&mut p);
        assert_eq!(got.len(), 1);
        c.pump(&mut xs, &mut p);
        c.pump(&mut xs, &mut p);
        let mut ids: Vec<u32> = replies(&mut p).iter().map(|g| g.0.req_id).collect();
        c.pump(&mut xs, &mut p);
        ids.extend(replies(&mut p).iter().map(|g| g.0.req_id));
        assert_eq!(ids, [3, 4]);
        assert_eq!(c.pending_out(), 0);
    }

    #[test]
    fn attack_made_up_req_indices_close_only_that_connection() {
        let (mut xs, mut c, mut p) = setup();
        home(&mut xs, 2);
        let (mut c2, mut p2) = (RingConn::new(2), page());
        send(&mut p, &msg(XS_WATCH, 1, b"data\0tok\0"));
        c.pump(&mut xs, &mut p);
        assert_eq!(xs.watch_count(1), 1);
        p.store(REQ_RING.prod, 5000);
        let r = c.pump(&mut xs, &mut p);
        assert_eq!(r.closed, Some(Closed::CorruptReqRing));
        assert_eq!(xs.watch_count(1), 0, "its watches went");
        assert!(xs.is_introduced(1), "still introduced until released");
        send(&mut p2, &msg(XS_WRITE, 1, b"data/a\0b"));
        assert_eq!(c2.pump(&mut xs, &mut p2).requests, 1, "the other domain carries on");
        // A closed connection serves nothing more.
        p.store(REQ_RING.prod, 0);
        p.store(REQ_RING.cons, 0);
        send(&mut p, &msg(XS_READ, 1, b"data/a\0"));
        assert_eq!(c.pump(&mut xs, &mut p), Pumped::default());
    }

    #[test]
    fn attack_made_up_rsp_indices_close_the_connection() {
        let (mut xs, mut c, mut p) = setup();
        p.store(RSP_RING.cons, 3000);
        send(&mut p, &msg(XS_READ, 1, b"data\0"));
        assert_eq!(c.pump(&mut xs, &mut p).closed, Some(Closed::CorruptRspRing));
        assert_eq!(p.load(RSP_RING.prod), 0, "nothing written");
    }

    #[test]
    fn attack_an_oversized_header_closes_the_connection() {
        let (mut xs, mut c, mut p) = setup();
        let h = XsdSockmsg { type_: XS_READ, req_id: 1, tx_id: 0, len: XENSTORE_PAYLOAD_MAX + 1 };
        send(&mut p, h.as_bytes());
        assert_eq!(c.pump(&mut xs, &mut p).closed, Some(Closed::BadFrame));
        assert_eq!(c.closed(), Some(Closed::BadFrame));
    }

    #[test]
    fn attack_garbage_types_get_error_replies_and_the_connection_stays() {
        let (mut xs, mut c, mut p) = setup();
        send(&mut p, &msg(9999, 5, b"x\0"));
        send(&mut p, &msg(XS_READ, 6, b"no-nul"));
        let r = c.pump(&mut xs, &mut p);
        assert_eq!((r.requests, r.closed), (2, None));
        let got = replies(&mut p);
        assert!(got.iter().all(|g| g.0.type_ == XS_ERROR));
        assert_eq!(got.iter().map(|g| g.0.req_id).collect::<Vec<_>>(), [5, 6]);
    }

    #[test]
    fn attack_a_flood_is_served_a_bounded_number_of_requests_per_pump() {
        let (mut xs, mut c, mut p) = setup();
        let m = msg(XS_READ, 1, b"x\0");
        for _ in 0..(1024 / m.len()) {
            send(&mut p, &m);
        }
        // The guest reads every reply at once; the pump still stops.
        let mut total = 0;
        for _ in 0..3 {
            let r = c.pump(&mut xs, &mut p);
            assert!(r.requests <= REQUESTS_PER_PUMP);
            total += r.requests;
            replies(&mut p);
        }
        assert_eq!(total, 1024 / m.len());
    }

    #[test]
    fn a_maximal_request_dribbled_in_is_buffered_whole_and_answered() {
        let (mut xs, mut c, mut p) = setup();
        // A header announcing the maximum payload, then bytes dribbled in.
        let h = XsdSockmsg { type_: XS_WRITE, req_id: 1, tx_id: 0, len: XENSTORE_PAYLOAD_MAX };
        send(&mut p, h.as_bytes());
        let mut sent = 0;
        while sent < XENSTORE_PAYLOAD_MAX as usize {
            let chunk = (XENSTORE_PAYLOAD_MAX as usize - sent).min(1000);
            let mut data = alloc::vec![b'a'; chunk];
            if sent == 0 {
                data[..7].copy_from_slice(b"data/b\0");
            }
            send(&mut p, &data);
            sent += chunk;
            c.pump(&mut xs, &mut p);
            assert!(c.input.len() <= MAX_INPUT);
        }
        let got = replies(&mut p);
        assert_eq!((got.len(), got[0].0.req_id), (1, 1), "answered (ENOSPC: past the 2048-byte node quota)");
        assert!(c.input.is_empty());
    }
}
