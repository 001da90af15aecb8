//! Dom0's interactive console: an `xl`-like shell over `console_io`.
//!
//! Dom0 sleeps between events: it blocks in SCHEDOP_poll on VIRQ_CONSOLE
//! (console input), VIRQ_DOM_EXC (a domain shut down), and the event
//! channels of its guests' consoles and xenstore rings, as a Linux dom0
//! sleeps in its kernel. Each wake-up it reads input, relays consoles,
//! serves xenstore and carries out the shutdown actions of guests.
//!
//! Invariant: the shell is in one of two modes: at the prompt (input is
//! edited into a line and run as a command) or attached to one guest's
//! console (input goes to the guest; Ctrl-] returns to the prompt).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use dom0_tools::guests::{GuestSpec, Guests};
use dom0_tools::hv;
use dom0_tools::xenstore::{Xenstore, client};
use dom0_tools::xl::{self, Command, DomSpec};
use dom0_tools::xlfmt::{self, DomainRow};
use pv_guest_kernel::console::Console;
use pv_guest_kernel::{StartInfo, events, hypercall, println, shared};

/// Ctrl-]: leaves `console`, as in xl.
const CTRL_RIGHT_BRACKET: u8 = 0x1d;
/// Ctrl-C: abandons the line being typed (or a `xenstore-watch`).
const CTRL_C: u8 = 0x03;
/// Ctrl-U: erases the line being typed.
const CTRL_U: u8 = 0x15;
/// How long `shutdown -w` and `reboot -w` wait.
const WAIT_SECONDS: u64 = 60;
/// Bytes typed during a wait that are kept for the prompt.
const PENDING_INPUT: usize = 256;

/// The shell's state.
struct Shell {
    guests: Option<Guests>,
    line: [u8; 256],
    len: usize,
    /// dom0's port for VIRQ_CONSOLE (0 if it could not be bound).
    console_port: u32,
    /// The guest whose console input goes to (`console DOM`).
    attached: Option<u16>,
    /// Input typed while a command waited, handled at the prompt next.
    pending: Vec<u8>,
    /// `xl trace`'s mappings and records (`None`: no room for its window).
    tracer: Option<dom0_tools::tbuf::Tracer>,
}

fn prompt() {
    let _ = Console.write_str("xl> ");
}

/// Read what the console has, up to `buf.len()` bytes.
fn read(buf: &mut [u8]) -> usize {
    let n = hypercall::console_read(buf);
    n.clamp(0, buf.len() as i64) as usize
}

/// A domain's name: `Domain-0`, or the name dom0's guest table has for it
/// (empty for a domain that is not dom0's guest, as xl shows a domain
/// without a xenstore `name`).
fn name_in(guests: Option<&Guests>, id: u16) -> String {
    match (id, guests.and_then(|g| g.name_of(id))) {
        (0, _) => String::from("Domain-0"),
        (_, Some(n)) => String::from(n),
        _ => String::new(),
    }
}

/// strerror(3)'s text for the errno names xenstored answers.
fn strerror(name: &str) -> &str {
    match name {
        "ENOENT" => "No such file or directory",
        "EACCES" => "Permission denied",
        "EINVAL" => "Invalid argument",
        "ENOMEM" => "Cannot allocate memory",
        "ENOSPC" => "No space left on device",
        "E2BIG" => "Argument list too long",
        "EEXIST" => "File exists",
        "EAGAIN" => "Resource temporarily unavailable",
        "EBUSY" => "Device or resource busy",
        "EPERM" => "Operation not permitted",
        other => other,
    }
}

/// An errno as the shell prints it.
fn errno(rc: i64) -> String {
    format!("{rc} ({})", xen_public::errno::name(rc))
}

impl Shell {
    /// A domain's name: `Domain-0`, a guest's name, or its xenstore `name`.
    fn domain_name(&mut self, id: u16) -> String {
        name_in(self.guests.as_ref(), id)
    }

    /// The guest table, and a name lookup over it.
    fn split_names(&self) -> (Option<&Guests>, impl FnMut(u16) -> String + '_) {
        let guests = self.guests.as_ref();
        (guests, move |id| name_in(guests, id))
    }

    /// Resolve a domain as xl's `find_domain` does: a number is a domid, a
    /// name is looked up; an unknown name is an error.
    fn find_domain(&self, spec: DomSpec<'_>) -> Result<u16, String> {
        if let Ok(id) = spec.parse::<u16>() {
            return Ok(id);
        }
        if spec == "Domain-0" {
            return Ok(0);
        }
        // libxl_domain_qualifier_to_domid: ERROR_INVAL (-6) for no match.
        self.guests.as_ref().and_then(|g| g.find(spec)).ok_or_else(|| format!("{spec} is an invalid domain identifier (rc=-6)"))
    }

