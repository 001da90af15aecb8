//! What every split-driver frontend (blkfront, netfront; target only) does
//! the same whatever its device class: find its device in xenstore
//! (`device/<class>/<devid>`, its `backend` and `backend-id` nodes, the
//! watch token), run the xenbus handshake of
//! `frontend_drivers::xenbus_frontend` to Connected over this domain's
//! xenstore client ([`XbStore`]), follow the backend afterwards and close.
//! The class-specific parts stay with each driver: its
//! [`FrontendDevice`] (Params, Ring, Info), its ring setup (handed in as a
//! closure answering `SetupRing`) and its error type (mapped from
//! [`Stop`]).
//!
//! Invariants: every wait for the backend has a deadline (`patience`
//! nanoseconds of system time), so a backend that never answers ends the
//! handshake with [`Stop::Timeout`], never a hang; every store change the
//! state machine asks for is applied in the order asked, against the
//! device's own nodes only ([`DeviceNodes`]); a backend that disconnects
//! during the handshake stops it with an error, never a half-set-up
//! device.

use crate::shared;
use crate::xenbus::live::Xenbus;
use crate::xenbus::{ETIMEDOUT, XBT_NIL};
use core::fmt::Write as _;
use frontend_drivers::xenbus_frontend::{FrontAction, FrontEvent, Frontend, FrontendDevice};
use frontend_drivers::xenbus_store::{DeviceNodes, Store, StoreRead, XENBUS_STATE_CLOSED, apply};

/// Bytes of a watch event's buffer (path and token).
const EVENT_BUF: usize = 160;

/// This domain's xenstore client as the handshake machine sees it.
pub(crate) struct XbStore<'a>(pub(crate) &'a mut Xenbus);

impl StoreRead for XbStore<'_> {
    fn read(&mut self, path: &str, buf: &mut [u8]) -> Result<usize, i64> {
        self.0.read(XBT_NIL, path, buf)
    }
}

impl Store for XbStore<'_> {
    fn write(&mut self, path: &str, value: &[u8]) -> Result<(), i64> {
        self.0.write(XBT_NIL, path, value)
    }
    fn rm(&mut self, path: &str) -> Result<(), i64> {
        self.0.rm(XBT_NIL, path)
    }
    fn watch(&mut self, path: &str, token: &str) -> Result<(), i64> {
        self.0.watch(path, token)
    }
    fn unwatch(&mut self, path: &str, token: &str) -> Result<(), i64> {
        self.0.unwatch(path, token)
    }
}

/// Why finding the device or its handshake stopped (each driver maps it
/// onto its own error type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The backend did not answer in time.
    Timeout,
    /// A step failed, with a xenstore errno (0 where there is none).
    Handshake(&'static str, i64),
}

/// A frontend device found in xenstore.
pub struct Located {
    /// Its nodes: home, `device/<class>/<devid>`, the backend's directory
    /// (`otherend`) and the watch token.
    pub nodes: DeviceNodes,
    /// The backend's domain (`backend-id`; 0 if absent or unreadable).
    pub backend_id: u16,
}

/// `args` formatted into a bounded string (cut short if it does not fit:
/// [`DeviceNodes::new`] checks the pieces).
/// `args` formatted, or an error if it does not fit in `N` bytes (a path
/// cut short would name another node).
fn path<const N: usize>(args: core::fmt::Arguments) -> Result<heapless::String<N>, Stop> {
    let mut s = heapless::String::new();
    s.write_fmt(args).map_err(|_| Stop::Handshake("paths", 0))?;
    Ok(s)
}

/// Find device `devid` of `class` (`vbd`, `vif`): this domain's domid, the
/// `backend` and `backend-id` nodes of `device/<class>/<devid>`; the watch
/// token is `<token_prefix><devid>`.
pub fn locate(xs: &mut Xenbus, class: &str, devid: u32, token_prefix: &str) -> Result<Located, Stop> {
    let mut buf = [0u8; 128];
    let domid: u16 = xs.read_str(XBT_NIL, "domid", &mut buf).ok().and_then(|s| s.parse().ok()).ok_or(Stop::Handshake("read domid", 0))?;
    let home: heapless::String<32> = path(format_args!("/local/domain/{domid}"))?;
    let nodename: heapless::String<32> = path(format_args!("device/{class}/{devid}"))?;
    let be_node: heapless::String<64> = path(format_args!("{nodename}/backend"))?;
    let n = xs.read(XBT_NIL, &be_node, &mut buf).map_err(|e| Stop::Handshake("read backend", e))?;
    let backend = core::str::from_utf8(&buf[..n]).map_err(|_| Stop::Handshake("backend path", 0))?;
    let backend: heapless::String<96> = path(format_args!("{backend}"))?;
    let beid_node: heapless::String<64> = path(format_args!("{nodename}/backend-id"))?;
    let backend_id: u16 = xs.read_str(XBT_NIL, &beid_node, &mut buf).ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    let token: heapless::String<32> = path(format_args!("{token_prefix}{devid}"))?;
    let nodes = DeviceNodes::new(&home, &nodename, &backend, &token).ok_or(Stop::Handshake("paths", 0))?;
    Ok(Located { nodes, backend_id })
}

