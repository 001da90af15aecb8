//! Arch module: dom0's x86 port I/O. `PHYSDEVOP_set_iopl` raises the
//! kernel's virtual I/O privilege level, after which an `in`/`out` from
//! dom0's kernel (ring 3 on x86_64 PV) traps to the hypervisor, which
//! checks dom0's I/O port rights and performs or emulates the access
//! (Xen 4.17: `physdev.c` for the sub-op, `pv/emul-priv-op.c`'s
//! `iopl_ok`/`guest_io_okay` for the check, 0xcf8/0xcfc virtualised per
//! domain). [`PortCam`] is PCI configuration mechanism #1 over those ports.
//!
//! Invariant: no `in`/`out` runs before [`set_iopl`] succeeded (a
//! hypervisor without it would deliver the #GP to dom0, which has no
//! handler for it): [`PortIo`] is the proof, made only by `set_iopl`.

use crate::pci::{CONFIG_ADDRESS, CONFIG_DATA, config_address};
use pv_guest_kernel::hypercall;
use virtio_drivers::transport::pci::bus::{ConfigurationAccess, DeviceFunction};
use xen_public::physdev::{PHYSDEVOP_SET_IOPL, PhysdevSetIopl};

/// Proof that this vCPU may use `in`/`out`.
#[derive(Clone, Copy, Debug)]
pub struct PortIo(());

/// `PHYSDEVOP_set_iopl` with `iopl` (Linux's `xen_start_kernel` asks for
/// 1, the level a PV kernel runs its port I/O at); the hypercall's error
/// (e.g. -ENOSYS) if refused.
pub fn set_iopl(iopl: u32) -> Result<PortIo, i64> {
    let mut arg = PhysdevSetIopl { iopl };
    // SAFETY: `arg` is a live, exclusive `physdev_set_iopl` (4 bytes, no
    // guest handle inside): the hypervisor reads at most those bytes.
    let rc = unsafe { hypercall::hypercall5(xen_public::hypercall::PHYSDEV_OP, PHYSDEVOP_SET_IOPL, &mut arg as *mut PhysdevSetIopl as u64, 0, 0, 0) };
    if rc == 0 { Ok(PortIo(())) } else { Err(rc) }
}

impl PortIo {
    /// `in eax, dx`.
    pub fn inl(self, port: u16) -> u32 {
        let v: u32;
        // SAFETY: `set_iopl` succeeded, so the hypervisor emulates or
        // performs the access; it reads a port, touching no memory.
        unsafe { core::arch::asm!("in eax, dx", in("dx") port, out("eax") v, options(nomem, nostack, preserves_flags)) };
        v
    }

    /// `out dx, eax`.
    pub fn outl(self, port: u16, value: u32) {
        // SAFETY: as in `inl`; the only ports written are PCI
        // configuration ports, which the hypervisor filters for dom0.
        unsafe { core::arch::asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags)) };
    }
}

/// PCI configuration space through 0xcf8/0xcfc.
#[derive(Debug)]
pub struct PortCam(pub PortIo);

impl ConfigurationAccess for PortCam {
    fn read_word(&self, df: DeviceFunction, register_offset: u8) -> u32 {
        let Some(addr) = config_address(df, register_offset) else { return !0 };
        self.0.outl(CONFIG_ADDRESS, addr);
        self.0.inl(CONFIG_DATA)
    }

    fn write_word(&mut self, df: DeviceFunction, register_offset: u8, data: u32) {
        if let Some(addr) = config_address(df, register_offset) {
            self.0.outl(CONFIG_ADDRESS, addr);
            self.0.outl(CONFIG_DATA, data);
        }
    }

    unsafe fn unsafe_clone(&self) -> Self {
        PortCam(self.0)
    }
}
