//! Dom0's uplink NIC: QEMU's `virtio-net-pci` driven through
//! virtio-drivers' `VirtIONetRaw` over its PCI transport, found and set up
//! as [`crate::vdisk`] finds the disk ([`crate::pci`], `portio`,
//! [`crate::virtio_hal`], sharing its DMA context). Polled (no interrupt is
//! bound); no offloads are negotiated, so every frame carries full
//! checksums and is at most [`MAX_FRAME`] bytes.
//!
//! The queue calls of `VirtIONetRaw` that leave a buffer with the device
//! are `unsafe`: this module is their edge. Invariant: each receive and
//! transmit buffer is a [`BUF_LEN`]-byte half of a page-aligned heap page
//! (so the device gets its machine address directly, never a bounce),
//! owned by the [`Vnet`] and touched only between the device's completion
//! and its next posting. Sending never waits: up to [`TX_BUFS`] frames are
//! in flight, taken back as the device completes them ([`Vnet::reclaim`],
//! each send and each pump); past them up to [`TX_BACKLOG`] frames wait in
//! dom0's heap (QEMU completes a transmit only when it next runs its own
//! loop, so a burst would otherwise lose all but 8 frames, and TCP with
//! them); past that, or with no heap, the frame is dropped and counted
//! (`tx_dropped`).

/// Pages the NIC's two virtqueues take from the shared DMA pool (each: a
/// descriptor and driver page, a device page).
pub const POOL_PAGES: usize = 4;
/// Descriptors per virtqueue.
pub const QUEUE_SIZE: usize = 16;
/// Receive buffers posted to the device.
pub const RX_BUFS: usize = 8;
/// Transmit buffers in flight at most (one descriptor each; the queue has
/// [`QUEUE_SIZE`]).
pub const TX_BUFS: usize = 8;
/// Frames that wait for a transmit buffer at most (about 96 KiB).
pub const TX_BACKLOG: usize = 64;
/// Bytes of one buffer: the 12-byte `virtio_net_hdr` and a frame.
pub const BUF_LEN: usize = 2048;
/// Largest Ethernet frame without FCS (1500-byte MTU).
pub const MAX_FRAME: usize = 1514;

// A buffer holds the 12-byte header and a full frame, and the halves of a
// page never straddle a page boundary.
const _: () = assert!(BUF_LEN >= 12 + MAX_FRAME && 4096 % BUF_LEN == 0 && TX_BUFS <= QUEUE_SIZE);

/// A MAC address as `xx:xx:xx:xx:xx:xx`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mac(pub [u8; 6]);

impl core::fmt::Display for Mac {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

/// Whether `frame` may be sent: an Ethernet header at least, at most
/// [`MAX_FRAME`] bytes.
pub fn sendable(frame: &[u8]) -> bool {
    (14..=MAX_FRAME).contains(&frame.len())
}

/// Counters of the uplink.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VnetStats {
    /// Frames sent.
    pub tx: u64,
    /// Frames received.
    pub rx: u64,
    /// Frames not sent (too short or long, every transmit buffer in
    /// flight or the device's queue full, device failing).
    pub tx_dropped: u64,
    /// Frames received and dropped (larger than the caller's buffer, or a
    /// completion the driver refused).
    pub rx_dropped: u64,
}

#[cfg(target_os = "none")]
pub use device::Vnet;

#[cfg(target_os = "none")]
mod device {
    use super::*;
    use crate::virtio_hal::{self, Dom0Hal};
    use alloc::boxed::Box;
    use alloc::collections::VecDeque;
    use alloc::vec::Vec;
    use pv_guest_kernel::alloc::EarlyAlloc;
    use pv_guest_kernel::{StartInfo, println};
    use virtio_drivers::device::net::VirtIONetRaw;
    use virtio_drivers::transport::pci::PciTransport;
    use virtio_drivers::transport::pci::bus::{Command, DeviceFunction, PciRoot};

    /// A page-aligned page: its halves never straddle a page boundary.
    #[repr(C, align(4096))]
    struct Page([u8; 4096]);

    /// Buffer `i` of a set of buffer pages (receive or transmit).
    fn page_half(pages: &mut [Box<Page>], i: usize) -> &mut [u8] {
        &mut pages[i / 2].0[(i % 2) * BUF_LEN..][..BUF_LEN]
    }

