//! The hypercalls that read or set domain-wide facts and touch nothing
//! else: `xen_version` (every sub-op Xen 4.17 has for a PV guest) and
//! `vm_assist`. Generic over [`GuestAccess`], so they are tested on the
//! host.
//!
//! Invariants: a string goes out NUL-terminated in exactly the size of
//! Xen's field; a failed guest access is -EFAULT; exactly the VMASST types
//! Xen 4.17 accepts from a 64-bit PV domain can be enabled.
#![forbid(unsafe_code)]

use super::Domain;
use super::guest_mem::{GuestAccess, rc};
use crate::version::{NAME, VERSION, XEN_MAJOR, XEN_MINOR};
use xen_public::errno::{EFAULT, EINVAL, ENOSYS};
use xen_public::xen::{
    VMASST_TYPE_4GB_SEGMENTS, VMASST_TYPE_4GB_SEGMENTS_NOTIFY, VMASST_TYPE_ARCHITECTURAL_IOPL, VMASST_TYPE_M2P_STRICT, VMASST_TYPE_PAE_EXTENDED_CR3,
    VMASST_TYPE_RUNSTATE_UPDATE_FLAG, VMASST_TYPE_WRITABLE_PAGETABLES, vmasst_bit,
};

/// A hypercall's result for the guest's RAX (a negated errno on failure).
type Ret = i64;

/// VMASST types a 64-bit PV domain may enable: Xen 4.17's
/// `PV64_VM_ASSIST_MASK` (`asm/domain.h`): 4gb_segments (0),
/// 4gb_segments_notify (1), writable_pagetables (2), pae_extended_cr3 (3),
/// architectural_iopl (4), runstate_update_flag (5) and m2p_strict (32).
/// As on Xen, 0, 1 and 3 change nothing for a 64-bit guest;
/// writable_pagetables turns on `domain/ptwr.rs` for a domU (the hardware
/// domain always has it); what xen-core does with m2p_strict is in
/// docs/hypercalls.md.
pub const VMASST_VALID: u64 = vmasst_bit(VMASST_TYPE_4GB_SEGMENTS)
    | vmasst_bit(VMASST_TYPE_4GB_SEGMENTS_NOTIFY)
    | vmasst_bit(VMASST_TYPE_WRITABLE_PAGETABLES)
    | vmasst_bit(VMASST_TYPE_PAE_EXTENDED_CR3)
    | vmasst_bit(VMASST_TYPE_ARCHITECTURAL_IOPL)
    | vmasst_bit(VMASST_TYPE_RUNSTATE_UPDATE_FLAG)
    | vmasst_bit(VMASST_TYPE_M2P_STRICT);

/// `vm_assist(cmd, type)`: enable (0) or disable (1) an assist.
pub fn vm_assist(d: &mut Domain, cmd: u32, kind: u32) -> Ret {
    if kind >= 64 || VMASST_VALID & (1 << kind) == 0 {
        return -EINVAL;
    }
    match cmd {
        0 => d.vm_assist |= 1 << kind,
        1 => d.vm_assist &= !(1 << kind),
        _ => return -ENOSYS,
    }
    0
}

/// `xen_version(cmd, arg)` for the domain `d`, whose memory is `mem`.
/// `XENVER_version` is the guests' null hypercall (and the bench's): it is
/// answered here, inline in the dispatcher, without the buffers the other
/// commands need.
#[inline]
pub fn xen_version(d: &Domain, mem: &impl GuestAccess, cmd: u32, arg: u64) -> Ret {
    if u64::from(cmd) == xen_public::XENVER_VERSION {
        return i64::from((XEN_MAJOR << 16) | XEN_MINOR);
    }
    xen_version_buf(d, mem, cmd, arg)
}