    /// Run `f` on the domain `spec` names, or print why not.
    fn with_domain(&mut self, spec: DomSpec<'_>, f: impl FnOnce(&mut Shell, u16)) {
        match self.find_domain(spec) {
            Ok(id) => f(self, id),
            Err(e) => println!("{e}"),
        }
    }

    /// Run a xenstore command as dom0, printing its error (an errno
    /// name) as `message` words it.
    fn with_store(&mut self, f: impl FnOnce(&mut Xenstore) -> Result<(), String>, message: impl FnOnce(String) -> String) {
        match self.guests.as_mut() {
            Some(g) => {
                if let Err(e) = f(g.xenstore()) {
                    println!("{}", message(e));
                }
            }
            None => println!("xl: no xenstore (dom0 has no boot module)"),
        }
    }

    fn list(&mut self, long: bool, only: Option<u16>) {
        if only.is_some_and(|d| hv::getdomaininfo(d).is_err()) {
            println!("Error: Domain '{}' does not exist.", only.unwrap_or(0));
            return;
        }
        if long {
            let (guests, mut names) = self.split_names();
            crate::xlviews::list_long(guests, &mut names, only);
            return;
        }
        println!("{}", xlfmt::LIST_HEADER);
        for info in crate::xlviews::domains(only) {
            let name = self.domain_name(info.domain);
            let row = DomainRow {
                name: &name,
                id: info.domain,
                mem_mib: info.tot_pages * 4096 / (1 << 20),
                vcpus: info.nr_online_vcpus,
                flags: info.flags,
                cpu_time_ns: info.cpu_time,
            };
            let mut line = String::new();
            let _ = xlfmt::list_row(&mut line, &row);
            println!("{line}");
        }
    }

    /// `sched-credit`: set a domain's weight and cap, then show them (or
    /// show every domain's).
    fn sched_credit(&mut self, a: xl::SchedCredit) {
        if let Some(id) = a.domid.filter(|_| a.weight.is_some() || a.cap.is_some()) {
            let rc = hv::set_sched_credit(id, a.weight.unwrap_or(0), a.cap.unwrap_or(u16::MAX));
            if rc != 0 {
                println!("xl: d{id}: {}", errno(rc));
                return;
            }
        }
        println!("{}", xlfmt::SCHED_CREDIT_HEADER);
        let ids: Vec<u16> = match a.domid {
            Some(id) => alloc::vec![id],
            None => crate::xlviews::domains(None).iter().map(|i| i.domain).collect(),
        };
        for id in ids {
            match hv::sched_credit(id) {
                Ok((weight, cap)) => {
                    let mut line = String::new();
                    let _ = xlfmt::sched_credit_row(&mut line, &self.domain_name(id), id, weight, cap);
                    println!("{line}");
                }
                Err(rc) => println!("xl: d{id}: {}", errno(rc)),
            }
        }
    }

    /// A domctl on `id`: silent when it works, as xl is.
    fn domctl_on(cmd: u32, id: u16) {
        let rc = hv::domctl_simple(cmd, id);
        if rc != 0 {
            println!("xl: d{id}: {}", errno(rc));
        }
    }

    /// `xl shutdown`/`xl reboot DOM`: write `control/shutdown`, as libxl
    /// does for a PV guest; the guest acts on it and is reaped.
    fn ask_guest(&mut self, id: u16, what: &str, wait: bool) {
        let Some(g) = self.guests.as_mut().filter(|g| g.has(id)) else {
            println!("xl: d{id}: no such guest");
            return;
        };
        match client::write(g.xenstore(), &format!("/local/domain/{id}/control/shutdown"), what.as_bytes()) {
            Ok(()) => println!("{} domain {id}", if what == "reboot" { "Rebooting" } else { "Shutting down" }),
            Err(e) => {
                println!("xl: d{id}: writing control/shutdown: {e}");
                return;
            }
        }
        if wait {
            self.wait_gone(id);
        }
    }

