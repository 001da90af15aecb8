//! The byte rings of Xen's PV console page (`in`, `out`) and xenstore page
//! (`req`, `rsp`): one producer/consumer discipline over free-running u32
//! indices, described by where a ring's bytes and indices sit in its page.
//!
//! Invariant: `prod - cons` (wrapping) is the number of unread bytes and
//! never exceeds the ring size; byte `i` sits at `data + i % size`. A
//! producer publishes bytes before moving `prod`; a consumer reads bytes
//! before moving `cons` (the [`RingMem`] implementation supplies the
//! barriers). A peer is never trusted: indices that claim more than a ring
//! holds make a producer write nothing and a consumer resynchronise to
//! empty, and no offset ever leaves the ring's bytes.

/// Access to a shared ring page.
pub trait RingMem {
    /// Read the u32 at `off` (with acquire ordering).
    fn load(&self, off: usize) -> u32;
    /// Write the u32 at `off` (with release ordering).
    fn store(&mut self, off: usize, v: u32);
    /// Read the byte at `off`.
    fn byte(&self, off: usize) -> u8;
    /// Write the byte at `off`.
    fn set_byte(&mut self, off: usize, v: u8);
}

/// Where one byte ring lives in its page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRing {
    /// Offset of the ring's bytes.
    pub data: usize,
    /// Bytes in the ring (a power of two).
    pub size: u32,
    /// Offset of the consumer index.
    pub cons: usize,
    /// Offset of the producer index.
    pub prod: usize,
}

impl ByteRing {
    /// Unread bytes, or `None` if the indices are corrupt.
    pub fn unread(self, m: &impl RingMem) -> Option<u32> {
        let n = m.load(self.prod).wrapping_sub(m.load(self.cons));
        (n <= self.size).then_some(n)
    }

    /// Producer: append as much of `data` as fits; returns how many bytes
    /// went in (0 on a corrupt ring).
    pub fn produce(self, m: &mut impl RingMem, data: &[u8]) -> usize {
        let Some(used) = self.unread(m) else { return 0 };
        let mut prod = m.load(self.prod);
        let n = data.len().min((self.size - used) as usize);
        for &b in &data[..n] {
            m.set_byte(self.data + (prod % self.size) as usize, b);
            prod = prod.wrapping_add(1);
        }
        m.store(self.prod, prod);
        n
    }

    /// Consumer: take up to `buf.len()` unread bytes; returns how many. A
    /// corrupt ring is reset to empty (cons = prod) and yields nothing.
    pub fn consume(self, m: &mut impl RingMem, buf: &mut [u8]) -> usize {
        let prod = m.load(self.prod);
        let Some(avail) = self.unread(m) else {
            m.store(self.cons, prod);
            return 0;
        };
        let mut cons = m.load(self.cons);
        let n = buf.len().min(avail as usize);
        for b in &mut buf[..n] {
            *b = m.byte(self.data + (cons % self.size) as usize);
            cons = cons.wrapping_add(1);
        }
        m.store(self.cons, cons);
        n
    }
}

/// A ring page in ordinary memory (a `Vec<u8>`, an array): what host-side
/// tests and fuzzers give the ring code instead of a shared page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostPage<B>(pub B);

impl<B: AsRef<[u8]> + AsMut<[u8]>> RingMem for HostPage<B> {
    fn load(&self, off: usize) -> u32 {
        let mut w = [0u8; 4];
        w.copy_from_slice(&self.0.as_ref()[off..off + 4]);
        u32::from_le_bytes(w)
    }
    fn store(&mut self, off: usize, v: u32) {
        self.0.as_mut()[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }
    fn byte(&self, off: usize) -> u8 {
        self.0.as_ref()[off]
    }
    fn set_byte(&mut self, off: usize, v: u8) {
        self.0.as_mut()[off] = v;
    }
}

#[cfg(test)]
pub mod tests {
    //! A ring page in host memory, for this crate's ring tests.
    use super::*;

    /// A 4 KiB ring page in host memory.
    pub type Page = HostPage<std::vec::Vec<u8>>;

    /// A zeroed 4 KiB page.
    pub fn page() -> Page {
        HostPage(std::vec![0; 4096])
    }

    const R: ByteRing = ByteRing { data: 100, size: 8, cons: 0, prod: 4 };

    #[test]
    fn indices_wrap_past_u32_max_and_bytes_stay_in_the_ring() {
        let mut p = page();
        p.store(R.cons, u32::MAX - 2);
        p.store(R.prod, u32::MAX - 2);
        assert_eq!(R.produce(&mut p, b"abcdefghij"), 8, "fills to the size");
        assert_eq!(R.produce(&mut p, b"x"), 0, "full");
        assert!(p.0[..100].iter().all(|&b| b == 0) || p.0[8..100].iter().all(|&b| b == 0));
        assert!(p.0[108..].iter().all(|&b| b == 0), "nothing written past the ring");
        let mut buf = [0u8; 5];
        assert_eq!(R.consume(&mut p, &mut buf), 5);
        assert_eq!(&buf, b"abcde");
        assert_eq!(R.unread(&p), Some(3));
    }

    #[test]
    fn a_hostile_peers_indices_are_not_trusted() {
        let mut p = page();
        p.store(R.prod, 1000);
        assert_eq!(R.unread(&p), None);
        assert_eq!(R.produce(&mut p, b"abc"), 0, "producer writes nothing");
        let mut buf = [0u8; 4];
        assert_eq!(R.consume(&mut p, &mut buf), 0, "consumer reads nothing");
        assert_eq!(p.load(R.cons), 1000, "and resynchronises");
        // cons ahead of prod is corrupt too (unread would be huge).
        p.store(R.cons, 10);
        p.store(R.prod, 9);
        assert_eq!(R.unread(&p), None);
    }
}
