//! `rbdkit inspect`: what an image is and whether it is safe to import, from its metadata
//! alone. It says what `qemu-img info` says (format, sizes, cluster size, version, backing and
//! data files, dirty bit) plus the allocation counted from the tables and a verdict with every
//! reason. It never follows a name the image holds, never reads guest data, and reads a
//! bounded amount of metadata whatever the image claims, so a 1 TiB image is inspected in
//! well under a second and a hostile one cannot make it run long.
//!
//! Two rule sets: rbdkit's (what `import-raw` and `convert` accept with their default flags),
//! and with `openstack` also the stricter ones of oslo.utils' `format_inspector`, which Glance,
//! Nova and Cinder apply since OSSA-2024-001/002 (they refuse extended L2, QED, LUKS other than
//! v1, VMDK other than monolithicSparse/streamOptimized, suspicious partition tables).
use super::detect::{self, Container, Probe};
use super::qcow2::{ByteSource, FileBytes, Header, Qcow2};
use crate::error::{Error, Result};
use serde::Serialize;
use std::io::Read;
use std::path::Path;

/// Bytes of L2 tables walked at most to count the allocation (1 GiB of tables maps 8 PiB of
/// guest disk at 64 KiB clusters; an image that needs more is reported without a count).
pub const MAX_TABLE_BYTES: u64 = 1 << 30;

/// What an image is, and the verdict.
#[derive(Clone, Debug, Serialize)]
pub struct Inspection {
    /// The path given, or `-`.
    pub filename: String,
    /// qemu-img's driver name for the format (`qcow2`, `raw`, `vmdk`, `vpc`, `vhdx`, ...).
    pub format: &'static str,
    /// Glance's `disk_format` for it (`vhd` where qemu says `vpc`, `iso` for ISO 9660).
    pub disk_format: &'static str,
    /// Guest-visible size in bytes, when the metadata tells it.
    pub virtual_size: Option<u64>,
    /// Length of the file in bytes (of what was read, for a stream).
    pub file_size: u64,
    /// Bytes the file occupies on its filesystem (holes excluded); `None` for a stream.
    pub disk_size: Option<u64>,
    /// Cluster (grain, block) size in bytes, where the format has one.
    pub cluster_size: Option<u64>,
    /// Subformat: VMDK createType, VHD/VHDX/VDI disk type, LUKS version.
    pub subformat: Option<String>,
    /// qcow2 header facts.
    pub qcow2: Option<Qcow2Facts>,
    /// VMDK facts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vmdk: Option<VmdkFacts>,
    /// Backing (parent) file the image names, as stored.
    pub backing_file: Option<String>,
    /// Format of the backing file, as the image states it.
    pub backing_format: Option<String>,
    /// External data file (qcow2) or extent files (VMDK descriptor) the image names.
    pub data_file: Option<String>,
    /// VMDK extent file names, as stored.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extents: Vec<String>,
    /// Partition table found on raw content (`gpt`, `mbr`).
    pub partition_table: Option<String>,
    /// Guest bytes this image's own tables hold as data (qcow2), from the tables, not a scan.
    pub allocated_bytes: Option<u64>,
    /// What could not be told, and why (allocation not counted from a stream or past the cap).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// rbdkit can read the image (a format it reads, with a valid header).
    pub readable: bool,
    /// No reason to refuse it under the rules applied (rbdkit's, and OpenStack's when asked).
    pub safe: bool,
    /// Every reason rbdkit's own rules (import-raw and convert with default flags) refuse
    /// it or cannot read it; empty when they accept it.
    pub reasons: Vec<String>,
    /// With `--openstack`: whether Glance/Nova/Cinder's format_inspector rules accept it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub openstack_safe: Option<bool>,
    /// With `--openstack`: every reason those rules refuse it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub openstack_reasons: Option<Vec<String>>,
}

/// qcow2 header fields, as `qemu-img info` shows them under "Format specific information".
#[derive(Clone, Debug, Serialize)]
pub struct Qcow2Facts {
    /// Header version (2 or 3).
    pub version: u32,
    /// `0.10` for version 2, `1.1` for version 3.
    pub compat: &'static str,
    /// `zlib` or `zstd`.
    pub compression_type: &'static str,
    /// 128-bit L2 entries with 32 subclusters.
    pub extended_l2: bool,
    /// The image was not closed cleanly (readable; qemu replays nothing for reading).
    pub dirty: bool,
    /// The image keeps its data in an external file.
    pub data_file_raw: bool,
    /// Guest bytes held in compressed clusters.
    pub compressed_bytes: Option<u64>,
    /// Guest bytes that read as zero by a zero flag.
    pub zero_bytes: Option<u64>,
    /// L2 tables allocated.
    pub l2_tables: Option<u64>,
}

