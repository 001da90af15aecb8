//! Typed views of C unions kept as byte arrays.
//!
//! A union member is read by copying the first `size_of::<T>()` bytes of the
//! array into a `T`, and written by copying a `T`'s bytes over that prefix
//! (the rest of the array is left alone, as a C store to one member would).
//! That a member fits its union is checked at compile time.

use zerocopy::{FromBytes, Immutable, IntoBytes};

/// The member `T` of a union stored as `bytes`.
pub(crate) fn read<T: FromBytes, const N: usize>(bytes: &[u8; N]) -> T {
    const { assert!(core::mem::size_of::<T>() <= N, "union member larger than its union") };
    match T::read_from_prefix(bytes) {
        Ok((v, _)) => v,
        Err(_) => T::new_zeroed(),
    }
}

/// Store `v` as the member `T` of a union stored as `bytes`.
pub(crate) fn write<T: IntoBytes + Immutable, const N: usize>(bytes: &mut [u8; N], v: &T) {
    const { assert!(core::mem::size_of::<T>() <= N, "union member larger than its union") };
    let src = v.as_bytes();
    if let Some(dst) = bytes.get_mut(..src.len()) {
        dst.copy_from_slice(src);
    }
}
