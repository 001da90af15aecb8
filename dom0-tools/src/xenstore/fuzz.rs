//! A stable-Rust fuzzer for xenstored's wire parser and request handling,
//! and the harness the malformed-message corpus tests share with it.
//!
//! Owns [`World`]: a [`Xenstore`] with dom0 in-process and three domains,
//! each speaking over its own ring page through the real transport
//! ([`RingConn::pump`] over a [`RingMem`]): domains 1 and 3 are attackers
//! (they may write a node of each other's), domain 2 a bystander with a
//! node, a watch and an open transaction; and the [`Fuzzer`], which feeds
//! mutated messages (a deterministic xorshift engine: bit flips, header
//! field changes, NULs inserted and removed, splices of corpus messages,
//! truncation, ring indices made up) to the attackers. Invariants checked
//! after every input (see [`World::check`]): no panic; every domain's
//! memory and node count within its quota, and the accounting equal to a
//! recount from scratch; the tree's parent/child links whole; dom0's nodes,
//! watches, transactions and events and the bystander's untouched, and the
//! bystander still answered correctly; every reply well-formed (its header
//! length is its payload's and at most `XENSTORE_PAYLOAD_MAX`, one reply
//! per request, in order, with the request's req_id and tx_id, an error
//! named from `xsd_errors`), and a connection closed only for a reason its
//! input gave. Host only: no I/O, no clock; the same seed replays the same
//! run.
#![forbid(unsafe_code)]

use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use xen_public::io::byte_ring::{HostPage, RingMem};
use xen_public::io::xs_wire::*;
use zerocopy::{FromBytes, IntoBytes};

use super::conn::{Closed, MAX_PENDING_OUT, RingConn};
use super::tree::{Node, Store, node_bytes};
use super::watch::Watch;
use super::wire::HDR;
use super::{DomId, EVENT_OVERHEAD, MAX_PENDING_EVENTS, Verdict, Xenstore, client};

/// The attacking domains.
pub const ATTACKERS: [DomId; 2] = [1, 3];
/// The bystander domain: nothing the attackers send may change it.
pub const BYSTANDER: DomId = 2;
/// Iterations between rebuilds of the world (so quotas do not saturate).
pub const RESET_EVERY: u64 = 2000;
/// Pump rounds one input may take before the run is called stuck.
const MAX_ROUNDS: usize = 20_000;

/// A xenstore ring page in host memory (`xenstore_domain_interface`).
pub type Page = HostPage<Vec<u8>>;

/// A zeroed page whose req and rsp indices start at `req` and `rsp` (both
/// rings empty).
pub fn page_with_indices(req: u32, rsp: u32) -> Page {
    let mut p = HostPage(alloc::vec![0; 4096]);
    for (off, v) in [(REQ_RING.cons, req), (REQ_RING.prod, req), (RSP_RING.cons, rsp), (RSP_RING.prod, rsp)] {
        p.store(off, v);
    }
    p
}

/// A message as bytes: header then payload.
pub fn msg(type_: u32, req_id: u32, tx_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::from(XsdSockmsg { type_, req_id, tx_id, len: payload.len() as u32 }.as_bytes());
    v.extend_from_slice(payload);
    v
}

/// One message received by a guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// Its header.
    pub hdr: XsdSockmsg,
    /// Its payload.
    pub payload: Vec<u8>,
}

impl Reply {
    /// The error's name if this is an `XS_ERROR`.
    pub fn error(&self) -> Option<&str> {
        (self.hdr.type_ == XS_ERROR).then(|| core::str::from_utf8(&self.payload).unwrap_or("?").trim_end_matches('\0'))
    }
}

/// What one exchange over a guest's ring did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Exchange {
    /// Replies and events received, in order.
    pub replies: Vec<Reply>,
    /// Requests xenstored answered.
    pub requests: usize,
    /// The connection was closed, and why.
    pub closed: Option<Closed>,
}

impl Exchange {
    /// The replies that are not watch events.
    pub fn answers(&self) -> impl Iterator<Item = &Reply> {
        self.replies.iter().filter(|r| r.hdr.type_ != XS_WATCH_EVENT)
    }

    /// The watch events.
    pub fn events(&self) -> impl Iterator<Item = &Reply> {
        self.replies.iter().filter(|r| r.hdr.type_ == XS_WATCH_EVENT)
    }
}

/// A guest's side of its ring connection, with a model of the framing:
/// the request headers whose answers are due, so every answer is checked
/// against its request.
#[derive(Clone, Debug)]
pub struct Guest {
    /// The domain.
    pub domid: DomId,
    /// xenstored's side of the connection.
    pub conn: RingConn,
    /// The shared ring page.
    pub page: Page,
    /// Sent bytes not yet a whole message (the model's framing).
    sent: Vec<u8>,
    /// Headers of whole requests sent and not yet answered.
    due: VecDeque<XsdSockmsg>,
    /// A header past `XENSTORE_PAYLOAD_MAX` was sent: xenstored must drop.
    expect_drop: bool,
    /// Received bytes not yet a whole message.
    recv: Vec<u8>,
    /// The guest's view of both rings is intact (no index was made up), so
    /// the framing model holds and every reply is checked.
    pub synced: bool,
    /// Transaction ids xenstored gave this guest.
    pub txids: Vec<u32>,
}

impl Guest {
    /// A fresh connection of `domid` on a page whose indices start at
    /// `req` and `rsp`.
    pub fn new(domid: DomId, req: u32, rsp: u32) -> Guest {
        Guest {
            domid,
            conn: RingConn::new(domid),
            page: page_with_indices(req, rsp),
            sent: Vec::new(),
            due: VecDeque::new(),
            expect_drop: false,
            recv: Vec::new(),
            synced: true,
            txids: Vec::new(),
        }
    }

