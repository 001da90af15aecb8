//! Kernel images as a domain builder receives them: a bare ELF, or an x86
//! bzImage whose payload is a compressed ELF `vmlinux` (Xen 4.17's
//! `xen/arch/x86/bzimage.c` and libxenguest's `xg_dom_bzimageloader.c`).
//!
//! Owns nothing but borrowed bytes and the caller's output buffers.
//! [`inspect`] reads the boot protocol's setup header and the payload's
//! magic; [`Compressed::decompress_into`] inflates the payload into a buffer
//! of exactly [`Compressed::output_len`] bytes. Invariant: hostile input
//! (a cut-off image, a payload outside the image, a size that lies, a
//! corrupt stream) yields a [`LoadError`], never a panic or a write past
//! the caller's buffer, and a successful decompression produced exactly the
//! size the payload's trailer announced.
//!
//! The decoders are well-kept no_std crates that decompress into a slice
//! without an allocator: `lz4_flex` (LZ4 blocks, safe decoder), `miniz_oxide`
//! (DEFLATE core), `xz4rust` (a memory-safe port of xz-embedded, the
//! decoder Linux and Xen use). zstd is detected and sized here but decoded
//! by the caller ([`LoadError::Unsupported`] from this crate): the maintained
//! pure-Rust decoder, ruzstd, needs `alloc`, which xen-core has not, and a
//! cargo feature here would be unified into xen-core's build whenever dom0's
//! is built in the same invocation; dom0's builder decodes zstd with ruzstd
//! itself.

/// Offset of `setup_sects` in the boot sector.
const SETUP_SECTS: usize = 0x1f1;
/// Offset of the `"HdrS"` magic.
const HEADER: usize = 0x202;
/// Offset of the boot protocol version.
const VERSION: usize = 0x206;
/// Offset of `payload_offset` (protocol 2.08+).
const PAYLOAD_OFFSET: usize = 0x248;
/// Offset of `payload_length`.
const PAYLOAD_LENGTH: usize = 0x24c;
/// Offset of `init_size` (protocol 2.10+): the linear memory the kernel
/// needs to decompress itself, which bounds the decompressed image.
const INIT_SIZE: usize = 0x260;
/// Bytes of the setup header Xen requires (`sizeof(struct setup_header)`:
/// up to and including `payload_length`).
const SETUP_HEADER_END: usize = 0x250;
/// Oldest boot protocol that carries `payload_offset` (2.08).
pub const MIN_BOOT_PROTOCOL: u16 = 0x0208;
/// Protocol version from which `init_size` is present (2.10).
const INIT_SIZE_PROTOCOL: u16 = 0x020a;
/// Uncompressed chunk of Linux's legacy LZ4 format (`unlz4.c`).
const LZ4_CHUNK: usize = 8 << 20;
/// Magic of the legacy LZ4 format (`ARCHIVE_MAGICNUMBER`), little-endian.
const LZ4_LEGACY_MAGIC: u32 = 0x184c_2102;
/// The largest xz dictionary this loader provides: xz's largest preset
/// (`-9`) uses 64 MiB; Linux compresses with 32 MiB (`scripts/xz_wrap.sh`).
pub const XZ_DICT_MAX: usize = 64 << 20;

/// A payload compression, by magic (Xen's `decompress.c` order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// gzip (`1f 8b`, or `1f 9e`).
    Gzip,
    /// bzip2 (`BZh`): Xen decodes it; not this loader.
    Bzip2,
    /// xz (`fd 37 7a 58 5a 00`).
    Xz,
    /// Raw LZMA (`5d 00`): Xen decodes it; not this loader.
    Lzma,
    /// LZO (`89 4c 5a 4f`): Xen decodes it; not this loader.
    Lzo,
    /// Linux's legacy LZ4 (`02 21 4c 18`).
    Lz4,
    /// zstd (`28 b5 2f fd`).
    Zstd,
}

impl Compression {
    /// The payload's compression, by its first bytes, as Xen tests them.
    pub fn detect(p: &[u8]) -> Option<Compression> {
        let m = |magic: &[u8]| p.starts_with(magic);
        if m(b"\x1f\x8b") || m(b"\x1f\x9e") {
            Some(Compression::Gzip)
        } else if m(b"BZh") {
            Some(Compression::Bzip2)
        } else if m(b"\xfd7zXZ\x00") {
            Some(Compression::Xz)
        } else if m(b"\x5d\x00") {
            Some(Compression::Lzma)
        } else if m(b"\x89LZO\x00") {
            Some(Compression::Lzo)
        } else if m(b"\x02\x21") {
            Some(Compression::Lz4)
        } else if m(b"\x28\xb5\x2f\xfd") {
            Some(Compression::Zstd)
        } else {
            None
        }
    }

