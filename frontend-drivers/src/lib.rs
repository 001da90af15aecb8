//! Guest halves of the split drivers: console, block and net frontends, and
//! the balloon driver. Each talks to its backend over a shared ring in a
//! granted page and an event channel (`io/ring.h`).
//!
//! The crate is empty until the split-driver work lands; it exists so the
//! workspace has the layout the project is known by.
#![no_std]
#![forbid(unsafe_code)]
