//! What both ends of a split driver share on xenbus: the store they talk
//! through (a trait, so the handshake machines run against xenstored, the
//! guest's xenbus client, or a fake), the store operations a machine asks
//! for, and strict readers for the numbers the other end wrote.
//!
//! The machines (`xenbus_frontend` here, `xenbus_backend` in
//! backend-drivers) only *read* the store, through [`StoreRead`]; every
//! change they want comes back as a [`StoreOp`] that [`apply`] performs,
//! in order, with Linux's `xenbus_client.c` rules:
//! - `xenbus_switch_state`: the new state is written only if the device's
//!   `state` node still exists, so a device being torn down is never
//!   resurrected;
//! - `xenbus_dev_error`/`xenbus_dev_fatal`: the error text is
//!   `"<errno> <message>"` in `error/<nodename>/error` under the driver
//!   domain's home, and a fatal error switches the device to Closing.
//!
//! Invariants: everything is bounded (paths, values, messages and keys are
//! fixed-capacity strings; a node longer than its buffer is an error, not a
//! truncation); a value from the other end is a number only if it is all
//! decimal digits and fits its type (stricter than `sscanf("%u")`, which
//! takes `"-1"`, `" 7"` and `"12abc"`); a missing `state` node reads as
//! `XenbusStateUnknown` (`xenbus_read_driver_state`), but a present one that
//! is not a state is an error, never a guess.
#![forbid(unsafe_code)]
// `Fatal` carries its message inline (no heap in the guest), so its
// `Result`s are larger than clippy likes; they live only on the way up.
#![allow(clippy::result_large_err)]

use core::fmt::{self, Write as _};
use heapless::{String, Vec};
use xen_public::errno::{EINVAL, ENOENT};

pub use xen_public::io::xenbus::*;

/// Xen's `ERANGE` (`public/errno.h`): a node did not fit the reader's buffer.
pub const ERANGE: i64 = 34;
/// Longest path the machines build (device paths are far shorter).
pub const PATH_MAX: usize = 192;
/// Longest value written or read as a number or word.
pub const VALUE_MAX: usize = 64;
/// Longest key name (`ring-ref15`, `feature-max-indirect-segments`).
pub const KEY_MAX: usize = 32;
/// Longest error message kept.
pub const MSG_MAX: usize = 160;
/// Most keys one step of a machine writes.
pub const WRITES_MAX: usize = 24;
/// Most actions one step of a machine returns.
pub const ACTIONS_MAX: usize = 32;

/// An absolute store path.
pub type Path = String<PATH_MAX>;
/// A node's value.
pub type Value = String<VALUE_MAX>;
/// A key under a device directory.
pub type Key = String<KEY_MAX>;
/// Keys to write under the device's own directory, in order.
pub type Writes = Vec<(Key, Value), WRITES_MAX>;

/// Reading the store: all a handshake machine may do to it directly.
pub trait StoreRead {
    /// Read `path` into `buf`: its length, `Err(-ENOENT)` if it does not
    /// exist, `Err(-ERANGE)` if it is longer than `buf`, or another
    /// `-errno` from the store.
    fn read(&mut self, path: &str, buf: &mut [u8]) -> Result<usize, i64>;
}

/// The rest of the store, used by [`apply`] for a machine's [`StoreOp`]s.
pub trait Store: StoreRead {
    /// Write `value` to `path` (creating it and its parents).
    fn write(&mut self, path: &str, value: &[u8]) -> Result<(), i64>;
    /// Remove `path` and everything under it.
    fn rm(&mut self, path: &str) -> Result<(), i64>;
    /// Set a watch on `path` (it fires once at once, then on every change
    /// at or under `path`).
    fn watch(&mut self, path: &str, token: &str) -> Result<(), i64>;
    /// Remove a watch.
    fn unwatch(&mut self, path: &str, token: &str) -> Result<(), i64>;
}

/// `a/b` as a [`Path`], or `None` if it would not fit.
pub fn join(a: &str, b: &str) -> Option<Path> {
    let mut p = Path::new();
    p.push_str(a).ok()?;
    p.push('/').ok()?;
    p.push_str(b).ok()?;
    Some(p)
}

/// A short string from `fmt::Arguments`, cut at its capacity.
pub fn text<const N: usize>(args: fmt::Arguments) -> String<N> {
    let mut s = String::new();
    let _ = s.write_fmt(args);
    s
}

