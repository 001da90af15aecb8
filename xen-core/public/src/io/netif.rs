//! The network device protocol: mirrors Xen 4.17's `public/io/netif.h`.
//!
//! Holds the transmit and receive request/response formats, their flag
//! bits (`NETTXF_*`, `NETRXF_*`), the extra-info descriptor (its union kept
//! as bytes with typed accessors), the status codes and the rings' slot
//! counts. Invariant: every structure has exactly the size and field offsets
//! Xen 4.17 gives it (a tx request is 12 bytes, an extra-info 8), checked at
//! compile time.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::ring;
use crate::union_bytes;

/// `XEN_NETIF_NR_SLOTS_MIN`: slots a backend must accept for one packet.
pub const XEN_NETIF_NR_SLOTS_MIN: u32 = 18;
/// `XEN_NETIF_MAX_TX_SIZE`: the largest packet a tx request may describe.
pub const XEN_NETIF_MAX_TX_SIZE: u32 = 0xffff;

/// `NETTXF_csum_blank`: the protocol checksum is to be filled in.
pub const NETTXF_CSUM_BLANK: u16 = 1 << 0;
/// `NETTXF_data_validated`: the checksum has been validated.
pub const NETTXF_DATA_VALIDATED: u16 = 1 << 1;
/// `NETTXF_more_data`: the packet continues in the next request.
pub const NETTXF_MORE_DATA: u16 = 1 << 2;
/// `NETTXF_extra_info`: extra-info descriptors follow.
pub const NETTXF_EXTRA_INFO: u16 = 1 << 3;

/// `NETRXF_data_validated`: the checksum has been validated.
pub const NETRXF_DATA_VALIDATED: u16 = 1 << 0;
/// `NETRXF_csum_blank`: the protocol checksum is blank.
pub const NETRXF_CSUM_BLANK: u16 = 1 << 1;
/// `NETRXF_more_data`: the packet continues in the next response.
pub const NETRXF_MORE_DATA: u16 = 1 << 2;
/// `NETRXF_extra_info`: extra-info descriptors follow.
pub const NETRXF_EXTRA_INFO: u16 = 1 << 3;
/// `NETRXF_gso_prefix`: the packet has a GSO prefix (deprecated).
pub const NETRXF_GSO_PREFIX: u16 = 1 << 4;

/// `XEN_NETIF_EXTRA_TYPE_NONE`: never used.
pub const XEN_NETIF_EXTRA_TYPE_NONE: u8 = 0;
/// `XEN_NETIF_EXTRA_TYPE_GSO`: [`NetifExtraInfoGso`].
pub const XEN_NETIF_EXTRA_TYPE_GSO: u8 = 1;
/// `XEN_NETIF_EXTRA_TYPE_MCAST_ADD`: [`NetifExtraInfoMcast`].
pub const XEN_NETIF_EXTRA_TYPE_MCAST_ADD: u8 = 2;
/// `XEN_NETIF_EXTRA_TYPE_MCAST_DEL`: [`NetifExtraInfoMcast`].
pub const XEN_NETIF_EXTRA_TYPE_MCAST_DEL: u8 = 3;
/// `XEN_NETIF_EXTRA_TYPE_HASH`: [`NetifExtraInfoHash`].
pub const XEN_NETIF_EXTRA_TYPE_HASH: u8 = 4;
/// `XEN_NETIF_EXTRA_TYPE_MAX`: one past the last type.
pub const XEN_NETIF_EXTRA_TYPE_MAX: u8 = 5;
/// `XEN_NETIF_EXTRA_FLAG_MORE`: another extra-info descriptor follows.
pub const XEN_NETIF_EXTRA_FLAG_MORE: u8 = 1 << 0;

/// `XEN_NETIF_GSO_TYPE_NONE`.
pub const XEN_NETIF_GSO_TYPE_NONE: u8 = 0;
/// `XEN_NETIF_GSO_TYPE_TCPV4`.
pub const XEN_NETIF_GSO_TYPE_TCPV4: u8 = 1;
/// `XEN_NETIF_GSO_TYPE_TCPV6`.
pub const XEN_NETIF_GSO_TYPE_TCPV6: u8 = 2;

