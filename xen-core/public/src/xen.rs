//! Core guest ABI of `public/xen.h` and `arch-x86/xen-x86_64.h`: domain ids,
//! selectors, the hypervisor's reserved address range, `start_info`,
//! `shared_info` (with `vcpu_info` and `vcpu_time_info`), `xenctl_bitmap`.
//!
//! Invariant: the structures have exactly the x86_64 size and field offsets
//! Xen 4.17 gives them, checked at compile time by the assertions after them.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// The calling domain.
pub const DOMID_SELF: u16 = 0x7FF0;
/// I/O memory owner.
pub const DOMID_IO: u16 = 0x7FF1;
/// Xen's own pages.
pub const DOMID_XEN: u16 = 0x7FF2;
/// COW pages.
pub const DOMID_COW: u16 = 0x7FF3;
/// No domain.
pub const DOMID_INVALID: u16 = 0x7FF4;
/// The idle domain.
pub const DOMID_IDLE: u16 = 0x7FFF;
/// First reserved domain id; ids below it are real domains.
pub const DOMID_FIRST_RESERVED: u16 = 0x7FF0;

/// `UVMF_TLB_FLUSH`: `update_va_mapping` flushes the whole TLB.
pub const UVMF_TLB_FLUSH: u64 = 1;
/// `UVMF_INVLPG`: `update_va_mapping` flushes the one address.
pub const UVMF_INVLPG: u64 = 2;

/// `VMASST_TYPE_4gb_segments`: no effect on a 64-bit guest.
pub const VMASST_TYPE_4GB_SEGMENTS: u32 = 0;
/// `VMASST_TYPE_4gb_segments_notify`: no effect on a 64-bit guest.
pub const VMASST_TYPE_4GB_SEGMENTS_NOTIFY: u32 = 1;
/// `VMASST_TYPE_writable_pagetables`: direct writes to live L1 tables are
/// emulated.
pub const VMASST_TYPE_WRITABLE_PAGETABLES: u32 = 2;
/// `VMASST_TYPE_pae_extended_cr3`: no effect on a 64-bit guest beyond
/// XENFEAT_pae_pgdir_above_4gb.
pub const VMASST_TYPE_PAE_EXTENDED_CR3: u32 = 3;
/// `VMASST_TYPE_architectural_iopl`: the guest kernel counts as ring 0
/// for the virtual IOPL.
pub const VMASST_TYPE_ARCHITECTURAL_IOPL: u32 = 4;
/// `VMASST_TYPE_runstate_update_flag`: XEN_RUNSTATE_UPDATE protocol.
pub const VMASST_TYPE_RUNSTATE_UPDATE_FLAG: u32 = 5;
/// `VMASST_TYPE_m2p_strict`.
pub const VMASST_TYPE_M2P_STRICT: u32 = 32;

/// The bit of assist `ty` in a domain's `vm_assist` bitmap.
pub const fn vmasst_bit(ty: u32) -> u64 {
    1 << ty
}

/// Guest kernel code selector (ring 3, 64-bit).
pub const FLAT_KERNEL_CS64: u16 = 0xe033;
/// Guest kernel data / stack selector (ring 3).
pub const FLAT_KERNEL_SS64: u16 = 0xe02b;
/// Guest kernel data selector.
pub const FLAT_KERNEL_DS64: u16 = 0;
/// Guest user code selector (ring 3, 64-bit).
pub const FLAT_USER_CS64: u16 = 0xe033;
/// Guest user stack selector.
pub const FLAT_USER_SS64: u16 = 0xe02b;
/// Ring-3 flat 64-bit code selector (same as the guest kernel one).
pub const FLAT_RING3_CS64: u16 = 0xe033;

/// Start of the hypervisor-reserved virtual range (L4 slot 256).
pub const HYPERVISOR_VIRT_START: u64 = 0xFFFF_8000_0000_0000;
/// End of the hypervisor-reserved virtual range (L4 slot 272, exclusive).
pub const HYPERVISOR_VIRT_END: u64 = 0xFFFF_8800_0000_0000;
/// Read-only machine-to-phys table seen by PV guests.
pub const MACH2PHYS_VIRT_START: u64 = 0xFFFF_8000_0000_0000;
/// First L4 slot reserved for the hypervisor.
pub const FIRST_RESERVED_L4_SLOT: usize = 256;
/// One past the last L4 slot reserved for the hypervisor.
pub const LAST_RESERVED_L4_SLOT_END: usize = 272;

