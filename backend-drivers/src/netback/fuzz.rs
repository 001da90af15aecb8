//! A stable-Rust fuzzer of netback's request validation (`cargo xtask
//! fuzz-netback`): the pure core ([`serve_tx`], [`serve_rx`] and its
//! [`RxQueue`], [`Credit`], checksum completion, [`VifStats`]) against a
//! hostile netfront on in-memory ring pages ([`SharedPages`]) and a fake
//! grant table, as `serve_tests` fakes them.
//!
//! Each iteration is one episode: one vif (random `feature-sg`, checksum
//! offload, rx queue limits, `rate=` credit and a fake microsecond clock)
//! whose tx and rx rings start at a random index (often just below 2^32).
//! Actions, picked by a seeded xorshift engine, interleave honest traffic
//! (valid chains of up to 19 slots, real UDP frames with a blank checksum)
//! with hostile traffic: bad grant refs, slots past their page, packets
//! over 64 KiB or under `ETH_HLEN`, 19-20 and over 20 fragment slots
//! (`XEN_NETBK_LEGACY_SLOTS_MAX`, `fatal_skb_slots`), fragments larger than
//! what is left, `more_data` on the last slot, garbage and unoffered
//! extra-info, `csum_blank` on junk headers, spoofed source MACs, random
//! slot bytes, made-up `req_prod`s (far ahead, behind `req_cons`, random),
//! rx requests with bad or repeated grants, too few rx slots while frames
//! queue, frames of every size for the rx queue. A quarter of the episodes
//! are honest only. Deterministic: a seed and an iteration replay exactly.
//!
//! Invariants checked after every serve (a reference model of Linux's
//! `xenvif_tx_build_gops`, `xenvif_get_extras`, `xenvif_count_requests`
//! and `xenvif_rx_skb`, drivers/net/xen-netback/, classifies every packet
//! the frontend put on the ring from a snapshot of the slots):
//! - no panic, no access outside the ring pages;
//! - the backend consumes whole packets only, in order, and answers every
//!   consumed slot exactly once (`rsp_prod == req_cons` after a call):
//!   the packet's `id` and `NETIF_RSP_OKAY`/`ERROR` as the model says,
//!   `NETIF_RSP_NULL` on extra-info slots (io/netif.h);
//! - grant copies name exactly the grants, offsets and lengths of the
//!   requests being served (never another grant, never past a page);
//! - delivered frames are byte-identical to what the chain carried,
//!   `ETH_HLEN..=65535` bytes long, with the request's checksum flags;
//!   in honest episodes every packet is delivered, none dropped;
//! - the classes Linux treats as fatal (`xenvif_fatal_tx_err`: a slot past
//!   its page, more than `fatal_skb_slots`, a bad or missing extra, published
//!   slots that end mid-packet, an impossible `req_prod`) are reported, with nothing consumed from that packet on,
//!   and the vif is served no more; nothing else is fatal;
//! - a call stops only for a reason: no requests, `max_packets`, a fatal
//!   error, or no credit (then a refill time in
//!   the future is named), and the credit's rate bound holds;
//! - the rx queue stays within the vif's frame and byte limits and agrees
//!   with a model FIFO; rx responses carry the request's id, offset 0, the
//!   byte count (or the grant copy's error) and `NETRXF_more_data` on all
//!   but the last slot of a frame;
//! - the counters add up: every consumed tx packet is delivered, counted
//!   in exactly one drop counter, or a multicast operation; every frame
//!   offered to the rx queue is delivered, counted dropped, or queued.
#![forbid(unsafe_code)]

use super::credit::{Credit, MIN_BURST};
use super::csum::{ETH_HLEN, complete_l4_checksum};
use super::handshake::VifRing;
use super::rx::{MAX_RX_SLOTS, RxBackRing, RxCopier, RxFlags, RxFrag, RxQueue, serve_rx};
use super::stats::VifStats;
use super::tx::{FATAL_SKB_SLOTS, LEGACY_SLOTS_MAX, MAX_PACKET, TX_BUF, TxBackRing, TxCopier, TxFatal, TxFrag, TxPacket, serve_tx};
use crate::ring::XEN_PAGE_SIZE;
use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;
use xen_public::grant_table::GNTST_BAD_GNTREF;
use xen_public::io::netif::{
    NETIF_RSP_DROPPED, NETIF_RSP_ERROR, NETIF_RSP_NULL, NETIF_RSP_OKAY, NETRXF_CSUM_BLANK, NETRXF_DATA_VALIDATED, NETRXF_MORE_DATA,
    NETTXF_CSUM_BLANK, NETTXF_DATA_VALIDATED, NETTXF_EXTRA_INFO, NETTXF_MORE_DATA, NetifExtraInfo, NetifRxRequest, NetifRxResponse, NetifTxRequest,
    NetifTxResponse, XEN_NETIF_EXTRA_FLAG_MORE, XEN_NETIF_EXTRA_TYPE_GSO, XEN_NETIF_EXTRA_TYPE_HASH, XEN_NETIF_EXTRA_TYPE_MAX,
    XEN_NETIF_EXTRA_TYPE_MCAST_ADD, XEN_NETIF_EXTRA_TYPE_MCAST_DEL,
};
use xen_public::io::ring::fuzz::{Rng, SharedPages, mix};
use xen_public::io::ring::{Geometry, RingPages, SringHeader, off, read_entry, write_entry};
use zerocopy::{FromBytes, IntoBytes};

/// Actions per episode (at most).
pub const STEPS_PER_EPISODE: u32 = 160;
/// Valid tx-side grants: `1..=GREFS`, one per tx ring slot, so an honest
/// frontend never rewrites a page the backend has yet to copy.
const GREFS: u32 = 256;
/// Valid rx-side grants: `RX_GREF0..RX_GREF0 + RX_GREFS`.
const RX_GREFS: u32 = 64;
/// The first rx-side grant.
const RX_GREF0: u32 = 1000;

/// Names of the hostile tx actions ([`Report::hostile`]).
pub const HOSTILE: [&str; 16] = [
    "bad grant ref",
    "slot past its page",
    "packet over 64 KiB",
    "packet under ETH_HLEN",
    "19-20 fragment slots",
    "over 20 fragment slots",
    "fragment over the size left",
    "more_data on the last slot",
    "garbage extra-info",
    "GSO or multicast extra",
    "csum_blank on junk",
    "spoofed source MAC",
    "random slot bytes",
    "req_prod far ahead",
    "req_prod behind req_cons",
    "req_prod random",
];
/// Names of the hostile rx actions ([`Report::rx_hostile`]).
pub const RX_HOSTILE: [&str; 4] = ["rx bad grant", "rx repeated grant", "rx req_prod made up", "rx frame of any size"];
/// Names of the fatal classes ([`Report::fatal`]).
pub const FATAL: [&str; 6] = ["tx cross page", "tx too many slots", "tx bad extra", "tx ring", "rx ring", "tx missing slots"];

/// A broken invariant: where, what, and the values involved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The run's seed.
    pub seed: u64,
    /// The iteration (episode).
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
    /// Of which honest only.
    pub honest_episodes: u64,
    /// Actions taken.
    pub steps: u64,
    /// Honest tx packets put on the ring.
    pub honest: u64,
    /// Hostile tx actions, by [`HOSTILE`] class.
    pub hostile: [u64; 16],
    /// Hostile rx actions, by [`RX_HOSTILE`] class.
    pub rx_hostile: [u64; 4],
    /// Tx packets delivered to dom0.
    pub tx_delivered: u64,
    /// Tx packets answered with an error.
    pub tx_dropped: u64,
    /// Multicast extra-info operations answered.
    pub tx_mcast: u64,
    /// Serves that stopped for lack of credit.
    pub credit_waits: u64,
    /// Delivered frames the bridge port refused for their source MAC.
    pub spoofed: u64,
    /// Frames delivered into the guest's rx ring.
    pub rx_delivered: u64,
    /// Frames dropped on the rx side (refused by the queue, too big,
    /// copy failed).
    pub rx_dropped: u64,
    /// Serves that left a frame waiting for rx slots.
    pub rx_starved: u64,
    /// Fatal errors reported, by [`FATAL`] class.
    pub fatal: [u64; 6],
    /// The first broken invariant.
    pub failure: Option<Failure>,
}

