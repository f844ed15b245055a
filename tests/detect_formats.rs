//! `rbdkit::disk::detect` against qemu-img: every container qemu-img can create is made at
//! test time in a temporary directory, probed as a file and as a stream head, and compared
//! with `qemu-img info --output json` (format, virtual size, cluster size). ISO and GPT images
//! are handmade (qemu-img makes neither and the test must not depend on xorriso or sgdisk).
mod qemu;

use qemu::run_in;
use rbdkit::disk::detect::{
    probe, probe_head, Container, MatchName, PartitionTable, Probe, HEAD_BYTES,
};
use rbdkit::disk::qcow2::FileBytes;
use serde_json::Value;
use std::path::Path;

/// What qemu-img info says: (format, virtual size, cluster size).
fn qemu_info(dir: &Path, name: &str, format: Option<&str>) -> (String, u64, Option<u64>) {
    let mut args = vec!["info", "--output", "json"];
    if let Some(f) = format {
        args.extend(["-f", f]);
    }
    args.push(name);
    let out = run_in(Some(dir), "qemu-img", &args);
    let v: Value = serde_json::from_slice(&out).expect("qemu-img info prints JSON");
    (
        v["format"].as_str().expect("format").to_string(),
        v["virtual-size"].as_u64().expect("virtual-size"),
        v["cluster-size"].as_u64(),
    )
}

/// Probes `dir/name` as a file and its head as a stream.
fn probes(dir: &Path, name: &str) -> (Probe, Probe) {
    let path = dir.join(name);
    let file = FileBytes::open(&path, "test image").expect("open the fixture");
    let p = probe(&file).expect("probe");
    let bytes = std::fs::read(&path).expect("read the fixture");
    let head = probe_head(&bytes[..bytes.len().min(HEAD_BYTES)]);
    (p, head)
}

fn create(dir: &Path, format: &str, name: &str, size: &str, opts: &[&str]) {
    let mut args = vec!["create", "-q", "-f", format];
    args.extend(opts);
    args.extend([name, size]);
    run_in(Some(dir), "qemu-img", &args);
}

/// One qemu-img-made fixture and what the probe must say about it.
struct Case {
    format: &'static str,
    opts: &'static [&'static str],
    size: &'static str,
    container: Container,
    subformat: Option<&'static str>,
    safe: bool,
}

const CASES: &[Case] = &[
    Case {
        format: "vmdk",
        opts: &[],
        size: "100M",
        container: Container::Vmdk,
        subformat: Some("monolithicSparse"),
        safe: true,
    },
    Case {
        format: "vmdk",
        opts: &["-o", "subformat=monolithicSparse"],
        size: "1G",
        container: Container::Vmdk,
        subformat: Some("monolithicSparse"),
        safe: true,
    },
    Case {
        format: "vmdk",
        opts: &["-o", "subformat=streamOptimized"],
        size: "100M",
        container: Container::Vmdk,
        subformat: Some("streamOptimized"),
        safe: true,
    },
    Case {
        format: "vmdk",
        opts: &["-o", "subformat=monolithicFlat"],
        size: "10M",
        container: Container::Vmdk,
        subformat: Some("monolithicFlat"),
        safe: false,
    },
    Case {
        format: "vpc",
        opts: &[],
        size: "100M",
        container: Container::Vhd,
        subformat: Some("dynamic"),
        safe: true,
    },
    Case {
        format: "vpc",
        opts: &["-o", "subformat=dynamic,force_size=on"],
        size: "100M",
        container: Container::Vhd,
        subformat: Some("dynamic"),
        safe: true,
    },
    Case {
        format: "vpc",
        opts: &["-o", "subformat=fixed"],
        size: "10M",
        container: Container::Vhd,
        subformat: Some("fixed"),
        safe: true,
    },
    Case {
        format: "vpc",
        opts: &["-o", "subformat=fixed,force_size=on"],
        size: "10M",
        container: Container::Vhd,
        subformat: Some("fixed"),
        safe: true,
    },
    Case {
        format: "vhdx",
        opts: &[],
        size: "100M",
        container: Container::Vhdx,
        subformat: Some("dynamic"),
        safe: true,
    },
    Case {
        format: "vhdx",
        opts: &["-o", "subformat=fixed"],
        size: "20M",
        container: Container::Vhdx,
        subformat: Some("fixed"),
        safe: true,
    },
    Case {
        format: "vhdx",
        opts: &["-o", "block_size=1M"],
        size: "3G",
        container: Container::Vhdx,
        subformat: Some("dynamic"),
        safe: true,
    },
    Case {
        format: "vhdx",
        opts: &["-o", "block_size=32M"],
        size: "1G",
        container: Container::Vhdx,
        subformat: Some("dynamic"),
        safe: true,
    },
    Case {
        format: "vdi",
        opts: &[],
        size: "100M",
        container: Container::Vdi,
        subformat: Some("dynamic"),
        safe: true,
    },
    Case {
        format: "vdi",
        opts: &["-o", "static=on"],
        size: "10M",
        container: Container::Vdi,
        subformat: Some("static"),
        safe: true,
    },
    // format_inspector bans QED outright.
    Case {
        format: "qed",
        opts: &[],
        size: "100M",
        container: Container::Qed,
        subformat: None,
        safe: false,
    },
    Case {
        format: "luks",
        opts: &[
            "--object",
            "secret,id=sec0,data=abc",
            "-o",
            "key-secret=sec0,iter-time=10",
        ],
        size: "10M",
        container: Container::Luks,
        subformat: Some("luks1"),
        safe: true,
    },
    Case {
        format: "qcow2",
        opts: &[],
        size: "100M",
        container: Container::Qcow2,
        subformat: None,
        safe: true,
    },
    Case {
        format: "qcow2",
        opts: &["-o", "compat=0.10,cluster_size=4096"],
        size: "1G",
        container: Container::Qcow2,
        subformat: None,
        safe: true,
    },
    Case {
        format: "raw",
        opts: &[],
        size: "10M",
        container: Container::Raw,
        subformat: None,
        safe: true,
    },
];

