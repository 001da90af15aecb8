//! The frontend half of the xenbus handshake, as a pure state machine:
//! Linux's `blkback_changed`/`talk_to_blkback`/`blkfront_connect`/
//! `blkfront_closing` (drivers/block/xen-blkfront.c) with the device
//! specifics behind [`FrontendDevice`], so console and net frontends reuse
//! the same handshake. [`Blkfront`] is the block device's part.
//!
//! The machine owns the frontend's `XenbusState` (what it last switched
//! to, Linux's `dev->state`). Events come in ([`FrontEvent`]); it reads the
//! backend's nodes through [`StoreRead`] and returns [`FrontAction`]s: store
//! changes for [`crate::xenbus_store::apply`], and what the driver must do
//! (set up a ring of these pages, go live with these device properties,
//! stop and free the ring).
//!
//! Handshake (blkif.h "STATE DIAGRAMS"): backend InitWait → read its offer,
//! set up the ring, publish ring-ref(s)/event-channel/protocol →
//! Initialised; backend Connected → read the device properties →
//! Connected. Backend Closing/Closed → stop, Closed (`xenbus_frontend_closed`).
//! A guest-side detach goes Closing first and Closed when the backend
//! follows. After Closed, [`FrontEvent::Reconnect`] starts again from
//! Initialising (the backend answers with InitWait, or is already there).
//!
//! Invariants: nothing the backend writes can panic the machine or make it
//! loop (bad nodes are fatal: an `error` node and Closing); a ring is set up
//! only from Initialising and is always freed (Disconnect) before the
//! machine reaches Closed or sets up another; every step's output is
//! bounded.
#![forbid(unsafe_code)]
// `Fatal` carries its message inline (no heap in the guest), so its
// `Result`s are larger than clippy likes; they live only on the way up.
#![allow(clippy::result_large_err)]

use crate::xenbus_store::{
    ACTIONS_MAX, Fatal, StoreOp, StoreRead, Writes, XENBUS_STATE_CLOSED, XENBUS_STATE_CLOSING, XENBUS_STATE_CONNECTED, XENBUS_STATE_INIT_WAIT,
    XENBUS_STATE_INITIALISED, XENBUS_STATE_INITIALISING, XenbusState, blkif_keys as k, put, read_bool, read_state, read_u32, read_u64, require_u32,
};
use heapless::Vec;
use xen_public::errno::EINVAL;

/// What a kind of frontend (vbd, vif, console) adds to the handshake.
pub trait FrontendDevice {
    /// Transport parameters chosen from the backend's offer (ring size...).
    type Params: Clone + core::fmt::Debug + PartialEq;
    /// The ring the driver set up: grant refs and event channel.
    type Ring: Clone + core::fmt::Debug + PartialEq;
    /// The device properties the backend publishes when Connected.
    type Info: Clone + core::fmt::Debug + PartialEq;

    /// Read the backend's offer at InitWait (`talk_to_blkback`'s reads).
    fn read_offer<S: StoreRead + ?Sized>(&self, store: &mut S, backend: &str) -> Result<Self::Params, Fatal>;
    /// The transport keys to publish for `ring` (`write_per_ring_nodes`...).
    fn transport_keys(&self, params: &Self::Params, ring: &Self::Ring, out: &mut Writes) -> Result<(), Fatal>;
    /// Read the device properties at backend Connected (`blkfront_connect`).
    fn read_info<S: StoreRead + ?Sized>(&self, store: &mut S, backend: &str) -> Result<Self::Info, Fatal>;
}

/// Something that happened to the frontend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrontEvent<R> {
    /// The device was found (toolstack wrote it with state Initialising):
    /// start watching the backend.
    Probe,
    /// The watch on `<backend>/state` fired.
    BackendChanged,
    /// The ring asked for by [`FrontAction::SetupRing`] is granted and its
    /// event channel allocated.
    RingReady(R),
    /// Setting the ring up failed (`-errno`).
    RingFailed(i64),
    /// The guest unplugs the device (frontend-side detach).
    Close,
    /// After Closed: connect again.
    Reconnect,
}

