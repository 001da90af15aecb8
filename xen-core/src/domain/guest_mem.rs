//! Guest virtual memory as hypercall handlers see it: Xen's
//! `copy_from_guest`/`copy_to_guest` as a trait, so that the handlers that
//! only need a guest's memory build and are tested on the host.
//!
//! Owns the [`GuestAccess`] contract: an access either moves all of its
//! bytes or fails with [`Efault`] (the guest gets -EFAULT), and never
//! touches memory the guest could not reach through its own tables. On the
//! target `guest::GuestMem` implements it with a walk of the guest's
//! tables; tests use [`tests::FakeGuest`].
#![forbid(unsafe_code)]

/// A guest pointer that cannot be used: -EFAULT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Efault;

/// A guest access's outcome as a hypercall's result: 0, or -EFAULT.
pub fn rc(r: Result<(), Efault>) -> i64 {
    r.map_or(-xen_public::errno::EFAULT, |()| 0)
}

/// Fetch up to 15 bytes (the longest x86 instruction) at `rip` with the
/// guest's own permissions: as many as are readable, stopping at the first
/// byte that is not. The emulators decode from these and nothing else.
pub fn fetch_insn(mem: &impl GuestAccess, rip: u64) -> ([u8; 15], usize) {
    let mut bytes = [0u8; 15];
    let mut n = 0;
    while n < bytes.len() && mem.read(rip.wrapping_add(n as u64), &mut bytes[n..=n]).is_ok() {
        n += 1;
    }
    (bytes, n)
}

/// A guest's virtual memory, read and written by guest virtual address.
pub trait GuestAccess {
    /// Copy `buf.len()` bytes from guest virtual `va`.
    fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), Efault>;

    /// Copy `buf` to guest virtual `va`.
    fn write(&self, va: u64, buf: &[u8]) -> Result<(), Efault>;

    /// Copy a whole ABI structure in (Xen's `copy_from_guest`): the bytes
    /// are copied out before anything looks at them, so the guest cannot
    /// change a field after it was checked.
    fn copy_from<T: zerocopy::FromBytes + zerocopy::IntoBytes>(&self, va: u64) -> Result<T, Efault> {
        let mut v = T::new_zeroed();
        self.read(va, v.as_mut_bytes())?;
        Ok(v)
    }

    /// Copy a whole ABI structure out (Xen's `copy_to_guest`).
    fn copy_to<T: zerocopy::IntoBytes + zerocopy::Immutable>(&self, va: u64, v: &T) -> Result<(), Efault> {
        self.write(va, v.as_bytes())
    }
}

/// A shared borrow of guest memory is guest memory (a caller may hand out
/// the same memory to several users).
impl<G: GuestAccess + ?Sized> GuestAccess for &G {
    fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), Efault> {
        (**self).read(va, buf)
    }

    fn write(&self, va: u64, buf: &[u8]) -> Result<(), Efault> {
        (**self).write(va, buf)
    }
}

#[cfg(test)]
pub mod tests {
    //! A guest address space for host tests: pages that exist, and every
    //! other address faults.
    use super::*;
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    /// Guest memory made of the 4 KiB pages a test maps.
    #[derive(Default)]
    pub struct FakeGuest {
        pages: RefCell<BTreeMap<u64, Box<[u8; 4096]>>>,
    }

    impl FakeGuest {
        /// Map a zeroed page at `va` (rounded down to its page).
        pub fn map(&self, va: u64) {
            self.pages.borrow_mut().insert(va & !0xfff, Box::new([0; 4096]));
        }

        /// Run `f` on each byte range of `[va, va + len)`, page by page;
        /// Efault if a page is missing or the range wraps.
        fn each(&self, va: u64, len: usize, mut f: impl FnMut(&mut [u8; 4096], usize, usize, usize)) -> Result<(), Efault> {
            let end = va.checked_add(len as u64).ok_or(Efault)?;
            let (mut at, mut done) = (va, 0usize);
            let mut pages = self.pages.borrow_mut();
            while at < end {
                let off = (at & 0xfff) as usize;
                let n = (4096 - off).min((end - at) as usize);
                let page = pages.get_mut(&(at & !0xfff)).ok_or(Efault)?;
                f(page, off, done, n);
                at += n as u64;
                done += n;
            }
            Ok(())
        }
    }

    impl GuestAccess for FakeGuest {
        fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), Efault> {
            // Check every page first: a failed access moves nothing.
            self.each(va, buf.len(), |_, _, _, _| {})?;
            self.each(va, buf.len(), |p, off, done, n| buf[done..done + n].copy_from_slice(&p[off..off + n]))
        }

        fn write(&self, va: u64, buf: &[u8]) -> Result<(), Efault> {
            self.each(va, buf.len(), |_, _, _, _| {})?;
            self.each(va, buf.len(), |p, off, done, n| p[off..off + n].copy_from_slice(&buf[done..done + n]))
        }
    }

    #[test]
    fn copy_across_a_page_boundary_and_efault_on_a_hole() {
        let g = FakeGuest::default();
        g.map(0x1000);
        g.map(0x2000);
        g.copy_to(0x1ffc, &0x1122_3344_5566_7788u64).unwrap();
        assert_eq!(g.copy_from::<u64>(0x1ffc), Ok(0x1122_3344_5566_7788));
        assert_eq!(g.copy_from::<u64>(0x2ffc), Err(Efault));
        assert_eq!(g.copy_from::<u64>(u64::MAX - 3), Err(Efault));
    }
}
