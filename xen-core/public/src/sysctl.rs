//! System control: mirrors Xen 4.17's `public/sysctl.h` (toolstack only).
//!
//! Holds [`XEN_SYSCTL_INTERFACE_VERSION`], every `XEN_SYSCTL_*` command
//! number, the [`XenSysctl`] header (its 128-byte payload union kept as
//! bytes) and the payloads of readconsole, tbuf_op, physinfo,
//! getdomaininfolist, sched_id and debug_keys. Invariant: every structure
//! has exactly the x86_64 size and field offsets Xen 4.17 gives it (the
//! header is 136 bytes), checked at compile time.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::union_bytes;
use crate::xen::XenctlBitmap;

/// `XEN_SYSCTL_INTERFACE_VERSION` of Xen 4.17: the sysctl ABI revision a
/// caller must put in [`XenSysctl::interface_version`].
pub const XEN_SYSCTL_INTERFACE_VERSION: u32 = 0x0000_0015;

/// `XEN_SYSCTL_readconsole`: [`XenSysctlReadconsole`].
pub const XEN_SYSCTL_READCONSOLE: u32 = 1;
/// `XEN_SYSCTL_tbuf_op`: [`XenSysctlTbufOp`].
pub const XEN_SYSCTL_TBUF_OP: u32 = 2;
/// `XEN_SYSCTL_physinfo`: [`XenSysctlPhysinfo`].
pub const XEN_SYSCTL_PHYSINFO: u32 = 3;
/// `XEN_SYSCTL_sched_id`: [`XenSysctlSchedId`].
pub const XEN_SYSCTL_SCHED_ID: u32 = 4;
/// `XEN_SYSCTL_perfc_op`.
pub const XEN_SYSCTL_PERFC_OP: u32 = 5;
/// `XEN_SYSCTL_getdomaininfolist`: [`XenSysctlGetdomaininfolist`].
pub const XEN_SYSCTL_GETDOMAININFOLIST: u32 = 6;
/// `XEN_SYSCTL_debug_keys`: [`XenSysctlDebugKeys`].
pub const XEN_SYSCTL_DEBUG_KEYS: u32 = 7;
/// `XEN_SYSCTL_getcpuinfo`.
pub const XEN_SYSCTL_GETCPUINFO: u32 = 8;
/// `XEN_SYSCTL_availheap`.
pub const XEN_SYSCTL_AVAILHEAP: u32 = 9;
/// `XEN_SYSCTL_get_pmstat`.
pub const XEN_SYSCTL_GET_PMSTAT: u32 = 10;
/// `XEN_SYSCTL_cpu_hotplug`.
pub const XEN_SYSCTL_CPU_HOTPLUG: u32 = 11;
/// `XEN_SYSCTL_pm_op`.
pub const XEN_SYSCTL_PM_OP: u32 = 12;
/// `XEN_SYSCTL_page_offline_op`.
pub const XEN_SYSCTL_PAGE_OFFLINE_OP: u32 = 14;
/// `XEN_SYSCTL_lockprof_op`.
pub const XEN_SYSCTL_LOCKPROF_OP: u32 = 15;
/// `XEN_SYSCTL_cputopoinfo`.
pub const XEN_SYSCTL_CPUTOPOINFO: u32 = 16;
/// `XEN_SYSCTL_numainfo`.
pub const XEN_SYSCTL_NUMAINFO: u32 = 17;
/// `XEN_SYSCTL_cpupool_op`.
pub const XEN_SYSCTL_CPUPOOL_OP: u32 = 18;
/// `XEN_SYSCTL_scheduler_op`.
pub const XEN_SYSCTL_SCHEDULER_OP: u32 = 19;
/// `XEN_SYSCTL_coverage_op`.
pub const XEN_SYSCTL_COVERAGE_OP: u32 = 20;
/// `XEN_SYSCTL_psr_cmt_op`.
pub const XEN_SYSCTL_PSR_CMT_OP: u32 = 21;
/// `XEN_SYSCTL_pcitopoinfo`.
pub const XEN_SYSCTL_PCITOPOINFO: u32 = 22;
/// `XEN_SYSCTL_psr_alloc`.
pub const XEN_SYSCTL_PSR_ALLOC: u32 = 23;
/// `XEN_SYSCTL_get_cpu_levelling_caps`.
pub const XEN_SYSCTL_GET_CPU_LEVELLING_CAPS: u32 = 25;
/// `XEN_SYSCTL_get_cpu_featureset`.
pub const XEN_SYSCTL_GET_CPU_FEATURESET: u32 = 26;
/// `XEN_SYSCTL_livepatch_op`.
pub const XEN_SYSCTL_LIVEPATCH_OP: u32 = 27;
/// `XEN_SYSCTL_get_cpu_policy`.
pub const XEN_SYSCTL_GET_CPU_POLICY: u32 = 29;

