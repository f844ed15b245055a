//! The VMDK descriptor: text, embedded in a sparse extent or a file of its own, that gives the
//! disk's `createType`, its parent (`parentFileNameHint`) and its extents, one line each:
//! `ACCESS SECTORS TYPE "FILE" [OFFSET]`.
//!
//! Parsed the way qemu reads it where qemu is strict (an extent line it cannot read is an
//! error), and more strictly where qemu silently skips: an extent qemu would skip (read-only,
//! ZERO, an unknown type) would shift every later extent and shrink the disk, so it is refused
//! rather than guessed at. Names are kept as raw text; callers escape them before showing them.
use crate::error::{Error, Result};

/// Longest descriptor read (qemu's limit: 1 MiB − 1).
pub const MAX_LEN: usize = (1 << 20) - 1;
/// Most extents a descriptor may name (a twoGbMaxExtent disk of 2 TiB has about a thousand).
pub const MAX_EXTENTS: usize = 4096;

/// The kind of an extent line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExtentType {
    /// Raw bytes of another file from an offset (also `VMFS`, offset 0).
    Flat,
    /// A hosted sparse extent file ("KDMV").
    Sparse,
}

/// One extent line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtentLine {
    /// Guest sectors it covers.
    pub sectors: u64,
    /// Flat or sparse.
    pub kind: ExtentType,
    /// The file it names, raw text from the image.
    pub file: String,
    /// Flat extents: where in the file the extent starts, in sectors.
    pub offset: u64,
}

/// What a descriptor says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Descriptor {
    /// `createType`, raw text.
    pub create_type: Option<String>,
    /// `parentFileNameHint`, raw text: the image is a delta on a parent.
    pub parent: Option<String>,
    /// The extent lines, in order.
    pub extents: Vec<ExtentLine>,
}

impl Descriptor {
    /// Parses descriptor bytes (up to the first NUL: an embedded descriptor is zero-padded);
    /// `shown` names the image in errors.
    pub fn parse(raw: &[u8], shown: &str) -> Result<Descriptor> {
        let bad = |why: String| Error::bad_image(shown, why);
        let end = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
        let text = std::str::from_utf8(&raw[..end])
            .map_err(|_| bad("VMDK descriptor is not text: the image is corrupt".into()))?;
        let mut d = Descriptor::default();
        for (n, line) in text.split('\n').enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let first = line.split_ascii_whitespace().next().unwrap_or("");
            if matches!(first, "RW" | "RDONLY" | "NOACCESS") {
                if d.extents.len() == MAX_EXTENTS {
                    return Err(bad(format!(
                        "VMDK descriptor names more than {MAX_EXTENTS} extents: refused"
                    )));
                }
                let e = extent(line)
                    .map_err(|why| bad(format!("VMDK descriptor line {}: {why}", n + 1)))?;
                d.extents.push(e);
                continue;
            }
            if let Some((key, value)) = line.split_once('=') {
                let value = value.trim().trim_matches('"').to_string();
                match key.trim() {
                    "createType" => d.create_type = Some(value),
                    k if k.eq_ignore_ascii_case("parentFileNameHint") => d.parent = Some(value),
                    _ => {}
                }
            }
            // Other lines (ddb.*, CID, version, ...) say nothing a reader needs.
        }
        Ok(d)
    }
}