/// Where one device's nodes are, as Linux's `struct xenbus_device` knows
/// them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceNodes {
    /// The driver domain's home, `/local/domain/<domid>`.
    pub home: Path,
    /// The device directory relative to `home`: `device/vbd/51712` for a
    /// frontend, `backend/vbd/<fe domid>/51712` for a backend.
    pub nodename: Path,
    /// The other end's device directory (absolute).
    pub otherend: Path,
    /// The token of the watch on `<otherend>/state`.
    pub token: Key,
}

impl DeviceNodes {
    /// The nodes of a device; `None` if a path or the token is too long.
    pub fn new(home: &str, nodename: &str, otherend: &str, token: &str) -> Option<Self> {
        let mut d = DeviceNodes { home: Path::new(), nodename: Path::new(), otherend: Path::new(), token: Key::new() };
        d.home.push_str(home).ok()?;
        d.nodename.push_str(nodename).ok()?;
        d.otherend.push_str(otherend).ok()?;
        d.token.push_str(token).ok()?;
        d.error_node()?;
        Some(d)
    }

    /// The device's own directory, `<home>/<nodename>`.
    pub fn dir(&self) -> Option<Path> {
        join(&self.home, &self.nodename)
    }

    /// Where `xenbus_dev_error` writes: `<home>/error/<nodename>/error`.
    pub fn error_node(&self) -> Option<Path> {
        let e = join(&self.home, "error")?;
        let e = join(&e, &self.nodename)?;
        join(&e, "error")
    }
}

/// An error that closes the device (`xenbus_dev_fatal`): a positive Xen
/// errno and what was being done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fatal {
    /// Xen's errno value (positive).
    pub errno: i64,
    /// What failed, e.g. `reading <dir>/event-channel`.
    pub msg: String<MSG_MAX>,
}

impl Fatal {
    /// A fatal error with a formatted message.
    pub fn new(errno: i64, args: fmt::Arguments) -> Self {
        Fatal { errno, msg: text(args) }
    }

    /// The error node's text, as `xenbus_va_dev_error` formats it.
    pub fn node_text(&self) -> String<{ MSG_MAX + 24 }> {
        text(format_args!("{} {}", self.errno, self.msg))
    }
}

/// A change to the store a machine asks for; [`apply`] performs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreOp {
    /// Write `<dir>/<key>`.
    Write(Key, Value),
    /// `xenbus_switch_state`: write `<dir>/state`, unless it is gone.
    SwitchState(XenbusState),
    /// `xenbus_dev_error`: write the error node.
    Error(Fatal),
    /// Watch `<otherend>/state` with the device's token.
    WatchOtherend,
    /// Remove that watch.
    UnwatchOtherend,
    /// Remove the device's own directory (the device is gone).
    RmDir,
}

/// Perform `op` for the device at `dev`. Errors are the store's `-errno`;
/// `-E2BIG`-style overlong paths cannot happen, as [`DeviceNodes::new`]
/// checked them, but are answered with `-EINVAL` all the same.
pub fn apply<S: Store + ?Sized>(store: &mut S, dev: &DeviceNodes, op: &StoreOp) -> Result<(), i64> {
    let dir = dev.dir().ok_or(-EINVAL)?;
    match op {
        StoreOp::Write(key, value) => store.write(&join(&dir, key).ok_or(-EINVAL)?, value.as_bytes()),
        StoreOp::SwitchState(s) => switch_state(store, &dir, *s),
        StoreOp::Error(f) => store.write(&dev.error_node().ok_or(-EINVAL)?, f.node_text().as_bytes()),
        StoreOp::WatchOtherend => store.watch(&join(&dev.otherend, "state").ok_or(-EINVAL)?, &dev.token),
        StoreOp::UnwatchOtherend => store.unwatch(&join(&dev.otherend, "state").ok_or(-EINVAL)?, &dev.token),
        StoreOp::RmDir => match store.rm(&dir) {
            Err(e) if e == -ENOENT => Ok(()),
            r => r,
        },
    }
}

/// `__xenbus_switch_state`: write the state only where a `state` node
/// still exists (xenbus_client.c: "if the node has gone, we don't write to
/// it, as the device will be tearing down").
fn switch_state<S: Store + ?Sized>(store: &mut S, dir: &str, state: XenbusState) -> Result<(), i64> {
    let path = join(dir, "state").ok_or(-EINVAL)?;
    let mut buf = [0u8; 16];
    match store.read(&path, &mut buf) {
        Err(e) if e == -ENOENT => return Ok(()),
        _ => {}
    }
    let mut digits = Value::new();
    let _ = write!(digits, "{state}");
    store.write(&path, digits.as_bytes())
}

