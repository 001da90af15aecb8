//! xenbus in the guest: a xenstore client over the domain's store ring
//! page (`start_info.store_mfn`) and its event channel
//! (`start_info.store_evtchn`), with no heap.
//!
//! [`Client`] owns the page's request ring (it is the only producer) and
//! response ring (the only consumer). It sends one request at a time
//! (header, then the payload parts), and reads messages until the reply
//! with its `req_id` is complete: the reply's payload goes to the caller's
//! buffer, an `XS_ERROR` reply becomes `Err(-errno)` (Xen's value for the
//! name), `XS_WATCH_EVENT`s that arrive meanwhile are queued, and stale
//! replies are skipped. The frame parsing is in [`frame`]; the XenbusState
//! helpers for split drivers are in [`state`]; the live page and port are
//! in `live` (target only).
//!
//! Invariants: a reply's bytes land only inside the caller's buffer (a
//! longer reply is consumed to keep the stream in step, and refused with
//! `-ERANGE`); a header claiming more than `XENSTORE_PAYLOAD_MAX` marks
//! the connection broken (`-EIO` from then on) rather than being trusted;
//! every wait is bounded by the client's patience (`-ETIMEDOUT`), and one
//! call consumes a bounded number of messages, so a peer that never
//! answers, or never stops talking, cannot hold the guest forever.
#![forbid(unsafe_code)]

pub mod frame;
#[cfg(target_os = "none")]
pub mod live;
pub mod state;
#[cfg(test)]
mod tests;

use xen_public::errno::{EINVAL, EIO};
use xen_public::io::byte_ring::RingMem;
use xen_public::io::xs_wire::*;
use xen_public::trace_guest::GuestEvent;
use zerocopy::IntoBytes;

/// Xen's `ETIMEDOUT` (`xen/include/public/errno.h`): xenstored did not
/// answer in time.
pub const ETIMEDOUT: i64 = 110;
/// Xen's `ERANGE`: a reply did not fit the caller's buffer.
pub const ERANGE: i64 = 34;

/// `XBT_NIL`: no transaction.
pub const XBT_NIL: u32 = 0;
/// How long a request waits for xenstored by default (ns).
pub const PATIENCE_NS: u64 = 10_000_000_000;
/// Bytes of a queued watch event (`path\0token\0`); longer ones are
/// dropped (and counted).
pub const EVENT_MAX: usize = 256;
/// Watch events queued while no one asks for them; later ones are dropped
/// (and counted).
pub const EVENT_SLOTS: usize = 8;
/// Messages one pass over the response ring handles at most.
const MSGS_PER_PASS: usize = 32;
/// Bytes of an `XS_ERROR` name kept (the longest is `ENOTEMPTY`).
const ERR_MAX: usize = 16;

/// The event channel side of the connection, and time.
pub trait Port {
    /// Tell xenstored the rings moved (EVTCHNOP_send on the store port).
    fn notify(&mut self);
    /// Nanoseconds of system time.
    fn now(&mut self) -> u64;
    /// Sleep until the store port fires or `until` (or sooner: callers
    /// re-check the rings and the time).
    fn block(&mut self, until: u64);
    /// Record a xenbus event in the guest's trace (`crate::gtrace`); none
    /// by default.
    fn trace(&mut self, _event: GuestEvent) {}
}

/// A queued watch event: `path\0token\0`.
type Event = heapless::Vec<u8, EVENT_MAX>;

/// A fired watch, borrowed from the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchEvent<'a> {
    /// The node that changed (as the watch was registered: relative if it
    /// was).
    pub path: &'a str,
    /// The watch's token.
    pub token: &'a str,
}

/// Where a message's payload goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sink {
    /// The caller's buffer (the reply being waited for).
    Reply,
    /// The error-name buffer (an `XS_ERROR` for the request).
    Error,
    /// The event being assembled.
    Event,
    /// Nowhere: a stale reply.
    Discard,
}

