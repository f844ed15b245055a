//! VMDK: a sparse extent (hosted sparse "KDMV", versions 1 to 3, with its descriptor embedded
//! at `descriptorOffset`; or an old "COWD" one) or a descriptor text file that names its
//! extents. The descriptor is parsed the way `format_inspector` does, line by line, refusing
//! what it does not understand: only a monolithicSparse or streamOptimized image is one
//! self-contained file; anything else (monolithicFlat, twoGbMaxExtent*, vmfs, ...) reads other
//! files, and extent names with '/' could reach anywhere.
use super::{le16, le32, le64, name_text, shown, Container, Found, Input};
use crate::error::Result;

/// qemu reads a descriptor (a file, or embedded) up to 1 MiB − 1.
const DESC_MAX: usize = (1 << 20) - 1;
/// The header fields this reads end here (`compressAlgorithm` at 77).
const HEADER_LEN: usize = 79;
/// Header flags and the grain directory offset that means "see the footer".
const FLAG_COMPRESS: u32 = 1 << 16;
const GD_AT_END: u64 = u64::MAX;
/// Most extents kept (a twoGbMaxExtent descriptor of a 2 TB disk has about a thousand).
const MAX_EXTENTS: usize = 4096;
/// qemu's probe looks at this many bytes for a descriptor's `version=` line.
const PROBE_LEN: usize = 2048;

/// Matches a sparse VMDK header or a VMDK descriptor file at offset 0.
pub(super) fn inspect(input: &Input) -> Result<Option<Found>> {
    let h = input.head();
    if h.starts_with(b"KDMV") {
        return sparse(input).map(Some);
    }
    let mut f = Found::new(Container::Vmdk);
    if h.starts_with(b"COWD") {
        f.unsafe_because("VMDK3 (COWD) sparse extent: it has no descriptor to check");
        return Ok(Some(f));
    }
    if !is_descriptor(h) {
        return Ok(None);
    }
    let Some(text) = input.read_up_to(0, DESC_MAX)? else {
        return Ok(None);
    };
    let d = Descriptor::parse(&text);
    f.virtual_size = d.sectors.and_then(|s| s.checked_mul(512));
    d.into_found(&mut f);
    Ok(Some(f))
}

/// A descriptor file starts, after comments and blank lines, with a `version=1|2|3` line (as
/// qemu probes it), or with VMware's "# Disk DescriptorFile" comment.
fn is_descriptor(head: &[u8]) -> bool {
    let b = &head[..head.len().min(PROBE_LEN)];
    if b.starts_with(b"# Disk DescriptorFile") {
        return true;
    }
    for line in b.split(|&c| c == b'\n') {
        let line = line.trim_ascii();
        if line.is_empty() || line[0] == b'#' {
            continue;
        }
        return matches!(line, b"version=1" | b"version=2" | b"version=3");
    }
    false
}

/// A hosted sparse extent: the header's capacity and grain, and its embedded descriptor.
fn sparse(input: &Input) -> Result<Found> {
    let mut f = Found::new(Container::Vmdk);
    let Some(h) = input.head().get(..HEADER_LEN) else {
        f.unsafe_because("VMDK header is truncated");
        return Ok(f);
    };
    let n = |at| le64(h, at).unwrap_or(0);
    let version = le32(h, 4).unwrap_or(0);
    if !(1..=3).contains(&version) {
        f.unsafe_because(format!("VMDK version {version} is not supported"));
    }
    let (flags, capacity, grain) = (le32(h, 8).unwrap_or(0), n(12), n(20));
    let (desc_sector, desc_sectors, gd_offset) = (n(28), n(36), n(56));
    f.virtual_size = capacity.checked_mul(512);
    // qemu accepts a power-of-two grain of up to 0x20000 sectors (64 MiB).
    if grain > 0 && grain.is_power_of_two() && grain <= 0x20000 {
        f.cluster_size = Some(grain * 512);
    } else {
        f.unsafe_because(format!("VMDK grain size {grain} sectors is invalid"));
    }
    let compressed = flags & FLAG_COMPRESS != 0 && le16(h, 77) == Some(1);
    if gd_offset == GD_AT_END {
        // The real header is a footer at the end; a stream cannot honour it.
        f.unsafe_because("VMDK header defers to a footer at the end of the file");
    }
    if desc_sector == 0 {
        f.unsafe_because("VMDK sparse extent has no embedded descriptor");
        if compressed {
            f.subformat = Some("streamOptimized".into());
        }
        return Ok(f);
    }
    if desc_sector != 1 {
        f.unsafe_because(format!(
            "VMDK descriptor at sector {desc_sector}, not right after the header"
        ));
    }
    let len = desc_sectors.saturating_mul(512).min(DESC_MAX as u64) as usize;
    let text = match desc_sector.checked_mul(512) {
        Some(off) => input.read(off, len)?,
        None => None,
    };
    let Some(text) = text else {
        if input.size().is_some() {
            f.unsafe_because("VMDK embedded descriptor lies past the end of the file");
        }
        return Ok(f);
    };
    let d = Descriptor::parse(&text);
    d.into_found(&mut f);
    if f.subformat.is_none() && compressed {
        f.subformat = Some("streamOptimized".into());
    }
    Ok(f)
}

