//! `rbdkit inspect` against `qemu-img info --output json` on images made by qemu-img: the same
//! format, virtual size, cluster size and backing file; the allocation against
//! `qemu-img map`; the verdict and exit status (0 safe, 1 unsafe) with its reasons; names from
//! the image escaped in plain output; a 1 TiB image and a stream read in bounded time.
mod qemu;
use qemu::{create, qemu_io, run, run_in};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn inspect(args: &[&str]) -> (Output, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_rbdkit"))
        .args(["--format", "json", "inspect"])
        .args(args)
        .output()
        .expect("run rbdkit");
    let err = String::from_utf8_lossy(&out.stderr);
    let j: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: {e}; stderr {err}"));
    (out, j)
}

/// `qemu-img info`, with the format forced where qemu's own probe cannot see it.
fn qemu_info(p: &Path, format: Option<&str>) -> Value {
    let mut args = vec!["info", "--output", "json"];
    if let Some(f) = format {
        args.extend(["-f", f]);
    }
    args.push(p.to_str().unwrap());
    serde_json::from_slice(&run("qemu-img", &args)).unwrap()
}

/// Compares what both tools say of `p`; returns rbdkit's report.
fn same_as_qemu(p: &Path) -> Value {
    same_as_qemu_as(p, None)
}

/// [`same_as_qemu`], qemu-img told the format.
fn same_as_qemu_as(p: &Path, format: Option<&str>) -> Value {
    let name = p.display();
    let (_, j) = inspect(&[p.to_str().unwrap()]);
    let q = qemu_info(p, format);
    assert_eq!(j["format"], q["format"], "{name}: format");
    assert_eq!(j["virtual_size"], q["virtual-size"], "{name}: virtual size");
    if let Some(cs) = q.get("cluster-size") {
        assert_eq!(&j["cluster_size"], cs, "{name}: cluster size");
    }
    let backing = q.get("backing-filename").cloned().unwrap_or(Value::Null);
    assert_eq!(j["backing_file"], backing, "{name}: backing file");
    if let Some(fmt) = q.get("backing-filename-format") {
        assert_eq!(&j["backing_format"], fmt, "{name}: backing format");
    }
    if let Some(spec) = q["format-specific"]["data"].as_object() {
        if let Some(df) = spec.get("data-file") {
            assert_eq!(&j["data_file"], df, "{name}: data file");
        }
        if let Some(c) = spec.get("compat") {
            assert_eq!(&j["qcow2"]["compat"], c, "{name}: compat");
        }
        if let Some(c) = spec.get("compression-type") {
            assert_eq!(
                &j["qcow2"]["compression_type"], c,
                "{name}: compression type"
            );
        }
        if let Some(c) = spec.get("extended-l2") {
            assert_eq!(&j["qcow2"]["extended_l2"], c, "{name}: extended l2");
        }
    }
    assert_eq!(
        j["file_size"],
        std::fs::metadata(p).unwrap().len(),
        "{name}: file size"
    );
    j
}

/// Guest bytes `qemu-img map` reports as data held by the image itself (depth 0).
fn mapped_data(p: &Path) -> u64 {
    let out = run_in(
        p.parent(),
        "qemu-img",
        &["map", "--output", "json", p.to_str().unwrap()],
    );
    let m: Vec<Value> = serde_json::from_slice(&out).unwrap();
    m.iter()
        .filter(|e| e["data"] == true && e["depth"] == 0)
        .map(|e| e["length"].as_u64().unwrap())
        .sum()
}

