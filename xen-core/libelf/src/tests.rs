//! Tests of the ELF64 parser and Xen-note reader against hand-built images.
extern crate std;
use super::*;
use std::vec::Vec;

fn note(name: &[u8], kind: u32, desc: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&(name.len() as u32 + 1).to_le_bytes());
    v.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    v.extend_from_slice(&kind.to_le_bytes());
    v.extend_from_slice(name);
    v.push(0);
    while v.len() % 4 != 0 {
        v.push(0);
    }
    v.extend_from_slice(desc);
    while v.len() % 4 != 0 {
        v.push(0);
    }
    v
}

/// An ELF with one PT_LOAD (0x1000 bytes at 0x100000) and one PT_NOTE.
fn image(notes: &[u8]) -> Vec<u8> {
    let mut v = std::vec![0u8; 64];
    v[0..4].copy_from_slice(b"\x7fELF");
    v[4] = 2;
    v[5] = 1;
    v[6] = 1;
    v[16..18].copy_from_slice(&2u16.to_le_bytes());
    v[18..20].copy_from_slice(&62u16.to_le_bytes());
    v[24..32].copy_from_slice(&0x100040u64.to_le_bytes());
    v[32..40].copy_from_slice(&64u64.to_le_bytes());
    v[54..56].copy_from_slice(&56u16.to_le_bytes());
    v[56..58].copy_from_slice(&2u16.to_le_bytes());
    let note_off = 64 + 2 * 56;
    let ph = |kind: u32, off: u64, va: u64, fsz: u64, msz: u64| {
        let mut p = Vec::new();
        p.extend_from_slice(&kind.to_le_bytes());
        p.extend_from_slice(&(PF_R | PF_X).to_le_bytes());
        for x in [off, va, va, fsz, msz, 0x1000] {
            p.extend_from_slice(&x.to_le_bytes());
        }
        p
    };
    let n = notes.len() as u64;
    v.extend(ph(PT_LOAD, 0, 0x100000, 0x200, 0x1000));
    v.extend(ph(PT_NOTE, note_off as u64, 0, n, n));
    v.extend_from_slice(notes);
    v.resize(v.len().max(0x200), 0);
    v
}

fn pv_notes() -> Vec<u8> {
    let mut n = Vec::new();
    n.extend(note(b"Xen", elfnote::GUEST_OS, b"pv-guest-kernel\0"));
    n.extend(note(b"Xen", elfnote::XEN_VERSION, b"xen-3.0\0"));
    n.extend(note(b"Xen", elfnote::LOADER, b"generic\0"));
    n.extend(note(b"Xen", elfnote::HYPERCALL_PAGE, &0x101000u64.to_le_bytes()));
    n.extend(note(b"Xen", elfnote::ENTRY, &0x100040u32.to_le_bytes()));
    n.extend(note(b"GNU", 3, b"abcd"));
    n.extend(note(b"Xen", elfnote::FEATURES, b"!writable_page_tables|pae_pgdir_above_4gb\0"));
    n
}

#[test]
fn accepts_a_pv_kernel_and_reads_every_xen_note() {
    let img = image(&pv_notes());
    let elf = Elf::parse(&img).unwrap();
    assert_eq!(elf.entry(), 0x100040);
    assert_eq!(elf.virt_bounds(), (0x100000, 0x101000));
    let n = elf.xen_notes().unwrap();
    assert_eq!(n.guest_os, Some("pv-guest-kernel"));
    assert_eq!(n.xen_version, Some("xen-3.0"));
    assert_eq!(n.loader, Some("generic"));
    assert_eq!(n.hypercall_page, Some(0x101000));
    assert_eq!(n.entry, Some(0x100040));
    assert!(n.is_pv_kernel());
    let req: Vec<_> = n.required_features().collect();
    assert_eq!(req, ["writable_page_tables"]);
}