#[test]
fn qemu_img_made_images_probe_as_qemu_img_info_reports_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (i, c) in CASES.iter().enumerate() {
        let name = format!("img{i}.{}", c.format);
        create(d, c.format, &name, c.size, c.opts);
        let what = format!("{} {:?}", c.format, c.opts);
        let (p, head) = probes(d, &name);
        // qemu-img's own probe takes a fixed VHD for raw (it looks at offset 0 only); ask for
        // vpc to compare the rest.
        let fixed_vhd = c.container == Container::Vhd && c.subformat == Some("fixed");
        let (fmt, size, cluster) = qemu_info(d, &name, fixed_vhd.then_some("vpc"));
        if fixed_vhd {
            assert_eq!(
                qemu_info(d, &name, None).0,
                "raw",
                "{what}: qemu-img's own probe"
            );
        }
        assert_eq!(p.container, c.container, "{what}: {p:?}");
        assert_eq!(p.container.qemu_name(), fmt, "{what}");
        assert_eq!(p.virtual_size, Some(size), "{what}: virtual size");
        assert_eq!(p.cluster_size, cluster, "{what}: cluster size");
        assert_eq!(p.subformat.as_deref(), c.subformat, "{what}");
        assert_eq!(
            p.unsafe_reasons.is_empty(),
            c.safe,
            "{what}: {:?}",
            p.unsafe_reasons
        );
        assert!(!p.is_ambiguous(), "{what}: {:?}", p.matches);
        assert_eq!(p.backing_file, None, "{what}");
        // The stream head sees the same, except what lies past it.
        match c.container {
            Container::Vhd if fixed_vhd => assert_eq!(head.container, Container::Raw, "{what}"),
            Container::Raw | Container::Luks => {
                assert_eq!(head.container, c.container, "{what}");
                assert_eq!(head.virtual_size, None, "{what}");
            }
            _ => assert_eq!(
                (head.container, head.virtual_size, head.cluster_size),
                (p.container, p.virtual_size, p.cluster_size),
                "{what}: stream head"
            ),
        }
    }
}

#[test]
fn vmdk_descriptor_files_list_their_extents() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    create(
        d,
        "vmdk",
        "flat.vmdk",
        "10M",
        &["-o", "subformat=monolithicFlat"],
    );
    create(
        d,
        "vmdk",
        "split.vmdk",
        "3G",
        &["-o", "subformat=twoGbMaxExtentSparse"],
    );
    let (flat, _) = probes(d, "flat.vmdk");
    assert_eq!(flat.extents, vec!["flat-flat.vmdk".to_string()]);
    assert_eq!(flat.virtual_size, Some(10 << 20));
    let (split, head) = probes(d, "split.vmdk");
    let (fmt, size, cluster) = qemu_info(d, "split.vmdk", None);
    assert_eq!(
        (split.container.qemu_name(), split.virtual_size),
        (fmt.as_str(), Some(size))
    );
    assert_eq!(split.subformat.as_deref(), Some("twoGbMaxExtentSparse"));
    assert_eq!(
        split.extents,
        vec!["split-s001.vmdk".to_string(), "split-s002.vmdk".to_string()]
    );
    // qemu-img reports the extents' grain; a descriptor alone does not say it.
    assert_eq!((cluster, split.cluster_size), (Some(65536), None));
    assert_eq!(split.unsafe_reasons.len(), 1, "{:?}", split.unsafe_reasons);
    assert_eq!(head.extents, split.extents);
    // One extent of it alone: a sparse VMDK with no descriptor, which qemu refuses too.
    let (part, _) = probes(d, "split-s001.vmdk");
    assert_eq!(part.container, Container::Vmdk);
    assert_eq!(part.virtual_size, Some(2 << 30));
    assert!(!part.unsafe_reasons.is_empty());
}

