//! Enough ACPI to count the CPUs: the RSDP that multiboot2 hands over, the
//! RSDT or XSDT it points to, and the MADT's processor local APIC entries.
//!
//! Invariant: every table is read through the caller's bounds-checked
//! reader and every length is checked against what was read, so corrupt
//! firmware tables give fewer CPUs, never a read out of bounds.

/// Reads `buf.len()` bytes of physical memory at an address; `false` if
/// the range is out of reach.
pub trait PhysRead {
    /// Fill `buf` from physical address `addr`.
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool;
}

/// Largest MADT looked at.
const MADT_MAX: usize = 4096;
/// MADT entry type of a processor local APIC.
const LOCAL_APIC: u8 = 0;
/// Local APIC flags: enabled, or online capable.
const ENABLED_OR_CAPABLE: u32 = 0b11;

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

/// The addresses of the tables the root table lists, and their width.
fn root_table(rsdp: &[u8]) -> Option<(u64, usize)> {
    if rsdp.get(..8)? != b"RSD PTR " {
        return None;
    }
    let revision = *rsdp.get(15)?;
    match u64_at(rsdp, 24) {
        Some(xsdt) if revision >= 2 && xsdt != 0 => Some((xsdt, 8)),
        _ => Some((u64::from(u32_at(rsdp, 16)?), 4)),
    }
}

/// Find the table with `signature` under the RSDT/XSDT named by `rsdp`.
fn find_table(mem: &impl PhysRead, rsdp: &[u8], signature: &[u8; 4]) -> Option<u64> {
    let (root, width) = root_table(rsdp)?;
    let mut header = [0u8; 36];
    if !mem.read(root, &mut header) {
        return None;
    }
    let len = u32_at(&header, 4)? as usize;
    let entries = len.checked_sub(36)? / width;
    (0..entries.min(256)).find_map(|i| {
        let mut e = [0u8; 8];
        if !mem.read(root + 36 + (i * width) as u64, &mut e[..width]) {
            return None;
        }
        let addr = u64_at(&e, 0)?;
        let mut sig = [0u8; 4];
        (mem.read(addr, &mut sig) && &sig == signature).then_some(addr)
    })
}

/// The APIC ids of the usable processors the MADT lists, into `out`;
/// how many (`None` if there is no readable MADT).
pub fn local_apic_ids(mem: &impl PhysRead, rsdp: &[u8], out: &mut [u32]) -> Option<usize> {
    let madt_at = find_table(mem, rsdp, b"APIC")?;
    let mut head = [0u8; 8];
    if !mem.read(madt_at, &mut head) {
        return None;
    }
    let len = (u32_at(&head, 4)? as usize).min(MADT_MAX);
    let mut madt = [0u8; MADT_MAX];
    if len < 44 || !mem.read(madt_at, &mut madt[..len]) {
        return None;
    }
    let (mut off, mut n) = (44, 0);
    while off + 2 <= len {
        let (kind, elen) = (madt[off], usize::from(madt[off + 1]));
        if elen < 2 || off + elen > len {
            break;
        }
        if kind == LOCAL_APIC && elen >= 8 && u32_at(&madt, off + 4)? & ENABLED_OR_CAPABLE != 0 && n < out.len() {
            out[n] = u32::from(madt[off + 3]);
            n += 1;
        }
        off += elen;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::vec::Vec;

    struct Mem(BTreeMap<u64, Vec<u8>>);

    impl PhysRead for Mem {
        fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
            let Some((base, bytes)) = self.0.range(..=addr).next_back() else { return false };
            let off = (addr - base) as usize;
            match bytes.get(off..off + buf.len()) {
                Some(src) => {
                    buf.copy_from_slice(src);
                    true
                }
                None => false,
            }
        }
    }

    fn sdt(sig: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut t = std::vec![0u8; 36];
        t[..4].copy_from_slice(sig);
        t.extend_from_slice(body);
        let len = t.len() as u32;
        t[4..8].copy_from_slice(&len.to_le_bytes());
        t
    }

    fn madt(cpus: &[(u8, u32)]) -> Vec<u8> {
        let mut body = std::vec![0u8; 8]; // local APIC address, flags
        for &(id, flags) in cpus {
            body.extend_from_slice(&[LOCAL_APIC, 8, id, id]);
            body.extend_from_slice(&flags.to_le_bytes());
        }
        body.extend_from_slice(&[1, 12, 0, 0, 0, 0, 0xc0, 0xfe, 0, 0, 0, 0]); // an I/O APIC
        sdt(b"APIC", &body)
    }

    fn rsdp(rsdt: u32) -> Vec<u8> {
        let mut r = std::vec![0u8; 20];
        r[..8].copy_from_slice(b"RSD PTR ");
        r[16..20].copy_from_slice(&rsdt.to_le_bytes());
        r
    }

    #[test]
    fn counts_enabled_local_apics_through_the_rsdt() {
        let mut m = BTreeMap::new();
        m.insert(0x1000, sdt(b"RSDT", &[0x00, 0x20, 0, 0, 0x00, 0x30, 0, 0]));
        m.insert(0x2000, sdt(b"FACP", &[0; 8]));
        m.insert(0x3000, madt(&[(0, 1), (1, 1), (2, 0), (3, 2)]));
        let mut ids = [0u32; 8];
        assert_eq!(local_apic_ids(&Mem(m), &rsdp(0x1000), &mut ids), Some(3));
        assert_eq!(&ids[..3], &[0, 1, 3], "disabled CPU 2 left out");
    }

    #[test]
    fn corrupt_tables_give_no_cpus_not_a_bad_read() {
        let mut m = BTreeMap::new();
        m.insert(0x1000, sdt(b"RSDT", &[0x00, 0x30, 0, 0]));
        let mut bad = madt(&[(0, 1), (1, 1)]);
        bad[44 + 9] = 200; // second entry's length runs past the table
        m.insert(0x3000, bad);
        let mut ids = [0u32; 8];
        assert_eq!(local_apic_ids(&Mem(m), &rsdp(0x1000), &mut ids), Some(1));
        assert_eq!(local_apic_ids(&Mem(BTreeMap::new()), &rsdp(0x1000), &mut ids), None);
        assert_eq!(local_apic_ids(&Mem(BTreeMap::new()), b"not an rsdp at all..", &mut ids), None);
    }
}
