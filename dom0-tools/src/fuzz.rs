//! Dom0's fuzzing run (`test=fuzz seed=S calls=N`, xen-core only): two
//! fuzzing domUs (one per CPU on a two-CPU machine) and a canary domU
//! that watches its memory. Dom0 relays their consoles, follows the
//! fuzzers' progress lines, asks the hypervisor's invariant auditor after
//! every batch a fuzzer reports, restarts a fuzzer that crashed itself
//! with a seed derived from its own, and ends with the figures: calls per
//! second, audits, canary, crashes, and the seed and call index of the
//! first failure.
//!
//! Invariant: a failure is a broken audit, a canary that saw a change or
//! died, a fuzzer's oracle finding, or a frame lost across the run; a
//! fuzzer crashing itself is not (it is counted and restarted). A crash
//! of the hypervisor ends the run before the summary, which the boot test
//! notices.

use dom0_tools::cmdline;
use dom0_tools::guests::{GUEST_PAGES, Guests};
use dom0_tools::hv;
use pv_guest_kernel::fuzz::derive_seed;
use pv_guest_kernel::{println, shared};
use xen_public::XEN_DOMINF_SHUTDOWN;

/// Fuzzing domains.
const FUZZERS: usize = 2;
/// A fuzzer silent this long is hung: destroyed and restarted.
const HANG_NS: u64 = 30_000_000_000;
/// Audit at least this often while fuzzers run.
const AUDIT_EVERY_NS: u64 = 500_000_000;

/// One fuzzer slot: the domain running it and its share of the calls.
#[derive(Clone, Copy, Default)]
struct Fuzzer {
    domid: u16,
    /// Seed of the current run.
    seed: u64,
    /// Calls this slot must make in all.
    target: u64,
    /// Calls finished by earlier runs of this slot.
    before: u64,
    /// Last `calls=` the current run reported.
    progress: u64,
    /// When it last reported (system time).
    heard: u64,
    restarts: u64,
    done: bool,
}

impl Fuzzer {
    fn total(&self) -> u64 {
        self.before + self.progress
    }
}

/// What the run found.
#[derive(Default)]
struct Findings {
    audits: u64,
    dirty_audits: u64,
    crashes: u64,
    hangs: u64,
    oracles: u64,
    canary_rounds: u64,
    canary_bad: bool,
    canary_dead: bool,
    /// The first failure, as a line.
    first: Option<Line>,
}

use crate::domains::Line;

/// Where the fuzzers stand, for a failure line.
fn positions(fz: &[Fuzzer; FUZZERS]) -> Line {
    let [a, b] = fz;
    Line::new(format_args!("d{} seed={} call={}, d{} seed={} call={}", a.domid, a.seed, a.progress, b.domid, b.seed, b.progress))
}

fn fail(f: &mut Findings, fz: &[Fuzzer; FUZZERS], what: &str) {
    if f.first.is_none() {
        f.first = Some(Line::new(format_args!("{what} ({})", positions(fz).as_str())));
    }
}

/// `key=N` of a guest line.
fn num(line: &str, key: &str) -> Option<u64> {
    cmdline::value(line, key).and_then(|v| v.parse().ok())
}

/// What every fuzzer is told besides its seed, calls and domid.
#[derive(Clone, Copy)]
struct Common {
    canary: u16,
    canary_mfn: u64,
    danger: u64,
    verbose: u64,
}

/// Build fuzzer `f` in domain `id` (created) with `peer` as its peer.
fn build_fuzzer(guests: &mut Guests, f: &Fuzzer, id: u16, peer: u16, c: &Common) -> bool {
    let remaining = f.target - f.before;
    let args = Line::new(format_args!(
        "quiet fuzz seed={} calls={remaining} domid={id} peer={peer} canary={} canary_mfn={:#x} danger={} verbose={}",
        f.seed, c.canary, c.canary_mfn, c.danger, c.verbose
    ));
    match guests.start_created(id, args.as_str()) {
        Ok(_) => true,
        Err(e) => {
            println!("dom0: fuzz: building a fuzzer failed at {}: {}", e.0, e.1);
            false
        }
    }
}

fn start_fuzzer(guests: &mut Guests, f: &mut Fuzzer, peer: u16, c: &Common) -> bool {
    let Ok(id) = hv::create_domain() else {
        return false;
    };
    if !build_fuzzer(guests, f, id, peer, c) {
        return false;
    }
    f.domid = id;
    f.progress = 0;
    f.heard = shared::now_ns().unwrap_or(0);
    true
}

