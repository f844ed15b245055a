//! The output format flags of `convert` and `export` (`-O raw|qcow2`, `--compress`), checked
//! in one place: a combination that makes no sense is refused before anything is opened.
use clap::{Args, ValueEnum};
use rbdkit::disk::qcow2::Compression;
use rbdkit::output::OutputFormat;
use rbdkit::Error;

/// `-O` as given on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// A raw disk image, sparse.
    Raw,
    /// qcow2 version 3, 64 KiB clusters; clusters reading as zeros are not stored.
    Qcow2,
}

/// `--compress` as given on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CompressArg {
    /// Raw deflate, what `qemu-img convert -c` writes; every qcow2 reader reads it.
    Zlib,
    /// zstd (qcow2 `compression_type` zstd, qemu 5.1 or later): faster, and smaller.
    Zstd,
}

/// How the output is written.
#[derive(Args, Clone, Debug)]
pub struct OutputFlags {
    /// Output format: `raw` or `qcow2`.
    #[arg(short = 'O', long = "output-format", value_enum, default_value = "raw")]
    pub output_format: FormatArg,
    /// With -O qcow2: compress the clusters with `zlib` or `zstd`, in parallel on the decode
    /// threads (a cluster that does not shrink is stored as it is). `-c` is --conf, as in rbd.
    #[arg(long, value_enum, value_name = "ALGORITHM")]
    pub compress: Option<CompressArg>,
}

impl OutputFlags {
    /// The checked output format.
    pub fn format(&self) -> rbdkit::Result<OutputFormat> {
        let compression = self.compress.map(|c| match c {
            CompressArg::Zlib => Compression::Deflate,
            CompressArg::Zstd => Compression::Zstd,
        });
        match (self.output_format, compression) {
            (FormatArg::Raw, Some(_)) => Err(Error::InvalidInput(
                "--compress goes with -O qcow2: a raw image cannot hold compressed clusters".into(),
            )),
            (FormatArg::Raw, None) => Ok(OutputFormat::Raw),
            (FormatArg::Qcow2, c) => Ok(OutputFormat::Qcow2(c)),
        }
    }
}
