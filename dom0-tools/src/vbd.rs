//! blkback in dom0 (target only): the live half of the block split
//! driver. Each virtual block device ([`Vbd`]) couples the handshake
//! machine (`backend_drivers::xenbus_backend`) to dom0's in-process
//! xenstore, maps its frontend's ring grants into dom0's grant area
//! ([`crate::grant_area`]), binds the frontend's event channel, and serves
//! the ring (`backend_drivers::blkback::serve`) against one of dom0's
//! disks. Data moves by memcpy through persistently mapped grants where
//! the frontend asked for `feature-persistent` (up to [`MAX_PERSISTENT`]
//! per ring, as Linux's blkback), and by grant copy (`GNTTABOP_copy`)
//! otherwise, so dom0 maps a guest's data page only when the guest said it
//! would reuse it.
//!
//! Invariants: every grant mapping (ring page or persistent grant) belongs
//! to exactly one connected ring and is unmapped when that ring is
//! disconnected; a vbd's ring is unmapped
//! and its channel closed before the vbd is forgotten or its frontend
//! domain destroyed; a frontend that corrupts its ring is no longer
//! served (its ring is unmapped and an error node says why, as Linux's
//! blkback halts a ring), and nothing it does reaches
//! another vbd or dom0's other services. Each pump serves at most
//! [`BUDGET`] of work per vbd, each vbd in turn.

use crate::backends::{DeviceSet, forget_domain};
use crate::grant_area::{GrantArea, Mapped};
use crate::vbdcfg::{self, VbdNodes};
use crate::xenstore::{Xenstore, client};
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use backend_drivers::blkback::serve::{BlkBackRing, Bounce, GrantCopier, SegCopy, serve};
use backend_drivers::blkback::stats::VbdStats;
use backend_drivers::blkback::validate::{VbdFeatures, VbdInfo};
use backend_drivers::disk::BlockDevice;
use backend_drivers::xenbus_backend::{BackAction, BackEvent, Backend, BlkRing, Blkback, Discard, Disk};
use frontend_drivers::xenbus_store::ERANGE;
use frontend_drivers::xenbus_store::{DeviceNodes, Store, StoreRead, apply};
use pv_guest_kernel::alloc::EarlyAlloc;
use pv_guest_kernel::ring_pages::{MappedPages, copy_from_shared, copy_to_shared};
use pv_guest_kernel::{StartInfo, events, grants, gtrace, println};
use xen_public::DOMID_SELF;
use xen_public::errno::EIO;
use xen_public::grant_table::{GNTCOPY_DEST_GREF, GNTCOPY_SOURCE_GREF, GnttabCopy, GnttabCopyPtr};
use xen_public::io::xs_wire::xsd_error_num;
use xen_public::trace_guest::{RingKind, RingStep};

/// Work served per vbd per pump, in `serve`'s cost units (about 2 MiB,
/// or 3 flushes).
pub const BUDGET: u32 = 32;
/// Most vbds at once.
pub const MAX_VBDS: usize = 8;

/// dom0's in-process store as the handshake machines see it.
pub(crate) struct XsStore<'a>(pub(crate) &'a mut Xenstore);

fn errno_of(name: &str) -> i64 {
    -i64::from(xsd_error_num(name).unwrap_or(EIO as i32))
}

impl StoreRead for XsStore<'_> {
    fn read(&mut self, path: &str, buf: &mut [u8]) -> Result<usize, i64> {
        let v = client::read(self.0, path).map_err(|e| errno_of(&e))?;
        let dst = buf.get_mut(..v.len()).ok_or(-ERANGE)?;
        dst.copy_from_slice(&v);
        Ok(v.len())
    }
}

impl Store for XsStore<'_> {
    fn write(&mut self, path: &str, value: &[u8]) -> Result<(), i64> {
        client::write(self.0, path, value).map_err(|e| errno_of(&e))
    }
    fn rm(&mut self, path: &str) -> Result<(), i64> {
        client::rm(self.0, path).map_err(|e| errno_of(&e))
    }
    fn watch(&mut self, path: &str, token: &str) -> Result<(), i64> {
        client::watch(self.0, path, token).map_err(|e| errno_of(&e))
    }
    fn unwatch(&mut self, path: &str, token: &str) -> Result<(), i64> {
        client::unwatch(self.0, path, token).map_err(|e| errno_of(&e))
    }
}

