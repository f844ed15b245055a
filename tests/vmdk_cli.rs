//! Live tests of VMDK sources: `import-raw` of monolithicSparse, streamOptimized (qemu-img's
//! layout and VMware's, header in the footer) and a descriptor file with
//! `--allow-backing-files`, read back with `rbd export` and compared byte for byte with
//! `qemu-img convert -O raw`; the checksum `import-raw` prints is the one `checksum` gives for
//! the file; a hostile VMDK leaves no image in any pool. streamOptimized VMDKs also arrive on
//! stdin (an OVA's disk): `import-raw -` and `convert -`, grains larger than an object too.
mod common;
mod vmdk;
use common::*;
use std::path::{Path, PathBuf};

fn qemu_img(dir: &Path, args: &[&str]) {
    let o = std::process::Command::new("qemu-img")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "qemu-img {args:?}: {}", stderr(&o));
}

fn qemu_raw(dir: &Path, src: &Path) -> Vec<u8> {
    let out = dir.join("expected.raw");
    let _ = std::fs::remove_file(&out);
    qemu_img(
        dir,
        &[
            "convert",
            "-O",
            "raw",
            src.to_str().unwrap(),
            out.to_str().unwrap(),
        ],
    );
    std::fs::read(out).unwrap()
}

fn rbd_export(spec: &str, dir: &Path) -> Vec<u8> {
    let out = dir.join("exported.raw");
    let _ = std::fs::remove_file(&out);
    let o = rbd_with(
        &conf(),
        &["export", "--no-progress", spec, out.to_str().unwrap()],
    );
    assert!(o.status.success(), "rbd export: {}", stderr(&o));
    std::fs::read(out).unwrap()
}

/// The fixtures: (path, extra flags for import-raw).
fn fixtures(dir: &Path) -> Vec<(PathBuf, Vec<&'static str>)> {
    qemu_img(dir, &["create", "-q", "-f", "vmdk", "s.vmdk", "24M"]);
    run_ok(
        "qemu-io",
        &[
            "-f",
            "vmdk",
            "-c",
            "write -P 0xab 0 3M",
            "-c",
            "write -P 0x11 5M 64k",
            "-c",
            "write -z 8M 2M",
            "-c",
            "write -P 0x00 12M 1M",
            "-c",
            "write -P 0x77 23M 1M",
            dir.join("s.vmdk").to_str().unwrap(),
        ],
    );
    qemu_img(
        dir,
        &[
            "convert",
            "-O",
            "vmdk",
            "-o",
            "subformat=streamOptimized",
            "s.vmdk",
            "so.vmdk",
        ],
    );
    qemu_img(
        dir,
        &[
            "convert",
            "-O",
            "vmdk",
            "-o",
            "subformat=monolithicFlat",
            "s.vmdk",
            "flat.vmdk",
        ],
    );
    let raw = qemu_raw(dir, &dir.join("s.vmdk"));
    std::fs::write(dir.join("vmware.vmdk"), vmdk::vmware_stream(&raw)).unwrap();
    vec![
        (dir.join("s.vmdk"), vec![]),
        (dir.join("so.vmdk"), vec![]),
        (dir.join("vmware.vmdk"), vec![]),
        (dir.join("flat.vmdk"), vec!["--allow-backing-files"]),
    ]
}

#[test]
fn vmdks_import_byte_identical_to_qemu_img_with_the_file_checksum() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let mut clean = Cleanup::new(&conf());
    for (src, extra) in fixtures(dir) {
        let name = src.display().to_string();
        let expected = qemu_raw(dir, &src);
        let dest = format!("images/{}", unique("vmdk"));
        let args = [
            &[
                "import-raw",
                src.to_str().unwrap(),
                &dest,
                "--format",
                "json",
            ],
            &extra[..],
        ]
        .concat();
        let out = rbdkit(&args);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        clean.add(&dest);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            rbd_export(&dest, dir) == expected,
            "{name}: rbd export differs from qemu-img convert"
        );
        assert_eq!(
            report["checksum"],
            sha256_tree_hex(&expected),
            "{name}: {report}"
        );
        // The file's own checksum is the one the import printed.
        let ck = rbdkit(
            &[
                &["--format", "json", "checksum", src.to_str().unwrap()],
                &extra[..],
            ]
            .concat(),
        );
        assert!(ck.status.success(), "{name}: {}", stderr(&ck));
        let ck: serde_json::Value = serde_json::from_slice(&ck.stdout).unwrap();
        assert_eq!(ck["checksum"], report["checksum"], "{name}");
    }
}

