//! The fuzzing guest (`fuzz seed=S calls=N` on its command line, with
//! `domid=`, `peer=`, `canary=`, `canary_mfn=`, `danger=` (per million)
//! and `verbose=K` (print every call from index K) from dom0): it learns
//! its own frames, page tables and special frames, then issues the calls
//! of [`pv_guest_kernel::fuzz::Gen`] in batches, printing
//! `fuzz: calls=N seed=S op=FAMILY` before each batch so that a failure
//! can be replayed, and `fuzz: done ...` at the end.
//!
//! Invariant: the fuzzer's own code, stack, console ring, argument buffer
//! and trap table stay usable unless a call drawn as dangerous breaks
//! them; before each batch it repairs what calls may legitimately have
//! changed (trap table, event callback and mask, FPU switch, LDT) and
//! rewrites some of its grant entries.

use core::mem::{offset_of, size_of};
use core::sync::atomic::{AtomicU16, Ordering};
use pv_guest_kernel::alloc::EarlyAlloc;
use pv_guest_kernel::console::mfn_to_pfn;
use pv_guest_kernel::fuzz::{self, BUF_BYTES, Call, Env, Gen, KnownBug, PLAY_PAGES, Rng};
use pv_guest_kernel::notes::VIRT_BASE;
use pv_guest_kernel::{StartInfo, events, hypercall, mm, println, traps};
use xen_public::grant_table::{GrantEntryV1, GrantType, GtfFlags};
use xen_public::pte::{PteFlags, pte_maddr};
use xen_public::vcpu::TrapInfo;

/// Calls per batch (one progress line each).
const BATCH: u64 = 256;
/// Grant entries the fuzzer rewrites before each batch.
const GRANTS: core::ops::Range<u32> = 8..40;

/// What dom0 put on the command line.
pub struct Args {
    seed: u64,
    calls: u64,
    domid: u16,
    others: [u16; 3],
    canary_mfn: u64,
    danger: u64,
    verbose: u64,
}

impl Args {
    /// Parse `fuzz seed=S calls=N ...`.
    pub fn parse(line: &str) -> Args {
        let num = |key: &str| {
            line.split_ascii_whitespace().find_map(|w| {
                let v = w.strip_prefix(key)?.strip_prefix('=')?;
                match v.strip_prefix("0x") {
                    Some(h) => u64::from_str_radix(h, 16).ok(),
                    None => v.parse::<u64>().ok(),
                }
            })
        };
        let dom = |key: &str| num(key).map_or(xen_public::DOMID_INVALID, |v| v as u16);
        Args {
            seed: num("seed").unwrap_or(1),
            calls: num("calls").unwrap_or(10_000),
            domid: dom("domid"),
            others: [0, dom("peer"), dom("canary")],
            canary_mfn: num("canary_mfn").unwrap_or(0),
            danger: num("danger").unwrap_or(50),
            verbose: num("verbose").unwrap_or(u64::MAX),
        }
    }
}

/// Issue a call with SYSCALL directly (numbers past the hypercall page
/// included); a continuation re-executes the instruction.
fn issue(c: &Call) -> i64 {
    let ret: i64;
    // SAFETY: a hypercall from guest kernel mode. The hypervisor reads and
    // writes only memory this guest may access through its own page
    // tables; the arguments point into the fuzzer's argument buffer or
    // are deliberately bad, which the hypervisor must refuse. The guest's
    // own state may be broken by a call drawn as dangerous: then the
    // domain crashes, which dom0 expects and counts.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") c.op => ret,
            inlateout("rdi") c.args[0] => _,
            inlateout("rsi") c.args[1] => _,
            inlateout("rdx") c.args[2] => _,
            inlateout("r10") c.args[3] => _,
            inlateout("r8") c.args[4] => _,
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
    ret
}

