//! A guest kernel image as dom0's domU builder receives it (an ELF, or a
//! bzImage or bare compressed payload holding one), made into the ELF bytes
//! the builder lays out, as libxenguest's `xg_dom_bzimageloader.c` does.
//!
//! Owns the decompression step only: into any memory the caller gives
//! (the builder passes the new domain's own frames, never dom0's heap).
//! xen-libelf recognises the image and decodes LZ4, gzip and xz; zstd,
//! whose maintained pure-Rust decoder (ruzstd) needs an allocator, is
//! decoded here. Invariant: on success the output is exactly the size the
//! payload announced.
#![forbid(unsafe_code)]

use xen_libelf::bzimage::{Compressed, Compression, LoadError};

/// zstd frames through ruzstd, into exactly `out`.
fn unzstd(c: &Compressed<'_>, out: &mut [u8]) -> Result<(), LoadError> {
    use ruzstd::decoding::FrameDecoder;
    use ruzstd::decoding::errors::FrameDecoderError;
    const M: Compression = Compression::Zstd;
    match FrameDecoder::new().decode_all(c.stream, out) {
        Ok(n) if n == out.len() => Ok(()),
        Ok(_) | Err(FrameDecoderError::TargetTooSmall) => Err(LoadError::SizeMismatch(M)),
        Err(_) => Err(LoadError::Corrupt(M)),
    }
}

/// Scratch bytes [`decompress_into`] needs beside the output for `c`: the
/// xz dictionary, 0 for the others (ruzstd keeps its window on dom0's heap).
pub fn scratch_len(c: &Compressed<'_>) -> Result<usize, LoadError> {
    if c.method == Compression::Zstd { Ok(0) } else { c.scratch_len() }
}

