//! Domain control: mirrors Xen 4.17's `public/domctl.h` (toolstack only),
//! with the x86 `xen_arch_domainconfig` of `arch-x86/xen.h`.
//!
//! Holds [`XEN_DOMCTL_INTERFACE_VERSION`], every `XEN_DOMCTL_*` command
//! number, the [`XenDomctl`] header (its 128-byte payload union kept as
//! bytes, read and written with [`XenDomctl::payload`] and
//! [`XenDomctl::set_payload`]) and the payloads of the commands a PV
//! toolstack needs. The `XEN_DOMINF_*` flags already at the crate root are
//! re-exported, not redefined. Invariant: every structure has exactly the
//! x86_64 size and field offsets Xen 4.17 gives it (the header is 144
//! bytes), checked at compile time.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::union_bytes;

pub use crate::xen::{
    XEN_DOMINF_BLOCKED, XEN_DOMINF_DYING, XEN_DOMINF_PAUSED, XEN_DOMINF_RUNNING, XEN_DOMINF_SHUTDOWN, XEN_DOMINF_SHUTDOWNSHIFT, XenctlBitmap,
};

/// `XEN_DOMCTL_INTERFACE_VERSION` of Xen 4.17: the domctl ABI revision a
/// caller must put in [`XenDomctl::interface_version`].
pub const XEN_DOMCTL_INTERFACE_VERSION: u32 = 0x0000_0015;

