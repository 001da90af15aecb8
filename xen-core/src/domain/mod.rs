//! Domains: the domain-wide state ([`Domain`]) and its vCPUs ([`Guest`],
//! [`vcpu::Vcpu`]), their initial layout, their page tables as the builder
//! makes them, the hypercalls that need only the caller's vCPU, domain and
//! memory, the event-channel operations and the MMU hypercalls
//! (host-tested over [`guest_mem::GuestAccess`]), and (on the target) the
//! builder of dom0.
//! `Guest::vcpu`, which stops the machine on a bad id, is in `guest.rs`.
//!
//! Invariant: a `Guest` always has [`MAX_VCPUS`] vCPUs, each knowing its
//! id and its domain's slot; what runs them and what touches guest
//! memory through them lives in `guest.rs` and `schedule.rs`.

pub mod context;
pub mod control_ops;
pub mod cpuid;
pub mod debugreg;
pub mod domid;
pub mod evtchn_ops;
pub mod gnttab_ops;
pub mod guest_mem;
pub mod host;
pub mod info_ops;
pub mod io_emul;
pub mod iocap;
pub mod memory_ops;
pub mod mmu_ops;
pub mod physdev_ops;
pub mod priv_op;
pub mod ptwr;
pub use xen_dombuild::{layout, pagetable};
#[cfg(target_os = "none")]
pub mod build;
pub mod sched_ops;
pub mod vcpu;
pub mod vcpu_ctx_ops;
pub mod vcpu_ops;
pub mod vmce;

pub use crate::grant::GrantTable;
use crate::mm::Mfn;
use vcpu::Vcpu;

/// What a domain slot holds: the domain and its vCPUs side by side (Xen's
/// `struct domain` and its `d->vcpu[]`), so that a hypercall can hold the
/// calling vCPU and its domain at once. One vCPU so far
/// ([`MAX_VCPUS`]); the scheduler and the handlers name vCPUs by id.
pub struct Guest {
    /// The domain-wide state.
    pub domain: Domain,
    /// Its vCPUs, by vcpu_id.
    pub vcpus: [Vcpu; MAX_VCPUS],
}

/// vCPUs a domain may have (`createdomain` with more is -EINVAL).
pub const MAX_VCPUS: usize = 1;
// Each vCPU's vcpu_info is in shared_info (`vcpu_id * 64`), which has room
// for XEN_LEGACY_MAX_VCPUS of them.
const _: () = assert!(MAX_VCPUS <= xen_public::XEN_LEGACY_MAX_VCPUS);

impl Guest {
    /// A new domain with its vCPUs in their initial state.
    pub fn new(domain: Domain) -> Guest {
        let slot = domain.slot;
        let mut vcpus: [Vcpu; MAX_VCPUS] = core::array::from_fn(|_| Vcpu::default());
        for (id, v) in vcpus.iter_mut().enumerate() {
            v.vcpu_id = id as u32;
            v.slot = slot;
        }
        Guest { domain, vcpus }
    }

    /// Move the domain (and its vCPUs) to slot `slot`.
    pub fn set_slot(&mut self, slot: usize) {
        self.domain.slot = slot;
        for v in &mut self.vcpus {
            v.slot = slot;
        }
    }
}

/// A domain as the hypervisor tracks it: memory, grant table, event
/// channels, privilege and lifecycle. Its vCPUs live next to it in
/// [`Guest`], each a [`Vcpu`].
pub struct Domain {
    /// Domain id.
    pub domid: u16,
    /// The toolstack's handle for it (its UUID: `xen_domain_handle_t`),
    /// from createdomain; getdomaininfo and XENVER_guest_handle return it.
    pub handle: [u8; 16],
    /// Whether it may use privileged operations (dom0).
    pub privileged: bool,
    /// The shared_info frame.
    pub shared_info: Mfn,
    /// `vm_assist` bits enabled.
    pub vm_assist: u64,
    /// Pages owned: machine frames `[first_mfn, first_mfn + nr_pages)`.
    pub nr_pages: u64,
    /// First machine frame of the domain's (contiguous) memory.
    pub first_mfn: Mfn,
    /// Event-channel ports.
    pub ports: crate::event::Ports,
    /// Grant table (v1).
    pub grant: GrantTable,
    /// Most pages the domain may have (`max_mem`).
    pub max_pages: u64,
    /// Pauses by the control domain (XEN_DOMCTL_pausedomain).
    pub pause_count: u32,
    /// vCPUs the domain was created with.
    pub max_vcpus: u32,
    /// Its slot in [`crate::schedule::DOMAINS`].
    pub slot: usize,
    /// Whether vCPU 0 exists: dom0's at boot; a domU's once the builder
    /// sized it with XEN_DOMCTL_max_vcpus, as in Xen.
    pub vcpu_created: bool,
    /// Being destroyed: it never runs again.
    pub dying: bool,
    /// The shutdown reason, once the domain has shut down.
    pub shutdown: Option<u32>,
    /// I/O ports it may drive directly (Xen's `d->arch.ioport_caps`):
    /// dom0's set ([`iocap::dom0_ioports`]) or none.
    pub ioports: iocap::RangeSet,
    /// Its last 32-bit write to port 0xcf8 (Xen's `d->arch.pci_cf8`).
    pub pci_cf8: u32,
    /// Where each vCPU's `vcpu_info` lives once the guest moved it with
    /// VCPUOP_register_vcpu_info: a frame it owns (held by a general and a
    /// writable type reference) and the byte offset in it; `None`: in
    /// shared_info, at `vcpu_id * 64` (Xen's `v->vcpu_info_mfn`).
    pub vcpu_info_at: [Option<(u64, u16)>; MAX_VCPUS],
    /// `TSC_MODE_*` the toolstack set (XEN_DOMCTL_settscinfo); xen-core
    /// never emulates `rdtsc`, so it is default or never-emulate.
    pub tsc_mode: u32,
    /// Its `incarnation`: one more than the last set's.
    pub tsc_incarnation: u32,
}

