//! Dom0's own port on the bridge: an IPv4 endpoint (static, 10.0.2.10/24
//! by default) on smoltcp's interface, which answers ARP and ICMP echo
//! (a guest can ping dom0) and can ping others ([`Dom0Net::send_ping`]),
//! and sends one TCP stream of the test pattern at a time
//! ([`Dom0Net::start_send`], the shell's `netsend`: dom0's own throughput,
//! the ceiling `cargo xtask bench` sets next to the guests' figures).
//! Frames come in through [`Dom0Net::push_rx`] and leave through
//! [`Dom0Net::pop_tx`]: the caller (the bridge hub) moves them.
//!
//! Pure (host-tested). Invariant: both queues are bounded ([`QUEUE_FRAMES`]
//! frames each; a full receive queue drops the newest frame, a full
//! transmit queue makes smoltcp hold its packet back), and frames longer
//! than [`MAX_FRAME`] are dropped, so no traffic grows dom0's memory.
//! smoltcp is built without `alloc`: the ICMP socket's buffers and the
//! socket set are leaked once per [`Dom0Net`] (a few KiB; dom0 makes one),
//! the TCP socket's ([`SEND_BUF`]) at the first send.
#![forbid(unsafe_code)]

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;
use frontend_drivers::netfront::PatternStream;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet, SocketStorage};
use smoltcp::phy::{self, ChecksumCapabilities, DeviceCapabilities, Medium};
use smoltcp::socket::{icmp, tcp};
use smoltcp::time::Instant;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol, HardwareAddress, Icmpv4Packet, Icmpv4Repr, IpAddress, IpCidr,
    Ipv4Address,
};

/// Dom0's default address on `xenbr0`.
pub const DEFAULT_IP: [u8; 4] = [10, 0, 2, 10];
/// Its default prefix length.
pub const DEFAULT_PREFIX: u8 = 24;
/// Frames each queue holds at most.
pub const QUEUE_FRAMES: usize = 32;
/// Largest Ethernet frame (1500-byte MTU, no FCS).
pub const MAX_FRAME: usize = 1514;
/// ICMP identifier of dom0's pings.
pub const PING_IDENT: u16 = 0xd0d0;
/// ARP senders remembered ([`Dom0Net::arp_seen`]).
const ARP_SEEN: usize = 8;
/// The TCP send's transmit buffer (its window's worth in flight).
pub const SEND_BUF: usize = 64 * 1024;
/// How long a send may wait for its connection.
const CONNECT_MS: u64 = 10_000;
/// How long a connected send may go without a byte queued or
/// acknowledged (a peer that stops reading, or keeps its window shut).
const STALL_MS: u64 = 30_000;
/// Most MiB one send moves.
pub const SEND_MAX_MIB: u64 = 4096;

/// A TCP send under way.
struct SendJob {
    data: PatternStream,
    since_ms: u64,
    /// When bytes last went into the socket or were acknowledged.
    progress_ms: u64,
    /// Bytes not yet acknowledged when last looked at.
    unacked: usize,
    /// When the connection was up (the figure's start).
    started_ms: Option<u64>,
    closing: bool,
}

/// How a send ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendEnd {
    /// Every byte acknowledged and the stream closed.
    Sent {
        /// Bytes sent.
        bytes: u64,
        /// Their FNV-1a 32.
        fnv1a: u32,
        /// Milliseconds from the connection to the acknowledged close.
        ms: u64,
    },
    /// The send gave up.
    Failed {
        /// Why.
        why: &'static str,
        /// Bytes queued by then.
        queued: u64,
    },
}

/// The frame queues smoltcp's interface reads and writes.
struct Queues {
    rx: VecDeque<Vec<u8>>,
    tx: VecDeque<Vec<u8>>,
}

struct Rx(Vec<u8>);
struct Tx<'a>(&'a mut VecDeque<Vec<u8>>);

