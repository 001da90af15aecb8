//! The xenstore wire protocol: mirrors Xen 4.17's `public/io/xs_wire.h`.
//!
//! Holds the message types (`XS_*`), the 16-byte message header
//! [`XsdSockmsg`], the shared ring page [`XenstoreDomainInterface`], the
//! size limits, and the table of error names xenstored answers with.
//! Invariant: the structures have exactly the size and field offsets Xen
//! 4.17 gives them (checked at compile time) and the numbers and the error
//! table's order are Xen's.

use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

use crate::errno;

/// `enum xsd_sockmsg_type`: the value of [`XsdSockmsg::type_`].
pub type XsdSockmsgType = u32;

/// `XS_CONTROL`: daemon control commands.
pub const XS_CONTROL: XsdSockmsgType = 0;
/// `XS_DEBUG`: the old name of [`XS_CONTROL`].
pub const XS_DEBUG: XsdSockmsgType = XS_CONTROL;
/// `XS_DIRECTORY`: list a node's children.
pub const XS_DIRECTORY: XsdSockmsgType = 1;
/// `XS_READ`: read a node.
pub const XS_READ: XsdSockmsgType = 2;
/// `XS_GET_PERMS`: read a node's permissions.
pub const XS_GET_PERMS: XsdSockmsgType = 3;
/// `XS_WATCH`: watch a path with a token.
pub const XS_WATCH: XsdSockmsgType = 4;
/// `XS_UNWATCH`: remove a watch.
pub const XS_UNWATCH: XsdSockmsgType = 5;
/// `XS_TRANSACTION_START`: begin a transaction; answers its id.
pub const XS_TRANSACTION_START: XsdSockmsgType = 6;
/// `XS_TRANSACTION_END`: "T" commits, "F" aborts.
pub const XS_TRANSACTION_END: XsdSockmsgType = 7;
/// `XS_INTRODUCE`: tell xenstored about a domain's ring.
pub const XS_INTRODUCE: XsdSockmsgType = 8;
/// `XS_RELEASE`: forget a domain.
pub const XS_RELEASE: XsdSockmsgType = 9;
/// `XS_GET_DOMAIN_PATH`: a domain's home path.
pub const XS_GET_DOMAIN_PATH: XsdSockmsgType = 10;
/// `XS_WRITE`: write a node.
pub const XS_WRITE: XsdSockmsgType = 11;
/// `XS_MKDIR`: create a node.
pub const XS_MKDIR: XsdSockmsgType = 12;
/// `XS_RM`: remove a node and its children.
pub const XS_RM: XsdSockmsgType = 13;
/// `XS_SET_PERMS`: set a node's permissions.
pub const XS_SET_PERMS: XsdSockmsgType = 14;
/// `XS_WATCH_EVENT`: a fired watch (daemon to client).
pub const XS_WATCH_EVENT: XsdSockmsgType = 15;
/// `XS_ERROR`: an error reply; the payload is an errno name.
pub const XS_ERROR: XsdSockmsgType = 16;
/// `XS_IS_DOMAIN_INTRODUCED`.
pub const XS_IS_DOMAIN_INTRODUCED: XsdSockmsgType = 17;
/// `XS_RESUME`: a domain resumed; reset its state.
pub const XS_RESUME: XsdSockmsgType = 18;
/// `XS_SET_TARGET`: let a domain act on another's nodes.
pub const XS_SET_TARGET: XsdSockmsgType = 19;
/// `XS_RESET_WATCHES`: drop all of the caller's watches (20 was
/// `XS_RESTRICT`, removed).
pub const XS_RESET_WATCHES: XsdSockmsgType = 21;
/// `XS_DIRECTORY_PART`: list a node's children in parts.
pub const XS_DIRECTORY_PART: XsdSockmsgType = 22;
/// `XS_TYPE_COUNT`: number of message types.
pub const XS_TYPE_COUNT: XsdSockmsgType = 23;
/// `XS_INVALID`: never a valid type.
pub const XS_INVALID: XsdSockmsgType = 0xffff;

