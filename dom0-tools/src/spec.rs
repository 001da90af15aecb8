//! What dom0 builds a guest from: a [`GuestSpec`], made from an xl config
//! ([`GuestSpec::from_config`]) or for the demo guest ([`GuestSpec::demo`]),
//! and the action xl takes when a guest shuts down for a given reason.
//!
//! Invariant: a spec that [`GuestSpec::from_config`] returns is buildable
//! by this dom0 as far as the config can say: its memory is within the
//! builder's limit ([`MAX_PAGES`]), its kernel and its ramdisk (if any) are
//! files of dom0's; what is wrong is an error naming the key, not ignored.
#![forbid(unsafe_code)]

use crate::files::Files;
use crate::xlcfg::{Action, DomainConfig};
use alloc::format;
use alloc::string::String;
use alloc::string::ToString;
use alloc::vec::Vec;

/// Pages of the demo guest: 4 MiB.
pub const DEMO_PAGES: u64 = 1024;

/// P2M entries of a new domain's initial region that dom0's builder holds
/// while it builds (256 KiB of dom0's 2 MiB heap): the region, whose frames
/// the builder writes and maps, may span at most this many pages (128 MiB,
/// room for Linux: its kernel spans 74 MiB from `VIRT_BASE`). The rest of
/// the P2M goes to the domain a page at a time, and a compressed kernel is
/// decompressed in the domain's own memory (`staging`), never on the heap.
pub const REGION_P2M_BUDGET: u64 = 32768;
/// The guest kernel's span from `VIRT_BASE` and its ramdisk, which
/// [`MAX_PAGES`] allows for: 80 MiB (Debian's generic 6.1 kernel spans
/// 74 MiB, its busybox initramfs 2 MiB; the demo guest a fraction of that).
pub const KERNEL_ALLOWANCE: u64 = 80 << 20;
/// What the initial region holds besides the kernel and the P2M, rounded
/// up to 1 MiB (`xg_dom_x86.c`'s order): start_info, xenstore and console
/// pages (3), bootstrap page tables (at most 67 for a 128 MiB region at
/// `VIRT_BASE`: L4, L3, L2 and 64 L1), the stack page and the 512 KiB of
/// padding (128 pages) before the region's 4 MiB boundary: 199 pages.
pub const REGION_OVERHEAD: u64 = 1 << 20;
/// The largest domU dom0 builds (pages): the largest whose P2M (8 bytes a
/// page), beside a kernel of [`KERNEL_ALLOWANCE`] and [`REGION_OVERHEAD`],
/// fits an initial region of [`REGION_P2M_BUDGET`] pages, in whole MiB:
/// (128 MiB - 80 MiB - 1 MiB) / 8 = 6160384 pages = 24064 MiB. Dom0's cost
/// does not grow past the budget; the machine's free memory is checked at
/// build time (ENOMEM, as `xc_dom_boot_mem_init`).
pub const MAX_PAGES: u64 = max_pages_for(KERNEL_ALLOWANCE);

/// The largest domain (pages, whole MiB) whose initial region fits
/// [`REGION_P2M_BUDGET`] beside a kernel of `kernel_bytes`.
pub const fn max_pages_for(kernel_bytes: u64) -> u64 {
    let p2m_bytes = (REGION_P2M_BUDGET * 4096).saturating_sub(kernel_bytes).saturating_sub(REGION_OVERHEAD);
    p2m_bytes / 8 / 256 * 256
}

/// How to build a guest: what an xl config says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestSpec {
    /// The domain's name (xenstore `name`); empty: `guest<domid>`.
    pub name: String,
    /// The kernel: a file of dom0's.
    pub kernel: String,
    /// The ramdisk (`start_info.mod_start`): a file of dom0's, if any.
    pub ramdisk: Option<String>,
    /// Its command line (after the `domid=N` the builder puts first).
    pub cmdline: String,
    /// Memory at start, in pages.
    pub pages: u64,
    /// Its maximum memory, in pages (at least `pages`).
    pub max_pages: u64,
    /// vCPUs.
    pub vcpus: u32,
    /// Action on poweroff.
    pub on_poweroff: Action,
    /// Action on reboot.
    pub on_reboot: Action,
    /// Action on crash.
    pub on_crash: Action,
    /// `TSC_MODE_*` for XEN_DOMCTL_settscinfo (xl.cfg `tsc_mode`).
    pub tsc_mode: u32,
    /// The config it came from (for `xl list -l`), if any.
    pub config: Option<DomainConfig>,
}

