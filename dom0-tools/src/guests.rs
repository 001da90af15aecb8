//! Dom0's running guests: starting domUs from the guest image dom0 was
//! handed, the console backend that relays each guest's console ring to
//! dom0's console as `(dN) line`, and reaping guests that shut down.
//!
//! Each guest also has its xenstore home (`/local/domain/<id>`, written as
//! libxl does before the guest first runs) and a xenstored connection over
//! its store page, served by [`Guests::pump`].
//!
//! Each guest is built from a [`GuestSpec`] (an xl config, or the demo
//! guest for a bare `create`), kept so that `on_reboot = "restart"` can
//! build it again, and keeps the last [`LOG_BYTES`] of its console output
//! for `xl console`.
//!
//! Invariant: a guest in the table has its console page mapped in its own
//! slot `i` of the console window, its store page in slot
//! `MAX_GUESTS + i`, and bound event channels for both; all are released
//! (and its home removed, `@releaseDomain` fired) before the domain is
//! destroyed. Guest names in the table are unique.

use crate::backends::DeviceSet as _;
use crate::builder::{self, BuildError, Scratch};
use crate::files::Files;
use crate::foreign_area::ForeignArea;
use crate::hv;
pub use crate::spec::GuestSpec;
use crate::vbd::Vbds;
use crate::vif::Vifs;
use crate::xenstore::client::{self, DomainHome};
use crate::xenstore::service::Service;
use crate::xlcfg::Action;
use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use backend_drivers::disk::{BlockDevice, RamDisk};
use core::fmt::Write as _;
use pv_guest_kernel::alloc::EarlyAlloc;
use pv_guest_kernel::console::RingPage;
use pv_guest_kernel::{StartInfo, events, println, shared};
use xen_public::console as ring;

/// Guests dom0 runs at once (the hypervisor's slots minus dom0's).
pub const MAX_GUESTS: usize = 7;
const _: () = assert!(2 * MAX_GUESTS <= builder::SCRATCH_SLOTS, "console and store pages share the console window");
/// Pages of a guest: 4 MiB.
pub const GUEST_PAGES: u64 = crate::spec::DEMO_PAGES;

/// Bytes of console output kept per guest for `xl console`.
pub const LOG_BYTES: usize = 4096;
/// Bytes of a guest's console relayed per pump (one `out` ring): a guest
/// that writes as fast as dom0 relays cannot hold dom0 in its relay.
pub const RELAY_BYTES: usize = ring::OUT_SIZE as usize;
/// xenconsoled's rate limit, in bytes rather than its events: a guest's
/// console gets at most this much per [`RATE_PERIOD_NS`]; past it, dom0
/// leaves the ring alone until the period ends (the guest waits for room),
/// so a guest printing without pause cannot keep dom0 busy.
pub const RATE_ALLOWANCE: usize = 32 * 1024;
/// xenconsoled's `RATE_LIMIT_PERIOD`: 200 ms.
pub const RATE_PERIOD_NS: u64 = 200_000_000;

/// One guest dom0 follows.
struct Guest {
    domid: u16,
    /// dom0's end of the console channel.
    port: u32,
    ring_va: u64,
    line: [u8; 200],
    len: usize,
    /// What it was built from.
    spec: GuestSpec,
    /// Its name now (`rename` and rename-restart change it).
    name: String,
    /// The last [`LOG_BYTES`] of its console output.
    log: VecDeque<u8>,
    /// Shut down and kept (`preserve`): not reaped again.
    preserved: bool,
    /// The last relay stopped at [`RELAY_BYTES`] with output left.
    more: bool,
    /// End of the current rate period (system time).
    period_end: u64,
    /// Bytes relayed in the current rate period.
    period_bytes: usize,
    /// Over [`RATE_ALLOWANCE`] in this period: left alone until its end.
    throttled: bool,
    /// System time when it was started, in ns.
    started_ns: u64,
    /// Its UUID (the domain handle; `/vm/<uuid>` in xenstore).
    uuid: [u8; 16],
}

/// The disk dom0 serves as `target=/dev/vda`: its virtio disk, if it has
/// one.
pub const DEFAULT_DISK: &str = "/dev/vda";
/// The boot-module file that backs `/dev/vda` without a virtio disk.
pub const RAM_DISK_FILE: &str = "disk.img";
/// Most bytes all RAM disks together may hold: they live in dom0's heap
/// (under 2 MiB, shared with xenstored).
pub const MAX_RAM_DISK: usize = 512 << 10;

/// libxl's `LIBXL_MAXMEM_CONSTANT`: KiB above a domain's target that the
/// hypervisor lets it hold.
pub const LIBXL_MAXMEM_CONSTANT_KIB: u64 = 1024;

/// How long after a guest's shutdown its restart comes (xl sleeps 2 s
/// before re-creating a domain).
pub const RESTART_DELAY_NS: u64 = 2_000_000_000;

/// A restart waiting for its delay.
struct Restart {
    /// The domain that shut down.
    old: u16,
    /// Its shutdown reason.
    reason: u32,
    /// System time it is due.
    due_ns: u64,
    /// What to build.
    spec: GuestSpec,
}

/// What [`Guests::reap`] did about a domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Destroyed.
    Destroyed,
    /// Left shut down.
    Preserved,
    /// Destroyed; it will be built again after [`RESTART_DELAY_NS`].
    RestartLater,
    /// Kept under this name; a new one will be built after the delay.
    Kept(String),
    /// Could not be renamed, so neither kept nor restarted (errno).
    NotKept(i64),
    /// Built again: the new domid, or why not.
    Restarted(Result<u16, BuildError>),
}

