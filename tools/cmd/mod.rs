//! One module per subcommand. Each declares its clap `Args` and a `run` that calls the library
//! and renders the result (plain text or one JSON object on stdout).
use crate::global::Global;
use clap::Subcommand;
use std::process::ExitCode;

#[cfg(feature = "rbd")]
pub mod backup;
pub mod bench;
pub mod checksum;
#[cfg(feature = "rbd")]
pub mod cleanup;
#[cfg(feature = "rbd")]
pub mod clone;
pub mod convert;
#[cfg(feature = "rbd")]
pub mod copy;
#[cfg(feature = "rbd")]
pub mod create;
#[cfg(feature = "rbd")]
mod dest;
pub mod docs;
#[cfg(feature = "rbd")]
pub mod export;
#[cfg(feature = "rbd")]
pub mod import_raw;
#[cfg(feature = "rbd")]
pub mod info;
pub mod inspect;
#[cfg(feature = "rbd")]
mod layout;
mod outfmt;
pub mod pg;
#[cfg(feature = "rbd")]
mod publish;
#[cfg(feature = "rbd")]
pub mod restore;
#[cfg(feature = "rbd")]
pub mod rm;
mod source;

#[cfg(feature = "rbd")]
pub use layout::ImageLayout;

/// The subcommands.
#[derive(Subcommand)]
pub enum Command {
    /// Stream a qcow2 or raw image (file or `-`) into a new RBD image, atomically.
    #[cfg(feature = "rbd")]
    #[command(name = "import-raw")]
    ImportRaw(import_raw::ImportArgs),
    /// Convert qcow2 (or raw) to a sparse raw file, byte-identical to `qemu-img convert -O raw`.
    Convert(convert::ConvertArgs),
    /// Export an image or snapshot to a sparse raw file or to stdout, reading only what exists.
    #[cfg(feature = "rbd")]
    Export(export::ExportArgs),
    /// Copy an image or snapshot into a new image, in this or another pool or cluster.
    #[cfg(feature = "rbd")]
    Copy(copy::CopyArgs),
    /// What an image is (any container format) and whether it is safe to import, from its metadata.
    Inspect(inspect::InspectArgs),
    /// The checksum `import-raw` prints, of an image or snapshot (read back) or of a file.
    Checksum(checksum::ChecksumArgs),
    /// Create a format-2 image (layering only unless rbd_default_features is set: any kernel client maps it).
    #[cfg(feature = "rbd")]
    Create(create::CreateArgs),
    /// Make volumes from POOL/IMAGE@SNAP as COW clones (resize, depth limit, flatten, many at once).
    #[cfg(feature = "rbd")]
    Clone(clone::CloneArgs),
    /// Show an image: size, features, parent, overlap, clone depth, snapshots, krbd compatibility.
    #[cfg(feature = "rbd")]
    Info(info::InfoArgs),
    /// Remove an image (refuses one with snapshots or children).
    #[cfg(feature = "rbd")]
    Rm(rm::RmArgs),
    /// Back up a volume into a backup pool, Cinder's way (full, then incremental); `backup ls`.
    #[cfg(feature = "rbd")]
    Backup(backup::BackupArgs),
    /// Restore a backup (Cinder's or rbdkit's) into a new image, over one (--force), or a file.
    #[cfg(feature = "rbd")]
    Restore(restore::RestoreArgs),
    /// Find and remove temporary images left by killed imports.
    #[cfg(feature = "rbd")]
    Cleanup(cleanup::CleanupArgs),
    /// pg_num and capacity planning, offline (`plan`) and against a live cluster (`check`).
    #[command(subcommand)]
    Pg(pg::PgCommand),
    /// I/O benchmark of RBD images, files and NFS shares, side by side.
    Bench(bench::BenchArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions(docs::CompletionsArgs),
    /// Print the manual page (roff) of rbdkit, or of one command, to stdout.
    Man(docs::ManArgs),
}

/// Runs one subcommand; the error, if any, is printed by `main` as one line.
pub fn run(command: Command, global: &Global) -> rbdkit::Result<ExitCode> {
    match command {
        #[cfg(feature = "rbd")]
        Command::ImportRaw(a) => import_raw::run(a, global),
        Command::Convert(a) => convert::run(a, global),
        #[cfg(feature = "rbd")]
        Command::Export(a) => export::run(a, global),
        #[cfg(feature = "rbd")]
        Command::Copy(a) => copy::run(a, global),
        Command::Checksum(a) => checksum::run(a, global),
        Command::Inspect(a) => inspect::run(a, global),
        #[cfg(feature = "rbd")]
        Command::Backup(a) => backup::run(a, global),
        #[cfg(feature = "rbd")]
        Command::Restore(a) => restore::run(a, global),
        #[cfg(feature = "rbd")]
        Command::Cleanup(a) => cleanup::run(a, global),
        #[cfg(feature = "rbd")]
        Command::Create(a) => create::run(a, global),
        #[cfg(feature = "rbd")]
        Command::Clone(a) => clone::run(a, global),
        #[cfg(feature = "rbd")]
        Command::Info(a) => info::run(a, global),
        #[cfg(feature = "rbd")]
        Command::Rm(a) => rm::run(a, global),
        Command::Pg(c) => pg::run(c, global),
        Command::Bench(a) => bench::run(a, global),
        Command::Completions(a) => docs::completions(a),
        Command::Man(a) => docs::man(a),
    }
}

/// Prints a serializable result as one JSON object on stdout: on one line, or indented with
/// `--pretty-format`, as `rbd --format json [--pretty-format]` prints.
pub fn print_json<T: serde::Serialize>(g: &crate::global::Global, value: &T) -> rbdkit::Result<()> {
    let text = if g.pretty_format {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    }
    .map_err(|e| rbdkit::Error::Other(format!("cannot render JSON: {e}")))?;
    outln!("{text}");
    Ok(())
}

/// clap value parser for byte sizes (`--object-size`, `--sparse-size`, `--bs`): a bare number is
/// bytes, as in rbd's options of the same kind.
pub fn parse_size(s: &str) -> Result<u64, String> {
    rbdkit::units::parse_size(s).map_err(|e| e.to_string())
}

/// [`parse_size`] for amounts where 0 would mean nothing to do (`--io-total`, `--raw-capacity`).
pub fn parse_nonzero_size(s: &str) -> Result<u64, String> {
    match parse_size(s)? {
        0 => Err(format!("invalid size '{s}': must be above 0")),
        n => Ok(n),
    }
}

/// clap value parser for image sizes (`--size`): a bare number is MiB, as in `rbd create`.
pub fn parse_image_size(s: &str) -> Result<u64, String> {
    rbdkit::units::parse_image_size(s).map_err(|e| e.to_string())
}
