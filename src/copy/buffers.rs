//! The buffers of a copy and its one memory budget.
//!
//! Every data buffer of a copy is a [`PoolBuf`]: read or decoded by a decode thread, waiting
//! in the consumer for its turn, gathered into a write, in flight in the sink, or waiting in
//! the hasher. The pool counts the bytes of the buffers out (by capacity, which is what a
//! buffer holds) against one budget, so the decode threads and the sink's writes in flight
//! share it instead of each having a bound of its own: a sink whose writes finish fast leaves
//! the memory to the readers, and the reverse. A `PoolBuf` goes back to the pool when it is
//! dropped, on every path, so no sink or error path can shrink the budget by forgetting one.
//!
//! Only the producer waits for the budget ([`BufferPool::admit`]), on its own thread and in
//! the order it walks the disk, so the piece the consumer waits for next is always already
//! admitted: a wait ends when pieces further on are consumed, never on pieces not yet read.
//! Everything else takes buffers without waiting ([`BufferPool::get`]): what it takes is
//! bounded by what was admitted (a decoded cluster for a compressed one, a write gathered from
//! pieces) or small (a stream's read-ahead).
//!
//! Idle buffers are kept for reuse (at most `cap`), so steady-state copying does not fault in
//! fresh pages for every object. They hold memory too: one is kept only while the buffers out
//! and the idle ones fit in the budget together, and a request takes the idle buffer that fits
//! it best. (Taking the last one returned let a copy of mixed piece sizes, an incremental
//! backup's, grow small idle buffers into large ones while large ones sat idle: 152 MiB of
//! buffers under an 80 MiB budget, seen with massif.)
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// Shared pool of byte buffers with a budget of bytes out.
#[derive(Clone)]
pub struct BufferPool {
    inner: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    returned: Condvar,
    cap: usize,
    budget: u64,
}

#[derive(Default)]
struct State {
    idle: Vec<Vec<u8>>,
    /// Bytes of the buffers out and of the room admitted for buffers not taken yet.
    out: u64,
}

/// Whether an idle buffer is given for a request of `len` bytes: it holds them and is not more
/// than twice as large.
fn reusable(b: &Vec<u8>, len: usize) -> bool {
    b.capacity() >= len && b.capacity() <= len.max(1).saturating_mul(2)
}

impl State {
    /// Capacity of the idle buffers (at most `cap` of them: summed when asked).
    fn idle_bytes(&self) -> u64 {
        self.idle.iter().map(|b| b.capacity() as u64).sum()
    }

    /// The idle buffer that best holds `len` bytes: the smallest [`reusable`] one. A 4 MiB
    /// buffer would count 64 times against the budget for a 64 KiB piece, and a small one
    /// grown would hold memory twice (the old one freed, a larger one faulted in).
    fn take_idle(&mut self, len: usize) -> Option<Vec<u8>> {
        let (i, _) = self
            .idle
            .iter()
            .enumerate()
            .filter(|(_, b)| reusable(b, len))
            .min_by_key(|(_, b)| b.capacity())?;
        Some(self.idle.swap_remove(i))
    }

    /// Frees idle buffers, largest first, until `len` more bytes fit in `budget` beside
    /// them and the buffers out, unless one of them will hold those bytes (then the pool does
    /// not grow: freeing it would only fault in a fresh one).
    fn evict_for(&mut self, len: u64, budget: u64) {
        if self.idle.iter().any(|b| reusable(b, len as usize)) {
            return;
        }
        while self
            .out
            .saturating_add(self.idle_bytes())
            .saturating_add(len)
            > budget
        {
            let Some((i, _)) = self
                .idle
                .iter()
                .enumerate()
                .max_by_key(|(_, b)| b.capacity())
            else {
                return;
            };
            self.idle.swap_remove(i);
        }
    }
}

impl BufferPool {
    /// A pool keeping at most `cap` idle buffers, without a budget.
    pub fn new(cap: usize) -> Self {
        Self::with_budget(cap, u64::MAX)
    }