/// Decompress `c` into `out` (exactly [`Compressed::output_len`] bytes),
/// with `scratch` of at least [`scratch_len`] bytes: every method this
/// builder reads, zstd included. `out` and `scratch` may be any memory
/// (the builder passes frames of the new domain).
pub fn decompress_into(c: &Compressed<'_>, out: &mut [u8], scratch: &mut [u8]) -> Result<(), LoadError> {
    if out.len() != c.output_len {
        return Err(LoadError::OutputBuffer { needed: c.output_len as u64, given: out.len() as u64 });
    }
    if c.method == Compression::Zstd { unzstd(c, out) } else { c.decompress_into(out, scratch) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use xen_libelf::bzimage::{self, KernelImage};

    // The whole image on the heap: how these tests drive
    // [`decompress_into`] (the builder decompresses into the domain's own
    // frames instead).

    /// Why a kernel image cannot be turned into an ELF.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum KernelError {
        /// The image or its payload is malformed (libelf's reason).
        Load(LoadError),
        /// Dom0's heap cannot hold the decompressed image or the dictionary
        /// (bytes asked for).
        NoMemory(usize),
    }

    /// A zeroed buffer of `len` bytes, or [`KernelError::NoMemory`].
    fn buffer(len: usize) -> Result<Vec<u8>, KernelError> {
        let mut v = Vec::new();
        v.try_reserve_exact(len).map_err(|_| KernelError::NoMemory(len))?;
        v.resize(len, 0);
        Ok(v)
    }

    /// The decompressed ELF of `image` (`None`: `image` is already the ELF, or
    /// bytes the ELF parser is to judge). `bound` caps the decompressed size
    /// (the domain's memory).
    pub fn decompressed_elf(image: &[u8], bound: u64) -> Result<Option<Vec<u8>>, KernelError> {
        let c = match bzimage::inspect(image, bound).map_err(KernelError::Load)? {
            KernelImage::Elf(_) => return Ok(None),
            KernelImage::Compressed(c) => c,
        };
        let mut out = buffer(c.output_len)?;
        let mut dict = buffer(scratch_len(&c).map_err(KernelError::Load)?)?;
        decompress_into(&c, &mut out, &mut dict).map_err(KernelError::Load)?;
        Ok(Some(out))
    }

    fn plain() -> Vec<u8> {
        let mut v = Vec::new();
        for i in 0..5000 {
            v.extend_from_slice(std::format!("{i:05} the quick brown xen-core loader fox\n").as_bytes());
        }
        v
    }

    fn with_size(stream: &[u8], size: usize) -> Vec<u8> {
        let mut v = stream.to_vec();
        v.extend_from_slice(&(size as u32).to_le_bytes());
        v
    }

    const ZST: &[u8] = include_bytes!("../../xen-core/libelf/tests/fixtures/plain.zst");
    const XZ: &[u8] = include_bytes!("../../xen-core/libelf/tests/fixtures/plain.xz");

    #[test]
    fn rule_zstd_payload_decompresses_to_the_announced_size() {
        let data = plain();
        assert_eq!(decompressed_elf(&with_size(ZST, data.len()), 1 << 30), Ok(Some(data)));
    }

    #[test]
    fn rule_xz_payload_goes_through_libelf_with_a_heap_dictionary() {
        let data = plain();
        assert_eq!(decompressed_elf(&with_size(XZ, data.len()), 1 << 30), Ok(Some(data)));
    }

    #[test]
    fn rule_a_zstd_size_that_lies_or_a_cut_stream_is_an_error() {
        let n = plain().len();
        for lie in [n - 1, n + 1] {
            assert_eq!(decompressed_elf(&with_size(ZST, lie), 1 << 30), Err(KernelError::Load(LoadError::SizeMismatch(Compression::Zstd))));
        }
        for cut in (4..ZST.len()).step_by(53) {
            assert!(decompressed_elf(&with_size(&ZST[..cut], n), 1 << 30).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn rule_the_domains_memory_bounds_the_decompressed_size() {
        let n = plain().len();
        assert_eq!(
            decompressed_elf(&with_size(ZST, n), 4096),
            Err(KernelError::Load(LoadError::BadOutputLength { announced: n as u64, bound: 4096 }))
        );
    }

    /// The builder's staging path: any buffer of exactly the announced
    /// size, with the scratch `scratch_len` asks for.
    #[test]
    fn rule_decompress_into_fills_exactly_the_announced_size_or_refuses() {
        let data = plain();
        for image in [with_size(ZST, data.len()), with_size(XZ, data.len())] {
            let KernelImage::Compressed(c) = bzimage::inspect(&image, 1 << 30).unwrap() else { panic!("compressed") };
            let mut scratch = std::vec![0u8; scratch_len(&c).unwrap()];
            let mut out = std::vec![0xaau8; data.len()];
            assert_eq!(decompress_into(&c, &mut out, &mut scratch), Ok(()));
            assert_eq!(out, data);
            let mut short = std::vec![0u8; data.len() - 1];
            assert_eq!(
                decompress_into(&c, &mut short, &mut scratch),
                Err(LoadError::OutputBuffer { needed: data.len() as u64, given: data.len() as u64 - 1 }),
                "a buffer of another size is refused before any byte is written"
            );
        }
    }

    #[test]
    fn rule_xz_with_too_small_a_dictionary_is_an_error_not_a_write_past_it() {
        let data = plain();
        let image = with_size(XZ, data.len());
        let KernelImage::Compressed(c) = bzimage::inspect(&image, 1 << 30).unwrap() else { panic!("compressed") };
        let need = scratch_len(&c).unwrap();
        assert!(need > 0, "xz declares a dictionary");
        let mut out = std::vec![0u8; data.len()];
        let mut small = std::vec![0u8; need / 2];
        assert!(decompress_into(&c, &mut out, &mut small).is_err());
    }

    #[test]
    fn an_elf_is_used_as_it_is() {
        assert_eq!(decompressed_elf(b"\x7fELF\x02\x01\x01", 1 << 30), Ok(None));
    }
}
