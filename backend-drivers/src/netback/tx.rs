//! Serving a vif's tx ring (the packets the guest sends): Linux's
//! `xenvif_tx_build_gops`, `xenvif_get_extras`, `xenvif_count_requests`,
//! `xenvif_tx_err`, `make_tx_response` and `xenvif_tx_submit`
//! (drivers/net/xen-netback/netback.c), with grant copies into the
//! caller's buffer instead of grant maps.
//!
//! A packet is a first request whose `size` is the whole packet, the
//! extra-info slots its `NETTXF_extra_info` announces, then fragment
//! requests while `NETTXF_more_data` is set. Each packet is first read
//! from the ring without consuming it ([`gather`]: every slot copied out
//! once, the copies alone decide), then either left (no credit, or the
//! caller's byte budget spent) or consumed whole, every slot answered exactly once
//! in ring order: `NETIF_RSP_OKAY` or `NETIF_RSP_ERROR` with the request's
//! `id`, `NETIF_RSP_NULL` for extra-info slots (their `id` bytes left as
//! the slot held them, as Linux writes only the status).
//!
//! Invariants: nothing is allocated; a packet's fragments live in a
//! fixed array of [`MAX_FRAGS`], its bytes in the caller's `buf`; a call
//! handles at most `max_packets` packets, each at most a ring's worth of
//! slots. What the frontend got wrong is counted and answered
//! ([`VifStats`]), or, where Linux calls `xenvif_fatal_tx_err`, reported
//! in [`TxServed::fatal`] with nothing more consumed: the caller disables
//! the vif.
//!
//! A packet whose last published slot still says `more_data` (or
//! announces an extra-info past `req_prod`) is fatal, as in Linux's
//! `xenvif_count_requests` ("Asked for %d slots but exceeds this limit")
//! and `xenvif_get_extras` ("Missing extra info"): a frontend publishes a
//! packet's slots together, so one that stops mid-packet would otherwise
//! be polled forever.
//!
//! Where this differs from Linux: a failed
//! grant copy answers every slot of the packet with `NETIF_RSP_ERROR`
//! (Linux: the failed slot only); a GSO extra-info, which was not offered,
//! drops the packet; multicast extra-info is answered `NETIF_RSP_OKAY`
//! without keeping a filter (multicast control was not offered either, so
//! all multicast reaches the guest).
#![forbid(unsafe_code)]

use super::credit::Credit;
use super::csum::ETH_HLEN;
use super::stats::{VifStats, bump};
use crate::ring::{BackRing, RingError, RingPages, XEN_PAGE_SIZE};
use heapless::Vec;
use xen_public::io::netif::{
    NETIF_RSP_ERROR, NETIF_RSP_NULL, NETIF_RSP_OKAY, NETTXF_CSUM_BLANK, NETTXF_DATA_VALIDATED, NETTXF_EXTRA_INFO, NETTXF_MORE_DATA, NetifExtraInfo,
    NetifTxRequest, NetifTxResponse, XEN_NETIF_EXTRA_FLAG_MORE, XEN_NETIF_EXTRA_TYPE_GSO, XEN_NETIF_EXTRA_TYPE_MAX, XEN_NETIF_EXTRA_TYPE_MCAST_ADD,
    XEN_NETIF_EXTRA_TYPE_MCAST_DEL, XEN_NETIF_MAX_TX_SIZE, XEN_NETIF_NR_SLOTS_MIN,
};
use xen_public::io::ring::{Geometry, off, read_entry};
use zerocopy::{FromBytes, IntoBytes};

/// The netif tx back ring.
pub type TxBackRing<P> = BackRing<NetifTxRequest, NetifTxResponse, P>;

/// `XEN_NETBK_LEGACY_SLOTS_MAX`: fragment slots after the first that a
/// packet may use; more are dropped.
pub const LEGACY_SLOTS_MAX: u32 = XEN_NETIF_NR_SLOTS_MIN;
/// `fatal_skb_slots` (Linux's default): a packet with more fragment slots
/// than this is malicious.
pub const FATAL_SKB_SLOTS: u32 = 20;
/// The largest packet (`XEN_NETIF_MAX_TX_SIZE`).
pub const MAX_PACKET: usize = XEN_NETIF_MAX_TX_SIZE as usize;
/// The buffer a caller passes: room for the largest packet.
pub const TX_BUF: usize = 65536;
/// Copies per packet: the first slot and [`LEGACY_SLOTS_MAX`] fragments.
pub const MAX_FRAGS: usize = 1 + LEGACY_SLOTS_MAX as usize;

