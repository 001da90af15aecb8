//! Serving a vif's rx ring (packets dom0 delivers to the guest): Linux's
//! `xenvif_rx_queue_tail`, `xenvif_rx_ring_slots_available`,
//! `xenvif_rx_skb`, `xenvif_rx_data_slot` and `xenvif_rx_copy_flush`
//! (drivers/net/xen-netback/rx.c), copying from dom0's frame into the
//! pages the frontend granted with its rx requests.
//!
//! Frames wait in an [`RxQueue`] (bounded in packets and bytes, as Linux
//! bounds `rx_queue_len` by `rx_queue_max`; what does not fit is dropped
//! and counted). The head frame goes only once the frontend has posted
//! the slots it needs: `ceil(len / 4096)` with `feature-sg`, one without
//! (a larger frame for a frontend without sg is dropped). Each slot gets
//! up to a page at offset 0 and the response `{id, offset 0, flags,
//! status = bytes}`: `NETRXF_more_data` on all but the last, the first
//! with `NETRXF_csum_blank | NETRXF_data_validated` for a blank checksum
//! and `NETRXF_data_validated` for a validated one. A frontend that took
//! no checksum offload gets blank checksums completed first ([`csum`]),
//! and no checksum flags (Linux's `skb_checksum_help` leaves
//! `CHECKSUM_NONE`). A failed grant copy puts its `GNTST_*` status in the
//! responses (`xenvif_rx_copy_flush` overwrites the status with it; here
//! every slot of the packet gets it, as one copy status covers the
//! packet).
//!
//! Invariants: memory is the queue's bound (frames copied in only after
//! the reservation succeeded); every consumed rx request is answered once,
//! in ring order; a call delivers or drops at most `max_packets` frames;
//! a ring the frontend corrupted stops being served
//! ([`RxServed::fatal`]).
//!
//! [`csum`]: super::csum
#![forbid(unsafe_code)]

use super::csum::complete_l4_checksum;
use super::handshake::VifRing;
use super::stats::{VifStats, bump};
use super::tx::MAX_PACKET;
use crate::ring::{BackRing, RingError, RingPages, XEN_PAGE_SIZE};
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use xen_public::io::netif::{NETIF_RSP_ERROR, NETRXF_CSUM_BLANK, NETRXF_DATA_VALIDATED, NETRXF_MORE_DATA, NetifRxRequest, NetifRxResponse};
use xen_public::io::ring::off;

/// The netif rx back ring.
pub type RxBackRing<P> = BackRing<NetifRxRequest, NetifRxResponse, P>;

/// Frames an [`RxQueue`] holds by default.
pub const RX_QUEUE_PACKETS: usize = 256;
/// Bytes an [`RxQueue`] holds by default (Linux's `rx_queue_max` is 32
/// ring-fulls of 64 KiB; this is eight 64 KiB frames' worth).
pub const RX_QUEUE_BYTES: usize = 512 * 1024;
/// Slots the largest frame needs.
pub const MAX_RX_SLOTS: usize = MAX_PACKET.div_ceil(XEN_PAGE_SIZE);

/// One grant copy of a frame's bytes into a page the frontend posted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxFrag {
    /// The frontend's grant (from its rx request).
    pub gref: u32,
    /// Byte offset in the granted page (always 0 here).
    pub offset: u16,
    /// Bytes; `offset + len <= 4096`.
    pub len: u16,
    /// Where they come from in the frame.
    pub data_off: usize,
}

/// Copies into the frontend's granted pages (`GNTTABOP_copy`).
pub trait RxCopier {
    /// Copy `data[data_off..data_off + len]` of each frag into its grant;
    /// `Err(GNTST_*)` if any failed.
    fn copy_out(&mut self, frags: &[RxFrag], data: &[u8]) -> Result<(), i16>;
}

/// How the frame's checksum stands (Linux's `skb->ip_summed`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxFlags {
    /// The L4 checksum is blank, to be filled in (`CHECKSUM_PARTIAL`).
    pub csum_blank: bool,
    /// The checksum was validated (`CHECKSUM_UNNECESSARY`).
    pub data_validated: bool,
}