    /// Put `bytes` on the req ring (as room allows) and pump until
    /// nothing moves, reading every reply; each reply is checked while the
    /// guest is `synced`. Err names a broken invariant.
    pub fn exchange(&mut self, xs: &mut Xenstore, bytes: &[u8]) -> Result<Exchange, String> {
        let mut ex = Exchange::default();
        let mut off = 0;
        for _ in 0..MAX_ROUNDS {
            let n = REQ_RING.produce(&mut self.page, &bytes[off..]);
            self.model_sent(&bytes[off..off + n]);
            off += n;
            let p = self.conn.pump(xs, &mut self.page);
            ex.requests += p.requests;
            ex.closed = ex.closed.or(p.closed);
            let got = self.receive(&mut ex)?;
            if p.closed.is_some() || self.conn.closed().is_some() {
                return self.judge_close(ex);
            }
            if self.conn.pending_out() > MAX_PENDING_OUT {
                return Err(format!("dom{}: {} bytes of output pending", self.domid, self.conn.pending_out()));
            }
            if n == 0 && !p.notify && got == 0 && p.requests == 0 {
                return self.judge_quiet(ex, off == bytes.len());
            }
        }
        Err(format!("dom{}: no quiescence after {MAX_ROUNDS} pump rounds", self.domid))
    }

    /// A request answered on the rsp ring: send `m` and return the one
    /// answer (events are dropped). Err if there is not exactly one.
    pub fn call(&mut self, xs: &mut Xenstore, m: &[u8]) -> Result<Reply, String> {
        let ex = self.exchange(xs, m)?;
        let mut answers: Vec<Reply> = ex.answers().cloned().collect();
        match answers.len() {
            1 => Ok(answers.remove(0)),
            n => Err(format!("dom{}: {n} answers to one request ({:?})", self.domid, ex.closed)),
        }
    }

    /// The model's framing of what went onto the req ring.
    fn model_sent(&mut self, bytes: &[u8]) {
        if self.expect_drop {
            return;
        }
        self.sent.extend_from_slice(bytes);
        while let Ok((h, _)) = XsdSockmsg::read_from_prefix(&self.sent[..]) {
            if h.len > XENSTORE_PAYLOAD_MAX {
                self.expect_drop = true;
                self.sent.clear();
                return;
            }
            let end = HDR + h.len as usize;
            if self.sent.len() < end {
                return;
            }
            self.due.push_back(h);
            self.sent.drain(..end);
        }
    }

    /// Read the rsp ring; the number of bytes read.
    fn receive(&mut self, ex: &mut Exchange) -> Result<usize, String> {
        let mut buf = alloc::vec![0u8; 4096];
        let n = RSP_RING.consume(&mut self.page, &mut buf);
        self.recv.extend_from_slice(&buf[..n]);
        while let Ok((hdr, _)) = XsdSockmsg::read_from_prefix(&self.recv[..]) {
            if hdr.len > XENSTORE_PAYLOAD_MAX {
                if self.synced {
                    return Err(format!("dom{}: a reply of {} bytes (past XENSTORE_PAYLOAD_MAX)", self.domid, hdr.len));
                }
                self.recv.clear();
                break;
            }
            let end = HDR + hdr.len as usize;
            if self.recv.len() < end {
                break;
            }
            let r = Reply { hdr, payload: self.recv[HDR..end].to_vec() };
            self.recv.drain(..end);
            if self.synced {
                self.check_reply(&r)?;
            }
            ex.replies.push(r);
        }
        Ok(n)
    }

    /// A reply against the model: an event is `path\0token\0` with ids 0;
    /// an answer matches the oldest unanswered request's req_id, tx_id and
    /// type (or is an error named in `xsd_errors`).
    fn check_reply(&mut self, r: &Reply) -> Result<(), String> {
        let d = self.domid;
        if r.hdr.type_ == XS_WATCH_EVENT {
            let nuls = r.payload.iter().filter(|&&b| b == 0).count();
            if r.hdr.req_id != 0 || r.hdr.tx_id != 0 || nuls != 2 || r.payload.last() != Some(&0) {
                return Err(format!("dom{d}: malformed watch event {:?} {:?}", r.hdr, r.payload));
            }
            return Ok(());
        }
        let Some(req) = self.due.pop_front() else {
            return Err(format!("dom{d}: an answer to no request: {:?}", r.hdr));
        };
        if (r.hdr.req_id, r.hdr.tx_id) != (req.req_id, req.tx_id) || (r.hdr.type_ != req.type_ && r.hdr.type_ != XS_ERROR) {
            return Err(format!("dom{d}: answer {:?} to request {:?}", r.hdr, req));
        }
        if r.hdr.type_ == XS_ERROR && !XSD_ERRORS.iter().any(|(name, _)| r.payload == [name.as_bytes(), b"\0"].concat()) {
            return Err(format!("dom{d}: error payload {:?} is not an xsd_errors name", r.payload));
        }
        if r.hdr.type_ == XS_TRANSACTION_START && req.type_ == XS_TRANSACTION_START {
            let id = core::str::from_utf8(&r.payload).ok().and_then(|s| s.trim_end_matches('\0').parse::<u32>().ok());
            match id {
                Some(id) if id != 0 => {
                    self.txids.retain(|&t| t != id);
                    self.txids.push(id);
                    if self.txids.len() > 16 {
                        self.txids.remove(0);
                    }
                }
                _ => return Err(format!("dom{d}: transaction id {:?}", r.payload)),
            }
        }
        Ok(())
    }

    /// The connection closed: for a reason the guest's input gave.
    fn judge_close(&mut self, ex: Exchange) -> Result<Exchange, String> {
        if self.synced {
            let why = self.conn.closed();
            let ok = match why {
                Some(Closed::BadFrame) => self.expect_drop,
                _ => false,
            };
            if !ok {
                return Err(format!("dom{}: closed ({why:?}) though its rings were intact and every header framed", self.domid));
            }
        }
        Ok(ex)
    }