/// A strictly decimal number: 1 to 20 digits, nothing else, no overflow.
pub fn parse_decimal(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 20 {
        return None;
    }
    text.iter().try_fold(0u64, |n, &c| if c.is_ascii_digit() { n.checked_mul(10)?.checked_add(u64::from(c - b'0')) } else { None })
}

/// Read `<dir>/<key>` into `buf`: `None` if it does not exist; a node too
/// long for `buf`, or a store failure, is fatal.
pub fn read_node<'b, S: StoreRead + ?Sized>(store: &mut S, dir: &str, key: &str, buf: &'b mut [u8]) -> Result<Option<&'b [u8]>, Fatal> {
    let path = join(dir, key).ok_or_else(|| Fatal::new(EINVAL, format_args!("path {dir}/{key} too long")))?;
    match store.read(&path, buf) {
        Ok(n) => Ok(buf.get(..n)),
        Err(e) if e == -ENOENT => Ok(None),
        Err(e) if e == -ERANGE => Err(Fatal::new(EINVAL, format_args!("reading {path}: value too long"))),
        Err(e) => Err(Fatal::new(e.saturating_neg(), format_args!("reading {path}"))),
    }
}

/// Read a decimal `<dir>/<key>` no larger than `max`: `None` if missing,
/// fatal if it is not a number or is larger.
pub fn read_number<S: StoreRead + ?Sized>(store: &mut S, dir: &str, key: &str, max: u64) -> Result<Option<u64>, Fatal> {
    let mut buf = [0u8; VALUE_MAX];
    match read_node(store, dir, key, &mut buf)? {
        None => Ok(None),
        Some(t) => match parse_decimal(t) {
            Some(n) if n <= max => Ok(Some(n)),
            _ => Err(Fatal::new(EINVAL, format_args!("reading {dir}/{key}: not a number up to {max}"))),
        },
    }
}

/// Read a `u32` node: `None` if missing.
pub fn read_u32<S: StoreRead + ?Sized>(store: &mut S, dir: &str, key: &str) -> Result<Option<u32>, Fatal> {
    Ok(read_number(store, dir, key, u64::from(u32::MAX))?.and_then(|n| u32::try_from(n).ok()))
}

/// Read a `u64` node: `None` if missing.
pub fn read_u64<S: StoreRead + ?Sized>(store: &mut S, dir: &str, key: &str) -> Result<Option<u64>, Fatal> {
    read_number(store, dir, key, u64::MAX)
}

/// Read a `u32` node that must be there.
pub fn require_u32<S: StoreRead + ?Sized>(store: &mut S, dir: &str, key: &str) -> Result<u32, Fatal> {
    read_u32(store, dir, key)?.ok_or_else(|| Fatal::new(EINVAL, format_args!("reading {dir}/{key}: missing")))
}

/// Read a boolean node (`blkif.h`: "Values: 0/1"); missing is `default`.
pub fn read_bool<S: StoreRead + ?Sized>(store: &mut S, dir: &str, key: &str, default: bool) -> Result<bool, Fatal> {
    Ok(read_number(store, dir, key, 1)?.map_or(default, |n| n == 1))
}

/// The other end's state (`xenbus_read_driver_state`): Unknown if the node
/// is missing; fatal if it is there but not one of Xen's nine states.
pub fn read_state<S: StoreRead + ?Sized>(store: &mut S, otherend: &str) -> Result<XenbusState, Fatal> {
    let mut buf = [0u8; 16];
    match read_node(store, otherend, "state", &mut buf)? {
        None => Ok(XENBUS_STATE_UNKNOWN),
        Some(t) => match parse_decimal(t) {
            Some(n) if n <= u64::from(XENBUS_STATE_RECONFIGURED) => Ok(n as XenbusState),
            _ => Err(Fatal::new(EINVAL, format_args!("saw state {:?} at {otherend}", Bytes(t)))),
        },
    }
}

/// Bytes shown as text, non-printing ones escaped (for error messages about
/// what the other end wrote).
pub struct Bytes<'a>(pub &'a [u8]);

impl fmt::Debug for Bytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        for &b in self.0.iter().take(32) {
            if b.is_ascii_graphic() || b == b' ' { f.write_char(char::from(b))? } else { write!(f, "\\x{b:02x}")? }
        }
        f.write_char('"')
    }
}

