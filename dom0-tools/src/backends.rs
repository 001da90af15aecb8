//! What dom0's split-driver backends (`vbd.rs` for blkback, `vif.rs` for
//! netback) do the same way around their xenbus machines: finding a
//! device by (domid, devid), routing a watch event to the device whose
//! token it carries, `xl *-detach`, forgetting a dead frontend's devices,
//! and libxl's path cleanup once a domain's last device of a class is
//! gone.
//!
//! Pure (host-tested). Invariant: after [`forget_domain`], no node under
//! `/local/domain/0/{backend,error/backend}/<class>/<domid>` is left, and
//! no directory it emptied above it either (up to `/local/domain`).
#![forbid(unsafe_code)]
// The users (vbd.rs, vif.rs) are target-only; on the host only the tests use it.
#![cfg_attr(not(target_os = "none"), allow(dead_code))]

use crate::xenstore::{Xenstore, client};
use alloc::format;
use backend_drivers::xenbus_backend::BackEvent;

/// A set of devices of one class, each driven by its own xenbus machine.
pub(crate) trait DeviceSet {
    /// What `BackEvent::MediaReady` carries for this class.
    type Media;

    /// How many devices there are (indices `0..count()`).
    fn count(&self) -> usize;
    /// Device `k`'s frontend domain and devid.
    fn ids(&self, k: usize) -> (u16, u32);
    /// Device `k`'s watch token.
    fn token(&self, k: usize) -> &str;
    /// Feed `ev` to device `k`'s machine and carry out what it asks.
    fn step(&mut self, xs: &mut Xenstore, k: usize, ev: BackEvent<Self::Media>);
    /// Drop the devices whose machines are done, with their nodes.
    fn sweep(&mut self, xs: &mut Xenstore);

    /// The index of `devid` of `domid`.
    fn find(&self, domid: u16, devid: u32) -> Option<usize> {
        (0..self.count()).find(|&k| self.ids(k) == (domid, devid))
    }

    /// `xl *-detach`: ask the frontend to close (or, with `force`, go at
    /// once). False if there is no such device.
    fn detach(&mut self, xs: &mut Xenstore, domid: u16, devid: u32, force: bool) -> bool {
        let Some(k) = self.find(domid, devid) else { return false };
        self.step(xs, k, BackEvent::Detach { force });
        self.sweep(xs);
        true
    }

    /// The frontend domain is going: disconnect and forget its devices.
    fn frontend_died(&mut self, xs: &mut Xenstore, domid: u16) {
        for k in 0..self.count() {
            if self.ids(k).0 == domid {
                self.step(xs, k, BackEvent::FrontendDied);
            }
        }
        self.sweep(xs);
    }

    /// A watch event with `token`: whether it was one of these devices'
    /// (then its machine has seen it). No sweep: the caller sweeps once
    /// after routing a batch.
    fn route_event(&mut self, xs: &mut Xenstore, token: &str) -> bool {
        let Some(k) = (0..self.count()).find(|&k| self.token(k) == token) else { return false };
        self.step(xs, k, BackEvent::FrontendChanged);
        true
    }
}

/// A domain's last device of `class` (`vbd`, `vif`) is gone: remove its
/// backend and error directories, and the directories that leaves empty,
/// as libxl's `libxl__xs_path_cleanup` does.
pub fn forget_domain(xs: &mut Xenstore, class: &str, domid: u16) {
    for dir in ["backend", "error/backend"] {
        let _ = client::rm(xs, &format!("/local/domain/0/{dir}/{class}/{domid}"));
        rm_empty_parents(xs, &format!("/local/domain/0/{dir}/{class}"));
    }
}

