//! netback in dom0 (target only): the live half of the network split
//! driver, and the bridge `xenbr0` it plugs every vif into. Each virtual
//! interface ([`Vif`]) couples the handshake machine
//! (`backend_drivers::xenbus_backend` with `netback::handshake::Netback`)
//! to dom0's in-process xenstore, maps its frontend's tx and rx rings into
//! a grant area of its own ([`crate::grant_area`]), binds the frontend's
//! event channel, and serves both rings (`backend_drivers::netback`): a
//! frame the guest sends is grant-copied into dom0 (Linux's netback copies
//! too), switched by the learning bridge (`backend_drivers::bridge`), and
//! queued for its destination port: another vif (grant-copied into a
//! buffer that guest posted), dom0's own IP endpoint ([`crate::dom0net`]),
//! or the uplink NIC ([`crate::vnet`]).
//!
//! Invariants: every ring page mapped belongs to exactly one connected
//! vif and is unmapped when it disconnects; a vif's rings are unmapped and
//! its channel closed before the vif is forgotten or its frontend domain
//! destroyed; what a frontend does (bad requests, a ring it corrupts, a
//! flood) is dropped and counted, costs dom0 at most its vif's bounded rx
//! queue and one pump's budget, and may disconnect that vif only; each
//! pump takes in at most [`PACKETS_PER_PUMP`] packets per vif and
//! [`PUMP_TX_BYTES`] from all vifs together (a fair share each, the first
//! vif rotating), and each vif's rx queue holds at most its equal share
//! of [`RX_TOTAL_BYTES`]; every allocation on the data path is fallible (a
//! frame that gets no memory is dropped and counted).

use crate::backends::{DeviceSet, forget_domain};
use crate::dom0net::heap_copy;
use crate::grant_area::{GrantArea, Mapped};
use crate::vifcfg::{VifNodes, mac_text};
use crate::xenstore::{Xenstore, client};
use alloc::boxed::Box;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use backend_drivers::blkback::serve::SegCopy;
use backend_drivers::bridge::{Bridge, Forward, PortId};
use backend_drivers::netback::credit::Credit;
use backend_drivers::netback::csum::complete_l4_checksum;
use backend_drivers::netback::handshake::{Netback, VifMedia, VifRing, attach_data_rings};
use backend_drivers::netback::rx::{RX_QUEUE_BYTES, RX_QUEUE_PACKETS, RxBackRing, RxCopier, RxFlags, RxFrag, RxQueue, serve_rx};
use backend_drivers::netback::stats::VifStats;
use backend_drivers::netback::tx::{PumpBudget, TX_BUF, TxBackRing, TxBudget, TxCopier, TxFrag, TxPacket, serve_tx_within};
use backend_drivers::xenbus_backend::{BackAction, BackEvent, Backend};
use frontend_drivers::xenbus_store::{DeviceNodes, apply};
use pv_guest_kernel::alloc::EarlyAlloc;
use pv_guest_kernel::ring_pages::MappedPages;
use pv_guest_kernel::{StartInfo, events, gtrace, println, shared};
use xen_public::trace_guest::{RingKind, RingStep};

/// Packets served per vif per pump, each way.
pub const PACKETS_PER_PUMP: u32 = 64;
/// Most vifs at once.
pub const MAX_VIFS: usize = 8;
/// Bridge ports: the vifs, dom0's own and the uplink.
const MAX_PORTS: usize = MAX_VIFS + 2;
/// MACs the bridge learns at most.
const MAX_MACS: usize = 64;
/// Frames taken from the uplink per pump.
const UPLINK_BUDGET: usize = 64;
/// How often dom0 polls an uplink (it has no interrupt), ns.
pub const UPLINK_POLL_NS: u64 = 2_000_000;
/// Bytes every vif's rx queue holds together at most (of dom0's 2 MiB
/// heap, shared with xenstored).
pub const RX_TOTAL_BYTES: usize = 512 * 1024;
/// Frames a vif's rx queue holds at most, and their bytes: an equal share
/// of [`RX_TOTAL_BYTES`] (one largest frame fits), so vifs that stall
/// (posting no rx buffers) fill only their own queues and never take
/// another vif's room; past it the newest frame is dropped (counted as
/// the vif's `rx_queue_full`).
const RX_QUEUE_FRAMES: usize = 64;
const RX_QUEUE_MAX_BYTES: usize = RX_TOTAL_BYTES / MAX_VIFS;
const _: () = assert!(RX_QUEUE_MAX_BYTES >= 65_536, "a vif's rx queue holds the largest frame");
/// Bytes one pump takes in from all vifs' tx rings together, shared
/// fairly ([`PumpBudget`]); what is left waits on the rings.
pub const PUMP_TX_BYTES: usize = 256 * 1024;

