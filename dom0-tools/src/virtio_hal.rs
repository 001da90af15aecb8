//! Arch module: virtio-drivers' [`Hal`] for a PV dom0 ([`Dom0Hal`]).
//!
//! - DMA memory comes from a pool of dom0 pages taken once at [`init`],
//!   handed out only as runs of consecutive machine frames
//!   ([`crate::dma::Pool`]): the device sees machine addresses (no IOMMU),
//!   dom0's pseudo-physical pages are not machine-contiguous.
//! - A device's BAR frames (MMIO, not RAM) are mapped on demand into a
//!   window of dom0 pages whose L1 entries are rewritten with `mmu_update`
//!   (cache disabled: PCD|PWT), as the builder's scratch window is.
//! - `share` gives the device a buffer's own machine address when its
//!   pages are machine-contiguous (found by walking dom0's page tables, so
//!   a remapped page counts by the frame it maps now), and bounces it
//!   through pool pages otherwise.
//!
//! Invariant: a machine address handed to the device always covers the
//! whole buffer inside pages dom0 owns for as long as the buffer is shared:
//! when no bounce can be had, the device gets the sink (a reserved run of
//! [`max_share`] bytes, nobody's data) and [`take_failure`] reports it, so
//! the request is failed rather than the device writing past a page.
//! Callers share at most [`max_share`] bytes at once.

use crate::dma::{self, PAGE_SIZE, Pool};
use core::ptr::NonNull;
use pv_guest_kernel::StartInfo;
use pv_guest_kernel::alloc::EarlyAlloc;
use pv_guest_kernel::mm::PTE_RW;
use virtio_drivers::{BufferDirection, Hal, PhysAddr};
use xen_public::MmuUpdate;
use xen_public::pte::{PTE_ADDR_MASK, PteFlags};

/// Pages of the MMIO window (QEMU's virtio-pci BAR is 16 KiB).
pub const MMIO_SLOTS: usize = 8;
/// Largest sink (and so share) wanted, in pages: 32 KiB.
pub const SINK_PAGES: usize = MMIO_SLOTS;
/// Bounces alive at once (a request: header, data, status).
const MAX_BOUNCES: usize = 4;

#[derive(Clone, Copy)]
struct Bounce {
    maddr: u64,
    first: usize,
    pages: usize,
}

struct State {
    si: &'static StartInfo,
    pool: Pool,
    pool_va: u64,
    mmio_va: u64,
    mmio_l1e: [u64; MMIO_SLOTS],
    mmio_mfn: [Option<u64>; MMIO_SLOTS],
    bounces: [Option<Bounce>; MAX_BOUNCES],
    sink: (usize, usize),
    failed: bool,
}

static STATE: spin::Mutex<Option<State>> = spin::Mutex::new(None);

