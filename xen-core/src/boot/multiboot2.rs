//! Multiboot2 boot information parser.
//!
//! Owns nothing: it borrows the information block GRUB left in memory.
//! Invariant: every tag is bounds-checked against the block's `total_size`,
//! so a truncated or corrupt block yields [`MbiError`] or fewer tags, never an
//! out-of-bounds read.

/// Magic value in EAX when a multiboot2 loader enters the kernel.
pub const BOOTLOADER_MAGIC: u32 = 0x36d7_6289;
/// Magic value of the multiboot2 header in the kernel image.
pub const HEADER_MAGIC: u32 = 0xe852_50d6;

const TAG_END: u32 = 0;
const TAG_CMDLINE: u32 = 1;
const TAG_BOOTLOADER: u32 = 2;
const TAG_MODULE: u32 = 3;
const TAG_MMAP: u32 = 6;
const TAG_ACPI_OLD: u32 = 14;
const TAG_ACPI_NEW: u32 = 15;

/// Memory-map entry type of usable RAM.
pub const MEMORY_AVAILABLE: u32 = 1;

/// Why the information block cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MbiError {
    /// Shorter than its own header or than its `total_size`.
    Truncated,
    /// `total_size` smaller than the fixed header.
    BadSize,
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

/// The information block.
#[derive(Clone, Copy, Debug)]
pub struct BootInfo<'a> {
    bytes: &'a [u8],
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off.checked_add(4)?)?.try_into().ok()?))
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off.checked_add(8)?)?.try_into().ok()?))
}

/// A NUL-terminated string; invalid UTF-8 becomes the empty string.
fn c_str(b: &[u8]) -> &str {
    let s = b.split(|&c| c == 0).next().unwrap_or(&[]);
    core::str::from_utf8(s).unwrap_or("")
}

/// Read `total_size` from the first bytes of a block, to learn how much to map.
pub fn total_size(header: &[u8]) -> Option<u32> {
    u32_at(header, 0)
}

impl<'a> BootInfo<'a> {
    /// Wrap a block whose first 4 bytes are its total size.
    pub fn new(bytes: &'a [u8]) -> Result<Self, MbiError> {
        let total = total_size(bytes).ok_or(MbiError::Truncated)? as usize;
        if total < 8 {
            return Err(MbiError::BadSize);
        }
        let bytes = bytes.get(..total).ok_or(MbiError::Truncated)?;
        Ok(BootInfo { bytes })
    }

    /// Size of the block in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the block holds no tags at all.
    pub fn is_empty(&self) -> bool {
        self.tags().next().is_none()
    }

    /// Every tag as (type, payload after the 8-byte tag header).
    fn tags(&self) -> impl Iterator<Item = (u32, &'a [u8])> {
        let bytes = self.bytes;
        let mut off = 8usize;
        core::iter::from_fn(move || {
            let kind = u32_at(bytes, off)?;
            let size = u32_at(bytes, off + 4)? as usize;
            if kind == TAG_END || size < 8 {
                return None;
            }
            let body = bytes.get(off + 8..off.checked_add(size)?)?;
            off = off.checked_add(size)?.checked_add(7)? & !7;
            Some((kind, body))
        })
    }

