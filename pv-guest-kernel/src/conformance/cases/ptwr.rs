//! Writable page tables (Xen 4.17's `pv/ro-page-fault.c`): the kernel
//! writes entries of its own live L1 tables directly, through their
//! read-only mappings, with the instructions Linux uses on PTEs (`mov`,
//! `xchg`, `lock cmpxchg`, `lock btr`); the hypervisor checks each new
//! entry as `mmu_update` would and applies it, or delivers the #PF. The
//! entries written are the bootstrap tables' own (found by walking from
//! `pt_base`), and every case puts back what it changed.

#[cfg(target_os = "none")]
use super::helpers;
use crate::conformance::{CaseInfo, Kind};

/// The probes' inputs and outputs (`Probe::Ptwr*` in `traps.rs`): the value
/// stored (or the expected value of `cmpxchg`), the new value of
/// `cmpxchg`, RAX after, and RFLAGS after `cmpxchg` or CF after `btr`.
#[cfg(target_os = "none")]
mod probes {
    use core::sync::atomic::AtomicU64;

    pub static IN_A: AtomicU64 = AtomicU64::new(0);
    pub static IN_B: AtomicU64 = AtomicU64::new(0);
    pub static OUT: AtomicU64 = AtomicU64::new(0);
    pub static FLAGS: AtomicU64 = AtomicU64::new(0);

    // Each probe: setup, the one instruction that may fault (at the offset
    // the cases expect), then the results; 0 if nothing trapped.
    core::arch::global_asm!(
        ".text",
        ".global guest_probe_ptwr_mov",
        ".global guest_probe_ptwr_mov_end",
        "guest_probe_ptwr_mov:",
        "mov {a}(%rip), %rax",
        "mov %rax, (%rdi)",
        "guest_probe_ptwr_mov_end:",
        "xor %eax, %eax",
        "ret",
        ".global guest_probe_ptwr_xchg",
        ".global guest_probe_ptwr_xchg_end",
        "guest_probe_ptwr_xchg:",
        "mov {a}(%rip), %rax",
        "xchg %rax, (%rdi)",
        "mov %rax, {out}(%rip)",
        "guest_probe_ptwr_xchg_end:",
        "xor %eax, %eax",
        "ret",
        ".global guest_probe_ptwr_cmpxchg",
        ".global guest_probe_ptwr_cmpxchg_end",
        "guest_probe_ptwr_cmpxchg:",
        "mov {a}(%rip), %rax",
        "mov {b}(%rip), %rcx",
        "lock cmpxchg %rcx, (%rdi)",
        "pushfq",
        "pop %rcx",
        "mov %rcx, {flags}(%rip)",
        "mov %rax, {out}(%rip)",
        "guest_probe_ptwr_cmpxchg_end:",
        "xor %eax, %eax",
        "ret",
        ".global guest_probe_ptwr_btr",
        ".global guest_probe_ptwr_btr_end",
        "guest_probe_ptwr_btr:",
        "lock btrq $1, (%rdi)",
        "setc %al",
        "movzbl %al, %eax",
        "mov %rax, {flags}(%rip)",
        "guest_probe_ptwr_btr_end:",
        "xor %eax, %eax",
        "ret",
        ".global guest_probe_ptwr_andb",
        ".global guest_probe_ptwr_andb_end",
        "guest_probe_ptwr_andb:",
        "lock andb $0xfd, (%rdi)",
        "guest_probe_ptwr_andb_end:",
        "xor %eax, %eax",
        "ret",
        a = sym IN_A,
        b = sym IN_B,
        out = sym OUT,
        flags = sym FLAGS,
        options(att_syntax)
    );
}

/// Offset of the faulting instruction in `Probe::PtwrMov` and
/// `Probe::PtwrXchg` (after a 7-byte RIP-relative load), and in
/// `Probe::PtwrCmpxchg` (after two).
#[cfg(target_os = "none")]
const STORE_AT: u64 = 7;
#[cfg(target_os = "none")]
const CMPXCHG_AT: u64 = 14;
/// A write fault on a present page from the guest kernel, as delivered
/// (Xen clears the user bit for kernel mode).
#[cfg(target_os = "none")]
const EC_WRITE: u64 = 3;
#[cfg(target_os = "none")]
const ADDR: u64 = 0x000f_ffff_ffff_f000;
/// `MMUEXT_INVLPG_LOCAL`.
#[cfg(target_os = "none")]
const INVLPG_LOCAL: u32 = 7;

