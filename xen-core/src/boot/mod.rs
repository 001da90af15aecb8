//! Boot-time input: the multiboot2 information and the command line.
//! Pure parsers over borrowed bytes; nothing here touches the machine.
#![forbid(unsafe_code)]

pub mod acpi;
pub mod cmdline;
pub mod multiboot2;
pub mod timeline;