/// What happened to a guest that shut down, as [`Guests::reap`] saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reaped {
    /// The domain that shut down.
    pub domid: u16,
    /// Its `SHUTDOWN_*` reason.
    pub reason: u32,
    /// The action its config gave.
    pub action: Action,
    /// What was done.
    pub outcome: Outcome,
}

/// Dom0's guests and what it needs to build more.
pub struct Guests {
    slots: [Option<Guest>; MAX_GUESTS],
    build: Scratch,
    consoles: Scratch,
    /// Where a compressed kernel is decompressed into the new domain's
    /// memory (`None`: dom0 lacked the pages; such kernels then go through
    /// dom0's heap, and a Linux-sized one fails with ENOMEM).
    stage: Option<ForeignArea>,
    /// The P2M of the initial region of the domain built last (dom0's
    /// heap, at most [`builder::REGION_P2M_BUDGET`] entries).
    p2m: Vec<u64>,
    files: Files<'static>,
    dom_exc: u32,
    store: Service,
    /// The guest whose console `xl console` shows (its lines unprefixed).
    attached: Option<u16>,
    /// Restarts waiting for their delay.
    restarts: Vec<Restart>,
    /// Domains created so far (a UUID seed).
    created: u32,
    /// blkback: the guests' virtual block devices and dom0's disks.
    vbds: Vbds,
    /// netback: the guests' virtual interfaces and the bridge.
    vifs: Vifs,
    /// Watch events on dom0's connection that no backend took, for
    /// `xenstore-watch` (at most 256).
    watch_others: Vec<(String, String)>,
    /// Bytes of dom0's heap its RAM disks hold (at most [`MAX_RAM_DISK`]:
    /// the heap also carries xenstored).
    ram_disk_bytes: usize,
}

/// The name of a shutdown code.
pub fn reason_name(code: u32) -> &'static str {
    match code {
        0 => "poweroff",
        1 => "reboot",
        2 => "suspend",
        3 => "crash",
        4 => "watchdog",
        5 => "soft_reset",
        _ => "unknown",
    }
}

impl Guests {
    /// Set up: scratch windows, VIRQ_DOM_EXC. The guest
    /// image is dom0's boot module. `None` if dom0 lacks the pages.
    pub fn new(si: &'static StartInfo, pages: &mut EarlyAlloc) -> Option<Guests> {
        let build = Scratch::new(si, pages)?;
        let consoles = Scratch::new(si, pages)?;
        let stage = ForeignArea::new(si, pages, pages.end());
        if stage.is_none() {
            println!("dom0: no staging area for large kernels (dom0 lacks the pages)");
        }
        // SAFETY: the boot module is mapped at `mod_start` for `mod_len`
        // bytes in dom0's initial region and never written.
        let module = unsafe { core::slice::from_raw_parts(si.mod_start as *const u8, si.mod_len as usize) };
        let dom_exc = bind_virq(xen_public::VIRQ_DOM_EXC).unwrap_or(0);
        let vbds = Vbds::new(si, pages)?;
        let vifs = Vifs::new(si, pages)?;
        Some(Guests {
            slots: core::array::from_fn(|_| None),
            build,
            consoles,
            stage,
            p2m: Vec::new(),
            files: Files::from_module(module),
            dom_exc,
            store: Service::new(),
            attached: None,
            restarts: Vec::new(),
            created: 0,
            vbds,
            vifs,
            watch_others: Vec::new(),
            ram_disk_bytes: 0,
        })
    }

