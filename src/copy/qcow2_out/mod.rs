//! A qcow2 file as a copy target (`-O qcow2`): a format layer over a positional raw target
//! (a [`FileSink`](super::sink_file::FileSink), which publishes it atomically). [`stream`]
//! writes the same format to a forward-only stream, its tables first, planned in the same
//! [`layout`].
//!
//! The decode thread that read a piece encodes it here ([`ConcurrentWrite::write_piece`]):
//! it cuts the piece into clusters, skips those holding only zeros, compresses the rest when
//! asked (in parallel, one piece per thread: `qemu-img convert -c` compresses one cluster at
//! a time in guest order), takes host space for them in one short lock and writes them. So
//! data lands in the file in the order pieces finish, not in guest order, which qcow2 allows:
//! the L2 entries say where each cluster is. The tables are written after the data, in
//! [`Sink::finish`]: the L2 tables, the L1 table, the refcount blocks and table, then the
//! header in cluster 0 ([`layout`]). A copy that fails leaves a temporary file the target
//! removes; nothing is ever visible under the final name half written.
//!
//! Memory: the extra buffers (a compressed piece, a cluster with holes in it) come from the
//! piece's own pool, inside the copy's budget, and live only while the piece is written. The
//! L2 tables are kept until the end: 8 bytes per 64 KiB cluster written (128 MiB per TiB of
//! data), outside the budget, as a sink's index is.
//!
//! Pieces must start on a cluster boundary and be whole clusters, except the one that ends
//! the disk: every disk producer cuts pieces at multiples of the chunk size, a multiple of the
//! cluster. A stream whose pieces are smaller (a qcow2 stream of 4 KiB clusters) is refused
//! with an error when its first such piece arrives.
pub mod encode;
pub mod layout;
pub mod stream;

use super::{ConcurrentWrite, PieceData, PoolBuf, Sink};
use crate::disk::qcow2::Compression;
use crate::error::{Error, Result};
use layout::{
    Geometry, HeaderFields, Metadata, Placement, Refcounts, OFLAG_COMPRESSED, OFLAG_COPIED,
};
use std::sync::{Arc, Mutex, MutexGuard};

/// A qcow2 image written into `target` (a raw file that takes positional writes from many
/// threads); call [`Qcow2Sink::into_target`] after a successful copy to publish it.
pub struct Qcow2Sink<T: Sink> {
    target: T,
    writer: Arc<Qcow2Writer>,
}

impl<T: Sink> Qcow2Sink<T> {
    /// A sink writing a qcow2 image into `target`, its clusters compressed with `compression`
    /// (`None`: stored as they are).
    pub fn new(target: T, compression: Option<Compression>) -> Result<Self> {
        let store = target.concurrent_writer().ok_or_else(|| {
            Error::InvalidInput(
                "-O qcow2 needs a target that takes writes anywhere (a local file)".into(),
            )
        })?;
        let g = Geometry::default();
        Ok(Qcow2Sink {
            target,
            writer: Arc::new(Qcow2Writer {
                store,
                g,
                compression,
                state: Mutex::new(State {
                    // Cluster 0 is the header's.
                    next: g.cluster_size(),
                    l2: Vec::new(),
                    tail: None,
                }),
            }),
        })
    }

    /// The raw target, holding the finished image (to publish it).
    pub fn into_target(self) -> T {
        self.target
    }
}

impl<T: Sink> Sink for Qcow2Sink<T> {
    fn ensure_size(&mut self, _size: u64) -> Result<()> {
        // The tables are sized in `finish`, once the disk's size is final.
        Ok(())
    }

    fn write(&mut self, offset: u64, data: PoolBuf) -> Result<()> {
        let whole = [(0, data.len())];
        self.writer.write_piece(
            offset,
            &PieceData {
                buf: &data,
                extents: &whole,
                runs: &whole,
            },
        )
    }

    fn finish(&mut self, size: u64) -> Result<()> {
        let end = self.writer.write_metadata(size)?;
        self.target.finish(end)
    }

    fn concurrent_writer(&self) -> Option<Arc<dyn ConcurrentWrite>> {
        Some(self.writer.clone())
    }
}

/// The part of the sink the decode threads share.
struct Qcow2Writer {
    store: Arc<dyn ConcurrentWrite>,
    g: Geometry,
    compression: Option<Compression>,
    state: Mutex<State>,
}

/// Host space and the map of what went where.
struct State {
    /// The next free host byte (compressed clusters are packed byte by byte, others start on
    /// a cluster boundary).
    next: u64,
    /// L2 tables by L1 index, made when the first cluster they map is written.
    l2: Vec<Option<Box<[u64]>>>,
    /// The end of the piece that ended off a cluster boundary: only the disk's last may.
    tail: Option<u64>,
}

