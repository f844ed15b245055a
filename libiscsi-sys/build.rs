//! Finds libiscsi and generates bindings for every function in the installed `iscsi/iscsi.h`
//! and `iscsi/scsi-lowlevel.h` (search order: see `sys-build`; pkg-config's `libiscsi` is
//! what Debian's libiscsi-dev ships).
use sys_build::Library;

fn main() {
    let lib = Library {
        prefix_env: "LIBISCSI_PREFIX",
        pkg_config: "libiscsi",
        min_version: Some("1.18"),
        link: "iscsi",
        header: "iscsi/iscsi.h",
        packages: "libiscsi-dev",
    };
    let dirs = lib.find();
    let builder = lib
        .builder(&dirs)
        .allowlist_function("iscsi_.*")
        .allowlist_function("scsi_.*")
        .allowlist_type("iscsi_.*")
        .allowlist_type("scsi_.*")
        .allowlist_type("unmap_list")
        .allowlist_var("SCSI_.*")
        .allowlist_var("ISCSI_.*")
        .allowlist_var("MAX_STRING_SIZE")
        .rustified_enum("scsi_sense_key");
    lib.generate(builder);
}
