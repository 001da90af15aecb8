//! netfront, the guest half of the network split driver (target only): the
//! xenbus handshake (`frontend_drivers::xenbus_frontend` with
//! `frontend_drivers::netfront::Netfront`, run by [`crate::splitdev`]) over
//! this domain's xenstore client, a one-page tx ring and a one-page rx
//! ring, one event channel, [`TX_PAGES`] tx pages and up to [`RX_PAGES`] rx
//! pages granted to the backend once at connect (grant refs from
//! [`GREF_BASE`]), and a frame buffer of [`FRAME_BUF`] bytes where
//! multi-slot packets are reassembled.
//!
//! Sending copies a frame into free tx pages (one request per page,
//! `NETTXF_more_data` between them when both ends do `feature-sg`);
//! receiving keeps every rx page posted (`xennet_alloc_rx_buffers`) and
//! copies each response's data out before posting its page again.
//!
//! Invariants: a tx page is written by this side only while its id is
//! free, an rx page is read only between its response and its next
//! posting; every response is matched to an id in flight (tx) or a posted
//! buffer (rx), else the device is broken (no more I/O, never a panic or
//! an access outside its pages); every wait has a deadline.

use crate::alloc::EarlyAlloc;
use crate::grants::Table;
use crate::ring_pages::{MappedPages, copy_from_shared, copy_to_shared};
use crate::splitdev::{self, Located, Stop};
use crate::xenbus::live::Xenbus;
use crate::{StartInfo, events, gtrace, shared};
use frontend_drivers::blkfront::Slots;
use frontend_drivers::netfront::{NetInfo, NetParams, Netfront, NetfrontRing, RxAssembler, TX_SLOTS_MAX, tx_chain, tx_slots};
use frontend_drivers::ring::FrontRing;
use frontend_drivers::xenbus_frontend::{FrontEvent, Frontend};
use frontend_drivers::xenbus_store::DeviceNodes;
use xen_public::io::netif::{NETIF_RSP_DROPPED, NETIF_RSP_NULL, NETIF_RSP_OKAY, NetifRxRequest, NetifRxResponse, NetifTxRequest, NetifTxResponse};
use xen_public::trace_guest::{RingKind, RingStep};

pub use frontend_drivers::netfront::Mac;

/// Tx pages (and tx ids): frames in flight at most, one page each.
pub const TX_PAGES: usize = 32;
/// Rx pages posted at most.
pub const RX_PAGES: usize = 64;
/// Bytes of the reassembly buffer: the largest frame (64 KiB less one).
pub const FRAME_BUF: usize = 16 * 4096;
/// First grant reference netfront uses (blkfront's are 64 up; the one
/// table frame holds 0-511): tx ring, rx ring, tx pages, rx pages.
pub const GREF_BASE: u32 = 256;
/// How long one wait for the backend may last.
pub const PATIENCE_NS: u64 = 10_000_000_000;

/// Why an operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetError {
    /// The backend broke the protocol (bad ring index, unknown id).
    Broken,
    /// The backend did not answer in time.
    Timeout,
    /// The handshake failed: a step and a xenstore errno.
    Handshake(&'static str, i64),
    /// Not enough pages.
    NoMemory,
    /// No tx page or ring slot free for this frame now.
    Busy,
    /// The frame cannot be sent (empty, too long, needs sg).
    BadFrame,
}

/// What to ask for.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Rx pages to keep posted (at most [`RX_PAGES`]; 0: none, the
    /// hostile test's "no rx space").
    pub rx_buffers: usize,
    /// Use `feature-sg` if the backend offers it.
    pub sg: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { rx_buffers: RX_PAGES, sg: true }
    }
}

/// Counters of what happened on the vif.
#[derive(Clone, Copy, Debug, Default)]
pub struct NetStats {
    /// Frames sent (requests answered okay are not told apart).
    pub tx_frames: u64,
    /// Tx responses with an error or dropped status.
    pub tx_errors: u64,
    /// Frames received whole.
    pub rx_frames: u64,
    /// Packets dropped on receive (bad fragments, too long, empty).
    pub rx_dropped: u64,
}

