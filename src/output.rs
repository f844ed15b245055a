//! Where a copy's raw output goes: a local path (a mounted NFS share too),
//! `nfs://HOST[:PORT]/EXPORT/FILE` through the userspace client, or `-` for stdout as a raw
//! stream. A file appears under its name only when complete; the CLI never looks at the name
//! itself.
use crate::copy::sink_file::FileSink;
use crate::copy::sink_nfs::NfsSink;
use crate::copy::sink_stream::StreamSink;
use crate::copy::Sink;
use crate::error::Result;
use crate::nfs::NfsUrl;
use std::path::Path;

/// An output file being written.
pub enum OutputFile {
    /// A local path.
    Local(FileSink),
    /// A file on an NFS share, written without a mount (boxed: it holds a runtime and a
    /// connection).
    Nfs(Box<NfsSink>),
    /// Standard output, as a raw stream (holes written as zeros).
    Stdout(StreamSink),
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

    /// Starts the file `dest`; an existing one is refused unless `overwrite`.
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
        }
    }

    /// Publishes the finished file under its name.
    pub fn commit(self) -> Result<()> {
        match self {
            OutputFile::Local(s) => s.commit(),
            OutputFile::Nfs(s) => (*s).commit(),
            OutputFile::Stdout(_) => Ok(()),
        }
    }
}