/// `XEN_SYSCTL_TBUFOP_get_info`.
pub const XEN_SYSCTL_TBUFOP_GET_INFO: u32 = 0;
/// `XEN_SYSCTL_TBUFOP_set_cpu_mask`.
pub const XEN_SYSCTL_TBUFOP_SET_CPU_MASK: u32 = 1;
/// `XEN_SYSCTL_TBUFOP_set_evt_mask`.
pub const XEN_SYSCTL_TBUFOP_SET_EVT_MASK: u32 = 2;
/// `XEN_SYSCTL_TBUFOP_set_size`.
pub const XEN_SYSCTL_TBUFOP_SET_SIZE: u32 = 3;
/// `XEN_SYSCTL_TBUFOP_enable`.
pub const XEN_SYSCTL_TBUFOP_ENABLE: u32 = 4;
/// `XEN_SYSCTL_TBUFOP_disable`.
pub const XEN_SYSCTL_TBUFOP_DISABLE: u32 = 5;

/// `XEN_SYSCTL_PHYSCAP_hvm`: HVM guests supported.
pub const XEN_SYSCTL_PHYSCAP_HVM: u32 = 1 << 0;
/// `XEN_SYSCTL_PHYSCAP_pv`: PV guests supported.
pub const XEN_SYSCTL_PHYSCAP_PV: u32 = 1 << 1;
/// `XEN_SYSCTL_PHYSCAP_directio`: device passthrough with an IOMMU.
pub const XEN_SYSCTL_PHYSCAP_DIRECTIO: u32 = 1 << 2;
/// `XEN_SYSCTL_PHYSCAP_hap`: hardware-assisted paging.
pub const XEN_SYSCTL_PHYSCAP_HAP: u32 = 1 << 3;
/// `XEN_SYSCTL_PHYSCAP_shadow`: shadow paging.
pub const XEN_SYSCTL_PHYSCAP_SHADOW: u32 = 1 << 4;
/// `XEN_SYSCTL_PHYSCAP_iommu_hap_pt_share`: IOMMU can share HAP tables.
pub const XEN_SYSCTL_PHYSCAP_IOMMU_HAP_PT_SHARE: u32 = 1 << 5;
/// `XEN_SYSCTL_PHYSCAP_vmtrace`: VM tracing.
pub const XEN_SYSCTL_PHYSCAP_VMTRACE: u32 = 1 << 6;
/// `XEN_SYSCTL_PHYSCAP_vpmu`: virtual PMU.
pub const XEN_SYSCTL_PHYSCAP_VPMU: u32 = 1 << 7;
/// `XEN_SYSCTL_PHYSCAP_gnttab_v1`: grant table v1.
pub const XEN_SYSCTL_PHYSCAP_GNTTAB_V1: u32 = 1 << 8;
/// `XEN_SYSCTL_PHYSCAP_gnttab_v2`: grant table v2.
pub const XEN_SYSCTL_PHYSCAP_GNTTAB_V2: u32 = 1 << 9;
/// `XEN_SYSCTL_PHYSCAP_MAX`: the highest flag.
pub const XEN_SYSCTL_PHYSCAP_MAX: u32 = XEN_SYSCTL_PHYSCAP_GNTTAB_V2;

/// Size of the payload union of [`XenSysctl`].
pub const XEN_SYSCTL_PAYLOAD_SIZE: usize = 128;

/// `struct xen_sysctl`: one system-control request, a header and a
/// 128-byte payload union (kept as bytes).
#[repr(C, align(8))]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenSysctl {
    /// A `XEN_SYSCTL_*` command.
    pub cmd: u32,
    /// Must be [`XEN_SYSCTL_INTERFACE_VERSION`].
    pub interface_version: u32,
    /// The payload union `u`, as bytes.
    pub u: [u8; XEN_SYSCTL_PAYLOAD_SIZE],
}
const _: () = assert!(core::mem::size_of::<XenSysctl>() == 136);
const _: () = assert!(core::mem::align_of::<XenSysctl>() == 8);
const _: () = assert!(core::mem::offset_of!(XenSysctl, interface_version) == 4);
const _: () = assert!(core::mem::offset_of!(XenSysctl, u) == 8);