    /// `-w`: relay and reap until domain `id` has shut down and its
    /// action is done (destroyed, preserved, or its restart built), at most
    /// [`WAIT_SECONDS`], or Ctrl-C. Prints as xl's `wait_for_domain_deaths`.
    fn wait_gone(&mut self, id: u16) {
        println!("Waiting for 1 domains");
        let deadline = shared::now_ns().unwrap_or(0) + WAIT_SECONDS * 1_000_000_000;
        let mut reason = None;
        // Already shut down and kept (preserve): its shutdown is reported at once.
        if self.guests.as_ref().is_some_and(|g| g.is_preserved(id))
            && let Ok((flags, _, _)) = hv::domain_info(id)
        {
            println!("Domain {id} has been shut down, reason code {}", (flags >> xen_public::XEN_DOMINF_SHUTDOWNSHIFT) & 0xff);
            return;
        }
        loop {
            let Some(g) = self.guests.as_mut() else { return };
            g.pump();
            for r in g.reap_quietly() {
                println!("{}", dom0_tools::guests::reaped_line(&r));
                if r.domid == id && !matches!(r.outcome, dom0_tools::guests::Outcome::Restarted(_)) {
                    reason = Some(r.reason);
                }
            }
            let settled = !g.restart_pending(id) && (!g.has(id) || reason.is_some());
            if let (Some(code), true) = (reason, settled) {
                println!("Domain {id} has been shut down, reason code {code}");
                return;
            }
            if !g.has(id) && reason.is_none() && !g.restart_pending(id) {
                println!("xl: d{id}: no longer a guest of this dom0");
                return;
            }
            if self.interrupted() || shared::now_ns().unwrap_or(0) > deadline {
                println!("xl: d{id}: stopped waiting");
                return;
            }
            self.block_until(deadline);
        }
    }

    /// Whether Ctrl-C was typed; other input is kept for the prompt.
    fn interrupted(&mut self) -> bool {
        let mut buf = [0u8; 64];
        let n = read(&mut buf);
        let stop = buf[..n].contains(&CTRL_C);
        if !stop && self.pending.len() + n <= PENDING_INPUT {
            self.pending.extend_from_slice(&buf[..n]);
        }
        stop
    }

    /// Block until an event or system time `deadline` (0: none), also
    /// waking for due restarts and, without VIRQ_CONSOLE, every 10 ms.
    fn block_until(&self, deadline: u64) {
        if self.guests.as_ref().is_some_and(Guests::busy) {
            return;
        }
        let now = shared::now_ns().unwrap_or(0);
        let poll = (self.console_port == 0).then_some(now + 10_000_000);
        let restart = self.guests.as_ref().and_then(Guests::next_wake_ns);
        let at = [Some(deadline).filter(|&d| d != 0), poll, restart].into_iter().flatten().min().unwrap_or(0);
        let extra = [self.console_port];
        let extra = if self.console_port == 0 { &extra[..0] } else { &extra[..] };
        match self.guests.as_ref() {
            Some(g) => g.wait_for(extra, at),
            None => {
                events::poll(extra, at);
                extra.iter().for_each(|&p| events::clear_pending(p));
            }
        }
    }

    fn destroy(&mut self, id: u16) {
        if id == 0 {
            println!("Not destroying domain 0; use -f to force.");
            return;
        }
        if !self.guests.as_mut().is_some_and(|g| g.destroy(id)) {
            Self::domctl_on(hv::DESTROYDOMAIN, id);
        }
    }

    /// `create`: from a config file when the first word names one (or
    /// ends in `.cfg`), else the demo guest with the words as its
    /// command line.
    fn create(&mut self, console: bool, rest: &str) {
        let Some(g) = self.guests.as_mut() else {
            println!("xl: no guest image (boot module) to build from");
            return;
        };
        let words = match xl::sh_words(rest) {
            Ok(w) => w,
            Err(e) => {
                println!("xl: {e}");
                return;
            }
        };
        let mut words = words.iter().map(String::as_str).filter(|w| *w != "-c");
        let first = words.next().unwrap_or("");
        // A word that names a file, or looks like one, is a config: a
        // mistyped name is an error, not a demo guest.
        let is_config =
            !first.contains('=') && (first.contains(['.', '/']) || (g.files().get(first).is_some() && first != dom0_tools::files::DEMO_KERNEL));
        let spec = if is_config {
            let extras: Vec<&str> = words.collect();
            println!("Parsing config from {first}");
            match dom0_tools::spec::load(g.files(), first, &extras, dom0_tools::builder::MAX_PAGES) {
                Ok((spec, warnings)) => {
                    warnings.iter().for_each(|w| println!("{w}"));
                    spec
                }
                Err(e) => {
                    println!("{e}");
                    return;
                }
            }
        } else {
            let words: Vec<&str> = rest.split_ascii_whitespace().filter(|w| *w != "-c").collect();
            GuestSpec::demo(&words.join(" "))
        };
        match g.start_spec(spec) {
            Ok(id) => {
                println!("xl: created d{id}");
                if console {
                    self.attach(id);
                }
            }
            Err(e) => println!("xl: create failed at {}: {}", e.0, errno(e.1)),
        }
    }

    /// `console DOM`: show its console until Ctrl-].
    fn attach(&mut self, id: u16) {
        if self.guests.as_mut().is_some_and(|g| g.attach(id)) {
            self.attached = Some(id);
        } else {
            println!("xl: d{id}: no console here (not a guest of this dom0)");
        }
    }

