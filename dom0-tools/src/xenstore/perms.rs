//! Node permissions: an owner and an ACL, as xenstored keeps them.
//!
//! Owns the parsing and formatting of the wire form (`"n0\0r1\0"`: a
//! letter n/r/w/b and a domid per entry, the first entry naming the owner
//! and the default for domains not listed) and `perm_for_conn`, the one
//! access rule. Invariant: a [`Perms`] always has at least one entry.
#![forbid(unsafe_code)]

use alloc::vec::Vec;
use xen_public::errno::EINVAL;

use super::{DomId, Errno};

/// `XS_PERM_NONE`.
pub const PERM_NONE: u8 = 0x00;
/// `XS_PERM_READ`.
pub const PERM_READ: u8 = 0x01;
/// `XS_PERM_WRITE`.
pub const PERM_WRITE: u8 = 0x02;
/// `XS_PERM_OWNER`: only `perm_for_conn` grants it (never on the wire).
pub const PERM_OWNER: u8 = 0x08;
/// Xen's `quota_nb_perms_per_node`: ACL entries an unprivileged domain
/// may set (xenstored_core.c:109, checked in do_set_perms: ENOSPC).
pub const MAX_PERMS_PER_NODE: usize = 5;

/// One ACL entry: a domain and its `PERM_READ`/`PERM_WRITE` bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Perm {
    /// The domain.
    pub id: DomId,
    /// `PERM_*` bits.
    pub bits: u8,
}

/// A node's permissions: `0` is the owner (and the default), then the ACL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Perms(Vec<Perm>);

impl Perms {
    /// Owned by `owner`, nobody else has access (`"n<owner>"`).
    pub fn owned_by(owner: DomId) -> Perms {
        Perms(alloc::vec![Perm { id: owner, bits: PERM_NONE }])
    }

    /// The owner.
    pub fn owner(&self) -> DomId {
        self.0[0].id
    }

    /// All entries, owner first.
    pub fn entries(&self) -> &[Perm] {
        &self.0
    }

    /// The same perms with `owner` as owner (xenstored's create_node for
    /// an unprivileged creator).
    pub fn with_owner(mut self, owner: DomId) -> Perms {
        self.0[0].id = owner;
        self
    }

    /// Parse NUL-separated entries (`xs_strings_to_perms`): EINVAL for an
    /// empty list, a bad letter or a bad domid.
    pub fn parse<'a>(strings: impl Iterator<Item = &'a [u8]>) -> Result<Perms, Errno> {
        let v = strings.map(parse_one).collect::<Result<Vec<_>, _>>()?;
        if v.is_empty() { Err(EINVAL) } else { Ok(Perms(v)) }
    }

    /// The wire form: each entry as letter + decimal domid + NUL.
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for p in &self.0 {
            out.push(letter(p.bits));
            out.extend_from_slice(alloc::format!("{}", p.id).as_bytes());
            out.push(0);
        }
        out
    }

    /// Forget `domid`: entries naming it go, and a node it owned passes
    /// to dom0 (xenstored's domain_adjust_node_perms after a release).
    pub fn forget(&mut self, domid: DomId) {
        self.forget_to(domid, 0);
    }

    /// [`Perms::forget`], giving what `domid` owned to `heir`.
    pub fn forget_to(&mut self, domid: DomId, heir: DomId) {
        if self.0[0].id == domid {
            self.0[0].id = heir;
        }
        let owner = self.0[0];
        self.0.retain(|p| p.id != domid);
        if self.0.first() != Some(&owner) {
            self.0.insert(0, owner);
        }
    }
}

fn parse_one(s: &[u8]) -> Result<Perm, Errno> {
    let (&l, digits) = s.split_first().ok_or(EINVAL)?;
    let bits = match l {
        b'n' => PERM_NONE,
        b'r' => PERM_READ,
        b'w' => PERM_WRITE,
        b'b' => PERM_READ | PERM_WRITE,
        _ => return Err(EINVAL),
    };
    let id = core::str::from_utf8(digits).ok().and_then(|d| d.parse::<DomId>().ok()).ok_or(EINVAL)?;
    if digits.first().is_some_and(|c| !c.is_ascii_digit()) {
        return Err(EINVAL);
    }
    Ok(Perm { id, bits })
}

fn letter(bits: u8) -> u8 {
    match bits & (PERM_READ | PERM_WRITE) {
        PERM_READ => b'r',
        PERM_WRITE => b'w',
        0 => b'n',
        _ => b'b',
    }
}

/// xenstored's `perm_for_conn`: dom0 and the owner get read, write and
/// owner; otherwise the ACL entry naming `conn`, else the owner entry's
/// bits (the default).
pub fn perm_for_conn(conn: DomId, perms: &Perms) -> u8 {
    if conn == 0 || perms.owner() == conn {
        return PERM_READ | PERM_WRITE | PERM_OWNER;
    }
    let e = perms.0[1..].iter().find(|p| p.id == conn).unwrap_or(&perms.0[0]);
    e.bits & (PERM_READ | PERM_WRITE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &[u8]) -> Result<Perms, Errno> {
        Perms::parse(s.split(|&b| b == 0).filter(|x| !x.is_empty()))
    }

    #[test]
    fn wire_form_round_trips_letters_and_domids() {
        let perms = p(b"n0\0r1\0w2\0b3\0").unwrap();
        assert_eq!(perms.to_wire(), b"n0\0r1\0w2\0b3\0");
        assert_eq!(perms.owner(), 0);
    }

    #[test]
    fn bad_letters_domids_and_empty_lists_are_einval() {
        for bad in [&b"x0\0"[..], b"r\0", b"r-1\0", b"r+1\0", b"r70000\0", b"r1a\0", b""] {
            assert_eq!(p(bad), Err(EINVAL), "{bad:?}");
        }
    }

    #[test]
    fn dom0_and_owner_get_everything_others_their_entry_or_the_default() {
        let perms = p(b"r5\0w7\0n8\0").unwrap();
        assert_eq!(perm_for_conn(0, &perms), PERM_READ | PERM_WRITE | PERM_OWNER);
        assert_eq!(perm_for_conn(5, &perms), PERM_READ | PERM_WRITE | PERM_OWNER);
        assert_eq!(perm_for_conn(7, &perms), PERM_WRITE);
        assert_eq!(perm_for_conn(8, &perms), PERM_NONE);
        assert_eq!(perm_for_conn(9, &perms), PERM_READ, "default is the owner entry's bits");
    }

    #[test]
    fn forgetting_a_domain_hands_its_nodes_to_dom0_and_drops_its_entries() {
        let mut perms = p(b"n3\0r4\0b3\0").unwrap();
        perms.forget(3);
        assert_eq!(perms.to_wire(), b"n0\0r4\0");
        let mut other = p(b"n1\0r4\0").unwrap();
        other.forget(4);
        assert_eq!(other.to_wire(), b"n1\0");
    }
}
