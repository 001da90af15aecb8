//! The console's two rings, as pure data structures (the live console in
//! `console.rs` holds one of each behind a lock):
//!
//! - [`ConRing`], Xen's `conring`: the history of what the hypervisor
//!   printed, which dom0 reads with `XEN_SYSCTL_readconsole` (`xl dmesg`);
//! - [`SerialRx`], Xen's `serial_rx_ring`: serial input waiting for the
//!   console domain's `CONSOLEIO_read`.
//!
//! Both follow `xen/drivers/char/console.c` (Xen 4.17): free-running `u32`
//! producer and consumer indices, masked into a power-of-two buffer.
//!
//! Invariants: `prod - cons` (wrapping) never exceeds the ring's size, so
//! every index in `cons..prod` names a byte still in the buffer; the rings
//! never grow (the conring overwrites its oldest bytes, the rx ring drops
//! and counts what does not fit).
#![forbid(unsafe_code)]

/// Bytes of console history: Xen's default (`_CONRING_SIZE`, 16 KiB; at
/// boot Xen 4.17 resizes it to `max(16 KiB, nr_cpus << (9 +
/// loglvl threshold))`, which is 16 KiB for the machines we run on).
pub const CONRING_SIZE: usize = 16384;
const _: () = assert!(CONRING_SIZE.is_power_of_two());

/// Bytes of serial input buffered for the console domain (Xen's
/// `SERIAL_RX_SIZE`).
pub const SERIAL_RX_SIZE: usize = 128;
const _: () = assert!(SERIAL_RX_SIZE.is_power_of_two());

/// Xen's `conring`: the last [`CONRING_SIZE`] bytes the hypervisor
/// printed. `cons` is Xen's `conringc` (the oldest byte a reader may see;
/// `XEN_SYSCTL_readconsole`'s clear moves it), `prod` is `conringp`.
pub struct ConRing {
    buf: [u8; CONRING_SIZE],
    cons: u32,
    prod: u32,
}

impl Default for ConRing {
    fn default() -> Self {
        Self::new()
    }
}

impl ConRing {
    /// An empty ring.
    pub const fn new() -> Self {
        Self::starting_at(0)
    }

    /// An empty ring whose indices start at `index` (they are free-running:
    /// tests use this to cross the `u32` wrap).
    pub const fn starting_at(index: u32) -> Self {
        ConRing { buf: [0; CONRING_SIZE], cons: index, prod: index }
    }

    fn slot(i: u32) -> usize {
        i as usize & (CONRING_SIZE - 1)
    }

    /// Append `bytes`; the oldest bytes give way (Xen's `conring_puts`).
    pub fn puts(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.buf[Self::slot(self.prod)] = b;
            self.prod = self.prod.wrapping_add(1);
        }
        if self.prod.wrapping_sub(self.cons) as usize > CONRING_SIZE {
            self.cons = self.prod.wrapping_sub(CONRING_SIZE as u32);
        }
    }

    /// The consumer and producer indices (`conringc`, `conringp`).
    pub fn bounds(&self) -> (u32, u32) {
        (self.cons, self.prod)
    }

    /// Copy the bytes from index `from` towards `to` into `out`, as many as
    /// fit and lie before the buffer's end (one contiguous piece, as Xen's
    /// `read_console_ring` copies); how many. Indices outside what the ring
    /// holds give whatever is in their slots (the caller only asks for
    /// `cons..prod` as it was, which output racing the reader may have
    /// overwritten since, as in Xen), never more than the buffer.
    pub fn copy_out(&self, from: u32, to: u32, out: &mut [u8]) -> usize {
        let idx = Self::slot(from);
        let n = (to.wrapping_sub(from) as usize).min(CONRING_SIZE - idx).min(out.len());
        out[..n].copy_from_slice(&self.buf[idx..idx + n]);
        n
    }

    /// Forget everything before index `upto` (readconsole's `clear`): as
    /// Xen, `conringc` becomes `upto` unless that is further behind the
    /// producer than the ring holds, in which case it becomes the oldest
    /// byte still held (Xen computes this from the producer it saw when
    /// the read began; the live one is the same or later and keeps the
    /// invariant even if output raced the reader).
    pub fn clear_to(&mut self, upto: u32) {
        self.cons = if self.prod.wrapping_sub(upto) as usize > CONRING_SIZE { self.prod.wrapping_sub(CONRING_SIZE as u32) } else { upto };
    }
}