/// `NETIF_RSP_DROPPED`: the packet was dropped.
pub const NETIF_RSP_DROPPED: i16 = -2;
/// `NETIF_RSP_ERROR`.
pub const NETIF_RSP_ERROR: i16 = -1;
/// `NETIF_RSP_OKAY`.
pub const NETIF_RSP_OKAY: i16 = 0;
/// `NETIF_RSP_NULL`: no response (the slot held an extra-info descriptor).
pub const NETIF_RSP_NULL: i16 = 1;

/// `struct netif_tx_request`: one fragment of a packet to send.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifTxRequest {
    /// Grant of the page holding the data.
    pub gref: u32,
    /// Offset of the data in the page.
    pub offset: u16,
    /// `NETTXF_*`.
    pub flags: u16,
    /// Echoed in the response.
    pub id: u16,
    /// This fragment's length, or (first fragment) the packet's.
    pub size: u16,
}
const _: () = assert!(core::mem::size_of::<NetifTxRequest>() == 12);
const _: () = assert!(core::mem::offset_of!(NetifTxRequest, offset) == 4);
const _: () = assert!(core::mem::offset_of!(NetifTxRequest, flags) == 6);
const _: () = assert!(core::mem::offset_of!(NetifTxRequest, id) == 8);
const _: () = assert!(core::mem::offset_of!(NetifTxRequest, size) == 10);

/// `struct netif_tx_response`.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifTxResponse {
    /// The request's `id`.
    pub id: u16,
    /// `NETIF_RSP_*`.
    pub status: i16,
}
const _: () = assert!(core::mem::size_of::<NetifTxResponse>() == 4);

/// `struct netif_rx_request`: a page offered for a received packet.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifRxRequest {
    /// Echoed in the response.
    pub id: u16,
    /// Padding; zero.
    pub pad: u16,
    /// Grant of the page.
    pub gref: u32,
}
const _: () = assert!(core::mem::size_of::<NetifRxRequest>() == 8);
const _: () = assert!(core::mem::offset_of!(NetifRxRequest, gref) == 4);

/// `struct netif_rx_response`.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifRxResponse {
    /// The request's `id`.
    pub id: u16,
    /// Offset of the data in the page.
    pub offset: u16,
    /// `NETRXF_*`.
    pub flags: u16,
    /// Bytes received if >= 0, else `NETIF_RSP_*`.
    pub status: i16,
}
const _: () = assert!(core::mem::size_of::<NetifRxResponse>() == 8);
const _: () = assert!(core::mem::offset_of!(NetifRxResponse, flags) == 4);
const _: () = assert!(core::mem::offset_of!(NetifRxResponse, status) == 6);

/// `gso` member of `netif_extra_info.u`.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifExtraInfoGso {
    /// Maximum payload of each segment.
    pub size: u16,
    /// `XEN_NETIF_GSO_TYPE_*`.
    pub type_: u8,
    /// Padding; zero.
    pub pad: u8,
    /// GSO features (none defined; zero).
    pub features: u16,
}
const _: () = assert!(core::mem::size_of::<NetifExtraInfoGso>() == 6);
const _: () = assert!(core::mem::offset_of!(NetifExtraInfoGso, features) == 4);

/// `mcast` member of `netif_extra_info.u`.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifExtraInfoMcast {
    /// The multicast MAC address.
    pub addr: [u8; 6],
}
const _: () = assert!(core::mem::size_of::<NetifExtraInfoMcast>() == 6);

/// `hash` member of `netif_extra_info.u`.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifExtraInfoHash {
    /// `_XEN_NETIF_CTRL_HASH_TYPE_*` bit number.
    pub type_: u8,
    /// `XEN_NETIF_CTRL_HASH_ALGORITHM_*`.
    pub algorithm: u8,
    /// The hash value, as bytes.
    pub value: [u8; 4],
}
const _: () = assert!(core::mem::size_of::<NetifExtraInfoHash>() == 6);

/// `struct netif_extra_info`: a descriptor in a tx or rx ring slot carrying
/// GSO, multicast or hash information; the union `u` is kept as bytes.
#[repr(C, align(2))]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifExtraInfo {
    /// `XEN_NETIF_EXTRA_TYPE_*`.
    pub type_: u8,
    /// `XEN_NETIF_EXTRA_FLAG_*`.
    pub flags: u8,
    /// The union `u` (gso / mcast / hash), as bytes.
    pub u: [u8; 6],
}
const _: () = assert!(core::mem::size_of::<NetifExtraInfo>() == 8);
const _: () = assert!(core::mem::align_of::<NetifExtraInfo>() == 2);
const _: () = assert!(core::mem::offset_of!(NetifExtraInfo, u) == 2);

