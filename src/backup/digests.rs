//! The `sha256-blocks` block digests of each backup, kept with it: one RADOS object (or more,
//! for a big volume) in the backup pool named `rbdkit.backup-digests.<base>@<snap>[.N]`, next
//! to the base image whose snapshot it describes. An incremental replaces the digests of the
//! blocks that changed and so knows the checksum of the whole volume, and of the whole backup,
//! after reading only the changed blocks on each side. Only non-zero blocks are listed.
//!
//! Format (little-endian): `rbdkit block digests v1\n`, then size, block size, entry count and
//! total length (u64 each), the entries (u64 block index, 32-byte SHA-256), and the SHA-256 of
//! everything before it. Split in parts of at most [`PART`] bytes (`.0`, `.1`, ...). Read back,
//! it is checked whole before it is used: a damaged one is as good as none (full read-back).
use crate::ceph::IoCtx;
use crate::copy::digest::{zero_block_digest, BlockDigest, BLOCK};
use crate::copy::sink_digest::Digests;
use crate::error::{Error, Result};
use sha2::{Digest, Sha256};

const MAGIC: &[u8] = b"rbdkit block digests v1\n";
/// Bytes per RADOS object (well under the default `osd_max_object_size` of 128 MiB).
pub const PART: usize = 32 << 20;
const HEAD: usize = 24 + 32;
const ENTRY: usize = 40;

/// The digests of a disk of `size` bytes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BlockDigests {
    /// Disk size, bytes.
    pub size: u64,
    /// Digests of the blocks that are not all zeros, by block index.
    pub blocks: Digests,
}

impl BlockDigests {
    /// From digests of some blocks (zero blocks' entries dropped).
    pub fn from_digests(size: u64, d: Digests) -> Self {
        let mut b = BlockDigests { size, blocks: d };
        b.drop_zero_blocks();
        b
    }

    fn block_len(&self, i: u64) -> u64 {
        BLOCK.min(self.size - i * BLOCK)
    }

    fn drop_zero_blocks(&mut self) {
        let size = self.size;
        self.blocks.retain(|&i, d| {
            let len = BLOCK.min(size.saturating_sub(i * BLOCK));
            len > 0 && *d != zero_block_digest(len)
        });
    }

    /// These digests with the disk resized to `size` and the blocks of `changed` (byte
    /// ranges `(offset, len)`, which must cover every block whose length changed) replaced by
    /// `now`, the digests of their non-zero blocks: a changed block missing from `now` is zeros.
    pub fn updated(&self, size: u64, changed: &[(u64, u64)], now: &Digests) -> BlockDigests {
        let blocks = size.div_ceil(BLOCK);
        let mut out = BlockDigests {
            size,
            blocks: self.blocks.range(..blocks).map(|(k, v)| (*k, *v)).collect(),
        };
        for &(offset, len) in changed {
            let keys: Vec<u64> = out
                .blocks
                .range(offset / BLOCK..(offset + len).div_ceil(BLOCK))
                .map(|(k, _)| *k)
                .collect();
            for k in keys {
                out.blocks.remove(&k);
            }
        }
        for (k, v) in now {
            out.blocks.insert(*k, *v);
        }
        out.drop_zero_blocks();
        out
    }

    /// The `sha256-blocks` checksum (hex) of the disk these digests describe.
    pub fn checksum(&self) -> String {
        let mut h = Sha256::new();
        let full = zero_block_digest(BLOCK);
        for i in 0..self.size.div_ceil(BLOCK) {
            match self.blocks.get(&i) {
                Some(d) => h.update(d),
                None if self.block_len(i) == BLOCK => h.update(full),
                None => h.update(zero_block_digest(self.block_len(i))),
            }
        }
        hex::encode(h.finalize())
    }

    /// The bytes stored.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(HEAD + self.blocks.len() * ENTRY + 32);
        b.extend_from_slice(MAGIC);
        let total = (HEAD + self.blocks.len() * ENTRY + 32) as u64;
        for v in [self.size, BLOCK, self.blocks.len() as u64, total] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for (k, d) in &self.blocks {
            b.extend_from_slice(&k.to_le_bytes());
            b.extend_from_slice(d);
        }
        let sum: [u8; 32] = Sha256::digest(&b).into();
        b.extend_from_slice(&sum);
        b
    }

    /// Decodes and checks stored bytes; `None` when they are not intact.
    pub fn decode(b: &[u8]) -> Option<BlockDigests> {
        if b.len() < HEAD + 32 || &b[..24] != MAGIC {
            return None;
        }
        let u = |i: usize| u64::from_le_bytes(b[24 + 8 * i..32 + 8 * i].try_into().unwrap());
        let (size, block, count, total) = (u(0), u(1), u(2), u(3));
        if block != BLOCK || total != b.len() as u64 {
            return None;
        }
        let n = usize::try_from(count).ok()?;
        if HEAD.checked_add(n.checked_mul(ENTRY)?)?.checked_add(32)? != b.len() {
            return None;
        }
        let (body, sum) = b.split_at(b.len() - 32);
        if Sha256::digest(body).as_slice() != sum {
            return None;
        }
        let mut blocks = Digests::new();
        let nblocks = size.div_ceil(BLOCK);
        for e in body[HEAD..].chunks_exact(ENTRY) {
            let k = u64::from_le_bytes(e[..8].try_into().unwrap());
            if k >= nblocks {
                return None;
            }
            let d: BlockDigest = e[8..].try_into().unwrap();
            blocks.insert(k, d);
        }
        Some(BlockDigests { size, blocks })
    }
}

