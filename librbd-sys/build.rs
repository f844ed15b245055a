//! Finds librbd and generates bindings for every function in the installed `rbd/librbd.h`
//! (search order: see `sys-build`). librados types are blocklisted here and re-exported from
//! librados-sys, so the two crates share one `rados_ioctx_t`. The header's version is emitted
//! as `librbd_1_N` cfgs so newer calls can be gated.
use std::fs;
use sys_build::Library;

fn main() {
    let lib = Library {
        prefix_env: "CEPH_PREFIX",
        pkg_config: "rbd",
        min_version: None,
        link: "rbd",
        header: "rbd/librbd.h",
        packages: "librbd-dev",
    };
    let dirs = lib.find();
    let builder = lib
        .builder(&dirs)
        .allowlist_function("rbd_.*")
        .allowlist_type("rbd_.*")
        .allowlist_var("LIBRBD_.*")
        .allowlist_var("RBD_.*")
        .blocklist_type("rados_.*")
        .raw_line("pub use librados_sys::{rados_t, rados_ioctx_t};");
    let path = lib.generate(builder);

    // Gate newer calls on the header's minor version: cfg librbd_1_N for every N up to it.
    let text = fs::read_to_string(&path).unwrap_or_default();
    let minor = const_value(&text, "LIBRBD_VER_MINOR").unwrap_or(0);
    for n in 0..=40u32 {
        println!("cargo::rustc-check-cfg=cfg(librbd_1_{n})");
        if n <= minor {
            println!("cargo:rustc-cfg=librbd_1_{n}");
        }
    }
}

/// Reads `pub const NAME: u32 = V;` out of the generated bindings.
fn const_value(text: &str, name: &str) -> Option<u32> {
    let pat = format!("pub const {name}: u32 = ");
    let start = text.find(&pat)? + pat.len();
    let end = start + text[start..].find(';')?;
    text[start..end].trim().parse().ok()
}
