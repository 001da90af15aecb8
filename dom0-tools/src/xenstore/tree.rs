//! The node tree and the operations on it: READ, WRITE, MKDIR, RM,
//! DIRECTORY, GET_PERMS and SET_PERMS, as xenstored_core.c does them.
//!
//! Owns path validation (`is_valid_nodename`, relative paths resolved
//! against `/local/domain/<id>`), node creation (parents created too,
//! inheriting the parent's perms; an unprivileged creator owns what it
//! creates), permission checks with xenstored's errno hiding
//! (`errno_from_parents`) and the per-owner node counts. The operations are
//! generic over [`Store`], so a transaction's private view runs the same
//! code. Invariants: every node but `/` has its parent, and its name in
//! the parent's children, exactly once; `count(d)` is the number of nodes
//! owned by `d`.
#![forbid(unsafe_code)]

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use xen_public::errno::{EACCES, EINVAL, ENOENT, ENOMEM, ENOSPC, EPERM};
use xen_public::io::xs_wire::XENSTORE_REL_PATH_MAX;

use super::perms::{MAX_PERMS_PER_NODE, PERM_OWNER, PERM_READ, PERM_WRITE, Perms, perm_for_conn};
use super::quota::Quota;
use super::{DomId, Errno};

/// One node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Its value.
    pub value: Vec<u8>,
    /// Child names, in creation order (xenstored's order).
    pub children: Vec<String>,
    /// Owner and ACL.
    pub perms: Perms,
    /// Bumped on every change; transactions compare it.
    pub generation: u64,
}

impl Node {
    /// xenstored's record size (`xs_tdb_record_hdr` of 24 bytes, 8 per
    /// perm, the value, each child name with its NUL), for the entry quota.
    pub fn record_size(&self) -> usize {
        24 + 8 * self.perms.entries().len() + self.value.len() + self.children.iter().map(|c| c.len() + 1).sum::<usize>()
    }
}

/// Heap bytes a stored node costs beyond its path and record (the map
/// entry, the allocations' headers), for the memory quota.
pub const NODE_OVERHEAD: usize = 96;
/// Heap bytes each child name costs beyond its text (its `String`).
pub const CHILD_OVERHEAD: usize = 32;

/// What a node at `path` costs the heap (charged to its owner).
pub fn node_bytes(path: &str, n: &Node) -> usize {
    path.len() + n.record_size() + NODE_OVERHEAD + CHILD_OVERHEAD * n.children.len()
}

/// Where nodes live: the tree itself or a transaction's view of it.
pub trait Store {
    /// The node at `path` (a copy); ENOSPC if a transaction touched too many.
    fn get(&mut self, path: &str) -> Result<Option<Node>, Errno>;
    /// Store `node` at `path`.
    fn put(&mut self, path: &str, node: Node) -> Result<(), Errno>;
    /// Remove the node at `path` (not its children).
    fn del(&mut self, path: &str) -> Result<(), Errno>;
    /// Nodes owned by `domid`.
    fn count(&self, domid: DomId) -> u32;
    /// Heap bytes the view may still take before a `put` or `del` fails
    /// (a transaction's room under the memory quota; the tree: no limit).
    fn room(&self) -> usize {
        usize::MAX
    }
    /// Bytes a first `put` or `del` of `path` reserves beyond
    /// [`store_cost`] (a transaction's change record for its commit).
    fn reserve(&self, _path: &str) -> usize {
        0
    }
}

/// The most a `put` of `node` at `path` (or a `del`, with no node) costs
/// a view's room: its overlay entry in a transaction.
pub fn store_cost(path: &str, node: Option<&Node>) -> usize {
    path.len() + crate::xenstore::txn::OVERLAY_OVERHEAD + node.map_or(0, |n| node_bytes(path, n))
}

/// The store: path to node, plus the counts.
#[derive(Clone, Debug)]
pub struct Tree {
    nodes: BTreeMap<String, Node>,
    owned: BTreeMap<DomId, u32>,
    /// Heap bytes of the nodes each domain owns ([`node_bytes`]).
    bytes: BTreeMap<DomId, usize>,
    generation: u64,
}

impl Default for Tree {
    fn default() -> Self {
        Tree::new()
    }
}

impl Tree {
    /// xenstored's initial tree: `/`, `/local`, `/local/domain`, `/tool`,
    /// all `n0` (owned by dom0, closed to others).
    pub fn new() -> Tree {
        let mut t = Tree { nodes: BTreeMap::new(), owned: BTreeMap::new(), bytes: BTreeMap::new(), generation: 0 };
        let dir = |children: &[&str]| Node {
            value: Vec::new(),
            children: children.iter().map(|c| String::from(*c)).collect(),
            perms: Perms::owned_by(0),
            generation: 0,
        };
        for (p, ch) in [("/", &["local", "tool"][..]), ("/local", &["domain"][..]), ("/local/domain", &[][..]), ("/tool", &[][..])] {
            t.insert(p, dir(ch));
        }
        t
    }