/// `XEN_DOMCTL_createdomain`: [`XenDomctlCreatedomain`].
pub const XEN_DOMCTL_CREATEDOMAIN: u32 = 1;
/// `XEN_DOMCTL_destroydomain`: no payload.
pub const XEN_DOMCTL_DESTROYDOMAIN: u32 = 2;
/// `XEN_DOMCTL_pausedomain`: no payload.
pub const XEN_DOMCTL_PAUSEDOMAIN: u32 = 3;
/// `XEN_DOMCTL_unpausedomain`: no payload.
pub const XEN_DOMCTL_UNPAUSEDOMAIN: u32 = 4;
/// `XEN_DOMCTL_getdomaininfo`: [`XenDomctlGetdomaininfo`].
pub const XEN_DOMCTL_GETDOMAININFO: u32 = 5;
/// `XEN_DOMCTL_setvcpuaffinity`: [`XenDomctlVcpuaffinity`].
pub const XEN_DOMCTL_SETVCPUAFFINITY: u32 = 9;
/// `XEN_DOMCTL_shadow_op`.
pub const XEN_DOMCTL_SHADOW_OP: u32 = 10;
/// `XEN_DOMCTL_max_mem`: [`XenDomctlMaxMem`].
pub const XEN_DOMCTL_MAX_MEM: u32 = 11;
/// `XEN_DOMCTL_setvcpucontext`: [`XenDomctlVcpucontext`].
pub const XEN_DOMCTL_SETVCPUCONTEXT: u32 = 12;
/// `XEN_DOMCTL_getvcpucontext`: [`XenDomctlVcpucontext`].
pub const XEN_DOMCTL_GETVCPUCONTEXT: u32 = 13;
/// `XEN_DOMCTL_getvcpuinfo`: [`XenDomctlGetvcpuinfo`].
pub const XEN_DOMCTL_GETVCPUINFO: u32 = 14;
/// `XEN_DOMCTL_max_vcpus`: [`XenDomctlMaxVcpus`].
pub const XEN_DOMCTL_MAX_VCPUS: u32 = 15;
/// `XEN_DOMCTL_scheduler_op`: [`XenDomctlSchedulerOp`].
pub const XEN_DOMCTL_SCHEDULER_OP: u32 = 16;
/// `XEN_DOMCTL_setdomainhandle`: [`XenDomctlSetdomainhandle`].
pub const XEN_DOMCTL_SETDOMAINHANDLE: u32 = 17;
/// `XEN_DOMCTL_setdebugging`: [`XenDomctlSetdebugging`].
pub const XEN_DOMCTL_SETDEBUGGING: u32 = 18;
/// `XEN_DOMCTL_irq_permission`: [`XenDomctlIrqPermission`].
pub const XEN_DOMCTL_IRQ_PERMISSION: u32 = 19;
/// `XEN_DOMCTL_iomem_permission`: [`XenDomctlIomemPermission`].
pub const XEN_DOMCTL_IOMEM_PERMISSION: u32 = 20;
/// `XEN_DOMCTL_ioport_permission`: [`XenDomctlIoportPermission`].
pub const XEN_DOMCTL_IOPORT_PERMISSION: u32 = 21;
/// `XEN_DOMCTL_hypercall_init`: [`XenDomctlHypercallInit`].
pub const XEN_DOMCTL_HYPERCALL_INIT: u32 = 22;
/// `XEN_DOMCTL_soft_reset_cont`: hypervisor-internal continuation.
pub const XEN_DOMCTL_SOFT_RESET_CONT: u32 = 23;
/// `XEN_DOMCTL_settimeoffset`: [`XenDomctlSettimeoffset`].
pub const XEN_DOMCTL_SETTIMEOFFSET: u32 = 24;
/// `XEN_DOMCTL_getvcpuaffinity`: [`XenDomctlVcpuaffinity`].
pub const XEN_DOMCTL_GETVCPUAFFINITY: u32 = 25;
/// `XEN_DOMCTL_real_mode_area` (obsolete, PPC).
pub const XEN_DOMCTL_REAL_MODE_AREA: u32 = 26;
/// `XEN_DOMCTL_resumedomain`: no payload.
pub const XEN_DOMCTL_RESUMEDOMAIN: u32 = 27;
/// `XEN_DOMCTL_sendtrigger`.
pub const XEN_DOMCTL_SENDTRIGGER: u32 = 28;
/// `XEN_DOMCTL_subscribe`.
pub const XEN_DOMCTL_SUBSCRIBE: u32 = 29;
/// `XEN_DOMCTL_gethvmcontext`.
pub const XEN_DOMCTL_GETHVMCONTEXT: u32 = 33;
/// `XEN_DOMCTL_sethvmcontext`.
pub const XEN_DOMCTL_SETHVMCONTEXT: u32 = 34;
/// `XEN_DOMCTL_set_address_size`: [`XenDomctlAddressSize`].
pub const XEN_DOMCTL_SET_ADDRESS_SIZE: u32 = 35;
/// `XEN_DOMCTL_get_address_size`: [`XenDomctlAddressSize`].
pub const XEN_DOMCTL_GET_ADDRESS_SIZE: u32 = 36;
/// `XEN_DOMCTL_assign_device`.
pub const XEN_DOMCTL_ASSIGN_DEVICE: u32 = 37;
/// `XEN_DOMCTL_bind_pt_irq`.
pub const XEN_DOMCTL_BIND_PT_IRQ: u32 = 38;
/// `XEN_DOMCTL_memory_mapping`.
pub const XEN_DOMCTL_MEMORY_MAPPING: u32 = 39;
/// `XEN_DOMCTL_ioport_mapping`.
pub const XEN_DOMCTL_IOPORT_MAPPING: u32 = 40;
/// `XEN_DOMCTL_set_ext_vcpucontext`.
pub const XEN_DOMCTL_SET_EXT_VCPUCONTEXT: u32 = 42;
/// `XEN_DOMCTL_get_ext_vcpucontext`.
pub const XEN_DOMCTL_GET_EXT_VCPUCONTEXT: u32 = 43;
/// `XEN_DOMCTL_set_opt_feature` (obsolete, IA64).
pub const XEN_DOMCTL_SET_OPT_FEATURE: u32 = 44;
/// `XEN_DOMCTL_test_assign_device`.
pub const XEN_DOMCTL_TEST_ASSIGN_DEVICE: u32 = 45;
/// `XEN_DOMCTL_set_target`: [`XenDomctlSetTarget`].
pub const XEN_DOMCTL_SET_TARGET: u32 = 46;
/// `XEN_DOMCTL_deassign_device`.
pub const XEN_DOMCTL_DEASSIGN_DEVICE: u32 = 47;
/// `XEN_DOMCTL_unbind_pt_irq`.
pub const XEN_DOMCTL_UNBIND_PT_IRQ: u32 = 48;
/// `XEN_DOMCTL_get_device_group`.
pub const XEN_DOMCTL_GET_DEVICE_GROUP: u32 = 50;
/// `XEN_DOMCTL_debug_op`.
pub const XEN_DOMCTL_DEBUG_OP: u32 = 54;
/// `XEN_DOMCTL_gethvmcontext_partial`.
pub const XEN_DOMCTL_GETHVMCONTEXT_PARTIAL: u32 = 55;
/// `XEN_DOMCTL_vm_event_op`.
pub const XEN_DOMCTL_VM_EVENT_OP: u32 = 56;
/// `XEN_DOMCTL_mem_sharing_op`.
pub const XEN_DOMCTL_MEM_SHARING_OP: u32 = 57;
/// `XEN_DOMCTL_gettscinfo`.
pub const XEN_DOMCTL_GETTSCINFO: u32 = 59;
/// `XEN_DOMCTL_settscinfo`.
pub const XEN_DOMCTL_SETTSCINFO: u32 = 60;
/// `XEN_DOMCTL_getpageframeinfo3`.
pub const XEN_DOMCTL_GETPAGEFRAMEINFO3: u32 = 61;
/// `XEN_DOMCTL_setvcpuextstate`.
pub const XEN_DOMCTL_SETVCPUEXTSTATE: u32 = 62;
/// `XEN_DOMCTL_getvcpuextstate`.
pub const XEN_DOMCTL_GETVCPUEXTSTATE: u32 = 63;
/// `XEN_DOMCTL_set_access_required`.
pub const XEN_DOMCTL_SET_ACCESS_REQUIRED: u32 = 64;
/// `XEN_DOMCTL_audit_p2m`.
pub const XEN_DOMCTL_AUDIT_P2M: u32 = 65;
/// `XEN_DOMCTL_set_virq_handler`.
pub const XEN_DOMCTL_SET_VIRQ_HANDLER: u32 = 66;
/// `XEN_DOMCTL_set_broken_page_p2m`.
pub const XEN_DOMCTL_SET_BROKEN_PAGE_P2M: u32 = 67;
/// `XEN_DOMCTL_setnodeaffinity`.
pub const XEN_DOMCTL_SETNODEAFFINITY: u32 = 68;
/// `XEN_DOMCTL_getnodeaffinity`.
pub const XEN_DOMCTL_GETNODEAFFINITY: u32 = 69;
/// `XEN_DOMCTL_cacheflush`.
pub const XEN_DOMCTL_CACHEFLUSH: u32 = 71;
/// `XEN_DOMCTL_get_vcpu_msrs`.
pub const XEN_DOMCTL_GET_VCPU_MSRS: u32 = 72;
/// `XEN_DOMCTL_set_vcpu_msrs`.
pub const XEN_DOMCTL_SET_VCPU_MSRS: u32 = 73;
/// `XEN_DOMCTL_setvnumainfo`.
pub const XEN_DOMCTL_SETVNUMAINFO: u32 = 74;
/// `XEN_DOMCTL_psr_cmt_op`.
pub const XEN_DOMCTL_PSR_CMT_OP: u32 = 75;
/// `XEN_DOMCTL_monitor_op`.
pub const XEN_DOMCTL_MONITOR_OP: u32 = 77;
/// `XEN_DOMCTL_psr_alloc`.
pub const XEN_DOMCTL_PSR_ALLOC: u32 = 78;
/// `XEN_DOMCTL_soft_reset`: no payload.
pub const XEN_DOMCTL_SOFT_RESET: u32 = 79;
/// `XEN_DOMCTL_vuart_op`.
pub const XEN_DOMCTL_VUART_OP: u32 = 81;
/// `XEN_DOMCTL_get_cpu_policy`.
pub const XEN_DOMCTL_GET_CPU_POLICY: u32 = 82;
/// `XEN_DOMCTL_set_cpu_policy`.
pub const XEN_DOMCTL_SET_CPU_POLICY: u32 = 83;
/// `XEN_DOMCTL_vmtrace_op`.
pub const XEN_DOMCTL_VMTRACE_OP: u32 = 84;
/// `XEN_DOMCTL_get_paging_mempool_size`.
pub const XEN_DOMCTL_GET_PAGING_MEMPOOL_SIZE: u32 = 85;
/// `XEN_DOMCTL_set_paging_mempool_size`.
pub const XEN_DOMCTL_SET_PAGING_MEMPOOL_SIZE: u32 = 86;
/// `XEN_DOMCTL_gdbsx_guestmemio`.
pub const XEN_DOMCTL_GDBSX_GUESTMEMIO: u32 = 1000;
/// `XEN_DOMCTL_gdbsx_pausevcpu`.
pub const XEN_DOMCTL_GDBSX_PAUSEVCPU: u32 = 1001;
/// `XEN_DOMCTL_gdbsx_unpausevcpu`.
pub const XEN_DOMCTL_GDBSX_UNPAUSEVCPU: u32 = 1002;
/// `XEN_DOMCTL_gdbsx_domstatus`.
pub const XEN_DOMCTL_GDBSX_DOMSTATUS: u32 = 1003;

