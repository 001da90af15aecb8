//! `physdev_op` (`xen/include/public/physdev.h`) and port I/O from a PV
//! kernel, which runs in ring 3: `in`/`out`/`ins`/`outs` raise #GP, and the
//! hypervisor emulates them when the virtual IOPL allows (Xen 4.17's
//! `emul-priv-op.c`). Every case leaves the virtual IOPL at 0.

#[cfg(target_os = "none")]
use super::helpers;
use crate::conformance::{CaseInfo, Kind};

cases! {
    physdev_set_iopl_ok ("physdev_op", "PHYSDEVOP_set_iopl", Accept) {
        let r = set_iopl(1);
        all(&[expect(r, 0), expect(set_iopl(3), 0), expect(set_iopl(0), 0)])
    }
    physdev_set_iopl_above_3_einval ("physdev_op", "PHYSDEVOP_set_iopl", Reject) { expect(set_iopl(4), -EINVAL) }
    physdev_set_iopl_unmapped_efault ("physdev_op", "PHYSDEVOP_set_iopl", Reject) {
        expect(call(nr::PHYSDEV_OP, PHYSDEVOP_SET_IOPL, UNMAPPED, 0, 0, 0), -EFAULT)
    }
    physdev_set_iopl_hypervisor_address_efault ("physdev_op", "PHYSDEVOP_set_iopl", Attack) {
        expect(call(nr::PHYSDEV_OP, PHYSDEVOP_SET_IOPL, XEN_VA, 0, 0, 0), -EFAULT)
    }
    physdev_unknown_subop_enosys ("physdev_op", "cmd 1000", Reject) { expect(call(nr::PHYSDEV_OP, 1000, 0, 0, 0, 0), -ENOSYS) }
    port_io_in_without_iopl_is_gp ("trap", "in $0x80, %al at IOPL 0", Trap) {
        let r = set_iopl(0);
        all(&[expect(r, 0), expect_trap(probe(Probe::In80, 0), 13, Some(0), 0)])
    }
    port_io_in_with_iopl_1_is_emulated ("trap", "in $0x80, %al at IOPL 1", Accept) {
        let r = set_iopl(1);
        let done = probe(Probe::In80, 0);
        set_iopl(0);
        all(&[expect(r, 0), check(done.is_ok(), format_args!("trapped: {done:?}"))])
    }
    port_io_pci_config_vendor_of_00_00_0 ("trap", "out 0xcf8, in 0xcfc (dom0)", Accept) {
        let r = set_iopl(1);
        let a = probe(Probe::OutlCf8, 0x8000_0000);
        let b = probe(Probe::InlDx, 0xcfc);
        let id = probe_value() as u32;
        let _ = probe(Probe::OutlCf8, 0);
        set_iopl(0);
        all(&[
            expect(r, 0),
            check(a.is_ok() && b.is_ok(), format_args!("trapped: {a:?} {b:?}")),
            check(id & 0xffff == 0x8086 && id >> 16 != 0xffff, format_args!("00:00.0 vendor/device {id:#x}")),
        ])
    }
}
