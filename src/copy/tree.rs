//! The hash tree of `sha256-tree`: a Merkle tree (RFC 6962's shape: the left subtree holds
//! the largest power of two of blocks) over the SHA-256 digests of the disk's 64 KiB blocks,
//! each node `SHA-256(0x01 || left || right)`. Built as the blocks come, with a stack of
//! complete subtrees; a run of zero blocks is added as whole all-zero subtrees, whose digests
//! are computed once, so a hole of any size costs O(log n) instead of one digest per block.
use super::digest::BlockDigest;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

/// A tree being built, blocks in disk order.
#[derive(Default)]
pub(crate) struct Tree {
    /// Complete subtrees, heights strictly decreasing from the bottom.
    stack: Vec<(u32, BlockDigest)>,
    /// Blocks added so far.
    count: u64,
}

/// A node over two subtrees.
pub(crate) fn node(left: &BlockDigest, right: &BlockDigest) -> BlockDigest {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The digest of a complete subtree of 2^height all-zero full blocks.
fn zero_subtree(height: u32) -> BlockDigest {
    static Z: OnceLock<Vec<BlockDigest>> = OnceLock::new();
    Z.get_or_init(|| {
        let mut z = vec![super::digest::zero_block_digest(super::digest::BLOCK)];
        for i in 0..64 {
            let next = node(&z[i], &z[i]);
            z.push(next);
        }
        z
    })[height as usize]
}

impl Tree {
    /// Adds the digest of the next block.
    pub fn leaf(&mut self, d: BlockDigest) {
        self.push(0, d);
    }

    /// Adds `n` full blocks of zeros.
    pub fn zero_blocks(&mut self, mut n: u64) {
        while n > 0 {
            // The largest all-zero subtree that fits the run and starts where the tree is.
            let fit = 63 - n.leading_zeros();
            let aligned = self.count.trailing_zeros().min(63);
            let height = fit.min(aligned);
            self.push(height, zero_subtree(height));
            n -= 1 << height;
        }
    }

    fn push(&mut self, height: u32, d: BlockDigest) {
        self.count += 1 << height;
        let (mut height, mut d) = (height, d);
        while let Some(&(h, left)) = self.stack.last() {
            if h != height {
                break;
            }
            self.stack.pop();
            d = node(&left, &d);
            height += 1;
        }
        self.stack.push((height, d));
    }

    /// The root: the subtrees folded from the right (RFC 6962's split); the digest of nothing
    /// for an empty disk.
    pub fn root(mut self) -> BlockDigest {
        let Some((_, mut r)) = self.stack.pop() else {
            return Sha256::digest([]).into();
        };
        while let Some((_, left)) = self.stack.pop() {
            r = node(&left, &r);
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6962's recursive definition, for comparison.
    fn reference(leaves: &[BlockDigest]) -> BlockDigest {
        match leaves.len() {
            0 => Sha256::digest([]).into(),
            1 => leaves[0],
            n => {
                let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
                node(&reference(&leaves[..k]), &reference(&leaves[k..]))
            }
        }
    }

    #[test]
    fn built_as_blocks_come_it_matches_the_recursive_definition() {
        let zero = super::super::digest::zero_block_digest(super::super::digest::BLOCK);
        for n in 0..70u64 {
            // Data blocks where i % 5 == 1, zero runs between, added in bulk.
            let leaves: Vec<BlockDigest> = (0..n)
                .map(|i| {
                    if i % 5 == 1 {
                        Sha256::digest(i.to_le_bytes()).into()
                    } else {
                        zero
                    }
                })
                .collect();
            let mut t = Tree::default();
            let mut i = 0;
            while i < n as usize {
                if i % 5 == 1 {
                    t.leaf(leaves[i]);
                    i += 1;
                } else {
                    let run = (i..n as usize).take_while(|j| j % 5 != 1).count();
                    t.zero_blocks(run as u64);
                    i += run;
                }
            }
            assert_eq!(t.root(), reference(&leaves), "{n} blocks");
        }
    }

    /// The disk hasher, fed in odd pieces with zero runs given as zeros, against the
    /// definition computed from the bytes.
    #[test]
    fn the_disk_hasher_matches_the_definition() {
        use super::super::digest::{Checksum, DiskHasher};
        for size in [
            0usize,
            1,
            512,
            65536,
            65537,
            300_000,
            1 << 20,
            (5 << 20) + 4096,
        ] {
            let mut bytes = vec![0u8; size];
            for i in (0..size).step_by(70_001) {
                bytes[i] = (i % 251) as u8 + 1;
            }
            let leaves: Vec<BlockDigest> = bytes
                .chunks(64 << 10)
                .map(|b| Sha256::digest(b).into())
                .collect();
            let want = hex::encode(reference(&leaves));
            let mut h = DiskHasher::new(Checksum::Sha256Tree);
            let mut pos = 0;
            for (i, piece) in bytes.chunks(100_003).enumerate() {
                if i % 2 == 0 && piece.iter().all(|&b| b == 0) {
                    h.zeros(piece.len() as u64);
                } else {
                    h.feed(piece, &[(0, piece.len())]);
                }
                pos += piece.len();
            }
            assert_eq!(pos, size);
            assert_eq!(h.finish(), want, "{size} bytes");
        }
    }

    #[test]
    fn a_huge_zero_run_costs_log_n() {
        let mut t = Tree::default();
        t.leaf([7; 32]);
        t.zero_blocks((10u64 << 40) / (64 << 10) - 2);
        t.leaf([9; 32]);
        assert!(t.stack.len() < 64);
        let _ = t.root();
    }
}