/// The message being received.
struct Rx {
    hdr_buf: [u8; frame::HDR],
    hdr_got: usize,
    hdr: Option<XsdSockmsg>,
    got: u32,
    err: heapless::Vec<u8, ERR_MAX>,
    event: Event,
    event_too_long: bool,
}

impl Rx {
    const fn new() -> Rx {
        Rx { hdr_buf: [0; frame::HDR], hdr_got: 0, hdr: None, got: 0, err: heapless::Vec::new(), event: heapless::Vec::new(), event_too_long: false }
    }

    /// Begin receiving the payload of `hdr`.
    fn start(&mut self, hdr: XsdSockmsg) {
        self.hdr = Some(hdr);
        self.got = 0;
        self.err.clear();
        self.event.clear();
        self.event_too_long = false;
    }
}

/// A complete reply: its type and payload length.
#[derive(Clone, Copy)]
struct Done {
    type_: u32,
    len: usize,
}

/// A xenstore connection over ring memory `M` and port `P`.
pub struct Client<M: RingMem, P: Port> {
    mem: M,
    port: P,
    next_id: u32,
    patience: u64,
    broken: bool,
    rx: Rx,
    events: heapless::Vec<Event, EVENT_SLOTS>,
    dropped_events: u32,
}

impl<M: RingMem, P: Port> Client<M, P> {
    /// A client over a store page `mem` and its port.
    pub fn new(mem: M, port: P) -> Self {
        let rx = Rx::new();
        Client { mem, port, next_id: 1, patience: PATIENCE_NS, broken: false, rx, events: heapless::Vec::new(), dropped_events: 0 }
    }

    /// How long each request waits for xenstored (ns).
    pub fn set_patience(&mut self, ns: u64) {
        self.patience = ns;
    }

    /// Whether a protocol violation or a half-sent request broke the
    /// connection (every request then answers `-EIO`).
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Watch events dropped because the queue was full or one was too long
    /// or malformed.
    pub fn dropped_events(&self) -> u32 {
        self.dropped_events
    }

    /// Watch events queued.
    pub fn queued_events(&self) -> usize {
        self.events.len()
    }

    /// The port (for tests and the live glue).
    pub fn port_mut(&mut self) -> &mut P {
        &mut self.port
    }

    /// Send a request of `type_` in transaction `tx` whose payload is
    /// `parts` concatenated; the reply's payload goes to `out`. The reply's
    /// length, or `-errno`.
    pub fn request(&mut self, type_: u32, tx: u32, parts: &[&[u8]], out: &mut [u8]) -> Result<usize, i64> {
        if self.broken {
            return Err(-EIO);
        }
        let id = self.next_id;
        self.next_id = id.wrapping_add(1).max(1);
        let hdr = frame::request_header(type_, id, tx, parts)?;
        let deadline = self.port.now().saturating_add(self.patience);
        self.send_all(hdr.as_bytes(), deadline)?;
        for p in parts {
            self.send_all(p, deadline)?;
        }
        let len = hdr.len;
        self.port.trace(GuestEvent::XenbusRequest { type_, req_id: id, tx_id: tx, len });
        self.port.notify();
        loop {
            if let Some(r) = self.pump(Some(id), out) {
                // A refusal (or a broken stream) is traced as `XS_ERROR`
                // with no payload.
                let (t, n) = r.as_ref().map_or((XS_ERROR, 0), |d| (d.type_, d.len as u32));
                self.port.trace(GuestEvent::XenbusReply { type_: t, req_id: id, len: n });
                let done = r?;
                return if done.type_ == type_ { Ok(done.len) } else { Err(-EINVAL) };
            }
            if self.port.now() >= deadline {
                return Err(-ETIMEDOUT);
            }
            self.port.block(deadline);
        }
    }