/// Add `<key> = <value>` to `out` (dropped if `out` is full, which the
/// machines' fixed key sets never reach: see their tests).
pub fn put(out: &mut Writes, key: &str, value: fmt::Arguments) {
    let _ = out.push((text(format_args!("{key}")), text(value)));
}

/// Xen's name of a state, for messages.
pub fn state_name(s: XenbusState) -> &'static str {
    const NAMES: [&str; 9] =
        ["Unknown", "Initialising", "InitWait", "Initialised", "Connected", "Closing", "Closed", "Reconfiguring", "Reconfigured"];
    NAMES.get(s as usize).copied().unwrap_or("Invalid")
}

/// Key names of `io/blkif.h` both block ends use.
pub mod blkif_keys {
    /// Frontend: the sole ring page's grant (single-page ring).
    pub const RING_REF: &str = "ring-ref";
    /// Frontend: ring pages are `1 << ring-page-order`, granted as `ring-ref%u`.
    pub const RING_PAGE_ORDER: &str = "ring-page-order";
    /// Frontend: the ring's event channel.
    pub const EVENT_CHANNEL: &str = "event-channel";
    /// Frontend: the request layout (`XEN_IO_PROTO_ABI_*`).
    pub const PROTOCOL: &str = "protocol";
    /// Both: persistent grants offered/used.
    pub const FEATURE_PERSISTENT: &str = "feature-persistent";
    /// Frontend: queues asked for (default 1).
    pub const MULTI_QUEUE_NUM_QUEUES: &str = "multi-queue-num-queues";
    /// Backend: most queues offered.
    pub const MULTI_QUEUE_MAX_QUEUES: &str = "multi-queue-max-queues";
    /// Backend: largest ring order accepted.
    pub const MAX_RING_PAGE_ORDER: &str = "max-ring-page-order";
    /// Backend: segments an indirect request may carry.
    pub const FEATURE_MAX_INDIRECT_SEGMENTS: &str = "feature-max-indirect-segments";
    /// Backend: `BLKIF_OP_FLUSH_DISKCACHE` served.
    pub const FEATURE_FLUSH_CACHE: &str = "feature-flush-cache";
    /// Backend: `BLKIF_OP_WRITE_BARRIER` served.
    pub const FEATURE_BARRIER: &str = "feature-barrier";
    /// Backend: `BLKIF_OP_DISCARD` served.
    pub const FEATURE_DISCARD: &str = "feature-discard";
    /// Backend: discard extent size in bytes.
    pub const DISCARD_GRANULARITY: &str = "discard-granularity";
    /// Backend: offset of the first discard extent in bytes.
    pub const DISCARD_ALIGNMENT: &str = "discard-alignment";
    /// Backend: `BLKIF_DISCARD_SECURE` served.
    pub const DISCARD_SECURE: &str = "discard-secure";
    /// Backend: size in `sector-size` units.
    pub const SECTORS: &str = "sectors";
    /// Backend: `VDISK_*` bits.
    pub const INFO: &str = "info";
    /// Backend: logical block size.
    pub const SECTOR_SIZE: &str = "sector-size";
    /// Backend: physical block size.
    pub const PHYSICAL_SECTOR_SIZE: &str = "physical-sector-size";
    /// `XEN_IO_PROTO_ABI_X86_64` (`io/protocols.h`), the native layout here.
    pub const PROTO_X86_64: &str = "x86_64-abi";
    /// `XENBUS_MAX_RING_GRANT_ORDER` (Linux `xen/xenbus.h`): 16 ring pages.
    pub const MAX_RING_GRANT_ORDER: u32 = 4;
}