/// Parses one extent line; the error says what is wrong with it (never quoting it: it is
/// text from the image).
fn extent(line: &str) -> std::result::Result<ExtentLine, String> {
    let (access, rest) = split_word(line);
    if access != "RW" {
        return Err(format!(
            "a {access} extent is not supported (qemu skips it, which would shift the disk)"
        ));
    }
    let (sectors, rest) = split_word(rest);
    let sectors: u64 = sectors
        .parse()
        .ok()
        .filter(|&s| s > 0)
        .ok_or("the extent size is not a positive number of sectors")?;
    let (word, rest) = split_word(rest);
    let kind = match word {
        "FLAT" | "VMFS" => ExtentType::Flat,
        "SPARSE" => ExtentType::Sparse,
        "ZERO" => return Err("ZERO extents are not supported".into()),
        _ => return Err(
            "the extent type is not supported (FLAT, VMFS, SPARSE): convert it with qemu-img first"
                .into(),
        ),
    };
    let rest = rest
        .strip_prefix('"')
        .ok_or("the extent names no file in quotes")?;
    let (file, rest) = rest
        .split_once('"')
        .ok_or("the extent's file name has no closing quote")?;
    if file.is_empty() {
        return Err("the extent's file name is empty".into());
    }
    let (offset, rest) = split_word(rest);
    if !rest.trim().is_empty() {
        return Err("the extent line has extra fields".into());
    }
    let offset = match (kind, offset, word == "VMFS") {
        (ExtentType::Flat, "", true) => 0,
        (ExtentType::Flat, "", false) => return Err("a FLAT extent needs an offset".into()),
        (ExtentType::Flat, _, true) => return Err("a VMFS extent takes no offset".into()),
        (ExtentType::Flat, o, false) => o
            .parse()
            .map_err(|_| "the FLAT extent offset is not a number of sectors")?,
        (ExtentType::Sparse, "", _) => 0,
        (ExtentType::Sparse, _, _) => return Err("a SPARSE extent takes no offset".into()),
    };
    Ok(ExtentLine {
        sectors,
        kind,
        file: file.to_string(),
        offset,
    })
}

/// The first whitespace-separated word of `s` and what follows it (leading space trimmed).
fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    let end = s.find(|c: char| c.is_ascii_whitespace()).unwrap_or(s.len());
    (&s[..end], s[end..].trim_start())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_descriptors_parse() {
        let text = "# Disk DescriptorFile\nversion=1\nCID=962d0e48\nparentCID=ffffffff\n\
            createType=\"twoGbMaxExtentFlat\"\r\n\n# Extent description\n\
            RW 4194304 FLAT \"a-f001.vmdk\" 0\nRW 100 VMFS \"b c.vmdk\"\n\
            RW 8 SPARSE \"s.vmdk\"\n\nddb.adapterType = \"ide\"\n\0garbage";
        let d = Descriptor::parse(text.as_bytes(), "t").unwrap();
        assert_eq!(d.create_type.as_deref(), Some("twoGbMaxExtentFlat"));
        assert_eq!(d.parent, None);
        assert_eq!(
            d.extents,
            vec![
                ExtentLine {
                    sectors: 4194304,
                    kind: ExtentType::Flat,
                    file: "a-f001.vmdk".into(),
                    offset: 0
                },
                ExtentLine {
                    sectors: 100,
                    kind: ExtentType::Flat,
                    file: "b c.vmdk".into(),
                    offset: 0
                },
                ExtentLine {
                    sectors: 8,
                    kind: ExtentType::Sparse,
                    file: "s.vmdk".into(),
                    offset: 0
                },
            ]
        );
        let p = Descriptor::parse(b"parentFileNameHint=\"/etc/passwd\"\n", "t").unwrap();
        assert_eq!(p.parent.as_deref(), Some("/etc/passwd"));
    }

    #[test]
    fn extents_qemu_would_skip_or_misread_are_refused() {
        for (line, needle) in [
            ("RDONLY 8 FLAT \"a\" 0", "RDONLY extent"),
            ("RW 0 FLAT \"a\" 0", "positive"),
            ("RW -5 FLAT \"a\" 0", "positive"),
            ("RW 8 ZERO", "ZERO"),
            ("RW 8 SESPARSE \"a\"", "not supported"),
            ("RW 8 FLAT a 0", "quotes"),
            ("RW 8 FLAT \"a 0", "closing quote"),
            ("RW 8 FLAT \"\" 0", "empty"),
            ("RW 8 FLAT \"a\"", "needs an offset"),
            ("RW 8 FLAT \"a\" x", "not a number"),
            ("RW 8 SPARSE \"a\" 5", "no offset"),
            ("RW 8 FLAT \"a\" 0 9", "extra fields"),
        ] {
            let e = Descriptor::parse(line.as_bytes(), "t")
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{line}: {e}");
        }
        assert!(Descriptor::parse(b"\xff\xfe", "t").is_err());
        let many = "RW 1 FLAT \"a\" 0\n".repeat(MAX_EXTENTS + 1);
        assert!(Descriptor::parse(many.as_bytes(), "t").is_err());
    }
}
