//! Only the blocks that changed: a sink that sees a whole disk (a file read end to end, in
//! guest order), digests each 64 KiB block, and passes on to `inner` — a target that holds the
//! previous state — only the blocks whose digest differs from the previous one's. What a
//! backup of a file (an NFS volume, which has no snapshots to diff) sends.
use super::digest::{zero_block_digest, BLOCK};
use super::sink_digest::Digests;
use super::{BufferPool, PoolBuf, Sink};
use crate::error::{Error, Result};
use sha2::{Digest, Sha256};

/// Passes on the changed blocks of a disk of `size` bytes.
pub struct ChangedBlocksSink<'a> {
    inner: &'a mut dyn Sink,
    /// Digests of the previous state's non-zero blocks, and its size.
    prev: &'a Digests,
    prev_size: u64,
    size: u64,
    pool: BufferPool,
    /// The block being assembled, the index it belongs to and the bytes in it so far.
    block: Vec<u8>,
    index: u64,
    filled: u64,
    has_data: bool,
    pos: u64,
    /// Digests of every non-zero block now.
    pub digests: Digests,
    /// The blocks passed on (changed).
    pub changed: Vec<u64>,
    /// Blocks passed on whatever their digest: the target's copy of them is not the state
    /// `prev` describes.
    forced: std::collections::BTreeSet<u64>,
}

impl<'a> ChangedBlocksSink<'a> {
    /// A sink over `inner` (which holds the state `prev` describes).
    pub fn new(inner: &'a mut dyn Sink, prev: &'a Digests, prev_size: u64, size: u64) -> Self {
        ChangedBlocksSink {
            inner,
            prev,
            prev_size,
            size,
            pool: BufferPool::new(4),
            block: vec![0; BLOCK as usize],
            index: 0,
            filled: 0,
            has_data: false,
            pos: 0,
            digests: Digests::new(),
            changed: Vec::new(),
            forced: Default::default(),
        }
    }

    /// Also passes on these blocks, changed or not.
    pub fn forcing(mut self, blocks: impl IntoIterator<Item = u64>) -> Self {
        self.forced.extend(blocks);
        self
    }

    fn block_len(&self, i: u64) -> u64 {
        BLOCK.min(self.size - i * BLOCK)
    }

    /// What block `i` holds in the target: zeros past the previous size (the target was
    /// resized), `None` for the block the previous size cut short, when its length changed.
    fn was(&self, i: u64) -> Option<[u8; 32]> {
        if self.forced.contains(&i) {
            return None;
        }
        if i * BLOCK >= self.prev_size {
            return Some(zero_block_digest(self.block_len(i)));
        }
        let len = BLOCK.min(self.prev_size - i * BLOCK);
        if len != self.block_len(i) {
            return None;
        }
        Some(
            self.prev
                .get(&i)
                .copied()
                .unwrap_or_else(|| zero_block_digest(len)),
        )
    }

    fn close_block(&mut self) -> Result<()> {
        let (i, len) = (self.index, self.filled);
        let d: [u8; 32] = if self.has_data {
            Sha256::digest(&self.block[..len as usize]).into()
        } else {
            zero_block_digest(len)
        };
        if self.has_data && d != zero_block_digest(len) {
            self.digests.insert(i, d);
        }
        if self.was(i) != Some(d) {
            self.changed.push(i);
            if self.has_data {
                let mut buf: PoolBuf = self.pool.get(len as usize);
                buf.copy_from_slice(&self.block[..len as usize]);
                self.inner.write(i * BLOCK, buf)?;
            } else {
                self.inner.zero(i * BLOCK, len)?;
            }
        }
        self.block[..len as usize].fill(0);
        self.index += 1;
        self.filled = 0;
        self.has_data = false;
        Ok(())
    }

    fn feed(&mut self, offset: u64, data: Option<&[u8]>, mut len: u64) -> Result<()> {
        if offset != self.pos {
            return Err(Error::Other(format!(
                "changed blocks: data at {offset}, expected {}: this is a bug in rbdkit, please report it",
                self.pos
            )));
        }
        let mut from = 0usize;
        while len > 0 {
            let blen = self.block_len(self.index);
            if self.filled == 0 && data.is_none() && len >= blen {
                // Whole zero blocks: only those that held data before change. Skip to the
                // next block that did (or the end of the run).
                let run_end_block = (self.pos + len) / BLOCK;
                let next_prev = self
                    .prev
                    .range(self.index..run_end_block)
                    .next()
                    .map(|(k, _)| *k)
                    .unwrap_or(run_end_block);
                let next_forced = self
                    .forced
                    .range(self.index..run_end_block)
                    .next()
                    .copied()
                    .unwrap_or(run_end_block);
                let next = next_prev.min(next_forced);
                // The block the previous size cut short may differ in length: take it alone.
                let mut skip_to = next;
                if !self.prev_size.is_multiple_of(BLOCK) {
                    let cut = self.prev_size / BLOCK;
                    if (self.index..skip_to).contains(&cut) {
                        skip_to = cut;
                    }
                }
                if skip_to > self.index {
                    let n = (skip_to - self.index) * BLOCK;
                    self.index = skip_to;
                    self.pos += n;
                    len -= n;
                    continue;
                }
            }
            let k = (blen - self.filled).min(len);
            if let Some(d) = data {
                let at = self.filled as usize;
                self.block[at..at + k as usize].copy_from_slice(&d[from..from + k as usize]);
                self.has_data = true;
                from += k as usize;
            }
            self.filled += k;
            self.pos += k;
            len -= k;
            if self.filled == blen {
                self.close_block()?;
            }
        }
        Ok(())
    }
}

