//! `memory_op`: a domain's reservation (XENMEM_increase_reservation,
//! decrease_reservation, populate_physmap) and the size queries
//! (maximum_ram_page, current_reservation, maximum_reservation), for the
//! caller itself or, for the privileged domain (a domain builder), another
//! domain. Generic over the caller's memory ([`GuestAccess`]) and over the
//! machine ([`MemoryHost`]: other domains, and through [`FrameHost`] the
//! frame allocator, the frame table and the M2P), so decoding, errno and
//! the frame accounting are tested on the host.
//!
//! Also the machine and M2P queries a PV kernel makes at boot
//! (machine_memory_map for the privileged domain, memory_map,
//! machphys_mapping, machphys_mfn_list, maximum_gpfn) and XENMEM_exchange,
//! as Xen 4.17's `common/memory.c`, `arch/x86/mm.c` and `x86_64/mm.c`
//! answer them.
//!
//! Invariants: a domain never has more than `max_pages` frames
//! (`nr_pages` counts every frame it was given, even one whose number the
//! extent list could not take); a frame is given back only by its owner,
//! only when nothing else references it (the frame table's `release`), and
//! never when it is one of the hypervisor's special frames (shared_info,
//! grant-table frames). An unprivileged domain names no other domain.
#![forbid(unsafe_code)]

use super::Domain;
use super::guest_mem::GuestAccess;
use super::host::{Domains, FrameHost};
use crate::mm::Mfn;
use xen_public::errno::{EFAULT, EINVAL, ENOMEM, ENOSYS, EPERM, ESRCH};
use xen_public::memory::{
    E820_RESERVED, E820Entry, XENMEM_CURRENT_RESERVATION, XENMEM_DECREASE_RESERVATION, XENMEM_EXCHANGE, XENMEM_INCREASE_RESERVATION,
    XENMEM_MACHINE_MEMORY_MAP, XENMEM_MACHPHYS_MAPPING, XENMEM_MACHPHYS_MFN_LIST, XENMEM_MAXIMUM_GPFN, XENMEM_MAXIMUM_RAM_PAGE,
    XENMEM_MAXIMUM_RESERVATION, XENMEM_MEMORY_MAP, XENMEM_POPULATE_PHYSMAP, XenMachphysMapping, XenMachphysMfnList, XenMemoryDomain,
    XenMemoryExchange, XenMemoryMap, XenMemoryReservation,
};

/// A hypercall's result for the guest's RAX (a negated errno on failure).
type Ret = i64;

/// The command bits of `memory_op`'s `cmd` (the rest, `MEMOP_EXTENT_SHIFT`
/// and up, is a continuation's start extent, which Xen keeps there).
const MEMOP_CMD_MASK: u64 = 0x3f;
/// `MEMOP_EXTENT_SHIFT`: the continuation's start extent sits above the
/// command (commands that take none refuse a non-zero one).
const MEMOP_EXTENT_SHIFT: u32 = 6;

/// Extents done per call at most (no continuation: the caller sees how
/// many were done and asks again for the rest).
pub const EXTENTS_PER_CALL: u64 = 512;

/// What `memory_op` needs from the machine beyond the caller's domain
/// and the frames ([`FrameHost`]).
pub trait MemoryHost: FrameHost + Domains + super::host::CpuTlb {
    /// Frames the allocator has free.
    fn free_frames(&self) -> u64;
    /// Entries of the M2P: one past the highest machine frame.
    fn m2p_entries(&self) -> u64;
    /// Run `f` on the domain `domid`, never the caller's own (`None` if it
    /// does not exist), with the host itself for what `f` needs of it.
    fn with_domain<R>(&mut self, domid: u16, f: impl FnOnce(&mut Domain, &mut Self) -> R) -> Option<R>;
    /// The machine's E820 map as the boot loader gave it, in order.
    fn machine_e820(&self) -> &[E820Entry];
    /// First frame of the M2P table (its frames are contiguous).
    fn m2p_base(&self) -> u64;
    /// `arch.max_pfn` of `d`'s shared_info (its guest writes it).
    fn shared_max_pfn(&self, d: &Domain) -> u64;
    /// `2^order` contiguous zeroed free frames, all below frame `limit`
    /// (`None`: there are none).
    fn alloc_extent(&mut self, order: u32, limit: u64) -> Option<Mfn>;
}

/// E820 entries kept at most (Xen's `E820MAX` is larger; a boot loader's
/// map longer than this keeps its first entries).
pub const E820_MAX: usize = 128;

/// The machine's E820 map, in the boot loader's order.
#[derive(Clone, Copy)]
pub struct E820Map {
    entries: [E820Entry; E820_MAX],
    nr: usize,
}

impl E820Map {
    /// The first [`E820_MAX`] of `areas` (`(base, length, type)`).
    pub fn new(areas: impl IntoIterator<Item = (u64, u64, u32)>) -> Self {
        let mut m = E820Map { entries: [E820Entry::default(); E820_MAX], nr: 0 };
        for (addr, size, type_) in areas.into_iter().take(E820_MAX) {
            m.entries[m.nr] = E820Entry { addr, size, type_ };
            m.nr += 1;
        }
        m
    }

    /// The entries.
    pub fn entries(&self) -> &[E820Entry] {
        &self.entries[..self.nr]
    }
}

/// Read-only M2P window as xen-core maps it in every guest
/// (`arch/x86_64/paging.rs`: `RO_MPT_VIRT_START`, 1 GiB).
pub const M2P_VIRT_START: u64 = xen_public::MACH2PHYS_VIRT_START;
/// End of that window.
pub const M2P_VIRT_END: u64 = M2P_VIRT_START + (1 << 30);

/// The largest extent order a domain may ask for (Xen 4.17's
/// `max_order`): 18 (`MAX_ORDER`) for the control domain, 9
/// (`CONFIG_DOMU_MAX_ORDER`) for the others.
pub fn max_order(d: &Domain) -> u32 {
    if d.privileged { 18 } else { 9 }
}

/// Whether `dom` names the caller `d` (DOMID_SELF or its own id).
fn is_self(d: &Domain, dom: u16) -> bool {
    dom == xen_public::DOMID_SELF || dom == d.domid
}

/// `memory_op(cmd, arg)` from `d`, whose memory is `mem`: reservations and
/// the physmap, in extents of order 0 (larger orders are -EINVAL here,
/// where Xen would allocate them; a frame given back must have no other
/// reference), XENMEM_exchange, and the queries: maximum RAM page and
/// gpfn, the machine memory map (privileged), the M2P's place and frames,
/// current and maximum reservation.
pub fn memory_op<H: MemoryHost>(h: &mut H, d: &mut Domain, mem: &impl GuestAccess, cmd: u64, arg: u64) -> Ret {
    match cmd & MEMOP_CMD_MASK {
        XENMEM_MAXIMUM_RAM_PAGE => h.m2p_entries().saturating_sub(1) as i64,
        op @ (XENMEM_CURRENT_RESERVATION | XENMEM_MAXIMUM_RESERVATION | XENMEM_MAXIMUM_GPFN) => {
            if cmd >> MEMOP_EXTENT_SHIFT != 0 {
                return -EINVAL;
            }
            let Ok(XenMemoryDomain { domid: dom }) = mem.copy_from::<XenMemoryDomain>(arg) else { return -EFAULT };
            let pick = |o: &Domain, h: &H| match op {
                XENMEM_CURRENT_RESERVATION => o.nr_pages as i64,
                XENMEM_MAXIMUM_RESERVATION => o.max_pages as i64,
                // Xen's domain_get_maximum_gpfn for PV: the guest's
                // shared_info max_pfn (a count) less one.
                _ => h.shared_max_pfn(o).max(1) as i64 - 1,
            };
            if is_self(d, dom) {
                return pick(d, h);
            }
            if !d.privileged {
                return -EPERM;
            }
            h.with_domain(dom, |o, h| pick(o, h)).unwrap_or(-ESRCH)
        }
        XENMEM_EXCHANGE if cmd >> MEMOP_EXTENT_SHIFT != 0 => -EINVAL,
        XENMEM_EXCHANGE => exchange(h, d, mem, arg),
        // Arch sub-ops: Xen matches the whole `cmd`, so a start extent
        // makes them unknown (-ENOSYS).
        XENMEM_MEMORY_MAP | XENMEM_MACHINE_MEMORY_MAP | XENMEM_MACHPHYS_MAPPING | XENMEM_MACHPHYS_MFN_LIST if cmd >> MEMOP_EXTENT_SHIFT != 0 => {
            -ENOSYS
        }
        // The domain's own E820: Xen 4.17 has one only after the toolstack
        // set it (XENMEM_set_memory_map, which xen-core does not have), and
        // answers -ENOSYS otherwise; Linux then uses one RAM entry of its
        // pages.
        XENMEM_MEMORY_MAP => match mem.copy_from::<XenMemoryMap>(arg) {
            Ok(_) => -ENOSYS,
            Err(_) => -EFAULT,
        },
        XENMEM_MACHINE_MEMORY_MAP => {
            if !d.privileged {
                return -EPERM;
            }
            let Some((permitted, io_apics)) = h.with_ft(|ft, _| (ft.machine().dom0_iomem, ft.machine().mmio_ro)) else { return -EINVAL };
            machine_memory_map(h.machine_e820(), &permitted, &io_apics, mem, arg)
        }
        XENMEM_MACHPHYS_MAPPING => {
            // The hardware domain learns the M2P's real extent, others
            // the whole window (Xen without memory hotplug).
            let max_mfn = if d.privileged { h.m2p_entries().saturating_sub(1) } else { (M2P_VIRT_END - M2P_VIRT_START) / 8 - 1 };
            let m = XenMachphysMapping { v_start: M2P_VIRT_START, v_end: M2P_VIRT_END, max_mfn };
            super::guest_mem::rc(mem.copy_to(arg, &m))
        }
        XENMEM_MACHPHYS_MFN_LIST => machphys_mfn_list(h.m2p_base(), h.m2p_entries(), mem, arg),
        op @ (XENMEM_INCREASE_RESERVATION | XENMEM_DECREASE_RESERVATION | XENMEM_POPULATE_PHYSMAP) => {
            let Ok(r) = mem.copy_from::<XenMemoryReservation>(arg) else { return -EFAULT };
            let (list, nr, order, dom) = (r.extent_start, r.nr_extents, r.extent_order, r.domid);
            if order != 0 {
                return -EINVAL;
            }
            if is_self(d, dom) {
                return reservation(h, d, op, list, nr, mem);
            }
            // Another domain: only the privileged domain (a domain builder).
            if !d.privileged {
                return -EPERM;
            }
            h.with_domain(dom, |o, h| reservation(h, o, op, list, nr, mem)).unwrap_or(-ESRCH)
        }
        _ => -ENOSYS,
    }
}

