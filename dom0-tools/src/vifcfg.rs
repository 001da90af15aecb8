//! The toolstack's side of a virtual network interface, as libxl does it:
//! the xenstore nodes written for a vif (`libxl__device_nic_add`,
//! `libxl__set_xenstore_nic` in libxl_nic.c, and the generic nodes of
//! `libxl__device_generic_add`), the MAC libxl makes up when a config names
//! none (Xen's OUI 00:16:3e), and the text forms `xl network-list` and the
//! nodes use.
//!
//! Invariant: pure functions of their arguments; every vif gets the nodes
//! libxl writes for it, and a made-up MAC is always a locally unique,
//! unicast address in Xen's OUI.
#![forbid(unsafe_code)]

use crate::xlcfg::{VifRate, VifSpec};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// Xen's organisationally unique identifier (libxl_nic.c
/// `libxl__device_nic_setdefault`).
pub const XEN_OUI: [u8; 3] = [0x00, 0x16, 0x3e];

/// What the toolstack knows of one vif.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VifNodes {
    /// The frontend domain.
    pub domid: u16,
    /// `devid` (the vif's index, `handle`).
    pub devid: u32,
    /// `mac=`, or the one made up.
    pub mac: [u8; 6],
    /// `bridge=`.
    pub bridge: String,
    /// `ip=`.
    pub ip: Option<String>,
    /// `rate=`.
    pub rate: Option<VifRate>,
    /// `mtu=`.
    pub mtu: u32,
    /// `script=`.
    pub script: String,
    /// `trusted` / `untrusted`.
    pub trusted: bool,
}

/// A MAC in Xen's OUI from 24 bits of `seed`, as libxl draws its last
/// three octets at random.
pub fn made_up_mac(seed: u64) -> [u8; 6] {
    let b = seed.to_le_bytes();
    [XEN_OUI[0], XEN_OUI[1], XEN_OUI[2], b[0] & 0x7f, b[1], b[2]]
}

