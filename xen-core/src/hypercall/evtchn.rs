//! `event_channel_op` and `SCHEDOP_poll` over the domain's ports.

use super::mmu::le64;
use super::*;

fn set_pending(d: &Domain, port: u32) {
    crate::event::set_pending(&mut d.event_bits(), port);
}

/// `event_channel_op(cmd, arg)`: the 2-level event channels of
/// `event.rs`, with results written back into the argument structure.
pub(super) fn event_channel_op(d: &mut Domain, cmd: u32, arg: u64) -> Ret {
    use crate::event::{self, op};
    let size = match cmd {
        op::ALLOC_UNBOUND => 8,
        op::BIND_INTERDOMAIN | op::BIND_VIRQ => 12,
        op::BIND_IPI | op::BIND_VCPU => 8,
        op::CLOSE | op::SEND | op::UNMASK => 4,
        op::STATUS => 24,
        op::RESET => 2,
        _ => return -ENOSYS,
    };
    let mem = d.kernel_mem();
    let mut b = [0u8; 24];
    if mem.read(arg, &mut b[..size]).is_err() {
        return -EFAULT;
    }
    let dom = d.domid;
    let result: Result<Option<(usize, u32)>, i64> = match cmd {
        op::ALLOC_UNBOUND => self_dom(d, u16_at(&b, 0)).and_then(|()| {
            let remote = u16_at(&b, 2);
            let remote = if remote == xen_public::DOMID_SELF { dom } else { remote };
            d.ports.alloc_unbound(remote).map(|p| Some((4, p)))
        }),
        op::BIND_INTERDOMAIN => self_dom(d, u16_at(&b, 0)).and_then(|()| {
            let local = event::bind_loopback(&mut d.ports, dom, u32_at(&b, 4))?;
            // As Xen: notifications sent to the unbound port may have been
            // lost, so the new local port starts pending.
            set_pending(d, local);
            Ok(Some((8, local)))
        }),
        op::BIND_VIRQ => d.ports.bind_virq(u32_at(&b, 0), u32_at(&b, 4)).map(|p| Some((8, p))),
        op::BIND_IPI => d.ports.bind_ipi(u32_at(&b, 0)).map(|p| Some((4, p))),
        op::CLOSE => event::close(&mut d.ports, dom, u32_at(&b, 0)).map(|()| None),
        op::SEND => event::send_target(&d.ports, dom, u32_at(&b, 0)).map(|t| {
            if let Some((_, port)) = t {
                set_pending(d, port);
            }
            None
        }),
        op::UNMASK => {
            let port = u32_at(&b, 0);
            if d.ports.state(port).is_none() {
                Err(-EINVAL)
            } else {
                event::unmask(&mut d.event_bits(), port);
                Ok(None)
            }
        }
        op::BIND_VCPU => match (d.ports.state(u32_at(&b, 0)), u32_at(&b, 4)) {
            (_, v) if v != 0 => Err(-xen_public::errno::ENOENT),
            (None | Some(event::State::Free | event::State::Reserved), _) => Err(-EINVAL),
            _ => Ok(None),
        },
        op::STATUS => self_dom(d, u16_at(&b, 0)).and_then(|()| {
            let (status, w1, w2) = event::status(&d.ports, u32_at(&b, 4))?;
            b[8..12].copy_from_slice(&status.to_le_bytes());
            b[12..16].copy_from_slice(&0u32.to_le_bytes());
            if status == event::stat::VIRQ {
                b[16..20].copy_from_slice(&w1.to_le_bytes());
            } else {
                b[16..18].copy_from_slice(&(w1 as u16).to_le_bytes());
                b[20..24].copy_from_slice(&w2.to_le_bytes());
            }
            Ok(Some((8, status)))
        }),
        op::RESET => self_dom(d, u16_at(&b, 0)).map(|()| {
            d.ports.reset();
            None
        }),
        _ => Err(-ENOSYS),
    };
    match result {
        Err(e) => e,
        Ok(None) => 0,
        Ok(Some((off, v))) => {
            if cmd != op::STATUS {
                b[off..off + 4].copy_from_slice(&v.to_le_bytes());
            }
            if mem.write(arg, &b[..size]).is_err() { -EFAULT } else { 0 }
        }
    }
}

/// `SCHEDOP_poll`: returns at once if an upcall is deliverable or one of
/// the ports is pending; bad ports are -EINVAL; more than 128 -EINVAL.
/// Otherwise it waits for the timeout (there is nothing else to run).
pub(super) fn poll(d: &mut Domain, arg: u64) -> Ret {
    use crate::event::EventBits;
    let mem = d.kernel_mem();
    let mut b = [0u8; 24];
    if mem.read(arg, &mut b).is_err() {
        return -EFAULT;
    }
    let (ports, nr, timeout) = (le64(&b[0..8]), u32_at(&b, 8), le64(&b[16..24]));
    if nr > 128 {
        return -EINVAL;
    }
    if d.upcall_deliverable() {
        return 0;
    }
    let bits = d.event_bits();
    for i in 0..u64::from(nr) {
        let Ok(port) = mem.read_u32(ports + i * 4) else { return -EFAULT };
        if d.ports.state(port).is_none() {
            return -EINVAL;
        }
        if bits.is_pending(port) {
            return 0;
        }
    }
    if timeout != 0
        && let Some(clock) = crate::guest::CLOCK.get() {
            while clock.system_time(crate::arch::x86_64::clock::rdtsc()) < timeout {
                core::hint::spin_loop();
            }
        }
    0
}