    /// Leave `console` for the prompt.
    fn detach(&mut self) {
        if let Some(g) = self.guests.as_mut() {
            g.detach();
        }
        self.attached = None;
        println!();
        prompt();
    }

    /// `mem-set` (target) or `mem-max` (maximum) of guest `id`, as libxl's
    /// `libxl_set_memory_target` (with enforce, as xl calls it) and
    /// `libxl_domain_setmaxmem` check and apply them.
    fn memory(&mut self, id: u16, mem: &str, max: bool) {
        use dom0_tools::guests::LIBXL_MAXMEM_CONSTANT_KIB;
        let Some(kib) = xl::parse_mem_size_kb(mem).filter(|k| k.checked_add(LIBXL_MAXMEM_CONSTANT_KIB).is_some()) else {
            println!("invalid memory size: {mem}");
            return;
        };
        let Some(g) = self.guests.as_mut().filter(|g| g.has(id)) else {
            println!("xl: d{id}: not a guest of this dom0 (dom0 has no balloon driver)");
            return;
        };
        let xs = g.xenstore();
        let node = |leaf: &str| format!("/local/domain/{id}/memory/{leaf}");
        let read_kib =
            |xs: &mut Xenstore, leaf: &str| client::read(xs, &node(leaf)).ok().and_then(|v| core::str::from_utf8(&v).ok()?.parse::<u64>().ok());
        let (Some(target), Some(static_max)) = (read_kib(xs, "target"), read_kib(xs, "static-max")) else {
            println!("xl: d{id}: cannot get memory info from {}", node(""));
            return;
        };
        let (leaf, limit) = if max {
            if kib < target {
                println!("memory_static_max must be greater than or equal to memory_dynamic_max");
                println!("cannot set domid {id} static max memory to : {mem}");
                return;
            }
            ("static-max", kib + LIBXL_MAXMEM_CONSTANT_KIB)
        } else {
            if kib > static_max {
                println!("memory_dynamic_max must be less than or equal to memory_static_max");
                println!("cannot set domid {id} dynamic max memory to : {mem}");
                return;
            }
            ("target", kib + LIBXL_MAXMEM_CONSTANT_KIB)
        };
        let rc = hv::max_mem(id, limit);
        if rc != 0 {
            println!("xl: d{id}: xc_domain_setmaxmem memkb={limit} failed: {}", errno(rc));
            return;
        }
        if client::write(xs, &node(leaf), format!("{kib}").as_bytes()).is_err() {
            println!("xl: d{id}: cannot write {}", node(leaf));
            return;
        }
        g.set_memory(id, (!max).then_some(kib), max.then_some(kib));
    }

    fn domid(&self, name: &str) {
        match self.find_domain(name).ok().filter(|_| name.parse::<u16>().is_err()) {
            Some(id) => println!("{id}"),
            None => println!("Can't get domid of domain name '{name}', maybe this domain does not exist."),
        }
    }

    /// `xl domname`: the argument read as xl's strtol does.
    fn domname(&mut self, arg: &str) {
        let Some(id) = xlfmt::domname_arg(arg) else {
            let _ = Console.write_str(xlfmt::DOMNAME_INVALID_ID);
            return;
        };
        let known = u16::try_from(id).ok().filter(|&d| hv::getdomaininfo(d).is_ok());
        let mut out = String::new();
        let _ = match known {
            Some(d) => xlfmt::domname_output(&mut out, &self.domain_name(d)),
            None => xlfmt::domname_not_found(&mut out, id),
        };
        let _ = Console.write_str(&out);
    }

    fn rename(&mut self, id: u16, new: &str) {
        let r = match self.guests.as_mut() {
            Some(g) if g.has(id) => g.rename(id, new),
            _ => Err(-xen_public::errno::ESRCH),
        };
        if let Err(rc) = r {
            // xl_misc.c main_rename; libxl logs why.
            println!("libxl: error: renaming domain {id} to {new}: {}", errno(rc));
            println!("Can't rename domain '{}'.", self.domain_name(id));
        }
    }

    /// `xenstore-watch -n COUNT PATH`: print each event's path until COUNT
    /// have fired, or Ctrl-C.
    fn xenstore_watch(&mut self, count: u32, path: &str) {
        const TOKEN: &str = "xl-watch";
        let Some(g) = self.guests.as_mut() else {
            println!("xl: no xenstore (dom0 has no boot module)");
            return;
        };
        let _ = g.take_watch_events();
        if client::watch(g.xenstore(), path, TOKEN).is_err() {
            // xenstore-watch: errx(1, "Unable to add watch on %s\n", w).
            println!("xenstore-watch: Unable to add watch on {path}\n");
            return;
        }
        let mut seen = 0;
        while seen < count {
            let Some(g) = self.guests.as_mut() else { return };
            for (p, token) in g.take_watch_events() {
                if token == TOKEN && seen < count {
                    println!("{p}");
                    seen += 1;
                }
            }
            if seen >= count {
                break;
            }
            g.pump();
            g.reap();
            if self.interrupted() {
                break;
            }
            self.block_until(0);
        }
        if let Some(g) = self.guests.as_mut() {
            let _ = client::unwatch(g.xenstore(), path, TOKEN);
            let _ = g.take_watch_events();
        }
    }

