//! Recognises every disk-image container rbdkit knows of from the file's content, never from its
//! name: qcow2, VMDK (sparse extents and descriptor files), VHD, VHDX, VDI, QED, LUKS and ISO
//! 9660/UDF, plus the GPT/MBR partition table of a raw disk. It reports what it found (format,
//! virtual size, subformat, cluster size, named files) and why the image is unsafe by the rules
//! of OpenStack's `format_inspector`, so a caller can refuse what it will not read.
//!
//! Uploaded images are hostile, so this module must not: open any file an image names (backing
//! file, parent, extent), allocate or read more than its fixed caps whatever the image claims,
//! trust an offset or size before checking it against the file, panic on any input, or print
//! anything (names read from the image are handed back raw; callers escape them). It does not
//! read disks either: the readers validate the rest of their format.
mod iso;
mod luks;
mod partition;
mod qcow2;
mod qed;
mod vdi;
mod vhd;
mod vhdx;
mod vmdk;

pub use partition::PartitionTable;

use crate::disk::qcow2::ByteSource;
use crate::error::{Error, Result};
use serde::Serialize;
use std::borrow::Cow;

/// Every container format rbdkit can recognise. The names follow qemu-img's drivers (raw,
/// qcow2, vmdk, vpc, vhdx, vdi, qed, luks); an ISO is raw to qemu.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Container {
    /// No container: the bytes are the guest disk (possibly partitioned).
    #[default]
    Raw,
    /// QEMU copy-on-write v2/v3 (magic only here; the qcow2 reader checks the rest).
    Qcow2,
    /// VMware: a sparse extent ("KDMV"/"COWD") or a text descriptor naming extents.
    Vmdk,
    /// Microsoft Virtual PC / Hyper-V VHD ("conectix" footer): fixed, dynamic or differencing.
    Vhd,
    /// Microsoft Hyper-V VHDX ("vhdxfile").
    Vhdx,
    /// VirtualBox VDI.
    Vdi,
    /// QEMU enhanced disk.
    Qed,
    /// LUKS encrypted volume (its payload is the disk, encrypted).
    Luks,
    /// ISO 9660 or UDF optical disc image.
    Iso,
}

impl Container {
    /// The qemu-img driver name (`-f`); an ISO is read by qemu's raw driver.
    pub fn qemu_name(self) -> &'static str {
        match self {
            Container::Raw | Container::Iso => "raw",
            Container::Qcow2 => "qcow2",
            Container::Vmdk => "vmdk",
            Container::Vhd => "vpc",
            Container::Vhdx => "vhdx",
            Container::Vdi => "vdi",
            Container::Qed => "qed",
            Container::Luks => "luks",
        }
    }

    /// The Glance `disk_format` name (QED has none; "qed" is returned as is).
    pub fn glance_name(self) -> &'static str {
        match self {
            Container::Raw => "raw",
            Container::Qcow2 => "qcow2",
            Container::Vmdk => "vmdk",
            Container::Vhd => "vhd",
            Container::Vhdx => "vhdx",
            Container::Vdi => "vdi",
            Container::Qed => "qed",
            Container::Luks => "luks",
            Container::Iso => "iso",
        }
    }

    /// The name to show a person.
    pub fn display(self) -> &'static str {
        match self {
            Container::Raw => "raw",
            Container::Qcow2 => "qcow2",
            Container::Vmdk => "VMDK",
            Container::Vhd => "VHD",
            Container::Vhdx => "VHDX",
            Container::Vdi => "VDI",
            Container::Qed => "QED",
            Container::Luks => "LUKS",
            Container::Iso => "ISO 9660",
        }
    }
}

/// One inspector that matched: a container format or a partition table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchName {
    /// A container format other than raw.
    Container(Container),
    /// A partition table in the first sectors.
    PartitionTable(PartitionTable),
}

/// What a probe found: one detected container (`Raw` when nothing matched), its facts, and
/// safety findings. Deliberately not `Serialize`: `backing_file` and `extents` are raw bytes
/// from the image and must be escaped before anyone shows them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Probe {
    /// The container detected: the first match in `matches`, or `Raw`.
    pub container: Container,
    /// Every non-raw inspector that matched. More than one (e.g. a qcow2 that is also a valid
    /// MBR disk) must be refused by callers, as `format_inspector` does; a hybrid ISO (ISO plus
    /// MBR/GPT) counts as ISO only.
    pub matches: Vec<MatchName>,
    /// The partition table found in the first sectors, if any: for raw content, the disk's
    /// table (a partitioned raw disk is still raw); beside a container, one more match.
    pub partition_table: Option<PartitionTable>,
    /// The virtual disk size as `qemu-img info` reports it, where cheaply known.
    pub virtual_size: Option<u64>,
    /// VMDK createType, VHD/VHDX "fixed"/"dynamic"/"differencing", LUKS "luks1"/"luks2",
    /// VDI "static"/"dynamic", ISO "iso9660"/"udf".
    pub subformat: Option<String>,
    /// What `qemu-img info` reports as cluster_size: VMDK grain, VHD/VHDX/VDI block, QED and
    /// qcow2 cluster, in bytes.
    pub cluster_size: Option<u64>,
    /// The parent or backing file the image names (raw text from the image: never print it
    /// unescaped, never open it unchecked).
    pub backing_file: Option<String>,
    /// VMDK descriptor extent file names (raw text from the image, as `backing_file`).
    pub extents: Vec<String>,
    /// Why this image is unsafe by `format_inspector`'s rules (and a few more); empty when
    /// nothing was found. Never contains unescaped bytes of the image.
    pub unsafe_reasons: Vec<String>,
}

