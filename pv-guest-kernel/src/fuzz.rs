//! The hypercall fuzzer's generator: from a seed and a description of the
//! guest's world ([`Env`]), a reproducible stream of hypercalls with
//! structured arguments.
//!
//! Arguments are drawn from classes that matter to a hypervisor rather
//! than uniformly: the guest's own frames, its page tables and special
//! frames, another domain's frames, free and past-RAM frames; valid,
//! unmapped, read-only, non-canonical and hypervisor-range pointers;
//! counts at the edges (0, 1, 511, 512, 513, huge, with the
//! `MMU_UPDATE_PREEMPTED` bit); every hypercall number and sub-op. The
//! structures a call points to are written into the caller's argument
//! buffer.
//!
//! Invariants: the stream depends only on the seed and the [`Env`] (never
//! on results), so `seed` and a call index reproduce a failure; the
//! generator never asks for `SCHEDOP_shutdown` or `SCHEDOP_block`; calls
//! that can destroy the fuzzing guest itself (a new kernel L4, writes to
//! its code, stack or live page tables, a bogus trap table or callback,
//! `iret`) are drawn only with probability [`Gen::danger_per_million`];
//! calls that hit a bug listed in [`KNOWN_HYPERVISOR_BUGS`] are not made.
#![forbid(unsafe_code)]

use xen_public::hypercall as nr;
use xen_public::pte::PteFlags;

/// Hypervisor bugs the fuzzer steps around until they are fixed: each
/// entry turns off the calls that reach that bug. Empty this list once
/// the hypervisor is fixed.
pub const KNOWN_HYPERVISOR_BUGS: &[KnownBug] = &[];

/// A known hypervisor bug and the calls that reach it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KnownBug {
    /// `MMUEXT_NEW_BASEPTR` (or NEW_USER_BASEPTR) with mfn 0.
    NewBaseptrZero,
    /// `MMUEXT_NEW_BASEPTR` inside a batch of more than one op.
    NewBaseptrInBatch,
    /// Page-table entries pointing at a table of their own level
    /// (linear mappings).
    LinearEntries,
    /// Taking a type reference on shared_info or a grant-table frame
    /// (pinning, GDT/LDT, descriptor updates, CLEAR/COPY_PAGE of them).
    RetypeSpecialFrames,
    /// `GNTTABOP_copy` of frames the domain does not own: through grant
    /// entries naming any frame, or naming a frame directly.
    GrantCopyFrames,
    /// `GNTTABOP_map_grant_ref` with `GNTMAP_device_map`: a device mapping
    /// holds no reference, so the granter can free the frame under it.
    GrantDeviceMapNoRef,
    /// `GNTTABOP_map_grant_ref` once the maptrack is full: the PTE is
    /// written, the map refused, and the mapping outlives the grant. The
    /// fuzzer then stops mapping after [`MAX_GRANT_MAPS`] map operations.
    GrantMapMaptrackFull,
    /// `GNTTABOP_unmap_grant_ref` with host_addr 0.
    GrantUnmapNoHostAddr,
    /// `MMUEXT_SET_LDT` with entries.
    SetLdt,
    /// `console_io` from a domU.
    ConsoleIo,
    /// `XENMEM_increase_reservation` / `populate_physmap` whose extent
    /// list cannot be written back: the new frame stays allocated but
    /// unaccounted, so a domU can exceed its max_mem.
    ReservationUnwritableList,
}

/// Grant map operations a fuzzer makes per run while
/// [`KnownBug::GrantMapMaptrackFull`] is avoided (the maptrack holds 256).
pub const MAX_GRANT_MAPS: u64 = 200;

/// Whether calls reaching `bug` are to be avoided.
pub fn avoided(bug: KnownBug) -> bool {
    KNOWN_HYPERVISOR_BUGS.contains(&bug)
}

/// Xorshift64*: small, fast and reproducible.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (any value, 0 included).
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xd1b5_4a32_d192_ed03 | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    /// One of `xs`.
    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

/// A seed derived from another (restarts, per-fuzzer seeds).
pub fn derive_seed(seed: u64, n: u64) -> u64 {
    let mut r = Rng::new(seed ^ n.wrapping_mul(0xa076_1d64_78bd_642f));
    r.next_u64()
}

/// Pages of the playground: guest pages whose mappings and frames the
/// fuzzer may change freely.
pub const PLAY_PAGES: usize = 64;
/// Bytes of the argument buffer the runner maps (16 pages); a page that
/// is not mapped follows it.
pub const BUF_BYTES: usize = 16 * 4096;
/// The main call's structures go in the second half, which ends at the
/// unmapped page, so an array longer than what was generated faults
/// there; sub-calls' structures go in 2 KiB slots of the first half.
const MAIN: usize = BUF_BYTES / 2;
const SUB_SLOT: usize = 2048;
const SUB_SLOTS: usize = MAIN / SUB_SLOT;

/// What the fuzzer knows about itself and its neighbours.
#[derive(Clone, Debug)]
pub struct Env {
    /// Its own domain id.
    pub domid: u16,
    /// Other domains worth naming: dom0, the other fuzzer, the canary.
    pub others: [u16; 3],
    /// XENMEM_maximum_ram_page.
    pub max_mfn: u64,
    /// Playground virtual address (page-aligned; [`PLAY_PAGES`] pages in
    /// one L1).
    pub play_va: u64,
    /// The playground's original frames.
    pub play_mfns: [u64; PLAY_PAGES],
    /// The L1 mapping the playground, and the entry of its first page.
    pub play_l1: (u64, usize),
    /// The live page tables (mfn, level): the bootstrap tables.
    pub tables: [(u64, u8); 8],
    /// How many of `tables` are set.
    pub nr_tables: usize,
    /// The kernel L4 in use.
    pub l4: u64,
    /// Frames the hypervisor writes for the guest or the guest needs
    /// whole: shared_info, start_info, console and xenstore rings, grant
    /// frames, P2M frames.
    pub special: [u64; 12],
    /// How many of `special` are set.
    pub nr_special: usize,
    /// Frames the fuzzer cannot lose: kernel code and data, stack,
    /// argument buffer.
    pub vital: [u64; 8],
    /// How many of `vital` are set.
    pub nr_vital: usize,
    /// First of 64 frames of the canary domain (0: none).
    pub canary_mfn: u64,
    /// The argument buffer ([`BUF_BYTES`], an unmapped page after it).
    pub buf_va: u64,
    /// A page mapped read-only (a bootstrap page table).
    pub ro_va: u64,
    /// A page of kernel code.
    pub code_va: u64,
    /// The stack page.
    pub stack_va: u64,
    /// A page of harmless text for console writes.
    pub text_va: u64,
    /// A valid, terminated trap table.
    pub trap_table_va: u64,
    /// Valid callback entries (event, failsafe).
    pub callbacks: [u64; 2],
}

impl Default for Env {
    fn default() -> Self {
        Env {
            domid: 0,
            others: [0; 3],
            max_mfn: 0,
            play_va: 0,
            play_mfns: [0; PLAY_PAGES],
            play_l1: (0, 0),
            tables: [(0, 0); 8],
            nr_tables: 0,
            l4: 0,
            special: [0; 12],
            nr_special: 0,
            vital: [0; 8],
            nr_vital: 0,
            canary_mfn: 0,
            buf_va: 0,
            ro_va: 0,
            code_va: 0,
            stack_va: 0,
            text_va: 0,
            trap_table_va: 0,
            callbacks: [0; 2],
        }
    }
}

