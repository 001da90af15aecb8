//! The domU builder (libxenguest's role): it builds a PV domain from a
//! guest kernel image (an ELF, or a bzImage or compressed ELF) and an
//! optional ramdisk through hypercalls alone — createdomain, max_mem,
//! populate_physmap, foreign mmu_update mappings to fill the new domain's
//! memory, MMUEXT_PIN_L4_TABLE on its tables, hypercall_init,
//! setvcpucontext, unpause — with the same layout rules as dom0's
//! (`xen-dombuild`).
//!
//! Invariant: every frame of the new domain is written through dom0's
//! scratch window, which maps one foreign frame per slot and is put back
//! to dom0's own frames before the new domain's tables are pinned, so the
//! pin never meets a writable mapping of a page table; the staging area
//! maps only frames above the initial region (never a page table) and is
//! emptied before the build returns, on success or failure.
//!
//! Dom0's memory stays bounded whatever the domain's size: dom0 holds the
//! P2M of the new domain's initial region only (at most
//! [`REGION_P2M_BUDGET`] entries, on its heap, for the build), and streams
//! the rest of the P2M into the domain's own `mfn_list` a page at a time
//! as `populate_physmap` hands the frames out. A compressed kernel (Linux:
//! a 66 MiB ELF, a 32 MiB xz dictionary) is decompressed into the new
//! domain's own top pfns through dom0's staging area
//! ([`crate::foreign_area`], plan in [`crate::staging`]); its segments
//! are copied from there into the initial region, and the staged frames
//! are zeroed and handed to the guest as free memory.

use crate::big_stack;
use crate::foreign_area::ForeignArea;
use crate::hv;
use crate::staging::{self, StagePlan};
use alloc::vec::Vec;
use pv_guest_kernel::StartInfo;
use pv_guest_kernel::alloc::EarlyAlloc;
use pv_guest_kernel::mm::PTE_RW;
use xen_dombuild::layout::{self, DomainLayout, LayoutInput};
use xen_dombuild::pagetable::{self, FrameWriter};
use xen_libelf::bzimage::{self, Compressed, KernelImage, LoadError};
use xen_libelf::{Elf, PT_LOAD};
use xen_public::pte::{PteFlags, pte_maddr};
use xen_public::{MAX_GUEST_CMDLINE, MmuUpdate};
use zerocopy::IntoBytes;

/// Pages of dom0's address space used to reach foreign frames.
pub const SCRATCH_SLOTS: usize = 16;
pub use crate::spec::{MAX_PAGES, REGION_P2M_BUDGET};

/// P2M entries populated and written to the new domain per step past its
/// initial region: one page of its `mfn_list`.
const P2M_CHUNK: usize = 512;

/// Why a build failed: the step, and the hypercall's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuildError(pub &'static str, pub i64);

/// dom0 pages whose mappings are borrowed to reach foreign frames.
pub struct Scratch {
    va: [u64; SCRATCH_SLOTS],
    own_mfn: [u64; SCRATCH_SLOTS],
    pte_maddr: [u64; SCRATCH_SLOTS],
    /// (domid, mfn) mapped in each slot, if any.
    mapped: [Option<(u16, u64)>; SCRATCH_SLOTS],
    next_victim: usize,
}

/// The machine address of the L1 entry mapping `va` in dom0's tables,
/// found by walking them through their read-only mapping in the initial
/// region (each table's virtual address comes from the M2P).
pub fn l1e_maddr(si: &StartInfo, va: u64) -> Option<u64> {
    entry_maddr(si, va, 1)
}

/// The machine address of the level-`level` entry (1-3) mapping `va` in
/// dom0's tables: the tables above it must be present.
pub fn entry_maddr(si: &StartInfo, va: u64, level: u32) -> Option<u64> {
    let region = |mfn: u64| pv_guest_kernel::notes::VIRT_BASE + pv_guest_kernel::console::mfn_to_pfn(mfn) * 4096;
    let mut table_va = si.pt_base;
    let mut mfn = 0;
    for l in (level + 1..=4u32).rev() {
        let idx = (va >> (12 + 9 * (l - 1))) & 511;
        // SAFETY: `table_va` is a page table of the initial region, mapped
        // read-only there (start_info's pt_base, or found through the M2P).
        let e = unsafe { ((table_va + idx * 8) as *const u64).read_volatile() };
        if !PteFlags::of(e).contains(PteFlags::PRESENT) {
            return None;
        }
        mfn = pte_maddr(e) >> 12;
        table_va = region(mfn);
    }
    Some((mfn << 12) + ((va >> (12 + 9 * (level - 1))) & 511) * 8)
}

