//! Where a copy's output goes: a local path (a mounted NFS share too),
//! `nfs://HOST[:PORT]/EXPORT/FILE` through the userspace client,
//! `gluster://HOST[:PORT]/VOLUME/PATH` through libgfapi, or `-` for stdout as a stream; in either format, raw or qcow2 (a local file, or stdout uncompressed). A file
//! appears under its name only when complete; the CLI never looks at the name itself.
use crate::copy::qcow2_out::Qcow2Sink;
use crate::copy::sink_file::{FileSink, Writeback};
#[cfg(feature = "gluster")]
use crate::copy::sink_gluster::GlusterSink;
use crate::copy::sink_nfs::NfsSink;
use crate::copy::sink_stream::StreamSink;
use crate::copy::{copy_disk, copy_disk_to_qcow2_stream, Control, CopyOptions, CopyStats, Sink};
use crate::disk::qcow2::Compression;
use crate::disk::DiskSource;
use crate::error::{Error, Result};
use crate::input::Input;
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
    /// A file on a GlusterFS volume, written through libgfapi without a mount.
    #[cfg(feature = "gluster")]
    Gluster(Box<GlusterSink>),
    /// Standard output, as a raw stream (holes written as zeros).
    Stdout(StreamSink),
    /// A qcow2 image in a local file (boxed: it holds the cluster map).
    Qcow2(Box<Qcow2Sink<FileSink>>),
    /// Standard output, as a qcow2 image streamed: its tables are laid out from the source's
    /// allocation map, so it is copied into with [`OutputFile::copy_disk`] or
    /// [`OutputFile::copy_input`].
    Qcow2Stdout(StreamSink),
}

impl OutputFile {
    /// True when `dest` names a file on an NFS share.
    pub fn is_nfs(dest: &Path) -> bool {
        dest.to_str().is_some_and(|d| d.starts_with("nfs://"))
    }

    /// True when `dest` names a file on a GlusterFS volume.
    pub fn is_gluster(dest: &Path) -> bool {
        dest.to_str().is_some_and(|d| d.starts_with("gluster://"))
    }

    /// True when `dest` is a file reached through a network client (`nfs://`, `gluster://`),
    /// not a path of this host.
    pub fn is_remote(dest: &Path) -> bool {
        Self::is_nfs(dest) || Self::is_gluster(dest)
    }

    /// True when `dest` is `-`: standard output.
    pub fn is_stdout(dest: &Path) -> bool {
        dest.as_os_str() == "-"
    }

    /// Refuses the pairings of `dest` and `format` that cannot work, before anything is
    /// opened: qcow2 to a local file or uncompressed to stdout only (compressed sizes are
    /// known after the data, a stream's tables come before it; the qcow2 writer writes from the
    /// decode threads into a local file, which a network target is not); gluster:// in a build
    /// without GlusterFS support.
    pub fn check(dest: &Path, format: OutputFormat) -> Result<()> {
        match format {
            OutputFormat::Qcow2(Some(_)) if Self::is_stdout(dest) => Err(Error::InvalidInput(
                "--compress with - (stdout): compressed sizes are known only after the data, but a streamed qcow2's tables come before it; write to a file, or pipe a raw stream (-O raw)".into(),
            )),
            OutputFormat::Qcow2(_) if Self::is_remote(dest) => Err(Error::InvalidInput(format!(
                "-O qcow2 to {}: qcow2 output to nfs:// or gluster:// is not supported; write it to a mounted path of the share or a local file",
                dest.display()
            ))),
            _ if Self::is_gluster(dest) && !cfg!(feature = "gluster") => {
                Err(Error::InvalidInput(format!(
                    "{}: this build has no GlusterFS support (feature gluster)",
                    dest.display()
                )))
            }
            _ => Ok(()),
        }
    }