/// Take `pool_pages` DMA pages and the MMIO window from `pages`. Once.
pub fn init(si: &'static StartInfo, pages: &mut EarlyAlloc, pool_pages: usize) -> Result<(), &'static str> {
    let mut st = STATE.lock();
    if st.is_some() {
        return Err("DMA already set up");
    }
    let need = (pool_pages + MMIO_SLOTS) as u64;
    if pages.remaining() < need {
        return Err("too few free pages for DMA");
    }
    let mmio_va = pages.alloc_run(MMIO_SLOTS as u64).ok_or("too few free pages for DMA")?;
    let mut mmio_l1e = [0; MMIO_SLOTS];
    for (i, e) in mmio_l1e.iter_mut().enumerate() {
        *e = crate::builder::l1e_maddr(si, mmio_va + i as u64 * PAGE_SIZE).ok_or("no L1 entry for the MMIO window")?;
    }
    let pool_va = pages.alloc_run(pool_pages as u64).ok_or("too few free pages for DMA")?;
    let frames = (0..pool_pages as u64).map(|i| pv_guest_kernel::mm::mfn_of(si, pool_va + i * PAGE_SIZE)).collect();
    let mut pool = Pool::new(frames);
    // The sink stands in for a device region dom0 could not map, so it must
    // be as large as any region dom0 maps (MMIO_SLOTS pages).
    let sink = (pool.alloc(SINK_PAGES).ok_or("no run of DMA pages for the sink")?, SINK_PAGES);
    *st = Some(State { si, pool, pool_va, mmio_va, mmio_l1e, mmio_mfn: [None; MMIO_SLOTS], bounces: [None; MAX_BOUNCES], sink, failed: false });
    Ok(())
}

/// [`init`] for one of several devices sharing the DMA context: the first
/// caller sets it up with `pool_pages` (so each caller asks for the pool
/// every dom0 device needs together), a later one finds it ready.
pub fn init_shared(si: &'static StartInfo, pages: &mut EarlyAlloc, pool_pages: usize) -> Result<(), &'static str> {
    if STATE.lock().is_some() {
        return Ok(());
    }
    init(si, pages, pool_pages)
}

/// Most bytes one `share` may cover (the sink's size).
pub fn max_share() -> usize {
    STATE.lock().as_ref().map_or(0, |s| s.sink.1 * PAGE_SIZE as usize)
}

/// The longest free machine-contiguous run of the DMA pool, in pages.
pub fn longest_free_run() -> usize {
    STATE.lock().as_ref().map_or(0, |s| s.pool.longest_free_run())
}

/// Whether a share or MMIO mapping failed since the last call (the
/// device was given the sink), clearing the flag.
pub fn take_failure() -> bool {
    STATE.lock().as_mut().is_some_and(|s| core::mem::take(&mut s.failed))
}

impl State {
    fn page_va(&self, i: usize) -> u64 {
        self.pool_va + i as u64 * PAGE_SIZE
    }

    /// The machine frame `va`'s page maps now, by dom0's page tables.
    fn frame_of(&self, va: u64) -> Option<u64> {
        let (_, e) = crate::builder::l1e(self.si, va)?;
        PteFlags::of(e).contains(PteFlags::PRESENT).then_some((e & PTE_ADDR_MASK) >> 12)
    }

    fn sink_maddr(&mut self) -> u64 {
        self.failed = true;
        self.pool.maddr(self.sink.0).unwrap_or(0)
    }

    /// Map `n` frames from `mfn` in consecutive window slots; the first
    /// slot's VA.
    fn map_mmio(&mut self, mfn: u64, n: usize) -> Option<u64> {
        let fits = |s: &State, at: usize, want: &dyn Fn(usize) -> Option<u64>| (0..n).all(|k| s.mmio_mfn[at + k] == want(k));
        let last = MMIO_SLOTS.checked_sub(n)?;
        if let Some(at) = (0..=last).find(|&at| fits(self, at, &|k| Some(mfn + k as u64))) {
            return Some(self.mmio_va + at as u64 * PAGE_SIZE);
        }
        let at = (0..=last).find(|&at| fits(self, at, &|_| None))?;
        let flags = PTE_RW | (PteFlags::PCD | PteFlags::PWT).bits();
        let mut reqs = [MmuUpdate::default(); MMIO_SLOTS];
        for (k, r) in reqs.iter_mut().enumerate().take(n) {
            *r = MmuUpdate { ptr: self.mmio_l1e[at + k], val: ((mfn + k as u64) << 12) | flags };
        }
        let rc = crate::hv::mmu_update(&reqs[..n], xen_public::DOMID_SELF);
        crate::hv::flush_tlb_local();
        if rc != 0 {
            return None;
        }
        for k in 0..n {
            self.mmio_mfn[at + k] = Some(mfn + k as u64);
        }
        Some(self.mmio_va + at as u64 * PAGE_SIZE)
    }
}

/// The PV dom0 [`Hal`].
pub struct Dom0Hal;

// SAFETY: dma_alloc hands out zeroed, page-aligned pool pages that no other
// allocation holds until dma_dealloc; mmio_phys_to_virt returns window
// pages mapped to the asked frames (or the sink, reported), each window
// slot given to one frame; share/unshare keep a bounce's pages until
// unshare and copy only within the caller's buffer.
unsafe impl Hal for Dom0Hal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let mut guard = STATE.lock();
        // The crate cannot take a failure here: a dangling pointer and
        // machine address 0 would have the device DMA into frame 0, so dom0
        // stops instead (its queues are allocated once, at probe).
        let Some(st) = guard.as_mut() else { panic!("virtio: DMA memory asked for before the DMA context") };
        let Some(first) = st.pool.alloc(pages) else { panic!("virtio: no run of {pages} machine-contiguous DMA pages") };
        let va = st.page_va(first);
        // SAFETY: `pages` pool pages from `va`, mapped writable in dom0's
        // initial region and just taken from the pool: nobody else holds them.
        unsafe { core::ptr::write_bytes(va as *mut u8, 0, pages * PAGE_SIZE as usize) };
        (st.pool.maddr(first).unwrap_or(0), NonNull::new(va as *mut u8).unwrap_or(NonNull::dangling()))
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        let mut guard = STATE.lock();
        let Some(st) = guard.as_mut() else { return -1 };
        let first = (vaddr.as_ptr() as u64).wrapping_sub(st.pool_va) / PAGE_SIZE;
        if st.pool.free(first as usize, pages) { 0 } else { -1 }
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        let mut guard = STATE.lock();
        let Some(st) = guard.as_mut() else { panic!("virtio: device region mapped before the DMA context") };
        let mfn = paddr / PAGE_SIZE;
        let n = (paddr % PAGE_SIZE + size.max(1) as u64).div_ceil(PAGE_SIZE) as usize;
        // The sink below is SINK_PAGES long: a larger region would let the
        // driver write past it, so dom0 stops here instead.
        assert!(n <= SINK_PAGES, "virtio: a {size}-byte device region is larger than dom0 maps");
        let va = match st.map_mmio(mfn, n) {
            Some(va) => va + paddr % PAGE_SIZE,
            None => {
                st.failed = true;
                st.page_va(st.sink.0)
            }
        };
        NonNull::new(va as *mut u8).unwrap_or(NonNull::dangling())
    }

    unsafe fn share(buffer: NonNull<[u8]>, direction: BufferDirection) -> PhysAddr {
        let mut guard = STATE.lock();
        let Some(st) = guard.as_mut() else { return 0 };
        let (va, len) = (buffer.as_ptr() as *mut u8 as u64, buffer.len());
        if let Some(maddr) = dma::direct_maddr(va, len, |p| st.frame_of(p)) {
            return maddr;
        }
        let pages = dma::bounce_pages(len);
        let (Some(slot), Some(first)) = (st.bounces.iter().position(Option::is_none), st.pool.alloc(pages)) else {
            return st.sink_maddr();
        };
        let maddr = st.pool.maddr(first).unwrap_or(0);
        st.bounces[slot] = Some(Bounce { maddr, first, pages });
        if direction != BufferDirection::DeviceToDriver {
            // SAFETY: the caller vouches for `len` readable bytes at `va`;
            // the bounce is `pages` pool pages (>= len bytes) just taken.
            unsafe { core::ptr::copy_nonoverlapping(va as *const u8, st.page_va(first) as *mut u8, len) };
        }
        maddr
    }

    unsafe fn unshare(paddr: PhysAddr, buffer: NonNull<[u8]>, direction: BufferDirection) {
        let mut guard = STATE.lock();
        let Some(st) = guard.as_mut() else { return };
        let Some(slot) = st.bounces.iter().position(|b| b.is_some_and(|b| b.maddr == paddr)) else { return };
        let Some(b) = st.bounces[slot].take() else { return };
        if direction != BufferDirection::DriverToDevice {
            let len = buffer.len().min(b.pages * PAGE_SIZE as usize);
            // SAFETY: the caller vouches for `len` writable bytes at the
            // buffer; the bounce holds at least `len` bytes until freed below.
            unsafe { core::ptr::copy_nonoverlapping(st.page_va(b.first) as *const u8, buffer.as_ptr() as *mut u8, len) };
        }
        st.pool.free(b.first, b.pages);
    }
}