/// Size of a page.
pub const PAGE_SIZE: u64 = 4096;
/// log2 of [`PAGE_SIZE`].
pub const PAGE_SHIFT: u32 = 12;

/// `start_info.flags`: the domain is privileged.
pub const SIF_PRIVILEGED: u32 = 1 << 0;
/// `start_info.flags`: the domain is the initial control domain.
pub const SIF_INITDOMAIN: u32 = 1 << 1;
/// `start_info.flags`: multiboot modules are a list (`mod_start` is a PFN).
pub const SIF_MULTIBOOT_MOD: u32 = 1 << 2;
/// `start_info.flags`: `mod_start` is a PFN, not a virtual address.
pub const SIF_MOD_START_PFN: u32 = 1 << 3;
/// `start_info.flags`: the virtual mapped P2M list is present.
pub const SIF_VIRT_P2M_4TOOLS: u32 = 1 << 4;

bitflags::bitflags! {
    /// `start_info.flags` (`SIF_*`) as a set, for code that decides on
    /// them; [`StartInfo::flags`] stays a raw `u32` (the wire format). Xen
    /// puts its power-management options in bits 8-15 (`SIF_PM_MASK`):
    /// `from_bits_retain` keeps them, unnamed.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct SifFlags: u32 {
        /// `SIF_PRIVILEGED`.
        const PRIVILEGED = SIF_PRIVILEGED;
        /// `SIF_INITDOMAIN`.
        const INITDOMAIN = SIF_INITDOMAIN;
        /// `SIF_MULTIBOOT_MOD`.
        const MULTIBOOT_MOD = SIF_MULTIBOOT_MOD;
        /// `SIF_MOD_START_PFN`.
        const MOD_START_PFN = SIF_MOD_START_PFN;
        /// `SIF_VIRT_P2M_4TOOLS`.
        const VIRT_P2M_4TOOLS = SIF_VIRT_P2M_4TOOLS;
    }
}

/// Magic string prefix at the start of `start_info` for 64-bit PV guests.
pub const START_INFO_MAGIC: &[u8] = b"xen-3.0-x86_64";
/// Size of `start_info.cmd_line`.
pub const MAX_GUEST_CMDLINE: usize = 1024;

/// `console` member of `start_info`: a ring page for domUs, a VGA info
/// window for dom0.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default)]
pub struct StartInfoConsole {
    /// domU: machine frame of the console ring. dom0: `info_off`.
    pub mfn_or_info_off: u64,
    /// domU: event channel of the console. dom0: `info_size`.
    pub evtchn_or_info_size: u32,
    _pad: u32,
}

/// `struct start_info`: what a PV kernel finds at `rsi` on entry.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug)]
pub struct StartInfo {
    /// "xen-3.0-x86_64", NUL padded.
    pub magic: [u8; 32],
    /// Total pages allocated to this domain.
    pub nr_pages: u64,
    /// Machine address of the shared info page.
    pub shared_info: u64,
    /// `SIF_*` flags.
    pub flags: u32,
    _pad0: u32,
    /// Machine frame of the xenstore ring.
    pub store_mfn: u64,
    /// Event channel of the xenstore ring.
    pub store_evtchn: u32,
    _pad1: u32,
    /// Console ring (domU) or VGA info (dom0).
    pub console: StartInfoConsole,
    /// Virtual address of the bootstrap page tables.
    pub pt_base: u64,
    /// Number of bootstrap page-table frames.
    pub nr_pt_frames: u64,
    /// Virtual address of the P2M list.
    pub mfn_list: u64,
    /// Virtual address (or PFN) of the first module.
    pub mod_start: u64,
    /// Size of the first module in bytes.
    pub mod_len: u64,
    /// Guest command line, NUL terminated.
    pub cmd_line: [u8; MAX_GUEST_CMDLINE],
    /// PFN of the first P2M frame (when mapped by the domain builder).
    pub first_p2m_pfn: u64,
    /// Number of P2M frames.
    pub nr_p2m_frames: u64,
}

