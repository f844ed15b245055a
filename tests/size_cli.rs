//! Sizes as the rbd CLI reads them: the same strings accepted and refused as `rbd` 16.2 does
//! (asked of the real binary each run), a bare number as MiB for image sizes, and refusals as
//! one line with exit 2.
mod common;
use common::*;

/// Strings rbd and rbdkit must agree on: (string, accepted as `--size`).
const AGREE: &[&str] = &[
    "1024",
    "1",
    "+5",
    "010",
    "1B",
    "1K",
    "1KB",
    "1Ki",
    "1M",
    "1G",
    "1GB",
    "1Gi",
    "1T",
    "1E",
    "15E",
    "16E",
    "-1",
    "-1G",
    "1k",
    "1b",
    "1KiB",
    "1GiB",
    "1Bi",
    "1Z",
    "1.5G",
    "1.5",
    "1e3",
    "0x10",
    " 5",
    "5 ",
    "9223372036854775808",
];

/// Strings rbd accepts by accident and rbdkit refuses (see src/units.rs).
const RBD_LOOSER: &[&str] = &["1Kx", "1BB", "-0", "17592186044416"];

/// Whether `rbd create --size S` gets past argument parsing (the pool does not exist, so
/// nothing is created either way).
fn rbd_accepts(size: &str) -> bool {
    let out = rbd_with(&conf(), &["create", "--size", size, "nosuchpool/x"]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    !err.contains("is invalid")
}

fn rbdkit_accepts(size: &str) -> bool {
    let out = rbdkit(&["create", "nosuchpool/x", "--size", size]);
    match out.status.code() {
        Some(1) => true,
        Some(2) => {
            assert_one_line_error(&out, 2, &["--size", "invalid size"]);
            false
        }
        c => panic!("exit {c:?}: {}", stderr(&out)),
    }
}

#[test]
fn sizes_are_accepted_and_refused_as_rbd_does() {
    for s in AGREE {
        assert_eq!(rbdkit_accepts(s), rbd_accepts(s), "--size {s:?}");
    }
    for s in RBD_LOOSER {
        assert!(rbd_accepts(s) && !rbdkit_accepts(s), "--size {s:?}");
    }
}

#[test]
fn a_bare_size_is_mib_as_in_rbd() {
    let conf = conf();
    let mut cleanup = Cleanup::new(&conf);
    let (ours, theirs) = (
        format!("volumes/{}", unique("size-rk")),
        format!("volumes/{}", unique("size-rbd")),
    );
    cleanup.add(&ours);
    cleanup.add(&theirs);
    let out = rbdkit(&["create", &ours, "--size", "1024"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = rbd_with(&conf, &["create", "--size", "1024", &theirs]);
    assert!(out.status.success(), "{}", stderr(&out));
    let size = |spec: &str| rbd_json(&conf, &["info", spec])["size"].as_u64().unwrap();
    assert_eq!(size(&ours), size(&theirs));
    assert_eq!(size(&ours), 1 << 30);
}

#[test]
fn bad_sizes_are_one_line_usage_errors_on_every_size_flag() {
    for (args, flag) in [
        (vec!["create", "volumes/x", "--size", "-1"], "--size"),
        (vec!["create", "volumes/x", "--size", "0"], "--size"),
        (
            vec!["create", "volumes/x", "--size", "1G", "--object-size", "4k"],
            "--object-size",
        ),
        (
            vec!["clone", "images/p@s", "volumes/x", "--size", "1e3"],
            "--size",
        ),
        (
            vec!["import-raw", "/nonexistent", "volumes/x", "--size", "1.5G"],
            "--size",
        ),
        (
            vec!["bench", "file:/nonexistent/x", "--size", "-1G"],
            "--size",
        ),
        (vec!["bench", "file:/nonexistent/x", "--bs", "-4K"], "--bs"),
        (
            vec!["bench", "file:/nonexistent/x", "--io-total", "0"],
            "--io-total",
        ),
        (
            vec!["convert", "/nonexistent", "/tmp/x", "--sparse-size", "4KiB"],
            "--sparse-size",
        ),
    ] {
        let out = rbdkit(&args);
        assert_one_line_error(&out, 2, &[flag, "invalid size"]);
        assert!(
            !stderr(&out).contains("-- -"),
            "no clap tip: {}",
            stderr(&out)
        );
    }
}