impl GuestSpec {
    /// The demo guest with `extra` on its command line and xl's default
    /// actions (the bare `create [ARGS]` of the shell and the self-tests).
    pub fn demo(extra: &str) -> GuestSpec {
        GuestSpec {
            name: String::new(),
            kernel: String::from(crate::files::DEMO_KERNEL),
            ramdisk: None,
            cmdline: String::from(extra),
            pages: DEMO_PAGES,
            max_pages: DEMO_PAGES,
            vcpus: 1,
            on_poweroff: Action::Destroy,
            on_reboot: Action::Restart,
            on_crash: Action::Destroy,
            tsc_mode: xen_public::domctl::TSC_MODE_DEFAULT,
            config: None,
        }
    }

    /// A spec from a parsed config `c` of file `file`, for a builder that
    /// builds at most `max_pages` pages; `has_kernel` says whether a
    /// file of dom0's boot module (kernel or ramdisk) exists. The error names the file and the key.
    pub fn from_config(file: &str, c: &DomainConfig, max_pages: u64, has_kernel: impl Fn(&str) -> bool) -> Result<GuestSpec, String> {
        let err = |key: &str, msg: String| Err(format!("{file}: {key}: {msg}"));
        let pages = c.memory.saturating_mul(256);
        let max_mib = max_pages / 256;
        if pages == 0 {
            return err("memory", String::from("must be at least 1 MiB"));
        }
        if pages > max_pages {
            return err("memory", format!("{} MiB is more than this dom0's builder can build ({max_mib} MiB)", c.memory));
        }
        if !has_kernel(&c.kernel) {
            return err("kernel", format!("\"{}\": no such file in dom0's boot module (try `ls`)", c.kernel));
        }
        if !valid_name(&c.name) {
            return err("name", format!("{:?}: a domain name here is 1-{MAX_NAME} printable ASCII characters, not Domain-0", c.name));
        }
        // The builder puts `domid=N ` (at most 12 bytes) first.
        if c.cmdline.len() > xen_public::MAX_GUEST_CMDLINE - 13 {
            return err("cmdline", format!("{} bytes: more than start_info's command line holds", c.cmdline.len()));
        }
        if let Some(r) = &c.ramdisk
            && !has_kernel(r)
        {
            return err("ramdisk", format!("\"{r}\": no such file in dom0's boot module (try `ls`)"));
        }
        Ok(GuestSpec {
            name: c.name.clone(),
            kernel: c.kernel.clone(),
            ramdisk: c.ramdisk.clone(),
            cmdline: c.cmdline.clone(),
            pages,
            max_pages: c.maxmem.saturating_mul(256).max(pages),
            vcpus: c.vcpus.max(1),
            on_poweroff: c.on_poweroff,
            on_reboot: c.on_reboot,
            on_crash: c.on_crash,
            tsc_mode: c.tsc_mode,
            config: Some(c.clone()),
        })
    }

    /// The action for shutdown `reason` (SHUTDOWN_*), as xl's
    /// `handle_domain_death`: poweroff, reboot and crash as configured,
    /// watchdog and unknown reasons destroy, soft reset soft-resets, and a
    /// suspended domain is left alone.
    pub fn action(&self, reason: u32) -> Action {
        match reason {
            xen_public::SHUTDOWN_POWEROFF => self.on_poweroff,
            xen_public::SHUTDOWN_REBOOT => self.on_reboot,
            xen_public::SHUTDOWN_CRASH => self.on_crash,
            xen_public::SHUTDOWN_SUSPEND => Action::Preserve,
            xen_public::sched::SHUTDOWN_SOFT_RESET => Action::SoftReset,
            _ => Action::Destroy,
        }
    }
}

