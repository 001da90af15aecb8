//! The trace buffers (Xen's `common/trace.c`): one buffer per physical CPU
//! and the `t_info` area that lists their frames, shared with privileged
//! domains, which map them through `mmu_update` with `foreigndom` =
//! `DOMID_XEN` (xentrace's `map_tbufs`); `XEN_SYSCTL_tbuf_op`; and
//! [`record`], which every trace point calls.
//!
//! Owns the per-CPU trace state ([`PER_CPU_TRACE`]: each CPU's buffer and
//! its lost-record count, touched only by that CPU) and the machine-wide
//! settings ([`TRACE`]: on/off, event and CPU masks, the buffer size).
//! Invariants: buffers are allocated once (boot option `tbuf_size=` or
//! `set_size`) and never freed, so a mapping dom0 holds never outlives
//! them; a CPU writes only its own buffer, and only outside interrupt
//! handlers, so a buffer has one writer and needs no lock; the record
//! rules (whole records, wrap padding, announced losses, dom0's `cons`
//! distrusted) are `tbuf.rs`'s.

use crate::arch::x86_64::entry::this_cpu;
use crate::arch::x86_64::smp::{CPUS_ONLINE, MAX_CPUS};
use crate::guest_access::Frame;
use crate::mm::Mfn;
use crate::tbuf::{self, BufMem, Lost, Outcome};
use core::sync::atomic::{
    AtomicBool, AtomicU32, AtomicU64,
    Ordering::{Acquire, Relaxed, Release, SeqCst},
};
use xen_public::errno::{EBUSY, EINVAL, ENOMEM};
use xen_public::sysctl::XenSysctlTbufOp;
use xen_public::trace::{self as abi, Event, TInfoLayout};

/// The machine-wide trace settings.
pub struct TraceSettings {
    /// Records are written (Xen's `tb_init_done`).
    on: AtomicBool,
    /// Classes and events traced (`tb_event_mask`, default `TRC_ALL`).
    evt_mask: AtomicU32,
    /// CPUs traced (`tb_cpu_mask`), one bit per CPU.
    cpu_mask: AtomicU64,
    /// Pages per CPU once allocated (Xen's `opt_tbuf_size`); 0: none yet.
    pages: AtomicU32,
    /// Their data bytes ([`abi::data_size`] of `pages`), for the writer.
    data_size: AtomicU32,
    /// The first frame of `t_info`, and its pages.
    t_info: AtomicU64,
    t_info_pages: AtomicU32,
}

/// The settings.
pub static TRACE: TraceSettings = TraceSettings {
    on: AtomicBool::new(false),
    evt_mask: AtomicU32::new(abi::TRC_ALL),
    cpu_mask: AtomicU64::new(!0),
    pages: AtomicU32::new(0),
    data_size: AtomicU32::new(0),
    t_info: AtomicU64::new(0),
    t_info_pages: AtomicU32::new(0),
};

/// One CPU's trace state.
pub struct TraceCpu {
    /// The first frame of its buffer (contiguous, `pages` long); 0: none.
    buf: AtomicU64,
    /// Records lost since the last one written, and the first one's TSC.
    lost: AtomicU32,
    lost_tsc: AtomicU64,
}

/// Each CPU's trace state, written only by that CPU (and by `DISABLE`,
/// which clears the lost counts under the hypervisor lock).
pub static PER_CPU_TRACE: [TraceCpu; MAX_CPUS as usize] =
    [const { TraceCpu { buf: AtomicU64::new(0), lost: AtomicU32::new(0), lost_tsc: AtomicU64::new(0) } }; MAX_CPUS as usize];

/// Whether tracing is on at all (a trace point that must read guest memory
/// to build its record tests this first; [`record`] checks the masks).
#[inline]
pub fn enabled() -> bool {
    cfg!(feature = "trace") && TRACE.on.load(Acquire)
}

/// The event mask when tracing is on and this CPU is traced (Xen's
/// `tb_init_done` and `tb_cpu_mask` checks of `__trace_var`), for a trace
/// point that tests several events against one load with
/// [`abi::event_in_mask`].
#[inline]
pub fn mask_here() -> Option<u32> {
    if !enabled() || TRACE.cpu_mask.load(Relaxed) & (1 << (this_cpu() & 63)) == 0 {
        return None;
    }
    Some(TRACE.evt_mask.load(Relaxed))
}

/// Whether a record of `event` would be written now on this CPU (Xen's
/// checks at the top of `__trace_var`): trace points test this before
/// they build a record.
#[inline]
pub fn on(event: u32) -> bool {
    mask_here().is_some_and(|mask| abi::event_in_mask(mask, event))
}

