//! Host tests of the xenstored core: each name states the rule checked.

use super::*;
use xen_public::errno::{EAGAIN, ENOSPC};
use zerocopy::IntoBytes;

fn msg(type_: u32, tx: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::from(XsdSockmsg { type_, req_id: 7, tx_id: tx, len: payload.len() as u32 }.as_bytes());
    v.extend_from_slice(payload);
    v
}

/// The reply's type and payload, and the events after it.
fn req(xs: &mut Xenstore, conn: DomId, type_: u32, tx: u32, payload: &[u8]) -> (u32, Vec<u8>, Vec<Vec<u8>>) {
    let Verdict::Reply(mut out) = xs.handle(conn, &msg(type_, tx, payload)) else { panic!("no reply") };
    let r = out.remove(0);
    (u32::from_le_bytes(r[..4].try_into().unwrap()), r[16..].to_vec(), out)
}

fn ok_or_err(xs: &mut Xenstore, conn: DomId, type_: u32, tx: u32, payload: &[u8]) -> Result<Vec<u8>, String> {
    let (t, p, _) = req(xs, conn, type_, tx, payload);
    if t == XS_ERROR { Err(String::from_utf8(p).unwrap()) } else { Ok(p) }
}

fn err(name: &str) -> Result<Vec<u8>, String> {
    Err(format!("{name}\0"))
}

/// dom0 plus domains 1 and 2 with homes owned by them, as libxl makes them.
fn store() -> Xenstore {
    let mut xs = Xenstore::new();
    for d in [1u16, 2] {
        xs.introduce(d);
        let home = format!("/local/domain/{d}\0");
        ok_or_err(&mut xs, 0, XS_MKDIR, 0, home.as_bytes()).unwrap();
        ok_or_err(&mut xs, 0, XS_SET_PERMS, 0, format!("{home}n{d}\0").as_bytes()).unwrap();
    }
    xs.take_events(0);
    xs
}

#[test]
fn write_then_read_round_trips_and_creates_parents() {
    let mut xs = store();
    assert_eq!(ok_or_err(&mut xs, 0, XS_WRITE, 0, b"/a/b/c\0hello"), Ok(b"OK\0".to_vec()));
    assert_eq!(ok_or_err(&mut xs, 0, XS_READ, 0, b"/a/b/c\0"), Ok(b"hello".to_vec()));
    assert_eq!(ok_or_err(&mut xs, 0, XS_READ, 0, b"/a/b\0"), Ok(Vec::new()));
    assert_eq!(ok_or_err(&mut xs, 0, XS_DIRECTORY, 0, b"/a\0"), Ok(b"b\0".to_vec()));
}

#[test]
fn relative_paths_resolve_under_the_domain_home_and_domu_owns_what_it_creates() {
    let mut xs = store();
    ok_or_err(&mut xs, 1, XS_WRITE, 0, b"data/x\0v").unwrap();
    assert_eq!(ok_or_err(&mut xs, 0, XS_READ, 0, b"/local/domain/1/data/x\0"), Ok(b"v".to_vec()));
    assert_eq!(ok_or_err(&mut xs, 0, XS_GET_PERMS, 0, b"/local/domain/1/data/x\0"), Ok(b"n1\0".to_vec()));
}

#[test]
fn domu_cannot_read_or_write_outside_its_permissions() {
    let mut xs = store();
    ok_or_err(&mut xs, 0, XS_WRITE, 0, b"/tool/secret\0x").unwrap();
    assert_eq!(ok_or_err(&mut xs, 1, XS_READ, 0, b"/tool/secret\0"), err("EACCES"));
    assert_eq!(ok_or_err(&mut xs, 1, XS_WRITE, 0, b"/tool/secret\0y"), err("EACCES"));
    assert_eq!(ok_or_err(&mut xs, 1, XS_WRITE, 0, b"/tool/new\0y"), err("EACCES"));
    assert_eq!(ok_or_err(&mut xs, 1, XS_RM, 0, b"/tool\0"), err("EACCES"));
    assert_eq!(ok_or_err(&mut xs, 0, XS_READ, 0, b"/tool/secret\0"), Ok(b"x".to_vec()));
}

#[test]
fn missing_node_under_an_unreadable_parent_is_eacces_not_enoent() {
    let mut xs = store();
    assert_eq!(ok_or_err(&mut xs, 1, XS_READ, 0, b"/tool/nothing\0"), err("EACCES"));
    assert_eq!(ok_or_err(&mut xs, 1, XS_READ, 0, b"/local/domain/1/nothing\0"), err("ENOENT"));
}

#[test]
fn domu_cannot_write_another_domains_home() {
    let mut xs = store();
    assert_eq!(ok_or_err(&mut xs, 1, XS_WRITE, 0, b"/local/domain/2/x\0evil"), err("EACCES"));
    assert_eq!(ok_or_err(&mut xs, 1, XS_RM, 0, b"/local/domain/2\0"), err("EACCES"));
    assert!(xs.tree().peek("/local/domain/2/x").is_none());
    assert!(xs.tree().peek("/local/domain/2").is_some());
}

#[test]
fn acl_entry_grants_read_and_set_perms_is_owner_only() {
    let mut xs = store();
    ok_or_err(&mut xs, 1, XS_WRITE, 0, b"shared\0s").unwrap();
    assert_eq!(ok_or_err(&mut xs, 2, XS_READ, 0, b"/local/domain/1/shared\0"), err("EACCES"));
    ok_or_err(&mut xs, 1, XS_SET_PERMS, 0, b"shared\0n1\0r2\0").unwrap();
    assert_eq!(ok_or_err(&mut xs, 2, XS_READ, 0, b"/local/domain/1/shared\0"), Ok(b"s".to_vec()));
    assert_eq!(ok_or_err(&mut xs, 2, XS_SET_PERMS, 0, b"/local/domain/1/shared\0n2\0"), err("EACCES"));
    assert_eq!(ok_or_err(&mut xs, 1, XS_SET_PERMS, 0, b"shared\0n2\0"), err("EPERM"), "domU may not give away");
    assert_eq!(ok_or_err(&mut xs, 1, XS_SET_PERMS, 0, b"shared\0n1\0r2\0r3\0r4\0r5\0r6\0"), err("ENOSPC"));
    assert_eq!(ok_or_err(&mut xs, 1, XS_SET_PERMS, 0, b"shared\0q1\0"), err("EINVAL"));
}