/// The virtual address of the bootstrap page-table frame `mfn`.
#[cfg(target_os = "none")]
fn table_va(mfn: u64) -> Option<u64> {
    use crate::conformance::ctx::{mfn_of, start_info};
    let si = start_info();
    (0..si.nr_pt_frames).map(|k| si.pt_base + k * 4096).find(|&va| mfn_of(va) == mfn)
}

/// Read 8 bytes the kernel can read.
#[cfg(target_os = "none")]
fn peek(va: u64) -> u64 {
    // SAFETY: callers pass addresses of mapped page-table pages.
    unsafe { core::ptr::read_volatile(va as *const u64) }
}

/// Walk the running tables to the entry of level `level` that maps `va`:
/// the entry's virtual address (in the read-only mapping of its table).
#[cfg(target_os = "none")]
fn entry_va(va: u64, level: u32) -> Option<u64> {
    let mut table = crate::conformance::ctx::l4_mfn();
    for l in (level..=4).rev() {
        let at = table_va(table)? + ((va >> (12 + 9 * (l - 1))) & 511) * 8;
        if l == level {
            return Some(at);
        }
        let e = peek(at);
        if e & 1 == 0 {
            return None;
        }
        table = (e & ADDR) >> 12;
    }
    None
}

/// Set the inputs and run a probe.
#[cfg(target_os = "none")]
fn run(p: helpers::Probe, at: u64, a: u64, b: u64) -> Result<(), crate::traps::Caught> {
    use core::sync::atomic::Ordering::Relaxed;
    probes::IN_A.store(a, Relaxed);
    probes::IN_B.store(b, Relaxed);
    helpers::probe(p, at)
}

/// `(OUT, FLAGS)` of the last probe.
#[cfg(target_os = "none")]
fn outputs() -> (u64, u64) {
    use core::sync::atomic::Ordering::Relaxed;
    (probes::OUT.load(Relaxed), probes::FLAGS.load(Relaxed))
}

/// Drop this vCPU's translation of `va` (the guest's job after changing a
/// PTE: Xen does not flush for it).
#[cfg(target_os = "none")]
fn invlpg(va: u64) -> i64 {
    helpers::mmuext(INVLPG_LOCAL, va, 0, 0x7ff0)
}

/// Two spare pages, `a` marked with a value, and the L1 entry mapping `a`.
#[cfg(target_os = "none")]
fn setup() -> Option<(u64, u64, u64)> {
    let (a, b) = (crate::conformance::ctx::spare_page()?, crate::conformance::ctx::spare_page()?);
    // SAFETY: both are spare writable pages of our own initial region.
    unsafe {
        core::ptr::write_volatile(a as *mut u64, 0xaaaa);
        core::ptr::write_volatile(b as *mut u64, 0xbbbb);
    }
    Some((a, b, entry_va(a, 1)?))
}

/// Put `a`'s own writable mapping back (by `update_va_mapping`).
#[cfg(target_os = "none")]
fn restore(a: u64) -> i64 {
    helpers::uvm(a, (crate::conformance::ctx::mfn_of(a) << 12) | helpers::PTE_RW)
}

/// The CPU's physical address width (CPUID 0x80000008, native in a PV
/// kernel).
#[cfg(target_os = "none")]
fn paddr_bits() -> u32 {
    core::arch::x86_64::__cpuid(0x8000_0008).eax & 0xff
}

/// Writable page tables for a domU need the assist (dom0 has them anyway).
#[cfg(target_os = "none")]
fn assist(on: bool) -> i64 {
    helpers::vm_assist(if on { 0 } else { 1 }, 2)
}

