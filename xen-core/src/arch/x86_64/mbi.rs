//! The one unsafe step of reading the multiboot2 information: turning the
//! bytes GRUB left in memory into the `multiboot2` crate's
//! [`BootInformation`], which takes a raw pointer.
//!
//! Pure (no machine access), so it also builds on the host, where the
//! parser's unit tests (`crate::boot::multiboot2`) go through it. On the
//! target the bytes come from [`super::bootmem::reserved`], which maps the
//! block's physical address through the boot direct map.

use crate::boot::multiboot2::{MbiError, total_size};
use multiboot2::{BootInformation, BootInformationHeader};

/// Hand `bytes` to the crate, which checks the alignment (8), the size
/// field and every tag's size against it, and the end tag.
///
/// `bytes` must hold the whole block: its first 4 bytes give the size, and
/// a block larger than `bytes` is [`MbiError::Truncated`], so the crate
/// never reads past the slice.
pub fn load(bytes: &[u8]) -> Result<BootInformation<'_>, MbiError> {
    let total = total_size(bytes).ok_or(MbiError::Truncated)? as usize;
    if total < 8 {
        return Err(MbiError::BadSize);
    }
    if total > bytes.len() {
        return Err(MbiError::Truncated);
    }
    // SAFETY: the crate reads the 8-byte header, then `total_size` bytes
    // from the pointer (after checking its alignment itself); both lie in
    // `bytes`, checked just above. The result borrows `bytes` for its
    // lifetime (the signature ties them), so the memory cannot change
    // while the crate's view of it lives, as `load` requires.
    unsafe { BootInformation::load(bytes.as_ptr().cast::<BootInformationHeader>()) }.map_err(MbiError::Rejected)
}