    /// The node at `path`, without recording an access.
    pub fn peek(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Never: `/` always exists.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// All paths (sorted).
    pub fn paths(&self) -> impl Iterator<Item = &String> {
        self.nodes.keys()
    }

    /// Apply `f` to every node's perms (a release's `forget`), fixing counts.
    pub fn for_each_perms(&mut self, mut f: impl FnMut(&str, &mut Perms)) {
        for (p, n) in self.nodes.iter_mut() {
            f(p, &mut n.perms);
        }
        self.owned.clear();
        self.bytes.clear();
        for (p, n) in &self.nodes {
            *self.owned.entry(n.perms.owner()).or_default() += 1;
            *self.bytes.entry(n.perms.owner()).or_default() += node_bytes(p, n);
        }
    }

    /// Heap bytes of the nodes `domid` owns.
    pub fn bytes(&self, domid: DomId) -> usize {
        self.bytes.get(&domid).copied().unwrap_or(0)
    }

    fn insert(&mut self, path: &str, mut node: Node) {
        self.generation += 1;
        node.generation = self.generation;
        *self.owned.entry(node.perms.owner()).or_default() += 1;
        *self.bytes.entry(node.perms.owner()).or_default() += node_bytes(path, &node);
        if let Some(old) = self.nodes.insert(String::from(path), node) {
            self.uncount(path, &old);
        }
    }

    fn uncount(&mut self, path: &str, old: &Node) {
        let owner = old.perms.owner();
        if let Some(c) = self.owned.get_mut(&owner) {
            *c = c.saturating_sub(1);
        }
        if let Some(b) = self.bytes.get_mut(&owner) {
            *b = b.saturating_sub(node_bytes(path, old));
        }
    }
}

impl Store for Tree {
    fn get(&mut self, path: &str) -> Result<Option<Node>, Errno> {
        Ok(self.nodes.get(path).cloned())
    }
    fn put(&mut self, path: &str, node: Node) -> Result<(), Errno> {
        self.insert(path, node);
        Ok(())
    }
    fn del(&mut self, path: &str) -> Result<(), Errno> {
        if let Some(old) = self.nodes.remove(path) {
            self.uncount(path, &old);
        }
        Ok(())
    }
    fn count(&self, domid: DomId) -> u32 {
        self.owned.get(&domid).copied().unwrap_or(0)
    }
}

/// A domain's home, `/local/domain/<id>`.
pub fn domain_path(domid: DomId) -> String {
    format!("/local/domain/{domid}")
}

fn valid_chars(p: &str) -> bool {
    p.bytes().all(|c| c.is_ascii_alphanumeric() || b"-/_@".contains(&c))
}

/// xenstored's `is_valid_nodename`: absolute, no trailing or double `/`,
/// allowed characters only, at most `XENSTORE_REL_PATH_MAX` past a
/// `/local/domain/<id>/` prefix.
pub fn is_valid_nodename(p: &str) -> bool {
    if !p.starts_with('/') || (p.ends_with('/') && p != "/") || p.contains("//") {
        return false;
    }
    p.len() <= local_prefix_len(p) + XENSTORE_REL_PATH_MAX as usize && valid_chars(p)
}

/// Length of a `/local/domain/<up to 5 digits>/` prefix, else 0 (the
/// `sscanf("/local/domain/%5u/%n")` in is_valid_nodename).
fn local_prefix_len(p: &str) -> usize {
    let Some(rest) = p.strip_prefix("/local/domain/") else { return 0 };
    let digits = rest.bytes().take(5).take_while(u8::is_ascii_digit).count();
    if digits > 0 && rest.as_bytes().get(digits) == Some(&b'/') { 14 + digits + 1 } else { 0 }
}

/// xenstored's `canonicalize` then validation: a relative path is under
/// `conn`'s home; EINVAL if not UTF-8 or not a valid node name.
pub fn canonicalize(conn: DomId, raw: &[u8]) -> Result<String, Errno> {
    let s = core::str::from_utf8(raw).map_err(|_| EINVAL)?;
    let p = if s.starts_with('/') || s.starts_with('@') { String::from(s) } else { format!("{}/{s}", domain_path(conn)) };
    if is_valid_nodename(&p) { Ok(p) } else { Err(EINVAL) }
}

/// The parent of a path (`/` for a top-level node).
pub fn parent(p: &str) -> &str {
    match p.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &p[..i],
    }
}

