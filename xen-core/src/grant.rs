//! Grant tables v1: the shared entries' flag protocol, active pins, the
//! maptrack, and a domain's table ([`GrantTable`]) as Xen keeps them.
//!
//! Pure logic. Invariants: a grant is pinned (GTF_reading, and GTF_writing
//! for writable pins) exactly while some mapping or copy of it exists, so
//! the granting guest can see that it cannot revoke it yet; a read-only
//! grant is never pinned writable; every map handle names one live mapping.
//! A table's cost grows with the frames set up, not with [`MAX_FRAMES`]
//! (Xen's `gnttab_grow_table`): each of its `nr_frames` shared frames has
//! its own page of active entries, allocated when the frame is, and there
//! is none past them.
#![forbid(unsafe_code)]

#[cfg(not(target_os = "none"))]
extern crate alloc;

/// `GNTST_*` status codes.
pub mod gntst {
    /// okay
    pub const OKAY: i16 = 0;
    /// general_error
    pub const GENERAL_ERROR: i16 = -1;
    /// bad_domain
    pub const BAD_DOMAIN: i16 = -2;
    /// bad_gntref
    pub const BAD_GNTREF: i16 = -3;
    /// bad_handle
    pub const BAD_HANDLE: i16 = -4;
    /// bad_virt_addr
    pub const BAD_VIRT_ADDR: i16 = -5;
    /// bad_dev_addr
    pub const BAD_DEV_ADDR: i16 = -6;
    /// no_device_space
    pub const NO_DEVICE_SPACE: i16 = -7;
    /// permission_denied
    pub const PERMISSION_DENIED: i16 = -8;
    /// bad_page
    pub const BAD_PAGE: i16 = -9;
    /// bad_copy_arg
    pub const BAD_COPY_ARG: i16 = -10;
    /// address_too_big
    pub const ADDRESS_TOO_BIG: i16 = -11;
    /// eagain
    pub const EAGAIN: i16 = -12;
}

pub use xen_public::grant_table::{GntmapFlags, GrantType, GtfFlags};

/// Entries per grant-table frame (8-byte v1 entries).
pub const ENTRIES_PER_FRAME: u32 = 512;
/// Grant-table frames a domain may have: Xen 4.17's `opt_max_grant_frames`
/// default (`gnttab_max_frames`), what GNTTABOP_query_size reports as
/// `max_nr_frames` and the most GNTTABOP_setup_table grows a table to.
pub const MAX_FRAMES: u32 = 64;
/// Mappings a domain may hold at once.
pub const MAPTRACK: usize = 256;

/// The new flags for pinning an entry with `flags` and `domid` for `ldom`,
/// or the status refusing it (Xen's `_set_status_v1`).
///
/// The first pin needs a `GTF_permit_access` entry (the type field, not a
/// bit) for `ldom` that is not `GTF_sub_page` (v2 only, refused for
/// mappings).
pub fn pin_flags(flags: u16, domid: u16, ldom: u16, readonly: bool, already_pinned: bool) -> Result<u16, i16> {
    let f = GtfFlags::of(flags);
    if !already_pinned && (GrantType::of(flags) != GrantType::PermitAccess || f.contains(GtfFlags::SUB_PAGE) || domid != ldom) {
        return Err(gntst::GENERAL_ERROR);
    }
    if !readonly && f.contains(GtfFlags::READONLY) {
        return Err(gntst::GENERAL_ERROR);
    }
    let pin = if readonly { GtfFlags::READING } else { GtfFlags::READING.union(GtfFlags::WRITING) };
    Ok(flags | pin.bits())
}

/// Most pins of one kind an entry may hold (Xen bounds its pin counters
/// the same way, so they can never wrap).
pub const PIN_MAX: u16 = 0x7fff;

/// Pin counts of one grant entry (Xen's active entry, reduced).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pin {
    /// Read-only pins.
    pub readers: u16,
    /// Writable pins.
    pub writers: u16,
    /// Domain holding the pins (meaningful while pinned).
    pub domid: u16,
    /// The frame taken at the first pin (Xen's `act->mfn`): later pins use
    /// it, whatever the granter writes into the entry meanwhile.
    pub frame: u64,
}

impl Pin {
    /// Whether anything pins the entry.
    pub fn pinned(&self) -> bool {
        self.readers + self.writers > 0
    }

    /// Take one pin for `mapper`. While pinned, only the domain that holds
    /// the pins may add more (Xen: "Bad domain"), and no count overflows:
    /// both are `GNTST_general_error`.
    pub fn acquire(&mut self, mapper: u16, readonly: bool) -> Result<(), i16> {
        if self.pinned() && self.domid != mapper {
            return Err(gntst::GENERAL_ERROR);
        }
        let n = if readonly { &mut self.readers } else { &mut self.writers };
        if *n >= PIN_MAX {
            return Err(gntst::GENERAL_ERROR);
        }
        *n += 1;
        self.domid = mapper;
        Ok(())
    }