/// Frames waiting for the guest's rx slots: a bounded FIFO.
#[derive(Debug)]
pub struct RxQueue {
    frames: VecDeque<(Vec<u8>, RxFlags)>,
    bytes: usize,
    max_packets: usize,
    max_bytes: usize,
}

impl RxQueue {
    /// A queue of at most `max_packets` frames and `max_bytes` bytes.
    pub fn new(max_packets: usize, max_bytes: usize) -> Self {
        RxQueue { frames: VecDeque::new(), bytes: 0, max_packets, max_bytes }
    }

    /// Queue a copy of `frame` (`xenvif_rx_queue_tail`); false if it was
    /// dropped and counted: the queue is full (or memory ran out), or the
    /// frame is empty or over [`MAX_PACKET`].
    pub fn push(&mut self, frame: &[u8], flags: RxFlags, stats: &mut VifStats) -> bool {
        self.push_within(frame, flags, stats, usize::MAX)
    }

    /// [`push`](Self::push) taking at most `room` more bytes: what a
    /// budget shared by several queues has left. A frame past it (the
    /// newest) is dropped and counted as a full queue.
    pub fn push_within(&mut self, frame: &[u8], flags: RxFlags, stats: &mut VifStats, room: usize) -> bool {
        if frame.is_empty() || frame.len() > MAX_PACKET {
            bump(&mut stats.rx_too_big, 1);
            return false;
        }
        let fits = self.frames.len() < self.max_packets && self.bytes.saturating_add(frame.len()) <= self.max_bytes && frame.len() <= room;
        let mut copy = Vec::new();
        if !fits || self.frames.try_reserve(1).is_err() || copy.try_reserve_exact(frame.len()).is_err() {
            bump(&mut stats.rx_queue_full, 1);
            return false;
        }
        copy.extend_from_slice(frame);
        self.bytes += frame.len();
        self.frames.push_back((copy, flags));
        true
    }

    /// Frames queued.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Nothing queued.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Bytes queued.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Drop everything (the vif disconnected: `xenvif_rx_queue_purge`).
    pub fn clear(&mut self) {
        self.frames.clear();
        self.bytes = 0;
    }

    fn pop(&mut self) -> Option<(Vec<u8>, RxFlags)> {
        let f = self.frames.pop_front()?;
        self.bytes -= f.0.len();
        Some(f)
    }
}

/// What a call of [`serve_rx`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxServed {
    /// Frames copied into the guest.
    pub delivered: u32,
    /// Frames dropped (too big for the frontend, copy failed).
    pub dropped: u32,
    /// The frontend must be notified (`RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`).
    pub notify: bool,
    /// The ring is corrupt: stop serving it and disconnect.
    pub fatal: Option<RingError>,
    /// The head frame waits for rx requests the frontend has not posted
    /// yet; the ring asks for an event when it posts more (`req_event`
    /// past `req_prod`, as Linux's netback), so serve again on that event.
    pub starved: bool,
    /// The frontend kept moving `req_prod` while the event was armed: its
    /// event may be armed behind it, so serve again soon (not on an event).
    pub again: bool,
}

/// Times a serve looks again at a `req_prod` that moved under it (a final
/// check that found requests, a re-armed event) before it leaves the ring
/// to a serve soon after.
pub const REARMS: u32 = 4;