/// `XS_WRITE_NONE`.
pub const XS_WRITE_NONE: &str = "NONE";
/// `XS_WRITE_CREATE`.
pub const XS_WRITE_CREATE: &str = "CREATE";
/// `XS_WRITE_CREATE_EXCL`.
pub const XS_WRITE_CREATE_EXCL: &str = "CREATE|EXCL";

/// `XS_WATCH_PATH`: index of the path in a watch event's payload.
pub const XS_WATCH_PATH: u32 = 0;
/// `XS_WATCH_TOKEN`: index of the token in a watch event's payload.
pub const XS_WATCH_TOKEN: u32 = 1;

/// `xsd_errors[]`: the errno names xenstored sends in [`XS_ERROR`] replies,
/// with their values, in Xen's order (new ones are only ever appended).
pub const XSD_ERRORS: [(&str, i32); 16] = [
    ("EINVAL", errno::EINVAL as i32),
    ("EACCES", errno::EACCES as i32),
    ("EEXIST", errno::EEXIST as i32),
    ("EISDIR", errno::EISDIR as i32),
    ("ENOENT", errno::ENOENT as i32),
    ("ENOMEM", errno::ENOMEM as i32),
    ("ENOSPC", errno::ENOSPC as i32),
    ("EIO", errno::EIO as i32),
    ("ENOTEMPTY", errno::ENOTEMPTY as i32),
    ("ENOSYS", errno::ENOSYS as i32),
    ("EROFS", errno::EROFS as i32),
    ("EBUSY", errno::EBUSY as i32),
    ("EAGAIN", errno::EAGAIN as i32),
    ("EISCONN", errno::EISCONN as i32),
    ("E2BIG", errno::E2BIG as i32),
    ("EPERM", errno::EPERM as i32),
];

/// The name xenstored sends for `errnum`, if the table has it.
pub fn xsd_error_name(errnum: i32) -> Option<&'static str> {
    XSD_ERRORS.iter().find(|e| e.1 == errnum).map(|e| e.0)
}

/// The errno value of an error name from an [`XS_ERROR`] reply, if known.
pub fn xsd_error_num(name: &str) -> Option<i32> {
    XSD_ERRORS.iter().find(|e| e.0 == name).map(|e| e.1)
}

/// `struct xsd_sockmsg`: the header in front of every xenstore message.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XsdSockmsg {
    /// An `XS_*` type.
    pub type_: XsdSockmsgType,
    /// Request id, echoed in the reply.
    pub req_id: u32,
    /// Transaction id (0: none).
    pub tx_id: u32,
    /// Bytes of payload that follow.
    pub len: u32,
}
const _: () = assert!(core::mem::size_of::<XsdSockmsg>() == 16);
const _: () = assert!(core::mem::offset_of!(XsdSockmsg, req_id) == 4);
const _: () = assert!(core::mem::offset_of!(XsdSockmsg, tx_id) == 8);
const _: () = assert!(core::mem::offset_of!(XsdSockmsg, len) == 12);

/// `XENSTORE_RING_SIZE`: bytes in each direction of the ring page.
pub const XENSTORE_RING_SIZE: u32 = 1024;
/// `XENSTORE_RING_IDX`: a free-running ring index.
pub type XenstoreRingIdx = u32;

/// `MASK_XENSTORE_IDX`: the byte of a ring an index refers to.
pub const fn mask_xenstore_idx(idx: XenstoreRingIdx) -> usize {
    (idx & (XENSTORE_RING_SIZE - 1)) as usize
}

/// The `req` ring (guest to xenstored).
pub const REQ_RING: super::byte_ring::ByteRing = super::byte_ring::ByteRing {
    data: core::mem::offset_of!(XenstoreDomainInterface, req),
    size: XENSTORE_RING_SIZE,
    cons: core::mem::offset_of!(XenstoreDomainInterface, req_cons),
    prod: core::mem::offset_of!(XenstoreDomainInterface, req_prod),
};
/// The `rsp` ring (xenstored to guest: replies and watch events).
pub const RSP_RING: super::byte_ring::ByteRing = super::byte_ring::ByteRing {
    data: core::mem::offset_of!(XenstoreDomainInterface, rsp),
    size: XENSTORE_RING_SIZE,
    cons: core::mem::offset_of!(XenstoreDomainInterface, rsp_cons),
    prod: core::mem::offset_of!(XenstoreDomainInterface, rsp_prod),
};

