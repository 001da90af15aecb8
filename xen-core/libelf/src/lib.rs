//! Bounds-checked ELF64 parsing for PV kernel images and their "Xen" notes.
//!
//! Owns nothing but borrowed bytes. Invariant: every offset and length read
//! from the image is checked against the slice before use, so a hostile or
//! truncated module yields an [`ElfError`], never a panic or an out-of-bounds
//! read. Used by the hypervisor's dom0 builder and by dom0's domU builder.
#![no_std]
#![forbid(unsafe_code)]

use xen_public::elfnote;

/// Why an image was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// Shorter than an ELF header.
    TooShort,
    /// Magic bytes are not `\x7fELF`.
    BadMagic,
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
            ElfError::NotElf64 => "not a 64-bit ELF",
            ElfError::NotLittleEndian => "not little-endian",
            ElfError::WrongMachine => "not an x86_64 ELF",
            ElfError::WrongType => "not an executable ELF",
            ElfError::BadProgramHeaders => "program headers out of bounds",
            ElfError::BadSegment => "segment out of bounds",
            ElfError::NoLoadSegment => "no loadable segment",
            ElfError::BadNote => "malformed ELF note",
            ElfError::BadNoteValue(_) => "Xen ELF note with a bad value",
        }
    }
}

/// `PT_LOAD`.
pub const PT_LOAD: u32 = 1;
/// `PT_NOTE`.
pub const PT_NOTE: u32 = 4;
/// Segment flag: executable.
pub const PF_X: u32 = 1;
/// Segment flag: writable.
pub const PF_W: u32 = 2;
/// Segment flag: readable.
pub const PF_R: u32 = 4;

const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
const EM_X86_64: u16 = 62;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;

fn rd_u16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off.checked_add(2)?)?.try_into().ok()?))
}

fn rd_u32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off.checked_add(4)?)?.try_into().ok()?))
}

fn rd_u64(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off.checked_add(8)?)?.try_into().ok()?))
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

/// A validated ELF64 x86_64 image.
#[derive(Clone, Copy, Debug)]
pub struct Elf<'a> {
    bytes: &'a [u8],
    entry: u64,
    phoff: usize,
    phnum: usize,
}

impl<'a> Elf<'a> {
    /// Validate the header, program-header table and every segment's bounds.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ElfError> {
        if bytes.len() < EHDR_SIZE {
            return Err(ElfError::TooShort);
        }
        if bytes[0..4] != *b"\x7fELF" {
            return Err(ElfError::BadMagic);
        }
        if bytes[4] != 2 {
            return Err(ElfError::NotElf64);
        }
        if bytes[5] != 1 {
            return Err(ElfError::NotLittleEndian);
        }
        let e_type = rd_u16(bytes, 16).ok_or(ElfError::TooShort)?;
        if e_type != ET_EXEC && e_type != ET_DYN {
            return Err(ElfError::WrongType);
        }
        if rd_u16(bytes, 18) != Some(EM_X86_64) {
            return Err(ElfError::WrongMachine);
        }
        let entry = rd_u64(bytes, 24).ok_or(ElfError::TooShort)?;
        let phoff = rd_u64(bytes, 32).ok_or(ElfError::TooShort)?;
        let phentsize = rd_u16(bytes, 54).ok_or(ElfError::TooShort)?;
        let phnum = rd_u16(bytes, 56).ok_or(ElfError::TooShort)?;
        if phnum > 0 && usize::from(phentsize) != PHDR_SIZE {
            return Err(ElfError::BadProgramHeaders);
        }
        let table_len = usize::from(phnum) * PHDR_SIZE;
        let phoff = usize::try_from(phoff).map_err(|_| ElfError::BadProgramHeaders)?;
        match phoff.checked_add(table_len) {
            Some(end) if end <= bytes.len() => {}
            _ => return Err(ElfError::BadProgramHeaders),
        }
        let elf = Elf { bytes, entry, phoff, phnum: usize::from(phnum) };
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
        self.entry
    }

    /// The whole image.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Every program header, in file order.
    pub fn segments(&self) -> impl Iterator<Item = Segment> + '_ {
        (0..self.phnum).map(move |i| {
            let b = &self.bytes[self.phoff + i * PHDR_SIZE..][..PHDR_SIZE];
            // The table was bounds-checked in `parse`, so these reads succeed.
            Segment {
                kind: rd_u32(b, 0).unwrap_or(0),
                flags: rd_u32(b, 4).unwrap_or(0),
                offset: rd_u64(b, 8).unwrap_or(0),
                vaddr: rd_u64(b, 16).unwrap_or(0),
                paddr: rd_u64(b, 24).unwrap_or(0),
                filesz: rd_u64(b, 32).unwrap_or(0),
                memsz: rd_u64(b, 40).unwrap_or(0),
            }
        })
    }

    /// The file bytes of a segment.
    pub fn segment_data(&self, seg: &Segment) -> Result<&'a [u8], ElfError> {
        let start = usize::try_from(seg.offset).map_err(|_| ElfError::BadSegment)?;
        let len = usize::try_from(seg.filesz).map_err(|_| ElfError::BadSegment)?;
        let end = start.checked_add(len).ok_or(ElfError::BadSegment)?;
        self.bytes.get(start..end).ok_or(ElfError::BadSegment)
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
        let namesz = rd_u32(b, 0).ok_or(ElfError::BadNote)? as usize;
        let descsz = rd_u32(b, 4).ok_or(ElfError::BadNote)? as usize;
        let kind = rd_u32(b, 8).ok_or(ElfError::BadNote)?;
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
}

/// A numeric note is 4 or 8 bytes, little-endian.
fn note_num(kind: u32, desc: &[u8]) -> Result<u64, ElfError> {
    match desc.len() {
        4 => Ok(u64::from(rd_u32(desc, 0).ok_or(ElfError::BadNoteValue(kind))?)),
        8 => rd_u64(desc, 0).ok_or(ElfError::BadNoteValue(kind)),
        _ => Err(ElfError::BadNoteValue(kind)),
    }
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
