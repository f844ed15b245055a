//! The one copy engine: any producer into any sink.
//!
//! producer (walks the input) → decode threads (read or decompress, zero-scan, block-hash,
//! maybe write) → consumer (guest order or as they come) → sink; one hasher behind a frontier.
//! Producers: a random-access disk (raw file, qcow2 file, RBD image or snapshot), a raw stream,
//! a qcow2 stream. Sinks: a sparse file, an RBD image, nothing (checksum only), a raw stream,
//! a qcow2 file ([`qcow2_out`], which encodes and compresses on the decode threads).
//! `convert`, `import-raw`, `export`, `copy`, `checksum` and `--verify` are pairings of these
//! ([`copy_disk`], [`copy_stream`], [`copy_qcow2_stream`], [`copy_vmdk_stream`],
//! [`copy_disk_to_qcow2_stream`]).
//!
//! Pieces are at most `chunk_size` bytes (the RBD object size) and never straddle a chunk, so
//! writes are object-aligned. Memory is bounded by one budget ([`CopyOptions::memory`]) that the
//! pieces being read, waiting, written and hashed share, whatever the image size. This module never prints;
//! cancellation is a flag the caller sets (e.g. from SIGINT). See [`pipeline`] for how each
//! failure becomes an error.
mod buffers;
mod checksum;
mod combine;
mod coverage;
pub mod digest;
pub(crate) mod fault;
mod hasher;
mod piece;
mod pipeline;
mod produce;
pub mod publish;
pub mod qcow2_out;
pub mod sink_changed;
#[cfg(feature = "rbd")]
pub mod sink_diff;
pub mod sink_digest;
pub mod sink_file;
#[cfg(feature = "gluster")]
pub mod sink_gluster;
pub mod sink_nfs;
#[cfg(feature = "rbd")]
pub mod sink_rbd;
pub mod sink_stream;
mod tree;
mod workers;

pub use crate::zero::{is_zero, nonzero_runs};
pub use buffers::{BufferPool, PoolBuf};
pub use checksum::checksum_disk;
pub use digest::{BlockDigest, Checksum, DiskHasher};

use crate::disk::mapped::MappedDisk;
use crate::disk::qcow2::Qcow2Stream;
use crate::disk::vmdk::VmdkStream;
use crate::disk::DiskSource;
use crate::error::Result;
use pipeline::{run, Order};
use produce::disk::DiskProducer;
use produce::qcow2_stream::Qcow2StreamProducer;
use produce::raw_stream::RawStreamProducer;
use produce::vmdk_stream::VmdkStreamProducer;
use serde::Serialize;
use std::io::Read;
use std::sync::atomic::AtomicBool;

/// Bytes of decoded data the hasher may hold while it waits for a gap in guest order to fill
/// (only a qcow2 stream's out-of-order data waits; block digests cost 32 bytes a block); at
/// most a quarter of the memory budget.
pub const HASH_BUFFER_BYTES: u64 = 64 << 20;

/// The memory budget of a copy: 64 MiB of buffers, so a process holding a librados connection
/// (about 33 MiB) and what jemalloc keeps of freed extents stays under 128 MiB. It holds 8
/// reads of 4 MiB objects in flight with 8 of the sink's writes
/// ([`sink_rbd::MAX_BYTES_IN_FLIGHT`] is half of it) in the same run. Measured with jemalloc:
/// at 80 MiB a stream export peaked at 130-137 MiB, a full backup at 130-135; at 64 MiB, 112-113
/// and 119-120, in the same time.
pub const MEMORY_BUDGET: u64 = 64 << 20;