/// One generated hypercall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Call {
    /// Hypercall number (RAX).
    pub op: u64,
    /// RDI, RSI, RDX, R10, R8.
    pub args: [u64; 5],
    /// What it is, for progress lines.
    pub name: &'static str,
}

/// What a batch of calls exercises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// `mmu_update`.
    MmuUpdate,
    /// `mmuext_op`, all commands.
    MmuextOp,
    /// `update_va_mapping` (and the other-domain variant).
    UpdateVaMapping,
    /// `multicall`, nested too.
    Multicall,
    /// `grant_table_op`, all commands.
    GrantTable,
    /// `event_channel_op`, all commands.
    EventChannel,
    /// `memory_op`.
    Memory,
    /// `set_gdt`, `update_descriptor`.
    Descriptors,
    /// `vcpu_op`, `set_timer_op`, `sched_op` yield.
    Vcpu,
    /// `domctl`, `sysctl` and other calls a domU may not make.
    Privileged,
    /// Everything else: version, console, callbacks, traps, segments,
    /// unknown numbers.
    Misc,
    /// Any of the above, call by call.
    Mixed,
}

impl Family {
    /// Its name in progress lines.
    pub fn name(self) -> &'static str {
        match self {
            Family::MmuUpdate => "mmu_update",
            Family::MmuextOp => "mmuext_op",
            Family::UpdateVaMapping => "update_va_mapping",
            Family::Multicall => "multicall",
            Family::GrantTable => "grant_table_op",
            Family::EventChannel => "event_channel_op",
            Family::Memory => "memory_op",
            Family::Descriptors => "descriptors",
            Family::Vcpu => "vcpu",
            Family::Privileged => "privileged",
            Family::Misc => "misc",
            Family::Mixed => "mixed",
        }
    }

    const ALL: [Family; 11] = [
        Family::MmuUpdate,
        Family::MmuextOp,
        Family::UpdateVaMapping,
        Family::Multicall,
        Family::GrantTable,
        Family::EventChannel,
        Family::Memory,
        Family::Descriptors,
        Family::Vcpu,
        Family::Privileged,
        Family::Misc,
    ];
}

/// Page-table entry flags: present only, a writable mapping (P | RW | US
/// | A | D), a read-only one (P | US | A), and the bits a guest may or may
/// not set that the generator adds one at a time.
const P: u64 = PteFlags::PRESENT.bits();
const PTE_RW: u64 = PteFlags::PRESENT.union(PteFlags::RW).union(PteFlags::USER).union(PteFlags::ACCESSED).union(PteFlags::DIRTY).bits();
const PTE_RO: u64 = PteFlags::PRESENT.union(PteFlags::USER).union(PteFlags::ACCESSED).bits();
const PTE_ODD_BITS: [u64; 6] =
    [PteFlags::PWT.bits(), PteFlags::PCD.bits(), PteFlags::GLOBAL.bits(), PteFlags::NX.bits(), PteFlags::AVAIL_HIGH.bits(), PteFlags::AVAIL.bits()];
/// `MMU_UPDATE_PREEMPTED`.
pub const PREEMPTED: u64 = 0x8000_0000;

/// The stream of calls.
#[derive(Clone, Debug)]
pub struct Gen {
    rng: Rng,
    /// Chance per call (per million) that the call may be one that can
    /// destroy the fuzzing guest itself.
    pub danger_per_million: u64,
    /// The current call may be dangerous.
    dangerous: bool,
    /// Calls left out because of [`KNOWN_HYPERVISOR_BUGS`].
    pub avoided: u64,
    family: Family,
    /// Sub-call slot for the next structure of a multicall.
    sub_next: usize,
    /// Grant map operations generated so far.
    grant_maps: u64,
}

/// Little-endian field writers over the argument buffer.
fn put16(b: &mut [u8], at: usize, v: u16) {
    if let Some(s) = b.get_mut(at..at + 2) {
        s.copy_from_slice(&v.to_le_bytes());
    }
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    if let Some(s) = b.get_mut(at..at + 4) {
        s.copy_from_slice(&v.to_le_bytes());
    }
}

fn put64(b: &mut [u8], at: usize, v: u64) {
    if let Some(s) = b.get_mut(at..at + 8) {
        s.copy_from_slice(&v.to_le_bytes());
    }
}

