//! `domctl` and `sysctl`: the control interfaces of the privileged domain,
//! with Xen 4.17's interface versions and layouts. Only the calling domain
//! exists so far, so the commands that act on other domains answer as Xen
//! does for an unknown one (-ESRCH); creating domains is still -ENOSYS.

use super::mmu::le64;
use super::*;

/// `XEN_DOMCTL_INTERFACE_VERSION` of Xen 4.17.
pub(super) const DOMCTL_VERSION: u32 = 0x15;
/// `XEN_SYSCTL_INTERFACE_VERSION` of Xen 4.17.
pub(super) const SYSCTL_VERSION: u32 = 0x15;
/// Size of `struct xen_domctl_getdomaininfo` on x86.
const DOMAININFO_SIZE: usize = 112;

const XEN_DOMINF_RUNNING: u32 = 1 << 5;

/// `xen_domctl_getdomaininfo` of `d` (which is running: it is the caller).
fn domaininfo(d: &Domain) -> [u8; DOMAININFO_SIZE] {
    let mut b = [0u8; DOMAININFO_SIZE];
    b[0..2].copy_from_slice(&d.domid.to_le_bytes());
    b[4..8].copy_from_slice(&XEN_DOMINF_RUNNING.to_le_bytes());
    b[8..16].copy_from_slice(&d.nr_pages.to_le_bytes());
    b[16..24].copy_from_slice(&d.max_pages.to_le_bytes());
    b[48..56].copy_from_slice(&d.shared_info.0.to_le_bytes());
    b[56..64].copy_from_slice(&crate::guest::system_time().to_le_bytes());
    b[64..68].copy_from_slice(&1u32.to_le_bytes());
    b[68..72].copy_from_slice(&0u32.to_le_bytes());
    b[96] = 52;
    b
}

/// `domctl(op)`.
pub(super) fn domctl(d: &mut Domain, arg: u64) -> Ret {
    const GETDOMAININFO: u32 = 5;
    const MAX_MEM: u32 = 11;
    if !d.privileged {
        return -EPERM;
    }
    let mem = d.kernel_mem();
    let mut b = [0u8; 144];
    if mem.read(arg, &mut b).is_err() {
        return -EFAULT;
    }
    let (cmd, version, dom) = (u32_at(&b, 0), u32_at(&b, 4), u16_at(&b, 8));
    if version != DOMCTL_VERSION {
        return -EACCES;
    }
    match cmd {
        GETDOMAININFO => {
            // The first domain whose id is >= the one asked for.
            if dom > d.domid {
                return -ESRCH;
            }
            b[8..10].copy_from_slice(&d.domid.to_le_bytes());
            b[16..16 + DOMAININFO_SIZE].copy_from_slice(&domaininfo(d));
        }
        MAX_MEM => {
            if dom != d.domid {
                return -ESRCH;
            }
            let kb = u64::from_le_bytes(b[16..24].try_into().unwrap_or_default());
            d.max_pages = kb / 4;
            return 0;
        }
        _ if dom != d.domid && dom != xen_public::DOMID_SELF => return -ESRCH,
        _ => return -ENOSYS,
    }
    if mem.write(arg, &b).is_err() { -EFAULT } else { 0 }
}

/// `sysctl(op)`.
pub(super) fn sysctl(d: &mut Domain, arg: u64) -> Ret {
    const PHYSINFO: u32 = 3;
    const GETDOMAININFOLIST: u32 = 6;
    const PHYSCAP_PV: u32 = 1 << 1;
    if !d.privileged {
        return -EPERM;
    }
    let mem = d.kernel_mem();
    let mut b = [0u8; 136];
    if mem.read(arg, &mut b).is_err() {
        return -EFAULT;
    }
    let (cmd, version) = (u32_at(&b, 0), u32_at(&b, 4));
    if version != SYSCTL_VERSION {
        return -EACCES;
    }
    let u = 8;
    match cmd {
        PHYSINFO => {
            let total = crate::mm::machine::M2P.get().map_or(0, |m| m.entries);
            let cpus = crate::arch::x86_64::smp::CPUS_ONLINE.load(core::sync::atomic::Ordering::SeqCst);
            let words: [u32; 10] = [1, 1, cpus, cpus - 1, 1, 0, 0, PHYSCAP_PV, 0, 0];
            for (i, w) in words.iter().enumerate() {
                b[u + i * 4..u + i * 4 + 4].copy_from_slice(&w.to_le_bytes());
            }
            b[u + 24..u + 28].copy_from_slice(&crate::guest::tsc_khz().to_le_bytes());
            b[u + 40..u + 48].copy_from_slice(&total.to_le_bytes());
            b[u + 48..u + 56].copy_from_slice(&crate::mm::machine::free_frames().to_le_bytes());
            b[u + 72..u + 80].copy_from_slice(&total.saturating_sub(1).to_le_bytes());
        }
        GETDOMAININFOLIST => {
            let (first, max, buf) = (u16_at(&b, u), u32_at(&b, u + 4), le64(&b[u + 8..u + 16]));
            let mut n = 0u32;
            if first <= d.domid && max >= 1 {
                if mem.write(buf, &domaininfo(d)).is_err() {
                    return -EFAULT;
                }
                n = 1;
            }
            b[u + 16..u + 20].copy_from_slice(&n.to_le_bytes());
        }
        _ => return -ENOSYS,
    }
    if mem.write(arg, &b).is_err() { -EFAULT } else { 0 }
}

