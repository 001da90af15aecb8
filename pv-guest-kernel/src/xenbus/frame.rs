//! The guest's half of the xenstore wire, as pure functions over byte
//! slices: building a request header from its payload parts, checking a
//! reply header, mapping an `XS_ERROR` reply's errno name, splitting a
//! watch event, and the decimal numbers xenstore carries as text.
//!
//! Invariant: nothing here indexes past a slice or panics on any input; a
//! header is accepted only with `len <= XENSTORE_PAYLOAD_MAX`, a request
//! only if its payload fits that bound too.
#![forbid(unsafe_code)]

use xen_public::errno::{E2BIG, EINVAL};
use xen_public::io::xs_wire::{XENSTORE_PAYLOAD_MAX, XsdSockmsg, xsd_error_num};
use zerocopy::FromBytes;

/// Bytes of the `xsd_sockmsg` header.
pub const HDR: usize = core::mem::size_of::<XsdSockmsg>();

/// The header of a request whose payload is `parts` concatenated; `-E2BIG`
/// if that payload exceeds `XENSTORE_PAYLOAD_MAX`.
pub fn request_header(type_: u32, req_id: u32, tx_id: u32, parts: &[&[u8]]) -> Result<XsdSockmsg, i64> {
    let len = parts.iter().try_fold(0usize, |n, p| n.checked_add(p.len())).ok_or(-E2BIG)?;
    if len > XENSTORE_PAYLOAD_MAX as usize {
        return Err(-E2BIG);
    }
    Ok(XsdSockmsg { type_, req_id, tx_id, len: len as u32 })
}

/// A path, token or other string argument: it must not hold a NUL, which
/// would split the arguments differently on xenstored's side (`-EINVAL`).
pub fn arg(s: &str) -> Result<&[u8], i64> {
    if s.as_bytes().contains(&0) { Err(-EINVAL) } else { Ok(s.as_bytes()) }
}

/// The header at the front of 16 received bytes, or `None` if it claims a
/// payload longer than `XENSTORE_PAYLOAD_MAX` (the stream is then
/// untrustworthy: Xen's xenstored marks such a connection corrupt).
pub fn reply_header(bytes: &[u8; HDR]) -> Option<XsdSockmsg> {
    let (h, _) = XsdSockmsg::read_from_prefix(bytes).ok()?;
    (h.len <= XENSTORE_PAYLOAD_MAX).then_some(h)
}

/// The negated errno of an `XS_ERROR` reply's payload (`"ENOENT\0"`):
/// Xen's value for a name in `xsd_errors[]`, `-EINVAL` for anything else
/// (as Linux's xenbus does for a name it does not know).
pub fn error_errno(payload: &[u8]) -> i64 {
    let name = payload.strip_suffix(&[0]).unwrap_or(payload);
    core::str::from_utf8(name).ok().and_then(xsd_error_num).map_or(-EINVAL, |e| -i64::from(e))
}

/// A watch event's payload `path\0token\0` split in two; `None` unless it
/// is exactly two NUL-terminated UTF-8 strings.
pub fn watch_event(payload: &[u8]) -> Option<(&str, &str)> {
    let body = payload.strip_suffix(&[0])?;
    let i = body.iter().position(|&b| b == 0)?;
    let (path, token) = (&body[..i], &body[i + 1..]);
    if token.contains(&0) {
        return None;
    }
    Some((core::str::from_utf8(path).ok()?, core::str::from_utf8(token).ok()?))
}

/// The names in a DIRECTORY reply (`a\0b\0`); a last name without its NUL
/// still counts, an empty reply has none.
pub fn names(payload: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = payload.strip_suffix(&[0]).unwrap_or(payload);
    body.split(|&b| b == 0).filter(|_| !payload.is_empty())
}

/// A decimal number as xenstore writes it (surrounding NULs and spaces
/// allowed, as `strtoul` would skip); `None` on anything else or overflow.
pub fn parse_u32(text: &[u8]) -> Option<u32> {
    let t = text.strip_suffix(&[0]).unwrap_or(text).trim_ascii();
    if t.is_empty() {
        return None;
    }
    t.iter().try_fold(0u32, |n, &b| if b.is_ascii_digit() { n.checked_mul(10)?.checked_add(u32::from(b - b'0')) } else { None })
}

/// `n` in decimal, in `buf`; the digits are the returned slice.
pub fn fmt_u32(n: u32, buf: &mut [u8; 10]) -> &[u8] {
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}
