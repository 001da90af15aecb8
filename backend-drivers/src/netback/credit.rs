//! The tx credit scheduler of a vif's `rate=` (Linux
//! drivers/net/xen-netback/netback.c: `tx_credit_exceeded`,
//! `tx_add_credit`, the `credit_timeout` timer; xenbus.c
//! `xen_net_read_rate`): every `interval_us` the guest may send
//! `bytes_per_interval` more bytes, the unspent credit accruing up to a
//! burst of `max(128 KiB, bytes_per_interval)` so the largest packet always
//! fits eventually.
//!
//! Time is the caller's monotonic microsecond clock, passed in; the Linux
//! timer becomes [`Credit::next_refill_us`], which the caller turns into a
//! wake-up. Invariant: credit is added at most once per `interval_us` of
//! that clock (one refill when a window has passed, one when the timer
//! expires), so over any span `T` the bytes allowed are at most the burst
//! plus `(T / interval_us + 1) * bytes_per_interval`.
#![forbid(unsafe_code)]

/// Linux's minimum burst: "a jumbo packet of up to 128kB".
pub const MIN_BURST: u64 = 131_072;

/// One vif's tx credit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Credit {
    /// `credit_bytes`; `None`: no limit (Linux's `~0UL`).
    bytes: Option<u64>,
    /// `credit_usec`.
    usec: u64,
    /// `remaining_credit`.
    remaining: u64,
    /// `credit_window_start`, set at the first packet.
    window_start: Option<u64>,
    /// `credit_timeout` while pending: when it fires.
    timer: Option<u64>,
}

impl Credit {
    /// No rate limit (no `rate` node).
    pub fn unlimited() -> Self {
        Credit { bytes: None, usec: 0, remaining: u64::MAX, window_start: None, timer: None }
    }

    /// `bytes_per_interval` bytes every `interval_us` microseconds; the
    /// first interval's credit is there at once (Linux `connect`:
    /// `remaining_credit = credit_bytes`).
    pub fn new(bytes_per_interval: u64, interval_us: u64) -> Self {
        Credit { bytes: Some(bytes_per_interval), usec: interval_us, remaining: bytes_per_interval, window_start: None, timer: None }
    }

    /// May a packet of `size` bytes go at `now_us`? If so its size is taken
    /// from the credit. If not, a refill is due at
    /// [`next_refill_us`](Self::next_refill_us).
    pub fn allow(&mut self, now_us: u64, size: usize) -> bool {
        let Some(bytes) = self.bytes else { return true };
        let size = (size as u64).min(max_burst(bytes));
        let start = *self.window_start.get_or_insert(now_us);
        // Until the timer fires the queue stays rate limited.
        self.expire(now_us);
        if self.timer.is_some() {
            return false;
        }
        // xenvif_tx_build_gops asks tx_credit_exceeded only if the packet
        // is bigger than what is left.
        if size <= self.remaining {
            self.remaining -= size;
            return true;
        }
        // tx_credit_exceeded: past the window? Replenish.
        let mut next = start.saturating_add(self.usec);
        if now_us >= next {
            self.window_start = Some(now_us);
            self.add(bytes);
            // Linux arms the timer at the old window's end, already past,
            // which would add a second chunk at once; the next chunk is
            // one interval from this one instead.
            next = now_us.saturating_add(self.usec);
        }
        if size > self.remaining {
            self.timer = Some(next);
            self.window_start = Some(next);
            return false;
        }
        self.remaining -= size;
        true
    }

    /// `xenvif_tx_credit_callback`: a pending refill whose time has come
    /// fires, adding a chunk, whether or not a packet still waits for it
    /// (a frontend that takes its packet back must not leave a deadline in
    /// the past for its backend to wake up for again and again).
    pub fn expire(&mut self, now_us: u64) {
        if let (Some(bytes), Some(t)) = (self.bytes, self.timer)
            && now_us >= t
        {
            self.timer = None;
            self.add(bytes);
        }
    }

