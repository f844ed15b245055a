//! A window of READ(16) / WRITE(16) commands in flight on one session, each in a slot with its
//! own buffer. libiscsi runs the callbacks inside `iscsi_service`, on the thread that calls
//! [`AioQueue::wait`]: a callback only queues `(slot, status)`, the waiting thread does the rest.
//!
//! The queue owns its buffers: reads land in them directly (`iscsi_read16_iov_task`, no copy
//! out of libiscsi's own buffer) and writes are sent from them, so a slot's buffer can be
//! touched only while it is idle; dropping the queue waits for (or cancels) every command it
//! queued, so no callback ever finds a buffer or a queue gone.
use super::lun::GOOD;
use super::{sense_text, Lun};
use crate::error::{Error, Result};
use libiscsi_sys as sys;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::ffi::{c_int, c_void};
use std::time::Duration;

type DoneList = RefCell<VecDeque<(usize, c_int)>>;

/// What one slot's callback needs, allocated once per queue (not per command).
struct Tag {
    done: *const DoneList,
    slot: usize,
}

/// Runs inside `iscsi_service` (or `iscsi_scsi_cancel_*`) on the queue's thread.
unsafe extern "C" fn on_io(
    _ctx: *mut sys::iscsi_context,
    status: c_int,
    _data: *mut c_void,
    private: *mut c_void,
) {
    // SAFETY: private is the slot's Tag, alive as long as the queue, which outlives every
    // command it queued; its done list is a separate allocation no borrow is held on now.
    let tag = unsafe { &*private.cast::<Tag>() };
    // SAFETY: as above.
    let done = unsafe { &*tag.done };
    done.borrow_mut().push_back((tag.slot, status));
}

/// How a command ended: `Ok` with the bytes moved, or a one-line reason.
pub type Outcome = std::result::Result<usize, String>;

/// Commands in flight on one session.
pub struct AioQueue<'l> {
    lun: &'l mut Lun,
    bufs: Vec<Vec<u8>>,
    iovs: Box<[sys::scsi_iovec]>,
    tags: Box<[Tag]>,
    done: Box<DoneList>,
    tasks: Vec<*mut sys::scsi_task>,
    lens: Vec<usize>,
    in_flight: usize,
}

impl<'l> AioQueue<'l> {
    /// A queue of `depth` slots with buffers of `len` bytes each (zeroed).
    pub fn new(lun: &'l mut Lun, depth: usize, len: usize) -> AioQueue<'l> {
        let done: Box<DoneList> = Box::default();
        let tags = (0..depth).map(|slot| Tag { done: &*done, slot }).collect();
        let mut bufs: Vec<Vec<u8>> = (0..depth).map(|_| vec![0u8; len]).collect();
        let iovs = bufs
            .iter_mut()
            .map(|b| sys::scsi_iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: b.len(),
            })
            .collect();
        AioQueue {
            lun,
            bufs,
            iovs,
            tags,
            done,
            tasks: vec![std::ptr::null_mut(); depth],
            lens: vec![0; depth],
            in_flight: 0,
        }
    }

    /// The buffer of `slot`, while it is not in flight (`None` when it is, or out of range).
    pub fn buf_mut(&mut self, slot: usize) -> Option<&mut [u8]> {
        if !self.tasks.get(slot)?.is_null() {
            return None;
        }
        self.bufs.get_mut(slot).map(|b| b.as_mut_slice())
    }

    /// The buffer of `slot`, while it is not in flight.
    pub fn buf(&self, slot: usize) -> Option<&[u8]> {
        if !self.tasks.get(slot)?.is_null() {
            return None;
        }
        self.bufs.get(slot).map(|b| b.as_slice())
    }

