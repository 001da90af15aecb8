//! The leak test of the control plane (`test=lifecycle cycles=N`): N
//! domains created from an xl config, run until they talked to xenstore,
//! and taken down (alternately destroyed, and shut down through
//! `control/shutdown` and reaped; every 40th rebooted, restarted under
//! its `on_reboot = "restart"` and the new domain destroyed). Before and after, it counts what a
//! domain's life could leave behind: free frames, xenstore nodes,
//! connections, watches, transactions and queued events, and dom0's event
//! channels. Every count must end where it started. (Grants: these
//! guests grant nothing and dom0 maps their pages by mfn; xen-core's
//! invariant auditor checks grant and maptrack state in `test=audit`.)

use alloc::format;
use alloc::string::String;
use dom0_tools::guests::Guests;
use dom0_tools::hv;
use dom0_tools::xenstore::client;
use pv_guest_kernel::{events, println, shared};
use xen_public::event_channel::EvtchnStatus;

/// What one domain's life could leak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Snapshot {
    free_pages: u64,
    xs: dom0_tools::xenstore::Totals,
    evtchns: u32,
}

/// dom0's event channels that are not closed (ports 1.. until the
/// hypervisor says a port is past its table).
fn open_evtchns() -> u32 {
    let mut open = 0;
    for port in 1..4096 {
        let mut st = EvtchnStatus { dom: xen_public::DOMID_SELF, port, ..Default::default() };
        if events::op(&mut st) != 0 {
            break;
        }
        open += u32::from(st.status != 0);
    }
    open
}

fn snapshot(guests: &mut Guests) -> Snapshot {
    Snapshot { free_pages: hv::free_pages(), xs: guests.xenstore().totals(), evtchns: open_evtchns() }
}

/// Relay and reap until `done` holds, at most `ms` milliseconds.
fn wait_until(guests: &mut Guests, ms: u64, mut done: impl FnMut(&mut Guests) -> bool) -> bool {
    let deadline = shared::now_ns().unwrap_or(0) + ms * 1_000_000;
    loop {
        guests.pump_lines(&mut |_, _| {});
        let _ = guests.reap_quietly();
        if done(guests) {
            return true;
        }
        if shared::now_ns().unwrap_or(0) > deadline {
            return false;
        }
        guests.wait(5_000_000);
    }
}

/// One life: create from `cycle.cfg`, wait for the guest's write to
/// xenstore, then take it down (`shutdown` on odd cycles).
fn life(guests: &mut Guests, i: u32) -> Result<(), String> {
    let (spec, _) = dom0_tools::spec::load(guests.files(), "web.cfg", &["name=\"cycle\""], dom0_tools::builder::MAX_PAGES)?;
    let id = guests.start_spec(spec).map_err(|e| format!("create: {} {}", e.0, e.1))?;
    let hello = format!("/local/domain/{id}/data/hello");
    if !wait_until(guests, 10_000, |g| client::read(g.xenstore(), &hello).is_ok()) {
        guests.destroy(id);
        return Err(format!("d{id} never wrote data/hello"));
    }
    if i % 40 == 2 {
        // Every 40th: a reboot under on_reboot = "restart" (a new domid
        // after xl's 2 s), and the new domain destroyed.
        client::write(guests.xenstore(), &format!("/local/domain/{id}/control/shutdown"), b"reboot").map_err(|e| format!("reboot: {e}"))?;
        if !wait_until(guests, 10_000, |g| !g.has(id) && g.find("cycle").is_some_and(|new| new != id)) {
            return Err(format!("d{id} did not come back after its reboot"));
        }
        let new = guests.find("cycle").ok_or("the restarted domain vanished")?;
        let hello = format!("/local/domain/{new}/data/hello");
        if !wait_until(guests, 10_000, |g| client::read(g.xenstore(), &hello).is_ok()) {
            guests.destroy(new);
            return Err(format!("restarted d{new} never wrote data/hello"));
        }
        guests.destroy(new);
    } else if i % 2 == 1 {
        client::write(guests.xenstore(), &format!("/local/domain/{id}/control/shutdown"), b"poweroff").map_err(|e| format!("shutdown: {e}"))?;
        if !wait_until(guests, 10_000, |g| !g.has(id)) {
            guests.destroy(id);
            return Err(format!("d{id} did not shut down"));
        }
    } else {
        guests.destroy(id);
    }
    Ok(())
}

/// The free-page count once the hypervisor has finished freeing: Xen 4.17
/// frees a destroyed domain's last frames (its `struct domain`, vCPUs,
/// shared info: 22 frames here) in an RCU callback after
/// XEN_DOMCTL_destroydomain returns. Waits until the count stops moving
/// for 50 ms (at most 2 s).
fn settled_free_pages() -> u64 {
    let deadline = shared::now_ns().unwrap_or(0) + 2_000_000_000;
    let mut last = hv::free_pages();
    loop {
        let _ = shared::sleep_ns(50_000_000);
        let now = hv::free_pages();
        if now == last || shared::now_ns().unwrap_or(0) > deadline {
            return now;
        }
        last = now;
    }
}

/// Run `cycles` lives and compare the counts.
pub fn run(guests: &mut Guests, cycles: u32) {
    // libxl creates /vm with a domain's first /vm/<uuid> and never removes
    // it: count from a store that has it.
    let _ = client::write(guests.xenstore(), "/vm", b"");
    let before = snapshot(guests);
    for i in 0..cycles {
        if let Err(e) = life(guests, i) {
            println!("dom0: lifecycle: cycle {i}: {e}");
            return;
        }
    }
    let mut after = snapshot(guests);
    if after.free_pages != before.free_pages {
        after.free_pages = settled_free_pages();
    }
    let line = |what: &str, a: u64, b: u64| println!("dom0: lifecycle: {what}: {a} before, {b} after{}", if a == b { "" } else { " LEAKED" });
    line("free pages", before.free_pages, after.free_pages);
    line("xenstore nodes", before.xs.nodes as u64, after.xs.nodes as u64);
    line("xenstore connections", before.xs.connections as u64, after.xs.connections as u64);
    line("xenstore watches", before.xs.watches as u64, after.xs.watches as u64);
    line("xenstore transactions", before.xs.transactions as u64, after.xs.transactions as u64);
    line("xenstore queued events", before.xs.events as u64, after.xs.events as u64);
    line("dom0 event channels", before.evtchns.into(), after.evtchns.into());
    if before == after {
        println!("dom0: lifecycle: {cycles} create/destroy cycles left nothing behind");
    }
}