#[test]
fn bad_paths_are_einval() {
    let mut xs = store();
    let long = format!("/{}\0", "a".repeat(XENSTORE_REL_PATH_MAX as usize + 1));
    for p in [&b"/a/../b\0"[..], b"/a//b\0", b"/a/\0", b"/a b\0", b"/a\xff\0", b"/a.b\0", long.as_bytes()] {
        assert_eq!(ok_or_err(&mut xs, 0, XS_WRITE, 0, &[p, b"v"].concat()), err("EINVAL"), "{p:?}");
        assert_eq!(ok_or_err(&mut xs, 1, XS_READ, 0, p), err("EINVAL"), "{p:?}");
    }
    let home_long = format!("/local/domain/1/{}\0", "a".repeat(XENSTORE_REL_PATH_MAX as usize));
    assert_eq!(ok_or_err(&mut xs, 0, XS_WRITE, 0, &[home_long.as_bytes(), b"v"].concat()), Ok(b"OK\0".to_vec()));
    // For a domU the parent's record (which lists the 2048-byte name) breaks the entry quota first.
    assert_eq!(ok_or_err(&mut xs, 1, XS_WRITE, 0, &[home_long.replace("/aaa", "/baa").as_bytes(), b"v"].concat()), err("ENOSPC"));
}

#[test]
fn rm_removes_the_subtree_but_never_the_root() {
    let mut xs = store();
    ok_or_err(&mut xs, 0, XS_WRITE, 0, b"/x/y/z\0v").unwrap();
    ok_or_err(&mut xs, 0, XS_RM, 0, b"/x\0").unwrap();
    assert!(xs.tree().paths().all(|p| !p.starts_with("/x")));
    assert_eq!(ok_or_err(&mut xs, 0, XS_DIRECTORY, 0, b"/\0"), Ok(b"local\0tool\0".to_vec()));
    assert_eq!(ok_or_err(&mut xs, 0, XS_RM, 0, b"/\0"), err("EINVAL"));
    assert_eq!(ok_or_err(&mut xs, 0, XS_RM, 0, b"/gone\0"), Ok(b"OK\0".to_vec()), "absent with parent: OK");
    assert_eq!(ok_or_err(&mut xs, 0, XS_RM, 0, b"/no/such\0"), err("ENOENT"));
}

#[test]
fn malformed_messages_get_xens_errors() {
    let mut xs = store();
    assert_eq!(ok_or_err(&mut xs, 1, XS_READ, 0, b"/local/domain/1"), err("EINVAL"), "missing NUL");
    assert_eq!(ok_or_err(&mut xs, 1, XS_READ, 0, b"/a\0/b\0"), err("EINVAL"), "too many args");
    assert_eq!(ok_or_err(&mut xs, 1, 99, 0, b""), err("ENOSYS"), "unknown type");
    assert_eq!(ok_or_err(&mut xs, 1, XS_ERROR, 0, b""), err("ENOSYS"));
    assert_eq!(ok_or_err(&mut xs, 1, XS_INTRODUCE, 0, b"5\x000\x001\0"), err("EACCES"), "privileged op");
    assert_eq!(ok_or_err(&mut xs, 1, XS_WATCH, 0, b"/a\0"), err("EINVAL"), "watch needs a token");
    assert_eq!(ok_or_err(&mut xs, 1, XS_TRANSACTION_END, 0, b"X\0"), err("EINVAL"));
    assert_eq!(ok_or_err(&mut xs, 1, XS_TRANSACTION_END, 0, b"T\0"), err("ENOENT"));
}

#[test]
fn payload_past_the_maximum_drops_only_that_connection() {
    let mut xs = store();
    let mut m = msg(XS_WRITE, 0, b"x\0");
    m[12..16].copy_from_slice(&(XENSTORE_PAYLOAD_MAX + 1).to_le_bytes());
    assert_eq!(xs.handle(1, &m), Verdict::Drop);
    assert_eq!(xs.handle(1, &m[..10]), Verdict::Incomplete);
    assert_eq!(ok_or_err(&mut xs, 2, XS_WRITE, 0, b"x\0v"), Ok(b"OK\0".to_vec()));
    assert_eq!(xs.handle(9, &msg(XS_READ, 0, b"/\0")), Verdict::Drop, "unknown connection");
}

#[test]
fn watch_fires_on_registration_and_on_changes_at_or_below_only() {
    let mut xs = store();
    let (_, p, ev) = req(&mut xs, 1, XS_WATCH, 0, b"data\0tok\0");
    assert_eq!(p, b"OK\0");
    assert_eq!(ev.len(), 1);
    assert_eq!(&ev[0][16..], b"data\0tok\0", "relative watch: relative event");
    ok_or_err(&mut xs, 1, XS_WRITE, 0, b"data/a\x001").unwrap();
    ok_or_err(&mut xs, 1, XS_WRITE, 0, b"other\x001").unwrap();
    let evs = xs.take_events(1);
    assert_eq!(evs.len(), 0, "the writer's own events came with its replies");
    ok_or_err(&mut xs, 0, XS_WRITE, 0, b"/local/domain/1/data/b\x001").unwrap();
    ok_or_err(&mut xs, 0, XS_WRITE, 0, b"/local/domain/1/datax\x001").unwrap();
    let evs = xs.take_events(1);
    assert_eq!(evs.len(), 1);
    assert_eq!(&evs[0][16..], b"data/b\0tok\0");
}