    /// A pool keeping at most `cap` idle buffers whose producer waits while `budget` bytes are
    /// out.
    pub fn with_budget(cap: usize, budget: u64) -> Self {
        BufferPool {
            inner: Arc::new(Shared {
                state: Mutex::default(),
                returned: Condvar::new(),
                cap,
                budget,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A plain vector of exactly `len` bytes (contents unspecified), reused if one is idle and
    /// not counted: for code that fills buffers outside the engine (a format's stream decoder)
    /// and hands them in with [`BufferPool::adopt`].
    pub fn raw(&self, len: usize) -> Vec<u8> {
        let reused = self.lock().take_idle(len);
        match reused {
            Some(mut b) => {
                b.resize(len, 0);
                b
            }
            None => filled(len),
        }
    }

    /// Keeps a plain vector for reuse (one from [`BufferPool::raw`] that was not adopted).
    pub fn recycle(&self, buf: Vec<u8>) {
        self.give_back(buf, 0);
    }

    /// Counts `buf` as out from now on: it comes back when the `PoolBuf` is dropped.
    pub fn adopt(&self, buf: Vec<u8>) -> PoolBuf {
        let charged = buf.capacity() as u64;
        self.lock().out += charged;
        PoolBuf {
            buf,
            charged,
            pool: self.clone(),
        }
    }

    /// A buffer of exactly `len` bytes (contents unspecified), without waiting for the budget.
    pub fn get(&self, len: usize) -> PoolBuf {
        self.adopt(self.raw(len))
    }

    /// An empty buffer with room for `capacity` bytes, without waiting for the budget. Its
    /// bytes are not zeroed: filling it is the caller's (zero-filling a reused buffer up to
    /// 4 MiB on every write cost a third more CPU on a fragmented image).
    pub fn empty(&self, capacity: usize) -> PoolBuf {
        let mut b = self.lock().take_idle(capacity).unwrap_or_default();
        b.clear();
        b.reserve(capacity);
        self.adopt(b)
    }

    /// Room for a buffer of `len` bytes, once it fits in the budget (or nothing else is out,
    /// so a piece larger than the budget still goes, alone). The buffer itself is taken later
    /// ([`Admitted::into_buf`]), by the thread that fills it, so a job waiting in the decode
    /// queue holds no memory yet. `None` when `halted` says to stop.
    pub fn admit(&self, len: usize, halted: &dyn Fn() -> bool) -> Option<Admitted> {
        self.wait_until_fits(len as u64, halted)?;
        self.lock().out += len as u64;
        Some(Admitted {
            pool: self.clone(),
            len,
        })
    }

    /// Waits until `len` more bytes fit in the budget: for a producer whose buffer is already
    /// out (a stream's read-ahead), before it hands on the piece. `None` when halted.
    pub fn wait_until_fits(&self, len: u64, halted: &dyn Fn() -> bool) -> Option<()> {
        const POLL: Duration = Duration::from_millis(100);
        let mut st = self.lock();
        st.evict_for(len, self.inner.budget);
        while st.out != 0 && st.out.saturating_add(len) > self.inner.budget {
            if halted() {
                return None;
            }
            st = self
                .inner
                .returned
                .wait_timeout(st, POLL)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        Some(())
    }

    /// Bytes out (buffers and admitted room).
    pub fn in_use(&self) -> u64 {
        self.lock().out
    }

    /// Bytes out and idle: what the pool holds.
    #[cfg(test)]
    pub fn held(&self) -> u64 {
        let st = self.lock();
        st.out + st.idle_bytes()
    }

    fn give_back(&self, buf: Vec<u8>, charged: u64) {
        let mut st = self.lock();
        st.out = st.out.saturating_sub(charged);
        let c = buf.capacity() as u64;
        let fits = st.out.saturating_add(st.idle_bytes()).saturating_add(c) <= self.inner.budget;
        if c > 0 && st.idle.len() < self.inner.cap && fits {
            st.idle.push(buf);
        }
        drop(st);
        if charged > 0 {
            self.inner.returned.notify_all();
        }
    }
}

/// A new vector of `len` zero bytes, allocated and then filled rather than allocated zeroed
/// (`vec![0; len]`): for a zeroed allocation jemalloc clears a reused extent with
/// `madvise(MADV_DONTNEED)`, so the pages of every new buffer were unmapped, faulted in and
/// cleared again (22,867 `madvise` calls in one streamed import of a 300 MB compressed qcow2).
/// A fill touches pages that are still mapped.
#[allow(clippy::slow_vector_initialization)] // on purpose: see above
fn filled(len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    v.resize(len, 0);
    v
}

/// A buffer of a [`BufferPool`], counted in its budget until dropped. Derefs to its vector;
/// growing it past its capacity does not change what it counts.
pub struct PoolBuf {
    buf: Vec<u8>,
    charged: u64,
    pool: BufferPool,
}

impl PoolBuf {
    /// The pool this buffer goes back to.
    pub fn pool(&self) -> &BufferPool {
        &self.pool
    }

    /// Lends the vector out (to an asynchronous write that owns it until its completion),
    /// leaving this buffer empty but still counted; [`PoolBuf::restore`] puts it back.
    pub fn take_vec(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// Puts back the vector [`PoolBuf::take_vec`] lent.
    pub fn restore(&mut self, buf: Vec<u8>) {
        self.buf = buf;
    }
}

impl Deref for PoolBuf {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.buf
    }
}

impl DerefMut for PoolBuf {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }
}

impl Drop for PoolBuf {
    fn drop(&mut self) {
        self.pool
            .give_back(std::mem::take(&mut self.buf), self.charged);
    }
}

impl std::fmt::Debug for PoolBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PoolBuf({} bytes)", self.buf.len())
    }
}

/// Room in the budget for one buffer, taken by [`BufferPool::admit`]; given back if dropped
/// unused.
pub struct Admitted {
    pool: BufferPool,
    len: usize,
}

impl Admitted {
    /// The buffer of the admitted length (contents unspecified), counted by its capacity
    /// instead of the room.
    pub fn into_buf(mut self) -> PoolBuf {
        let buf = self.pool.get(self.len);
        let mut st = self.pool.lock();
        st.out = st.out.saturating_sub(self.len as u64);
        drop(st);
        self.len = 0;
        buf
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if self.len > 0 {
            self.pool.give_back(Vec::new(), self.len as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn the_producer_waits_until_dropped_buffers_make_room() {
        let pool = BufferPool::with_budget(4, 10);
        let a = pool.admit(6, &|| false).unwrap().into_buf();
        assert_eq!(pool.in_use(), 6);
        let (p2, done) = (pool.clone(), Arc::new(AtomicBool::new(false)));
        let d2 = done.clone();
        let waiter = std::thread::spawn(move || {
            let b = p2.admit(6, &|| false).unwrap().into_buf();
            d2.store(true, Ordering::SeqCst);
            b
        });
        std::thread::sleep(Duration::from_millis(150));
        assert!(!done.load(Ordering::SeqCst), "6 + 6 bytes do not fit in 10");
        drop(a);
        let b = waiter.join().unwrap();
        assert_eq!(pool.in_use(), b.capacity() as u64);
        drop(b);
        assert_eq!(pool.in_use(), 0);
    }

    #[test]
    fn mixed_sizes_do_not_grow_the_idle_buffers_past_the_budget() {
        let (small, large) = (64usize << 10, 4usize << 20);
        let budget = 20 * large as u64;
        let pool = BufferPool::with_budget(24, budget);
        for round in 0..50 {
            // A burst of small pieces, then of large ones, as an incremental's changes come.
            let (len, n) = if round % 2 == 0 {
                (small, 100)
            } else {
                (large, 10)
            };
            let bufs: Vec<PoolBuf> = (0..n)
                .map(|_| pool.admit(len, &|| false).unwrap().into_buf())
                .collect();
            assert!(
                pool.held() <= budget + large as u64,
                "round {round}: {}",
                pool.held()
            );
            drop(bufs);
            assert!(pool.held() <= budget, "round {round}: {} held", pool.held());
        }
        assert_eq!(pool.in_use(), 0);
    }

    #[test]
    fn a_piece_larger_than_the_budget_goes_alone_and_a_halt_ends_the_wait() {
        let pool = BufferPool::with_budget(4, 10);
        let big = pool.admit(64, &|| false).unwrap();
        assert_eq!(
            pool.in_use(),
            64,
            "admitted room counts before its buffer is taken"
        );
        assert!(pool.admit(1, &|| true).is_none());
        drop(big);
        assert_eq!(pool.in_use(), 0, "room admitted and not used is given back");
        let mut empty = pool.empty(32);
        assert!(empty.is_empty() && empty.capacity() >= 32);
        let counted = pool.in_use();
        assert_eq!(counted, empty.capacity() as u64);
        empty.extend_from_slice(&[1u8; 100]);
        drop(empty);
        assert_eq!(
            pool.in_use(),
            0,
            "a grown buffer gives back what it counted"
        );
    }
}
