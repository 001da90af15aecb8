//! The hypervisor's trace buffers as dom0 reaches them (target only): the
//! `XEN_SYSCTL_tbuf_op` sequence of `xl trace start`/`stop`, and the
//! mappings xentrace's `map_tbufs` makes: `t_info` read-only and each
//! CPU's buffer pages read/write, through `mmu_update` with `foreigndom`
//! `DOMID_XEN` into an empty 2 MiB window of dom0's own
//! ([`crate::va_space::new_window`]). The record copying, the bounded store
//! and the dump framing are [`crate::xltrace`]'s (pure).
//!
//! Invariant: a window slot is filled once and stays mapped for dom0's life
//! (Xen never frees trace buffers once allocated: `tb_set_size` is
//! one-shot), so every pointer this module reads through stays valid; a
//! CPU's `cons` is written only with the `prod` of a window whose bytes
//! were copied first.

use alloc::vec::Vec;
use core::sync::atomic::{Ordering, fence};

use crate::hv;
use crate::xltrace::{self, STORE_BYTES, STORE_WINDOWS, Store};
use pv_guest_kernel::alloc::EarlyAlloc;
use pv_guest_kernel::mm::{PTE_RO, PTE_RW};
use pv_guest_kernel::{StartInfo, gtrace, println};
use xen_public::DOMID_XEN;
use xen_public::sysctl::{
    XEN_SYSCTL_TBUFOP_DISABLE, XEN_SYSCTL_TBUFOP_ENABLE, XEN_SYSCTL_TBUFOP_GET_INFO, XEN_SYSCTL_TBUFOP_SET_EVT_MASK, XEN_SYSCTL_TBUFOP_SET_SIZE,
};
use xen_public::trace::{data_size, t_info_cpu_mfns, t_info_tbuf_size};

/// Slots of the window (one L1 table): `t_info` plus every CPU's pages.
pub const SLOTS: usize = 512;
/// CPUs whose buffers are mapped at most (and bits of the CPU mask set).
pub const MAX_CPUS: usize = 64;

/// An errno as `xl trace` prints it.
fn errno(rc: i64) -> alloc::string::String {
    alloc::format!("{rc} ({})", xen_public::errno::name(rc))
}

/// One CPU's mapped buffer: its `t_buf` head at `va`, the data after it.
#[derive(Clone, Copy, Debug)]
struct CpuBuf {
    cpu: u32,
    va: u64,
}

/// dom0's tracer: the window, what is mapped in it, and the records
/// collected.
pub struct Tracer {
    base: u64,
    /// Machine address of slot 0's L1 entry (the window's L1 is one table).
    l1e0: u64,
    filled: usize,
    /// Pages per CPU, once `t_info` is mapped.
    pages: u32,
    cpus: Vec<CpuBuf>,
    store: Store,
    enabled: bool,
    /// Drains that found bogus indices.
    bogus: u64,
}

impl Tracer {
    /// Make the tracer's (empty) window; `None` if dom0's address space has
    /// no room.
    pub fn new(si: &StartInfo, pages: &mut EarlyAlloc) -> Option<Tracer> {
        let base = crate::va_space::new_window(si, pages, &[])?;
        let l1e0 = crate::builder::entry_maddr(si, base, 1)?;
        Some(Tracer { base, l1e0, filled: 0, pages: 0, cpus: Vec::new(), store: Store::default(), enabled: false, bogus: 0 })
    }

    /// Whether tracing is on (records are being collected).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Map Xen's frames `mfns` (owned by DOMID_XEN) at the next free slots,
    /// writable or not: the first one's address.
    fn map(&mut self, mfns: &[u64], writable: bool) -> Result<u64, i64> {
        let first = self.filled;
        if first + mfns.len() > SLOTS {
            return Err(-xen_public::errno::E2BIG);
        }
        let flags = if writable { PTE_RW } else { PTE_RO };
        let l1e0 = self.l1e0;
        let (reached, r) = hv::map_frames(|slot| l1e0 + slot * 8, first as u64, mfns, flags, DOMID_XEN);
        // Slots a failed call may have filled stay counted as used.
        self.filled = first + reached as usize;
        r.map(|()| self.base + first as u64 * 4096)
    }

