//! Typed hypercall wrappers. Every call goes through the hypercall page the
//! hypervisor filled, with Xen's 64-bit convention: number implied by the
//! stub, arguments in RDI, RSI, RDX, R10, R8, result in RAX.
//!
//! Each wrapper takes the `xen_public` structure its sub-op is defined
//! with, so what the hypervisor may read or write is the size of that type
//! (or of a slice of it), never a length the caller states. The traits
//! [`XenVersionOp`], [`EvtchnOp`] and [`GnttabOp`] tie each argument
//! structure to its sub-op number, and are implemented only for structures
//! without guest handles. Structures that carry a guest handle (a pointer
//! inside the argument: `setup_table`'s frame list, a reservation's extent
//! list) get wrappers that build the handle from a slice of ours; where the
//! handle has to come from the caller (`domctl`, `sysctl`, `multicall`) the
//! wrapper is an `unsafe fn`. Together with `arch`, this module holds the
//! runtime's hypercall `unsafe`.

use xen_public::callback::{CALLBACKOP_REGISTER, CallbackRegister};
use xen_public::domctl::{XEN_DOMCTL_GETDOMAININFO, XenDomctl, XenDomctlGetdomaininfo};
use xen_public::event_channel::{
    self as ev, EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnBindIpi, EvtchnBindPirq, EvtchnBindVcpu, EvtchnBindVirq, EvtchnClose, EvtchnReset,
    EvtchnSend, EvtchnSetPriority, EvtchnStatus, EvtchnUnmask,
};
use xen_public::grant_table::{
    self as gt, GnttabCacheFlush, GnttabCopy, GnttabDumpTable, GnttabGetVersion, GnttabMapGrantRef, GnttabQuerySize, GnttabSetVersion,
    GnttabSetupTable, GnttabSwapGrantRef, GnttabTransfer, GnttabUnmapAndReplace, GnttabUnmapGrantRef,
};
use xen_public::hypercall as nr;
use xen_public::memory::{self as mem, XenMemoryDomain, XenMemoryReservation};
use xen_public::sched::{SchedPoll, SchedShutdown};
use xen_public::sysctl::XenSysctl;
use xen_public::vcpu::TrapInfo;
use xen_public::version::{
    self as ver, XenCapabilitiesInfo, XenChangesetInfo, XenCommandline, XenCompileInfo, XenDomainHandle, XenExtraversion, XenFeatureInfo,
    XenPlatformParameters,
};
use xen_public::{CONSOLEIO_READ, CONSOLEIO_WRITE, DOMID_SELF, MmuUpdate, MmuextOp, MulticallEntry, SCHEDOP_BLOCK, SCHEDOP_POLL};
use xen_public::{SCHEDOP_SHUTDOWN, SCHEDOP_YIELD};
use zerocopy::{FromBytes, Immutable, IntoBytes};

unsafe extern "C" {
    /// The page of 32-byte stubs (defined in `arch`).
    static hypercall_page: [u8; 4096];
}