/// VMDK facts, as `qemu-img info` shows them under "Format specific information".
#[derive(Clone, Debug, Serialize)]
pub struct VmdkFacts {
    /// The file is a descriptor naming extent files (not one self-contained sparse file).
    pub descriptor_file: bool,
    /// Sparse header version (1 to 3), for a sparse file.
    pub version: Option<u32>,
    /// Grains are deflate-compressed (streamOptimized).
    pub compressed: bool,
    /// The header was taken from the footer at the end of the file.
    pub footer: bool,
    /// Grains holding data, for a sparse file (from its grain tables).
    pub allocated_grains: Option<u64>,
}

/// Inspects the image at `path` (a file or block device).
pub fn inspect_file(path: &Path, openstack: bool) -> Result<Inspection> {
    let shown = path.display().to_string();
    let bytes = FileBytes::open(path, "image")?;
    let meta = std::fs::metadata(path).map_err(|e| Error::io(format!("stat {shown}"), e))?;
    let probe = detect::probe(&bytes)?;
    let mut out = Inspection::new(&shown, &probe, bytes.size(), openstack);
    use std::os::unix::fs::MetadataExt;
    out.disk_size = Some(meta.blocks() * 512);
    if probe.container == Container::Qcow2 {
        out.add_qcow2(&bytes, || Qcow2::open_metadata(path));
    }
    if probe.container == Container::Vmdk {
        out.add_vmdk(&bytes, path);
    }
    if probe.container == Container::Vhd {
        out.add_vhd(path);
    }
    if probe.container == Container::Vhdx {
        out.add_vhdx(path);
    }
    out.finish(&probe);
    Ok(out)
}

/// Inspects an image arriving on `input` (stdin) from its first bytes; nothing more is read.
/// A stream cannot show what lies at its end (a fixed VHD's footer) or its tables, so its
/// allocation is not counted.
pub fn inspect_stream(input: &mut dyn Read, name: &str, openstack: bool) -> Result<Inspection> {
    let mut head = vec![0u8; detect::HEAD_BYTES.max(1 << super::qcow2::header::MAX_CLUSTER_BITS)];
    let n = super::read_full(input, &mut head).map_err(|e| Error::io(format!("read {name}"), e))?;
    head.truncate(n);
    let probe = detect::probe_head(&head);
    let mut out = Inspection::new(name, &probe, n as u64, openstack);
    if probe.container == Container::Qcow2 {
        // The file size is unknown: the tables are past what was read.
        match Header::parse(&head, u64::MAX, name) {
            Ok(h) => out.add_header(&h),
            Err(e) => out.unreadable(e),
        }
        out.notes.push(
            "read from a stream: only its header was read, so allocation is not counted".into(),
        );
    }
    match probe.container {
        // What `import-raw -` does with the same stream: a streamOptimized VMDK is decoded
        // from its markers (its header and descriptor are checked here as they would be);
        // a monolithicSparse VMDK, a VHD or a VHDX must be saved to a file first.
        Container::Vmdk => {
            let cursor = std::io::Cursor::new(head.clone());
            if let Err(e) = super::vmdk::VmdkStream::open(Box::new(cursor), name) {
                out.unreadable(e);
            }
        }
        Container::Vhd | Container::Vhdx => out.unreadable(Error::bad_image(
            name,
            format!(
                "{} from a stream: not supported (its tables may lie anywhere in the file), save it to a file first",
                probe.container.display()
            ),
        )),
        _ => {}
    }
    out.finish(&probe);
    Ok(out)
}

impl Inspection {
    fn new(name: &str, p: &Probe, file_size: u64, openstack: bool) -> Inspection {
        Inspection {
            filename: name.to_string(),
            format: p.container.qemu_name(),
            disk_format: p.container.glance_name(),
            virtual_size: p
                .virtual_size
                .or((p.container == Container::Raw).then_some(file_size)),
            file_size,
            disk_size: None,
            cluster_size: p.cluster_size,
            subformat: p.subformat.clone(),
            qcow2: None,
            vmdk: None,
            backing_file: p.backing_file.clone(),
            backing_format: None,
            data_file: None,
            extents: p.extents.clone(),
            partition_table: p
                .partition_table
                .map(|t| detect::MatchName::PartitionTable(t).name().to_string()),
            allocated_bytes: None,
            notes: Vec::new(),
            readable: matches!(
                p.container,
                Container::Raw
                    | Container::Qcow2
                    | Container::Vmdk
                    | Container::Vhd
                    | Container::Vhdx
                    | Container::Iso
            ),
            safe: false,
            reasons: Vec::new(),
            openstack_safe: None,
            openstack_reasons: openstack.then(Vec::new),
        }
    }

