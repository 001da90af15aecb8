//! xenstored's core as a pure state machine: the tree, connections (one
//! per domain, keyed by domid), their watches, transactions and pending
//! watch events. No I/O: a transport feeds request bytes to
//! [`Xenstore::handle`] and sends what it answers.
//!
//! Follows Xen 4.17's `docs/misc/xenstore.txt` and C xenstored
//! (`xenstored_core.c`, `_domain.c`, `_transaction.c`, `_watch.c`).
//! Invariants: dom0 (connection 0) always exists and is privileged; only
//! introduced domains have a connection; nothing a connection sends
//! changes another connection's watches or transactions; pending events
//! per connection are bounded by [`MAX_PENDING_EVENTS`] and by bytes.
//!
//! Memory: as Xen 4.17's `quota_memory_per_domain_hard`, each domain's
//! heap bytes are counted ([`Xenstore::memory`]: the nodes it owns, its
//! watches, its transactions' seen entries, overlay and changes, its
//! queued events) and growth past [`quota::MEMORY_PER_DOMAIN`] is refused
//! with ENOMEM (events past it are dropped). Difference from Xen: the
//! limit is 96 KiB, not 2.5 MiB, so that every guest at its limit fits
//! dom0's 2 MiB heap (an allocation failure aborts dom0), and a domain
//! over it gets ENOMEM answers instead of a stalled ring. dom0 is exempt,
//! but its queued events are bounded by [`DOM0_EVENT_BYTES`].
#![forbid(unsafe_code)]

pub mod client;
pub mod conn;
#[cfg(not(target_os = "none"))]
pub mod fuzz;
pub mod perms;
pub mod quota;
#[cfg(target_os = "none")]
pub mod service;
pub mod tree;
pub mod txn;
pub mod watch;
pub mod wire;

use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use xen_public::errno::{E2BIG, EACCES, EBUSY, EEXIST, EINVAL, ENOENT, ENOSYS};
use xen_public::io::xs_wire::*;

use perms::Perms;
use quota::Quota;
use tree::{Store, Tree};
use txn::{TxView, Txn};
use watch::{Change, Watch};
use wire::{Frame, Request};

/// A domain id; also a connection's id.
pub type DomId = u16;
/// An errno value (xen_public::errno).
pub type Errno = i64;
/// Events held for one connection; later ones are dropped (and counted).
/// Xen bounds them through its per-domain memory quota instead.
pub const MAX_PENDING_EVENTS: usize = 1024;
/// Bytes of events held for dom0 (exempt from the memory quota).
pub const DOM0_EVENT_BYTES: usize = 64 * 1024;
/// Bytes of events handed out with one reply or per take (at least one
/// event), so a connection's output stays small.
pub const EVENT_BATCH_BYTES: usize = 8 * 1024;
/// Heap bytes of a queued event beyond its message.
pub const EVENT_OVERHEAD: usize = 32;
/// Heap bytes of a watch beyond its path and token.
pub const WATCH_OVERHEAD: usize = 64;
const DOMID_SELF: u32 = 0x7ff0;

/// What to do with a connection's input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send these messages (a reply, then the connection's own events).
    Reply(Vec<Vec<u8>>),
    /// Not a whole message yet.
    Incomplete,
    /// Framing is broken: drop the connection.
    Drop,
}

#[derive(Clone, Debug, Default)]
struct Conn {
    watches: Vec<Watch>,
    txns: BTreeMap<u32, Txn>,
    next_tx: u32,
    events: VecDeque<Vec<u8>>,
    event_bytes: usize,
    dropped_events: u64,
}

impl Conn {
    /// Heap bytes of everything but the nodes: watches, transactions,
    /// queued events.
    fn bytes(&self) -> usize {
        let w: usize = self.watches.iter().map(watch_bytes).sum();
        let t: usize = self.txns.values().map(Txn::bytes).sum();
        w + t + self.event_bytes
    }
}