/// What a descriptor says, and what is wrong with it.
#[derive(Debug, Default)]
struct Descriptor {
    create_type: Option<String>,
    extents: Vec<String>,
    /// Sum of the extents' sizes, in sectors (`None` on overflow or a bad size).
    sectors: Option<u64>,
    parent: Option<String>,
    reasons: Vec<String>,
}

impl Descriptor {
    /// Parses descriptor text (up to its first NUL: an embedded one is zero-padded).
    fn parse(raw: &[u8]) -> Descriptor {
        let mut d = Descriptor {
            sectors: Some(0),
            ..Descriptor::default()
        };
        let end = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
        // ASCII, as format_inspector requires (and then valid UTF-8 too).
        let text = match std::str::from_utf8(&raw[..end]) {
            Ok(t) if t.is_ascii() => t,
            _ => {
                d.reasons.push("VMDK descriptor is not ASCII text".into());
                return d;
            }
        };
        let mut bad_lines = 0usize;
        for (n, line) in text.split('\n').enumerate() {
            let line = line.trim();
            let lower = line.to_ascii_lowercase();
            if line.is_empty() || line.starts_with('#') || lower.starts_with("ddb") {
                continue;
            }
            let first = lower.split(' ').next().unwrap_or("");
            match line.split_once('=') {
                Some((key, value)) if !key.contains(' ') => {
                    d.header_field(key.trim(), value.trim());
                    continue;
                }
                _ => {}
            }
            if matches!(first, "rw" | "rdonly" | "noaccess") {
                d.extent(line);
            } else {
                bad_lines += 1;
                if bad_lines == 1 {
                    d.reasons
                        .push(format!("VMDK descriptor line {} is not understood", n + 1));
                }
            }
        }
        if d.extents.is_empty() {
            d.reasons.push("VMDK descriptor names no extents".into());
        }
        d
    }

    /// A `key=value` line: the ones that matter here are the type and the parent.
    fn header_field(&mut self, key: &str, value: &str) {
        let value = value.trim_matches('"');
        if key.eq_ignore_ascii_case("createType") {
            self.create_type = Some(name_text(value.as_bytes()));
        } else if key.eq_ignore_ascii_case("parentFileNameHint") {
            self.parent = Some(name_text(value.as_bytes()));
            self.reasons
                .push("VMDK names a parent (parentFileNameHint)".into());
        }
    }

    /// An extent line: `ACCESS SECTORS TYPE ["FILE" [OFFSET]]`.
    fn extent(&mut self, line: &str) {
        let sectors = line
            .split_ascii_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u64>().ok());
        self.sectors = match (self.sectors, sectors) {
            (Some(total), Some(s)) => total.checked_add(s),
            _ => None,
        };
        if line.contains('/') {
            self.reasons.push(format!(
                "VMDK extent {} has a file name with '/'",
                self.extents.len() + 1
            ));
        }
        // The name is the quoted field; a ZERO extent has none.
        let name = line
            .split_once('"')
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(name, _)| name_text(name.as_bytes()))
            .unwrap_or_default();
        if self.extents.len() < MAX_EXTENTS {
            self.extents.push(name);
        } else if self.extents.len() == MAX_EXTENTS {
            self.reasons.push(format!(
                "VMDK descriptor names more than {MAX_EXTENTS} extents"
            ));
            self.extents.push(String::new());
        }
    }

    /// Moves what the descriptor says into a probe's findings.
    fn into_found(mut self, f: &mut Found) {
        if self.extents.len() > MAX_EXTENTS {
            self.extents.truncate(MAX_EXTENTS);
        }
        match self.create_type.as_deref() {
            Some("monolithicSparse") | Some("streamOptimized") => {}
            Some(t) => f.unsafe_because(format!(
                "VMDK createType {}: only monolithicSparse and streamOptimized are one file",
                shown(t)
            )),
            None => f.unsafe_because("VMDK descriptor has no createType"),
        }
        f.subformat = self.create_type;
        f.extents = self.extents;
        f.backing_file = self.parent;
        f.unsafe_reasons.extend(self.reasons);
    }
}

#[cfg(test)]
mod tests {
    use super::super::{probe, probe_head, Container};

    const SPARSE_DESC: &str = "# Disk DescriptorFile\nversion=1\nCID=d589ccc7\n\
        parentCID=ffffffff\ncreateType=\"monolithicSparse\"\n\n# Extent description\n\
        RW 204800 SPARSE \"a.vmdk\"\n\n# The Disk Data Base\n#DDB\n\n\
        ddb.virtualHWVersion = \"4\"\nddb.adapterType = \"ide\"\n";

