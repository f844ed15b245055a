//! GlusterFS volumes through libgfapi (`gluster://HOST[:PORT]/VOLUME/PATH`), as qemu and fio's
//! gfapi engines reach them: no FUSE mount, no root. The only code that calls `glusterfs-sys`.
//! Shared by the `gluster://` bench target, the copy sink and the `import-raw` source.
//!
//! - [`url`]: the URL, parsed and displayed.
//! - [`volume`]: a connected volume (`glfs_t`, connected within a timeout) and its files
//!   (`glfs_fd_t`): create, open, pread/pwrite, ftruncate, fstat, unlink, rename.
//! - [`aio`]: a window of `glfs_pread_async` / `glfs_pwrite_async` requests in flight.
//! - [`writes`]: asynchronous writes of buffers lent until they complete (the copy sink).
pub mod aio;
pub mod url;
pub mod volume;
pub mod writes;

pub use aio::AioQueue;
pub use url::GlusterUrl;
pub use volume::{GFile, Volume};
pub use writes::{Finished, LentWrites};

use crate::error::Error;

/// An error of `what` (a verb phrase: "create", "write to") on `object`, from a positive errno,
/// as one line with a hint where the cause is common.
pub(crate) fn gluster_err(what: &str, object: &str, errno: i32) -> Error {
    let text = std::io::Error::from_raw_os_error(errno);
    let hint = match errno {
        libc::ENOENT => "; check the volume and path names (`gluster volume list`)",
        libc::EACCES | libc::EPERM => {
            "; the volume must allow this client (server.allow-insecure on, storage.owner-uid)"
        }
        libc::ENOTCONN | libc::ECONNREFUSED | libc::ETIMEDOUT => {
            "; check the address and that glusterd and the brick run (`gluster volume status`)"
        }
        _ => "",
    };
    Error::WithErrno {
        message: format!("{what} {object}: {text}{hint}"),
        errno,
    }
}

/// The calling thread's errno, as libgfapi leaves it after a failed call (EIO if none is set).
pub(crate) fn last_errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .filter(|&e| e != 0)
        .unwrap_or(libc::EIO)
}