/// The tx bytes one pass over every vif (a pump) takes in, shared among
/// the vifs served: each may take its share, `total / vifs` but at least
/// one largest packet (so none is starved by a packet larger than its
/// share), and never more than is left of `total`. The caller rotates
/// which vif goes first, so a vif the total ran out on goes earlier next
/// time; a vif whose packet did not fit is left busy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PumpBudget {
    left: usize,
    share: usize,
}

impl PumpBudget {
    /// `total` bytes for `vifs` vifs.
    pub fn new(total: usize, vifs: usize) -> Self {
        PumpBudget { left: total, share: (total / vifs.max(1)).max(MAX_PACKET).min(total) }
    }

    /// Bytes the next vif may take.
    pub fn next_vif(&self) -> usize {
        self.share.min(self.left)
    }

    /// A vif took `bytes`.
    pub fn spend(&mut self, bytes: usize) {
        self.left = self.left.saturating_sub(bytes);
    }

    /// Bytes left of the total.
    pub fn left(&self) -> usize {
        self.left
    }
}

/// One grant copy of a packet's bytes into the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxFrag {
    /// The frontend's grant.
    pub gref: u32,
    /// Byte offset in the granted page; `offset + len <= 4096`.
    pub offset: u16,
    /// Bytes (never 0).
    pub len: u16,
    /// Where they go in the buffer.
    pub buf_off: usize,
}

/// Copies from the frontend's granted pages (`GNTTABOP_copy`).
pub trait TxCopier {
    /// Copy each frag's bytes from the frontend's grant into
    /// `buf[buf_off..buf_off + len]`; `Err(GNTST_*)` if any failed.
    fn copy_in(&mut self, frags: &[TxFrag], buf: &mut [u8]) -> Result<(), i16>;
}

/// A packet handed to dom0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxPacket {
    /// Bytes.
    pub len: usize,
    /// `NETTXF_csum_blank`: the L4 checksum is to be filled in
    /// (Linux `CHECKSUM_PARTIAL`).
    pub csum_blank: bool,
    /// `NETTXF_data_validated` (Linux `CHECKSUM_UNNECESSARY`).
    pub data_validated: bool,
}

/// A frontend error that disables the vif (`xenvif_fatal_tx_err`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxFatal {
    /// A slot's `offset + size` passes its page ("Cross page boundary").
    CrossPage,
    /// More than [`FATAL_SKB_SLOTS`] fragment slots.
    TooManySlots,
    /// The last published slot says `more_data`: the packet asks for
    /// slots past `req_prod` ("Asked for %d slots but exceeds this
    /// limit").
    MissingSlots,
    /// An extra-info of type 0 or past `XEN_NETIF_EXTRA_TYPE_MAX`
    /// ("Invalid extra type"), or one announced past `req_prod` ("Missing
    /// extra info").
    BadExtra,
    /// The frontend broke the ring's indices.
    Ring(RingError),
}

/// What a call of [`serve_tx`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxServed {
    /// Packets delivered.
    pub packets: u32,
    /// Packets consumed and answered with an error.
    pub dropped: u32,
    /// The frontend must be notified (`RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`).
    pub notify: bool,
    /// Requests are left: `max_packets` or the byte budget was reached
    /// (not set when the credit ran out: serve again at
    /// [`Credit::next_refill_us`]).
    pub more: bool,
    /// Disable the vif: nothing more may be served.
    pub fatal: Option<TxFatal>,
}

/// How much one call of [`serve_tx_within`] may hand over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxBudget {
    /// Packets handled (delivered or dropped) at most.
    pub packets: u32,
    /// Bytes delivered at most: a packet that would pass it is left on
    /// the ring for the next call.
    pub bytes: usize,
}

/// Why a packet is dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DropWhy {
    BadSize,
    TooManySlots,
    Gso,
}

