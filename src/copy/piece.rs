//! A piece of the virtual disk on its way from a producer to the sink: what a decode thread
//! made of it (its non-zero runs, its block digests, maybe already written).
use super::digest::{whole_block_digests, BlockDigest};
use super::{Checksum, ConcurrentWrite, PieceData, PoolBuf};
use crate::error::Result;
use crate::zero::push_nonzero_runs;

/// Guest bytes `[guest, guest + len)`, read or known to be zeros.
pub(crate) struct Piece {
    pub guest: u64,
    pub len: u64,
    /// The non-zero runs (`(start, len)` within the piece): what belongs in the target.
    pub runs: Vec<(usize, usize)>,
    /// Its `sha256-blocks` block digests, when the thread that read it made them (then the
    /// hasher needs no data).
    pub digests: Option<Vec<BlockDigest>>,
    pub body: Body,
}

/// What a piece brings besides its runs.
pub(crate) enum Body {
    /// Known to read as zeros without reading it (any length: a hole of terabytes is one piece).
    Zeros,
    /// The same as in the base the target already holds (a diff's unchanged range): neither
    /// read nor written, and it cannot be hashed.
    Unchanged,
    /// Read; its runs are still to be written, by the consumer.
    Unwritten(ReadData),
    /// Its runs are already in the target (written by the decode thread that read them). The
    /// data comes along only when the hasher needs it.
    Written(Option<ReadData>),
}

/// The bytes read for one piece.
pub(crate) struct ReadData {
    pub buf: PoolBuf,
    /// The ranges of `buf` that were read (`(start, len)`); the rest of the piece reads as
    /// zeros and those bytes of `buf` are stale.
    pub extents: Vec<(usize, usize)>,
}

impl Piece {
    /// A run of zeros.
    pub fn zeros(guest: u64, len: u64) -> Piece {
        Piece {
            guest,
            len,
            runs: Vec::new(),
            digests: None,
            body: Body::Zeros,
        }
    }

    /// A range the target already holds.
    pub fn unchanged(guest: u64, len: u64) -> Piece {
        Piece {
            body: Body::Unchanged,
            ..Piece::zeros(guest, len)
        }
    }

    /// Guest offset just past the piece.
    pub fn end(&self) -> u64 {
        self.guest + self.len
    }

    /// Bytes of the piece that belong in the target.
    pub fn data_len(&self) -> u64 {
        self.runs.iter().map(|r| r.1 as u64).sum()
    }
}

/// How decode threads finish a piece: zero detection, block hashing, and the direct write.
pub(crate) struct Scan {
    pub sparse: usize,
    pub checksum: Option<Checksum>,
    /// Make the block digests of whole-block pieces: the checksum is made of them, or the
    /// sink keeps them ([`super::Sink::takes_block_digests`]).
    pub block_digests: bool,
    /// Where decode threads write directly, when the sink takes writes from many threads.
    pub direct: Option<std::sync::Arc<dyn ConcurrentWrite>>,
}

impl Scan {
    /// Zero-scans the `read` ranges of the piece at `guest`, makes its block digests when they
    /// are wanted and it covers whole blocks (`last`: it ends the disk, so its last block may be
    /// short), and with a direct writer writes its runs there, keeping the data only if the
    /// hasher still needs it.
    pub fn finish(&self, guest: u64, read: ReadData, last: bool) -> Result<Piece> {
        let mut runs = Vec::new();
        for &(start, n) in &read.extents {
            push_nonzero_runs(&read.buf, start, n, self.sparse, &mut runs);
        }
        let digests = whole_block_digests(self.block_digests, guest, &read.buf, &runs, last);
        let len = read.buf.len() as u64;
        let body = match &self.direct {
            None => Body::Unwritten(read),
            Some(w) => {
                let piece = PieceData {
                    buf: &read.buf,
                    extents: &read.extents,
                    runs: &runs,
                };
                w.write_piece(guest, &piece)?;
                // The buffer goes back to the pool now, unless the hasher needs its bytes.
                Body::Written((self.checksum.is_some() && digests.is_none()).then_some(read))
            }
        };
        Ok(Piece {
            guest,
            len,
            runs,
            digests,
            body,
        })
    }
}