impl Gen {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Gen { rng: Rng::new(seed), danger_per_million: 50, dangerous: false, avoided: 0, family: Family::Mixed, sub_next: 0, grant_maps: 0 }
    }

    /// Start a batch: pick the family its calls come from.
    pub fn start_batch(&mut self) -> Family {
        self.family = if self.rng.chance(1, 6) { Family::Mixed } else { self.rng.pick(&Family::ALL) };
        self.family
    }

    /// Whether a site of the current call takes its dangerous option:
    /// only in the rare calls drawn as dangerous, and then at half the
    /// sites.
    fn danger(&mut self) -> bool {
        self.dangerous && self.rng.chance(1, 2)
    }

    /// Whether to step around `bug`; counts it.
    fn avoid(&mut self, bug: KnownBug) -> bool {
        let a = avoided(bug);
        if a {
            self.avoided += 1;
        }
        a
    }

    // ---- argument classes ----

    fn domid(&mut self, env: &Env) -> u16 {
        let r = &mut self.rng;
        match r.below(12) {
            0..=2 => xen_public::DOMID_SELF,
            3 | 4 => env.domid,
            5 => 0,
            6 | 7 => r.pick(&env.others),
            8 => r.pick(&[xen_public::DOMID_IO, xen_public::DOMID_XEN, 0x7ff3, xen_public::DOMID_INVALID, xen_public::DOMID_IDLE]),
            9 => env.domid.wrapping_add(1 + r.below(3) as u16),
            10 => r.below(0x7ff0) as u16,
            _ => r.next_u64() as u16,
        }
    }

    /// A machine frame number from one of the classes.
    fn mfn(&mut self, env: &Env) -> u64 {
        let class = self.rng.below(100);
        let r = &mut self.rng;
        let pick_n = |r: &mut Rng, xs: &[u64], n: usize| {
            if n == 0 { 0 } else { xs[r.below(n as u64) as usize] }
        };
        match class {
            0..=29 => r.pick(&env.play_mfns),
            30..=39 => {
                let n = env.nr_tables;
                if n == 0 { 0 } else { env.tables[r.below(n as u64) as usize].0 }
            }
            40..=49 => pick_n(r, &env.special, env.nr_special),
            50..=54 if env.canary_mfn != 0 => env.canary_mfn + r.below(64),
            55..=67 => r.below(env.max_mfn.max(1) + 1),
            68..=72 => r.pick(&env.play_mfns).wrapping_add(r.below(64)).wrapping_sub(32),
            73..=75 => r.below(256),
            76..=80 => env.max_mfn + r.pick(&[1, 2, 100, 0x10_0000]),
            81 => r.pick(&[0x000f_ffff_ffff, 1 << 40, u64::MAX >> 12, u64::MAX]),
            82 if self.danger() => pick_n(&mut self.rng, &env.vital, env.nr_vital),
            _ => self.rng.pick(&env.play_mfns),
        }
    }

    /// Flags for a page-table entry.
    fn pte_flags(&mut self) -> u64 {
        let r = &mut self.rng;
        match r.below(12) {
            0..=3 => PTE_RW,
            4..=6 => PTE_RO,
            7 => 0,
            8 => P,
            9 => PTE_RW | PteFlags::PSE.bits(), // PSE / PAT
            10 => PTE_RW | r.pick(&PTE_ODD_BITS),
            _ => r.next_u64() & 0xfff | (r.next_u64() & (0xfff << 52)),
        }
    }

    /// A page-table entry value.
    fn pte(&mut self, env: &Env) -> u64 {
        if self.rng.chance(1, 30) {
            return self.rng.next_u64();
        }
        let mfn = self.mfn(env);
        (mfn << 12) | self.pte_flags()
    }

    /// A virtual address for mapping calls: mostly the playground.
    fn map_va(&mut self, env: &Env) -> u64 {
        let class = self.rng.below(20);
        let r = &mut self.rng;
        match class {
            0..=13 => env.play_va + r.below(PLAY_PAGES as u64) * 4096 + if r.chance(1, 20) { r.below(4096) } else { 0 },
            14 => r.pick(&[0, 0x1000, 0x4000_0000, 0x7fff_ffff_f000]),
            15 => r.pick(&[0x8000_0000_0000, 0xdead_beef_0000_0000, 0xffff_7fff_ffff_f000]),
            16 => r.pick(&[0xffff_8000_0000_0000, 0xffff_82d0_4020_0000, 0xffff_8300_0000_0000, 0xffff_87ff_ffff_f000]),
            17 => r.pick(&[0xffff_ffff_ffff_f000, 0xffff_ffff_c000_0000, env.play_va + 0x40_0000]),
            18 if self.danger() => self.rng.pick(&[env.code_va, env.stack_va, env.ro_va]),
            _ => env.play_va,
        }
    }

    /// A pointer to a structure: `valid` (in the buffer at `off`) most of
    /// the time, otherwise a bad one.
    fn ptr(&mut self, env: &Env, off: usize) -> u64 {
        let valid = env.buf_va + off as u64;
        let r = &mut self.rng;
        match r.below(40) {
            0..=31 => valid,
            32 => 0,
            33 => r.pick(&[0x1000, 0x7fff_ffff_f000]),
            34 => r.pick(&[0x8000_0000_0000, 0xdead_beef_dead_beef]),
            35 => r.pick(&[0xffff_8000_0000_0000, 0xffff_82d0_4020_0000, 0xffff_8300_0000_1000]),
            36 => env.ro_va + r.below(512) * 8,
            37 => env.buf_va + BUF_BYTES as u64 - r.pick(&[4, 8, 16, 24]),
            38 => r.pick(&[0xffff_ffff_ffff_fff8, 0xffff_ffff_ffff_f000, u64::MAX]),
            _ => env.buf_va + BUF_BYTES as u64,
        }
    }

    /// A count at the edges.
    fn count(&mut self) -> u64 {
        let r = &mut self.rng;
        match r.below(24) {
            0 => 0,
            1..=6 => 1,
            7..=9 => 2 + r.below(6),
            10..=12 => 8 + r.below(56),
            13 => 511,
            14 => 512,
            15 => 513,
            16 => 1024,
            17 => r.pick(&[0x7fff_ffff, 0xffff_ffff, u64::MAX, 1 << 32]),
            18 | 19 => PREEMPTED | r.below(4),
            20 => PREEMPTED | r.pick(&[511, 513, 0x7fff_ffff]),
            _ => 1 + r.below(4),
        }
    }

    /// How many entries to fill for a call with `count` entries of
    /// `size` bytes at `off`.
    fn fill_n(count: u64, size: usize, room: usize) -> usize {
        ((count & !PREEMPTED) as usize).min(room / size)
    }

    /// A count for an array of `size`-byte entries at `off`: any edge
    /// count in the main area (it ends at the unmapped page), no more than
    /// fit in a sub-call's slot (past it lie other sub-calls' bytes).
    fn count_at(&mut self, off: usize, size: usize, room: usize) -> u64 {
        let c = self.count();
        if off >= MAIN || (c & !PREEMPTED) as usize <= room / size {
            return c;
        }
        (c & PREEMPTED) | (room / size) as u64
    }

    /// Where a sub-call's structure goes.
    fn sub_off(&mut self) -> usize {
        let s = self.sub_next % SUB_SLOTS;
        self.sub_next += 1;
        s * SUB_SLOT
    }

    // ---- the calls ----

    /// The next call (its structures written into `buf`, the argument
    /// buffer of [`BUF_BYTES`] mapped at `env.buf_va`).
    pub fn next(&mut self, env: &Env, buf: &mut [u8]) -> Call {
        self.sub_next = 0;
        self.dangerous = self.rng.below(1_000_000) < self.danger_per_million;
        let family = if self.family == Family::Mixed { self.rng.pick(&Family::ALL) } else { self.family };
        self.call(env, buf, family, MAIN, BUF_BYTES - MAIN, 0)
    }

    /// A call of `family` whose structures start at `off`, with `room`
    /// bytes; `depth` counts multicall nesting.
    fn call(&mut self, env: &Env, buf: &mut [u8], family: Family, off: usize, room: usize, depth: u32) -> Call {
        match family {
            Family::MmuUpdate => self.mmu_update(env, buf, off, room),
            Family::MmuextOp => self.mmuext_op(env, buf, off, room),
            Family::UpdateVaMapping => self.update_va_mapping(env),
            Family::Multicall if depth < 2 => self.multicall(env, buf, off, room, depth),
            Family::Multicall => self.update_va_mapping(env),
            Family::GrantTable => self.grant_table_op(env, buf, off, room),
            Family::EventChannel => self.event_channel_op(env, buf, off),
            Family::Memory => self.memory_op(env, buf, off, room),
            Family::Descriptors => self.descriptors(env, buf, off),
            Family::Vcpu => self.vcpu(env, buf, off),
            Family::Privileged => self.privileged(env, buf, off),
            Family::Misc | Family::Mixed => self.misc(env, buf, off, room),
        }
    }

    fn foreigndom(&mut self, env: &Env) -> u64 {
        let pg = u64::from(self.domid(env));
        if self.rng.chance(1, 8) { pg | (u64::from(self.domid(env)).wrapping_add(1) & 0xffff) << 16 } else { pg }
    }

    fn mmu_update(&mut self, env: &Env, buf: &mut [u8], off: usize, room: usize) -> Call {
        let count = self.count_at(off, 16, room);
        let n = Self::fill_n(count, 16, room);
        for i in 0..n {
            let (ptr, val) = self.mmu_req(env);
            put64(buf, off + i * 16, ptr);
            put64(buf, off + i * 16 + 8, val);
        }
        let done = if self.rng.chance(1, 4) { 0 } else { self.ptr(env, off + room - 8) };
        let list = self.ptr(env, off);
        Call { op: nr::MMU_UPDATE, args: [list, count, done, self.foreigndom(env), 0], name: "mmu_update" }
    }

    /// One `mmu_update` request.
    fn mmu_req(&mut self, env: &Env) -> (u64, u64) {
        let kind = self.rng.pick(&[0u64, 0, 0, 0, 1, 2, 3]);
        if kind == 1 {
            // MACHPHYS_UPDATE: frame -> pfn.
            let mfn = self.mfn(env);
            return ((mfn << 12) | 1, self.rng.pick(&[0, 1, 100, u64::MAX, 0x7fff_ffff]));
        }
        let (table, idx) = match self.rng.below(10) {
            // The playground's L1 entries.
            0..=4 => (env.play_l1.0, env.play_l1.1 + self.rng.below(PLAY_PAGES as u64) as usize),
            // Unused entries of the bootstrap tables: mostly the upper
            // half of L4/L3 slots, and any for a rare dangerous call.
            5 | 6 if env.nr_tables > 0 => {
                let (t, level) = env.tables[self.rng.below(env.nr_tables as u64) as usize];
                let idx = if self.danger() {
                    self.rng.below(512) as usize
                } else if level == 1 && t == env.play_l1.0 {
                    env.play_l1.1 + self.rng.below(PLAY_PAGES as u64) as usize
                } else if level == 4 {
                    self.rng.pick(&[1, 2, 255, 256, 261, 271, 272, 300, 510])
                } else if level == 1 {
                    // Another L1 of ours: its entries map the kernel.
                    return (((env.play_l1.0) << 12) | ((env.play_l1.1 as u64) << 3) | kind, self.pte(env));
                } else {
                    self.rng.pick(&[3, 100, 256, 300, 509])
                };
                (t, idx)
            }
            // A frame that is not a live table: a plain write.
            7 => (self.rng.pick(&env.play_mfns), self.rng.below(512) as usize),
            // Any frame from the classes.
            8 => {
                let m = self.mfn(env);
                if env.vital[..env.nr_vital].contains(&m) || (0..env.nr_tables).any(|i| env.tables[i].0 == m) {
                    (env.play_l1.0, env.play_l1.1)
                } else {
                    (m, self.rng.below(512) as usize)
                }
            }
            _ => (env.play_l1.0, env.play_l1.1 + self.rng.below(PLAY_PAGES as u64) as usize),
        };
        let mut val = self.pte(env);
        if !self.avoid_linear(env, val) {
            val = 0;
        }
        let ptr = (table << 12) | ((idx as u64 & 511) << 3) | kind | if self.rng.chance(1, 40) { 4 } else { 0 };
        (ptr, val)
    }

    /// `false` if `val` may make a linear entry and those are avoided.
    fn avoid_linear(&mut self, env: &Env, val: u64) -> bool {
        let target = (val >> 12) & 0xff_ffff_ffff;
        let is_table = (0..env.nr_tables).any(|i| env.tables[i].0 == target && env.tables[i].1 >= 2);
        !(is_table && self.avoid(KnownBug::LinearEntries))
    }

    fn is_special(env: &Env, mfn: u64) -> bool {
        env.special[..env.nr_special].contains(&mfn)
    }

    fn mmuext_op(&mut self, env: &Env, buf: &mut [u8], off: usize, room: usize) -> Call {
        let count = self.count_at(off, 24, room);
        let n = Self::fill_n(count, 24, room);
        for i in 0..n {
            let (cmd, a1, a2) = self.mmuext_one(env, n > 1);
            put32(buf, off + i * 24, cmd);
            put32(buf, off + i * 24 + 4, self.rng.next_u64() as u32 & if self.rng.chance(1, 10) { !0 } else { 0 });
            put64(buf, off + i * 24 + 8, a1);
            put64(buf, off + i * 24 + 16, a2);
        }
        let done = if self.rng.chance(1, 4) { 0 } else { self.ptr(env, off + room - 8) };
        let list = self.ptr(env, off);
        Call { op: nr::MMUEXT_OP, args: [list, count, done, self.foreigndom(env), 0], name: "mmuext_op" }
    }

    /// One MMUEXT command `(cmd, arg1, arg2)`.
    fn mmuext_one(&mut self, env: &Env, in_batch: bool) -> (u32, u64, u64) {
        let cmd = if self.rng.chance(1, 30) { self.rng.next_u64() as u32 % 64 } else { self.rng.below(22) as u32 };
        match cmd {
            0..=4 | 19 | 20 => {
                let mut m = self.mfn(env);
                if cmd <= 3 && Self::is_special(env, m) && self.avoid(KnownBug::RetypeSpecialFrames) {
                    m = self.rng.pick(&env.play_mfns);
                }
                (cmd, m, self.rng.next_u64() & if self.rng.chance(1, 4) { !0 } else { 0 })
            }
            5 | 15 => {
                // NEW_BASEPTR: the current L4 unless dangerous (a new
                // kernel L4 unmaps the fuzzer); NEW_USER_BASEPTR: any.
                let mut m = if cmd == 15 || self.danger() { self.mfn(env) } else { env.l4 };
                if self.rng.chance(1, 20) && (cmd == 15 || self.danger()) {
                    m = 0;
                }
                if m == 0 && self.avoid(KnownBug::NewBaseptrZero) {
                    m = env.l4;
                }
                if cmd == 5 && in_batch && self.avoid(KnownBug::NewBaseptrInBatch) {
                    return (6, 0, 0);
                }
                (cmd, m, 0)
            }
            6 | 8 | 10 | 12 => (cmd, self.rng.next_u64() & 0xff, self.ptr(env, 0)),
            7 | 9 | 11 => (cmd, self.map_va(env), self.ptr(env, 0)),
            13 => {
                let ents = self.rng.pick(&[0, 1, 2, 511, 512, 8191, 8192, 8193, 0xffff_ffff]);
                if ents != 0 && self.avoid(KnownBug::SetLdt) {
                    return (13, 0, 0);
                }
                let va = if self.rng.chance(3, 4) { env.play_va + self.rng.below(PLAY_PAGES as u64 - 16) * 4096 } else { self.map_va(env) };
                (13, va, ents)
            }
            16 | 17 => {
                // CLEAR_PAGE / COPY_PAGE: the destination is a playground
                // frame unless dangerous.
                let mut dst = if self.danger() { self.mfn(env) } else { self.rng.pick(&env.play_mfns) };
                if Self::is_special(env, dst) && self.avoid(KnownBug::RetypeSpecialFrames) {
                    dst = self.rng.pick(&env.play_mfns);
                }
                (cmd, dst, self.mfn(env))
            }
            _ => (cmd, self.mfn(env), self.mfn(env)),
        }
    }

    fn update_va_mapping(&mut self, env: &Env) -> Call {
        let va = self.map_va(env);
        let mut pte = self.pte(env);
        if !self.avoid_linear(env, pte) {
            pte = 0;
        }
        let flags = self.rng.pick(&[0, 1, 2, 2, 4, 5, 6, 3, 7, 0x8000_0000_0002]);
        if self.rng.chance(1, 20) {
            let dom = u64::from(self.domid(env));
            return Call { op: nr::UPDATE_VA_MAPPING_OTHERDOMAIN, args: [va, pte, flags, dom, 0], name: "update_va_mapping_otherdomain" };
        }
        Call { op: nr::UPDATE_VA_MAPPING, args: [va, pte, flags, 0, 0], name: "update_va_mapping" }
    }

    fn multicall(&mut self, env: &Env, buf: &mut [u8], off: usize, room: usize, depth: u32) -> Call {
        let count = if self.rng.chance(1, 10) { self.count_at(off, 64, room) } else { 1 + self.rng.below(16) };
        let n = Self::fill_n(count, 64, room).min(32);
        // Entries past the generated ones: a harmless call, so stale
        // bytes never become an iret or a shutdown.
        for i in n..Self::fill_n(count, 64, room) {
            put64(buf, off + i * 64, nr::XEN_VERSION);
            put64(buf, off + i * 64 + 16, 0);
        }
        for i in 0..n {
            let e = off + i * 64;
            let family = self.rng.pick(&Family::ALL);
            let sub = if family == Family::Multicall && depth + 1 < 2 {
                let o = self.sub_off();
                self.multicall(env, buf, o, SUB_SLOT, depth + 1)
            } else if self.danger() {
                // iret in a multicall pops a frame off the fuzzer's stack.
                Call { op: nr::IRET, args: [0; 5], name: "iret" }
            } else {
                let o = self.sub_off();
                self.call(env, buf, family, o, SUB_SLOT, depth + 1)
            };
            // Sometimes another number with these arguments; never iret or
            // a scheduler op (shutdown, block) unless dangerous.
            let mut op = if self.rng.chance(1, 50) { self.rng.below(64) } else { sub.op };
            if op != sub.op && (matches!(op, nr::SCHED_OP | nr::SCHED_OP_COMPAT) || (op == nr::IRET && !self.danger())) {
                op = sub.op;
            }
            put64(buf, e, op);
            put64(buf, e + 8, self.rng.next_u64());
            for (k, a) in sub.args.iter().enumerate() {
                put64(buf, e + 16 + k * 8, *a);
            }
            put64(buf, e + 56, 0);
        }
        let list = self.ptr(env, off);
        Call { op: nr::MULTICALL, args: [list, count, 0, 0, 0], name: if depth > 0 { "multicall(nested)" } else { "multicall" } }
    }

    fn gref(&mut self) -> u32 {
        let r = &mut self.rng;
        match r.below(10) {
            0..=3 => 8 + r.below(32) as u32,
            4 => r.below(8) as u32,
            5 | 6 => r.below(2048) as u32,
            7 => r.pick(&[511, 512, 2047, 2048, 4096]),
            8 => r.next_u64() as u32,
            _ => 8 + r.below(4) as u32,
        }
    }

    fn grant_table_op(&mut self, env: &Env, buf: &mut [u8], off: usize, room: usize) -> Call {
        let mut cmd = if self.rng.chance(1, 20) { self.rng.next_u64() as u32 % 32 } else { self.rng.below(13) as u32 };
        if cmd == 3 && !self.rng.chance(1, 500) {
            // dump_table prints the table on the hypervisor console: rarely.
            cmd = 6;
        }
        let size = match cmd {
            0 => 32,
            1 | 2 | 4 | 7 => 24,
            5 => 40,
            6 | 9 | 10 => 16,
            12 => 16,
            11 => 12,
            _ => 8,
        };
        let count = if cmd == 3 {
            1
        } else if self.rng.chance(1, 3) {
            self.count_at(off, size, room)
        } else {
            1
        };
        let n = Self::fill_n(count, size, room);
        for i in 0..n {
            let e = off + i * size;
            match cmd {
                0 => {
                    // map: host_addr, flags, ref, dom.
                    put64(buf, e, if self.rng.chance(1, 10) { 0 } else { self.map_va(env) });
                    let mut flags = self.rng.pick(&[2u32, 2, 6, 6, 3, 1, 0, 7, 10, 18, 0xff]);
                    if self.rng.chance(1, 30) {
                        flags = self.rng.next_u64() as u32;
                    }
                    if flags & 1 != 0 && self.avoid(KnownBug::GrantDeviceMapNoRef) {
                        flags &= !1;
                    }
                    self.grant_maps += 1;
                    if self.grant_maps > MAX_GRANT_MAPS && self.avoid(KnownBug::GrantMapMaptrackFull) {
                        flags = 0; // neither host nor device map: refused
                    }
                    put32(buf, e + 8, flags);
                    put32(buf, e + 12, self.gref());
                    put16(buf, e + 16, self.domid(env));
                }
                1 | 7 => {
                    // unmap: host_addr, dev_bus_addr / new_addr, handle.
                    let mut host = if self.rng.chance(1, 6) { 0 } else { self.map_va(env) };
                    if host == 0 && cmd == 1 && self.avoid(KnownBug::GrantUnmapNoHostAddr) {
                        host = env.play_va;
                    }
                    put64(buf, e, host);
                    put64(buf, e + 8, if self.rng.chance(1, 2) { 0 } else { self.map_va(env) });
                    put32(buf, e + 16, self.rng.pick(&[0, 1, 2, 3, 255, 256, u32::MAX]));
                }
                2 => {
                    // setup_table: dom, nr_frames, frame_list.
                    put16(buf, e, self.domid(env));
                    put32(buf, e + 4, self.rng.pick(&[0, 1, 1, 2, 4, 5, 32, u32::MAX]));
                    let list = self.sub_off();
                    put64(buf, e + 16, self.ptr(env, list));
                }
                3 | 8 | 10 => {
                    put16(buf, e, self.domid(env));
                    put32(buf, e + 4, self.rng.pick(&[0, 1, 2, 3]));
                    if cmd == 8 {
                        put32(buf, e, self.rng.pick(&[0, 1, 2, 3]));
                    }
                }
                4 => {
                    // transfer: mfn, domid, ref.
                    put64(buf, e, self.mfn(env));
                    put16(buf, e + 8, self.domid(env));
                    put32(buf, e + 12, self.gref());
                }
                5 => {
                    // copy: {ref|gmfn, domid, offset} x2, len, flags.
                    let flags = self.rng.pick(&[0u16, 1, 2, 3, 3, 3, 4, 0xff]);
                    for (side, at) in [(1u16, e), (2, e + 16)] {
                        let by_ref = flags & side != 0;
                        put64(buf, at, if by_ref { u64::from(self.gref()) } else { self.mfn(env) });
                        let mut dom = self.domid(env);
                        if !by_ref && self.avoid(KnownBug::GrantCopyFrames) {
                            put64(buf, at, u64::from(self.gref()));
                            dom = 0x7ff4;
                        }
                        put16(buf, at + 8, dom);
                        put16(buf, at + 10, self.rng.pick(&[0, 8, 4095, 4096, 2048, 0xffff]));
                    }
                    put16(buf, e + 32, self.rng.pick(&[0, 1, 8, 4096, 4097, 0xffff]));
                    put16(buf, e + 34, flags);
                }
                6 | 9 => {
                    put16(buf, e, self.domid(env));
                    put32(buf, e + 4, self.rng.pick(&[0, 1, 4, 100]));
                    let list = self.sub_off();
                    put64(buf, e + 8, self.ptr(env, list));
                }
                _ => {
                    put64(buf, e, self.rng.next_u64());
                    put64(buf, e + 8, self.rng.next_u64() & 0xffff_ffff);
                }
            }
        }
        let uop = self.ptr(env, off);
        Call {
            op: nr::GRANT_TABLE_OP,
            args: [u64::from(cmd) | if self.rng.chance(1, 40) { 1 << 32 } else { 0 }, uop, count, 0, 0],
            name: "grant_table_op",
        }
    }

    fn port(&mut self) -> u32 {
        let r = &mut self.rng;
        match r.below(8) {
            0..=3 => r.below(16) as u32,
            4 => r.below(4096) as u32,
            5 => r.pick(&[4095, 4096, 0x7fff_ffff, u32::MAX]),
            _ => 1 + r.below(4) as u32,
        }
    }

    fn event_channel_op(&mut self, env: &Env, buf: &mut [u8], off: usize) -> Call {
        let cmd = if self.rng.chance(1, 20) { self.rng.next_u64() as u32 % 32 } else { self.rng.below(15) as u32 };
        for w in 0..4 {
            put64(buf, off + w * 8, 0);
        }
        match cmd {
            0 => {
                put16(buf, off, self.domid(env));
                put32(buf, off + 4, self.port());
            }
            1 => {
                put32(buf, off, self.rng.pick(&[0, 0, 1, 2, 3, 4, 23, 24, 100]));
                put32(buf, off + 4, self.rng.pick(&[0, 0, 1, 32, u32::MAX]));
            }
            2 => {
                put32(buf, off, self.rng.below(256) as u32);
                put32(buf, off + 4, self.rng.below(4) as u32);
            }
            5 => {
                put16(buf, off, self.domid(env));
                put32(buf, off + 4, self.port());
            }
            6 => {
                put16(buf, off, self.domid(env));
                put16(buf, off + 2, self.domid(env));
            }
            7 => put32(buf, off, self.rng.pick(&[0, 1, 31, u32::MAX])),
            8 => {
                put32(buf, off, self.port());
                put32(buf, off + 4, self.rng.pick(&[0, 1, u32::MAX]));
            }
            10 => put16(buf, off, self.domid(env)),
            _ => put32(buf, off, self.port()),
        }
        let arg = self.ptr(env, off);
        Call { op: nr::EVENT_CHANNEL_OP, args: [u64::from(cmd), arg, 0, 0, 0], name: "event_channel_op" }
    }

    fn memory_op(&mut self, env: &Env, buf: &mut [u8], off: usize, room: usize) -> Call {
        let cmd = match self.rng.below(10) {
            0..=5 => self.rng.pick(&[0u64, 1, 1, 6, 6, 2, 3, 4]),
            6 => self.rng.below(32),
            7 => self.rng.pick(&[0u64, 1, 6]) | (self.rng.below(4) << 6),
            8 => self.rng.next_u64() & 0xffff_ffff,
            _ => self.rng.pick(&[5u64, 7, 9, 10, 11, 12, 15, 16]),
        };
        match cmd & 0x3f {
            0 | 1 | 6 => {
                let nr_extents = self.count_at(off + 32, 8, room - 32) & !PREEMPTED;
                let list_off = off + 32;
                let n = Self::fill_n(nr_extents, 8, room - 32);
                for i in 0..n {
                    let v = if cmd & 0x3f == 1 {
                        if self.rng.chance(3, 4) { self.rng.pick(&env.play_mfns) } else { self.mfn(env) }
                    } else {
                        {
                            let any = self.rng.below(2048);
                            self.rng.pick(&[0, 1, 1023, 1024, 4096, u64::MAX, any])
                        }
                    };
                    put64(buf, list_off + i * 8, v);
                }
                let mut list = if self.rng.chance(1, 10) { 0 } else { self.ptr(env, list_off) };
                if cmd & 0x3f != 1 && list != env.buf_va + list_off as u64 && self.avoid(KnownBug::ReservationUnwritableList) {
                    list = env.buf_va + list_off as u64;
                }
                put64(buf, off, list);
                put64(buf, off + 8, nr_extents);
                put32(buf, off + 16, self.rng.pick(&[0, 0, 0, 0, 1, 9, 18, 63, u32::MAX]));
                put32(buf, off + 20, self.rng.pick(&[0, 0, 0, 1 << 8, u32::MAX]));
                put16(buf, off + 24, self.domid(env));
            }
            3 | 4 => put16(buf, off, self.domid(env)),
            _ => {
                for w in 0..8 {
                    put64(buf, off + w * 8, self.rng.next_u64() & self.rng.pick(&[0xffff, 0xffff_ffff, u64::MAX]));
                }
            }
        }
        let arg = if cmd & 0x3f == 2 { self.rng.next_u64() } else { self.ptr(env, off) };
        Call { op: nr::MEMORY_OP, args: [cmd, arg, 0, 0, 0], name: "memory_op" }
    }

    fn descriptor(&mut self) -> u64 {
        let r = &mut self.rng;
        match r.below(8) {
            0 => 0,
            1 => 0x00af_9a00_0000_ffff,                                            // 64-bit code
            2 => 0x00cf_9200_0000_ffff,                                            // data
            3 => 0x00af_fa00_0000_ffff,                                            // DPL 3 code
            4 => (0xe033u64 << 16) | (0xc << 40) | (1 << 47) | (r.below(4) << 45), // call gate
            5 => (1 << 47) | (r.pick(&[0x2u64, 0x9, 0xb, 0xe, 0xf]) << 40),        // LDT/TSS/gates
            _ => r.next_u64(),
        }
    }

    fn descriptors(&mut self, env: &Env, buf: &mut [u8], off: usize) -> Call {
        if self.rng.chance(1, 2) {
            let mut mfn = self.mfn(env);
            if Self::is_special(env, mfn) && self.avoid(KnownBug::RetypeSpecialFrames) {
                mfn = self.rng.pick(&env.play_mfns);
            }
            let idx = if self.rng.chance(1, 10) { self.rng.below(4096) } else { self.rng.below(512) * 8 };
            return Call { op: nr::UPDATE_DESCRIPTOR, args: [(mfn << 12) | idx, self.descriptor(), 0, 0, 0], name: "update_descriptor" };
        }
        for i in 0..16 {
            let mut m = self.mfn(env);
            if Self::is_special(env, m) && self.avoid(KnownBug::RetypeSpecialFrames) {
                m = self.rng.pick(&env.play_mfns);
            }
            put64(buf, off + i * 8, m);
        }
        let entries = self.rng.pick(&[0, 1, 16, 512, 513, 1024, 14 * 512, 14 * 512 + 1, 0xffff_ffff, u64::MAX]);
        let list = self.ptr(env, off);
        Call { op: nr::SET_GDT, args: [list, entries, 0, 0, 0], name: "set_gdt" }
    }

    fn vcpu(&mut self, env: &Env, buf: &mut [u8], off: usize) -> Call {
        match self.rng.below(6) {
            0 => {
                let t = self.rng.pick(&[0, 1, 1_000_000, u64::MAX, 1 << 62]);
                Call { op: nr::SET_TIMER_OP, args: [t, 0, 0, 0, 0], name: "set_timer_op" }
            }
            1 => Call { op: nr::SCHED_OP, args: [xen_public::SCHEDOP_YIELD, self.rng.next_u64(), 0, 0, 0], name: "sched_op(yield)" },
            _ => {
                let mut cmd = if self.rng.chance(1, 20) { self.rng.next_u64() as u32 } else { self.rng.below(16) as u32 };
                let vcpu = self.rng.pick(&[0u32, 0, 0, 1, 31, 32, u32::MAX]);
                // Taking the fuzzer's only vCPU down or moving its
                // vcpu_info is self-destruction.
                if vcpu == 0 && (cmd == 2 || cmd == 10) && !self.danger() {
                    cmd = 8;
                }
                let m = self.mfn(env);
                put64(buf, off, self.rng.pick(&[0, 1, 1_000_000_000, u64::MAX, m]));
                put64(buf, off + 8, self.rng.pick(&[0, 1, 64, 4096]));
                put64(buf, off + 16, self.rng.next_u64());
                let arg = self.ptr(env, off);
                Call { op: nr::VCPU_OP, args: [u64::from(cmd), u64::from(vcpu), arg, 0, 0], name: "vcpu_op" }
            }
        }
    }

    fn privileged(&mut self, env: &Env, buf: &mut [u8], off: usize) -> Call {
        let op =
            self.rng.pick(&[nr::DOMCTL, nr::DOMCTL, nr::SYSCTL, nr::SYSCTL, nr::PLATFORM_OP, nr::PHYSDEV_OP, nr::HVM_OP, nr::XSM_OP, nr::KEXEC_OP]);
        let cmd = if self.rng.chance(1, 2) { self.rng.below(80) as u32 } else { self.rng.pick(&[1, 2, 3, 4, 5, 6, 11, 12, 0x8001]) };
        put32(buf, off, cmd);
        put32(buf, off + 4, if self.rng.chance(3, 4) { 0x15 } else { self.rng.next_u64() as u32 });
        put16(buf, off + 8, self.domid(env));
        for w in 2..32 {
            put64(buf, off + w * 8, self.rng.next_u64() & self.rng.pick(&[0, 0xff, 0xffff_ffff, u64::MAX]));
        }
        let arg = self.ptr(env, off);
        let name = match op {
            nr::DOMCTL => "domctl",
            nr::SYSCTL => "sysctl",
            nr::PLATFORM_OP => "platform_op",
            nr::PHYSDEV_OP => "physdev_op",
            _ => "privileged",
        };
        let first = if op == nr::DOMCTL || op == nr::SYSCTL || op == nr::PLATFORM_OP { arg } else { u64::from(cmd) };
        Call { op, args: [first, arg, 0, 0, 0], name }
    }

    fn misc(&mut self, env: &Env, buf: &mut [u8], off: usize, room: usize) -> Call {
        let r = self.rng.below(22);
        match r {
            0 | 1 => {
                let cmd = if self.rng.chance(1, 4) { self.rng.next_u64() & 0xffff } else { self.rng.below(13) };
                Call { op: nr::XEN_VERSION, args: [cmd, self.ptr(env, off), 0, 0, 0], name: "xen_version" }
            }
            2 if !self.avoid(KnownBug::ConsoleIo) => {
                // Only harmless text, or bad pointers.
                let cmd = self.rng.pick(&[0u64, 0, 1, 2, u64::MAX]);
                let (count, ptr) = if self.rng.chance(1, 2) {
                    (self.rng.below(8), env.text_va)
                } else {
                    (self.count(), self.ptr(env, BUF_BYTES) | 0x8000_0000_0000)
                };
                Call { op: nr::CONSOLE_IO, args: [cmd, count, ptr, 0, 0], name: "console_io" }
            }
            3 => Call {
                op: nr::VM_ASSIST,
                args: [self.rng.below(4), self.rng.pick(&[0, 1, 2, 3, 5, 31, 32, 64, u64::MAX]), 0, 0, 0],
                name: "vm_assist",
            },
            4 => {
                let base = self.rng.pick(&[0, 0x1000, 0x8000_0000_0000, 0xffff_8000_0000_0000, env.play_va, u64::MAX]);
                Call { op: nr::SET_SEGMENT_BASE, args: [self.rng.below(6), base, 0, 0, 0], name: "set_segment_base" }
            }
            5 => Call { op: nr::FPU_TASKSWITCH, args: [self.rng.pick(&[0, 1, 2, u64::MAX]), 0, 0, 0, 0], name: "fpu_taskswitch" },
            6 => Call { op: nr::STACK_SWITCH, args: [self.rng.pick(&[0xe02b, 0, 0x10, 0xffff]), self.map_va(env), 0, 0, 0], name: "stack_switch" },
            7 => {
                // set_callbacks: valid entries, non-canonical ones (refused),
                // or garbage (dangerous).
                let ok = env.callbacks;
                let cb = |g: &mut Gen, valid: u64| {
                    if g.danger() {
                        g.rng.next_u64() & 0x7fff_ffff_ffff
                    } else if g.rng.chance(1, 3) {
                        0x8000_0000_0000
                    } else {
                        valid
                    }
                };
                let (e, f) = (cb(self, ok[0]), cb(self, ok[1]));
                Call { op: nr::SET_CALLBACKS, args: [e, f, self.map_va(env), 0, 0], name: "set_callbacks" }
            }
            8 => {
                let kind = self.rng.pick(&[0u16, 1, 2, 3, 4, 7, 8, 0xffff]);
                let address = match kind {
                    0 | 1 if !self.danger() => {
                        if self.rng.chance(1, 2) {
                            env.callbacks[kind as usize]
                        } else {
                            0xdead_0000_0000_0000
                        }
                    }
                    _ => self.map_va(env),
                };
                put16(buf, off, kind);
                put16(buf, off + 2, self.rng.below(3) as u16);
                put64(buf, off + 8, address);
                Call { op: nr::CALLBACK_OP, args: [self.rng.pick(&[0, 0, 1, 2, 99]), self.ptr(env, off), 0, 0, 0], name: "callback_op" }
            }
            9 => {
                // set_trap_table: the valid one, an empty one, a garbage
                // one (dangerous), or a bad pointer.
                let ptr = match self.rng.below(4) {
                    0 => env.trap_table_va,
                    1 => {
                        put64(buf, off, 0);
                        put64(buf, off + 8, 0);
                        self.ptr(env, off)
                    }
                    2 if self.danger() => {
                        let n = (room / 16).min(80);
                        for i in 0..n {
                            put64(buf, off + i * 16, self.rng.next_u64() & 0xffff_ffff_0000_ffff);
                            put64(buf, off + i * 16 + 8, self.rng.next_u64() & 0x7fff_ffff_ffff);
                        }
                        self.ptr(env, off)
                    }
                    _ => self.ptr(env, BUF_BYTES),
                };
                Call { op: nr::SET_TRAP_TABLE, args: [ptr, 0, 0, 0, 0], name: "set_trap_table" }
            }
            10 => Call {
                op: self.rng.pick(&[nr::GET_DEBUGREG, nr::SET_DEBUGREG]),
                args: [self.rng.below(9), self.rng.next_u64(), 0, 0, 0],
                name: "debugreg",
            },
            11 => Call { op: nr::SCHED_OP_COMPAT, args: [0, 0, 0, 0, 0], name: "sched_op_compat(yield)" },
            12 => {
                for w in 0..4 {
                    put64(buf, off + w * 8, self.rng.next_u64() & 0xffff_ffff);
                }
                let op = self.rng.pick(&[nr::EVENT_CHANNEL_OP_COMPAT, nr::PHYSDEV_OP_COMPAT, nr::NMI_OP, nr::XENOPROF_OP]);
                Call { op, args: [self.ptr(env, off), self.ptr(env, off), 0, 0, 0], name: "compat" }
            }
            13 | 14 => {
                // Numbers with no handler.
                let op = self.rng.pick(&[11, 38, 39, 40, 41, 42, 43, 48, 55, 63, 64, 100, 127, 128, 255, 1 << 32, u64::MAX]);
                let args = [self.rng.next_u64(), self.rng.next_u64(), self.rng.next_u64(), self.rng.next_u64(), self.rng.next_u64()];
                Call { op, args, name: "unknown" }
            }
            15 if self.danger() => Call { op: nr::IRET, args: [0; 5], name: "iret" },
            _ => {
                let family = self.rng.pick(&Family::ALL);
                self.call(env, buf, family, off, room, 1)
            }
        }
    }
}

