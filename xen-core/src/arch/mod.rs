//! Architecture support. Only x86_64 exists; everything here is the small
//! unsafe core that the safe services in the rest of the crate stand on.

pub mod x86_64;