/// XENMEM_machine_memory_map (Xen 4.17's `arch_memory_op`): the machine's
/// E820 entries, with an E820_RESERVED entry for each part of a hole
/// between them that the privileged domain may not map (outside
/// `permitted`, or an I/O APIC frame), below `2^PADDR_BITS`. A buffer
/// that cannot hold every entry plus one is -EINVAL (nothing written past
/// what fitted); a NULL buffer only counts them.
fn machine_memory_map(
    e820: &[E820Entry],
    permitted: &super::iocap::RangeSet,
    io_apics: &super::iocap::RangeSet,
    mem: &impl GuestAccess,
    arg: u64,
) -> Ret {
    let Ok(mut map) = mem.copy_from::<XenMemoryMap>(arg) else { return -EFAULT };
    let store = map.buffer != 0;
    let nr_map = e820.len() as u64;
    if store && u64::from(map.nr_entries) < nr_map + 1 {
        return -EINVAL;
    }
    let mut c = MapCtx { s: 0, n: 0, store, nr_entries: u64::from(map.nr_entries), buffer: map.buffer };
    for (i, e) in e820.iter().enumerate() {
        let s = e.addr >> 12;
        if s > c.s {
            let r = report_ranges(permitted, io_apics, c.s, s - 1, &mut c, mem).and_then(|()| c.iomem_range(io_apics, s, s, mem));
            if let Err(rc) = r {
                return rc;
            }
        }
        if store {
            if c.nr_entries <= c.n + (nr_map - i as u64) {
                return -EINVAL;
            }
            if mem.copy_to(c.buffer.wrapping_add(c.n.wrapping_mul(20)), e).is_err() {
                return -EFAULT;
            }
        }
        c.s = e.addr.saturating_add(e.size).div_ceil(4096);
        c.n += 1;
    }
    if c.s != 0 {
        let r = report_ranges(permitted, io_apics, c.s, u64::MAX, &mut c, mem)
            .and_then(|()| if c.s != 0 { c.iomem_range(io_apics, u64::MAX, u64::MAX, mem) } else { Ok(()) });
        if let Err(rc) = r {
            return rc;
        }
    }
    map.nr_entries = c.n as u32;
    super::guest_mem::rc(mem.copy_to(arg, &map))
}

/// Xen's `memory_map_context`: the next frame not yet described (`s`),
/// entries so far (`n`) and the caller's buffer.
struct MapCtx {
    s: u64,
    n: u64,
    store: bool,
    nr_entries: u64,
    buffer: u64,
}

impl MapCtx {
    /// Xen's `_handle_iomem_range`: `[s, e]` may be mapped, so what lies
    /// between the last described frame and `s` is reserved.
    fn one_range(&mut self, s: u64, e: u64, mem: &impl GuestAccess) -> Result<(), Ret> {
        if s > self.s && s >> (super::iocap::PADDR_BITS - 12) == 0 {
            if self.store {
                if self.n + 1 >= self.nr_entries {
                    return Err(-EINVAL);
                }
                let ent = E820Entry { addr: self.s << 12, size: (s - self.s) << 12, type_: E820_RESERVED };
                mem.copy_to(self.buffer.wrapping_add(self.n.wrapping_mul(20)), &ent).map_err(|_| -EFAULT)?;
            }
            self.n += 1;
        }
        self.s = e.wrapping_add(1);
        Ok(())
    }

    /// Xen's `handle_iomem_range`: as [`Self::one_range`], with the I/O
    /// APIC frames inside `[s, e]` taken out.
    fn iomem_range(&mut self, io_apics: &super::iocap::RangeSet, mut s: u64, e: u64, mem: &impl GuestAccess) -> Result<(), Ret> {
        loop {
            let low = io_apics.ranges().iter().filter(|&&(a, b)| b >= s && a <= e).map(|&(a, _)| a.max(s)).min();
            let Some(low) = low else { break };
            if s < low {
                self.one_range(s, low - 1, mem)?;
            }
            s = low + 1;
        }
        if s > e { Ok(()) } else { self.one_range(s, e, mem) }
    }
}

/// Xen's `rangeset_report_ranges`: each range of `permitted` within
/// `[s, e]`, clipped to it, in order.
fn report_ranges(
    permitted: &super::iocap::RangeSet,
    io_apics: &super::iocap::RangeSet,
    s: u64,
    e: u64,
    c: &mut MapCtx,
    mem: &impl GuestAccess,
) -> Result<(), Ret> {
    for &(a, b) in permitted.ranges() {
        if b < s || a > e {
            continue;
        }
        c.iomem_range(io_apics, a.max(s), b.min(e), mem)?;
    }
    Ok(())
}

/// XENMEM_machphys_mfn_list (Xen's `subarch_memory_op`): the frame
/// backing each 2 MiB of the M2P, up to `max_extents`, and how many.
/// xen-core's M2P is one contiguous run of frames from `base`.
fn machphys_mfn_list(base: u64, entries: u64, mem: &impl GuestAccess, arg: u64) -> Ret {
    let Ok(mut l) = mem.copy_from::<XenMachphysMfnList>(arg) else { return -EFAULT };
    let chunks = (entries * 8).div_ceil(1 << 21);
    let mut i = 0u32;
    while i != l.max_extents && u64::from(i) < chunks {
        let mfn = base + u64::from(i) * 512;
        if mem.copy_to(l.extent_start.wrapping_add(u64::from(i) * 8), &mfn).is_err() {
            return -EFAULT;
        }
        i += 1;
    }
    l.nr_extents = i;
    super::guest_mem::rc(mem.copy_to(arg, &l))
}

/// Frames an exchange handles in one step at most: 2^9 (a chunk is
/// `2^max(in order, out order)` frames; larger chunks are -ENOMEM here,
/// where Xen, for the control domain, goes up to 2^18).
pub const EXCHANGE_CHUNK_MAX_ORDER: u32 = 9;