    /// Dom0's files (kernels and configs).
    pub fn files(&mut self) -> &mut Files<'static> {
        &mut self.files
    }

    /// The bytes of kernel file `name`.
    fn kernel(&self, name: &str) -> Result<&'static [u8], BuildError> {
        let files: &Files<'static> = &self.files;
        // A module file lives as long as dom0; a written one is text, not
        // a kernel: only module files are kernels.
        files.module_file(name).ok_or(BuildError("find the kernel file", -xen_public::errno::ENOENT))
    }

    /// Build and start the demo guest with `extra` on its command line.
    pub fn start(&mut self, extra: &str) -> Result<u16, BuildError> {
        self.start_spec(GuestSpec::demo(extra))
    }

    /// Build and start a guest from `spec` (named `guest<domid>` if its
    /// name is empty). A name in use is refused, as libxl does.
    pub fn start_spec(&mut self, spec: GuestSpec) -> Result<u16, BuildError> {
        if !spec.name.is_empty() && self.find(&spec.name).is_some() {
            return Err(BuildError("use a name no other domain has", -xen_public::errno::EEXIST));
        }
        let seed = shared::now_ns().unwrap_or(0) ^ (u64::from(self.created) << 48);
        self.created = self.created.wrapping_add(1);
        let uuid = crate::spec::uuid_from_seed(seed);
        let domid = hv::create_domain_with(spec.vcpus, uuid).map_err(|rc| BuildError("createdomain", rc))?;
        self.start_created_spec(domid, spec, uuid)
    }

    /// Build and start a guest that dom0 does not follow: no console relay
    /// and no slot here (the density benchmark starts hundreds).
    pub fn start_headless(&mut self, extra: &str) -> Result<u16, BuildError> {
        let image = self.kernel(crate::files::DEMO_KERNEL)?;
        builder::build(&mut self.build, &mut self.p2m, image, GUEST_PAGES, extra).map(|b| b.domid)
    }

    /// Build and start the demo guest in the domain `domid` (created, empty).
    pub fn start_created(&mut self, domid: u16, extra: &str) -> Result<u16, BuildError> {
        // The handle it was created with, or (none given) one for /vm.
        let handle = hv::getdomaininfo(domid).map(|i| i.handle).unwrap_or_default();
        let uuid = if handle == [0; 16] { crate::spec::uuid_from_seed(shared::now_ns().unwrap_or(0) ^ u64::from(domid)) } else { handle };
        self.start_created_spec(domid, GuestSpec::demo(extra), uuid)
    }

    /// Build and start a guest from `spec` in the domain `domid` (created,
    /// empty); on failure the domain is destroyed.
    fn start_created_spec(&mut self, domid: u16, spec: GuestSpec, uuid: [u8; 16]) -> Result<u16, BuildError> {
        let Some(i) = self.slots.iter().position(Option::is_none) else {
            hv::domctl_simple(hv::DESTROYDOMAIN, domid);
            return Err(BuildError("find a free guest slot", 0));
        };
        let image = match self.kernel(&spec.kernel) {
            Ok(image) => image,
            Err(e) => {
                hv::domctl_simple(hv::DESTROYDOMAIN, domid);
                return Err(e);
            }
        };
        let ramdisk = match spec.ramdisk.as_deref().map(|r| self.kernel(r)).transpose() {
            Ok(r) => r.unwrap_or(&[]),
            Err(_) => {
                hv::domctl_simple(hv::DESTROYDOMAIN, domid);
                return Err(BuildError("find the ramdisk file", -xen_public::errno::ENOENT));
            }
        };
        let src = builder::Sources { image, ramdisk, nr_pages: spec.pages, extra: &spec.cmdline };
        let built = builder::build_created_paused_from(domid, &mut self.build, &mut self.p2m, self.stage.as_mut(), &src)?;
        // libxl__build_pre: the hypervisor's limit is the target plus
        // LIBXL_MAXMEM_CONSTANT; `memory/static-max` says how far mem-set
        // may raise it.
        let rc = hv::max_mem(domid, spec.pages * 4 + LIBXL_MAXMEM_CONSTANT_KIB);
        if rc != 0 {
            hv::domctl_simple(hv::DESTROYDOMAIN, domid);
            return Err(BuildError("max_mem", rc));
        }
        // libxl__arch_domain_create: the xl.cfg `tsc_mode`, always set.
        let rc = hv::set_tsc_mode(domid, spec.tsc_mode);
        if rc != 0 {
            hv::domctl_simple(hv::DESTROYDOMAIN, domid);
            return Err(BuildError("settscinfo (tsc_mode)", rc));
        }
        let ring_va = match self.consoles.map_at(i, built.domid, built.console_mfn) {
            Ok(va) => va,
            Err(e) => {
                hv::domctl_simple(hv::DESTROYDOMAIN, built.domid);
                return Err(e);
            }
        };
        let port = match events::bind_interdomain(built.domid, built.console_port) {
            Ok(p) => p,
            Err(rc) => {
                self.consoles.unmap_at(i);
                hv::domctl_simple(hv::DESTROYDOMAIN, built.domid);
                return Err(BuildError("bind the console channel", rc));
            }
        };
        let name = if spec.name.is_empty() { self.unused_name(&format!("guest{}", built.domid)) } else { spec.name.clone() };
        let started_ns = shared::now_ns().unwrap_or(0);
        self.slots[i] = Some(Guest {
            domid: built.domid,
            port,
            ring_va,
            line: [0; 200],
            len: 0,
            spec,
            name,
            log: VecDeque::new(),
            preserved: false,
            more: false,
            period_end: 0,
            period_bytes: 0,
            throttled: false,
            started_ns,
            uuid,
        });
        let attached = self.connect_store(i, &built).and_then(|()| self.attach_disks(i, built.domid)).and_then(|()| self.attach_vifs(i, built.domid));
        if let Err(e) = attached.and_then(|()| builder::unpause(built.domid)) {
            self.destroy(built.domid);
            return Err(e);
        }
        Ok(built.domid)
    }

    /// Attach the disks of slot `i`'s config (`disk = [...]`), as libxl
    /// adds devices before it unpauses the domain. An empty cdrom drive
    /// has nothing to attach.
    fn attach_disks(&mut self, i: usize, domid: u16) -> Result<(), BuildError> {
        let disks = self.slots[i].as_ref().and_then(|g| g.spec.config.as_ref()).map(|c| c.disks.clone()).unwrap_or_default();
        for d in &disks {
            let Some(target) = &d.target else { continue };
            if let Err(e) = self.block_attach(domid, d, target) {
                println!("libxl: error: {e}");
                return Err(BuildError("attach a disk", -xen_public::errno::EBUSY));
            }
        }
        Ok(())
    }

    /// Attach the vifs of slot `i`'s config (`vif = [...]`), as libxl
    /// does before it unpauses the domain.
    fn attach_vifs(&mut self, i: usize, domid: u16) -> Result<(), BuildError> {
        let vifs = self.slots[i].as_ref().and_then(|g| g.spec.config.as_ref()).map(|c| c.vifs.clone()).unwrap_or_default();
        for v in &vifs {
            if let Err(e) = self.network_attach(domid, v) {
                println!("libxl: error: {e}");
                return Err(BuildError("attach a vif", -xen_public::errno::EBUSY));
            }
        }
        Ok(())
    }

    /// `xl network-attach`: attach `vif` to `domid` (a MAC made up in
    /// Xen's OUI where it names none).
    pub fn network_attach(&mut self, domid: u16, vif: &crate::xlcfg::VifSpec) -> Result<(), String> {
        if self.slot_of(domid).is_none() {
            return Err(format!("domain {domid} is not a guest of this dom0"));
        }
        let seed = shared::now_ns().unwrap_or(0) ^ (u64::from(domid) << 24) ^ u64::from(vif.devid);
        let nodes = crate::vifcfg::VifNodes::from_spec(domid, vif, crate::vifcfg::made_up_mac(seed));
        self.vifs.attach(&mut self.store.xs, nodes)
    }

    /// `xl network-detach`: whether `domid` had the device (devid or MAC).
    pub fn network_detach(&mut self, domid: u16, dev: &str, force: bool) -> bool {
        let Some(devid) = self.vifs.find_dev(domid, dev) else { return false };
        self.vifs.detach(&mut self.store.xs, domid, devid, force)
    }

    /// Whether `domid` still has vif `dev`.
    pub fn has_vif(&self, domid: u16, dev: &str) -> bool {
        self.vifs.find_dev(domid, dev).is_some()
    }

    /// `xl network-list`'s rows for `domid`.
    pub fn network_list(&mut self, domid: u16) -> Vec<crate::vif::VifRow> {
        self.vifs.list(&mut self.store.xs, domid)
    }

    /// The next devid free for a vif of `domid` (libxl: one past the
    /// highest in use).
    pub fn next_vif_devid(&self, domid: u16) -> u32 {
        self.vifs.devids(domid).max().map_or(0, |d| d + 1)
    }

    /// Dom0's network: the vifs, the bridge and its uplink.
    pub fn vifs(&mut self) -> &mut Vifs {
        &mut self.vifs
    }

    /// `xl block-attach`: attach `disk` (target `target`) to `domid`.
    pub fn block_attach(&mut self, domid: u16, disk: &crate::xlcfg::DiskSpec, target: &str) -> Result<(), String> {
        // Only a guest dom0 runs: its vbds go when it goes.
        if self.slot_of(domid).is_none() {
            return Err(format!("domain {domid} is not a guest this dom0 runs"));
        }
        let devid = crate::vbdcfg::devid(&disk.vdev).ok_or_else(|| format!("Invalid or unsupported virtual disk identifier {}", disk.vdev))?;
        self.open_ram_disk(target)?;
        let nodes = crate::vbdcfg::VbdNodes {
            domid,
            devid,
            vdev: disk.vdev.clone(),
            target: String::from(target),
            writable: disk.access == crate::xlcfg::DiskAccess::ReadWrite,
            cdrom: disk.devtype == crate::xlcfg::DiskDevtype::Cdrom,
            discard: disk.discard,
        };
        self.vbds.attach(&mut self.store.xs, nodes)
    }

    /// Make `target` servable if it is not yet: a dom0 file becomes a RAM
    /// disk holding a copy of it, and `/dev/vda` without a virtio disk
    /// becomes one from the boot module's `disk.img`, or zeroes.
    fn open_ram_disk(&mut self, target: &str) -> Result<(), String> {
        if self.vbds.has_disk(target) {
            return Ok(());
        }
        let image = if target == DEFAULT_DISK { self.files.get(RAM_DISK_FILE) } else { self.files.get(target) };
        let disk = match image {
            Some(bytes) if bytes.len() > MAX_RAM_DISK => {
                return Err(format!("{target}: {} KiB is more than a RAM disk may hold", bytes.len() / 1024));
            }
            Some(bytes) => RamDisk::from_image(bytes, false),
            None if target == DEFAULT_DISK => RamDisk::zeroed((MAX_RAM_DISK / 512) as u64, false),
            None => return Err(format!("{target}: no such disk or file in dom0")),
        };
        let disk = disk.ok_or_else(|| format!("{target}: dom0 has no memory left for a RAM disk"))?;
        let bytes = disk.bytes().len();
        if self.ram_disk_bytes + bytes > MAX_RAM_DISK {
            return Err(format!("{target}: dom0's RAM disks may hold {} KiB in all", MAX_RAM_DISK / 1024));
        }
        self.ram_disk_bytes += bytes;
        println!("dom0: blkback: {target}: a RAM disk of {} KiB", disk.sectors() / 2);
        self.vbds.add_disk(target, alloc::boxed::Box::new(disk));
        Ok(())
    }

    /// `xl block-detach`: whether `domid` had the device.
    pub fn block_detach(&mut self, domid: u16, vdev: &str, force: bool) -> bool {
        let Some(devid) = self.vbds.find_vdev(domid, vdev) else { return false };
        self.vbds.detach(&mut self.store.xs, domid, devid, force)
    }

    /// `xl block-list`'s rows for `domid`.
    pub fn block_list(&mut self, domid: u16) -> Vec<crate::vbd::VbdRow> {
        self.vbds.list(&mut self.store.xs, domid)
    }

    /// Dom0's block devices and disks.
    pub fn vbds(&mut self) -> &mut Vbds {
        &mut self.vbds
    }

    /// Watch events on dom0's own connection that are not blkback's.
    pub fn take_watch_events(&mut self) -> Vec<(String, String)> {
        self.pump_backends();
        core::mem::take(&mut self.watch_others)
    }

    /// Serve the split-driver backends once, routing dom0's watch events
    /// to the one they are for; whether anything was logged.
    fn pump_backends(&mut self) -> bool {
        let mut logged = self.vbds.pump(&mut self.store.xs);
        let rest = self.vifs.route_events(&mut self.store.xs, self.vbds.take_other_events());
        let room = 256usize.saturating_sub(self.watch_others.len());
        self.watch_others.extend(rest.into_iter().take(room));
        logged |= self.vifs.pump(&mut self.store.xs);
        logged | self.report_netsend()
    }

    /// Start dom0's own TCP send (`netsend`).
    pub fn netsend(&mut self, to: [u8; 4], port: u16, mib: u64) -> Result<(), &'static str> {
        self.vifs.dom0_net().ok_or("dom0 has no address on the bridge")?.start_send(to, port, mib)
    }

    /// Print how dom0's send ended, once: whether it printed.
    fn report_netsend(&mut self) -> bool {
        let Some(end) = self.vifs.dom0_net().and_then(|n| n.take_send_end()) else { return false };
        match end {
            crate::dom0net::SendEnd::Sent { bytes, fnv1a, ms } => {
                println!("dom0: netsend: sent {bytes} bytes fnv1a={fnv1a:08x} in {ms} ms");
                let (mib_s, hundredths) = frontend_drivers::netfront::mib_per_s(bytes, ms.saturating_mul(1000));
                println!("dom0: bench: net_dom0_host_tcp_mib_s {mib_s}.{hundredths:02}");
            }
            crate::dom0net::SendEnd::Failed { why, queued } => println!("dom0: netsend failed: {why} after {queued} bytes"),
        }
        true
    }

    /// Write the new domain's xenstore home as libxl does, map its store
    /// page and connect it to xenstored (introducing it).
    fn connect_store(&mut self, i: usize, built: &builder::Built) -> Result<(), BuildError> {
        let Some(g) = self.slots[i].as_ref() else { return Err(BuildError("find the guest slot", 0)) };
        let (name, memory_kib, max_kib, vcpus) = (g.name.clone(), g.spec.pages * 4, g.spec.max_pages * 4, g.spec.vcpus);
        let uuid = uuid_string(&g.uuid);
        let home = DomainHome {
            domid: built.domid,
            name: &name,
            memory_kib,
            max_kib,
            console_mfn: built.console_mfn,
            console_port: built.console_port,
            store_mfn: built.store_mfn,
            store_port: built.store_port,
            uuid: &uuid,
            start_time: shared::wallclock_seconds().unwrap_or(0),
            vcpus,
        };
        if let Err(e) = client::make_home(&mut self.store.xs, &home) {
            println!("dom0: xenstored: d{}: writing its home failed: {e}", built.domid);
            return Err(BuildError("write the xenstore home", 0));
        }
        let va = self.consoles.map_at(MAX_GUESTS + i, built.domid, built.store_mfn)?;
        if let Err(rc) = self.store.connect(i, built.domid, va, built.store_port) {
            self.consoles.unmap_at(MAX_GUESTS + i);
            return Err(BuildError("bind the xenstore channel", rc));
        }
        Ok(())
    }

    /// xenstored's store (dom0's tools talk to it as connection 0).
    pub fn xenstore(&mut self) -> &mut crate::xenstore::Xenstore {
        &mut self.store.xs
    }

    /// dom0's guests' domain ids.
    pub fn domids(&self) -> Vec<u16> {
        self.slots.iter().flatten().map(|g| g.domid).collect()
    }

    /// Whether `domid` is one of dom0's guests.
    pub fn has(&self, domid: u16) -> bool {
        self.slot_of(domid).is_some()
    }

    /// The slot of guest `domid`.
    fn slot_of(&self, domid: u16) -> Option<usize> {
        self.slots.iter().position(|s| s.as_ref().is_some_and(|g| g.domid == domid))
    }

    /// `base`, or `base-2`, `base-3`... if a guest has that name (a config
    /// may have taken `guest<domid>`).
    fn unused_name(&self, base: &str) -> String {
        let mut name = String::from(base);
        let mut n = 2;
        while self.find(&name).is_some() {
            name = format!("{base}-{n}");
            n += 1;
        }
        name
    }

    /// The guest named `name`, if any.
    pub fn find(&self, name: &str) -> Option<u16> {
        self.slots.iter().flatten().find(|g| g.name == name).map(|g| g.domid)
    }

    /// Guest `domid`'s name.
    pub fn name_of(&self, domid: u16) -> Option<&str> {
        self.slot_of(domid).and_then(|i| self.slots[i].as_ref()).map(|g| g.name.as_str())
    }

    /// Guest `domid`'s spec.
    pub fn spec_of(&self, domid: u16) -> Option<&GuestSpec> {
        self.slot_of(domid).and_then(|i| self.slots[i].as_ref()).map(|g| &g.spec)
    }

    /// Record a new memory target or maximum (`xl mem-set`/`mem-max`) in
    /// guest `domid`'s spec, so that `list -l` and a restart see it, as
    /// libxl's retrieved configuration does.
    pub fn set_memory(&mut self, domid: u16, target_kib: Option<u64>, max_kib: Option<u64>) {
        let Some(g) = self.slot_of(domid).and_then(|i| self.slots[i].as_mut()) else { return };
        if let Some(t) = target_kib {
            g.spec.pages = t / 4;
        }
        if let Some(m) = max_kib {
            g.spec.max_pages = m / 4;
        }
    }

    /// Guest `domid`'s uptime in ns.
    pub fn uptime_ns(&self, domid: u16) -> Option<u64> {
        let g = self.slots[self.slot_of(domid)?].as_ref()?;
        Some(shared::now_ns().unwrap_or(0).saturating_sub(g.started_ns))
    }

    /// Rename guest `domid` (its xenstore `name` too), as `xl rename`:
    /// a name another domain has is refused with EEXIST.
    pub fn rename(&mut self, domid: u16, name: &str) -> Result<(), i64> {
        self.rename_within(domid, name, crate::spec::MAX_NAME)
    }

    /// [`Self::rename`] to a name of at most `max` bytes (rename-restart's
    /// kept name may pass [`crate::spec::MAX_NAME`] by its time suffix).
    /// As `libxl__domain_rename`, `/vm/<uuid>/name` follows.
    fn rename_within(&mut self, domid: u16, name: &str, max: usize) -> Result<(), i64> {
        let i = self.slot_of(domid).ok_or(-xen_public::errno::ESRCH)?;
        if name.len() > max || !crate::spec::valid_name(&name[..name.len().min(crate::spec::MAX_NAME)]) {
            return Err(-xen_public::errno::EINVAL);
        }
        if self.find(name).is_some_and(|d| d != domid) {
            return Err(-xen_public::errno::EEXIST);
        }
        let uuid = self.slots[i].as_ref().map(|g| uuid_string(&g.uuid)).unwrap_or_default();
        let xs = &mut self.store.xs;
        client::write(xs, &format!("/local/domain/{domid}/name"), name.as_bytes()).map_err(|_| -xen_public::errno::EINVAL)?;
        let _ = client::write(xs, &format!("{}/name", client::vm_path(&uuid)), name.as_bytes());
        if let Some(g) = self.slots[i].as_mut() {
            g.name = String::from(name);
        }
        Ok(())
    }

    /// Show guest `domid`'s console: its kept output now, then its lines
    /// unprefixed until [`Self::detach`]. `false` if it is not ours.
    pub fn attach(&mut self, domid: u16) -> bool {
        let Some(g) = self.slot_of(domid).and_then(|i| self.slots[i].as_mut()) else { return false };
        let _ = relay(g, &mut |_, _| {}, false);
        let (a, b) = g.log.as_slices();
        let _ = pv_guest_kernel::console::Console.write_str(&String::from_utf8_lossy(a));
        let _ = pv_guest_kernel::console::Console.write_str(&String::from_utf8_lossy(b));
        self.attached = Some(domid);
        true
    }

    /// Stop showing a guest's console.
    pub fn detach(&mut self) {
        self.attached = None;
    }

    /// The guest whose console is shown, if it still exists.
    pub fn attached(&self) -> Option<u16> {
        self.attached.filter(|&d| self.has(d))
    }

    /// Put `bytes` on guest `domid`'s console input ring (what fits) and
    /// notify it; how many went in.
    pub fn send_input(&mut self, domid: u16, bytes: &[u8]) -> usize {
        let Some(g) = self.slot_of(domid).and_then(|i| self.slots[i].as_ref()) else { return 0 };
        let n = ring::IN_RING.produce(&mut RingPage(g.ring_va), bytes);
        events::send(g.port);
        n
    }

    /// Release guest slot `i`'s xenstore connection and home.
    fn disconnect_store(&mut self, i: usize) {
        if self.store.disconnect(i) {
            self.consoles.unmap_at(MAX_GUESTS + i);
        }
    }

    /// Relay every guest's pending console output; whether any line was
    /// printed.
    pub fn pump(&mut self) -> bool {
        self.pump_lines(&mut |_, _| {})
    }

    /// [`Self::pump`], also handing each line to `f` with its domain.
    pub fn pump_lines(&mut self, f: &mut dyn FnMut(u16, &str)) -> bool {
        let mut printed = self.store.pump();
        printed |= self.pump_backends();
        let attached = self.attached;
        for g in self.slots.iter_mut().flatten() {
            printed |= relay(g, f, attached == Some(g.domid));
        }
        printed
    }

    /// The machine frame of `pfn` in the initial region of the domain
    /// built last.
    pub fn last_p2m(&self, pfn: u64) -> Option<u64> {
        self.p2m.get(pfn as usize).copied()
    }

    /// Destroy guest `domid` (running or not); `false` if it is not ours.
    pub fn destroy(&mut self, domid: u16) -> bool {
        let Some(i) = self.slot_of(domid) else { return false };
        self.vbds.frontend_died(&mut self.store.xs, domid);
        self.vifs.frontend_died(&mut self.store.xs, domid);
        self.disconnect_store(i);
        if let Some(mut g) = self.slots[i].take() {
            client::remove_home(&mut self.store.xs, domid, &uuid_string(&g.uuid));
            let _ = relay(&mut g, &mut |_, _| {}, self.attached == Some(domid));
            events::close(g.port);
            self.consoles.unmap_at(i);
            let rc = hv::domctl_simple(hv::DESTROYDOMAIN, domid);
            if rc != 0 {
                println!("dom0: destroying d{domid} failed: {rc}");
            }
        }
        true
    }

    /// Destroy guest `domid` while dom0 still maps its console page;
    /// returns a token that [`Self::release_console`] takes to unmap it.
    pub fn destroy_keeping_console(&mut self, domid: u16) -> Option<usize> {
        let i = self.slot_of(domid)?;
        self.vbds.frontend_died(&mut self.store.xs, domid);
        self.vifs.frontend_died(&mut self.store.xs, domid);
        self.disconnect_store(i);
        let g = self.slots[i].take()?;
        client::remove_home(&mut self.store.xs, domid, &uuid_string(&g.uuid));
        events::close(g.port);
        let rc = hv::domctl_simple(hv::DESTROYDOMAIN, domid);
        (rc == 0).then_some(i)
    }

    /// Unmap a console page kept by [`Self::destroy_keeping_console`].
    pub fn release_console(&mut self, token: usize) {
        self.consoles.unmap_at(token);
    }

    /// Carry out the shutdown actions of guests that shut down, and the
    /// restarts that are due, reporting each on the console; returns how
    /// many lines were printed.
    pub fn reap(&mut self) -> usize {
        let done = self.reap_quietly();
        for r in &done {
            println!("{}", reaped_line(r));
        }
        done.len()
    }

    /// [`Self::reap`] without printing: what happened.
    pub fn reap_quietly(&mut self) -> Vec<Reaped> {
        let mut done = self.restart_due();
        for i in 0..MAX_GUESTS {
            let Some(g) = self.slots[i].as_ref().filter(|g| !g.preserved) else { continue };
            let domid = g.domid;
            let Ok((flags, _, _)) = hv::domain_info(domid) else { continue };
            if flags & xen_public::XEN_DOMINF_SHUTDOWN == 0 {
                continue;
            }
            let reason = (flags >> xen_public::XEN_DOMINF_SHUTDOWNSHIFT) & 0xff;
            done.push(self.act_on_shutdown(i, reason));
        }
        done
    }

    /// Start the restarts whose delay has passed.
    fn restart_due(&mut self) -> Vec<Reaped> {
        let now = shared::now_ns().unwrap_or(0);
        let mut done = Vec::new();
        while let Some(k) = self.restarts.iter().position(|r| r.due_ns <= now) {
            let r = self.restarts.swap_remove(k);
            let started = self.start_spec(r.spec);
            done.push(Reaped { domid: r.old, reason: r.reason, action: Action::Restart, outcome: Outcome::Restarted(started) });
        }
        done
    }

    /// When dom0 must look again without an event (system time): the next
    /// delayed restart, or the end of a throttled console's rate period.
    pub fn next_wake_ns(&self) -> Option<u64> {
        let throttled = self.slots.iter().flatten().filter(|g| g.throttled).map(|g| g.period_end);
        self.restarts.iter().map(|r| r.due_ns).chain(throttled).chain(self.vifs.next_wake_ns()).min()
    }

    /// Whether guest `domid` is kept shut down (preserve, suspend,
    /// rename-restart's old domain): its shutdown was handled.
    pub fn is_preserved(&self, domid: u16) -> bool {
        self.slot_of(domid).and_then(|i| self.slots[i].as_ref()).is_some_and(|g| g.preserved)
    }

    /// Whether domain `old`'s restart is still to come.
    pub fn restart_pending(&self, old: u16) -> bool {
        self.restarts.iter().any(|r| r.old == old)
    }

    /// Carry out the shutdown action of the guest in slot `i`. A restart
    /// comes [`RESTART_DELAY_NS`] later, as xl sleeps before it, so a guest
    /// that reboots at once cannot keep dom0 rebuilding it.
    fn act_on_shutdown(&mut self, i: usize, reason: u32) -> Reaped {
        let Some(g) = self.slots[i].as_mut() else { return Reaped { domid: 0, reason, action: Action::Destroy, outcome: Outcome::Destroyed } };
        let (domid, action) = (g.domid, g.spec.action(reason));
        let mut spec = g.spec.clone();
        // xl restarts under the domain's current name (reload_domain_config).
        if !spec.name.is_empty() {
            spec.name = g.name.clone();
        }
        let later = |spec| Restart { old: domid, reason, due_ns: shared::now_ns().unwrap_or(0) + RESTART_DELAY_NS, spec };
        let outcome = match action {
            Action::Preserve => {
                g.preserved = true;
                Outcome::Preserved
            }
            Action::Destroy | Action::CoredumpDestroy => {
                self.destroy(domid);
                Outcome::Destroyed
            }
            Action::Restart | Action::CoredumpRestart | Action::SoftReset => {
                self.destroy(domid);
                self.restarts.push(later(spec));
                Outcome::RestartLater
            }
            Action::RenameRestart => {
                g.preserved = true;
                let now = shared::wallclock_seconds().unwrap_or(0);
                let kept = format!("{}{}", g.name, crate::spec::preserve_suffix(now));
                // As xl's preserve_domain: no rename, no restart.
                match self.rename_within(domid, &kept, crate::spec::MAX_NAME + 16) {
                    Ok(()) => {
                        self.restarts.push(later(spec));
                        Outcome::Kept(kept)
                    }
                    Err(rc) => Outcome::NotKept(rc),
                }
            }
        };
        Reaped { domid, reason, action, outcome }
    }

    /// Whether the last pump left work (console output past
    /// [`RELAY_BYTES`], xenstore requests past a pump's share): pump again
    /// without blocking.
    pub fn busy(&self) -> bool {
        self.store.has_more() || self.vbds.busy() || self.vifs.busy() || self.slots.iter().flatten().any(|g| g.more)
    }

    /// Wait up to `ns` for console output or a domain exception.
    pub fn wait(&self, ns: u64) {
        self.wait_for(&[], shared::now_ns().unwrap_or(0) + ns);
    }

    /// Block until console output, xenstore traffic, a domain exception or
    /// an event on one of `extra` (or until system time `deadline`; 0:
    /// none), then clear them all.
    pub fn wait_for(&self, extra: &[u32], deadline: u64) {
        let mut ports = [0u32; 2 * MAX_GUESTS + crate::vbd::MAX_VBDS + crate::vif::MAX_VIFS + 4];
        let mut n = 0;
        let consoles = self.slots.iter().flatten().map(|g| g.port);
        let all = consoles
            .chain(self.store.ports())
            .chain(self.vbds.ports())
            .chain(self.vifs.ports())
            .chain((self.dom_exc != 0).then_some(self.dom_exc))
            .chain(extra.iter().copied());
        for p in all.take(ports.len()) {
            ports[n] = p;
            n += 1;
        }
        events::poll(&ports[..n], deadline);
        for &p in &ports[..n] {
            events::clear_pending(p);
        }
    }
}

