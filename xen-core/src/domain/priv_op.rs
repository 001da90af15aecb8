//! Emulation of a PV guest's privileged instructions other than port I/O,
//! from the #GP(0) they raise in ring 3, and of the forced-emulation
//! CPUID from the #UD it raises: Xen 4.17's `pv/emul-priv-op.c`
//! (`validate`, `read_cr`, `write_cr`, `read_msr`, `write_msr`,
//! `cache_op`), `msr.c` (`guest_rdmsr`, `guest_wrmsr`), the instruction
//! rules of `x86_emulate.c` (privilege, operands), and
//! `pv/emul-inv-op.c`.
//!
//! Owns the decisions only: which instruction it is (decoded with
//! `yaxpeax-x86`), whether the guest may run it (kernel mode stands for
//! ring 0, as Xen's `read_segment` fakes DPL 0 for the guest kernel),
//! the values Xen's PV policy shows and which writes it takes, ignores
//! or refuses. The machine (MSRs, CR0/CR4, TSC, caches, CPUID) is behind
//! [`Host`]. Invariants: an instruction that Xen would not emulate leaves
//! the registers untouched and the #GP goes to the guest as raised; a
//! refused one leaves them untouched and delivers #GP(0); a completed one
//! moves RIP past it and changes only what the instruction defines.
#![forbid(unsafe_code)]

use super::cpuid::{self, RawCpuid};
use super::guest_mem::GuestAccess;
use super::vcpu::{CpuUserRegs, Vcpu, is_canonical};
use yaxpeax_arch::LengthedInstruction;
use yaxpeax_x86::long_mode::{InstDecoder, Opcode, Operand, RegSpec, register_class};

/// MSR numbers (Xen's `msr-index.h`).
pub mod msr {
    /// `MSR_IA32_TSC`.
    pub const TSC: u32 = 0x10;
    /// `MSR_IA32_PLATFORM_ID`.
    pub const PLATFORM_ID: u32 = 0x17;
    /// `MSR_APIC_BASE`.
    pub const APIC_BASE: u32 = 0x1b;
    /// `MSR_ARCH_CAPABILITIES`.
    pub const ARCH_CAPABILITIES: u32 = 0x10a;
    /// `MSR_IA32_FEATURE_CONTROL`.
    pub const FEATURE_CONTROL: u32 = 0x3a;
    /// `MSR_AMD_PATCHLEVEL` / `MSR_IA32_UCODE_REV`.
    pub const UCODE_REV: u32 = 0x8b;
    /// `MSR_INTEL_PLATFORM_INFO`.
    pub const PLATFORM_INFO: u32 = 0xce;
    /// `MSR_IA32_MPERF`.
    pub const MPERF: u32 = 0xe7;
    /// `MSR_IA32_APERF`.
    pub const APERF: u32 = 0xe8;
    /// `MSR_INTEL_MISC_FEATURES_ENABLES`.
    pub const MISC_FEATURES_ENABLES: u32 = 0x140;
    /// `MSR_IA32_PERF_STATUS`.
    pub const PERF_STATUS: u32 = 0x198;
    /// `MSR_IA32_PERF_CTL`.
    pub const PERF_CTL: u32 = 0x199;
    /// `MSR_IA32_THERM_CONTROL`.
    pub const THERM_CONTROL: u32 = 0x19a;
    /// `MSR_IA32_THERM_STATUS`.
    pub const THERM_STATUS: u32 = 0x19c;
    /// `MSR_IA32_MISC_ENABLE`.
    pub const MISC_ENABLE: u32 = 0x1a0;
    /// `MSR_IA32_ENERGY_PERF_BIAS`.
    pub const ENERGY_PERF_BIAS: u32 = 0x1b0;
    /// `MSR_IA32_CR_PAT`.
    pub const PAT: u32 = 0x277;
    /// `MSR_IA32_PERF_CAPABILITIES`.
    pub const PERF_CAPABILITIES: u32 = 0x345;
    /// `MSR_EFER`.
    pub const EFER: u32 = 0xc000_0080;
    /// `MSR_FS_BASE`.
    pub const FS_BASE: u32 = 0xc000_0100;
    /// `MSR_GS_BASE`.
    pub const GS_BASE: u32 = 0xc000_0101;
    /// `MSR_SHADOW_GS_BASE`.
    pub const SHADOW_GS_BASE: u32 = 0xc000_0102;
    /// `MSR_TSC_AUX`.
    pub const TSC_AUX: u32 = 0xc000_0103;
    /// `MSR_AMD64_NB_CFG`.
    pub const AMD64_NB_CFG: u32 = 0xc001_001f;
    /// `MSR_K8_HWCR`.
    pub const K8_HWCR: u32 = 0xc001_0015;
    /// `MSR_K7_FID_VID_CTL`, `MSR_K7_FID_VID_STATUS`.
    pub const K7_FID_VID: core::ops::RangeInclusive<u32> = 0xc001_0041..=0xc001_0042;
    /// `MSR_K8_PSTATE_LIMIT` ... `MSR_K8_PSTATE7`.
    pub const K8_PSTATE: core::ops::RangeInclusive<u32> = 0xc001_0061..=0xc001_006b;
    /// `MSR_FAM10H_MMIO_CONF_BASE`.
    pub const FAM10H_MMIO_CONF_BASE: u32 = 0xc001_0058;
    /// `MSR_AMD64_DE_CFG`.
    pub const AMD64_DE_CFG: u32 = 0xc001_1029;
    /// Xen's hypercall-page MSR (`cpuid` leaf 0x40000002 EBX).
    pub const XEN_HYPERCALL_PAGE: u32 = 0x4000_0000;
}

/// `APIC_BASE_BSP`.
const APIC_BASE_BSP: u64 = 1 << 8;
/// `APIC_BASE_ENABLE`.
const APIC_BASE_ENABLE: u64 = 1 << 11;
/// `APIC_DEFAULT_PHYS_BASE`.
const APIC_DEFAULT_PHYS_BASE: u64 = 0xfee0_0000;
/// `XEN_MSR_PAT`: WB, WT, UC-, UC, WC, WP, UC, UC.
pub const XEN_MSR_PAT: u64 = 0x0501_0007_0406;
/// `EFER_KNOWN_MASK`: SCE, LME, LMA, NXE, SVME, FFXSE.
const EFER_KNOWN_MASK: u64 = (1 << 0) | (1 << 8) | (1 << 10) | (1 << 11) | (1 << 12) | (1 << 14);
/// `EFER_SVME`, always hidden.
const EFER_SVME: u64 = 1 << 12;
/// `MSR_IA32_MISC_ENABLE` bits Xen hides or forces.
const MISC_ENABLE_PERF_AVAIL: u64 = 1 << 7;
const MISC_ENABLE_BTS_UNAVAIL: u64 = 1 << 11;
const MISC_ENABLE_PEBS_UNAVAIL: u64 = 1 << 12;
const MISC_ENABLE_MONITOR_ENABLE: u64 = 1 << 18;
const MISC_ENABLE_XTPR_DISABLE: u64 = 1 << 23;
/// `IA32_FEATURE_CONTROL_LOCK`.
const FEATURE_CONTROL_LOCK: u64 = 1;
/// The ARCH_CAPABILITIES bits Xen 4.17 passes to dom0 (RDCL_NO, IBRS_ALL,
/// RSBA, SSB_NO, MDS_NO, IF_PSCHANGE_MC_NO, TAA_NO, SBDR_SSDP_NO,
/// FBSDP_NO, PSDP_NO, FB_CLEAR, RRSBA, BHI_NO, PBRSB_NO).
pub const DOM0_ARCH_CAPS: u64 = 0x7 | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 8) | (7 << 13) | (1 << 17) | (1 << 19) | (1 << 20) | (1 << 24);
/// `MSR_PLATFORM_INFO_CPUID_FAULTING`.
pub const PLATFORM_INFO_CPUID_FAULTING: u64 = 1 << 31;
/// `MSR_MISC_FEATURES_CPUID_FAULTING`.
pub const MISC_FEATURES_CPUID_FAULTING: u64 = 1;

