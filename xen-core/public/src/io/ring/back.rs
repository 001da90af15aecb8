//! The backend's half of a shared ring (`struct __name##_back_ring`):
//! requests come off, responses go on.
//!
//! Invariant: `rsp_prod_pvt <= req_cons <= rsp_prod_pvt + size`
//! (wrapping), so a response only overwrites a slot whose request has been
//! consumed and a request is only read from a slot no unsent response
//! holds. The frontend's `req_prod` is checked before any slot is read:
//! at most `size` ahead of `rsp_prod_pvt` (`RING_REQUEST_PROD_OVERFLOW`)
//! and never behind `req_cons`. `req_event` and `rsp_prod` only feed the
//! notify decision, exactly as the C macros use them.
#![forbid(unsafe_code)]

use core::marker::PhantomData;

use zerocopy::{FromBytes, Immutable, IntoBytes};

use super::pages::{Geometry, RingError, RingPages, off, read_entry, write_entry};
use super::{RingIdx, need_notify, request_cons_overflow, request_prod_overflow};

/// A backend ring of `Req` requests and `Rsp` responses over `M`.
pub struct BackRing<Req, Rsp, M> {
    mem: M,
    geo: Geometry,
    rsp_prod_pvt: RingIdx,
    req_cons: RingIdx,
    _entries: PhantomData<fn(Req) -> Rsp>,
}