/// `XEN_DOMCTL_CDF_hvm`: an HVM guest (else PV).
pub const XEN_DOMCTL_CDF_HVM: u32 = 1 << 0;
/// `XEN_DOMCTL_CDF_hap`: use hardware-assisted paging.
pub const XEN_DOMCTL_CDF_HAP: u32 = 1 << 1;
/// `XEN_DOMCTL_CDF_s3_integrity`: have tboot check memory across S3.
pub const XEN_DOMCTL_CDF_S3_INTEGRITY: u32 = 1 << 2;
/// `XEN_DOMCTL_CDF_oos_off`: no out-of-sync shadow page tables.
pub const XEN_DOMCTL_CDF_OOS_OFF: u32 = 1 << 3;
/// `XEN_DOMCTL_CDF_xs_domain`: the domain runs xenstored.
pub const XEN_DOMCTL_CDF_XS_DOMAIN: u32 = 1 << 4;
/// `XEN_DOMCTL_CDF_iommu`: the domain may use the IOMMU.
pub const XEN_DOMCTL_CDF_IOMMU: u32 = 1 << 5;
/// `XEN_DOMCTL_CDF_nested_virt`: expose nested virtualisation.
pub const XEN_DOMCTL_CDF_NESTED_VIRT: u32 = 1 << 6;
/// `XEN_DOMCTL_CDF_vpmu`: expose the virtual PMU.
pub const XEN_DOMCTL_CDF_VPMU: u32 = 1 << 7;
/// `XEN_DOMCTL_CDF_MAX`: the highest flag.
pub const XEN_DOMCTL_CDF_MAX: u32 = XEN_DOMCTL_CDF_VPMU;
/// `XEN_DOMCTL_IOMMU_no_sharept`: do not share page tables with the IOMMU.
pub const XEN_DOMCTL_IOMMU_NO_SHAREPT: u32 = 1 << 0;
/// `XEN_DOMCTL_GRANT_version_mask`: low bits of `grant_opts` naming the
/// highest grant table version allowed.
pub const XEN_DOMCTL_GRANT_VERSION_MASK: u32 = 0xf;

/// `XEN_X86_EMU_LAPIC`.
pub const XEN_X86_EMU_LAPIC: u32 = 1 << 0;
/// `XEN_X86_EMU_HPET`.
pub const XEN_X86_EMU_HPET: u32 = 1 << 1;
/// `XEN_X86_EMU_PM`.
pub const XEN_X86_EMU_PM: u32 = 1 << 2;
/// `XEN_X86_EMU_RTC`.
pub const XEN_X86_EMU_RTC: u32 = 1 << 3;
/// `XEN_X86_EMU_IOAPIC`.
pub const XEN_X86_EMU_IOAPIC: u32 = 1 << 4;
/// `XEN_X86_EMU_PIC`.
pub const XEN_X86_EMU_PIC: u32 = 1 << 5;
/// `XEN_X86_EMU_VGA`.
pub const XEN_X86_EMU_VGA: u32 = 1 << 6;
/// `XEN_X86_EMU_IOMMU`.
pub const XEN_X86_EMU_IOMMU: u32 = 1 << 7;
/// `XEN_X86_EMU_PIT`.
pub const XEN_X86_EMU_PIT: u32 = 1 << 8;
/// `XEN_X86_EMU_USE_PIRQ`.
pub const XEN_X86_EMU_USE_PIRQ: u32 = 1 << 9;
/// `XEN_X86_EMU_VPCI`.
pub const XEN_X86_EMU_VPCI: u32 = 1 << 10;
/// `XEN_X86_EMU_ALL`: every emulation flag.
pub const XEN_X86_EMU_ALL: u32 = (1 << 11) - 1;
/// `XEN_X86_MSR_RELAXED`: `misc_flags` bit: relaxed MSR access policy.
pub const XEN_X86_MSR_RELAXED: u32 = 1 << 0;