impl StartInfo {
    /// An all-zero `start_info` with the magic filled in.
    pub const fn new() -> Self {
        let mut magic = [0u8; 32];
        let mut i = 0;
        while i < START_INFO_MAGIC.len() {
            magic[i] = START_INFO_MAGIC[i];
            i += 1;
        }
        StartInfo {
            magic,
            nr_pages: 0,
            shared_info: 0,
            flags: 0,
            _pad0: 0,
            store_mfn: 0,
            store_evtchn: 0,
            _pad1: 0,
            console: StartInfoConsole { mfn_or_info_off: 0, evtchn_or_info_size: 0, _pad: 0 },
            pt_base: 0,
            nr_pt_frames: 0,
            mfn_list: 0,
            mod_start: 0,
            mod_len: 0,
            cmd_line: [0; MAX_GUEST_CMDLINE],
            first_p2m_pfn: 0,
            nr_p2m_frames: 0,
        }
    }

    /// [`Self::flags`] as a set (bits no `SIF_*` names kept).
    pub const fn sif_flags(&self) -> SifFlags {
        SifFlags::from_bits_retain(self.flags)
    }
}

impl Default for StartInfo {
    fn default() -> Self {
        Self::new()
    }
}

const _: () = assert!(core::mem::size_of::<StartInfo>() == 1168);
const _: () = assert!(core::mem::offset_of!(StartInfo, nr_pages) == 32);
const _: () = assert!(core::mem::offset_of!(StartInfo, flags) == 48);
const _: () = assert!(core::mem::offset_of!(StartInfo, store_mfn) == 56);
const _: () = assert!(core::mem::offset_of!(StartInfo, console) == 72);
const _: () = assert!(core::mem::offset_of!(StartInfo, pt_base) == 88);
const _: () = assert!(core::mem::offset_of!(StartInfo, mfn_list) == 104);
const _: () = assert!(core::mem::offset_of!(StartInfo, cmd_line) == 128);
const _: () = assert!(core::mem::offset_of!(StartInfo, first_p2m_pfn) == 1152);
const _: () = assert!(core::mem::size_of::<StartInfoConsole>() == 16);

/// `XEN_LEGACY_MAX_VCPUS` (x86): `vcpu_info` slots in `shared_info`.
pub const XEN_LEGACY_MAX_VCPUS: usize = 32;
/// `XEN_PVCLOCK_TSC_STABLE_BIT` in `vcpu_time_info.flags`.
pub const XEN_PVCLOCK_TSC_STABLE_BIT: u8 = 1 << 0;
/// `XEN_PVCLOCK_GUEST_STOPPED` in `vcpu_time_info.flags`.
pub const XEN_PVCLOCK_GUEST_STOPPED: u8 = 1 << 1;

/// `struct vcpu_time_info`: the PV clock of one vCPU. System time in ns is
/// `system_time` plus the TSC delta since `tsc_timestamp`, shifted by
/// `tsc_shift` (right if negative), times `tsc_to_system_mul`, over 2^32;
/// `version` is odd while Xen updates the record.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuTimeInfo {
    /// Update counter (seqlock).
    pub version: u32,
    /// Padding.
    pub pad0: u32,
    /// TSC at the last update.
    pub tsc_timestamp: u64,
    /// System time (ns since boot) at the last update.
    pub system_time: u64,
    /// TSC-to-ns multiplier (32.32 fixed point).
    pub tsc_to_system_mul: u32,
    /// Shift applied to the TSC delta before multiplying.
    pub tsc_shift: i8,
    /// `XEN_PVCLOCK_*`.
    pub flags: u8,
    /// Padding.
    pub pad1: [u8; 2],
}
const _: () = assert!(core::mem::size_of::<VcpuTimeInfo>() == 32);
const _: () = assert!(core::mem::offset_of!(VcpuTimeInfo, tsc_timestamp) == 8);
const _: () = assert!(core::mem::offset_of!(VcpuTimeInfo, system_time) == 16);
const _: () = assert!(core::mem::offset_of!(VcpuTimeInfo, tsc_to_system_mul) == 24);
const _: () = assert!(core::mem::offset_of!(VcpuTimeInfo, tsc_shift) == 28);
const _: () = assert!(core::mem::offset_of!(VcpuTimeInfo, flags) == 29);

