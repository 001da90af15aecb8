//! The `xs-attack` mode of the demo guest: the hostile client of issue
//! 15's boot test. Over its live xenstore ring it sends each class of
//! malformed message (an unknown or reply-only type, a privileged
//! request, a missing NUL, a wrong argument count, paths outside the
//! namespace, a transaction id it does not own), goes past each
//! per-domain quota (entry size, watches, open transactions, nodes,
//! memory: `dom0-tools/src/xenstore/quota.rs`, Xen 4.17's defaults), checks
//! it is still served, and ends with a header whose length is past
//! `XENSTORE_PAYLOAD_MAX`. With `ring-req` or `ring-rsp` on its command
//! line it skips all that and instead makes up its request or response
//! ring's indices.
//!
//! Console contract: one `xenbus: hostile <class> -> <verdict>` line per
//! class, the verdict being the `XS_ERROR` name, `dropped` (no answer, and
//! none to a plain READ afterwards either), or `ALLOWED` (xenstored did
//! what it must refuse). Quota lines add `(at <n>)`, the count that was
//! refused. Then `xenbus: hostile done` and power-off. Every wait is
//! bounded (the client's patience, [`PROBE_NS`] for the last probes), so
//! the guest never hangs on a xenstored that stopped answering it.

use crate::xs::{Beat, cmdline, err_name, now, poweroff};
use core::fmt::Write;
use pv_guest_kernel::xenbus::{ETIMEDOUT, Port, XBT_NIL, live::Xenbus};
use pv_guest_kernel::{StartInfo, println, shared};
use xen_public::io::byte_ring::RingMem;
use xen_public::io::xs_wire::*;
use zerocopy::IntoBytes;

/// How long a probe of a possibly dropped connection waits (ns).
const PROBE_NS: u64 = 3_000_000_000;
/// How long xenstored gets to notice made-up ring indices (ns).
const NOTICE_NS: u64 = 1_000_000_000;
/// The heartbeat's period while waiting (ns).
const SLICE_NS: u64 = 50_000_000;
/// A path being built.
type Text = heapless::String<64>;

fn text(args: core::fmt::Arguments<'_>) -> Text {
    let mut s = Text::new();
    let _ = s.write_fmt(args);
    s
}

/// The verdict of an answer that must be a refusal.
fn verdict<T>(r: Result<T, i64>) -> &'static str {
    match r {
        Ok(_) => "ALLOWED",
        Err(e) => err_name(e),
    }
}

fn report<T>(class: &str, r: Result<T, i64>) {
    println!("xenbus: hostile {class} -> {}", verdict(r));
}

/// A frame of `type_` in transaction `tx` carrying `payload`, sent as
/// is; the reply's type and length, or `-errno`.
fn raw(xs: &mut Xenbus, type_: u32, tx: u32, payload: &[u8]) -> Result<(u32, usize), i64> {
    let id = xs.next_req_id_for_tests();
    let hdr = XsdSockmsg { type_, req_id: id, tx_id: tx, len: payload.len() as u32 };
    xs.send_raw(hdr.as_bytes())?;
    xs.send_raw(payload)?;
    xs.wait_reply(id, &mut [0u8; 64], pv_guest_kernel::xenbus::PATIENCE_NS)
}

/// Bad headers, missing NULs, wrong arguments: each gets its own line.
fn malformed(xs: &mut Xenbus) {
    report("unknown-type", raw(xs, 9999, XBT_NIL, b"domid\0"));
    report("reply-type-watch-event", raw(xs, XS_WATCH_EVENT, XBT_NIL, b"domid\0tok\0"));
    report("reply-type-error", raw(xs, XS_ERROR, XBT_NIL, b"EINVAL\0"));
    report("privileged-introduce", raw(xs, XS_INTRODUCE, XBT_NIL, b"5\x001\x002\0"));
    report("privileged-release", raw(xs, XS_RELEASE, XBT_NIL, b"0\0"));
    report("missing-nul-read", raw(xs, XS_READ, XBT_NIL, b"domid"));
    report("missing-nul-write", raw(xs, XS_WRITE, XBT_NIL, b"data-no-nul"));
    report("empty-payload-read", raw(xs, XS_READ, XBT_NIL, b""));
    report("watch-one-arg", raw(xs, XS_WATCH, XBT_NIL, b"data\0"));
    report("set-perms-garbage", raw(xs, XS_SET_PERMS, XBT_NIL, b"data\0zz\0"));
    report("transaction-end-garbage", raw(xs, XS_TRANSACTION_END, XBT_NIL, b"X\0"));
}

