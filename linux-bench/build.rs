//! Link the benchmark as a static, non-PIE Linux executable (ET_EXEC at
//! lld's default base, no interpreter, no relocations), only for the
//! bare-metal target: its code stays PIC (the target's default), which
//! links at any address, and `-no-pie` keeps Linux's binfmt_elf from
//! needing a loader to apply relocations.
fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    if target == "x86_64-unknown-none" {
        println!("cargo:rustc-link-arg-bins=-no-pie");
        println!("cargo:rustc-link-arg-bins=-zmax-page-size=0x1000");
        println!("cargo:rustc-link-arg-bins=-znoexecstack");
    }
}