/// Where copied data goes. Only non-zero runs are written; the target must read zeros elsewhere
/// (a fresh RBD image, a new sparse file) or fill them itself (a stream).
pub trait Sink {
    /// Grows the target to at least `size` bytes (streams learn their size as they go).
    fn ensure_size(&mut self, size: u64) -> Result<()>;
    /// Writes `data` at `offset`; may keep it in flight (it goes back to its pool when
    /// dropped).
    fn write(&mut self, offset: u64, data: PoolBuf) -> Result<()>;
    /// Waits for every write, makes them durable and sets the final size.
    fn finish(&mut self, size: u64) -> Result<()>;
    /// A writer the decode threads may call directly, in any order, when the target takes
    /// positional writes from many threads (a file). Data is then written while it is still
    /// in the CPU cache of the thread that read it, instead of after a trip through the
    /// ordering queue. `None` (the default): every write goes through [`Sink::write`].
    fn concurrent_writer(&self) -> Option<std::sync::Arc<dyn ConcurrentWrite>> {
        None
    }
    /// True when writes must come in increasing offset order (a pipe): then only producers
    /// that can deliver in guest order may feed it.
    fn ordered(&self) -> bool {
        false
    }
    /// True when the target already holds data (the previous backup, an existing image being
    /// restored over): then every range the source says reads as zeros — `Zero` extents, and
    /// the zero runs inside the ranges read — is zeroed with [`Sink::zero`], and only
    /// `Unchanged` ranges are left alone. False (the default): the target reads zeros wherever
    /// nothing is written (a fresh image or file), so zeros are never written.
    fn overwrites(&self) -> bool {
        false
    }
    /// True when the sink keeps the `sha256-blocks` digests of what it is written (a backup's
    /// block digests): then the decode threads make them for every piece of whole blocks, in
    /// parallel, and hand them to [`Sink::block_digests`], so the sink need not hash those.
    fn takes_block_digests(&self) -> bool {
        false
    }
    /// The digests of the blocks of `[offset, offset + len)` (`offset` on a block boundary;
    /// `len` whole blocks, or up to the end of the disk), made by a decode thread; called
    /// before that range's writes and zeroes, only when [`Sink::takes_block_digests`].
    fn block_digests(&mut self, _offset: u64, _len: u64, _digests: &[BlockDigest]) -> Result<()> {
        Ok(())
    }
    /// Takes back the buffers of writes that finished, without waiting; true while writes are
    /// still in flight. The consumer calls it whenever no piece is ready: a finished write's
    /// buffer counts in the copy's budget until it is taken back, and the producer may be
    /// waiting for that memory (a raw stream with 16 MiB objects hung forever so).
    fn reap_finished(&mut self) -> Result<bool> {
        Ok(false)
    }
    /// Makes `[offset, offset + len)` read as zeros; called only when [`Sink::overwrites`].
    fn zero(&mut self, offset: u64, len: u64) -> Result<()> {
        Err(crate::error::Error::Other(format!(
            "zeroing {len} bytes at {offset}: this target cannot zero ranges: this is a bug in rbdkit, please report it"
        )))
    }
}

/// Positional writes from many threads at once.
pub trait ConcurrentWrite: Send + Sync {
    /// Writes `data` at `offset`.
    fn write_at(&self, offset: u64, data: &[u8]) -> Result<()>;
    /// Writes a piece the calling decode thread just read, at guest offset `guest`: by
    /// default its non-zero runs, each with [`ConcurrentWrite::write_at`]. A target that
    /// encodes what it stores (a qcow2 file: clusters, compressed) overrides it, so the
    /// encoding runs here, on the decode threads, in parallel.
    fn write_piece(&self, guest: u64, piece: &PieceData) -> Result<()> {
        for &(start, n) in piece.runs {
            self.write_at(guest + start as u64, &piece.buf[start..start + n])?;
        }
        Ok(())
    }
}

/// A piece as a decode thread hands it to [`ConcurrentWrite::write_piece`].
pub struct PieceData<'a> {
    /// Its bytes; a buffer from the copy's pool, where a writer takes any memory it needs
    /// (inside the copy's budget).
    pub buf: &'a PoolBuf,
    /// The ranges of `buf` that were read (`(start, len)`); the rest reads as zeros and its
    /// bytes are stale.
    pub extents: &'a [(usize, usize)],
    /// The non-zero runs (`(start, len)`, inside the extents): what belongs in the target.
    pub runs: &'a [(usize, usize)],
}

/// Tuning of a copy.
#[derive(Clone, Debug)]
pub struct CopyOptions {
    /// Bytes per chunk; the RBD object size, so writes are object-aligned.
    pub chunk_size: u64,
    /// Zero-detection granularity (blocks of this size that are all zero are not written).
    pub sparse_size: u64,
    /// Threads reading and decoding chunks.
    pub threads: usize,
    /// Bytes of buffers the copy may hold at once ([`MEMORY_BUDGET`]); a chunk larger than it
    /// still goes, one at a time.
    pub memory: u64,
    /// The checksum of the virtual disk content to compute, if any.
    pub checksum: Option<Checksum>,
    /// Bytes the hasher may hold waiting for out-of-order data ([`HASH_BUFFER_BYTES`]).
    pub hash_buffer: u64,
}

impl Default for CopyOptions {
    fn default() -> Self {
        // Reads of a dense image are I/O-bound: more reads in flight than cores keeps the disk
        // busy (measured: convert of a 1 GiB qcow2 from a cold cache 4.3-5.4 s with 2 threads,
        // 2.8-2.9 s with 8, on a 2-core machine). Compressed clusters just share the cores.
        let threads = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .max(8);
        CopyOptions {
            chunk_size: 4 << 20,
            sparse_size: 4096,
            threads,
            memory: MEMORY_BUDGET,
            checksum: Some(Checksum::Sha256Tree),
            hash_buffer: HASH_BUFFER_BYTES,
        }
    }
}

