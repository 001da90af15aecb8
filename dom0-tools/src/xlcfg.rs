//! xl.cfg domain configuration files, parsed as Xen 4.17's `xl` parses them:
//! the syntax of libxlutil (`tools/libs/util/libxlu_cfg_l.l`,
//! `libxlu_cfg_y.y`, `libxlu_cfg.c`), the disk and vif specification
//! languages (`libxlu_disk_l.l`, `libxlu_disk.c`, `libxlu_vif.c`,
//! `tools/xl/xl_parse.c` `parse_nic_config`), and the meaning and defaults of
//! the keys a PV domain uses (`tools/xl/xl_parse.c` `parse_config_data`,
//! `tools/libs/light/libxl_create.c` and `libxl_nic.c` setdefault).
//!
//! It owns the text-to-[`DomainConfig`] step of `xl create FILE [KEY=VALUE
//! ...]`: [`parse`] and [`parse_with_extra`]. It builds nothing and talks to
//! no hypervisor.
//!
//! Invariant: the input is hostile (a file a user wrote, a line typed at the
//! shell). Every input gets `Ok` or an [`Error`] naming the line and the key,
//! never a panic; memory and time are bounded by the limits below, checked
//! before anything grows past them; list nesting (the one recursion) is
//! bounded by [`MAX_LIST_DEPTH`].
//!
//! Where this parser is stricter than xl 4.17 it says so at the spot: xl
//! prints a warning and carries on with a default for many bad values (a
//! list where a string is expected, `+=` on a number, a vif option it does
//! not know); here each of those is an error, so a typo never boots a domain
//! the user did not describe.
#![forbid(unsafe_code)]

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

// ---------------------------------------------------------------------------
// Limits. xl has none but the C heap; dom0's heap is small and its input is
// untrusted, so each of these is an error past it (the message names it).
// ---------------------------------------------------------------------------

/// Largest configuration file, in bytes.
pub const MAX_CONFIG_BYTES: usize = 64 * 1024;
/// Largest total of the command-line extras of `xl create FILE KEY=VALUE...`.
pub const MAX_EXTRA_BYTES: usize = 4 * 1024;
/// Longest line, in bytes, not counting its newline.
pub const MAX_LINE_BYTES: usize = 4 * 1024;
/// Longest string value after dequoting and after `+=` concatenation. It is
/// also `MAX_GUEST_CMDLINE` (`xen/include/public/xen.h`): a longer cmdline
/// could not reach the guest's `start_info.cmd_line` anyway.
pub const MAX_STRING_BYTES: usize = 1024;
/// Longest key.
pub const MAX_KEY_BYTES: usize = 64;
/// Most distinct keys in one configuration (a key set again is not new).
pub const MAX_KEYS: usize = 128;
/// Most items in one list (also after `+=`).
pub const MAX_LIST_ITEMS: usize = 256;
/// Deepest list nesting: `[ [ ] ]` is depth 2. xl uses depth 2 (`vnuma`).
pub const MAX_LIST_DEPTH: usize = 4;
/// Largest `memory` / `maxmem`, in MiB (1 TiB): this parser's bound, far
/// above what dom0 can give a guest; the builder checks what is free.
pub const MAX_MEMORY_MIB: u64 = 1 << 20;
/// Largest `vcpus` / `maxvcpus` (`HVM_MAX_VCPUS` of `xen/include/public/hvm/hvm_info_table.h`).
pub const MAX_VCPUS: u32 = 128;
/// Longest guest command line including its NUL (`MAX_GUEST_CMDLINE`,
/// `xen/include/public/xen.h`: the size of `start_info.cmd_line`).
pub const MAX_GUEST_CMDLINE: usize = 1024;
/// Longest file name kept in errors and warnings (longer ones are cut).
const MAX_FILE_NAME_BYTES: usize = 128;
/// Longest piece of the input quoted in a message.
const MAX_QUOTE_BYTES: usize = 40;

// ---------------------------------------------------------------------------
// Public types.
// ---------------------------------------------------------------------------

/// A configuration that cannot create a domain. Displays as xl's messages
/// do: `demo.cfg:4: on_crash: unknown action "explode"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// The configuration's file name, as given to [`parse`].
    pub file: String,
    /// 1-based line of the setting or token at fault; 0 when there is none
    /// (a required key is missing, an extra setting has no `=`).
    pub line: u32,
    /// The key at fault, when there is one.
    pub key: Option<String>,
    /// What is wrong, quoting (a bounded prefix of) what was found.
    pub message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_located(f, &self.file, self.line, self.key.as_deref(), &self.message)
    }
}

/// Something in the configuration that was ignored: a key this dom0 does not
/// use, or one xl ignores in favour of another. The domain is still created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// The configuration's file name.
    pub file: String,
    /// 1-based line of the setting (its last setting, when set again).
    pub line: u32,
    /// The key.
    pub key: String,
    /// What was ignored and why.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_located(f, &self.file, self.line, Some("warning"), &self.key)?;
        write!(f, ": {}", self.message)
    }
}

fn write_located(f: &mut fmt::Formatter<'_>, file: &str, line: u32, key: Option<&str>, message: &str) -> fmt::Result {
    f.write_str(file)?;
    if line > 0 {
        write!(f, ":{line}")?;
    }
    f.write_str(": ")?;
    if let Some(key) = key {
        write!(f, "{key}: ")?;
    }
    f.write_str(message)
}

/// What to do with a domain when it shuts down for a given reason
/// (`libxl_action_on_shutdown`, names from xl_parse.c
/// `action_on_shutdown_names`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// `destroy`: destroy the domain.
    Destroy,
    /// `restart`: destroy it and create a new one from the same configuration.
    Restart,
    /// `rename-restart`: rename the old domain, then create a new one.
    RenameRestart,
    /// `preserve`: keep the dead domain for inspection.
    Preserve,
    /// `coredump-destroy`: dump its core, then destroy it.
    CoredumpDestroy,
    /// `coredump-restart`: dump its core, then restart it.
    CoredumpRestart,
    /// `soft-reset`: reset the domain's state and run it again.
    SoftReset,
}

impl Action {
    /// Every action, in libxl's order.
    pub const ALL: [Action; 7] = [
        Action::Destroy,
        Action::Restart,
        Action::RenameRestart,
        Action::Preserve,
        Action::CoredumpDestroy,
        Action::CoredumpRestart,
        Action::SoftReset,
    ];

    /// The xl.cfg spelling.
    pub fn name(self) -> &'static str {
        match self {
            Action::Destroy => "destroy",
            Action::Restart => "restart",
            Action::RenameRestart => "rename-restart",
            Action::Preserve => "preserve",
            Action::CoredumpDestroy => "coredump-destroy",
            Action::CoredumpRestart => "coredump-restart",
            Action::SoftReset => "soft-reset",
        }
    }

    /// libxl's name (`libxl_action_on_shutdown_to_string`), as `xl list
    /// -l` shows it.
    pub fn libxl_name(self) -> &'static str {
        match self {
            Action::Destroy => "destroy",
            Action::Restart => "restart",
            Action::RenameRestart => "restart_rename",
            Action::Preserve => "preserve",
            Action::CoredumpDestroy => "coredump_destroy",
            Action::CoredumpRestart => "coredump_restart",
            Action::SoftReset => "soft_reset",
        }
    }

    /// The action spelled `name`, compared exactly (xl uses `strcmp`).
    pub fn from_name(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.name() == name)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A disk image format (`libxl_disk_format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskFormat {
    /// `raw` (the default).
    Raw,
    /// `qcow`
    Qcow,
    /// `qcow2`
    Qcow2,
    /// `vhd`
    Vhd,
    /// `qed`
    Qed,
    /// `empty`: no medium (a cdrom drive without a target).
    Empty,
}

impl DiskFormat {
    /// libxl's name (`libxl_disk_format_to_string`), as `xl list -l`
    /// shows it.
    pub fn libxl_name(self) -> &'static str {
        match self {
            DiskFormat::Raw => "raw",
            DiskFormat::Qcow => "qcow",
            DiskFormat::Qcow2 => "qcow2",
            DiskFormat::Vhd => "vhd",
            DiskFormat::Qed => "qed",
            DiskFormat::Empty => "empty",
        }
    }
}

/// Whether the guest may write a disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskAccess {
    /// `ro` / `r`
    ReadOnly,
    /// `rw` / `w` (the default, except for cdroms)
    ReadWrite,
}

/// What the guest sees the disk as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskDevtype {
    /// A disk (the default).
    Disk,
    /// A removable cdrom drive (always read-only).
    Cdrom,
}

/// Which backend implementation serves a disk (`backendtype=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskBackendType {
    /// `phy`
    Phy,
    /// `tap`
    Tap,
    /// `qdisk`
    Qdisk,
    /// `standalone`
    Standalone,
}

/// The protocol a disk is offered with (`specification=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskSpecification {
    /// `xen`: blkif (the default).
    Xen,
    /// `virtio`
    Virtio,
}

/// One entry of `disk = [...]`, after libxlutil's defaults
/// (`docs/man/xl-disk-configuration.5.pod.in`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskSpec {
    /// The image or device, as written (libxl would prefix `/dev/` to a
    /// relative `phy` path; that is the backend's business). `None` only for
    /// an empty cdrom drive.
    pub target: Option<String>,
    /// Default `raw`; `empty` for a cdrom without a target.
    pub format: DiskFormat,
    /// The guest's name for it (`xvda`, `hdc`...); required.
    pub vdev: String,
    /// Default read-write; a cdrom is always read-only.
    pub access: DiskAccess,
    /// Default disk.
    pub devtype: DiskDevtype,
    /// `backend=`: the backend domain's name; `None` is dom0.
    pub backend: Option<String>,
    /// `backendtype=`; `None` lets the toolstack choose.
    pub backendtype: Option<DiskBackendType>,
    /// `specification=`; default xen.
    pub specification: DiskSpecification,
    /// `script=` (or a deprecated `iscsi:`... prefix: `block-iscsi`).
    pub script: Option<String>,
    /// `direct-io-safe` flag.
    pub direct_io_safe: bool,
    /// `discard` / `no-discard`; default discard.
    pub discard: bool,
    /// `trusted` / `untrusted`; default trusted.
    pub trusted: bool,
}

/// `rate=` of a vif: the credit of `bytes_per_interval` refilled every
/// `interval_usecs` (libxlu_vif.c).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VifRate {
    /// Bytes the vif may send per interval.
    pub bytes_per_interval: u64,
    /// The replenishment interval; default 50 ms.
    pub interval_usecs: u32,
}

/// One entry of `vif = [...]`, after xl's and libxl's defaults
/// (`docs/man/xl-network-configuration.5.pod.in`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VifSpec {
    /// `devid=`; default the entry's index in the list (xl_parse.c
    /// `ARRAY_EXTEND_INIT`).
    pub devid: u32,
    /// `mac=`; `None`: libxl generates one in Xen's OUI 00:16:3e.
    pub mac: Option<[u8; 6]>,
    /// `bridge=`; default `xenbr0` (libxl_nic.c).
    pub bridge: String,
    /// `ip=`; default none.
    pub ip: Option<String>,
    /// `rate=`; default unlimited.
    pub rate: Option<VifRate>,
    /// `model=`; default `rtl8139` (libxl_nic.c; only emulated NICs use it).
    pub model: String,
    /// `script=`; default `vif-bridge` (libxl_nic.c, in the script directory).
    pub script: String,
    /// `backend=`: the backend domain's name; `None` is dom0.
    pub backend: Option<String>,
    /// `vifname=`; `None`: the backend names it `vif<domid>.<devid>`.
    pub vifname: Option<String>,
    /// `gatewaydev=` (or its deprecated alias `netdev=`).
    pub gatewaydev: Option<String>,
    /// `mtu=`; default 1500 (libxl_nic.c `LIBXL_DEVICE_NIC_MTU_DEFAULT`).
    pub mtu: u32,
    /// `trusted` / `untrusted`; default trusted.
    pub trusted: bool,
}

/// A PV domain as an xl.cfg describes it, with xl's defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainConfig {
    /// `name`: required.
    pub name: String,
    /// `kernel`: the boot module to load as the kernel; required for PV.
    pub kernel: String,
    /// `ramdisk`: the boot module to load as the initrd.
    pub ramdisk: Option<String>,
    /// The kernel command line: `cmdline`, else `root=ROOT EXTRA` from
    /// `root` and `extra` (xl_parse.c `parse_cmdline`); empty when none.
    pub cmdline: String,
    /// `memory`, MiB: the initial allocation (libxl default: `maxmem`, else 32).
    pub memory: u64,
    /// `maxmem`, MiB (xl default: `memory`); never below `memory`.
    pub maxmem: u64,
    /// `vcpus`: vCPUs online at boot (libxl default 1).
    pub vcpus: u32,
    /// `maxvcpus` (xl default: `vcpus`); never below `vcpus`.
    pub maxvcpus: u32,
    /// `on_poweroff` (default destroy).
    pub on_poweroff: Action,
    /// `on_reboot` (default restart).
    pub on_reboot: Action,
    /// `on_crash` (default destroy).
    pub on_crash: Action,
    /// `tsc_mode` as Xen's `TSC_MODE_*` (libxl's names: `default` 0,
    /// `always_emulate` 1, `native` 2; default `default`).
    pub tsc_mode: u32,
    /// `disk = [...]`, in order.
    pub disks: Vec<DiskSpec>,
    /// `vif = [...]`, in order.
    pub vifs: Vec<VifSpec>,
}