#[test]
fn rm_fires_watches_inside_the_removed_subtree() {
    let mut xs = store();
    ok_or_err(&mut xs, 0, XS_WRITE, 0, b"/t/a/b\0v").unwrap();
    ok_or_err(&mut xs, 0, XS_WATCH, 0, b"/t/a/b\0deep\0").unwrap();
    let (_, _, evs) = req(&mut xs, 0, XS_RM, 0, b"/t\0");
    let evs: Vec<_> = evs.into_iter().map(|e| e[16..].to_vec()).collect();
    assert_eq!(evs, [b"/t/a/b\0deep\0".to_vec()]);
    assert_eq!(xs.watch_count(0), 1);
}

#[test]
fn watch_events_respect_read_permission() {
    let mut xs = store();
    ok_or_err(&mut xs, 1, XS_WATCH, 0, b"/tool\0t\0").unwrap();
    ok_or_err(&mut xs, 0, XS_WRITE, 0, b"/tool/x\0secret").unwrap();
    assert!(xs.take_events(1).is_empty());
}

#[test]
fn unwatch_and_reset_watches_remove_watches() {
    let mut xs = store();
    ok_or_err(&mut xs, 1, XS_WATCH, 0, b"a\0t\0").unwrap();
    assert_eq!(ok_or_err(&mut xs, 1, XS_WATCH, 0, b"a\0t\0"), err("EEXIST"));
    assert_eq!(ok_or_err(&mut xs, 1, XS_UNWATCH, 0, b"a\0u\0"), err("ENOENT"));
    ok_or_err(&mut xs, 1, XS_UNWATCH, 0, b"a\0t\0").unwrap();
    ok_or_err(&mut xs, 1, XS_WATCH, 0, b"b\0t\0").unwrap();
    ok_or_err(&mut xs, 1, XS_RESET_WATCHES, 0, b"").unwrap();
    assert_eq!(xs.watch_count(1), 0);
}

#[test]
fn special_watches_fire_for_dom0_on_introduce_and_release() {
    let mut xs = store();
    ok_or_err(&mut xs, 0, XS_WATCH, 0, b"@releaseDomain\0r\0").unwrap();
    ok_or_err(&mut xs, 0, XS_WATCH, 0, b"@introduceDomain\0i\0").unwrap();
    ok_or_err(&mut xs, 1, XS_WATCH, 0, b"@releaseDomain\0r\0").unwrap();
    xs.take_events(1);
    let (_, _, mut evs) = req(&mut xs, 0, XS_INTRODUCE, 0, b"3\x000\x005\0");
    evs.extend(req(&mut xs, 0, XS_RELEASE, 0, b"3\0").2);
    assert_eq!(ok_or_err(&mut xs, 0, XS_RELEASE, 0, b"3\0"), err("ENOENT"));
    assert_eq!(ok_or_err(&mut xs, 0, XS_RELEASE, 0, b"0\0"), err("EINVAL"));
    let evs: Vec<_> = evs.into_iter().map(|e| e[16..].to_vec()).collect();
    assert_eq!(evs, [b"@introduceDomain\0i\0".to_vec(), b"@releaseDomain\0r\0".to_vec()]);
    assert!(xs.take_events(1).is_empty(), "special nodes are n0: domUs do not hear");
}

#[test]
fn release_drops_watches_and_transactions_and_hands_nodes_to_dom0() {
    let mut xs = store();
    ok_or_err(&mut xs, 1, XS_WATCH, 0, b"a\0t\0").unwrap();
    ok_or_err(&mut xs, 1, XS_TRANSACTION_START, 0, b"\0").unwrap();
    assert!(xs.release(1));
    assert!(!xs.is_introduced(1));
    assert_eq!((xs.watch_count(1), xs.txn_count(1)), (0, 0));
    assert_eq!(xs.tree().peek("/local/domain/1").unwrap().perms.owner(), 0);
    assert_eq!(xs.handle(1, &msg(XS_READ, 0, b"a\0")), Verdict::Drop);
    assert_eq!(ok_or_err(&mut xs, 0, XS_IS_DOMAIN_INTRODUCED, 0, b"1\0"), Ok(b"F\0".to_vec()));
    assert_eq!(ok_or_err(&mut xs, 0, XS_IS_DOMAIN_INTRODUCED, 0, b"2\0"), Ok(b"T\0".to_vec()));
    assert_eq!(ok_or_err(&mut xs, 2, XS_GET_DOMAIN_PATH, 0, b"5\0"), Ok(b"/local/domain/5\0".to_vec()));
}

#[test]
fn transaction_sees_its_writes_privately_and_commits_them() {
    let mut xs = store();
    let id = ok_or_err(&mut xs, 1, XS_TRANSACTION_START, 0, b"\0").unwrap();
    let id: u32 = core::str::from_utf8(&id[..id.len() - 1]).unwrap().parse().unwrap();
    ok_or_err(&mut xs, 1, XS_WRITE, id, b"k\0v").unwrap();
    assert_eq!(ok_or_err(&mut xs, 1, XS_READ, id, b"k\0"), Ok(b"v".to_vec()));
    assert_eq!(ok_or_err(&mut xs, 1, XS_READ, 0, b"k\0"), err("ENOENT"));
    assert_eq!(ok_or_err(&mut xs, 1, XS_TRANSACTION_START, id, b"\0"), err("EBUSY"));
    ok_or_err(&mut xs, 1, XS_TRANSACTION_END, id, b"T\0").unwrap();
    assert_eq!(ok_or_err(&mut xs, 1, XS_READ, 0, b"k\0"), Ok(b"v".to_vec()));
}

