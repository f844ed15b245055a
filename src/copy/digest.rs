//! Checksums of a virtual disk, fed in guest order or, for `sha256-tree` and `sha256-blocks`,
//! one block at a time on any thread.
//!
//! `sha256` is what `sha256sum` prints for the raw image. It is one sequential SHA-256 over every
//! byte of the virtual disk, holes included: about 0.85 s per GiB on one core here (SHA-NI), so
//! an import of a thin 4 GiB disk with 1 GiB of data spent 3.5 s hashing 3 GiB of zeros, and a
//! 1 TiB volume would spend 15 minutes.
//!
//! `sha256-tree` (the default) hashes the same 64 KiB blocks as `sha256-blocks`, below, and
//! folds their digests in a hash tree ([`super::tree`]) instead of one more SHA-256, so that a
//! run of zero blocks costs O(log n): a 10 TiB disk holding 12 MiB is 167 million blocks, and
//! `sha256-blocks` absorbs a 32-byte digest for each (8.6 s here), the tree a few dozen nodes.
//! [`TREE_RECIPE`] recomputes it from the raw bytes.
//!
//! `sha256-blocks` (the default before `sha256-tree`) is the SHA-256 of the concatenated binary SHA-256 digests of
//! the disk's 64 KiB blocks (the last one may be shorter). Blocks are hashed independently, so
//! the decode threads hash them in parallel while the data is in their cache, and an all-zero
//! block costs nothing: its digest is a constant. 64 KiB (qcow2's default cluster) is small
//! enough that the holes of a thin disk are skipped, not hashed (with 4 MiB blocks, a disk with
//! 1 MiB of data in every 4 MiB was hashed whole), and large enough that the digest list stays
//! 1/2048 of the disk. Anyone can recompute it from the raw bytes on stdin with Python
//! ([`RECIPE`]), e.g. `rbd export POOL/IMAGE - | python3 -c '...'`.
use super::tree::Tree;
use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

/// A Python program that prints the `sha256-blocks` checksum of the bytes on its stdin.
pub const RECIPE: &str = "import hashlib,sys;o=hashlib.sha256();f=sys.stdin.buffer;[o.update(hashlib.sha256(b).digest()) for b in iter(lambda:f.read(65536),b'')];print(o.hexdigest())";

/// A Python program that prints the `sha256-tree` checksum of the bytes on its stdin.
pub const TREE_RECIPE: &str = "import hashlib,sys;H=lambda b:hashlib.sha256(b).digest();f=sys.stdin.buffer;s=[]\nfor b in iter(lambda:f.read(65536),b''):\n s.append((0,H(b)))\n while len(s)>1 and s[-1][0]==s[-2][0]:h,r=s.pop();_,l=s.pop();s.append((h+1,H(b'\\x01'+l+r)))\nr=s.pop()[1] if s else H(b'')\nwhile s:r=H(b'\\x01'+s.pop()[1]+r)\nprint(r.hex())";

/// A Python program that prints the `sha256` checksum of the bytes on its stdin (what
/// `sha256sum` prints).
pub const WHOLE_RECIPE: &str = "import hashlib,sys;o=hashlib.sha256();f=sys.stdin.buffer;[o.update(b) for b in iter(lambda:f.read(1<<20),b'')];print(o.hexdigest())";

/// Block size of the `sha256-blocks` checksum (fixed, whatever the object size).
pub const BLOCK: u64 = 64 << 10;

/// A SHA-256 digest.
pub type BlockDigest = [u8; 32];

/// The checksum algorithms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checksum {
    /// SHA-256 over the SHA-256 digests of every 64 KiB block; see the module documentation.
    Sha256Blocks,
    /// SHA-256 of the whole raw image, as `sha256sum` prints it.
    Sha256,
    /// The root of a hash tree over the SHA-256 digests of every 64 KiB block (see
    /// [`super::tree`]): hashed in parallel like `sha256-blocks`, and a hole of any size costs
    /// O(log n), so a 10 TiB thin disk checksums in the time of its data.
    Sha256Tree,
}