/// Paths outside the namespace (or outside what a domU may touch).
fn paths(xs: &mut Xenbus) {
    let mut buf = [0u8; 64];
    report("path-dotdot", xs.read(XBT_NIL, "../0/name", &mut buf));
    report("path-double-slash", xs.read(XBT_NIL, "/local/domain//0/name", &mut buf));
    report("path-trailing-slash", xs.write(XBT_NIL, "data/", b"x"));
    report("path-bad-chars", xs.write(XBT_NIL, "data/a b", b"x"));
    report("path-not-utf8", raw(xs, XS_READ, XBT_NIL, b"data/\xff\xfe\0"));
    let mut long = [b'a'; XENSTORE_REL_PATH_MAX as usize + 8];
    long[XENSTORE_REL_PATH_MAX as usize + 7] = 0;
    report("path-too-long", raw(xs, XS_READ, XBT_NIL, &long));
    report("path-outside-home", xs.write(XBT_NIL, "/outside", b"x"));
    // Another domain's trace control (owned by that domain, issue 19):
    // neither started nor read from here.
    report("other-domain-control-trace", xs.write(XBT_NIL, "/local/domain/1/control/trace", b"start"));
    report("other-domain-feature-trace", xs.read(XBT_NIL, "/local/domain/1/control/feature-trace", &mut buf));
    report("path-special-write", xs.write(XBT_NIL, "@releaseDomain", b"x"));
}

/// Requests in transactions this connection never started.
fn foreign_transactions(xs: &mut Xenbus) {
    let mut buf = [0u8; 64];
    report("tx-not-owned", xs.read(1, "domid", &mut buf));
    report("tx-made-up", xs.write(0xdead_beef, "data/t", b"x"));
    report("tx-end-not-owned", xs.transaction_end(7, true));
}

/// Write one value past the entry-size quota (2048 bytes a record).
fn quota_entry(xs: &mut Xenbus) {
    let big = [b'e'; 2100];
    report("quota-entry-size", xs.write(XBT_NIL, "data/big", &big));
}

/// Register watches until refused, then remove them.
fn quota_watches(xs: &mut Xenbus, beat: &mut Beat) {
    let mut n = 0u32;
    let r = loop {
        let tok = text(format_args!("w{n}"));
        match xs.watch("data/watched", &tok) {
            Ok(()) if n < 1000 => n += 1,
            r => break r,
        }
        beat.tick(n);
    };
    println!("xenbus: hostile quota-watches -> {} (at {})", verdict(r), n + 1);
    for i in 0..n {
        let _ = xs.unwatch("data/watched", &text(format_args!("w{i}")));
        beat.tick(i);
    }
    // The first firings of all those watches were queued or dropped: go
    // on without them.
    while xs.next_watch_event(&mut [0u8; 256], 0).is_ok() {}
}

/// Start transactions until refused, then abort them.
fn quota_transactions(xs: &mut Xenbus) {
    let mut open = heapless::Vec::<u32, 64>::new();
    let r = loop {
        match xs.transaction_start() {
            Ok(t) if open.push(t).is_ok() => {}
            Ok(_) => break Ok(0),
            Err(e) => break Err(e),
        }
    };
    println!("xenbus: hostile quota-transactions -> {} (at {})", verdict(r), open.len() + 1);
    for t in open {
        let _ = xs.transaction_end(t, false);
    }
}

/// Write nodes under `dir` (each `value` long) until refused, at most
/// `max`; the answer that ended it and the count written.
fn fill(xs: &mut Xenbus, dir: &str, value: &[u8], max: u32, beat: &mut Beat) -> (Result<(), i64>, u32) {
    let mut n = 0u32;
    loop {
        match xs.write(XBT_NIL, &text(format_args!("{dir}/{n}")), value) {
            Ok(()) if n < max => n += 1,
            r => return (r, n),
        }
        beat.tick(n);
    }
}

/// Create nodes until refused (1000 a domain in Xen), then remove them.
fn quota_nodes(xs: &mut Xenbus, beat: &mut Beat) {
    let (r, n) = fill(xs, "data/n", b"", 1100, beat);
    println!("xenbus: hostile quota-nodes -> {} (at {})", verdict(r), n + 1);
    report_cleanup(xs, "data/n");
}

/// Store large values until the memory quota refuses, then remove them.
fn quota_memory(xs: &mut Xenbus, beat: &mut Beat) {
    let (r, n) = fill(xs, "data/m", &[b'm'; 2000], 2000, beat);
    println!("xenbus: hostile quota-memory -> {} (at {})", verdict(r), n + 1);
    report_cleanup(xs, "data/m");
}

/// Remove `dir`; a failure is printed (the next classes would be off).
fn report_cleanup(xs: &mut Xenbus, dir: &str) {
    if let Err(e) = xs.rm(XBT_NIL, dir) {
        println!("xenbus: hostile cleanup of {dir} failed: {}", err_name(e));
    }
}

/// Wait up to [`PROBE_NS`] for the reply to `id`, in slices, keeping the
/// heartbeat going.
fn probe_reply(xs: &mut Xenbus, id: u32, beat: &mut Beat) -> Result<(u32, usize), i64> {
    let deadline = now().saturating_add(PROBE_NS);
    loop {
        match xs.wait_reply(id, &mut [0u8; 16], SLICE_NS) {
            Err(e) if e == -ETIMEDOUT && now() < deadline => beat.waiting(),
            r => return r,
        }
    }
}