/// XENMEM_exchange (Xen 4.17's `memory_exchange`) for the caller's own
/// frames: each chunk of input extents (frames the domain owns with no
/// reference but their allocation, not special) is given back and
/// replaced by fresh output extents, below the address bits the caller
/// asked for, whose gpfns the output list names (the M2P follows) and
/// whose mfns are written back to it. A chunk is all or nothing;
/// `nr_exchanged` tells the caller how many input extents were done.
fn exchange<H: MemoryHost>(h: &mut H, d: &mut Domain, mem: &impl GuestAccess, arg: u64) -> Ret {
    const NR_EXCHANGED: u64 = core::mem::offset_of!(XenMemoryExchange, nr_exchanged) as u64;
    let Ok(mut x) = mem.copy_from::<XenMemoryExchange>(arg) else { return -EFAULT };
    let put_done = |x: &XenMemoryExchange, rc: Ret| if mem.copy_to(arg + NR_EXCHANGED, &x.nr_exchanged).is_err() { -EFAULT } else { rc };
    let (inp, out) = (x.in_, x.out);
    if inp.extent_order.max(out.extent_order) > max_order(d) {
        return put_done(&x, -EPERM);
    }
    let sizes_ok = inp.extent_order < 64
        && out.extent_order < 64
        && (!0u64 >> inp.extent_order) >= inp.nr_extents
        && (!0u64 >> out.extent_order) >= out.nr_extents
        && (inp.nr_extents << inp.extent_order) == (out.nr_extents << out.extent_order);
    if x.nr_exchanged > inp.nr_extents || inp.domid != out.domid || !sizes_ok {
        return put_done(&x, -EINVAL);
    }
    if x.nr_exchanged == inp.nr_extents {
        return 0;
    }
    let (in_chunk, out_chunk) =
        if inp.extent_order <= out.extent_order { (out.extent_order - inp.extent_order, 0) } else { (0, inp.extent_order - out.extent_order) };
    // Xen's guest_handle_subrange_okay: the lists' remaining parts must
    // be guest addresses.
    let in_at = inp.extent_start.wrapping_add(x.nr_exchanged.wrapping_mul(8));
    let out_first = if in_chunk > 0 { x.nr_exchanged >> in_chunk } else { x.nr_exchanged << out_chunk };
    let out_at = out.extent_start.wrapping_add(out_first.wrapping_mul(8));
    if !crate::mm::guest_walk::guest_va_ok(in_at) || !crate::mm::guest_walk::guest_va_ok(out_at) {
        return put_done(&x, -EFAULT);
    }
    // Xen's propagate_node: a node for the privileged domain must be
    // below MAX_NUMNODES (64); others may not insist on one.
    let node = xen_public::memory::xenmemf_get_node(out.mem_flags);
    let node_ok = node == 0xff || if d.privileged { node < 64 } else { out.mem_flags & xen_public::memory::XENMEMF_EXACT_NODE_REQUEST == 0 };
    if !node_ok {
        return put_done(&x, -EINVAL);
    }
    if !is_self(d, inp.domid) {
        let rc = if h.exists(inp.domid) { -EPERM } else { -ESRCH };
        return put_done(&x, rc);
    }
    let bits = xen_public::memory::xenmemf_get_address_bits(out.mem_flags);
    // A frame limit: below 2^bits bytes (0: none; fewer bits than a page
    // leave no frame).
    let limit = match bits {
        0 | 64.. => u64::MAX,
        1..=12 => 0,
        b => 1u64 << (b - 12),
    };
    let shape = ChunkShape { inp, out, in_chunk, out_chunk, order: in_chunk + inp.extent_order, limit };
    let first = x.nr_exchanged >> in_chunk;
    for i in first..(inp.nr_extents >> in_chunk) {
        // Xen's hypercall_preempt_check between chunks: the progress goes
        // to nr_exchanged and the same call is issued again (-ERESTART).
        if i > first && h.preempt_due() {
            x.nr_exchanged = i << in_chunk;
            return put_done(&x, -xen_public::errno::ERESTART);
        }
        if let Err(rc) = exchange_chunk(h, d, mem, &shape, i) {
            x.nr_exchanged = i << in_chunk;
            return put_done(&x, rc);
        }
    }
    x.nr_exchanged = inp.nr_extents;
    put_done(&x, 0)
}

/// Give back the extents of `2^order` frames at `bases`.
fn free_extents<H: MemoryHost>(h: &mut H, bases: &[u64], order: u32) {
    for &m in bases {
        for k in 0..(1u64 << order) {
            h.free_frame(Mfn(m + k));
        }
    }
}

/// What every chunk of one [`exchange`] shares.
struct ChunkShape {
    /// The input and output reservations (lists, orders, flags).
    inp: XenMemoryReservation,
    out: XenMemoryReservation,
    /// log2 of the input extents per chunk, and of the output extents.
    in_chunk: u32,
    out_chunk: u32,
    /// log2 of the frames per chunk.
    order: u32,
    /// Output frames must be below this frame number.
    limit: u64,
}

/// One chunk of [`exchange`]: chunk `i`'s `2^chunk_order` input frames
/// are checked, the output extents allocated, then the inputs given back
/// and the outputs given to `d`. On error nothing changed, except that an
/// output list slot that cannot be written fails the chunk after the
/// frames moved (as Xen, which then reports the chunk as not done).
fn exchange_chunk<H: MemoryHost>(h: &mut H, d: &mut Domain, mem: &impl GuestAccess, shape: &ChunkShape, i: u64) -> Result<(), Ret> {
    const MAX: usize = 1 << EXCHANGE_CHUNK_MAX_ORDER;
    let ChunkShape { inp, out, in_chunk, out_chunk, order: chunk_order, limit } = shape;
    let (in_chunk, out_chunk, limit) = (*in_chunk, *out_chunk, *limit);
    if *chunk_order > EXCHANGE_CHUNK_MAX_ORDER {
        return Err(-ENOMEM);
    }
    // The input frames, read once (the guest may rewrite its list).
    let mut frames = [0u64; MAX];
    let mut nr = 0;
    for j in 0..(1u64 << in_chunk) {
        let slot = inp.extent_start.wrapping_add(((i << in_chunk) + j).wrapping_mul(8));
        let gmfn = mem.copy_from::<u64>(slot).map_err(|_| -EFAULT)?;
        for k in 0..(1u64 << inp.extent_order) {
            frames[nr] = gmfn.wrapping_add(k);
            nr += 1;
        }
    }
    let domid = d.domid;
    if frames[..nr].iter().enumerate().any(|(n, &m)| frames[..n].contains(&m) || d.is_special_frame(m)) {
        return Err(-EINVAL);
    }
    // Inputs that could never be given back fail the chunk before
    // anything is allocated, as Xen steals them first: a list of garbage
    // costs no allocation (the hypervisor lock keeps the answer valid
    // until the release below, which checks again under the same lock).
    let releasable = h.with_ft(|ft, _| frames[..nr].iter().all(|&m| ft.can_release(m, domid))).unwrap_or(false);
    if !releasable {
        return Err(-EINVAL);
    }
    // The output extents next: a chunk that cannot get them changes
    // nothing.
    let mut outs = [0u64; MAX];
    let nr_out = 1usize << out_chunk;
    for o in 0..nr_out {
        match h.alloc_extent(out.extent_order, limit) {
            Some(m) => outs[o] = m.0,
            None => {
                free_extents(h, &outs[..o], out.extent_order);
                return Err(-ENOMEM);
            }
        }
    }
    // Xen's steal_page, for every input at once under one frame-table
    // lock: each must be releasable (the domain's, no reference but its
    // allocation, no type, not pinned, not half validated); if one is
    // not, none is taken and the outputs go back. Then the domain holds
    // exactly as many frames as before the chunk.
    let mut pm = h.page_mem();
    let stolen = h
        .with_ft(|ft, _| {
            if !frames[..nr].iter().all(|&m| ft.can_release(m, domid)) {
                return false;
            }
            frames[..nr].iter().all(|&m| ft.release(&mut pm, m, domid))
        })
        .unwrap_or(false);
    if !stolen {
        free_extents(h, &outs[..nr_out], out.extent_order);
        return Err(-EINVAL);
    }
    for &mfn in &frames[..nr] {
        h.free_frame(Mfn(mfn));
        d.nr_pages -= 1;
    }
    let mut rc = Ok(());
    for (o, &base) in outs[..nr_out].iter().enumerate() {
        for k in 0..(1u64 << out.extent_order) {
            let _ = h.with_ft(|ft, _| ft.assign(base + k, domid));
            d.nr_pages += 1;
        }
        let slot = out.extent_start.wrapping_add(((i << out_chunk) + o as u64).wrapping_mul(8));
        match mem.copy_from::<u64>(slot) {
            Ok(gpfn) => {
                for k in 0..(1u64 << out.extent_order) {
                    h.set_m2p(Mfn(base + k), gpfn.wrapping_add(k));
                }
                if mem.copy_to(slot, &base).is_err() {
                    rc = Err(-EFAULT);
                }
            }
            Err(_) => rc = Err(-EFAULT),
        }
    }
    rc
}