/// The L1 entry mapping `va` in dom0's tables: its machine address and
/// its value (the frame `va` reaches now, which for a remapped page is
/// not the P2M's), found as in [`l1e_maddr`].
pub fn l1e(si: &StartInfo, va: u64) -> Option<(u64, u64)> {
    let maddr = l1e_maddr(si, va)?;
    let table_va = pv_guest_kernel::notes::VIRT_BASE + pv_guest_kernel::console::mfn_to_pfn(maddr >> 12) * 4096;
    // SAFETY: the L1 table is a page table of the initial region, mapped
    // read-only there (found through the M2P as the upper levels are);
    // the offset is below 4096.
    let e = unsafe { ((table_va + (maddr & 0xfff)) as *const u64).read_volatile() };
    Some((maddr, e))
}

impl Scratch {
    /// Borrow `SCRATCH_SLOTS` pages of dom0's own memory.
    pub fn new(si: &StartInfo, pages: &mut EarlyAlloc) -> Option<Scratch> {
        let mut s = Scratch {
            va: [0; SCRATCH_SLOTS],
            own_mfn: [0; SCRATCH_SLOTS],
            pte_maddr: [0; SCRATCH_SLOTS],
            mapped: [None; SCRATCH_SLOTS],
            next_victim: 0,
        };
        for i in 0..SCRATCH_SLOTS {
            let va = pages.alloc_page()?;
            s.va[i] = va;
            s.own_mfn[i] = pv_guest_kernel::mm::mfn_of(si, va);
            s.pte_maddr[i] = l1e_maddr(si, va)?;
        }
        Some(s)
    }

    /// Map `mfn` of `domid` in a slot (reusing one that has it); its VA.
    pub fn map(&mut self, domid: u16, mfn: u64) -> Result<u64, BuildError> {
        if let Some(i) = self.mapped.iter().position(|m| *m == Some((domid, mfn))) {
            return Ok(self.va[i]);
        }
        let i = self.next_victim;
        self.next_victim = (i + 1) % SCRATCH_SLOTS;
        let rc = hv::mmu_update(&[MmuUpdate { ptr: self.pte_maddr[i], val: (mfn << 12) | PTE_RW }], domid);
        if rc != 0 {
            return Err(BuildError("map a frame of the new domain", rc));
        }
        hv::flush_tlb_local();
        self.mapped[i] = Some((domid, mfn));
        Ok(self.va[i])
    }

    /// Map `mfn` of `domid` in slot `i` for as long as the caller wants
    /// (console pages); its VA.
    pub fn map_at(&mut self, i: usize, domid: u16, mfn: u64) -> Result<u64, BuildError> {
        let rc = hv::mmu_update(&[MmuUpdate { ptr: self.pte_maddr[i], val: (mfn << 12) | PTE_RW }], domid);
        hv::flush_tlb_local();
        if rc != 0 {
            return Err(BuildError("map a console page", rc));
        }
        self.mapped[i] = Some((domid, mfn));
        Ok(self.va[i])
    }

    /// Put slot `i` back to dom0's own frame.
    pub fn unmap_at(&mut self, i: usize) {
        hv::mmu_update(&[MmuUpdate { ptr: self.pte_maddr[i], val: (self.own_mfn[i] << 12) | PTE_RW }], xen_public::DOMID_SELF);
        hv::flush_tlb_local();
        self.mapped[i] = None;
    }

