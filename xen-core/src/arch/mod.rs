//! Architecture support. Only x86_64 exists; everything here is the small
//! unsafe core that the safe services in the rest of the crate stand on.

#[cfg(target_os = "none")]
pub mod x86_64;

/// On the host only the pure part of the x86_64 core builds: the
/// multiboot2 loader, so that `cargo test` covers the boot-information
/// parser through it.
#[cfg(not(target_os = "none"))]
pub mod x86_64 {
    pub mod mbi;
}
