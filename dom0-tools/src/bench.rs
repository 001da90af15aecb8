//! Micro-benchmarks run by dom0 (`test=bench`), printed as
//! `bench: <name> <cycles>` for `cargo xtask bench` to compare between
//! hypervisors. Each figure is the median of several rounds, in TSC cycles.

use pv_guest_kernel::alloc::EarlyAlloc;
use pv_guest_kernel::notes::VIRT_BASE;
use pv_guest_kernel::{StartInfo, hypercall, mm, println};

fn rdtsc() -> u64 {
    // SAFETY: rdtsc only reads the time-stamp counter.
    unsafe { core::arch::x86_64::_rdtsc() }
}

fn median(v: &mut [u64]) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

fn mfn_of(si: &StartInfo, va: u64) -> u64 {
    // SAFETY: the P2M list is mapped in the initial region and `va` lies in it.
    unsafe { *(si.mfn_list as *const u64).add(((va - VIRT_BASE) / 4096) as usize) }
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

/// Cycles per entry of a 512-entry `mmu_update` batch on a pinned L1.
fn mmu_update_batch(si: &StartInfo, pages: &mut EarlyAlloc) -> Option<u64> {
    let (t, d) = (pages.alloc_page()?, pages.alloc_page()?);
    let (tm, dm) = (mfn_of(si, t), mfn_of(si, d));
    let table = mm::Table::new(t, tm, 1, &[]).ok()?;
    let mut reqs = [[0u64; 2]; 512];
    let mut rounds = [0u64; 9];
    for (n, r) in rounds.iter_mut().enumerate() {
        for (i, q) in reqs.iter_mut().enumerate() {
            let val = if n % 2 == 0 { (dm << 12) | mm::PTE_RO } else { 0 };
            *q = [(tm << 12) + i as u64 * 8, val];
        }
        let t0 = rdtsc();
        let (rc, done) = mm::mmu_update(&reqs);
        *r = (rdtsc() - t0) / 512;
        if rc != 0 || done != 512 {
            println!("bench: mmu_update failed: {rc}, done {done}");
            return None;
        }
    }
    let _ = mm::mmu_update(&reqs.map(|[p, _]| [p, 0]));
    table.release().ok()?;
    Some(median(&mut rounds))
}

/// Run and print every benchmark.
pub fn run(si: &StartInfo, pages: &mut EarlyAlloc) {
    println!("bench: null_hypercall_cycles {}", null_hypercall());
    match mmu_update_batch(si, pages) {
        Some(c) => println!("bench: mmu_update_entry_cycles {c}"),
        None => println!("bench: mmu_update_entry_cycles unavailable"),
    }
}
