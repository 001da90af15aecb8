//! Building domain 0 from its kernel image, the way Xen's dom0 builder does:
//! the kernel (an ELF, or a bzImage whose compressed payload is decompressed
//! first into hypervisor frames that are freed when the build ends, as Xen
//! decompresses into a buffer it discards), memory, the initial region (kernel, initrd, P2M, start_info, bootstrap
//! page tables, stack), the hypercall page, shared_info, the M2P entries and
//! the first register state.
//!
//! Invariant: when `build_dom0` returns `Ok`, every frame of the domain is
//! zeroed or filled from the image, its bootstrap page tables map page-table
//! frames read-only, and its L4 carries the hypervisor's slots 256-271
//! unchanged. On `Err`, nothing has been entered.

use super::layout::{self, DomainLayout, LayoutError, LayoutInput, PAGE_SIZE};
use super::pagetable::{self, FrameWriter};
use super::vcpu::{CpuUserRegs, FLAT_CS64, FLAT_SS64, Rflags};
use crate::arch::x86_64::frame_box::FrameSlice;
use crate::guest_access::Frame;
use crate::mm::Mfn;
use crate::mm::machine::{self, FRAMES};
use crate::mm::page_type::{PageType, Who};
use xen_libelf::bzimage::{self, KernelImage, LoadError};
use xen_libelf::{Elf, ElfError, PT_LOAD};
use xen_public::{SifFlags, StartInfo};

/// Domain 0's id.
const DOM0: u16 = 0;

/// Byte offset of `vcpu_info[0].evtchn_upcall_mask` in shared_info.
pub const SHINFO_UPCALL_MASK: usize = core::mem::offset_of!(xen_public::VcpuInfo, evtchn_upcall_mask);
/// Byte offset of `vcpu_info[0].arch.cr2`.
pub const SHINFO_CR2: usize = core::mem::offset_of!(xen_public::VcpuInfo, arch) + core::mem::offset_of!(xen_public::ArchVcpuInfo, cr2);
/// Byte offset of `arch.max_pfn` in shared_info.
pub const SHINFO_MAX_PFN: usize = core::mem::offset_of!(xen_public::SharedInfo, arch) + core::mem::offset_of!(xen_public::ArchSharedInfo, max_pfn);

/// Why dom0 could not be built.
#[derive(Clone, Copy, Debug)]
pub enum BuildError {
    /// The kernel image is neither an ELF nor a bzImage this loader can
    /// decompress.
    Kernel(LoadError),
    /// The kernel image is not a valid ELF.
    Elf(ElfError),
    /// The ELF has no Xen notes saying it is a PV kernel.
    NotPvKernel,
    /// The image's notes and segments do not give a usable layout.
    Layout(LayoutError),
    /// The hypercall page note points outside the initial region.
    BadHypercallPage,
    /// The initrd does not fit beside the initial region (pages needed).
    InitrdTooLarge(u64),
    /// Not enough free memory for the requested size.
    OutOfMemory(u64),
    /// The page-table builder failed (a layout bug).
    PageTables,
}

impl core::fmt::Display for BuildError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BuildError::Elf(e) => write!(f, "bad ELF: {}", e.describe()),
            BuildError::Kernel(LoadError::Unsupported(m)) => write!(f, "kernel image: {} payloads are not supported here", m.name()),
            BuildError::Kernel(e) => write!(f, "kernel image: {} ({e:?})", e.describe()),
            BuildError::NotPvKernel => f.write_str("not a Xen PV kernel: it has no Xen ELF notes"),
            BuildError::Layout(e) => write!(f, "no usable layout: {e:?}"),
            BuildError::BadHypercallPage => f.write_str("Invalid HYPERCALL_PAGE field in ELF notes"),
            BuildError::InitrdTooLarge(p) => write!(f, "not enough RAM for the initrd ({p} pages beside the initial region)"),
            BuildError::OutOfMemory(p) => write!(f, "not enough free memory for {p} pages"),
            BuildError::PageTables => f.write_str("page-table construction failed"),
        }
    }
}

/// What the builder needs.
pub struct Dom0Image<'a> {
    /// The kernel: an ELF, or a bzImage with a compressed ELF payload.
    pub kernel: &'a [u8],
    /// The initrd (second boot module), if any.
    pub initrd: Option<&'a [u8]>,
    /// The kernel's command line.
    pub cmdline: &'a str,
    /// Pages to give the domain.
    pub nr_pages: u64,
}