/// `LIBXL_MAC_FMT`: six lower-case two-digit octets.
pub fn mac_text(mac: &[u8; 6]) -> String {
    format!("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5])
}

impl VifNodes {
    /// The nodes for `spec` of domain `domid`, with `mac` where the spec
    /// named none.
    pub fn from_spec(domid: u16, spec: &VifSpec, mac: [u8; 6]) -> VifNodes {
        VifNodes {
            domid,
            devid: spec.devid,
            mac: spec.mac.unwrap_or(mac),
            bridge: spec.bridge.clone(),
            ip: spec.ip.clone(),
            rate: spec.rate,
            mtu: spec.mtu,
            script: spec.script.clone(),
            trusted: spec.trusted,
        }
    }

    /// `/local/domain/0/backend/vif/<domid>/<devid>`.
    pub fn backend_path(&self) -> String {
        format!("/local/domain/0/backend/vif/{}/{}", self.domid, self.devid)
    }

    /// `/local/domain/<domid>/device/vif/<devid>`.
    pub fn frontend_path(&self) -> String {
        format!("/local/domain/{}/device/vif/{}", self.domid, self.devid)
    }

    /// The backend's nodes, in libxl's order.
    pub fn backend_nodes(&self) -> Vec<(&'static str, String)> {
        let s = String::from;
        let mut v = alloc::vec![
            ("frontend", self.frontend_path()),
            ("frontend-id", format!("{}", self.domid)),
            ("online", s("1")),
            ("state", s("1")),
            ("script", format!("/etc/xen/scripts/{}", self.script)),
            ("mac", mac_text(&self.mac)),
        ];
        if let Some(ip) = &self.ip {
            v.push(("ip", ip.clone()));
        }
        if let Some(r) = &self.rate {
            v.push(("rate", format!("{},{}", r.bytes_per_interval, r.interval_usecs)));
        }
        v.push(("mtu", format!("{}", self.mtu)));
        v.push(("bridge", self.bridge.clone()));
        v.push(("handle", format!("{}", self.devid)));
        v.push(("type", s("vif")));
        v.push(("hotplug-status", String::new()));
        v
    }

    /// The frontend's nodes the frontend owns, in libxl's order.
    pub fn frontend_nodes(&self) -> Vec<(&'static str, String)> {
        alloc::vec![
            ("backend", self.backend_path()),
            ("backend-id", String::from("0")),
            ("state", String::from("1")),
            ("handle", format!("{}", self.devid)),
            ("mac", mac_text(&self.mac)),
            ("trusted", String::from(if self.trusted { "1" } else { "0" })),
        ]
    }

    /// The frontend's nodes it may read but not write (libxl's `ro_front`).
    pub fn frontend_ro_nodes(&self) -> Vec<(&'static str, String)> {
        alloc::vec![("mtu", format!("{}", self.mtu))]
    }

    /// The IPv4 address of `ip=` (its first word, as the vif-bridge script
    /// reads it), if it is one.
    pub fn ipv4(&self) -> Option<[u8; 4]> {
        parse_ipv4(self.ip.as_deref()?.split_whitespace().next()?)
    }
}

/// A dotted-quad IPv4 address.
pub fn parse_ipv4(s: &str) -> Option<[u8; 4]> {
    let mut out = [0u8; 4];
    let mut parts = s.split('.');
    for o in &mut out {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *o = p.parse().ok()?;
    }
    parts.next().is_none().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> VifSpec {
        let cfg = format!("name='t'\nkernel='k'\nvif=['{text}']\n");
        crate::xlcfg::parse("t.cfg", cfg.as_bytes()).unwrap().0.vifs.remove(0)
    }

    fn get(nodes: &[(&'static str, String)], key: &str) -> Option<String> {
        nodes.iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone())
    }

    #[test]
    fn libxl_nic_nodes_carry_mac_bridge_ip_rate_and_handle() {
        let n = VifNodes::from_spec(3, &spec("mac=00:16:3e:00:00:0b, bridge=xenbr0, ip=10.0.2.11, rate=10Mb/s"), [0; 6]);
        let b = n.backend_nodes();
        assert_eq!(get(&b, "frontend").as_deref(), Some("/local/domain/3/device/vif/0"));
        assert_eq!(get(&b, "mac").as_deref(), Some("00:16:3e:00:00:0b"));
        assert_eq!(get(&b, "bridge").as_deref(), Some("xenbr0"));
        assert_eq!(get(&b, "ip").as_deref(), Some("10.0.2.11"));
        // 10 Mbit/s over libxlu's default 50 ms: 62500 bytes per interval.
        assert_eq!(get(&b, "rate").as_deref(), Some("62500,50000"));
        assert_eq!(get(&b, "handle").as_deref(), Some("0"));
        assert_eq!(get(&b, "type").as_deref(), Some("vif"));
        assert_eq!(get(&b, "script").as_deref(), Some("/etc/xen/scripts/vif-bridge"));
        let f = n.frontend_nodes();
        assert_eq!(get(&f, "backend").as_deref(), Some("/local/domain/0/backend/vif/3/0"));
        assert_eq!(get(&f, "mac").as_deref(), Some("00:16:3e:00:00:0b"));
        assert_eq!(get(&n.frontend_ro_nodes(), "mtu").as_deref(), Some("1500"));
        assert_eq!(n.ipv4(), Some([10, 0, 2, 11]));
    }

    #[test]
    fn a_vif_without_ip_or_rate_writes_neither_node() {
        let n = VifNodes::from_spec(1, &spec("bridge=xenbr0"), made_up_mac(0x1234_5678));
        let b = n.backend_nodes();
        assert_eq!(get(&b, "ip"), None);
        assert_eq!(get(&b, "rate"), None);
        assert_eq!(n.ipv4(), None);
    }

    #[test]
    fn a_made_up_mac_is_unicast_and_local_to_xens_oui() {
        for seed in [0u64, 1, u64::MAX, 0xdead_beef] {
            let m = made_up_mac(seed);
            assert_eq!(m[..3], XEN_OUI);
            assert_eq!(m[3] & 0x80, 0, "libxl keeps the top bit of octet 4 clear");
            assert_eq!(m[0] & 1, 0, "unicast");
        }
        assert_eq!(mac_text(&made_up_mac(0x00ab_cdef)), "00:16:3e:6f:cd:ab");
    }

    #[test]
    fn only_dotted_quads_are_ipv4() {
        assert_eq!(parse_ipv4("10.0.2.15"), Some([10, 0, 2, 15]));
        for bad in ["10.0.2", "10.0.2.256", "10.0.2.1.1", "a.b.c.d", "", "10..2.1", "1000.0.0.1"] {
            assert_eq!(parse_ipv4(bad), None, "{bad}");
        }
    }
}