/// CR0.TS.
pub const CR0_TS: u64 = 1 << 3;
/// CR4.TSD.
pub const CR4_TSD: u64 = 1 << 2;
/// CR4.DE.
pub const CR4_DE: u64 = 1 << 3;
/// CR4 bits a PV guest may toggle in its view (`PV_CR4_GUEST_MASK`):
/// TSD, DE, FSGSBASE, OSXSAVE, each only if the policy has the feature.
/// xen-core's policy has neither FSGSBASE nor (without XSAVE in the
/// hypervisor) OSXSAVE, so those two are never kept.
pub const PV_CR4_GUEST_MASK: u64 = CR4_TSD | CR4_DE;
/// CR4 bits a PV guest sees from the hardware (`PV_CR4_GUEST_VISIBLE_MASK`):
/// PAE, MCE, OSFXSR, OSXMMEXCPT.
pub const PV_CR4_GUEST_VISIBLE_MASK: u64 = (1 << 5) | (1 << 6) | (1 << 9) | (1 << 10);

/// The machine, as the emulation needs it.
pub trait Host: RawCpuid {
    /// The hypervisor's EFER.
    fn efer(&self) -> u64;
    /// The hypervisor's CR0.
    fn cr0(&self) -> u64;
    /// The hypervisor's CR4.
    fn cr4(&self) -> u64;
    /// The TSC.
    fn tsc(&mut self) -> u64;
    /// `rdmsr` of an MSR Xen reads from the hardware for the guest
    /// (MISC_ENABLE, PLATFORM_ID, UCODE_REV), or `None` where the CPU
    /// does not have it.
    fn read_msr(&self, msr: u32) -> Option<u64>;
    /// Whether the CPU offers CPUID faulting (MSR_PLATFORM_INFO bit 31).
    fn cpuid_faulting(&self) -> bool;
    /// Write back and invalidate the caches.
    fn wbinvd(&mut self);
}

/// A privileged instruction Xen's `validate` lets through (port I/O is
/// `io_emul.rs`'s).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrivInsn {
    /// `rdmsr`.
    Rdmsr,
    /// `wrmsr`.
    Wrmsr,
    /// `mov %crN, %gpr`.
    ReadCr {
        /// N.
        cr: u8,
        /// The destination register (0 = RAX ... 15 = R15).
        gpr: u8,
    },
    /// `mov %gpr, %crN`.
    WriteCr {
        /// N.
        cr: u8,
        /// The source register.
        gpr: u8,
    },
    /// `mov %drN, %gpr`.
    ReadDr {
        /// N (0-15: REX.R included, as x86_emulate's `modrm_reg`).
        dr: u8,
        /// The destination register.
        gpr: u8,
    },
    /// `mov %gpr, %drN`.
    WriteDr {
        /// N.
        dr: u8,
        /// The source register.
        gpr: u8,
    },
    /// `clts`.
    Clts,
    /// `wbinvd`.
    Wbinvd,
    /// `rdtsc`.
    Rdtsc,
    /// `rdtscp`.
    Rdtscp,
    /// `cpuid` (faulting under CPUID faulting).
    Cpuid,
    /// `cli` or `sti`: skipped when the virtual IOPL allows it (Xen's
    /// `validate` answers X86EMUL_DONE: "too dangerous to allow"), else
    /// the #GP stands.
    CliSti,
}

/// A decoded instruction and its length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// What it is.
    pub insn: PrivInsn,
    /// Its length in bytes.
    pub len: u64,
}

fn gpr(op: Operand) -> Option<RegSpec> {
    match op {
        Operand::Register { reg } if reg.class() == register_class::Q => Some(reg),
        _ => None,
    }
}

/// Decode `bytes` (the guest's instruction at RIP) as 64-bit code; `None`
/// unless it is one of [`PrivInsn`] (a `lock` prefix is #UD on hardware
/// and never reaches here as #GP).
pub fn decode(bytes: &[u8]) -> Option<Decoded> {
    let inst = InstDecoder::default().decode_slice(bytes).ok()?;
    let insn = match inst.opcode() {
        Opcode::RDMSR => PrivInsn::Rdmsr,
        Opcode::WRMSR => PrivInsn::Wrmsr,
        Opcode::CLTS => PrivInsn::Clts,
        Opcode::WBINVD => PrivInsn::Wbinvd,
        Opcode::RDTSC => PrivInsn::Rdtsc,
        Opcode::RDTSCP => PrivInsn::Rdtscp,
        Opcode::CPUID => PrivInsn::Cpuid,
        Opcode::CLI | Opcode::STI => PrivInsn::CliSti,
        Opcode::MOV => match (inst.operand(0), inst.operand(1)) {
            (Operand::Register { reg: c }, src) if c.class() == register_class::CR => PrivInsn::WriteCr { cr: c.num(), gpr: gpr(src)?.num() },
            (dst, Operand::Register { reg: c }) if c.class() == register_class::CR => PrivInsn::ReadCr { cr: c.num(), gpr: gpr(dst)?.num() },
            (Operand::Register { reg: r }, src) if r.class() == register_class::DR => PrivInsn::WriteDr { dr: r.num(), gpr: gpr(src)?.num() },
            (dst, Operand::Register { reg: r }) if r.class() == register_class::DR => PrivInsn::ReadDr { dr: r.num(), gpr: gpr(dst)?.num() },
            _ => return None,
        },
        _ => return None,
    };
    Some(Decoded { insn, len: inst.len().to_const() })
}

impl PrivInsn {
    /// Whether only the guest kernel may run it (x86_emulate's
    /// mode_ring0() checks): user mode gets #GP(0).
    fn ring0_only(self) -> bool {
        matches!(
            self,
            PrivInsn::Rdmsr
                | PrivInsn::Wrmsr
                | PrivInsn::ReadCr { .. }
                | PrivInsn::WriteCr { .. }
                | PrivInsn::ReadDr { .. }
                | PrivInsn::WriteDr { .. }
                | PrivInsn::Clts
                | PrivInsn::Wbinvd
        )
    }
}

impl Emulated {
    /// Whether the instruction is done here, so RIP moves past it.
    fn completed(self) -> bool {
        matches!(self, Emulated::Done | Emulated::DoneCr2 | Emulated::DoneDr)
    }
}

/// How an emulation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emulated {
    /// Not an instruction Xen emulates: deliver the #GP as raised.
    NotEmulated,
    /// Done: RIP is past it.
    Done,
    /// Done, and the guest wrote CR2: the caller mirrors it into
    /// `vcpu_info.arch.cr2` (Xen's `arch_set_cr2`).
    DoneCr2,
    /// Done, and the guest wrote a debug register: the caller loads the
    /// vCPU's debug registers into the hardware (Xen writes them at once
    /// for the running vCPU).
    DoneDr,
    /// Refused: deliver #GP(0), registers untouched.
    GeneralProtection,
    /// `mov %reg, %cr3` with this value: the caller switches the vCPU's
    /// base pointer as MMUEXT_NEW_BASEPTR does (Xen's `write_cr` calls
    /// `new_guest_cr3` on the frame `value >> 12`), then moves RIP past the
    /// instruction by the decoded length; a refusal is the #GP as raised,
    /// -ERESTART runs the instruction again. Registers untouched so far.
    WriteCr3(u64),
    /// `wrmsr` of Xen's hypercall-page MSR with a page-aligned value: the
    /// caller fills the domain's frame `value >> 12` with the hypercall
    /// stubs (Xen's `guest_wrmsr_xen`, sharing the domain builder's
    /// writer), then moves RIP past; a frame it may not write is #GP(0).
    WriteHypercallPage(u64),
    /// Refused as an invalid opcode: deliver #UD, registers untouched
    /// (`mov` to or from %dr4/%dr5 with CR4.DE, or past %dr7).
    InvalidOpcode,
}

/// What the emulation knows about the domain.
pub struct Env<'a, H: Host> {
    /// The machine.
    pub host: &'a mut H,
    /// The domain is the hardware domain (dom0): real `wbinvd`, and
    /// CPUID's hardware-domain leaks.
    pub hardware_domain: bool,
    /// `(major, minor)` for CPUID leaf 0x40000001.
    pub version: (u32, u32),
    /// TSC kHz and TSC-to-ns scale for CPUID leaf 0x40000003.
    pub tsc: (u32, (u32, i8)),
    /// Highest machine frame, for CPUID leaf 0x40000005.
    pub max_mfn: u64,
    /// Xen's `iopl_ok` for the vCPU's current mode (`io_emul::iopl_ok`).
    pub iopl_ok: bool,
}

