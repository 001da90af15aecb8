//! Dom0 halves of the split drivers: console, block and net backends. A
//! backend never trusts its frontend: ring indices, grant references and
//! segment offsets are bounds-checked, and a bad request gets an error reply.
//!
//! The crate is empty until the split-driver work lands; it exists so the
//! workspace has the layout the project is known by.
#![no_std]
#![forbid(unsafe_code)]

pub mod blkback;
