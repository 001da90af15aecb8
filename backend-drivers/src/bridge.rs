//! Dom0's software bridge (`xenbr0`): a learning Ethernet switch between
//! its ports (each vif's netback, dom0's own IP endpoint, the uplink NIC).
//! The behaviour is Linux's `net/bridge`: a frame's source MAC is learnt
//! on the port it came in on (`br_fdb.c`, `br_fdb_update`), a unicast
//! destination in the forwarding database goes to its port only, and
//! broadcast, multicast and unknown destinations are flooded to every
//! port but the source (`br_forward.c`, `br_flood`); entries not refreshed
//! for [`AGEING_MS`] are forgotten (`br_fdb_cleanup`, the default
//! `ageing_time` of 300 s).
//!
//! Pure bookkeeping: the bridge decides ([`Forward`]), the caller moves
//! the frame. Invariant: the forwarding database never holds more than
//! `max_macs` entries (a full table evicts its least recently seen entry),
//! never a multicast or all-zero MAC, and never a MAC on a port that is
//! gone, so no sequence of frames from a guest grows dom0's memory.
#![forbid(unsafe_code)]

use alloc::vec::Vec;

/// A bridge port's number (never reused while the bridge lives).
pub type PortId = u32;

/// How long a learnt MAC stays without being seen again: Linux's default
/// `ageing_time` (`BR_DEFAULT_AGEING_TIME`, 300 s).
pub const AGEING_MS: u64 = 300_000;

/// Length of an Ethernet header: destination, source, ethertype.
pub const ETH_HLEN: usize = 14;

/// What to do with one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forward {
    /// Nowhere: malformed, from an unknown port, or its destination is
    /// on the port it came from.
    Drop,
    /// To this one port.
    To(PortId),
    /// To every port but the one it came from.
    Flood,
}

/// One forwarding database entry.
#[derive(Clone, Copy, Debug)]
struct Fdb {
    mac: [u8; 6],
    port: PortId,
    seen_ms: u64,
}

/// A learning bridge.
#[derive(Debug)]
pub struct Bridge {
    ports: Vec<PortId>,
    max_ports: usize,
    next_port: PortId,
    fdb: Vec<Fdb>,
    max_macs: usize,
}

/// Whether `mac` is a group address (the I/G bit, bit 0 of the first
/// octet): broadcast and multicast.
pub fn is_multicast(mac: &[u8; 6]) -> bool {
    mac[0] & 1 != 0
}

/// Whether `mac` may be learnt as a station's address: unicast and not
/// all zeros (Linux's `is_valid_ether_addr`).
pub fn is_valid_unicast(mac: &[u8; 6]) -> bool {
    !is_multicast(mac) && *mac != [0; 6]
}

fn mac_at(frame: &[u8], at: usize) -> [u8; 6] {
    let mut m = [0; 6];
    m.copy_from_slice(&frame[at..at + 6]);
    m
}

fn expired(e: &Fdb, now_ms: u64) -> bool {
    now_ms.saturating_sub(e.seen_ms) > AGEING_MS
}

impl Bridge {
    /// An empty bridge for at most `max_ports` ports and `max_macs`
    /// learnt addresses.
    pub fn new(max_ports: usize, max_macs: usize) -> Bridge {
        Bridge { ports: Vec::new(), max_ports, next_port: 0, fdb: Vec::new(), max_macs }
    }

    /// A new port, or `None` when the bridge has `max_ports` already.
    pub fn add_port(&mut self) -> Option<PortId> {
        if self.ports.len() >= self.max_ports {
            return None;
        }
        let id = self.next_port;
        self.next_port = self.next_port.checked_add(1)?;
        self.ports.push(id);
        Some(id)
    }

    /// Remove port `p` and forget every MAC learnt on it (Linux's
    /// `br_fdb_delete_by_port` when a port leaves). Unknown ports: nothing.
    pub fn remove_port(&mut self, p: PortId) {
        self.ports.retain(|&q| q != p);
        self.fdb.retain(|e| e.port != p);
    }

    /// Whether `p` is a port of this bridge.
    pub fn has_port(&self, p: PortId) -> bool {
        self.ports.contains(&p)
    }

    /// Learn the frame's source on `from` and decide where the frame goes.
    /// A runt (shorter than an Ethernet header), a frame from a port that
    /// is not ours, and a frame whose source is not a valid unicast MAC
    /// (Linux's `br_handle_frame` drops those) are dropped; a destination
    /// learnt on `from` is dropped (the station already saw it).
    pub fn forward(&mut self, from: PortId, frame: &[u8], now_ms: u64) -> Forward {
        if frame.len() < ETH_HLEN || !self.has_port(from) {
            return Forward::Drop;
        }
        let (dst, src) = (mac_at(frame, 0), mac_at(frame, 6));
        if !is_valid_unicast(&src) {
            return Forward::Drop;
        }
        self.learn(src, from, now_ms);
        if is_multicast(&dst) {
            return Forward::Flood;
        }
        match self.lookup_at(&dst, now_ms) {
            Some(p) if p == from => Forward::Drop,
            Some(p) => Forward::To(p),
            None => Forward::Flood,
        }
    }