/// A built domain, ready to enter.
pub struct Built {
    /// First register state.
    pub regs: CpuUserRegs,
    /// Machine address of the L4 (pinned, validated).
    pub l4_maddr: u64,
    /// The shared_info frame.
    pub shared_info: Mfn,
    /// First frame of the domain's memory (allocated contiguously).
    pub first_mfn: Mfn,
    /// Pages owned.
    pub nr_pages: u64,
    /// The initial layout.
    pub layout: DomainLayout,
    /// Page-table frames by pfn, with their level (for the frame table).
    pub pt_frames: pagetable::BuiltTables,
    /// An initrd left unmapped (SIF_MOD_START_PFN): its first pfn and length.
    pub unmapped_initrd: Option<(u64, u64)>,
}

/// Writes table entries through the direct map.
struct DirectMapTables;

impl FrameWriter for DirectMapTables {
    fn zero(&mut self, mfn: u64) {
        // The builder only passes frames of the domain under construction.
        if let Some(f) = Frame::new(Mfn(mfn)) {
            f.scrub();
        }
    }

    fn write(&mut self, mfn: u64, index: usize, val: u64) {
        if let Some(f) = Frame::new(Mfn(mfn)) {
            f.write_u64(index, val);
        }
    }
}

/// The domain's memory as one machine-contiguous byte range.
struct DomainMemory {
    first: Mfn,
    v_start: u64,
    nr_pages: u64,
}

impl DomainMemory {
    /// Copy `bytes` to guest virtual `va` within the initial region (frame
    /// by frame, through `Frame`: only the builder touches these frames
    /// until the domain first runs).
    fn write_at(&self, va: u64, bytes: &[u8]) {
        let off = va - self.v_start;
        assert!(off + bytes.len() as u64 <= self.nr_pages * PAGE_SIZE, "builder wrote outside the domain");
        let mut done = 0usize;
        while done < bytes.len() {
            let at = off + done as u64;
            let in_frame = (at % PAGE_SIZE) as usize;
            let n = (PAGE_SIZE as usize - in_frame).min(bytes.len() - done);
            if let Some(f) = Frame::new(Mfn(self.first.0 + at / PAGE_SIZE)) {
                f.write_bytes(in_frame, &bytes[done..done + n]);
            }
            done += n;
        }
    }
}

/// Stub `i` of a 64-bit PV hypercall page.
pub fn hypercall_stub(i: usize) -> [u8; 32] {
    let mut s = [0xcc; 32];
    if i == xen_public::hypercall::IRET as usize {
        // push %rcx; push %r11; push %rax; mov $23,%eax; syscall
        s[..12].copy_from_slice(&[0x51, 0x41, 0x53, 0x50, 0xb8, 23, 0, 0, 0, 0x0f, 0x05, 0xcc]);
    } else {
        // push %rcx; push %r11; mov $i,%eax; syscall; pop %r11; pop %rcx; ret
        s[..15].copy_from_slice(&[0x51, 0x41, 0x53, 0xb8, i as u8, 0, 0, 0, 0x0f, 0x05, 0x41, 0x5b, 0x59, 0xc3, 0xcc]);
    }
    s
}

/// The ELF bytes of dom0's kernel: the module itself, or its bzImage
/// payload decompressed into hypervisor frames that `holder` keeps (the
/// caller drops them when the build ends). The xz dictionary, if any, lives
/// in frames freed as soon as the payload is decompressed.
fn kernel_elf<'a>(module: &'a [u8], holder: &'a mut Option<FrameSlice<u8>>) -> Result<&'a [u8], BuildError> {
    let bound = machine::free_frames().saturating_mul(PAGE_SIZE);
    let c = match bzimage::inspect(module, bound).map_err(BuildError::Kernel)? {
        KernelImage::Elf(elf) => return Ok(elf),
        KernelImage::Compressed(c) => c,
    };
    let pages = |n: usize| (n as u64).div_ceil(PAGE_SIZE);
    let scratch_len = c.scratch_len().map_err(BuildError::Kernel)?;
    let mut out = FrameSlice::with_len(c.output_len, 0u8).ok_or(BuildError::OutOfMemory(pages(c.output_len)))?;
    let mut scratch = FrameSlice::with_len(scratch_len.max(1), 0u8).ok_or(BuildError::OutOfMemory(pages(scratch_len)))?;
    c.decompress_into(&mut out[..c.output_len], &mut scratch).map_err(BuildError::Kernel)?;
    drop(scratch);
    log::info!("dom0 kernel: {} payload of {} KiB decompressed to {} KiB", c.method.name(), c.stream.len() / 1024, c.output_len / 1024);
    Ok(&holder.insert(out)[..c.output_len])
}

