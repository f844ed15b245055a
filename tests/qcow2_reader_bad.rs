//! Bad qcow2 images are refused with a one-line error naming the problem, never a panic: by
//! the library (from the file, and from memory when the image needs no other file), and by
//! `rbdkit convert` (exit 1, one line on stderr, no output file).
//!
//! One table: each row names the image, says how it is damaged — bytes derived from a good
//! qemu-made image, or files made next to it (backing loops, chains, LUKS, FIFOs) — and the
//! substring the error must contain.
mod qcow2_check;
mod qemu;
use qcow2_check::{open, PATTERN};
use qemu::{convert_qcow2, create, qemu_io, run, run_in};
use rbdkit::disk::qcow2::Qcow2;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The good image every damage starts from.
struct Good {
    /// The directory the test's files live in.
    dir: PathBuf,
    /// `good.qcow2`: 9 MiB, written with [`PATTERN`].
    path: PathBuf,
    /// Its bytes.
    bytes: Vec<u8>,
}

/// Mask of the host offset in an L1 or L2 entry.
const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;

impl Good {
    /// The good bytes with `v` written at `at`.
    fn patched(&self, at: usize, v: &[u8]) -> Vec<u8> {
        let mut b = self.bytes.clone();
        b[at..at + v.len()].copy_from_slice(v);
        b
    }

    /// Offset of the first L1 entry.
    fn l1(&self) -> usize {
        be64(&self.bytes, 40) as usize
    }

    /// The first L1 entry (flags and the first L2 table's offset).
    fn l1_entry(&self) -> u64 {
        be64(&self.bytes, self.l1())
    }

    /// Offset of the first L2 table.
    fn l2(&self) -> usize {
        (self.l1_entry() & OFFSET_MASK) as usize
    }

    /// The first L1 entry pointing beyond the end of the file (flags kept).
    fn l2_beyond_eof(&self) -> Vec<u8> {
        let entry = self.l1_entry() & !OFFSET_MASK | 1 << 40;
        self.patched(self.l1(), &entry.to_be_bytes())
    }

    /// The first L1 entry pointing 512 bytes into a cluster.
    fn l2_unaligned(&self) -> Vec<u8> {
        self.patched(self.l1(), &(self.l1_entry() + 512).to_be_bytes())
    }

    /// The first L2 entry pointing 512 bytes into a cluster.
    fn data_unaligned(&self) -> Vec<u8> {
        let entry = be64(&self.bytes, self.l2()) + 512;
        self.patched(self.l2(), &entry.to_be_bytes())
    }

    /// The good image compressed by `qemu-img convert OPTS`, its compressed data then damaged.
    fn compressed_damaged(&self, name: &str, opts: &[&str]) -> Vec<u8> {
        let src = self.dir.join(format!("src-{name}"));
        convert_qcow2(&self.path, &src, opts);
        let mut z = std::fs::read(&src).unwrap();
        let n = z.len();
        for b in &mut z[n - 20000..n - 100] {
            *b ^= 0x5a;
        }
        z
    }
}

/// How a row makes its bad image.
enum Damage {
    /// Bytes derived from the good image; checked from the file and from memory.
    Bytes(fn(&Good) -> Vec<u8>),
    /// Files made in the directory (the image names other files); returns the image to open.
    /// Checked from the file only.
    Files(fn(&Path) -> PathBuf),
}
use Damage::{Bytes, Files};

