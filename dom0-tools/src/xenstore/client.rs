//! dom0's own xenstore client: the toolstack's requests to [`Xenstore`]
//! in-process, as connection 0 (what libxenstore does over a socket), the
//! domain home libxl writes at `xl create`, and `xenstore-ls`'s output.
//!
//! Invariant: every request goes through [`Xenstore::handle_frame`], the
//! path a domain's requests take, so dom0's tools see exactly the
//! daemon's semantics (permissions, watches fired, quotas).
#![forbid(unsafe_code)]

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use xen_public::io::xs_wire::*;
use zerocopy::{FromBytes, IntoBytes};

use super::{DomId, Verdict, Xenstore};

/// Send one request as dom0; the reply's payload, or the error's name.
pub fn request(xs: &mut Xenstore, type_: u32, payload: &[u8]) -> Result<Vec<u8>, String> {
    let hdr = XsdSockmsg { type_, req_id: 0, tx_id: 0, len: payload.len() as u32 };
    let mut msg = Vec::from(hdr.as_bytes());
    msg.extend_from_slice(payload);
    let Verdict::Reply(msgs) = xs.handle_frame(0, &msg).0 else { return Err(String::from("EINVAL")) };
    let reply = msgs.first().map(Vec::as_slice).unwrap_or_default();
    let (h, body) = XsdSockmsg::read_from_prefix(reply).map_err(|_| String::from("EIO"))?;
    let body = &body[..(h.len as usize).min(body.len())];
    if h.type_ == XS_ERROR {
        return Err(String::from(core::str::from_utf8(body).unwrap_or("EIO").trim_end_matches('\0')));
    }
    Ok(Vec::from(body))
}

fn arg(s: &str) -> Vec<u8> {
    let mut v = Vec::from(s.as_bytes());
    v.push(0);
    v
}

/// XS_READ.
pub fn read(xs: &mut Xenstore, path: &str) -> Result<Vec<u8>, String> {
    request(xs, XS_READ, &arg(path))
}

/// XS_WRITE.
pub fn write(xs: &mut Xenstore, path: &str, value: &[u8]) -> Result<(), String> {
    let mut p = arg(path);
    p.extend_from_slice(value);
    request(xs, XS_WRITE, &p).map(drop)
}

/// XS_RM.
pub fn rm(xs: &mut Xenstore, path: &str) -> Result<(), String> {
    request(xs, XS_RM, &arg(path)).map(drop)
}

/// XS_WATCH as dom0 (it fires once at once, as every watch does).
pub fn watch(xs: &mut Xenstore, path: &str, token: &str) -> Result<(), String> {
    let mut p = arg(path);
    p.extend_from_slice(&arg(token));
    request(xs, XS_WATCH, &p).map(drop)
}

/// XS_UNWATCH as dom0.
pub fn unwatch(xs: &mut Xenstore, path: &str, token: &str) -> Result<(), String> {
    let mut p = arg(path);
    p.extend_from_slice(&arg(token));
    request(xs, XS_UNWATCH, &p).map(drop)
}

/// dom0's pending watch events, oldest first, as (path, token).
pub fn take_watch_events(xs: &mut Xenstore) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for ev in xs.take_events(0) {
        let Ok((h, body)) = XsdSockmsg::read_from_prefix(ev.as_slice()) else { continue };
        let body = &body[..(h.len as usize).min(body.len())];
        if let [path, token, ..] = super::wire::strings(body).as_slice() {
            out.push((String::from_utf8_lossy(path).into_owned(), String::from_utf8_lossy(token).into_owned()));
        }
    }
    out
}

/// XS_DIRECTORY: the children's names.
pub fn directory(xs: &mut Xenstore, path: &str) -> Result<Vec<String>, String> {
    let body = request(xs, XS_DIRECTORY, &arg(path))?;
    Ok(super::wire::strings(&body).into_iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect())
}

/// XS_SET_PERMS with perms in their wire form (`n0`, `r5`, ...).
pub fn set_perms(xs: &mut Xenstore, path: &str, perms: &[&str]) -> Result<(), String> {
    let mut p = arg(path);
    for s in perms {
        p.extend_from_slice(&arg(s));
    }
    request(xs, XS_SET_PERMS, &p).map(drop)
}