/// Write `ev` into this CPU's buffer with the TSC, if it is traced.
pub fn record(ev: &Event) {
    if enabled() {
        record_at(ev, crate::arch::x86_64::clock::rdtsc());
    }
}

/// [`record`] with a TSC the trace point already read.
pub fn record_at(ev: &Event, tsc: u64) {
    let payload = ev.payload();
    if on(payload.event) {
        write(&payload, tsc);
    }
}

/// Write `payload` stamped `tsc` into this CPU's buffer, for a trace point
/// that already checked the masks ([`on`], [`mask_here`]): the hot path
/// (hypercall entry and exit), with no typed event and the `t_rec` words
/// stored straight into the ring.
#[inline]
pub fn write(payload: &abi::Payload, tsc: u64) {
    let cpu = this_cpu();
    let Some(state) = PER_CPU_TRACE.get(cpu) else { return };
    let data_size = TRACE.data_size.load(Relaxed);
    let Some(mem) = CpuBuf::new(state.buf.load(Relaxed), data_size) else { return };
    let lost = state.lost.load(Relaxed);
    match tbuf::write_fast(&mem, data_size, payload.header_with_tsc(), tsc, payload.words(), lost) {
        tbuf::Fast::Written { high_water } => {
            if high_water {
                notify_dom0();
            }
        }
        // Still full since the last loss (dom0 not reading): one more lost.
        tbuf::Fast::Lost => state.lost.store(lost.saturating_add(1), Relaxed),
        tbuf::Fast::Slow => write_slow(cpu, state, &mem, payload, tsc),
    }
}

/// [`write`] when a wrap or a lost-records record may be due, or the
/// buffer is full (or bogus): `tbuf::insert`'s full rules.
#[inline(never)]
fn write_slow(cpu: usize, state: &TraceCpu, mem: &CpuBuf, payload: &abi::Payload, tsc: u64) {
    let (words, n) = payload.encode_with_tsc(tsc);
    let before = Lost { count: state.lost.load(Relaxed), first_tsc: state.lost_tsc.load(Relaxed) };
    let mut lost = before;
    let outcome = tbuf::insert(mem, TRACE.data_size.load(Relaxed), &words[..n], &mut lost, current, tsc);
    if lost != before {
        state.lost.store(lost.count, Relaxed);
        state.lost_tsc.store(lost.first_tsc, Relaxed);
    }
    match outcome {
        Outcome::Written { high_water: false } | Outcome::Lost => {}
        Outcome::Written { high_water: true } => notify_dom0(),
        Outcome::Bogus => bogus(cpu),
    }
}

/// Xen: a bogus ring index turns tracing off.
#[cold]
#[inline(never)]
fn bogus(cpu: usize) {
    TRACE.on.store(false, SeqCst);
    log::warn!("xentrace: cpu {cpu}: bogus cons/prod in the trace buffer; tracing disabled");
}

/// The domain and vCPU this CPU runs (for a lost-records record); the
/// idle vCPU of a CPU is numbered as the CPU, as Xen's and VCPU_SWITCH's.
fn current() -> (u16, u16) {
    let idle = (xen_public::DOMID_IDLE, this_cpu() as u16);
    crate::schedule::current_vcpu().map_or(idle, |v| crate::schedule::domid_of_slot(v.slot()).map_or(idle, |d| (d, v.vcpu_id() as u16)))
}

/// A buffer went past half full since dom0 was last told.
static TBUF_VIRQ_PENDING: AtomicBool = AtomicBool::new(false);

/// `VIRQ_TBUF` for dom0: noted here and raised by the scheduler when it
/// next looks at dom0 ([`take_tbuf_virq`]: wakes a blocked dom0, or before
/// a running one resumes), never from inside a trace point (which may run
/// with dom0's own domain locked), as Xen defers it to a tasklet.
fn notify_dom0() {
    TBUF_VIRQ_PENDING.store(true, SeqCst);
    // Idle CPUs look again, so a dom0 blocked on the VIRQ wakes.
    crate::schedule::kick();
}

/// Whether `VIRQ_TBUF` is due for dom0 (and no longer, once asked).
pub fn take_tbuf_virq() -> bool {
    TBUF_VIRQ_PENDING.swap(false, SeqCst)
}

/// One CPU's buffer in its frames (contiguous): the `t_buf` head, then
/// the data.
struct CpuBuf {
    first: u64,
    head: Frame,
    /// The byte after the data area: no write goes past it, whatever the
    /// ring arithmetic says.
    end: usize,
}

