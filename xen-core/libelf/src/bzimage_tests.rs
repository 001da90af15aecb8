//! Tests of the bzImage loader: the x86 boot protocol's setup header as Xen's
//! `bzimage.c` reads it, each payload compression Linux uses, and hostile
//! images (cut short, payload outside the image, sizes that lie).
extern crate std;
use super::bzimage::*;
use std::vec::Vec;

/// The text the fixtures compress (see tests/fixtures/README.md).
fn plain() -> Vec<u8> {
    let mut v = Vec::new();
    for i in 0..5000 {
        v.extend_from_slice(std::format!("{i:05} the quick brown xen-core loader fox\n").as_bytes());
    }
    v
}

/// Linux's `size_append`: the decompressed size as a LE32 trailer.
fn with_size(mut stream: Vec<u8>, size: usize) -> Vec<u8> {
    stream.extend_from_slice(&(size as u32).to_le_bytes());
    stream
}

/// Linux's legacy LZ4 (`lz4 -l`): magic, then (LE32 size, block) per
/// 8 MiB of input.
fn lz4_legacy(data: &[u8], chunk: usize) -> Vec<u8> {
    let mut v = 0x184c_2102u32.to_le_bytes().to_vec();
    for c in data.chunks(chunk) {
        let b = lz4_flex::block::compress(c);
        v.extend_from_slice(&(b.len() as u32).to_le_bytes());
        v.extend_from_slice(&b);
    }
    v
}

/// gzip with a file name (FNAME), as `gzip -9` writes it.
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut v = std::vec![0x1f, 0x8b, 8, 8, 0, 0, 0, 0, 2, 3];
    v.extend_from_slice(b"vmlinux.bin\0");
    v.extend_from_slice(&miniz_oxide::deflate::compress_to_vec(data, 9));
    v.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
    v.extend_from_slice(&(data.len() as u32).to_le_bytes());
    v
}

/// A bzImage of boot protocol `version` around `payload`, with
/// `setup_sects` sectors of setup code and `init_size`.
fn bzimage(setup_sects: u8, version: u16, payload: &[u8], init_size: u32) -> Vec<u8> {
    let sects = if setup_sects == 0 { 4 } else { usize::from(setup_sects) };
    let pm = (sects + 1) * 512;
    let payload_offset = 0x3c0;
    let mut v = std::vec![0u8; pm + payload_offset];
    v[0x1f1] = setup_sects;
    v[0x202..0x206].copy_from_slice(b"HdrS");
    v[0x206..0x208].copy_from_slice(&version.to_le_bytes());
    v[0x248..0x24c].copy_from_slice(&(payload_offset as u32).to_le_bytes());
    v[0x24c..0x250].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    v[0x260..0x264].copy_from_slice(&init_size.to_le_bytes());
    v.extend_from_slice(payload);
    v.extend_from_slice(&[0xee; 100]); // what follows the payload (setup data)
    v
}

/// Decompress a compressed image into a fresh buffer.
/// Whether `stream` is Linux's legacy LZ4 (no checksum).
fn is_lz4(stream: &[u8]) -> bool {
    stream.starts_with(&0x184c_2102u32.to_le_bytes())
}

fn decompress(c: &Compressed<'_>) -> Result<Vec<u8>, LoadError> {
    let mut out = std::vec![0u8; c.output_len];
    let mut scratch = std::vec![0u8; c.scratch_len()?];
    c.decompress_into(&mut out, &mut scratch)?;
    Ok(out)
}