impl Domain {
    /// Record that the domain shut down with `reason` (Xen's
    /// `domain_shutdown`, which acts once: a domain already shutting down
    /// keeps its first reason). The trace record of the change, xen-core's
    /// [`TRC_XENCORE_DOM_SHUTDOWN`](xen_public::trace::TRC_XENCORE_DOM_SHUTDOWN),
    /// when it happened now; `None` when it had already.
    pub fn note_shutdown(&mut self, reason: u32) -> Option<xen_public::trace::Event> {
        if self.shutdown.is_some() {
            return None;
        }
        self.shutdown = Some(reason);
        Some(xen_public::trace::Event::DomShutdown { domid: u32::from(self.domid), reason })
    }

    /// Whether the guest enabled assist `ty` (`VMASST_TYPE_*`) with
    /// `vm_assist`.
    pub fn has_assist(&self, ty: u32) -> bool {
        self.vm_assist & xen_public::xen::vmasst_bit(ty) != 0
    }

    /// A domain with no memory, no page tables and default state.
    pub fn empty(domid: u16, privileged: bool, shared_info: Mfn) -> Domain {
        Domain {
            domid,
            privileged,
            shared_info,
            vm_assist: 0,
            nr_pages: 0,
            first_mfn: Mfn(0),
            ports: crate::event::Ports::new(MAX_VCPUS as u32),
            grant: GrantTable::default(),
            max_pages: 0,
            pause_count: 0,
            max_vcpus: 1,
            slot: 0,
            vcpu_created: false,
            dying: false,
            shutdown: None,
            handle: [0; 16],
            ioports: if privileged { iocap::dom0_ioports() } else { iocap::RangeSet::new() },
            pci_cf8: 0,
            vcpu_info_at: [None; MAX_VCPUS],
            tsc_mode: xen_public::domctl::TSC_MODE_DEFAULT,
            // Xen's arch_domain_create sets a domU's default mode once
            // (incarnation 1); the PV hardware domain's set returns early.
            tsc_incarnation: u32::from(!privileged),
        }
    }

    /// Whether `mfn` is one of the frames the hypervisor itself writes for
    /// this domain (shared_info, grant-table frames): Xen's special pages,
    /// which a domain can neither give back nor transfer.
    pub fn is_special_frame(&self, mfn: u64) -> bool {
        mfn == self.shared_info.0 || self.grant.frames().contains(&mfn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Xen's `domain_shutdown` returns early when `is_shutting_down`: the
    /// first reason stays, and only that shutdown is traced, as
    /// `TRC_XENCORE_DOM_SHUTDOWN` `[domid, reason]`.
    #[test]
    fn a_shutdown_is_noted_and_traced_once_with_its_first_reason() {
        let mut d = Domain::empty(3, false, Mfn(0));
        let ev = d.note_shutdown(xen_public::SHUTDOWN_CRASH).expect("first shutdown traced");
        assert_eq!(ev, xen_public::trace::Event::DomShutdown { domid: 3, reason: xen_public::SHUTDOWN_CRASH });
        assert_eq!(ev.payload().words(), [3, xen_public::SHUTDOWN_CRASH]);
        assert_eq!(ev.payload().event, xen_public::trace::TRC_XENCORE_DOM_SHUTDOWN);
        assert_eq!(d.note_shutdown(xen_public::SHUTDOWN_POWEROFF), None);
        assert_eq!(d.shutdown, Some(xen_public::SHUTDOWN_CRASH));
    }
}