/// What a packet's slots amount to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Deliver,
    Drop(DropWhy),
    /// A multicast add/delete carried by extra-info (no packet).
    Mcast,
}

/// One packet read off the ring, not yet consumed.
#[derive(Clone, Debug)]
struct Plan {
    /// Slots it covers: first, extras, fragments.
    slots: u32,
    /// Extra-info slots among them.
    extras: u32,
    first: NetifTxRequest,
    outcome: Outcome,
    frags: Vec<TxFrag, MAX_FRAGS>,
}

/// A gathered packet, or why there is none. Short-lived on the stack;
/// boxing the plan would allocate per packet.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
enum Gather {
    Fatal(TxFatal),
    Ready(Plan),
}

/// Times a serve re-checks an empty ring that the final check found
/// requests on, before it leaves them to the next serve.
pub const RECHECKS: u32 = 4;

/// Serve up to `max_packets` packets from `ring`: copy each into `buf`
/// (which must hold [`MAX_PACKET`] bytes, else larger packets drop) and
/// hand it to `deliver`, answering every slot.
#[allow(clippy::too_many_arguments)]
pub fn serve_tx<P: RingPages, C: TxCopier>(
    ring: &mut TxBackRing<P>,
    copier: &mut C,
    credit: &mut Credit,
    now_us: u64,
    stats: &mut VifStats,
    buf: &mut [u8],
    max_packets: u32,
    deliver: &mut dyn FnMut(&[u8], TxPacket),
) -> TxServed {
    let budget = TxBudget { packets: max_packets, bytes: usize::MAX };
    serve_tx_within(ring, copier, credit, now_us, stats, buf, budget, deliver)
}

/// [`serve_tx`] within `budget`: at most `budget.packets` packets, and
/// packets of at most `budget.bytes` bytes together delivered; a packet
/// that would pass the bytes is left whole on the ring (`more`).
#[allow(clippy::too_many_arguments)]
pub fn serve_tx_within<P: RingPages, C: TxCopier>(
    ring: &mut TxBackRing<P>,
    copier: &mut C,
    credit: &mut Credit,
    now_us: u64,
    stats: &mut VifStats,
    buf: &mut [u8],
    budget: TxBudget,
    deliver: &mut dyn FnMut(&[u8], TxPacket),
) -> TxServed {
    let max_packets = budget.packets;
    let mut bytes_left = budget.bytes;
    // The credit timer fires on time even if the packet it waited for was
    // taken back (the ring now empty).
    credit.expire(now_us);
    let mut out = TxServed::default();
    let mut answered = 0u32;
    let mut handled = 0u32;
    let mut rechecks = 0u32;
    let fatal = loop {
        let avail = match ring.unconsumed_requests() {
            // A frontend flipping `req_prod` back and forth from another
            // vCPU could keep this re-check going: it gets a few, then a
            // serve later (`more`).
            Ok(0) if rechecks >= RECHECKS => {
                out.more = true;
                break None;
            }
            Ok(0) => match ring.final_check_for_requests() {
                Ok(true) => {
                    rechecks += 1;
                    continue;
                }
                Ok(false) => break None,
                Err(e) => break Some(TxFatal::Ring(e)),
            },
            Ok(n) => n,
            Err(e) => break Some(TxFatal::Ring(e)),
        };
        if handled >= max_packets {
            out.more = true;
            break None;
        }
        let plan = match gather(ring, avail, buf.len()) {
            Gather::Fatal(f) => break Some(f),
            Gather::Ready(p) => p,
        };
        let size = usize::from(plan.first.size);
        if plan.outcome == Outcome::Deliver && size > bytes_left {
            out.more = true;
            break None;
        }
        // xenvif_tx_build_gops: credit-based scheduling on the first
        // request's size, before anything is consumed.
        if !credit.allow(now_us, usize::from(plan.first.size)) {
            bump(&mut stats.tx_credit_waits, 1);
            // Not `more`: the caller waits for `Credit::next_refill_us`
            // (serving again before it only spins).
            break None;
        }
        handled += 1;
        let status = settle(&plan, copier, buf, stats);
        if let Err(e) = respond(ring, &plan, status) {
            break Some(TxFatal::Ring(e));
        }
        answered += plan.slots;
        match (plan.outcome, status) {
            (Outcome::Deliver, NETIF_RSP_OKAY) => {
                let len = size;
                bytes_left -= len;
                bump(&mut stats.tx_packets, 1);
                bump(&mut stats.tx_bytes, len as u64);
                out.packets += 1;
                let flags = plan.first.flags;
                deliver(
                    &buf[..len],
                    TxPacket { len, csum_blank: flags & NETTXF_CSUM_BLANK != 0, data_validated: flags & NETTXF_DATA_VALIDATED != 0 },
                );
            }
            (Outcome::Mcast, _) => {}
            _ => out.dropped += 1,
        }
    };
    if let Some(f) = fatal {
        bump(&mut stats.fatal, 1);
        out.fatal = Some(f);
    }
    if answered > 0 {
        out.notify = ring.push_responses();
    }
    out
}