impl Probe {
    /// More than one inspector matched: the content is ambiguous and must be refused.
    pub fn is_ambiguous(&self) -> bool {
        self.matches.len() > 1
    }
}

/// Bytes of a file's head a probe needs: ISO's volume descriptors from 32 KiB, a VMDK
/// descriptor (up to 1 MiB after its header) and, for VHDX, qemu-img's metadata region at
/// 3 MiB (its table and items are in the first 64 KiB of that region).
pub const HEAD_BYTES: usize = 4 << 20;

/// Most bytes any single read of a probe asks for (1 MiB).
const MAX_READ: usize = 1 << 20;

/// Longest name (backing file, extent) kept, in bytes; longer ones are cut and flagged.
const MAX_NAME: usize = 4096;

/// Probes a random-access source (a file): reads the head, the last 512 bytes (a fixed VHD has
/// only its footer) and, for VHDX, the region table and metadata region; every read is bounded
/// and checked against the file size first. Fails only when the source fails to read.
pub fn probe(src: &dyn ByteSource) -> Result<Probe> {
    let size = src.size();
    let head_len = size.min(HEAD_BYTES as u64) as usize;
    let mut head = vec![0u8; head_len];
    src.read_exact_at(&mut head, 0)
        .map_err(|e| Error::io(format!("probe: read the first {head_len} bytes"), e))?;
    let input = Input {
        head: &head,
        src: Some(src),
        size: Some(size),
    };
    run(&input)
}

/// Probes the head of a stream (stdin), `head.len()` may be less than [`HEAD_BYTES`] when the
/// stream is short. The same rules apply to the bytes available, but what lies past the head
/// cannot be seen: a fixed VHD (only a footer at the end) probes as raw, and the virtual size
/// of a LUKS volume (the file size less the payload offset) and of raw content is unknown.
pub fn probe_head(head: &[u8]) -> Probe {
    let input = Input {
        head,
        src: None,
        size: None,
    };
    match run(&input) {
        Ok(p) => p,
        // Reads from memory cannot fail; should one ever, say so rather than guess.
        Err(_) => Probe {
            unsafe_reasons: vec!["the probe failed to read its own buffer".into()],
            ..Probe::default()
        },
    }
}

/// Runs every inspector and merges what they found.
fn run(input: &Input) -> Result<Probe> {
    type Inspector = fn(&Input) -> Result<Option<Found>>;
    const INSPECTORS: [Inspector; 8] = [
        qcow2::inspect,
        vmdk::inspect,
        vhd::inspect,
        vhdx::inspect,
        vdi::inspect,
        qed::inspect,
        luks::inspect,
        iso::inspect,
    ];
    let mut found = Vec::new();
    for inspect in INSPECTORS {
        if let Some(f) = inspect(input)? {
            found.push(f);
        }
    }
    let table = partition::inspect(input)?;
    let iso = found.iter().any(|f| f.container == Container::Iso);
    let mut matches: Vec<MatchName> = found
        .iter()
        .map(|f| MatchName::Container(f.container))
        .collect();
    let mut table_reasons = Vec::new();
    if let Some((t, reasons)) = &table {
        // A hybrid ISO carries an MBR/GPT so it also boots from a USB stick: still one ISO.
        if !iso {
            matches.push(MatchName::PartitionTable(*t));
            table_reasons.clone_from(reasons);
        }
    }
    let mut primary = match found.into_iter().next() {
        Some(f) => f,
        None => Found {
            virtual_size: input.size,
            ..Found::new(Container::Raw)
        },
    };
    primary.unsafe_reasons.extend(table_reasons);
    if matches.len() > 1 {
        let names: Vec<String> = matches.iter().map(|m| m.name().to_string()).collect();
        primary.unsafe_reasons.push(format!(
            "the content matches more than one format: {}",
            names.join(", ")
        ));
    }
    Ok(Probe {
        container: primary.container,
        matches,
        partition_table: table.map(|(t, _)| t),
        virtual_size: primary.virtual_size,
        subformat: primary.subformat,
        cluster_size: primary.cluster_size,
        backing_file: primary.backing_file,
        extents: primary.extents,
        unsafe_reasons: primary.unsafe_reasons,
    })
}

