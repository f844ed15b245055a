//! Hostile images, made at test time by qemu-img: each must be refused by `convert` and
//! `import-raw` with exit 1 and one line on stderr, leaving no output file and no image in any
//! pool, so no byte of a host file can reach the uploader. The safe default refuses every
//! named file; `--allow-backing-files` still refuses names that leave the allowed directories,
//! devices, FIFOs and protocol names. Live: `import-raw` needs the dev cluster (`CEPH_CONF`).
mod common;
mod qemu;
use common::{conf, images_with_prefix, rbdkit, stderr, unique};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A host file the images point at, with a marker that must never appear in an output.
const SECRET: &[u8] = b"[client.admin]\n\tkey = AQBSECRETSECRETSECRETSECRETSECRET==\n";

fn qemu_img(dir: &Path, args: &[&str]) {
    qemu::run_in(Some(dir), "qemu-img", args);
}

/// `qemu-img create -f qcow2 -u -b NAME -F FMT DIR/FILE 1M`: the name is stored unchecked.
fn with_backing(dir: &Path, file: &str, backing: &str, fmt: &str) -> PathBuf {
    qemu_img(
        dir,
        &[
            "create", "-q", "-f", "qcow2", "-u", "-b", backing, "-F", fmt, file, "1M",
        ],
    );
    dir.join(file)
}

/// A qcow2 whose external data file name is `target` (with `data_file_raw` if `raw`): made
/// with a harmless placeholder of the same length, then the name is patched in, so qemu-img
/// never opens (or truncates) the host file.
fn with_data_file(dir: &Path, file: &str, target: &str, raw: bool) -> PathBuf {
    let placeholder: String = "p".repeat(target.len());
    let mut opts = format!("data_file={placeholder}");
    if raw {
        opts.push_str(",data_file_raw=on");
    }
    qemu_img(
        dir,
        &["create", "-q", "-f", "qcow2", "-o", &opts, file, "1M"],
    );
    let path = dir.join(file);
    let mut b = std::fs::read(&path).unwrap();
    let at = b
        .windows(placeholder.len())
        .position(|w| w == placeholder.as_bytes())
        .expect("data file name in the header");
    b[at..at + target.len()].copy_from_slice(target.as_bytes());
    std::fs::write(&path, b).unwrap();
    path
}

/// Every way `img` can be handed to rbdkit, with `extra` flags: each must fail cleanly.
fn assert_refused(img: &Path, extra: &[&str], needle: &str) {
    let name = img.display().to_string();
    let out_file = img.with_extension("out.raw");
    let mut convert = vec!["convert", "--no-progress"];
    convert.extend(extra);
    let out = run(&[&convert[..], &[&name, out_file.to_str().unwrap()]].concat());
    one_line_failure(&out, needle, &name);
    assert!(
        !out_file.exists(),
        "{name}: convert left {}",
        out_file.display()
    );

    let image = unique("hostile");
    let dest = format!("images/{image}");
    let mut import = vec!["import-raw"];
    import.extend(extra);
    let out = rbdkit(&[&import[..], &[&name, &dest]].concat());
    one_line_failure(&out, needle, &name);
    for pool in ["images", "volumes", "vms", "backups"] {
        let left = images_with_prefix(&conf(), pool, &image);
        assert!(left.is_empty(), "{name}: import left {left:?} in {pool}");
    }

    let mut checksum = vec!["checksum"];
    checksum.extend(extra);
    let out = run(&[&checksum[..], &[&name]].concat());
    one_line_failure(&out, needle, &name);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("sha256"),
        "{name}"
    );
}

/// `rbdkit convert --no-progress ARGS`, which must succeed.
fn convert_ok(args: &[&str]) {
    let out = run(&[&["convert", "--no-progress"], args].concat());
    assert!(out.status.success(), "convert {args:?}: {}", stderr(&out));
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rbdkit"))
        .args(args)
        .output()
        .expect("run rbdkit")
}

fn one_line_failure(out: &Output, needle: &str, name: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{name}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{name}: {err}");
    assert!(err.contains(needle), "{name}: expected {needle:?} in {err}");
    assert!(!err.contains("panicked"), "{name}: {err}");
    let secret = String::from_utf8_lossy(SECRET);
    assert!(
        !err.contains(secret.lines().nth(1).unwrap().trim()),
        "{name}: {err}"
    );
}

/// The upload directory `up/` and, beside it, a keyring-like host file `host/keyring`.
fn layout() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let up = d.path().join("up");
    let host = d.path().join("host");
    std::fs::create_dir_all(&up).unwrap();
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("keyring"), SECRET).unwrap();
    (d, up, host)
}