fn watch_bytes(w: &Watch) -> usize {
    w.path.len() + w.token.len() + WATCH_OVERHEAD
}

/// Counts over the whole daemon ([`Xenstore::totals`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Totals {
    /// Nodes in the committed tree.
    pub nodes: usize,
    /// Connections (dom0's included).
    pub connections: usize,
    /// Watches.
    pub watches: usize,
    /// Open transactions.
    pub transactions: usize,
    /// Watch events waiting to be sent.
    pub events: usize,
}

/// The xenstore daemon's state.
#[derive(Clone, Debug)]
pub struct Xenstore {
    tree: Tree,
    conns: BTreeMap<DomId, Conn>,
    special: BTreeMap<&'static str, Perms>,
    /// The limits (Xen's defaults).
    pub quota: Quota,
}

impl Default for Xenstore {
    fn default() -> Self {
        Xenstore::new()
    }
}

impl Xenstore {
    /// The initial tree, dom0 connected.
    pub fn new() -> Xenstore {
        let mut conns = BTreeMap::new();
        conns.insert(0, Conn { next_tx: 1, ..Conn::default() });
        let special = [(watch::INTRODUCE_DOMAIN, Perms::owned_by(0)), (watch::RELEASE_DOMAIN, Perms::owned_by(0))].into_iter().collect();
        Xenstore { tree: Tree::new(), conns, special, quota: Quota::default() }
    }

    /// The committed tree.
    pub fn tree(&self) -> &Tree {
        &self.tree
    }

    /// Whether `domid` has a connection.
    pub fn is_introduced(&self, domid: DomId) -> bool {
        self.conns.contains_key(&domid)
    }

    /// What xenstored holds, summed over every connection: for leak checks.
    pub fn totals(&self) -> Totals {
        let sum = |f: fn(&Conn) -> usize| self.conns.values().map(f).sum();
        Totals {
            nodes: self.tree.len(),
            connections: self.conns.len(),
            watches: sum(|c| c.watches.len()),
            transactions: sum(|c| c.txns.len()),
            events: sum(|c| c.events.len()),
        }
    }

    /// Watches of `domid`.
    pub fn watch_count(&self, domid: DomId) -> usize {
        self.conns.get(&domid).map_or(0, |c| c.watches.len())
    }

    /// Open transactions of `domid`.
    pub fn txn_count(&self, domid: DomId) -> usize {
        self.conns.get(&domid).map_or(0, |c| c.txns.len())
    }

    /// Take the events pending for `domid`.
    pub fn take_events(&mut self, domid: DomId) -> Vec<Vec<u8>> {
        self.take_events_upto(domid, usize::MAX)
    }

    /// Take the events pending for `domid`, oldest first, while they total
    /// at most `max` bytes (at least one, if any).
    pub fn take_events_upto(&mut self, domid: DomId, max: usize) -> Vec<Vec<u8>> {
        let Some(c) = self.conns.get_mut(&domid) else { return Vec::new() };
        let mut out = Vec::new();
        let mut total = 0usize;
        while let Some(ev) = c.events.front() {
            if !out.is_empty() && total.saturating_add(ev.len()) > max {
                break;
            }
            total += ev.len();
            c.event_bytes = c.event_bytes.saturating_sub(ev.len() + EVENT_OVERHEAD);
            out.extend(c.events.pop_front());
        }
        out
    }

    /// Heap bytes charged to `domid` (Xen's `domain->memory`): the nodes
    /// it owns, its watches, transactions and queued events.
    pub fn memory(&self, domid: DomId) -> usize {
        self.tree.bytes(domid) + self.conns.get(&domid).map_or(0, Conn::bytes)
    }

    /// Bytes `domid` may still add (dom0: no limit).
    fn room(&self, domid: DomId) -> usize {
        if domid == 0 { usize::MAX } else { self.quota.memory.saturating_sub(self.memory(domid)) }
    }