impl CpuBuf {
    /// The buffer whose first frame is `first` (0: none), with `data_size`
    /// data bytes after its head.
    #[inline]
    fn new(first: u64, data_size: u32) -> Option<CpuBuf> {
        if first == 0 {
            return None;
        }
        Some(CpuBuf { first, head: Frame::new(Mfn(first))?, end: 8 + data_size as usize })
    }
}

impl BufMem for CpuBuf {
    #[inline]
    fn cons(&self) -> u32 {
        self.head.load_u32(0)
    }
    #[inline]
    fn prod(&self) -> u32 {
        self.head.load_u32(4)
    }
    #[inline]
    fn set_prod(&self, prod: u32) {
        // Xen's `smp_wmb(); buf->prod = next;`: on x86 stores are not
        // reordered with stores, so a compiler fence after the record's
        // (volatile) stores is the barrier, and no locked store is needed.
        core::sync::atomic::compiler_fence(Release);
        self.head.write_u32(4, prod);
    }
    #[inline]
    fn write_words(&self, off: u32, words: &[u32]) {
        // The data starts after the 8-byte head; words never cross a page
        // (4-aligned), a record may (the pages are contiguous frames).
        let start = 8 + off as usize;
        if start + 4 * words.len() > self.end {
            // tbuf's arithmetic keeps records inside the data area; a bug
            // there must not write the frames after the buffer.
            return;
        }
        let (page, in_page) = (start / 4096, start % 4096);
        if in_page + 4 * words.len() <= 4096 {
            let frame = if page == 0 { Some(self.head) } else { Frame::new(Mfn(self.first + page as u64)) };
            if let Some(f) = frame {
                f.write_u32s(in_page, words);
            }
            return;
        }
        for (i, &w) in words.iter().enumerate() {
            let at = start + 4 * i;
            if let Some(f) = Frame::new(Mfn(self.first + (at / 4096) as u64)) {
                f.write_u32(at % 4096, w);
            }
        }
    }
}

/// The largest buffer, in pages per CPU, that `t_info`'s 16-bit offsets
/// and `prod`'s range allow (Xen's `calculate_tbuf_size`).
fn max_pages(nr_cpus: u32) -> u32 {
    let by_prod = u32::MAX / 4096;
    let by_offset = (u32::from(u16::MAX) - abi::t_info_first_offset(MAX_CPUS)) / nr_cpus.saturating_sub(1).max(1);
    by_prod.min(u32::from(u16::MAX)).min(by_offset)
}

/// Allocate and share the buffers of every online CPU, `pages` each, and
/// start tracing (Xen's `alloc_trace_bufs`, which leaves tracing on).
pub fn alloc(pages: u32) -> Result<(), i64> {
    if TRACE.t_info.load(SeqCst) != 0 {
        return Err(-EBUSY);
    }
    if pages == 0 {
        return Err(-EINVAL);
    }
    let nr_cpus = CPUS_ONLINE.load(SeqCst).min(MAX_CPUS);
    let pages = pages.min(max_pages(nr_cpus));
    let layout = TInfoLayout { nr_cpus: MAX_CPUS, nr_cpu_ids: nr_cpus, pages: pages as u16 };
    let t_info_pages = layout.t_info_pages();
    let t_info = crate::mm::machine::alloc_contiguous(u64::from(t_info_pages)).ok_or(-ENOMEM)?;
    let mut bufs = [0u64; MAX_CPUS as usize];
    for cpu in 0..nr_cpus as usize {
        match crate::mm::machine::alloc_contiguous(u64::from(pages)) {
            Some(first) => bufs[cpu] = first.0,
            None => {
                // As Xen's out_dealloc: give back what was taken (none of
                // it is shared yet), so a retry cannot leak memory.
                give_back(t_info.0, u64::from(t_info_pages));
                for &first in &bufs[..cpu] {
                    give_back(first, u64::from(pages));
                }
                return Err(-ENOMEM);
            }
        }
    }
    let runs = || bufs.iter().take(nr_cpus as usize).map(|&b| (b, u64::from(pages))).chain([(t_info.0, u64::from(t_info_pages))]);
    let prepared = runs().try_for_each(|(first, n)| (0..n).try_for_each(|p| Frame::new(Mfn(first + p)).map(Frame::scrub).ok_or(-ENOMEM)));
    if let Err(e) = prepared.and_then(|()| write_t_info(t_info, &layout, &bufs)) {
        // Nothing is shared yet: every frame goes back, as above.
        runs().for_each(|(first, n)| give_back(first, n));
        return Err(e);
    }
    // Sharing frames this function just allocated cannot be refused; if
    // the frame table ever did, the frames shared so far stay with
    // DOMID_XEN (never mapped by anyone: t_info is not published), a
    // leak rather than a reuse.
    share(t_info.0, u64::from(t_info_pages))?;
    for &first in bufs.iter().take(nr_cpus as usize) {
        share(first, u64::from(pages))?;
    }
    for (cpu, &first) in bufs.iter().enumerate() {
        PER_CPU_TRACE[cpu].buf.store(first, SeqCst);
    }
    TRACE.data_size.store(abi::data_size(pages), SeqCst);
    TRACE.pages.store(pages, SeqCst);
    TRACE.t_info_pages.store(t_info_pages, SeqCst);
    TRACE.t_info.store(t_info.0, SeqCst);
    TRACE.on.store(true, SeqCst);
    log::info!("xentrace: {pages} trace pages on {nr_cpus} cpus, t_info mfn {:#x} ({t_info_pages} pages)", t_info.0);
    Ok(())
}

