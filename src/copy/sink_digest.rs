//! The `sha256-blocks` block digests of what goes into a sink, made on the way: a wrapper
//! around any sink (or none) that sees every write and every zeroed range, in guest order,
//! and digests each 64 KiB block they cover completely. What an incremental backup uses to
//! keep the checksum of the whole volume while reading only what changed: the previous
//! backup's digests, with the changed blocks' replaced.
//!
//! Only blocks holding data are kept: a zero block's digest is a constant, and keeping one
//! entry per block of a thin 10 TiB volume would take gigabytes.
use super::digest::{zero_block_digest, BlockDigest, BLOCK};
use super::{PoolBuf, Sink};
use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Block index → digest (of blocks that are not all zeros, where a producer says so).
pub type Digests = BTreeMap<u64, BlockDigest>;

/// Digests what passes through to `inner` (when there is one).
pub struct DigestSink<'a> {
    inner: Option<&'a mut dyn Sink>,
    size: u64,
    /// The block being assembled: its index, hasher, bytes so far, whether any were data.
    open: Option<(u64, Sha256, u64, bool)>,
    /// Where the next byte must come for the open block to continue.
    pos: u64,
    digests: Digests,
    /// Blocks left incomplete (a gap inside them): none when the changes are block-aligned.
    incomplete: u64,
    /// Ranges (start → end) whose digests the decode threads made: their writes pass through
    /// unhashed. Only those not yet passed are kept.
    digested: BTreeMap<u64, u64>,
}

impl<'a> DigestSink<'a> {
    /// Digests a disk of `size` bytes written to `inner` (`None`: written nowhere, a read back).
    pub fn new(inner: Option<&'a mut dyn Sink>, size: u64) -> Self {
        DigestSink {
            inner,
            size,
            open: None,
            pos: 0,
            digests: Digests::new(),
            incomplete: 0,
            digested: BTreeMap::new(),
        }
    }

    fn block_len(&self, index: u64) -> u64 {
        BLOCK.min(self.size - index * BLOCK)
    }

    /// Moves to `offset`, closing the open block if the stream jumped over part of it.
    fn seek(&mut self, offset: u64) {
        if offset != self.pos {
            if self.open.take().is_some() {
                self.incomplete += 1;
            }
            if !offset.is_multiple_of(BLOCK) {
                // Joined mid-block: that block cannot be digested.
                self.incomplete += 1;
            }
            self.pos = offset;
        }
    }

    /// Digests what the decode threads did not: the parts of `[offset, offset + len)` outside
    /// the digested ranges (block-aligned, so skipping them leaves no block in part).
    fn feed_undigested(&mut self, offset: u64, data: Option<&[u8]>, len: u64) {
        let end = offset + len;
        let mut at = offset;
        while at < end {
            let inside = self.digested.range(..=at).next_back().map(|(_, &e)| e);
            if let Some(e) = inside.filter(|&e| e > at) {
                at = e.min(end);
                continue;
            }
            let next = self
                .digested
                .range(at..)
                .next()
                .map_or(end, |(&s, _)| s.min(end));
            let part = data.map(|d| &d[(at - offset) as usize..(next - offset) as usize]);
            self.feed(at, part, next - at);
            at = next;
        }
        // Writes come in guest order: the ranges that end here are passed, and they are first.
        while let Some(e) = self.digested.first_entry() {
            if *e.get() > end {
                break;
            }
            e.remove();
        }
    }

    fn feed(&mut self, offset: u64, mut data: Option<&[u8]>, mut len: u64) {
        self.seek(offset);
        while len > 0 {
            let index = self.pos / BLOCK;
            let in_block = self.pos % BLOCK;
            let blen = self.block_len(index);
            if self.open.is_none() && in_block != 0 {
                // The rest of a block joined mid-way: skip to the next one.
                let k = (blen - in_block).min(len);
                self.advance_skip(k, &mut data, &mut len);
                continue;
            }
            let k = (blen - in_block).min(len);
            if self.open.is_none() && k == blen && data.is_none() {
                // A whole zero block: nothing to keep.
                self.pos += k;
                len -= k;
                continue;
            }
            let (_, h, filled, has_data) = self
                .open
                .get_or_insert_with(|| (index, Sha256::new(), 0, false));
            match data {
                Some(d) => {
                    h.update(&d[..k as usize]);
                    *has_data = true;
                    data = Some(&d[k as usize..]);
                }
                None => {
                    static ZEROS: [u8; BLOCK as usize] = [0; BLOCK as usize];
                    h.update(&ZEROS[..k as usize]);
                }
            }
            *filled += k;
            self.pos += k;
            len -= k;
            if *filled == blen {
                let (i, h, _, has_data) = self.open.take().expect("open block");
                let d: BlockDigest = h.finalize().into();
                if has_data && d != zero_block_digest(blen) {
                    self.digests.insert(i, d);
                }
            }
        }
    }

    fn advance_skip(&mut self, k: u64, data: &mut Option<&[u8]>, len: &mut u64) {
        if let Some(d) = data {
            *data = Some(&d[k as usize..]);
        }
        self.pos += k;
        *len -= k;
    }