    /// Map `t_info` and every CPU's buffer, as xentrace's `map_tbufs`, once.
    fn map_buffers(&mut self, t_info_mfn: u64, t_info_bytes: u32) -> Result<(), alloc::string::String> {
        if !self.cpus.is_empty() {
            return Ok(());
        }
        let n = t_info_bytes.div_ceil(4096) as u64;
        let mfns: Vec<u64> = (t_info_mfn..t_info_mfn + n).collect();
        let va = self.map(&mfns, false).map_err(|rc| alloc::format!("mapping t_info (mfn {t_info_mfn:#x}, {n} pages): {}", errno(rc)))?;
        // SAFETY: `n` pages of t_info are mapped read-only at `va` in our
        // window for dom0's life; Xen writes t_info only while allocating
        // the buffers, before get_info reports its frame.
        let t_info = unsafe { core::slice::from_raw_parts(va as *const u8, t_info_bytes as usize) };
        let pages = t_info_tbuf_size(t_info).unwrap_or(0);
        if pages == 0 {
            return Err("t_info: tbuf_size 0".into());
        }
        let nr = hv::physinfo().map_or(1, |p| p.max_cpu_id as usize + 1).min(MAX_CPUS);
        let mut lists: Vec<(u32, Vec<u64>)> = Vec::new();
        for cpu in 0..nr as u32 {
            // A CPU without a buffer (offline at allocation) has offset 0.
            if let Some(m) = t_info_cpu_mfns(t_info, cpu) {
                lists.push((cpu, m.map(u64::from).collect()));
            }
        }
        for (cpu, mfns) in lists {
            let va = self.map(&mfns, true).map_err(|rc| alloc::format!("mapping cpu{cpu}'s {} buffer pages: {}", mfns.len(), errno(rc)))?;
            self.cpus.push(CpuBuf { cpu, va });
        }
        self.pages = u32::from(pages);
        Ok(())
    }

    /// `trace start`: size (if asked), event mask, every CPU, map, enable.
    pub fn start(&mut self, evt_mask: u32, cpu_mask: u64, size: Option<u32>) {
        if let Some(p) = size {
            match hv::tbuf_op(XEN_SYSCTL_TBUFOP_SET_SIZE, 0, p) {
                Ok(_) => println!("xl trace: set_size {p} pages per CPU: done"),
                // Xen 4.17's tb_set_size: -EINVAL for another size once
                // the buffers exist, -EBUSY for the same size again.
                Err(rc) => println!("xl trace: set_size {p} pages per CPU: {} (buffers are sized once)", errno(rc)),
            }
        }
        let info = match hv::tbuf_op(XEN_SYSCTL_TBUFOP_GET_INFO, 0, 0) {
            Ok(i) => i,
            Err(rc) => {
                println!("xl trace: get_info: {}", errno(rc));
                return;
            }
        };
        if info.buffer_mfn == 0 {
            println!("xl trace: no trace buffers (boot the hypervisor with tbuf_size=N, or trace start -s N)");
            return;
        }
        if let Err(rc) = hv::tbuf_op(XEN_SYSCTL_TBUFOP_SET_EVT_MASK, evt_mask, 0) {
            println!("xl trace: set_evt_mask {evt_mask:#010x}: {}", errno(rc));
            return;
        }
        let rc = hv::tbuf_set_cpu_mask(&cpu_mask.to_le_bytes()[..MAX_CPUS / 8]);
        if rc != 0 {
            println!("xl trace: set_cpu_mask {cpu_mask:#x}: {}", errno(rc));
            return;
        }
        if let Err(e) = self.map_buffers(info.buffer_mfn, info.size) {
            println!("xl trace: {e}");
            return;
        }
        // A new session: the previous records go (freed before the new
        // store takes its budget), and so do records left in the buffers.
        self.store = Store::default();
        self.store = Store::new(STORE_BYTES, STORE_WINDOWS);
        self.discard();
        if let Err(rc) = hv::tbuf_op(XEN_SYSCTL_TBUFOP_ENABLE, 0, 0) {
            println!("xl trace: enable: {}", errno(rc));
            return;
        }
        self.enabled = true;
        // dom0's own records (its backends' rings, its sends) from now.
        gtrace::start();
        let cpus: Vec<u32> = self.cpus.iter().map(|c| c.cpu).collect();
        println!(
            "xl trace: enabled: event mask {evt_mask:#010x}, cpu mask {}, t_info mfn {:#x} ({} bytes), {} pages per CPU, cpus {cpus:?}; keeping up to {} KiB",
            if cpu_mask == u64::MAX { alloc::string::String::from("all") } else { alloc::format!("{cpu_mask:#x}") },
            info.buffer_mfn,
            info.size,
            self.pages,
            self.store.budget() / 1024
        );
    }

