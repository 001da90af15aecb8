//! Guest memory from the hypervisor: the direct map as the page walker
//! reads it, and [`GuestMem`], a guest virtual address space walked through
//! one of its L4 tables. Every guest pointer a handler follows goes through
//! a walk of the guest's own tables; a failed walk is -EFAULT, never a
//! hypervisor fault.

pub use crate::domain::guest_mem::Efault;
use crate::domain::guest_mem::GuestAccess;
use crate::domain::vcpu::{GuestStack, StackFault, Vcpu};
use crate::guest_access::Frame;
use crate::mm::Mfn;
use crate::mm::guest_walk::{self, PhysRead};

/// Reads machine memory through the direct map; addresses past its end read
/// as 0 (not present), so a bad guest entry can never fault the hypervisor.
pub struct DirectMap;

impl PhysRead for DirectMap {
    #[inline]
    fn read_u64(&self, maddr: u64) -> u64 {
        Frame::new(Mfn::containing(maddr)).map_or(0, |f| f.read_u64(((maddr & 0xfff) / 8) as usize))
    }
}

/// A guest's virtual memory, as seen through one of its L4 tables.
#[derive(Clone, Copy)]
pub struct GuestMem {
    /// The L4's machine address.
    pub l4: u64,
}

impl GuestMem {
    /// Copy `buf.len()` bytes from guest virtual `va`.
    pub fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), Efault> {
        let mut ok = true;
        guest_walk::for_each_chunk(&DirectMap, self.l4, va, buf.len(), false, |maddr, off, n| {
            // The walk proved the guest may read these bytes, in one frame.
            match Frame::guest_ram(Mfn::containing(maddr)) {
                Some(f) => f.read_bytes((maddr & 0xfff) as usize, &mut buf[off..off + n]),
                None => ok = false,
            }
        })
        .map_err(|_| Efault)?;
        if ok { Ok(()) } else { Err(Efault) }
    }

    /// Copy `buf` to guest virtual `va`.
    pub fn write(&self, va: u64, buf: &[u8]) -> Result<(), Efault> {
        let mut ok = true;
        guest_walk::for_each_chunk(&DirectMap, self.l4, va, buf.len(), true, |maddr, off, n| {
            // The walk proved the guest may write these bytes (never a
            // page-table frame: those are mapped read-only), in one frame.
            match Frame::guest_ram(Mfn::containing(maddr)) {
                Some(f) => f.write_bytes((maddr & 0xfff) as usize, &buf[off..off + n]),
                None => ok = false,
            }
        })
        .map_err(|_| Efault)?;
        if ok { Ok(()) } else { Err(Efault) }
    }

    /// Read a little-endian u64.
    pub fn read_u64(&self, va: u64) -> Result<u64, Efault> {
        let mut b = [0u8; 8];
        self.read(va, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Read a little-endian u32.
    pub fn read_u32(&self, va: u64) -> Result<u32, Efault> {
        let mut b = [0u8; 4];
        self.read(va, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }
}

impl GuestAccess for GuestMem {
    fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), Efault> {
        GuestMem::read(self, va, buf)
    }
    fn write(&self, va: u64, buf: &[u8]) -> Result<(), Efault> {
        GuestMem::write(self, va, buf)
    }
}

impl GuestStack for GuestMem {
    fn write(&mut self, va: u64, words: &[u64]) -> Result<(), StackFault> {
        let mut buf = [0u8; 8 * 9];
        let bytes = &mut buf[..words.len() * 8];
        for (chunk, w) in bytes.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        GuestMem::write(self, va, bytes).map_err(|_| StackFault)
    }

    fn read(&mut self, va: u64, words: &mut [u64]) -> Result<(), StackFault> {
        let mut buf = [0u8; 8 * 9];
        let bytes = &mut buf[..words.len() * 8];
        GuestMem::read(self, va, bytes).map_err(|_| StackFault)?;
        for (w, chunk) in words.iter_mut().zip(bytes.chunks_exact(8)) {
            *w = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        }
        Ok(())
    }
}

impl Vcpu {
    /// Guest memory as the kernel sees it.
    pub fn kernel_mem(&self) -> GuestMem {
        GuestMem { l4: self.guest_table }
    }

    /// Guest memory as the vCPU's current mode sees it.
    pub fn current_mem(&self) -> GuestMem {
        let l4 = if self.kernel_mode { self.guest_table } else { self.guest_table_user };
        GuestMem { l4 }
    }
}
