//! Version and feature queries: mirrors Xen 4.17's `public/version.h`, with
//! the `XENFEAT_*` bit numbers of `public/features.h`.
//!
//! Holds the `XENVER_*` sub-op numbers of `xen_version(cmd, arg)` and the
//! fixed-size buffer each sub-op fills. The numbers that already live at the
//! crate root (`XENVER_VERSION` .. `XENVER_PAGESIZE`) are re-exported from
//! there, not redefined. Invariant: every buffer has exactly the size Xen
//! 4.17 gives it (a C `char[N]` is a `[u8; N]` here), checked at compile
//! time. `XENVER_build_id` takes a variable-length structure and has no
//! type here.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub use crate::xen::{
    XENVER_CAPABILITIES, XENVER_CHANGESET, XENVER_COMPILE_INFO, XENVER_EXTRAVERSION, XENVER_GET_FEATURES, XENVER_PAGESIZE,
    XENVER_PLATFORM_PARAMETERS, XENVER_VERSION,
};

/// `XENVER_guest_handle`: [`XenDomainHandle`], the UUID the toolstack set.
pub const XENVER_GUEST_HANDLE: u64 = 8;
/// `XENVER_commandline`: [`XenCommandline`], the hypervisor's command line.
pub const XENVER_COMMANDLINE: u64 = 9;
/// `XENVER_build_id`: a `struct xen_build_id` of caller-chosen length.
pub const XENVER_BUILD_ID: u64 = 10;

/// `XEN_EXTRAVERSION_LEN`.
pub const XEN_EXTRAVERSION_LEN: usize = 16;
/// `XEN_CAPABILITIES_INFO_LEN`.
pub const XEN_CAPABILITIES_INFO_LEN: usize = 1024;
/// `XEN_CHANGESET_INFO_LEN`.
pub const XEN_CHANGESET_INFO_LEN: usize = 64;
/// Size of `xen_commandline_t`.
pub const XEN_COMMANDLINE_LEN: usize = 1024;

/// `XENFEAT_writable_page_tables`.
pub const XENFEAT_WRITABLE_PAGE_TABLES: u32 = 0;
/// `XENFEAT_writable_descriptor_tables`.
pub const XENFEAT_WRITABLE_DESCRIPTOR_TABLES: u32 = 1;
/// `XENFEAT_auto_translated_physmap`.
pub const XENFEAT_AUTO_TRANSLATED_PHYSMAP: u32 = 2;
/// `XENFEAT_supervisor_mode_kernel`.
pub const XENFEAT_SUPERVISOR_MODE_KERNEL: u32 = 3;
/// `XENFEAT_pae_pgdir_above_4gb`.
pub const XENFEAT_PAE_PGDIR_ABOVE_4GB: u32 = 4;
/// `XENFEAT_mmu_pt_update_preserve_ad`.
pub const XENFEAT_MMU_PT_UPDATE_PRESERVE_AD: u32 = 5;
/// `XENFEAT_highmem_assist`.
pub const XENFEAT_HIGHMEM_ASSIST: u32 = 6;
/// `XENFEAT_gnttab_map_avail_bits`.
pub const XENFEAT_GNTTAB_MAP_AVAIL_BITS: u32 = 7;
/// `XENFEAT_hvm_callback_vector`.
pub const XENFEAT_HVM_CALLBACK_VECTOR: u32 = 8;
/// `XENFEAT_hvm_safe_pvclock`.
pub const XENFEAT_HVM_SAFE_PVCLOCK: u32 = 9;
/// `XENFEAT_hvm_pirqs`.
pub const XENFEAT_HVM_PIRQS: u32 = 10;
/// `XENFEAT_dom0`: the domain is the hardware domain.
pub const XENFEAT_DOM0: u32 = 11;
/// `XENFEAT_grant_map_identity`.
pub const XENFEAT_GRANT_MAP_IDENTITY: u32 = 12;
/// `XENFEAT_memory_op_vnode_supported`.
pub const XENFEAT_MEMORY_OP_VNODE_SUPPORTED: u32 = 13;
/// `XENFEAT_ARM_SMCCC_supported`.
pub const XENFEAT_ARM_SMCCC_SUPPORTED: u32 = 14;
/// `XENFEAT_linux_rsdp_unrestricted`.
pub const XENFEAT_LINUX_RSDP_UNRESTRICTED: u32 = 15;
/// `XENFEAT_not_direct_mapped`.
pub const XENFEAT_NOT_DIRECT_MAPPED: u32 = 16;
/// `XENFEAT_direct_mapped`.
pub const XENFEAT_DIRECT_MAPPED: u32 = 17;
/// `XENFEAT_NR_SUBMAPS`: 32-bit feature submaps Xen knows.
pub const XENFEAT_NR_SUBMAPS: u32 = 1;

/// `xen_extraversion_t`: the version suffix, NUL terminated when shorter.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenExtraversion(pub [u8; XEN_EXTRAVERSION_LEN]);
const _: () = assert!(core::mem::size_of::<XenExtraversion>() == 16);