/// Parses the xl.cfg `text` of the file `file_name`: the configuration with
/// xl's defaults and the warnings for what was ignored, or the first error.
pub fn parse(file_name: &str, text: &[u8]) -> Result<(DomainConfig, Vec<Warning>), Error> {
    parse_with_extra(file_name, text, &[])
}

/// `xl create FILE KEY=VALUE...`: parses `text` with the command line's
/// `extras` applied after it, as xl_vmcontrol.c `create_domain` does: each
/// extra becomes a line of its own, and the block is appended to the file
/// after a newline, so an extra overrides (or `+=` extends) the file's
/// setting and its errors carry line numbers past the file's last line. An
/// extra's value is xl.cfg syntax: `'name="web2"'`, `memory=256`.
pub fn parse_with_extra(file_name: &str, text: &[u8], extras: &[&str]) -> Result<(DomainConfig, Vec<Warning>), Error> {
    let file = bounded_file_name(file_name);
    let located = |e: Located| e.into_error(&file);
    if text.len() > MAX_CONFIG_BYTES {
        return Err(located(Located::new(0, None, format!("file is {} bytes, more than the limit of {MAX_CONFIG_BYTES}", text.len()))));
    }
    let total: usize = extras.iter().map(|e| e.len().saturating_add(1)).fold(0, usize::saturating_add);
    if total > MAX_EXTRA_BYTES {
        return Err(located(Located::new(0, None, format!("extra settings are {total} bytes, more than the limit of {MAX_EXTRA_BYTES}"))));
    }
    let mut data = Vec::with_capacity(text.len() + total + 2);
    data.extend_from_slice(text);
    if let Some(bad) = extras.iter().find(|e| !e.contains('=')) {
        return Err(located(Located::new(0, None, format!("extra setting `{}' is not KEY=VALUE", quote(bad.as_bytes())))));
    }
    if !extras.is_empty() {
        // xl_vmcontrol.c: config_data + "\n" + (each extra + "\n") + "\n".
        data.push(b'\n');
        for extra in extras {
            data.extend_from_slice(extra.as_bytes());
            data.push(b'\n');
        }
        data.push(b'\n');
    }
    let store = parse_settings(&data).map_err(located)?;
    domain_config(&store, &file).map_err(located)
}

fn bounded_file_name(name: &str) -> String {
    let mut end = name.len().min(MAX_FILE_NAME_BYTES);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_string()
}

// ---------------------------------------------------------------------------
// Errors inside the parser: located, not yet tied to a file name.
// ---------------------------------------------------------------------------

#[derive(Debug)]
struct Located {
    line: u32,
    key: Option<String>,
    message: String,
}

impl Located {
    fn new(line: u32, key: Option<&str>, message: String) -> Located {
        Located { line, key: key.map(ToString::to_string), message }
    }

    fn into_error(self, file: &str) -> Error {
        Error { file: file.to_string(), line: self.line, key: self.key, message: self.message }
    }
}

/// At most [`MAX_QUOTE_BYTES`] of `bytes`, printable: other bytes as `\xNN`.
fn quote(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes.iter().take(MAX_QUOTE_BYTES) {
        match b {
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    if bytes.len() > MAX_QUOTE_BYTES {
        out.push_str("...");
    }
    out
}

// ---------------------------------------------------------------------------
// Lexer: libxlu_cfg_l.l.
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    /// `[a-z][._0-9a-z]*`
    Ident(String),
    /// `[0-9][0-9a-fx]*`, kept as text: xl converts it with `strtol` only
    /// where a number is wanted, exactly as it converts a quoted string.
    Number(String),
    /// A quoted string, dequoted.
    Str(String),
    Comma,
    LBracket,
    RBracket,
    Assign,
    AddAssign,
    Semi,
    /// A newline, or a `#` comment with its newline.
    Newline,
    Eof,
}

/// A token with the 1-based line it is on and its bytes in the source.
struct Token {
    tok: Tok,
    line: u32,
    start: usize,
    end: usize,
}

struct Lexer<'a> {
    src: &'a [u8],
    pos: usize,
    line: u32,
}

