//! A stable-Rust fuzzer for the typed rings, and the fake shared pages the
//! ring tests use ([`SharedPages`]).
//!
//! Each iteration is one episode: a blkif ring of `2^order` pages (order
//! 0..=4, so entries straddle page boundaries from order 2) starting at a
//! random index (often just below 2^32), an honest [`FrontRing`] and an
//! honest [`BackRing`] over the same pages with event channels modelled as
//! flags, and in hostile episodes a third party that scribbles the shared
//! indices (made-up `req_prod`, `rsp_prod`, `req_event`, `rsp_event`, as a
//! hostile frontend or backend would) and sometimes entry bytes. A
//! deterministic xorshift engine picks every action, so a seed and an
//! iteration replay exactly.
//!
//! Invariants checked after every action:
//! - no access leaves the ring's pages or crosses a page ([`SharedPages`]
//!   records it), and no panic;
//! - each side's private indices stay within the ring size of each other
//!   (`req_prod_pvt - rsp_cons <= size`, `req_cons - rsp_prod_pvt <=
//!   size`), so consumed never passes produced;
//! - every shared producer index the rings read is judged against a
//!   reference: an impossible one gets a peer-fault [`RingError`], a
//!   possible one never does;
//! - until the first scribble (always, in honest episodes) every response
//!   the front takes answers its oldest outstanding request, by id and by
//!   content derived from the request the back copied out;
//! - honest episodes: no error at all, no lost wake-up (a side asleep on
//!   its event channel has nothing unseen on the ring), and after a drain
//!   every request is answered.
//!
//! Host only in practice (no I/O, no clock, no allocation).
#![forbid(unsafe_code)]

use core::cell::{Cell, RefCell};

use super::pages::{MAX_RING_PAGE_ORDER, RingError, RingPages, XEN_PAGE_SIZE, off};
use super::{BackRing, FrontRing, RingIdx, SringHeader};
use crate::io::blkif::{BlkifRequest, BlkifResponse};
use zerocopy::IntoBytes;

/// Bytes of the largest ring ([`MAX_RING_PAGE_ORDER`]).
pub const MAX_RING_BYTES: usize = XEN_PAGE_SIZE << MAX_RING_PAGE_ORDER;

/// A bad access a ring made to [`SharedPages`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccessFault {
    /// Offset of the access.
    pub off: usize,
    /// Its length.
    pub len: usize,
}

/// A store that lets a "peer" act first: when a ring stores an index at
/// `on_store`, `value` is written at `write` just before it (a race
/// between the ring's check and its store, played in one thread).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trap {
    /// The index store that springs the trap.
    pub on_store: usize,
    /// Where the peer writes.
    pub write: usize,
    /// What it writes.
    pub value: u32,
}

/// Ring pages in host memory, shared by reference between a front, a back
/// and a scribbler. Out-of-range or page-crossing accesses are recorded
/// (first one kept) and ignored, never performed.
pub struct SharedPages {
    bytes: RefCell<[u8; MAX_RING_BYTES]>,
    nr_pages: usize,
    fault: Cell<Option<AccessFault>>,
    bytes_read: Cell<u64>,
    trap: Cell<Option<Trap>>,
}

impl SharedPages {
    /// Zeroed pages that report `nr_pages` (any number, to test the page
    /// count check; at most [`MAX_RING_BYTES`] are backed).
    pub fn new(nr_pages: usize) -> SharedPages {
        SharedPages { bytes: RefCell::new([0; MAX_RING_BYTES]), nr_pages, fault: Cell::new(None), bytes_read: Cell::new(0), trap: Cell::new(None) }
    }

    /// Zero the pages and forget faults, reads and traps, reporting
    /// `nr_pages` from now on.
    pub fn reset(&mut self, nr_pages: usize) {
        self.bytes.get_mut().fill(0);
        self.nr_pages = nr_pages;
        self.fault.set(None);
        self.bytes_read.set(0);
        self.trap.set(None);
    }

    /// The first bad access, if any.
    pub fn fault(&self) -> Option<AccessFault> {
        self.fault.get()
    }