    /// A sparse extent header with `desc` embedded at sector 1.
    fn sparse(desc: &str, flags: u32, compress: u16) -> Vec<u8> {
        let mut v = vec![0u8; 512 + 20 * 512];
        v[..4].copy_from_slice(b"KDMV");
        v[4..8].copy_from_slice(&1u32.to_le_bytes());
        v[8..12].copy_from_slice(&flags.to_le_bytes());
        v[12..20].copy_from_slice(&204800u64.to_le_bytes());
        v[20..28].copy_from_slice(&128u64.to_le_bytes());
        v[28..36].copy_from_slice(&1u64.to_le_bytes());
        v[36..44].copy_from_slice(&20u64.to_le_bytes());
        v[56..64].copy_from_slice(&0x26u64.to_le_bytes());
        v[77..79].copy_from_slice(&compress.to_le_bytes());
        v[512..512 + desc.len()].copy_from_slice(desc.as_bytes());
        v
    }

    #[test]
    fn monolithic_sparse_is_safe() {
        let p = probe(&sparse(SPARSE_DESC, 3, 0)).unwrap();
        assert_eq!(p.container, Container::Vmdk);
        assert_eq!(p.subformat.as_deref(), Some("monolithicSparse"));
        assert_eq!(
            (p.virtual_size, p.cluster_size),
            (Some(104857600), Some(65536))
        );
        assert_eq!(p.extents, vec!["a.vmdk".to_string()]);
        assert!(p.unsafe_reasons.is_empty(), "{:?}", p.unsafe_reasons);
    }

    #[test]
    fn stream_optimized_from_flags_without_a_type() {
        let desc = "version=1\nRW 204800 SPARSE \"b.vmdk\"\n";
        let p = probe_head(&sparse(desc, 0x30003, 1));
        assert_eq!(p.subformat.as_deref(), Some("streamOptimized"));
        assert_eq!(p.unsafe_reasons.len(), 1, "{:?}", p.unsafe_reasons);
    }

    #[test]
    fn descriptor_files() {
        let flat = "# Disk DescriptorFile\nversion=1\ncreateType=\"monolithicFlat\"\n\
            RW 204800 FLAT \"c-flat.vmdk\" 0\nRW 100 ZERO\n";
        let p = probe(&flat.as_bytes().to_vec()).unwrap();
        assert_eq!(p.container, Container::Vmdk);
        assert_eq!(p.subformat.as_deref(), Some("monolithicFlat"));
        assert_eq!(p.virtual_size, Some((204800 + 100) * 512));
        assert_eq!(p.extents, vec!["c-flat.vmdk".to_string(), String::new()]);
        assert_eq!(p.cluster_size, None);
        assert_eq!(p.unsafe_reasons.len(), 1, "{:?}", p.unsafe_reasons);
        // qemu's own probe rule: comments, then version=N.
        let p = probe_head(
            b"  # x\n\nversion=2\r\ncreateType=\"vmfs\"\nRW 8 VMFS \"../../etc/shadow\"\n",
        );
        assert_eq!(p.subformat.as_deref(), Some("vmfs"));
        assert_eq!(p.extents, vec!["../../etc/shadow".to_string()]);
        assert_eq!(p.unsafe_reasons.len(), 2, "{:?}", p.unsafe_reasons);
        assert!(p.unsafe_reasons.iter().all(|r| !r.contains("shadow")));
        assert_eq!(probe_head(b"hello\nversion=1\n").container, Container::Raw);
    }

    #[test]
    fn hostile_descriptors() {
        let odd = "version=1\ncreateType=\"monolithicSparse\"\nRW 1 SPARSE \"a\"\nrm -rf /\n\
            parentFileNameHint=\"/dev/sda\"\n";
        let p = probe(&sparse(odd, 0, 0)).unwrap();
        assert_eq!(p.backing_file.as_deref(), Some("/dev/sda"));
        assert_eq!(p.unsafe_reasons.len(), 2, "{:?}", p.unsafe_reasons);
        let p = probe_head(&sparse("version=1\ncreateType=\"\u{e9}\"\n", 0, 0));
        assert_eq!(p.unsafe_reasons.len(), 2, "{:?}", p.unsafe_reasons);
        let mut v = sparse(SPARSE_DESC, 0, 0);
        v[28..36].copy_from_slice(&u64::MAX.to_le_bytes());
        v[36..44].copy_from_slice(&u64::MAX.to_le_bytes());
        v[20..28].copy_from_slice(&3u64.to_le_bytes());
        v[12..20].copy_from_slice(&u64::MAX.to_le_bytes());
        let p = probe(&v).unwrap();
        assert_eq!((p.virtual_size, p.cluster_size), (None, None));
        assert_eq!(p.unsafe_reasons.len(), 3, "{:?}", p.unsafe_reasons);
        // Extent sizes whose sum in bytes overflows: no size rather than a wrapped one.
        let big = format!(
            "version=1\n{}",
            "RW 99999999999999999 FLAT \"x\"\n".repeat(3)
        );
        assert_eq!(probe_head(big.as_bytes()).virtual_size, None);
    }
}