/// `memory_op(cmd, arg)` for the domain itself: reservations and the
/// physmap, in extents of order 0 (larger orders are -EINVAL here, where
/// Xen would allocate them). A frame given back must have no other
/// reference (Xen would free it when its last mapping goes).
pub(super) fn memory_op(d: &mut Domain, cmd: u32, arg: u64) -> Ret {
    const INCREASE: u32 = 0;
    const DECREASE: u32 = 1;
    const MAXIMUM_RAM_PAGE: u32 = 2;
    const CURRENT: u32 = 3;
    const MAXIMUM: u32 = 4;
    const POPULATE: u32 = 6;
    let mem = d.kernel_mem();
    match cmd & 0x3f {
        MAXIMUM_RAM_PAGE => crate::mm::machine::M2P.get().map_or(0, |m| m.entries.saturating_sub(1)) as i64,
        CURRENT | MAXIMUM => {
            let mut raw = [0u8; 2];
            if mem.read(arg, &mut raw).is_err() {
                return -EFAULT;
            }
            let dom = u16::from_le_bytes(raw);
            if dom != xen_public::DOMID_SELF && dom != d.domid {
                return -ESRCH;
            }
            (if cmd & 0x3f == CURRENT { d.nr_pages } else { d.max_pages }) as i64
        }
        INCREASE | DECREASE | POPULATE => {
            let mut b = [0u8; 32];
            if mem.read(arg, &mut b).is_err() {
                return -EFAULT;
            }
            let (list, nr, order, dom) = (le64(&b[0..8]), le64(&b[8..16]), u32_at(&b, 16), u16_at(&b, 24));
            if dom != xen_public::DOMID_SELF && dom != d.domid {
                return -ESRCH;
            }
            if order != 0 {
                return -EINVAL;
            }
            reservation(d, cmd & 0x3f, list, nr)
        }
        _ => -ENOSYS,
    }
}

/// Do up to `nr` extents of a reservation change; returns how many were done.
fn reservation(d: &mut Domain, cmd: u32, list: u64, nr: u64) -> Ret {
    const DECREASE: u32 = 1;
    const POPULATE: u32 = 6;
    let mem = d.kernel_mem();
    let mut done = 0u64;
    while done < nr && done < 512 {
        let slot = list + done * 8;
        if cmd == DECREASE {
            let Ok(mfn) = mem.read_u64(slot) else { break };
            let released = FRAME_TABLE.lock().as_mut().is_some_and(|ft| ft.release(mfn, d.domid));
            if !released {
                break;
            }
            crate::mm::machine::free_frame(Mfn(mfn));
            d.nr_pages -= 1;
        } else {
            if d.nr_pages >= d.max_pages {
                break;
            }
            let gpfn = if cmd == POPULATE { mem.read_u64(slot).ok() } else { None };
            if cmd == POPULATE && gpfn.is_none() {
                break;
            }
            let Some(mfn) = crate::mm::machine::alloc_frame() else { break };
            if FRAME_TABLE.lock().as_mut().is_none_or(|ft| ft.assign(mfn.0, d.domid).is_err()) {
                crate::mm::machine::free_frame(mfn);
                break;
            }
            if let Some(g) = gpfn {
                crate::mm::machine::set_m2p(mfn, g);
            }
            if mem.write(slot, &mfn.0.to_le_bytes()).is_err() {
                break;
            }
            d.nr_pages += 1;
        }
        done += 1;
    }
    done as i64
}
