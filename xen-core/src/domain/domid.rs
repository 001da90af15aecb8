//! Domain-id allocation, as Xen's toolstack-facing allocator does it: ids
//! 1..DOMID_FIRST_RESERVED, handed out round-robin after the last one
//! given (so a just-destroyed id is not reused at once), 0 being dom0's.
//!
//! Invariant: an id is handed out at most once until it is freed.
#![forbid(unsafe_code)]

/// First id that is not a real domain (DOMID_SELF and friends).
pub const DOMID_FIRST_RESERVED: u16 = 0x7ff0;
const WORDS: usize = DOMID_FIRST_RESERVED as usize / 64 + 1;

/// Why a free was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DomidError {
    /// Not a real domain id (0 or reserved).
    Invalid(u16),
    /// The id is not allocated.
    NotAllocated(u16),
}

/// The allocator.
pub struct DomidAllocator {
    used: [u64; WORDS],
    last: u16,
}

impl Default for DomidAllocator {
    fn default() -> Self {
        Self::new()
    }
}

impl DomidAllocator {
    /// Nothing allocated (dom0 is not managed here).
    pub const fn new() -> Self {
        DomidAllocator { used: [0; WORDS], last: 0 }
    }

    fn is_used(&self, id: u16) -> bool {
        self.used[id as usize / 64] & (1 << (id % 64)) != 0
    }

    /// The next free id after the last one handed out, wrapping; `None`
    /// when all are in use.
    pub fn alloc(&mut self) -> Option<u16> {
        let span = u32::from(DOMID_FIRST_RESERVED - 1);
        let last = u32::from(self.last);
        (1..=span).map(|k| ((last + k - 1) % span + 1) as u16).find(|&id| !self.is_used(id)).inspect(|&id| {
            self.used[id as usize / 64] |= 1 << (id % 64);
            self.last = id;
        })
    }

    /// Take a specific id (a toolstack asking for one); `false` if taken
    /// or invalid.
    pub fn claim(&mut self, id: u16) -> bool {
        if id == 0 || id >= DOMID_FIRST_RESERVED || self.is_used(id) {
            return false;
        }
        self.used[id as usize / 64] |= 1 << (id % 64);
        true
    }

    /// Whether `id` is handed out (and not freed since).
    pub fn is_allocated(&self, id: u16) -> bool {
        id != 0 && id < DOMID_FIRST_RESERVED && self.is_used(id)
    }

    /// Give an id back.
    pub fn free(&mut self, id: u16) -> Result<(), DomidError> {
        if id == 0 || id >= DOMID_FIRST_RESERVED {
            return Err(DomidError::Invalid(id));
        }
        if !self.is_used(id) {
            return Err(DomidError::NotAllocated(id));
        }
        self.used[id as usize / 64] &= !(1 << (id % 64));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_round_robin_and_not_reused_at_once() {
        let mut a = DomidAllocator::new();
        assert_eq!(a.alloc(), Some(1));
        assert_eq!(a.alloc(), Some(2));
        a.free(1).unwrap();
        assert_eq!(a.alloc(), Some(3), "a freed id waits for the rover to come round");
    }

    #[test]
    fn exhaustion_and_wrap() {
        let mut a = DomidAllocator::new();
        for want in 1..DOMID_FIRST_RESERVED {
            assert_eq!(a.alloc(), Some(want));
        }
        assert_eq!(a.alloc(), None, "ABI: ids stop below DOMID_FIRST_RESERVED (0x7ff0)");
        a.free(17).unwrap();
        assert_eq!(a.alloc(), Some(17));
        assert_eq!(a.alloc(), None);
    }

    #[test]
    fn bad_frees_and_claims() {
        let mut a = DomidAllocator::new();
        assert_eq!(a.free(0), Err(DomidError::Invalid(0)));
        assert_eq!(a.free(0x7ff0), Err(DomidError::Invalid(0x7ff0)));
        assert_eq!(a.free(5), Err(DomidError::NotAllocated(5)));
        assert!(a.claim(5));
        assert!(!a.claim(5));
        assert!(!a.claim(0x7ff1));
        a.free(5).unwrap();
        assert_eq!(a.free(5), Err(DomidError::NotAllocated(5)), "double free");
    }
}
