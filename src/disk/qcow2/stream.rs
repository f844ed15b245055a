//! Forward-only decoding of a qcow2 image that arrives as a stream (stdin, a pipe): guest bytes
//! come out while the stream goes by, in the order the file holds them, with bounded memory.
//!
//! A qcow2 file may hold a cluster before the table that says where it belongs, so the decoder
//! walks the stream one host cluster at a time and keeps:
//! - the L1 table while the stream passes it, then only the sorted list of L2 tables to come;
//! - *claims*: host ranges named by L2 tables already seen whose bytes are still ahead — runs
//!   of data (sub)clusters, merged while contiguous on host and guest, and compressed clusters;
//! - a *spill file* (`spill.rs`): every byte that arrives and no known claim or table
//!   takes is written, sparsely, to an unnamed temporary file at its host offset. A table that
//!   arrives late (an L2 table after its data, an L1 table at the end of the file) finds the
//!   bytes it names there. Nothing is spilled once the L1 table and every L2 table it names
//!   have been seen, as no unknown claim can remain.
//!
//! Compressed clusters start anywhere and their length is rounded up to whole 512-byte
//! sectors, so the last sector of one range can hold the start of the next, whose L2 table may
//! not have been seen. The last sector of every compressed range is therefore always spilled
//! while unknown tables remain (one sector per compressed cluster: a few percent of the stream
//! at 4 KiB clusters, less at 64 KiB).
//! Other claimed bytes are handed out and dropped: in a valid image no two clusters overlap
//! and no data cluster overlaps a table, so nothing learned later can need them. (In a corrupt
//! image that breaks this, a late claim reads zeros there; no byte is read out of bounds.)
//! Nor are bytes known to be unneeded spilled: the refcount table and the refcount blocks it
//! lists, and the stale contents of clusters that read as zeros but keep their host cluster
//! (preallocated zero clusters, the unused subclusters of an allocated cluster).
//!
//! Output ([`Event`]): guest bytes, compressed clusters to decode (the caller decodes them, in
//! parallel), and guest ranges that read as zeros. Every guest byte below the virtual size is
//! covered by exactly one event. Events come in stream order (bytes found in the spill when a
//! late table arrives, at that moment), which for images written by `qemu-img convert` is
//! guest order.
//!
//! Memory, worst case, besides the events the caller holds: the L1 table (at most 32 MiB, the
//! header's cap; twice that while it is decoded), then 16 bytes per allocated L1 entry still
//! to come; at most [`MAX_PENDING_CLAIMS`] claims of ~100 bytes (about 50 MiB): a table that
//! would exceed that is not registered but spilled and resolved at the end of the stream (16
//! bytes each); at most [`MAX_ACTIVE_DATA`] partial data pieces of `piece` bytes and
//! [`MAX_ACTIVE_COMPRESSED_BYTES`] of partial compressed clusters (more overlap than that is
//! corruption and an error); one cluster of carry-over between reads; the refcount table (at
//! most 8 MiB) while it arrives. qemu-img puts each L2 table just before the data it maps, so
//! the claims stay about one table's worth, usually a handful of merged runs.
//!
//! Nothing read from the stream is trusted: offsets are checked as the stream reaches them (a
//! claim the stream never reaches is a truncated or corrupt image, reported at its end), sizes
//! come from the validated header, and every allocation is capped. This module never writes
//! anything but its own spill file.
use super::be_words;
use super::header::{Compression, Header, MAX_CLUSTER_BITS, MIN_CLUSTER_BITS};
use super::l2::{Layout, Mapping, OFFSET_MASK};
use super::spill::Spill;
use crate::disk::read_full;
use crate::error::{Error, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

/// What known tables turn into: zero runs, data from the spill, claims.
mod tables;
/// The walk over the stream, cluster by cluster, and its end.
mod walk;

/// Bytes per read from the stream: a multiple of every cluster size, so reads stay aligned.
pub const READ_BLOCK: usize = 1 << MAX_CLUSTER_BITS;
/// Claims kept before further L2 tables are spilled and resolved at the end instead.
pub const MAX_PENDING_CLAIMS: usize = 1 << 19;
/// Data runs being filled at once; a valid image has one (data clusters never overlap).
pub const MAX_ACTIVE_DATA: usize = 16;
/// Bytes of compressed clusters being filled at once; a valid image needs a few clusters.
pub const MAX_ACTIVE_COMPRESSED_BYTES: u64 = 64 << 20;
/// Refcount blocks remembered as not-data (beyond this they are just spilled).
const MAX_REFBLOCKS: usize = 1 << 16;
/// Bits 9-63 of a refcount table entry: the offset of a refcount block.
const REFTABLE_OFFSET_MASK: u64 = 0xffff_ffff_ffff_fe00;
const SECTOR: u64 = 512;

/// What the stream says about the guest disk, piece by piece.
#[derive(Debug)]
pub enum Event {
    /// Guest bytes at `guest`, as stored (zeros included).
    Data {
        /// Guest offset of the first byte.
        guest: u64,
        /// The bytes; never empty, never crossing a multiple of the piece size.
        bytes: Vec<u8>,
    },
    /// A compressed cluster: decode `input` into one cluster and keep its first `len` bytes
    /// at `guest` (less than a cluster only at the end of the disk).
    Compressed {
        /// Guest offset of the cluster.
        guest: u64,
        /// Host offset of the compressed bytes, for error messages.
        host: u64,
        /// The compressed bytes with their sector padding (shorter at the end of the stream).
        input: Vec<u8>,
        /// Guest bytes the cluster provides.
        len: usize,
    },
    /// `len` guest bytes at `guest` that read as zeros (zero or unallocated clusters, missing
    /// L2 tables; a streamed image has no backing file).
    Zero {
        /// Guest offset.
        guest: u64,
        /// Length in bytes.
        len: u64,
    },
}

/// Where the events go; an error stops the decoder and is returned by it.
pub type Emit<'a> = &'a mut dyn FnMut(Event) -> Result<()>;

/// Allocates an event buffer of exactly the given length (contents unspecified).
pub type Alloc = Box<dyn FnMut(usize) -> Vec<u8> + Send>;

/// What decoding a stream took.
#[derive(Clone, Debug, Default)]
pub struct StreamStats {
    /// Bytes read from the stream.
    pub bytes_read: u64,
    /// Bytes written to the spill file (all-zero blocks excluded).
    pub bytes_spilled: u64,
    /// L2 tables found behind the stream position when they became known (read from the spill).
    pub tables_late: u64,
    /// L2 tables resolved at the end of the stream because too many claims were pending.
    pub tables_deferred: u64,
}

/// A qcow2 image arriving as a stream, its header read and checked.
pub struct Qcow2Stream {
    name: String,
    header: Header,
    /// The first cluster (shorter if the stream is).
    first: Vec<u8>,
    reader: Box<dyn Read + Send>,
}

impl Qcow2Stream {
    /// Reads and validates the header from the start of `reader`; `name` names the stream in
    /// errors. A stream naming a backing file or an external data file is refused: there is no
    /// directory to find it in.
    pub fn open(mut reader: Box<dyn Read + Send>, name: &str) -> Result<Qcow2Stream> {
        let read_err = |e| Error::io(format!("read {name}"), e);
        let mut first = vec![0u8; 104];
        let n = read_full(reader.as_mut(), &mut first).map_err(read_err)?;
        first.truncate(n);
        if n == 104 && first[..4] == crate::disk::QCOW2_MAGIC {
            let bits = u32::from_be_bytes([first[20], first[21], first[22], first[23]]);
            if (MIN_CLUSTER_BITS..=MAX_CLUSTER_BITS).contains(&bits) {
                first.resize(1 << bits, 0);
                let m = read_full(reader.as_mut(), &mut first[104..]).map_err(read_err)?;
                first.truncate(104 + m);
            }
        }
        // The file size is unknown: offsets are checked as the stream reaches them.
        let header = Header::parse(&first, u64::MAX, name)?;
        if let Some(b) = &header.backing_file {
            return Err(Error::bad_image(
                name,
                format!("a qcow2 read from stdin cannot have a backing file (it names '{b}'): flatten it first (qemu-img convert -O qcow2 IMAGE FLAT.qcow2) or pass the file path"),
            ));
        }
        if let Some(d) = &header.data_file {
            return Err(Error::bad_image(
                name,
                format!("a qcow2 read from stdin cannot keep its data in an external data file (it names '{d}'): convert it first (qemu-img convert -O qcow2) or pass the file path"),
            ));
        }
        Ok(Qcow2Stream {
            name: name.to_string(),
            header,
            first,
            reader,
        })
    }

    /// The validated header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The guest-visible size.
    pub fn virtual_size(&self) -> u64 {
        self.header.size
    }

    /// The name errors use.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Splits into a decoder, the bytes already read (to feed it first) and the rest of the
    /// stream. `piece` caps data events and aligns them to guest multiples of it (the RBD
    /// object size); `alloc` provides their buffers.
    pub fn into_parts(
        self,
        piece: u64,
        alloc: Alloc,
    ) -> (StreamDecoder, Vec<u8>, Box<dyn Read + Send>) {
        let dec = StreamDecoder::new(self.name, self.header, piece, alloc);
        (dec, self.first, self.reader)
    }

    /// Decodes the whole stream on this thread, handing every event to `emit`. For callers
    /// that decode compressed clusters themselves and need no parallelism (tests, tools).
    pub fn decode_all(self, piece: u64, emit: Emit) -> Result<StreamStats> {
        let (mut dec, first, mut reader) = self.into_parts(piece, Box::new(|n| vec![0u8; n]));
        dec.feed(&first, emit)?;
        let mut buf = vec![0u8; READ_BLOCK];
        loop {
            let n = read_full(reader.as_mut(), &mut buf)
                .map_err(|e| Error::io(format!("read {}", dec.name), e))?;
            dec.feed(&buf[..n], emit)?;
            if n < buf.len() {
                return dec.finish(emit);
            }
        }
    }
}

/// What is still expected from the stream at a host range.
#[derive(Clone, Copy, Debug)]
enum Claim {
    /// `len` bytes of guest data at `guest`.
    Data { guest: u64, len: u64 },
    /// A compressed cluster of `clen` bytes (sector-rounded) for `out` guest bytes at `guest`.
    Compressed { guest: u64, clen: u64, out: usize },
    /// `len` bytes owned by clusters that read as zeros: nothing needs them.
    Discard { len: u64 },
}

/// What a run of guest bytes mapped by one L2 table is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Zeros, no host bytes (unallocated, or a zero cluster without an offset).
    Zero,
    /// Zeros whose cluster owns host bytes (a preallocated zero cluster, the zero or
    /// unallocated subclusters of an allocated cluster): their stale contents are not needed.
    OwnedZero,
    /// Guest data stored at `host`.
    Data,
}

