//! PV kernel images: ELF64 parsing and their "Xen" notes, and (module
//! `bzimage`) the bzImage wrapper distributions ship, whose compressed
//! payload (LZ4, gzip, xz; zstd where the caller has an allocator) is
//! unpacked into the ELF.
//!
//! Owns nothing but borrowed bytes. The ELF structure itself (identification,
//! file header, program-header table, each segment's file range) is read by
//! the `elf` crate, which bounds-checks every offset with checked arithmetic;
//! this crate adds what only Xen defines: which images a PV domain builder
//! accepts (ELF64, little-endian, x86_64, executable, at least one PT_LOAD,
//! `filesz <= memsz`), the 4-byte-aligned note framing of Xen's libelf, and
//! the meaning of every `XEN_ELFNOTE_*`. Invariant: a hostile or truncated
//! module yields an [`ElfError`], never a panic or an out-of-bounds read.
//! Used by the hypervisor's dom0 builder and by dom0's domU builder.
#![no_std]
#![forbid(unsafe_code)]

use elf::ElfBytes;
use elf::abi;
use elf::endian::{EndianParse, LittleEndian};
use elf::file::{Class, FileHeader};
use elf::parse::ParseError;
use elf::segment::ProgramHeader;
use xen_public::elfnote;

pub mod bzimage;

/// Why an image was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// Shorter than an ELF header.
    TooShort,
    /// Magic bytes are not `\x7fELF`.
    BadMagic,
    /// `e_ident[EI_VERSION]` is not EV_CURRENT.
    BadVersion,
    /// Not ELFCLASS64.
    NotElf64,
    /// Not little-endian.
    NotLittleEndian,
    /// Not EM_X86_64.
    WrongMachine,
    /// Neither ET_EXEC nor ET_DYN.
    WrongType,
    /// Program header table outside the image or with a bad entry size.
    BadProgramHeaders,
    /// Section header table outside the image or with a bad entry size.
    BadSectionHeaders,
    /// A segment's file range lies outside the image, or filesz > memsz.
    BadSegment,
    /// No PT_LOAD segment.
    NoLoadSegment,
    /// A note header or payload runs past its segment.
    BadNote,
    /// A note's payload has the wrong size for its type.
    BadNoteValue(u32),
}

impl ElfError {
    /// One-line description for boot diagnostics.
    pub fn describe(self) -> &'static str {
        match self {
            ElfError::TooShort => "image shorter than an ELF header",
            ElfError::BadMagic => "bad ELF magic",
            ElfError::BadVersion => "unsupported ELF version",
            ElfError::NotElf64 => "not a 64-bit ELF",
            ElfError::NotLittleEndian => "not little-endian",
            ElfError::WrongMachine => "not an x86_64 ELF",
            ElfError::WrongType => "not an executable ELF",
            ElfError::BadProgramHeaders => "program headers out of bounds",
            ElfError::BadSectionHeaders => "section headers out of bounds",
            ElfError::BadSegment => "segment out of bounds",
            ElfError::NoLoadSegment => "no loadable segment",
            ElfError::BadNote => "malformed ELF note",
            ElfError::BadNoteValue(_) => "Xen ELF note with a bad value",
        }
    }
}

/// `PT_LOAD`.
pub const PT_LOAD: u32 = abi::PT_LOAD;
/// `PT_NOTE`.
pub const PT_NOTE: u32 = abi::PT_NOTE;
/// Segment flag: executable.
pub const PF_X: u32 = abi::PF_X;
/// Segment flag: writable.
pub const PF_W: u32 = abi::PF_W;
/// Segment flag: readable.
pub const PF_R: u32 = abi::PF_R;

/// Size of an Elf64_Phdr.
const PHDR_SIZE: usize = 56;

/// The crate's refusal of the identification or the file header, in our terms.
fn header_error(e: ParseError) -> ElfError {
    match e {
        ParseError::BadMagic(_) => ElfError::BadMagic,
        ParseError::UnsupportedVersion(_) => ElfError::BadVersion,
        ParseError::UnsupportedElfClass(_) => ElfError::NotElf64,
        ParseError::UnsupportedElfEndianness(_) => ElfError::NotLittleEndian,
        _ => ElfError::TooShort,
    }
}

