//! Micro-benchmarks run by dom0 (`test=bench`), printed as
//! `bench: <name> <cycles>` for `cargo xtask bench` to compare between
//! hypervisors. Each figure is the median of several rounds, in TSC cycles.

use pv_guest_kernel::alloc::EarlyAlloc;
use pv_guest_kernel::mm::mfn_of;
use pv_guest_kernel::shared::rdtsc;
use pv_guest_kernel::{StartInfo, hypercall, mm, println};
use xen_public::MmuUpdate;

fn median(v: &mut [u64]) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

/// Cycles per `xen_version(XENVER_version)`, the cheapest hypercall.
fn null_hypercall() -> u64 {
    const CALLS: u64 = 2000;
    let mut rounds = [0u64; 9];
    for r in rounds.iter_mut() {
        let t = rdtsc();
        for _ in 0..CALLS {
            core::hint::black_box(hypercall::xen_version());
        }
        *r = (rdtsc() - t) / CALLS;
    }
    median(&mut rounds)
}

/// xen-core's `bench_floor` number (its `entry::FLOOR_NR`).
const FLOOR_NR: u64 = 0x7fff_f100;

/// A bare SYSCALL with the floor number (not through the hypercall page,
/// which has 128 stubs); RAX comes back.
fn floor_call() -> u64 {
    let rax: u64;
    // SAFETY: a SYSCALL from the guest kernel is a hypercall; this number
    // takes no arguments and SYSCALL clobbers only RCX and R11.
    unsafe { core::arch::asm!("syscall", inlateout("rax") FLOOR_NR => rax, out("rcx") _, out("r11") _, options(nostack)) };
    rax
}

/// Cycles of the floor: a SYSCALL into ring 0 and straight back through
/// IRETQ, with no hypervisor work (xen-core booted with `bench_floor`;
/// `None` elsewhere, where the number is an unknown hypercall).
fn floor() -> Option<u64> {
    if floor_call() != FLOOR_NR {
        return None;
    }
    const CALLS: u64 = 2000;
    let mut rounds = [0u64; 9];
    for r in rounds.iter_mut() {
        let t = rdtsc();
        for _ in 0..CALLS {
            core::hint::black_box(floor_call());
        }
        *r = (rdtsc() - t) / CALLS;
    }
    Some(median(&mut rounds))
}

/// Cycles per entry of a 512-entry `mmu_update` batch on a pinned L1.
fn mmu_update_batch(si: &StartInfo, pages: &mut EarlyAlloc) -> Option<u64> {
    let (t, d) = (pages.alloc_page()?, pages.alloc_page()?);
    let (tm, dm) = (mfn_of(si, t), mfn_of(si, d));
    let table = mm::Table::new(t, tm, 1, &[]).ok()?;
    let mut reqs = [MmuUpdate::default(); 512];
    let mut rounds = [0u64; 9];
    for (n, r) in rounds.iter_mut().enumerate() {
        for (i, q) in reqs.iter_mut().enumerate() {
            let val = if n % 2 == 0 { (dm << 12) | mm::PTE_RO } else { 0 };
            *q = MmuUpdate { ptr: (tm << 12) + i as u64 * 8, val };
        }
        let t0 = rdtsc();
        let (rc, done) = mm::mmu_update(&reqs);
        *r = (rdtsc() - t0) / 512;
        if rc != 0 || done != 512 {
            println!("bench: mmu_update failed: {rc}, done {done}");
            return None;
        }
    }
    let _ = mm::mmu_update(&reqs.map(|q| MmuUpdate { val: 0, ..q }));
    table.release().ok()?;
    Some(median(&mut rounds))
}

/// Cycles from `EVTCHNOP_send` on a loopback channel to the start of the
/// upcall that delivers it.
fn evtchn_latency() -> Option<u64> {
    use pv_guest_kernel::events as ev;
    if ev::init() != 0 {
        return None;
    }
    let a = ev::alloc_unbound(xen_public::DOMID_SELF).ok()?;
    let b = ev::bind_interdomain(xen_public::DOMID_SELF, a).ok()?;
    let mut rounds = [0u64; 9];
    for r in rounds.iter_mut() {
        let mut best = u64::MAX;
        for _ in 0..200 {
            let t = rdtsc();
            ev::send(b);
            best = best.min(ev::last_upcall_tsc().wrapping_sub(t));
        }
        *r = best;
    }
    ev::disable();
    ev::reset();
    Some(median(&mut rounds))
}

