//! `xen_version` (`xen/include/public/version.h`), and the hypercall numbers
//! that have no handler (`__HYPERVISOR_*` in `xen/include/public/xen.h`). Two
//! lists, because the run order (`cases.rs`) puts other families between them.

#[cfg(target_os = "none")]
use super::helpers;
use crate::conformance::{CaseInfo, Kind};

/// Hypercall numbers without a handler: -ENOSYS.
pub mod unused_numbers {
    use super::*;

    cases! {
        nr_11_unused_is_enosys ("unused", "11", Reject) { expect(call(11, 0, 0, 0, 0, 0), -ENOSYS) }
        nr_38_tmem_removed_is_enosys ("unused", "38 (tmem_op)", Reject) { expect(call(38, 0, 0, 0, 0, 0), -ENOSYS) }
        nr_43_unused_is_enosys ("unused", "43", Reject) { expect(call(43, 0, 0, 0, 0, 0), -ENOSYS) }
        nr_44_unused_is_enosys ("unused", "44", Reject) { expect(call(44, 0, 0, 0, 0, 0), -ENOSYS) }
        nr_46_unused_is_enosys ("unused", "46", Reject) { expect(call(46, 0, 0, 0, 0, 0), -ENOSYS) }
        nr_47_unused_is_enosys ("unused", "47", Reject) { expect(call(47, 0, 0, 0, 0, 0), -ENOSYS) }
        nr_56_unused_is_enosys ("unused", "56", Reject) { expect(call(56, 0, 0, 0, 0, 0), -ENOSYS) }
        nr_64_unused_is_enosys ("unused", "64", Reject) { expect(call(64, 0, 0, 0, 0, 0), -ENOSYS) }
        nr_100_unused_is_enosys ("unused", "100", Reject) { expect(call(100, 0, 0, 0, 0, 0), -ENOSYS) }
        nr_127_last_stub_is_enosys ("unused", "127", Reject) { expect(call(127, 0, 0, 0, 0, 0), -ENOSYS) }
        nr_4096_out_of_table_is_enosys ("unused", "4096 (raw SYSCALL)", Attack) { expect(raw_syscall(4096), -ENOSYS) }
        nr_u64_max_out_of_table_is_enosys ("unused", "2^64-1 (raw SYSCALL)", Attack) { expect(raw_syscall(u64::MAX), -ENOSYS) }
    }
}

/// `xen_version`: the version, its buffers, feature bits.
pub mod xen_version {
    use super::*;

    cases! {
        xen_version_is_4_17 ("xen_version", "XENVER_version", Accept) { expect(call(nr::XEN_VERSION, 0, 0, 0, 0, 0), (4 << 16) | 17) }
        xen_version_extraversion_terminated ("xen_version", "XENVER_extraversion", Accept) {
            let mut b = XenExtraversion([0xff; 16]);
            all(&[expect(xen_version_op(&mut b), 0), check(b.0.contains(&0), format_args!("no NUL"))])
        }
        xen_version_compile_info_ok ("xen_version", "XENVER_compile_info", Accept) {
            expect(xen_version_op(&mut XenCompileInfo::default()), 0)
        }
        xen_version_capabilities_has_x86_64 ("xen_version", "XENVER_capabilities", Accept) {
            let mut b = XenCapabilitiesInfo::default();
            let r = xen_version_op(&mut b);
            all(&[expect(r, 0), check(b.0.windows(14).any(|w| w == b"xen-3.0-x86_64"), format_args!("no xen-3.0-x86_64"))])
        }
        xen_version_changeset_ok ("xen_version", "XENVER_changeset", Accept) {
            expect(xen_version_op(&mut XenChangesetInfo::default()), 0)
        }
        xen_version_platform_parameters_virt_start ("xen_version", "XENVER_platform_parameters", Accept) {
            let mut p = XenPlatformParameters::default();
            let r = xen_version_op(&mut p);
            all(&[expect(r, 0), check(p.virt_start == 0xffff_8000_0000_0000, format_args!("virt_start {:#x}", p.virt_start))])
        }
        xen_version_features_dom0_bit ("xen_version", "XENVER_get_features", Accept) {
            let mut f = XenFeatureInfo { submap_idx: 0, submap: 0 };
            let r = xen_version_op(&mut f);
            all(&[expect(r, 0), check(f.submap & (1 << XENFEAT_DOM0) != 0, format_args!("submap {:#x} lacks XENFEAT_dom0", f.submap))])
        }
        xen_version_features_pv_set ("xen_version", "XENVER_get_features", Accept) {
            // Xen 4.17 (kernel.c): a PV dom0 gets direct_mapped (17),
            // memory_op_vnode_supported (13), dom0 (11), gnttab_map_avail_bits
            // (7), highmem_assist (6), mmu_pt_update_preserve_ad (5); bit 4
            // follows VMASST_pae_extended_cr3. Linux 6.1 panics without 5 and 7.
            let mut f = XenFeatureInfo { submap_idx: 0, submap: 0 };
            let r = xen_version_op(&mut f);
            let want = (1 << 17) | (1 << 13) | (1 << 11) | (1 << 7) | (1 << 6) | (1 << 5);
            all(&[expect(r, 0), check(f.submap & !(1 << 4) == want, format_args!("submap {:#x}, want {want:#x}", f.submap))])
        }
        xen_version_features_submap_1_einval ("xen_version", "XENVER_get_features", Reject) {
            expect(xen_version_op(&mut XenFeatureInfo { submap_idx: 1, submap: 0 }), -EINVAL)
        }
        xen_version_pagesize_4096 ("xen_version", "XENVER_pagesize", Accept) { expect(call(nr::XEN_VERSION, 7, 0, 0, 0, 0), 4096) }
        xen_version_unknown_cmd_enosys ("xen_version", "cmd 200", Reject) { expect(call(nr::XEN_VERSION, 200, 0, 0, 0, 0), -ENOSYS) }
        xen_version_unmapped_buffer_efault ("xen_version", "XENVER_extraversion", Reject) { expect(call(nr::XEN_VERSION, 1, UNMAPPED, 0, 0, 0), -EFAULT) }
        xen_version_xen_buffer_efault ("xen_version", "XENVER_compile_info", Attack) { expect(call(nr::XEN_VERSION, 2, XEN_VA, 0, 0, 0), -EFAULT) }
        xen_version_into_readonly_page_table_efault ("xen_version", "XENVER_capabilities", Attack) {
            let l4 = start_info().pt_base;
            // SAFETY: the L4 is mapped (read-only) in our initial region.
            let before = unsafe { core::ptr::read_volatile(l4 as *const u64) };
            let r = call(nr::XEN_VERSION, 3, l4, 0, 0, 0);
            // SAFETY: as above.
            let after = unsafe { core::ptr::read_volatile(l4 as *const u64) };
            all(&[expect(r, -EFAULT), check(before == after, format_args!("L4 entry 0 changed"))])
        }
    }
}
