//! Multiboot2 boot information: what xen-core takes from it.
//!
//! Borrows the information block GRUB left in memory, as the `multiboot2`
//! crate's [`BootInformation`]: the crate checks the block's size, every
//! tag's size against it and the end tag before anything here reads a tag
//! (the one unsafe step that hands it the bytes is
//! `crate::arch::x86_64::mbi::load`). What stays here:
//! - the answers xen-core uses: command line, boot loader name, modules,
//!   memory map, the ACPI RSDP copy;
//! - a size check before each typed tag cast: the crate's casts
//!   (`ModuleTag`, `MemoryMapTag`) and `MemoryMapTag::memory_areas` assert,
//!   that is panic, on a tag too small for its type or with an entry size
//!   other than 24, and a panic this early stops the machine before the
//!   console can say why. A tag that fails the check is skipped, as if the
//!   loader had not passed it.

use multiboot2::{BootInformation, DynSizedStructure, MaybeDynSized, MemoryMapTag, ModuleTag, TagHeader, TagType};

/// Magic value in EAX when a multiboot2 loader enters the kernel.
pub const BOOTLOADER_MAGIC: u32 = multiboot2::MAGIC;
/// Magic value of the multiboot2 header in the kernel image (the header is
/// xen-core's own, written in `arch::x86_64::boot`; the crate parses only
/// the information a loader hands over).
pub const HEADER_MAGIC: u32 = 0xe852_50d6;

/// Memory-map entry type of usable RAM.
pub const MEMORY_AVAILABLE: u32 = multiboot2::MemoryAreaType::Available.val();

/// Why the information block cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MbiError {
    /// Shorter than its own header or than its `total_size`.
    Truncated,
    /// `total_size` smaller than the fixed header.
    BadSize,
    /// Refused by the `multiboot2` crate: misaligned, a tag's size running
    /// past the block, or no end tag where the block ends.
    Rejected(multiboot2::LoadError),
}

/// One memory-map entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryArea {
    /// Physical base address.
    pub base: u64,
    /// Length in bytes.
    pub len: u64,
    /// Type (1 = available RAM).
    pub kind: u32,
}

/// One boot module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Module<'a> {
    /// Physical start address.
    pub start: u32,
    /// Physical end address (exclusive).
    pub end: u32,
    /// The module's command line (its path and arguments).
    pub cmdline: &'a str,
}

impl Module<'_> {
    /// Length in bytes (0 if the loader gave end < start).
    pub fn len(&self) -> u32 {
        self.end.saturating_sub(self.start)
    }

    /// Whether the module is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Read `total_size` from the first bytes of a block, to learn how much to
/// map before the crate can see it.
pub fn total_size(header: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(header.get(..4)?.try_into().ok()?))
}

/// A tag as the crate walks it: header and payload, not yet typed.
type RawTag = DynSizedStructure<TagHeader>;

/// Whether a tag is large enough for the fixed part of `T`, so that the
/// crate's cast to `T` does not assert.
fn fits<T: MaybeDynSized<Header = TagHeader> + ?Sized>(tag: &RawTag) -> bool {
    tag.header().size as usize >= T::BASE_SIZE
}

/// The information block, as the crate reads it.
#[derive(Clone, Copy, Debug)]
pub struct BootInfo<'a> {
    info: &'a BootInformation<'a>,
}

impl<'a> BootInfo<'a> {
    /// Wrap a block the crate has accepted (see
    /// `crate::arch::x86_64::mbi::load`).
    pub fn new(info: &'a BootInformation<'a>) -> Self {
        BootInfo { info }
    }

    /// Size of the block in bytes.
    pub fn len(&self) -> usize {
        self.info.total_size()
    }

    /// Whether the block holds no tags but the end tag.
    pub fn is_empty(&self) -> bool {
        self.info.tags().all(|t| t.header().typ == TagType::End)
    }

