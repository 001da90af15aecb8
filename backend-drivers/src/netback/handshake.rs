//! The vif's part of the xenbus handshake ([`BackendDevice`] for the
//! generic [`Backend`](crate::xenbus_backend::Backend) machine): Linux's
//! `netback_probe` offer, and `connect`/`connect_data_rings`/
//! `read_xenbus_vif_flags` reading the frontend's keys
//! (drivers/net/xen-netback/xenbus.c), minus what this backend does not
//! implement: no GSO, no IPv6 checksum offload, no multicast control, no
//! split event channels, no control ring, one queue (no
//! `multi-queue-max-queues`, so the frontend writes its keys at the top of
//! its directory), no XDP headroom.
//!
//! Invariant: only a frontend that asks for what was offered gets a ring
//! mapped: two grant refs, one event channel, one queue, rx-copy and rx
//! notifications (`request-rx-copy` = 1, `feature-rx-notify` = 1).
//! Anything else is a [`Fatal`] (an `error` node and Closing), never a
//! panic; an unreadable or malformed value likewise.
#![forbid(unsafe_code)]
#![allow(clippy::result_large_err)]

use crate::xenbus_backend::BackendDevice;
use frontend_drivers::xenbus_store::{Fatal, StoreRead, Writes, put, read_bool, read_u32, require_u32};
use xen_public::errno::{EINVAL, EOPNOTSUPP};

/// The xenstore keys of `io/netif.h` this handshake uses.
pub mod keys {
    /// Frontend: grant of the tx ring page.
    pub const TX_RING_REF: &str = "tx-ring-ref";
    /// Frontend: grant of the rx ring page.
    pub const RX_RING_REF: &str = "rx-ring-ref";
    /// Frontend: the one event channel for both rings.
    pub const EVENT_CHANNEL: &str = "event-channel";
    /// Frontend, split channels (not offered here).
    pub const EVENT_CHANNEL_TX: &str = "event-channel-tx";
    /// Frontend, split channels (not offered here).
    pub const EVENT_CHANNEL_RX: &str = "event-channel-rx";
    /// Frontend: queues asked for.
    pub const MULTI_QUEUE_NUM_QUEUES: &str = "multi-queue-num-queues";
    /// Frontend: it posts rx buffers for the backend to copy into.
    pub const REQUEST_RX_COPY: &str = "request-rx-copy";
    /// Frontend: it notifies when it posts rx requests.
    pub const FEATURE_RX_NOTIFY: &str = "feature-rx-notify";
    /// Both: scatter-gather (a packet over several slots).
    pub const FEATURE_SG: &str = "feature-sg";
    /// Frontend: it cannot take packets with a blank checksum.
    pub const FEATURE_NO_CSUM_OFFLOAD: &str = "feature-no-csum-offload";
    /// Backend offer.
    pub const FEATURE_GSO_TCPV4: &str = "feature-gso-tcpv4";
    /// Backend offer.
    pub const FEATURE_GSO_TCPV6: &str = "feature-gso-tcpv6";
    /// Backend offer.
    pub const FEATURE_IPV6_CSUM_OFFLOAD: &str = "feature-ipv6-csum-offload";
    /// Backend offer.
    pub const FEATURE_RX_COPY: &str = "feature-rx-copy";
    /// Backend offer.
    pub const FEATURE_RX_FLIP: &str = "feature-rx-flip";
    /// Backend offer.
    pub const FEATURE_MULTICAST_CONTROL: &str = "feature-multicast-control";
    /// Backend offer (not written: see [`Netback`]'s `probe_keys`).
    pub const FEATURE_DYNAMIC_MULTICAST_CONTROL: &str = "feature-dynamic-multicast-control";
    /// Backend offer.
    pub const FEATURE_SPLIT_EVENT_CHANNELS: &str = "feature-split-event-channels";
    /// Backend offer.
    pub const FEATURE_CTRL_RING: &str = "feature-ctrl-ring";
}

/// netback's offer (no configuration: everything not implemented is off).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Netback;

/// What the hotplug step found: nothing but that it is done (Linux waits
/// for `hotplug-status` = connected; dom0 has no scripts to run).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VifMedia;

/// The frontend's transport parameters, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VifRing {
    /// Grant of the tx ring page.
    pub tx_ring_ref: u32,
    /// Grant of the rx ring page.
    pub rx_ring_ref: u32,
    /// The frontend's event channel port, for both rings.
    pub evtchn: u32,
    /// `feature-sg`: an rx packet may span several slots.
    pub sg: bool,
    /// The frontend did not write `feature-no-csum-offload` = 1: rx
    /// packets may carry a blank checksum (`NETRXF_csum_blank`).
    pub csum_offload: bool,
    /// `feature-rx-notify` (always true once accepted).
    pub rx_notify: bool,
}