/// Persistent grants a ring keeps mapped at most (Linux keeps up to
/// `xen_blkif_max_pgrants`, 1056; the area is shared by every ring).
pub const MAX_PERSISTENT: usize = 128;
/// Area slots kept free for rings' own pages.
const AREA_RESERVE: usize = 64;

/// A ring's persistently mapped grants (`feature-persistent`).
type Persistent = BTreeMap<u32, Mapped>;

/// Moves data between a frontend's pages and dom0's bounce buffer: by
/// memcpy through a persistent mapping where the ring negotiated
/// `feature-persistent` (mapping a grant the first time it is seen, while
/// there is room), by grant copy otherwise.
struct Copier<'a> {
    si: &'a StartInfo,
    domid: u16,
    persistent: Option<(&'a mut Persistent, &'a mut GrantArea)>,
}

/// Copy ops per hypercall.
const COPY_BATCH: usize = 32;

impl GrantCopier for Copier<'_> {
    fn copy(&mut self, segs: &[SegCopy], buf: &mut [u8], to_guest: bool) -> Result<(), i16> {
        let (si, domid) = (self.si, self.domid);
        let Some((map, area)) = self.persistent.as_mut() else { return grant_copy(si, domid, segs, buf, to_guest) };
        for s in segs {
            let len = usize::from(s.len);
            let page_end = usize::from(s.page_off) + len;
            let dst = buf.get_mut(s.buf_off..s.buf_off + len).filter(|_| page_end <= 4096).ok_or(-1i16)?;
            let m = match map.get(&s.gref) {
                Some(m) => *m,
                None if map.len() < MAX_PERSISTENT && area.free() > AREA_RESERVE => {
                    let m = area.map(domid, s.gref, false).map_err(|e| e as i16)?;
                    map.insert(s.gref, m);
                    m
                }
                None => {
                    // No room: this segment goes by grant copy, as Linux
                    // maps it non-persistently.
                    let one = SegCopy { buf_off: 0, ..*s };
                    let mut tmp = [0u8; 4096];
                    if to_guest {
                        tmp[..len].copy_from_slice(dst);
                    }
                    grant_copy(si, domid, &[one], &mut tmp[..len], to_guest)?;
                    if !to_guest {
                        dst.copy_from_slice(&tmp[..len]);
                    }
                    continue;
                }
            };
            let page = m.va + u64::from(s.page_off);
            // SAFETY: `m.va` is an area slot holding this ring's persistent
            // writable mapping of the frontend's page, alive until the ring
            // is disconnected; `page_off + len <= 4096` (checked above). The
            // frontend may write the page meanwhile: the copies are
            // volatile.
            unsafe {
                if to_guest {
                    copy_to_shared(page, dst);
                } else {
                    copy_from_shared(page, dst);
                }
            }
        }
        Ok(())
    }
}

/// Grant copies of `segs` between `domid`'s pages and `buf` (dom0's).
pub(crate) fn grant_copy(si: &StartInfo, domid: u16, segs: &[SegCopy], buf: &mut [u8], to_guest: bool) -> Result<(), i16> {
    copy_ops(si, domid, segs, buf.as_mut_ptr() as u64, buf.len(), to_guest)
}

/// Grant copies of `segs` from `data` (dom0's) into `domid`'s pages.
pub(crate) fn grant_copy_out(si: &StartInfo, domid: u16, segs: &[SegCopy], data: &[u8]) -> Result<(), i16> {
    copy_ops(si, domid, segs, data.as_ptr() as u64, data.len(), true)
}

