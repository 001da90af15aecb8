//! The malformed-message corpus: every class of hostile input a domU can
//! put on its xenstore ring, sent by domain 1 over the real ring path
//! ([`fuzz::World`]: dom0, attackers 1 and 3, bystander 2 with a node, a
//! watch and an open transaction). Each is answered with Xen 4.17's
//! `XS_ERROR` (the errno C xenstored gives, `xenstored_core.c`,
//! `_transaction.c`, `_watch.c`, `_domain.c`) or a dropped connection, and
//! after each the bystander's and dom0's nodes, watches and transactions
//! are unchanged and the bystander still gets correct answers, hears its
//! watch and commits its transaction. Each name states the rule checked.

use super::conn::Closed;
use super::fuzz::{BYSTANDER, Exchange, World, msg};
use super::*;
use xen_public::io::byte_ring::RingMem;
use zerocopy::IntoBytes;

const A: DomId = 1;

/// `bytes` from domain 1; the exchange (its replies are checked against
/// the framing model as they come).
fn attack(w: &mut World, bytes: &[u8]) -> Exchange {
    w.send(A, bytes).unwrap_or_else(|e| panic!("{e}"))
}

/// The answers' error names (`OK` for a success), in order.
fn answers(ex: &Exchange) -> Vec<String> {
    ex.answers().map(|r| String::from(r.error().unwrap_or("OK"))).collect()
}

/// One request of type `t` with `payload` (tx 0); its answer's name.
fn one(w: &mut World, t: u32, tx: u32, payload: &[u8]) -> String {
    let ex = attack(w, &msg(t, 5, tx, payload));
    assert_eq!(ex.closed, None, "{t} {payload:?}");
    let a = answers(&ex);
    assert_eq!(a.len(), 1, "{t} {payload:?}: {a:?}");
    a[0].clone()
}

/// The bystander and dom0 are untouched and the bystander is served: its
/// reads answer right (checked by [`World::check`]), its transaction (and
/// dom0's) commits, and its watch fires on a change dom0 makes in its
/// home.
fn assert_bystander_unharmed(mut w: World) {
    w.check().unwrap_or_else(|e| panic!("{e}"));
    w.finish().unwrap_or_else(|e| panic!("{e}"));
    client::write(&mut w.xs, "/local/domain/2/data/w", b"1").unwrap();
    let i = w.guests.iter().position(|g| g.domid == BYSTANDER).unwrap();
    let ex = w.guests[i].exchange(&mut w.xs, &[]).unwrap();
    let events: Vec<&[u8]> = ex.events().map(|r| &r.payload[..]).collect();
    assert_eq!(events, [&b"data/w\0bw\0"[..]], "the bystander's watch still fires");
}

#[test]
fn a_header_past_xenstore_payload_max_drops_only_that_connection() {
    for len in [XENSTORE_PAYLOAD_MAX + 1, 0x8000_0000, u32::MAX] {
        let mut w = World::new(0);
        let h = XsdSockmsg { type_: XS_READ, req_id: 1, tx_id: 0, len };
        let ex = attack(&mut w, h.as_bytes());
        assert_eq!((ex.closed, ex.replies.len()), (Some(Closed::BadFrame), 0), "len {len}: xenstored_core.c handle_input: bad_client");
        assert_bystander_unharmed(w);
    }
}

#[test]
fn a_garbage_stream_drops_the_connection() {
    let mut w = World::new(0);
    let mut bytes = msg(XS_READ, 1, 0, b"name\0");
    bytes.extend_from_slice(&[0xff; 40]);
    let ex = attack(&mut w, &bytes);
    assert_eq!(answers(&ex), ["OK"], "the whole message before the garbage is answered");
    assert_eq!(ex.closed, Some(Closed::BadFrame));
    assert_bystander_unharmed(w);
}

#[test]
fn a_message_longer_than_the_ring_is_read_in_pieces_and_answered() {
    let mut w = World::new(0);
    let path = format!("data/{}\0", "p".repeat(1500));
    assert!(path.len() > XENSTORE_RING_SIZE as usize);
    assert_eq!(one(&mut w, XS_READ, 0, path.as_bytes()), "ENOENT");
    assert_bystander_unharmed(w);
}

#[test]
fn a_partial_header_or_payload_waits_without_an_answer() {
    let mut w = World::new(0);
    let m = msg(XS_READ, 1, 0, b"name\0");
    let ex = attack(&mut w, &m[..10]);
    assert_eq!((ex.closed, ex.replies.len()), (None, 0), "half a header");
    let ex = attack(&mut w, &m[10..18]);
    assert_eq!((ex.closed, ex.replies.len()), (None, 0), "header and part of the payload");
    w.check().unwrap();
    let ex = attack(&mut w, &m[18..]);
    assert_eq!(ex.answers().map(|r| &r.payload[..]).collect::<Vec<_>>(), [&b"guest1"[..]]);
    assert_bystander_unharmed(w);
}