/// The suffix xl's `preserve_domain` gives a domain kept by
/// `rename-restart`: `strftime("-%Y%m%dT%H%MZ")` of the UTC time
/// `unix_secs`.
pub fn preserve_suffix(unix_secs: u64) -> String {
    let (days, secs) = (unix_secs / 86400, unix_secs % 86400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("-{year:04}{month:02}{day:02}T{:02}{:02}Z", secs / 3600, secs % 3600 / 60)
}

/// A random-looking version-4 UUID from `seed` (splitmix64; dom0 has no
/// entropy source, so the seed is the clock and the domid). libxl gives
/// each domain one (`libxl_uuid_generate`).
pub fn uuid_from_seed(seed: u64) -> [u8; 16] {
    let mut x = seed;
    let mut next = || {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut u = [0u8; 16];
    u[..8].copy_from_slice(&next().to_le_bytes());
    u[8..].copy_from_slice(&next().to_le_bytes());
    u[6] = (u[6] & 0x0f) | 0x40; // version 4
    u[8] = (u[8] & 0x3f) | 0x80; // RFC 4122 variant
    u
}

/// Longest domain name (Xen's xenstore path rules allow more; the shell's
/// tables do not).
pub const MAX_NAME: usize = 64;

/// Whether `name` may name a domain: printable ASCII (no control
/// characters to spoof the shell's tables), not dom0's name.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME && name.bytes().all(|b| (0x20..0x7f).contains(&b)) && name != "Domain-0"
}

/// `xl create FILE KEY=VALUE...`: read config `file` from `files`, parse
/// it with the command line's `extras` and make its spec for a builder of
/// at most `max_pages`; with the warnings to print. Errors read as xl's.
pub fn load(files: &Files<'_>, file: &str, extras: &[&str], max_pages: u64) -> Result<(GuestSpec, Vec<String>), String> {
    let text = files.get(file).ok_or_else(|| format!("Failed to read config file: {file}: No such file or directory"))?;
    let (c, warnings) = crate::xlcfg::parse_with_extra(file, text, extras).map_err(|e| e.to_string())?;
    let spec = GuestSpec::from_config(file, &c, max_pages, |k| files.module_file(k).is_some())?;
    let mut notes: Vec<String> = warnings.iter().map(|w| w.to_string()).collect();
    if c.maxvcpus > c.vcpus {
        notes.push(format!("{file}: maxvcpus: {} vCPUs built, not {} (no vCPU hot-plug here) (warning)", c.vcpus, c.maxvcpus));
    }
    Ok((spec, notes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xlcfg;

    fn config(text: &str) -> DomainConfig {
        xlcfg::parse("t.cfg", text.as_bytes()).unwrap().0
    }

    #[test]
    fn a_config_becomes_a_spec_with_pages_and_actions() {
        let c = config("name = 'web'\nkernel = 'guest'\nmemory = 8\nmaxmem = 12\nextra = 'xs'\non_reboot = 'destroy'\n");
        let s = GuestSpec::from_config("t.cfg", &c, 4096, |k| k == "guest").unwrap();
        assert_eq!((s.name.as_str(), s.pages, s.max_pages, s.vcpus), ("web", 2048, 3072, 1));
        assert_eq!(s.cmdline, "xs");
        assert_eq!(s.action(xen_public::SHUTDOWN_REBOOT), Action::Destroy);
        assert_eq!(s.action(xen_public::SHUTDOWN_POWEROFF), Action::Destroy);
        assert_eq!(s.action(xen_public::SHUTDOWN_WATCHDOG), Action::Destroy, "xl: on_watchdog defaults to destroy");
        assert_eq!(s.action(xen_public::SHUTDOWN_SUSPEND), Action::Preserve, "xl leaves a suspended domain");
    }

    /// A domU's layout as dom0's builder computes it, at the demo guest's
    /// `VIRT_BASE`, for a kernel of `kernel` bytes.
    fn domu(kernel: u64, nr_pages: u64) -> Result<xen_dombuild::layout::DomainLayout, xen_dombuild::layout::LayoutError> {
        let base = pv_guest_kernel::notes::VIRT_BASE;
        let inp = xen_dombuild::layout::LayoutInput {
            virt_base: base,
            kernel_start: base,
            kernel_end: base + kernel,
            initrd_len: 0,
            nr_pages,
            is_domu: true,
            p2m_base: None,
        };
        xen_dombuild::layout::compute(&inp)
    }

    #[test]
    fn the_largest_domain_keeps_its_initial_region_within_dom0s_build_budget() {
        assert_eq!(MAX_PAGES, 6_160_384, "24064 MiB");
        assert_eq!(MAX_PAGES % 256, 0, "whole MiB");
        let l = domu(KERNEL_ALLOWANCE, MAX_PAGES).unwrap();
        assert!(l.region_pages() <= REGION_P2M_BUDGET, "{} region pages", l.region_pages());
        // One MiB more of P2M would not fit beside the largest kernel.
        assert!(domu(KERNEL_ALLOWANCE, MAX_PAGES + (1 << 20) / 8).unwrap().region_pages() > REGION_P2M_BUDGET);
        // A bigger kernel leaves a smaller limit, still within the budget.
        let k = 90 << 20;
        let l = domu(k, max_pages_for(k)).unwrap();
        assert!(max_pages_for(k) < MAX_PAGES && l.region_pages() <= REGION_P2M_BUDGET);
        assert_eq!(max_pages_for(u64::MAX), 0, "a kernel past the budget leaves nothing, without overflow");
    }

    #[test]
    fn domains_of_64_to_256_mib_need_far_less_than_the_budget() {
        for mib in [64u64, 128, 256] {
            let l = domu(0x40_000, mib * 256).unwrap();
            // The P2M (2 KiB per MiB) and what follows fit the first 4 MiB.
            assert_eq!(l.region_pages(), 1024, "{mib} MiB");
        }
    }

    #[test]
    fn what_the_builder_cannot_build_is_an_error_naming_the_key() {
        let big = config("name = 'big'\nkernel = 'guest'\nmemory = 64\n");
        assert_eq!(
            GuestSpec::from_config("t.cfg", &big, 4096, |_| true),
            Err(String::from("t.cfg: memory: 64 MiB is more than this dom0's builder can build (16 MiB)"))
        );
        let missing = config("name = 'x'\nkernel = '/boot/vmlinuz'\nmemory = 4\n");
        let mut b = big.clone();
        b.memory = 256;
        assert_eq!(GuestSpec::from_config("t.cfg", &b, MAX_PAGES, |_| true).map(|s| s.pages), Ok(65536), "256 MiB builds");
        b.memory = 24065;
        assert_eq!(
            GuestSpec::from_config("t.cfg", &b, MAX_PAGES, |_| true),
            Err(String::from("t.cfg: memory: 24065 MiB is more than this dom0's builder can build (24064 MiB)"))
        );
        assert!(GuestSpec::from_config("t.cfg", &missing, 4096, |k| k == "guest").unwrap_err().starts_with("t.cfg: kernel: "));
        let rd = config("name = 'x'\nkernel = 'guest'\nmemory = 4\nramdisk = 'initrd'\n");
        assert!(GuestSpec::from_config("t.cfg", &rd, 4096, |k| k == "guest").unwrap_err().starts_with("t.cfg: ramdisk: \"initrd\": no such file"));
        assert_eq!(
            GuestSpec::from_config("t.cfg", &rd, 4096, |_| true).map(|s| s.ramdisk),
            Ok(Some(String::from("initrd"))),
            "a ramdisk of dom0's is loaded"
        );
    }

    #[test]
    fn names_that_could_spoof_the_tables_or_dom0_are_refused() {
        for bad in ["Domain-0", "a\u{1b}[2Kb", "line\nbreak", ""] {
            let mut c = config("name = 'x'\nkernel = 'guest'\nmemory = 4\n");
            c.name = String::from(bad);
            assert!(GuestSpec::from_config("t.cfg", &c, 4096, |_| true).unwrap_err().starts_with("t.cfg: name: "), "{bad:?}");
        }
        assert!(valid_name("web server 2"));
        assert!(!valid_name(&"n".repeat(MAX_NAME + 1)));
    }

    #[test]
    fn uuids_are_version_4_and_differ_by_seed() {
        let (a, b) = (uuid_from_seed(1), uuid_from_seed(2));
        assert_ne!(a, b);
        assert_eq!((a[6] >> 4, a[8] >> 6), (4, 2), "version 4, RFC 4122 variant");
    }

    #[test]
    fn preserve_suffix_is_xl_strftime_format_in_utc() {
        assert_eq!(preserve_suffix(0), "-19700101T0000Z");
        assert_eq!(preserve_suffix(951_782_400), "-20000229T0000Z", "a leap day");
        assert_eq!(preserve_suffix(1_796_259_599), "-20261203T0059Z");
    }

    #[test]
    fn the_demo_spec_has_xl_default_actions() {
        let s = GuestSpec::demo("spin");
        assert_eq!((s.on_poweroff, s.on_reboot, s.on_crash), (Action::Destroy, Action::Restart, Action::Destroy));
        assert_eq!(s.action(xen_public::SHUTDOWN_CRASH), Action::Destroy);
    }
}