/// The `xen_version` commands that read or write guest memory.
#[inline(never)]
fn xen_version_buf(d: &Domain, mem: &impl GuestAccess, cmd: u32, arg: u64) -> Ret {
    use xen_public::*;
    match u64::from(cmd) {
        XENVER_EXTRAVERSION => copy_str(mem, arg, "-xen-core", 16),
        XENVER_COMPILE_INFO => {
            // {compiler[64], compile_by[16], compile_domain[32], compile_date[32]}
            let mut info = [0u8; 144];
            let fields: [(&str, usize, usize); 4] = [("rustc 1.95.0", 0, 64), (NAME, 64, 16), (VERSION, 80, 32), ("unknown", 112, 32)];
            for (s, at, size) in fields {
                let n = s.len().min(size - 1);
                info[at..at + n].copy_from_slice(&s.as_bytes()[..n]);
            }
            rc(mem.write(arg, &info))
        }
        XENVER_CAPABILITIES => copy_str(mem, arg, "xen-3.0-x86_64", 1024),
        XENVER_CHANGESET => copy_str(mem, arg, "unavailable", 64),
        XENVER_PLATFORM_PARAMETERS => rc(mem.write(arg, &HYPERVISOR_VIRT_START.to_le_bytes())),
        XENVER_GET_FEATURES => {
            let Ok(idx) = mem.copy_from::<u32>(arg) else { return -EFAULT };
            if idx != 0 {
                return -EINVAL;
            }
            rc(mem.write(arg + 4, &features(d).to_le_bytes()))
        }
        XENVER_PAGESIZE => PAGE_SIZE as i64,
        xen_public::version::XENVER_GUEST_HANDLE => rc(mem.write(arg, &d.handle)),
        _ => -ENOSYS,
    }
}

/// Write `s` NUL-terminated into a field of `size` bytes at `va`.
fn copy_str(mem: &impl GuestAccess, va: u64, s: &str, size: usize) -> Ret {
    let mut buf = [0u8; 1024];
    let n = s.len().min(size - 1);
    buf[..n].copy_from_slice(&s.as_bytes()[..n]);
    rc(mem.write(va, &buf[..size]))
}