/// One data cluster of a piece, ready to be written.
enum Out {
    /// Stored as read: these piece bytes (a whole cluster, all read).
    InPlace(usize),
    /// Stored from a buffer of its own (zeros where the piece was not read, or past the end
    /// of the disk in its last cluster).
    Padded(PoolBuf),
    /// Compressed: these bytes of the piece's compressed buffer.
    Compressed(usize, usize),
}

impl Qcow2Writer {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The bytes of cluster `range` of the piece, for compressing: the piece's own when they
    /// were all read, else a zeroed cluster with the piece's runs copied in.
    fn cluster_bytes(&self, p: &PieceData, start: usize) -> (Option<PoolBuf>, bool) {
        let cs = self.g.cluster_size() as usize;
        let end = start + cs;
        let read_whole =
            end <= p.buf.len() && p.extents.iter().any(|&(s, n)| s <= start && end <= s + n);
        if read_whole {
            return (None, true);
        }
        let mut own = p.buf.pool().get(cs);
        own.fill(0);
        for &(s, n) in p.runs {
            let (a, b) = (s.max(start), (s + n).min(end).min(p.buf.len()));
            if a < b {
                own[a - start..b - start].copy_from_slice(&p.buf[a..b]);
            }
        }
        (Some(own), false)
    }

    /// Records the entry of guest cluster `gc`; each is written once.
    fn map(&self, st: &mut State, gc: u64, entry: u64) -> Result<()> {
        let per = self.g.l2_entries();
        let (l1, i) = ((gc / per) as usize, (gc % per) as usize);
        if st.l2.len() <= l1 {
            st.l2.resize_with(l1 + 1, || None);
        }
        let table = st.l2[l1].get_or_insert_with(|| vec![0u64; per as usize].into_boxed_slice());
        if table[i] != 0 {
            return Err(Error::Other(format!(
                "qcow2 writer: guest cluster {gc} written twice: this is a bug in rbdkit, please report it"
            )));
        }
        table[i] = entry;
        Ok(())
    }

    /// Writes the L2 tables, L1 table, refcounts and header for a disk of `size` bytes; the
    /// file's final length.
    fn write_metadata(&self, size: u64) -> Result<u64> {
        let g = self.g;
        let cs = g.cluster_size();
        let st = self.lock();
        if let Some(t) = st.tail.filter(|&t| t != size) {
            return Err(Error::Other(format!(
                "qcow2 writer: a piece ended at {t}, off a cluster boundary, inside a disk of {size} bytes: the source's pieces are not whole clusters; convert it to a file first"
            )));
        }
        let size = Geometry::stored_size(size);
        let l1_entries = g.l1_entries(size);
        if st.l2.len() as u64 > l1_entries {
            return Err(Error::Other(format!(
                "qcow2 writer: data was written past the end of a disk of {size} bytes: this is a bug in rbdkit, please report it"
            )));
        }
        let tables: Vec<(usize, &[u64])> = st
            .l2
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.as_deref().map(|t| (i, t)))
            .collect();
        let place = Placement::After { data_end: st.next };
        let m: Metadata = g.plan(place, tables.len() as u64, l1_entries);
        let mut refs = Refcounts::new(g, m.file_end);
        refs.add(0, cs)?;
        for (k, &(_, table)) in tables.iter().enumerate() {
            let mut bytes = Vec::with_capacity(cs as usize);
            for &e in table {
                if e & OFLAG_COMPRESSED != 0 {
                    let (off, len) = g.compressed_span(e);
                    refs.add(off, len)?;
                } else if e != 0 {
                    refs.add(e & !OFLAG_COPIED, cs)?;
                }
                bytes.extend_from_slice(&e.to_be_bytes());
            }
            self.store.write_at(m.l2_offset + k as u64 * cs, &bytes)?;
        }
        let meta_start = m.l2_offset;
        refs.add(meta_start, m.file_end - meta_start)?;
        let l1 = layout::l1_table(g, &m, l1_entries, tables.iter().map(|t| t.0 as u64));
        self.store.write_at(m.l1_offset, &l1)?;
        for b in 0..m.refblocks {
            self.store
                .write_at(m.refblock_offset + b * cs, &refs.block(g, b))?;
        }
        self.store
            .write_at(m.reftable_offset, &layout::reftable(g, &m))?;
        let fields = HeaderFields {
            size,
            l1_entries,
            compression: self.compression.unwrap_or(Compression::Deflate),
        };
        self.store.write_at(0, &layout::header(g, fields, &m))?;
        Ok(m.file_end)
    }
}

impl ConcurrentWrite for Qcow2Writer {
    fn write_at(&self, offset: u64, _data: &[u8]) -> Result<()> {
        Err(Error::Other(format!(
            "qcow2 writer: a bare write at {offset}: it takes whole pieces (write_piece): this is a bug in rbdkit, please report it"
        )))
    }