/// Remove `dir` and each parent in turn, stopping at the first that has
/// children or at `/local/domain` (dom0's home exists only while something
/// lives in it).
pub fn rm_empty_parents(xs: &mut Xenstore, dir: &str) {
    let mut at = dir;
    while at.len() > "/local/domain".len() && client::directory(xs, at).is_ok_and(|c| c.is_empty()) {
        let _ = client::rm(xs, at);
        at = at.rsplit_once('/').map_or("", |(parent, _)| parent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;
    use alloc::vec::Vec;

    /// Devices that record what their machines were fed.
    struct Fake {
        devs: Vec<(u16, u32, String, bool)>,
        fed: Vec<(usize, String)>,
    }

    impl DeviceSet for Fake {
        type Media = ();
        fn count(&self) -> usize {
            self.devs.len()
        }
        fn ids(&self, k: usize) -> (u16, u32) {
            (self.devs[k].0, self.devs[k].1)
        }
        fn token(&self, k: usize) -> &str {
            &self.devs[k].2
        }
        fn step(&mut self, _: &mut Xenstore, k: usize, ev: BackEvent<()>) {
            let name = match ev {
                BackEvent::Detach { force: true } => "detach -f",
                BackEvent::Detach { force: false } => "detach",
                BackEvent::FrontendDied => "died",
                BackEvent::FrontendChanged => "changed",
                _ => "other",
            };
            self.devs[k].3 = name != "changed";
            self.fed.push((k, name.into()));
        }
        fn sweep(&mut self, _: &mut Xenstore) {
            self.devs.retain(|d| !d.3);
        }
    }

    fn fake() -> Fake {
        let d = |domid, devid, t: &str| (domid, devid, String::from(t), false);
        Fake { devs: alloc::vec![d(1, 0, "vif1-0"), d(2, 0, "vif2-0"), d(2, 1, "vif2-1")], fed: Vec::new() }
    }

    #[test]
    fn detach_finds_the_device_by_domid_and_devid_and_an_unknown_one_is_refused() {
        let (mut xs, mut f) = (Xenstore::new(), fake());
        assert!(!f.detach(&mut xs, 2, 7, false), "no device 7 of d2");
        assert!(f.fed.is_empty());
        assert!(f.detach(&mut xs, 2, 1, true));
        assert_eq!(f.fed, [(2, String::from("detach -f"))]);
        assert_eq!(f.count(), 2, "swept");
    }

    #[test]
    fn a_dead_frontend_takes_all_its_devices_and_no_other_domains() {
        let (mut xs, mut f) = (Xenstore::new(), fake());
        f.frontend_died(&mut xs, 2);
        assert_eq!(f.fed, [(1, String::from("died")), (2, String::from("died"))]);
        assert_eq!(f.devs.iter().map(|d| d.0).collect::<Vec<_>>(), [1]);
    }

    #[test]
    fn a_watch_event_goes_to_the_device_with_its_token_only() {
        let (mut xs, mut f) = (Xenstore::new(), fake());
        assert!(f.route_event(&mut xs, "vif2-1"));
        assert!(!f.route_event(&mut xs, "vif9-9"), "another user's token is not ours");
        assert!(!f.route_event(&mut xs, "vif2"), "a prefix of a token is not the token");
        assert_eq!(f.fed, [(2, String::from("changed"))]);
    }

    fn exists(xs: &mut Xenstore, p: &str) -> bool {
        client::directory(xs, p).is_ok()
    }

    #[test]
    fn forgetting_a_domain_removes_its_dirs_and_the_parents_it_emptied_as_libxl_path_cleanup() {
        let mut xs = Xenstore::new();
        for p in ["backend/vif/3/0/state", "error/backend/vif/3/0/error", "backend/vif/4/0/state", "name"] {
            client::write(&mut xs, &format!("/local/domain/0/{p}"), b"x").unwrap();
        }
        forget_domain(&mut xs, "vif", 3);
        assert!(!exists(&mut xs, "/local/domain/0/backend/vif/3"));
        assert!(exists(&mut xs, "/local/domain/0/backend/vif/4"), "another domain's vif stays");
        assert!(!exists(&mut xs, "/local/domain/0/error"), "error/backend/vif emptied up to dom0's home");
        forget_domain(&mut xs, "vif", 4);
        assert!(!exists(&mut xs, "/local/domain/0/backend"));
        assert!(exists(&mut xs, "/local/domain/0"), "dom0's home has its name: it stays");
    }
}