/// The tx half: its ring, pages and ids (a frame's requests each use the
/// id of the page it lies in).
pub struct TxSide {
    ring: FrontRing<NetifTxRequest, NetifTxResponse, MappedPages>,
    va: [u64; TX_PAGES],
    gref: [u32; TX_PAGES],
    ids: Slots<TX_PAGES>,
    port: u32,
    /// The backend's domain (both rings').
    backend: u16,
    sg: bool,
    failed: bool,
    /// What broke the device first (for the console).
    broken_by: Option<&'static str>,
    stats: NetStats,
}

/// A connected vif.
pub struct NetDev {
    tx: TxSide,
    rx: FrontRing<NetifRxRequest, NetifRxResponse, MappedPages>,
    rx_va: [u64; RX_PAGES],
    rx_gref: [u32; RX_PAGES],
    rx_posted: Slots<RX_PAGES>,
    rx_wanted: usize,
    asm: RxAssembler,
    frame: &'static mut [u8],
    /// What the handshake found: mac, static ip, sg.
    pub info: NetInfo,
    frontend: Frontend<Netfront>,
    nodes: DeviceNodes,
}

impl From<Stop> for NetError {
    fn from(s: Stop) -> Self {
        match s {
            Stop::Timeout => NetError::Timeout,
            Stop::Handshake(step, e) => NetError::Handshake(step, e),
        }
    }
}

/// Connect to vif `devid` (`device/vif/<devid>`): run the handshake to
/// Connected, grant the pages and post the rx buffers. `table` is this
/// domain's grant table; pages come from `pages`.
pub fn connect(si: &StartInfo, xs: &mut Xenbus, table: &Table, pages: &mut EarlyAlloc, devid: u32, opts: Options) -> Result<NetDev, NetError> {
    let Located { nodes, backend_id } = splitdev::locate(xs, "vif", devid, "vif")?;
    let fe_dir = nodes.dir().ok_or(NetError::Handshake("paths", 0))?;
    let dev = Netfront::new(&fe_dir, opts.sg).ok_or(NetError::Handshake("paths", 0))?;
    let mut frontend = Frontend::new(dev, &nodes.otherend).ok_or(NetError::Handshake("paths", 0))?;
    let mut s = Setup { si, table, pages, backend_id, rings: None };
    let info = splitdev::handshake(xs, &nodes, &mut frontend, PATIENCE_NS, |p| s.setup_rings(p))?;
    s.finish(info, frontend, nodes, opts)
}

/// The rings set up during the handshake: tx, rx pages and the port.
type Rings = (MappedPages, MappedPages, u32);

/// The vif being set up: what its rings and pages are granted from.
struct Setup<'a> {
    si: &'a StartInfo,
    table: &'a Table,
    pages: &'a mut EarlyAlloc,
    backend_id: u16,
    rings: Option<Rings>,
}

