//! xen-core's own extensions of the interface: not Xen's ABI, numbered
//! where Xen leaves room (private sysctl numbers from 0x8000), shared here
//! so that the hypervisor and dom0 agree on one layout.
//!
//! Invariant: nothing here reuses a number Xen 4.17 defines; a guest on
//! real Xen gets -ENOSYS for these.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `XEN_SYSCTL_xencore_audit`: run xen-core's invariant auditor (dom0
/// only). The result is 0 when the audit is clean, -EIO when it found
/// violations, -ENOMEM without scratch memory; the payload is
/// [`AuditResult`].
pub const XEN_SYSCTL_XENCORE_AUDIT: u32 = 0x8001;

/// The payload `XEN_SYSCTL_xencore_audit` writes back.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuditResult {
    /// Violations found (all counted; the first ones are logged).
    pub violations: u32,
    /// Domains audited.
    pub domains: u32,
    /// Frames compared.
    pub frames: u64,
    /// Live page tables walked.
    pub tables: u64,
    /// Grant mappings whose PTE is gone (not violations).
    pub stale_grants: u32,
    /// Padding; zero.
    pub _pad: u32,
}
const _: () = assert!(core::mem::size_of::<AuditResult>() == 32);
const _: () = assert!(core::mem::offset_of!(AuditResult, frames) == 8);

/// `XEN_SYSCTL_xencore_vcpu_stats`: counters of one vCPU of a domain
/// (dom0 only). The caller fills `domid` (DOMID_SELF allowed) and `vcpu`
/// of [`VcpuStats`]; the rest is written back. -ESRCH for an unknown
/// domain, -ENOENT for a vCPU it does not have.
pub const XEN_SYSCTL_XENCORE_VCPU_STATS: u32 = 0x8002;

/// The payload of `XEN_SYSCTL_xencore_vcpu_stats`.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuStats {
    /// In: the domain.
    pub domid: u16,
    /// Padding; ignored.
    pub _pad: u16,
    /// In: the vCPU.
    pub vcpu: u32,
    /// Out: hypercalls that ran out of time and were continued (the
    /// hypercall re-issued after a preemption point fired).
    pub preempted_hypercalls: u64,
}
const _: () = assert!(core::mem::size_of::<VcpuStats>() == 16);
const _: () = assert!(core::mem::offset_of!(VcpuStats, preempted_hypercalls) == 8);