impl<'a> Lexer<'a> {
    fn new(src: &'a [u8]) -> Lexer<'a> {
        Lexer { src, pos: 0, line: 1 }
    }

    fn peek_byte(&self, at: usize) -> Option<u8> {
        self.src.get(at).copied()
    }

    fn run(&self, from: usize, accept: impl Fn(u8) -> bool) -> usize {
        let mut end = from;
        while self.peek_byte(end).is_some_and(&accept) {
            end += 1;
        }
        end
    }

    fn next(&mut self) -> Result<Token, Located> {
        self.pos = self.run(self.pos, |b| b == b' ' || b == b'\t');
        let start = self.pos;
        let line = self.line;
        let Some(c) = self.peek_byte(start) else {
            return Ok(Token { tok: Tok::Eof, line, start, end: start });
        };
        let (tok, end) = match c {
            b'\n' => {
                self.line += 1;
                (Tok::Newline, start + 1)
            }
            // `\#.*\n` in xl; a comment ending the file without a newline
            // is a lexical error there, accepted here.
            b'#' => {
                let nl = self.run(start, |b| b != b'\n');
                if nl < self.src.len() {
                    self.line += 1;
                    (Tok::Newline, nl + 1)
                } else {
                    (Tok::Eof, nl)
                }
            }
            b'a'..=b'z' => {
                let end = self.run(start, |b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_'));
                if end - start > MAX_KEY_BYTES {
                    return Err(Located::new(line, None, format!("key `{}' is longer than {MAX_KEY_BYTES} bytes", quote(&self.src[start..end]))));
                }
                (Tok::Ident(ascii(&self.src[start..end])), end)
            }
            b'0'..=b'9' => {
                let end = self.run(start, |b| matches!(b, b'0'..=b'9' | b'a'..=b'f' | b'x'));
                (Tok::Number(ascii(&self.src[start..end])), end)
            }
            b',' => (Tok::Comma, start + 1),
            b'[' => (Tok::LBracket, start + 1),
            b']' => (Tok::RBracket, start + 1),
            b';' => (Tok::Semi, start + 1),
            b'=' => (Tok::Assign, start + 1),
            b'+' if self.peek_byte(start + 1) == Some(b'=') => (Tok::AddAssign, start + 2),
            b'\'' | b'"' => self.string(c, start, line)?,
            _ => return Err(self.lexical_error(start, line)),
        };
        self.pos = end;
        Ok(Token { tok, line, start, end })
    }

    /// `'([^'\\\n]|\\.)*'` and its `"` twin.
    fn string(&self, q: u8, start: usize, line: u32) -> Result<(Tok, usize), Located> {
        let mut at = start + 1;
        loop {
            match self.peek_byte(at) {
                Some(b) if b == q => break,
                Some(b'\\') if self.peek_byte(at + 1).is_some_and(|b| b != b'\n') => at += 2,
                Some(b'\n') | Some(b'\\') | None => {
                    let end = self.run(start, |b| b != b'\n');
                    return Err(Located::new(line, None, format!("unterminated string near `{}'", quote(&self.src[start..end]))));
                }
                Some(_) => at += 1,
            }
        }
        let s = dequote(&self.src[start + 1..at]).map_err(|m| Located::new(line, None, m))?;
        Ok((Tok::Str(s), at + 1))
    }

    /// xl's `lexerr` state: the offending character and the rest of its
    /// word. `+-.():` mean the file was likely written for xend's Python.
    fn lexical_error(&self, start: usize, line: u32) -> Located {
        let end = self.run(start, |b| !matches!(b, b' ' | b'\t' | b'\n')).max(start + 1);
        let near = quote(&self.src[start..end.min(self.src.len())]);
        let c = self.src[start];
        let hint = match c {
            b'+' | b'-' | b'.' | b'(' | b')' | b':' => " (this looks like Python, which xl.cfg no longer is)",
            b'\r' => " (carriage return: xl.cfg lines end with \\n alone)",
            b'A'..=b'Z' => " (keys are lower case)",
            _ => "",
        };
        Located::new(line, None, format!("lexical error near `{near}'{hint}"))
    }
}

/// Identifier and number bytes, already known to be ASCII.
fn ascii(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// libxlu_cfg.c `xlu__cfgl_dequote`: the escapes `\" \' \\ \a \b \f \n \r
/// \t \v`. xl 4.17 rejects every `\x` escape (its `NUMERIC_CHAR` check can
/// never pass for two hex digits) and drops or rejects octal ones without
/// emitting a byte; both are rejected here. The result must be UTF-8 without
/// NUL (xl's C strings stop at a NUL).
fn dequote(raw: &[u8]) -> Result<String, String> {
    if raw.len() > MAX_STRING_BYTES.saturating_mul(2) {
        return Err(format!("string is longer than {MAX_STRING_BYTES} bytes"));
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut it = raw.iter().copied();
    while let Some(c) = it.next() {
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let nc = it.next().unwrap_or(b'\\');
        let byte = match nc {
            b'"' | b'\'' | b'\\' => nc,
            b'a' => 0x07,
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'v' => 0x0b,
            b'x' => return Err("hex escape `\\x' in quoted string: xl 4.17 accepts none".to_string()),
            b'0'..=b'7' => return Err("octal escape in quoted string: xl 4.17 does not store its character".to_string()),
            _ => return Err(format!("invalid character `{}' after backslash in quoted string", quote(&[nc]))),
        };
        out.push(byte);
    }
    if out.len() > MAX_STRING_BYTES {
        return Err(format!("string is longer than {MAX_STRING_BYTES} bytes"));
    }
    if out.contains(&0) {
        return Err("NUL byte in quoted string".to_string());
    }
    String::from_utf8(out).map_err(|_| "quoted string is not valid UTF-8".to_string())
}

// ---------------------------------------------------------------------------
// Grammar: libxlu_cfg_y.y, and the store of libxlu_cfg.c.
// ---------------------------------------------------------------------------

/// A value: a string (or number: both are text) or a list of values, with
/// the line it starts on.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Value {
    Str(String, u32),
    List(Vec<Value>, u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Assign,
    Add,
}

/// The latest setting of a key: as xl's `find` returns the newest.
#[derive(Debug)]
struct Setting {
    key: String,
    op: Op,
    value: Value,
    line: u32,
}

/// Settings by key, in the order the keys first appeared.
#[derive(Debug, Default)]
struct Store {
    settings: Vec<Setting>,
}

impl Store {
    fn get(&self, key: &str) -> Option<&Setting> {
        self.settings.iter().find(|s| s.key == key)
    }

    /// libxlu_cfg.c `xlu__cfg_set_store`: `=` replaces; `+=` appends to the
    /// previous value (string to string, list to list) and keeps `+=` as the
    /// setting's operation, which no number accepts.
    fn set(&mut self, key: String, op: Op, value: Value, line: u32) -> Result<(), Located> {
        let slot = self.settings.iter().position(|s| s.key == key);
        let value = match (op, slot) {
            // Moved, not copied: a long run of `disk += []` costs no more
            // than the lines it takes.
            (Op::Add, Some(i)) => {
                let prev = core::mem::replace(&mut self.settings[i].value, Value::List(Vec::new(), line));
                concat(prev, value).map_err(|m| Located::new(line, Some(&key), m))?
            }
            _ => value,
        };
        let setting = Setting { key, op, value, line };
        match slot {
            Some(i) => self.settings[i] = setting,
            None if self.settings.len() >= MAX_KEYS => {
                return Err(Located::new(line, Some(&setting.key), format!("more than {MAX_KEYS} keys")));
            }
            None => self.settings.push(setting),
        }
        Ok(())
    }
}

fn concat(prev: Value, next: Value) -> Result<Value, String> {
    match (prev, next) {
        (Value::Str(mut a, _), Value::Str(b, line)) => {
            if a.len() + b.len() > MAX_STRING_BYTES {
                return Err(format!("+= makes a string longer than {MAX_STRING_BYTES} bytes"));
            }
            a.push_str(&b);
            Ok(Value::Str(a, line))
        }
        (Value::List(mut a, _), Value::List(b, line)) => {
            if a.len() + b.len() > MAX_LIST_ITEMS {
                return Err(format!("+= makes a list longer than {MAX_LIST_ITEMS} items"));
            }
            a.extend(b);
            Ok(Value::List(a, line))
        }
        _ => Err("can't add [list] to \"string\" or vice versa".to_string()),
    }
}

struct Parser<'a> {
    lx: Lexer<'a>,
    ahead: Option<Token>,
}

/// Parses the whole text into settings (the `file` rule), stopping at the
/// first error as xl's result does (xl reports more, then fails).
fn parse_settings(src: &[u8]) -> Result<Store, Located> {
    check_lines(src)?;
    let mut p = Parser { lx: Lexer::new(src), ahead: None };
    let mut store = Store::default();
    loop {
        let t = p.next()?;
        let key = match t.tok {
            Tok::Newline | Tok::Semi => continue,
            Tok::Eof => return Ok(store),
            Tok::Ident(key) => key,
            _ => return Err(p.syntax(&t, None, "expected a key")),
        };
        let op_tok = p.next()?;
        let op = match op_tok.tok {
            Tok::Assign => Op::Assign,
            Tok::AddAssign => Op::Add,
            _ => return Err(p.syntax(&op_tok, Some(&key), "expected `=' or `+=' after the key")),
        };
        let value = p.value(&key, 0)?;
        store.set(key.clone(), op, value, t.line)?;
        let end = p.next()?;
        match end.tok {
            Tok::Newline | Tok::Semi => {}
            Tok::Eof => return Ok(store),
            _ => return Err(p.syntax(&end, Some(&key), "expected a newline or `;' after the value")),
        }
    }
}

/// Bounds every line before any token is made.
fn check_lines(src: &[u8]) -> Result<(), Located> {
    for (i, line) in src.split(|&b| b == b'\n').enumerate() {
        if line.len() > MAX_LINE_BYTES {
            let n = u32::try_from(i + 1).unwrap_or(u32::MAX);
            return Err(Located::new(n, None, format!("line is {} bytes, more than the limit of {MAX_LINE_BYTES}", line.len())));
        }
    }
    Ok(())
}

impl Parser<'_> {
    fn next(&mut self) -> Result<Token, Located> {
        match self.ahead.take() {
            Some(t) => Ok(t),
            None => self.lx.next(),
        }
    }

    fn peek_is(&mut self, tok: &Tok) -> Result<bool, Located> {
        let t = self.next()?;
        let is = &t.tok == tok;
        self.ahead = Some(t);
        Ok(is)
    }

    /// `nlok`: any number of newlines (and comments).
    fn skip_newlines(&mut self) -> Result<(), Located> {
        while self.peek_is(&Tok::Newline)? {
            self.next()?;
        }
        Ok(())
    }

    fn syntax(&self, t: &Token, key: Option<&str>, expected: &str) -> Located {
        let near = match t.tok {
            Tok::Newline => "<newline>".to_string(),
            Tok::Eof => "<end of file>".to_string(),
            _ => format!("`{}'", quote(&self.lx.src[t.start..t.end])),
        };
        Located::new(t.line, key, format!("syntax error near {near}: {expected}"))
    }

    /// `value: atom | '[' nlok valuelist ']'`, nesting bounded.
    fn value(&mut self, key: &str, depth: usize) -> Result<Value, Located> {
        let t = self.next()?;
        match t.tok {
            Tok::Str(s) | Tok::Number(s) => Ok(Value::Str(s, t.line)),
            Tok::LBracket if depth + 1 > MAX_LIST_DEPTH => {
                Err(Located::new(t.line, Some(key), format!("lists nested more than {MAX_LIST_DEPTH} deep")))
            }
            Tok::LBracket => self.list(key, depth + 1, t.line),
            _ => Err(self.syntax(&t, Some(key), "expected a value: a quoted string, a number or a [list]")),
        }
    }

    /// `valuelist` after `[ nlok`: empty, or values with an optional
    /// trailing comma, newlines allowed around the items.
    fn list(&mut self, key: &str, depth: usize, line: u32) -> Result<Value, Located> {
        let mut items = Vec::new();
        self.skip_newlines()?;
        if self.peek_is(&Tok::RBracket)? {
            self.next()?;
            return Ok(Value::List(items, line));
        }
        loop {
            let item = self.value(key, depth)?;
            if items.len() >= MAX_LIST_ITEMS {
                return Err(Located::new(item_line(&item), Some(key), format!("list has more than {MAX_LIST_ITEMS} items")));
            }
            items.push(item);
            self.skip_newlines()?;
            let t = self.next()?;
            match t.tok {
                Tok::RBracket => return Ok(Value::List(items, line)),
                Tok::Comma => {
                    self.skip_newlines()?;
                    if self.peek_is(&Tok::RBracket)? {
                        self.next()?;
                        return Ok(Value::List(items, line));
                    }
                }
                _ => return Err(self.syntax(&t, Some(key), "expected `,' or `]' in the list")),
            }
        }
    }
}

fn item_line(v: &Value) -> u32 {
    match v {
        Value::Str(_, line) | Value::List(_, line) => *line,
    }
}

// ---------------------------------------------------------------------------
// Typed access: libxlu_cfg.c `xlu_cfg_get_*`.
// ---------------------------------------------------------------------------

impl Store {
    /// `xlu_cfg_get_string`. A list here is a warning in xl (and the key is
    /// then treated as absent); an error here.
    fn string(&self, key: &str) -> Result<Option<(&str, u32)>, Located> {
        match self.get(key) {
            None => Ok(None),
            Some(Setting { value: Value::Str(s, _), line, .. }) => Ok(Some((s, *line))),
            Some(s) => Err(Located::new(s.line, Some(key), "is a list but should be a single value".to_string())),
        }
    }

    /// `xlu_cfg_get_long` then the caller's bounds (xl has `strtol`'s
    /// syntax: base 0, so `0x20` is hex and `010` is octal).
    fn number(&self, key: &str, min: u64, max: u64) -> Result<Option<(u64, u32)>, Located> {
        let Some(setting) = self.get(key) else { return Ok(None) };
        let line = setting.line;
        let err = |m: String| Located::new(line, Some(key), m);
        let Value::Str(text, _) = &setting.value else {
            return Err(err("is a list but should be a single value".to_string()));
        };
        if setting.op == Op::Add {
            return Err(err("can't use += with numbers".to_string()));
        }
        let n = strtol(text).map_err(|m| err(format!("\"{}\" {m}", quote(text.as_bytes()))))?;
        match u64::try_from(n) {
            Ok(v) if (min..=max).contains(&v) => Ok(Some((v, line))),
            _ => Err(err(format!("{n} is out of range: it must be between {min} and {max}"))),
        }
    }

    /// `xlu_cfg_get_list`: the items, every one a string (xl stops at the
    /// first list item; an error here). A single value is a warning in xl
    /// (and the key is ignored); an error here.
    fn string_list(&self, key: &str) -> Result<Vec<(&str, u32)>, Located> {
        let Some(setting) = self.get(key) else { return Ok(Vec::new()) };
        let Value::List(items, _) = &setting.value else {
            return Err(Located::new(setting.line, Some(key), "is a single value but should be a list".to_string()));
        };
        items
            .iter()
            .map(|item| match item {
                Value::Str(s, line) => Ok((s.as_str(), *line)),
                Value::List(_, line) => Err(Located::new(*line, Some(key), "a list item is itself a list, not a string".to_string())),
            })
            .collect()
    }
}

/// C's `strtol(s, &end, 0)` accepting only when all of `s` is used, as
/// `xlu_cfg_get_bounded_long` does: leading white space, a sign, then `0x`
/// hex, `0` octal or decimal digits.
fn strtol(s: &str) -> Result<i64, &'static str> {
    let b = s.as_bytes();
    let mut i = 0;
    while b.get(i).is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')) {
        i += 1;
    }
    let negative = b.get(i) == Some(&b'-');
    if matches!(b.get(i), Some(b'-' | b'+')) {
        i += 1;
    }
    let hex_prefix = b.get(i) == Some(&b'0') && matches!(b.get(i + 1), Some(b'x' | b'X')) && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
    let radix = if hex_prefix {
        i += 2;
        16
    } else if b.get(i) == Some(&b'0') {
        8
    } else {
        10
    };
    let first = i;
    let mut magnitude: u64 = 0;
    let mut overflow = false;
    while let Some(d) = b.get(i).and_then(|&c| char::from(c).to_digit(radix)) {
        match magnitude.checked_mul(u64::from(radix)).and_then(|m| m.checked_add(u64::from(d))) {
            Some(m) => magnitude = m,
            None => overflow = true,
        }
        i += 1;
    }
    if i == first || i != b.len() {
        return Err("is not a valid number");
    }
    let limit = if negative { i64::MIN.unsigned_abs() } else { i64::MAX.unsigned_abs() };
    if overflow || magnitude > limit {
        return Err("could not be parsed as a number: out of range");
    }
    Ok(if negative { 0i64.wrapping_sub_unsigned(magnitude) } else { magnitude as i64 })
}

// ---------------------------------------------------------------------------
// The domain: xl_parse.c `parse_config_data`, for the keys a PV domain uses.
// ---------------------------------------------------------------------------

/// Every key [`domain_config`] reads; the rest are warnings.
const KNOWN_KEYS: [&str; 18] = [
    "name",
    "type",
    "builder",
    "kernel",
    "ramdisk",
    "cmdline",
    "root",
    "extra",
    "memory",
    "maxmem",
    "vcpus",
    "maxvcpus",
    "on_poweroff",
    "on_reboot",
    "on_crash",
    "tsc_mode",
    "disk",
    "vif",
];

/// libxl_create.c `libxl__domain_build_info_setdefault`: `max_memkb` 32 MiB.
const DEFAULT_MAXMEM_MIB: u64 = 32;

fn domain_config(store: &Store, file: &str) -> Result<(DomainConfig, Vec<Warning>), Located> {
    check_type(store)?;
    let mut warnings = Vec::new();
    let name = required_string(store, "name", "domain name must be specified")?;
    let kernel = required_string(store, "kernel", "must be specified for a PV domain: the name of its boot module")?;
    let ramdisk = store.string("ramdisk")?.map(|(s, _)| s.to_string());
    let cmdline = cmdline(store, file, &mut warnings)?;
    let (memory, maxmem) = memory(store)?;
    let (vcpus, maxvcpus) = vcpus(store)?;
    let config = DomainConfig {
        name,
        kernel,
        ramdisk,
        cmdline,
        memory,
        maxmem,
        vcpus,
        maxvcpus,
        // xl_parse.c: on_poweroff and on_crash default to destroy, on_reboot to restart.
        on_poweroff: action(store, "on_poweroff", Action::Destroy)?,
        on_reboot: action(store, "on_reboot", Action::Restart)?,
        on_crash: action(store, "on_crash", Action::Destroy)?,
        tsc_mode: tsc_mode(store)?,
        disks: disks(store)?,
        vifs: vifs(store)?,
    };
    for s in store.settings.iter().filter(|s| !KNOWN_KEYS.contains(&s.key.as_str())) {
        warnings.push(Warning {
            file: file.to_string(),
            line: s.line,
            key: s.key.clone(),
            message: "key not used by this dom0, ignored".to_string(),
        });
    }
    warnings.sort_by_key(|w| w.line);
    Ok((config, warnings))
}

/// The domain type xl's prefix match gives: `strncmp(buf, "hvm",
/// strlen(buf))` accepts any prefix of the name, the empty string included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DomainType {
    Pv,
    Pvh,
    Hvm,
}

fn prefix_of(buf: &str, name: &str) -> bool {
    name.starts_with(buf)
}

/// xl_parse.c: `type` ("hvm", "pv", "pvh" by prefix, in that order), then the
/// deprecated `builder` ("hvm", "generic" = pv) which must not contradict
/// it; absent, PV (x86). This dom0 builds PV domains only.
fn check_type(store: &Store) -> Result<(), Located> {
    let mut chosen = None;
    if let Some((buf, line)) = store.string("type")? {
        let t = if prefix_of(buf, "hvm") {
            DomainType::Hvm
        } else if prefix_of(buf, "pv") {
            DomainType::Pv
        } else if prefix_of(buf, "pvh") {
            DomainType::Pvh
        } else {
            return Err(Located::new(line, Some("type"), format!("invalid domain type \"{}\"", quote(buf.as_bytes()))));
        };
        chosen = Some((t, line, "type"));
    }
    if let Some((buf, line)) = store.string("builder")? {
        let t = if prefix_of(buf, "hvm") {
            DomainType::Hvm
        } else if prefix_of(buf, "generic") {
            DomainType::Pv
        } else {
            return Err(Located::new(line, Some("builder"), format!("invalid domain type \"{}\"", quote(buf.as_bytes()))));
        };
        if chosen.is_some_and(|(c, _, _)| c != t) {
            return Err(Located::new(line, Some("builder"), "contradicting \"builder\" and \"type\" options specified".to_string()));
        }
        chosen = Some((t, line, "builder"));
    }
    match chosen {
        Some((t @ (DomainType::Hvm | DomainType::Pvh), line, key)) => {
            let name = if t == DomainType::Hvm { "hvm" } else { "pvh" };
            Err(Located::new(line, Some(key), format!("{name} domains are not supported: this dom0 builds \"pv\" domains only")))
        }
        _ => Ok(()),
    }
}