    /// `cons = prod` on every buffer (xentrace's `-D`).
    fn discard(&mut self) {
        for c in &self.cpus {
            // SAFETY: `c.va` maps the CPU's first buffer page read/write
            // for dom0's life; its `t_buf` head is two aligned u32s.
            unsafe {
                let prod = ((c.va + 4) as *const u32).read_volatile();
                (c.va as *mut u32).write_volatile(prod);
            }
        }
    }

    /// Copy every buffer's unread records into the store and hand the
    /// space back to Xen (xentrace's loop body); bytes copied.
    pub fn drain(&mut self) -> usize {
        if self.cpus.is_empty() {
            return 0;
        }
        let size = data_size(self.pages);
        let before = self.store.len() as u64 + self.store.dropped_bytes;
        for c in &self.cpus {
            // SAFETY: as in `discard`; read once each (Xen moves `prod`).
            let (cons, prod) = unsafe { ((c.va as *const u32).read_volatile(), ((c.va + 4) as *const u32).read_volatile()) };
            // xen_rmb(): read prod, then the records.
            fence(Ordering::Acquire);
            // SAFETY: the CPU's `pages` pages are mapped contiguously at
            // `c.va`; the data area follows the 8-byte head. Xen writes only
            // outside [cons, prod) until `cons` moves, and only bytes of
            // that window are read (`xltrace::window` bounds them).
            let data = unsafe { core::slice::from_raw_parts((c.va + 8) as *const u8, size as usize) };
            match xltrace::window(data, size, cons, prod) {
                Ok(Some(w)) => {
                    self.store.add_window(c.cpu, w.first, w.second);
                    // xen_mb(): the copy, then the new cons.
                    fence(Ordering::SeqCst);
                    // SAFETY: as in `discard`.
                    unsafe { (c.va as *mut u32).write_volatile(w.new_cons) };
                }
                Ok(None) => {}
                Err(e) => {
                    if self.bogus == 0 {
                        println!("xl trace: cpu{}: {e:?}; its buffer is skipped", c.cpu);
                    }
                    self.bogus += 1;
                }
            }
        }
        (self.store.len() as u64 + self.store.dropped_bytes - before) as usize
    }

    /// `trace stop`: disable, then read the buffers one last time.
    pub fn stop(&mut self) {
        match hv::tbuf_op(XEN_SYSCTL_TBUFOP_DISABLE, 0, 0) {
            Ok(_) => println!("xl trace: disabled"),
            Err(rc) => println!("xl trace: disable: {}", errno(rc)),
        }
        self.enabled = false;
        gtrace::stop();
        self.drain();
        self.report();
    }

    /// What the store holds and what it could not keep.
    pub fn report(&self) {
        let s = &self.store;
        println!(
            "xl trace: kept {} records ({} bytes) in {} windows; dropped {} records ({} bytes) past the {} KiB budget; {} malformed bytes; {} bogus reads",
            s.records,
            s.len(),
            s.windows(),
            s.dropped_records,
            s.dropped_bytes,
            s.budget() / 1024,
            s.malformed_bytes,
            self.bogus
        );
    }

    /// `trace dump`: the records in xentrace's format, framed on the
    /// console, with the TSC frequency the hypervisor reports (physinfo's
    /// `cpu_khz`); then dom0's own records (`pv_guest_kernel::gtrace`'s
    /// dump, on the same TSC).
    pub fn dump(&mut self) {
        if self.enabled {
            self.drain();
        }
        let khz = hv::physinfo().map_or(0, |p| p.cpu_khz);
        xltrace::frame(&self.store, khz, |l| println!("{l}"));
        gtrace::dump(u64::from(khz));
    }
}