    /// Every tag of type `typ`, in the order the loader wrote them.
    fn tags_of(&self, typ: TagType) -> impl Iterator<Item = &'a RawTag> {
        self.info.tags().filter(move |t| t.header().typ == typ)
    }

    /// A copy of the ACPI RSDP (the ACPI 2.0 one if GRUB passed both), as
    /// the raw bytes `crate::boot::acpi` reads.
    pub fn acpi_rsdp(&self) -> Option<&'a [u8]> {
        let payload = |typ| self.tags_of(typ).next().map(|t| t.payload());
        payload(TagType::AcpiV2).or_else(|| payload(TagType::AcpiV1))
    }

    /// The hypervisor's command line, or "" if none was given (or it is
    /// not NUL-terminated UTF-8).
    pub fn cmdline(&self) -> &'a str {
        self.info.command_line_tag().and_then(|t| t.cmdline().ok()).unwrap_or("")
    }

    /// The boot loader's name, or "".
    pub fn bootloader_name(&self) -> &'a str {
        self.info.boot_loader_name_tag().and_then(|t| t.name().ok()).unwrap_or("")
    }

    /// The boot modules, in the order the loader lists them.
    pub fn modules(&self) -> impl Iterator<Item = Module<'a>> {
        self.tags_of(TagType::Module).filter(|t| fits::<ModuleTag>(t)).map(|t| {
            let m = t.cast::<ModuleTag>();
            Module { start: m.start_address(), end: m.end_address(), cmdline: m.cmdline().unwrap_or("") }
        })
    }

    /// The memory map entries (of the first memory-map tag; none if that
    /// tag is malformed).
    pub fn memory_areas(&self) -> impl Iterator<Item = MemoryArea> + 'a {
        const ENTRY: usize = size_of::<multiboot2::MemoryArea>();
        let tag = self.tags_of(TagType::Mmap).next().filter(|t| fits::<MemoryMapTag>(t));
        let tag = tag.filter(|t| (t.header().size as usize - MemoryMapTag::BASE_SIZE).is_multiple_of(ENTRY));
        let map = tag.map(|t| t.cast::<MemoryMapTag>()).filter(|m| m.entry_size() as usize == ENTRY);
        let areas = map.map(|m| m.memory_areas()).unwrap_or(&[]);
        areas.iter().map(|a| MemoryArea { base: a.start_address(), len: a.size(), kind: a.typ().val() })
    }
}

#[cfg(test)]
mod tests {
    //! Blocks are built byte by byte here, as a loader lays them out, and
    //! parsed through the crate (`arch::x86_64::mbi::load`).
    use super::*;
    use crate::arch::x86_64::mbi::load;
    use std::vec::Vec;
    use zerocopy::IntoBytes;

    const TAG_END: u32 = 0;
    const TAG_CMDLINE: u32 = 1;
    const TAG_BOOTLOADER: u32 = 2;
    const TAG_MODULE: u32 = 3;
    const TAG_MMAP: u32 = 6;
    const TAG_ACPI_OLD: u32 = 14;
    const TAG_ACPI_NEW: u32 = 15;

