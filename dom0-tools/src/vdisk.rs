//! Dom0's disk: a virtio-blk PCI device (QEMU's `virtio-blk-pci` over a
//! raw image file) driven through virtio-drivers' `VirtIOBlk` over its
//! PCI transport, as a [`BlockDevice`] for blkback to serve guests from.
//!
//! [`probe`] does what a PV dom0 kernel does for it: `PHYSDEVOP_set_iopl`,
//! PCI configuration through 0xcf8/0xcfc to find the function and enable
//! memory decoding and bus mastering, the BAR mapped through
//! [`crate::virtio_hal`], the device reset and negotiated by virtio-drivers.
//! Requests are polled (no interrupt is bound).
//!
//! Invariant: every request reaches the device as whole 512-byte sectors
//! inside the disk ([`byte_range`] first), in chunks of at most
//! `virtio_hal::max_share()` bytes so any part of a caller's buffer can be
//! bounced; a chunk the HAL could not give the device honestly (it got the
//! sink) fails the call with [`DiskError::Io`].

#[cfg(target_os = "none")]
use backend_drivers::disk::{BlockDevice, byte_range};
use backend_drivers::disk::{DiskError, SECTOR_SIZE};

/// virtio-blk feature bit: the device has a volatile cache to flush
/// (`VIRTIO_BLK_F_FLUSH`, virtio 1.1 section 5.2.3).
pub const VIRTIO_BLK_F_FLUSH: u64 = 1 << 9;
/// virtio-blk feature bit: `VIRTIO_BLK_T_DISCARD` is accepted.
pub const VIRTIO_BLK_F_DISCARD: u64 = 1 << 13;
/// virtio-blk feature bit: the device is read-only.
pub const VIRTIO_BLK_F_RO: u64 = 1 << 5;

/// The requests `len` bytes from `sector` are cut into: (first sector,
/// byte range of the buffer), each at most `max_bytes` (rounded down to
/// whole sectors, at least one sector). Empty for `len` 0.
pub fn chunks(sector: u64, len: usize, max_bytes: usize) -> impl Iterator<Item = (u64, core::ops::Range<usize>)> {
    let step = (max_bytes / SECTOR_SIZE).max(1) * SECTOR_SIZE;
    (0..len).step_by(step).map(move |off| (sector + (off / SECTOR_SIZE) as u64, off..len.min(off + step)))
}

pub use frontend_drivers::blkfront::{fill_pattern, pattern_mismatch, pattern_word};

/// Seed of the words dom0 writes in `test=disk` ("disktest").
pub const DOM0_SEED: u64 = u64::from_le_bytes(*b"disktest");
/// Seed of the words the host writes before booting ("hostfill").
pub const HOST_SEED: u64 = u64::from_le_bytes(*b"hostfill");
/// `test=disk` writes this many bytes from sector 0.
pub const TEST_BYTES: u64 = 4 << 20;
/// The host pre-fills this many bytes from [`TEST_BYTES`] on.
pub const HOST_BYTES: u64 = 1 << 20;

/// Why dom0 has no disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoDisk {
    /// `PHYSDEVOP_set_iopl` refused (its result): no port I/O, no PCI.
    NoPortIo(i64),
    /// No virtio-blk function on the PCI buses scanned.
    NotFound,
    /// Too little memory for the DMA pool or MMIO window.
    NoMemory(&'static str),
    /// The PCI transport could not be set up (virtio-drivers' reason).
    Transport(&'static str),
    /// The device refused initialisation.
    Device(&'static str),
    /// A BAR frame could not be mapped (mmu_update refused).
    Mmio,
}

impl core::fmt::Display for NoDisk {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NoDisk::NoPortIo(rc) => write!(f, "PHYSDEVOP_set_iopl: {rc}{}", if *rc == -38 { " (ENOSYS)" } else { "" }),
            NoDisk::NotFound => f.write_str("no virtio-blk on PCI"),
            NoDisk::NoMemory(why) => write!(f, "{why}"),
            NoDisk::Transport(why) => write!(f, "virtio-pci: {why}"),
            NoDisk::Device(why) => write!(f, "virtio-blk: {why}"),
            NoDisk::Mmio => f.write_str("cannot map the device's BAR"),
        }
    }
}

