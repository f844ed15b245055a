//! Finds libgfapi and generates bindings for every function in the installed
//! `glusterfs/api/glfs.h` (search order: see `sys-build`; pkg-config's `glusterfs-api` is what
//! Debian's libglusterfs-dev ships).
use sys_build::Library;

fn main() {
    let lib = Library {
        prefix_env: "GLUSTERFS_PREFIX",
        pkg_config: "glusterfs-api",
        min_version: Some("7.6"),
        link: "gfapi",
        header: "glusterfs/api/glfs.h",
        packages: "libglusterfs-dev",
    };
    let dirs = lib.find();
    let builder = lib
        .builder(&dirs)
        // The header sets these itself when missing; pkg-config's Cflags name them too.
        .clang_arg("-D_FILE_OFFSET_BITS=64")
        .allowlist_function("glfs_.*")
        .allowlist_type("glfs_.*")
        .allowlist_var("GLFS_.*")
        .allowlist_var("GFAPI_.*");
    lib.generate(builder);
}