impl Setup<'_> {
    /// Grant one fresh page to the backend as `gref`.
    fn grant_page(&mut self, gref: u32) -> Option<u64> {
        let va = self.pages.alloc_page()?;
        self.table.grant(gref, self.backend_id, crate::mm::mfn_of(self.si, va), false);
        Some(va)
    }

    /// Grant the two ring pages, open the channel.
    fn setup_rings(&mut self, _p: NetParams) -> FrontEvent<NetfrontRing> {
        let (Some(tx_va), Some(rx_va)) = (self.grant_page(GREF_BASE), self.grant_page(GREF_BASE + 1)) else {
            return FrontEvent::RingFailed(-xen_public::errno::ENOMEM);
        };
        let port = match events::alloc_unbound(self.backend_id) {
            Ok(p) => p,
            Err(e) => return FrontEvent::RingFailed(e),
        };
        // SAFETY: fresh pages of our own, mapped writable, granted to the
        // backend and used only as these rings from now on.
        let (Some(tx), Some(rx)) = (unsafe { MappedPages::new(&[tx_va]) }, unsafe { MappedPages::new(&[rx_va]) }) else {
            return FrontEvent::RingFailed(-xen_public::errno::EINVAL);
        };
        self.rings = Some((tx, rx, port));
        FrontEvent::RingReady(NetfrontRing { tx_ring_ref: GREF_BASE, rx_ring_ref: GREF_BASE + 1, evtchn: port })
    }

    /// Connected with `info`: initialise the rings, grant the data pages,
    /// post rx.
    fn finish(mut self, info: NetInfo, frontend: Frontend<Netfront>, nodes: DeviceNodes, opts: Options) -> Result<NetDev, NetError> {
        let (tx_mem, rx_mem, port) = self.rings.take().ok_or(NetError::Broken)?;
        let tx_ring = FrontRing::init(tx_mem).map_err(|_| NetError::Broken)?;
        let rx = FrontRing::init(rx_mem).map_err(|_| NetError::Broken)?;
        let mut next = GREF_BASE + 2;
        let (mut va, mut gref) = ([0u64; TX_PAGES], [0u32; TX_PAGES]);
        for i in 0..TX_PAGES {
            va[i] = self.grant_page(next).ok_or(NetError::NoMemory)?;
            gref[i] = next;
            next += 1;
        }
        let rx_wanted = opts.rx_buffers.min(RX_PAGES);
        let (mut rx_va, mut rx_gref) = ([0u64; RX_PAGES], [0u32; RX_PAGES]);
        for i in 0..rx_wanted {
            rx_va[i] = self.grant_page(next).ok_or(NetError::NoMemory)?;
            rx_gref[i] = next;
            next += 1;
        }
        let base = self.pages.alloc_run((FRAME_BUF / 4096) as u64).ok_or(NetError::NoMemory)?;
        // SAFETY: FRAME_BUF bytes of our initial region at `base`, handed
        // out once by the allocator, never granted, used only as this
        // device's frame buffer.
        let frame = unsafe { core::slice::from_raw_parts_mut(base as *mut u8, FRAME_BUF) };
        let tx = TxSide {
            ring: tx_ring,
            va,
            gref,
            ids: Slots::default(),
            port,
            backend: self.backend_id,
            sg: info.sg,
            failed: false,
            broken_by: None,
            stats: NetStats::default(),
        };
        let mut dev =
            NetDev { tx, rx, rx_va, rx_gref, rx_posted: Slots::default(), rx_wanted, asm: RxAssembler::default(), frame, info, frontend, nodes };
        dev.refill_rx()?;
        Ok(dev)
    }
}

impl TxSide {
    /// Take the tx responses there are: free their ids. A bad id or index
    /// breaks the device.
    fn reap(&mut self) -> Result<(), NetError> {
        if self.failed {
            return Err(NetError::Broken);
        }
        let before = self.ring.rsp_cons();
        let r = self.reap_responses();
        gtrace::ring_step(RingStep::TakeResponses, RingKind::NetTx, self.backend, before, self.ring.rsp_cons(), false);
        r
    }

    /// [`Self::reap`]'s loop: responses until the final check finds none.
    fn reap_responses(&mut self) -> Result<(), NetError> {
        loop {
            while let Some(rsp) = self.ring.consume_response().map_err(|_| self.broke("a tx response index"))? {
                // An extra-info slot's answer (`xennet_tx_buf_gc`).
                if rsp.status == NETIF_RSP_NULL {
                    continue;
                }
                self.ids.complete(u64::from(rsp.id)).map_err(|_| self.broke("a tx response id"))?;
                if rsp.status == NETIF_RSP_OKAY {
                    self.stats.tx_frames += 1;
                } else {
                    self.stats.tx_errors += 1;
                }
            }
            if !self.ring.final_check_for_responses().map_err(|_| self.broke("the tx final check"))? {
                return Ok(());
            }
        }
    }

    fn broke(&mut self, why: &'static str) -> NetError {
        self.failed = true;
        self.broken_by.get_or_insert(why);
        NetError::Broken
    }

    /// Free answered tx ids, then say whether a frame of `len` bytes could
    /// be sent now.
    pub fn ready(&mut self, len: usize) -> bool {
        self.reap().is_ok() && self.can_send(len)
    }