/// AMD PMU MSRs (`MSR_K7_EVNTSEL0` ... `MSR_K7_PERFCTR3`,
/// `MSR_AMD_FAM15H_EVNTSEL0` ... `PERFCTR5`): vPMU off, as Intel's.
fn amd_pmu_msr(m: u32) -> bool {
    matches!(m, 0xc001_0000..=0xc001_0007 | 0xc001_0200..=0xc001_020b)
}

/// `K8_HWCR_TSC_FREQ_SEL`.
const K8_HWCR_TSC_FREQ_SEL: u64 = 1 << 24;
/// `AMD64_DE_CFG_LFENCE_SERIALISE`.
const AMD64_DE_CFG_LFENCE_SERIALISE: u64 = 1 << 1;

/// Xen's `guest_efer` for a 64-bit PV domain.
pub fn guest_efer(host_efer: u64) -> u64 {
    host_efer & EFER_KNOWN_MASK & !EFER_SVME
}

/// Xen's `guest_misc_enable`.
pub fn guest_misc_enable(host: u64) -> u64 {
    (host & !(MISC_ENABLE_PERF_AVAIL | MISC_ENABLE_MONITOR_ENABLE)) | MISC_ENABLE_BTS_UNAVAIL | MISC_ENABLE_PEBS_UNAVAIL | MISC_ENABLE_XTPR_DISABLE
}

/// The guest's CR4 as `read_cr` shows it: its own bits and Xen's visible
/// ones (`pv_fixup_guest_cr4`).
pub fn guest_cr4(v: &Vcpu, host_cr4: u64) -> u64 {
    (v.cr4 & PV_CR4_GUEST_MASK) | (host_cr4 & PV_CR4_GUEST_VISIBLE_MASK)
}

/// Intel architectural PMU MSRs (`MSR_P6_PERFCTR(0..7)`, `MSR_P6_EVNTSEL(0..3)`,
/// fixed counters and global controls): with the vPMU off (Xen 4.17's
/// default) they read 0 and writes are dropped.
fn intel_pmu_msr(m: u32) -> bool {
    matches!(m, 0xc1..=0xc8 | 0x186..=0x189 | 0x309..=0x30b | 0x38d..=0x390)
}

/// Xen's `read_msr` (`guest_rdmsr` first) for a 64-bit PV vCPU on an Intel
/// or AMD host; `None` is #GP(0).
pub fn read_msr<H: Host>(m: u32, v: &Vcpu, env: &mut Env<'_, H>) -> Option<u64> {
    let intel = cpuid::intel(env.host);
    let amd = cpuid::amd_like(env.host);
    let rdtscp = env.host.cpuid(0x8000_0001, 0).d & cpuid::feat::RDTSCP != 0;
    Some(match m {
        msr::K8_HWCR if amd => {
            if cpuid::family(env.host) >= 0x10 {
                K8_HWCR_TSC_FREQ_SEL
            } else {
                0
            }
        }
        msr::AMD64_DE_CFG if amd => AMD64_DE_CFG_LFENCE_SERIALISE,
        // guest_rdmsr.
        msr::FEATURE_CONTROL if intel => FEATURE_CONTROL_LOCK,
        msr::PLATFORM_ID | msr::UCODE_REV if intel => env.host.read_msr(m)?,
        // Only dom0's policy has ARCH_CAPS (init_domain_msr_policy).
        msr::ARCH_CAPABILITIES if env.hardware_domain => env.host.read_msr(m)? & DOM0_ARCH_CAPS,
        msr::PLATFORM_INFO => {
            if env.host.cpuid_faulting() {
                PLATFORM_INFO_CPUID_FAULTING
            } else {
                0
            }
        }
        msr::MISC_FEATURES_ENABLES => v.misc_features_enables,
        m if super::vmce::is_vmce_msr(m) => return v.vmce.rdmsr(m, intel),
        msr::PERF_STATUS | msr::PERF_CTL | msr::THERM_STATUS if intel => 0,
        msr::XEN_HYPERCALL_PAGE => 0,
        msr::TSC_AUX if rdtscp => 0,
        0x4000_0001..=0x4000_02ff => return None,
        // read_msr.
        msr::APIC_BASE => APIC_BASE_ENABLE | APIC_DEFAULT_PHYS_BASE | if v.vcpu_id == 0 { APIC_BASE_BSP } else { 0 },
        msr::FS_BASE => v.fs_base,
        msr::GS_BASE => v.gs_base(),
        msr::SHADOW_GS_BASE => {
            if v.kernel_mode {
                v.gs_base_user
            } else {
                v.gs_base_kernel
            }
        }
        msr::TSC => env.host.tsc(),
        msr::EFER => guest_efer(env.host.efer()),
        msr::PAT => XEN_MSR_PAT,
        msr::MISC_ENABLE => guest_misc_enable(env.host.read_msr(m)?),
        msr::PERF_CAPABILITIES => 0,
        // Not a cpufreq controller: the P-state MSRs read 0 on AMD.
        m if amd && (msr::K7_FID_VID.contains(&m) || msr::K8_PSTATE.contains(&m)) => 0,
        msr::FAM10H_MMIO_CONF_BASE if amd && (0x10..0x17).contains(&cpuid::family(env.host)) => 0,
        msr::AMD64_NB_CFG => 0,
        m if (intel && intel_pmu_msr(m)) || (amd && amd_pmu_msr(m)) => 0,
        _ => return None,
    })
}

/// Xen's `write_msr` (`guest_wrmsr` first); `false` is #GP(0), nothing
/// changed.
pub fn write_msr<H: Host>(m: u32, val: u64, v: &mut Vcpu, env: &mut Env<'_, H>) -> bool {
    let intel = cpuid::intel(env.host);
    let amd = cpuid::amd_like(env.host);
    match m {
        // guest_wrmsr.
        msr::MISC_FEATURES_ENABLES => {
            let allowed = if env.host.cpuid_faulting() { MISC_FEATURES_CPUID_FAULTING } else { 0 };
            if val & !allowed != 0 {
                return false;
            }
            v.misc_features_enables = val;
            true
        }
        // Intel documents writing 0 before reading the microcode revision.
        msr::UCODE_REV => intel && val == 0,
        m if super::vmce::is_vmce_msr(m) => v.vmce.wrmsr(m, val, intel),
        // Dropped for a domain that is not a cpufreq controller.
        msr::PERF_CTL => intel,
        // write_msr.
        msr::FS_BASE | msr::GS_BASE | msr::SHADOW_GS_BASE if !is_canonical(val) => false,
        msr::FS_BASE => {
            v.fs_base = val;
            true
        }
        msr::GS_BASE => {
            if v.kernel_mode {
                v.gs_base_kernel = val;
            } else {
                v.gs_base_user = val;
            }
            true
        }
        msr::SHADOW_GS_BASE => {
            if v.kernel_mode {
                v.gs_base_user = val;
            } else {
                v.gs_base_kernel = val;
            }
            true
        }
        // Linux writes back the value it read; any change is refused.
        msr::EFER => val == guest_efer(env.host.efer()),
        // Any value is accepted and ignored ("Domain attempted WRMSR").
        msr::MISC_ENABLE => env.host.read_msr(m).is_some(),
        msr::MPERF | msr::APERF => true,
        msr::THERM_CONTROL | msr::ENERGY_PERF_BIAS => intel,
        msr::AMD64_NB_CFG => true,
        // Dropped on AMD for a domain that is not a cpufreq controller.
        m if amd && (msr::K7_FID_VID.contains(&m) || msr::K8_PSTATE.contains(&m) || m == msr::K8_HWCR) => true,
        msr::FAM10H_MMIO_CONF_BASE => amd && (0x10..0x17).contains(&cpuid::family(env.host)),
        m if (intel && intel_pmu_msr(m)) || (amd && amd_pmu_msr(m)) => true,
        _ => false,
    }
}

