//! Domains: their initial layout, their page tables as the builder makes
//! them, and (on the target) the live domain and vCPU state.

pub mod context;
pub mod domid;
pub use xen_dombuild::{layout, pagetable};
#[cfg(target_os = "none")]
pub mod build;
pub mod vcpu;
