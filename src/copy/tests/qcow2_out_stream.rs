//! A disk streamed as qcow2 ([`copy_disk_to_qcow2_stream`]) reads back as the disk with the
//! crate's own reader, and is exactly as long as its layout says: the tables, then one
//! cluster per cluster overlapping a data extent (all-zero ones too), nothing for holes.
use super::*;
use crate::copy::sink_stream::StreamSink;
use crate::disk::{open, Format, OpenOptions};

/// The image at `path`, opened with the crate's qcow2 reader.
fn open_qcow2(path: &std::path::Path) -> Box<dyn DiskSource> {
    let opts = OpenOptions {
        format: Some(Format::Qcow2),
        ..Default::default()
    };
    open(path, &opts).unwrap()
}

#[test]
fn a_streamed_qcow2_reads_back_as_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.qcow2");
    let (c, m) = (65536usize, 1usize << 20);
    // 3 MiB + 512 bytes: the last cluster is partial.
    let size = 3 * m + 512;
    let mut bytes = vec![0u8; size];
    bytes[..5000].fill(1);
    // A data extent whose first cluster holds only zeros.
    bytes[2 * m + c..2 * m + 70000].fill(2);
    bytes[size - 10..].fill(3);
    let disk = MemDisk {
        bytes: bytes.clone(),
        data: vec![(0, 5000), (2 * m as u64, 70000), (size as u64 - 10, 10)],
    };
    for checksum in ALL_CHECKSUMS {
        let file = std::fs::File::create(&path).unwrap();
        let mut out = StreamSink::new(Box::new(file), "test");
        let cancel = AtomicBool::new(false);
        let st = copy_disk_to_qcow2_stream(
            &disk,
            &mut out,
            &small_opts(checksum),
            &quiet_control(&cancel),
        )
        .unwrap();
        assert_eq!(st.virtual_size, size as u64);
        // Header, L1, refcount table, one refcount block, one L2 table; then clusters 0,
        // 32 (zeros), 33 and 48.
        let len = std::fs::metadata(&path).unwrap().len();
        assert_eq!(len, (5 + 4) * c as u64, "{checksum:?}");
        assert_eq!(out.position(), len);
        let img = open_qcow2(&path);
        assert_eq!(img.virtual_size(), size as u64);
        let mut back = vec![0xffu8; size];
        img.read_at(0, &mut back).unwrap();
        assert!(back == bytes, "{checksum:?}: other bytes");
    }
}

#[test]
fn an_empty_disk_streams_as_an_empty_image() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.qcow2");
    let disk = MemDisk {
        bytes: Vec::new(),
        data: Vec::new(),
    };
    let mut out = StreamSink::new(Box::new(std::fs::File::create(&path).unwrap()), "test");
    let cancel = AtomicBool::new(false);
    copy_disk_to_qcow2_stream(&disk, &mut out, &small_opts(None), &quiet_control(&cancel)).unwrap();
    let img = open_qcow2(&path);
    assert_eq!(img.virtual_size(), 0);
}