/// Grant map+unmap pairs per second, and grant copy throughput in MiB/s,
/// both on a grant of our own.
fn grants(si: &StartInfo, pages: &mut EarlyAlloc) -> Option<(u64, u64)> {
    use pv_guest_kernel::grants::{self, CopySide, Table};
    use pv_guest_kernel::shared;
    let (tva, data, host, dst) = (pages.alloc_page()?, pages.alloc_page()?, pages.alloc_page()?, pages.alloc_page()?);
    let t = Table::setup(tva).ok()?;
    t.grant(20, 0, mfn_of(si, data), false);
    const PAIRS: u64 = 2000;
    let t0 = shared::now_ns()?;
    for _ in 0..PAIRS {
        let (st, h) = grants::map(host, 20, 0, false);
        if st != 0 || grants::unmap(host, h) != 0 {
            return None;
        }
    }
    let dt = shared::now_ns()? - t0;
    let per_sec = PAIRS * 1_000_000_000 / dt.max(1);
    const COPIES: u64 = 4000;
    let dm = mfn_of(si, dst);
    let t0 = shared::now_ns()?;
    for _ in 0..COPIES {
        if grants::copy(CopySide::Gref(20, xen_public::DOMID_SELF), 0, CopySide::Frame(dm, xen_public::DOMID_SELF), 0, 4096) != 0 {
            return None;
        }
    }
    let dt = shared::now_ns()? - t0;
    let mib_s = COPIES * 4096 * 1_000_000_000 / dt.max(1) / (1 << 20);
    t.end_access(20);
    let _ = pv_guest_kernel::hypercall::update_va_mapping(host, (mfn_of(si, host) << 12) | mm::PTE_RW, 2);
    Some((per_sec, mib_s))
}

/// Median and 99th-percentile lateness of 100 single-shot timers (1 ms
/// ahead), in microseconds.
fn timer_lateness() -> Option<(u64, u64)> {
    use pv_guest_kernel::{events, shared};
    if events::init() != 0 {
        return None;
    }
    let port = shared::bind_timer_virq().ok()?;
    let mut late = [0u64; 100];
    for l in late.iter_mut() {
        let deadline = shared::now_ns()? + 1_000_000;
        let woke = shared::sleep_until(deadline, port)?;
        *l = woke.saturating_sub(deadline) / 1000;
    }
    late.sort_unstable();
    events::disable();
    events::reset();
    Some((late[50], late[98]))
}

/// Run and print every benchmark.
pub fn run(si: &StartInfo, pages: &mut EarlyAlloc) {
    let shinfo = pages.alloc_page().unwrap_or(0);
    pv_guest_kernel::shared::map(shinfo, si.shared_info);
    if let Some(c) = floor() {
        println!("bench: floor_syscall_iretq_cycles {c}");
    }
    println!("bench: null_hypercall_cycles {}", null_hypercall());
    match mmu_update_batch(si, pages) {
        Some(c) => println!("bench: mmu_update_entry_cycles {c}"),
        None => println!("bench: mmu_update_entry_cycles unavailable"),
    }
    match evtchn_latency() {
        Some(c) => println!("bench: evtchn_send_to_upcall_cycles {c}"),
        None => println!("bench: evtchn_send_to_upcall_cycles unavailable"),
    }
    if let Some((median, p99)) = timer_lateness() {
        println!("bench: timer_lateness_median_us {median}");
        println!("bench: timer_lateness_p99_us {p99}");
    }
    match grants(si, pages) {
        Some((pairs, mib)) => {
            println!("bench: grant_map_unmap_per_sec {pairs}");
            println!("bench: grant_copy_mib_per_sec {mib}");
        }
        None => println!("bench: grant_map_unmap_per_sec unavailable"),
    }
}
