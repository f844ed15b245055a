//! What a copy reads, opened from what the user named: a file (its format detected from the
//! content and checked through the safety gate) or `-`, a stream whose head decides the same
//! way whether it is a qcow2 image or a streamOptimized VMDK (decoded as they arrive) or raw
//! bytes. Every command that
//! reads an image the user gave (`convert`, `import-raw`, `checksum`) opens it here, so the
//! rules are the same everywhere.
use crate::copy::sink_stream::StreamSink;
use crate::copy::{
    copy_disk, copy_disk_to_qcow2_stream, copy_qcow2_stream, copy_stream, copy_vmdk_stream,
    Control, CopyOptions, CopyStats, Sink,
};
use crate::disk::qcow2::Qcow2Stream;
use crate::disk::vmdk::VmdkStream;
use crate::disk::{decide, detect, open, DiskSource, Format, OpenOptions};
use crate::error::{Error, Result};
use std::io::Read;
use std::path::Path;

/// An opened input.
pub enum Input<'a> {
    /// A random-access disk: a raw or qcow2 file, or an RBD image.
    Disk(Box<dyn DiskSource + 'a>),
    /// A qcow2 image arriving as a stream, its header read and checked. Boxed: it carries the
    /// parsed header inline.
    Qcow2Stream(Box<Qcow2Stream>),
    /// A streamOptimized VMDK arriving as a stream (an OVA's disk), its header and descriptor
    /// read and checked.
    VmdkStream(Box<VmdkStream>),
    /// Raw bytes of unknown length.
    RawStream(Box<dyn Read + Send>),
}

impl Input<'static> {
    /// Opens `path`, or stdin for `-`.
    pub fn open(path: &Path, opts: &OpenOptions) -> Result<Input<'static>> {
        if path.as_os_str() == "-" {
            return Input::from_stream(Box::new(std::io::stdin()), "stdin", opts);
        }
        Ok(Input::Disk(open(path, opts)?))
    }

    /// Decides what the stream `reader` (named `name` in errors) holds from its first
    /// [`detect::HEAD_BYTES`], as for a file, and opens it as that. A stream can never follow
    /// a backing file: a qcow2 stream that names one is refused by its header check.
    pub fn from_stream(
        mut reader: Box<dyn Read + Send>,
        name: &str,
        opts: &OpenOptions,
    ) -> Result<Input<'static>> {
        let mut head = Vec::new();
        (&mut reader)
            .take(detect::HEAD_BYTES as u64)
            .read_to_end(&mut head)
            .map_err(|e| Error::io(format!("read {name}"), e))?;
        let format = decide(
            name,
            &detect::probe_head(&head),
            opts.format,
            opts.trust_declared_raw,
        )?;
        let whole: Box<dyn Read + Send> = Box::new(std::io::Cursor::new(head).chain(reader));
        Ok(match format {
            Format::Qcow2 => Input::Qcow2Stream(Box::new(Qcow2Stream::open(whole, name)?)),
            Format::Raw | Format::Iso => Input::RawStream(whole),
            Format::Vmdk => Input::VmdkStream(Box::new(VmdkStream::open(whole, name)?)),
            Format::Vhd | Format::Vhdx => {
                return Err(Error::bad_image(
                    name,
                    format!(
                        "{} from a stream: not supported (its tables may lie anywhere in the file), save it to a file first",
                        format.name().to_uppercase()
                    ),
                ))
            }
        })
    }
}

impl Input<'_> {
    /// `raw`, `qcow2`, `rbd`, …
    pub fn format_name(&self) -> &'static str {
        match self {
            Input::Disk(d) => d.format_name(),
            Input::Qcow2Stream(_) => "qcow2",
            Input::VmdkStream(_) => "vmdk",
            Input::RawStream(_) => "raw",
        }
    }

    /// The virtual size, when known before the copy (not for a raw stream).
    pub fn virtual_size(&self) -> Option<u64> {
        match self {
            Input::Disk(d) => Some(d.virtual_size()),
            Input::Qcow2Stream(s) => Some(s.virtual_size()),
            Input::VmdkStream(s) => Some(s.virtual_size()),
            Input::RawStream(_) => None,
        }
    }

    /// Copies the whole input into `sink` with the engine.
    pub fn copy_into(
        self,
        sink: &mut dyn Sink,
        opts: &CopyOptions,
        ctl: &Control,
    ) -> Result<CopyStats> {
        match self {
            Input::Disk(d) => copy_disk(d.as_ref(), sink, opts, ctl),
            Input::Qcow2Stream(s) => copy_qcow2_stream(*s, sink, opts, ctl),
            Input::VmdkStream(s) => copy_vmdk_stream(*s, sink, opts, ctl),
            Input::RawStream(r) => copy_stream(r, sink, opts, ctl),
        }
    }

    /// Copies the whole input into `out` as a qcow2 image streamed in one forward pass
    /// ([`copy_disk_to_qcow2_stream`]). Only a disk gives its allocation map before the copy:
    /// a stream (named `shown`) is refused before anything is written.
    pub fn copy_into_qcow2_stream(
        self,
        out: &mut StreamSink,
        shown: &str,
        opts: &CopyOptions,
        ctl: &Control,
    ) -> Result<CopyStats> {
        match self {
            Input::Disk(d) => copy_disk_to_qcow2_stream(d.as_ref(), out, opts, ctl),
            other => Err(Error::InvalidInput(format!(
                "{shown} ({} stream) to stdout as qcow2: a streamed qcow2's tables come before its data, but a stream's allocation map is known only after it; save it to a file first, or write -O raw to stdout",
                other.format_name()
            ))),
        }
    }
}