impl Checksum {
    /// A Python program that recomputes this checksum from the raw image on its stdin, so
    /// anyone can check it without rbdkit: `rbd export IMG - | python3 -c "$RECIPE"`.
    pub fn recipe(self) -> &'static str {
        match self {
            Checksum::Sha256Blocks => RECIPE,
            Checksum::Sha256 => WHOLE_RECIPE,
            Checksum::Sha256Tree => TREE_RECIPE,
        }
    }

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Checksum::Sha256Blocks => "sha256-blocks",
            Checksum::Sha256 => "sha256",
            Checksum::Sha256Tree => "sha256-tree",
        }
    }
}

/// Reports name the algorithm as the command line does.
impl Serialize for Checksum {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// A piece of a buffer of which only some ranges may be non-zero: a run of zeros (not looked
/// at) or bytes to hash.
enum Piece<'a> {
    Zeros(usize),
    Data(&'a [u8]),
}

/// Calls `f` with `buf` in order as zero runs and data, `ranges` (`(start, len)`, sorted)
/// being the data.
fn for_each_piece<'a>(buf: &'a [u8], ranges: &[(usize, usize)], mut f: impl FnMut(Piece<'a>)) {
    let mut pos = 0;
    for &(start, n) in ranges {
        f(Piece::Zeros(start - pos));
        f(Piece::Data(&buf[start..start + n]));
        pos = start + n;
    }
    f(Piece::Zeros(buf.len() - pos));
}

/// Feeds `n` zero bytes to `h` (zero runs are never read, so their bytes come from here).
fn hash_zeros(h: &mut Sha256, mut n: u64) {
    static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
    while n > 0 {
        let k = n.min(ZEROS.len() as u64) as usize;
        h.update(&ZEROS[..k]);
        n -= k as u64;
    }
}

/// The digest of `len` zero bytes; full blocks are computed once per process.
pub fn zero_block_digest(len: u64) -> BlockDigest {
    static FULL: OnceLock<BlockDigest> = OnceLock::new();
    let compute = |len| {
        let mut h = Sha256::new();
        hash_zeros(&mut h, len);
        h.finalize().into()
    };
    if len == BLOCK {
        *FULL.get_or_init(|| compute(BLOCK))
    } else {
        compute(len)
    }
}

/// One block being hashed: its data is hashed as it comes, the zeros before data lazily, so
/// a block that never sees data is never hashed at all.
#[derive(Default)]
struct OpenBlock {
    h: Sha256,
    len: u64,
    /// Zero bytes fed since the last data, not yet hashed.
    zeros: u64,
    has_data: bool,
}

impl OpenBlock {
    /// Feeds `buf`, of which only `ranges` (`(start, len)`, sorted) may be non-zero, calling
    /// `out` with each block digest completed on the way.
    fn feed(&mut self, buf: &[u8], ranges: &[(usize, usize)], out: &mut impl FnMut(BlockDigest)) {
        for_each_piece(buf, ranges, |piece| match piece {
            Piece::Zeros(n) => self.zeros(n as u64, out),
            Piece::Data(mut data) => {
                while !data.is_empty() {
                    let k = data.len().min((BLOCK - self.len) as usize);
                    hash_zeros(&mut self.h, std::mem::take(&mut self.zeros));
                    self.h.update(&data[..k]);
                    self.has_data = true;
                    self.advance(k as u64, out);
                    data = &data[k..];
                }
            }
        });
    }

    /// Feeds `n` zero bytes; a block that stays all zeros costs no hashing.
    fn zeros(&mut self, mut n: u64, out: &mut impl FnMut(BlockDigest)) {
        while n > 0 {
            let k = n.min(BLOCK - self.len);
            self.zeros += k;
            self.advance(k, out);
            n -= k;
        }
    }

    fn advance(&mut self, k: u64, out: &mut impl FnMut(BlockDigest)) {
        self.len += k;
        if self.len == BLOCK {
            self.close(out);
        }
    }