    /// Nothing moves: with all bytes sent and the rings intact, every
    /// framed request was answered and a header past the maximum dropped
    /// the connection.
    fn judge_quiet(&mut self, ex: Exchange, all_sent: bool) -> Result<Exchange, String> {
        if self.synced && all_sent {
            if self.expect_drop {
                return Err(format!("dom{}: a header past XENSTORE_PAYLOAD_MAX did not close the connection", self.domid));
            }
            if !self.due.is_empty() {
                return Err(format!("dom{}: {} whole requests never answered", self.domid, self.due.len()));
            }
        }
        Ok(ex)
    }
}

/// Everything of one domain that another domain's input must not change:
/// its nodes, watches, transactions, queued events and memory charge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    nodes: Vec<(String, Node)>,
    watches: Vec<Watch>,
    txns: String,
    events: Vec<Vec<u8>>,
    memory: usize,
}

/// dom0, three domains on their rings, and the state the checks compare.
#[derive(Clone, Debug)]
pub struct World {
    /// The daemon.
    pub xs: Xenstore,
    /// Domains 1, 2 and 3, in that order.
    pub guests: Vec<Guest>,
    /// The bystander's open transaction.
    pub bystander_tx: u32,
    /// dom0's open transaction.
    pub dom0_tx: u32,
    dom0: Snapshot,
    bystander: Snapshot,
    /// Each domain's memory charge at the last check.
    memory_before: BTreeMap<DomId, usize>,
}

/// A request of dom0, in-process; the reply's payload or the error name.
fn dom0(xs: &mut Xenstore, type_: u32, tx: u32, payload: &[u8]) -> Result<Vec<u8>, String> {
    let Verdict::Reply(out) = xs.handle_frame(0, &msg(type_, 0, tx, payload)).0 else { return Err(String::from("no reply")) };
    let r = &out[0];
    let body = r[HDR..].to_vec();
    if r[..4] == XS_ERROR.to_le_bytes() { Err(String::from_utf8_lossy(&body).into_owned()) } else { Ok(body) }
}

fn expect_ok<T>(what: &str, r: Result<T, String>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("world setup: {what}: {e}"),
    }
}

impl World {
    /// The world with every guest's indices starting at `base` (a base
    /// near `u32::MAX` makes the first messages wrap).
    pub fn new(base: u32) -> World {
        let mut xs = Xenstore::new();
        for d in [1u16, 2, 3] {
            let home = format!("/local/domain/{d}");
            expect_ok("home", client::write(&mut xs, &home, b""));
            expect_ok("home perms", client::set_perms(&mut xs, &home, &[&format!("n{d}")]));
            expect_ok("name", client::write(&mut xs, &format!("{home}/name"), format!("guest{d}").as_bytes()));
            xs.introduce(d);
        }
        expect_ok("pub", client::write(&mut xs, "/tool/pub", b"public"));
        expect_ok("pub perms", client::set_perms(&mut xs, "/tool/pub", &["n0", "r1", "r3"]));
        expect_ok("secret", client::write(&mut xs, "/tool/secret", b"s"));
        expect_ok("shared", client::write(&mut xs, "/local/domain/3/shared", b"x"));
        expect_ok("shared perms", client::set_perms(&mut xs, "/local/domain/3/shared", &["n3", "b1"]));
        expect_ok("pub1", client::write(&mut xs, "/local/domain/1/pub", b"p"));
        expect_ok("pub1 perms", client::set_perms(&mut xs, "/local/domain/1/pub", &["n1", "r3"]));
        expect_ok("k", client::write(&mut xs, "/local/domain/2/data/k", b"v2"));
        expect_ok("dom0 watch", dom0(&mut xs, XS_WATCH, 0, b"/tool\0t0\0"));
        expect_ok("dom0 watch", dom0(&mut xs, XS_WATCH, 0, b"@introduceDomain\0i0\0"));
        let tx = expect_ok("dom0 tx", dom0(&mut xs, XS_TRANSACTION_START, 0, b"\0"));
        let dom0_tx = parse_id(&tx);
        expect_ok("dom0 tx read", dom0(&mut xs, XS_READ, dom0_tx, b"/tool/pub\0"));
        xs.take_events(0);
        let mut guests: Vec<Guest> = [1u16, 2, 3].into_iter().map(|d| Guest::new(d, base, base)).collect();
        let b = &mut guests[1];
        expect_ok("bystander watch", b.exchange(&mut xs, &msg(XS_WATCH, 1, 0, b"data\0bw\0")));
        let r = expect_ok("bystander tx", b.call(&mut xs, &msg(XS_TRANSACTION_START, 2, 0, b"\0")));
        let bystander_tx = parse_id(&r.payload);
        expect_ok("bystander tx write", b.call(&mut xs, &msg(XS_WRITE, 3, bystander_tx, b"data/t\0pending")));
        let mut w = World { xs, guests, bystander_tx, dom0_tx, dom0: empty_snapshot(), bystander: empty_snapshot(), memory_before: BTreeMap::new() };
        expect_ok("bystander answers", w.bystander_answers());
        w.dom0 = w.snapshot(0);
        w.bystander = w.snapshot(BYSTANDER);
        w
    }

    /// The guest of `domid`.
    pub fn guest(&mut self, domid: DomId) -> &mut Guest {
        let i = self.index(domid);
        &mut self.guests[i]
    }

    fn index(&self, domid: DomId) -> usize {
        self.guests.iter().position(|g| g.domid == domid).expect("a world domain")
    }

