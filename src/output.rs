//! Where a copy's raw output goes: a local path (a mounted NFS share too),
//! `nfs://HOST[:PORT]/EXPORT/FILE` through the userspace client, or `-` for stdout as a raw
//! stream; in either format, raw or qcow2 (a local file only). A file appears under its name
//! only when complete; the CLI never looks at the name itself.
use crate::copy::qcow2_out::Qcow2Sink;
use crate::copy::sink_file::FileSink;
use crate::copy::sink_nfs::NfsSink;
use crate::copy::sink_stream::StreamSink;
use crate::copy::Sink;
use crate::disk::qcow2::Compression;
use crate::error::{Error, Result};
use crate::nfs::NfsUrl;
use std::path::Path;

/// The format of an output file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutputFormat {
    /// A raw disk image (sparse where the disk reads zeros).
    #[default]
    Raw,
    /// A qcow2 image (version 3, 64 KiB clusters), its clusters compressed with this.
    Qcow2(Option<Compression>),
}

/// An output file being written.
pub enum OutputFile {
    /// A local path.
    Local(FileSink),
    /// A file on an NFS share, written without a mount (boxed: it holds a runtime and a
    /// connection).
    Nfs(Box<NfsSink>),
    /// Standard output, as a raw stream (holes written as zeros).
    Stdout(StreamSink),
    /// A qcow2 image in a local file (boxed: it holds the cluster map).
    Qcow2(Box<Qcow2Sink<FileSink>>),
}

impl OutputFile {
    /// True when `dest` names a file on an NFS share.
    pub fn is_nfs(dest: &Path) -> bool {
        dest.to_str().is_some_and(|d| d.starts_with("nfs://"))
    }

    /// True when `dest` is `-`: standard output.
    pub fn is_stdout(dest: &Path) -> bool {
        dest.as_os_str() == "-"
    }

    /// Starts the file `dest` in `format`; an existing one is refused unless `overwrite`.
    /// qcow2 goes to a local file only: a stream cannot hold tables that are written last,
    /// and the NFS target takes writes from one thread.
    pub fn create_as(dest: &Path, overwrite: bool, format: OutputFormat) -> Result<OutputFile> {
        let OutputFormat::Qcow2(compression) = format else {
            return Self::create(dest, overwrite);
        };
        if Self::is_stdout(dest) {
            return Err(Error::InvalidInput(
                "-O qcow2 to stdout (-) is not supported: the header and tables of a qcow2 file come first but are known last; write it to a file".into(),
            ));
        }
        if Self::is_nfs(dest) {
            return Err(Error::InvalidInput(format!(
                "-O qcow2 to {}: qcow2 output to nfs:// is not supported; write it to a mounted path of the share or a local file",
                dest.display()
            )));
        }
        let file = FileSink::create(dest, overwrite)?;
        Ok(OutputFile::Qcow2(Box::new(Qcow2Sink::new(
            file,
            compression,
        )?)))
    }

    /// Starts the raw file `dest`; an existing one is refused unless `overwrite`.
    pub fn create(dest: &Path, overwrite: bool) -> Result<OutputFile> {
        if Self::is_stdout(dest) {
            return Ok(OutputFile::Stdout(StreamSink::new(
                Box::new(std::io::stdout()),
                "stdout",
            )));
        }
        match dest.to_str().filter(|_| Self::is_nfs(dest)) {
            Some(url) => Ok(OutputFile::Nfs(Box::new(NfsSink::create(
                &NfsUrl::parse(url)?,
                overwrite,
            )?))),
            None => Ok(OutputFile::Local(FileSink::create(dest, overwrite)?)),
        }
    }

    /// The sink to copy into.
    pub fn sink(&mut self) -> &mut dyn Sink {
        match self {
            OutputFile::Local(s) => s,
            OutputFile::Nfs(s) => s.as_mut(),
            OutputFile::Stdout(s) => s,
            OutputFile::Qcow2(s) => s.as_mut(),
        }
    }

    /// Publishes the finished file under its name.
    pub fn commit(self) -> Result<()> {
        match self {
            OutputFile::Local(s) => s.commit(),
            OutputFile::Nfs(s) => (*s).commit(),
            OutputFile::Stdout(_) => Ok(()),
            OutputFile::Qcow2(s) => s.into_target().commit(),
        }
    }
}
