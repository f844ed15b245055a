//! Finds librados and generates bindings for every function in the installed `librados.h`
//! (search order: see `sys-build`).
use sys_build::Library;

fn main() {
    let lib = Library {
        prefix_env: "CEPH_PREFIX",
        pkg_config: "rados",
        min_version: None,
        link: "rados",
        header: "rados/librados.h",
        packages: "librados-dev",
    };
    let dirs = lib.find();
    let builder = lib
        .builder(&dirs)
        .allowlist_function("rados_.*")
        .allowlist_type("rados_.*")
        .allowlist_var("LIBRADOS_.*")
        .allowlist_var("CEPH_OSD_.*");
    lib.generate(builder);
}