impl MatchName {
    /// A short lowercase name: the qemu driver name, or "gpt"/"mbr".
    pub fn name(self) -> &'static str {
        match self {
            MatchName::Container(Container::Iso) => "iso",
            MatchName::Container(c) => c.qemu_name(),
            MatchName::PartitionTable(PartitionTable::Gpt) => "gpt",
            MatchName::PartitionTable(PartitionTable::Mbr) => "mbr",
        }
    }
}

/// What one inspector found.
#[derive(Debug, Default)]
pub(crate) struct Found {
    pub container: Container,
    pub virtual_size: Option<u64>,
    pub subformat: Option<String>,
    pub cluster_size: Option<u64>,
    pub backing_file: Option<String>,
    pub extents: Vec<String>,
    pub unsafe_reasons: Vec<String>,
}

impl Found {
    pub fn new(container: Container) -> Found {
        Found {
            container,
            ..Found::default()
        }
    }

    pub fn unsafe_because(&mut self, reason: impl Into<String>) {
        self.unsafe_reasons.push(reason.into());
    }
}

/// The bytes a probe may look at: the head, and a random-access source behind it if any.
pub(crate) struct Input<'a> {
    head: &'a [u8],
    src: Option<&'a dyn ByteSource>,
    size: Option<u64>,
}

impl<'a> Input<'a> {
    /// The first bytes of the file (up to [`HEAD_BYTES`]).
    pub fn head(&self) -> &'a [u8] {
        self.head
    }

    /// The file size, when the source is a file.
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    /// `len` bytes at `offset`, or `None` when they lie past the end of the file (or, for a
    /// stream, past the head) or `len` exceeds the per-read cap.
    pub fn read(&self, offset: u64, len: usize) -> Result<Option<Cow<'a, [u8]>>> {
        if len > MAX_READ {
            return Ok(None);
        }
        let Some(end) = offset.checked_add(len as u64) else {
            return Ok(None);
        };
        if end <= self.head.len() as u64 {
            return Ok(Some(Cow::Borrowed(
                &self.head[offset as usize..end as usize],
            )));
        }
        let (Some(src), Some(size)) = (self.src, self.size) else {
            return Ok(None);
        };
        if end > size {
            return Ok(None);
        }
        let mut buf = vec![0u8; len];
        src.read_exact_at(&mut buf, offset)
            .map_err(|e| Error::io(format!("probe: read {len} bytes at offset {offset}"), e))?;
        Ok(Some(Cow::Owned(buf)))
    }

    /// Like [`Input::read`], but takes what there is up to `len` bytes (a short file).
    pub fn read_up_to(&self, offset: u64, len: usize) -> Result<Option<Cow<'a, [u8]>>> {
        let avail = match self.size {
            Some(size) => size.saturating_sub(offset),
            None => (self.head.len() as u64).saturating_sub(offset),
        };
        let len = (len as u64).min(avail) as usize;
        if len == 0 {
            return Ok(None);
        }
        self.read(offset, len)
    }
}

/// Fixed-width integers at a byte offset, `None` past the end.
pub(crate) fn bytes_at<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}
pub(crate) fn le16(b: &[u8], at: usize) -> Option<u16> {
    bytes_at(b, at).map(u16::from_le_bytes)
}
pub(crate) fn le32(b: &[u8], at: usize) -> Option<u32> {
    bytes_at(b, at).map(u32::from_le_bytes)
}
pub(crate) fn le64(b: &[u8], at: usize) -> Option<u64> {
    bytes_at(b, at).map(u64::from_le_bytes)
}
pub(crate) fn be16(b: &[u8], at: usize) -> Option<u16> {
    bytes_at(b, at).map(u16::from_be_bytes)
}
pub(crate) fn be32(b: &[u8], at: usize) -> Option<u32> {
    bytes_at(b, at).map(u32::from_be_bytes)
}
pub(crate) fn be64(b: &[u8], at: usize) -> Option<u64> {
    bytes_at(b, at).map(u64::from_be_bytes)
}

/// A value read from the image, made safe to put in a message: escaped and cut short.
pub(crate) fn shown(raw: &str) -> String {
    let mut s: String = raw
        .chars()
        .take(64)
        .flat_map(char::escape_default)
        .collect();
    if raw.chars().count() > 64 {
        s.push_str("...");
    }
    format!("\"{s}\"")
}

/// Text from UTF-16 code units (VHD big-endian, VHDX little-endian), cut at the first NUL and
/// at [`MAX_NAME`] bytes; `None` when empty.
pub(crate) fn utf16(b: &[u8], big_endian: bool) -> Option<String> {
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| {
            let pair = [c[0], c[1]];
            if big_endian {
                u16::from_be_bytes(pair)
            } else {
                u16::from_le_bytes(pair)
            }
        })
        .take_while(|&u| u != 0)
        .take(MAX_NAME / 2)
        .collect();
    let s = String::from_utf16_lossy(&units);
    (!s.is_empty()).then_some(s)
}

/// Bytes as text (lossy), cut at [`MAX_NAME`] bytes.
pub(crate) fn name_text(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(MAX_NAME)]).into_owned()
}

#[cfg(test)]
mod tests;
