//! The records a guest writes about itself, in Xen's `TRC_GUEST` class
//! (`0x0800f000` of `public/trace.h`, which Xen reserves for records a
//! guest generates and leaves the meaning of to the guest).
//!
//! Our guest runtime (`pv-guest-kernel`) and dom0 write these into a
//! buffer of their own, stamped with the TSC they read themselves, and
//! print it framed on their console; the host merges them with the
//! hypervisor's per-CPU records on that TSC. A PV guest's `rdtsc` reads the
//! same counter as the hypervisor's, so no offset is applied.
//!
//! Numbering (ours; Xen defines none inside `TRC_GUEST`): the subclass
//! nibble (bits 12-15) names the area, one bit each as Xen's classes do, and
//! the low 12 bits the event:
//!
//! | event | extra words |
//! |---|---|
//! | `GTRC_EVTCHN_SEND` 0x08001001 | port, result, TSC before the hypercall (lo, hi) |
//! | `GTRC_XENBUS_REQUEST` 0x08002001 | type, req_id, tx_id, payload length |
//! | `GTRC_XENBUS_REPLY` 0x08002002 | type, req_id, payload length |
//! | `GTRC_RING_PUSH_REQUESTS` 0x08004001 | ring, peer domid, req_prod, count, notified |
//! | `GTRC_RING_TAKE_RESPONSES` 0x08004002 | ring, peer domid, rsp_cons, count |
//! | `GTRC_RING_PUSH_RESPONSES` 0x08004003 | ring, peer domid, rsp_prod, count, notified |
//! | `GTRC_BALLOON_STEP` 0x08008001 | op, pages asked, pages done, pages held after |
//!
//! Invariant: [`GuestEvent::decode`] accepts exactly what
//! [`GuestEvent::record`] writes (event number and extra-word count), and
//! every record is a `TRC_GUEST` record with its TSC.
#![forbid(unsafe_code)]

use crate::trace::{RecordError, TRC_GUEST, TraceRecord};

/// Event-channel subclass.
pub const GTRC_EVTCHN: u32 = 0x0800_1000;
/// xenbus subclass.
pub const GTRC_XENBUS: u32 = 0x0800_2000;
/// Shared-ring subclass.
pub const GTRC_RING: u32 = 0x0800_4000;
/// Balloon subclass.
pub const GTRC_BALLOON: u32 = 0x0800_8000;

/// `EVTCHNOP_send` returned.
pub const GTRC_EVTCHN_SEND: u32 = GTRC_EVTCHN + 1;
/// A xenstore request was written to the ring.
pub const GTRC_XENBUS_REQUEST: u32 = GTRC_XENBUS + 1;
/// Its reply was read whole.
pub const GTRC_XENBUS_REPLY: u32 = GTRC_XENBUS + 2;
/// A frontend published requests.
pub const GTRC_RING_PUSH_REQUESTS: u32 = GTRC_RING + 1;
/// A frontend consumed responses.
pub const GTRC_RING_TAKE_RESPONSES: u32 = GTRC_RING + 2;
/// A backend published responses (to the requests it took).
pub const GTRC_RING_PUSH_RESPONSES: u32 = GTRC_RING + 3;
/// One balloon step (`XENMEM_*_reservation` and its bookkeeping) ended.
pub const GTRC_BALLOON_STEP: u32 = GTRC_BALLOON + 1;

/// Which shared ring a ring record is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum RingKind {
    /// `blkif` (block).
    Blk = 1,
    /// `netif` transmit ring.
    NetTx = 2,
    /// `netif` receive ring.
    NetRx = 3,
}

impl RingKind {
    fn from_u32(v: u32) -> Option<RingKind> {
        match v {
            1 => Some(RingKind::Blk),
            2 => Some(RingKind::NetTx),
            3 => Some(RingKind::NetRx),
            _ => None,
        }
    }

    /// Its name in listings.
    pub const fn name(self) -> &'static str {
        match self {
            RingKind::Blk => "blk",
            RingKind::NetTx => "net-tx",
            RingKind::NetRx => "net-rx",
        }
    }
}