/// What libxl writes for a new PV domain.
#[derive(Clone, Copy, Debug)]
pub struct DomainHome<'a> {
    /// The domain.
    pub domid: DomId,
    /// Its name.
    pub name: &'a str,
    /// Memory target, KiB (`memory/target`).
    pub memory_kib: u64,
    /// Memory maximum, KiB (`memory/static-max`).
    pub max_kib: u64,
    /// The console ring's frame (`console/ring-ref`: an mfn for PV).
    pub console_mfn: u64,
    /// The domain's end of the console channel.
    pub console_port: u32,
    /// The xenstore ring's frame (`store/ring-ref`: an mfn for PV).
    pub store_mfn: u64,
    /// The domain's end of the xenstore channel.
    pub store_port: u32,
    /// Its UUID, as `xlfmt::uuid` spells it (`vm` is `/vm/<uuid>`).
    pub uuid: &'a str,
    /// Wall-clock seconds at creation (`/vm/<uuid>/start_time`).
    pub start_time: u64,
    /// Its vCPUs (`cpu/<n>/availability`).
    pub vcpus: u32,
}

/// `/vm/<uuid>`: the domain's VM node, which libxl keeps outside its home.
pub fn vm_path(uuid: &str) -> String {
    format!("/vm/{uuid}")
}

/// `/local/domain/<id>`'s subtrees as `libxl__domain_make` creates them:
/// (relative path, whether the domain owns it). Owned ones are `n<id>`
/// (rwperm), the others `n0 r<id>` (roperm).
pub const HOME_DIRS: &[(&str, bool)] = &[
    ("cpu", false),
    ("memory", false),
    ("device", false),
    ("device/suspend/event-channel", true),
    ("control", false),
    ("control/shutdown", true),
    ("control/feature-poweroff", true),
    ("control/feature-reboot", true),
    ("control/feature-suspend", true),
    ("control/sysrq", true),
    // Ours, not libxl's (issue 19): a guest that records its own trace
    // writes `1` to feature-trace; `xl trace start`/`stop` write `start`
    // and `stop` to trace, which the guest watches.
    ("control/feature-trace", true),
    ("control/trace", true),
    ("data", true),
    ("drivers", true),
    ("feature", true),
    ("attr", true),
    ("error", true),
];

/// Write a new domain's home as libxl does (`libxl__domain_make`, then
/// `libxl__build_post`'s entries), every node dom0's.
pub fn make_home(xs: &mut Xenstore, h: &DomainHome<'_>) -> Result<(), String> {
    let home = super::tree::domain_path(h.domid);
    let ro = [String::from("n0"), format!("r{}", h.domid)];
    let ro: [&str; 2] = [&ro[0], &ro[1]];
    let rw = format!("n{}", h.domid);
    let _ = rm(xs, &home);
    write(xs, &home, b"")?;
    set_perms(xs, &home, &ro)?;
    for &(dir, owned) in HOME_DIRS {
        let p = format!("{home}/{dir}");
        write(xs, &p, b"")?;
        if owned { set_perms(xs, &p, &[&rw])? } else { set_perms(xs, &p, &ro)? }
    }
    let kib = format!("{}", h.memory_kib);
    let vm = vm_path(h.uuid);
    let entries: [(&str, String); 10] = [
        ("vm", vm.clone()),
        ("name", String::from(h.name)),
        ("domid", format!("{}", h.domid)),
        ("memory/static-max", format!("{}", h.max_kib)),
        ("memory/target", kib),
        ("console/ring-ref", format!("{}", h.console_mfn)),
        ("console/port", format!("{}", h.console_port)),
        ("console/limit", String::from("1048576")),
        ("store/ring-ref", format!("{}", h.store_mfn)),
        ("store/port", format!("{}", h.store_port)),
    ];
    for (k, v) in entries {
        write(xs, &format!("{home}/{k}"), v.as_bytes())?;
    }
    for cpu in 0..h.vcpus {
        write(xs, &format!("{home}/cpu/{cpu}/availability"), b"online")?;
    }
    // libxl__domain_make's /vm/<uuid>: readable by the domain, dom0's.
    let _ = rm(xs, &vm);
    write(xs, &vm, b"")?;
    set_perms(xs, &vm, &ro)?;
    for (k, v) in [("uuid", String::from(h.uuid)), ("name", String::from(h.name)), ("start_time", format!("{}.00", h.start_time))] {
        write(xs, &format!("{vm}/{k}"), v.as_bytes())?;
    }
    Ok(())
}

/// Remove what [`make_home`] wrote for a domain that is gone: its home and
/// its `/vm/<uuid>`.
pub fn remove_home(xs: &mut Xenstore, domid: DomId, uuid: &str) {
    let _ = rm(xs, &super::tree::domain_path(domid));
    let _ = rm(xs, &vm_path(uuid));
}