/// The console line [`Guests::reap`] prints for `r`.
pub fn reaped_line(r: &Reaped) -> String {
    let d = r.domid;
    let why = reason_name(r.reason);
    let dump = if matches!(r.action, Action::CoredumpDestroy | Action::CoredumpRestart) { "; no core dump (dom0 has no dump directory)" } else { "" };
    match &r.outcome {
        Outcome::Destroyed => format!("dom0: d{d} shut down ({why}){dump}; destroyed"),
        Outcome::Preserved => format!("dom0: d{d} shut down ({why}); preserved"),
        Outcome::RestartLater => format!("dom0: d{d} shut down ({why}){dump}; destroyed, restarting in 2 s"),
        Outcome::Kept(name) => format!("dom0: d{d} shut down ({why}); kept as {name}, restarting in 2 s"),
        Outcome::NotKept(rc) => format!("dom0: d{d} shut down ({why}); could not be renamed ({}), so not restarted", xen_public::errno::name(*rc)),
        Outcome::Restarted(Ok(new)) => format!("dom0: d{d} restarted as d{new}"),
        Outcome::Restarted(Err(e)) => format!("dom0: d{d} restart failed at {}: {} ({})", e.0, e.1, xen_public::errno::name(e.1)),
    }
}

/// A UUID as libxl spells it.
fn uuid_string(u: &[u8; 16]) -> String {
    let mut s = String::new();
    let _ = crate::xlfmt::uuid(&mut s, u);
    s
}

