//! Thin wrappers around privileged instructions: port I/O, control
//! registers, MSRs, halting, and QEMU's `isa-debug-exit` device.

use core::arch::asm;

/// I/O port of QEMU's `isa-debug-exit` device (`iobase=0xf4`).
pub const DEBUG_EXIT_PORT: u16 = 0xf4;
/// Value written for success: QEMU exits with `(0x10 << 1) | 1` = 33.
pub const DEBUG_EXIT_SUCCESS: u32 = 0x10;
/// Value written for failure: QEMU exits with `(0x11 << 1) | 1` = 35.
pub const DEBUG_EXIT_FAILURE: u32 = 0x11;

/// `IA32_EFER`.
pub const MSR_EFER: u32 = 0xc000_0080;

/// Write a byte to an I/O port.
///
/// # Safety
/// The port must belong to a device the hypervisor owns, and the write must
/// not break an invariant another part of the hypervisor relies on.
pub unsafe fn outb(port: u16, val: u8) {
    // SAFETY: the caller vouches for the port; `out` touches no memory.
    unsafe { asm!("out dx, al", in("dx") port, in("al") val, options(nomem, nostack, preserves_flags)) }
}

/// Write a 32-bit value to an I/O port.
///
/// # Safety
/// As for [`outb`].
pub unsafe fn outl(port: u16, val: u32) {
    // SAFETY: the caller vouches for the port; `out` touches no memory.
    unsafe { asm!("out dx, eax", in("dx") port, in("eax") val, options(nomem, nostack, preserves_flags)) }
}

/// Read a byte from an I/O port.
///
/// # Safety
/// The port must belong to a device the hypervisor owns; reads can have
/// side effects on the device.
pub unsafe fn inb(port: u16) -> u8 {
    let val: u8;
    // SAFETY: the caller vouches for the port; `in` touches no memory.
    unsafe { asm!("in al, dx", out("al") val, in("dx") port, options(nomem, nostack, preserves_flags)) }
    val
}

/// The faulting linear address of the last page fault.
pub fn read_cr2() -> u64 {
    let v: u64;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}

/// The current page-table base.
pub fn read_cr3() -> u64 {
    let v: u64;
    // SAFETY: reading CR3 has no side effects.
    unsafe { asm!("mov {}, cr3", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}

/// Switch page tables.
///
/// # Safety
/// `maddr` must be the machine address of a valid L4 table that maps the
/// running code, its stack and every object the caller still uses.
pub unsafe fn write_cr3(maddr: u64) {
    // SAFETY: the caller guarantees the new tables map everything live.
    unsafe { asm!("mov cr3, {}", in(reg) maddr, options(nostack, preserves_flags)) }
}

/// Read CR4.
pub fn read_cr4() -> u64 {
    let v: u64;
    // SAFETY: reading CR4 has no side effects.
    unsafe { asm!("mov {}, cr4", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}

/// Write CR4.
///
/// # Safety
/// The new value must only enable features the CPU has and the hypervisor
/// is ready for.
pub unsafe fn write_cr4(v: u64) {
    // SAFETY: the caller vouches for the bits.
    unsafe { asm!("mov cr4, {}", in(reg) v, options(nostack, preserves_flags)) }
}

/// Read a model-specific register.
///
/// # Safety
/// The MSR must exist on this CPU, or the read raises #GP.
pub unsafe fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: the caller guarantees the MSR exists.
    unsafe { asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags)) }
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Write a model-specific register.
///
/// # Safety
/// The MSR must exist and the value must keep the hypervisor's invariants.
pub unsafe fn wrmsr(msr: u32, val: u64) {
    // SAFETY: the caller vouches for the MSR and value.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") val as u32, in("edx") (val >> 32) as u32,
             options(nostack, preserves_flags))
    }
}

/// `cpuid` for a leaf and sub-leaf: (eax, ebx, ecx, edx).
pub fn cpuid(leaf: u32, subleaf: u32) -> (u32, u32, u32, u32) {
    let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
    (r.eax, r.ebx, r.ecx, r.edx)
}

/// Stop this CPU for good: interrupts off, halt in a loop.
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: disabling interrupts and halting only stops this CPU.
        unsafe { asm!("cli; hlt", options(nomem, nostack)) }
    }
}

/// How the machine stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCode {
    /// The run did what it was asked.
    Success,
    /// Something failed.
    Failure,
}

/// Leave QEMU through `isa-debug-exit`; on a machine without that device,
/// halt.
pub fn qemu_exit(code: ExitCode) -> ! {
    let val = match code {
        ExitCode::Success => DEBUG_EXIT_SUCCESS,
        ExitCode::Failure => DEBUG_EXIT_FAILURE,
    };
    // SAFETY: port 0xf4 is QEMU's debug-exit device, or unused on a machine
    // without it; writing it does not touch memory.
    unsafe { outl(DEBUG_EXIT_PORT, val) };
    halt_forever()
}

