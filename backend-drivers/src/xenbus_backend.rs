//! The backend half of the xenbus handshake, as a pure state machine:
//! Linux's `xen_blkbk_probe`/`frontend_changed`/`connect_ring`/`connect`/
//! `xen_update_blkif_status` (drivers/block/xen-blkback/xenbus.c) with the
//! device specifics behind [`BackendDevice`], so console and net backends
//! reuse the same handshake. [`Blkback`] is the block device's part.
//!
//! The machine owns the backend's `XenbusState` (Linux's `dev->state`).
//! Events come in ([`BackEvent`]: probe, the frontend's state changed, the
//! medium is ready, the ring got mapped or not, `xl block-detach`, the
//! frontend domain died); it reads the frontend's nodes through
//! [`StoreRead`] and returns [`BackAction`]s: store changes for
//! [`apply`](frontend_drivers::xenbus_store::apply), and what the driver
//! must do (map these ring refs and bind this event channel; disconnect;
//! forget the device).
//!
//! Handshake: probe writes the offer (`feature-max-indirect-segments`,
//! `multi-queue-max-queues`, `max-ring-page-order`) and goes InitWait;
//! frontend Initialised/Connected → read its transport keys and map the
//! ring; ring mapped and medium ready → write the disk's keys, Connected.
//! Frontend Closing → Closing; frontend Closed → disconnect, Closed, and if
//! the toolstack detached the device, remove it. Frontend Initialising
//! after Closed → InitWait again (reconnect).
//!
//! Invariants: the frontend is not trusted. A missing, non-numeric, too
//! large or unknown value, a ring order above the one offered, and a state
//! that is not a frontend state or moves backwards end in an `error` node
//! and Closing (the ring is unmapped at once), never a panic; the ring is
//! mapped only from InitWait, at most once per connection, and always
//! unmapped (Disconnect) before the machine reports Closed or the device
//! removed; once removed, the machine ignores everything. Where Linux is
//! more lenient (it ignores a frontend going back to Initialising, and
//! reads a garbage state as Unknown and unregisters), this machine closes
//! with an error instead.
#![forbid(unsafe_code)]
// `Fatal` carries its message inline (no heap in the guest), so its
// `Result`s are larger than clippy likes; they live only on the way up.
#![allow(clippy::result_large_err)]

use frontend_drivers::xenbus_store::{
    ACTIONS_MAX, Bytes, Fatal, Path, StoreOp, StoreRead, Writes, XENBUS_STATE_CLOSED, XENBUS_STATE_CLOSING, XENBUS_STATE_CONNECTED,
    XENBUS_STATE_INIT_WAIT, XENBUS_STATE_INITIALISED, XENBUS_STATE_INITIALISING, XENBUS_STATE_UNKNOWN, XenbusState, blkif_keys as k, put, read_bool,
    read_node, read_state, read_u32, require_u32, state_name,
};
use heapless::Vec;
use xen_public::errno::{EINVAL, ENOSYS};
use xen_public::io::blkif::{VDISK_CDROM, VDISK_READONLY, VDISK_REMOVABLE};

/// What a kind of backend (vbd, vif, console) adds to the handshake.
pub trait BackendDevice {
    /// What the hotplug step found (the disk behind a vbd).
    type Media: Clone + core::fmt::Debug + PartialEq;
    /// The frontend's transport parameters (ring refs, event channel...).
    type Ring: Clone + core::fmt::Debug + PartialEq;

    /// The keys written at probe, before InitWait.
    fn probe_keys(&self, out: &mut Writes);
    /// Read and check the frontend's transport keys (`connect_ring`).
    fn read_frontend<S: StoreRead + ?Sized>(&self, store: &mut S, frontend: &str) -> Result<Self::Ring, Fatal>;
    /// The keys written at connect, before Connected (`connect`).
    fn connect_keys(&self, media: &Self::Media, ring: &Self::Ring, out: &mut Writes);
}

/// Something that happened to the backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackEvent<M> {
    /// The toolstack created the device (`xen_blkbk_probe`).
    Probe,
    /// The watch on `<frontend>/state` fired.
    FrontendChanged,
    /// The hotplug step opened the medium (Linux: `physical-device`
    /// appeared and the vbd was created).
    MediaReady(M),
    /// The ring asked for by [`BackAction::MapRing`] is mapped and its
    /// event channel bound.
    RingMapped,
    /// Mapping or binding failed (`-errno`, e.g. a bad grant ref).
    RingFailed(i64),
    /// `xl block-detach` (libxl writes `online` = 0 and asks the backend
    /// to close); with `force`, the device goes without waiting for the
    /// frontend (`-f`, or libxl's timeout).
    Detach {
        /// Do not wait for the frontend.
        force: bool,
    },
    /// The frontend's domain is dying or dead (`@releaseDomain`).
    FrontendDied,
}