/// The error a failed virtio request becomes.
pub fn io_error<E>(_: E) -> DiskError {
    DiskError::Io
}

#[cfg(target_os = "none")]
pub use device::{POOL_PAGES, VirtioDisk, probe};

#[cfg(target_os = "none")]
mod device {
    use super::*;
    use crate::virtio_hal::{self, Dom0Hal};
    use pv_guest_kernel::StartInfo;
    use pv_guest_kernel::alloc::EarlyAlloc;
    use virtio_drivers::device::blk::VirtIOBlk;
    use virtio_drivers::transport::Transport;
    use virtio_drivers::transport::pci::PciTransport;
    use virtio_drivers::transport::pci::bus::{Command, DeviceFunction, PciRoot};

    /// DMA pool pages: the queue (2), the sink (8), a bounced chunk (8),
    /// header and status bounces (2), and slack for a fragmented pool.
    pub const POOL_PAGES: usize = 24;

    /// A virtio-blk disk.
    pub struct VirtioDisk {
        blk: VirtIOBlk<Dom0Hal, PciTransport>,
        at: DeviceFunction,
        sectors: u64,
        read_only: bool,
        features: u64,
        chunk: usize,
    }

    /// Find and set up the disk (once: the DMA pool and window are taken
    /// from `pages`).
    pub fn probe(si: &'static StartInfo, pages: &mut EarlyAlloc) -> Result<VirtioDisk, NoDisk> {
        let io = crate::portio::set_iopl(1).map_err(NoDisk::NoPortIo)?;
        let cam = crate::portio::PortCam(io);
        let at = crate::pci::find_virtio_blk(&cam).ok_or(NoDisk::NotFound)?;
        virtio_hal::init_shared(si, pages, POOL_PAGES + crate::vnet::POOL_PAGES).map_err(NoDisk::NoMemory)?;
        let mut root = PciRoot::new(cam);
        let (_, command) = root.get_status_command(at);
        root.set_command(at, command | Command::MEMORY_SPACE | Command::BUS_MASTER);
        let mut transport = PciTransport::new::<Dom0Hal, _>(&mut root, at).map_err(|e| NoDisk::Transport(pci_reason(&e)))?;
        if virtio_hal::take_failure() {
            return Err(NoDisk::Mmio);
        }
        let features = transport.read_device_features();
        let blk = VirtIOBlk::<Dom0Hal, _>::new(transport).map_err(|e| NoDisk::Device(blk_reason(&e)))?;
        if virtio_hal::take_failure() {
            return Err(NoDisk::Mmio);
        }
        // Header and status may each need a page of bounce besides the data.
        let run = virtio_hal::longest_free_run().saturating_sub(2) * dma::PAGE_SIZE as usize;
        let chunk = virtio_hal::max_share().min(run);
        if chunk < SECTOR_SIZE {
            return Err(NoDisk::NoMemory("DMA pool too fragmented"));
        }
        Ok(VirtioDisk { sectors: blk.capacity(), read_only: blk.readonly(), blk, at, features, chunk })
    }

    use crate::dma;

