//! The read-only xl commands that gather state from the hypervisor and
//! dom0's guest table and print it through [`dom0_tools::xlfmt`]'s Xen
//! formats: `list -l`, `vcpu-list`, `top`, `info` and `uptime`.
//!
//! Invariant: nothing here changes a domain; each command reads what it
//! shows once (one getdomaininfo pass), so a row never mixes two moments.

use alloc::string::String;
use alloc::vec::Vec;
use dom0_tools::guests::Guests;
use dom0_tools::hv;
use dom0_tools::xlcfg;
use dom0_tools::xlfmt;
use pv_guest_kernel::console::Console;
use pv_guest_kernel::{hypercall, println, shared};
use xen_public::domctl::XenDomctlGetdomaininfo;

/// Every domain's getdomaininfo record, in id order (`only`: just that one).
pub fn domains(only: Option<u16>) -> Vec<XenDomctlGetdomaininfo> {
    let mut all = Vec::new();
    let mut batch = [XenDomctlGetdomaininfo::default(); 8];
    let mut first = 0u16;
    loop {
        let n = hv::domain_infos(first, &mut batch).unwrap_or(0);
        all.extend(batch[..n].iter().filter(|i| only.is_none_or(|d| d == i.domain)));
        let next = batch[..n].last().and_then(|l| l.domain.checked_add(1));
        match next {
            Some(next) if n == batch.len() => first = next,
            _ => return all,
        }
    }
}

/// Print what `f` writes, as one block.
fn print_with(f: impl FnOnce(&mut String) -> core::fmt::Result) {
    let mut s = String::new();
    let _ = f(&mut s);
    let _ = core::fmt::Write::write_str(&mut Console, &s);
}

/// `xl list -l [DOM]`: libxl's JSON of each domain's configuration.
pub fn list_long(guests: Option<&Guests>, name_of: &mut dyn FnMut(u16) -> String, only: Option<u16>) {
    let infos = domains(only);
    let names: Vec<String> = infos.iter().map(|i| name_of(i.domain)).collect();
    let specs: Vec<_> = infos.iter().map(|i| guests.and_then(|g| g.spec_of(i.domain))).collect();
    let disks: Vec<Vec<xlfmt::DiskConfig<'_>>> = specs
        .iter()
        .map(|s| {
            let c = s.and_then(|s| s.config.as_ref());
            c.map_or_else(Vec::new, |c| {
                c.disks
                    .iter()
                    .map(|d| xlfmt::DiskConfig {
                        target: d.target.as_deref().unwrap_or(""),
                        vdev: &d.vdev,
                        format: Some(d.format),
                        readwrite: d.access == xlcfg::DiskAccess::ReadWrite,
                    })
                    .collect()
            })
        })
        .collect();
    let nics: Vec<Vec<xlfmt::NicConfig<'_>>> = specs
        .iter()
        .map(|s| {
            let c = s.and_then(|s| s.config.as_ref());
            c.map_or_else(Vec::new, |c| {
                c.vifs
                    .iter()
                    .map(|v| xlfmt::NicConfig { devid: v.devid as i32, mac: v.mac.unwrap_or([0; 6]), ip: v.ip.as_deref(), bridge: Some(&v.bridge) })
                    .collect()
            })
        })
        .collect();
    let mut configs = Vec::new();
    for (k, info) in infos.iter().enumerate() {
        let mut d = xlfmt::DomainConfig::new(info.domain.into(), &names[k]);
        d.uuid = info.handle;
        d.max_vcpus = info.max_vcpu_id + 1;
        d.avail_vcpus = info.nr_online_vcpus;
        d.max_memkb = info.max_pages.saturating_mul(4);
        d.target_memkb = info.tot_pages * 4;
        if let Some(s) = specs[k] {
            d.max_memkb = s.max_pages * 4;
            d.target_memkb = s.pages * 4;
            d.kernel = Some(&s.kernel);
            d.cmdline = Some(&s.cmdline).filter(|c| !c.is_empty()).map(String::as_str);
            d.on_poweroff = s.on_poweroff;
            d.on_reboot = s.on_reboot;
            d.on_crash = s.on_crash;
            d.disks = &disks[k];
            d.nics = &nics[k];
        }
        configs.push(d);
    }
    print_with(|s| xlfmt::list_long(s, &configs));
}