    /// The digests of the non-zero blocks; an error if some block was seen only in part
    /// (the caller's ranges were not block-aligned: a bug).
    pub fn into_digests(mut self) -> Result<Digests> {
        if self.open.take().is_some() {
            self.incomplete += 1;
        }
        if self.incomplete > 0 {
            return Err(Error::Other(format!(
                "block digests: {} blocks were seen only in part: this is a bug in rbdkit, please report it",
                self.incomplete
            )));
        }
        Ok(self.digests)
    }
}

impl Sink for DigestSink<'_> {
    fn ensure_size(&mut self, size: u64) -> Result<()> {
        match &mut self.inner {
            Some(s) => s.ensure_size(size),
            None => Ok(()),
        }
    }

    fn write(&mut self, offset: u64, data: PoolBuf) -> Result<()> {
        self.feed_undigested(offset, Some(&data), data.len() as u64);
        match &mut self.inner {
            Some(s) => s.write(offset, data),
            None => Ok(()),
        }
    }

    fn finish(&mut self, size: u64) -> Result<()> {
        match &mut self.inner {
            Some(s) => s.finish(size),
            None => Ok(()),
        }
    }

    fn reap_finished(&mut self) -> Result<bool> {
        match &mut self.inner {
            Some(s) => s.reap_finished(),
            None => Ok(false),
        }
    }

    /// Writes must come in guest order to be digested.
    fn ordered(&self) -> bool {
        true
    }

    /// Every range that reads as zeros must be seen, to be digested.
    fn overwrites(&self) -> bool {
        true
    }

    fn takes_block_digests(&self) -> bool {
        true
    }

    fn block_digests(&mut self, offset: u64, len: u64, digests: &[BlockDigest]) -> Result<()> {
        let first = offset / BLOCK;
        if !offset.is_multiple_of(BLOCK) || len.div_ceil(BLOCK) != digests.len() as u64 {
            return Err(Error::Other(format!(
                "block digests: {} digests for {len} bytes at {offset}: this is a bug in rbdkit, please report it",
                digests.len()
            )));
        }
        for (i, d) in (first..).zip(digests) {
            if *d != zero_block_digest(self.block_len(i)) {
                self.digests.insert(i, *d);
            }
        }
        match self.digested.last_entry() {
            Some(mut e) if *e.get() == offset => *e.get_mut() = offset + len,
            _ => {
                self.digested.insert(offset, offset + len);
            }
        }
        match &mut self.inner {
            Some(s) if s.takes_block_digests() => s.block_digests(offset, len, digests),
            _ => Ok(()),
        }
    }

    fn zero(&mut self, offset: u64, len: u64) -> Result<()> {
        self.feed_undigested(offset, None, len);
        match &mut self.inner {
            Some(s) if s.overwrites() => s.zero(offset, len),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_whole_blocks_from_writes_and_zeros_in_order() {
        let size = 3 * BLOCK + 100;
        let mut disk = vec![0u8; size as usize];
        disk[BLOCK as usize + 5..BLOCK as usize + 900].fill(7);
        disk[size as usize - 1] = 1;
        let pool = super::super::BufferPool::new(4);
        let buf = |b: &[u8]| {
            let mut v = pool.get(b.len());
            v.copy_from_slice(b);
            v
        };
        let mut s = DigestSink::new(None, size);
        s.zero(0, BLOCK + 5).unwrap();
        s.write(
            BLOCK + 5,
            buf(&disk[BLOCK as usize + 5..BLOCK as usize + 900]),
        )
        .unwrap();
        s.zero(BLOCK + 900, BLOCK - 900).unwrap();
        // Block 2 unchanged: skipped. The short last block.
        s.zero(3 * BLOCK, 99).unwrap();
        s.write(size - 1, buf(&[1])).unwrap();
        let d = s.into_digests().unwrap();
        let want = |i: u64| -> BlockDigest {
            let end = ((i + 1) * BLOCK).min(size) as usize;
            Sha256::digest(&disk[(i * BLOCK) as usize..end]).into()
        };
        // Block 0 is all zeros: not kept.
        assert_eq!(d.keys().copied().collect::<Vec<_>>(), vec![1, 3]);
        for i in [1, 3] {
            assert_eq!(d[&i], want(i), "block {i}");
        }
        // The same disk with blocks 0 and 1 digested by "decode threads": those writes and
        // zeros pass unhashed (a wrong digest handed in shows it), the rest is hashed here.
        let mut pre = DigestSink::new(None, size);
        let mut handed = vec![zero_block_digest(BLOCK), want(1)];
        pre.block_digests(0, 2 * BLOCK, &handed).unwrap();
        pre.zero(0, BLOCK + 5).unwrap();
        pre.write(BLOCK + 5, buf(&[9; 10])).unwrap();
        pre.zero(BLOCK + 15, BLOCK - 15).unwrap();
        pre.zero(3 * BLOCK, 99).unwrap();
        pre.write(size - 1, buf(&[1])).unwrap();
        assert_eq!(pre.into_digests().unwrap(), d);
        handed[0] = [5; 32];
        let mut wrong = DigestSink::new(None, size);
        wrong.block_digests(0, 2 * BLOCK, &handed).unwrap();
        assert_eq!(wrong.into_digests().unwrap()[&0], [5; 32]);
        assert!(DigestSink::new(None, size)
            .block_digests(5, BLOCK, &handed[..1])
            .is_err());
        let mut bad = DigestSink::new(None, size);
        bad.zero(0, 100).unwrap();
        bad.zero(BLOCK, BLOCK).unwrap();
        assert!(bad.into_digests().is_err());
    }
}