/// `XEN_DOMINF_hvm_guest`: an HVM domain.
pub const XEN_DOMINF_HVM_GUEST: u32 = 1 << 1;
/// `XEN_DOMINF_debugged`: being debugged.
pub const XEN_DOMINF_DEBUGGED: u32 = 1 << 6;
/// `XEN_DOMINF_xs_domain`: runs xenstored.
pub const XEN_DOMINF_XS_DOMAIN: u32 = 1 << 7;
/// `XEN_DOMINF_hap`: uses hardware-assisted paging.
pub const XEN_DOMINF_HAP: u32 = 1 << 8;
/// `XEN_DOMINF_shutdownmask`: the shutdown code's mask, after shifting by
/// [`XEN_DOMINF_SHUTDOWNSHIFT`].
pub const XEN_DOMINF_SHUTDOWNMASK: u32 = 255;
/// `XEN_INVALID_MAX_VCPU_ID`: `max_vcpu_id` of a domain with no vCPUs.
pub const XEN_INVALID_MAX_VCPU_ID: u32 = !0;

/// `XEN_VCPUAFFINITY_HARD`: the hard affinity.
pub const XEN_VCPUAFFINITY_HARD: u32 = 1 << 0;
/// `XEN_VCPUAFFINITY_SOFT`: the soft affinity.
pub const XEN_VCPUAFFINITY_SOFT: u32 = 1 << 1;
/// `XEN_VCPUAFFINITY_FORCE`: undo a `SCHEDOP_pin_override`.
pub const XEN_VCPUAFFINITY_FORCE: u32 = 1 << 2;

/// `XEN_SCHEDULER_CREDIT`.
pub const XEN_SCHEDULER_CREDIT: u32 = 5;
/// `XEN_SCHEDULER_CREDIT2`.
pub const XEN_SCHEDULER_CREDIT2: u32 = 6;
/// `XEN_SCHEDULER_ARINC653`.
pub const XEN_SCHEDULER_ARINC653: u32 = 7;
/// `XEN_SCHEDULER_RTDS`.
pub const XEN_SCHEDULER_RTDS: u32 = 8;
/// `XEN_SCHEDULER_NULL`.
pub const XEN_SCHEDULER_NULL: u32 = 9;
/// `XEN_DOMCTL_SCHEDOP_putinfo`: set the domain's parameters.
pub const XEN_DOMCTL_SCHEDOP_PUTINFO: u32 = 0;
/// `XEN_DOMCTL_SCHEDOP_getinfo`: get the domain's parameters.
pub const XEN_DOMCTL_SCHEDOP_GETINFO: u32 = 1;
/// `XEN_DOMCTL_SCHEDOP_putvcpuinfo`: set per-vCPU parameters.
pub const XEN_DOMCTL_SCHEDOP_PUTVCPUINFO: u32 = 2;
/// `XEN_DOMCTL_SCHEDOP_getvcpuinfo`: get per-vCPU parameters.
pub const XEN_DOMCTL_SCHEDOP_GETVCPUINFO: u32 = 3;
/// `XEN_DOMCTL_SCHEDRT_extra`: an RTDS vCPU may run beyond its budget.
pub const XEN_DOMCTL_SCHEDRT_EXTRA: u32 = 1 << 0;

/// Size of the payload union of [`XenDomctl`].
pub const XEN_DOMCTL_PAYLOAD_SIZE: usize = 128;

/// `struct xen_domctl`: one domain-control request, a header and a
/// 128-byte payload union (kept as bytes).
#[repr(C, align(8))]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenDomctl {
    /// A `XEN_DOMCTL_*` command.
    pub cmd: u32,
    /// Must be [`XEN_DOMCTL_INTERFACE_VERSION`].
    pub interface_version: u32,
    /// The target domain.
    pub domain: u16,
    /// Padding; zero.
    pub _pad: [u16; 3],
    /// The payload union `u`, as bytes.
    pub u: [u8; XEN_DOMCTL_PAYLOAD_SIZE],
}
const _: () = assert!(core::mem::size_of::<XenDomctl>() == 144);
const _: () = assert!(core::mem::align_of::<XenDomctl>() == 8);
const _: () = assert!(core::mem::offset_of!(XenDomctl, interface_version) == 4);
const _: () = assert!(core::mem::offset_of!(XenDomctl, domain) == 8);
const _: () = assert!(core::mem::offset_of!(XenDomctl, u) == 16);

impl XenDomctl {
    /// A request for `cmd` on `domain` with this ABI's interface version and
    /// a zeroed payload.
    pub const fn new(cmd: u32, domain: u16) -> Self {
        XenDomctl { cmd, interface_version: XEN_DOMCTL_INTERFACE_VERSION, domain, _pad: [0; 3], u: [0; XEN_DOMCTL_PAYLOAD_SIZE] }
    }
    /// The payload read as `T` (one of the `XenDomctl*` payload structures).
    pub fn payload<T: FromBytes>(&self) -> T {
        union_bytes::read(&self.u)
    }
    /// Store `v` as the payload.
    pub fn set_payload<T: IntoBytes + Immutable>(&mut self, v: &T) {
        union_bytes::write(&mut self.u, v);
    }
}