/// Build dom0. `idle_l4` is the hypervisor's own L4 (slots 256-271 copied).
pub fn build_dom0(img: &Dom0Image<'_>, idle_l4: Mfn) -> Result<Built, BuildError> {
    // Decompressed kernel frames: freed when this function returns.
    let mut decompressed = None;
    let kernel = kernel_elf(img.kernel, &mut decompressed)?;
    let elf = Elf::parse(kernel).map_err(BuildError::Elf)?;
    let notes = elf.xen_notes().map_err(BuildError::Elf)?;
    if !notes.is_pv_kernel() {
        return Err(BuildError::NotPvKernel);
    }
    let virt_base = notes.virt_base.unwrap_or(0);
    let virt_offset = notes.virt_offset();
    let (kstart, kend) = elf.pv_load_bounds(virt_offset);
    // elf_xen_addr_calc_check: an INIT_P2M address inside the kernel is an
    // error; otherwise the P2M list is mapped there, outside the region.
    let p2m_base = notes.p2m_base(kstart, kend).map_err(BuildError::Elf)?;
    let initrd_len = img.initrd.map_or(0, |i| i.len() as u64);
    // XEN_ELFNOTE_MOD_START_PFN: the initrd stays out of the initial
    // mapping, in the domain's last pfns (Xen's `unmapped_initrd`).
    let unmapped_initrd = notes.mod_start_pfn && initrd_len > 0;
    let mapped_initrd_len = if unmapped_initrd { 0 } else { initrd_len };
    let input = LayoutInput {
        virt_base,
        kernel_start: kstart,
        kernel_end: kend,
        initrd_len: mapped_initrd_len,
        nr_pages: img.nr_pages,
        is_domu: false,
        p2m_base,
    };
    let lay = layout::compute(&input).map_err(BuildError::Layout)?;
    let initrd_pages = initrd_len.div_ceil(PAGE_SIZE);
    // Xen: "Domain 0 allocation is too small for kernel image".
    let p2m_frames = lay.p2m_outside.map_or(0, |m| m.frames());
    if unmapped_initrd && lay.region_pages() + p2m_frames + initrd_pages > img.nr_pages {
        return Err(BuildError::InitrdTooLarge(initrd_pages));
    }
    // The hypercall page is optional (newer Linux has no such note); when
    // given it must lie in the initial region, as Xen's dom0 builder checks.
    if let Some(hpage) = notes.hypercall_page
        && (hpage < lay.v_start || hpage.checked_add(PAGE_SIZE).is_none_or(|end| end > lay.v_end))
    {
        return Err(BuildError::BadHypercallPage);
    }

    let first = FRAMES.lock().as_mut().and_then(|f| f.alloc_contiguous(img.nr_pages)).ok_or(BuildError::OutOfMemory(img.nr_pages))?;
    let mem = DomainMemory { first, v_start: lay.v_start, nr_pages: img.nr_pages };
    let mut ft = machine::FRAME_TABLE.lock();
    let ft = ft.as_mut().ok_or(BuildError::PageTables)?;
    for pfn in 0..img.nr_pages {
        DirectMapTables.zero(first.0 + pfn);
        machine::set_m2p(Mfn(first.0 + pfn), pfn);
        ft.assign(first.0 + pfn, DOM0).map_err(|_| BuildError::PageTables)?;
    }

    for seg in elf.segments().filter(|s| s.kind == PT_LOAD) {
        let data = elf.segment_data(&seg).map_err(BuildError::Elf)?;
        mem.write_at(seg.paddr.wrapping_add(virt_offset), data);
    }
    let initrd_pfn = img.nr_pages - initrd_pages;
    match img.initrd {
        Some(initrd) if unmapped_initrd => mem.write_at(lay.v_start + initrd_pfn * PAGE_SIZE, initrd),
        Some(initrd) => mem.write_at(lay.initrd.start, initrd),
        None => {}
    }
    if let Some(hpage) = notes.hypercall_page {
        for i in 0..xen_public::hypercall::PAGE_STUBS {
            mem.write_at(hpage + (i * 32) as u64, &hypercall_stub(i));
        }
    }

    // The P2M list, in the guest's own memory.
    // Dom0's memory is machine-contiguous: pfn -> first + pfn. The builder
    // keeps its own copy (in frames of the hypervisor's, freed after the
    // build) for the page-table layout.
    let mut p2m = FrameSlice::with_len(img.nr_pages as usize, 0u64).ok_or(BuildError::OutOfMemory(img.nr_pages))?;
    for (pfn, slot) in p2m.iter_mut().enumerate() {
        *slot = first.0 + pfn as u64;
    }
    let p2m = &p2m[..img.nr_pages as usize];
    // In the region, or (INIT_P2M) in its own frames after the region.
    let p2m_at = lay.p2m_outside.map_or(lay.p2m.start, |m| lay.v_start + m.first_pfn * PAGE_SIZE);
    for (pfn, chunk) in p2m.chunks(512).enumerate() {
        mem.write_at(p2m_at + pfn as u64 * PAGE_SIZE, zerocopy::IntoBytes::as_bytes(chunk));
    }
    let pt = pagetable::build(&lay, p2m, &mut DirectMapTables).map_err(|_| BuildError::PageTables)?;
    if let Some(m) = &lay.p2m_outside {
        // Xen's setup_pv_physmap: validated with the rest by the pin below.
        pagetable::map_p2m(pt.l4_mfn, m, p2m, &mut DirectMapTables).map_err(|_| BuildError::PageTables)?;
    }
    copy_hypervisor_slots(idle_l4, Mfn(pt.l4_mfn));
    // Validate the bootstrap tables exactly as a guest's MMUEXT_PIN_L4_TABLE
    // would, then take the reference the vCPU's current L4 holds.
    let who = Who::own(DOM0, true);
    let mut pmem = machine::DirectMapMem::new(false);
    ft.pin(&mut pmem, pt.l4_mfn, 4, who).map_err(|_| BuildError::PageTables)?;
    ft.get_page(pt.l4_mfn, DOM0).map_err(|_| BuildError::PageTables)?;
    ft.get_page_type(&mut pmem, pt.l4_mfn, PageType::L4, who).map_err(|_| BuildError::PageTables)?;

    let shared_info = machine::alloc_frame().ok_or(BuildError::OutOfMemory(1))?;
    ft.share_with_guest(shared_info.0, DOM0).map_err(|_| BuildError::PageTables)?;
    // Freshly allocated (zeroed), owned by the new domain, not yet mapped.
    let shinfo = Frame::new(shared_info).ok_or(BuildError::OutOfMemory(1))?;
    shinfo.write_u8(SHINFO_UPCALL_MASK, 1);
    shinfo.write_u64(SHINFO_MAX_PFN / 8, img.nr_pages);

    let mut si = StartInfo::new();
    si.nr_pages = img.nr_pages;
    si.shared_info = shared_info.maddr();
    si.flags = (SifFlags::PRIVILEGED | SifFlags::INITDOMAIN).bits();
    si.pt_base = lay.page_tables.start;
    si.nr_pt_frames = lay.nr_pt_frames;
    si.mfn_list = lay.p2m_outside.map_or(lay.p2m.start, |m| m.va.start);
    if unmapped_initrd {
        // SIF_MOD_START_PFN: mod_start is the initrd's first pfn.
        si.flags |= SifFlags::MOD_START_PFN.bits();
        si.mod_start = initrd_pfn;
        si.mod_len = initrd_len;
    } else if initrd_len > 0 {
        si.mod_start = lay.initrd.start;
        si.mod_len = initrd_len;
    }
    let n = img.cmdline.len().min(si.cmd_line.len() - 1);
    si.cmd_line[..n].copy_from_slice(&img.cmdline.as_bytes()[..n]);
    // Xen: the P2M's own frames (INIT_P2M), else none after the last pfn.
    (si.first_p2m_pfn, si.nr_p2m_frames) = lay.p2m_outside.map_or((img.nr_pages, 0), |m| (m.first_pfn, m.frames()));
    mem.write_at(lay.start_info.start, zerocopy::IntoBytes::as_bytes(&si));

    let regs = CpuUserRegs {
        rip: notes.entry.unwrap_or(elf.entry()),
        cs: FLAT_CS64,
        rflags: Rflags::IF.bits() | 2,
        rsp: lay.stack.end,
        ss: FLAT_SS64,
        rsi: lay.start_info.start,
        ..Default::default()
    };
    Ok(Built {
        regs,
        l4_maddr: pt.l4_mfn << 12,
        shared_info,
        first_mfn: first,
        nr_pages: img.nr_pages,
        layout: lay,
        pt_frames: pt,
        unmapped_initrd: unmapped_initrd.then_some((initrd_pfn, initrd_len)),
    })
}

/// Copy the hypervisor's L4 slots 256-271 into a guest L4.
pub fn copy_hypervisor_slots(idle_l4: Mfn, guest_l4: Mfn) {
    let (Some(src), Some(dst)) = (Frame::new(idle_l4), Frame::new(guest_l4)) else { return };
    for slot in xen_public::FIRST_RESERVED_L4_SLOT..xen_public::LAST_RESERVED_L4_SLOT_END {
        dst.write_u64(slot, src.read_u64(slot));
    }
}