#[test]
fn transaction_conflict_answers_eagain_and_changes_nothing() {
    let mut xs = store();
    ok_or_err(&mut xs, 1, XS_WRITE, 0, b"k\0old").unwrap();
    let id = ok_or_err(&mut xs, 1, XS_TRANSACTION_START, 0, b"\0").unwrap();
    let id: u32 = core::str::from_utf8(&id[..id.len() - 1]).unwrap().parse().unwrap();
    ok_or_err(&mut xs, 1, XS_READ, id, b"k\0").unwrap();
    ok_or_err(&mut xs, 1, XS_WRITE, id, b"other\0t").unwrap();
    ok_or_err(&mut xs, 0, XS_WRITE, 0, b"/local/domain/1/k\0new").unwrap();
    assert_eq!(ok_or_err(&mut xs, 1, XS_TRANSACTION_END, id, b"T\0"), err("EAGAIN"));
    assert_eq!(EAGAIN, 11);
    assert_eq!(ok_or_err(&mut xs, 1, XS_READ, 0, b"other\0"), err("ENOENT"));
    assert_eq!(xs.txn_count(1), 0);
}

#[test]
fn abort_discards_and_another_connections_tx_id_is_enoent() {
    let mut xs = store();
    let id = ok_or_err(&mut xs, 1, XS_TRANSACTION_START, 0, b"\0").unwrap();
    let id: u32 = core::str::from_utf8(&id[..id.len() - 1]).unwrap().parse().unwrap();
    assert_eq!(ok_or_err(&mut xs, 2, XS_READ, id, b"/local/domain/2\0"), err("ENOENT"));
    assert_eq!(ok_or_err(&mut xs, 2, XS_TRANSACTION_END, id, b"T\0"), err("ENOENT"));
    ok_or_err(&mut xs, 1, XS_WRITE, id, b"k\0v").unwrap();
    ok_or_err(&mut xs, 1, XS_TRANSACTION_END, id, b"F\0").unwrap();
    assert_eq!(ok_or_err(&mut xs, 1, XS_READ, 0, b"k\0"), err("ENOENT"));
}

#[test]
fn watches_fire_at_commit_not_before() {
    let mut xs = store();
    ok_or_err(&mut xs, 0, XS_WATCH, 0, b"/local/domain/1\0w\0").unwrap();
    xs.take_events(0);
    let id = ok_or_err(&mut xs, 1, XS_TRANSACTION_START, 0, b"\0").unwrap();
    let id: u32 = core::str::from_utf8(&id[..id.len() - 1]).unwrap().parse().unwrap();
    ok_or_err(&mut xs, 1, XS_WRITE, id, b"k\0v").unwrap();
    assert!(xs.take_events(0).is_empty());
    ok_or_err(&mut xs, 1, XS_TRANSACTION_END, id, b"T\0").unwrap();
    assert_eq!(xs.take_events(0).len(), 1);
}

#[test]
fn node_quota_answers_enospc_and_other_domains_carry_on() {
    let mut xs = store();
    xs.quota.nodes = 20;
    let mut last = Ok(Vec::new());
    for i in 0..30 {
        last = ok_or_err(&mut xs, 1, XS_WRITE, 0, format!("n{i}\0v").as_bytes());
    }
    assert_eq!(last, err("ENOSPC"));
    assert_eq!(xs.tree().paths().filter(|p| p.starts_with("/local/domain/1/")).count(), 19);
    assert_eq!(ok_or_err(&mut xs, 2, XS_WRITE, 0, b"fine\0v"), Ok(b"OK\0".to_vec()));
    assert_eq!(ENOSPC, 28);
}

#[test]
fn entry_size_quota_is_enospc_for_domu_not_dom0() {
    let mut xs = store();
    let big = [b"big\0".to_vec(), vec![b'x'; 2048]].concat();
    assert_eq!(ok_or_err(&mut xs, 1, XS_WRITE, 0, &big), err("ENOSPC"));
    assert_eq!(ok_or_err(&mut xs, 0, XS_WRITE, 0, &[b"/big\0".to_vec(), vec![b'x'; 3000]].concat()), Ok(b"OK\0".to_vec()));
}

#[test]
fn watch_flood_is_bounded_by_the_quota() {
    let mut xs = store();
    let mut results = Vec::new();
    for i in 0..200 {
        results.push(ok_or_err(&mut xs, 1, XS_WATCH, 0, format!("w\0t{i}\0").as_bytes()));
    }
    assert_eq!(xs.watch_count(1), 129, "Xen checks count > 128 before adding");
    assert_eq!(results[129], err("E2BIG"));
    assert_eq!(ok_or_err(&mut xs, 2, XS_WATCH, 0, b"w\0t\0"), Ok(b"OK\0".to_vec()));
}

#[test]
fn transaction_quota_is_enospc_past_ten() {
    let mut xs = store();
    let n = (0..20).filter(|_| ok_or_err(&mut xs, 1, XS_TRANSACTION_START, 0, b"\0").is_ok()).count();
    assert_eq!(n, 11);
    assert_eq!(ok_or_err(&mut xs, 1, XS_TRANSACTION_START, 0, b"\0"), err("ENOSPC"));
    assert!(ok_or_err(&mut xs, 2, XS_TRANSACTION_START, 0, b"\0").is_ok());
}

#[test]
fn pending_events_of_a_slow_reader_are_bounded() {
    let mut xs = store();
    ok_or_err(&mut xs, 2, XS_WATCH, 0, b"/local/domain/2\0t\0").unwrap();
    for i in 0..(MAX_PENDING_EVENTS + 50) {
        ok_or_err(&mut xs, 0, XS_WRITE, 0, format!("/local/domain/2/k\0{i}").as_bytes()).unwrap();
    }
    assert_eq!(xs.take_events(2).len(), MAX_PENDING_EVENTS);
}

/// A deterministic xorshift generator.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, v: &[&'a [u8]]) -> &'a [u8] {
        v[(self.next() % v.len() as u64) as usize]
    }
}