impl Default for XenDomctl {
    fn default() -> Self {
        Self::new(0, 0)
    }
}

/// `struct xen_arch_domainconfig` (x86): emulation wanted by a new domain.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenArchDomainconfig {
    /// `XEN_X86_EMU_*` (0 for a PV domain).
    pub emulation_flags: u32,
    /// `XEN_X86_MSR_*`.
    pub misc_flags: u32,
}
const _: () = assert!(core::mem::size_of::<XenArchDomainconfig>() == 8);

/// `struct xen_domctl_createdomain`: payload of `XEN_DOMCTL_createdomain`.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlCreatedomain {
    /// IN: security label.
    pub ssidref: u32,
    /// IN: the domain's UUID.
    pub handle: [u8; 16],
    /// IN: `XEN_DOMCTL_CDF_*`.
    pub flags: u32,
    /// IN: `XEN_DOMCTL_IOMMU_*`.
    pub iommu_opts: u32,
    /// IN: most vCPUs the domain may have.
    pub max_vcpus: u32,
    /// IN: highest event-channel port allowed.
    pub max_evtchn_port: u32,
    /// IN: most grant-table frames (-1: default).
    pub max_grant_frames: i32,
    /// IN: most maptrack frames (-1: default).
    pub max_maptrack_frames: i32,
    /// IN: grant options; low 4 bits the highest grant version allowed.
    pub grant_opts: u32,
    /// IN: per-vCPU trace buffer bytes (0: none).
    pub vmtrace_size: u32,
    /// IN: CPU pool (0: default).
    pub cpupool_id: u32,
    /// IN: architecture-specific configuration.
    pub arch: XenArchDomainconfig,
}
const _: () = assert!(core::mem::size_of::<XenDomctlCreatedomain>() == 64);

impl XenDomctlCreatedomain {
    /// What a PV toolstack asks for by default: one vCPU, ports up to
    /// 1023 (the 2-level ABI's first 1024), grant table version 1 only,
    /// and -1 (the hypervisor's default) grant and maptrack frames.
    pub fn pv_default() -> Self {
        XenDomctlCreatedomain {
            max_vcpus: 1,
            max_evtchn_port: 1023,
            max_grant_frames: -1,
            max_maptrack_frames: -1,
            grant_opts: 1,
            ..Default::default()
        }
    }
}
const _: () = assert!(core::mem::offset_of!(XenDomctlCreatedomain, handle) == 4);
const _: () = assert!(core::mem::offset_of!(XenDomctlCreatedomain, flags) == 20);
const _: () = assert!(core::mem::offset_of!(XenDomctlCreatedomain, max_vcpus) == 28);
const _: () = assert!(core::mem::offset_of!(XenDomctlCreatedomain, max_evtchn_port) == 32);
const _: () = assert!(core::mem::offset_of!(XenDomctlCreatedomain, max_grant_frames) == 36);
const _: () = assert!(core::mem::offset_of!(XenDomctlCreatedomain, grant_opts) == 44);
const _: () = assert!(core::mem::offset_of!(XenDomctlCreatedomain, cpupool_id) == 52);
const _: () = assert!(core::mem::offset_of!(XenDomctlCreatedomain, arch) == 56);

/// `struct xen_domctl_getdomaininfo`: payload of `XEN_DOMCTL_getdomaininfo`
/// (and the element of `XEN_SYSCTL_getdomaininfolist`'s buffer).
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlGetdomaininfo {
    /// OUT: the domain.
    pub domain: u16,
    /// Padding; zero.
    pub pad1: u16,
    /// OUT: `XEN_DOMINF_*`, with the shutdown code at
    /// [`XEN_DOMINF_SHUTDOWNSHIFT`].
    pub flags: u32,
    /// OUT: pages held.
    pub tot_pages: u64,
    /// OUT: page limit.
    pub max_pages: u64,
    /// OUT: pages claimed but not yet allocated.
    pub outstanding_pages: u64,
    /// OUT: pages shared.
    pub shr_pages: u64,
    /// OUT: pages paged out.
    pub paged_pages: u64,
    /// OUT: frame of the shared info page.
    pub shared_info_frame: u64,
    /// OUT: CPU time used (ns).
    pub cpu_time: u64,
    /// OUT: vCPUs online.
    pub nr_online_vcpus: u32,
    /// OUT: highest vCPU id ([`XEN_INVALID_MAX_VCPU_ID`] if none).
    pub max_vcpu_id: u32,
    /// OUT: security label.
    pub ssidref: u32,
    /// OUT: the domain's UUID.
    pub handle: [u8; 16],
    /// OUT: CPU pool.
    pub cpupool: u32,
    /// OUT: guest physical address width.
    pub gpaddr_bits: u8,
    /// Padding; zero.
    pub pad2: [u8; 7],
    /// OUT: architecture-specific configuration.
    pub arch_config: XenArchDomainconfig,
}
const _: () = assert!(core::mem::size_of::<XenDomctlGetdomaininfo>() == 112);
const _: () = assert!(core::mem::offset_of!(XenDomctlGetdomaininfo, flags) == 4);
const _: () = assert!(core::mem::offset_of!(XenDomctlGetdomaininfo, tot_pages) == 8);
const _: () = assert!(core::mem::offset_of!(XenDomctlGetdomaininfo, max_pages) == 16);
const _: () = assert!(core::mem::offset_of!(XenDomctlGetdomaininfo, shared_info_frame) == 48);
const _: () = assert!(core::mem::offset_of!(XenDomctlGetdomaininfo, cpu_time) == 56);
const _: () = assert!(core::mem::offset_of!(XenDomctlGetdomaininfo, nr_online_vcpus) == 64);
const _: () = assert!(core::mem::offset_of!(XenDomctlGetdomaininfo, max_vcpu_id) == 68);
const _: () = assert!(core::mem::offset_of!(XenDomctlGetdomaininfo, ssidref) == 72);
const _: () = assert!(core::mem::offset_of!(XenDomctlGetdomaininfo, handle) == 76);
const _: () = assert!(core::mem::offset_of!(XenDomctlGetdomaininfo, cpupool) == 92);
const _: () = assert!(core::mem::offset_of!(XenDomctlGetdomaininfo, gpaddr_bits) == 96);
const _: () = assert!(core::mem::offset_of!(XenDomctlGetdomaininfo, arch_config) == 104);