    fn tag(&self, kind: u32) -> Option<&'a [u8]> {
        self.tags().find(|(k, _)| *k == kind).map(|(_, b)| b)
    }

    /// A copy of the ACPI RSDP (the ACPI 2.0 one if GRUB passed both).
    pub fn acpi_rsdp(&self) -> Option<&'a [u8]> {
        self.tag(TAG_ACPI_NEW).or_else(|| self.tag(TAG_ACPI_OLD))
    }

    /// The hypervisor's command line, or "" if none was given.
    pub fn cmdline(&self) -> &'a str {
        self.tag(TAG_CMDLINE).map(c_str).unwrap_or("")
    }

    /// The boot loader's name.
    pub fn bootloader_name(&self) -> &'a str {
        self.tag(TAG_BOOTLOADER).map(c_str).unwrap_or("")
    }

    /// The boot modules, in the order the loader lists them.
    pub fn modules(&self) -> impl Iterator<Item = Module<'a>> {
        self.tags()
            .filter(|(k, _)| *k == TAG_MODULE)
            .filter_map(|(_, b)| Some(Module { start: u32_at(b, 0)?, end: u32_at(b, 4)?, cmdline: c_str(b.get(8..)?) }))
    }

    /// The memory map entries.
    pub fn memory_areas(&self) -> impl Iterator<Item = MemoryArea> + 'a {
        let body = self.tag(TAG_MMAP).unwrap_or(&[]);
        let entry_size = u32_at(body, 0).unwrap_or(0) as usize;
        let entries = body.get(8..).unwrap_or(&[]);
        // An entry size below 24 bytes is corrupt; yield nothing in that case.
        let step = if entry_size >= 24 { entry_size } else { usize::MAX };
        let count = entries.len().checked_div(step).unwrap_or(0);
        (0..count).filter_map(move |i| {
            let e = &entries[i * step..];
            Some(MemoryArea { base: u64_at(e, 0)?, len: u64_at(e, 8)?, kind: u32_at(e, 16)? })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

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

    #[test]
    fn reads_cmdline_modules_and_memory_map() {
        let b = mbi(&[
            tag(TAG_CMDLINE, b"loglvl=all\0"),
            tag(TAG_BOOTLOADER, b"GRUB 2.06\0"),
            module(0x400000, 0x410000, "/boot/dom0 quiet"),
            module(0x410000, 0x420000, "/boot/guest"),
            mmap(&[(0, 0x9fc00, 1), (0x100000, 0x7ee0000, 1), (0xfffc0000, 0x40000, 2)]),
        ]);
        let info = BootInfo::new(&b).unwrap();
        assert_eq!(info.cmdline(), "loglvl=all");
        assert_eq!(info.bootloader_name(), "GRUB 2.06");
        let mods: Vec<_> = info.modules().collect();
        assert_eq!(mods.len(), 2);
        assert_eq!(mods[0], Module { start: 0x400000, end: 0x410000, cmdline: "/boot/dom0 quiet" });
        assert_eq!(mods[1].len(), 0x10000);
        let areas: Vec<_> = info.memory_areas().collect();
        assert_eq!(areas.len(), 3);
        assert_eq!(areas[1], MemoryArea { base: 0x100000, len: 0x7ee0000, kind: 1 });
    }

    #[test]
    fn missing_tags_give_empty_answers() {
        let b = mbi(&[]);
        let info = BootInfo::new(&b).unwrap();
        assert_eq!(info.cmdline(), "");
        assert_eq!(info.modules().count(), 0);
        assert_eq!(info.memory_areas().count(), 0);
    }

    #[test]
    fn truncated_block_is_rejected() {
        let b = mbi(&[tag(TAG_CMDLINE, b"x\0")]);
        assert_eq!(BootInfo::new(&b[..b.len() - 4]).unwrap_err(), MbiError::Truncated);
        assert_eq!(BootInfo::new(&[1, 0]).unwrap_err(), MbiError::Truncated);
        assert_eq!(BootInfo::new(&[4, 0, 0, 0, 0, 0, 0, 0]).unwrap_err(), MbiError::BadSize);
    }

    #[test]
    fn tag_size_past_the_end_stops_iteration() {
        let mut b = mbi(&[tag(TAG_CMDLINE, b"abc\0"), module(1, 2, "m")]);
        // Corrupt the module tag's size to run past total_size.
        let off = 8 + 16;
        b[off + 4..off + 8].copy_from_slice(&0x1000u32.to_le_bytes());
        let info = BootInfo::new(&b).unwrap();
        assert_eq!(info.cmdline(), "abc");
        assert_eq!(info.modules().count(), 0);
    }

    #[test]
    fn corrupt_mmap_entry_size_yields_no_areas() {
        let mut t = mmap(&[(0, 0x1000, 1)]);
        t[8..12].copy_from_slice(&4u32.to_le_bytes());
        let b = mbi(&[t]);
        assert_eq!(BootInfo::new(&b).unwrap().memory_areas().count(), 0);
    }
}