    /// Ends the current (possibly short) block, if it holds any bytes.
    fn close(&mut self, out: &mut impl FnMut(BlockDigest)) {
        if self.len == 0 {
            return;
        }
        let block = std::mem::take(self);
        out(if block.has_data {
            let mut h = block.h;
            hash_zeros(&mut h, block.zeros);
            h.finalize().into()
        } else {
            zero_block_digest(block.len)
        });
    }
}

/// The block digests of one piece of a disk that starts on a block boundary: `buf`, of which
/// only `ranges` may be non-zero (bytes elsewhere are not looked at). For a decode thread.
pub fn block_digests(buf: &[u8], ranges: &[(usize, usize)]) -> Vec<BlockDigest> {
    let mut out = Vec::with_capacity(buf.len().div_ceil(BLOCK as usize));
    let mut block = OpenBlock::default();
    block.feed(buf, ranges, &mut |d| out.push(d));
    block.close(&mut |d| out.push(d));
    out
}

/// The block digests of the piece `buf` at disk offset `offset`, if they are wanted
/// (`per_block`: the checksum is made of them, or the sink keeps them) and the piece covers
/// whole blocks (the last block of the disk may be short: `ends_disk`): then whoever holds it
/// (a decode thread) hashes it, in parallel with the others, while it is in its cache, and
/// only the digests have to wait for guest order. Only `ranges` of `buf` may be non-zero.
pub fn whole_block_digests(
    per_block: bool,
    offset: u64,
    buf: &[u8],
    ranges: &[(usize, usize)],
    ends_disk: bool,
) -> Option<Vec<BlockDigest>> {
    let whole =
        offset.is_multiple_of(BLOCK) && ((buf.len() as u64).is_multiple_of(BLOCK) || ends_disk);
    (per_block && whole).then(|| block_digests(buf, ranges))
}

/// True when `kind` is made of block digests (they can be made on the decode threads).
pub fn per_block(kind: Option<Checksum>) -> bool {
    matches!(kind, Some(Checksum::Sha256Blocks | Checksum::Sha256Tree))
}

/// A checksum of a whole disk, fed in guest order.
pub struct DiskHasher {
    kind: Checksum,
    /// `sha256`: the whole disk; `sha256-blocks`: the block digests.
    h: Sha256,
    /// `sha256-tree`: the tree of the block digests.
    tree: Tree,
    block: OpenBlock,
}

/// Where a finished block digest goes, by algorithm.
fn fold(kind: Checksum, h: &mut Sha256, tree: &mut Tree, d: BlockDigest) {
    match kind {
        Checksum::Sha256Tree => tree.leaf(d),
        _ => h.update(d),
    }
}

impl DiskHasher {
    /// A hasher for `kind`.
    pub fn new(kind: Checksum) -> DiskHasher {
        DiskHasher {
            kind,
            h: Sha256::new(),
            tree: Tree::default(),
            block: OpenBlock::default(),
        }
    }

    /// Feeds the next `buf.len()` bytes of the disk, of which only `ranges` (`(start, len)`,
    /// sorted, within `buf`) may be non-zero: the rest is hashed as zeros without being read.
    pub fn feed(&mut self, buf: &[u8], ranges: &[(usize, usize)]) {
        let (kind, h, tree) = (self.kind, &mut self.h, &mut self.tree);
        match kind {
            Checksum::Sha256 => for_each_piece(buf, ranges, |piece| match piece {
                Piece::Zeros(n) => hash_zeros(h, n as u64),
                Piece::Data(data) => h.update(data),
            }),
            _ => self
                .block
                .feed(buf, ranges, &mut |d| fold(kind, h, tree, d)),
        }
    }

    /// Feeds the next `n` bytes of the disk, all zeros. With `sha256-tree`, the whole blocks
    /// among them cost O(log n) together.
    pub fn zeros(&mut self, mut n: u64) {
        let (kind, h, tree) = (self.kind, &mut self.h, &mut self.tree);
        match kind {
            Checksum::Sha256 => hash_zeros(h, n),
            Checksum::Sha256Blocks => self.block.zeros(n, &mut |d| fold(kind, h, tree, d)),
            Checksum::Sha256Tree => {
                let head = if self.block.len > 0 {
                    (BLOCK - self.block.len).min(n)
                } else {
                    0
                };
                self.block.zeros(head, &mut |d| fold(kind, h, tree, d));
                n -= head;
                tree.zero_blocks(n / BLOCK);
                self.block.zeros(n % BLOCK, &mut |d| fold(kind, h, tree, d));
            }
        }
    }

