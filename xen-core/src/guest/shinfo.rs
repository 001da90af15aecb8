//! A domain's shared_info page as the hypervisor writes it: event bits,
//! each vCPU's `vcpu_info` (upcall pending and mask, time, CR2) and the
//! wall clock. The guest writes the same words concurrently, so every
//! access is one atomic or volatile word through [`Frame`].
//!
//! A `vcpu_info` is in shared_info at `vcpu_id * 64` until the guest moves
//! it with VCPUOP_register_vcpu_info ([`Domain::vcpu_info_at`]); every
//! access here goes through [`Domain::vcpu_info_of`], so after the move
//! nothing is read from or written to the old place.

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
    /// vCPU 0's `vcpu_info`: its frame and byte offset.
    vcpu0: (Frame, usize),
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
        let (f, at) = self.vcpu0;
        f.fetch_or_u64(at + VCPU0_PENDING_SEL, bit) & bit != 0
    }
    fn set_upcall_pending(&mut self) {
        // Byte 0 of vCPU 0's vcpu_info.
        let (f, at) = self.vcpu0;
        f.write_u8(at, 1);
    }
}

/// Bytes of a `vcpu_info` in shared_info.
const VCPU_INFO_SIZE: usize = core::mem::size_of::<xen_public::VcpuInfo>();

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

    /// Where vCPU `vcpu_id`'s `vcpu_info` is: its frame and byte offset
    /// (shared_info, or the frame the guest moved it to; that frame is
    /// the domain's, held writable, so in the direct map).
    pub fn vcpu_info_of(&self, vcpu_id: u32) -> (Frame, usize) {
        match self.vcpu_info_at.get(vcpu_id as usize).copied().flatten() {
            Some((mfn, off)) => match Frame::new(crate::mm::Mfn(mfn)) {
                Some(f) => (f, off as usize),
                None => self.shinfo_outside_directmap(),
            },
            None => (self.shinfo(), vcpu_id as usize * VCPU_INFO_SIZE),
        }
    }

    /// The domain's event bits.
    pub fn event_bits(&self) -> ShinfoBits {
        ShinfoBits { page: self.shinfo(), vcpu0: self.vcpu_info_of(0) }
    }

    /// Move `v`'s `vcpu_info` to byte `offset` of frame `mfn` (Xen's
    /// `map_vcpu_info`, the checks done by the caller): the 64 bytes are
    /// copied from where they are, every event selector bit and the
    /// upcall are marked pending there (the guest may get a spurious
    /// upcall, never lose one), and the time is published in it. The
    /// caller records the new place in [`Domain::vcpu_info_at`].
    pub fn move_vcpu_info(&mut self, v: &Vcpu, mfn: u64, offset: u16) {
        let Some(to) = Frame::new(crate::mm::Mfn(mfn)) else { return };
        let (from, at) = self.vcpu_info_of(v.vcpu_id);
        let mut buf = [0u8; VCPU_INFO_SIZE];
        from.read_bytes(at, &mut buf);
        let off = offset as usize;
        to.write_bytes(off, &buf);
        to.fetch_or_u64(off + VCPU0_PENDING_SEL, !0);
        to.write_u8(off, 1);
        if let Some(slot) = self.vcpu_info_at.get_mut(v.vcpu_id as usize) {
            *slot = Some((mfn, offset));
        }
        self.publish_time(v);
    }

    /// Whether an event upcall is pending and not masked for `v`.
    #[inline]
    pub fn upcall_deliverable(&self, v: &Vcpu) -> bool {
        // Bytes 0 and 1 of vcpu_info: upcall pending, upcall mask.
        let (page, at) = self.vcpu_info_of(v.vcpu_id);
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

    /// Take `v`'s upcall mask from shared_info as it is (a vCPU context
    /// being loaded: the mask is the guest's and the toolstack's), and
    /// publish the time.
    pub fn attach_shared(&self, v: &mut Vcpu) {
        self.sync_mask_in(v);
        self.publish_time(v);
    }

    /// Clear `v`'s `evtchn_upcall_mask` in shared_info (SCHEDOP_block).
    pub fn clear_upcall_mask(&self, v: &Vcpu) {
        let (f, at) = self.vcpu_info_of(v.vcpu_id);
        f.write_u8(at + SHINFO_UPCALL_MASK, 0);
    }

    /// Pull `evtchn_upcall_mask` from shared_info into the vCPU state.
    pub(super) fn sync_mask_in(&self, v: &mut Vcpu) {
        let (f, at) = self.vcpu_info_of(v.vcpu_id);
        v.upcall_mask = f.read_u8(at + SHINFO_UPCALL_MASK) != 0;
    }

    /// Push the vCPU's upcall mask back to shared_info.
    pub(super) fn sync_mask_out(&self, v: &Vcpu) {
        let (f, at) = self.vcpu_info_of(v.vcpu_id);
        f.write_u8(at + SHINFO_UPCALL_MASK, u8::from(v.upcall_mask));
    }

    /// Publish the time to the guest: `v`'s `vcpu_info.time` and the wall
    /// clock, with Xen's version protocol.
    pub fn publish_time(&self, v: &Vcpu) {
        let Some(clock) = CLOCK.get() else { return };
        let (mut vi, at) = self.vcpu_info_of(v.vcpu_id);
        let time = at + core::mem::offset_of!(xen_public::VcpuInfo, time);
        crate::time::publish(&mut vi, time, &clock.sample(crate::arch::x86_64::clock::rdtsc()));
        crate::time::publish_wallclock(&mut self.shinfo(), clock.boot_wall);
        if v.time_info_guest != 0 {
            // The second copy (Xen's update_secondary_system_time): its
            // version odd, the record, then the version even; a write that
            // fails is dropped.
            let mut rec = [0u8; 32];
            vi.read_bytes(time, &mut rec);
            let version = u32::from_le_bytes([rec[0], rec[1], rec[2], rec[3]]);
            let mem = v.kernel_mem();
            if mem.write(v.time_info_guest, &(version.wrapping_sub(1) | 1).to_le_bytes()).is_ok() {
                let _ = mem.write(v.time_info_guest + 4, &rec[4..]);
                let _ = mem.write(v.time_info_guest, &version.to_le_bytes());
            }
        }
    }

    /// Set `v`'s virtual CR2 (what `mov %cr2` reads) and mirror it into
    /// its `vcpu_info.arch.cr2` (Xen's `arch_set_cr2`).
    pub(super) fn set_guest_cr2(&self, v: &mut Vcpu, cr2: u64) {
        v.cr2 = cr2;
        let (f, at) = self.vcpu_info_of(v.vcpu_id);
        f.write_u64((at + SHINFO_CR2) / 8, cr2);
    }
}
