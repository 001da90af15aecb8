//! The demo guest's inter-domain exchange: two domUs share a granted page
//! and signal each other over an interdomain event channel that dom0 set up
//! for them (`ping peer=B port=P gref=G` in one, `pong peer=A port=P
//! gref=G` in the other, on their command lines).
//!
//! The page holds two counters: the ping number at offset 0, the pong
//! number at offset 8. Round k: ping writes k and notifies; pong sees k,
//! writes k, notifies back.

use core::sync::atomic::{AtomicU64, Ordering};
use pv_guest_kernel::alloc::EarlyAlloc;
use pv_guest_kernel::{StartInfo, events, grants, hypercall, println, shared};

/// Round trips per run.
const ROUNDS: u64 = 100;
/// Give up on the peer after this long (ns).
const PATIENCE: u64 = 10_000_000_000;

/// The arguments both sides get.
pub struct Args {
    /// The other domain.
    pub peer: u16,
    /// The channel's port in the ping side's table.
    pub port: u32,
    /// The grant reference the ping side grants.
    pub gref: u32,
}

fn counter(page: u64, off: u64) -> &'static AtomicU64 {
    // SAFETY: `page` is a mapped, writable page shared with the peer; the
    // counters are 8-aligned words both sides access atomically.
    unsafe { &*((page + off) as *const AtomicU64) }
}

/// Wait until `cond` holds, polling `port`; `false` on timeout.
fn wait_for(port: u32, cond: impl Fn() -> bool) -> bool {
    let give_up = shared::now_ns().unwrap_or(0) + PATIENCE;
    while !cond() {
        if shared::now_ns().unwrap_or(u64::MAX) > give_up {
            return false;
        }
        events::poll(&[port], shared::now_ns().unwrap_or(0) + 1_000_000);
        events::clear_pending(port);
    }
    true
}

/// The granting side.
pub fn ping(si: &StartInfo, pages: &mut EarlyAlloc, a: &Args) -> Result<(), &'static str> {
    let table_va = pages.alloc_page().ok_or("no page for the grant table")?;
    let page = pages.alloc_page().ok_or("no page to share")?;
    let table = grants::Table::setup(table_va).map_err(|_| "grant table setup failed")?;
    counter(page, 0).store(0, Ordering::SeqCst);
    counter(page, 8).store(0, Ordering::SeqCst);
    table.grant(a.gref, a.peer, pv_guest_kernel::mm::mfn_of(si, page), false);
    for k in 1..=ROUNDS {
        counter(page, 0).store(k, Ordering::SeqCst);
        events::send(a.port);
        if !wait_for(a.port, || counter(page, 8).load(Ordering::SeqCst) == k) {
            return Err("no pong");
        }
    }
    println!("ping: {ROUNDS} round trips with d{} over grant {} and port {}", a.peer, a.gref, a.port);
    // The peer unmaps when done: then the grant can be revoked.
    if !wait_for(a.port, || table.end_access(a.gref)) {
        return Err("grant still mapped");
    }
    println!("ping: grant {} revoked after the peer unmapped it", a.gref);
    Ok(())
}

/// The mapping side.
pub fn pong(pages: &mut EarlyAlloc, a: &Args) -> Result<(), &'static str> {
    let local = events::bind_interdomain(a.peer, a.port).map_err(|_| "bind_interdomain failed")?;
    let va = pages.alloc_page().ok_or("no page to map the grant at")?;
    let give_up = shared::now_ns().unwrap_or(0) + PATIENCE;
    let handle = loop {
        let (status, handle) = grants::map(va, a.gref, a.peer, false);
        if status == 0 {
            break handle;
        }
        if shared::now_ns().unwrap_or(u64::MAX) > give_up {
            return Err("the grant never became mappable");
        }
        hypercall::sched_yield();
    };
    for k in 1..=ROUNDS {
        if !wait_for(local, || counter(va, 0).load(Ordering::SeqCst) == k) {
            return Err("no ping");
        }
        counter(va, 8).store(k, Ordering::SeqCst);
        events::send(local);
    }
    if grants::unmap(va, handle) != 0 {
        return Err("unmap failed");
    }
    events::send(local);
    println!("pong: answered {ROUNDS} pings from d{} through its grant {}", a.peer, a.gref);
    Ok(())
}
