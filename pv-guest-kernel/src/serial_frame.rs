//! Bytes carried over a console as framed text lines, and read back off a
//! console log: dom0's `xl trace dump` (the hypervisor's records) and
//! every guest's own trace dump (`crate::gtrace`) use it.
//!
//! A frame is a begin line (the caller's, starting with its begin tag),
//! data lines (`<data tag><base64 of up to 57 bytes>`, 76 characters), and
//! an end line `<end tag> bytes=N lines=L fnv1a=XXXXXXXX`, where `fnv1a` is
//! FNV-1a 32 (`frontend_drivers::netfront::fnv1a`) of the N bytes.
//!
//! On a log, a guest's lines come with the `(dN) ` prefix dom0 puts before
//! every line it relays from a domU's console ring (after its shell's
//! prompt, at times), as the hypervisor does for a domU's `console_io`;
//! lines without it are dom0's or the hypervisor's.
//! [`unframe_all`] reads each source's lines on their own, so frames of
//! several guests may interleave line by line, and names each frame's
//! source by that prefix, which a guest cannot forge for another domain:
//! dom0 relays each line whole, in one console write (`crate::console::
//! Line`), with control characters escaped. Not while `xl console` is
//! attached to the guest: its output is then relayed raw, as xenconsole
//! does, and may pose as dom0's.
//!
//! Invariant: [`unframe_all`] returns a frame's bytes only when their
//! count, line count and checksum match its end line; malformed input is
//! an error in that frame, never a panic.
#![forbid(unsafe_code)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use frontend_drivers::netfront::{FNV_OFFSET, fnv1a};

/// Raw bytes per data line (76 base64 characters).
pub const LINE_BYTES: usize = 57;

/// Print the bytes `pieces` hands over in order as one frame: `begin` (the
/// whole begin line), then data lines with prefix `data`, then the end
/// line with tag `end` and what was sent; each line goes to `line` without
/// its newline.
pub fn frame(begin: &str, data: &str, end: &str, pieces: impl FnOnce(&mut dyn FnMut(&[u8])), mut line: impl FnMut(&str)) {
    line(begin);
    let mut pending = [0u8; LINE_BYTES];
    let (mut n, mut lines, mut sum, mut sent) = (0usize, 0usize, FNV_OFFSET, 0usize);
    let mut text = [0u8; 76];
    let mut emit = |bytes: &[u8], lines: &mut usize, line: &mut dyn FnMut(&str)| {
        let k = STANDARD.encode_slice(bytes, &mut text).unwrap_or(0);
        let mut l: heapless::String<96> = heapless::String::new();
        let _ = l.push_str(data);
        let _ = l.push_str(core::str::from_utf8(&text[..k]).unwrap_or(""));
        line(&l);
        *lines += 1;
    };
    pieces(&mut |mut piece: &[u8]| {
        sum = fnv1a(sum, piece);
        sent += piece.len();
        while !piece.is_empty() {
            let take = (LINE_BYTES - n).min(piece.len());
            pending[n..n + take].copy_from_slice(&piece[..take]);
            n += take;
            piece = &piece[take..];
            if n == LINE_BYTES {
                emit(&pending, &mut lines, &mut line);
                n = 0;
            }
        }
    });
    if n > 0 {
        emit(&pending[..n], &mut lines, &mut line);
    }
    let mut l: heapless::String<96> = heapless::String::new();
    let _ = core::fmt::write(&mut l, format_args!("{end} bytes={sent} lines={lines} fnv1a={sum:08x}"));
    line(&l);
}

/// Why a frame could not be read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// No begin line.
    NoBegin,
    /// No end line after the begin line (another begin line or the
    /// log's end came first).
    NoEnd,
    /// A data line that is not base64 (its number, from 0).
    BadLine(usize),
    /// The end line is not `bytes=N lines=L fnv1a=X`.
    BadEnd,
    /// Data lines or bytes other than the end line says, or another
    /// checksum.
    Mismatch {
        /// What the end line says: bytes, lines, checksum.
        want: (usize, usize, u32),
        /// What arrived.
        got: (usize, usize, u32),
    },
}