/// Guest bytes `guest..guest + len` of one kind, at host `host..` (unless `Zero`).
#[derive(Clone, Copy, Debug)]
struct Run {
    guest: u64,
    kind: Kind,
    host: u64,
    len: u64,
}

impl Run {
    fn new(guest: u64, kind: Kind, host: u64, len: u64) -> Run {
        Run {
            guest,
            kind,
            host,
            len,
        }
    }

    /// Whether `next` extends this run: same kind, contiguous on the guest and the host.
    fn continues_with(&self, next: &Run) -> bool {
        self.kind == next.kind
            && self.guest + self.len == next.guest
            && (self.kind == Kind::Zero || self.host + self.len == next.host)
    }
}

/// A claim the stream has reached and is filling.
enum Active {
    /// A data run: host bytes `next..end` still to come, `next` being guest `guest`; `buf`
    /// holds the guest piece being filled (`filled` bytes of it so far).
    Data {
        next: u64,
        end: u64,
        guest: u64,
        buf: Vec<u8>,
        filled: usize,
    },
    /// A compressed cluster at host `host`: `buf` is its `clen` bytes, `filled` so far.
    Compressed {
        host: u64,
        guest: u64,
        out: usize,
        buf: Vec<u8>,
        filled: usize,
    },
    /// Host bytes `next..end` nothing needs (see [`Claim::Discard`]).
    Discard { next: u64, end: u64 },
}