    /// Its name, for boot diagnostics.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Bzip2 => "bzip2",
            Compression::Xz => "xz",
            Compression::Lzma => "lzma",
            Compression::Lzo => "lzo",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// Why a kernel image cannot be loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// A bzImage of a boot protocol older than 2.08 (Xen: "at least v2.08
    /// is required").
    OldBootProtocol(u16),
    /// The bzImage's payload lies outside the image.
    PayloadOutOfBounds,
    /// A compression Xen knows that this loader does not decode (or whose
    /// decoder this build leaves out).
    Unsupported(Compression),
    /// The payload is too short to hold its stream and size trailer.
    Truncated(Compression),
    /// The announced decompressed size is zero or beyond the bound
    /// (`init_size`, or the caller's).
    BadOutputLength {
        /// What the payload's trailer says.
        announced: u64,
        /// The largest size accepted.
        bound: u64,
    },
    /// The caller's output buffer is not the announced size.
    OutputBuffer {
        /// Bytes needed.
        needed: u64,
        /// Bytes given.
        given: u64,
    },
    /// The xz stream needs a larger dictionary than the caller gave (or
    /// than [`XZ_DICT_MAX`]).
    XzDictionary(u64),
    /// The compressed stream is corrupt or cut short.
    Corrupt(Compression),
    /// The stream decoded to a size other than the announced one.
    SizeMismatch(Compression),
}

impl LoadError {
    /// One-line description for boot diagnostics.
    pub fn describe(self) -> &'static str {
        match self {
            LoadError::OldBootProtocol(_) => "bzImage boot protocol older than 2.08",
            LoadError::PayloadOutOfBounds => "bzImage payload outside the image",
            LoadError::Unsupported(_) => "payload compression not supported here",
            LoadError::Truncated(_) => "compressed payload truncated",
            LoadError::BadOutputLength { .. } => "decompressed size out of bounds",
            LoadError::OutputBuffer { .. } => "output buffer is not the decompressed size",
            LoadError::XzDictionary(_) => "xz dictionary too large",
            LoadError::Corrupt(_) => "compressed payload corrupt",
            LoadError::SizeMismatch(_) => "payload decompressed to another size than announced",
        }
    }
}

/// What a kernel image holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelImage<'a> {
    /// An ELF, as it is (the image itself, or a bzImage's uncompressed
    /// payload), or bytes of no known compression, which Xen hands to its
    /// ELF loader all the same (and the ELF parser refuses).
    Elf(&'a [u8]),
    /// A compressed ELF, to decompress before parsing.
    Compressed(Compressed<'a>),
}

/// A compressed payload with its announced size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compressed<'a> {
    /// The compression.
    pub method: Compression,
    /// The compressed stream, without Linux's 4-byte size trailer.
    pub stream: &'a [u8],
    /// Decompressed bytes, from the trailer (Xen's `output_length`).
    pub output_len: usize,
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// A bzImage's payload, as its setup header places it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Payload<'a> {
    /// `payload_length` bytes at `(setup_sects + 1) * 512 + payload_offset`.
    pub bytes: &'a [u8],
    /// `init_size` (boot protocol 2.10+): a bound on the decompressed image.
    pub init_size: Option<u64>,
}

/// The payload of a bzImage; `Ok(None)` if `image` is not a bzImage
/// (Xen's `bzimage_check`: long enough and "HdrS" at 0x202).
pub fn bzimage_payload(image: &[u8]) -> Result<Option<Payload<'_>>, LoadError> {
    if image.len() < SETUP_HEADER_END || &image[HEADER..HEADER + 4] != b"HdrS" {
        return Ok(None);
    }
    let version = le16(image, VERSION);
    if version < MIN_BOOT_PROTOCOL {
        return Err(LoadError::OldBootProtocol(version));
    }
    // setup_sects 0 means 4 (the boot protocol's compatibility rule).
    let sects = match image[SETUP_SECTS] {
        0 => 4,
        n => usize::from(n),
    };
    let start = (sects + 1) * 512;
    let off = le32(image, PAYLOAD_OFFSET) as usize;
    let len = le32(image, PAYLOAD_LENGTH) as usize;
    let begin = start.checked_add(off).ok_or(LoadError::PayloadOutOfBounds)?;
    let end = begin.checked_add(len).ok_or(LoadError::PayloadOutOfBounds)?;
    let payload = image.get(begin..end).ok_or(LoadError::PayloadOutOfBounds)?;
    let init_size = if version >= INIT_SIZE_PROTOCOL && image.len() >= INIT_SIZE + 4 { Some(u64::from(le32(image, INIT_SIZE))) } else { None };
    Ok(Some(Payload { bytes: payload, init_size }))
}