impl XenDomctlGetdomaininfo {
    /// The guest's shutdown code (`SHUTDOWN_*`), meaningful when
    /// [`XEN_DOMINF_SHUTDOWN`] is set.
    pub fn shutdown_code(&self) -> u32 {
        (self.flags >> XEN_DOMINF_SHUTDOWNSHIFT) & XEN_DOMINF_SHUTDOWNMASK
    }
}

/// `struct xen_domctl_max_mem`.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlMaxMem {
    /// IN: the memory limit in KiB.
    pub max_memkb: u64,
}
const _: () = assert!(core::mem::size_of::<XenDomctlMaxMem>() == 8);

/// `struct xen_domctl_tsc_info`: payload of `XEN_DOMCTL_{get,set}tscinfo`.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlTscInfo {
    /// IN/OUT: `TSC_MODE_*`.
    pub tsc_mode: u32,
    /// IN/OUT: the guest's TSC rate in kHz (0 on set: the host's).
    pub gtsc_khz: u32,
    /// IN/OUT: bumped by each set (migration generation).
    pub incarnation: u32,
    /// Padding.
    pub pad: u32,
    /// IN/OUT: nanoseconds the guest's TSC has counted.
    pub elapsed_nsec: u64,
}
const _: () = assert!(core::mem::size_of::<XenDomctlTscInfo>() == 24);

/// `TSC_MODE_DEFAULT` (Xen's `asm/time.h`, libxl's `tsc_mode="default"`):
/// native when the host TSC is reliable, else emulated.
pub const TSC_MODE_DEFAULT: u32 = 0;
/// `TSC_MODE_ALWAYS_EMULATE` (`tsc_mode="always_emulate"`).
pub const TSC_MODE_ALWAYS_EMULATE: u32 = 1;
/// `TSC_MODE_NEVER_EMULATE` (`tsc_mode="native"`).
pub const TSC_MODE_NEVER_EMULATE: u32 = 2;

/// `struct xen_domctl_vcpucontext`: payload of `XEN_DOMCTL_{set,get}vcpucontext`.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlVcpucontext {
    /// IN: the vCPU.
    pub vcpu: u32,
    /// Padding; zero.
    pub _pad0: u32,
    /// IN/OUT: guest handle of a [`crate::vcpu::VcpuGuestContext`].
    pub ctxt: u64,
}
const _: () = assert!(core::mem::size_of::<XenDomctlVcpucontext>() == 16);
const _: () = assert!(core::mem::offset_of!(XenDomctlVcpucontext, ctxt) == 8);

/// `struct xen_domctl_getvcpuinfo`.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlGetvcpuinfo {
    /// IN: the vCPU.
    pub vcpu: u32,
    /// OUT: nonzero if online.
    pub online: u8,
    /// OUT: nonzero if blocked on an event.
    pub blocked: u8,
    /// OUT: nonzero if running now.
    pub running: u8,
    /// Padding; zero.
    pub _pad0: u8,
    /// OUT: CPU time used (ns).
    pub cpu_time: u64,
    /// OUT: the physical CPU it is on.
    pub cpu: u32,
    /// Padding; zero.
    pub _pad1: u32,
}
const _: () = assert!(core::mem::size_of::<XenDomctlGetvcpuinfo>() == 24);
const _: () = assert!(core::mem::offset_of!(XenDomctlGetvcpuinfo, online) == 4);
const _: () = assert!(core::mem::offset_of!(XenDomctlGetvcpuinfo, running) == 6);
const _: () = assert!(core::mem::offset_of!(XenDomctlGetvcpuinfo, cpu_time) == 8);
const _: () = assert!(core::mem::offset_of!(XenDomctlGetvcpuinfo, cpu) == 16);

/// `struct xen_domctl_max_vcpus`.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlMaxVcpus {
    /// IN: the vCPU count.
    pub max: u32,
}
const _: () = assert!(core::mem::size_of::<XenDomctlMaxVcpus>() == 4);

/// `struct xen_domctl_vcpuaffinity`.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlVcpuaffinity {
    /// IN: the vCPU.
    pub vcpu: u32,
    /// IN: `XEN_VCPUAFFINITY_*`.
    pub flags: u32,
    /// IN/OUT: hard affinity mask.
    pub cpumap_hard: XenctlBitmap,
    /// IN/OUT: soft affinity mask.
    pub cpumap_soft: XenctlBitmap,
}
const _: () = assert!(core::mem::size_of::<XenDomctlVcpuaffinity>() == 40);
const _: () = assert!(core::mem::offset_of!(XenDomctlVcpuaffinity, cpumap_hard) == 8);
const _: () = assert!(core::mem::offset_of!(XenDomctlVcpuaffinity, cpumap_soft) == 24);

