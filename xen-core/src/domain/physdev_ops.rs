//! `physdev_op(cmd, arg)` (hypercall 33) for PV guests: the I/O privilege
//! sub-ops, as Xen 4.17's `xen/arch/x86/physdev.c` has them.
//!
//! Owns the vCPU's virtual IOPL and I/O bitmap ([`VcpuIo`], read by
//! `io_emul.rs` when a port access faults). Invariants: the virtual IOPL is
//! 0-3; an I/O bitmap is only recorded if all of its 8 KiB lie in guest
//! space (it is read later through the guest's tables, never trusted);
//! arguments are copied in once through [`GuestAccess`]. Sub-ops about
//! interrupts and PCI devices are not here: -ENOSYS.
#![forbid(unsafe_code)]

use super::guest_mem::GuestAccess;
use super::io_emul::VcpuIo;
use crate::mm::guest_walk::guest_va_ok;
use xen_public::errno::{EFAULT, EINVAL, ENOSYS};
use xen_public::physdev::{PHYSDEVOP_SET_IOBITMAP, PHYSDEVOP_SET_IOPL, PhysdevSetIobitmap, PhysdevSetIopl};

/// Bytes of a full I/O bitmap (Xen's `IOBMP_BYTES`: 65536 ports).
pub const IOBMP_BYTES: u64 = 8192;

/// Whether `[va, va + len)` lies in guest space (Xen's `guest_handle_okay`
/// for a 64-bit PV guest: no byte in the hypervisor's range or past the
/// canonical lower half).
fn range_ok(va: u64, len: u64) -> bool {
    let Some(last) = va.checked_add(len - 1) else { return false };
    guest_va_ok(va) && guest_va_ok(last) && (va >> 63 == last >> 63)
}

/// `physdev_op(cmd, arg)` for the vCPU whose I/O state is `io`, with the
/// caller's memory `mem`.
pub fn physdev_op(io: &mut VcpuIo, mem: &impl GuestAccess, cmd: u64, arg: u64) -> i64 {
    match cmd {
        PHYSDEVOP_SET_IOPL => {
            let Ok(op) = mem.copy_from::<PhysdevSetIopl>(arg) else { return -EFAULT };
            if op.iopl > 3 {
                return -EINVAL;
            }
            io.iopl = op.iopl as u8;
            0
        }
        PHYSDEVOP_SET_IOBITMAP => {
            let Ok(op) = mem.copy_from::<PhysdevSetIobitmap>(arg) else { return -EFAULT };
            if !range_ok(op.bitmap, IOBMP_BYTES) || op.nr_ports > 65536 {
                return -EINVAL;
            }
            io.iobmp = op.bitmap;
            io.iobmp_limit = op.nr_ports;
            0
        }
        _ => -ENOSYS,
    }
}

#[cfg(test)]
mod tests {
    use super::super::guest_mem::tests::FakeGuest;
    use super::*;

    fn guest_with(va: u64, bytes: &[u8]) -> FakeGuest {
        let g = FakeGuest::default();
        g.map(va);
        g.write(va, bytes).unwrap();
        g
    }

    #[test]
    fn set_iopl_takes_0_to_3_per_vcpu() {
        for level in 0..=3u32 {
            let g = guest_with(0x1000, &level.to_le_bytes());
            let mut io = VcpuIo::default();
            assert_eq!(physdev_op(&mut io, &g, PHYSDEVOP_SET_IOPL, 0x1000), 0);
            assert_eq!(io.iopl, level as u8);
        }
    }

    #[test]
    fn set_iopl_above_3_is_einval_and_keeps_the_old_level() {
        let g = guest_with(0x1000, &4u32.to_le_bytes());
        let mut io = VcpuIo { iopl: 1, ..Default::default() };
        assert_eq!(physdev_op(&mut io, &g, PHYSDEVOP_SET_IOPL, 0x1000), -EINVAL);
        let g = guest_with(0x1000, &u32::MAX.to_le_bytes());
        assert_eq!(physdev_op(&mut io, &g, PHYSDEVOP_SET_IOPL, 0x1000), -EINVAL);
        assert_eq!(io.iopl, 1);
    }

    #[test]
    fn set_iopl_with_a_bad_pointer_is_efault() {
        let g = FakeGuest::default();
        let mut io = VcpuIo::default();
        for arg in [0xdead_0000, 0xffff_8300_0000_0000, 0x8000_0000_0000_0000, u64::MAX - 1] {
            assert_eq!(physdev_op(&mut io, &g, PHYSDEVOP_SET_IOPL, arg), -EFAULT);
        }
    }

    #[test]
    fn set_iobitmap_records_the_bitmap_and_checks_it_lies_in_guest_space() {
        let mut arg = [0u8; 16];
        arg[..8].copy_from_slice(&0x40_0000u64.to_le_bytes());
        arg[8..12].copy_from_slice(&0x400u32.to_le_bytes());
        let g = guest_with(0x1000, &arg);
        let mut io = VcpuIo::default();
        assert_eq!(physdev_op(&mut io, &g, PHYSDEVOP_SET_IOBITMAP, 0x1000), 0);
        assert_eq!((io.iobmp, io.iobmp_limit), (0x40_0000, 0x400));
        for (bitmap, nr) in [(0x40_0000u64, 65537u32), (0xffff_8300_0000_0000, 1), (0x7fff_ffff_f000, 1), (u64::MAX - 100, 1)] {
            arg[..8].copy_from_slice(&bitmap.to_le_bytes());
            arg[8..12].copy_from_slice(&nr.to_le_bytes());
            let g = guest_with(0x1000, &arg);
            assert_eq!(physdev_op(&mut io, &g, PHYSDEVOP_SET_IOBITMAP, 0x1000), -EINVAL, "{bitmap:#x} {nr}");
            assert_eq!((io.iobmp, io.iobmp_limit), (0x40_0000, 0x400), "unchanged");
        }
    }

    /// Not Xen's answers: Xen 4.17 handles the interrupt sub-ops (4, 5,
    /// 12, 13, 21...) that xen-core has no PIRQs for yet; until then they
    /// are unimplemented, and an unimplemented hypercall is -ENOSYS.
    #[test]
    fn interrupt_sub_ops_are_unimplemented_enosys() {
        let g = guest_with(0x1000, &[0; 64]);
        let mut io = VcpuIo::default();
        for cmd in [4, 5, 8, 12, 13, 21, 1000] {
            assert_eq!(physdev_op(&mut io, &g, cmd, 0x1000), -ENOSYS, "cmd {cmd}");
        }
    }
}