/// Keep `bytes` at the end of a guest's console log.
fn log_append(log: &mut VecDeque<u8>, bytes: &[u8]) {
    log.extend(bytes);
    let over = log.len().saturating_sub(LOG_BYTES);
    log.drain(..over);
}

/// Move a guest's console output to dom0's console, a line at a time
/// (unprefixed when `attached`, `(dN) ` first otherwise), handing each
/// line to `f` too and keeping it in the guest's log; whether a line was
/// printed.
fn relay(g: &mut Guest, f: &mut dyn FnMut(u16, &str), attached: bool) -> bool {
    let mut printed = false;
    let mut page = RingPage(g.ring_va);
    let mut buf = [0u8; 256];
    let mut relayed = 0;
    g.more = false;
    let now = shared::now_ns().unwrap_or(0);
    if now >= g.period_end {
        g.period_end = now + RATE_PERIOD_NS;
        g.period_bytes = 0;
    }
    g.throttled = false;
    loop {
        let budget = RELAY_BYTES.saturating_sub(relayed).min(RATE_ALLOWANCE.saturating_sub(g.period_bytes));
        if budget == 0 {
            // Output may be left: come back next pump, or after the period.
            g.throttled = g.period_bytes >= RATE_ALLOWANCE;
            g.more = !g.throttled;
            break;
        }
        let n = ring::read_out(&mut page, &mut buf[..budget.min(256)]);
        if n == 0 {
            break;
        }
        relayed += n;
        g.period_bytes += n;
        for &b in &buf[..n] {
            if b == b'\n' || g.len == g.line.len() {
                let text = core::str::from_utf8(&g.line[..g.len]).unwrap_or("<not utf-8>");
                if attached {
                    // `xl console` is raw, as xenconsole is.
                    println!("{text}");
                } else {
                    // A guest's line under its prefix cannot move the
                    // cursor, clear the screen or fake dom0's lines.
                    println!("(d{}) {}", g.domid, crate::xenstore::client::sanitise_value(text.as_bytes()));
                }
                f(g.domid, text);
                log_append(&mut g.log, &g.line[..g.len]);
                log_append(&mut g.log, b"\n");
                g.len = 0;
                printed = true;
            }
            if b != b'\n' && b != b'\r' {
                g.line[g.len] = b;
                g.len += 1;
            }
        }
        events::send(g.port);
    }
    printed
}

/// EVTCHNOP_bind_virq on vCPU 0.
pub fn bind_virq(virq: u32) -> Result<u32, i64> {
    let mut a = xen_public::event_channel::EvtchnBindVirq { virq, vcpu: 0, port: 0 };
    let rc = events::op(&mut a);
    if rc != 0 { Err(rc) } else { Ok(a.port) }
}