/// Do up to `nr` extents (at most [`EXTENTS_PER_CALL`]) of a reservation
/// change `op` for `d`, with the extent list at `list` in the caller's
/// memory `mem`; returns how many were done. It stops at the first extent
/// that cannot be done.
fn reservation<H: MemoryHost>(h: &mut H, d: &mut Domain, op: u64, list: u64, nr: u64, mem: &impl GuestAccess) -> Ret {
    let mut done = 0u64;
    while done < nr && done < EXTENTS_PER_CALL {
        // A list wrapping past the top of memory faults at the wrap (as
        // the release build's arithmetic always did).
        let slot = list.wrapping_add(done * 8);
        let ok = if op == XENMEM_DECREASE_RESERVATION { give_back(h, d, mem, slot) } else { take_one(h, d, op, mem, slot) };
        if !ok {
            break;
        }
        done += 1;
    }
    done as i64
}

/// One extent of XENMEM_decrease_reservation: the frame whose number is at
/// `slot` goes back to the allocator if `d` owns it and nothing else
/// references it; `false` (stop) otherwise.
fn give_back<H: MemoryHost>(h: &mut H, d: &mut Domain, mem: &impl GuestAccess, slot: u64) -> bool {
    let Ok(mfn) = mem.copy_from::<u64>(slot) else { return false };
    // shared_info and grant frames are the hypervisor's to write.
    let mut pm = h.page_mem();
    let released = !d.is_special_frame(mfn) && h.with_ft(|ft, _| ft.release(&mut pm, mfn, d.domid)).unwrap_or(false);
    if !released {
        return false;
    }
    h.free_frame(Mfn(mfn));
    d.nr_pages -= 1;
    true
}

/// One extent of XENMEM_increase_reservation or populate_physmap: a new
/// frame for `d` (within `max_pages`), its number written to `slot`; for
/// populate_physmap the gfn read from `slot` goes to the M2P first.
/// `false` (stop) when it cannot be done.
fn take_one<H: MemoryHost>(h: &mut H, d: &mut Domain, op: u64, mem: &impl GuestAccess, slot: u64) -> bool {
    if d.nr_pages >= d.max_pages {
        return false;
    }
    let gpfn = if op == XENMEM_POPULATE_PHYSMAP { mem.copy_from::<u64>(slot).ok() } else { None };
    if op == XENMEM_POPULATE_PHYSMAP && gpfn.is_none() {
        return false;
    }
    let Some(mfn) = h.alloc_frame() else { return false };
    if h.with_ft(|ft, _| ft.assign(mfn.0, d.domid).is_err()).unwrap_or(true) {
        h.free_frame(mfn);
        return false;
    }
    if let Some(g) = gpfn {
        h.set_m2p(mfn, g);
    }
    // The frame is the domain's now: count it even if the list cannot
    // take its number (as Xen, which then stops, not counting the extent
    // as done), so max_mem always holds.
    d.nr_pages += 1;
    mem.write(slot, &mfn.0.to_le_bytes()).is_ok()
}

#[cfg(test)]
pub mod tests {
    //! A fake machine for `memory_op` (and, through [`FakeMachine`], for
    //! the control operations' tests): a frame table over 64 frames, a
    //! pool of free frames, an M2P and other domains by id.
    use super::*;
    use crate::domain::Guest;
    use crate::domain::guest_mem::tests::FakeGuest;
    use crate::mm::page_type::tests::TestMem;
    use crate::mm::page_type::{FrameTable, PageInfo};
    use std::collections::{BTreeMap, BTreeSet};
    use std::vec::Vec;

    /// A frame allocator over a set of free frames, lowest first.
    #[derive(Default)]
    pub struct Pool {
        /// Free frames.
        pub free: BTreeSet<u64>,
        /// Frames given back, in order.
        pub freed: Vec<u64>,
    }

    impl Pool {
        /// The lowest free frame.
        pub fn alloc(&mut self) -> Option<Mfn> {
            self.free.pop_first().map(Mfn)
        }
        /// Give a frame back (once).
        pub fn free(&mut self, mfn: Mfn) {
            assert!(self.free.insert(mfn.0), "frame {:#x} freed twice", mfn.0);
            self.freed.push(mfn.0);
        }
        /// Frames free.
        pub fn free_count(&self) -> u64 {
            self.free.len() as u64
        }
    }

    /// Frames of the fake machine.
    pub const FRAMES: u64 = 64;

    /// The machine around the calling domain: frames, M2P, other domains.
    pub struct FakeMachine {
        /// The frame table (over leaked storage, as the live one).
        pub ft: FrameTable<'static>,
        /// Whether the frame table is locked (a second lock would deadlock
        /// on the machine).
        pub locked: bool,
        /// Page-table memory (the frame table's handles share it).
        pub mem: TestMem,
        /// The allocator.
        pub pool: Pool,
        /// M2P entries set.
        pub m2p: BTreeMap<u64, u64>,
        /// Other domains, by id.
        pub others: BTreeMap<u16, Box<Guest>>,
        /// What only the control operations' tests look at.
        pub ctl: crate::domain::control_ops::tests::Ctl,
        /// The machine's E820 map.
        pub e820: Vec<E820Entry>,
        /// `arch.max_pfn` in every domain's shared_info.
        pub max_pfn: u64,
        /// Calls of `preempt_due` so far, and after how many it says yes
        /// (`None`: never).
        pub preempt_calls: u64,
        /// See `preempt_calls`.
        pub preempt_after: Option<u64>,
        /// Calls of `alloc_extent` so far.
        pub extent_allocs: u64,
    }

    impl Default for FakeMachine {
        fn default() -> Self {
            let frames: &'static mut [PageInfo] = Vec::leak(std::vec![PageInfo::FREE; FRAMES as usize]);
            // Frames 0-15 are the hypervisor's; the rest start free.
            let pool = Pool { free: (16..FRAMES).collect(), freed: Vec::new() };
            FakeMachine {
                ft: FrameTable::new(frames),
                locked: false,
                mem: TestMem::default(),
                pool,
                m2p: BTreeMap::new(),
                others: BTreeMap::new(),
                ctl: Default::default(),
                e820: Vec::new(),
                max_pfn: 0,
                preempt_calls: 0,
                preempt_after: None,
                extent_allocs: 0,
            }
        }
    }

    impl FakeMachine {
        /// Give `n` frames from the pool to `d` (as its builder would).
        pub fn give(&mut self, d: &mut Domain, n: u64) -> Vec<u64> {
            (0..n)
                .map(|_| {
                    let mfn = self.pool.alloc().unwrap().0;
                    self.ft.assign(mfn, d.domid).unwrap();
                    d.nr_pages += 1;
                    mfn
                })
                .collect()
        }
        /// The owner of `mfn` in the frame table.
        pub fn owner(&self, mfn: u64) -> u16 {
            self.ft.info(mfn).unwrap().owner
        }
        /// Add another domain.
        pub fn add(&mut self, domid: u16, max_pages: u64) {
            let mut o = Domain::empty(domid, false, Mfn(0));
            o.max_pages = max_pages;
            self.others.insert(domid, Box::new(Guest::new(o)));
        }
        /// Another domain's state.
        pub fn other(&self, domid: u16) -> &Domain {
            &self.others[&domid].domain
        }
        /// [`MemoryHost::with_domain`] with the vCPUs: the guest is taken
        /// out of the map while `f` runs (so a nested lookup of it fails,
        /// as a held slot lock does on the live machine).
        pub fn take_guest<R>(&mut self, domid: u16, f: impl FnOnce(&mut Guest, &mut Self) -> R) -> Option<R> {
            let mut g = self.others.remove(&domid)?;
            let r = f(&mut g, self);
            self.others.insert(domid, g);
            Some(r)
        }
    }

    impl FrameHost for FakeMachine {
        type Pm = TestMem;
        fn page_mem(&self) -> TestMem {
            self.mem.clone()
        }
        fn with_ft<R>(&mut self, f: impl FnOnce(&mut FrameTable<'_>, &mut Self) -> R) -> Option<R> {
            assert!(!self.locked, "frame table locked twice");
            let mut ft = core::mem::replace(&mut self.ft, FrameTable::new(&mut []));
            self.locked = true;
            let r = f(&mut ft, self);
            self.locked = false;
            self.ft = ft;
            Some(r)
        }
        fn alloc_frame(&mut self) -> Option<Mfn> {
            self.pool.alloc()
        }
        fn free_frame(&mut self, mfn: Mfn) {
            self.pool.free(mfn);
        }
        fn set_m2p(&mut self, mfn: Mfn, gfn: u64) {
            self.m2p.insert(mfn.0, gfn);
        }
    }