fn cpuid_ctx<H: Host>(v: &Vcpu, env: &Env<'_, H>, forced: bool) -> cpuid::Context {
    cpuid::Context {
        kernel_mode: v.kernel_mode,
        hardware_domain: env.hardware_domain,
        forced,
        guest_cr4: guest_cr4(v, env.host.cr4()),
        host_osxsave: env.host.cr4() & cpuid::CR4_OSXSAVE != 0,
        vcpu_id: v.vcpu_id,
        version: env.version,
        tsc_khz: env.tsc.0,
        tsc_to_ns: env.tsc.1,
        max_mfn: env.max_mfn,
    }
}

/// Xen's `guest_cpuid` into the guest's registers: leaf in EAX, sub-leaf
/// in ECX. `forced`: from the forced-emulation prefix (#UD), else from
/// CPUID faulting (#GP).
pub fn emulate_cpuid<H: Host>(regs: &mut CpuUserRegs, v: &Vcpu, env: &mut Env<'_, H>, forced: bool) {
    let ctx = cpuid_ctx(v, env, forced);
    let l = cpuid::guest_cpuid(env.host, &ctx, regs.rax as u32, regs.rcx as u32);
    regs.rax = u64::from(l.a);
    regs.rbx = u64::from(l.b);
    regs.rcx = u64::from(l.c);
    regs.rdx = u64::from(l.d);
}

/// Emulate `d` (decoded at RIP) for `v`, whose registers are `regs`.
pub fn emulate<H: Host>(d: &Decoded, regs: &mut CpuUserRegs, v: &mut Vcpu, env: &mut Env<'_, H>) -> Emulated {
    // x86_emulate's mode_ring0(): the guest kernel counts as ring 0.
    let ring0 = v.kernel_mode;
    if !ring0 && d.insn.ring0_only() {
        return Emulated::GeneralProtection;
    }
    let out = match d.insn {
        PrivInsn::Rdmsr | PrivInsn::Wrmsr => emulate_msr(d.insn, regs, v, env),
        PrivInsn::ReadCr { cr, gpr } => read_cr(cr, gpr, regs, v, env),
        PrivInsn::WriteCr { cr, gpr } => write_cr(cr, regs.gpr(gpr), v, env),
        PrivInsn::ReadDr { .. } | PrivInsn::WriteDr { .. } => emulate_dr(d.insn, regs, v),
        PrivInsn::Clts => {
            v.fpu_ts = false;
            Emulated::Done
        }
        PrivInsn::Wbinvd => {
            // cache_flush_permitted: only a domain with I/O resources;
            // others' wbinvd is ignored.
            if env.hardware_domain {
                env.host.wbinvd();
            }
            Emulated::Done
        }
        PrivInsn::Rdtsc | PrivInsn::Rdtscp => emulate_rdtsc(d.insn == PrivInsn::Rdtscp, ring0, regs, v, env),
        PrivInsn::CliSti if env.iopl_ok => Emulated::Done,
        PrivInsn::CliSti => Emulated::NotEmulated,
        // The guest's own CPUID faulting (MSR_MISC_FEATURES_ENABLES)
        // applies outside ring 0.
        PrivInsn::Cpuid if !ring0 && v.misc_features_enables & MISC_FEATURES_CPUID_FAULTING != 0 => Emulated::GeneralProtection,
        PrivInsn::Cpuid => {
            emulate_cpuid(regs, v, env, false);
            Emulated::Done
        }
    };
    if out.completed() {
        regs.rip = regs.rip.wrapping_add(d.len);
    }
    out
}

/// `rdmsr` and `wrmsr` (the hypercall-page MSR left to the caller).
fn emulate_msr<H: Host>(insn: PrivInsn, regs: &mut CpuUserRegs, v: &mut Vcpu, env: &mut Env<'_, H>) -> Emulated {
    let index = regs.rcx as u32;
    match insn {
        PrivInsn::Rdmsr => match read_msr(index, v, env) {
            Some(val) => {
                regs.set_edx_eax(val);
                Emulated::Done
            }
            None => Emulated::GeneralProtection,
        },
        // guest_wrmsr_xen: a page index other than 0 is #GP.
        _ if index == msr::XEN_HYPERCALL_PAGE && regs.edx_eax() & 0xfff != 0 => Emulated::GeneralProtection,
        _ if index == msr::XEN_HYPERCALL_PAGE => Emulated::WriteHypercallPage(regs.edx_eax()),
        _ if write_msr(index, regs.edx_eax(), v, env) => Emulated::Done,
        _ => Emulated::GeneralProtection,
    }
}

/// `mov %crN, %reg`.
fn read_cr<H: Host>(cr: u8, gpr: u8, regs: &mut CpuUserRegs, v: &Vcpu, env: &mut Env<'_, H>) -> Emulated {
    let val = match cr {
        0 => (env.host.cr0() & !CR0_TS) | if v.fpu_ts { CR0_TS } else { 0 },
        2 => v.cr2,
        // xen_pfn_to_cr3(mfn_to_gfn(guest_table)): a PV domain's gfn is
        // its mfn.
        3 => v.guest_table & !0xfff,
        4 => guest_cr4(v, env.host.cr4()),
        _ => return Emulated::NotEmulated,
    };
    *regs.gpr_mut(gpr) = val;
    Emulated::Done
}

/// `mov %reg, %crN` of `val`.
fn write_cr<H: Host>(cr: u8, val: u64, v: &mut Vcpu, env: &mut Env<'_, H>) -> Emulated {
    match cr {
        // Only TS may change ("Attempt to change unmodifiable CR0 flags"
        // is unhandleable: the #GP goes to the guest).
        0 if (val ^ env.host.cr0()) & !CR0_TS != 0 => Emulated::NotEmulated,
        0 => {
            v.fpu_ts = val & CR0_TS != 0;
            Emulated::Done
        }
        2 => {
            v.cr2 = val;
            Emulated::DoneCr2
        }
        3 => Emulated::WriteCr3(val),
        4 => {
            v.cr4 = val & PV_CR4_GUEST_MASK;
            Emulated::Done
        }
        _ => Emulated::NotEmulated,
    }
}

/// `mov` to or from a debug register: x86emul_read_dr / x86emul_write_dr
/// (set_debugreg), where -ENODEV is #UD and any other refusal #GP(0).
fn emulate_dr(insn: PrivInsn, regs: &mut CpuUserRegs, v: &mut Vcpu) -> Emulated {
    match insn {
        PrivInsn::ReadDr { dr, gpr } => match v.debug.get(v.cr4_de(), u32::from(dr)) {
            Ok(val) => {
                *regs.gpr_mut(gpr) = val;
                Emulated::Done
            }
            Err(_) => Emulated::InvalidOpcode,
        },
        PrivInsn::WriteDr { dr, gpr } => match v.debug.set(v.cr4_de(), u32::from(dr), regs.gpr(gpr)) {
            Ok(()) => Emulated::DoneDr,
            Err(e) if e == -xen_public::errno::ENODEV => Emulated::InvalidOpcode,
            Err(_) => Emulated::GeneralProtection,
        },
        _ => Emulated::NotEmulated,
    }
}

/// `rdtsc`, or `rdtscp` (which also loads TSC_AUX into ECX): refused
/// outside ring 0 under the guest's CR4.TSD.
fn emulate_rdtsc<H: Host>(rdtscp: bool, ring0: bool, regs: &mut CpuUserRegs, v: &Vcpu, env: &mut Env<'_, H>) -> Emulated {
    if !ring0 && guest_cr4(v, env.host.cr4()) & CR4_TSD != 0 {
        return Emulated::GeneralProtection;
    }
    if rdtscp {
        let Some(aux) = read_msr(msr::TSC_AUX, v, env) else { return Emulated::GeneralProtection };
        regs.rcx = aux & 0xffff_ffff;
    }
    regs.set_edx_eax(env.host.tsc());
    Emulated::Done
}