/// `struct xen_domctl_nodeaffinity`.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlNodeaffinity {
    /// IN/OUT: NUMA node mask.
    pub nodemap: XenctlBitmap,
}
const _: () = assert!(core::mem::size_of::<XenDomctlNodeaffinity>() == 16);

/// `struct xen_domctl_sched_credit`: credit scheduler parameters.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlSchedCredit {
    /// Relative weight.
    pub weight: u16,
    /// Cap in percent of one CPU (0: none).
    pub cap: u16,
}
const _: () = assert!(core::mem::size_of::<XenDomctlSchedCredit>() == 4);

/// `struct xen_domctl_sched_credit2`: credit2 scheduler parameters.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlSchedCredit2 {
    /// Relative weight.
    pub weight: u16,
    /// Cap in percent of one CPU (0: none).
    pub cap: u16,
}
const _: () = assert!(core::mem::size_of::<XenDomctlSchedCredit2>() == 4);

/// `struct xen_domctl_sched_rtds`: RTDS scheduler parameters.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlSchedRtds {
    /// Period (us).
    pub period: u32,
    /// Budget per period (us).
    pub budget: u32,
    /// `XEN_DOMCTL_SCHEDRT_*`.
    pub flags: u32,
}
const _: () = assert!(core::mem::size_of::<XenDomctlSchedRtds>() == 12);

/// `v` member of `xen_domctl_scheduler_op.u`: a per-vCPU parameter array.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlSchedVcpus {
    /// Guest handle of the `xen_domctl_schedparam_vcpu` array.
    pub vcpus: u64,
    /// Entries in it.
    pub nr_vcpus: u32,
    /// Padding; zero.
    pub padding: u32,
}
const _: () = assert!(core::mem::size_of::<XenDomctlSchedVcpus>() == 16);

/// `struct xen_domctl_scheduler_op`; its union `u` is kept as bytes.
#[repr(C, align(8))]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlSchedulerOp {
    /// `XEN_SCHEDULER_*`.
    pub sched_id: u32,
    /// `XEN_DOMCTL_SCHEDOP_*`.
    pub cmd: u32,
    /// The union `u` (credit / credit2 / rtds / v), as bytes.
    pub u: [u8; 16],
}
const _: () = assert!(core::mem::size_of::<XenDomctlSchedulerOp>() == 24);
const _: () = assert!(core::mem::offset_of!(XenDomctlSchedulerOp, u) == 8);

impl XenDomctlSchedulerOp {
    /// `u.credit`.
    pub fn credit(&self) -> XenDomctlSchedCredit {
        union_bytes::read(&self.u)
    }
    /// Store `u.credit`.
    pub fn set_credit(&mut self, v: XenDomctlSchedCredit) {
        union_bytes::write(&mut self.u, &v);
    }
    /// `u.credit2`.
    pub fn credit2(&self) -> XenDomctlSchedCredit2 {
        union_bytes::read(&self.u)
    }
    /// Store `u.credit2`.
    pub fn set_credit2(&mut self, v: XenDomctlSchedCredit2) {
        union_bytes::write(&mut self.u, &v);
    }
    /// `u.rtds`.
    pub fn rtds(&self) -> XenDomctlSchedRtds {
        union_bytes::read(&self.u)
    }
    /// Store `u.rtds`.
    pub fn set_rtds(&mut self, v: XenDomctlSchedRtds) {
        union_bytes::write(&mut self.u, &v);
    }
    /// `u.v`.
    pub fn v(&self) -> XenDomctlSchedVcpus {
        union_bytes::read(&self.u)
    }
    /// Store `u.v`.
    pub fn set_v(&mut self, v: XenDomctlSchedVcpus) {
        union_bytes::write(&mut self.u, &v);
    }
}

/// `struct xen_domctl_setdomainhandle`.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlSetdomainhandle {
    /// IN: the new UUID.
    pub handle: [u8; 16],
}
const _: () = assert!(core::mem::size_of::<XenDomctlSetdomainhandle>() == 16);

/// `struct xen_domctl_setdebugging`.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlSetdebugging {
    /// IN: nonzero enables debugging.
    pub enable: u8,
}
const _: () = assert!(core::mem::size_of::<XenDomctlSetdebugging>() == 1);

/// `struct xen_domctl_irq_permission`.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlIrqPermission {
    /// IN: the physical IRQ.
    pub pirq: u32,
    /// IN: nonzero grants, zero revokes.
    pub allow_access: u8,
    /// Padding; zero.
    pub pad: [u8; 3],
}
const _: () = assert!(core::mem::size_of::<XenDomctlIrqPermission>() == 8);

/// `struct xen_domctl_iomem_permission`.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlIomemPermission {
    /// IN: first machine frame.
    pub first_mfn: u64,
    /// IN: frames (> 0).
    pub nr_mfns: u64,
    /// IN: nonzero grants, zero revokes.
    pub allow_access: u8,
    /// Padding; zero.
    pub _pad0: [u8; 7],
}
const _: () = assert!(core::mem::size_of::<XenDomctlIomemPermission>() == 24);
const _: () = assert!(core::mem::offset_of!(XenDomctlIomemPermission, allow_access) == 16);

