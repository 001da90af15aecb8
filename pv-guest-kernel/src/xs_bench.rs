//! The `xs-bench` mode of the demo guest: xenstore latency as a domU sees
//! it, for `cargo xtask bench`. It times `ops=N` (2000 unless told) READ
//! round trips of a node in its home, N WRITE round trips of it, and
//! `ops/10` watch firings (from sending a WRITE of a watched node to the
//! `XS_WATCH_EVENT`'s arrival), each with the PV clock (shared_info's
//! system time and the TSC).
//!
//! Console contract: `xenbus: bench <what> median <m> ns p99 <p> ns` for
//! `read`, `write` and `watch`, then `xenbus: bench done` (or `xenbus:
//! bench error <op> <errno name>`), and power-off.

use crate::xs::{cmdline, err_name, now, num, poweroff};
use pv_guest_kernel::xenbus::{XBT_NIL, live::Xenbus};
use pv_guest_kernel::{StartInfo, println};

/// Most samples kept per figure.
const MAX_SAMPLES: usize = 4000;
/// The watch's token.
const TOKEN: &str = "bench";

/// The samples of one figure (ns here; netdemo keeps µs in them).
/// At most `N` kept; later ones are not.
pub(crate) struct Samples<const N: usize = MAX_SAMPLES> {
    v: [u32; N],
    n: usize,
}

impl<const N: usize> Samples<N> {
    pub(crate) const fn new() -> Samples<N> {
        Samples { v: [0; N], n: 0 }
    }

    pub(crate) fn push(&mut self, ns: u64) {
        if self.n < N {
            self.v[self.n] = ns.min(u64::from(u32::MAX)) as u32;
            self.n += 1;
        }
    }

    /// The median and the 99th percentile (nearest rank).
    pub(crate) fn median_p99(&mut self) -> (u32, u32) {
        let s = &mut self.v[..self.n];
        s.sort_unstable();
        let at = |q: usize| s.get((s.len() * q / 100).min(s.len().saturating_sub(1))).copied().unwrap_or(0);
        (at(50), at(99))
    }

    fn print(&mut self, what: &str) {
        let (m, p) = self.median_p99();
        println!("xenbus: bench {what} median {m} ns p99 {p} ns");
    }
}

/// Stop with the failed operation.
fn fail(op: &str, e: i64) -> ! {
    println!("xenbus: bench error {op} {}", err_name(e));
    poweroff();
}

/// Time `n` calls of `op` into `s`.
fn time(s: &mut Samples, n: usize, xs: &mut Xenbus, what: &str, mut op: impl FnMut(&mut Xenbus) -> Result<(), i64>) {
    s.n = 0;
    for _ in 0..n {
        let t0 = now();
        op(xs).unwrap_or_else(|e| fail(what, e));
        s.push(now().saturating_sub(t0));
    }
}

/// Run the mode; never returns.
pub fn run(si: &StartInfo) -> ! {
    let n = (num(cmdline(si), "ops").unwrap_or(2000) as usize).clamp(1, MAX_SAMPLES);
    let mut xs = pv_guest_kernel::xenbus::live::connect(si).unwrap_or_else(|e| fail("connect", e));
    xs.write(XBT_NIL, "data/bench", b"0123456789").unwrap_or_else(|e| fail("write", e));
    let mut s = Samples::new();
    let mut buf = [0u8; 32];
    time(&mut s, n, &mut xs, "read", |xs| xs.read(XBT_NIL, "data/bench", &mut buf).map(|_| ()));
    s.print("read");
    time(&mut s, n, &mut xs, "write", |xs| xs.write(XBT_NIL, "data/bench", b"9876543210"));
    s.print("write");
    xs.watch("data/watched", TOKEN).unwrap_or_else(|e| fail("watch", e));
    let mut ev = [0u8; 256];
    // The firing on registration.
    xs.wait_watch_event(Some(TOKEN), &mut ev, pv_guest_kernel::xenbus::PATIENCE_NS).unwrap_or_else(|e| fail("watch event", e));
    time(&mut s, (n / 10).max(1), &mut xs, "watch", |xs| {
        xs.write(XBT_NIL, "data/watched", b"x")?;
        xs.wait_watch_event(Some(TOKEN), &mut ev, pv_guest_kernel::xenbus::PATIENCE_NS).map(|_| ())
    });
    s.print("watch");
    println!("xenbus: bench done");
    poweroff();
}