/// What the driver must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackAction<R> {
    /// Change the store ([`apply`](frontend_drivers::xenbus_store::apply)).
    Store(StoreOp),
    /// Map the frontend's ring grants and bind its event channel, then
    /// answer with [`BackEvent::RingMapped`] or [`BackEvent::RingFailed`].
    MapRing(R),
    /// Stop serving the ring, unmap it and unbind the event channel. With
    /// `frontend_dead`, requests in flight are completed or dropped without
    /// responses (no one is left to read them); otherwise they finish first.
    Disconnect {
        /// The frontend domain is gone.
        frontend_dead: bool,
    },
    /// The device is gone: the driver forgets it (Linux `device_unregister`).
    Removed,
}

/// One step's actions.
pub type BackActions<R> = Vec<BackAction<R>, ACTIONS_MAX>;

/// Where the ring is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Not probed yet: events other than Probe are ignored.
    NotProbed,
    /// No ring.
    Idle,
    /// MapRing asked for.
    Mapping,
    /// Ring mapped.
    Mapped,
    /// Device removed: everything is ignored.
    Removed,
}

/// The order of the states a frontend passes through in one connection;
/// moving to a lower rank (but for Closed → Initialising) is backwards.
fn rank(s: XenbusState) -> u32 {
    match s {
        XENBUS_STATE_INITIALISING => 1,
        XENBUS_STATE_INITIALISED => 2,
        XENBUS_STATE_CONNECTED => 3,
        XENBUS_STATE_CLOSING => 4,
        XENBUS_STATE_CLOSED => 5,
        _ => 0,
    }
}

/// The backend machine.
#[derive(Clone, Debug)]
pub struct Backend<D: BackendDevice> {
    dev: D,
    frontend: Path,
    state: XenbusState,
    fe_seen: Option<XenbusState>,
    phase: Phase,
    ring: Option<D::Ring>,
    media: Option<D::Media>,
    online: bool,
}

impl<D: BackendDevice> Backend<D> {
    /// A backend for the frontend directory `frontend`; its own state is
    /// Initialising, as the toolstack created it, and it is online.
    pub fn new(dev: D, frontend: &str) -> Option<Self> {
        let mut f = Path::new();
        f.push_str(frontend).ok()?;
        Some(Backend {
            dev,
            frontend: f,
            state: XENBUS_STATE_INITIALISING,
            fe_seen: None,
            phase: Phase::NotProbed,
            ring: None,
            media: None,
            online: true,
        })
    }

    /// The state last switched to.
    pub fn state(&self) -> XenbusState {
        self.state
    }

    /// Whether the device was removed.
    pub fn removed(&self) -> bool {
        self.phase == Phase::Removed
    }

    /// The frontend's transport parameters while the ring is mapped.
    pub fn ring(&self) -> Option<&D::Ring> {
        self.ring.as_ref().filter(|_| self.phase == Phase::Mapped)
    }

    /// Take one event; read what is needed from `store`.
    pub fn handle<S: StoreRead + ?Sized>(&mut self, ev: BackEvent<D::Media>, store: &mut S) -> BackActions<D::Ring> {
        let mut out = BackActions::new();
        match (self.phase, ev) {
            (Phase::Removed, _) => {}
            (Phase::NotProbed, BackEvent::Probe) => self.probe(&mut out),
            (Phase::NotProbed, BackEvent::MediaReady(m)) => self.media = Some(m),
            (Phase::NotProbed, BackEvent::FrontendDied | BackEvent::Detach { .. }) => self.remove(false, &mut out),
            (Phase::NotProbed, _) | (_, BackEvent::Probe) => {}
            (_, BackEvent::FrontendChanged) => match read_state(store, &self.frontend) {
                Ok(s) => self.frontend_changed(s, store, &mut out),
                Err(f) => self.fatal(f, &mut out),
            },
            (_, BackEvent::MediaReady(m)) => {
                // Linux: "changing physical device ... not supported".
                if self.media.is_none() {
                    self.media = Some(m);
                    self.update_status(&mut out);
                }
            }
            (Phase::Mapping, BackEvent::RingMapped) => {
                self.phase = Phase::Mapped;
                self.update_status(&mut out);
            }
            // Mapped after the handshake moved on: undo it.
            (_, BackEvent::RingMapped) => push(&mut out, BackAction::Disconnect { frontend_dead: false }),
            (Phase::Mapping, BackEvent::RingFailed(e)) => {
                self.phase = Phase::Idle;
                self.ring = None;
                self.fatal(Fatal::new(e.saturating_neg(), format_args!("mapping ring-ref and port of {}", self.frontend)), &mut out);
            }
            (_, BackEvent::RingFailed(_)) => {}
            (_, BackEvent::Detach { force }) => self.detach(force, &mut out),
            (_, BackEvent::FrontendDied) => self.remove(true, &mut out),
        }
        out
    }