    /// Drop one pin of the kind taken.
    pub fn release(&mut self, readonly: bool) {
        let n = if readonly { &mut self.readers } else { &mut self.writers };
        *n = n.saturating_sub(1);
    }

    /// Flags to clear from the shared entry after dropping a pin: writing
    /// when no writable pin is left, reading when no pin is left. (Clear
    /// them with `& !clear.bits()`: the set's own `!` would drop the bits
    /// it does not name, the type field among them.)
    pub fn flags_to_clear(&self) -> GtfFlags {
        let mut clear = GtfFlags::empty();
        if self.writers == 0 {
            clear |= GtfFlags::WRITING;
        }
        if !self.pinned() {
            clear |= GtfFlags::READING;
        }
        clear
    }
}

/// One mapping made by `map_grant_ref`: a host mapping (a PTE at
/// `host_addr`), a device mapping (references held for a bus address), or
/// both; the handle lives until both parts are unmapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// The granting domain ([`DEAD_GRANTER`] once it was destroyed).
    pub dom: u16,
    /// The grant reference.
    pub gref: u32,
    /// Where it is mapped (0: no host mapping left).
    pub host_addr: u64,
    /// Whether the device part is still mapped.
    pub device: bool,
    /// Read-only mapping.
    pub readonly: bool,
}

/// What a maptrack entry names as granter once the granter was destroyed:
/// never a live domain, so a later domain reusing the id is not touched
/// by unmaps of the old mappings.
pub const DEAD_GRANTER: u16 = 0x7ff4; // DOMID_INVALID

/// A domain's maptrack: handle -> mapping.
#[derive(Clone)]
pub struct Maptrack {
    slots: [Option<Mapping>; MAPTRACK],
}

impl Default for Maptrack {
    fn default() -> Self {
        Maptrack { slots: [None; MAPTRACK] }
    }
}

impl Maptrack {
    /// Record a mapping; `None` if full (GNTST_no_space).
    pub fn insert(&mut self, m: Mapping) -> Option<u32> {
        let h = self.slots.iter().position(Option::is_none)?;
        self.slots[h] = Some(m);
        Some(h as u32)
    }

    /// The mapping behind a handle.
    pub fn get(&self, handle: u32) -> Option<Mapping> {
        self.slots.get(handle as usize).copied().flatten()
    }

    /// Drop a handle.
    pub fn remove(&mut self, handle: u32) -> Option<Mapping> {
        self.slots.get_mut(handle as usize)?.take()
    }

    /// Replace a live handle's mapping (part of it was unmapped).
    pub fn update(&mut self, handle: u32, m: Mapping) {
        if let Some(slot @ Some(_)) = self.slots.get_mut(handle as usize) {
            *slot = Some(m);
        }
    }

    /// Mark every mapping of `granter`'s grants as of a dead granter.
    pub fn forget_granter(&mut self, granter: u16) {
        for m in self.slots.iter_mut().flatten().filter(|m| m.dom == granter) {
            m.dom = DEAD_GRANTER;
        }
    }
}

/// Where one grant frame's active entries live: frames of the hypervisor's
/// own allocator on the machine, the heap in host builds.
#[cfg(target_os = "none")]
type ActiveStore = crate::arch::x86_64::frame_box::FrameSlice<Pin>;
#[cfg(not(target_os = "none"))]
type ActiveStore = alloc::boxed::Box<[Pin]>;

/// The active entries (pins) of one grant frame's [`ENTRIES_PER_FRAME`]
/// entries, all unpinned when made (Xen's `gt->active[i]` page).
pub struct ActiveFrame(ActiveStore);

impl ActiveFrame {
    /// A fresh page of unpinned entries; `None` when memory is short.
    pub fn new() -> Option<ActiveFrame> {
        let n = ENTRIES_PER_FRAME as usize;
        #[cfg(target_os = "none")]
        let store = ActiveStore::with_len(n, Pin::default())?;
        #[cfg(not(target_os = "none"))]
        let store = alloc::vec![Pin::default(); n].into_boxed_slice();
        Some(ActiveFrame(store))
    }
}

/// A domain's grant table: its shared frames with their active entries,
/// and the mappings it holds of others' (or its own) grants.
///
/// Invariant: `frames[..nr_frames]` are the shared frames and exactly
/// `active[..nr_frames]` are allocated; the table only grows (as Xen's,
/// until the domain dies), by whole frames, up to [`MAX_FRAMES`].
pub struct GrantTable {
    frames: [u64; MAX_FRAMES as usize],
    nr_frames: u32,
    active: [Option<ActiveFrame>; MAX_FRAMES as usize],
    /// Mappings made by this domain: handle -> mapping, with the frame.
    pub maptrack: Maptrack,
    /// Frame of each maptrack handle.
    pub mapped_frames: [u64; MAPTRACK],
}