    /// `domid` sends `bytes`; the others' rings are then pumped too (events
    /// the change fired go out).
    pub fn send(&mut self, domid: DomId, bytes: &[u8]) -> Result<Exchange, String> {
        let i = self.index(domid);
        let ex = self.guests[i].exchange(&mut self.xs, bytes)?;
        for j in 0..self.guests.len() {
            if j != i && self.guests[j].conn.closed().is_none() {
                let other = self.guests[j].exchange(&mut self.xs, &[])?;
                if self.guests[j].domid == BYSTANDER && !other.replies.is_empty() {
                    return Err(format!("the bystander received {:?}", other.replies));
                }
            }
        }
        Ok(ex)
    }

    /// A fresh connection for `domid` (after a close, or made-up indices).
    pub fn reconnect(&mut self, domid: DomId, base: u32) {
        *self.guest(domid) = Guest::new(domid, base, base);
    }

    /// What `domid` holds that no other domain may change.
    pub fn snapshot(&self, domid: DomId) -> Snapshot {
        let home = super::tree::domain_path(domid);
        let mine = |p: &str, n: &Node| {
            if domid == 0 { n.perms.owner() == 0 } else { p == home || p.strip_prefix(home.as_str()).is_some_and(|r| r.starts_with('/')) }
        };
        let t = self.xs.tree();
        let nodes: Vec<(String, Node)> =
            t.paths().filter_map(|p| t.peek(p).filter(|n| mine(p, n)).map(|n| (p.clone(), without_attacker_homes(p, n)))).collect();
        let c = &self.xs.conns[&domid];
        let memory = nodes.iter().map(|(p, n)| node_bytes(p, n)).sum::<usize>() + c.bytes();
        Snapshot { nodes, watches: c.watches.clone(), txns: format!("{:?}", c.txns), events: c.events.iter().cloned().collect(), memory }
    }

    /// The bystander, over its ring, reads its node and its transaction's
    /// pending write, and gets both right.
    pub fn bystander_answers(&mut self) -> Result<(), String> {
        let tx = self.bystander_tx;
        let i = self.index(BYSTANDER);
        let b = &mut self.guests[i];
        if !b.synced || b.conn.closed().is_some() {
            return Err(format!("the bystander's connection: synced {} closed {:?}", b.synced, b.conn.closed()));
        }
        for (m, want) in [(msg(XS_READ, 10, 0, b"data/k\0"), &b"v2"[..]), (msg(XS_READ, 11, tx, b"data/t\0"), b"pending")] {
            let r = b.call(&mut self.xs, &m)?;
            if r.payload != want {
                return Err(format!("the bystander read {:?} for {:?}", r.payload, want));
            }
        }
        Ok(())
    }

    /// Every invariant (see the module doc). Err names the first broken.
    pub fn check(&mut self) -> Result<(), String> {
        self.check_after(None)
    }

    /// [`World::check`] after an input in which `committer` committed a
    /// transaction: another domain's memory may then pass its quota by
    /// what the commit added to nodes it owns (Xen 4.17's
    /// finalize_transaction writes them with no quota check), but no
    /// domain's charge grows past its quota otherwise, and the domUs'
    /// total stays within their quotas' sum.
    pub fn check_after(&mut self, committer: Option<DomId>) -> Result<(), String> {
        self.check_accounting(committer)?;
        self.check_links()?;
        if self.snapshot(0) != self.dom0 {
            return Err(format!("dom0 changed: {:?} -> {:?}", self.dom0, self.snapshot(0)));
        }
        if self.snapshot(BYSTANDER) != self.bystander {
            return Err(format!("the bystander changed: {:?} -> {:?}", self.bystander, self.snapshot(BYSTANDER)));
        }
        self.bystander_answers()
    }

    /// Each domain within its quotas, and every count equal to a recount.
    fn check_accounting(&mut self, committer: Option<DomId>) -> Result<(), String> {
        let (xs, q) = (&self.xs, &self.xs.quota);
        let mut bytes: BTreeMap<DomId, usize> = BTreeMap::new();
        let mut count: BTreeMap<DomId, u32> = BTreeMap::new();
        for p in xs.tree().paths() {
            let n = xs.tree().peek(p).expect("listed");
            *bytes.entry(n.perms.owner()).or_default() += node_bytes(p, n);
            *count.entry(n.perms.owner()).or_default() += 1;
        }
        for d in [0u16, 1, 2, 3] {
            let (b, c) = (bytes.get(&d).copied().unwrap_or(0), count.get(&d).copied().unwrap_or(0));
            if xs.tree().bytes(d) != b || Store::count(xs.tree(), d) != c {
                return Err(format!("dom{d}: tree counts {} bytes {} nodes, recount {b} {c}", xs.tree().bytes(d), Store::count(xs.tree(), d)));
            }
            let conn = &xs.conns[&d];
            let ev: usize = conn.events.iter().map(|e| e.len() + EVENT_OVERHEAD).sum();
            if ev != conn.event_bytes || conn.events.len() > MAX_PENDING_EVENTS {
                return Err(format!("dom{d}: {} events counted as {} bytes, recount {ev}", conn.events.len(), conn.event_bytes));
            }
            if d == 0 {
                continue;
            }
            let (now, before) = (xs.memory(d), self.memory_before.get(&d).copied().unwrap_or(0));
            let by_commit = committer.is_some_and(|c| c != d);
            if (now > q.memory && now > before && !by_commit) || c > q.nodes {
                return Err(format!("dom{d}: {now} bytes (was {before}), {c} nodes: past its quota ({}, {})", q.memory, q.nodes));
            }
            if conn.watches.len() > q.watches + 1 || conn.txns.len() > q.transactions + 1 {
                return Err(format!("dom{d}: {} watches, {} transactions", conn.watches.len(), conn.txns.len()));
            }
        }
        let total: usize = [1u16, 2, 3].iter().map(|&d| xs.memory(d)).sum();
        if total > 3 * q.memory {
            return Err(format!("the domUs hold {total} bytes, past their quotas' sum"));
        }
        self.memory_before = [1u16, 2, 3].iter().map(|&d| (d, xs.memory(d))).collect();
        Ok(())
    }