impl<Req, Rsp, M> BackRing<Req, Rsp, M>
where
    Req: FromBytes + IntoBytes,
    Rsp: IntoBytes + Immutable,
    M: RingPages,
{
    /// `BACK_RING_INIT`: both private indices 0 (the frontend initialised
    /// the shared header).
    pub fn init(mem: M) -> Result<Self, RingError> {
        Self::attach(mem, 0)
    }

    /// `BACK_RING_ATTACH`: both private indices at `idx`.
    pub fn attach(mem: M, idx: RingIdx) -> Result<Self, RingError> {
        let geo = Geometry::new::<Req, Rsp>(mem.nr_pages())?;
        Ok(BackRing { mem, geo, rsp_prod_pvt: idx, req_cons: idx, _entries: PhantomData })
    }

    /// Attach where the shared ring stands, as Linux's `xen_blkif_map`
    /// does on (re)connection: private indices at the shared `rsp_prod`,
    /// refused if `req_prod - rsp_prod` exceeds the ring's size.
    pub fn attach_at_rsp_prod(mem: M) -> Result<Self, RingError> {
        let rsp_prod = mem.load_idx(off::RSP_PROD);
        let ring = Self::attach(mem, rsp_prod)?;
        ring.unconsumed_requests()?;
        Ok(ring)
    }

    /// `RING_SIZE`.
    pub fn size(&self) -> u32 {
        self.geo.size
    }

    /// The private request consumer.
    pub fn req_cons(&self) -> RingIdx {
        self.req_cons
    }

    /// The private response producer.
    pub fn rsp_prod_pvt(&self) -> RingIdx {
        self.rsp_prod_pvt
    }

    /// The shared pages.
    pub fn pages(&self) -> &M {
        &self.mem
    }

    /// Consumed requests not yet answered.
    pub fn unanswered(&self) -> u32 {
        self.req_cons.wrapping_sub(self.rsp_prod_pvt)
    }

    /// `XEN_RING_NR_UNCONSUMED_REQUESTS`, with the frontend's `req_prod`
    /// checked first: `RING_REQUEST_PROD_OVERFLOW` (Linux's blkback halts
    /// the ring on it), and `req_prod` not behind `req_cons` (which would
    /// make `req_prod - req_cons` wrap to more than the ring holds, what
    /// netback calls an impossible number of requests).
    pub fn unconsumed_requests(&self) -> Result<u32, RingError> {
        let req_prod = self.mem.load_idx(off::REQ_PROD);
        if request_prod_overflow(self.geo.size, req_prod, self.rsp_prod_pvt) {
            return Err(RingError::RequestProdOverflow { req_prod, rsp_prod_pvt: self.rsp_prod_pvt });
        }
        if req_prod.wrapping_sub(self.rsp_prod_pvt) < self.unanswered() {
            return Err(RingError::RequestProdBehindConsumer { req_prod, req_cons: self.req_cons });
        }
        Ok(super::unconsumed_requests(self.geo.size, req_prod, self.req_cons, self.rsp_prod_pvt))
    }

    /// Copy the next request out (`RING_COPY_REQUEST(r, r->req_cons++)`)
    /// if the frontend has published one and its slot holds no unsent
    /// response (`RING_REQUEST_CONS_OVERFLOW`).
    pub fn consume_request(&mut self) -> Result<Option<Req>, RingError> {
        if self.unconsumed_requests()? == 0 || request_cons_overflow(self.geo.size, self.req_cons, self.rsp_prod_pvt) {
            return Ok(None);
        }
        let req = read_entry(&self.mem, self.geo, self.req_cons);
        self.req_cons = self.req_cons.wrapping_add(1);
        Ok(Some(req))
    }

    /// Write `rsp` into the next response slot (`RING_GET_RESPONSE(r,
    /// r->rsp_prod_pvt++)`), not yet visible to the frontend.
    /// `NoRequestToAnswer` if every consumed request has its response.
    pub fn produce_response(&mut self, rsp: &Rsp) -> Result<RingIdx, RingError> {
        if self.unanswered() == 0 {
            return Err(RingError::NoRequestToAnswer);
        }
        let idx = self.rsp_prod_pvt;
        write_entry(&mut self.mem, self.geo, idx, rsp);
        self.rsp_prod_pvt = idx.wrapping_add(1);
        Ok(idx)
    }

    /// `RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`: publish the produced
    /// responses and say whether the frontend must be sent an event (its
    /// `rsp_event` lies in `(old rsp_prod, new rsp_prod]`).
    pub fn push_responses(&mut self) -> bool {
        let old = self.mem.load_idx(off::RSP_PROD);
        let new = self.rsp_prod_pvt;
        self.mem.store_idx(off::RSP_PROD, new);
        self.mem.full_barrier();
        need_notify(old, new, self.mem.load_idx(off::RSP_EVENT))
    }

    /// Ask for an event when the frontend publishes more requests than it
    /// has now, as Linux's netback does while a packet needs more rx slots
    /// than are posted (`xenvif_rx_ring_slots_available`: `req_event =
    /// req_prod + 1`, then re-read `req_prod`). Returns the unconsumed
    /// requests, re-read after the store: if they grew in between, the
    /// frontend may have seen the old `req_event` (and `req_event` is now
    /// at or behind `req_prod`), so the caller must look again and, if
    /// still too few, arm again: Linux's loop runs until `req_prod` holds
    /// still.
    pub fn request_event_after_more(&mut self) -> Result<u32, RingError> {
        let before = self.unconsumed_requests()?;
        let req_prod = self.mem.load_idx(off::REQ_PROD);
        self.mem.store_idx(off::REQ_EVENT, req_prod.wrapping_add(1));
        self.mem.full_barrier();
        let after = self.unconsumed_requests()?;
        Ok(after.max(before))
    }

    /// `RING_FINAL_CHECK_FOR_REQUESTS`: true if requests are waiting;
    /// otherwise ask for an event on the next one (`req_event = req_cons +
    /// 1`) and check again, so a request published in between is seen.
    pub fn final_check_for_requests(&mut self) -> Result<bool, RingError> {
        if self.unconsumed_requests()? != 0 {
            return Ok(true);
        }
        self.mem.store_idx(off::REQ_EVENT, self.req_cons.wrapping_add(1));
        self.mem.full_barrier();
        Ok(self.unconsumed_requests()? != 0)
    }
}
