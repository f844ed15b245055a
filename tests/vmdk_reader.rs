//! The VMDK reader against qemu. Fixtures are made at test time by qemu-img/qemu-io
//! (monolithicSparse, streamOptimized, zeroed grains, descriptor files with flat and sparse
//! extents) and by `vmdk::vmware_stream` (the layout VMware writes, header in the footer); each
//! is read every way the copy engine can and compared with `qemu-img convert -O raw` and
//! `qemu-img map`. Hostile variants of them must be refused by `convert` with one line and no
//! output file.
mod qcow2_check;
mod qemu;
mod vmdk;
use qcow2_check::{assert_extents_match, assert_reads_match, Chain, PATTERN};
use qemu::{qemu_io, reference_bytes, run_in};
use rbdkit::disk::vmdk::Vmdk;
use rbdkit::disk::{FilePolicy, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn create(dir: &Path, name: &str, size: &str, opts: &[&str]) -> PathBuf {
    let mut args = vec!["create", "-q", "-f", "vmdk"];
    args.extend(opts);
    args.extend([name, size]);
    run_in(Some(dir), "qemu-img", &args);
    dir.join(name)
}

fn open_with(p: &Path, files: FilePolicy) -> rbdkit::Result<Box<dyn rbdkit::disk::DiskSource>> {
    rbdkit::disk::open(
        p,
        &OpenOptions {
            files,
            ..Default::default()
        },
    )
}

/// Reads `img` every way and compares with qemu; also from memory when it is one file.
fn check(img: &Path, files: FilePolicy) -> Vec<u8> {
    let name = img.display().to_string();
    let want = reference_bytes(img);
    let disk = open_with(img, files).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(disk.format_name(), "vmdk", "{name}");
    assert_eq!(disk.virtual_size(), want.len() as u64, "{name}");
    assert_reads_match(disk.as_ref(), &want, &name);
    assert_extents_match(disk.as_ref(), img, &want, Chain::Qcow2Only);
    let bytes = std::fs::read(img).unwrap();
    if bytes.starts_with(b"KDMV") {
        let mem = Vmdk::from_bytes(bytes, &name).unwrap();
        assert_reads_match(&mem, &want, &format!("{name} (in memory)"));
    }
    want
}

fn rbdkit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rbdkit"))
        .arg("--no-progress")
        .args(args)
        .output()
        .unwrap()
}

/// `rbdkit convert IMG OUT` gives the bytes `qemu-img convert -O raw` gives.
fn convert_matches(img: &Path, want: &[u8], extra: &[&str]) {
    let out = img.with_extension("rbdkit.raw");
    let _ = std::fs::remove_file(&out);
    let mut args = vec!["convert"];
    args.extend(extra);
    args.extend([img.to_str().unwrap(), out.to_str().unwrap()]);
    let o = rbdkit(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(std::fs::read(&out).unwrap() == want, "{}", img.display());
    std::fs::remove_file(&out).unwrap();
}

#[test]
fn monolithic_sparse_and_stream_optimized_read_as_qemu_reads_them() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let s = create(dir, "s.vmdk", "9M", &[]);
    qemu_io(&s, "vmdk", PATTERN);
    let want = check(&s, FilePolicy::refuse());
    convert_matches(&s, &want, &[]);
    let z = create(dir, "z.vmdk", "9M", &["-o", "zeroed_grain=on"]);
    qemu_io(&z, "vmdk", PATTERN);
    qemu_io(&z, "vmdk", &["write -z 0 64k", "write -z 4M 128k"]);
    check(&z, FilePolicy::refuse());
    // A capacity that is not a whole number of grains, and a v3 header.
    let odd = create(dir, "odd.vmdk", "9217k", &["-o", "hwversion=6"]);
    qemu_io(
        &odd,
        "vmdk",
        &["write -P 0x77 9000k 217k", "write -P 0x78 0 1k"],
    );
    check(&odd, FilePolicy::refuse());
    for (src, name) in [(&s, "so.vmdk"), (&z, "zso.vmdk"), (&odd, "oddso.vmdk")] {
        let so = dir.join(name);
        run_in(
            Some(dir),
            "qemu-img",
            &[
                "convert",
                "-O",
                "vmdk",
                "-o",
                "subformat=streamOptimized",
                src.to_str().unwrap(),
                so.to_str().unwrap(),
            ],
        );
        let want = check(&so, FilePolicy::refuse());
        convert_matches(&so, &want, &["--source-format", "vmdk"]);
    }
}

#[test]
fn a_vmware_stream_with_its_header_in_the_footer() {
    let d = tempfile::tempdir().unwrap();
    let s = create(d.path(), "s.vmdk", "9M", &[]);
    qemu_io(&s, "vmdk", PATTERN);
    let raw = reference_bytes(&s);
    let p = d.path().join("vmware.vmdk");
    std::fs::write(&p, vmdk::vmware_stream(&raw)).unwrap();
    // qemu reads the built file as the guest bytes it was built from.
    assert!(check(&p, FilePolicy::refuse()) == raw);
    let v = Vmdk::open(&p, &FilePolicy::refuse()).unwrap();
    let h = v.sparse().unwrap().header();
    assert!(h.from_footer && h.compressed && h.markers);
    assert_eq!(v.create_type(), "streamOptimized");
}