    /// The port `mac` was last seen on, if learnt and not expired.
    pub fn lookup_at(&self, mac: &[u8; 6], now_ms: u64) -> Option<PortId> {
        self.fdb.iter().find(|e| e.mac == *mac && !expired(e, now_ms)).map(|e| e.port)
    }

    /// Record `mac` on `port` at `now_ms`: refresh (and move, if the
    /// station moved ports) an entry, or add one, evicting the least
    /// recently seen entry of a full table.
    fn learn(&mut self, mac: [u8; 6], port: PortId, now_ms: u64) {
        if let Some(e) = self.fdb.iter_mut().find(|e| e.mac == mac) {
            e.port = port;
            e.seen_ms = now_ms;
            return;
        }
        if self.max_macs == 0 {
            return;
        }
        if self.fdb.len() >= self.max_macs
            && let Some(oldest) = self.fdb.iter().enumerate().min_by_key(|(_, e)| e.seen_ms).map(|(i, _)| i)
        {
            self.fdb.swap_remove(oldest);
        }
        self.fdb.push(Fdb { mac, port, seen_ms: now_ms });
    }

    /// Forget entries not seen for more than [`AGEING_MS`] before `now_ms`.
    pub fn age(&mut self, now_ms: u64) {
        self.fdb.retain(|e| !expired(e, now_ms));
    }

