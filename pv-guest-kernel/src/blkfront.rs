//! blkfront, the guest half of the block split driver (target only): the
//! xenbus handshake (`frontend_drivers::xenbus_frontend`, run by
//! [`crate::splitdev`]) over this domain's xenstore client, a shared ring
//! of `2^ring-page-order` granted pages, an event channel, and [`SLOTS`]
//! request slots, each with [`SLOT_PAGES`] data pages granted to the
//! backend once at connect (and an indirect page, used when the backend
//! offers `feature-max-indirect-segments`). Reads and writes of any length
//! are cut into requests and kept [`SLOTS`] deep in flight.
//!
//! Invariants: a slot's pages are touched by this side only while the
//! slot is free (the backend owns them while its request is in flight);
//! every response is matched to an in-flight slot or the device is
//! declared broken; nothing the backend writes can make this code index
//! outside its pages or wait without bound (every wait has a deadline).

use crate::alloc::EarlyAlloc;
use crate::grants::Table;
use crate::ring_pages::{MappedPages, copy_from_shared, copy_to_shared};
use crate::splitdev::{self, Located, Stop};
use crate::xenbus::live::Xenbus;
use crate::{StartInfo, events, gtrace, shared};
use frontend_drivers::blkfront::{self as req, Slots};
use frontend_drivers::ring::FrontRing;
use frontend_drivers::xenbus_frontend::{BlkInfo, BlkParams, Blkfront, BlkfrontRing, FrontEvent, Frontend};
use frontend_drivers::xenbus_store::DeviceNodes;
use xen_public::io::blkif::{BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_READ, BLKIF_OP_WRITE, BLKIF_RSP_OKAY, BlkifRequest, BlkifResponse};
use xen_public::trace_guest::{RingKind, RingStep};

/// Requests in flight at most.
pub const SLOTS: usize = 4;
/// Data pages per slot (a request's most: 16 pages indirect, 11 plain).
pub const SLOT_PAGES: usize = 16;
/// First grant reference blkfront uses (below: console, xenstore, tests).
pub const GREF_BASE: u32 = 64;
/// How long one wait for the backend may last.
pub const PATIENCE_NS: u64 = 10_000_000_000;

/// Why an operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlkError {
    /// The backend answered this `BLKIF_RSP_*` status.
    Status(i16),
    /// The backend did not answer in time.
    Timeout,
    /// The backend broke the protocol (bad ring indices, unknown id).
    Broken,
    /// The handshake failed: a xenstore errno or a step.
    Handshake(&'static str, i64),
    /// Not enough pages.
    NoMemory,
    /// The buffer is not whole sectors.
    BadLength,
}

impl From<Stop> for BlkError {
    fn from(s: Stop) -> Self {
        match s {
            Stop::Timeout => BlkError::Timeout,
            Stop::Handshake(step, e) => BlkError::Handshake(step, e),
        }
    }
}

/// What to ask the backend for.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// `ring-page-order` wanted (the backend's offer caps it).
    pub ring_page_order: u32,
    /// Use indirect requests if offered.
    pub indirect: bool,
    /// Ask for `feature-persistent`: this driver grants its slots' pages
    /// once and reuses them, which is what the feature promises.
    pub persistent: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { ring_page_order: 1, indirect: true, persistent: true }
    }
}

/// One request slot.
#[derive(Clone, Copy)]
struct Slot {
    /// Data pages (VA) and their grants.
    va: [u64; SLOT_PAGES],
    gref: [u32; SLOT_PAGES],
    /// The indirect page and its grant.
    ind_va: u64,
    ind_gref: u32,
    /// The request using it: read?, byte offset in the caller's buffer, bytes.
    read: bool,
    at: usize,
    len: usize,
}

/// A connected virtual block device.
pub struct BlkDev {
    ring: FrontRing<BlkifRequest, BlkifResponse, MappedPages>,
    port: u32,
    handle: u16,
    slots: [Slot; SLOTS],
    busy: Slots<SLOTS>,
    /// Segments per request.
    per_request: usize,
    indirect: bool,
    /// What the backend said at Connected.
    pub info: BlkInfo,
    frontend: Frontend<Blkfront>,
    nodes: DeviceNodes,
    /// A wait timed out or the backend broke the ring: no more I/O.
    failed: bool,
    /// The backend's domain.
    backend_id: u16,
}

