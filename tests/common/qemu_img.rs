//! What the qcow2 writer tests share: images made by qemu-img and qemu-io, and qemu-img as the
//! judge of what rbdkit wrote (`check` finds nothing wrong, `convert -O raw` reads it).
use super::{rbd_with, run_ok, stderr, unique, Cleanup};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A path as the `&str` an argument list takes.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A qcow2 image of `size` written by qemu-io with `cmds`.
pub fn qemu_image(dir: &Path, name: &str, size: &str, cmds: &[&str]) -> PathBuf {
    let p = dir.join(name);
    run_ok("qemu-img", &["create", "-q", "-f", "qcow2", s(&p), size]);
    let mut args = vec!["-f", "qcow2"];
    for c in cmds {
        args.extend(["-c", c]);
    }
    args.push(s(&p));
    run_ok("qemu-io", &args);
    p
}

/// `qemu-img convert -O raw` of `img`: the bytes qemu reads.
pub fn qemu_raw(img: &Path) -> Vec<u8> {
    let out = img.with_extension("qemu.raw");
    run_ok("qemu-img", &["convert", "-O", "raw", s(img), s(&out)]);
    let b = std::fs::read(&out).unwrap();
    std::fs::remove_file(&out).unwrap();
    b
}

/// `qemu-img check --output=json`, asserting it found nothing wrong and nothing leaked.
pub fn qemu_check(img: &Path) -> serde_json::Value {
    let o = Command::new("qemu-img")
        .args(["check", "--output=json", s(img)])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "qemu-img check {}: exit {:?}: {text}{}",
        img.display(),
        o.status.code(),
        stderr(&o)
    );
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["check-errors"], 0, "{text}");
    assert!(v.get("leaks").is_none(), "leaked clusters: {text}");
    assert!(v.get("corruptions").is_none(), "{text}");
    v
}

/// The raw disk the export tests import, in `d`: 48 MiB with data, a zeroed cluster inside
/// it and holes (`rbd import` leaves them unallocated).
pub fn export_source_raw(d: &Path) -> PathBuf {
    let src = qemu_image(
        d,
        "src.qcow2",
        "48M",
        &[
            "write -P 0x51 1M 5M",
            "write -z 2M 64k",
            "write -P 0x52 30M 100k",
            "write -P 0x53 47M 1M",
        ],
    );
    let raw = d.join("src.raw");
    std::fs::write(&raw, qemu_raw(&src)).unwrap();
    raw
}

/// `raw` imported as a new image of `obj`-sized objects (named after `prefix`) with a
/// snapshot `s`, both removed by `c`: the image's spec.
pub fn import_with_snapshot(
    conf: &str,
    raw: &Path,
    obj: &str,
    prefix: &str,
    c: &mut Cleanup,
) -> String {
    let spec = format!("images/{}", unique(prefix));
    let args = [
        "import",
        "--no-progress",
        "--object-size",
        obj,
        s(raw),
        &spec,
    ];
    let o = rbd_with(conf, &args);
    assert!(o.status.success(), "rbd import: {}", stderr(&o));
    c.add(&spec);
    let o = rbd_with(conf, &["snap", "create", &format!("{spec}@s")]);
    assert!(o.status.success(), "{}", stderr(&o));
    spec
}