impl Default for GrantTable {
    fn default() -> Self {
        GrantTable {
            frames: [0; MAX_FRAMES as usize],
            nr_frames: 0,
            active: core::array::from_fn(|_| None),
            maptrack: Maptrack::default(),
            mapped_frames: [0; MAPTRACK],
        }
    }
}

impl GrantTable {
    /// Frames set up.
    pub fn nr_frames(&self) -> u32 {
        self.nr_frames
    }

    /// The shared frames, in table order.
    pub fn frames(&self) -> &[u64] {
        &self.frames[..self.nr_frames as usize]
    }

    /// Entries the table has.
    pub fn nr_entries(&self) -> u32 {
        self.nr_frames * ENTRIES_PER_FRAME
    }

    /// Grow by one shared frame `mfn` with its active entries `active`;
    /// `false` (nothing changed) at [`MAX_FRAMES`].
    pub fn push_frame(&mut self, mfn: u64, active: ActiveFrame) -> bool {
        let i = self.nr_frames as usize;
        if i >= MAX_FRAMES as usize {
            return false;
        }
        self.frames[i] = mfn;
        self.active[i] = Some(active);
        self.nr_frames += 1;
        true
    }

    fn slot(&self, gref: u32) -> Option<(usize, usize)> {
        (gref < self.nr_entries()).then_some(((gref / ENTRIES_PER_FRAME) as usize, (gref % ENTRIES_PER_FRAME) as usize))
    }

    /// The pins of entry `gref` (`None` past the table).
    pub fn pin(&self, gref: u32) -> Option<Pin> {
        let (f, i) = self.slot(gref)?;
        self.active[f].as_ref().and_then(|a| a.0.get(i)).copied()
    }

    /// Replace the pins of entry `gref` (nothing past the table).
    pub fn set_pin(&mut self, gref: u32, pin: Pin) {
        if let Some((f, i)) = self.slot(gref)
            && let Some(p) = self.active[f].as_mut().and_then(|a| a.0.get_mut(i))
        {
            *p = pin;
        }
    }
}