/// Connect to virtual device `devid` (51712 is xvda): run the handshake to
/// Connected. `table` is this domain's grant table; pages come from
/// `pages`.
pub fn connect(si: &StartInfo, xs: &mut Xenbus, table: &Table, pages: &mut EarlyAlloc, devid: u32, opts: Options) -> Result<BlkDev, BlkError> {
    let Located { nodes, backend_id } = splitdev::locate(xs, "vbd", devid, "blk")?;
    let dev = Blkfront { max_ring_page_order: opts.ring_page_order, persistent: opts.persistent };
    let mut frontend = Frontend::new(dev, &nodes.otherend).ok_or(BlkError::Handshake("paths", 0))?;
    let mut s = Setup { si, table, pages, backend_id, ring: None, devid, opts };
    let info = splitdev::handshake(xs, &nodes, &mut frontend, PATIENCE_NS, |p| s.setup_ring(p))?;
    s.finish(info, frontend, nodes)
}

/// The device being set up: what its ring and slots are granted from.
struct Setup<'a> {
    si: &'a StartInfo,
    table: &'a Table,
    pages: &'a mut EarlyAlloc,
    backend_id: u16,
    ring: Option<(MappedPages, u32, heapless::Vec<u32, 16>)>,
    devid: u32,
    opts: Options,
}

impl Setup<'_> {
    /// Grant the ring pages, open the channel.
    fn setup_ring(&mut self, p: BlkParams) -> FrontEvent<BlkfrontRing> {
        let n = 1usize << p.ring_page_order.min(4);
        let mut vas: heapless::Vec<u64, 16> = heapless::Vec::new();
        let mut refs: heapless::Vec<u32, 16> = heapless::Vec::new();
        for i in 0..n {
            let Some(va) = self.pages.alloc_page() else { return FrontEvent::RingFailed(-xen_public::errno::ENOMEM) };
            let gref = GREF_BASE + i as u32;
            self.table.grant(gref, self.backend_id, crate::mm::mfn_of(self.si, va), false);
            let _ = vas.push(va);
            let _ = refs.push(gref);
        }
        let port = match events::alloc_unbound(self.backend_id) {
            Ok(p) => p,
            Err(e) => return FrontEvent::RingFailed(e),
        };
        // SAFETY: fresh pages of our own, mapped writable, granted to the
        // backend and used only as this ring from now on.
        let Some(mem) = (unsafe { MappedPages::new(&vas) }) else { return FrontEvent::RingFailed(-xen_public::errno::EINVAL) };
        self.ring = Some((mem, port, refs.clone()));
        FrontEvent::RingReady(BlkfrontRing { ring_refs: refs, evtchn: port })
    }

    /// Connected with `info`: initialise the ring, grant the slots' pages.
    fn finish(self, info: BlkInfo, frontend: Frontend<Blkfront>, nodes: DeviceNodes) -> Result<BlkDev, BlkError> {
        let (mem, port, refs) = self.ring.ok_or(BlkError::Broken)?;
        let ring = FrontRing::init(mem).map_err(|_| BlkError::Broken)?;
        let indirect = self.opts.indirect && info.max_indirect_segments as usize >= SLOT_PAGES;
        let per_request = if indirect { SLOT_PAGES } else { SLOT_PAGES.min(11) };
        let mut next = GREF_BASE + refs.len() as u32;
        let mut grant = |pages: &mut EarlyAlloc| -> Result<(u64, u32), BlkError> {
            let va = pages.alloc_page().ok_or(BlkError::NoMemory)?;
            self.table.grant(next, self.backend_id, crate::mm::mfn_of(self.si, va), false);
            next += 1;
            Ok((va, next - 1))
        };
        let empty = Slot { va: [0; SLOT_PAGES], gref: [0; SLOT_PAGES], ind_va: 0, ind_gref: 0, read: false, at: 0, len: 0 };
        let mut slots = [empty; SLOTS];
        for s in &mut slots {
            for j in 0..SLOT_PAGES {
                (s.va[j], s.gref[j]) = grant(self.pages)?;
            }
            (s.ind_va, s.ind_gref) = grant(self.pages)?;
        }
        let handle = self.devid as u16;
        Ok(BlkDev {
            ring,
            port,
            handle,
            slots,
            busy: Slots::default(),
            per_request,
            indirect,
            info,
            frontend,
            nodes,
            failed: false,
            backend_id: self.backend_id,
        })
    }
}