    /// The ports, in the order they were added.
    pub fn ports(&self) -> impl Iterator<Item = PortId> + '_ {
        self.ports.iter().copied()
    }

    /// How many MACs are learnt.
    pub fn macs(&self) -> usize {
        self.fdb.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    const A: [u8; 6] = [0x00, 0x16, 0x3e, 0, 0, 0xa];
    const B: [u8; 6] = [0x00, 0x16, 0x3e, 0, 0, 0xb];
    const C: [u8; 6] = [0x00, 0x16, 0x3e, 0, 0, 0xc];
    const BCAST: [u8; 6] = [0xff; 6];

    fn frame(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
        let mut f = vec![0u8; 60];
        f[..6].copy_from_slice(&dst);
        f[6..12].copy_from_slice(&src);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f
    }

    fn three_ports() -> (Bridge, PortId, PortId, PortId) {
        let mut b = Bridge::new(8, 64);
        let (p, q, r) = (b.add_port().unwrap(), b.add_port().unwrap(), b.add_port().unwrap());
        (b, p, q, r)
    }

    #[test]
    fn learning_source_mac_makes_replies_unicast() {
        let (mut b, p, q, _) = three_ports();
        assert_eq!(b.forward(p, &frame(B, A), 0), Forward::Flood, "B unknown yet");
        assert_eq!(b.macs(), 1);
        assert_eq!(b.lookup_at(&A, 0), Some(p));
        assert_eq!(b.forward(q, &frame(A, B), 1), Forward::To(p), "A was learnt on p");
        assert_eq!(b.forward(p, &frame(B, A), 2), Forward::To(q), "B was learnt on q");
    }

    #[test]
    fn flooding_covers_broadcast_multicast_and_unknown_unicast() {
        let (mut b, p, _, _) = three_ports();
        assert_eq!(b.forward(p, &frame(BCAST, A), 0), Forward::Flood);
        assert_eq!(b.forward(p, &frame([0x01, 0x00, 0x5e, 0, 0, 1], A), 0), Forward::Flood);
        assert_eq!(b.forward(p, &frame([0x33, 0x33, 0, 0, 0, 1], A), 0), Forward::Flood);
        assert_eq!(b.forward(p, &frame(C, A), 0), Forward::Flood);
    }

    #[test]
    fn destination_on_the_source_port_is_dropped() {
        let (mut b, p, _, _) = three_ports();
        b.forward(p, &frame(BCAST, A), 0);
        assert_eq!(b.forward(p, &frame(A, B), 1), Forward::Drop, "A and B both on p: no forwarding");
    }

    #[test]
    fn ageing_forgets_entries_older_than_300_seconds() {
        let (mut b, p, q, _) = three_ports();
        b.forward(p, &frame(BCAST, A), 1_000);
        b.forward(q, &frame(BCAST, B), 200_000);
        assert_eq!(b.forward(q, &frame(A, B), 1_000 + AGEING_MS), Forward::To(p), "exactly the ageing time: kept");
        // A was not refreshed by being a destination.
        assert_eq!(b.forward(q, &frame(A, B), 1_001 + AGEING_MS), Forward::Flood, "expired entries are not used");
        b.age(1_001 + AGEING_MS);
        assert_eq!(b.macs(), 1, "A aged out, B (refreshed) stays");
        assert_eq!(b.lookup_at(&B, 1_001 + AGEING_MS), Some(q));
        b.age(1_002 + 2 * AGEING_MS);
        assert_eq!(b.macs(), 0);
    }

    #[test]
    fn ageing_with_a_clock_going_backwards_keeps_entries() {
        let (mut b, p, _, _) = three_ports();
        b.forward(p, &frame(BCAST, A), 10_000);
        b.age(0);
        assert_eq!(b.macs(), 1);
    }

    #[test]
    fn port_removal_forgets_its_macs_and_drops_its_frames() {
        let (mut b, p, q, r) = three_ports();
        b.forward(p, &frame(BCAST, A), 0);
        b.forward(q, &frame(BCAST, B), 0);
        b.remove_port(p);
        assert_eq!(b.ports().collect::<Vec<_>>(), [q, r]);
        assert_eq!(b.macs(), 1);
        assert_eq!(b.forward(q, &frame(A, B), 1), Forward::Flood, "A is unknown again");
        assert_eq!(b.forward(p, &frame(B, C), 1), Forward::Drop, "a removed port sends nothing");
        assert_eq!(b.lookup_at(&C, 1), None, "and teaches nothing");
        b.remove_port(99);
        assert_eq!(b.ports().count(), 2);
    }

    #[test]
    fn port_ids_are_not_reused_and_the_port_count_is_bounded() {
        let mut b = Bridge::new(2, 4);
        let p = b.add_port().unwrap();
        let q = b.add_port().unwrap();
        assert_eq!(b.add_port(), None, "full");
        b.remove_port(p);
        let r = b.add_port().unwrap();
        assert!(r != p && r != q);
    }

    #[test]
    fn mac_move_between_ports_follows_the_latest_frame() {
        let (mut b, p, q, r) = three_ports();
        b.forward(p, &frame(BCAST, A), 0);
        b.forward(q, &frame(BCAST, A), 5);
        assert_eq!(b.macs(), 1, "one entry, moved");
        assert_eq!(b.forward(r, &frame(A, C), 6), Forward::To(q));
    }

    #[test]
    fn table_bound_holds_under_a_flood_of_random_source_macs() {
        let mut b = Bridge::new(4, 32);
        let (p, q) = (b.add_port().unwrap(), b.add_port().unwrap());
        b.forward(q, &frame(BCAST, B), 0);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for t in 1..10_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut src = [0u8; 6];
            src.copy_from_slice(&x.to_le_bytes()[..6]);
            src[0] &= 0xfe;
            b.forward(p, &frame(B, src), t);
            assert!(b.macs() <= 32);
        }
        assert_eq!(b.macs(), 32);
        // The flood evicted the oldest entries, B among them; B's next
        // frame learns it again.
        assert_eq!(b.lookup_at(&B, 10_000), None);
        b.forward(q, &frame(BCAST, B), 10_001);
        assert_eq!(b.lookup_at(&B, 10_001), Some(q));
        assert_eq!(b.macs(), 32);
    }

    #[test]
    fn multicast_or_zero_source_is_never_learnt_and_the_frame_is_dropped() {
        let (mut b, p, _, _) = three_ports();
        assert_eq!(b.forward(p, &frame(BCAST, BCAST), 0), Forward::Drop);
        assert_eq!(b.forward(p, &frame(B, [0x01, 0, 0x5e, 0, 0, 1]), 0), Forward::Drop);
        assert_eq!(b.forward(p, &frame(B, [0; 6]), 0), Forward::Drop);
        assert_eq!(b.macs(), 0);
    }

    #[test]
    fn runt_frames_and_unknown_ports_are_dropped_without_learning() {
        let (mut b, p, _, _) = three_ports();
        let f = frame(B, A);
        for len in 0..ETH_HLEN {
            assert_eq!(b.forward(p, &f[..len], 0), Forward::Drop);
        }
        assert_eq!(b.forward(p, &f[..ETH_HLEN], 0), Forward::Flood, "a bare header is a frame");
        assert_eq!(b.forward(77, &frame(A, C), 0), Forward::Drop);
        assert_eq!(b.lookup_at(&C, 0), None);
    }

    #[test]
    fn a_table_of_zero_macs_still_floods() {
        let mut b = Bridge::new(2, 0);
        let (p, _) = (b.add_port().unwrap(), b.add_port().unwrap());
        assert_eq!(b.forward(p, &frame(B, A), 0), Forward::Flood);
        assert_eq!(b.macs(), 0);
    }
}