/// A bitmap with the first `n` CPUs set: vCPUs here may run anywhere.
fn all_cpus(n: u32) -> Vec<u8> {
    (0..n.div_ceil(8)).map(|byte| if n >= (byte + 1) * 8 { 0xff } else { (1u8 << (n % 8)) - 1 }).collect()
}

/// `xl vcpu-list [DOM]`.
pub fn vcpu_list(name_of: &mut dyn FnMut(u16) -> String, only: Option<u16>) {
    let nr_cpus = hv::physinfo().map_or(1, |p| p.max_cpu_id + 1);
    let affinity = all_cpus(nr_cpus);
    println!("{}", xlfmt::VCPU_LIST_HEADER);
    for info in domains(only) {
        let name = name_of(info.domain);
        for vcpu in 0..=info.max_vcpu_id {
            let Ok(v) = hv::vcpu_info_of(info.domain, vcpu) else { continue };
            let row = xlfmt::VcpuRow {
                name: &name,
                domid: info.domain.into(),
                vcpuid: vcpu,
                online: v.online != 0,
                running: v.running != 0,
                blocked: v.blocked != 0,
                cpu: v.cpu,
                vcpu_time_ns: v.cpu_time,
                hard_affinity: &affinity,
                soft_affinity: &affinity,
            };
            print_with(|s| {
                xlfmt::vcpu_list_row(s, &row, nr_cpus as usize)?;
                s.push('\n');
                Ok(())
            });
        }
    }
}

/// `xl top`: one `xentop -b -i 1` snapshot.
pub fn top(name_of: &mut dyn FnMut(u16) -> String) {
    let infos = domains(None);
    let names: Vec<String> = infos.iter().map(|i| name_of(i.domain)).collect();
    let rows: Vec<xlfmt::TopDomain<'_>> = infos
        .iter()
        .zip(&names)
        .map(|(i, name)| xlfmt::TopDomain {
            name,
            flags: i.flags,
            cpu_ns: i.cpu_time,
            prev_cpu_ns: None,
            tot_pages: i.tot_pages,
            max_pages: i.max_pages,
            max_vcpu_id: i.max_vcpu_id,
            nets: 0,
            net_tx_bytes: 0,
            net_rx_bytes: 0,
            vbds: 0,
            vbd: None,
            ssid: i.ssidref,
        })
        .collect();
    let node = xlfmt::TopNode { total_pages: hv::physinfo().map_or(0, |p| p.total_pages), elapsed_us: 0 };
    print_with(|s| xlfmt::top_snapshot(s, &node, &rows));
}

