//! What qemu refuses to open or read, rbdkit refuses too; what qemu accepts, rbdkit accepts.
//! Each image is made by `qemu-img create` (v2 with `compat=0.10`, v3 with `compat=1.1`) and
//! one `qemu-io` write, then one field is patched as qemu-iotests 036, 080, 244, 261, 287, 290
//! do. qemu's verdict comes from `qemu-img convert -O raw` and `qemu-io -r -c 'read 0 64k'`
//! (read-only, so qemu never marks the image corrupt behind the test's back); rbdkit's from
//! `rbdkit::disk::open` plus a full scan, the streaming reader, and the `rbdkit convert` binary
//! (exit 1, one line on stderr, no output file, no panic).
mod qemu;
use qemu::{create, qemu_io, reference_bytes};
use rbdkit::disk::qcow2::Qcow2Stream;
use rbdkit::disk::{open, scan};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A 1 MiB image of `compat` (0.10 or 1.1) with 64 KiB of data at offset 0, as bytes.
fn base(dir: &Path, compat: &str) -> Vec<u8> {
    let name = format!("base-{compat}.qcow2");
    let img = create(dir, &name, "1M", &["-o", &format!("compat={compat}")]);
    qemu_io(&img, "qcow2", &["write -P 0xab 0 64k"]);
    std::fs::read(img).unwrap()
}

/// `bytes` with `patch` written at `at`.
fn patched(bytes: &[u8], at: usize, patch: &[u8]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[at..at + patch.len()].copy_from_slice(patch);
    b
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// qemu's verdict: (convert succeeded, qemu-io read succeeded, their stderr).
fn qemu_reads(img: &Path) -> (bool, bool, String) {
    let out = img.with_extension("qemu.raw");
    let conv = Command::new("qemu-img")
        .args(["convert", "-O", "raw"])
        .args([img, &out])
        .output()
        .expect("run qemu-img (is qemu-utils installed?)");
    let _ = std::fs::remove_file(&out);
    let io = Command::new("qemu-io")
        .args(["-r", "-f", "qcow2", "-c", "read 0 64k"])
        .arg(img)
        .output()
        .expect("run qemu-io");
    // qemu-io reports a failed read on stdout and still exits 0 in some versions; warnings
    // (stale bitmaps) on stderr are no failure.
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&io.stdout),
        String::from_utf8_lossy(&io.stderr)
    );
    let io_ok =
        io.status.success() && !said.contains("read failed") && !said.contains("can't open");
    let err = format!(
        "{}{}",
        String::from_utf8_lossy(&conv.stderr),
        String::from_utf8_lossy(&io.stderr)
    );
    (conv.status.success(), io_ok, err)
}

/// Reads the whole image through the streaming reader (as `import-raw -` does).
fn stream_reads(img: &Path) -> rbdkit::Result<()> {
    let file = std::fs::File::open(img).unwrap();
    let s = Qcow2Stream::open(Box::new(file), "stdin")?;
    s.decode_all(1 << 20, &mut |_| Ok(()))?;
    Ok(())
}

/// qemu refuses `bytes` (its message contains `qemu_says`) and so does rbdkit, every way,
/// with one line containing `needle`.
fn refused(dir: &Path, name: &str, bytes: &[u8], qemu_says: &str, needle: &str) {
    let p = refused_from_file(dir, name, bytes, qemu_says, needle);
    let e = stream_reads(&p)
        .err()
        .unwrap_or_else(|| panic!("{name}: the stream reader accepts it"))
        .to_string();
    assert!(
        e.contains(needle),
        "{name} (stream): expected {needle:?} in: {e}"
    );
}

/// [`refused`] but for the streaming reader, which does not see every table (the snapshot
/// table may lie anywhere in the stream and nothing else needs it). Returns the image's path.
fn refused_from_file(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    qemu_says: &str,
    needle: &str,
) -> PathBuf {
    let p = write(dir, name, bytes);
    let (conv, io, err) = qemu_reads(&p);
    assert!(!conv && !io, "{name}: qemu accepts it");
    assert!(err.contains(qemu_says), "{name}: qemu said: {err}");

    let r = open(&p, &Default::default()).and_then(|d| scan(d.as_ref(), u64::MAX));
    let e = r
        .err()
        .unwrap_or_else(|| panic!("{name}: rbdkit accepts it"))
        .to_string();
    assert_eq!(e.lines().count(), 1, "{name}: {e}");
    assert!(e.contains(needle), "{name}: expected {needle:?} in: {e}");

    let out_path = p.with_extension("out.raw");
    let out = Command::new(env!("CARGO_BIN_EXE_rbdkit"))
        .args(["convert", "--no-progress"])
        .args([&p, &out_path])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{name}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{name}: {err}");
    assert!(err.contains(needle), "{name}: {err}");
    assert!(!err.contains("panicked"), "{name}: {err}");
    assert!(!out_path.exists(), "{name}: output left behind");
    p
}

