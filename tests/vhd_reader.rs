//! The VHD reader against qemu: fixed and dynamic disks made by qemu-img (with and without
//! force_size) and written with qemu-io, read every way the copy engine can and compared with
//! `qemu-img convert -f vpc -O raw` (qemu's own probe takes a fixed VHD for raw) and with
//! `qemu-img map`; hostile and truncated variants refused by `convert` in one line, with no
//! output file.
mod qcow2_check;
mod qemu;
use qcow2_check::{assert_reads_match, PATTERN};
use qemu::{qemu_io, run_in};
use rbdkit::disk::vhd::Vhd;
use rbdkit::disk::{ExtentKind, FilePolicy, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn create(dir: &Path, name: &str, size: &str, opts: &[&str]) -> PathBuf {
    let mut args = vec!["create", "-q", "-f", "vpc"];
    args.extend(opts);
    args.extend([name, size]);
    run_in(Some(dir), "qemu-img", &args);
    dir.join(name)
}

/// `qemu-img convert -f vpc -O raw`.
fn reference(img: &Path) -> Vec<u8> {
    let out = img.with_extension("ref.raw");
    run_in(
        None,
        "qemu-img",
        &[
            "convert",
            "-f",
            "vpc",
            "-O",
            "raw",
            img.to_str().unwrap(),
            out.to_str().unwrap(),
        ],
    );
    let b = std::fs::read(&out).unwrap();
    std::fs::remove_file(&out).unwrap();
    b
}

/// qemu's data runs (start, length) from `qemu-img map -f vpc`.
fn qemu_data(img: &Path) -> Vec<(u64, u64)> {
    let out = run_in(
        None,
        "qemu-img",
        &["map", "-f", "vpc", "--output=json", img.to_str().unwrap()],
    );
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for e in v.as_array().unwrap().iter().filter(|e| e["data"] == true) {
        let (s, l) = (e["start"].as_u64().unwrap(), e["length"].as_u64().unwrap());
        match runs.last_mut() {
            Some(r) if r.0 + r.1 == s => r.1 += l,
            _ => runs.push((s, l)),
        }
    }
    runs
}

fn rbdkit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rbdkit"))
        .arg("--no-progress")
        .args(args)
        .output()
        .unwrap()
}

fn check(img: &Path, dynamic: bool) {
    let name = img.display().to_string();
    let want = reference(img);
    let disk =
        rbdkit::disk::open(img, &OpenOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(disk.format_name(), "vhd");
    assert_eq!(disk.virtual_size(), want.len() as u64, "{name}");
    assert_reads_match(disk.as_ref(), &want, &name);
    let ext = disk.extents(0, want.len() as u64).unwrap();
    for e in &ext {
        if e.kind != ExtentKind::Data {
            assert!(
                want[e.offset as usize..e.end() as usize]
                    .iter()
                    .all(|&b| b == 0),
                "{name}: {e:?}"
            );
        }
    }
    if dynamic {
        let ours: Vec<(u64, u64)> = ext
            .iter()
            .filter(|e| e.kind == ExtentKind::Data)
            .map(|e| (e.offset, e.len))
            .collect();
        assert_eq!(ours, qemu_data(img), "{name}: data runs");
    }
    let mem = Vhd::from_bytes(std::fs::read(img).unwrap(), &name).unwrap();
    assert_reads_match(&mem, &want, &format!("{name} (in memory)"));
    // convert writes what qemu-img writes.
    let out = img.with_extension("rbdkit.raw");
    let o = rbdkit(&["convert", img.to_str().unwrap(), out.to_str().unwrap()]);
    assert!(
        o.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        std::fs::read(&out).unwrap() == want,
        "{name}: convert differs"
    );
    std::fs::remove_file(&out).unwrap();
}

#[test]
fn fixed_and_dynamic_read_as_qemu_reads_them() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    for (name, opts, size) in [
        ("d.vhd", vec![], "9M"),
        ("dfs.vhd", vec!["-o", "force_size=on"], "9M"),
        ("f.vhd", vec!["-o", "subformat=fixed"], "9M"),
        ("ffs.vhd", vec!["-o", "subformat=fixed,force_size=on"], "9M"),
        ("big.vhd", vec![], "100M"),
    ] {
        let p = create(dir, name, size, &opts);
        qemu_io(&p, "vpc", PATTERN);
        check(&p, !opts.iter().any(|o| o.contains("fixed")));
    }
    // qemu-img convert's output (its other writer path).
    let c = dir.join("conv.vhd");
    run_in(
        Some(dir),
        "qemu-img",
        &[
            "convert",
            "-f",
            "vpc",
            "-O",
            "vpc",
            "d.vhd",
            c.to_str().unwrap(),
        ],
    );
    check(&c, true);
}

fn put_be32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// Recomputes the checksum of the footer at `at`.
fn reseal(b: &mut [u8], at: usize) {
    b[at + 64..at + 68].fill(0);
    let sum = b[at..at + 512]
        .iter()
        .fold(0u32, |s, &x| s.wrapping_add(x as u32));
    put_be32(b, at + 64, !sum);
}