/// Run the handshake to Connected: Probe, then the backend's state changes
/// (watch events on the token) for up to `patience` ns. `setup_ring`
/// answers `SetupRing` with `RingReady` (or `RingFailed`). The device's
/// properties at Connected.
pub fn handshake<D: FrontendDevice>(
    xs: &mut Xenbus,
    nodes: &DeviceNodes,
    frontend: &mut Frontend<D>,
    patience: u64,
    mut setup_ring: impl FnMut(D::Params) -> FrontEvent<D::Ring>,
) -> Result<D::Info, Stop> {
    let mut step = Step { xs, nodes, frontend, info: None };
    step.feed(FrontEvent::Probe, &mut setup_ring)?;
    let deadline = shared::now_ns().unwrap_or(0) + patience;
    let mut ev = [0u8; EVENT_BUF];
    loop {
        if let Some(info) = step.info.take() {
            return Ok(info);
        }
        let now = shared::now_ns().unwrap_or(0);
        if now >= deadline {
            return Err(Stop::Timeout);
        }
        match step.xs.wait_watch_event(Some(&nodes.token), &mut ev, deadline - now) {
            Ok(_) => step.feed(FrontEvent::BackendChanged, &mut setup_ring)?,
            Err(e) if e == -ETIMEDOUT => return Err(Stop::Timeout),
            Err(e) => return Err(Stop::Handshake("watch", e)),
        }
    }
}

/// The handshake in progress: what one event is fed with.
struct Step<'a, D: FrontendDevice> {
    xs: &'a mut Xenbus,
    nodes: &'a DeviceNodes,
    frontend: &'a mut Frontend<D>,
    /// What Connected (or a Resized after it) said.
    info: Option<D::Info>,
}

impl<D: FrontendDevice> Step<'_, D> {
    /// Feed `ev` and do what the machine asks (a ring set up answers with
    /// the next event).
    fn feed(&mut self, ev: FrontEvent<D::Ring>, setup_ring: &mut impl FnMut(D::Params) -> FrontEvent<D::Ring>) -> Result<(), Stop> {
        let mut next = Some(ev);
        while let Some(ev) = next.take() {
            for a in self.frontend.handle(ev, &mut XbStore(self.xs)) {
                match a {
                    FrontAction::Store(op) => apply(&mut XbStore(self.xs), self.nodes, &op).map_err(|e| Stop::Handshake("store", e))?,
                    FrontAction::SetupRing(p) => next = Some(setup_ring(p)),
                    FrontAction::Connected(i) | FrontAction::Resized(i) => self.info = Some(i),
                    FrontAction::Disconnect => return Err(Stop::Handshake("backend closed", 0)),
                }
            }
        }
        Ok(())
    }
}

/// Feed `ev` to a device past its handshake: store changes applied as
/// asked (best effort), nothing else done.
fn feed_quiet<D: FrontendDevice>(xs: &mut Xenbus, nodes: &DeviceNodes, frontend: &mut Frontend<D>, ev: FrontEvent<D::Ring>) {
    for a in frontend.handle(ev, &mut XbStore(xs)) {
        if let FrontAction::Store(op) = a {
            let _ = apply(&mut XbStore(xs), nodes, &op);
        }
    }
}

/// Follow the backend for up to `patience` ns: one watch event on the
/// token, if it comes, is handled (a backend going Closing closes this
/// end). Whether the frontend is now Closed.
pub fn follow<D: FrontendDevice>(xs: &mut Xenbus, nodes: &DeviceNodes, frontend: &mut Frontend<D>, patience: u64) -> bool {
    let mut ev = [0u8; EVENT_BUF];
    if xs.wait_watch_event(Some(&nodes.token), &mut ev, patience).is_ok() {
        feed_quiet(xs, nodes, frontend, FrontEvent::BackendChanged);
    }
    frontend.state() == XENBUS_STATE_CLOSED
}

/// Close: Closing, then follow the backend until this end is Closed, the
/// watch fails or `patience` ns have passed.
pub fn close<D: FrontendDevice>(xs: &mut Xenbus, nodes: &DeviceNodes, frontend: &mut Frontend<D>, patience: u64) {
    feed_quiet(xs, nodes, frontend, FrontEvent::Close);
    let deadline = shared::now_ns().unwrap_or(0) + patience;
    let mut ev = [0u8; EVENT_BUF];
    while frontend.state() != XENBUS_STATE_CLOSED {
        let now = shared::now_ns().unwrap_or(0);
        if now >= deadline || xs.wait_watch_event(Some(&nodes.token), &mut ev, deadline - now).is_err() {
            break;
        }
        feed_quiet(xs, nodes, frontend, FrontEvent::BackendChanged);
    }
}