    fn tag(kind: u32, body: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&kind.to_le_bytes());
        v.extend_from_slice(&(8 + body.len() as u32).to_le_bytes());
        v.extend_from_slice(body);
        while v.len() % 8 != 0 {
            v.push(0);
        }
        v
    }

    fn mbi(tags: &[Vec<u8>]) -> Vec<u8> {
        let mut v = std::vec![0u8; 8];
        for t in tags {
            v.extend_from_slice(t);
        }
        v.extend(tag(TAG_END, &[]));
        let n = v.len() as u32;
        v[0..4].copy_from_slice(&n.to_le_bytes());
        v
    }

    fn mmap(entries: &[(u64, u64, u32)]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&24u32.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        for &(base, len, kind) in entries {
            b.extend_from_slice(&base.to_le_bytes());
            b.extend_from_slice(&len.to_le_bytes());
            b.extend_from_slice(&kind.to_le_bytes());
            b.extend_from_slice(&0u32.to_le_bytes());
        }
        tag(TAG_MMAP, &b)
    }

    fn module(start: u32, end: u32, name: &str) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&start.to_le_bytes());
        b.extend_from_slice(&end.to_le_bytes());
        b.extend_from_slice(name.as_bytes());
        b.push(0);
        tag(TAG_MODULE, &b)
    }

    /// `b` copied into 8-byte-aligned memory, as GRUB places the block
    /// (the crate refuses a misaligned one).
    struct Aligned {
        words: Vec<u64>,
        len: usize,
    }

    impl Aligned {
        fn new(b: &[u8]) -> Self {
            let mut words = std::vec![0u64; b.len().div_ceil(8)];
            words.as_mut_bytes()[..b.len()].copy_from_slice(b);
            Aligned { words, len: b.len() }
        }

        fn bytes(&self) -> &[u8] {
            &self.words.as_bytes()[..self.len]
        }
    }

    #[test]
    fn reads_cmdline_modules_and_memory_map() {
        let b = Aligned::new(&mbi(&[
            tag(TAG_CMDLINE, b"loglvl=all\0"),
            tag(TAG_BOOTLOADER, b"GRUB 2.06\0"),
            module(0x400000, 0x410000, "/boot/dom0 quiet"),
            module(0x410000, 0x420000, "/boot/guest"),
            mmap(&[(0, 0x9fc00, 1), (0x100000, 0x7ee0000, 1), (0xfffc0000, 0x40000, 2)]),
        ]));
        let raw = load(b.bytes()).unwrap();
        let info = BootInfo::new(&raw);
        assert_eq!(info.len(), b.bytes().len());
        assert!(!info.is_empty());
        assert_eq!(info.cmdline(), "loglvl=all");
        assert_eq!(info.bootloader_name(), "GRUB 2.06");
        let mods: Vec<_> = info.modules().collect();
        assert_eq!(mods.len(), 2);
        assert_eq!(mods[0], Module { start: 0x400000, end: 0x410000, cmdline: "/boot/dom0 quiet" });
        assert_eq!(mods[1].len(), 0x10000);
        let areas: Vec<_> = info.memory_areas().collect();
        assert_eq!(areas.len(), 3);
        assert_eq!(areas[1], MemoryArea { base: 0x100000, len: 0x7ee0000, kind: MEMORY_AVAILABLE });
        assert_eq!(areas[2].kind, 2);
    }

    #[test]
    fn missing_tags_give_empty_answers() {
        let b = Aligned::new(&mbi(&[]));
        let raw = load(b.bytes()).unwrap();
        let info = BootInfo::new(&raw);
        assert!(info.is_empty());
        assert_eq!(info.cmdline(), "");
        assert_eq!(info.bootloader_name(), "");
        assert_eq!(info.modules().count(), 0);
        assert_eq!(info.memory_areas().count(), 0);
        assert_eq!(info.acpi_rsdp(), None);
    }

    #[test]
    fn the_acpi_2_rsdp_is_preferred_over_the_acpi_1_copy() {
        let v1 = [1u8; 20];
        let v2 = [2u8; 36];
        let b = Aligned::new(&mbi(&[tag(TAG_ACPI_OLD, &v1), tag(TAG_ACPI_NEW, &v2)]));
        let raw = load(b.bytes()).unwrap();
        assert_eq!(BootInfo::new(&raw).acpi_rsdp(), Some(&v2[..]));
        let b = Aligned::new(&mbi(&[tag(TAG_ACPI_OLD, &v1)]));
        let raw = load(b.bytes()).unwrap();
        assert_eq!(BootInfo::new(&raw).acpi_rsdp(), Some(&v1[..]));
    }

    #[test]
    fn truncated_block_is_rejected() {
        let b = mbi(&[tag(TAG_CMDLINE, b"x\0")]);
        let a = Aligned::new(&b);
        assert_eq!(load(&a.bytes()[..b.len() - 4]).unwrap_err(), MbiError::Truncated);
        assert_eq!(load(&[1, 0]).unwrap_err(), MbiError::Truncated);
        assert_eq!(load(&[4, 0, 0, 0, 0, 0, 0, 0]).unwrap_err(), MbiError::BadSize);
    }

    #[test]
    fn tag_size_past_the_end_rejects_the_block() {
        // The crate checks every tag's size against total_size before any
        // tag is read, so the block is refused whole (the hand-written
        // walker this replaced stopped at the bad tag instead).
        let mut b = mbi(&[tag(TAG_CMDLINE, b"abc\0"), module(1, 2, "m")]);
        let off = 8 + 16;
        b[off + 4..off + 8].copy_from_slice(&0x1000u32.to_le_bytes());
        assert!(matches!(load(Aligned::new(&b).bytes()), Err(MbiError::Rejected(_))));
    }

    #[test]
    fn a_block_without_its_end_tag_is_rejected() {
        let mut b = mbi(&[tag(TAG_CMDLINE, b"abc\0")]);
        let n = b.len() - 8;
        b.truncate(n);
        b[0..4].copy_from_slice(&(n as u32).to_le_bytes());
        assert_eq!(load(Aligned::new(&b).bytes()).unwrap_err(), MbiError::Rejected(multiboot2::LoadError::NoEndTag));
    }

    #[test]
    fn a_misaligned_block_is_rejected() {
        let b = mbi(&[tag(TAG_CMDLINE, b"abc\0")]);
        let mut shifted = std::vec![0u8; 4];
        shifted.extend_from_slice(&b);
        let a = Aligned::new(&shifted);
        assert!(matches!(load(&a.bytes()[4..]), Err(MbiError::Rejected(_))));
    }

    #[test]
    fn corrupt_mmap_entry_size_yields_no_areas() {
        let mut t = mmap(&[(0, 0x1000, 1)]);
        t[8..12].copy_from_slice(&4u32.to_le_bytes());
        let b = Aligned::new(&mbi(&[t]));
        let raw = load(b.bytes()).unwrap();
        assert_eq!(BootInfo::new(&raw).memory_areas().count(), 0);
    }

    #[test]
    fn tags_too_small_for_their_type_are_skipped_not_a_panic() {
        // The crate asserts when it casts these; BootInfo checks first.
        let short_module = tag(TAG_MODULE, &[1, 0, 0, 0]);
        let short_mmap = tag(TAG_MMAP, &[24, 0, 0, 0]);
        let b = Aligned::new(&mbi(&[short_module, module(5, 6, "ok"), short_mmap]));
        let raw = load(b.bytes()).unwrap();
        let info = BootInfo::new(&raw);
        let mods: Vec<_> = info.modules().collect();
        assert_eq!(mods, [Module { start: 5, end: 6, cmdline: "ok" }]);
        assert_eq!(info.memory_areas().count(), 0);
        // A memory map whose entries do not divide into 24-byte areas.
        let mut ragged = mmap(&[(0, 0x1000, 1)]);
        ragged[4..8].copy_from_slice(&(16u32 + 20).to_le_bytes());
        let b = Aligned::new(&mbi(&[ragged]));
        let raw = load(b.bytes()).unwrap();
        assert_eq!(BootInfo::new(&raw).memory_areas().count(), 0);
    }

    #[test]
    fn strings_without_nul_or_not_utf8_read_as_empty() {
        let b = Aligned::new(&mbi(&[tag(TAG_CMDLINE, b"abc"), tag(TAG_BOOTLOADER, &[0xff, 0xfe, 0]), module(1, 2, "")]));
        let raw = load(b.bytes()).unwrap();
        let info = BootInfo::new(&raw);
        assert_eq!(info.cmdline(), "");
        assert_eq!(info.bootloader_name(), "");
        assert_eq!(info.modules().next().map(|m| m.cmdline), Some(""));
    }

    #[test]
    fn random_corruption_never_panics() {
        let base = mbi(&[
            tag(TAG_CMDLINE, b"loglvl=all\0"),
            tag(TAG_BOOTLOADER, b"GRUB\0"),
            module(0x400000, 0x410000, "/boot/dom0"),
            mmap(&[(0, 0x9fc00, 1), (0x100000, 0x7ee0000, 1)]),
            tag(TAG_ACPI_NEW, &[7u8; 36]),
        ]);
        let mut s: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..20000 {
            let mut b = base.clone();
            for _ in 0..3 {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let i = (s as usize) % b.len();
                b[i] = (s >> 32) as u8;
            }
            let a = Aligned::new(&b);
            if let Ok(raw) = load(a.bytes()) {
                let info = BootInfo::new(&raw);
                let _ = (info.cmdline(), info.bootloader_name(), info.acpi_rsdp(), info.is_empty());
                info.modules().for_each(|m| assert!(m.len() <= m.end));
                let _ = info.memory_areas().count();
            }
        }
    }
}
