//! The VHDX reader against qemu: fixed and dynamic disks made by qemu-img with every block
//! size and option that changes the layout, written with qemu-io, read every way the copy
//! engine can and compared with `qemu-img convert -O raw`; a dirty log refused as qemu refuses
//! it, and read as qemu reads it once `qemu-img check -r all` replayed it; hostile and
//! truncated variants refused by `convert` in one line, with no output file.
mod qcow2_check;
mod qemu;
use qcow2_check::{assert_reads_match, PATTERN};
use qemu::{qemu_io, reference_bytes, run_in};
use rbdkit::disk::vhdx::Vhdx;
use rbdkit::disk::{ExtentKind, FilePolicy, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn create(dir: &Path, name: &str, size: &str, opts: &str) -> PathBuf {
    let mut args = vec!["create", "-q", "-f", "vhdx"];
    if !opts.is_empty() {
        args.extend(["-o", opts]);
    }
    args.extend([name, size]);
    run_in(Some(dir), "qemu-img", &args);
    dir.join(name)
}

fn rbdkit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rbdkit"))
        .arg("--no-progress")
        .args(args)
        .output()
        .unwrap()
}

fn check(img: &Path) {
    let name = img.display().to_string();
    let want = reference_bytes(img);
    let disk =
        rbdkit::disk::open(img, &OpenOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(disk.format_name(), "vhdx");
    assert_eq!(disk.virtual_size(), want.len() as u64, "{name}");
    assert_reads_match(disk.as_ref(), &want, &name);
    let ext = disk.extents(0, want.len() as u64).unwrap();
    assert_eq!(ext.iter().map(|e| e.len).sum::<u64>(), want.len() as u64);
    for e in ext.iter().filter(|e| e.kind != ExtentKind::Data) {
        assert!(
            want[e.offset as usize..e.end() as usize]
                .iter()
                .all(|&b| b == 0),
            "{name}: {e:?}"
        );
    }
    let mem = Vhdx::from_bytes(std::fs::read(img).unwrap(), &name).unwrap();
    assert_reads_match(&mem, &want, &format!("{name} (in memory)"));
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
        ("d.vhdx", "", "9M"),
        ("d1.vhdx", "block_size=1M", "9M"),
        ("d8.vhdx", "block_size=8M,log_size=2M", "40M"),
        ("d256.vhdx", "block_size=256M", "300M"),
        ("z.vhdx", "block_size=1M,block_state_zero=off", "9M"),
        ("f.vhdx", "subformat=fixed,block_size=1M", "9M"),
        ("odd.vhdx", "block_size=1M", "9217k"),
    ] {
        let p = create(dir, name, size, opts);
        qemu_io(&p, "vhdx", PATTERN);
        check(&p);
    }
    let c = dir.join("conv.vhdx");
    run_in(
        Some(dir),
        "qemu-img",
        &[
            "convert",
            "-O",
            "vhdx",
            "-o",
            "block_size=2M",
            "d1.vhdx",
            c.to_str().unwrap(),
        ],
    );
    check(&c);
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn crc32c(b: &[u8]) -> u32 {
    let mut c = !0u32;
    for &x in b {
        c ^= x as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82F6_3B78
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// Recomputes the CRC-32C of the `len`-byte structure at `at` (checksum at `at + 4`).
fn reseal(b: &mut [u8], at: usize, len: usize) {
    b[at + 4..at + 8].fill(0);
    let c = crc32c(&b[at..at + len]);
    b[at + 4..at + 8].copy_from_slice(&c.to_le_bytes());
}

/// The current header's offset (the greater sequence number).
fn current_header(b: &[u8]) -> usize {
    let (h1, h2) = (64 << 10, 128 << 10);
    if le64(b, h2 + 8) > le64(b, h1 + 8) {
        h2
    } else {
        h1
    }
}

/// (BAT offset, metadata offset) from the first region table.
fn regions(b: &[u8]) -> (usize, usize) {
    let t = 192 << 10;
    let (mut bat, mut meta) = (0, 0);
    for i in 0..le32(b, t + 8) as usize {
        let e = t + 16 + 32 * i;
        let off = le64(b, e + 16) as usize;
        if b[e] == 0x66 {
            bat = off
        } else {
            meta = off
        }
    }
    (bat, meta)
}

/// The offset of the metadata item whose GUID starts with `first` (file parameters: 0x37,
/// disk size: 0x24).
fn item(b: &[u8], first: u8) -> usize {
    let (_, m) = regions(b);
    for i in 0..(u16::from_le_bytes([b[m + 10], b[m + 11]]) as usize) {
        let e = m + 32 + 32 * i;
        if b[e] == first {
            return m + le32(b, e + 16) as usize;
        }
    }
    panic!("no item {first:#x}");
}

/// A dirty copy of `b`: the current header names the GUID of the entries in its log (qemu
/// leaves them there after replaying them itself).
fn dirty(b: &[u8]) -> Vec<u8> {
    let mut v = b.to_vec();
    let h = current_header(&v);
    let log = le64(&v, h + 72) as usize;
    assert_eq!(
        &v[log..log + 4],
        b"loge",
        "qemu left no log entry to make dirty"
    );
    let guid: Vec<u8> = v[log + 32..log + 48].to_vec();
    v[h + 48..h + 64].copy_from_slice(&guid);
    reseal(&mut v, h, 4096);
    v
}

#[test]
fn a_dirty_log_is_refused_as_qemu_refuses_it_and_read_once_replayed() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let p = create(dir, "d.vhdx", "9M", "block_size=1M");
    qemu_io(&p, "vhdx", PATTERN);
    let dp = dir.join("dirty.vhdx");
    std::fs::write(&dp, dirty(&std::fs::read(&p).unwrap())).unwrap();
    let q = Command::new("qemu-img")
        .args([
            "convert",
            "-O",
            "raw",
            dp.to_str().unwrap(),
            dir.join("q.raw").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        !q.status.success() && String::from_utf8_lossy(&q.stderr).contains("replayed"),
        "qemu read the dirty image"
    );
    let out = dir.join("dirty.raw");
    let o = rbdkit(&["convert", dp.to_str().unwrap(), out.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("qemu-img check -r all"), "{err}");
    assert!(!out.exists());
    run_in(
        Some(dir),
        "qemu-img",
        &["check", "-q", "-r", "all", dp.to_str().unwrap()],
    );
    check(&dp);
}

#[test]
fn hostile_and_truncated_vhdxs_are_refused_in_one_line() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let p = create(dir, "d.vhdx", "9M", "block_size=1M");
    qemu_io(&p, "vhdx", &["write -P 1 0 64k", "write -P 2 4M 64k"]);
    let base = std::fs::read(&p).unwrap();
    let (bat, _) = regions(&base);
    let present = (0..9)
        .map(|i| bat + 8 * i)
        .find(|&e| base[e] & 7 == 6)
        .unwrap();
    type Mutation = Box<dyn Fn(&mut Vec<u8>)>;
    let cases: Vec<(&str, Mutation, &str)> = vec![
        (
            "headers",
            Box::new(|b| {
                b[(64 << 10) + 20] ^= 1;
                b[(128 << 10) + 20] ^= 1
            }),
            "no valid VHDX header",
        ),
        (
            "regions",
            Box::new(|b| {
                b[(192 << 10) + 40] ^= 1;
                b[(256 << 10) + 40] ^= 1
            }),
            "no valid VHDX region table",
        ),
        (
            "required-region",
            Box::new(|b| {
                for t in [192 << 10, 256 << 10] {
                    b[t + 16] ^= 0x55;
                    b[t + 16 + 28] = 1;
                    reseal(b, t, 64 << 10)
                }
            }),
            "required region",
        ),
        (
            "block-outside",
            Box::new(move |b| {
                b[present + 4..present + 8].copy_from_slice(&0x7fff_0000u32.to_le_bytes())
            }),
            "outside the file",
        ),
        (
            "overlap",
            Box::new(move |b| {
                let e = le64(b, present);
                let next = present + 8;
                b[next..next + 8].copy_from_slice(&e.to_le_bytes())
            }),
            "overlap",
        ),
        (
            "over-metadata",
            Box::new(move |b| {
                let (_, m) = regions(b);
                let e = ((m as u64 >> 20) << 20) | 6;
                b[present..present + 8].copy_from_slice(&e.to_le_bytes())
            }),
            "overlap",
        ),
        (
            "partial",
            Box::new(move |b| b[present] = (b[present] & !7) | 7),
            "partially present",
        ),
        (
            "state-4",
            Box::new(move |b| b[present] = (b[present] & !7) | 4),
            "invalid state 4",
        ),
        (
            "block-size",
            Box::new(|b| {
                let at = item(b, 0x37);
                b[at..at + 4].copy_from_slice(&12345u32.to_le_bytes())
            }),
            "block size 12345",
        ),
        (
            "disk-size-0",
            Box::new(|b| {
                let at = item(b, 0x24);
                b[at..at + 8].fill(0)
            }),
            "disk size 0",
        ),
        (
            "disk-size-huge",
            Box::new(|b| {
                let at = item(b, 0x24);
                b[at..at + 8].copy_from_slice(&(1u64 << 50).to_le_bytes())
            }),
            "disk size",
        ),
        (
            "truncated",
            Box::new(|b| {
                let n = b.len() - (1 << 20);
                b.truncate(n)
            }),
            "outside the file",
        ),
        (
            "cut-headers",
            Box::new(|b| b.truncate(100_000)),
            "truncated",
        ),
        (
            "parent",
            Box::new(|b| {
                let at = item(b, 0x37);
                b[at + 4] |= 2
            }),
            "--allow-backing-files",
        ),
    ];
    for (name, mutate, needle) in cases {
        let mut b = base.clone();
        mutate(&mut b);
        let p = dir.join(format!("{name}.vhdx"));
        std::fs::write(&p, &b).unwrap();
        let out_file = dir.join(format!("{name}.raw"));
        let o = rbdkit(&[
            "convert",
            "--source-format",
            "vhdx",
            p.to_str().unwrap(),
            out_file.to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{name}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{name}: {err}");
        assert!(err.contains(needle), "{name}: expected {needle:?} in {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
        assert!(!out_file.exists(), "{name}");
        if let Ok(v) = Vhdx::from_bytes(b, name) {
            let _ = rbdkit::disk::scan(&v, 64 << 20);
        }
    }
    // One bad header copy is not fatal: the other one is current.
    let mut b = base.clone();
    let h = current_header(&b);
    b[h + 20] ^= 1;
    let v = Vhdx::from_bytes(b, "one-header").unwrap();
    assert!(rbdkit::disk::scan(&v, 64 << 20).is_ok());
    // With the flag, a parent is still refused: differencing disks are not read.
    let mut b = base.clone();
    let at = item(&b, 0x37);
    b[at + 4] |= 2;
    let dp = dir.join("diff.vhdx");
    std::fs::write(&dp, &b).unwrap();
    let e = Vhdx::open(&dp, &FilePolicy::allow(&[]).unwrap())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("VHDX parents are not supported"), "{e}");
}