    /// Whether a frame of `len` bytes could be sent now.
    pub fn can_send(&self, len: usize) -> bool {
        let n = tx_slots(len);
        !self.failed && TX_PAGES - self.ids.in_flight() >= n && self.ring.free_requests() as usize >= n
    }

    /// Copy `frame` into free tx pages and send it; `Busy` if there is no
    /// room now (reap first).
    pub fn send(&mut self, frame: &[u8]) -> Result<(), NetError> {
        self.reap()?;
        if !self.can_send(frame.len()) {
            return Err(NetError::Busy);
        }
        let n = tx_slots(frame.len());
        let mut slots: heapless::Vec<(u16, u32), TX_SLOTS_MAX> = heapless::Vec::new();
        for _ in 0..n {
            let id = self.ids.take().ok_or(NetError::Busy)?;
            let _ = slots.push((id as u16, self.gref[id]));
        }
        let reqs = match tx_chain(frame.len(), &slots, self.sg) {
            Ok(r) => r,
            Err(_) => {
                for (id, _) in &slots {
                    let _ = self.ids.complete(u64::from(*id));
                }
                return Err(NetError::BadFrame);
            }
        };
        for ((id, _), piece) in slots.iter().zip(frame.chunks(4096)) {
            copy_to(self.va[usize::from(*id)], piece);
        }
        for r in &reqs {
            self.ring.produce_request(r).map_err(|_| NetError::Busy)?;
        }
        self.kick();
        Ok(())
    }

    /// Publish what was produced; an event if the backend asked.
    fn kick(&mut self) {
        let p = self.ring.push_requests_span();
        gtrace::ring_step(RingStep::PushRequests, RingKind::NetTx, self.backend, p.from, p.to, p.notify);
        if p.notify {
            events::send(self.port);
        }
    }
}

/// What the backend answered to hand-built tx requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxTally {
    /// `NETIF_RSP_OKAY`.
    pub okay: u32,
    /// `NETIF_RSP_ERROR`.
    pub error: u32,
    /// `NETIF_RSP_DROPPED`.
    pub dropped: u32,
    /// `NETIF_RSP_NULL` and any other status.
    pub other: u32,
    /// Requests still unanswered at the deadline.
    pub unanswered: u32,
}

impl NetDev {
    /// This vif's MAC.
    pub fn mac(&self) -> Mac {
        self.info.mac
    }

    /// The event channel of both rings.
    pub fn port(&self) -> u32 {
        self.tx.port
    }

    /// Counters.
    pub fn stats(&self) -> NetStats {
        self.tx.stats
    }

    /// Whether the backend broke the rings (no more I/O).
    pub fn is_broken(&self) -> bool {
        self.tx.failed
    }