/// `ElfBytes::minimal_parse` checks the section header table, then the
/// program header table, and does not say which one it refused. Tell them
/// apart for the message only (the crate's check is the one that guards):
/// blame the program headers unless their table, by the crate's rules
/// (`e_phoff == 0` means none; entries of 56 bytes), fits in the image.
fn table_error(ehdr: &FileHeader<LittleEndian>, len: usize) -> ElfError {
    let end = usize::try_from(ehdr.e_phoff).ok().and_then(|off| off.checked_add(usize::from(ehdr.e_phnum) * PHDR_SIZE));
    let fits = ehdr.e_phoff == 0 || (usize::from(ehdr.e_phentsize) == PHDR_SIZE && end.is_some_and(|end| end <= len));
    if fits { ElfError::BadSectionHeaders } else { ElfError::BadProgramHeaders }
}

/// One program header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// `p_type`.
    pub kind: u32,
    /// `p_flags` (`PF_*`).
    pub flags: u32,
    /// File offset.
    pub offset: u64,
    /// Virtual address.
    pub vaddr: u64,
    /// Physical address.
    pub paddr: u64,
    /// Bytes in the file.
    pub filesz: u64,
    /// Bytes in memory (the rest is zeroed).
    pub memsz: u64,
}

impl From<ProgramHeader> for Segment {
    fn from(p: ProgramHeader) -> Self {
        Segment { kind: p.p_type, flags: p.p_flags, offset: p.p_offset, vaddr: p.p_vaddr, paddr: p.p_paddr, filesz: p.p_filesz, memsz: p.p_memsz }
    }
}

impl From<&Segment> for ProgramHeader {
    fn from(s: &Segment) -> Self {
        ProgramHeader {
            p_type: s.kind,
            p_flags: s.flags,
            p_offset: s.offset,
            p_vaddr: s.vaddr,
            p_paddr: s.paddr,
            p_filesz: s.filesz,
            p_memsz: s.memsz,
            p_align: 0,
        }
    }
}

/// A validated ELF64 x86_64 image.
#[derive(Debug)]
pub struct Elf<'a> {
    bytes: &'a [u8],
    /// The crate's view: file header, and the header tables it located
    /// and bounds-checked.
    file: ElfBytes<'a, LittleEndian>,
}

impl<'a> Elf<'a> {
    /// Validate the header, the header tables and every segment's bounds.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ElfError> {
        let ident = bytes.get(..abi::EI_NIDENT).ok_or(ElfError::TooShort)?;
        let ident = elf::file::parse_ident::<LittleEndian>(ident).map_err(header_error)?;
        if ident.1 != Class::ELF64 {
            return Err(ElfError::NotElf64);
        }
        let tail = bytes.get(abi::EI_NIDENT..abi::EI_NIDENT + elf::file::ELF64_EHDR_TAILSIZE).ok_or(ElfError::TooShort)?;
        let ehdr = FileHeader::parse_tail(ident, tail).map_err(header_error)?;
        if ehdr.e_type != abi::ET_EXEC && ehdr.e_type != abi::ET_DYN {
            return Err(ElfError::WrongType);
        }
        if ehdr.e_machine != abi::EM_X86_64 {
            return Err(ElfError::WrongMachine);
        }
        // Xen's libelf takes e_phnum as the count: no PN_XNUM extension
        // (which would send the crate to section header 0 for the count).
        if ehdr.e_phnum == abi::PN_XNUM {
            return Err(ElfError::BadProgramHeaders);
        }
        let file = ElfBytes::<LittleEndian>::minimal_parse(bytes).map_err(|_| table_error(&ehdr, bytes.len()))?;
        let elf = Elf { bytes, file };
        let mut loads = 0;
        for seg in elf.segments() {
            elf.segment_data(&seg)?;
            if seg.filesz > seg.memsz || seg.vaddr.checked_add(seg.memsz).is_none() {
                return Err(ElfError::BadSegment);
            }
            if seg.kind == PT_LOAD {
                loads += 1;
            }
        }
        if loads == 0 {
            return Err(ElfError::NoLoadSegment);
        }
        Ok(elf)
    }

    /// `e_entry`.
    pub fn entry(&self) -> u64 {
        self.file.ehdr.e_entry
    }

    /// The whole image.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Every program header, in file order.
    pub fn segments(&self) -> impl Iterator<Item = Segment> + '_ {
        self.file.segments().into_iter().flat_map(|t| t.iter()).map(Segment::from)
    }

    /// The file bytes of a segment: `[p_offset, p_offset + p_filesz)`, which
    /// must lie inside the image (the crate checks, overflow included).
    pub fn segment_data(&self, seg: &Segment) -> Result<&'a [u8], ElfError> {
        self.file.segment_data(&ProgramHeader::from(seg)).map_err(|_| ElfError::BadSegment)
    }

    /// Lowest and one-past-highest virtual address over all PT_LOAD segments.
    pub fn virt_bounds(&self) -> (u64, u64) {
        let loads = self.segments().filter(|s| s.kind == PT_LOAD);
        loads.fold((u64::MAX, 0), |(lo, hi), s| (lo.min(s.vaddr), hi.max(s.vaddr + s.memsz)))
    }

    /// Where a PV kernel's PT_LOAD segments go: `paddr + virt_offset`, with
    /// `virt_offset = VIRT_BASE - PADDR_OFFSET` (see [`XenNotes::virt_offset`]).
    /// Returns the lowest and one-past-highest virtual address.
    pub fn pv_load_bounds(&self, virt_offset: u64) -> (u64, u64) {
        let loads = self.segments().filter(|s| s.kind == PT_LOAD);
        loads.fold((u64::MAX, 0), |(lo, hi), s| {
            let va = s.paddr.wrapping_add(virt_offset);
            (lo.min(va), hi.max(va.saturating_add(s.memsz)))
        })
    }

    /// Parse every "Xen" note of every PT_NOTE segment.
    pub fn xen_notes(&self) -> Result<XenNotes<'a>, ElfError> {
        let mut notes = XenNotes::default();
        for seg in self.segments().filter(|s| s.kind == PT_NOTE) {
            for note in NoteIter::new(self.segment_data(&seg)?) {
                let note = note?;
                if note.name == elfnote::XEN_NOTE_NAME {
                    notes.apply(note.kind, note.desc)?;
                }
            }
        }
        Ok(notes)
    }
}