/// The grant copies of `segs` between `domid`'s pages and dom0's `len`
/// bytes at `base` (written only when `!to_guest`; the callers hold them
/// borrowed mutably then).
fn copy_ops(si: &StartInfo, domid: u16, segs: &[SegCopy], base: u64, len: usize, to_guest: bool) -> Result<(), i16> {
    let mut ops: heapless::Vec<GnttabCopy, COPY_BATCH> = heapless::Vec::new();
    for s in segs {
        let end = s.buf_off.checked_add(usize::from(s.len)).filter(|e| *e <= len).ok_or(-1i16)?;
        let mut at = s.buf_off;
        while at < end {
            let va = base + at as u64;
            let piece = (end - at).min(4096 - (va % 4096) as usize);
            let mine = GnttabCopyPtr { u: pv_guest_kernel::mm::mfn_of(si, va & !0xfff), domid: DOMID_SELF, offset: (va % 4096) as u16, _pad0: 0 };
            let theirs = GnttabCopyPtr { u: u64::from(s.gref), domid, offset: s.page_off + (at - s.buf_off) as u16, _pad0: 0 };
            let (source, dest, flags) = if to_guest { (mine, theirs, GNTCOPY_DEST_GREF) } else { (theirs, mine, GNTCOPY_SOURCE_GREF) };
            if ops.is_full() {
                issue(&mut ops)?;
            }
            let _ = ops.push(GnttabCopy { source, dest, len: piece as u16, flags, status: 0, _pad0: 0 });
            at += piece;
        }
    }
    issue(&mut ops)
}

/// Issue the batch; the first failed status.
fn issue(ops: &mut heapless::Vec<GnttabCopy, COPY_BATCH>) -> Result<(), i16> {
    if ops.is_empty() {
        return Ok(());
    }
    let rc = grants::op(ops.as_mut_slice());
    let first_bad = ops.iter().map(|o| o.status).find(|s| *s != 0);
    ops.clear();
    if rc != 0 {
        return Err(rc as i16);
    }
    first_bad.map_or(Ok(()), Err)
}

/// A disk dom0 can serve, by the name a config's `target=` gives it.
pub struct NamedDisk {
    /// `/dev/vda`, or a dom0 file's name.
    pub name: String,
    /// The device.
    pub dev: Box<dyn BlockDevice>,
}

/// A connected ring.
struct Live {
    ring: BlkBackRing<MappedPages>,
    pages: heapless::Vec<Mapped, 16>,
    port: u32,
    /// `Some` if `feature-persistent` was negotiated.
    persistent: Option<Persistent>,
}

/// One virtual block device.
struct Vbd {
    nodes: VbdNodes,
    dev: DeviceNodes,
    backend: Backend<Blkback>,
    disk: usize,
    live: Option<Live>,
    stats: VbdStats,
    bounce: Bounce,
    info: VbdInfo,
    more: bool,
}

/// One row of `xl block-list`.
#[derive(Clone, Debug)]
pub struct VbdRow {
    /// Device id.
    pub devid: u32,
    /// Backend domain (0).
    pub backend_id: u16,
    /// Frontend state.
    pub state: u32,
    /// Frontend's event channel (-1 before it connects).
    pub evtchn: i64,
    /// Frontend's first ring grant (-1 before it connects).
    pub ring_ref: i64,
    /// Backend path.
    pub be_path: String,
}

/// Every vbd dom0 serves, its disks and its mapping window.
pub struct Vbds {
    si: &'static StartInfo,
    area: GrantArea,
    disks: Vec<NamedDisk>,
    vbds: Vec<Vbd>,
    /// Watch events that were not for a vbd, for dom0's other users.
    others: Vec<(String, String)>,
}

impl Vbds {
    /// No vbds yet; the grant area takes one of `pages` for its L1.
    pub fn new(si: &'static StartInfo, pages: &mut EarlyAlloc) -> Option<Vbds> {
        Some(Vbds { si, area: GrantArea::new(si, pages)?, disks: Vec::new(), vbds: Vec::new(), others: Vec::new() })
    }

    /// Make `dev` servable as `name`.
    pub fn add_disk(&mut self, name: &str, dev: Box<dyn BlockDevice>) {
        self.disks.push(NamedDisk { name: String::from(name), dev });
    }

    /// Whether a disk is known by `name`.
    pub fn has_disk(&self, name: &str) -> bool {
        self.disks.iter().any(|d| d.name == name)
    }

