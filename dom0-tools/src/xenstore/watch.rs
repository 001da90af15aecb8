//! Watches (xenstored_watch.c): which connection hears of which change.
//!
//! Owns a connection's watch list and the matching rule of
//! `fire_watches`: a change to node N fires a watch on W if N is W or
//! below it; a removed node also fires watches exactly on it (the RM of a
//! subtree reaches watchers inside it). The special paths
//! `@introduceDomain` and `@releaseDomain` fire only by name. A watch is
//! told only of nodes its domain may read. Invariant: a connection never
//! holds two watches with the same (path, token).
#![forbid(unsafe_code)]

use alloc::string::String;
use alloc::vec::Vec;

use super::DomId;
use super::perms::{PERM_READ, Perms, perm_for_conn};
use super::tree::domain_path;

/// `@introduceDomain`.
pub const INTRODUCE_DOMAIN: &str = "@introduceDomain";
/// `@releaseDomain`.
pub const RELEASE_DOMAIN: &str = "@releaseDomain";

/// One watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Watch {
    /// The absolute path or special name watched.
    pub path: String,
    /// The client's token, echoed in events.
    pub token: Vec<u8>,
    /// Registered with a relative path: events name the path relative to
    /// the home, as xenstored's `get_watch_path`.
    pub relative: bool,
}

/// A change to announce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The node (or special name).
    pub path: String,
    /// The node's perms (before removal for a removed node).
    pub perms: Perms,
    /// Only watches exactly on `path` fire (a node inside a removed subtree).
    pub exact: bool,
}

/// `is_child`: `child` is `parent` or below it.
pub fn is_child(child: &str, parent: &str) -> bool {
    parent == "/" && child.starts_with('/') || child == parent || child.strip_prefix(parent).is_some_and(|r| r.starts_with('/'))
}

impl Watch {
    /// Whether `c` fires this watch.
    pub fn fires_on(&self, c: &Change) -> bool {
        if c.path.starts_with('@') || self.path.starts_with('@') || c.exact {
            return self.path == c.path;
        }
        is_child(&c.path, &self.path)
    }

    /// The path an event for `changed` names for a watch of `owner`.
    pub fn event_path<'a>(&self, owner: DomId, changed: &'a str) -> &'a str {
        if !self.relative {
            return changed;
        }
        let home = domain_path(owner);
        changed.strip_prefix(home.as_str()).and_then(|r| r.strip_prefix('/')).unwrap_or(changed)
    }
}

/// Whether `conn` may hear of a change to a node with `perms`.
pub fn permitted(conn: DomId, perms: &Perms) -> bool {
    perm_for_conn(conn, perms) & PERM_READ != 0
}