    /// Put every slot back to dom0's own frame.
    pub fn restore(&mut self) -> Result<(), BuildError> {
        let mut reqs = [MmuUpdate::default(); SCRATCH_SLOTS];
        for (i, r) in reqs.iter_mut().enumerate() {
            *r = MmuUpdate { ptr: self.pte_maddr[i], val: (self.own_mfn[i] << 12) | PTE_RW };
        }
        let rc = hv::mmu_update(&reqs, xen_public::DOMID_SELF);
        hv::flush_tlb_local();
        self.mapped = [None; SCRATCH_SLOTS];
        if rc != 0 { Err(BuildError("restore the scratch window", rc)) } else { Ok(()) }
    }
}

/// The new domain's memory as the builder writes it.
struct DomMem<'a> {
    domid: u16,
    p2m: &'a [u64],
    v_start: u64,
    scratch: &'a mut Scratch,
    err: Option<BuildError>,
}

impl DomMem<'_> {
    /// Copy `data` to the new domain's virtual address `va` (inside its
    /// initial region).
    fn write(&mut self, mut va: u64, mut data: &[u8]) -> Result<(), BuildError> {
        while !data.is_empty() {
            let pfn = va.checked_sub(self.v_start).ok_or(BuildError("address outside the domain", -xen_public::errno::EINVAL))? / 4096;
            let off = (va % 4096) as usize;
            let n = data.len().min(4096 - off);
            let mfn = *self.p2m.get(pfn as usize).ok_or(BuildError("address outside the domain", 0))?;
            let page = self.scratch.map(self.domid, mfn)?;
            for (i, b) in data[..n].iter().enumerate() {
                // SAFETY: the scratch slot maps the domain's frame writable;
                // `off + i` < 4096.
                unsafe { ((page + (off + i) as u64) as *mut u8).write_volatile(*b) };
            }
            va += n as u64;
            data = &data[n..];
        }
        Ok(())
    }
}

impl FrameWriter for DomMem<'_> {
    fn zero(&mut self, mfn: u64) {
        // Frames from populate_physmap are already zero; check the mapping
        // works so that errors surface here.
        if let Err(e) = self.scratch.map(self.domid, mfn) {
            self.err = Some(e);
        }
    }

    fn write(&mut self, mfn: u64, index: usize, val: u64) {
        match self.scratch.map(self.domid, mfn) {
            // SAFETY: the slot maps the frame writable; index < 512.
            Ok(page) => unsafe { ((page + index as u64 * 8) as *mut u64).write_volatile(val) },
            Err(e) => self.err = Some(e),
        }
    }
}

/// Populate pfns `first..end` of the new domain a [`P2M_CHUNK`] at a
/// time, writing each chunk's frames into its P2M at `p2m_va` (the entry
/// of pfn 0): dom0 holds one chunk, never the whole P2M.
fn populate_rest(mem: &mut DomMem<'_>, p2m_va: u64, first: u64, end: u64) -> Result<(), BuildError> {
    let mut chunk = Vec::new();
    chunk.try_reserve_exact(P2M_CHUNK).map_err(|_| BuildError("hold a P2M chunk", -xen_public::errno::ENOMEM))?;
    let mut pfn = first;
    while pfn < end {
        let n = (end - pfn).min(P2M_CHUNK as u64) as usize;
        chunk.clear();
        chunk.resize(n, 0);
        hv::populate_physmap(mem.domid, pfn, &mut chunk).map_err(|rc| BuildError("populate_physmap", rc))?;
        mem.write(p2m_va + pfn * 8, chunk.as_bytes())?;
        pfn += n as u64;
    }
    Ok(())
}

/// What the builder hands back: enough for dom0 to run the console
/// backend of the new domain.
#[derive(Clone, Copy, Debug)]
pub struct Built {
    /// The new domain.
    pub domid: u16,
    /// Its console ring frame.
    pub console_mfn: u64,
    /// Its end of the console event channel.
    pub console_port: u32,
    /// Its xenstore ring frame.
    pub store_mfn: u64,
    /// Its end of the xenstore event channel.
    pub store_port: u32,
}

const _: () = assert!(core::mem::size_of::<StartInfo>() as u64 == layout::START_INFO_SIZE);

