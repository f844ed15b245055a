//! What the build scripts of rbdkit's `-sys` crates share: finding an installed C library and
//! generating bindings for its header with bindgen.
//!
//! Search order: `$PREFIX_ENV` (`include/` and `lib/` under it), then pkg-config, then a bare
//! `-l<link>` with the compiler's default include path (Debian ships no `.pc` files for Ceph).
use std::env;
use std::path::PathBuf;

pub use bindgen;

/// A C library to link and generate bindings for.
pub struct Library {
    /// The environment variable naming an install prefix (`CEPH_PREFIX`).
    pub prefix_env: &'static str,
    /// The pkg-config package (`rados`).
    pub pkg_config: &'static str,
    /// The oldest pkg-config version accepted, if any.
    pub min_version: Option<&'static str>,
    /// The name to link (`rados` for `-lrados`).
    pub link: &'static str,
    /// The header, for the error message (`rados/librados.h`).
    pub header: &'static str,
    /// The Debian packages that provide it (`librados-dev`).
    pub packages: &'static str,
}

impl Library {
    /// Finds the library, tells cargo how to link it, and returns its include directories
    /// (also exported as `cargo:include` for dependent crates).
    pub fn find(&self) -> Vec<PathBuf> {
        println!("cargo:rerun-if-env-changed={}", self.prefix_env);
        println!("cargo:rerun-if-changed=wrapper.h");
        let mut include_dirs = Vec::new();
        if let Ok(prefix) = env::var(self.prefix_env) {
            let prefix = PathBuf::from(prefix);
            include_dirs.push(prefix.join("include"));
            println!(
                "cargo:rustc-link-search=native={}",
                prefix.join("lib").display()
            );
            println!("cargo:rustc-link-lib={}", self.link);
        } else {
            let mut cfg = pkg_config::Config::new();
            if let Some(v) = self.min_version {
                cfg.atleast_version(v);
            }
            match cfg.probe(self.pkg_config) {
                Ok(lib) => include_dirs.extend(lib.include_paths),
                Err(_) => println!("cargo:rustc-link-lib={}", self.link),
            }
        }
        for dir in &include_dirs {
            println!("cargo:include={}", dir.display());
        }
        include_dirs
    }

    /// The bindgen builder for `wrapper.h` with rbdkit's settings; the caller adds its
    /// allowlists.
    pub fn builder(&self, include_dirs: &[PathBuf]) -> bindgen::Builder {
        let mut builder = bindgen::Builder::default()
            .header("wrapper.h")
            .derive_default(true)
            .layout_tests(true)
            .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
        for dir in include_dirs {
            builder = builder.clang_arg(format!("-I{}", dir.display()));
        }
        builder
    }

    /// Generates the bindings into `$OUT_DIR/bindings.rs` and returns that path; a failure
    /// names the packages to install.
    pub fn generate(&self, builder: bindgen::Builder) -> PathBuf {
        let bindings = builder.generate().unwrap_or_else(|e| {
            panic!(
                "bindgen failed on {} ({e}); install {} and libclang-dev",
                self.header, self.packages
            )
        });
        let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR is set by cargo"));
        let path = out.join("bindings.rs");
        bindings
            .write_to_file(&path)
            .expect("writing bindings.rs to OUT_DIR");
        path
    }
}
