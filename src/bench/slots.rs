//! The job loop of targets whose library keeps a window of requests in flight in slots, each
//! with its own buffer (libgfapi's async calls, libiscsi's async commands): keep every free
//! slot busy while the job may issue, record each completion, stop on the first failure to
//! submit. The queue owns the buffers; this loop only chooses offsets and directions.
use super::workload::random_fill;
use super::{JobSpec, Recorder};
use crate::error::Result;
use std::time::Instant;

/// A window of requests in flight, one per slot.
pub trait SlotQueue {
    /// The buffer of an idle `slot` (for the write data), `None` while it is in flight.
    fn buf_mut(&mut self, slot: usize) -> Option<&mut [u8]>;
    /// Queues a read into (or a write from) `slot`'s buffer, `len` bytes at `offset`.
    fn submit(&mut self, slot: usize, offset: u64, len: usize, read: bool) -> Result<()>;
    /// The next completion: its slot and `Err(reason)` when the request failed; `Ok(None)`
    /// when nothing is in flight; `Err` when the queue itself failed (nothing left in flight).
    fn next_done(&mut self) -> Result<Option<(usize, std::result::Result<(), String>)>>;
}

/// Runs one job on `q` (of `spec.iodepth` slots of `spec.bs` bytes) to its stop condition.
/// `name` is the target in error lines; writes are refused unless `writable`.
pub fn run(spec: &JobSpec, q: &mut impl SlotQueue, name: &str, writable: bool) -> Recorder {
    let depth = spec.iodepth;
    let bs = spec.bs as usize;
    for slot in 0..depth {
        if let Some(b) = q.buf_mut(slot) {
            random_fill(b, spec.seed ^ (spec.job << 32) ^ slot as u64);
        }
    }
    let mut submitted = vec![Instant::now(); depth];
    let mut reads = vec![false; depth];
    let mut free: Vec<usize> = (0..depth).rev().collect();
    let mut gen = spec.op_gen();
    let mut rec = spec.recorder();
    let mut exhausted = false;
    // One clock read per completion: it ends that I/O and starts the one its slot issues next
    // (they are a few instructions apart), which halves the clock reads of a 4 KiB job.
    let mut now = Instant::now();
    loop {
        while let Some(&slot) = free.last().filter(|_| !exhausted) {
            let Some(op) = spec.next_op(&mut gen) else {
                exhausted = true;
                break;
            };
            if !op.read && !writable {
                rec.error(|| format!("{name}: not writable in this run"));
                exhausted = true;
                break;
            }
            submitted[slot] = now;
            reads[slot] = op.read;
            match q.submit(slot, op.offset, bs, op.read) {
                Ok(()) => {
                    free.pop();
                    rec.issued += 1;
                }
                Err(e) => {
                    rec.error(|| e.to_string());
                    exhausted = true;
                }
            }
        }
        let (slot, outcome) = match q.next_done() {
            Ok(Some(done)) => done,
            Ok(None) => break,
            Err(e) => {
                rec.error(|| e.to_string());
                break;
            }
        };
        free.push(slot);
        now = Instant::now();
        match outcome {
            Ok(()) => rec.record(submitted[slot], now, spec.bs, reads[slot]),
            Err(why) => rec.error(|| format!("I/O on {name}: {why}")),
        }
    }
    rec
}