/// One ELF note: name without its NUL, type, payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Note<'a> {
    /// Owner name, NUL stripped.
    pub name: &'a [u8],
    /// `n_type`.
    pub kind: u32,
    /// Payload.
    pub desc: &'a [u8],
}

/// Iterator over the notes of one PT_NOTE segment; yields an error once and
/// then stops if a note runs past the segment.
///
/// The note framing stays here rather than in `elf::note::NoteIterator`,
/// for two reasons of Xen's semantics: Xen's libelf (`elf_note_next`) pads
/// name and payload to 4 bytes whatever the segment's `p_align` says,
/// where the crate pads to `p_align`; and a note that runs past its segment
/// is an error ([`ElfError::BadNote`]) here, where the crate's iterator ends
/// as if the segment were done, so a cut-off Xen note would pass unnoticed.
/// The integers are read with the crate's bounds-checked `EndianParse`.
pub struct NoteIter<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> NoteIter<'a> {
    /// Iterate over the notes in `data`.
    pub fn new(data: &'a [u8]) -> Self {
        NoteIter { rest: data, failed: false }
    }

    fn next_note(&mut self) -> Result<Note<'a>, ElfError> {
        let b = self.rest;
        let mut off = 0;
        let mut word = || LittleEndian.parse_u32_at(&mut off, b).map_err(|_| ElfError::BadNote);
        let namesz = word()? as usize;
        let descsz = word()? as usize;
        let kind = word()?;
        let name_end = 12usize.checked_add(namesz).ok_or(ElfError::BadNote)?;
        let desc_start = align4(name_end).ok_or(ElfError::BadNote)?;
        let desc_end = desc_start.checked_add(descsz).ok_or(ElfError::BadNote)?;
        let raw_name = b.get(12..name_end).ok_or(ElfError::BadNote)?;
        let desc = b.get(desc_start..desc_end).ok_or(ElfError::BadNote)?;
        let name = raw_name.strip_suffix(&[0]).unwrap_or(raw_name);
        let next = align4(desc_end).ok_or(ElfError::BadNote)?.min(b.len());
        self.rest = &b[next..];
        Ok(Note { name, kind, desc })
    }
}

/// Round up to Xen's note alignment.
fn align4(x: usize) -> Option<usize> {
    Some(x.checked_add(3)? & !3)
}

impl<'a> Iterator for NoteIter<'a> {
    type Item = Result<Note<'a>, ElfError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let r = self.next_note();
        self.failed = r.is_err();
        Some(r)
    }
}

/// The Xen notes a PV kernel carries (`public/elfnote.h`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenNotes<'a> {
    /// XEN_ELFNOTE_ENTRY.
    pub entry: Option<u64>,
    /// XEN_ELFNOTE_HYPERCALL_PAGE.
    pub hypercall_page: Option<u64>,
    /// XEN_ELFNOTE_VIRT_BASE.
    pub virt_base: Option<u64>,
    /// XEN_ELFNOTE_PADDR_OFFSET.
    pub paddr_offset: Option<u64>,
    /// XEN_ELFNOTE_XEN_VERSION.
    pub xen_version: Option<&'a str>,
    /// XEN_ELFNOTE_GUEST_OS.
    pub guest_os: Option<&'a str>,
    /// XEN_ELFNOTE_GUEST_VERSION.
    pub guest_version: Option<&'a str>,
    /// XEN_ELFNOTE_LOADER.
    pub loader: Option<&'a str>,
    /// XEN_ELFNOTE_PAE_MODE.
    pub pae_mode: Option<&'a str>,
    /// XEN_ELFNOTE_FEATURES.
    pub features: Option<&'a str>,
    /// XEN_ELFNOTE_INIT_P2M: the virtual address where the builder maps
    /// the P2M list, outside the initial region (Xen's `p2m_base`).
    pub init_p2m: Option<u64>,
    /// XEN_ELFNOTE_MOD_START_PFN: non-zero means the kernel takes its
    /// initrd unmapped, by pfn (Xen's `unmapped_initrd`, `SIF_MOD_START_PFN`).
    pub mod_start_pfn: bool,
}