/// `xlu_cfg_replace_string`, failing as xl does when the key is absent; an
/// empty value names no domain and no boot module, so it fails too.
fn required_string(store: &Store, key: &str, missing: &str) -> Result<String, Located> {
    match store.string(key)? {
        None => Err(Located::new(0, Some(key), missing.to_string())),
        Some(("", line)) => Err(Located::new(line, Some(key), "must not be empty".to_string())),
        Some((s, _)) => Ok(s.to_string()),
    }
}

/// xl_parse.c `parse_cmdline`: `cmdline` wins (with a warning when `root`
/// or `extra` is also set); else `root=ROOT EXTRA`, `root=ROOT` or `EXTRA`.
fn cmdline(store: &Store, file: &str, warnings: &mut Vec<Warning>) -> Result<String, Located> {
    let buf = store.string("cmdline")?;
    let root = store.string("root")?;
    let extra = store.string("extra")?;
    let (text, line) = match (buf, root, extra) {
        (Some((c, line)), r, e) => {
            if r.is_some() || e.is_some() {
                warnings.push(Warning {
                    file: file.to_string(),
                    line,
                    key: "cmdline".to_string(),
                    message: "ignoring root= and extra= in favour of cmdline=".to_string(),
                });
            }
            (c.to_string(), line)
        }
        (None, Some((r, line)), Some((e, _))) => (format!("root={r} {e}"), line),
        (None, Some((r, line)), None) => (format!("root={r}"), line),
        (None, None, Some((e, line))) => (e.to_string(), line),
        (None, None, None) => (String::new(), 0),
    };
    if text.len() >= MAX_GUEST_CMDLINE {
        let key = match (buf, extra) {
            (Some(_), _) => "cmdline",
            (None, Some(_)) => "extra",
            (None, None) => "root",
        };
        return Err(Located::new(line, Some(key), format!("command line is {} bytes; start_info holds {}", text.len(), MAX_GUEST_CMDLINE - 1)));
    }
    Ok(text)
}

/// xl_parse.c: `memory` sets the target, `maxmem` the maximum, and an absent
/// `maxmem` is `memory`; then libxl: an absent maximum is 32 MiB and an
/// absent target is the maximum. xl.cfg(5): "The value of maxmem= must be
/// equal to or greater than that of memory=" (libxl 4.17 does not check it
/// at create; `libxl_domain_setmaxmem` refuses it later): an error here.
fn memory(store: &Store) -> Result<(u64, u64), Located> {
    let memory = store.number("memory", 1, MAX_MEMORY_MIB)?;
    let maxmem = store.number("maxmem", 1, MAX_MEMORY_MIB)?;
    let max = maxmem.or(memory).map_or(DEFAULT_MAXMEM_MIB, |(v, _)| v);
    let target = memory.map_or(max, |(v, _)| v);
    if let Some((m, line)) = maxmem
        && m < target
    {
        return Err(Located::new(
            line,
            Some("maxmem"),
            format!("{m} is less than memory ({target}): maxmem must be equal to or greater than memory"),
        ));
    }
    Ok((target, max))
}

/// xl_parse.c: `vcpus` online at boot, `maxvcpus` defaulting to `vcpus`,
/// "maxvcpus < vcpus" an error; libxl: no `vcpus` means vCPU 0 only.
/// xl passes 0 on to libxl's odd defaults; here both must be at least 1.
fn vcpus(store: &Store) -> Result<(u32, u32), Located> {
    let max = u64::from(MAX_VCPUS);
    let vcpus = store.number("vcpus", 1, max)?.map_or(1, |(v, _)| v);
    let maxvcpus = store.number("maxvcpus", 1, max)?;
    if let Some((m, line)) = maxvcpus
        && m < vcpus
    {
        return Err(Located::new(line, Some("maxvcpus"), format!("maxvcpus ({m}) < vcpus ({vcpus})")));
    }
    let maxvcpus = maxvcpus.map_or(vcpus, |(m, _)| m);
    // Both are at most MAX_VCPUS, so they fit.
    Ok((u32::try_from(vcpus).unwrap_or(MAX_VCPUS), u32::try_from(maxvcpus).unwrap_or(MAX_VCPUS)))
}

fn action(store: &Store, key: &str, default: Action) -> Result<Action, Located> {
    match store.string(key)? {
        None => Ok(default),
        Some((buf, line)) => Action::from_name(buf).ok_or_else(|| {
            let known: Vec<&str> = Action::ALL.iter().map(|a| a.name()).collect();
            Located::new(line, Some(key), format!("unknown action \"{}\" (one of: {})", quote(buf.as_bytes()), known.join(", ")))
        }),
    }
}

/// `tsc_mode`: libxl's `libxl_tsc_mode` names (or, deprecated, their
/// numbers), as Xen's `TSC_MODE_*`; `native_paravirt` (3) is refused as
/// libxl 4.17 refuses it (PVRDTSCP was removed).
fn tsc_mode(store: &Store) -> Result<u32, Located> {
    let Some((buf, line)) = store.string("tsc_mode")? else { return Ok(xen_public::domctl::TSC_MODE_DEFAULT) };
    match buf {
        "default" | "0" => Ok(xen_public::domctl::TSC_MODE_DEFAULT),
        "always_emulate" | "1" => Ok(xen_public::domctl::TSC_MODE_ALWAYS_EMULATE),
        "native" | "2" => Ok(xen_public::domctl::TSC_MODE_NEVER_EMULATE),
        "native_paravirt" | "3" => {
            Err(Located::new(line, Some("tsc_mode"), "TSC Mode native_paravirt (a.k.a PVRDTSCP) has been removed".to_string()))
        }
        _ => Err(Located::new(line, Some("tsc_mode"), format!("invalid value \"{}\" for \"tsc_mode\"", quote(buf.as_bytes())))),
    }
}

fn disks(store: &Store) -> Result<Vec<DiskSpec>, Located> {
    store
        .string_list("disk")?
        .into_iter()
        .map(|(spec, line)| parse_disk(spec).map_err(|m| Located::new(line, Some("disk"), format!("{m} in `{}'", quote(spec.as_bytes())))))
        .collect()
}

fn vifs(store: &Store) -> Result<Vec<VifSpec>, Located> {
    let mut vifs: Vec<VifSpec> = Vec::new();
    for (index, (spec, line)) in store.string_list("vif")?.into_iter().enumerate() {
        let err = |m: String| Located::new(line, Some("vif"), format!("{m} in `{}'", quote(spec.as_bytes())));
        let devid = u32::try_from(index).unwrap_or(u32::MAX);
        let vif = parse_vif(spec, devid).map_err(err)?;
        if vifs.iter().any(|v| v.devid == vif.devid) {
            return Err(err(format!("devid {} is used twice", vif.devid)));
        }
        vifs.push(vif);
    }
    Ok(vifs)
}

// ---------------------------------------------------------------------------
// Disk specifications: libxlu_disk_l.l (a flex scanner, longest match
// first, earliest rule on a tie) and libxlu_disk.c.
// ---------------------------------------------------------------------------

/// A disk being parsed: libxl_device_disk's fields as the scanner sets them.
#[derive(Default)]
struct DiskState {
    target: Option<String>,
    format: Option<DiskFormat>,
    vdev: Option<String>,
    readonly: bool,
    access_set: bool,
    cdrom: bool,
    had_depr_prefix: bool,
    backend: Option<String>,
    backendtype: Option<DiskBackendType>,
    specification: Option<DiskSpecification>,
    script: Option<String>,
    direct_io_safe: bool,
    discard: Option<bool>,
    trusted: Option<bool>,
}

/// Keys of `KEY=VALUE` parameters whose value runs to the next comma.
const DISK_KEYS: [&str; 13] = [
    "format",
    "devtype",
    "access",
    "backendtype",
    "backend",
    "specification",
    "vdev",
    "script",
    "colo-host",
    "colo-port",
    "colo-export",
    "active-disk",
    "hidden-disk",
];

const DISK_FLAGS: [&str; 8] = ["cdrom", "direct-io-safe", "discard", "no-discard", "colo", "no-colo", "trusted", "untrusted"];

/// Deprecated `PREFIX:`es, each with the format or script it stands for.
const DISK_PREFIXES: [(&str, Option<DiskFormat>, Option<&str>); 15] = [
    ("raw", Some(DiskFormat::Raw), None),
    ("qcow", Some(DiskFormat::Qcow), None),
    ("qcow2", Some(DiskFormat::Qcow2), None),
    ("vhd", Some(DiskFormat::Vhd), None),
    ("iscsi", None, Some("block-iscsi")),
    ("nbd", None, Some("block-nbd")),
    ("enbd", None, Some("block-enbd")),
    ("drbd", None, Some("block-drbd")),
    ("tapdisk", None, None),
    ("tap", None, None),
    ("tap2", None, None),
    ("aio", None, None),
    ("ioemu", None, None),
    ("file", None, None),
    ("phy", None, None),
];

/// Parses one DISKSPEC. Since a known rule's match always contains the
/// positional rule's match at the same place, the flex rules reduce to: skip
/// white space; `target=` eats the rest; a known `KEY=` takes the value to
/// the next comma; a whole-word flag; a deprecated prefix; an unknown
/// `word:` prefix or `word=` key is an error; else a positional parameter
/// up to the next `,` or `=`.
pub fn parse_disk(spec: &str) -> Result<DiskSpec, String> {
    if spec.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err("control character in disk specification".to_string());
    }
    let mut d = DiskState::default();
    let mut i = 0;
    while i < spec.len() {
        let rest = &spec[i..];
        let near = || format!(": near `{}'", quote(rest.as_bytes()));
        if rest.starts_with([' ', '\t']) {
            i += 1;
            continue;
        }
        if let Some(value) = rest.strip_prefix("target=") {
            // `target=.*` then STRIP(','): one trailing comma goes.
            let value = value.strip_suffix(',').unwrap_or(value);
            save(&mut d.target, "target", value)?;
            break;
        }
        if let Some(key) = DISK_KEYS.iter().find(|k| rest.strip_prefix(**k).is_some_and(|r| r.starts_with('='))) {
            let after = &rest[key.len() + 1..];
            let end = after.find(',').unwrap_or(after.len());
            d.keyword(key, &after[..end])?;
            i += key.len() + 1 + end + usize::from(end < after.len());
            continue;
        }
        if let Some(flag) = DISK_FLAGS.iter().find(|f| rest.strip_prefix(**f).is_some_and(|r| r.is_empty() || r.starts_with(','))) {
            d.flag(flag)?;
            i += flag.len() + usize::from(rest.len() > flag.len());
            continue;
        }
        if let Some(word) = word_then(rest, b':', false) {
            if let Some((_, format, script)) = DISK_PREFIXES.iter().find(|(p, _, _)| *p == word) {
                d.had_depr_prefix = true;
                if let Some(f) = format {
                    d.set_format(*f)?;
                }
                if let Some(s) = script {
                    save(&mut d.script, "script", s)?;
                }
                i += word.len() + 1;
                continue;
            }
            // `[a-z][a-z0-9]*:/([^a-z0-9].*)?`: an unknown prefix, unless
            // the next character continues a positional `vdev:devtype`.
            let next = rest.as_bytes().get(word.len() + 1);
            if !next.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
                return Err(format!("unknown deprecated disk prefix{}", near()));
            }
        }
        if word_then(rest, b'=', true).is_some() {
            return Err(format!("unknown parameter{}", near()));
        }
        if rest.starts_with('=') {
            return Err(format!("bad disk syntax{}", near()));
        }
        // `[^=,]*,|[^=,]+,?`
        let end = rest.find([',', '=']).unwrap_or(rest.len());
        d.positional(&rest[..end])?;
        i += end + usize::from(rest[end..].starts_with(','));
    }
    d.finish()
}

/// `[a-z][a-z0-9]*` (with `-` when `hyphen`) followed by `sep`: the word.
fn word_then(s: &str, sep: u8, hyphen: bool) -> Option<&str> {
    let b = s.as_bytes();
    if !b.first().is_some_and(u8::is_ascii_lowercase) {
        return None;
    }
    let len = b.iter().position(|&c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || (hyphen && c == b'-')))?;
    (b[len] == sep).then(|| &s[..len])
}

/// libxlu_disk_l.l `savestring`: a string parameter may be given once; an
/// empty earlier value may be overwritten.
fn save(slot: &mut Option<String>, what: &str, value: &str) -> Result<(), String> {
    if slot.as_deref().is_some_and(|s| !s.is_empty()) {
        return Err(format!("{what} respecified: near `{}'", quote(value.as_bytes())));
    }
    *slot = Some(value.to_string());
    Ok(())
}

