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
