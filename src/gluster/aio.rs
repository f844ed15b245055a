//! A window of asynchronous reads and writes on one GlusterFS file.
//!
//! **Async I/O through `glfs_pread_async` / `glfs_pwrite_async` callbacks, not a thread per
//! request.** libgfapi's synchronous calls are themselves an asynchronous fop plus a wait for
//! its callback, so a thread per request in flight would add a thread and two context switches
//! per I/O (and `iodepth` stacks per job) and buy nothing; with callbacks one job thread keeps
//! any number of requests in flight, gfapi's own event thread runs the callback, and the
//! callback only queues `(slot, result)` and wakes the job. That is also what fio's
//! `gfapi_async` engine does, so the CPU per I/O of the two compare like for like.
//!
//! The queue owns its buffers: a slot's buffer can be filled only while it is not in flight,
//! and dropping the queue waits for every request it submitted, so no callback ever finds a
//! buffer or a queue gone.
use super::{gluster_err, GFile};
use crate::error::{Error, Result};
use glusterfs_sys as sys;
use std::collections::VecDeque;
use std::ffi::c_void;
use std::sync::{Arc, Condvar, Mutex};

/// Completions the callbacks hand to the job thread: each request's `T` (a slot number, or a
/// lent buffer) with its result.
pub(super) struct Done<T> {
    q: Mutex<VecDeque<(T, isize)>>,
    cv: Condvar,
}

impl<T> Default for Done<T> {
    fn default() -> Self {
        Done {
            q: Mutex::new(VecDeque::new()),
            cv: Condvar::new(),
        }
    }
}

impl<T> Done<T> {
    /// Waits for the next completion.
    pub(super) fn next(&self) -> (T, isize) {
        let mut q = self.q.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(d) = q.pop_front() {
                return d;
            }
            q = self.cv.wait(q).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The next completion, if one is there.
    pub(super) fn try_next(&self) -> Option<(T, isize)> {
        self.q.lock().unwrap_or_else(|e| e.into_inner()).pop_front()
    }
}

/// What one request's callback needs; boxed at submission, freed by the callback.
pub(super) struct Req<T> {
    pub(super) done: Arc<Done<T>>,
    pub(super) tag: T,
}

/// Runs on a libgfapi thread when a request completes.
pub(super) unsafe extern "C" fn on_done<T>(
    _fd: *mut sys::glfs_fd_t,
    ret: isize,
    _pre: *mut sys::glfs_stat,
    _post: *mut sys::glfs_stat,
    data: *mut c_void,
) {
    // SAFETY: data is the Box<Req<T>> leaked at submission for this request, and libgfapi
    // calls the callback exactly once per accepted request: it is taken back exactly once.
    let req = unsafe { Box::from_raw(data.cast::<Req<T>>()) };
    let Req { done, tag } = *req;
    // libgfapi sets errno on this thread before calling back with -1: keep it as -errno, so
    // the waiting thread can name the cause.
    let ret = if ret < 0 {
        -(super::last_errno() as isize)
    } else {
        ret
    };
    let mut q = done.q.lock().unwrap_or_else(|e| e.into_inner());
    q.push_back((tag, ret));
    drop(q);
    done.cv.notify_one();
}

/// Requests in flight on one file, each in a slot with its own buffer.
pub struct AioQueue<'f> {
    file: &'f GFile,
    bufs: Vec<Vec<u8>>,
    busy: Vec<bool>,
    in_flight: usize,
    done: Arc<Done<usize>>,
}

impl<'f> AioQueue<'f> {
    /// A queue of `depth` slots with buffers of `len` bytes each (zeroed).
    pub fn new(file: &'f GFile, depth: usize, len: usize) -> AioQueue<'f> {
        AioQueue {
            file,
            bufs: (0..depth).map(|_| vec![0u8; len]).collect(),
            busy: vec![false; depth],
            in_flight: 0,
            done: Arc::default(),
        }
    }

    /// The buffer of `slot`, while it is not in flight (`None` when it is, or out of range).
    pub fn buf_mut(&mut self, slot: usize) -> Option<&mut [u8]> {
        if *self.busy.get(slot)? {
            return None;
        }
        self.bufs.get_mut(slot).map(|b| b.as_mut_slice())
    }

    /// The buffer of `slot`, while it is not in flight.
    pub fn buf(&self, slot: usize) -> Option<&[u8]> {
        if *self.busy.get(slot)? {
            return None;
        }
        self.bufs.get(slot).map(|b| b.as_slice())
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Submits a read into (or a write from) the first `len` bytes of `slot`'s buffer at
    /// `offset`. The slot must be idle.
    pub fn submit(&mut self, slot: usize, offset: u64, len: usize, read: bool) -> Result<()> {
        let idle = self.busy.get(slot) == Some(&false);
        let buf = self.bufs.get_mut(slot).filter(|b| idle && len <= b.len());
        let Some(buf) = buf else {
            return Err(Error::Other(format!(
                "internal: GlusterFS request on slot {slot} that is busy or too small"
            )));
        };
        let count = i32::try_from(len)
            .map_err(|_| Error::InvalidInput(format!("GlusterFS request of {len} bytes")))?;
        let req = Box::into_raw(Box::new(Req {
            done: self.done.clone(),
            tag: slot,
        }));
        let ptr = buf.as_mut_ptr();
        // The buffer is owned by this queue and not touched (buf_mut refuses a busy slot) or
        // freed (Drop waits for every request) until the callback has run.
        // SAFETY: so the buffer outlives the request; fd is live while the file is borrowed.
        let r = unsafe {
            if read {
                sys::glfs_pread_async(
                    self.file.fd,
                    ptr.cast(),
                    len,
                    offset as i64,
                    0,
                    Some(on_done::<usize>),
                    req.cast(),
                )
            } else {
                sys::glfs_pwrite_async(
                    self.file.fd,
                    ptr.cast_const().cast(),
                    count,
                    offset as i64,
                    0,
                    Some(on_done::<usize>),
                    req.cast(),
                )
            }
        };
        if r != 0 {
            let e = super::last_errno();
            // SAFETY: the request was refused, so its callback will never run: the box is
            // still ours to free.
            drop(unsafe { Box::from_raw(req) });
            let what = if read { "read from" } else { "write to" };
            return Err(gluster_err(what, self.file.name(), e));
        }
        self.busy[slot] = true;
        self.in_flight += 1;
        Ok(())
    }

    /// Waits for one request to complete: its slot and its result (bytes, or a negative
    /// errno). `None` when nothing is in flight.
    pub fn wait(&mut self) -> Option<(usize, isize)> {
        if self.in_flight == 0 {
            return None;
        }
        let (slot, ret) = self.done.next();
        self.busy[slot] = false;
        self.in_flight -= 1;
        Some((slot, ret))
    }
}

impl Drop for AioQueue<'_> {
    fn drop(&mut self) {
        while self.wait().is_some() {}
    }
}