/// A connected vif.
struct Live {
    tx: TxBackRing<MappedPages>,
    rx: RxBackRing<MappedPages>,
    pages: [Mapped; 2],
    port: u32,
    ring: VifRing,
}

/// One virtual interface.
struct Vif {
    nodes: VifNodes,
    dev: DeviceNodes,
    backend: Backend<Netback>,
    live: Option<Live>,
    stats: VifStats,
    rxq: RxQueue,
    credit: Credit,
    bridge_port: PortId,
    /// Work left after the last pump (a ring with requests, a queue with
    /// frames and rx room).
    more: bool,
}

/// One row of `xl network-list`.
#[derive(Clone, Debug)]
pub struct VifRow {
    /// Device id.
    pub devid: u32,
    /// Backend domain (0).
    pub backend_id: u16,
    /// The MAC.
    pub mac: String,
    /// Frontend state.
    pub state: u32,
    /// Frontend's event channel (-1 before it connects).
    pub evtchn: i64,
    /// tx ring grant (-1 before it connects).
    pub tx_ring_ref: i64,
    /// rx ring grant (-1 before it connects).
    pub rx_ring_ref: i64,
    /// Backend path.
    pub be_path: String,
}

/// Where a frame goes after the bridge.
enum Port {
    Vif(usize),
    Dom0,
    Uplink,
}

/// A frame on its way through the bridge.
struct Frame {
    from: PortId,
    /// Its place among the frames its port gave this pump (0 first).
    rank: u32,
    bytes: Vec<u8>,
    flags: RxFlags,
}

/// Every vif, the bridge, dom0's own port and the uplink.
pub struct Vifs {
    si: &'static StartInfo,
    area: GrantArea,
    vifs: Vec<Vif>,
    bridge: Bridge,
    dom0: Option<(crate::dom0net::Dom0Net, PortId)>,
    uplink: Option<(crate::vnet::Vnet, PortId)>,
    /// The tx path's packet buffer (a packet is at most 64 KiB).
    buf: Box<[u8]>,
    /// When the uplink was last polled.
    uplink_polled: u64,
    /// Which vif a pump serves first (rotates, so the one the byte budget
    /// ran out on goes earlier next time).
    turn: usize,
}

impl Vifs {
    /// No vifs yet; the grant area takes one of `pages` for its L1.
    pub fn new(si: &'static StartInfo, pages: &mut EarlyAlloc) -> Option<Vifs> {
        let mut bridge = Bridge::new(MAX_PORTS, MAX_MACS);
        let area = GrantArea::new(si, pages)?;
        let dom0_port = bridge.add_port()?;
        let dom0 = crate::dom0net::Dom0Net::new(dom0_mac(si), crate::dom0net::DEFAULT_IP, crate::dom0net::DEFAULT_PREFIX);
        let buf = alloc::vec![0u8; TX_BUF].into_boxed_slice();
        Some(Vifs { si, area, vifs: Vec::new(), bridge, dom0: Some((dom0, dom0_port)), uplink: None, buf, uplink_polled: 0, turn: 0 })
    }

    /// Bridge the uplink NIC into `xenbr0`.
    pub fn set_uplink(&mut self, nic: crate::vnet::Vnet) {
        if let Some(p) = self.bridge.add_port() {
            self.uplink = Some((nic, p));
        }
    }