/// Where an incremental `XEN_SYSCTL_readconsole` starts, given the ring's
/// `(cons, prod)`: at `index` if it lies in `(cons, prod]` (wrapping, as
/// Xen's `read_console_ring` tests it), else at `cons` (a reader that fell
/// behind, or made an index up, starts at the oldest byte held).
pub fn read_start(cons: u32, prod: u32, incremental: bool, index: u32) -> u32 {
    let inside = if cons <= prod { cons < index && index <= prod } else { cons < index || index <= prod };
    if incremental && inside { index } else { cons }
}

/// Xen's `serial_rx_ring`: serial input for the console domain.
pub struct SerialRx {
    buf: [u8; SERIAL_RX_SIZE],
    cons: u32,
    prod: u32,
    dropped: u64,
}

impl Default for SerialRx {
    fn default() -> Self {
        Self::new()
    }
}

impl SerialRx {
    /// An empty ring.
    pub const fn new() -> Self {
        SerialRx { buf: [0; SERIAL_RX_SIZE], cons: 0, prod: 0, dropped: 0 }
    }

    fn held(&self) -> usize {
        self.prod.wrapping_sub(self.cons) as usize
    }

    /// Room left.
    pub fn room(&self) -> usize {
        SERIAL_RX_SIZE - self.held()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.held() == 0
    }

    /// Queue a received byte; `false` (and counted) if the ring is full, as
    /// Xen's `__serial_rx` drops input past `SERIAL_RX_SIZE`.
    pub fn push(&mut self, b: u8) -> bool {
        if self.room() == 0 {
            self.dropped += 1;
            return false;
        }
        self.buf[self.prod as usize & (SERIAL_RX_SIZE - 1)] = b;
        self.prod = self.prod.wrapping_add(1);
        true
    }

    /// The oldest waiting byte.
    pub fn pop(&mut self) -> Option<u8> {
        if self.is_empty() {
            return None;
        }
        let b = self.buf[self.cons as usize & (SERIAL_RX_SIZE - 1)];
        self.cons = self.cons.wrapping_add(1);
        Some(b)
    }