/// A deliberate fault in the harness, to show the checks can fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(test), allow(dead_code))]
enum Sabotage {
    /// Overwrite the status of the first tx response of a serve with 7.
    TxStatus,
    /// Flip a byte of the first frame delivered by a serve.
    TxFrame,
    /// Let `serve_tx` go on after a fatal error (serve again).
    ServeAfterFatal,
}

/// The frontend's granted pages: `1..=GREFS` for tx data, `RX_GREF0..`
/// for rx buffers; every other reference is not granted. Every copy the
/// backend asks for is logged, to be checked against the requests.
struct Grants {
    pages: Vec<[u8; XEN_PAGE_SIZE]>,
    tx_log: Vec<Vec<TxFrag>>,
    rx_log: Vec<(Vec<RxFrag>, Vec<u8>)>,
    /// A copy outside its page or buffer was asked for.
    bad_copy: Option<(u32, usize, usize)>,
}

impl Grants {
    fn new() -> Grants {
        Grants { pages: vec![[0; XEN_PAGE_SIZE]; (GREFS + RX_GREFS) as usize], tx_log: Vec::new(), rx_log: Vec::new(), bad_copy: None }
    }

    fn index(gref: u32) -> Option<usize> {
        match gref {
            1..=GREFS => Some(gref as usize - 1),
            g if (RX_GREF0..RX_GREF0 + RX_GREFS).contains(&g) => Some((g - RX_GREF0 + GREFS) as usize),
            _ => None,
        }
    }

    fn valid(gref: u32) -> bool {
        Self::index(gref).is_some()
    }

    fn bytes(&self, gref: u32, off: usize, len: usize) -> &[u8] {
        Self::index(gref).map_or(&[][..], |i| &self.pages[i][off..off + len])
    }
}

impl TxCopier for Grants {
    fn copy_in(&mut self, frags: &[TxFrag], buf: &mut [u8]) -> Result<(), i16> {
        self.tx_log.push(frags.to_vec());
        for f in frags {
            let (o, l) = (usize::from(f.offset), usize::from(f.len));
            if l == 0 || o + l > XEN_PAGE_SIZE || f.buf_off + l > buf.len() {
                self.bad_copy.get_or_insert((f.gref, o, l));
                return Err(GNTST_BAD_GNTREF);
            }
            let i = Self::index(f.gref).ok_or(GNTST_BAD_GNTREF)?;
            buf[f.buf_off..f.buf_off + l].copy_from_slice(&self.pages[i][o..o + l]);
        }
        Ok(())
    }
}

impl RxCopier for Grants {
    fn copy_out(&mut self, frags: &[RxFrag], data: &[u8]) -> Result<(), i16> {
        self.rx_log.push((frags.to_vec(), data.to_vec()));
        for f in frags {
            let (o, l) = (usize::from(f.offset), usize::from(f.len));
            if o + l > XEN_PAGE_SIZE || f.data_off + l > data.len() {
                self.bad_copy.get_or_insert((f.gref, o, l));
                return Err(GNTST_BAD_GNTREF);
            }
            let i = Self::index(f.gref).ok_or(GNTST_BAD_GNTREF)?;
            self.pages[i][o..o + l].copy_from_slice(&data[f.data_off..f.data_off + l]);
        }
        Ok(())
    }
}

/// Why the model says a packet is fatal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FatalKind {
    CrossPage,
    TooManySlots,
    BadExtra,
    /// The published slots end mid-packet (`slots >= work_to_do`).
    MissingSlots,
}

/// What the model says a packet gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Deliver,
    Mcast,
    /// Dropped, with the [`VifStats`] counter it goes to: 0 bad size, 1 too
    /// many slots, 2 bad extra (GSO).
    Drop(usize),
}

/// A packet as the model reads it off the ring.
#[derive(Clone, Debug)]
struct Pkt {
    slots: usize,
    extras: usize,
    first: NetifTxRequest,
    kind: Kind,
    /// The copies a delivery makes: the first slot's own bytes, then each
    /// non-empty fragment, back to back.
    frags: Vec<TxFrag>,
}

/// The model's verdict on the slots at `req_cons`.
#[derive(Clone, Debug)]
enum Verdict {
    Fatal(FatalKind),
    Packet(Pkt),
}

fn extra_of(r: &NetifTxRequest) -> NetifExtraInfo {
    NetifExtraInfo::read_from_bytes(&r.as_bytes()[..8]).unwrap_or_default()
}

/// The reference model of Linux's tx rules (netback.c), with this
/// backend's documented choices (tx.rs): a packet whose published slots
/// end wanting more is fatal, as Linux's `xenvif_count_requests` and
/// `xenvif_get_extras` make it; GSO (not offered) drops.
fn classify(slots: &[NetifTxRequest]) -> Verdict {
    let avail = slots.len();
    let first = slots[0];
    let mut i = 1;
    let (mut gso, mut mcast) = (false, false);
    if first.flags & NETTXF_EXTRA_INFO != 0 {
        // xenvif_get_extras.
        loop {
            if i >= avail {
                return Verdict::Fatal(FatalKind::BadExtra);
            }
            let e = extra_of(&slots[i]);
            i += 1;
            if e.type_ == 0 || e.type_ >= XEN_NETIF_EXTRA_TYPE_MAX {
                return Verdict::Fatal(FatalKind::BadExtra);
            }
            gso |= e.type_ == XEN_NETIF_EXTRA_TYPE_GSO;
            mcast |= e.type_ == XEN_NETIF_EXTRA_TYPE_MCAST_ADD || e.type_ == XEN_NETIF_EXTRA_TYPE_MCAST_DEL;
            if e.flags & XEN_NETIF_EXTRA_FLAG_MORE == 0 {
                break;
            }
        }
    }
    let extras = i - 1;
    if mcast {
        return Verdict::Packet(Pkt { slots: i, extras, first, kind: Kind::Mcast, frags: Vec::new() });
    }
    // xenvif_count_requests.
    let mut left = first.size;
    let mut drop = None;
    let mut tail = Vec::new();
    if first.flags & NETTXF_MORE_DATA != 0 {
        let mut n = 0u32;
        loop {
            if i >= avail {
                return Verdict::Fatal(FatalKind::MissingSlots);
            }
            if n >= FATAL_SKB_SLOTS {
                return Verdict::Fatal(FatalKind::TooManySlots);
            }
            if drop.is_none() && n >= LEGACY_SLOTS_MAX {
                drop = Some(1);
            }
            let t = slots[i];
            i += 1;
            if drop.is_none() && t.size > left {
                drop = Some(0);
            }
            left = left.wrapping_sub(t.size);
            n += 1;
            if usize::from(t.offset) + usize::from(t.size) > XEN_PAGE_SIZE {
                return Verdict::Fatal(FatalKind::CrossPage);
            }
            if t.size > 0 {
                tail.push(t);
            }
            if t.flags & NETTXF_MORE_DATA == 0 {
                break;
            }
        }
    }
    let kind = match drop {
        Some(d) => Kind::Drop(d),
        None if usize::from(left) < ETH_HLEN => Kind::Drop(0),
        None if usize::from(first.offset) + usize::from(left) > XEN_PAGE_SIZE => return Verdict::Fatal(FatalKind::CrossPage),
        None if gso => Kind::Drop(2),
        None => Kind::Deliver,
    };
    let mut frags = Vec::new();
    if kind == Kind::Deliver {
        frags.push(TxFrag { gref: first.gref, offset: first.offset, len: left, buf_off: 0 });
        let mut at = usize::from(left);
        for t in tail {
            frags.push(TxFrag { gref: t.gref, offset: t.offset, len: t.size, buf_off: at });
            at += usize::from(t.size);
        }
    }
    Verdict::Packet(Pkt { slots: i, extras, first, kind, frags })
}

/// The fuzzer: one episode per iteration.
pub struct Fuzzer {
    /// The run's seed.
    pub seed: u64,
    /// Episodes run so far.
    pub iteration: u64,
    /// Totals.
    pub report: Report,
    tx_pages: SharedPages,
    rx_pages: SharedPages,
    grants: Grants,
    buf: Vec<u8>,
    sabotage: Option<Sabotage>,
}

