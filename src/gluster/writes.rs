//! Writes whose buffers are lent to libgfapi until they complete: the copy sink's window of
//! `glfs_pwrite_async` requests. Unlike [`super::AioQueue`], whose slots own fixed buffers
//! (the benchmark rewrites the same ones), a copy hands over each piece's buffer as it is, so
//! nothing is copied; the buffer comes back with the completion.
//!
//! A buffer moved into a request is owned by the request until its callback has run, so it
//! outlives the write whatever happens to this window; the file is held by an `Arc` and
//! dropping the window waits for every request, so no write ever runs on a closed descriptor.
use super::aio::{on_done, Done, Req};
use super::{gluster_err, GFile};
use crate::error::{Error, Result};
use glusterfs_sys as sys;
use std::sync::Arc;

/// One write in flight: what comes back with its completion.
struct Lent {
    tag: u64,
    /// Where `buf[from..]` goes in the file.
    offset: u64,
    from: usize,
    buf: Vec<u8>,
}

/// A finished write: its tag, its buffer back, and whether all of it was written.
pub struct Finished {
    /// The tag given at submission.
    pub tag: u64,
    /// The buffer, back from libgfapi.
    pub buf: Vec<u8>,
    /// Ok when every byte was written.
    pub result: Result<()>,
}

/// Writes in flight on one file.
pub struct LentWrites {
    file: Arc<GFile>,
    done: Arc<Done<Lent>>,
    in_flight: usize,
}

impl LentWrites {
    /// A window over `file`.
    pub fn new(file: Arc<GFile>) -> LentWrites {
        LentWrites {
            file,
            done: Arc::default(),
            in_flight: 0,
        }
    }

    /// Writes in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Starts writing all of `buf` at `offset`; `tag` and `buf` come back from
    /// [`LentWrites::wait`]. On an error the buffer is dropped (the copy fails anyway).
    pub fn submit(&mut self, tag: u64, offset: u64, buf: Vec<u8>) -> Result<()> {
        self.send(Lent {
            tag,
            offset,
            from: 0,
            buf,
        })
    }

    fn send(&mut self, lent: Lent) -> Result<()> {
        let rest = lent.buf.len() - lent.from;
        let count = i32::try_from(rest)
            .map_err(|_| Error::InvalidInput(format!("GlusterFS write of {rest} bytes")))?;
        let offset = i64::try_from(lent.offset + lent.from as u64).map_err(|_| {
            Error::InvalidInput(format!("GlusterFS write at offset {}", lent.offset))
        })?;
        // The heap block of a Vec does not move when the Vec is moved into the box.
        let ptr = lent.buf[lent.from..].as_ptr();
        let req = Box::into_raw(Box::new(Req {
            done: self.done.clone(),
            tag: lent,
        }));
        // SAFETY: ptr points at `count` bytes of the buffer the request now owns, freed only
        // after the callback handed it back; the fd stays open while this window holds the
        // file and has requests in flight (Drop waits for them).
        let r = unsafe {
            sys::glfs_pwrite_async(
                self.file.fd,
                ptr.cast(),
                count,
                offset,
                0,
                Some(on_done::<Lent>),
                req.cast(),
            )
        };
        if r != 0 {
            let e = super::last_errno();
            // SAFETY: the request was refused, so its callback will never run: the box is
            // still ours to free.
            drop(unsafe { Box::from_raw(req) });
            return Err(gluster_err("write to", self.file.name(), e));
        }
        self.in_flight += 1;
        Ok(())
    }

    /// Waits for one write to finish (a short write is continued first); `None` when none is
    /// in flight.
    pub fn wait(&mut self) -> Option<Finished> {
        while self.in_flight > 0 {
            let (lent, ret) = self.done.next();
            self.in_flight -= 1;
            if let Some(f) = self.settle(lent, ret) {
                return Some(f);
            }
        }
        None
    }

    /// A write that already finished, without waiting.
    pub fn try_wait(&mut self) -> Option<Finished> {
        while self.in_flight > 0 {
            let (lent, ret) = self.done.try_next()?;
            self.in_flight -= 1;
            if let Some(f) = self.settle(lent, ret) {
                return Some(f);
            }
        }
        None
    }

    /// What a completion means: finished, failed, or (a short write) sent again for the rest.
    fn settle(&mut self, mut lent: Lent, ret: isize) -> Option<Finished> {
        let at = lent.offset + lent.from as u64;
        let result = match ret {
            r if r < 0 => Err(gluster_err(
                &format!("write at offset {at} to"),
                self.file.name(),
                -r as i32,
            )),
            0 => Err(gluster_err(
                &format!("write at offset {at} to"),
                self.file.name(),
                libc::EIO,
            )),
            r if lent.from + r as usize >= lent.buf.len() => Ok(()),
            r => {
                lent.from += r as usize;
                let tag = lent.tag;
                return match self.send(lent) {
                    Ok(()) => None,
                    Err(e) => Some(Finished {
                        tag,
                        buf: Vec::new(),
                        result: Err(e),
                    }),
                };
            }
        };
        Some(Finished {
            tag: lent.tag,
            buf: lent.buf,
            result,
        })
    }
}

impl Drop for LentWrites {
    fn drop(&mut self) {
        while self.wait().is_some() {}
    }
}