#[test]
fn qcow2_facts_match_qemu_img_info_and_map() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let pattern = "write -P 0x11 0 100k; write -P 0x22 3M 1M; write -z 5M 256k";
    let mut images = Vec::new();
    for (name, opts) in [
        ("v3.qcow2", vec![]),
        ("v2.qcow2", vec!["-o", "compat=0.10"]),
        ("c4k.qcow2", vec!["-o", "cluster_size=4096"]),
        ("c2m.qcow2", vec!["-o", "cluster_size=2M"]),
        (
            "extl2.qcow2",
            vec!["-o", "extended_l2=on,cluster_size=128k"],
        ),
        ("zstd.qcow2", vec!["-o", "compression_type=zstd"]),
    ] {
        let p = create(dir, name, "8M", &opts);
        qemu_io(&p, "qcow2", &pattern.split("; ").collect::<Vec<_>>());
        images.push(p);
    }
    let base = images[0].clone();
    images.push(create(
        dir,
        "child.qcow2",
        "8M",
        &["-b", "v3.qcow2", "-F", "qcow2"],
    ));
    images.push(create(dir, "ext.qcow2", "8M", &["-o", "data_file=ext.raw"]));
    // Compressed clusters.
    let comp = dir.join("comp.qcow2");
    run_in(
        Some(dir),
        "qemu-img",
        &[
            "convert",
            "-q",
            "-c",
            "-O",
            "qcow2",
            base.to_str().unwrap(),
            "comp.qcow2",
        ],
    );
    images.push(comp);
    for p in &images {
        let j = same_as_qemu(p);
        let name = p.display();
        assert_eq!(
            j["allocated_bytes"],
            mapped_data(p),
            "{name}: allocated bytes"
        );
        let names_files = !j["backing_file"].is_null() || !j["data_file"].is_null();
        assert_eq!(j["safe"], !names_files, "{name}: {j}");
        assert_eq!(j["readable"], true, "{name}");
    }
    // The exit status follows the verdict; the reason names the file and the flag.
    let (out, j) = inspect(&[dir.join("child.qcow2").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let reasons = j["reasons"].to_string();
    assert!(
        reasons.contains("v3.qcow2") && reasons.contains("--allow-backing-files"),
        "{reasons}"
    );
    let (out, _) = inspect(&[base.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    // --openstack refuses extended L2 (format_inspector does not know the bit); rbdkit reads it.
    let (out, j) = inspect(&["--openstack", dir.join("extl2.qcow2").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{j}");
    assert_eq!(j["reasons"].as_array().unwrap().len(), 0, "{j}");
    assert_eq!(j["openstack_safe"], false);
    assert!(
        j["openstack_reasons"].to_string().contains("extended L2"),
        "{j}"
    );
    let (out, j) = inspect(&["--openstack", base.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{j}");
}

#[test]
fn every_container_format_is_named_and_not_supported_ones_are_unsafe() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let mk = |name: &str, fmt: &str, opts: &[&str]| {
        let mut args = vec!["create", "-q", "-f", fmt];
        args.extend(opts);
        args.extend([name, "64M"]);
        run_in(Some(dir), "qemu-img", &args);
        dir.join(name)
    };
    let cases = [
        (mk("a.vdi", "vdi", &[]), "vdi", "VDI"),
        (mk("a.qed", "qed", &[]), "qed", "QED"),
    ];
    for (p, disk_format, display) in &cases {
        // qemu's own probe looks at offset 0 only, so it takes a fixed VHD (footer at the end)
        // for raw; told the format it reads the footer as rbdkit does.
        let fixed_vhd = p.ends_with("f.vhd");
        let j = same_as_qemu_as(p, fixed_vhd.then_some("vpc"));
        let name = p.display();
        assert_eq!(j["disk_format"], *disk_format, "{name}");
        assert_eq!(j["safe"], false, "{name}");
        assert_eq!(j["readable"], false, "{name}");
        assert!(
            j["reasons"]
                .to_string()
                .contains(&format!("{display}: not supported yet")),
            "{name}: {j}"
        );
    }
    // LUKS: qemu-img info needs the secret to open it, so only the format is compared.
    let luks = dir.join("a.luks");
    run_in(
        Some(dir),
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "luks",
            "--object",
            "secret,id=s0,data=abc",
            "-o",
            "key-secret=s0",
            "a.luks",
            "16M",
        ],
    );
    let (out, j) = inspect(&[luks.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(j["format"], "luks", "{j}");
}

#[test]
fn a_huge_image_and_a_stream_are_inspected_from_their_metadata() {
    let d = tempfile::tempdir().unwrap();
    let big = create(d.path(), "big.qcow2", "1T", &[]);
    qemu_io(&big, "qcow2", &["write -P 0x5a 1000G 1M"]);
    let j = same_as_qemu(&big);
    assert_eq!(j["allocated_bytes"], 1 << 20);
    // From a pipe: the header only (no tables, so no allocation).
    let child = Command::new(env!("CARGO_BIN_EXE_rbdkit"))
        .args(["--format", "json", "inspect", "-"])
        .stdin(std::fs::File::open(&big).unwrap())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["format"], "qcow2");
    assert_eq!(j["virtual_size"], 1u64 << 40);
    assert_eq!(out.status.code(), Some(0), "{j}");
}

#[test]
fn names_from_the_header_are_escaped_in_plain_output() {
    let d = tempfile::tempdir().unwrap();
    let p = create(
        d.path(),
        "esc.qcow2",
        "1M",
        &["-u", "-b", "a\u{1b}]0;pwned\u{7}\nsafe: true", "-F", "raw"],
    );
    let out = Command::new(env!("CARGO_BIN_EXE_rbdkit"))
        .args(["inspect", p.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}'),
        "{text:?}"
    );
    assert_eq!(
        text.lines().filter(|l| l.starts_with("safe:")).count(),
        1,
        "{text}"
    );
    assert!(text.contains("safe: false"), "{text}");
}

/// VMDK: what `qemu-img info` says (format, size, grain, create type, compression) and the
/// allocation from the grain tables against `qemu-img map`'s data runs.
#[test]
fn vmdk_facts_match_qemu_img_info_and_map() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let mk = |name: &str, opts: &[&str]| {
        let mut args = vec!["create", "-q", "-f", "vmdk"];
        args.extend(opts);
        args.extend([name, "64M"]);
        run_in(Some(dir), "qemu-img", &args);
        let p = dir.join(name);
        qemu_io(&p, "vmdk", &["write -P 1 0 100k", "write -P 2 40M 1M"]);
        p
    };
    let s = mk("s.vmdk", &[]);
    let z = mk("z.vmdk", &["-o", "zeroed_grain=on"]);
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
            "s.vmdk",
            "so.vmdk",
        ],
    );
    for (p, compressed) in [(&s, false), (&z, false), (&so, true)] {
        let name = p.display();
        let j = same_as_qemu(p);
        let q = qemu_info(p, None);
        let spec = &q["format-specific"]["data"];
        assert_eq!(j["subformat"], spec["create-type"], "{name}");
        assert_eq!(j["vmdk"]["compressed"], compressed, "{name}");
        assert_eq!(
            spec["extents"][0]["compressed"].as_bool().unwrap_or(false),
            compressed
        );
        assert_eq!(
            (j["readable"].clone(), j["safe"].clone()),
            (Value::Bool(true), Value::Bool(true)),
            "{name}: {j}"
        );
        let map: Value = serde_json::from_slice(&run(
            "qemu-img",
            &["map", "--output=json", p.to_str().unwrap()],
        ))
        .unwrap();
        let data: u64 = map
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["data"] == true)
            .map(|e| e["length"].as_u64().unwrap())
            .sum();
        assert_eq!(j["allocated_bytes"], data, "{name}");
    }
    // A descriptor file: readable with the flag, so unsafe by default, naming its extent.
    let flat = dir.join("f.vmdk");
    run_in(
        Some(dir),
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "vmdk",
            "-o",
            "subformat=monolithicFlat",
            "f.vmdk",
            "1M",
        ],
    );
    let (out, j) = inspect(&[flat.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(j["vmdk"]["descriptor_file"], true);
    assert!(j["reasons"].to_string().contains("f-flat.vmdk"), "{j}");
}

/// VHD and VHDX: what `qemu-img info -f vpc|vhdx` says (qemu's own probe takes a fixed VHD for raw), and the
/// allocation against `qemu-img map`'s data runs for a dynamic disk.
#[test]
fn vhd_facts_match_qemu_img_info_and_map() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    for (name, opts) in [
        ("d.vhdx", "subformat=dynamic,block_size=1M"),
        ("f.vhdx", "subformat=fixed"),
        ("d.vhd", "subformat=dynamic"),
        ("f.vhd", "subformat=fixed"),
        ("s.vhd", "subformat=dynamic,force_size=on"),
    ] {
        let fmt = if name.ends_with(".vhdx") {
            "vhdx"
        } else {
            "vpc"
        };
        run_in(
            Some(dir),
            "qemu-img",
            &["create", "-q", "-f", fmt, "-o", opts, name, "64M"],
        );
        let p = dir.join(name);
        qemu_io(&p, fmt, &["write -P 1 0 100k", "write -P 2 40M 1M"]);
        let j = same_as_qemu_as(&p, Some(fmt));
        assert_eq!(
            (j["readable"].clone(), j["safe"].clone()),
            (Value::Bool(true), Value::Bool(true)),
            "{name}: {j}"
        );
        // qemu maps a VHDX (it has no block status) and a fixed VHD as data throughout. The
        // two writes touch two blocks (qemu-img makes a fixed VHDX's blocks ZERO until written).
        if name.ends_with(".vhdx") {
            let block = j["cluster_size"].as_u64().unwrap();
            assert_eq!(j["allocated_bytes"], 2 * block, "{name}");
        } else if name != "f.vhd" {
            let map: Value = serde_json::from_slice(&run(
                "qemu-img",
                &["map", "-f", "vpc", "--output=json", p.to_str().unwrap()],
            ))
            .unwrap();
            let data: u64 = map
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["data"] == true)
                .map(|e| e["length"].as_u64().unwrap())
                .sum();
            assert_eq!(j["allocated_bytes"], data, "{name}");
        }
    }
}

/// From a pipe, `inspect -` says what `import-raw -` would do: a streamOptimized VMDK is
/// readable, a monolithicSparse VMDK, a VHD and a VHDX must be saved to a file first.
#[test]
fn streams_are_judged_as_import_raw_reads_them() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    run_in(
        Some(dir),
        "qemu-img",
        &["create", "-q", "-f", "vmdk", "s.vmdk", "16M"],
    );
    run_in(
        Some(dir),
        "qemu-img",
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
    run_in(
        Some(dir),
        "qemu-img",
        &["create", "-q", "-f", "vpc", "d.vhd", "16M"],
    );
    run_in(
        Some(dir),
        "qemu-img",
        &["create", "-q", "-f", "vhdx", "d.vhdx", "16M"],
    );
    for (name, readable) in [
        ("so.vmdk", true),
        ("s.vmdk", false),
        ("d.vhd", false),
        ("d.vhdx", false),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_rbdkit"))
            .args(["--format", "json", "inspect", "-"])
            .stdin(std::fs::File::open(dir.join(name)).unwrap())
            .output()
            .unwrap();
        let j: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(j["readable"], readable, "{name}: {j}");
        assert_eq!(
            out.status.code(),
            Some(if readable { 0 } else { 1 }),
            "{name}: {j}"
        );
        if !readable {
            assert!(
                j["reasons"].to_string().contains("save it to a file first"),
                "{name}: {j}"
            );
        }
    }
}