    /// `block-attach DOM DISKSPEC`: xl's messages on a bad domain or spec
    /// (`parse_disk_config_multistring` joins the words with commas).
    fn block_attach(&mut self, dom: &str, spec: &str) {
        let Ok(id) = self.find_domain(dom) else {
            println!("{dom} is an invalid domain identifier");
            return;
        };
        let joined = spec.split_ascii_whitespace().collect::<Vec<_>>().join(",");
        let disk = match dom0_tools::xlcfg::parse_disk(&joined) {
            Ok(d) => d,
            Err(e) => {
                println!("xl: error with disk configuration: {e}");
                return;
            }
        };
        let Some(g) = self.guests.as_mut() else { return };
        let result = match &disk.target {
            Some(target) => g.block_attach(id, &disk, target),
            None => Err(String::from("an empty drive has nothing to attach")),
        };
        if let Err(e) = result {
            println!("libxl: error: {e}");
            println!("libxl_device_disk_add failed.");
        }
    }

    /// `block-detach [-f] DOM VDEV`: as libxl's safe_remove, wait up to
    /// 10 s for the frontend to let go, then remove it anyway.
    fn block_detach(&mut self, id: u16, vdev: &str, force: bool) {
        let Some(g) = self.guests.as_mut() else { return };
        if !g.block_detach(id, vdev, force) {
            println!("Error: Device {vdev} not connected.");
            return;
        }
        self.wait_for_removal(
            vdev,
            |g| g.vbds().find_vdev(id, vdev).is_some(),
            |g| {
                g.block_detach(id, vdev, true);
            },
        );
    }

    /// After a detach: pump until the device is gone (`present` says it is
    /// not), at most 10 s, then remove it anyway with `force` (libxl's
    /// safe remove and its timeout).
    fn wait_for_removal(&mut self, what: &str, present: impl Fn(&mut Guests) -> bool, force: impl FnOnce(&mut Guests)) {
        let deadline = shared::now_ns().unwrap_or(0) + 10_000_000_000;
        loop {
            let Some(g) = self.guests.as_mut() else { return };
            g.pump();
            if !present(g) {
                return;
            }
            if shared::now_ns().unwrap_or(u64::MAX) >= deadline {
                println!("libxl: error: the frontend of {what} did not close in 10 s; removing it");
                force(g);
                return;
            }
            self.block_until(deadline);
        }
    }

    /// `block-list DOM...`: xl's table.
    fn block_list(&mut self, doms: &str) {
        println!("{}", dom0_tools::xlfmt::block_list_header());
        for dom in doms.split_ascii_whitespace() {
            let Ok(id) = self.find_domain(dom) else {
                println!("{dom} is an invalid domain identifier");
                continue;
            };
            let Some(g) = self.guests.as_mut() else { return };
            for r in g.block_list(id) {
                println!("{}", dom0_tools::xlfmt::block_list_row(r.devid, r.backend_id, id, r.state, r.evtchn, r.ring_ref, &r.be_path));
            }
        }
    }

    /// `network-attach DOM [OPTION]...`: each word one vif option, as
    /// xl's `parse_nic_config`; the devid is the next free one.
    fn network_attach(&mut self, dom: &str, spec: &str) {
        let Ok(id) = self.find_domain(dom) else {
            println!("{dom} is an invalid domain identifier");
            return;
        };
        let Some(g) = self.guests.as_mut() else { return };
        let joined = spec.split_ascii_whitespace().collect::<Vec<_>>().join(",");
        let vif = match dom0_tools::xlcfg::parse_vif(&joined, g.next_vif_devid(id)) {
            Ok(v) => v,
            Err(e) => {
                println!("xl: error with vif configuration: {e}");
                return;
            }
        };
        if let Err(e) = g.network_attach(id, &vif) {
            println!("libxl: error: {e}");
            println!("libxl_device_nic_add failed.");
        }
    }