/// What the bytes at a #UD's RIP are (`emulate_forced_invalid_op`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forced {
    /// Not the forced-emulation prefix with `cpuid`: the #UD stands.
    No,
    /// Reading the bytes faulted: #PF(0) at this address.
    Fault(u64),
    /// `ud2; "xen"; cpuid`: emulate CPUID and move RIP past all 7 bytes.
    Cpuid,
    /// The same from user mode with the guest's own CPUID faulting on
    /// (MSR_MISC_FEATURES_ENABLES): #GP(0) at the `cpuid`, that is with
    /// RIP moved past the [`FORCED_PREFIX_LEN`] bytes before it.
    GpAtCpuid,
}

/// Bytes of the forced-emulation prefix before its `cpuid` (`ud2; "xen"`).
pub const FORCED_PREFIX_LEN: u64 = cpuid::FORCED_EMULATION.len() as u64 - 2;

/// Xen reads the 5-byte signature, then the 2-byte `cpuid`, each as one
/// copy; a copy that faults gives #PF at its first byte not copied.
/// `v`'s own CPUID faulting applies to the `cpuid` from user mode.
pub fn forced_emulation(mem: &impl GuestAccess, rip: u64, v: &Vcpu) -> Forced {
    let sig = &cpuid::FORCED_EMULATION;
    let (got, n) = super::guest_mem::fetch_insn(mem, rip);
    let prefix = FORCED_PREFIX_LEN as usize;
    for part in [0..prefix, prefix..sig.len()] {
        if n < part.end {
            return Forced::Fault(rip.wrapping_add(n as u64));
        }
        if got[part.clone()] != sig[part] {
            return Forced::No;
        }
    }
    if !v.kernel_mode && v.misc_features_enables & MISC_FEATURES_CPUID_FAULTING != 0 { Forced::GpAtCpuid } else { Forced::Cpuid }
}

#[cfg(test)]
mod tests {
    use super::super::cpuid::Leaf;
    use super::super::guest_mem::tests::FakeGuest;
    use super::*;

    struct Machine {
        amd: bool,
        iopl_ok: bool,
        tsc: u64,
        flushed: u32,
        faulting: bool,
        misc_enable: Option<u64>,
    }

    impl RawCpuid for Machine {
        fn cpuid(&self, leaf: u32, _sub: u32) -> Leaf {
            match leaf {
                0 if self.amd => Leaf { a: 0xd, b: 0x6874_7541, c: 0x444d_4163, d: 0x6974_6e65 },
                1 if self.amd => Leaf { a: 0x00a2_0f12, b: 0x800, c: 0x8000_0000, d: 0x0f8b_fbff },
                0 => Leaf { a: 0xd, b: 0x756e_6547, c: 0x6c65_746e, d: 0x4965_6e69 },
                1 => Leaf { a: 0x306c1, b: 0x800, c: 0x8000_0000 | cpuid::feat::VMX, d: 0x0f8b_fbff },
                0x4000_0000 => Leaf::default(),
                0x8000_0000 => Leaf { a: 0x8000_0008, ..Leaf::default() },
                0x8000_0001 => Leaf { a: 0, b: 0, c: 0x21, d: 0x2c10_0800 | cpuid::feat::RDTSCP },
                _ => Leaf::default(),
            }
        }
    }

    impl Host for Machine {
        fn efer(&self) -> u64 {
            0xd01 | EFER_SVME
        }
        fn cr0(&self) -> u64 {
            0x8005_003b
        }
        fn cr4(&self) -> u64 {
            0x0030_06f0
        }
        fn tsc(&mut self) -> u64 {
            self.tsc += 1;
            self.tsc
        }
        fn read_msr(&self, m: u32) -> Option<u64> {
            match m {
                msr::MISC_ENABLE => self.misc_enable,
                msr::ARCH_CAPABILITIES => Some(!0),
                _ => None,
            }
        }
        fn cpuid_faulting(&self) -> bool {
            self.faulting
        }
        fn wbinvd(&mut self) {
            self.flushed += 1;
        }
    }

    fn machine() -> Machine {
        Machine { amd: false, iopl_ok: false, tsc: 0x1_2345_6789, flushed: 0, faulting: false, misc_enable: Some(0x85_0089) }
    }

    fn run(code: &[u8], r: &mut CpuUserRegs, v: &mut Vcpu, m: &mut Machine, hw: bool) -> Emulated {
        let Some(d) = decode(code) else { return Emulated::NotEmulated };
        let m_iopl = m.iopl_ok;
        let mut env = Env { host: m, hardware_domain: hw, version: (4, 17), tsc: (2_000_000, (0x8000_0000, 0)), max_mfn: 0xfffff, iopl_ok: m_iopl };
        emulate(&d, r, v, &mut env)
    }

    fn regs() -> CpuUserRegs {
        CpuUserRegs { rip: 0x1000, ..Default::default() }
    }

    const RDMSR: [u8; 2] = [0x0f, 0x32];
    const WRMSR: [u8; 2] = [0x0f, 0x30];

    fn rdmsr(m: u32, v: &mut Vcpu, mach: &mut Machine) -> Result<u64, Emulated> {
        let mut r = CpuUserRegs { rcx: u64::from(m), rax: 0xdead, rdx: 0xbeef, ..regs() };
        match run(&RDMSR, &mut r, v, mach, true) {
            Emulated::Done => {
                assert_eq!(r.rip, 0x1002);
                Ok((r.rdx << 32) | r.rax)
            }
            e => {
                assert_eq!((r.rax, r.rdx, r.rip), (0xdead, 0xbeef, 0x1000), "refused: registers untouched");
                Err(e)
            }
        }
    }

    fn wrmsr(m: u32, val: u64, v: &mut Vcpu, mach: &mut Machine) -> Emulated {
        let mut r = CpuUserRegs { rcx: u64::from(m), rax: val & 0xffff_ffff, rdx: val >> 32, ..regs() };
        run(&WRMSR, &mut r, v, mach, true)
    }

    #[test]
    fn decode_knows_xens_validate_list() {
        let d = |b: &[u8]| decode(b).map(|x| (x.insn, x.len));
        assert_eq!(d(&RDMSR), Some((PrivInsn::Rdmsr, 2)));
        assert_eq!(d(&WRMSR), Some((PrivInsn::Wrmsr, 2)));
        assert_eq!(d(&[0x0f, 0x20, 0xe0]), Some((PrivInsn::ReadCr { cr: 4, gpr: 0 }, 3)), "mov %cr4, %rax");
        assert_eq!(d(&[0x0f, 0x20, 0xc3]), Some((PrivInsn::ReadCr { cr: 0, gpr: 3 }, 3)), "mov %cr0, %rbx");
        assert_eq!(d(&[0x41, 0x0f, 0x22, 0xc0]), Some((PrivInsn::WriteCr { cr: 0, gpr: 8 }, 4)), "mov %r8, %cr0");
        assert_eq!(d(&[0x44, 0x0f, 0x20, 0xc0]), Some((PrivInsn::ReadCr { cr: 8, gpr: 0 }, 4)), "mov %cr8, %rax");
        assert_eq!(d(&[0x0f, 0x06]), Some((PrivInsn::Clts, 2)));
        assert_eq!(d(&[0x0f, 0x09]), Some((PrivInsn::Wbinvd, 2)));
        assert_eq!(d(&[0x0f, 0x31]), Some((PrivInsn::Rdtsc, 2)));
        assert_eq!(d(&[0x0f, 0x01, 0xf9]), Some((PrivInsn::Rdtscp, 3)));
        assert_eq!(d(&[0x0f, 0xa2]), Some((PrivInsn::Cpuid, 2)));
        assert_eq!(d(&[0x0f, 0x33]), None, "rdpmc: not in Xen's list, the #GP stands");
        assert_eq!(d(&[0x0f, 0x01, 0xf8]), None, "swapgs");
        assert_eq!(d(&[0x0f, 0x01, 0x18]), None, "lidt");
        assert_eq!(d(&[0xfa]), Some((PrivInsn::CliSti, 1)), "cli");
        assert_eq!(d(&[0xfb]), Some((PrivInsn::CliSti, 1)), "sti");
        assert_eq!(d(&[]), None);
    }