/// What the driver must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrontAction<P, I> {
    /// Change the store ([`crate::xenbus_store::apply`]).
    Store(StoreOp),
    /// Allocate and grant the ring and allocate its event channel, then
    /// answer with [`FrontEvent::RingReady`] or [`FrontEvent::RingFailed`].
    SetupRing(P),
    /// The device is live with these properties: start I/O.
    Connected(I),
    /// The backend re-announced Connected with changed properties (Linux:
    /// "Setting capacity to ...").
    Resized(I),
    /// Stop I/O, end foreign access to the ring and free its event channel.
    Disconnect,
}

/// One step's actions.
pub type FrontActions<P, I> = Vec<FrontAction<P, I>, ACTIONS_MAX>;

/// Where the ring is.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase<P, R> {
    /// Not probed yet: events are ignored.
    NotProbed,
    /// No ring.
    Idle,
    /// SetupRing asked for; connect at once when it is ready if the
    /// backend is already Connected.
    Setting { params: P, connect_after: bool },
    /// Ring published.
    Ready { params: P, ring: R },
}

/// The frontend machine.
#[derive(Clone, Debug)]
pub struct Frontend<D: FrontendDevice> {
    dev: D,
    backend: crate::xenbus_store::Path,
    state: XenbusState,
    phase: Phase<D::Params, D::Ring>,
    info: Option<D::Info>,
}

impl<D: FrontendDevice> Frontend<D> {
    /// A frontend whose backend directory is `backend`; its own state is
    /// Initialising, as the toolstack created it.
    pub fn new(dev: D, backend: &str) -> Option<Self> {
        let mut b = crate::xenbus_store::Path::new();
        b.push_str(backend).ok()?;
        Some(Frontend { dev, backend: b, state: XENBUS_STATE_INITIALISING, phase: Phase::NotProbed, info: None })
    }

    /// The state last switched to.
    pub fn state(&self) -> XenbusState {
        self.state
    }

    /// The device properties while connected.
    pub fn info(&self) -> Option<&D::Info> {
        self.info.as_ref()
    }

    /// Take one event; read what is needed from `store`.
    pub fn handle<S: StoreRead + ?Sized>(&mut self, ev: FrontEvent<D::Ring>, store: &mut S) -> FrontActions<D::Params, D::Info> {
        let mut out = FrontActions::new();
        if self.phase == Phase::NotProbed && ev != FrontEvent::Probe {
            return out;
        }
        match ev {
            FrontEvent::Probe => {
                self.phase = Phase::Idle;
                push(&mut out, FrontAction::Store(StoreOp::WatchOtherend));
            }
            FrontEvent::BackendChanged => self.backend_changed(store, &mut out),
            FrontEvent::RingReady(ring) => self.ring_ready(ring, store, &mut out),
            FrontEvent::RingFailed(e) => {
                if matches!(self.phase, Phase::Setting { .. }) {
                    self.phase = Phase::Idle;
                    self.fatal(Fatal::new(e.saturating_neg(), format_args!("setting up ring")), &mut out);
                }
            }
            FrontEvent::Close => self.close(store, &mut out),
            FrontEvent::Reconnect => {
                if self.state == XENBUS_STATE_CLOSED {
                    self.info = None;
                    self.switch(XENBUS_STATE_INITIALISING, &mut out);
                    self.backend_changed(store, &mut out);
                }
            }
        }
        out
    }

