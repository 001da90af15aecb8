//! The machine's I/O ports as a guest's emulated port access reaches them
//! (`domain/io_emul.rs` decides which accesses happen; this module only
//! executes them).
//!
//! Invariant: only [`MachinePorts`] issues `in`/`out` on a guest's behalf,
//! and only for ports the emulation's permission checks let through
//! (the domain's I/O port capabilities, which never hold xen-core's own
//! UART, debug-exit port, PIC or PIT, or the PCI configuration ports that
//! the emulation drives itself).

use crate::domain::io_emul::PortIo;
use core::arch::asm;

/// The real ports.
pub struct MachinePorts;

impl PortIo for MachinePorts {
    fn read(&mut self, port: u16, bytes: u8) -> u32 {
        let v: u32;
        // SAFETY: `in` touches no memory; the emulation checked the port
        // against the domain's capabilities (module invariant), so no
        // device xen-core drives is read.
        unsafe {
            match bytes {
                1 => {
                    let b: u8;
                    asm!("in al, dx", out("al") b, in("dx") port, options(nomem, nostack, preserves_flags));
                    v = u32::from(b);
                }
                2 => {
                    let w: u16;
                    asm!("in ax, dx", out("ax") w, in("dx") port, options(nomem, nostack, preserves_flags));
                    v = u32::from(w);
                }
                _ => asm!("in eax, dx", out("eax") v, in("dx") port, options(nomem, nostack, preserves_flags)),
            }
        }
        v
    }

    fn write(&mut self, port: u16, bytes: u8, val: u32) {
        // SAFETY: as `read`; `out` touches no memory.
        unsafe {
            match bytes {
                1 => asm!("out dx, al", in("dx") port, in("al") val as u8, options(nomem, nostack, preserves_flags)),
                2 => asm!("out dx, ax", in("dx") port, in("ax") val as u16, options(nomem, nostack, preserves_flags)),
                _ => asm!("out dx, eax", in("dx") port, in("eax") val, options(nomem, nostack, preserves_flags)),
            }
        }
    }
}