#[test]
fn elf_header_rejects() {
    let good = image(&pv_notes());
    assert_eq!(Elf::parse(&good[..10]).unwrap_err(), ElfError::TooShort);
    let mut b = good.clone();
    b[1] = b'X';
    assert_eq!(Elf::parse(&b).unwrap_err(), ElfError::BadMagic);
    let mut b = good.clone();
    b[4] = 1;
    assert_eq!(Elf::parse(&b).unwrap_err(), ElfError::NotElf64);
    let mut b = good.clone();
    b[5] = 2;
    assert_eq!(Elf::parse(&b).unwrap_err(), ElfError::NotLittleEndian);
    let mut b = good.clone();
    b[18] = 3;
    assert_eq!(Elf::parse(&b).unwrap_err(), ElfError::WrongMachine);
    let mut b = good.clone();
    b[16] = 1;
    assert_eq!(Elf::parse(&b).unwrap_err(), ElfError::WrongType);
}

#[test]
fn program_headers_out_of_bounds_are_rejected() {
    let mut b = image(&pv_notes());
    b[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_eq!(Elf::parse(&b).unwrap_err(), ElfError::BadProgramHeaders);
    let mut b = image(&pv_notes());
    b[54] = 40;
    assert_eq!(Elf::parse(&b).unwrap_err(), ElfError::BadProgramHeaders);
    let mut b = image(&pv_notes());
    b[56..58].copy_from_slice(&0xffffu16.to_le_bytes());
    assert_eq!(Elf::parse(&b).unwrap_err(), ElfError::BadProgramHeaders);
}

#[test]
fn segment_past_end_of_file_is_rejected() {
    let mut b = image(&pv_notes());
    // First phdr's p_filesz.
    b[64 + 32..64 + 40].copy_from_slice(&0x10_0000u64.to_le_bytes());
    assert_eq!(Elf::parse(&b).unwrap_err(), ElfError::BadSegment);
    let mut b = image(&pv_notes());
    // p_offset that overflows when added to p_filesz.
    b[64 + 8..64 + 16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_eq!(Elf::parse(&b).unwrap_err(), ElfError::BadSegment);
}

#[test]
fn filesz_larger_than_memsz_is_rejected() {
    let mut b = image(&pv_notes());
    b[64 + 40..64 + 48].copy_from_slice(&0x10u64.to_le_bytes());
    assert_eq!(Elf::parse(&b).unwrap_err(), ElfError::BadSegment);
}

#[test]
fn image_without_load_segment_is_rejected() {
    let mut b = image(&pv_notes());
    b[64..68].copy_from_slice(&6u32.to_le_bytes());
    assert_eq!(Elf::parse(&b).unwrap_err(), ElfError::NoLoadSegment);
}

#[test]
fn malformed_note_sizes_are_rejected_not_read_past() {
    // namesz claims far more bytes than the segment holds.
    let mut n = note(b"Xen", elfnote::GUEST_OS, b"x\0");
    n[0..4].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    let img = image(&n);
    assert_eq!(Elf::parse(&img).unwrap().xen_notes().unwrap_err(), ElfError::BadNote);
    // descsz past the end.
    let mut n = note(b"Xen", elfnote::GUEST_OS, b"x\0");
    n[4..8].copy_from_slice(&64u32.to_le_bytes());
    let img = image(&n);
    assert_eq!(Elf::parse(&img).unwrap().xen_notes().unwrap_err(), ElfError::BadNote);
    // A truncated header (fewer than 12 bytes).
    let img = image(&[1, 0, 0, 0, 0, 0]);
    assert_eq!(Elf::parse(&img).unwrap().xen_notes().unwrap_err(), ElfError::BadNote);
}

#[test]
fn numeric_note_of_wrong_width_is_rejected() {
    let n = note(b"Xen", elfnote::HYPERCALL_PAGE, &[1, 2, 3]);
    let img = image(&n);
    let err = Elf::parse(&img).unwrap().xen_notes().unwrap_err();
    assert_eq!(err, ElfError::BadNoteValue(elfnote::HYPERCALL_PAGE));
}

#[test]
fn non_utf8_string_note_is_rejected() {
    let n = note(b"Xen", elfnote::GUEST_OS, &[0xff, 0xfe, 0]);
    let img = image(&n);
    let err = Elf::parse(&img).unwrap().xen_notes().unwrap_err();
    assert_eq!(err, ElfError::BadNoteValue(elfnote::GUEST_OS));
}

#[test]
fn notes_of_other_owners_are_ignored() {
    let n = note(b"Xenon", elfnote::GUEST_OS, b"nope\0");
    let img = image(&n);
    let notes = Elf::parse(&img).unwrap().xen_notes().unwrap();
    assert!(!notes.is_pv_kernel());
}

#[test]
fn random_garbage_never_panics() {
    // Deterministic xorshift over many mutated images: parsing may fail but must not panic.
    let base = image(&pv_notes());
    let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..5000 {
        let mut b = base.clone();
        for _ in 0..4 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let i = (s as usize) % b.len();
            b[i] = (s >> 32) as u8;
        }
        if let Ok(elf) = Elf::parse(&b) {
            let _ = elf.xen_notes();
            let _ = elf.virt_bounds();
        }
    }
}

// Hostile input. Each test is named after the rule it checks; the parser
// goes through the `elf` crate for the structure and through this crate for
// Xen's rules, and neither may panic on any of these.

/// Byte offsets in the test image: the file header's fields and the first
/// (PT_LOAD) and second (PT_NOTE) program headers.
const E_PHOFF: usize = 32;
const E_SHOFF: usize = 40;
const E_PHENTSIZE: usize = 54;
const E_PHNUM: usize = 56;
const E_SHENTSIZE: usize = 58;
const E_SHNUM: usize = 60;
const PH0: usize = 64;
const PH1: usize = 64 + 56;
const P_OFFSET: usize = 8;
const P_VADDR: usize = 16;
const P_FILESZ: usize = 32;
const P_MEMSZ: usize = 40;

fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Everything a builder calls on an image; must not panic whatever the bytes.
fn exercise(b: &[u8]) -> Result<(), ElfError> {
    let elf = Elf::parse(b)?;
    let _ = elf.virt_bounds();
    let _ = elf.pv_load_bounds(u64::MAX);
    for s in elf.segments() {
        elf.segment_data(&s)?;
    }
    let n = elf.xen_notes()?;
    let _ = elf.pv_load_bounds(n.virt_offset());
    let _ = n.required_features().count();
    Ok(())
}

#[test]
fn rule_an_image_cut_anywhere_is_an_error_never_a_panic() {
    let good = image(&pv_notes());
    for len in 0..good.len() {
        let r = exercise(&good[..len]);
        let want = match len {
            0..64 => Err(ElfError::TooShort),
            // The program header table ends at 64 + 2 * 56.
            64..176 => Err(ElfError::BadProgramHeaders),
            // The PT_LOAD segment's file bytes end at 0x200.
            _ => Err(ElfError::BadSegment),
        };
        assert_eq!(r, want, "image cut to {len} bytes");
    }
    assert_eq!(exercise(&good), Ok(()));
}

#[test]
fn rule_the_program_header_table_lies_inside_the_image() {
    let good = image(&pv_notes());
    // Starts inside the image but its second entry runs past the end.
    let mut b = good.clone();
    put_u64(&mut b, E_PHOFF, (good.len() - 60) as u64);
    assert_eq!(Elf::parse(&b).unwrap_err(), ElfError::BadProgramHeaders);
    // Starts right at the end.
    let mut b = good.clone();
    put_u64(&mut b, E_PHOFF, good.len() as u64);
    assert_eq!(Elf::parse(&b).unwrap_err(), ElfError::BadProgramHeaders);
    // e_phoff + e_phnum * 56 overflows.
    let mut b = good.clone();
    put_u64(&mut b, E_PHOFF, u64::MAX - 8);
    assert_eq!(Elf::parse(&b).unwrap_err(), ElfError::BadProgramHeaders);
}

#[test]
fn rule_program_headers_are_56_bytes_and_counted_by_e_phnum_alone() {
    let mut b = image(&pv_notes());
    put_u16(&mut b, E_PHENTSIZE, 64);
    assert_eq!(Elf::parse(&b).unwrap_err(), ElfError::BadProgramHeaders);
    // PN_XNUM is a count here, as in Xen's libelf, not a pointer to
    // section header 0 (which, with no section headers, would be the
    // file header itself).
    let mut b = image(&pv_notes());
    put_u16(&mut b, E_PHNUM, 0xffff);
    assert_eq!(Elf::parse(&b).unwrap_err(), ElfError::BadProgramHeaders);
}

#[test]
fn rule_the_section_header_table_lies_inside_the_image() {
    let good = image(&pv_notes());
    let mut b = good.clone();
    put_u64(&mut b, E_SHOFF, (good.len() - 10) as u64);
    put_u16(&mut b, E_SHENTSIZE, 64);
    put_u16(&mut b, E_SHNUM, 1);
    assert_eq!(Elf::parse(&b).unwrap_err(), ElfError::BadSectionHeaders);
    let mut b = good.clone();
    put_u64(&mut b, E_SHOFF, 64);
    put_u16(&mut b, E_SHENTSIZE, 40);
    put_u16(&mut b, E_SHNUM, 1);
    assert_eq!(Elf::parse(&b).unwrap_err(), ElfError::BadSectionHeaders);
    // With both tables bad, the program headers are the ones named.
    put_u64(&mut b, E_PHOFF, u64::MAX);
    assert_eq!(Elf::parse(&b).unwrap_err(), ElfError::BadProgramHeaders);
    // A section table that fits is accepted (its contents are not used).
    let mut b = good.clone();
    put_u64(&mut b, E_SHOFF, 0x100);
    put_u16(&mut b, E_SHENTSIZE, 64);
    put_u16(&mut b, E_SHNUM, 2);
    assert!(Elf::parse(&b).is_ok());
}

#[test]
fn rule_p_offset_plus_p_filesz_must_not_overflow() {
    for (offset, filesz) in [(u64::MAX - 0x10, 0x20), (u64::MAX, u64::MAX), (1, u64::MAX), (0x100, u64::MAX - 0x80)] {
        let mut b = image(&pv_notes());
        put_u64(&mut b, PH0 + P_OFFSET, offset);
        put_u64(&mut b, PH0 + P_FILESZ, filesz);
        put_u64(&mut b, PH0 + P_MEMSZ, u64::MAX);
        assert_eq!(Elf::parse(&b).unwrap_err(), ElfError::BadSegment, "p_offset {offset:#x} p_filesz {filesz:#x}");
    }
    // The same for the note segment, which xen_notes reads.
    let mut b = image(&pv_notes());
    put_u64(&mut b, PH1 + P_OFFSET, u64::MAX - 3);
    assert_eq!(Elf::parse(&b).unwrap_err(), ElfError::BadSegment);
}

#[test]
fn rule_p_vaddr_plus_p_memsz_must_not_overflow() {
    let mut b = image(&pv_notes());
    put_u64(&mut b, PH0 + P_VADDR, u64::MAX - 0x800);
    assert_eq!(Elf::parse(&b).unwrap_err(), ElfError::BadSegment);
}

#[test]
fn rule_a_note_stays_inside_its_segment() {
    // The image goes on past the note segment (it is padded to 0x200
    // bytes), so these sizes point at bytes that exist but are not the
    // segment's: the note must be refused, not read from there.
    let n = note(b"Xen", elfnote::GUEST_OS, b"linux\0");
    let seg_len = n.len();
    let mut bad = n.clone();
    put_u32(&mut bad, 4, (seg_len + 8) as u32);
    let img = image(&bad);
    assert!(img.len() > 176 + seg_len + 16);
    assert_eq!(Elf::parse(&img).unwrap().xen_notes().unwrap_err(), ElfError::BadNote);
    // The name, likewise.
    let mut bad = n.clone();
    put_u32(&mut bad, 0, (seg_len + 8) as u32);
    assert_eq!(Elf::parse(&image(&bad)).unwrap().xen_notes().unwrap_err(), ElfError::BadNote);
    // Sizes whose 4-byte rounding overflows.
    for (namesz, descsz) in [(u32::MAX, 0), (0, u32::MAX), (u32::MAX - 2, u32::MAX - 2)] {
        let mut bad = n.clone();
        put_u32(&mut bad, 0, namesz);
        put_u32(&mut bad, 4, descsz);
        assert_eq!(Elf::parse(&image(&bad)).unwrap().xen_notes().unwrap_err(), ElfError::BadNote);
    }
    // A second note cut off after a good first one: still an error, not a
    // quiet end of the list.
    let mut two = note(b"Xen", elfnote::GUEST_OS, b"linux\0");
    two.extend(&note(b"Xen", elfnote::HYPERCALL_PAGE, &0x101000u64.to_le_bytes())[..14]);
    assert_eq!(Elf::parse(&image(&two)).unwrap().xen_notes().unwrap_err(), ElfError::BadNote);
}

#[test]
fn rule_notes_are_padded_to_4_bytes_whatever_p_align_says() {
    // Xen's libelf pads note names and payloads to 4 bytes; the PT_NOTE
    // segment of the test image says p_align = 0x1000.
    let img = image(&pv_notes());
    let elf = Elf::parse(&img).unwrap();
    assert_eq!(elf.segments().nth(1).map(|s| s.kind), Some(PT_NOTE));
    assert_eq!(elf.xen_notes().unwrap().hypercall_page, Some(0x101000));
}

/// A minimal ELF32 x86 (EM_386) executable header of 52 bytes, no segments.
fn elf32_header() -> Vec<u8> {
    let mut v = std::vec![0u8; 52];
    v[0..4].copy_from_slice(b"\x7fELF");
    v[4] = 1;
    v[5] = 1;
    v[6] = 1;
    put_u16(&mut v, 16, 2);
    put_u16(&mut v, 18, 3);
    put_u32(&mut v, 20, 1);
    v
}

#[test]
fn rule_only_elfclass64_is_accepted() {
    // A whole 32-bit header (shorter than an ELF64 one) is NotElf64, not
    // TooShort: the class is judged before the length.
    assert_eq!(Elf::parse(&elf32_header()).unwrap_err(), ElfError::NotElf64);
    let mut b = elf32_header();
    b.resize(0x400, 0);
    assert_eq!(Elf::parse(&b).unwrap_err(), ElfError::NotElf64);
    // An ELF64 header with the class byte alone flipped.
    let mut b = image(&pv_notes());
    b[4] = 1;
    assert_eq!(Elf::parse(&b).unwrap_err(), ElfError::NotElf64);
    // Neither 32 nor 64.
    b[4] = 7;
    assert_eq!(Elf::parse(&b).unwrap_err(), ElfError::NotElf64);
}

#[test]
fn rule_only_em_x86_64_is_accepted() {
    for machine in [0u16, 3, 40, 183, 243, 0xffff] {
        let mut b = image(&pv_notes());
        put_u16(&mut b, 18, machine);
        assert_eq!(Elf::parse(&b).unwrap_err(), ElfError::WrongMachine, "e_machine {machine}");
    }
}

#[test]
fn rule_only_little_endian_ev_current_images_are_accepted() {
    let mut b = image(&pv_notes());
    b[5] = 2;
    assert_eq!(Elf::parse(&b).unwrap_err(), ElfError::NotLittleEndian);
    b[5] = 0;
    assert_eq!(Elf::parse(&b).unwrap_err(), ElfError::NotLittleEndian);
    let mut b = image(&pv_notes());
    b[6] = 0;
    assert_eq!(Elf::parse(&b).unwrap_err(), ElfError::BadVersion);
}

#[test]
fn rule_every_header_field_at_its_extremes_is_an_error_or_an_image_never_a_panic() {
    // Each byte of the file header and both program headers, set to each
    // value that tends to break bounds arithmetic.
    let base = image(&pv_notes());
    for at in 0..PH1 + 56 {
        for v in [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff] {
            let mut b = base.clone();
            b[at] = v;
            let _ = exercise(&b);
        }
    }
    // Whole fields at their extremes.
    let fields: &[(usize, usize)] = &[
        (E_PHOFF, 8),
        (E_SHOFF, 8),
        (E_PHENTSIZE, 2),
        (E_PHNUM, 2),
        (E_SHENTSIZE, 2),
        (E_SHNUM, 2),
        (PH0 + P_OFFSET, 8),
        (PH0 + P_FILESZ, 8),
        (PH0 + P_MEMSZ, 8),
        (PH1 + P_OFFSET, 8),
        (PH1 + P_FILESZ, 8),
    ];
    for &(at, width) in fields {
        for fill in [0x00, 0xff] {
            let mut b = base.clone();
            b[at..at + width].fill(fill);
            let _ = exercise(&b);
        }
    }
}

#[test]
fn rule_init_p2m_is_read_and_refused_inside_the_kernel() {
    // XEN_ELFNOTE_INIT_P2M (15): where the builder maps the P2M list.
    let mut n = pv_notes();
    n.extend(note(b"Xen", elfnote::INIT_P2M, &0x80_0000_0000u64.to_le_bytes()));
    let img = image(&n);
    let notes = Elf::parse(&img).unwrap().xen_notes().unwrap();
    assert_eq!(notes.init_p2m, Some(0x80_0000_0000));
    assert_eq!(notes.p2m_base(0x100000, 0x101000), Ok(Some(0x80_0000_0000)));
    // elf_xen_addr_calc_check: a p2m_base inside [virt_kstart, virt_kend) is an error.
    assert_eq!(notes.p2m_base(0x7f_ffff_0000, 0x80_0000_1000), Err(ElfError::BadNoteValue(elfnote::INIT_P2M)));
    // Absent: no placement request.
    let plain = image(&pv_notes());
    let notes = Elf::parse(&plain).unwrap().xen_notes().unwrap();
    assert_eq!(notes.init_p2m, None);
    assert_eq!(notes.p2m_base(0x100000, 0x101000), Ok(None));
}

#[test]
fn rule_a_pv_kernel_without_a_hypercall_page_note_is_still_a_pv_kernel() {
    // elf_xen_note_check asks for LOADER or GUEST_OS and XEN_VERSION only;
    // newer Linux has no HYPERCALL_PAGE note.
    let mut n = Vec::new();
    n.extend(note(b"Xen", elfnote::GUEST_OS, b"linux\0"));
    n.extend(note(b"Xen", elfnote::XEN_VERSION, b"xen-3.0\0"));
    let img = image(&n);
    let notes = Elf::parse(&img).unwrap().xen_notes().unwrap();
    assert!(notes.is_pv_kernel());
    assert_eq!(notes.hypercall_page, None);
    assert!(!notes.mod_start_pfn);
}

#[test]
fn rule_mod_start_pfn_note_asks_for_an_unmapped_initrd() {
    let mut n = pv_notes();
    n.extend(note(b"Xen", elfnote::MOD_START_PFN, &1u32.to_le_bytes()));
    let img = image(&n);
    assert!(Elf::parse(&img).unwrap().xen_notes().unwrap().mod_start_pfn);
    let mut n = pv_notes();
    n.extend(note(b"Xen", elfnote::MOD_START_PFN, &0u32.to_le_bytes()));
    let img = image(&n);
    assert!(!Elf::parse(&img).unwrap().xen_notes().unwrap().mod_start_pfn);
}