    /// `blkback_changed`.
    fn backend_changed<S: StoreRead + ?Sized>(&mut self, store: &mut S, out: &mut FrontActions<D::Params, D::Info>) {
        let be = match read_state(store, &self.backend) {
            Ok(s) => s,
            Err(f) => return self.fatal(f, out),
        };
        match be {
            XENBUS_STATE_INIT_WAIT if self.state == XENBUS_STATE_INITIALISING && self.phase == Phase::Idle => {
                self.talk_to_backend(false, store, out);
            }
            XENBUS_STATE_CONNECTED => match self.state {
                XENBUS_STATE_INITIALISING => match &mut self.phase {
                    Phase::Idle => self.talk_to_backend(true, store, out),
                    Phase::Setting { connect_after, .. } => *connect_after = true,
                    _ => {}
                },
                XENBUS_STATE_INITIALISED | XENBUS_STATE_CONNECTED => self.connect(store, out),
                _ => {}
            },
            // A Closed backend is what a reconnect starts from: while this
            // end is Initialising with no ring it waits for InitWait.
            XENBUS_STATE_CLOSED if self.state == XENBUS_STATE_INITIALISING && self.phase == Phase::Idle => {}
            XENBUS_STATE_CLOSING | XENBUS_STATE_CLOSED => self.closing(out),
            // Unknown (backend gone), Initialising, Initialised,
            // Reconfiguring, Reconfigured: nothing to do, as in Linux.
            _ => {}
        }
    }

    /// `talk_to_blkback`, first half: choose parameters, ask for a ring.
    fn talk_to_backend<S: StoreRead + ?Sized>(&mut self, connect_after: bool, store: &mut S, out: &mut FrontActions<D::Params, D::Info>) {
        match self.dev.read_offer(store, &self.backend) {
            Ok(params) => {
                self.phase = Phase::Setting { params: params.clone(), connect_after };
                push(out, FrontAction::SetupRing(params));
            }
            Err(f) => self.fatal(f, out),
        }
    }

    /// `talk_to_blkback`, second half: publish the ring, Initialised.
    fn ring_ready<S: StoreRead + ?Sized>(&mut self, ring: D::Ring, store: &mut S, out: &mut FrontActions<D::Params, D::Info>) {
        let Phase::Setting { params, connect_after } = self.phase.clone() else {
            // Stale: the handshake moved on while the ring was set up.
            return push(out, FrontAction::Disconnect);
        };
        let mut keys = Writes::new();
        if let Err(f) = self.dev.transport_keys(&params, &ring, &mut keys) {
            self.phase = Phase::Ready { params, ring };
            return self.fatal(f, out);
        }
        for (key, value) in keys {
            push(out, FrontAction::Store(StoreOp::Write(key, value)));
        }
        self.phase = Phase::Ready { params, ring };
        self.switch(XENBUS_STATE_INITIALISED, out);
        if connect_after {
            self.connect(store, out);
        }
    }

    /// `blkfront_connect`.
    fn connect<S: StoreRead + ?Sized>(&mut self, store: &mut S, out: &mut FrontActions<D::Params, D::Info>) {
        if !matches!(self.phase, Phase::Ready { .. }) {
            return;
        }
        let info = match self.dev.read_info(store, &self.backend) {
            Ok(i) => i,
            Err(f) => return self.fatal(f, out),
        };
        if self.state == XENBUS_STATE_CONNECTED {
            if self.info.as_ref() != Some(&info) {
                push(out, FrontAction::Resized(info.clone()));
                self.info = Some(info);
            }
            return;
        }
        push(out, FrontAction::Connected(info.clone()));
        self.info = Some(info);
        self.switch(XENBUS_STATE_CONNECTED, out);
    }

    /// `blkfront_closing` for a backend at Closing or Closed: stop and go
    /// Closed, whether the backend or this frontend started the close.
    fn closing(&mut self, out: &mut FrontActions<D::Params, D::Info>) {
        if self.state == XENBUS_STATE_CLOSED {
            return;
        }
        self.disconnect(out);
        self.switch(XENBUS_STATE_CLOSED, out);
    }

