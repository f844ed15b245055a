//! Disks and raw streams into files, streams and recording sinks: exact bytes, holes not
//! written, every checksum as defined.
use super::super::digest::{self, checksum_of};
use super::super::sink_file::FileSink;
use super::super::*;
use super::*;
use crate::disk::qcow2::stream::qemu::create;
use crate::disk::{extents_from_data, DiskSource, Extent};
use crate::error::Result;
use std::sync::atomic::AtomicBool;

/// Runs `copy` into a new sparse file `dest` with small chunks, three decode threads and a
/// budget of four chunks; returns what the file holds and the stats.
fn copy_to_file(
    dest: &std::path::Path,
    chunk_size: u64,
    checksum: Option<Checksum>,
    copy: impl FnOnce(&mut dyn Sink, &CopyOptions, &Control) -> Result<CopyStats>,
) -> (Vec<u8>, CopyStats) {
    let mut sink = FileSink::create(dest, false).unwrap();
    let opts = CopyOptions {
        chunk_size,
        sparse_size: 4096,
        threads: 3,
        memory: 4 * chunk_size,
        checksum,
        ..CopyOptions::default()
    };
    let cancel = AtomicBool::new(false);
    let ctl = Control {
        progress: &|_, _| {},
        cancel: &cancel,
    };
    let stats = copy(&mut sink, &opts, &ctl).unwrap();
    sink.commit().unwrap();
    (std::fs::read(dest).unwrap(), stats)
}

/// A raw stream with a zero stretch and a short last chunk, copied to a file: same bytes,
/// the holes not written, and each checksum as defined (block digests made on the decode
/// threads for whole chunks, the short tail's included).
#[test]
fn raw_stream_copies_exactly_and_hashes_on_the_decode_threads() {
    let mut bytes = vec![0u8; (3 << 20) + 5000];
    for (i, b) in bytes[..1 << 20].iter_mut().enumerate() {
        *b = (i % 251) as u8 + 1;
    }
    let n = bytes.len();
    bytes[n - 3] = 9;
    let dir = tempfile::tempdir().unwrap();
    for (i, checksum) in ALL_CHECKSUMS.into_iter().enumerate() {
        let reader = Box::new(std::io::Cursor::new(bytes.clone()));
        let dest = dir.path().join(format!("s-{i}.raw"));
        let (got, stats) = copy_to_file(&dest, 1 << 20, checksum, |sink, opts, ctl| {
            copy_stream(reader, sink, opts, ctl)
        });
        assert_eq!(got, bytes, "case {i}");
        // The tail's last zero-detection block is 904 bytes long.
        assert_eq!(stats.bytes_written, (1 << 20) + 904);
        let expect = checksum.map(|kind| digest::checksum_of(kind, &bytes));
        assert_eq!(stats.checksum, expect, "case {i}");
    }
}

/// Data extents that start and end inside chunks and inside zero-detection blocks, one of
/// them holding zero bytes, copied to a file with and without the checksum.
#[test]
fn partial_extents_copy_exactly_and_hash_the_whole_disk() {
    let size = 3 * 65536 + 1000;
    let mut bytes = vec![0u8; size];
    let data = vec![
        (100u64, 5000u64),
        (65536 + 4096, 8192),
        (2 * 65536 - 10, 20),
        (3 * 65536, 1000),
    ];
    for &(s, l) in &data {
        for i in s..s + l {
            bytes[i as usize] = (i % 251) as u8 + 1;
        }
    }
    // Listed as data but all zero: must be skipped, not written.
    let mut data = data;
    data.insert(2, (65536 + 20000, 4096));
    let disk = MemDisk {
        bytes: bytes.clone(),
        data,
    };
    let dir = tempfile::tempdir().unwrap();
    // 16 KiB chunks are hashed on the hasher thread, 64 KiB ones where they are read.
    let cases = [
        (65536, None),
        (65536, Some(Checksum::Sha256)),
        (65536, Some(Checksum::Sha256Blocks)),
        (16384, Some(Checksum::Sha256Blocks)),
        (65536, Some(Checksum::Sha256Tree)),
        (16384, Some(Checksum::Sha256Tree)),
        (16384, Some(Checksum::Sha256)),
    ];
    for (i, (chunk_size, checksum)) in cases.into_iter().enumerate() {
        let dest = dir.path().join(format!("out-{i}.raw"));
        let (got, stats) = copy_to_file(&dest, chunk_size, checksum, |sink, opts, ctl| {
            copy_disk(&disk, sink, opts, ctl)
        });
        assert_eq!(got, bytes);
        assert_eq!(stats.virtual_size, size as u64);
        assert_eq!(stats.bytes_written + stats.bytes_zero_skipped, size as u64);
        let expect = checksum.map(|kind| digest::checksum_of(kind, &bytes));
        assert_eq!(stats.checksum, expect, "case {i}");
    }
}