/// What `image` holds: an ELF to parse, or a compressed ELF with its size.
/// `max_output` is the caller's bound on the decompressed size (memory it
/// can spare); a bzImage's `init_size` bounds it further.
pub fn inspect(image: &[u8], max_output: u64) -> Result<KernelImage<'_>, LoadError> {
    let Payload { bytes: payload, init_size } = bzimage_payload(image)?.unwrap_or(Payload { bytes: image, init_size: None });
    // Xen's bzimage_parse: an ELF payload, or one `decompress` does not
    // recognise, goes to the ELF loader as it is.
    let Some(method) = Compression::detect(payload).filter(|_| !payload.starts_with(b"\x7fELF")) else {
        return Ok(KernelImage::Elf(payload));
    };
    match method {
        Compression::Bzip2 | Compression::Lzma | Compression::Lzo => return Err(LoadError::Unsupported(method)),
        _ => {}
    }
    // Linux appends the decompressed size to every payload (`size_append`);
    // Xen reads it as `output_length` for every method.
    let split = payload.len().checked_sub(4).filter(|&n| n > 0).ok_or(LoadError::Truncated(method))?;
    let (stream, trailer) = payload.split_at(split);
    let announced = u64::from(le32(trailer, 0));
    let bound = init_size.map_or(max_output, |i| i.min(max_output));
    if announced == 0 || announced > bound {
        return Err(LoadError::BadOutputLength { announced, bound });
    }
    let output_len = usize::try_from(announced).map_err(|_| LoadError::BadOutputLength { announced, bound })?;
    Ok(KernelImage::Compressed(Compressed { method, stream, output_len }))
}

impl Compressed<'_> {
    /// Bytes of scratch memory [`Self::decompress_into`] needs besides the
    /// output: the xz dictionary the stream's first block declares (found
    /// by the decoder itself, from an empty dictionary), 0 for the others.
    pub fn scratch_len(&self) -> Result<usize, LoadError> {
        if self.method != Compression::Xz {
            return Ok(0);
        }
        let mut dec = xz4rust::XzDecoder::with_fixed_size_dict(&mut []);
        let mut out = [0u8; 64];
        match dec.decode(self.stream, &mut out) {
            Err(xz4rust::XzError::DictionaryTooLarge(n)) if n <= XZ_DICT_MAX as u64 => Ok(n as usize),
            Err(xz4rust::XzError::DictionaryTooLarge(n)) => Err(LoadError::XzDictionary(n)),
            Ok(_) => Ok(0),
            Err(_) => Err(LoadError::Corrupt(Compression::Xz)),
        }
    }

    /// Decompress into `out`, which must be [`Self::output_len`] bytes;
    /// `scratch` must hold [`Self::scratch_len`] bytes (more is fine).
    /// Every byte of `out` is written on success.
    pub fn decompress_into(&self, out: &mut [u8], scratch: &mut [u8]) -> Result<(), LoadError> {
        if out.len() != self.output_len {
            return Err(LoadError::OutputBuffer { needed: self.output_len as u64, given: out.len() as u64 });
        }
        match self.method {
            Compression::Lz4 => unlz4(self.stream, out),
            Compression::Gzip => gunzip(self.stream, out),
            Compression::Xz => unxz(self.stream, out, scratch),
            m => Err(LoadError::Unsupported(m)),
        }
    }
}

/// Linux's legacy LZ4 format as Xen's `unlz4` reads it: the magic, then
/// chunks of (LE32 compressed size, LZ4 block), each block decompressing to
/// 8 MiB except the last, which holds the rest of the announced size; a
/// repeated magic (concatenated archives) is skipped; the stream ends
/// exactly at the size trailer.
fn unlz4(stream: &[u8], out: &mut [u8]) -> Result<(), LoadError> {
    const M: Compression = Compression::Lz4;
    if stream.len() < 4 || le32(stream, 0) != LZ4_LEGACY_MAGIC {
        return Err(LoadError::Corrupt(M));
    }
    let mut at = 4;
    let mut done = 0;
    while at < stream.len() {
        let size = stream.get(at..at + 4).ok_or(LoadError::Truncated(M))?;
        let size = le32(size, 0);
        at += 4;
        if size == LZ4_LEGACY_MAGIC {
            continue;
        }
        let end = at.checked_add(size as usize).ok_or(LoadError::Truncated(M))?;
        let block = stream.get(at..end).ok_or(LoadError::Truncated(M))?;
        let want = (out.len() - done).min(LZ4_CHUNK);
        if want == 0 {
            return Err(LoadError::SizeMismatch(M));
        }
        let n = lz4_flex::block::decompress_into(block, &mut out[done..done + want]).map_err(|_| LoadError::Corrupt(M))?;
        if n != want {
            return Err(LoadError::SizeMismatch(M));
        }
        done += n;
        at = end;
    }
    if done != out.len() {
        return Err(LoadError::SizeMismatch(M));
    }
    Ok(())
}