    /// Starts the file `dest` in `format`; an existing one is refused unless `overwrite`.
    /// Pairings [`OutputFile::check`] refuses are refused here too. A local file's pages go to
    /// its disk as `writeback` says ([`Writeback::for_copy`] chooses).
    pub fn create_as(
        dest: &Path,
        overwrite: bool,
        format: OutputFormat,
        writeback: Writeback,
    ) -> Result<OutputFile> {
        Self::check(dest, format)?;
        let OutputFormat::Qcow2(compression) = format else {
            return Self::create(dest, overwrite, writeback);
        };
        if Self::is_stdout(dest) {
            return Ok(OutputFile::Qcow2Stdout(Self::stdout()));
        }
        let file = FileSink::create_with(dest, overwrite, writeback)?;
        Ok(OutputFile::Qcow2(Box::new(Qcow2Sink::new(
            file,
            compression,
        )?)))
    }

    fn stdout() -> StreamSink {
        StreamSink::new(Box::new(std::io::stdout()), "stdout")
    }

    /// Starts the raw file `dest`; an existing one is refused unless `overwrite`.
    pub fn create(dest: &Path, overwrite: bool, writeback: Writeback) -> Result<OutputFile> {
        if Self::is_stdout(dest) {
            return Ok(OutputFile::Stdout(Self::stdout()));
        }
        #[cfg(feature = "gluster")]
        if let Some(url) = dest.to_str().filter(|_| Self::is_gluster(dest)) {
            let url = crate::gluster::GlusterUrl::parse(url)?;
            return Ok(OutputFile::Gluster(Box::new(GlusterSink::create(
                &url, overwrite,
            )?)));
        }
        Self::check(dest, OutputFormat::Raw)?;
        match dest.to_str().filter(|_| Self::is_nfs(dest)) {
            Some(url) => Ok(OutputFile::Nfs(Box::new(NfsSink::create(
                &NfsUrl::parse(url)?,
                overwrite,
            )?))),
            None => Ok(OutputFile::Local(FileSink::create_with(
                dest, overwrite, writeback,
            )?)),
        }
    }

    /// Copies the disk `src` into the file.
    pub fn copy_disk(
        &mut self,
        src: &dyn DiskSource,
        opts: &CopyOptions,
        ctl: &Control,
    ) -> Result<CopyStats> {
        match self.target() {
            Target::Sink(sink) => copy_disk(src, sink, opts, ctl),
            Target::Qcow2Stream(out) => copy_disk_to_qcow2_stream(src, out, opts, ctl),
        }
    }

    /// Copies `input` (named `shown` in errors) into the file.
    pub fn copy_input(
        &mut self,
        input: Input,
        shown: &str,
        opts: &CopyOptions,
        ctl: &Control,
    ) -> Result<CopyStats> {
        match self.target() {
            Target::Sink(sink) => input.copy_into(sink, opts, ctl),
            Target::Qcow2Stream(out) => input.copy_into_qcow2_stream(out, shown, opts, ctl),
        }
    }

    fn target(&mut self) -> Target<'_> {
        match self {
            OutputFile::Local(s) => Target::Sink(s),
            OutputFile::Nfs(s) => Target::Sink(s.as_mut()),
            #[cfg(feature = "gluster")]
            OutputFile::Gluster(s) => Target::Sink(s.as_mut()),
            OutputFile::Stdout(s) => Target::Sink(s),
            OutputFile::Qcow2(s) => Target::Sink(s.as_mut()),
            OutputFile::Qcow2Stdout(s) => Target::Qcow2Stream(s),
        }
    }

    /// Publishes the finished file under its name.
    pub fn commit(self) -> Result<()> {
        match self {
            OutputFile::Local(s) => s.commit(),
            OutputFile::Nfs(s) => (*s).commit(),
            #[cfg(feature = "gluster")]
            OutputFile::Gluster(s) => (*s).commit(),
            OutputFile::Stdout(_) | OutputFile::Qcow2Stdout(_) => Ok(()),
            OutputFile::Qcow2(s) => s.into_target().commit(),
        }
    }
}

/// What a copy writes into: a sink, or a stream a qcow2 image is laid out for.
enum Target<'a> {
    Sink(&'a mut dyn Sink),
    Qcow2Stream(&'a mut StreamSink),
}
