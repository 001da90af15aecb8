//! A domain's shared_info page as the hypervisor writes it: event bits,
//! each vCPU's `vcpu_info` (upcall pending and mask, time, CR2) and the
//! wall clock. The guest writes the same words concurrently, so every
//! access is one atomic or volatile word through [`Frame`].

use super::CLOCK;
use crate::domain::build::{SHINFO_CR2, SHINFO_UPCALL_MASK};
use crate::domain::vcpu::Vcpu;
use crate::domain::{Domain, MAX_VCPUS};
use crate::guest_access::Frame;

/// The 2-level event bits in a domain's shared_info page (vCPU 0's
/// `vcpu_info` for the selector and upcall flag), updated atomically since
/// the guest writes the same words.
pub struct ShinfoBits {
    page: Frame,
}

const SHINFO_PENDING: usize = core::mem::offset_of!(xen_public::SharedInfo, evtchn_pending);
const SHINFO_MASK: usize = core::mem::offset_of!(xen_public::SharedInfo, evtchn_mask);
const VCPU0_PENDING_SEL: usize = core::mem::offset_of!(xen_public::VcpuInfo, evtchn_pending_sel);
// Every port notifies vCPU 0 (its selector and upcall byte above), VIRQ_TIMER
// is raised domain-wide and the caller's own domctl answers see only the
// calling vCPU: a domain with more vCPUs needs those per vCPU first.
const _: () = assert!(MAX_VCPUS == 1, "event delivery and self-queries assume one vCPU");

impl crate::event::EventBits for ShinfoBits {
    fn test_and_set_pending(&mut self, port: u32) -> bool {
        let bit = 1u64 << (port % 64);
        self.page.fetch_or_u64(SHINFO_PENDING + (port / 64 % 64) as usize * 8, bit) & bit != 0
    }
    fn is_masked(&self, port: u32) -> bool {
        self.page.load_u64(SHINFO_MASK + (port / 64 % 64) as usize * 8) & (1 << (port % 64)) != 0
    }
    fn clear_mask(&mut self, port: u32) {
        self.page.fetch_and_u64(SHINFO_MASK + (port / 64 % 64) as usize * 8, !(1 << (port % 64)));
    }
    fn is_pending(&self, port: u32) -> bool {
        self.page.load_u64(SHINFO_PENDING + (port / 64 % 64) as usize * 8) & (1 << (port % 64)) != 0
    }
    fn test_and_set_sel(&mut self, w: u32) -> bool {
        let bit = 1u64 << (w % 64);
        self.page.fetch_or_u64(VCPU0_PENDING_SEL, bit) & bit != 0
    }
    fn set_upcall_pending(&mut self) {
        // Byte 0 of vcpu_info[0].
        self.page.write_u8(0, 1);
    }
}

/// Bytes of a `vcpu_info` in shared_info.
const VCPU_INFO_SIZE: usize = core::mem::size_of::<xen_public::VcpuInfo>();

impl Vcpu {
    /// Byte offset of this vCPU's `vcpu_info` in shared_info.
    fn vcpu_info(&self) -> usize {
        self.vcpu_id as usize * VCPU_INFO_SIZE
    }
}

impl Domain {
    /// The domain's shared_info frame (allocated from RAM with the
    /// domain, so always in the direct map).
    #[inline]
    fn shinfo(&self) -> Frame {
        match Frame::new(self.shared_info) {
            Some(f) => f,
            None => self.shinfo_outside_directmap(),
        }
    }

    #[cold]
    #[inline(never)]
    fn shinfo_outside_directmap(&self) -> ! {
        crate::setup::fatal(format_args!("d{}: shared_info outside the direct map", self.domid))
    }

    /// The domain's event bits.
    pub fn event_bits(&self) -> ShinfoBits {
        ShinfoBits { page: self.shinfo() }
    }

    /// Whether an event upcall is pending and not masked for `v`.
    #[inline]
    pub fn upcall_deliverable(&self, v: &Vcpu) -> bool {
        // Bytes 0 and 1 of vcpu_info: upcall pending, upcall mask.
        let (page, at) = (self.shinfo(), v.vcpu_info());
        page.read_u8(at) != 0 && page.read_u8(at + SHINFO_UPCALL_MASK) == 0
    }

    /// Mark the port bound to `virq` pending, if any.
    pub fn raise_virq(&mut self, virq: u32) {
        if let Some(port) = self.ports.virq_port(virq) {
            crate::event::set_pending(&mut self.event_bits(), port);
        }
    }

    /// Publish `v`'s upcall mask and the time in a new shared_info page.
    pub fn init_shared(&self, v: &Vcpu) {
        self.sync_mask_out(v);
        self.publish_time(v);
    }

    /// Clear `v`'s `evtchn_upcall_mask` in shared_info (SCHEDOP_block).
    pub fn clear_upcall_mask(&self, v: &Vcpu) {
        self.shinfo().write_u8(v.vcpu_info() + SHINFO_UPCALL_MASK, 0);
    }

    /// Pull `evtchn_upcall_mask` from shared_info into the vCPU state.
    pub(super) fn sync_mask_in(&self, v: &mut Vcpu) {
        v.upcall_mask = self.shinfo().read_u8(v.vcpu_info() + SHINFO_UPCALL_MASK) != 0;
    }

    /// Push the vCPU's upcall mask back to shared_info.
    pub(super) fn sync_mask_out(&self, v: &Vcpu) {
        self.shinfo().write_u8(v.vcpu_info() + SHINFO_UPCALL_MASK, u8::from(v.upcall_mask));
    }

    /// Publish the time to the guest: `v`'s `vcpu_info.time` and the wall
    /// clock, with Xen's version protocol.
    pub fn publish_time(&self, v: &Vcpu) {
        let Some(clock) = CLOCK.get() else { return };
        let mut page = self.shinfo();
        let time = v.vcpu_info() + core::mem::offset_of!(xen_public::VcpuInfo, time);
        crate::time::publish(&mut page, time, &clock.sample(crate::arch::x86_64::clock::rdtsc()));
        crate::time::publish_wallclock(&mut page, clock.boot_wall);
    }

    /// Record a page fault's address in `v`'s `vcpu_info.arch.cr2`.
    pub(super) fn set_guest_cr2(&self, v: &Vcpu, cr2: u64) {
        self.shinfo().write_u64((v.vcpu_info() + SHINFO_CR2) / 8, cr2);
    }
}