/// `XENSTORE_PAYLOAD_MAX`: the longest payload a message may carry.
pub const XENSTORE_PAYLOAD_MAX: u32 = 4096;
/// `XENSTORE_ABS_PATH_MAX`: the longest absolute path.
pub const XENSTORE_ABS_PATH_MAX: u32 = 3072;
/// `XENSTORE_REL_PATH_MAX`: the longest relative path.
pub const XENSTORE_REL_PATH_MAX: u32 = 2048;

/// `XENSTORE_SERVER_FEATURE_RECONNECTION`: the server can reset the ring.
pub const XENSTORE_SERVER_FEATURE_RECONNECTION: u32 = 1;
/// `XENSTORE_SERVER_FEATURE_ERROR`: the page's `error` field is in use.
pub const XENSTORE_SERVER_FEATURE_ERROR: u32 = 2;
/// `XENSTORE_CONNECTED`: the steady state of `connection`.
pub const XENSTORE_CONNECTED: u32 = 0;
/// `XENSTORE_RECONNECT`: a reconnection is in progress.
pub const XENSTORE_RECONNECT: u32 = 1;
/// `XENSTORE_ERROR_NONE`.
pub const XENSTORE_ERROR_NONE: u32 = 0;
/// `XENSTORE_ERROR_COMM`: communication problem.
pub const XENSTORE_ERROR_COMM: u32 = 1;
/// `XENSTORE_ERROR_RINGIDX`: the ring indices were invalid.
pub const XENSTORE_ERROR_RINGIDX: u32 = 2;
/// `XENSTORE_ERROR_PROTO`: protocol violation (payload too long).
pub const XENSTORE_ERROR_PROTO: u32 = 3;

/// `struct xenstore_domain_interface`: the xenstore ring page.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenstoreDomainInterface {
    /// Requests to xenstored.
    pub req: [u8; XENSTORE_RING_SIZE as usize],
    /// Replies and watch events.
    pub rsp: [u8; XENSTORE_RING_SIZE as usize],
    /// Bytes of `req` consumed by xenstored.
    pub req_cons: XenstoreRingIdx,
    /// Bytes of `req` produced by the guest.
    pub req_prod: XenstoreRingIdx,
    /// Bytes of `rsp` consumed by the guest.
    pub rsp_cons: XenstoreRingIdx,
    /// Bytes of `rsp` produced by xenstored.
    pub rsp_prod: XenstoreRingIdx,
    /// `XENSTORE_SERVER_FEATURE_*` the server supports.
    pub server_features: u32,
    /// `XENSTORE_CONNECTED` or `XENSTORE_RECONNECT`.
    pub connection: u32,
    /// `XENSTORE_ERROR_*`.
    pub error: u32,
}
const _: () = assert!(core::mem::size_of::<XenstoreDomainInterface>() == 2076);
const _: () = assert!(core::mem::offset_of!(XenstoreDomainInterface, rsp) == 1024);
const _: () = assert!(core::mem::offset_of!(XenstoreDomainInterface, req_cons) == 2048);
const _: () = assert!(core::mem::offset_of!(XenstoreDomainInterface, req_prod) == 2052);
const _: () = assert!(core::mem::offset_of!(XenstoreDomainInterface, rsp_cons) == 2056);
const _: () = assert!(core::mem::offset_of!(XenstoreDomainInterface, rsp_prod) == 2060);
const _: () = assert!(core::mem::offset_of!(XenstoreDomainInterface, server_features) == 2064);
const _: () = assert!(core::mem::offset_of!(XenstoreDomainInterface, connection) == 2068);
const _: () = assert!(core::mem::offset_of!(XenstoreDomainInterface, error) == 2072);