    /// Bytes dropped because the ring was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn read_all(r: &ConRing, from: u32, to: u32) -> Vec<u8> {
        let mut out = Vec::new();
        let mut c = from;
        while c != to {
            let mut chunk = [0u8; 100];
            let n = r.copy_out(c, to, &mut chunk);
            out.extend_from_slice(&chunk[..n]);
            c = c.wrapping_add(n as u32);
        }
        out
    }

    #[test]
    fn conring_keeps_the_last_16_kib_in_order_and_drops_the_oldest() {
        let mut r = ConRing::new();
        r.puts(b"(XEN) first\n");
        assert_eq!(r.bounds(), (0, 12));
        assert_eq!(read_all(&r, 0, 12), b"(XEN) first\n");
        let filler: Vec<u8> = (0..CONRING_SIZE as u32 + 100).map(|i| b'a' + (i % 26) as u8).collect();
        r.puts(&filler);
        let (c, p) = r.bounds();
        assert_eq!(p.wrapping_sub(c) as usize, CONRING_SIZE, "never more than the ring holds");
        assert_eq!(read_all(&r, c, p), &filler[100..], "the newest 16 KiB, oldest first, across the buffer's end");
    }

    #[test]
    fn conring_indices_wrap_at_u32_max_without_losing_order() {
        let mut r = ConRing::starting_at(u32::MAX - 5);
        r.puts(b"0123456789");
        let (c, p) = r.bounds();
        assert_eq!((c, p), (u32::MAX - 5, 4));
        assert_eq!(read_all(&r, c, p), b"0123456789");
        // An incremental reader that stopped before the wrap goes on after it.
        assert_eq!(read_start(c, p, true, u32::MAX - 1), u32::MAX - 1);
        assert_eq!(read_all(&r, u32::MAX - 1, p), b"456789");
        assert_eq!(read_start(c, p, true, 2), 2);
        assert_eq!(read_all(&r, 2, p), b"89");
    }

    #[test]
    fn readconsole_start_is_the_index_only_inside_cons_exclusive_to_prod_inclusive() {
        // Xen's read_console_ring: c < index <= p (or the wrapped form).
        assert_eq!(read_start(10, 20, true, 15), 15);
        assert_eq!(read_start(10, 20, true, 20), 20, "at prod: nothing new");
        assert_eq!(read_start(10, 20, true, 10), 10, "at cons is the same as not incremental");
        assert_eq!(read_start(10, 20, true, 21), 10, "an index past prod starts at cons");
        assert_eq!(read_start(10, 20, true, 5), 10, "an index behind cons (overwritten) starts at cons");
        assert_eq!(read_start(10, 20, true, u32::MAX), 10, "a made-up index starts at cons");
        assert_eq!(read_start(10, 20, false, 15), 10, "not incremental: the index is ignored");
        // Wrapped: cons > prod numerically.
        assert_eq!(read_start(u32::MAX - 3, 5, true, u32::MAX), u32::MAX);
        assert_eq!(read_start(u32::MAX - 3, 5, true, 3), 3);
        assert_eq!(read_start(u32::MAX - 3, 5, true, 6), u32::MAX - 3);
        assert_eq!(read_start(u32::MAX - 3, 5, true, 100), u32::MAX - 3);
    }

    #[test]
    fn conring_copy_out_stops_at_the_buffer_end_and_the_output_size() {
        let mut r = ConRing::starting_at(CONRING_SIZE as u32 - 3);
        r.puts(b"abcdef");
        let (c, p) = r.bounds();
        let mut out = [0u8; 16];
        assert_eq!(r.copy_out(c, p, &mut out), 3, "contiguous piece up to the buffer's end");
        assert_eq!(&out[..3], b"abc");
        assert_eq!(r.copy_out(c + 3, p, &mut out[..2]), 2, "no more than the output holds");
        assert_eq!(&out[..2], b"de");
        assert_eq!(r.copy_out(p, p, &mut out), 0);
        // Attack: a range longer than the ring copies at most the buffer.
        assert_eq!(r.copy_out(c, c.wrapping_sub(1), &mut [0u8; 2 * CONRING_SIZE]), 3);
        assert_eq!(r.copy_out(0, u32::MAX, &mut [0u8; 2 * CONRING_SIZE]), CONRING_SIZE);
    }

    #[test]
    fn conring_clear_moves_cons_to_where_the_read_stopped_but_never_behind_the_ring() {
        let mut r = ConRing::new();
        r.puts(b"0123456789");
        r.clear_to(4);
        assert_eq!(r.bounds(), (4, 10));
        r.clear_to(10);
        assert_eq!(r.bounds(), (10, 10), "cleared: nothing left to read");
        // A reader's index further back than the ring holds (output raced
        // it) cannot bring overwritten bytes back.
        r.puts(&[b'x'; CONRING_SIZE + 10]);
        r.clear_to(0);
        let (c, p) = r.bounds();
        assert_eq!(p.wrapping_sub(c) as usize, CONRING_SIZE);
    }

    #[test]
    fn serial_rx_is_fifo_and_drops_and_counts_what_does_not_fit() {
        let mut rx = SerialRx::new();
        assert!(rx.is_empty());
        assert_eq!(rx.pop(), None);
        for i in 0..SERIAL_RX_SIZE + 5 {
            let kept = rx.push(i as u8);
            assert_eq!(kept, i < SERIAL_RX_SIZE);
        }
        assert_eq!((rx.room(), rx.dropped()), (0, 5));
        for i in 0..SERIAL_RX_SIZE {
            assert_eq!(rx.pop(), Some(i as u8), "oldest first; the dropped bytes are the late ones");
        }
        assert_eq!(rx.pop(), None);
        assert_eq!(rx.room(), SERIAL_RX_SIZE);
    }

    #[test]
    fn serial_rx_wraps_its_buffer_many_times_in_order() {
        let mut rx = SerialRx::new();
        let mut next_in = 0u32;
        let mut next_out = 0u32;
        for round in 0..1000 {
            for _ in 0..(round % 7 + 1) {
                assert!(rx.push(next_in as u8));
                next_in += 1;
            }
            while let Some(b) = rx.pop() {
                assert_eq!(b, next_out as u8);
                next_out += 1;
            }
        }
        assert_eq!((next_in, rx.dropped()), (next_out, 0));
    }
}