    /// The guest unplugs: stop, Closing, and Closed once the backend is
    /// closing too (at once if it already is).
    fn close<S: StoreRead + ?Sized>(&mut self, store: &mut S, out: &mut FrontActions<D::Params, D::Info>) {
        if self.state == XENBUS_STATE_CLOSING || self.state == XENBUS_STATE_CLOSED {
            return;
        }
        self.disconnect(out);
        self.switch(XENBUS_STATE_CLOSING, out);
        if let Ok(XENBUS_STATE_CLOSING | XENBUS_STATE_CLOSED) = read_state(store, &self.backend) {
            self.closing(out);
        }
    }

    /// Free the ring if there is one (a ring being set up is freed when
    /// its RingReady arrives, as stale).
    fn disconnect(&mut self, out: &mut FrontActions<D::Params, D::Info>) {
        if matches!(self.phase, Phase::Ready { .. }) {
            push(out, FrontAction::Disconnect);
        }
        if !matches!(self.phase, Phase::NotProbed) {
            self.phase = Phase::Idle;
        }
        self.info = None;
    }

    /// `xenbus_dev_fatal`: error node, stop, Closing.
    fn fatal(&mut self, f: Fatal, out: &mut FrontActions<D::Params, D::Info>) {
        push(out, FrontAction::Store(StoreOp::Error(f)));
        self.disconnect(out);
        if self.state != XENBUS_STATE_CLOSED {
            self.switch(XENBUS_STATE_CLOSING, out);
        }
    }

    /// `xenbus_switch_state`: only a change is written.
    fn switch(&mut self, s: XenbusState, out: &mut FrontActions<D::Params, D::Info>) {
        if s != self.state {
            self.state = s;
            push(out, FrontAction::Store(StoreOp::SwitchState(s)));
        }
    }
}

/// Append an action (the per-step sets are far below [`ACTIONS_MAX`]).
fn push<P, I>(out: &mut FrontActions<P, I>, a: FrontAction<P, I>) {
    let _ = out.push(a);
}

/// blkfront's part of the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blkfront {
    /// Largest ring order this frontend uses (Linux's `max_ring_page_order`
    /// parameter), at most `XENBUS_MAX_RING_GRANT_ORDER`.
    pub max_ring_page_order: u32,
    /// Whether this frontend reuses grants (`feature-persistent`).
    pub persistent: bool,
}

/// The ring order chosen from the backend's offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlkParams {
    /// `ring-page-order`: the ring is `1 << order` pages.
    pub ring_page_order: u32,
}

/// The ring blkfront set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlkfrontRing {
    /// One grant per ring page, in page order.
    pub ring_refs: Vec<u32, 16>,
    /// The event channel (a port of this domain, unbound for the backend).
    pub evtchn: u32,
}

/// Discard as the backend offers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiscardInfo {
    /// `discard-granularity` (bytes; default `sector-size`).
    pub granularity: u32,
    /// `discard-alignment` (bytes; default 0).
    pub alignment: u32,
    /// `discard-secure`.
    pub secure: bool,
}

/// The disk as blkback describes it at Connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlkInfo {
    /// `sectors`, in `sector-size` units.
    pub sectors: u64,
    /// `info`: `VDISK_*` bits.
    pub info: u32,
    /// `sector-size`: a power of two, at least 512.
    pub sector_size: u32,
    /// `physical-sector-size`: a multiple of `sector-size`.
    pub physical_sector_size: u32,
    /// `feature-flush-cache`.
    pub flush: bool,
    /// `feature-barrier`.
    pub barrier: bool,
    /// `feature-discard` and its parameters.
    pub discard: Option<DiscardInfo>,
    /// Both ends use persistent grants.
    pub persistent: bool,
    /// `feature-max-indirect-segments` (0: no indirect requests).
    pub max_indirect_segments: u32,
}

impl FrontendDevice for Blkfront {
    type Params = BlkParams;
    type Ring = BlkfrontRing;
    type Info = BlkInfo;