    /// `netsend IP[:PORT] MIB`: start dom0's own TCP send of the test
    /// pattern; its outcome prints when it ends (the backends' pump).
    fn netsend(&mut self, ip: [u8; 4], port: u16, mib: u64) {
        let Some(g) = self.guests.as_mut() else { return };
        let [a, b, c, d] = ip;
        match g.netsend(ip, port, mib) {
            Ok(()) => println!("netsend: {a}.{b}.{c}.{d}:{port}: {mib} MiB under way"),
            Err(e) => println!("netsend: {e}"),
        }
    }

    /// `network-detach DOM DEVID|MAC`: as libxl's device removal, wait up
    /// to 10 s for the frontend to let go, then remove it anyway.
    fn network_detach(&mut self, id: u16, dev: &str) {
        let Some(g) = self.guests.as_mut() else { return };
        if !g.network_detach(id, dev, false) {
            println!("Unknown device {dev}.");
            return;
        }
        self.wait_for_removal(
            &format!("vif {dev}"),
            |g| g.has_vif(id, dev),
            |g| {
                g.network_detach(id, dev, true);
            },
        );
    }

    /// `network-list DOM...`: xl's table.
    fn network_list(&mut self, doms: &str) {
        println!("{}", dom0_tools::xlfmt::network_list_header());
        for dom in doms.split_ascii_whitespace() {
            let Ok(id) = self.find_domain(dom) else {
                println!("{dom} is an invalid domain identifier");
                continue;
            };
            let Some(g) = self.guests.as_mut() else { return };
            for r in g.network_list(id) {
                println!(
                    "{}",
                    dom0_tools::xlfmt::network_list_row(r.devid, r.backend_id, &r.mac, r.state, r.evtchn, r.tx_ring_ref, r.rx_ring_ref, &r.be_path)
                );
            }
        }
    }

    /// Files: `ls`, `cat`, `echo > FILE`, `rm`.
    fn files(&mut self, cmd: Command<'_>) {
        let Some(g) = self.guests.as_mut() else {
            println!("xl: no files (dom0 has no boot module)");
            return;
        };
        let files = g.files();
        match cmd {
            Command::Ls => files.list().iter().for_each(|(name, size)| println!("{size:>8} {name}")),
            Command::Cat(name) => match files.get(name) {
                Some(data) if !data.starts_with(b"\x7fELF") => {
                    let _ = Console.write_str(&String::from_utf8_lossy(data));
                }
                Some(_) => println!("cat: {name}: a kernel image, not text"),
                None => println!("cat: {name}: No such file or directory"),
            },
            Command::Echo { text, file, append } => {
                if let Err(e) = files.write_line(file, text, !append) {
                    println!("echo: {file}: {e}");
                }
            }
            Command::Rm(name) => {
                if let Err(e) = files.remove(name) {
                    println!("rm: {name}: {e}");
                }
            }
            _ => {}
        }
    }

