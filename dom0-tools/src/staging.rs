//! Where dom0's domain builder stages a compressed kernel image: in the
//! new domain's own memory, at its highest pfns, through dom0's staging
//! area (`foreign_area`), since dom0's heap (2 MiB) cannot hold a Linux
//! ELF (53-66 MiB) or its xz dictionary (32 MiB).
//!
//! Pure arithmetic, host-tested. Invariant: a [`StagePlan`] lies inside
//! the domain (`first_pfn + pages() == nr_pages`), fits the staging area,
//! and is checked against the initial region ([`StagePlan::check_region`])
//! before any of the kernel is copied, so the kernel's segments, the
//! ramdisk, the P2M and the bootstrap tables never land on the staged ELF
//! they are read from. Sizes come from the image (hostile input): every
//! sum is checked.
#![forbid(unsafe_code)]

/// Bytes in a page.
const PAGE: u64 = 4096;

/// The staged image's place in the new domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StagePlan {
    /// First pfn of the staging (the ELF, then the scratch).
    pub first_pfn: u64,
    /// Pages of the decompressed ELF.
    pub elf_pages: u64,
    /// Pages of the decompressor's scratch (the xz dictionary).
    pub scratch_pages: u64,
}

/// Why an image cannot be staged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StageError {
    /// The ELF and scratch need more pages than the staging area maps.
    TooBigForArea {
        /// Pages needed.
        needed: u64,
        /// Pages the area maps.
        area: u64,
    },
    /// They need more pages than the domain has.
    TooBigForDomain {
        /// Pages needed.
        needed: u64,
        /// The domain's pages.
        nr_pages: u64,
    },
    /// The initial region (and the P2M list outside it) would reach the
    /// staged pages.
    RegionReachesStaging {
        /// One past the last pfn the region uses.
        region_end_pfn: u64,
        /// First staged pfn.
        first_pfn: u64,
    },
}

fn pages_of(bytes: u64) -> Option<u64> {
    bytes.checked_add(PAGE - 1).map(|b| b / PAGE)
}

/// Plan the staging of an ELF of `elf_len` bytes with `scratch_len` bytes
/// of scratch in a domain of `nr_pages`, through an area of `area_pages`.
pub fn plan(nr_pages: u64, elf_len: u64, scratch_len: u64, area_pages: u64) -> Result<StagePlan, StageError> {
    let elf_pages = pages_of(elf_len).unwrap_or(u64::MAX);
    let scratch_pages = pages_of(scratch_len).unwrap_or(u64::MAX);
    let needed = elf_pages.saturating_add(scratch_pages);
    if needed > area_pages {
        return Err(StageError::TooBigForArea { needed, area: area_pages });
    }
    if needed > nr_pages {
        return Err(StageError::TooBigForDomain { needed, nr_pages });
    }
    Ok(StagePlan { first_pfn: nr_pages - needed, elf_pages, scratch_pages })
}

impl StagePlan {
    /// Pages staged.
    pub fn pages(&self) -> u64 {
        self.elf_pages + self.scratch_pages
    }

    /// Whether the pfns `0..region_end_pfn` the initial region (and an
    /// INIT_P2M list after it) use stay below the staged pages.
    pub fn check_region(&self, region_end_pfn: u64) -> Result<(), StageError> {
        if region_end_pfn > self.first_pfn {
            return Err(StageError::RegionReachesStaging { region_end_pfn, first_pfn: self.first_pfn });
        }
        Ok(())
    }
}

/// Whether `len` bytes written at virtual address `va` stay inside the
/// initial region `[v_start, v_start + region_pages * 4096)` (a segment's
/// or the ramdisk's destination, from a hostile image).
pub fn inside_region(va: u64, len: u64, v_start: u64, region_pages: u64) -> bool {
    let Some(region_end) = region_pages.checked_mul(PAGE).and_then(|b| v_start.checked_add(b)) else {
        return false;
    };
    va >= v_start && va.checked_add(len).is_some_and(|end| end <= region_end)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    /// Debian's generic 6.1 kernel: a 65906612-byte ELF, 32 MiB of xz
    /// dictionary, in a 256 MiB domain.
    #[test]
    fn debians_generic_kernel_stages_at_the_top_of_a_256_mib_domain() {
        let p = plan(65536, 65_906_612, 32 * MIB, 32768).unwrap();
        assert_eq!((p.elf_pages, p.scratch_pages), (16091, 8192));
        assert_eq!(p.first_pfn + p.pages(), 65536, "the staging ends at the domain's last pfn");
        // Its initial region (74 MiB of kernel from VIRT_BASE, 2 MiB of
        // initramfs, the P2M and the tables: about 80 MiB) stays below.
        assert_eq!(p.check_region(80 * 256), Ok(()));
        assert!(p.check_region(p.first_pfn + 1).is_err());
    }

    #[test]
    fn sizes_past_the_area_or_the_domain_are_errors() {
        assert_eq!(plan(65536, 200 * MIB, 0, 32768), Err(StageError::TooBigForArea { needed: 51200, area: 32768 }));
        assert_eq!(plan(8192, 64 * MIB, 0, 32768), Err(StageError::TooBigForDomain { needed: 16384, nr_pages: 8192 }));
        // Hostile sizes near u64::MAX neither wrap nor pass.
        assert!(plan(u64::MAX, u64::MAX, u64::MAX, u64::MAX - 1).is_err());
        assert!(plan(65536, u64::MAX - 10, 0, u64::MAX).is_err());
        assert_eq!(plan(65536, 0, 0, 32768).map(|p| p.first_pfn), Ok(65536), "nothing staged: nothing taken");
    }

    #[test]
    fn a_destination_outside_the_region_or_wrapping_is_refused() {
        let base = 0xffff_ffff_8000_0000;
        assert!(inside_region(base, 4096, base, 1));
        assert!(!inside_region(base, 4097, base, 1), "one byte past the region");
        assert!(!inside_region(base - 1, 1, base, 1), "below the region");
        assert!(!inside_region(u64::MAX - 10, 100, base, 1 << 40), "a wrapping end");
        assert!(!inside_region(base, 1, base, u64::MAX), "a region size that overflows");
    }
}