    /// `xen_blkbk_probe`: the offer, InitWait, and the watch on the
    /// frontend's state (xenbus core: `watch_otherend`).
    fn probe(&mut self, out: &mut BackActions<D::Ring>) {
        self.phase = Phase::Idle;
        let mut keys = Writes::new();
        self.dev.probe_keys(&mut keys);
        write_all(keys, out);
        self.switch(XENBUS_STATE_INIT_WAIT, out);
        push(out, BackAction::Store(StoreOp::WatchOtherend));
    }

    /// `frontend_changed`.
    fn frontend_changed<S: StoreRead + ?Sized>(&mut self, fe: XenbusState, store: &mut S, out: &mut BackActions<D::Ring>) {
        let prev = self.fe_seen;
        if prev == Some(fe) {
            return; // The watch fired again on the same state.
        }
        self.fe_seen = Some(fe);
        if let Some(p) = prev
            && rank(fe) < rank(p)
            && rank(fe) != 0
            && !(p == XENBUS_STATE_CLOSED && fe == XENBUS_STATE_INITIALISING)
        {
            return self.fatal(Fatal::new(EINVAL, format_args!("frontend went back from {} to {}", state_name(p), state_name(fe))), out);
        }
        match fe {
            XENBUS_STATE_INITIALISING => {
                if self.state == XENBUS_STATE_CLOSED {
                    // "prepare for reconnect"
                    self.switch(XENBUS_STATE_INIT_WAIT, out);
                }
            }
            XENBUS_STATE_INITIALISED | XENBUS_STATE_CONNECTED => {
                if self.state == XENBUS_STATE_INIT_WAIT && self.phase == Phase::Idle {
                    self.connect_ring(store, out);
                }
            }
            XENBUS_STATE_CLOSING => {
                if self.state != XENBUS_STATE_CLOSED {
                    self.switch(XENBUS_STATE_CLOSING, out);
                }
            }
            XENBUS_STATE_CLOSED => {
                self.disconnect(false, out);
                self.switch(XENBUS_STATE_CLOSED, out);
                if !self.online {
                    self.remove(false, out);
                }
            }
            // The frontend's state node is gone.
            XENBUS_STATE_UNKNOWN => self.remove(false, out),
            // InitWait, Reconfiguring, Reconfigured: not frontend states.
            _ => self.fatal(Fatal::new(EINVAL, format_args!("saw state {fe} at frontend")), out),
        }
    }

    /// `connect_ring`: read the frontend's keys, ask for the mapping.
    fn connect_ring<S: StoreRead + ?Sized>(&mut self, store: &mut S, out: &mut BackActions<D::Ring>) {
        match self.dev.read_frontend(store, &self.frontend) {
            Ok(ring) => {
                self.ring = Some(ring.clone());
                self.phase = Phase::Mapping;
                push(out, BackAction::MapRing(ring));
            }
            Err(f) => self.fatal(f, out),
        }
    }

    /// `xen_update_blkif_status` + `connect`: once the ring is mapped and
    /// the medium ready, publish the device and go Connected.
    fn update_status(&mut self, out: &mut BackActions<D::Ring>) {
        if self.phase != Phase::Mapped || self.state != XENBUS_STATE_INIT_WAIT {
            return;
        }
        let (Some(media), Some(ring)) = (&self.media, &self.ring) else { return };
        let mut keys = Writes::new();
        self.dev.connect_keys(media, ring, &mut keys);
        write_all(keys, out);
        self.switch(XENBUS_STATE_CONNECTED, out);
    }