/// Chunks larger than their data: each piece spans only the data (in whole 64 KiB blocks),
/// the rest of the chunk becomes zero pieces, and the copy and every checksum are unchanged.
#[test]
fn pieces_span_only_the_data_of_their_chunk() {
    const K: u64 = 1024;
    let size = 1024 * K + 5000;
    let data = vec![
        (128 * K, 128 * K),
        (400 * K, 10 * K),
        (600 * K, 1000),
        (700 * K, 1),
        (1024 * K, 5000),
    ];
    let mut bytes = vec![0u8; size as usize];
    for &(s, l) in &data {
        for i in s..s + l {
            bytes[i as usize] = (i % 249) as u8 + 1;
        }
    }
    let disk = MemDisk {
        bytes: bytes.clone(),
        data,
    };
    let dir = tempfile::tempdir().unwrap();
    let kinds = [
        None,
        Some(Checksum::Sha256),
        Some(Checksum::Sha256Blocks),
        Some(Checksum::Sha256Tree),
    ];
    for (i, checksum) in kinds.into_iter().enumerate() {
        let dest = dir.path().join(format!("span-{i}.raw"));
        let (got, stats) = copy_to_file(&dest, 256 * K, checksum, |sink, opts, ctl| {
            copy_disk(&disk, sink, opts, ctl)
        });
        assert_eq!(got, bytes, "case {i}");
        assert_eq!(stats.bytes_written, 138 * K + 1000 + 1 + 5000, "case {i}");
        assert_eq!(
            stats.checksum,
            checksum.map(|kind| digest::checksum_of(kind, &bytes)),
            "case {i}"
        );
    }
    // Through the consumer (a sink that takes writes in order): the writes are the data runs,
    // and the all-data piece goes out in its own buffer (of its size, not a gathering one's).
    #[derive(Default)]
    struct Capacities(Writes, Vec<usize>);
    impl Sink for Capacities {
        fn ensure_size(&mut self, size: u64) -> Result<()> {
            self.0.ensure_size(size)
        }
        fn write(&mut self, offset: u64, data: PoolBuf) -> Result<()> {
            self.1.push(data.capacity());
            self.0.write(offset, data)
        }
        fn finish(&mut self, size: u64) -> Result<()> {
            self.0.finish(size)
        }
    }
    let mut sink = Capacities::default();
    let cancel = AtomicBool::new(false);
    let opts = CopyOptions {
        chunk_size: 256 * K,
        checksum: Some(Checksum::Sha256Tree),
        ..small_opts(None)
    };
    let stats = copy_disk(&disk, &mut sink, &opts, &quiet_control(&cancel)).unwrap();
    assert_eq!(
        stats.checksum,
        Some(checksum_of(Checksum::Sha256Tree, &bytes))
    );
    let want = [
        (128 * K, 128 * K as usize),
        (400 * K, 10 * K as usize),
        (600 * K, 1000),
        (700 * K, 1),
        (1024 * K, 5000),
    ];
    assert_eq!(sink.0.writes, want);
    assert_eq!(sink.1[0], 128 * K as usize);
}

/// A raw stream sink gets the whole disk in order, holes as zeros; a qcow2 stream (layout
/// order) is refused for it before anything is read.
#[test]
fn a_stream_sink_gets_the_raw_disk_in_order() {
    let size = (5 << 20) + 777;
    let mut bytes = vec![0u8; size];
    for (i, b) in bytes[(2 << 20) - 100..(3 << 20) + 5].iter_mut().enumerate() {
        *b = (i % 249) as u8 + 1;
    }
    bytes[size - 1] = 7;
    let disk = MemDisk {
        bytes: bytes.clone(),
        data: vec![(0, size as u64)],
    };
    #[derive(Clone, Default)]
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let cancel = AtomicBool::new(false);
    let out = Shared::default();
    let mut sink = sink_stream::StreamSink::new(Box::new(out.clone()), "stdout");
    let st = copy_disk(
        &disk,
        &mut sink,
        &small_opts(Some(Checksum::Sha256)),
        &quiet_control(&cancel),
    )
    .unwrap();
    assert!(*out.0.lock().unwrap() == bytes);
    assert_eq!(st.checksum, Some(checksum_of(Checksum::Sha256, &bytes)));

    let d = tempfile::tempdir().unwrap();
    let img = create(d.path(), "s.qcow2", "4M", &[]);
    let s = crate::disk::qcow2::Qcow2Stream::open(
        Box::new(std::fs::File::open(&img).unwrap()),
        "stdin",
    )
    .unwrap();
    let mut sink = sink_stream::StreamSink::new(Box::new(Shared::default()), "stdout");
    let e =
        copy_qcow2_stream(s, &mut sink, &small_opts(None), &quiet_control(&cancel)).unwrap_err();
    assert!(
        e.to_string().contains("cannot be written to a stream"),
        "{e}"
    );
}