    /// Attach a vif as libxl does: write the backend and frontend nodes,
    /// plug the vif into its bridge, start the backend.
    pub fn attach(&mut self, xs: &mut Xenstore, nodes: VifNodes) -> Result<(), String> {
        if nodes.bridge != "xenbr0" {
            return Err(format!("bridge {}: this dom0 has only xenbr0", nodes.bridge));
        }
        if self.vifs.iter().any(|v| v.nodes.domid == nodes.domid && v.nodes.devid == nodes.devid) {
            return Err(format!("device vif {} already exists in domain {}", nodes.devid, nodes.domid));
        }
        if self.vifs.len() >= MAX_VIFS {
            return Err(String::from("too many network devices in dom0"));
        }
        let (be, fe) = (nodes.backend_path(), nodes.frontend_path());
        let token = format!("vif:{}:{}", nodes.domid, nodes.devid);
        let dev = DeviceNodes::new("/local/domain/0", &be["/local/domain/0/".len()..], &fe, &token).ok_or("path too long")?;
        let backend = Backend::new(Netback, &fe).ok_or("path too long")?;
        // Every check before the first node is written, and a write that
        // fails takes back what was written: a refused attach leaves
        // nothing behind.
        let bridge_port = self.bridge.add_port().ok_or("the bridge has no free port")?;
        if let Err(e) = write_nodes(xs, &nodes) {
            self.bridge.remove_port(bridge_port);
            let _ = client::rm(xs, &fe);
            let _ = client::rm(xs, &be);
            if !self.vifs.iter().any(|v| v.nodes.domid == nodes.domid) {
                forget_domain(xs, "vif", nodes.domid);
            }
            return Err(e);
        }
        let credit = credit_of(&nodes);
        let rxq = RxQueue::new(RX_QUEUE_FRAMES.min(RX_QUEUE_PACKETS), RX_QUEUE_MAX_BYTES.min(RX_QUEUE_BYTES));
        self.vifs.push(Vif { nodes, dev, backend, live: None, stats: VifStats::default(), rxq, credit, bridge_port, more: false });
        let k = self.vifs.len() - 1;
        self.step_vif(xs, k, BackEvent::Probe);
        // The vif-bridge hotplug script's part: the vif is on the bridge.
        let _ = client::write(xs, &format!("{be}/hotplug-status"), b"connected");
        self.step_vif(xs, k, BackEvent::MediaReady(VifMedia));
        Ok(())
    }

    /// Take the watch events that are a vif's; the others are returned.
    pub fn route_events(&mut self, xs: &mut Xenstore, events: Vec<(String, String)>) -> Vec<(String, String)> {
        let mut rest = Vec::new();
        for (path, token) in events {
            if !self.route_event(xs, &token) {
                rest.push((path, token));
            }
        }
        self.sweep_vifs(xs);
        rest
    }

    /// Serve every ring, the uplink and dom0's port once; whether anything
    /// was logged.
    pub fn pump(&mut self, xs: &mut Xenstore) -> bool {
        let now_ns = shared::now_ns().unwrap_or(0);
        let mut frames: Vec<Frame> = Vec::new();
        let mut logged = false;
        let n = self.vifs.len();
        let mut budget = PumpBudget::new(PUMP_TX_BYTES, self.vifs.iter().filter(|v| v.live.is_some()).count());
        self.turn = self.turn.wrapping_add(1);
        for i in 0..n {
            logged |= self.serve_tx_of((self.turn + i) % n, now_ns, &mut budget, &mut frames);
        }
        self.take_uplink(now_ns, &mut frames);
        self.take_dom0(now_ns, &mut frames);
        let now_ms = now_ns / 1_000_000;
        self.bridge.age(now_ms);
        // Round robin over the ports the frames came from (each port's in
        // order; the key is unique, so the unstable sort, which allocates
        // nothing, is exact): a flooding vif cannot take every shared slot
        // (the uplink's transmit buffers, dom0's queue) before the others'
        // frames are switched.
        frames.sort_unstable_by_key(|f| (f.rank, f.from));
        for f in frames {
            self.switch(f, now_ms);
        }
        // dom0's answers to what it just got go out in the same pump.
        let mut answers = Vec::new();
        self.take_dom0(now_ns, &mut answers);
        for f in answers {
            self.switch(f, now_ms);
        }
        for k in 0..self.vifs.len() {
            logged |= self.serve_rx_of(k);
        }
        self.sweep_vifs(xs);
        logged
    }

