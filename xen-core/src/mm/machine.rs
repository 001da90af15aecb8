//! Machine-wide memory state after boot: the frame allocator, the
//! machine-to-phys table, and frame access through the direct map.
//!
//! Invariant: frames handed out by [`alloc_frame`] are zeroed, and the M2P
//! entry of every frame a domain owns names its pfn; all others hold
//! [`INVALID_M2P_ENTRY`].

use super::Mfn;
use super::frame_alloc::FrameAllocator;

/// M2P value of a frame no guest owns.
pub const INVALID_M2P_ENTRY: u64 = !0;

/// The machine frame allocator, owned by the hypervisor once boot is done.
pub static FRAMES: spin::Mutex<Option<FrameAllocator<'static>>> = spin::Mutex::new(None);

/// Where the M2P table lives.
#[derive(Clone, Copy, Debug)]
pub struct M2p {
    /// First (contiguous) frame.
    pub base: Mfn,
    /// Entries.
    pub entries: u64,
}

/// The machine-to-phys table, set once at boot.
pub static M2P: spin::Once<M2p> = spin::Once::new();

/// The machine's E820 map from the boot loader, set once at boot, for
/// XENMEM_machine_memory_map.
pub static MACHINE_E820: spin::Once<crate::domain::memory_ops::E820Map> = spin::Once::new();

/// TLB-flush clock of the latest free since every CPU last flushed (0:
/// none). A frame that was freed may still be reachable through a stale
/// translation of its former owner; no frame is handed out again until
/// every CPU has flushed since it was freed. Frees and allocations for
/// guests happen under the hypervisor lock, so a store here is never lost
/// between another CPU's swap and its flush.
static FREED_AT: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Flush whichever CPUs may still translate to a frame freed earlier.
fn flush_before_reuse() {
    use core::sync::atomic::Ordering::SeqCst;
    let stamp = FREED_AT.swap(0, SeqCst);
    if stamp != 0 {
        crate::schedule::flush_cpus_since(stamp);
    }
}

/// Allocate one zeroed frame.
pub fn alloc_frame() -> Option<Mfn> {
    flush_before_reuse();
    let mfn = FRAMES.lock().as_mut()?.alloc()?;
    crate::guest_access::Frame::new(mfn)?.scrub();
    Some(mfn)
}

/// Allocate `pages` contiguous frames (not zeroed) for the hypervisor's
/// own use, after the flush that frame reuse needs.
pub fn alloc_contiguous(pages: u64) -> Option<Mfn> {
    flush_before_reuse();
    FRAMES.lock().as_mut()?.alloc_contiguous(pages)
}

/// Give a frame back to the allocator (after the frame table released it).
pub fn free_frame(mfn: Mfn) {
    FREED_AT.store(crate::arch::x86_64::tlb_clock::now(), core::sync::atomic::Ordering::SeqCst);
    set_m2p(mfn, INVALID_M2P_ENTRY);
    if let Some(f) = FRAMES.lock().as_mut() {
        let _ = f.free(mfn);
    }
}

/// Frames currently free.
pub fn free_frames() -> u64 {
    FRAMES.lock().as_ref().map_or(0, FrameAllocator::free_frames)
}

/// Record `mfn -> pfn` in the M2P (ignored for frames past its end).
pub fn set_m2p(mfn: Mfn, pfn: u64) {
    let Some(m2p) = M2P.get() else { return };
    if mfn.0 >= m2p.entries {
        return;
    }
    // The M2P frames belong to the hypervisor; guests see them read-only.
    let (frame, idx) = (Mfn(m2p.base.0 + mfn.0 / 512), (mfn.0 % 512) as usize);
    if let Some(f) = crate::guest_access::Frame::new(frame) {
        f.write_u64(idx, pfn);
    }
}

/// Fill the whole M2P with [`INVALID_M2P_ENTRY`].
pub fn init_m2p(m2p: M2p) {
    M2P.call_once(|| m2p);
    for mfn in 0..m2p.entries {
        set_m2p(Mfn(mfn), INVALID_M2P_ENTRY);
    }
}

use super::page_type::{FrameTable, PageInfo, PageMem};

/// The frame table: one [`PageInfo`] per machine frame.
pub static FRAME_TABLE: spin::Mutex<Option<FrameTable<'static>>> = spin::Mutex::new(None);

/// Allocate and initialise the frame table for `nr_frames` frames, with
/// the machine's RAM map and dom0's MMIO permissions.
pub fn init_frame_table(nr_frames: u64, map: crate::domain::iocap::MachineMap) -> Option<()> {
    let frames = crate::arch::x86_64::frame_box::FrameSlice::with_len(nr_frames as usize, PageInfo::FREE)?.leak();
    let frames = frames.get_mut(..nr_frames as usize)?;
    let mut ft = FrameTable::new(frames);
    ft.set_machine_map(map);
    *FRAME_TABLE.lock() = Some(ft);
    Some(())
}

/// The hypervisor's own L4, whose slots 256-271 every guest L4 carries.
pub static IDLE_L4: spin::Once<Mfn> = spin::Once::new();

/// Page-table entries through the direct map. Frames past the end of RAM
/// read as 0 and ignore writes.
pub struct DirectMapMem {
    /// One past the last frame.
    pub end_mfn: u64,
    /// Whether long validations may stop for a continuation (inside a
    /// guest's hypercall; not at boot or while destroying a domain).
    pub preemptible: bool,
}

impl DirectMapMem {
    /// All of RAM; `preemptible` as the caller can continue.
    pub fn new(preemptible: bool) -> Self {
        DirectMapMem { end_mfn: M2P.get().map_or(0, |m| m.entries), preemptible }
    }
}

impl PageMem for DirectMapMem {
    #[inline]
    fn read(&self, mfn: u64, idx: usize) -> u64 {
        if mfn >= self.end_mfn || idx >= 512 {
            return 0;
        }
        crate::guest_access::Frame::new(Mfn(mfn)).map_or(0, |f| f.read_u64(idx))
    }

    #[inline]
    fn write(&mut self, mfn: u64, idx: usize, val: u64) {
        if mfn >= self.end_mfn || idx >= 512 {
            return;
        }
        // The frame table decided the write is allowed.
        if let Some(f) = crate::guest_access::Frame::new(Mfn(mfn)) {
            f.write_u64(idx, val);
        }
    }

    fn preempt_due(&self) -> bool {
        self.preemptible && crate::hypercall::preempt_due()
    }

    fn tlb_clock(&self) -> u64 {
        crate::arch::x86_64::tlb_clock::now()
    }

    fn flush_tlbs_since(&mut self, stamp: u64) {
        crate::schedule::flush_cpus_since(stamp);
    }

    fn init_xen_l4_slots(&mut self, mfn: u64) {
        let Some(idle) = IDLE_L4.get() else { return };
        for i in super::page_type::XEN_SLOTS {
            let v = self.read(idle.0, i);
            self.write(mfn, i, v);
        }
    }
}