#[test]
fn hostile_vmdks_leave_no_image() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let fx = fixtures(dir);
    // A streamOptimized grain whose marker claims more bytes than lie before the next grain,
    // a descriptor without the flag, a grain table entry out of the file.
    let mut lying = std::fs::read(&fx[2].0).unwrap();
    lying[128 * 512 + 8..128 * 512 + 12].copy_from_slice(&(1u32 << 20).to_le_bytes());
    let lying_p = dir.join("lying.vmdk");
    std::fs::write(&lying_p, lying).unwrap();
    for (src, needle) in [
        (lying_p, "claims 1048576"),
        (fx[3].0.clone(), "--allow-backing-files"),
    ] {
        let image = unique("hostile-vmdk");
        let out = rbdkit(&[
            "import-raw",
            src.to_str().unwrap(),
            &format!("images/{image}"),
        ]);
        assert_one_line_error(&out, 1, &[needle]);
        for pool in ["images", "volumes", "vms", "backups"] {
            assert!(
                images_with_prefix(&conf(), pool, &image).is_empty(),
                "{pool}"
            );
        }
    }
}

/// `rbdkit ARGS` with `input` on stdin.
fn rbdkit_stdin(args: &[&str], input: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_rbdkit"))
        .arg("--no-progress")
        .args(args)
        .env("CEPH_CONF", conf())
        .stdin(std::fs::File::open(input).unwrap())
        .output()
        .unwrap()
}

#[test]
fn stream_optimized_vmdks_import_from_a_pipe() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let fx = fixtures(dir);
    let raw = qemu_raw(dir, &fx[0].0);
    // 1 MiB grains: each is cut into four pieces at the 256 KiB objects below.
    let big = dir.join("big-grain.vmdk");
    std::fs::write(&big, vmdk::vmware_stream_with_grain(&raw, 1 << 20)).unwrap();
    assert!(
        qemu_raw(dir, &big) == raw,
        "qemu reads the 1 MiB-grain stream differently"
    );
    let mut clean = Cleanup::new(&conf());
    for (src, extra) in [
        (&fx[1].0, vec![]),
        (&fx[2].0, vec![]),
        (&big, vec!["--object-size", "256K"]),
    ] {
        let name = src.display().to_string();
        let dest = format!("images/{}", unique("vmdk-pipe"));
        let args = [&["import-raw", "-", &dest, "--format", "json"], &extra[..]].concat();
        let out = rbdkit_stdin(&args, src);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        clean.add(&dest);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            rbd_export(&dest, dir) == raw,
            "{name}: rbd export differs from qemu-img convert"
        );
        assert_eq!(report["checksum"], sha256_tree_hex(&raw), "{name}");
        let conv = dir.join("piped.raw");
        let _ = std::fs::remove_file(&conv);
        let out = rbdkit_stdin(&["convert", "-", conv.to_str().unwrap()], src);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        assert!(
            std::fs::read(&conv).unwrap() == raw,
            "{name}: convert - differs"
        );
    }
    // Refused from a pipe, leaving nothing: a monolithicSparse (its grains do not describe
    // themselves), a stream whose grain claims more bytes than two grains, a cut stream, a
    // grain whose deflate data is damaged.
    let mut lying = std::fs::read(&fx[2].0).unwrap();
    lying[128 * 512 + 8..128 * 512 + 12].copy_from_slice(&(1u32 << 20).to_le_bytes());
    let lying_p = dir.join("lying.vmdk");
    std::fs::write(&lying_p, lying).unwrap();
    let mut bad = std::fs::read(&fx[2].0).unwrap();
    bad[128 * 512 + 20..128 * 512 + 40].fill(0xff);
    let bad_p = dir.join("bad-deflate.vmdk");
    std::fs::write(&bad_p, bad).unwrap();
    let mut cut = std::fs::read(&fx[2].0).unwrap();
    cut.truncate(cut.len() - 700);
    let cut_p = dir.join("cut.vmdk");
    std::fs::write(&cut_p, cut).unwrap();
    for (src, needle) in [
        (fx[0].0.clone(), "save it to a file first"),
        (lying_p, "more than two grains"),
        (cut_p, "truncated"),
        (bad_p, "compressed grain for guest offset 0x0"),
    ] {
        let image = unique("hostile-vmdk-pipe");
        let out = rbdkit_stdin(&["import-raw", "-", &format!("images/{image}")], &src);
        assert_one_line_error(&out, 1, &[needle]);
        for pool in ["images", "volumes", "vms", "backups"] {
            assert!(
                images_with_prefix(&conf(), pool, &image).is_empty(),
                "{pool}"
            );
        }
    }
}