    /// Entry and header bytes read so far through [`RingPages::read`].
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.get()
    }

    /// Arm a [`Trap`] (one shot).
    pub fn set_trap(&self, t: Trap) {
        self.trap.set(Some(t));
    }

    /// Read an index as the peer sees it (no ordering, no checks).
    pub fn peek(&self, off: usize) -> u32 {
        let b = self.bytes.borrow();
        u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
    }

    /// Read a byte as the peer sees it.
    pub fn peek_byte(&self, off: usize) -> u8 {
        self.bytes.borrow().get(off).copied().unwrap_or(0)
    }

    /// Write an index as a peer or scribbler would.
    pub fn poke(&self, off: usize, v: u32) {
        self.bytes.borrow_mut()[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }

    /// Write a byte as a scribbler would.
    pub fn poke_byte(&self, off: usize, v: u8) {
        if off < MAX_RING_BYTES {
            self.bytes.borrow_mut()[off] = v;
        }
    }

    /// Write a whole ring header (to start a ring at any index).
    pub fn set_header(&self, h: &SringHeader) {
        self.bytes.borrow_mut()[..h.as_bytes().len()].copy_from_slice(h.as_bytes());
    }

    /// `off..off + len` is inside the reported pages, inside the backing,
    /// and inside one page; otherwise the access is recorded.
    fn check(&self, off: usize, len: usize) -> bool {
        let end = off.checked_add(len);
        let limit = (self.nr_pages * XEN_PAGE_SIZE).min(MAX_RING_BYTES);
        let ok = end.is_some_and(|e| e <= limit) && (len == 0 || off / XEN_PAGE_SIZE == (off + len - 1) / XEN_PAGE_SIZE);
        if !ok && self.fault.get().is_none() {
            self.fault.set(Some(AccessFault { off, len }));
        }
        ok
    }
}

impl RingPages for &SharedPages {
    fn nr_pages(&self) -> usize {
        self.nr_pages
    }
    fn load_idx(&self, off: usize) -> RingIdx {
        if !self.check(off, 4) || !off.is_multiple_of(4) || off >= 16 {
            self.check(usize::MAX, 1);
            return 0;
        }
        self.peek(off)
    }
    fn store_idx(&mut self, off: usize, v: RingIdx) {
        if !self.check(off, 4) || !off.is_multiple_of(4) || off >= 16 {
            self.check(usize::MAX, 1);
            return;
        }
        if let Some(t) = self.trap.get().filter(|t| t.on_store == off) {
            self.trap.set(None);
            self.poke(t.write, t.value);
        }
        self.poke(off, v);
    }
    fn full_barrier(&self) {}
    fn read(&self, off: usize, buf: &mut [u8]) {
        if self.check(off, buf.len()) {
            buf.copy_from_slice(&self.bytes.borrow()[off..off + buf.len()]);
            self.bytes_read.set(self.bytes_read.get() + buf.len() as u64);
        }
    }
    fn write(&mut self, off: usize, data: &[u8]) {
        if self.check(off, data.len()) {
            self.bytes.borrow_mut()[off..off + data.len()].copy_from_slice(data);
        }
    }
}

/// The xorshift64* engine.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// An engine from `seed` (0 is remapped).
    pub fn new(seed: u64) -> Rng {
        Rng(mix(seed) | 1)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// A value in `0..n` (0 if n is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
    /// True with probability `1/n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
}

/// splitmix64's finaliser: spreads a seed or an id over 64 bits.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A broken invariant: where, what, and the values involved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The run's seed.
    pub seed: u64,
    /// The iteration (episode) it broke in.
    pub iteration: u64,
    /// The action within the episode.
    pub step: u32,
    /// The invariant.
    pub what: &'static str,
    /// Values involved (meaning depends on `what`).
    pub values: [u64; 3],
}

/// What a run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Episodes run.
    pub episodes: u64,
    /// Of which hostile.
    pub hostile: u64,
    /// Actions taken.
    pub steps: u64,
    /// Requests produced by fronts.
    pub requests: u64,
    /// Responses taken by fronts.
    pub responses: u64,
    /// Pushes that notified (requests, responses).
    pub notifies: [u64; 2],
    /// Final checks that found work after setting the event index.
    pub late_work: u64,
    /// Indices (and bytes) made up by the scribbler.
    pub scribbles: u64,
    /// Peer faults reported, by kind: request-prod overflow, request-prod
    /// behind consumer, response-prod overflow, response-prod past requests.
    pub errors: [u64; 4],
    /// Responses accepted after a scribble that did not match (garbage the
    /// driver must catch by id; not a ring failure).
    pub garbage_responses: u64,
    /// Episodes per ring-page-order.
    pub orders: [u64; 5],
    /// The first broken invariant.
    pub failure: Option<Failure>,
}

