//! Dom0's running guests: starting domUs from the guest image dom0 was
//! handed, the console backend that relays each guest's console ring to
//! dom0's console as `(dN) line`, and reaping guests that shut down.
//!
//! Each guest also has its xenstore home (`/local/domain/<id>`, written as
//! libxl does before the guest first runs) and a xenstored connection over
//! its store page, served by [`Guests::pump`].
//!
//! Invariant: a guest in the table has its console page mapped in its own
//! slot `i` of the console window, its store page in slot
//! `MAX_GUESTS + i`, and bound event channels for both; all are released
//! (and its home removed, `@releaseDomain` fired) before the domain is
//! destroyed.

use crate::builder::{self, BuildError, Scratch};
use crate::hv;
use crate::xenstore::client::{self, DomainHome};
use crate::xenstore::service::Service;
use alloc::format;
use pv_guest_kernel::alloc::EarlyAlloc;
use pv_guest_kernel::console::RingPage;
use pv_guest_kernel::{StartInfo, events, println, shared};
use xen_public::console as ring;

/// Guests dom0 runs at once (the hypervisor's slots minus dom0's).
pub const MAX_GUESTS: usize = 7;
const _: () = assert!(2 * MAX_GUESTS <= builder::SCRATCH_SLOTS, "console and store pages share the console window");
/// Pages of a guest: 4 MiB.
pub const GUEST_PAGES: u64 = 1024;
const VIRQ_DOM_EXC: u32 = 3;

/// One running guest.
#[derive(Clone, Copy)]
struct Guest {
    domid: u16,
    /// dom0's end of the console channel.
    port: u32,
    ring_va: u64,
    line: [u8; 200],
    len: usize,
}

/// Dom0's guests and what it needs to build more.
pub struct Guests {
    slots: [Option<Guest>; MAX_GUESTS],
    build: Scratch,
    consoles: Scratch,
    p2m: &'static mut [u64],
    image: &'static [u8],
    dom_exc: u32,
    store: Service,
}

/// The name of a shutdown code.
pub fn reason_name(code: u32) -> &'static str {
    match code {
        0 => "poweroff",
        1 => "reboot",
        2 => "suspend",
        3 => "crash",
        4 => "watchdog",
        _ => "unknown",
    }
}

impl Guests {
    /// Set up: scratch windows, a P2M buffer, VIRQ_DOM_EXC. The guest
    /// image is dom0's boot module. `None` if dom0 lacks the pages.
    pub fn new(si: &'static StartInfo, pages: &mut EarlyAlloc) -> Option<Guests> {
        let build = Scratch::new(si, pages)?;
        let consoles = Scratch::new(si, pages)?;
        let p2m_pages = (builder::MAX_PAGES * 8).div_ceil(4096);
        let first = pages.alloc_page()?;
        for _ in 1..p2m_pages {
            pages.alloc_page()?;
        }
        // SAFETY: `p2m_pages` consecutive pages of dom0's initial region
        // starting at `first`, handed out once by the allocator.
        let p2m = unsafe { core::slice::from_raw_parts_mut(first as *mut u64, builder::MAX_PAGES as usize) };
        // SAFETY: the boot module is mapped at `mod_start` for `mod_len`
        // bytes in dom0's initial region and never written.
        let image = unsafe { core::slice::from_raw_parts(si.mod_start as *const u8, si.mod_len as usize) };
        let dom_exc = bind_virq(VIRQ_DOM_EXC).unwrap_or(0);
        Some(Guests { slots: [None; MAX_GUESTS], build, consoles, p2m, image, dom_exc, store: Service::new() })
    }

    /// Build and start a guest with `extra` on its command line.
    pub fn start(&mut self, extra: &str) -> Result<u16, BuildError> {
        let domid = hv::create_domain().map_err(|rc| BuildError("createdomain", rc))?;
        self.start_created(domid, extra)
    }

