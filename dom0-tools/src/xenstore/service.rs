//! xenstored's transport in dom0 (target only): one [`RingConn`] per
//! introduced domain over its store page, mapped into dom0 by the guest
//! table, and an interdomain channel bound to the domain's store port.
//! [`Service::pump`] runs from dom0's loop beside the console relay.
//!
//! Invariant: a connected slot has its page mapped (by the caller, until
//! [`Service::disconnect`]) and its channel bound; a connection closed for
//! misbehaviour stays in its slot, silent, until the domain goes, and the
//! others carry on.

use super::client;
use super::conn::RingConn;
use super::{DomId, Xenstore};
use crate::guests::MAX_GUESTS;
use alloc::format;
use pv_guest_kernel::console::RingPage;
use pv_guest_kernel::{events, println};

struct Link {
    conn: RingConn,
    port: u32,
    va: u64,
}

/// The daemon and its ring connections.
pub struct Service {
    /// The store; dom0's tools use it in-process as connection 0.
    pub xs: Xenstore,
    links: [Option<Link>; MAX_GUESTS],
    /// Connections closed for misbehaviour since boot.
    pub closed: u64,
    /// The last pump left requests on some ring.
    more: bool,
}

impl Default for Service {
    fn default() -> Self {
        Service::new()
    }
}

impl Service {
    /// An empty store, no domain connected.
    pub fn new() -> Service {
        Service { xs: Xenstore::new(), links: [const { None }; MAX_GUESTS], closed: 0, more: false }
    }

    /// Connect `domid` in `slot`: its store page is mapped at `va`, its end
    /// of the store channel is `remote_port`. Binds the channel, then
    /// introduces the domain (firing `@introduceDomain`).
    pub fn connect(&mut self, slot: usize, domid: DomId, va: u64, remote_port: u32) -> Result<(), i64> {
        let port = events::bind_interdomain(domid, remote_port)?;
        self.links[slot] = Some(Link { conn: RingConn::new(domid), port, va });
        self.xs.introduce(domid);
        Ok(())
    }

    /// Disconnect the domain in `slot` as its domain goes: unbind, release
    /// it (firing `@releaseDomain`) and remove its home, as libxl does at
    /// destroy. The caller unmaps the page afterwards. Whether the slot
    /// was connected.
    pub fn disconnect(&mut self, slot: usize) -> bool {
        let Some(link) = self.links[slot].take() else { return false };
        events::close(link.port);
        let domid = link.conn.domid;
        self.xs.release(domid);
        let _ = client::rm(&mut self.xs, &format!("/local/domain/{domid}"));
        true
    }

    /// Whether the last [`Self::pump`] left requests on a ring (it
    /// answers a bounded number per connection): pump again without
    /// waiting for an event.
    pub fn has_more(&self) -> bool {
        self.more
    }

    /// Serve every live connection once; whether anything was logged.
    pub fn pump(&mut self) -> bool {
        let mut logged = false;
        self.more = false;
        for link in self.links.iter_mut().flatten() {
            let mut page = RingPage(link.va);
            let r = link.conn.pump(&mut self.xs, &mut page);
            self.more |= r.more;
            if r.notify {
                events::send(link.port);
            }
            if let Some(why) = r.closed {
                self.closed += 1;
                println!("dom0: xenstored: d{}: connection closed: {}", link.conn.domid, why.what());
                logged = true;
            }
        }
        logged
    }

    /// dom0's ends of the live store channels.
    pub fn ports(&self) -> impl Iterator<Item = u32> + '_ {
        self.links.iter().flatten().filter(|l| l.conn.closed().is_none()).map(|l| l.port)
    }
}