impl XenSysctl {
    /// A request for `cmd` with this ABI's interface version and a zeroed
    /// payload.
    pub const fn new(cmd: u32) -> Self {
        XenSysctl { cmd, interface_version: XEN_SYSCTL_INTERFACE_VERSION, u: [0; XEN_SYSCTL_PAYLOAD_SIZE] }
    }
    /// The payload read as `T` (one of the `XenSysctl*` payload structures).
    pub fn payload<T: FromBytes>(&self) -> T {
        union_bytes::read(&self.u)
    }
    /// Store `v` as the payload.
    pub fn set_payload<T: IntoBytes + Immutable>(&mut self, v: &T) {
        union_bytes::write(&mut self.u, v);
    }
}

impl Default for XenSysctl {
    fn default() -> Self {
        Self::new(0)
    }
}

/// `struct xen_sysctl_readconsole`: read Xen's console ring.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenSysctlReadconsole {
    /// IN: nonzero clears the ring after reading.
    pub clear: u8,
    /// IN: nonzero starts at `index`.
    pub incremental: u8,
    /// Padding; zero.
    pub pad0: u8,
    /// Padding; zero.
    pub pad1: u8,
    /// IN: start index (incremental); OUT: index after the last byte read.
    pub index: u32,
    /// IN: guest handle of the buffer.
    pub buffer: u64,
    /// IN: buffer size; OUT: bytes written.
    pub count: u32,
    /// Padding; zero.
    pub _pad2: u32,
}
const _: () = assert!(core::mem::size_of::<XenSysctlReadconsole>() == 24);
const _: () = assert!(core::mem::offset_of!(XenSysctlReadconsole, index) == 4);
const _: () = assert!(core::mem::offset_of!(XenSysctlReadconsole, buffer) == 8);
const _: () = assert!(core::mem::offset_of!(XenSysctlReadconsole, count) == 16);

/// `struct xen_sysctl_tbuf_op`: control the trace buffers.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenSysctlTbufOp {
    /// IN: `XEN_SYSCTL_TBUFOP_*`.
    pub cmd: u32,
    /// Padding; zero.
    pub _pad0: u32,
    /// IN/OUT: CPUs traced.
    pub cpu_mask: XenctlBitmap,
    /// IN/OUT: event classes traced.
    pub evt_mask: u32,
    /// Padding; zero.
    pub _pad1: u32,
    /// OUT: machine frame of the buffers.
    pub buffer_mfn: u64,
    /// IN/OUT: pages per CPU.
    pub size: u32,
    /// Padding; zero.
    pub _pad2: u32,
}
const _: () = assert!(core::mem::size_of::<XenSysctlTbufOp>() == 48);
const _: () = assert!(core::mem::offset_of!(XenSysctlTbufOp, cpu_mask) == 8);
const _: () = assert!(core::mem::offset_of!(XenSysctlTbufOp, evt_mask) == 24);
const _: () = assert!(core::mem::offset_of!(XenSysctlTbufOp, buffer_mfn) == 32);
const _: () = assert!(core::mem::offset_of!(XenSysctlTbufOp, size) == 40);

/// `struct xen_sysctl_physinfo`: what `xl info` shows about the host.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenSysctlPhysinfo {
    /// Threads per core.
    pub threads_per_core: u32,
    /// Cores per socket.
    pub cores_per_socket: u32,
    /// CPUs online.
    pub nr_cpus: u32,
    /// Highest possible CPU id.
    pub max_cpu_id: u32,
    /// NUMA nodes online.
    pub nr_nodes: u32,
    /// Highest possible node id.
    pub max_node_id: u32,
    /// CPU frequency (kHz).
    pub cpu_khz: u32,
    /// `XEN_SYSCTL_PHYSCAP_*`.
    pub capabilities: u32,
    /// Architecture-specific capabilities.
    pub arch_capabilities: u32,
    /// Padding; zero.
    pub pad: u32,
    /// Pages of RAM.
    pub total_pages: u64,
    /// Free pages.
    pub free_pages: u64,
    /// Pages awaiting scrubbing.
    pub scrub_pages: u64,
    /// Pages claimed but not allocated.
    pub outstanding_pages: u64,
    /// Highest possible machine frame.
    pub max_mfn: u64,
    /// CPU feature words.
    pub hw_cap: [u32; 8],
}
const _: () = assert!(core::mem::size_of::<XenSysctlPhysinfo>() == 112);
const _: () = assert!(core::mem::offset_of!(XenSysctlPhysinfo, capabilities) == 28);
const _: () = assert!(core::mem::offset_of!(XenSysctlPhysinfo, total_pages) == 40);
const _: () = assert!(core::mem::offset_of!(XenSysctlPhysinfo, free_pages) == 48);
const _: () = assert!(core::mem::offset_of!(XenSysctlPhysinfo, max_mfn) == 72);
const _: () = assert!(core::mem::offset_of!(XenSysctlPhysinfo, hw_cap) == 80);

