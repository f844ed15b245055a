//! Finds librbd and generates bindings for every function in the installed `rbd/librbd.h`.
//! librados types are blocklisted here and re-exported from librados-sys, so the two crates
//! share one `rados_ioctx_t`. The header's version is emitted as `librbd_1_N` cfgs so newer
//! calls can be gated.
use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=CEPH_PREFIX");
    println!("cargo:rerun-if-changed=wrapper.h");
    let mut include_dirs: Vec<PathBuf> = Vec::new();

    if let Ok(prefix) = env::var("CEPH_PREFIX") {
        let prefix = PathBuf::from(prefix);
        include_dirs.push(prefix.join("include"));
        println!(
            "cargo:rustc-link-search=native={}",
            prefix.join("lib").display()
        );
        println!("cargo:rustc-link-lib=rbd");
    } else if let Ok(lib) = pkg_config::Config::new().probe("rbd") {
        include_dirs.extend(lib.include_paths);
    } else {
        println!("cargo:rustc-link-lib=rbd");
    }

    let mut builder = bindgen::Builder::default()
        .header("wrapper.h")
        .allowlist_function("rbd_.*")
        .allowlist_type("rbd_.*")
        .allowlist_var("LIBRBD_.*")
        .allowlist_var("RBD_.*")
        .blocklist_type("rados_.*")
        .raw_line("pub use librados_sys::{rados_t, rados_ioctx_t};")
        .derive_default(true)
        .layout_tests(true)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for dir in &include_dirs {
        builder = builder.clang_arg(format!("-I{}", dir.display()));
    }
    let bindings = builder.generate().unwrap_or_else(|e| {
        panic!("bindgen failed on rbd/librbd.h ({e}); install librbd-dev and libclang-dev")
    });
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR is set by cargo"));
    let path = out.join("bindings.rs");
    bindings
        .write_to_file(&path)
        .expect("writing bindings.rs to OUT_DIR");

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