    /// Connect `domid` (XS_INTRODUCE's effect); fires `@introduceDomain`
    /// the first time.
    pub fn introduce(&mut self, domid: DomId) {
        if self.conns.contains_key(&domid) {
            return;
        }
        self.conns.insert(domid, Conn { next_tx: 1, ..Conn::default() });
        self.fire_special(watch::INTRODUCE_DOMAIN);
    }

    /// Disconnect `domid`: its watches, transactions and events go, nodes
    /// it owned pass to dom0 and ACL entries naming it go (as xenstored
    /// does for a dead domain; the toolstack removes its home), and
    /// `@releaseDomain` fires. Whether it was connected.
    pub fn release(&mut self, domid: DomId) -> bool {
        if domid == 0 || self.conns.remove(&domid).is_none() {
            return false;
        }
        // What the domain owned inside another live domain's home (where
        // that domain let it write) passes to that domain and counts
        // against its quota, so a guest's restarts cannot leak nodes
        // charged to no one; the rest passes to dom0 (Xen gives all of it
        // to dom0, whose memory is not our 2 MiB heap).
        let live: Vec<DomId> = self.conns.keys().copied().collect();
        self.tree.for_each_perms(|path, p| {
            let heir = home_of(path).filter(|h| live.contains(h)).unwrap_or(0);
            p.forget_to(domid, heir);
        });
        self.fire_special(watch::RELEASE_DOMAIN);
        true
    }

    /// Handle the message at the front of `bytes` from `conn`. The bytes
    /// used (0 unless a reply) travel in `Verdict::Reply`'s caller: see
    /// [`Xenstore::handle_frame`].
    pub fn handle(&mut self, conn: DomId, bytes: &[u8]) -> Verdict {
        self.handle_frame(conn, bytes).0
    }

    /// [`Xenstore::handle`], with the number of bytes the message took.
    pub fn handle_frame(&mut self, conn: DomId, bytes: &[u8]) -> (Verdict, usize) {
        if !self.conns.contains_key(&conn) {
            return (Verdict::Drop, 0);
        }
        match wire::parse(bytes) {
            Frame::Incomplete => (Verdict::Incomplete, 0),
            Frame::Drop => (Verdict::Drop, 0),
            Frame::Msg(req, used) => {
                let reply = match self.process(conn, &req) {
                    Ok(payload) if payload.len() > XENSTORE_PAYLOAD_MAX as usize => wire::error(&req.hdr, E2BIG),
                    Ok(payload) => wire::reply(&req.hdr, &payload),
                    Err(e) => wire::error(&req.hdr, e),
                };
                let mut out = alloc::vec![reply];
                out.extend(self.take_events_upto(conn, EVENT_BATCH_BYTES));
                (Verdict::Reply(out), used)
            }
        }
    }

    fn process(&mut self, conn: DomId, req: &Request<'_>) -> Result<Vec<u8>, Errno> {
        let t = req.hdr.type_;
        let privileged_only = matches!(t, XS_CONTROL | XS_INTRODUCE | XS_RELEASE | XS_IS_DOMAIN_INTRODUCED | XS_RESUME | XS_SET_TARGET);
        if t >= XS_TYPE_COUNT || matches!(t, XS_WATCH_EVENT | XS_ERROR | 20) {
            return Err(ENOSYS);
        }
        if privileged_only && conn != 0 {
            return Err(EACCES);
        }
        let tx = if matches!(t, XS_WATCH | XS_UNWATCH) { 0 } else { req.hdr.tx_id };
        if tx != 0 && !self.conns[&conn].txns.contains_key(&tx) {
            return Err(ENOENT);
        }
        let grows = tx != 0 || matches!(t, XS_WRITE | XS_MKDIR | XS_SET_PERMS | XS_WATCH | XS_TRANSACTION_START);
        if grows && t != XS_TRANSACTION_END {
            self.quota.memory(conn, self.memory(conn), 0)?;
        }
        self.dispatch(conn, tx, req)
    }