    /// Whether a ring or queue has work left, dom0's own send moved, or
    /// frames wait for the uplink's transmit buffers.
    pub fn busy(&self) -> bool {
        self.vifs.iter().any(|v| v.more)
            || self.dom0.as_ref().is_some_and(|(n, _)| n.busy())
            || self.uplink.as_ref().is_some_and(|(nic, _)| nic.backlogged())
    }

    /// Dom0's own endpoint on the bridge.
    pub fn dom0_net(&mut self) -> Option<&mut crate::dom0net::Dom0Net> {
        self.dom0.as_mut().map(|(n, _)| n)
    }

    /// When dom0 must look again without an event (an uplink to poll, a
    /// rate limit to refill, dom0's own TCP timers).
    pub fn next_wake_ns(&self) -> Option<u64> {
        let poll = self.uplink.as_ref().map(|_| self.uplink_polled + UPLINK_POLL_NS);
        let credit = self.vifs.iter().filter(|v| v.live.is_some()).filter_map(|v| v.credit.next_refill_us()).map(|us| us * 1000).min();
        let dom0 = self.dom0.as_ref().and_then(|(n, _)| n.wake_ms()).map(|ms| ms * 1_000_000);
        // 0 would read as "no deadline" to SCHEDOP_poll.
        poll.into_iter().chain(credit).chain(dom0).min().map(|t| t.max(1))
    }