impl Sink for ChangedBlocksSink<'_> {
    fn ensure_size(&mut self, size: u64) -> Result<()> {
        self.inner.ensure_size(size)
    }

    fn write(&mut self, offset: u64, data: PoolBuf) -> Result<()> {
        self.feed(offset, Some(&data), data.len() as u64)
    }

    fn finish(&mut self, size: u64) -> Result<()> {
        if self.pos != self.size {
            return Err(Error::Other(format!(
                "changed blocks: the disk ended at {} of {} bytes: this is a bug in rbdkit, please report it",
                self.pos, self.size
            )));
        }
        self.inner.finish(size)
    }

    fn ordered(&self) -> bool {
        true
    }

    fn overwrites(&self) -> bool {
        true
    }

    fn zero(&mut self, offset: u64, len: u64) -> Result<()> {
        self.feed(offset, None, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::copy::sink_digest::DigestSink;

    /// Records what reaches the target.
    #[derive(Default)]
    struct Target {
        writes: Vec<(u64, Vec<u8>)>,
        zeros: Vec<(u64, u64)>,
    }
    impl Sink for Target {
        fn ensure_size(&mut self, _: u64) -> Result<()> {
            Ok(())
        }
        fn write(&mut self, offset: u64, data: PoolBuf) -> Result<()> {
            self.writes.push((offset, data.to_vec()));
            Ok(())
        }
        fn finish(&mut self, _: u64) -> Result<()> {
            Ok(())
        }
        fn overwrites(&self) -> bool {
            true
        }
        fn zero(&mut self, offset: u64, len: u64) -> Result<()> {
            self.zeros.push((offset, len));
            Ok(())
        }
    }

    fn feed(sink: &mut dyn Sink, disk: &[u8]) {
        let pool = BufferPool::new(4);
        // In pieces of 100 KiB: data pieces whole, zero runs as zeros.
        for (i, p) in disk.chunks(100 << 10).enumerate() {
            let at = (i * (100 << 10)) as u64;
            if p.iter().all(|&b| b == 0) {
                sink.zero(at, p.len() as u64).unwrap();
            } else {
                let mut b = pool.get(p.len());
                b.copy_from_slice(p);
                sink.write(at, b).unwrap();
            }
        }
        sink.finish(disk.len() as u64).unwrap();
    }

    fn digests(disk: &[u8]) -> Digests {
        let mut d = DigestSink::new(None, disk.len() as u64);
        feed(&mut d, disk);
        let size = disk.len() as u64;
        crate::backup::digests::BlockDigests::from_digests(size, d.into_digests().unwrap()).blocks
    }

    #[test]
    fn only_changed_blocks_pass() {
        let b = BLOCK as usize;
        let mut old = vec![0u8; 20 * b + 500];
        old[3 * b..5 * b].fill(1);
        old[10 * b + 7] = 2;
        let prev = digests(&old);
        let mut new = old.clone();
        new[3 * b + 9] = 9; // block 3 changes
        new[10 * b + 7] = 0; // block 10 becomes zeros
        new[15 * b] = 4; // block 15 gets data
        let mut t = Target::default();
        let mut s = ChangedBlocksSink::new(&mut t, &prev, old.len() as u64, new.len() as u64);
        feed(&mut s, &new);
        assert_eq!(s.changed, vec![3, 10, 15]);
        assert_eq!(s.digests, digests(&new));
        assert_eq!(t.zeros, vec![(10 * BLOCK, BLOCK)]);
        let offs: Vec<u64> = t.writes.iter().map(|w| w.0).collect();
        assert_eq!(offs, vec![3 * BLOCK, 15 * BLOCK]);
        assert_eq!(t.writes[0].1, new[3 * b..4 * b]);
        // Grown by a partial block: the cut block and the new one are looked at.
        let mut grown = new.clone();
        grown.resize(21 * b + 10, 0);
        grown[21 * b] = 5;
        let mut t = Target::default();
        let before = digests(&new);
        let mut s = ChangedBlocksSink::new(&mut t, &before, new.len() as u64, grown.len() as u64);
        feed(&mut s, &grown);
        assert_eq!(s.changed, vec![20, 21]);
        assert_eq!(s.digests, digests(&grown));
    }
}