/// The status every data slot of `plan` gets, after copying a packet to
/// deliver into `buf`; drops are counted.
fn settle<C: TxCopier>(plan: &Plan, copier: &mut C, buf: &mut [u8], stats: &mut VifStats) -> i16 {
    match plan.outcome {
        Outcome::Mcast => NETIF_RSP_OKAY,
        Outcome::Drop(d) => {
            let c = match d {
                DropWhy::BadSize => &mut stats.tx_bad_size,
                DropWhy::TooManySlots => &mut stats.tx_too_many_slots,
                DropWhy::Gso => &mut stats.tx_bad_extra,
            };
            bump(c, 1);
            NETIF_RSP_ERROR
        }
        Outcome::Deliver => match copier.copy_in(&plan.frags, &mut buf[..usize::from(plan.first.size)]) {
            Ok(()) => NETIF_RSP_OKAY,
            Err(_) => {
                bump(&mut stats.tx_bad_gref, 1);
                NETIF_RSP_ERROR
            }
        },
    }
}

/// Consume `plan`'s slots and answer each (`make_tx_response`,
/// `xenvif_tx_err`): `status` for the first and the fragments, `NULL` for
/// extra-info. Each slot is copied again only for its `id`.
fn respond<P: RingPages>(ring: &mut TxBackRing<P>, plan: &Plan, status: i16) -> Result<(), RingError> {
    for j in 0..plan.slots {
        let Some(req) = ring.consume_request()? else {
            // req_prod went back under what was gathered.
            let req_prod = ring.pages().load_idx(off::REQ_PROD);
            return Err(RingError::RequestProdBehindConsumer { req_prod, req_cons: ring.req_cons() });
        };
        let rsp = if j >= 1 && j <= plan.extras {
            // Linux writes only the status of an extra's slot; its id
            // bytes stay what the extra-info's type and flags were.
            NetifTxResponse { id: req.gref as u16, status: NETIF_RSP_NULL }
        } else {
            NetifTxResponse { id: req.id, status }
        };
        ring.produce_response(&rsp)?;
    }
    Ok(())
}