/// A formatted line straight to the hypervisor console (`console_io`),
/// which reaches the serial port before the next call even if the
/// hypervisor then dies; through the console ring if the hypervisor
/// refuses console_io to a domU.
fn trace(args: core::fmt::Arguments<'_>) {
    struct Buf([u8; 256], usize);
    impl core::fmt::Write for Buf {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            let n = s.len().min(self.0.len() - self.1);
            self.0[self.1..self.1 + n].copy_from_slice(&s.as_bytes()[..n]);
            self.1 += n;
            Ok(())
        }
    }
    let mut b = Buf([0; 256], 0);
    let _ = core::fmt::Write::write_fmt(&mut b, args);
    if hypercall::console_write(&b.0[..b.1]) < 0 {
        println!("{}", core::str::from_utf8(&b.0[..b.1]).unwrap_or("?").trim_end());
    }
}

/// The page tables of the initial region, found by walking down from the
/// L4 (each table is mapped read-only at its pfn's address): (mfn, level)
/// of each, and the L1 entry of `va`.
fn tables(si: &StartInfo, va: u64, out: &mut [(u64, u8); 8]) -> (usize, (u64, usize)) {
    let table_va = |mfn: u64| VIRT_BASE + mfn_to_pfn(mfn) * 4096;
    let l4 = mm::mfn_of(si, si.pt_base);
    let mut n = 0;
    fn push(out: &mut [(u64, u8); 8], m: u64, level: u8, n: &mut usize) {
        if *n < out.len() && !out[..*n].iter().any(|t| t.0 == m) {
            out[*n] = (m, level);
            *n += 1;
        }
    }
    push(out, l4, 4, &mut n);
    let mut slot = (0, 0);
    let mut mfn = l4;
    for level in (2..=4u32).rev() {
        let idx = (va >> (12 + 9 * (level - 1))) & 511;
        // SAFETY: `mfn` is a table of the initial region, mapped read-only
        // at its pfn's address.
        let e = unsafe { ((table_va(mfn) + idx * 8) as *const u64).read_volatile() };
        mfn = pte_maddr(e) >> 12;
        push(out, mfn, level as u8 - 1, &mut n);
        if level == 2 {
            slot = (mfn, ((va >> 12) & 511) as usize);
        }
    }
    // The other L1s of the region (the L2 that maps it).
    let l2 = out[..n].iter().find(|t| t.1 == 2).map(|t| t.0);
    if let Some(l2) = l2 {
        for i in 0..512u64 {
            // SAFETY: as above, for the L2.
            let e = unsafe { ((table_va(l2) + i * 8) as *const u64).read_volatile() };
            if PteFlags::of(e).contains(PteFlags::PRESENT) {
                push(out, pte_maddr(e) >> 12, 1, &mut n);
            }
        }
    }
    (n, slot)
}

/// A page of the allocator, or stop.
fn page(pages: &mut EarlyAlloc) -> u64 {
    match pages.alloc_page() {
        Some(p) => p,
        None => {
            println!("fuzz: out of pages during setup");
            poweroff()
        }
    }
}

fn poweroff() -> ! {
    loop {
        hypercall::shutdown(xen_public::SHUTDOWN_POWEROFF);
    }
}

/// `GNTTABOP_setup_table` for four frames: how many mfns `out` got.
fn grant_frames(out: &mut [u64; 4]) -> usize {
    let (rc, status) = hypercall::gnttab_setup_table(xen_public::DOMID_SELF, out);
    if rc == 0 && status == 0 { 4 } else { 0 }
}

/// Everything the fuzzer set up.
struct Setup {
    env: Env,
    /// Where grant frame 0 is mapped (0: not).
    grant_va: u64,
}