    /// dom0's ends of the vifs' event channels.
    pub fn ports(&self) -> impl Iterator<Item = u32> + '_ {
        self.vifs.iter().filter_map(|v| v.live.as_ref().map(|l| l.port))
    }

    /// `xl network-list DOM`'s rows.
    pub fn list(&self, xs: &mut Xenstore, domid: u16) -> Vec<VifRow> {
        let mut rows = Vec::new();
        for v in self.vifs.iter().filter(|v| v.nodes.domid == domid) {
            let fe = v.nodes.frontend_path();
            let num = |xs: &mut Xenstore, key: &str| {
                client::read(xs, &format!("{fe}/{key}")).ok().and_then(|b| core::str::from_utf8(&b).ok()?.parse::<i64>().ok()).unwrap_or(-1)
            };
            rows.push(VifRow {
                devid: v.nodes.devid,
                backend_id: 0,
                mac: mac_text(&v.nodes.mac),
                state: num(xs, "state").max(0) as u32,
                evtchn: num(xs, "event-channel"),
                tx_ring_ref: num(xs, "tx-ring-ref"),
                rx_ring_ref: num(xs, "rx-ring-ref"),
                be_path: v.nodes.backend_path(),
            });
        }
        rows
    }

    /// A vif of `domid` by devid or MAC (`xl network-detach DOM DEV`).
    pub fn find_dev(&self, domid: u16, dev: &str) -> Option<u32> {
        let by_mac = |v: &&Vif| mac_text(&v.nodes.mac).eq_ignore_ascii_case(dev);
        let by_id = |v: &&Vif| dev.parse::<u32>().is_ok_and(|d| d == v.nodes.devid);
        self.vifs.iter().filter(|v| v.nodes.domid == domid).find(|v| by_id(v) || by_mac(v)).map(|v| v.nodes.devid)
    }

    /// devids `domid`'s vifs use.
    pub fn devids(&self, domid: u16) -> impl Iterator<Item = u32> + '_ {
        self.vifs.iter().filter(move |v| v.nodes.domid == domid).map(|v| v.nodes.devid)
    }

    /// Feed `ev` to vif `k`'s machine and carry out what it asks, until it
    /// asks nothing more.
    fn step_vif(&mut self, xs: &mut Xenstore, k: usize, ev: BackEvent<VifMedia>) {
        let mut next = Some(ev);
        while let Some(ev) = next.take() {
            let actions = self.vifs[k].backend.handle(ev, &mut crate::vbd::XsStore(xs));
            for a in actions {
                match a {
                    BackAction::Store(op) => {
                        let _ = apply(&mut crate::vbd::XsStore(xs), &self.vifs[k].dev, &op);
                    }
                    BackAction::MapRing(ring) => {
                        next = Some(match self.connect(k, ring) {
                            Ok(()) => BackEvent::RingMapped,
                            Err(e) => BackEvent::RingFailed(e),
                        });
                    }
                    BackAction::Disconnect { .. } | BackAction::Removed => self.disconnect(k),
                }
            }
        }
    }

    /// Map both rings and bind the channel.
    fn connect(&mut self, k: usize, ring: VifRing) -> Result<(), i64> {
        self.disconnect(k);
        let domid = self.vifs[k].nodes.domid;
        let tx_page = self.area.map(domid, ring.tx_ring_ref, false)?;
        let rx_page = match self.area.map(domid, ring.rx_ring_ref, false) {
            Ok(m) => m,
            Err(e) => {
                self.area.unmap(tx_page);
                return Err(e);
            }
        };
        let rings = attach_rings(tx_page.va, rx_page.va);
        let r = rings.and_then(|(tx, rx)| events::bind_interdomain(domid, ring.evtchn).map(|port| (tx, rx, port)));
        match r {
            Ok((tx, rx, port)) => {
                let v = &mut self.vifs[k];
                v.live = Some(Live { tx, rx, pages: [tx_page, rx_page], port, ring });
                v.more = true;
                Ok(())
            }
            Err(e) => {
                self.area.unmap(rx_page);
                self.area.unmap(tx_page);
                Err(e)
            }
        }
    }

    /// Drop vif `k`'s rings: close its channel, unmap its pages, empty
    /// its queue.
    fn disconnect(&mut self, k: usize) {
        let Some(live) = self.vifs[k].live.take() else { return };
        events::close(live.port);
        let v = &mut self.vifs[k];
        v.rxq.clear();
        v.more = false;
        v.credit = credit_of(&v.nodes);
        let s = &v.stats;
        println!(
            "dom0: netback: d{} vif {}: disconnected after {} tx, {} rx packets; {} dropped",
            v.nodes.domid,
            v.nodes.devid,
            s.tx_packets,
            s.rx_packets,
            s.dropped_total()
        );
        let Live { tx, rx, pages, .. } = live;
        drop((tx, rx));
        for m in pages {
            self.area.unmap(m);
        }
    }

    /// Forget removed vifs (unplugging their bridge ports), and remove
    /// their frontend nodes and a domain's emptied backend directory, as
    /// libxl does once the backend is gone.
    fn sweep_vifs(&mut self, xs: &mut Xenstore) {
        let mut gone: heapless::Vec<u16, MAX_VIFS> = heapless::Vec::new();
        for v in self.vifs.iter().filter(|v| v.backend.removed()) {
            let _ = client::rm(xs, &v.nodes.frontend_path());
            let _ = client::rm(xs, &v.nodes.backend_path());
            self.bridge.remove_port(v.bridge_port);
            let _ = gone.push(v.nodes.domid);
        }
        self.vifs.retain(|v| !v.backend.removed());
        for domid in gone {
            if !self.vifs.iter().any(|v| v.nodes.domid == domid) {
                forget_domain(xs, "vif", domid);
            }
        }
    }

    /// Serve vif `k`'s tx ring once, within its share of `budget`: its
    /// good packets join `frames`.
    fn serve_tx_of(&mut self, k: usize, now_ns: u64, budget: &mut PumpBudget, frames: &mut Vec<Frame>) -> bool {
        let si = self.si;
        let buf = &mut self.buf;
        let v = &mut self.vifs[k];
        let Some(live) = v.live.as_mut() else { return false };
        let mut copier = Copier { si, domid: v.nodes.domid };
        let (from, mac) = (v.bridge_port, v.nodes.mac);
        let (mut spoofed, mut no_memory, mut taken, mut rank) = (0u64, 0u64, 0usize, 0u32);
        let mut deliver = |bytes: &[u8], p: TxPacket| {
            taken += bytes.len();
            // A guest sends as its own MAC only: another's would steal
            // that one's traffic from the bridge (and random ones would
            // flush its table).
            if bytes.get(6..12) != Some(&mac[..]) {
                spoofed += 1;
                return;
            }
            let flags = RxFlags { csum_blank: p.csum_blank, data_validated: p.data_validated };
            match heap_copy(bytes) {
                Some(bytes) if frames.try_reserve(1).is_ok() => {
                    frames.push(Frame { from, rank, bytes, flags });
                    rank += 1;
                }
                _ => no_memory += 1,
            }
        };
        let limit = TxBudget { packets: PACKETS_PER_PUMP, bytes: budget.next_vif() };
        let rsp_prod_before = live.tx.rsp_prod_pvt();
        let s = serve_tx_within(&mut live.tx, &mut copier, &mut v.credit, now_ns / 1000, &mut v.stats, buf, limit, &mut deliver);
        budget.spend(taken);
        v.stats.tx_spoofed = v.stats.tx_spoofed.wrapping_add(spoofed);
        v.stats.tx_no_memory = v.stats.tx_no_memory.wrapping_add(no_memory);
        gtrace::ring_step(RingStep::PushResponses, RingKind::NetTx, v.nodes.domid, rsp_prod_before, live.tx.rsp_prod_pvt(), s.notify);
        if s.notify {
            events::send(live.port);
        }
        v.more = s.more;
        let Some(why) = s.fatal else { return false };
        self.fail(k, "fatal tx error", format_args!("{why:?}"));
        true
    }

    /// Stop serving vif `k` for what its frontend did, as Linux's
    /// `xenvif_fatal_tx_err`: say so, unmap its rings.
    fn fail(&mut self, k: usize, what: &str, why: core::fmt::Arguments<'_>) {
        let (domid, devid) = (self.vifs[k].nodes.domid, self.vifs[k].nodes.devid);
        println!("dom0: netback: d{domid} vif {devid}: {what} ({why}); disconnecting");
        // Linux's xenvif_fatal_tx_err (netback.c) only disables the vif (carrier off, interface.c): no xenbus state change, no error node.
        self.disconnect(k);
    }

    /// Serve vif `k`'s rx ring once from its queue.
    fn serve_rx_of(&mut self, k: usize) -> bool {
        let si = self.si;
        let v = &mut self.vifs[k];
        let Some(live) = v.live.as_mut() else { return false };
        let mut copier = Copier { si, domid: v.nodes.domid };
        let rsp_prod_before = live.rx.rsp_prod_pvt();
        let s = serve_rx(&mut live.rx, &mut copier, &mut v.rxq, &live.ring, &mut v.stats, PACKETS_PER_PUMP);
        gtrace::ring_step(RingStep::PushResponses, RingKind::NetRx, v.nodes.domid, rsp_prod_before, live.rx.rsp_prod_pvt(), s.notify);
        if s.notify {
            events::send(live.port);
        }
        v.more |= s.delivered + s.dropped >= PACKETS_PER_PUMP || s.again;
        let Some(why) = s.fatal else { return false };
        self.fail(k, "rx ring corrupt", format_args!("{why:?}"));
        true
    }

    /// Frames from the uplink, polled at most every [`UPLINK_POLL_NS`]
    /// unless it had more; its sent buffers taken back.
    fn take_uplink(&mut self, now_ns: u64, frames: &mut Vec<Frame>) {
        let Some((nic, port)) = self.uplink.as_mut() else { return };
        self.uplink_polled = now_ns;
        nic.reclaim();
        let mut buf = [0u8; 1536];
        for rank in 0..UPLINK_BUDGET as u32 {
            let Some(n) = nic.recv(&mut buf) else { break };
            match buf.get(..n).and_then(heap_copy) {
                Some(bytes) if frames.try_reserve(1).is_ok() => frames.push(Frame { from: *port, rank, bytes, flags: RxFlags::default() }),
                _ => nic.stats.rx_dropped += 1,
            }
        }
    }

    /// Frames dom0's own IP endpoint sends.
    fn take_dom0(&mut self, now_ns: u64, frames: &mut Vec<Frame>) {
        let Some((stack, port)) = self.dom0.as_mut() else { return };
        stack.poll(now_ns / 1_000_000);
        let mut rank = 0;
        while let Some(bytes) = stack.pop_tx() {
            // Without room for it the frame is lost, as on a full NIC.
            if frames.try_reserve(1).is_ok() {
                frames.push(Frame { from: *port, rank, bytes, flags: RxFlags::default() });
                rank += 1;
            }
        }
    }

    /// The bridge's port `p`.
    fn port(&self, p: PortId) -> Option<Port> {
        if self.dom0.as_ref().is_some_and(|(_, d)| *d == p) {
            return Some(Port::Dom0);
        }
        if self.uplink.as_ref().is_some_and(|(_, u)| *u == p) {
            return Some(Port::Uplink);
        }
        self.vifs.iter().position(|v| v.bridge_port == p && v.live.is_some()).map(Port::Vif)
    }

    /// Switch one frame to where the bridge says.
    fn switch(&mut self, f: Frame, now_ms: u64) {
        match self.bridge.forward(f.from, &f.bytes, now_ms) {
            Forward::Drop => {}
            Forward::To(p) => self.send_to(p, &f),
            Forward::Flood => {
                let ports: heapless::Vec<PortId, MAX_PORTS> = self.bridge.ports().filter(|p| *p != f.from).collect();
                for p in ports {
                    self.send_to(p, &f);
                }
            }
        }
    }

    /// Hand a frame to port `p`: a vif's queue, dom0's endpoint, or the
    /// uplink (the last two want whole checksums).
    fn send_to(&mut self, p: PortId, f: &Frame) {
        match self.port(p) {
            Some(Port::Vif(k)) => {
                let v = &mut self.vifs[k];
                v.rxq.push(&f.bytes, f.flags, &mut v.stats);
                v.more = true;
            }
            // Frames the port refuses anyway (over 1514 bytes) are dropped
            // before the copy and checksum pass they would cost.
            Some(Port::Dom0) if f.bytes.len() > crate::dom0net::MAX_FRAME => {}
            Some(Port::Uplink) if !crate::vnet::sendable(&f.bytes) => {}
            Some(Port::Dom0) => {
                if let (Some(bytes), Some((stack, _))) = (whole_checksums(f), self.dom0.as_mut()) {
                    stack.push_rx(&bytes);
                }
            }
            Some(Port::Uplink) => {
                if let (Some(bytes), Some((nic, _))) = (whole_checksums(f), self.uplink.as_mut()) {
                    let _ = nic.send(&bytes);
                }
            }
            None => {}
        }
    }
}