    /// Build and start a guest that dom0 does not follow: no console relay
    /// and no slot here (the density benchmark starts hundreds).
    pub fn start_headless(&mut self, extra: &str) -> Result<u16, BuildError> {
        builder::build(&mut self.build, self.p2m, self.image, GUEST_PAGES, extra).map(|b| b.domid)
    }

    /// Build and start a guest in the domain `domid` (created, empty).
    pub fn start_created(&mut self, domid: u16, extra: &str) -> Result<u16, BuildError> {
        let Some(i) = self.slots.iter().position(Option::is_none) else {
            hv::domctl_simple(hv::DESTROYDOMAIN, domid);
            return Err(BuildError("find a free guest slot", 0));
        };
        let built = builder::build_created_paused(domid, &mut self.build, self.p2m, self.image, GUEST_PAGES, extra)?;
        let ring_va = match self.consoles.map_at(i, built.domid, built.console_mfn) {
            Ok(va) => va,
            Err(e) => {
                hv::domctl_simple(hv::DESTROYDOMAIN, built.domid);
                return Err(e);
            }
        };
        let port = match events::bind_interdomain(built.domid, built.console_port) {
            Ok(p) => p,
            Err(rc) => {
                self.consoles.unmap_at(i);
                hv::domctl_simple(hv::DESTROYDOMAIN, built.domid);
                return Err(BuildError("bind the console channel", rc));
            }
        };
        self.slots[i] = Some(Guest { domid: built.domid, port, ring_va, line: [0; 200], len: 0 });
        if let Err(e) = self.connect_store(i, &built).and_then(|()| builder::unpause(built.domid)) {
            self.destroy(built.domid);
            return Err(e);
        }
        Ok(built.domid)
    }

    /// Write the new domain's xenstore home as libxl does, map its store
    /// page and connect it to xenstored (introducing it).
    fn connect_store(&mut self, i: usize, built: &builder::Built) -> Result<(), BuildError> {
        let name = format!("guest{}", built.domid);
        let home = DomainHome {
            domid: built.domid,
            name: &name,
            memory_kib: GUEST_PAGES * 4,
            console_mfn: built.console_mfn,
            console_port: built.console_port,
        };
        if let Err(e) = client::make_home(&mut self.store.xs, &home) {
            println!("dom0: xenstored: d{}: writing its home failed: {e}", built.domid);
            return Err(BuildError("write the xenstore home", 0));
        }
        let va = self.consoles.map_at(MAX_GUESTS + i, built.domid, built.store_mfn)?;
        if let Err(rc) = self.store.connect(i, built.domid, va, built.store_port) {
            self.consoles.unmap_at(MAX_GUESTS + i);
            return Err(BuildError("bind the xenstore channel", rc));
        }
        Ok(())
    }

    /// xenstored's store (dom0's tools talk to it as connection 0).
    pub fn xenstore(&mut self) -> &mut crate::xenstore::Xenstore {
        &mut self.store.xs
    }

    /// Whether `domid` is one of dom0's guests.
    pub fn has(&self, domid: u16) -> bool {
        self.slots.iter().flatten().any(|g| g.domid == domid)
    }

    /// Release guest slot `i`'s xenstore connection and home.
    fn disconnect_store(&mut self, i: usize) {
        if self.store.disconnect(i) {
            self.consoles.unmap_at(MAX_GUESTS + i);
        }
    }

    /// Relay every guest's pending console output; whether any line was
    /// printed.
    pub fn pump(&mut self) -> bool {
        self.pump_lines(&mut |_, _| {})
    }

    /// [`Self::pump`], also handing each line to `f` with its domain.
    pub fn pump_lines(&mut self, f: &mut dyn FnMut(u16, &str)) -> bool {
        let mut printed = self.store.pump();
        for g in self.slots.iter_mut().flatten() {
            printed |= relay(g, f);
        }
        printed
    }

    /// The machine frame of `pfn` in the domain built last.
    pub fn last_p2m(&self, pfn: u64) -> Option<u64> {
        self.p2m.get(pfn as usize).copied()
    }