/// Issue hypercall `op` with five raw arguments.
///
/// # Safety
/// The arguments must be valid for the hypercall: any pointer must point to
/// memory of the right layout that the hypervisor may read or write.
pub unsafe fn hypercall5(op: u64, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> i64 {
    let stub = core::ptr::addr_of!(hypercall_page) as u64 + op * xen_public::hypercall::STUB_SIZE as u64;
    let ret: i64;
    // SAFETY: `stub` is inside the hypercall page, which the hypervisor
    // filled with stubs that preserve every register except RAX and the
    // argument registers; the caller vouches for the arguments.
    unsafe {
        core::arch::asm!(
            "call {stub}",
            stub = in(reg) stub,
            lateout("rax") ret,
            inlateout("rdi") a1 => _,
            inlateout("rsi") a2 => _,
            inlateout("rdx") a3 => _,
            inlateout("r10") a4 => _,
            inlateout("r8") a5 => _,
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
    ret
}

/// A hypercall whose arguments are plain values (numbers, frames, virtual
/// addresses it maps or selects), none of which names memory the
/// hypervisor reads or writes.
fn by_value(op: u64, a1: u64, a2: u64, a3: u64) -> i64 {
    // SAFETY: every caller passes values only (see each wrapper); no
    // argument is a pointer the hypervisor dereferences.
    unsafe { hypercall5(op, a1, a2, a3, 0, 0) }
}

/// A hypercall `op(cmd, arg)` whose argument is one structure of ours that
/// holds no guest handle: the hypervisor reads and writes at most
/// `size_of::<T>()` bytes at `arg`.
fn with_struct<T: FromBytes + IntoBytes + Immutable>(op: u64, cmd: u64, arg: &mut T) -> i64 {
    // SAFETY: `arg` is an exclusive borrow of a plain-data `T`, valid for
    // reads and writes of its size; the sub-op `cmd` is defined on exactly
    // that structure (checked by the traits and wrappers that call this),
    // and it carries no pointer the hypervisor would follow.
    unsafe { hypercall5(op, cmd, arg as *mut T as u64, 0, 0, 0) }
}

/// Hypercall `op` with every argument 0, for the numbers Xen 4.17 leaves
/// unused (they return -ENOSYS). A pointer argument would be NULL, and the
/// runtime never maps virtual page 0, so nothing can be reached through it.
pub fn no_args(op: u64) -> i64 {
    by_value(op, 0, 0, 0)
}

// ---- console_io

/// `console_io(CONSOLEIO_write)`: emit bytes on the hypervisor console.
pub fn console_write(bytes: &[u8]) -> i64 {
    // SAFETY: the buffer is valid for `len` bytes and only read.
    unsafe { hypercall5(nr::CONSOLE_IO, CONSOLEIO_WRITE, bytes.len() as u64, bytes.as_ptr() as u64, 0, 0) }
}

/// `console_io(CONSOLEIO_read)`: up to `buf.len()` bytes of console input;
/// the count read or an errno.
pub fn console_read(buf: &mut [u8]) -> i64 {
    // SAFETY: the buffer is ours and valid for writes of `len` bytes, the
    // most the hypervisor writes.
    unsafe { hypercall5(nr::CONSOLE_IO, CONSOLEIO_READ, buf.len() as u64, buf.as_mut_ptr() as u64, 0, 0) }
}

// ---- sched_op

/// `SCHEDOP_shutdown` with a reason (`SHUTDOWN_*`). Returns only on error.
pub fn shutdown(reason: u32) -> i64 {
    let mut arg = SchedShutdown { reason };
    with_struct(nr::SCHED_OP, SCHEDOP_SHUTDOWN, &mut arg)
}

/// `SCHEDOP_yield`.
pub fn sched_yield() -> i64 {
    by_value(nr::SCHED_OP, SCHEDOP_YIELD, 0, 0)
}

/// `SCHEDOP_block`: sleep until an event upcall is pending (unmasks
/// upcalls, as Xen does).
pub fn sched_block() -> i64 {
    by_value(nr::SCHED_OP, SCHEDOP_BLOCK, 0, 0)
}

/// `SCHEDOP_poll` on `ports` with a timeout (absolute system time, 0 =
/// none).
pub fn sched_poll(ports: &[u32], timeout: u64) -> i64 {
    let arg = SchedPoll { ports: ports.as_ptr() as u64, nr_ports: ports.len() as u32, _pad0: 0, timeout };
    // SAFETY: the structure and the `nr_ports` ports it points to are ours
    // and live across the call; the hypervisor only reads them.
    unsafe { hypercall5(nr::SCHED_OP, SCHEDOP_POLL, core::ptr::addr_of!(arg) as u64, 0, 0, 0) }
}

// ---- xen_version

/// A `xen_version` sub-op whose argument is one of `version.h`'s
/// fixed-size structures: `CMD` is its `XENVER_*` number.
pub trait XenVersionOp: FromBytes + IntoBytes + Immutable {
    /// The `XENVER_*` sub-op filling this structure.
    const CMD: u64;
}

impl XenVersionOp for XenExtraversion {
    const CMD: u64 = ver::XENVER_EXTRAVERSION;
}
impl XenVersionOp for XenCompileInfo {
    const CMD: u64 = ver::XENVER_COMPILE_INFO;
}
impl XenVersionOp for XenCapabilitiesInfo {
    const CMD: u64 = ver::XENVER_CAPABILITIES;
}
impl XenVersionOp for XenChangesetInfo {
    const CMD: u64 = ver::XENVER_CHANGESET;
}
impl XenVersionOp for XenPlatformParameters {
    const CMD: u64 = ver::XENVER_PLATFORM_PARAMETERS;
}
impl XenVersionOp for XenFeatureInfo {
    const CMD: u64 = ver::XENVER_GET_FEATURES;
}
impl XenVersionOp for XenDomainHandle {
    const CMD: u64 = ver::XENVER_GUEST_HANDLE;
}
impl XenVersionOp for XenCommandline {
    const CMD: u64 = ver::XENVER_COMMANDLINE;
}

/// `xen_version(XENVER_version)`: `(major << 16) | minor`.
pub fn xen_version() -> i64 {
    by_value(nr::XEN_VERSION, ver::XENVER_VERSION, 0, 0)
}

/// `xen_version(XENVER_pagesize)`: the hypervisor's page size.
pub fn xen_pagesize() -> i64 {
    by_value(nr::XEN_VERSION, ver::XENVER_PAGESIZE, 0, 0)
}

/// `xen_version(T::CMD, arg)`: fill `arg` (0 on success).
pub fn xen_version_op<T: XenVersionOp>(arg: &mut T) -> i64 {
    with_struct(nr::XEN_VERSION, T::CMD, arg)
}

// ---- event_channel_op

/// An `event_channel_op` sub-op: `CMD` is the `EVTCHNOP_*` number of the
/// argument structure. Not implemented for `evtchn_init_control` and
/// `evtchn_expand_array`, which hand the hypervisor a frame it keeps
/// writing after the call. (`xen_public::event_channel::EvtchnOp`, the
/// old compat hypercall's tagged union, is a different thing.)
pub trait EvtchnOp: FromBytes + IntoBytes + Immutable {
    /// The `EVTCHNOP_*` number.
    const CMD: u64;
}

macro_rules! sub_ops {
    ($trait:ident: $($ty:ty => $cmd:expr),* $(,)?) => {
        $( impl $trait for $ty { const CMD: u64 = $cmd; } )*
    };
}

sub_ops! { EvtchnOp:
    EvtchnBindInterdomain => ev::EVTCHNOP_BIND_INTERDOMAIN,
    EvtchnBindVirq => ev::EVTCHNOP_BIND_VIRQ,
    EvtchnBindPirq => ev::EVTCHNOP_BIND_PIRQ,
    EvtchnClose => ev::EVTCHNOP_CLOSE,
    EvtchnSend => ev::EVTCHNOP_SEND,
    EvtchnStatus => ev::EVTCHNOP_STATUS,
    EvtchnAllocUnbound => ev::EVTCHNOP_ALLOC_UNBOUND,
    EvtchnBindIpi => ev::EVTCHNOP_BIND_IPI,
    EvtchnBindVcpu => ev::EVTCHNOP_BIND_VCPU,
    EvtchnUnmask => ev::EVTCHNOP_UNMASK,
    EvtchnReset => ev::EVTCHNOP_RESET,
    EvtchnSetPriority => ev::EVTCHNOP_SET_PRIORITY,
}

/// `event_channel_op(T::CMD, arg)`.
pub fn event_channel_op<T: EvtchnOp>(arg: &mut T) -> i64 {
    with_struct(nr::EVENT_CHANNEL_OP, T::CMD, arg)
}

// ---- grant_table_op

/// A `grant_table_op` sub-op: `CMD` is the `GNTTABOP_*` number of the
/// argument structure. Not implemented for `gnttab_setup_table` and
/// `gnttab_get_status_frames`, whose frame-list handle the hypervisor
/// writes through (see [`gnttab_setup_table`]).
pub trait GnttabOp: FromBytes + IntoBytes + Immutable {
    /// The `GNTTABOP_*` number.
    const CMD: u64;
}

sub_ops! { GnttabOp:
    GnttabMapGrantRef => gt::GNTTABOP_MAP_GRANT_REF,
    GnttabUnmapGrantRef => gt::GNTTABOP_UNMAP_GRANT_REF,
    GnttabDumpTable => gt::GNTTABOP_DUMP_TABLE,
    GnttabTransfer => gt::GNTTABOP_TRANSFER,
    GnttabCopy => gt::GNTTABOP_COPY,
    GnttabQuerySize => gt::GNTTABOP_QUERY_SIZE,
    GnttabUnmapAndReplace => gt::GNTTABOP_UNMAP_AND_REPLACE,
    GnttabSetVersion => gt::GNTTABOP_SET_VERSION,
    GnttabGetVersion => gt::GNTTABOP_GET_VERSION,
    GnttabSwapGrantRef => gt::GNTTABOP_SWAP_GRANT_REF,
    GnttabCacheFlush => gt::GNTTABOP_CACHE_FLUSH,
}

/// `grant_table_op(T::CMD, uops, uops.len())`.
pub fn grant_table_op<T: GnttabOp>(uops: &mut [T]) -> i64 {
    // SAFETY: the array is ours, valid for reads and writes of `len`
    // elements of `T`, the structure `T::CMD` is defined on; `T` holds no
    // pointer the hypervisor follows.
    unsafe { hypercall5(nr::GRANT_TABLE_OP, T::CMD, uops.as_mut_ptr() as u64, uops.len() as u64, 0, 0) }
}

/// `GNTTABOP_setup_table` for `dom` with `frames.len()` frames, whose
/// numbers the hypervisor writes into `frames`: `(result, status)`.
pub fn gnttab_setup_table(dom: u16, frames: &mut [u64]) -> (i64, i16) {
    let mut s = GnttabSetupTable { dom, nr_frames: frames.len() as u32, frame_list: frames.as_mut_ptr() as u64, ..Default::default() };
    // SAFETY: the structure is ours; its frame list is `frames`, valid for
    // writes of `nr_frames` entries, the most the hypervisor writes.
    let rc = unsafe { hypercall5(nr::GRANT_TABLE_OP, gt::GNTTABOP_SETUP_TABLE, core::ptr::addr_of_mut!(s) as u64, 1, 0, 0) };
    (rc, s.status)
}

// ---- memory_op

/// A reservation op on order-0 extents at `list` (`len` of them).
///
/// # Safety
/// `list` must be valid for what `cmd` does with `len` u64s: reads for
/// decrease_reservation, reads and writes for populate_physmap and
/// increase_reservation.
unsafe fn reservation(cmd: u64, dom: u16, list: u64, len: usize) -> i64 {
    let r = XenMemoryReservation { extent_start: list, nr_extents: len as u64, extent_order: 0, mem_flags: 0, domid: dom, _pad0: [0; 3] };
    // SAFETY: the reservation is ours and only read; the caller vouches for
    // its extent list.
    unsafe { hypercall5(nr::MEMORY_OP, cmd, core::ptr::addr_of!(r) as u64, 0, 0, 0) }
}

/// `XENMEM_increase_reservation` of `extents.len()` pages for `dom`: the
/// hypervisor writes each new frame into `extents`. Returns the extents
/// done or an errno.
pub fn increase_reservation(dom: u16, extents: &mut [u64]) -> i64 {
    // SAFETY: `extents` is ours and valid for reads and writes of its length.
    unsafe { reservation(mem::XENMEM_INCREASE_RESERVATION, dom, extents.as_mut_ptr() as u64, extents.len()) }
}

/// `XENMEM_decrease_reservation`: give the frames in `extents` back.
/// Returns the extents done or an errno.
pub fn decrease_reservation(dom: u16, extents: &[u64]) -> i64 {
    // SAFETY: `extents` is ours and valid for reads of its length; the
    // hypervisor only reads the list.
    unsafe { reservation(mem::XENMEM_DECREASE_RESERVATION, dom, extents.as_ptr() as u64, extents.len()) }
}

/// `XENMEM_populate_physmap` for `dom`: `extents` holds the pfns to
/// populate on entry and their machine frames after. Returns the extents
/// done or an errno.
pub fn populate_physmap(dom: u16, extents: &mut [u64]) -> i64 {
    // SAFETY: `extents` is ours and valid for reads and writes of its length.
    unsafe { reservation(mem::XENMEM_POPULATE_PHYSMAP, dom, extents.as_mut_ptr() as u64, extents.len()) }
}

/// `XENMEM_current_reservation` of `dom`: its pages, or an errno.
pub fn current_reservation(dom: u16) -> i64 {
    with_struct(nr::MEMORY_OP, mem::XENMEM_CURRENT_RESERVATION, &mut XenMemoryDomain { domid: dom })
}

/// `XENMEM_maximum_reservation` of `dom`: its page limit, or an errno.
pub fn maximum_reservation(dom: u16) -> i64 {
    with_struct(nr::MEMORY_OP, mem::XENMEM_MAXIMUM_RESERVATION, &mut XenMemoryDomain { domid: dom })
}

/// `XENMEM_maximum_ram_page`: the highest machine frame with RAM.
pub fn maximum_ram_page() -> i64 {
    by_value(nr::MEMORY_OP, mem::XENMEM_MAXIMUM_RAM_PAGE, 0, 0)
}

// ---- traps, callbacks, segments, timers

/// `set_trap_table`: `table` must end with an entry whose address is 0.
pub fn set_trap_table(table: &[TrapInfo]) -> i64 {
    if table.last().is_none_or(|t| t.address != 0) {
        return -xen_public::errno::EINVAL;
    }
    // SAFETY: the table is ours, terminated, and only read.
    unsafe { hypercall5(nr::SET_TRAP_TABLE, table.as_ptr() as u64, 0, 0, 0, 0) }
}

/// `set_trap_table` with a terminated table the caller keeps at `va`. The
/// hypervisor only reads guest memory here, with the guest's own
/// permissions; a bad table is refused or installed as it is.
pub fn set_trap_table_raw(va: u64) -> i64 {
    // SAFETY: set_trap_table never writes through its argument.
    unsafe { hypercall5(nr::SET_TRAP_TABLE, va, 0, 0, 0, 0) }
}

/// `set_trap_table(NULL)`: clear the whole virtual IDT.
pub fn clear_trap_table() -> i64 {
    by_value(nr::SET_TRAP_TABLE, 0, 0, 0)
}

/// `callback_op(CALLBACKOP_register)` of a `CALLBACKTYPE_*` entry point.
pub fn register_callback(kind: u16, flags: u16, address: u64) -> i64 {
    let mut reg = CallbackRegister { type_: kind, flags, _pad0: 0, address };
    with_struct(nr::CALLBACK_OP, CALLBACKOP_REGISTER, &mut reg)
}

/// `stack_switch(ss, sp)`: the kernel stack for bounces from user mode.
pub fn stack_switch(ss: u64, sp: u64) -> i64 {
    by_value(nr::STACK_SWITCH, ss, sp, 0)
}

/// `fpu_taskswitch(set)`: set or clear the virtual CR0.TS.
pub fn fpu_taskswitch(set: bool) -> i64 {
    by_value(nr::FPU_TASKSWITCH, u64::from(set), 0, 0)
}

/// `set_segment_base(which, base)` (`SEGBASE_*`); `base` is a value, not
/// read by the hypervisor.
pub fn set_segment_base(which: u64, base: u64) -> i64 {
    by_value(nr::SET_SEGMENT_BASE, which, base, 0)
}

/// `vcpu_op(VCPUOP_stop_periodic_timer, vcpu)`: no more VIRQ_TIMER every
/// 10 ms (Xen starts every PV vCPU with that timer; Linux stops it at boot
/// and uses single-shot timers only, as these guests do).
pub fn stop_periodic_timer(vcpu: u32) -> i64 {
    by_value(nr::VCPU_OP, xen_public::vcpu::VCPUOP_STOP_PERIODIC_TIMER, u64::from(vcpu), 0)
}

/// `set_timer_op(abs_ns)`: a single-shot timer at system time `abs_ns`,
/// delivered on VIRQ_TIMER; 0 cancels.
pub fn set_timer_op(abs_ns: u64) -> i64 {
    by_value(nr::SET_TIMER_OP, abs_ns, 0, 0)
}

// ---- MMU

/// `update_va_mapping(va, pte, flags)`.
pub fn update_va_mapping(va: u64, pte: u64, flags: u64) -> i64 {
    by_value(nr::UPDATE_VA_MAPPING, va, pte, flags)
}

/// `mmu_update(reqs, count, &done, foreigndom)`: the result and the
/// number of requests done.
pub fn mmu_update(reqs: &[MmuUpdate], foreigndom: u16) -> (i64, u32) {
    let mut done = 0u32;
    // SAFETY: the requests are ours and only read; the done counter is a
    // u32 of ours the hypervisor writes.
    let rc = unsafe {
        hypercall5(nr::MMU_UPDATE, reqs.as_ptr() as u64, reqs.len() as u64, core::ptr::addr_of_mut!(done) as u64, u64::from(foreigndom), 0)
    };
    (rc, done)
}

/// `mmuext_op(ops, count, NULL, foreigndom)`: no done counter.
pub fn mmuext_op(ops: &[MmuextOp], foreigndom: u16) -> i64 {
    // SAFETY: the ops are ours and only read; with a NULL done pointer the
    // hypervisor writes nothing back.
    unsafe { hypercall5(nr::MMUEXT_OP, ops.as_ptr() as u64, ops.len() as u64, 0, u64::from(foreigndom), 0) }
}

/// One `mmuext_op` `{cmd, arg1, arg2}` on the caller's own domain.
pub fn mmuext_one(cmd: u32, arg1: u64, arg2: u64) -> i64 {
    mmuext_op(&[MmuextOp { cmd, _pad0: 0, arg1, arg2 }], DOMID_SELF)
}

// ---- multicall

/// `multicall(list, nr)`: the hypervisor runs each entry's hypercall and
/// writes its result into the entry.
///
/// # Safety
/// Every entry's arguments must be valid for its hypercall, as for
/// [`hypercall5`]: any pointer among them must point to memory of the
/// right layout that the hypervisor may read or write, and stay valid
/// until this returns.
pub unsafe fn multicall(list: &mut [MulticallEntry]) -> i64 {
    // SAFETY: the list is ours, valid for reads and writes of its length
    // (the hypervisor writes each result); the caller vouches for the
    // arguments of each entry.
    unsafe { hypercall5(nr::MULTICALL, list.as_mut_ptr() as u64, list.len() as u64, 0, 0, 0) }
}

/// A batch of up to `N` calls sent as one `multicall`, built only from
/// calls whose arguments are values or borrowed buffers that outlive the
/// batch (`'a`).
pub struct Multicall<'a, const N: usize> {
    entries: heapless::Vec<MulticallEntry, N>,
    _borrows: core::marker::PhantomData<&'a [u8]>,
}

impl<const N: usize> Default for Multicall<'_, N> {
    fn default() -> Self {
        Multicall { entries: heapless::Vec::new(), _borrows: core::marker::PhantomData }
    }
}

impl<'a, const N: usize> Multicall<'a, N> {
    fn push(&mut self, op: u64, args: [u64; 6]) -> bool {
        self.entries.push(MulticallEntry { op, result: 0, args }).is_ok()
    }

    /// Queue `update_va_mapping(va, pte, flags)`; `false` if full.
    pub fn update_va_mapping(&mut self, va: u64, pte: u64, flags: u64) -> bool {
        self.push(nr::UPDATE_VA_MAPPING, [va, pte, flags, 0, 0, 0])
    }

    /// Queue `console_io(CONSOLEIO_write, text)`; `false` if full.
    pub fn console_write(&mut self, text: &'a [u8]) -> bool {
        self.push(nr::CONSOLE_IO, [CONSOLEIO_WRITE, text.len() as u64, text.as_ptr() as u64, 0, 0, 0])
    }

    /// Queue `xen_version(XENVER_version)`; `false` if full.
    pub fn xen_version(&mut self) -> bool {
        self.push(nr::XEN_VERSION, [ver::XENVER_VERSION, 0, 0, 0, 0, 0])
    }

    /// Calls queued.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Send the queued calls: the multicall's own result. Each call's
    /// result is then [`Multicall::result`] until [`Multicall::clear`].
    pub fn issue(&mut self) -> i64 {
        // SAFETY: every queued entry was built by the methods above, whose
        // arguments are plain values or buffers borrowed for `'a`, which
        // outlives `self`.
        unsafe { multicall(&mut self.entries) }
    }

    /// The result of queued call `i` (after [`Multicall::issue`]).
    pub fn result(&self, i: usize) -> i64 {
        self.entries.get(i).map_or(0, |e| e.result as i64)
    }

    /// Empty the batch.
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

// ---- domctl, sysctl

/// `domctl(op)`.
///
/// # Safety
/// Any guest handle in `op`'s payload (a vCPU context, a bitmap, ...) must
/// point to memory of the layout the command defines, valid for what the
/// command reads or writes there until this returns.
pub unsafe fn domctl(op: &mut XenDomctl) -> i64 {
    // SAFETY: `op` is ours, valid for reads and writes of its 144 bytes;
    // the caller vouches for the handles in its payload.
    unsafe { hypercall5(nr::DOMCTL, op as *mut XenDomctl as u64, 0, 0, 0, 0) }
}

/// `sysctl(op)`.
///
/// # Safety
/// As for [`domctl`]: any guest handle in the payload must be valid for
/// what the command does with it.
pub unsafe fn sysctl(op: &mut XenSysctl) -> i64 {
    // SAFETY: `op` is ours, valid for reads and writes of its 136 bytes;
    // the caller vouches for the handles in its payload.
    unsafe { hypercall5(nr::SYSCTL, op as *mut XenSysctl as u64, 0, 0, 0, 0) }
}

/// xen-core's private `XEN_SYSCTL_xencore_vcpu_stats` for vCPU 0 of `dom`:
/// its preempted-hypercall count, or an errno (-EPERM for a domU on
/// xen-core and on Xen, whose sysctl refuses a domU before the command).
pub fn xencore_vcpu_stats(dom: u16) -> Result<u64, i64> {
    let mut op = XenSysctl::new(xen_public::xencore::XEN_SYSCTL_XENCORE_VCPU_STATS);
    op.set_payload(&xen_public::xencore::VcpuStats { domid: dom, ..Default::default() });
    // SAFETY: the VcpuStats payload holds no guest handle.
    match unsafe { sysctl(&mut op) } {
        0 => Ok(op.payload::<xen_public::xencore::VcpuStats>().preempted_hypercalls),
        rc => Err(rc),
    }
}

/// `XEN_DOMCTL_getdomaininfo` of `dom` (or, as Xen does, of the next
/// domain above it): the record, or an errno (-EPERM for a domU).
pub fn domctl_getdomaininfo(dom: u16) -> Result<XenDomctlGetdomaininfo, i64> {
    let mut op = XenDomctl::new(XEN_DOMCTL_GETDOMAININFO, dom);
    // SAFETY: the getdomaininfo payload holds no guest handle.
    match unsafe { domctl(&mut op) } {
        0 => Ok(op.payload()),
        rc => Err(rc),
    }
}