    /// Attach disk `nodes.target` to `nodes.domid` as libxl does: check
    /// sharing, write the backend and frontend nodes, start the backend.
    pub fn attach(&mut self, xs: &mut Xenstore, nodes: VbdNodes) -> Result<(), String> {
        let disk = self.disks.iter().position(|d| d.name == nodes.target).ok_or_else(|| format!("{}: no such disk in dom0", nodes.target))?;
        if self.vbds.iter().any(|v| v.nodes.domid == nodes.domid && v.nodes.devid == nodes.devid) {
            return Err(format!("device {} already exists in domain {}", nodes.vdev, nodes.domid));
        }
        if self.vbds.len() >= MAX_VBDS {
            return Err(String::from("too many block devices in dom0"));
        }
        vbdcfg::check_sharing(self.vbds.iter().map(|v| (v.nodes.target.as_str(), v.nodes.writable)), &nodes.target, nodes.writable)?;
        write_nodes(xs, &nodes)?;
        let (be, fe) = (nodes.backend_path(), nodes.frontend_path());
        let token = format!("vbd:{}:{}", nodes.domid, nodes.devid);
        let dev = DeviceNodes::new("/local/domain/0", &be["/local/domain/0/".len()..], &fe, &token).ok_or("path too long")?;
        let backend = Backend::new(Blkback::default(), &fe).ok_or("path too long")?;
        let d = &self.disks[disk].dev;
        let read_only = !nodes.writable || d.read_only();
        let media = Disk {
            sectors: d.sectors(),
            sector_size: 512,
            physical_sector_size: 512,
            readonly: read_only,
            cdrom: nodes.cdrom,
            removable: false,
            flush: true,
            discard: (nodes.discard && d.discards()).then_some(Discard { granularity: 512, alignment: 0, secure: false }),
        };
        let features = VbdFeatures {
            flush: true,
            barrier: true,
            discard: media.discard.is_some(),
            discard_secure: false,
            max_indirect_segments: Blkback::default().max_indirect_segments as u16,
            persistent: false,
        };
        let info = VbdInfo { sectors: media.sectors, read_only, features };
        let bounce = Bounce::try_new().ok_or("dom0 has no memory left for another block device")?;
        let vbd = Vbd { nodes, dev, backend, disk, live: None, stats: VbdStats::default(), bounce, info, more: false };
        self.vbds.push(vbd);
        let k = self.vbds.len() - 1;
        self.step_vbd(xs, k, BackEvent::Probe);
        self.step_vbd(xs, k, BackEvent::MediaReady(media));
        Ok(())
    }

    /// Handle watch events and serve every ring once; whether anything
    /// was logged.
    pub fn pump(&mut self, xs: &mut Xenstore) -> bool {
        for (path, token) in client::take_watch_events(xs) {
            if !self.route_event(xs, &token) && self.others.len() < 256 {
                self.others.push((path, token));
            }
        }
        let mut logged = false;
        for k in 0..self.vbds.len() {
            logged |= self.serve_one(xs, k);
        }
        self.sweep_vbds(xs);
        logged
    }

    /// Watch events for dom0's other users (`xenstore-watch`).
    pub fn take_other_events(&mut self) -> Vec<(String, String)> {
        core::mem::take(&mut self.others)
    }

    /// Whether a ring has requests left.
    pub fn busy(&self) -> bool {
        self.vbds.iter().any(|v| v.more)
    }