/// qemu reads `bytes` and rbdkit reads the same guest bytes, from the file and the stream.
fn accepted(dir: &Path, name: &str, bytes: &[u8]) {
    let p = write(dir, name, bytes);
    let (conv, io, err) = qemu_reads(&p);
    assert!(conv && io, "{name}: qemu refuses it: {err}");
    let want = reference_bytes(&p);
    let disk = open(&p, &Default::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(disk.virtual_size(), want.len() as u64, "{name}: size");
    let mut got = vec![0u8; want.len()];
    disk.read_at(0, &mut got)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(got == want, "{name}: bytes differ from qemu's");
    stream_reads(&p).unwrap_or_else(|e| panic!("{name} (stream): {e}"));
}

fn be32(v: u32) -> [u8; 4] {
    v.to_be_bytes()
}

fn be64(v: u64) -> [u8; 8] {
    v.to_be_bytes()
}

#[test]
fn refcount_and_snapshot_tables() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let b = base(dir, "1.1");
    // iotest 080: refcount table misaligned, ending beyond 2^63, over 8 MiB, absent.
    let table = "Reference count table";
    refused(
        dir,
        "rt-align.qcow2",
        &patched(&b, 48, &be64(0x10200)),
        table,
        "refcount table offset",
    );
    refused(
        dir,
        "rt-huge.qcow2",
        &patched(&b, 48, &be64(0x7fff_ffff_ffff_0000)),
        table,
        "refcount table offset",
    );
    refused(
        dir,
        "rt-big.qcow2",
        &patched(&b, 56, &be32(129)),
        "too large",
        "refcount table of 129",
    );
    refused(
        dir,
        "rt-none.qcow2",
        &patched(&b, 56, &be32(0)),
        "does not contain a reference count table",
        "refcount_table_clusters is 0",
    );
    // qemu opens these read-only: reading never needs the refcount table.
    accepted(dir, "rt-zero.qcow2", &patched(&b, 48, &be64(0)));
    accepted(dir, "rt-eof.qcow2", &patched(&b, 48, &be64(1 << 40)));
    accepted(dir, "rt-8m.qcow2", &patched(&b, 56, &be32(128)));
    // iotest 080: too many snapshots; a misaligned table even when empty.
    refused(
        dir,
        "sn-many.qcow2",
        &patched(&b, 60, &be32(65537)),
        "Snapshot table too large",
        "snapshot table of 65537",
    );
    refused(
        dir,
        "sn-align.qcow2",
        &patched(&b, 64, &be64(0x200)),
        "Snapshot table offset invalid",
        "snapshot table offset 0x200",
    );
}

#[test]
fn inconsistent_header_fields() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let v3 = base(dir, "1.1");
    let v2 = base(dir, "0.10");
    refused(
        dir,
        "rorder.qcow2",
        &patched(&v3, 96, &be32(7)),
        "Reference count entry width too large",
        "refcount_order 7",
    );
    accepted(dir, "rorder6.qcow2", &patched(&v3, 96, &be32(6)));
    // Version 2 has no refcount_order field: qemu ignores those bytes.
    accepted(dir, "v2-rorder.qcow2", &patched(&v2, 96, &be32(7)));
    // iotest 287: the compression bit is set exactly when the type is not zlib.
    refused(
        dir,
        "cbit.qcow2",
        &patched(&v3, 79, &[v3[79] | 8]),
        "must not be set",
        "must not be",
    );
    let zstd = create(dir, "zstd.qcow2", "1M", &["-o", "compression_type=zstd"]);
    qemu_io(&zstd, "qcow2", &["write -c -P 0xab 0 64k"]);
    let z = std::fs::read(zstd).unwrap();
    accepted(dir, "zstd-ok.qcow2", &z);
    refused(
        dir,
        "zstd-nobit.qcow2",
        &patched(&z, 79, &[z[79] & !8]),
        "bit must be set",
        "without its incompatible bit",
    );
    // iotest 244: data-file-raw needs a data file (qemu-img info alone does not check it).
    refused(
        dir,
        "raw-bit.qcow2",
        &patched(&v3, 95, &[2]),
        "data-file-raw requires a data file",
        "data-file-raw",
    );
    accepted(dir, "autoclear.qcow2", &patched(&v3, 95, &[4]));
}

#[test]
fn header_length_and_backing_name() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let b = base(dir, "1.1");
    refused(
        dir,
        "hlen-short.qcow2",
        &patched(&b, 100, &be32(103)),
        "header too short",
        "under 104",
    );
    refused(
        dir,
        "hlen-long.qcow2",
        &patched(&b, 100, &be32(65544)),
        "exceeds cluster size",
        "exceeds the cluster size",
    );
    // No multiple-of-8 rule in qemu: the extensions then start at the odd offset.
    accepted(dir, "hlen-odd.qcow2", &patched(&b, 100, &be32(105)));
    // The name's offset and its end must lie inside the first cluster; at most 1023 bytes.
    let name = |off: u64, len: u32| patched(&patched(&b, 8, &be64(off)), 16, &be32(len));
    refused(
        dir,
        "bf-off.qcow2",
        &name(0x10001, 0),
        "Invalid backing file offset",
        "beyond the first cluster",
    );
    refused(
        dir,
        "bf-end.qcow2",
        &name(0xff00, 257),
        "Backing file name too long",
        "too long",
    );
    refused(
        dir,
        "bf-1024.qcow2",
        &name(0x200, 1024),
        "Backing file name too long",
        "too long",
    );
    // An empty name is no backing file.
    accepted(dir, "bf-empty.qcow2", &name(0xff00, 0));
    // A virtual size that is not a multiple of 512 is rounded down, by both.
    accepted(dir, "size-odd.qcow2", &patched(&b, 24, &be64(1_048_575)));
}

