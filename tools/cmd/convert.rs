//! `rbdkit convert SRC DEST`: any image rbdkit reads to a sparse raw file, byte-identical to
//! `qemu-img convert -O raw`, or to a qcow2 file (`-O qcow2`, compressed with `--compress`),
//! published atomically under DEST; or to stdout, raw or qcow2 (from a file, not a stream).
use crate::global::Global;
use clap::Args;
use rbdkit::copy::sink_file::Writeback;
use rbdkit::copy::{checksum_disk, Control};
use rbdkit::input::Input;
use rbdkit::output::{OutputFile, OutputFormat};
use rbdkit::units::format_size;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;

/// Arguments of `rbdkit convert`.
#[derive(Args)]
pub struct ConvertArgs {
    /// Source image (qcow2 or raw): a path, `gluster://HOST[:PORT]/VOLUME/PATH` (raw or qcow2
    /// on a GlusterFS volume, read through libgfapi), or `-` for stdin (a qcow2 stream is
    /// decoded as it arrives).
    pub src: PathBuf,
    /// Destination file (raw and sparse, or qcow2 with -O qcow2), a path,
    /// `nfs://HOST[:PORT]/EXPORT/FILE` (a Cinder NFS volume, written through a userspace NFSv3
    /// client without mounting the share), `gluster://HOST[:PORT]/VOLUME/PATH` (a Cinder
    /// GlusterFS volume, written through libgfapi without a mount), or `-`
    /// for stdout as a raw stream (not from a qcow2 stream, whose data arrives out of order)
    /// or, with -O qcow2, as an uncompressed qcow2 stream (from a file only).
    pub dest: PathBuf,
    /// Replace DEST if it exists.
    #[arg(long)]
    pub overwrite: bool,
    #[command(flatten)]
    pub output: super::outfmt::OutputFlags,
    /// Also compute a checksum of the virtual disk: `sha256-tree` (what `import-raw` prints by
    /// default), `sha256-blocks`, `sha256` (what `sha256sum DEST` prints) or `none`.
    #[arg(long, value_enum, default_value = "none")]
    pub checksum: super::source::ChecksumArg,
    #[command(flatten)]
    pub copy: super::source::CopyFlags,
}

/// Converts.
pub fn run(a: ConvertArgs, g: &Global) -> rbdkit::Result<ExitCode> {
    let to_stdout = OutputFile::is_stdout(&a.dest);
    if to_stdout && std::io::stdout().is_terminal() {
        return Err(rbdkit::Error::InvalidInput(format!(
            "convert {} -: stdout is a terminal; redirect it (> FILE, | CMD) or name a file",
            a.src.display()
        )));
    }
    let out_format = a.output.format()?;
    OutputFile::check(&a.dest, out_format)?;
    let cancel = crate::cancel::flag();
    let source = Input::open(&a.src, &a.copy.open_options(&a.src)?)?;
    let format = source.format_name();
    let kind = a.checksum.kind();
    let opts = a.copy.copy_options(4 << 20, kind)?;
    let local_src = (a.src.as_os_str() != "-").then_some(a.src.as_path());
    let writeback = Writeback::for_copy(local_src, &a.dest);
    let mut out = OutputFile::create_as(&a.dest, a.overwrite, out_format, writeback)?;
    let total = source.virtual_size().unwrap_or(0);
    let bar = crate::progress::bytes_bar(total, "converting", !g.no_progress);
    let ctl = Control {
        progress: &|done, _| bar.set_position(done),
        cancel: &cancel,
    };
    let shown = if a.src.as_os_str() == "-" {
        "stdin".to_string()
    } else {
        a.src.display().to_string()
    };
    let stats = out.copy_input(source, &shown, &opts, &ctl);
    bar.finish_and_clear();
    let stats = match stats {
        Err(e) if cancel.load(Ordering::Relaxed) => {
            drop(out);
            return Err(rbdkit::Error::Interrupted(format!(
                "convert to {} stopped; nothing was written under that name ({e})",
                a.dest.display()
            )));
        }
        other => other?,
    };
    let local = !OutputFile::is_remote(&a.dest) && !to_stdout;
    out.commit()?;
    let mut stats = stats;
    if stats.checksum_fell_back && local {
        // A qcow2 stream's data came too far out of guest order to hash on the way: hash
        // the file written (on a share it is not read back; the checksum stays unknown).
        let written: Box<dyn rbdkit::disk::DiskSource> = match out_format {
            OutputFormat::Raw => Box::new(rbdkit::disk::raw::RawFile::open(&a.dest)?),
            OutputFormat::Qcow2(_) => rbdkit::disk::open(
                &a.dest,
                &rbdkit::disk::OpenOptions {
                    format: Some(rbdkit::disk::Format::Qcow2),
                    ..Default::default()
                },
            )?,
        };
        stats.checksum = Some(checksum_disk(written.as_ref(), &opts, &ctl)?);
    }
    let report = serde_json::json!({
                "source": a.src.display().to_string(),
                "source_format": format,
                "dest": a.dest.display().to_string(),
                "virtual_size": stats.virtual_size,
                "bytes_written": stats.bytes_written,
                "bytes_zero_skipped": stats.bytes_zero_skipped,
                "elapsed_s": stats.elapsed_s,
                "checksum_algorithm": kind,
                "checksum": stats.checksum,
    });
    let summary = format!(
        "converted {} ({}, {}) to {}: {} written, {} left sparse, {:.2} s{}",
        a.src.display(),
        format,
        format_size(stats.virtual_size),
        a.dest.display(),
        format_size(stats.bytes_written),
        format_size(stats.bytes_zero_skipped),
        stats.elapsed_s,
        kind.zip(stats.checksum)
            .map(|(k, s)| format!(", {} {s}", k.name()))
            .unwrap_or_default()
    );
    // With the data on stdout, the report goes to stderr.
    match (to_stdout, g.json()) {
        (false, true) => super::print_json(g, &report)?,
        (false, false) => outln!("{summary}"),
        (true, true) => eprintln!("{report}"),
        (true, false) => eprintln!("{summary}"),
    }
    Ok(ExitCode::SUCCESS)
}
