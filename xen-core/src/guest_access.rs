//! The one way into machine memory that a guest can also reach: frames
//! of the direct map, by machine frame number.
//!
//! Owns every pointer the hypervisor forms into RAM outside its own
//! structures. Invariants: an access is only ever a volatile or atomic
//! load or store of one naturally aligned word, or a bulk copy between
//! such memory and a hypervisor buffer; no reference (`&`, `&mut`, slice,
//! `'static`) into a frame ever leaves this module, so a guest writing the
//! same bytes on another CPU, or a frame freed later, never breaks Rust's
//! aliasing rules for guest memory; offsets are checked against the frame
//! (a bad one is a hypervisor bug and stops the machine), and a frame past
//! the direct map is refused at construction.
//!
//! Not yet enforced by types: `Frame::new` takes any frame in the direct
//! map, so the caller (safe code elsewhere in xen-core) decides that the
//! frame may be accessed as it does, by the frame table's rules; a frame
//! the hypervisor keeps for itself (the frame table, a `FrameBox`) must
//! never be named here. Constructors carrying proof of ownership and type
//! are the next step (see docs/security.md).
//!
//! Guest *virtual* memory goes through [`crate::guest::GuestMem`], which
//! walks the guest's tables and lands here for the bytes.

use crate::arch::x86_64::maddr_to_virt;
use crate::mm::Mfn;
use core::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, Ordering};

/// Bytes in a frame.
const FRAME: usize = 4096;

/// One past the highest machine address the direct map covers: 0 (no
/// frame) until boot sets it, once. Private, so that no code outside this
/// module can widen what [`Frame::new`] accepts. A plain atomic rather
/// than a `Once`: every frame access checks it.
static DIRECTMAP_END: AtomicU64 = AtomicU64::new(0);

/// Set the end of the direct map (boot, once, before any guest exists); a
/// second call is refused (returns false) and changes nothing.
pub fn set_directmap_end(end: u64) -> bool {
    DIRECTMAP_END.compare_exchange(0, end, Ordering::AcqRel, Ordering::Acquire).is_ok()
}

/// Which frames are RAM (set once at boot from the machine map). Guest
/// virtual memory the hypervisor reads or writes on a guest's behalf must
/// be RAM: a guest's own MMIO mapping is never touched through the
/// write-back direct map (Xen goes through the guest's mapping instead).
static RAM: spin::Once<crate::domain::iocap::RangeSet> = spin::Once::new();

/// Record which frames are RAM (boot, once; later calls change nothing).
pub fn set_ram(ram: crate::domain::iocap::RangeSet) {
    RAM.call_once(|| ram);
}

/// A machine frame inside the direct map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame(Mfn);

impl Frame {
    /// The frame `mfn`, if the direct map covers it.
    #[inline]
    pub fn new(mfn: Mfn) -> Option<Frame> {
        let end = DIRECTMAP_END.load(Ordering::Acquire);
        (mfn.maddr().checked_add(FRAME as u64)? <= end).then_some(Frame(mfn))
    }

    /// The frame `mfn` for a copy to or from guest virtual memory: as
    /// [`Frame::new`], and RAM (not a device's frame a guest mapped).
    #[inline]
    pub fn guest_ram(mfn: Mfn) -> Option<Frame> {
        let f = Frame::new(mfn)?;
        RAM.get().is_none_or(|ram| ram.contains(mfn.0)).then_some(f)
    }

    /// The frame's number.
    pub fn mfn(self) -> Mfn {
        self.0
    }

    /// Address of byte `off` (which must leave room for `len` bytes, and
    /// be a multiple of `align`) in the direct map. Anything else is a
    /// hypervisor bug: it stops the machine rather than touch another
    /// place (callers bound every guest-supplied offset first).
    #[inline]
    fn at(self, off: usize, len: usize, align: usize) -> *mut u8 {
        let fits = off.checked_add(len).is_some_and(|end| end <= FRAME) && off.is_multiple_of(align);
        if !fits {
            self.bad_access(off, len);
        }
        (maddr_to_virt(self.0.maddr()) as usize + off) as *mut u8
    }

    /// A caller asked for bytes outside the frame: a hypervisor bug.
    #[cold]
    #[inline(never)]
    fn bad_access(self, off: usize, len: usize) -> ! {
        crate::setup::fatal(format_args!("frame {:#x}: access of {len} bytes at {off}", self.0.0))
    }