impl BackendDevice for Netback {
    type Media = VifMedia;
    type Ring = VifRing;

    /// `netback_probe`'s keys, each feature we lack written as 0, but for
    /// `feature-dynamic-multicast-control`: its 33 characters do not fit
    /// the store layer's keys (`KEY_MAX`), and a missing key reads as 0
    /// (netfront's `xenbus_read_unsigned(..., 0)`), so it is left out.
    fn probe_keys(&self, out: &mut Writes) {
        use keys::*;
        for (key, on) in [
            (FEATURE_SG, true),
            (FEATURE_GSO_TCPV4, false),
            (FEATURE_GSO_TCPV6, false),
            (FEATURE_IPV6_CSUM_OFFLOAD, false),
            (FEATURE_RX_COPY, true),
            (FEATURE_RX_FLIP, false),
            (FEATURE_MULTICAST_CONTROL, false),
            (FEATURE_SPLIT_EVENT_CHANNELS, false),
            (FEATURE_CTRL_RING, false),
        ] {
            put(out, key, format_args!("{}", u32::from(on)));
        }
    }

    /// `connect` (queue count), `read_xenbus_vif_flags`, then
    /// `connect_data_rings`, in Linux's order.
    fn read_frontend<S: StoreRead + ?Sized>(&self, store: &mut S, fe: &str) -> Result<VifRing, Fatal> {
        use keys::*;
        match read_u32(store, fe, MULTI_QUEUE_NUM_QUEUES)? {
            None | Some(1) => {}
            Some(n) => return Err(Fatal::new(EINVAL, format_args!("guest requested {n} queues, exceeding the maximum of 1."))),
        }
        // read_xenbus_vif_flags: no rx-copy is -EOPNOTSUPP (rx-flip is gone).
        if !read_bool(store, fe, REQUEST_RX_COPY, false)? {
            return Err(Fatal::new(EOPNOTSUPP, format_args!("{fe}/request-rx-copy: only rx-copy is supported")));
        }
        // Linux 3.x-4.x: "feature-rx-notify is mandatory" (later kernels
        // poll instead; this backend waits for the frontend's events).
        if !read_bool(store, fe, FEATURE_RX_NOTIFY, false)? {
            return Err(Fatal::new(EINVAL, format_args!("feature-rx-notify is mandatory")));
        }
        let sg = read_bool(store, fe, FEATURE_SG, false)?;
        let csum_offload = !read_bool(store, fe, FEATURE_NO_CSUM_OFFLOAD, false)?;
        // connect_data_rings.
        let tx_ring_ref = require_u32(store, fe, TX_RING_REF)?;
        let rx_ring_ref = require_u32(store, fe, RX_RING_REF)?;
        // Linux tries event-channel-tx/-rx first; they were not offered.
        for split in [EVENT_CHANNEL_TX, EVENT_CHANNEL_RX] {
            if read_u32(store, fe, split)?.is_some() {
                return Err(Fatal::new(EINVAL, format_args!("{fe}/{split}: split event channels were not offered")));
            }
        }
        let evtchn = require_u32(store, fe, EVENT_CHANNEL)?;
        Ok(VifRing { tx_ring_ref, rx_ring_ref, evtchn, sg, csum_offload, rx_notify: true })
    }

    /// Nothing: Linux's `connect` writes no keys before Connected.
    fn connect_keys(&self, _media: &VifMedia, _ring: &VifRing, _out: &mut Writes) {}
}

/// Attach the back rings to the frontend's mapped tx and rx ring pages as
/// Linux's `xenvif_map_frontend_data_rings` (drivers/net/xen-netback/
/// netback.c) does: `BACK_RING_ATTACH` at each shared `rsp_prod` (a
/// reconnecting frontend's ring need not start at 0), refused (Linux:
/// `-EIO`) if `req_prod - rsp_prod` exceeds the ring's size.
#[allow(clippy::type_complexity)]
pub fn attach_data_rings<P: crate::ring::RingPages>(
    tx: P,
    rx: P,
) -> Result<(super::tx::TxBackRing<P>, super::rx::RxBackRing<P>), crate::ring::RingError> {
    Ok((super::tx::TxBackRing::attach_at_rsp_prod(tx)?, super::rx::RxBackRing::attach_at_rsp_prod(rx)?))
}