/// What a balloon step did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum BalloonOp {
    /// `XENMEM_decrease_reservation`: pages given back.
    Decrease = 0,
    /// `XENMEM_populate_physmap`: pages taken back.
    Populate = 1,
}

impl BalloonOp {
    fn from_u32(v: u32) -> Option<BalloonOp> {
        match v {
            0 => Some(BalloonOp::Decrease),
            1 => Some(BalloonOp::Populate),
            _ => None,
        }
    }

    /// Its name in listings.
    pub const fn name(self) -> &'static str {
        match self {
            BalloonOp::Decrease => "decrease",
            BalloonOp::Populate => "populate",
        }
    }
}

/// One guest event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GuestEvent {
    /// `EVTCHNOP_send` on `port` returned `result`; the record's TSC is
    /// read after the hypercall, `tsc_before` before it.
    EvtchnSend {
        /// The local port.
        port: u32,
        /// The hypercall's result (an errno is negative).
        result: i32,
        /// TSC read just before the hypercall.
        tsc_before: u64,
    },
    /// A xenstore request went out.
    XenbusRequest {
        /// `XS_*` type.
        type_: u32,
        /// Its `req_id`.
        req_id: u32,
        /// Its transaction.
        tx_id: u32,
        /// Payload bytes.
        len: u32,
    },
    /// A xenstore reply came back whole.
    XenbusReply {
        /// `XS_*` type (`XS_ERROR` for a refusal).
        type_: u32,
        /// Its `req_id`.
        req_id: u32,
        /// Payload bytes.
        len: u32,
    },
    /// A frontend pushed `count` requests up to `req_prod`.
    RingPushRequests {
        /// The ring.
        ring: RingKind,
        /// The backend's domain.
        peer: u16,
        /// The new `req_prod`.
        req_prod: u32,
        /// Requests pushed.
        count: u32,
        /// Whether the backend was notified.
        notified: bool,
    },
    /// A frontend consumed `count` responses up to `rsp_cons`.
    RingTakeResponses {
        /// The ring.
        ring: RingKind,
        /// The backend's domain.
        peer: u16,
        /// The new `rsp_cons`.
        rsp_cons: u32,
        /// Responses taken.
        count: u32,
    },
    /// A backend pushed `count` responses up to `rsp_prod`.
    RingPushResponses {
        /// The ring.
        ring: RingKind,
        /// The frontend's domain.
        peer: u16,
        /// The new `rsp_prod`.
        rsp_prod: u32,
        /// Responses pushed.
        count: u32,
        /// Whether the frontend was notified.
        notified: bool,
    },
    /// A balloon step.
    BalloonStep {
        /// What it did.
        op: BalloonOp,
        /// Pages it asked the hypervisor for (or to take).
        asked: u32,
        /// Pages the hypervisor handled.
        done: u32,
        /// Pages the guest holds afterwards.
        held: u32,
    },
}

/// Which end of a shared ring moved, for [`GuestEvent::ring_step`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingStep {
    /// A frontend published requests.
    PushRequests,
    /// A frontend consumed responses.
    TakeResponses,
    /// A backend published responses.
    PushResponses,
}

/// Words of the longest guest record's payload.
const MAX_WORDS: usize = 5;