/// A numeric note is 4 or 8 bytes, little-endian. Stricter than Xen's
/// `elf_note_numeric`, which also reads 1 and 2 bytes and takes any other
/// size as 0: here another size is `BadNoteValue`, so a malformed note is
/// refused rather than read as 0.
fn note_num(kind: u32, desc: &[u8]) -> Result<u64, ElfError> {
    let mut off = 0;
    let n = match desc.len() {
        4 => LittleEndian.parse_u32_at(&mut off, desc).map(u64::from),
        8 => LittleEndian.parse_u64_at(&mut off, desc),
        _ => return Err(ElfError::BadNoteValue(kind)),
    };
    n.map_err(|_| ElfError::BadNoteValue(kind))
}

/// A string note is UTF-8, NUL terminated (the NUL is optional here).
fn note_str(kind: u32, desc: &[u8]) -> Result<&str, ElfError> {
    let s = desc.split(|&c| c == 0).next().unwrap_or(&[]);
    core::str::from_utf8(s).map_err(|_| ElfError::BadNoteValue(kind))
}

impl<'a> XenNotes<'a> {
    fn apply(&mut self, kind: u32, desc: &'a [u8]) -> Result<(), ElfError> {
        match kind {
            elfnote::ENTRY => self.entry = Some(note_num(kind, desc)?),
            elfnote::HYPERCALL_PAGE => self.hypercall_page = Some(note_num(kind, desc)?),
            elfnote::VIRT_BASE => self.virt_base = Some(note_num(kind, desc)?),
            elfnote::PADDR_OFFSET => self.paddr_offset = Some(note_num(kind, desc)?),
            elfnote::XEN_VERSION => self.xen_version = Some(note_str(kind, desc)?),
            elfnote::GUEST_OS => self.guest_os = Some(note_str(kind, desc)?),
            elfnote::GUEST_VERSION => self.guest_version = Some(note_str(kind, desc)?),
            elfnote::LOADER => self.loader = Some(note_str(kind, desc)?),
            elfnote::PAE_MODE => self.pae_mode = Some(note_str(kind, desc)?),
            elfnote::FEATURES => self.features = Some(note_str(kind, desc)?),
            elfnote::INIT_P2M => self.init_p2m = Some(note_num(kind, desc)?),
            elfnote::MOD_START_PFN => self.mod_start_pfn = note_num(kind, desc)? != 0,
            _ => {}
        }
        Ok(())
    }

    /// `VIRT_BASE - PADDR_OFFSET` (a missing PADDR_OFFSET means VIRT_BASE,
    /// as in Xen's libelf): added to a segment's paddr to place it.
    pub fn virt_offset(&self) -> u64 {
        let virt_base = self.virt_base.unwrap_or(0);
        virt_base.wrapping_sub(self.paddr_offset.unwrap_or(virt_base))
    }

    /// The INIT_P2M address, if it is usable for a kernel loaded at
    /// `[kstart, kend)`: Xen's `elf_xen_addr_calc_check` refuses a
    /// `p2m_base` inside the kernel ("P->M table base is out of bounds").
    pub fn p2m_base(&self, kstart: u64, kend: u64) -> Result<Option<u64>, ElfError> {
        match self.init_p2m {
            Some(b) if (kstart..kend).contains(&b) => Err(ElfError::BadNoteValue(elfnote::INIT_P2M)),
            b => Ok(b),
        }
    }

    /// Whether the kernel declares itself a Xen PV guest at all.
    pub fn is_pv_kernel(&self) -> bool {
        self.xen_version.is_some() || self.guest_os.is_some()
    }

    /// Features the kernel marks as required (`!name`).
    pub fn required_features(&self) -> impl Iterator<Item = &'a str> {
        let f = self.features.unwrap_or("");
        f.split('|').filter_map(|s| s.strip_prefix('!'))
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod bzimage_tests;