#[test]
fn fuzzed_messages_never_panic_and_keep_the_tree_consistent() {
    let mut xs = store();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let words: [&[u8]; 12] = [b"/", b"a", b"/local/domain/1/x", b"x/y", b"..", b"@releaseDomain", b"T", b"F", b"n1", b"r2", b"\xff", b"/tool"];
    for _ in 0..5000 {
        let conn = (rng.next() % 3) as DomId;
        let type_ = (rng.next() % 26) as u32;
        let mut payload = Vec::new();
        for _ in 0..rng.next() % 4 {
            payload.extend_from_slice(rng.pick(&words));
            if !rng.next().is_multiple_of(5) {
                payload.push(0);
            }
        }
        let tx = if rng.next().is_multiple_of(4) { (rng.next() % 4) as u32 } else { 0 };
        let mut m = msg(type_, tx, &payload);
        if rng.next().is_multiple_of(50) {
            m[12..16].copy_from_slice(&(rng.next() as u32).to_le_bytes());
        }
        let _ = xs.handle(conn, &m);
        xs.take_events(conn);
        if type_ == XS_RELEASE || !xs.is_introduced(conn) {
            xs.introduce(conn);
        }
    }
    let t = xs.tree();
    assert!(t.peek("/").is_some());
    for p in t.paths().filter(|p| p.as_str() != "/") {
        let up = tree::parent(p);
        let name = &p[p.rfind('/').unwrap() + 1..];
        let parent = t.peek(up).unwrap_or_else(|| panic!("{p} has no parent"));
        assert_eq!(parent.children.iter().filter(|c| c.as_str() == name).count(), 1, "{p}");
    }
    for (p, n) in t.paths().zip(t.paths().map(|p| t.peek(p).unwrap())) {
        for c in &n.children {
            let child = if p == "/" { format!("/{c}") } else { format!("{p}/{c}") };
            assert!(t.peek(&child).is_some(), "{child} listed but missing");
        }
    }
    assert!(xs.watch_count(1) <= 129 && xs.txn_count(1) <= 11);
}

/// `/local/domain/1/` then `n` components `a` (within the path limit).
fn deep_path(n: usize) -> String {
    let mut p = String::from("/local/domain/1");
    for _ in 0..n {
        p.push_str("/a");
    }
    p
}

/// Run `f` on a thread with dom0's 64 KiB stack.
fn on_dom0_stack(f: impl FnOnce() + Send + 'static) {
    extern crate std;
    std::thread::Builder::new().stack_size(64 * 1024).spawn(f).unwrap().join().expect("overflowed dom0's stack");
}

#[test]
fn a_thousand_component_path_is_created_listed_and_removed_within_a_64k_stack() {
    on_dom0_stack(|| {
        let mut xs = store();
        let p = deep_path(1000);
        assert!(p.len() <= "/local/domain/1/".len() + 2048);
        assert_eq!(ok_or_err(&mut xs, 0, XS_WRITE, 0, format!("{p}\0v").as_bytes()), Ok(b"OK\0".to_vec()));
        assert_eq!(xs.tree().peek(&p).map(|n| n.value.clone()), Some(b"v".to_vec()));
        assert_eq!(client::ls(&mut xs, "/local/domain/1").unwrap().len(), 1000);
        let before = xs.tree().len();
        assert_eq!(ok_or_err(&mut xs, 0, XS_RM, 0, b"/local/domain/1/a\0"), Ok(b"OK\0".to_vec()));
        assert_eq!(xs.tree().len(), before - 1000);
        assert!(xs.tree().peek("/local/domain/1").unwrap().children.is_empty());
    });
}

#[test]
fn a_thousand_component_path_in_a_transaction_stays_within_a_64k_stack() {
    on_dom0_stack(|| {
        let mut xs = store();
        let p = deep_path(1000);
        let tx: u32 =
            String::from_utf8(ok_or_err(&mut xs, 0, XS_TRANSACTION_START, 0, b"\0").unwrap()).unwrap().trim_end_matches('\0').parse().unwrap();
        assert_eq!(ok_or_err(&mut xs, 0, XS_WRITE, tx, format!("{p}\0v").as_bytes()), Ok(b"OK\0".to_vec()));
        assert_eq!(ok_or_err(&mut xs, 0, XS_RM, tx, b"/local/domain/1/a\0"), Ok(b"OK\0".to_vec()));
        assert_eq!(ok_or_err(&mut xs, 0, XS_TRANSACTION_END, tx, b"T\0"), Ok(b"OK\0".to_vec()));
        assert!(xs.tree().peek("/local/domain/1/a").is_none());
    });
}

fn start_tx(xs: &mut Xenstore, conn: DomId) -> u32 {
    let r = ok_or_err(xs, conn, XS_TRANSACTION_START, 0, b"\0").unwrap();
    String::from_utf8(r).unwrap().trim_end_matches('\0').parse().unwrap()
}

fn domain_nodes(xs: &Xenstore, d: DomId) -> Vec<String> {
    let home = format!("/local/domain/{d}/");
    xs.tree().paths().filter(|p| p.starts_with(&home)).cloned().collect()
}

#[test]
fn enospc_on_the_parents_enlarged_record_leaves_no_orphan_child() {
    let mut xs = store();
    // A directory whose record is just under the 2048-byte entry quota.
    ok_or_err(&mut xs, 1, XS_MKDIR, 0, b"d\0").unwrap();
    for i in 0..80 {
        ok_or_err(&mut xs, 1, XS_MKDIR, 0, format!("d/child-with-long-name-{i:03}\0").as_bytes()).unwrap();
    }
    let rec = xs.tree().peek("/local/domain/1/d").unwrap().record_size();
    assert!(rec < 2048 && rec + 40 >= 2048, "{rec}");
    let before = domain_nodes(&xs, 1);
    assert_eq!(ok_or_err(&mut xs, 1, XS_WRITE, 0, b"d/one-more-child-with-a-long-name\0v"), err("ENOSPC"));
    assert_eq!(ok_or_err(&mut xs, 1, XS_WRITE, 0, b"d/one-more-child-with-a-long-name/x/y\0v"), err("ENOSPC"));
    assert_eq!(domain_nodes(&xs, 1), before, "nothing stored, no unreachable node");
}