/// Deliver queued frames into `ring` while the frontend has posted enough
/// requests, at most `max_packets` frames (delivered or dropped).
pub fn serve_rx<P: RingPages, C: RxCopier>(
    ring: &mut RxBackRing<P>,
    copier: &mut C,
    queue: &mut RxQueue,
    vif: &VifRing,
    stats: &mut VifStats,
    max_packets: u32,
) -> RxServed {
    let mut out = RxServed::default();
    let mut answered = 0u32;
    let mut rearms = 0u32;
    while out.delivered + out.dropped < max_packets {
        let Some(len) = queue.frames.front().map(|f| f.0.len()) else { break };
        let needed = if vif.sg { len.div_ceil(XEN_PAGE_SIZE) } else { 1 };
        if needed > MAX_RX_SLOTS || (!vif.sg && len > XEN_PAGE_SIZE) {
            queue.pop();
            bump(&mut stats.rx_too_big, 1);
            out.dropped += 1;
            continue;
        }
        // xenvif_rx_ring_slots_available.
        // Every look again below makes no progress: a frontend moving
        // `req_prod` back and forth from another vCPU gets [`REARMS`] of
        // them per serve, then a serve later (`again`).
        if rearms >= REARMS {
            (out.starved, out.again) = (true, true);
            break;
        }
        let avail = match ring.unconsumed_requests() {
            Ok(0) => match ring.final_check_for_requests() {
                Ok(true) => {
                    rearms += 1;
                    continue;
                }
                Ok(false) => {
                    out.starved = true;
                    break;
                }
                Err(e) => {
                    out.fatal = Some(e);
                    break;
                }
            },
            Ok(n) => n as usize,
            Err(e) => {
                out.fatal = Some(e);
                break;
            }
        };
        if avail < needed {
            // xenvif_rx_ring_slots_available: ask for an event when the
            // frontend posts more (`req_event = req_prod + 1`) and look
            // again; if it posted meanwhile (too few still), arm again at
            // the new `req_prod`, until it holds still.
            match ring.request_event_after_more() {
                Ok(n) if n as usize >= needed || n as usize != avail => {
                    rearms += 1;
                    continue;
                }
                Ok(_) => out.starved = true,
                Err(e) => out.fatal = Some(e),
            }
            break;
        }
        let Some((mut frame, flags)) = queue.pop() else { break };
        match deliver(ring, copier, &mut frame, flags, vif, needed) {
            Ok(true) => {
                bump(&mut stats.rx_packets, 1);
                bump(&mut stats.rx_bytes, frame.len() as u64);
                out.delivered += 1;
            }
            Ok(false) => {
                bump(&mut stats.rx_copy_failed, 1);
                out.dropped += 1;
            }
            Err(e) => {
                out.fatal = Some(e);
                break;
            }
        }
        answered += needed as u32;
    }
    if out.fatal.is_some() {
        bump(&mut stats.fatal, 1);
    }
    if answered > 0 {
        out.notify = ring.push_responses();
    }
    out
}

/// `xenvif_rx_skb`: consume `needed` requests, copy `frame` into their
/// pages and answer them; `Ok(false)` if the copy failed.
fn deliver<P: RingPages, C: RxCopier>(
    ring: &mut RxBackRing<P>,
    copier: &mut C,
    frame: &mut [u8],
    flags: RxFlags,
    vif: &VifRing,
    needed: usize,
) -> Result<bool, RingError> {
    let mut reqs: heapless::Vec<NetifRxRequest, MAX_RX_SLOTS> = heapless::Vec::new();
    let mut frags: heapless::Vec<RxFrag, MAX_RX_SLOTS> = heapless::Vec::new();
    for k in 0..needed {
        let Some(req) = ring.consume_request()? else {
            // req_prod went back under what was counted.
            let req_prod = ring.pages().load_idx(off::REQ_PROD);
            return Err(RingError::RequestProdBehindConsumer { req_prod, req_cons: ring.req_cons() });
        };
        let data_off = k * XEN_PAGE_SIZE;
        let len = (frame.len() - data_off).min(XEN_PAGE_SIZE) as u16;
        let _ = reqs.push(req);
        let _ = frags.push(RxFrag { gref: req.gref, offset: 0, len, data_off });
    }
    let mut first_flags = 0;
    if flags.csum_blank && !vif.csum_offload {
        // The frontend cannot complete it: do it here, and claim nothing.
        complete_l4_checksum(frame);
    } else if flags.csum_blank {
        first_flags = NETRXF_CSUM_BLANK | NETRXF_DATA_VALIDATED;
    } else if flags.data_validated {
        first_flags = NETRXF_DATA_VALIDATED;
    }
    let copied = copier.copy_out(&frags, frame);
    for (k, (req, frag)) in reqs.iter().zip(frags.iter()).enumerate() {
        let mut f = if k == 0 { first_flags } else { 0 };
        if k + 1 < needed {
            f |= NETRXF_MORE_DATA;
        }
        let status = match copied {
            Ok(()) => frag.len as i16,
            Err(st) if st < 0 => st,
            Err(_) => NETIF_RSP_ERROR,
        };
        ring.produce_response(&NetifRxResponse { id: req.id, offset: 0, flags: f, status })?;
    }
    Ok(copied.is_ok())
}