/// XENFEAT bits xen-core offers a PV domain (submap 0), as Xen 4.17's
/// `XENVER_get_features` does: the PV guarantees (A/D-preserving
/// mmu_update, MMUEXT_clear/copy_page, guest-available bits of grant
/// mappings kept), vNUMA queries answered, direct-mapped, and dom0 and
/// pae_pgdir_above_4gb where they apply. Linux 6.1 panics without
/// mmu_pt_update_preserve_ad and gnttab_map_avail_bits.
fn features(d: &Domain) -> u32 {
    const XENFEAT_PAE_PGDIR_ABOVE_4GB: u32 = 4;
    const XENFEAT_MMU_PT_UPDATE_PRESERVE_AD: u32 = 5;
    const XENFEAT_HIGHMEM_ASSIST: u32 = 6;
    const XENFEAT_GNTTAB_MAP_AVAIL_BITS: u32 = 7;
    const XENFEAT_DOM0: u32 = 11;
    const XENFEAT_MEMORY_OP_VNODE_SUPPORTED: u32 = 13;
    const XENFEAT_DIRECT_MAPPED: u32 = 17;
    let mut f = (1 << XENFEAT_DIRECT_MAPPED)
        | (1 << XENFEAT_MEMORY_OP_VNODE_SUPPORTED)
        | (1 << XENFEAT_MMU_PT_UPDATE_PRESERVE_AD)
        | (1 << XENFEAT_HIGHMEM_ASSIST)
        | (1 << XENFEAT_GNTTAB_MAP_AVAIL_BITS);
    if d.privileged {
        f |= 1 << XENFEAT_DOM0;
    }
    if d.has_assist(VMASST_TYPE_PAE_EXTENDED_CR3) {
        f |= 1 << XENFEAT_PAE_PGDIR_ABOVE_4GB;
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::guest_mem::tests::FakeGuest;
    use crate::mm::Mfn;
    use xen_public::*;

    const ARG: u64 = 0x7000;

    fn guest() -> FakeGuest {
        let g = FakeGuest::default();
        g.map(ARG);
        g
    }

    fn domu() -> Domain {
        Domain::empty(1, false, Mfn(0x100))
    }

    #[test]
    fn xenver_version_is_4_17_by_value() {
        assert_eq!(xen_version(&domu(), &FakeGuest::default(), XENVER_VERSION as u32, 0), (4 << 16) | 17);
    }

    #[test]
    fn xenver_extraversion_fills_16_bytes_nul_terminated() {
        let g = guest();
        g.write(ARG, &[0xaa; 32]).unwrap();
        assert_eq!(xen_version(&domu(), &g, XENVER_EXTRAVERSION as u32, ARG), 0);
        let mut b = [0u8; 32];
        g.read(ARG, &mut b).unwrap();
        assert_eq!(&b[..10], b"-xen-core\0");
        assert!(b[10..16].iter().all(|&x| x == 0), "the rest of the field is zeroed");
        assert!(b[16..].iter().all(|&x| x == 0xaa), "nothing past the 16-byte field");
    }

    #[test]
    fn xenver_capabilities_is_the_1024_byte_field() {
        let g = guest();
        assert_eq!(xen_version(&domu(), &g, XENVER_CAPABILITIES as u32, ARG), 0, "one page holds it");
        assert_eq!(xen_version(&domu(), &g, XENVER_CAPABILITIES as u32, ARG + 4096 - 1000), -EFAULT, "runs off the page");
    }

    #[test]
    fn xenver_get_features_submap_0_only() {
        let g = guest();
        let mut d = domu();
        assert_eq!(xen_version(&d, &g, XENVER_GET_FEATURES as u32, ARG), 0);
        const PV: u32 = (1 << 17) | (1 << 13) | (1 << 7) | (1 << 6) | (1 << 5);
        assert_eq!(g.copy_from::<u32>(ARG + 4), Ok(PV), "Xen 4.17's PV set, for a domU");
        d.privileged = true;
        assert_eq!(vm_assist(&mut d, 0, VMASST_TYPE_PAE_EXTENDED_CR3), 0);
        assert_eq!(xen_version(&d, &g, XENVER_GET_FEATURES as u32, ARG), 0);
        assert_eq!(g.copy_from::<u32>(ARG + 4), Ok(PV | (1 << 11) | (1 << 4)));
        g.copy_to(ARG, &1u32).unwrap();
        assert_eq!(xen_version(&d, &g, XENVER_GET_FEATURES as u32, ARG), -EINVAL, "submap 1 does not exist");
    }

    #[test]
    fn xenver_guest_handle_is_the_domains_16_byte_handle() {
        let g = guest();
        let mut d = domu();
        d.handle = [0xab; 16];
        assert_eq!(xen_version(&d, &g, xen_public::version::XENVER_GUEST_HANDLE as u32, ARG), 0);
        let mut got = [0u8; 16];
        g.read(ARG, &mut got).unwrap();
        assert_eq!(got, [0xab; 16]);
        assert_eq!(xen_version(&d, &FakeGuest::default(), xen_public::version::XENVER_GUEST_HANDLE as u32, ARG), -EFAULT);
    }

    #[test]
    fn xenver_unmapped_argument_is_efault_and_unknown_cmd_enosys() {
        let g = FakeGuest::default();
        for cmd in [XENVER_EXTRAVERSION, XENVER_COMPILE_INFO, XENVER_CHANGESET, XENVER_PLATFORM_PARAMETERS, XENVER_GET_FEATURES] {
            assert_eq!(xen_version(&domu(), &g, cmd as u32, ARG), -EFAULT, "cmd {cmd}");
        }
        assert_eq!(xen_version(&domu(), &g, 99, ARG), -ENOSYS);
    }

    #[test]
    fn vm_assist_accepts_xen_4_17_pv64_mask_only() {
        let mut d = domu();
        for kind in [0, 1, 2, 3, 4, 5, 32] {
            assert_eq!(vm_assist(&mut d, 0, kind), 0, "type {kind} is in PV64_VM_ASSIST_MASK");
            assert_eq!(vm_assist(&mut d, 1, kind), 0);
        }
        for kind in [6, 7, 31, 33, 63] {
            assert_eq!(vm_assist(&mut d, 0, kind), -EINVAL, "type {kind} is not");
        }
        assert_eq!(vm_assist(&mut d, 0, 64), -EINVAL, "beyond the bitmap");
        assert_eq!(vm_assist(&mut d, 2, 6), -EINVAL, "the type is checked before the command");
        assert_eq!(vm_assist(&mut d, 2, 0), -ENOSYS, "unknown command");
        assert_eq!(vm_assist(&mut d, 0, 5), 0);
        assert_eq!(d.vm_assist, 1 << 5);
        assert_eq!(vm_assist(&mut d, 1, 5), 0);
        assert_eq!(d.vm_assist, 0);
    }
}