#[test]
fn hostile_and_truncated_vhds_are_refused_in_one_line() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let dynp = create(dir, "d.vhd", "9M", &[]);
    qemu_io(&dynp, "vpc", &["write -P 1 0 64k", "write -P 2 4M 64k"]);
    let fixp = create(dir, "f.vhd", "9M", &["-o", "subformat=fixed"]);
    let dynb = std::fs::read(&dynp).unwrap();
    let fixb = std::fs::read(&fixp).unwrap();
    // qemu-img's layout: footer copy at 0, dynamic header at 512, BAT at 1536.
    let bat = 1536;
    type Mutation = Box<dyn Fn(&mut Vec<u8>)>;
    let cases: Vec<(&str, &[u8], Mutation, &str)> = vec![
        ("checksum", &dynb, Box::new(|b| b[100] ^= 1), "checksum"),
        (
            "fixed-checksum",
            &fixb,
            Box::new(|b| {
                let n = b.len();
                b[n - 400] ^= 1
            }),
            "checksum",
        ),
        (
            "type",
            &dynb,
            Box::new(|b| {
                b[63] = 9;
                reseal(b, 0)
            }),
            "disk type 9",
        ),
        (
            "block-outside",
            &dynb,
            Box::new(move |b| put_be32(b, bat, 0x00ff_ffff)),
            "truncated",
        ),
        (
            "truncated",
            &dynb,
            Box::new(|b| {
                let n = b.len() - (3 << 20);
                b.truncate(n)
            }),
            "truncated",
        ),
        (
            "overlap",
            &dynb,
            Box::new(move |b| {
                let v = u32::from_be_bytes(b[bat..bat + 4].try_into().unwrap());
                put_be32(b, bat + 4, v + 8)
            }),
            "overlap",
        ),
        (
            "over-bat",
            &dynb,
            Box::new(move |b| put_be32(b, bat, 2)),
            "overlap",
        ),
        (
            "block-size-0",
            &dynb,
            Box::new(|b| put_be32(b, 512 + 32, 0)),
            "block size 0",
        ),
        (
            "block-size-odd",
            &dynb,
            Box::new(|b| put_be32(b, 512 + 32, 3000)),
            "block size 3000",
        ),
        (
            "block-size-huge",
            &dynb,
            Box::new(|b| put_be32(b, 512 + 32, 1 << 30)),
            "block size",
        ),
        (
            "table-small",
            &dynb,
            Box::new(|b| put_be32(b, 512 + 28, 1)),
            "does not cover",
        ),
        (
            "table-huge",
            &dynb,
            Box::new(|b| put_be32(b, 512 + 28, u32::MAX)),
            "over the limit",
        ),
        (
            "table-outside",
            &dynb,
            Box::new(|b| b[512 + 16..512 + 24].copy_from_slice(&(1u64 << 40).to_be_bytes())),
            "outside the file",
        ),
        (
            "no-dyn-header",
            &dynb,
            Box::new(|b| b[512..520].fill(0)),
            "cxsparse",
        ),
        (
            "fixed-truncated",
            &fixb,
            Box::new(|b| {
                let n = b.len();
                b.copy_within(n - 512.., 4096);
                b.truncate(4608)
            }),
            "truncated",
        ),
        (
            "differencing",
            &dynb,
            Box::new(|b| {
                b[63] = 4;
                reseal(b, 0);
                for (i, u) in "/etc/passwd".encode_utf16().enumerate() {
                    b[512 + 64 + 2 * i..512 + 66 + 2 * i].copy_from_slice(&u.to_be_bytes());
                }
            }),
            "--allow-backing-files",
        ),
    ];
    for (name, base, mutate, needle) in cases {
        let mut b = base.to_vec();
        mutate(&mut b);
        let p = dir.join(format!("{name}.vhd"));
        std::fs::write(&p, &b).unwrap();
        let out_file = dir.join(format!("{name}.raw"));
        let o = rbdkit(&[
            "convert",
            "--source-format",
            "vhd",
            p.to_str().unwrap(),
            out_file.to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{name}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{name}: {err}");
        assert!(err.contains(needle), "{name}: expected {needle:?} in {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
        assert!(!out_file.exists(), "{name}");
        if let Ok(v) = Vhd::from_bytes(b, name) {
            let _ = rbdkit::disk::scan(&v, 64 << 20);
        }
    }
    let mut b = dynb.clone();
    b[63] = 4;
    reseal(&mut b, 0);
    let p = dir.join("diff.vhd");
    std::fs::write(&p, &b).unwrap();
    let e = Vhd::open(&p, &FilePolicy::allow(&[]).unwrap())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("VHD parents are not supported"), "{e}");
}

#[test]
fn a_vhd_from_a_pipe_is_refused_in_one_line() {
    let d = tempfile::tempdir().unwrap();
    let p = create(d.path(), "d.vhd", "9M", &[]);
    let out_file = d.path().join("out.raw");
    let o = Command::new(env!("CARGO_BIN_EXE_rbdkit"))
        .args(["--no-progress", "convert", "-", out_file.to_str().unwrap()])
        .stdin(std::fs::File::open(&p).unwrap())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("save it to a file first"), "{err}");
    assert!(!out_file.exists());
}
