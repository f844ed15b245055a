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

/// jemalloc serves every allocation of the process, librados' and librbd's too (the
/// unprefixed build exports `malloc` and friends, which the C libraries then resolve to).
/// librados receives each object read into a fresh 4 MiB buffer. glibc either maps and faults
/// in each one (a fixed mmap threshold: 0.85 s more system time per GiB read, a quarter of a
/// read's CPU) or, left to its sliding threshold, keeps them fragmented in its messenger
/// threads' heaps (peak RSS 135-196 MiB instead of 82-89 for a 2 GiB read back). jemalloc
/// reuses the freed extents: measured on `rbdkit checksum` of 2 GiB, 4.0 s and 2.8 s of CPU
/// against glibc's 5.6 s and 4.8 s, at 89 MiB.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read once at its start (`MALLOC_CONF` in the environment still
/// overrides them). One arena: with its default of four per core, each arena kept the 4 MiB
/// extents its threads freed, and a 2 GiB `rbdkit copy` peaked at 153-155 MiB instead of 122-125
/// (a full backup 171-177 instead of 125-128); the threads' caches keep small allocations off
/// the arena's lock.
// SAFETY: jemalloc reads this symbol as a `const char *` to a NUL-terminated string; a
// reference to a byte array is exactly that pointer, to a static that is never written.
#[unsafe(export_name = "malloc_conf")]
static MALLOC_CONF: &[u8; 10] = b"narenas:1\0";

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

fn main() -> ExitCode {
    use clap::FromArgMatches;
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