#[test]
fn node_quota_refuses_a_deep_create_whole_and_stores_no_ancestor() {
    let mut xs = store();
    xs.quota.nodes = 10;
    for i in 0..7 {
        ok_or_err(&mut xs, 1, XS_WRITE, 0, format!("n{i}\0v").as_bytes()).unwrap();
    }
    let before = domain_nodes(&xs, 1);
    // 8 nodes owned (home + 7); a/b/c needs 3 more.
    assert_eq!(ok_or_err(&mut xs, 1, XS_WRITE, 0, b"a/b/c\0v"), err("ENOSPC"));
    assert_eq!(domain_nodes(&xs, 1), before);
    assert_eq!(ok_or_err(&mut xs, 1, XS_WRITE, 0, b"a/b\0v"), Ok(b"OK\0".to_vec()), "two still fit");
}

#[test]
fn a_transaction_past_its_touched_nodes_quota_midway_through_create_or_rm_changes_nothing() {
    let mut xs = store();
    for i in 0..20 {
        ok_or_err(&mut xs, 1, XS_WRITE, 0, format!("t/k{i}\0v").as_bytes()).unwrap();
    }
    xs.quota.trans_nodes = 10;
    let tx = start_tx(&mut xs, 1);
    assert_eq!(ok_or_err(&mut xs, 1, XS_RM, tx, b"t\0"), err("ENOSPC"));
    assert_eq!(ok_or_err(&mut xs, 1, XS_TRANSACTION_END, tx, b"T\0"), Ok(b"OK\0".to_vec()));
    assert_eq!(domain_nodes(&xs, 1).len(), 21, "the subtree is whole");
    let tx = start_tx(&mut xs, 1);
    assert_eq!(ok_or_err(&mut xs, 1, XS_WRITE, tx, b"x/a/b/c/d/e/f/g/h/i/j/k\0v"), err("ENOSPC"));
    assert_eq!(ok_or_err(&mut xs, 1, XS_TRANSACTION_END, tx, b"T\0"), Ok(b"OK\0".to_vec()));
    assert!(xs.tree().peek("/local/domain/1/x").is_none(), "no partial chain committed");
}

#[test]
fn rewriting_a_node_in_a_transaction_records_one_change_per_path() {
    let mut xs = store();
    let tx = start_tx(&mut xs, 1);
    for i in 0..5000 {
        ok_or_err(&mut xs, 1, XS_WRITE, tx, format!("k\0{i}").as_bytes()).unwrap();
    }
    ok_or_err(&mut xs, 1, XS_WRITE, tx, b"a/b\0v").unwrap();
    ok_or_err(&mut xs, 1, XS_RM, tx, b"a\0").unwrap();
    ok_or_err(&mut xs, 1, XS_WRITE, tx, b"a/b\0w").unwrap();
    let t = &xs.conns[&1].txns[&tx];
    let paths: Vec<&str> = t.changes.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, ["/local/domain/1/k", "/local/domain/1/a/b", "/local/domain/1/a"]);
    assert!(t.changes.iter().all(|c| !c.exact), "a/b was removed inside a (exact) then written (recursive)");
    assert!(t.changes.len() <= xs.quota.trans_nodes);
    assert_eq!(ok_or_err(&mut xs, 1, XS_TRANSACTION_END, tx, b"T\0"), Ok(b"OK\0".to_vec()));
    assert_eq!(xs.tree().peek("/local/domain/1/k").unwrap().value, b"4999");
}

#[test]
fn each_changed_path_fires_its_watch_once_at_commit() {
    let mut xs = store();
    ok_or_err(&mut xs, 1, XS_WATCH, 0, b"k\0t\0").unwrap();
    xs.take_events(1);
    let tx = start_tx(&mut xs, 1);
    for i in 0..10 {
        ok_or_err(&mut xs, 1, XS_WRITE, tx, format!("k\0{i}").as_bytes()).unwrap();
    }
    let (t, _, events) = req(&mut xs, 1, XS_TRANSACTION_END, tx, b"T\0");
    assert_eq!((t, events.len()), (XS_TRANSACTION_END, 1));
}

/// What a domain may hold: the hard quota plus one request's worth.
const BUDGET: usize = quota::MEMORY_PER_DOMAIN + 8 * 1024;

fn other_domain_still_served(xs: &mut Xenstore) {
    assert_eq!(ok_or_err(xs, 2, XS_WRITE, 0, b"fine\0v"), Ok(b"OK\0".to_vec()));
    assert_eq!(ok_or_err(xs, 2, XS_READ, 0, b"fine\0"), Ok(b"v".to_vec()));
    let tx = start_tx(xs, 2);
    assert_eq!(ok_or_err(xs, 2, XS_TRANSACTION_END, tx, b"T\0"), Ok(b"OK\0".to_vec()));
}

#[test]
fn attack_big_values_stop_at_the_memory_quota_with_enomem() {
    let mut xs = store();
    let mut last = Ok(Vec::new());
    for i in 0..335 {
        last = ok_or_err(&mut xs, 1, XS_WRITE, 0, &[format!("big{i}\0").into_bytes(), vec![b'x'; 2000]].concat());
        assert!(xs.memory(1) < BUDGET, "{} at write {i}", xs.memory(1));
    }
    assert_eq!(last, err("ENOMEM"));
    assert_eq!(xen_public::errno::ENOMEM, 12);
    // Freeing makes room again.
    for i in 0..10 {
        ok_or_err(&mut xs, 1, XS_RM, 0, format!("big{i}\0").as_bytes()).unwrap();
    }
    assert_eq!(ok_or_err(&mut xs, 1, XS_WRITE, 0, b"small\0v"), Ok(b"OK\0".to_vec()));
    other_domain_still_served(&mut xs);
}