/// The caller's buffer for one transfer.
enum Buf<'a> {
    Read(&'a mut [u8]),
    Write(&'a [u8]),
}

impl BlkDev {
    /// Bytes one request moves at most.
    pub fn request_bytes(&self) -> usize {
        self.per_request * 4096
    }

    /// Whether requests go indirect.
    pub fn indirect(&self) -> bool {
        self.indirect
    }

    /// Read `buf.len()` bytes (whole sectors) from `sector`.
    pub fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlkError> {
        self.transfer(sector, Buf::Read(buf))
    }

    /// Write `buf` (whole sectors) at `sector`.
    pub fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), BlkError> {
        self.transfer(sector, Buf::Write(buf))
    }

    /// BLKIF_OP_FLUSH_DISKCACHE with no data: every write answered before
    /// is on the backend's disk.
    pub fn flush(&mut self) -> Result<(), BlkError> {
        let r = BlkifRequest { operation: BLKIF_OP_FLUSH_DISKCACHE, handle: self.handle, ..Default::default() };
        self.one(r)
    }

    /// Send one request built by the caller (any operation, any contents:
    /// the hostile-frontend test uses it) and wait for its status.
    pub fn one(&mut self, r: BlkifRequest) -> Result<(), BlkError> {
        let res = self.one_inner(r);
        self.note_failure(res)
    }

    fn one_inner(&mut self, mut r: BlkifRequest) -> Result<(), BlkError> {
        if self.failed {
            return Err(BlkError::Broken);
        }
        let slot = self.busy.take().ok_or(BlkError::Broken)?;
        r.id = slot as u64;
        (self.slots[slot].read, self.slots[slot].len) = (false, 0);
        self.push(&r)?;
        let mut status = Ok(());
        while self.busy.in_flight() > 0 {
            self.collect(&mut Buf::Write(&[]), &mut status)?;
        }
        status
    }

    /// Publish `req_prod` as `req_prod_pvt + extra` without requests behind
    /// it (the hostile-frontend test: a ring index a hostile guest made
    /// up), and kick the backend.
    pub fn corrupt_req_prod(&mut self, extra: u32) {
        let forged = self.ring.req_prod_pvt().wrapping_add(extra);
        let va = self.ring.pages().first_page();
        // SAFETY: `va` is this ring's first page, ours, mapped writable;
        // req_prod is its first, aligned word.
        unsafe { core::sync::atomic::AtomicU32::from_ptr(va as *mut u32).store(forged, core::sync::atomic::Ordering::Release) };
        events::send(self.port);
    }

    /// Grant data page `j` of slot `i` to the backend again, read-only or
    /// not (the hostile-frontend test: a read into a page the backend may
    /// not write). Only while the slot is free.
    pub fn regrant(&self, table: &Table, si: &StartInfo, i: usize, j: usize, readonly: bool) {
        let s = &self.slots[i % SLOTS];
        table.grant(s.gref[j % SLOT_PAGES], self.backend_id, crate::mm::mfn_of(si, s.va[j % SLOT_PAGES]), readonly);
    }

    /// The grant of data page `j` of slot `i` (for hand-built requests).
    pub fn slot_gref(&self, i: usize, j: usize) -> u32 {
        self.slots[i % SLOTS].gref[j % SLOT_PAGES]
    }

    /// Follow the backend for up to `patience` ns: handle its state
    /// changes (a backend going Closing, as `xl block-detach` makes it,
    /// closes this end). Whether the device is now closed.
    pub fn follow_backend(&mut self, xs: &mut Xenbus, patience: u64) -> bool {
        let closed = splitdev::follow(xs, &self.nodes, &mut self.frontend, patience);
        if closed {
            events::close(self.port);
        }
        closed
    }

    /// Close the device: Closing, then Closed once the backend follows (or
    /// after [`PATIENCE_NS`]).
    pub fn close(mut self, xs: &mut Xenbus) {
        splitdev::close(xs, &self.nodes, &mut self.frontend, PATIENCE_NS);
        events::close(self.port);
    }

    fn transfer(&mut self, sector: u64, mut buf: Buf<'_>) -> Result<(), BlkError> {
        let r = self.transfer_inner(sector, &mut buf);
        self.note_failure(r)
    }

    /// After a timeout or a broken ring the slots may still be in the
    /// backend's hands: the device takes nothing more (a late response can
    /// then never land in a later caller's buffer).
    fn note_failure(&mut self, r: Result<(), BlkError>) -> Result<(), BlkError> {
        if matches!(r, Err(BlkError::Timeout | BlkError::Broken)) {
            self.failed = true;
        }
        r
    }

    fn transfer_inner(&mut self, sector: u64, buf: &mut Buf<'_>) -> Result<(), BlkError> {
        if self.failed {
            return Err(BlkError::Broken);
        }
        let total = match &*buf {
            Buf::Read(b) => b.len(),
            Buf::Write(b) => b.len(),
        };
        if !total.is_multiple_of(req::SECTOR) {
            return Err(BlkError::BadLength);
        }
        let mut sent = 0;
        let mut status = Ok(());
        while sent < total || self.busy.in_flight() > 0 {
            // Every free slot's request first, then one push and at most
            // one event for the batch, as Linux's blkfront flushes at the
            // last request of a batch (`bd->last`): an event per request
            // wakes the backend, which then preempts us, per request.
            let mut produced = false;
            while sent < total && status.is_ok() {
                let Some(slot) = self.busy.take() else { break };
                let n = (total - sent).min(self.request_bytes());
                let r = self.build(slot, sector + (sent / req::SECTOR) as u64, buf, sent, n);
                self.ring.produce_request(&r).map_err(|_| BlkError::Broken)?;
                produced = true;
                sent += n;
            }
            if produced {
                self.kick();
            }
            self.collect(buf, &mut status)?;
            if status.is_err() && self.busy.in_flight() == 0 {
                break;
            }
        }
        status
    }

    /// Fill slot `slot` for bytes `[at, at + n)` of the transfer and build
    /// its request.
    fn build(&mut self, slot: usize, sector: u64, buf: &Buf<'_>, at: usize, n: usize) -> BlkifRequest {
        let s = &mut self.slots[slot];
        (s.read, s.at, s.len) = (matches!(buf, Buf::Read(_)), at, n);
        if let Buf::Write(src) = buf {
            for (j, chunk) in src[at..at + n].chunks(4096).enumerate() {
                copy_to(s.va[j], chunk);
            }
        }
        let op = if s.read { BLKIF_OP_READ } else { BLKIF_OP_WRITE };
        if self.indirect {
            let mut list = [0u8; 4096];
            let nseg = req::fill_indirect(&mut list, &s.gref, n);
            copy_to(s.ind_va, &list);
            req::indirect_request(op, slot as u64, self.handle, sector, nseg, &[s.ind_gref])
        } else {
            req::rw_request(op, slot as u64, self.handle, sector, &s.gref, n)
        }
    }

    fn push(&mut self, r: &BlkifRequest) -> Result<(), BlkError> {
        self.ring.produce_request(r).map_err(|_| BlkError::Broken)?;
        self.kick();
        Ok(())
    }

    /// Publish the produced requests; an event if the backend asked.
    fn kick(&mut self) {
        let p = self.ring.push_requests_span();
        gtrace::ring_step(RingStep::PushRequests, RingKind::Blk, self.backend_id, p.from, p.to, p.notify);
        if p.notify {
            events::send(self.port);
        }
    }

    /// Take the responses there are (waiting for one if none), copying
    /// read data out; the first bad status goes to `status`.
    fn collect(&mut self, buf: &mut Buf<'_>, status: &mut Result<(), BlkError>) -> Result<(), BlkError> {
        let before = self.ring.rsp_cons();
        let r = self.collect_responses(buf, status);
        gtrace::ring_step(RingStep::TakeResponses, RingKind::Blk, self.backend_id, before, self.ring.rsp_cons(), false);
        r
    }

    /// [`Self::collect`]'s loop: responses until at least one came, the
    /// deadline passed or the ring broke.
    fn collect_responses(&mut self, buf: &mut Buf<'_>, status: &mut Result<(), BlkError>) -> Result<(), BlkError> {
        let deadline = shared::now_ns().unwrap_or(0) + PATIENCE_NS;
        loop {
            let mut got = false;
            while let Some(rsp) = self.ring.consume_response().map_err(|_| BlkError::Broken)? {
                got = true;
                let slot = self.busy.complete(rsp.id).map_err(|_| BlkError::Broken)?;
                if rsp.status != BLKIF_RSP_OKAY {
                    if status.is_ok() {
                        *status = Err(BlkError::Status(rsp.status));
                    }
                    continue;
                }
                let s = &self.slots[slot];
                if let (true, Buf::Read(dst)) = (s.read, &mut *buf) {
                    for (j, chunk) in dst[s.at..s.at + s.len].chunks_mut(4096).enumerate() {
                        copy_from(s.va[j], chunk);
                    }
                }
            }
            if got {
                return Ok(());
            }
            if self.ring.final_check_for_responses().map_err(|_| BlkError::Broken)? {
                continue;
            }
            let now = shared::now_ns().unwrap_or(u64::MAX);
            if now >= deadline {
                return Err(BlkError::Timeout);
            }
            events::poll(&[self.port], deadline.min(now + 10_000_000));
            events::clear_pending(self.port);
        }
    }
}

/// Copy `src` (at most a page) to our page at `va`.
fn copy_to(va: u64, src: &[u8]) {
    let n = src.len().min(4096);
    // SAFETY: `va` is one of this device's own pages, mapped writable; the
    // backend may touch it too (its grant stays), which the volatile copy
    // allows.
    unsafe { copy_to_shared(va, &src[..n]) };
}

/// Copy our page at `va` into `dst` (at most a page).
fn copy_from(va: u64, dst: &mut [u8]) {
    let n = dst.len().min(4096);
    // SAFETY: as in `copy_to`.
    unsafe { copy_from_shared(va, &mut dst[..n]) };
}