    /// The toolstack detaches: close now if the frontend is already gone
    /// or closed (or `force`), else Closing and wait for its Closed.
    fn detach(&mut self, force: bool, out: &mut BackActions<D::Ring>) {
        self.online = false;
        if force || matches!(self.fe_seen, None | Some(XENBUS_STATE_CLOSED) | Some(XENBUS_STATE_UNKNOWN)) {
            return self.remove(false, out);
        }
        if self.state == XENBUS_STATE_CLOSED {
            return self.remove(false, out);
        }
        self.switch(XENBUS_STATE_CLOSING, out);
    }

    /// The device goes (Linux `xen_blkbk_remove` + libxl removing the
    /// backend nodes): disconnect, Closed, unwatch, remove the directory.
    fn remove(&mut self, frontend_dead: bool, out: &mut BackActions<D::Ring>) {
        self.disconnect(frontend_dead, out);
        self.switch(XENBUS_STATE_CLOSED, out);
        if self.phase != Phase::NotProbed {
            push(out, BackAction::Store(StoreOp::UnwatchOtherend));
        }
        push(out, BackAction::Store(StoreOp::RmDir));
        push(out, BackAction::Removed);
        self.phase = Phase::Removed;
    }

    /// `xen_blkif_disconnect`: unmap if mapped (a mapping in progress is
    /// undone when its RingMapped arrives).
    fn disconnect(&mut self, frontend_dead: bool, out: &mut BackActions<D::Ring>) {
        if self.phase == Phase::Mapped {
            push(out, BackAction::Disconnect { frontend_dead });
        }
        if matches!(self.phase, Phase::Mapped | Phase::Mapping) {
            self.phase = Phase::Idle;
        }
        self.ring = None;
    }

    /// `xenbus_dev_fatal`: error node, stop serving, Closing (a Closed
    /// device stays Closed).
    fn fatal(&mut self, f: Fatal, out: &mut BackActions<D::Ring>) {
        push(out, BackAction::Store(StoreOp::Error(f)));
        self.disconnect(false, out);
        if self.state != XENBUS_STATE_CLOSED {
            self.switch(XENBUS_STATE_CLOSING, out);
        }
    }

    /// `xenbus_switch_state`: only a change is written.
    fn switch(&mut self, s: XenbusState, out: &mut BackActions<D::Ring>) {
        if s != self.state {
            self.state = s;
            push(out, BackAction::Store(StoreOp::SwitchState(s)));
        }
    }
}

/// Append an action (the per-step sets are far below [`ACTIONS_MAX`]).
fn push<R>(out: &mut BackActions<R>, a: BackAction<R>) {
    let _ = out.push(a);
}

/// Writes as store actions, in order.
fn write_all<R>(keys: Writes, out: &mut BackActions<R>) {
    for (key, value) in keys {
        push(out, BackAction::Store(StoreOp::Write(key, value)));
    }
}

/// blkback's offer (Linux's module parameters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blkback {
    /// `max-ring-page-order` offered (`xen_blkif_max_ring_order`), at most
    /// `XENBUS_MAX_RING_GRANT_ORDER`.
    pub max_ring_page_order: u32,
    /// `feature-max-indirect-segments` (Linux `MAX_INDIRECT_SEGMENTS`, 256).
    pub max_indirect_segments: u32,
    /// Whether persistent grants are offered (`feature_persistent`).
    pub persistent: bool,
}

impl Default for Blkback {
    fn default() -> Self {
        Blkback { max_ring_page_order: k::MAX_RING_GRANT_ORDER, max_indirect_segments: 256, persistent: true }
    }
}

/// Discard as the medium supports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Discard {
    /// `discard-granularity` in bytes.
    pub granularity: u32,
    /// `discard-alignment` in bytes.
    pub alignment: u32,
    /// `discard-secure`.
    pub secure: bool,
}

/// The disk behind a vbd, once opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Disk {
    /// Size in `sector_size` units.
    pub sectors: u64,
    /// Logical block size (a power of two, at least 512).
    pub sector_size: u32,
    /// Physical block size (a multiple of `sector_size`).
    pub physical_sector_size: u32,
    /// `access=ro`: `VDISK_READONLY`.
    pub readonly: bool,
    /// `devtype=cdrom`: `VDISK_CDROM`.
    pub cdrom: bool,
    /// Removable media: `VDISK_REMOVABLE`.
    pub removable: bool,
    /// The medium has a write cache to flush: `feature-flush-cache` and
    /// `feature-barrier` (Linux offers both from `flush_support`).
    pub flush: bool,
    /// Discard, if the medium supports it.
    pub discard: Option<Discard>,
}