    /// When the pending refill is due (Linux's `credit_timeout`), if the
    /// last [`allow`](Self::allow) refused.
    pub fn next_refill_us(&self) -> Option<u64> {
        self.timer
    }

    /// `tx_add_credit`: one more chunk, up to the burst, never wrapping.
    fn add(&mut self, bytes: u64) {
        self.remaining = self.remaining.saturating_add(bytes).min(max_burst(bytes));
    }
}

fn max_burst(bytes: u64) -> u64 {
    bytes.max(MIN_BURST)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Linux's credit_timeout is a one-shot timer: it fires at its time
    /// whether a packet still waits or not, so a packet taken back leaves
    /// no deadline in the past.
    #[test]
    fn the_refill_timer_fires_without_a_packet_and_leaves_no_past_deadline() {
        let mut c = Credit::new(1000, 10_000);
        assert!(c.allow(0, 1000));
        assert!(!c.allow(1, 900), "over the credit: refused");
        let t = c.next_refill_us().expect("a refill is due");
        c.expire(t - 1);
        assert_eq!(c.next_refill_us(), Some(t), "not yet");
        c.expire(t + 4000);
        assert_eq!(c.next_refill_us(), None, "fired: nothing left to wake for");
        assert!(c.allow(t + 4000, 900), "and the chunk it added is there");
    }

    #[test]
    fn unlimited_credit_allows_everything_and_never_asks_for_a_refill() {
        let mut c = Credit::unlimited();
        for t in 0..1000 {
            assert!(c.allow(t, 65535));
        }
        assert_eq!(c.next_refill_us(), None);
    }

    /// `rate=` holds over simulated time: 10 000 bytes per 10 ms, a guest
    /// trying to send 1500-byte packets every 100 us for one second gets
    /// about 1 MB through, never more than one chunk per window plus the
    /// first.
    #[test]
    fn credit_rate_holds_over_one_simulated_second() {
        let (bytes, usec) = (10_000u64, 10_000u64);
        let mut c = Credit::new(bytes, usec);
        let t0 = 5_000_000u64;
        let mut sent = 0u64;
        let mut t = t0;
        while t < t0 + 1_000_000 {
            if c.allow(t, 1500) {
                sent += 1500;
            } else {
                let due = c.next_refill_us().expect("a refused packet arms the refill");
                assert!(due >= t, "the refill is not in the past");
            }
            t += 100;
        }
        let max = bytes * (1_000_000 / usec + 1);
        assert!(sent <= max, "sent {sent} > {max}");
        assert!(sent >= max * 9 / 10, "sent {sent}: the credit is refilled every window");
    }

    /// Linux `tx_credit_exceeded`: a packet bigger than the credit waits
    /// for the refill, and goes once it is due.
    #[test]
    fn credit_exceeded_waits_for_the_refill_then_allows() {
        let mut c = Credit::new(1000, 50_000);
        assert!(c.allow(100, 800));
        assert!(!c.allow(200, 800), "200 bytes left");
        let due = c.next_refill_us().unwrap();
        assert_eq!(due, 100 + 50_000, "one interval after the window started");
        assert!(!c.allow(due - 1, 800), "not before the timer");
        assert!(c.allow(due, 800));
    }

    /// `max_burst = max(131072, credit_bytes)`: a 64 KiB packet under a tiny
    /// rate still goes, after enough windows, and credit never wraps.
    #[test]
    fn credit_accrues_up_to_the_burst_so_a_large_packet_eventually_fits() {
        let mut c = Credit::new(1000, 1000);
        let mut t = 0;
        let mut went = false;
        for _ in 0..200 {
            if c.allow(t, 65535) {
                went = true;
                break;
            }
            t = c.next_refill_us().unwrap();
        }
        assert!(went);
        let mut big = Credit::new(u64::MAX - 1, 1);
        assert!(big.allow(0, 65535));
        assert!(big.allow(10, 65535));
    }
}
