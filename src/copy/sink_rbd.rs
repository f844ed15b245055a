//! An RBD image as a copy target: librbd aio writes, `concurrency` in flight, object-aligned
//! (the engine's chunks are objects). Zeros are never written into a fresh image; an image
//! that holds earlier data (an incremental backup's base, a restore over a volume) is opened
//! [`RbdSink::overwriting`], and the ranges that must read as zeros are zeroed with
//! `write_zeroes` (not `discard`, which librbd may skip for partial objects).
use super::{PoolBuf, Sink, MEMORY_BUDGET};
use crate::ceph::{full_advice, full_condition, AioDone, Completions, Image};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::time::Duration;

/// Bytes of writes in flight at most (with `--concurrency` as the count): half the copy's
/// memory budget, which the writes share with the reads. 10 objects of 4 MiB keep one OSD as
/// busy as 32 did (dense 1 GiB import, same hour: 4.65-5.16 s at 12 writes, 5.21-5.62 s at 32).
/// Writes that finished but are not reaped yet still hold their buffers, so this must leave
/// the producer room in the budget (see `BufferPool`).
pub const MAX_BYTES_IN_FLIGHT: usize = (MEMORY_BUDGET / 2) as usize;

/// After this long without a finished write, ask the monitor whether the cluster is full.
const STALL_CHECK: Duration = Duration::from_secs(5);

/// Writes into an open, freshly created image.
pub struct RbdSink<'a> {
    image: &'a Image,
    q: Completions,
    max_in_flight: usize,
    in_flight: usize,
    /// Bytes of the writes in flight: bounded by [`MAX_BYTES_IN_FLIGHT`] as well as by count.
    bytes_in_flight: usize,
    size: u64,
    min_size: u64,
    next_tag: u64,
    /// The buffers of the writes in flight, by tag: each lends its vector to librbd until the
    /// completion hands it back, and stays counted in the copy's budget until then.
    lent: HashMap<u64, PoolBuf>,
    overwrite: bool,
    /// Where the image held data when the copy started (sorted `(offset, len)`), when known:
    /// zeroing elsewhere is skipped, those ranges read as zeros already.
    held: Option<Vec<(u64, u64)>>,
    /// Bytes zeroed (ranges that changed to zeros).
    pub bytes_zeroed: u64,
    /// Bytes written.
    pub bytes_written: u64,
}

impl<'a> RbdSink<'a> {
    /// A sink over `image` (current size `size`) that ends no smaller than `min_size`.
    pub fn new(image: &'a Image, size: u64, min_size: u64, concurrency: usize) -> Self {
        RbdSink {
            image,
            q: Completions::new(),
            max_in_flight: concurrency.max(1),
            in_flight: 0,
            bytes_in_flight: 0,
            size,
            min_size,
            next_tag: 0,
            lent: HashMap::new(),
            overwrite: false,
            held: None,
            bytes_zeroed: 0,
            bytes_written: 0,
        }
    }

    /// Zeroes only within `held` (sorted `(offset, len)`: where the image held data when the
    /// copy started); the rest of it reads as zeros already.
    pub fn zeroing_only_within(mut self, held: Vec<(u64, u64)>) -> Self {
        self.held = Some(held);
        self
    }

    /// Issues write_zeroes for `[at, end)`.
    fn zero_range(&mut self, mut at: u64, end: u64) -> Result<()> {
        while at < end {
            let n = (end - at).min(1 << 30);
            self.make_room(0)?;
            self.next_tag += 1;
            self.image.aio_write_zeroes(at, n, self.next_tag, &self.q)?;
            self.in_flight += 1;
            self.bytes_zeroed += n;
            at += n;
        }
        Ok(())
    }

    /// A sink over `image` (current size `size`) that already holds data: ranges that must
    /// read as zeros are zeroed. It ends no smaller than `min_size`.
    pub fn overwriting(image: &'a Image, size: u64, min_size: u64, concurrency: usize) -> Self {
        let mut sink = Self::new(image, size, min_size, concurrency);
        sink.overwrite = true;
        sink
    }