fn basename(p: &str) -> &str {
    &p[p.rfind('/').map_or(0, |i| i + 1)..]
}

/// `errno_from_parents`: the errno a failed lookup may show: `errnum` if
/// `conn` has `perm` on the nearest existing ancestor, else EACCES.
fn errno_from_parents<S: Store + ?Sized>(s: &mut S, conn: DomId, path: &str, errnum: Errno, perm: u8) -> Errno {
    let mut p = path;
    while p != "/" {
        p = parent(p);
        match s.get(p) {
            Ok(Some(n)) => return if perm_for_conn(conn, &n.perms) & perm != 0 { errnum } else { EACCES },
            Ok(None) => continue,
            Err(e) => return e,
        }
    }
    EACCES
}

/// `get_node`: the node at `path` if `conn` has all of `perm` on it.
pub fn get_node<S: Store + ?Sized>(s: &mut S, conn: DomId, path: &str, perm: u8) -> Result<Node, Errno> {
    let err = match s.get(path)? {
        Some(n) if perm_for_conn(conn, &n.perms) & perm == perm => return Ok(n),
        Some(_) => EACCES,
        None => ENOENT,
    };
    Err(errno_from_parents(s, conn, path, err, perm))
}

/// XS_READ.
pub fn read<S: Store + ?Sized>(s: &mut S, conn: DomId, path: &str) -> Result<Vec<u8>, Errno> {
    Ok(get_node(s, conn, path, PERM_READ)?.value)
}

/// XS_DIRECTORY: the child names, each with its NUL.
pub fn directory<S: Store + ?Sized>(s: &mut S, conn: DomId, path: &str) -> Result<Vec<u8>, Errno> {
    let n = get_node(s, conn, path, PERM_READ)?;
    let mut out = Vec::new();
    for c in &n.children {
        out.extend_from_slice(c.as_bytes());
        out.push(0);
    }
    Ok(out)
}

/// XS_GET_PERMS.
pub fn get_perms<S: Store + ?Sized>(s: &mut S, conn: DomId, path: &str) -> Result<Vec<u8>, Errno> {
    Ok(get_node(s, conn, path, PERM_READ)?.perms.to_wire())
}

fn put_checked<S: Store + ?Sized>(s: &mut S, q: &Quota, conn: DomId, path: &str, node: Node) -> Result<(), Errno> {
    q.entry(conn, node.record_size())?;
    s.put(path, node)
}

/// `create_node`: `path` and any missing parents, each inheriting its
/// parent's perms (owned by `conn` if unprivileged). Iterative (one step
/// per missing ancestor, no recursion: a path may have a thousand
/// components and dom0's stack is 64 KiB). Every quota (node count, each
/// record's size, the nearest existing ancestor's enlarged record) is
/// checked before anything is stored, so a refusal leaves no orphan (Xen's
/// create_node rolls back). Every path stored was already read, so a
/// transaction's touched-nodes quota cannot fail midway either. The
/// caller checked the permissions. `ancestor_room`: what the owner of the
/// nearest existing ancestor may still add (its record grows by the new
/// child's name; Xen 4.17's create_node writes it charged to its owner:
/// ENOMEM past that owner's quota).
fn create<S: Store + ?Sized>(s: &mut S, q: &Quota, room: usize, ancestor_room: usize, conn: DomId, path: &str, value: &[u8]) -> Result<(), Errno> {
    let mut missing = alloc::vec![path];
    let mut up = parent(path);
    let top = loop {
        match s.get(up)? {
            Some(n) => break n,
            None => {
                missing.push(up);
                up = parent(up);
            }
        }
    };
    let owned = s.count(conn);
    q.new_node(conn, owned.saturating_add(missing.len() as u32 - 1))?;
    let top_growth = missing.last().map_or(0, |m| basename(m).len() + 1 + CHILD_OVERHEAD);
    let mut staged: Vec<(&str, Node)> = Vec::with_capacity(missing.len() + 1);
    let (mut dir_path, mut dir) = (up, top);
    for (i, p) in missing.iter().rev().enumerate() {
        dir.children.push(String::from(basename(p)));
        q.entry(conn, dir.record_size())?;
        let perms = if conn == 0 { dir.perms.clone() } else { dir.perms.clone().with_owner(conn) };
        let v = if i + 1 == missing.len() { Vec::from(value) } else { Vec::new() };
        let node = Node { value: v, children: Vec::new(), perms, generation: 0 };
        staged.push((dir_path, dir));
        (dir_path, dir) = (p, node);
    }
    q.entry(conn, dir.record_size())?;
    staged.push((dir_path, dir));
    let grow: usize = staged.iter().map(|(p, n)| store_cost(p, Some(n)) + s.reserve(p)).sum();
    if conn != 0 && (grow >= room.min(s.room()) || top_growth >= ancestor_room) {
        return Err(ENOMEM);
    }
    for (p, n) in staged.into_iter().rev() {
        s.put(p, n)?;
    }
    Ok(())
}