    #[test]
    fn wrmsr_of_the_hypercall_page_msr_asks_for_the_page_and_other_xen_msrs_gp() {
        // guest_wrmsr_xen (non-Viridian): 0x40000000 writes the page at
        // gfn value >> 12, page index (low 12 bits) 0 only; the rest of
        // 0x40000000-0x400002ff is #GP.
        let (mut v, mut m) = (Vcpu::default(), machine());
        let mut r = CpuUserRegs { rcx: 0x4000_0000, rax: 0x2345_6000, rdx: 0x1, ..regs() };
        assert_eq!(run(&WRMSR, &mut r, &mut v, &mut m, true), Emulated::WriteHypercallPage(0x1_2345_6000));
        assert_eq!(r.rip, 0x1000, "RIP moves only once the page is written");
        let mut r = CpuUserRegs { rcx: 0x4000_0000, rax: 0x2345_6001, ..regs() };
        assert_eq!(run(&WRMSR, &mut r, &mut v, &mut m, true), Emulated::GeneralProtection, "page index 1");
        for msr in [0x4000_0001, 0x4000_0200, 0x4000_02ff] {
            let mut r = CpuUserRegs { rcx: msr, ..regs() };
            assert_eq!(run(&WRMSR, &mut r, &mut v, &mut m, true), Emulated::GeneralProtection, "{msr:#x}");
        }
        v.kernel_mode = false;
        let mut r = CpuUserRegs { rcx: 0x4000_0000, ..regs() };
        assert_eq!(run(&WRMSR, &mut r, &mut v, &mut m, true), Emulated::GeneralProtection, "not from user mode");
    }

    #[test]
    fn mov_to_cr3_asks_for_new_guest_cr3_and_leaves_rip() {
        // Xen's write_cr(3): new_guest_cr3(gfn = value >> 12); this
        // module only decides, the base-pointer switch is mmu_ops's.
        let (mut v, mut m) = (Vcpu::default(), machine());
        let mut r = CpuUserRegs { rdx: 0x1234_5000, ..regs() };
        assert_eq!(run(&[0x0f, 0x22, 0xda], &mut r, &mut v, &mut m, true), Emulated::WriteCr3(0x1234_5000), "mov %rdx, %cr3");
        assert_eq!(r.rip, 0x1000, "RIP moves only once the switch is done");
        v.kernel_mode = false;
        assert_eq!(run(&[0x0f, 0x22, 0xda], &mut r, &mut v, &mut m, true), Emulated::GeneralProtection, "not from user mode");
    }

    #[test]
    fn mov_to_and_from_debug_registers_is_xens_read_dr_and_write_dr() {
        // mov %rax, %dr0 (0f 23 c0); mov %dr0, %rbx (0f 21 c3); mov %rcx, %dr7 (0f 23 f9).
        assert_eq!(decode(&[0x0f, 0x23, 0xc0]).map(|d| d.insn), Some(PrivInsn::WriteDr { dr: 0, gpr: 0 }));
        assert_eq!(decode(&[0x0f, 0x21, 0xc3]).map(|d| d.insn), Some(PrivInsn::ReadDr { dr: 0, gpr: 3 }));
        let (mut v, mut m) = (Vcpu::default(), machine());
        let mut r = CpuUserRegs { rax: 0x7000_1000, ..regs() };
        assert_eq!(run(&[0x0f, 0x23, 0xc0], &mut r, &mut v, &mut m, true), Emulated::DoneDr);
        assert_eq!((v.debug.dr[0], r.rip), (0x7000_1000, 0x1003));
        let mut r = regs();
        assert_eq!(run(&[0x0f, 0x21, 0xc3], &mut r, &mut v, &mut m, true), Emulated::Done);
        assert_eq!(r.rbx, 0x7000_1000);
        let mut r = CpuUserRegs { rcx: 0x1, ..regs() };
        assert_eq!(run(&[0x0f, 0x23, 0xf9], &mut r, &mut v, &mut m, true), Emulated::DoneDr);
        assert_eq!((v.debug.dr7, v.debug.active()), (0x401, true));
        let mut r = regs();
        assert_eq!(run(&[0x0f, 0x21, 0xf0], &mut r, &mut v, &mut m, true), Emulated::Done, "mov %dr6, %rax");
        assert_eq!(r.rax, 0xffff_0ff0);
    }

    #[test]
    fn refused_debug_register_moves_are_gp_or_ud_and_change_nothing() {
        let (mut v, mut m) = (Vcpu::default(), machine());
        // A hypervisor address in DR1, General Detect in DR7: #GP(0).
        let mut r = CpuUserRegs { rax: 0xffff_8000_0000_1000, ..regs() };
        assert_eq!(run(&[0x0f, 0x23, 0xc8], &mut r, &mut v, &mut m, true), Emulated::GeneralProtection);
        let mut r = CpuUserRegs { rax: 0x2001, ..regs() };
        assert_eq!(run(&[0x0f, 0x23, 0xf8], &mut r, &mut v, &mut m, true), Emulated::GeneralProtection);
        assert_eq!((v.debug, r.rip), (crate::domain::debugreg::DebugRegs::default(), 0x1000));
        // DR4 with CR4.DE: #UD (x86emul_read_dr's ud_fault).
        v.cr4 = CR4_DE;
        let mut r = regs();
        assert_eq!(run(&[0x0f, 0x21, 0xe0], &mut r, &mut v, &mut m, true), Emulated::InvalidOpcode, "mov %dr4, %rax");
        assert_eq!(run(&[0x0f, 0x23, 0xe8], &mut r, &mut v, &mut m, true), Emulated::InvalidOpcode, "mov %rax, %dr5");
        // From guest user mode: #GP(0) (not ring 0).
        v.kernel_mode = false;
        assert_eq!(run(&[0x0f, 0x21, 0xc3], &mut r, &mut v, &mut m, true), Emulated::GeneralProtection);
        assert_eq!(r.rip, 0x1000);
    }

    #[test]
    fn wrmsr_gs_base_in_kernel_mode_sets_the_kernel_gs_base_and_rdmsr_reads_it_back() {
        // Linux PV's first instruction: wrmsr MSR_GS_BASE.
        let (mut v, mut m) = (Vcpu::default(), machine());
        assert_eq!(wrmsr(msr::GS_BASE, 0xffff_8880_1234_5000, &mut v, &mut m), Emulated::Done);
        assert_eq!(v.gs_base_kernel, 0xffff_8880_1234_5000);
        assert_eq!(rdmsr(msr::GS_BASE, &mut v, &mut m), Ok(0xffff_8880_1234_5000));
        assert_eq!(wrmsr(msr::SHADOW_GS_BASE, 0x7f00_0000_1000, &mut v, &mut m), Emulated::Done);
        assert_eq!(v.gs_base_user, 0x7f00_0000_1000, "shadow GS is the user GS base");
        assert_eq!(wrmsr(msr::FS_BASE, 0x7f00_0000_2000, &mut v, &mut m), Emulated::Done);
        assert_eq!(rdmsr(msr::FS_BASE, &mut v, &mut m), Ok(0x7f00_0000_2000));
    }

    #[test]
    fn non_canonical_segment_base_is_gp_and_changes_nothing() {
        let (mut v, mut m) = (Vcpu { fs_base: 0x1000, ..Vcpu::default() }, machine());
        for msr in [msr::FS_BASE, msr::GS_BASE, msr::SHADOW_GS_BASE] {
            assert_eq!(wrmsr(msr, 0x8000_0000_0000_0000, &mut v, &mut m), Emulated::GeneralProtection);
        }
        assert_eq!((v.fs_base, v.gs_base_kernel, v.gs_base_user), (0x1000, 0, 0));
    }

