//! netfront as pure logic: the vif's part of the xenbus handshake
//! ([`Netfront`] for [`crate::xenbus_frontend::Frontend`], Linux's
//! `talk_to_netback`/`xennet_connect` in drivers/net/xen-netfront.c), the
//! cutting of a frame into `io/netif.h` tx requests ([`tx_chain`]), the
//! reassembly of multi-slot rx responses ([`RxAssembler`],
//! `xennet_get_responses`), and the test traffic's pattern and checksum
//! ([`fill_pattern`], [`fnv1a`]).
//!
//! Invariants: a tx request never crosses its page (`offset + size <=
//! 4096`), a frame of several slots is sent only when both ends do
//! `feature-sg`, the first request's `size` is the frame's length (netif.h);
//! an rx response is accepted only for a buffer that is posted
//! ([`crate::blkfront::Slots`] keeps which), a packet's fragments are
//! bounded ([`RX_SLOTS_MAX`], [`FRAME_MAX`] bytes) and a bad fragment
//! (negative status, past its page, too many, too long) drops that packet,
//! never the machine: nothing the backend writes makes this code index
//! outside a page or the frame, or grow without bound.
#![forbid(unsafe_code)]
// `Fatal` carries its message inline (no heap in the guest).
#![allow(clippy::result_large_err)]

use crate::xenbus_frontend::FrontendDevice;
use crate::xenbus_store::{Fatal, Path, StoreRead, Writes, netif_keys as k, put, read_bool, read_node};
use heapless::Vec;
use xen_public::errno::{EINVAL, ENODEV};
use xen_public::io::netif::{NETRXF_EXTRA_INFO, NETRXF_MORE_DATA, NETTXF_MORE_DATA, NetifRxResponse, NetifTxRequest, XEN_NETIF_NR_SLOTS_MIN};

/// Bytes of a page.
pub const PAGE: usize = 4096;
/// Largest frame either way (`XEN_NETIF_MAX_TX_SIZE`; the rx side keeps to
/// it as Linux's netfront does, 64 KiB less one).
pub const FRAME_MAX: usize = 0xffff;
/// Most slots of one received packet (`xennet_get_responses`' `max`:
/// `XEN_NETIF_NR_SLOTS_MIN`).
pub const RX_SLOTS_MAX: usize = XEN_NETIF_NR_SLOTS_MIN as usize;
/// Most requests of one sent frame: [`FRAME_MAX`] in whole pages.
pub const TX_SLOTS_MAX: usize = FRAME_MAX.div_ceil(PAGE);

/// A MAC address.
pub type Mac = [u8; 6];

/// `xx:xx:xx:xx:xx:xx` (hex, either case), as `xen_net_read_mac` takes it.
pub fn parse_mac(text: &[u8]) -> Option<Mac> {
    let s = core::str::from_utf8(text).ok()?;
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        let p = parts.next()?;
        if p.len() != 2 || !p.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// A dotted quad `a.b.c.d`, each part 0..=255 in plain decimal.
pub fn parse_ipv4(text: &str) -> Option<[u8; 4]> {
    let mut ip = [0u8; 4];
    let mut parts = text.split('.');
    for b in &mut ip {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        *b = p.parse().ok()?;
    }
    parts.next().is_none().then_some(ip)
}

/// netfront's part of the handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Netfront {
    /// The frontend's own directory (`/local/domain/<id>/device/vif/<n>`),
    /// where the toolstack wrote `mac`.
    pub frontend_dir: Path,
    /// Use `feature-sg` if the backend offers it.
    pub sg: bool,
}

impl Netfront {
    /// The vif at `frontend_dir`; `None` if the path is too long.
    pub fn new(frontend_dir: &str, sg: bool) -> Option<Self> {
        let mut d = Path::new();
        d.push_str(frontend_dir).ok()?;
        Some(Netfront { frontend_dir: d, sg })
    }
}

