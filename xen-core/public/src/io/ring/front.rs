//! The frontend's half of a shared ring (`struct __name##_front_ring`):
//! requests go on, responses come off.
//!
//! Invariant: `req_prod_pvt - rsp_cons <= size` (wrapping), kept from
//! private state alone, so a request is only written into a slot whose
//! response has been consumed; the only shared values read are `rsp_prod`
//! (validated before any slot is read: at most `size` ahead of `rsp_cons`
//! and never past `req_prod_pvt`) and `rsp_event` and `req_prod`, which
//! only feed the notify decision, exactly as the C macros use them.
#![forbid(unsafe_code)]

use core::marker::PhantomData;

use zerocopy::{FromBytes, Immutable, IntoBytes};

use super::pages::{Geometry, RingError, RingPages, off, read_entry, write_entry};
use super::{RingIdx, SringHeader, free_requests, need_notify, response_prod_overflow};

/// What a push published: the entries in `[from, to)` of the ring's index
/// space, and whether the other end must be sent an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pushed {
    /// Whether to notify.
    pub notify: bool,
    /// The producer index before the push.
    pub from: RingIdx,
    /// The producer index after it.
    pub to: RingIdx,
}

/// A frontend ring of `Req` requests and `Rsp` responses over `M`.
pub struct FrontRing<Req, Rsp, M> {
    mem: M,
    geo: Geometry,
    req_prod_pvt: RingIdx,
    rsp_cons: RingIdx,
    _entries: PhantomData<fn(Req) -> Rsp>,
}

impl<Req, Rsp, M> FrontRing<Req, Rsp, M>
where
    Req: IntoBytes + Immutable,
    Rsp: FromBytes + IntoBytes,
    M: RingPages,
{
    /// `XEN_FRONT_RING_INIT`: `SHARED_RING_INIT` on the pages (producers
    /// 0, event indices 1, padding zero), then `FRONT_RING_INIT`.
    pub fn init(mut mem: M) -> Result<Self, RingError> {
        let geo = Geometry::new::<Req, Rsp>(mem.nr_pages())?;
        mem.write(0, SringHeader::new().as_bytes());
        Ok(FrontRing { mem, geo, req_prod_pvt: 0, rsp_cons: 0, _entries: PhantomData })
    }

    /// `FRONT_RING_ATTACH`: take over pages whose header is already set
    /// up, with both private indices at `idx`.
    pub fn attach(mem: M, idx: RingIdx) -> Result<Self, RingError> {
        let geo = Geometry::new::<Req, Rsp>(mem.nr_pages())?;
        Ok(FrontRing { mem, geo, req_prod_pvt: idx, rsp_cons: idx, _entries: PhantomData })
    }

    /// `RING_SIZE`.
    pub fn size(&self) -> u32 {
        self.geo.size
    }

    /// The private request producer.
    pub fn req_prod_pvt(&self) -> RingIdx {
        self.req_prod_pvt
    }

    /// The private response consumer.
    pub fn rsp_cons(&self) -> RingIdx {
        self.rsp_cons
    }

    /// The shared pages.
    pub fn pages(&self) -> &M {
        &self.mem
    }

    /// `RING_FREE_REQUESTS`.
    pub fn free_requests(&self) -> u32 {
        free_requests(self.geo.size, self.req_prod_pvt, self.rsp_cons)
    }

    /// `RING_FULL`.
    pub fn is_full(&self) -> bool {
        self.free_requests() == 0
    }

    /// Write `req` into the next slot (`RING_GET_REQUEST(r,
    /// r->req_prod_pvt++)`), not yet visible to the backend; returns its
    /// index. `Full` if every slot is taken.
    pub fn produce_request(&mut self, req: &Req) -> Result<RingIdx, RingError> {
        if self.is_full() {
            return Err(RingError::Full);
        }
        let idx = self.req_prod_pvt;
        write_entry(&mut self.mem, self.geo, idx, req);
        self.req_prod_pvt = idx.wrapping_add(1);
        Ok(idx)
    }

    /// `RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`: publish the produced requests
    /// and say whether the backend must be sent an event (its `req_event`
    /// lies in `(old req_prod, new req_prod]`).
    pub fn push_requests(&mut self) -> bool {
        self.push_requests_span().notify
    }

    /// [`Self::push_requests`], also saying which requests it published
    /// (for the guest's trace).
    pub fn push_requests_span(&mut self) -> Pushed {
        let old = self.mem.load_idx(off::REQ_PROD);
        let new = self.req_prod_pvt;
        self.mem.store_idx(off::REQ_PROD, new);
        self.mem.full_barrier();
        Pushed { notify: need_notify(old, new, self.mem.load_idx(off::REQ_EVENT)), from: old, to: new }
    }

    /// `XEN_RING_NR_UNCONSUMED_RESPONSES`, with the backend's `rsp_prod`
    /// checked first (`RING_RESPONSE_PROD_OVERFLOW`, and no responses past
    /// the requests made).
    pub fn unconsumed_responses(&self) -> Result<u32, RingError> {
        let rsp_prod = self.mem.load_idx(off::RSP_PROD);
        if response_prod_overflow(self.geo.size, rsp_prod, self.rsp_cons) {
            return Err(RingError::ResponseProdOverflow { rsp_prod, rsp_cons: self.rsp_cons });
        }
        let n = rsp_prod.wrapping_sub(self.rsp_cons);
        if n > self.req_prod_pvt.wrapping_sub(self.rsp_cons) {
            return Err(RingError::ResponseProdPastRequests { rsp_prod, req_prod_pvt: self.req_prod_pvt });
        }
        Ok(n)
    }

    /// Copy the next response out (`RING_COPY_RESPONSE(r, r->rsp_cons++)`)
    /// if the backend has published one.
    pub fn consume_response(&mut self) -> Result<Option<Rsp>, RingError> {
        if self.unconsumed_responses()? == 0 {
            return Ok(None);
        }
        let rsp = read_entry(&self.mem, self.geo, self.rsp_cons);
        self.rsp_cons = self.rsp_cons.wrapping_add(1);
        Ok(Some(rsp))
    }

    /// `RING_FINAL_CHECK_FOR_RESPONSES`: true if responses are waiting;
    /// otherwise ask for an event on the next one (`rsp_event = rsp_cons +
    /// 1`) and check again, so a response published in between is seen.
    pub fn final_check_for_responses(&mut self) -> Result<bool, RingError> {
        if self.unconsumed_responses()? != 0 {
            return Ok(true);
        }
        self.mem.store_idx(off::RSP_EVENT, self.rsp_cons.wrapping_add(1));
        self.mem.full_barrier();
        Ok(self.unconsumed_responses()? != 0)
    }
}
