//! XenbusState helpers for split drivers: a frontend or backend publishes
//! its `enum xenbus_state` (Xen's numbers, `xen_public::io::xenbus`) in
//! `<dir>/state` and waits for the other end's through a watch, as
//! Linux's `xenbus_switch_state` / `xenbus_read_driver_state` do.
//!
//! Invariant: a state node that is missing or not a number reads as
//! `XenbusStateUnknown` (Linux's rule); waiting is bounded by the caller's
//! patience, and only events with this module's token are taken from the
//! client's queue.
#![forbid(unsafe_code)]

use super::{Client, Port, XBT_NIL, frame};
use xen_public::errno::{EEXIST, ENOENT};
use xen_public::io::byte_ring::RingMem;
use xen_public::io::xs_wire::{XS_READ, XS_WRITE};

pub use xen_public::io::xenbus::*;

/// The token of the watch [`wait_for_state`] sets.
pub const STATE_TOKEN: &str = "xenbus-state";

/// Xen's name of a state (`XenbusStateConnected`...).
pub fn state_name(s: XenbusState) -> &'static str {
    const NAMES: [&str; 9] =
        ["Unknown", "Initialising", "InitWait", "Initialised", "Connected", "Closing", "Closed", "Reconfiguring", "Reconfigured"];
    NAMES.get(s as usize).copied().unwrap_or("Invalid")
}

/// The state a node's text names: Unknown unless a number up to
/// `XenbusStateReconfigured`.
pub fn parse_state(text: &[u8]) -> XenbusState {
    frame::parse_u32(text).filter(|&s| s <= XENBUS_STATE_RECONFIGURED).unwrap_or(XENBUS_STATE_UNKNOWN)
}

/// Write `state` to `<dir>/state`.
pub fn switch_state<M: RingMem, P: Port>(c: &mut Client<M, P>, dir: &str, state: XenbusState) -> Result<(), i64> {
    let mut digits = [0u8; 10];
    let mut ok = [0u8; 4];
    c.request(XS_WRITE, XBT_NIL, &[frame::arg(dir)?, b"/state\0", frame::fmt_u32(state, &mut digits)], &mut ok).map(|_| ())
}

/// The state in `<dir>/state` (Unknown if it is missing or not a state).
pub fn read_state<M: RingMem, P: Port>(c: &mut Client<M, P>, dir: &str) -> Result<XenbusState, i64> {
    let mut text = [0u8; 16];
    match c.request(XS_READ, XBT_NIL, &[frame::arg(dir)?, b"/state\0"], &mut text) {
        Ok(n) => Ok(parse_state(&text[..n])),
        Err(e) if e == -ENOENT || e == -super::ERANGE => Ok(XENBUS_STATE_UNKNOWN),
        Err(e) => Err(e),
    }
}

/// Wait up to `patience` ns until `<otherend>/state` reads `wanted`,
/// through a watch on it (removed again before returning); `-ETIMEDOUT`
/// if it never came.
pub fn wait_for_state<M: RingMem, P: Port>(c: &mut Client<M, P>, otherend: &str, wanted: XenbusState, patience: u64) -> Result<(), i64> {
    let mut path: heapless::String<256> = heapless::String::new();
    path.push_str(otherend).and_then(|()| path.push_str("/state")).map_err(|_| -xen_public::errno::E2BIG)?;
    match c.watch(&path, STATE_TOKEN) {
        Ok(()) => {}
        Err(e) if e == -EEXIST => {}
        Err(e) => return Err(e),
    }
    let deadline = c.port_mut().now().saturating_add(patience);
    let r = loop {
        match read_state(c, otherend) {
            Ok(s) if s == wanted => break Ok(()),
            Ok(_) => {}
            Err(e) => break Err(e),
        }
        let left = deadline.saturating_sub(c.port_mut().now());
        let mut ev = [0u8; super::EVENT_MAX];
        if let Err(e) = c.wait_watch_event(Some(STATE_TOKEN), &mut ev, left) {
            break Err(e);
        }
    };
    let _ = c.unwatch(&path, STATE_TOKEN);
    r
}