#[test]
fn a_missing_or_extra_nul_is_einval() {
    let mut w = World::new(0);
    let cases: [(u32, &[u8]); 14] = [
        (XS_READ, b"name"),
        (XS_READ, b"name\0extra\0"),
        (XS_READ, b""),
        (XS_DIRECTORY, b"data"),
        (XS_GET_PERMS, b"name"),
        (XS_MKDIR, b"data/m"),
        (XS_RM, b"name"),
        (XS_WRITE, b"data/nonul"),
        (XS_WATCH, b"data\0tok"),
        (XS_UNWATCH, b"data"),
        (XS_SET_PERMS, b"name\0"),
        (XS_SET_PERMS, b"name"),
        (XS_TRANSACTION_END, b"T"),
        (XS_GET_DOMAIN_PATH, b"2"),
    ];
    for (t, p) in cases {
        assert_eq!(one(&mut w, t, 0, p), "EINVAL", "type {t} payload {p:?}");
    }
    assert!(w.xs.tree().peek("/local/domain/1/data/m").is_none());
    assert_bystander_unharmed(w);
}

#[test]
fn an_unknown_or_reply_only_type_is_enosys() {
    let mut w = World::new(0);
    // process_message: type >= XS_TYPE_COUNT or no wire_funcs entry.
    for t in [20, XS_TYPE_COUNT, 9999, u32::MAX, XS_WATCH_EVENT, XS_ERROR] {
        assert_eq!(one(&mut w, t, 0, b"name\0"), "ENOSYS", "type {t}");
    }
    assert_bystander_unharmed(w);
}

#[test]
fn privileged_types_from_a_domu_are_eacces() {
    let mut w = World::new(0);
    // wire_funcs' XS_FLAG_PRIV, checked before anything else.
    let cases: [(u32, &[u8]); 6] = [
        (XS_CONTROL, b"print\0x\0"),
        (XS_INTRODUCE, b"5\x000\x001\0"),
        (XS_RELEASE, b"2\0"),
        (XS_IS_DOMAIN_INTRODUCED, b"2\0"),
        (XS_RESUME, b"2\0"),
        (XS_SET_TARGET, b"2\x001\0"),
    ];
    for (t, p) in cases {
        assert_eq!(one(&mut w, t, 0, p), "EACCES", "type {t}");
    }
    assert!(w.xs.is_introduced(BYSTANDER) && !w.xs.is_introduced(5));
    assert_bystander_unharmed(w);
}

#[test]
fn paths_outside_the_namespace_are_einval() {
    let mut w = World::new(0);
    let rel_long = "a".repeat(XENSTORE_REL_PATH_MAX as usize + 1);
    let abs_long = format!("/tool/{}", "a".repeat(XENSTORE_REL_PATH_MAX as usize));
    // is_valid_nodename after canonicalize (relative: under the home).
    let bad: [&[u8]; 18] = [
        b"../2/data/k",
        b"..",
        b"./name",
        b"data/../../2",
        b"",
        b"name/",
        b"/local/domain/1/",
        b"data//k",
        b"//tool",
        b"na me",
        b"name\xff",
        b"name*",
        b"\\tool",
        b"@releaseDomain",
        b"@introduceDomain",
        b"@foo",
        rel_long.as_bytes(),
        abs_long.as_bytes(),
    ];
    for p in bad {
        let arg = [p, b"\0"].concat();
        for t in [XS_READ, XS_MKDIR, XS_RM, XS_DIRECTORY, XS_GET_PERMS] {
            assert_eq!(one(&mut w, t, 0, &arg), "EINVAL", "type {t} path {p:?}");
        }
        assert_eq!(one(&mut w, XS_WRITE, 0, &[p, b"\0v"].concat()), "EINVAL", "{p:?}");
        assert_eq!(
            one(&mut w, XS_SET_PERMS, 0, &[p, b"\0n1\0"].concat()),
            if p == b"@releaseDomain" || p == b"@introduceDomain" { "EACCES" } else { "EINVAL" },
            "{p:?}"
        );
        // A watch takes any `@` name (check_watch_path), never a bad path.
        assert_eq!(one(&mut w, XS_WATCH, 0, &[p, b"\0t\0"].concat()), if p.starts_with(b"@") { "OK" } else { "EINVAL" }, "{p:?}");
    }
    assert_eq!(w.xs.tree().len(), World::new(0).xs.tree().len(), "nothing was created");
    // The longest relative path is valid (quota_max_path_len past the prefix).
    let max = format!("{}\0", "a".repeat(XENSTORE_REL_PATH_MAX as usize));
    assert_eq!(one(&mut w, XS_READ, 0, max.as_bytes()), "ENOENT");
    assert_bystander_unharmed(w);
}

