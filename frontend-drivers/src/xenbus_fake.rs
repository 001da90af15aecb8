//! An in-memory store for host tests of the handshake machines (built for
//! this crate's tests and with the `fake-store` feature): nodes in a map,
//! watches that fire as xenstored's do, and a queue of fired events a test
//! pumps into the machines.
//!
//! Invariant: watch firing follows xenstored (`tools/xenstore/
//! xenstored_watch.c`): a new watch fires once at once; a write or removal
//! of node N fires every watch on N or on an ancestor of N, and a removal
//! also fires watches on N's descendants. Reads of a node longer than the
//! caller's buffer answer `-ERANGE`, as the guest's client does.
#![forbid(unsafe_code)]

extern crate std;

use crate::xenbus_store::{ERANGE, Store, StoreRead};
use std::collections::{BTreeMap, VecDeque};
use std::string::{String, ToString};
use std::vec::Vec;
use xen_public::errno::ENOENT;

/// The fake store.
#[derive(Default, Debug)]
pub struct FakeStore {
    nodes: BTreeMap<String, Vec<u8>>,
    watches: Vec<(String, String)>,
    /// Fired watches not yet taken: `(path, token)`.
    pub events: VecDeque<(String, String)>,
    /// Reads served (to check nothing loops).
    pub reads: usize,
}

/// `child` is `parent` or below it.
fn under(child: &str, parent: &str) -> bool {
    child == parent || (child.starts_with(parent) && child.as_bytes().get(parent.len()) == Some(&b'/'))
}

impl FakeStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A node's value as text.
    pub fn get(&self, path: &str) -> Option<String> {
        self.nodes.get(path).map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Whether anything exists at or under `path`.
    pub fn exists(&self, path: &str) -> bool {
        self.nodes.keys().any(|k| under(k, path))
    }

    /// Take the oldest fired watch.
    pub fn next_event(&mut self) -> Option<(String, String)> {
        self.events.pop_front()
    }

    fn fire(&mut self, path: &str, removal: bool) {
        for (wpath, token) in &self.watches {
            if under(path, wpath) || (removal && under(wpath, path)) {
                self.events.push_back((path.to_string(), token.clone()));
            }
        }
    }
}

impl StoreRead for FakeStore {
    fn read(&mut self, path: &str, buf: &mut [u8]) -> Result<usize, i64> {
        self.reads += 1;
        let v = self.nodes.get(path).ok_or(-ENOENT)?;
        let dst = buf.get_mut(..v.len()).ok_or(-ERANGE)?;
        dst.copy_from_slice(v);
        Ok(v.len())
    }
}

impl Store for FakeStore {
    fn write(&mut self, path: &str, value: &[u8]) -> Result<(), i64> {
        self.nodes.insert(path.to_string(), value.to_vec());
        self.fire(path, false);
        Ok(())
    }

    fn rm(&mut self, path: &str) -> Result<(), i64> {
        if !self.exists(path) {
            return Err(-ENOENT);
        }
        self.nodes.retain(|k, _| !under(k, path));
        self.fire(path, true);
        Ok(())
    }

    fn watch(&mut self, path: &str, token: &str) -> Result<(), i64> {
        self.watches.push((path.to_string(), token.to_string()));
        self.events.push_back((path.to_string(), token.to_string()));
        Ok(())
    }

    fn unwatch(&mut self, path: &str, token: &str) -> Result<(), i64> {
        let before = self.watches.len();
        self.watches.retain(|(p, t)| !(p == path && t == token));
        if self.watches.len() == before { Err(-ENOENT) } else { Ok(()) }
    }
}
