//! The one way the binary writes to stdout. `println!` panics when stdout is a pipe whose
//! reader has gone (`rbdkit pg plan ... | head -1`), because Rust ignores SIGPIPE and the write
//! fails with EPIPE. We keep SIGPIPE ignored on purpose: rbdkit holds sockets (librados, the NFS
//! client) and must never be killed by one mid-import. Instead every stdout write goes through
//! [`write`], which ends the process quietly with status 141 on a closed stdout, the status a
//! shell reports for a process killed by SIGPIPE, so pipelines behave as they do with C tools.
use std::io::{self, Write};

/// Status a shell reports for a process killed by SIGPIPE (128 + 13).
pub const BROKEN_PIPE_STATUS: i32 = 141;

/// Writes `args` to stdout and flushes, so a closed stdout is noticed at the write that hit
/// it and nothing is left in the buffer for an exit to drop. Does not return on failure.
pub fn write(args: std::fmt::Arguments) {
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        fail(&e)
    }
}

/// Ends the process after a failed stdout write: quietly with 141 when the reader has gone
/// (the output is no longer wanted, which is no error), with one line and status 1 otherwise
/// (a full disk under `> file`). Whatever the command did is complete by the time it prints.
pub fn fail(e: &io::Error) -> ! {
    if e.kind() == io::ErrorKind::BrokenPipe {
        std::process::exit(BROKEN_PIPE_STATUS)
    }
    eprintln!("rbdkit: write to stdout: {e}");
    std::process::exit(1)
}

/// `println!` through [`write`].
macro_rules! outln {
    () => {
        $crate::out::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::out::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` through [`write`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::out::write(format_args!($($arg)*))
    };
}