impl NetifExtraInfo {
    /// `u.gso`.
    pub fn gso(&self) -> NetifExtraInfoGso {
        union_bytes::read(&self.u)
    }
    /// Store `u.gso`.
    pub fn set_gso(&mut self, v: NetifExtraInfoGso) {
        union_bytes::write(&mut self.u, &v);
    }
    /// `u.mcast`.
    pub fn mcast(&self) -> NetifExtraInfoMcast {
        union_bytes::read(&self.u)
    }
    /// Store `u.mcast`.
    pub fn set_mcast(&mut self, v: NetifExtraInfoMcast) {
        union_bytes::write(&mut self.u, &v);
    }
    /// `u.hash`.
    pub fn hash(&self) -> NetifExtraInfoHash {
        union_bytes::read(&self.u)
    }
    /// Store `u.hash`.
    pub fn set_hash(&mut self, v: NetifExtraInfoHash) {
        union_bytes::write(&mut self.u, &v);
    }
}

/// Slots in a one-page tx ring (`__CONST_RING_SIZE(netif_tx, 4096)`).
pub const NETIF_TX_RING_SIZE: u32 = ring::ring_size(4096, core::mem::size_of::<NetifTxRequest>());
const _: () = assert!(core::mem::size_of::<NetifTxResponse>() <= core::mem::size_of::<NetifTxRequest>());
const _: () = assert!(NETIF_TX_RING_SIZE == 256);
/// Slots in a one-page rx ring (`__CONST_RING_SIZE(netif_rx, 4096)`).
pub const NETIF_RX_RING_SIZE: u32 = ring::ring_size(4096, core::mem::size_of::<NetifRxRequest>());
const _: () = assert!(core::mem::size_of::<NetifRxResponse>() <= core::mem::size_of::<NetifRxRequest>());
const _: () = assert!(NETIF_RX_RING_SIZE == 256);

#[cfg(test)]
mod tests {
    use super::*;

    /// ABI rule: a tx request is {u32 gref, u16 offset @4, u16 flags @6, u16
    /// id @8, u16 size @10}, 12 bytes.
    #[test]
    fn tx_request_fields_at_xen_offsets() {
        let bytes = [0x20, 0, 0, 0, 0x40, 0, 0x05, 0, 0x07, 0, 0xdc, 0x05];
        let r = NetifTxRequest::read_from_bytes(&bytes).unwrap();
        assert_eq!(r, NetifTxRequest { gref: 0x20, offset: 0x40, flags: NETTXF_CSUM_BLANK | NETTXF_MORE_DATA, id: 7, size: 1500 });
        assert_eq!(r.as_bytes(), &bytes);
    }

    /// ABI rule: extra-info is {u8 type, u8 flags, 6-byte union @2}; gso is
    /// {u16 size, u8 type, u8 pad, u16 features}, so gso.type sits at byte 4.
    #[test]
    fn extra_info_gso_union_at_byte_2() {
        let mut e = NetifExtraInfo { type_: XEN_NETIF_EXTRA_TYPE_GSO, flags: XEN_NETIF_EXTRA_FLAG_MORE, u: [0; 6] };
        e.set_gso(NetifExtraInfoGso { size: 1448, type_: XEN_NETIF_GSO_TYPE_TCPV4, pad: 0, features: 0 });
        let b = e.as_bytes();
        assert_eq!(b, &[1, 1, 0xa8, 0x05, 1, 0, 0, 0]);
        let back = NetifExtraInfo::read_from_bytes(b).unwrap();
        assert_eq!(back.gso().size, 1448);
        assert_eq!(back.mcast().addr, [0xa8, 0x05, 1, 0, 0, 0], "mcast aliases the same six bytes");
    }

    /// ABI rule: rx responses carry a signed status (bytes or `NETIF_RSP_*`) at byte 6.
    #[test]
    fn rx_response_status_is_signed() {
        let r = NetifRxResponse { id: 1, offset: 0, flags: NETRXF_DATA_VALIDATED, status: NETIF_RSP_DROPPED };
        assert_eq!(r.as_bytes(), &[1, 0, 0, 0, 1, 0, 0xfe, 0xff]);
    }
}