impl Default for XenstoreDomainInterface {
    fn default() -> Self {
        Self::new_zeroed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ABI rule: the message header is four little-endian u32s {type,
    /// req_id, tx_id, len}.
    #[test]
    fn sockmsg_header_round_trips() {
        let m = XsdSockmsg { type_: XS_WRITE, req_id: 7, tx_id: 0, len: 12 };
        assert_eq!(m.as_bytes(), &[11, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 12, 0, 0, 0]);
        let (h, payload) = XsdSockmsg::read_from_prefix(b"\x10\0\0\0\x01\0\0\0\0\0\0\0\x07\0\0\0EINVAL\0").unwrap();
        assert_eq!((h.type_, h.req_id, h.len), (XS_ERROR, 1, 7));
        assert_eq!(payload, b"EINVAL\0");
    }

    /// ABI rule: the enum counts on from `XS_SET_TARGET` 19 past the removed
    /// 20 to `XS_RESET_WATCHES` 21, `XS_DIRECTORY_PART` 22, 23 types.
    #[test]
    fn message_type_numbers_are_xens() {
        assert_eq!((XS_DEBUG, XS_DIRECTORY, XS_WATCH_EVENT, XS_ERROR), (0, 1, 15, 16));
        assert_eq!((XS_SET_TARGET, XS_RESET_WATCHES, XS_DIRECTORY_PART, XS_TYPE_COUNT), (19, 21, 22, 23));
    }

    /// ABI rule: the ring page holds req[1024], rsp[1024], then the indices
    /// at 2048.. and server_features / connection / error at 2064 / 2068 /
    /// 2072; indices wrap modulo 1024.
    #[test]
    fn ring_page_fields_at_xen_offsets() {
        let mut page = std::vec![0u8; 4096];
        page[1024] = b'O';
        page[2052..2056].copy_from_slice(&5u32.to_le_bytes());
        page[2060..2064].copy_from_slice(&2u32.to_le_bytes());
        page[2064..2068].copy_from_slice(&XENSTORE_SERVER_FEATURE_RECONNECTION.to_le_bytes());
        page[2068..2072].copy_from_slice(&XENSTORE_RECONNECT.to_le_bytes());
        let (i, _) = XenstoreDomainInterface::read_from_prefix(&page).unwrap();
        assert_eq!((i.req_prod, i.rsp_prod, i.rsp[0]), (5, 2, b'O'));
        assert_eq!((i.server_features, i.connection, i.error), (1, 1, 0));
        assert_eq!(i.as_bytes(), &page[..2076]);
        assert_eq!(mask_xenstore_idx(1024 + 3), 3);
        assert_eq!(mask_xenstore_idx(u32::MAX), 1023);
    }

    /// ABI rule: error replies carry errno names from `xsd_errors[]`, whose
    /// first entry is EINVAL (22) and whose values are Xen's errno numbers.
    #[test]
    fn error_table_maps_names_and_numbers() {
        assert_eq!(XSD_ERRORS[0], ("EINVAL", 22));
        assert_eq!(xsd_error_num("EAGAIN"), Some(11));
        assert_eq!(xsd_error_num("EROFS"), Some(30));
        assert_eq!(xsd_error_name(17), Some("EEXIST"));
        assert_eq!(xsd_error_name(21), Some("EISDIR"));
        assert_eq!(xsd_error_name(1000), None);
        for (name, num) in XSD_ERRORS {
            assert_eq!(errno::name(i64::from(num)), name);
        }
    }

    /// ABI rule: `xenstore_domain_interface` is req[1024], rsp[1024], then
    /// req_cons, req_prod, rsp_cons, rsp_prod (u32) at 2048..2064; indices
    /// are masked by MASK_XENSTORE_IDX.
    #[test]
    fn req_and_rsp_rings_sit_where_xen_puts_them() {
        use crate::io::byte_ring::{RingMem, tests::page};
        let mut p = page();
        assert_eq!(REQ_RING.produce(&mut p, b"req"), 3);
        assert_eq!(RSP_RING.produce(&mut p, b"rsp"), 3);
        assert_eq!((&p.0[0..3], &p.0[1024..1027]), (&b"req"[..], &b"rsp"[..]));
        assert_eq!((p.load(2052), p.load(2060)), (3, 3), "req_prod, rsp_prod");
        let mut buf = [0u8; 8];
        assert_eq!(REQ_RING.consume(&mut p, &mut buf), 3);
        assert_eq!((p.load(2048), p.load(2056)), (3, 0), "req_cons moved, rsp_cons not");
    }
}
