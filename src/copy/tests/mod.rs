//! The engine's tests: every producer into a sink that checks what the engine promises
//! (disks.rs, qcow2_stream.rs), and every failure the engine must turn into an error
//! (failures.rs). The fixtures they share are here.
mod disks;
mod failures;
mod qcow2_out_stream;
mod qcow2_stream;

use super::*;
use crate::disk::{extents_from_data, Extent};
use std::sync::atomic::AtomicBool;

/// No checksum and every algorithm: what the engine tests run each copy with.
pub(super) const ALL_CHECKSUMS: [Option<Checksum>; 4] = [
    None,
    Some(Checksum::Sha256),
    Some(Checksum::Sha256Blocks),
    Some(Checksum::Sha256Tree),
];

/// A disk in memory whose extents are given: data where listed, unallocated elsewhere.
pub(super) struct MemDisk {
    pub bytes: Vec<u8>,
    pub data: Vec<(u64, u64)>,
}

impl DiskSource for MemDisk {
    fn virtual_size(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn extents(&self, offset: u64, len: u64) -> Result<Vec<Extent>> {
        Ok(extents_from_data(
            offset,
            offset + len,
            self.data.iter().copied(),
        ))
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let o = offset as usize;
        buf.copy_from_slice(&self.bytes[o..o + buf.len()]);
        Ok(())
    }

    fn format_name(&self) -> &'static str {
        "memory"
    }
}

pub(super) fn quiet_control(cancel: &AtomicBool) -> Control<'_> {
    Control {
        progress: &|_, _| {},
        cancel,
    }
}

pub(super) fn small_opts(checksum: Option<Checksum>) -> CopyOptions {
    CopyOptions {
        chunk_size: 1 << 20,
        threads: 3,
        memory: 4 << 20,
        checksum,
        ..CopyOptions::default()
    }
}

/// A sink that records its writes and whether it was finished.
#[derive(Default)]
pub(super) struct Writes {
    pub writes: Vec<(u64, usize)>,
    pub finished: Option<u64>,
}

impl Sink for Writes {
    fn ensure_size(&mut self, _: u64) -> Result<()> {
        Ok(())
    }
    fn write(&mut self, offset: u64, data: PoolBuf) -> Result<()> {
        self.writes.push((offset, data.len()));
        Ok(())
    }
    fn finish(&mut self, size: u64) -> Result<()> {
        self.finished = Some(size);
        Ok(())
    }
}

/// A sink that, like librbd's aio, keeps up to `keep` written buffers until the next write or
/// a reap, and records the most bytes of buffers its copy had out at a write.
pub(super) struct Holding {
    keep: usize,
    held: Vec<PoolBuf>,
    pub bytes: u64,
    pub max_in_use: u64,
}

impl Holding {
    pub fn new(keep: usize) -> Holding {
        Holding {
            keep,
            held: Vec::new(),
            bytes: 0,
            max_in_use: 0,
        }
    }
}

impl Sink for Holding {
    fn ensure_size(&mut self, _: u64) -> Result<()> {
        Ok(())
    }
    fn write(&mut self, _: u64, data: PoolBuf) -> Result<()> {
        self.bytes += data.len() as u64;
        self.max_in_use = self.max_in_use.max(data.pool().in_use());
        if self.held.len() >= self.keep {
            self.held.remove(0);
        }
        self.held.push(data);
        Ok(())
    }
    fn reap_finished(&mut self) -> Result<bool> {
        self.held.clear();
        Ok(false)
    }
    fn finish(&mut self, _: u64) -> Result<()> {
        self.held.clear();
        Ok(())
    }
}
