//! Probes across formats: ambiguous content, hybrid ISOs, and hostile input of every shape.
use super::iso::tests::iso;
use super::partition::tests::{entry, gpt};
use super::*;

/// A qcow2 v2 header whose unused bytes also hold a sane MBR.
fn qcow2_with_mbr() -> Vec<u8> {
    let mut v = vec![0u8; 4096];
    v[..4].copy_from_slice(b"QFI\xfb");
    v[4..8].copy_from_slice(&2u32.to_be_bytes());
    v[20..24].copy_from_slice(&16u32.to_be_bytes());
    v[24..32].copy_from_slice(&(1u64 << 20).to_be_bytes());
    entry(&mut v, 0, 0x80, 0x83, 2048, 2048);
    v
}

#[test]
fn qcow2_that_is_also_an_mbr_is_ambiguous() {
    let p = probe(&qcow2_with_mbr()).unwrap();
    assert_eq!(p.container, Container::Qcow2);
    assert_eq!(
        p.matches,
        vec![
            MatchName::Container(Container::Qcow2),
            MatchName::PartitionTable(PartitionTable::Mbr)
        ]
    );
    assert!(p.is_ambiguous());
    assert_eq!(p.unsafe_reasons.len(), 1, "{:?}", p.unsafe_reasons);
    assert!(p.unsafe_reasons[0].contains("qcow2, mbr"));
}

#[test]
fn hybrid_iso_is_an_iso_only() {
    let mut v = iso(64);
    entry(&mut v, 0, 0x80, 0x17, 0, 64 * 4);
    let p = probe(&v).unwrap();
    assert_eq!(p.container, Container::Iso);
    assert_eq!(p.matches, vec![MatchName::Container(Container::Iso)]);
    assert_eq!(p.partition_table, Some(PartitionTable::Mbr));
    assert!(p.unsafe_reasons.is_empty(), "{:?}", p.unsafe_reasons);
    // With a GPT too (as xorriso makes them).
    let mut g = gpt(64 * 4);
    g[32 * 1024..].copy_from_slice(&iso(64)[32 * 1024..]);
    assert_eq!(probe(&g).unwrap().matches.len(), 1);
}

#[test]
fn raw_when_nothing_matches() {
    let p = probe(&vec![0u8; 100_000]).unwrap();
    assert_eq!(
        p,
        Probe {
            virtual_size: Some(100_000),
            ..Probe::default()
        }
    );
    assert_eq!(probe_head(&[]).container, Container::Raw);
    assert_eq!(probe(&Vec::new()).unwrap().virtual_size, Some(0));
    assert_eq!(probe_head(b"QFI").container, Container::Raw);
}

#[test]
fn names() {
    let all = [
        (Container::Raw, "raw", "raw", "raw"),
        (Container::Qcow2, "qcow2", "qcow2", "qcow2"),
        (Container::Vmdk, "vmdk", "vmdk", "VMDK"),
        (Container::Vhd, "vpc", "vhd", "VHD"),
        (Container::Vhdx, "vhdx", "vhdx", "VHDX"),
        (Container::Vdi, "vdi", "vdi", "VDI"),
        (Container::Qed, "qed", "qed", "QED"),
        (Container::Luks, "luks", "luks", "LUKS"),
        (Container::Iso, "raw", "iso", "ISO 9660"),
    ];
    for (c, q, g, d) in all {
        assert_eq!((c.qemu_name(), c.glance_name(), c.display()), (q, g, d));
    }
}

/// Every prefix of every handmade image, and every single-byte corruption of their first
/// sectors, probes without panicking, as a file and as a stream.
#[test]
fn truncated_and_corrupted_inputs_never_panic() {
    let mut samples = vec![qcow2_with_mbr(), iso(20), gpt(64)];
    samples.push(b"# Disk DescriptorFile\nversion=1\nRW 1 FLAT \"x\" 0\n".to_vec());
    for s in &samples {
        for n in (0..s.len()).step_by(7) {
            let cut = s[..n].to_vec();
            let _ = probe(&cut).unwrap();
            let _ = probe_head(&cut);
        }
        let mut c = s.clone();
        for i in 0..c.len().min(1100) {
            let keep = c[i];
            for x in [0u8, 0xff, 0x80] {
                c[i] = x;
                let _ = probe(&c).unwrap();
            }
            c[i] = keep;
        }
    }
}

/// A source whose reads fail: the error comes back, it is not taken for a short file.
#[test]
fn read_errors_are_reported() {
    struct Broken;
    impl ByteSource for Broken {
        fn size(&self) -> u64 {
            1 << 20
        }
        fn read_exact_at(&self, _: &mut [u8], _: u64) -> std::io::Result<()> {
            Err(std::io::Error::other("disk on fire"))
        }
    }
    assert!(probe(&Broken).is_err());
}

proptest::proptest! {
    /// Random bytes behind every magic this module knows, at its offset: no panic, and the
    /// file and stream probes agree on the container when the input fits in the head (a fixed
    /// VHD's footer, seen only by the file probe, aside).
    #[test]
    fn random_bytes_behind_every_magic(
        which in 0usize..12,
        body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40_000),
    ) {
        let magics: [(&[u8], usize); 12] = [
            (b"QFI\xfb", 0), (b"KDMV", 0), (b"COWD", 0), (b"# Disk DescriptorFile\n", 0),
            (b"conectix", 0), (b"vhdxfile", 0), (b"\x7f\x10\xda\xbe", 0x40), (b"QED\0", 0),
            (b"LUKS\xba\xbe", 0), (b"CD001", 0x8001), (b"\x55\xaa", 510), (b"EFI PART", 512),
        ];
        let (magic, at) = magics[which];
        let mut v = body;
        if v.len() < at + magic.len() {
            v.resize(at + magic.len(), 0);
        }
        v[at..at + magic.len()].copy_from_slice(magic);
        let file = probe(&v).unwrap();
        let head = probe_head(&v);
        if file.container != Container::Vhd {
            proptest::prop_assert_eq!(file.container, head.container);
        }
    }
}