/// The run.
pub fn run(guests: &mut Guests, line: &str) {
    let seed = num(line, "seed").unwrap_or(1);
    let calls = num(line, "calls").unwrap_or(100_000);
    let budget_ns = num(line, "budget").unwrap_or(600) * 1_000_000_000;
    let danger = num(line, "danger").unwrap_or(50);
    // Replays: `only=K` runs fuzzer K alone, `seeds=A,B` sets their seeds,
    // `verbose=N` makes them print every call from index N.
    let only = num(line, "only");
    let seeds = cmdline::value(line, "seeds");
    let verbose = num(line, "verbose").unwrap_or(u64::MAX);
    let free0 = hv::free_pages();
    let mut f = Findings::default();
    let first = hv::audit();
    f.audits += 1;
    if first.rc != 0 {
        println!("dom0: fuzz: audit before the run: rc {} ({} violations)", first.rc, first.violations);
        f.dirty_audits += 1;
    }
    // The domains: ids first, so each can be told the others'.
    let ids = [hv::create_domain(), hv::create_domain(), hv::create_domain()];
    let [Ok(a), Ok(b), Ok(canary)] = ids else {
        println!("dom0: fuzz: createdomain failed");
        return;
    };
    let canary_args = Line::new(format_args!("quiet canary seed={seed} grant={a},{b}"));
    if let Err(e) = guests.start_created(canary, canary_args.as_str()) {
        println!("dom0: fuzz: building the canary failed at {}: {}", e.0, e.1);
        return;
    }
    let c = Common { canary, canary_mfn: guests.last_p2m(GUEST_PAGES - 128).unwrap_or(0), danger, verbose };
    let share = calls / FUZZERS as u64;
    let mut fz = [Fuzzer::default(); FUZZERS];
    for (k, (slot, id)) in fz.iter_mut().zip([a, b]).enumerate() {
        let seed_k = seeds.and_then(|s| s.split(',').nth(k)).and_then(|v| v.parse().ok()).unwrap_or_else(|| derive_seed(seed, k as u64));
        *slot = Fuzzer { seed: seed_k, target: share + if k == 0 { calls % FUZZERS as u64 } else { 0 }, ..Fuzzer::default() };
        if only.is_some_and(|o| o != k as u64) {
            slot.done = true;
            hv::domctl_simple(hv::DESTROYDOMAIN, id);
            continue;
        }
        let peer = if k == 0 { b } else { a };
        if !build_fuzzer(guests, slot, id, peer, &c) {
            return;
        }
        slot.domid = id;
        slot.heard = shared::now_ns().unwrap_or(0);
    }
    println!("dom0: fuzz: seed {seed}, {calls} calls: fuzzers d{a} seed {} and d{b} seed {}, canary d{canary}", fz[0].seed, fz[1].seed);
    let t0 = shared::now_ns().unwrap_or(0);
    let mut last_audit = t0;
    loop {
        let mut want_audit = false;
        guests.pump_lines(&mut |dom, text| {
            let now = shared::now_ns().unwrap_or(0);
            if let Some(k) = fz.iter().position(|x| x.domid == dom) {
                if text.starts_with("fuzz: calls=") {
                    fz[k].progress = num(text, "calls").unwrap_or(fz[k].progress);
                    fz[k].heard = now;
                    want_audit = true;
                } else if text.starts_with("fuzz: done") {
                    fz[k].progress = num(text, "calls").unwrap_or(fz[k].progress);
                    fz[k].done = true;
                } else if text.starts_with("fuzz: ORACLE") {
                    f.oracles += 1;
                    fail(&mut f, &fz, text);
                }
            } else if dom == canary {
                if text.starts_with("canary: CORRUPTION") {
                    f.canary_bad = true;
                    fail(&mut f, &fz, text);
                } else if let Some(r) = num(text, "round") {
                    f.canary_rounds = r;
                }
            }
        });
        let now = shared::now_ns().unwrap_or(0);
        // Once an audit failed, its violations stay: audit less often.
        let every = if f.dirty_audits > 0 { 10 * AUDIT_EVERY_NS } else { AUDIT_EVERY_NS };
        if (want_audit && f.dirty_audits == 0) || now.saturating_sub(last_audit) > every {
            let r = hv::audit();
            f.audits += 1;
            last_audit = now;
            if r.rc != 0 {
                f.dirty_audits += 1;
                let what = Line::new(format_args!("audit: rc {} with {} violations", r.rc, r.violations));
                println!("dom0: fuzz: {} ({})", what.as_str(), positions(&fz).as_str());
                fail(&mut f, &fz, what.as_str());
            }
        }
        // Fuzzers that stopped: finished, crashed, or hung.
        for k in 0..FUZZERS {
            if fz[k].done && fz[k].domid == 0 {
                continue;
            }
            let info = hv::domain_info(fz[k].domid);
            let stopped = info.is_ok_and(|(flags, _, _)| flags & XEN_DOMINF_SHUTDOWN != 0);
            let hung = !fz[k].done && now.saturating_sub(fz[k].heard) > HANG_NS;
            if info.is_err() {
                fail(&mut f, &fz, "a fuzzer domain vanished");
            }
            if !(stopped || hung || info.is_err()) {
                continue;
            }
            let reason = info.map_or(0, |(flags, _, _)| (flags >> 16) & 0xff);
            guests.destroy(fz[k].domid);
            if fz[k].done {
                fz[k].domid = 0;
                continue;
            }
            if hung {
                f.hangs += 1;
            } else {
                f.crashes += 1;
            }
            println!(
                "dom0: fuzz: d{} {} at seed={} call={} (reason {reason})",
                fz[k].domid,
                if hung { "hung" } else { "stopped" },
                fz[k].seed,
                fz[k].progress
            );
            fz[k].before += fz[k].progress;
            fz[k].restarts += 1;
            fz[k].seed = derive_seed(fz[k].seed, fz[k].restarts);
            let peer = fz[1 - k].domid;
            if fz[k].before >= fz[k].target || !start_fuzzer(guests, &mut fz[k], peer, &c) {
                fz[k].done = true;
                fz[k].domid = 0;
            }
        }
        if hv::domain_info(canary).is_ok_and(|(flags, _, _)| flags & XEN_DOMINF_SHUTDOWN != 0) && !f.canary_dead {
            f.canary_dead = true;
            fail(&mut f, &fz, "the canary domain stopped");
        }
        if fz.iter().all(|x| x.done && x.domid == 0) {
            break;
        }
        if now.saturating_sub(t0) > budget_ns {
            println!("dom0: fuzz: time budget spent");
            break;
        }
        guests.wait(5_000_000);
    }
    let elapsed_ns = shared::now_ns().unwrap_or(0).saturating_sub(t0).max(1);
    // Let the canary finish a round, then stop everything.
    let settle = shared::now_ns().unwrap_or(0) + 100_000_000;
    while shared::now_ns().unwrap_or(u64::MAX) < settle {
        guests.pump_lines(&mut |dom, text| {
            if dom == canary && text.starts_with("canary: CORRUPTION") {
                f.canary_bad = true;
            }
        });
        guests.wait(5_000_000);
    }
    for x in fz.iter().filter(|x| x.domid != 0) {
        guests.destroy(x.domid);
    }
    guests.destroy(canary);
    let end = hv::audit();
    f.audits += 1;
    if end.rc != 0 {
        f.dirty_audits += 1;
        fail(&mut f, &fz, "audit after the run");
    }
    let free1 = hv::free_pages();
    if free1 != free0 {
        fail(&mut f, &fz, "frames lost across the run");
    }
    let total: u64 = fz.iter().map(Fuzzer::total).sum();
    println!("dom0: fuzz: {total} calls in {} ms: {} calls/s", elapsed_ns / 1_000_000, total * 1_000_000_000 / elapsed_ns);
    println!("dom0: fuzz: fuzzer crashes {} (restarted), hangs {}, oracle findings {}", f.crashes, f.hangs, f.oracles);
    println!("dom0: fuzz: audits {}, {} with violations", f.audits, f.dirty_audits);
    let canary_state = if f.canary_bad {
        "CORRUPTED"
    } else if f.canary_dead {
        "DIED"
    } else {
        "intact"
    };
    println!("dom0: fuzz: canary {canary_state} after {} rounds", f.canary_rounds);
    println!("dom0: fuzz: free pages {free0} before, {free1} after");
    match &f.first {
        None => println!("dom0: fuzz: first failure: none"),
        Some(l) => println!("dom0: fuzz: first failure: {}", l.as_str()),
    }
    let passed = f.first.is_none() && total >= calls;
    println!("dom0: fuzz: {}", if passed { "PASSED" } else { "FAILED" });
}