#[test]
fn attack_deep_path_reads_in_transactions_stop_at_the_memory_quota() {
    let mut xs = store();
    let deep = format!("{}\0", &deep_path(1000)["/local/domain/1/".len()..]);
    let mut results = Vec::new();
    for _ in 0..11 {
        match ok_or_err(&mut xs, 1, XS_TRANSACTION_START, 0, b"\0") {
            Ok(id) => {
                let tx: u32 = String::from_utf8(id).unwrap().trim_end_matches('\0').parse().unwrap();
                results.push(ok_or_err(&mut xs, 1, XS_READ, tx, deep.as_bytes()));
            }
            Err(e) => results.push(Err(e)),
        }
        assert!(xs.memory(1) < BUDGET, "{}", xs.memory(1));
    }
    assert!(results.iter().all(|r| *r == err("ENOMEM")), "{results:?}");
    other_domain_still_served(&mut xs);
}

#[test]
fn attack_watches_with_long_tokens_stop_at_the_memory_quota() {
    let mut xs = store();
    let token = vec![b't'; 4000];
    let mut refused = 0;
    for i in 0..129 {
        let r = ok_or_err(&mut xs, 1, XS_WATCH, 0, &[format!("w{i}\0").into_bytes(), token.clone(), vec![0]].concat());
        refused += usize::from(r == err("ENOMEM"));
        xs.take_events(1);
        assert!(xs.memory(1) < BUDGET);
    }
    assert!(refused > 80, "{refused}");
    other_domain_still_served(&mut xs);
}

#[test]
fn attack_a_never_reading_connection_holds_bounded_events_while_dom0_writes() {
    let mut xs = store();
    let token = vec![b't'; 3000];
    ok_or_err(&mut xs, 2, XS_WATCH, 0, &[b"/local/domain/2\0".to_vec(), token, vec![0]].concat()).unwrap();
    ok_or_err(&mut xs, 0, XS_WATCH, 0, &[b"/\0".to_vec(), vec![b'u'; 3000], vec![0]].concat()).unwrap();
    for i in 0..2000 {
        client::write(&mut xs, &format!("/local/domain/2/k{}", i % 50), b"v").unwrap();
    }
    assert!(xs.memory(2) < BUDGET, "{}", xs.memory(2));
    assert!(xs.conns[&2].dropped_events > 0);
    assert!(xs.conns[&0].event_bytes <= DOM0_EVENT_BYTES, "dom0's own queue is bounded too");
    assert_eq!(ok_or_err(&mut xs, 1, XS_WRITE, 0, b"fine\0v"), Ok(b"OK\0".to_vec()));
    // The reader catches up in batches, and is then under the quota again.
    let first = xs.take_events_upto(2, EVENT_BATCH_BYTES);
    assert!(!first.is_empty() && first.iter().map(Vec::len).sum::<usize>() <= EVENT_BATCH_BYTES);
    xs.take_events(2);
    assert_eq!(xs.conns[&2].event_bytes, 0);
    assert!(xs.memory(2) < 32 * 1024, "{}", xs.memory(2));
}

#[test]
fn attack_many_writes_in_one_transaction_stop_at_the_memory_quota() {
    let mut xs = store();
    let tx = start_tx(&mut xs, 1);
    let mut last = Ok(Vec::new());
    for i in 0..1000 {
        last = ok_or_err(&mut xs, 1, XS_WRITE, tx, &[format!("k{i}\0").into_bytes(), vec![b'x'; 1500]].concat());
        assert!(xs.memory(1) < BUDGET, "{} at {i}", xs.memory(1));
    }
    assert_eq!(last, err("ENOMEM"));
    other_domain_still_served(&mut xs);
    assert_eq!(ok_or_err(&mut xs, 1, XS_TRANSACTION_END, tx, b"F\0"), Ok(b"OK\0".to_vec()));
    assert!(xs.memory(1) < 4096, "the aborted transaction's bytes are released: {}", xs.memory(1));
}

#[test]
fn memory_accounting_returns_to_its_start_after_write_rm_and_watch_unwatch() {
    let mut xs = store();
    let start = xs.memory(1);
    ok_or_err(&mut xs, 1, XS_WRITE, 0, b"a/b/c\0value").unwrap();
    ok_or_err(&mut xs, 1, XS_WATCH, 0, b"a\0tok\0").unwrap();
    assert!(xs.memory(1) > start);
    ok_or_err(&mut xs, 1, XS_UNWATCH, 0, b"a\0tok\0").unwrap();
    ok_or_err(&mut xs, 1, XS_RM, 0, b"a\0").unwrap();
    xs.take_events(1);
    assert_eq!(xs.memory(1), start);
}

#[test]
fn attack_a_domu_writing_nodes_another_domu_owns_cannot_inflate_it_past_its_quota() {
    // Domain 2 owns small nodes whose ACL lets domain 1 write them; growth
    // of a value is charged to the owner, so it must fit the owner's quota.
    let mut xs = store();
    for i in 0..150 {
        let path = format!("d{i}\0");
        ok_or_err(&mut xs, 2, XS_WRITE, 0, format!("{path}x").as_bytes()).unwrap();
        ok_or_err(&mut xs, 2, XS_SET_PERMS, 0, format!("{path}n2\0w1\0").as_bytes()).unwrap();
    }
    let big = vec![b'v'; 2000];
    let mut refused = 0;
    for i in 0..150 {
        let mut w = format!("/local/domain/2/d{i}\0").into_bytes();
        w.extend_from_slice(&big);
        if ok_or_err(&mut xs, 1, XS_WRITE, 0, &w) == err("ENOMEM") {
            refused += 1;
        }
    }
    assert!(refused > 0, "domain 1 filled domain 2's nodes without limit");
    assert!(xs.memory(2) <= quota::MEMORY_PER_DOMAIN + 4096, "domain 2 charged {}", xs.memory(2));
    assert_eq!(ok_or_err(&mut xs, 1, XS_WRITE, 0, b"own\0still works"), Ok(b"OK\0".to_vec()));
}