/// Index in [`Report::errors`] of a peer fault.
fn error_kind(e: RingError) -> Option<usize> {
    match e {
        RingError::RequestProdOverflow { .. } => Some(0),
        RingError::RequestProdBehindConsumer { .. } => Some(1),
        RingError::ResponseProdOverflow { .. } => Some(2),
        RingError::ResponseProdPastRequests { .. } => Some(3),
        _ => None,
    }
}

/// The request the front makes as its `id`th.
pub fn request_for(id: u64) -> BlkifRequest {
    let h = mix(id);
    BlkifRequest { operation: (h % 4) as u8, nr_segments: (h >> 8) as u8 % 12, id, sector_number: h >> 16, ..Default::default() }
}

/// The response the back gives to `req` (derived from the copy it read).
pub fn response_for(req: &BlkifRequest) -> BlkifResponse {
    let status = (req.sector_number ^ u64::from(req.nr_segments)) as i16 & 3;
    BlkifResponse { id: req.id, operation: req.operation, status, ..Default::default() }
}

/// Most blkif requests a ring holds (order 4).
const MAX_SLOTS: usize = 512;

type Front<'a> = FrontRing<BlkifRequest, BlkifResponse, &'a SharedPages>;
type Back<'a> = BackRing<BlkifRequest, BlkifResponse, &'a SharedPages>;

/// One episode's state.
struct Episode<'a> {
    pages: &'a SharedPages,
    front: Front<'a>,
    back: Back<'a>,
    rng: Rng,
    hostile: bool,
    scribbled: bool,
    /// Front's event channel pending (or a reason to poll).
    front_evt: bool,
    /// Back's event channel pending.
    back_evt: bool,
    front_dead: bool,
    back_dead: bool,
    /// Id of the front's next request, and of the oldest unanswered one.
    next_id: u64,
    oldest_id: u64,
    /// Responses the back owes, in order (its in-flight I/O).
    owed: [BlkifResponse; MAX_SLOTS],
    owed_head: usize,
    owed_len: usize,
    step: u32,
}

/// The fuzzer: one episode per iteration.
pub struct Fuzzer {
    /// The run's seed.
    pub seed: u64,
    /// Episodes run so far.
    pub iteration: u64,
    /// Totals.
    pub report: Report,
    pages: SharedPages,
}

/// Actions per episode (at most).
pub const STEPS_PER_EPISODE: u32 = 400;

impl Fuzzer {
    /// A fuzzer from `seed`.
    pub fn new(seed: u64) -> Fuzzer {
        Fuzzer { seed, iteration: 0, report: Report::default(), pages: SharedPages::new(1) }
    }

    /// Run the next episode; Err on the first broken invariant (also kept
    /// in the report).
    pub fn step(&mut self) -> Result<(), Failure> {
        let mut rng = Rng::new(self.seed ^ mix(self.iteration.wrapping_add(1)));
        let order = rng.below(u64::from(MAX_RING_PAGE_ORDER) + 1) as u32;
        let hostile = !rng.one_in(3);
        let start = match rng.below(4) {
            0 => 0,
            1 => (rng.next_u64() as u32) | 0xffff_fe00,
            2 => u32::MAX - rng.below(4) as u32,
            _ => rng.next_u64() as u32,
        };
        self.pages.reset(1 << order);
        self.report.episodes += 1;
        self.report.orders[order as usize] += 1;
        self.report.hostile += u64::from(hostile);
        let r = run_episode(&self.pages, rng, start, hostile, &mut self.report).map_err(|mut f| {
            f.seed = self.seed;
            f.iteration = self.iteration;
            f
        });
        self.iteration += 1;
        if let Err(f) = r {
            self.report.failure = Some(f);
        }
        r
    }
}