impl phy::RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        // Built on the stack, then copied to the heap if it has room (a
        // full heap drops the frame, as a full queue would).
        let mut scratch = [0u8; MAX_FRAME];
        let frame = &mut scratch[..len.min(MAX_FRAME)];
        let r = f(frame);
        if len <= MAX_FRAME
            && let Some(v) = heap_copy(frame)
        {
            self.0.push_back(v);
        }
        r
    }
}

impl phy::Device for Queues {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _: Instant) -> Option<(Rx, Tx<'_>)> {
        if self.tx.len() >= QUEUE_FRAMES {
            return None;
        }
        let frame = self.rx.pop_front()?;
        Some((Rx(frame), Tx(&mut self.tx)))
    }

    fn transmit(&mut self, _: Instant) -> Option<Tx<'_>> {
        (self.tx.len() < QUEUE_FRAMES).then_some(Tx(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MAX_FRAME;
        caps.max_burst_size = Some(1);
        // No offloads anywhere on the bridge: compute and verify all.
        caps.checksum = ChecksumCapabilities::default();
        caps
    }
}

/// Dom0's IP endpoint on the bridge.
pub struct Dom0Net {
    mac: [u8; 6],
    iface: Interface,
    dev: Queues,
    sockets: SocketSet<'static>,
    icmp: SocketHandle,
    /// The TCP socket of [`Dom0Net::start_send`] (made at the first).
    tcp: Option<SocketHandle>,
    job: Option<SendJob>,
    ended: Option<SendEnd>,
    /// The send moved at the last poll.
    progressed: bool,
    /// When the stack wants polling next, while a send is under way (ms).
    wake_ms: Option<u64>,
    /// The next local port a send uses.
    next_port: u16,
    replies: VecDeque<([u8; 4], u16)>,
    arp: VecDeque<([u8; 4], [u8; 6])>,
    now_ms: u64,
    /// Frames dropped: too long, or the receive queue was full.
    pub dropped: u64,
}

/// A copy of `bytes` in dom0's heap, or `None` (the frame is dropped) if
/// the heap is full: a flood costs frames, never dom0 (the bridge's and
/// this endpoint's data path allocate only through this).
pub(crate) fn heap_copy(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut v = Vec::new();
    v.try_reserve_exact(bytes.len()).ok()?;
    v.extend_from_slice(bytes);
    Some(v)
}

fn leak<T: Clone>(v: T, n: usize) -> &'static mut [T] {
    Box::leak(vec![v; n].into_boxed_slice())
}