    fn dispatch(&mut self, conn: DomId, tx: u32, req: &Request<'_>) -> Result<Vec<u8>, Errno> {
        let p = req.payload;
        match req.hdr.type_ {
            XS_READ => self.in_view(conn, tx, |s, c| tree::read(s, c, &path1(c, p)?)),
            XS_DIRECTORY => self.in_view(conn, tx, |s, c| tree::directory(s, c, &path1(c, p)?)),
            XS_GET_PERMS => self.in_view(conn, tx, |s, c| tree::get_perms(s, c, &path1(c, p)?)),
            XS_WRITE => self.write(conn, tx, p),
            XS_MKDIR => self.mkdir(conn, tx, p),
            XS_RM => self.rm(conn, tx, p),
            XS_SET_PERMS => self.set_perms(conn, tx, p),
            XS_WATCH => self.watch(conn, p),
            XS_UNWATCH => self.unwatch(conn, p),
            XS_TRANSACTION_START => self.txn_start(conn, tx, p),
            XS_TRANSACTION_END => self.txn_end(conn, tx, p),
            XS_INTRODUCE => self.do_introduce(p),
            XS_RELEASE => self.do_release(p),
            XS_GET_DOMAIN_PATH => {
                let id = atoi(wire::onearg(p).ok_or(EINVAL)?);
                Ok(cstr(&tree::domain_path(id as DomId)))
            }
            XS_IS_DOMAIN_INTRODUCED => {
                let id = atoi(wire::onearg(p).ok_or(EINVAL)?);
                let yes = id == DOMID_SELF || u16::try_from(id).is_ok_and(|d| self.is_introduced(d));
                Ok(Vec::from(if yes { &b"T\0"[..] } else { b"F\0" }))
            }
            XS_RESET_WATCHES => {
                let c = self.conn_mut(conn);
                c.watches.clear();
                c.txns.clear();
                Ok(ok())
            }
            _ => Err(ENOSYS),
        }
    }

    fn conn_mut(&mut self, conn: DomId) -> &mut Conn {
        self.conns.entry(conn).or_default()
    }

    /// Run `f` on the tree, or on transaction `tx`'s view of it.
    fn in_view<R>(&mut self, conn: DomId, tx: u32, f: impl FnOnce(&mut dyn Store, DomId) -> Result<R, Errno>) -> Result<R, Errno> {
        if tx == 0 {
            return f(&mut self.tree, conn);
        }
        let room = self.room(conn);
        let c = self.conns.get_mut(&conn).ok_or(ENOENT)?;
        let txn = c.txns.get_mut(&tx).ok_or(ENOENT)?;
        let mut view = TxView { base: &self.tree, txn, conn, quota: &self.quota, room };
        f(&mut view, conn)
    }

    /// Apply a change: announce now, or at the transaction's commit.
    fn changed(&mut self, conn: DomId, tx: u32, changes: Vec<Change>) {
        if tx == 0 {
            self.fire(&changes);
        } else if let Some(t) = self.conns.get_mut(&conn).and_then(|c| c.txns.get_mut(&tx)) {
            for ch in changes {
                t.add_change(ch);
            }
        }
    }

    fn write(&mut self, conn: DomId, tx: u32, p: &[u8]) -> Result<Vec<u8>, Errno> {
        let i = p.iter().position(|&b| b == 0).ok_or(EINVAL)?;
        let path = tree::canonicalize(conn, &p[..i])?;
        // A value's growth is charged to the node's owner: a domU writing a
        // node another domU owns (by its ACL) must fit in both quotas, or
        // two guests could inflate one past its limit.
        let owner = self.tree.peek(&path).map(|n| n.perms.owner());
        let room = match owner {
            Some(o) if o != conn => self.room(conn).min(self.room(o)),
            _ => self.room(conn),
        };
        let (q, up) = (self.quota, self.ancestor_room(conn, tx, &path));
        self.in_view(conn, tx, |s, c| tree::write(s, &q, room, up, c, &path, &p[i + 1..]))?;
        let perms = self.tree.peek(&path).map(|n| n.perms.clone()).unwrap_or_else(|| Perms::owned_by(conn));
        self.changed(conn, tx, alloc::vec![Change { path, perms, exact: false }]);
        Ok(ok())
    }

