//! Dom0's interactive console: an `xl`-like shell over `console_io`. While
//! it waits for input it relays the guests' consoles and reaps guests that
//! shut down.

use alloc::string::String;
use core::fmt::Write;
use dom0_tools::guests::Guests;
use dom0_tools::hv;
use dom0_tools::xenstore::{Xenstore, client};
use dom0_tools::xl::{self, Command, DomainRow};
use pv_guest_kernel::console::Console;
use pv_guest_kernel::{StartInfo, hypercall, println, shared};
use xen_public::domctl::XenDomctlGetdomaininfo;

fn prompt() {
    let _ = Console.write_str("xl> ");
}

/// Read what the console has, up to `buf.len()` bytes.
fn read(buf: &mut [u8]) -> usize {
    let n = hypercall::console_read(buf);
    n.clamp(0, buf.len() as i64) as usize
}

/// Call `f` with every domain's getdomaininfo record, in id order, a
/// batch of eight at a time.
fn for_each_domain(mut f: impl FnMut(&XenDomctlGetdomaininfo)) {
    let mut infos = [XenDomctlGetdomaininfo::default(); 8];
    let mut first = 0u16;
    loop {
        let n = hv::domain_infos(first, &mut infos).unwrap_or(0);
        for info in &infos[..n] {
            f(info);
        }
        let Some(last) = infos[..n].last() else { return };
        let Some(next) = last.domain.checked_add(1) else { return };
        if n < infos.len() {
            return;
        }
        first = next;
    }
}

/// A domain's name in the shell's tables: its xenstore `name`.
fn domain_name(id: u16, guests: &mut Option<Guests>) -> String {
    if id == 0 {
        return String::from("Domain-0");
    }
    let name = guests.as_mut().and_then(|g| client::read(g.xenstore(), &alloc::format!("/local/domain/{id}/name")).ok());
    name.and_then(|n| String::from_utf8(n).ok()).unwrap_or_else(|| String::from("guest"))
}

fn list(guests: &mut Option<Guests>) {
    println!("{}", xl::LIST_HEADER);
    for_each_domain(|info| {
        let name = domain_name(info.domain, guests);
        let row = DomainRow {
            name: &name,
            id: info.domain,
            mem_mib: info.tot_pages * 4096 / (1 << 20),
            vcpus: info.nr_online_vcpus,
            flags: info.flags,
            cpu_time_ns: info.cpu_time,
        };
        let mut line = LineBuf::default();
        let _ = xl::list_row(&mut line, &row);
        println!("{}", line.as_str());
    });
}

/// `sched-credit`: set a domain's weight and cap, then show them (or
/// show every domain's).
fn sched_credit(a: xl::SchedCredit, guests: &mut Option<Guests>) {
    if let Some(id) = a.domid.filter(|_| a.weight.is_some() || a.cap.is_some()) {
        let rc = hv::set_sched_credit(id, a.weight.unwrap_or(0), a.cap.unwrap_or(u16::MAX));
        if rc != 0 {
            println!("xl: d{id}: {rc} ({})", xen_public::errno::name(rc));
            return;
        }
    }
    println!("{}", xl::SCHED_CREDIT_HEADER);
    let mut show = |id: u16| match hv::sched_credit(id) {
        Ok((weight, cap)) => {
            let mut line = LineBuf::default();
            let _ = xl::sched_credit_row(&mut line, &domain_name(id, guests), id, weight, cap);
            println!("{}", line.as_str());
        }
        Err(rc) => println!("xl: d{id}: {rc} ({})", xen_public::errno::name(rc)),
    };
    match a.domid {
        Some(id) => show(id),
        None => for_each_domain(|info| show(info.domain)),
    }
}

fn info() {
    let p = match hv::physinfo() {
        Ok(p) => p,
        Err(rc) => {
            println!("xl: physinfo failed: {rc}");
            return;
        }
    };
    let ver = hypercall::xen_version();
    let total = (p.total_pages * 4096) >> 20;
    let free = (p.free_pages * 4096) >> 20;
    println!("xen_major              : {}", ver >> 16);
    println!("xen_minor              : {}", ver & 0xffff);
    println!("nr_cpus                : {}", p.nr_cpus);
    println!("cpu_mhz                : {}", p.cpu_khz / 1000);
    println!("total_memory           : {total}");
    println!("free_memory            : {free}");
}

/// A small line buffer for formatting rows.
struct LineBuf {
    buf: [u8; 160],
    len: usize,
}

impl Default for LineBuf {
    fn default() -> Self {
        LineBuf { buf: [0; 160], len: 0 }
    }
}

impl LineBuf {
    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl Write for LineBuf {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for &b in s.as_bytes() {
            if self.len < self.buf.len() {
                self.buf[self.len] = b;
                self.len += 1;
            }
        }
        Ok(())
    }
}

/// Report a domctl on `id`.
fn domctl_on(cmd: u32, id: u16, done: &str) {
    match hv::domctl_simple(cmd, id) {
        0 => println!("xl: {done} d{id}"),
        rc => println!("xl: d{id}: {rc} ({})", xen_public::errno::name(rc)),
    }
}