impl GuestEvent {
    /// The event number and extra words.
    fn words(&self) -> (u32, [u32; MAX_WORDS], usize) {
        use GuestEvent::*;
        let (event, payload): (u32, &[u32]) = match *self {
            EvtchnSend { port, result, tsc_before } => (GTRC_EVTCHN_SEND, &[port, result as u32, tsc_before as u32, (tsc_before >> 32) as u32]),
            XenbusRequest { type_, req_id, tx_id, len } => (GTRC_XENBUS_REQUEST, &[type_, req_id, tx_id, len]),
            XenbusReply { type_, req_id, len } => (GTRC_XENBUS_REPLY, &[type_, req_id, len]),
            RingPushRequests { ring, peer, req_prod, count, notified } => {
                (GTRC_RING_PUSH_REQUESTS, &[ring as u32, u32::from(peer), req_prod, count, u32::from(notified)])
            }
            RingTakeResponses { ring, peer, rsp_cons, count } => (GTRC_RING_TAKE_RESPONSES, &[ring as u32, u32::from(peer), rsp_cons, count]),
            RingPushResponses { ring, peer, rsp_prod, count, notified } => {
                (GTRC_RING_PUSH_RESPONSES, &[ring as u32, u32::from(peer), rsp_prod, count, u32::from(notified)])
            }
            BalloonStep { op, asked, done, held } => (GTRC_BALLOON_STEP, &[op as u32, asked, done, held]),
        };
        let mut w = [0u32; MAX_WORDS];
        w[..payload.len()].copy_from_slice(payload);
        (event, w, payload.len())
    }

    /// The record of a ring index moving from `from` to `to` (`notified`:
    /// the other end was sent an event; ignored for a take), or `None` when
    /// it did not move.
    pub fn ring_step(step: RingStep, ring: RingKind, peer: u16, from: u32, to: u32, notified: bool) -> Option<GuestEvent> {
        let count = to.wrapping_sub(from);
        (count > 0).then_some(match step {
            RingStep::PushRequests => GuestEvent::RingPushRequests { ring, peer, req_prod: to, count, notified },
            RingStep::TakeResponses => GuestEvent::RingTakeResponses { ring, peer, rsp_cons: to, count },
            RingStep::PushResponses => GuestEvent::RingPushResponses { ring, peer, rsp_prod: to, count, notified },
        })
    }

    /// The `t_rec` of this event at `tsc`.
    pub fn record(&self, tsc: u64) -> TraceRecord {
        let (event, w, n) = self.words();
        // Every event number fits 28 bits and no payload exceeds seven
        // words (the table above), so `new` cannot refuse these.
        TraceRecord::new(event, Some(tsc), &w[..n]).unwrap_or_else(|_: RecordError| unreachable!("guest records are well-formed"))
    }

    /// The event `event` with payload `w`, if it is one of ours and its
    /// payload has the right length and values.
    pub fn decode(event: u32, w: &[u32]) -> Option<GuestEvent> {
        use GuestEvent::*;
        let peer = |v: u32| u16::try_from(v).ok();
        let flag = |v: u32| match v {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        };
        Some(match (event, w) {
            (GTRC_EVTCHN_SEND, &[port, result, lo, hi]) => {
                EvtchnSend { port, result: result as i32, tsc_before: u64::from(lo) | u64::from(hi) << 32 }
            }
            (GTRC_XENBUS_REQUEST, &[type_, req_id, tx_id, len]) => XenbusRequest { type_, req_id, tx_id, len },
            (GTRC_XENBUS_REPLY, &[type_, req_id, len]) => XenbusReply { type_, req_id, len },
            (GTRC_RING_PUSH_REQUESTS, &[ring, p, req_prod, count, n]) => {
                RingPushRequests { ring: RingKind::from_u32(ring)?, peer: peer(p)?, req_prod, count, notified: flag(n)? }
            }
            (GTRC_RING_TAKE_RESPONSES, &[ring, p, rsp_cons, count]) => {
                RingTakeResponses { ring: RingKind::from_u32(ring)?, peer: peer(p)?, rsp_cons, count }
            }
            (GTRC_RING_PUSH_RESPONSES, &[ring, p, rsp_prod, count, n]) => {
                RingPushResponses { ring: RingKind::from_u32(ring)?, peer: peer(p)?, rsp_prod, count, notified: flag(n)? }
            }
            (GTRC_BALLOON_STEP, &[op, asked, done, held]) => BalloonStep { op: BalloonOp::from_u32(op)?, asked, done, held },
            _ => return None,
        })
    }
}

