//! Segment-descriptor checks for PV guests' GDT and LDT pages (Xen's
//! `check_descriptor`, 64-bit guests).
//!
//! Invariant: a descriptor that passes can never give ring 3 more privilege
//! than a 64-bit PV kernel has: code and data segments get DPL 3, a call
//! gate must target a guest code selector and gets DPL 0 (so using it traps
//! to the hypervisor), and every other system descriptor (TSS, LDT,
//! interrupt or trap gates) is refused.
#![forbid(unsafe_code)]

const P: u64 = 1 << 47;
const S: u64 = 1 << 44;
const DPL_SHIFT: u32 = 45;
const TYPE_MASK: u64 = 0xf << 40;
const CALL_GATE: u64 = 0xc << 40;

/// Check a descriptor; `Some(fixed)` with the DPL forced as Xen forces it,
/// `None` if it must be refused.
pub fn check_descriptor(d: u64) -> Option<u64> {
    if d & P == 0 {
        return Some(d);
    }
    // 64-bit PV kernels run in ring 3: DPL below 3 is raised to 3.
    let dpl = ((d >> DPL_SHIFT) & 3).max(3);
    let d = (d & !(3 << DPL_SHIFT)) | (dpl << DPL_SHIFT);
    if d & S != 0 {
        return Some(d);
    }
    match d & TYPE_MASK {
        0 => Some(d),
        CALL_GATE => {
            let cs = ((d >> 16) & 0xffff) as u16;
            // The target must be a guest selector (RPL 3, not the
            // hypervisor's own 0xe008/0xe010).
            if cs & 3 != 3 || (0xe000..0xe030).contains(&(cs & !3)) {
                return None;
            }
            // Reserved bits (the byte under the type) must be zero.
            if (d >> 32) & 0xff != 0 {
                return None;
            }
            // DPL 0, the original DPL kept in the selector's RPL.
            let cs = (cs & !3) | dpl as u16;
            Some((d & !(3 << DPL_SHIFT) & !(0xffff << 16)) | (u64::from(cs) << 16))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_and_data_get_dpl_3() {
        // ABI: guest code/data descriptors are allowed; DPL forced to the guest kernel RPL (3).
        let kernel_code = 0x00af_9a00_0000_ffff; // DPL 0, 64-bit code
        assert_eq!(check_descriptor(kernel_code), Some(0x00af_fa00_0000_ffff));
        let user_data = 0x00cf_f200_0000_ffff;
        assert_eq!(check_descriptor(user_data), Some(user_data));
    }

    #[test]
    fn not_present_and_type_0_are_harmless() {
        assert_eq!(check_descriptor(0x0000_1200_0000_ffff), Some(0x0000_1200_0000_ffff));
        assert_eq!(check_descriptor(0), Some(0));
        assert_eq!(check_descriptor(0x0000_8000_0000_0000 | (3 << 45)), Some(0x0000_e000_0000_0000));
    }

    #[test]
    fn system_descriptors_other_than_call_gates_are_refused() {
        for ty in [0x2u64, 0x9, 0xb, 0xe, 0xf] {
            assert_eq!(check_descriptor(P | (ty << 40)), None, "type {ty:#x}");
        }
    }

    #[test]
    fn call_gates_need_a_guest_selector_and_get_dpl_0() {
        let gate = |cs: u64, dpl: u64| P | CALL_GATE | (dpl << 45) | (cs << 16) | 0x1000;
        let fixed = check_descriptor(gate(0xe033, 3)).unwrap();
        assert_eq!((fixed >> 45) & 3, 0, "DPL 0 so its use traps");
        assert_eq!((fixed >> 16) & 3, 3, "original DPL kept in the RPL");
        assert_eq!(check_descriptor(gate(0xe008, 3)), None, "hypervisor code selector");
        assert_eq!(check_descriptor(gate(0xe030, 3)), None, "RPL 0 selector");
        assert_eq!(check_descriptor(gate(0xe033, 3) | (1 << 33)), None, "reserved bits");
    }
}
