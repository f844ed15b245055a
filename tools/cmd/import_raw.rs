//! `rbdkit import-raw SRC POOL/IMAGE`: qcow2 or raw (file or `-` for stdin) straight into a new
//! RBD image — parallel decode, zero skipping, many writes in flight, atomic publication,
//! checksum, optional read-back verification and Glance-style snapshot.
use crate::global::Global;
use clap::Args;
use rbdkit::ceph::ImageSpec;
use rbdkit::copy::Control;
use rbdkit::import::{import, ImportReport, ImportRequest};
use rbdkit::input::Input;
use rbdkit::units::format_size;
use rbdkit::Error;
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `rbdkit import-raw`.
#[derive(Args)]
pub struct ImportArgs {
    /// Source image (qcow2 or raw): a path, `gluster://HOST[:PORT]/VOLUME/PATH` (a GlusterFS
    /// volume's file, read through libgfapi without a mount), or `-` for stdin.
    pub src: PathBuf,
    /// The new image, POOL[/NAMESPACE]/IMAGE (never overwritten).
    pub dest: ImageSpec,
    /// Make the image this big if the source is smaller (never smaller than the virtual size).
    /// A bare number is MiB, as in `rbd create --size`.
    #[arg(long, value_parser = super::parse_image_size, allow_hyphen_values = true)]
    pub size: Option<u64>,
    #[command(flatten)]
    pub publish: super::publish::PublishFlags,
    #[command(flatten)]
    pub checksum: super::source::ChecksumFlags,
    #[command(flatten)]
    pub copy: super::source::CopyFlags,
    #[command(flatten)]
    pub layout: super::ImageLayout,
}

#[derive(Serialize)]
struct Output {
    #[serde(flatten)]
    report: ImportReport,
    peak_rss_bytes: Option<u64>,
}

/// Imports.
pub fn run(a: ImportArgs, g: &Global) -> rbdkit::Result<ExitCode> {
    a.dest.forbid_snap()?;
    let cancel = crate::cancel::flag();
    let create = a.layout.create_options(false)?;
    // The engine takes the object size of the image it creates; this one only bounds
    // --sparse-size.
    let chunk = 1u64 << create.order.unwrap_or(22);
    let checksum = a.checksum.kind_to_verify(a.publish.verify)?;
    let copy = a.copy.copy_options(chunk, checksum)?;
    let open = a.copy.open_options(&a.src)?;

    // Open the source before touching the cluster, so bad input fails fast and leaves nothing.
    // A qcow2 stream's header is read now; what comes before its tables is spilled to a file
    // in TMPDIR as it arrives.
    let source = Input::open(&a.src, &open)?;
    let source_format = source.format_name().to_string();

    let req = ImportRequest {
        dest: a.dest.clone(),
        size: a.size,
        create,
        copy,
        concurrency: a.publish.concurrency,
        snap: a.publish.snap.clone(),
        protect: a.publish.protect,
        verify: a.publish.verify,
        source_format,
    };
    let cluster = g.connect_for_bulk_io()?;
    let total = source.virtual_size().unwrap_or(0);
    let bar = crate::progress::bytes_bar(total, "importing", !g.no_progress);
    let ctl = Control {
        progress: &|done, _| bar.set_position(done),
        cancel: &cancel,
    };
    let result = import(&cluster, &req, source, &ctl);
    bar.finish_and_clear();
    let report = match result {
        Ok(r) => r,
        Err(rbdkit::Error::Interrupted(m)) => {
            return Err(Error::Interrupted(format!(
                "import into {} stopped by a signal: {m}",
                a.dest
            )))
        }
        Err(e) => return Err(e),
    };
    let out = Output {
        report,
        peak_rss_bytes: peak_rss(),
    };
    if g.json() {
        super::print_json(g, &out)?;
    } else {
        let r = &out.report;
        outln!(
            "imported {} ({}) into {}",
            a.src.display(),
            r.source_format,
            r.image
        );
        outln!(
            "  virtual size {}, image size {}, written {}, skipped as zero {}",
            format_size(r.virtual_size),
            format_size(r.image_size),
            format_size(r.bytes_written),
            format_size(r.bytes_zero_skipped)
        );
        outln!(
            "  {:.2} s, {:.1} MiB/s, peak RSS {}",
            r.elapsed_s,
            r.mib_per_s,
            out.peak_rss_bytes.map_or("?".into(), format_size)
        );
        outln!("  features: {}", r.features.join(", "));
        if let Some(n) = r.bytes_spilled {
            outln!(
                "  qcow2 stream: {} arrived before its tables and went through a temporary file",
                format_size(n)
            );
        }
        super::publish::print_checksum_and_snap(r);
    }
    Ok(ExitCode::SUCCESS)
}

/// Peak resident set size of this process (VmHWM), bytes.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
