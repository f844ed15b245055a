//! Flags and report lines of the commands that write a new image and publish it atomically
//! (`import-raw`, `copy`).
use clap::Args;
use rbdkit::import::ImportReport;

/// How the new image is written and published.
#[derive(Args, Clone, Debug)]
pub struct PublishFlags {
    /// librbd writes in flight.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Snapshot the finished image (Glance's layout: `--snap snap --protect`).
    #[arg(long)]
    pub snap: Option<String>,
    /// Protect the snapshot (clone v1 parents need it).
    #[arg(long, requires = "snap")]
    pub protect: bool,
    /// Read the image back (in parallel) and compare checksums before publishing it.
    #[arg(long)]
    pub verify: bool,
}

/// The report's checksum and snapshot lines.
pub fn print_checksum_and_snap(r: &ImportReport) {
    if let (Some(k), Some(s)) = (r.checksum_algorithm, &r.checksum) {
        let how = if r.verified == Some(true) {
            " (verified by reading the image back)"
        } else if r.checksum_read_back {
            " (read back from the image: the stream's data came too far out of guest order to hash on the way)"
        } else {
            ""
        };
        outln!("  {} {s}{how}", k.name());
    }
    if let Some(s) = &r.snap {
        let p = if r.protected { " (protected)" } else { "" };
        outln!("  snapshot {}@{s}{p}", r.image);
    }
}