/// `xl network-detach`, a dead frontend's vifs, watch-event routing: the
/// shared shape ([`DeviceSet`]) over this set's machines.
impl DeviceSet for Vifs {
    type Media = VifMedia;

    fn count(&self) -> usize {
        self.vifs.len()
    }
    fn ids(&self, k: usize) -> (u16, u32) {
        (self.vifs[k].nodes.domid, self.vifs[k].nodes.devid)
    }
    fn token(&self, k: usize) -> &str {
        &self.vifs[k].dev.token
    }
    fn step(&mut self, xs: &mut Xenstore, k: usize, ev: BackEvent<VifMedia>) {
        self.step_vif(xs, k, ev);
    }
    fn sweep(&mut self, xs: &mut Xenstore) {
        self.sweep_vifs(xs);
    }
}

/// A vif's fresh `rate=` credit.
fn credit_of(n: &VifNodes) -> Credit {
    n.rate.map_or_else(Credit::unlimited, |r| Credit::new(r.bytes_per_interval, u64::from(r.interval_usecs)))
}

/// `f`'s bytes with the L4 checksum filled in if the sender left it blank.
fn whole_checksums(f: &Frame) -> Option<Vec<u8>> {
    let mut bytes = heap_copy(&f.bytes)?;
    if f.flags.csum_blank {
        complete_l4_checksum(&mut bytes);
    }
    Some(bytes)
}