    /// dom0's ends of the rings' event channels.
    pub fn ports(&self) -> impl Iterator<Item = u32> + '_ {
        self.vbds.iter().filter_map(|v| v.live.as_ref().map(|l| l.port))
    }

    /// `xl block-list DOM`'s rows.
    pub fn list(&self, xs: &mut Xenstore, domid: u16) -> Vec<VbdRow> {
        let mut rows = Vec::new();
        for v in self.vbds.iter().filter(|v| v.nodes.domid == domid) {
            let fe = v.nodes.frontend_path();
            let num = |xs: &mut Xenstore, key: &str| {
                client::read(xs, &format!("{fe}/{key}")).ok().and_then(|b| core::str::from_utf8(&b).ok()?.parse::<i64>().ok()).unwrap_or(-1)
            };
            let state = num(xs, "state").max(0) as u32;
            let (evtchn, ring_ref) = (num(xs, "event-channel"), num(xs, "ring-ref").max(num(xs, "ring-ref0")));
            rows.push(VbdRow { devid: v.nodes.devid, backend_id: 0, state, evtchn, ring_ref, be_path: v.nodes.backend_path() });
        }
        rows
    }

    /// The vbd of a domain named by vdev or device number.
    pub fn find_vdev(&self, domid: u16, vdev: &str) -> Option<u32> {
        let devid = vbdcfg::devid(vdev)?;
        self.find(domid, devid).map(|_| devid)
    }

    /// Feed `ev` to vbd `k`'s machine and carry out what it asks, until
    /// it asks nothing more.
    fn step_vbd(&mut self, xs: &mut Xenstore, k: usize, ev: BackEvent<Disk>) {
        let mut next = Some(ev);
        while let Some(ev) = next.take() {
            let actions = self.vbds[k].backend.handle(ev, &mut XsStore(xs));
            for a in actions {
                match a {
                    BackAction::Store(op) => {
                        let _ = apply(&mut XsStore(xs), &self.vbds[k].dev, &op);
                    }
                    BackAction::MapRing(ring) => {
                        next = Some(match self.connect(k, &ring) {
                            Ok(()) => BackEvent::RingMapped,
                            Err(e) => BackEvent::RingFailed(e),
                        });
                    }
                    BackAction::Disconnect { .. } => self.disconnect(k),
                    BackAction::Removed => self.disconnect(k),
                }
            }
        }
    }

    /// Map the ring's grants and bind its channel.
    fn connect(&mut self, k: usize, ring: &BlkRing) -> Result<(), i64> {
        self.disconnect(k);
        let domid = self.vbds[k].nodes.domid;
        let mut pages: heapless::Vec<Mapped, 16> = heapless::Vec::new();
        let r = self.map_ring(domid, ring, &mut pages);
        let r = r.and_then(|ring_r| events::bind_interdomain(domid, ring.evtchn).map(|port| (ring_r, port)));
        match r {
            Ok((ring_r, port)) => {
                let persistent = ring.persistent.then(Persistent::new);
                self.vbds[k].info.features.persistent = ring.persistent;
                self.vbds[k].live = Some(Live { ring: ring_r, pages, port, persistent });
                self.vbds[k].more = true;
                Ok(())
            }
            Err(e) => {
                for m in pages {
                    self.area.unmap(m);
                }
                Err(e)
            }
        }
    }

    /// Map the ring's pages into `pages` and attach a back ring to them.
    fn map_ring(&mut self, domid: u16, ring: &BlkRing, pages: &mut heapless::Vec<Mapped, 16>) -> Result<BlkBackRing<MappedPages>, i64> {
        for gref in &ring.ring_refs {
            let m = self.area.map(domid, *gref, false)?;
            let _ = pages.push(m);
        }
        let vas: heapless::Vec<u64, 16> = pages.iter().map(|m| m.va).collect();
        // SAFETY: each VA is an area slot just mapped writable to one of
        // the frontend's ring grants; the slots stay mapped until
        // `disconnect` drops this ring first and then unmaps them.
        let mem = unsafe { MappedPages::new(&vas) }.ok_or(-xen_public::errno::EINVAL)?;
        BlkBackRing::attach(mem, 0).map_err(|_| -xen_public::errno::EINVAL)
    }

    /// Drop vbd `k`'s ring: close its channel, unmap its pages and its
    /// persistent grants.
    fn disconnect(&mut self, k: usize) {
        let Some(live) = self.vbds[k].live.take() else { return };
        events::close(live.port);
        let v = &self.vbds[k];
        let kept = live.persistent.as_ref().map_or(0, BTreeMap::len);
        let s = &v.stats;
        println!(
            "dom0: blkback: d{} vbd {}: disconnected after {} reads, {} writes, {} flushes, {} refused; {} persistent grants",
            v.nodes.domid,
            v.nodes.devid,
            s.rd_req,
            s.wr_req,
            s.f_req,
            s.refused_total(),
            kept
        );
        let Live { ring, pages, persistent, .. } = live;
        drop(ring);
        for m in pages.into_iter().chain(persistent.into_iter().flat_map(BTreeMap::into_values)) {
            self.area.unmap(m);
        }
        self.vbds[k].more = false;
    }

    /// Forget removed vbds, and remove their frontend nodes (and a
    /// domain's emptied backend directory) as libxl does once the backend
    /// is gone.
    fn sweep_vbds(&mut self, xs: &mut Xenstore) {
        let mut gone: heapless::Vec<u16, MAX_VBDS> = heapless::Vec::new();
        for v in self.vbds.iter().filter(|v| v.backend.removed()) {
            let _ = client::rm(xs, &v.nodes.frontend_path());
            let _ = gone.push(v.nodes.domid);
        }
        self.vbds.retain(|v| !v.backend.removed());
        // A domain left with no vbd loses its backend directory too, and
        // the error nodes a halted ring left, with their emptied parents
        // (libxl's `libxl__xs_path_cleanup`, as vif.rs does).
        for domid in gone {
            if !self.vbds.iter().any(|v| v.nodes.domid == domid) {
                forget_domain(xs, "vbd", domid);
            }
        }
    }

    /// Serve vbd `k`'s ring once.
    fn serve_one(&mut self, xs: &mut Xenstore, k: usize) -> bool {
        let si = self.si;
        let v = &mut self.vbds[k];
        let Some(live) = v.live.as_mut() else { return false };
        let persistent = live.persistent.as_mut().map(|p| (p, &mut self.area));
        let mut copier = Copier { si, domid: v.nodes.domid, persistent };
        let disk = &mut *self.disks[v.disk].dev;
        // Serve again right after notifying, within the budget (Linux's
        // blkback loops on `more_to_do` the same way): the event wakes the
        // frontend, which may run at once and queue its next request
        // before we get back here; it is then served without a trip
        // through dom0's whole loop and a SCHEDOP_poll.
        let mut left = BUDGET;
        let s = loop {
            let rsp_prod_before = live.ring.rsp_prod_pvt();
            let s = serve(&mut live.ring, disk, &mut copier, &v.info, &mut v.stats, &mut v.bounce, left);
            gtrace::ring_step(RingStep::PushResponses, RingKind::Blk, v.nodes.domid, rsp_prod_before, live.ring.rsp_prod_pvt(), s.notify);
            if s.notify {
                events::send(live.port);
            }
            left = left.saturating_sub(s.spent);
            if s.answered == 0 || left == 0 || s.more || s.halted.is_some() {
                break s;
            }
        };
        v.more = s.more || (left == 0 && live.ring.unconsumed_requests().is_ok_and(|n| n > 0));
        let Some(err) = s.halted else { return false };
        let (domid, devid) = (v.nodes.domid, v.nodes.devid);
        println!("dom0: blkback: d{domid} vbd {devid}: ring corrupt ({err:?}); disconnecting");
        // As Linux's blkback halting a ring: stop serving it and say why
        // (xenbus_dev_error's node); the handshake carries on around it.
        let _ = client::write(xs, &format!("/local/domain/0/error/backend/vbd/{domid}/{devid}/error"), format!("{EIO} ring corrupt").as_bytes());
        self.disconnect(k);
        true
    }
}