#[test]
fn every_named_file_is_refused_by_default() {
    let (_d, up, host) = layout();
    let keyring = host.join("keyring");
    let cases = [
        with_backing(&up, "passwd.qcow2", "/etc/passwd", "raw"),
        with_backing(&up, "keyring.qcow2", keyring.to_str().unwrap(), "raw"),
        with_backing(&up, "escape.qcow2", "../host/keyring", "raw"),
        with_backing(&up, "null.qcow2", "/dev/null", "raw"),
        with_backing(
            &up,
            "json.qcow2",
            "json:{\"file.filename\":\"/etc/passwd\"}",
            "raw",
        ),
        with_backing(&up, "nbd.qcow2", "nbd:localhost:10809", "raw"),
        with_data_file(&up, "data.qcow2", "/etc/passwd", false),
        with_data_file(&up, "data-raw.qcow2", "/etc/passwd", true),
    ];
    for img in &cases {
        assert_refused(img, &[], "--allow-backing-files");
    }
}

#[test]
fn allowed_backing_files_stay_inside_the_allowed_directories() {
    let (_d, up, host) = layout();
    let keyring = host.join("keyring");
    std::os::unix::fs::symlink(&keyring, up.join("link")).unwrap();
    let fifo = up.join("fifo");
    qemu::run("mkfifo", &[fifo.to_str().unwrap()]);
    // A chain whose first step is allowed and whose second names a host file.
    with_backing(&up, "mid.qcow2", keyring.to_str().unwrap(), "raw");
    let allow = ["--allow-backing-files"];
    let cases = [
        (
            with_backing(&up, "passwd.qcow2", "/etc/passwd", "raw"),
            "outside the allowed",
        ),
        (
            with_backing(&up, "escape.qcow2", "../host/keyring", "raw"),
            "outside the allowed",
        ),
        (
            with_backing(&up, "link.qcow2", "link", "raw"),
            "outside the allowed",
        ),
        (
            with_backing(&up, "chain.qcow2", "mid.qcow2", "qcow2"),
            "outside the allowed",
        ),
        (
            with_backing(&up, "null.qcow2", "/dev/null", "raw"),
            "character device",
        ),
        (with_backing(&up, "fifo.qcow2", "fifo", "raw"), "FIFO"),
        (
            with_backing(
                &up,
                "json.qcow2",
                "json:{\"file.filename\":\"/etc/passwd\"}",
                "raw",
            ),
            "json:",
        ),
        (
            with_backing(&up, "http.qcow2", "http://169.254.169.254/latest", "raw"),
            "protocol",
        ),
        (
            with_data_file(&up, "data.qcow2", "/etc/passwd", false),
            "outside the allowed",
        ),
        (
            with_data_file(&up, "data-raw.qcow2", "/etc/passwd", true),
            "outside the allowed",
        ),
    ];
    for (img, needle) in &cases {
        assert_refused(img, &allow, needle);
    }
    // A block device, where the machine has one.
    let block = std::fs::read_dir("/dev").unwrap().flatten().find(|e| {
        use std::os::unix::fs::FileTypeExt;
        e.file_type().is_ok_and(|t| t.is_block_device())
    });
    if let Some(dev) = block {
        let img = with_backing(&up, "block.qcow2", dev.path().to_str().unwrap(), "raw");
        assert_refused(&img, &allow, "block device");
    } else {
        eprintln!("no block device under /dev on this machine: that case is covered by the FIFO and character device cases");
    }
    // With the host directory allowed explicitly, the symlink is followed.
    let img = up.join("link.qcow2");
    let out_file = up.join("link.raw");
    let backing_dir = host.to_str().unwrap();
    convert_ok(&[
        "--allow-backing-files",
        "--backing-dir",
        backing_dir,
        img.to_str().unwrap(),
        out_file.to_str().unwrap(),
    ]);
    let bytes = std::fs::read(&out_file).unwrap();
    assert_eq!(&bytes[..SECRET.len()], SECRET);
}