/// `struct arch_vcpu_info` (x86_64).
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArchVcpuInfo {
    /// The faulting address of the last page fault Xen bounced.
    pub cr2: u64,
    /// Padding (keeps `vcpu_info` at 64 bytes).
    pub pad: u64,
}
const _: () = assert!(core::mem::size_of::<ArchVcpuInfo>() == 16);

/// `struct vcpu_info`: a vCPU's event and time state in `shared_info`.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuInfo {
    /// Set by Xen when an event upcall is pending; cleared by the guest.
    pub evtchn_upcall_pending: u8,
    /// Nonzero: no upcalls (the guest's "interrupt flag").
    pub evtchn_upcall_mask: u8,
    /// Padding.
    pub _pad0: [u8; 6],
    /// One bit per word of `shared_info.evtchn_pending` with ports pending.
    pub evtchn_pending_sel: u64,
    /// Architecture state.
    pub arch: ArchVcpuInfo,
    /// The vCPU's PV clock.
    pub time: VcpuTimeInfo,
}
const _: () = assert!(core::mem::size_of::<VcpuInfo>() == 64);
const _: () = assert!(core::mem::offset_of!(VcpuInfo, evtchn_upcall_mask) == 1);
const _: () = assert!(core::mem::offset_of!(VcpuInfo, evtchn_pending_sel) == 8);
const _: () = assert!(core::mem::offset_of!(VcpuInfo, arch) == 16);
const _: () = assert!(core::mem::offset_of!(VcpuInfo, time) == 32);

/// `struct arch_shared_info` (x86_64).
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArchSharedInfo {
    /// Valid P2M entries.
    pub max_pfn: u64,
    /// Frame of the P2M's frame-list-list (0: not set, !0: invalid).
    pub pfn_to_mfn_frame_list_list: u64,
    /// NMI reason bits.
    pub nmi_reason: u64,
    /// CR3 of the address space holding the linear P2M (0: none).
    pub p2m_cr3: u64,
    /// Virtual address of the linear P2M.
    pub p2m_vaddr: u64,
    /// Generation count of the P2M mapping (odd while it changes).
    pub p2m_generation: u64,
}
const _: () = assert!(core::mem::size_of::<ArchSharedInfo>() == 48);

/// `struct shared_info`: the page Xen shares with every PV domain (vCPU
/// state, the 2-level event-channel bitmaps, the wall clock).
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedInfo {
    /// Per-vCPU state of the first [`XEN_LEGACY_MAX_VCPUS`] vCPUs.
    pub vcpu_info: [VcpuInfo; XEN_LEGACY_MAX_VCPUS],
    /// Pending bit per port (2-level ABI).
    pub evtchn_pending: [u64; 64],
    /// Mask bit per port (2-level ABI).
    pub evtchn_mask: [u64; 64],
    /// Wall-clock update counter (seqlock, as `vcpu_time_info.version`).
    pub wc_version: u32,
    /// Wall-clock seconds at system time 0 (low 32 bits).
    pub wc_sec: u32,
    /// Its nanoseconds.
    pub wc_nsec: u32,
    /// High 32 bits of `wc_sec`.
    pub wc_sec_hi: u32,
    /// Architecture state.
    pub arch: ArchSharedInfo,
}
const _: () = assert!(core::mem::size_of::<SharedInfo>() == 3136);
const _: () = assert!(core::mem::offset_of!(SharedInfo, evtchn_pending) == 2048);
const _: () = assert!(core::mem::offset_of!(SharedInfo, evtchn_mask) == 2560);
const _: () = assert!(core::mem::offset_of!(SharedInfo, wc_version) == 3072);
const _: () = assert!(core::mem::offset_of!(SharedInfo, wc_sec) == 3076);
const _: () = assert!(core::mem::offset_of!(SharedInfo, wc_sec_hi) == 3084);
const _: () = assert!(core::mem::offset_of!(SharedInfo, arch) == 3088);

/// `struct xenctl_bitmap`: a bitmap in guest memory (CPU and node masks of
/// the domctls and sysctls).
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenctlBitmap {
    /// Guest handle of the bitmap bytes.
    pub bitmap: u64,
    /// Bits in it.
    pub nr_bits: u32,
    /// Padding; zero.
    pub _pad0: u32,
}
const _: () = assert!(core::mem::size_of::<XenctlBitmap>() == 16);
const _: () = assert!(core::mem::offset_of!(XenctlBitmap, nr_bits) == 8);