    /// Every node but `/` is listed once in its parent's children, and
    /// every child listed exists.
    fn check_links(&self) -> Result<(), String> {
        let t = self.xs.tree();
        for p in t.paths() {
            let n = t.peek(p).expect("listed");
            for c in &n.children {
                let child = if p == "/" { format!("/{c}") } else { format!("{p}/{c}") };
                if t.peek(&child).is_none() {
                    return Err(format!("{p} lists a missing child {c}"));
                }
            }
            if p == "/" {
                continue;
            }
            let (up, name) = p.rsplit_once('/').expect("absolute");
            let up = if up.is_empty() { "/" } else { up };
            let listed = t.peek(up).map_or(0, |pn| pn.children.iter().filter(|c| *c == name).count());
            if listed != 1 {
                return Err(format!("{p} is listed {listed} times in its parent"));
            }
        }
        Ok(())
    }

    /// The end of a world: the bystander's and dom0's transactions still
    /// commit, with what they wrote.
    pub fn finish(&mut self) -> Result<(), String> {
        let (tx, i) = (self.bystander_tx, self.index(BYSTANDER));
        let r = self.guests[i].call(&mut self.xs, &msg(XS_TRANSACTION_END, 12, tx, b"T\0"))?;
        if r.payload != b"OK\0" {
            return Err(format!("the bystander's transaction ended with {:?}", r.payload));
        }
        if client::read(&mut self.xs, "/local/domain/2/data/t").as_deref() != Ok(&b"pending"[..]) {
            return Err(String::from("the bystander's committed write is missing"));
        }
        dom0(&mut self.xs, XS_TRANSACTION_END, self.dom0_tx, b"T\0").map(drop).map_err(|e| format!("dom0's transaction ended with {e}"))
    }
}

/// `n` as the snapshot keeps it: `/local/domain` without the attackers'
/// homes and its generation. A domain may remove its own home, which
/// changes that dom0 node (Xen 4.17's do_rm checks write permission on the
/// node only, not on its parent).
fn without_attacker_homes(path: &str, n: &Node) -> Node {
    let mut n = n.clone();
    if path == "/local/domain" {
        n.children.retain(|c| ATTACKERS.iter().all(|a| *c != format!("{a}")));
        n.generation = 0;
    }
    n
}

fn empty_snapshot() -> Snapshot {
    Snapshot { nodes: Vec::new(), watches: Vec::new(), txns: String::new(), events: Vec::new(), memory: 0 }
}

fn parse_id(p: &[u8]) -> u32 {
    core::str::from_utf8(p).ok().and_then(|s| s.trim_end_matches('\0').parse().ok()).expect("a transaction id")
}

/// xorshift64*: small, deterministic, good enough to pick mutations.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// Seeded (a zero seed is replaced: xorshift needs a non-zero state).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len())]
    }
}

/// A made-up ring index: the u32 at page offset `offset` becomes `value`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingAction {
    /// Page offset of the index (`REQ_RING.prod`, ...).
    pub offset: usize,
    /// Its new value.
    pub value: u32,
}

/// One fuzz input: bytes an attacker puts on its req ring, after an
/// optional made-up ring index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// The attacker.
    pub domid: DomId,
    /// A made-up index, applied first.
    pub ring: Option<RingAction>,
    /// The bytes.
    pub bytes: Vec<u8>,
}

impl Input {
    /// One line: the domain, the ring action and the bytes in hex.
    pub fn describe(&self) -> String {
        let hex: String = self.bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!("dom{} ring {:?} bytes[{}] {hex}", self.domid, self.ring, self.bytes.len())
    }
}

/// A broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The run's seed.
    pub seed: u64,
    /// The iteration (replay: the same seed, `iteration + 1` iterations).
    pub iteration: u64,
    /// The input that broke it.
    pub input: Input,
    /// Which invariant, and how.
    pub what: String,
}

/// What a run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// Inputs sent.
    pub inputs: u64,
    /// Requests xenstored answered for the attackers.
    pub requests: u64,
    /// Of those, answered with `XS_ERROR`, by error name.
    pub errors: BTreeMap<String, u64>,
    /// Connections xenstored dropped, by reason.
    pub drops: BTreeMap<String, u64>,
    /// Inputs that made up a ring index.
    pub ring_actions: u64,
    /// Worlds built (one per [`RESET_EVERY`] iterations).
    pub worlds: u64,
    /// The first broken invariant; the run stops there.
    pub failure: Option<Failure>,
}

