//! `test=uplink`: dom0's uplink NIC and its IP endpoint against QEMU's
//! user network (slirp, whose gateway 10.0.2.2 answers ARP and ping):
//! dom0 opens the virtio-net NIC, puts a [`Dom0Net`] on it at 10.0.2.15,
//! pings 10.0.2.2 (smoltcp ARPs first) and prints the gateway's MAC and
//! the reply (the `disk` test's counterpart, before the bridge joins
//! them to guests). A disk, if attached, is probed first (the two share
//! the DMA context).
//!
//! Invariant: bounded: the exchange gives up after [`WAIT_MS`].

use dom0_tools::dom0net::Dom0Net;
use dom0_tools::vnet::{MAX_FRAME, Mac, Vnet};
use pv_guest_kernel::alloc::EarlyAlloc;
use pv_guest_kernel::{StartInfo, println, shared};

/// QEMU user networking's gateway (the host).
const GATEWAY: [u8; 4] = [10, 0, 2, 2];
/// Dom0's address on the uplink for the test (slirp's usual guest address).
const ME: [u8; 4] = [10, 0, 2, 15];
/// How long the test waits for the gateway, ms.
const WAIT_MS: u64 = 5_000;

fn now_ms() -> u64 {
    shared::now_ns().unwrap_or(0) / 1_000_000
}

/// Run the test; prints `dom0: uplink: ...` lines.
pub fn run(si: &'static StartInfo, pages: &mut EarlyAlloc) {
    let va = pages.alloc_page().unwrap_or(0);
    shared::map(va, si.shared_info);
    // With a disk attached, it is set up first: both devices share the
    // DMA context and the MMIO window.
    let _disk = crate::disktest::probe_and_say(si, pages);
    let Some(mut nic) = Vnet::open(si, pages) else {
        println!("dom0: uplink test: no NIC, nothing to test");
        return;
    };
    let mut me = Dom0Net::new(nic.mac(), ME, 24);
    me.send_ping(GATEWAY, 1);
    let start = now_ms();
    let mut buf = [0u8; MAX_FRAME];
    let (mut said_arp, mut replied) = (false, false);
    while now_ms().saturating_sub(start) < WAIT_MS && !replied {
        while let Some(n) = nic.recv(&mut buf) {
            me.push_rx(&buf[..n]);
        }
        me.poll(now_ms());
        while let Some(f) = me.pop_tx() {
            nic.send(&f);
        }
        if !said_arp && let Some(mac) = me.arp_seen(GATEWAY) {
            println!("dom0: uplink: 10.0.2.2 is at {}", Mac(mac));
            said_arp = true;
        }
        if let Some((from, seq)) = me.ping_reply() {
            let [a, b, c, d] = from;
            println!("dom0: uplink: ping {a}.{b}.{c}.{d}: reply seq {seq} after {} ms", now_ms().saturating_sub(start));
            replied = true;
        }
    }
    let s = nic.stats;
    println!("dom0: uplink: tx {} rx {} tx_dropped {} rx_dropped {}", s.tx, s.rx, s.tx_dropped, s.rx_dropped);
    println!("dom0: uplink test: {}", if said_arp && replied { "ok" } else { "no answer from 10.0.2.2" });
}