/// Holes cost nothing: a 64 TiB disk holding one chunk of data is walked by extents, not
/// chunk by chunk (16 million chunks would take minutes here).
#[test]
fn a_huge_sparse_disk_costs_what_its_data_costs() {
    let size = 64u64 << 40;
    struct Sparse(u64);
    impl DiskSource for Sparse {
        fn virtual_size(&self) -> u64 {
            self.0
        }
        fn extents(&self, offset: u64, len: u64) -> Result<Vec<Extent>> {
            let end = (offset + len).min(self.0);
            Ok(extents_from_data(offset, end, [(self.0 / 2, 4096)]))
        }
        fn read_at(&self, _: u64, buf: &mut [u8]) -> Result<()> {
            buf.fill(9);
            Ok(())
        }
        fn format_name(&self) -> &'static str {
            "memory"
        }
    }
    let cancel = AtomicBool::new(false);
    let mut sink = Writes::default();
    let st = copy_disk(
        &Sparse(size),
        &mut sink,
        &small_opts(None),
        &quiet_control(&cancel),
    )
    .unwrap();
    assert_eq!(sink.writes, vec![(size / 2, 4096)]);
    assert_eq!((st.virtual_size, st.bytes_written), (size, 4096));
}

/// A stream whose chunks are large against the budget, into a sink that, like librbd's aio,
/// keeps each written buffer until it is reaped: the copy finishes with every checksum (it
/// used to wait forever once the read-ahead, the producer's piece and the finished writes held
/// the whole budget).
#[test]
fn a_stream_of_large_chunks_into_a_sink_that_holds_its_writes_finishes() {
    for checksum in ALL_CHECKSUMS {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let data: Vec<u8> = (0..42u32 << 20).map(|i| (i % 253) as u8 + 1).collect();
            let want = checksum.map(|c| checksum_of(c, &data));
            let cancel = AtomicBool::new(false);
            let mut sink = Holding::new(2);
            // A budget of two chunks: less than the read-ahead and the producer's piece.
            let opts = CopyOptions {
                chunk_size: 6 << 20,
                memory: 12 << 20,
                ..small_opts(checksum)
            };
            let stats = copy_stream(
                Box::new(std::io::Cursor::new(data)),
                &mut sink,
                &opts,
                &quiet_control(&cancel),
            );
            let _ = tx.send((stats.map(|s| s.checksum), sink.bytes, want));
        });
        let (stats, bytes, want) = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("{checksum:?}: the copy did not finish within 60 s"));
        assert_eq!(stats.unwrap(), want, "{checksum:?}");
        assert_eq!(bytes, 42 << 20);
    }
}

/// Every checksum keeps the buffers out within the budget. With `sha256` they used not to: a
/// hasher thread held each piece while the consumer copied it into a write (a dense import had
/// 84 MiB of buffers out under its 64 MiB, 117-137 MiB peak RSS).
#[test]
fn a_whole_image_checksum_keeps_the_buffers_within_the_budget() {
    let data: Vec<u8> = (0..32u32 << 20).map(|i| (i % 251) as u8 + 1).collect();
    let disk = MemDisk {
        data: vec![(0, data.len() as u64)],
        bytes: data,
    };
    for checksum in ALL_CHECKSUMS {
        let cancel = AtomicBool::new(false);
        let mut sink = Holding::new(4);
        let opts = CopyOptions {
            memory: 8 << 20,
            ..small_opts(checksum)
        };
        copy_disk(&disk, &mut sink, &opts, &quiet_control(&cancel)).unwrap();
        assert_eq!(sink.bytes, 32 << 20);
        // One object more: the gathering buffer, taken while the piece it copies is counted.
        let bound = opts.memory + opts.chunk_size;
        assert!(
            sink.max_in_use <= bound,
            "{checksum:?}: {} MiB of buffers out under a budget of {} MiB",
            sink.max_in_use >> 20,
            opts.memory >> 20
        );
    }
}