fn setup(si: &StartInfo, pages: &mut EarlyAlloc, a: &Args) -> Setup {
    let mut env = Env { domid: a.domid, others: a.others, canary_mfn: a.canary_mfn, ..Env::default() };
    env.max_mfn = hypercall::maximum_ram_page().max(0) as u64;
    // The argument buffer, then a page left unmapped.
    env.buf_va = page(pages);
    for _ in 1..BUF_BYTES / 4096 {
        page(pages);
    }
    let guard = page(pages);
    let _ = mm::unmap(guard);
    env.text_va = page(pages);
    // SAFETY: a page of ours from the allocator.
    unsafe { core::ptr::write_bytes(env.text_va as *mut u8, b'.', 4096) };
    env.trap_table_va = page(pages);
    // SAFETY: as above; 21 trap_info entries of 16 bytes fit in the page.
    let table = unsafe { &mut *(env.trap_table_va as *mut [TrapInfo; 21]) };
    for v in 0..20u8 {
        table[v as usize] = traps::handler_entry(v, if v == 3 || v == 4 { 3 } else { 0 }).unwrap_or_default();
    }
    table[20] = TrapInfo::default();
    let grant_va = page(pages);
    // The playground: PLAY_PAGES pages under one L1.
    let mut play = page(pages);
    while (play >> 21) != ((play + (PLAY_PAGES as u64 - 1) * 4096) >> 21) {
        play = page(pages);
    }
    env.play_va = play;
    for i in 0..PLAY_PAGES {
        if i > 0 {
            page(pages);
        }
        env.play_mfns[i] = mm::mfn_of(si, play + i as u64 * 4096);
    }
    let (n, slot) = tables(si, play, &mut env.tables);
    env.nr_tables = n;
    env.play_l1 = slot;
    env.l4 = env.tables[0].0;
    // Special frames: shared_info, start_info, xenstore ring, grant
    // frames, the P2M list.
    let mut grants = [0u64; 4];
    let nr_grants = grant_frames(&mut grants);
    let si_va = si as *const StartInfo as u64;
    let mut special = [0u64; 12];
    let mut ns = 0;
    let p2m_pages = (si.nr_pages * 8).div_ceil(4096);
    let p2m = (0..p2m_pages.min(2)).map(|i| mm::mfn_of(si, si.mfn_list + i * 4096));
    for m in [si.shared_info >> 12, mm::mfn_of(si, si_va & !0xfff), si.store_mfn].into_iter().chain(grants[..nr_grants].iter().copied()).chain(p2m) {
        if ns < special.len() && m != 0 {
            special[ns] = m;
            ns += 1;
        }
    }
    env.special = special;
    env.nr_special = ns;
    if nr_grants > 0 && mm::map(grant_va, grants[0], true).is_err() {
        println!("fuzz: cannot map the grant table");
    }
    // Vital frames: code (the hypercall page), stack, console ring,
    // argument buffer, trap table.
    env.code_va = hypercall::hypercall5 as *const () as u64 & !0xfff;
    env.stack_va = si.pt_base + si.nr_pt_frames * 4096;
    env.ro_va = si.pt_base;
    let vital = [env.code_va, env.stack_va, env.buf_va, env.trap_table_va, env.text_va];
    for (i, va) in vital.iter().enumerate() {
        env.vital[i] = mm::mfn_of(si, *va);
    }
    env.vital[5] = si.console.mfn_or_info_off;
    env.nr_vital = 6;
    env.callbacks = [events::entry_address(); 2];
    Setup { env, grant_va: if nr_grants > 0 { grant_va } else { 0 } }
}