impl Report {
    /// Errors answered in all.
    pub fn errors_total(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Connections dropped in all.
    pub fn drops_total(&self) -> u64 {
        self.drops.values().sum()
    }
}

/// The corpus the mutations start from: well-formed requests of every
/// type, on paths inside and outside the sender's reach, and the malformed
/// classes (missing NULs, bad paths, unknown types).
pub fn corpus() -> Vec<(u32, Vec<u8>)> {
    let long = "a".repeat(XENSTORE_REL_PATH_MAX as usize + 1);
    let mut v: Vec<(u32, Vec<u8>)> = Vec::new();
    let paths: [&[u8]; 16] = [
        b"data/x",
        b"name",
        b"data",
        b"/local/domain/3/shared",
        b"/local/domain/3/shared/c",
        b"/local/domain/1/pub",
        b"/local/domain/2/data/k",
        b"/tool/pub",
        b"/tool/secret",
        b"/local/domain/0",
        b"../2/data/k",
        b"",
        b"/",
        b"a//b",
        b"@releaseDomain",
        b"x/y/z/w",
    ];
    for p in paths {
        let one = [p, b"\0"].concat();
        for t in [XS_READ, XS_DIRECTORY, XS_GET_PERMS, XS_MKDIR, XS_RM] {
            v.push((t, one.clone()));
        }
        v.push((XS_WRITE, [p, b"\0value"].concat()));
        v.push((XS_WATCH, [p, b"\0tok\0"].concat()));
        v.push((XS_UNWATCH, [p, b"\0tok\0"].concat()));
        v.push((XS_SET_PERMS, [p, b"\0n1\0r3\0"].concat()));
    }
    let fixed: [(u32, &[u8]); 26] = [
        (XS_WRITE, b"data/big\0"),
        (XS_SET_PERMS, b"data\0n3\0"),
        (XS_SET_PERMS, b"data\0n1\0r2\0r3\0r4\0r5\0r6\0"),
        (XS_SET_PERMS, b"data\0q1\0"),
        (XS_SET_PERMS, b"@releaseDomain\0n1\0"),
        (XS_WATCH, b"@introduceDomain\0i\0"),
        (XS_WATCH, b"@foo\0f\0"),
        (XS_WATCH, b"/\0all\0"),
        (XS_TRANSACTION_START, b"\0"),
        (XS_TRANSACTION_START, b"\0"),
        (XS_TRANSACTION_END, b"T\0"),
        (XS_TRANSACTION_END, b"F\0"),
        (XS_TRANSACTION_END, b"X\0"),
        (XS_GET_DOMAIN_PATH, b"2\0"),
        (XS_GET_DOMAIN_PATH, b"99999999999\0"),
        (XS_IS_DOMAIN_INTRODUCED, b"2\0"),
        (XS_RESET_WATCHES, b""),
        (XS_INTRODUCE, b"5\x000\x001\0"),
        (XS_RELEASE, b"2\0"),
        (XS_CONTROL, b"print\0x\0"),
        (XS_DIRECTORY_PART, b"data\x000\0"),
        (XS_SET_TARGET, b"2\x001\0"),
        (XS_RESUME, b"2\0"),
        (XS_ERROR, b"EINVAL\0"),
        (XS_WATCH_EVENT, b"data\0tok\0"),
        (9999, b"x\0"),
    ];
    v.extend(fixed.iter().map(|(t, p)| (*t, Vec::from(*p))));
    let mut big = Vec::from(&b"data/big\0"[..]);
    big.resize(2000, b'b');
    v.push((XS_WRITE, big));
    v.push((XS_READ, format!("{long}\0").into_bytes()));
    v.push((XS_WRITE, format!("data/{long}\0v").into_bytes()));
    v.push((XS_READ, b"/local/domain/1".to_vec()));
    v.push((XS_WRITE, b"data/nonul".to_vec()));
    v.push((XS_READ, b"data/\xff\0".to_vec()));
    v
}

/// Junk a mutation inserts into a payload.
const JUNK: [&[u8]; 10] = [b"..", b"/", b"//", b"@", b"\xff", b".", b"\0", b"/local/domain/2/", b" ", b"%s"];

/// The fuzzer: a world, a random stream, and the counters.
#[derive(Clone, Debug)]
pub struct Fuzzer {
    /// The world inputs go to.
    pub world: World,
    rng: Rng,
    corpus: Vec<(u32, Vec<u8>)>,
    /// The next iteration's index.
    pub iteration: u64,
    /// The counts so far.
    pub report: Report,
}

impl Fuzzer {
    /// A fuzzer seeded with `seed`.
    pub fn new(seed: u64) -> Fuzzer {
        let mut rng = Rng::new(seed);
        let base = index_base(&mut rng);
        let report = Report { seed, worlds: 1, ..Report::default() };
        Fuzzer { world: World::new(base), rng, corpus: corpus(), iteration: 0, report }
    }

    /// The next input (and, every [`RESET_EVERY`] iterations, a fresh
    /// world first: Err if the old one's transactions no longer commit).
    pub fn next_input(&mut self) -> Result<Input, String> {
        if self.iteration > 0 && self.iteration.is_multiple_of(RESET_EVERY) {
            self.world.finish()?;
            self.world = World::new(index_base(&mut self.rng));
            self.report.worlds += 1;
        }
        let domid = self.rng.pick(&ATTACKERS);
        let g = self.world.guest(domid);
        if g.conn.closed().is_some() || !g.synced {
            let base = index_base(&mut self.rng);
            self.world.reconnect(domid, base);
        }
        let txids = self.world.guest(domid).txids.clone();
        let n = 1 + self.rng.below(4);
        let mut msgs: Vec<Vec<u8>> = (0..n).map(|_| self.pick_message(&txids)).collect();
        // Two inputs in five are well-formed traffic, so state builds up.
        let rate = if self.rng.chance(40) { 0 } else { 60 };
        for m in &mut msgs {
            if self.rng.chance(rate) {
                self.mutate_message(m, &txids);
            }
        }
        let mut bytes = msgs.concat();
        if rate > 0 && self.rng.chance(12) {
            self.mutate_stream(&mut bytes);
        }
        let ring = if self.rng.chance(3) { Some(self.ring_action(domid)) } else { None };
        Ok(Input { domid, ring, bytes })
    }

    /// Send `input` and check every invariant.
    pub fn execute(&mut self, input: &Input) -> Result<(), String> {
        self.iteration += 1;
        self.report.inputs += 1;
        if let Some(a) = input.ring {
            self.report.ring_actions += 1;
            let g = self.world.guest(input.domid);
            let was = g.page.load(a.offset);
            g.page.store(a.offset, a.value);
            // Moving an index desynchronises the guest's view, unless it
            // moved an empty ring's two indices together (a valid rebase).
            g.synced &= was == a.value;
        }
        let ex = self.world.send(input.domid, &input.bytes)?;
        self.report.requests += ex.requests as u64;
        for r in ex.answers() {
            if let Some(e) = r.error() {
                *self.report.errors.entry(String::from(e)).or_default() += 1;
            }
        }
        if let Some(why) = ex.closed {
            *self.report.drops.entry(String::from(why.what())).or_default() += 1;
        }
        let committed = ex.answers().any(|r| r.hdr.type_ == XS_TRANSACTION_END) || !self.world.guest(input.domid).synced;
        self.world.check_after(committed.then_some(input.domid))
    }