    /// Put all of `bytes` on the request ring, waiting for room; a request
    /// left half-sent breaks the connection.
    fn send_all(&mut self, mut bytes: &[u8], deadline: u64) -> Result<(), i64> {
        while !bytes.is_empty() {
            let n = REQ_RING.produce(&mut self.mem, bytes);
            bytes = &bytes[n..];
            if n == 0 {
                self.port.notify();
                // Keep the response ring moving meanwhile (events, stale
                // replies), so xenstored is never stuck on a full one.
                if let Some(Err(e)) = self.pump(None, &mut []) {
                    return Err(e);
                }
                if self.port.now() >= deadline {
                    self.broken = true;
                    return Err(-ETIMEDOUT);
                }
                self.port.block(deadline);
            }
        }
        Ok(())
    }

    /// Consume what the response ring holds (at most [`MSGS_PER_PASS`]
    /// messages). `Some` when the reply to `want` is complete (or the
    /// stream broke); `None` when more must arrive first.
    fn pump(&mut self, want: Option<u32>, out: &mut [u8]) -> Option<Result<Done, i64>> {
        let mut moved = false;
        let r = self.pump_inner(want, out, &mut moved);
        if moved {
            self.port.notify();
        }
        r
    }

    fn pump_inner(&mut self, want: Option<u32>, out: &mut [u8], moved: &mut bool) -> Option<Result<Done, i64>> {
        for _ in 0..MSGS_PER_PASS {
            let hdr = match self.rx.hdr {
                Some(h) => h,
                None => {
                    let n = RSP_RING.consume(&mut self.mem, &mut self.rx.hdr_buf[self.rx.hdr_got..]);
                    *moved |= n > 0;
                    self.rx.hdr_got += n;
                    if self.rx.hdr_got < frame::HDR {
                        return None;
                    }
                    self.rx.hdr_got = 0;
                    let Some(h) = frame::reply_header(&self.rx.hdr_buf) else {
                        self.broken = true;
                        return Some(Err(-EIO));
                    };
                    self.rx.start(h);
                    h
                }
            };
            let sink = match hdr.type_ {
                XS_WATCH_EVENT => Sink::Event,
                _ if Some(hdr.req_id) != want => Sink::Discard,
                XS_ERROR => Sink::Error,
                _ => Sink::Reply,
            };
            if !self.take_payload(hdr.len, sink, out, moved) {
                return None;
            }
            self.rx.hdr = None;
            match sink {
                Sink::Event => self.queue_event(),
                Sink::Error => return Some(Err(frame::error_errno(&self.rx.err))),
                Sink::Reply if hdr.len as usize > out.len() => return Some(Err(-ERANGE)),
                Sink::Reply => return Some(Ok(Done { type_: hdr.type_, len: hdr.len as usize })),
                Sink::Discard => {}
            }
        }
        None
    }

    /// Read the current message's payload into `sink`; whether it is all
    /// in. Bytes that do not fit the sink are consumed and dropped.
    fn take_payload(&mut self, len: u32, sink: Sink, out: &mut [u8], moved: &mut bool) -> bool {
        let mut scratch = [0u8; 64];
        while self.rx.got < len {
            let got = self.rx.got as usize;
            let left = (len - self.rx.got) as usize;
            let n = if sink == Sink::Reply && got < out.len() {
                let end = out.len().min(got + left);
                RSP_RING.consume(&mut self.mem, &mut out[got..end])
            } else {
                let k = left.min(scratch.len());
                let n = RSP_RING.consume(&mut self.mem, &mut scratch[..k]);
                self.keep(sink, &scratch[..n]);
                n
            };
            if n == 0 {
                return false;
            }
            *moved = true;
            self.rx.got += n as u32;
        }
        true
    }