    /// What the owner of `path`'s nearest existing ancestor may still add,
    /// when a domU creating `path` would grow that node's record and the
    /// node is another domU's: Xen 4.17's create_node writes it charged to
    /// its owner (do_tdb_write, domain_memory_add: ENOMEM past that
    /// owner's quota), so one guest cannot push another past its quota
    /// through a node it was let write. Unbounded otherwise, and in a
    /// transaction, whose nodes are charged to the connection until the
    /// commit (which Xen makes without a quota check).
    fn ancestor_room(&self, conn: DomId, tx: u32, path: &str) -> usize {
        if conn == 0 || tx != 0 {
            return usize::MAX;
        }
        let mut p = path;
        while p != "/" {
            p = tree::parent(p);
            if let Some(n) = self.tree.peek(p) {
                let owner = n.perms.owner();
                return if owner == conn { usize::MAX } else { self.room(owner) };
            }
        }
        usize::MAX
    }

    fn mkdir(&mut self, conn: DomId, tx: u32, p: &[u8]) -> Result<Vec<u8>, Errno> {
        let path = path1(conn, p)?;
        let (q, room, up) = (self.quota, self.room(conn), self.ancestor_room(conn, tx, &path));
        if self.in_view(conn, tx, |s, c| tree::mkdir(s, &q, room, up, c, &path))? {
            let perms = self.tree.peek(&path).map(|n| n.perms.clone()).unwrap_or_else(|| Perms::owned_by(conn));
            self.changed(conn, tx, alloc::vec![Change { path, perms, exact: false }]);
        }
        Ok(ok())
    }

    fn rm(&mut self, conn: DomId, tx: u32, p: &[u8]) -> Result<Vec<u8>, Errno> {
        let path = path1(conn, p)?;
        let gone = self.in_view(conn, tx, |s, c| tree::rm(s, c, &path))?;
        let changes = gone.into_iter().map(|(g, perms)| Change { exact: g != path, path: g, perms }).collect();
        self.changed(conn, tx, changes);
        Ok(ok())
    }

    fn set_perms(&mut self, conn: DomId, tx: u32, p: &[u8]) -> Result<Vec<u8>, Errno> {
        let args = wire::strings(p);
        if args.len() < 2 {
            return Err(EINVAL);
        }
        if conn != 0 && args.len() - 1 > perms::MAX_PERMS_PER_NODE {
            return Err(xen_public::errno::ENOSPC);
        }
        let new = Perms::parse(args[1..].iter().copied())?;
        if args[0].starts_with(b"@") {
            return self.set_special_perms(conn, args[0], new);
        }
        let path = tree::canonicalize(conn, args[0])?;
        let q = self.quota;
        self.in_view(conn, tx, |s, c| tree::set_perms(s, &q, c, &path, new.clone()))?;
        self.changed(conn, tx, alloc::vec![Change { path, perms: new, exact: false }]);
        Ok(ok())
    }

    /// xenstored_domain.c's set_perms_special: EINVAL for a name that is
    /// not a special node, then EACCES unless `conn` has write and owner
    /// permission on it (dom0, or the domain dom0 made its owner).
    fn set_special_perms(&mut self, conn: DomId, name: &[u8], new: Perms) -> Result<Vec<u8>, Errno> {
        let slot = self.special.iter_mut().find(|(k, _)| k.as_bytes() == name).ok_or(EINVAL)?;
        let need = perms::PERM_WRITE | perms::PERM_OWNER;
        if perms::perm_for_conn(conn, slot.1) & need != need {
            return Err(EACCES);
        }
        *slot.1 = new;
        Ok(ok())
    }

