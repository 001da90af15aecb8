//! The `memtarget` mode of the demo guest: a balloon driver following
//! `memory/target`, as Linux's xen-balloon does. It watches the node,
//! and on each change gives pages back or takes them back
//! ([`pv_guest_kernel::balloon::Balloon`]), then prints
//! `balloon: target <kib> KiB: <pages> pages (<moved>)`, the line dom0's
//! boot test follows. It runs until dom0 destroys it.

use pv_guest_kernel::alloc::EarlyAlloc;
use pv_guest_kernel::balloon::Balloon;
use pv_guest_kernel::notes::VIRT_BASE;
use pv_guest_kernel::xenbus::{ETIMEDOUT, XBT_NIL, live};
use pv_guest_kernel::{StartInfo, hypercall, println};

const TOKEN: &str = "target";

/// Run the mode; never returns.
pub fn run(si: &StartInfo) -> ! {
    let mut pages = EarlyAlloc::from_start_info(si.pt_base, si.nr_pt_frames, VIRT_BASE, si.nr_pages);
    let mut balloon = Balloon::new(si, &mut pages, VIRT_BASE);
    let mut xs = match live::connect(si) {
        Ok(xs) => xs,
        Err(e) => {
            println!("balloon: xenbus connect failed: {e}");
            loop {
                hypercall::sched_block();
            }
        }
    };
    if let Err(e) = xs.watch("memory/target", TOKEN) {
        println!("balloon: watch failed: {e}");
    }
    println!("balloon: following memory/target from {} pages", balloon.current);
    let mut ev = [0u8; 128];
    loop {
        match xs.wait_watch_event(Some(TOKEN), &mut ev, u64::MAX / 4) {
            Ok(_) => {}
            Err(e) if e == -ETIMEDOUT => continue,
            Err(e) => {
                println!("balloon: watch broke: {e}");
                loop {
                    hypercall::sched_block();
                }
            }
        }
        let mut buf = [0u8; 24];
        let Some(kib) = xs.read_str(XBT_NIL, "memory/target", &mut buf).ok().and_then(|v| v.parse::<u64>().ok()) else { continue };
        match balloon.follow(kib) {
            Ok(0) => println!("balloon: target {kib} KiB: {} pages", balloon.current),
            Ok(n) if n > 0 => println!("balloon: target {kib} KiB: {} pages (gave back {n})", balloon.current),
            Ok(n) => println!("balloon: target {kib} KiB: {} pages (took back {})", balloon.current, -n),
            Err(e) => println!("balloon: target {kib} KiB: failed at {} pages: {}", balloon.current, e.0),
        }
    }
}