/// xenstore-ls's `sanitise_value`: printable ASCII but `\` as is,
/// `\t \n \r \\`, octal below 8, `\xNN` otherwise.
pub fn sanitise_value(v: &[u8]) -> String {
    let mut s = String::with_capacity(v.len());
    for &c in v {
        match c {
            b' '..=b'~' if c != b'\\' => s.push(c as char),
            b'\t' => s.push_str("\\t"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\\' => s.push_str("\\\\"),
            c if c < 8 => s.push_str(&format!("\\{c:03o}")),
            c => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s
}

/// xenstore-ls's line width when not on a terminal.
const MAX_WIDTH: usize = 80;
/// `strlen(" = \"...\"")`.
const TAG_LEN: usize = 8;

/// One line of `xenstore-ls`: `depth` spaces, the name, and the value
/// (`:` alone if it cannot be read), cut at 80 columns as xenstore-ls does.
pub fn ls_line(depth: usize, name: &str, value: Option<&[u8]>) -> String {
    let mut line = String::new();
    for _ in 0..depth {
        line.push(' ');
    }
    let room = MAX_WIDTH.saturating_sub(TAG_LEN + depth);
    line.extend(name.chars().take(room));
    let width = line.len();
    match value {
        None => line.push(':'),
        Some(v) => {
            let text = sanitise_value(v);
            if MAX_WIDTH < width + v.len() + TAG_LEN {
                let keep = MAX_WIDTH.saturating_sub(TAG_LEN + width);
                line.push_str(&format!(" = \"{}\\...\"", &text[..keep.min(text.len())]));
            } else {
                line.push_str(&format!(" = \"{text}\""));
            }
        }
    }
    line
}

/// `xenstore-ls PATH`: every node below `path`, depth first, one line
/// each (the nodes of `path`'s subtree, not `path` itself).
pub fn ls(xs: &mut Xenstore, path: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let top = directory(xs, path)?;
    // Iterative (an explicit stack of child lists, no recursion: dom0's
    // stack is 64 KiB and a path may have a thousand components).
    let mut stack: Vec<(String, alloc::vec::IntoIter<String>)> = alloc::vec![(String::from(path), top.into_iter())];
    while let Some((dir, names)) = stack.last_mut() {
        let Some(name) = names.next() else {
            stack.pop();
            continue;
        };
        let full = if dir.ends_with('/') { format!("{dir}{name}") } else { format!("{dir}/{name}") };
        let value = read(xs, &full).ok();
        out.push(ls_line(stack.len() - 1, &name, value.as_deref()));
        match directory(xs, &full) {
            Ok(c) => stack.push((full, c.into_iter())),
            Err(e) if e == "ENOENT" => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xenstore::perms::perm_for_conn;

    fn home(xs: &mut Xenstore) {
        let h = DomainHome {
            domid: 3,
            name: "web",
            memory_kib: 4096,
            max_kib: 4096,
            console_mfn: 0x1234,
            console_port: 2,
            store_mfn: 0x1235,
            store_port: 3,
            uuid: "00000000-0000-4000-8000-000000000003",
            start_time: 1_796_259_599,
            vcpus: 1,
        };
        make_home(xs, &h).unwrap();
    }

    #[test]
    fn dom0_requests_go_through_the_daemon_and_errors_come_back_by_name() {
        let mut xs = Xenstore::new();
        write(&mut xs, "/a/b", b"v").unwrap();
        assert_eq!(read(&mut xs, "/a/b").unwrap(), b"v");
        assert_eq!(read(&mut xs, "/nope"), Err(String::from("ENOENT")));
        assert_eq!(write(&mut xs, "bad//path", b""), Err(String::from("EINVAL")));
        rm(&mut xs, "/a").unwrap();
        assert_eq!(directory(&mut xs, "/a"), Err(String::from("ENOENT")));
    }

    #[test]
    fn make_home_writes_libxl_nodes_with_libxl_permissions() {
        let mut xs = Xenstore::new();
        home(&mut xs);
        assert_eq!(read(&mut xs, "/local/domain/3/name").unwrap(), b"web");
        assert_eq!(read(&mut xs, "/local/domain/3/domid").unwrap(), b"3");
        assert_eq!(read(&mut xs, "/local/domain/3/memory/target").unwrap(), b"4096");
        assert_eq!(read(&mut xs, "/local/domain/3/memory/static-max").unwrap(), b"4096");
        assert_eq!(read(&mut xs, "/local/domain/3/console/ring-ref").unwrap(), b"4660");
        assert_eq!(read(&mut xs, "/local/domain/3/console/port").unwrap(), b"2");
        assert_eq!(read(&mut xs, "/local/domain/3/control/shutdown").unwrap(), b"");
        assert_eq!(read(&mut xs, "/local/domain/3/store/ring-ref").unwrap(), b"4661");
        assert_eq!(read(&mut xs, "/local/domain/3/store/port").unwrap(), b"3");
        assert_eq!(read(&mut xs, "/local/domain/3/cpu/0/availability").unwrap(), b"online");
        assert_eq!(read(&mut xs, "/local/domain/3/vm").unwrap(), b"/vm/00000000-0000-4000-8000-000000000003");
        assert_eq!(read(&mut xs, "/vm/00000000-0000-4000-8000-000000000003/name").unwrap(), b"web");
        assert_eq!(read(&mut xs, "/vm/00000000-0000-4000-8000-000000000003/start_time").unwrap(), b"1796259599.00");
        remove_home(&mut xs, 3, "00000000-0000-4000-8000-000000000003");
        assert_eq!(read(&mut xs, "/vm/00000000-0000-4000-8000-000000000003"), Err(String::from("ENOENT")));
        assert_eq!(read(&mut xs, "/local/domain/3"), Err(String::from("ENOENT")));
        home(&mut xs);
        let perms = |xs: &Xenstore, p: &str| xs.tree().peek(p).unwrap().perms.clone();
        let h = perms(&xs, "/local/domain/3");
        assert_eq!((h.owner(), perm_for_conn(3, &h) & perms::PERM_WRITE, perm_for_conn(3, &h) & perms::PERM_READ != 0), (0, 0, true), "n0 r3");
        assert_eq!(perms(&xs, "/local/domain/3/name").owner(), 0, "entries inherit the home's perms");
        assert_eq!(perms(&xs, "/local/domain/3/control/shutdown").owner(), 3);
        assert_eq!(perms(&xs, "/local/domain/3/data").owner(), 3);
        assert_eq!(perms(&xs, "/local/domain/3/control").owner(), 0);
        assert_eq!(perm_for_conn(4, &perms(&xs, "/local/domain/3")), 0, "another domain reads nothing");
    }

    #[test]
    fn the_domain_writes_only_its_writable_subtrees() {
        let mut xs = Xenstore::new();
        home(&mut xs);
        xs.introduce(3);
        let req = |xs: &mut Xenstore, payload: &[u8]| {
            let hdr = XsdSockmsg { type_: XS_WRITE, req_id: 1, tx_id: 0, len: payload.len() as u32 };
            let mut m = Vec::from(hdr.as_bytes());
            m.extend_from_slice(payload);
            let Verdict::Reply(r) = xs.handle_frame(3, &m).0 else { panic!() };
            XsdSockmsg::read_from_prefix(&r[0]).unwrap().0.type_
        };
        assert_eq!(req(&mut xs, b"data/hello\0world"), XS_WRITE);
        assert_eq!(req(&mut xs, b"control/shutdown\0"), XS_WRITE);
        assert_eq!(req(&mut xs, b"name\0evil"), XS_ERROR, "name is dom0's");
        assert_eq!(req(&mut xs, b"memory/target\x001"), XS_ERROR);
        assert_eq!(read(&mut xs, "/local/domain/3/name").unwrap(), b"web");
    }

    #[test]
    fn make_home_replaces_what_a_previous_domain_left() {
        let mut xs = Xenstore::new();
        write(&mut xs, "/local/domain/3/stale", b"x").unwrap();
        home(&mut xs);
        assert_eq!(read(&mut xs, "/local/domain/3/stale"), Err(String::from("ENOENT")));
    }

    #[test]
    fn ls_prints_xenstore_ls_lines_depth_first() {
        let mut xs = Xenstore::new();
        write(&mut xs, "/t/a", b"1").unwrap();
        write(&mut xs, "/t/a/b", b"two").unwrap();
        write(&mut xs, "/t/c", b"").unwrap();
        assert_eq!(ls(&mut xs, "/t").unwrap(), ["a = \"1\"", " b = \"two\"", "c = \"\""]);
        assert_eq!(ls(&mut xs, "/none"), Err(String::from("ENOENT")));
    }

    #[test]
    fn ls_line_escapes_and_cuts_like_xenstore_ls() {
        assert_eq!(ls_line(0, "k", Some(b"a\tb\\c\x01\x7f")), "k = \"a\\tb\\\\c\\001\\x7f\"");
        assert_eq!(ls_line(1, "k", None), " k:");
        let long = [b'x'; 100];
        let l = ls_line(0, "key", Some(&long));
        assert_eq!(l, format!("key = \"{}\\...\"", "x".repeat(80 - 8 - 3)));
        assert_eq!(ls_line(0, "key", Some(&[b'y'; 69])).len(), 3 + 4 + 69 + 1, "80 columns fit whole");
    }

    use crate::xenstore::perms;
}