/// The frontend's transport parameters, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlkRing {
    /// Grant refs of the ring pages, in page order (`1 << ring-page-order`).
    pub ring_refs: Vec<u32, 16>,
    /// The frontend's event channel port.
    pub evtchn: u32,
    /// Both ends use persistent grants.
    pub persistent: bool,
}

impl BackendDevice for Blkback {
    type Media = Disk;
    type Ring = BlkRing;

    fn probe_keys(&self, out: &mut Writes) {
        put(out, k::FEATURE_MAX_INDIRECT_SEGMENTS, format_args!("{}", self.max_indirect_segments));
        put(out, k::MULTI_QUEUE_MAX_QUEUES, format_args!("1"));
        put(out, k::MAX_RING_PAGE_ORDER, format_args!("{}", self.max_order()));
    }

    fn read_frontend<S: StoreRead + ?Sized>(&self, store: &mut S, fe: &str) -> Result<BlkRing, Fatal> {
        check_protocol(store, fe)?;
        let persistent = self.persistent && read_bool(store, fe, k::FEATURE_PERSISTENT, false)?;
        match read_u32(store, fe, k::MULTI_QUEUE_NUM_QUEUES)? {
            None | Some(1) => {}
            Some(n) => return Err(Fatal::new(ENOSYS, format_args!("guest requested {n} queues, exceeding the maximum of 1."))),
        }
        let evtchn = require_u32(store, fe, k::EVENT_CHANNEL)?;
        let mut ring_refs = Vec::new();
        match read_u32(store, fe, k::RING_PAGE_ORDER)? {
            None => {
                let _ = ring_refs.push(require_u32(store, fe, k::RING_REF)?);
            }
            Some(order) if order <= self.max_order() => {
                for i in 0..1u32 << order {
                    let mut key = frontend_drivers::xenbus_store::Key::new();
                    let _ = core::fmt::Write::write_fmt(&mut key, format_args!("ring-ref{i}"));
                    let _ = ring_refs.push(require_u32(store, fe, &key)?);
                }
            }
            Some(order) => {
                return Err(Fatal::new(EINVAL, format_args!("{fe}/request {order} ring page order exceed max:{}", self.max_order())));
            }
        }
        Ok(BlkRing { ring_refs, evtchn, persistent })
    }

    fn connect_keys(&self, disk: &Disk, _ring: &BlkRing, out: &mut Writes) {
        put(out, k::FEATURE_FLUSH_CACHE, format_args!("{}", u32::from(disk.flush)));
        if let Some(d) = disk.discard {
            put(out, k::DISCARD_GRANULARITY, format_args!("{}", d.granularity));
            put(out, k::DISCARD_ALIGNMENT, format_args!("{}", d.alignment));
            put(out, k::DISCARD_SECURE, format_args!("{}", u32::from(d.secure)));
        }
        put(out, k::FEATURE_DISCARD, format_args!("{}", u32::from(disk.discard.is_some())));
        put(out, k::FEATURE_BARRIER, format_args!("{}", u32::from(disk.flush)));
        put(out, k::FEATURE_PERSISTENT, format_args!("{}", u32::from(self.persistent)));
        put(out, k::SECTORS, format_args!("{}", disk.sectors));
        let info = if disk.cdrom { VDISK_CDROM } else { 0 }
            | if disk.removable { VDISK_REMOVABLE } else { 0 }
            | if disk.readonly { VDISK_READONLY } else { 0 };
        put(out, k::INFO, format_args!("{info}"));
        put(out, k::SECTOR_SIZE, format_args!("{}", disk.sector_size));
        put(out, k::PHYSICAL_SECTOR_SIZE, format_args!("{}", disk.physical_sector_size));
    }
}

impl Blkback {
    fn max_order(&self) -> u32 {
        self.max_ring_page_order.min(k::MAX_RING_GRANT_ORDER)
    }
}

/// `protocol`: missing is the native layout; x86_64-abi is it; anything
/// else is refused (this backend serves only the x86_64 layout, where Linux
/// also converts x86_32-abi requests).
fn check_protocol<S: StoreRead + ?Sized>(store: &mut S, fe: &str) -> Result<(), Fatal> {
    let mut buf = [0u8; 64];
    match read_node(store, fe, k::PROTOCOL, &mut buf)? {
        None => Ok(()),
        Some(p) if p == k::PROTO_X86_64.as_bytes() => Ok(()),
        Some(p) => Err(Fatal::new(ENOSYS, format_args!("unknown fe protocol {:?}", Bytes(p)))),
    }
}

#[cfg(test)]
mod tests;