    fn write_piece(&self, guest: u64, p: &PieceData) -> Result<()> {
        let cs = self.g.cluster_size() as usize;
        let len = p.buf.len();
        if !guest.is_multiple_of(cs as u64) {
            return Err(Error::Other(format!(
                "qcow2 writer: a piece at guest offset {guest} is not on a {cs}-byte cluster boundary: the source's pieces are not whole clusters; convert it to a file first"
            )));
        }
        if !len.is_multiple_of(cs) {
            let mut st = self.lock();
            let end = guest + len as u64;
            if st.tail.is_some_and(|t| t != end) {
                return Err(Error::Other(format!(
                    "qcow2 writer: two pieces end off a cluster boundary ({end} and {}): the source's pieces are not whole clusters; convert it to a file first",
                    st.tail.unwrap_or_default()
                )));
            }
            st.tail = Some(end);
        }
        // The clusters holding any non-zero byte, in order.
        let mut clusters: Vec<usize> = Vec::new();
        for &(s, n) in p.runs.iter().filter(|r| r.1 > 0) {
            for c in s / cs..=(s + n - 1) / cs {
                if clusters.last() != Some(&c) {
                    clusters.push(c);
                }
            }
        }
        if clusters.is_empty() {
            return Ok(());
        }
        let mut packed = self
            .compression
            .map(|_| p.buf.pool().empty(clusters.len() * cs));
        let mut outs = Vec::with_capacity(clusters.len());
        for &c in &clusters {
            let start = c * cs;
            let (own, in_place) = self.cluster_bytes(p, start);
            let out = match (self.compression, packed.as_mut()) {
                (Some(kind), Some(packed)) => {
                    let input: &[u8] = match &own {
                        Some(v) => v,
                        None => &p.buf[start..start + cs],
                    };
                    let at = packed.len();
                    packed.resize(at + cs - 1, 0);
                    match encode::compress_cluster(kind, input, &mut packed[at..]) {
                        Some(n) => {
                            packed.truncate(at + n);
                            Out::Compressed(at, n)
                        }
                        None => {
                            packed.truncate(at);
                            stored(own, in_place, start)
                        }
                    }
                }
                _ => stored(own, in_place, start),
            };
            outs.push((guest / cs as u64 + c as u64, out));
        }
        // Host space: the stored clusters first, on a cluster boundary, then the compressed
        // bytes packed after them.
        let stored_n = outs
            .iter()
            .filter(|(_, o)| !matches!(o, Out::Compressed(..)))
            .count() as u64;
        let packed_len = packed.as_ref().map_or(0, |b| b.len() as u64);
        let (base, packed_at) = {
            let mut st = self.lock();
            let base = self.g.align_up(st.next);
            let packed_at = base + stored_n * cs as u64;
            let end = packed_at + packed_len;
            st.next = if packed_len > 0 { end } else { packed_at };
            let mut k = 0u64;
            for (gc, out) in &outs {
                let entry = match out {
                    Out::Compressed(at, n) => {
                        self.g.compressed_entry(packed_at + *at as u64, *n as u64)?
                    }
                    _ => {
                        k += 1;
                        (base + (k - 1) * cs as u64) | OFLAG_COPIED
                    }
                };
                self.map(&mut st, *gc, entry)?;
            }
            (base, packed_at)
        };
        // Stored clusters next to each other in the piece go out in one write.
        let mut host = base;
        let mut run: Option<(usize, u64, usize)> = None; // (piece start, host, bytes)
        let flush = |run: &mut Option<(usize, u64, usize)>| -> Result<()> {
            if let Some((s, h, n)) = run.take() {
                self.store.write_at(h, &p.buf[s..s + n])?;
            }
            Ok(())
        };
        for (_, out) in &outs {
            match out {
                Out::Compressed(..) => continue,
                Out::InPlace(s) => match &mut run {
                    Some((rs, _, n)) if *rs + *n == *s => *n += cs,
                    _ => {
                        flush(&mut run)?;
                        run = Some((*s, host, cs));
                    }
                },
                Out::Padded(b) => {
                    flush(&mut run)?;
                    self.store.write_at(host, b)?;
                }
            }
            host += cs as u64;
        }
        flush(&mut run)?;
        if let Some(b) = packed.filter(|b| !b.is_empty()) {
            self.store.write_at(packed_at, &b)?;
        }
        Ok(())
    }
}

/// A cluster stored uncompressed: in place when the piece holds all of it, else its own copy.
fn stored(own: Option<PoolBuf>, in_place: bool, start: usize) -> Out {
    match own {
        Some(b) if !in_place => Out::Padded(b),
        _ => Out::InPlace(start),
    }
}