    fn watch(&mut self, conn: DomId, p: &[u8]) -> Result<Vec<u8>, Errno> {
        let args = wire::strings(p);
        let [raw, token] = args[..] else { return Err(EINVAL) };
        let w = watch_of(conn, raw, token)?;
        let (quota, mem) = (self.quota, self.memory(conn));
        let c = self.conn_mut(conn);
        if c.watches.iter().any(|x| x.path == w.path && x.token == w.token) {
            return Err(EEXIST);
        }
        quota.watch(conn, c.watches.len())?;
        quota.memory(conn, mem, watch_bytes(&w))?;
        let ev = wire::watch_event(w.event_path(conn, &w.path).as_bytes(), &w.token);
        c.watches.push(w);
        push_event(&self.tree, &quota, conn, self.conns.get_mut(&conn).expect("connected"), ev);
        Ok(ok())
    }

    fn unwatch(&mut self, conn: DomId, p: &[u8]) -> Result<Vec<u8>, Errno> {
        let args = wire::strings(p);
        let [raw, token] = args[..] else { return Err(EINVAL) };
        let w = watch_of(conn, raw, token)?;
        let c = self.conn_mut(conn);
        let i = c.watches.iter().position(|x| x.path == w.path && x.token == w.token).ok_or(ENOENT)?;
        c.watches.remove(i);
        Ok(ok())
    }

    fn txn_start(&mut self, conn: DomId, tx: u32, _p: &[u8]) -> Result<Vec<u8>, Errno> {
        if tx != 0 {
            return Err(EBUSY);
        }
        let quota = self.quota;
        let c = self.conn_mut(conn);
        quota.transaction(conn, c.txns.len())?;
        let mut id = c.next_tx.max(1);
        while c.txns.contains_key(&id) {
            id = id.wrapping_add(1).max(1);
        }
        c.next_tx = id.wrapping_add(1);
        c.txns.insert(id, Txn::default());
        Ok(cstr(&format!("{id}")))
    }

    fn txn_end(&mut self, conn: DomId, tx: u32, p: &[u8]) -> Result<Vec<u8>, Errno> {
        let commit = match wire::onearg(p) {
            Some(b"T") => true,
            Some(b"F") => false,
            _ => return Err(EINVAL),
        };
        let t = self.conn_mut(conn).txns.remove(&tx).ok_or(ENOENT)?;
        if commit {
            let changes = t.commit(&mut self.tree)?;
            self.fire(&changes);
        }
        Ok(ok())
    }

    fn do_introduce(&mut self, p: &[u8]) -> Result<Vec<u8>, Errno> {
        let args = wire::strings(p);
        if args.len() < 3 || atoi(args[2]) == 0 {
            return Err(EINVAL);
        }
        let id = u16::try_from(atoi(args[0])).map_err(|_| EINVAL)?;
        self.introduce(id);
        Ok(ok())
    }

    fn do_release(&mut self, p: &[u8]) -> Result<Vec<u8>, Errno> {
        let id = atoi(wire::onearg(p).ok_or(EINVAL)?);
        if id == 0 {
            return Err(EINVAL);
        }
        let id = u16::try_from(id).map_err(|_| ENOENT)?;
        if self.release(id) { Ok(ok()) } else { Err(ENOENT) }
    }

    fn fire_special(&mut self, name: &'static str) {
        let perms = self.special.get(name).cloned().unwrap_or_else(|| Perms::owned_by(0));
        self.fire(&[Change { path: String::from(name), perms, exact: true }]);
    }

