//! Dom0's audit self-test (`test=audit`, xen-core only): build, run, connect
//! and destroy guests, and ask the hypervisor's invariant auditor
//! (`XEN_SYSCTL_xencore_audit`) after each step whether every frame's
//! owner, type and counts still match its references.
//!
//! Invariant: every step that changes domains is followed by one audit,
//! and the test ends with one summary line.

use dom0_tools::guests::Guests;
use dom0_tools::hv;
use pv_guest_kernel::{println, shared};

/// Audits run and how many found something.
#[derive(Default)]
struct Tally {
    runs: u32,
    dirty: u32,
}

impl Tally {
    /// Audit now; print the result under `label`.
    fn check(&mut self, label: &str) {
        let a = hv::audit();
        self.runs += 1;
        if a.rc == 0 {
            println!("dom0: audit: {label}: clean ({} domains, {} live tables, {} frames)", a.domains, a.tables, a.frames);
        } else {
            self.dirty += 1;
            println!("dom0: audit: {label}: rc {} ({}), {} violations", a.rc, xen_public::errno::name(a.rc), a.violations);
        }
    }
}

/// Let the running guests run for `ms` milliseconds.
fn run_for(guests: &mut Guests, ms: u64) {
    let end = shared::now_ns().unwrap_or(0) + ms * 1_000_000;
    while shared::now_ns().unwrap_or(u64::MAX) < end {
        guests.pump();
        guests.reap();
        guests.wait(5_000_000);
    }
}

/// The test: guests running, guests exchanging grants, a frame orphaned
/// while dom0 maps it, and repeated build/destroy, each audited.
pub fn run(guests: &mut Guests) {
    let mut t = Tally::default();
    t.check("dom0 alone");
    let ids = [guests.start("quiet spin"), guests.start("quiet"), guests.start("quiet spin")];
    t.check("three guests built");
    run_for(guests, 300);
    t.check("three guests ran");
    for id in ids.into_iter().flatten() {
        guests.destroy(id);
    }
    t.check("three guests destroyed");
    crate::domains::pingpong(guests);
    t.check("after a grant ping-pong");
    match guests.start("spin quiet") {
        Ok(id) => {
            run_for(guests, 50);
            if let Some(token) = guests.destroy_keeping_console(id) {
                t.check("destroyed guest's page still mapped by dom0");
                guests.release_console(token);
                t.check("orphaned page released");
            }
        }
        Err(e) => println!("dom0: audit: building failed at {}: {}", e.0, e.1),
    }
    for i in 0..10 {
        match guests.start("quiet exit") {
            Ok(id) => {
                run_for(guests, 10);
                guests.destroy(id);
            }
            Err(e) => println!("dom0: audit: cycle {i}: building failed at {}: {}", e.0, e.1),
        }
    }
    t.check("ten build/destroy cycles");
    println!("dom0: audit: {} audits, {} with violations", t.runs, t.dirty);
    println!("dom0: audit: {}", if t.dirty == 0 { "every audit clean" } else { "VIOLATIONS FOUND" });
}
