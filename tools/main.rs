//! The `rbdkit` command line: argument parsing, dispatch, rendering and exit codes.
//! Logic lives in the library; this binary only turns flags into calls and results into output.
//! Exit codes: 0 ok, 1 failure, 2 bad usage.
// First, so its macros (`outln!`, `out!`) are visible in every module after it.
#[macro_use]
mod out;
mod cancel;
mod cmd;
mod global;
mod progress;

use clap::Parser;
use std::process::ExitCode;

/// rbdkit — streaming qcow2/raw import, COW clones, PG planning and I/O benchmarks for Ceph RBD and NFS.
#[derive(Parser)]
#[command(name = "rbdkit", version, about, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    global: global::Global,
    #[command(subcommand)]
    command: cmd::Command,
}

/// `rbdkit 0.1.0 (librbd 1.18.0, librados 3.0.0)`: the libraries loaded at run time.
fn version() -> String {
    #[cfg(feature = "rbd")]
    {
        let (rbd, rados) = rbdkit::ceph::library_versions();
        format!(
            "{} (librbd {rbd}, librados {rados})",
            env!("CARGO_PKG_VERSION")
        )
    }
    #[cfg(not(feature = "rbd"))]
    {
        env!("CARGO_PKG_VERSION").to_string()
    }
}

/// The whole command line as clap sees it, with the run-time `--version`: what parses the
/// arguments and what `completions` and `man` describe.
fn cli_command() -> clap::Command {
    use clap::CommandFactory;
    use std::sync::OnceLock;
    // clap wants a 'static version string; one is made per process.
    static VERSION: OnceLock<String> = OnceLock::new();
    Cli::command().version(VERSION.get_or_init(version).as_str())
}

/// Gives every allocation of 4 MiB or more its own mapping, returned to the system when freed.
/// librados receives each object read into a fresh 4 MiB buffer; left to glibc's sliding
/// threshold, those come from the heaps of its messenger threads and stay there, fragmented:
/// measured on a 1 GiB read back of an image, peak RSS 133-137 MiB instead of 80-85 MiB
/// (`rbdkit checksum`; `import-raw --verify` 188 vs 113-124 MiB), for 0.3-0.4 s more system
/// time per GiB read (the fresh pages' faults). The engine's own buffers are reused, so they
/// pay the faults once; an import's writes are zero-copy and allocate none.
fn map_large_buffers() {
    // SAFETY: mallopt only changes a glibc tuning value; called first thing in main, before
    // any other thread exists, so no allocation runs concurrently with it.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
    }
}

fn main() -> ExitCode {
    use clap::FromArgMatches;
    map_large_buffers();
    quiet_engine_panics();
    let parsed = cli_command()
        .try_get_matches()
        .and_then(|mut m| Cli::from_arg_matches_mut(&mut m));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            // A value our parser refused (a size, a duration) is one line naming the flag,
            // like every other error, not clap's paragraph with a usage tip.
            if e.kind() == clap::error::ErrorKind::ValueValidation {
                use clap::error::{ContextKind, ContextValue};
                if let (Some(ContextValue::String(arg)), Some(why)) = (
                    e.get(ContextKind::InvalidArg),
                    std::error::Error::source(&e),
                ) {
                    let flag = arg.split(' ').next().unwrap_or(arg);
                    eprintln!("rbdkit: {flag}: {}", rbdkit::text::escape(&why.to_string()));
                    return ExitCode::from(2);
                }
            }
            // --help and --version go to stdout: a closed one ends quietly there too.
            if let Err(err) = e.print() {
                if !e.use_stderr() {
                    out::fail(&err);
                }
            }
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cmd::run(cli.command, &cli.global) {
        Ok(code) => code,
        Err(e) => {
            // One line, whatever an image put in the names the message quotes.
            eprintln!("rbdkit: {}", rbdkit::text::escape(&e.to_string()));
            match e {
                rbdkit::Error::InvalidInput(_) => ExitCode::from(2),
                // As a shell reports a process stopped by SIGINT.
                rbdkit::Error::Interrupted(_) => ExitCode::from(130),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

/// The copy engine catches a panic of its threads (named `rbdkit-*`) and reports it as the
/// command's one error line; the default hook would first print a multi-line report of its
/// own. With `RUST_BACKTRACE` set, the report is printed as usual, for a bug report.
fn quiet_engine_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let engine = std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with("rbdkit-"));
        if !engine || std::env::var_os("RUST_BACKTRACE").is_some() {
            default(info);
        }
    }));
}