/// The new domain's `start_info` (magic, flags 0, the rest from `f`).
fn start_info(f: &StartInfoFields<'_>) -> StartInfo {
    let mut si = StartInfo::new();
    si.nr_pages = f.nr_pages;
    si.shared_info = f.shared_info;
    si.store_mfn = f.store_mfn;
    si.store_evtchn = f.store_evtchn;
    si.console.mfn_or_info_off = f.console_mfn;
    si.console.evtchn_or_info_size = f.console_evtchn;
    si.pt_base = f.pt_base;
    si.nr_pt_frames = f.nr_pt_frames;
    si.mfn_list = f.mfn_list;
    // NUL terminated: at most MAX_GUEST_CMDLINE - 1 bytes of text.
    let n = f.cmdline.len().min(MAX_GUEST_CMDLINE - 1);
    si.cmd_line[..n].copy_from_slice(&f.cmdline.as_bytes()[..n]);
    si
}

struct StartInfoFields<'a> {
    nr_pages: u64,
    shared_info: u64,
    store_mfn: u64,
    store_evtchn: u32,
    console_mfn: u64,
    console_evtchn: u32,
    pt_base: u64,
    nr_pt_frames: u64,
    mfn_list: u64,
    cmdline: &'a str,
}

/// A command line being formatted.
struct Cmdline {
    buf: [u8; MAX_GUEST_CMDLINE],
    len: usize,
}

impl core::fmt::Write for Cmdline {
    /// Append `s`, cut at a character boundary to leave room for the NUL
    /// of `start_info.cmd_line`.
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let room = self.buf.len() - 1 - self.len;
        let mut n = s.len().min(room);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// What a domU is built from: its kernel image, its ramdisk (empty: none),
/// its size and the text after `domid=N` on its command line.
#[derive(Clone, Copy)]
pub struct Sources<'a> {
    /// The kernel image (ELF, bzImage or compressed ELF).
    pub image: &'a [u8],
    /// The ramdisk, handed to the guest in `start_info.mod_start/mod_len`.
    pub ramdisk: &'a [u8],
    /// The domain's pages.
    pub nr_pages: u64,
    /// Its command line after `domid=N `.
    pub extra: &'a str,
}

/// Build and start a domU of `nr_pages` pages from `image`; its command
/// line is `domid=N` followed by `extra`. `region_p2m` is left holding the
/// P2M of the domain's initial region (its earlier contents are dropped).
/// On failure the half-built domain is destroyed.
pub fn build(scratch: &mut Scratch, region_p2m: &mut Vec<u64>, image: &[u8], nr_pages: u64, extra: &str) -> Result<Built, BuildError> {
    let domid = hv::create_domain().map_err(|rc| BuildError("createdomain", rc))?;
    let built = build_created_paused_from(domid, scratch, region_p2m, None, &Sources { image, ramdisk: &[], nr_pages, extra })?;
    unpause(built.domid)?;
    Ok(built)
}

/// Unpause a built domain; on failure it is destroyed.
pub fn unpause(domid: u16) -> Result<(), BuildError> {
    match hv::domctl_simple(hv::UNPAUSEDOMAIN, domid) {
        0 => Ok(()),
        rc => {
            let _ = hv::domctl_simple(hv::DESTROYDOMAIN, domid);
            Err(BuildError("unpause", rc))
        }
    }
}

/// Build into a domain already created, leaving it paused (so that its
/// xenstore home is written before it runs, as libxl does), with an
/// optional ramdisk. A compressed kernel is decompressed into the new
/// domain's own memory through `stage` (see [`crate::staging`]); without
/// a staging area only an ELF kernel can be built.
pub fn build_created_paused_from(
    domid: u16,
    scratch: &mut Scratch,
    region_p2m: &mut Vec<u64>,
    stage: Option<&mut ForeignArea>,
    src: &Sources<'_>,
) -> Result<Built, BuildError> {
    use core::fmt::Write;
    let mut line = Cmdline { buf: [0; MAX_GUEST_CMDLINE], len: 0 };
    let _ = write!(line, "domid={domid} {}", src.extra);
    let cmdline = core::str::from_utf8(&line.buf[..line.len]).unwrap_or("");
    let r = fill(domid, scratch, region_p2m, stage, src, cmdline);
    if r.is_err() {
        let _ = scratch.restore();
        let _ = hv::domctl_simple(hv::DESTROYDOMAIN, domid);
    }
    r
}