/// (image name, damage, what the error must say). One row a line, so not rustfmt's layout.
#[rustfmt::skip]
const ROWS: &[(&str, Damage, &str)] = &[
    // Truncated: data clusters beyond the end of the file; header only; garbage after the magic.
    ("truncated.qcow2", Bytes(|g| g.bytes[..g.bytes.len() / 2].to_vec()), "beyond the end"),
    ("tiny.qcow2",      Bytes(|g| g.bytes[..50].to_vec()),                 "too short"),
    ("garbage.qcow2",   Bytes(|_| garbage_after_magic()),                  "qcow2 version"),
    // Header fields out of range.
    ("cbits.qcow2",   Bytes(|g| g.patched(20, &30u32.to_be_bytes())),        "cluster_bits"),
    ("huge.qcow2",    Bytes(|g| g.patched(24, &(1u64 << 63).to_be_bytes())), "virtual size"),
    ("l1big.qcow2",   Bytes(|g| g.patched(36, &u32::MAX.to_be_bytes())),     "L1 table"),
    ("l1small.qcow2", Bytes(|g| g.patched(36, &0u32.to_be_bytes())),         "L1 table has 0 entries"),
    ("l1eof.qcow2",   Bytes(|g| g.patched(40, &(1u64 << 40).to_be_bytes())), "extends beyond the end"),
    ("l1align.qcow2", Bytes(|g| g.patched(40, &0x10200u64.to_be_bytes())),   "not cluster-aligned"),
    ("hlen.qcow2",    Bytes(|g| g.patched(100, &70000u32.to_be_bytes())),    "header_length"),
    // An L2 table beyond the end of the file, one not aligned; a data cluster not aligned.
    ("l2eof.qcow2",   Bytes(Good::l2_beyond_eof),  "L2 table at offset"),
    ("l2align.qcow2", Bytes(Good::l2_unaligned),   "not cluster-aligned"),
    ("dalign.qcow2",  Bytes(Good::data_unaligned), "not aligned"),
    // Corrupt bit, unknown incompatible feature, AES by hand.
    ("corrupt.qcow2", Bytes(|g| g.patched(79, &[g.bytes[79] | 2])),    "marked corrupt"),
    ("unknown.qcow2", Bytes(|g| g.patched(77, &[1])),                  "unknown incompatible"),
    ("aes.qcow2",     Bytes(|g| g.patched(32, &1u32.to_be_bytes())),   "encrypted (AES)"),
    // Corrupt compressed data, deflate and zstd; an extended-L2 subcluster allocated and zero.
    ("zbad.qcow2",     Bytes(|g| g.compressed_damaged("zbad.qcow2", &["-c"])), "compressed cluster"),
    ("zstdbad.qcow2",  Bytes(|g| g.compressed_damaged("zstdbad.qcow2", ZSTD)), "compressed cluster"),
    ("ext-both.qcow2", Bytes(|g| subcluster_allocated_and_zero(&g.dir)),       "both allocated and zero"),
    // Files the image names: a backing loop, a chain deeper than the limit, a missing backing
    // file, backing files that are no disk (a FIFO would block forever, a char device).
    ("loop-a.qcow2",  Files(backing_loop),                                 "loops"),
    ("d16.qcow2",     Files(chain_of_17),                                  "deeper than 16"),
    ("luks.qcow2",    Files(luks),                                         "encrypted (LUKS)"),
    ("orphan.qcow2",  Files(|d| backed(d, "orphan.qcow2", "gone.qcow2")), "not found"),
    ("on-fifo.qcow2", Files(on_fifo),                                      "is a FIFO: refused"),
    ("on-zero.qcow2", Files(|d| backed(d, "on-zero.qcow2", "/dev/zero")),  "is a character device: refused"),
];

/// `qemu-img convert` options for zstd compression.
const ZSTD: &[&str] = &["-c", "-o", "compression_type=zstd"];

#[test]
fn bad_images_are_refused_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let path = create(dir, "good.qcow2", "9M", &[]);
    qemu_io(&path, "qcow2", PATTERN);
    let good = Good {
        dir: dir.to_path_buf(),
        bytes: std::fs::read(&path).unwrap(),
        path,
    };
    for (name, damage, needle) in ROWS {
        match damage {
            Bytes(make) => refused_bytes(&good, name, &make(&good), needle),
            Files(make) => {
                let img = make(dir);
                assert!(img.ends_with(name), "row {name} made {}", img.display());
                refused_path(&img, needle);
            }
        }
    }
}

/// The magic, then no header worth the name.
fn garbage_after_magic() -> Vec<u8> {
    let mut g = b"QFI\xfb".to_vec();
    g.extend(std::iter::repeat_n(0xa5u8, 8192));
    g
}

/// Extended L2: a subcluster both allocated and zero.
fn subcluster_allocated_and_zero(dir: &Path) -> Vec<u8> {
    let ext = create(dir, "ext.qcow2", "1M", &["-o", "extended_l2=on"]);
    qemu_io(&ext, "qcow2", &["write -P 1 0 4k"]);
    let mut b = std::fs::read(&ext).unwrap();
    let l2 = (be64(&b, be64(&b, 40) as usize) & OFFSET_MASK) as usize;
    let bitmap = be64(&b, l2 + 8) | 1 << 32;
    b[l2 + 8..l2 + 16].copy_from_slice(&bitmap.to_be_bytes());
    b
}