    impl Domains for FakeMachine {
        fn exists(&self, domid: u16) -> bool {
            self.ctl.caller == Some(domid) || self.others.contains_key(&domid)
        }
        fn next_domid_from(&self, from: u16) -> Option<u16> {
            self.others.keys().copied().chain(self.ctl.caller).filter(|&id| id >= from).min()
        }
    }

    impl MemoryHost for FakeMachine {
        fn free_frames(&self) -> u64 {
            self.pool.free_count()
        }
        fn m2p_entries(&self) -> u64 {
            FRAMES
        }
        fn with_domain<R>(&mut self, domid: u16, f: impl FnOnce(&mut Domain, &mut Self) -> R) -> Option<R> {
            self.take_guest(domid, |g, h| f(&mut g.domain, h))
        }
        fn machine_e820(&self) -> &[E820Entry] {
            &self.e820
        }
        fn m2p_base(&self) -> u64 {
            M2P_BASE
        }
        fn shared_max_pfn(&self, _d: &Domain) -> u64 {
            self.max_pfn
        }
        fn alloc_extent(&mut self, order: u32, limit: u64) -> Option<Mfn> {
            self.extent_allocs += 1;
            // The lowest run of 2^order free frames, as the live allocator.
            let n = 1u64 << order;
            let first = (0..FRAMES).find(|&f| (f..f + n).all(|m| self.pool.free.contains(&m)))?;
            if first + n > limit {
                return None;
            }
            for m in first..first + n {
                self.pool.free.remove(&m);
            }
            Some(Mfn(first))
        }
    }

    /// First frame of the fake M2P.
    pub const M2P_BASE: u64 = 8;

    const ARG: u64 = 0x1000;
    const LIST: u64 = 0x2000;
    const ME: u16 = 1;

    fn guest() -> FakeGuest {
        let g = FakeGuest::default();
        g.map(ARG);
        g.map(LIST);
        g
    }

    fn dom(privileged: bool, max_pages: u64) -> Domain {
        let mut d = Domain::empty(ME, privileged, Mfn(1));
        d.max_pages = max_pages;
        d
    }

    fn reservation_arg(g: &FakeGuest, nr: u64, order: u32, domid: u16) {
        let r = XenMemoryReservation { extent_start: LIST, nr_extents: nr, extent_order: order, mem_flags: 0, domid, ..Default::default() };
        g.copy_to(ARG, &r).unwrap();
    }

    fn list(g: &FakeGuest, n: usize) -> Vec<u64> {
        (0..n).map(|i| g.copy_from::<u64>(LIST + 8 * i as u64).unwrap()).collect()
    }