    fn pci_reason(e: &virtio_drivers::transport::pci::VirtioPciError) -> &'static str {
        use virtio_drivers::transport::pci::VirtioPciError as E;
        match e {
            E::InvalidDeviceId(_) | E::InvalidVendorId(_) => "not a virtio device",
            E::MissingCommonConfig | E::MissingNotifyConfig | E::MissingIsrConfig => "no modern virtio capabilities",
            E::BarNotAllocated(_) => "BAR not allocated",
            _ => "bad capability or BAR",
        }
    }

    fn blk_reason(e: &virtio_drivers::Error) -> &'static str {
        match e {
            virtio_drivers::Error::DmaError => "no DMA memory",
            virtio_drivers::Error::AlreadyUsed => "queue already in use",
            virtio_drivers::Error::InvalidParam => "queue size refused",
            _ => "initialisation failed",
        }
    }

    impl VirtioDisk {
        /// Where the device is: bus, device, function.
        pub fn location(&self) -> (u8, u8, u8) {
            (self.at.bus, self.at.device, self.at.function)
        }

        /// The device's offered feature bits (virtio-drivers negotiates
        /// FLUSH and RO among them; not DISCARD).
        pub fn device_features(&self) -> u64 {
            self.features
        }

        /// Largest request sent to the device, in bytes.
        pub fn chunk_bytes(&self) -> usize {
            self.chunk
        }

        fn checked<T>(r: Result<T, virtio_drivers::Error>) -> Result<T, DiskError> {
            let v = r.map_err(io_error)?;
            if virtio_hal::take_failure() { Err(DiskError::Io) } else { Ok(v) }
        }
    }

    impl BlockDevice for VirtioDisk {
        fn sectors(&self) -> u64 {
            self.sectors
        }

        fn read_only(&self) -> bool {
            self.read_only
        }

        fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), DiskError> {
            byte_range(self.sectors, sector, buf.len())?;
            for (s, r) in chunks(sector, buf.len(), self.chunk) {
                Self::checked(self.blk.read_blocks(s as usize, &mut buf[r]))?;
            }
            Ok(())
        }

        fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), DiskError> {
            if self.read_only {
                return Err(DiskError::ReadOnly);
            }
            byte_range(self.sectors, sector, buf.len())?;
            for (s, r) in chunks(sector, buf.len(), self.chunk) {
                Self::checked(self.blk.write_blocks(s as usize, &buf[r]))?;
            }
            Ok(())
        }

        /// `VIRTIO_BLK_T_FLUSH` when the device offered
        /// `VIRTIO_BLK_F_FLUSH` (virtio-drivers sends it only then); a
        /// device without a volatile cache has nothing to flush.
        fn flush(&mut self) -> Result<(), DiskError> {
            Self::checked(self.blk.flush())
        }

        /// Checked, then nothing: virtio-drivers 0.13 does not negotiate
        /// `VIRTIO_BLK_F_DISCARD`, and blkif lets a discarded range keep
        /// its data (the trait's rule); blkback should not offer
        /// `feature-discard` for this disk.
        fn discard(&mut self, sector: u64, count: u64) -> Result<(), DiskError> {
            if self.read_only {
                return Err(DiskError::ReadOnly);
            }
            let len = usize::try_from(count).ok().and_then(|c| c.checked_mul(SECTOR_SIZE)).ok_or(DiskError::OutOfRange)?;
            byte_range(self.sectors, sector, len).map(|_| ())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_whole_sectors_and_cover_the_buffer_once() {
        let c: Vec<_> = chunks(10, 5 * 512, 2 * 512).collect();
        assert_eq!(c, [(10, 0..1024), (12, 1024..2048), (14, 2048..2560)]);
        let one: Vec<_> = chunks(0, 4096, 1 << 20).collect();
        assert_eq!(one, [(0, 0..4096)]);
        assert_eq!(chunks(7, 0, 4096).count(), 0);
    }

    #[test]
    fn chunk_limit_below_a_sector_still_moves_one_sector_at_a_time() {
        let c: Vec<_> = chunks(0, 1024, 100).collect();
        assert_eq!(c, [(0, 0..512), (1, 512..1024)]);
        // A limit that is not whole sectors is rounded down.
        let c: Vec<_> = chunks(0, 2048, 1000).collect();
        assert_eq!(c.len(), 4);
    }

    #[test]
    fn no_disk_reasons_name_the_step() {
        assert_eq!(NoDisk::NoPortIo(-38).to_string(), "PHYSDEVOP_set_iopl: -38 (ENOSYS)");
        assert_eq!(NoDisk::NotFound.to_string(), "no virtio-blk on PCI");
    }
}