    fn read_offer<S: StoreRead + ?Sized>(&self, store: &mut S, backend: &str) -> Result<BlkParams, Fatal> {
        let offered = read_u32(store, backend, k::MAX_RING_PAGE_ORDER)?.unwrap_or(0);
        let ours = self.max_ring_page_order.min(k::MAX_RING_GRANT_ORDER);
        Ok(BlkParams { ring_page_order: ours.min(offered) })
    }

    fn transport_keys(&self, params: &BlkParams, ring: &BlkfrontRing, out: &mut Writes) -> Result<(), Fatal> {
        let pages = 1usize << params.ring_page_order.min(k::MAX_RING_GRANT_ORDER);
        if ring.ring_refs.len() != pages {
            return Err(Fatal::new(EINVAL, format_args!("ring has {} grants for {pages} pages", ring.ring_refs.len())));
        }
        if params.ring_page_order == 0 {
            put(out, k::RING_REF, format_args!("{}", ring.ring_refs[0]));
        } else {
            put(out, k::RING_PAGE_ORDER, format_args!("{}", params.ring_page_order));
            for (i, gref) in ring.ring_refs.iter().enumerate() {
                let mut key = crate::xenbus_store::Key::new();
                let _ = core::fmt::Write::write_fmt(&mut key, format_args!("ring-ref{i}"));
                put(out, &key, format_args!("{gref}"));
            }
        }
        put(out, k::EVENT_CHANNEL, format_args!("{}", ring.evtchn));
        put(out, k::PROTOCOL, format_args!("{}", k::PROTO_X86_64));
        put(out, k::FEATURE_PERSISTENT, format_args!("{}", u32::from(self.persistent)));
        Ok(())
    }

    fn read_info<S: StoreRead + ?Sized>(&self, store: &mut S, backend: &str) -> Result<BlkInfo, Fatal> {
        let sectors = read_u64(store, backend, k::SECTORS)?.ok_or_else(|| missing(backend, k::SECTORS))?;
        let info = require_u32(store, backend, k::INFO)?;
        let sector_size = require_u32(store, backend, k::SECTOR_SIZE)?;
        if sector_size < 512 || !sector_size.is_power_of_two() {
            return Err(Fatal::new(EINVAL, format_args!("{backend}/sector-size {sector_size} is not a power of two >= 512")));
        }
        let physical_sector_size = read_u32(store, backend, k::PHYSICAL_SECTOR_SIZE)?.unwrap_or(sector_size);
        if physical_sector_size == 0 || physical_sector_size % sector_size != 0 {
            return Err(Fatal::new(EINVAL, format_args!("{backend}/physical-sector-size {physical_sector_size} not a multiple of {sector_size}")));
        }
        let discard = if read_bool(store, backend, k::FEATURE_DISCARD, false)? {
            Some(DiscardInfo {
                granularity: read_u32(store, backend, k::DISCARD_GRANULARITY)?.unwrap_or(sector_size),
                alignment: read_u32(store, backend, k::DISCARD_ALIGNMENT)?.unwrap_or(0),
                secure: read_bool(store, backend, k::DISCARD_SECURE, false)?,
            })
        } else {
            None
        };
        Ok(BlkInfo {
            sectors,
            info,
            sector_size,
            physical_sector_size,
            flush: read_bool(store, backend, k::FEATURE_FLUSH_CACHE, false)?,
            barrier: read_bool(store, backend, k::FEATURE_BARRIER, false)?,
            discard,
            persistent: self.persistent && read_bool(store, backend, k::FEATURE_PERSISTENT, false)?,
            max_indirect_segments: read_u32(store, backend, k::FEATURE_MAX_INDIRECT_SEGMENTS)?.unwrap_or(0),
        })
    }
}

/// A required key is missing.
fn missing(dir: &str, key: &str) -> Fatal {
    Fatal::new(EINVAL, format_args!("reading {dir}/{key}: missing"))
}

#[cfg(test)]
mod tests;