#[test]
fn special_watches_need_no_node_but_their_names_are_bounded_and_their_perms_are_dom0s() {
    let mut w = World::new(0);
    // check_watch_path: any `@` name up to XENSTORE_REL_PATH_MAX.
    assert_eq!(one(&mut w, XS_WATCH, 0, b"@releaseDomain\0r\0"), "OK");
    let long = format!("@{}\0t\0", "a".repeat(XENSTORE_REL_PATH_MAX as usize));
    assert_eq!(one(&mut w, XS_WATCH, 0, long.as_bytes()), "EINVAL");
    // set_perms_special: only its owner (dom0) may change it.
    assert_eq!(one(&mut w, XS_SET_PERMS, 0, b"@releaseDomain\0n1\0"), "EACCES");
    assert_bystander_unharmed(w);
}

#[test]
fn another_domains_nodes_are_eacces_and_a_missing_one_does_not_leak_enoent() {
    let mut w = World::new(0);
    for p in [&b"/local/domain/2/data/k"[..], b"/local/domain/2/nothing", b"/tool/secret", b"/tool/nothing"] {
        let arg = [p, b"\0"].concat();
        for t in [XS_READ, XS_DIRECTORY, XS_GET_PERMS, XS_RM, XS_MKDIR] {
            assert_eq!(one(&mut w, t, 0, &arg), "EACCES", "type {t} {p:?}");
        }
        assert_eq!(one(&mut w, XS_WRITE, 0, &[p, b"\0evil"].concat()), "EACCES");
        assert_eq!(one(&mut w, XS_SET_PERMS, 0, &[p, b"\0n1\0"].concat()), "EACCES");
    }
    assert_bystander_unharmed(w);
}

#[test]
fn a_transaction_id_that_does_not_exist_is_enoent() {
    let mut w = World::new(0);
    // transaction_lookup: ENOENT, before the operation runs.
    for tx in [77, u32::MAX] {
        assert_eq!(one(&mut w, XS_WRITE, tx, b"data/x\0v"), "ENOENT");
        assert_eq!(one(&mut w, XS_READ, tx, b"name\0"), "ENOENT");
        assert_eq!(one(&mut w, XS_TRANSACTION_END, tx, b"T\0"), "ENOENT");
        assert_eq!(one(&mut w, XS_TRANSACTION_START, tx, b"\0"), "ENOENT");
    }
    assert_eq!(one(&mut w, XS_TRANSACTION_END, 0, b"T\0"), "ENOENT", "no transaction named");
    assert!(w.xs.tree().peek("/local/domain/1/data/x").is_none());
    // XS_FLAG_NOTID: a watch ignores the transaction id.
    assert_eq!(one(&mut w, XS_WATCH, 77, b"name\0t\0"), "OK");
    assert_bystander_unharmed(w);
}

#[test]
fn another_connections_transaction_id_is_enoent_and_its_transaction_still_commits() {
    let mut w = World::new(0);
    for tx in [w.bystander_tx, w.dom0_tx] {
        assert_eq!(one(&mut w, XS_READ, tx, b"/local/domain/2/data/t\0"), "ENOENT");
        assert_eq!(one(&mut w, XS_WRITE, tx, b"data/x\0v"), "ENOENT");
        assert_eq!(one(&mut w, XS_TRANSACTION_END, tx, b"T\0"), "ENOENT");
        assert_eq!(one(&mut w, XS_TRANSACTION_END, tx, b"F\0"), "ENOENT");
    }
    assert_eq!(w.xs.txn_count(BYSTANDER), 1);
    assert_bystander_unharmed(w);
}

#[test]
fn a_transaction_end_other_than_t_or_f_is_einval_and_keeps_the_transaction() {
    let mut w = World::new(0);
    let r = attack(&mut w, &msg(XS_TRANSACTION_START, 1, 0, b"\0"));
    let tx: u32 = core::str::from_utf8(&r.replies[0].payload).unwrap().trim_end_matches('\0').parse().unwrap();
    for p in [&b"X\0"[..], b"TRUE\0", b"\0", b"T\0F\0"] {
        assert_eq!(one(&mut w, XS_TRANSACTION_END, tx, p), "EINVAL", "{p:?}");
    }
    assert_eq!(one(&mut w, XS_TRANSACTION_START, tx, b"\0"), "EBUSY", "no nested transactions");
    assert_eq!(one(&mut w, XS_TRANSACTION_END, tx, b"F\0"), "OK");
    assert_bystander_unharmed(w);
}

