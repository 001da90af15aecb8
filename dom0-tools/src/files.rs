//! Dom0's files: what its boot module carries (guest kernels and xl
//! configs) plus the configs a user writes from the shell.
//!
//! The boot module is either a tar archive (what `cargo xtask` packs: the
//! demo guest as `guest` and configs such as `demo.cfg`) or a bare guest
//! ELF image, which is then the one file `guest`. Files written from the
//! shell live in dom0's heap and shadow a module file of the same name.
//!
//! Invariant: names are short printable ASCII without `/` components that
//! could escape (`a/b` is one name), file sizes are bounded
//! ([`MAX_WRITTEN`] bytes per written file, [`MAX_FILES`] written files),
//! and a module file's bytes are borrowed, never copied.
#![forbid(unsafe_code)]

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

/// The demo guest kernel's file name (a bare ELF module is this file).
pub const DEMO_KERNEL: &str = "guest";

/// Bytes of one file written from the shell.
pub const MAX_WRITTEN: usize = 16 * 1024;
/// Files written from the shell.
pub const MAX_FILES: usize = 32;
/// Longest file name.
pub const MAX_NAME: usize = 64;
/// Files taken from a boot module (the rest are ignored).
pub const MAX_MODULE_FILES: usize = 64;

/// Why a file operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileError {
    /// No such file.
    NotFound,
    /// A name that is empty, too long, or not printable ASCII.
    BadName,
    /// Past [`MAX_WRITTEN`] or [`MAX_FILES`].
    TooBig,
    /// A file from the boot module cannot be changed.
    ReadOnly,
}

impl core::fmt::Display for FileError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            FileError::NotFound => "No such file or directory",
            FileError::BadName => "invalid file name",
            FileError::TooBig => "file too large (or too many files)",
            FileError::ReadOnly => "read-only file (from the boot module)",
        })
    }
}

/// The files dom0 knows.
#[derive(Default)]
pub struct Files<'m> {
    module: Vec<(String, &'m [u8])>,
    written: BTreeMap<String, Vec<u8>>,
}

/// Whether `name` is acceptable as a file name.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME && name.bytes().all(|b| b.is_ascii_graphic())
}

/// The name a path refers to: `/boot/guest` and `guest` are the same file
/// (xl configs often name kernels by path).
fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

impl<'m> Files<'m> {
    /// The files of boot module `module`: a tar archive, or a bare ELF
    /// image (the file `guest`). Anything else yields no files.
    pub fn from_module(module: &'m [u8]) -> Files<'m> {
        let mut files = Files::default();
        if module.starts_with(b"\x7fELF") {
            files.module.push((String::from(DEMO_KERNEL), module));
        } else if let Ok(tar) = tar_no_std::TarArchiveRef::new(module) {
            for e in tar.entries().take(MAX_MODULE_FILES) {
                let raw = e.filename();
                let Ok(name) = raw.as_str() else { continue };
                let name = name.trim_start_matches("./");
                if valid_name(name) {
                    files.module.push((String::from(name), e.data()));
                }
            }
        }
        files
    }

    /// The contents of file `path` (a written file first, then the
    /// module's; by full name, then by its last component).
    pub fn get(&self, path: &str) -> Option<&[u8]> {
        let find = |name: &str| self.written.get(name).map(Vec::as_slice).or_else(|| self.module.iter().find(|(n, _)| n == name).map(|(_, d)| *d));
        find(path).or_else(|| find(base_name(path)))
    }

    /// The contents of module file `path` (written files are not
    /// kernels), by full name, then by its last component.
    pub fn module_file(&self, path: &str) -> Option<&'m [u8]> {
        let find = |name: &str| self.module.iter().find(|(n, _)| n == name).map(|(_, d)| *d);
        find(path).or_else(|| find(base_name(path)))
    }

    /// Every file's name and size, sorted by name.
    pub fn list(&self) -> Vec<(&str, usize)> {
        let mut all: Vec<(&str, usize)> = self.written.iter().map(|(n, d)| (n.as_str(), d.len())).collect();
        for (n, d) in &self.module {
            if !self.written.contains_key(n) {
                all.push((n.as_str(), d.len()));
            }
        }
        all.sort_unstable();
        all
    }

    /// Append `text` and a newline to the written file `name` (created
    /// empty first when `truncate`, or when it does not exist).
    pub fn write_line(&mut self, name: &str, text: &str, truncate: bool) -> Result<(), FileError> {
        if !valid_name(name) {
            return Err(FileError::BadName);
        }
        if !self.written.contains_key(name) && self.written.len() >= MAX_FILES {
            return Err(FileError::TooBig);
        }
        let old = self.written.get(name).map_or(0, Vec::len);
        let grown = if truncate { 0 } else { old } + text.len() + 1;
        if grown > MAX_WRITTEN {
            return Err(FileError::TooBig);
        }
        let file = self.written.entry(String::from(name)).or_default();
        if truncate {
            file.clear();
        }
        file.extend_from_slice(text.as_bytes());
        file.push(b'\n');
        Ok(())
    }