/// `struct xen_compile_info`: who built the hypervisor, with what, and when.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenCompileInfo {
    /// The compiler's version string.
    pub compiler: [u8; 64],
    /// The user that built it.
    pub compile_by: [u8; 16],
    /// The build host's domain.
    pub compile_domain: [u8; 32],
    /// The build date.
    pub compile_date: [u8; 32],
}
const _: () = assert!(core::mem::size_of::<XenCompileInfo>() == 144);
const _: () = assert!(core::mem::offset_of!(XenCompileInfo, compile_by) == 64);
const _: () = assert!(core::mem::offset_of!(XenCompileInfo, compile_domain) == 80);
const _: () = assert!(core::mem::offset_of!(XenCompileInfo, compile_date) == 112);

impl Default for XenCompileInfo {
    fn default() -> Self {
        XenCompileInfo { compiler: [0; 64], compile_by: [0; 16], compile_domain: [0; 32], compile_date: [0; 32] }
    }
}

/// `xen_capabilities_info_t`: the guest ABIs the hypervisor runs, space
/// separated (`xen-3.0-x86_64 ...`).
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenCapabilitiesInfo(pub [u8; XEN_CAPABILITIES_INFO_LEN]);
const _: () = assert!(core::mem::size_of::<XenCapabilitiesInfo>() == 1024);

impl Default for XenCapabilitiesInfo {
    fn default() -> Self {
        XenCapabilitiesInfo([0; XEN_CAPABILITIES_INFO_LEN])
    }
}

/// `xen_changeset_info_t`: the source revision the hypervisor was built from.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenChangesetInfo(pub [u8; XEN_CHANGESET_INFO_LEN]);
const _: () = assert!(core::mem::size_of::<XenChangesetInfo>() == 64);

impl Default for XenChangesetInfo {
    fn default() -> Self {
        XenChangesetInfo([0; XEN_CHANGESET_INFO_LEN])
    }
}

/// `struct xen_platform_parameters`.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenPlatformParameters {
    /// OUT: start of the hypervisor's virtual range.
    pub virt_start: u64,
}
const _: () = assert!(core::mem::size_of::<XenPlatformParameters>() == 8);

/// `struct xen_feature_info`: one 32-bit submap of `XENFEAT_*` bits.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenFeatureInfo {
    /// IN: which submap (0 .. [`XENFEAT_NR_SUBMAPS`]).
    pub submap_idx: u32,
    /// OUT: its bits; bit `n` of submap `i` is feature `32 * i + n`.
    pub submap: u32,
}
const _: () = assert!(core::mem::size_of::<XenFeatureInfo>() == 8);
const _: () = assert!(core::mem::offset_of!(XenFeatureInfo, submap) == 4);

/// `xen_domain_handle_t`: a domain's UUID (`XENVER_guest_handle`).
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenDomainHandle(pub [u8; 16]);
const _: () = assert!(core::mem::size_of::<XenDomainHandle>() == 16);

/// `xen_commandline_t`: the hypervisor's command line (`XENVER_commandline`).
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenCommandline(pub [u8; XEN_COMMANDLINE_LEN]);
const _: () = assert!(core::mem::size_of::<XenCommandline>() == 1024);

impl Default for XenCommandline {
    fn default() -> Self {
        XenCommandline([0; XEN_COMMANDLINE_LEN])
    }
}

/// The text of a NUL-padded `char[N]` buffer: up to its first NUL, or all
/// of it (`None` if that is not UTF-8).
pub fn c_str(buf: &[u8]) -> Option<&str> {
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    core::str::from_utf8(&buf[..end]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ABI rule: `xen_compile_info` is char[64], char[16], char[32], char[32]
    /// back to back, 144 bytes.
    #[test]
    fn compile_info_fields_back_to_back() {
        let mut bytes = [0u8; 144];
        bytes[0] = b'g';
        bytes[64] = b'u';
        bytes[80] = b'd';
        bytes[112] = b'2';
        let c = XenCompileInfo::read_from_bytes(&bytes).unwrap();
        assert_eq!((c.compiler[0], c.compile_by[0], c.compile_domain[0], c.compile_date[0]), (b'g', b'u', b'd', b'2'));
    }

    /// ABI rule: `xen_feature_info` is {unsigned int submap_idx; uint32_t
    /// submap}, and XENFEAT_dom0 is bit 11 of submap 0.
    #[test]
    fn feature_info_submap_at_byte_4() {
        let f = XenFeatureInfo::read_from_bytes(&[0, 0, 0, 0, 0, 0x08, 0, 0]).unwrap();
        assert_eq!(f, XenFeatureInfo { submap_idx: 0, submap: 1 << XENFEAT_DOM0 });
    }

    #[test]
    fn c_str_stops_at_the_first_nul() {
        let mut e = XenExtraversion::default();
        e.0[..10].copy_from_slice(b"-xen-core\0");
        assert_eq!(c_str(&e.0), Some("-xen-core"));
        assert_eq!(c_str(b"abc"), Some("abc"));
    }
}