    /// Destroy guest `domid` (running or not); `false` if it is not ours.
    pub fn destroy(&mut self, domid: u16) -> bool {
        let Some(i) = self.slots.iter().position(|s| s.is_some_and(|g| g.domid == domid)) else { return false };
        self.disconnect_store(i);
        if let Some(mut g) = self.slots[i].take() {
            let _ = relay(&mut g, &mut |_, _| {});
            events::close(g.port);
            self.consoles.unmap_at(i);
            let rc = hv::domctl_simple(hv::DESTROYDOMAIN, domid);
            if rc != 0 {
                println!("dom0: destroying d{domid} failed: {rc}");
            }
        }
        true
    }

    /// Destroy guest `domid` while dom0 still maps its console page;
    /// returns a token that [`Self::release_console`] takes to unmap it.
    pub fn destroy_keeping_console(&mut self, domid: u16) -> Option<usize> {
        let i = self.slots.iter().position(|s| s.is_some_and(|g| g.domid == domid))?;
        self.disconnect_store(i);
        let g = self.slots[i].take()?;
        events::close(g.port);
        let rc = hv::domctl_simple(hv::DESTROYDOMAIN, domid);
        (rc == 0).then_some(i)
    }

    /// Unmap a console page kept by [`Self::destroy_keeping_console`].
    pub fn release_console(&mut self, token: usize) {
        self.consoles.unmap_at(token);
    }

    /// Destroy the guests that shut down, reporting each; returns how many.
    pub fn reap(&mut self) -> usize {
        let mut n = 0;
        for i in 0..MAX_GUESTS {
            let Some(g) = self.slots[i] else { continue };
            let Ok((flags, _, _)) = hv::domain_info(g.domid) else { continue };
            if flags & xen_public::XEN_DOMINF_SHUTDOWN != 0 {
                self.destroy(g.domid);
                println!("dom0: d{} shut down ({}); destroyed", g.domid, reason_name((flags >> 16) & 0xff));
                n += 1;
            }
        }
        n
    }

    /// Wait up to `ns` for console output or a domain exception.
    pub fn wait(&self, ns: u64) {
        let mut ports = [0u32; 2 * MAX_GUESTS + 1];
        let mut n = 0;
        let consoles = self.slots.iter().flatten().map(|g| g.port);
        for p in consoles.chain(self.store.ports()).chain((self.dom_exc != 0).then_some(self.dom_exc)) {
            ports[n] = p;
            n += 1;
        }
        let deadline = shared::now_ns().unwrap_or(0) + ns;
        events::poll(&ports[..n], deadline);
        for &p in &ports[..n] {
            events::clear_pending(p);
        }
    }
}

/// Move a guest's console output to dom0's console, a line at a time,
/// handing each line to `f` too; whether a line was printed.
fn relay(g: &mut Guest, f: &mut dyn FnMut(u16, &str)) -> bool {
    let mut printed = false;
    let mut page = RingPage(g.ring_va);
    let mut buf = [0u8; 256];
    loop {
        let n = ring::read_out(&mut page, &mut buf);
        if n == 0 {
            break;
        }
        for &b in &buf[..n] {
            if b == b'\n' || g.len == g.line.len() {
                let text = core::str::from_utf8(&g.line[..g.len]).unwrap_or("<not utf-8>");
                println!("(d{}) {text}", g.domid);
                f(g.domid, text);
                g.len = 0;
                printed = true;
            }
            if b != b'\n' && b != b'\r' {
                g.line[g.len] = b;
                g.len += 1;
            }
        }
        events::send(g.port);
    }
    printed
}

/// EVTCHNOP_bind_virq on vCPU 0.
fn bind_virq(virq: u32) -> Result<u32, i64> {
    let mut a = xen_public::event_channel::EvtchnBindVirq { virq, vcpu: 0, port: 0 };
    let rc = events::op(&mut a);
    if rc != 0 { Err(rc) } else { Ok(a.port) }
}
