//! The live connection: the store page this domain's builder set up
//! (`start_info.store_mfn`, found through the M2P like the console's) and
//! its event channel (`start_info.store_evtchn`), with SCHEDOP_poll on that
//! port to sleep while xenstored works.

use super::{Client, Port};
use crate::console::{RingPage, mfn_to_pfn};
use crate::{events, hypercall, shared};
use xen_public::StartInfo;
use xen_public::errno::ENODEV;

/// Longest single sleep: the client re-checks the rings this often even
/// if a notification is lost. Long enough that an idle guest waiting for
/// a watch is blocked nearly all the time (`xl list` shows `b`; at 10 ms
/// three such guests on a loaded 2-core machine were often caught awake).
const SLICE_NS: u64 = 500_000_000;

/// The store port, and time from shared_info.
pub struct StorePort {
    port: u32,
    /// Time when shared_info is not mapped: one slice per block.
    fallback_ns: u64,
}

impl Port for StorePort {
    fn notify(&mut self) {
        events::send(self.port);
    }

    fn now(&mut self) -> u64 {
        shared::now_ns().unwrap_or(self.fallback_ns)
    }

    fn block(&mut self, until: u64) {
        match shared::now_ns() {
            Some(now) => {
                events::poll(&[self.port], until.min(now.saturating_add(SLICE_NS)));
                events::clear_pending(self.port);
            }
            None => {
                hypercall::sched_yield();
                self.fallback_ns = self.fallback_ns.saturating_add(SLICE_NS);
            }
        }
    }

    fn trace(&mut self, event: xen_public::trace_guest::GuestEvent) {
        crate::gtrace::record(event);
    }
}

/// The guest's xenstore client.
pub type Xenbus = Client<RingPage, StorePort>;

/// Connect to xenstore over this domain's store page; `-ENODEV` if it has
/// none (dom0, or a builder that set none up) or it is outside the
/// domain's memory.
pub fn connect(si: &StartInfo) -> Result<Xenbus, i64> {
    if si.store_mfn == 0 {
        return Err(-ENODEV);
    }
    let pfn = mfn_to_pfn(si.store_mfn);
    if pfn >= si.nr_pages {
        return Err(-ENODEV);
    }
    let page = RingPage(crate::notes::VIRT_BASE + pfn * 4096);
    Ok(Client::new(page, StorePort { port: si.store_evtchn, fallback_ns: 0 }))
}