fn disk_format(s: &str) -> Result<DiskFormat, String> {
    Ok(match s {
        "" | "raw" => DiskFormat::Raw,
        "qcow" => DiskFormat::Qcow,
        "qcow2" => DiskFormat::Qcow2,
        "vhd" => DiskFormat::Vhd,
        "empty" => DiskFormat::Empty,
        "qed" => DiskFormat::Qed,
        _ => return Err(format!("unknown value for format: near `{}'", quote(s.as_bytes()))),
    })
}

impl DiskState {
    /// `DSET`: an enum may be set again only to the same value.
    fn set_format(&mut self, f: DiskFormat) -> Result<(), String> {
        match self.format {
            Some(old) if old != f => Err("format respecified".to_string()),
            _ => {
                self.format = Some(f);
                Ok(())
            }
        }
    }

    /// `setaccess`: r/ro read-only; rw/w/empty read-write.
    fn set_access(&mut self, s: &str) -> Result<(), String> {
        self.readonly = match s {
            "r" | "ro" => true,
            "rw" | "w" | "" => false,
            _ => return Err(format!("unknown value for access: near `{}'", quote(s.as_bytes()))),
        };
        Ok(())
    }

    fn keyword(&mut self, key: &str, value: &str) -> Result<(), String> {
        let bad = |what: &str| Err(format!("unknown value for {what}: near `{}'", quote(value.as_bytes())));
        match key {
            "format" => self.set_format(disk_format(value)?),
            "devtype" => {
                self.cdrom = match value {
                    "cdrom" => true,
                    "disk" => false,
                    _ => return bad("type"),
                };
                Ok(())
            }
            "access" => self.set_access(value),
            "backend" => save(&mut self.backend, "backend", value),
            "backendtype" => {
                let t = match value {
                    "phy" => DiskBackendType::Phy,
                    "tap" => DiskBackendType::Tap,
                    "qdisk" => DiskBackendType::Qdisk,
                    "standalone" => DiskBackendType::Standalone,
                    _ => return bad("backendtype"),
                };
                set_once(&mut self.backendtype, t, "backend")
            }
            "specification" => {
                let s = match value {
                    "xen" => DiskSpecification::Xen,
                    "virtio" => DiskSpecification::Virtio,
                    _ => return bad("specification"),
                };
                set_once(&mut self.specification, s, "specification")
            }
            "vdev" => save(&mut self.vdev, "vdev", value),
            "script" => save(&mut self.script, "script", value),
            // colo-host, colo-port, colo-export, active-disk, hidden-disk.
            _ => Err(format!("{key}: COLO is not supported by this dom0")),
        }
    }

    fn flag(&mut self, flag: &str) -> Result<(), String> {
        match flag {
            "cdrom" => self.cdrom = true,
            "direct-io-safe" => self.direct_io_safe = true,
            "discard" => self.discard = Some(true),
            "no-discard" => self.discard = Some(false),
            "no-colo" => {}
            "trusted" => self.trusted = Some(true),
            "untrusted" => self.trusted = Some(false),
            _ => return Err("colo: COLO is not supported by this dom0".to_string()),
        }
        Ok(())
    }

    /// The positional rule: target, format, vdev, access in turn; a
    /// deprecated prefix takes the format's place; after an empty target,
    /// `vdev:devtype` there stands for an empty drive.
    fn positional(&mut self, tok: &str) -> Result<(), String> {
        if self.target.is_none() {
            save(&mut self.target, "target", tok)
        } else if !self.had_depr_prefix && self.format.is_none() {
            if self.target.as_deref() == Some("") && self.vdev_and_devtype(tok)? {
                self.format = Some(DiskFormat::Empty);
                Ok(())
            } else {
                self.set_format(disk_format(tok)?)
            }
        } else if self.vdev.is_none() {
            if !self.vdev_and_devtype(tok)? {
                save(&mut self.vdev, "vdev", tok)?;
            }
            Ok(())
        } else if !self.access_set {
            self.access_set = true;
            self.set_access(tok)
        } else {
            Err(format!("too many positional parameters: near `{}'", quote(tok.as_bytes())))
        }
    }

    /// `vdev_and_devtype`: `VDEV:cdrom` or `VDEV:disk` (last colon).
    fn vdev_and_devtype(&mut self, tok: &str) -> Result<bool, String> {
        let Some((vdev, devtype)) = tok.rsplit_once(':') else { return Ok(false) };
        save(&mut self.vdev, "vdev", vdev)?;
        match devtype {
            "cdrom" => self.cdrom = true,
            "disk" => self.cdrom = false,
            _ => return Err(format!("unknown deprecated type: near `{}'", quote(devtype.as_bytes()))),
        }
        Ok(true)
    }

    /// libxlu_disk.c `xlu_disk_parse` after the scanner: format defaults to
    /// raw; a cdrom is read-only, and empty without a target; a vdev is
    /// required, and a target unless removable. xl lets an empty target or
    /// vdev through to libxl, which cannot use them: errors here.
    fn finish(self) -> Result<DiskSpec, String> {
        let mut format = self.format.unwrap_or(DiskFormat::Raw);
        let target = self.target.filter(|t| !t.is_empty());
        if self.cdrom && target.is_none() {
            format = DiskFormat::Empty;
        }
        let vdev = self.vdev.filter(|v| !v.is_empty()).ok_or_else(|| "no vdev specified".to_string())?;
        if target.is_none() && !self.cdrom {
            return Err("no target specified (and device not removable)".to_string());
        }
        Ok(DiskSpec {
            target,
            format,
            vdev,
            access: if self.readonly || self.cdrom { DiskAccess::ReadOnly } else { DiskAccess::ReadWrite },
            devtype: if self.cdrom { DiskDevtype::Cdrom } else { DiskDevtype::Disk },
            backend: self.backend,
            backendtype: self.backendtype,
            specification: self.specification.unwrap_or(DiskSpecification::Xen),
            script: self.script,
            direct_io_safe: self.direct_io_safe,
            discard: self.discard.unwrap_or(true),
            trusted: self.trusted.unwrap_or(true),
        })
    }
}

