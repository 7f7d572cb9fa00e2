//! Link settings of the `nsconform` binary.
//!
//! Its segments are placed 2 MB apart (the linker's maximum page size), so that each
//! read-only one has whole huge pages to itself and can move into them at run time
//! (`src/huge_code.rs`). Only the layout of addresses changes, not the file.
fn main() {
    let target = |key: &str| std::env::var(key).unwrap_or_default();
    if target("CARGO_CFG_TARGET_OS") == "linux" && target("CARGO_CFG_TARGET_ARCH") == "x86_64" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,max-page-size=0x200000");
    }
}