/// The NUL-terminated text of a XENVER_* buffer.
fn text(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// `xl info`: physinfo and the XENVER_* answers.
pub fn info() {
    use xen_public::sysctl::*;
    use xen_public::version::*;
    let p = match hv::physinfo() {
        Ok(p) => p,
        Err(rc) => {
            println!("libxl: error: getting physinfo: {rc}");
            return;
        }
    };
    let ver = hypercall::xen_version();
    let mut extra = XenExtraversion::default();
    let mut caps = XenCapabilitiesInfo::default();
    let mut change = XenChangesetInfo::default();
    let mut cmd = XenCommandline::default();
    let mut compile = XenCompileInfo::default();
    let mut platform = XenPlatformParameters::default();
    hypercall::xen_version_op(&mut extra);
    hypercall::xen_version_op(&mut caps);
    hypercall::xen_version_op(&mut change);
    hypercall::xen_version_op(&mut cmd);
    hypercall::xen_version_op(&mut compile);
    hypercall::xen_version_op(&mut platform);
    let (extra, caps, change, cmd) = (text(&extra.0), text(&caps.0), text(&change.0), text(&cmd.0));
    let (cc, by, dom, date) = (text(&compile.compiler), text(&compile.compile_by), text(&compile.compile_domain), text(&compile.compile_date));
    let cap = |bit: u32| p.capabilities & bit != 0;
    let i = xlfmt::XlInfo {
        host: "dom0",
        release: env!("CARGO_PKG_VERSION"),
        version: "dom0-tools",
        machine: "x86_64",
        nr_cpus: p.nr_cpus,
        max_cpu_id: p.max_cpu_id,
        nr_nodes: p.nr_nodes,
        cores_per_socket: p.cores_per_socket,
        threads_per_core: p.threads_per_core,
        cpu_khz: p.cpu_khz,
        hw_cap: p.hw_cap,
        cap_pv: cap(XEN_SYSCTL_PHYSCAP_PV),
        cap_hvm: cap(XEN_SYSCTL_PHYSCAP_HVM),
        cap_hvm_directio: cap(XEN_SYSCTL_PHYSCAP_DIRECTIO),
        cap_hap: cap(XEN_SYSCTL_PHYSCAP_HAP),
        cap_shadow: cap(XEN_SYSCTL_PHYSCAP_SHADOW),
        cap_iommu_hap_pt_share: cap(XEN_SYSCTL_PHYSCAP_IOMMU_HAP_PT_SHARE),
        cap_vmtrace: cap(XEN_SYSCTL_PHYSCAP_VMTRACE),
        cap_vpmu: cap(XEN_SYSCTL_PHYSCAP_VPMU),
        cap_gnttab_v1: cap(XEN_SYSCTL_PHYSCAP_GNTTAB_V1),
        cap_gnttab_v2: cap(XEN_SYSCTL_PHYSCAP_GNTTAB_V2),
        total_pages: p.total_pages,
        free_pages: p.free_pages,
        outstanding_pages: p.outstanding_pages,
        sharing_freed_pages: 0,
        sharing_used_frames: 0,
        free_cpus: None,
        xen_major: (ver >> 16) as u32,
        xen_minor: (ver & 0xffff) as u32,
        xen_extra: &extra,
        xen_caps: &caps,
        scheduler: xlfmt::Scheduler::Credit,
        pagesize: 4096,
        virt_start: platform.virt_start,
        changeset: &change,
        commandline: &cmd,
        compiler: &cc,
        compile_by: &by,
        compile_domain: &dom,
        compile_date: &date,
        build_id: "",
    };
    print_with(|s| xlfmt::info(s, &i));
}

/// `xl uptime [-s] [DOM]`: dom0's is the host's; a guest's runs from its
/// start.
pub fn uptime(guests: Option<&Guests>, name_of: &mut dyn FnMut(u16) -> String, short: bool, only: Option<u16>) {
    let now_s = (shared::now_ns().unwrap_or(0) / 1_000_000_000) as u32;
    let of_day = (shared::wallclock_seconds().unwrap_or(0) % 86400) as u32;
    if !short {
        println!("{}", xlfmt::UPTIME_HEADER);
    }
    for info in domains(only) {
        let up = if info.domain == 0 { Some(now_s) } else { guests.and_then(|g| g.uptime_ns(info.domain)).map(|ns| (ns / 1_000_000_000) as u32) };
        let Some(up) = up else { continue };
        let name = name_of(info.domain);
        print_with(|s| {
            if short {
                xlfmt::uptime_short_row(s, of_day, &name, info.domain.into(), up)?;
            } else {
                xlfmt::uptime_row(s, &name, info.domain.into(), up)?;
            }
            s.push('\n');
            Ok(())
        });
    }
}

/// `xl dmesg [-c]`: the hypervisor's console history, read as libxl's
/// `libxl_xen_console_read_line` does (incremental XEN_SYSCTL_readconsole
/// calls from index 0 until one returns nothing; `clear` on each, as
/// libxl passes it). At most 256 reads, so a console that keeps growing
/// cannot hold the shell.
pub fn dmesg(clear: bool) {
    let mut buf = alloc::vec![0u8; 4096];
    let mut index = 0;
    for _ in 0..256 {
        match hv::readconsole(clear, true, index, &mut buf) {
            Ok((0, _)) => return,
            Ok((n, next)) => {
                index = next;
                let _ = core::fmt::Write::write_str(&mut Console, &String::from_utf8_lossy(&buf[..n as usize]));
            }
            Err(rc) => {
                println!("libxl: error: reading the hypervisor console: {rc} ({})", xen_public::errno::name(rc));
                return;
            }
        }
    }
}