/// What a copy did.
#[derive(Clone, Debug, Serialize)]
pub struct CopyStats {
    /// Virtual size of the source in bytes.
    pub virtual_size: u64,
    /// Bytes written to the target.
    pub bytes_written: u64,
    /// Bytes not written because they read as zeros.
    pub bytes_zero_skipped: u64,
    /// Wall time of the copy, seconds.
    pub elapsed_s: f64,
    /// The checksum (hex) of the virtual disk content, of the kind asked for in
    /// [`CopyOptions::checksum`]; `None` when not asked for or [`CopyStats::checksum_fell_back`].
    pub checksum: Option<String>,
    /// The checksum was asked for but the data came too far out of guest order to hash on the
    /// way (a qcow2 stream): hash the target instead.
    pub checksum_fell_back: bool,
    /// Streams: bytes read from the input.
    pub bytes_read: Option<u64>,
    /// qcow2 streams: bytes that arrived before the table naming them and went through the
    /// spill file.
    pub bytes_spilled: Option<u64>,
}

/// Progress and cancellation, owned by the caller.
pub struct Control<'a> {
    /// Called with (bytes done, total bytes; 0 when unknown), never going backwards.
    pub progress: &'a (dyn Fn(u64, u64) + Sync),
    /// Set to stop the copy; it then fails with `Error::Interrupted`.
    pub cancel: &'a AtomicBool,
}

/// Copies a random-access disk (raw file, qcow2 file, RBD image) into `sink`.
pub fn copy_disk(
    src: &dyn DiskSource,
    sink: &mut dyn Sink,
    opts: &CopyOptions,
    ctl: &Control,
) -> Result<CopyStats> {
    let size = src.virtual_size();
    let producer = DiskProducer {
        src,
        chunk: opts.chunk_size,
    };
    run(producer, sink, opts, ctl, Order::Guest, size)
}

/// Copies a random-access disk into `out` as a qcow2 image in one forward pass (`-O qcow2` to
/// stdout): the disk's allocation map is taken first ([`MappedDisk`]), the tables are laid
/// out from it and go out ahead of the data ([`qcow2_out::stream`]), which follows in guest
/// order. The copy reads only what the map holds, so the tables stay true even if the source
/// changes meanwhile.
pub fn copy_disk_to_qcow2_stream(
    src: &dyn DiskSource,
    out: &mut sink_stream::StreamSink,
    opts: &CopyOptions,
    ctl: &Control,
) -> Result<CopyStats> {
    let mapped = MappedDisk::take(src)?;
    let mut sink = qcow2_out::stream::Qcow2StreamSink::new(out, src.virtual_size(), mapped.data())?;
    copy_disk(&mapped, &mut sink, opts, ctl)
}

/// Copies a raw byte stream (e.g. stdin) into `sink`, growing the target as data arrives.
///
/// The stream is read on a detached thread, so a cancelled copy returns at once even while a
/// read is blocked (a pipe whose writer stalls); that thread ends when the process does.
pub fn copy_stream(
    reader: Box<dyn Read + Send>,
    sink: &mut dyn Sink,
    opts: &CopyOptions,
    ctl: &Control,
) -> Result<CopyStats> {
    let producer = RawStreamProducer {
        reader,
        chunk: opts.chunk_size as usize,
    };
    run(producer, sink, opts, ctl, Order::Guest, 0)
}

/// Applies an `rbd export-diff` stream (its header read already) to `sink`: written where it
/// writes, zeroed where it zeroes (when the sink [overwrites](Sink::overwrites)), unchanged
/// elsewhere. No checksum: the ranges it leaves alone are not read.
#[cfg(feature = "rbd")]
pub fn copy_diff_stream<R: Read + Send>(
    reader: crate::backup::diff_format::DiffReader<R>,
    sink: &mut dyn Sink,
    opts: &CopyOptions,
    ctl: &Control,
) -> Result<CopyStats> {
    let size = reader.header.size;
    let producer = produce::diff_stream::DiffStreamProducer {
        reader,
        chunk: opts.chunk_size,
    };
    let opts = CopyOptions {
        checksum: None,
        ..opts.clone()
    };
    run(producer, sink, &opts, ctl, Order::Guest, size)
}

/// Copies a qcow2 image arriving as a stream into `sink` in one pass; pieces are written in
/// the image's layout order, so `sink` must take writes anywhere.
pub fn copy_qcow2_stream(
    stream: Qcow2Stream,
    sink: &mut dyn Sink,
    opts: &CopyOptions,
    ctl: &Control,
) -> Result<CopyStats> {
    let size = stream.virtual_size();
    let producer = Qcow2StreamProducer {
        stream,
        chunk: opts.chunk_size,
    };
    run(producer, sink, opts, ctl, Order::Layout, size)
}

/// Copies a streamOptimized VMDK arriving as a stream into `sink` in one pass. Its grains come
/// in guest order (the decoder refuses any other) with the gaps as zeros, so the consumer puts
/// back in order what the decode threads finish out of order, as for a raw stream: any sink,
/// and the hasher never waits.
pub fn copy_vmdk_stream(
    stream: VmdkStream,
    sink: &mut dyn Sink,
    opts: &CopyOptions,
    ctl: &Control,
) -> Result<CopyStats> {
    let size = stream.virtual_size();
    let producer = VmdkStreamProducer {
        stream,
        chunk: opts.chunk_size,
    };
    run(producer, sink, opts, ctl, Order::Guest, size)
}

#[cfg(test)]
mod tests;