/// loop-a.qcow2 -> loop-b.qcow2 -> loop-a.qcow2.
fn backing_loop(dir: &Path) -> PathBuf {
    let a = create(dir, "loop-a.qcow2", "1M", &[]);
    let b_opts = ["-b", "loop-a.qcow2", "-F", "qcow2"];
    create(dir, "loop-b.qcow2", "1M", &b_opts);
    let rebase = [
        "rebase",
        "-u",
        "-f",
        "qcow2",
        "-b",
        "loop-b.qcow2",
        "-F",
        "qcow2",
    ];
    run_in(
        Some(dir),
        "qemu-img",
        &[&rebase[..], &["loop-a.qcow2"]].concat(),
    );
    a
}

/// d0 <- d1 <- ... <- d16: sixteen backing images below d16, one more than allowed.
fn chain_of_17(dir: &Path) -> PathBuf {
    create(dir, "d0.qcow2", "1M", &[]);
    for i in 1..=16 {
        let below = format!("d{}.qcow2", i - 1);
        create(
            dir,
            &format!("d{i}.qcow2"),
            "1M",
            &["-b", &below, "-F", "qcow2"],
        );
    }
    let fine = dir.join("d15.qcow2");
    assert!(open(&fine, None).is_ok(), "16 images deep is fine");
    dir.join("d16.qcow2")
}

/// Encryption (LUKS), made by qemu-img.
fn luks(dir: &Path) -> PathBuf {
    let luks = dir.join("luks.qcow2");
    let p = luks.to_str().unwrap();
    let secret = "secret,id=sec0,data=not-a-real-secret";
    let encrypt = "encrypt.format=luks,encrypt.key-secret=sec0";
    let args = [
        "create", "-q", "-f", "qcow2", "--object", secret, "-o", encrypt, p, "4M",
    ];
    run("qemu-img", &args);
    luks
}

/// An image whose backing file is a FIFO.
fn on_fifo(dir: &Path) -> PathBuf {
    run_in(Some(dir), "mkfifo", &["fifo"]);
    create(
        dir,
        "on-fifo.qcow2",
        "1M",
        &["-b", "fifo", "-F", "raw", "-u"],
    )
}

/// `bytes` as an image named `name` is refused from the file and from memory.
fn refused_bytes(good: &Good, name: &str, bytes: &[u8], needle: &str) {
    let p = good.dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    refused_path(&p, needle);
    let r = Qcow2::from_bytes(bytes.to_vec(), name).and_then(|img| {
        rbdkit::disk::scan(&img, u64::MAX)?;
        Ok(())
    });
    let e = r
        .err()
        .unwrap_or_else(|| panic!("{name}: accepted from memory"));
    assert!(e.to_string().contains(needle), "{name}: {e}");
}

/// The image at `p` is refused by the library (opening, or reading everything when the damage
/// is in the data) with one line containing `needle`, and by `rbdkit convert`.
fn refused_path(p: &Path, needle: &str) {
    let name = p.display();
    let r = open(p, None).and_then(|d| {
        d.extents(0, d.virtual_size())?;
        rbdkit::disk::scan(d.as_ref(), u64::MAX)
    });
    let e = r
        .err()
        .unwrap_or_else(|| panic!("{name}: accepted"))
        .to_string();
    assert_eq!(e.lines().count(), 1, "{name}: {e}");
    assert!(e.contains(needle), "{name}: expected {needle:?} in: {e}");
    // The CLI: exit status 1, one line on stderr, no output file.
    let out_path = p.with_extension("out.raw");
    let out = Command::new(env!("CARGO_BIN_EXE_rbdkit"))
        .args(["convert", "--overwrite", "--no-progress"])
        .args([p, &out_path])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{name}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{name}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!out_path.exists(), "{name}: output left behind");
}

fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

/// `name` over the raw or qcow2 file `backing`, which is not checked (`-u`): it may be missing.
fn backed(dir: &Path, name: &str, backing: &str) -> PathBuf {
    let fmt = if backing.ends_with(".qcow2") {
        "qcow2"
    } else {
        "raw"
    };
    create(dir, name, "1M", &["-b", backing, "-F", fmt, "-u"])
}
