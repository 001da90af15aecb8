//! Optimistic transactions (xenstored_transaction.c): a private view of
//! the tree, committed only if nothing it touched changed meanwhile.
//!
//! Owns a transaction's overlay (the nodes it wrote or removed), the
//! generation of every node it touched as first seen (`None`: absent), the
//! node-count changes per owner, and the watch events held until commit.
//! Invariant: the tree is changed only by [`Txn::commit`], and only if
//! every touched node still has the generation first seen (else EAGAIN and
//! nothing changes).
#![forbid(unsafe_code)]

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use xen_public::errno::{EAGAIN, ENOMEM};

use super::quota::Quota;
use super::tree::{Node, Store, Tree, node_bytes};
use super::watch::Change;
use super::{DomId, Errno};

/// One open transaction.
#[derive(Clone, Debug, Default)]
pub struct Txn {
    overlay: BTreeMap<String, Option<Node>>,
    seen: BTreeMap<String, Option<u64>>,
    delta: BTreeMap<DomId, i64>,
    /// Changes to announce at commit, one per path (see [`Txn::add_change`]).
    pub changes: Vec<Change>,
    /// Heap bytes held (seen entries, overlay, changes), charged to the
    /// connection's memory quota.
    bytes: usize,
}

/// Heap bytes of a `seen` entry beyond its path.
pub const SEEN_OVERHEAD: usize = 48;
/// Heap bytes of an overlay entry beyond its path (and node).
pub const OVERLAY_OVERHEAD: usize = 48;
/// Heap bytes of a recorded change beyond its path.
pub const CHANGE_OVERHEAD: usize = 64;

/// A transaction's view: the tree under its overlay.
pub struct TxView<'a> {
    /// The committed tree (read only here).
    pub base: &'a Tree,
    /// The transaction.
    pub txn: &'a mut Txn,
    /// The connection's domain, for the touched-nodes quota.
    pub conn: DomId,
    /// The limits.
    pub quota: &'a Quota,
    /// Bytes this request may still add under the connection's memory
    /// quota (ENOMEM past it; dom0 is exempt).
    pub room: usize,
}

impl TxView<'_> {
    /// Take `n` more bytes: ENOMEM if they do not fit the room.
    fn charge(&mut self, n: usize) -> Result<(), Errno> {
        if self.conn != 0 && n >= self.room {
            return Err(ENOMEM);
        }
        self.room = self.room.saturating_sub(n);
        self.txn.bytes += n;
        Ok(())
    }

    fn touch(&mut self, path: &str) -> Result<(), Errno> {
        if !self.txn.seen.contains_key(path) {
            self.quota.trans_node(self.conn, self.txn.seen.len())?;
            self.charge(path.len() + SEEN_OVERHEAD)?;
            let g = self.base.peek(path).map(|n| n.generation);
            self.txn.seen.insert(String::from(path), g);
        }
        Ok(())
    }

    fn current(&mut self, path: &str) -> Result<Option<Node>, Errno> {
        self.touch(path)?;
        Ok(match self.txn.overlay.get(path) {
            Some(n) => n.clone(),
            None => self.base.peek(path).cloned(),
        })
    }

    /// Release the bytes of `path`'s overlay entry (about to be replaced).
    fn forget_overlay(&mut self, path: &str) {
        if let Some(old) = self.txn.overlay.get(path) {
            let n = path.len() + OVERLAY_OVERHEAD + old.as_ref().map_or(0, |o| node_bytes(path, o));
            self.txn.bytes = self.txn.bytes.saturating_sub(n);
        }
    }

    fn adjust(&mut self, owner: DomId, by: i64) {
        *self.txn.delta.entry(owner).or_default() += by;
    }
}

impl Store for TxView<'_> {
    fn get(&mut self, path: &str) -> Result<Option<Node>, Errno> {
        self.current(path)
    }
    fn put(&mut self, path: &str, node: Node) -> Result<(), Errno> {
        let old = self.current(path)?;
        self.charge(path.len() + OVERLAY_OVERHEAD + node_bytes(path, &node) + self.reserve(path))?;
        if let Some(old) = old {
            self.adjust(old.perms.owner(), -1);
        }
        self.adjust(node.perms.owner(), 1);
        self.forget_overlay(path);
        self.txn.overlay.insert(String::from(path), Some(node));
        Ok(())
    }
    fn del(&mut self, path: &str) -> Result<(), Errno> {
        let old = self.current(path)?;
        self.charge(path.len() + OVERLAY_OVERHEAD + self.reserve(path))?;
        if let Some(old) = old {
            self.adjust(old.perms.owner(), -1);
        }
        self.forget_overlay(path);
        self.txn.overlay.insert(String::from(path), None);
        Ok(())
    }
    fn room(&self) -> usize {
        if self.conn == 0 { usize::MAX } else { self.room }
    }
    /// A path's first write or removal in the transaction also pays for
    /// the change record its commit may announce ([`Txn::add_change`]
    /// adds no bytes), so the records fit the memory quota too.
    fn reserve(&self, path: &str) -> usize {
        if self.txn.overlay.contains_key(path) { 0 } else { path.len() + CHANGE_OVERHEAD }
    }
    fn count(&self, domid: DomId) -> u32 {
        let d = self.txn.delta.get(&domid).copied().unwrap_or(0);
        (i64::from(self.base.count(domid)) + d).max(0) as u32
    }
}

impl Txn {
    /// Xen's `add_change_node`: record a change to announce at commit,
    /// once per path. A repeat keeps the first position, takes the latest
    /// perms and widens an exact change to a recursive one. Every path
    /// changed was written or removed in the transaction first, so the
    /// list is bounded by the touched-nodes quota however often a node is
    /// rewritten, and its bytes were reserved then (`TxView::reserve`).
    pub fn add_change(&mut self, ch: Change) {
        match self.changes.iter_mut().find(|c| c.path == ch.path) {
            Some(c) => {
                c.exact &= ch.exact;
                c.perms = ch.perms;
            }
            None => self.changes.push(ch),
        }
    }

    /// Heap bytes the transaction holds.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether every touched node still has the generation first seen.
    pub fn still_valid(&self, tree: &Tree) -> bool {
        self.seen.iter().all(|(p, g)| tree.peek(p).map(|n| n.generation) == *g)
    }

    /// TRANSACTION_END "T": apply the overlay, or EAGAIN (nothing applied)
    /// on a conflict. The changes to announce.
    pub fn commit(self, tree: &mut Tree) -> Result<Vec<Change>, Errno> {
        if !self.still_valid(tree) {
            return Err(EAGAIN);
        }
        for (path, n) in self.overlay {
            match n {
                Some(n) => tree.put(&path, n)?,
                None => tree.del(&path)?,
            }
        }
        Ok(self.changes)
    }
}