    /// The uplink NIC.
    pub struct Vnet {
        net: VirtIONetRaw<Dom0Hal, PciTransport, QUEUE_SIZE>,
        rx: Vec<Box<Page>>,
        posted: [Option<u16>; RX_BUFS],
        tx: Vec<Box<Page>>,
        /// Transmissions the device has not completed, by transmit
        /// buffer: (token, length).
        tx_pending: [Option<(u16, usize)>; TX_BUFS],
        /// Frames waiting for a transmit buffer, oldest first.
        backlog: VecDeque<Vec<u8>>,
        mac: [u8; 6],
        at: DeviceFunction,
        /// Counters.
        pub stats: VnetStats,
    }

    impl Vnet {
        /// Find the NIC, set it up and post its receive buffers; prints
        /// `dom0: uplink: virtio-net <mac> at BB:DD.F`, or `dom0: uplink:
        /// none (why)` and `None`.
        pub fn open(si: &'static StartInfo, pages: &mut EarlyAlloc) -> Option<Vnet> {
            match Self::probe(si, pages) {
                Ok(v) => {
                    let (b, d, f) = (v.at.bus, v.at.device, v.at.function);
                    println!("dom0: uplink: virtio-net {} at {b:02x}:{d:02x}.{f}", Mac(v.mac));
                    Some(v)
                }
                Err(why) => {
                    println!("dom0: uplink: none ({why})");
                    None
                }
            }
        }