pub use crate::domain::vcpu::FpuArea;

/// Save this CPU's FPU/SSE registers (clears CR0.TS first; the caller's
/// resume path sets it again for the next guest).
pub fn fxsave(area: &mut FpuArea) {
    set_cr0_ts(false);
    // SAFETY: `area` is 512 bytes, 16-aligned; FXSAVE only writes there.
    unsafe { asm!("fxsave64 [{}]", in(reg) area.0.as_mut_ptr(), options(nostack, preserves_flags)) };
}

/// Load FPU/SSE registers saved by [`fxsave`] (or the default image).
pub fn fxrstor(area: &FpuArea) {
    set_cr0_ts(false);
    // SAFETY: `area` is a 16-aligned FXSAVE image whose MXCSR has no
    // reserved bits set (made by FXSAVE or by `FpuArea::default`).
    unsafe { asm!("fxrstor64 [{}]", in(reg) area.0.as_ptr(), options(nostack, preserves_flags)) };
}

/// Set or clear CR0.TS (the guest's lazy-FPU flag, `fpu_taskswitch`).
pub fn set_cr0_ts(on: bool) {
    const TS: u64 = 1 << 3;
    let mut cr0: u64;
    // SAFETY: reading CR0 has no side effects.
    unsafe { asm!("mov {}, cr0", out(reg) cr0, options(nomem, nostack, preserves_flags)) };
    let new = if on { cr0 | TS } else { cr0 & !TS };
    if new != cr0 {
        // SAFETY: TS only makes FPU/SSE instructions raise #NM; the
        // hypervisor itself uses no FPU (soft-float target).
        unsafe { asm!("mov cr0, {}", in(reg) new, options(nostack, preserves_flags)) };
    }
}

/// Set or clear CR4.TSD (`rdtsc`/`rdtscp` outside ring 0 raise #GP) for
/// the vCPU about to run, as Xen's `pv_make_cr4` does from the guest's
/// CR4: its kernel's reads are then emulated, its user processes' refused.
pub fn set_cr4_tsd(on: bool) {
    const TSD: u64 = 1 << 2;
    let cr4 = read_cr4();
    let new = if on { cr4 | TSD } else { cr4 & !TSD };
    if new != cr4 {
        // SAFETY: TSD only makes ring-3 time-stamp reads fault; the
        // hypervisor runs in ring 0 and every guest #GP is handled.
        unsafe { write_cr4(new) };
    }
}

/// CR4.SMEP: ring 0 never executes a user page.
const CR4_SMEP: u64 = 1 << 20;
/// CR4.SMAP: ring 0 never touches a user page (with RFLAGS.AC clear).
const CR4_SMAP: u64 = 1 << 21;

/// Supervisor-mode protections this CPU runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Protections {
    /// SMEP is on.
    pub smep: bool,
    /// SMAP is on.
    pub smap: bool,
}

/// Turn on SMEP and SMAP where CPUID reports them. The hypervisor reaches
/// guest memory only through the direct map (`guest::GuestMem`), never
/// through a guest's own (user) mappings, so both can stay on always.
pub fn enable_smep_smap() -> Protections {
    let (_, ebx, _, _) = if cpuid(0, 0).0 >= 7 { cpuid(7, 0) } else { (0, 0, 0, 0) };
    let p = Protections { smep: ebx & (1 << 7) != 0, smap: ebx & (1 << 20) != 0 };
    let bits = if p.smep { CR4_SMEP } else { 0 } | if p.smap { CR4_SMAP } else { 0 };
    // SAFETY: CPUID reports both features; the hypervisor executes only
    // its image and accesses guest memory only through the direct map,
    // neither of which is a user mapping.
    unsafe { write_cr4(read_cr4() | bits) };
    p
}

/// Clear RFLAGS.AC, which an exception or interrupt from a guest leaves as
/// the guest set it (only SYSCALL masks it): with AC set, SMAP would not
/// stop a stray access to a guest page.
pub fn clear_ac() {
    // SAFETY: POPF in ring 0 only changes the flags; only AC differs.
    unsafe { asm!("pushfq", "and qword ptr [rsp], {mask}", "popfq", mask = const !(1u64 << 18) as i64 as i32 as i64, options(preserves_flags)) };
}

/// Flush this CPU's non-global TLB entries (and advance the TLB-flush
/// clock; only for use once the CPU runs with its per-CPU block).
pub fn flush_tlb() {
    super::tlb_clock::stamp_flush();
    // SAFETY: reloading CR3 with its own value only drops TLB entries.
    unsafe { write_cr3(read_cr3()) };
}