    /// Queue an event for every watch each change fires, on connections
    /// allowed to read the node.
    fn fire(&mut self, changes: &[Change]) {
        let (tree, quota) = (&self.tree, &self.quota);
        for (&id, c) in self.conns.iter_mut() {
            for ch in changes {
                if !watch::permitted(id, &ch.perms) {
                    continue;
                }
                // One event at a time, and only once it is known to fit:
                // many watches on a long path must not build a burst of
                // events the quota would drop anyway.
                for wi in 0..c.watches.len() {
                    let w = &c.watches[wi];
                    if !w.fires_on(ch) {
                        continue;
                    }
                    let path = w.event_path(id, &ch.path);
                    let cost = EVENT_HEADER + path.len() + w.token.len() + 2 + EVENT_OVERHEAD;
                    if !event_fits(tree, quota, id, c, cost) {
                        c.dropped_events += 1;
                        continue;
                    }
                    let ev = wire::watch_event(path.as_bytes(), &c.watches[wi].token);
                    push_event(tree, quota, id, c, ev);
                }
            }
        }
    }
}

/// Queue `ev` for connection `id`, unless that passes the count bound,
/// the domain's memory quota or (dom0) [`DOM0_EVENT_BYTES`]: then it is
/// dropped and counted (Xen drops a watch event over the quota too).
fn push_event(tree: &Tree, quota: &Quota, id: DomId, c: &mut Conn, ev: Vec<u8>) {
    let cost = ev.len() + EVENT_OVERHEAD;
    if event_fits(tree, quota, id, c, cost) {
        c.event_bytes += cost;
        c.events.push_back(ev);
    } else {
        c.dropped_events += 1;
    }
}

/// The domain whose home `/local/domain/<id>` holds `path`, if any.
fn home_of(path: &str) -> Option<DomId> {
    let rest = path.strip_prefix("/local/domain/")?;
    rest.split('/').next()?.parse().ok()
}

/// Bytes of a message header.
const EVENT_HEADER: usize = core::mem::size_of::<xen_public::io::xs_wire::XsdSockmsg>();

/// Whether an event costing `cost` bytes may be queued for `id`: under the
/// count bound and the domain's memory quota (dom0: [`DOM0_EVENT_BYTES`]).
fn event_fits(tree: &Tree, quota: &Quota, id: DomId, c: &Conn, cost: usize) -> bool {
    let fits = if id == 0 { c.event_bytes + cost <= DOM0_EVENT_BYTES } else { quota.memory(id, tree.bytes(id) + c.bytes(), cost).is_ok() };
    c.events.len() < MAX_PENDING_EVENTS && fits
}

fn watch_of(conn: DomId, raw: &[u8], token: &[u8]) -> Result<Watch, Errno> {
    if raw.starts_with(b"@") {
        if raw.len() > XENSTORE_REL_PATH_MAX as usize {
            return Err(EINVAL);
        }
        let path = String::from(core::str::from_utf8(raw).map_err(|_| EINVAL)?);
        return Ok(Watch { path, token: Vec::from(token), relative: false });
    }
    let relative = !raw.starts_with(b"/");
    Ok(Watch { path: tree::canonicalize(conn, raw)?, token: Vec::from(token), relative })
}

/// The single path argument of READ, DIRECTORY, GET_PERMS, MKDIR, RM.
fn path1(conn: DomId, p: &[u8]) -> Result<String, Errno> {
    tree::canonicalize(conn, wire::onearg(p).ok_or(EINVAL)?)
}

/// C's `atoi` on a decimal string: leading digits, 0 if none.
fn atoi(s: &[u8]) -> u32 {
    s.iter().take_while(|c| c.is_ascii_digit()).fold(0u32, |a, &c| a.wrapping_mul(10).wrapping_add(u32::from(c - b'0')))
}

fn ok() -> Vec<u8> {
    Vec::from(&b"OK\0"[..])
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = Vec::from(s.as_bytes());
    v.push(0);
    v
}

#[cfg(test)]
mod corpus_tests;
#[cfg(test)]
mod guest_tests;
#[cfg(test)]
mod tests;