/// Run a xenstore command as dom0, printing its error as the
/// xenstore-* tools do.
fn with_store(guests: &mut Option<Guests>, f: impl FnOnce(&mut Xenstore) -> Result<(), String>) {
    match guests.as_mut() {
        Some(g) => {
            if let Err(e) = f(g.xenstore()) {
                println!("xenstore: {e}");
            }
        }
        None => println!("xl: no xenstore (dom0 has no guest image)"),
    }
}

/// `xl shutdown ID` for a PV guest without a shutdown event channel:
/// write `control/shutdown` = `poweroff`; the guest powers itself off and
/// is reaped.
fn shutdown(id: u16, guests: &mut Option<Guests>) {
    let Some(g) = guests.as_mut().filter(|g| g.has(id)) else {
        println!("xl: d{id}: no such guest");
        return;
    };
    match client::write(g.xenstore(), &alloc::format!("/local/domain/{id}/control/shutdown"), b"poweroff") {
        Ok(()) => println!("Shutting down domain {id}"),
        Err(e) => println!("xl: d{id}: writing control/shutdown: {e}"),
    }
}

fn execute(line: &str, guests: &mut Option<Guests>) -> bool {
    match xl::parse(line) {
        Command::Create(args) => match guests.as_mut().map(|g| g.start(args)) {
            Some(Ok(id)) => println!("xl: created d{id}"),
            Some(Err(e)) => println!("xl: create failed at {}: {} ({})", e.0, e.1, xen_public::errno::name(e.1)),
            None => println!("xl: no guest image (boot module) to build from"),
        },
        Command::Destroy(id) => {
            if !guests.as_mut().is_some_and(|g| g.destroy(id)) {
                domctl_on(hv::DESTROYDOMAIN, id, "destroyed");
            } else {
                println!("xl: destroyed d{id}");
            }
        }
        Command::Pause(id) => domctl_on(hv::PAUSEDOMAIN, id, "paused"),
        Command::Unpause(id) => domctl_on(hv::UNPAUSEDOMAIN, id, "unpaused"),
        Command::SchedCredit(a) => sched_credit(a, guests),
        Command::Shutdown(id) => shutdown(id, guests),
        Command::XenstoreLs(p) => with_store(guests, |xs| client::ls(xs, p).map(|lines| lines.iter().for_each(|l| println!("{l}")))),
        Command::XenstoreRead(p) => with_store(guests, |xs| client::read(xs, p).map(|v| println!("{}", client::sanitise_value(&v)))),
        Command::XenstoreWrite(p, v) => with_store(guests, |xs| client::write(xs, p, v.as_bytes())),
        Command::XenstoreRm(p) => with_store(guests, |xs| client::rm(xs, p)),
        Command::Usage(u) => println!("xl: {u}"),
        Command::Nothing => {}
        Command::Help => println!("{}", xl::HELP),
        Command::List => list(guests),
        Command::Info => info(),
        Command::Uptime => println!("up {} s", shared::now_ns().unwrap_or(0) / 1_000_000_000),
        Command::Version => {
            let v = hypercall::xen_version();
            println!("Xen {}.{}", v >> 16, v & 0xffff);
        }
        Command::Poweroff => return false,
        Command::Reboot => loop {
            hypercall::shutdown(xen_public::SHUTDOWN_REBOOT);
        },
        Command::Unknown(c) => println!("xl: unknown command '{c}' (try 'help')"),
    }
    true
}

/// Run the shell until `poweroff`, first starting `guests=N` guests.
pub fn run(si: &StartInfo, mut guests: Option<Guests>) {
    let args = dom0_tools::cmdline::as_str(&si.cmd_line);
    let n: usize = dom0_tools::cmdline::value(args, "guests").and_then(|v| v.parse().ok()).unwrap_or(0);
    for _ in 0..n {
        execute("create", &mut guests);
    }
    println!("dom0: xl shell ready; type 'help'");
    prompt();
    let mut line = [0u8; 256];
    let mut len = 0;
    loop {
        let mut buf = [0u8; 64];
        let n = read(&mut buf);
        if n == 0 {
            match guests.as_mut() {
                Some(g) => {
                    // Guest output ends the prompt's line: start a new one.
                    let printed = g.pump();
                    if g.reap() > 0 || printed {
                        prompt();
                        let _ = Console.write_str(core::str::from_utf8(&line[..len]).unwrap_or(""));
                    }
                    g.wait(10_000_000);
                }
                None => {
                    shared::sleep_ns(10_000_000);
                }
            }
            continue;
        }
        for &c in &buf[..n] {
            match c {
                b'\r' | b'\n' => {
                    let _ = Console.write_str("\n");
                    let text = core::str::from_utf8(&line[..len]).unwrap_or("");
                    if !execute(text, &mut guests) {
                        return;
                    }
                    len = 0;
                    prompt();
                }
                0x08 | 0x7f if len > 0 => {
                    len -= 1;
                    let _ = Console.write_str("\u{8} \u{8}");
                }
                c if len < line.len() && (0x20..0x7f).contains(&c) => {
                    line[len] = c;
                    len += 1;
                    let _ = Console.write_str(core::str::from_utf8(&[c]).unwrap_or(""));
                }
                _ => {}
            }
        }
    }
}