/// What a result says about the hypervisor, for a domU fuzzer: calls
/// that must fail and did not.
pub fn oracle(call: &Call, rc: i64) -> Option<&'static str> {
    const EPERM: i64 = -1;
    const EFAULT: i64 = -14;
    const EACCES: i64 = -13;
    match call.op {
        nr::DOMCTL | nr::SYSCTL if ![EPERM, EFAULT, EACCES].contains(&rc) => Some("a domU's domctl/sysctl did not fail with EPERM, EFAULT or EACCES"),
        nr::CONSOLE_IO if call.args[0] == xen_public::CONSOLEIO_READ && rc >= 0 => Some("a domU read the hypervisor console"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;
    use xen_public::{MmuextOp, MulticallEntry};
    use zerocopy::FromBytes;

    fn env() -> Env {
        let mut e = Env {
            domid: 3,
            others: [0, 4, 5],
            max_mfn: 0xffff,
            play_va: 0xffff_ffff_8030_0000,
            play_l1: (0x9001, 256),
            nr_tables: 4,
            l4: 0x9000,
            nr_special: 3,
            nr_vital: 2,
            canary_mfn: 0x5000,
            buf_va: 0xffff_ffff_8020_0000,
            ro_va: 0xffff_ffff_8010_0000,
            code_va: 0xffff_ffff_8000_0000,
            stack_va: 0xffff_ffff_8011_0000,
            text_va: 0xffff_ffff_8012_0000,
            trap_table_va: 0xffff_ffff_8013_0000,
            callbacks: [0xffff_ffff_8000_1000, 0xffff_ffff_8000_2000],
            ..Env::default()
        };
        for (i, m) in e.play_mfns.iter_mut().enumerate() {
            *m = 0x8000 + i as u64;
        }
        e.tables[..4].copy_from_slice(&[(0x9000, 4), (0x9003, 3), (0x9002, 2), (0x9001, 1)]);
        e.special[..3].copy_from_slice(&[0x7000, 0x7001, 0x7002]);
        e.vital[..2].copy_from_slice(&[0x6000, 0x6001]);
        e
    }

    fn stream(seed: u64, n: usize) -> Vec<(Call, Vec<u8>)> {
        let env = env();
        let mut g = Gen::new(seed);
        let mut buf = vec![0u8; BUF_BYTES];
        let mut out = Vec::new();
        for i in 0..n {
            if i % 64 == 0 {
                g.start_batch();
            }
            let c = g.next(&env, &mut buf);
            out.push((c, buf.clone()));
        }
        out
    }

    #[test]
    fn the_stream_is_reproducible() {
        let a = stream(42, 500);
        let b = stream(42, 500);
        assert!(a == b);
        let c = stream(43, 500);
        assert!(a.iter().zip(&c).any(|(x, y)| x.0 != y.0));
    }

    #[test]
    fn every_family_and_many_numbers_are_reached() {
        let env = env();
        let mut g = Gen::new(7);
        let mut buf = vec![0u8; BUF_BYTES];
        let mut ops = std::collections::BTreeSet::new();
        let mut families = std::collections::BTreeSet::new();
        for i in 0..40_000 {
            if i % 256 == 0 {
                families.insert(g.start_batch().name());
            }
            ops.insert(g.next(&env, &mut buf).op);
        }
        assert_eq!(families.len(), 12, "{families:?}");
        for op in
            [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37]
        {
            assert!(ops.contains(&op), "hypercall {op} never generated");
        }
        assert!(ops.iter().any(|&o| o >= 128), "numbers past the hypercall page");
    }

    #[test]
    fn never_shutdown_or_block() {
        let env = env();
        let mut g = Gen::new(11);
        g.danger_per_million = 1_000_000;
        let mut buf = vec![0u8; BUF_BYTES];
        for i in 0..50_000 {
            if i % 256 == 0 {
                g.start_batch();
            }
            let c = g.next(&env, &mut buf);
            if c.op == nr::SCHED_OP || c.op == nr::SCHED_OP_COMPAT {
                assert_eq!(c.args[0], 0, "only yield");
            }
            if c.op == nr::MULTICALL && c.args[0] == env.buf_va + MAIN as u64 {
                // No entry is a scheduler op but a generated yield.
                let n = ((c.args[1] & !PREEMPTED) as usize).min(MAIN / 64);
                for k in 0..n {
                    let e = MulticallEntry::read_from_bytes(&buf[MAIN + k * 64..MAIN + (k + 1) * 64]).unwrap();
                    if e.op == nr::SCHED_OP || e.op == nr::SCHED_OP_COMPAT {
                        assert_eq!(e.args[0], 0, "multicall entry {k}: only yield");
                    }
                }
            }
        }
    }

    #[test]
    fn self_destruction_only_when_allowed() {
        // With no danger allowed: NEW_BASEPTR names only the current L4,
        // no iret, no update_va_mapping of code or stack.
        let env = env();
        let mut g = Gen::new(5);
        g.danger_per_million = 0;
        let mut buf = vec![0u8; BUF_BYTES];
        for i in 0..50_000 {
            if i % 256 == 0 {
                g.start_batch();
            }
            let c = g.next(&env, &mut buf);
            assert_ne!(c.op, nr::IRET);
            if c.op == nr::UPDATE_VA_MAPPING {
                assert!(![env.code_va, env.stack_va, env.ro_va].contains(&(c.args[0] & !0xfff)), "{c:?}");
            }
            if c.op == nr::MMUEXT_OP && c.args[0] == env.buf_va + MAIN as u64 {
                let n = ((c.args[1] & !PREEMPTED) as usize).min(MAIN / 24);
                for k in 0..n {
                    let op = MmuextOp::read_from_bytes(&buf[MAIN + k * 24..MAIN + (k + 1) * 24]).unwrap();
                    if op.cmd == 5 {
                        assert_eq!(op.arg1, env.l4, "NEW_BASEPTR to another L4");
                    }
                }
            }
        }
    }

    #[test]
    fn seeds_derive_apart() {
        assert_ne!(derive_seed(1, 0), derive_seed(1, 1));
        assert_ne!(derive_seed(1, 0), derive_seed(2, 0));
        assert_eq!(derive_seed(9, 3), derive_seed(9, 3));
    }

    #[test]
    fn the_oracle_flags_privileged_success() {
        let c = Call { op: nr::DOMCTL, args: [0; 5], name: "domctl" };
        assert!(oracle(&c, 0).is_some());
        assert!(oracle(&c, -1).is_none());
        assert!(oracle(&c, -14).is_none());
        let r = Call { op: nr::CONSOLE_IO, args: [1, 10, 0, 0, 0], name: "console_io" };
        assert!(oracle(&r, 3).is_some());
        assert!(oracle(&r, -1).is_none());
    }
}