/// dom0's own MAC on the bridge: Xen's OUI, locally derived from dom0's
/// start info so it differs between hosts' dom0s only by chance.
fn dom0_mac(si: &StartInfo) -> [u8; 6] {
    crate::vifcfg::made_up_mac(si.shared_info ^ 0x00fe_ed00)
}

/// Attach the tx and rx back rings to their mapped pages where the
/// shared rings stand (`attach_data_rings`: Linux's
/// `xenvif_map_frontend_data_rings`, `-EIO` for more than a ring of
/// requests).
fn attach_rings(tx_va: u64, rx_va: u64) -> Result<(TxBackRing<MappedPages>, RxBackRing<MappedPages>), i64> {
    let bad = -xen_public::errno::EINVAL;
    // SAFETY: each VA is a grant-area slot just mapped writable to the
    // frontend's ring grant; it stays mapped until `disconnect` drops the
    // ring first and then unmaps it.
    let tx_mem = unsafe { MappedPages::new(&[tx_va]) }.ok_or(bad)?;
    // SAFETY: as above, for the rx ring's slot.
    let rx_mem = unsafe { MappedPages::new(&[rx_va]) }.ok_or(bad)?;
    attach_data_rings(tx_mem, rx_mem).map_err(|_| -xen_public::errno::EIO)
}