/// Before a batch: put back what the fuzzer itself relies on, and rewrite
/// some grant entries (from `rng`, so replays match).
fn repair(s: &Setup, rng: &mut Rng) {
    let _ = hypercall::set_trap_table_raw(s.env.trap_table_va);
    events::register();
    events::disable();
    hypercall::fpu_taskswitch(false);
    hypercall::mmuext_one(13, 0, 0);
    if s.grant_va == 0 {
        return;
    }
    for gref in GRANTS {
        let e = s.grant_va + u64::from(gref) * size_of::<GrantEntryV1>() as u64;
        let flags = match rng.below(8) {
            0..=2 => GtfFlags::empty().with_type(GrantType::PermitAccess),
            3 | 4 => GtfFlags::READONLY.with_type(GrantType::PermitAccess),
            5 => GtfFlags::empty().with_type(GrantType::AcceptTransfer),
            6 => GrantType::Invalid.bits(),
            _ => rng.next_u64() as u16 & 0x1f, // any type, with readonly, reading, writing
        };
        let dom = rng.pick(&[s.env.domid, s.env.others[1], s.env.others[2], 0, xen_public::DOMID_SELF]);
        // Own frames mostly; others' (the canary's, any) too, unless
        // copies through such grants are a known bug.
        let frame = match rng.below(8) {
            0..=4 => rng.pick(&s.env.play_mfns),
            5 => s.env.special[rng.below(s.env.nr_special.max(1) as u64) as usize],
            6 if !fuzz::avoided(KnownBug::GrantCopyFrames) && s.env.canary_mfn != 0 => s.env.canary_mfn + rng.below(64),
            7 if !fuzz::avoided(KnownBug::GrantCopyFrames) => rng.below(s.env.max_mfn + 1),
            _ => rng.pick(&s.env.play_mfns),
        };
        // SAFETY: the entry lies in grant frame 0, mapped at `grant_va`;
        // the flags word is updated atomically as the hypervisor does.
        let word = unsafe { AtomicU16::from_ptr((e + offset_of!(GrantEntryV1, flags) as u64) as *mut u16) };
        let cur = word.load(Ordering::SeqCst);
        if GtfFlags::of(cur).intersects(GtfFlags::READING | GtfFlags::WRITING) {
            continue; // in use (GTF_reading/writing): leave it
        }
        // SAFETY: as above: the domid and frame fields of the entry.
        unsafe {
            ((e + offset_of!(GrantEntryV1, domid) as u64) as *mut u16).write_volatile(dom);
            ((e + offset_of!(GrantEntryV1, frame) as u64) as *mut u32).write_volatile(frame as u32);
        }
        let _ = word.compare_exchange(cur, flags, Ordering::SeqCst, Ordering::SeqCst);
    }
}

/// Run the fuzzer; never returns.
pub fn run(si: &StartInfo, pages: &mut EarlyAlloc, a: &Args) -> ! {
    if traps::install() != 0 {
        println!("fuzz: set_trap_table failed");
    }
    let s = setup(si, pages, a);
    println!(
        "fuzz: start seed={} calls={} domid={} max_mfn={:#x} tables={} special={} play={:#x}",
        a.seed, a.calls, a.domid, s.env.max_mfn, s.env.nr_tables, s.env.nr_special, s.env.play_mfns[0]
    );
    // SAFETY: BUF_BYTES of pages from the allocator, mapped writable at
    // `buf_va` and used for nothing else.
    let buf = unsafe { core::slice::from_raw_parts_mut(s.env.buf_va as *mut u8, BUF_BYTES) };
    let mut g = Gen::new(a.seed);
    g.danger_per_million = a.danger;
    let mut rng = Rng::new(fuzz::derive_seed(a.seed, 0x6772_616e_7473));
    let mut oracles = 0u64;
    for i in 0..a.calls {
        if i.is_multiple_of(BATCH) {
            repair(&s, &mut rng);
            let family = g.start_batch();
            println!("fuzz: calls={i} seed={} op={}", a.seed, family.name());
        }
        let c = g.next(&s.env, buf);
        if i >= a.verbose {
            trace(format_args!("(d{}) fuzz: call {i} {} nr={} args={:x?}\n", a.domid, c.name, c.op, c.args));
        }
        let rc = issue(&c);
        if let Some(why) = fuzz::oracle(&c, rc) {
            oracles += 1;
            println!("fuzz: ORACLE seed={} call={i} {} rc={rc}: {why}", a.seed, c.name);
        }
    }
    println!("fuzz: done calls={} seed={} avoided={} oracles={oracles}", a.calls, a.seed, g.avoided);
    poweroff()
}
