//! The one error type of the crate. Every variant renders as a single line that names the object
//! and, where the cause is common, says what to do. Library code returns these; only `tools/`
//! prints them.
use std::io;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in rbdkit.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A librados/librbd call returned a negative errno.
    #[error("{op} {object}: {}{}", errno_text(*errno), hint_text(*errno, op, hint.as_deref()))]
    Ceph {
        /// What we were doing, e.g. "open image", "connect to cluster".
        op: String,
        /// The object it concerned, e.g. `volumes/vol-1@snap` or a monitor address.
        object: String,
        /// Positive errno value.
        errno: i32,
        /// What this errno means for this call and what to do, replacing the generic hint for
        /// the errno; one line, no leading dash.
        hint: Option<String>,
    },
    /// A local file or stream operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What we were doing and on which path.
        what: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Input the user gave is malformed (spec, size, option value).
    #[error("{0}")]
    InvalidInput(String),
    /// A disk image (qcow2/raw) is corrupt, unsupported or unsafe to read.
    #[error("{path}: {reason}")]
    BadImage {
        /// The file the image came from.
        path: String,
        /// What is wrong, and what to do where that is known.
        reason: String,
    },
    /// The operation was interrupted by a signal; temporary state was cleaned up.
    #[error("interrupted: {0}")]
    Interrupted(String),
    /// A failure that is rephrased for a person (e.g. a cleanup that failed after the first
    /// error) but still carries the errno of its cause.
    #[error("{message}")]
    WithErrno {
        /// The whole one-line message.
        message: String,
        /// Positive errno value of the underlying failure.
        errno: i32,
    },
    /// Anything else, already phrased as one line for a person.
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// Builds a `Ceph` error from a librados/librbd return code (negative errno).
    pub fn ceph(op: impl Into<String>, object: impl Into<String>, ret: i32) -> Self {
        Error::Ceph {
            op: op.into(),
            object: object.into(),
            errno: ret.saturating_abs(),
            hint: None,
        }
    }

    /// Builds a `Ceph` error whose hint is specific to the call (e.g. "an image of that name
    /// already exists"), keeping the errno so callers can still branch on it.
    pub fn ceph_with_hint(
        op: impl Into<String>,
        object: impl Into<String>,
        ret: i32,
        hint: impl Into<String>,
    ) -> Self {
        Error::Ceph {
            op: op.into(),
            object: object.into(),
            errno: ret.saturating_abs(),
            hint: Some(hint.into()),
        }
    }

    /// Wraps this error in a new one-line message, keeping its errno (when it has one) so that
    /// callers branching on [`Error::errno`] still see it.
    pub fn context(self, message: impl Into<String>) -> Self {
        match self.errno() {
            Some(errno) => Error::WithErrno {
                message: message.into(),
                errno,
            },
            None => Error::Other(message.into()),
        }
    }

    /// Builds an `Io` error that says what was being done.
    pub fn io(what: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }

    /// Builds a `BadImage` error.
    pub fn bad_image(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::BadImage {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// The errno when this error came from Ceph or the OS.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Ceph { errno, .. } | Error::WithErrno { errno, .. } => Some(*errno),
            Error::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// "ENOENT (No such file or directory)" for an errno.
pub fn errno_text(errno: i32) -> String {
    format!(
        "{} ({})",
        errno_name(errno),
        io::Error::from_raw_os_error(errno)
    )
    .replace(&format!(" (os error {errno})"), "")
}

/// Symbolic name of the errno values Ceph commonly returns.
pub fn errno_name(errno: i32) -> &'static str {
    match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EIO => "EIO",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::EINVAL => "EINVAL",
        libc::EFBIG => "EFBIG",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::ERANGE => "ERANGE",
        libc::EDQUOT => "EDQUOT",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ENOSYS => "ENOSYS",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::ENOTCONN => "ENOTCONN",
        libc::ESHUTDOWN => "ESHUTDOWN",
        libc::EINTR => "EINTR",
        libc::ECANCELED => "ECANCELED",
        _ => "E?",
    }
}