fn check(what: &'static str, rc: i64) -> Result<i64, BuildError> {
    if rc < 0 { Err(BuildError(what, rc)) } else { Ok(rc) }
}

fn load_error(e: LoadError) -> BuildError {
    match e {
        LoadError::XzDictionary(_) | LoadError::BadOutputLength { .. } => {
            BuildError("read the kernel image (bzImage payload)", -xen_public::errno::E2BIG)
        }
        _ => BuildError("read the kernel image (bzImage payload)", -xen_public::errno::EINVAL),
    }
}

fn fill(
    domid: u16,
    scratch: &mut Scratch,
    region_p2m: &mut Vec<u64>,
    stage: Option<&mut ForeignArea>,
    src: &Sources<'_>,
    cmdline: &str,
) -> Result<Built, BuildError> {
    let nr_pages = src.nr_pages;
    // As xc_dom_boot_mem_init, which fails with ENOMEM when the machine
    // cannot give the domain its memory; checked first so that a domain
    // too big for the machine never takes its free frames.
    if nr_pages > hv::free_pages() {
        return Err(BuildError("find free memory for the domain", -xen_public::errno::ENOMEM));
    }
    check("max_mem", hv::max_mem(domid, nr_pages * 4))?;
    let image = bzimage::inspect(src.image, nr_pages.saturating_mul(4096)).map_err(load_error)?;
    match (image, stage) {
        (KernelImage::Elf(elf), _) => load(domid, scratch, region_p2m, elf, src, cmdline, None),
        (KernelImage::Compressed(c), Some(area)) => {
            let r = staged_load(domid, scratch, region_p2m, area, &c, src, cmdline);
            area.unmap_all();
            r
        }
        // A compressed kernel is only ever decompressed into the domain's
        // own memory: dom0's 2 MiB heap is no place for it.
        (KernelImage::Compressed(_), None) => Err(BuildError("stage a compressed kernel (no staging area)", -xen_public::errno::ENOMEM)),
    }
}

/// Decompress `c` into the top pfns of the new domain through `area`, load
/// the ELF from there, then zero the staged frames (they become the guest's
/// free memory). The caller unmaps the area.
fn staged_load(
    domid: u16,
    scratch: &mut Scratch,
    region_p2m: &mut Vec<u64>,
    area: &mut ForeignArea,
    c: &Compressed<'_>,
    src: &Sources<'_>,
    cmdline: &str,
) -> Result<Built, BuildError> {
    // xz4rust's decoder does not fit beside the shell on dom0's boot
    // stack: the decompression (and the xz dictionary probe) run on a
    // stack from the heap.
    let mut stack = Vec::new();
    stack.try_reserve_exact(big_stack::DECOMPRESS_STACK).map_err(|_| BuildError("hold a decompression stack", -xen_public::errno::ENOMEM))?;
    stack.resize(big_stack::DECOMPRESS_STACK, 0);
    let mut probed = Err(LoadError::Corrupt(c.method));
    big_stack::run_on(&mut stack, &mut || probed = crate::kernel_image::scratch_len(c));
    let scratch_len = probed.map_err(load_error)?;
    let plan = staging::plan(src.nr_pages, c.output_len as u64, scratch_len as u64, crate::foreign_area::AREA_PAGES)
        .map_err(|_| BuildError("stage the decompressed kernel in the domain's memory", -xen_public::errno::E2BIG))?;
    let mut staged = Vec::new();
    staged.try_reserve_exact(plan.pages() as usize).map_err(|_| BuildError("hold the staged frames' P2M", -xen_public::errno::ENOMEM))?;
    staged.resize(plan.pages() as usize, 0);
    hv::populate_physmap(domid, plan.first_pfn, &mut staged).map_err(|rc| BuildError("populate_physmap (staging)", rc))?;
    let first = area.map(domid, &staged).map_err(|rc| BuildError("map the staging frames", rc))?;
    let buf = area.bytes(first, plan.pages());
    let (out, rest) = buf.split_at_mut((plan.elf_pages * 4096) as usize);
    let mut decoded = Err(LoadError::Corrupt(c.method));
    big_stack::run_on(&mut stack, &mut || decoded = crate::kernel_image::decompress_into(c, &mut out[..c.output_len], &mut rest[..scratch_len]));
    drop(stack);
    decoded.map_err(load_error)?;
    let r = load(domid, scratch, region_p2m, &out[..c.output_len], src, cmdline, Some((plan, &staged)));
    buf.fill(0);
    r
}