/// `struct mmu_update`: one request of `mmu_update` (the low two bits of
/// `ptr` select the kind: `MMU_NORMAL_PT_UPDATE`, `MMU_MACHPHYS_UPDATE`,
/// ...).
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MmuUpdate {
    /// Machine address of the entry (or frame), with the kind in bits 0-1.
    pub ptr: u64,
    /// The new value.
    pub val: u64,
}
const _: () = assert!(core::mem::size_of::<MmuUpdate>() == 16);

/// `struct mmuext_op`: one request of `mmuext_op`. `arg1` is the C union
/// of `mfn` and `linear_addr`; `arg2` that of `nr_ents`, `vcpumask` and
/// `src_mfn`.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MmuextOp {
    /// An `MMUEXT_*` command.
    pub cmd: u32,
    /// Padding; zero.
    pub _pad0: u32,
    /// First argument.
    pub arg1: u64,
    /// Second argument.
    pub arg2: u64,
}
const _: () = assert!(core::mem::size_of::<MmuextOp>() == 24);
const _: () = assert!(core::mem::offset_of!(MmuextOp, arg1) == 8);

/// `struct multicall_entry`: one call of a `multicall` batch.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MulticallEntry {
    /// The hypercall number.
    pub op: u64,
    /// Its result, written back.
    pub result: u64,
    /// Its arguments.
    pub args: [u64; 6],
}
const _: () = assert!(core::mem::size_of::<MulticallEntry>() == 64);
const _: () = assert!(core::mem::offset_of!(MulticallEntry, args) == 16);

/// `VIRQ_TIMER`: per vCPU, timebase update or requested timeout.
pub const VIRQ_TIMER: u32 = 0;
/// `VIRQ_DEBUG`: per vCPU, dump debug info.
pub const VIRQ_DEBUG: u32 = 1;
/// `VIRQ_CONSOLE`: global (dom0), bytes on the emergency console.
pub const VIRQ_CONSOLE: u32 = 2;
/// `VIRQ_DOM_EXC`: global (dom0), a domain shut down or died.
pub const VIRQ_DOM_EXC: u32 = 3;
/// `VIRQ_TBUF`: a trace buffer is half full (global, dom0).
pub const VIRQ_TBUF: u32 = 4;
/// `VIRQ_XENOPROF`: per vCPU, a new profiling sample.
pub const VIRQ_XENOPROF: u32 = 7;
/// `VIRQ_XENPMU`: per vCPU, PMC interrupt.
pub const VIRQ_XENPMU: u32 = 13;

/// `CONSOLEIO_write`.
pub const CONSOLEIO_WRITE: u64 = 0;
/// `CONSOLEIO_read`.
pub const CONSOLEIO_READ: u64 = 1;

/// `SCHEDOP_yield`.
pub const SCHEDOP_YIELD: u64 = 0;
/// `SCHEDOP_block`.
pub const SCHEDOP_BLOCK: u64 = 1;
/// `SCHEDOP_shutdown`.
pub const SCHEDOP_SHUTDOWN: u64 = 2;
/// `SCHEDOP_poll`.
pub const SCHEDOP_POLL: u64 = 3;
/// `SHUTDOWN_poweroff`.
pub const SHUTDOWN_POWEROFF: u32 = 0;
/// `SHUTDOWN_reboot`.
pub const SHUTDOWN_REBOOT: u32 = 1;
/// `SHUTDOWN_suspend`.
pub const SHUTDOWN_SUSPEND: u32 = 2;
/// `SHUTDOWN_crash`.
pub const SHUTDOWN_CRASH: u32 = 3;

/// `XEN_DOMINF_dying` in `xen_domctl_getdomaininfo.flags`.
pub const XEN_DOMINF_DYING: u32 = 1 << 0;
/// `XEN_DOMINF_shutdown`: the domain has shut down (reason in the code).
pub const XEN_DOMINF_SHUTDOWN: u32 = 1 << 2;
/// `XEN_DOMINF_paused`.
pub const XEN_DOMINF_PAUSED: u32 = 1 << 3;
/// `XEN_DOMINF_blocked`.
pub const XEN_DOMINF_BLOCKED: u32 = 1 << 4;
/// `XEN_DOMINF_running`.
pub const XEN_DOMINF_RUNNING: u32 = 1 << 5;
/// `XEN_DOMINF_shutdownshift`: where the shutdown code sits in the flags.
pub const XEN_DOMINF_SHUTDOWNSHIFT: u32 = 16;
/// `SHUTDOWN_watchdog`.
pub const SHUTDOWN_WATCHDOG: u32 = 4;