    /// What broke them first, if it was a response (not the backend
    /// closing).
    pub fn broken_by(&self) -> Option<&'static str> {
        self.tx.broken_by
    }

    /// The tx half (to send while a received frame is borrowed).
    pub fn tx(&mut self) -> &mut TxSide {
        &mut self.tx
    }

    /// Post every rx page not posted (`xennet_alloc_rx_buffers`), and
    /// notify the backend if it asked (`feature-rx-notify`).
    fn refill_rx(&mut self) -> Result<(), NetError> {
        let mut produced = false;
        while self.rx_posted.in_flight() < self.rx_wanted && !self.rx.is_full() {
            let Some(id) = self.rx_posted.take() else { break };
            if id >= self.rx_wanted {
                let _ = self.rx_posted.complete(id as u64);
                break;
            }
            self.rx.produce_request(&NetifRxRequest { id: id as u16, pad: 0, gref: self.rx_gref[id] }).map_err(|_| NetError::Broken)?;
            produced = true;
        }
        if !produced {
            return Ok(());
        }
        let p = self.rx.push_requests_span();
        gtrace::ring_step(RingStep::PushRequests, RingKind::NetRx, self.tx.backend, p.from, p.to, p.notify);
        if p.notify {
            events::send(self.tx.port);
        }
        Ok(())
    }

    /// The next whole received frame, if one is there, with the tx half
    /// (so an answer can be sent while the frame is borrowed). Frees
    /// answered tx ids and reposts rx pages on the way.
    pub fn receive(&mut self) -> Result<Option<(&[u8], &mut TxSide)>, NetError> {
        self.tx.reap()?;
        let got = self.next_frame();
        let refilled = self.refill_rx();
        let len = got?;
        refilled?;
        Ok(len.map(|n| (&self.frame[..n], &mut self.tx)))
    }

    /// Consume rx responses until a frame is whole; its length.
    fn next_frame(&mut self) -> Result<Option<usize>, NetError> {
        let before = self.rx.rsp_cons();
        let r = self.assemble_frame();
        gtrace::ring_step(RingStep::TakeResponses, RingKind::NetRx, self.tx.backend, before, self.rx.rsp_cons(), false);
        r
    }

    /// [`Self::next_frame`]'s loop: rx responses until a frame is whole or
    /// the final check finds none.
    fn assemble_frame(&mut self) -> Result<Option<usize>, NetError> {
        loop {
            while let Some(rsp) = self.rx.consume_response().map_err(|_| self.tx.broke("an rx response index"))? {
                let id = self.rx_posted.complete(u64::from(rsp.id)).map_err(|_| self.tx.broke("an rx response id"))?;
                let step = self.asm.push(&rsp, self.frame.len());
                if let Some(c) = step.copy {
                    copy_from(self.rx_va[id] + c.offset as u64, &mut self.frame[c.at..c.at + c.len]);
                }
                match step.end {
                    Some(Ok(n)) => {
                        self.tx.stats.rx_frames += 1;
                        return Ok(Some(n));
                    }
                    Some(Err(_)) => self.tx.stats.rx_dropped += 1,
                    None => {}
                }
                if self.rx_posted.in_flight() == 0 {
                    // A chain longer than the pages posted: post them again
                    // (the assembler drops what does not fit).
                    self.refill_rx()?;
                }
            }
            if !self.rx.final_check_for_responses().map_err(|_| self.tx.broke("the rx final check"))? {
                return Ok(None);
            }
        }
    }

    /// Sleep until an event on the vif or on `also` (e.g. the store's), or
    /// until `deadline` (system time); rings are checked again after.
    pub fn wait(&mut self, also: &[u32], deadline: u64) {
        let tx_ready = self.tx.ring.final_check_for_responses().unwrap_or(true);
        let rx_ready = self.rx.final_check_for_responses().unwrap_or(true);
        if tx_ready || rx_ready {
            return;
        }
        let mut ports = [self.tx.port; 4];
        let n = 1 + also.len().min(3);
        ports[1..n].copy_from_slice(&also[..n - 1]);
        if !ports[..n].iter().any(|p| events::is_pending(*p)) {
            events::poll(&ports[..n], deadline.max(1));
        }
        events::clear_pending(self.tx.port);
    }

    /// For the hostile-frontend test: a free tx id and its page's grant,
    /// now in flight (answered through [`Self::push_raw`]'s requests).
    pub fn take_tx_slot(&mut self) -> Option<(u16, u32)> {
        let _ = self.tx.reap();
        let id = self.tx.ids.take()?;
        Some((id as u16, self.tx.gref[id]))
    }

    /// For the hostile-frontend test: fill tx page `id` with `byte`.
    pub fn fill_tx_page(&mut self, id: u16, byte: u8) {
        let va = self.tx.va[usize::from(id) % TX_PAGES];
        for off in (0..4096).step_by(256) {
            copy_to(va + off, &[byte; 256]);
        }
    }

    /// For the hostile-frontend test: produce `reqs` as they are and push
    /// them (whatever their ids, grants, offsets and flags).
    pub fn push_raw(&mut self, reqs: &[NetifTxRequest]) -> Result<(), NetError> {
        for r in reqs {
            self.tx.ring.produce_request(r).map_err(|_| NetError::Busy)?;
        }
        self.tx.kick();
        Ok(())
    }

    /// For the hostile-frontend test: wait up to `patience` ns for the
    /// answers to every tx id in flight, counting their statuses; ids are
    /// still checked (a bad one breaks the device).
    pub fn tally_tx(&mut self, patience: u64) -> Result<TxTally, NetError> {
        let deadline = shared::now_ns().unwrap_or(0) + patience;
        let mut t = TxTally::default();
        loop {
            while let Some(rsp) = self.tx.ring.consume_response().map_err(|_| self.tx.broke("a tx response index (tally)"))? {
                if rsp.status != NETIF_RSP_NULL {
                    self.tx.ids.complete(u64::from(rsp.id)).map_err(|_| self.tx.broke("a tx response id (tally)"))?;
                }
                match rsp.status {
                    NETIF_RSP_OKAY => t.okay += 1,
                    xen_public::io::netif::NETIF_RSP_ERROR => t.error += 1,
                    NETIF_RSP_DROPPED => t.dropped += 1,
                    _ => t.other += 1,
                }
            }
            if self.tx.ids.in_flight() == 0 {
                return Ok(t);
            }
            let now = shared::now_ns().unwrap_or(u64::MAX);
            if now >= deadline {
                t.unanswered = self.tx.ids.in_flight() as u32;
                return Ok(t);
            }
            if self.tx.ring.final_check_for_responses().map_err(|_| self.tx.broke("the tx final check (tally)"))? {
                continue;
            }
            events::poll(&[self.tx.port], deadline.min(now + 10_000_000));
            events::clear_pending(self.tx.port);
        }
    }

    /// For the hostile-frontend test: forget the tx ids in flight (their
    /// answers never came); a late answer for one is then taken as the
    /// answer of whatever reuses it.
    pub fn forget_tx(&mut self) {
        self.tx.ids = Slots::default();
    }

    /// For the hostile-frontend test: publish `req_prod` as
    /// `req_prod_pvt + extra` with no requests behind it, and kick.
    pub fn corrupt_req_prod(&mut self, extra: u32) {
        let forged = self.tx.ring.req_prod_pvt().wrapping_add(extra);
        let va = self.tx.ring.pages().first_page();
        // SAFETY: `va` is the tx ring's first page, ours, mapped writable;
        // req_prod is its first, aligned word.
        unsafe { core::sync::atomic::AtomicU32::from_ptr(va as *mut u32).store(forged, core::sync::atomic::Ordering::Release) };
        events::send(self.tx.port);
    }

    /// The backend's domain.
    pub fn backend_id(&self) -> u16 {
        self.tx.backend
    }

    /// The backend's directory.
    pub fn backend_dir(&self) -> &str {
        &self.nodes.otherend
    }

    /// Follow the backend for up to `patience` ns: handle its state
    /// changes (a backend going Closing, as when dom0 detaches the vif,
    /// closes this end). Whether the device is now closed.
    pub fn follow_backend(&mut self, xs: &mut Xenbus, patience: u64) -> bool {
        let closed = splitdev::follow(xs, &self.nodes, &mut self.frontend, patience);
        if closed {
            self.tx.failed = true;
            events::close(self.tx.port);
        }
        closed
    }

    /// Close the vif: Closing, then Closed once the backend follows (or
    /// after [`PATIENCE_NS`]).
    pub fn close(mut self, xs: &mut Xenbus) {
        splitdev::close(xs, &self.nodes, &mut self.frontend, PATIENCE_NS);
        events::close(self.tx.port);
    }
}

/// Copy `src` (at most a page) to our page at `va`.
fn copy_to(va: u64, src: &[u8]) {
    let n = src.len().min(4096 - (va % 4096) as usize);
    // SAFETY: `va` lies in one of this device's own pages, mapped
    // writable, and `n` bytes fit in that page; the backend may touch it
    // too (its grant stays), which the volatile copy allows.
    unsafe { copy_to_shared(va, &src[..n]) };
}

/// Copy from our page at `va` into `dst` (at most to the page's end).
fn copy_from(va: u64, dst: &mut [u8]) {
    let n = dst.len().min(4096 - (va % 4096) as usize);
    // SAFETY: as in `copy_to`.
    unsafe { copy_from_shared(va, &mut dst[..n]) };
}