    /// One iteration: Err is the failure (the run's seed, the iteration,
    /// the input and the broken invariant).
    pub fn step(&mut self) -> Result<(), Failure> {
        self.step_with(|_, _| {})
    }

    /// [`Fuzzer::step`], telling `before` the iteration and input about to
    /// run (so a caller can say where a panic happened).
    pub fn step_with(&mut self, before: impl FnOnce(u64, &Input)) -> Result<(), Failure> {
        let (seed, iteration) = (self.report.seed, self.iteration);
        let input = match self.next_input() {
            Ok(i) => i,
            Err(what) => return Err(Failure { seed, iteration, input: Input { domid: 0, ring: None, bytes: Vec::new() }, what }),
        };
        before(iteration, &input);
        self.execute(&input).map_err(|what| Failure { seed, iteration, input, what })
    }

    fn pick_message(&mut self, txids: &[u32]) -> Vec<u8> {
        let (t, p) = if self.rng.chance(35) { self.generated() } else { self.corpus[self.rng.below(self.corpus.len())].clone() };
        let tx = match self.rng.below(10) {
            0..=6 => 0,
            7 | 8 if !txids.is_empty() => self.rng.pick(txids),
            _ => self.rng.below(4) as u32,
        };
        msg(t, self.rng.next_u64() as u32, tx, &p)
    }

    /// A well-formed request on a fresh name, so state (nodes, watches,
    /// transactions, queued events) builds up to the quotas: a write of up
    /// to 2 KiB, a mkdir, a watch, a transaction start, in the attacker's
    /// home or in the node the other attacker shares with it.
    fn generated(&mut self) -> (u32, Vec<u8>) {
        let dir = self.rng.pick(&["data", "/local/domain/3/shared", "a/b/c/d/e/f/g/h", "/local/domain/1/pub"]);
        let name = format!("{dir}/n{}", self.rng.below(3000));
        let mut p = format!("{name}\0").into_bytes();
        match self.rng.below(6) {
            0 | 1 => {
                let n = self.rng.pick(&[0usize, 8, 300, 1900, 1900, 2100]);
                p.resize(p.len() + n, b'v');
                (XS_WRITE, p)
            }
            2 => (XS_MKDIR, p),
            3 => {
                p.extend_from_slice(format!("t{}\0", self.rng.below(8)).as_bytes());
                (XS_WATCH, p)
            }
            4 => (XS_TRANSACTION_START, Vec::from(&b"\0"[..])),
            _ => (self.rng.pick(&[XS_READ, XS_RM, XS_DIRECTORY]), p),
        }
    }

    /// 1 to 3 changes to one message's header or payload; the header's
    /// length is usually fixed up to the new payload.
    fn mutate_message(&mut self, m: &mut Vec<u8>, txids: &[u32]) {
        for _ in 0..1 + self.rng.below(3) {
            let plen = m.len() - HDR;
            match self.rng.below(12) {
                0 => {
                    let i = self.rng.below(m.len());
                    m[i] ^= 1 << self.rng.below(8);
                }
                1 => {
                    let t = if self.rng.chance(80) { self.rng.below(26) as u32 } else { self.rng.next_u64() as u32 };
                    m[0..4].copy_from_slice(&t.to_le_bytes());
                }
                2 => {
                    let r = self.rng.next_u64() as u32;
                    m[4..8].copy_from_slice(&r.to_le_bytes());
                }
                3 => {
                    let t = match self.rng.below(4) {
                        0 => 0,
                        1 if !txids.is_empty() => self.rng.pick(txids),
                        2 => u32::MAX,
                        _ => self.rng.below(20) as u32,
                    };
                    m[8..12].copy_from_slice(&t.to_le_bytes());
                }
                4 => {
                    let max = XENSTORE_PAYLOAD_MAX;
                    let any = self.rng.below(5000) as u32;
                    let l = self.rng.pick(&[0, max, max + 1, u32::MAX, plen as u32 + 1, (plen as u32).saturating_sub(1), any]);
                    m[12..16].copy_from_slice(&l.to_le_bytes());
                    continue;
                }
                5 => {
                    let i = HDR + self.rng.below(plen + 1);
                    m.insert(i, 0);
                }
                6 => {
                    if let Some(i) = nth_nul(&m[HDR..], &mut self.rng) {
                        m.remove(HDR + i);
                    }
                }
                7 => {
                    if let Some(i) = nth_nul(&m[HDR..], &mut self.rng) {
                        m[HDR + i] = b'a';
                    }
                }
                8 => m.truncate(HDR + self.rng.below(plen + 1)),
                9 => {
                    let (_, other) = &self.corpus[self.rng.below(self.corpus.len())];
                    let at = HDR + self.rng.below(plen + 1);
                    let from = self.rng.below(other.len() + 1);
                    m.truncate(at);
                    m.extend_from_slice(&other[from..]);
                }
                10 => {
                    let j = self.rng.pick(&JUNK);
                    let at = HDR + self.rng.below(plen + 1);
                    m.splice(at..at, j.iter().copied());
                }
                _ => {
                    let n = if self.rng.chance(50) { 2100 } else { 1 + self.rng.below(64) };
                    let at = HDR + self.rng.below(plen + 1);
                    m.splice(at..at, core::iter::repeat_n(b'a', n));
                }
            }
            if self.rng.chance(95) {
                let l = (m.len() - HDR) as u32;
                m[12..16].copy_from_slice(&l.to_le_bytes());
            }
        }
    }