/// Whether `event` is of Xen's `TRC_GUEST` class.
pub const fn is_guest_class(event: u32) -> bool {
    event & TRC_GUEST & 0x0fff_0000 != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> [GuestEvent; 7] {
        use GuestEvent::*;
        [
            EvtchnSend { port: 5, result: -22, tsc_before: 0x1_2345_6789 },
            XenbusRequest { type_: 2, req_id: 7, tx_id: 0, len: 12 },
            XenbusReply { type_: 16, req_id: 7, len: 7 },
            RingPushRequests { ring: RingKind::NetTx, peer: 0, req_prod: 300, count: 2, notified: true },
            RingTakeResponses { ring: RingKind::Blk, peer: 0, rsp_cons: 9, count: 1 },
            RingPushResponses { ring: RingKind::NetRx, peer: 3, rsp_prod: 64, count: 4, notified: false },
            BalloonStep { op: BalloonOp::Decrease, asked: 256, done: 256, held: 7936 },
        ]
    }

    #[test]
    fn every_guest_record_is_trc_guest_class_with_its_tsc_and_reads_back() {
        for e in all() {
            let r = e.record(1234);
            assert!(is_guest_class(r.event()), "{e:?}: TRC_GUEST is 0x0800f000");
            assert_eq!(r.event() & 0xffff_0000, 0x0800_0000);
            assert_eq!(r.tsc(), Some(1234));
            let (bytes, n) = r.encode_bytes();
            let (back, used) = TraceRecord::decode_bytes(&bytes[..n]).unwrap();
            assert_eq!(used, n);
            assert_eq!(GuestEvent::decode(back.event(), back.extra()), Some(e));
        }
    }

    #[test]
    fn send_record_keeps_the_negative_result_and_the_64_bit_tsc_before() {
        let r = GuestEvent::EvtchnSend { port: 3, result: -22, tsc_before: u64::MAX - 1 }.record(5);
        assert_eq!(r.extra(), &[3, (-22i32) as u32, u32::MAX - 1, u32::MAX]);
    }

    #[test]
    fn decode_refuses_wrong_lengths_and_values() {
        assert_eq!(GuestEvent::decode(GTRC_EVTCHN_SEND, &[1, 2, 3]), None);
        assert_eq!(GuestEvent::decode(GTRC_RING_PUSH_REQUESTS, &[9, 0, 1, 1, 1]), None, "unknown ring");
        assert_eq!(GuestEvent::decode(GTRC_RING_PUSH_REQUESTS, &[1, 0x1_0000, 1, 1, 1]), None, "domid is 16 bits");
        assert_eq!(GuestEvent::decode(GTRC_RING_PUSH_RESPONSES, &[1, 0, 1, 1, 2]), None, "a flag is 0 or 1");
        assert_eq!(GuestEvent::decode(GTRC_BALLOON_STEP, &[7, 1, 1, 1]), None);
        assert_eq!(GuestEvent::decode(TRC_GUEST | 0xfff, &[]), None);
    }

    #[test]
    fn a_ring_step_counts_across_the_index_wrap_and_none_when_still() {
        let e = GuestEvent::ring_step(RingStep::PushRequests, RingKind::Blk, 0, u32::MAX - 1, 2, true);
        assert_eq!(e, Some(GuestEvent::RingPushRequests { ring: RingKind::Blk, peer: 0, req_prod: 2, count: 4, notified: true }));
        assert_eq!(GuestEvent::ring_step(RingStep::TakeResponses, RingKind::NetRx, 0, 7, 7, false), None);
        let e = GuestEvent::ring_step(RingStep::PushResponses, RingKind::NetTx, 3, 10, 12, false);
        assert_eq!(e, Some(GuestEvent::RingPushResponses { ring: RingKind::NetTx, peer: 3, rsp_prod: 12, count: 2, notified: false }));
    }

    #[test]
    fn hypervisor_classes_are_not_guest_class() {
        assert!(!is_guest_class(0x0002_f000));
        assert!(!is_guest_class(0x0400_1001));
        assert!(is_guest_class(GTRC_BALLOON_STEP));
    }
}
