//! The storage behind a virtual block device: [`BlockDevice`], what
//! blkback reads and writes for its frontends, and [`RamDisk`], the device
//! used when dom0 has no disk (a boot module's bytes, or zeroes).
//!
//! Invariant: every access is in whole 512-byte sectors (blkif's
//! `sector` unit, and virtio-blk's) inside `[0, sectors())`; a device
//! answers an access past its end with [`DiskError::OutOfRange`], never by
//! touching memory outside itself, and a read-only device refuses writes
//! and discards with [`DiskError::ReadOnly`].
#![forbid(unsafe_code)]

use alloc::vec::Vec;

/// Bytes in a blkif sector, whatever the device's own sector size.
pub const SECTOR_SIZE: usize = 512;

/// Why a device access failed. blkback answers each with
/// `BLKIF_RSP_ERROR`; the kind is for counters and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskError {
    /// The range ends past the device, or the buffer is not whole sectors.
    OutOfRange,
    /// A write or discard on a read-only device.
    ReadOnly,
    /// The device itself failed (for a virtio disk, its status byte).
    Io,
}

/// A disk in 512-byte sectors.
pub trait BlockDevice {
    /// Size in sectors.
    fn sectors(&self) -> u64;
    /// Whether writes are refused.
    fn read_only(&self) -> bool;
    /// Fill `buf` (whole sectors) from `sector` on.
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), DiskError>;
    /// Write `buf` (whole sectors) from `sector` on.
    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), DiskError>;
    /// Make every completed write durable (the device's cache flushed).
    fn flush(&mut self) -> Result<(), DiskError>;
    /// Forget `count` sectors from `sector` on: they read back as zeroes
    /// here (a device that cannot discard may keep them; blkif allows it).
    fn discard(&mut self, sector: u64, count: u64) -> Result<(), DiskError>;
    /// Whether [`Self::discard`] really discards (blkback offers
    /// `feature-discard` only then).
    fn discards(&self) -> bool {
        false
    }
}

/// The byte range of `len` bytes from `sector`, if it is whole sectors
/// inside a device of `sectors` sectors.
pub fn byte_range(sectors: u64, sector: u64, len: usize) -> Result<core::ops::Range<usize>, DiskError> {
    if !len.is_multiple_of(SECTOR_SIZE) {
        return Err(DiskError::OutOfRange);
    }
    let count = (len / SECTOR_SIZE) as u64;
    let end = sector.checked_add(count).ok_or(DiskError::OutOfRange)?;
    if end > sectors {
        return Err(DiskError::OutOfRange);
    }
    let start = usize::try_from(sector).ok().and_then(|s| s.checked_mul(SECTOR_SIZE)).ok_or(DiskError::OutOfRange)?;
    Ok(start..start + len)
}

/// A disk in memory.
pub struct RamDisk {
    bytes: Vec<u8>,
    read_only: bool,
}

impl RamDisk {
    /// `sectors` zeroed sectors, or `None` if memory is short.
    pub fn zeroed(sectors: u64, read_only: bool) -> Option<RamDisk> {
        let len = usize::try_from(sectors).ok()?.checked_mul(SECTOR_SIZE)?;
        let mut bytes = Vec::new();
        bytes.try_reserve_exact(len).ok()?;
        bytes.resize(len, 0);
        Some(RamDisk { bytes, read_only })
    }

    /// A disk holding `image`, padded with zeroes to whole sectors, or
    /// `None` if memory is short.
    pub fn from_image(image: &[u8], read_only: bool) -> Option<RamDisk> {
        let len = image.len().div_ceil(SECTOR_SIZE) * SECTOR_SIZE;
        let mut bytes = Vec::new();
        bytes.try_reserve_exact(len).ok()?;
        bytes.extend_from_slice(image);
        bytes.resize(len, 0);
        Some(RamDisk { bytes, read_only })
    }

    /// The disk's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn range(&self, sector: u64, len: usize) -> Result<core::ops::Range<usize>, DiskError> {
        byte_range(self.sectors(), sector, len)
    }
}

impl BlockDevice for RamDisk {
    fn sectors(&self) -> u64 {
        (self.bytes.len() / SECTOR_SIZE) as u64
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        let r = self.range(sector, buf.len())?;
        buf.copy_from_slice(&self.bytes[r]);
        Ok(())
    }

    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), DiskError> {
        if self.read_only {
            return Err(DiskError::ReadOnly);
        }
        let r = self.range(sector, buf.len())?;
        self.bytes[r].copy_from_slice(buf);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DiskError> {
        Ok(())
    }

    fn discard(&mut self, sector: u64, count: u64) -> Result<(), DiskError> {
        if self.read_only {
            return Err(DiskError::ReadOnly);
        }
        let len = usize::try_from(count).ok().and_then(|c| c.checked_mul(SECTOR_SIZE)).ok_or(DiskError::OutOfRange)?;
        let r = self.range(sector, len)?;
        self.bytes[r].fill(0);
        Ok(())
    }

    fn discards(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blkif_sectors_are_512_bytes_and_ram_disk_round_trips() {
        let mut d = RamDisk::zeroed(8, false).unwrap();
        d.write(2, &[0xab; 1024]).unwrap();
        let mut buf = [0u8; 1536];
        d.read(1, &mut buf).unwrap();
        assert_eq!(&buf[..512], &[0; 512][..]);
        assert_eq!(&buf[512..], &[0xab; 1024][..]);
    }

    #[test]
    fn access_past_the_end_or_of_part_sectors_is_out_of_range() {
        let mut d = RamDisk::zeroed(4, false).unwrap();
        let mut buf = [0u8; 1024];
        assert_eq!(d.read(3, &mut buf), Err(DiskError::OutOfRange));
        assert_eq!(d.write(u64::MAX, &buf), Err(DiskError::OutOfRange));
        assert_eq!(d.read(0, &mut buf[..100]), Err(DiskError::OutOfRange));
        assert_eq!(d.discard(2, u64::MAX), Err(DiskError::OutOfRange));
        assert_eq!(d.discard(u64::MAX, 1), Err(DiskError::OutOfRange));
    }

    #[test]
    fn read_only_disk_refuses_writes_and_discards() {
        let mut d = RamDisk::from_image(&[7; 700], true).unwrap();
        assert_eq!(d.sectors(), 2);
        assert_eq!(d.write(0, &[0; 512]), Err(DiskError::ReadOnly));
        assert_eq!(d.discard(0, 1), Err(DiskError::ReadOnly));
        let mut buf = [0u8; 1024];
        d.read(0, &mut buf).unwrap();
        assert_eq!(buf[699], 7);
        assert_eq!(buf[700], 0);
    }

    #[test]
    fn discard_reads_back_as_zeroes() {
        let mut d = RamDisk::from_image(&[9; 2048], false).unwrap();
        d.discard(1, 2).unwrap();
        let mut buf = [0u8; 2048];
        d.read(0, &mut buf).unwrap();
        assert!(buf[..512].iter().all(|&b| b == 9));
        assert!(buf[512..1536].iter().all(|&b| b == 0));
        assert!(buf[1536..].iter().all(|&b| b == 9));
    }
}
