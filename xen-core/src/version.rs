//! The hypervisor's own name and version, and the Xen interface version it
//! reports to guests.
#![forbid(unsafe_code)]

/// Product name printed in the banner.
pub const NAME: &str = "xen-core";
/// Our release, from Cargo.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Xen interface major version reported by `XENVER_version`.
pub const XEN_MAJOR: u32 = 4;
/// Xen interface minor version reported by `XENVER_version`.
pub const XEN_MINOR: u32 = 17;
