//! The checksum of the virtual disk, folded on its own thread behind a frontier: what arrives
//! ahead of the frontier waits until the gap before it is filled. Producers that submit in
//! guest order have the consumer put pieces back in order first, so nothing waits here; a
//! qcow2 stream's pieces come in the image's layout order and may wait. (Whole-image `sha256`
//! in guest order is the one checksum folded by the consumer itself: see the pipeline.)
//!
//! With `sha256-blocks` a piece that covers whole 64 KiB blocks comes with its digests (32
//! bytes a block), made by the decode thread that read it; other pieces wait with their data.
//! When more than the hash buffer would have to wait (data far out of guest order), the hasher
//! gives up and the copy reports no checksum ([`super::CopyStats::checksum_fell_back`]); the
//! caller then hashes the finished target by reading it back.
use super::digest::BlockDigest;
use super::fault::{injected, Fault};
use super::piece::ReadData;
use super::{Checksum, DiskHasher};
use std::collections::BTreeMap;
use std::sync::mpsc::Receiver;

/// Pieces the hasher may hold waiting (zero runs cost no memory but count here).
const MAX_WAITING: usize = 1 << 20;

/// What the hasher hashes, at a guest offset.
pub(crate) enum Hashed {
    /// Bytes read; only their extents are looked at, the rest is hashed as zeros.
    Data(ReadData),
    /// This many zero bytes, never read.
    Zeros(u64),
    /// The block digests of this many bytes, made by a decode thread.
    Digests(Vec<BlockDigest>, u64),
}

impl Hashed {
    fn len(&self) -> u64 {
        match self {
            Hashed::Data(d) => d.buf.len() as u64,
            Hashed::Zeros(n) | Hashed::Digests(_, n) => *n,
        }
    }
}

/// Hashes what `rx` brings, in guest order; `None` if more than `cap` bytes of data would have
/// had to wait for a gap to fill, or if the pieces did not tile `[0, frontier)` (then the
/// consumer reports the gap). Returns the checksum and the bytes hashed.
pub(crate) fn hash_behind_frontier(
    kind: Checksum,
    rx: Receiver<(u64, Hashed)>,
    cap: u64,
) -> Option<(String, u64)> {
    if injected(Fault::HasherPanic) {
        panic!("injected hasher failure");
    }
    let mut h = DiskHasher::new(kind);
    let (mut frontier, mut held) = (0u64, 0u64);
    let mut waiting: BTreeMap<u64, Hashed> = BTreeMap::new();
    let mut gave_up = false;
    for (guest, item) in rx {
        // Once given up, every item is dropped as it comes (its buffer back to the pool).
        if gave_up || guest < frontier || waiting.contains_key(&guest) {
            gave_up = true;
            continue;
        }
        if let Hashed::Data(d) = &item {
            held += d.buf.len() as u64;
        }
        waiting.insert(guest, item);
        while let Some(e) = waiting.first_entry() {
            if *e.key() != frontier {
                break;
            }
            let item = e.remove();
            frontier += item.len();
            match item {
                Hashed::Data(d) => {
                    h.feed(&d.buf, &d.extents);
                    held -= d.buf.len() as u64;
                }
                Hashed::Zeros(n) => h.zeros(n),
                Hashed::Digests(d, _) => h.blocks(&d),
            }
        }
        if held > cap || waiting.len() > MAX_WAITING {
            gave_up = true;
            waiting.clear();
        }
    }
    (!gave_up && waiting.is_empty()).then(|| (h.finish(), frontier))
}
