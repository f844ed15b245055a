//! iSCSI LUNs through libiscsi (`iscsi://HOST[:PORT]/IQN/LUN`), as qemu and fio's libiscsi
//! engine reach them: a userspace initiator, no kernel session, no root. The only code that
//! calls `libiscsi-sys`. Used by the `iscsi://` bench target.
//!
//! - [`url`]: the URL, parsed and displayed.
//! - [`lun`]: a session to one LUN, connected and logged in within a timeout: size and block
//!   size (READ CAPACITY(16)), thin provisioning (VPD pages), UNMAP, GET LBA STATUS.
//! - [`aio`]: a window of READ(16)/WRITE(16) commands in flight on one session.
//!
//! **One context per thread, each driven by `poll` on its own socket.** libiscsi takes no
//! locks, so a context may not be shared between threads; within a thread its async API keeps
//! any number of commands in flight on one connection (`iscsi_get_fd` /
//! `iscsi_which_events` / `iscsi_service`), with no helper thread and no wake-ups across
//! threads. Parallel jobs therefore each log in a session of their own (as fio's libiscsi
//! engine does per job), and each job's queue depth is its commands in flight.
pub mod aio;
pub mod lun;
pub mod url;

pub use aio::AioQueue;
pub use lun::{Lun, Provisioning, CONNECT_TIMEOUT};
pub use url::IscsiUrl;

use libiscsi_sys as sys;
use std::ffi::{c_char, CStr};

/// A C string of libiscsi's as one line ("" for NULL).
pub(crate) fn iscsi_text(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: libiscsi returns NUL-terminated strings it owns; they are copied at once.
    let s = unsafe { CStr::from_ptr(p) }.to_string_lossy();
    s.replace(['\n', '\r'], " ").trim().to_string()
}

/// The sense of a task that ended in CHECK CONDITION, e.g.
/// "ILLEGAL_REQUEST: LOGICAL_UNIT_NOT_SUPPORTED (sense 5/0x2500)".
pub(crate) fn sense_text(task: *const sys::scsi_task) -> String {
    // SAFETY: task is a live task; key and ascq are read as the integers they are in C.
    let (key, ascq) = unsafe {
        (
            std::ptr::addr_of!((*task).sense.key).cast::<u32>().read() as i32,
            (*task).sense.ascq,
        )
    };
    // SAFETY: both return static NUL-terminated strings (or NULL) for any value.
    let (k, a) = unsafe {
        (
            iscsi_text(sys::scsi_sense_key_str(key)),
            iscsi_text(sys::scsi_sense_ascq_str(ascq)),
        )
    };
    format!("{k}: {a} (sense {key}/{ascq:#06x})")
}