    #[test]
    fn msrs_read_as_xen_shows_them() {
        let (mut v, mut m) = (Vcpu::default(), machine());
        assert_eq!(rdmsr(msr::EFER, &mut v, &mut m), Ok(0xd01), "host EFER without SVME");
        assert_eq!(rdmsr(msr::PAT, &mut v, &mut m), Ok(XEN_MSR_PAT));
        assert_eq!(rdmsr(msr::APIC_BASE, &mut v, &mut m), Ok(0xfee0_0900), "enabled, BSP on vCPU 0");
        v.vcpu_id = 1;
        assert_eq!(rdmsr(msr::APIC_BASE, &mut v, &mut m), Ok(0xfee0_0800));
        assert_eq!(rdmsr(msr::MISC_ENABLE, &mut v, &mut m), Ok((0x85_0089 & !((1 << 7) | (1 << 18))) | (1 << 11) | (1 << 12) | (1 << 23)));
        assert_eq!(rdmsr(msr::PLATFORM_INFO, &mut v, &mut m), Ok(0), "no CPUID faulting on this host");
        assert_eq!(rdmsr(msr::FEATURE_CONTROL, &mut v, &mut m), Ok(1), "locked, no VMX");
        assert_eq!(rdmsr(msr::PERF_CAPABILITIES, &mut v, &mut m), Ok(0));
        assert_eq!(rdmsr(0xc1, &mut v, &mut m), Ok(0), "PMU counter with the vPMU off");
        assert_eq!(rdmsr(msr::XEN_HYPERCALL_PAGE, &mut v, &mut m), Ok(0));
        assert_eq!(rdmsr(msr::TSC, &mut v, &mut m), Ok(0x1_2345_678a));
        assert_eq!(rdmsr(msr::ARCH_CAPABILITIES, &mut v, &mut m), Ok(DOM0_ARCH_CAPS), "dom0: the host's speculation bits");
    }

    #[test]
    fn unknown_msrs_are_gp_as_on_xen_4_17() {
        let (mut v, mut m) = (Vcpu::default(), machine());
        for msr in [0x1234_5678u32, 0x4000_0001, 0xc000_0081 /* STAR */, 0x174 /* SYSENTER_CS */, 0x48 /* SPEC_CTRL */] {
            assert_eq!(rdmsr(msr, &mut v, &mut m), Err(Emulated::GeneralProtection), "{msr:#x}");
            assert_eq!(wrmsr(msr, 0, &mut v, &mut m), Emulated::GeneralProtection, "{msr:#x}");
        }
        assert_eq!(wrmsr(msr::PAT, XEN_MSR_PAT, &mut v, &mut m), Emulated::GeneralProtection, "PAT is read-only for PV");
        assert_eq!(wrmsr(msr::APIC_BASE, 0xfee0_0900, &mut v, &mut m), Emulated::GeneralProtection);
    }

    #[test]
    fn amd_msrs_read_as_xen_shows_them_and_are_gp_on_intel() {
        let (mut v, mut m) = (Vcpu::default(), machine());
        for msr in [msr::K8_HWCR, msr::AMD64_DE_CFG, 0xc001_0064, 0xc001_0000] {
            assert_eq!(rdmsr(msr, &mut v, &mut m), Err(Emulated::GeneralProtection), "{msr:#x} on Intel");
        }
        m.amd = true;
        assert_eq!(rdmsr(msr::K8_HWCR, &mut v, &mut m), Ok(1 << 24), "family 0x19: TSC_FREQ_SEL");
        assert_eq!(rdmsr(msr::AMD64_DE_CFG, &mut v, &mut m), Ok(2), "LFENCE serialising");
        assert_eq!(rdmsr(0xc001_0064, &mut v, &mut m), Ok(0), "P-state 0");
        assert_eq!(rdmsr(0xc001_0004, &mut v, &mut m), Ok(0), "K7 counter, vPMU off");
        assert_eq!(rdmsr(msr::FAM10H_MMIO_CONF_BASE, &mut v, &mut m), Err(Emulated::GeneralProtection), "family 0x19 has none");
        assert_eq!(wrmsr(msr::K8_HWCR, 0, &mut v, &mut m), Emulated::Done, "ignored");
        assert_eq!(rdmsr(0xc1, &mut v, &mut m), Err(Emulated::GeneralProtection), "Intel PMU MSR on AMD");
    }

    #[test]
    fn arch_capabilities_is_gp_for_a_domu() {
        let (v, mut m) = (Vcpu::default(), machine());
        let mut env = Env { host: &mut m, hardware_domain: false, version: (4, 17), tsc: (0, (0, 0)), max_mfn: 0, iopl_ok: false };
        assert_eq!(read_msr(msr::ARCH_CAPABILITIES, &v, &mut env), None);
    }

    #[test]
    fn efer_write_back_of_the_same_value_is_accepted_a_change_refused() {
        let (mut v, mut m) = (Vcpu::default(), machine());
        assert_eq!(wrmsr(msr::EFER, 0xd01, &mut v, &mut m), Emulated::Done);
        assert_eq!(wrmsr(msr::EFER, 0x501, &mut v, &mut m), Emulated::GeneralProtection);
    }

    #[test]
    fn misc_enable_and_pmu_writes_are_ignored() {
        let (mut v, mut m) = (Vcpu::default(), machine());
        assert_eq!(wrmsr(msr::MISC_ENABLE, 0, &mut v, &mut m), Emulated::Done);
        assert_eq!(wrmsr(0x186, 0x43_003c, &mut v, &mut m), Emulated::Done);
        m.misc_enable = None;
        assert_eq!(rdmsr(msr::MISC_ENABLE, &mut v, &mut m), Err(Emulated::GeneralProtection), "no such MSR on the host");
    }

    #[test]
    fn misc_features_enables_takes_cpuid_faulting_only_where_the_host_has_it() {
        let (mut v, mut m) = (Vcpu::default(), machine());
        assert_eq!(wrmsr(msr::MISC_FEATURES_ENABLES, 1, &mut v, &mut m), Emulated::GeneralProtection);
        m.faulting = true;
        assert_eq!(rdmsr(msr::PLATFORM_INFO, &mut v, &mut m), Ok(PLATFORM_INFO_CPUID_FAULTING));
        assert_eq!(wrmsr(msr::MISC_FEATURES_ENABLES, 1, &mut v, &mut m), Emulated::Done);
        assert_eq!(rdmsr(msr::MISC_FEATURES_ENABLES, &mut v, &mut m), Ok(1));
        assert_eq!(wrmsr(msr::MISC_FEATURES_ENABLES, 2, &mut v, &mut m), Emulated::GeneralProtection, "reserved bit");
        // Guest user-mode CPUID now faults (#GP) through the emulation.
        v.kernel_mode = false;
        assert_eq!(run(&[0x0f, 0xa2], &mut regs(), &mut v, &mut m, true), Emulated::GeneralProtection);
    }

    #[test]
    fn msr_and_cr_access_from_guest_user_mode_is_gp() {
        let (mut v, mut m) = (Vcpu { kernel_mode: false, ..Vcpu::default() }, machine());
        for code in [&RDMSR[..], &WRMSR[..], &[0x0f, 0x20, 0xe0], &[0x0f, 0x22, 0xd8], &[0x0f, 0x06], &[0x0f, 0x09]] {
            let mut r = CpuUserRegs { rcx: u64::from(msr::FS_BASE), rax: 0x1000, ..regs() };
            let before = r;
            assert_eq!(run(code, &mut r, &mut v, &mut m, true), Emulated::GeneralProtection, "{code:x?}");
            assert_eq!(r, before);
        }
        assert_eq!(v.fs_base, 0);
        assert_eq!(m.flushed, 0);
    }

    #[test]
    fn cr0_reads_show_the_virtual_ts_and_writes_may_change_only_ts() {
        let (mut v, mut m) = (Vcpu::default(), machine());
        let mut r = regs();
        assert_eq!(run(&[0x0f, 0x20, 0xc0], &mut r, &mut v, &mut m, true), Emulated::Done);
        assert_eq!(r.rax, 0x8005_0033, "host CR0 without TS");
        v.fpu_ts = true;
        run(&[0x0f, 0x20, 0xc0], &mut r, &mut v, &mut m, true);
        assert_eq!(r.rax, 0x8005_003b);
        assert_eq!(run(&[0x0f, 0x06], &mut regs(), &mut v, &mut m, true), Emulated::Done);
        assert!(!v.fpu_ts, "clts clears the virtual TS");
        let mut r = CpuUserRegs { rax: 0x8005_003b, ..regs() };
        assert_eq!(run(&[0x0f, 0x22, 0xc0], &mut r, &mut v, &mut m, true), Emulated::Done);
        assert!(v.fpu_ts, "mov to CR0 sets TS (fpu_taskswitch)");
        let mut r = CpuUserRegs { rax: 0x0005_003b, ..regs() };
        assert_eq!(run(&[0x0f, 0x22, 0xc0], &mut r, &mut v, &mut m, true), Emulated::NotEmulated, "clearing PG");
        assert_eq!(r.rip, 0x1000);
    }