/// The object name (of part 0) of the digests of `base@snap`.
pub fn object_name(base: &str, snap: &str) -> String {
    format!("rbdkit.backup-digests.{base}@{snap}")
}

/// Stores the digests of `base@snap`.
pub fn store(io: &IoCtx, base: &str, snap: &str, d: &BlockDigests) -> Result<()> {
    let bytes = d.encode();
    let name = object_name(base, snap);
    for (i, part) in bytes.chunks(PART).enumerate() {
        io.write_object(&format!("{name}.{i}"), part)?;
    }
    Ok(())
}

/// The digests of `base@snap`, `None` when none are kept (a chain Cinder made) or they are not
/// intact.
pub fn load(io: &IoCtx, base: &str, snap: &str) -> Result<Option<BlockDigests>> {
    let name = object_name(base, snap);
    let Some(first) = io.read_object(&format!("{name}.0"), PART as u64)? else {
        return Ok(None);
    };
    if first.len() < HEAD {
        return Ok(None);
    }
    let total = u64::from_le_bytes(first[48..56].try_into().unwrap());
    // A chain of 2^40 blocks would list at most this much.
    if total > (1u64 << 40) {
        return Ok(None);
    }
    let mut bytes = first;
    let mut i = 1;
    while (bytes.len() as u64) < total {
        match io.read_object(&format!("{name}.{i}"), PART as u64)? {
            Some(p) if !p.is_empty() => bytes.extend(p),
            _ => return Ok(None),
        }
        i += 1;
    }
    Ok(BlockDigests::decode(&bytes))
}

/// Removes the digests of `base@snap`; whether there were any (intact or not).
pub fn remove(io: &IoCtx, base: &str, snap: &str) -> Result<bool> {
    let name = object_name(base, snap);
    let mut i = 0;
    loop {
        let part = format!("{name}.{i}");
        if io
            .object_size(&part)
            .map_err(|e| Error::Other(format!("remove the digests of {base}@{snap}: {e}")))?
            .is_none()
        {
            return Ok(i > 0);
        }
        io.remove_object(&part)?;
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checksum_of(bytes: &[u8]) -> String {
        let mut outer = Sha256::new();
        for b in bytes.chunks(BLOCK as usize) {
            outer.update(Sha256::digest(b));
        }
        hex::encode(outer.finalize())
    }

    fn digests_of(bytes: &[u8]) -> Digests {
        bytes
            .chunks(BLOCK as usize)
            .enumerate()
            .map(|(i, b)| (i as u64, Sha256::digest(b).into()))
            .collect()
    }

    #[test]
    fn checksum_update_and_round_trip() {
        let mut disk = vec![0u8; (5 * BLOCK + 77) as usize];
        disk[3] = 1;
        disk[(4 * BLOCK) as usize + 9] = 2;
        let d = BlockDigests::from_digests(disk.len() as u64, digests_of(&disk));
        assert_eq!(d.blocks.len(), 2);
        assert_eq!(d.checksum(), checksum_of(&disk));
        let back = BlockDigests::decode(&d.encode()).unwrap();
        assert_eq!(back, d);
        // Block 1 changes, the disk grows by a block and a bit.
        let mut grown = disk.clone();
        grown[(BLOCK + 1) as usize] = 3;
        grown.resize((6 * BLOCK + 10) as usize, 0);
        grown[(6 * BLOCK) as usize] = 4;
        // Block 4 changes to zeros: absent from the new digests, so its old one must go.
        grown[(4 * BLOCK) as usize + 9] = 0;
        let all = BlockDigests::from_digests(grown.len() as u64, digests_of(&grown)).blocks;
        let ranges = [(BLOCK, BLOCK), (4 * BLOCK, grown.len() as u64 - 4 * BLOCK)];
        let now: Digests = all
            .iter()
            .filter(|(k, _)| [1, 4, 5, 6].contains(*k))
            .map(|(k, v)| (*k, *v))
            .collect();
        assert_eq!(
            d.updated(grown.len() as u64, &ranges, &now).checksum(),
            checksum_of(&grown)
        );
        // Shrunk to 2 blocks.
        let small = &disk[..(2 * BLOCK) as usize];
        assert_eq!(
            d.updated(small.len() as u64, &[], &Digests::new())
                .checksum(),
            checksum_of(small)
        );
        // Damage anywhere is detected.
        let enc = d.encode();
        for i in [0, 30, 60, enc.len() - 1] {
            let mut bad = enc.clone();
            bad[i] ^= 1;
            assert!(BlockDigests::decode(&bad).is_none(), "byte {i}");
        }
        assert!(BlockDigests::decode(&enc[..enc.len() - 1]).is_none());
    }
}