impl Dom0Net {
    /// An endpoint with `mac` and `ip`/`prefix`.
    pub fn new(mac: [u8; 6], ip: [u8; 4], prefix: u8) -> Dom0Net {
        // Both queues' room up front: pushing within QUEUE_FRAMES never
        // allocates later.
        let mut dev = Queues { rx: VecDeque::with_capacity(QUEUE_FRAMES), tx: VecDeque::with_capacity(QUEUE_FRAMES) };
        let config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        let mut iface = Interface::new(config, &mut dev, Instant::from_millis(0));
        iface.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::new(IpAddress::Ipv4(Ipv4Address::from(ip)), prefix.min(32)));
        });
        let mut sockets = SocketSet::new(&mut Box::leak(Box::new([SocketStorage::EMPTY; 2]))[..]);
        let rx = icmp::PacketBuffer::new(leak(icmp::PacketMetadata::EMPTY, 4), leak(0u8, 1024));
        let tx = icmp::PacketBuffer::new(leak(icmp::PacketMetadata::EMPTY, 4), leak(0u8, 1024));
        let mut socket = icmp::Socket::new(rx, tx);
        let _ = socket.bind(icmp::Endpoint::Ident(PING_IDENT));
        let icmp = sockets.add(socket);
        Dom0Net {
            mac,
            iface,
            dev,
            sockets,
            icmp,
            tcp: None,
            job: None,
            ended: None,
            progressed: false,
            wake_ms: None,
            next_port: 49152,
            replies: VecDeque::new(),
            arp: VecDeque::new(),
            now_ms: 0,
            dropped: 0,
        }
    }

    /// The endpoint's MAC.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// A frame from the bridge (copied; dropped when too long or the
    /// queue is full).
    pub fn push_rx(&mut self, frame: &[u8]) {
        if frame.len() > MAX_FRAME || self.dev.rx.len() >= QUEUE_FRAMES {
            self.dropped += 1;
            return;
        }
        if let Some((ip, mac)) = arp_sender(frame)
            && !self.arp.iter().any(|e| *e == (ip, mac))
        {
            if self.arp.len() >= ARP_SEEN {
                self.arp.pop_front();
            }
            self.arp.retain(|e| e.0 != ip);
            self.arp.push_back((ip, mac));
        }
        match heap_copy(frame) {
            Some(v) => self.dev.rx.push_back(v),
            None => self.dropped += 1,
        }
    }

    /// Let smoltcp process what came in and emit what it has to send
    /// (ARP replies, echo replies, queued pings, the TCP send's next
    /// segments), at `now_ms`.
    pub fn poll(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
        let at = Instant::from_millis(now_ms as i64);
        let _ = self.iface.poll(at, &mut self.dev, &mut self.sockets);
        self.progressed = self.drive_send(now_ms);
        if self.progressed {
            let _ = self.iface.poll(at, &mut self.dev, &mut self.sockets);
        }
        // smoltcp says "poll now" as time 0: that is now, never "no time".
        let wake = |t: Instant| (t.total_millis().max(0) as u64).max(now_ms);
        self.wake_ms = if self.job.is_some() { self.iface.poll_at(at, &self.sockets).map(wake) } else { None };
        let socket = self.sockets.get_mut::<icmp::Socket>(self.icmp);
        while let Ok((data, from)) = socket.recv() {
            let IpAddress::Ipv4(from) = from;
            if let Ok(pkt) = Icmpv4Packet::new_checked(data)
                && let Ok(Icmpv4Repr::EchoReply { ident: PING_IDENT, seq_no, .. }) = Icmpv4Repr::parse(&pkt, &ChecksumCapabilities::default())
                && self.replies.len() < QUEUE_FRAMES
            {
                self.replies.push_back((from.octets(), seq_no));
            }
        }
    }

    /// The next frame to put on the bridge.
    pub fn pop_tx(&mut self) -> Option<Vec<u8>> {
        self.dev.tx.pop_front()
    }

    /// Queue an ICMP echo request to `to` with sequence number `seq` (sent
    /// by the next [`poll`](Self::poll)s, after ARP); false if the
    /// socket's queue is full.
    pub fn send_ping(&mut self, to: [u8; 4], seq: u16) -> bool {
        let repr = Icmpv4Repr::EchoRequest { ident: PING_IDENT, seq_no: seq, data: b"dom0 ping" };
        let mut bytes = [0u8; 32];
        let len = repr.buffer_len();
        let mut pkt = Icmpv4Packet::new_unchecked(&mut bytes[..len]);
        repr.emit(&mut pkt, &ChecksumCapabilities::default());
        let socket = self.sockets.get_mut::<icmp::Socket>(self.icmp);
        socket.send_slice(&bytes[..len], IpAddress::Ipv4(Ipv4Address::from(to))).is_ok()
    }

    /// Start sending `mib` MiB of the test pattern (`frontend_drivers::
    /// netfront::fill_pattern`) to `to`:`port` over TCP, then close; the
    /// outcome comes from [`take_send_end`](Self::take_send_end). One send
    /// at a time.
    pub fn start_send(&mut self, to: [u8; 4], port: u16, mib: u64) -> Result<(), &'static str> {
        if self.job.is_some() {
            return Err("a send is under way");
        }
        if port == 0 || mib == 0 || mib > SEND_MAX_MIB {
            return Err("bad port or size");
        }
        let h = match self.tcp {
            Some(h) => h,
            None => {
                let socket = tcp::Socket::new(tcp::SocketBuffer::new(leak(0u8, 2048)), tcp::SocketBuffer::new(leak(0u8, SEND_BUF)));
                *self.tcp.insert(self.sockets.add(socket))
            }
        };
        let local = self.next_port;
        self.next_port = if local >= 65000 { 49152 } else { local + 1 };
        let s = self.sockets.get_mut::<tcp::Socket>(h);
        s.abort();
        let remote = (IpAddress::Ipv4(Ipv4Address::from(to)), port);
        s.connect(self.iface.context(), remote, local).map_err(|_| "cannot connect")?;
        self.ended = None;
        // smoltcp gives up on a peer that stops acknowledging (and probes
        // an idle one); STALL_MS covers a peer that acknowledges nothing new.
        s.set_timeout(Some(smoltcp::time::Duration::from_secs(20)));
        s.set_keep_alive(Some(smoltcp::time::Duration::from_secs(2)));
        let now = self.now_ms;
        self.job =
            Some(SendJob { data: PatternStream::new(mib << 20), since_ms: now, progress_ms: now, unacked: 0, started_ms: None, closing: false });
        Ok(())
    }

    /// Whether a send is under way.
    pub fn sending(&self) -> bool {
        self.job.is_some()
    }

    /// Whether the send made progress at the last poll, so the caller
    /// polls again at once (otherwise at [`wake_ms`](Self::wake_ms) or the
    /// next frame: a stalled peer costs dom0 no spinning).
    pub fn busy(&self) -> bool {
        self.job.is_some() && self.progressed
    }

    /// When the stack wants polling without a frame (its TCP timers), while
    /// a send is under way.
    pub fn wake_ms(&self) -> Option<u64> {
        self.wake_ms
    }

    /// How the last send ended, once.
    pub fn take_send_end(&mut self) -> Option<SendEnd> {
        self.ended.take()
    }

    /// Move the send on: fill the socket, close after the last byte, see
    /// it end (or give up on a peer stalled [`STALL_MS`]). Whether it made
    /// progress (bytes queued or acknowledged: worth another poll now).
    fn drive_send(&mut self, now_ms: u64) -> bool {
        let (Some(job), Some(h)) = (self.job.as_mut(), self.tcp) else { return false };
        let s = self.sockets.get_mut::<tcp::Socket>(h);
        let end = match s.state() {
            // SynReceived too: a peer answering with a bare SYN must not
            // hold the send open forever.
            tcp::State::SynSent | tcp::State::SynReceived if now_ms.saturating_sub(job.since_ms) > CONNECT_MS => {
                s.abort();
                Some(SendEnd::Failed { why: "no connection in 10 s", queued: 0 })
            }
            tcp::State::SynSent | tcp::State::SynReceived => return false,
            _ => None,
        };
        let mut queued = false;
        let unacked = s.send_queue();
        if unacked < job.unacked {
            (job.progress_ms, queued) = (now_ms, true);
        }
        let end = end.or_else(|| {
            (now_ms.saturating_sub(job.progress_ms) > STALL_MS).then(|| {
                s.abort();
                SendEnd::Failed { why: "no progress in 30 s", queued: job.data.queued }
            })
        });
        if end.is_none() {
            job.started_ms.get_or_insert(now_ms);
            while !job.data.done() && s.can_send() {
                let data = &mut job.data;
                if s.send(|b| {
                    let n = data.fill(b);
                    (n, n)
                }) == Ok(0)
                {
                    break;
                }
                (job.progress_ms, queued) = (now_ms, true);
            }
            job.unacked = s.send_queue();
            if job.data.done() && !job.closing {
                s.close();
                job.closing = true;
            }
        }
        let end = end.or_else(|| Self::send_outcome(job, s, now_ms));
        if end.is_some() {
            (self.ended, self.job) = (end, None);
        }
        queued
    }

    /// The outcome of a send whose connection was up, once it has one.
    fn send_outcome(job: &SendJob, s: &tcp::Socket<'_>, now_ms: u64) -> Option<SendEnd> {
        let closed = matches!(s.state(), tcp::State::FinWait2 | tcp::State::TimeWait | tcp::State::Closed | tcp::State::Closing);
        if job.closing && s.send_queue() == 0 && closed {
            let ms = now_ms.saturating_sub(job.started_ms.unwrap_or(now_ms));
            return Some(SendEnd::Sent { bytes: job.data.queued, fnv1a: job.data.fnv1a, ms });
        }
        (!s.is_open()).then_some(SendEnd::Failed { why: "connection lost", queued: job.data.queued })
    }

    /// The next echo reply to dom0's pings: (from, sequence number).
    pub fn ping_reply(&mut self) -> Option<([u8; 4], u16)> {
        self.replies.pop_front()
    }

    /// The MAC an ARP packet (request or reply) from `ip` gave, among the
    /// last few seen.
    pub fn arp_seen(&self, ip: [u8; 4]) -> Option<[u8; 6]> {
        self.arp.iter().rev().find(|e| e.0 == ip).map(|e| e.1)
    }
}