    /// The 64-bit word at index `idx` (0-511).
    #[inline]
    pub fn read_u64(self, idx: usize) -> u64 {
        // SAFETY: `at` keeps an 8-aligned word inside the frame, which the
        // direct map covers (checked by `new`); a volatile load of
        // plain-old-data is valid whatever a guest stored there.
        unsafe { (self.at(idx * 8, 8, 8) as *const u64).read_volatile() }
    }

    /// Store the 64-bit word at index `idx` (0-511).
    #[inline]
    pub fn write_u64(self, idx: usize, v: u64) {
        // SAFETY: as `read_u64`; the caller decided the frame may be
        // written (the frame table's rules), and no Rust reference to
        // these bytes exists.
        unsafe { (self.at(idx * 8, 8, 8) as *mut u64).write_volatile(v) }
    }

    /// The byte at `off`.
    #[inline]
    pub fn read_u8(self, off: usize) -> u8 {
        // SAFETY: as `read_u64`, for one byte.
        unsafe { self.at(off, 1, 1).read_volatile() }
    }

    /// Store the byte at `off`.
    #[inline]
    pub fn write_u8(self, off: usize, v: u8) {
        // SAFETY: as `write_u64`, for one byte.
        unsafe { self.at(off, 1, 1).write_volatile(v) }
    }

    /// Store the u32 at byte `off` (4-aligned).
    #[inline]
    pub fn write_u32(self, off: usize, v: u32) {
        // SAFETY: as `write_u64`, for an aligned u32.
        unsafe { (self.at(off, 4, 4) as *mut u32).write_volatile(v) }
    }

    /// Store `words` at byte `off` (4-aligned) on, in order: one bounds
    /// check for all of them (the trace writer's record stores).
    #[inline]
    pub fn write_u32s(self, off: usize, words: &[u32]) {
        let dst = self.at(off, 4 * words.len(), 4) as *mut u32;
        for (i, &w) in words.iter().enumerate() {
            // SAFETY: as `write_u32`: `at` checked that the `words.len()`
            // aligned u32s from `off` lie inside the frame.
            unsafe { dst.add(i).write_volatile(w) }
        }
    }

    /// The u32 at byte `off` (4-aligned).
    #[inline]
    pub fn read_u32(self, off: usize) -> u32 {
        // SAFETY: as `read_u64`, for an aligned u32.
        unsafe { (self.at(off, 4, 4) as *const u32).read_volatile() }
    }

