//! The wire: one request parsed from bytes, replies built as bytes.
//!
//! Owns framing (the 16-byte `xsd_sockmsg` header and a payload of at most
//! `XENSTORE_PAYLOAD_MAX`), xenstored's argument splitting (`get_strings`,
//! `onearg`) and the reply forms. Invariant: nothing here panics on any
//! input; a length past the maximum is a `Drop` (xenstored marks such a
//! connection corrupt), everything else becomes a request or needs more
//! bytes.
#![forbid(unsafe_code)]

use alloc::vec::Vec;
use xen_public::io::xs_wire::{XENSTORE_PAYLOAD_MAX, XS_ERROR, XS_WATCH_EVENT, XsdSockmsg, xsd_error_name};
use zerocopy::{FromBytes, IntoBytes};

use super::Errno;

/// Header size.
pub const HDR: usize = core::mem::size_of::<XsdSockmsg>();

/// One request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// Its header.
    pub hdr: XsdSockmsg,
    /// Exactly `hdr.len` bytes.
    pub payload: &'a [u8],
}

/// What the front of a byte stream holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// Not a whole message yet.
    Incomplete,
    /// Unrecoverable framing: drop the connection.
    Drop,
    /// A request and the bytes it took.
    Msg(Request<'a>, usize),
}

/// Parse the message at the front of `bytes`.
pub fn parse(bytes: &[u8]) -> Frame<'_> {
    let Ok((hdr, rest)) = XsdSockmsg::read_from_prefix(bytes) else { return Frame::Incomplete };
    if hdr.len > XENSTORE_PAYLOAD_MAX {
        return Frame::Drop;
    }
    let len = hdr.len as usize;
    match rest.get(..len) {
        Some(payload) => Frame::Msg(Request { hdr, payload }, HDR + len),
        None => Frame::Incomplete,
    }
}

/// xenstored's `get_strings`: the NUL-terminated strings in order (bytes
/// after the last NUL are not a string).
pub fn strings(payload: &[u8]) -> Vec<&[u8]> {
    let mut v: Vec<&[u8]> = payload.split(|&b| b == 0).collect();
    v.pop();
    v
}

/// xenstored's `onearg`: the payload must be one string ending in its
/// only NUL.
pub fn onearg(payload: &[u8]) -> Option<&[u8]> {
    match payload.iter().position(|&b| b == 0) {
        Some(i) if i + 1 == payload.len() => Some(&payload[..i]),
        _ => None,
    }
}

/// A reply to `req` of the same type with `payload`.
pub fn reply(req: &XsdSockmsg, payload: &[u8]) -> Vec<u8> {
    frame(XsdSockmsg { type_: req.type_, req_id: req.req_id, tx_id: req.tx_id, len: payload.len() as u32 }, payload)
}

/// `"OK\0"`, xenstored's `send_ack`.
pub fn ack(req: &XsdSockmsg) -> Vec<u8> {
    reply(req, b"OK\0")
}

/// An `XS_ERROR` reply naming `errno` (EINVAL if the table lacks it, as
/// xenstored's `send_error`).
pub fn error(req: &XsdSockmsg, errno: Errno) -> Vec<u8> {
    let name = i32::try_from(errno).ok().and_then(xsd_error_name).unwrap_or("EINVAL");
    let mut p = Vec::from(name.as_bytes());
    p.push(0);
    frame(XsdSockmsg { type_: XS_ERROR, req_id: req.req_id, tx_id: req.tx_id, len: p.len() as u32 }, &p)
}

/// An `XS_WATCH_EVENT`: `path\0token\0`, req_id and tx_id 0.
pub fn watch_event(path: &[u8], token: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(path.len() + token.len() + 2);
    p.extend_from_slice(path);
    p.push(0);
    p.extend_from_slice(token);
    p.push(0);
    frame(XsdSockmsg { type_: XS_WATCH_EVENT, req_id: 0, tx_id: 0, len: p.len() as u32 }, &p)
}

fn frame(hdr: XsdSockmsg, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HDR + payload.len());
    out.extend_from_slice(hdr.as_bytes());
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use xen_public::io::xs_wire::XS_READ;

    fn msg(type_: u32, len: u32, payload: &[u8]) -> Vec<u8> {
        frame(XsdSockmsg { type_, req_id: 9, tx_id: 0, len }, payload)
    }

    #[test]
    fn a_whole_message_parses_and_reports_its_length() {
        let m = msg(XS_READ, 3, b"/a\0extra");
        let Frame::Msg(r, used) = parse(&m) else { panic!() };
        assert_eq!((r.hdr.type_, r.hdr.req_id, r.payload, used), (XS_READ, 9, &b"/a\0"[..], 19));
    }

    #[test]
    fn short_header_or_payload_is_incomplete() {
        assert_eq!(parse(&[1, 2, 3]), Frame::Incomplete);
        assert_eq!(parse(&msg(XS_READ, 10, b"/a")), Frame::Incomplete);
    }

    #[test]
    fn payload_length_past_the_maximum_drops_the_connection() {
        assert_eq!(parse(&msg(XS_READ, XENSTORE_PAYLOAD_MAX + 1, b"")), Frame::Drop);
        assert_eq!(parse(&msg(XS_READ, u32::MAX, b"")), Frame::Drop);
        assert!(matches!(parse(&msg(XS_READ, XENSTORE_PAYLOAD_MAX, &[b'a'; 4096])), Frame::Msg(..)));
    }

    #[test]
    fn strings_ignore_bytes_after_the_last_nul_and_onearg_wants_exactly_one() {
        assert_eq!(strings(b"a\0b\0c"), [&b"a"[..], b"b"]);
        assert_eq!(strings(b"nonul"), Vec::<&[u8]>::new());
        assert_eq!(onearg(b"/a\0"), Some(&b"/a"[..]));
        assert_eq!(onearg(b"/a"), None);
        assert_eq!(onearg(b"/a\0b\0"), None);
        assert_eq!(onearg(b""), None);
    }

    #[test]
    fn error_replies_name_the_errno_and_unknown_ones_become_einval() {
        let h = XsdSockmsg { type_: XS_READ, req_id: 4, tx_id: 2, len: 0 };
        let e = error(&h, xen_public::errno::EACCES);
        assert_eq!(&e[HDR..], b"EACCES\0");
        assert_eq!(&e[..16], XsdSockmsg { type_: XS_ERROR, req_id: 4, tx_id: 2, len: 7 }.as_bytes());
        assert_eq!(&error(&h, 9999)[HDR..], b"EINVAL\0");
        assert_eq!(&watch_event(b"/p", b"tok")[HDR..], b"/p\0tok\0");
    }
}