#[test]
fn a_declared_raw_image_that_is_a_qcow2_is_refused_unless_trusted() {
    let (_d, up, _host) = layout();
    let img = with_backing(&up, "passwd.qcow2", "/etc/passwd", "raw");
    assert_refused(&img, &["--source-format", "raw"], "--trust-declared-raw");
    // Trusted: the container's own bytes, as a raw disk, and nothing of the host file.
    let out_file = up.join("as-raw.raw");
    convert_ok(&[
        "--source-format",
        "raw",
        "--trust-declared-raw",
        img.to_str().unwrap(),
        out_file.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read(&out_file).unwrap(),
        std::fs::read(&img).unwrap()
    );
    let passwd = std::fs::read("/etc/passwd").unwrap();
    let raw = std::fs::read(&out_file).unwrap();
    assert!(!raw
        .windows(passwd.len().min(64))
        .any(|w| w == &passwd[..passwd.len().min(64)]));
}

#[test]
fn names_from_the_image_cannot_break_the_error_line() {
    let (_d, up, _host) = layout();
    let img = with_backing(&up, "esc.qcow2", "x\n\u{1b}[2Jrbdkit: all good\r", "raw");
    let dest = up.join("esc.raw");
    let out = run(&[
        "convert",
        "--no-progress",
        img.to_str().unwrap(),
        dest.to_str().unwrap(),
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err:?}");
    assert!(!err.contains('\u{1b}') && !err.contains('\r'), "{err:?}");
    assert!(err.contains("x\\n\\u{1b}[2J"), "{err:?}");
}

/// An ISO 9660 primary volume descriptor at 32 KiB, by hand (no mkisofs needed).
fn iso(dir: &Path) -> PathBuf {
    let mut b = vec![0u8; 64 << 10];
    let pvd = 16 * 2048;
    b[pvd] = 1;
    b[pvd + 1..pvd + 6].copy_from_slice(b"CD001");
    b[pvd + 6] = 1;
    b[pvd + 80..pvd + 84].copy_from_slice(&32u32.to_le_bytes());
    b[pvd + 84..pvd + 88].copy_from_slice(&32u32.to_be_bytes());
    b[pvd + 128..pvd + 130].copy_from_slice(&2048u16.to_le_bytes());
    b[pvd + 130..pvd + 132].copy_from_slice(&2048u16.to_be_bytes());
    let p = dir.join("disc.iso");
    std::fs::write(&p, b).unwrap();
    p
}

#[test]
fn every_container_is_refused_by_name_never_copied_as_raw() {
    let (_d, up, _host) = layout();
    let mk = |name: &str, fmt: &str, opts: &[&str]| {
        let mut args = vec!["create", "-q", "-f", fmt];
        args.extend(opts);
        args.extend([name, "16M"]);
        qemu_img(&up, &args);
        up.join(name)
    };
    // VMDK, VHD and VHDX are read (tests/vmdk_reader.rs, vhd_reader.rs, vhdx_reader.rs); a VMDK descriptor file names its extents, so it is
    // refused by default like any image that names files.
    let flat = mk("flat.vmdk", "vmdk", &["-o", "subformat=monolithicFlat"]);
    assert_refused(&flat, &[], "--allow-backing-files");
    let cases = [
        (mk("a.vdi", "vdi", &[]), "VDI"),
        (mk("a.qed", "qed", &[]), "QED"),
        (
            mk(
                "a.luks",
                "luks",
                &["--object", "secret,id=s0,data=abc", "-o", "key-secret=s0"],
            ),
            "LUKS",
        ),
    ];
    for (img, display) in &cases {
        assert_refused(img, &[], &format!("{display}: not supported yet"));
        // Declared raw: refused all the same, naming the way out.
        assert_refused(img, &["--source-format", "raw"], "--trust-declared-raw");
    }
    // From a pipe: the head decides (a fixed VHD's proof is its footer, at the end: the
    // stream cannot see it, so it is left out here).
    for (img, display) in cases.iter().filter(|(p, _)| !p.ends_with("f.vhd")) {
        let image = unique("hostile-pipe");
        let out = Command::new(env!("CARGO_BIN_EXE_rbdkit"))
            .args([
                "--no-progress",
                "import-raw",
                "-",
                &format!("images/{image}"),
            ])
            .env("CEPH_CONF", conf())
            .stdin(std::fs::File::open(img).unwrap())
            .output()
            .unwrap();
        one_line_failure(
            &out,
            &format!("{display}: not supported yet"),
            &img.display().to_string(),
        );
        assert!(images_with_prefix(&conf(), "images", &image).is_empty());
    }
}

#[test]
fn an_iso_is_copied_as_raw_only_when_declared() {
    let (_d, up, _host) = layout();
    let disc = iso(&up);
    assert_refused(&disc, &[], "--source-format iso");
    let vmdk = up.join("a.vmdk");
    qemu_img(&up, &["create", "-q", "-f", "vmdk", "a.vmdk", "16M"]);
    assert_refused(&vmdk, &["--source-format", "iso"], "declared iso");
    let out_file = up.join("disc.raw");
    convert_ok(&[
        "--source-format",
        "iso",
        disc.to_str().unwrap(),
        out_file.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read(&out_file).unwrap(),
        std::fs::read(&disc).unwrap()
    );
}

#[test]
fn a_qcow2_that_is_also_an_mbr_disk_is_refused() {
    let (_d, up, _host) = layout();
    qemu_img(
        &up,
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            "compat=0.10",
            "both.qcow2",
            "16M",
        ],
    );
    let p = up.join("both.qcow2");
    let mut b = std::fs::read(&p).unwrap();
    // One Linux partition from sector 2048, in the header's unused bytes (v2 header: 72).
    let pte = 446;
    b[pte + 4] = 0x83;
    b[pte + 8..pte + 12].copy_from_slice(&2048u32.to_le_bytes());
    b[pte + 12..pte + 16].copy_from_slice(&4096u32.to_le_bytes());
    b[510] = 0x55;
    b[511] = 0xaa;
    std::fs::write(&p, b).unwrap();
    assert_refused(&p, &[], "matches several formats (qcow2, mbr)");
}