    /// Keep a chunk of an error name or an event; the rest is dropped.
    fn keep(&mut self, sink: Sink, chunk: &[u8]) {
        match sink {
            Sink::Error => {
                let room = ERR_MAX - self.rx.err.len();
                let _ = self.rx.err.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Sink::Event => {
                if self.rx.event.extend_from_slice(chunk).is_err() {
                    self.rx.event_too_long = true;
                }
            }
            Sink::Reply | Sink::Discard => {}
        }
    }

    /// Queue the event just received, if well formed and there is room.
    fn queue_event(&mut self) {
        let ev = core::mem::take(&mut self.rx.event);
        if self.rx.event_too_long || frame::watch_event(&ev).is_none() || self.events.push(ev).is_err() {
            self.dropped_events = self.dropped_events.saturating_add(1);
        }
    }

    /// Wait up to `patience` ns for a watch event (whose token is `token`,
    /// if given; others stay queued) and copy it into `buf`. `-ETIMEDOUT`
    /// if none came, `-ERANGE` (the event is dropped) if `buf` is too small.
    pub fn wait_watch_event<'b>(&mut self, token: Option<&str>, buf: &'b mut [u8], patience: u64) -> Result<WatchEvent<'b>, i64> {
        if self.broken {
            return Err(-EIO);
        }
        let deadline = self.port.now().saturating_add(patience);
        loop {
            if let Some(i) = self.find_event(token) {
                let ev = self.events.remove(i);
                let dst = buf.get_mut(..ev.len()).ok_or(-ERANGE)?;
                dst.copy_from_slice(&ev);
                let (path, token) = frame::watch_event(&buf[..ev.len()]).ok_or(-EINVAL)?;
                return Ok(WatchEvent { path, token });
            }
            if let Some(Err(e)) = self.pump(None, &mut []) {
                return Err(e);
            }
            if self.find_event(token).is_some() {
                continue;
            }
            if self.port.now() >= deadline {
                return Err(-ETIMEDOUT);
            }
            self.port.block(deadline);
        }
    }

    /// The first queued event (with `token`, if given).
    fn find_event(&self, token: Option<&str>) -> Option<usize> {
        self.events.iter().position(|e| frame::watch_event(e).is_some_and(|(_, t)| token.is_none_or(|want| want == t)))
    }

    /// The next watch event, waiting up to `patience` ns.
    pub fn next_watch_event<'b>(&mut self, buf: &'b mut [u8], patience: u64) -> Result<WatchEvent<'b>, i64> {
        self.wait_watch_event(None, buf, patience)
    }

    /// For tests of xenstored only (the hostile-client boot test): a fresh
    /// request id for a frame built by hand and sent with [`Self::send_raw`].
    pub fn next_req_id_for_tests(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = id.wrapping_add(1).max(1);
        id
    }

    /// For tests of xenstored only (the hostile-client boot test): put
    /// `bytes` on the request ring exactly as given, with no framing or
    /// length check, and notify. Does not wait for a reply (see
    /// [`Self::wait_reply`]); keeping the stream in step is the caller's
    /// business. A send that finds no room within the patience breaks the
    /// connection, as any half-sent request does.
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), i64> {
        if self.broken {
            return Err(-EIO);
        }
        let deadline = self.port.now().saturating_add(self.patience);
        self.send_all(bytes, deadline)?;
        self.port.notify();
        Ok(())
    }

    /// Wait up to `patience` ns for the reply to `req_id` (a frame sent
    /// with [`Self::send_raw`]): its type and length (the payload in
    /// `out`), `-errno` for an `XS_ERROR`, `-ETIMEDOUT` if none came.
    pub fn wait_reply(&mut self, req_id: u32, out: &mut [u8], patience: u64) -> Result<(u32, usize), i64> {
        if self.broken {
            return Err(-EIO);
        }
        let deadline = self.port.now().saturating_add(patience);
        loop {
            if let Some(r) = self.pump(Some(req_id), out) {
                return r.map(|d| (d.type_, d.len));
            }
            if self.port.now() >= deadline {
                return Err(-ETIMEDOUT);
            }
            self.port.block(deadline);
        }
    }

    /// For tests of xenstored only (the hostile-client boot test): the ring
    /// page itself, so a test can scribble on the indices. Nothing in the
    /// client is safe to use afterwards unless the test puts them back.
    pub fn ring_mem_for_tests(&mut self) -> &mut M {
        &mut self.mem
    }

    /// A request whose reply must be `OK`.
    fn ack(&mut self, type_: u32, tx: u32, parts: &[&[u8]]) -> Result<(), i64> {
        let mut ok = [0u8; 4];
        self.request(type_, tx, parts, &mut ok).map(|_| ())
    }

    /// XS_READ of `path` into `buf`; the value's length.
    pub fn read(&mut self, tx: u32, path: &str, buf: &mut [u8]) -> Result<usize, i64> {
        self.request(XS_READ, tx, &[frame::arg(path)?, b"\0"], buf)
    }

    /// XS_READ of a UTF-8 value.
    pub fn read_str<'b>(&mut self, tx: u32, path: &str, buf: &'b mut [u8]) -> Result<&'b str, i64> {
        let n = self.read(tx, path, buf)?;
        core::str::from_utf8(&buf[..n]).map_err(|_| -EINVAL)
    }

    /// XS_WRITE of `value` to `path`.
    pub fn write(&mut self, tx: u32, path: &str, value: &[u8]) -> Result<(), i64> {
        self.ack(XS_WRITE, tx, &[frame::arg(path)?, b"\0", value])
    }

    /// XS_MKDIR of `path`.
    pub fn mkdir(&mut self, tx: u32, path: &str) -> Result<(), i64> {
        self.ack(XS_MKDIR, tx, &[frame::arg(path)?, b"\0"])
    }

    /// XS_RM of `path` and everything below it.
    pub fn rm(&mut self, tx: u32, path: &str) -> Result<(), i64> {
        self.ack(XS_RM, tx, &[frame::arg(path)?, b"\0"])
    }

    /// XS_DIRECTORY of `path` into `buf` (`a\0b\0`; see [`frame::names`]).
    pub fn directory(&mut self, tx: u32, path: &str, buf: &mut [u8]) -> Result<usize, i64> {
        self.request(XS_DIRECTORY, tx, &[frame::arg(path)?, b"\0"], buf)
    }

    /// XS_GET_DOMAIN_PATH of `domid` into `buf`; the path's length
    /// (without its NUL).
    pub fn get_domain_path(&mut self, domid: u32, buf: &mut [u8]) -> Result<usize, i64> {
        let mut digits = [0u8; 10];
        let n = self.request(XS_GET_DOMAIN_PATH, XBT_NIL, &[frame::fmt_u32(domid, &mut digits), b"\0"], buf)?;
        Ok(buf[..n].strip_suffix(&[0]).map_or(n, <[u8]>::len))
    }

    /// XS_WATCH `path` with `token` (xenstored fires it once at once).
    pub fn watch(&mut self, path: &str, token: &str) -> Result<(), i64> {
        self.ack(XS_WATCH, XBT_NIL, &[frame::arg(path)?, b"\0", frame::arg(token)?, b"\0"])
    }

    /// XS_UNWATCH `path` with `token`.
    pub fn unwatch(&mut self, path: &str, token: &str) -> Result<(), i64> {
        self.ack(XS_UNWATCH, XBT_NIL, &[frame::arg(path)?, b"\0", frame::arg(token)?, b"\0"])
    }

    /// XS_TRANSACTION_START; the new transaction's id.
    pub fn transaction_start(&mut self) -> Result<u32, i64> {
        let mut id = [0u8; 16];
        let n = self.request(XS_TRANSACTION_START, XBT_NIL, &[b"\0"], &mut id)?;
        frame::parse_u32(&id[..n]).filter(|&t| t != XBT_NIL).ok_or(-EINVAL)
    }

    /// XS_TRANSACTION_END of `tx`: commit (`-EAGAIN` on a conflict: start
    /// again) or abort.
    pub fn transaction_end(&mut self, tx: u32, commit: bool) -> Result<(), i64> {
        self.ack(XS_TRANSACTION_END, tx, &[if commit { b"T" } else { b"F" }, b"\0"])
    }
}