    fn unreadable(&mut self, e: Error) {
        self.readable = false;
        self.reasons.push(e.to_string());
    }

    fn add_header(&mut self, h: &Header) {
        self.virtual_size = Some(h.size);
        self.cluster_size = Some(h.cluster_size());
        self.backing_file = h.backing_file.clone();
        self.backing_format = h.backing_format.clone();
        self.data_file = h.data_file.clone();
        self.qcow2 = Some(Qcow2Facts {
            version: h.version,
            compat: if h.version == 2 { "0.10" } else { "1.1" },
            compression_type: match h.compression {
                super::qcow2::Compression::Deflate => "zlib",
                super::qcow2::Compression::Zstd => "zstd",
            },
            extended_l2: h.extended_l2,
            dirty: h.dirty,
            data_file_raw: h.data_file_raw,
            compressed_bytes: None,
            zero_bytes: None,
            l2_tables: None,
        });
    }

    /// Header facts, then the allocation from the tables (without following any name). The
    /// header is parsed on its own only when the image does not open, so its facts are still
    /// shown beside the reason.
    fn add_qcow2(&mut self, bytes: &FileBytes, open: impl FnOnce() -> Result<Qcow2>) {
        let img = match open() {
            Ok(img) => img,
            Err(e) => {
                let mut first = vec![
                    0u8;
                    bytes
                        .size()
                        .min(1 << super::qcow2::header::MAX_CLUSTER_BITS)
                        as usize
                ];
                if bytes.read_exact_at(&mut first, 0).is_ok() {
                    if let Ok(h) = Header::parse(&first, bytes.size(), &self.filename) {
                        self.add_header(&h);
                    }
                }
                return self.unreadable(e);
            }
        };
        self.add_header(img.header());
        match img.allocation(MAX_TABLE_BYTES) {
            Ok(Some(a)) => {
                self.allocated_bytes = Some(a.data_bytes);
                if let Some(q) = &mut self.qcow2 {
                    q.compressed_bytes = Some(a.compressed_bytes);
                    q.zero_bytes = Some(a.zero_bytes);
                    q.l2_tables = Some(a.l2_tables);
                }
            }
            Ok(None) => self.notes.push(format!(
                "allocation not counted: the L1 table maps more than {} of L2 tables",
                crate::units::format_size(MAX_TABLE_BYTES)
            )),
            Err(e) => self.unreadable(e),
        }
    }

    /// VMDK facts. A sparse file is opened as `convert` opens it with the default policy (its
    /// tables read and checked, no name followed): whatever that refuses is a reason. A
    /// descriptor file is not opened (its extents are other files): that it names them is.
    fn add_vmdk(&mut self, bytes: &FileBytes, path: &Path) {
        let mut magic = [0u8; 4];
        let sparse = bytes.size() >= 4
            && bytes.read_exact_at(&mut magic, 0).is_ok()
            && (&magic == b"KDMV" || &magic == b"COWD");
        if !sparse {
            self.vmdk = Some(VmdkFacts {
                descriptor_file: true,
                version: None,
                compressed: false,
                footer: false,
                allocated_grains: None,
            });
            let names: Vec<String> = self
                .extents
                .iter()
                .map(|e| crate::text::escape(e))
                .collect();
            self.reasons.push(format!(
                "a VMDK descriptor file naming extent files ('{}'): refused unless --allow-backing-files, and then only inside the allowed directories",
                names.join("', '")
            ));
            return;
        }
        // A parent is reported by finish() as a backing file; the open would only repeat it.
        if self.backing_file.is_some() {
            self.readable = false;
            return;
        }
        match super::vmdk::Vmdk::open(path, &super::FilePolicy::refuse()) {
            Ok(v) => {
                if let Some(sp) = v.sparse() {
                    let h = sp.header();
                    self.vmdk = Some(VmdkFacts {
                        descriptor_file: false,
                        version: Some(h.version),
                        compressed: h.compressed,
                        footer: h.from_footer,
                        allocated_grains: Some(sp.tables().allocated_grains()),
                    });
                    self.virtual_size = Some(h.size());
                    self.cluster_size = Some(h.grain_bytes());
                }
                self.subformat = Some(v.create_type().to_string());
                self.allocated_bytes = Some(v.allocated_bytes());
            }
            Err(e) => self.unreadable(e),
        }
    }