/// libxenguest's `shared_info_x86_64`: the new domain's shared_info page
/// zeroed, with event upcalls masked on every legacy vCPU, so that the
/// guest takes no upcall before it has set up its handler (Linux takes
/// one in `xen_pv_evtchn_do_upcall` with its per-CPU data not yet set up:
/// "PANIC: early exception 0x0e ... cr2 0x0").
fn init_shared_info(scratch: &mut Scratch, domid: u16, mfn: u64) -> Result<(), BuildError> {
    use core::mem::{offset_of, size_of};
    use xen_public::{SharedInfo, VcpuInfo, XEN_LEGACY_MAX_VCPUS};
    let page = scratch.map(domid, mfn).map_err(|BuildError(_, rc)| BuildError("map the shared_info page", rc))?;
    for off in (0..4096u64).step_by(8) {
        // SAFETY: the scratch slot maps the domain's shared_info frame
        // writable; `off` < 4096 and 8-aligned.
        unsafe { ((page + off) as *mut u64).write_volatile(0) };
    }
    for i in 0..XEN_LEGACY_MAX_VCPUS {
        let off = offset_of!(SharedInfo, vcpu_info) + i * size_of::<VcpuInfo>() + offset_of!(VcpuInfo, evtchn_upcall_mask);
        // SAFETY: as above; the offset lies inside the 4096-byte page
        // (32 vcpu_info of 64 bytes at its start).
        unsafe { ((page + off as u64) as *mut u8).write_volatile(1) };
    }
    Ok(())
}

