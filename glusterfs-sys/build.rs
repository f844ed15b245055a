//! Finds libgfapi and generates bindings for every function in the installed
//! `glusterfs/api/glfs.h`.
//!
//! Search order: `GLUSTERFS_PREFIX` (include/ and lib/ under it), then pkg-config
//! (`glusterfs-api`, which Debian's libglusterfs-dev ships), then a bare `-lgfapi` with the
//! compiler's default include path.
use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=GLUSTERFS_PREFIX");
    println!("cargo:rerun-if-changed=wrapper.h");
    let mut include_dirs: Vec<PathBuf> = Vec::new();

    if let Ok(prefix) = env::var("GLUSTERFS_PREFIX") {
        let prefix = PathBuf::from(prefix);
        include_dirs.push(prefix.join("include"));
        println!(
            "cargo:rustc-link-search=native={}",
            prefix.join("lib").display()
        );
        println!("cargo:rustc-link-lib=gfapi");
    } else if let Ok(lib) = pkg_config::Config::new()
        .atleast_version("7.6")
        .probe("glusterfs-api")
    {
        include_dirs.extend(lib.include_paths);
    } else {
        println!("cargo:rustc-link-lib=gfapi");
    }
    for dir in &include_dirs {
        println!("cargo:include={}", dir.display());
    }

    let mut builder = bindgen::Builder::default()
        .header("wrapper.h")
        // The header sets these itself when missing; pkg-config's Cflags name them too.
        .clang_arg("-D_FILE_OFFSET_BITS=64")
        .allowlist_function("glfs_.*")
        .allowlist_type("glfs_.*")
        .allowlist_var("GLFS_.*")
        .allowlist_var("GFAPI_.*")
        .derive_default(true)
        .layout_tests(true)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for dir in &include_dirs {
        builder = builder.clang_arg(format!("-I{}", dir.display()));
    }
    let bindings = builder.generate().unwrap_or_else(|e| {
        panic!(
            "bindgen failed on glusterfs/api/glfs.h ({e}); install libglusterfs-dev and libclang-dev"
        )
    });
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR is set by cargo"));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("writing bindings.rs to OUT_DIR");
}
