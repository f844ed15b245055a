//! Failures inside the engine that must fail the copy: a panicking decode job, a producer
//! that stops early, sends twice or panics, a stream that breaks.
use super::super::sink_file::FileSink;
use super::super::*;
use super::*;
use crate::disk::{DiskSource, Extent, ExtentKind};
use crate::error::Result;
use std::sync::atomic::AtomicBool;

/// A disk of `size` bytes of 0x5a whose read at `panic_at` panics (a decode job that breaks).
struct PanickingDisk {
    size: u64,
    panic_at: u64,
}

impl DiskSource for PanickingDisk {
    fn virtual_size(&self) -> u64 {
        self.size
    }
    fn extents(&self, offset: u64, len: u64) -> Result<Vec<Extent>> {
        Ok(vec![Extent {
            offset,
            len: len.min(self.size - offset),
            kind: ExtentKind::Data,
        }])
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        if (offset..offset + buf.len() as u64).contains(&self.panic_at) {
            panic!("read at {offset} broke");
        }
        buf.fill(0x5a);
        Ok(())
    }
    fn format_name(&self) -> &'static str {
        "memory"
    }
}

/// A decode job that panics fails the copy (file sink, direct writes; discard sink, digests
/// only; a sink written by the consumer), whatever the checksum: never a short result.
#[test]
fn a_panicking_decode_job_fails_the_copy() {
    let disk = PanickingDisk {
        size: 16 << 20,
        panic_at: 9 << 20,
    };
    let cancel = AtomicBool::new(false);
    let dir = tempfile::tempdir().unwrap();
    for (i, checksum) in ALL_CHECKSUMS.into_iter().enumerate() {
        let dest = dir.path().join(format!("p{i}.raw"));
        let mut sink = FileSink::create(&dest, false).unwrap();
        let e = copy_disk(
            &disk,
            &mut sink,
            &small_opts(checksum),
            &quiet_control(&cancel),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("a decode thread panicked (read at 9437184 broke)"),
            "{e}"
        );
        drop(sink);
        assert!(!dest.exists(), "nothing under the final name");
        let mut writes = Writes::default();
        let e = copy_disk(
            &disk,
            &mut writes,
            &small_opts(checksum),
            &quiet_control(&cancel),
        )
        .unwrap_err();
        assert!(e.to_string().contains("panicked"), "{e}");
        assert!(writes.finished.is_none(), "the sink was not finished");
        let e = checksum_disk(
            &disk,
            &small_opts(checksum.or(Some(Checksum::Sha256Blocks))),
            &quiet_control(&cancel),
        )
        .unwrap_err();
        assert!(e.to_string().contains("panicked"), "{e}");
    }
}

/// A producer that sends the pieces it is given, then reports `total`.
struct Scripted {
    pieces: Vec<(u64, u64)>,
    total: u64,
    panic: bool,
}

impl pipeline::Produce for Scripted {
    fn produce<'scope>(self, emit: &pipeline::Emitter<'_, 'scope>) -> Result<pipeline::Produced>
    where
        Self: 'scope,
    {
        for (i, &(guest, len)) in self.pieces.iter().enumerate() {
            if self.panic && i == 1 {
                panic!("producer broke");
            }
            emit.submit(guest, false, len as usize, move |mut buf| {
                buf.fill(1);
                Ok(piece::ReadData {
                    buf,
                    extents: vec![(0, len as usize)],
                })
            })?;
        }
        Ok(pipeline::Produced {
            total: self.total,
            ..Default::default()
        })
    }
}

/// A producer that stops early, skips a piece, sends one twice or panics fails the copy in
/// either order, and the sink is never finished.
#[test]
fn a_producer_that_stops_early_or_panics_fails_the_copy() {
    let cancel = AtomicBool::new(false);
    let m = 1u64 << 20;
    type Case<'a> = (&'a [(u64, u64)], u64, bool, &'a str);
    let cases: &[Case] = &[
        (
            &[(0, m), (m, m)],
            3 * m,
            false,
            "bytes 2097152..3145728 of 3145728 never arrived",
        ),
        (
            &[(0, m), (2 * m, m)],
            3 * m,
            false,
            "bytes 1048576..2097152 of 3145728 never arrived",
        ),
        (&[(0, m), (0, m)], m, false, "came twice"),
        (
            &[(0, m), (m, m)],
            2 * m,
            true,
            "the producer thread panicked (producer broke)",
        ),
    ];
    for order in [pipeline::Order::Guest, pipeline::Order::Layout] {
        for &(pieces, total, panic, want) in cases {
            if order == pipeline::Order::Guest && want == "came twice" {
                // In guest order a duplicate waits behind the frontier: reported as a gap.
                continue;
            }
            let mut sink = Writes::default();
            let p = Scripted {
                pieces: pieces.to_vec(),
                total,
                panic,
            };
            let opts = small_opts(Some(Checksum::Sha256Blocks));
            let e = pipeline::run(p, &mut sink, &opts, &quiet_control(&cancel), order, total)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{order:?}: {e}");
            assert!(sink.finished.is_none(), "{order:?}: {want}");
        }
    }
}

/// A stream whose reader fails part-way fails the copy.
#[test]
fn a_stream_that_breaks_fails_the_copy() {
    struct Breaks(u64);
    impl std::io::Read for Breaks {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::other("the pipe broke"));
            }
            let n = (buf.len() as u64).min(self.0) as usize;
            buf[..n].fill(3);
            self.0 -= n as u64;
            Ok(n)
        }
    }
    let cancel = AtomicBool::new(false);
    let mut sink = Writes::default();
    let e = copy_stream(
        Box::new(Breaks(5 << 20)),
        &mut sink,
        &small_opts(Some(Checksum::Sha256)),
        &quiet_control(&cancel),
    )
    .unwrap_err();
    assert!(e.to_string().contains("the pipe broke"), "{e}");
    assert!(sink.finished.is_none());
}
