//! Xenbus device states: mirrors Xen 4.17's `public/io/xenbus.h`.
//!
//! The numbers a frontend and a backend write to their `state` nodes in
//! xenstore while they connect. Invariant: the values are Xen 4.17's
//! `enum xenbus_state`.

/// `enum xenbus_state`.
pub type XenbusState = u32;

/// `XenbusStateUnknown`.
pub const XENBUS_STATE_UNKNOWN: XenbusState = 0;
/// `XenbusStateInitialising`.
pub const XENBUS_STATE_INITIALISING: XenbusState = 1;
/// `XenbusStateInitWait`: waiting for the peer's details.
pub const XENBUS_STATE_INIT_WAIT: XenbusState = 2;
/// `XenbusStateInitialised`: own details published.
pub const XENBUS_STATE_INITIALISED: XenbusState = 3;
/// `XenbusStateConnected`.
pub const XENBUS_STATE_CONNECTED: XenbusState = 4;
/// `XenbusStateClosing`: the device is going away.
pub const XENBUS_STATE_CLOSING: XenbusState = 5;
/// `XenbusStateClosed`.
pub const XENBUS_STATE_CLOSED: XenbusState = 6;
/// `XenbusStateReconfiguring`.
pub const XENBUS_STATE_RECONFIGURING: XenbusState = 7;
/// `XenbusStateReconfigured`.
pub const XENBUS_STATE_RECONFIGURED: XenbusState = 8;

#[cfg(test)]
mod tests {
    use super::*;

    /// ABI rule: the handshake states run Unknown 0 .. Closed 6, then
    /// Reconfiguring 7 and Reconfigured 8.
    #[test]
    fn states_are_xens() {
        assert_eq!(
            [
                XENBUS_STATE_UNKNOWN,
                XENBUS_STATE_INITIALISING,
                XENBUS_STATE_INIT_WAIT,
                XENBUS_STATE_INITIALISED,
                XENBUS_STATE_CONNECTED,
                XENBUS_STATE_CLOSING,
                XENBUS_STATE_CLOSED,
                XENBUS_STATE_RECONFIGURING,
                XENBUS_STATE_RECONFIGURED
            ],
            [0, 1, 2, 3, 4, 5, 6, 7, 8]
        );
    }
}