    #[test]
    fn cr4_shows_guest_bits_and_xens_visible_bits_only() {
        let (mut v, mut m) = (Vcpu::default(), machine());
        let mut r = regs();
        run(&[0x0f, 0x20, 0xe0], &mut r, &mut v, &mut m, true);
        assert_eq!(r.rax, 0x6e0 & PV_CR4_GUEST_VISIBLE_MASK, "PAE|MCE|OSFXSR|OSXMMEXCPT, not PGE/SMEP/SMAP");
        let mut r = CpuUserRegs { rax: u64::MAX, ..regs() };
        assert_eq!(run(&[0x0f, 0x22, 0xe0], &mut r, &mut v, &mut m, true), Emulated::Done);
        assert_eq!(v.cr4, CR4_TSD | CR4_DE, "only the guest-controllable bits stick");
    }

    #[test]
    fn cr3_reads_the_kernel_l4_as_a_pfn_and_cr2_round_trips() {
        let (mut v, mut m) = (Vcpu { guest_table: 0x1234_5000, ..Vcpu::default() }, machine());
        let mut r = regs();
        run(&[0x0f, 0x20, 0xd9], &mut r, &mut v, &mut m, true);
        assert_eq!(r.rcx, 0x1234_5000, "mov %cr3, %rcx");
        let mut r = CpuUserRegs { rdx: 0xdead_b000, ..regs() };
        assert_eq!(run(&[0x0f, 0x22, 0xd2], &mut r, &mut v, &mut m, true), Emulated::DoneCr2);
        run(&[0x0f, 0x20, 0xd0], &mut r, &mut v, &mut m, true);
        assert_eq!(r.rax, 0xdead_b000);
        assert_eq!(run(&[0x0f, 0x22, 0xd8], &mut regs(), &mut v, &mut m, true), Emulated::WriteCr3(0), "CR3 write: new_guest_cr3");
        assert_eq!(run(&[0x44, 0x0f, 0x20, 0xc0], &mut regs(), &mut v, &mut m, true), Emulated::NotEmulated, "CR8");
    }

    #[test]
    fn cli_sti_are_skipped_with_the_virtual_iopl_and_gp_without() {
        let (mut v, mut m) = (Vcpu::default(), machine());
        let mut r = CpuUserRegs { rflags: 0x202, ..regs() };
        assert_eq!(run(&[0xfa], &mut r, &mut v, &mut m, true), Emulated::NotEmulated, "IOPL 0: the #GP stands");
        m.iopl_ok = true;
        assert_eq!(run(&[0xfa], &mut r, &mut v, &mut m, true), Emulated::Done);
        assert_eq!((r.rip, r.rflags), (0x1001, 0x202), "skipped: the event mask is not touched");
    }

    #[test]
    fn wbinvd_flushes_only_for_the_hardware_domain() {
        let (mut v, mut m) = (Vcpu::default(), machine());
        assert_eq!(run(&[0x0f, 0x09], &mut regs(), &mut v, &mut m, false), Emulated::Done);
        assert_eq!(m.flushed, 0);
        assert_eq!(run(&[0x0f, 0x09], &mut regs(), &mut v, &mut m, true), Emulated::Done);
        assert_eq!(m.flushed, 1);
    }

    #[test]
    fn rdtsc_follows_the_guests_cr4_tsd_in_user_mode() {
        let (mut v, mut m) = (Vcpu { kernel_mode: false, ..Vcpu::default() }, machine());
        let mut r = regs();
        assert_eq!(run(&[0x0f, 0x31], &mut r, &mut v, &mut m, true), Emulated::Done);
        assert_eq!((r.rdx, r.rax), (1, 0x2345_678a));
        v.cr4 = CR4_TSD;
        assert_eq!(run(&[0x0f, 0x31], &mut regs(), &mut v, &mut m, true), Emulated::GeneralProtection);
        v.kernel_mode = true;
        let mut r = CpuUserRegs { rcx: u64::MAX, ..regs() };
        assert_eq!(run(&[0x0f, 0x01, 0xf9], &mut r, &mut v, &mut m, true), Emulated::Done);
        assert_eq!((r.rcx, r.rip), (0, 0x1003), "rdtscp: TSC_AUX 0");
    }

    #[test]
    fn faulted_cpuid_applies_the_pv_policy() {
        let (mut v, mut m) = (Vcpu::default(), machine());
        let mut r = CpuUserRegs { rax: 1, ..regs() };
        assert_eq!(run(&[0x0f, 0xa2], &mut r, &mut v, &mut m, true), Emulated::Done);
        assert_eq!(r.rcx as u32 & cpuid::feat::VMX, 0);
        assert_ne!(r.rcx as u32 & cpuid::feat::HYPERVISOR, 0);
    }

    #[test]
    fn forced_emulation_prefix_is_recognised_and_faults_report_the_first_missing_byte() {
        let g = FakeGuest::default();
        let mut v = Vcpu { kernel_mode: true, ..Vcpu::default() };
        g.map(0x1000);
        g.write(0x1ffb, &cpuid::FORCED_EMULATION[..5]).unwrap();
        assert_eq!(forced_emulation(&g, 0x1ffb, &v), Forced::Fault(0x2000), "cpuid bytes on an unmapped page");
        g.write(0x1100, &cpuid::FORCED_EMULATION).unwrap();
        assert_eq!(forced_emulation(&g, 0x1100, &v), Forced::Cpuid);
        g.write(0x1200, &[0x0f, 0x0b, b'x', b'e', b'n', 0x0f, 0x31]).unwrap();
        assert_eq!(forced_emulation(&g, 0x1200, &v), Forced::No, "only cpuid is emulated");
        g.write(0x1300, &[0x0f, 0x0b, 0, 0, 0]).unwrap();
        assert_eq!(forced_emulation(&g, 0x1300, &v), Forced::No, "a plain ud2");
        assert_eq!(forced_emulation(&g, 0x5000, &v), Forced::Fault(0x5000));
        // The guest's own CPUID faulting: user mode gets #GP at the cpuid,
        // 5 bytes in; its kernel still gets the CPUID.
        v.misc_features_enables = MISC_FEATURES_CPUID_FAULTING;
        assert_eq!(forced_emulation(&g, 0x1100, &v), Forced::Cpuid);
        v.kernel_mode = false;
        assert_eq!(forced_emulation(&g, 0x1100, &v), Forced::GpAtCpuid);
        assert_eq!(FORCED_PREFIX_LEN, 5);
    }

    #[test]
    fn hostile_bytes_never_panic() {
        let (mut v, mut m) = (Vcpu::default(), machine());
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..20000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut code = x.to_le_bytes().to_vec();
            code.extend_from_slice(&x.rotate_left(11).to_le_bytes()[..7]);
            code[0] = [0x0f, 0x0f, 0x41, 0x44][(x >> 62) as usize];
            code[1] = [0x20, 0x22, 0x30, 0x32, 0x06, 0x09, 0x31, 0xa2][(i % 8) as usize];
            v.kernel_mode = x & 1 == 0;
            let mut r = CpuUserRegs { rcx: x >> 3, rax: x, rdx: x.rotate_left(5), ..regs() };
            let before = r;
            let len = decode(&code).map(|d| d.len);
            match run(&code, &mut r, &mut v, &mut m, i % 2 == 0) {
                // A refused instruction, or one whose work the caller
                // finishes (CR3, the hypercall page), leaves the registers
                // as they were.
                Emulated::NotEmulated
                | Emulated::GeneralProtection
                | Emulated::InvalidOpcode
                | Emulated::WriteCr3(_)
                | Emulated::WriteHypercallPage(_) => assert_eq!(r, before, "{code:02x?}"),
                // An emulated one moves RIP past exactly what was decoded.
                Emulated::Done | Emulated::DoneCr2 | Emulated::DoneDr => assert_eq!(Some(r.rip.wrapping_sub(before.rip)), len, "{code:02x?}"),
            }
        }
    }
}
