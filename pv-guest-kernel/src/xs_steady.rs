//! The `xs-steady` mode of the demo guest: the well-behaved second domU of
//! the hostile-client boot test. It runs WRITE, READ and DIRECTORY round
//! trips on its own home (`data/steady/k<i>`) and checks every answer:
//! the value read back is the one just written, and the directory lists
//! the key. It stops after `ops=N` round trips (2000 unless told) and at
//! least `secs=S` seconds (0 unless told), so that it can be made to span
//! another guest's attack.
//!
//! Console contract: `xenbus: steady: <n> ops` as a heartbeat, then
//! `xenbus: steady: <n> ops, 0 errors` or `xenbus: steady: <n> ops, error
//! at <op> <path>: <what>` (the first error ends the run); then it powers
//! off. Every request is bounded by the client's patience, so a stalled
//! xenstored shows as `ETIMEDOUT`, never as a hang.

use crate::xs::{Beat, cmdline, err_name, now, num, poweroff};
use core::fmt::Write;
use pv_guest_kernel::xenbus::{XBT_NIL, frame, live};
use pv_guest_kernel::{StartInfo, println};

/// Keys the loop cycles over.
const KEYS: u32 = 16;
/// A path or value being built.
type Text = heapless::String<48>;

/// The first thing that went wrong.
struct Failed {
    op: &'static str,
    path: Text,
    what: &'static str,
}

/// `fmt` rendered into a short string.
fn text(args: core::fmt::Arguments<'_>) -> Text {
    let mut s = Text::new();
    let _ = s.write_fmt(args);
    s
}

/// One write, read-back and (every few rounds) directory on key `i`;
/// the round trips made.
fn round(xs: &mut live::Xenbus, i: u32) -> Result<u32, Failed> {
    let key = text(format_args!("k{}", i % KEYS));
    let path = text(format_args!("data/steady/{key}"));
    let value = text(format_args!("v{i}"));
    let fail = |op, what| Failed { op, path: path.clone(), what };
    xs.write(XBT_NIL, &path, value.as_bytes()).map_err(|e| fail("write", err_name(e)))?;
    let mut buf = [0u8; 48];
    let n = xs.read(XBT_NIL, &path, &mut buf).map_err(|e| fail("read", err_name(e)))?;
    if &buf[..n] != value.as_bytes() {
        return Err(fail("read", "wrong value"));
    }
    if i % 4 != 3 {
        return Ok(2);
    }
    let mut dir = [0u8; 512];
    let n = xs.directory(XBT_NIL, "data/steady", &mut dir).map_err(|e| fail("directory", err_name(e)))?;
    if !frame::names(&dir[..n]).any(|name| name == key.as_bytes()) {
        return Err(fail("directory", "key missing"));
    }
    Ok(3)
}

/// Run the mode; never returns.
pub fn run(si: &StartInfo) -> ! {
    let line = cmdline(si);
    let want = num(line, "ops").unwrap_or(2000);
    let until = now().saturating_add(num(line, "secs").unwrap_or(0).saturating_mul(1_000_000_000));
    let mut xs = match live::connect(si) {
        Ok(xs) => xs,
        Err(e) => {
            println!("xenbus: steady: 0 ops, error at connect: {}", err_name(e));
            poweroff();
        }
    };
    let mut beat = Beat::new("steady");
    let mut ops = 0u32;
    let mut i = 0u32;
    while u64::from(ops) < want || now() < until {
        match round(&mut xs, i) {
            Ok(n) => ops += n,
            Err(f) => {
                println!("xenbus: steady: {ops} ops, error at {} {}: {}", f.op, f.path, f.what);
                poweroff();
            }
        }
        i = i.wrapping_add(1);
        beat.tick(ops);
    }
    println!("xenbus: steady: {ops} ops, 0 errors");
    poweroff();
}
