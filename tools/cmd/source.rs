//! Source-disk flags shared by `convert` and `import-raw`.
use clap::{Args, ValueEnum};
use rbdkit::copy::{Checksum, CopyOptions};
use rbdkit::disk::{FilePolicy, Format, OpenOptions};
use rbdkit::Error;
use std::path::{Path, PathBuf};

/// Source format as given on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum SourceFormat {
    /// qcow2 (v2 or v3).
    Qcow2,
    /// Raw bytes.
    Raw,
    /// VMDK (monolithicSparse, streamOptimized; descriptor files with --allow-backing-files).
    Vmdk,
    /// VHD (qemu's vpc): fixed or dynamic.
    #[value(alias = "vpc")]
    Vhd,
    /// VHDX: fixed or dynamic.
    Vhdx,
    /// An ISO 9660 / UDF disc image, copied as a raw disk (refused unless declared).
    Iso,
}

impl From<SourceFormat> for Format {
    fn from(f: SourceFormat) -> Format {
        match f {
            SourceFormat::Qcow2 => Format::Qcow2,
            SourceFormat::Raw => Format::Raw,
            SourceFormat::Vmdk => Format::Vmdk,
            SourceFormat::Vhd => Format::Vhd,
            SourceFormat::Vhdx => Format::Vhdx,
            SourceFormat::Iso => Format::Iso,
        }
    }
}

/// `--checksum` as given on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ChecksumArg {
    /// A hash tree over the SHA-256 of every 64 KiB block: hashed in parallel, holes of any
    /// size nearly free.
    #[value(name = "sha256-tree")]
    Sha256Tree,
    /// SHA-256 over the SHA-256 of every 64 KiB block (the default before sha256-tree): hashed
    /// in parallel, but every block of a hole still costs a digest.
    #[value(name = "sha256-blocks")]
    Sha256Blocks,
    /// SHA-256 of the whole raw image, as `sha256sum` prints it: one core, every byte.
    Sha256,
    /// No checksum.
    None,
}

impl ChecksumArg {
    /// The engine's setting.
    pub fn kind(self) -> Option<Checksum> {
        match self {
            ChecksumArg::Sha256Tree => Some(Checksum::Sha256Tree),
            ChecksumArg::Sha256Blocks => Some(Checksum::Sha256Blocks),
            ChecksumArg::Sha256 => Some(Checksum::Sha256),
            ChecksumArg::None => None,
        }
    }
}

/// The checksum of a copy that makes one by default (`import-raw`, `export`, `copy`).
#[derive(Args, Clone, Debug)]
pub struct ChecksumFlags {
    /// Checksum of the virtual disk: `sha256-tree` (a hash tree over the SHA-256 of every
    /// 64 KiB block; hashed in parallel, holes nearly free), `sha256-blocks` (the default of
    /// earlier versions), `sha256` (what `sha256sum` of the raw image prints; one core, every
    /// byte, holes included) or `none`.
    #[arg(long, value_enum, default_value = "sha256-tree")]
    pub checksum: ChecksumArg,
    /// Same as `--checksum none`.
    #[arg(long = "no-checksum", conflicts_with = "checksum")]
    pub no_checksum: bool,
}

impl ChecksumFlags {
    /// The engine's setting.
    pub fn kind(&self) -> Option<Checksum> {
        if self.no_checksum {
            None
        } else {
            self.checksum.kind()
        }
    }

    /// The engine's setting for a copy that `verify`s: refused without a checksum.
    pub fn kind_to_verify(&self, verify: bool) -> Result<Option<Checksum>, Error> {
        let kind = self.kind();
        if verify && kind.is_none() {
            return Err(Error::InvalidInput(
                "--verify compares checksums: drop --checksum none (--no-checksum) or --verify"
                    .into(),
            ));
        }
        Ok(kind)
    }
}

/// How an image the user gave is read: its declared format, what it may make us open, and
/// the engine's tuning.
#[derive(Args, Clone, Debug)]
pub struct CopyFlags {
    /// Source format (default: detected from the magic).
    #[arg(long = "source-format", value_enum)]
    pub source_format: Option<SourceFormat>,
    #[command(flatten)]
    pub engine: EngineFlags,
    #[command(flatten)]
    pub safety: SafetyFlags,
}