/// The sender (IPv4, MAC) of an Ethernet ARP frame.
pub fn arp_sender(frame: &[u8]) -> Option<([u8; 4], [u8; 6])> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Arp {
        return None;
    }
    let arp = ArpPacket::new_checked(eth.payload()).ok()?;
    match ArpRepr::parse(&arp).ok()? {
        ArpRepr::EthernetIpv4 { source_hardware_addr, source_protocol_addr, operation, .. }
            if matches!(operation, ArpOperation::Request | ArpOperation::Reply) && source_hardware_addr.is_unicast() =>
        {
            Some((source_protocol_addr.octets(), source_hardware_addr.0))
        }
        _ => None,
    }
}

/// An ARP request frame from (`mac`, `ip`) asking who has `target`.
pub fn arp_request(mac: [u8; 6], ip: [u8; 4], target: [u8; 4]) -> Vec<u8> {
    let repr = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: EthernetAddress(mac),
        source_protocol_addr: Ipv4Address::from(ip),
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: Ipv4Address::from(target),
    };
    let mut frame = vec![0u8; 14 + repr.buffer_len()];
    let mut eth = EthernetFrame::new_unchecked(&mut frame[..]);
    eth.set_dst_addr(EthernetAddress::BROADCAST);
    eth.set_src_addr(EthernetAddress(mac));
    eth.set_ethertype(EthernetProtocol::Arp);
    repr.emit(&mut ArpPacket::new_unchecked(eth.payload_mut()));
    frame
}

