//! The PV console ring under its original path: everything here is
//! [`crate::io::console`] (mirroring `public/io/console.h`), re-exported so
//! `xen_public::console::*` keeps working.
//!
//! Invariant: this module defines nothing of its own; the layout and its
//! compile-time checks live in [`crate::io::console`].

pub use crate::io::console::*;
