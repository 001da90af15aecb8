//! Guest callbacks: mirrors Xen 4.17's `public/callback.h`.
//!
//! Holds the `CALLBACKOP_*` sub-op numbers of `callback_op(cmd, arg)`, the
//! `CALLBACKTYPE_*` kinds and the register/unregister arguments.
//! Invariant: every structure has exactly the x86_64 size and field offsets
//! Xen 4.17 gives it (`xen_callback_t` is a u64 address), checked at compile
//! time.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `CALLBACKOP_register`: [`CallbackRegister`].
pub const CALLBACKOP_REGISTER: u64 = 0;
/// `CALLBACKOP_unregister`: [`CallbackUnregister`].
pub const CALLBACKOP_UNREGISTER: u64 = 1;

/// `CALLBACKTYPE_event`: event-channel upcall.
pub const CALLBACKTYPE_EVENT: u16 = 0;
/// `CALLBACKTYPE_failsafe`: entered when Xen cannot restore guest segment state.
pub const CALLBACKTYPE_FAILSAFE: u16 = 1;
/// `CALLBACKTYPE_syscall`: SYSCALL from 64-bit guest user mode.
pub const CALLBACKTYPE_SYSCALL: u16 = 2;
/// `CALLBACKTYPE_sysenter_deprecated`: the old SYSENTER number.
pub const CALLBACKTYPE_SYSENTER_DEPRECATED: u16 = 3;
/// `CALLBACKTYPE_nmi`: NMI delivery.
pub const CALLBACKTYPE_NMI: u16 = 4;
/// `CALLBACKTYPE_sysenter`: SYSENTER from 32-bit guest user mode.
pub const CALLBACKTYPE_SYSENTER: u16 = 5;
/// `CALLBACKTYPE_syscall32`: SYSCALL from 32-bit guest user mode.
pub const CALLBACKTYPE_SYSCALL32: u16 = 7;

/// `CALLBACKF_mask_events`: mask events on entry to the callback.
pub const CALLBACKF_MASK_EVENTS: u16 = 1 << 0;

/// `struct callback_register`.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallbackRegister {
    /// A `CALLBACKTYPE_*`.
    pub type_: u16,
    /// `CALLBACKF_*`.
    pub flags: u16,
    /// Padding; zero.
    pub _pad0: u32,
    /// Entry point.
    pub address: u64,
}
const _: () = assert!(core::mem::size_of::<CallbackRegister>() == 16);
const _: () = assert!(core::mem::offset_of!(CallbackRegister, flags) == 2);
const _: () = assert!(core::mem::offset_of!(CallbackRegister, address) == 8);

/// `struct callback_unregister`.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallbackUnregister {
    /// A `CALLBACKTYPE_*`.
    pub type_: u16,
    /// Unused; zero.
    pub _unused: u16,
}
const _: () = assert!(core::mem::size_of::<CallbackUnregister>() == 4);

#[cfg(test)]
mod tests {
    use super::*;

    /// ABI rule: `callback_register` is {u16 type, u16 flags, 4 bytes padding, u64 address}.
    #[test]
    fn register_address_at_byte_8() {
        let r = CallbackRegister { type_: CALLBACKTYPE_SYSCALL, flags: CALLBACKF_MASK_EVENTS, _pad0: 0, address: 0xffff_ffff_8100_0000 };
        let b = r.as_bytes();
        assert_eq!(&b[..4], &[2, 0, 1, 0]);
        assert_eq!(&b[8..], &0xffff_ffff_8100_0000u64.to_le_bytes());
        assert_eq!(CallbackRegister::read_from_bytes(b).unwrap(), r);
    }
}
