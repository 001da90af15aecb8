//! The canary guest (`canary seed=S grant=D1,D2` on its command line): it
//! fills its free pages with a pattern only it knows, grants its first
//! pattern page read-only to the fuzzers named by `grant=` (refs 8, 9,
//! ...), remembers the page-table entries that map the pattern, and keeps
//! checking both. It prints `canary: round=N ok pages=P` now and then and
//! `canary: CORRUPTION ...` for every page it finds changed (then
//! restores it, so each change is reported once).
//!
//! Invariant: nothing but another party (a fuzzer or the hypervisor
//! itself) can change a pattern page or its mapping, since the canary
//! only reads them after filling them.

use pv_guest_kernel::alloc::EarlyAlloc;
use pv_guest_kernel::fuzz::Rng;
use pv_guest_kernel::{StartInfo, grants, mm, println, shared};
use xen_public::pte::{PteFlags, pte_maddr};

/// Pattern pages kept (the rest of the initial region stays free).
const MAX_PAGES: usize = 768;
/// Progress line every this many rounds.
const REPORT_EVERY: u64 = 20;

/// The pattern word `i` of the page with pfn `pfn`.
fn pattern(seed: u64, pfn: u64, i: usize) -> u64 {
    let mut r = Rng::new(seed ^ (pfn << 12) ^ i as u64);
    r.next_u64()
}

fn fill(seed: u64, va: u64, pfn: u64) {
    // SAFETY: `va` is a pattern page of ours, mapped writable.
    let page = unsafe { &mut *(va as *mut [u64; 512]) };
    for (i, w) in page.iter_mut().enumerate() {
        *w = pattern(seed, pfn, i);
    }
}

/// The first word of the page at `va` that differs from the pattern.
fn check(seed: u64, va: u64, pfn: u64) -> Option<(usize, u64, u64)> {
    // SAFETY: as above, read only; volatile so each round really reads.
    let page = va as *const u64;
    (0..512).find_map(|i| {
        // SAFETY: `i` < 512 words of the mapped page.
        let got = unsafe { page.add(i).read_volatile() };
        let want = pattern(seed, pfn, i);
        (got != want).then_some((i, want, got))
    })
}

/// The L1 entry mapping `va`, read through the read-only mapping of the
/// initial region's tables.
fn l1e(si: &StartInfo, va: u64) -> u64 {
    let table_va = |mfn: u64| pv_guest_kernel::notes::VIRT_BASE + pv_guest_kernel::console::mfn_to_pfn(mfn) * 4096;
    let mut t = mm::mfn_of(si, si.pt_base);
    for level in (1..=4u32).rev() {
        let idx = (va >> (12 + 9 * (level - 1))) & 511;
        // SAFETY: `t` is a table of the initial region, mapped read-only.
        let e = unsafe { ((table_va(t) + idx * 8) as *const u64).read_volatile() };
        if level == 1 || !PteFlags::of(e).contains(PteFlags::PRESENT) {
            return e;
        }
        t = pte_maddr(e) >> 12;
    }
    0
}

/// Run the canary; never returns.
pub fn run(si: &StartInfo, pages: &mut EarlyAlloc, line: &str) -> ! {
    let seed = line.split_ascii_whitespace().find_map(|w| w.strip_prefix("seed=")?.parse().ok()).unwrap_or(1u64);
    let table_va = pages.alloc_page().unwrap_or(0);
    let mut vas = [0u64; MAX_PAGES];
    let mut n = 0;
    while n < MAX_PAGES && pages.remaining() > 4 {
        let Some(va) = pages.alloc_page() else { break };
        vas[n] = va;
        n += 1;
    }
    let pfn = |va: u64| (va - pv_guest_kernel::notes::VIRT_BASE) / 4096;
    for &va in &vas[..n] {
        fill(seed, va, pfn(va));
    }
    // What maps each page: frame and permission bits (the CPU may set
    // Accessed and Dirty).
    const KEEP: u64 = xen_public::pte::PTE_ADDR_MASK | PteFlags::PRESENT.union(PteFlags::RW).union(PteFlags::USER).bits();
    let mut ptes = [0u64; MAX_PAGES];
    for (p, &va) in ptes.iter_mut().zip(&vas[..n]) {
        *p = l1e(si, va) & KEEP;
    }
    let grants_to = line.split_ascii_whitespace().find_map(|w| w.strip_prefix("grant=")).unwrap_or("");
    match grants::Table::setup(table_va) {
        Ok(table) if n > 0 => {
            for (k, d) in grants_to.split(',').filter_map(|d| d.parse::<u16>().ok()).enumerate() {
                table.grant(8 + k as u32, d, mm::mfn_of(si, vas[0]), true);
            }
        }
        _ => println!("canary: no grant table"),
    }
    println!("canary: watching {n} pages, seed {seed}");
    let mut round = 0u64;
    let mut bad = 0u64;
    loop {
        for (&va, pte) in vas[..n].iter().zip(&mut ptes[..n]) {
            if let Some((i, want, got)) = check(seed, va, pfn(va)) {
                bad += 1;
                println!("canary: CORRUPTION pfn={:#x} word={i} want={want:#x} got={got:#x}", pfn(va));
                fill(seed, va, pfn(va));
            }
            let now = l1e(si, va) & KEEP;
            if now != *pte {
                bad += 1;
                println!("canary: CORRUPTION pfn={:#x} mapping {:#x} became {now:#x}", pfn(va), *pte);
                *pte = now;
            }
        }
        round += 1;
        if round.is_multiple_of(REPORT_EVERY) {
            println!("canary: round={round} {} pages={n} corruptions={bad}", if bad == 0 { "ok" } else { "CORRUPTED" });
        }
        shared::sleep_ns(20_000_000);
    }
}