    /// Commands in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Queues a read into (or a write from) the first `len` bytes of `slot`'s buffer at byte
    /// `offset`; both must be multiples of the LUN's block size, and the slot idle.
    pub fn submit(&mut self, slot: usize, offset: u64, len: usize, read: bool) -> Result<()> {
        let bs = self.lun.block_size();
        let idle = self.tasks.get(slot).is_some_and(|t| t.is_null());
        if !idle || len > self.bufs[slot].len() {
            return Err(Error::Other(format!(
                "internal: iSCSI command on slot {slot} that is busy or too small"
            )));
        }
        let end = offset.checked_add(len as u64);
        if !offset.is_multiple_of(u64::from(bs))
            || !(len as u64).is_multiple_of(u64::from(bs))
            || len == 0
            || end.is_none_or(|e| e > self.lun.size())
        {
            return Err(Error::InvalidInput(format!(
                "{}: {len} bytes at {offset}: not whole {bs}-byte blocks inside the LUN",
                self.lun.name()
            )));
        }
        let lba = offset / u64::from(bs);
        let lun = c_int::from(self.lun.url().lun);
        let tag = std::ptr::from_ref(&self.tags[slot])
            .cast_mut()
            .cast::<c_void>();
        let ctx = self.lun.ctx;
        self.iovs[slot].iov_len = len;
        let iov = std::ptr::from_mut(&mut self.iovs[slot]);
        let buf = self.bufs[slot].as_mut_ptr();
        // The buffer, its iovec and the tag belong to the queue, stay where they are (boxed,
        // never resized) and are not touched until the callback has run (buf_mut refuses a busy
        // slot, Drop waits or cancels).
        // SAFETY: so they outlive the command; ctx is live and used by this thread only.
        let task = unsafe {
            if read {
                sys::iscsi_read16_iov_task(
                    ctx,
                    lun,
                    lba,
                    len as u32,
                    bs as c_int,
                    0,
                    0,
                    0,
                    0,
                    0,
                    Some(on_io),
                    tag,
                    iov,
                    1,
                )
            } else {
                sys::iscsi_write16_task(
                    ctx,
                    lun,
                    lba,
                    buf,
                    len as u32,
                    bs as c_int,
                    0,
                    0,
                    0,
                    0,
                    0,
                    Some(on_io),
                    tag,
                )
            }
        };
        if task.is_null() {
            let what = if read { "READ(16)" } else { "WRITE(16)" };
            return Err(Error::Other(format!(
                "{}: {what} at {offset}: {}",
                self.lun.name(),
                self.lun.last_error()
            )));
        }
        self.tasks[slot] = task;
        self.lens[slot] = len;
        self.in_flight += 1;
        Ok(())
    }

    /// Waits for one command to complete: its slot and how it ended. `Ok(None)` when nothing is
    /// in flight. A failed session is an error, after every command in flight was cancelled.
    pub fn wait(&mut self) -> Result<Option<(usize, Outcome)>> {
        if self.in_flight == 0 {
            return Ok(None);
        }
        loop {
            let next = self.done.borrow_mut().pop_front();
            if let Some((slot, status)) = next {
                return Ok(Some((slot, self.finish(slot, status))));
            }
            if let Err(e) = self.lun.service(Duration::from_secs(1)) {
                self.cancel_all();
                return Err(e);
            }
        }
    }

    /// The outcome of `slot`'s command, whose callback reported `status`; frees its task.
    fn finish(&mut self, slot: usize, status: c_int) -> Outcome {
        let task = std::mem::replace(&mut self.tasks[slot], std::ptr::null_mut());
        self.in_flight -= 1;
        let len = self.lens[slot];
        let out = if status == GOOD {
            // SAFETY: the task is live until freed below.
            let (rs, residual) = unsafe { ((*task).residual_status, (*task).residual) };
            if rs == sys::scsi_residual_SCSI_RESIDUAL_UNDERFLOW && residual > 0 {
                Err(format!(
                    "short transfer: {} of {len} bytes",
                    len.saturating_sub(residual)
                ))
            } else {
                Ok(len)
            }
        } else if status == sys::scsi_status_SCSI_STATUS_CHECK_CONDITION as c_int {
            Err(sense_text(task))
        } else if status == sys::scsi_status_SCSI_STATUS_CANCELLED as c_int {
            Err("cancelled".into())
        } else if status == sys::scsi_status_SCSI_STATUS_TIMEOUT as c_int {
            Err(format!(
                "no answer within {} s",
                super::lun::OP_TIMEOUT.as_secs()
            ))
        } else {
            Err(format!(
                "SCSI status {status:#x}: {}",
                self.lun.last_error()
            ))
        };
        // SAFETY: its callback has run, and nothing refers to the task any more.
        unsafe { sys::scsi_free_scsi_task(task) };
        out
    }

    /// Cancels every command in flight (their callbacks run at once) and frees them.
    fn cancel_all(&mut self) {
        // SAFETY: ctx is live; the callbacks only push onto the done list.
        unsafe { sys::iscsi_scsi_cancel_all_tasks(self.lun.ctx) };
        let done: Vec<_> = self.done.borrow_mut().drain(..).collect();
        for (slot, status) in done {
            if !self.tasks[slot].is_null() {
                let _ = self.finish(slot, status);
            }
        }
        // A task whose callback did not run (none should be left) is not freed: leaking it is
        // safe, freeing it while libiscsi may still hold it is not.
        for t in &mut self.tasks {
            *t = std::ptr::null_mut();
        }
        self.in_flight = 0;
    }
}

impl Drop for AioQueue<'_> {
    fn drop(&mut self) {
        // libiscsi's own command timeout ends every wait; a failed session cancels the rest.
        while let Ok(Some(_)) = self.wait() {}
        if self.in_flight > 0 {
            self.cancel_all();
        }
    }
}