#[cfg(test)]
mod tests {
    use super::*;
    use frontend_drivers::netfront::{FNV_OFFSET, fill_pattern, fnv1a};
    use smoltcp::wire::{IpProtocol, Ipv4Packet, Ipv4Repr};

    const DOM0_MAC: [u8; 6] = [0x00, 0x16, 0x3e, 0, 0, 0x10];
    const GUEST_MAC: [u8; 6] = [0x00, 0x16, 0x3e, 0, 0, 0x11];
    const GUEST_IP: [u8; 4] = [10, 0, 2, 11];

    fn dom0() -> Dom0Net {
        Dom0Net::new(DOM0_MAC, DEFAULT_IP, DEFAULT_PREFIX)
    }

    /// An Ethernet frame from the guest carrying an ICMP message to `dst`.
    fn icmp_frame(dst_mac: [u8; 6], dst: [u8; 4], repr: Icmpv4Repr) -> Vec<u8> {
        let ip = Ipv4Repr {
            src_addr: Ipv4Address::from(GUEST_IP),
            dst_addr: Ipv4Address::from(dst),
            next_header: IpProtocol::Icmp,
            payload_len: repr.buffer_len(),
            hop_limit: 64,
        };
        let mut frame = vec![0u8; 14 + ip.buffer_len() + repr.buffer_len()];
        let mut eth = EthernetFrame::new_unchecked(&mut frame[..]);
        eth.set_dst_addr(EthernetAddress(dst_mac));
        eth.set_src_addr(EthernetAddress(GUEST_MAC));
        eth.set_ethertype(EthernetProtocol::Ipv4);
        let caps = ChecksumCapabilities::default();
        let mut ipp = Ipv4Packet::new_unchecked(eth.payload_mut());
        ip.emit(&mut ipp, &caps);
        repr.emit(&mut Icmpv4Packet::new_unchecked(ipp.payload_mut()), &caps);
        frame
    }