impl Fuzzer {
    /// A fuzzer from `seed` (about 1 MiB: keep it on the heap).
    pub fn new(seed: u64) -> Fuzzer {
        Fuzzer {
            seed,
            iteration: 0,
            report: Report::default(),
            tx_pages: SharedPages::new(1),
            rx_pages: SharedPages::new(1),
            grants: Grants::new(),
            buf: vec![0; TX_BUF],
            sabotage: None,
        }
    }

    /// Run the next episode; Err on the first broken invariant (also kept
    /// in the report).
    pub fn step(&mut self) -> Result<(), Failure> {
        let mut rng = Rng::new(self.seed ^ mix(self.iteration.wrapping_add(1)));
        self.tx_pages.reset(1);
        self.rx_pages.reset(1);
        let fill = rng.next_u64();
        for (i, p) in self.grants.pages.iter_mut().enumerate() {
            p.fill(mix(fill ^ i as u64) as u8);
        }
        self.grants.tx_log.clear();
        self.grants.rx_log.clear();
        self.grants.bad_copy = None;
        let r = Episode::run(self, rng).map_err(|mut f| {
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

/// Where the model's rx queue stands: frames and their bytes.
struct ModelQueue {
    frames: VecDeque<(Vec<u8>, RxFlags)>,
    bytes: usize,
    max_packets: usize,
    max_bytes: usize,
}

/// One episode's state.
struct Episode<'a> {
    rng: Rng,
    tx_pages: &'a SharedPages,
    rx_pages: &'a SharedPages,
    tx: TxBackRing<&'a SharedPages>,
    rx: RxBackRing<&'a SharedPages>,
    tx_geo: Geometry,
    rx_geo: Geometry,
    /// The frontend's private producers and consumers.
    tx_pvt: u32,
    tx_rsp_cons: u32,
    rx_pvt: u32,
    rx_rsp_cons: u32,
    grants: &'a mut Grants,
    buf: &'a mut Vec<u8>,
    report: &'a mut Report,
    sabotage: Option<Sabotage>,
    honest_only: bool,
    credit: Credit,
    /// `rate=`'s bytes and interval, if set.
    rate: Option<(u64, u64)>,
    /// Credit taken (packet sizes capped at the burst) since the first
    /// packet, and when that was.
    credit_used: u64,
    credit_t0: Option<u64>,
    now: u64,
    stats: VifStats,
    queue: RxQueue,
    model: ModelQueue,
    vif: VifRing,
    mac: [u8; 6],
    next_gref: u32,
    next_rx_gref: u32,
    next_rx_id: u16,
    dead: bool,
    step: u32,
    /// Honest packets put on the ring, and consumed tx packets and frames
    /// offered to the rx queue (for the counters' sums).
    honest_sent: u64,
    tx_consumed: u64,
    tx_mcast: u64,
    rx_offered: u64,
}

type Check = Result<(), Failure>;

fn fail(what: &'static str, values: [u64; 3]) -> Failure {
    Failure { seed: 0, iteration: 0, step: 0, what, values }
}

fn ensure(ok: bool, what: &'static str, values: [u64; 3]) -> Check {
    if ok { Ok(()) } else { Err(fail(what, values)) }
}

impl<'a> Episode<'a> {
    fn run(f: &'a mut Fuzzer, mut rng: Rng) -> Check {
        let start = match rng.below(4) {
            0 => 0,
            1 => u32::MAX - rng.below(300) as u32,
            _ => rng.next_u64() as u32,
        };
        let idx1 = start.wrapping_add(1);
        let h = SringHeader { req_prod: start, req_event: idx1, rsp_prod: start, rsp_event: idx1, ..SringHeader::new() };
        f.tx_pages.set_header(&h);
        f.rx_pages.set_header(&h);
        let (tx_pages, rx_pages) = (&f.tx_pages, &f.rx_pages);
        let tx = TxBackRing::attach_at_rsp_prod(tx_pages).map_err(|_| fail("attach tx", [0; 3]))?;
        let rx = RxBackRing::attach_at_rsp_prod(rx_pages).map_err(|_| fail("attach rx", [0; 3]))?;
        let tx_geo = Geometry::new::<NetifTxRequest, NetifTxResponse>(1).map_err(|_| fail("tx geometry", [0; 3]))?;
        let rx_geo = Geometry::new::<NetifRxRequest, NetifRxResponse>(1).map_err(|_| fail("rx geometry", [0; 3]))?;
        let honest_only = rng.one_in(4);
        let rate = (!rng.one_in(2)).then(|| (1000 + rng.below(200_000), 100 + rng.below(100_000)));
        let credit = rate.map_or(Credit::unlimited(), |(b, u)| Credit::new(b, u));
        let (max_packets, max_bytes) = (1 + rng.below(300) as usize, 1 + rng.below(600_000) as usize);
        let vif = VifRing { tx_ring_ref: 1, rx_ring_ref: 2, evtchn: 3, sg: !rng.one_in(4), csum_offload: rng.one_in(2), rx_notify: true };
        let mac = [0x00, 0x16, 0x3e, rng.below(128) as u8, rng.next_u64() as u8, rng.next_u64() as u8];
        f.report.episodes += 1;
        f.report.honest_episodes += u64::from(honest_only);
        let mut e = Episode {
            rng,
            tx_pages,
            rx_pages,
            tx,
            rx,
            tx_geo,
            rx_geo,
            tx_pvt: start,
            tx_rsp_cons: start,
            rx_pvt: start,
            rx_rsp_cons: start,
            grants: &mut f.grants,
            buf: &mut f.buf,
            report: &mut f.report,
            sabotage: f.sabotage,
            honest_only,
            credit,
            rate,
            credit_used: 0,
            credit_t0: None,
            now: 1_000_000,
            stats: VifStats::default(),
            queue: RxQueue::new(max_packets, max_bytes),
            model: ModelQueue { frames: VecDeque::new(), bytes: 0, max_packets, max_bytes },
            vif,
            mac,
            next_gref: 1,
            next_rx_gref: RX_GREF0,
            next_rx_id: 0,
            dead: false,
            step: 0,
            honest_sent: 0,
            tx_consumed: 0,
            tx_mcast: 0,
            rx_offered: 0,
        };
        let r = e.actions().and_then(|()| e.drain());
        r.map_err(|mut fl| {
            fl.step = e.step;
            fl
        })
    }

    fn actions(&mut self) -> Check {
        while self.step < STEPS_PER_EPISODE && !self.dead {
            self.step += 1;
            self.report.steps += 1;
            match self.rng.below(16) {
                0..=3 => self.honest_tx(),
                4..=6 if !self.honest_only => self.hostile_tx(),
                7 => self.push_tx(),
                8 | 9 => self.post_rx(),
                10 => self.dom0_frame()?,
                11 => self.now += self.rng.below(self.rate.map_or(1000, |r| 2 * r.1)),
                12 | 13 => self.serve_tx()?,
                14 | 15 => self.serve_rx()?,
                _ => self.honest_tx(),
            }
            self.sums()?;
        }
        Ok(())
    }

    /// Honest episodes end with everything served: every honest packet
    /// is delivered.
    fn drain(&mut self) -> Check {
        if !self.honest_only || self.dead {
            return Ok(());
        }
        self.push_tx();
        for _ in 0..10_000 {
            if self.tx.req_cons() == self.tx_pvt {
                break;
            }
            if let Some(t) = self.credit.next_refill_us() {
                self.now = self.now.max(t);
            }
            self.serve_tx()?;
        }
        ensure(
            self.tx.req_cons() == self.tx_pvt,
            "honest packets left on the ring after a drain",
            [u64::from(self.tx.req_cons()), u64::from(self.tx_pvt), 0],
        )?;
        ensure(
            self.stats.tx_packets == self.honest_sent,
            "an honest packet was not delivered",
            [self.stats.tx_packets, self.honest_sent, self.stats.dropped_total()],
        )
    }

    // ---- the frontend ----

    /// Free tx slots the frontend sees.
    fn tx_free(&self) -> usize {
        (self.tx_geo.size - self.tx_pvt.wrapping_sub(self.tx_rsp_cons).min(self.tx_geo.size)) as usize
    }

    /// Write `reqs` into the tx ring at the private producer; push them
    /// (mostly: a frontend may publish a chain in parts).
    fn produce_tx(&mut self, reqs: &[NetifTxRequest]) -> bool {
        if reqs.len() > self.tx_free() {
            return false;
        }
        let mut p = self.tx_pages;
        for r in reqs {
            write_entry(&mut p, self.tx_geo, self.tx_pvt, r);
            self.tx_pvt = self.tx_pvt.wrapping_add(1);
        }
        if self.rng.one_in(6) && reqs.len() > 1 {
            // Publish only part of the chain for now.
            let part = self.tx_pvt.wrapping_sub(1 + self.rng.below(reqs.len() as u64 - 1) as u32);
            p.store_idx(off::REQ_PROD, part);
        } else {
            p.store_idx(off::REQ_PROD, self.tx_pvt);
        }
        true
    }

    fn push_tx(&mut self) {
        let mut p = self.tx_pages;
        p.store_idx(off::REQ_PROD, self.tx_pvt);
    }

    /// Split `frame` over `slots` requests (the first at least `ETH_HLEN`
    /// bytes, each inside one page of the tx grants), write its bytes into
    /// the granted pages, and return the chain (first `size` = the
    /// frame's length, truncated to 16 bits as a frontend would).
    fn scatter(&mut self, frame: &[u8], slots: usize, flags: u16) -> Vec<NetifTxRequest> {
        let mut lens = vec![0usize; slots];
        let mut left = frame.len();
        lens[0] = left.min(ETH_HLEN);
        left -= lens[0];
        while left > 0 {
            let before = left;
            for l in lens.iter_mut() {
                let add = left.min(XEN_PAGE_SIZE - *l).min(1 + self.rng.below(1500) as usize);
                *l += add;
                left -= add;
            }
            if left == before {
                break; // Full: the caller asked for more than fits.
            }
        }
        let mut reqs = Vec::with_capacity(slots);
        let mut at = 0;
        for (k, &l) in lens.iter().enumerate() {
            let gref = self.next_gref;
            self.next_gref = self.next_gref % GREFS + 1;
            let offset = self.rng.below((XEN_PAGE_SIZE - l + 1) as u64) as usize;
            let i = Grants::index(gref).unwrap_or(0);
            self.grants.pages[i][offset..offset + l].copy_from_slice(&frame[at..at + l]);
            at += l;
            let more = if k + 1 < slots { NETTXF_MORE_DATA } else { 0 };
            let size = if k == 0 { frame.len() as u16 } else { l as u16 };
            let f = if k == 0 { flags | more } else { more };
            reqs.push(NetifTxRequest { gref, offset: offset as u16, flags: f, id: self.rng.next_u64() as u16, size });
        }
        reqs
    }

    /// An Ethernet frame of `len` bytes from `src`: random bytes, or (if
    /// `udp` and it fits) an IPv4 UDP datagram with a blank checksum.
    fn frame(&mut self, len: usize, src: [u8; 6], udp: bool) -> Vec<u8> {
        let mut f: Vec<u8> = (0..len).map(|_| self.rng.next_u64() as u8).collect();
        if len >= 12 {
            f[..6].copy_from_slice(&[0xff; 6]);
            f[6..12].copy_from_slice(&src);
        }
        if udp && (42..=1514).contains(&len) {
            let ip_len = (len - ETH_HLEN) as u16;
            f[12..14].copy_from_slice(&[0x08, 0x00]);
            f[14..24].copy_from_slice(&[0x45, 0, (ip_len >> 8) as u8, ip_len as u8, 0, 0, 0x40, 0, 64, 17]);
            let udp_len = ip_len - 20;
            f[38..42].copy_from_slice(&[(udp_len >> 8) as u8, udp_len as u8, 0, 0]);
        }
        f
    }

    fn frame_len(&mut self) -> usize {
        match self.rng.below(8) {
            0 => ETH_HLEN + self.rng.below(20_000) as usize,
            1 => MAX_PACKET - self.rng.below(100) as usize,
            _ => 42 + self.rng.below(1473) as usize,
        }
    }

    /// Slots an honest frontend uses for `len` bytes: at least what fits,
    /// at most 19.
    fn honest_slots(&mut self, len: usize) -> usize {
        let min = len.div_ceil(XEN_PAGE_SIZE).max(1);
        let max = 1 + LEGACY_SLOTS_MAX as usize;
        min + self.rng.below((max - min + 1) as u64) as usize
    }

    fn honest_tx(&mut self) {
        let len = self.frame_len();
        let udp = self.rng.one_in(2);
        let f = self.frame(len, self.mac, udp);
        let slots = self.honest_slots(len);
        let flags = match (udp, self.rng.below(3)) {
            (true, 0) => NETTXF_CSUM_BLANK | NETTXF_DATA_VALIDATED,
            (_, 1) => NETTXF_DATA_VALIDATED,
            _ => 0,
        };
        let mut reqs = self.scatter(&f, slots, flags);
        if self.rng.one_in(8) {
            // A hash extra-info: carried, nothing to do with it.
            reqs[0].flags |= NETTXF_EXTRA_INFO;
            reqs.insert(1, self.extra(XEN_NETIF_EXTRA_TYPE_HASH, 0));
        }
        if self.produce_tx(&reqs) {
            self.report.honest += 1;
            self.honest_sent += 1;
        }
    }

    fn extra(&mut self, type_: u8, flags: u8) -> NetifTxRequest {
        let mut r = NetifTxRequest::default();
        let u = self.rng.next_u64().to_le_bytes();
        r.as_mut_bytes()[..8].copy_from_slice(&[type_, flags, u[0], u[1], u[2], u[3], u[4], u[5]]);
        r
    }

    fn bad_gref(&mut self) -> u32 {
        match self.rng.below(4) {
            0 => 0,
            1 => GREFS + 1 + self.rng.below(RX_GREF0 as u64 - u64::from(GREFS) - 1) as u32,
            2 => u32::MAX - self.rng.below(8) as u32,
            _ => RX_GREF0 + RX_GREFS + self.rng.below(1 << 20) as u32,
        }
    }

    /// A valid-looking chain to spoil.
    fn base_chain(&mut self, slots: usize) -> Vec<NetifTxRequest> {
        let len = (ETH_HLEN + self.rng.below((slots * XEN_PAGE_SIZE - ETH_HLEN) as u64) as usize).min(MAX_PACKET);
        let f = self.frame(len, self.mac, false);
        self.scatter(&f, slots, 0)
    }

    fn hostile_tx(&mut self) {
        let class = self.rng.below(HOSTILE.len() as u64) as usize;
        let slots = 1 + self.rng.below(4) as usize;
        let reqs = match class {
            0 => {
                let mut r = self.base_chain(slots);
                let k = self.rng.below(slots as u64) as usize;
                r[k].gref = self.bad_gref();
                r
            }
            1 => {
                let mut r = self.base_chain(slots);
                let k = self.rng.below(slots as u64) as usize;
                let own = if k == 0 { r[0].size.wrapping_sub(r[1..].iter().fold(0u16, |s, x| s.wrapping_add(x.size))) } else { r[k].size };
                let own = own.clamp(1, 4096);
                r[k].offset = (4097 - own).wrapping_add(self.rng.below(u64::from(own.min(64))) as u16);
                r
            }
            2 => {
                let len = 65_536 + self.rng.below(12_000) as usize;
                let f = self.frame(len, self.mac, false);
                let n = len.div_ceil(XEN_PAGE_SIZE) + self.rng.below(2) as usize;
                self.scatter(&f, n.min(19), 0)
            }
            3 => {
                let mut r = self.base_chain(slots);
                let rest = r[1..].iter().fold(0u16, |s, x| s.wrapping_add(x.size));
                r[0].size = rest.wrapping_add(self.rng.below(ETH_HLEN as u64) as u16);
                r
            }
            4 => {
                let n = 20 + self.rng.below(2) as usize;
                self.base_chain(n)
            }
            5 => {
                let n = 22 + self.rng.below(10) as usize;
                self.base_chain(n)
            }
            6 => {
                let mut r = self.base_chain(slots.max(2));
                let k = 1 + self.rng.below(r.len() as u64 - 1) as usize;
                r[k].size = r[k].size.wrapping_add(1 + self.rng.below(4096) as u16);
                r
            }
            7 => {
                let mut r = self.base_chain(slots);
                let last = r.len() - 1;
                r[last].flags |= NETTXF_MORE_DATA;
                r
            }
            8 => {
                let mut r = self.base_chain(slots);
                r[0].flags |= NETTXF_EXTRA_INFO;
                for k in 0..1 + self.rng.below(3) as usize {
                    let t = if self.rng.one_in(2) { self.rng.below(7) as u8 } else { self.rng.next_u64() as u8 };
                    let fl = self.rng.next_u64() as u8;
                    let x = self.extra(t, fl);
                    r.insert(1 + k, x);
                }
                r
            }
            9 => {
                let mut r = self.base_chain(slots);
                r[0].flags |= NETTXF_EXTRA_INFO;
                let t = [XEN_NETIF_EXTRA_TYPE_GSO, XEN_NETIF_EXTRA_TYPE_MCAST_ADD, XEN_NETIF_EXTRA_TYPE_MCAST_DEL][self.rng.below(3) as usize];
                let x = self.extra(t, 0);
                r.insert(1, x);
                r
            }
            10 => {
                let len = self.frame_len();
                let f = self.frame(len, self.mac, false);
                let n = self.honest_slots(len);
                self.scatter(&f, n, NETTXF_CSUM_BLANK | NETTXF_DATA_VALIDATED)
            }
            11 => {
                let len = self.frame_len();
                let src = [self.rng.next_u64() as u8, 1, 2, 3, 4, self.rng.next_u64() as u8];
                let f = self.frame(len, src, true);
                let n = self.honest_slots(len);
                self.scatter(&f, n, 0)
            }
            12 => (0..slots)
                .map(|_| {
                    let mut r = NetifTxRequest::default();
                    let (a, b) = (self.rng.next_u64().to_le_bytes(), self.rng.next_u64().to_le_bytes());
                    r.as_mut_bytes()[..8].copy_from_slice(&a);
                    r.as_mut_bytes()[8..].copy_from_slice(&b[..4]);
                    r
                })
                .collect(),
            _ => {
                let cons = self.tx.req_cons();
                let size = self.tx_geo.size;
                let v = match class {
                    13 => cons.wrapping_add(size + 1 + self.rng.below(1 << 20) as u32),
                    14 => cons.wrapping_sub(1 + self.rng.below(300) as u32),
                    _ if self.rng.one_in(2) => cons.wrapping_add(self.rng.below(u64::from(size) + 1) as u32),
                    _ => self.rng.next_u64() as u32,
                };
                let mut p = self.tx_pages;
                p.store_idx(off::REQ_PROD, v);
                self.report.hostile[class] += 1;
                return;
            }
        };
        if self.produce_tx(&reqs) {
            self.report.hostile[class] += 1;
        }
    }

    /// Post rx requests: honest ones with fresh grants, or (hostile) bad or
    /// repeated grants, or a made-up `req_prod`.
    fn post_rx(&mut self) {
        let size = self.rx_geo.size;
        let class = if self.honest_only || self.rng.below(3) != 0 { None } else { Some(self.rng.below(3) as usize) };
        if class == Some(2) {
            let cons = self.rx.req_cons();
            let v = match self.rng.below(3) {
                0 => cons.wrapping_add(size + 1 + self.rng.below(1000) as u32),
                1 => cons.wrapping_sub(1 + self.rng.below(100) as u32),
                _ => self.rng.next_u64() as u32,
            };
            let mut p = self.rx_pages;
            p.store_idx(off::REQ_PROD, v);
            self.report.rx_hostile[2] += 1;
            return;
        }
        let free = size - self.rx_pvt.wrapping_sub(self.rx_rsp_cons).min(size);
        let n = (1 + self.rng.below(20) as u32).min(free);
        let mut p = self.rx_pages;
        for _ in 0..n {
            let gref = match class {
                Some(0) if self.rng.one_in(3) => self.bad_gref(),
                Some(1) => RX_GREF0,
                _ => {
                    let g = self.next_rx_gref;
                    self.next_rx_gref = RX_GREF0 + (self.next_rx_gref - RX_GREF0 + 1) % RX_GREFS;
                    g
                }
            };
            write_entry(&mut p, self.rx_geo, self.rx_pvt, &NetifRxRequest { id: self.next_rx_id, pad: 0, gref });
            self.next_rx_id = self.next_rx_id.wrapping_add(1);
            self.rx_pvt = self.rx_pvt.wrapping_add(1);
        }
        if let Some(c) = class {
            self.report.rx_hostile[c] += 1;
        }
        p.store_idx(off::REQ_PROD, self.rx_pvt);
    }

    /// A frame from elsewhere on the bridge for this vif: any size.
    fn dom0_frame(&mut self) -> Check {
        let len = match self.rng.below(6) {
            0 => self.rng.below(70_000) as usize,
            1 => self.rng.below(ETH_HLEN as u64 + 1) as usize,
            _ => self.frame_len(),
        };
        let udp = self.rng.one_in(2);
        let f = self.frame(len, [0x00, 0x16, 0x3e, 0, 0, 1], udp);
        let flags = RxFlags { csum_blank: self.rng.one_in(3), data_validated: self.rng.one_in(2) };
        self.report.rx_hostile[3] += 1;
        self.queue_rx(&f, flags)
    }

    /// Offer a frame to the vif's rx queue, checked against the model.
    fn queue_rx(&mut self, frame: &[u8], flags: RxFlags) -> Check {
        let m = &mut self.model;
        let want = !frame.is_empty() && frame.len() <= MAX_PACKET && m.frames.len() < m.max_packets && m.bytes + frame.len() <= m.max_bytes;
        let got = self.queue.push(frame, flags, &mut self.stats);
        self.rx_offered += 1;
        ensure(got == want, "rx queue took or refused a frame against its limits", [frame.len() as u64, m.frames.len() as u64, m.bytes as u64])?;
        if got {
            m.frames.push_back((frame.to_vec(), flags));
            m.bytes += frame.len();
        } else {
            self.report.rx_dropped += 1;
        }
        self.queue_bounds()
    }

    fn queue_bounds(&self) -> Check {
        let (q, m) = (&self.queue, &self.model);
        ensure(
            q.len() <= m.max_packets && q.bytes() <= m.max_bytes,
            "rx queue past the vif's limits",
            [q.len() as u64, q.bytes() as u64, m.max_bytes as u64],
        )?;
        ensure(
            q.len() == m.frames.len() && q.bytes() == m.bytes,
            "rx queue disagrees with its model",
            [q.len() as u64, q.bytes() as u64, m.bytes as u64],
        )
    }

    // ---- serving and checking ----

    fn serve_tx(&mut self) -> Check {
        let size = self.tx_geo.size;
        let cons = self.tx.req_cons();
        let req_prod = self.tx_pages.peek(off::REQ_PROD);
        let n = req_prod.wrapping_sub(cons);
        let ring_bad = n > size;
        let slots: Vec<NetifTxRequest> =
            if ring_bad { Vec::new() } else { (0..n).map(|i| read_entry(&self.tx_pages, self.tx_geo, cons.wrapping_add(i))).collect() };
        let max = if self.rng.one_in(4) { 64 } else { 1 + self.rng.below(8) as u32 };
        let before = self.stats;
        let waits_before = self.stats.tx_credit_waits;
        self.grants.tx_log.clear();
        let mut got: Vec<(Vec<u8>, TxPacket)> = Vec::new();
        let mut s = serve_tx(&mut self.tx, &mut *self.grants, &mut self.credit, self.now, &mut self.stats, &mut self.buf[..], max, &mut |b, p| {
            got.push((b.to_vec(), p))
        });
        if self.sabotage == Some(Sabotage::ServeAfterFatal) && s.fatal.is_some() {
            let again =
                serve_tx(&mut self.tx, &mut *self.grants, &mut self.credit, self.now, &mut self.stats, &mut self.buf[..], max, &mut |b, p| {
                    got.push((b.to_vec(), p))
                });
            s.packets += again.packets;
            s.dropped += again.dropped;
        }
        let consumed = self.tx.req_cons().wrapping_sub(cons);
        ensure(self.tx_pages.fault().is_none(), "tx ring access outside its page", [0; 3])?;
        ensure(
            self.grants.bad_copy.is_none(),
            "a grant copy outside its page or buffer",
            self.grants.bad_copy.map_or([0; 3], |b| [u64::from(b.0), b.1 as u64, b.2 as u64]),
        )?;
        ensure(self.tx.unanswered() == 0, "a consumed tx request was not answered", [u64::from(self.tx.unanswered()), 0, 0])?;
        let rsp_prod = self.tx_pages.peek(off::RSP_PROD);
        ensure(rsp_prod == self.tx.req_cons(), "tx rsp_prod is not req_cons after a serve", [u64::from(rsp_prod), u64::from(self.tx.req_cons()), 0])?;
        ensure(consumed <= if ring_bad { 0 } else { n }, "tx consumed more than was produced", [u64::from(consumed), u64::from(n), 0])?;
        if self.sabotage == Some(Sabotage::TxStatus) && consumed > 0 {
            let mut p = self.tx_pages;
            let mut r: NetifTxResponse = read_entry(&p, self.tx_geo, cons);
            r.status = 7;
            write_entry(&mut p, self.tx_geo, cons, &r);
        }
        if self.sabotage == Some(Sabotage::TxFrame)
            && let Some(b) = got.first_mut().and_then(|f| f.0.last_mut())
        {
            *b ^= 1;
        }
        // Walk the packets the model reads off the snapshot.
        let mut pos = 0usize;
        let (mut copies, mut delivered) = (0usize, 0usize);
        let mut delta = VifStats::default();
        let (mut drops, mut mcast) = (0u32, 0u32);
        while pos < consumed as usize {
            let Verdict::Packet(p) = classify(&slots[pos..]) else {
                return Err(fail("tx consumed a packet the model says is fatal or incomplete", [pos as u64, u64::from(consumed), 0]));
            };
            ensure(pos + p.slots <= consumed as usize, "tx consumed part of a packet", [pos as u64, p.slots as u64, u64::from(consumed)])?;
            let ok = match p.kind {
                Kind::Deliver => {
                    let log = self.grants.tx_log.get(copies).cloned().unwrap_or_default();
                    ensure(log == p.frags, "tx copied other grants than the request's", [copies as u64, log.len() as u64, p.frags.len() as u64])?;
                    copies += 1;
                    p.frags.iter().all(|f| Grants::valid(f.gref))
                }
                Kind::Mcast => true,
                Kind::Drop(_) => false,
            };
            let want = if ok { NETIF_RSP_OKAY } else { NETIF_RSP_ERROR };
            for j in 0..p.slots {
                let idx = cons.wrapping_add((pos + j) as u32);
                let r: NetifTxResponse = read_entry(&self.tx_pages, self.tx_geo, idx);
                ensure(
                    [NETIF_RSP_OKAY, NETIF_RSP_ERROR, NETIF_RSP_DROPPED, NETIF_RSP_NULL].contains(&r.status),
                    "tx response status not in io/netif.h",
                    [u64::from(idx), r.status as u64, 0],
                )?;
                let extra = j >= 1 && j <= p.extras;
                let w = if extra { NETIF_RSP_NULL } else { want };
                ensure(r.status == w, "tx response status is not the model's", [(pos + j) as u64, r.status as u64, w as u64])?;
                ensure(
                    extra || r.id == slots[pos + j].id,
                    "tx response id is not its request's",
                    [(pos + j) as u64, u64::from(r.id), u64::from(slots[pos + j].id)],
                )?;
            }
            match (p.kind, ok) {
                (Kind::Deliver, true) => {
                    let (bytes, meta) = got.get(delivered).cloned().unwrap_or_default();
                    delivered += 1;
                    let mut want_bytes = Vec::new();
                    for f in &p.frags {
                        want_bytes.extend_from_slice(self.grants.bytes(f.gref, usize::from(f.offset), usize::from(f.len)));
                    }
                    ensure(
                        bytes == want_bytes,
                        "a delivered frame differs from what the chain carried",
                        [delivered as u64, bytes.len() as u64, want_bytes.len() as u64],
                    )?;
                    ensure(
                        (ETH_HLEN..=MAX_PACKET).contains(&bytes.len()) && meta.len == bytes.len(),
                        "a delivered frame's length is out of bounds",
                        [bytes.len() as u64, meta.len as u64, 0],
                    )?;
                    let fl = p.first.flags;
                    ensure(
                        meta.csum_blank == (fl & NETTXF_CSUM_BLANK != 0) && meta.data_validated == (fl & NETTXF_DATA_VALIDATED != 0),
                        "a delivered frame's checksum flags are not the request's",
                        [u64::from(fl), 0, 0],
                    )?;
                    delta.tx_packets += 1;
                    delta.tx_bytes += bytes.len() as u64;
                }
                (Kind::Deliver, false) => {
                    delta.tx_bad_gref += 1;
                    drops += 1;
                }
                (Kind::Mcast, _) => {
                    self.tx_mcast += 1;
                    mcast += 1;
                }
                (Kind::Drop(c), _) => {
                    *[&mut delta.tx_bad_size, &mut delta.tx_too_many_slots, &mut delta.tx_bad_extra][c] += 1;
                    drops += 1;
                }
            }
            if let Some(b) = self.rate.map(|r| r.0) {
                self.credit_t0.get_or_insert(self.now);
                self.credit_used += u64::from(p.first.size).min(b.max(MIN_BURST));
            }
            self.tx_consumed += 1;
            pos += p.slots;
        }
        ensure(copies == self.grants.tx_log.len(), "tx made a copy no request asked for", [copies as u64, self.grants.tx_log.len() as u64, 0])?;
        ensure(delivered == got.len(), "tx delivered a frame the model did not", [delivered as u64, got.len() as u64, 0])?;
        ensure(
            s.packets as usize == delivered && s.dropped == drops,
            "TxServed counts disagree",
            [u64::from(s.packets), u64::from(s.dropped), u64::from(drops)],
        )?;
        if self.honest_only {
            ensure(drops == 0, "an honest packet was dropped", [u64::from(drops), 0, 0])?;
        }
        self.report.tx_delivered += delivered as u64;
        self.report.tx_dropped += u64::from(drops);
        self.report.tx_mcast += u64::from(mcast);
        // Why the call stopped.
        let waited = self.stats.tx_credit_waits.wrapping_sub(waits_before);
        let verdict = if pos < slots.len() { Some(classify(&slots[pos..])) } else { None };
        let fatal_code = |k: FatalKind| match k {
            FatalKind::CrossPage => 0,
            FatalKind::TooManySlots => 1,
            FatalKind::BadExtra => 2,
            FatalKind::MissingSlots => 5,
        };
        let full = s.more && s.packets + s.dropped + mcast >= max;
        ensure(!s.more || full, "tx says more is left before max_packets", [u64::from(s.packets), u64::from(max), 0])?;
        let refill = self.credit.next_refill_us();
        ensure(refill.is_none_or(|t| t > self.now), "a refill deadline left in the past (dom0 would spin)", [refill.unwrap_or(0), self.now, 0])?;
        match (ring_bad, verdict, s.fatal) {
            (true, _, Some(TxFatal::Ring(e))) if e.is_peer_fault() => self.report.fatal[3] += 1,
            (true, _, f) => {
                return Err(fail("an impossible tx req_prod was not fatal", [u64::from(req_prod), u64::from(cons), u64::from(f.is_some())]));
            }
            (false, Some(Verdict::Fatal(k)), Some(f)) => {
                let got_k = match f {
                    TxFatal::CrossPage => 0,
                    TxFatal::TooManySlots => 1,
                    TxFatal::BadExtra => 2,
                    TxFatal::Ring(_) => 3,
                    TxFatal::MissingSlots => 5,
                };
                ensure(got_k == fatal_code(k), "tx fatal of the wrong class", [got_k, fatal_code(k), pos as u64])?;
                self.report.fatal[got_k as usize] += 1;
            }
            // max_packets reached: the next packet waits for the next call.
            (false, Some(_), None) if full => {}
            (false, Some(Verdict::Fatal(k)), None) => {
                return Err(fail("a fatal tx error was not reported", [fatal_code(k), pos as u64, u64::from(consumed)]));
            }
            (false, _, Some(f)) => {
                let k = if let TxFatal::Ring(_) = f { 3 } else { 9 };
                return Err(fail("a tx error reported fatal that is not", [k, pos as u64, u64::from(consumed)]));
            }
            (false, Some(Verdict::Packet(_)), None) => {
                let credit = waited == 1 && self.credit.next_refill_us().is_some_and(|t| t > self.now);
                ensure(credit, "tx stopped before a ready packet for no reason", [pos as u64, u64::from(s.more), waited])?;
                self.report.credit_waits += u64::from(credit);
            }
            (false, None, None) => ensure(!s.more, "tx says more is left when nothing is", [0; 3])?,
        }
        let (b, a) = (before, self.stats);
        let d = |x: u64, y: u64| y.wrapping_sub(x);
        ensure(
            d(b.tx_packets, a.tx_packets) == delta.tx_packets && d(b.tx_bytes, a.tx_bytes) == delta.tx_bytes,
            "tx_packets/tx_bytes do not count the deliveries",
            [d(b.tx_packets, a.tx_packets), delta.tx_packets, 0],
        )?;
        ensure(
            d(b.tx_bad_size, a.tx_bad_size) == delta.tx_bad_size
                && d(b.tx_too_many_slots, a.tx_too_many_slots) == delta.tx_too_many_slots
                && d(b.tx_bad_extra, a.tx_bad_extra) == delta.tx_bad_extra
                && d(b.tx_bad_gref, a.tx_bad_gref) == delta.tx_bad_gref,
            "a tx drop is counted under the wrong counter",
            [d(b.tx_bad_size, a.tx_bad_size), d(b.tx_too_many_slots, a.tx_too_many_slots), d(b.tx_bad_gref, a.tx_bad_gref)],
        )?;
        ensure(d(b.fatal, a.fatal) == u64::from(s.fatal.is_some()), "the fatal counter does not count the fatal", [d(b.fatal, a.fatal), 0, 0])?;
        self.credit_bound()?;
        if s.fatal.is_some() {
            // xenvif_fatal_tx_err: the vif is disabled, nothing more is
            // served (dom0 disconnects it).
            self.dead = true;
            ensure(self.report.fatal.iter().sum::<u64>() > 0, "fatal not recorded", [0; 3])?;
            return Ok(());
        }
        self.tx_rsp_cons = rsp_prod;
        if (self.tx.req_cons().wrapping_sub(self.tx_pvt) as i32) > 0 {
            // A made-up req_prod had the backend consume past what the
            // frontend wrote: it produces from there on.
            self.tx_pvt = self.tx.req_cons();
        }
        // dom0's bridge port: a vif's frames carry its own source MAC
        // (dom0-tools vif.rs); the rest loop back to this vif's rx queue.
        for (bytes, meta) in got {
            if bytes.get(6..12) != Some(&self.mac[..]) {
                self.stats.tx_spoofed += 1;
                self.report.spoofed += 1;
                continue;
            }
            self.queue_rx(&bytes, RxFlags { csum_blank: meta.csum_blank, data_validated: meta.data_validated })?;
        }
        Ok(())
    }

    /// `rate=` holds: credit taken since the first packet is at most the
    /// burst, the first interval's chunk, and a chunk per interval since.
    fn credit_bound(&self) -> Check {
        let (Some((bytes, usec)), Some(t0)) = (self.rate, self.credit_t0) else { return Ok(()) };
        let bound = bytes.max(MIN_BURST) + bytes * ((self.now - t0) / usec + 2);
        ensure(self.credit_used <= bound, "tx went past its rate", [self.credit_used, bound, self.now - t0])
    }

    fn serve_rx(&mut self) -> Check {
        let size = self.rx_geo.size;
        let cons = self.rx.req_cons();
        let req_prod = self.rx_pages.peek(off::REQ_PROD);
        let n = req_prod.wrapping_sub(cons);
        let ring_bad = n > size;
        let slots: Vec<NetifRxRequest> =
            if ring_bad { Vec::new() } else { (0..n).map(|i| read_entry(&self.rx_pages, self.rx_geo, cons.wrapping_add(i))).collect() };
        let max = if self.rng.one_in(4) { 64 } else { 1 + self.rng.below(8) as u32 };
        let before = self.stats;
        self.grants.rx_log.clear();
        let s = serve_rx(&mut self.rx, &mut *self.grants, &mut self.queue, &self.vif, &mut self.stats, max);
        ensure(self.rx_pages.fault().is_none(), "rx ring access outside its page", [0; 3])?;
        ensure(self.grants.bad_copy.is_none(), "an rx grant copy outside its page or frame", [0; 3])?;
        ensure(self.rx.unanswered() == 0, "a consumed rx request was not answered", [u64::from(self.rx.unanswered()), 0, 0])?;
        let rsp_prod = self.rx_pages.peek(off::RSP_PROD);
        ensure(rsp_prod == self.rx.req_cons(), "rx rsp_prod is not req_cons after a serve", [u64::from(rsp_prod), u64::from(self.rx.req_cons()), 0])?;
        // The model: xenvif_rx_queue / xenvif_rx_skb.
        let (mut pos, mut handled, mut copies) = (0usize, 0u32, 0usize);
        let (mut delivered, mut dropped, mut too_big, mut failed, mut bytes) = (0u32, 0u32, 0u64, 0u64, 0u64);
        let (mut want_fatal, mut want_starved) = (false, false);
        while handled < max {
            let Some(len) = self.model.frames.front().map(|f| f.0.len()) else { break };
            let needed = if self.vif.sg { len.div_ceil(XEN_PAGE_SIZE) } else { 1 };
            if needed > MAX_RX_SLOTS || (!self.vif.sg && len > XEN_PAGE_SIZE) {
                self.model_pop();
                too_big += 1;
                dropped += 1;
                handled += 1;
                continue;
            }
            if ring_bad {
                want_fatal = true;
                break;
            }
            if (n as usize) - pos < needed {
                want_starved = true;
                break;
            }
            let Some((mut frame, flags)) = self.model_pop() else { break };
            let mut first_flags = 0;
            if flags.csum_blank && !self.vif.csum_offload {
                complete_l4_checksum(&mut frame);
            } else if flags.csum_blank {
                first_flags = NETRXF_CSUM_BLANK | NETRXF_DATA_VALIDATED;
            } else if flags.data_validated {
                first_flags = NETRXF_DATA_VALIDATED;
            }
            let reqs = &slots[pos..pos + needed];
            let frags: Vec<RxFrag> = reqs
                .iter()
                .enumerate()
                .map(|(k, r)| RxFrag {
                    gref: r.gref,
                    offset: 0,
                    len: (len - k * XEN_PAGE_SIZE).min(XEN_PAGE_SIZE) as u16,
                    data_off: k * XEN_PAGE_SIZE,
                })
                .collect();
            let log = self.grants.rx_log.get(copies).cloned().unwrap_or_default();
            ensure(log.0 == frags, "rx copied into other grants than the requests'", [copies as u64, log.0.len() as u64, frags.len() as u64])?;
            ensure(log.1 == frame, "rx copied other bytes than the frame", [copies as u64, log.1.len() as u64, frame.len() as u64])?;
            copies += 1;
            let ok = reqs.iter().all(|r| Grants::valid(r.gref));
            for (k, (r, f)) in reqs.iter().zip(&frags).enumerate() {
                let idx = cons.wrapping_add((pos + k) as u32);
                let got: NetifRxResponse = read_entry(&self.rx_pages, self.rx_geo, idx);
                let more = if k + 1 < needed { NETRXF_MORE_DATA } else { 0 };
                let fl = if k == 0 { first_flags | more } else { more };
                let st = if ok { f.len as i16 } else { GNTST_BAD_GNTREF };
                let want = NetifRxResponse { id: r.id, offset: 0, flags: fl, status: st };
                ensure(got == want, "rx response is not the model's", [(pos + k) as u64, u64::from(got.id), got.status as u64])?;
            }
            if ok {
                delivered += 1;
                bytes += len as u64;
            } else {
                failed += 1;
                dropped += 1;
            }
            pos += needed;
            handled += 1;
        }
        let consumed = self.rx.req_cons().wrapping_sub(cons) as usize;
        ensure(consumed == pos, "rx consumed other slots than the model", [consumed as u64, pos as u64, 0])?;
        ensure(copies == self.grants.rx_log.len(), "rx made a copy no frame asked for", [copies as u64, self.grants.rx_log.len() as u64, 0])?;
        ensure(
            s.delivered == delivered && s.dropped == dropped,
            "RxServed counts disagree",
            [u64::from(s.delivered), u64::from(s.dropped), u64::from(delivered)],
        )?;
        ensure(s.fatal.is_some() == want_fatal, "rx fatal is not the model's", [u64::from(s.fatal.is_some()), u64::from(req_prod), u64::from(cons)])?;
        ensure(s.starved == want_starved, "rx starved is not the model's", [u64::from(s.starved), 0, 0])?;
        let (b, a) = (before, self.stats);
        let d = |x: u64, y: u64| y.wrapping_sub(x);
        ensure(
            d(b.rx_packets, a.rx_packets) == u64::from(delivered)
                && d(b.rx_bytes, a.rx_bytes) == bytes
                && d(b.rx_too_big, a.rx_too_big) == too_big
                && d(b.rx_copy_failed, a.rx_copy_failed) == failed,
            "rx counters do not count what was done",
            [d(b.rx_packets, a.rx_packets), d(b.rx_too_big, a.rx_too_big), d(b.rx_copy_failed, a.rx_copy_failed)],
        )?;
        self.queue_bounds()?;
        self.report.rx_delivered += u64::from(delivered);
        self.report.rx_dropped += u64::from(dropped);
        self.report.rx_starved += u64::from(s.starved);
        if s.fatal.is_some() {
            self.report.fatal[4] += 1;
            self.dead = true;
        }
        self.rx_rsp_cons = rsp_prod;
        if (self.rx.req_cons().wrapping_sub(self.rx_pvt) as i32) > 0 {
            self.rx_pvt = self.rx.req_cons();
        }
        Ok(())
    }

    fn model_pop(&mut self) -> Option<(Vec<u8>, RxFlags)> {
        let f = self.model.frames.pop_front()?;
        self.model.bytes -= f.0.len();
        Some(f)
    }

    /// The counters add up over the episode.
    fn sums(&self) -> Check {
        let s = &self.stats;
        let tx = s.tx_packets + s.tx_bad_size + s.tx_too_many_slots + s.tx_bad_gref + s.tx_bad_extra + self.tx_mcast;
        ensure(tx == self.tx_consumed, "tx counters do not add up to the packets consumed", [tx, self.tx_consumed, 0])?;
        let rx = s.rx_packets + s.rx_copy_failed + s.rx_too_big + s.rx_queue_full + self.model.frames.len() as u64;
        ensure(rx == self.rx_offered, "rx counters do not add up to the frames offered", [rx, self.rx_offered, 0])?;
        let drops =
            s.tx_bad_size + s.tx_too_many_slots + s.tx_bad_gref + s.tx_bad_extra + s.rx_queue_full + s.rx_too_big + s.rx_copy_failed + s.tx_spoofed;
        ensure(s.dropped_total() == drops, "dropped_total is not the sum of the drop counters", [s.dropped_total(), drops, 0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::boxed::Box;

    fn run(seed: u64, n: u64, sabotage: Option<Sabotage>) -> (Box<Fuzzer>, Result<(), Failure>) {
        let mut f = Box::new(Fuzzer::new(seed));
        f.sabotage = sabotage;
        let mut r = Ok(());
        for _ in 0..n {
            r = f.step();
            if r.is_err() {
                break;
            }
        }
        (f, r)
    }

    #[test]
    fn the_fuzzer_is_deterministic_in_its_seed() {
        let (a, ra) = run(11, 30, None);
        let (b, rb) = run(11, 30, None);
        assert_eq!((ra, &a.report), (rb, &b.report));
        let (c, _) = run(12, 30, None);
        assert_ne!(a.report, c.report, "another seed, another run");
        assert!(a.report.steps > 1000 && a.report.tx_delivered > 0 && a.report.rx_delivered > 0);
    }

    /// Every hostile class is tried, and the fatal ones are reported.
    #[test]
    fn a_few_seeds_run_clean_and_cover_every_class() {
        let mut total = Report::default();
        for seed in 1..=4 {
            let (f, r) = run(seed, 60, None);
            assert_eq!(r, Ok(()), "seed {seed}");
            for (t, n) in total.hostile.iter_mut().zip(f.report.hostile) {
                *t += n;
            }
            for (t, n) in total.fatal.iter_mut().zip(f.report.fatal) {
                *t += n;
            }
            total.spoofed += f.report.spoofed;
            total.credit_waits += f.report.credit_waits;
        }
        assert!(total.hostile.iter().all(|&n| n > 0), "{:?}", total.hostile);
        assert!(total.fatal.iter().all(|&n| n > 0), "{:?}", total.fatal);
        assert!(total.spoofed > 0 && total.credit_waits > 0);
    }

    /// A forged bad response status (not in io/netif.h) is caught.
    #[test]
    fn a_forged_bad_tx_status_is_caught() {
        let (f, r) = run(5, 50, Some(Sabotage::TxStatus));
        let e = r.expect_err("the checker must fail");
        assert_eq!(e.what, "tx response status not in io/netif.h");
        assert_eq!(f.report.failure, Some(e));
        assert_eq!((e.seed, e.iteration), (5, f.iteration - 1));
    }

    /// A delivered frame that differs from what the chain carried is
    /// caught.
    #[test]
    fn a_corrupted_delivered_frame_is_caught() {
        let (_, r) = run(5, 50, Some(Sabotage::TxFrame));
        assert_eq!(r.map_err(|e| e.what), Err("a delivered frame differs from what the chain carried"));
    }

    /// A caller that serves a vif again after its fatal error (instead of
    /// disabling it, as `xenvif_fatal_tx_err` does) is caught: one error
    /// counted fatal twice.
    #[test]
    fn serving_again_after_a_fatal_error_is_caught() {
        let (_, r) = run(5, 200, Some(Sabotage::ServeAfterFatal));
        assert_eq!(r.map_err(|e| e.what), Err("the fatal counter does not count the fatal"));
    }

    /// The model agrees with Linux on the slot rules it encodes.
    #[test]
    fn the_model_classifies_linux_slot_rules() {
        let req = |gref, offset, flags, size| NetifTxRequest { gref, offset, flags, id: 0, size };
        let chain = |frags: usize| {
            let mut v = vec![req(1, 0, NETTXF_MORE_DATA, 100 + frags as u16)];
            v.extend((0..frags).map(|i| req(2, 0, if i + 1 < frags { NETTXF_MORE_DATA } else { 0 }, 1)));
            v
        };
        assert!(matches!(classify(&chain(18)), Verdict::Packet(Pkt { kind: Kind::Deliver, slots: 19, .. })));
        assert!(matches!(classify(&chain(19)), Verdict::Packet(Pkt { kind: Kind::Drop(1), .. })));
        assert!(matches!(classify(&chain(20)), Verdict::Packet(Pkt { kind: Kind::Drop(1), .. })));
        assert!(matches!(classify(&chain(21)), Verdict::Fatal(FatalKind::TooManySlots)));
        assert!(matches!(classify(&[req(1, 4000, 0, 200)]), Verdict::Fatal(FatalKind::CrossPage)));
        assert!(matches!(classify(&[req(1, 0, 0, 13)]), Verdict::Packet(Pkt { kind: Kind::Drop(0), .. })));
        assert!(matches!(classify(&[req(1, 0, NETTXF_MORE_DATA, 60)]), Verdict::Fatal(FatalKind::MissingSlots)));
        let mut cut = chain(21);
        cut.truncate(20);
        assert!(matches!(classify(&cut), Verdict::Fatal(FatalKind::MissingSlots)), "missing slots is checked before fatal_skb_slots");
    }
}