/// Drop one page's TLB entry; a non-canonical address (which would fault
/// in ring 0) drops nothing.
pub fn invlpg(va: u64) {
    if !crate::domain::vcpu::is_canonical(va) {
        return;
    }
    // SAFETY: invlpg of a canonical address only drops a TLB entry.
    unsafe { asm!("invlpg [{}]", in(reg) va, options(nostack, preserves_flags)) };
}

/// Write back and invalidate caches (`MMUEXT_FLUSH_CACHE`).
pub fn wbinvd() {
    // SAFETY: wbinvd only writes back caches; it touches no program state.
    unsafe { asm!("wbinvd", options(nostack, preserves_flags)) };
}

/// Whether this is a family-6 Intel CPU of Nehalem or later (model 0x1a
/// and up), where MSR_PLATFORM_INFO, MISC_ENABLE, PLATFORM_ID and the
/// microcode revision exist and read without #GP.
fn intel_nehalem_or_later() -> bool {
    use crate::domain::cpuid::{family, intel, model};
    intel(&MachineHost) && family(&MachineHost) == 6 && model(&MachineHost) >= 0x1a
}

/// Set at boot: the CPU has CPUID faulting and it is on.
static CPUID_FAULTING: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Turn on CPUID faulting on this CPU where it exists (Xen's
/// `probe_cpuid_faulting`, `set_cpuid_faulting`): a `cpuid` in ring 3,
/// which is where every PV guest runs, then raises #GP(0) and the guest
/// gets the PV policy (`guest/exit.rs`); the hypervisor's own `cpuid`
/// (ring 0) is not affected, so it stays on for good. QEMU's TCG CPU
/// models do not offer it (MSR_PLATFORM_INFO reads 0), so under TCG
/// native `cpuid` in a guest sees the host's leaves, as on Xen 4.17
/// there; the forced-emulation prefix always gets the policy.
pub fn enable_cpuid_faulting() -> bool {
    if !intel_nehalem_or_later() {
        return false;
    }
    use crate::domain::priv_op::{MISC_FEATURES_CPUID_FAULTING, PLATFORM_INFO_CPUID_FAULTING, msr};
    // SAFETY: MSR_PLATFORM_INFO exists on Nehalem and later Intel CPUs.
    let info = unsafe { rdmsr(msr::PLATFORM_INFO) };
    if info & PLATFORM_INFO_CPUID_FAULTING == 0 {
        return false;
    }
    // SAFETY: PLATFORM_INFO's faulting bit says MISC_FEATURES_ENABLES
    // exists and bit 0 is CPUID faulting, which only affects CPL > 0.
    unsafe { wrmsr(msr::MISC_FEATURES_ENABLES, rdmsr(msr::MISC_FEATURES_ENABLES) | MISC_FEATURES_CPUID_FAULTING) };
    CPUID_FAULTING.store(true, core::sync::atomic::Ordering::Relaxed);
    true
}

/// The machine behind `domain::priv_op`'s emulation.
pub struct MachineHost;

impl crate::domain::cpuid::RawCpuid for MachineHost {
    fn cpuid(&self, leaf: u32, subleaf: u32) -> crate::domain::cpuid::Leaf {
        let (a, b, c, d) = cpuid(leaf, subleaf);
        crate::domain::cpuid::Leaf { a, b, c, d }
    }
}

impl crate::domain::priv_op::Host for MachineHost {
    fn efer(&self) -> u64 {
        // SAFETY: EFER exists on every x86-64 CPU.
        unsafe { rdmsr(MSR_EFER) }
    }
    fn cr0(&self) -> u64 {
        let v: u64;
        // SAFETY: reading CR0 has no side effects.
        unsafe { asm!("mov {}, cr0", out(reg) v, options(nomem, nostack, preserves_flags)) };
        v
    }
    fn cr4(&self) -> u64 {
        read_cr4()
    }
    fn tsc(&mut self) -> u64 {
        super::clock::rdtsc()
    }
    fn read_msr(&self, msr: u32) -> Option<u64> {
        use crate::domain::priv_op::msr as m;
        if msr == m::ARCH_CAPABILITIES {
            // CPUID.7.0:EDX[29] enumerates it.
            let has = cpuid(0, 0).0 >= 7 && cpuid(7, 0).3 & (1 << 29) != 0;
            // SAFETY: CPUID says the MSR exists.
            return has.then(|| unsafe { rdmsr(msr) });
        }
        if !matches!(msr, m::MISC_ENABLE | m::PLATFORM_ID | m::UCODE_REV) || !intel_nehalem_or_later() {
            return None;
        }
        // SAFETY: these three exist on every Nehalem-or-later Intel CPU.
        Some(unsafe { rdmsr(msr) })
    }
    fn cpuid_faulting(&self) -> bool {
        CPUID_FAULTING.load(core::sync::atomic::Ordering::Relaxed)
    }
    fn wbinvd(&mut self) {
        wbinvd();
    }
}
