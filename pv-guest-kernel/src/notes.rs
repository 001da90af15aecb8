//! The "Xen" ELF notes every guest image carries, as data, so the host tests
//! can check them against what the domain builder requires.
#![forbid(unsafe_code)]

/// Expands to each string note's value as a literal, so the same text goes
/// into the assembler (which takes no `const` strings) and into these consts.
#[macro_export]
#[doc(hidden)]
macro_rules! note_str {
    (guest_os) => {
        "pv-guest-kernel"
    };
    (xen_version) => {
        "xen-3.0"
    };
    (loader) => {
        "generic"
    };
    (features) => {
        "!writable_page_tables|pae_pgdir_above_4gb"
    };
    (pae_mode) => {
        "yes"
    };
}

/// `XEN_ELFNOTE_GUEST_OS`.
pub const GUEST_OS: &str = note_str!(guest_os);
/// `XEN_ELFNOTE_XEN_VERSION`: the interface version we speak.
pub const XEN_VERSION: &str = note_str!(xen_version);
/// `XEN_ELFNOTE_LOADER`.
pub const LOADER: &str = note_str!(loader);
/// `XEN_ELFNOTE_FEATURES`: we never write page tables directly, and our
/// page directories may live above 4 GiB.
pub const FEATURES: &str = note_str!(features);
/// `XEN_ELFNOTE_PAE_MODE`.
pub const PAE_MODE: &str = note_str!(pae_mode);
/// `XEN_ELFNOTE_VIRT_BASE`: the kernel's virtual base (top 2 GiB, as Linux).
pub const VIRT_BASE: u64 = 0xffff_ffff_8000_0000;
/// `XEN_ELFNOTE_PADDR_OFFSET`: physical addresses in the ELF are offsets
/// from `VIRT_BASE`.
pub const PADDR_OFFSET: u64 = 0;