/// `xl block-detach`, a dead frontend's vbds, watch-event routing: the
/// shared shape ([`DeviceSet`]) over this set's machines.
impl DeviceSet for Vbds {
    type Media = Disk;

    fn count(&self) -> usize {
        self.vbds.len()
    }
    fn ids(&self, k: usize) -> (u16, u32) {
        (self.vbds[k].nodes.domid, self.vbds[k].nodes.devid)
    }
    fn token(&self, k: usize) -> &str {
        &self.vbds[k].dev.token
    }
    fn step(&mut self, xs: &mut Xenstore, k: usize, ev: BackEvent<Disk>) {
        self.step_vbd(xs, k, ev);
    }
    fn sweep(&mut self, xs: &mut Xenstore) {
        self.sweep_vbds(xs);
    }
}

/// Write a disk's backend and frontend nodes with libxl's permissions:
/// the backend's owned by dom0 and readable by the frontend, the
/// frontend's owned by the frontend and readable by dom0.
fn write_nodes(xs: &mut Xenstore, n: &VbdNodes) -> Result<(), String> {
    let (be, fe) = (n.backend_path(), n.frontend_path());
    for (k, v) in n.backend_nodes() {
        client::write(xs, &format!("{be}/{k}"), v.as_bytes())?;
    }
    client::set_perms(xs, &be, &["n0", &format!("r{}", n.domid)])?;
    for (k, v) in n.frontend_nodes() {
        client::write(xs, &format!("{fe}/{k}"), v.as_bytes())?;
    }
    client::set_perms(xs, &fe, &[&format!("n{}", n.domid), "r0"])?;
    for (k, _) in n.frontend_nodes() {
        client::set_perms(xs, &format!("{fe}/{k}"), &[&format!("n{}", n.domid), "r0"])?;
    }
    for (k, _) in n.backend_nodes() {
        client::set_perms(xs, &format!("{be}/{k}"), &["n0", &format!("r{}", n.domid)])?;
    }
    Ok(())
}