fn set_once<T: PartialEq + Copy>(slot: &mut Option<T>, value: T, what: &str) -> Result<(), String> {
    match slot {
        Some(old) if *old != value => Err(format!("{what} respecified")),
        _ => {
            *slot = Some(value);
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------
// Vif specifications: xl_parse.c `parse_nic_config`, libxlu_vif.c.
// ---------------------------------------------------------------------------

/// One VIFSPEC: `strtok(",")` (empty pieces skipped), leading spaces
/// stripped, then `KEY=VALUE` options and the `trusted`/`untrusted` flags.
/// xl prints an error for a bad option and carries on with the rest; here it
/// is an error.
pub fn parse_vif(spec: &str, devid: u32) -> Result<VifSpec, String> {
    let mut vif = VifSpec {
        devid,
        mac: None,
        bridge: "xenbr0".to_string(),
        ip: None,
        rate: None,
        model: "rtl8139".to_string(),
        script: "vif-bridge".to_string(),
        backend: None,
        vifname: None,
        gatewaydev: None,
        mtu: 1500,
        trusted: true,
    };
    // A piece of spaces only is an "unrecognized argument" xl prints and
    // skips; skipped here too.
    for token in spec.split(',').map(|t| t.trim_start_matches(' ')).filter(|t| !t.is_empty()) {
        match token.split_once('=') {
            _ if token == "trusted" => vif.trusted = true,
            _ if token == "untrusted" => vif.trusted = false,
            Some((key, value)) => vif_option(&mut vif, key, value)?,
            None => return Err(format!("unrecognized argument `{}'", quote(token.as_bytes()))),
        }
    }
    Ok(vif)
}

fn vif_option(vif: &mut VifSpec, key: &str, value: &str) -> Result<(), String> {
    let some = || Some(value.to_string());
    match key {
        // libxl_nic.c: an emulated (ioemu) NIC on a PV guest is an error.
        "type" => match value {
            "vif" => {}
            "ioemu" => return Err("type=ioemu: a PV domain has no emulated NICs".to_string()),
            _ => return Err(format!("invalid parameter `type': `{}'", quote(value.as_bytes()))),
        },
        "mac" => vif.mac = Some(parse_mac(value).ok_or_else(|| format!("invalid mac `{}'", quote(value.as_bytes())))?),
        "bridge" => vif.bridge = value.to_string(),
        "netdev" | "gatewaydev" => vif.gatewaydev = some(),
        "ip" => vif.ip = some(),
        "script" => vif.script = value.to_string(),
        "backend" => vif.backend = some(),
        "vifname" => vif.vifname = some(),
        "model" => vif.model = value.to_string(),
        "rate" => vif.rate = Some(parse_rate(value)?),
        // xl: "the accel parameter for vifs is currently not supported", ignored.
        "accel" => {}
        "devid" => vif.devid = parse_ulong(key, value)?,
        "mtu" => vif.mtu = parse_ulong(key, value)?,
        _ if key.starts_with("colo_") || key == "forwarddev" => return Err(format!("{key}: COLO is not supported by this dom0")),
        _ => return Err(format!("unrecognized argument `{}'", quote(key.as_bytes()))),
    }
    Ok(())
}

/// Six hex octets of one or two digits separated by `:`, as
/// xl-network-configuration(5) specifies (xl's `strtoul` loop also takes
/// other separators and ignores what follows the sixth octet).
fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for byte in &mut mac {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// xl_utils.c `parse_ulong` (decimal), bounded to 32 bits.
fn parse_ulong(key: &str, value: &str) -> Result<u32, String> {
    if value.is_empty() || value.len() > 10 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{key}: failed to convert \"{}\" to number", quote(value.as_bytes())));
    }
    value.parse().map_err(|_| format!("{key}: \"{}\" is out of range", quote(value.as_bytes())))
}

/// libxlu_vif.c `xlu_vif_parse_rate`: `RATE[@INTERVAL]`, RATE matching
/// `^[0-9]+[GMK]?[Bb]/s$` (B bytes, b bits; G/M/K decimal), INTERVAL
/// `^[0-9]+[mu]?s?$` (default 50 ms); both converted with `strtoull` base 0
/// (so a leading 0 is octal), zero or above 2^32-1 refused.
fn parse_rate(rate: &str) -> Result<VifRate, String> {
    let bad = |what: &str| Err(format!("{what} in `{}'", quote(rate.as_bytes())));
    let (bytes, interval) = match rate.split_once('@') {
        Some((b, i)) => (b, Some(i)),
        None => (rate, None),
    };
    if bytes.is_empty() {
        return bad("no rate specified");
    }
    let digits = bytes.bytes().take_while(u8::is_ascii_digit).count();
    let suffix = &bytes.as_bytes()[digits..];
    let unit_ok = match suffix {
        [m, b, b'/', b's'] => matches!(m, b'G' | b'M' | b'K') && matches!(b, b'B' | b'b'),
        [b, b'/', b's'] => matches!(b, b'B' | b'b'),
        _ => false,
    };
    if digits == 0 || !unit_ok {
        return bad("invalid rate");
    }
    let (mut per_sec, rest) = strtoull_prefix(bytes);
    if per_sec == 0 || per_sec > u64::from(u32::MAX) {
        return bad("rate overflow");
    }
    // As libxlu_vif.c: the unit letters are looked for where strtoull stopped.
    let at = |n: usize| rest.get(n).copied().unwrap_or(0);
    per_sec *= match at(0) {
        b'G' => 1_000_000_000,
        b'M' => 1_000_000,
        b'K' => 1_000,
        _ => 1,
    };
    if at(0) == b'b' || at(1) == b'b' {
        per_sec /= 8;
    }
    let interval_usecs = match interval {
        None => 50_000,
        Some(i) => parse_interval(i).ok_or_else(|| format!("invalid replenishment interval in `{}'", quote(rate.as_bytes())))?,
    };
    let Some(product) = per_sec.checked_mul(u64::from(interval_usecs)) else {
        return bad("rate overflow");
    };
    Ok(VifRate { bytes_per_interval: product / 1_000_000, interval_usecs })
}

fn parse_interval(i: &str) -> Option<u32> {
    let digits = i.bytes().take_while(u8::is_ascii_digit).count();
    let suffix = &i.as_bytes()[digits..];
    if digits == 0 || !matches!(suffix, [] | [b's'] | [b'm' | b'u'] | [b'm' | b'u', b's']) {
        return None;
    }
    let (n, rest) = strtoull_prefix(i);
    if n == 0 || n > u64::from(u32::MAX) {
        return None;
    }
    let usecs = match rest.first() {
        None | Some(b's') => n * 1_000_000,
        Some(b'm') => n * 1_000,
        _ => n,
    };
    u32::try_from(usecs).ok()
}

/// `strtoull(s, &end, 0)` on a string starting with decimal digits: the
/// value of the leading digits (octal after a leading 0) and what follows
/// them. The caller bounds the digits to a regex first; an overflow
/// saturates (and is then refused by the caller's bound).
fn strtoull_prefix(s: &str) -> (u64, &[u8]) {
    let b = s.as_bytes();
    let radix = if b.first() == Some(&b'0') { 8 } else { 10 };
    let mut n: u64 = 0;
    let mut i = 0;
    while let Some(d) = b.get(i).and_then(|&c| char::from(c).to_digit(radix)) {
        n = n.saturating_mul(u64::from(radix)).saturating_add(u64::from(d));
        i += 1;
    }
    (n, &b[i..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    const SAMPLE: &str = r#"# demo domain
name = "demo"
type = "pv"
kernel = "pv-guest-kernel"
ramdisk = 'initrd'
memory = 64
maxmem = 128
vcpus = 2
maxvcpus = 4
on_poweroff = "destroy"
on_reboot = "restart"
on_crash = "preserve"
extra = "console=hvc0"
root = "/dev/xvda1 ro"
disk = [ 'phy:/dev/vg/guest,xvda,w',
         'format=qcow2, vdev=xvdb, access=ro, target=/images/b.qcow2',   # second disk
       ]
vif = [ 'mac=00:16:3e:01:02:03,bridge=xenbr1,rate=10Mb/s', '' ]
"#;

    fn ok(text: &str) -> (DomainConfig, Vec<Warning>) {
        match parse("demo.cfg", text.as_bytes()) {
            Ok(r) => r,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }

    fn err(text: &str) -> Error {
        match parse("demo.cfg", text.as_bytes()) {
            Ok((c, _)) => panic!("expected an error, got {c:?}"),
            Err(e) => e,
        }
    }

    /// A minimal valid PV config followed by `rest`.
    fn with(rest: &str) -> String {
        format!("name = \"d\"\nkernel = \"k\"\n{rest}")
    }

    fn disk(spec: &str) -> DiskSpec {
        match parse_disk(spec) {
            Ok(d) => d,
            Err(e) => panic!("disk `{spec}': {e}"),
        }
    }

    fn vif(spec: &str) -> VifSpec {
        match parse_vif(spec, 0) {
            Ok(v) => v,
            Err(e) => panic!("vif `{spec}': {e}"),
        }
    }

    // --- The typed layer: parse_config_data and libxl's defaults. ---

    #[test]
    fn the_sample_config_parses_into_every_field() {
        let (c, w) = ok(SAMPLE);
        assert_eq!(c.name, "demo");
        assert_eq!(c.kernel, "pv-guest-kernel");
        assert_eq!(c.ramdisk.as_deref(), Some("initrd"));
        assert_eq!(c.cmdline, "root=/dev/xvda1 ro console=hvc0");
        assert_eq!((c.memory, c.maxmem, c.vcpus, c.maxvcpus), (64, 128, 2, 4));
        assert_eq!((c.on_poweroff, c.on_reboot, c.on_crash), (Action::Destroy, Action::Restart, Action::Preserve));
        assert_eq!(c.disks.len(), 2);
        assert_eq!(c.disks[0].target.as_deref(), Some("/dev/vg/guest"));
        assert_eq!(c.disks[1].format, DiskFormat::Qcow2);
        assert_eq!(c.disks[1].access, DiskAccess::ReadOnly);
        assert_eq!(c.vifs.len(), 2);
        assert_eq!(c.vifs[0].mac, Some([0x00, 0x16, 0x3e, 0x01, 0x02, 0x03]));
        assert_eq!(c.vifs[1].devid, 1);
        assert!(w.is_empty(), "{w:?}");
    }

    #[test]
    fn absent_keys_take_xl_and_libxl_defaults() {
        let (c, w) = ok(&with(""));
        assert_eq!(c.ramdisk, None);
        assert_eq!(c.cmdline, "");
        // libxl__domain_build_info_setdefault: max_memkb 32 MiB, target = max.
        assert_eq!((c.memory, c.maxmem), (32, 32));
        // libxl: max_vcpus 1 and vCPU 0 online.
        assert_eq!((c.vcpus, c.maxvcpus), (1, 1));
        // parse_config_data: destroy, restart, destroy.
        assert_eq!((c.on_poweroff, c.on_reboot, c.on_crash), (Action::Destroy, Action::Restart, Action::Destroy));
        assert!(c.disks.is_empty() && c.vifs.is_empty());
        assert!(w.is_empty());
    }

    #[test]
    fn a_missing_name_is_an_error_as_parse_config_data_exits() {
        let e = err("kernel = 'k'\n");
        assert_eq!((e.line, e.key.as_deref()), (0, Some("name")));
        assert_eq!(e.to_string(), "demo.cfg: name: domain name must be specified");
        let e = err("name = ''\nkernel = 'k'\n");
        assert_eq!((e.line, e.key.as_deref()), (1, Some("name")));
    }

    #[test]
    fn a_pv_domain_without_a_kernel_is_an_error() {
        let e = err("name = 'd'\n");
        assert_eq!(e.key.as_deref(), Some("kernel"));
    }

    #[test]
    fn maxmem_defaults_to_memory_when_absent() {
        let (c, _) = ok(&with("memory = 256\n"));
        assert_eq!((c.memory, c.maxmem), (256, 256));
    }

    #[test]
    fn memory_defaults_to_maxmem_when_only_maxmem_is_set() {
        let (c, _) = ok(&with("maxmem = 96\n"));
        assert_eq!((c.memory, c.maxmem), (96, 96));
    }

    #[test]
    fn maxmem_below_memory_is_an_error_on_the_maxmem_line() {
        let e = err(&with("memory = 128\nmaxmem = 64\n"));
        assert_eq!((e.line, e.key.as_deref()), (4, Some("maxmem")));
        assert!(e.message.contains("equal to or greater than memory"), "{e}");
    }

    #[test]
    fn memory_and_vcpus_must_be_in_range() {
        assert_eq!(err(&with("memory = 0\n")).key.as_deref(), Some("memory"));
        assert_eq!(err(&with("memory = '-5'\n")).key.as_deref(), Some("memory"));
        assert_eq!(err(&with("memory = 9999999999\n")).key.as_deref(), Some("memory"));
        assert_eq!(err(&with("vcpus = 0\n")).key.as_deref(), Some("vcpus"));
        assert_eq!(err(&with("vcpus = 129\n")).key.as_deref(), Some("vcpus"));
        assert_eq!(err(&with("maxvcpus = 0\n")).key.as_deref(), Some("maxvcpus"));
    }

    #[test]
    fn maxvcpus_defaults_to_vcpus() {
        let (c, _) = ok(&with("vcpus = 3\n"));
        assert_eq!((c.vcpus, c.maxvcpus), (3, 3));
    }

    #[test]
    fn maxvcpus_without_vcpus_brings_up_one_vcpu() {
        let (c, _) = ok(&with("maxvcpus = 4\n"));
        assert_eq!((c.vcpus, c.maxvcpus), (1, 4));
    }

    #[test]
    fn maxvcpus_below_vcpus_is_an_error() {
        let e = err(&with("vcpus = 4\nmaxvcpus = 2\n"));
        assert_eq!((e.line, e.key.as_deref()), (4, Some("maxvcpus")));
        assert!(e.message.contains("maxvcpus (2) < vcpus (4)"), "{e}");
    }

    #[test]
    fn every_action_spelling_parses_for_each_on_key() {
        let spellings = ["destroy", "restart", "rename-restart", "preserve", "coredump-destroy", "coredump-restart", "soft-reset"];
        for (name, action) in spellings.iter().zip(Action::ALL) {
            let (c, _) = ok(&with(&format!("on_poweroff = '{name}'\non_reboot = \"{name}\"\non_crash = '{name}'\n")));
            assert_eq!((c.on_poweroff, c.on_reboot, c.on_crash), (action, action, action));
            assert_eq!(action.to_string(), *name);
        }
    }

    #[test]
    fn an_unknown_action_is_an_error_naming_line_and_key() {
        let e = err("name = 'd'\nkernel = 'k'\n\non_crash = \"explode\"\n");
        assert!(e.to_string().starts_with("demo.cfg:4: on_crash: unknown action \"explode\""), "{e}");
        // strcmp: case matters, and no prefix is accepted.
        assert_eq!(err(&with("on_reboot = 'Restart'\n")).key.as_deref(), Some("on_reboot"));
        assert_eq!(err(&with("on_poweroff = 'dest'\n")).key.as_deref(), Some("on_poweroff"));
    }

    #[test]
    fn tsc_mode_takes_libxls_names_and_numbers_and_refuses_pvrdtscp() {
        use xen_public::domctl::{TSC_MODE_ALWAYS_EMULATE, TSC_MODE_DEFAULT, TSC_MODE_NEVER_EMULATE};
        let base = "name='a'\nkernel='k'\n";
        let with = |extra: &str| format!("{base}{extra}");
        assert_eq!(ok(&with("")).0.tsc_mode, TSC_MODE_DEFAULT);
        for (v, mode) in [
            ("'native'", TSC_MODE_NEVER_EMULATE),
            ("\"always_emulate\"", TSC_MODE_ALWAYS_EMULATE),
            ("2", TSC_MODE_NEVER_EMULATE),
            ("'default'", TSC_MODE_DEFAULT),
        ] {
            assert_eq!(ok(&with(&format!("tsc_mode = {v}\n"))).0.tsc_mode, mode, "{v}");
        }
        let e = err(&with("tsc_mode = 'native_paravirt'\n"));
        assert!(e.to_string().contains("has been removed"), "{e}");
        assert_eq!(err(&with("tsc_mode = 'nativ'\n")).key.as_deref(), Some("tsc_mode"));
    }

    #[test]
    fn cmdline_wins_over_root_and_extra_with_a_warning() {
        let (c, w) = ok(&with("root = '/dev/xvda'\ncmdline = 'quiet'\nextra = 'x'\n"));
        assert_eq!(c.cmdline, "quiet");
        assert_eq!(w.len(), 1);
        assert_eq!((w[0].line, w[0].key.as_str()), (4, "cmdline"));
        assert_eq!(w[0].to_string(), "demo.cfg:4: warning: cmdline: ignoring root= and extra= in favour of cmdline=");
    }

    #[test]
    fn root_and_extra_combine_as_root_equals_root_then_extra() {
        assert_eq!(ok(&with("root = '/dev/xvda1'\nextra = 'quiet spin'\n")).0.cmdline, "root=/dev/xvda1 quiet spin");
        assert_eq!(ok(&with("root = '/dev/xvda1'\n")).0.cmdline, "root=/dev/xvda1");
        assert_eq!(ok(&with("extra = 'quiet'\n")).0.cmdline, "quiet");
    }

    #[test]
    fn a_cmdline_too_long_for_start_info_is_an_error() {
        let long = "a".repeat(600);
        let e = err(&with(&format!("extra = '{long}'\nextra += '{long}'\n")));
        // The += itself fits no string of more than 1024 bytes.
        assert_eq!((e.line, e.key.as_deref()), (4, Some("extra")));
        let e = err(&with(&format!("root = '{long}'\nextra = '{long}'\n")));
        assert!(e.message.contains("start_info"), "{e}");
    }

    #[test]
    fn type_pv_and_its_prefixes_are_accepted_as_strncmp_does() {
        for t in ["pv", "p"] {
            ok(&with(&format!("type = '{t}'\n")));
        }
        for b in ["generic", "gen", "g"] {
            ok(&with(&format!("builder = '{b}'\n")));
        }
        ok(&with("type = 'pv'\nbuilder = 'generic'\n"));
    }

    #[test]
    fn hvm_and_pvh_are_refused_and_other_types_are_invalid() {
        for t in ["hvm", "h", "pvh", ""] {
            let e = err(&with(&format!("type = '{t}'\n")));
            assert_eq!((e.line, e.key.as_deref()), (3, Some("type")));
            assert!(e.message.contains("not supported"), "{e}");
        }
        assert!(err(&with("type = 'xen'\n")).message.contains("invalid domain type"));
        assert!(err(&with("builder = 'hvm'\n")).message.contains("not supported"));
        assert!(err(&with("builder = 'linux'\n")).message.contains("invalid domain type"));
        assert!(err(&with("type = 'pv'\nbuilder = 'hvm'\n")).message.contains("contradicting"));
    }

    #[test]
    fn unknown_keys_are_warnings_with_their_lines() {
        let (c, w) = ok(&with("uuid = \"00000000-0000-0000-0000-000000000001\"\n\nfoo.bar = [ 1 ]\n"));
        assert_eq!(c.name, "d");
        let got: Vec<(u32, &str)> = w.iter().map(|w| (w.line, w.key.as_str())).collect();
        assert_eq!(got, vec![(3, "uuid"), (5, "foo.bar")]);
        assert_eq!(w[1].to_string(), "demo.cfg:5: warning: foo.bar: key not used by this dom0, ignored");
    }

    #[test]
    fn a_list_where_a_single_value_is_wanted_is_an_error() {
        let e = err(&with("memory = [ 64 ]\n"));
        assert_eq!((e.line, e.key.as_deref()), (3, Some("memory")));
        assert!(err(&with("kernel = [ 'k' ]\n")).message.contains("is a list"));
        assert!(err(&with("disk = 'xvda'\n")).message.contains("should be a list"));
        assert!(err(&with("disk = [ [ 'x' ] ]\n")).message.contains("itself a list"));
    }

    // --- The syntax layer: libxlu_cfg_l.l, libxlu_cfg_y.y, libxlu_cfg.c. ---

    #[test]
    fn a_later_setting_of_a_key_overrides_the_earlier() {
        let (c, _) = ok(&with("memory = 64\nname = 'other'\nmemory = 80\ndisk = ['/a,,xvda']\ndisk = []\n"));
        assert_eq!((c.name.as_str(), c.memory), ("other", 80));
        assert!(c.disks.is_empty());
    }

    #[test]
    fn plus_equals_appends_to_the_previous_string_or_list() {
        let (c, _) = ok(&with("extra = 'a'\nextra += ' b'\ndisk = ['/a,,xvda']\ndisk += ['/b,,xvdb',]\n"));
        assert_eq!(c.cmdline, "a b");
        let vdevs: Vec<&str> = c.disks.iter().map(|d| d.vdev.as_str()).collect();
        assert_eq!(vdevs, ["xvda", "xvdb"]);
        // Without an earlier setting, += is =.
        assert_eq!(ok(&with("extra += 'only'\n")).0.cmdline, "only");
    }

    #[test]
    fn plus_equals_on_a_number_is_an_error_as_xlu_cfg_get_long() {
        let e = err(&with("memory = 64\nmemory += 1\n"));
        assert_eq!((e.line, e.key.as_deref()), (4, Some("memory")));
        assert!(e.message.contains("can't use += with numbers"), "{e}");
    }

    #[test]
    fn plus_equals_of_a_list_to_a_string_is_an_error() {
        let e = err(&with("extra = 'a'\nextra += [ 'b' ]\n"));
        assert_eq!((e.line, e.key.as_deref()), (4, Some("extra")));
        assert!(e.message.contains("can't add [list]"), "{e}");
    }

    #[test]
    fn numbers_follow_strtol_base_zero() {
        assert_eq!(ok(&with("memory = 0x40\n")).0.memory, 64);
        assert_eq!(ok(&with("memory = 010\n")).0.memory, 8);
        // A quoted number is the same text to xl.
        assert_eq!(ok(&with("memory = \" 48\"\n")).0.memory, 48);
        assert_eq!(ok(&with("memory = '+48'\n")).0.memory, 48);
        for bad in ["08", "0x", "12abc", "'12 '", "''", "'1e3'"] {
            let e = err(&with(&format!("memory = {bad}\n")));
            assert_eq!((e.line, e.key.as_deref()), (3, Some("memory")), "{bad}: {e}");
            assert!(e.message.contains("not a valid number"), "{bad}: {e}");
        }
        assert!(err(&with("memory = 99999999999999999999\n")).message.contains("out of range"));
        assert_eq!(strtol("-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(strtol("9223372036854775807"), Ok(i64::MAX));
        assert!(strtol("9223372036854775808").is_err());
    }

    #[test]
    fn strings_take_xl_escapes_in_either_quote() {
        let (c, _) = ok(&with(
            r#"extra = "a\"b\'c\\d\te\nf\rg\a\b\f\v"
root = 'x\'y"z'
"#,
        ));
        assert_eq!(c.cmdline, "root=x'y\"z a\"b'c\\d\te\nf\rg\u{7}\u{8}\u{c}\u{b}");
    }

    #[test]
    fn numeric_and_unknown_escapes_are_errors() {
        for bad in [r"'\x41'", r"'\101'", r"'\q'", r"'\0'"] {
            let e = err(&with(&format!("extra = {bad}\n")));
            assert_eq!(e.line, 3, "{bad}: {e}");
        }
    }

    #[test]
    fn lists_span_lines_with_comments_and_a_trailing_comma() {
        let (c, _) = ok(&with("disk = [\n  # first\n  '/a,,xvda',   # trailing comment\n\n  '/b,,xvdb',\n\n]\nvif = []\n"));
        assert_eq!(c.disks.len(), 2);
        assert!(c.vifs.is_empty());
    }

    #[test]
    fn semicolons_end_settings_and_the_last_needs_no_newline() {
        let (c, _) = ok("name='d'; kernel='k';; memory=40\n;\nvcpus=2");
        assert_eq!((c.name.as_str(), c.memory, c.vcpus), ("d", 40, 2));
        // A comment may end the file without a newline (xl: lexical error).
        ok(&with("memory = 40 # the end"));
    }

    #[test]
    fn syntax_errors_name_the_line_and_what_was_found() {
        let e = err("name = 'd'\nkernel = 'k'\n\nmemory = 64 vcpus = 2\n");
        assert_eq!(e.to_string(), "demo.cfg:4: memory: syntax error near `vcpus': expected a newline or `;' after the value");
        // A bare word is not a value: xl needs quotes.
        let e = err("name = demo\n");
        assert_eq!(e.to_string(), "demo.cfg:1: name: syntax error near `demo': expected a value: a quoted string, a number or a [list]");
        let e = err("name = 'd'\nkernel\n");
        assert_eq!((e.line, e.key.as_deref()), (2, Some("kernel")));
        assert!(e.message.contains("near <newline>"), "{e}");
        let e = err("disk = [ 'a' 'b' ]\n");
        assert!(e.message.contains("near `'b''"), "{e}");
        assert_eq!(err("disk = [ , ]\n").line, 1);
        assert!(err("disk = [ 'a',\n").message.contains("<end of file>"));
        assert!(err("= 5\n").message.contains("expected a key"));
    }

    #[test]
    fn lexical_errors_name_the_line_and_the_word() {
        let e = err("name = 'd'\nkernel = 'k'\nmemory = 64 * 2\n");
        assert_eq!(e.to_string(), "demo.cfg:3: lexical error near `*'");
        assert!(err("memory = -1\n").message.contains("Python"));
        assert!(err("Name = 'd'\n").message.contains("lower case"));
        assert!(err("name = 'd'\r\n").message.contains("carriage return"));
        let e = err("name = 'd'\nkernel = 'k\n");
        assert_eq!(e.line, 2);
        assert!(e.message.contains("unterminated string"), "{e}");
        assert!(err("extra = '\u{0}'\n").message.contains("NUL"));
        let bad_utf8 = b"name = '\xff'\n";
        assert!(parse("demo.cfg", bad_utf8).unwrap_err().message.contains("UTF-8"));
    }

    // --- Disks: libxlu_disk_l.l and xl-disk-configuration(5). ---

    #[test]
    fn disk_positional_keyword_and_deprecated_forms_are_equivalent() {
        // The first example set of xl-disk-configuration(5).
        let a = disk("/dev/vg/guest-volume,,hda");
        for spec in
            ["/dev/vg/guest-volume,raw,hda,rw", "format=raw, vdev=hda, access=rw, target=/dev/vg/guest-volume", "raw:/dev/vg/guest-volume,hda,w"]
        {
            assert_eq!(disk(spec), a, "{spec}");
        }
        assert_eq!(a.target.as_deref(), Some("/dev/vg/guest-volume"));
        assert_eq!((a.format, a.vdev.as_str(), a.access, a.devtype), (DiskFormat::Raw, "hda", DiskAccess::ReadWrite, DiskDevtype::Disk));
    }

    #[test]
    fn disk_cdrom_forms_are_equivalent_and_read_only() {
        let a = disk("/root/image.iso,,hdc,cdrom");
        for spec in [
            "/root/image.iso,,hdc,,cdrom",
            "/root/image.iso,raw,hdc,devtype=cdrom",
            "format=raw, vdev=hdc, access=ro, devtype=cdrom, target=/root/image.iso",
            "raw:/root/image.iso,hdc:cdrom,ro",
        ] {
            assert_eq!(disk(spec), a, "{spec}");
        }
        assert_eq!((a.devtype, a.access, a.format), (DiskDevtype::Cdrom, DiskAccess::ReadOnly, DiskFormat::Raw));
    }

    #[test]
    fn disk_empty_cdrom_has_no_target_and_format_empty() {
        let d = disk(",hdc:cdrom,r");
        assert_eq!((d.target, d.format, d.vdev.as_str(), d.devtype), (None, DiskFormat::Empty, "hdc", DiskDevtype::Cdrom));
        let d = disk("vdev=hdc,cdrom");
        assert_eq!((d.target, d.format), (None, DiskFormat::Empty));
    }

    #[test]
    fn disk_deprecated_prefixes_set_format_or_script_or_are_stripped() {
        let d = disk("tap:aio:/images/a.img,xvda,w");
        assert_eq!((d.target.as_deref(), d.vdev.as_str(), d.format), (Some("/images/a.img"), "xvda", DiskFormat::Raw));
        let d = disk("phy:/dev/sdb,xvdb,r");
        assert_eq!((d.target.as_deref(), d.access), (Some("/dev/sdb"), DiskAccess::ReadOnly));
        assert_eq!(disk("qcow2:/i.qcow2,xvdc,w").format, DiskFormat::Qcow2);
        assert_eq!(disk("iscsi:iqn.2001-05.com.example,xvdd,w").script.as_deref(), Some("block-iscsi"));
        assert_eq!(disk("drbd:res0,xvde,w").target.as_deref(), Some("res0"));
    }

    #[test]
    fn disk_target_keyword_eats_the_rest_including_commas() {
        let d = disk("vdev=xvda, format=vhd, target=/odd,name/with spaces ,");
        assert_eq!(d.target.as_deref(), Some("/odd,name/with spaces "));
        assert_eq!(d.format, DiskFormat::Vhd);
        // An empty positional target may be given again by name.
        assert_eq!(disk(",raw,xvda,w,target=/x").target.as_deref(), Some("/x"));
    }

    #[test]
    fn disk_flags_and_backend_options_are_kept() {
        let d = disk("/x,,xvda,backend=drv,backendtype=phy,specification=virtio,script=block-foo,direct-io-safe,no-discard,untrusted");
        assert_eq!(d.backend.as_deref(), Some("drv"));
        assert_eq!(d.backendtype, Some(DiskBackendType::Phy));
        assert_eq!(d.specification, DiskSpecification::Virtio);
        assert_eq!(d.script.as_deref(), Some("block-foo"));
        assert!(d.direct_io_safe && !d.discard && !d.trusted);
        let d = disk("/x,,xvda");
        assert!(!d.direct_io_safe && d.discard && d.trusted && d.backend.is_none());
    }

    #[test]
    fn bad_disk_specs_are_errors_naming_line_and_disk() {
        for (spec, what) in [
            ("/x", "no vdev specified"),
            ("vdev=xvda", "no target specified"),
            (",,xvda", "no target specified"),
            ("/x,ext4,xvda", "unknown value for format"),
            ("/x,,xvda,rw,extra", "too many positional parameters"),
            ("/x,,xvda,access=rx", "unknown value for access"),
            ("/x,,xvda,devtype=floppy", "unknown value for type"),
            ("/x,,xvda,size=10", "unknown parameter"),
            ("/x,,xvda,vdev=xvdb", "vdev respecified"),
            ("/x,raw,xvda,format=qcow", "format respecified"),
            ("zip:/x,xvda", "unknown deprecated disk prefix"),
            (",xvda:floppy,r", "unknown deprecated type"),
            ("/x,,xvda,=", "bad disk syntax"),
            ("/x,,xvda,colo", "COLO"),
            ("/x\n,,xvda", "control character"),
        ] {
            let e = err(&with(&format!("\ndisk = [ '/ok,,xvdz',\n  {spec:?} ]\n")));
            assert_eq!((e.line, e.key.as_deref()), (5, Some("disk")), "{spec}: {e}");
            assert!(e.message.contains(what), "{spec}: {e}");
            assert!(e.to_string().starts_with("demo.cfg:5: disk: "), "{e}");
        }
    }

    // --- Vifs: parse_nic_config, libxlu_vif.c, xl-network-configuration(5). ---

    #[test]
    fn vif_absent_options_take_libxl_defaults() {
        let v = vif("");
        assert_eq!((v.mac, v.bridge.as_str(), v.script.as_str(), v.model.as_str()), (None, "xenbr0", "vif-bridge", "rtl8139"));
        assert_eq!((v.ip, v.rate, v.backend, v.vifname, v.gatewaydev, v.mtu, v.trusted), (None, None, None, None, None, 1500, true));
    }

    #[test]
    fn vif_options_are_parsed_by_key() {
        let v = vif(
            "mac=00:16:3E:74:3d:76, bridge=xenbr1,ip=10.0.0.2,model=e1000,script=vif-route,backend=net,vifname=web0,gatewaydev=eth0,mtu=9000,devid=7,untrusted,type=vif",
        );
        assert_eq!(v.mac, Some([0x00, 0x16, 0x3e, 0x74, 0x3d, 0x76]));
        assert_eq!((v.bridge.as_str(), v.ip.as_deref(), v.model.as_str(), v.script.as_str()), ("xenbr1", Some("10.0.0.2"), "e1000", "vif-route"));
        assert_eq!((v.backend.as_deref(), v.vifname.as_deref(), v.gatewaydev.as_deref()), (Some("net"), Some("web0"), Some("eth0")));
        assert_eq!((v.mtu, v.devid, v.trusted), (9000, 7, false));
        assert_eq!(vif("netdev=eth1").gatewaydev.as_deref(), Some("eth1"));
        assert_eq!(vif("mac=0:1:2:a:b:c").mac, Some([0, 1, 2, 10, 11, 12]));
    }

    #[test]
    fn vif_rate_follows_libxlu_vif() {
        let r = |s: &str| vif(&format!("rate={s}")).rate.map(|r| (r.bytes_per_interval, r.interval_usecs));
        // The examples of xl-network-configuration(5).
        assert_eq!(r("10Mb/s"), Some((62_500, 50_000)));
        assert_eq!(r("250KB/s"), Some((12_500, 50_000)));
        assert_eq!(r("1MB/s@20ms"), Some((20_000, 20_000)));
        assert_eq!(r("100B/s@1s"), Some((100, 1_000_000)));
        assert_eq!(r("8000b/s@500us"), Some((0, 500)));
        assert_eq!(r("1GB/s@2"), Some((2_000_000_000, 2_000_000)));
        // strtoull base 0: a leading 0 is octal.
        assert_eq!(r("010KB/s@1s"), Some((8_000, 1_000_000)));
        for bad in ["", "10", "10MB", "10MB/s@", "0MB/s", "10TB/s", "4294967296B/s", "1MB/s@0ms", "1MB/s@10h", "09MB/s"] {
            assert!(parse_vif(&format!("rate={bad}"), 0).is_err(), "{bad}");
        }
    }

    #[test]
    fn vif_devid_defaults_to_the_list_index_and_must_be_unique() {
        let (c, _) = ok(&with("vif = [ '', 'bridge=xenbr1', 'devid=5' ]\n"));
        let ids: Vec<u32> = c.vifs.iter().map(|v| v.devid).collect();
        assert_eq!(ids, [0, 1, 5]);
        let e = err(&with("vif = [ '', 'devid=0' ]\n"));
        assert!(e.message.contains("devid 0 is used twice"), "{e}");
    }

    #[test]
    fn bad_vif_specs_are_errors_naming_line_and_vif() {
        for (spec, what) in [
            ("mac=00:16:3e:01:02", "invalid mac"),
            ("mac=00:16:3e:01:02:03:04", "invalid mac"),
            ("mac=00:16:3e:01:02:0g", "invalid mac"),
            ("mac=001:16:3e:01:02:03", "invalid mac"),
            ("mac=00-16-3e-01-02-03", "invalid mac"),
            ("type=ioemu", "emulated"),
            ("type=tap", "invalid parameter `type'"),
            ("speed=10", "unrecognized argument"),
            ("xenbr0", "unrecognized argument"),
            ("mtu=big", "failed to convert"),
            ("mtu=99999999999", "failed to convert"),
            ("colo_compare_out=x", "COLO"),
            ("rate=fast", "invalid rate"),
        ] {
            let e = err(&with(&format!("vif = [\n  '{spec}' ]\n")));
            assert_eq!((e.line, e.key.as_deref()), (4, Some("vif")), "{spec}: {e}");
            assert!(e.message.contains(what), "{spec}: {e}");
        }
    }

    // --- xl create FILE KEY=VALUE: xl_vmcontrol.c extra_config. ---

    #[test]
    fn command_line_extras_override_the_file() {
        let text = with("memory = 64\nvif = ['bridge=xenbr0']\n");
        let (c, _) = parse_with_extra("demo.cfg", text.as_bytes(), &["memory=128", "name=\"web2\"", "vif += ['bridge=xenbr1']"]).unwrap();
        assert_eq!((c.name.as_str(), c.memory), ("web2", 128));
        assert_eq!(c.vifs.len(), 2);
        // Several settings in one extra, as in xl's man page.
        let (c, _) = parse_with_extra("demo.cfg", text.as_bytes(), &["vcpus=2; maxvcpus=3"]).unwrap();
        assert_eq!((c.vcpus, c.maxvcpus), (2, 3));
    }

    #[test]
    fn command_line_extras_are_lines_after_the_file() {
        // 4 lines in the file, then xl's "\n": the first extra is line 6.
        let text = with("memory = 64\nvcpus = 1\n");
        let e = parse_with_extra("demo.cfg", text.as_bytes(), &["memory=128", "on_crash='explode'"]).unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (7, Some("on_crash")));
        // Values are xl.cfg syntax: a bare word is a syntax error.
        let e = parse_with_extra("demo.cfg", text.as_bytes(), &["name=web2"]).unwrap_err();
        assert_eq!(e.line, 6);
        assert!(e.message.contains("near `web2'"), "{e}");
        // A file without a final newline still ends before the extras.
        let (c, _) = parse_with_extra("demo.cfg", b"name='d'\nkernel='k'", &["memory=50"]).unwrap();
        assert_eq!(c.memory, 50);
    }

    #[test]
    fn a_command_line_extra_without_equals_is_an_error() {
        let e = parse_with_extra("demo.cfg", with("").as_bytes(), &["-c"]).unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (0, None));
        assert!(e.message.contains("not KEY=VALUE"), "{e}");
    }

    // --- Limits. ---

    #[test]
    fn files_lines_strings_and_extras_past_their_limits_are_errors() {
        let big = vec![b'\n'; MAX_CONFIG_BYTES + 1];
        assert!(parse("big.cfg", &big).unwrap_err().message.contains("more than the limit"));
        let e = err(&with(&format!("extra = '{}'\n", "a".repeat(MAX_LINE_BYTES))));
        assert_eq!(e.line, 3);
        assert!(e.message.contains("line is"), "{e}");
        let e = err(&with(&format!("extra = '{}'\n", "a".repeat(MAX_STRING_BYTES + 1))));
        assert!(e.message.contains("longer than 1024"), "{e}");
        let e = err(&with(&format!("{} = 1\n", "k".repeat(MAX_KEY_BYTES + 1))));
        assert!(e.message.contains("longer than 64"), "{e}");
        let long = "x=1".repeat(MAX_EXTRA_BYTES / 3 + 1);
        assert!(parse_with_extra("demo.cfg", with("").as_bytes(), &[&long]).unwrap_err().message.contains("extra settings are"));
    }

    #[test]
    fn lists_keys_nesting_and_plus_equals_growth_are_bounded() {
        let items = "'/a,,xvda',".repeat(MAX_LIST_ITEMS + 1);
        assert!(err(&with(&format!("disk = [ {items} ]\n"))).message.contains("more than 256 items"));
        let nested = format!("x = {}{}\n", "[".repeat(MAX_LIST_DEPTH + 1), "]".repeat(MAX_LIST_DEPTH + 1));
        assert!(err(&with(&nested)).message.contains("nested"));
        // Deep nesting far past the bound fails the same way, without recursion.
        assert!(err(&with(&format!("x = {}\n", "[".repeat(4000)))).message.contains("nested"));
        let keys: String = (0..MAX_KEYS).map(|i| format!("k{i} = 1\n")).collect();
        let e = err(&with(&keys));
        assert!(e.message.contains("more than 128 keys"), "{e}");
        assert_eq!(e.line, u32::try_from(MAX_KEYS + 1).unwrap());
        let grow: String = (0..40).map(|_| format!("extra += '{}'\n", "a".repeat(100))).collect();
        assert!(err(&with(&grow)).message.contains("+= makes a string longer"));
        let grow: String = (0..30).map(|_| format!("disk += [ {} ]\n", "'/a,,x',".repeat(10))).collect();
        assert!(err(&with(&grow)).message.contains("+= makes a list longer"));
        // Up to the limits is fine.
        let (c, _) = ok(&with(&format!("disk = [ {} ]\n", (0..MAX_LIST_ITEMS).map(|i| format!("'/a,,xvd{i}',")).collect::<String>())));
        assert_eq!(c.disks.len(), MAX_LIST_ITEMS);
    }

    // --- Hostile input: pseudo-random and mutated bytes. ---

    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    const ALPHABET: &[u8] = b"abcdemnorstvxyz019 \t\n\n#=+[],;''\"\"\\:/.-_@xX=,:";

    fn mutate(rng: &mut XorShift, base: &[u8]) -> Vec<u8> {
        let mut v = base.to_vec();
        for _ in 0..1 + rng.below(8) {
            let at = rng.below(v.len() + 1);
            match rng.below(6) {
                0 if at < v.len() => v[at] = ALPHABET[rng.below(ALPHABET.len())],
                1 => v.insert(at, ALPHABET[rng.below(ALPHABET.len())]),
                2 if at < v.len() => {
                    let end = (at + rng.below(16)).min(v.len());
                    v.drain(at..end);
                }
                3 if at < v.len() => {
                    let end = (at + rng.below(64)).min(v.len());
                    let chunk = v[at..end].to_vec();
                    let to = rng.below(v.len() + 1);
                    v.splice(to..to, chunk);
                }
                4 => v.truncate(at),
                _ if at < v.len() => v[at] = rng.next() as u8,
                _ => {}
            }
        }
        v
    }

    fn check_bounded(result: Result<(DomainConfig, Vec<Warning>), Error>, input_lines: usize) -> bool {
        match result {
            Ok((c, w)) => {
                assert!(c.disks.len() <= MAX_LIST_ITEMS && c.vifs.len() <= MAX_LIST_ITEMS);
                assert!(w.len() <= MAX_KEYS + 1);
                assert!(c.name.len() <= MAX_STRING_BYTES && c.cmdline.len() < MAX_GUEST_CMDLINE);
                assert!(c.memory <= c.maxmem && c.vcpus <= c.maxvcpus);
                true
            }
            Err(e) => {
                let shown = e.to_string();
                assert!(shown.len() <= 512, "unbounded message: {shown}");
                assert!(e.line as usize <= input_lines + 1, "line {} past the input: {shown}", e.line);
                false
            }
        }
    }

    #[test]
    fn random_and_mutated_bytes_never_panic_and_give_bounded_output() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut accepted = 0;
        for round in 0..6000 {
            let input = if round % 2 == 0 {
                mutate(&mut rng, SAMPLE.as_bytes())
            } else {
                let len = rng.below(300);
                (0..len).map(|_| if rng.below(8) == 0 { rng.next() as u8 } else { ALPHABET[rng.below(ALPHABET.len())] }).collect()
            };
            let lines = input.iter().filter(|&&b| b == b'\n').count() + 1;
            if check_bounded(parse("fuzz.cfg", &input), lines) {
                accepted += 1;
            }
            if round % 7 == 0 {
                let extra = String::from_utf8_lossy(&mutate(&mut rng, b"memory=64")).into_owned();
                check_bounded(parse_with_extra("fuzz.cfg", &input, &[&extra, "vcpus=2"]), lines + 4);
            }
            // The device languages on their own, from the same bytes.
            let spec = String::from_utf8_lossy(&input[..input.len().min(200)]).into_owned();
            let _ = parse_disk(&spec);
            let _ = parse_vif(&spec, 0);
        }
        // The mutations must still produce valid configs sometimes, or this
        // test explores nothing past the first error.
        assert!(accepted > 100, "only {accepted} inputs accepted");
    }

    #[test]
    fn mutated_disk_and_vif_specs_never_panic() {
        let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
        let disks: [&[u8]; 4] = [
            b"raw:/root/image.iso,hdc:cdrom,ro",
            b"format=raw, vdev=hda, access=rw, target=/dev/vg/x",
            b",hdc:cdrom,r",
            b"tap:aio:/a,xvda,w,discard",
        ];
        let vifs: [&[u8]; 2] = [b"mac=00:16:3E:74:3d:76,model=rtl8139,bridge=xenbr0", b"rate=1MB/s@20ms,ip=1.2.3.4,devid=3,mtu=1500"];
        for round in 0..4000 {
            let d = String::from_utf8_lossy(&mutate(&mut rng, disks[round % disks.len()])).into_owned();
            if let Ok(spec) = parse_disk(&d) {
                assert!(!spec.vdev.is_empty() && (spec.target.is_some() || spec.devtype == DiskDevtype::Cdrom), "{d}: {spec:?}");
            }
            let v = String::from_utf8_lossy(&mutate(&mut rng, vifs[round % vifs.len()])).into_owned();
            if let Ok(Some(rate)) = parse_vif(&v, 0).map(|v| v.rate) {
                assert!(rate.interval_usecs > 0, "{v}");
            }
        }
    }
}