/// Lay out, fill and ready the domain from the ELF `elf` (`staged`: the
/// staging plan and its frames, which the region must not reach and which
/// go into the P2M as they are).
fn load(
    domid: u16,
    scratch: &mut Scratch,
    region_p2m: &mut Vec<u64>,
    elf_bytes: &[u8],
    src: &Sources<'_>,
    cmdline: &str,
    staged: Option<(StagePlan, &[u64])>,
) -> Result<Built, BuildError> {
    let nr_pages = src.nr_pages;
    let elf = Elf::parse(elf_bytes).map_err(|_| BuildError("parse the guest ELF", -xen_public::errno::EINVAL))?;
    let notes = elf.xen_notes().map_err(|_| BuildError("read the Xen notes", -xen_public::errno::EINVAL))?;
    let virt_offset = notes.virt_offset();
    let (kstart, kend) = elf.pv_load_bounds(virt_offset);
    // elf_xen_addr_calc_check: an INIT_P2M address inside the kernel is an
    // error (-EINVAL, as xc_dom_parse_image fails).
    notes.p2m_base(kstart, kend).map_err(|_| BuildError("check the INIT_P2M note", -xen_public::errno::EINVAL))?;
    let input = LayoutInput {
        virt_base: notes.virt_base.unwrap_or(0),
        kernel_start: kstart,
        kernel_end: kend,
        initrd_len: src.ramdisk.len() as u64,
        nr_pages,
        is_domu: true,
        p2m_base: None,
    };
    let lay: DomainLayout = layout::compute(&input).map_err(|_| BuildError("lay out the domain", -xen_public::errno::EINVAL))?;
    // The hypercall page is optional (newer Linux has no such note); when
    // given it must lie in the initial region.
    if let Some(hpage) = notes.hypercall_page
        && (hpage < lay.v_start || hpage.checked_add(4096).is_none_or(|end| end > lay.v_end))
    {
        return Err(BuildError("find the hypercall page in the initial region", -xen_public::errno::EINVAL));
    }
    let region_pages = lay.region_pages();
    if region_pages > REGION_P2M_BUDGET {
        return Err(BuildError("fit the initial region in dom0's build budget", -xen_public::errno::E2BIG));
    }
    // The region is below what is staged (the ELF being read).
    let rest_end = match staged {
        Some((plan, _)) => {
            plan.check_region(region_pages).map_err(|_| BuildError("fit the kernel beside its staged image", -xen_public::errno::E2BIG))?;
            plan.first_pfn
        }
        None => nr_pages,
    };
    region_p2m.clear();
    region_p2m.try_reserve_exact(region_pages as usize).map_err(|_| BuildError("hold the initial region's P2M", -xen_public::errno::ENOMEM))?;
    region_p2m.resize(region_pages as usize, 0);
    hv::populate_physmap(domid, 0, region_p2m).map_err(|rc| BuildError("populate_physmap", rc))?;
    let p2m: &[u64] = region_p2m;
    let shared_info = hv::shared_info_frame(domid).map_err(|rc| BuildError("getdomaininfo", rc))?;
    // Before setvcpucontext, as libxenguest: the hypervisor keeps the
    // mask written here (Xen's arch_set_info_guest does not touch it).
    init_shared_info(scratch, domid, shared_info)?;
    let console_port = hv::alloc_unbound(domid, 0).map_err(|rc| BuildError("alloc_unbound (console)", rc))?;
    let store_port = hv::alloc_unbound(domid, 0).map_err(|rc| BuildError("alloc_unbound (xenstore)", rc))?;
    let console = lay.console.ok_or(BuildError("lay out the console page", 0))?;
    let store = lay.xenstore.ok_or(BuildError("lay out the xenstore page", 0))?;
    let console_mfn = p2m[lay.pfn_of(console.start) as usize];
    let store_mfn = p2m[lay.pfn_of(store.start) as usize];

    let mut mem = DomMem { domid, p2m, v_start: lay.v_start, scratch, err: None };
    for seg in elf.segments().filter(|s| s.kind == PT_LOAD) {
        let data = elf.segment_data(&seg).map_err(|_| BuildError("read a segment", -xen_public::errno::EINVAL))?;
        let dest = seg.paddr.wrapping_add(virt_offset);
        // pv_load_bounds put every segment in the kernel's range, which
        // the layout put in the region; checked again for what is written.
        if !staging::inside_region(dest, data.len() as u64, lay.v_start, region_pages) {
            return Err(BuildError("place a segment in the initial region", -xen_public::errno::EINVAL));
        }
        mem.write(dest, data)?;
    }
    mem.write(lay.initrd.start, src.ramdisk)?;
    mem.write(lay.p2m.start, p2m.as_bytes())?;
    populate_rest(&mut mem, lay.p2m.start, region_pages, rest_end)?;
    if let Some((plan, frames)) = staged {
        mem.write(lay.p2m.start + plan.first_pfn * 8, frames.as_bytes())?;
    }
    let mut si = start_info(&StartInfoFields {
        nr_pages,
        shared_info: shared_info << 12,
        store_mfn,
        store_evtchn: store_port,
        console_mfn,
        console_evtchn: console_port,
        pt_base: lay.page_tables.start,
        nr_pt_frames: lay.nr_pt_frames,
        mfn_list: lay.p2m.start,
        cmdline,
    });
    // libxenguest's start_info_x86_64: the ramdisk by virtual address.
    if !src.ramdisk.is_empty() {
        si.mod_start = lay.initrd.start;
        si.mod_len = src.ramdisk.len() as u64;
    }
    mem.write(lay.start_info.start, si.as_bytes())?;
    let tables = pagetable::build(&lay, p2m, &mut mem).map_err(|_| BuildError("build the page tables", 0))?;
    if let Some(e) = mem.err {
        return Err(e);
    }
    scratch.restore()?;

    if let Some(hpage) = notes.hypercall_page {
        check("hypercall_init", hv::hypercall_init(domid, p2m[lay.pfn_of(hpage) as usize]))?;
    }
    check("pin the L4", hv::pin_l4(domid, tables.l4_mfn))?;
    let entry = notes.entry.unwrap_or(elf.entry());
    check("setvcpucontext", hv::set_vcpu_context(domid, entry, lay.stack.end, lay.start_info.start, tables.l4_mfn))?;
    Ok(Built { domid, console_mfn, console_port, store_mfn, store_port })
}
