//! The `xs` mode of the demo guest: the guest half of the xenstore boot
//! test. It reads its `name` and `domid` (relative paths, resolved by
//! xenstored under its home), writes `data/hello`, then watches
//! `control/shutdown` and shuts down with the reason written there, as a
//! Linux guest does for `xl shutdown` / `xl reboot`.
//!
//! The console lines are the contract with dom0's boot test:
//! `xenbus: name=<name> domid=<domid>`, `xenbus: wrote data/hello`,
//! `xenbus: attack <what> -> <errno name>` (each must be refused),
//! `xenbus: shutdown requested: <reason>`, and on any failure
//! `xenbus: error <op> <errno name>` followed by a crash.
//!
//! Also the helpers the other xenstore modes share (`xs_attack.rs`,
//! `xs_steady.rs`, `xs_bench.rs`): error names, command-line numbers, a
//! heartbeat and power-off.

use pv_guest_kernel::xenbus::{ETIMEDOUT, XBT_NIL, live};
use pv_guest_kernel::{StartInfo, hypercall, println};
use xen_public::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF, SHUTDOWN_REBOOT};

/// The watch's token.
const TOKEN: &str = "shutdown";

/// The name of a `-errno` the xenbus client returned (`ETIMEDOUT` is the
/// client's own: xenstored did not answer in time).
pub fn err_name(err: i64) -> &'static str {
    if err == -ETIMEDOUT { "ETIMEDOUT" } else { xen_public::errno::name(err) }
}

/// This domain's command line, up to its NUL.
pub fn cmdline(si: &StartInfo) -> &str {
    let end = si.cmd_line.iter().position(|&b| b == 0).unwrap_or(si.cmd_line.len());
    core::str::from_utf8(&si.cmd_line[..end]).unwrap_or("")
}

/// The number in the `key=N` word of `line`, if any.
pub fn num(line: &str, key: &str) -> Option<u64> {
    line.split_ascii_whitespace().find_map(|w| w.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}

/// Power off, for good.
pub fn poweroff() -> ! {
    loop {
        hypercall::shutdown(SHUTDOWN_POWEROFF);
    }
}

/// Nanoseconds of system time (0 until shared_info is mapped).
pub fn now() -> u64 {
    pv_guest_kernel::shared::now_ns().unwrap_or(0)
}

/// A progress line at least every [`Beat::EVERY_NS`] while a mode works:
/// dom0's scripted boot tests send their next line only after 300 ms of
/// console silence, so a guest that keeps talking holds the script until
/// it is done.
pub struct Beat {
    label: &'static str,
    last: u64,
}

impl Beat {
    /// How often a line is printed.
    pub const EVERY_NS: u64 = 100_000_000;

    /// A heartbeat printing `xenbus: <label>: <n> ops`.
    pub fn new(label: &'static str) -> Beat {
        Beat { label, last: now() }
    }

    /// Print the count if the last line is old enough.
    pub fn tick(&mut self, n: u32) {
        if self.due() {
            println!("xenbus: {}: {n} ops", self.label);
        }
    }

    /// Print `waiting` if the last line is old enough.
    pub fn waiting(&mut self) {
        if self.due() {
            println!("xenbus: {}: waiting", self.label);
        }
    }

    fn due(&mut self) -> bool {
        let t = now();
        let due = t.saturating_sub(self.last) >= Self::EVERY_NS;
        if due {
            self.last = t;
        }
        due
    }
}

/// Print the failed operation and crash the domain.
fn fail(op: &str, err: i64) -> ! {
    let name = err_name(err);
    println!("xenbus: error {op} {name}");
    loop {
        hypercall::shutdown(SHUTDOWN_CRASH);
    }
}

/// The `SHUTDOWN_*` reason of a `control/shutdown` value (Linux's
/// `shutdown_handlers`: poweroff and halt power off, reboot reboots).
pub fn reason(value: &str) -> Option<u32> {
    match value {
        "poweroff" | "halt" => Some(SHUTDOWN_POWEROFF),
        "reboot" => Some(SHUTDOWN_REBOOT),
        _ => None,
    }
}

/// Attack lines: a domU writing dom0's home, writing under another
/// domain's home and reading dom0's nodes must each be refused (EACCES)
/// by xenstored's permissions, over the live ring.
fn attack_other_homes<M: xen_public::io::byte_ring::RingMem, P: pv_guest_kernel::xenbus::Port>(xs: &mut pv_guest_kernel::xenbus::Client<M, P>) {
    let mut buf = [0u8; 64];
    let tries: [(&str, Result<(), i64>); 3] = [
        ("write /local/domain/0/x", xs.write(XBT_NIL, "/local/domain/0/x", b"owned")),
        ("write /local/domain/9/x", xs.write(XBT_NIL, "/local/domain/9/x", b"owned")),
        ("read /local/domain/0/name", xs.read(XBT_NIL, "/local/domain/0/name", &mut buf).map(|_| ())),
    ];
    for (what, r) in tries {
        let verdict = match r {
            Ok(()) => "ALLOWED",
            Err(e) => xen_public::errno::name(e),
        };
        println!("xenbus: attack {what} -> {verdict}");
    }
}

/// Run the mode; never returns.
pub fn run(si: &StartInfo) -> ! {
    let mut xs = live::connect(si).unwrap_or_else(|e| fail("connect", e));
    let mut name = [0u8; 128];
    let name = xs.read_str(XBT_NIL, "name", &mut name).unwrap_or_else(|e| fail("read", e));
    let mut domid = [0u8; 16];
    let domid = xs.read_str(XBT_NIL, "domid", &mut domid).unwrap_or_else(|e| fail("read", e));
    println!("xenbus: name={name} domid={domid}");
    xs.write(XBT_NIL, "data/hello", b"world").unwrap_or_else(|e| fail("write", e));
    println!("xenbus: wrote data/hello");
    attack_other_homes(&mut xs);
    xs.watch("control/shutdown", TOKEN).unwrap_or_else(|e| fail("watch", e));
    let mut ev = [0u8; 256];
    loop {
        match xs.wait_watch_event(Some(TOKEN), &mut ev, u64::MAX / 4) {
            Ok(_) => {}
            Err(e) if e == -ETIMEDOUT => continue,
            Err(e) => fail("watch", e),
        }
        let mut value = [0u8; 32];
        let value = match xs.read_str(XBT_NIL, "control/shutdown", &mut value) {
            Ok(v) => v,
            // Not written yet (the initial firing): keep waiting.
            Err(e) if e == -xen_public::errno::ENOENT => continue,
            Err(e) => fail("read", e),
        };
        let Some(why) = reason(value) else { continue };
        println!("xenbus: shutdown requested: {value}");
        // Acknowledge as Linux does (the toolstack sees the request taken).
        let _ = xs.write(XBT_NIL, "control/shutdown", b"");
        loop {
            hypercall::shutdown(why);
        }
    }
}