    #[inline]
    fn atomic_u64(self, off: usize) -> &'static AtomicU64 {
        // SAFETY: an 8-aligned word inside the frame in the direct map;
        // the reference is private to this module and dropped before the
        // public operation returns; the guest accesses the same words
        // atomically (the shared_info and grant-table ABI).
        unsafe { AtomicU64::from_ptr(self.at(off, 8, 8) as *mut u64) }
    }

    #[inline]
    fn atomic_u32(self, off: usize) -> &'static AtomicU32 {
        // SAFETY: as `atomic_u64`, for an aligned u32.
        unsafe { AtomicU32::from_ptr(self.at(off, 4, 4) as *mut u32) }
    }

    #[inline]
    fn atomic_u16(self, off: usize) -> &'static AtomicU16 {
        // SAFETY: as `atomic_u64`, for an aligned u16.
        unsafe { AtomicU16::from_ptr(self.at(off, 2, 2) as *mut u16) }
    }

    /// Atomically OR `bits` into the u64 at byte `off`; the old value.
    #[inline]
    pub fn fetch_or_u64(self, off: usize, bits: u64) -> u64 {
        self.atomic_u64(off).fetch_or(bits, Ordering::SeqCst)
    }

    /// Atomically AND `bits` into the u64 at byte `off`; the old value.
    #[inline]
    pub fn fetch_and_u64(self, off: usize, bits: u64) -> u64 {
        self.atomic_u64(off).fetch_and(bits, Ordering::SeqCst)
    }

    /// Atomic load of the u64 at byte `off`.
    #[inline]
    pub fn load_u64(self, off: usize) -> u64 {
        self.atomic_u64(off).load(Ordering::SeqCst)
    }

    /// Atomic load of the u32 at byte `off`.
    #[inline]
    pub fn load_u32(self, off: usize) -> u32 {
        self.atomic_u32(off).load(Ordering::SeqCst)
    }

    /// Atomic store of the u32 at byte `off`.
    #[inline]
    pub fn store_u32(self, off: usize, v: u32) {
        self.atomic_u32(off).store(v, Ordering::SeqCst)
    }

    /// Compare-and-swap the u32 at byte `off`: `Ok(cur)` if it held `cur`
    /// and now holds `new`, else `Err(what it held)`.
    #[inline]
    pub fn cmpxchg_u32(self, off: usize, cur: u32, new: u32) -> Result<u32, u32> {
        self.atomic_u32(off).compare_exchange(cur, new, Ordering::SeqCst, Ordering::SeqCst)
    }

    /// Atomically OR `bits` into the u32 at byte `off`; the old value.
    #[inline]
    pub fn fetch_or_u32(self, off: usize, bits: u32) -> u32 {
        self.atomic_u32(off).fetch_or(bits, Ordering::SeqCst)
    }

    /// Atomically AND `bits` into the u32 at byte `off`; the old value.
    #[inline]
    pub fn fetch_and_u32(self, off: usize, bits: u32) -> u32 {
        self.atomic_u32(off).fetch_and(bits, Ordering::SeqCst)
    }

    /// Atomic load of the u16 at byte `off`.
    #[inline]
    pub fn load_u16(self, off: usize) -> u16 {
        self.atomic_u16(off).load(Ordering::SeqCst)
    }

    /// Compare-and-swap the u16 at byte `off` (see [`Self::cmpxchg_u32`]).
    #[inline]
    pub fn cmpxchg_u16(self, off: usize, cur: u16, new: u16) -> Result<u16, u16> {
        self.atomic_u16(off).compare_exchange(cur, new, Ordering::SeqCst, Ordering::SeqCst)
    }

    /// Atomically OR `bits` into the u16 at byte `off`; the old value.
    #[inline]
    pub fn fetch_or_u16(self, off: usize, bits: u16) -> u16 {
        self.atomic_u16(off).fetch_or(bits, Ordering::SeqCst)
    }

    /// Atomically AND `bits` into the u16 at byte `off`; the old value.
    #[inline]
    pub fn fetch_and_u16(self, off: usize, bits: u16) -> u16 {
        self.atomic_u16(off).fetch_and(bits, Ordering::SeqCst)
    }

    /// Copy `buf.len()` bytes from byte `off` of the frame into `buf`.
    #[inline]
    pub fn read_bytes(self, off: usize, buf: &mut [u8]) {
        let src = self.at(off, buf.len(), 1);
        // SAFETY: `at` keeps the range inside the frame in the direct map;
        // `buf` is the hypervisor's own and cannot overlap guest RAM
        // reached through the direct map; bytes are plain data.
        unsafe { core::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), buf.len()) }
    }

    /// Copy `buf` to byte `off` of the frame.
    #[inline]
    pub fn write_bytes(self, off: usize, buf: &[u8]) {
        let dst = self.at(off, buf.len(), 1);
        // SAFETY: as `read_bytes`; the caller decided the frame may be
        // written.
        unsafe { core::ptr::copy_nonoverlapping(buf.as_ptr(), dst, buf.len()) }
    }

    /// Copy `len` bytes from byte `src_off` of `src` to byte `dst_off` of
    /// `self` (the frames may be the same; the ranges may overlap).
    pub fn copy_from(self, dst_off: usize, src: Frame, src_off: usize, len: usize) {
        let (s, d) = (src.at(src_off, len, 1), self.at(dst_off, len, 1));
        // SAFETY: both ranges lie inside frames of the direct map; `copy`
        // allows overlap.
        unsafe { core::ptr::copy(s, d, len) }
    }

    /// Make every byte of the frame zero, without writing it if it already
    /// is (the policy of `mm/scrub.rs`).
    pub fn scrub(self) {
        if !crate::mm::scrub::is_zero(|i| self.read_u64(i)) {
            // SAFETY: the whole frame lies in the direct map; the caller
            // owns it (just allocated, or being built).
            unsafe { core::ptr::write_bytes(self.at(0, FRAME, 1), 0, FRAME) }
        }
    }
}

impl crate::time::RecordMem for Frame {
    fn load_u32(&self, off: usize) -> u32 {
        Frame::read_u32(*self, off)
    }
    fn store_u32(&mut self, off: usize, v: u32) {
        self.write_u32(off, v);
    }
    fn store_u64(&mut self, off: usize, v: u64) {
        self.write_u64(off / 8, v);
    }
    fn store_u8(&mut self, off: usize, v: u8) {
        self.write_u8(off, v);
    }
}