/// Whether a plain READ is still answered within [`PROBE_NS`].
fn served(xs: &mut Xenbus, beat: &mut Beat) -> bool {
    let id = xs.next_req_id_for_tests();
    let hdr = XsdSockmsg { type_: XS_READ, req_id: id, tx_id: 0, len: 6 };
    let sent = xs.send_raw(hdr.as_bytes()).and_then(|()| xs.send_raw(b"domid\0"));
    sent.and_then(|()| probe_reply(xs, id, beat)).is_ok()
}

/// The verdict of the last blow: `dropped` if neither `r` nor a READ
/// after it was answered.
fn final_verdict(xs: &mut Xenbus, r: Result<(u32, usize), i64>, beat: &mut Beat) -> &'static str {
    match r {
        Err(e) if e == -ETIMEDOUT && !served(xs, beat) => "dropped",
        Err(e) if e == -ETIMEDOUT => "ignored (still served)",
        other => verdict(other),
    }
}

/// A header whose payload length is past `XENSTORE_PAYLOAD_MAX`.
fn bad_length(xs: &mut Xenbus, beat: &mut Beat) {
    let id = xs.next_req_id_for_tests();
    let hdr = XsdSockmsg { type_: XS_READ, req_id: id, tx_id: 0, len: XENSTORE_PAYLOAD_MAX + 1 };
    let r = xs.send_raw(hdr.as_bytes()).and_then(|()| probe_reply(xs, id, beat));
    println!("xenbus: hostile bad-length -> {}", final_verdict(xs, r, beat));
}

/// Sleep [`NOTICE_NS`] without touching the rings (a pump would repair
/// made-up response indices before xenstored saw them).
fn let_xenstored_look(xs: &mut Xenbus, beat: &mut Beat) {
    xs.port_mut().notify();
    let until = now().saturating_add(NOTICE_NS);
    while now() < until {
        let _ = shared::sleep_ns(SLICE_NS / 2);
        beat.waiting();
    }
}

/// The request ring's producer index far past its consumer.
fn ring_req(xs: &mut Xenbus, beat: &mut Beat) {
    let mem = xs.ring_mem_for_tests();
    let cons = mem.load(REQ_RING.cons);
    let prod = mem.load(REQ_RING.prod);
    mem.store(REQ_RING.prod, cons.wrapping_add(0x10_0000));
    let_xenstored_look(xs, beat);
    // Put them back: a READ now is answered only if xenstored kept the
    // connection.
    let mem = xs.ring_mem_for_tests();
    mem.store(REQ_RING.prod, prod.max(mem.load(REQ_RING.cons)));
    let v = if served(xs, beat) { "ignored (still served)" } else { "dropped" };
    println!("xenbus: hostile ring-req-prod-far-past-cons -> {v}");
}

/// The response ring's consumer index ahead of its producer, then a
/// request so that xenstored has a reply to write.
fn ring_rsp(xs: &mut Xenbus, beat: &mut Beat) {
    let mem = xs.ring_mem_for_tests();
    let prod = mem.load(RSP_RING.prod);
    mem.store(RSP_RING.cons, prod.wrapping_add(0x4000));
    let hdr = XsdSockmsg { type_: XS_READ, req_id: 0x7fff_0000, tx_id: 0, len: 6 };
    let sent = REQ_RING.produce(mem, hdr.as_bytes()) + REQ_RING.produce(mem, b"domid\0");
    let_xenstored_look(xs, beat);
    let mem = xs.ring_mem_for_tests();
    let prod = mem.load(RSP_RING.prod);
    mem.store(RSP_RING.cons, prod);
    let v = if sent != 22 {
        "not sent"
    } else if served(xs, beat) {
        "ignored (still served)"
    } else {
        "dropped"
    };
    println!("xenbus: hostile ring-rsp-cons-past-prod -> {v}");
}

/// Run the mode; never returns.
pub fn run(si: &StartInfo) -> ! {
    let line = cmdline(si);
    let has = |w: &str| line.split_ascii_whitespace().any(|x| x == w);
    let mut xs = match pv_guest_kernel::xenbus::live::connect(si) {
        Ok(xs) => xs,
        Err(e) => {
            println!("xenbus: hostile connect failed: {}", err_name(e));
            poweroff();
        }
    };
    let started = now();
    let mut beat = Beat::new("hostile");
    if has("ring-req") {
        ring_req(&mut xs, &mut beat);
    } else if has("ring-rsp") {
        ring_rsp(&mut xs, &mut beat);
    } else {
        malformed(&mut xs);
        paths(&mut xs);
        foreign_transactions(&mut xs);
        quota_entry(&mut xs);
        quota_watches(&mut xs, &mut beat);
        quota_transactions(&mut xs);
        quota_nodes(&mut xs, &mut beat);
        quota_memory(&mut xs, &mut beat);
        let alive = xs.write(XBT_NIL, "data/alive", b"yes").and_then(|()| xs.read(XBT_NIL, "data/alive", &mut [0u8; 8]));
        println!("xenbus: hostile after the quotas: {}", if alive == Ok(3) { "still served" } else { "NOT SERVED" });
        bad_length(&mut xs, &mut beat);
    }
    println!("xenbus: hostile done in {} ms", now().saturating_sub(started) / 1_000_000);
    poweroff();
}