/// Check a copy's bounds (Xen: offset + len within the page).
pub fn copy_bounds(src_off: u16, dst_off: u16, len: u16) -> Result<(), i16> {
    if u32::from(src_off) + u32::from(len) > 4096 || u32::from(dst_off) + u32::from(len) > 4096 {
        return Err(gntst::BAD_COPY_ARG);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERMIT: u16 = GrantType::PermitAccess.bits();
    const READONLY: u16 = GtfFlags::READONLY.bits();
    const READING: u16 = GtfFlags::READING.bits();
    const WRITING: u16 = GtfFlags::WRITING.bits();

    #[test]
    fn pinning_sets_reading_and_writing() {
        // ABI: the hypervisor sets GTF_reading (and GTF_writing) while a grant is mapped.
        assert_eq!(pin_flags(PERMIT, 0, 0, false, false), Ok(PERMIT | READING | WRITING));
        assert_eq!(pin_flags(PERMIT | READONLY, 0, 0, true, false), Ok(PERMIT | READONLY | READING));
    }

    #[test]
    fn bad_entries_are_general_errors() {
        assert_eq!(pin_flags(PERMIT, 5, 0, true, false), Err(gntst::GENERAL_ERROR), "granted to another domain");
        assert_eq!(pin_flags(0, 0, 0, true, false), Err(gntst::GENERAL_ERROR), "invalid entry");
        assert_eq!(pin_flags(GrantType::AcceptTransfer.bits(), 0, 0, true, false), Err(gntst::GENERAL_ERROR));
        assert_eq!(pin_flags(PERMIT | READONLY, 0, 0, false, false), Err(gntst::GENERAL_ERROR), "writable map of a r/o grant");
        assert_eq!(pin_flags(PERMIT | GtfFlags::SUB_PAGE.bits(), 0, 0, true, false), Err(gntst::GENERAL_ERROR));
        // GTF_transitive (3) is a type of its own, not permit_access plus a bit.
        assert_eq!(pin_flags(GrantType::Transitive.bits(), 0, 0, true, false), Err(gntst::GENERAL_ERROR));
    }

    #[test]
    fn revocation_is_visible_while_pinned() {
        // A guest that clears its entry while mapped: an existing pin does
        // not re-check type and domid, but the flags keep READING set.
        assert_eq!(pin_flags(READING, 0, 0, true, true), Ok(READING));
        let mut a = Pin { readers: 1, writers: 1, domid: 0, frame: 0 };
        a.release(false);
        assert_eq!(a.flags_to_clear(), GtfFlags::WRITING);
        a.release(true);
        assert_eq!(a.flags_to_clear(), GtfFlags::WRITING | GtfFlags::READING);
    }

    #[test]
    fn only_the_pinning_domain_adds_pins() {
        // ABI (Xen map_grant_ref): an entry already pinned by domain A
        // cannot be mapped by domain B (GNTST_general_error), even though
        // the shared entry's domid is not re-read while pinned.
        let mut p = Pin::default();
        assert_eq!(p.acquire(3, true), Ok(()));
        assert_eq!(p.acquire(4, true), Err(gntst::GENERAL_ERROR));
        assert_eq!(p.acquire(3, false), Ok(()));
        p.release(true);
        p.release(false);
        assert_eq!(p.acquire(4, true), Ok(()), "free again once unpinned");
    }

    #[test]
    fn pin_counts_never_wrap() {
        let mut p = Pin { readers: PIN_MAX, writers: 0, domid: 1, frame: 0 };
        assert_eq!(p.acquire(1, true), Err(gntst::GENERAL_ERROR));
        assert_eq!(p.readers, PIN_MAX);
    }

    #[test]
    fn a_dead_granter_is_forgotten() {
        let mut m = Maptrack::default();
        let h = m.insert(Mapping { dom: 5, gref: 1, host_addr: 0x1000, device: false, readonly: false }).unwrap();
        m.forget_granter(5);
        assert_eq!(m.get(h).map(|x| x.dom), Some(DEAD_GRANTER));
    }

    #[test]
    fn maptrack_handles() {
        let mut m = Maptrack::default();
        let map = Mapping { dom: 0, gref: 8, host_addr: 0x1000, device: false, readonly: true };
        let h = m.insert(map).unwrap();
        assert_eq!(m.get(h), Some(map));
        assert_eq!(m.remove(h), Some(map));
        assert_eq!(m.get(h), None, "a handle is gone after unmap");
        assert_eq!(m.get(9999), None);
        for _ in 0..MAPTRACK {
            m.insert(map).unwrap();
        }
        assert_eq!(m.insert(map), None, "maptrack full: GNTST_no_space");
    }

    #[test]
    fn a_table_grows_by_frames_up_to_xens_default_maximum() {
        // Xen 4.17: opt_max_grant_frames is 64; active entries exist only
        // for the frames set up (gnttab_grow_table).
        assert_eq!(MAX_FRAMES, 64);
        let mut t = GrantTable::default();
        assert_eq!((t.nr_frames(), t.nr_entries(), t.pin(0)), (0, 0, None), "no entries before setup");
        for f in 0..MAX_FRAMES {
            assert!(t.push_frame(1000 + u64::from(f), ActiveFrame::new().unwrap()));
        }
        assert!(!t.push_frame(9, ActiveFrame::new().unwrap()), "no 65th frame");
        assert_eq!(t.frames().len(), 64);
        assert_eq!(t.frames()[63], 1063);
        let last = MAX_FRAMES * ENTRIES_PER_FRAME - 1;
        assert_eq!(t.pin(last), Some(Pin::default()));
        assert_eq!(t.pin(last + 1), None, "past the table");
        let p = Pin { readers: 1, writers: 0, domid: 3, frame: 77 };
        t.set_pin(last, p);
        assert_eq!(t.pin(last), Some(p));
        assert_eq!(t.pin(last - ENTRIES_PER_FRAME), Some(Pin::default()), "each frame has its own entries");
        t.set_pin(last + 1, p);
        assert_eq!(t.pin(last + 1), None, "a set past the table changes nothing");
    }

    #[test]
    fn a_fresh_table_costs_no_active_entries() {
        // The fixed part is small: frame numbers and an empty slot per
        // possible frame, never MAX_FRAMES pages of active entries.
        assert!(core::mem::size_of::<GrantTable>() < 16 * 1024, "{}", core::mem::size_of::<GrantTable>());
    }

    #[test]
    fn copy_bounds_are_checked() {
        // ABI: copy past the page end gives GNTST_bad_copy_arg.
        assert_eq!(copy_bounds(0, 0, 4096), Ok(()));
        assert_eq!(copy_bounds(4000, 0, 97), Err(gntst::BAD_COPY_ARG));
        assert_eq!(copy_bounds(0, 4095, 2), Err(gntst::BAD_COPY_ARG));
        assert_eq!(copy_bounds(u16::MAX, 0, u16::MAX), Err(gntst::BAD_COPY_ARG));
    }
}