    /// Run one command line; `false` to leave the shell.
    fn execute(&mut self, line: &str) -> bool {
        match xl::parse(line) {
            Command::Create { console, rest } => self.create(console, rest),
            Command::Destroy(d) => self.with_domain(d, Shell::destroy),
            Command::Pause(d) => self.with_domain(d, |_, id| Self::domctl_on(hv::PAUSEDOMAIN, id)),
            Command::Unpause(d) => self.with_domain(d, |_, id| Self::domctl_on(hv::UNPAUSEDOMAIN, id)),
            Command::Shutdown(d, wait) => self.with_domain(d, |s, id| s.ask_guest(id, "poweroff", wait)),
            Command::RebootDomain(d, wait) => self.with_domain(d, |s, id| s.ask_guest(id, "reboot", wait)),
            Command::Console(d) => self.with_domain(d, Shell::attach),
            Command::MemSet(d, mem) => self.with_domain(d, |s, id| s.memory(id, mem, false)),
            Command::BlockAttach(d, spec) => self.block_attach(d, spec),
            Command::BlockDetach { dom, vdev, force } => self.with_domain(dom, |s, id| s.block_detach(id, vdev, force)),
            Command::BlockList(doms) => self.block_list(doms),
            Command::NetworkAttach(d, spec) => self.network_attach(d, spec),
            Command::NetworkDetach { dom, dev } => self.with_domain(dom, |s, id| s.network_detach(id, dev)),
            Command::NetworkList(doms) => self.network_list(doms),
            Command::NetSend { ip, port, mib } => self.netsend(ip, port, mib),
            Command::MemMax(d, mem) => self.with_domain(d, |s, id| s.memory(id, mem, true)),
            Command::Domid(name) => self.domid(name),
            Command::Domname(id) => self.domname(id),
            Command::Rename(d, new) => self.with_domain(d, |s, id| s.rename(id, new)),
            Command::SchedCredit(a) => self.sched_credit(a),
            // The tools' messages (xenstore_client.c): err() adds strerror.
            Command::XenstoreLs(p) => self.with_store(
                |xs| client::ls(xs, p).map(|lines| lines.iter().for_each(|l| println!("{l}"))),
                |e| format!("xenstore-ls: xs_directory ({p}): {}", strerror(&e)),
            ),
            Command::XenstoreRead(p) => self.with_store(
                |xs| client::read(xs, p).map(|v| println!("{}", client::sanitise_value(&v))),
                |_| format!("xenstore-read: couldn't read path {p}"),
            ),
            Command::XenstoreWrite(p, v) => {
                self.with_store(|xs| client::write(xs, p, v.as_bytes()), |_| format!("xenstore-write: could not write path {p}"))
            }
            Command::XenstoreRm(p) => self.with_store(|xs| client::rm(xs, p), |_| format!("xenstore-rm: could not remove path {p}")),
            Command::XenstoreWatch { count, path } => self.xenstore_watch(count, path),
            c @ (Command::Ls | Command::Cat(_) | Command::Echo { .. } | Command::Rm(_)) => self.files(c),
            Command::Usage(u) => println!("{u}"),
            Command::Nothing => {}
            Command::Help => println!("{}", xl::HELP),
            Command::List { long, dom } => match dom.map(|d| self.find_domain(d)).transpose() {
                Ok(only) => self.list(long, only),
                Err(e) => println!("{e}"),
            },
            Command::VcpuList(dom) => match dom.map(|d| self.find_domain(d)).transpose() {
                Ok(only) => crate::xlviews::vcpu_list(&mut self.split_names().1, only),
                Err(e) => println!("{e}"),
            },
            Command::Top => crate::xlviews::top(&mut self.split_names().1),
            Command::Dmesg { clear } => crate::xlviews::dmesg(clear),
            Command::Info => crate::xlviews::info(),
            Command::Uptime { short, dom } => match dom.map(|d| self.find_domain(d)).transpose() {
                Ok(only) => {
                    let (guests, mut names) = self.split_names();
                    crate::xlviews::uptime(guests, &mut names, short, only);
                }
                Err(e) => println!("{e}"),
            },
            Command::Trace(t) => self.trace(t),
            Command::Version => {
                let v = hypercall::xen_version();
                println!("Xen {}.{}", v >> 16, v & 0xffff);
            }
            Command::Poweroff => return false,
            Command::Unknown(c) => println!("xl: unknown command '{c}' (try 'help')"),
        }
        true
    }

    /// Edit the prompt's line with byte `c`; `false` to leave the shell.
    fn key(&mut self, c: u8) -> bool {
        match c {
            b'\r' | b'\n' => {
                let _ = Console.write_str("\n");
                let line = self.line;
                let text = core::str::from_utf8(&line[..self.len]).unwrap_or("");
                self.len = 0;
                if !self.execute(text) {
                    return false;
                }
                if self.attached.is_none() {
                    prompt();
                }
            }
            0x08 | 0x7f if self.len > 0 => {
                self.len -= 1;
                let _ = Console.write_str("\u{8} \u{8}");
            }
            CTRL_C | CTRL_U => {
                self.len = 0;
                let _ = Console.write_str(if c == CTRL_C { "^C\n" } else { "\n" });
                prompt();
            }
            c if self.len < self.line.len() && (0x20..0x7f).contains(&c) => {
                self.line[self.len] = c;
                self.len += 1;
                let _ = Console.write_str(core::str::from_utf8(&[c]).unwrap_or(""));
            }
            _ => {}
        }
        true
    }

    /// Handle console input; `false` to leave the shell.
    fn input(&mut self, bytes: &[u8]) -> bool {
        for (i, &c) in bytes.iter().enumerate() {
            if let Some(id) = self.attached {
                if c == CTRL_RIGHT_BRACKET {
                    self.detach();
                    continue;
                }
                if let Some(g) = self.guests.as_mut() {
                    g.send_input(id, &bytes[i..i + 1]);
                }
            } else if !self.key(c) {
                return false;
            }
        }
        true
    }

    /// `trace ...`: the hypervisor's trace buffers, as xentrace.
    fn trace(&mut self, t: dom0_tools::xltrace::TraceCmd) {
        use dom0_tools::xltrace::TraceCmd;
        let Some(tr) = self.tracer.as_mut() else {
            println!("xl trace: no room in dom0's address space for the trace buffers");
            return;
        };
        match t {
            TraceCmd::Start { evt_mask, cpu_mask, pages } => {
                tr.start(evt_mask, cpu_mask, pages);
                if tr.enabled() {
                    self.guest_trace("start");
                }
            }
            TraceCmd::Stop => {
                tr.stop();
                self.guest_trace("stop");
            }
            TraceCmd::Dump => tr.dump(),
            TraceCmd::Wait { seconds } => self.trace_wait(seconds),
        }
    }