/// Read the packet at `req_cons` (`avail` slots are produced) without
/// consuming it.
fn gather<P: RingPages>(ring: &TxBackRing<P>, avail: u32, buf_len: usize) -> Gather {
    let geo = match Geometry::new::<NetifTxRequest, NetifTxResponse>(ring.pages().nr_pages()) {
        Ok(g) => g,
        Err(e) => return Gather::Fatal(TxFatal::Ring(e)),
    };
    let cons = ring.req_cons();
    let peek = |i: u32| -> NetifTxRequest { read_entry(ring.pages(), geo, cons.wrapping_add(i)) };
    let first = peek(0);
    let mut i = 1u32;
    let (mut extras, mut gso, mut mcast) = (0u32, false, false);
    if first.flags & NETTXF_EXTRA_INFO != 0 {
        // xenvif_get_extras.
        loop {
            if i >= avail {
                // "Missing extra info".
                return Gather::Fatal(TxFatal::BadExtra);
            }
            let e = extra_of(&peek(i));
            i += 1;
            extras += 1;
            match e.type_ {
                0 => return Gather::Fatal(TxFatal::BadExtra),
                t if t >= XEN_NETIF_EXTRA_TYPE_MAX => return Gather::Fatal(TxFatal::BadExtra),
                XEN_NETIF_EXTRA_TYPE_GSO => gso = true,
                XEN_NETIF_EXTRA_TYPE_MCAST_ADD | XEN_NETIF_EXTRA_TYPE_MCAST_DEL => mcast = true,
                _ => {} // A hash: nothing to do with it.
            }
            if e.flags & XEN_NETIF_EXTRA_FLAG_MORE == 0 {
                break;
            }
        }
    }
    let mut plan = Plan { slots: i, extras, first, outcome: Outcome::Deliver, frags: Vec::new() };
    if mcast {
        // The request only carries the multicast operation; Linux answers
        // it and goes on with the next slot, fragments or not.
        plan.outcome = Outcome::Mcast;
        return Gather::Ready(plan);
    }
    let mut first_len = first.size;
    let mut drop = None;
    let mut tail: Vec<TxFrag, MAX_FRAGS> = Vec::new();
    if first.flags & NETTXF_MORE_DATA != 0 {
        // xenvif_count_requests: `slots >= work_to_do` first (the
        // published slots end mid-packet), then `fatal_skb_slots`.
        let mut slots = 0u32;
        loop {
            if i >= avail {
                return Gather::Fatal(TxFatal::MissingSlots);
            }
            if slots >= FATAL_SKB_SLOTS {
                return Gather::Fatal(TxFatal::TooManySlots);
            }
            if drop.is_none() && slots >= LEGACY_SLOTS_MAX {
                drop = Some(DropWhy::TooManySlots);
            }
            let txp = peek(i);
            i += 1;
            // A frame of 64 KiB or more wrapped the first size: the
            // fragments look larger than what is left. Not fatal (buggy
            // frontends do it), the packet drops.
            if drop.is_none() && txp.size > first_len {
                drop = Some(DropWhy::BadSize);
            }
            first_len = first_len.wrapping_sub(txp.size);
            slots += 1;
            if crosses_page(&txp, txp.size) {
                return Gather::Fatal(TxFatal::CrossPage);
            }
            if drop.is_none() && txp.size > 0 {
                let _ = tail.push(TxFrag { gref: txp.gref, offset: txp.offset, len: txp.size, buf_off: 0 });
            }
            if txp.flags & NETTXF_MORE_DATA == 0 {
                break;
            }
        }
    }
    plan.slots = i;
    plan.outcome = match drop {
        Some(d) => Outcome::Drop(d),
        // xenvif_tx_build_gops: "Bad packet size" (the first slot holds
        // less than an Ethernet header), then "Cross page boundary".
        None if usize::from(first_len) < ETH_HLEN => Outcome::Drop(DropWhy::BadSize),
        None if crosses_page(&first, first_len) => return Gather::Fatal(TxFatal::CrossPage),
        None if gso => Outcome::Drop(DropWhy::Gso),
        None if usize::from(first.size) > buf_len => Outcome::Drop(DropWhy::BadSize),
        None => Outcome::Deliver,
    };
    if plan.outcome == Outcome::Deliver {
        plan.frags = layout(&first, first_len, &tail);
    }
    Gather::Ready(plan)
}

/// `offset + len` past the slot's page.
fn crosses_page(req: &NetifTxRequest, len: u16) -> bool {
    usize::from(req.offset) + usize::from(len) > XEN_PAGE_SIZE
}

/// The first slot's own bytes, then each fragment, back to back in the
/// buffer (they add up to the first request's `size`).
fn layout(first: &NetifTxRequest, first_len: u16, tail: &[TxFrag]) -> Vec<TxFrag, MAX_FRAGS> {
    let mut frags = Vec::new();
    let _ = frags.push(TxFrag { gref: first.gref, offset: first.offset, len: first_len, buf_off: 0 });
    let mut at = usize::from(first_len);
    for f in tail {
        let _ = frags.push(TxFrag { buf_off: at, ..*f });
        at += usize::from(f.len);
    }
    frags
}

/// A tx slot read as the extra-info it holds (its first 8 bytes).
fn extra_of(req: &NetifTxRequest) -> NetifExtraInfo {
    NetifExtraInfo::read_from_bytes(&req.as_bytes()[..core::mem::size_of::<NetifExtraInfo>()]).unwrap_or_default()
}
