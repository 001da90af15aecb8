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

use pv_guest_kernel::xenbus::{ETIMEDOUT, XBT_NIL, live};
use pv_guest_kernel::{StartInfo, hypercall, println};
use xen_public::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF, SHUTDOWN_REBOOT};

/// The watch's token.
const TOKEN: &str = "shutdown";

/// Print the failed operation and crash the domain.
fn fail(op: &str, err: i64) -> ! {
    let name = if err == -ETIMEDOUT { "ETIMEDOUT" } else { xen_public::errno::name(err) };
    println!("xenbus: error {op} {name}");
    loop {
        hypercall::shutdown(SHUTDOWN_CRASH);
    }
}

/// The `SHUTDOWN_*` reason of a `control/shutdown` value (Linux's
/// `shutdown_handlers`: poweroff and halt power off, reboot reboots).
fn reason(value: &str) -> Option<u32> {
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