#[cfg(not(target_os = "none"))]
pub use host::*;

/// Reading frames back (host and dom0's tests).
#[cfg(not(target_os = "none"))]
mod host {
    extern crate alloc;
    use super::*;
    use alloc::string::String;
    use alloc::vec::Vec;

    /// A frame found in a log.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Framed {
        /// The domain whose `(dN) ` prefix its lines carry; `None` for
        /// unprefixed lines (dom0 or the hypervisor).
        pub domid: Option<u16>,
        /// Its begin line, without the prefix.
        pub begin: String,
        /// Its bytes, or why they cannot be trusted.
        pub bytes: Result<Vec<u8>, FrameError>,
    }

    /// `key=value` of a framing line.
    pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
        line.split_ascii_whitespace().find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
    }

    /// dom0's shell prompt, which may precede a line it relays.
    const PROMPT: &str = "xl> ";

    /// The domain of a `(dN) ` prefix and the rest of the line, after any
    /// shell prompts before it.
    pub fn split_prefix(line: &str) -> (Option<u16>, &str) {
        let mut line = line;
        while let Some(rest) = line.strip_prefix(PROMPT) {
            line = rest;
        }
        let parsed = line.strip_prefix("(d").and_then(|r| {
            let (n, rest) = r.split_once(") ")?;
            Some((n.parse::<u16>().ok()?, rest))
        });
        match parsed {
            Some((d, rest)) => (Some(d), rest),
            None => (None, line),
        }
    }

    /// A frame being read.
    struct Open {
        domid: Option<u16>,
        begin: String,
        bytes: Vec<u8>,
        lines: usize,
        bad: Option<FrameError>,
    }

    impl Open {
        fn close(self, end: Option<&str>) -> Framed {
            let bytes = match (self.bad, end) {
                (Some(e), _) => Err(e),
                (None, None) => Err(FrameError::NoEnd),
                (None, Some(e)) => check(e, self.bytes, self.lines),
            };
            Framed { domid: self.domid, begin: self.begin, bytes }
        }
    }

    fn check(end: &str, bytes: Vec<u8>, lines: usize) -> Result<Vec<u8>, FrameError> {
        let want =
            (|| Some((field(end, "bytes")?.parse().ok()?, field(end, "lines")?.parse().ok()?, u32::from_str_radix(field(end, "fnv1a")?, 16).ok()?)))(
            )
            .ok_or(FrameError::BadEnd)?;
        let got = (bytes.len(), lines, fnv1a(FNV_OFFSET, &bytes));
        if want != got { Err(FrameError::Mismatch { want, got }) } else { Ok(bytes) }
    }

    /// Every frame with these tags in `text`, in the order their end lines
    /// (or the log's end) came; each source's lines are read on their own.
    pub fn unframe_all(text: &str, begin: &str, data: &str, end: &str) -> Vec<Framed> {
        let mut open: Vec<Open> = Vec::new();
        let mut out = Vec::new();
        for raw in text.lines() {
            let (domid, l) = split_prefix(raw.trim_end_matches('\r'));
            let at = open.iter().position(|o| o.domid == domid);
            if l.starts_with(begin) {
                if let Some(i) = at {
                    out.push(open.swap_remove(i).close(None));
                }
                open.push(Open { domid, begin: l.into(), bytes: Vec::new(), lines: 0, bad: None });
            } else if let Some(i) = at {
                if let Some(b64) = l.strip_prefix(data) {
                    let o = &mut open[i];
                    let mut buf = [0u8; LINE_BYTES];
                    match STANDARD.decode_slice(b64.trim(), &mut buf) {
                        Ok(n) if o.bad.is_none() => o.bytes.extend_from_slice(&buf[..n]),
                        Ok(_) => {}
                        Err(_) => o.bad = o.bad.take().or(Some(FrameError::BadLine(o.lines))),
                    }
                    o.lines += 1;
                } else if l.starts_with(end) {
                    out.push(open.swap_remove(i).close(Some(l)));
                }
            }
        }
        out.extend(open.into_iter().map(|o| o.close(None)));
        out
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::format;
    use std::string::String;
    use std::vec::Vec;

    fn framed(begin: &str, bytes: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        frame(begin, "td ", "t: end", |emit| emit(bytes), |l| lines.push(String::from(l)));
        lines
    }

    #[test]
    fn a_frame_reads_back_and_names_no_domain_without_a_prefix() {
        let data: Vec<u8> = (0..200u8).collect();
        let lines = framed("t: begin x=1", &data);
        assert_eq!(lines.len(), 2 + 4, "200 bytes = 3 lines of 57 and one of 29");
        assert!(lines.iter().all(|l| l.len() <= 3 + 76));
        let f = unframe_all(&lines.join("\n"), "t: begin", "td ", "t: end");
        assert_eq!(f, [Framed { domid: None, begin: "t: begin x=1".into(), bytes: Ok(data) }]);
    }

    #[test]
    fn guests_frames_interleaved_line_by_line_are_read_per_prefix() {
        let a = framed("t: begin", &[1; 120]);
        let b = framed("t: begin", &[2; 60]);
        let mut log = Vec::new();
        for i in 0..a.len().max(b.len()) {
            if let Some(l) = a.get(i) {
                log.push(format!("(d3) {l}"));
            }
            log.push(format!("noise {i}"));
            if let Some(l) = b.get(i) {
                log.push(format!("(d12) {l}"));
            }
        }
        let f = unframe_all(&log.join("\r\n"), "t: begin", "td ", "t: end");
        assert_eq!(f.len(), 2);
        let by = |d| f.iter().find(|x| x.domid == Some(d)).unwrap().bytes.clone().unwrap();
        assert_eq!(by(3), [1; 120]);
        assert_eq!(by(12), [2; 60]);
    }

    #[test]
    fn a_forged_or_damaged_frame_is_an_error_never_a_panic() {
        let mut lines = framed("t: begin", &[7; 100]);
        lines[1].replace_range(4..6, "AA");
        let f = unframe_all(&lines.join("\n"), "t: begin", "td ", "t: end");
        assert!(matches!(f[0].bytes, Err(FrameError::Mismatch { .. })));
        let cut = framed("t: begin", &[7; 100])[..2].join("\n");
        assert_eq!(unframe_all(&cut, "t: begin", "td ", "t: end")[0].bytes, Err(FrameError::NoEnd));
        let bad = "t: begin\ntd !!!\nt: end bytes=0 lines=1 fnv1a=811c9dc5";
        assert_eq!(unframe_all(bad, "t: begin", "td ", "t: end")[0].bytes, Err(FrameError::BadLine(0)));
        let bad_end = "t: begin\nt: end bytes=x";
        assert_eq!(unframe_all(bad_end, "t: begin", "td ", "t: end")[0].bytes, Err(FrameError::BadEnd));
        // Another domain's prefix cannot end or feed this frame.
        let other = format!("(d1) t: begin\n(d2) {}\n(d2) t: end bytes=0 lines=0 fnv1a=811c9dc5", "td AAAA");
        assert_eq!(unframe_all(&other, "t: begin", "td ", "t: end")[0].bytes, Err(FrameError::NoEnd));
        assert_eq!(split_prefix("(dx) y"), (None, "(dx) y"));
        assert_eq!(split_prefix("xl> xl> (d2) y"), (Some(2), "y"), "dom0's prompt before a relayed line");
        assert_eq!(split_prefix("(d70000) y"), (None, "(d70000) y"));
    }
}