/// `XENVER_version`: returns `(major << 16) | minor`.
pub const XENVER_VERSION: u64 = 0;
/// `XENVER_extraversion`: 16-byte string.
pub const XENVER_EXTRAVERSION: u64 = 1;
/// `XENVER_compile_info`.
pub const XENVER_COMPILE_INFO: u64 = 2;
/// `XENVER_capabilities`: 1024-byte string.
pub const XENVER_CAPABILITIES: u64 = 3;
/// `XENVER_changeset`: 64-byte string.
pub const XENVER_CHANGESET: u64 = 4;
/// `XENVER_platform_parameters`.
pub const XENVER_PLATFORM_PARAMETERS: u64 = 5;
/// `XENVER_get_features`.
pub const XENVER_GET_FEATURES: u64 = 6;
/// `XENVER_pagesize`.
pub const XENVER_PAGESIZE: u64 = 7;

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromZeros;

    /// ABI rule: SIF_PRIVILEGED is bit 0, SIF_INITDOMAIN bit 1, and the
    /// power-management byte (bits 8-15) is no flag of the set but is kept.
    #[test]
    fn sif_flags_are_bits_0_to_4() {
        assert_eq!(SifFlags::all().bits(), 0x1f);
        let f = SifFlags::from_bits_retain(0x303);
        assert!(f.contains(SifFlags::PRIVILEGED | SifFlags::INITDOMAIN));
        assert!(!f.contains(SifFlags::MOD_START_PFN));
        assert_eq!(f.bits(), 0x303);
        assert_eq!(SifFlags::from_bits_truncate(0x303), SifFlags::PRIVILEGED | SifFlags::INITDOMAIN);
        let si = StartInfo { flags: 0x303, ..StartInfo::new() };
        assert_eq!(si.sif_flags(), f, "start_info.flags read as a set, every bit kept");
    }

    /// ABI rule: `vcpu_time_info` is {u32 version, u32 pad, u64
    /// tsc_timestamp, u64 system_time, u32 tsc_to_system_mul, i8 tsc_shift,
    /// u8 flags, u8 pad[2]}, 32 bytes, at byte 32 of `vcpu_info`.
    #[test]
    fn vcpu_time_info_inside_vcpu_info() {
        let mut v = VcpuInfo { evtchn_upcall_mask: 1, evtchn_pending_sel: 1 << 3, ..Default::default() };
        v.arch.cr2 = 0xdead_b000;
        v.time =
            VcpuTimeInfo { version: 2, tsc_timestamp: 1000, system_time: 5_000_000, tsc_to_system_mul: 1 << 31, tsc_shift: -1, ..Default::default() };
        let b = v.as_bytes();
        assert_eq!(b[1], 1);
        assert_eq!(&b[8..16], &8u64.to_le_bytes());
        assert_eq!(&b[16..24], &0xdead_b000u64.to_le_bytes());
        assert_eq!(&b[32..36], &2u32.to_le_bytes());
        assert_eq!(&b[48..56], &5_000_000u64.to_le_bytes());
        assert_eq!(b[60], 0xff);
        assert_eq!(VcpuInfo::read_from_bytes(b).unwrap(), v);
    }

    /// ABI rule: the 2-level event bitmaps follow 32 `vcpu_info`s (pending
    /// at 2048, mask at 2560) and the wall clock starts at 3072.
    #[test]
    fn shared_info_bitmaps_and_wall_clock() {
        let mut s = SharedInfo::new_zeroed();
        s.evtchn_pending[1] = 1;
        s.evtchn_mask[0] = 1 << 63;
        s.wc_sec = 7;
        s.wc_sec_hi = 1;
        let b = s.as_bytes();
        assert_eq!(b[2048 + 8], 1);
        assert_eq!(b[2560 + 7], 0x80);
        assert_eq!(&b[3076..3080], &7u32.to_le_bytes());
        assert_eq!(&b[3084..3088], &1u32.to_le_bytes());
    }
}
