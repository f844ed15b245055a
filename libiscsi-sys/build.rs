//! Finds libiscsi and generates bindings for every function in the installed `iscsi/iscsi.h`
//! and `iscsi/scsi-lowlevel.h`.
//!
//! Search order: `LIBISCSI_PREFIX` (include/ and lib/ under it), then pkg-config (`libiscsi`,
//! which Debian's libiscsi-dev ships), then a bare `-liscsi` with the compiler's default
//! include path.
use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBISCSI_PREFIX");
    println!("cargo:rerun-if-changed=wrapper.h");
    let mut include_dirs: Vec<PathBuf> = Vec::new();

    if let Ok(prefix) = env::var("LIBISCSI_PREFIX") {
        let prefix = PathBuf::from(prefix);
        include_dirs.push(prefix.join("include"));
        println!(
            "cargo:rustc-link-search=native={}",
            prefix.join("lib").display()
        );
        println!("cargo:rustc-link-lib=iscsi");
    } else if let Ok(lib) = pkg_config::Config::new()
        .atleast_version("1.18")
        .probe("libiscsi")
    {
        include_dirs.extend(lib.include_paths);
    } else {
        println!("cargo:rustc-link-lib=iscsi");
    }
    for dir in &include_dirs {
        println!("cargo:include={}", dir.display());
    }

    let mut builder = bindgen::Builder::default()
        .header("wrapper.h")
        .allowlist_function("iscsi_.*")
        .allowlist_function("scsi_.*")
        .allowlist_type("iscsi_.*")
        .allowlist_type("scsi_.*")
        .allowlist_type("unmap_list")
        .allowlist_var("SCSI_.*")
        .allowlist_var("ISCSI_.*")
        .allowlist_var("MAX_STRING_SIZE")
        .rustified_enum("scsi_sense_key")
        .derive_default(true)
        .layout_tests(true)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for dir in &include_dirs {
        builder = builder.clang_arg(format!("-I{}", dir.display()));
    }
    let bindings = builder.generate().unwrap_or_else(|e| {
        panic!("bindgen failed on iscsi/iscsi.h ({e}); install libiscsi-dev and libclang-dev")
    });
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR is set by cargo"));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("writing bindings.rs to OUT_DIR");
}