fn compressed(k: KernelImage<'_>) -> Compressed<'_> {
    match k {
        KernelImage::Compressed(c) => c,
        KernelImage::Elf(_) => panic!("expected a compressed payload"),
    }
}

const BOUND: u64 = 64 << 20;

#[test]
fn rule_lz4_legacy_payload_decompresses_chunk_by_chunk() {
    let data = plain();
    // Small chunks exercise the loop; the decoder bounds each block by the
    // 8 MiB chunk or what is left of the announced size, as Xen's unlz4.
    let payload = with_size(lz4_legacy(&data, data.len()), data.len());
    let img = bzimage(27, 0x020f, &payload, 1 << 20);
    let c = compressed(inspect(&img, BOUND).unwrap());
    assert_eq!(c.method, Compression::Lz4);
    assert_eq!(c.output_len, data.len());
    assert_eq!(decompress(&c).unwrap(), data);
}

#[test]
fn rule_lz4_chunks_are_8_mib_and_a_repeated_magic_is_skipped() {
    // 8 MiB + a bit: two chunks, as `lz4 -l` writes a >8 MiB vmlinux.
    let data: Vec<u8> = (0..(8 << 20) + 5000u32).map(|i| (i % 251) as u8 ^ (i >> 13) as u8).collect();
    let mut stream = lz4_legacy(&data, 8 << 20);
    let payload = with_size(stream.clone(), data.len());
    let c = compressed(inspect(&payload, BOUND).unwrap());
    assert_eq!(decompress(&c).unwrap(), data);
    // Concatenated archives: the magic between chunks is skipped.
    let first_end = 8 + u32::from_le_bytes(stream[4..8].try_into().unwrap()) as usize;
    stream.splice(first_end..first_end, 0x184c_2102u32.to_le_bytes());
    let payload = with_size(stream, data.len());
    assert_eq!(decompress(&compressed(inspect(&payload, BOUND).unwrap())).unwrap(), data);
    // Chunks that are not 8 MiB decode to another size: refused.
    let payload = with_size(lz4_legacy(&data, 1 << 20), data.len());
    assert!(decompress(&compressed(inspect(&payload, BOUND).unwrap())).is_err());
}

#[test]
fn rule_gzip_payload_is_checked_by_crc_and_isize() {
    let data = plain();
    let gz = gzip(&data);
    let img = bzimage(0, 0x0208, &with_size(gz.clone(), data.len()), 0);
    let c = compressed(inspect(&img, BOUND).unwrap());
    assert_eq!(c.method, Compression::Gzip);
    assert_eq!(decompress(&c).unwrap(), data);
    // A flipped CRC byte: corrupt.
    let mut bad = gz.clone();
    let n = bad.len();
    bad[n - 8] ^= 1;
    let p = with_size(bad, data.len());
    assert_eq!(decompress(&compressed(inspect(&p, BOUND).unwrap())), Err(LoadError::Corrupt(Compression::Gzip)));
    // Reserved header flags are refused, as Xen's gunzip does.
    let mut bad = gz;
    bad[3] |= 0x20;
    let p = with_size(bad, data.len());
    assert_eq!(decompress(&compressed(inspect(&p, BOUND).unwrap())), Err(LoadError::Corrupt(Compression::Gzip)));
}

#[test]
fn rule_xz_payload_with_bcj_and_crc32_decompresses_with_its_dictionary() {
    let data = plain();
    let payload = with_size(include_bytes!("../tests/fixtures/plain.xz").to_vec(), data.len());
    let c = compressed(inspect(&payload, BOUND).unwrap());
    assert_eq!(c.method, Compression::Xz);
    assert_eq!(c.scratch_len().unwrap(), 1 << 20, "the dictionary the stream declares");
    assert_eq!(decompress(&c).unwrap(), data);
    // A dictionary smaller than the stream's is refused, not overrun.
    let mut out = std::vec![0u8; c.output_len];
    let mut small = std::vec![0u8; 4096];
    assert_eq!(c.decompress_into(&mut out, &mut small), Err(LoadError::XzDictionary(1 << 20)));
}

#[test]
fn rule_zstd_is_detected_and_sized_but_left_to_the_caller() {
    // ruzstd needs alloc: dom0's builder decodes zstd itself (its tests
    // decode this fixture); here it is found and sized, then refused.
    let payload = with_size(include_bytes!("../tests/fixtures/plain.zst").to_vec(), 210000);
    let c = compressed(inspect(&payload, BOUND).unwrap());
    assert_eq!((c.method, c.output_len), (Compression::Zstd, 210000));
    assert_eq!(decompress(&c), Err(LoadError::Unsupported(Compression::Zstd)));
}

#[test]
fn rule_an_elf_payload_or_image_is_returned_as_it_is() {
    let elf = b"\x7fELF\x02\x01\x01rest of an image".to_vec();
    assert_eq!(inspect(&elf, BOUND), Ok(KernelImage::Elf(&elf[..])));
    let img = bzimage(30, 0x020f, &elf, 0);
    assert_eq!(inspect(&img, BOUND), Ok(KernelImage::Elf(&elf[..])));
}

#[test]
fn rule_setup_sects_0_means_4() {
    let data = plain();
    let payload = with_size(lz4_legacy(&data, 8 << 20), data.len());
    let img = bzimage(0, 0x020f, &payload, 1 << 20);
    // The payload starts (4 + 1) * 512 + payload_offset into the image.
    let p = bzimage_payload(&img).unwrap().unwrap();
    assert_eq!(p, Payload { bytes: &payload[..], init_size: Some(1 << 20) });
}

#[test]
fn rule_boot_protocol_before_2_08_is_refused() {
    let img = bzimage(4, 0x0207, b"\x7fELF", 0);
    assert_eq!(inspect(&img, BOUND), Err(LoadError::OldBootProtocol(0x0207)));
}

#[test]
fn rule_payload_offset_or_length_past_the_end_is_refused() {
    let data = plain();
    let payload = with_size(lz4_legacy(&data, 8 << 20), data.len());
    let mut img = bzimage(4, 0x020f, &payload, 1 << 20);
    let past = img.len() as u32;
    img[0x248..0x24c].copy_from_slice(&past.to_le_bytes());
    assert_eq!(inspect(&img, BOUND), Err(LoadError::PayloadOutOfBounds));
    let mut img = bzimage(4, 0x020f, &payload, 1 << 20);
    img[0x24c..0x250].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(inspect(&img, BOUND), Err(LoadError::PayloadOutOfBounds));
}

#[test]
fn rule_announced_size_is_bounded_by_init_size_and_the_caller() {
    let data = plain();
    let payload = with_size(lz4_legacy(&data, 8 << 20), data.len());
    let small_init = bzimage(4, 0x020f, &payload, 1000);
    assert_eq!(inspect(&small_init, BOUND), Err(LoadError::BadOutputLength { announced: data.len() as u64, bound: 1000 }));
    assert_eq!(inspect(&payload, 1000), Err(LoadError::BadOutputLength { announced: data.len() as u64, bound: 1000 }));
    let zero = with_size(lz4_legacy(&data, 8 << 20), 0);
    assert!(matches!(inspect(&zero, BOUND), Err(LoadError::BadOutputLength { announced: 0, .. })));
}

#[test]
fn rule_a_size_trailer_that_lies_is_a_size_mismatch() {
    let data = plain();
    for (name, stream) in [("lz4", lz4_legacy(&data, 8 << 20)), ("gzip", gzip(&data)), ("xz", include_bytes!("../tests/fixtures/plain.xz").to_vec())]
    {
        for lie in [data.len() - 1, data.len() + 1, data.len() * 2] {
            let p = with_size(stream.clone(), lie);
            let r = decompress(&compressed(inspect(&p, BOUND).unwrap()));
            assert!(matches!(r, Err(LoadError::SizeMismatch(_)) | Err(LoadError::Corrupt(_)) | Err(LoadError::Truncated(_))), "{name} {lie}: {r:?}");
        }
    }
}

#[test]
fn rule_a_cut_off_payload_is_an_error_never_a_panic() {
    let data = plain();
    let xz = include_bytes!("../tests/fixtures/plain.xz").to_vec();
    let zst = include_bytes!("../tests/fixtures/plain.zst").to_vec();
    for stream in [lz4_legacy(&data, 8 << 20), gzip(&data), xz, zst] {
        for cut in (0..stream.len()).step_by(37).chain([stream.len() - 1]) {
            let p = with_size(stream[..cut].to_vec(), data.len());
            match inspect(&p, BOUND) {
                Ok(KernelImage::Compressed(c)) => assert!(decompress(&c).is_err(), "cut at {cut} decoded"),
                // Cut before the magic is complete: left to the ELF parser, which refuses it.
                Ok(KernelImage::Elf(b)) => assert!(crate::Elf::parse(b).is_err(), "cut at {cut}"),
                Err(_) => {}
            }
        }
    }
}

#[test]
fn rule_corrupt_streams_never_panic() {
    let data = plain();
    let xz = include_bytes!("../tests/fixtures/plain.xz").to_vec();
    let mut seed = 0x1234_5678u32;
    for stream in [lz4_legacy(&data, 8 << 20), gzip(&data), xz] {
        for _ in 0..200 {
            let mut s = stream.clone();
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let at = 6 + (seed as usize >> 8) % (s.len() - 6);
            s[at] ^= (seed as u8) | 1;
            let p = with_size(s, data.len());
            if let Ok(KernelImage::Compressed(c)) = inspect(&p, BOUND) {
                // An error, or (a flip the format cannot see, such as in
                // LZ4's unchecked literals) exactly the declared size;
                // gzip and xz check a CRC, so their output is the original.
                if let Ok(out) = decompress(&c) {
                    assert_eq!(out.len(), data.len());
                    if !is_lz4(&stream) {
                        assert_eq!(out, data, "a CRC-checked stream decoded a flipped byte");
                    }
                }
            }
        }
    }
}

#[test]
fn rule_output_buffer_must_be_the_announced_size() {
    let data = plain();
    let p = with_size(lz4_legacy(&data, 8 << 20), data.len());
    let c = compressed(inspect(&p, BOUND).unwrap());
    let mut out = std::vec![0u8; data.len() - 1];
    assert_eq!(c.decompress_into(&mut out, &mut []), Err(LoadError::OutputBuffer { needed: data.len() as u64, given: data.len() as u64 - 1 }));
}

#[test]
fn rule_unknown_and_unsupported_formats_are_named() {
    // No known magic: handed to the ELF parser as it is (Xen's bzimage_parse).
    assert_eq!(inspect(b"MZ not a kernel", BOUND), Ok(KernelImage::Elf(&b"MZ not a kernel"[..])));
    assert_eq!(inspect(b"BZh91AY&SY....", BOUND), Err(LoadError::Unsupported(Compression::Bzip2)));
    assert_eq!(inspect(b"\x5d\x00\x00\x80\x00....", BOUND), Err(LoadError::Unsupported(Compression::Lzma)));
    assert_eq!(inspect(b"\x02\x21\x4c\x18", BOUND), Err(LoadError::Truncated(Compression::Lz4)));
}