#[test]
fn attack_many_watches_on_a_long_path_queue_no_more_than_the_quota_allows() {
    // 128 watches on the home, then a write of a long path below it: each
    // event is built only once it is known to fit (no burst past the quota).
    let mut xs = store();
    for i in 0..128 {
        ok_or_err(&mut xs, 1, XS_WATCH, 0, format!("/local/domain/1\0t{i}\0").as_bytes()).unwrap();
    }
    xs.take_events(1);
    let long = format!("{}\0v", "a".repeat(1900));
    let _ = ok_or_err(&mut xs, 1, XS_WRITE, 0, long.as_bytes());
    assert!(xs.memory(1) <= quota::MEMORY_PER_DOMAIN, "domain 1 charged {}", xs.memory(1));
    assert_eq!(ok_or_err(&mut xs, 2, XS_WRITE, 0, b"other\0fine"), Ok(b"OK\0".to_vec()));
}

#[test]
fn a_released_domains_nodes_in_another_live_home_pass_to_that_domain_not_to_no_one() {
    // Domain 2 lets domain 1 write under its home; when domain 1 goes, the
    // nodes it made there are charged to domain 2 (bounded by its quota),
    // and what it owned in its own home passes to dom0 (removed with it).
    let mut xs = store();
    ok_or_err(&mut xs, 2, XS_WRITE, 0, b"data\0").unwrap();
    ok_or_err(&mut xs, 2, XS_SET_PERMS, 0, b"data\0n2\0w1\0").unwrap();
    ok_or_err(&mut xs, 1, XS_WRITE, 0, b"/local/domain/2/data/left\0behind").unwrap();
    ok_or_err(&mut xs, 1, XS_WRITE, 0, b"mine\0home").unwrap();
    let before = xs.memory(2);
    assert!(xs.release(1));
    assert!(xs.memory(2) > before, "domain 2 now carries the node left in its home");
    assert_eq!(xs.memory(1), 0);
    let perms = ok_or_err(&mut xs, 0, XS_GET_PERMS, 0, b"/local/domain/2/data/left\0").unwrap();
    assert!(perms.starts_with(b"n2"), "owner {:?}", String::from_utf8_lossy(&perms));
    let home = ok_or_err(&mut xs, 0, XS_GET_PERMS, 0, b"/local/domain/1/mine\0").unwrap();
    assert!(home.starts_with(b"n0"), "owner {:?}", String::from_utf8_lossy(&home));
}

#[test]
fn a_domu_creating_under_another_domus_node_is_enomem_once_that_owner_is_at_its_memory_quota() {
    // Xen 4.17's create_node writes the nearest existing ancestor, whose
    // children list grows, charged to that node's owner (do_tdb_write ->
    // domain_memory_add: ENOMEM past the owner's hard quota).
    let mut xs = store();
    ok_or_err(&mut xs, 0, XS_WRITE, 0, b"/local/domain/2/shared\0").unwrap();
    ok_or_err(&mut xs, 0, XS_SET_PERMS, 0, b"/local/domain/2/shared\0n2\0b1\0").unwrap();
    // Domain 2 fills its quota, in ever smaller steps.
    let mut i = 0;
    for size in [1900, 200, 20, 0] {
        loop {
            let mut p = format!("f{i}\0").into_bytes();
            p.resize(p.len() + size, b'v');
            i += 1;
            if ok_or_err(&mut xs, 2, XS_WRITE, 0, &p).is_err() {
                break;
            }
        }
    }
    assert!(xs.memory(2) < xs.quota.memory);
    let mut refused = None;
    for j in 0..200 {
        if let Err(e) = ok_or_err(&mut xs, 1, XS_MKDIR, 0, format!("/local/domain/2/shared/{j}\0").as_bytes()) {
            refused = Some(e);
            break;
        }
    }
    assert_eq!(refused, Some(String::from("ENOMEM\0")));
    assert!(xs.memory(2) <= xs.quota.memory, "{} past the owner's quota {}", xs.memory(2), xs.quota.memory);
    assert!(xs.memory(1) < xs.quota.memory / 2, "the creator had room: the owner's quota refused");
}

#[test]
fn a_transactions_rm_of_a_subtree_never_carries_the_domain_past_its_memory_quota() {
    // The change records a transaction keeps for its commit are charged to
    // the connection; an RM of many nodes must fit them in the quota too.
    let mut xs = store();
    for i in 0..100 {
        ok_or_err(&mut xs, 1, XS_WRITE, 0, format!("data/t/n{i}\0").as_bytes()).unwrap();
    }
    let q = xs.quota.memory;
    let mut tried = 0;
    for pad in 0.. {
        let tx = ok_or_err(&mut xs, 1, XS_TRANSACTION_START, 0, b"\0").unwrap();
        let tx: u32 = core::str::from_utf8(&tx[..tx.len() - 1]).unwrap().parse().unwrap();
        let r = ok_or_err(&mut xs, 1, XS_RM, tx, b"data/t\0");
        assert!(xs.memory(1) <= q, "{} past the quota {q} after {r:?} (pad {pad})", xs.memory(1));
        assert!(r == Ok(b"OK\0".to_vec()) || r == err("ENOMEM"), "{r:?}");
        tried += 1;
        ok_or_err(&mut xs, 1, XS_TRANSACTION_END, tx, b"F\0").unwrap();
        if r.is_err() {
            break;
        }
        let mut p = format!("data/pad{pad}\0").into_bytes();
        p.resize(p.len() + 1500, b'p');
        if ok_or_err(&mut xs, 1, XS_WRITE, 0, &p).is_err() {
            break;
        }
    }
    assert!(tried > 10, "the room shrank step by step down to the refusal");
    assert_eq!(xs.tree().paths().filter(|p| p.starts_with("/local/domain/1/data/t/")).count(), 100, "nothing removed");
}