/// What was chosen from the backend's offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetParams {
    /// Both ends do scatter-gather.
    pub sg: bool,
}

/// The rings netfront set up (one queue).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetfrontRing {
    /// Grant of the tx ring page.
    pub tx_ring_ref: u32,
    /// Grant of the rx ring page.
    pub rx_ring_ref: u32,
    /// The event channel of both (allocated unbound for the backend).
    pub evtchn: u32,
}

/// The vif as it is once connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetInfo {
    /// The frontend's `mac`.
    pub mac: Mac,
    /// The first address of the backend's `ip` node, if any (else DHCP).
    pub ip: Option<[u8; 4]>,
    /// Frames of several slots may be sent and received.
    pub sg: bool,
}

impl Netfront {
    /// The backend offers `feature-sg` and this frontend wants it.
    fn sg_agreed<S: StoreRead + ?Sized>(&self, store: &mut S, backend: &str) -> Result<bool, Fatal> {
        Ok(self.sg && read_bool(store, backend, k::FEATURE_SG, false)?)
    }

    /// The frontend's `mac` (`xen_net_read_mac`: missing or malformed is
    /// an error).
    fn read_mac<S: StoreRead + ?Sized>(&self, store: &mut S) -> Result<Mac, Fatal> {
        let mut buf = [0u8; 32];
        let dir = self.frontend_dir.as_str();
        let text = read_node(store, dir, k::MAC, &mut buf)?.ok_or_else(|| Fatal::new(ENODEV, format_args!("reading {dir}/mac: missing")))?;
        parse_mac(text).ok_or_else(|| Fatal::new(EINVAL, format_args!("parsing {dir}/mac")))
    }
}

/// The backend's `ip` (libxl writes the vif spec's `ip=` there, several
/// addresses space separated): the first one; `None` if there is none;
/// fatal if it is not an IPv4 address.
fn read_ip<S: StoreRead + ?Sized>(store: &mut S, backend: &str) -> Result<Option<[u8; 4]>, Fatal> {
    let mut buf = [0u8; 64];
    let Some(text) = read_node(store, backend, k::IP, &mut buf)? else { return Ok(None) };
    let first = core::str::from_utf8(text).ok().and_then(|t| t.split_ascii_whitespace().next());
    match first {
        None => Ok(None),
        Some(a) => parse_ipv4(a).map(Some).ok_or_else(|| Fatal::new(EINVAL, format_args!("parsing {backend}/ip"))),
    }
}

impl FrontendDevice for Netfront {
    type Params = NetParams;
    type Ring = NetfrontRing;
    type Info = NetInfo;

    /// `xennet_connect`'s first check: the backend must copy into posted
    /// pages (`feature-rx-copy`), else `-ENODEV`; the MAC must be there.
    fn read_offer<S: StoreRead + ?Sized>(&self, store: &mut S, backend: &str) -> Result<NetParams, Fatal> {
        if !read_bool(store, backend, k::FEATURE_RX_COPY, false)? {
            return Err(Fatal::new(ENODEV, format_args!("{backend} does not support copying receive path")));
        }
        self.read_mac(store)?;
        Ok(NetParams { sg: self.sg_agreed(store, backend)? })
    }

    /// `talk_to_netback` with one queue: the keys in the device directory.
    fn transport_keys(&self, params: &NetParams, ring: &NetfrontRing, out: &mut Writes) -> Result<(), Fatal> {
        put(out, k::TX_RING_REF, format_args!("{}", ring.tx_ring_ref));
        put(out, k::RX_RING_REF, format_args!("{}", ring.rx_ring_ref));
        put(out, k::EVENT_CHANNEL, format_args!("{}", ring.evtchn));
        put(out, k::REQUEST_RX_COPY, format_args!("1"));
        put(out, k::FEATURE_RX_NOTIFY, format_args!("1"));
        if params.sg {
            put(out, k::FEATURE_SG, format_args!("1"));
        }
        put(out, k::FEATURE_NO_CSUM_OFFLOAD, format_args!("1"));
        put(out, k::FEATURE_GSO_TCPV4, format_args!("0"));
        Ok(())
    }

