//! A small pool of chunk buffers so steady-state copying does not fault in fresh pages for
//! every object. Bounded: at most `cap` idle buffers are kept.
use std::sync::{Arc, Mutex};

/// Shared pool of byte buffers.
#[derive(Clone)]
pub struct BufferPool {
    inner: Arc<Mutex<Vec<Vec<u8>>>>,
    cap: usize,
}

impl BufferPool {
    /// A pool keeping at most `cap` idle buffers.
    pub fn new(cap: usize) -> Self {
        BufferPool {
            inner: Arc::default(),
            cap,
        }
    }

    /// A buffer of exactly `len` bytes (contents unspecified).
    pub fn get(&self, len: usize) -> Vec<u8> {
        let reused = self.inner.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match reused {
            Some(mut b) => {
                b.resize(len, 0);
                b
            }
            None => vec![0u8; len],
        }
    }

    /// Returns a buffer for reuse.
    pub fn put(&self, buf: Vec<u8>) {
        if buf.capacity() == 0 {
            return;
        }
        let mut idle = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.cap {
            idle.push(buf);
        }
    }
}
