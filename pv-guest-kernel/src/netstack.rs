//! The guest's TCP/IP stack: smoltcp (ARP, IPv4, ICMP, UDP, TCP, DHCP)
//! over netfront (target only). [`NetDevice`] is smoltcp's `Device` for a
//! connected [`NetDev`]; [`Arena`] hands out the sockets' buffers from
//! pages of the domain's initial region (there is no heap); [`interface`]
//! makes the `Interface` for the vif's MAC.
//!
//! Invariants: a frame smoltcp transmits is at most [`MTU`] bytes and is
//! copied into netfront's tx pages before `consume` returns; smoltcp is
//! offered a transmit token only when netfront has a free tx page, so no
//! frame it emits is lost for want of room; every buffer handed out by an
//! [`Arena`] is its own, disjoint from the others and from every granted
//! page.

use crate::alloc::EarlyAlloc;
use crate::netfront::{Mac, NetDev, TxSide};
use smoltcp::iface::{Config, Interface};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, IpCidr, Ipv4Address, Ipv4Cidr};

/// Largest Ethernet frame smoltcp builds or takes (1500 bytes of IP).
pub const MTU: usize = 1514;

/// smoltcp's view of a connected vif.
pub struct NetDevice<'d>(pub &'d mut NetDev);

/// A received frame, borrowed from netfront's frame buffer.
pub struct RxTok<'a>(&'a [u8]);

/// Room to send one frame.
pub struct TxTok<'a>(&'a mut TxSide);

impl phy::RxToken for RxTok<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

impl phy::TxToken for TxTok<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = [0u8; MTU];
        let n = len.min(MTU);
        let r = f(&mut buf[..n]);
        // Room was checked when the token was made; a frame longer than
        // the MTU (smoltcp never builds one) is not sent.
        if n == len {
            let _ = self.0.send(&buf[..n]);
        }
        r
    }
}

impl Device for NetDevice<'_> {
    type RxToken<'a>
        = RxTok<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = TxTok<'a>
    where
        Self: 'a;

    fn receive(&mut self, _now: Instant) -> Option<(RxTok<'_>, TxTok<'_>)> {
        match self.0.receive() {
            Ok(Some((frame, tx))) => Some((RxTok(frame), TxTok(tx))),
            _ => None,
        }
    }

    fn transmit(&mut self, _now: Instant) -> Option<TxTok<'_>> {
        let tx = self.0.tx();
        tx.ready(MTU).then_some(TxTok(tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MTU;
        caps
    }
}

/// Now, as smoltcp counts time (system time, to the microsecond).
pub fn now() -> Instant {
    Instant::from_micros((crate::shared::now_ns().unwrap_or(0) / 1_000) as i64)
}

/// The interface of the vif with `mac`, no address yet.
pub fn interface(dev: &mut NetDev, mac: Mac, seed: u64) -> Interface {
    let mut config = Config::new(EthernetAddress(mac).into());
    config.random_seed = seed;
    Interface::new(config, &mut NetDevice(dev), now())
}

/// Give `iface` the address `ip/prefix` (replacing any) and, if given, a
/// default route through `router`.
pub fn set_ipv4(iface: &mut Interface, ip: [u8; 4], prefix: u8, router: Option<[u8; 4]>) {
    let cidr = Ipv4Cidr::new(Ipv4Address::from(ip), prefix);
    iface.update_ip_addrs(|addrs| {
        addrs.clear();
        let _ = addrs.push(IpCidr::Ipv4(cidr));
    });
    iface.routes_mut().remove_default_ipv4_route();
    if let Some(r) = router {
        let _ = iface.routes_mut().add_default_ipv4_route(Ipv4Address::from(r));
    }
}

/// Buffers for sockets, cut from pages of the initial region.
pub struct Arena {
    rest: &'static mut [u8],
}

impl Arena {
    /// `pages` pages from `alloc`; `None` if there are not that many.
    pub fn new(alloc: &mut EarlyAlloc, pages: u64) -> Option<Arena> {
        let base = alloc.alloc_run(pages)?;
        // SAFETY: `pages` pages of our initial region at `base`, mapped
        // writable, handed out once by the allocator, never granted: this
        // arena's alone from now on.
        let rest = unsafe { core::slice::from_raw_parts_mut(base as *mut u8, (pages * 4096) as usize) };
        rest.fill(0);
        Some(Arena { rest })
    }

    /// The next `n` bytes; `None` if fewer are left.
    pub fn take(&mut self, n: usize) -> Option<&'static mut [u8]> {
        if n > self.rest.len() {
            return None;
        }
        let (head, tail) = core::mem::take(&mut self.rest).split_at_mut(n);
        self.rest = tail;
        Some(head)
    }
}