/// Run one episode over `pages` (already sized), starting at index `start`.
fn run_episode(pages: &SharedPages, rng: Rng, start: RingIdx, hostile: bool, report: &mut Report) -> Result<(), Failure> {
    let fail = |what| Failure { seed: 0, iteration: 0, step: 0, what, values: [0; 3] };
    let idx1 = start.wrapping_add(1);
    pages.set_header(&SringHeader { req_prod: start, req_event: idx1, rsp_prod: start, rsp_event: idx1, ..SringHeader::new() });
    let front = Front::attach(pages, start).map_err(|_| fail("attach front"))?;
    let back = Back::attach(pages, start).map_err(|_| fail("attach back"))?;
    let mut e = Episode {
        pages,
        front,
        back,
        rng,
        hostile,
        scribbled: false,
        front_evt: false,
        back_evt: false,
        front_dead: false,
        back_dead: false,
        next_id: 0,
        oldest_id: 0,
        owed: [BlkifResponse::default(); MAX_SLOTS],
        owed_head: 0,
        owed_len: 0,
        step: 0,
    };
    e.run(report).map_err(|mut f| {
        f.step = e.step;
        f
    })
}

impl Episode<'_> {
    fn size(&self) -> u32 {
        self.front.size()
    }

    fn fail(&self, what: &'static str, values: [u64; 3]) -> Failure {
        Failure { seed: 0, iteration: 0, step: self.step, what, values }
    }

    fn run(&mut self, report: &mut Report) -> Result<(), Failure> {
        for step in 0..STEPS_PER_EPISODE {
            self.step = step;
            report.steps += 1;
            match self.rng.below(10) {
                0..=2 => self.front_produce(report)?,
                3..=4 => self.back_run(report, false)?,
                5..=6 => self.front_run(report, false)?,
                7 if self.hostile => self.scribble(report),
                8 => self.spurious_event(),
                _ => {}
            }
            self.check()?;
        }
        if !self.hostile {
            self.drain(report)?;
        }
        Ok(())
    }

    /// The front makes up to its free slots' worth of requests (and
    /// sometimes one more, which must be refused) and pushes them.
    fn front_produce(&mut self, report: &mut Report) -> Result<(), Failure> {
        if self.front_dead {
            return Ok(());
        }
        let free = self.front.free_requests();
        let n = self.rng.below(u64::from(free) + 2) as u32;
        for _ in 0..n.min(free) {
            let req = request_for(self.next_id);
            self.front.produce_request(&req).map_err(|_| self.fail("produce with a free slot refused", [free.into(), 0, 0]))?;
            self.next_id += 1;
            report.requests += 1;
        }
        if n > free && self.front.produce_request(&request_for(self.next_id)) != Err(RingError::Full) {
            return Err(self.fail("produce on a full ring not refused", [free.into(), n.into(), 0]));
        }
        if n > 0 && self.front.push_requests() {
            self.back_evt = true;
            report.notifies[0] += 1;
        }
        Ok(())
    }

    /// A peer-fault error: counted, the side disconnects. Honest episodes
    /// have none; a local-misuse error is always a failure.
    fn peer_error(&self, e: RingError, report: &mut Report) -> Result<(), Failure> {
        let Some(k) = error_kind(e) else { return Err(self.fail("local misuse error from an honest side", [0; 3])) };
        if !self.scribbled {
            return Err(self.fail("peer fault reported with no scribble", [k as u64, 0, 0]));
        }
        report.errors[k] += 1;
        Ok(())
    }

    /// Reference for the back: `req_prod` is possible iff it is at most
    /// the free space beyond `req_cons`.
    fn req_prod_possible(&self) -> bool {
        let req_prod = self.pages.peek(off::REQ_PROD);
        let k = req_prod.wrapping_sub(self.back.req_cons());
        k <= self.size() - self.back.unanswered()
    }

    /// Reference for the front: `rsp_prod` is possible iff it answers at
    /// most the requests outstanding.
    fn rsp_prod_possible(&self) -> bool {
        let rsp_prod = self.pages.peek(off::RSP_PROD);
        rsp_prod.wrapping_sub(self.front.rsp_cons()) <= self.front.req_prod_pvt().wrapping_sub(self.front.rsp_cons())
    }

    /// The back, if awake: consume up to a budget, answer some of what it
    /// owes, push, and sleep after a final check when it has caught up.
    fn back_run(&mut self, report: &mut Report, all: bool) -> Result<(), Failure> {
        if self.back_dead || !(self.back_evt || self.owed_len > 0) {
            return Ok(());
        }
        let size = self.size();
        let budget = if all { size + 1 } else { self.rng.below(u64::from(size) + 2) as u32 };
        let mut caught_up = false;
        for _ in 0..budget {
            let possible = self.req_prod_possible();
            match self.back.consume_request() {
                Ok(Some(req)) if possible => self.owe(response_for(&req))?,
                Ok(None) if possible => {
                    caught_up = true;
                    break;
                }
                Err(e) if !possible => {
                    self.peer_error(e, report)?;
                    self.back_dead = true;
                    return Ok(());
                }
                Ok(_) => return Err(self.fail("impossible req_prod accepted", [self.pages.peek(off::REQ_PROD).into(), 0, 0])),
                Err(_) => return Err(self.fail("possible req_prod refused", [self.pages.peek(off::REQ_PROD).into(), 0, 0])),
            }
        }
        let answer = if all { self.owed_len } else { self.rng.below(self.owed_len as u64 + 1) as usize };
        for _ in 0..answer {
            let rsp = self.owed[self.owed_head];
            self.owed_head = (self.owed_head + 1) % MAX_SLOTS;
            self.owed_len -= 1;
            self.back.produce_response(&rsp).map_err(|_| self.fail("back refused to answer a consumed request", [0; 3]))?;
        }
        if answer > 0 && self.back.push_responses() {
            self.front_evt = true;
            report.notifies[1] += 1;
        }
        if caught_up {
            let possible = self.req_prod_possible();
            match self.back.final_check_for_requests() {
                Ok(work) if possible => {
                    report.late_work += u64::from(work);
                    self.back_evt = work;
                }
                Err(e) if !possible => {
                    self.peer_error(e, report)?;
                    self.back_dead = true;
                }
                Ok(_) => return Err(self.fail("final check accepted an impossible req_prod", [0; 3])),
                Err(_) => return Err(self.fail("final check refused a possible req_prod", [0; 3])),
            }
        }
        Ok(())
    }

    /// Queue a response the back owes.
    fn owe(&mut self, rsp: BlkifResponse) -> Result<(), Failure> {
        if self.owed_len >= MAX_SLOTS || self.owed_len as u32 >= self.size() {
            return Err(self.fail("back consumed more than the ring holds", [self.owed_len as u64, 0, 0]));
        }
        self.owed[(self.owed_head + self.owed_len) % MAX_SLOTS] = rsp;
        self.owed_len += 1;
        Ok(())
    }

    /// The front, if woken: take responses (checking them), then sleep
    /// after a final check when it has caught up.
    fn front_run(&mut self, report: &mut Report, all: bool) -> Result<(), Failure> {
        if self.front_dead || !self.front_evt {
            return Ok(());
        }
        let size = self.size();
        let budget = if all { size + 1 } else { self.rng.below(u64::from(size) + 2) as u32 };
        let mut caught_up = false;
        for _ in 0..budget {
            let possible = self.rsp_prod_possible();
            match self.front.consume_response() {
                Ok(Some(rsp)) if possible => self.check_response(&rsp, report)?,
                Ok(None) if possible => {
                    caught_up = true;
                    break;
                }
                Err(e) if !possible => {
                    self.peer_error(e, report)?;
                    self.front_dead = true;
                    return Ok(());
                }
                Ok(_) => return Err(self.fail("impossible rsp_prod accepted", [self.pages.peek(off::RSP_PROD).into(), 0, 0])),
                Err(_) => return Err(self.fail("possible rsp_prod refused", [self.pages.peek(off::RSP_PROD).into(), 0, 0])),
            }
        }
        if caught_up {
            let possible = self.rsp_prod_possible();
            match self.front.final_check_for_responses() {
                Ok(work) if possible => {
                    report.late_work += u64::from(work);
                    self.front_evt = work;
                }
                Err(e) if !possible => {
                    self.peer_error(e, report)?;
                    self.front_dead = true;
                }
                Ok(_) => return Err(self.fail("final check accepted an impossible rsp_prod", [0; 3])),
                Err(_) => return Err(self.fail("final check refused a possible rsp_prod", [0; 3])),
            }
        }
        Ok(())
    }

    /// A response must answer the oldest outstanding request, unless a
    /// scribble has already made the ring carry garbage.
    fn check_response(&mut self, rsp: &BlkifResponse, report: &mut Report) -> Result<(), Failure> {
        let want = response_for(&request_for(self.oldest_id));
        self.oldest_id += 1;
        report.responses += 1;
        if *rsp == want {
            return Ok(());
        }
        if !self.scribbled {
            return Err(self.fail("response does not answer its request", [rsp.id, want.id, 0]));
        }
        report.garbage_responses += 1;
        Ok(())
    }

    /// The third party makes up an index (or, rarely, entry bytes).
    fn scribble(&mut self, report: &mut Report) {
        self.scribbled = true;
        report.scribbles += 1;
        if self.rng.one_in(8) {
            let bytes = (self.pages.nr_pages * XEN_PAGE_SIZE) as u64;
            let at = 64 + self.rng.below(bytes - 64) as usize;
            self.pages.poke_byte(at, self.rng.next_u64() as u8);
            return;
        }
        let at = [off::REQ_PROD, off::REQ_EVENT, off::RSP_PROD, off::RSP_EVENT][self.rng.below(4) as usize];
        let cur = self.pages.peek(at);
        let size = self.size();
        let v = match self.rng.below(8) {
            0 => self.rng.next_u64() as u32,
            1 => cur.wrapping_add(self.rng.below(4) as u32),
            2 => cur.wrapping_sub(1 + self.rng.below(3) as u32),
            3 => cur.wrapping_add(size),
            4 => cur.wrapping_add(size + 1),
            5 => cur ^ 0x8000_0000,
            6 => cur.wrapping_sub(size),
            _ => u32::MAX - self.rng.below(2) as u32,
        };
        self.pages.poke(at, v);
    }

    /// An event with nothing behind it (allowed: both sides must cope).
    fn spurious_event(&mut self) {
        if self.rng.one_in(2) {
            self.front_evt = true;
        } else {
            self.back_evt = true;
        }
    }

    /// Invariants after every action.
    fn check(&self) -> Result<(), Failure> {
        if let Some(f) = self.pages.fault() {
            return Err(self.fail("access outside the ring's pages or across a page", [f.off as u64, f.len as u64, 0]));
        }
        let size = self.size();
        let outstanding = self.front.req_prod_pvt().wrapping_sub(self.front.rsp_cons());
        if outstanding > size {
            return Err(self.fail("front: req_prod_pvt - rsp_cons beyond the ring size", [outstanding.into(), size.into(), 0]));
        }
        if self.back.unanswered() > size || self.back.unanswered() as usize != self.owed_len {
            return Err(self.fail("back: req_cons - rsp_prod_pvt wrong", [self.back.unanswered().into(), self.owed_len as u64, 0]));
        }
        if u64::from(outstanding) != self.next_id - self.oldest_id {
            return Err(self.fail("front: responses taken beyond requests made", [outstanding.into(), self.next_id, self.oldest_id]));
        }
        if !self.hostile {
            self.check_no_lost_wakeup()?;
        }
        Ok(())
    }

    /// Honest episodes: a side asleep has nothing unseen on the ring.
    fn check_no_lost_wakeup(&self) -> Result<(), Failure> {
        let back_asleep = !self.back_evt && self.owed_len == 0;
        if back_asleep && self.pages.peek(off::REQ_PROD) != self.back.req_cons() {
            return Err(self.fail("lost wake-up: back asleep with requests on the ring", [0; 3]));
        }
        if !self.front_evt && self.pages.peek(off::RSP_PROD) != self.front.rsp_cons() {
            return Err(self.fail("lost wake-up: front asleep with responses on the ring", [0; 3]));
        }
        Ok(())
    }

    /// Honest episodes end with both sides run until idle: every request
    /// answered and taken, within a bounded number of rounds.
    fn drain(&mut self, report: &mut Report) -> Result<(), Failure> {
        for _ in 0..4 * self.size() + 8 {
            self.back_run(report, true)?;
            self.front_run(report, true)?;
            self.check()?;
        }
        if self.front.req_prod_pvt() != self.front.rsp_cons() || self.owed_len != 0 || self.next_id != self.oldest_id {
            return Err(self.fail("honest ring did not drain", [self.next_id, self.oldest_id, self.owed_len as u64]));
        }
        Ok(())
    }
}