cases! {
    ptwr_mov_maps_own_frame_then_read ("writable page tables", "mov to a live L1 entry", Accept) {
        let Some((a, b, pte)) = super::setup() else { return error(format_args!("no spare pages or walk")) };
        let on = super::assist(true);
        let w = super::run(Probe::PtwrMov, pte, (mfn_of(b) << 12) | PTE_RW, 0);
        super::invlpg(a);
        let entry = super::peek(pte);
        // SAFETY: `a` is mapped, to b's frame if the write was emulated.
        let seen = unsafe { core::ptr::read_volatile(a as *const u64) };
        let back = super::run(Probe::PtwrMov, pte, (mfn_of(a) << 12) | PTE_RW, 0);
        super::invlpg(a);
        // SAFETY: as above, `a`'s own frame again.
        let again = unsafe { core::ptr::read_volatile(a as *const u64) };
        let fix = super::restore(a);
        super::assist(false);
        all(&[
            expect(on, 0),
            check(w.is_ok(), format_args!("write trapped: {w:?}")),
            check((entry & super::ADDR) >> 12 == mfn_of(b), format_args!("entry {entry:#x}")),
            check(seen == 0xbbbb, format_args!("read {seen:#x} through the new mapping")),
            check(back.is_ok() && again == 0xaaaa, format_args!("put back: {back:?}, read {again:#x}")),
            expect(fix, 0),
        ])
    }
    ptwr_xchg_returns_old_entry ("writable page tables", "xchg on a live L1 entry", Accept) {
        let Some((a, b, pte)) = super::setup() else { return error(format_args!("no spare pages or walk")) };
        super::assist(true);
        let w = super::run(Probe::PtwrXchg, pte, (mfn_of(b) << 12) | PTE_RO, 0);
        let (old, _) = super::outputs();
        super::invlpg(a);
        // SAFETY: `a` is mapped (read-only to b's frame if emulated).
        let seen = unsafe { core::ptr::read_volatile(a as *const u64) };
        let fix = super::restore(a);
        super::assist(false);
        all(&[
            check(w.is_ok(), format_args!("xchg trapped: {w:?}")),
            check((old & super::ADDR) >> 12 == mfn_of(a) && old & 3 == 3, format_args!("old entry {old:#x}")),
            check(seen == 0xbbbb, format_args!("read {seen:#x}")),
            expect(fix, 0),
        ])
    }
    ptwr_cmpxchg_success_and_failure ("writable page tables", "lock cmpxchg on a live L1 entry", Accept) {
        let Some((a, b, pte)) = super::setup() else { return error(format_args!("no spare pages or walk")) };
        super::assist(true);
        let cur = super::peek(pte);
        let new = (mfn_of(b) << 12) | PTE_RW;
        let ok = super::run(Probe::PtwrCmpxchg, pte, cur, new);
        let (_, f1) = super::outputs();
        let after = super::peek(pte);
        // A stale expected value: nothing written, RAX gets the entry.
        let stale = super::run(Probe::PtwrCmpxchg, pte, cur, 0);
        let (rax, f2) = super::outputs();
        let unchanged = super::peek(pte);
        super::invlpg(a);
        let fix = super::restore(a);
        super::assist(false);
        all(&[
            check(ok.is_ok() && f1 & 0x40 != 0, format_args!("cmpxchg: {ok:?}, flags {f1:#x}")),
            check((after & super::ADDR) >> 12 == mfn_of(b), format_args!("entry {after:#x}")),
            check(stale.is_ok() && f2 & 0x40 == 0, format_args!("stale cmpxchg: {stale:?}, flags {f2:#x}")),
            check(rax == after && unchanged == after, format_args!("rax {rax:#x}, entry {unchanged:#x}, want {after:#x}")),
            expect(fix, 0),
        ])
    }
    ptwr_lock_btr_clears_rw ("writable page tables", "lock btrq $1 on a live L1 entry", Accept) {
        let Some((a, _, pte)) = super::setup() else { return error(format_args!("no spare pages or walk")) };
        super::assist(true);
        let w = super::run(Probe::PtwrBtr, pte, 0, 0);
        let (_, cf) = super::outputs();
        let entry = super::peek(pte);
        super::invlpg(a);
        let write = probe(Probe::Write, a);
        let fix = super::restore(a);
        super::assist(false);
        all(&[
            check(w.is_ok(), format_args!("btr trapped: {w:?}")),
            check(cf == 1 && entry & 2 == 0 && (entry & super::ADDR) >> 12 == mfn_of(a), format_args!("CF {cf}, entry {entry:#x}")),
            expect_trap(write, 14, Some(super::EC_WRITE), 0),
            expect(fix, 0),
        ])
    }
    ptwr_pinned_l1_not_in_use_written ("writable page tables", "mov to a pinned L1 no table uses", Accept) {
        let (Some((t, tm)), Some((_, dm))) = (page(), page()) else { return error(format_args!("no spare pages")) };
        super::assist(true);
        let ro = read_only(t, tm);
        let pinned = pin(tm, 1);
        let w = super::run(Probe::PtwrMov, t + 8, (dm << 12) | PTE_RW, 0);
        let entry = super::peek(t + 8);
        let clear = super::run(Probe::PtwrMov, t + 8, 0, 0);
        let cleared = super::peek(t + 8);
        let cleanup = (unpin(tm), writable(t, tm));
        super::assist(false);
        all(&[
            expect(ro, 0),
            expect(pinned, 0),
            check(w.is_ok() && (entry & super::ADDR) >> 12 == dm, format_args!("write {w:?}, entry {entry:#x}")),
            check(clear.is_ok() && cleared == 0, format_args!("clear {clear:?}, entry {cleared:#x}")),
            expect(cleanup.0, 0),
            expect(cleanup.1, 0),
        ])
    }
    ptwr_foreign_frame_is_page_fault ("writable page tables", "PTE to a frame not owned", Attack) {
        // Frame 0x100 (1 MiB) is not this domain's (as in
        // update_va_mapping_foreign_frame_refused).
        let Some((a, _, pte)) = super::setup() else { return error(format_args!("no spare pages or walk")) };
        super::assist(true);
        let before = super::peek(pte);
        let w = super::run(Probe::PtwrMov, pte, (0x100 << 12) | PTE_RW, 0);
        let after = super::peek(pte);
        let x = super::run(Probe::PtwrXchg, pte, (0x100 << 12) | PTE_RO, 0);
        let after_x = super::peek(pte);
        if after != before || after_x != before {
            super::restore(a);
        }
        super::assist(false);
        all(&[
            expect_trap(w, 14, Some(super::EC_WRITE), super::STORE_AT),
            expect_trap(x, 14, Some(super::EC_WRITE), super::STORE_AT),
            check(after == before && after_x == before, format_args!("entry {before:#x} became {after:#x}/{after_x:#x}")),
        ])
    }
    ptwr_writable_map_of_own_l1_is_page_fault ("writable page tables", "writable PTE to the L1 itself", Attack) {
        let Some((a, _, pte)) = super::setup() else { return error(format_args!("no spare pages or walk")) };
        super::assist(true);
        let l1 = mfn_of(pte & !0xfff);
        let before = super::peek(pte);
        let w = super::run(Probe::PtwrCmpxchg, pte, before, (l1 << 12) | PTE_RW);
        let after = super::peek(pte);
        if after != before {
            super::restore(a);
        }
        super::assist(false);
        all(&[expect_trap(w, 14, Some(super::EC_WRITE), super::CMPXCHG_AT), check(after == before, format_args!("entry {before:#x} became {after:#x}"))])
    }
    ptwr_straddling_write_is_page_fault ("writable page tables", "mov across two entries", Trap) {
        let Some((_, _, pte)) = super::setup() else { return error(format_args!("no spare pages or walk")) };
        super::assist(true);
        // Two entries of the same table.
        let at = if pte & 0xfff == 0xff8 { pte - 8 } else { pte };
        let (e0, e1) = (super::peek(at), super::peek(at + 8));
        // The bytes already there: harmless if it were emulated.
        let w = super::run(Probe::PtwrMov, at + 4, (e0 >> 32) | (e1 << 32), 0);
        super::assist(false);
        expect_trap(w, 14, Some(super::EC_WRITE), super::STORE_AT)
    }
    ptwr_write_to_l2_is_page_fault ("writable page tables", "mov to an L2 entry", Trap) {
        // Xen emulates writes to L1 tables only.
        let Some((a, _, _)) = super::setup() else { return error(format_args!("no spare pages or walk")) };
        let Some(l2e) = super::entry_va(a, 2) else { return error(format_args!("no L2 walk")) };
        super::assist(true);
        let w = super::run(Probe::PtwrMov, l2e, super::peek(l2e), 0);
        super::assist(false);
        expect_trap(w, 14, Some(super::EC_WRITE), super::STORE_AT)
    }
    ptwr_dom0_write_to_read_only_mmio_is_dropped ("writable page tables", "mov to the I/O APIC (mmio_ro)", Accept) {
        // Xen keeps the I/O APIC in mmio_ro_ranges: dom0's writable mapping
        // loses RW, and a store through it is dropped (mmio_ro_do_page_fault),
        // so the instruction completes without a fault.
        let Some((a, _, pte)) = super::setup() else { return error(format_args!("no spare pages or walk")) };
        let r = uvm(a, (0xfec00 << 12) | PTE_RW);
        let entry = super::peek(pte);
        let w = if r == 0 { probe(Probe::Write, a) } else { Ok(()) };
        let fix = super::restore(a);
        all(&[
            expect(r, 0),
            check(entry & 2 == 0 && (entry & super::ADDR) >> 12 == 0xfec00, format_args!("entry {entry:#x}")),
            check(w.is_ok(), format_args!("store trapped: {w:?}")),
            expect(fix, 0),
        ])
    }
    iomem_dom0_mfn_beyond_paddr_bits_eperm ("update_va_mapping", "MMIO frame past the CPU's physical address width", Reject) {
        // Xen grants dom0 the I/O memory below 2^paddr_bits only.
        let Some(a) = spare_page() else { return error(format_args!("no spare page")) };
        let bits = super::paddr_bits();
        let r = uvm(a, ((1u64 << bits) & super::ADDR) | PTE_RO);
        if r == 0 { super::restore(a); }
        expect(r, -EPERM)
    }
    iomem_invalid_mfn_einval ("update_va_mapping", "frame 2^40-1 (INVALID_MFN)", Reject) {
        let Some(a) = spare_page() else { return error(format_args!("no spare page")) };
        let r = uvm(a, super::ADDR | PTE_RO);
        if r == 0 { super::restore(a); }
        expect(r, -EINVAL)
    }
    ptwr_lock_andb_merges_one_byte ("writable page tables", "lock andb $0xfd on a live L1 entry", Accept) {
        // Linux's clear_bit with a constant bit: a one-byte write, merged
        // with the other seven bytes of the old entry.
        let Some((a, _, pte)) = super::setup() else { return error(format_args!("no spare pages or walk")) };
        super::assist(true);
        let before = super::peek(pte);
        let w = super::run(Probe::PtwrAndb, pte, 0, 0);
        let entry = super::peek(pte);
        super::invlpg(a);
        let write = probe(Probe::Write, a);
        let fix = super::restore(a);
        super::assist(false);
        // The CPU may set A/D bits meanwhile: compare the rest.
        let keep = !0x62u64;
        all(&[
            check(w.is_ok(), format_args!("andb trapped: {w:?}")),
            check(entry & keep == before & keep & !2, format_args!("entry {before:#x} became {entry:#x}")),
            expect_trap(write, 14, Some(super::EC_WRITE), 0),
            expect(fix, 0),
        ])
    }
    ptwr_cmpxchg_stale_with_bad_new_entry_is_no_fault ("writable page tables", "lock cmpxchg, stale expected, foreign new", Accept) {
        // x86_emulate compares before it asks ptwr to write: a stale
        // expected value fails the compare (RAX loaded, ZF clear) and the
        // new entry is never looked at, even when it would be refused.
        let Some((a, _, pte)) = super::setup() else { return error(format_args!("no spare pages or walk")) };
        super::assist(true);
        let cur = super::peek(pte);
        let w = super::run(Probe::PtwrCmpxchg, pte, cur ^ 0x200, (0x100 << 12) | PTE_RW);
        let (rax, flags) = super::outputs();
        let after = super::peek(pte);
        if after != cur {
            super::restore(a);
        }
        super::assist(false);
        all(&[
            check(w.is_ok(), format_args!("cmpxchg trapped: {w:?}")),
            check(rax == cur && flags & 0x40 == 0 && after == cur, format_args!("rax {rax:#x}, flags {flags:#x}, entry {after:#x}, was {cur:#x}")),
        ])
    }
}
