//! Writes gathered into one per object: a qcow2 stream's pieces are clusters (64 KiB by
//! default), and writing each on its own would cost a librbd request and an OSD op per cluster
//! where one per 4 MiB object does.
use super::{BufferPool, PoolBuf, Sink};
use crate::error::Result;

/// Gathers data runs that continue one another into one write per object. The runs are copied
/// into the buffer (the piece itself may still be on its way to the hasher). Writes leave in
/// guest order when the runs come in guest order, so an ordered sink can take them.
pub(crate) struct Combiner {
    /// What is gathered; without room (and counting nothing in the budget) until a run comes:
    /// a copy of whole objects, which go out in their own buffers, never needs it.
    buf: PoolBuf,
    /// Guest offset of `buf[0]`.
    start: u64,
    object: u64,
}

impl Combiner {
    pub fn new(object: u64, pool: &BufferPool) -> Combiner {
        Combiner {
            buf: pool.empty(0),
            start: 0,
            object: object.max(1),
        }
    }

    /// Adds `bytes` at guest offset `at`, writing out what came before when they do not
    /// continue it within its object.
    pub fn add(&mut self, mut at: u64, mut bytes: &[u8], sink: &mut dyn Sink) -> Result<()> {
        while !bytes.is_empty() {
            if self.buf.is_empty() || at != self.start + self.buf.len() as u64 {
                self.flush(sink)?;
                self.start = at;
            }
            if self.buf.capacity() < self.object as usize {
                // Not zero-filled: see [`BufferPool::empty`].
                self.buf = self.buf.pool().empty(self.object as usize);
            }
            let room = (self.object - at % self.object).min(bytes.len() as u64) as usize;
            self.buf.extend_from_slice(&bytes[..room]);
            (at, bytes) = (at + room as u64, &bytes[room..]);
            // A whole object goes out now, not when the next run comes: until then it would
            // hold its buffer, which the producer may be waiting for.
            if at.is_multiple_of(self.object) {
                self.flush(sink)?;
            }
        }
        Ok(())
    }

    /// Whether a run of `len` bytes is large enough to go out in a buffer of its own (a small
    /// one is copied, so it does not hold an object-sized buffer).
    pub fn large(&self, len: u64) -> bool {
        len >= self.object / 4
    }

    /// Writes out what is gathered.
    pub fn flush(&mut self, sink: &mut dyn Sink) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        // A large run goes out in this buffer; a small one in a copy, so an object-sized
        // buffer is not held by a write of a few KiB.
        let pool = self.buf.pool().clone();
        let out = if self.large(self.buf.len() as u64) {
            std::mem::replace(&mut self.buf, pool.empty(0))
        } else {
            let mut part = pool.get(self.buf.len());
            part.copy_from_slice(&self.buf);
            self.buf.clear();
            part
        };
        sink.write(self.start, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that records the (offset, len) of each write.
    #[derive(Default)]
    struct Writes(Vec<(u64, usize)>);

    impl Sink for Writes {
        fn ensure_size(&mut self, _: u64) -> Result<()> {
            Ok(())
        }
        fn write(&mut self, offset: u64, data: PoolBuf) -> Result<()> {
            self.0.push((offset, data.len()));
            Ok(())
        }
        fn finish(&mut self, _: u64) -> Result<()> {
            Ok(())
        }
    }

    #[test]
    fn runs_that_continue_each_other_become_one_write_per_object() {
        let pool = BufferPool::new(4);
        let mut sink = Writes::default();
        let mut c = Combiner::new(1 << 20, &pool);
        let d = vec![1u8; 3 << 19];
        c.add(0, &d[..4096], &mut sink).unwrap();
        c.add(4096, &d[..8192], &mut sink).unwrap(); // continues: gathered
        c.add(65536, &d[..4096], &mut sink).unwrap(); // gap: the first write goes out
        c.add(69632, &d[..1 << 20], &mut sink).unwrap(); // crosses into the next object
                                                         // A gap, then a run that crosses into the next object.
        c.add((3 << 20) - 4096, &d[..8192], &mut sink).unwrap();
        c.flush(&mut sink).unwrap();
        let want = [
            (0, 12288),
            (65536, (1 << 20) - 65536),
            (1 << 20, 69632),
            ((3 << 20) - 4096, 4096),
            (3 << 20, 4096),
        ];
        assert_eq!(sink.0, want);
    }
}