enum L1State {
    /// Not complete yet: the bytes so far (allocated when the stream reaches the table).
    Pending(Vec<u8>),
    /// Seen; its L2 tables are in `l2_queue`.
    Done,
}

/// The decoder state; see the module documentation.
pub struct StreamDecoder {
    name: String,
    size: u64,
    lay: Layout,
    cs: u64,
    compression: Compression,
    piece: u64,
    /// Claims kept before further tables are deferred ([`MAX_PENDING_CLAIMS`]).
    claim_limit: usize,
    alloc: Alloc,
    /// Stream bytes consumed (always a cluster multiple until the end).
    pos: u64,
    /// Bytes of an incomplete cluster between two feeds.
    carry: Vec<u8>,
    l1_off: u64,
    l1_bytes: u64,
    l1: L1State,
    /// L2 tables still ahead, sorted: (host offset, L1 index); `l2_next` is the next one.
    l2_queue: Vec<(u64, u32)>,
    l2_next: usize,
    /// L2 tables to resolve from the spill at the end: (L1 index, host offset).
    deferred: Vec<(u32, u64)>,
    /// Claims not reached yet, by (host offset, sequence number).
    pending: BTreeMap<(u64, u64), Claim>,
    seq: u64,
    active: Vec<Active>,
    active_compressed_bytes: u64,
    /// The refcount table's host range, and its bytes while the stream passes it.
    reftable: (u64, u64),
    reftable_buf: Option<Vec<u8>>,
    /// Refcount blocks still ahead.
    refblocks: BTreeSet<u64>,
    spill: Spill,
    stats: StreamStats,
}

/// Overlap of `[a0, a1)` and `[b0, b1)`, if not empty.
fn overlap(a0: u64, a1: u64, b0: u64, b1: u64) -> Option<(u64, u64)> {
    let (s, e) = (a0.max(b0), a1.min(b1));
    (s < e).then_some((s, e))
}

/// qemu-img/qemu-io fixtures for the unit tests, reachable here as well because the copy
/// engine's tests name them by this path.
#[cfg(test)]
pub(crate) use crate::testutil::qemu;

#[cfg(test)]
mod tests;