    /// Remove a written file.
    pub fn remove(&mut self, name: &str) -> Result<(), FileError> {
        match self.written.remove(name) {
            Some(_) => Ok(()),
            None if self.module.iter().any(|(n, _)| n == name) => Err(FileError::ReadOnly),
            None => Err(FileError::NotFound),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec;

    /// A ustar archive of `files` (name, data), built by hand.
    fn tar(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, data) in files {
            let mut h = [0u8; 512];
            h[..name.len()].copy_from_slice(name.as_bytes());
            h[100..107].copy_from_slice(b"0000644");
            h[108..115].copy_from_slice(b"0000000");
            h[116..123].copy_from_slice(b"0000000");
            let size = std::format!("{:011o}", data.len());
            h[124..135].copy_from_slice(size.as_bytes());
            h[136..147].copy_from_slice(b"00000000000");
            h[156] = b'0';
            h[257..263].copy_from_slice(b"ustar\0");
            h[263..265].copy_from_slice(b"00");
            h[148..156].copy_from_slice(b"        ");
            let sum: u32 = h.iter().map(|&b| b as u32).sum();
            let sum = std::format!("{sum:06o}\0 ");
            h[148..156].copy_from_slice(sum.as_bytes());
            out.extend_from_slice(&h);
            out.extend_from_slice(data);
            out.resize(out.len().next_multiple_of(512), 0);
        }
        out.extend_from_slice(&[0u8; 1024]);
        out
    }

    #[test]
    fn a_tar_module_gives_its_files_by_name_and_by_path() {
        let t = tar(&[("guest", b"\x7fELFkernel"), ("demo.cfg", b"name = \"demo\"\n")]);
        let f = Files::from_module(&t);
        assert_eq!(f.get("demo.cfg"), Some(&b"name = \"demo\"\n"[..]));
        assert_eq!(f.get("/boot/guest"), Some(&b"\x7fELFkernel"[..]), "a kernel named by path is found by its last component");
        assert_eq!(f.get("nope"), None);
        assert_eq!(f.list(), vec![("demo.cfg", 14), ("guest", 10)]);
    }

    #[test]
    fn a_bare_elf_module_is_the_file_guest() {
        let f = Files::from_module(b"\x7fELF....");
        assert_eq!(f.list(), vec![("guest", 8)]);
    }

    #[test]
    fn garbage_or_a_corrupt_tar_module_gives_no_files_and_no_panic() {
        assert!(Files::from_module(b"").list().is_empty());
        assert!(Files::from_module(&[0xffu8; 4096]).list().is_empty());
        let mut t = tar(&[("a.cfg", b"x = 1\n")]);
        t[124..135].copy_from_slice(b"77777777777"); // size far past the archive
        assert!(Files::from_module(&t).list().is_empty(), "a size past the end fails validation");
        let mut t = tar(&[("a.cfg", b"x = 1\n")]);
        t[0] = b'\x01'; // a name that is not printable
        assert!(Files::from_module(&t).get("\x01.cfg").is_none());
    }

    #[test]
    fn written_files_append_truncate_and_shadow_module_files() {
        let t = tar(&[("demo.cfg", b"module\n")]);
        let mut f = Files::from_module(&t);
        f.write_line("demo.cfg", "name = 'x'", true).unwrap();
        f.write_line("demo.cfg", "memory = 8", false).unwrap();
        assert_eq!(f.get("demo.cfg"), Some(&b"name = 'x'\nmemory = 8\n"[..]));
        assert_eq!(f.remove("demo.cfg"), Ok(()));
        assert_eq!(f.get("demo.cfg"), Some(&b"module\n"[..]), "the module's file shows again");
        assert_eq!(f.remove("demo.cfg"), Err(FileError::ReadOnly));
        assert_eq!(f.remove("other"), Err(FileError::NotFound));
    }

    #[test]
    fn writes_past_the_limits_are_refused_and_change_nothing() {
        let mut f = Files::default();
        assert_eq!(f.write_line("", "x", true), Err(FileError::BadName));
        assert_eq!(f.write_line("a b", "x", true), Err(FileError::BadName));
        assert_eq!(f.write_line(&"n".repeat(MAX_NAME + 1), "x", true), Err(FileError::BadName));
        let line = "y".repeat(1000);
        for _ in 0..16 {
            f.write_line("big", &line, false).unwrap();
        }
        assert_eq!(f.write_line("big", &line, false), Err(FileError::TooBig));
        assert_eq!(f.get("big").map(<[u8]>::len), Some(16 * 1001));
        for i in 1..MAX_FILES {
            f.write_line(&std::format!("f{i}"), "x", true).unwrap();
        }
        assert_eq!(f.write_line("one-more", "x", true), Err(FileError::TooBig));
        assert_eq!(f.list().len(), MAX_FILES);
    }
}