/// gzip (RFC 1952) as Xen's `gunzip` reads it: the header (method 8,
/// optional extra field, name, comment and header CRC; reserved flags
/// refused), a DEFLATE stream, then CRC-32 and ISIZE, both checked.
fn gunzip(stream: &[u8], out: &mut [u8]) -> Result<(), LoadError> {
    use miniz_oxide::inflate::TINFLStatus;
    use miniz_oxide::inflate::core::{DecompressorOxide, decompress, inflate_flags};
    const M: Compression = Compression::Gzip;
    const FHCRC: u8 = 2;
    const FEXTRA: u8 = 4;
    const FNAME: u8 = 8;
    const FCOMMENT: u8 = 16;
    let hdr = stream.get(..10).ok_or(LoadError::Truncated(M))?;
    if hdr[2] != 8 || hdr[3] & 0xe0 != 0 {
        return Err(LoadError::Corrupt(M));
    }
    let flags = hdr[3];
    let mut at = 10;
    if flags & FEXTRA != 0 {
        let xlen = stream.get(at..at + 2).ok_or(LoadError::Truncated(M))?;
        at += 2 + usize::from(le16(xlen, 0));
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let rest = stream.get(at..).ok_or(LoadError::Truncated(M))?;
            at += rest.iter().position(|&c| c == 0).ok_or(LoadError::Truncated(M))? + 1;
        }
    }
    if flags & FHCRC != 0 {
        at += 2;
    }
    let deflate = stream.get(at..).ok_or(LoadError::Truncated(M))?;
    let mut state = DecompressorOxide::new();
    let (status, used, written) = decompress(&mut state, deflate, out, 0, inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF);
    match status {
        TINFLStatus::Done => {}
        TINFLStatus::HasMoreOutput => return Err(LoadError::SizeMismatch(M)),
        TINFLStatus::NeedsMoreInput | TINFLStatus::FailedCannotMakeProgress => return Err(LoadError::Truncated(M)),
        _ => return Err(LoadError::Corrupt(M)),
    }
    if written != out.len() {
        return Err(LoadError::SizeMismatch(M));
    }
    let trailer = deflate.get(used..used + 8).ok_or(LoadError::Truncated(M))?;
    if le32(trailer, 0) != crc32fast::hash(out) {
        return Err(LoadError::Corrupt(M));
    }
    if le32(trailer, 4) != out.len() as u32 {
        return Err(LoadError::SizeMismatch(M));
    }
    Ok(())
}

/// xz as Xen's `unxz` (xz-embedded) reads it, through xz4rust (the same
/// decoder, ported): one stream, its checks verified, ending within the
/// payload; `dict` is the LZMA2 dictionary.
fn unxz(stream: &[u8], out: &mut [u8], dict: &mut [u8]) -> Result<(), LoadError> {
    use xz4rust::{XzDecoder, XzError, XzNextBlockResult};
    const M: Compression = Compression::Xz;
    let dict_len = dict.len().min(XZ_DICT_MAX);
    let mut dec = XzDecoder::with_fixed_size_dict(&mut dict[..dict_len]);
    let (mut inp, mut done) = (0, 0);
    loop {
        let r = dec.decode(&stream[inp..], &mut out[done..]);
        match r {
            Ok(XzNextBlockResult::NeedMoreData(i, o)) => {
                inp += i;
                done += o;
                if i == 0 && o == 0 {
                    return Err(if inp == stream.len() { LoadError::Truncated(M) } else { LoadError::SizeMismatch(M) });
                }
            }
            Ok(XzNextBlockResult::EndOfStream(_, o)) => {
                done += o;
                return if done == out.len() { Ok(()) } else { Err(LoadError::SizeMismatch(M)) };
            }
            Err(XzError::DictionaryTooLarge(n)) => return Err(LoadError::XzDictionary(n)),
            Err(_) => return Err(LoadError::Corrupt(M)),
        }
    }
}