/// Domain 1's req or rsp index at `off` set to `value`, then a request.
fn made_up_index(off: impl FnOnce(&super::fuzz::Page) -> (usize, u32)) -> (World, Exchange) {
    let mut w = World::new(0);
    assert_eq!(one(&mut w, XS_WATCH, 0, b"name\0t\0"), "OK");
    let g = w.guest(A);
    let (o, v) = off(&g.page);
    g.page.store(o, v);
    g.synced = false;
    let ex = attack(&mut w, &msg(XS_READ, 9, 0, b"name\0"));
    (w, ex)
}

#[test]
fn a_req_prod_far_past_req_cons_drops_the_connection() {
    // readchn: check_indexes (prod - cons <= XENSTORE_RING_SIZE) fails: EIO.
    let (w, ex) = made_up_index(|p| (REQ_RING.prod, p.load(REQ_RING.cons).wrapping_add(XENSTORE_RING_SIZE + 1)));
    assert_eq!((ex.closed, ex.answers().count()), (Some(Closed::CorruptReqRing), 0));
    assert_eq!(w.xs.watch_count(A), 0, "ignore_connection drops its watches");
    assert!(w.xs.is_introduced(A), "the domain stays introduced");
    assert_bystander_unharmed(w);
}

#[test]
fn a_req_cons_past_req_prod_drops_the_connection() {
    let (w, ex) = made_up_index(|p| (REQ_RING.cons, p.load(REQ_RING.prod).wrapping_add(1)));
    assert_eq!((ex.closed, ex.answers().count()), (Some(Closed::CorruptReqRing), 0));
    assert_bystander_unharmed(w);
}

#[test]
fn made_up_rsp_indices_drop_the_connection() {
    let (w, ex) = made_up_index(|p| (RSP_RING.cons, p.load(RSP_RING.prod).wrapping_add(3000)));
    assert_eq!(ex.closed, Some(Closed::CorruptRspRing), "writechn: check_indexes fails");
    assert_bystander_unharmed(w);
    let (w, ex) = made_up_index(|p| (RSP_RING.prod, p.load(RSP_RING.cons).wrapping_sub(1)));
    assert_eq!(ex.closed, Some(Closed::CorruptRspRing));
    assert_bystander_unharmed(w);
}

#[test]
fn indices_wrapping_past_u32_max_are_served_as_usual() {
    // The indices are free-running u32s: only prod - cons matters.
    let mut w = World::new(u32::MAX - 20);
    let mut big = Vec::from(&b"data/big\0"[..]);
    big.resize(1500, b'b');
    assert_eq!(one(&mut w, XS_WRITE, 0, &big), "OK");
    let ex = attack(&mut w, &msg(XS_READ, 2, 0, b"data/big\0"));
    assert_eq!(ex.answers().map(|r| r.payload.len()).collect::<Vec<_>>(), [1500 - 9]);
    assert!(w.guest(A).page.load(REQ_RING.prod) < 0x1_0000, "the req index wrapped");
    assert_bystander_unharmed(w);
}

#[test]
fn a_dropped_connection_keeps_the_domains_nodes_and_a_new_one_is_served() {
    let mut w = World::new(0);
    assert_eq!(one(&mut w, XS_WRITE, 0, b"data/kept\0v"), "OK");
    let h = XsdSockmsg { type_: XS_READ, req_id: 1, tx_id: 0, len: u32::MAX };
    assert_eq!(attack(&mut w, h.as_bytes()).closed, Some(Closed::BadFrame));
    assert_eq!(attack(&mut w, &msg(XS_READ, 2, 0, b"data/kept\0")).replies, [], "a closed connection answers nothing");
    w.reconnect(A, 0);
    let ex = attack(&mut w, &msg(XS_READ, 3, 0, b"data/kept\0"));
    assert_eq!(ex.answers().map(|r| &r.payload[..]).collect::<Vec<_>>(), [&b"v"[..]]);
    assert_bystander_unharmed(w);
}

#[test]
fn set_perms_on_an_unknown_special_name_is_einval_and_a_special_one_needs_its_owner() {
    // set_perms_special (xenstored_domain.c): no such name EINVAL, then
    // write and owner permission on the special node, else EACCES.
    let mut w = World::new(0);
    assert_eq!(one(&mut w, XS_SET_PERMS, 0, b"@foo\0n1\0"), "EINVAL");
    assert_eq!(one(&mut w, XS_SET_PERMS, 0, b"@introduceDomain\0n1\0"), "EACCES");
    assert_eq!(client::set_perms(&mut w.xs, "@foo", &["n0"]), Err(String::from("EINVAL")), "dom0 too");
    client::set_perms(&mut w.xs, "@releaseDomain", &["n1"]).unwrap();
    assert_eq!(one(&mut w, XS_SET_PERMS, 0, b"@releaseDomain\0n1\0r3\0"), "OK", "its owner may");
    w.xs.take_events(0);
    assert_bystander_unharmed(w);
}
