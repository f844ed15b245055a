//! Data I/O on an open image: async writes, reads, discards, zeroing and flushes through a
//! [`Completions`] queue, and one blocking read. The bounded window lives in `aio.rs`.
use super::super::aio::{self, Completions, Request};
use super::Image;
use crate::error::{Error, Result};
use librbd_sys as sys;
use std::os::raw::c_char;

impl Image {
    fn request(
        &self,
        tag: u64,
        buf: Vec<u8>,
        op: &'static str,
        offset: u64,
        q: &Completions,
    ) -> Request {
        Request {
            tag,
            buf,
            op,
            object: self.object.clone(),
            offset,
            queue: q.clone(),
            in_flight: self.in_flight.clone(),
        }
    }

    /// Starts writing `buf` at `offset`; the result and the buffer arrive on `q` with `tag`.
    pub fn aio_write(&self, offset: u64, buf: Vec<u8>, tag: u64, q: &Completions) -> Result<()> {
        let raw = self.raw;
        aio::submit(self.request(tag, buf, "write", offset, q), |c, p, len| {
            // SAFETY: p/len describe the request's buffer, kept alive and unmodified until the
            // callback (which is what zero-copy writes, see ConnectOptions::bulk_io, need).
            unsafe { sys::rbd_aio_write2(raw, offset, len, p as *const c_char, c, 0) }
        })
    }

    /// Reads `buf.len()` bytes at `offset` (never-written ranges read as zeros); blocks.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        // SAFETY: buf is a live, writable slice of buf.len() bytes for the whole call; librbd
        // writes at most that many bytes into it before returning.
        let ret = unsafe {
            sys::rbd_read2(
                self.raw,
                offset,
                buf.len(),
                buf.as_mut_ptr() as *mut c_char,
                0,
            )
        };
        if ret < 0 {
            return Err(Error::ceph("read", self.object.to_string(), ret as i32));
        }
        if ret as usize != buf.len() {
            return Err(Error::Other(format!(
                "read {}: {ret} of {} bytes at offset {offset} (past the end of the image?)",
                self.object,
                buf.len()
            )));
        }
        Ok(())
    }

    /// Starts reading `buf.len()` bytes at `offset` into `buf`.
    pub fn aio_read(&self, offset: u64, buf: Vec<u8>, tag: u64, q: &Completions) -> Result<()> {
        let raw = self.raw;
        aio::submit(self.request(tag, buf, "read", offset, q), |c, p, len| {
            // SAFETY: p/len describe the request's writable buffer, kept alive until the callback.
            unsafe { sys::rbd_aio_read(raw, offset, len, p as *mut c_char, c) }
        })
    }

    /// Starts discarding `len` bytes at `offset`.
    pub fn aio_discard(&self, offset: u64, len: u64, tag: u64, q: &Completions) -> Result<()> {
        let raw = self.raw;
        aio::submit(
            self.request(tag, Vec::new(), "discard", offset, q),
            |c, _, _| {
                // SAFETY: valid image and completion; no buffer involved.
                unsafe { sys::rbd_aio_discard(raw, offset, len, c) }
            },
        )
    }

    /// Starts writing `len` zero bytes at `offset` (may deallocate).
    pub fn aio_write_zeroes(&self, offset: u64, len: u64, tag: u64, q: &Completions) -> Result<()> {
        let raw = self.raw;
        let len_usize = usize::try_from(len)
            .map_err(|_| Error::InvalidInput(format!("zero range {len} too large")))?;
        aio::submit(
            self.request(tag, Vec::new(), "write zeroes", offset, q),
            |c, _, _| {
                // SAFETY: valid image and completion; no buffer involved.
                unsafe { sys::rbd_aio_write_zeroes(raw, offset, len_usize, c, 0, 0) }
            },
        )
    }

    /// Starts a flush; completes when everything written before it is stable.
    pub fn aio_flush(&self, tag: u64, q: &Completions) -> Result<()> {
        let raw = self.raw;
        aio::submit(self.request(tag, Vec::new(), "flush", 0, q), |c, _, _| {
            // SAFETY: valid image and completion.
            unsafe { sys::rbd_aio_flush(raw, c) }
        })
    }
}