/// Return `n` frames from `first` (allocated here, never shared) to the
/// allocator.
fn give_back(first: u64, n: u64) {
    for m in first..first + n {
        crate::mm::machine::free_frame(Mfn(m));
    }
}

/// Fill `t_info`: `tbuf_size`, each CPU's `mfn_offset`, the MFN lists.
fn write_t_info(t_info: Mfn, layout: &TInfoLayout, bufs: &[u64]) -> Result<(), i64> {
    let put = |byte: u32, bytes: &[u8]| -> Result<(), i64> {
        let f = Frame::new(Mfn(t_info.0 + u64::from(byte / 4096))).ok_or(-ENOMEM)?;
        f.write_bytes((byte % 4096) as usize, bytes);
        Ok(())
    };
    put(0, &layout.pages.to_le_bytes())?;
    for cpu in 0..layout.nr_cpu_ids {
        let off = layout.mfn_offset(cpu);
        put(2 + 2 * cpu, &(off as u16).to_le_bytes())?;
        for page in 0..u32::from(layout.pages) {
            let mfn = bufs[cpu as usize] + u64::from(page);
            put(4 * (off + page), &(mfn as u32).to_le_bytes())?;
        }
    }
    Ok(())
}

/// Share `n` frames from `first` with privileged domains.
fn share(first: u64, n: u64) -> Result<(), i64> {
    let mut ftg = crate::mm::machine::FRAME_TABLE.lock();
    let ft = ftg.as_mut().ok_or(-ENOMEM)?;
    for m in first..first + n {
        ft.share_with_privileged(m).map_err(|_| -EBUSY)?;
    }
    Ok(())
}

/// `XEN_SYSCTL_tbuf_op` (Xen's `tb_control`), from the privileged domain;
/// `read_bitmap(handle, buf)` copies a CPU bitmap from its memory. The
/// decisions and errnos are `trace_control.rs`'s; this is the live state.
pub fn tb_control(op: &mut XenSysctlTbufOp, read_bitmap: impl Fn(u64, &mut [u8]) -> bool) -> i64 {
    crate::trace_control::tb_control(&mut LiveCtl, op, read_bitmap)
}

/// The live trace settings and buffers, for `tb_control`.
struct LiveCtl;

impl crate::trace_control::TraceCtl for LiveCtl {
    fn evt_mask(&self) -> u32 {
        TRACE.evt_mask.load(SeqCst)
    }
    fn set_evt_mask(&mut self, mask: u32) {
        TRACE.evt_mask.store(mask, SeqCst);
    }
    fn set_cpu_mask(&mut self, mask: u64) {
        TRACE.cpu_mask.store(mask, SeqCst);
    }
    fn nr_cpu_ids(&self) -> u32 {
        MAX_CPUS
    }
    fn pages(&self) -> u32 {
        TRACE.pages.load(SeqCst)
    }
    fn t_info(&self) -> (u64, u32) {
        (TRACE.t_info.load(SeqCst), TRACE.t_info_pages.load(SeqCst))
    }
    fn alloc(&mut self, pages: u32) -> Result<(), i64> {
        alloc(pages)
    }
    fn set_on(&mut self, on: bool) {
        TRACE.on.store(on, SeqCst);
    }
    fn clear_lost(&mut self) {
        for c in &PER_CPU_TRACE {
            c.lost.store(0, SeqCst);
        }
    }
}
