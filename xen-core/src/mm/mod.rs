//! Machine memory: the boot memory map, the frame allocator, guest page
//! walks and (on the target) the machine-wide frame state.

pub mod audit;
pub mod descriptor;
pub mod frame_alloc;
pub mod guest_walk;
#[cfg(target_os = "none")]
pub mod machine;
pub mod memmap;
pub mod page_type;
pub mod scrub;

/// A machine frame number: a physical address shifted right by 12.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mfn(pub u64);

impl Mfn {
    /// The frame's machine (physical) address.
    pub const fn maddr(self) -> u64 {
        self.0 << 12
    }

    /// The frame containing a machine address.
    pub const fn containing(maddr: u64) -> Self {
        Mfn(maddr >> 12)
    }
}

/// Size of a machine frame.
pub const PAGE_SIZE: u64 = 4096;