    fn read_info<S: StoreRead + ?Sized>(&self, store: &mut S, backend: &str) -> Result<NetInfo, Fatal> {
        Ok(NetInfo { mac: self.read_mac(store)?, ip: read_ip(store, backend)?, sg: self.sg_agreed(store, backend)? })
    }
}

/// Why a frame cannot be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxError {
    /// Empty, or longer than [`FRAME_MAX`].
    BadLength(usize),
    /// It needs several slots and scatter-gather is off.
    NeedsSg,
    /// Fewer free slots than it needs.
    NoSlots,
}

/// Slots a frame of `len` bytes takes (one page each).
pub fn tx_slots(len: usize) -> usize {
    len.div_ceil(PAGE).max(1)
}

/// The requests sending a frame of `len` bytes copied page by page into
/// the pages of `slots` (`(id, gref)` each, in order), as
/// `xennet_start_xmit` builds them: each from offset 0 of its page, the
/// first one's `size` the whole frame's, `NETTXF_more_data` on all but the
/// last. No checksum flags (this frontend sends complete checksums).
pub fn tx_chain(len: usize, slots: &[(u16, u32)], sg: bool) -> Result<Vec<NetifTxRequest, TX_SLOTS_MAX>, TxError> {
    if len == 0 || len > FRAME_MAX {
        return Err(TxError::BadLength(len));
    }
    let n = tx_slots(len);
    if n > 1 && !sg {
        return Err(TxError::NeedsSg);
    }
    if slots.len() < n {
        return Err(TxError::NoSlots);
    }
    let mut out = Vec::new();
    for (i, &(id, gref)) in slots.iter().take(n).enumerate() {
        let piece = (len - i * PAGE).min(PAGE);
        let size = if i == 0 { len } else { piece };
        let flags = if i + 1 < n { NETTXF_MORE_DATA } else { 0 };
        let _ = out.push(NetifTxRequest { gref, offset: 0, flags, id, size: size as u16 });
    }
    Ok(out)
}

/// Why a received packet was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxDrop {
    /// A slot's status was a `NETIF_RSP_*` error.
    Status(i16),
    /// A fragment ran past its page (`offset + size > 4096`).
    PastPage,
    /// More than [`RX_SLOTS_MAX`] slots.
    TooManySlots,
    /// Longer than [`FRAME_MAX`] or the caller's frame buffer.
    TooLong,
    /// No bytes at all.
    Empty,
}

/// What to do with one rx response's data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxStep {
    /// Copy `len` bytes from `offset` in the response's page to `at` in the
    /// frame (`None`: nothing to copy, the packet is being dropped).
    pub copy: Option<RxCopy>,
    /// The packet ended with this slot: its length, or why it is dropped.
    pub end: Option<Result<usize, RxDrop>>,
}

/// One fragment's copy into the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxCopy {
    /// Offset in the rx page.
    pub offset: usize,
    /// Bytes.
    pub len: usize,
    /// Where in the frame.
    pub at: usize,
}

/// Reassembles a packet from its rx responses (`NETRXF_more_data` chains),
/// one response at a time, into a frame of the caller's capacity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxAssembler {
    len: usize,
    slots: usize,
    drop: Option<RxDrop>,
}