/// iotest 290: version 2 has no zero clusters (a discard there cannot zero a cluster), and
/// qemu signals corruption when it meets the flag.
#[test]
fn zero_flag_in_a_version_2_image_fails_the_read() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let b = base(dir, "0.10");
    let l1 = u64::from_be_bytes(b[40..48].try_into().unwrap()) as usize;
    let l2 =
        (u64::from_be_bytes(b[l1..l1 + 8].try_into().unwrap()) & 0x00ff_ffff_ffff_fe00) as usize;
    let e = u64::from_be_bytes(b[l2..l2 + 8].try_into().unwrap());
    refused(
        dir,
        "v2-zero.qcow2",
        &patched(&b, l2, &be64(e | 1)),
        "Input/output error",
        "guest offset 0x0",
    );
    // A v2 zero flag without a host offset is just as invalid.
    refused(
        dir,
        "v2-zero-plain.qcow2",
        &patched(&b, l2, &be64(1)),
        "Input/output error",
        "version 2",
    );
    // In version 3 the same entry reads as zeros, in qemu and here.
    let v3 = base(dir, "1.1");
    let l1 = u64::from_be_bytes(v3[40..48].try_into().unwrap()) as usize;
    let l2 =
        (u64::from_be_bytes(v3[l1..l1 + 8].try_into().unwrap()) & 0x00ff_ffff_ffff_fe00) as usize;
    let e = u64::from_be_bytes(v3[l2..l2 + 8].try_into().unwrap());
    accepted(dir, "v3-zero.qcow2", &patched(&v3, l2, &be64(e | 1)));
}

/// The offset of header extension `magic` in `b` (searched from the end of the v3 header).
fn extension(b: &[u8], magic: u32) -> usize {
    let mut at = u32::from_be_bytes(b[100..104].try_into().unwrap()) as usize;
    loop {
        let kind = u32::from_be_bytes(b[at..at + 4].try_into().unwrap());
        let len = u32::from_be_bytes(b[at + 4..at + 8].try_into().unwrap()) as usize;
        assert_ne!(kind, 0, "no extension {magic:#x}");
        if kind == magic {
            return at;
        }
        at += 8 + len.div_ceil(8) * 8;
    }
}

#[test]
fn header_extensions() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    // A backing format name of 16 bytes or more (qemu keeps 15 and a NUL).
    qemu::run_in(
        Some(dir),
        "qemu-img",
        &["create", "-q", "-f", "raw", "base.raw", "1M"],
    );
    let img = create(dir, "bf.qcow2", "1M", &["-b", "base.raw", "-F", "raw"]);
    let b = std::fs::read(img).unwrap();
    let fmt = extension(&b, 0xe279_2aca);
    refused(
        dir,
        "bfmt-long.qcow2",
        &patched(&b, fmt + 4, &be32(16)),
        "too large (>=16)",
        "backing format name of 16 bytes",
    );

    // iotest 036/080 style: the bitmaps extension (made by `qemu-img bitmap --add`).
    let img = create(dir, "bm.qcow2", "1M", &[]);
    qemu_io(&img, "qcow2", &["write -P 0xab 0 64k"]);
    qemu::run(
        "qemu-img",
        &["bitmap", "--add", img.to_str().unwrap(), "b0"],
    );
    let b = std::fs::read(img).unwrap();
    let bm = extension(&b, 0x2385_2875);
    accepted(dir, "bm-ok.qcow2", &b);
    refused(
        dir,
        "bm-len.qcow2",
        &patched(&b, bm + 4, &be32(32)),
        "Invalid extension length",
        "not 24",
    );
    refused(
        dir,
        "bm-none.qcow2",
        &patched(&b, bm + 8, &be32(0)),
        "zero bitmaps",
        "0 bitmaps",
    );
    refused(
        dir,
        "bm-reserved.qcow2",
        &patched(&b, bm + 12, &be32(1)),
        "Reserved field is not zero",
        "reserved field",
    );
    refused(
        dir,
        "bm-dir.qcow2",
        &patched(&b, bm + 24, &be64(0x30200)),
        "invalid bitmap directory offset",
        "not cluster-aligned",
    );
    refused(
        dir,
        "bm-size.qcow2",
        &patched(&b, bm + 16, &be64(1 << 28)),
        "exceeds the maximum",
        "directory of 268435456 bytes",
    );
    // Without the autoclear bit qemu only warns and drops the bitmaps.
    let stale = patched(&b, 95, &[b[95] & !1]);
    accepted(dir, "bm-stale.qcow2", &patched(&stale, bm + 8, &be32(0)));
}