    /// Tell every guest that offers tracing (`control/feature-trace` is
    /// `1`) to `start` or `stop` recording its own events, through its
    /// `control/trace` node; a guest prints its dump when it stops.
    fn guest_trace(&mut self, what: &str) {
        use dom0_tools::xenstore::{client, tree::domain_path};
        let Some(g) = self.guests.as_mut() else { return };
        let mut told = String::new();
        for domid in g.domids() {
            let home = domain_path(domid);
            if client::read(g.xenstore(), &format!("{home}/control/feature-trace")).is_ok_and(|v| v == b"1")
                && client::write(g.xenstore(), &format!("{home}/control/trace"), what.as_bytes()).is_ok()
            {
                told.push_str(&format!(" d{domid}"));
            }
        }
        if !told.is_empty() {
            println!("xl trace: guest tracing {what}:{told}");
        }
    }

    /// `trace wait SECONDS`: serve the guests and drain the trace buffers
    /// every 10 ms (xentrace's default poll is 100 ms; dom0's buffers are
    /// small) until the time is up or Ctrl-C.
    fn trace_wait(&mut self, seconds: u32) {
        let start = shared::now_ns().unwrap_or(0);
        let deadline = start + u64::from(seconds) * 1_000_000_000;
        let mut copied = 0;
        loop {
            if let Some(g) = self.guests.as_mut() {
                g.pump();
                for r in g.reap_quietly() {
                    println!("{}", dom0_tools::guests::reaped_line(&r));
                }
            }
            if let Some(tr) = self.tracer.as_mut() {
                copied += tr.drain();
            }
            let now = shared::now_ns().unwrap_or(u64::MAX);
            if now >= deadline || self.interrupted() {
                break;
            }
            self.block_until(deadline.min(now + 10_000_000));
        }
        let ms = (shared::now_ns().unwrap_or(start) - start) / 1_000_000;
        println!("xl trace: waited {ms} ms, {copied} bytes of records read");
    }

    /// Relay consoles, serve xenstore and reap; re-show the prompt and the
    /// line being typed if guest output interrupted it.
    fn housekeeping(&mut self) {
        if let Some(tr) = self.tracer.as_mut().filter(|t| t.enabled()) {
            tr.drain();
        }
        let Some(g) = self.guests.as_mut() else { return };
        let printed = g.pump();
        let reaped = g.reap();
        if self.attached.is_some() && g.attached().is_none() {
            // The guest went away: leave its console, as xl console does.
            self.detach();
            return;
        }
        if (reaped > 0 || printed) && self.attached.is_none() {
            prompt();
            let _ = Console.write_str(core::str::from_utf8(&self.line[..self.len]).unwrap_or(""));
        }
    }

    /// Block until something happens: input, a guest's console or
    /// xenstore ring, a domain's shutdown, or a restart coming due; not at
    /// all while the last pump left work.
    fn sleep(&self) {
        self.block_until(0);
    }
}

/// Run the shell until `poweroff`, first starting `guests=N` demo guests.
pub fn run(si: &StartInfo, mut guests: Option<Guests>, disk: Option<dom0_tools::vdisk::VirtioDisk>, tracer: Option<dom0_tools::tbuf::Tracer>) {
    let console_port = dom0_tools::guests::bind_virq(xen_public::VIRQ_CONSOLE).unwrap_or(0);
    if let (Some(g), Some(d)) = (guests.as_mut(), disk) {
        // blkback serves it as /dev/vda.
        g.vbds().add_disk(dom0_tools::guests::DEFAULT_DISK, alloc::boxed::Box::new(d));
    }
    let mut sh = Shell { guests, line: [0; 256], len: 0, console_port, attached: None, pending: Vec::new(), tracer };
    let args = dom0_tools::cmdline::as_str(&si.cmd_line);
    let n: usize = dom0_tools::cmdline::value(args, "guests").and_then(|v| v.parse().ok()).unwrap_or(0);
    for _ in 0..n {
        sh.execute("create");
    }
    println!("dom0: xl shell ready; type 'help'");
    if sh.guests.as_mut().is_some_and(|g| g.files().get("demo.cfg").is_some()) {
        println!("dom0: try 'create demo.cfg -c' (Ctrl-] leaves its console), then 'list'");
    }
    prompt();
    loop {
        if !sh.pending.is_empty() {
            let typed = core::mem::take(&mut sh.pending);
            if !sh.input(&typed) {
                return;
            }
            continue;
        }
        let mut buf = [0u8; 64];
        let n = read(&mut buf);
        if n > 0 {
            if !sh.input(&buf[..n]) {
                return;
            }
            continue;
        }
        sh.housekeeping();
        sh.sleep();
    }
}
