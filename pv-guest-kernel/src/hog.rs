//! Guest modes for the preemption boot test (XSA-45's class): `hog` makes
//! the longest hypervisor work a domU can ask for, over and over, and
//! `lateness` measures how late its own timers fire meanwhile.
//!
//! The hog turns every spare page into one page-table tree (an L4, an L3,
//! L2s, and L1s whose 512 entries all map a frame read-only), then pins
//! and unpins the L4 in a loop: each pin validates, and each unpin
//! devalidates, every entry of the tree. Between rounds it sends a
//! multicall of console writes (-EPERM for a domU, as Xen).

use pv_guest_kernel::alloc::EarlyAlloc;
use pv_guest_kernel::mm::{self, PTE_RO, PTE_RW};
use pv_guest_kernel::{StartInfo, events, hypercall, println, shared};

/// Most pages the tree uses (one L2 covers 512 L1s; one L3 entry per L2).
const MAX_TABLES: usize = 4096;

/// Build the tree from spare pages; the L4's frame, or why not.
fn build_tree(si: &StartInfo, pages: &mut EarlyAlloc) -> Result<(u64, usize), &'static str> {
    let mut va = [0u64; MAX_TABLES];
    let mut n = 0;
    while n < MAX_TABLES {
        let Some(p) = pages.alloc_page() else { break };
        va[n] = p;
        n += 1;
    }
    // Layout: [L4, L3, L2 x nr_l2, L1 x rest].
    let nr_l1 = n.saturating_sub(2) * 512 / 513;
    let nr_l2 = nr_l1.div_ceil(512);
    if nr_l1 == 0 || 2 + nr_l2 + nr_l1 > n {
        return Err("not enough spare pages");
    }
    let mfn = |i: usize| mm::mfn_of(si, va[i]);
    let page = |i: usize| {
        // SAFETY: `va[i]` is a spare page of ours, mapped writable.
        unsafe { &mut *(va[i] as *mut [u64; 512]) }
    };
    let data = mfn(0);
    for k in 0..nr_l1 {
        page(2 + nr_l2 + k).fill((data << 12) | PTE_RO);
    }
    for j in 0..nr_l2 {
        let l2 = page(2 + j);
        l2.fill(0);
        for (e, k) in l2.iter_mut().zip(j * 512..nr_l1.min((j + 1) * 512)) {
            *e = (mfn(2 + nr_l2 + k) << 12) | PTE_RW;
        }
    }
    let l3 = page(1);
    l3.fill(0);
    for (e, j) in l3.iter_mut().zip(0..nr_l2) {
        *e = (mfn(2 + j) << 12) | PTE_RW;
    }
    let l4 = page(0);
    l4.fill(0);
    l4[0] = (mfn(1) << 12) | PTE_RW;
    for (i, &v) in va[..2 + nr_l2 + nr_l1].iter().enumerate() {
        mm::map(v, mfn(i), false).map_err(|_| "cannot make a table page read-only")?;
    }
    Ok((mfn(0), nr_l1))
}

/// A multicall of console writes of 16 KiB each.
fn console_multicall() -> i64 {
    static TEXT: [u8; 16384] = [b'.'; 16384];
    let mut calls = hypercall::Multicall::<64>::default();
    while calls.console_write(&TEXT) {}
    calls.issue()
}

/// Pin and unpin the largest tree this domain can build, forever.
///
/// With `hold`, it pins the tree once and then sleeps, so that whoever
/// destroys it has the whole tree to tear down.
pub fn hog(si: &StartInfo, pages: &mut EarlyAlloc, hold: bool) -> ! {
    match build_tree(si, pages) {
        Ok((l4, nr_l1)) => {
            println!("pv-guest-kernel: hog: tree of {nr_l1} L1 tables ({} entries)", nr_l1 * 512);
            if hold {
                let pinned = mm::pin(l4, 4);
                println!("pv-guest-kernel: hog: holding the tree pinned: {pinned:?}");
                loop {
                    hypercall::sched_block();
                }
            }
            let mut round = 0u64;
            loop {
                let pinned = mm::pin(l4, 4);
                let unpinned = mm::unpin(l4);
                let console = console_multicall();
                if round == 0 {
                    println!("pv-guest-kernel: hog: pin {pinned:?} unpin {unpinned:?} console multicall {console}");
                }
                round += 1;
            }
        }
        Err(why) => {
            println!("pv-guest-kernel: hog: {why}");
            loop {
                core::hint::spin_loop();
            }
        }
    }
}

/// Timers measured.
const TIMERS: usize = 200;

/// Sleep 1 ms `TIMERS` times and print the lateness percentiles (figures
/// for a reader: a loaded host makes them what it likes).
pub fn lateness(label: &str) {
    if events::init() != 0 {
        println!("pv-guest-kernel: lateness: no event callback");
        return;
    }
    let Ok(port) = shared::bind_timer_virq() else {
        println!("pv-guest-kernel: lateness: no VIRQ_TIMER");
        return;
    };
    let mut late = [0u64; TIMERS];
    for l in late.iter_mut() {
        let Some(deadline) = shared::now_ns().map(|t| t + 1_000_000) else { return };
        let Some(woke) = shared::sleep_until(deadline, port) else { return };
        *l = woke.saturating_sub(deadline) / 1000;
    }
    late.sort_unstable();
    let p99 = late[TIMERS * 99 / 100 - 1];
    println!("pv-guest-kernel: {label}: {TIMERS} timers, p50 {} us, p99 {p99} us, max {} us", late[TIMERS / 2], late[TIMERS - 1]);
}