    /// VHD facts: opened as `convert` opens it (footer checksum, dynamic header and table
    /// checked); the allocation is the allocated blocks (a fixed disk: all of it).
    fn add_vhd(&mut self, path: &Path) {
        if self.backing_file.is_some() {
            // A differencing disk: finish() names its parent; rbdkit does not read them.
            self.readable = false;
            return;
        }
        match super::vhd::Vhd::open(path, &super::FilePolicy::refuse()) {
            Ok(v) => {
                self.virtual_size = Some(v.footer().size);
                self.allocated_bytes = Some(match v.dynamic() {
                    Some(_) => {
                        let mut n = 0;
                        for e in
                            super::DiskSource::extents(&v, 0, v.footer().size).unwrap_or_default()
                        {
                            if e.kind == super::ExtentKind::Data {
                                n += e.len;
                            }
                        }
                        n
                    }
                    None => v.footer().size,
                });
            }
            Err(e) => self.unreadable(e),
        }
    }

    /// VHDX facts: opened as `convert` opens it (headers, regions, metadata, log, table
    /// checked); the allocation is the present blocks.
    fn add_vhdx(&mut self, path: &Path) {
        if self.backing_file.is_some() {
            self.readable = false;
            return;
        }
        match super::vhdx::Vhdx::open(path, &super::FilePolicy::refuse()) {
            Ok(v) => {
                let m = v.metadata();
                self.virtual_size = Some(m.size);
                self.cluster_size = Some(m.block_size);
                let present = v.bat().present_blocks() * m.block_size;
                self.allocated_bytes = Some(present.min(m.size));
            }
            Err(e) => self.unreadable(e),
        }
    }

    /// The verdict: every reason the rules find, `safe` when there is none.
    fn finish(&mut self, p: &Probe) {
        let esc = crate::text::escape;
        if p.matches.len() > 1 {
            let names: Vec<_> = p.matches.iter().map(|m| m.name()).collect();
            self.reasons.push(format!(
                "content matches several formats ({}): an image hiding one header in another is refused",
                names.join(", ")
            ));
        }
        match p.container {
            Container::Raw
            | Container::Qcow2
            | Container::Vmdk
            | Container::Vhd
            | Container::Vhdx => {}
            Container::Iso => self.reasons.push(
                "ISO 9660 disc image: copied as a raw disk only with --source-format iso".into(),
            ),
            other => {
                self.readable = false;
                self.reasons.push(format!(
                    "{}: not supported yet, convert it with qemu-img first",
                    other.display()
                ));
            }
        }
        if let Some(b) = &self.backing_file {
            self.reasons.push(format!(
                "names backing file '{}' (refused unless --allow-backing-files, and then only inside the allowed directories)",
                esc(b)
            ));
        }
        if let Some(d) = &self.data_file {
            self.reasons.push(format!(
                "names external data file '{}' (refused unless --allow-backing-files, and then only inside the allowed directories)",
                esc(d)
            ));
        }
        self.safe = self.reasons.is_empty();
        if let Some(mut os) = self.openstack_reasons.take() {
            self.openstack_rules(p, &mut os);
            self.openstack_safe = Some(os.is_empty());
            self.safe &= os.is_empty();
            self.openstack_reasons = Some(os);
        }
    }

    /// What format_inspector's `safety_check()` (and the single-format rule Glance, Nova and
    /// Cinder put in front of it) refuses.
    fn openstack_rules(&self, p: &Probe, out: &mut Vec<String>) {
        if p.matches.len() > 1 {
            out.push("several formats detected".into());
        }
        if self.backing_file.is_some() {
            out.push("image has a backing file".into());
        }
        if self.data_file.is_some() || self.qcow2.as_ref().is_some_and(|q| q.data_file_raw) {
            out.push("image has a data file".into());
        }
        if self.qcow2.as_ref().is_some_and(|q| q.extended_l2) {
            out.push(
                "unknown qcow2 features: extended L2 entries (incompatible bit 4) are unknown to format_inspector".into(),
            );
        }
        out.extend(p.unsafe_reasons.iter().cloned());
    }
}