impl RxAssembler {
    /// Take the next response of the packet (its buffer id already checked
    /// as posted) for a frame buffer of `cap` bytes.
    pub fn push(&mut self, rsp: &NetifRxResponse, cap: usize) -> RxStep {
        self.slots += 1;
        let offset = usize::from(rsp.offset);
        let mut copy = None;
        if self.drop.is_none() {
            if rsp.status < 0 {
                self.drop = Some(RxDrop::Status(rsp.status));
            } else if offset + rsp.status as usize > PAGE {
                self.drop = Some(RxDrop::PastPage);
            } else if self.slots > RX_SLOTS_MAX {
                self.drop = Some(RxDrop::TooManySlots);
            } else if self.len + rsp.status as usize > FRAME_MAX.min(cap) {
                self.drop = Some(RxDrop::TooLong);
            } else {
                copy = Some(RxCopy { offset, len: rsp.status as usize, at: self.len });
                self.len += rsp.status as usize;
            }
        }
        // Extra-info slots were not negotiated (no GSO, no hash): a flag
        // for one does not make this code read the next slot as one.
        let more = rsp.flags & NETRXF_MORE_DATA != 0 && rsp.flags & NETRXF_EXTRA_INFO == 0;
        if more {
            return RxStep { copy, end: None };
        }
        let end = match self.drop {
            Some(d) => Err(d),
            None if self.len == 0 => Err(RxDrop::Empty),
            None => Ok(self.len),
        };
        *self = RxAssembler::default();
        RxStep { copy, end: Some(end) }
    }

    /// Whether a packet is half received.
    pub fn in_packet(&self) -> bool {
        self.slots > 0
    }
}

/// FNV-1a 32's offset basis.
pub const FNV_OFFSET: u32 = 0x811c_9dc5;
const FNV_PRIME: u32 = 0x0100_0193;

/// FNV-1a 32 of `bytes`, continuing from `hash` ([`FNV_OFFSET`] to start).
pub fn fnv1a(hash: u32, bytes: &[u8]) -> u32 {
    bytes.iter().fold(hash, |h, &b| (h ^ u32::from(b)).wrapping_mul(FNV_PRIME))
}

/// Byte `i` of the test transfer's pattern: byte `i % 8` of a
/// splitmix64 of `i / 8`, so no stretch of it repeats and a lost,
/// repeated or reordered segment changes the checksum (a pattern built
/// from shifts and sums of `i` left FNV-1a's low 24 bits unchanged over
/// 64 MiB).
pub fn pattern_byte(i: u64) -> u8 {
    let mut z = (i / 8).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> (8 * (i % 8))) as u8
}

/// Fill `buf` with the pattern's bytes from `offset`.
pub fn fill_pattern(offset: u64, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = pattern_byte(offset + i as u64);
    }
}

/// A stream of `total` bytes of the pattern being sent: how far it is and
/// the FNV-1a of what has gone (the TCP senders of the guest and dom0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PatternStream {
    /// Bytes the stream carries.
    pub total: u64,
    /// Bytes handed out so far.
    pub queued: u64,
    /// Their FNV-1a 32.
    pub fnv1a: u32,
}

impl PatternStream {
    /// A stream of `total` bytes, none sent.
    pub fn new(total: u64) -> PatternStream {
        PatternStream { total, queued: 0, fnv1a: FNV_OFFSET }
    }

    /// Fill the start of `buf` with the next bytes (no more than are
    /// left): how many.
    pub fn fill(&mut self, buf: &mut [u8]) -> usize {
        let n = (buf.len() as u64).min(self.total - self.queued) as usize;
        fill_pattern(self.queued, &mut buf[..n]);
        self.fnv1a = fnv1a(self.fnv1a, &buf[..n]);
        self.queued += n as u64;
        n
    }

    /// Whether every byte has been handed out.
    pub fn done(&self) -> bool {
        self.queued == self.total
    }
}

/// `bytes` in `us` microseconds as MiB/s: whole part and hundredths
/// (integers only: the guests have no floating point).
pub fn mib_per_s(bytes: u64, us: u64) -> (u64, u64) {
    let centi = u128::from(bytes) * 100 * 1_000_000 / (u128::from(us.max(1)) << 20);
    let centi = u64::try_from(centi).unwrap_or(u64::MAX);
    (centi / 100, centi % 100)
}

#[cfg(test)]
mod tests;