#[test]
fn descriptor_files_are_followed_only_when_allowed() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    for (name, sub, size) in [
        ("flat.vmdk", "monolithicFlat", "9M"),
        ("2gf.vmdk", "twoGbMaxExtentFlat", "9M"),
        ("2gs.vmdk", "twoGbMaxExtentSparse", "4100M"),
    ] {
        let p = create(dir, name, size, &["-o", &format!("subformat={sub}")]);
        let cmds: &[&str] = if size == "9M" {
            PATTERN
        } else {
            &[
                "write -P 0x61 0 64k",
                "write -P 0x62 2047M 2M",
                "write -P 0x63 4099M 1M",
            ]
        };
        qemu_io(&p, "vmdk", cmds);
        let e = open_with(&p, FilePolicy::refuse())
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("extent file") && e.contains("--allow-backing-files"),
            "{e}"
        );
        let out = rbdkit(&["convert", p.to_str().unwrap(), "/nonexistent/x"]);
        assert_eq!(out.status.code(), Some(1));
        let allowed = FilePolicy::allow(&[]).unwrap();
        if size == "9M" {
            let want = check(&p, allowed);
            convert_matches(&p, &want, &["--allow-backing-files"]);
        } else {
            // 4 GiB: compare the files qemu-img and rbdkit write rather than hold them.
            let disk = open_with(&p, allowed).unwrap();
            assert_eq!(disk.virtual_size(), 4100 << 20);
            let ours = dir.join("ours.raw");
            let theirs = dir.join("theirs.raw");
            let o = rbdkit(&[
                "convert",
                "--allow-backing-files",
                p.to_str().unwrap(),
                ours.to_str().unwrap(),
            ]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            run_in(
                Some(dir),
                "qemu-img",
                &[
                    "convert",
                    "-O",
                    "raw",
                    p.to_str().unwrap(),
                    theirs.to_str().unwrap(),
                ],
            );
            let st = Command::new("cmp").args([&ours, &theirs]).status().unwrap();
            assert!(st.success(), "{name}: rbdkit and qemu-img differ");
        }
    }
    // Extents that escape the image's directory, or are not files, stay refused with the flag.
    let up = dir.join("up");
    std::fs::create_dir(&up).unwrap();
    std::fs::write(dir.join("secret"), vec![0x5a; 4096]).unwrap();
    std::os::unix::fs::symlink("../secret", up.join("link")).unwrap();
    for (target, needle) in [
        ("../secret", "outside the allowed"),
        ("/etc/passwd", "outside the allowed"),
        ("link", "outside the allowed"),
        ("/dev/zero", "character device"),
        ("nbd:localhost:1", "protocol"),
    ] {
        let desc = format!(
            "# Disk DescriptorFile\nversion=1\ncreateType=\"monolithicFlat\"\nRW 8 FLAT \"{target}\" 0\n"
        );
        let p = up.join("evil.vmdk");
        std::fs::write(&p, desc).unwrap();
        let out_file = up.join("evil.raw");
        let o = rbdkit(&[
            "convert",
            "--allow-backing-files",
            p.to_str().unwrap(),
            out_file.to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{target}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{target}: {err}");
        assert!(!out_file.exists());
    }
}

/// Field offsets of a qemu-made sparse file: (grain directory sector, first table sector).
fn tables_of(b: &[u8]) -> (usize, usize) {
    let gd = u64::from_le_bytes(b[56..64].try_into().unwrap()) as usize;
    let gt = u32::from_le_bytes(b[gd * 512..gd * 512 + 4].try_into().unwrap()) as usize;
    (gd, gt)
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Writes `text` over the embedded descriptor (sector 1).
fn put_descriptor(b: &mut [u8], text: &str) {
    b[512..512 * 21].fill(0);
    b[512..512 + text.len()].copy_from_slice(text.as_bytes());
}

#[test]
fn hostile_and_truncated_vmdks_are_refused_in_one_line() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let s = create(dir, "s.vmdk", "9M", &[]);
    qemu_io(&s, "vmdk", PATTERN);
    let so = dir.join("so.vmdk");
    run_in(
        Some(dir),
        "qemu-img",
        &[
            "convert",
            "-O",
            "vmdk",
            "-o",
            "subformat=streamOptimized",
            s.to_str().unwrap(),
            so.to_str().unwrap(),
        ],
    );
    let plain = std::fs::read(&s).unwrap();
    let stream = std::fs::read(&so).unwrap();
    let vmware = vmdk::vmware_stream(&reference_bytes(&s));
    let (_, gt) = tables_of(&plain);
    let (_, sgt) = tables_of(&stream);
    let first_grain =
        u32::from_le_bytes(stream[sgt * 512..sgt * 512 + 4].try_into().unwrap()) as usize;
    type Mutation = Box<dyn Fn(&mut Vec<u8>)>;
    let cases: Vec<(&str, &[u8], Mutation, &str)> = vec![
        (
            "gte-outside",
            &plain,
            Box::new(move |b| put32(b, gt * 512, 0x7fff_0000)),
            "outside the file",
        ),
        (
            "gt-outside",
            &plain,
            Box::new(|b| {
                let (gd, _) = tables_of(b);
                put32(b, gd * 512, 0x7fff_0000)
            }),
            "grain table 0",
        ),
        (
            "grain-0",
            &plain,
            Box::new(|b| b[20..28].copy_from_slice(&0u64.to_le_bytes())),
            "grain size",
        ),
        (
            "grain-huge",
            &plain,
            Box::new(|b| b[20..28].copy_from_slice(&(1u64 << 21).to_le_bytes())),
            "grain size",
        ),
        (
            "overlap",
            &plain,
            Box::new(move |b| {
                let v = u32::from_le_bytes(b[gt * 512..gt * 512 + 4].try_into().unwrap());
                put32(b, gt * 512 + 4, v + 1)
            }),
            "overlap",
        ),
        (
            "over-table",
            &plain,
            Box::new(move |b| put32(b, gt * 512, gt as u32)),
            "overlaps the metadata",
        ),
        (
            "truncated",
            &plain,
            Box::new(|b| {
                let n = b.len() / 2;
                b.truncate(n)
            }),
            "truncated",
        ),
        (
            "vmfs-type",
            &plain,
            Box::new(|b| {
                put_descriptor(
                    b,
                    "version=1\ncreateType=\"vmfs\"\nRW 18432 VMFS \"x.vmdk\"\n",
                )
            }),
            "createType 'vmfs'",
        ),
        (
            "parent",
            &plain,
            Box::new(|b| {
                put_descriptor(b, "version=1\ncreateType=\"monolithicSparse\"\nparentFileNameHint=\"/etc/passwd\"\n")
            }),
            "--allow-backing-files",
        ),
        (
            "no-descriptor",
            &plain,
            Box::new(|b| b[28..36].copy_from_slice(&0u64.to_le_bytes())),
            "no embedded descriptor",
        ),
        (
            "cowd",
            &plain,
            Box::new(|b| b[..4].copy_from_slice(b"COWD")),
            "COWD",
        ),
        (
            "lying-length",
            &stream,
            Box::new(move |b| put32(b, first_grain * 512 + 8, 1 << 20)),
            "claims 1048576",
        ),
        (
            "lying-lba",
            &stream,
            Box::new(move |b| b[first_grain * 512] = 9),
            "guest sector 9",
        ),
        (
            "bad-deflate",
            &stream,
            Box::new(move |b| b[first_grain * 512 + 20..first_grain * 512 + 40].fill(0xff)),
            "compressed grain",
        ),
        (
            "stream-overlap",
            &stream,
            Box::new(move |b| put32(b, sgt * 512 + 4, first_grain as u32)),
            "overlap",
        ),
        (
            "no-footer",
            &vmware,
            Box::new(|b| {
                let n = b.len() - 1536;
                b.truncate(n)
            }),
            "footer",
        ),
        (
            "stream-cut",
            &vmware,
            Box::new(|b| {
                let n = b.len();
                b.copy_within(n - 1536.., 138 * 512);
                b.truncate(141 * 512)
            }),
            "outside the file",
        ),
    ];
    for (name, base, mutate, needle) in cases {
        let mut b = base.to_vec();
        mutate(&mut b);
        let p = dir.join(format!("{name}.vmdk"));
        std::fs::write(&p, &b).unwrap();
        let out_file = dir.join(format!("{name}.raw"));
        let o = rbdkit(&["convert", p.to_str().unwrap(), out_file.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{name}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{name}: {err}");
        assert!(err.contains(needle), "{name}: expected {needle:?} in {err}");
        assert!(
            !err.contains("panicked") && !err.contains("passwd\n"),
            "{name}: {err}"
        );
        assert!(!out_file.exists(), "{name}: left {}", out_file.display());
        // From memory too (the fuzz target's path): an error, never a panic.
        if let Ok(v) = Vmdk::from_bytes(b, name) {
            let _ = rbdkit::disk::scan(&v, 64 << 20);
        }
    }
    // With the flag, a parent is still refused: delta chains are not read.
    let mut b = plain.clone();
    put_descriptor(&mut b, "version=1\nparentFileNameHint=\"s.vmdk\"\n");
    let p = dir.join("delta.vmdk");
    std::fs::write(&p, &b).unwrap();
    let e = open_with(&p, FilePolicy::allow(&[]).unwrap())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("delta chains are not supported"), "{e}");
}