#[test]
fn backing_files_are_found_and_unsafe() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    create(d, "qed", "base.qed", "10M", &[]);
    create(d, "qed", "top.qed", "10M", &["-b", "base.qed", "-F", "qed"]);
    create(d, "vmdk", "base.vmdk", "10M", &[]);
    create(
        d,
        "vmdk",
        "top.vmdk",
        "10M",
        &["-b", "base.vmdk", "-F", "vmdk"],
    );
    for (name, container) in [("top.qed", Container::Qed), ("top.vmdk", Container::Vmdk)] {
        let (p, _) = probes(d, name);
        let info: Value = serde_json::from_slice(&run_in(
            Some(d),
            "qemu-img",
            &["info", "--output", "json", name],
        ))
        .unwrap();
        assert_eq!(p.container, container);
        assert_eq!(
            p.backing_file.as_deref(),
            info["backing-filename"].as_str(),
            "{name}"
        );
        assert_eq!(
            p.backing_file.as_deref(),
            Some(&*name.replace("top", "base"))
        );
        assert!(p
            .unsafe_reasons
            .iter()
            .any(|r| r.contains("parent") || r.contains("backing")));
    }
}

#[test]
fn qcow2_that_is_also_an_mbr_shows_two_matches() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    create(d, "qcow2", "mbr.qcow2", "64M", &["-o", "compat=0.10"]);
    let path = d.join("mbr.qcow2");
    let mut bytes = std::fs::read(&path).unwrap();
    // A v2 header is 72 bytes; the rest of the first sector is unused by qemu-img.
    assert!(
        bytes[72..512].iter().all(|&b| b == 0),
        "qemu-img wrote header extensions"
    );
    let e = &mut bytes[446..462];
    e[0] = 0x80;
    e[4] = 0x83;
    e[8..12].copy_from_slice(&2048u32.to_le_bytes());
    e[12..16].copy_from_slice(&4096u32.to_le_bytes());
    bytes[510] = 0x55;
    bytes[511] = 0xaa;
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(qemu_info(d, "mbr.qcow2", None).0, "qcow2");
    let (p, head) = probes(d, "mbr.qcow2");
    let both = vec![
        MatchName::Container(Container::Qcow2),
        MatchName::PartitionTable(PartitionTable::Mbr),
    ];
    assert_eq!(p.matches, both);
    assert_eq!(head.matches, both);
    assert!(p.is_ambiguous() && !p.unsafe_reasons.is_empty());
}

#[test]
fn handmade_iso_and_gpt_are_raw_to_qemu() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // ISO 9660: a primary volume descriptor at 32 KiB and a terminator, 100 blocks of 2 KiB.
    let mut iso = vec![0u8; 100 * 2048];
    let pvd = 32 * 1024;
    iso[pvd] = 1;
    iso[pvd + 1..pvd + 7].copy_from_slice(b"CD001\x01");
    iso[pvd + 80..pvd + 84].copy_from_slice(&100u32.to_le_bytes());
    iso[pvd + 84..pvd + 88].copy_from_slice(&100u32.to_be_bytes());
    iso[pvd + 128..pvd + 130].copy_from_slice(&2048u16.to_le_bytes());
    iso[pvd + 130..pvd + 132].copy_from_slice(&2048u16.to_be_bytes());
    iso[pvd + 2048] = 255;
    iso[pvd + 2049..pvd + 2055].copy_from_slice(b"CD001\x01");
    std::fs::write(d.join("disc.iso"), &iso).unwrap();
    // GPT: protective MBR and a header at LBA 1, on a 1 MiB disk.
    let mut gpt = vec![0u8; 1 << 20];
    gpt[446 + 4] = 0xee;
    gpt[446 + 8..446 + 12].copy_from_slice(&1u32.to_le_bytes());
    gpt[446 + 12..446 + 16].copy_from_slice(&2047u32.to_le_bytes());
    gpt[510..512].copy_from_slice(&[0x55, 0xaa]);
    gpt[512..520].copy_from_slice(b"EFI PART");
    gpt[524..528].copy_from_slice(&92u32.to_le_bytes());
    gpt[536..544].copy_from_slice(&1u64.to_le_bytes());
    gpt[592..596].copy_from_slice(&128u32.to_le_bytes());
    gpt[596..600].copy_from_slice(&128u32.to_le_bytes());
    std::fs::write(d.join("disk.img"), &gpt).unwrap();

    let (p, head) = probes(d, "disc.iso");
    let (fmt, size, _) = qemu_info(d, "disc.iso", None);
    assert_eq!(
        (p.container, p.container.qemu_name()),
        (Container::Iso, fmt.as_str())
    );
    assert_eq!(p.virtual_size, Some(size));
    assert_eq!(head.virtual_size, Some(size));
    let (p, _) = probes(d, "disk.img");
    let (fmt, size, _) = qemu_info(d, "disk.img", None);
    assert_eq!(
        (p.container.qemu_name(), p.virtual_size),
        (fmt.as_str(), Some(size))
    );
    assert_eq!(p.partition_table, Some(PartitionTable::Gpt));
    assert!(p.unsafe_reasons.is_empty(), "{:?}", p.unsafe_reasons);
}