/// `struct xen_sysctl_getdomaininfolist`: info on many domains at once.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenSysctlGetdomaininfolist {
    /// IN: lowest domain id to report.
    pub first_domain: u16,
    /// Padding; zero.
    pub _pad0: u16,
    /// IN: room in `buffer`.
    pub max_domains: u32,
    /// IN: guest handle of a [`crate::domctl::XenDomctlGetdomaininfo`] array.
    pub buffer: u64,
    /// OUT: entries written.
    pub num_domains: u32,
    /// Padding; zero.
    pub _pad1: u32,
}
const _: () = assert!(core::mem::size_of::<XenSysctlGetdomaininfolist>() == 24);
const _: () = assert!(core::mem::offset_of!(XenSysctlGetdomaininfolist, max_domains) == 4);
const _: () = assert!(core::mem::offset_of!(XenSysctlGetdomaininfolist, buffer) == 8);
const _: () = assert!(core::mem::offset_of!(XenSysctlGetdomaininfolist, num_domains) == 16);

/// `struct xen_sysctl_sched_id`.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenSysctlSchedId {
    /// OUT: `XEN_SCHEDULER_*` of the default pool.
    pub sched_id: u32,
}
const _: () = assert!(core::mem::size_of::<XenSysctlSchedId>() == 4);

/// `struct xen_sysctl_debug_keys`: press debug keys on Xen's console.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenSysctlDebugKeys {
    /// IN: guest handle of the key characters.
    pub keys: u64,
    /// IN: how many.
    pub nr_keys: u32,
    /// Padding; zero.
    pub _pad0: u32,
}
const _: () = assert!(core::mem::size_of::<XenSysctlDebugKeys>() == 16);

#[cfg(test)]
mod tests {
    use super::*;

    /// ABI rule: `xen_sysctl` is {u32 cmd, u32 interface_version} with its
    /// 8-aligned payload union at byte 8, 136 bytes in all.
    #[test]
    fn sysctl_payload_starts_at_byte_8() {
        let mut s = XenSysctl::new(XEN_SYSCTL_GETDOMAININFOLIST);
        s.set_payload(&XenSysctlGetdomaininfolist { first_domain: 0, max_domains: 64, buffer: 0x5000, ..Default::default() });
        let b = s.as_bytes();
        assert_eq!(b.len(), 136);
        assert_eq!(&b[0..8], &[6, 0, 0, 0, 0x15, 0, 0, 0]);
        assert_eq!(&b[12..16], &64u32.to_le_bytes());
        assert_eq!(&b[16..24], &0x5000u64.to_le_bytes());
        assert_eq!(XenSysctl::read_from_bytes(b).unwrap().payload::<XenSysctlGetdomaininfolist>().max_domains, 64);
    }

    /// ABI rule: `xen_sysctl_physinfo` has ten u32s then 8-aligned page
    /// counts from byte 40 and `hw_cap[8]` at 80, 112 bytes in all.
    #[test]
    fn physinfo_round_trips() {
        let p = XenSysctlPhysinfo {
            nr_cpus: 2,
            capabilities: XEN_SYSCTL_PHYSCAP_PV | XEN_SYSCTL_PHYSCAP_GNTTAB_V1,
            total_pages: 0x10_0000,
            free_pages: 0x8_0000,
            hw_cap: [1, 2, 3, 4, 5, 6, 7, 8],
            ..Default::default()
        };
        let b = p.as_bytes();
        assert_eq!(&b[28..32], &0x102u32.to_le_bytes());
        assert_eq!(&b[40..48], &0x10_0000u64.to_le_bytes());
        assert_eq!(&b[108..112], &8u32.to_le_bytes());
        assert_eq!(XenSysctlPhysinfo::read_from_bytes(b).unwrap(), p);
    }
}
