//! `rbdkit export POOL/IMAGE[@SNAP] DEST|-`: an RBD image or snapshot out to a sparse raw file
//! (published atomically; an NFS share's mounted path makes a Cinder NFS volume), a qcow2 file
//! (`-O qcow2`, compressed with `--compress`), or to stdout as a raw stream (a Glance or Nova
//! download) or an uncompressed qcow2 stream (`-O qcow2`: a Glance upload of a Nova snapshot
//! without a temporary file), reading only the objects that exist, in parallel.
use crate::global::Global;
use clap::Args;
use rbdkit::ceph::{Image, ImageSpec};
use rbdkit::copy::sink_file::Writeback;
use rbdkit::copy::{Control, CopyStats};
use rbdkit::disk::rbd::RbdDisk;
use rbdkit::output::{OutputFile, OutputFormat};
use rbdkit::units::format_size;
use rbdkit::Error;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;

/// The cluster size of the qcow2 files rbdkit writes.
const QCOW2_CLUSTER: u64 = 1 << rbdkit::copy::qcow2_out::layout::CLUSTER_BITS;

/// Arguments of `rbdkit export`.
#[derive(Args)]
pub struct ExportArgs {
    /// The image or snapshot to read, POOL[/NAMESPACE]/IMAGE[@SNAP] (a snapshot gives a
    /// consistent copy of an image in use).
    pub src: ImageSpec,
    /// A raw file (sparse; qcow2 with -O qcow2), published under this name only when complete:
    /// a path, `nfs://HOST[:PORT]/EXPORT/FILE` (a Cinder NFS volume, written through a
    /// userspace NFSv3 client without mounting the share) or `gluster://HOST[:PORT]/VOLUME/PATH`
    /// (a Cinder GlusterFS volume, through libgfapi without a mount); or `-` for stdout (raw,
    /// or qcow2 uncompressed).
    pub dest: PathBuf,
    /// Replace DEST if it exists.
    #[arg(long)]
    pub overwrite: bool,
    #[command(flatten)]
    pub output: super::outfmt::OutputFlags,
    #[command(flatten)]
    pub checksum: super::source::ChecksumFlags,
    #[command(flatten)]
    pub engine: super::source::EngineFlags,
}

/// Exports.
pub fn run(a: ExportArgs, g: &Global) -> rbdkit::Result<ExitCode> {
    let to_stdout = a.dest.as_os_str() == "-";
    if to_stdout && std::io::stdout().is_terminal() {
        return Err(Error::InvalidInput(format!(
            "export {} -: stdout is a terminal; redirect it (> FILE, | CMD) or name a file",
            a.src
        )));
    }
    let format = a.output.format()?;
    // Refused before connecting: the same one line as for any other output.
    OutputFile::check(&a.dest, format)?;
    let kind = a.checksum.kind();
    let cluster = g.connect_for_bulk_io()?;
    let io = cluster.ioctx(&a.src.pool, a.src.namespace.as_deref())?;
    let image = Image::open_read_only(&io, &a.src.image, a.src.snap.as_deref())?;
    let info = image.stat()?;
    // Pieces of whole qcow2 clusters, however small the objects.
    let chunk = match format {
        OutputFormat::Raw => info.object_size,
        OutputFormat::Qcow2(_) => info.object_size.max(QCOW2_CLUSTER),
    };
    let opts = a.engine.copy_options(chunk, kind)?;
    let disk = RbdDisk::new(&image, info.size);
    let cancel = crate::cancel::flag();
    let bar = crate::progress::bytes_bar(info.size, "exporting", !g.no_progress);
    let ctl = Control {
        progress: &|done, _| bar.set_position(done),
        cancel: &cancel,
    };
    // The data comes over the network: the local disk is free to write behind the copy.
    let mut out = OutputFile::create_as(&a.dest, a.overwrite, format, Writeback::Early)?;
    let stats: rbdkit::Result<CopyStats> = out
        .copy_disk(&disk, &opts, &ctl)
        .and_then(|st| out.commit().map(|()| st));
    bar.finish_and_clear();
    let stats = match stats {
        Err(e) if cancel.load(Ordering::Relaxed) => {
            return Err(Error::Interrupted(format!(
                "export of {} stopped; nothing was written under {} ({e})",
                a.src,
                a.dest.display()
            )))
        }
        other => other?,
    };
    let report = serde_json::json!({
        "image": a.src.to_string(),
        "dest": a.dest.display().to_string(),
        "virtual_size": stats.virtual_size,
        "bytes_read": stats.bytes_written,
        "bytes_zero_skipped": stats.bytes_zero_skipped,
        "elapsed_s": stats.elapsed_s,
        "checksum_algorithm": kind,
        "checksum": stats.checksum,
    });
    // With the data on stdout, the report goes to stderr.
    match (to_stdout, g.json()) {
        (false, true) => super::print_json(g, &report)?,
        (false, false) => outln!("{}", summary(&a, &stats, kind)),
        (true, true) => eprintln!("{report}"),
        (true, false) => eprintln!("{}", summary(&a, &stats, kind)),
    }
    Ok(ExitCode::SUCCESS)
}

fn summary(a: &ExportArgs, st: &CopyStats, kind: Option<rbdkit::copy::Checksum>) -> String {
    format!(
        "exported {} ({}) to {}: {} of data, {} of zeros, {:.2} s{}",
        a.src,
        format_size(st.virtual_size),
        if a.dest.as_os_str() == "-" {
            "stdout".to_string()
        } else {
            a.dest.display().to_string()
        },
        format_size(st.bytes_written),
        format_size(st.bytes_zero_skipped),
        st.elapsed_s,
        kind.zip(st.checksum.as_ref())
            .map(|(k, s)| format!(", {} {s}", k.name()))
            .unwrap_or_default()
    )
}