/// `struct xen_domctl_ioport_permission`.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlIoportPermission {
    /// IN: first port.
    pub first_port: u32,
    /// IN: ports.
    pub nr_ports: u32,
    /// IN: nonzero grants, zero revokes.
    pub allow_access: u8,
    /// Padding; zero.
    pub _pad0: [u8; 3],
}
const _: () = assert!(core::mem::size_of::<XenDomctlIoportPermission>() == 12);
const _: () = assert!(core::mem::offset_of!(XenDomctlIoportPermission, allow_access) == 8);

/// `struct xen_domctl_hypercall_init`: fill a guest frame with hypercall stubs.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlHypercallInit {
    /// IN: the guest frame.
    pub gmfn: u64,
}
const _: () = assert!(core::mem::size_of::<XenDomctlHypercallInit>() == 8);

/// `struct xen_domctl_settimeoffset`.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlSettimeoffset {
    /// IN: seconds added to the domain's wallclock.
    pub time_offset_seconds: i64,
}
const _: () = assert!(core::mem::size_of::<XenDomctlSettimeoffset>() == 8);

/// `struct xen_domctl_address_size`.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlAddressSize {
    /// Guest address width in bits (32 or 64 for PV).
    pub size: u32,
}
const _: () = assert!(core::mem::size_of::<XenDomctlAddressSize>() == 4);

/// `struct xen_domctl_set_target`.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomctlSetTarget {
    /// IN: the domain the caller's target becomes privileged over.
    pub target: u16,
}
const _: () = assert!(core::mem::size_of::<XenDomctlSetTarget>() == 2);

#[cfg(test)]
mod tests {
    use super::*;

    /// ABI rule: `xen_domctl` is {u32 cmd, u32 interface_version, u16 domain,
    /// 6 bytes padding} with its payload union at byte 16, 144 bytes in all.
    #[test]
    fn domctl_payload_starts_at_byte_16() {
        let mut d = XenDomctl::new(XEN_DOMCTL_MAX_MEM, 3);
        d.set_payload(&XenDomctlMaxMem { max_memkb: 0x4_0000 });
        let b = d.as_bytes();
        assert_eq!(b.len(), 144);
        assert_eq!(&b[0..4], &11u32.to_le_bytes());
        assert_eq!(&b[4..8], &0x15u32.to_le_bytes());
        assert_eq!(&b[8..10], &3u16.to_le_bytes());
        assert_eq!(&b[16..24], &0x4_0000u64.to_le_bytes());
        let back = XenDomctl::read_from_bytes(b).unwrap();
        assert_eq!(back.payload::<XenDomctlMaxMem>().max_memkb, 0x4_0000);
    }

    /// ABI rule: `xen_domctl_getdomaininfo` puts tot_pages at 8, cpu_time at
    /// 56, handle at 76 and the arch config at 104; the shutdown code lives
    /// in flags bits 16-23.
    #[test]
    fn getdomaininfo_fields_at_xen_offsets() {
        let mut bytes = [0u8; 112];
        bytes[0..2].copy_from_slice(&1u16.to_le_bytes());
        bytes[4..8].copy_from_slice(&(XEN_DOMINF_SHUTDOWN | (3 << XEN_DOMINF_SHUTDOWNSHIFT)).to_le_bytes());
        bytes[8..16].copy_from_slice(&256u64.to_le_bytes());
        bytes[56..64].copy_from_slice(&1_500_000_000u64.to_le_bytes());
        bytes[76] = 0xaa;
        bytes[104..108].copy_from_slice(&XEN_X86_EMU_LAPIC.to_le_bytes());
        let i = XenDomctlGetdomaininfo::read_from_bytes(&bytes).unwrap();
        assert_eq!((i.domain, i.tot_pages, i.cpu_time), (1, 256, 1_500_000_000));
        assert_eq!(i.handle[0], 0xaa);
        assert_eq!(i.arch_config.emulation_flags, XEN_X86_EMU_LAPIC);
        assert_eq!(i.shutdown_code(), 3);
        assert_eq!(i.as_bytes(), &bytes);
    }

    /// ABI rule: the scheduler op's union is 8-aligned at byte 8; credit's
    /// weight and cap are its first two u16s.
    #[test]
    fn scheduler_op_credit_in_union_at_byte_8() {
        let mut s = XenDomctlSchedulerOp { sched_id: XEN_SCHEDULER_CREDIT, cmd: XEN_DOMCTL_SCHEDOP_PUTINFO, ..Default::default() };
        s.set_credit(XenDomctlSchedCredit { weight: 256, cap: 50 });
        assert_eq!(&s.as_bytes()[8..12], &[0, 1, 50, 0]);
        let mut d = XenDomctl::new(XEN_DOMCTL_SCHEDULER_OP, 1);
        d.set_payload(&s);
        assert_eq!(d.payload::<XenDomctlSchedulerOp>().credit(), XenDomctlSchedCredit { weight: 256, cap: 50 });
    }

    /// ABI rule: `xen_domctl_createdomain` is 64 bytes with max_vcpus at 28
    /// and the x86 arch config at 56, so it fits the 128-byte union.
    #[test]
    fn createdomain_round_trips_through_the_union() {
        let c = XenDomctlCreatedomain { max_vcpus: 2, max_evtchn_port: 1023, max_grant_frames: 32, max_maptrack_frames: -1, ..Default::default() };
        let mut d = XenDomctl::new(XEN_DOMCTL_CREATEDOMAIN, 0);
        d.set_payload(&c);
        assert_eq!(&d.as_bytes()[16 + 28..16 + 32], &2u32.to_le_bytes());
        assert_eq!(&d.as_bytes()[16 + 40..16 + 44], &(-1i32).to_le_bytes());
        assert_eq!(d.payload::<XenDomctlCreatedomain>(), c);
    }
}