/// Grant copies between a frontend's pages and dom0's buffers.
struct Copier<'a> {
    si: &'a StartInfo,
    domid: u16,
}

/// Most grant-copy segments one packet takes (a packet has at most 20 tx
/// or 17 rx slots).
const MAX_SEGS: usize = 32;

/// The segments as blkback's copier takes them; an error (the packet
/// fails) past [`MAX_SEGS`], never a panic.
fn seg_copies(segs: impl Iterator<Item = SegCopy>) -> Result<heapless::Vec<SegCopy, MAX_SEGS>, i16> {
    let mut v = heapless::Vec::new();
    for s in segs {
        v.push(s).map_err(|_| -1i16)?;
    }
    Ok(v)
}

impl TxCopier for Copier<'_> {
    fn copy_in(&mut self, frags: &[TxFrag], buf: &mut [u8]) -> Result<(), i16> {
        let segs = seg_copies(frags.iter().map(|f| SegCopy { gref: f.gref, page_off: f.offset, len: f.len, buf_off: f.buf_off }))?;
        crate::vbd::grant_copy(self.si, self.domid, &segs, buf, false)
    }
}

impl RxCopier for Copier<'_> {
    fn copy_out(&mut self, frags: &[RxFrag], data: &[u8]) -> Result<(), i16> {
        let segs = seg_copies(frags.iter().map(|f| SegCopy { gref: f.gref, page_off: f.offset, len: f.len, buf_off: f.data_off }))?;
        crate::vbd::grant_copy_out(self.si, self.domid, &segs, data)
    }
}

/// Write a vif's backend and frontend nodes with libxl's permissions:
/// the backend's owned by dom0 and readable by the frontend, the
/// frontend's owned by the frontend and readable by dom0, and its
/// read-only ones (`mtu`) owned by dom0.
fn write_nodes(xs: &mut Xenstore, n: &VifNodes) -> Result<(), String> {
    let (be, fe) = (n.backend_path(), n.frontend_path());
    let (dom0, guest) = (["n0".to_string(), format!("r{}", n.domid)], [format!("n{}", n.domid), "r0".to_string()]);
    write_with(xs, &be, &n.backend_nodes(), &dom0, true)?;
    write_with(xs, &fe, &n.frontend_nodes(), &guest, true)?;
    write_with(xs, &fe, &n.frontend_ro_nodes(), &dom0, false)
}

/// Write `nodes` under `dir` with `perms` on each (and on `dir` itself).
fn write_with(xs: &mut Xenstore, dir: &str, nodes: &[(&'static str, String)], perms: &[String; 2], on_dir: bool) -> Result<(), String> {
    let p = [perms[0].as_str(), perms[1].as_str()];
    for (k, v) in nodes {
        client::write(xs, &format!("{dir}/{k}"), v.as_bytes())?;
    }
    if on_dir {
        client::set_perms(xs, dir, &p)?;
    }
    for (k, _) in nodes {
        client::set_perms(xs, &format!("{dir}/{k}"), &p)?;
    }
    Ok(())
}