    #[test]
    fn increase_reservation_gives_frames_up_to_max_pages_and_returns_extents_done() {
        let (mut h, g) = (FakeMachine::default(), guest());
        let mut d = dom(false, 3);
        reservation_arg(&g, 5, 0, xen_public::DOMID_SELF);
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_INCREASE_RESERVATION, ARG), 3, "stops at max_pages");
        assert_eq!(d.nr_pages, 3);
        for mfn in list(&g, 3) {
            assert_eq!(h.owner(mfn), ME, "frame {mfn:#x} is the caller's");
        }
        assert!(h.m2p.is_empty(), "increase_reservation sets no M2P entry");
    }

    #[test]
    fn populate_physmap_reads_gfns_writes_mfns_and_sets_m2p() {
        let (mut h, g) = (FakeMachine::default(), guest());
        let mut d = dom(false, 8);
        reservation_arg(&g, 2, 0, ME);
        g.copy_to(LIST, &[0x100u64, 0x101]).unwrap();
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_POPULATE_PHYSMAP, ARG), 2);
        let mfns = list(&g, 2);
        assert_eq!(h.m2p.get(&mfns[0]), Some(&0x100));
        assert_eq!(h.m2p.get(&mfns[1]), Some(&0x101));
    }

    #[test]
    fn populate_physmap_with_an_unmapped_list_does_nothing() {
        let (mut h, g) = (FakeMachine::default(), guest());
        let mut d = dom(false, 8);
        let r = XenMemoryReservation { extent_start: 0x9000, nr_extents: 4, domid: ME, ..Default::default() };
        g.copy_to(ARG, &r).unwrap();
        let free = h.pool.free_count();
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_POPULATE_PHYSMAP, ARG), 0);
        assert_eq!((d.nr_pages, h.pool.free_count()), (0, free), "no frame taken");
    }

    #[test]
    fn increase_reservation_counts_a_frame_whose_number_cannot_be_written() {
        // The list ends at an unmapped page: the second frame is the
        // domain's (counted) but not reported as done.
        let (mut h, g) = (FakeMachine::default(), guest());
        let mut d = dom(false, 8);
        let r = XenMemoryReservation { extent_start: LIST + 4096 - 8, nr_extents: 4, domid: ME, ..Default::default() };
        g.copy_to(ARG, &r).unwrap();
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_INCREASE_RESERVATION, ARG), 1);
        assert_eq!(d.nr_pages, 2);
    }

    #[test]
    fn populate_physmap_with_a_list_wrapping_past_the_top_stops_at_the_wrap() {
        // Attack: an extent list whose later slots wrap to low memory the
        // guest has mapped.
        let (mut h, g) = (FakeMachine::default(), guest());
        g.map(!0xfff);
        g.map(0);
        let mut d = dom(false, 8);
        let r = XenMemoryReservation { extent_start: u64::MAX - 15, nr_extents: 3, domid: ME, ..Default::default() };
        g.copy_to(ARG, &r).unwrap();
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_POPULATE_PHYSMAP, ARG), 1, "the first slot only");
        assert_eq!(d.nr_pages, 1);
        assert_eq!(h.m2p.len(), 1);
    }

    #[test]
    fn extent_order_above_zero_is_einval_and_takes_nothing() {
        let (mut h, g) = (FakeMachine::default(), guest());
        let mut d = dom(true, 8);
        for op in [XENMEM_INCREASE_RESERVATION, XENMEM_DECREASE_RESERVATION, XENMEM_POPULATE_PHYSMAP] {
            reservation_arg(&g, 1, 9, ME);
            assert_eq!(memory_op(&mut h, &mut d, &g, op, ARG), -EINVAL, "op {op}");
        }
        assert_eq!(d.nr_pages, 0);
    }

    #[test]
    fn huge_nr_extents_stops_after_512_per_call() {
        let (mut h, g) = (FakeMachine::default(), guest());
        // More frames than the machine has: the pool runs dry first.
        let mut d = dom(false, u64::MAX);
        reservation_arg(&g, u64::MAX, 0, ME);
        let got = memory_op(&mut h, &mut d, &g, XENMEM_INCREASE_RESERVATION, ARG);
        assert_eq!(got, (FRAMES - 16) as i64, "as many as the pool had");
        assert_eq!(d.nr_pages, FRAMES - 16);
        // Decrease with a huge count: at most 512 per call, here all given.
        reservation_arg(&g, u64::MAX, 0, ME);
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_DECREASE_RESERVATION, ARG), (FRAMES - 16) as i64);
        assert_eq!(d.nr_pages, 0);
        assert_eq!(EXTENTS_PER_CALL, 512);
    }

    #[test]
    fn increase_reservation_of_more_than_512_extents_does_512() {
        let (mut h, g) = (FakeMachine::default(), guest());
        // A pool as large as needed, over a frame table that large.
        let frames: &'static mut [PageInfo] = Vec::leak(std::vec![PageInfo::FREE; 1024]);
        h.ft = FrameTable::new(frames);
        h.pool.free = (16..1024).collect();
        let mut d = dom(false, u64::MAX);
        for p in 0..2 {
            g.map(LIST + 4096 * p);
        }
        reservation_arg(&g, 600, 0, ME);
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_INCREASE_RESERVATION, ARG), 512);
        assert_eq!(d.nr_pages, 512);
    }

    #[test]
    fn decrease_reservation_frees_own_unreferenced_frames() {
        let (mut h, g) = (FakeMachine::default(), guest());
        let mut d = dom(false, 8);
        let mine = h.give(&mut d, 2);
        reservation_arg(&g, 2, 0, ME);
        g.copy_to(LIST, &[mine[0], mine[1]]).unwrap();
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_DECREASE_RESERVATION, ARG), 2);
        assert_eq!(d.nr_pages, 0);
        assert_eq!(h.pool.freed, mine);
        assert_eq!(h.owner(mine[0]), PageInfo::FREE.owner);
    }

    #[test]
    fn decrease_reservation_of_another_domains_frame_stops_and_frees_nothing() {
        // Attack: a domain lists a frame of another domain.
        let (mut h, g) = (FakeMachine::default(), guest());
        let mut d = dom(false, 8);
        let mine = h.give(&mut d, 1);
        h.add(2, 8);
        let mut victim = h.others.remove(&2).unwrap();
        let theirs = h.give(&mut victim.domain, 1);
        h.others.insert(2, victim);
        reservation_arg(&g, 2, 0, ME);
        g.copy_to(LIST, &[theirs[0], mine[0]]).unwrap();
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_DECREASE_RESERVATION, ARG), 0);
        assert_eq!(h.owner(theirs[0]), 2, "the victim keeps its frame");
        assert_eq!((h.other(2).nr_pages, d.nr_pages), (1, 1));
        assert!(h.pool.freed.is_empty());
    }

    #[test]
    fn decrease_reservation_refuses_shared_info_a_referenced_frame_and_a_bad_mfn() {
        let (mut h, g) = (FakeMachine::default(), guest());
        let mut d = dom(false, 8);
        let mine = h.give(&mut d, 2);
        d.shared_info = Mfn(mine[0]);
        h.ft.get_page(mine[1], ME).unwrap();
        for mfn in [mine[0], mine[1], u64::MAX, FRAMES] {
            reservation_arg(&g, 1, 0, ME);
            g.copy_to(LIST, &mfn).unwrap();
            assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_DECREASE_RESERVATION, ARG), 0, "mfn {mfn:#x}");
        }
        assert_eq!(d.nr_pages, 2);
        assert!(h.pool.freed.is_empty());
    }

    #[test]
    fn reservation_of_another_domain_from_an_unprivileged_domain_is_eperm() {
        // Attack: a domU grows or shrinks another domain.
        let (mut h, g) = (FakeMachine::default(), guest());
        let mut d = dom(false, 8);
        h.add(2, 8);
        for op in [XENMEM_INCREASE_RESERVATION, XENMEM_DECREASE_RESERVATION, XENMEM_POPULATE_PHYSMAP] {
            reservation_arg(&g, 1, 0, 2);
            assert_eq!(memory_op(&mut h, &mut d, &g, op, ARG), -EPERM, "op {op}");
            // An unknown domain is -EPERM too: privilege is checked first.
            reservation_arg(&g, 1, 0, 9);
            assert_eq!(memory_op(&mut h, &mut d, &g, op, ARG), -EPERM, "op {op}, unknown domain");
        }
        assert_eq!(h.other(2).nr_pages, 0);
    }

    #[test]
    fn privileged_reservation_of_another_domain_charges_it_and_unknown_is_esrch() {
        let (mut h, g) = (FakeMachine::default(), guest());
        let mut d = dom(true, 8);
        h.add(2, 2);
        reservation_arg(&g, 3, 0, 2);
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_INCREASE_RESERVATION, ARG), 2, "the target's max_pages");
        assert_eq!((h.other(2).nr_pages, d.nr_pages), (2, 0));
        assert_eq!(h.owner(list(&g, 1)[0]), 2);
        reservation_arg(&g, 1, 0, 9);
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_INCREASE_RESERVATION, ARG), -ESRCH);
    }

    #[test]
    fn current_and_maximum_reservation_of_self_others_and_unknown() {
        let (mut h, g) = (FakeMachine::default(), guest());
        let mut d = dom(false, 7);
        h.give(&mut d, 3);
        h.add(2, 9);
        g.copy_to(ARG, &XenMemoryDomain { domid: xen_public::DOMID_SELF }).unwrap();
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_CURRENT_RESERVATION, ARG), 3);
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_MAXIMUM_RESERVATION, ARG), 7);
        g.copy_to(ARG, &XenMemoryDomain { domid: 2 }).unwrap();
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_MAXIMUM_RESERVATION, ARG), -EPERM, "a domU asks about another");
        d.privileged = true;
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_MAXIMUM_RESERVATION, ARG), 9);
        g.copy_to(ARG, &XenMemoryDomain { domid: 9 }).unwrap();
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_CURRENT_RESERVATION, ARG), -ESRCH);
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_CURRENT_RESERVATION, 0x8000), -EFAULT);
    }

    #[test]
    fn maximum_ram_page_is_the_last_m2p_entry_and_ignores_its_argument() {
        let (mut h, g) = (FakeMachine::default(), guest());
        let mut d = dom(false, 0);
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_MAXIMUM_RAM_PAGE, 0xdead_0000), (FRAMES - 1) as i64);
    }

    #[test]
    fn unknown_memory_op_is_enosys_and_high_cmd_bits_are_ignored() {
        let (mut h, g) = (FakeMachine::default(), guest());
        let mut d = dom(false, 8);
        assert_eq!(memory_op(&mut h, &mut d, &g, 29, ARG), -ENOSYS, "past Xen 4.17's last sub-op");
        assert_eq!(memory_op(&mut h, &mut d, &g, 0x3f, ARG), -ENOSYS);
        // A continuation's start extent in bits 6 and up: the same command.
        reservation_arg(&g, 1, 0, ME);
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_INCREASE_RESERVATION | (7 << 6), ARG), 1);
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_INCREASE_RESERVATION, 0x8000), -EFAULT, "unmapped argument");
    }

    // ---- the boot-time queries and XENMEM_exchange

    fn e820(entries: &[(u64, u64, u32)]) -> Vec<E820Entry> {
        entries.iter().map(|&(addr, size, type_)| E820Entry { addr, size, type_ }).collect()
    }

    /// QEMU's map: low RAM, the BIOS area, RAM, the firmware at the top.
    fn qemu_e820() -> Vec<E820Entry> {
        e820(&[(0, 0x9fc00, 1), (0xf0000, 0x10000, 2), (0x100000, 0x7ee0000, 1), (0xfffc0000, 0x40000, 2)])
    }

    fn map_arg(g: &FakeGuest, nr_entries: u32, buffer: u64) {
        g.copy_to(ARG, &XenMemoryMap { nr_entries, _pad0: 0, buffer }).unwrap();
    }

    fn map_out(g: &FakeGuest, n: usize) -> Vec<(u64, u64, u32)> {
        (0..n)
            .map(|i| {
                let e: E820Entry = g.copy_from(LIST + 20 * i as u64).unwrap();
                (e.addr, e.size, e.type_)
            })
            .collect()
    }

    #[test]
    fn machine_memory_map_from_a_domu_is_eperm() {
        let (mut h, g) = (FakeMachine::default(), guest());
        h.e820 = qemu_e820();
        map_arg(&g, 16, LIST);
        assert_eq!(memory_op(&mut h, &mut dom(false, 8), &g, XENMEM_MACHINE_MEMORY_MAP, ARG), -EPERM);
        assert_eq!(map_out(&g, 1), [(0, 0, 0)], "nothing written");
    }

    #[test]
    fn machine_memory_map_adds_reserved_entries_for_what_dom0_may_not_map() {
        // Xen's arch_memory_op: the E820 entries, and between them the
        // I/O APIC page and the LAPIC/MSI range dom0 may not map.
        let (mut h, g) = (FakeMachine::default(), guest());
        h.e820 = qemu_e820();
        map_arg(&g, 16, LIST);
        assert_eq!(memory_op(&mut h, &mut dom(true, 8), &g, XENMEM_MACHINE_MEMORY_MAP, ARG), 0);
        let got: XenMemoryMap = g.copy_from(ARG).unwrap();
        assert_eq!(got.nr_entries, 6);
        assert_eq!(
            map_out(&g, 6),
            [
                (0, 0x9fc00, 1),
                (0xf0000, 0x10000, 2),
                (0x100000, 0x7ee0000, 1),
                (0xfec0_0000, 0x1000, 2),
                (0xfee0_0000, 0x10_0000, 2),
                (0xfffc0000, 0x40000, 2)
            ]
        );
    }

    #[test]
    fn machine_memory_map_buffer_rules_are_xens() {
        let (mut h, g) = (FakeMachine::default(), guest());
        h.e820 = qemu_e820();
        let mut d = dom(true, 8);
        map_arg(&g, 4, LIST);
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_MACHINE_MEMORY_MAP, ARG), -EINVAL, "fewer than the E820 entries plus one");
        map_arg(&g, 5, LIST);
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_MACHINE_MEMORY_MAP, ARG), -EINVAL, "no room for the reserved entries");
        map_arg(&g, 0, 0);
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_MACHINE_MEMORY_MAP, ARG), 0, "a NULL buffer only counts");
        assert_eq!(g.copy_from::<XenMemoryMap>(ARG).unwrap().nr_entries, 6);
        map_arg(&g, 16, 0x9000);
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_MACHINE_MEMORY_MAP, ARG), -EFAULT, "unmapped buffer");
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_MACHINE_MEMORY_MAP, 0x9000), -EFAULT, "unmapped argument");
    }

    #[test]
    fn memory_map_without_a_set_map_is_enosys_as_xen_4_17() {
        let (mut h, g) = (FakeMachine::default(), guest());
        map_arg(&g, 16, LIST);
        assert_eq!(memory_op(&mut h, &mut dom(false, 8), &g, XENMEM_MEMORY_MAP, ARG), -ENOSYS);
        assert_eq!(memory_op(&mut h, &mut dom(false, 8), &g, XENMEM_MEMORY_MAP, 0x9000), -EFAULT);
    }

    #[test]
    fn machphys_mapping_is_the_read_only_m2p_window() {
        let (mut h, g) = (FakeMachine::default(), guest());
        assert_eq!(memory_op(&mut h, &mut dom(false, 8), &g, XENMEM_MACHPHYS_MAPPING, ARG), 0);
        let m: XenMachphysMapping = g.copy_from(ARG).unwrap();
        assert_eq!((m.v_start, m.v_end, m.max_mfn), (0xffff_8000_0000_0000, 0xffff_8000_4000_0000, (1 << 27) - 1));
        assert_eq!(memory_op(&mut h, &mut dom(true, 8), &g, XENMEM_MACHPHYS_MAPPING, ARG), 0);
        assert_eq!(g.copy_from::<XenMachphysMapping>(ARG).unwrap().max_mfn, FRAMES - 1, "the hardware domain sees max_page - 1");
        assert_eq!(memory_op(&mut h, &mut dom(false, 8), &g, XENMEM_MACHPHYS_MAPPING, 0x9000), -EFAULT);
        assert_eq!(memory_op(&mut h, &mut dom(false, 8), &g, XENMEM_MACHPHYS_MAPPING | (1 << 6), ARG), -ENOSYS, "a start extent");
    }

    #[test]
    fn machphys_mfn_list_names_each_2mib_of_the_m2p() {
        let (mut h, g) = (FakeMachine::default(), guest());
        let l = XenMachphysMfnList { max_extents: 4, extent_start: LIST, ..Default::default() };
        g.copy_to(ARG, &l).unwrap();
        assert_eq!(memory_op(&mut h, &mut dom(false, 8), &g, XENMEM_MACHPHYS_MFN_LIST, ARG), 0);
        assert_eq!(g.copy_from::<XenMachphysMfnList>(ARG).unwrap().nr_extents, 1, "64 entries fit one 2 MiB chunk");
        assert_eq!(list(&g, 1), [M2P_BASE]);
        g.copy_to(ARG, &XenMachphysMfnList { max_extents: 0, ..l }).unwrap();
        assert_eq!(memory_op(&mut h, &mut dom(false, 8), &g, XENMEM_MACHPHYS_MFN_LIST, ARG), 0);
        assert_eq!(g.copy_from::<XenMachphysMfnList>(ARG).unwrap().nr_extents, 0);
        g.copy_to(ARG, &XenMachphysMfnList { extent_start: 0x9000, ..l }).unwrap();
        assert_eq!(memory_op(&mut h, &mut dom(false, 8), &g, XENMEM_MACHPHYS_MFN_LIST, ARG), -EFAULT);
    }

    #[test]
    fn maximum_gpfn_is_shared_info_max_pfn_less_one() {
        let (mut h, g) = (FakeMachine::default(), guest());
        g.copy_to(ARG, &XenMemoryDomain { domid: xen_public::DOMID_SELF }).unwrap();
        assert_eq!(memory_op(&mut h, &mut dom(false, 8), &g, XENMEM_MAXIMUM_GPFN, ARG), 0, "max_pfn 0 counts as 1");
        h.max_pfn = 0x8000;
        assert_eq!(memory_op(&mut h, &mut dom(false, 8), &g, XENMEM_MAXIMUM_GPFN, ARG), 0x7fff);
        h.add(2, 8);
        g.copy_to(ARG, &XenMemoryDomain { domid: 2 }).unwrap();
        assert_eq!(memory_op(&mut h, &mut dom(false, 8), &g, XENMEM_MAXIMUM_GPFN, ARG), -EPERM, "a domU names only itself");
        assert_eq!(memory_op(&mut h, &mut dom(true, 8), &g, XENMEM_MAXIMUM_GPFN, ARG), 0x7fff);
        g.copy_to(ARG, &XenMemoryDomain { domid: 9 }).unwrap();
        assert_eq!(memory_op(&mut h, &mut dom(true, 8), &g, XENMEM_MAXIMUM_GPFN, ARG), -ESRCH);
        assert_eq!(memory_op(&mut h, &mut dom(true, 8), &g, XENMEM_MAXIMUM_GPFN | (1 << 6), ARG), -EINVAL, "a start extent");
    }

    const OUT: u64 = LIST + 0x800;

    fn exchange_arg(g: &FakeGuest, nr_in: u64, in_order: u32, nr_out: u64, out_order: u32, mem_flags: u32) {
        let x = XenMemoryExchange {
            in_: XenMemoryReservation {
                extent_start: LIST,
                nr_extents: nr_in,
                extent_order: in_order,
                mem_flags: 0,
                domid: ME,
                ..Default::default()
            },
            out: XenMemoryReservation { extent_start: OUT, nr_extents: nr_out, extent_order: out_order, mem_flags, domid: ME, ..Default::default() },
            nr_exchanged: 0,
        };
        g.copy_to(ARG, &x).unwrap();
    }

    fn exchanged(g: &FakeGuest) -> u64 {
        g.copy_from::<XenMemoryExchange>(ARG).unwrap().nr_exchanged
    }

    #[test]
    fn exchange_two_frames_for_one_contiguous_extent_below_address_bits() {
        // Linux's xen_create_contiguous_region: order-0 frames in, one
        // order-1 extent out, below 2^32.
        let (mut h, g) = (FakeMachine::default(), guest());
        let mut d = dom(false, 8);
        let mine = h.give(&mut d, 3);
        exchange_arg(&g, 2, 0, 1, 1, xen_public::memory::xenmemf_address_bits(32));
        g.copy_to(LIST, &[mine[0], mine[2]]).unwrap();
        g.copy_to(OUT, &0x200u64).unwrap();
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_EXCHANGE, ARG), 0);
        assert_eq!(exchanged(&g), 2);
        let base = g.copy_from::<u64>(OUT).unwrap();
        assert_eq!((h.owner(base), h.owner(base + 1)), (ME, ME), "the new extent is the caller's");
        assert_eq!((h.m2p.get(&base), h.m2p.get(&(base + 1))), (Some(&0x200), Some(&0x201)), "the M2P names the gpfns asked for");
        assert_eq!(h.pool.freed, [mine[0], mine[2]], "the old frames went back");
        assert_eq!(d.nr_pages, 3, "as many pages as before");
    }

    /// Xen's hypercall_preempt_check between exchange chunks: an output
    /// list aliasing the input list one slot later feeds each new frame
    /// to the next chunk; the call still ends when preemption is due,
    /// with its progress in nr_exchanged, and resumes from there.
    #[test]
    fn exchange_is_preemptible_even_with_the_output_list_feeding_the_input() {
        let (mut h, g) = (FakeMachine::default(), guest());
        let mut d = dom(false, 8);
        let mine = h.give(&mut d, 1);
        let n = 500u64;
        let x = XenMemoryExchange {
            in_: XenMemoryReservation { extent_start: LIST, nr_extents: n, extent_order: 0, mem_flags: 0, domid: ME, ..Default::default() },
            out: XenMemoryReservation { extent_start: LIST + 8, nr_extents: n, extent_order: 0, mem_flags: 0, domid: ME, ..Default::default() },
            nr_exchanged: 0,
        };
        g.copy_to(ARG, &x).unwrap();
        g.copy_to(LIST, &mine[0]).unwrap();
        h.preempt_after = Some(10);
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_EXCHANGE, ARG), -xen_public::errno::ERESTART);
        assert_eq!(exchanged(&g), 11, "chunks done before preemption was due");
        assert_eq!(d.nr_pages, 1, "one frame for one");
        h.preempt_after = None;
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_EXCHANGE, ARG), 0, "the reissued call resumes");
        assert_eq!(exchanged(&g), n);
    }

    /// Attack: a frame left half devalidated (an unpin whose teardown
    /// was preempted) passes a count/type check but cannot be released;
    /// exchanging it must fail the chunk, not hand out a frame for
    /// nothing (a domain growing past max_pages, one frame per chunk).
    #[test]
    fn exchange_of_a_half_devalidated_frame_is_einval_and_never_grows_the_domain() {
        use crate::mm::page_type::{PageMem, Who};
        struct Preempting(crate::mm::page_type::tests::TestMem);
        impl PageMem for Preempting {
            fn read(&self, mfn: u64, idx: usize) -> u64 {
                self.0.read(mfn, idx)
            }
            fn write(&mut self, mfn: u64, idx: usize, val: u64) {
                self.0.write(mfn, idx, val)
            }
            fn preempt_due(&self) -> bool {
                true
            }
        }
        let (mut h, g) = (FakeMachine::default(), guest());
        let mut d = dom(false, 2);
        let mine = h.give(&mut d, 2);
        let p = mine[0];
        let mut plain = h.mem.clone();
        plain.write(p, 0, (mine[1] << 12) | 1);
        plain.write(p, 1, (mine[1] << 12) | 1);
        assert!(h.ft.pin(&mut plain, p, 1, Who::own(ME, false)).is_ok());
        let mut pm = Preempting(h.mem.clone());
        assert!(h.ft.unpin(&mut pm, p, Who::own(ME, false)).is_ok());
        let n = 100u64;
        let x = XenMemoryExchange {
            in_: XenMemoryReservation { extent_start: LIST, nr_extents: n, extent_order: 0, mem_flags: 0, domid: ME, ..Default::default() },
            out: XenMemoryReservation { extent_start: OUT, nr_extents: n, extent_order: 0, mem_flags: 0, domid: ME, ..Default::default() },
            nr_exchanged: 0,
        };
        g.copy_to(ARG, &x).unwrap();
        for i in 0..n {
            g.copy_to(LIST + 8 * i, &p).unwrap();
        }
        let free = h.pool.free_count();
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_EXCHANGE, ARG), -EINVAL);
        assert_eq!((exchanged(&g), d.nr_pages, h.pool.free_count()), (0, 2, free), "nothing moved");
    }

    #[test]
    fn exchange_of_a_frame_the_domain_does_not_own_is_einval() {
        let (mut h, g) = (FakeMachine::default(), guest());
        let mut d = dom(false, 8);
        let mut other = Domain::empty(2, false, Mfn(0));
        let theirs = h.give(&mut other, 1)[0];
        exchange_arg(&g, 1, 0, 1, 0, 0);
        for victim in [theirs, 3, FRAMES + 10, u64::MAX] {
            g.copy_to(LIST, &victim).unwrap();
            let free = h.pool.free_count();
            assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_EXCHANGE, ARG), -EINVAL, "frame {victim:#x}");
            assert_eq!((exchanged(&g), h.pool.free_count()), (0, free), "nothing moved");
        }
        assert_eq!(h.owner(theirs), 2);
        assert_eq!(h.extent_allocs, 0, "inputs checked before any output is allocated, as Xen steals first");
    }

    #[test]
    fn exchange_of_a_referenced_or_repeated_frame_is_einval() {
        let (mut h, g) = (FakeMachine::default(), guest());
        let mut d = dom(false, 8);
        let mine = h.give(&mut d, 2);
        h.ft.get_page(mine[0], ME).unwrap();
        exchange_arg(&g, 1, 0, 1, 0, 0);
        g.copy_to(LIST, &mine[0]).unwrap();
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_EXCHANGE, ARG), -EINVAL, "mapped somewhere");
        exchange_arg(&g, 2, 0, 1, 1, 0);
        g.copy_to(LIST, &[mine[1], mine[1]]).unwrap();
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_EXCHANGE, ARG), -EINVAL, "the same frame twice in a chunk");
        let mut s = dom(false, 8);
        s.shared_info = Mfn(mine[1]);
        exchange_arg(&g, 1, 0, 1, 0, 0);
        g.copy_to(LIST, &mine[1]).unwrap();
        assert_eq!(memory_op(&mut h, &mut s, &g, XENMEM_EXCHANGE, ARG), -EINVAL, "shared_info is special");
        assert_eq!(h.owner(mine[1]), ME);
    }

    #[test]
    fn exchange_stops_at_the_first_bad_chunk_and_reports_progress() {
        let (mut h, g) = (FakeMachine::default(), guest());
        let mut d = dom(false, 8);
        let mine = h.give(&mut d, 2);
        exchange_arg(&g, 3, 0, 3, 0, 0);
        g.copy_to(LIST, &[mine[0], 3, mine[1]]).unwrap();
        g.copy_to(OUT, &[0x10u64, 0x11, 0x12]).unwrap();
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_EXCHANGE, ARG), -EINVAL);
        assert_eq!(exchanged(&g), 1, "the first extent was exchanged");
        assert_eq!(h.owner(mine[1]), ME, "the third was not touched");
        // The caller continues from nr_exchanged once it fixed its list.
        let mut x: XenMemoryExchange = g.copy_from(ARG).unwrap();
        g.copy_to(LIST + 8, &mine[1]).unwrap();
        x.in_.nr_extents = 2;
        x.out.nr_extents = 2;
        g.copy_to(ARG, &x).unwrap();
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_EXCHANGE, ARG), 0);
        assert_eq!(exchanged(&g), 2);
    }

    #[test]
    fn exchange_argument_errnos_are_xens() {
        let (mut h, g) = (FakeMachine::default(), guest());
        let mut d = dom(false, 8);
        exchange_arg(&g, 1, 10, 1, 10, 0);
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_EXCHANGE, ARG), -EPERM, "order 10 is past a domU's max_order 9");
        exchange_arg(&g, 2, 0, 1, 0, 0);
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_EXCHANGE, ARG), -EINVAL, "sizes differ");
        let mut x: XenMemoryExchange = g.copy_from(ARG).unwrap();
        x.out.nr_extents = 2;
        x.out.domid = 2;
        g.copy_to(ARG, &x).unwrap();
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_EXCHANGE, ARG), -EINVAL, "in and out name different domains");
        x.out.domid = ME;
        x.nr_exchanged = 3;
        g.copy_to(ARG, &x).unwrap();
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_EXCHANGE, ARG), -EINVAL, "more done than asked");
        x.nr_exchanged = 2;
        g.copy_to(ARG, &x).unwrap();
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_EXCHANGE, ARG), 0, "all done already");
        exchange_arg(&g, u64::MAX, 0, u64::MAX >> 1, 1, 0);
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_EXCHANGE, ARG), -EINVAL, "the output list would overflow");
        exchange_arg(&g, 1, 0, 1, 0, 0);
        let mut x: XenMemoryExchange = g.copy_from(ARG).unwrap();
        x.in_.extent_start = xen_public::HYPERVISOR_VIRT_START;
        g.copy_to(ARG, &x).unwrap();
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_EXCHANGE, ARG), -EFAULT, "a list in the hypervisor");
        exchange_arg(&g, 1, 0, 1, 0, xen_public::memory::XENMEMF_EXACT_NODE_REQUEST | xen_public::memory::xenmemf_node(1));
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_EXCHANGE, ARG), -EINVAL, "a domU may not insist on a node");
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_EXCHANGE | (1 << 6), ARG), -EINVAL, "a start extent");
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_EXCHANGE, 0x9000), -EFAULT);
    }

    #[test]
    fn exchange_below_too_few_address_bits_is_enomem_and_keeps_the_frames() {
        let (mut h, g) = (FakeMachine::default(), guest());
        let mut d = dom(false, 8);
        let mine = h.give(&mut d, 1);
        exchange_arg(&g, 1, 0, 1, 0, xen_public::memory::xenmemf_address_bits(13));
        g.copy_to(LIST, &mine[0]).unwrap();
        let free = h.pool.free_count();
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_EXCHANGE, ARG), -ENOMEM, "no free frame below 8 KiB");
        assert_eq!((exchanged(&g), h.owner(mine[0]), h.pool.free_count()), (0, ME, free));
    }
}