    /// Feeds digests of whole blocks made by [`block_digests`]; the disk fed so far must end
    /// on a block boundary (`sha256-blocks` and `sha256-tree` only).
    pub fn blocks(&mut self, digests: &[BlockDigest]) {
        debug_assert!(self.kind != Checksum::Sha256 && self.block.len == 0);
        for d in digests {
            fold(self.kind, &mut self.h, &mut self.tree, *d);
        }
    }

    /// The checksum, lower-case hex.
    pub fn finish(mut self) -> String {
        let (kind, h, tree) = (self.kind, &mut self.h, &mut self.tree);
        self.block.close(&mut |d| fold(kind, h, tree, d));
        match kind {
            Checksum::Sha256Tree => hex::encode(self.tree.root()),
            _ => hex::encode(self.h.finalize()),
        }
    }
}

/// The `kind` checksum of `bytes`, for tests that compare an engine's result with it.
#[cfg(test)]
pub(crate) fn checksum_of(kind: Checksum, bytes: &[u8]) -> String {
    let mut h = DiskHasher::new(kind);
    h.feed(bytes, &[(0, bytes.len())]);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, written plainly: split, hash each block, hash the digests.
    fn reference(bytes: &[u8]) -> String {
        let mut outer = Sha256::new();
        for block in bytes.chunks(BLOCK as usize) {
            outer.update(Sha256::digest(block));
        }
        hex::encode(outer.finalize())
    }

    /// A disk of 40.5 blocks: zero blocks, a block with data in its middle, a short block.
    fn disk() -> Vec<u8> {
        let mut b = vec![0u8; (BLOCK * 81 / 2) as usize];
        for (i, x) in b[BLOCK as usize + 1000..BLOCK as usize + 9000]
            .iter_mut()
            .enumerate()
        {
            *x = (i % 251) as u8 + 1;
        }
        let n = b.len();
        b[n - 1] = 7;
        b
    }

    fn ranges_of(b: &[u8]) -> Vec<(usize, usize)> {
        super::super::nonzero_runs(b, 4096)
    }

    #[test]
    fn fed_in_odd_pieces_or_as_zeros_it_matches_the_definition() {
        let b = disk();
        for kind in [Checksum::Sha256Blocks, Checksum::Sha256] {
            let want = match kind {
                Checksum::Sha256Blocks => reference(&b),
                Checksum::Sha256 => hex::encode(Sha256::digest(&b)),
                // Checked against its own definition in tree.rs.
                Checksum::Sha256Tree => unreachable!(),
            };
            for piece in [4096usize, 40 << 10, 1 << 20, 3 << 20, b.len()] {
                let mut h = DiskHasher::new(kind);
                for p in b.chunks(piece) {
                    let r = ranges_of(p);
                    if r.is_empty() {
                        h.zeros(p.len() as u64);
                    } else {
                        h.feed(p, &r);
                    }
                }
                assert_eq!(h.finish(), want, "{kind:?} in pieces of {piece}");
            }
        }
    }

    #[test]
    fn block_digests_from_many_threads_fold_to_the_same_checksum() {
        let b = disk();
        let mut h = DiskHasher::new(Checksum::Sha256Blocks);
        for p in b.chunks(2 * BLOCK as usize) {
            h.blocks(&block_digests(p, &ranges_of(p)));
        }
        assert_eq!(h.finish(), reference(&b));
        // Bytes outside the ranges are never read: garbage there changes nothing.
        let mut dirty = b.clone();
        dirty[10] = 9;
        assert_eq!(
            block_digests(&dirty, &ranges_of(&b)),
            block_digests(&b, &ranges_of(&b))
        );
        assert_eq!(
            DiskHasher::new(Checksum::Sha256Blocks).finish(),
            hex::encode(Sha256::digest([]))
        );
    }
}