/// " — hint": the call's own hint when it has one, else the generic one for the errno.
fn hint_text(errno: i32, op: &str, hint: Option<&str>) -> String {
    match hint {
        Some(h) => format!(" — {h}"),
        None => generic_hint(errno, op).to_string(),
    }
}

/// A hint for the causes operators hit most, keyed by errno and operation.
fn generic_hint(errno: i32, op: &str) -> &'static str {
    let connecting = op.starts_with("connect");
    match errno {
        libc::EPERM | libc::EACCES if connecting => {
            " — check the client name (--id) and its key in the keyring (--keyring)"
        }
        libc::EPERM | libc::EACCES => {
            " — the client's caps do not allow this; grant e.g. `profile rbd pool=<pool>` with `ceph auth caps`"
        }
        libc::ENOENT if connecting => {
            " — no keyring or conf found; pass --keyring/-c or set CEPH_CONF"
        }
        libc::ENOENT => " — check that the pool, image and snapshot exist (`rbd ls POOL`, `rbd snap ls`)",
        libc::ETIMEDOUT if connecting => {
            " — no monitor answered; check mon_host in the conf and that the cluster is up, or raise --connect-timeout"
        }
        libc::ETIMEDOUT => " — the cluster did not answer in time",
        libc::EEXIST => " — choose another name or remove the existing one first",
        libc::EBUSY => " — it is in use (watchers, children or protected snapshots)",
        libc::ENOSPC | libc::EDQUOT => " — the cluster or pool is full (see `ceph health detail`)",
        libc::ERANGE => " — the monitor's mon_max_pg_per_osd limit would be exceeded (see `rbdkit pg check`)",
        libc::ENOTEMPTY => " — remove its snapshots or children first",
        libc::EROFS => " — the image or snapshot is read-only",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceph_error_is_one_line_with_object_errno_and_hint() {
        let e = Error::ceph("open image", "volumes/vol-1", -libc::ENOENT);
        let s = e.to_string();
        assert!(
            s.starts_with("open image volumes/vol-1: ENOENT (No such file or directory)"),
            "{s}"
        );
        assert!(s.contains("rbd ls"), "{s}");
        assert!(!s.contains('\n'));
        assert_eq!(e.errno(), Some(libc::ENOENT));
    }

    #[test]
    fn permission_hint_depends_on_operation() {
        let connect = Error::ceph("connect to cluster", "client.glance", -libc::EPERM).to_string();
        assert!(connect.contains("--keyring"), "{connect}");
        let write = Error::ceph("create image", "volumes/x", -libc::EPERM).to_string();
        assert!(write.contains("ceph auth caps"), "{write}");
    }

    #[test]
    fn a_call_specific_hint_replaces_the_generic_one_and_keeps_the_errno() {
        let e = Error::ceph_with_hint("create image", "rbd/x", -libc::EEXIST, "name taken");
        assert_eq!(e.errno(), Some(libc::EEXIST));
        assert_eq!(
            e.to_string(),
            "create image rbd/x: EEXIST (File exists) — name taken"
        );
    }

    #[test]
    fn context_keeps_the_errno_when_there_is_one() {
        let e = Error::ceph("write", "rbd/x", -libc::ETIMEDOUT).context("import stopped");
        assert_eq!(e.errno(), Some(libc::ETIMEDOUT));
        assert_eq!(e.to_string(), "import stopped");
        let e = Error::InvalidInput("bad".into()).context("wrapped");
        assert_eq!(e.errno(), None);
    }

    #[test]
    fn unknown_errno_still_renders() {
        let s = Error::ceph("stat", "p/i", -4095).to_string();
        assert!(s.starts_with("stat p/i: E?"), "{s}");
    }
}