    fn drain(n: &mut Dom0Net) -> Vec<Vec<u8>> {
        core::iter::from_fn(|| n.pop_tx()).collect()
    }

    #[test]
    fn arp_request_for_dom0s_address_gets_a_reply_with_its_mac() {
        let mut n = dom0();
        n.push_rx(&arp_request(GUEST_MAC, GUEST_IP, DEFAULT_IP));
        n.poll(1);
        let out = drain(&mut n);
        assert_eq!(out.len(), 1);
        let eth = EthernetFrame::new_checked(&out[0][..]).unwrap();
        assert_eq!(eth.dst_addr(), EthernetAddress(GUEST_MAC));
        let arp = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap()).unwrap();
        let ArpRepr::EthernetIpv4 { operation, source_hardware_addr, source_protocol_addr, .. } = arp else { panic!() };
        assert_eq!(operation, ArpOperation::Reply);
        assert_eq!(source_hardware_addr, EthernetAddress(DOM0_MAC));
        assert_eq!(source_protocol_addr.octets(), DEFAULT_IP);
        assert_eq!(n.arp_seen(GUEST_IP), Some(GUEST_MAC));
    }

    #[test]
    fn arp_request_for_another_address_gets_no_reply() {
        let mut n = dom0();
        n.push_rx(&arp_request(GUEST_MAC, GUEST_IP, [10, 0, 2, 99]));
        n.poll(1);
        assert!(drain(&mut n).is_empty());
    }

    #[test]
    fn icmp_echo_request_to_dom0_gets_an_echo_reply_with_the_same_ident_and_seq() {
        let mut n = dom0();
        n.push_rx(&arp_request(GUEST_MAC, GUEST_IP, DEFAULT_IP));
        n.poll(1);
        drain(&mut n);
        n.push_rx(&icmp_frame(DOM0_MAC, DEFAULT_IP, Icmpv4Repr::EchoRequest { ident: 7, seq_no: 42, data: b"hello" }));
        n.poll(2);
        let out = drain(&mut n);
        assert_eq!(out.len(), 1);
        let eth = EthernetFrame::new_checked(&out[0][..]).unwrap();
        assert_eq!(eth.dst_addr(), EthernetAddress(GUEST_MAC));
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        assert!(ip.verify_checksum(), "full checksums: nothing is offloaded");
        assert_eq!(ip.dst_addr().octets(), GUEST_IP);
        let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
        assert!(icmp.verify_checksum());
        assert_eq!(
            Icmpv4Repr::parse(&icmp, &ChecksumCapabilities::default()).unwrap(),
            Icmpv4Repr::EchoReply { ident: 7, seq_no: 42, data: b"hello" }
        );
    }

    #[test]
    fn dom0_ping_arps_first_then_sends_and_takes_the_reply() {
        let mut n = dom0();
        assert!(n.send_ping(GUEST_IP, 3));
        n.poll(1);
        let out = drain(&mut n);
        assert_eq!(out.len(), 1, "an ARP request, the ping waits");
        assert_eq!(arp_sender(&out[0]), Some((DEFAULT_IP, DOM0_MAC)));
        // The guest answers the ARP (a reply sent to dom0).
        let mut reply = arp_request(GUEST_MAC, GUEST_IP, DEFAULT_IP);
        reply[..6].copy_from_slice(&DOM0_MAC);
        reply[21] = 2; // ARP opcode: reply
        n.push_rx(&reply);
        n.poll(1_100);
        let out = drain(&mut n);
        assert_eq!(out.len(), 1, "the echo request");
        let ip = Ipv4Packet::new_checked(&out[0][14..]).unwrap();
        assert_eq!(ip.dst_addr().octets(), GUEST_IP);
        n.push_rx(&icmp_frame(DOM0_MAC, DEFAULT_IP, Icmpv4Repr::EchoReply { ident: PING_IDENT, seq_no: 3, data: b"dom0 ping" }));
        n.poll(1_200);
        assert_eq!(n.ping_reply(), Some((GUEST_IP, 3)));
        assert_eq!(n.ping_reply(), None);
    }

    #[test]
    fn queues_are_bounded_under_a_flood_and_oversized_frames_are_dropped() {
        let mut n = dom0();
        for i in 0..1000u32 {
            n.push_rx(&arp_request(GUEST_MAC, [10, 0, 2, (i % 200) as u8 + 20], DEFAULT_IP));
        }
        assert_eq!(n.dev.rx.len(), QUEUE_FRAMES);
        assert_eq!(n.dropped, 1000 - QUEUE_FRAMES as u64);
        n.push_rx(&[0u8; MAX_FRAME + 1]);
        assert_eq!(n.dropped, 1001 - QUEUE_FRAMES as u64);
        n.poll(1);
        assert!(n.dev.tx.len() <= QUEUE_FRAMES);
        assert!(n.arp.len() <= ARP_SEEN);
    }

    /// A smoltcp host at GUEST_IP with a TCP listener on `port` (none
    /// when 0) that hashes what it receives.
    struct Peer {
        iface: Interface,
        dev: Queues,
        sockets: SocketSet<'static>,
        tcp: SocketHandle,
        got: u64,
        fnv1a: u32,
    }

    impl Peer {
        fn new(port: u16) -> Peer {
            let mut dev = Queues { rx: VecDeque::new(), tx: VecDeque::new() };
            let mut iface = Interface::new(Config::new(HardwareAddress::Ethernet(EthernetAddress(GUEST_MAC))), &mut dev, Instant::from_millis(0));
            iface.update_ip_addrs(|a| {
                let _ = a.push(IpCidr::new(IpAddress::Ipv4(Ipv4Address::from(GUEST_IP)), 24));
            });
            let mut sockets = SocketSet::new(&mut Box::leak(Box::new([SocketStorage::EMPTY; 1]))[..]);
            let mut s = tcp::Socket::new(tcp::SocketBuffer::new(leak(0u8, 16384)), tcp::SocketBuffer::new(leak(0u8, 1024)));
            if port != 0 {
                s.listen(port).unwrap();
            }
            let tcp = sockets.add(s);
            Peer { iface, dev, sockets, tcp, got: 0, fnv1a: FNV_OFFSET }
        }
    }

    /// Run dom0 against `peer` (frames both ways, 1 ms a step) until the
    /// send ends or `max_ms` passes; the peer hashes what it reads.
    fn run_send(n: &mut Dom0Net, peer: &mut Peer, max_ms: u64) -> Option<SendEnd> {
        for now in 1..max_ms {
            n.poll(now);
            while let Some(f) = n.pop_tx() {
                peer.dev.rx.push_back(f);
            }
            let _ = peer.iface.poll(Instant::from_millis(now as i64), &mut peer.dev, &mut peer.sockets);
            let s = peer.sockets.get_mut::<tcp::Socket>(peer.tcp);
            while s.can_recv() {
                let (got, mut h) = (peer.got, peer.fnv1a);
                let k = s.recv(|b| {
                    h = fnv1a(h, b);
                    (b.len(), b.len())
                });
                let Ok(k) = k else { break };
                (peer.got, peer.fnv1a) = (got + k as u64, h);
            }
            if s.state() == tcp::State::CloseWait {
                s.close();
            }
            let _ = peer.iface.poll(Instant::from_millis(now as i64), &mut peer.dev, &mut peer.sockets);
            while let Some(f) = peer.dev.tx.pop_front() {
                n.push_rx(&f);
            }
            if let Some(end) = n.take_send_end() {
                return Some(end);
            }
        }
        None
    }

    #[test]
    fn tcp_send_delivers_the_pattern_and_reports_the_same_fnv1a_the_peer_computed() {
        let mut n = dom0();
        let mut peer = Peer::new(5001);
        n.start_send(GUEST_IP, 5001, 2).unwrap();
        assert_eq!(n.start_send(GUEST_IP, 5001, 1), Err("a send is under way"));
        assert!(n.sending());
        let end = run_send(&mut n, &mut peer, 60_000).expect("the send ends");
        let SendEnd::Sent { bytes, fnv1a: sent_hash, .. } = end else { panic!("{end:?}") };
        assert_eq!(bytes, 2 << 20);
        assert_eq!(peer.got, 2 << 20, "the peer read every byte");
        let mut want = vec![0u8; 2 << 20];
        fill_pattern(0, &mut want);
        assert_eq!(sent_hash, fnv1a(FNV_OFFSET, &want));
        assert_eq!(peer.fnv1a, sent_hash, "the bytes arrived intact and in order");
        assert!(!n.sending());
        // A second send reuses the socket.
        let mut peer = Peer::new(5001);
        n.start_send(GUEST_IP, 5001, 1).unwrap();
        assert!(matches!(run_send(&mut n, &mut peer, 60_000), Some(SendEnd::Sent { bytes: 0x10_0000, .. })));
    }

    /// Attack (a peer that takes the connection and never reads): the send
    /// stops being busy once the window shuts (dom0 sleeps until the stack's
    /// own timer), and gives up after STALL_MS without progress.
    #[test]
    fn tcp_send_to_a_peer_that_never_reads_stops_spinning_and_gives_up() {
        let mut n = dom0();
        let mut peer = Peer::new(5001);
        n.start_send(GUEST_IP, 5001, 8).unwrap();
        let (mut end, mut busy_late) = (None, false);
        for now in 1..(STALL_MS + 40_000) / 10 {
            let now = now * 10;
            n.poll(now);
            while let Some(f) = n.pop_tx() {
                peer.dev.rx.push_back(f);
            }
            let _ = peer.iface.poll(Instant::from_millis(now as i64), &mut peer.dev, &mut peer.sockets);
            while let Some(f) = peer.dev.tx.pop_front() {
                n.push_rx(&f);
            }
            busy_late |= now > 5_000 && n.busy();
            assert!(!n.sending() || n.wake_ms().is_some(), "a send under way has the stack's timers to wake for");
            if let Some(e) = n.take_send_end() {
                end = Some(e);
                break;
            }
        }
        assert!(!busy_late, "a shut window is no progress: dom0 need not poll at once");
        assert!(matches!(end, Some(SendEnd::Failed { why: "no progress in 30 s", .. })), "{end:?}");
    }

    #[test]
    fn tcp_send_to_a_closed_port_fails_when_the_peer_resets() {
        let mut n = dom0();
        let mut peer = Peer::new(0);
        n.start_send(GUEST_IP, 5001, 1).unwrap();
        assert_eq!(run_send(&mut n, &mut peer, 5_000), Some(SendEnd::Failed { why: "connection lost", queued: 0 }));
    }

    #[test]
    fn tcp_send_with_no_peer_gives_up_after_its_connect_timeout() {
        let mut n = dom0();
        n.start_send(GUEST_IP, 5001, 1).unwrap();
        let mut end = None;
        for now in (1..=CONNECT_MS + 2000).step_by(100) {
            n.poll(now);
            drain(&mut n);
            end = end.or(n.take_send_end());
        }
        assert_eq!(end, Some(SendEnd::Failed { why: "no connection in 10 s", queued: 0 }));
        assert_eq!(n.start_send(GUEST_IP, 0, 1), Err("bad port or size"));
        assert_eq!(n.start_send(GUEST_IP, 5001, SEND_MAX_MIB + 1), Err("bad port or size"));
    }

    #[test]
    fn garbage_frames_are_ignored_without_panic() {
        let mut n = dom0();
        let mut x = 0x1234_5678u32;
        for len in [0usize, 1, 13, 14, 15, 41, 42, 60, 100, 1514] {
            let f: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    (x >> 16) as u8
                })
                .collect();
            n.push_rx(&f);
            let _ = arp_sender(&f);
        }
        // A truncated ARP to dom0's MAC.
        n.push_rx(&arp_request(GUEST_MAC, GUEST_IP, DEFAULT_IP)[..30]);
        n.poll(1);
        assert!(drain(&mut n).is_empty());
    }
}