        fn probe(si: &'static StartInfo, pages: &mut EarlyAlloc) -> Result<Vnet, &'static str> {
            let io = crate::portio::set_iopl(1).map_err(|_| "PHYSDEVOP_set_iopl refused")?;
            let cam = crate::portio::PortCam(io);
            let at = crate::pci::find_virtio_net(&cam).ok_or("no virtio-net on PCI")?;
            virtio_hal::init_shared(si, pages, crate::vdisk::POOL_PAGES + POOL_PAGES)?;
            let mut root = PciRoot::new(cam);
            let (_, command) = root.get_status_command(at);
            root.set_command(at, command | Command::MEMORY_SPACE | Command::BUS_MASTER);
            let transport = PciTransport::new::<Dom0Hal, _>(&mut root, at).map_err(|_| "virtio-pci transport refused")?;
            if virtio_hal::take_failure() {
                return Err("cannot map the device's BAR");
            }
            let net = VirtIONetRaw::new(transport).map_err(|_| "virtio-net initialisation failed")?;
            if virtio_hal::take_failure() {
                return Err("cannot map the device's BAR");
            }
            let mac = net.mac_address();
            let rx = (0..RX_BUFS.div_ceil(2)).map(|_| Box::new(Page([0; 4096]))).collect();
            let tx = (0..TX_BUFS.div_ceil(2)).map(|_| Box::new(Page([0; 4096]))).collect();
            let mut backlog = VecDeque::new();
            backlog.try_reserve_exact(TX_BACKLOG).map_err(|_| "no memory for the transmit backlog")?;
            let mut v = Vnet { net, rx, posted: [None; RX_BUFS], tx, tx_pending: [None; TX_BUFS], backlog, mac, at, stats: VnetStats::default() };
            for i in 0..RX_BUFS {
                v.post(i);
            }
            if v.posted.iter().all(Option::is_none) {
                return Err("no receive buffer accepted");
            }
            Ok(v)
        }

        /// Give receive buffer `i` to the device.
        fn post(&mut self, i: usize) {
            let buf = page_half(&mut self.rx, i);
            // SAFETY: buffer `i` is owned by this Vnet (a heap page that
            // never moves) and is not read or written until the device
            // returns its token through `poll_receive`.
            self.posted[i] = unsafe { self.net.receive_begin(buf) }.ok();
            if virtio_hal::take_failure() {
                self.stats.rx_dropped += 1;
            }
        }

        /// The NIC's MAC address.
        pub fn mac(&self) -> [u8; 6] {
            self.mac
        }

        /// Where the NIC is: bus, device, function.
        pub fn location(&self) -> (u8, u8, u8) {
            (self.at.bus, self.at.device, self.at.function)
        }

        /// Take back every transmit buffer the device has completed and
        /// give the backlog's frames the free ones.
        pub fn reclaim(&mut self) {
            self.take_completed();
            while self.tx_pending.iter().any(Option::is_none)
                && let Some(frame) = self.backlog.pop_front()
            {
                self.transmit(&frame);
            }
        }

        /// Whether frames wait for the device (the caller polls again
        /// soon: the device raises no interrupt).
        pub fn backlogged(&self) -> bool {
            !self.backlog.is_empty()
        }

        fn take_completed(&mut self) {
            while let Some(token) = self.net.poll_transmit() {
                let Some(i) = self.tx_pending.iter().position(|p| p.is_some_and(|(t, _)| t == token)) else {
                    // Not a token we gave: the queue is broken.
                    return;
                };
                let Some((_, len)) = self.tx_pending[i] else { return };
                let buf = page_half(&mut self.tx, i);
                // SAFETY: the same buffer and length as given to
                // transmit_begin with this token.
                if unsafe { self.net.transmit_complete(token, &buf[..len]) }.is_err() {
                    return;
                }
                self.tx_pending[i] = None;
            }
        }

        /// Send one frame (without FCS; checksums filled in) without
        /// waiting: to the device if a transmit buffer is free and none
        /// waits before it, else into the backlog; false (counted in
        /// `tx_dropped`) if it is not sendable or the backlog is full.
        pub fn send(&mut self, frame: &[u8]) -> bool {
            self.reclaim();
            if !sendable(frame) {
                self.stats.tx_dropped += 1;
                return false;
            }
            if self.backlog.is_empty() && self.tx_pending.iter().any(Option::is_none) {
                return self.transmit(frame);
            }
            match crate::dom0net::heap_copy(frame) {
                Some(v) if self.backlog.len() < TX_BACKLOG => {
                    self.backlog.push_back(v);
                    true
                }
                _ => {
                    self.stats.tx_dropped += 1;
                    false
                }
            }
        }

        /// Hand `frame` to the device in a free transmit buffer.
        fn transmit(&mut self, frame: &[u8]) -> bool {
            let Some(i) = self.tx_pending.iter().position(Option::is_none) else {
                self.stats.tx_dropped += 1;
                return false;
            };
            let buf = page_half(&mut self.tx, i);
            let Ok(hdr) = self.net.fill_buffer_header(buf) else {
                self.stats.tx_dropped += 1;
                return false;
            };
            let len = hdr + frame.len();
            buf[hdr..len].copy_from_slice(frame);
            // SAFETY: transmit buffer `i` is owned by this Vnet (a heap
            // page that never moves) and not written again until
            // `reclaim` sees the device complete this token.
            match unsafe { self.net.transmit_begin(&buf[..len]) } {
                Ok(token) => self.tx_pending[i] = Some((token, len)),
                Err(_) => {
                    self.stats.tx_dropped += 1;
                    return false;
                }
            }
            if virtio_hal::take_failure() {
                // The device got the sink, not the frame; the buffer comes
                // back when it completes.
                self.stats.tx_dropped += 1;
                return false;
            }
            self.stats.tx += 1;
            true
        }

        /// The next received frame, copied into `buf`: its length, or
        /// `None` when none is waiting. A frame longer than `buf` is
        /// dropped (counted) and the next one looked at.
        pub fn recv(&mut self, buf: &mut [u8]) -> Option<usize> {
            loop {
                let token = self.net.poll_receive()?;
                let Some(i) = self.posted.iter().position(|&t| t == Some(token)) else {
                    // Not a token we posted: the queue is broken.
                    self.stats.rx_dropped += 1;
                    return None;
                };
                self.posted[i] = None;
                let rb = page_half(&mut self.rx, i);
                // SAFETY: `rb` is the buffer posted with `token`.
                let done = unsafe { self.net.receive_complete(token, rb) };
                let got = done.ok().and_then(|(hdr, len)| {
                    let frame = page_half(&mut self.rx, i).get(hdr..hdr + len)?;
                    let out = buf.get_mut(..len)?;
                    out.copy_from_slice(frame);
                    Some(len)
                });
                self.post(i);
                match got {
                    Some(n) => {
                        self.stats.rx += 1;
                        return Some(n);
                    }
                    None => self.stats.rx_dropped += 1,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_prints_as_six_lowercase_hex_pairs() {
        assert_eq!(Mac([0x52, 0x54, 0, 0x12, 0x34, 0x56]).to_string(), "52:54:00:12:34:56");
    }

    #[test]
    fn only_frames_from_a_header_to_1514_bytes_are_sent() {
        assert!(!sendable(&[0; 13]));
        assert!(sendable(&[0; 14]));
        assert!(sendable(&[0; MAX_FRAME]));
        assert!(!sendable(&[0; MAX_FRAME + 1]));
    }
}
