//! Finds librados and generates bindings for every function in the installed `librados.h`.
//!
//! Search order: `CEPH_PREFIX` (include/ and lib/ under it), then pkg-config (`rados`), then a bare
//! `-lrados` with the compiler's default include path (Debian ships no .pc files for Ceph).
use std::env;
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
        println!("cargo:rustc-link-lib=rados");
    } else if let Ok(lib) = pkg_config::Config::new().probe("rados") {
        include_dirs.extend(lib.include_paths);
    } else {
        println!("cargo:rustc-link-lib=rados");
    }
    for dir in &include_dirs {
        println!("cargo:include={}", dir.display());
    }

    let mut builder = bindgen::Builder::default()
        .header("wrapper.h")
        .allowlist_function("rados_.*")
        .allowlist_type("rados_.*")
        .allowlist_var("LIBRADOS_.*")
        .allowlist_var("CEPH_OSD_.*")
        .derive_default(true)
        .layout_tests(true)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for dir in &include_dirs {
        builder = builder.clang_arg(format!("-I{}", dir.display()));
    }
    let bindings = builder.generate().unwrap_or_else(|e| {
        panic!("bindgen failed on rados/librados.h ({e}); install librados-dev and libclang-dev")
    });
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR is set by cargo"));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("writing bindings.rs to OUT_DIR");
}