    /// A change to the whole stream: a cut, a flipped bit, or a corpus
    /// message or a copied range spliced in anywhere.
    fn mutate_stream(&mut self, b: &mut Vec<u8>) {
        match self.rng.below(4) {
            0 => b.truncate(self.rng.below(b.len() + 1)),
            1 if !b.is_empty() => {
                let i = self.rng.below(b.len());
                b[i] ^= 1 << self.rng.below(8);
            }
            2 => {
                let (t, p) = self.corpus[self.rng.below(self.corpus.len())].clone();
                let at = self.rng.below(b.len() + 1);
                b.splice(at..at, msg(t, 1, 0, &p));
            }
            _ => {
                let from = self.rng.below(b.len() + 1);
                let to = from + self.rng.below(b.len() - from + 1);
                let at = self.rng.below(b.len() + 1);
                let copy = b[from..to].to_vec();
                b.splice(at..at, copy);
            }
        }
    }

    /// A made-up index: prod far past cons, cons past prod, anything, or
    /// (keeping the guest in step) an empty ring rebased near the wrap.
    fn ring_action(&mut self, domid: DomId) -> RingAction {
        let ring = self.rng.pick(&[REQ_RING, RSP_RING]);
        let page = &self.world.guest(domid).page;
        let (cons, prod) = (page.load(ring.cons), page.load(ring.prod));
        let r = self.rng.below(1 << 20) as u32;
        let (offset, value) = match self.rng.below(5) {
            0 => (ring.prod, cons.wrapping_add(ring.size + 1 + r)),
            1 => (ring.cons, prod.wrapping_add(1 + r)),
            2 => (self.rng.pick(&[ring.prod, ring.cons]), self.rng.next_u64() as u32),
            3 => (ring.prod, prod.wrapping_sub(1 + r % ring.size)),
            _ => (ring.cons, cons),
        };
        RingAction { offset, value }
    }
}

/// Where a fresh page's indices start: 0, just below the u32 wrap, or
/// anywhere.
fn index_base(rng: &mut Rng) -> u32 {
    match rng.below(3) {
        0 => 0,
        1 => u32::MAX - rng.below(2048) as u32,
        _ => rng.next_u64() as u32,
    }
}

/// The position of a random NUL in `p`, if it has one.
fn nth_nul(p: &[u8], rng: &mut Rng) -> Option<usize> {
    let nuls: Vec<usize> = p.iter().enumerate().filter(|(_, b)| **b == 0).map(|(i, _)| i).collect();
    (!nuls.is_empty()).then(|| nuls[rng.below(nuls.len())])
}

/// Fuzz `iterations` inputs from `seed`; stops at the first broken
/// invariant (in [`Report::failure`]). A panic is itself a failure: the
/// caller (`cargo xtask fuzz-xenstore`) reports where it happened.
pub fn run(seed: u64, iterations: u64) -> Report {
    let mut f = Fuzzer::new(seed);
    for _ in 0..iterations {
        if let Err(fail) = f.step() {
            f.report.failure = Some(fail);
            break;
        }
    }
    f.report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_deterministic_fuzz_run_breaks_no_invariant() {
        let r = run(0x5eed, 2000);
        assert_eq!(r.failure, None, "{:?}", r.failure.as_ref().map(|f| (f.iteration, &f.what, f.input.describe())));
        assert_eq!(r.inputs, 2000);
        assert!(r.errors_total() > 500 && r.drops_total() > 10, "the run reached errors and drops: {r:?}");
        assert!(r.requests > r.errors_total(), "and well-formed requests too");
    }

    #[test]
    fn the_quota_invariant_lets_only_another_domains_commit_pass_an_owners_quota() {
        let mut w = World::new(0);
        fill(&mut w, 3);
        let before = w.xs.memory(3);
        let ex = w.send(1, &msg(XS_TRANSACTION_START, 1, 0, b"\0")).unwrap();
        let tx = parse_id(&ex.replies[0].payload);
        for j in 0..100 {
            let ex = w.send(1, &msg(XS_MKDIR, 1, tx, format!("/local/domain/3/shared/{j}\0").as_bytes())).unwrap();
            assert_eq!(ex.answers().filter_map(Reply::error).count(), 0);
        }
        w.send(1, &msg(XS_TRANSACTION_END, 1, tx, b"T\0")).unwrap();
        // Xen 4.17 commits without a quota check: the owner passes its quota.
        assert!(w.xs.memory(3) > w.xs.quota.memory && before <= w.xs.quota.memory);
        let strict = w.clone().check();
        assert!(strict.is_err_and(|e| e.contains("past its quota")), "without the commit it is a failure");
        w.check_after(Some(1)).unwrap();
        // Domain 3 itself may add nothing more.
        let ex = w.send(3, &msg(XS_WRITE, 1, 0, b"data/more\0v")).unwrap();
        assert_eq!(ex.answers().filter_map(Reply::error).collect::<Vec<_>>(), ["ENOMEM"]);
        w.check().unwrap();
    }

    /// `domid` writes until its memory quota refuses, in ever smaller steps.
    fn fill(w: &mut World, domid: DomId) {
        let mut i = 0;
        for size in [1900usize, 200, 20, 0] {
            loop {
                let mut p = format!("data/f{i}\0").into_bytes();
                p.resize(p.len() + size, b'v');
                i += 1;
                let ex = w.send(domid, &msg(XS_WRITE, 1, 0, &p)).unwrap();
                if ex.answers().any(|r| r.error().is_some()) {
                    break;
                }
            }
        }
    }

    #[test]
    fn the_same_seed_replays_the_same_run() {
        assert_eq!(run(7, 300), run(7, 300));
        assert_ne!(run(7, 300), run(8, 300));
    }
}