    /// Waits until one more request fits in the window.
    fn make_room(&mut self, len: usize) -> Result<()> {
        while self.in_flight >= self.max_in_flight
            || (self.in_flight > 0 && self.bytes_in_flight + len > MAX_BYTES_IN_FLIGHT)
        {
            self.reap()?;
        }
        Ok(())
    }

    /// Waits for one write to finish, recycling its buffer. While writes stall, asks the
    /// monitor whether the cluster is full and fails at once if it is (a full cluster pauses
    /// writes instead of failing them).
    fn reap(&mut self) -> Result<()> {
        let done = loop {
            if let Some(d) = self.q.recv_timeout(STALL_CHECK) {
                break d;
            }
            if let Some(why) = full_condition(self.image.ioctx().cluster()) {
                return Err(Error::Other(format!(
                    "writing {}: writes are blocked: {}",
                    self.image.describe(),
                    full_advice(&why)
                )));
            }
        };
        self.retire(done)
    }

    /// Takes back what a finished write holds; its result.
    fn retire(&mut self, done: AioDone) -> Result<()> {
        self.in_flight -= 1;
        self.bytes_in_flight -= done.buf.capacity().min(self.bytes_in_flight);
        if let Some(mut buf) = self.lent.remove(&done.tag) {
            buf.restore(done.buf);
        }
        done.result.map(|_| ())
    }

    /// Waits for every write in flight. Stalled writes end when librados' op timeout
    /// (`--op-timeout`) fails them, so this returns even on a full cluster.
    fn drain(&mut self) -> Result<()> {
        let mut first_err = None;
        while self.in_flight > 0 {
            let done = self.q.recv();
            if let Err(e) = self.retire(done) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

impl Sink for RbdSink<'_> {
    fn ensure_size(&mut self, size: u64) -> Result<()> {
        if size > self.size {
            // Grow by doubling so a stream of unknown length costs O(log n) resizes.
            let target = size.max(self.size.saturating_mul(2)).max(64 << 20);
            self.image.resize(target, &mut |_, _| {})?;
            self.size = target;
        }
        Ok(())
    }

    fn write(&mut self, offset: u64, mut data: PoolBuf) -> Result<()> {
        // Writes that already finished give their buffers back now, not when the window is
        // full: the readers share the memory they hold.
        self.reap_finished()?;
        // What a write holds is its buffer's capacity.
        let len = data.capacity();
        self.bytes_written += data.len() as u64;
        self.make_room(len)?;
        self.next_tag += 1;
        self.image
            .aio_write(offset, data.take_vec(), self.next_tag, &self.q)?;
        self.lent.insert(self.next_tag, data);
        self.in_flight += 1;
        self.bytes_in_flight += len;
        Ok(())
    }

    fn overwrites(&self) -> bool {
        self.overwrite
    }

    fn reap_finished(&mut self) -> Result<bool> {
        while let Some(done) = self.q.try_recv() {
            self.retire(done)?;
        }
        Ok(self.in_flight > 0)
    }

    fn zero(&mut self, offset: u64, len: u64) -> Result<()> {
        if !self.overwrite {
            return Ok(());
        }
        // Never past the end (the engine may hand a hole beyond a shrunk size), and in pieces
        // librbd takes (its length is a size_t, its ops are per object anyway).
        let end = offset.saturating_add(len).min(self.size);
        let Some(held) = self.held.take() else {
            return self.zero_range(offset, end);
        };
        let from = held.partition_point(|&(o, n)| o + n <= offset);
        let mut r = Ok(());
        for &(o, n) in held[from..].iter().take_while(|h| h.0 < end) {
            r = self.zero_range(o.max(offset), (o + n).min(end));
            if r.is_err() {
                break;
            }
        }
        self.held = Some(held);
        r
    }

    fn finish(&mut self, size: u64) -> Result<()> {
        self.drain()?;
        self.image.flush()?;
        let final_size = size.max(self.min_size);
        if final_size != self.size {
            self.image.resize(final_size, &mut |_, _| {})?;
            self.size = final_size;
        }
        Ok(())
    }
}

impl Drop for RbdSink<'_> {
    fn drop(&mut self) {
        // On an error path writes may still be in flight; the image waits for them on close,
        // but reaping here keeps the completion queue from outliving its requests' purpose.
        let _ = self.drain();
    }
}