/// The copy engine's tuning, for every command that copies or reads a disk.
#[derive(Args, Clone, Debug)]
pub struct EngineFlags {
    /// Zero-detection block: all-zero blocks of this size are not written.
    #[arg(long = "sparse-size", default_value = "4K", value_parser = super::parse_size, allow_hyphen_values = true)]
    pub sparse_size: u64,
    /// Read/decode threads (default: one per core, at least 8: reads are I/O-bound).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// What an untrusted image may make rbdkit do: the flags that loosen the safe default.
#[derive(Args, Clone, Debug)]
pub struct SafetyFlags {
    /// Follow the backing files and external data files the image names (refused by
    /// default): only regular files that, after symlinks, lie under the image's own directory
    /// or a --backing-dir; never devices, FIFOs, json: or protocol names; never from `-`.
    #[arg(long)]
    pub allow_backing_files: bool,
    /// With --allow-backing-files: files the image names may also lie under DIR (repeatable).
    #[arg(
        long = "backing-dir",
        value_name = "DIR",
        requires = "allow_backing_files"
    )]
    pub backing_dirs: Vec<PathBuf>,
    /// With --source-format raw: the bytes are a raw disk even if they look like a qcow2,
    /// VMDK or other container (refused otherwise).
    #[arg(long)]
    pub trust_declared_raw: bool,
}

impl CopyFlags {
    /// How to open the source `src` (a path, or `-` for a stream): the declared format and
    /// what the image may make us open, checked.
    pub fn open_options(&self, src: &Path) -> rbdkit::Result<OpenOptions> {
        let format: Option<Format> = self.source_format.map(Into::into);
        let s = &self.safety;
        if s.trust_declared_raw && format != Some(Format::Raw) {
            return Err(Error::InvalidInput(
                "--trust-declared-raw goes with --source-format raw".into(),
            ));
        }
        if s.allow_backing_files && src.as_os_str() == "-" {
            return Err(Error::InvalidInput(
                "--allow-backing-files: an image read from a stream (-) can never follow backing or data files; pass the file path".into(),
            ));
        }
        if s.allow_backing_files && src.to_str().is_some_and(|p| p.starts_with("gluster://")) {
            return Err(Error::InvalidInput(format!(
                "--allow-backing-files with {}: an image on a GlusterFS volume can never follow backing or data files (the safety gate checks only files of this host); copy the chain to a local directory, or drop the flag",
                src.display()
            )));
        }
        let files = if s.allow_backing_files {
            FilePolicy::allow(&s.backing_dirs)?
        } else {
            FilePolicy::refuse()
        };
        Ok(OpenOptions {
            format,
            trust_declared_raw: s.trust_declared_raw,
            files,
        })
    }
}

impl CopyFlags {
    /// Checked engine options with chunks of `chunk_size`, computing `checksum` if any.
    pub fn copy_options(
        &self,
        chunk_size: u64,
        checksum: Option<Checksum>,
    ) -> rbdkit::Result<CopyOptions> {
        self.engine.copy_options(chunk_size, checksum)
    }
}

impl EngineFlags {
    /// Checked engine options with chunks of `chunk_size`, computing `checksum` if any.
    pub fn copy_options(
        &self,
        chunk_size: u64,
        checksum: Option<Checksum>,
    ) -> rbdkit::Result<CopyOptions> {
        if !self.sparse_size.is_power_of_two() || !(512..=chunk_size).contains(&self.sparse_size) {
            return Err(Error::InvalidInput(format!(
                "--sparse-size {}: must be a power of two between 512 and the object size",
                self.sparse_size
            )));
        }
        let mut o = CopyOptions::default();
        if let Some(t) = self.threads {
            o.threads = t.clamp(1, 256);
        }
        o.chunk_size = chunk_size;
        o.sparse_size = self.sparse_size;
        o.checksum = checksum;
        Ok(o)
    }
}