/// XS_WRITE: set the value, creating the node (and parents) if needed.
/// `room`: the bytes `conn` may still add under its memory quota (ENOMEM
/// past it; dom0 is exempt); `ancestor_room`: see [`create`].
pub fn write<S: Store + ?Sized>(s: &mut S, q: &Quota, room: usize, ancestor_room: usize, conn: DomId, path: &str, value: &[u8]) -> Result<(), Errno> {
    match get_node(s, conn, path, PERM_WRITE) {
        Ok(mut n) => {
            if conn != 0 && value.len().saturating_sub(n.value.len()) >= room {
                q.entry(conn, n.record_size() - n.value.len() + value.len())?;
                return Err(ENOMEM);
            }
            n.value = Vec::from(value);
            put_checked(s, q, conn, path, n)
        }
        Err(ENOENT) => create(s, q, room, ancestor_room, conn, path, value),
        Err(e) => Err(e),
    }
}

/// XS_MKDIR: create an empty node unless it exists; whether it created.
/// `room` and `ancestor_room` as for [`write`].
pub fn mkdir<S: Store + ?Sized>(s: &mut S, q: &Quota, room: usize, ancestor_room: usize, conn: DomId, path: &str) -> Result<bool, Errno> {
    match get_node(s, conn, path, PERM_WRITE) {
        Ok(_) => Ok(false),
        Err(ENOENT) => create(s, q, room, ancestor_room, conn, path, &[]).map(|()| true),
        Err(e) => Err(e),
    }
}

/// XS_RM: remove `path` and its subtree. The removed nodes, subtree first
/// then `path`, with their perms (watches need them); empty if the node
/// was already gone but its parent exists. Iterative (an explicit work
/// list, no recursion), and in two phases: every node is read first, then
/// removed, so a transaction's touched-nodes quota refuses before
/// anything changed.
pub fn rm<S: Store + ?Sized>(s: &mut S, conn: DomId, path: &str) -> Result<Vec<(String, Perms)>, Errno> {
    match get_node(s, conn, path, PERM_WRITE) {
        Ok(_) if path == "/" => Err(EINVAL),
        Ok(n) => {
            let up = parent(path);
            let p = s.get(up)?;
            let gone = collect_subtree(s, path, n)?;
            let dels = gone.iter().map(|(g, _)| store_cost(g, None) + s.reserve(g)).sum::<usize>();
            let cost = dels + p.as_ref().map_or(0, |p| store_cost(up, Some(p)) + s.reserve(up));
            if cost >= s.room() {
                return Err(ENOMEM);
            }
            for (g, _) in &gone {
                s.del(g)?;
            }
            if let Some(mut p) = p {
                p.children.retain(|c| c != basename(path));
                s.put(up, p)?;
            }
            Ok(gone)
        }
        Err(ENOENT) if s.get(parent(path))?.is_some() => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// The subtree at `path` (node `n`), each node after its descendants,
/// children in order (the order the recursive walk gave).
fn collect_subtree<S: Store + ?Sized>(s: &mut S, path: &str, n: Node) -> Result<Vec<(String, Perms)>, Errno> {
    let mut gone = Vec::new();
    // (path, node, index of the next child to visit)
    let mut stack: Vec<(String, Node, usize)> = alloc::vec![(String::from(path), n, 0)];
    while let Some((p, node, i)) = stack.last_mut() {
        if let Some(c) = node.children.get(*i) {
            *i += 1;
            let child = if p == "/" { format!("/{c}") } else { format!("{p}/{c}") };
            if let Some(cn) = s.get(&child)? {
                stack.push((child, cn, 0));
            }
        } else if let Some((p, node, _)) = stack.pop() {
            gone.push((p, node.perms));
        }
    }
    Ok(gone)
}

/// XS_SET_PERMS on a node: owner (or dom0) only; an unprivileged domain
/// may not change the owner (EPERM) nor set more than 5 entries (ENOSPC).
pub fn set_perms<S: Store + ?Sized>(s: &mut S, q: &Quota, conn: DomId, path: &str, perms: Perms) -> Result<(), Errno> {
    if conn != 0 && perms.entries().len() > MAX_PERMS_PER_NODE {
        return Err(ENOSPC);
    }
    let mut n = get_node(s, conn, path, PERM_WRITE | PERM_OWNER)?;
    if conn != 0 && perms.owner() != n.perms.owner() {
        return Err(EPERM);
    }
    n.perms = perms;
    put_checked(s, q, conn, path, n)
}