/// Key names of `io/netif.h` both network ends use.
pub mod netif_keys {
    /// Frontend: the tx ring page's grant (single queue).
    pub const TX_RING_REF: &str = "tx-ring-ref";
    /// Frontend: the rx ring page's grant.
    pub const RX_RING_REF: &str = "rx-ring-ref";
    /// Frontend: the one event channel of both rings.
    pub const EVENT_CHANNEL: &str = "event-channel";
    /// Frontend: receive by grant copy into pages the frontend posts.
    pub const REQUEST_RX_COPY: &str = "request-rx-copy";
    /// Frontend: it notifies the backend when it posts rx requests.
    pub const FEATURE_RX_NOTIFY: &str = "feature-rx-notify";
    /// Both: packets of several slots (`NETTXF_more_data`/`NETRXF_more_data`).
    pub const FEATURE_SG: &str = "feature-sg";
    /// Frontend: it neither sends blank checksums nor takes them.
    pub const FEATURE_NO_CSUM_OFFLOAD: &str = "feature-no-csum-offload";
    /// Frontend: TCPv4 segmentation offload wanted (0: no).
    pub const FEATURE_GSO_TCPV4: &str = "feature-gso-tcpv4";
    /// Backend: it can copy into posted rx pages (required by this frontend).
    pub const FEATURE_RX_COPY: &str = "feature-rx-copy";
    /// Frontend (written by the toolstack): the MAC, `xx:xx:xx:xx:xx:xx`.
    pub const MAC: &str = "mac";
    /// Backend (written by the toolstack from `ip=` of the vif spec): the
    /// guest's address(es), space separated.
    pub const IP: &str = "ip";
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xenbus_fake::FakeStore;

    /// xenbus rule (blkif.h "encoded in decimal"): only plain digits that
    /// fit are numbers; sscanf's leniencies are refused.
    #[test]
    fn numbers_are_plain_decimal() {
        assert_eq!(parse_decimal(b"0"), Some(0));
        assert_eq!(parse_decimal(b"18446744073709551615"), Some(u64::MAX));
        for bad in [&b""[..], b"-1", b" 7", b"7 ", b"12abc", b"+3", b"0x10", b"18446744073709551616", b"123456789012345678901", b"1\0"] {
            assert_eq!(parse_decimal(bad), None, "{:?}", Bytes(bad));
        }
    }

    /// `xenbus_read_driver_state` rule: a missing state is Unknown; a
    /// present one must be a state number (else fatal, not a guess).
    #[test]
    fn state_missing_is_unknown_and_garbage_is_fatal() {
        let mut s = FakeStore::new();
        assert_eq!(read_state(&mut s, "/fe"), Ok(XENBUS_STATE_UNKNOWN));
        s.write("/fe/state", b"4").unwrap();
        assert_eq!(read_state(&mut s, "/fe"), Ok(XENBUS_STATE_CONNECTED));
        for bad in [&b"9"[..], b"abc", b"", b"-1", b"4294967300"] {
            s.write("/fe/state", bad).unwrap();
            assert_eq!(read_state(&mut s, "/fe").map_err(|f| f.errno), Err(EINVAL));
        }
    }

    /// xenbus_client.c rule: switching state never recreates a removed
    /// device directory, and errors go to `error/<nodename>/error` as
    /// "<errno> <message>".
    #[test]
    fn switch_state_skips_removed_device_and_error_node_is_linuxs() {
        let dev = DeviceNodes::new("/local/domain/0", "backend/vbd/1/51712", "/local/domain/1/device/vbd/51712", "t").unwrap();
        let mut s = FakeStore::new();
        apply(&mut s, &dev, &StoreOp::SwitchState(XENBUS_STATE_CLOSED)).unwrap();
        assert_eq!(s.get("/local/domain/0/backend/vbd/1/51712/state"), None);
        s.write("/local/domain/0/backend/vbd/1/51712/state", b"1").unwrap();
        apply(&mut s, &dev, &StoreOp::SwitchState(XENBUS_STATE_INIT_WAIT)).unwrap();
        assert_eq!(s.get("/local/domain/0/backend/vbd/1/51712/state").as_deref(), Some("2"));
        apply(&mut s, &dev, &StoreOp::Error(Fatal::new(EINVAL, format_args!("reading x")))).unwrap();
        assert_eq!(s.get("/local/domain/0/error/backend/vbd/1/51712/error").as_deref(), Some("22 reading x"));
        apply(&mut s, &dev, &StoreOp::RmDir).unwrap();
        apply(&mut s, &dev, &StoreOp::RmDir).unwrap();
        assert_eq!(s.get("/local/domain/0/backend/vbd/1/51712/state"), None);
    }

    /// Bounded input rule: a node longer than the reader's buffer is an
    /// error (ERANGE from the store becomes fatal), never truncated.
    #[test]
    fn overlong_node_is_fatal() {
        let mut s = FakeStore::new();
        s.write("/fe/ring-ref", &[b'1'; 200]).unwrap();
        assert_eq!(read_u32(&mut s, "/fe", "ring-ref").map_err(|f| f.errno), Err(EINVAL));
        assert!(DeviceNodes::new("/a", &"x".repeat(PATH_MAX), "/b", "t").is_none());
    }
}
